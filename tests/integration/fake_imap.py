"""fake_imap.py - a tiny scripted IMAP server for hostile-server tests.

    with FakeImap("size-mismatch") as f:      # 127.0.0.1:f.port
        ... point the client under test at f.port ...
        f.wait_for("UID FETCH")
        assert "UID STORE" not in f.verbs()

It speaks just enough IMAP4rev1 for one mailbox, INBOX, holding one
message (UID 1, UIDVALIDITY 42): CAPABILITY, LOGIN, AUTHENTICATE PLAIN,
ID, ENABLE, NOOP, LIST, STATUS, SELECT/EXAMINE, (UID) FETCH, (UID) STORE,
(UID) COPY/MOVE, EXPUNGE/UID EXPUNGE, CREATE, CHECK, CLOSE, UNSELECT,
IDLE/DONE, APPEND (accepted, not stored), STARTTLS, LOGOUT.  Any login is accepted.  Every command line
received (tag included; a literal's bytes are not) is appended to
.commands; .verbs() gives just the command names ("UID FETCH", ...).
Each connection is served by its own thread; .connections counts them.

Scenarios (the name given to FakeImap):
  normal                 all of the above answered correctly
  permanentflags-crash   SELECT answers with `* OK [PERMANENTFLAGS (`
                         (the line ends there; libetpan 1.9.4 segfaults)
  truncated-literal      a FETCH of the body announces {2000}, sends 500
                         bytes and closes the connection
  oversized-literal      a FETCH of the body announces {4294967296} (2^32:
                         0 in 32 bits), sends .oversized_send bytes (64 KiB)
                         and closes
  size-mismatch          RFC822.SIZE is 100, but the BODY[] literal is a
                         well-formed message of 5000 bytes
  status-garbage         STATUS answers, and SELECT also sends, a `* STATUS`
                         line of junk (bad numbers, NUL, 8-bit, unbalanced
                         parentheses), and `* STATUS "RUU" ()` (the form of
                         CVE-2022-4121)
  nested-lists           every FETCH first gets an untagged FETCH whose
                         BODYSTRUCTURE is 10,000 nested parenthesised lists
  starttls-injection     STARTTLS is advertised; the answer to it is
                         `TAG OK begin TLS\\r\\n* BYE injected\\r\\n` in one
                         write, then the TLS handshake (self-signed cert,
                         .ca_cert) and normal service if the client goes on
  no-starttls            like normal; STARTTLS is never advertised, and
                         refused (BAD) if sent anyway
  starttls-bad           STARTTLS is advertised, and refused (BAD) when
                         the client sends it: a client must not go on in
                         plain text
  literal-wrap-0         a FETCH of the body announces {4294967296} (2^32),
                         sends no bytes, closes the response with ")" and a
                         tagged OK: a parser that keeps the length in 32
                         bits reads an empty body and a successful FETCH
  literal-wrap-1         the same with {4294967297} and one byte "X"
                         (RFC822.SIZE is the true size in both)

caps_drop names capabilities not to advertise (("MOVE",) makes a client
copy, flag \\Deleted and expunge; .copied_to lists the COPY targets);
drop_on_store=True closes the connection, unanswered, at the first STORE
(a crash between the COPY and the STORE).

starttls=True advertises and performs a correct STARTTLS in any other
scenario (for clients that insist on TLS); the certificate is for
localhost / 127.0.0.1, self-signed, at .ca_cert.  After a handshake the
line "<TLS>" is recorded in .commands and .tls_handshakes counts it;
.tls_failures counts handshakes that failed.
"""

import re
import shutil
import socket
import ssl
import tempfile
import threading
import time

import tls_util

SCENARIOS = ("normal", "permanentflags-crash", "truncated-literal",
             "oversized-literal", "size-mismatch", "status-garbage",
             "nested-lists", "starttls-injection", "no-starttls",
             "literal-wrap-0", "literal-wrap-1", "starttls-bad")

UIDVALIDITY = 42

MESSAGE = (b"From: Resident <resident@example.org>\r\n"
           b"To: enquiries@council.example\r\n"
           b"Subject: Bin collection\r\n"
           b"Message-ID: <fake-imap-1@example.org>\r\n"
           b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
           b"\r\n"
           b"My bin was not collected on Monday.\r\n")


def _big_message(size):
    head = (b"From: Resident <resident@example.org>\r\n"
            b"To: enquiries@council.example\r\n"
            b"Subject: Size mismatch\r\n"
            b"Message-ID: <fake-imap-big@example.org>\r\n\r\n")
    line = b"The quick brown fox jumps over the lazy dog 0123456789.\r\n"
    n = size - len(head) - 2
    body = (line * (n // len(line) + 1))[:n] + b"\r\n"
    msg = head + body
    assert len(msg) == size, len(msg)
    return msg


class _Conn:
    """Buffered line reader over a socket that can be swapped for TLS."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def readline(self):
        while b"\r\n" not in self.buf and b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        i = self.buf.find(b"\n")
        line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        return line.rstrip(b"\r\n")

    def read(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)


class FakeImap:
    def __init__(self, scenario="normal", starttls=None, oversized_send=65536,
                 nest_depth=10000, caps_drop=(), drop_on_store=False):
        if scenario not in SCENARIOS:
            raise ValueError("unknown scenario %r; one of %s"
                             % (scenario, ", ".join(SCENARIOS)))
        self.scenario = scenario
        if scenario in ("starttls-injection", "starttls-bad"):
            starttls = True
        elif scenario == "no-starttls":
            starttls = False
        self.starttls = bool(starttls)
        self.oversized_send = oversized_send
        self.nest_depth = nest_depth
        self.caps_drop = set(caps_drop)
        self.drop_on_store = drop_on_store
        self.copied_to = []
        self.commands = []
        self.connections = 0
        self.tls_handshakes = 0
        self.tls_failures = 0
        self.dir = tempfile.mkdtemp(prefix="intake-fakeimap-")
        self.ca_cert = None
        self._ctx = None
        if self.starttls:
            cert, key = tls_util.make_cert(self.dir)
            self.ca_cert = cert
            self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ctx.load_cert_chain(cert, key)
        # One mailbox, one message; flags and presence are shared by all
        # connections so a second session sees what the first did.
        self.flags = set()
        self.expunged = False
        self.moved_to = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._socks = set()
        self._threads = []
        self._stopping = False
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    # -- lifecycle -------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stopping = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._accepter.join(5)
        for t in self._threads:
            t.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- what the client did ---------------------------------------------
    def verbs(self):
        """The command names received, in order ("LOGIN", "UID FETCH")."""
        out = []
        for line in list(self.commands):
            if line == "<TLS>":
                continue
            parts = line.split(" ", 3)
            if len(parts) < 2:
                continue
            verb = parts[1].upper()
            if verb == "UID" and len(parts) > 2:
                verb = "UID " + parts[2].upper()
            out.append(verb)
        return out

    def wait_for(self, verb, timeout=10.0, count=1):
        """Wait until @verb was received @count times; returns bool."""
        deadline = time.time() + timeout
        with self._cond:
            while self.verbs().count(verb.upper()) < count:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # -- serving ---------------------------------------------------------
    def _accept_loop(self):
        while not self._stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks.add(sock)
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(t)
            t.start()

    def _record(self, line):
        with self._cond:
            self.commands.append(line)
            self._cond.notify_all()

    def _caps(self, tls_done):
        caps = [c for c in ("IMAP4rev1", "SASL-IR", "LITERAL+", "ID",
                            "ENABLE", "IDLE", "UIDPLUS", "MOVE", "UNSELECT",
                            "AUTH=PLAIN") if c not in self.caps_drop]
        if self.starttls and not tls_done:
            caps.append("STARTTLS")
        return " ".join(caps)

    def _serve(self, sock):
        conn = _Conn(sock)
        st = {"selected": False, "tls": False}
        try:
            conn.send("* OK [CAPABILITY %s] fake IMAP ready\r\n"
                      % self._caps(False))
            while not self._stopping:
                line = conn.readline()
                if line is None:
                    return
                # A command may end with a literal: {n} or {n+}.
                full = line
                while True:
                    m = re.search(rb"\{(\d+)(\+?)\}$", full)
                    if not m:
                        break
                    if not m.group(2):
                        conn.send(b"+ go ahead\r\n")
                    data = conn.read(int(m.group(1)))
                    if data is None:
                        return
                    rest = conn.readline()
                    if rest is None:
                        return
                    full = full[:m.start()] + b"<literal %d>" % len(data) + rest
                text = full.decode("utf-8", "replace")
                self._record(text)
                if not self._command(conn, st, text):
                    return
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            with self._lock:
                self._socks.discard(sock)
            try:
                conn.sock.close()
            except OSError:
                pass

    def _command(self, conn, st, text):
        """Answer one command; False to close the connection."""
        parts = text.split(" ", 2)
        tag = parts[0]
        verb = parts[1].upper() if len(parts) > 1 else ""
        args = parts[2] if len(parts) > 2 else ""
        uid = False
        if verb == "UID":
            uid = True
            sub = args.split(" ", 1)
            verb = sub[0].upper()
            args = sub[1] if len(sub) > 1 else ""
        ok = lambda msg="done": conn.send("%s OK %s\r\n" % (tag, msg))

        if verb == "CAPABILITY":
            conn.send("* CAPABILITY %s\r\n" % self._caps(st["tls"]))
            ok()
        elif verb == "STARTTLS":
            if not self.starttls or st["tls"]:
                conn.send("%s BAD STARTTLS not offered\r\n" % tag)
                return True
            if self.scenario == "starttls-bad":
                conn.send("%s BAD not now\r\n" % tag)
                return True
            if self.scenario == "starttls-injection":
                conn.send("%s OK begin TLS\r\n* BYE injected\r\n" % tag)
            else:
                ok("begin TLS")
            try:
                tls = self._ctx.wrap_socket(conn.sock, server_side=True)
            except (ssl.SSLError, OSError):
                with self._lock:
                    self.tls_failures += 1
                return False
            with self._lock:
                self._socks.add(tls)
                self.tls_handshakes += 1
            conn.sock = tls
            # Anything the client pipelined before the handshake is
            # dropped (RFC 3501 6.2.1 and the CVE-2011-0411 lesson).
            conn.buf = b""
            st["tls"] = True
            self._record("<TLS>")
        elif verb == "LOGIN":
            ok("[CAPABILITY %s] LOGIN completed" % self._caps(st["tls"]))
        elif verb == "AUTHENTICATE":
            if len(args.split()) < 2:
                conn.send("+ \r\n")
                resp = conn.readline()
                if resp is None:
                    return False
                self._record("<sasl %d bytes>" % len(resp))
                if resp == b"*":
                    conn.send("%s BAD cancelled\r\n" % tag)
                    return True
            ok("AUTHENTICATE completed")
        elif verb in ("NOOP", "CHECK", "ENABLE", "CREATE", "SUBSCRIBE"):
            ok()
        elif verb == "ID":
            conn.send('* ID ("name" "fake")\r\n')
            ok()
        elif verb in ("LIST", "LSUB"):
            conn.send('* %s (\\HasNoChildren) "/" INBOX\r\n'
                      '* %s (\\HasNoChildren) "/" Processed\r\n' % (verb, verb))
            ok()
        elif verb == "STATUS":
            if self.scenario == "status-garbage":
                conn.send(self._status_garbage())
            else:
                n = 0 if self.expunged else 1
                conn.send("* STATUS INBOX (MESSAGES %d UIDNEXT 2 UIDVALIDITY "
                          "%d UNSEEN %d RECENT 0)\r\n"
                          % (n, UIDVALIDITY, n and "\\Seen" not in self.flags))
            ok("STATUS completed")
        elif verb in ("SELECT", "EXAMINE"):
            self._select(conn, tag, verb)
            st["selected"] = True
        elif verb in ("CLOSE", "UNSELECT"):
            st["selected"] = False
            ok()
        elif verb == "IDLE":
            conn.send("+ idling\r\n")
            done = conn.readline()
            if done is None:
                return False
            self._record(done.decode("utf-8", "replace"))
            ok("IDLE terminated")
        elif verb == "FETCH":
            return self._fetch(conn, tag, uid, args)
        elif verb == "STORE":
            if self.drop_on_store:
                # the first STORE is never answered: the connection drops
                # as if the server, or the client, had died right there
                self.drop_on_store = False
                return False
            self._store(conn, tag, uid, args)
        elif verb in ("COPY", "MOVE"):
            target = args.split(" ", 1)[1] if " " in args else ""
            here = self._matches(args.split(" ", 1)[0], uid)
            if verb == "MOVE" and here:
                self.moved_to = target.strip('"')
                conn.send("* OK [COPYUID %d 1 1] moved\r\n* 1 EXPUNGE\r\n"
                          % UIDVALIDITY)
                self.expunged = True
                ok("MOVE completed")
            elif here:
                self.copied_to.append(target.strip('"'))
                ok("[COPYUID %d 1 1] COPY completed" % UIDVALIDITY)
            else:
                ok("no messages")
        elif verb == "EXPUNGE":
            if not self.expunged and "\\Deleted" in self.flags:
                self.expunged = True
                conn.send("* 1 EXPUNGE\r\n")
            ok("EXPUNGE completed")
        elif verb == "APPEND":
            ok("[APPENDUID %d 2] APPEND completed (and dropped)" % UIDVALIDITY)
        elif verb == "LOGOUT":
            conn.send("* BYE logging out\r\n")
            ok("LOGOUT completed")
            return False
        else:
            conn.send("%s BAD unknown command\r\n" % tag)
        return True

    def _select(self, conn, tag, verb):
        n = 0 if self.expunged else 1
        out = ["* %d EXISTS" % n, "* 0 RECENT",
               "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"]
        if self.scenario == "permanentflags-crash":
            out.append("* OK [PERMANENTFLAGS (")
        else:
            out.append("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted "
                       "\\Seen \\Draft \\*)] flags")
        out += ["* OK [UIDVALIDITY %d] UIDs valid" % UIDVALIDITY,
                "* OK [UIDNEXT 2] next UID"]
        if self.scenario == "status-garbage":
            out.append(self._status_garbage().decode("latin-1").rstrip("\r\n"))
        mode = "READ-ONLY" if verb == "EXAMINE" else "READ-WRITE"
        out.append("%s OK [%s] %s completed" % (tag, mode, verb))
        conn.send(("\r\n".join(out) + "\r\n").encode("latin-1"))

    @staticmethod
    def _status_garbage():
        return (b"* STATUS INBOX (MESSAGES -1 UIDNEXT 99999999999999999999 "
                b"UIDVALIDITY x\x00y UNSEEN ((( \xff\xfe NIL {5}\r\n"
                b"* STATUS \"unterminated (MESSAGES\r\n"
                b"* STATUS INBOX (MESSAGES 4294967296 RECENT)))\r\n"
                # the form of CVE-2022-4121 (libetpan, an empty STATUS
                # attribute list): SECURITY-TESTS 82
                b"* STATUS \"RUU\" ()\r\n")

    def _matches(self, seqset, uid):
        """Does the sequence/UID set name our message (UID 1, seq 1)?"""
        if self.expunged:
            return False
        for part in seqset.split(","):
            lo, _, hi = part.partition(":")
            if lo == "*" or hi == "*":
                return True
            try:
                a = int(lo)
                b = int(hi) if hi else a
            except ValueError:
                continue
            if min(a, b) <= 1 <= max(a, b):
                return True
        return False

    def _fetch(self, conn, tag, uid, args):
        seqset, _, items = args.partition(" ")
        if self.scenario == "nested-lists":
            d = self.nest_depth
            conn.send(b"* 1 FETCH (UID 1 BODYSTRUCTURE " + b"(" * d
                      + b'"text" "plain" NIL NIL NIL "7bit" 10 1'
                      + b")" * d + b")\r\n")
        if not self._matches(seqset, uid):
            conn.send("%s OK FETCH completed\r\n" % tag)
            return True
        want = items.upper()
        body_item = None
        m = re.search(r"(BODY(?:\.PEEK)?\[([A-Z0-9.]*)\]|RFC822(?:\.HEADER|\.TEXT)?(?![.A-Z]))",
                      want)
        if m:
            body_item = m
        msg = MESSAGE
        size = len(msg)
        if self.scenario == "size-mismatch":
            msg = _big_message(5000)
            size = 100
        head, _, text = msg.partition(b"\r\n\r\n")
        head += b"\r\n\r\n"
        parts = [b"UID 1"]
        if "FLAGS" in want:
            parts.append(b"FLAGS (" + " ".join(sorted(self.flags)).encode() + b")")
        if "RFC822.SIZE" in want:
            parts.append(b"RFC822.SIZE %d" % size)
        if "INTERNALDATE" in want:
            parts.append(b'INTERNALDATE "01-Jan-2024 10:00:01 +0000"')
        if body_item is None:
            conn.send(b"* 1 FETCH (" + b" ".join(parts) + b")\r\n")
            conn.send("%s OK FETCH completed\r\n" % tag)
            return True
        name = body_item.group(1)
        section = body_item.group(2) or ""
        if name.startswith("BODY"):
            label = b"BODY[" + section.encode() + b"]"
            data = {"": msg, "HEADER": head, "TEXT": text}.get(section, msg)
        else:
            label = name.encode()
            data = {"RFC822": msg, "RFC822.HEADER": head,
                    "RFC822.TEXT": text}[name]
        if name.startswith("BODY[") or name == "RFC822" or name == "RFC822.TEXT":
            self.flags.add("\\Seen")
        prefix = b"* 1 FETCH (" + b" ".join(parts) + b" " + label
        if self.scenario == "truncated-literal":
            conn.send(prefix + b" {2000}\r\n" + (msg * 10)[:500])
            return False
        if self.scenario in ("literal-wrap-0", "literal-wrap-1"):
            if self.scenario == "literal-wrap-0":
                conn.send(prefix + b" {4294967296}\r\n)\r\n")
            else:
                conn.send(prefix + b" {4294967297}\r\nX)\r\n")
            conn.send("%s OK FETCH completed\r\n" % tag)
            return True
        if self.scenario == "oversized-literal":
            conn.send(prefix + b" {4294967296}\r\n")
            chunk = (msg * (65536 // len(msg) + 1))[:65536]
            left = self.oversized_send
            while left > 0:
                conn.send(chunk[:left])
                left -= len(chunk)
            return False
        conn.send(prefix + b" {%d}\r\n" % len(data) + data + b")\r\n")
        conn.send("%s OK FETCH completed\r\n" % tag)
        return True

    def _store(self, conn, tag, uid, args):
        m = re.match(r"(\S+) ([+-]?)FLAGS(\.SILENT)? \(?([^)]*)\)?", args, re.I)
        if not m:
            conn.send("%s BAD bad STORE\r\n" % tag)
            return
        if self._matches(m.group(1), uid):
            flags = set(m.group(4).split())
            if m.group(2) == "+":
                self.flags |= flags
            elif m.group(2) == "-":
                self.flags -= flags
            else:
                self.flags = flags
            if not m.group(3):
                conn.send("* 1 FETCH (UID 1 FLAGS (%s))\r\n"
                          % " ".join(sorted(self.flags)))
        conn.send("%s OK STORE completed\r\n" % tag)
