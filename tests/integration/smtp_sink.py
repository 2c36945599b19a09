"""smtp_sink.py - a recording SMTP server on loopback for outbound tests.

    with SmtpSink() as s:          # 127.0.0.1:s.port
        ...
        s.wait(1)                  # until one message arrived
        m = s.messages[0]          # .mail_from, .rcpts, .data (bytes,
                                   #  dot-unstuffed, CRLF), .parsed (email)
Answers 250 to everything by default; reply_rcpt="450 ..." or "550 ..."
makes RCPT fail.  An on_message(msg) callback may act (e.g. auto-reply).
"""

import email
import email.policy
import socket
import socketserver
import threading
import time


class Message:
    def __init__(self, mail_from, rcpts, data):
        self.mail_from = mail_from
        self.rcpts = rcpts
        self.data = data
        self.parsed = email.message_from_bytes(data, policy=email.policy.default)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        sink = self.server.sink
        self.wfile.write(b"220 sink ESMTP\r\n")
        mail_from, rcpts = None, []
        while True:
            line = self.rfile.readline(65536)
            if not line:
                return
            sink.commands.append(line.rstrip(b"\r\n").decode("latin-1"))
            cmd = line[:4].upper()
            if cmd in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-sink\r\n250-PIPELINING\r\n"
                                 b"250 8BITMIME\r\n")
            elif cmd == b"MAIL":
                mail_from = line.split(b":", 1)[1].strip().split(b" ")[0]
                mail_from = mail_from.strip(b"<>").decode()
                rcpts = []
                self.wfile.write(b"250 ok\r\n")
            elif cmd == b"RCPT":
                if sink.reply_rcpt:
                    self.wfile.write(sink.reply_rcpt.encode() + b"\r\n")
                    continue
                rcpts.append(line.split(b":", 1)[1].strip().strip(b"<>")
                             .decode())
                self.wfile.write(b"250 ok\r\n")
            elif cmd == b"DATA":
                self.wfile.write(b"354 go\r\n")
                data = bytearray()
                while True:
                    l = self.rfile.readline(1 << 20)
                    if not l or l == b".\r\n":
                        break
                    if l.startswith(b".."):
                        l = l[1:]
                    data += l
                m = Message(mail_from, list(rcpts), bytes(data))
                with sink.cond:
                    sink.messages.append(m)
                    sink.cond.notify_all()
                self.wfile.write(b"250 queued\r\n")
                if sink.on_message:
                    sink.on_message(m)
            elif cmd == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class SmtpSink:
    def __init__(self, port=0, reply_rcpt=None, on_message=None):
        self.messages = []
        self.commands = []
        self.cond = threading.Condition()
        self.reply_rcpt = reply_rcpt
        self.on_message = on_message
        self.server = _Server(("127.0.0.1", port), _Handler)
        self.server.sink = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def wait(self, n, timeout=60):
        deadline = time.time() + timeout
        with self.cond:
            while len(self.messages) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("sink: %d messages, wanted %d"
                                         % (len(self.messages), n))
                self.cond.wait(left)
        return self.messages

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
