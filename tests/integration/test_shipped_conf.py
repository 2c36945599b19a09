"""The example conf/ as shipped meets issue 5's quality targets.

`intakectl rules test --csv` decides every row with the shipped rules and
both shipped models, exactly as `sh scripts/classify-eval.sh` does, and
this test holds the figures to the targets, so that a change to the
rules, the models or the tokenizer that loses them fails here rather
than in a closing note:

- FOI and SAR on tests/data/foi-sar/requests.csv (588 rows written for
  intake): precision >= 0.90 and recall >= 0.95 for each;
- departments on ../shared/corpus/labelled/newport-departments.csv:
  macro-F1 >= 0.80; kinds on airline-kinds.csv (service-request counted
  as enquiry): macro-F1 >= 0.70.  Those two sets are licensed for
  evaluation only and live beside the project, not in it: without
  ../shared the two tests skip and say so.

The figures are those of docs/classifier.md ("Where it stands"); the
blind set heldout3.csv, on which FOI recall is below target, is measured
by the script, not held to the target here.
"""

import os
import re
import subprocess
import unittest

from harness import INTAKECTL, ROOT, SHARED

CONF = os.path.join(ROOT, "conf", "intake.conf")
FOISAR = os.path.join(ROOT, "tests", "data", "foi-sar", "requests.csv")
LABELLED = os.path.join(SHARED, "corpus", "labelled")
OTHER = ["--map", "enquiry=other", "--map", "complaint=other",
         "--map", "compliment=other", "--map", "service-request=other",
         "--map", "rights-request=other", "--map", "auto-reply=other"]


def rules_test(*args):
    r = subprocess.run([INTAKECTL, "-c", CONF, "rules", "test"] + list(args),
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError("rules test %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def macro_f1(out):
    m = re.search(r"^macro-F1 \(gold classes\): ([0-9.]+)$", out, re.M)
    if m is None:
        raise AssertionError("no macro-F1 line in:\n" + out)
    return float(m.group(1))


def per_class(out, label):
    m = re.search(r"^%s +([0-9.]+) +([0-9.]+) +[0-9.]+ +(\d+)$"
                  % re.escape(label), out, re.M)
    if m is None:
        raise AssertionError("no line for %s in:\n%s" % (label, out))
    return float(m.group(1)), float(m.group(2)), int(m.group(3))


class ShippedConf(unittest.TestCase):
    def test_foi_and_sar_on_requests(self):
        out = rules_test("--label", "kind", "--csv", FOISAR, *OTHER)
        self.assertIn("rows: 588", out)
        for kind, support in (("foi-request", 217), ("sar", 155)):
            p, r, n = per_class(out, kind)
            self.assertEqual(n, support)
            self.assertGreaterEqual(p, 0.90, "%s precision %.3f" % (kind, p))
            self.assertGreaterEqual(r, 0.95, "%s recall %.3f" % (kind, r))

    def test_departments_on_newport(self):
        path = os.path.join(LABELLED, "newport-departments.csv")
        if not os.path.exists(path):
            self.skipTest("no labelled evaluation set at %s" % path)
        out = rules_test("--label", "department", "--csv", path)
        self.assertIn("rows: 284", out)
        f1 = macro_f1(out)
        self.assertGreaterEqual(f1, 0.80, "newport macro-F1 %.4f" % f1)

    def test_kinds_on_airline(self):
        path = os.path.join(LABELLED, "airline-kinds.csv")
        if not os.path.exists(path):
            self.skipTest("no labelled evaluation set at %s" % path)
        out = rules_test("--label", "kind", "--map", "service-request=enquiry",
                         "--csv", path)
        self.assertIn("rows: 7320", out)
        f1 = macro_f1(out)
        self.assertGreaterEqual(f1, 0.70, "airline macro-F1 %.4f" % f1)


    def test_statutory_clocks_of_the_shipped_conf(self):
        """The shipped [clocks]: an FOI request 20 UK working days, a
        subject access request and a rights request (UK GDPR Art. 12(3))
        one calendar month, all from the day of receipt."""
        import json
        import tempfile
        from harness import message
        cases = (
            ("foi", "Under the Freedom of Information Act 2000 please tell"
                    " me what the council spent on consultants in 2025.",
             "foi-request", "2027-01-21"),
            ("sar", "This is a subject access request. Please send me a"
                    " copy of all the personal data you hold about me.",
             "sar", "2027-01-18"),
            ("rights", "Please delete all the personal data you hold about"
                       " me, and erase my email address and phone number"
                       " from your systems.",
             "rights-request", "2027-01-18"),
        )
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for name, body, _, _ in cases:
                paths.append(os.path.join(tmp, name + ".eml"))
                with open(paths[-1], "wb") as f:
                    f.write(message("Request", "jo@example.org",
                                    body + "\r\n",
                                    extra="Date: Fri, 18 Dec 2026 10:00:00"
                                          " +0000\r\n"))
            out = json.loads(rules_test("--json", *paths))
        for (name, _, kind, due), got in zip(cases, out):
            self.assertEqual(got["kind"], kind, name)
            self.assertEqual(got["due"], due, name)


if __name__ == "__main__":
    unittest.main()
