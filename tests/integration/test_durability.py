"""test_durability.py - crashes, restarts, lock contention and a full disk
(SECURITY-TESTS section E: 35, 37, 38, 41, plus child supervision).

The oracle everywhere: a message that got "250" is a case exactly once
after the dust settles; a message that did not get 250 is either a whole
case (at most once) or absent; nothing else appears.  Results are read
through `intakectl cases list --json` (the personal data in the database is
encrypted); only the lock-contention test opens the database directly, to
hold its write lock.

Waits are polls with bounded timeouts.  The only unconditional sleeps are
the kill storm's random gaps between kills and its per-message rate limit,
which spread the kills over the traffic; they wait for nothing.
"""

import collections
import errno
import os
import random
import re
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from harness import (ROOT, Intaked, failsync_shim, free_port, message,
                     mount_small_tmpfs, umount_tmpfs)

RCPT = "enquiries@council.example"
SENDER = "citizen@example.org"


def poll(cond, timeout, what, interval=0.05):
    """Return cond()'s first true value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def metrics(http_port):
    """The gauges and counters of /metrics without labels, by name."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port,
                                timeout=20) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "{" not in line:
            out[parts[0]] = float(parts[1])
    return out


def run_id():
    return os.urandom(4).hex()


class Client:
    """One SMTP connection that is dropped after any error and made again
    (with small polls, up to a deadline) before the next message.  A
    message is never retried: its first final reply is its result."""

    def __init__(self, port, helo="durability.test"):
        self.port = port
        self.helo = helo
        self.s = None

    def connect(self, deadline):
        while True:
            try:
                s = smtplib.SMTP("127.0.0.1", self.port, timeout=20)
                try:
                    code, _ = s.ehlo(self.helo)
                except (OSError, smtplib.SMTPException):
                    s.close()
                    raise
                if code == 250:
                    self.s = s
                    return True
                s.close()
            except (OSError, smtplib.SMTPException):
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def drop(self):
        if self.s is not None:
            try:
                self.s.close()
            except Exception:
                pass
            self.s = None

    def send(self, data, deadline, probe=False):
        """Send one message (after a NOOP on an old connection if probe).  Returns (stage, code, text): stage is the
        command whose reply ended the transaction (CONNECT, MAIL, RCPT,
        DATA); code is None when the connection broke (or never came)."""
        if self.s is not None and probe:
            # A connection that died while idle (its SMTP child was killed)
            # is replaced before the message starts: the message itself is
            # still sent once only.
            try:
                if self.s.noop()[0] != 250:
                    self.drop()
            except (OSError, smtplib.SMTPException):
                self.drop()
        if self.s is None and not self.connect(deadline):
            return ("CONNECT", None, "no connection before the deadline")
        stage = "MAIL"
        try:
            code, text = self.s.mail(SENDER)
            if code == 250:
                stage = "RCPT"
                code, text = self.s.rcpt(RCPT)
            if code == 250:
                stage = "DATA"
                code, text = self.s.data(data)
        except smtplib.SMTPResponseException as e:    # DATA not 354
            self.drop()
            return (stage, e.smtp_code, e.smtp_error.decode("utf-8", "replace"))
        except (OSError, smtplib.SMTPException) as e:
            self.drop()
            return (stage, None, "%s: %s" % (type(e).__name__, e))
        text = text.decode("utf-8", "replace")
        if code != 250 or stage != "DATA":
            self.drop()
        return (stage, code, text)

    def close(self):
        if self.s is not None:
            try:
                self.s.quit()
            except Exception:
                pass
        self.drop()


def send_one(port, data, timeout=30.0):
    """One message on a fresh connection: (stage, code, text, reply_time)."""
    c = Client(port)
    try:
        stage, code, text = c.send(data, time.monotonic() + timeout)
        return stage, code, text, time.monotonic()
    finally:
        c.close()


class DurabilityTest(unittest.TestCase):
    def setUp(self):
        self.daemons = []
        self.mounts = []

    def daemon(self, start=True, **kw):
        d = Intaked(**kw)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def tearDown(self):
        errors = []
        for d in self.daemons:
            try:
                if d.proc is not None and d.proc.poll() is None:
                    d.stop()
            except Exception as e:
                errors.append(e)
                d.kill()
            try:
                d.check_sanitizers()
            except AssertionError as e:
                errors.append(e)
        for mnt in self.mounts:
            umount_tmpfs(mnt)
        if errors:
            raise errors[0]

    # -- checks ------------------------------------------------------------
    def check_cases(self, d, sent, acked, timeout=60.0):
        """Wait for an empty spool, then check the cases against what was
        sent: sent maps Message-ID (no <>) to Subject; acked is the set of
        Message-IDs that got 250.  Returns the cases."""
        try:
            poll(lambda: d.spool_count() == 0, timeout, "an empty spool",
                 interval=0.2)
        except AssertionError as e:
            warnings = [l for l in d.log().splitlines()
                        if "warning" in l or "event=ingest-failed" in l
                        or "event=spool-row-unreadable" in l]
            raise AssertionError("%s: %d rows left in the spool; warnings:\n%s"
                                 % (e, d.spool_count(), "\n".join(warnings[-40:])))
        cases = d.cases()
        counts = collections.Counter(c["message_id"] for c in cases)
        twice = sorted(m for m, n in counts.items() if n > 1)
        self.assertEqual(twice, [], "Message-IDs recorded more than once")
        strangers = sorted(m for m in counts if m not in sent)
        self.assertEqual(strangers, [], "cases for messages never sent")
        missing = sorted(m for m in acked if m not in counts)
        self.assertEqual(missing, [], "%d messages got 250 and are not cases"
                         % len(missing))
        for c in cases:
            self.assertGreaterEqual(c["messages"], 1, "case without a message: %r" % c)
            self.assertTrue(c["subject"], "case without a subject: %r" % c)
            self.assertEqual(c["subject"], sent[c["message_id"]],
                             "case subject does not match what was sent: %r" % c)
        return cases

    # -- 35: kill -9 storm -------------------------------------------------
    def test_kill_storm(self):
        """SECURITY-TESTS 35: 2,000 messages over 20 sessions while the
        master is SIGKILLed at random and restarted."""
        THREADS, PER, MIN_KILLS = 20, 100, 5
        seed = int(os.environ.get("INTAKE_STORM_SEED", random.randrange(1 << 30)))
        d = self.daemon()
        run = run_id()
        t0 = time.monotonic()
        hard_deadline = t0 + 100.0

        sent = {}                               # Message-ID -> Subject
        results = {}                            # Message-ID -> (stage, code, text)
        lock = threading.Lock()
        state = {"kills": 0, "killer_done": False, "restart_errors": []}
        cond = threading.Condition()
        clients_done = threading.Event()
        for t in range(THREADS):
            for i in range(PER):
                mid = "storm-%s-t%02d-m%03d@durability.test" % (run, t, i)
                sent[mid] = "storm %s t%02d m%03d" % (run, t, i)

        def client(t):
            rng = random.Random(seed * 100 + t)
            c = Client(d.port, helo="t%02d.durability.test" % t)
            try:
                for i in range(PER):
                    mid = "storm-%s-t%02d-m%03d@durability.test" % (run, t, i)
                    # Spread the traffic so the kills land in it: message i
                    # waits (bounded) for the kills the schedule expects by
                    # then, and a small rate limit paces the thread.
                    need = i * (MIN_KILLS + 1) // PER
                    with cond:
                        cond.wait_for(lambda: state["kills"] >= need
                                      or state["killer_done"],
                                      timeout=max(0.0, hard_deadline - time.monotonic()))
                    time.sleep(rng.uniform(0.02, 0.10))
                    if time.monotonic() >= hard_deadline:
                        r = ("CONNECT", None, "test deadline passed")
                    else:
                        data = message(subject=sent[mid], msgid="<%s>" % mid,
                                       body="thread %d message %d\r\n" % (t, i))
                        r = c.send(data, min(hard_deadline, time.monotonic() + 30.0),
                                   probe=True)
                    with lock:
                        results[mid] = r
            finally:
                c.close()

        def killer():
            rng = random.Random(seed)
            try:
                while time.monotonic() < hard_deadline - 10:
                    if clients_done.wait(rng.uniform(0.3, 1.5)):
                        break
                    d.kill()
                    with cond:
                        state["kills"] += 1
                        cond.notify_all()
                    for attempt in range(3):
                        try:
                            d.start()
                            break
                        except RuntimeError as e:
                            state["restart_errors"].append(str(e)[-2000:])
                            d.kill()
                    else:
                        return
            finally:
                with cond:
                    state["killer_done"] = True
                    cond.notify_all()

        threads = [threading.Thread(target=client, args=(t,), daemon=True)
                   for t in range(THREADS)]
        kt = threading.Thread(target=killer, daemon=True)
        kt.start()
        for th in threads:
            th.start()
        for th in threads:
            th.join(max(1.0, hard_deadline + 35 - time.monotonic()))
        clients_done.set()
        kt.join(60)
        self.assertFalse(any(th.is_alive() for th in threads), "client threads hung")
        self.assertFalse(kt.is_alive(), "killer thread hung")
        self.assertEqual(state["restart_errors"], [], "restarts failed")
        if d.proc is None or d.proc.poll() is not None:
            d.start()
        t_traffic = time.monotonic() - t0

        acked = {m for m, r in results.items() if r[1] == 250 and r[0] == "DATA"}
        unacked = {m for m in sent if m not in acked}
        outcome = collections.Counter(
            "%s %s" % (r[0], r[1] if r[1] is not None else "broken")
            for m, r in results.items() if m not in acked)
        cases = self.check_cases(d, sent, acked)
        present = {c["message_id"] for c in cases}
        print("\n  kill storm: seed=%d kills=%d sent=%d acked=%d unacked=%d "
              "(of which present as cases: %d) cases=%d traffic=%.1fs total=%.1fs"
              % (seed, state["kills"], len(results), len(acked), len(unacked),
                 len(unacked & present), len(cases), t_traffic,
                 time.monotonic() - t0))
        print("  unacknowledged outcomes: %s" % dict(sorted(outcome.items())))
        self.assertEqual(len(results), THREADS * PER)
        self.assertGreaterEqual(state["kills"], MIN_KILLS)
        self.assertGreater(len(acked), THREADS * PER // 2,
                           "most messages should still get through")
        bad = {k: n for k, n in outcome.items() if k.split()[1].startswith("5")}
        self.assertEqual(bad, {}, "permanent refusals during the storm")
        self.assertIsNone(d.proc.poll())

    # -- supervision of the SMTP child --------------------------------------
    def test_smtp_child_killed(self):
        d = self.daemon()
        old = poll(d.children, 10, "the SMTP child")[0]
        os.kill(old, signal.SIGKILL)
        new = poll(lambda: [p for p in d.children() if p != old], 10,
                   "a new SMTP child")[0]
        self.assertNotEqual(new, old)
        mid = "after-child-kill-%s@durability.test" % run_id()
        stage, code, text, _ = send_one(d.port, message(subject="after child kill",
                                                        msgid="<%s>" % mid))
        self.assertEqual((stage, code), ("DATA", 250), text)
        self.assertIn("2.0.0 Ok: queued as", text)
        cases = d.wait_cases(1)
        self.assertEqual([c["message_id"] for c in cases], [mid])
        self.assertIsNone(d.proc.poll(), "the master exited")
        log = d.log()
        self.assertRegex(log, r"event=child-exit child=smtp/0 pid=%d signal=9" % old)
        self.assertIn("event=child-restart child=smtp/0", log)
        self.assertIn("event=child-start child=smtp/0 pid=%d" % new, log)

    def test_child_restart_backoff(self):
        d = self.daemon()
        seen = set()
        gaps = []
        killed_at = None
        for k in range(5):
            pid = poll(lambda: [p for p in d.children() if p not in seen], 15,
                       "SMTP child number %d" % (k + 1), interval=0.01)[0]
            if killed_at is not None:
                gaps.append(time.monotonic() - killed_at)
            seen.add(pid)
            if k == 4:
                break                   # the fifth one stays
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
        self.assertIsNone(d.proc.poll(), "the master exited")
        in_ms = [int(v) for v in
                 re.findall(r"event=child-restart child=smtp/0 in_ms=(\d+)", d.log())]
        print("\n  restart back-off: in_ms=%s observed gaps=%s"
              % (in_ms, ["%.2f" % g for g in gaps]))
        self.assertEqual(len(in_ms), 4, d.log()[-3000:])
        self.assertTrue(all(b > a for a, b in zip(in_ms, in_ms[1:])),
                        "back-off does not grow: %s" % in_ms)
        self.assertEqual(in_ms, [100, 200, 400, 800])
        for gap, ms in zip(gaps, in_ms):
            self.assertGreaterEqual(gap, ms / 1000.0 * 0.9,
                                    "child came back before its back-off")
        mid = "after-backoff-%s@durability.test" % run_id()
        stage, code, text, _ = send_one(d.port, message(subject="after back-off",
                                                        msgid="<%s>" % mid))
        self.assertEqual((stage, code), ("DATA", 250), text)
        self.assertEqual([c["message_id"] for c in d.wait_cases(1)], [mid])

    # -- 41: lock contention ----------------------------------------------
    def test_lock_contention(self):
        """SECURITY-TESTS 41: another process holds BEGIN IMMEDIATE; a
        client gets 451 (busy timeout 5 s), never 250 while it is held."""
        HOLD = 8.0
        d = self.daemon()
        run = run_id()
        sent, acked = {}, set()

        def msg(tag):
            mid = "lock-%s-%s@durability.test" % (tag, run)
            sent[mid] = "lock %s" % tag
            return mid, message(subject=sent[mid], msgid="<%s>" % mid)

        mid0, data0 = msg("before")
        stage, code, text, _ = send_one(d.port, data0)
        self.assertEqual((stage, code), ("DATA", 250), text)
        acked.add(mid0)
        d.wait_cases(1)

        db = os.path.join(d.dir, "var", "intake.db")
        conn = sqlite3.connect(db, timeout=10, isolation_level=None)
        attempts = []                   # [mid, t_sent, result, done-event]

        def client(entry):
            try:
                entry[2] = send_one(d.port, entry[4], timeout=30)
            finally:
                entry[3].set()

        def launch(tag):
            mid, data = msg(tag)
            entry = [mid, time.monotonic(), None, threading.Event(), data, None]
            entry[5] = threading.Thread(target=client, args=(entry,), daemon=True)
            entry[5].start()
            attempts.append(entry)
            return entry

        try:
            self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
            conn.execute("BEGIN IMMEDIATE")
            t_locked = time.monotonic()
            # The lock is held for HOLD seconds (the stimulus, not a wait
            # for anything).  One message goes at once; when it has its
            # answer a second one goes, whose write may still be waiting
            # for the lock when it is released.
            first = launch("during-1")
            first[3].wait(HOLD)
            if first[3].is_set() and HOLD - (time.monotonic() - t_locked) > 1.0:
                launch("during-2")
            threading.Event().wait(max(0.0, HOLD - (time.monotonic() - t_locked)))
            t_released = time.monotonic()
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        for mid, t_sent, _, done, _, th in attempts:
            th.join(40)
            self.assertFalse(th.is_alive(), "client hung")
        refused_mids = set()
        for i, (mid, t_sent, r, _, _, _) in enumerate(attempts):
            stage, code, text, t_reply = r
            print("%s  lock contention: message %d sent at +%.2fs: %s %r %s at +%.2fs;"
                  " lock released at +%.2fs"
                  % ("\n" if i == 0 else "", i + 1, t_sent - t_locked, stage, code,
                     text, t_reply - t_locked, t_released - t_locked))
            self.assertIsNotNone(code, "connection broke: %s" % text)
            if code == 250:
                self.assertGreaterEqual(t_reply, t_released,
                                        "250 while another process held the write lock")
                acked.add(mid)
            else:
                self.assertEqual(stage, "DATA", text)
                self.assertTrue(400 <= code < 500, "%d %s" % (code, text))
                self.assertEqual(code, 451, text)
                self.assertTrue(text.startswith("4.3.0"), text)
                self.assertLess(t_reply, t_released)
                refused_mids.add(mid)
        # A refusal comes within the busy timeout (5 s) plus slack.
        stage, code, text, t_reply = attempts[0][2]
        if code != 250:
            self.assertLess(t_reply - attempts[0][1], 7.0)

        mid2, data2 = msg("after")
        stage, code, text, _ = send_one(d.port, data2)
        self.assertEqual((stage, code), ("DATA", 250), text)
        acked.add(mid2)
        cases = self.check_cases(d, sent, acked)
        present = {c["message_id"] for c in cases}
        self.assertEqual(sorted(refused_mids & present), [],
                         "a message refused with 4xx was stored")
        self.assertIsNone(d.proc.poll())

    # -- 37/38: full disk ---------------------------------------------------
    def test_disk_full(self):
        """SECURITY-TESTS 37/38 on an 8 MiB tmpfs: 452 at MAIL when storage
        is low, 451/452 at end of data when the write fails, never 250 and
        then loss; a message goes through once space is back."""
        mnt = mount_small_tmpfs("8m")
        self.mounts.append(mnt)
        MIN_FREE = 1024 * 1024
        d = self.daemon(store={"database": os.path.join(mnt, "intake.db"),
                               "master_key": os.path.join(mnt, "master.key"),
                               "min_free_space": MIN_FREE},
                        smtp={"max_message_size": 4 * 1024 * 1024})
        run = run_id()
        sent, acked, refused = {}, set(), set()
        replies = []

        def msg(tag, size=0):
            mid = "disk-%s-%s@durability.test" % (tag, run)
            sent[mid] = "disk %s" % tag
            body = "Hello\r\n"
            if size:
                line = "x" * 76 + "\r\n"
                body = line * (size // len(line))
            return mid, message(subject=sent[mid], msgid="<%s>" % mid, body=body)

        def attempt(tag, size=0):
            mid, data = msg(tag, size)
            stage, code, text, _ = send_one(d.port, data)
            replies.append((tag, stage, code, text))
            self.assertIsNotNone(code, "%s: connection broke at %s: %s"
                                 % (tag, stage, text))
            if code == 250 and stage == "DATA":
                acked.add(mid)
            else:
                refused.add(mid)
                # Only the storage refusals are acceptable here.
                if stage == "DATA":
                    self.assertIn(code, (451, 452), "%s: %s %s" % (tag, code, text))
                else:
                    self.assertEqual((stage, code), ("MAIL", 452), "%s: %s" % (tag, text))
                    self.assertTrue(text.startswith("4.3.1"), text)
            return stage, code, text

        def free():
            st = os.statvfs(mnt)
            return st.f_bavail * st.f_frsize

        def fill(hog, leave):
            """Grow the hog until about `leave` bytes remain (0: until
            ENOSPC)."""
            chunk = b"\0" * 65536
            with open(hog, "ab") as f:
                while True:
                    room = free() - leave
                    if leave and room < len(chunk):
                        if room > 0:
                            f.write(chunk[:room])
                        break
                    try:
                        f.write(chunk)
                        f.flush()
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
            return free()

        stage, code, text = attempt("baseline")
        self.assertEqual((stage, code), ("DATA", 250), text)
        d.wait_cases(1)
        hog = os.path.join(mnt, "hog")

        # 38: room for MAIL (above min_free_space), not for the message.
        left = fill(hog, 2 * MIN_FREE)
        self.assertGreater(left, MIN_FREE)
        big = attempt("big", size=3 * 1024 * 1024)
        print("\n  disk full: %d bytes free, 3 MiB message -> %s %s %s"
              % (left, big[0], big[1], big[2]))

        # 37: fill the disk; the master notices within a second or so and
        # MAIL gets 452 4.3.1.  Anything accepted meanwhile must survive.
        left = fill(hog, 0)
        n = [0]

        def refused_at_mail():
            n[0] += 1
            stage, code, _ = attempt("full-%d" % n[0])
            return stage == "MAIL" and code == 452

        poll(refused_at_mail, 10, "452 4.3.1 at MAIL on a full disk", interval=0.2)
        print("  disk full: %d bytes free, %d attempts until 452 at MAIL; replies: %s"
              % (left, n[0], [(t, s, c) for t, s, c, _ in replies]))
        self.assertIsNone(d.proc.poll(), "intaked died on a full disk")

        # Space back: the next message gets 250 and becomes a case.
        os.unlink(hog)
        n = [0]

        def accepted():
            n[0] += 1
            stage, code, _ = attempt("after-%d" % n[0])
            return stage == "DATA" and code == 250

        poll(accepted, 10, "250 once space is back", interval=0.2)
        cases = self.check_cases(d, sent, acked)
        present = {c["message_id"] for c in cases}
        stored_refused = sorted(refused & present)
        self.assertEqual(stored_refused, [], "messages refused with 4xx were stored")
        self.assertIsNone(d.proc.poll())

    # -- SIGTERM in the middle of traffic ------------------------------------
    def test_sigterm_loses_nothing(self):
        THREADS = 5
        d = self.daemon()
        run = run_id()
        sent, results = {}, {}
        lock = threading.Lock()
        stop = threading.Event()
        deadline = time.monotonic() + 90

        def client(t):
            c = Client(d.port, helo="t%d.durability.test" % t)
            i = 0
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    mid = "term-%s-t%d-m%05d@durability.test" % (run, t, i)
                    subj = "term %s t%d m%05d" % (run, t, i)
                    i += 1
                    with lock:
                        sent[mid] = subj
                    r = c.send(message(subject=subj, msgid="<%s>" % mid),
                               min(deadline, time.monotonic() + 30))
                    with lock:
                        results[mid] = r
            finally:
                c.close()

        def n_acked():
            with lock:
                return sum(1 for r in results.values() if r[:2] == ("DATA", 250))

        threads = [threading.Thread(target=client, args=(t,), daemon=True)
                   for t in range(THREADS)]
        for th in threads:
            th.start()
        try:
            poll(lambda: n_acked() >= 100, 30, "100 acknowledged messages")
            before = n_acked()
            rc = d.stop()
            self.assertEqual(rc, 0, "intaked exit code on SIGTERM")
            self.assertEqual(d.children(), [], "SMTP child outlived the master")
            d.start()
            poll(lambda: n_acked() >= before + 100, 30,
                 "100 more acknowledged messages after the restart")
        finally:
            stop.set()
            for th in threads:
                th.join(40)
        self.assertFalse(any(th.is_alive() for th in threads), "client threads hung")
        acked = {m for m, r in results.items() if r[:2] == ("DATA", 250)}
        outcome = collections.Counter(
            "%s %s" % (r[0], r[1] if r[1] is not None else "broken")
            for m, r in results.items() if m not in acked)
        cases = self.check_cases(d, sent, acked)
        print("\n  sigterm: sent=%d acked=%d unacked=%d cases=%d outcomes=%s"
              % (len(results), len(acked), len(results) - len(acked), len(cases),
                 dict(outcome)))

    def send_burst(self, d, batch, threads, join, barrier=False):
        """Each message of @batch (Message-ID -> Subject) sent over
        @threads sessions at once, every one answered 250 after its DATA;
        the sessions are left open (the caller kills the daemon under
        them, then drops them)."""
        mids = sorted(batch)
        results = {}
        clients = [Client(d.port) for _ in range(threads)]
        for c in clients:
            self.assertTrue(c.connect(time.monotonic() + 10))
        go = threading.Barrier(threads) if barrier else None

        def client(t):
            if go is not None:
                go.wait(10)
            for mid in mids[t::threads]:
                results[mid] = clients[t].send(
                    message(subject=batch[mid], msgid="<%s>" % mid),
                    time.monotonic() + 30)

        workers = [threading.Thread(target=client, args=(t,), daemon=True)
                   for t in range(threads)]
        for th in workers:
            th.start()
        for th in workers:
            th.join(join)
        self.assertFalse(any(th.is_alive() for th in workers),
                         "client threads hung")
        self.assertEqual({m: r[:2] for m, r in results.items()},
                         {m: ("DATA", 250) for m in mids})
        return clients

    # -- restart with a full spool -----------------------------------------
    def test_restart_resumes_spool(self):
        """50 messages acknowledged in a burst, the master SIGKILLed at once
        (no QUIT first), restarted: all 50 become cases, each once.  The
        pipeline is quick, so the kill may come after it already finished:
        the round is repeated (up to 5 times, 50 new messages each) until
        one kill leaves messages in the spool."""
        N, THREADS, ROUNDS = 50, 10, 5
        d = self.daemon()
        run = run_id()
        sent = {}
        spooled_per_round = []
        for rnd in range(ROUNDS):
            batch = {}
            for i in range(N):
                mid = "resume-%s-r%d-m%02d@durability.test" % (run, rnd, i)
                batch[mid] = "resume %s r%d m%02d" % (run, rnd, i)
            sent.update(batch)
            clients = self.send_burst(d, batch, THREADS, 30, barrier=True)
            d.kill()
            for c in clients:
                c.drop()
            spooled = d.spool_count()
            spooled_per_round.append(spooled)
            d.start()
            cases = d.wait_cases(len(sent))
            self.check_cases(d, sent, set(sent))
            self.assertEqual(sorted(c["message_id"] for c in cases), sorted(sent))
            if spooled:
                break
        print("\n  resume: still in the spool at each kill (of %d): %s; %d cases"
              % (N, spooled_per_round, len(sent)))


    def test_drain_killed_mid_batch(self):
        """2,000 messages acknowledged in a burst, then the master
        SIGKILLed while the spool drains into cases.  With no mail
        arriving the pipeline hands the writer up to 1,024 filings at once,
        which it takes into one transaction, so a kill then loses a large
        batch: everything it held must still be in the spool (cases and
        spool rows add up to what was sent, at the kill), and after a
        restart every message is one case, once.  The kill is aimed at the
        drain (the spool read directly, read-only, until it has begun to
        shrink); a round whose drain ended first is repeated (up to 3)."""
        N, THREADS, ROUNDS = 2000, 10, 3
        d = self.daemon()
        run = run_id()
        db = os.path.join(d.dir, "var", "intake.db")
        sent = {}
        at_kill = []
        for rnd in range(ROUNDS):
            batch = {}
            for i in range(N):
                mid = "drain-%s-r%d-m%04d@durability.test" % (run, rnd, i)
                batch[mid] = "drain %s r%d m%04d" % (run, rnd, i)
            sent.update(batch)
            clients = self.send_burst(d, batch, THREADS, 60)
            ro = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
            try:
                first = ro.execute("SELECT count(*) FROM spool").fetchone()[0]
                deadline = time.monotonic() + 10
                left = first
                while 0 < left and left > first - 100 \
                        and time.monotonic() < deadline:
                    time.sleep(0.002)
                    left = ro.execute("SELECT count(*) FROM spool").fetchone()[0]
            finally:
                ro.close()
            d.kill()
            for c in clients:
                c.drop()
            spooled = d.spool_count()
            filed = len(d.cases())
            at_kill.append((first, spooled))
            # nothing lost, nothing twice, at the kill itself
            self.assertEqual(spooled + filed, len(sent),
                             "spool rows %d + cases %d at the kill, %d sent"
                             % (spooled, filed, len(sent)))
            d.start()
            cases = d.wait_cases(len(sent))
            self.check_cases(d, sent, set(sent))
            self.assertEqual(sorted(c["message_id"] for c in cases), sorted(sent))
            if spooled:
                break
        print("\n  drain killed: spool rows when the send ended and at the"
              " kill: %s; %d cases" % (at_kill, len(sent)))
        self.assertGreater(at_kill[-1][1], 0, "no kill landed in the drain")

    def test_junk_left_by_a_crash(self):
        """SECURITY-TESTS 42: after a SIGKILL, a torn frame at the end of
        the WAL (half a frame of junk, as a write cut by a power loss
        leaves) and a stale master.key.new from a key rotation that never
        finished: intaked starts cleanly, every message that got 250 is
        one case, the audit chain verifies and a key rotation still
        works."""
        d = self.daemon()
        run = run_id()
        sent = {}
        c = Client(d.port)
        self.assertTrue(c.connect(time.monotonic() + 10))
        for i in range(20):
            mid = "junk-%s-m%02d@durability.test" % (run, i)
            sent[mid] = "junk %s m%02d" % (run, i)
            r = c.send(message(subject=sent[mid], msgid="<%s>" % mid),
                       time.monotonic() + 30)
            self.assertEqual(r[:2], ("DATA", 250), r)
        d.kill()
        c.drop()
        var = os.path.join(d.dir, "var")
        wal = os.path.join(var, "intake.db-wal")
        self.assertTrue(os.path.exists(wal))
        with open(wal, "ab") as f:
            f.write(os.urandom(2048 + 24))     # a frame header and half a page
        with open(os.path.join(var, "master.key.new"), "wb") as f:
            f.write(b"\x00" * 17)
        d.start()
        self.check_cases(d, sent, set(sent))
        self.assertEqual(d.ctl("audit", "verify").returncode, 0)
        d.stop()                 # docs/cases.md: rotate with intaked stopped
        r = d.ctl("keys", "rotate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(var, "master.key.new")))

    def test_no_250_before_the_sync(self):
        """SECURITY-TESTS 34: every fdatasync of the WAL takes 200 ms (the
        shim, FAILSYNC_SLOW_MS).  A commit cannot be durable before a sync
        that began after its write has returned, so if intaked answers 250
        only after the commit is durable, no 250 comes sooner than 200 ms
        after the message was sent; a 250 sent after the write but before
        the sync would come within milliseconds.  Every message gets 250,
        none sooner, and each is a case."""
        shim, shim_dir = failsync_shim()
        d = self.daemon()
        d.stop()
        d.extra_env.update({"LD_PRELOAD": shim,
                            "FAILSYNC_PATH": "intake.db-wal",
                            "FAILSYNC_AT": "1", "FAILSYNC_COUNT": "1000000",
                            "FAILSYNC_SLOW_MS": "200"})
        d.start()
        run = run_id()
        sent, waits = {}, []
        for i in range(10):
            mid = "slow-%s-m%02d@durability.test" % (run, i)
            sent[mid] = "slow %s m%02d" % (run, i)
            t0 = time.monotonic()
            stage, code, text, t1 = send_one(
                d.port, message(subject=sent[mid], msgid="<%s>" % mid))
            self.assertEqual((stage, code), ("DATA", 250), text)
            waits.append(t1 - t0)
        self.assertGreaterEqual(min(waits), 0.19, waits)
        self.check_cases(d, sent, set(sent))
        shutil.rmtree(shim_dir, ignore_errors=True)

    def eio_on_wal(self, call, tag):
        """The disk reports EIO to three calls of kind @call ("sync":
        fsync and fdatasync; "write": pwrite and pwrite64) on the WAL in a
        row, from the twelfth on (an LD_PRELOAD shim, tests/integration/
        shims/failsync.c), while 40 messages arrive one by one: no message
        whose commit did not become durable gets 250 (it gets 421, 451 or
        452, or its connection ends), intaked stays up and goes on
        accepting, and after a restart every message that got 250 is
        exactly one case."""
        shim, shim_dir = failsync_shim()
        # a first start without the shim makes the database (with the
        # shim, a failed sync while migrating refuses the start, exit 69)
        d = self.daemon()
        d.stop()
        d.extra_env.update({"LD_PRELOAD": shim, "FAILSYNC_CALL": call,
                            "FAILSYNC_PATH": "intake.db-wal",
                            "FAILSYNC_AT": "12", "FAILSYNC_COUNT": "3"})
        d.start()
        run = run_id()
        sent, acked, codes = {}, set(), []
        for i in range(40):
            mid = "%s-%s-m%02d@durability.test" % (tag, run, i)
            sent[mid] = "%s %s m%02d" % (tag, run, i)
            stage, code, text, _ = send_one(
                d.port, message(subject=sent[mid], msgid="<%s>" % mid))
            codes.append((stage, code))
            if stage == "DATA" and code == 250:
                acked.add(mid)
            else:
                self.assertTrue(code is None or code in (421, 451, 452),
                                (i, stage, code, text))
        self.assertIsNone(d.proc.poll(), "intaked died")
        refused = [c for c in codes if c != ("DATA", 250)]
        self.assertGreater(len(refused), 0, "the shim never failed a " + call)
        self.assertGreater(len(acked), 30, codes)
        d.stop()
        d.extra_env.pop("LD_PRELOAD")
        d.start()
        self.check_cases(d, sent, acked)
        shutil.rmtree(shim_dir, ignore_errors=True)

    def test_fsync_fails(self):
        """SECURITY-TESTS 39: EIO from three fdatasync calls on the WAL in
        a row (eio_on_wal ())."""
        self.eio_on_wal("sync", "eio")

    def test_wal_write_fails(self):
        """SECURITY-TESTS 39: EIO from three writes to the WAL in a row
        (eio_on_wal ()): as for a failed sync."""
        self.eio_on_wal("write", "weio")

    def checkpoint_writes_fail(self, count, tag):
        """Writes to the database file itself (FAILSYNC_PATH "intake.db$":
        the checkpoints, which copy the WAL into it) fail with EIO, the
        first @count of them, while 400 messages of about 12 pages each
        arrive on one connection (past the checkpointer's 4,000 pages).
        Every one gets 250 and is filed (the WAL holds them), intaked logs
        the failure and shows it in /metrics, stays up and stops with 0;
        after a restart without the fault every message is exactly one
        case and the database passes integrity_check.  Returns the log and
        the gauges read before the stop."""
        shim, shim_dir = failsync_shim()
        d = self.daemon(start=False)
        http_port = free_port()
        d.configure("http", "listen", "127.0.0.1:%d" % http_port)
        d.configure("http", "forms", os.path.join(ROOT, "conf", "forms"))
        d.start()
        d.stop()
        d.extra_env.update({"LD_PRELOAD": shim, "FAILSYNC_CALL": "write",
                            "FAILSYNC_PATH": "intake.db$",
                            "FAILSYNC_AT": "1", "FAILSYNC_COUNT": str(count)})
        d.start()
        run = run_id()
        sent, acked = {}, set()
        body = ("%s\r\n" % ("x" * 76)) * 600
        c = Client(d.port)
        try:
            for i in range(400):
                mid = "%s-%s-m%03d@durability.test" % (tag, run, i)
                sent[mid] = "%s %s m%03d" % (tag, run, i)
                stage, code, text = c.send(
                    message(subject=sent[mid], msgid="<%s>" % mid, body=body),
                    time.monotonic() + 30)
                self.assertEqual((stage, code), ("DATA", 250), text)
                acked.add(mid)
        finally:
            c.close()
        poll(lambda: d.spool_count() == 0, 60, "an empty spool", interval=0.2)
        self.assertIsNone(d.proc.poll(), "intaked died")
        log = d.log()
        self.assertTrue("event=checkpoint-failed" in log,
                        "no checkpoint failed: the shim did not bite")
        gauges = metrics(http_port)
        self.assertEqual(d.stop(), 0, "intaked did not stop cleanly")
        d.extra_env.pop("LD_PRELOAD")
        d.start()
        self.check_cases(d, sent, acked)
        self.assertEqual(metrics(http_port)["intake_checkpoint_failures"], 0)
        d.stop()
        db = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0],
                             "ok")
        finally:
            db.close()
        shutil.rmtree(shim_dir, ignore_errors=True)
        return log, gauges

    def test_checkpoint_write_fails(self):
        """SECURITY-TESTS 39: every write to the database file fails, the
        stop's checkpoint too (checkpoint_writes_fail ()): /metrics shows
        the failures and a WAL well past a checkpoint's size."""
        log, gauges = self.checkpoint_writes_fail(100000000, "ceio")
        self.assertGreaterEqual(gauges["intake_checkpoint_failures"], 1)
        self.assertGreater(gauges["intake_wal_pages"], 4000)
        self.assertFalse("event=checkpoint-recovered" in log,
                         "a checkpoint worked although every write failed")

    def test_checkpoint_write_fails_then_works(self):
        """SECURITY-TESTS 39: the first three writes to the database file
        fail, so the first checkpoint does; the next works
        (checkpoint_writes_fail ()): logged as recovered, and /metrics
        shows no failure any more."""
        log, gauges = self.checkpoint_writes_fail(3, "reio")
        self.assertTrue(re.search(r"event=checkpoint-recovered failures=[1-3]\b",
                                  log), "no event=checkpoint-recovered logged")
        self.assertEqual(gauges["intake_checkpoint_failures"], 0)

if __name__ == "__main__":
    unittest.main()
