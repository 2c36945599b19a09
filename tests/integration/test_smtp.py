"""test_smtp.py - the SMTP receiver of intaked, over the wire.

Every test starts its own private intaked (harness.Intaked) with the limits
it needs and talks to it with a real client: Python's smtplib, curl
(smtp://), swaks, or a raw socket (harness.Raw) where the bytes on the wire
matter.  Numbers in the docstrings are the cases of
shared/SECURITY-TESTS.md section 3.

No test sleeps in the hope that something has happened: waiting is always a
poll with a deadline, or a read with a socket timeout.  The only pauses are
the deliberate ones of the trickling client (tests 26, 27), which *is* the
behaviour under test.
"""

import glob
import os
import pwd
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import Intaked, Raw, message, SHARED, ROOT
import tls_util

SENDER = "a@sender.example"
RCPT = "foi@council.example"


# --------------------------------------------------------------- helpers

class Daemon(Intaked):
    """Intaked whose log is also checked for GLib criticals and fatal
    errors when the test ends: a critical is a failed GLib precondition
    (often a use of freed memory that ASan cannot see inside GLib)."""

    def check_sanitizers(self):
        super().check_sanitizers()
        bad = [l for l in self.log().splitlines()
               if l.split(" ", 2)[1:2] in (["critical"], ["fatal"])]
        if bad:
            raise AssertionError("GLib critical/fatal in intaked log:\n"
                                 + "\n".join(bad))

def wait_spool_empty(d, timeout=20.0):
    """Poll until the spool is empty; returns the cases then."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if d.spool_count() == 0:
            return d.cases()
        time.sleep(0.05)
    raise AssertionError("spool not drained within %.0fs" % timeout)


def ehlo(raw, name=b"t.example"):
    code, text = raw.cmd(b"EHLO " + name)
    assert code == 250, (code, text)
    return text


def preamble(raw, rcpt=RCPT, sender=SENDER):
    """P of SECURITY-TESTS: greeting, EHLO, MAIL, RCPT, DATA -> 354."""
    code, text = raw.reply()
    assert code == 220, (code, text)
    ehlo(raw)
    code, text = raw.cmd(b"MAIL FROM:<" + sender.encode() + b">")
    assert code == 250, (code, text)
    code, text = raw.cmd(b"RCPT TO:<" + rcpt.encode() + b">")
    assert code == 250, (code, text)
    code, text = raw.cmd(b"DATA")
    assert code == 354, (code, text)


def replies_until_closed(raw, timeout=10.0):
    """Every reply until the server closes the connection.  A server that
    neither answers nor closes within @timeout fails the test."""
    replies = []
    raw.s.settimeout(timeout)
    while True:
        try:
            replies.append(raw.reply())
        except EOFError:
            return replies
        except ConnectionResetError:
            return replies
        except socket.timeout:
            raise AssertionError("server neither answered nor closed within"
                                 " %.0fs; replies so far: %r"
                                 % (timeout, replies))


def nothing_to_read(sock, wait=0.3):
    """True if no byte (and no EOF) is readable within @wait seconds."""
    r, _, _ = select.select([sock], [], [], wait)
    return not r


def smtplib_send(d, msg, sender=SENDER, rcpts=("enquiries@council.example",)):
    """MAIL/RCPT/DATA with smtplib; returns the (code, text) of DATA."""
    s = d.smtp()
    try:
        s.ehlo("client.example")
        code, text = s.mail(sender)
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        return s.data(msg)
    finally:
        s.quit()


def case_by_subject(cases, subject):
    hits = [c for c in cases if c["subject"] == subject]
    assert len(hits) == 1, "want one case with subject %r, have %r" % (
        subject, cases)
    return hits[0]


def smuggling_payload_dir():
    """The DATA payloads of the smuggling corpus: tests/data first, then
    the shared corpus; None if neither exists."""
    for d in (os.path.join(ROOT, "tests", "data", "smtp-smuggling",
                           "data-payloads"),
              os.path.join(ROOT, "tests", "data", "smtp-smuggling"),
              os.path.join(SHARED, "corpus", "mail", "smtp-smuggling-vectors",
                           "data-payloads")):
        if glob.glob(os.path.join(d, "*.bin")):
            return d
    return None


def assert_log_clean(testcase, d, secrets):
    log = d.log()
    for s in secrets:
        testcase.assertNotIn(s.lower(), log.lower(),
                             "the log shows %r:\n%s" % (s, log[-4000:]))


# ------------------------------------------------------ basic delivery

class SmtpDeliveryTest(unittest.TestCase):

    def test_smtplib_queued_and_case(self):
        """smtplib: 250 "Ok: queued as <id>" after DATA, then one case with
        the sender, subject and Message-ID of the message (issue 2)."""
        with Daemon() as d:
            msg = message(subject="Bin collection missed",
                          sender="Jo Citizen <jo.citizen@example.org>",
                          msgid="<bins-1@test.example>")
            code, text = smtplib_send(d, msg, sender="jo.citizen@example.org")
            self.assertEqual(code, 250, text)
            self.assertRegex(text.decode(),
                             r"^2\.0\.0 Ok: queued as [0-9A-Za-z]+$")
            cases = d.wait_cases(1)
            self.assertEqual(len(cases), 1, cases)
            c = cases[0]
            self.assertEqual(c["subject"], "Bin collection missed")
            self.assertEqual(c["from"], "jo.citizen@example.org")
            self.assertEqual(c["queue"], "general")
            self.assertEqual(c["status"], "new")
            self.assertEqual(c["message_id"], "bins-1@test.example")
            self.assertEqual(c["messages"], 1)
            self.assertTrue(c["ref"].startswith("ESC-"), c)
            assert_log_clean(self, d, ["jo.citizen", "Bin collection"])

    def test_rfc2047_subject_decoded(self):
        """An RFC 2047 encoded Subject is shown decoded in the case."""
        with Daemon() as d:
            subject = "=?UTF-8?B?w5xiZXJ3ZWlzdW5nIGRlciBHZWLDvGhy?="
            code, text = smtplib_send(d, message(subject=subject))
            self.assertEqual(code, 250, text)
            c = d.wait_cases(1)[0]
            self.assertEqual(c["subject"], "Überweisung der Gebühr")

    def test_plus_addressing_and_rcpt_casing(self):
        """foi+x@council.example is accepted for foi@; so is the domain in
        capitals; two recipients, one message, one case."""
        with Daemon() as d:
            code, text = smtplib_send(
                d, message(subject="plus addressing"),
                rcpts=("foi+ref-123@council.example",
                       "complaints@COUNCIL.example"))
            self.assertEqual(code, 250, text)
            cases = d.wait_cases(1)
            self.assertEqual(len(cases), 1, cases)
            self.assertEqual(cases[0]["subject"], "plus addressing")

    def test_ehlo_extensions_vrfy_expn(self):
        """EHLO announces PIPELINING, SIZE <configured limit>, 8BITMIME,
        ENHANCEDSTATUSCODES and no STARTTLS without a certificate; VRFY is
        252 (no address oracle), EXPN 502."""
        with Daemon(smtp={"max_message_size": 1048576}) as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                lines = [l[4:] for l in ehlo(raw).split("\n")][1:]
                self.assertEqual(lines, ["PIPELINING", "SIZE 1048576",
                                         "8BITMIME", "ENHANCEDSTATUSCODES"])
                code, text = raw.cmd(b"VRFY foi@council.example")
                self.assertEqual(code, 252, text)
                code, text = raw.cmd(b"VRFY nosuch@council.example")
                self.assertEqual(code, 252, text)
                code, text = raw.cmd(b"EXPN foi@council.example")
                self.assertEqual(code, 502, text)
                code, text = raw.cmd(b"QUIT")
                self.assertEqual(code, 221, text)
                self.assertTrue(raw.closed())
            finally:
                raw.close()

    def test_curl_upload(self):
        """curl smtp:// --mail-from --mail-rcpt --upload-file delivers."""
        if shutil.which("curl") is None:
            self.skipTest("curl is not installed")
        with Daemon() as d, tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "mail.eml")
            with open(path, "wb") as f:
                f.write(message(subject="Sent with curl",
                                sender="curl.user@example.org"))
            r = subprocess.run(
                ["curl", "-sS", "--max-time", "20",
                 "--url", "smtp://127.0.0.1:%d" % d.port,
                 "--mail-from", "curl.user@example.org",
                 "--mail-rcpt", "enquiries@council.example",
                 "--upload-file", path],
                capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            c = d.wait_cases(1)[0]
            self.assertEqual(c["subject"], "Sent with curl")
            self.assertEqual(c["from"], "curl.user@example.org")

    def test_swaks(self):
        """swaks --server --to --from --header Subject delivers."""
        if shutil.which("swaks") is None:
            self.skipTest("swaks is not installed")
        with Daemon() as d:
            r = subprocess.run(
                ["swaks", "--server", "127.0.0.1:%d" % d.port,
                 "--to", "complaints@council.example",
                 "--from", "swaks.user@example.org",
                 "--header", "Subject: Sent with swaks",
                 "--timeout", "20"],
                capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertRegex(r.stdout, r"<[-~] +250 2\.0\.0 Ok: queued as ")
            c = d.wait_cases(1)[0]
            self.assertEqual(c["subject"], "Sent with swaks")
            self.assertEqual(c["from"], "swaks.user@example.org")

    def test_null_sender(self):
        """SECURITY-TESTS 44: MAIL FROM:<> with a DSN body gets 250 and is
        stored."""
        dsn = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
               b"To: enquiries@council.example\r\n"
               b"Subject: Undelivered Mail Returned to Sender\r\n"
               b"Message-ID: <dsn-44@mx.example.org>\r\n"
               b"Auto-Submitted: auto-replied\r\n"
               b"MIME-Version: 1.0\r\n"
               b"Content-Type: multipart/report; report-type=delivery-status;"
               b" boundary=\"b44\"\r\n\r\n"
               b"--b44\r\nContent-Type: text/plain\r\n\r\n"
               b"Your message could not be delivered.\r\n"
               b"--b44\r\nContent-Type: message/delivery-status\r\n\r\n"
               b"Reporting-MTA: dns; mx.example.org\r\n\r\n"
               b"Final-Recipient: rfc822; someone@example.org\r\n"
               b"Action: failed\r\nStatus: 5.1.1\r\n"
               b"--b44--\r\n")
        with Daemon() as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                ehlo(raw)
                code, text = raw.cmd(b"MAIL FROM:<>")
                self.assertEqual(code, 250, text)
                code, text = raw.cmd(b"RCPT TO:<enquiries@council.example>")
                self.assertEqual(code, 250, text)
                code, text = raw.cmd(b"DATA")
                self.assertEqual(code, 354, text)
                code, text = raw.cmd(dsn + b".")
                self.assertEqual(code, 250, text)
                self.assertIn("queued as", text)
            finally:
                raw.close()
            c = d.wait_cases(1)[0]
            self.assertEqual(c["subject"],
                             "Undelivered Mail Returned to Sender")

    def test_talk_before_greeting(self):
        """SECURITY-TESTS 9: commands sent before the 220 are never run as
        if the banner had been read: 554 5.5.0 and close."""
        with Daemon() as d:
            raw = Raw(d.port)
            try:
                raw.send(b"EHLO x.example\r\nMAIL FROM:<a@b.example>\r\n")
                replies = replies_until_closed(raw)
            finally:
                raw.close()
            self.assertEqual(replies[0][0], 220, replies)
            self.assertEqual(replies[1][0], 554, replies)
            self.assertIn("5.5.0", replies[1][1])
            self.assertEqual(len(replies), 2, replies)


# ------------------------------------------------------------ STARTTLS

class SmtpStartTlsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not tls_util.have_openssl():
            raise unittest.SkipTest("openssl is not installed")
        cls.tmp = tempfile.mkdtemp(prefix="intake-tls-")
        cls.cert, cls.key = tls_util.make_cert(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def daemon(self, **smtp):
        smtp.update({"tls_certificate": self.cert, "tls_key": self.key})
        return Daemon(smtp=smtp)

    def ctx(self):
        return tls_util.client_context(self.cert)

    def test_starttls_smtplib(self):
        """smtplib.starttls() against the test certificate, verified; EHLO
        after TLS does not offer STARTTLS; the message is stored."""
        with self.daemon() as d:
            s = d.smtp()
            try:
                s.ehlo("client.example")
                self.assertTrue(s.has_extn("starttls"), s.esmtp_features)
                code, text = s.starttls(context=self.ctx())
                self.assertEqual(code, 220, text)
                self.assertIsInstance(s.sock, ssl.SSLSocket)
                s.ehlo("client.example")
                self.assertFalse(s.has_extn("starttls"), s.esmtp_features)
                self.assertTrue(s.has_extn("pipelining"))
                s.mail(SENDER)
                code, text = s.rcpt("dataprotection@council.example")
                self.assertEqual(code, 250, text)
                code, text = s.data(message(subject="Over TLS"))
                self.assertEqual(code, 250, text)
            finally:
                s.quit()
            c = d.wait_cases(1)[0]
            self.assertEqual(c["subject"], "Over TLS")

    def test_starttls_plaintext_injection(self):
        """SECURITY-TESTS 12 (CVE-2011-0411): "STARTTLS\\r\\nRSET\\r\\n" in
        one segment; after the handshake the first and only reply is the
        250 for NOOP: the plaintext RSET was discarded."""
        with self.daemon() as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                ehlo(raw)
                raw.send(b"STARTTLS\r\nRSET\r\n")
                code, text = raw.reply()
                self.assertEqual(code, 220, text)
                self.assertIn("2.0.0", text)
                self.assertEqual(raw.buf, b"", "plaintext after the 220")
                raw.s = self.ctx().wrap_socket(raw.s,
                                               server_hostname="localhost")
                # NOOP then QUIT: exactly 250 then 221 and close.  A reply
                # to the injected RSET would show up as a second 250.
                raw.send(b"NOOP\r\n")
                code, text = raw.reply()
                self.assertEqual((code, text), (250, "250 2.0.0 Ok"))
                raw.send(b"QUIT\r\n")
                rest = replies_until_closed(raw)
                self.assertEqual([r[0] for r in rest], [221], rest)
            finally:
                raw.close()

    def test_starttls_state_reset(self):
        """SECURITY-TESTS 13: MAIL before STARTTLS is forgotten (RCPT after
        the handshake gets 503 5.5.1); the post-TLS EHLO has no STARTTLS."""
        with self.daemon() as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                self.assertIn("STARTTLS", ehlo(raw))
                self.assertEqual(raw.cmd(b"MAIL FROM:<x@sender.example>")[0],
                                 250)
                self.assertEqual(raw.cmd(b"STARTTLS")[0], 220)
                raw.s = self.ctx().wrap_socket(raw.s,
                                               server_hostname="localhost")
                code, text = raw.cmd(b"RCPT TO:<foi@council.example>")
                self.assertEqual(code, 503, text)
                self.assertIn("5.5.1", text)
                text = ehlo(raw)
                self.assertNotIn("STARTTLS", text)
                self.assertIn("PIPELINING", text)
                # And a full transaction works inside TLS.
                self.assertEqual(raw.cmd(b"MAIL FROM:<x@sender.example>")[0],
                                 250)
                self.assertEqual(raw.cmd(b"RCPT TO:<foi@council.example>")[0],
                                 250)
                self.assertEqual(raw.cmd(b"DATA")[0], 354)
                code, text = raw.cmd(message(subject="after reset") + b".")
                self.assertEqual(code, 250, text)
            finally:
                raw.close()
            self.assertEqual(d.wait_cases(1)[0]["subject"], "after reset")

    def test_starttls_abuse(self):
        """SECURITY-TESTS 14: "STARTTLS foo" is 501 5.5.4; STARTTLS inside
        TLS is refused (554/503) and the session goes on."""
        with self.daemon() as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                ehlo(raw)
                code, text = raw.cmd(b"STARTTLS foo")
                self.assertEqual(code, 501, text)
                self.assertIn("5.5.4", text)
                self.assertEqual(raw.cmd(b"STARTTLS")[0], 220)
                raw.s = self.ctx().wrap_socket(raw.s,
                                               server_hostname="localhost")
                ehlo(raw)
                code, text = raw.cmd(b"STARTTLS")
                self.assertIn(code, (503, 554), text)
                self.assertEqual(raw.cmd(b"NOOP")[0], 250)
            finally:
                raw.close()

    def test_tls_handshake_stall(self):
        """SECURITY-TESTS 15: STARTTLS, half a ClientHello, silence: with
        timeout = 2 the connection is closed within a few seconds, the
        slot is freed and the SMTP child neither crashes nor logs a GLib
        critical."""
        with self.daemon(timeout=2, max_sessions_per_client=1) as d:
            child = d.children()
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                self.assertEqual(raw.cmd(b"STARTTLS")[0], 220)
                # TLS record header and the start of a ClientHello.
                raw.send(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03")
                t0 = time.time()
                self.assertTrue(raw.closed(timeout=8),
                                "stalled handshake not cut")
                self.assertLess(time.time() - t0, 6)
            finally:
                raw.close()
            # The slot is free again (per-client limit 1).
            deadline = time.time() + 30
            while True:
                other = Raw(d.port)
                code, text = other.reply()
                other.close()
                if code == 220 or time.time() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(code, 220, text)
            self.assertEqual(d.children(), child, "the SMTP child restarted")

    def test_curl_starttls(self):
        """curl --ssl-reqd with the test CA: STARTTLS, verified, delivered."""
        if shutil.which("curl") is None:
            self.skipTest("curl is not installed")
        with self.daemon() as d, tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "mail.eml")
            with open(path, "wb") as f:
                f.write(message(subject="curl over TLS"))
            r = subprocess.run(
                ["curl", "-sS", "--max-time", "20", "--ssl-reqd",
                 "--cacert", self.cert,
                 "--url", "smtp://127.0.0.1:%d" % d.port,
                 "--mail-from", SENDER, "--mail-rcpt", RCPT,
                 "--upload-file", path],
                capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(d.wait_cases(1)[0]["subject"], "curl over TLS")

    def test_swaks_tls(self):
        """swaks --tls (verifying the test CA) delivers."""
        if shutil.which("swaks") is None:
            self.skipTest("swaks is not installed")
        support = subprocess.run(["swaks", "--support"], capture_output=True,
                                 text=True, timeout=30)
        if "TLS supported" not in support.stdout + support.stderr:
            self.skipTest("this swaks has no TLS (Debian package "
                          "libnet-ssleay-perl is missing)")
        with self.daemon() as d:
            r = subprocess.run(
                ["swaks", "--server", "127.0.0.1:%d" % d.port, "--tls",
                 "--tls-verify", "--tls-ca-path", self.cert,
                 "--to", RCPT, "--from", "swaks.tls@example.org",
                 "--header", "Subject: swaks over TLS", "--timeout", "20"],
                capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("STARTTLS", r.stdout)
            self.assertEqual(d.wait_cases(1)[0]["subject"], "swaks over TLS")


# ------------------------------------------------- relay and addresses

class SmtpRecipientTest(unittest.TestCase):

    RELAY_FORMS = [
        b"victim@mail.example",
        b"victim%mail.example@council.example",
        b"@council.example:victim@mail.example",
        b"\"victim@mail.example\"@council.example",
        b"council.example!victim@mail.example",
        b"victim@mail.example@council.example",
    ]

    def rcpt_reply(self, d, address):
        raw = Raw(d.port)
        try:
            self.assertEqual(raw.reply()[0], 220)
            ehlo(raw)
            self.assertEqual(raw.cmd(b"MAIL FROM:<a@sender.example>")[0], 250)
            reply = raw.cmd(b"RCPT TO:<" + address + b">")
            # Nothing was accepted, so DATA must not open.
            data = raw.cmd(b"DATA")
            return reply, data
        finally:
            raw.close()

    def test_open_relay_refused(self):
        """SECURITY-TESTS 28: every relay form gets 554 5.7.1 or 550 5.1.1
        at RCPT, and DATA does not open."""
        with Daemon() as d:
            for addr in self.RELAY_FORMS:
                with self.subTest(address=addr):
                    (code, text), (dcode, dtext) = self.rcpt_reply(d, addr)
                    self.assertNotEqual(code, 250, text)
                    self.assertNotEqual(dcode, 354, dtext)
                    self.assertTrue((code == 554 and " 5.7.1 " in text)
                                    or (code == 550 and " 5.1.1 " in text),
                                    "RCPT TO:<%s> -> %r; want 554 5.7.1 or "
                                    "550 5.1.1" % (addr.decode(), text))
            # A plain other domain is the relay case proper: 554 5.7.1.
            (code, text), _ = self.rcpt_reply(d, b"victim@mail.example")
            self.assertEqual(code, 554, text)
            self.assertIn("5.7.1", text)
            (code, text), _ = self.rcpt_reply(d, b"foi@sub.council.example")
            self.assertEqual(code, 554, text)
            self.assertEqual(wait_spool_empty(d), [])

    def test_unknown_local_recipient(self):
        """SECURITY-TESTS 29: an unknown local mailbox gets 550 5.1.1 at
        RCPT time (no accept-then-bounce), also with a +detail."""
        with Daemon() as d:
            for addr in (b"nosuchdept@council.example",
                         b"nosuchdept+foi@council.example"):
                with self.subTest(address=addr):
                    (code, text), (dcode, dtext) = self.rcpt_reply(d, addr)
                    self.assertEqual(code, 550, text)
                    self.assertIn("5.1.1", text)
                    self.assertNotEqual(dcode, 354, dtext)


    def test_envelope_injection(self):
        """SECURITY-TESTS 19, 30, 32: NUL, shell and format metacharacters
        and control characters in EHLO/MAIL/RCPT get 500/501 (or 550),
        never 250; nothing is run and the log shows none of it."""
        cases = [
            (b"MAIL FROM:<a\x00b@sender.example>", (500, 501)),
            (b"MAIL FROM:<;sleep 5;@sender.example>", (501, 550)),
            (b"MAIL FROM:<%n%n%s%s@sender.example>", (501, 550)),
            (b"MAIL FROM:<a@sender.example> X-FOO=\x7f", (501,)),
            (b"EHLO a\x0bb\x1b[2J", (501,)),
        ]
        rcpt_cases = [
            (b"RCPT TO:<foi@council.example\x00@evil.example>", (500, 501)),
            (b"RCPT TO:<${run{/bin/sh -c \"id\"}}@council.example>",
             (501, 550)),
        ]
        with Daemon() as d:
            for line, codes in cases + rcpt_cases:
                with self.subTest(line=line):
                    raw = Raw(d.port)
                    try:
                        self.assertEqual(raw.reply()[0], 220)
                        ehlo(raw)
                        if line.startswith(b"RCPT"):
                            self.assertEqual(
                                raw.cmd(b"MAIL FROM:<a@sender.example>")[0],
                                250)
                        code, text = raw.cmd(line)
                        self.assertIn(code, codes, text)
                        # The session goes on.
                        self.assertEqual(raw.cmd(b"NOOP")[0], 250)
                    finally:
                        raw.close()
            self.assertEqual(wait_spool_empty(d), [])
            d.stop()
            assert_log_clean(self, d, ["sleep 5", "%n%n", "/bin/sh",
                                       "evil.example", "\x1b", "\x0b"])

    def test_unterminated_and_huge_lines(self):
        """SECURITY-TESTS 18, 31: a command line with no LF, or a 100,000
        octet EHLO, gets 500 5.5.2 and, past the cap, 421 and close."""
        with Daemon(smtp={"max_line_length": 512}) as d:
            for data in (b"A" * 8192, b"EHLO " + b"A" * 100000 + b"\r\n"):
                with self.subTest(length=len(data)):
                    raw = Raw(d.port)
                    try:
                        self.assertEqual(raw.reply()[0], 220)
                        try:
                            raw.send(data)
                        except (BrokenPipeError, ConnectionResetError):
                            pass
                        replies = replies_until_closed(raw)
                    finally:
                        raw.close()
                    self.assertGreaterEqual(len(replies), 1)
                    self.assertEqual(replies[0][0], 500, replies)
                    self.assertIn("5.5.2", replies[0][1])
                    self.assertEqual(replies[-1][0], 421, replies)
            # The daemon is still there for the next client.
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                self.assertEqual(raw.cmd(b"NOOP")[0], 250)
            finally:
                raw.close()


# ---------------------------------------------------------- smuggling

class SmtpSmugglingTest(unittest.TestCase):
    """SECURITY-TESTS 1-5 over the wire, with the payload corpus."""

    def payloads(self):
        d = smuggling_payload_dir()
        if d is None:
            self.skipTest("no smuggling payloads: neither tests/data/"
                          "smtp-smuggling/data-payloads nor shared/corpus/"
                          "mail/smtp-smuggling-vectors/data-payloads exists")
        files = sorted(glob.glob(os.path.join(d, "*.bin")))
        self.assertGreaterEqual(len(files), 10, d)
        out = []
        for i, path in enumerate(files):
            with open(path, "rb") as f:
                data = f.read()
            # The payloads bring their own end of data.
            self.assertIn(b"\r\n.\r\n", data, path)
            # The store keeps identical bytes once; make each one unique so
            # that every accepted payload must show up as a case.
            self.assertIn(b"<probe@example.test>", data, path)
            data = data.replace(b"<probe@example.test>",
                                b"<probe-%d-%s@example.test>"
                                % (i, os.urandom(4).hex().encode()), 1)
            out.append((os.path.basename(path), data))
        return out

    def run_payload(self, d, name, data):
        """Send P + @data (+ QUIT unless it has its own); returns the
        replies after the 354 and the number of new cases."""
        before = len(wait_spool_empty(d))
        raw = Raw(d.port)
        try:
            preamble(raw)
            if not data.endswith(b"QUIT\r\n"):
                data += b"QUIT\r\n"
            raw.send(data)
            replies = replies_until_closed(raw)
        finally:
            raw.close()
        oks = [r for r in replies if r[0] == 250]
        if oks:
            # Nothing that got a 250 may be lost.
            d.wait_cases(before + 1)
        cases = wait_spool_empty(d)
        for c in cases:
            self.assertNotEqual(c["subject"], "SMUGGLED", (name, replies))
        return replies, oks, len(cases) - before

    def test_smuggling_payloads_reject(self):
        """SECURITY-TESTS 1-5, bare_newline = reject (default): per payload
        exactly one reply to the transaction (250, or 550 5.5.2 for bare
        LF/CR), never a second 250, at most one new case."""
        payloads = self.payloads()
        with Daemon() as d:
            for name, data in payloads:
                with self.subTest(payload=name):
                    replies, oks, grew = self.run_payload(d, name, data)
                    self.assertLessEqual(len(oks), 1, replies)
                    self.assertLessEqual(grew, 1, replies)
                    self.assertEqual(grew, len(oks), replies)
                    first = replies[0]
                    self.assertIn(first[0], (250, 550), replies)
                    if first[0] == 550:
                        self.assertIn("5.5.2", first[1])
                    bare = (b"\n" in data.replace(b"\r\n", b"")
                            or b"\r" in data.replace(b"\r\n", b""))
                    if bare:
                        self.assertEqual(first[0], 550,
                                         "bare LF/CR accepted: %r" % replies)
                    # Then only the QUIT: 221 and close.
                    self.assertEqual([r[0] for r in replies[1:]], [221],
                                     replies)

    def test_smuggling_payloads_normalise(self):
        """SECURITY-TESTS 1-5, 7 with bare_newline = normalise: every
        payload is exactly one message (one 250, one case), never split."""
        payloads = self.payloads()
        with Daemon(smtp={"bare_newline": "normalise"}) as d:
            for name, data in payloads:
                with self.subTest(payload=name):
                    replies, oks, grew = self.run_payload(d, name, data)
                    self.assertEqual(len(oks), 1, replies)
                    self.assertEqual(grew, 1, replies)
                    self.assertEqual([r[0] for r in replies], [250, 221],
                                     replies)
            cases = d.cases()
            self.assertEqual(len(cases), len(payloads))
            for c in cases:
                self.assertEqual(c["subject"], "smuggling probe", c)


# --------------------------------------------------------------- limits

class SmtpLimitsTest(unittest.TestCase):

    def test_size_parameter_too_big(self):
        """SECURITY-TESTS 20: SIZE= above max_message_size is 552 5.3.4 at
        MAIL; SIZE equal to the limit is accepted."""
        with Daemon(smtp={"max_message_size": 65536}) as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                self.assertIn("SIZE 65536", ehlo(raw))
                for size in (b"65537", b"999999999999"):
                    code, text = raw.cmd(b"MAIL FROM:<a@sender.example> SIZE="
                                         + size)
                    self.assertEqual(code, 552, text)
                    self.assertIn("5.3.4", text)
                code, text = raw.cmd(b"MAIL FROM:<a@sender.example>"
                                     b" SIZE=65536")
                self.assertEqual(code, 250, text)
            finally:
                raw.close()

    def test_size_parameter_garbage(self):
        """SECURITY-TESTS 21: SIZE=2^64 (and -1, 1e9, empty, hex) gets 501
        or 552, never 250 (no integer wrap)."""
        with Daemon(smtp={"max_message_size": 65536}) as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                ehlo(raw)
                for size in (b"18446744073709551616", b"18446744073709551617",
                             b"36893488147419103232", b"-1", b"1e9", b"",
                             b"0x10"):
                    with self.subTest(size=size):
                        code, text = raw.cmd(b"MAIL FROM:<a@sender.example>"
                                             b" SIZE=" + size)
                        self.assertIn(code, (501, 552), text)
                        self.assertEqual(raw.cmd(b"RSET")[0], 250)
            finally:
                raw.close()

    def test_oversized_message_without_size(self):
        """SECURITY-TESTS 22: a message over max_message_size without SIZE=
        is read to the end of data, then 552 5.3.4; nothing stored; the
        session goes on."""
        with Daemon(smtp={"max_message_size": 65536}) as d:
            raw = Raw(d.port)
            try:
                preamble(raw)
                body = message(subject="too big",
                               body="x" * 78 + "\r\n") + \
                    (b"y" * 78 + b"\r\n") * 2600          # ~200 KiB
                raw.send(body)
                # No reply in the middle of DATA.
                if not nothing_to_read(raw.s):
                    self.fail("reply before the end of data: %r"
                              % raw.s.recv(4096))
                code, text = raw.cmd(b".")
                self.assertEqual(code, 552, text)
                self.assertIn("5.3.4", text)
                # The rest of the body was swallowed as data, not commands.
                code, text = raw.cmd(b"NOOP")
                self.assertEqual(code, 250, text)
            finally:
                raw.close()
            self.assertEqual(wait_spool_empty(d), [])

    def test_header_section_over_default_limit(self):
        """SECURITY-TESTS 24 at the shipped limits: a header field folded
        40,000 times (2 MiB, over the 1 MiB max_header_size default, in a
        message under the 25 MiB max_message_size) is read to the end of
        data, then 552 5.3.4; nothing stored; the next transaction of the
        same session is accepted."""
        with Daemon() as d:
            raw = Raw(d.port)
            try:
                preamble(raw)
                head = (b"From: a@example.org\r\nSubject: folded\r\n"
                        b"X-Pad: start\r\n" + b"\tfold-fold-fold-fold-fold-"
                        b"fold-fold-fold-fold-fold\r\n" * 40000)
                self.assertGreater(len(head), 2 * 1024 * 1024 - 100000)
                raw.send(head + b"\r\nbody\r\n")
                code, text = raw.cmd(b".")
                self.assertEqual(code, 552, text)
                self.assertIn("5.3.4", text)
                for cmd, want in ((b"MAIL FROM:<" + SENDER.encode() + b">",
                                   250),
                                  (b"RCPT TO:<" + RCPT.encode() + b">", 250),
                                  (b"DATA", 354)):
                    code, text = raw.cmd(cmd)
                    self.assertEqual(code, want, text)
                raw.send(message(subject="next", body="fine\r\n"))
                code, text = raw.cmd(b".")
                self.assertEqual(code, 250, text)
            finally:
                raw.close()
            cases = d.wait_cases(1)
            self.assertEqual(len(cases), 1)

    def test_too_many_recipients(self):
        """SECURITY-TESTS 23: with max_recipients = 100, 150 RCPTs get 100 x
        250 then 452 4.5.3; the message is accepted for the 100."""
        with Daemon(smtp={"max_recipients": 100}) as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                ehlo(raw)
                self.assertEqual(raw.cmd(b"MAIL FROM:<a@sender.example>")[0],
                                 250)
                replies = [raw.cmd(b"RCPT TO:<foi+%d@council.example>" % n)
                           for n in range(150)]
                codes = [r[0] for r in replies]
                self.assertEqual(codes, [250] * 100 + [452] * 50, replies)
                for r in replies[100:]:
                    self.assertIn("4.5.3", r[1])
                self.assertEqual(raw.cmd(b"DATA")[0], 354)
                code, text = raw.cmd(message(subject="hundred") + b".")
                self.assertEqual(code, 250, text)
            finally:
                raw.close()
            self.assertEqual(d.wait_cases(1)[0]["subject"], "hundred")

    def test_max_errors(self):
        """SECURITY-TESTS 16: with max_errors = 3, junk commands get 502
        until the third, then 421 4.7.0 and close."""
        with Daemon(smtp={"max_errors": 3}) as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                for _ in range(2):
                    code, text = raw.cmd(b"XYZZY")
                    self.assertIn(code, (500, 502), text)
                raw.send(b"XYZZY\r\n")
                replies = replies_until_closed(raw)
            finally:
                raw.close()
            codes = [r[0] for r in replies]
            self.assertIn(codes, ([502, 421], [500, 421]), replies)
            self.assertIn("4.7.0", replies[-1][1])

    def _open(self, port):
        raw = Raw(port)
        return raw, raw.reply()

    def _session_limit(self, smtp, what):
        with Daemon(smtp=smtp) as d:
            a, ra = self._open(d.port)
            b, rb = self._open(d.port)
            c = None
            try:
                self.assertEqual(ra[0], 220)
                self.assertEqual(rb[0], 220)
                c, rc = self._open(d.port)
                self.assertEqual(rc[0], 421, rc)
                self.assertIn("4.7.0", rc[1])
                self.assertIn(what, rc[1])
                self.assertTrue(c.closed())
                c.close()
                # The two sessions still work.
                self.assertEqual(a.cmd(b"NOOP")[0], 250)
                self.assertEqual(b.cmd(b"NOOP")[0], 250)
                # Closing one frees its slot (poll: the server notices the
                # close asynchronously).
                self.assertEqual(a.cmd(b"QUIT")[0], 221)
                self.assertTrue(a.closed())
                deadline = time.time() + 30
                while True:
                    c, rc = self._open(d.port)
                    if rc[0] == 220 or time.time() > deadline:
                        break
                    c.close()
                    time.sleep(0.05)
                self.assertEqual(rc[0], 220, rc)
            finally:
                for s in (a, b, c):
                    if s is not None:
                        s.close()

    def test_max_sessions_per_client(self):
        """SECURITY-TESTS 26: max_sessions_per_client = 2: the third
        connection from 127.0.0.1 gets 421 4.7.0 and is closed."""
        self._session_limit({"max_sessions_per_client": 2}, "connections")

    def test_max_sessions(self):
        """max_sessions = 2: the third connection gets 421 4.7.0."""
        self._session_limit({"max_sessions": 2}, "sessions")

    def _trickle(self, raw, chunk, limit_s):
        """Send @chunk one byte at a time, 5 bytes a second, until the
        server answers; returns (reply, seconds)."""
        t0 = time.time()
        i = 0
        while time.time() - t0 < limit_s:
            try:
                raw.send(chunk[i % len(chunk):i % len(chunk) + 1])
            except (BrokenPipeError, ConnectionResetError):
                pass
            i += 1
            r, _, _ = select.select([raw.s], [], [], 0.2)
            if r:
                return raw.reply(), time.time() - t0
        self.fail("no reply to a trickling client within %ds" % limit_s)

    def test_slow_data(self):
        """SECURITY-TESTS 27: timeout = 2, min_data_rate = 100 B/s; a
        client sending DATA at 5 B/s gets 421 4.4.2 within a few seconds,
        and nothing is stored."""
        with Daemon(smtp={"timeout": 2, "min_data_rate": 100}) as d:
            raw = Raw(d.port)
            try:
                preamble(raw)
                (code, text), took = self._trickle(
                    raw, b"Subject: slow\r\n\r\nslow body line\r\n", 8)
                self.assertEqual(code, 421, text)
                self.assertIn("4.4.2", text)
                self.assertLess(took, 5.0)
                self.assertTrue(raw.closed())
            finally:
                raw.close()
            self.assertEqual(wait_spool_empty(d), [])

    def test_slow_command_line(self):
        """SECURITY-TESTS 26 (slowloris): a command line trickled at 5 B/s
        is cut by the per-request deadline (421 4.4.2), and so is a client
        that says nothing at all."""
        with Daemon(smtp={"timeout": 2, "min_data_rate": 100}) as d:
            idle = Raw(d.port)
            raw = Raw(d.port)
            try:
                self.assertEqual(idle.reply()[0], 220)
                self.assertEqual(raw.reply()[0], 220)
                (code, text), took = self._trickle(
                    raw, b"HELO " + b"a" * 200, 8)
                self.assertEqual(code, 421, text)
                self.assertIn("4.4.2", text)
                self.assertLess(took, 5.0)
                self.assertTrue(raw.closed())
                # A client that says nothing is cut by the same timeout.
                self.assertEqual([r[0] for r in replies_until_closed(idle, 5)],
                                 [421])
            finally:
                raw.close()
                idle.close()

    def test_overlong_command_line(self):
        """SECURITY-TESTS 17: with max_line_length = 512 a 600-octet MAIL
        gets 500 5.5.2; the session continues (NOOP answered)."""
        with Daemon(smtp={"max_line_length": 512}) as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                ehlo(raw)
                code, text = raw.cmd(b"MAIL FROM:<" + b"a" * 600
                                     + b"@sender.example>")
                self.assertEqual(code, 500, text)
                self.assertIn("5.5.2", text)
                code, text = raw.cmd(b"NOOP")
                self.assertEqual(code, 250, text)
                # No transaction was started by the tail of the long line.
                code, text = raw.cmd(b"MAIL FROM:<a@sender.example>")
                self.assertEqual(code, 250, text)
            finally:
                raw.close()

    def test_hop_count(self):
        """SECURITY-TESTS 50: max_hops = 100: 100 Received: headers pass,
        101 get 554 5.4.6 and nothing is stored."""
        def hops(n, tag):
            rcvd = "".join("Received: from hop%d.example by hop%d.example;"
                           " Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i + 1)
                           for i in range(n))
            return (rcvd.encode() + message(subject=tag))

        with Daemon(smtp={"max_hops": 100}) as d:
            raw = Raw(d.port)
            try:
                preamble(raw)
                code, text = raw.cmd(hops(101, "looping") + b".")
                self.assertEqual(code, 554, text)
                self.assertIn("5.4.6", text)
                self.assertEqual(raw.cmd(b"MAIL FROM:<a@sender.example>")[0],
                                 250)
                self.assertEqual(raw.cmd(b"RCPT TO:<foi@council.example>")[0],
                                 250)
                self.assertEqual(raw.cmd(b"DATA")[0], 354)
                code, text = raw.cmd(hops(100, "hundred hops") + b".")
                self.assertEqual(code, 250, text)
            finally:
                raw.close()
            cases = d.wait_cases(1)
            self.assertEqual([c["subject"] for c in cases], ["hundred hops"])


# ----------------------------------------------------------- pipelining

class SmtpPipeliningTest(unittest.TestCase):

    def test_legitimate_pipelining(self):
        """SECURITY-TESTS 11: MAIL, RCPT, RCPT, DATA in one write after
        EHLO: exactly 250 250 250 354, in order."""
        with Daemon() as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                self.assertIn("PIPELINING", ehlo(raw))
                raw.send(b"MAIL FROM:<a@sender.example>\r\n"
                         b"RCPT TO:<foi@council.example>\r\n"
                         b"RCPT TO:<complaints@council.example>\r\n"
                         b"DATA\r\n")
                codes = [raw.reply()[0] for _ in range(4)]
                self.assertEqual(codes, [250, 250, 250, 354])
                self.assertEqual(raw.buf, b"")
                code, text = raw.cmd(message(subject="pipelined") + b".")
                self.assertEqual(code, 250, text)
                raw.send(b"QUIT\r\n")
                self.assertEqual([r[0] for r in replies_until_closed(raw)],
                                 [221])
            finally:
                raw.close()
            self.assertEqual(d.wait_cases(1)[0]["subject"], "pipelined")

    def test_pipelining_after_end_of_data(self):
        """RFC 2920 3.1: the message content may open a group: "." then
        MAIL, RCPT, DATA in one write gets 250 (queued), 250, 250, 354,
        and both messages are stored."""
        with Daemon() as d:
            raw = Raw(d.port)
            try:
                preamble(raw)
                raw.send(message(subject="first of two") + b".\r\n"
                         b"MAIL FROM:<a@sender.example>\r\n"
                         b"RCPT TO:<foi@council.example>\r\n"
                         b"DATA\r\n")
                replies = [raw.reply() for _ in range(4)]
                self.assertEqual([r[0] for r in replies], [250, 250, 250, 354],
                                 replies)
                self.assertIn("queued as", replies[0][1])
                code, text = raw.cmd(message(subject="second of two") + b".")
                self.assertEqual(code, 250, text)
            finally:
                raw.close()
            cases = d.wait_cases(2)
            self.assertEqual(sorted(c["subject"] for c in cases),
                             ["first of two", "second of two"])

    def test_data_body_pipelined(self):
        """SECURITY-TESTS 10: MAIL, RCPT, DATA and the body in one write:
        250, 250, 554 5.5.0 and close; nothing stored."""
        with Daemon() as d:
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                ehlo(raw)
                raw.send(b"MAIL FROM:<a@sender.example>\r\n"
                         b"RCPT TO:<foi@council.example>\r\n"
                         b"DATA\r\n"
                         b"Subject: x\r\n\r\nbody\r\n.\r\n")
                replies = replies_until_closed(raw)
            finally:
                raw.close()
            self.assertEqual([r[0] for r in replies], [250, 250, 554],
                             replies)
            self.assertIn("5.5.0", replies[2][1])
            self.assertEqual(wait_spool_empty(d), [])


# ------------------------------------------------ shutdown, privileges

class SmtpLifecycleTest(unittest.TestCase):

    def test_sigterm_during_transaction(self):
        """SIGTERM with sessions open (after RCPT, inside DATA, idle): each
        gets 421, the daemon exits 0, and every message that got 250 before
        is in the database after a restart."""
        d = Daemon()
        d.start()
        try:
            subjects = ["before stop %d" % i for i in range(3)]
            for s in subjects:
                code, text = smtplib_send(d, message(subject=s))
                self.assertEqual(code, 250, text)
            after_rcpt = Raw(d.port)
            self.assertEqual(after_rcpt.reply()[0], 220)
            ehlo(after_rcpt)
            for line in (b"MAIL FROM:<a@sender.example>",
                         b"RCPT TO:<foi@council.example>"):
                self.assertEqual(after_rcpt.cmd(line)[0], 250, line)
            in_data = Raw(d.port)
            preamble(in_data)
            in_data.send(b"Subject: half\r\n\r\nhalf a body\r\n")
            idle = Raw(d.port)
            self.assertEqual(idle.reply()[0], 220)
            # Every session has had a reply from the server, so all of
            # them are in the state named above when SIGTERM comes.
            self.assertEqual(after_rcpt.cmd(b"NOOP")[0], 250)

            rc = d.stop()
            self.assertEqual(rc, 0, d.log()[-3000:])
            for name, raw in (("after RCPT", after_rcpt), ("in DATA", in_data),
                              ("idle", idle)):
                with self.subTest(session=name):
                    replies = replies_until_closed(raw)
                    raw.close()
                    self.assertEqual([r[0] for r in replies], [421], replies)

            d.start()
            cases = d.wait_cases(3)
            self.assertEqual(sorted(c["subject"] for c in cases), subjects)
        finally:
            d.stop()
            d.check_sanitizers()

    def test_smtp_child_not_root(self):
        """Started as root, the SMTP child runs as the configured user
        (nobody), never uid 0."""
        if os.geteuid() != 0:
            self.skipTest("not running as root")
        with Daemon() as d:
            pids = d.children()
            self.assertEqual(len(pids), 1, pids)
            with open("/proc/%d/status" % pids[0]) as f:
                status = dict(line.split(":", 1) for line in f
                              if ":" in line)
            uids = [int(x) for x in status["Uid"].split()]
            gids = [int(x) for x in status["Gid"].split()]
            self.assertNotIn(0, uids, status["Uid"])
            self.assertNotIn(0, gids, status["Gid"])
            self.assertEqual(uids[0], pwd.getpwnam("nobody").pw_uid)
            # And it still works.
            code, text = smtplib_send(d, message(subject="as nobody"))
            self.assertEqual(code, 250, text)

    def test_log_hygiene(self):
        """The log never shows an address, a subject or body text: not of
        accepted messages, nor of refused recipients and senders."""
        secrets = ["q7x.sender@sender-q7x.example", "q7x.sender",
                   "sender-q7x.example", "foi+q7xdetail@council.example",
                   "q7xdetail", "Q7X confidential housing subject",
                   "confidential housing", "q7xbodytext",
                   "q7x.victim@relay-q7x.example", "relay-q7x.example",
                   "q7xnobody@council.example", "q7xnobody",
                   "hygiene header name q7x"]
        with Daemon() as d:
            code, text = smtplib_send(
                d, message(subject="Q7X confidential housing subject",
                           sender="Hygiene Header Name Q7X "
                                  "<q7x.sender@sender-q7x.example>",
                           body="q7xbodytext is private\r\n"),
                sender="q7x.sender@sender-q7x.example",
                rcpts=("foi+q7xdetail@council.example",))
            self.assertEqual(code, 250, text)
            raw = Raw(d.port)
            try:
                self.assertEqual(raw.reply()[0], 220)
                ehlo(raw)
                raw.cmd(b"MAIL FROM:<q7x.sender@sender-q7x.example>")
                self.assertEqual(
                    raw.cmd(b"RCPT TO:<q7x.victim@relay-q7x.example>")[0], 554)
                self.assertEqual(
                    raw.cmd(b"RCPT TO:<q7xnobody@council.example>")[0], 550)
                raw.cmd(b"VRFY q7xnobody@council.example")
                raw.cmd(b"RSET")
                self.assertEqual(raw.cmd(b"MAIL FROM:<q7x.sender@sender-q7x"
                                         b".example> SIZE=x")[0], 501)
            finally:
                raw.close()
            cases = d.wait_cases(1)
            self.assertEqual(cases[0]["subject"],
                             "Q7X confidential housing subject")
            d.stop()
            assert_log_clean(self, d, secrets)


if __name__ == "__main__":
    unittest.main()
