"""test_erasure.py - erasure with crypto-shredding (issue 9).

Alice writes twice (once with an attachment), Bob once, and Bob also
writes into Alice's first case (he is made a participant of it first, as a
department would when a neighbour joins a complaint).  A naive backup is
taken: the database and its -wal copied while intaked runs.  Then
`intakectl subject erase alice@example.org --reason request`.

Afterwards:
  - the live database, -wal and -shm hold none of Alice's plaintext needles
    (address, name, unique words of her messages, the attachment bytes and
    their base64) and none of her ciphertexts as they were in the backup
    (secure_delete zeroed them, the WAL was truncated);
  - the backup, opened by intakectl with the current master key and the
    current key vault, shows nothing of Alice anywhere (cases list, cases
    show of every case, subject export), while Bob's words still open --
    the control that the keys do work on the copy;
  - the vault no longer holds her secret and its WAL is empty;
  - `subject export ID` shows only the erasure record; by address there is
    no one; the audit records the erasure (reason category, who) with no
    personal data, and the chain verifies;
  - Bob's cases and messages, including his message in Alice's case, are
    untouched; the case Alice started stays, with counts only;
  - a bad reason (free text) is refused with EX_USAGE;
  - a database restored from the backup has Alice's rows removed at the
    next start ("shredded"), since her vault secret is gone.
"""

import base64
import json
import os
import shutil
import sqlite3
import time
import unittest

from harness import Intaked, message

ALICE = "alice.quillfeather@example.org"
ALICE_NAME = "Alice Quillfeather"
ALICE_WORDS = "zanzibarquokka marmalade-lighthouse"
ALICE_WORDS2 = "periwinkle snorkel trombone"
ALICE_PIXELS = b"\x89PNG-ALICE-PIXELS-7731-QUOKKA"
BOB = "bob.brambleton@example.org"
BOB_WORDS = "Bob writes about the brambleton hedge"


def send(d, data, sender, rcpt="enquiries@council.example"):
    with d.smtp() as s:
        s.sendmail(sender, [rcpt], data)


def attached(msgid):
    return (("From: %s <%s>\r\n" % (ALICE_NAME, ALICE)).encode()
            + b"To: enquiries@council.example\r\nSubject: Photo of the"
            b" quokka sighting\r\nMessage-ID: " + msgid.encode()
            + b"\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\n"
            + ALICE_WORDS2.encode() + b" in my second message.\r\n"
            b"--b\r\nContent-Type: image/png\r\n"
            b"Content-Disposition: attachment; filename=quokka.png\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(ALICE_PIXELS) + b"\r\n--b--\r\n")


def needles():
    return [ALICE.encode(), ALICE.split("@")[0].encode(), ALICE_NAME.encode(),
            b"zanzibarquokka", b"marmalade-lighthouse", b"periwinkle snorkel",
            ALICE_PIXELS, base64.b64encode(ALICE_PIXELS)]


def files_of(db):
    return [p for p in (db, db + "-wal", db + "-shm") if os.path.exists(p)]


def grep(paths, pats):
    hits = []
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        for n in pats:
            if n in data:
                hits.append((os.path.basename(p), n[:40]))
    return hits


class Erasure(unittest.TestCase):
    def test_erase_leaves_nothing_readable(self):
        d = Intaked()
        db = os.path.join(d.dir, "var", "intake.db")
        vault = os.path.join(d.dir, "var", "intake-vault.db")
        backup = os.path.join(d.dir, "backup")
        os.makedirs(backup)
        with d:
            send(d, message("Grit bin at Quillfeather Close",
                            "%s <%s>" % (ALICE_NAME, ALICE),
                            "Hello, %s in my first message.\r\n"
                            % ALICE_WORDS, msgid="<q1@example.org>"), ALICE)
            send(d, attached("<q2@example.org>"), ALICE)
            send(d, message("Hedge on Bramble Row", BOB,
                            BOB_WORDS + ".\r\n"), BOB)
            cases = d.wait_cases(3)
            self.assertTrue(os.path.exists(vault))
            alice_id = int(json.loads(d.ctl("subjects", "find", ALICE,
                                            "--json", check=True).stdout)
                           ["id"])
            bob_id = int(json.loads(d.ctl("subjects", "find", BOB, "--json",
                                          check=True).stdout)["id"])
            first = [c for c in cases
                     if c["subject"] == "Grit bin at Quillfeather Close"][0]
            # Bob joins Alice's case and writes into it
            con = sqlite3.connect(db, timeout=10)
            con.execute("INSERT INTO case_participants (case_id, subject_id,"
                        " role, added_at) SELECT id, ?, 'correspondent', 0"
                        " FROM cases WHERE ref = ?", (bob_id, first["ref"]))
            con.commit()
            con.close()
            send(d, message("Re: %s" % first["ref"], BOB,
                            "Bob adds: the bin blocks my drive too.\r\n"),
                 BOB)
            deadline = time.time() + 60
            while time.time() < deadline:
                show = json.loads(d.ctl("cases", "show", first["ref"],
                                        "--json", check=True).stdout)
                if len(show["message_list"]) == 2:
                    break
                time.sleep(0.1)
            self.assertEqual(len(show["message_list"]), 2)

            # a naive backup while the daemon runs: database and WAL
            for suffix in ("", "-wal"):
                if os.path.exists(db + suffix):
                    shutil.copy(db + suffix,
                                os.path.join(backup, "intake.db" + suffix))
            # her ciphertexts as they were
            con = sqlite3.connect("file:%s?mode=ro"
                                  % os.path.join(backup, "intake.db"),
                                  uri=True)
            blobs = []
            for sql in ("SELECT address, name, data_key, address_index FROM"
                        " subjects WHERE id = ?",
                        "SELECT raw, text, header_from, header_subject,"
                        " envelope FROM messages WHERE subject_id = ?",
                        "SELECT meta, content FROM attachments WHERE"
                        " subject_id = ?"):
                for row in con.execute(sql, (alice_id,)):
                    blobs += [bytes(b)[-32:] for b in row if b]
            con.close()
            self.assertGreater(len(blobs), 10)

            r = d.ctl("subject", "erase", ALICE, "--reason",
                      "she asked nicely")
            self.assertEqual(r.returncode, 64, r.stderr)
            r = d.ctl("subject", "erase", ALICE, "--reason", "request",
                      check=True)
            self.assertIn("erased", r.stdout)
            self.assertIn("vault secret destroyed", r.stdout)
            self.assertNotIn(ALICE, r.stdout + r.stderr)

            # the live files: no plaintext, no old ciphertext
            live = files_of(db)
            self.assertEqual(grep(live, needles()), [])
            self.assertEqual(grep(live, blobs), [])
            self.assertEqual(os.path.getsize(db + "-wal"), 0)
            # the vault forgot her, and its WAL is empty
            vcon = sqlite3.connect("file:%s?mode=ro" % vault, uri=True)
            self.assertEqual(vcon.execute(
                "SELECT count(*) FROM secrets WHERE subject_id = ?",
                (alice_id,)).fetchone()[0], 0)
            self.assertEqual(vcon.execute(
                "SELECT count(*) FROM secrets WHERE subject_id = ?",
                (bob_id,)).fetchone()[0], 1)
            vcon.close()
            self.assertEqual(os.path.getsize(vault + "-wal"), 0)

            # an access request afterwards: the erasure record only
            doc = json.loads(d.ctl("subject", "export", str(alice_id),
                                   check=True).stdout)
            self.assertEqual(doc["cases"], [])
            self.assertEqual([e["action"] for e in doc["audit"]],
                             ["subject.erase"])
            self.assertIn("reason=request", doc["audit"][0]["detail"])
            self.assertNotIn("address", doc["subject"])
            self.assertEqual(d.ctl("subject", "export", ALICE).returncode, 66)
            self.assertEqual(d.ctl("subject", "erase", str(alice_id),
                                   "--reason", "request").returncode, 66)

            # Bob untouched, the case kept for statistics
            after = {c["ref"]: c for c in d.cases()}
            self.assertIn(first["ref"], after)
            self.assertEqual(len(after), 3)
            show = json.loads(d.ctl("cases", "show", first["ref"], "--json",
                                    check=True).stdout)
            self.assertEqual(len(show["message_list"]), 1)
            self.assertIn(BOB, json.dumps(show))
            self.assertNotIn(ALICE, json.dumps(show))
            bob = json.loads(d.ctl("subject", "export", BOB,
                                   check=True).stdout)
            self.assertEqual(len(bob["cases"]), 2)
            self.assertIn(BOB_WORDS, json.dumps(bob))
            self.assertIn("verified", d.ctl("audit", "verify",
                                            check=True).stdout)
            # the audit holds no personal data about the erasure
            con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
            rows = con.execute("SELECT actor, action, object, detail FROM"
                               " audit").fetchall()
            con.close()
            self.assertNotIn(ALICE, repr(rows))
            self.assertIn("subject.erase", [r[1] for r in rows])

            # the backup, read with today's keys and vault
            d2 = dict(d.sections)
            conf2 = os.path.join(d.dir, "conf", "backup.conf")
            with open(conf2, "w") as f:
                for name, kv in d2.items():
                    f.write("[%s]\n" % name)
                    for k, v in kv.items():
                        if name == "store" and k == "database":
                            v = os.path.join(backup, "intake.db")
                        f.write("%s = %s\n" % (k, v))
                    if name == "store":
                        f.write("vault = %s\n" % vault)
                    f.write("\n")
            os.chmod(conf2, 0o644)
            out = []
            import subprocess
            from harness import INTAKECTL

            def ctl2(*args):
                r = subprocess.run([INTAKECTL, "-c", conf2] + list(args),
                                   capture_output=True, env=d.env())
                out.append(r.stdout + r.stderr)
                return r
            r = ctl2("cases", "list", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            for c in json.loads(r.stdout):
                ctl2("cases", "show", c["ref"], "--json")
            ctl2("subject", "export", str(alice_id))
            ctl2("subject", "export", ALICE)
            ctl2("subjects", "find", ALICE)
            seen = b"".join(out)
            for n in needles():
                self.assertNotIn(n, seen)
            # the control: Bob's words open from the same copy
            self.assertIn(BOB_WORDS.encode(), seen)

        # a database restored from that backup: her rows go at start
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        for suffix in ("", "-wal"):
            src = os.path.join(backup, "intake.db" + suffix)
            if os.path.exists(src):
                shutil.copy(src, db + suffix)
        with d:
            deadline = time.time() + 60
            while ("event=erase-resume" not in d.log()
                   and time.time() < deadline):
                time.sleep(0.05)
            self.assertIn("event=erase-resume subjects=1", d.log())
            self.assertEqual(d.ctl("subjects", "find", ALICE).returncode, 66)
            self.assertEqual(d.ctl("subjects", "find", BOB).returncode, 0)
            self.assertEqual(grep(files_of(db), blobs), [])


if __name__ == "__main__":
    unittest.main()
