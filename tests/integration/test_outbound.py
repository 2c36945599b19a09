"""test_outbound.py - acknowledgements without mail loops (issue 8).

A recording SMTP server on loopback (smtp_sink.py) is the smarthost.
Covers: a new case is acknowledged once: null envelope sender, the single
recipient is the inbound *envelope* sender, Auto-Submitted: auto-replied,
In-Reply-To/References the citizen's Message-ID, the reference in the
subject, a Reply-To plus-address with the reference and its MAC; never
acknowledged: auto-replies, bulk and list mail, the null sender, our own
addresses, a reply into an existing case; at most ack_per_day a day per
person; the smarthost down then up -> delivered once; two intaked
instances acknowledging each other and an auto-responder that answers
everything: the exchange ends after one acknowledgement each
(SECURITY-TESTS test 51); the citizen's reply to the acknowledgement
joins the same case; the loop breaker flags a case flooded with mail.
"""

import os
import sqlite3
import time
import unittest

from harness import Intaked, message, wait_for
from smtp_sink import SmtpSink, free_port


def outbound(d, port, **extra):
    d.configure("outbound", "smarthost", "127.0.0.1:%d" % port)
    d.configure("outbound", "starttls", "no")
    for k, v in extra.items():
        d.configure("outbound", k, v)
    return d


def send(d, data, sender, rcpt="enquiries@council.example"):
    with d.smtp() as s:
        s.sendmail(sender, [rcpt], data)


def outbox(d):
    db = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))
    try:
        return dict(db.execute("SELECT status, count(*) FROM outbox"
                               " GROUP BY status").fetchall())
    finally:
        db.close()


def opened_acks(d):
    """The ack= word of every case.opened event, in order (None: none);
    and no separate ack.skipped event."""
    db = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))
    try:
        rows = db.execute("SELECT action, detail FROM audit"
                          " WHERE action IN ('case.opened', 'ack.skipped')"
                          " ORDER BY id").fetchall()
    finally:
        db.close()
    out = []
    for action, detail in rows:
        assert action == "case.opened", (action, detail)
        words = dict(w.split("=", 1) for w in detail.split() if "=" in w)
        out.append(words.get("ack"))
    return out


def case_messages(d, ref):
    return [x for x in d.cases() if x["ref"] == ref][0]["messages"]


class Acknowledgements(unittest.TestCase):
    def test_ack_headers(self):
        with SmtpSink() as sink:
            d = outbound(Intaked(), sink.port)
            with d:
                send(d, message("Bin not collected", "Jo <jo@example.org>",
                                "My bin was missed.\r\n",
                                msgid="<jo-1@example.org>"),
                     "jo-bounces@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                m = sink.wait(1)[0]
                d.settle()
                self.assertEqual(len(sink.messages), 1)
                # a department's reply goes out threaded, to the citizen
                f = os.path.join(d.dir, "reply.txt")
                with open(f, "w") as fh:
                    fh.write("We have emptied your bin.\n.\nRegards\n")
                r = d.ctl("cases", "reply", ref, "--file", f, check=True)
                self.assertIn("queued", r.stdout)
                r2 = sink.wait(2)[1]
            self.assertEqual(m.mail_from, "")
            # the envelope sender, not the From header
            self.assertEqual(m.rcpts, ["jo-bounces@example.org"])
            p = m.parsed
            self.assertEqual(p["Auto-Submitted"], "auto-replied")
            self.assertEqual(p["In-Reply-To"], "<jo-1@example.org>")
            self.assertIn("[%s]" % ref, p["Subject"])
            self.assertIn("enquiries+%s." % ref, p["Reply-To"])
            self.assertIn("enquiries@council.example", p["From"])
            self.assertIn(ref, p.get_body(("plain",)).get_content())
            self.assertEqual(r2.rcpts, ["jo-bounces@example.org"])
            self.assertIn("[%s]" % ref, r2.parsed["Subject"])
            self.assertEqual(r2.parsed["In-Reply-To"], "<jo-1@example.org>")
            self.assertIsNone(r2.parsed["Auto-Submitted"])
            body = r2.parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
            # the lone dot in the text did not end DATA (SECURITY-TESTS 8)
            self.assertIn("We have emptied your bin.\n.\nRegards", body)
            self.assertEqual(outbox(d), {"sent": 2})

    def test_ack_goes_to_the_envelope_sender_only(self):
        """SECURITY-TESTS 48: Reply-To and Cc of the citizen's message
        never become recipients of the acknowledgement (only the envelope
        sender does), and a Message-ID that is not a valid msg-id ("<broken",
        one with a space) gives an acknowledgement without In-Reply-To or
        References rather than a malformed one; a valid one threads."""
        with SmtpSink() as sink:
            d = outbound(Intaked(), sink.port)
            with d:
                for n, mid in enumerate(("<broken", "<a b@example.org>",
                                         "<ok-3@example.org>")):
                    send(d, message("Question %d" % n, "Jo <jo@example.org>",
                                    "When is the tip open?\r\n", msgid=mid,
                                    extra="Reply-To: other@victim.example\r\n"
                                          "Cc: third@victim.example\r\n"),
                         "jo%d@example.org" % n)
                d.wait_cases(3)
                got = sink.wait(3)
                d.settle()
            self.assertEqual(len(sink.messages), 3)
            by_rcpt = {tuple(m.rcpts): m for m in got}
            self.assertEqual(set(by_rcpt), {("jo0@example.org",),
                                            ("jo1@example.org",),
                                            ("jo2@example.org",)})
            for rcpt in ("jo0@example.org", "jo1@example.org"):
                p = by_rcpt[(rcpt,)].parsed
                self.assertIsNone(p["In-Reply-To"], rcpt)
                self.assertIsNone(p["References"], rcpt)
            p = by_rcpt[("jo2@example.org",)].parsed
            self.assertEqual(p["In-Reply-To"], "<ok-3@example.org>")
            for m in got:
                self.assertNotIn("victim", m.parsed["To"])
                self.assertIsNone(m.parsed["Cc"])

    def test_bogus_charset_in_from(self):
        """SECURITY-TESTS 52 end to end: a display name in an unknown
        charset does not stop the message: one case from the address, one
        acknowledgement to the envelope sender."""
        with SmtpSink() as sink:
            d = outbound(Intaked(), sink.port)
            with d:
                send(d, ("From: =?x-bogus?B?w6k=?= <a@sender.example>\r\n"
                         "To: enquiries@council.example\r\n"
                         "Subject: =?x-bogus?Q?caf=E9?=\r\n"
                         "Message-ID: <bogus-1@sender.example>\r\n\r\n"
                         "Is the car park free on Sundays?\r\n").encode(),
                     "a@sender.example")
                cases = d.wait_cases(1)
                got = sink.wait(1)
                d.settle()
            self.assertEqual(len(cases), 1)
            self.assertEqual(cases[0]["from"], "a@sender.example")
            self.assertEqual(len(sink.messages), 1)
            self.assertEqual(got[0].rcpts, ["a@sender.example"])

    def test_injection_one_message_one_recipient(self):
        """SECURITY-TESTS 8 and 49 on the wire: CR/LF hidden in an encoded
        subject, a display name and a folded Message-ID, and a reply whose
        text holds SMTP commands after a lone dot, each end as exactly one
        message to the one citizen."""
        evil = "evil@evil.example"
        with SmtpSink() as sink:
            d = outbound(Intaked(), sink.port)
            with d:
                send(d, message("=?utf-8?q?Bin=0D=0ABcc:_%s?=" % evil,
                                "=?utf-8?q?Jo=0D=0ACc:_%s?= <jo@example.org>"
                                % evil, "My bin was missed.\r\n",
                                msgid="<jo-9@example.org>\r\n Bcc: %s" % evil),
                     "jo@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                sink.wait(1)
                f = os.path.join(d.dir, "reply.txt")
                with open(f, "w", newline="") as fh:
                    fh.write("Done.\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<%s>\r\n"
                             "DATA\r\nSubject: spam\r\n\r\nspam\r\n.\r\n"
                             "bare\n.\nand\r.\rend\n" % evil)
                d.ctl("cases", "reply", ref, "--file", f, check=True)
                sink.wait(2)
                d.settle()
            self.assertEqual(len(sink.messages), 2)
            for m in sink.messages:
                self.assertEqual(m.rcpts, ["jo@example.org"])
                self.assertIsNone(m.parsed["Bcc"])
                self.assertIsNone(m.parsed["Cc"])
                for name, value in m.parsed.items():
                    self.assertNotIn("\n", str(value), name)
            cmds = [c.split(":")[0].upper() for c in sink.commands
                    if c[:4].upper() in ("MAIL", "RCPT")]
            self.assertEqual(cmds, ["MAIL FROM", "RCPT TO"] * 2)
            self.assertFalse(any(evil in c for c in sink.commands
                                 if c[:4].upper() in ("MAIL", "RCPT")))
            body = sink.messages[1].parsed.get_body(("plain",)).get_content()
            self.assertIn("RCPT TO:<%s>" % evil, body)
            self.assertIn("spam", body)

    def test_never_acknowledged(self):
        with SmtpSink() as sink:
            d = outbound(Intaked(), sink.port)
            with d:
                send(d, message("Out of office", "a@example.org", "Away\r\n",
                                extra="Auto-Submitted: auto-replied\r\n"),
                     "a@example.org")
                send(d, message("Newsletter", "b@example.org", "News\r\n",
                                extra="Precedence: bulk\r\n"),
                     "b@example.org")
                send(d, message("List post", "c@example.org", "Hi all\r\n",
                                extra="List-Id: <l.example.org>\r\n"),
                     "c@example.org")
                send(d, message("Bounce", "MAILER-DAEMON@example.org",
                                "Undeliverable\r\n"), "")
                send(d, message("Internal", "enquiries@council.example",
                                "Loop?\r\n"), "enquiries@council.example")
                d.wait_cases(5)
                # no outbox row once the five are filed (the row would be
                # written with the case), and nothing due: nothing sent
                self.assertEqual(outbox(d), {})
                d.settle()
            self.assertEqual(sink.messages, [])
            self.assertEqual(outbox(d), {})

    def test_per_sender_limit_and_reply_threading(self):
        with SmtpSink() as sink:
            d = outbound(Intaked(), sink.port, ack_per_day="2")
            with d:
                for i in range(4):
                    send(d, message("Matter %d" % i, "sam@example.org",
                                    "Different matter %d\r\n" % i),
                         "sam@example.org")
                d.wait_cases(4)
                sink.wait(2)
                d.settle()
                self.assertEqual(len(sink.messages), 2)
                self.assertEqual(outbox(d), {"sent": 2})
                # each case's own event says what became of its
                # acknowledgement; no second event for a skipped one
                self.assertEqual(opened_acks(d),
                                 ["queued", "queued", "skipped", "skipped"])
                # the citizen answers the acknowledgement: same case, and
                # no acknowledgement of the answer
                ack = sink.messages[0].parsed
                ref = ack["Subject"].split("[")[1].split("]")[0]
                send(d, message("Re: " + ack["Subject"], "sam@example.org",
                                "More details.\r\n",
                                extra="In-Reply-To: %s\r\n"
                                      % ack["Message-ID"]),
                     "sam@example.org", rcpt=ack["Reply-To"].split("<")[-1]
                     .strip(">") if "<" in ack["Reply-To"]
                     else ack["Reply-To"])
                wait_for(lambda: case_messages(d, ref) == 2, 60,
                         "the answer joining %s" % ref, d.log)
                self.assertEqual(len(d.cases()), 4)
                d.settle()
                self.assertEqual(len(sink.messages), 2)

    def test_smarthost_down_then_up(self):
        port = free_port()
        d = outbound(Intaked(), port)
        with d:
            send(d, message("Streetlight", "kim@example.org", "Out\r\n"),
                 "kim@example.org")
            d.wait_cases(1)
            wait_for(lambda: "event=send-deferred" in d.log(), 60,
                     "the first attempt to be deferred", d.log)
            self.assertEqual(outbox(d), {"queued": 1})
            with SmtpSink(port=port) as sink:
                sink.wait(1, timeout=60)
                wait_for(lambda: outbox(d) == {"sent": 1}, 60,
                         "the acknowledgement marked sent", d.log)
                self.assertEqual(len(sink.messages), 1)
            self.assertEqual(outbox(d), {"sent": 1})


class NoLoops(unittest.TestCase):
    def test_two_instances_and_an_autoresponder(self):
        a = Intaked()
        b = Intaked()
        outbound(a, b.port)
        outbound(b, a.port)
        # each knows the other's mailbox as an outside address
        b.sections["mailboxes"] = {"enquiries@other.example": "Other"}
        b._write_conf()
        with a, b:
            # B's mailbox writes to A (as a citizen would): A acknowledges
            # to B; B files the acknowledgement and does not answer it
            send(a, message("Hello from B", "enquiries@other.example",
                            "Hi\r\n"), "enquiries@other.example")
            a.wait_cases(1)
            self.assertEqual(len(b.wait_cases(1)), 1)
            wait_for(lambda: outbox(a) == {"sent": 1}, 60,
                     "A's acknowledgement marked sent", a.log)
            # B filed the acknowledgement without queueing an answer (the
            # row would be written with the case), so nothing goes to A
            self.assertEqual(outbox(b), {})
            b.settle()
            a.settle()
            self.assertEqual(outbox(a), {"sent": 1})
            self.assertEqual(outbox(b), {})
            self.assertEqual(len(a.cases()), 1)

        # an auto-responder that answers everything, without saying so
        replies = []

        def answer(m):
            replies.append(m)
            if len(replies) > 20:
                return
            subj = m.parsed["Subject"]
            send(c, message("Re: " + subj, "robot@example.net",
                            "Thank you for your message.\r\n",
                            extra="In-Reply-To: %s\r\n" % m.parsed["Message-ID"]),
                 "robot@example.net")

        with SmtpSink(on_message=answer) as sink:
            c = outbound(Intaked(), sink.port)
            with c:
                send(c, message("Question", "robot@example.net", "?\r\n"),
                     "robot@example.net")
                ref = c.wait_cases(1)[0]["ref"]
                sink.wait(1)
                # the robot's answer is filed into the case (it sends it
                # before the sink's 250 is read back by intaked's sender)
                wait_for(lambda: case_messages(c, ref) == 2, 60,
                         "the robot's answer filed", c.log)
                c.settle()
                self.assertEqual(len(sink.messages), 1)
                cases = c.cases()
                self.assertEqual(len(cases), 1)
                self.assertEqual(cases[0]["messages"], 2)


class LoopBreaker(unittest.TestCase):
    def test_flood_flags_case(self):
        with SmtpSink() as sink:
            d = outbound(Intaked(), sink.port, loop_messages="3",
                         loop_minutes="10")
            with d:
                send(d, message("First", "x@example.org", "1\r\n",
                                msgid="<x-1@example.org>"), "x@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                for i in range(5):
                    send(d, message("Re: [%s]" % ref, "x@example.org",
                                    "more %d\r\n" % i), "x@example.org")
                wait_for(lambda: case_messages(d, ref) == 6, 60,
                         "six messages in %s" % ref, d.log)
            db = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))
            self.assertEqual(db.execute("SELECT loop_flag FROM cases WHERE"
                                        " ref = ?", (ref,)).fetchone()[0], 1)
            self.assertEqual(db.execute("SELECT count(*) FROM audit WHERE"
                                        " action = 'case.loop'").fetchone()[0],
                             1)


def notify_to(d, queue, addr):
    d.configure("queue %s" % queue, "notify", addr)
    return d


class Notifications(unittest.TestCase):
    """Work arriving in a queue is announced to the department address,
    with no personal data: reference, kind, queue, priority, due date and
    how to open it."""

    def test_new_case_announced_without_personal_data(self):
        with SmtpSink() as sink:
            d = notify_to(outbound(Intaked(), sink.port), "general",
                          "team@departments.example")
            notify_to(d, "housing", "housing@departments.example")
            with d:
                send(d, message("Damp at 10 High Street",
                                "Ann Other <ann@example.org>",
                                "My son is disabled and the damp in Flat 4"
                                " makes it worse.\r\n"),
                     "ann.other@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                msgs = sink.wait(2)
                d.settle()
                self.assertEqual(len(sink.messages), 2)
                n = [m for m in msgs
                     if m.rcpts == ["team@departments.example"]][0]
                # re-routed into housing: that department is told too
                d.ctl("cases", "route", ref, "--to-queue", "housing",
                      check=True)
                moved = sink.wait(3)[2]
                # an automatic reply is nobody's work: not announced
                send(d, message("Automatic reply: away", "bot@example.net",
                                "I am out of the office.\r\n",
                                extra="Auto-Submitted: auto-replied\r\n"),
                     "bot@example.net")
                d.wait_cases(2)
                d.settle()
                self.assertEqual(len(sink.messages), 3)
            self.assertEqual(n.mail_from, "")
            p = n.parsed
            self.assertEqual(p["Auto-Submitted"], "auto-generated")
            self.assertIn(ref, p["Subject"])
            self.assertIsNone(p["Reply-To"])
            self.assertIsNone(p["In-Reply-To"])
            text = p.get_body(("plain",)).get_content()
            for want in (ref, "general", "enquiry", "normal",
                         "intakectl cases show %s" % ref):
                self.assertIn(want, text)
            for raw in (n.data, moved.data):
                for word in (b"Ann", b"ann", b"High Street", b"Damp",
                             b"damp", b"disab", b"health", b"special",
                             b"Flat 4"):
                    self.assertNotIn(word, raw)
            self.assertEqual(moved.rcpts, ["housing@departments.example"])
            self.assertIn("housing", moved.parsed.get_body(
                ("plain",)).get_content())

    def test_hourly_digest(self):
        with SmtpSink() as sink:
            d = notify_to(outbound(Intaked(), sink.port, acknowledgements="no"),
                          "general", "team@departments.example")
            d.configure("queue general", "notify_mode", "digest")
            with d:
                for who in ("a", "b", "c"):
                    send(d, message("Matter " + who, who + "@example.org",
                                    "Text %s\r\n" % who), who + "@example.org")
                refs = sorted(c["ref"] for c in d.wait_cases(3))
                # three rows due on the hour, none due now: nothing sent
                d.settle()
                time.sleep(3)       # and not after a poll (2 s) either
                self.assertEqual(len(sink.messages), 0)
                # the hour comes round (the rows were due on the hour)
                db = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"),
                                     timeout=10)
                due = [r[0] for r in db.execute(
                    "SELECT next_at FROM outbox WHERE kind = 'notify'")]
                self.assertEqual(len(due), 3)
                self.assertTrue(all(t % 3600000000 == 0 for t in due))
                db.execute("UPDATE outbox SET next_at = 0"
                           " WHERE kind = 'notify'")
                db.commit()
                db.close()
                m = sink.wait(1)[0]
                wait_for(lambda: outbox(d) == {"sent": 3}, 60,
                         "the three rows marked sent", d.log)
                d.settle()
                self.assertEqual(len(sink.messages), 1)
                self.assertEqual(outbox(d), {"sent": 3})
            self.assertEqual(m.rcpts, ["team@departments.example"])
            text = m.parsed.get_body(("plain",)).get_content()
            for ref in refs:
                self.assertIn("- %s: enquiry, priority normal" % ref, text)
            for word in (b"Matter", b"Text", b"@example.org"):
                self.assertNotIn(word, m.data)

    def test_never_for_restricted_subjects(self):
        with SmtpSink() as sink:
            d = notify_to(outbound(Intaked(), sink.port, acknowledgements="no"),
                          "general", "team@departments.example")
            notify_to(d, "information-governance", "ig@departments.example")
            with d:
                send(d, message("One", "rae@example.org", "1\r\n"),
                     "rae@example.org")
                d.wait_cases(1)
                sink.wait(1)
                d.ctl("subject", "restrict", "rae@example.org", check=True)
                send(d, message("Two", "rae@example.org", "2\r\n"),
                     "rae@example.org")
                d.wait_cases(2)
                d.settle()
                self.assertEqual(len(sink.messages), 1)
                # lifted: the first case is back in general, whose
                # department hears of it again
                d.ctl("subject", "unrestrict", "rae@example.org", check=True)
                m = sink.wait(2)[1]
                d.settle()
                self.assertEqual(len(sink.messages), 2)
            self.assertEqual(m.rcpts, ["team@departments.example"])
            self.assertEqual(sink.messages[0].parsed["Subject"],
                             m.parsed["Subject"])

    def test_own_address_refused(self):
        d = notify_to(Intaked(), "general", "enquiries@council.example")
        r = d.ctl("outbox")
        self.assertEqual(r.returncode, 78)
        self.assertIn("loop", r.stderr)


class PlusAddress(unittest.TestCase):
    """Threading verifies the MAC of the Reply-To plus-address."""

    def wait_messages(self, d, ref, n):
        deadline = time.time() + 60
        while time.time() < deadline:
            c = [x for x in d.cases() if x["ref"] == ref][0]
            if c["messages"] == n and d.spool_count() == 0:
                return
            time.sleep(0.2)
        self.fail("case %s never had %d messages" % (ref, n))

    def test_reply_through_plus_address(self):
        with SmtpSink() as sink:
            d = outbound(Intaked(), sink.port)
            with d:
                send(d, message("Fence", "pat@example.org",
                                "The fence is broken.\r\n"),
                     "pat@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                ack = sink.wait(1)[0].parsed
                reply_to = ack["Reply-To"].addresses[0].addr_spec
                self.assertTrue(reply_to.startswith("enquiries+%s." % ref))
                # the citizen answers the acknowledgement: the plus-address
                # is the only reference (no subject tag, no In-Reply-To)
                send(d, message("More about it", "pat@example.org",
                                "Photos to follow.\r\n"),
                     "pat@example.org", rcpt=reply_to)
                self.wait_messages(d, ref, 2)
                self.assertEqual(len(d.cases()), 1)
                # the same person with a forged MAC: no reference at all
                local, dom = reply_to.split("@")
                mac = local[-4:]
                forged = "%s%s@%s" % (local[:-4],
                                      "0000" if mac != "0000" else "ffff",
                                      dom)
                send(d, message("Another thing", "pat@example.org",
                                "A new matter.\r\n"),
                     "pat@example.org", rcpt=forged)
                d.wait_cases(2)
                # and with none
                send(d, message("A third thing", "pat@example.org",
                                "Yet another.\r\n"),
                     "pat@example.org",
                     rcpt="enquiries+%s@council.example" % ref)
                d.wait_cases(3)
                self.wait_messages(d, ref, 2)
                # the upper/lower case of the address does not matter
                send(d, message("Case", "pat@example.org", "Still me.\r\n"),
                     "pat@example.org", rcpt=reply_to.upper().replace(
                         "@COUNCIL.EXAMPLE", "@council.example"))
                self.wait_messages(d, ref, 3)
                self.assertEqual(len(d.cases()), 3)
            db = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))
            self.assertEqual(db.execute("SELECT count(*) FROM case_links")
                             .fetchone()[0], 0)


TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "conf", "templates")


class Welsh(unittest.TestCase):
    def test_welsh_mailbox_gets_welsh_acknowledgement(self):
        with SmtpSink() as sink:
            d = outbound(Intaked(), sink.port, templates=TEMPLATES)
            d.sections["mailboxes"]["ymholiadau@council.example"] = "Ymholiadau"
            d.configure("languages", "ymholiadau@council.example", "cy")
            with d:
                send(d, message("Bin", "gwen@example.org", "Bin\r\n"),
                     "gwen@example.org", rcpt="ymholiadau@council.example")
                send(d, message("Bin", "tom@example.org", "Bin\r\n"),
                     "tom@example.org")
                d.wait_cases(2)
                sink.wait(2)
            by = {m.rcpts[0]: m.parsed for m in sink.messages}
            cy = by["gwen@example.org"]
            en = by["tom@example.org"]
            self.assertTrue(cy["Subject"].startswith(
                "Mae eich neges wedi dod i law ["), cy["Subject"])
            body = cy.get_body(("plain",)).get_content()
            self.assertIn("Eich cyfeirnod yw", body)
            self.assertIn("ymholiadau@council.example", cy["From"])
            self.assertIn("ymholiadau+", cy["Reply-To"])
            self.assertTrue(en["Subject"].startswith("We have your message"))

    def test_welsh_form(self):
        from test_forms import GOOD, http_daemon, post_form, token
        with SmtpSink() as sink:
            d = outbound(http_daemon(), sink.port, templates=TEMPLATES)
            d.configure("languages", "form:contact", "cy")
            with d:
                st, _, body = post_form(d, dict(GOOD, _token=token(d)))
                self.assertEqual(st, 201, body)
                m = sink.wait(1)[0]
            self.assertEqual(m.rcpts, ["jo@example.org"])
            self.assertTrue(m.parsed["Subject"].startswith(
                "Mae eich neges wedi dod i law ["), m.parsed["Subject"])

    def test_bad_language_refused(self):
        d = Intaked()
        d.configure("languages", "enquiries@council.example", "fr")
        r = d.ctl("outbox")
        self.assertEqual(r.returncode, 78)
        self.assertIn("en or cy", r.stderr)


if __name__ == "__main__":
    unittest.main()
