#!/usr/bin/env python3
"""envelope_seeds.py OUTDIR - seeds for make fuzz-envelope: envelopes in
GVariant's serialisation of (ssssasbx), as store_envelope_pack() writes
them, written here by hand (offsets of 1, 2 and 4 bytes; no recipient,
one, many; long strings), so that the fuzzer starts from valid ones."""
import os
import struct
import sys


def offset_size(total):
    if total == 0:
        return 0
    for n, lim in ((1, 0xff), (2, 0xffff), (4, 0xffffffff)):
        if total <= lim:
            return n
    return 8


def container(body, offsets):
    """body bytes and end offsets -> bytes with the offset table."""
    n = len(offsets)
    for size in (1, 2, 4, 8):
        if n == 0:
            total = len(body)
            break
        total = len(body) + size * n
        if offset_size(total) == size:
            break
    size = offset_size(total)
    return body, size


def pack(source, client, helo, mail_from, rcpts, tls, when):
    strs = [s.encode() + b"\0" for s in (source, client, helo, mail_from)]
    # the array of strings
    abody = b"".join(r.encode() + b"\0" for r in rcpts)
    ends, e = [], 0
    for r in rcpts:
        e += len(r.encode()) + 1
        ends.append(e)
    _, asz = container(abody, ends)
    arr = abody + b"".join(x.to_bytes(asz, "little") for x in ends)
    body = b""
    tends = []
    for s in strs:
        body += s
        tends.append(len(body))
    body += arr
    tends.append(len(body))
    body += bytes([1 if tls else 0])
    body += b"\0" * ((8 - len(body) % 8) % 8)
    body += struct.pack("<q", when)
    _, tsz = container(body, tends)
    return body + b"".join(x.to_bytes(tsz, "little")
                           for x in reversed(tends))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    cases = [
        ("smtp", "192.0.2.1", "client.example", "citizen@example.org",
         ["enquiries@council.example"], True, 1790000000000000),
        ("imap", "", "", "", [], False, 0),
        ("form", "198.51.100.7", "", "", ["foi@council.example",
                                          "complaints@council.example"],
         False, -5),
        ("smtp", "2001:db8::1", "h" * 300, "a@b", ["r%d@x" % i
                                                   for i in range(40)],
         True, 1),
        ("smtp", "192.0.2.9", "x" * 70000, "", ["y"], False, 7),
    ]
    for i, c in enumerate(cases):
        with open(os.path.join(out, "envelope-%d" % i), "wb") as f:
            f.write(pack(*c))


if __name__ == "__main__":
    main()
