#!/usr/bin/env python3
"""router_texts.py - hostile texts for tests/bench/router_same.sh, as a CSV
(text,kind) on stdout: the rules' words and the training file's, in upper,
mixed and lower case, with accented, Cyrillic, CJK and emoji words,
ligatures, full-width letters, overlong words, apostrophes inside long
words, no-break spaces, dashes and ideographic commas between them; every
50th text has a character across the classifier's 16 KiB cut, every 97th
is 40 times longer, every 13th has invalid bytes.

    python3 tests/bench/router_texts.py SEED COUNT > texts.csv

(The ninth session's 4,500 texts came from a first version of it;
the words it draws from follow conf/, so the same seed gives other texts
once the rules or the training file change.)
"""
import csv
import random
import re
import sys

sys.stdout.reconfigure(errors="surrogateescape")
random.seed(int(sys.argv[1]))
count = int(sys.argv[2])
rules = open("conf/rules.conf", encoding="utf-8").read()
words = set(re.findall(r"[A-Za-z']+", rules))
for row in csv.reader(open("conf/training/council-messages.csv",
                           encoding="utf-8")):
    words.update(re.findall(r"[A-Za-z0-9']+", row[0]))
words = sorted(w for w in words if len(w) < 30)
extra = ["café", "naïve", "Straße", "İstanbul", "ÉCOLE", "Ärger", "москва",
         "Привет", "东京", "申请", "😀", "👍🏽", "ﬁle", "ＦＯＩ", "Ｒｅｑｕｅｓｔ",
         "e\u0301", "ǅ", "ß", "ΣΊΣΥΦΟΣ", "x" * 60, "ua1234", "2000", "12:30",
         "£450", "don't", "don’t", "I’m", "I'm", "i'd", "A\u00adB", "ﬀ", "Ⅻ",
         "١٢٣", "ǰ", "ŉ", "a" * 47, "B" * 48, "c" * 49, "d" * 47 + "é",
         "é" * 24, "É" * 25, "x" * 46 + "'" + "yy", "x" * 47 + "’" + "Z",
         "1" * 50, "Ab12" * 12, "Ab12" * 13, "q" * 45 + "ß" + "q",
         "don't" * 9, "Straße" * 8]
seps = [" ", " ", " ", " ", "  ", ", ", ". ", "? ", "! ", "?! ", "\n", "\n\n",
        "\u00a0", " — ", "\u3001", "\t", "-", "/", "'", "’", ":", "(", ")",
        "\r\n", "\u2028"]
out = csv.writer(sys.stdout, lineterminator="\r\n")
out.writerow(["text", "kind"])


def word():
    w = random.choice(extra) if random.random() < 0.08 else random.choice(words)
    c = random.random()
    if c < 0.15:
        w = w.upper()
    elif c < 0.3:
        w = w.capitalize()
    elif c < 0.35:
        w = "".join(ch.upper() if random.random() < .5 else ch for ch in w)
    return w


for i in range(count):
    n = random.choice([1, 3, 10, 30, 100, 300, 400, 1000])
    s = "".join(word() + random.choice(seps) for _ in range(n))
    if i % 50 == 0:
        s = ("x " * 8190) + "é€😀" * 3 + s
    if i % 97 == 0:
        s = s * 40
    if i % 13 == 0:
        s = s.replace(" ", "\udc80", 2)
    out.writerow([s, "other"])
