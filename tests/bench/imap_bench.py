#!/usr/bin/env python3
"""imap_bench.py - IMAP fetch throughput (issue 6), `make bench-imap`.

A private Dovecot (tests/integration/dovecot.py) holds N messages of 2 KB
(default 10,000; IMAP_BENCH_MESSAGES).  Measured in the same run:
  ceiling: `doveadm fetch` of every message's full text (Dovecot reading
           its own store, no network, no commit) and, for reference, one
           imaplib session fetching BODY.PEEK[] of all of them;
  intake:  intaked with an [imap bench] mailbox, from start until every
           message is committed to the spool with its checkpoint and moved
           to the processed folder (INBOX empty, N checkpoints).
Target: intake >= 50% of the ceiling.
"""

import os
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import dovecot  # noqa: E402
from harness import Intaked  # noqa: E402

N = int(os.environ.get("IMAP_BENCH_MESSAGES", "10000"))


def message(i):
    body = ("The streetlight outside number %d has been out for a week and"
            " the pavement is dark. " % i) * 20
    return ("From: Resident %d <r%d@example.org>\r\n"
            "To: enquiries@council.example\r\n"
            "Subject: Report %d\r\nMessage-ID: <bench-%d@example.org>\r\n\r\n"
            "%s\r\n" % (i, i, i, i, body[:1900])).encode()


def seen(i):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(i.dir, "var",
                                                          "intake.db"),
                         uri=True, timeout=30)
    try:
        return db.execute("SELECT count(*) FROM imap_seen").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def main():
    if not dovecot.available():
        print("imap bench: skipped: " + dovecot.why_unavailable())
        return 0
    print("== IMAP: %d messages of 2 KB from a private Dovecot" % N)
    with dovecot.Dovecot() as box:
        box.count("INBOX")
        t = time.time()
        box.deliver_many([message(k) for k in range(N)])
        print("  delivered in %.1f s" % (time.time() - t))

        t = time.time()
        r = box.doveadm("fetch", "-u", box.user, "text", "mailbox", "INBOX",
                        "all")
        ceiling_s = time.time() - t
        out = r.stdout if hasattr(r, "stdout") else b""
        ceiling = N / ceiling_s
        print("  ceiling: doveadm fetch text of all: %.2f s = %.0f msg/s"
              " (%d bytes)" % (ceiling_s, ceiling, len(out or b"")))

        c = box.connect()
        c.select("INBOX", readonly=True)
        t = time.time()
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
        imaplib_s = time.time() - t
        c.logout()
        print("  reference: one imaplib session, UID FETCH 1:* BODY.PEEK[]:"
              " %.2f s = %.0f msg/s" % (imaplib_s, N / imaplib_s))

        i = Intaked()
        pw = box.password_file(os.path.join(i.dir, "conf", "pw"))
        for k, v in (("host", "127.0.0.1"), ("port", box.port),
                     ("tls", "plain"), ("user", box.user),
                     ("password_file", pw), ("recipient",
                                             "enquiries@council.example")):
            i.configure("imap bench", k, v)
        t = time.time()
        i.start()
        try:
            last = 0
            while True:
                n = seen(i)
                if n >= N and box.count("INBOX") == 0:
                    break
                if time.time() - t > 600:
                    print("  intake: timed out at %d" % n)
                    return 1
                if int(time.time() - t) // 5 > last:
                    last = int(time.time() - t) // 5
                    print("    t=%ds taken=%d" % (time.time() - t, n))
                time.sleep(0.05)
            took = time.time() - t
        finally:
            i.stop()
        rate = N / took
        print("  intake: all %d committed with their checkpoints and moved"
              " in %.2f s = %.0f msg/s" % (N, took, rate))
        print("IMAP fetch, %d x 2 KB: intake %.0f msg/s against %.0f msg/s"
              " ceiling (doveadm fetch) in the same run = %.1f%% (target >="
              " 50%%: %s); imaplib one session %.0f msg/s"
              % (N, rate, ceiling, 100 * rate / ceiling,
                 "PASS" if rate >= ceiling / 2 else "MISS", N / imaplib_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
