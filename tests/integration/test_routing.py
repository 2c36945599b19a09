"""test_routing.py - routing through the real daemon and intakectl (issue 5).

Covers: `rules check` reporting every error as file:line:column (exit 65)
and passing the shipped conf/rules.conf; `rules test --json` giving queue,
kind, priority, due, rule and scores for .eml files without storing
anything; the daemon filing an FOI request into information-governance
with its statutory due date and the rule that routed it; a header in
intake's own namespace changing nothing (SECURITY-TESTS 72); SIGHUP and
`rules reload` swapping the rules, a bad file keeping the old ones;
`rules stats`; `rules test --replay` with a draft moving cases; a
general complaint reaching the complaints queue through the shipped
models;
`holidays import` refusing a bad file.
"""

import json
import os
import re
import shutil
import sqlite3
import time
import unittest

from harness import ROOT, Intaked, message


def routed(d):
    """A daemon with the shipped rules, clocks and holidays."""
    conf_dir = os.path.join(d.dir, "conf")
    shutil.copy(os.path.join(ROOT, "conf", "rules.conf"), conf_dir)
    shutil.copy(os.path.join(ROOT, "conf", "bank-holidays.json"), conf_dir)
    d.configure("routing", "rules", "rules.conf")
    d.configure("clocks", "holidays", "bank-holidays.json")
    d.configure("clocks", "nation", "england-and-wales")
    d.configure("clocks", "foi-request", "20 UK working days")
    d.configure("clocks", "foi", "20 UK working days")
    d.configure("clocks", "sar", "1 calendar month")
    d.configure("clocks", "none", "none")
    return d


def with_models(d):
    """@d with the shipped kind and topic models."""
    models = os.path.join(d.dir, "conf", "models")
    os.makedirs(models, exist_ok=True)
    for m in ("kind.model", "topic.model"):
        shutil.copy(os.path.join(ROOT, "conf", "models", m), models)
    d.configure("routing", "kind_model", "models/kind.model")
    d.configure("routing", "topic_model", "models/topic.model")
    return d


def send(d, data, sender="citizen@example.org",
         rcpt="enquiries@council.example"):
    with d.smtp() as s:
        s.sendmail(sender, [rcpt], data)


def reasons(d):
    db = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))
    try:
        return {r[0]: (r[1], r[2], r[3], json.loads(r[4]) if r[4] else None,
                       r[5])
                for r in db.execute("SELECT ref, queue, kind, due_at,"
                                    " reasons, rules_hash FROM cases")}
    finally:
        db.close()


class Check(unittest.TestCase):
    def test_shipped_rules_pass(self):
        d = routed(Intaked())
        r = d.ctl("rules", "check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("14 queues, OK", r.stdout)

    def test_every_error(self):
        d = routed(Intaked())
        bad = os.path.join(d.dir, "conf", "bad.conf")
        with open(bad, "w") as f:
            f.write("queues a, b\ndefault queue a\n"
                    "rule \"x\" when subjekt is y then queue a\n"
                    "rule \"y\" when subject is y then queue nowhere\n")
        r = d.ctl("rules", "check", bad)
        self.assertEqual(r.returncode, 65)
        self.assertIn(bad + ":3:15: expected a field, found subjekt", r.stderr)
        self.assertIn(bad + ":4:39: unknown queue 'nowhere'", r.stderr)
        self.assertEqual(d.ctl("rules", "check", "/nonexistent").returncode,
                         66)


class Decide(unittest.TestCase):
    def test_rules_test_json(self):
        d = routed(Intaked())
        eml = os.path.join(d.dir, "foi.eml")
        with open(eml, "wb") as f:
            f.write(message("Request for information", "jo@example.org",
                            "Under the Freedom of Information Act 2000 please"
                            " tell me what you spent on potholes.\r\n",
                            extra="Date: Fri, 18 Dec 2026 10:00:00 +0000\r\n"))
        r = d.ctl("rules", "test", "--json", eml)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        for key in ("queue", "kind", "priority", "due", "rule", "scores"):
            self.assertIn(key, out[0])
        self.assertEqual(out[0]["queue"], "information-governance")
        self.assertEqual(out[0]["kind"], "foi-request")
        # 20 UK working days after Friday 18 December 2026: Christmas,
        # Boxing Day (Monday 28th), New Year's Day and Scotland's
        # 2 January holiday (Monday 4th) do not count
        self.assertEqual(out[0]["due"], "2027-01-21")
        self.assertEqual(out[0]["rule"]["name"], "freedom of information")
        self.assertFalse(os.path.exists(os.path.join(d.dir, "var",
                                                     "intake.db")))

    def test_question_about_a_request_has_no_clock(self):
        """A question about how to make an FOI request is an enquiry with
        no due date, even when the FOI rule matches it too (the example
        rules' "sla none")."""
        d = routed(Intaked())
        eml = os.path.join(d.dir, "q.eml")
        with open(eml, "wb") as f:
            f.write(message("A question", "jo@example.org",
                            "How do I make an FOI request? I want to ask under"
                            " the Freedom of Information Act what the council"
                            " spent on consultants.\r\n",
                            extra="Date: Fri, 18 Dec 2026 10:00:00 +0000\r\n"))
        r = d.ctl("rules", "test", "--json", eml)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)[0]
        self.assertEqual(out["kind"], "enquiry")
        self.assertEqual(out["queue"], "information-governance")
        self.assertIn("freedom of information", out["fired"])
        self.assertIsNone(out["due"])

    def test_general_complaint_to_complaints_queue(self):
        """With the shipped models, dissatisfaction with the council as a
        whole (no replies, passed around: the training README's convention
        12) goes to the complaints queue through the classifier's
        complaints department; a question for no one service stays in
        the default queue."""
        d = routed(Intaked())
        with_models(d)
        emls = []
        for name, subject, body in (
                ("c.eml", "Still nothing",
                 "This is my third email this month and nobody has"
                 " replied. Every time I ring I get passed from one"
                 " department to another.\r\n"),
                ("q.eml", "Opening hours",
                 "What time does the town hall reception open on"
                 " Saturdays?\r\n")):
            emls.append(os.path.join(d.dir, name))
            with open(emls[-1], "wb") as f:
                f.write(message(subject, "jo@example.org", body))
        r = d.ctl("rules", "test", "--json", *emls)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out[0]["queue"], "complaints")
        self.assertEqual(out[0]["rule"]["name"],
                         "classifier: best department (complaints)")
        self.assertEqual(out[1]["queue"], "customer-services")
        self.assertEqual(out[1]["rule"]["name"], "default")

    def test_daemon_routes_and_ignores_own_headers(self):
        d = routed(Intaked())
        with d:
            send(d, message("FOI request", "jo@example.org",
                            "Please provide the number of potholes.\r\n"),
                 "jo@example.org", "foi@council.example")
            # a header in intake's own namespace from outside: ignored
            send(d, message("Question", "kim@example.org",
                            "When does the library open?\r\n",
                            extra="X-Intake-Queue: information-governance\r\n"
                                  "X-Intake-Priority: urgent\r\n"),
                 "kim@example.org")
            cases = d.wait_cases(2)
        by_from = {c["from"]: c for c in cases}
        foi = by_from["jo@example.org"]
        self.assertEqual(foi["queue"], "information-governance")
        self.assertEqual(foi["kind"], "foi-request")
        self.assertIsNotNone(foi["due"])
        kim = by_from["kim@example.org"]
        self.assertEqual(kim["queue"], "customer-services")
        self.assertEqual(kim["priority"], "normal")
        rs = reasons(d)
        row = rs[foi["ref"]]
        self.assertEqual(row[3]["rule"], "freedom of information")
        self.assertEqual(len(row[4]), 64)
        self.assertEqual(rs[kim["ref"]][3]["rule"], "default")
        # no personal data in the reasons
        self.assertNotIn("jo@", json.dumps(row[3]))


    def test_possible_request_tagged_and_listed(self):
        """With the shipped models, a question the classifier leans on as
        an FOI request (a fifth or more) that no rule made one keeps its
        department and kind, carries the tag possible-request, and
        `cases list --tag possible-request` lists it and nothing else."""
        d = routed(Intaked())
        with_models(d)
        with d:
            send(d, message("Car park",  "jo@example.org",
                            "Out of interest, roughly what does the council"
                            " make each year from the car park on Station"
                            " Road?\r\n"), "jo@example.org")
            send(d, message("Pothole", "kim@example.org",
                            "There is a pothole outside number 14 Mill"
                            " Lane.\r\n"), "kim@example.org")
            cases = d.wait_cases(2)
        by_from = {c["from"]: c for c in cases}
        jo = by_from["jo@example.org"]
        self.assertEqual(jo["kind"], "enquiry")
        self.assertIsNone(jo["due"])
        rs = reasons(d)
        self.assertIn("possible-request", rs[jo["ref"]][3]["tags"])
        self.assertNotIn("possible-request",
                         rs[by_from["kim@example.org"]["ref"]][3]["tags"])
        r = d.ctl("cases", "list", "--tag", "possible-request", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([c["ref"] for c in json.loads(r.stdout)],
                         [jo["ref"]])
        r = d.ctl("cases", "list", "--tag", "no-such-tag", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), [])
        r = d.ctl("cases", "list", "--tag", "Not a tag")
        self.assertEqual(r.returncode, 64)
        self.assertIn("--tag Not a tag: not a tag", r.stderr)


class Reload(unittest.TestCase):
    def test_sighup_and_bad_file(self):
        d = routed(Intaked())
        path = os.path.join(d.dir, "conf", "rules.conf")
        with d:
            send(d, message("bins", "a@example.org",
                            "my wheelie bin was not emptied\r\n"),
                 "a@example.org")
            c1 = d.wait_cases(1)
            self.assertEqual(c1[0]["queue"], "waste")
            with open(path) as f:
                text = f.read()
            # a draft: bins go to street-cleansing
            with open(path, "w") as f:
                f.write(text.replace(
                    "  then queue waste\nrule \"street cleansing\"",
                    "  then queue street-cleansing\nrule \"street cleansing\""))
            r = d.ctl("rules", "reload")
            self.assertEqual(r.returncode, 0, r.stderr)
            deadline = time.time() + 60
            while "event=rules-reload result=ok" not in d.log():
                self.assertLess(time.time(), deadline, d.log()[-2000:])
                time.sleep(0.05)
            send(d, message("bins again", "b@example.org",
                            "the recycling bin was missed\r\n"),
                 "b@example.org")
            cases = d.wait_cases(2)
            by_from = {c["from"]: c for c in cases}
            self.assertEqual(by_from["b@example.org"]["queue"],
                             "street-cleansing")
            # a broken file: the CLI refuses to signal, SIGHUP keeps the old
            with open(path, "a") as f:
                f.write("\nrule \"broken\" when nonsense\n")
            r = d.ctl("rules", "reload")
            self.assertEqual(r.returncode, 65)
            d.proc.send_signal(1)
            deadline = time.time() + 60
            while "result=kept-old" not in d.log():
                self.assertLess(time.time(), deadline, d.log()[-2000:])
                time.sleep(0.05)
            send(d, message("bins thrice", "c@example.org",
                            "my bin again\r\n"), "c@example.org")
            cases = d.wait_cases(3)
            by_from = {c["from"]: c for c in cases}
            self.assertEqual(by_from["c@example.org"]["queue"],
                             "street-cleansing")
            self.assertTrue(d.proc.poll() is None)
            # the two rule sets are told apart by their hash
            hashes = {row[4] for row in reasons(d).values()}
            self.assertEqual(len(hashes), 2)

            # stats and replay (the daemon may run meanwhile)
            with open(path, "w") as f:
                f.write(text)
            r = d.ctl("rules", "stats", check=True)
            self.assertIn("never fired:", r.stdout)
            self.assertRegex(r.stdout, r"\n\s+\d+\s+3\s+\d+\s+waste and"
                                       r" recycling")
            r = d.ctl("rules", "test", "--replay", "--rules", path,
                      check=True)
            self.assertIn("replayed 3 cases", r.stdout)
            self.assertIn("2 would move", r.stdout)
            self.assertIn("street-cleansing -> waste", r.stdout)
            # a bad --examples is a usage error naming the flag, not 0
            for bad in ("x", "0", "-1"):
                r = d.ctl("rules", "test", "--replay", "--rules", path,
                          "--examples", bad)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertIn("--examples takes a number", r.stderr)


class Classify(unittest.TestCase):
    def test_train_eval_and_csv(self):
        d = routed(Intaked())
        csv_path = os.path.join(d.dir, "train.csv")
        rows = []
        for i in range(30):
            rows.append('"my bin was not emptied on street %d",waste' % i)
            rows.append('"pothole in the road near number %d",highways' % i)
            rows.append('"the swings in the park are broken again %d",parks'
                        % i)
        with open(csv_path, "w") as f:
            f.write("text,department\n" + "\n".join(rows) + "\n")
        model = os.path.join(d.dir, "conf", "topic.model")
        r = d.ctl("classify", "train", csv_path, "--label", "department",
                  "--out", model)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3 classes", r.stdout)
        r = d.ctl("classify", "eval", csv_path, "--label", "department",
                  "--model", model)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("macro-F1", r.stdout)
        self.assertIn("1.0000", r.stdout)
        # the whole decision against the labels, with the model in use
        d.configure("routing", "topic_model", "topic.model")
        r = d.ctl("rules", "test", "--csv", csv_path, "--label",
                  "department")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("rows: 90", r.stdout)
        self.assertIn("macro-F1 (gold classes)", r.stdout)
        self.assertIn("confusion", r.stdout)
        # --by-rule: per deciding rule, rows = right + wrong, the rows add
        # up to the file, and no row's text is printed
        r = d.ctl("rules", "test", "--csv", csv_path, "--label",
                  "department", "--by-rule")
        self.assertEqual(r.returncode, 0, r.stderr)
        part = r.stdout.split("by deciding rule (rows, right, wrong):\n")[1]
        lines = [x for x in part.split("\n")
                 if re.match(r"\s+\d+\s+\d+\s+\d+\s+\S", x)]
        self.assertGreater(len(lines), 0)
        total = 0
        for x in lines:
            n, right, wrong = (int(v) for v in x.split()[:3])
            self.assertEqual(n, right + wrong, x)
            self.assertRegex(x, r"\(line \d+\)$")
            total += n
        self.assertEqual(total, 90)
        self.assertNotIn("swings", r.stdout)
        self.assertNotIn("pothole", r.stdout)
        # the training knobs: nblr with averaged seeds is saved as such;
        # a bad value is a usage error naming the flag
        r = d.ctl("classify", "train", csv_path, "--label", "department",
                  "--method", "nblr", "--l2", "1e-4", "--seeds", "3",
                  "--out", model + ".nblr")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(model + ".nblr") as f:
            self.assertIn("\nmethod nblr\n", f.read())
        # --polarity: "broken" (a word of complaint) gives the model a
        # "#neg" feature; without the flag it has none
        r = d.ctl("classify", "train", csv_path, "--label", "department",
                  "--polarity", "--out", model + ".pol")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(model + ".pol") as f:
            self.assertIn("\t#neg\n", f.read())
        with open(model) as f:
            self.assertNotIn("\t#neg\n", f.read())
        for flag, value in (("--method", "svm"), ("--l2", "-1"),
                            ("--seeds", "0"), ("--seed", "x")):
            r = d.ctl("classify", "train", csv_path, "--label",
                      "department", flag, value, "--out", model + ".bad")
            self.assertEqual(r.returncode, 64, r.stderr)
            self.assertIn(flag, r.stderr)
            self.assertFalse(os.path.exists(model + ".bad"))
        # a malformed CSV names the line
        bad = os.path.join(d.dir, "bad.csv")
        with open(bad, "w") as f:
            f.write('text,department\n"unclosed,waste\n')
        r = d.ctl("classify", "train", bad, "--label", "department",
                  "--out", model + ".2")
        self.assertEqual(r.returncode, 65)
        self.assertIn("bad.csv:", r.stderr)


class Reroute(unittest.TestCase):
    def test_reroute_trains(self):
        d = routed(Intaked())
        with d:
            send(d, message("noise", "n@example.org",
                            "The dog next door barks all night.\r\n"),
                 "n@example.org")
            ref = d.wait_cases(1)[0]["ref"]
        r = d.ctl("cases", "route", ref, "--to-queue", "nowhere")
        self.assertEqual(r.returncode, 65)
        r = d.ctl("cases", "route", ref, "--to-queue",
                  "environmental-health", "--to-kind", "complaint")
        self.assertEqual(r.returncode, 0, r.stderr)
        c = [x for x in d.cases() if x["ref"] == ref][0]
        self.assertEqual(c["queue"], "environmental-health")
        self.assertEqual(c["kind"], "complaint")
        rows = [x for x in sqlite3.connect(
            os.path.join(d.dir, "var", "intake.db")).execute(
                "SELECT detail FROM audit WHERE action = 'case.reroute'")]
        self.assertEqual(len(rows), 1)
        self.assertIn("queue=", rows[0][0])
        train = os.path.join(d.dir, "t.csv")
        with open(train, "w") as f:
            f.write("text,department\n")
            for i in range(20):
                f.write('"bin not emptied %d",waste\n' % i)
                f.write('"pothole on road %d",highways\n' % i)
        out = os.path.join(d.dir, "conf", "t.model")
        r = d.ctl("classify", "train", train, "--label", "department",
                  "--out", out, "--from-cases")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("+ 1 re-routed cases: 3 classes", r.stdout)


    def test_reroute_to_a_statutory_kind_starts_its_clock(self):
        """A case a person recognises as an FOI request takes the FOI clock
        counted from the day the message arrived, not from the re-routing;
        re-routed on to a kind without a clock, it has no due date; the
        audit event records both dates.  A change of queue alone leaves
        the due date alone."""
        d = routed(Intaked())
        with d:
            send(d, message("Car park", "jo@example.org",
                            "What does the car park on Station Road earn"
                            " the council?\r\n",
                            extra="Date: Fri, 18 Dec 2026 10:00:00 +0000\r\n"),
                 "jo@example.org")
            ref = d.wait_cases(1)[0]["ref"]
        db = os.path.join(d.dir, "var", "intake.db")

        def due_and_received():
            c = sqlite3.connect(db)
            try:
                return c.execute(
                    "SELECT c.due_at, min(m.received_at) FROM cases c"
                    " JOIN messages m ON m.case_id = c.id"
                    " WHERE c.ref = ?", (ref,)).fetchone()
            finally:
                c.close()

        # the message arrived "in December 2026": date the arrival there so
        # that the expected day is known (Christmas and New Year inside)
        arrived = 1797588000 * 1000000   # Fri 18 Dec 2026 10:00 UTC
        c = sqlite3.connect(db)
        c.execute("UPDATE messages SET received_at = ?", (arrived,))
        c.execute("UPDATE cases SET due_at = NULL, kind = 'enquiry'")
        c.commit()
        c.close()
        r = d.ctl("cases", "route", ref, "--to-queue", "parking")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(due_and_received()[0])
        r = d.ctl("cases", "route", ref, "--to-queue",
                  "information-governance", "--to-kind", "foi-request")
        self.assertEqual(r.returncode, 0, r.stderr)
        due, received = due_and_received()
        self.assertEqual(received, arrived)
        # 20 UK working days after Friday 18 December 2026 (as in
        # test_rules_test_json): Thursday 21 January 2027
        self.assertEqual(due, 1800489600 * 1000000)
        r = d.ctl("cases", "route", ref, "--to-kind", "enquiry")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(due_and_received()[0])
        c = sqlite3.connect(db)
        rows = [x[0] for x in c.execute(
            "SELECT detail FROM audit WHERE action = 'case.reroute'"
            " ORDER BY id")]
        c.close()
        self.assertEqual(len(rows), 3)
        self.assertNotIn("due=", rows[0])
        self.assertIn("kind=enquiry->foi-request due=none->2027-01-21",
                      rows[1])
        self.assertIn("kind=foi-request->enquiry due=2027-01-21->none",
                      rows[2])
        self.assertEqual(d.ctl("audit", "verify").returncode, 0)

class Holidays(unittest.TestCase):
    def test_import(self):
        d = routed(Intaked())
        bad = os.path.join(d.dir, "bad.json")
        with open(bad, "w") as f:
            f.write('{"england-and-wales": {"events": [{"title": "x",'
                    ' "date": "2026-02-30"}]}}')
        r = d.ctl("holidays", "import", bad)
        self.assertEqual(r.returncode, 65)
        self.assertIn("bad.json", r.stderr)
        good = os.path.join(ROOT, "conf", "bank-holidays.json")
        r = d.ctl("holidays", "import", good)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
