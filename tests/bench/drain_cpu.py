#!/usr/bin/env python3
"""drain_cpu.py - CPU per message, by thread, while intaked files the spool.

Runs the e2e cell of tests/bench/bench.sh (20,000 x 2 KB, 50 sessions;
another size with BENCH_E2E_SIZE in the environment) against BUILD and samples /proc/PID/task/TID/schedstat of intaked and
every process under it from the moment smtp-source ends until intaked
stops; prints the time on a CPU (ns, as schedstat counts it) per message
filed in that span, by thread name (parse workers and the SMTP child by
pid), and the total.

    python3 tests/bench/drain_cpu.py BUILD_DIR OUT_PREFIX

OUT_PREFIX.bench keeps the bench's own output.  Load-independent enough
to compare two binaries run one after the other (docs/performance.md).
"""
import glob
import os
import re
import subprocess
import sys
import time


def children_map():
    kids = {}
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            t = open(st).read()
        except OSError:
            continue
        f = t[t.rindex(")") + 2:].split()
        kids.setdefault(int(f[1]), []).append(int(st.split("/")[2]))
    return kids


def descendants(root):
    kids = children_map()
    out, todo = [], [root]
    while todo:
        x = todo.pop()
        out.append(x)
        todo.extend(kids.get(x, []))
    return out


def comm(pid):
    try:
        return open("/proc/%d/comm" % pid).read().strip()
    except OSError:
        return ""


def cmdline(pid):
    try:
        return open("/proc/%d/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def snap(pid):
    d = {}
    for pr in descendants(pid):
        for t in glob.glob("/proc/%d/task/*/stat" % pr):
            try:
                s = open(t).read()
                # time on a CPU in nanoseconds (stat's clock ticks are
                # 0.5 us a message here: too coarse to compare builds)
                ns = int(open(t[:-4] + "schedstat").read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            name = s[s.index("(") + 1:s.rindex(")")]
            d["%s/%d/%s" % (name, pr, t.split("/")[4])] = ns
    return d


def main():
    build, out = sys.argv[1], sys.argv[2]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    env = dict(os.environ, INTAKE_BUILD=build, BENCH_PARTS="e2e",
               BENCH_SIZES="2048", BENCH_SESSIONS="50", BENCH_SINK_RUNS="1")
    b = subprocess.Popen(["sh", "tests/bench/bench.sh"], cwd=root, env=env,
                         stdout=open(out + ".bench", "w"),
                         stderr=subprocess.STDOUT)
    pid = src = None
    deadline = time.time() + 120
    # intaked of the e2e cell and its smtp-source, both under this bench
    while (pid is None or src is None) and time.time() < deadline:
        for x in descendants(b.pid):
            if comm(x) == "intaked" and "intaked-e2e/conf" in cmdline(x) \
                    and "--role" not in cmdline(x):
                pid = x
            elif comm(x) == "smtp-source":
                src = x
        time.sleep(0.02)
    if pid is None or src is None:
        sys.exit("drain_cpu: did not find intaked and smtp-source")
    while os.path.exists("/proc/%d" % src) and comm(src) == "smtp-source":
        time.sleep(0.02)
    s0 = snap(pid)
    last = dict(s0)
    while b.poll() is None:
        for k, v in snap(pid).items():
            last[k] = max(v, last.get(k, 0))
        time.sleep(0.05)
    txt = open(out + ".bench").read()
    m = re.search(r"filed into cases by then: (\d+)", txt)
    if m is None:
        sys.exit("drain_cpu: the bench did not report; see %s.bench" % out)
    n = 20000 - int(m.group(1))
    agg = {}
    for k, v in last.items():
        name, pr, tid = k.split("/")
        if name == "intaked" and int(pr) != pid:
            name = "child " + pr
        elif name == "intaked":
            name = "main loop"
        agg[name] = agg.get(name, 0) + (v - s0.get(k, 0))
    tot = sum(agg.values())
    print("%s: filed after the send %d; %s; total %.1f us/msg" % (
        build, n, ", ".join("%s %.1f" % (k, v / 1e3 / n)
                            for k, v in sorted(agg.items(), key=lambda x: -x[1])
                            if v / 1e3 / n >= 0.05), tot / 1e3 / n))


if __name__ == "__main__":
    main()
