"""test_parse_workers.py - parsing in worker processes, and quarantine.

Covers (issue 3, DESIGN.md "Processes"): messages are parsed by separate
parse workers running as an unprivileged user; a worker that crashes or
overruns its time on a message is replaced and the messages behind it go
on; after three failures on the same message it is quarantined (kept raw,
never dropped), visible with `intakectl quarantine list/show`, and
`quarantine retry` releases it.  The crash and hang are injected with the
worker's fault markers (INTAKE_FAULT_PARSE_CRASH / _HANG).
"""

import json
import os
import time
import unittest

from harness import Intaked, message


def wait_for(pred, timeout=30.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def quarantine(d):
    r = d.ctl("quarantine", "list", "--json", check=True)
    return json.loads(r.stdout)



def send_around(d, marker, subject, after):
    """One good message, then one carrying @marker (to foi@, Subject
    @subject), then @after good ones, in one SMTP session."""
    with d.smtp() as s:
        s.sendmail("a@example.org", ["enquiries@council.example"],
                   message(subject="first fine", msgid="<ok-1@example.org>"))
        s.sendmail("b@example.org", ["foi@council.example"],
                   message(subject=subject, body=marker + "\r\n",
                           msgid="<bad-1@example.org>"))
        for i in range(after):
            s.sendmail("c@example.org", ["enquiries@council.example"],
                       message(subject="after %d" % i,
                               msgid="<ok-after-%d@example.org>" % i))

class ParseWorkers(unittest.TestCase):
    def test_workers_unprivileged(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to drop privileges")
        def uids(d):
            out = []
            for pid in d.children("parse"):
                try:
                    with open("/proc/%d/status" % pid) as f:
                        out.append([l for l in f if l.startswith("Uid:")][0].split()[1])
                except OSError:
                    pass
            return out

        with Intaked(parser={"workers": 2}) as d:
            # A worker starts as root (to read its files) and drops at once;
            # wait for both to have dropped, then none may be root.
            got = wait_for(lambda: (lambda u: len(u) == 2 and "0" not in u and u)(uids(d)))
            self.assertTrue(got, "two unprivileged parse workers expected, have %r" % uids(d))

    def test_worker_user_of_its_own(self):
        """SECURITY-TESTS 109: the listener and the parse workers can run
        as distinct unprivileged users ([intake] user, [parser] user)."""
        if os.geteuid() != 0:
            self.skipTest("needs root to drop privileges")

        def uid_of(pid):
            try:
                with open("/proc/%d/status" % pid) as f:
                    return [l for l in f if l.startswith("Uid:")][0].split()[1]
            except (OSError, IndexError):
                return "0"      # gone or starting: not counted as dropped

        with Intaked(parser={"user": "daemon"}) as d:
            got = wait_for(lambda: [uid_of(p) for p in d.children("parse")]
                           if d.children("parse")
                           and all(uid_of(p) != "0" for p in d.children("parse"))
                           else None)
            self.assertTrue(got)
            self.assertEqual(set(got), {"1"})          # daemon
            smtp = [uid_of(p) for p in d.children("smtp")]
            self.assertTrue(smtp)
            self.assertNotIn("1", smtp)
            self.assertNotIn("0", smtp)
            with d.smtp() as s:
                s.sendmail("a@example.org", ["enquiries@council.example"],
                           message(subject="two users"))
            self.assertEqual(d.wait_cases(1)[0]["subject"], "two users")

    def test_crash_quarantine_and_retry(self):
        marker = "POISON-%s" % os.urandom(4).hex()
        with Intaked(env={"INTAKE_FAULT_PARSE_CRASH": marker}) as d:
            send_around(d, marker, "poison", 5)
            q = wait_for(lambda: quarantine(d), timeout=60)
            self.assertTrue(q, "the poisonous message was not quarantined:\n" + d.log()[-3000:])
            self.assertEqual(len(q), 1)
            self.assertEqual(q[0]["failures"], 3)
            self.assertEqual(q[0]["reason"], "crash")
            cases = d.wait_cases(6)
            subjects = sorted(c["subject"] for c in cases)
            self.assertEqual(len(cases), 6)
            self.assertNotIn("poison", subjects)
            self.assertEqual(d.spool_count(), 0)
            # kept raw: show gives the envelope and the bytes' digest
            r = d.ctl("quarantine", "show", str(q[0]["id"]), check=True)
            self.assertIn("foi@council.example", r.stdout)
            r = d.ctl("quarantine", "show", str(q[0]["id"]), "--raw", check=True)
            self.assertIn(marker, r.stdout)
            # the workers came back
            self.assertIn("event=child-restart child=parse", d.log())
            # each worker has messages queued behind the one it
            # parses (parse_pool.c): only the poisonous one is ever blamed,
            # three crashes, never the message sent to the worker before
            # or after it
            self.assertEqual(d.log().count("event=parse-failed"), 3,
                             d.log()[-3000:])
            # retry: released, fails three more times, quarantined again
            r = d.ctl("quarantine", "retry", str(q[0]["id"]), check=True)
            self.assertIn("released", r.stdout)
            q2 = wait_for(lambda: (lambda q: q and q[0]["failures"] == 3 and q)(quarantine(d)),
                          timeout=60)
            self.assertTrue(q2)
            r = d.ctl("quarantine", "retry", "999999")
            self.assertEqual(r.returncode, 66)

    def test_bad_result_fails_the_message_and_ends_the_worker(self):
        """A worker's answer that does not unpack (a pack cut short by a
        byte, INTAKE_FAULT_PARSE_GARBAGE) is refused where it is unpacked
        (the pipeline thread): that message is counted as failed
        ("bad-result"), quarantined after the third, and the worker that
        sent it is ended and replaced; the message it had in hand by then
        goes back to the queue uncounted, so nothing else is ever blamed
        and every other message is filed."""
        marker = "GARBAGE-%s" % os.urandom(4).hex()
        with Intaked(env={"INTAKE_FAULT_PARSE_GARBAGE": marker}) as d:
            send_around(d, marker, "garbage", 20)
            q = wait_for(lambda: quarantine(d), timeout=60)
            self.assertTrue(q, "the message was not quarantined:\n" + d.log()[-3000:])
            self.assertEqual(len(q), 1)
            self.assertEqual(q[0]["failures"], 3)
            self.assertEqual(q[0]["reason"], "bad-result")
            cases = d.wait_cases(21)
            self.assertEqual(len(cases), 21)
            self.assertNotIn("garbage", [c["subject"] for c in cases])
            self.assertEqual(d.spool_count(), 0)
            log = d.log()
            self.assertEqual(log.count("event=bad-parse-result spool="), 3, log[-3000:])
            self.assertIn("event=bad-parse-result child=parse", log)
            self.assertIn("event=child-restart child=parse", log)
            # no other message was counted as failed
            self.assertNotIn("event=parse-failed", log, log[-3000:])

    def test_sigterm_while_parsing(self):
        """SIGTERM while the spool drains, with each worker holding a
        message and a second one queued behind it: intaked stops within
        the grace period (a message queued behind a worker that exits is
        answered "shutdown", not put back on a queue nobody serves any
        more), and after a restart every message is one case."""
        n = 3000
        with Intaked(parser={"workers": 2}) as d:
            with d.smtp() as s:
                for i in range(n):
                    s.sendmail("a%d@example.org" % i,
                               ["enquiries@council.example"],
                               message(subject="drain %d" % i,
                                       msgid="<drain-%d@example.org>" % i))
            # stop while filing is under way, before the spool is empty
            started = wait_for(lambda: d.spool_count() < n - 20, timeout=60,
                               step=0.01)
            self.assertTrue(started, "filing never started:\n" + d.log()[-3000:])
            left = d.spool_count()
            t0 = time.time()
            self.assertEqual(d.stop(timeout=30), 0)
            self.assertLess(time.time() - t0, 30)
            d.start()
            cases = d.wait_cases(n, timeout=120)
            self.assertEqual(len(cases), n)
            self.assertEqual(len({c["subject"] for c in cases}), n)
            self.assertEqual(d.spool_count(), 0)
            print("\n  sigterm while parsing: %d of %d still in the spool at"
                  " the stop" % (left, n))

    def test_hang_is_timed_out(self):
        marker = "HANG-%s" % os.urandom(4).hex()
        with Intaked(parser={"timeout": 1},
                     env={"INTAKE_FAULT_PARSE_HANG": marker}) as d:
            with d.smtp() as s:
                s.sendmail("b@example.org", ["foi@council.example"],
                           message(subject="hang", body=marker + "\r\n"))
                s.sendmail("c@example.org", ["enquiries@council.example"],
                           message(subject="behind the hang"))
            q = wait_for(lambda: quarantine(d), timeout=60)
            self.assertTrue(q, d.log()[-3000:])
            self.assertEqual(q[0]["reason"], "timeout")
            cases = d.wait_cases(1)
            self.assertEqual([c["subject"] for c in cases], ["behind the hang"])

    def test_worker_killed_is_replaced(self):
        with Intaked() as d:
            pids = wait_for(lambda: d.children("parse"))
            os.kill(pids[0], 9)
            self.assertTrue(wait_for(lambda: len(d.children("parse")) == 2
                                     and pids[0] not in d.children("parse")))
            with d.smtp() as s:
                s.sendmail("a@example.org", ["enquiries@council.example"],
                           message(subject="after the kill"))
            self.assertEqual(d.wait_cases(1)[0]["subject"], "after the kill")


if __name__ == "__main__":
    unittest.main()
