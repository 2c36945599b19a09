"""test_spool_feed.py - the spool feed (store/store_feed.c) in a real
intaked: rows just spooled are handed to the pipeline from memory instead
of being read back and unsealed.

- the cases and messages made from fed rows are the ones made with the
  feed off (INTAKE_SPOOL_FEED=0, every row read from the database), field
  for field apart from references and times;
- more than the feed's bound (64 MiB of raw bytes) spooled in one burst:
  the feed says it is full, and every message is still one case, filed in
  the order it was spooled;
- a restart with a backlog: the new process's feed is empty, every
  message is still one case.
"""

import collections
import json
import os
import re
import signal
import threading
import unittest

from harness import Intaked, message

RCPT = "enquiries@council.example"


def varied(i):
    """Message i of a mixed set: plain, UTF-8 encoded words, an
    attachment, a long body, another sender, an auto-reply."""
    mid = "<feed-%04d@feed.test>" % i
    kind = i % 5
    if kind == 0:
        return message(subject="bins %d" % i, msgid=mid,
                       body="My bins were not collected (%d).\r\n" % i)
    if kind == 1:
        return message(subject="=?UTF-8?Q?Caf=C3=A9_licence_%d?=" % i,
                       sender="eleri%d@example.org" % i, msgid=mid,
                       extra="MIME-Version: 1.0\r\nContent-Type: text/plain;"
                             " charset=utf-8\r\nContent-Transfer-Encoding:"
                             " 8bit\r\n",
                       body="Diolch yn fawr, caf\u00e9 %d\r\n" % i)
    if kind == 2:
        return message(subject="photo %d" % i, msgid=mid,
                       extra="MIME-Version: 1.0\r\nContent-Type: multipart/"
                             "mixed; boundary=b%d\r\n" % i,
                       body="--b%d\r\nContent-Type: text/plain\r\n\r\nSee the"
                            " photo.\r\n--b%d\r\nContent-Type: image/png\r\n"
                            "Content-Disposition: attachment; filename=\"p%d"
                            ".png\"\r\nContent-Transfer-Encoding: base64\r\n"
                            "\r\niVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
                            "AAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJg"
                            "gg==\r\n--b%d--\r\n" % (i, i, i, i))
    if kind == 3:
        return message(subject="complaint %d" % i, msgid=mid,
                       sender="long%d@example.net" % i,
                       body=("I wish to complain. " * 200) + "\r\n")
    return message(subject="Out of office %d" % i, msgid=mid,
                   extra="Auto-Submitted: auto-replied\r\n",
                   body="I am away.\r\n")


def send_all(d, msgs, threads):
    """Send every message (list of bytes) over @threads sessions; each
    must get 250."""
    errors = []

    def worker(t):
        s = d.smtp(timeout=60)
        try:
            for m in msgs[t::threads]:
                s.sendmail("sender@feed.test", [RCPT], m)
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            try:
                s.quit()
            except Exception:
                pass

    ws = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in ws:
        w.start()
    for w in ws:
        w.join(600)
    if errors:
        raise AssertionError("send failed: %r" % errors[:3])


# fields that differ between two runs of the same mail: references (the
# serial follows filing order across threads), times, row ids
VOLATILE = re.compile(r"^(ref|created|updated|due|received|at|id|time|"
                      r"received_at|created_at|updated_at|due_at|"
                      r"linked|links|seal|nonce)$")


def scrub(v):
    if isinstance(v, dict):
        return {k: scrub(x) for k, x in v.items() if not VOLATILE.match(k)}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v


class SpoolFeedTest(unittest.TestCase):
    def setUp(self):
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            try:
                if d.proc is not None and d.proc.poll() is None:
                    d.stop()
            finally:
                d.check_sanitizers()

    def daemon(self, env=None, parser=None):
        d = Intaked(env=env, parser=parser)
        self.daemons.append(d)
        d.start()
        return d

    def filed(self, d, n, timeout=300):
        return d.wait_cases(n, timeout=timeout)

    def shown(self, d, cases):
        out = {}
        for c in cases:
            r = d.ctl("cases", "show", c["ref"], "--json", check=True)
            out[c["message_id"]] = scrub(json.loads(r.stdout))
        return out

    def test_fed_cases_equal_database_cases(self):
        """The same 150 messages to a daemon with the feed and to one
        without: the same cases, messages, texts and attachments."""
        N = 150
        msgs = [varied(i) for i in range(N)]
        got = {}
        for feed in ("on", "off"):
            d = self.daemon(env={} if feed == "on"
                            else {"INTAKE_SPOOL_FEED": "0"})
            send_all(d, msgs, 5)
            cases = self.filed(d, N)
            self.assertEqual(len(cases), N)
            got[feed] = (scrub(sorted(cases, key=lambda c: c["message_id"])),
                         self.shown(d, cases))
            d.stop()
        self.assertEqual(sorted(got["on"][1]), sorted(got["off"][1]))
        self.assertEqual(got["on"][0], got["off"][0])
        for mid in sorted(got["on"][1]):
            self.assertEqual(got["on"][1][mid], got["off"][1][mid], mid)

    def test_beyond_bound_filed_once_in_order(self):
        """1,800 messages of 64 KB (about 118 MB, above the feed's 64 MiB)
        over 10 sessions at once while the parse workers are stopped
        (SIGSTOP), so that the pipeline, waiting on its first batch, takes
        nothing more: the feed fills and says so.  Then the workers go on
        and 600 more arrive while the spool drains, so that rows are fed
        again behind the ones that were not (a gap in the feed's ids).
        Every message is one case, once, filed in the order it was
        spooled (case serials follow the spool ids the 250s named)."""
        N1, N2, SIZE, THREADS = 1800, 600, 64 * 1024, 10
        # (the workers keep their seccomp filter: it allows the
        # restart_syscall through which the kernel resumes their poll
        # after SIGCONT; test_parse_seccomp StopAndContinue)
        d = self.daemon(parser={"timeout": 600})
        workers = d.children("parse")
        self.assertTrue(workers)
        body = ("x" * 76 + "\r\n") * (SIZE // 78)
        spool_id = {}
        errors = []

        def worker(t, first, n):
            s = d.smtp(timeout=60)
            try:
                s.ehlo()
                for i in range(first + t, first + n, THREADS):
                    mid = "bound-%04d@feed.test" % i
                    s.mail("sender@feed.test")
                    s.rcpt(RCPT)
                    code, text = s.data(message(subject="bound %04d" % i,
                                                msgid="<%s>" % mid,
                                                body=body))
                    m = re.search(rb"queued as ([0-9A-F]+)", text)
                    if code != 250 or not m:
                        raise AssertionError("%d %r" % (code, text))
                    spool_id[mid] = int(m.group(1), 16)
                s.quit()
            except Exception as e:  # reported below
                errors.append(e)

        def burst(first, n):
            ws = [threading.Thread(target=worker, args=(t, first, n))
                  for t in range(THREADS)]
            for w in ws:
                w.start()
            for w in ws:
                w.join(600)
            self.assertEqual(errors, [])

        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            burst(0, N1)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        self.assertIn("event=spool-feed-full", d.log())
        burst(N1, N2)
        self.assertEqual(len(spool_id), N1 + N2)
        cases = self.filed(d, N1 + N2, timeout=600)
        counts = collections.Counter(c["message_id"] for c in cases)
        self.assertEqual(sorted(counts), sorted(spool_id))
        self.assertEqual([m for m, n in counts.items() if n != 1], [])
        serial = {c["message_id"]: int(c["ref"].split("-")[2]) for c in cases}
        by_spool = sorted(spool_id, key=spool_id.get)
        filed = sorted(by_spool, key=serial.get)
        first = next(((a, b) for a, b in zip(filed, by_spool) if a != b),
                     None)
        self.assertIsNone(first, "filed out of spool order (filed, spooled)")

    def test_restart_with_backlog(self):
        """A burst spooled, the daemon stopped at once (SIGKILL) and
        started again: the backlog is read from the database, every
        message one case, once."""
        N = 400
        d = self.daemon()
        msgs = [varied(i) for i in range(N)]
        send_all(d, msgs, 8)
        d.kill()
        left = d.spool_count()
        d.start()
        cases = self.filed(d, N)
        counts = collections.Counter(c["message_id"] for c in cases)
        self.assertEqual(len(counts), N)
        self.assertEqual([m for m, n in counts.items() if n != 1], [])
        print("\n  restart: %d of %d still in the spool at the kill"
              % (left, N))


if __name__ == "__main__":
    unittest.main()
