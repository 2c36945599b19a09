"""test_imap_rigs.py - the IMAP test rigs themselves work (issue 6).

Only Python's imaplib and raw sockets talk to them here; no intake code.
The private Dovecot (dovecot.py) is skipped, with the reason, when
dovecot-core / dovecot-imapd are not installed (`sh scripts/deps.sh test`
installs them); the fake server (fake_imap.py) needs nothing.
"""

import imaplib
import os
import socket
import ssl
import stat
import tempfile
import time
import unittest

import dovecot
from dovecot import Dovecot
from fake_imap import FakeImap, SCENARIOS

NO_DOVECOT = dovecot.why_unavailable()


def message(i, size=2048):
    head = ("From: Resident %d <r%d@example.org>\r\n"
            "To: enquiries@council.example\r\n"
            "Subject: Test message %d\r\n"
            "Message-ID: <rig-%d@example.org>\r\n\r\n" % (i, i, i, i)).encode()
    n = max(0, size - len(head) - 2)
    return head + (b"abcdefghij" * (n // 10 + 1))[:n] + b"\r\n"


@unittest.skipIf(NO_DOVECOT, NO_DOVECOT or "")
class DovecotRig(unittest.TestCase):
    def test_deliver_count_move(self):
        with Dovecot() as d:
            msgs = [message(i) for i in range(50)]
            t0 = time.time()
            self.assertEqual(d.deliver_many(msgs), 50)
            self.assertLess(time.time() - t0, 5)
            self.assertEqual(d.count("INBOX"), 50)
            self.assertEqual(d.uids("INBOX"), list(range(1, 51)))
            self.assertEqual(sorted(d.fetch_all_bodies().values()), sorted(msgs))
            d.create_folder("Processed")
            c = d.connect()
            c.select("INBOX")
            typ, _ = c.uid("MOVE", "1:10", "Processed")
            self.assertEqual(typ, "OK")
            c.logout()
            self.assertEqual(d.count("INBOX"), 40)
            self.assertEqual(d.count("Processed"), 10)
            self.assertEqual(sorted(d.fetch_all_bodies("Processed").values()),
                             sorted(msgs[:10]))
            # Nothing was read: BODY.PEEK[] leaves no \Seen.
            self.assertFalse(any(f for f in d.flags("INBOX").values()))
            self.assertIn("Processed", d.folders())

    def test_thousand_and_append_and_doveadm_save(self):
        with Dovecot() as d:
            t0 = time.time()
            d.deliver_many([message(i) for i in range(1000)])
            self.assertLess(time.time() - t0, 10)
            self.assertEqual(d.count(), 1000)
            uid = d.deliver(message(1000))
            self.assertEqual(uid, 1001)
            d.doveadm_save(message(1001), "INBOX")
            self.assertEqual(d.count(), 1002)
            d.deliver_many([message(i) for i in range(5)], folder="Archive/2024")
            self.assertEqual(d.count("Archive/2024"), 5)

    def test_idle_sees_delivery(self):
        """A message APPENDed during IDLE shows up in well under 2 s."""
        with Dovecot() as d:
            d.deliver(message(0))
            s = socket.create_connection(("127.0.0.1", d.port), 5)
            f = s.makefile("rwb")

            def cmd(line):
                f.write(line + b"\r\n")
                f.flush()

            def until(prefix):
                while True:
                    line = f.readline()
                    self.assertTrue(line, "connection closed")
                    if line.startswith(prefix):
                        return line
            f.readline()
            cmd(b'a LOGIN "%s" "%s"' % (d.user.encode(), d.password.encode()))
            until(b"a OK")
            cmd(b"b SELECT INBOX")
            until(b"b OK")
            cmd(b"c IDLE")
            until(b"+")
            t0 = time.time()
            d.deliver(message(1))
            s.settimeout(2)
            self.assertEqual(until(b"* 2 EXISTS").strip(), b"* 2 EXISTS")
            self.assertLess(time.time() - t0, 2)
            cmd(b"DONE")
            until(b"c OK")
            s.close()

    def test_uidvalidity_change(self):
        with Dovecot() as d:
            d.deliver_many([message(i) for i in range(3)])
            old = d.uidvalidity()
            new = d.change_uidvalidity()
            self.assertNotEqual(old, new)
            self.assertEqual(d.uidvalidity(), new)
            self.assertEqual(d.count(), 3)
            c = d.connect()
            c.select("INBOX")
            self.assertEqual(c.response("UIDVALIDITY")[1], [str(new).encode()])
            c.logout()

    def test_restart_keeps_messages(self):
        with Dovecot() as d:
            d.deliver_many([message(i) for i in range(5)])
            before = d.fetch_all_bodies()
            port = d.port
            c = d.connect()
            c.select("INBOX")
            d.restart()                     # graceful: the session gets BYE
            self.assertRaises((imaplib.IMAP4.abort, OSError), c.noop)
            self.assertEqual(d.port, port)
            self.assertEqual(d.fetch_all_bodies(), before)
            d.restart(hard=True)            # a crash: everything SIGKILLed
            self.assertEqual(d.fetch_all_bodies(), before)
            self.assertEqual(d.deliver(message(9)), 6)

    def test_password_file_and_sigkill_helpers(self):
        with Dovecot() as d, tempfile.TemporaryDirectory() as tmp:
            path = d.password_file(os.path.join(tmp, "pw"))
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            with open(path) as f:
                pw = f.read()
            c = imaplib.IMAP4("127.0.0.1", d.port)
            c.login(d.user, pw)
            c.select("INBOX")
            self.assertEqual(len(d.imap_pids()), 1)
            c.logout()
            bad = imaplib.IMAP4("127.0.0.1", d.port)
            self.assertRaises(imaplib.IMAP4.error, bad.login, d.user, pw + "x")

    def test_tls_self_signed(self):
        with Dovecot(tls="self-signed") as d:
            with self.assertRaises(ssl.SSLCertVerificationError):
                imaplib.IMAP4_SSL("127.0.0.1", d.tls_port,
                                  ssl_context=ssl.create_default_context())
            for host in ("localhost", "127.0.0.1"):
                c = imaplib.IMAP4_SSL(host, d.tls_port,
                                      ssl_context=d.client_context())
                c.login(d.user, d.password)
                c.logout()
            c = imaplib.IMAP4("localhost", d.port)
            self.assertIn("STARTTLS", c.capabilities)
            with self.assertRaises(ssl.SSLCertVerificationError):
                c.starttls(ssl.create_default_context())
            c = imaplib.IMAP4("localhost", d.port)
            c.starttls(d.client_context())
            c.login(d.user, d.password)
            c.logout()
            self.assertEqual(d.count(), 0)   # connect() does STARTTLS too

    def test_tls_other_host(self):
        with Dovecot(tls="other-host") as d:
            self.assertEqual(d.cert_host, "other.example")
            with self.assertRaises(ssl.SSLCertVerificationError):
                imaplib.IMAP4_SSL("127.0.0.1", d.tls_port,
                                  ssl_context=ssl.create_default_context())
            with self.assertRaises(ssl.SSLCertVerificationError) as cm:
                imaplib.IMAP4_SSL("localhost", d.tls_port,
                                  ssl_context=d.client_context())
            self.assertIn("mismatch", str(cm.exception).lower())
            c = imaplib.IMAP4_SSL("localhost", d.tls_port,
                                  ssl_context=d.client_context(check_hostname=False))
            c.login(d.user, d.password)
            c.logout()

    def test_plaintext_refused_off_loopback_pair(self):
        with Dovecot(tls="self-signed", host="127.0.0.2") as d:
            c = imaplib.IMAP4("127.0.0.2", d.port)
            self.assertIn("LOGINDISABLED", c.capabilities)
            self.assertRaises(imaplib.IMAP4.error, c.login, d.user, d.password)
            self.assertEqual(d.count(), 0)


class FakeImapRig(unittest.TestCase):
    def test_normal_sequence_recorded(self):
        with FakeImap("normal") as f:
            c = imaplib.IMAP4("127.0.0.1", f.port, timeout=5)
            c.login("council", "secret")
            self.assertEqual(c.select("INBOX"), ("OK", [b"1"]))
            typ, data = c.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
            self.assertEqual(typ, "OK")
            self.assertIn(b"Bin collection", data[0][1])
            self.assertIn(b"RFC822.SIZE %d" % len(data[0][1]), data[0][0])
            c.logout()
            self.assertEqual(f.verbs(), ["CAPABILITY", "LOGIN", "SELECT",
                                         "UID FETCH", "LOGOUT"])
            self.assertFalse({"UID STORE", "UID MOVE", "UID COPY", "EXPUNGE",
                              "UID EXPUNGE", "STORE"} & set(f.verbs()))
            self.assertEqual(f.flags, set())

            c = imaplib.IMAP4("127.0.0.1", f.port, timeout=5)
            c.login("council", "secret")
            c.select("INBOX")
            self.assertEqual(c.uid("STORE", "1", "+FLAGS.SILENT", r"(\Seen)")[0], "OK")
            self.assertEqual(c.uid("MOVE", "1", "Processed")[0], "OK")
            c.logout()
            self.assertTrue(f.wait_for("LOGOUT", count=2))
            self.assertEqual(f.moved_to, "Processed")
            self.assertEqual(f.flags, {"\\Seen"})
            self.assertEqual(f.connections, 2)

    def _raw(self, f, script, until=None):
        """Send each line of @script; returns everything received until
        the server closes or @until was seen."""
        s = socket.create_connection(("127.0.0.1", f.port), 5)
        out = s.recv(4096)
        for line in script:
            s.sendall(line + b"\r\n")
            time.sleep(0.05)
        s.settimeout(2)
        try:
            while True:
                data = s.recv(1 << 20)
                if not data:
                    break
                out += data
                if until and until in out:
                    break
        except socket.timeout:
            pass
        s.close()
        return out

    def test_hostile_scenarios(self):
        login = [b"a LOGIN u p", b"b SELECT INBOX"]
        fetch = [b"c UID FETCH 1 (UID RFC822.SIZE BODY.PEEK[])"]
        with FakeImap("permanentflags-crash") as f:
            self.assertIn(b"* OK [PERMANENTFLAGS (\r\n", self._raw(f, login, b"b OK"))
        with FakeImap("truncated-literal") as f:
            out = self._raw(f, login + fetch)
            self.assertIn(b"{2000}\r\n", out)
            self.assertEqual(len(out.split(b"{2000}\r\n", 1)[1]), 500)
        with FakeImap("oversized-literal", oversized_send=100000) as f:
            out = self._raw(f, login + fetch)
            self.assertIn(b"{4294967296}\r\n", out)
            self.assertEqual(len(out.split(b"{4294967296}\r\n", 1)[1]), 100000)
        with FakeImap("size-mismatch") as f:
            out = self._raw(f, login + fetch, b"c OK")
            self.assertIn(b"RFC822.SIZE 100 BODY[] {5000}\r\n", out)
            self.assertIn(b"c OK", out)
        with FakeImap("status-garbage") as f:
            out = self._raw(f, login + [b"c STATUS INBOX (MESSAGES)"], b"c OK")
            self.assertIn(b"UIDVALIDITY x\x00y", out)
        with FakeImap("nested-lists") as f:
            out = self._raw(f, login + fetch, b"c OK")
            self.assertIn(b"(" * 10000, out)
            self.assertIn(b"c OK FETCH", out)
        with FakeImap("no-starttls") as f:
            out = self._raw(f, [b"a CAPABILITY", b"b STARTTLS"], b"b BAD")
            self.assertNotIn(b"STARTTLS", out.split(b"b BAD")[0])
            self.assertIn(b"b BAD", out)

    def test_starttls_injection_in_one_write(self):
        with FakeImap("starttls-injection") as f:
            s = socket.create_connection(("127.0.0.1", f.port), 5)
            self.assertIn(b"STARTTLS", s.recv(4096))
            s.sendall(b"a STARTTLS\r\n")
            # Both lines come in one segment: one recv gets them.
            self.assertEqual(s.recv(4096), b"a OK begin TLS\r\n* BYE injected\r\n")
            ctx = ssl.create_default_context(cafile=f.ca_cert)
            t = ctx.wrap_socket(s, server_hostname="localhost")
            t.sendall(b"b NOOP\r\n")
            self.assertTrue(t.recv(4096).startswith(b"b OK"))
            t.close()
            self.assertEqual(f.tls_handshakes, 1)
            self.assertEqual(f.verbs(), ["STARTTLS", "NOOP"])

    def test_every_scenario_greets(self):
        for name in SCENARIOS:
            with FakeImap(name) as f:
                s = socket.create_connection(("127.0.0.1", f.port), 5)
                greeting = s.recv(4096)
                self.assertTrue(greeting.startswith(b"* OK"), name)
                self.assertEqual(b"STARTTLS" in greeting,
                                 name in ("starttls-injection",
                                          "starttls-bad"), name)
                s.close()
        self.assertRaises(ValueError, FakeImap, "no-such-scenario")


if __name__ == "__main__":
    unittest.main()
