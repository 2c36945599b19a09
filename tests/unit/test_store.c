/*
 * test_store.c - the key file, record sealing, case references and the
 * SQLite store (real files in a temporary directory).
 *
 * Covers: master key refusals (missing, wrong size, group/other readable),
 * keygen never overwriting; seal/open round trip, tampering and moved
 * ciphertexts failing (SECURITY-TESTS 90-92); blind indexes; references'
 * check character against every single-digit error and adjacent
 * transposition; store open with WAL + synchronous=FULL, refusal of a
 * newer schema; spool submit with group commit, one batch of 2 MiB (the
 * WAL written in runs); ingest into a case with
 * dedupe of identical bytes; tampered spool rows reported, not fatal; the
 * spool key's rotation and destruction (SECURITY-TESTS 98).
 */
#include <check.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "store/store.h"

static char *tmpdir;

static void
setup (void)
{
  tmpdir = g_dir_make_tmp ("intake-store-XXXXXX", NULL);
  ck_assert_ptr_nonnull (tmpdir);
}

static void
teardown (void)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);
  ck_assert_int_eq (system (cmd), 0);
  g_clear_pointer (&tmpdir, g_free);
}

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static store_keys *
make_keys (void)
{
  g_autofree char *path = tmp_path ("master.key");
  GError *error = NULL;
  store_keys *keys;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    ck_assert (store_keys_generate (path, &error));
  keys = store_keys_load (path, &error);
  ck_assert_msg (keys != NULL, "%s", error ? error->message : "");
  return keys;
}

/* ------------------------------------------------------------- keys */

START_TEST (test_key_missing)
{
  g_autofree char *path = tmp_path ("none.key");
  g_autoptr (GError) error = NULL;

  ck_assert_ptr_null (store_keys_load (path, &error));
  ck_assert (g_error_matches (error, STORE_KEYS_ERROR,
                              STORE_KEYS_ERROR_MISSING));
  ck_assert_ptr_nonnull (strstr (error->message, "intakectl keygen"));
}
END_TEST

START_TEST (test_key_mode_and_size)
{
  g_autofree char *path = tmp_path ("master.key");
  g_autoptr (GError) error = NULL;
  struct stat st;

  ck_assert (store_keys_generate (path, NULL));
  ck_assert_int_eq (stat (path, &st), 0);
  ck_assert_int_eq (st.st_mode & 0777, 0600);
  ck_assert_int_eq (st.st_size, 32);

  /* keygen never overwrites */
  ck_assert (!store_keys_generate (path, &error));
  ck_assert (g_error_matches (error, STORE_KEYS_ERROR,
                              STORE_KEYS_ERROR_EXISTS));
  g_clear_error (&error);

  ck_assert_int_eq (chmod (path, 0640), 0);
  ck_assert_ptr_null (store_keys_load (path, &error));
  ck_assert (g_error_matches (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_MODE));
  g_clear_error (&error);
  ck_assert_int_eq (chmod (path, 0604), 0);
  ck_assert_ptr_null (store_keys_load (path, &error));
  ck_assert (g_error_matches (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_MODE));
  g_clear_error (&error);

  ck_assert_int_eq (chmod (path, 0600), 0);
  ck_assert_int_eq (truncate (path, 31), 0);
  ck_assert_ptr_null (store_keys_load (path, &error));
  ck_assert (g_error_matches (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_SIZE));
}
END_TEST

START_TEST (test_seal_roundtrip_and_tamper)
{
  store_keys *keys = make_keys ();
  const guint8 *k = store_keys_get (keys, STORE_KEY_SPOOL);
  g_autoptr (GBytes) aad = store_keys_aad ("t", "c", 7, 9, 1);
  g_autoptr (GBytes) other = store_keys_aad ("t", "c", 8, 9, 1);
  const char plain[] = "marker-plaintext\0with NUL";
  g_autoptr (GBytes) sealed = store_keys_seal (k, aad, plain, sizeof plain);
  gsize n;
  const guint8 *p = g_bytes_get_data (sealed, &n);
  g_autoptr (GBytes) back = store_keys_open (k, aad, p, n, NULL);

  ck_assert_ptr_nonnull (back);
  ck_assert_uint_eq (g_bytes_get_size (back), sizeof plain);
  ck_assert_int_eq (memcmp (g_bytes_get_data (back, NULL), plain,
                            sizeof plain), 0);
  /* the plaintext is not in the ciphertext */
  ck_assert_ptr_null (memmem (p, n, "marker", 6));

  /* moved to another row: fails */
  ck_assert_ptr_null (store_keys_open (k, other, p, n, NULL));
  /* wrong key: fails */
  ck_assert_ptr_null (store_keys_open (store_keys_get (keys, STORE_KEY_WRAP),
                                       aad, p, n, NULL));
  /* every single bit flipped anywhere (nonce, ciphertext, tag): fails */
  guint8 *copy = g_memdup2 (p, n);
  for (gsize i = 0; i < n; i++)
    for (int bit = 0; bit < 8; bit += 3)
      {
        g_autoptr (GError) error = NULL;
        copy[i] ^= (guint8) (1 << bit);
        ck_assert_ptr_null (store_keys_open (k, aad, copy, n, &error));
        ck_assert (g_error_matches (error, STORE_KEYS_ERROR,
                                    STORE_KEYS_ERROR_CRYPTO));
        copy[i] ^= (guint8) (1 << bit);
      }
  /* truncated */
  ck_assert_ptr_null (store_keys_open (k, aad, copy, 10, NULL));
  g_free (copy);
  store_keys_free (&keys);
  ck_assert_ptr_null (keys);
}
END_TEST

START_TEST (test_seal_nonces_distinct)
{
  store_keys *keys = make_keys ();
  const guint8 *k = store_keys_get (keys, STORE_KEY_SPOOL);
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_bytes_hash,
                                                      g_bytes_equal,
                                                      (GDestroyNotify)
                                                          g_bytes_unref,
                                                      NULL);
  /* SECURITY-TESTS 90 at a size a unit test can afford: the same value
   * sealed 20,000 times gives 20,000 distinct nonces and ciphertexts.  */
  for (int i = 0; i < 20000; i++)
    {
      GBytes *s = store_keys_seal (k, NULL, "same", 4);
      GBytes *nonce = g_bytes_new_from_bytes (s, 0, 24);
      ck_assert (!g_hash_table_contains (seen, nonce));
      g_hash_table_add (seen, nonce);
      g_bytes_unref (s);
    }
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_wrap_unwrap)
{
  store_keys *keys = make_keys ();
  guint8 *dk = store_keys_data_key_new ();
  g_autoptr (GBytes) w = store_keys_wrap (keys, dk, 42);
  gsize n;
  const guint8 *p = g_bytes_get_data (w, &n);
  guint8 *back = store_keys_unwrap (keys, p, n, 42, NULL);

  ck_assert_ptr_nonnull (back);
  ck_assert_int_eq (memcmp (back, dk, STORE_KEY_BYTES), 0);
  /* wrapped for subject 42, presented as subject 43: refused */
  ck_assert_ptr_null (store_keys_unwrap (keys, p, n, 43, NULL));
  store_keys_data_key_free (back);
  store_keys_data_key_free (dk);
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_blind_index)
{
  store_keys *keys = make_keys ();
  guint8 a[32], b[32], c[32];

  store_keys_blind (keys, "ctx", "a@b.example", 11, a);
  store_keys_blind (keys, "ctx", "a@b.example", 11, b);
  store_keys_blind (keys, "other", "a@b.example", 11, c);
  ck_assert_int_eq (memcmp (a, b, 32), 0);
  ck_assert_int_ne (memcmp (a, c, 32), 0);
  store_keys_free (&keys);
}
END_TEST

/* ------------------------------------------------------------- refs */

START_TEST (test_ref_format)
{
  g_autofree char *r = store_ref_format ("ESC", 2026, 123);

  ck_assert_int_eq (strncmp (r, "ESC-2026-000123-", 16), 0);
  ck_assert_uint_eq (strlen (r), 17);
  ck_assert (store_ref_valid (r));
  ck_assert (!store_ref_valid ("ESC-2026-000123"));
  ck_assert (!store_ref_valid ("ESC-2026-00012-A"));
  ck_assert (!store_ref_valid ("E5C-2026-000123-A"));
  ck_assert (!store_ref_valid (""));
  ck_assert (!store_ref_valid (NULL));
}
END_TEST

START_TEST (test_ref_catches_errors)
{
  /* For many serials, every single-digit change and every adjacent swap of
   * different digits in year+serial makes the reference invalid.  */
  for (guint64 serial = 1; serial < 100000; serial += 997)
    {
      g_autofree char *r = store_ref_format ("ESC", 2026, serial);
      gsize len = strlen (r);

      ck_assert (store_ref_valid (r));
      for (gsize i = 0; i < len; i++)
        {
          if (!g_ascii_isdigit (r[i]))
            continue;
          for (char d = '0'; d <= '9'; d++)
            {
              g_autofree char *m = g_strdup (r);
              if (d == r[i])
                continue;
              m[i] = d;
              ck_assert_msg (!store_ref_valid (m), "%s accepted for %s", m, r);
            }
          if (i + 1 < len && g_ascii_isdigit (r[i + 1]) && r[i] != r[i + 1])
            {
              g_autofree char *m = g_strdup (r);
              m[i] = r[i + 1];
              m[i + 1] = r[i];
              ck_assert_msg (!store_ref_valid (m), "%s accepted for %s", m, r);
            }
        }
      /* a wrong check character */
      g_autofree char *m = g_strdup (r);
      m[len - 1] = m[len - 1] == 'A' ? 'B' : 'A';
      ck_assert (!store_ref_valid (m));
    }
}
END_TEST

/* ------------------------------------------------------------ store */

typedef struct {
  GMutex lock;
  GCond cond;
  int done;
  int failed;
  gint64 last_id;
} waiter;

static void
waiter_done (gint64 id, const GError *error, gpointer data)
{
  waiter *w = data;

  g_mutex_lock (&w->lock);
  w->done++;
  if (error)
    w->failed++;
  else
    w->last_id = id;
  g_cond_signal (&w->cond);
  g_mutex_unlock (&w->lock);
}

static void
waiter_wait (waiter *w, int n)
{
  g_mutex_lock (&w->lock);
  while (w->done < n)
    g_cond_wait (&w->cond, &w->lock);
  g_mutex_unlock (&w->lock);
}

static store_envelope *
make_env (void)
{
  store_envelope *env = store_envelope_new ();

  env->source = g_strdup ("smtp");
  env->client_addr = g_strdup ("192.0.2.1");
  env->helo = g_strdup ("client.example");
  env->mail_from = g_strdup ("citizen@example.org");
  g_ptr_array_add (env->rcpts, g_strdup ("enquiries@council.example"));
  env->received_at = 1790000000LL * G_USEC_PER_SEC;
  return env;
}

static store *
open_store (store_keys *keys)
{
  g_autofree char *db = tmp_path ("intake.db");
  g_autoptr (GError) error = NULL;
  store *st = store_open (db, keys, STORE_OPEN_WRITER, &error);

  ck_assert_msg (st != NULL, "%s", error ? error->message : "");
  /* these tests read the spool as it is on disk (tampered rows, rows
   * under rotated or destroyed keys): without the spool feed, which
   * would hand out just-spooled rows from memory (test_spool_feed) */
  store_spool_feed_set_enabled (st, FALSE);
  return st;
}

START_TEST (test_store_pragmas_and_version)
{
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  g_autofree char *db = tmp_path ("intake.db");
  g_autoptr (GError) error = NULL;
  sqlite3 *raw;
  struct stat sb;

  store_close (&st);
  ck_assert_int_eq (stat (db, &sb), 0);
  ck_assert_int_eq (sb.st_mode & 0077, 0);

  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  {
    sqlite3_stmt *q;
    sqlite3_prepare_v2 (raw, "PRAGMA journal_mode", -1, &q, NULL);
    ck_assert_int_eq (sqlite3_step (q), SQLITE_ROW);
    ck_assert_str_eq ((const char *) sqlite3_column_text (q, 0), "wal");
    sqlite3_finalize (q);
  }
  /* a database from the future is refused */
  ck_assert_int_eq (sqlite3_exec (raw, "PRAGMA user_version=99", NULL, NULL,
                                  NULL), SQLITE_OK);
  sqlite3_close (raw);
  ck_assert_ptr_null (store_open (db, keys, STORE_OPEN_WRITER, &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_VERSION));
  g_clear_error (&error);
  ck_assert_ptr_null (store_open (db, keys, 0, &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_VERSION));
  store_keys_free (&keys);
}
END_TEST

/* Spool n rows, quarantine every third; what the pipeline, the count
 * and the quarantine list see.  */
static void
spool_quarantine_check (store *st, int n, const gint64 *ids)
{
  g_autoptr (GPtrArray) items = store_spool_list (st, 0, 1000, NULL);
  g_autoptr (GPtrArray) q = store_quarantine_list (st, NULL);
  guint at = 0, qat = 0;

  ck_assert_int_eq (store_spool_count (st, NULL), n - (n + 2) / 3);
  ck_assert_uint_eq (items->len, (guint) (n - (n + 2) / 3));
  ck_assert_uint_eq (q->len, (guint) ((n + 2) / 3));
  for (int i = 0; i < n; i++)
    if (i % 3 == 0)
      {
        const store_quarantine_entry *e = q->pdata[qat++];
        ck_assert_int_eq (e->id, ids[i]);       /* oldest first */
        ck_assert_int_gt (e->quarantined_at, 0);
      }
    else
      ck_assert_int_eq (((store_spool_item *) items->pdata[at++])->id,
                        ids[i]);
}

/* Schema 13: the quarantine index holds only quarantined rows; the count
 * comes from indexes, and a database of schema 12 (the index over every
 * row) is brought to it on open with the same answers.  */
START_TEST (test_spool_quarantine_partial_index)
{
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  g_autofree char *db = tmp_path ("intake.db");
  waiter w = { 0 };
  const int n = 30;
  gint64 ids[30];
  sqlite3 *raw;
  sqlite3_stmt *q;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  for (int i = 0; i < n; i++)
    {
      char *m = g_strdup_printf ("Subject: %d\r\n\r\nbody\r\n", i);
      store_spool_submit (st, make_env (), g_bytes_new_take (m, strlen (m)),
                          waiter_done, &w);
      waiter_wait (&w, i + 1);
      ids[i] = w.last_id;
    }
  for (int i = 0; i < n; i += 3)
    store_spool_fail_submit (st, ids[i], "crash", 1, waiter_done, &w);
  waiter_wait (&w, n + (n + 2) / 3);
  ck_assert_int_eq (w.failed, 0);
  spool_quarantine_check (st, n, ids);
  store_close (&st);

  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  sqlite3_prepare_v2 (raw, "SELECT sql FROM sqlite_master"
                           " WHERE name = 'spool_quarantine'", -1, &q, NULL);
  ck_assert_int_eq (sqlite3_step (q), SQLITE_ROW);
  ck_assert_ptr_nonnull (strstr ((const char *) sqlite3_column_text (q, 0),
                                 "WHERE quarantined_at IS NOT NULL"));
  sqlite3_finalize (q);
  /* back to what schema 12 had */
  ck_assert_int_eq (sqlite3_exec (raw, "DROP INDEX spool_quarantine;"
                                       "CREATE INDEX spool_quarantine"
                                       " ON spool(quarantined_at);"
                                       "PRAGMA user_version=12;",
                                  NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close (raw);

  st = open_store (keys);
  spool_quarantine_check (st, n, ids);
  store_close (&st);
  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  sqlite3_prepare_v2 (raw, "SELECT (SELECT sql FROM sqlite_master"
                           " WHERE name = 'spool_quarantine'),"
                           " (SELECT user_version FROM pragma_user_version)",
                      -1, &q, NULL);
  ck_assert_int_eq (sqlite3_step (q), SQLITE_ROW);
  ck_assert_ptr_nonnull (strstr ((const char *) sqlite3_column_text (q, 0),
                                 "WHERE quarantined_at IS NOT NULL"));
  ck_assert_int_eq (sqlite3_column_int (q, 1), STORE_SCHEMA_VERSION);
  sqlite3_finalize (q);
  sqlite3_close (raw);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_store_reader_needs_file)
{
  store_keys *keys = make_keys ();
  g_autofree char *db = tmp_path ("absent.db");
  g_autoptr (GError) error = NULL;

  ck_assert_ptr_null (store_open (db, keys, 0, &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_OPEN));
  ck_assert (!g_file_test (db, G_FILE_TEST_EXISTS));
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_spool_group_commit)
{
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  waiter w = { 0 };
  g_autoptr (GPtrArray) items = NULL;
  const int n = 500;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  for (int i = 0; i < n; i++)
    {
      char *raw = g_strdup_printf ("Subject: %d\r\n\r\nbody %d\r\n", i, i);
      store_spool_submit (st, make_env (),
                          g_bytes_new_take (raw, strlen (raw)), waiter_done,
                          &w);
    }
  waiter_wait (&w, n);
  ck_assert_int_eq (w.failed, 0);
  ck_assert_int_eq (store_spool_count (st, NULL), n);
  items = store_spool_list (st, 0, 1000, NULL);
  ck_assert_uint_eq (items->len, n);
  for (guint i = 0; i < items->len; i++)
    {
      store_spool_item *it = items->pdata[i];
      g_autofree char *want = g_strdup_printf ("Subject: %u\r\n\r\nbody %u\r\n",
                                               i, i);
      ck_assert_ptr_null (it->error);
      ck_assert_str_eq (it->env->mail_from, "citizen@example.org");
      ck_assert_str_eq (it->env->rcpts->pdata[0],
                        "enquiries@council.example");
      ck_assert_uint_eq (g_bytes_get_size (it->raw), strlen (want));
      ck_assert_int_eq (memcmp (g_bytes_get_data (it->raw, NULL), want,
                                strlen (want)), 0);
    }
  store_close (&st);
  store_keys_free (&keys);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
}
END_TEST

/* The writer's WAL goes to the kernel in runs (store_walbuf.c), in pieces
 * the unix VFS writes whole: one batch of 2 MiB of spool rows (far more
 * than one 128 KiB pwrite, and than the 1 MiB buffer) commits and reads
 * back byte for byte, after a reopen too.  */
START_TEST (test_spool_large_batch)
{
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  waiter w = { 0 };
  g_autoptr (GPtrArray) items = NULL;
  g_autoptr (GPtrArray) sent = g_ptr_array_new_with_free_func (
      (GDestroyNotify) g_bytes_unref);
  const int n = 256;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  for (int i = 0; i < n; i++)
    {
      GString *r = g_string_new (NULL);
      GBytes *raw;

      g_string_append_printf (r, "Subject: %d\r\n\r\n", i);
      while (r->len < 8 * 1024 + (gsize) i)
        g_string_append_printf (r, "line %u of %d\r\n", (guint) r->len, i);
      raw = g_string_free_to_bytes (r);
      g_ptr_array_add (sent, g_bytes_ref (raw));
      store_spool_submit (st, make_env (), raw, waiter_done, &w);
    }
  waiter_wait (&w, n);
  ck_assert_int_eq (w.failed, 0);
  store_close (&st);
  st = open_store (keys);
  items = store_spool_list (st, 0, 1000, NULL);
  ck_assert_uint_eq (items->len, n);
  for (guint i = 0; i < items->len; i++)
    {
      store_spool_item *it = items->pdata[i];

      ck_assert_ptr_null (it->error);
      ck_assert_msg (g_bytes_equal (it->raw, sent->pdata[i]),
                     "spool row %u differs from what was sent", i);
    }
  store_close (&st);
  store_keys_free (&keys);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
}
END_TEST

/* The checkpointer's copies go to the database file in runs
 * (store_walbuf.c, "intake-ckptbuf"): after some 30 MiB of spool rows, far
 * past the 4,000 WAL pages that start a checkpoint, the database file
 * alone (without its WAL, as the checkpointer left it) is whole and holds
 * every row it holds byte for byte as the live database does.  */
START_TEST (test_checkpoint_copies_whole)
{
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  g_autofree char *db = tmp_path ("intake.db");
  g_autofree char *copy = tmp_path ("copy.db");
  g_autofree char *cmd = NULL;
  waiter w = { 0 };
  const int rounds = 6, per = 512;
  goffset size = -1;
  int stable = 0;
  sqlite3 *cdb, *ldb;
  sqlite3_stmt *st_copy, *st_live;
  gint64 rows = 0;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  for (int r = 0; r < rounds; r++)
    {
      for (int i = 0; i < per; i++)
        {
          GString *t = g_string_new (NULL);

          g_string_append_printf (t, "Subject: %d.%d\r\n\r\n", r, i);
          while (t->len < 9 * 1024)
            g_string_append_printf (t, "line %u of %d.%d\r\n",
                                    (guint) t->len, r, i);
          store_spool_submit (st, make_env (), g_string_free_to_bytes (t),
                              waiter_done, &w);
        }
      waiter_wait (&w, (r + 1) * per);
    }
  ck_assert_int_eq (w.failed, 0);
  /* the checkpointer has copied and gone idle: the file stops growing */
  for (int i = 0; i < 300 && stable < 5; i++)
    {
      GStatBuf sb;

      g_usleep (100 * 1000);
      ck_assert_int_eq (g_stat (db, &sb), 0);
      stable = sb.st_size == size && size > 8 * 1024 * 1024 ? stable + 1 : 0;
      size = sb.st_size;
    }
  ck_assert_int_eq (stable, 5);
  cmd = g_strdup_printf ("cp '%s' '%s'", db, copy);
  ck_assert_int_eq (system (cmd), 0);

  ck_assert_int_eq (sqlite3_open_v2 (copy, &cdb, SQLITE_OPEN_READONLY, NULL),
                    SQLITE_OK);
  ck_assert_int_eq (sqlite3_open_v2 (db, &ldb, SQLITE_OPEN_READONLY, NULL),
                    SQLITE_OK);
  ck_assert_int_eq (sqlite3_prepare_v2 (cdb, "PRAGMA integrity_check", -1,
                                        &st_copy, NULL), SQLITE_OK);
  ck_assert_int_eq (sqlite3_step (st_copy), SQLITE_ROW);
  ck_assert_str_eq ((const char *) sqlite3_column_text (st_copy, 0), "ok");
  sqlite3_finalize (st_copy);
  ck_assert_int_eq (sqlite3_prepare_v2 (cdb, "SELECT id, envelope, raw FROM"
                                             " spool ORDER BY id", -1,
                                        &st_copy, NULL), SQLITE_OK);
  ck_assert_int_eq (sqlite3_prepare_v2 (ldb, "SELECT envelope, raw FROM spool"
                                             " WHERE id = ?1", -1,
                                        &st_live, NULL), SQLITE_OK);
  while (sqlite3_step (st_copy) == SQLITE_ROW)
    {
      sqlite3_bind_int64 (st_live, 1, sqlite3_column_int64 (st_copy, 0));
      ck_assert_int_eq (sqlite3_step (st_live), SQLITE_ROW);
      for (int c = 0; c < 2; c++)
        {
          ck_assert_int_eq (sqlite3_column_bytes (st_copy, c + 1),
                            sqlite3_column_bytes (st_live, c));
          ck_assert_int_eq (memcmp (sqlite3_column_blob (st_copy, c + 1),
                                    sqlite3_column_blob (st_live, c),
                                    sqlite3_column_bytes (st_live, c)), 0);
        }
      sqlite3_reset (st_live);
      rows++;
    }
  sqlite3_finalize (st_copy);
  sqlite3_finalize (st_live);
  sqlite3_close (cdb);
  sqlite3_close (ldb);
  /* a good part of what was written was copied, so that the check above
   * was not of an empty file (how much depends on where the passive
   * checkpoints fell: 1,996 of 3,072 rows under ASan, more in a plain
   * build) */
  ck_assert_int_ge (rows, per);
  store_close (&st);
  store_keys_free (&keys);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
}
END_TEST

static store_ingest *
make_ingest (gint64 spool_id, GBytes *raw, const char *from)
{
  store_ingest *in = store_ingest_new ();

  in->spool_id = spool_id;
  in->env = make_env ();
  in->raw = g_bytes_ref (raw);
  in->from_addr = g_strdup (from);
  in->subject = g_strdup ("Bin not collected");
  in->message_id = g_strdup ("m1@example.org");
  in->queue = g_strdup ("general");
  in->kind = g_strdup ("enquiry");
  in->ref_prefix = g_strdup ("ESC");
  return in;
}

START_TEST (test_ingest_case_and_dedupe)
{
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  waiter w = { 0 };
  const char *text = "Subject: Bin not collected\r\n\r\nmarker-body-text\r\n";
  g_autoptr (GBytes) raw = g_bytes_new_static (text, strlen (text));
  g_autoptr (GPtrArray) cases = NULL;
  g_autoptr (GPtrArray) msgs = NULL;
  g_autoptr (GPtrArray) items = NULL;
  store_case_view *v;
  gint64 s1, s2;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  store_spool_submit (st, make_env (), g_bytes_ref (raw), waiter_done, &w);
  waiter_wait (&w, 1);
  s1 = w.last_id;
  store_spool_submit (st, make_env (), g_bytes_ref (raw), waiter_done, &w);
  waiter_wait (&w, 2);
  s2 = w.last_id;
  ck_assert_int_ne (s1, s2);

  store_ingest_submit (st, make_ingest (s1, raw, "Citizen@Example.org"),
                       waiter_done, &w);
  waiter_wait (&w, 3);
  ck_assert_int_eq (w.failed, 0);
  /* processing the same spool row twice is refused */
  store_ingest_submit (st, make_ingest (s1, raw, "citizen@example.org"),
                       waiter_done, &w);
  waiter_wait (&w, 4);
  ck_assert_int_eq (w.failed, 1);
  /* the same bytes again: an arrival on the same message, no new case */
  store_ingest_submit (st, make_ingest (s2, raw, "citizen@example.org"),
                       waiter_done, &w);
  waiter_wait (&w, 5);
  ck_assert_int_eq (w.failed, 1);
  ck_assert_int_eq (store_spool_count (st, NULL), 0);

  cases = store_case_list (st, NULL);
  ck_assert_uint_eq (cases->len, 1);
  v = cases->pdata[0];
  ck_assert (store_ref_valid (v->ref));
  ck_assert_str_eq (v->queue, "general");
  ck_assert_str_eq (v->status, "new");
  ck_assert_str_eq (v->subject, "Bin not collected");
  ck_assert_str_eq (v->from_addr, "citizen@example.org");
  ck_assert_str_eq (v->message_id, "m1@example.org");

  v = store_case_get (st, v->ref, &msgs, NULL);
  ck_assert_ptr_nonnull (v);
  ck_assert_uint_eq (msgs->len, 1);
  ck_assert_uint_eq (((store_message_view *) msgs->pdata[0])->arrivals, 2);
  store_case_view_free (v);
  ck_assert_ptr_null (store_case_get (st, "ESC-2026-999999-A", NULL, NULL));
  store_close (&st);

  /* nothing readable at rest: the body, subject and address are not in
   * the database file or its WAL  */
  {
    g_autofree char *db = tmp_path ("intake.db");
    g_autofree char *wal = tmp_path ("intake.db-wal");
    const char *paths[] = { db, wal };
    for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
      {
        g_autofree char *data = NULL;
        gsize len = 0;
        if (!g_file_get_contents (paths[i], &data, &len, NULL))
          continue;
        ck_assert_ptr_null (memmem (data, len, "marker-body-text", 16));
        ck_assert_ptr_null (memmem (data, len, "Bin not collected", 17));
        ck_assert_ptr_null (memmem (data, len, "citizen@example", 15));
      }
  }
  store_keys_free (&keys);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
  (void) items;
}
END_TEST

START_TEST (test_spool_tampered_row)
{
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  g_autofree char *db = tmp_path ("intake.db");
  waiter w = { 0 };
  g_autoptr (GPtrArray) items = NULL;
  sqlite3 *raw;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  for (int i = 0; i < 3; i++)
    store_spool_submit (st, make_env (),
                        g_bytes_new_static ("x\r\n", 3), waiter_done, &w);
  waiter_wait (&w, 3);
  /* SECURITY-TESTS 91: row 2's raw replaced by row 1's ciphertext */
  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  ck_assert_int_eq (sqlite3_exec (raw, "UPDATE spool SET raw = (SELECT raw"
                                       " FROM spool WHERE id = 1) WHERE id = 2",
                                  NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close (raw);
  items = store_spool_list (st, 0, 10, NULL);
  ck_assert_uint_eq (items->len, 3);
  ck_assert_ptr_null (((store_spool_item *) items->pdata[0])->error);
  ck_assert_ptr_nonnull (((store_spool_item *) items->pdata[1])->error);
  ck_assert_ptr_null (((store_spool_item *) items->pdata[1])->raw);
  ck_assert_ptr_null (((store_spool_item *) items->pdata[2])->error);
  /* what the pipeline hands the writer to seal into the message row is
   * exactly the envelope packed again */
  for (guint i = 0; i < items->len; i += 2)
    {
      store_spool_item *it = items->pdata[i];
      g_autoptr (GBytes) again = store_envelope_pack (it->env);
      ck_assert_ptr_nonnull (it->env_bytes);
      ck_assert (g_bytes_equal (it->env_bytes, again));
    }
  {
    store_spool_item *bad = items->pdata[1];
    ck_assert ((bad->env == NULL) == (bad->env_bytes == NULL));
  }
  store_close (&st);
  store_keys_free (&keys);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
}
END_TEST

START_TEST (test_spool_tampered_envelope)
{
  /* The envelope bytes the message row seals come from the spool row:
   * one moved from another row, or changed by a byte, must not open, so
   * neither the envelope nor its bytes reach the pipeline.  */
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  g_autofree char *db = tmp_path ("intake.db");
  waiter w = { 0 };
  g_autoptr (GPtrArray) items = NULL;
  sqlite3 *raw;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  for (int i = 0; i < 4; i++)
    store_spool_submit (st, make_env (),
                        g_bytes_new_static ("x\r\n", 3), waiter_done, &w);
  waiter_wait (&w, 4);
  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  /* row 2: row 1's envelope ciphertext; row 3: one byte of its own
   * changed (the last, inside the tag); row 4 untouched */
  ck_assert_int_eq (sqlite3_exec (raw, "UPDATE spool SET envelope ="
                                       " (SELECT envelope FROM spool"
                                       " WHERE id = 1) WHERE id = 2;"
                                       "UPDATE spool SET envelope ="
                                       " substr(envelope, 1, length(envelope)"
                                       " - 1) || x'00' WHERE id = 3"
                                       " AND substr(envelope, -1) != x'00';"
                                       "UPDATE spool SET envelope ="
                                       " substr(envelope, 1, length(envelope)"
                                       " - 1) || x'01' WHERE id = 3"
                                       " AND substr(envelope, -1) = x'00'",
                                  NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close (raw);
  items = store_spool_list (st, 0, 10, NULL);
  ck_assert_uint_eq (items->len, 4);
  for (guint i = 0; i < items->len; i++)
    {
      store_spool_item *it = items->pdata[i];
      if (i == 1 || i == 2)
        {
          ck_assert_ptr_nonnull (it->error);
          ck_assert_ptr_null (it->env);
          ck_assert_ptr_null (it->env_bytes);
          ck_assert_ptr_null (it->raw);
        }
      else
        {
          g_autoptr (GBytes) again = store_envelope_pack (it->env);
          ck_assert_ptr_null (it->error);
          ck_assert (g_bytes_equal (it->env_bytes, again));
        }
    }
  store_close (&st);
  store_keys_free (&keys);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
}
END_TEST

/* store_keys_aad() against the printf form it replaced.  */
static void
assert_aad_printf (const char *t, const char *c, gint64 row, gint64 owner,
                   guint v)
{
  g_autoptr (GBytes) got = store_keys_aad (t, c, row, owner, v);
  g_autofree char *want = g_strdup_printf ("%s|%s|%" G_GINT64_FORMAT
                                           "|%" G_GINT64_FORMAT "|%u",
                                           t, c, row, owner, v);
  gsize n;
  const char *p = g_bytes_get_data (got, &n);

  ck_assert_msg (n == strlen (want) && memcmp (p, want, n) == 0,
                 "aad for %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT "/%u "
                 "differs from \"%s\"", row, owner, v, want);
}

START_TEST (test_aad_every_width)
{
  /* every decimal width of both signs (each power of ten and its
   * neighbours), the extremes, and long, odd table and column names */
  static const guint versions[] = { 0, 1, 9, 10, 99, 100, 999999999,
                                    1000000000, G_MAXUINT - 1, G_MAXUINT };
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autofree char *longname = g_strnfill (5000, 't');
  gint64 x;

  x = G_MININT64;
  g_array_append_val (ids, x);
  x = G_MAXINT64;
  g_array_append_val (ids, x);
  for (gint64 p = 1; ; p *= 10)
    {
      for (gint64 d = -1; d <= 1; d++)
        {
          x = p + d;
          g_array_append_val (ids, x);
          x = -(p + d);
          g_array_append_val (ids, x);
        }
      if (p > G_MAXINT64 / 10)
        break;
    }
  for (guint i = 0; i < ids->len; i++)
    for (guint j = 0; j < ids->len; j += 7)
      assert_aad_printf ("messages", "text", g_array_index (ids, gint64, i),
                         g_array_index (ids, gint64, j),
                         versions[(i + j) % G_N_ELEMENTS (versions)]);
  for (guint k = 0; k < G_N_ELEMENTS (versions); k++)
    {
      assert_aad_printf (longname, longname, G_MININT64, G_MININT64,
                         versions[k]);
      assert_aad_printf ("a|b", "\xc3\xa9|", -1, 0, versions[k]);
      assert_aad_printf ("", "", 0, 0, versions[k]);
    }
}
END_TEST

START_TEST (test_aad_bytes)
{
  /* the associated data of every sealed value ever written: these bytes
   * must never change, or nothing stored opens again */
  static const struct {
    const char *t, *c;
    gint64 row, owner;
    guint v;
  } cases[] = {
    { "messages", "text", 12, 3, 1 },
    { "subject", "data_key", 1, 1, 7 },
    { "spool", "raw", 0, 0, 1 },
    { "t", "c", -1, -9223372036854775807LL - 1, 0 },
    { "", "", G_MAXINT64, G_MININT64 + 1, G_MAXUINT },
    { "attachments", "meta", 1234567890123LL, 99, 10 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GBytes) got = store_keys_aad (cases[i].t, cases[i].c,
                                               cases[i].row, cases[i].owner,
                                               cases[i].v);
      g_autofree char *want = g_strdup_printf ("%s|%s|%" G_GINT64_FORMAT
                                               "|%" G_GINT64_FORMAT "|%u",
                                               cases[i].t, cases[i].c,
                                               cases[i].row, cases[i].owner,
                                               cases[i].v);
      gsize n;
      const char *p = g_bytes_get_data (got, &n);

      ck_assert_uint_eq (n, strlen (want));
      ck_assert (memcmp (p, want, n) == 0);
    }
  {
    g_autoptr (GBytes) b = store_keys_aad ("messages", "raw", 42, 7, 1);
    gsize n;
    const char *p = g_bytes_get_data (b, &n);
    ck_assert_uint_eq (n, strlen ("messages|raw|42|7|1"));
    ck_assert (memcmp (p, "messages|raw|42|7|1", n) == 0);
  }
}
END_TEST

/* store_keys_aad_into () writes the bytes store_keys_aad () returns, and
 * a seal with the associated data as a span is the seal with it as
 * GBytes, byte for byte (the writer's seals take the span, from its
 * stack).  */
START_TEST (test_aad_into_and_span_seal)
{
  static const struct {
    const char *t, *c;
    gint64 row, owner;
  } cases[] = {
    { "messages", "header_message_id", 12, 3 },
    { "attachments", "content", G_MAXINT64, G_MININT64 },
    { "", "", 0, 0 },
  };
  guint8 key[32], nonce[STORE_KEYS_NONCE_BYTES];

  memset (key, 7, sizeof key);
  memset (nonce, 9, sizeof nonce);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const gsize tl = strlen (cases[i].t), cl = strlen (cases[i].c);
      g_autofree char *buf = g_malloc (STORE_KEYS_AAD_SIZE (tl, cl));
      g_autoptr (GBytes) aad = store_keys_aad (cases[i].t, cases[i].c,
                                               cases[i].row, cases[i].owner,
                                               1);
      gsize n = store_keys_aad_into (buf, cases[i].t, tl, cases[i].c, cl,
                                     cases[i].row, cases[i].owner, 1);
      g_autoptr (GBytes) span = g_bytes_new (buf, n);
      g_autoptr (GBytes) a = store_keys_seal_nonce (key, aad, nonce, "plain",
                                                    5);
      g_autoptr (GBytes) b = store_keys_seal_nonce_ad (key, buf, n, nonce,
                                                       "plain", 5);

      ck_assert (g_bytes_equal (aad, span));
      ck_assert_uint_eq (buf[n], '\0');
      ck_assert (g_bytes_equal (a, b));
    }
}
END_TEST

/* store_envelope_pack () serialises by hand what g_variant_new () would:
 * byte for byte the same, for every length that changes GVariant's
 * offset size (1, 2 and 4 bytes, in the array and in the tuple), empty
 * strings and arrays, both booleans, negative times, UTF-8.  (A string
 * that is not UTF-8 takes GVariant's own path, as before: the SMTP
 * envelope is ASCII, SECURITY-TESTS 32.)  */
START_TEST (test_envelope_pack_as_gvariant)
{
  static const gsize lens[] = { 0, 1, 7, 100, 240, 250, 255, 256, 300,
                                65400, 65535, 65536, 70000 };
  guint32 seed = 0x5eed;
  guint checked = 0;

  for (guint round = 0; round < 400; round++)
    {
      store_envelope *env = store_envelope_new ();
      g_autoptr (GBytes) fast = NULL;
      g_autoptr (GBytes) slow = NULL;
      g_autoptr (GError) error = NULL;
      store_envelope *back;
      guint nr;
      char *f[4];

      for (guint i = 0; i < 4; i++)
        {
          seed = seed * 1103515245u + 12345u;
          gsize n = round < 52 ? lens[(round + i) % G_N_ELEMENTS (lens)]
                               : (seed >> 8) % 300;
          f[i] = g_malloc (n + 1);
          memset (f[i], 'a' + (char) (i + round % 20), n);
          f[i][n] = '\0';
        }
      env->source = f[0];
      env->client_addr = f[1];
      env->helo = f[2];
      env->mail_from = f[3];
      seed = seed * 1103515245u + 12345u;
      nr = round % 7 == 0 ? 0 : (seed >> 10) % (round < 200 ? 5 : 400);
      for (guint i = 0; i < nr; i++)
        {
          seed = seed * 1103515245u + 12345u;
          gsize n = round % 50 == 1 ? lens[i % G_N_ELEMENTS (lens)]
                                    : (seed >> 12) % 64;
          char *r = g_malloc (n + 1);
          memset (r, 'r', n);
          r[n] = '\0';
          g_ptr_array_add (env->rcpts, r);
        }
      env->tls = round % 2;
      env->received_at = (round % 3 == 0 ? -1 : 1) * (gint64) seed * 977;
      if (round == 399)
        g_ptr_array_add (env->rcpts, g_strdup ("caf\xc3\xa9@\xe4\xbe\x8b.example"));
      fast = store_envelope_pack_direct (env);
      slow = store_envelope_pack_gvariant (env);
      ck_assert_ptr_nonnull (fast);
      ck_assert_msg (g_bytes_equal (fast, slow), "round %u differs", round);
      {
        g_autoptr (GBytes) packed = store_envelope_pack (env);
        ck_assert (g_bytes_equal (packed, slow));
      }
      back = store_envelope_unpack (fast, &error);
      ck_assert_msg (back != NULL, "round %u: %s", round, error->message);
      ck_assert_str_eq (back->helo, env->helo);
      ck_assert_uint_eq (back->rcpts->len, env->rcpts->len);
      ck_assert_int_eq (back->received_at, env->received_at);
      ck_assert_int_eq (back->tls, env->tls);
      store_envelope_free (back);
      store_envelope_free (env);
      checked++;
    }
  ck_assert_uint_eq (checked, 400);
}
END_TEST

/* store_envelope_unpack () reads by hand what GVariant would read, and
 * takes nothing GVariant would refuse: valid envelopes of every offset
 * size, and 20,000 damaged ones (bytes flipped, cut, added, offsets
 * changed, padding and the boolean set) -- the same envelope or the same
 * refusal, every time.  */
START_TEST (test_envelope_unpack_as_gvariant)
{
  guint32 seed = 0xc0ffee;
  guint direct = 0, refused = 0;

  for (guint round = 0; round < 20400; round++)
    {
      store_envelope *env = make_env ();
      g_autoptr (GBytes) good = NULL;
      g_autoptr (GBytes) bad = NULL;
      GBytes *in;
      store_envelope *mine, *theirs;
      guint nr;

      seed = seed * 1103515245u + 12345u;
      nr = (seed >> 9) % (round % 100 == 0 ? 300 : 4);
      for (guint i = 0; i < nr; i++)
        g_ptr_array_add (env->rcpts, g_strdup_printf ("r%u@example.org", i));
      if (round % 10 == 0)
        {
          g_free (env->helo);
          env->helo = g_strnfill ((round / 10) % 700, 'h');
        }
      env->tls = round % 2;
      good = store_envelope_pack (env);
      in = good;
      if (round >= 400)
        {
          gsize n;
          const guint8 *p = g_bytes_get_data (good, &n);
          GByteArray *b = g_byte_array_new ();

          g_byte_array_append (b, p, (guint) n);
          seed = seed * 1103515245u + 12345u;
          switch (seed % 5)
            {
            case 0:                       /* flip a byte */
              b->data[(seed >> 8) % b->len] ^= (guint8) (1 + (seed >> 20) % 255);
              break;
            case 1:                       /* cut */
              g_byte_array_set_size (b, (guint) ((seed >> 8) % b->len));
              break;
            case 2:                       /* add */
              g_byte_array_append (b, (const guint8 *) "\0\1x", 1 + (seed >> 8) % 3);
              break;
            case 3:                       /* the last offsets */
              b->data[b->len - 1 - (seed >> 8) % MIN (b->len, 6)]
                  = (guint8) (seed >> 16);
              break;
            default:                      /* padding, boolean, time */
              b->data[(b->len * 3 / 4 + (seed >> 8) % 8) % b->len] = (guint8) (seed >> 16);
              break;
            }
          bad = g_byte_array_free_to_bytes (b);
          in = bad;
        }
      mine = store_envelope_unpack (in, NULL);
      theirs = store_envelope_unpack_gvariant (in, NULL);
      ck_assert_msg ((mine == NULL) == (theirs == NULL),
                     "round %u: one refused, the other not", round);
      if (mine != NULL)
        ck_assert_msg (store_envelope_equal (mine, theirs), "round %u differs",
                       round);
      else
        refused++;
      if (round < 400)
        {
          store_envelope *d = store_envelope_unpack_direct (in);
          ck_assert_ptr_nonnull (d);
          ck_assert (store_envelope_equal (d, env));
          store_envelope_free (d);
          direct++;
        }
      store_envelope_free (mine);
      store_envelope_free (theirs);
      store_envelope_free (env);
    }
  ck_assert_uint_eq (direct, 400);
  ck_assert_uint_gt (refused, 5000);
}
END_TEST

START_TEST (test_envelope_garbage)
{
  static const guint8 junk[] = { 0xff, 0x00, 0x01, 0x02, 0x03, 0xfe };
  g_autoptr (GBytes) b = g_bytes_new_static (junk, sizeof junk);
  g_autoptr (GError) error = NULL;
  store_envelope *env = store_envelope_unpack (b, &error);

  /* garbage never crashes; it either fails or gives empty strings */
  if (env != NULL)
    store_envelope_free (env);
  else
    ck_assert_ptr_nonnull (error);
}
END_TEST

/* ------------------------------------------------------- spool keys */

/* One run of the spool keys' rotation, waited for.  */
static store_spool_rotation
rotate_now (store *st)
{
  store_spool_rotation r = { 0 };
  waiter w = { 0 };

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  store_spool_rotate_submit (st, 1000, &r, waiter_done, &w);
  waiter_wait (&w, 1);
  ck_assert_int_eq (w.failed, 0);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
  return r;
}

static gint64
sql_int (sqlite3 *db, const char *sql)
{
  sqlite3_stmt *q = NULL;
  gint64 v = -1;

  ck_assert_int_eq (sqlite3_prepare_v2 (db, sql, -1, &q, NULL), SQLITE_OK);
  if (sqlite3_step (q) == SQLITE_ROW)
    v = sqlite3_column_int64 (q, 0);
  sqlite3_finalize (q);
  return v;
}

static GBytes *
sql_blob (sqlite3 *db, const char *sql)
{
  sqlite3_stmt *q = NULL;
  GBytes *b = NULL;

  ck_assert_int_eq (sqlite3_prepare_v2 (db, sql, -1, &q, NULL), SQLITE_OK);
  if (sqlite3_step (q) == SQLITE_ROW)
    b = g_bytes_new (sqlite3_column_blob (q, 0), sqlite3_column_bytes (q, 0));
  sqlite3_finalize (q);
  return b;
}

/* How many of the files @paths hold @needle.  */
static guint
files_holding (const char *const *paths, GBytes *needle)
{
  gsize nl;
  const void *n = g_bytes_get_data (needle, &nl);
  guint hits = 0;

  for (guint i = 0; paths[i] != NULL; i++)
    {
      g_autofree char *data = NULL;
      gsize len = 0;
      if (g_file_get_contents (paths[i], &data, &len, NULL)
          && memmem (data, len, n, nl) != NULL)
        hits++;
    }
  return hits;
}

/* SECURITY-TESTS 98: the spool's key changes every period; the rows still
 * waiting under an old key (and those of schema 11, under the master key's
 * spool key) are re-sealed under the new one, and the old key's secret is
 * then destroyed in the vault, so that no copy of a row sealed under it
 * opens again.  */
START_TEST (test_spool_key_rotation)
{
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  g_autofree char *db = tmp_path ("intake.db");
  g_autofree char *vault = tmp_path ("intake-vault.db");
  g_autofree char *vault_wal = tmp_path ("intake-vault.db-wal");
  const char *const vault_files[] = { vault, vault_wal, NULL };
  g_autoptr (GBytes) secret1 = NULL;
  g_autoptr (GBytes) old_raw = NULL;
  g_autoptr (GPtrArray) items = NULL;
  store_spool_rotation r;
  waiter w = { 0 };
  sqlite3 *raw, *vraw;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  store_spool_key_set_lifetime (st, 1);
  store_spool_submit (st, make_env (), g_bytes_new_static ("one\r\n", 5),
                      waiter_done, &w);
  store_spool_submit (st, make_env (), g_bytes_new_static ("two\r\n", 5),
                      waiter_done, &w);
  waiter_wait (&w, 2);
  ck_assert_int_eq (w.failed, 0);
  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  ck_assert_int_eq (sqlite3_open (vault, &vraw), SQLITE_OK);
  ck_assert_int_eq (sql_int (raw, "SELECT count(*) FROM spool"
                                  " WHERE key_id = 1"), 2);
  secret1 = sql_blob (vraw, "SELECT secret FROM spool_secrets WHERE id = 1");
  ck_assert_ptr_nonnull (secret1);
  ck_assert_uint_eq (files_holding (vault_files, secret1), 1);
  old_raw = sql_blob (raw, "SELECT raw FROM spool WHERE id = 1");

  /* row 2 as an older intake left it: under the master key's spool key */
  {
    const guint8 *k0 = store_keys_get (keys, STORE_KEY_SPOOL);
    g_autoptr (GBytes) env = NULL;
    g_autoptr (GBytes) aad_e = store_keys_aad ("spool", "envelope", 2, 0, 1);
    g_autoptr (GBytes) aad_r = store_keys_aad ("spool", "raw", 2, 0, 1);
    g_autoptr (GBytes) se = NULL;
    g_autoptr (GBytes) sr = NULL;
    store_envelope *e = make_env ();
    sqlite3_stmt *q = NULL;
    gsize n;
    const void *p;

    env = store_envelope_pack (e);
    store_envelope_free (e);
    p = g_bytes_get_data (env, &n);
    se = store_keys_seal (k0, aad_e, p, n);
    sr = store_keys_seal (k0, aad_r, "two\r\n", 5);
    ck_assert_int_eq (sqlite3_prepare_v2 (raw, "UPDATE spool SET envelope ="
                                               " ?1, raw = ?2, key_id = 0"
                                               " WHERE id = 2", -1, &q, NULL),
                      SQLITE_OK);
    p = g_bytes_get_data (se, &n);
    sqlite3_bind_blob (q, 1, p, (int) n, SQLITE_STATIC);
    p = g_bytes_get_data (sr, &n);
    sqlite3_bind_blob (q, 2, p, (int) n, SQLITE_STATIC);
    ck_assert_int_eq (sqlite3_step (q), SQLITE_DONE);
    sqlite3_finalize (q);
  }

  /* a run within the period leaves key 1's rows, moves key 0's */
  r = rotate_now (st);
  ck_assert_int_eq (r.key, 1);
  ck_assert (!r.rotated);
  ck_assert_int_eq (r.resealed, 1);
  ck_assert_int_eq (sql_int (raw, "SELECT key_id FROM spool WHERE id = 2"), 1);

  /* a period later: a new key, both rows under it */
  g_usleep (1100 * 1000);
  r = rotate_now (st);
  ck_assert_int_eq (r.key, 2);
  ck_assert (r.rotated);
  ck_assert_int_eq (r.resealed, 2);
  ck_assert_uint_eq (r.unreadable, 0);
  ck_assert_uint_eq (r.destroyed, 0);    /* unused once: kept for a run */
  ck_assert_uint_eq (r.waiting, 1);
  ck_assert_int_eq (sql_int (raw, "SELECT count(*) FROM spool"
                                  " WHERE key_id = 2"), 2);
  items = store_spool_list (st, 0, 10, NULL);
  ck_assert_uint_eq (items->len, 2);
  for (guint i = 0; i < 2; i++)
    {
      store_spool_item *it = items->pdata[i];
      ck_assert_ptr_null (it->error);
      ck_assert_int_eq (memcmp (g_bytes_get_data (it->raw, NULL),
                                i == 0 ? "one\r\n" : "two\r\n", 5), 0);
      ck_assert_str_eq (it->env->mail_from, "citizen@example.org");
    }
  g_clear_pointer (&items, g_ptr_array_unref);

  /* the next run destroys key 1: gone from every file of the vault */
  r = rotate_now (st);
  ck_assert_int_eq (r.key, 2);
  ck_assert (!r.rotated);
  ck_assert_uint_eq (r.destroyed, 1);
  ck_assert_int_eq (sql_int (vraw, "SELECT count(*) FROM spool_secrets"), 1);
  ck_assert_int_eq (sql_int (vraw, "SELECT id FROM spool_secrets"), 2);
  sqlite3_close (vraw);
  ck_assert_uint_eq (files_holding (vault_files, secret1), 0);

  /* a copy of row 1 as it was (a backup of the database) no longer opens */
  {
    sqlite3_stmt *q = NULL;
    gsize n;
    const void *p = g_bytes_get_data (old_raw, &n);

    ck_assert_int_eq (sqlite3_prepare_v2 (raw, "UPDATE spool SET raw = ?1,"
                                               " key_id = 1 WHERE id = 1",
                                          -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_blob (q, 1, p, (int) n, SQLITE_STATIC);
    ck_assert_int_eq (sqlite3_step (q), SQLITE_DONE);
    sqlite3_finalize (q);
  }
  sqlite3_close (raw);
  items = store_spool_list (st, 0, 10, NULL);
  ck_assert_uint_eq (items->len, 2);
  {
    store_spool_item *it = items->pdata[0];
    ck_assert_ptr_nonnull (it->error);
    ck_assert (g_error_matches (it->error, STORE_ERROR, STORE_ERROR_CRYPTO));
    ck_assert_ptr_null (it->raw);
    ck_assert_ptr_null (((store_spool_item *) items->pdata[1])->error);
  }
  /* what `intakectl spool keys` shows: key 1 named by a row, not in the
   * vault; key 2 in the vault, sealing the other row */
  {
    g_autoptr (GArray) ks = store_spool_keys_list (st, NULL);
    const store_spool_key_info *k1, *k2;

    ck_assert_ptr_nonnull (ks);
    ck_assert_uint_eq (ks->len, 2);
    k1 = &g_array_index (ks, store_spool_key_info, 0);
    k2 = &g_array_index (ks, store_spool_key_info, 1);
    ck_assert_int_eq (k1->id, 1);
    ck_assert (!k1->in_vault);
    ck_assert_int_eq (k1->rows, 1);
    ck_assert_int_eq (k2->id, 2);
    ck_assert (k2->in_vault);
    ck_assert_int_eq (k2->rows, 1);
    ck_assert_int_gt (k2->created_at, 0);
  }
  store_close (&st);
  store_keys_free (&keys);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
}
END_TEST

/* Mail spooled after the period began is sealed under a new key at once,
 * not only after the next rotation run; a restart starts a key of its own
 * and the rows of the key before it are still read.  */
START_TEST (test_spool_key_new_period_and_restart)
{
  store_keys *keys = make_keys ();
  store *st = open_store (keys);
  g_autofree char *db = tmp_path ("intake.db");
  g_autoptr (GPtrArray) items = NULL;
  waiter w = { 0 };
  sqlite3 *raw;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  store_spool_key_set_lifetime (st, 1);
  store_spool_submit (st, make_env (), g_bytes_new_static ("a\r\n", 3),
                      waiter_done, &w);
  waiter_wait (&w, 1);
  g_usleep (1100 * 1000);
  store_spool_submit (st, make_env (), g_bytes_new_static ("b\r\n", 3),
                      waiter_done, &w);
  waiter_wait (&w, 2);
  store_close (&st);
  st = open_store (keys);
  store_spool_submit (st, make_env (), g_bytes_new_static ("c\r\n", 3),
                      waiter_done, &w);
  waiter_wait (&w, 3);
  ck_assert_int_eq (w.failed, 0);
  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  {
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq (sqlite3_prepare_v2 (raw, "SELECT group_concat(key_id)"
                                               " FROM (SELECT key_id FROM"
                                               " spool ORDER BY id)", -1, &q,
                                          NULL), SQLITE_OK);
    ck_assert_int_eq (sqlite3_step (q), SQLITE_ROW);
    ck_assert_str_eq ((const char *) sqlite3_column_text (q, 0), "1,2,3");
    sqlite3_finalize (q);
  }
  sqlite3_close (raw);
  items = store_spool_list (st, 0, 10, NULL);
  ck_assert_uint_eq (items->len, 3);
  for (guint i = 0; i < 3; i++)
    ck_assert_ptr_null (((store_spool_item *) items->pdata[i])->error);
  store_close (&st);
  store_keys_free (&keys);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
}
END_TEST

static Suite *
store_suite (void)
{
  Suite *s = suite_create ("store");
  TCase *tc = tcase_create ("keys");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_key_missing);
  tcase_add_test (tc, test_key_mode_and_size);
  tcase_add_test (tc, test_seal_roundtrip_and_tamper);
  tcase_add_test (tc, test_aad_bytes);
  tcase_add_test (tc, test_aad_into_and_span_seal);
  tcase_add_test (tc, test_aad_every_width);
  tcase_add_test (tc, test_seal_nonces_distinct);
  tcase_add_test (tc, test_wrap_unwrap);
  tcase_add_test (tc, test_blind_index);
  suite_add_tcase (s, tc);

  tc = tcase_create ("refs");
  tcase_add_test (tc, test_ref_format);
  tcase_add_test (tc, test_ref_catches_errors);
  suite_add_tcase (s, tc);

  tc = tcase_create ("db");
  tcase_set_timeout (tc, 60);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_store_pragmas_and_version);
  tcase_add_test (tc, test_store_reader_needs_file);
  tcase_add_test (tc, test_spool_quarantine_partial_index);
  tcase_add_test (tc, test_spool_group_commit);
  tcase_add_test (tc, test_spool_large_batch);
  tcase_add_test (tc, test_checkpoint_copies_whole);
  tcase_add_test (tc, test_ingest_case_and_dedupe);
  tcase_add_test (tc, test_spool_tampered_row);
  tcase_add_test (tc, test_spool_tampered_envelope);
  tcase_add_test (tc, test_envelope_garbage);
  tcase_add_test (tc, test_envelope_pack_as_gvariant);
  tcase_add_test (tc, test_envelope_unpack_as_gvariant);
  tcase_add_test (tc, test_spool_key_rotation);
  tcase_add_test (tc, test_spool_key_new_period_and_restart);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (store_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
