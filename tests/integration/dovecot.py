"""dovecot.py - a private Dovecot IMAP server for the IMAP intake tests.

    with Dovecot() as d:                 # plain IMAP on 127.0.0.1:d.port
        d.deliver(raw)                   # IMAP APPEND, returns the UID
        d.deliver_many([raw] * 1000)     # straight into the Maildir, fast
        d.count("INBOX"); d.uids("INBOX"); d.fetch_all_bodies("INBOX")

    with Dovecot(tls="self-signed") as d:   # STARTTLS on d.port, IMAPS on
        ...                                 # d.tls_port, cert for localhost
                                            # and 127.0.0.1 by d.ca_cert

Each instance has its own temporary directory (in /dev/shm when there is
room, see _parent_dir; parent= or $INTAKE_DOVECOT_DIR choose) with
dovecot.conf, its base_dir, state_dir, log, a passwd-file with one user
(d.user, random d.password) and that user's Maildir.  `dovecot -F -c CONF`
runs as a child process; stop() ends it (SIGKILL to it and its children,
or SIGTERM) and removes the directory.  Nothing of the system's Dovecot
(/etc/dovecot, /run/dovecot, the service) is used.

What this needs on Debian 12 run as root (found by trying; see the
config in _write_conf):
  - login and internal processes may not run as root: default_login_user =
    dovenull, default_internal_user = dovecot (both made by the package);
  - the mail user is the unprivileged 'nobody' (65534), so first_valid_uid /
    first_valid_gid must let it in, and the home and Maildir are owned by it;
    the temporary directory is made 0755 so that nobody and dovenull can
    reach it;
  - imap-login is not chrooted (chroot = , the default chroot is a
    directory under base_dir that would have to be root-owned);
  - auth_failure_delay = 0, so a test of a wrong password is not 2 s;
  - mailbox_idle_check_interval = 1 s so IDLE sees new mail quickly even
    where inotify is not available (with inotify it is immediate).
Not running as root, the current user is the mail, login and internal user.

Messages: deliver() APPENDs on a kept admin connection (the way a real MTA
or client puts mail in, and it wakes IDLE sessions at once; ~1 ms each);
deliver_many() writes the files straight into the folder's Maildir new/
(as an external MDA does) and then opens the folder once so Dovecot
assigns the UIDs, or with method="append" sends MULTIAPPEND commands.
On /dev/shm either puts 10,000 2 KB messages in in about 0.3 s (on this
machine's disk the Maildir writes take ~3.5 s); doveadm_save() is the
LDA's way, ~13 ms a message.
The bytes are stored as given: pass CRLF line ends to get back exactly what
was delivered from fetch_all_bodies().

TLS (tls="self-signed" or "other-host"): a private CA (d.ca_cert, not in
the system's trust store) signs the served certificate, which is for
localhost / 127.0.0.1 ("self-signed") or for other.example only
("other-host"); tls="expired" serves one for localhost that expired
yesterday.  So a client with default trust refuses all three; a client
trusting d.ca_cert accepts "self-signed" and, if it checks host names
and dates, still refuses "other-host" and "expired".  With TLS, ssl = required (ssl_required=False
makes it ssl = yes); STARTTLS is offered on d.port and IMAPS is on
d.tls_port.  Dovecot counts a connection as secure when the client's
address is the server's, so on 127.0.0.1 it still takes a plaintext
LOGIN; to have it refuse one (LOGINDISABLED, [PRIVACYREQUIRED]) give
host="127.0.0.2": the client then comes from 127.0.0.1, another address.
"""

import atexit
import imaplib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
DH_PEM = "/usr/share/dovecot/dh.pem"

_running = set()


def available():
    """True when dovecot and its imap binaries are installed."""
    return (os.access(DOVECOT, os.X_OK) and os.access(DOVEADM, os.X_OK)
            and os.path.exists("/usr/lib/dovecot/imap")
            and os.path.exists("/usr/lib/dovecot/imap-login"))


def why_unavailable():
    if not available():
        return ("dovecot is not installed (dovecot-core, dovecot-imapd; "
                "`sh scripts/deps.sh test` installs them)")
    if os.geteuid() == 0:
        for u in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(u)
            except KeyError:
                return "no system user %r (the dovecot-core package makes it)" % u
    return None


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def _is_dovecot(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().startswith(b"dovecot/")
    except OSError:
        return False


def _alive_child(pid):
    """True while @pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _parent_dir():
    """Where instances live: $INTAKE_DOVECOT_DIR, else /dev/shm when it is
    a writable tmpfs with room (writing a small file there costs ~10 us
    against 300-700 us on this machine's disk, which is what bulk delivery
    is made of), else the temporary directory."""
    env = os.environ.get("INTAKE_DOVECOT_DIR")
    if env:
        return env
    try:
        st = os.statvfs("/dev/shm")
        if (os.access("/dev/shm", os.W_OK | os.X_OK)
                and st.f_bavail * st.f_frsize >= 512 << 20):
            return "/dev/shm"
    except OSError:
        pass
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr))


def make_ca_and_certs(directory, hosts):
    """A private CA and one server certificate per entry of @hosts.

    @hosts maps a name to a list of subjectAltName entries, e.g.
    {"server": ["DNS:localhost", "IP:127.0.0.1"]}.  Returns (ca_cert,
    {name: (cert, key)}).  EC keys, valid two days; the one named
    "expired" expired yesterday."""
    ca_key = os.path.join(directory, "ca.key")
    ca_cert = os.path.join(directory, "ca.pem")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key,
             "-out", ca_cert, "-days", "2", "-subj", "/CN=intake test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    out = {}
    for name, sans in hosts.items():
        key = os.path.join(directory, name + ".key")
        csr = os.path.join(directory, name + ".csr")
        cert = os.path.join(directory, name + ".pem")
        ext = os.path.join(directory, name + ".ext")
        cn = sans[0].split(":", 1)[1]
        _openssl("req", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                 "-out", csr, "-subj", "/CN=%s" % cn)
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" % ",".join(sans))
            f.write("basicConstraints=critical,CA:FALSE\n")
            f.write("keyUsage=critical,digitalSignature\n")
            f.write("extendedKeyUsage=serverAuth\n")
        # "expired": valid until yesterday (-days -1)
        _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey",
                 ca_key, "-CAcreateserial", "-out", cert,
                 "-days", "-1" if name == "expired" else "2",
                 "-extfile", ext)
        os.chmod(key, 0o600)
        out[name] = (cert, key)
    return ca_cert, out


class Dovecot:
    """A private Dovecot; see the module's comment."""

    SEP = "/"   # hierarchy separator of the inbox namespace

    def __init__(self, tls=None, user="council", password=None,
                 ssl_required=None, host="127.0.0.1", extra_conf="",
                 parent=None, start=False):
        if tls not in (None, "self-signed", "other-host", "expired"):
            raise ValueError("tls: None, 'self-signed', 'other-host' or"
                             " 'expired'")
        self.tls = tls
        self.user = user
        self.password = password or secrets.token_urlsafe(12)
        self.ssl_required = bool(tls) if ssl_required is None else ssl_required
        self.extra_conf = extra_conf
        self.host = host
        self.dir = tempfile.mkdtemp(prefix="intake-dovecot-",
                                    dir=parent or _parent_dir())
        # nobody (mail) and dovenull (login) must get through to their
        # files below.
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.home = os.path.join(self.dir, "home", user)
        self.maildir = os.path.join(self.home, "Maildir")
        self.proc = None
        self._admin = None
        self._orphans = []
        self._seq = 0
        self.ca_cert = None
        self.server_cert = None
        self.cert_host = None
        self._pick_users()
        self._make_home()
        if tls:
            tdir = os.path.join(self.dir, "tls")
            os.mkdir(tdir, 0o700)
            ca, certs = make_ca_and_certs(tdir, {
                "localhost": ["DNS:localhost", "IP:127.0.0.1"]
                + (["IP:" + host] if host != "127.0.0.1" else []),
                "other": ["DNS:other.example"],
                "expired": ["DNS:localhost", "IP:127.0.0.1"],
            })
            self.ca_cert = ca
            os.chmod(ca, 0o644)
            name = {"self-signed": "localhost", "other-host": "other",
                    "expired": "expired"}[tls]
            self.server_cert, self._server_key = certs[name]
            self.cert_host = "other.example" if name == "other" else "localhost"
            self.other_cert = certs["other"][0]
        self._write_passwd()
        self._write_conf()
        if start:
            self.start()

    # -- setup -----------------------------------------------------------
    def _pick_users(self):
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            self.login_user, self.internal_user = "dovenull", "dovecot"
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            me = pwd.getpwuid(self.uid).pw_name
            self.login_user = self.internal_user = me

    def _make_home(self):
        os.makedirs(os.path.join(self.dir, "home"), 0o755)
        for d in (self.home, self.maildir):
            os.mkdir(d, 0o700)
            os.chown(d, self.uid, self.gid)

    def _write_passwd(self):
        self.passwd = os.path.join(self.dir, "passwd")
        with open(self.passwd, "w") as f:
            f.write("%s:{PLAIN}%s:%d:%d::%s::\n"
                    % (self.user, self.password, self.uid, self.gid, self.home))
        # Read by the auth process (default_internal_user).
        os.chmod(self.passwd, 0o644)

    def _write_conf(self):
        d = self.dir
        tls_conf = "ssl = no\n"
        if self.tls:
            tls_conf = (
                "ssl = %s\n"
                "ssl_cert = <%s\n"
                "ssl_key = <%s\n"
                "ssl_min_protocol = TLSv1.2\n"
                % ("required" if self.ssl_required else "yes",
                   self.server_cert, self._server_key))
            if os.path.exists(DH_PEM):
                tls_conf += "ssl_dh = <%s\n" % DH_PEM
        uid_floor = min(self.uid, 500) or 1
        gid_floor = min(self.gid, 500) or 1
        conf = """\
# Private test instance: nothing of /etc/dovecot is read.
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = {host}
default_login_user = {login}
default_internal_user = {internal}
first_valid_uid = {uidf}
first_valid_gid = {gidf}
mail_location = maildir:~/Maildir
mail_max_userip_connections = 100
mailbox_idle_check_interval = 1 secs
auth_mechanisms = plain login
auth_failure_delay = 0
disable_plaintext_auth = no
{tls}
namespace inbox {{
  inbox = yes
  separator = {sep}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{extra}
""".format(d=d, login=self.login_user, internal=self.internal_user,
           uidf=uid_floor, gidf=gid_floor, tls=tls_conf, sep=self.SEP,
           passwd=self.passwd, port=self.port, tls_port=self.tls_port or 0,
           extra=self.extra_conf, host=self.host)
        with open(self.conf, "w") as f:
            f.write(conf)
        os.chmod(self.conf, 0o644)

    # -- lifecycle -------------------------------------------------------
    def start(self, timeout=15.0):
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._log = open(os.path.join(self.dir, "dovecot.stderr"), "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        _running.add(self)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited with %s:\n%s"
                                   % (self.proc.returncode, self.log()))
            try:
                with socket.create_connection((self.host, self.port), 1) as s:
                    s.settimeout(2)
                    if s.recv(512).startswith(b"* OK"):
                        s.sendall(b"a LOGOUT\r\n")
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("dovecot did not listen:\n" + self.log())

    def _stop_proc(self, hard=False, timeout=15.0):
        self._drop_admin()
        if self.proc is None:
            return None
        children = self.children() + self._orphans
        self._orphans = []
        for pid in children if self.proc.poll() is not None else ():
            if not _is_dovecot(pid):
                continue   # gone, and the pid maybe reused
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.proc.poll() is None:
            # Graceful: SIGTERM to the master and to every child.
            # (SIGTERM to the master alone takes it about 1 s, and leaves
            # the imap session processes serving their clients; SIGTERMed
            # themselves they send BYE "Server shutting down." and go.)
            # The sessions go first, then the master and the rest.
            sig = signal.SIGKILL if hard else signal.SIGTERM
            sessions = [p for p in children if _comm(p) == "imap"]
            for pid in sessions:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.time() + 2
            while time.time() < deadline and any(
                    _alive_child(p) for p in sessions):
                time.sleep(0.01)
            self.proc.send_signal(sig)
            for pid in children:
                if pid not in sessions:
                    try:
                        os.kill(pid, sig)
                    except OSError:
                        pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self._log.close()
        _running.discard(self)
        # Children hold the listening sockets until they are gone.
        deadline = time.time() + 3
        while time.time() < deadline and any(
                _alive_child(p) for p in children):
            time.sleep(0.02)
        for pid in children:
            if _alive_child(pid) and _is_dovecot(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        return rc

    def stop(self, hard=True):
        """Stop Dovecot and remove its directory.  By default every process
        is SIGKILLed (the mail is thrown away anyway, and a graceful stop
        takes the master about 1 s); hard=False stops it with SIGTERM."""
        rc = self._stop_proc(hard)
        if self.dir and os.environ.get("INTAKE_KEEP_DOVECOT") is None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        return rc

    def restart(self, hard=False):
        """Stop and start again: same port, same mail.  hard=True
        SIGKILLs the master and every child (a crash); else SIGTERM, and
        the master closes the client sessions (BYE) before it goes."""
        self._stop_proc(hard)
        return self.start()

    def kill(self):
        """SIGKILL the master only.  Its children notice and end their
        sessions (BYE "Server shutting down"), but linger for some 10 s;
        stop() or restart() SIGKILLs any still there."""
        if self.proc is not None and self.proc.poll() is None:
            self._orphans = self.children()
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def children(self):
        """pids of the master's child processes (anvil, log, auth, imap,
        imap-login, ...)."""
        if self.proc is None:
            return []
        return [p for p in _pids() if _ppid(p) == self.proc.pid]

    def imap_pids(self):
        """pids of the imap (mail session) processes."""
        return [p for p in self.children() if _comm(p) == "imap"]

    def log(self):
        text = ""
        for name in ("dovecot.stderr", "dovecot.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    text += f.read().decode("utf-8", "replace")
            except (FileNotFoundError, TypeError):
                pass
        return text

    # -- files for the client under test ---------------------------------
    def password_file(self, path):
        """Write the password (no newline) to @path, mode 0600."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password)
        os.chmod(path, 0o600)
        return path

    # -- IMAP, as a client -----------------------------------------------
    def client_context(self, ca=True, check_hostname=True):
        """An SSL context trusting our CA (ca=True) or the system's."""
        if ca and self.ca_cert:
            ctx = ssl.create_default_context(cafile=self.ca_cert)
        else:
            ctx = ssl.create_default_context()
        ctx.check_hostname = check_hostname
        return ctx

    def connect(self, login=True, implicit_tls=False, host=None):
        """A new imaplib client, logged in.  With TLS it uses STARTTLS on
        port (or IMAPS on tls_port with implicit_tls) and trusts ca_cert
        without checking the host name (so "other-host" works too), nor,
        for tls="expired", the certificate at all (the rig's own
        connection; the client under test is what must refuse it)."""
        host = host or self.host
        ctx = self.client_context(check_hostname=False) if self.tls else None
        if ctx is not None and self.tls == "expired":
            ctx.verify_mode = ssl.CERT_NONE
        if self.tls and implicit_tls:
            c = imaplib.IMAP4_SSL(host, self.tls_port, timeout=30,
                                  ssl_context=ctx)
        else:
            c = imaplib.IMAP4(host, self.port, timeout=30)
            if self.tls:
                c.starttls(ctx)
        if login:
            c.login(self.user, self.password)
        return c

    def _admin_conn(self):
        if self._admin is None:
            self._admin = self.connect()
        return self._admin

    def _drop_admin(self):
        if self._admin is not None:
            try:
                self._admin.logout()
            except Exception:
                pass
            self._admin = None

    def _imap(self, fn):
        """Run fn(conn) on the admin connection, reconnecting once if it
        broke (e.g. after restart() or a UIDVALIDITY change)."""
        try:
            return fn(self._admin_conn())
        except (imaplib.IMAP4.abort, OSError, EOFError):
            self._admin = None
            return fn(self._admin_conn())

    @staticmethod
    def _q(folder):
        return '"%s"' % folder.replace("\\", "\\\\").replace('"', '\\"')

    @staticmethod
    def _ok(typ, data, what):
        if typ != "OK":
            raise RuntimeError("%s: %s %r" % (what, typ, data))
        return data

    def create_folder(self, name):
        def fn(c):
            typ, data = c.create(self._q(name))
            if typ != "OK" and b"ALREADYEXISTS" not in b"".join(
                    x for x in data if isinstance(x, bytes)):
                raise RuntimeError("CREATE %s: %r" % (name, data))
        self._imap(fn)

    def delete_folder(self, name):
        self._imap(lambda c: self._ok(*c.delete(self._q(name)), "DELETE"))

    def folders(self):
        def fn(c):
            data = self._ok(*c.list(), "LIST")
            out = []
            for line in data:
                m = re.match(rb'\(.*?\) (?:"[^"]*"|NIL) (.*)$', line)
                name = m.group(1).decode()
                if name.startswith('"'):
                    name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                out.append(name)
            return sorted(out)
        return self._imap(fn)

    def _status(self, folder, item):
        def fn(c):
            data = self._ok(*c.status(self._q(folder), "(%s)" % item), "STATUS")
            m = re.search(item.encode() + rb" (\d+)", data[0])
            return int(m.group(1))
        return self._imap(fn)

    def count(self, folder="INBOX"):
        return self._status(folder, "MESSAGES")

    def uidvalidity(self, folder="INBOX"):
        return self._status(folder, "UIDVALIDITY")

    def uidnext(self, folder="INBOX"):
        return self._status(folder, "UIDNEXT")

    def _examine(self, folder, fn):
        def run(c):
            self._ok(*c.select(self._q(folder), readonly=True), "EXAMINE")
            try:
                return fn(c)
            finally:
                c.unselect()
        return self._imap(run)

    def uids(self, folder="INBOX"):
        def fn(c):
            data = self._ok(*c.uid("SEARCH", "ALL"), "UID SEARCH")
            return sorted(int(x) for x in data[0].split())
        return self._examine(folder, fn)

    def _fetch(self, c, item):
        typ, data = c.uid("FETCH", "1:*", "(UID %s)" % item)
        self._ok(typ, data, "UID FETCH")
        return data

    def fetch_all_bodies(self, folder="INBOX"):
        """{uid: raw bytes} of every message (BODY.PEEK[]: no \\Seen)."""
        def fn(c):
            if not c.uid("SEARCH", "ALL")[1][0].split():
                return {}
            out = {}
            for item in self._fetch(c, "BODY.PEEK[]"):
                if isinstance(item, tuple):
                    m = re.search(rb"UID (\d+)", item[0])
                    out[int(m.group(1))] = item[1]
            return out
        return self._examine(folder, fn)

    def flags(self, folder="INBOX"):
        """{uid: set of flags}."""
        def fn(c):
            if not c.uid("SEARCH", "ALL")[1][0].split():
                return {}
            out = {}
            for item in self._fetch(c, "FLAGS"):
                if isinstance(item, tuple):
                    item = item[0]
                m = re.search(rb"UID (\d+)", item)
                f = re.search(rb"FLAGS \(([^)]*)\)", item)
                out[int(m.group(1))] = set(f.group(1).decode().split())
            return out
        return self._examine(folder, fn)

    # -- putting mail in --------------------------------------------------
    def deliver(self, raw, folder="INBOX", flags=None):
        """APPEND one message; returns its UID."""
        if isinstance(raw, str):
            raw = raw.encode()

        def fn(c):
            typ, data = c.append(self._q(folder), flags, None, raw)
            self._ok(typ, data, "APPEND")
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            return int(m.group(1)) if m else None
        return self._imap(fn)

    def folder_path(self, folder):
        """The Maildir++ directory of @folder (ASCII names only)."""
        if folder.upper() == "INBOX":
            return self.maildir
        if not all(32 <= ord(ch) < 127 and ch not in "&." for ch in folder):
            raise ValueError("folder_path: ASCII names without & or . only")
        return os.path.join(self.maildir, "." + folder.replace(self.SEP, "."))

    def deliver_many(self, raws, folder="INBOX", method="maildir", batch=500):
        """Put many messages in @folder at once; returns how many.

        method="maildir" writes them into new/ and then opens the folder
        so Dovecot gives them UIDs (fast: thousands a second);
        method="append" sends them with MULTIAPPEND and LITERAL+, @batch
        to a command (each command is one transaction in Dovecot)."""
        if method == "append":
            return self._multiappend(raws, folder, batch)
        if folder.upper() != "INBOX":
            self.create_folder(folder)
        path = self.folder_path(folder)
        new = os.path.join(path, "new")
        if not os.path.isdir(new):
            self.uids(folder)   # Dovecot makes a Maildir on first use
        if not os.path.isdir(new):
            raise RuntimeError("no Maildir at %s" % path)
        host = socket.gethostname().replace("/", "_").replace(":", "_")
        now = int(time.time())
        pid = os.getpid()
        n = 0
        for raw in raws:
            if isinstance(raw, str):
                raw = raw.encode()
            self._seq += 1
            # S= the size, W= the size with CRLF line ends (RFC822.SIZE),
            # as Dovecot names the files it saves itself (LDA, LMTP,
            # APPEND): without W= it reads the whole file for RFC822.SIZE
            vsize = len(raw) + raw.count(b"\n") - raw.count(b"\r\n")
            name = "%d.M%dP%dQ%d.%s,S=%d,W=%d" % (now, self._seq, pid,
                                                  self._seq, host, len(raw),
                                                  vsize)
            tmp = os.path.join(path, "tmp", name)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, raw)
                os.fchown(fd, self.uid, self.gid)
            finally:
                os.close(fd)
            os.rename(tmp, os.path.join(new, name))
            n += 1
        # One EXAMINE syncs the folder: every new file gets its UID now.
        self.uids(folder)
        return n

    def _multiappend(self, raws, folder, batch):
        raws = [r.encode() if isinstance(r, str) else r for r in raws]
        c = self.connect()
        try:
            for i in range(0, len(raws), batch):
                out = [b"MA APPEND " + self._q(folder).encode()]
                for raw in raws[i:i + batch]:
                    out.append(b" {%d+}\r\n" % len(raw) + raw)
                out.append(b"\r\n")
                c.send(b"".join(out))
                while True:
                    line = c.readline()
                    if not line:
                        raise RuntimeError("APPEND: connection closed")
                    if line.startswith(b"MA "):
                        if not line.startswith(b"MA OK"):
                            raise RuntimeError("APPEND: %r" % line)
                        break
        finally:
            try:
                c.logout()
            except Exception:
                pass
        return len(raws)

    def change_uidvalidity(self, folder="INBOX", value=None):
        """Give @folder a new UIDVALIDITY (old + 1 unless @value); the
        messages stay but clients must drop what they know of UIDs."""
        new = value if value is not None else self.uidvalidity(folder) + 1
        self._drop_admin()
        self.doveadm("mailbox", "update", "-u", self.user,
                     "--uid-validity", str(new), folder)
        got = self.uidvalidity(folder)
        if got != new:
            raise RuntimeError("UIDVALIDITY is %d, wanted %d" % (got, new))
        return new

    def doveadm(self, *args, input=None):
        r = subprocess.run([DOVEADM, "-c", self.conf] + list(args),
                           input=input, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("doveadm %s: %s" % (" ".join(args),
                                                   r.stderr.decode("utf-8", "replace")))
        return r.stdout.decode("utf-8", "replace")

    def doveadm_save(self, raw, folder="INBOX"):
        """Deliver one message with `doveadm save` (as the LDA would)."""
        if isinstance(raw, str):
            raw = raw.encode()
        self.doveadm("save", "-u", self.user, "-m", folder, input=raw)


@atexit.register
def _stop_all():
    for d in list(_running):
        try:
            d.stop()
        except Exception:
            pass
