"""test_webhooks.py - CRM webhooks (issue 8), against a real HTTP receiver.

The receiver (http.server on loopback) checks every POST's signature the
way docs/webhooks.md tells a CRM to: HMAC-SHA256 of the secret over
"<X-Intake-Timestamp>.<body>", compared in constant time.
Covers: case created (metadata only by default: no address, name, subject
or text anywhere in the body), updated by a status change, a re-route
(both queues' webhooks hear it) and a reply, closed; webhook_content =
full carries the message; the receiver down, then up: each event
delivered exactly once, after back-off; a 500 is retried; the delivery log
(intakectl webhooks); a secret file readable by others refused at start;
plain http to another host refused by the configuration; nothing for a
restricted person; an erasure propagated with the reference only.
"""

import hashlib
import hmac
import http.server
import json
import os
import sqlite3
import ssl
import tempfile
import threading
import time
import unittest

from harness import ROOT, Intaked, message, free_port, wait_for
from tls_util import have_openssl, make_cert

SECRET = b"s3cret-for-the-crm-0123456789abcdef"


class Receiver:
    """A CRM endpoint: records POSTs, verifies each signature; with
    @tls (cert, key) it speaks https."""

    def __init__(self, port=0, secret=SECRET, status=200, tls=None):
        self.secret = secret
        self.status = status
        self.posts = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                ts = self.headers.get("X-Intake-Timestamp", "")
                sig = self.headers.get("X-Intake-Signature", "")
                want = "sha256=" + hmac.new(
                    outer.secret, ts.encode() + b"." + body,
                    hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(want, sig)
                fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
                with outer.lock:
                    outer.posts.append({
                        "headers": dict(self.headers), "body": body,
                        "json": json.loads(body), "verified": ok and fresh,
                        "path": self.path})
                code = outer.status if ok else 401
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                      Handler)
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket,
                                                 server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def events(self):
        with self.lock:
            return list(self.posts)

    def wait(self, n, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.events()) >= n:
                return self.events()
            time.sleep(0.1)
        raise AssertionError("expected %d POSTs, got %d: %r"
                             % (n, len(self.events()),
                                [p["json"] for p in self.events()]))


def with_webhook(d, queue, port, secret=SECRET, mode=0o600, **extra):
    path = os.path.join(d.dir, "conf", "%s.secret" % queue)
    with open(path, "wb") as f:
        f.write(secret + b"\n")
    os.chmod(path, mode)
    sect = "queue %s" % queue
    d.configure(sect, "webhook_url", "http://127.0.0.1:%d/hook/%s"
                % (port, queue))
    d.configure(sect, "webhook_secret_file", path)
    for k, v in extra.items():
        d.configure(sect, k, v)
    return d


def send(d, data, sender):
    with d.smtp() as s:
        s.sendmail(sender, ["enquiries@council.example"], data)


def deliveries(d):
    db = sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))
    try:
        return db.execute("SELECT event, state, attempts FROM webhook_events"
                          " ORDER BY id").fetchall()
    finally:
        db.close()


class Webhooks(unittest.TestCase):
    def test_lifecycle_signed_metadata_only(self):
        with Receiver() as rx, Receiver() as rx2:
            d = with_webhook(Intaked(), "general", rx.port)
            with_webhook(d, "housing", rx2.port)
            with d:
                send(d, message("Damp in my flat", "Ann Other <ann@example.org>",
                                "Flat 4, 10 High Street: damp again.\r\n"),
                     "ann@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                created = rx.wait(1)[0]
                d.ctl("cases", "status", ref, "assigned", check=True)
                rx.wait(2)
                d.ctl("cases", "route", ref, "--to-queue", "housing",
                      check=True)
                moved = rx.wait(3)[2]
                moved2 = rx2.wait(1)[0]
                d.ctl("cases", "status", ref, "resolved", check=True)
                d.ctl("cases", "status", ref, "closed", check=True)
                closed = rx2.wait(3)[2]
                log = d.ctl("webhooks", check=True).stdout
                logj = json.loads(d.ctl("webhooks", "--json",
                                        check=True).stdout)
            self.assertTrue(all(p["verified"] for p in rx.events()
                                + rx2.events()))
            j = created["json"]
            self.assertEqual(j["event"], "case.created")
            self.assertEqual(created["headers"]["X-Intake-Event"],
                             "case.created")
            self.assertEqual(created["headers"]["X-Intake-Delivery"],
                             str(j["id"]))
            self.assertEqual(j["case"]["ref"], ref)
            self.assertEqual(j["case"]["queue"], "general")
            self.assertEqual(j["case"]["status"], "new")
            self.assertNotIn("message", j)
            for p in rx.events() + rx2.events():
                for word in (b"ann", b"Ann", b"High Street", b"Damp", b"damp"):
                    self.assertNotIn(word, p["body"])
            self.assertEqual([p["json"]["change"] for p in rx.events()[1:]],
                             ["status", "routing"])
            self.assertEqual(moved["json"]["case"]["queue"], "housing")
            self.assertEqual(moved["json"]["case"]["previous_queue"],
                             "general")
            self.assertEqual(moved2["json"]["id"] != moved["json"]["id"],
                             True)
            self.assertEqual(closed["json"]["event"], "case.closed")
            self.assertEqual(closed["json"]["case"]["status"], "closed")
            self.assertEqual(len(rx.events()), 3)   # not told after it left
            self.assertEqual(len(logj), 6)
            self.assertEqual(logj[0]["event"], "case.closed")
            self.assertEqual(logj[0]["webhook"], "housing")
            self.assertEqual({e["state"] for e in logj}, {"delivered"})
            self.assertTrue(all(e["attempts"] == 1 for e in logj))
            self.assertIn("case.closed", log)
            self.assertIn("delivered", log)
            self.assertNotIn("queued", log)

    def test_full_content_and_reply(self):
        with Receiver() as rx:
            d = with_webhook(Intaked(), "general", rx.port,
                             webhook_content="full")
            with d:
                send(d, message("Pothole", "Bo Lee <bo@example.org>",
                                "A pothole outside number 12.\r\n"),
                     "bo@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                j = rx.wait(1)[0]["json"]
                # the same person writes again: an update with the message
                send(d, message("Re: Pothole [%s]" % ref,
                                "Bo Lee <bo@example.org>",
                                "It is getting bigger.\r\n"),
                     "bo@example.org")
                j2 = rx.wait(2)[1]["json"]
            self.assertEqual(j["message"]["from"], "bo@example.org")
            self.assertEqual(j["message"]["name"], "Bo Lee")
            self.assertEqual(j["message"]["subject"], "Pothole")
            self.assertIn("pothole outside number 12", j["message"]["text"])
            self.assertEqual(j2["event"], "case.updated")
            self.assertEqual(j2["change"], "message")
            self.assertIn("getting bigger", j2["message"]["text"])

    def test_receiver_down_then_up_delivered_once(self):
        port = free_port()
        d = with_webhook(Intaked(), "general", port)
        with d:
            send(d, message("Streetlight", "kim@example.org", "Out\r\n"),
                 "kim@example.org")
            d.wait_cases(1)
            wait_for(lambda: "event=webhook-deferred" in d.log(), 60,
                     "the first attempt to be deferred", d.log)
            self.assertEqual(deliveries(d)[0][:2], ("case.created", "queued"))
            with Receiver(port=port) as rx:
                rx.wait(1, timeout=60)
                wait_for(lambda: deliveries(d)[0][1] == "delivered", 60,
                         "the event marked delivered", d.log)
                d.settle()
                self.assertEqual(len(rx.events()), 1)
                self.assertTrue(rx.events()[0]["verified"])
            self.assertEqual([r[:2] for r in deliveries(d)],
                             [("case.created", "delivered")])
            self.assertGreaterEqual(deliveries(d)[0][2], 2)

    def test_error_status_retried(self):
        with Receiver(status=500) as rx:
            d = with_webhook(Intaked(), "general", rx.port)
            with d:
                send(d, message("Graffiti", "lu@example.org", "Paint\r\n"),
                     "lu@example.org")
                rx.wait(1)
                self.assertEqual(deliveries(d)[0][1], "queued")
                rx.status = 204
                rx.wait(2, timeout=60)
                wait_for(lambda: deliveries(d)[0][1] == "delivered", 60,
                         "the event marked delivered", d.log)
                d.settle()
                self.assertEqual(len(rx.events()), 2)
                self.assertEqual(rx.events()[0]["json"]["id"],
                                 rx.events()[1]["json"]["id"])
                self.assertEqual(deliveries(d)[0][1], "delivered")

    @unittest.skipUnless(have_openssl(), "openssl not installed")
    def test_https_verified(self):
        certdir = tempfile.mkdtemp(prefix="intake-crm-tls-")
        cert, key = make_cert(certdir)
        with Receiver(tls=(cert, key)) as rx:
            # the CRM's certificate is not in the system store: refused,
            # nothing delivered, the reason in the log
            d = with_webhook(Intaked(), "general", rx.port)
            d.configure("queue general", "webhook_url",
                        "https://localhost:%d/hook" % rx.port)
            with d:
                send(d, message("Lamp", "al@example.org", "Out\r\n"),
                     "al@example.org")
                d.wait_cases(1)
                wait_for(lambda: "event=webhook-deferred" in d.log(), 60,
                         "the refused attempt to be deferred", d.log)
                self.assertEqual(rx.events(), [])
                self.assertEqual(deliveries(d)[0][1], "queued")
            # with its CA configured: delivered, over TLS
            d = with_webhook(Intaked(), "general", rx.port)
            d.configure("queue general", "webhook_url",
                        "https://localhost:%d/hook" % rx.port)
            d.configure("webhooks", "ca_file", cert)
            with d:
                send(d, message("Lamp", "al@example.org", "Out\r\n"),
                     "al@example.org")
                d.wait_cases(1)
                p = rx.wait(1)[0]
            self.assertTrue(p["verified"])
            self.assertEqual(deliveries(d)[0][1], "delivered")

    def test_secret_file_mode_and_plain_http_refused(self):
        d = with_webhook(Intaked(), "general", 9, mode=0o644)
        d.start(wait=False)
        rc = d.proc.wait(timeout=30)
        d._close_log()
        self.assertEqual(rc, 78)      # EX_CONFIG
        self.assertIn("0600", d.log())
        d = with_webhook(Intaked(), "general", 9)
        d.configure("queue general", "webhook_url", "http://crm.example/x")
        r = d.ctl("outbox")
        self.assertEqual(r.returncode, 78)
        self.assertIn("https", r.stderr)

    def test_restricted_subject_not_shared(self):
        with Receiver() as rx:
            d = with_webhook(Intaked(), "information-governance", rx.port)
            with_webhook(d, "general", rx.port)
            with d:
                send(d, message("First", "rae@example.org", "One\r\n"),
                     "rae@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                rx.wait(1)
                d.ctl("subject", "restrict", "rae@example.org", check=True)
                send(d, message("Second", "rae@example.org", "Two\r\n"),
                     "rae@example.org")
                d.wait_cases(2)
                d.settle()
                self.assertEqual(len(rx.events()), 1)
                # lifted: the case back in its queue is told to both
                # webhooks (the one it left, the one it is back in)
                d.ctl("subject", "unrestrict", "rae@example.org", check=True)
                back = rx.wait(3)[1:]
                d.settle()
                self.assertEqual(len(rx.events()), 3)
            self.assertEqual(sorted(p["path"] for p in back),
                             ["/hook/general",
                              "/hook/information-governance"])
            for p in back:
                self.assertEqual(p["json"]["change"], "routing")
                self.assertEqual(p["json"]["case"]["ref"], ref)
                self.assertEqual(p["json"]["case"]["queue"], "general")
                self.assertEqual(p["json"]["case"]["previous_queue"],
                                 "information-governance")

    def test_erasure_propagated(self):
        rights = os.path.join(ROOT, "store", "store_rights.c")
        if (not os.path.exists(rights)
                or "STORE-WEBHOOK-ERASURE-HOOK" in open(rights).read()):
            # issue 9's erasure has a marked hook point for this call;
            # until it is wired this test cannot pass (tests/unit/
            # test_webhook.c covers what the store queues meanwhile)
            self.skipTest("store_rights.c does not call"
                          " store_webhook_enqueue_erased yet")
        with Receiver() as rx, Receiver() as rx2:
            d = with_webhook(Intaked(), "general", rx.port)
            with_webhook(d, "housing", rx2.port)
            with d:
                send(d, message("Noise", "Cy Dee <cy@example.org>",
                                "Loud music at night.\r\n"),
                     "cy@example.org")
                ref = d.wait_cases(1)[0]["ref"]
                rx.wait(1)
                d.ctl("cases", "route", ref, "--to-queue", "housing",
                      check=True)
                rx2.wait(1)
                r = d.ctl("subject", "erase", "cy@example.org", "--reason",
                          "request")
                if r.returncode == 64:
                    self.skipTest("intakectl subject erase not built yet")
                self.assertEqual(r.returncode, 0, r.stderr)
                erased = rx.wait(3)[2]["json"]
                erased2 = rx2.wait(2)[1]["json"]
            for e in (erased, erased2):
                self.assertEqual(e["event"], "case.erased")
                self.assertEqual(e["case"], {"ref": ref, "erased": True})
                self.assertEqual(sorted(e), ["case", "event", "id",
                                             "occurred_at"])


if __name__ == "__main__":
    unittest.main()
