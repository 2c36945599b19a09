"""test_parser_corpus.py - the parser against real mail.

Covers: `intakectl parse` on every file of the real-mail corpus
(../shared/corpus/mail, skipped with a message when absent), of
tests/data/mail and of the fuzzing reproducers in tests/fuzz/crashes: each
must exit 0 with one valid JSON document, within PARSE_SECONDS (under
ASan+UBSan, `make check` runs this with INTAKE_BUILD=build-asan), with no
sanitizer report (leaks included: ASAN_OPTIONS=detect_leaks=1) and no GLib
critical or warning on stderr.  Files go many to a process; a batch that
misbehaves is run again a file at a time, so a failure names its file.

Then the differential check (tests/corpus/differential.py): subject,
sender, date and attachments of every corpus message against Python's
email package; the per-field rates are printed, every disagreement is
written to $INTAKE_BUILD/parser-corpus-disagreements.md (the reviewed copy
is tests/corpus/DISAGREEMENTS.md, made by running differential.py), and
the fair overall agreement (disagreements explained "ours right" in
tests/corpus/classifications.txt count as agreement) must be >= 98 %.
"""

import os
import sys
import time
import unittest

from harness import BUILD, INTAKECTL, ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "corpus"))
import differential  # noqa: E402

PARSE_SECONDS = 10.0     # per file, under ASan
TOTAL_SECONDS = 180.0    # the whole corpus, under ASan
MIN_AGREEMENT = 0.98     # fair overall agreement with Python
CRASHES = os.path.join(ROOT, "tests", "fuzz", "crashes")


def _files_under(d):
    return differential.corpus_files([("", d)]) if os.path.isdir(d) else []


class ParserCorpus(unittest.TestCase):
    results = None
    elapsed = None

    @classmethod
    def setUpClass(cls):
        cls.shared = _files_under(differential.SHARED_MAIL)
        cls.local = _files_under(differential.LOCAL_MAIL)
        cls.crashes = [f for f in _files_under(CRASHES)
                       if not f.endswith(".md")]
        files = cls.shared + cls.local + cls.crashes
        if not os.path.exists(INTAKECTL) or not files:
            return
        t0 = time.monotonic()
        cls.results = differential.parse_all(
            INTAKECTL, files, per_file=PARSE_SECONDS,
            env=differential.default_env())
        cls.elapsed = time.monotonic() - t0
        timed = [r for r in cls.results.values() if r.elapsed is not None]
        slow = max(timed, key=lambda r: r.elapsed) if timed else None
        sys.stdout.write(
            "\n    intakectl parse: %d files in %.1f s%s\n"
            % (len(files), cls.elapsed,
               ", slowest %s %.2f s" % (differential.display_path(slow.path),
                                        slow.elapsed) if slow else ""))

    def _check(self, files):
        self.assertTrue(os.path.exists(INTAKECTL), INTAKECTL + " missing")
        bad = ["%s: %s" % (differential.display_path(f),
                           self.results[f].error)
               for f in files if self.results[f].error]
        if bad:
            self.fail("%d of %d files failed:\n  %s"
                      % (len(bad), len(files), "\n  ".join(bad)))

    def test_shared_corpus_parses(self):
        if not self.shared:
            self.skipTest("no real-mail corpus at %s" % differential.SHARED_MAIL)
        self._check(self.shared)
        self.assertLess(self.elapsed, TOTAL_SECONDS,
                        "the corpus took %.0f s" % self.elapsed)

    def test_local_data_parses(self):
        self.assertTrue(self.local, "tests/data/mail is empty")
        self._check(self.local)

    def test_fuzz_reproducers_parse(self):
        """Inputs the fuzzer found (tests/fuzz/crashes): fixed bugs stay
        fixed; a known one fails here until it is."""
        if not self.crashes:
            self.skipTest("no reproducers in tests/fuzz/crashes")
        self._check(self.crashes)

    def test_differential_against_python(self):
        if self.results is None:
            self.skipTest("nothing parsed")
        if not self.shared:
            # The agreement target is defined on the shared real-mail corpus;
            # the few files in tests/data/mail alone are not a sample of it.
            self.skipTest("no real-mail corpus at %s: differential check skipped"
                          % differential.SHARED_MAIL)
        corpus = {f: r for f, r in self.results.items()
                  if f in set(self.shared + self.local)}
        c = differential.compare(corpus)
        c.intakectl = INTAKECTL
        sys.stdout.write("\n" + c.summary() + "\n")
        report = os.path.join(BUILD, "parser-corpus-disagreements.md")
        unexplained = differential.write_report(c, report)
        sys.stdout.write("    %d disagreements (%d unexplained): %s\n    "
                         % (len(c.disagreements), unexplained, report))
        self.assertGreater(c.messages, 0)
        if c.rate(fair=True) < MIN_AGREEMENT:
            against = {}
            for p, f, why in c.bugs():
                against.setdefault((p, why), []).append(f)
            self.fail("fair agreement %.2f%% < %.0f%%; against us:\n  %s"
                      % (100 * c.rate(fair=True), 100 * MIN_AGREEMENT,
                         "\n  ".join("%s [%s]: %s" % (p, ",".join(fs), why[:200])
                                     for (p, why), fs in against.items())))


if __name__ == "__main__":
    unittest.main()
