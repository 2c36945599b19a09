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

from harness import Intaked, message
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
                time.sleep(0.5)
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
                time.sleep(3)
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
                time.sleep(3)
                self.assertEqual(len(sink.messages), 2)
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
                deadline = time.time() + 20
                while time.time() < deadline:
                    c = [x for x in d.cases() if x["ref"] == ref][0]
                    if c["messages"] == 2:
                        break
                    time.sleep(0.2)
                self.assertEqual(c["messages"], 2)
                self.assertEqual(len(d.cases()), 4)
                time.sleep(2)
                self.assertEqual(len(sink.messages), 2)

    def test_smarthost_down_then_up(self):
        port = free_port()
        d = outbound(Intaked(), port)
        with d:
            send(d, message("Streetlight", "kim@example.org", "Out\r\n"),
                 "kim@example.org")
            d.wait_cases(1)
            time.sleep(3)
            self.assertEqual(outbox(d), {"queued": 1})
            self.assertIn("event=send-deferred", d.log())
            with SmtpSink(port=port) as sink:
                sink.wait(1, timeout=30)
                time.sleep(2)
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
            deadline = time.time() + 20
            while time.time() < deadline and not b.cases():
                time.sleep(0.2)
            self.assertEqual(len(b.cases()), 1)
            time.sleep(4)
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
                c.wait_cases(1)
                sink.wait(1)
                time.sleep(5)
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
                deadline = time.time() + 20
                while time.time() < deadline:
                    c = [x for x in d.cases() if x["ref"] == ref][0]
                    if c["messages"] == 6:
                        break
                    time.sleep(0.2)
            db = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))
            self.assertEqual(db.execute("SELECT loop_flag FROM cases WHERE"
                                        " ref = ?", (ref,)).fetchone()[0], 1)
            self.assertEqual(db.execute("SELECT count(*) FROM audit WHERE"
                                        " action = 'case.loop'").fetchone()[0],
                             1)


if __name__ == "__main__":
    unittest.main()
