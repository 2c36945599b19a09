#!/usr/bin/env python3
"""forms_seeds.py OUT_DIR - seeds for tests/fuzz/fuzz_forms.c.

Each seed is one byte choosing the form (contact, complaint, foi) and the
field values in order, separated by 0x01: plain submissions, markup,
line breaks that would forge a header, non-UTF-8 bytes, bidirectional
overrides and an over-long value.
"""
import os
import sys

SEEDS = [
    ["Jo Bloggs", "jo@example.org", "07700 900123", "Bins",
     "My bin was missed <script>alert(1)</script>"],
    ["Jo\r\nBcc: x@example.org", "jo@example.org", "Parks",
     "It happened \"here\" & <b>there</b>", "Fix it"],
    ["Jo", "jo@example.org",
     "How much was spent on <img src=x onerror=alert(1)>?", "2026-11-27"],
    ["", "not an email", "123", "", ""],
    ["\u00dcn\u00efc\u00f6d\u00e9 N\u00e4m\u00e9", "jo+tag@example.org",
     "Other", "\u202eevil", "x" * 5000],
]


def main():
    out = sys.argv[1]
    for i, vals in enumerate(SEEDS):
        for form in range(3):
            with open(os.path.join(out, "s%d-%d" % (i, form)), "wb") as f:
                f.write(bytes([form]) + "\x01".join(vals).encode()
                        + (b"\x01\xff\xfe<i>" if i == 3 else b""))


if __name__ == "__main__":
    main()
