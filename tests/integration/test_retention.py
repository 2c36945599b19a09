"""test_retention.py - the retention schedule (issue 9) with an injected
clock (INTAKE_TEST_NOW, unix seconds, read by `intakectl retention run` and
by intaked's daily job).

Life cycle: five cases arrive -- an enquiry, a complaint, an enquiry left
open, an enquiry put on legal hold, and a parking fine that a routing rule
files under the `financial` class.  All but the open one are closed.  Then
time passes:
  - a year on: nothing is due (dry run and run); the clock set back a
    day: still nothing, and the last run stays the later time;
  - two years and ten days on: the clock has jumped more than a day past
    the daily interval since the last run, so the run stops (EX_TEMPFAIL),
    deletes nothing and audits the refusal; the dry run lists the enquiry
    with its class and basis; confirmed, the run deletes exactly the
    enquiry (the held one stays), audits it without personal data and
    erases its sender, who has nothing left;
  - released, the held case goes on the next day's run;
  - five years on the parking fine (financial) goes, the complaint (six
    years) stays; seven years on the complaint and the open enquiry (the
    seven-year maximum) go.
The audit chain verifies at the end.

Killed half-way: six due cases, batches of two, the run SIGKILLed after
its first batch; the next run deletes the other four; every case is
deleted (and audited) exactly once.

Webhook: a CRM that heard of a case hears, with its reference only, that
the schedule deleted it.

Daily job: intaked with its first run after a second and an injected
clock three years ahead deletes a closed enquiry by itself.
"""

import json
import os
import re
import signal
import sqlite3
import time
import unittest

from harness import Intaked, message

YEAR = 365.25 * 24 * 3600
DAY = 24 * 3600

RULES = """\
queues general, complaints
default queue general, kind enquiry
rule "complaints" when subject contains "complaint"
  then kind complaint, queue complaints
rule "parking fines are financial records" when subject contains "parking fine"
  then queue general, retention financial
"""


def send(d, subject, sender, body="Some words.\r\n"):
    with d.smtp() as s:
        s.sendmail(sender, ["enquiries@council.example"],
                   message(subject, sender, body))


def with_rules(d):
    path = os.path.join(d.dir, "conf", "rules.conf")
    with open(path, "w") as f:
        f.write(RULES)
    d.configure("routing", "rules", "rules.conf")
    return d


def run(d, now, *extra):
    d.extra_env["INTAKE_TEST_NOW"] = str(int(now))
    try:
        return d.ctl("retention", "run", *extra)
    finally:
        del d.extra_env["INTAKE_TEST_NOW"]


def refs(d):
    return {c["subject"]: c["ref"] for c in d.cases()}


def audit(d, action):
    db = os.path.join(d.dir, "var", "intake.db")
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    rows = con.execute("SELECT actor, object, detail, outcome FROM audit"
                       " WHERE action = ? ORDER BY id", (action,)).fetchall()
    con.close()
    return rows


class LifeCycle(unittest.TestCase):
    def test_schedule_holds_and_clock(self):
        d = with_rules(Intaked())
        t0 = time.time()
        with d:
            send(d, "Question about bins", "ann@example.org")
            send(d, "My complaint about noise", "ben@example.org")
            send(d, "Still open question", "cat@example.org")
            send(d, "Question kept for court", "dan@example.org")
            send(d, "Parking fine appeal", "eve@example.org")
            d.wait_cases(5)
            r = refs(d)
            for subj in ("Question about bins", "My complaint about noise",
                         "Question kept for court", "Parking fine appeal"):
                d.ctl("cases", "status", r[subj], "closed", check=True)
            self.assertEqual(d.ctl("cases", "hold",
                                   r["Question kept for court"]).returncode,
                             64)
            d.ctl("cases", "hold", r["Question kept for court"], "--reason",
                  "Claim 2026/77 by Dan Example", check=True)

            # a year on: nothing
            out = run(d, t0 + YEAR, "--dry-run")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("dry run: 5 cases, 0 due", out.stdout)
            out = run(d, t0 + YEAR)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(len(d.cases()), 5)
            # the due date is on each case, and the person can see it
            doc = json.loads(d.ctl("subject", "export", "ben@example.org",
                                   check=True).stdout)
            when = doc["cases"][0]["delete_after"]
            self.assertEqual(when[:4], time.strftime(
                "%Y", time.gmtime(t0 + 6 * YEAR)))
            self.assertFalse(doc["cases"][0]["legal_hold"])
            doc = json.loads(d.ctl("subject", "export", "dan@example.org",
                                   check=True).stdout)
            self.assertTrue(doc["cases"][0]["legal_hold"])

            # the clock set back a day: runs, deletes nothing, and the
            # last run stays the later one
            out = run(d, t0 + YEAR - DAY)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("0 deleted", out.stdout)

            # two years and ten days on: the clock jumped past the interval
            later = t0 + 2 * YEAR + 10 * DAY
            out = run(d, later)
            self.assertEqual(out.returncode, 75, out.stdout + out.stderr)
            self.assertIn("--confirm-clock-jump", out.stderr)
            self.assertEqual(len(d.cases()), 5)
            self.assertEqual(audit(d, "retention.run")[-1][3], "refused")
            out = run(d, later, "--dry-run")
            self.assertEqual(out.returncode, 0, out.stderr)
            lines = [l for l in out.stdout.splitlines() if "would-delete" in l]
            self.assertEqual(len(lines), 1)
            self.assertTrue(lines[0].startswith(r["Question about bins"]))
            self.assertIn("class=enquiry", lines[0])
            self.assertRegex(lines[0], r"basis=closed-\d{4}-\d\d-\d\d\+2y")
            self.assertIn("1 on legal hold", out.stdout)
            out = run(d, later, "--confirm-clock-jump")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("1 deleted", out.stdout)
            left = refs(d)
            self.assertNotIn("Question about bins", left)
            self.assertEqual(len(left), 4)
            deleted = audit(d, "case.deleted")
            self.assertEqual([x[1] for x in deleted],
                             [r["Question about bins"]])
            self.assertEqual(deleted[0][0], "retention")
            self.assertNotIn("ann", repr(audit(d, "case.deleted")))
            self.assertNotIn("Claim", repr(audit(d, "case.hold")))
            # her sender had nothing left: erased
            self.assertEqual(d.ctl("subjects", "find",
                                   "ann@example.org").returncode, 66)
            self.assertEqual(d.ctl("subjects", "find",
                                   "dan@example.org").returncode, 0)

            # released: it goes the next day
            d.ctl("cases", "release", r["Question kept for court"],
                  check=True)
            out = run(d, later + DAY)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertNotIn("Question kept for court", refs(d))

            # five years: the financial record; the complaint stays
            out = run(d, t0 + 5 * YEAR + 2 * DAY, "--confirm-clock-jump")
            self.assertEqual(out.returncode, 0, out.stderr)
            left = refs(d)
            self.assertNotIn("Parking fine appeal", left)
            self.assertIn("My complaint about noise", left)
            self.assertIn("class=financial",
                          [x for x in audit(d, "case.deleted")
                           if x[1] == r["Parking fine appeal"]][0][2])
            # seven years: the complaint, and the open case at the maximum
            out = run(d, t0 + 7 * YEAR + 2 * DAY, "--confirm-clock-jump")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(refs(d), {})
            details = {x[1]: x[2] for x in audit(d, "case.deleted")}
            self.assertIn("maximum", details[r["Still open question"]])
            self.assertIn("class=complaint",
                          details[r["My complaint about noise"]])
            self.assertEqual(len(details), 5)
            self.assertIn("verified", d.ctl("audit", "verify",
                                            check=True).stdout)


class KilledRun(unittest.TestCase):
    def test_killed_half_way_resumes_once(self):
        d = Intaked()
        t0 = time.time()
        with d:
            for i in range(6):
                send(d, "Question number %d" % i, "p%d@example.org" % i)
            cases = d.wait_cases(6)
            for c in cases:
                d.ctl("cases", "status", c["ref"], "closed", check=True)
            d.extra_env.update({"INTAKE_RETENTION_BATCH": "2",
                                "INTAKE_FAULT_RETENTION_KILL": "1"})
            out = run(d, t0 + 3 * YEAR)
            self.assertEqual(out.returncode, -signal.SIGKILL)
            self.assertEqual(len(d.cases()), 4)
            del d.extra_env["INTAKE_FAULT_RETENTION_KILL"]
            out = run(d, t0 + 3 * YEAR)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("4 deleted", out.stdout)
            self.assertEqual(d.cases(), [])
            objs = [x[1] for x in audit(d, "case.deleted")]
            self.assertEqual(sorted(objs), sorted(c["ref"] for c in cases))
            self.assertIn("verified", d.ctl("audit", "verify",
                                            check=True).stdout)


class Webhook(unittest.TestCase):
    def test_crm_told_of_deleted_case(self):
        from test_webhooks import Receiver, with_webhook
        t0 = time.time()
        with Receiver() as rx:
            d = with_webhook(Intaked(), "general", rx.port)
            with d:
                send(d, "Question to forget", "fay@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                rx.wait(1)
                d.ctl("cases", "status", ref, "closed", check=True)
                rx.wait(2)
                out = run(d, t0 + 3 * YEAR)
                self.assertEqual(out.returncode, 0, out.stderr)
                erased = rx.wait(3)[2]["json"]
        self.assertEqual(erased["event"], "case.erased")
        self.assertEqual(erased["case"], {"ref": ref, "erased": True})


class DailyJob(unittest.TestCase):
    def test_intaked_runs_the_schedule(self):
        t0 = time.time()
        d = Intaked(env={"INTAKE_RETENTION_FIRST_S": "1",
                         "INTAKE_RETENTION_INTERVAL_S": "1",
                         "INTAKE_TEST_NOW": str(int(t0 + 3 * YEAR))})
        with d:
            send(d, "Old question", "old@example.org")
            ref = d.wait_cases(1)[0]["ref"]
            d.ctl("cases", "status", ref, "closed", check=True)
            deadline = time.time() + 60
            while d.cases() and time.time() < deadline:
                time.sleep(0.2)
            self.assertEqual(d.cases(), [])
            self.assertRegex(d.log(), r"event=retention-run .*deleted=1")


if __name__ == "__main__":
    unittest.main()
