/*
 * test_rights.c - the key vault and erasure (issue 9) on real SQLite
 * files: vaulted wrapping (secret, subject and version bound in), a store
 * whose vault is missing or another database's refused at open, erasure
 * through the store (the vault secret gone, rows gone, the tombstone and
 * the export of an erased person), an erasure interrupted after its first
 * step finished exactly once, an erased person's data key not outliving
 * the erasure in the writer's key cache, and rows left by a restored
 * backup whose
 * secret is gone ("shredded"); the routing rule action `retention CLASS`
 * and the retention schedule file (errors name file, group and key).
 */
#include <check.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "router/rules.h"
#include "store/store.h"

static char *tmpdir;

static void
setup (void)
{
  tmpdir = g_dir_make_tmp ("intake-cases-XXXXXX", NULL);
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
load_keys (void)
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

static store *
open_store (store_keys *keys)
{
  g_autofree char *db = tmp_path ("intake.db");
  g_autoptr (GError) error = NULL;
  store *st = store_open (db, keys, STORE_OPEN_WRITER, &error);

  ck_assert_msg (st != NULL, "%s", error ? error->message : "");
  return st;
}

/* Raw SQL on the database file, as an attacker with the file would.  */
static void
raw_sql (const char *sql)
{
  g_autofree char *db = tmp_path ("intake.db");
  sqlite3 *raw;
  char *err = NULL;

  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  sqlite3_busy_timeout (raw, 5000);
  ck_assert_msg (sqlite3_exec (raw, sql, NULL, NULL, &err) == SQLITE_OK,
                 "%s: %s", sql, err ? err : "");
  sqlite3_close (raw);
}

static gint64
raw_int (const char *sql)
{
  g_autofree char *db = tmp_path ("intake.db");
  sqlite3 *raw;
  sqlite3_stmt *q;
  gint64 v = -1;

  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  ck_assert_int_eq (sqlite3_prepare_v2 (raw, sql, -1, &q, NULL), SQLITE_OK);
  if (sqlite3_step (q) == SQLITE_ROW)
    v = sqlite3_column_int64 (q, 0);
  sqlite3_finalize (q);
  sqlite3_close (raw);
  return v;
}

/* The blob of the first row of @sql (one ?1 bound to @id), read from the
 * file as an attacker would.  */
static GBytes *
raw_blob (const char *sql, gint64 id)
{
  g_autofree char *db = tmp_path ("intake.db");
  sqlite3 *raw;
  sqlite3_stmt *q;
  GBytes *b;

  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  ck_assert_int_eq (sqlite3_prepare_v2 (raw, sql, -1, &q, NULL), SQLITE_OK);
  if (id > 0)
    sqlite3_bind_int64 (q, 1, id);
  ck_assert_int_eq (sqlite3_step (q), SQLITE_ROW);
  b = g_bytes_new (sqlite3_column_blob (q, 0), sqlite3_column_bytes (q, 0));
  sqlite3_finalize (q);
  sqlite3_close (raw);
  return b;
}

/* ------------------------------------------------------ filing mail */

typedef struct {
  GMutex lock;
  GCond cond;
  int done;
  gint64 id;
  GError *error;
} waiter;

static void
waiter_done (gint64 id, const GError *error, gpointer data)
{
  waiter *w = data;

  g_mutex_lock (&w->lock);
  w->done++;
  w->id = id;
  g_clear_error (&w->error);
  if (error)
    w->error = g_error_copy (error);
  g_cond_signal (&w->cond);
  g_mutex_unlock (&w->lock);
}

static void
waiter_wait (waiter *w)
{
  g_mutex_lock (&w->lock);
  while (w->done == 0)
    g_cond_wait (&w->cond, &w->lock);
  w->done = 0;
  g_mutex_unlock (&w->lock);
}

typedef struct {
  const char *from;
  const char *message_id;
  const char *in_reply_to;
  const char *references;    /* one Message-ID */
  const char *ref;           /* a case reference found in the subject */
  const char *body;          /* makes the bytes unique */
  gboolean with_attachment;
} mail;

static store_envelope *
make_env (const char *from)
{
  store_envelope *env = store_envelope_new ();

  env->source = g_strdup ("smtp");
  env->client_addr = g_strdup ("192.0.2.1");
  env->helo = g_strdup ("client.example");
  env->mail_from = g_strdup (from);
  g_ptr_array_add (env->rcpts, g_strdup ("enquiries@council.example"));
  env->received_at = 1790000000LL * G_USEC_PER_SEC;
  return env;
}

/* Spool and file one message; the case id it went to, or -1 with the
 * filing's error in *@error (the spool row stays).  */
static gint64
file_mail_try (store *st, const mail *m, GError **error)
{
  waiter w = { 0 };
  g_autofree char *text = g_strdup_printf ("From: %s\r\nMessage-ID: <%s>\r\n"
                                           "\r\n%s\r\n", m->from,
                                           m->message_id, m->body);
  GBytes *raw = g_bytes_new (text, strlen (text));
  store_ingest *in = store_ingest_new ();
  gint64 spool_id, case_id;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  store_spool_submit (st, make_env (m->from), g_bytes_ref (raw), waiter_done,
                      &w);
  waiter_wait (&w);
  ck_assert_ptr_null (w.error);
  spool_id = w.id;

  in->spool_id = spool_id;
  in->env = make_env (m->from);
  in->raw = raw;
  in->from_addr = g_strdup (m->from);
  in->from_name = g_strdup ("A Person");
  in->subject = g_strdup ("about my bins");
  in->message_id = g_strdup (m->message_id);
  in->in_reply_to = g_strdup (m->in_reply_to);
  if (m->references)
    g_ptr_array_add (in->references, g_strdup (m->references));
  if (m->ref)
    g_ptr_array_add (in->case_refs, g_strdup (m->ref));
  in->text = g_strdup (m->body);
  in->queue = g_strdup ("general");
  in->kind = g_strdup ("enquiry");
  in->ref_prefix = g_strdup ("ESC");
  if (m->with_attachment)
    {
      store_attachment *a = store_attachment_new ();
      a->name = g_strdup ("photo of the bin.jpg");
      a->declared_type = g_strdup ("image/jpeg");
      a->detected_type = g_strdup ("image/jpeg");
      memcpy (a->sha256, "ab", 3);
      a->content = g_bytes_new_static ("JPEG-BYTES-PRIVATE", 18);
      g_ptr_array_add (in->attachments, a);
    }
  store_ingest_submit (st, in, waiter_done, &w);
  waiter_wait (&w);
  case_id = w.error == NULL ? w.id : -1;
  if (w.error != NULL)
    g_propagate_error (error, w.error);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
  return case_id;
}

static gint64
file_mail (store *st, const mail *m)
{
  g_autoptr (GError) error = NULL;
  gint64 case_id = file_mail_try (st, m, &error);

  ck_assert_msg (error == NULL, "%s", error ? error->message : "");
  return case_id;
}

/* The whole of @path (nullable: empty when missing).  */
static GBytes *
file_bytes (const char *name)
{
  g_autofree char *path = tmp_path (name);
  gchar *data = NULL;
  gsize len = 0;

  if (!g_file_get_contents (path, &data, &len, NULL))
    return g_bytes_new (NULL, 0);
  return g_bytes_new_take (data, len);
}

static gboolean
bytes_contain (GBytes *hay, const guint8 *needle, gsize n)
{
  gsize len;
  const guint8 *h = g_bytes_get_data (hay, &len);

  return h != NULL && len >= n && memmem (h, len, needle, n) != NULL;
}

/* How many of the 32-byte pieces of @sealed taken every 997 bytes (after
 * the first 64: the nonce and header) are in intake.db or its WAL;
 * *@tried: how many were looked for.  */
static guint
pieces_left (GBytes *sealed, guint *tried)
{
  g_autoptr (GBytes) db = file_bytes ("intake.db");
  g_autoptr (GBytes) wal = file_bytes ("intake.db-wal");
  gsize n;
  const guint8 *c = g_bytes_get_data (sealed, &n);
  guint found = 0;

  *tried = 0;
  for (gsize off = 64; off + 32 <= n; off += 997, (*tried)++)
    found += bytes_contain (db, c + off, 32) || bytes_contain (wal, c + off, 32);
  return found;
}

/* A message waits in the spool sealed under the spool key of the day,
 * which lives on until no spool row needs it (a day or more): when it is
 * filed, its spool row goes, and with it every byte of that ciphertext,
 * or an erasure of the person would not be complete until then (the
 * spool key would still open the message from the file's free pages).
 * A message large enough for overflow pages, filed, then the person
 * erased: no 32-byte piece of its spool ciphertext is left in the
 * database or its WAL.  */
START_TEST (test_erase_leaves_no_spool_ciphertext)
{
  g_autoptr (GError) error = NULL;
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  store_erasure_report r = { 0 };
  g_autoptr (GString) body = g_string_new (NULL);
  g_autoptr (GBytes) sealed = NULL;
  guint found, tried;

  for (guint i = 0; body->len < 40000; i++)
    g_string_append_printf (body, "line %u of a long letter about the"
                            " housing repair at 4 Oak Terrace\r\n", i);
  /* spooled only: the spool row's sealed raw bytes, as on disk */
  {
    waiter w = { 0 };
    g_autofree char *text = g_strdup_printf ("From: a@example.org\r\n"
                                             "Message-ID: <big@example.org>"
                                             "\r\n\r\n%s", body->str);

    g_mutex_init (&w.lock);
    g_cond_init (&w.cond);
    store_spool_submit (st, make_env ("a@example.org"),
                        g_bytes_new (text, strlen (text)), waiter_done, &w);
    waiter_wait (&w);
    ck_assert_ptr_null (w.error);
    sealed = raw_blob ("SELECT raw FROM spool", 0);
    g_mutex_clear (&w.lock);
    g_cond_clear (&w.cond);
    /* filed by hand below, this spool row and no other */
  }
  ck_assert_int_gt (g_bytes_get_size (sealed), 40000);
  {
    store_ingest *in = store_ingest_new ();
    waiter w = { 0 };
    g_autofree char *text = g_strdup_printf ("From: a@example.org\r\n"
                                             "Message-ID: <big@example.org>"
                                             "\r\n\r\n%s", body->str);

    g_mutex_init (&w.lock);
    g_cond_init (&w.cond);
    in->spool_id = raw_int ("SELECT id FROM spool");
    in->env = make_env ("a@example.org");
    in->raw = g_bytes_new (text, strlen (text));
    in->from_addr = g_strdup ("a@example.org");
    in->from_name = g_strdup ("A Person");
    in->subject = g_strdup ("repairs");
    in->message_id = g_strdup ("big@example.org");
    in->text = g_strdup (body->str);
    in->queue = g_strdup ("general");
    in->kind = g_strdup ("enquiry");
    in->ref_prefix = g_strdup ("ESC");
    store_ingest_submit (st, in, waiter_done, &w);
    waiter_wait (&w);
    ck_assert_msg (w.error == NULL, "%s", w.error ? w.error->message : "");
    g_mutex_clear (&w.lock);
    g_cond_clear (&w.cond);
  }
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM spool"), 0);
  ck_assert (store_subject_erase (st, store_subject_id (st, "a@example.org",
                                                        NULL),
                                  "request", "tester", &r, &error));
  store_close (&st);
  found = pieces_left (sealed, &tried);
  ck_assert_uint_gt (tried, 30);
  ck_assert_msg (found == 0, "%u of %u pieces of the spool ciphertext are"
                 " still in the file", found, tried);
  store_keys_free (&keys);
}
END_TEST

/* A case the retention schedule deletes goes whole, even while its person
 * stays (another case is open, so the data key lives on): no piece of
 * the deleted message's ciphertext is left in the database or its WAL,
 * where that key would still open it.  */
START_TEST (test_retention_leaves_no_ciphertext)
{
  g_autoptr (GError) error = NULL;
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  store_retention_policy *p = store_retention_policy_new ();
  store_retention_report r = { 0 };
  g_autoptr (GString) body = g_string_new (NULL);
  g_autoptr (GBytes) sealed = NULL;
  gint64 old_case;
  guint found, tried;

  for (guint i = 0; body->len < 40000; i++)
    g_string_append_printf (body, "line %u of an old letter about the"
                            " garden wall at 9 Elm Close\r\n", i);
  old_case = file_mail (st, &(mail){ "a@example.org", "old@example.org",
                                     NULL, NULL, NULL, body->str, FALSE });
  file_mail (st, &(mail){ "a@example.org", "new@example.org", NULL, NULL,
                          NULL, "a new question", FALSE });
  sealed = raw_blob ("SELECT raw FROM messages WHERE case_id = ?1", old_case);
  ck_assert_int_gt (g_bytes_get_size (sealed), 40000);
  {
    g_autofree char *sql = g_strdup_printf (
        "UPDATE cases SET status = 'closed', closed_at = 1000000,"
        " created_at = 1000000 WHERE id = %" G_GINT64_FORMAT, old_case);
    raw_sql (sql);
  }
  ck_assert (store_retention_run (st, p, g_get_real_time (),
                                  STORE_RETENTION_CONFIRM_CLOCK_JUMP, &r,
                                  NULL, &error));
  ck_assert_int_eq (r.deleted, 1);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM cases"), 1);
  ck_assert_int_gt (store_subject_id (st, "a@example.org", NULL), 0);
  store_close (&st);
  found = pieces_left (sealed, &tried);
  ck_assert_uint_gt (tried, 30);
  ck_assert_msg (found == 0, "%u of %u pieces of the deleted message's"
                 " ciphertext are still in the file", found, tried);
  store_retention_policy_free (p);
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_vaulted_wrap)
{
  g_autofree char *path = tmp_path ("master.key");
  store_keys *keys = load_keys ();
  guint8 *dk = store_keys_data_key_new ();
  guint8 secret[STORE_VAULT_SECRET_BYTES], other[STORE_VAULT_SECRET_BYTES];
  guint8 back[STORE_KEY_BYTES];
  g_autoptr (GBytes) w = NULL;
  gsize n;
  const guint8 *p;

  store_keys_secret_fill (secret);
  store_keys_secret_fill (other);
  w = store_keys_wrap_vaulted (keys, dk, 42, secret);
  p = g_bytes_get_data (w, &n);
  ck_assert (store_keys_wrapped_vaulted (p, n));
  ck_assert_uint_eq (store_keys_wrapped_version (p, n), 1);
  ck_assert (store_keys_unwrap_secret_into (keys, p, n, 42, secret, back,
                                            NULL));
  ck_assert_int_eq (memcmp (back, dk, STORE_KEY_BYTES), 0);
  /* without the secret, with another one, for another subject: refused */
  ck_assert (!store_keys_unwrap_secret_into (keys, p, n, 42, NULL, back,
                                             NULL));
  ck_assert_ptr_null (store_keys_unwrap (keys, p, n, 42, NULL));
  ck_assert (!store_keys_unwrap_secret_into (keys, p, n, 42, other, back,
                                             NULL));
  ck_assert (!store_keys_unwrap_secret_into (keys, p, n, 43, secret, back,
                                             NULL));
  /* a plain wrap is not taken for a vaulted one */
  {
    g_autoptr (GBytes) plain = store_keys_wrap (keys, dk, 42);
    const guint8 *q = g_bytes_get_data (plain, &n);
    ck_assert (!store_keys_wrapped_vaulted (q, n));
  }
  /* another master key version: the same secret does not open it */
  store_keys_free (&keys);
  ck_assert_uint_eq (store_keys_add_version (path, NULL), 2);
  keys = load_keys ();
  {
    g_autoptr (GBytes) w2 = store_keys_wrap_vaulted (keys, dk, 42, secret);
    guint8 *q = (guint8 *) g_bytes_get_data (w2, &n);
    ck_assert_uint_eq (store_keys_wrapped_version (q, n), 2);
    ck_assert (store_keys_unwrap_secret_into (keys, q, n, 42, secret, back,
                                              NULL));
    q[3] = 1;                   /* claims version 1 */
    ck_assert (!store_keys_unwrap_secret_into (keys, q, n, 42, secret, back,
                                               NULL));
  }
  store_keys_data_key_free (dk);
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_vault_missing_or_foreign)
{
  g_autofree char *db = tmp_path ("intake.db");
  g_autofree char *vault = tmp_path ("intake-vault.db");
  g_autofree char *db2 = tmp_path ("other.db");
  g_autofree char *vault2 = tmp_path ("other-vault.db");
  g_autofree char *moved = tmp_path ("moved-vault.db");
  g_autoptr (GError) error = NULL;
  store_keys *keys = load_keys ();
  store *st = open_store (keys);

  file_mail (st, &(mail){ "a@example.org", "m1@example.org", NULL, NULL, NULL,
                          "words", FALSE });
  store_close (&st);
  ck_assert (g_file_test (vault, G_FILE_TEST_EXISTS));
  ck_assert_int_eq (raw_int ("SELECT vault FROM subjects"), 1);
  /* another database with a vault of its own */
  st = store_open (db2, keys, STORE_OPEN_WRITER, &error);
  ck_assert_ptr_nonnull (st);
  store_close (&st);
  ck_assert (g_file_test (vault2, G_FILE_TEST_EXISTS));

  ck_assert_int_eq (g_rename (vault, moved), 0);
  ck_assert_ptr_null (store_open (db, keys, 0, &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_CRYPTO));
  ck_assert (strstr (error->message, "missing") != NULL);
  g_clear_error (&error);
  ck_assert_ptr_null (store_open (db, keys, STORE_OPEN_WRITER, &error));
  g_clear_error (&error);
  ck_assert (!g_file_test (vault, G_FILE_TEST_EXISTS));
  /* the other database's vault: refused by its binding */
  ck_assert_ptr_null (store_open_full (db, vault2, keys, 0, &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_CRYPTO));
  g_clear_error (&error);
  /* the right one, under another name */
  st = store_open_full (db, moved, keys, 0, &error);
  ck_assert_msg (st != NULL, "%s", error ? error->message : "");
  {
    g_autoptr (GPtrArray) all = store_case_list (st, &error);
    store_case_view *v = all->pdata[0];
    ck_assert_str_eq (v->from_addr, "a@example.org");
  }
  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_erase_through_the_store)
{
  g_autoptr (GError) error = NULL;
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  store_erasure_report r = { 0 };
  gint64 a, b;

  file_mail (st, &(mail){ "a@example.org", "m1@example.org", NULL, NULL, NULL,
                          "first", TRUE });
  file_mail (st, &(mail){ "a@example.org", "m2@example.org", NULL, NULL, NULL,
                          "second", FALSE });
  file_mail (st, &(mail){ "b@example.org", "m3@example.org", NULL, NULL, NULL,
                          "third", FALSE });
  a = store_subject_id (st, "a@example.org", NULL);
  b = store_subject_id (st, "b@example.org", NULL);
  ck_assert (!store_subject_erase (st, a, "because she asked", "t", &r,
                                   &error));
  g_clear_error (&error);
  ck_assert (store_subject_erase (st, a, "request", "tester", &r, &error));
  ck_assert_int_eq (r.messages, 2);
  ck_assert_int_eq (r.attachments, 1);
  ck_assert_int_eq (r.cases, 2);
  ck_assert (r.vault_secret);
  ck_assert (r.wal_truncated);
  ck_assert_int_eq (store_subject_id (st, "a@example.org", NULL), -1);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM messages"), 1);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM cases"), 3);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM cases WHERE subject_id"
                             " IS NULL AND erased_messages = 1"), 2);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM erasures WHERE"
                             " erased_at IS NOT NULL"), 1);
  /* again: not found; the export shows the erasure only */
  ck_assert (!store_subject_erase (st, a, "request", "tester", &r, &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND));
  g_clear_error (&error);
  {
    g_autofree char *doc = store_subject_export (st, a, "tester", &error);
    ck_assert_msg (doc != NULL, "%s", error ? error->message : "");
    ck_assert (strstr (doc, "\"subject.erase\"") != NULL);
    ck_assert (strstr (doc, "a@example.org") == NULL);
    ck_assert (strstr (doc, "\"cases\" : [\n  ]") != NULL
               || strstr (doc, "\"cases\" : []") != NULL);
  }
  {
    g_autofree char *doc = store_subject_export (st, b, "tester", &error);
    ck_assert (strstr (doc, "b@example.org") != NULL);
  }
  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

/* The writer keeps the data keys it opened (store_keycache.c); an erased
 * person's key must not outlive the erasure there.  In this process: the
 * next message from the address opens a new subject.  From another
 * process (intakectl): the subject is marked and its vault secret deleted
 * behind the writer's back; filing must then fail as it did before the
 * cache (the message stays in the spool), never use the cached key, and
 * once the rows are gone the message gets a new subject.  */
START_TEST (test_erase_with_cached_key)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *vault = tmp_path ("intake-vault.db");
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  store_erasure_report r = { 0 };
  gint64 a, a2, a3;
  char sql[256];

  for (int i = 0; i < 3; i++)
    {
      char mid[64], body[64];
      g_snprintf (mid, sizeof mid, "c%d@example.org", i);
      g_snprintf (body, sizeof body, "message %d", i);
      file_mail (st, &(mail){ "a@example.org", mid, NULL, NULL, NULL, body,
                              FALSE });
    }
  a = store_subject_id (st, "a@example.org", NULL);
  ck_assert_int_gt (a, 0);
  ck_assert (store_subject_erase (st, a, "request", "tester", &r, &error));
  file_mail (st, &(mail){ "a@example.org", "c3@example.org", NULL, NULL,
                          NULL, "after the erasure", FALSE });
  a2 = store_subject_id (st, "a@example.org", NULL);
  ck_assert_int_gt (a2, 0);
  ck_assert_int_ne (a2, a);
  {
    g_autofree char *doc = store_subject_export (st, a2, "tester", &error);
    ck_assert_msg (doc != NULL, "%s", error ? error->message : "");
    ck_assert (strstr (doc, "after the erasure") != NULL);
  }
  /* the key of a2 is in the writer's cache now; another process marks
   * the subject (step 1) and deletes its secret (step 2) */
  file_mail (st, &(mail){ "a@example.org", "c4@example.org", NULL, NULL,
                          NULL, "cached again", FALSE });
  g_snprintf (sql, sizeof sql, "UPDATE subjects SET erasing_at = 1 WHERE"
              " id = %" G_GINT64_FORMAT ";"
              "INSERT INTO erasures (subject_id, requested_at, actor, reason)"
              " VALUES (%" G_GINT64_FORMAT ", 1, 'tester', 'request')",
              a2, a2);
  raw_sql (sql);
  {
    sqlite3 *v;
    char *err = NULL;
    g_snprintf (sql, sizeof sql, "DELETE FROM secrets WHERE subject_id = %"
                G_GINT64_FORMAT, a2);
    ck_assert_int_eq (sqlite3_open (vault, &v), SQLITE_OK);
    sqlite3_busy_timeout (v, 5000);
    ck_assert_msg (sqlite3_exec (v, sql, NULL, NULL, &err) == SQLITE_OK,
                   "%s", err ? err : "");
    ck_assert_int_eq (sqlite3_changes (v), 1);
    sqlite3_close (v);
  }
  ck_assert_int_eq (file_mail_try (st, &(mail){ "a@example.org",
                                                "c5@example.org", NULL, NULL,
                                                NULL, "while erasing", FALSE },
                                   &error), -1);
  ck_assert_ptr_nonnull (error);
  g_clear_error (&error);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM messages WHERE"
                             " subject_id = (SELECT id FROM subjects WHERE"
                             " erasing_at IS NOT NULL)"), 2);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM spool"), 1);
  /* step 3 finishes; the address is a stranger again */
  ck_assert_int_eq (store_erase_resume (st, &error), 1);
  file_mail (st, &(mail){ "a@example.org", "c6@example.org", NULL, NULL,
                          NULL, "a new start", FALSE });
  a3 = store_subject_id (st, "a@example.org", NULL);
  ck_assert_int_gt (a3, 0);
  ck_assert_int_ne (a3, a2);
  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

/* The writer's opened keys go with an erasure in this process and after
 * their TTL (10 s) even when no more mail comes to look them up: an idle
 * writer used to keep them until the next letter from a known sender.  */
static gboolean
wait_keys_held (store *st, guint want, gint64 within_us)
{
  gint64 end = g_get_monotonic_time () + within_us;

  while (store_writer_keys_held (st) != want)
    {
      if (g_get_monotonic_time () > end)
        return FALSE;
      g_usleep (50 * 1000);
    }
  return TRUE;
}

START_TEST (test_cached_key_goes_while_idle)
{
  g_autoptr (GError) error = NULL;
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  store_erasure_report r = { 0 };
  gint64 a;

  file_mail (st, &(mail){ "a@example.org", "i1@example.org", NULL, NULL,
                          NULL, "first", FALSE });
  file_mail (st, &(mail){ "b@example.org", "i2@example.org", NULL, NULL,
                          NULL, "second", FALSE });
  ck_assert_uint_eq (store_writer_keys_held (st), 2);
  a = store_subject_id (st, "a@example.org", NULL);
  ck_assert (store_subject_erase (st, a, "request", "tester", &r, &error));
  /* the erasure wipes the whole cache within a second or two */
  ck_assert_msg (wait_keys_held (st, 0, 3 * G_USEC_PER_SEC),
                 "%u keys held 3 s after an erasure",
                 store_writer_keys_held (st));
  /* a key opened again goes after its TTL with no mail at all */
  file_mail (st, &(mail){ "b@example.org", "i3@example.org", NULL, NULL,
                          NULL, "third", FALSE });
  ck_assert_uint_eq (store_writer_keys_held (st), 1);
  ck_assert_msg (wait_keys_held (st, 0, 13 * G_USEC_PER_SEC),
                 "%u keys held 13 s after the last letter",
                 store_writer_keys_held (st));
  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_erase_resumed_once)
{
  g_autoptr (GError) error = NULL;
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  gint64 a;

  file_mail (st, &(mail){ "a@example.org", "m1@example.org", NULL, NULL, NULL,
                          "first", FALSE });
  a = store_subject_id (st, "a@example.org", NULL);
  store_close (&st);
  /* killed after step 1: marked, tombstone written, nothing deleted */
  raw_sql ("UPDATE subjects SET erasing_at = 1;"
           "INSERT INTO erasures (subject_id, requested_at, actor, reason)"
           " SELECT id, 1, 'tester', 'request' FROM subjects");
  st = open_store (keys);
  ck_assert_int_eq (store_erase_resume (st, &error), 1);
  ck_assert_int_eq (store_erase_resume (st, &error), 0);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM subjects"), 0);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM audit WHERE action ="
                             " 'subject.erase'"), 1);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM erasures WHERE"
                             " erased_at IS NOT NULL"), 1);
  ck_assert_int_eq (store_subject_id (st, "a@example.org", NULL), -1);
  (void) a;
  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_rule_retention_action)
{
  static const char text[] =
      "queues general\n"
      "default queue general\n"
      "rule \"fines\" when subject contains \"parking fine\"\n"
      "  then retention financial\n";
  g_autoptr (GError) error = NULL;
  rules *r = rules_load_text ("rules.conf", text, -1, &error);
  const char *rcpts[] = { "enquiries@council.example", NULL };
  g_autoptr (GDateTime) now = g_date_time_new_utc (2026, 11, 25, 12, 0, 0);
  rules_input in = { .recipients = rcpts, .subject = "Parking fine appeal",
                     .body = "", .received = now };
  rules_decision d;

  ck_assert_msg (r != NULL, "%s", error ? error->message : "");
  rules_decide (r, &in, &d);
  ck_assert_str_eq (d.retention, "financial");
  rules_decision_clear (&d);
  in.subject = "Bins";
  rules_decide (r, &in, &d);
  ck_assert_ptr_null (d.retention);
  rules_decision_clear (&d);
  rules_unref (r);
  ck_assert_ptr_null (rules_load_text ("rules.conf",
                                       "default queue general, retention\n",
                                       -1, NULL));
}
END_TEST

START_TEST (test_retention_schedule_file)
{
  g_autofree char *path = tmp_path ("retention.conf");
  g_autoptr (GError) error = NULL;
  store_retention_policy *p;

  ck_assert (g_file_set_contents (path,
                                  "[classes]\nenquiry = 1\nlong = 9\n"
                                  "[defaults]\ndefault = enquiry\n"
                                  "queue.archive = long\n"
                                  "[limits]\nmaximum_years = 10\n", -1,
                                  NULL));
  p = store_retention_policy_load (path, &error);
  ck_assert_msg (p != NULL, "%s", error ? error->message : "");
  ck_assert (store_retention_class_known (p, "long"));
  ck_assert (!store_retention_class_known (p, "complaint"));
  ck_assert_uint_eq (p->maximum_years, 10);
  ck_assert_uint_eq (p->subject_inactive_years, 2);
  store_retention_policy_free (p);
  ck_assert (g_file_set_contents (path,
                                  "[classes]\nenquiry = 1\n"
                                  "[defaults]\nkind.complaint = nine\n",
                                  -1, NULL));
  ck_assert_ptr_null (store_retention_policy_load (path, &error));
  ck_assert (strstr (error->message, "kind.complaint") != NULL);
  g_clear_error (&error);
  ck_assert (g_file_set_contents (path, "[classes]\nenquiry = two\n", -1,
                                  NULL));
  ck_assert_ptr_null (store_retention_policy_load (path, &error));
  ck_assert (strstr (error->message, "[classes] enquiry") != NULL);
}
END_TEST

static Suite *
rights_suite (void)
{
  Suite *s = suite_create ("rights");
  TCase *tc = tcase_create ("vault");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_vaulted_wrap);
  tcase_add_test (tc, test_vault_missing_or_foreign);
  tcase_add_test (tc, test_erase_through_the_store);
  tcase_add_test (tc, test_erase_leaves_no_spool_ciphertext);
  tcase_add_test (tc, test_retention_leaves_no_ciphertext);
  tcase_add_test (tc, test_erase_resumed_once);
  tcase_add_test (tc, test_erase_with_cached_key);
  tcase_add_test (tc, test_cached_key_goes_while_idle);
  tcase_add_test (tc, test_rule_retention_action);
  tcase_add_test (tc, test_retention_schedule_file);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (rights_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
