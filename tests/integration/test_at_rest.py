"""test_at_rest.py - nothing readable at rest (issue 4).

Every message of the real-mail corpus (../shared/corpus/mail, skipped with
a message when absent) and, separately, of tests/data/mail (so a clean
clone without ../shared still checks something) goes through a private
intaked over SMTP: four concurrent connections, MAIL FROM
citizen-N@example.org, RCPT TO enquiries@council.example, the file's bytes
as DATA.  A message with a bare LF or bare CR has its line ends made CRLF
first (the daemon keeps its default, bare_newline = reject), so that as
much real text as possible gets in; what the server still refuses (too
large, too many hops, ...) is counted and printed, not a failure.  Once
`intakectl spool count` is 0 (everything filed or quarantined), the raw
bytes of every file in var/ but the master key -- the database, its -wal
and -shm -- are searched while the daemon still runs, and again after it
has stopped.  No needle may occur.

The needles, from each message (personal data a council must not keep
readable at rest):
  - the envelope sender (citizen-N@example.org);
  - every address in From, Sender, Reply-To, To and Cc, and every display
    name there, decoded with Python's email package (policy=default);
  - the Subject, decoded the same way;
  - one sentence of body text: the first line of the text/plain body
    (email's get_body) that is at least 20 characters long once stripped
    and holds a space and a letter, cut to at most 60 characters;
  - the raw bytes of those header fields as they appear in the message
    sent: the unfolded value, and each physical line of it.
Rule for headers (kept simple on purpose): a header string is searched only
if it has at least 8 characters and contains a space or an '@' -- this
drops single words ("test", "Re:", "Hello") that occur anywhere by chance.
Each string is searched as UTF-8 bytes (undecodable bytes as they were),
addresses also in lower case, a body line also in its part's charset, and
a decoded value also with its runs of white space made one space.

Excluded (EXCLUDED below), because they are our own configuration and no
one's personal data, and the store may keep them readable: the mailbox
addresses and names of harness.MAILBOXES, the queue name ("general"), the
host name ("intake.test") and the reference prefix ("ESC").  A needle is
dropped only when it equals one of these (ignoring case).

The search itself is `grep -F` (all needles in one pass over the files; a
Python loop over thousands of needles and tens of MB takes far longer);
a needle is cut at a newline (grep patterns are lines) and to its first
200 bytes.  As a control, the same search must find "SQLite format 3" and
"CREATE TABLE" (readable in every SQLite database) in each pass.
Any hit is located in the database (a copy opened with sqlite3: which
table.column holds the bytes, else "free page / old WAL frame") and the
test fails naming the message, the needle and the place.

Printed: per corpus, files sent, accepted, refused (by reply code), the
number of strings searched (and byte patterns: the variants above), and
the files and bytes searched in each of the two passes.
"""

import collections
import email.parser
import email.policy
import json
import os
import re
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import MAILBOXES, ROOT, SHARED, Intaked

sys.path.insert(0, os.path.join(ROOT, "tests", "corpus"))
import differential  # noqa: E402

SHARED_MAIL = os.path.join(SHARED, "corpus", "mail")
LOCAL_MAIL = os.path.join(ROOT, "tests", "data", "mail")

RCPT = "enquiries@council.example"
CONNECTIONS = 4          # concurrent SMTP sessions
FILE_TIMEOUT = 60.0      # seconds for the spool to empty, after sending

# Our own configuration, readable at rest by design: never personal data.
EXCLUDED = sorted(set(
    [a for a in MAILBOXES] + [n for n in MAILBOXES.values()]
    + ["general", "intake.test", "ESC"]), key=str.lower)
_EXCLUDED_FOLDED = {e.casefold() for e in EXCLUDED}

ADDRESS_HEADERS = ("from", "sender", "reply-to", "to", "cc")
RAW_HEADERS = ADDRESS_HEADERS + ("subject",)

MIN_HEADER_CHARS = 8
MIN_BODY_CHARS = 20
MAX_BODY_CHARS = 60
MAX_PATTERN_BYTES = 200  # longer byte patterns are cut to their start

# Searched alongside the needles, these must be found in each pass: bytes
# SQLite itself keeps readable (the file header, the schema), so a search
# that finds no needle has at least been shown able to find something.
CONTROLS = (b"SQLite format 3", b"CREATE TABLE")

_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.S)
_EOL = re.compile(rb"\r\n|\r|\n")


# ------------------------------------------------------------ the messages

def message_files(d):
    """The RFC 5322 messages under @d (as the parser corpus test picks
    them: not licences, notes, expected outputs or raw TNEF files)."""
    if not os.path.isdir(d):
        return []
    return [f for f in differential.corpus_files([("", d)])
            if differential.is_message(f)]


def crlf(raw):
    """@raw with every line end (CRLF, bare LF, bare CR) a CRLF."""
    return _EOL.sub(b"\r\n", raw)


def raw_headers(data):
    """{lower-case name: [[physical line values...] per field]} of the
    header section of @data (CRLF line ends)."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line)
            continue
        m = _FIELD.match(line)
        if m:
            fields.append((m.group(1).decode("ascii").lower(), [m.group(2)]))
        else:
            fields.append(("", [line]))      # mbox From line, junk
    out = collections.defaultdict(list)
    for name, lines in fields:
        if name:
            out[name].append(lines)
    return out


def _keep_header(s):
    return (len(s) >= MIN_HEADER_CHARS and (" " in s or "@" in s)
            and s.casefold() not in _EXCLUDED_FOLDED)


def _utf8(s):
    return s.encode("utf-8", "surrogateescape")


class Needles:
    """The strings searched for, and the byte patterns made of them."""

    def __init__(self):
        self.strings = {}                      # (file, kind, str) -> patterns
        self.origin = collections.defaultdict(set)   # pattern -> {(file, kind, str)}

    def add(self, path, kind, s, patterns=()):
        """One string (kind: what it is), searched as @patterns and its
        UTF-8 bytes."""
        pats = set()
        for p in [_utf8(s)] + list(patterns):
            for piece in p.split(b"\n"):       # grep patterns are lines
                piece = piece.strip(b"\r \t")[:MAX_PATTERN_BYTES]
                if len(piece) >= MIN_HEADER_CHARS:
                    pats.add(piece)
        if not pats:
            return
        key = (path, kind, s)
        self.strings.setdefault(key, set()).update(pats)
        for p in pats:
            self.origin[p].add(key)

    def add_bytes(self, path, kind, b):
        """A raw header value, searched as the bytes it is."""
        self.add(path, kind, b.decode("utf-8", "surrogateescape"), [b])

    def patterns(self):
        return sorted(self.origin)


def collect(path, data, sender, needles):
    """Add @data's needles (the message as sent, from @path)."""
    rel = differential.display_path(path)
    needles.add(rel, "envelope sender", sender)

    # Raw header bytes, as sent: the unfolded value and each line of it.
    for name, fields in raw_headers(data).items():
        if name not in RAW_HEADERS:
            continue
        for lines in fields:
            values = [b"".join(lines).strip()] + [l.strip() for l in lines]
            for v in values:
                if _keep_header(v.decode("utf-8", "surrogateescape")):
                    needles.add_bytes(rel, "raw " + name, v)

    try:
        msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    except Exception:
        return
    for name in ADDRESS_HEADERS:
        try:
            headers = msg.get_all(name) or []
        except Exception:
            continue
        for h in headers:
            try:
                addrs = h.addresses
            except Exception:
                continue
            for a in addrs:
                try:
                    spec, display = a.addr_spec, a.display_name
                except Exception:
                    continue
                if _keep_header(spec):
                    needles.add(rel, name + " address", spec, [_utf8(spec.lower())])
                if display and _keep_header(display):
                    needles.add(rel, name + " name", display,
                                [_utf8(" ".join(display.split()))])
    try:
        subject = msg["subject"]
    except Exception:
        subject = None
    if subject is not None:
        subject = str(subject)
        if _keep_header(subject):
            needles.add(rel, "subject", subject,
                        [_utf8(" ".join(subject.split()))])

    try:
        part = msg.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else None
        charset = part.get_content_charset() if part is not None else None
    except Exception:
        text = None
    if not isinstance(text, str):
        return
    for line in text.splitlines():
        s = line.strip()
        if (len(s) >= MIN_BODY_CHARS and " " in s
                and any(c.isalpha() for c in s)):
            s = s[:MAX_BODY_CHARS].strip()
            extra = []
            try:
                if charset:
                    extra.append(s.encode(charset))
            except Exception:
                pass
            needles.add(rel, "body", s, extra)
            break


# ------------------------------------------------------------ sending

class Sender:
    """CONNECTIONS threads, each with one SMTP session, made again after
    any refusal or error; every message is sent once."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.results = {}                      # index -> code (None: broken)

    def run(self, items):
        queue = list(enumerate(items))
        queue.reverse()

        def worker():
            s = None
            while True:
                with self.lock:
                    if not queue:
                        break
                    i, (sender, data) = queue.pop()
                if s is None:
                    try:
                        s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
                        s.ehlo("at-rest.test")
                    except (OSError, smtplib.SMTPException):
                        s = None
                        with self.lock:
                            self.results[i] = None
                        continue
                opts = ["BODY=8BITMIME"] if re.search(rb"[\x80-\xff]", data) else []
                code = 250
                try:
                    s.sendmail(sender, [RCPT], data, mail_options=opts)
                except smtplib.SMTPRecipientsRefused as e:
                    code = list(e.recipients.values())[0][0]
                except smtplib.SMTPResponseException as e:
                    code = e.smtp_code
                except (OSError, smtplib.SMTPException):
                    code = None
                if code != 250:
                    try:
                        s.close()
                    except Exception:
                        pass
                    s = None
                with self.lock:
                    self.results[i] = code
            if s is not None:
                try:
                    s.quit()
                except Exception:
                    pass

        threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return self.results


# ------------------------------------------------------------ searching

def grep_hits(patterns, paths):
    """{pattern: [(path, offset)...]} for the patterns found in @paths.
    grep -o reports the leftmost-longest match and goes on after it, so a
    match may hide another; found patterns are taken out and grep runs
    again until it finds nothing new."""
    hits = collections.defaultdict(list)
    left = set(patterns)
    while left and paths:
        with tempfile.NamedTemporaryFile("wb", suffix=".pat") as pf:
            pf.write(b"\n".join(sorted(left)) + b"\n")
            pf.flush()
            r = subprocess.run(["grep", "-a", "-o", "-b", "-F", "-H", "-f",
                                pf.name, "--"] + list(paths),
                               capture_output=True,
                               env=dict(os.environ, LC_ALL="C"))
        if r.returncode not in (0, 1):
            raise AssertionError("grep: " + r.stderr.decode("utf-8", "replace"))
        found = set()
        for line in r.stdout.split(b"\n"):
            if not line:
                continue
            for path in paths:          # "path:offset:match"
                p = path.encode() + b":"
                if line.startswith(p):
                    off, _, match = line[len(p):].partition(b":")
                    if match in left:
                        hits[match].append((path, int(off)))
                        found.add(match)
                    break
        if not found:
            break
        left -= found
    return hits


def python_hits(patterns, paths):
    """The same without grep (slow: used only if grep is missing)."""
    hits = collections.defaultdict(list)
    for path in paths:
        with open(path, "rb") as f:
            blob = f.read()
        for p in patterns:
            i = blob.find(p)
            if i >= 0:
                hits[p].append((path, i))
    return hits


def find_hits(patterns, paths):
    if shutil.which("grep"):
        return grep_hits(patterns, paths)
    return python_hits(patterns, paths)


def locate(db_files, pattern):
    """Where @pattern lives in the database: ["table.column (rowid N)"...]
    from a copy of the files (opening it replays the WAL), or []."""
    tmp = tempfile.mkdtemp(prefix="at-rest-db-")
    try:
        base = None
        for f in db_files:
            name = os.path.basename(f)
            shutil.copy(f, os.path.join(tmp, name))
            if not name.endswith(("-wal", "-shm")):
                base = os.path.join(tmp, name)
        if base is None:
            return []
        con = sqlite3.connect(base)
        out = []
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")]
        for t in tables:
            cols = [r[1] for r in con.execute('PRAGMA table_info("%s")' % t)]
            for c in cols:
                for (rowid,) in con.execute(
                        'SELECT rowid FROM "%s" WHERE instr(CAST("%s" AS BLOB), ?) > 0'
                        % (t, c), (pattern,)):
                    out.append("%s.%s (rowid %d)" % (t, c, rowid))
        con.close()
        return out
    except sqlite3.Error as e:
        return ["(sqlite3: %s)" % e]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def var_files(d):
    """Every file in the daemon's var/ but the master key."""
    var = os.path.join(d.dir, "var")
    return sorted(os.path.join(var, n) for n in os.listdir(var)
                  if n != "master.key" and os.path.isfile(os.path.join(var, n)))


# ------------------------------------------------------------ the test

class AtRest(unittest.TestCase):
    def check_corpus(self, label, files):
        t0 = time.monotonic()
        items = []
        normalised = 0
        for i, path in enumerate(files):
            with open(path, "rb") as f:
                raw = f.read()
            data = crlf(raw)
            normalised += data != raw
            items.append(("citizen-%d@example.org" % (i + 1), data))

        needles = Needles()
        for path, (sender, data) in zip(files, items):
            collect(path, data, sender, needles)
        patterns = needles.patterns()

        with Intaked() as d:
            results = Sender(d.port).run(items)
            t_sent = time.monotonic()
            deadline = time.monotonic() + FILE_TIMEOUT
            while d.spool_count() != 0:
                if time.monotonic() > deadline:
                    self.fail("%s: %d messages still in the spool after %.0f s"
                              % (label, d.spool_count(), FILE_TIMEOUT))
                time.sleep(0.2)
            t_filed = time.monotonic()
            n_cases = len(d.cases())
            n_quarantined = len(json.loads(d.ctl(
                "quarantine", "list", "--json", check=True).stdout))

            # Pass 1: the daemon is running.  Snapshot first (the files
            # are searched and, on a hit, opened as they were).
            snap1 = tempfile.mkdtemp(prefix="at-rest-running-")
            self.addCleanup(shutil.rmtree, snap1, True)
            running = []
            for f in var_files(d):
                dst = os.path.join(snap1, os.path.basename(f))
                shutil.copy(f, dst)
                running.append(dst)
            hits_running = find_hits(patterns + list(CONTROLS), running)
            d.stop()
        stopped = var_files(d)
        hits_stopped = find_hits(patterns + list(CONTROLS), stopped)
        controls = {}
        for when, hits in (("running", hits_running), ("stopped", hits_stopped)):
            controls[when] = [c for c in CONTROLS if hits.pop(c, None)]
        t_end = time.monotonic()

        codes = collections.Counter(results.get(i, None) for i in range(len(items)))
        accepted = codes.pop(250, 0)
        refused = ", ".join("%s: %d" % ("no reply" if c is None else c, n)
                            for c, n in sorted(codes.items(), key=lambda x: str(x[0])))
        kinds = collections.Counter(k for (_, k, _) in needles.strings)

        def size(paths):
            return sum(os.path.getsize(p) for p in paths)

        sys.stdout.write(
            "\n    %s: %d messages sent (%d with line ends made CRLF), %d accepted"
            ", %d refused%s; %d cases, %d quarantined\n"
            "    searched %d strings (%d distinct; %d byte patterns; %s)\n"
            "    running: %d files, %d bytes (%s); stopped: %d files, %d bytes (%s)\n"
            "    excluded as our own configuration: %s\n"
            "    send %.1f s, filing %.1f s, total %.1f s\n"
            % (label, len(items), normalised, accepted, sum(codes.values()),
               " (%s)" % refused if refused else "", n_cases, n_quarantined,
               len(needles.strings), len({k[2] for k in needles.strings}),
               len(patterns),
               ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
               len(running), size(running),
               " ".join(os.path.basename(p) for p in running),
               len(stopped), size(stopped),
               " ".join(os.path.basename(p) for p in stopped),
               ", ".join(EXCLUDED),
               t_sent - t0, t_filed - t_sent, t_end - t0))

        self.assertGreater(accepted, 0, "%s: no message accepted" % label)
        self.assertGreater(len(needles.strings), 0)
        for when, found in controls.items():
            self.assertEqual(found, list(CONTROLS),
                             "%s: the search found only %r of %r, which every"
                             " SQLite database holds: is it searching?"
                             % (when, found, CONTROLS))

        report = []
        for when, hits, files in (("running", hits_running, running),
                                  ("stopped", hits_stopped, stopped)):
            for pat, where in sorted(hits.items()):
                places = locate(files, pat) or ["free page / old WAL frame"]
                origins = sorted(needles.origin[pat])
                report.append("%s: %r in %s at %s; in the database: %s; from %s"
                              % (when, pat[:80], os.path.basename(where[0][0]),
                                 where[0][1], ", ".join(places[:5]),
                                 "; ".join("%s (%s)" % (o[0], o[1])
                                           for o in origins[:3])))
        if report:
            self.fail("%s: %d strings readable at rest (daemon directory kept:"
                      " %s):\n  %s" % (label, len(report), d.dir,
                                       "\n  ".join(report[:60])))
        shutil.rmtree(d.dir, ignore_errors=True)

    def test_shared_corpus(self):
        files = message_files(SHARED_MAIL)
        if not files:
            self.skipTest("no real-mail corpus at %s" % SHARED_MAIL)
        self.check_corpus("shared corpus", files)

    def test_local_data(self):
        files = message_files(LOCAL_MAIL)
        self.assertTrue(files, "no messages in tests/data/mail")
        self.check_corpus("tests/data/mail", files)


if __name__ == "__main__":
    unittest.main()
