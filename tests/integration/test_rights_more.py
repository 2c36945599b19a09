"""test_rights_more.py - rectification, objection, anonymisation (issue 9).

Rectify: `subject rectify` seals name, phone and postal address afresh
(the export shows the new values, the old sealed bytes are gone from the
row), changes the e-mail address with its blind index (found by the new
address, not the old), refuses an address another person has without
saying whose; the audit records who and which fields, never a value.

Object: `subject object` moves the person's cases to information
governance like restrict, the export says objection_since, the audit says
subject.object; a new message is filed there and not acknowledged;
`unrestrict` lifts it.

Restricted and objecting people in the department API: their cases leave
the waste queue's list (and a direct read of the case is 404 for that
token) and appear only in information governance's.

Notes: a note a department wrote on the person's case (department API) is
in their export, and goes with an erasure.

Anonymise: the case keeps the person's words with every personal datum the
parser finds (e-mail, phone, postcode, NINO, date of birth, sort code,
account number, card number) and their name replaced by placeholders
(`cases texts REF`); the person is erased (subjects find fails, export by
id shows the erasure with reason anonymised); the database holds none of
the values in plain text.
"""

import json
import os
import sqlite3
import unittest

from harness import Intaked, message
from smtp_sink import SmtpSink
from test_routing import routed


def send(d, data, sender):
    with d.smtp() as s:
        s.sendmail(sender, ["enquiries@council.example"], data)


def subject_of(d, addr):
    r = d.ctl("subjects", "find", addr, "--json")
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


class Rectify(unittest.TestCase):
    def test_rectify_fields_and_address(self):
        d = Intaked()
        with d:
            send(d, message("Streetlight out", "Dora Old <dora@example.org>",
                            "The light on Elm Road is out.\r\n"),
                 "dora@example.org")
            send(d, message("Bins", "eve@example.org", "Bins again.\r\n"),
                 "eve@example.org")
            d.wait_cases(2)
            sid = subject_of(d, "dora@example.org")["id"]
            db = os.path.join(d.dir, "var", "intake.db")
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
            old_name = bytes(con.execute("SELECT name FROM subjects WHERE"
                                         " id = ?", (sid,)).fetchone()[0])
            con.close()
            self.assertEqual(d.ctl("subject", "rectify", str(sid))
                             .returncode, 64)
            r = d.ctl("subject", "rectify", "dora@example.org", "--name",
                      "Dora Newname", "--phone", "07700 900461",
                      "--address", "2 Elm Road, Exampletown EX1 2AB",
                      check=True)
            self.assertIn("rectified", r.stdout)
            self.assertNotIn("Newname", r.stdout + r.stderr)
            doc = json.loads(d.ctl("subject", "export", str(sid),
                                   check=True).stdout)
            self.assertEqual(doc["subject"]["name"], "Dora Newname")
            self.assertEqual(doc["subject"]["phone"], "07700 900461")
            self.assertEqual(doc["subject"]["postal"],
                             "2 Elm Road, Exampletown EX1 2AB")
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
            new_name = bytes(con.execute("SELECT name FROM subjects WHERE"
                                         " id = ?", (sid,)).fetchone()[0])
            audit = con.execute("SELECT actor, action, object, detail FROM"
                                " audit WHERE action = 'subject.rectify'"
                                ).fetchall()
            con.close()
            # sealed afresh: another nonce, nothing of the old value
            self.assertNotEqual(new_name[:24], old_name[:24])
            self.assertEqual(len(audit), 1)
            self.assertEqual(audit[0][2], "subject:%d" % sid)
            self.assertEqual(audit[0][3], "fields=name,phone,postal")
            self.assertTrue(audit[0][0])
            self.assertNotIn("Old", repr(audit))
            # the e-mail address, with its blind index
            r = d.ctl("subject", "rectify", str(sid), "--email",
                      "eve@example.org")
            self.assertEqual(r.returncode, 65)
            self.assertNotIn("eve@", r.stderr)
            self.assertIn("another data subject", r.stderr)
            d.ctl("subject", "rectify", str(sid), "--email",
                  "Dora.New@example.org", check=True)
            self.assertIsNone(subject_of(d, "dora@example.org"))
            self.assertEqual(subject_of(d, "dora.new@example.org")["id"],
                             sid)
            # clearing a field
            d.ctl("subject", "rectify", str(sid), "--phone", "", check=True)
            doc = json.loads(d.ctl("subject", "export", str(sid),
                                   check=True).stdout)
            self.assertIsNone(doc["subject"]["phone"])
            self.assertEqual(d.ctl("subject", "rectify", "999", "--name",
                                   "X").returncode, 66)
            self.assertIn("verified", d.ctl("audit", "verify",
                                            check=True).stdout)


class Object(unittest.TestCase):
    def test_objection_stops_processing(self):
        with SmtpSink() as sink:
            d = routed(Intaked())
            d.configure("outbound", "smarthost", "127.0.0.1:%d" % sink.port)
            d.configure("outbound", "starttls", "no")
            with d:
                send(d, message("Wheelie bin missed", "fay@example.org",
                                "My wheelie bin was not emptied.\r\n"),
                     "fay@example.org")
                c1 = d.wait_cases(1)[0]
                self.assertEqual(c1["queue"], "waste")
                sink.wait(1)
                r = d.ctl("subject", "object", "fay@example.org", check=True)
                self.assertIn("objection recorded", r.stdout)
                cases = {c["ref"]: c for c in d.cases()}
                self.assertEqual(cases[c1["ref"]]["queue"],
                                 "information-governance")
                doc = json.loads(d.ctl("subject", "export",
                                       "fay@example.org", check=True).stdout)
                self.assertIsNotNone(doc["subject"]["objection_since"])
                self.assertIsNotNone(
                    doc["subject"]["processing_restricted_since"])
                self.assertIn("subject.object",
                              [e["action"] for e in doc["audit"]])
                send(d, message("Pothole", "fay@example.org",
                                "A new pothole on Mill Lane.\r\n"),
                     "fay@example.org")
                cases = d.wait_cases(2)
                new = [c for c in cases if c["ref"] != c1["ref"]][0]
                self.assertEqual(new["queue"], "information-governance")
                # no outbox row was written when it was filed and nothing
                # is due: the sink count is final (Intaked.settle in harness.py)
                d.settle()
                self.assertEqual(len(sink.messages), 1)
                d.ctl("subject", "unrestrict", "fay@example.org", check=True)
                doc = json.loads(d.ctl("subject", "export",
                                       "fay@example.org", check=True).stdout)
                self.assertIsNone(doc["subject"]["objection_since"])
                cases = {c["ref"]: c for c in d.cases()}
                self.assertEqual(cases[c1["ref"]]["queue"], "waste")


class ApiLists(unittest.TestCase):
    def test_restricted_case_in_no_department_list(self):
        from test_api import Urllib, make_token
        from test_forms import http_daemon
        d = routed(http_daemon())
        with d:
            for who in ("jay", "kim"):
                send(d, message("Wheelie bin missed", "%s@example.org" % who,
                                "My wheelie bin was not emptied.\r\n"),
                     "%s@example.org" % who)
            cases = d.wait_cases(2)
            waste = make_token(d, "waste", "waste")
            ig = make_token(d, "ig", "information-governance")
            c = Urllib(d)

            def listed(tok, queue):
                st, _, body = c("GET", "/api/v1/queues/%s/cases" % queue,
                                token=tok)
                self.assertEqual(st, 200, body)
                return {x["ref"] for x in json.loads(body)["cases"]}
            refs = {x["ref"] for x in cases}
            self.assertEqual(listed(waste, "waste"), refs)
            d.ctl("subject", "restrict", "jay@example.org", check=True)
            d.ctl("subject", "object", "kim@example.org", check=True)
            self.assertEqual(listed(waste, "waste"), set())
            for ref in refs:
                st, _, _ = c("GET", "/api/v1/cases/" + ref, token=waste)
                self.assertEqual(st, 404)
            self.assertEqual(listed(ig, "information-governance"), refs)
            # nobody moves them out while the restriction holds: neither
            # an operator with intakectl nor the IG team through the API
            for ref in refs:
                r = d.ctl("cases", "route", ref, "--to-queue", "waste")
                self.assertEqual(r.returncode, 65, r.stderr)
                self.assertIn("restricted processing", r.stderr)
                st, _, body = c("POST", "/api/v1/cases/%s/reroute" % ref,
                                token=ig, body={"queue": "waste",
                                                "reason": "not IG"})
                self.assertEqual(st, 409, body)
                # the kind may still be corrected where the case is
                r = d.ctl("cases", "route", ref, "--to-queue",
                          "information-governance")
                self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(listed(waste, "waste"), set())
            self.assertEqual(listed(ig, "information-governance"), refs)
            d.ctl("subject", "unrestrict", "jay@example.org", check=True)
            jay = [x["ref"] for x in cases if x["from"] == "jay@example.org"]
            self.assertEqual(listed(waste, "waste"), set(jay))


class Notes(unittest.TestCase):
    def test_notes_exported_and_erased(self):
        from test_api import Urllib, make_token
        from test_forms import http_daemon
        d = http_daemon()
        with d:
            send(d, message("Fly-tipping", "ida@example.org",
                            "Rubbish dumped on Elm Road.\r\n"),
                 "ida@example.org")
            ref = d.wait_cases(1)[0]["ref"]
            tok = make_token(d, "general", "general")
            st, _, body = Urllib(d)("POST", "/api/v1/cases/%s/notes" % ref,
                                    token=tok,
                                    body={"text": "Rang Ida back on Friday."})
            self.assertEqual(st, 201, body)
            doc = json.loads(d.ctl("subject", "export", "ida@example.org",
                                   check=True).stdout)
            notes = doc["cases"][0]["notes"]
            self.assertEqual([n["text"] for n in notes],
                             ["Rang Ida back on Friday."])
            self.assertEqual(notes[0]["author"], "general")
            d.ctl("subject", "erase", "ida@example.org", "--reason",
                  "request", check=True)
            db = os.path.join(d.dir, "var", "intake.db")
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
            self.assertEqual(con.execute("SELECT count(*) FROM case_notes"
                                         ).fetchone()[0], 0)
            con.close()


GINA_TEXT = ("Dear council, I am Gina Quartermaine, born 14/02/1983, NI"
             " number AB 12 34 56 C. Write to gina.q@example.org or call"
             " 07700 900777; I live at 4 Orchard Way, EX4 4QJ. Refund to"
             " sort code 12-34-56, account 31926819, or card 4111 1111 1111"
             " 1111. The potholes on Orchard Way are getting worse.\r\n")


class Anonymise(unittest.TestCase):
    def test_anonymise_keeps_words_not_person(self):
        d = Intaked()
        with d:
            send(d, message("Potholes near EX4 4QJ",
                            "Gina Quartermaine <gina.q@example.org>",
                            GINA_TEXT), "gina.q@example.org")
            send(d, message("Bins", "hal@example.org", "Hal's bins.\r\n"),
                 "hal@example.org")
            cases = d.wait_cases(2)
            ref = [c for c in cases if c["subject"].startswith("Potholes")][0][
                "ref"]
            sid = subject_of(d, "gina.q@example.org")["id"]
            r = d.ctl("subject", "anonymise", "gina.q@example.org",
                      check=True)
            self.assertIn("anonymised", r.stdout)
            self.assertNotIn("gina", r.stdout.lower())
            kept = json.loads(d.ctl("cases", "texts", ref,
                                    check=True).stdout)
            self.assertEqual(len(kept), 1)
            text = kept[0]["text"]
            for gone in ("Gina", "Quartermaine", "14/02/1983", "AB 12 34 56 C",
                         "gina.q@example.org", "07700 900777", "EX4 4QJ",
                         "12-34-56", "31926819", "4111", "1111"):
                self.assertNotIn(gone, text)
                self.assertNotIn(gone, kept[0]["subject"])
            for placeholder in ("[name]", "[dob]", "[nino]", "[email]",
                                "[phone]", "[postcode]", "[sort-code]",
                                "[account]", "[card]"):
                self.assertIn(placeholder, text)
            self.assertIn("potholes on Orchard Way are getting worse", text)
            self.assertIn("[postcode]", kept[0]["subject"])
            # the person is gone
            self.assertIsNone(subject_of(d, "gina.q@example.org"))
            doc = json.loads(d.ctl("subject", "export", str(sid),
                                   check=True).stdout)
            self.assertEqual(doc["subject"]["erasure_reason"], "anonymised")
            self.assertEqual(doc["cases"], [])
            # the case stays, with no one behind it
            self.assertIn(ref, {c["ref"] for c in d.cases()})
            self.assertIsNotNone(subject_of(d, "hal@example.org"))
            db = os.path.join(d.dir, "var", "intake.db")
            for p in (db, db + "-wal", db + "-shm"):
                if os.path.exists(p):
                    data = open(p, "rb").read()
                    for n in (b"Quartermaine", b"07700 900777", b"potholes"):
                        self.assertNotIn(n, data)


if __name__ == "__main__":
    unittest.main()
