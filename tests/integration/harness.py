"""harness.py - start a private intaked for a test and talk to it.

Each Intaked gets its own temporary directory (conf/, var/), a free port on
127.0.0.1, a fresh master key made with `intakectl keygen`, and its log in
that directory.  The binaries come from $INTAKE_BUILD (default: build).
A daemon started here is always stopped by the test (use it as a context
manager or call stop()); the log is checked for sanitizer reports.
"""

import json
import os
import signal
import smtplib
import sqlite3
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("INTAKE_BUILD", "build"))
INTAKED = os.path.join(BUILD, "intaked")
INTAKECTL = os.path.join(BUILD, "intakectl")
SHARED = os.path.join(os.path.dirname(ROOT), "shared")

MAILBOXES = {
    "enquiries@council.example": "Enquiries",
    "complaints@council.example": "Complaints",
    "foi@council.example": "Freedom of information",
    "dataprotection@council.example": "Data protection",
}

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:",
                   "ERROR: LeakSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Intaked:
    def __init__(self, smtp=None, store=None, cases=None, intake=None,
                 parser=None, env=None):
        self.dir = tempfile.mkdtemp(prefix="intake-test-")
        os.makedirs(os.path.join(self.dir, "conf"))
        self.port = free_port()
        self.conf = os.path.join(self.dir, "conf", "intake.conf")
        self.log_path = os.path.join(self.dir, "intaked.log")
        self.proc = None
        self._log = None
        self.extra_env = dict(env or {})
        sections = {
            "intake": {"hostname": "intake.test", "user": "nobody"},
            "store": {"database": "../var/intake.db",
                      "master_key": "../var/master.key",
                      "min_free_space": "0"},
            "smtp": {"listen": "127.0.0.1:%d" % self.port},
            "mailboxes": dict(MAILBOXES),
            "cases": {"reference_prefix": "ESC", "default_queue": "general"},
            "parser": {"special_categories":
                       os.path.join(ROOT, "conf", "special-categories.txt")},
        }
        for name, extra in (("intake", intake), ("store", store),
                            ("smtp", smtp), ("cases", cases),
                            ("parser", parser)):
            if extra:
                sections[name].update({k: str(v) for k, v in extra.items()})
        self.sections = sections
        self._write_conf()
        r = self.ctl("keygen")
        if r.returncode != 0:
            raise RuntimeError("keygen failed: " + r.stderr)

    def _write_conf(self):
        with open(self.conf, "w") as f:
            for name, kv in self.sections.items():
                f.write("[%s]\n" % name)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")
        os.chmod(self.conf, 0o644)

    def configure(self, section, key, value):
        """Change one setting in the file (after keygen: it may be bad)."""
        self.sections.setdefault(section, {})[key] = str(value)
        self._write_conf()

    # -- lifecycle -------------------------------------------------------
    def env(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update(self.extra_env)
        return env

    def start(self, wait=True):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([INTAKED, "-c", self.conf],
                                     stdout=self._log, stderr=self._log,
                                     env=self.env(), cwd=self.dir)
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout=60.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("intaked exited with %s:\n%s"
                                   % (self.proc.returncode, self.log()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    s.settimeout(2)
                    banner = s.recv(512)
                    if banner.startswith(b"220"):
                        # Wait for the server to end this probe session, so
                        # it no longer counts against the session limits.
                        s.sendall(b"QUIT\r\n")
                        try:
                            while s.recv(512):
                                pass
                        except OSError:
                            pass
                        self._wait_http(deadline)
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("intaked did not listen:\n" + self.log())

    def _wait_http(self, deadline):
        """With [http] listen, wait for that port too: it opens just after
        the SMTP one."""
        spec = self.sections.get("http", {}).get("listen")
        if not spec:
            return
        host, port = spec.rsplit(":", 1)
        while time.time() < deadline:
            try:
                with socket.create_connection((host, int(port)), 1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("intaked did not listen on HTTP:\n" + self.log())

    def stop(self, timeout=30.0):
        """SIGTERM, wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("intaked did not stop on SIGTERM")
        rc = self.proc.returncode
        self._close_log()
        return rc

    def kill(self):
        """SIGKILL the master (children die with it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()
        # The children follow through PR_SET_PDEATHSIG; make sure.
        deadline = time.time() + 5
        while self.children() and time.time() < deadline:
            time.sleep(0.02)

    def _close_log(self):
        if self._log:
            self._log.close()
            self._log = None
        self.proc = None if self.proc is None or self.proc.poll() is not None else self.proc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self.check_sanitizers()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def check_sanitizers(self):
        text = self.log()
        for mark in SANITIZER_MARKS:
            if mark in text:
                raise AssertionError("sanitizer report in intaked log:\n" + text[-6000:])

    def children(self, role="smtp"):
        """pids of intaked children with --role ROLE."""
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if (len(argv) > 4 and argv[0].endswith(b"intaked")
                    and b"--role" in argv and role.encode() in argv
                    and self.conf.encode() in argv):
                pids.append(int(pid))
        return pids

    # -- talking -----------------------------------------------------------
    def ctl(self, *args, check=False):
        r = subprocess.run([INTAKECTL, "-c", self.conf] + list(args),
                           capture_output=True, text=True, env=self.env())
        if check and r.returncode != 0:
            raise AssertionError("intakectl %s: %s" % (" ".join(args), r.stderr))
        return r

    def cases(self):
        r = self.ctl("cases", "list", "--json", check=True)
        return json.loads(r.stdout)

    def spool_count(self):
        return int(self.ctl("spool", "count", check=True).stdout)

    def wait_cases(self, n, timeout=60.0):
        """Wait until at least n cases exist and the spool is empty."""
        deadline = time.time() + timeout
        cases = []
        while time.time() < deadline:
            cases = self.cases()
            if len(cases) >= n and self.spool_count() == 0:
                return cases
            time.sleep(0.1)
        raise AssertionError("expected %d cases, have %d" % (n, len(cases)))

    def smtp(self, timeout=10):
        return smtplib.SMTP("127.0.0.1", self.port, timeout=timeout)

    def due(self):
        """Outbox rows and webhook events queued and due now: what the
        sender threads still have to try."""
        db = sqlite3.connect(os.path.join(self.dir, "var", "intake.db"),
                             timeout=10)
        try:
            now = int(time.time() * 1e6)
            return sum(db.execute(
                "SELECT count(*) FROM %s WHERE %s = 'queued' AND next_at <= ?"
                % t, (now,)).fetchone()[0]
                for t in (("outbox", "status"), ("webhook_events", "state")))
        finally:
            db.close()

    def settle(self):
        """Wait until the spool is empty and nothing is due in the outbox
        or the webhook queue.  Both are written in the transaction that
        files the message or makes the change (store_case.c,
        store_webhook.c), and the test sink and receiver record what they
        get before they answer, before the row is marked sent; so once this
        holds, everything the changes so far will make intaked send by now
        has arrived, and a count of it is final.  The positive event the
        "nothing more was sent" checks wait for instead of a fixed sleep."""
        wait_for(lambda: self.spool_count() == 0 and self.due() == 0, 60,
                 "spool empty and nothing due to send", self.log)


def wait_for(pred, timeout, what, log=None):
    """Poll pred() every 0.1 s until it is true, and return what it gave;
    fail after timeout seconds with what (and the tail of log(), if given).
    For state the system reaches on its own: as fast as the system when
    idle, and still a failure if the state never comes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s%s" % (
        what, ("\n" + log()[-3000:]) if log else ""))


class Raw:
    """A raw SMTP client socket for byte-exact conversations."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        """Read one whole reply (possibly multi-line); returns (code, text)."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; have %r" % self.buf)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def closed(self, timeout=20):
        """True if the server closed the connection (after any data)."""
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def message(subject="Test", sender="citizen@example.org", body="Hello\r\n",
            msgid=None, extra=""):
    msgid = msgid or "<%s@test.example>" % os.urandom(8).hex()
    return ("From: %s\r\nTo: enquiries@council.example\r\nSubject: %s\r\n"
            "Message-ID: %s\r\n%s\r\n%s" % (sender, subject, msgid, extra, body)).encode()


def mount_small_tmpfs(size="8m"):
    """A tmpfs of @size on a new folder (for full-disk tests); raises
    unittest.SkipTest when not root or when mount refuses.  Undo with
    umount_tmpfs()."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root to mount a small tmpfs")
    mnt = tempfile.mkdtemp(prefix="intake-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%s,mode=0700" % size, "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        raise unittest.SkipTest("cannot mount a tmpfs here: %s"
                                % r.stderr.strip())
    return mnt


def umount_tmpfs(mnt):
    r = subprocess.run(["umount", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    try:
        os.rmdir(mnt)
    except OSError:
        pass


def failsync_shim():
    """tests/integration/shims/failsync.c built into a fresh directory:
    (the LD_PRELOAD value, the directory).  Under an ASan build the
    sanitizer's runtime must come first in LD_PRELOAD, so it is put there
    (found with ldd on intaked)."""
    shim_dir = tempfile.mkdtemp(prefix="intake-shim-")
    shim = os.path.join(shim_dir, "failsync.so")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shims",
                       "failsync.c")
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", shim, src,
                        "-ldl"], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("building the failsync shim: " + r.stderr)
    preload = [shim]
    r = subprocess.run(["ldd", INTAKED], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and "libasan" in parts[0]:
            preload.insert(0, parts[1].split("(")[0].strip())
    return ":".join(preload), shim_dir
