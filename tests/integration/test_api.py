"""test_api.py - the department queue API, /api/v1 (issue 7, docs/api.md).

Covers SECURITY-TESTS §L 99-103 with two independent clients (curl in a
subprocess and Python's urllib): no token, an unknown or a revoked token
-> 401; a waste token cannot list, read, claim, change the status of,
note, re-route or reply to a housing case, nor fetch its attachments (404
each, the same answer as for a case that does not exist); PATCH, PUT and
DELETE of a housing case, a search for a housing word, batch forms mixing
a waste and a housing reference and list parameters or queue names aimed
at housing are refused as a whole and show nothing of housing;
mass-assignment fields (SECURITY-TESTS 101's own body among them) are
refused by name (422); admin functions (tokens, rules, shred, retention,
subject rights, keys, audit, quarantine) answer 403 to a department token;
a token revoked while the daemon runs is refused by the next request; special-category text and attachments
are withheld without the special grant; attachments are downloads
(Content-Disposition: attachment with an ASCII-safe name and RFC 5987
filename*, nosniff, application/octet-stream); claim, status, notes
(sealed), re-route and reply work on the token's own cases; every read is
audited with the token's name and no personal data; the token itself is
printed once and never stored; more than 10 failures a minute from one
address -> 429.  Cases are made by mail over SMTP with the shipped rules.
"""

import json
import os
import sqlite3
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import email.policy
from email.message import EmailMessage

from harness import Intaked
from test_forms import http_daemon, url
from test_routing import routed


def mail(subject, body, sender, attachments=()):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "enquiries@council.example"
    m["Subject"] = subject
    m["Message-ID"] = "<%s@test.example>" % os.urandom(8).hex()
    m.set_content(body)
    for name, data in attachments:
        m.add_attachment(data, maintype="application",
                         subtype="octet-stream", filename=name)
    return m.as_bytes(policy=email.policy.SMTP)


def send(d, data, sender):
    with d.smtp() as s:
        s.sendmail(sender, ["enquiries@council.example"], data)


class Urllib:
    """Client one: Python's urllib."""
    name = "urllib"

    def __init__(self, d):
        self.d = d

    def __call__(self, method, path, token=None, body=None, headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(url(self.d, path), data=data, headers=h,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


class Curl:
    """Client two: curl in a subprocess."""
    name = "curl"

    def __init__(self, d):
        self.d = d

    def __call__(self, method, path, token=None, body=None, headers=None):
        with tempfile.TemporaryDirectory() as tmp:
            out, hdr = os.path.join(tmp, "body"), os.path.join(tmp, "headers")
            cmd = ["curl", "-s", "-X", method, "-o", out, "-D", hdr,
                   "-w", "%{http_code}", "--max-time", "20"]
            if token:
                cmd += ["-H", "Authorization: Bearer " + token]
            for k, v in (headers or {}).items():
                cmd += ["-H", "%s: %s" % (k, v)]
            if body is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                cmd += ["-H", "Content-Type: application/json",
                        "--data-binary", "@-"]
            else:
                data = None
            r = subprocess.run(cmd + [url(self.d, path)], input=data,
                               capture_output=True, check=True)
            code = int(r.stdout)
            with open(out, "rb") as f:
                content = f.read()
            h = {}
            with open(hdr, "rb") as f:
                for line in f.read().decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        h[k.strip().lower()] = v.strip()
            return code, h, content


def db(d):
    return sqlite3.connect(os.path.join(d.dir, "var", "intake.db"))


def make_token(d, name, *queues, special=False):
    args = ["tokens", "create", "--name", name]
    for q in queues:
        args += ["--queue", q]
    if special:
        args.append("--special-category")
    r = d.ctl(*args, check=True)
    return r.stdout.strip()


ATT_NAME = 'fotó "bin"\\x;.jpg'


class Api(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        d = cls.d = routed(http_daemon())
        d.start()
        try:
            cls.tok = {
                "waste": make_token(d, "waste", "waste"),
                "housing": make_token(d, "housing", "housing"),
                "waste-special": make_token(d, "waste-special", "waste",
                                            special=True),
                "gone": make_token(d, "gone", "waste"),
            }
            d.ctl("tokens", "revoke", "gone", check=True)
            send(d, mail("Missed collection", "Hello, my wheelie bin was not"
                         " emptied on Tuesday.\n", "wanda@example.org",
                         [(ATT_NAME, b"\xff\xd8\xffJPEG" * 20)]),
                 "wanda@example.org")
            send(d, mail("Damp", "There is damp and mould in my council flat"
                         " and it is getting worse.\n", "harry@example.org",
                         [("survey.pdf", b"%PDF-1.4 secret survey")]),
                 "harry@example.org")
            send(d, mail("Bin help", "My wheelie bin is too heavy: I have a"
                         " disability and cannot pull it.\n",
                         "sally@example.org",
                         [("letter.pdf", b"%PDF-1.4 doctor letter")]),
                 "sally@example.org")
            send(d, mail("Recycling", "Please bring a new wheelie bin for"
                         " recycling.\n", "rita@example.org"),
                 "rita@example.org")
            cases = d.wait_cases(4)
            by_from = {c["from"]: c for c in cases}
            cls.waste_ref = by_from["wanda@example.org"]["ref"]
            cls.housing_ref = by_from["harry@example.org"]["ref"]
            cls.special_ref = by_from["sally@example.org"]["ref"]
            cls.change_ref = by_from["rita@example.org"]["ref"]
            assert by_from["wanda@example.org"]["queue"] == "waste", cases
            assert by_from["harry@example.org"]["queue"] == "housing", cases
            assert by_from["sally@example.org"]["queue"] == "waste", cases
            assert by_from["rita@example.org"]["queue"] == "waste", cases
            with db(d) as c:
                cls.housing_msg = c.execute(
                    "SELECT m.id FROM messages m JOIN cases c ON"
                    " c.id = m.case_id WHERE c.ref = ?",
                    (cls.housing_ref,)).fetchone()[0]
        except Exception:
            d.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.check_sanitizers()

    def clients(self):
        return (Curl(self.d), Urllib(self.d))

    # ---------------------------------------------------- authentication
    def test_no_token_unknown_revoked_401(self):
        for c in self.clients():
            st, h, body = c("GET", "/api/v1/queues/waste/cases")
            self.assertEqual(st, 401, c.name)
            self.assertIn("Bearer", h["www-authenticate"])
            self.assertIn("error", json.loads(body))
            st, _, _ = c("GET", "/api/v1/queues/waste/cases",
                         token="itk_" + "A" * 43)
            self.assertEqual(st, 401, c.name)
            st, _, _ = c("GET", "/api/v1/cases/" + self.waste_ref,
                         token=self.tok["gone"])
            self.assertEqual(st, 401, c.name)
        # tokens never in the URL
        st, _, _ = Urllib(self.d)("GET", "/api/v1/queues/waste/cases"
                                  "?access_token=" + self.tok["waste"])
        self.assertEqual(st, 400)

    def test_token_hygiene(self):
        tok = self.tok["waste"]
        self.assertTrue(tok.startswith("itk_"))
        self.assertGreaterEqual(len(tok) - 4, 43)        # 256 bits
        r = self.d.ctl("tokens", "list", "--json", check=True)
        listed = {t["name"]: t for t in json.loads(r.stdout)}
        self.assertEqual(listed["waste"]["queues"], ["waste"])
        self.assertTrue(listed["waste-special"]["special"])
        self.assertIsNotNone(listed["gone"]["revoked"])
        self.assertIsNone(listed["waste"]["revoked"])
        for t in self.tok.values():
            self.assertNotIn(t, r.stdout)
        with db(self.d) as c:
            rows = c.execute("SELECT token_hash FROM api_tokens").fetchall()
        self.assertEqual(len(rows), 4)
        for (h,) in rows:
            self.assertEqual(len(h), 32)
        raw = b""
        for suffix in ("", "-wal"):
            p = os.path.join(self.d.dir, "var", "intake.db" + suffix)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    raw += f.read()
        for t in self.tok.values():
            self.assertNotIn(t.encode(), raw)
            self.assertNotIn(t[4:].encode(), raw)

    def test_cli_refusals(self):
        d = self.d
        self.assertEqual(d.ctl("tokens", "create", "--name", "x",
                               "--queue", "nowhere").returncode, 65)
        self.assertEqual(d.ctl("tokens", "create", "--name", "../x",
                               "--queue", "waste").returncode, 65)
        self.assertEqual(d.ctl("tokens", "create", "--name", "a;b",
                               "--queue", "waste").returncode, 65)
        self.assertEqual(d.ctl("tokens", "create", "--name", "waste",
                               "--queue", "waste").returncode, 65)
        self.assertEqual(d.ctl("tokens", "create", "--name",
                               "x").returncode, 64)
        self.assertEqual(d.ctl("tokens", "revoke", "nobody").returncode, 66)

    # ------------------------------------------------------------ reads
    def test_own_queue_list_and_case(self):
        for c in self.clients():
            st, _, body = c("GET", "/api/v1/queues/waste/cases?status=new",
                            token=self.tok["waste"])
            self.assertEqual(st, 200, body)
            listed = json.loads(body)
            refs = {x["ref"] for x in listed["cases"]}
            self.assertIn(self.waste_ref, refs)
            self.assertNotIn(self.housing_ref, refs)
            self.assertTrue(all(x["queue"] == "waste"
                                for x in listed["cases"]))
            st, _, body = c("GET", "/api/v1/queues/waste/cases?limit=1",
                            token=self.tok["waste"])
            page = json.loads(body)
            self.assertEqual(len(page["cases"]), 1)
            self.assertIsNotNone(page["next"])
            st, _, body = c("GET", "/api/v1/queues/waste/cases?limit=1"
                            "&before=" + page["next"],
                            token=self.tok["waste"])
            self.assertEqual(st, 200)
            self.assertNotEqual(json.loads(body)["cases"][0]["ref"],
                                page["cases"][0]["ref"])
            # a tag of the routing reasons: none has this one; a value
            # that is not a tag is refused with the field named
            st, _, body = c("GET", "/api/v1/queues/waste/cases"
                            "?tag=no-such-tag", token=self.tok["waste"])
            self.assertEqual(st, 200, body)
            self.assertEqual(json.loads(body)["cases"], [])
            st, _, body = c("GET", "/api/v1/queues/waste/cases"
                            "?tag=Not%20a%20tag", token=self.tok["waste"])
            self.assertEqual(st, 422, body)
            self.assertEqual(json.loads(body)["field"], "tag")
            st, _, body = c("GET", "/api/v1/cases/" + self.waste_ref,
                            token=self.tok["waste"])
            self.assertEqual(st, 200, body)
            case = json.loads(body)
            self.assertEqual(case["ref"], self.waste_ref)
            self.assertEqual(case["from"], "wanda@example.org")
            m = case["message_list"][0]
            self.assertIn("wheelie bin was not emptied", m["text"])
            self.assertEqual(m["subject"], "Missed collection")
            self.assertEqual(case["participants"][0]["address"],
                             "wanda@example.org")
            self.assertEqual(len(m["attachments"]), 1)
            self.assertTrue(m["attachments"][0]["download"].startswith(
                "/api/v1/cases/%s/attachments/" % self.waste_ref))

    def test_attachment_is_a_download(self):
        st, _, body = Urllib(self.d)("GET", "/api/v1/cases/" + self.waste_ref,
                                     token=self.tok["waste"])
        att = json.loads(body)["message_list"][0]["attachments"][0]
        for c in self.clients():
            st, h, content = c("GET", att["download"],
                               token=self.tok["waste"])
            self.assertEqual(st, 200, c.name)
            self.assertEqual(content, b"\xff\xd8\xffJPEG" * 20)
            self.assertEqual(h["content-type"], "application/octet-stream")
            self.assertEqual(h["x-content-type-options"], "nosniff")
            disp = h["content-disposition"]
            self.assertTrue(disp.startswith("attachment;"), disp)
            self.assertNotIn("inline", disp)
            ascii_name = disp.split('filename="', 1)[1].split('"', 1)[0]
            self.assertTrue(all(32 <= ord(ch) < 127 for ch in ascii_name))
            for bad in '"\\/;':
                self.assertNotIn(bad, ascii_name)
            self.assertIn("filename*=UTF-8''", disp)
            ext = disp.split("filename*=UTF-8''", 1)[1]
            self.assertEqual(urllib.parse.unquote(ext), att["name"])
            self.assertTrue(all(32 <= ord(ch) < 127 for ch in disp), disp)

    # --------------------------------------------------- access matrix
    def test_bola_matrix(self):
        ref, mid = self.housing_ref, self.housing_msg
        probes = [
            ("GET", "/api/v1/queues/housing/cases", None),
            ("GET", "/api/v1/cases/%s" % ref, None),
            ("GET", "/api/v1/cases/%s/attachments/%d/0" % (ref, mid), None),
            ("POST", "/api/v1/cases/%s/claim" % ref, {}),
            ("POST", "/api/v1/cases/%s/status" % ref, {"status": "closed"}),
            ("POST", "/api/v1/cases/%s/notes" % ref, {"text": "mine now"}),
            ("POST", "/api/v1/cases/%s/reroute" % ref,
             {"queue": "waste", "reason": "ours"}),
            ("POST", "/api/v1/cases/%s/reply" % ref, {"text": "Dear Harry"}),
        ]
        # a reference that exists nowhere answers the same
        missing = self.housing_ref[:-1] + "X"
        for c in self.clients():
            for method, path, body in probes:
                st, _, out = c(method, path, token=self.tok["waste"],
                               body=body)
                self.assertEqual(st, 404, (c.name, method, path, out))
                self.assertNotIn(b"harry", out)
                self.assertNotIn(b"Damp", out)
            st1, _, b1 = c("GET", "/api/v1/cases/" + self.housing_ref,
                           token=self.tok["waste"])
            st2, _, b2 = c("GET", "/api/v1/cases/" + missing,
                           token=self.tok["waste"])
            self.assertEqual((st1, b1), (st2, b2))
        # nothing changed
        with db(self.d) as c:
            row = c.execute("SELECT status, queue, claimed_by FROM cases"
                            " WHERE ref = ?", (ref,)).fetchone()
            self.assertEqual(row, ("new", "housing", None))
            n = c.execute("SELECT count(*) FROM case_notes n JOIN cases c ON"
                          " c.id = n.case_id WHERE c.ref = ?",
                          (ref,)).fetchone()[0]
            self.assertEqual(n, 0)
            n = c.execute("SELECT count(*) FROM messages m JOIN cases c ON"
                          " c.id = m.case_id WHERE c.ref = ? AND"
                          " m.direction = 'out'", (ref,)).fetchone()[0]
            self.assertEqual(n, 0)
        # and the housing token does see it
        st, _, body = Curl(self.d)("GET", "/api/v1/cases/" + ref,
                                   token=self.tok["housing"])
        self.assertEqual(st, 200, body)

    def test_bola_methods_search_batch(self):
        """§99 beyond the endpoints the API has: PATCH, PUT and DELETE of
        a housing case, a search for a word only housing has, batch forms
        mixing a waste and a housing reference, and list parameters or
        queue names that try to reach another queue.  Each is refused as
        a whole, answers a housing reference exactly as a missing one,
        and shows nothing of housing."""
        ref, mine = self.housing_ref, self.waste_ref
        missing = ref[:-1] + "X"
        tok = self.tok["waste"]

        def nothing_of_housing(out, what):
            for word in (b"harry", b"Damp", b"mould", b"survey",
                         ref.encode()):
                self.assertNotIn(word, out, what)

        for c in self.clients():
            for method in ("PATCH", "PUT", "DELETE"):
                for body in (None, {"queue": "waste"}):
                    st1, _, b1 = c(method, "/api/v1/cases/" + ref,
                                   token=tok, body=body)
                    st2, _, b2 = c(method, "/api/v1/cases/" + missing,
                                   token=tok, body=body)
                    what = (c.name, method, body, st1, b1)
                    self.assertIn(st1, (403, 404, 405), what)
                    self.assertEqual((st1, b1), (st2, b2), what)
                    nothing_of_housing(b1, what)
            for path in ("/api/v1/search?q=Damp",
                         "/api/v1/cases?q=Damp",
                         "/api/v1/queues/waste/cases?q=Damp",
                         "/api/v1/queues/waste/cases?queue=housing",
                         "/api/v1/queues/waste/cases?queues=housing",
                         "/api/v1/queues/HOUSING/cases",
                         "/api/v1/queues/waste,housing/cases",
                         "/api/v1/queues/waste%2F..%2Fhousing/cases",
                         "/api/v1/queues/%2A/cases",
                         "/api/v1/queues/%25/cases"):
                st, _, out = c("GET", path, token=tok)
                what = (c.name, path, st, out)
                self.assertIn(st, (200, 400, 403, 404), what)
                nothing_of_housing(out, what)
                if st == 200:
                    listed = json.loads(out)["cases"]
                    self.assertTrue(all(x["queue"] == "waste"
                                        for x in listed), what)
            for method, path, body in (
                    ("GET", "/api/v1/cases?ref=%s&ref=%s" % (mine, ref),
                     None),
                    ("GET", "/api/v1/cases/%s,%s" % (mine, ref), None),
                    ("POST", "/api/v1/cases/batch",
                     {"refs": [mine, ref], "status": "closed"}),
                    ("POST", "/api/v1/batch",
                     [{"ref": mine, "status": "waiting"},
                      {"ref": ref, "status": "closed"}]),
                    ("POST", "/api/v1/cases/%s/status" % mine,
                     {"status": "waiting", "refs": [ref]}),
                    ("POST", "/api/v1/cases/%s/notes" % mine,
                     {"text": "both", "ref": ref})):
                st, _, out = c(method, path, token=tok, body=body)
                what = (c.name, method, path, st, out)
                self.assertIn(st, (400, 403, 404, 405, 422), what)
                nothing_of_housing(out, what)
        # neither case changed: the batch was refused as a whole
        with db(self.d) as conn:
            for r, queue in ((ref, "housing"), (mine, "waste")):
                row = conn.execute("SELECT status, queue, claimed_by FROM"
                                   " cases WHERE ref = ?", (r,)).fetchone()
                self.assertEqual(row, ("new", queue, None))
                n = conn.execute("SELECT count(*) FROM case_notes n JOIN"
                                 " cases c ON c.id = n.case_id WHERE"
                                 " c.ref = ?", (r,)).fetchone()[0]
                self.assertEqual(n, 0)

    def test_deep_json_400(self):
        """SECURITY-TESTS 87: a body nested 100,000 deep is refused before
        json-glib (which recurses) sees it; the daemon goes on."""
        deep = "[" * 100000 + "]" * 100000
        for c in self.clients():
            st, _, body = c("POST", "/api/v1/cases/%s/notes" % self.waste_ref,
                            token=self.tok["waste"], body=deep.encode())
            self.assertEqual(st, 400, (c.name, body))
            self.assertIn(b"too deep", body)
            st, _, _ = c("GET", "/api/v1/queues/waste/cases",
                         token=self.tok["waste"])
            self.assertEqual(st, 200, c.name)

    def test_nul_in_json_string_400(self):
        """A \\u0000 in a JSON string is refused (400): json-glib hands the
        string out cut short at it, so a note "kept\\u0000lost" was stored
        as "kept" and answered 201.  Nothing is stored."""
        def notes():
            with db(self.d) as conn:
                return conn.execute(
                    "SELECT count(*) FROM case_notes n JOIN cases c ON"
                    " c.id = n.case_id WHERE c.ref = ?",
                    (self.waste_ref,)).fetchone()[0]
        before = notes()
        for c in self.clients():
            for body in (b'{"text": "kept\\u0000lost"}',
                         b'{"te\\u0000xt": "kept"}'):
                st, _, resp = c("POST",
                                "/api/v1/cases/%s/notes" % self.waste_ref,
                                token=self.tok["waste"], body=body)
                self.assertEqual(st, 400, (c.name, body, resp))
                self.assertIn(b"u0000", resp)
        self.assertEqual(notes(), before)

    def test_mass_assignment_refused(self):
        ref = self.waste_ref
        for c in self.clients():
            # SECURITY-TESTS 101's own body, on every endpoint that writes
            for path in ("claim", "status", "notes", "reroute", "reply"):
                body = {"department": "housing", "subject_id": "2",
                        "retention_until": "2099-01-01"}
                st, _, out = c("POST", "/api/v1/cases/%s/%s" % (ref, path),
                               token=self.tok["waste"], body=body)
                self.assertEqual(st, 422, (c.name, path, out))
                self.assertIn(json.loads(out)["field"], body)
            for path, body, field in (
                    ("status", {"status": "assigned", "queue": "housing"},
                     "queue"),
                    ("status", {"status": "assigned", "id": "1"}, "id"),
                    ("notes", {"text": "x", "subject_id": "2"}, "subject_id"),
                    ("claim", {"claimed_by": "housing"}, "claimed_by"),
                    ("reply", {"text": "x", "to": "evil@example.org"}, "to"),
                    ("reroute", {"queue": "housing", "status": "closed"},
                     "status")):
                st, _, out = c("POST", "/api/v1/cases/%s/%s" % (ref, path),
                               token=self.tok["waste"], body=body)
                self.assertEqual(st, 422, (c.name, path, out))
                self.assertEqual(json.loads(out)["field"], field)
        with db(self.d) as c:
            row = c.execute("SELECT status, queue, claimed_by FROM cases"
                            " WHERE ref = ?", (ref,)).fetchone()
        self.assertEqual(row, ("new", "waste", None))

    def test_admin_functions_403(self):
        for c in self.clients():
            for method, path in (("GET", "/api/v1/tokens"),
                                 ("POST", "/api/v1/tokens"),
                                 ("POST", "/api/v1/tokens/waste/revoke"),
                                 ("POST", "/api/v1/rules/reload"),
                                 ("GET", "/api/v1/admin/export"),
                                 ("POST", "/api/v1/shred"),
                                 ("POST", "/api/v1/retention/run"),
                                 ("GET", "/api/v1/subjects/1/export"),
                                 ("POST", "/api/v1/subjects/1/erase"),
                                 ("POST", "/api/v1/subjects/1/restrict"),
                                 ("POST", "/api/v1/keys/rotate"),
                                 ("GET", "/api/v1/audit"),
                                 ("GET", "/api/v1/quarantine")):
                st, _, out = c(method, path, token=self.tok["waste"],
                               body={} if method == "POST" else None)
                self.assertEqual(st, 403, (c.name, path, out))
        r = self.d.ctl("tokens", "list", "--json", check=True)
        self.assertEqual(len(json.loads(r.stdout)), 4)

    def test_special_category_withheld(self):
        ref = self.special_ref
        for c in self.clients():
            st, _, body = c("GET", "/api/v1/cases/" + ref,
                            token=self.tok["waste"])
            self.assertEqual(st, 200, body)
            m = json.loads(body)["message_list"][0]
            self.assertTrue(m["special_withheld"])
            self.assertIsNone(m["special"])
            self.assertIn("withheld", m["text"])
            self.assertNotIn(b"disability", body)
            self.assertNotIn(b"letter.pdf", body)
            st, _, out = c("GET", "/api/v1/cases/%s/attachments/%d/0"
                           % (ref, m["id"]), token=self.tok["waste"])
            self.assertEqual(st, 403, out)
            st, _, body = c("GET", "/api/v1/cases/" + ref,
                            token=self.tok["waste-special"])
            self.assertEqual(st, 200, body)
            m = json.loads(body)["message_list"][0]
            self.assertFalse(m["special_withheld"])
            self.assertIn("health", m["special"])
            self.assertIn("I have a disability", m["text"])
            st, _, out = c("GET", "/api/v1/cases/%s/attachments/%d/0"
                           % (ref, m["id"]), token=self.tok["waste-special"])
            self.assertEqual(st, 200)
            self.assertEqual(out, b"%PDF-1.4 doctor letter")

    # ---------------------------------------------------------- changes
    def test_zz_changes_on_own_case(self):
        ref, tok = self.change_ref, self.tok["waste"]
        u, c = Urllib(self.d), Curl(self.d)
        st, _, body = u("POST", "/api/v1/cases/%s/claim" % ref, token=tok)
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["claimed_by"], "waste")
        st, _, body = c("POST", "/api/v1/cases/%s/claim" % ref,
                        token=self.tok["waste-special"], body={})
        self.assertEqual(st, 409, body)
        st, _, body = c("POST", "/api/v1/cases/%s/status" % ref, token=tok,
                        body={"status": "waiting"})
        self.assertEqual(st, 200, body)
        st, _, body = u("POST", "/api/v1/cases/%s/status" % ref, token=tok,
                        body={"status": "closed"})
        self.assertEqual(st, 409, body)
        st, _, body = u("POST", "/api/v1/cases/%s/status" % ref, token=tok,
                        body={"status": "gone"})
        self.assertEqual(st, 422, body)
        st, _, body = c("POST", "/api/v1/cases/%s/notes" % ref, token=tok,
                        body={"text": "Called Rita; new bin on Friday."})
        self.assertEqual(st, 201, body)
        st, _, body = u("POST", "/api/v1/cases/%s/reply" % ref, token=tok,
                        body={"text": "Dear Rita,\nA new bin comes on"
                              " Friday.\n\nWaste team"})
        self.assertEqual(st, 202, body)
        out_id = json.loads(body)["message"]
        st, _, body = u("GET", "/api/v1/cases/" + ref, token=tok)
        case = json.loads(body)
        self.assertEqual(case["status"], "waiting")
        self.assertEqual(case["claimed_by"], "waste")
        self.assertEqual(case["notes"][0]["text"],
                         "Called Rita; new bin on Friday.")
        self.assertEqual(case["notes"][0]["author"], "waste")
        out = [m for m in case["message_list"] if m["id"] == out_id][0]
        self.assertEqual(out["direction"], "out")
        self.assertEqual(out["source"], "api")
        self.assertIn("A new bin comes on Friday", out["text"])
        self.assertIn(ref, out["subject"])
        with db(self.d) as conn:
            note = conn.execute("SELECT text FROM case_notes").fetchone()[0]
            self.assertNotIn(b"Rita", note)
            row = conn.execute("SELECT direction, source, raw FROM messages"
                               " WHERE id = ?", (out_id,)).fetchone()
            self.assertEqual(row[:2], ("out", "api"))
            self.assertNotIn(b"Dear Rita", row[2])
        # re-route: an undeclared queue is refused; then out of sight
        st, _, body = c("POST", "/api/v1/cases/%s/reroute" % ref, token=tok,
                        body={"queue": "nowhere"})
        self.assertEqual(st, 422, body)
        st, _, body = c("POST", "/api/v1/cases/%s/reroute" % ref, token=tok,
                        body={"queue": "housing",
                              "reason": "Tenant of a council flat, bin store"
                                        " belongs to housing"})
        self.assertEqual(st, 200, body)
        st, _, _ = u("GET", "/api/v1/cases/" + ref, token=tok)
        self.assertEqual(st, 404)
        st, _, body = u("GET", "/api/v1/cases/" + ref,
                        token=self.tok["housing"])
        self.assertEqual(st, 200)
        self.assertIsNone(json.loads(body)["claimed_by"])
        with db(self.d) as conn:
            detail = conn.execute(
                "SELECT detail FROM audit WHERE action = 'case.reroute'"
                " AND object = ?", (ref,)).fetchone()[0]
        self.assertIn("reason_words=10", detail)
        self.assertNotIn("Tenant", detail)
        # a kind with a clock (the FOI one of routed()'s [clocks]) gives
        # the case its due date, from receipt; a kind without one clears it
        for kind, has_due in (("foi-request", True), ("enquiry", False)):
            st, _, body = c("POST", "/api/v1/cases/%s/reroute" % ref,
                            token=self.tok["housing"],
                            body={"kind": kind, "reason": "Recognised"})
            self.assertEqual(st, 200, body)
            with db(self.d) as conn:
                due = conn.execute("SELECT due_at FROM cases WHERE ref = ?",
                                   (ref,)).fetchone()[0]
                detail = conn.execute(
                    "SELECT detail FROM audit WHERE action = 'case.reroute'"
                    " AND object = ? ORDER BY id DESC", (ref,)).fetchone()[0]
            self.assertEqual(due is not None, has_due, (kind, due))
            self.assertRegex(detail, r"->%s due=[-0-9a-z]+->[-0-9a-z]+"
                             r" reason_words=1$" % kind)
        self.assertEqual(self.d.ctl("audit", "verify").returncode, 0)

    # ------------------------------------------------------------ audit
    def test_reads_audited_with_token_name(self):
        tok = self.tok["waste"]
        u = Urllib(self.d)
        u("GET", "/api/v1/queues/waste/cases", token=tok)
        st, _, body = u("GET", "/api/v1/cases/" + self.waste_ref, token=tok)
        att = json.loads(body)["message_list"][0]["attachments"][0]
        u("GET", att["download"], token=tok)
        with db(self.d) as c:
            rows = c.execute("SELECT actor, action, object, detail, outcome"
                             " FROM audit WHERE actor LIKE 'api:%'").fetchall()
            cli = c.execute("SELECT action, object FROM audit WHERE actor"
                            " LIKE 'cli:%' AND action LIKE 'token.%'"
                            ).fetchall()
        actions = {(a, act, o) for a, act, o, _, _ in rows}
        self.assertIn(("api:waste", "cases.list", "queue:waste"), actions)
        self.assertIn(("api:waste", "case.read", self.waste_ref), actions)
        self.assertIn(("api:waste", "attachment.read", self.waste_ref),
                      actions)
        self.assertIn(("token.create", "token:waste"), cli)
        self.assertIn(("token.revoke", "token:gone"), cli)
        for a, act, o, detail, outcome in rows:
            for personal in ("@", "wanda", "Missed", "wheelie", "fot"):
                self.assertNotIn(personal, detail + o)
        self.assertEqual(self.d.ctl("audit", "verify").returncode, 0)


class Revocation(unittest.TestCase):
    """§102: a token revoked while the daemon runs is refused at once
    (the spec allows 1 s) by every endpoint, for both clients; a token in
    the query string is refused by both, even beside a good header.  Its
    own daemon: the 401s count towards the per-address limit."""

    def test_revoked_while_running_401_within_1s(self):
        d = http_daemon()
        with d:
            tok = make_token(d, "general", "general")
            u, c = Urllib(d), Curl(d)
            for client in (u, c):
                st, _, body = client("GET", "/api/v1/queues/general/cases",
                                     token=tok)
                self.assertEqual(st, 200, (client.name, body))
                st, _, body = client("GET", "/api/v1/queues/general/cases"
                                     "?access_token=" + tok, token=tok)
                self.assertEqual(st, 400, (client.name, body))
                self.assertNotIn(tok.encode(), body)
            # no grace period: the first request after the revoke command
            # returns is refused (the token is looked up on every request)
            d.ctl("tokens", "revoke", "general", check=True)
            for client in (u, c):
                for method, path, body in (
                        ("GET", "/api/v1/queues/general/cases", None),
                        ("GET", "/api/v1/cases/ESC-2026-000001", None),
                        ("POST", "/api/v1/cases/ESC-2026-000001/claim", {})):
                    st, h, out = client(method, path, token=tok, body=body)
                    self.assertEqual(st, 401, (client.name, path, out))
                    self.assertIn("Bearer", h["www-authenticate"])
            self.assertIn("event=api-auth-refused reason=revoked", d.log())
            self.assertNotIn(tok, d.log())


    def test_expired_401_within_1s(self):
        """§102: a token past its expiry is refused from its first second,
        by both clients, audited as expired; --expires is checked; a new
        token expires after 365 days by default."""
        d = http_daemon()
        with d:
            # refused at creation: the past, nonsense, a bad number
            for bad in ("2020-01-01", "yesterday", "0", "4000d"):
                r = d.ctl("tokens", "create", "--name", "x", "--queue",
                          "general", "--expires", bad)
                self.assertEqual(r.returncode, 64, (bad, r.stderr))
            tok = make_token(d, "general", "general")
            until = time.time() + 3
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
            r = d.ctl("tokens", "create", "--name", "short", "--queue",
                      "general", "--expires", when, check=True)
            short = r.stdout.strip()
            self.assertIn("expires " + when, r.stderr)
            listed = {t["name"]: t for t in json.loads(
                d.ctl("tokens", "list", "--json", check=True).stdout)}
            self.assertEqual(listed["short"]["expires"], when)
            year = listed["general"]["expires"]
            self.assertTrue(year.startswith(time.strftime(
                "%Y-%m-%d", time.gmtime(time.time() + 365 * 86400))), year)
            u, c = Urllib(d), Curl(d)
            for client in (u, c):
                st, _, body = client("GET", "/api/v1/queues/general/cases",
                                     token=short)
                self.assertEqual(st, 200, (client.name, body))
            # the token's expiry is a whole second: 1 s after it at most
            time.sleep(max(0, int(until) - time.time()) + 1.0)
            for client in (u, c):
                st, h, out = client("GET", "/api/v1/queues/general/cases",
                                    token=short)
                self.assertEqual(st, 401, (client.name, out))
                self.assertIn("Bearer", h["www-authenticate"])
                st, _, _ = client("GET", "/api/v1/queues/general/cases",
                                  token=tok)
                self.assertEqual(st, 200, client.name)
            self.assertIn("event=api-auth-refused reason=expired", d.log())
            with db(d) as con:
                rows = con.execute("SELECT object, detail FROM audit WHERE"
                                   " action = 'api.auth'").fetchall()
            self.assertIn(("token:short", "reason=expired"), rows)


class RateLimit(unittest.TestCase):
    def test_auth_failures_429(self):
        d = http_daemon()
        with d:
            good = make_token(d, "general", "general")
            u, c = Urllib(d), Curl(d)
            codes = []
            for i in range(11):
                client = (u, c)[i % 2]
                codes.append(client("GET", "/api/v1/queues/general/cases",
                                    token="itk_wrong%d" % i)[0])
            self.assertEqual(codes, [401] * 11)
            for client in (u, c):
                st, h, _ = client("GET", "/api/v1/queues/general/cases",
                                  token=good)
                self.assertEqual(st, 429)
                self.assertEqual(h["retry-after"], "60")
            self.assertIn("event=api-auth-refused", d.log())
            self.assertNotIn(good, d.log())


if __name__ == "__main__":
    unittest.main()
