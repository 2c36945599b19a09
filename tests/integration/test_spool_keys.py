"""test_spool_keys.py - the spool's key rotates and old keys are destroyed.

Covers SECURITY-TESTS 98 ("the intake key rotates daily, and no staging
ciphertext stays past the window"; issue 4, §K) end to end: a real intaked
with `[store] spool_key_lifetime = 2` (seconds instead of the day it ships
with) keeps a quarantined message in its spool; the rotation re-seals that
message under the new key, the old key's secret disappears from every file
of the key vault, and `intakectl quarantine show` (another process) still
reads the message.  Mail keeps being filed meanwhile.
"""

import json
import os
import random
import sqlite3
import time
import unittest

from harness import Intaked, message, wait_for


def query(path, sql, args=()):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def files_holding(paths, needle):
    hits = 0
    for p in paths:
        try:
            with open(p, "rb") as f:
                if needle in f.read():
                    hits += 1
        except FileNotFoundError:
            pass
    return hits


class SpoolKeys(unittest.TestCase):
    def test_quarantined_message_outlives_its_key(self):
        marker = "POISON-%s" % os.urandom(4).hex()
        with Intaked(store={"spool_key_lifetime": 2},
                     env={"INTAKE_FAULT_PARSE_CRASH": marker}) as d:
            var = os.path.join(d.dir, "var")
            db = os.path.join(var, "intake.db")
            vault = os.path.join(var, "intake-vault.db")
            vault_files = [vault, vault + "-wal"]
            with d.smtp() as s:
                s.sendmail("b@example.org", ["foi@council.example"],
                           message(subject="poison", body=marker + "\r\n",
                                   msgid="<bad-1@example.org>"))
                s.sendmail("a@example.org", ["enquiries@council.example"],
                           message(subject="fine", msgid="<ok-1@example.org>"))

            def quarantined():
                r = d.ctl("quarantine", "list", "--json", check=True)
                return json.loads(r.stdout)
            q = wait_for(quarantined, 60, "the message quarantined", d.log)
            qid = q[0]["id"]
            (first_key,), = query(db, "SELECT key_id FROM spool WHERE id = ?",
                                  (qid,))
            self.assertGreater(first_key, 0)
            (secret,), = query(vault, "SELECT secret FROM spool_secrets"
                                      " WHERE id = ?", (first_key,))
            self.assertEqual(len(secret), 32)
            self.assertGreaterEqual(files_holding(vault_files, secret), 1)

            # re-sealed under a newer key, and the old secret destroyed
            def moved():
                (k,), = query(db, "SELECT key_id FROM spool WHERE id = ?",
                              (qid,))
                return k if k != first_key else None
            new_key = wait_for(moved, 30, "the row re-sealed", d.log)
            self.assertGreater(new_key, first_key)
            wait_for(lambda: not query(
                vault, "SELECT 1 FROM spool_secrets WHERE id = ?",
                (first_key,)), 30, "the old key destroyed", d.log)
            self.assertEqual(files_holding(vault_files, secret), 0)
            self.assertIn("event=spool-key-destroyed key=%d" % first_key,
                          d.log())

            # still readable, by another process, under the new key
            r = d.ctl("quarantine", "show", str(qid), "--raw", check=True)
            self.assertIn(marker, r.stdout)
            # and what an admin sees: the key it is under, not the old one
            r = d.ctl("spool", "keys", "--json", check=True)
            listed = {k["id"]: k for k in json.loads(r.stdout)}
            self.assertNotIn(first_key, listed)
            (now_key,), = query(db, "SELECT key_id FROM spool WHERE id = ?",
                                (qid,))
            self.assertIn(now_key, listed)
            self.assertGreaterEqual(listed[now_key]["rows"], 1)
            self.assertTrue(listed[now_key]["in_vault"])
            self.assertRegex(listed[now_key]["made"], r"^\d{4}-\d\d-\d\d")
            r = d.ctl("spool", "keys", check=True)
            self.assertIn("KEY", r.stdout)
            self.assertNotIn("NOT IN THE KEY VAULT", r.stdout)
            # and the rest of the mail was filed
            self.assertEqual(len(d.wait_cases(1)), 1)
            # keys in the vault: the ones still in use, and the current one
            used = {k for (k,) in query(db, "SELECT DISTINCT key_id FROM spool")}
            kept = {k for (k,) in query(vault, "SELECT id FROM spool_secrets")}
            self.assertTrue(used <= kept)
            self.assertLessEqual(len(kept - used), 2)
            self.assertNotIn(marker, d.log())


    def test_kills_during_rotation(self):
        """SIGKILL at random moments while the rotation re-seals and
        destroys keys (a 1-second period, so every run rotates): after
        each restart every waiting message still opens, every key a spool
        row names is in the vault, and the mail sent between the kills is
        filed once each."""
        marker = "POISON-%s" % os.urandom(4).hex()
        rnd = random.Random(20261127)
        d = Intaked(store={"spool_key_lifetime": 1},
                    env={"INTAKE_FAULT_PARSE_CRASH": marker})
        var = os.path.join(d.dir, "var")
        db = os.path.join(var, "intake.db")
        vault = os.path.join(var, "intake-vault.db")
        sent = 0
        try:
            d.start()
            with d.smtp() as s:
                for i in range(3):
                    s.sendmail("b@example.org", ["foi@council.example"],
                               message(subject="poison %d" % i,
                                       body=marker + "\r\n",
                                       msgid="<bad-%d@example.org>" % i))
            wait_for(lambda: len(json.loads(d.ctl(
                "quarantine", "list", "--json", check=True).stdout)) == 3,
                60, "three messages quarantined", d.log)
            for round_ in range(6):
                with d.smtp() as s:
                    for i in range(20):
                        s.sendmail("a@example.org",
                                   ["enquiries@council.example"],
                                   message(subject="r%d m%d" % (round_, i)))
                        sent += 1
                time.sleep(rnd.uniform(0.3, 2.5))
                d.kill()
                used = {k for (k,) in query(
                    db, "SELECT DISTINCT key_id FROM spool")}
                kept = {k for (k,) in query(vault,
                                            "SELECT id FROM spool_secrets")}
                self.assertTrue(used <= kept | {0},
                                "round %d: a spool row's key is gone: %r"
                                " not in %r" % (round_, used, kept))
                d.start()
            cases = d.wait_cases(sent, timeout=120)
            self.assertEqual(len(cases), sent)
            q = json.loads(d.ctl("quarantine", "list", "--json",
                                 check=True).stdout)
            self.assertEqual(len(q), 3)
            for e in q:
                r = d.ctl("quarantine", "show", str(e["id"]), "--raw",
                          check=True)
                self.assertIn(marker, r.stdout)
            self.assertGreaterEqual(d.log().count("event=spool-key-rotation"), 1)
        finally:
            d.stop()
            d.check_sanitizers()


if __name__ == "__main__":
    unittest.main()
