#!/usr/bin/env python3
"""router_seeds.py OUT_DIR - seeds for tests/fuzz/fuzz_router.c.

Every tenth row of the project's own labelled text (tests/data/foi-sar/*.csv
and conf/training/council-messages.csv, written for intake, MIT), each as
"Subject\\n" and the row's text (fuzz_router.c: the first line is the
subject).  Run from the repository root.
"""
import csv
import glob
import os
import sys


def main():
    out = sys.argv[1]
    files = sorted(glob.glob("tests/data/foi-sar/*.csv"))
    files.append("conf/training/council-messages.csv")
    rows = []
    for name in files:
        with open(name, newline="", encoding="utf-8") as f:
            rows.extend(r["text"] for r in csv.DictReader(f))
    for i, text in enumerate(rows[::10]):
        with open(os.path.join(out, "s%05d" % i), "w", encoding="utf-8") as f:
            f.write("Subject\n" + text)


if __name__ == "__main__":
    main()
