"""tls_util.py - a throwaway self-signed certificate for STARTTLS tests.

make_cert(directory) runs `openssl req -x509` to make a key and a
certificate for CN=localhost with subjectAltName DNS:localhost and
IP:127.0.0.1, valid for two days, and returns (cert_path, key_path).
client_context(cert_path) gives an ssl.SSLContext that trusts exactly that
certificate and checks the host name, so a test that completes a handshake
has really talked to the daemon's configured certificate.
"""

import os
import shutil
import ssl
import subprocess


def have_openssl():
    return shutil.which("openssl") is not None


def make_cert(directory, cn="localhost"):
    """Make key.pem and cert.pem in @directory; returns (cert, key)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=%s" % cn,
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
        capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl req failed: " + r.stderr)
    # The daemon reads them as root before dropping privileges; keep the
    # key private anyway.
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert, key


def client_context(cert_path):
    """An ssl client context that trusts only @cert_path."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cert_path)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
