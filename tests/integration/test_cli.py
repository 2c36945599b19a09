"""test_cli.py - intaked's refusals at start and intakectl's commands.

Covers: the master key refused when missing, of the wrong size, or readable
by group/other, with a message naming `intakectl keygen` and exit 78
(SECURITY-TESTS 97, 104); keygen never overwrites and creates mode 0600;
a limit out of range names file, section, key and range; a config file
writable by others is refused; a database newer than the binary is
refused; `cases list` / `cases show` in text and JSON, an unknown
reference (exit 66); the key and database files are 0600.
"""

import json
import os
import sqlite3
import stat
import subprocess
import unittest

from harness import INTAKED, Intaked, message


def run_intaked(d, timeout=60):
    """Start intaked expecting it to refuse; returns (code, stderr)."""
    r = subprocess.run([INTAKED, "-c", d.conf], capture_output=True,
                       text=True, timeout=timeout, env=d.env())
    return r.returncode, r.stderr


class StartRefusals(unittest.TestCase):
    def test_missing_key(self):
        d = Intaked()
        os.unlink(os.path.join(d.dir, "var", "master.key"))
        code, err = run_intaked(d)
        self.assertEqual(code, 78, err)
        self.assertIn("intakectl keygen", err)
        self.assertFalse(os.path.exists(os.path.join(d.dir, "var", "intake.db")))

    def test_key_readable_by_others(self):
        d = Intaked()
        key = os.path.join(d.dir, "var", "master.key")
        for mode in (0o640, 0o604, 0o644):
            os.chmod(key, mode)
            code, err = run_intaked(d)
            self.assertEqual(code, 78, err)
            self.assertIn("chmod 600", err)

    def test_key_wrong_size(self):
        d = Intaked()
        key = os.path.join(d.dir, "var", "master.key")
        with open(key, "ab") as f:
            f.write(b"x")
        code, err = run_intaked(d)
        self.assertEqual(code, 78, err)
        self.assertIn("33 bytes, expected 32", err)

    def test_keygen_never_overwrites(self):
        d = Intaked()
        key = os.path.join(d.dir, "var", "master.key")
        st = os.stat(key)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        with open(key, "rb") as f:
            before = f.read()
        r = d.ctl("keygen")
        self.assertEqual(r.returncode, 73, r.stderr)
        self.assertIn("already exists", r.stderr)
        with open(key, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_limit_out_of_range(self):
        d = Intaked()
        d.configure("smtp", "max_message_size", "100")
        code, err = run_intaked(d)
        self.assertEqual(code, 78, err)
        self.assertIn(d.conf, err)
        self.assertIn("[smtp] max_message_size = 100", err)
        self.assertIn("65536", err)

    def test_bad_policy_word(self):
        d = Intaked()
        d.configure("smtp", "bare_newline", "maybe")
        code, err = run_intaked(d)
        self.assertEqual(code, 78, err)
        self.assertIn("bare_newline", err)

    def test_config_writable_by_others(self):
        d = Intaked()
        os.chmod(d.conf, 0o666)
        code, err = run_intaked(d)
        self.assertEqual(code, 78, err)
        self.assertIn("writable by group or other", err)

    def test_database_from_the_future(self):
        d = Intaked()
        d.start()
        d.stop()
        db = os.path.join(d.dir, "var", "intake.db")
        self.assertEqual(stat.S_IMODE(os.stat(db).st_mode), 0o600)
        con = sqlite3.connect(db)
        con.execute("PRAGMA user_version=99")
        con.commit()
        con.close()
        code, err = run_intaked(d)
        self.assertNotEqual(code, 0)
        self.assertIn("newer than this intake", err)
        r = d.ctl("cases", "list")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("schema version 99", r.stderr)


class Cases(unittest.TestCase):
    def test_list_and_show(self):
        with Intaked() as d:
            with d.smtp() as s:
                s.sendmail("resident@example.org", ["complaints@council.example"],
                           message(subject="Streetlight out on Mill Lane",
                                   sender='"A Resident" <resident@example.org>',
                                   msgid="<cli-1@example.org>"))
            cases = d.wait_cases(1)
            c = cases[0]
            self.assertEqual(c["queue"], "general")
            self.assertEqual(c["status"], "new")
            self.assertEqual(c["from"], "resident@example.org")
            self.assertEqual(c["from_name"], "A Resident")
            self.assertEqual(c["subject"], "Streetlight out on Mill Lane")
            self.assertEqual(c["message_id"], "cli-1@example.org")
            self.assertRegex(c["ref"], r"^ESC-\d{4}-\d{6}-[A-Z2-9]$")

            r = d.ctl("cases", "list", check=True)
            self.assertIn(c["ref"], r.stdout)
            self.assertIn("Streetlight out on Mill Lane", r.stdout)

            r = d.ctl("cases", "show", c["ref"], check=True)
            self.assertIn("Case:      " + c["ref"], r.stdout)
            self.assertIn("A Resident <resident@example.org>", r.stdout)
            self.assertIn("Message-ID: cli-1@example.org", r.stdout)
            self.assertIn("via smtp", r.stdout)

            r = d.ctl("cases", "show", c["ref"], "--json", check=True)
            j = json.loads(r.stdout)
            self.assertEqual(j["ref"], c["ref"])
            self.assertEqual(len(j["message_list"]), 1)
            self.assertEqual(j["message_list"][0]["arrivals"], 1)

            r = d.ctl("cases", "show", "ESC-2026-999999-A")
            self.assertEqual(r.returncode, 66)
            self.assertIn("no case", r.stderr)

    def test_same_bytes_twice_one_case(self):
        """The same message to two mailboxes, twice: one case, two
        arrivals (the store records it once)."""
        with Intaked() as d:
            raw = message(subject="Duplicate", msgid="<dup-1@example.org>")
            for _ in range(2):
                with d.smtp() as s:
                    s.sendmail("citizen@example.org", ["enquiries@council.example"], raw)
            deadline_cases = d.wait_cases(1)
            self.assertEqual(len(deadline_cases), 1)
            j = json.loads(d.ctl("cases", "show", deadline_cases[0]["ref"],
                                 "--json", check=True).stdout)
            self.assertEqual(j["message_list"][0]["arrivals"], 2)

    def test_nothing_readable_at_rest(self):
        """Subjects, addresses and bodies are sealed in the database."""
        with Intaked() as d:
            with d.smtp() as s:
                s.sendmail("zebra.crossing@example.org", ["enquiries@council.example"],
                           message(subject="Quokka sighting report",
                                   sender="zebra.crossing@example.org",
                                   body="The marmalade-otter was seen.\r\n"))
            d.wait_cases(1)
        blob = b""
        for name in os.listdir(os.path.join(d.dir, "var")):
            with open(os.path.join(d.dir, "var", name), "rb") as f:
                blob += f.read()
        for needle in (b"Quokka sighting", b"zebra.crossing", b"marmalade-otter"):
            self.assertNotIn(needle, blob)

    def test_usage(self):
        d = Intaked()
        r = d.ctl()
        self.assertEqual(r.returncode, 64)
        r = d.ctl("frobnicate")
        self.assertEqual(r.returncode, 64)
        r = d.ctl("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("cases list", r.stdout)


if __name__ == "__main__":
    unittest.main()
