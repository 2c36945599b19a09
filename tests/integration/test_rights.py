"""test_rights.py - data-subject rights (issue 9, first part).

Covers: `intakectl subject export` gives one JSON document with the
person, every case, their messages (text, headers, attachments in
base64), routing reasons and the audit events about them, and nothing of
another person; the file written is 0600 and the export is audited;
`subject restrict`: the person's cases move to information governance, a
new message from them is filed there and not acknowledged, and `subject
unrestrict` gives the cases back their queues.
"""

import base64
import json
import os
import stat
import unittest

from harness import Intaked, message
from smtp_sink import SmtpSink
from test_routing import routed


def send(d, data, sender):
    with d.smtp() as s:
        s.sendmail(sender, ["enquiries@council.example"], data)


ATTACHED = (b"From: Alice <alice@example.org>\r\n"
            b"To: enquiries@council.example\r\nSubject: Photo of the bin\r\n"
            b"Message-ID: <a2@example.org>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\n"
            b"Alice's second message about the bin.\r\n"
            b"--b\r\nContent-Type: image/png\r\n"
            b"Content-Disposition: attachment; filename=bin.png\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(b"\x89PNG-ALICE-PIXELS") + b"\r\n--b--\r\n")


class Export(unittest.TestCase):
    def test_export_of_someone_only_copied_in(self):
        """SECURITY-TESTS 105: Nell is copied in on Alice's message and
        later writes her own: Nell's export holds her own case only,
        nothing of Alice's case, words or address."""
        d = routed(Intaked())
        with d:
            send(d, message("Wheelie bin missed", "Alice <alice@example.org>",
                            "Alice's private words about her bin and her"
                            " health.\r\n", msgid="<a1@example.org>",
                            extra="Cc: Nell Neighbour <nell.n@example.net>\r\n"),
                 "alice@example.org")
            d.wait_cases(1)
            send(d, message("Streetlight", "Nell <nell.n@example.net>",
                            "Nell's own report: the streetlight is out.\r\n",
                            msgid="<n1@example.net>"),
                 "nell.n@example.net")
            d.wait_cases(2)
            out = os.path.join(d.dir, "nell.json")
            d.ctl("subject", "export", "nell.n@example.net", "--out", out,
                  check=True)
            with open(out) as f:
                text = f.read()
            doc = json.loads(text)
        self.assertEqual(doc["subject"]["address"], "nell.n@example.net")
        self.assertEqual(len(doc["cases"]), 1, [c["ref"] for c in doc["cases"]])
        self.assertIn("Nell's own report", text)
        self.assertNotIn("Alice", text)
        self.assertNotIn("alice@example.org", text)
        self.assertNotIn("health", text)

    def test_export_complete_and_only_hers(self):
        d = routed(Intaked())
        with d:
            send(d, message("Wheelie bin missed", "Alice <alice@example.org>",
                            "Alice's first message: my wheelie bin was not"
                            " emptied.\r\n", msgid="<a1@example.org>",
                            extra="Cc: Nell Neighbour <nell.n@example.net>,"
                                  " enquiries@council.example\r\n"
                                  "Return-Path: <>\r\n"),
                 "alice@example.org")
            send(d, ATTACHED, "alice@example.org")
            send(d, message("Damp in my council flat", "bob@example.org",
                            "Bob's words about damp and mould.\r\n"),
                 "bob@example.org")
            d.wait_cases(3)
            out = os.path.join(d.dir, "alice.json")
            r = d.ctl("subject", "export", "ALICE@example.org", "--out", out,
                      check=True)
            self.assertIn("exported", r.stdout)
            self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600)
            with open(out) as f:
                doc = json.load(f)
            text = open(out).read()
        self.assertEqual(doc["schema"], "intake-subject-export/1")
        self.assertEqual(doc["subject"]["address"], "alice@example.org")
        self.assertEqual(len(doc["cases"]), 2)
        msgs = [m for c in doc["cases"] for m in c["messages"]]
        self.assertEqual(len(msgs), 2)
        self.assertIn("Alice's first message", text)
        self.assertIn("Alice's second message", text)
        atts = [a for m in msgs for a in m["attachments"]]
        self.assertEqual(len(atts), 1)
        self.assertEqual(base64.b64decode(atts[0]["content_base64"]),
                         b"\x89PNG-ALICE-PIXELS")
        self.assertEqual(atts[0]["name"], "bin.png")
        # the logic of the automated decision, and the audit about her
        self.assertTrue(all(c["routing"]["rule"] for c in doc["cases"]))
        actions = {e["action"] for e in doc["audit"]}
        self.assertIn("case.opened", actions)
        self.assertIn("subject.created", actions)
        # nothing of Bob
        self.assertNotIn("bob@", text)
        self.assertNotIn("Bob's words", text)
        # nor of the neighbour she copied in: redacted in her own message's
        # headers, where she and the council's addresses stay
        self.assertNotIn("nell.n@", text)
        self.assertNotIn("Nell Neighbour", text)
        first = [m for m in msgs if "first message" in (m["text"] or "")][0]
        cc = [l for l in first["headers"].splitlines()
              if l.lower().startswith("cc:")]
        self.assertEqual(cc, ["Cc: [another person], enquiries@council.example"])
        self.assertIn("alice@example.org", first["headers"])
        # the null sender names no one: kept as it is
        self.assertIn("Return-Path: <>", first["headers"].splitlines())
        self.assertEqual(doc["other_people_redacted"], 1)
        # the export itself is audited
        rows = [x for x in d.ctl("audit", "verify").stdout.splitlines()]
        self.assertTrue(rows)


class Restrict(unittest.TestCase):
    def test_restrict_and_lift(self):
        with SmtpSink() as sink:
            d = routed(Intaked())
            d.configure("outbound", "smarthost", "127.0.0.1:%d" % sink.port)
            d.configure("outbound", "starttls", "no")
            with d:
                send(d, message("Wheelie bin missed", "carol@example.org",
                                "My wheelie bin was not emptied.\r\n"),
                     "carol@example.org")
                c1 = d.wait_cases(1)[0]
                self.assertEqual(c1["queue"], "waste")
                sink.wait(1)
                r = d.ctl("subject", "restrict", "carol@example.org",
                          check=True)
                self.assertIn("restricted", r.stdout)
                cases = {c["ref"]: c for c in d.cases()}
                self.assertEqual(cases[c1["ref"]]["queue"],
                                 "information-governance")
                # a new matter: filed for information governance only,
                # no acknowledgement
                send(d, message("Pothole", "carol@example.org",
                                "A new pothole on Mill Lane.\r\n"),
                     "carol@example.org")
                cases = d.wait_cases(2)
                new = [c for c in cases if c["ref"] != c1["ref"]][0]
                self.assertEqual(new["queue"], "information-governance")
                # no outbox row was written when it was filed and nothing
                # is due: the sink count is final (Intaked.settle in harness.py)
                d.settle()
                self.assertEqual(len(sink.messages), 1)
                d.ctl("subject", "unrestrict", "carol@example.org",
                      check=True)
                cases = {c["ref"]: c for c in d.cases()}
                self.assertEqual(cases[c1["ref"]]["queue"], "waste")
                r = d.ctl("subject", "restrict", "nobody@example.org")
                self.assertEqual(r.returncode, 66)


if __name__ == "__main__":
    unittest.main()
