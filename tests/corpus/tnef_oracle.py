#!/usr/bin/env python3
"""tnef_oracle.py - our TNEF (winmail.dat) extraction against MimeKit's.

MimeKit's test data (../shared/corpus/mail/mimekit-testdata/tnef) pairs
each TNEF blob (*.tnef) with the names MimeKit extracts from it (*.list).
Each blob is wrapped as the winmail.dat attachment of a small message,
parsed with `intakectl parse`, and our `from_tnef` attachment names are
compared with the list (MimeKit's body.rtf / body.html entries are bodies,
not files, and are left out; order is ignored).  Informational: prints one
line per blob and a count, exits 0.  Findings: tests/corpus/FINDINGS.md F10.

    python3 tests/corpus/tnef_oracle.py [--build DIR]
"""

import base64
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TNEF_DIR = os.path.normpath(os.path.join(
    ROOT, "..", "shared", "corpus", "mail", "mimekit-testdata", "tnef"))
BODIES = ("body.rtf", "body.html")


def wrap(blob):
    b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
    return ("From: a@example.org\r\nSubject: tnef\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            "--b\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\n"
            "Content-Disposition: attachment; filename=\"winmail.dat\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + b64 +
            "--b--\r\n").encode()


def main(argv):
    build = os.environ.get("INTAKE_BUILD", "build")
    if len(argv) == 2 and argv[0] == "--build":
        build = argv[1]
    intakectl = os.path.join(ROOT, build, "intakectl")
    if not os.path.isdir(TNEF_DIR):
        print("tnef_oracle: %s missing, nothing to do" % TNEF_DIR)
        return 0
    same = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for t in sorted(glob.glob(os.path.join(TNEF_DIR, "*.tnef"))):
            lst = t[:-5] + ".list"
            if not os.path.exists(lst):
                continue
            with open(lst, encoding="utf-8", errors="replace") as f:
                want = sorted(l.strip() for l in f
                              if l.strip() and l.strip() not in BODIES)
            path = os.path.join(tmp, "m.eml")
            with open(t, "rb") as f, open(path, "wb") as out:
                out.write(wrap(f.read()))
            r = subprocess.run([intakectl, "parse", path],
                               capture_output=True, cwd=ROOT)
            j = json.loads(r.stdout)
            got = sorted(a["name"] for a in j["attachments"]
                         if "from_tnef" in a["flags"])
            kept = [a["name"] for a in j["attachments"]
                    if "from_tnef" not in a["flags"]]
            total += 1
            ok = got == want
            same += ok
            print("%-4s %-28s ours %s%s; MimeKit %s"
                  % ("ok" if ok else "DIFF", os.path.basename(t), got,
                     " (kept %s, anomalies %s)" % (kept, j["anomalies"])
                     if kept else "", want))
    print("tnef_oracle: %d of %d blobs give MimeKit's names" % (same, total))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
