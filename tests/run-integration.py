#!/usr/bin/env python3
"""Run the integration tests (tests/integration/test_*.py) with unittest.

Prints one line per test and, last, "N passed, N failed, N skipped";
exits non-zero if anything failed.  Pass test names (module or
module.Class.test) to run only those.  --counts FILE also writes the
three numbers to FILE for scripts/check.sh.
"""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.stream.write("  (%.1fs)\n" % (time.time() - self._t0))


def main():
    args = sys.argv[1:]
    counts = None
    if "--counts" in args:
        i = args.index("--counts")
        counts = args[i + 1]
        del args[i:i + 2]
    loader = unittest.TestLoader()
    if args:
        suite = loader.loadTestsFromNames(args)
    else:
        suite = loader.discover(os.path.join(HERE, "integration"), pattern="test_*.py")
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result, stream=sys.stdout)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    skipped = len(res.skipped)
    passed = res.testsRun - failed - skipped
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    if counts:
        with open(counts, "w") as f:
            f.write("%d %d %d\n" % (passed, failed, skipped))
    return 1 if failed or res.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
