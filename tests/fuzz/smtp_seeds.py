#!/usr/bin/env python3
"""smtp_seeds.py SMUGGLING_DIR OUT_DIR - seeds for tests/fuzz/fuzz_smtp.c.

Each seed is one configuration byte (fuzz_smtp.c: bit 0 normalise bare
LF, bit 1 offer STARTTLS, bits 2+3 storage low; the byte also seeds the
reads, store answers and clock) and then what a client sends: every
payload of SMUGGLING_DIR inside a transaction, and a few whole sessions
(pipelining, STARTTLS, too many hops, long lines, odd commands).
"""
import glob
import os
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    pre = (b"EHLO client.example\r\n"
           b"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME\r\n"
           b"RCPT TO:<foi@council.example>\r\n"
           b"RCPT TO:<x@elsewhere.example>\r\nDATA\r\n")
    seeds = [pre + open(f, "rb").read() + b"\r\n.\r\nQUIT\r\n"
             for f in sorted(glob.glob(os.path.join(src, "*.bin")))]
    seeds += [
        b"HELO x\r\nMAIL FROM:<>\r\n"
        b"RCPT TO:<enquiries+ESC-2026-000123-K@council.example>\r\n"
        b"DATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\n"
        b"RSET\r\nNOOP\r\nVRFY a\r\nHELP\r\nQUIT\r\n",
        b"EHLO a\r\nSTARTTLS\r\nEHLO a\r\nMAIL FROM:<a@b.example>\r\n"
        b"RCPT TO:<postmaster>\r\nDATA\r\nReceived: x\r\nReceived: y\r\n"
        b"Received: z\r\nReceived: w\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        b"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<foi@council.example>"
        b"\r\nDATA\r\nX: " + b"y" * 2000 + b"\r\n\r\n" + b"z" * 70000
        + b"\r\n.\r\n",
        b"ehlo a\r\nmail from:<\"quoted local\"@b.example>\r\n"
        b"rcpt to:<@route:foi@council.example>\r\n"
        b"rcpt to:<foi@council.example> NOTIFY=NEVER\r\n"
        b"bdat 10 LAST\r\nAUTH PLAIN\r\ndata\r\n.\r\n",
    ]
    for i, s in enumerate(seeds):
        for mode in (0, 1, 2, 3, 5, 12):
            with open(os.path.join(out, "s%02d-%d" % (i, mode)), "wb") as f:
                f.write(bytes([mode]) + s)


if __name__ == "__main__":
    main()
