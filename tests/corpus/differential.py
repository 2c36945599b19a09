#!/usr/bin/env python3
"""differential.py - our parser against Python's email package, message by
message, over the real-mail corpus.

Two halves, used by tests/integration/test_parser_corpus.py and runnable
alone:

  parse_all()   runs `intakectl parse` over many files, several per
                process, timing each file as its JSON arrives (intakectl
                flushes stdout before every parse), and runs a file alone
                again whenever a batch misbehaves, so a crash, a hang, a
                sanitizer report or bad JSON is pinned on one file.
  compare()     reads every corpus *message* with
                email.parser.BytesParser(policy=email.policy.default) and
                compares five fields with our JSON: subject, sender, date,
                number of attachments, attachment names.  The rules that
                make the comparison fair are at the top of DISAGREEMENTS.md
                (written by write_report()) and in the functions below.

    python3 tests/corpus/differential.py [--build DIR] [--out FILE]

runs both over ../shared/corpus/mail and tests/data/mail and writes
tests/corpus/DISAGREEMENTS.md (or FILE).  Known disagreements are explained
in tests/corpus/classifications.txt ("path<TAB>field<TAB>text", path
relative to the corpus root it belongs to, field "*" for all fields); an
unexplained one is listed as UNCLASSIFIED.
"""

import collections
import datetime
import email.parser
import email.policy
import hashlib
import json
import os
import re
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED_MAIL = os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus", "mail"))
LOCAL_MAIL = os.path.join(ROOT, "tests", "data", "mail")
CLASSIFICATIONS = os.path.join(HERE, "classifications.txt")
REPORT = os.path.join(HERE, "DISAGREEMENTS.md")

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:",
                   "ERROR: LeakSanitizer", "SUMMARY: UndefinedBehaviorSanitizer",
                   "SUMMARY: AddressSanitizer")
# A GLib/GMime critical means the parser misused an API: a bug even when
# nothing crashed.  ("gmime-CRITICAL **", "GLib-GObject-CRITICAL **")
CRITICAL_RE = re.compile(r"-(CRITICAL|WARNING) \*\*")

FIELDS = ("subject", "from", "date", "n_attachments", "attachment_names")
# Explanations (classifications.txt) that excuse a disagreement.
EXCUSED = ("ours right", "neither wrong")


# ------------------------------------------------------------ files

def corpus_roots():
    """(label, directory) for each corpus present."""
    roots = []
    if os.path.isdir(SHARED_MAIL):
        roots.append(("shared", SHARED_MAIL))
    if os.path.isdir(LOCAL_MAIL):
        roots.append(("tests/data/mail", LOCAL_MAIL))
    return roots


def corpus_files(roots=None):
    """Every regular file under the corpus roots, sorted."""
    out = []
    for _, d in roots if roots is not None else corpus_roots():
        for dirpath, dirnames, filenames in os.walk(d):
            dirnames.sort()
            for f in sorted(filenames):
                p = os.path.join(dirpath, f)
                if os.path.isfile(p) and not os.path.islink(p):
                    out.append(p)
    return out


def display_path(path):
    """A path for reports: relative to the corpus root it is under."""
    for label, d in corpus_roots():
        if path.startswith(d + os.sep):
            rel = os.path.relpath(path, d)
            return rel if label == "shared" else os.path.join(label, rel)
    return os.path.relpath(path, ROOT)


_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
_NOT_MESSAGES = re.compile(
    r"(\.(xml|md|json|jpg|html|tnef|dat|list|uu|qp|b64|gz|ntx)$"
    r"|/(LICENSE|COPYING|NOTICE|ARTISTIC)[^/]*$|/\.gitattributes$)", re.I)


def is_message(path):
    """Whether @path is an RFC 5322 message (the differential's input):
    not a licence, note, expected-output or raw TNEF/codec file, and its
    first line (after a BOM, lines of white space and an mbox "From "
    line) is a header field."""
    if _NOT_MESSAGES.search(path):
        return False
    with open(path, "rb") as f:
        head = f.read(8192)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    lines = head.split(b"\n")
    i = 0
    while i < len(lines) - 1 and lines[i].strip() == b"":
        i += 1
    if i < len(lines) - 1 and lines[i].startswith(b"From "):
        i += 1
    return i < len(lines) and bool(_HEADER_LINE.match(lines[i]))


# ------------------------------------------------------------ intakectl

class FileResult:
    """What intakectl made of one file."""

    def __init__(self, path):
        self.path = path
        self.json = None       # the parsed document
        self.elapsed = None    # seconds, parse + JSON (from output timing)
        self.error = None      # why the file failed, or None
        self.isolated = False  # run alone after a batch misbehaved

    def __repr__(self):
        return "FileResult(%r, error=%r)" % (self.path, self.error)


def _split_docs(buf):
    """Complete documents at the start of @buf (json-glib's pretty output
    closes a top-level object with "}" alone on a line) and the rest."""
    docs = []
    while True:
        k = buf.find(b"\n}\n")
        if k < 0:
            return docs, buf
        docs.append(buf[:k + 2])
        buf = buf[k + 3:]


def _run_batch(intakectl, files, per_file, startup, env, cwd):
    """One intakectl process over @files.  Returns (docs, times, stderr,
    rc, timed_out): the raw documents in order, the seconds each took,
    stderr, the exit code (None when killed) and whether a file went over
    @per_file seconds (the file after the last document)."""
    proc = subprocess.Popen([intakectl, "parse"] + list(files), cwd=cwd,
                            env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = b"", []
    docs, times = [], []
    t_last = time.monotonic()
    deadline = t_last + startup + per_file
    timed_out = False
    open_fds = {proc.stdout.fileno(): "out", proc.stderr.fileno(): "err"}
    while open_fds:
        wait = deadline - time.monotonic()
        if wait <= 0:
            timed_out = True
            proc.kill()
            break
        ready, _, _ = select.select(list(open_fds), [], [], wait)
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                del open_fds[fd]
                continue
            if open_fds[fd] == "err":
                err.append(chunk)
                continue
            out += chunk
            new, out = _split_docs(out)
            now = time.monotonic()
            for d in new:
                docs.append(d)
                times.append(now - t_last)
                t_last = now
                deadline = now + per_file
    # whatever is left after the process closed stdout (a last document
    # without the final newline, or garbage)
    if out.strip():
        docs.append(out)
        times.append(time.monotonic() - t_last)
    try:
        rc = proc.wait(timeout=per_file)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc, timed_out = None, True
    if timed_out:
        rc = None
    proc.stdout.close()
    proc.stderr.close()
    return docs, times, b"".join(err).decode("utf-8", "replace"), rc, timed_out


def _judge(docs, times, stderr, rc, timed_out, n, per_file):
    """None if the run of @n files is clean, else why not."""
    if timed_out:
        return "no result within %g s (killed)" % per_file
    for mark in SANITIZER_MARKS:
        if mark in stderr:
            return "sanitizer report on stderr (exit %s): %s" % (
                rc, _first_line_with(stderr, mark))
    if rc != 0:
        return "exit status %s" % rc
    m = CRITICAL_RE.search(stderr)
    if m:
        return "GLib critical/warning on stderr: %s" % _first_line_with(stderr, m.group(0))
    if len(docs) != n:
        return "%d JSON documents for %d files" % (len(docs), n)
    return None


def _first_line_with(text, mark):
    for line in text.splitlines():
        if mark in line:
            return line.strip()[:300]
    return mark


def parse_all(intakectl, files, per_file=10.0, batch=40, startup=5.0,
              env=None, cwd=ROOT, progress=None):
    """{path: FileResult} for every file: `intakectl parse` must exit 0 with
    one valid JSON document per file, each within @per_file seconds (plus
    @startup for the process), with nothing from a sanitizer or a GLib
    critical on stderr.  Files go @batch at a time; when a batch fails each
    of its files is run alone, so every failure names one file."""
    if env is None:
        env = dict(os.environ)
    results = {}
    for i in range(0, len(files), batch):
        chunk = files[i:i + batch]
        docs, times, stderr, rc, timed_out = _run_batch(
            intakectl, chunk, per_file, startup, env, cwd)
        why = _judge(docs, times, stderr, rc, timed_out, len(chunk), per_file)
        parsed = []
        if why is None:
            for d in docs:
                try:
                    parsed.append(json.loads(d))
                except ValueError as e:
                    why = "invalid JSON: %s" % e
                    break
        if why is None:
            for f, d, t in zip(chunk, parsed, times):
                r = FileResult(f)
                r.json, r.elapsed = d, t
                results[f] = r
        elif len(chunk) == 1:
            r = FileResult(chunk[0])
            r.error, r.isolated = why + _stderr_tail(stderr), True
            results[chunk[0]] = r
        else:
            for f in chunk:
                results[f] = parse_all(intakectl, [f], per_file, 1, startup,
                                       env, cwd)[f]
                results[f].isolated = True
        if progress:
            progress(min(i + batch, len(files)), len(files))
    return results


def _stderr_tail(stderr):
    lines = [l for l in stderr.splitlines() if l.strip()]
    return ("\n    stderr: " + "\n    ".join(lines[:12])) if lines else ""


# ------------------------------------------------------------ normalising

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_WS = re.compile(r"\s+")
_OUR_CARD = re.compile(r"\*{4} \*{4} \*{4} \d{4}")
_CARD = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")


def _luhn(digits):
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def fix_surrogates(s):
    """Python keeps undecodable 8-bit header bytes as lone surrogates
    (surrogateescape); we read raw 8-bit headers as UTF-8, else
    windows-1252 (GMime's fallback charsets as parser_message.c sets
    them).  Do the same to Python's value."""
    if s is None or not re.search("[\udc80-\udcff]", s):
        return s
    raw = s.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("windows-1252", "replace")


def norm_text(s):
    """Subjects compared: control characters as spaces (parser_clean_text),
    runs of white space as one space, trimmed; a card number (ours are
    redacted to "**** **** **** 1234", Python's are not) as <CARD>."""
    if s is None:
        return ""
    s = fix_surrogates(s)
    s = _OUR_CARD.sub("<CARD>", s)
    s = _CARD.sub(lambda m: "<CARD>" if _luhn(re.sub(r"\D", "", m.group(0)))
                  else m.group(0), s)
    s = _CONTROL.sub(" ", s)
    return _WS.sub(" ", s).strip()


def _name_drop(c):
    o = ord(c)
    return (o < 0x20 or o == 0x7f or 0x80 <= o < 0xa0
            or 0x202a <= o <= 0x202e or 0x2066 <= o <= 0x2069
            or o in (0x200e, 0x200f, 0x061c, 0xfeff))


def clean_name(raw):
    """parser_walk_safe_name() (parser_message.c) in Python: the last
    component after '/' or '\\', without control and bidi characters,
    trimmed of white space and trailing dots, at most 255 bytes keeping an
    extension of up to 32 bytes; None when nothing is left (ours are then
    "attachment-N")."""
    if raw is None:
        return None
    raw = fix_surrogates(raw)
    last = re.split(r"[/\\]", raw)[-1]
    out = "".join(c for c in last if not _name_drop(c))
    out = out.lstrip(" \t\n\v\f\r").rstrip(" \t\n\v\f\r.")
    b = out.encode("utf-8", "replace")
    if len(b) > 255:
        dot = out.rfind(".")
        ext = out[dot:] if dot > 0 and len(out[dot:].encode()) <= 32 else ""
        stem = out[:len(out) - len(ext)] if ext else out
        keep = 255 - len(ext.encode())
        sb = stem.encode()[:keep].decode("utf-8", "ignore")
        out = sb + ext
    return out or None


_UNNAMED = re.compile(r"^attachment-\d+$")
UNNAMED = "<unnamed>"


def our_name(a):
    return UNNAMED if _UNNAMED.match(a["name"]) else a["name"]


# ------------------------------------------------------------ Python side

_BODY_TEXT = ("plain", "html", "enriched", "richtext")
_FORWARDED = ("message/rfc822", "message/global", "message/news")
_TNEF = ("application/ms-tnef", "application/vnd.ms-tnef")


def _py_filename(part):
    try:
        return part.get_filename()
    except Exception:  # a broken parameter: Python's problem, not a name
        return None


def _py_subject(msg):
    try:
        v = msg["subject"]
    except Exception:
        return None
    return None if v is None else str(v)


def py_attachments(msg, out=None, depth=0):
    """Python's tree, walked by our definition of an attachment (parser.h,
    parser_walk_leaf): every leaf that is not body text (text/plain, html,
    enriched, richtext without a filename or an attachment disposition);
    a message/rfc822 (or global, news) part is one attachment named
    "<its Subject>.eml" (else "forwarded-message.eml") and its own
    attachments follow.  Each entry is (cleaned name or None, content
    type, is_tnef)."""
    if out is None:
        out = []
    if depth > 50:
        return out
    ctype = msg.get_content_type()
    if ctype in _FORWARDED and msg.is_multipart():
        inner = msg.get_payload(0)
        subj = _py_subject(inner)
        subj = norm_text(subj) if subj is not None else None
        name = (subj if subj else "forwarded-message") + ".eml"
        out.append((clean_name(name), ctype, False))
        py_attachments(inner, out, depth + 1)
        return out
    if msg.get_content_maintype() == "multipart":
        # Python could not split it (no boundary, or none found): it keeps
        # the body as a string; GMime makes a multipart without parts
        # (the body is preamble).  Neither holds an attachment.
        if msg.is_multipart():
            for p in msg.get_payload():
                py_attachments(p, out, depth + 1)
        return out
    # a leaf (Python also parses message/delivery-status and other
    # message/* as sub-messages: for us, and here, they are leaves)
    name = _py_filename(msg)
    disp = msg.get_content_disposition()
    if (msg.get_content_maintype() == "text"
            and msg.get_content_subtype() in _BODY_TEXT
            and disp != "attachment" and name is None):
        return out
    is_tnef = ctype in _TNEF or (name or "").lower() == "winmail.dat"
    out.append((clean_name(name), ctype, is_tnef))
    return out


def python_view(path):
    """The five fields as Python sees them; a field is None when reading it
    raised (it is then not compared).  Returns None when the message could
    not be read at all."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    except Exception:
        return None
    v = {"subject": None, "from": None, "date": None, "attachments": None}
    try:
        s = msg["subject"]
        v["subject"] = ("ok", None if s is None else str(s))
    except Exception:
        pass
    try:
        h = msg["from"]
        addr = None
        if h is not None:
            addrs = h.addresses
            if addrs:
                addr = addrs[0].addr_spec
        v["from"] = ("ok", addr)
    except Exception:
        pass
    try:
        h = msg["date"]
        dt = h.datetime if h is not None else None
        ts = None
        if dt is not None:
            if dt.tzinfo is None:  # "-0000": UTC, zone unknown
                dt = dt.replace(tzinfo=datetime.timezone.utc)
            ts = int(dt.timestamp())
        v["date"] = ("ok", ts)
    except Exception:
        pass
    try:
        v["attachments"] = ("ok", py_attachments(msg))
    except Exception:
        pass
    return v


# ------------------------------------------------------------ comparing

def _fmt(v, limit=300):
    """A value for the report: shown in backticks, long ones cut with their
    length given."""
    if v in (None, ""):
        return "(none)"
    s = str(v)
    if len(s) > limit:
        s = "%s... (%d characters)" % (s[:limit], len(s))
    return "`%s`" % s.replace("`", "'")


def same_text(ours, theirs, cut=False):
    """Normalised subjects equal, where a U+FFFD in Python's (bytes it
    could not decode: raw 8-bit, an unknown charset, a broken encoded
    word) stands for any one or more characters in ours, and where ours is
    a prefix of Python's when we cut an over-long header (@cut: anomaly
    "headers", PARSER_LIMIT_HEADER_VALUE and the 64 KiB field cut)."""
    if ours == theirs:
        return True
    if cut and ours:
        # the cut may end inside an encoded word, left undecoded
        head = re.sub(r"\s*=\?\S*$", "", ours)
        if head and theirs.startswith(head):
            return True
    if "\ufffd" in theirs:
        pat = ".+?".join(re.escape(x) for x in re.split("\ufffd+", theirs))
        return re.fullmatch(pat, ours, re.S) is not None
    return False


def _our_tnef(a):
    return ("from_tnef" not in a["flags"]
            and (a["declared_type"] in _TNEF or a["name"].lower() == "winmail.dat"))


def compare_one(ours, py):
    """[(field, agrees, ours shown, python shown)] for one message; a field
    Python could not read is left out; the date only when both have one."""
    rows = []
    if py["subject"] is not None:
        a = norm_text(ours.get("subject"))
        b = norm_text(py["subject"][1])
        cut = "headers" in (ours.get("anomalies") or [])
        rows.append(("subject", same_text(a, b, cut), a, b))
    if py["from"] is not None:
        a = ((ours.get("from") or {}).get("addr") or "")
        b = fix_surrogates(py["from"][1] or "")
        if b == "<>":  # Python's addr_spec of a null address: none
            b = ""
        rows.append(("from", a.lower() == b.lower(), a, b))
    if py["date"] is not None:
        a = ours.get("date_unix") or 0
        b = py["date"][1]
        if a and b is not None:
            rows.append(("date", a == b, a, b))
    if py["attachments"] is not None:
        theirs = py["attachments"][1]
        mine = ours.get("attachments") or []
        # TNEF: we replace a decoded winmail.dat by the files inside (none
        # when it held only a body), Python cannot look inside: leave both
        # out unless we kept the winmail.dat itself (libytnef refused it).
        # Inline uuencode: we extract it from the text, Python does not.
        kept_tnef = any(_our_tnef(a) for a in mine)
        mine = [a for a in mine if "from_tnef" not in a["flags"]
                and "from_uuencode" not in a["flags"]]
        if not kept_tnef:
            theirs = [t for t in theirs if not t[2]]
        a_names = sorted(_WS.sub(" ", our_name(a)) for a in mine)
        b_names = sorted(_WS.sub(" ", t[0]) if t[0] else UNNAMED for t in theirs)
        rows.append(("n_attachments", len(mine) == len(theirs),
                     len(mine), len(theirs)))
        rows.append(("attachment_names",
                     collections.Counter(a_names) == collections.Counter(b_names),
                     a_names, b_names))
    return rows


def load_classifications(path=CLASSIFICATIONS):
    """{(display path, field): text}; field "*" covers every field."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise ValueError("%s: expected path<TAB>field<TAB>text: %r"
                                 % (path, line))
            out[(parts[0], parts[1])] = parts[2]
    return out


class Comparison:
    def __init__(self):
        self.messages = 0          # corpus messages compared
        self.duplicates = 0        # byte-identical copies not compared again
        self.python_failed = []    # messages Python could not read
        self.counts = {f: [0, 0] for f in FIELDS}   # field: [agree, total]
        self.disagreements = []    # (display path, field, ours, python)
        self.date_only_one = []    # (display path, ours, python)
        self.explained = []        # disagreements with their explanation
        self.excused = {f: 0 for f in FIELDS}
        self.intakectl = None      # which binary made our side

    def classify(self, cls):
        """Attach explanations (load_classifications()) and count, per
        field, the disagreements explained as "ours right" or "neither
        wrong": the fair rate counts them as agreement."""
        self.explained = []
        self.excused = {f: 0 for f in FIELDS}
        for p, field, a, b in self.disagreements:
            why = cls.get((p, field)) or cls.get((p, "*"))
            self.explained.append((p, field, a, b, why))
            if why and why.startswith(EXCUSED):
                self.excused[field] += 1

    def rate(self, field=None, fair=False):
        fields = FIELDS if field is None else (field,)
        a = sum(self.counts[f][0] for f in fields)
        t = sum(self.counts[f][1] for f in fields)
        if fair:
            a += sum(self.excused[f] for f in fields)
        return a / t if t else 1.0

    def bugs(self):
        """(path, field, explanation) of disagreements not excused."""
        return [(p, f, why or "UNCLASSIFIED")
                for p, f, a, b, why in self.explained
                if not (why and why.startswith(EXCUSED))]

    def summary(self):
        lines = ["differential against Python email (policy.default): "
                 "%d distinct messages (%d copies skipped), %d unreadable "
                 "by Python" % (self.messages, self.duplicates,
                                len(self.python_failed)),
                 "  %-17s %11s  %7s   %s" % ("field", "agree/total", "raw",
                                             "fair (ours-right excused)")]
        for f in FIELDS + (None,):
            fields = FIELDS if f is None else (f,)
            a = sum(self.counts[x][0] for x in fields)
            t = sum(self.counts[x][1] for x in fields)
            lines.append("  %-17s %5d/%-5d  %6.2f%%   %6.2f%%"
                         % (f or "overall", a, t, 100.0 * self.rate(f),
                            100.0 * self.rate(f, fair=True)))
        return "\n".join(lines)


def _shared_first(path):
    return (not path.startswith(SHARED_MAIL + os.sep), path)


def compare(results):
    """Compare every corpus message in @results ({path: FileResult}) that
    intakectl parsed with Python's reading of it."""
    c = Comparison()
    seen = {}
    for path in sorted(results, key=_shared_first):
        r = results[path]
        if r.json is None or not is_message(path):
            continue
        # tests/data/mail holds copies of corpus messages: each distinct
        # message is compared once
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest in seen:
            c.duplicates += 1
            continue
        seen[digest] = path
        py = python_view(path)
        if py is None:
            c.python_failed.append(display_path(path))
            continue
        c.messages += 1
        for field, ok, a, b in compare_one(r.json, py):
            c.counts[field][1] += 1
            if ok:
                c.counts[field][0] += 1
            else:
                c.disagreements.append((display_path(path), field, a, b))
        if py["date"] is not None:
            a, b = r.json.get("date_unix") or 0, py["date"][1]
            if bool(a) != (b is not None):
                c.date_only_one.append((display_path(path), a or None, b))
    c.classify(load_classifications())
    return c


HEADER = """\
# Our parser against Python's email package

Generated by `python3 tests/corpus/differential.py` (also run, with the
ASan build, by `tests/integration/test_parser_corpus.py`, which asserts
that the *fair* overall agreement is at least 98 %). Do not edit by hand:
the explanations come from `tests/corpus/classifications.txt`; the parser
bugs behind the "BUG" lines are written up in `tests/corpus/FINDINGS.md`.

## What is compared, and how it is made fair

**Inputs.** Every file under `../shared/corpus/mail` and `tests/data/mail`
that is an RFC 5322 message: not a licence, note, expected output (`.xml`,
`.list`), raw TNEF (`.tnef`, `.dat`) or codec sample, and whose first line
(after a BOM, blank lines and an mbox `From ` line) is a header field.
Byte-identical copies (most of `tests/data/mail` is copied from the
corpus) are compared once. Python reads each with
`email.parser.BytesParser(policy=email.policy.default)`; a field whose
reading raises in Python is left out (the message still counts).

* **subject** - ours `subject` and Python's `str(msg["subject"])` (the
  first Subject field; none = empty), both with control characters as
  spaces (`parser_clean_text`), runs of white space as one space, trimmed,
  and a Luhn-valid card number (we redact it to `**** **** **** 1234`) as
  `<CARD>`. Raw 8-bit bytes that Python keeps as surrogate escapes are read
  as UTF-8, else windows-1252 (GMime's fallback charsets as the parser sets
  them); a U+FFFD in Python's value (bytes it could not decode) matches any
  one or more characters of ours. When we cut an over-long header (anomaly
  `headers`: the 64 KiB field cut and `PARSER_LIMIT_HEADER_VALUE`), ours
  agrees if it is a prefix of Python's (a last encoded word broken by the
  cut left aside).
* **from** - ours `from.addr` and the first mailbox of Python's From field
  (`addresses[0].addr_spec`), case-insensitively; none = empty, and
  Python's `<>` (a null address) = empty.
* **date** - ours `date_unix` and Python's `msg["date"].datetime` (a
  zone-less `-0000` date read as UTC), compared only when both have one.
  Messages where only one side has a date are listed at the end, not
  counted.
* **n_attachments / attachment_names** - Python's `iter_attachments()` is
  *not* used: on the top-level message it looks at the top multipart's
  direct children only and skips the body candidates of related and
  alternative parts, which is not our definition. Instead Python's tree is
  walked by our definition (`parser.h`, `parser_walk_leaf`):
  - every leaf that is not body text is an attachment; body text is
    `text/plain`, `html`, `enriched`, `richtext` without a filename
    (`Content-Disposition` `filename`, else `Content-Type` `name`) and
    without `Content-Disposition: attachment` - also when it is an
    alternative we do not show;
  - a `message/rfc822` (`global`, `news`) part is one attachment named
    `<its Subject>.eml` (`forwarded-message.eml` without one), followed by
    the attachments inside it; other `message/*` types
    (`delivery-status`, `disposition-notification`, `partial`,
    `external-body`), which Python parses as sub-messages, are leaves;
  - a multipart Python could not split (no boundary, none found) holds no
    attachment: GMime makes it a multipart without parts;
  - Python's names go through our name cleaning (`parser_walk_safe_name`
    ported: last path component, no control or bidi characters, white
    space and trailing dots trimmed, at most 255 bytes keeping the
    extension), white space runs are one space on both sides, and an
    unnamed attachment (ours `attachment-N`) is `<unnamed>` on both sides;
  - TNEF: when we decoded a `winmail.dat` its files replace it (flag
    `from_tnef`; nothing when it held only a body, which becomes text).
    Python cannot look inside, so our `from_tnef` attachments and Python's
    TNEF parts are both left out - unless we kept the `winmail.dat` itself
    (libytnef refused it), when it is compared like any part;
  - inline uuencode in a text part is extracted by us (flag
    `from_uuencode`) and not by Python: ours are left out.
  Names are compared as multisets.

**Rates.** Raw agreement = agreeing comparisons / comparisons, per field
and over all fields. Fair agreement also counts as agreeing the
disagreements explained "ours right because ..." or "neither wrong: ..."
(a policy choice on broken input) in `classifications.txt`; "BUG: ..." and
unexplained ones count against us.
"""


def write_report(c, path=REPORT):
    """DISAGREEMENTS.md; returns the number of unexplained disagreements."""
    cls = load_classifications()
    out = [HEADER, "## Figures\n",
           "Run of %s (UTC) with `%s`.\n"
           % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              os.path.relpath(c.intakectl, ROOT) if c.intakectl else "?"),
           "```", c.summary(), "```\n"]
    if c.python_failed:
        out.append("Python raised while reading: " +
                   ", ".join("`%s`" % p for p in c.python_failed) + "\n")
    out.append("## Disagreements (%d)\n" % len(c.disagreements))
    by_file = collections.OrderedDict()
    for p, field, a, b, why in c.explained:
        by_file.setdefault(p, []).append((field, a, b, why))
    unclassified = 0
    for p, rows in by_file.items():
        out.append("### `%s`\n" % p)
        for field, a, b, why in rows:
            if why is None:
                why = "UNCLASSIFIED"
                unclassified += 1
            out.append("* **%s** - ours: %s; Python: %s  \n  %s"
                       % (field, _fmt(a), _fmt(b), why))
        out.append("")
    if c.date_only_one:
        out.append("## Date on one side only (not counted)\n")
        for p, a, b in c.date_only_one:
            why = cls.get((p, "date")) or cls.get((p, "*")) or ""
            out.append("* `%s` - ours: %s; Python: %s%s"
                       % (p, _fmt(a), _fmt(b), ("  \n  " + why) if why else ""))
        out.append("")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    return unclassified


def default_env():
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1"
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("INTAKE_BUILD", "build"))
    ap.add_argument("--out", default=REPORT)
    args = ap.parse_args(argv)
    intakectl = os.path.join(ROOT, args.build, "intakectl")
    files = corpus_files()
    t0 = time.monotonic()
    results = parse_all(intakectl, files, env=default_env())
    dt = time.monotonic() - t0
    bad = [r for r in results.values() if r.error]
    print("intakectl parse: %d files in %.1f s, %d failed"
          % (len(files), dt, len(bad)))
    for r in bad:
        print("  FAIL %s: %s" % (display_path(r.path), r.error))
    c = compare(results)
    c.intakectl = intakectl
    print(c.summary())
    n = write_report(c, args.out)
    print("%d disagreements (%d unclassified) written to %s"
          % (len(c.disagreements), n, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
