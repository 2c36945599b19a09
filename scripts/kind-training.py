#!/usr/bin/env python3
"""kind-training.py OUT.csv - the kind model's training file (Makefile,
models): conf/training/council-messages.csv (text and kind) followed by
the foi-request and sar rows of the written FOI/SAR sets of
tests/data/foi-sar/ (requests.csv, heldout.csv, heldout2.csv ...
heldout5.csv, probes-ask.csv; MIT, written for intake).  Their `other`
rows are left out: they are enquiries, complaints, rights requests,
auto-replies ... and have no one kind.  heldout6.csv is never read: it is
kept for a blind measurement.  docs/classifier.md ("Eighth session: the
kind model trained on the written sets") has why and the figures."""
import csv
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SETS = ["requests", "heldout", "heldout2", "heldout3", "heldout4",
        "heldout5", "probes-ask"]
assert "heldout6" not in SETS


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: kind-training.py OUT.csv")
    train = rows(os.path.join(ROOT, "conf/training/council-messages.csv"))
    ti, ki = train[0].index("text"), train[0].index("kind")
    out = [[r[ti], r[ki]] for r in train[1:]]
    for s in SETS:
        data = rows(os.path.join(ROOT, "tests/data/foi-sar/%s.csv" % s))
        out += [[t, k] for t, k in data[1:] if k in ("foi-request", "sar")]
    with open(sys.argv[1], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(["text", "kind"])
        w.writerows(out)


if __name__ == "__main__":
    main()
