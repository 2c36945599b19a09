/*
 * store_vault.c - the key vault: the part of each data subject's key that
 * lives outside the database.
 *
 * A small SQLite file of its own (default: beside the database, named
 * after it, "intake-vault.db" for "intake.db"; [store] vault) holds one
 * random 32-byte secret per data subject.  A subject's data key is wrapped
 * under BLAKE2b(key-wrapping key, subject id, secret) (store_keys.h), so
 * deleting the secret here makes every copy of that subject's rows -- in
 * the live database, its WAL, or a backup taken before the erasure --
 * unreadable for good, even with the master key.  The vault must never be
 * backed up together with the database (docs/rights.md).
 *
 * Owns: the vault connections (one for the writer thread, whose inserts
 * are committed just before the batch that needs them; one for everyone
 * else, serialised by vlock).
 * Refuses: to create an empty vault for a database whose subjects already
 * need one (a vault that was not restored is an error, not a fresh start).
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#define STORE_VAULT_BUSY_MS 5000

static const char store_vault_schema[] =
  "CREATE TABLE IF NOT EXISTS secrets ("
  "  subject_id INTEGER PRIMARY KEY,"
  "  secret BLOB NOT NULL,"             /* 32 random bytes */
  "  created_at INTEGER NOT NULL"
  ");"
  /* one per period of the spool's key (store_spoolkey.c); an id is never
   * handed out again once committed */
  "CREATE TABLE IF NOT EXISTS spool_secrets ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  secret BLOB NOT NULL,"             /* 32 random bytes */
  "  created_at INTEGER NOT NULL"       /* unix us */
  ");"
  "CREATE TABLE IF NOT EXISTS meta ("   /* id: random, made once; the */
  "  k TEXT PRIMARY KEY,"               /* database remembers it */
  "  v BLOB NOT NULL"
  ");"
  "INSERT OR IGNORE INTO meta (k, v) VALUES ('id', randomblob(16));";

char *
store_vault_default_path (const char *db_path)
{
  g_autofree char *dir = g_path_get_dirname (db_path);
  g_autofree char *base = g_path_get_basename (db_path);
  g_autofree char *stem = NULL;
  g_autofree char *name = NULL;

  if (g_str_has_suffix (base, ".db"))
    stem = g_strndup (base, strlen (base) - 3);
  else
    stem = g_strdup (base);
  name = g_strconcat (stem, "-vault.db", NULL);
  return g_build_filename (dir, name, NULL);
}

sqlite3 *
store_vault_connect (const char *path, gboolean create, GError **error)
{
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  sqlite3 *db = NULL;
  mode_t old;
  int rc;

  if (create)
    flags |= SQLITE_OPEN_CREATE;
  old = umask (077);
  rc = sqlite3_open_v2 (path, &db, flags, NULL);
  umask (old);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_OPEN, "key vault %s: %s",
                   path, db ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
      sqlite3_close (db);
      return NULL;
    }
  sqlite3_busy_timeout (db, STORE_VAULT_BUSY_MS);
  sqlite3_extended_result_codes (db, 1);
  /* secure_delete=ON: a deleted secret is overwritten in its page, and a
   * freed page is zeroed.  */
  rc = sqlite3_exec (db, "PRAGMA journal_mode=WAL;"
                         "PRAGMA synchronous=FULL;"
                         "PRAGMA secure_delete=ON;", NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec (db, store_vault_schema, NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, rc, "key vault");
      sqlite3_close (db);
      return NULL;
    }
  return db;
}

/* The vault connection to use beside @db: the writer's, or the shared one
 * (then vlock is held by the caller).  */
static sqlite3 *
store_vault_db (store *s, sqlite3 *db)
{
  return db == s->wdb ? s->wvault : s->rvault;
}

void
store_vault_lock (store *s)
{
  g_rec_mutex_lock (&s->vlock);
}

void
store_vault_unlock (store *s)
{
  g_rec_mutex_unlock (&s->vlock);
}

/* Look up the secret of @subject_id into @out; *@found tells whether
 * there is one.  */
static gboolean
store_vault_get (store *s, sqlite3 *db, gint64 subject_id, guint8 *out,
                 gboolean *found, GError **error)
{
  sqlite3 *vdb;
  sqlite3_stmt *st = NULL, **cached;
  gboolean ok = FALSE;
  int rc;

  *found = FALSE;
  if (db != s->wdb)
    store_vault_lock (s);
  vdb = store_vault_db (s, db);
  if (vdb == NULL)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                   "no key vault is open");
      goto out;
    }
  /* prepared once per connection (a queue page asks for fifty secrets);
   * finalized by store_close() */
  cached = vdb == s->wvault ? &s->wvault_get : &s->rvault_get;
  if (*cached == NULL)
    {
      rc = sqlite3_prepare_v3 (vdb, "SELECT secret FROM secrets"
                                    " WHERE subject_id = ?1", -1,
                               SQLITE_PREPARE_PERSISTENT, cached, NULL);
      if (rc != SQLITE_OK)
        {
          store_set_sqlite_error (error, vdb, rc, "key vault");
          goto out;
        }
    }
  st = *cached;
  sqlite3_bind_int64 (st, 1, subject_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW
      && sqlite3_column_bytes (st, 0) == STORE_VAULT_SECRET_BYTES)
    {
      memcpy (out, sqlite3_column_blob (st, 0), STORE_VAULT_SECRET_BYTES);
      *found = TRUE;
      ok = TRUE;
    }
  else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    ok = TRUE;
  else
    store_set_sqlite_error (error, vdb, rc, "key vault");
out:
  if (st != NULL)
    {
      sqlite3_reset (st);         /* ends the read transaction */
      sqlite3_clear_bindings (st);
    }
  if (db != s->wdb)
    store_vault_unlock (s);
  return ok;
}

gboolean
store_vault_has (store *s, sqlite3 *db, gint64 subject_id)
{
  guint8 *secret = sodium_malloc (STORE_VAULT_SECRET_BYTES);
  gboolean found = FALSE;

  g_assert (secret != NULL);
  if (!store_vault_get (s, db, subject_id, secret, &found, NULL))
    found = FALSE;
  sodium_free (secret);
  return found;
}

gboolean
store_vault_begin (sqlite3 *vdb, GError **error)
{
  int rc;

  if (!sqlite3_get_autocommit (vdb))
    return TRUE;                /* already in one */
  rc = sqlite3_exec (vdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    {
      store_set_sqlite_error (error, vdb, rc, "key vault begin");
      return FALSE;
    }
  return TRUE;
}

gboolean
store_vault_commit (sqlite3 *vdb, GError **error)
{
  int rc;

  if (vdb == NULL || sqlite3_get_autocommit (vdb))
    return TRUE;
  rc = sqlite3_exec (vdb, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    {
      store_set_sqlite_error (error, vdb, rc, "key vault commit");
      sqlite3_exec (vdb, "ROLLBACK", NULL, NULL, NULL);
      return FALSE;
    }
  return TRUE;
}

void
store_vault_rollback (sqlite3 *vdb)
{
  if (vdb != NULL && !sqlite3_get_autocommit (vdb))
    sqlite3_exec (vdb, "ROLLBACK", NULL, NULL, NULL);
}

/* Put @secret for @subject_id into @vdb inside its open transaction.  A
 * row left by a batch that was rolled back after its vault commit is
 * replaced: subject ids are handed out again after a rollback, and such a
 * secret never wrapped a committed data key.  */
static gboolean
store_vault_put (sqlite3 *vdb, gint64 subject_id, const guint8 *secret,
                 GError **error)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (vdb, "INSERT OR REPLACE INTO secrets"
                                    " (subject_id, secret, created_at)"
                                    " VALUES (?1, ?2, ?3)", -1, &st, NULL);

  if (rc == SQLITE_OK)
    {
      sqlite3_bind_int64 (st, 1, subject_id);
      sqlite3_bind_blob (st, 2, secret, STORE_VAULT_SECRET_BYTES,
                         SQLITE_STATIC);
      sqlite3_bind_int64 (st, 3, g_get_real_time ());
      rc = sqlite3_step (st);
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, vdb, rc, "key vault insert");
      return FALSE;
    }
  return TRUE;
}

GBytes *
store_subject_key_new (store *s, sqlite3 *db, gint64 subject_id,
                       guint8 *data_key, GError **error)
{
  sqlite3 *vdb = store_vault_db (s, db);
  guint8 *secret = sodium_malloc (STORE_VAULT_SECRET_BYTES);
  GBytes *wrapped = NULL;

  g_assert (secret != NULL);
  /* Off the writer, the caller holds vlock and has begun the vault
   * transaction (it commits it before its own).  */
  if (db == s->wdb && !store_vault_begin (vdb, error))
    goto out;
  store_keys_secret_fill (secret);
  if (!store_vault_put (vdb, subject_id, secret, error))
    goto out;
  store_keys_data_key_fill (data_key);
  wrapped = store_keys_wrap_vaulted (s->keys, data_key, subject_id, secret);
out:
  sodium_free (secret);
  return wrapped;
}

GBytes *
store_subject_key_rewrap (store *s, sqlite3 *db, gint64 subject_id,
                          const void *wrapped, gsize len, guint8 *scratch,
                          GError **error)
{
  sqlite3 *vdb = store_vault_db (s, db);
  guint8 *secret = sodium_malloc (STORE_VAULT_SECRET_BYTES);
  GBytes *out = NULL;
  gboolean found = FALSE;

  g_assert (secret != NULL);
  if (!store_subject_key_unwrap_into (s, db, wrapped, len, subject_id,
                                      scratch, error))
    goto out;
  if (store_keys_wrapped_vaulted (wrapped, len))
    {
      if (!store_vault_get (s, db, subject_id, secret, &found, error))
        goto out;
      g_assert (found);        /* it just opened with it */
    }
  else
    {
      store_keys_secret_fill (secret);
      if (!store_vault_put (vdb, subject_id, secret, error))
        goto out;
    }
  out = store_keys_wrap_vaulted (s->keys, scratch, subject_id, secret);
out:
  sodium_memzero (scratch, STORE_KEY_BYTES);
  sodium_free (secret);
  return out;
}

gboolean
store_subject_key_unwrap_into (store *s, sqlite3 *db, const void *wrapped,
                               gsize len, gint64 subject_id, guint8 *out,
                               GError **error)
{
  guint8 *secret = NULL;
  gboolean ok;

  if (store_keys_wrapped_vaulted (wrapped, len))
    {
      secret = sodium_malloc (STORE_VAULT_SECRET_BYTES);
      g_assert (secret != NULL);
    }
  ok = store_subject_key_unwrap_scratch (s, db, wrapped, len, subject_id,
                                         secret, out, error);
  if (secret != NULL)
    sodium_free (secret);
  return ok;
}

gboolean
store_subject_key_unwrap_scratch (store *s, sqlite3 *db, const void *wrapped,
                                  gsize len, gint64 subject_id,
                                  guint8 *scratch, guint8 *out,
                                  GError **error)
{
  gboolean found = FALSE, ok;
  GError *local = NULL;

  if (store_keys_wrapped_vaulted (wrapped, len))
    {
      g_assert (scratch != NULL);
      if (!store_vault_get (s, db, subject_id, scratch, &found, error))
        return FALSE;
    }
  ok = store_keys_unwrap_secret_into (s->keys, wrapped, len, subject_id,
                                      found ? scratch : NULL, out, &local);
  if (scratch != NULL)
    sodium_memzero (scratch, STORE_VAULT_SECRET_BYTES);
  if (!ok)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                   "data key of subject %" G_GINT64_FORMAT ": %s", subject_id,
                   local->message);
      g_error_free (local);
    }
  return ok;
}

guint8 *
store_subject_key_unwrap (store *s, sqlite3 *db, const void *wrapped,
                          gsize len, gint64 subject_id, GError **error)
{
  guint8 *k = sodium_malloc (STORE_KEY_BYTES);

  g_assert (k != NULL);
  if (!store_subject_key_unwrap_into (s, db, wrapped, len, subject_id, k,
                                      error))
    {
      sodium_free (k);
      return NULL;
    }
  return k;
}

static gboolean store_vault_forget_n (store *s, GArray *ids, gint64 *had,
                                      GError **error);

gboolean
store_vault_forget (store *s, gint64 subject_id, gboolean *had,
                    GError **error)
{
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  gint64 n = 0;
  gboolean ok;

  g_array_append_val (ids, subject_id);
  ok = store_vault_forget_n (s, ids, &n, error);
  *had = n > 0;
  return ok;
}

gboolean
store_vault_forget_many (store *s, GArray *ids, GError **error)
{
  gint64 n = 0;

  return store_vault_forget_n (s, ids, &n, error);
}

static gboolean
store_vault_forget_n (store *s, GArray *ids, gint64 *had, GError **error)
{
  sqlite3 *vdb;
  sqlite3_stmt *st = NULL;
  gboolean ok = FALSE;
  int rc = SQLITE_DONE, log = 0, done = 0;

  *had = 0;
  store_keycache_epoch ();      /* the writer's opened keys go too */
  store_vault_lock (s);
  vdb = s->rvault;
  if (!store_vault_begin (vdb, error))
    goto out;
  if (sqlite3_prepare_v2 (vdb, "DELETE FROM secrets WHERE subject_id = ?1",
                          -1, &st, NULL) != SQLITE_OK)
    rc = sqlite3_errcode (vdb);
  for (guint i = 0; st != NULL && i < ids->len; i++)
    {
      sqlite3_bind_int64 (st, 1, g_array_index (ids, gint64, i));
      rc = sqlite3_step (st);
      sqlite3_reset (st);
      if (rc != SQLITE_DONE)
        break;
      *had += sqlite3_changes (vdb);
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, vdb, rc, "key vault delete");
      store_vault_rollback (vdb);
      goto out;
    }
  /* committed with synchronous=FULL: the deletion is on disk before any
   * row of the subject goes */
  if (!store_vault_commit (vdb, error))
    goto out;
  /* Copy the page without the secret into the vault file and cut the WAL
   * to nothing, so no file of the vault still holds it.  */
  rc = sqlite3_wal_checkpoint_v2 (vdb, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                  &log, &done);
  if (rc != SQLITE_OK || log != 0)
    {
      store_set_sqlite_error (error, vdb, rc == SQLITE_OK ? SQLITE_BUSY : rc,
                              "key vault checkpoint");
      goto out;
    }
  ok = TRUE;
out:
  store_vault_unlock (s);
  return ok;
}

/* The database remembers the id of the first vault it used and refuses
 * any other: another database's vault would make every key look erased. */
static gboolean
store_vault_bind (store *s, sqlite3 *db, GError **error)
{
  sqlite3_stmt *st = NULL;
  g_autoptr (GBytes) vid = NULL;
  gboolean ok = FALSE;
  int rc;

  if (sqlite3_prepare_v2 (s->rvault, "SELECT v FROM meta WHERE k = 'id'", -1,
                          &st, NULL) == SQLITE_OK
      && sqlite3_step (st) == SQLITE_ROW)
    vid = g_bytes_new (sqlite3_column_blob (st, 0),
                       sqlite3_column_bytes (st, 0));
  sqlite3_finalize (st);
  if (vid == NULL)
    {
      store_set_sqlite_error (error, s->rvault, sqlite3_errcode (s->rvault),
                              "key vault id");
      return FALSE;
    }
  if (sqlite3_prepare_v2 (db, "SELECT vault_id FROM vault_binding", -1, &st,
                          NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "vault binding");
      return FALSE;
    }
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      gsize n;
      const void *p = g_bytes_get_data (vid, &n);
      ok = (gsize) sqlite3_column_bytes (st, 0) == n
           && memcmp (sqlite3_column_blob (st, 0), p, n) == 0;
      if (!ok)
        g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                     "key vault %s is not the one this database uses:"
                     " wrong vault file; refusing to start", s->vault_path);
      sqlite3_finalize (st);
      return ok;
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "vault binding");
      return FALSE;
    }
  if (sqlite3_prepare_v2 (db, "INSERT OR IGNORE INTO vault_binding (id,"
                              " vault_id) VALUES (1, ?1)", -1, &st, NULL)
      == SQLITE_OK)
    {
      gsize n;
      const void *p = g_bytes_get_data (vid, &n);
      sqlite3_bind_blob (st, 1, p, n, SQLITE_STATIC);
      rc = sqlite3_step (st);
    }
  else
    rc = sqlite3_errcode (db);
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "vault binding");
      return FALSE;
    }
  return TRUE;
}

gboolean
store_vault_open (store *s, gboolean writer, GError **error)
{
  gboolean exists = g_file_test (s->vault_path, G_FILE_TEST_EXISTS);
  sqlite3 *db = writer ? s->wdb : s->rdb;
  sqlite3_stmt *st = NULL;
  gboolean needed = FALSE;

  if (!exists)
    {
      /* an empty vault for keys that need one would hide a missing
       * restore until the first read */
      if (sqlite3_prepare_v2 (db, "SELECT 1 FROM subjects WHERE vault = 1"
                                  " LIMIT 1", -1, &st, NULL) == SQLITE_OK
          && sqlite3_step (st) == SQLITE_ROW)
        needed = TRUE;
      sqlite3_finalize (st);
      if (needed)
        {
          g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                       "key vault %s is missing but the database's data keys"
                       " need it: restore it from its own backup ([store]"
                       " vault names it); refusing to start", s->vault_path);
          return FALSE;
        }
    }
  s->rvault = store_vault_connect (s->vault_path, TRUE, error);
  if (s->rvault == NULL)
    return FALSE;
  if (!store_vault_bind (s, db, error))
    return FALSE;
  if (writer)
    {
      s->wvault = store_vault_connect (s->vault_path, FALSE, error);
      if (s->wvault == NULL)
        return FALSE;
    }
  return TRUE;
}
