#!/usr/bin/env python3
"""bench_helper.py - the small jobs of tests/bench/bench.sh that sh does badly.

  port                          print a free TCP port on 127.0.0.1
  wait-smtp PORT TIMEOUT        wait until PORT answers with a 220 banner
  run TIMEOUT -- CMD...         run CMD, print "ELAPSED_S RC" (RC 124 on
                                timeout; CMD's own output passes through)
  drain INTAKECTL CONF TIMEOUT  poll `intakectl spool count` until 0; print
                                "ELAPSED_S LAST_COUNT" (LAST_COUNT > 0 means
                                it timed out, -1 means intakectl failed)
  count DB                      print "ARRIVALS SPOOL" read from the database
                                (read-only; WAL readers do not block the
                                writer)
  procs CONF                    print the pids of intaked children started
                                for CONF (cmdline has --role smtp and CONF)
  memtest PORT N CONF MASTERPID RESULTFILE
                                measure master + SMTP children, open N idle
                                SMTP sessions (read the banner, then sit),
                                measure again, check the sessions are still
                                open, write "rss_mb pss_mb ok alive nprocs
                                all_rss_mb all_nprocs" to RESULTFILE (rss
                                and pss: master + SMTP children; all_*: with
                                any other intaked children, parse workers)
  e2e DB N TIMEOUT [--pid PID] -- CMD...
                                run CMD (smtp-source sending N messages)
                                and poll DB (read-only, every 0.1 s, every
                                2 ms once fewer than 2,000 are left) until
                                N arrivals are filed into cases or TIMEOUT
                                seconds have passed; print "SEND_S RC
                                FILED_S FILED_AT_SEND MESSAGES CASES SPOOL
                                CPU_SEND_US CPU_REST_US" (SEND_S when CMD
                                exited, taken by a thread waiting for it;
                                FILED_S from the start of CMD to the poll
                                that saw N arrivals, -1 on timeout;
                                FILED_AT_SEND:
                                arrivals when CMD ended; CPU_*: user +
                                system CPU time of PID (intaked) and its
                                children per message, while CMD ran and
                                from then until all were filed, -1 without
                                --pid), after a line "t=S filed=N"
                                every 5 s of the run
"""

import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time

# e2e: messages left below which the database is polled every 2 ms
E2E_NEAR = 2000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_smtp(port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.settimeout(2)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return 0
        except OSError:
            pass
        time.sleep(0.05)
    return 1


def run(timeout, argv):
    t0 = time.monotonic()
    p = subprocess.Popen(argv)
    try:
        rc = p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = 124
    print("%.3f %d" % (time.monotonic() - t0, rc))
    return 0


def spool_count(ctl, conf):
    r = subprocess.run([ctl, "-c", conf, "spool", "count"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("intakectl spool count: rc=%d %s\n"
                         % (r.returncode, r.stderr.strip()))
        return -1
    try:
        return int(r.stdout.strip())
    except ValueError:
        sys.stderr.write("intakectl spool count: odd output %r\n" % r.stdout)
        return -1


def drain(ctl, conf, timeout):
    t0 = time.monotonic()
    n = -1
    while True:
        n = spool_count(ctl, conf)
        if n == 0 or n < 0 or time.monotonic() - t0 > timeout:
            break
        time.sleep(0.1)
    print("%.3f %d" % (time.monotonic() - t0, n))
    return 0


def count(db):
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
        arrivals = c.execute("SELECT count(*) FROM arrivals").fetchone()[0]
        spool = c.execute("SELECT count(*) FROM spool").fetchone()[0]
        c.close()
    except sqlite3.Error as e:
        sys.stderr.write("count %s: %s\n" % (db, e))
        arrivals = spool = -1
    print("%d %d" % (arrivals, spool))
    return 0


def db_counts(db):
    """(arrivals, messages, cases, spool) of a database, read-only; None
    while it cannot be read (not created yet, locked past the timeout)."""
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            return tuple(c.execute("SELECT count(*) FROM %s" % t).fetchone()[0]
                         for t in ("arrivals", "messages", "cases", "spool"))
        finally:
            c.close()
    except sqlite3.Error:
        return None


def cpu_tree(pid):
    """User + system CPU seconds of pid and every live descendant (the
    threads included), or None when pid is gone."""
    hz = os.sysconf("SC_CLK_TCK")
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        kids.setdefault(int(fields[1]), []).append(
            (int(p), (int(fields[11]) + int(fields[12])) / hz))
    total, seen, todo = 0.0, False, [pid]
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / hz
        seen = True
    except OSError:
        return None
    while todo:
        for child, t in kids.get(todo.pop(), []):
            total += t
            todo.append(child)
    return total if seen else None


def arrivals_count(conn):
    """Arrivals in the database through an open read-only connection (each
    query sees the last commit), or None while it cannot be read."""
    try:
        return conn.execute("SELECT count(*) FROM arrivals").fetchone()[0]
    except sqlite3.Error:
        return None


def e2e(db, n, timeout, argv, pid=None):
    """Time from the first send until n messages are filed into cases.

    Both ends are taken as they happen rather than at the next poll: a
    thread waits for CMD and samples the clock, the CPU and the count the
    moment it exits; the database is polled every 0.1 s while more than
    E2E_NEAR messages are left and every 2 ms after (one light query on
    one read-only connection), so the drain of about 1.2 s is no longer
    measured in steps of 0.1 s (8% of it)."""
    import threading

    cpu0 = cpu_tree(pid) if pid else None
    ended = {}
    t0 = time.monotonic()
    p = subprocess.Popen(argv)

    def waiter():
        r = p.wait()
        t = time.monotonic() - t0
        ended["cpu"] = cpu_tree(pid) if pid else None
        got = db_counts(db)
        ended["at_send"] = got[0] if got else -1
        ended["send_s"] = t
        ended["rc"] = r         # last: the main loop looks for it

    threading.Thread(target=waiter, daemon=True).start()
    conn = None
    killed = False
    filed_s = -1.0
    cpu_end = None
    left = n
    next_report = 5.0
    while True:
        now = time.monotonic() - t0
        if now >= next_report:
            print("t=%.0fs filed=%d" % (now, n - left), flush=True)
            next_report += 5.0
        if conn is None and os.path.exists(db):
            try:
                conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True,
                                       timeout=5)
            except sqlite3.Error:
                conn = None
        got = arrivals_count(conn) if conn is not None else None
        if got is not None:
            left = n - got
            if got >= n:
                filed_s = time.monotonic() - t0
                cpu_end = cpu_tree(pid) if pid else None
                break
        if now > timeout:
            break
        time.sleep(0.1 if left > E2E_NEAR else 0.002)
    if conn is not None:
        conn.close()
    if "rc" not in ended:
        try:
            p.wait(max(1.0, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            killed = True
            p.kill()
            p.wait()
        deadline = time.monotonic() + 10
        while "rc" not in ended and time.monotonic() < deadline:
            time.sleep(0.01)
    # 124 only for the timeout we enforced; a signal that ended CMD
    # otherwise shows as its negative number, as before
    rc = 124 if killed else ended.get("rc", 124)
    send_s = ended.get("send_s", time.monotonic() - t0)
    at_send = ended.get("at_send", -1)
    cpu_send = ended.get("cpu")
    last = db_counts(db) or (-1, -1, -1, -1)
    us_send = us_rest = -1
    if cpu0 is not None and cpu_send is not None:
        us_send = (cpu_send - cpu0) * 1e6 / n
        if cpu_end is not None:
            us_rest = (cpu_end - cpu_send) * 1e6 / n
    print("%.3f %d %.3f %d %d %d %d %.0f %.0f" % (send_s, rc, filed_s, at_send,
                                                 last[1], last[2], last[3],
                                                 us_send, us_rest))
    return 0


def children(conf, role="smtp"):
    """pids of intaked children started for conf with --role role (any
    role when role is None), as (role, pid) when role is None."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if (b"--role" not in argv or conf.encode() not in argv
                or not argv[0].endswith(b"intaked")):
            continue
        i = argv.index(b"--role")
        r = argv[i + 1].decode("utf-8", "replace") if i + 1 < len(argv) else "?"
        if role is None:
            pids.append((r, int(pid)))
        elif r == role:
            pids.append(int(pid))
    return sorted(pids)


def proc_mem(pid):
    """(VmRSS kB, Pss kB or None, VmHWM kB) of a process."""
    rss = hwm = 0
    pss = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss, hwm


def measure(label, conf, master):
    """Memory of the master and its children.  Returns (VmRSS MB, Pss MB or
    -1, number of processes) of the master + SMTP children (what the target
    is about), and the same for all intaked processes of this config."""
    procs = [("master", master)] + children(conf, None)
    sums = {"target": [0, 0, True, 0], "all": [0, 0, True, 0]}
    print("  %s:" % label)
    for role, pid in procs:
        try:
            rss, pss, hwm = proc_mem(pid)
        except OSError:
            continue
        for key in ("target", "all"):
            if key == "target" and role not in ("master", "smtp"):
                continue
            t = sums[key]
            t[0] += rss
            t[3] += 1
            if pss is None:
                t[2] = False
            else:
                t[1] += pss
        print("    %-6s pid %-7d VmRSS %8.1f MB  Pss %8s MB  VmHWM %8.1f MB"
              % (role, pid, rss / 1024.0,
                 "%.1f" % (pss / 1024.0) if pss is not None else "n/a",
                 hwm / 1024.0))
    out = {}
    for key, what in (("target", "master + smtp"), ("all", "all intaked")):
        t = sums[key]
        out[key] = (t[0] / 1024.0, t[1] / 1024.0 if t[2] else -1.0, t[3])
        if key == "all" and t[3] == sums["target"][3]:
            continue
        print("    total %-13s (%d processes)  VmRSS %6.1f MB  Pss %8s MB"
              % (what, t[3], out[key][0],
                 "%.1f" % out[key][1] if t[2] else "n/a"))
    return out


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            need = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def memtest(port, n, conf, master, result):
    raise_nofile(max(4096, n + 256))
    if not children(conf):
        print("  no SMTP child found for %s" % conf)
        return 1
    base = measure("before (no session)", conf, master)
    base_rss, base_pss, _ = base["target"]
    socks = []
    ok = refused = failed = 0
    t0 = time.monotonic()
    for _ in range(n):
        s = socket.socket()
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
            banner = s.recv(512)
        except OSError as e:
            failed += 1
            s.close()
            if failed <= 3:
                print("  connect/banner failed: %s" % e)
            continue
        if banner.startswith(b"220"):
            ok += 1
            socks.append(s)
        else:
            refused += 1
            if refused <= 3:
                print("  refused: %r" % banner[:120])
            s.close()
    print("  opened %d sessions in %.2f s: %d got 220, %d refused, %d failed"
          % (n, time.monotonic() - t0, ok, refused, failed))
    time.sleep(3)               # let the server settle
    now = measure("with %d idle sessions" % ok, conf, master)
    rss, pss, nprocs = now["target"]
    all_rss, all_pss, all_n = now["all"]
    alive = 0
    for s in socks:
        try:
            s.setblocking(False)
            data = s.recv(1, socket.MSG_PEEK)
            if data:            # the server said something: not idle
                alive += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    print("  still open after the measurement: %d of %d" % (alive, ok))
    if ok:
        print("  per session: %.1f kB VmRSS, %s kB Pss"
              % ((rss - base_rss) * 1024.0 / ok,
                 "%.1f" % ((pss - base_pss) * 1024.0 / ok)
                 if pss >= 0 and base_pss >= 0 else "n/a"))
    for s in socks:
        try:
            s.setblocking(True)
            s.settimeout(1)
            s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        s.close()
    with open(result, "w") as f:
        f.write("%.1f %.1f %d %d %d %.1f %d\n"
                % (rss, pss, ok, alive, nprocs, all_rss, all_n))
    return 0


def main(argv):
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "port":
        print(free_port())
        return 0
    if cmd == "wait-smtp":
        return wait_smtp(int(args[0]), float(args[1]))
    if cmd == "run":
        if len(args) < 3 or args[1] != "--":
            sys.stderr.write("usage: run TIMEOUT -- CMD...\n")
            return 2
        return run(float(args[0]), args[2:])
    if cmd == "drain":
        return drain(args[0], args[1], float(args[2]))
    if cmd == "count":
        return count(args[0])
    if cmd == "e2e":
        pid = None
        if len(args) > 4 and args[3] == "--pid":
            pid = int(args[4])
            del args[3:5]
        if len(args) < 5 or args[3] != "--":
            sys.stderr.write("usage: e2e DB N TIMEOUT [--pid PID] -- CMD...\n")
            return 2
        return e2e(args[0], int(args[1]), float(args[2]), args[4:], pid)
    if cmd == "procs":
        print(" ".join(str(p) for p in children(args[0])))
        return 0
    if cmd == "memtest":
        return memtest(int(args[0]), int(args[1]), args[2], int(args[3]),
                       args[4])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
