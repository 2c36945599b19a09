"""cdp.py - drive a headless Chromium over the Chrome DevTools Protocol.

Standard library only: the WebSocket client (RFC 6455: the HTTP Upgrade
with Sec-WebSocket-Key, masked client frames, text, continuation, ping and
close frames) is here too.  Use as a context manager:

    with cdp.Browser() as b:
        b.navigate("http://127.0.0.1:8080/forms/contact")
        b.type_text("#name", "Jo Bloggs")
        b.click_and_wait("button[type=submit]")
        b.text("#reference")

Browser() starts Debian's chromium headless with a fresh profile in a
temporary directory (--remote-debugging-port=0; the port is read from
DevToolsActivePort there), opens a page target with PUT /json/new and
connects to its webSocketDebuggerUrl.  On exit chromium's whole process
group is killed and the directory removed.  Everything the page reports
(exceptions, console and log entries) is kept in b.errors / b.log (see
b.page_errors()); the status of each document response in b.statuses.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request


def find_chromium():
    """The chromium binary, or None ($CHROMIUM overrides the search)."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(Exception):
    pass


# -- WebSocket (RFC 6455), client side ------------------------------------

class WebSocket:
    OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url, timeout=10.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ws":
            raise CDPError("only ws:// URLs: " + url)
        self.sock = socket.create_connection((u.hostname, u.port or 80),
                                             timeout)
        self.buf = b""
        self.closed = False
        key = base64.b64encode(os.urandom(16))
        path = u.path + ("?" + u.query if u.query else "")
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n"
                           % (path or "/", u.netloc, key.decode())).encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1:2] != ["101"]:
            raise CDPError("WebSocket upgrade refused: " + lines[0])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (l.split(":", 1) for l in lines[1:] if ":" in l)}
        want = base64.b64encode(hashlib.sha1(key + self.GUID).digest())
        if headers.get("sec-websocket-accept", "").encode() != want:
            raise CDPError("bad Sec-WebSocket-Accept")

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise CDPError("WebSocket connection closed by the browser")
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(self.OP_TEXT, text.encode("utf-8"))

    def _frame(self):
        b0, b1 = self._take(2)
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        mask = self._take(4) if b1 & 0x80 else None   # servers never mask
        payload = self._take(n)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    def recv(self, timeout=None):
        """The next whole text message; a socket.timeout if none in time."""
        self.sock.settimeout(timeout)
        parts, first = [], None
        while True:
            fin, opcode, payload = self._frame()
            if opcode == self.OP_PING:
                self._send_frame(self.OP_PONG, payload)
                continue
            if opcode == self.OP_PONG:
                continue
            if opcode == self.OP_CLOSE:
                if not self.closed:
                    self.closed = True
                    self._send_frame(self.OP_CLOSE, payload[:2])
                raise CDPError("WebSocket closed by the browser")
            if opcode != self.OP_CONT:
                first, parts = opcode, []
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                return data.decode("utf-8") if first == self.OP_TEXT else data

    def close(self):
        try:
            if not self.closed:
                self.closed = True
                self._send_frame(self.OP_CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


# -- the browser ---------------------------------------------------------

class Browser:
    def __init__(self, binary=None, timeout=15.0, width=1024, height=900):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise CDPError("chromium is not installed")
        self.timeout = timeout
        self.size = (width, height)
        self.dir = None
        self.proc = None
        self.ws = None
        self.next_id = 0
        self.events = []        # not yet consumed by wait_event
        self.errors = []        # exceptions, console.error, log errors
        self.log = []           # every console / log entry, as text
        self.statuses = []      # (url, HTTP status) of document responses
        self.network_errors = []    # (url, text) of failed loads
        self.requests = []      # (method, url, headers) of document requests

    # lifecycle
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="intake-chromium-")
        profile = os.path.join(self.dir, "profile")
        self.stderr = open(os.path.join(self.dir, "chromium.log"), "wb")
        argv = [self.binary, "--headless=new", "--disable-gpu",
                "--no-sandbox", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--password-store=basic", "--use-mock-keychain",
                "--window-size=%d,%d" % self.size,
                "--user-data-dir=" + profile,
                "--remote-debugging-port=0", "about:blank"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=self.stderr,
                                     start_new_session=True)
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + self.timeout
        port = None
        while port is None:
            if self.proc.poll() is not None:
                raise CDPError("chromium exited with %s:\n%s"
                               % (self.proc.returncode, self.chromium_log()))
            if time.time() > deadline:
                raise CDPError("chromium wrote no DevToolsActivePort:\n"
                               + self.chromium_log())
            try:
                with open(port_file) as f:
                    first = f.readline().strip()
                if first.isdigit():
                    port = int(first)
            except FileNotFoundError:
                pass
            if port is None:
                time.sleep(0.05)
        self.http = "http://127.0.0.1:%d" % port
        req = urllib.request.Request(self.http + "/json/new?about:blank",
                                     method="PUT")
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            target = json.loads(r.read())
        self.target_id = target["id"]
        self.ws = WebSocket(target["webSocketDebuggerUrl"], self.timeout)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(domain + ".enable")

    def stop(self):
        if self.ws is not None:
            self.ws.close()
            self.ws = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            self._signal(signal.SIGKILL)    # renderers and zygotes too
            if self.proc.poll() is None:
                self.proc.wait()
            self.proc = None
        if getattr(self, "stderr", None):
            self.stderr.close()
            self.stderr = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _signal(self, sig):
        # chromium was started in a session of its own: its group is ours
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def chromium_log(self):
        try:
            with open(os.path.join(self.dir, "chromium.log"), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [l for l in text.splitlines() if "dbus" not in l]
        return "\n".join(lines[-40:])

    # protocol
    def _note(self, msg):
        """Keep what the page reports; queue the event."""
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description") or d.get("text")
            self.errors.append("exception: %s" % text)
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in p.get("args", []))
            self.log.append("console.%s: %s" % (p.get("type"), text))
            if p.get("type") in ("error", "assert"):
                self.errors.append("console.%s: %s" % (p.get("type"), text))
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            text = "log %s/%s: %s %s" % (e.get("source"), e.get("level"),
                                         e.get("text"), e.get("url", ""))
            self.log.append(text)
            # a "network" error for a page itself is its HTTP status (a 422
            # is one), kept in statuses; see page_errors()
            if e.get("level") == "error":
                if e.get("source") == "network":
                    self.network_errors.append((e.get("url"), text))
                else:
                    self.errors.append(text)
        elif (method == "Network.requestWillBeSent"
              and p.get("type") == "Document"):
            r = p.get("request", {})
            self.requests.append((r.get("method"), r.get("url"),
                                  r.get("headers", {})))
        elif (method == "Network.responseReceived"
              and p.get("type") == "Document"):
            r = p.get("response", {})
            self.statuses.append((r.get("url"), r.get("status")))
        self.events.append(msg)

    def page_errors(self):
        """Everything that went wrong on the pages: errors, plus failed
        loads other than of the pages themselves (images, styles...) and
        the browser's own /favicon.ico."""
        pages = {u for u, _ in self.statuses}
        return self.errors + [
            t for u, t in self.network_errors
            if u not in pages
            and urllib.parse.urlsplit(u or "").path != "/favicon.ico"]

    def clear(self):
        """Forget the errors and log entries so far."""
        del self.errors[:], self.log[:], self.network_errors[:]

    def send(self, method, params=None, timeout=None):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method,
                                 "params": params or {}}))
        deadline = time.time() + (timeout or self.timeout)
        while True:
            msg = self._recv(deadline, method)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise CDPError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})

    def _recv(self, deadline, what):
        left = deadline - time.time()
        if left <= 0:
            raise CDPError("timed out waiting for " + what)
        try:
            msg = json.loads(self.ws.recv(left))
        except socket.timeout:
            raise CDPError("timed out waiting for " + what)
        if "method" in msg:
            self._note(msg)
        return msg

    def wait_event(self, method, timeout=None):
        """The first queued or coming event METHOD (earlier ones dropped)."""
        deadline = time.time() + (timeout or self.timeout)
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == method:
                    del self.events[:i + 1]
                    return ev.get("params", {})
            self._recv(deadline, method)

    # pages
    def navigate(self, url):
        """Open URL and wait for its load event; the HTTP status."""
        self.events.clear()
        n = len(self.statuses)
        r = self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise CDPError("navigate %s: %s" % (url, r["errorText"]))
        self.wait_event("Page.loadEventFired")
        return self.statuses[-1][1] if len(self.statuses) > n else None

    def evaluate(self, js):
        """The value of the JavaScript expression JS (JSON-able)."""
        r = self.send("Runtime.evaluate", {"expression": js,
                                           "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise CDPError("evaluate %r: %s" % (js, text))
        return r.get("result", {}).get("value")

    def _q(self, selector):
        return "document.querySelector(%s)" % json.dumps(selector)

    def fill(self, selector, value):
        """Set an input's, textarea's or select's value as a script would."""
        ok = self.evaluate(
            "(() => { const e = %s; if (!e) return false; e.value = %s;"
            " e.dispatchEvent(new Event('input', {bubbles: true}));"
            " e.dispatchEvent(new Event('change', {bubbles: true}));"
            " return true; })()" % (self._q(selector), json.dumps(value)))
        if not ok:
            raise CDPError("no element " + selector)

    def type_text(self, selector, text):
        """Focus the field and type TEXT into it, as a keyboard would."""
        if not self.evaluate("(() => { const e = %s; if (!e) return false;"
                             " e.focus(); e.select && e.select();"
                             " return document.activeElement === e; })()"
                             % self._q(selector)):
            raise CDPError("cannot focus " + selector)
        self.send("Input.insertText", {"text": text})

    def click(self, selector):
        """A real mouse click in the middle of the element."""
        box = self.evaluate(
            "(() => { const e = %s; if (!e) return null;"
            " e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
            % self._q(selector))
        if not box:
            raise CDPError("no element " + selector)
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            p = {"type": kind, "x": x, "y": y}
            if kind != "mouseMoved":
                p.update(button="left", clickCount=1)
            self.send("Input.dispatchMouseEvent", p)

    def click_and_wait(self, selector):
        """Click (a submit button) and wait for the next page's load event;
        the HTTP status of that page."""
        self.events.clear()
        n = len(self.statuses)
        self.click(selector)
        self.wait_event("Page.loadEventFired")
        return self.statuses[-1][1] if len(self.statuses) > n else None

    def text(self, selector):
        """The visible text of the element, or None."""
        return self.evaluate("(() => { const e = %s;"
                             " return e ? e.innerText : null; })()"
                             % self._q(selector))

    def value(self, selector):
        return self.evaluate("(() => { const e = %s;"
                             " return e ? e.value : null; })()"
                             % self._q(selector))
