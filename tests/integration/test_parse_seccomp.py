"""test_parse_seccomp.py - the parse workers' system-call filter.

Covers (issue 3: "no keys, no network" for the parse workers;
docs/design-notes.md "Parse workers under seccomp"): once a worker is
ready, code run by a parser bug cannot open an Internet socket, connect,
execute a program or open a file for writing -- each attempt kills the
worker with SIGSYS, the master replaces it and, after three failures on the
message, quarantines it (kept raw).  The attempts are injected with the
worker's INTAKE_FAULT_PARSE_ESCAPE marker; the same marker with
INTAKE_PARSE_SECCOMP=off shows the calls succeed without the filter, so the
test would notice a filter that is not there.  Then every file of the
real-mail corpus (../shared/corpus/mail, skipped with a message when
absent) and of tests/data/mail goes through the workers over SMTP: no
worker may die, nothing may be quarantined, the spool must drain.
"""

import os
import re
import smtplib
import sqlite3
import time
import unittest

from harness import ROOT, SHARED, Intaked, message

SIGSYS = 31


def wait_for(pred, timeout=30.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def quarantine(d):
    import json
    r = d.ctl("quarantine", "list", "--json", check=True)
    return json.loads(r.stdout)


def parse_deaths(log):
    """(pid, signal) of every parse worker that died by a signal."""
    return [(int(p), int(s)) for p, s in
            re.findall(r"event=child-exit child=parse/\d+ pid=(\d+) signal=(\d+)", log)]


class Escapes(unittest.TestCase):
    def escape(self, call, seccomp=True):
        marker = "ESCAPE%s" % os.urandom(4).hex()
        env = {"INTAKE_FAULT_PARSE_ESCAPE": marker}
        if not seccomp:
            env["INTAKE_PARSE_SECCOMP"] = "off"
        trace = "/tmp/intake-escape-%s" % marker
        try:
            with Intaked(env=env) as d:
                with d.smtp() as s:
                    s.sendmail("b@example.org", ["foi@council.example"],
                               message(subject="escape " + call,
                                       body="%s %s\r\n" % (marker, call)))
                    s.sendmail("c@example.org", ["enquiries@council.example"],
                               message(subject="behind the escape"))
                if seccomp:
                    q = wait_for(lambda: quarantine(d), timeout=60)
                    self.assertTrue(q, "not quarantined:\n" + d.log()[-3000:])
                    self.assertEqual(q[0]["reason"], "crash")
                    self.assertEqual(q[0]["failures"], 3)
                    cases = d.wait_cases(1)
                    self.assertEqual([c["subject"] for c in cases],
                                     ["behind the escape"])
                    log = d.log()
                    deaths = parse_deaths(log)
                    self.assertEqual([s for _, s in deaths], [SIGSYS] * 3, log[-3000:])
                    self.assertNotIn("event=fault-escape", log)
                    self.assertFalse(os.path.exists(trace))
                else:
                    cases = d.wait_cases(2)
                    self.assertEqual(sorted(c["subject"] for c in cases),
                                     sorted(["escape " + call, "behind the escape"]))
                    log = d.log()
                    self.assertIn("event=seccomp-off", log)
                    self.assertIn("event=fault-escape call=%s" % call, log)
                    self.assertEqual(parse_deaths(log), [])
                    self.assertEqual(quarantine(d), [])
                return d.log()
        finally:
            if os.path.exists(trace):
                os.unlink(trace)

    def test_socket_killed(self):
        self.escape("socket")

    def test_connect_killed(self):
        self.escape("connect")

    def test_exec_killed(self):
        self.escape("exec")

    def test_write_open_killed(self):
        self.escape("write")

    def test_without_filter_the_calls_work(self):
        """The control: the hook really makes the calls (SIGSYS, above,
        can only come from the filter)."""
        log = self.escape("socket", seccomp=False)
        self.assertIn("event=fault-escape call=socket result=ok", log)
        log = self.escape("write", seccomp=False)
        self.assertIn("event=fault-escape call=write result=ok", log)


def corpus_files():
    dirs = [os.path.join(SHARED, "corpus", "mail"),
            os.path.join(ROOT, "tests", "data", "mail")]
    out = []
    for top in dirs:
        for base, _, names in os.walk(top):
            for n in sorted(names):
                out.append(os.path.join(base, n))
    return sorted(out)


class NoFetch(unittest.TestCase):
    def test_hostile_urls_cause_no_connection(self):
        """SECURITY-TESTS 71: an HTML message full of things a renderer
        would fetch (img, link, CSS @import and url(), iframe, a meta
        refresh, an SVG image, a data-less object) pointing at a listener
        on this machine is parsed, filed and its case shown without one
        connection to the listener."""
        import socket
        import threading
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(16)
        lst.settimeout(0.2)
        port = lst.getsockname()[1]
        hits = []
        stop = threading.Event()

        def accept():
            while not stop.is_set():
                try:
                    c, _ = lst.accept()
                    hits.append(1)
                    c.close()
                except OSError:
                    pass

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        u = "http://127.0.0.1:%d/" % port
        html = ("<html><head><link rel=stylesheet href='%scss'>"
                "<style>@import url(%simport); body{background:url(%sbg)}"
                "</style><meta http-equiv=refresh content='0;url=%sr'>"
                "</head><body><img src='%simg'><iframe src='%sf'></iframe>"
                "<object data='%so'></object><svg><image href='%ssvg'/>"
                "</svg><p>Please fix the pothole.</p></body></html>"
                % ((u,) * 8))
        d = Intaked()
        try:
            with d:
                with d.smtp() as s:
                    s.sendmail("jo@example.org", ["enquiries@council.example"],
                               message("Pothole", "jo@example.org", html,
                                       extra="MIME-Version: 1.0\r\n"
                                             "Content-Type: text/html;"
                                             " charset=utf-8\r\n"))
                ref = d.wait_cases(1)[0]["ref"]
                d.ctl("cases", "show", ref, "--json", check=True)
                time.sleep(1)
        finally:
            stop.set()
            t.join(2)
            lst.close()
        self.assertEqual(hits, [])


class StopAndContinue(unittest.TestCase):
    def test_stopped_and_continued_worker_lives(self):
        """A worker stopped (SIGSTOP) while it waits in poll and then
        continued: the kernel resumes the poll through restart_syscall,
        which the filter must allow; the worker lives on and parses."""
        import signal
        with Intaked(parser={"workers": 2}) as d:
            with d.smtp() as s:
                s.sendmail("a@example.org", ["enquiries@council.example"],
                           message(subject="before the stop"))
            d.wait_cases(1)
            workers = d.children("parse")
            self.assertTrue(workers)
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)
            time.sleep(0.5)
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
            time.sleep(0.5)
            with d.smtp() as s:
                for i in range(4):
                    s.sendmail("b@example.org", ["enquiries@council.example"],
                               message(subject="after the stop %d" % i))
            cases = d.wait_cases(5)
            self.assertEqual(len(cases), 5)
            log = d.log()
            self.assertEqual(parse_deaths(log), [], log[-3000:])
            self.assertNotIn("event=seccomp-off", log)
            self.assertEqual(sorted(d.children("parse")), sorted(workers))
            self.assertEqual(quarantine(d), [])


class CorpusThroughWorkers(unittest.TestCase):
    def test_corpus_parses_under_the_filter(self):
        if not os.path.isdir(os.path.join(SHARED, "corpus", "mail")):
            self.skipTest("../shared/corpus/mail absent: the corpus run needs it")
        files = corpus_files()
        accepted = refused = 0
        with Intaked(parser={"workers": 2, "timeout": 60},
                     smtp={"max_message_size": 64 * 1024 * 1024,
                           "max_errors": 1000}) as d:
            s = d.smtp(timeout=120)
            for path in files:
                with open(path, "rb") as f:
                    # SMTP carries CRLF lines only: bare CR and LF refused
                    data = re.sub(rb"\r\n|\r|\n", b"\r\n", f.read())
                try:
                    s.sendmail("corpus@example.org", ["enquiries@council.example"], data)
                    accepted += 1
                except smtplib.SMTPResponseException:
                    refused += 1         # SMTP limits: not the workers' business
                    try:
                        s.rset()
                    except smtplib.SMTPException:
                        s.close()
                        s = d.smtp(timeout=120)
                except smtplib.SMTPServerDisconnected:
                    refused += 1
                    s = d.smtp(timeout=120)
            try:
                s.quit()
            except smtplib.SMTPException:
                pass
            drained = wait_for(lambda: d.spool_count() == 0, timeout=600, step=1)
            self.assertTrue(drained, "spool did not drain:\n" + d.log()[-3000:])
            log = d.log()
            self.assertEqual(parse_deaths(log), [], log[-3000:])
            self.assertNotIn("event=seccomp-off", log)
            self.assertEqual(quarantine(d), [])
            con = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))
            try:
                stored = con.execute("SELECT count(*) FROM messages").fetchone()[0]
                # every accepted message arrives (identical bytes are
                # stored once: content_index)
                arrived = con.execute("SELECT count(*) FROM arrivals").fetchone()[0]
            finally:
                con.close()
            print("\ncorpus through seccomp'd workers: %d files, %d accepted, "
                  "%d refused by SMTP, %d arrivals, %d distinct messages stored"
                  % (len(files), accepted, refused, arrived, stored))
            self.assertGreater(accepted, len(files) * 9 // 10)
            self.assertEqual(arrived, accepted)


if __name__ == "__main__":
    unittest.main()
