/*
 * store_spoolkey.c - the spool's keys: a new one every period (a day
 * unless [store] spool_key_lifetime says otherwise), and each destroyed
 * once no spool row needs it.  SECURITY-TESTS 98: "the intake key rotates
 * daily, and no staging ciphertext stays past the window".
 *
 * The key of period N (N >= 1) is keyed BLAKE2b-256, under the master
 * key's spool key, of N and a random secret kept in the key vault
 * (store_vault.c), never in the database: once the vault forgets the
 * secret, no copy of the database -- the live file's free pages, its WAL,
 * a backup -- opens what was sealed under it, even with the master key.
 * Key 0 is the master key's spool key itself, which sealed the rows
 * spooled before schema 12; the first rotation run re-seals them.
 *
 * The writer seals each new row under the current key and starts a new
 * one when the current one is a period old.  store_spool_rotate_submit()
 * (intaked runs it every minute) re-seals the rows still under a key a
 * period old or older -- a message quarantined, or waiting while the
 * pipeline is stopped -- under the current key, and destroys the secrets
 * no row uses: those it found unused at its run before too, so that a
 * read which began before a re-seal committed still finds the key it
 * needs.  A secret is destroyed after the commit that left it unused,
 * never before: a batch that rolls back still has its keys.
 *
 * Owns: the keys' cache (secure memory) that readers and the writer share
 * under its lock; the writer's current key and its bookkeeping (writer
 * thread only).
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>

#include <sodium.h>

#define STORE_SPOOLKEY_SLOTS 8
/* Keys destroyed lately, that a read racing the destruction must not put
 * back into the cache.  */
#define STORE_SPOOLKEY_GONE 64

struct store_spoolkeys {
  GMutex lock;                       /* the cache: ids and mem's slots */
  guint8 *mem;                       /* SLOTS + 1 keys in secure memory;
                                      * the last is the writer's current
                                      * key */
  gint64 ids[STORE_SPOOLKEY_SLOTS];  /* 0: an empty slot */
  guint next;                        /* the slot to reuse next */
  gint64 gone[STORE_SPOOLKEY_GONE];  /* ids destroyed lately, a ring */
  guint gone_next;
  gint64 lifetime;                   /* us */
  /* writer thread only */
  gint64 cur_id;                     /* 0: none yet */
  gint64 cur_created;                /* unix us */
  gboolean cur_pending;              /* made in the open batch */
  GArray *unused;                    /* gint64: unused at the last run
                                      * that committed */
  GArray *unused_next;               /* the same, found by the open batch */
  gboolean unused_next_set;
  GArray *doomed;                    /* gint64: to destroy after commit */
};

store_spoolkeys *
store_spoolkeys_new (void)
{
  store_spoolkeys *c = g_new0 (store_spoolkeys, 1);

  g_mutex_init (&c->lock);
  c->mem = sodium_malloc ((STORE_SPOOLKEY_SLOTS + 1) * STORE_KEY_BYTES);
  g_assert (c->mem != NULL);
  sodium_memzero (c->mem, (STORE_SPOOLKEY_SLOTS + 1) * STORE_KEY_BYTES);
  c->lifetime = (gint64) STORE_SPOOL_KEY_LIFETIME_S * G_USEC_PER_SEC;
  c->unused = g_array_new (FALSE, FALSE, sizeof (gint64));
  c->unused_next = g_array_new (FALSE, FALSE, sizeof (gint64));
  c->doomed = g_array_new (FALSE, FALSE, sizeof (gint64));
  return c;
}

void
store_spoolkeys_free (store_spoolkeys **cp)
{
  store_spoolkeys *c = cp ? *cp : NULL;

  if (c == NULL)
    return;
  sodium_free (c->mem);
  g_mutex_clear (&c->lock);
  g_array_unref (c->unused);
  g_array_unref (c->unused_next);
  g_array_unref (c->doomed);
  g_free (c);
  *cp = NULL;
}

static guint8 *
store_spoolkey_cur (store_spoolkeys *c)
{
  return c->mem + STORE_SPOOLKEY_SLOTS * STORE_KEY_BYTES;
}

void
store_spool_key_set_lifetime (store *s, guint seconds)
{
  g_return_if_fail (seconds > 0);
  s->spoolkeys->lifetime = (gint64) seconds * G_USEC_PER_SEC;
}

/* The key of period @id from its vault @secret.  */
static void
store_spoolkey_derive (const store_keys *keys, gint64 id,
                       const guint8 *secret, guint8 *out)
{
  static const char label[] = "intake spool key";
  crypto_generichash_state h;
  guint8 id_be[8];

  for (guint i = 0; i < 8; i++)
    id_be[i] = (guint8) ((guint64) id >> (56 - 8 * i));
  crypto_generichash_init (&h, store_keys_get (keys, STORE_KEY_SPOOL),
                           STORE_KEY_BYTES, STORE_KEY_BYTES);
  crypto_generichash_update (&h, (const guint8 *) label, sizeof label);
  crypto_generichash_update (&h, id_be, sizeof id_be);
  crypto_generichash_update (&h, secret, STORE_VAULT_SECRET_BYTES);
  crypto_generichash_final (&h, out, STORE_KEY_BYTES);
  sodium_memzero (&h, sizeof h);
}

static gboolean
store_spoolkey_cache_get (store_spoolkeys *c, gint64 id, guint8 *out)
{
  gboolean found = FALSE;

  g_mutex_lock (&c->lock);
  for (guint i = 0; i < STORE_SPOOLKEY_SLOTS && !found; i++)
    if (c->ids[i] == id)
      {
        memcpy (out, c->mem + i * STORE_KEY_BYTES, STORE_KEY_BYTES);
        found = TRUE;
      }
  g_mutex_unlock (&c->lock);
  return found;
}

static void
store_spoolkey_cache_put (store_spoolkeys *c, gint64 id, const guint8 *key)
{
  guint slot = STORE_SPOOLKEY_SLOTS;

  g_mutex_lock (&c->lock);
  for (guint i = 0; i < STORE_SPOOLKEY_GONE; i++)
    if (c->gone[i] == id)
      {
        g_mutex_unlock (&c->lock);
        return;
      }
  for (guint i = 0; i < STORE_SPOOLKEY_SLOTS; i++)
    if (c->ids[i] == id)
      slot = i;
  if (slot == STORE_SPOOLKEY_SLOTS)
    {
      slot = c->next;
      c->next = (c->next + 1) % STORE_SPOOLKEY_SLOTS;
    }
  c->ids[slot] = id;
  memcpy (c->mem + slot * STORE_KEY_BYTES, key, STORE_KEY_BYTES);
  g_mutex_unlock (&c->lock);
}

static void
store_spoolkey_cache_forget (store_spoolkeys *c, gint64 id)
{
  g_mutex_lock (&c->lock);
  c->gone[c->gone_next] = id;
  c->gone_next = (c->gone_next + 1) % STORE_SPOOLKEY_GONE;
  for (guint i = 0; i < STORE_SPOOLKEY_SLOTS; i++)
    if (c->ids[i] == id)
      {
        c->ids[i] = 0;
        sodium_memzero (c->mem + i * STORE_KEY_BYTES, STORE_KEY_BYTES);
      }
  g_mutex_unlock (&c->lock);
}

/* The vault connection beside @db: the writer's own, or the shared one
 * (locked by the caller).  */
static sqlite3 *
store_spoolkey_vdb (store *s, sqlite3 *db)
{
  return db == s->wdb ? s->wvault : s->rvault;
}

gboolean
store_spool_key_get (store *s, sqlite3 *db, gint64 id, guint8 *out,
                     GError **error)
{
  store_spoolkeys *c = s->spoolkeys;
  gboolean writer = db == s->wdb;
  guint8 *secret;
  sqlite3_stmt *st = NULL;
  sqlite3 *vdb;
  gboolean ok = FALSE;
  int rc;

  if (id == 0)
    {
      memcpy (out, store_keys_get (s->keys, STORE_KEY_SPOOL), STORE_KEY_BYTES);
      return TRUE;
    }
  if (writer && id == c->cur_id)
    {
      memcpy (out, store_spoolkey_cur (c), STORE_KEY_BYTES);
      return TRUE;
    }
  if (store_spoolkey_cache_get (c, id, out))
    return TRUE;
  secret = sodium_malloc (STORE_VAULT_SECRET_BYTES);
  g_assert (secret != NULL);
  if (!writer)
    store_vault_lock (s);
  vdb = store_spoolkey_vdb (s, db);
  rc = vdb == NULL ? SQLITE_MISUSE
                   : sqlite3_prepare_v2 (vdb, "SELECT secret FROM"
                                              " spool_secrets WHERE id = ?1",
                                         -1, &st, NULL);
  if (rc == SQLITE_OK)
    {
      sqlite3_bind_int64 (st, 1, id);
      rc = sqlite3_step (st);
    }
  if (rc == SQLITE_ROW
      && sqlite3_column_bytes (st, 0) == STORE_VAULT_SECRET_BYTES)
    {
      memcpy (secret, sqlite3_column_blob (st, 0), STORE_VAULT_SECRET_BYTES);
      store_spoolkey_derive (s->keys, id, secret, out);
      ok = TRUE;
    }
  else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                 "spool key %" G_GINT64_FORMAT " is not in the key vault"
                 " (destroyed, or the vault is not this spool's)", id);
  else
    store_set_sqlite_error (error, vdb, rc, "key vault: spool key");
  sqlite3_finalize (st);
  if (!writer)
    store_vault_unlock (s);
  sodium_free (secret);
  /* a read that raced the key's destruction does not put it back */
  if (ok)
    store_spoolkey_cache_put (c, id, out);
  return ok;
}

const guint8 *
store_spool_key_current (store *s, sqlite3 *db, gint64 *id, GError **error)
{
  store_spoolkeys *c = s->spoolkeys;
  gint64 now = g_get_real_time ();
  guint8 *secret;
  sqlite3_stmt *st = NULL;
  gint64 next;
  int rc;

  g_assert (db == s->wdb);
  /* a clock set back does not keep a key alive */
  if (c->cur_id > 0 && now >= c->cur_created
      && now - c->cur_created < c->lifetime)
    {
      *id = c->cur_id;
      return store_spoolkey_cur (c);
    }
  if (!store_vault_begin (s->wvault, error))
    return NULL;
  secret = sodium_malloc (STORE_VAULT_SECRET_BYTES);
  g_assert (secret != NULL);
  store_keys_secret_fill (secret);
  /* AUTOINCREMENT: a committed id, even one destroyed since, is never
   * handed out again (an id a rolled-back batch used was in no row) */
  rc = sqlite3_prepare_v2 (s->wvault, "INSERT INTO spool_secrets"
                                      " (secret, created_at)"
                                      " VALUES (?1, ?2)", -1, &st, NULL);
  if (rc == SQLITE_OK)
    {
      sqlite3_bind_blob (st, 1, secret, STORE_VAULT_SECRET_BYTES,
                         SQLITE_STATIC);
      sqlite3_bind_int64 (st, 2, now);
      rc = sqlite3_step (st);
    }
  sqlite3_finalize (st);
  next = sqlite3_last_insert_rowid (s->wvault);
  if (rc != SQLITE_DONE)
    {
      sodium_free (secret);
      store_set_sqlite_error (error, s->wvault, rc, "key vault: spool key");
      return NULL;
    }
  store_spoolkey_derive (s->keys, next, secret, store_spoolkey_cur (c));
  sodium_free (secret);
  c->cur_id = next;
  c->cur_created = now;
  c->cur_pending = TRUE;
  *id = next;
  return store_spoolkey_cur (c);
}

void
store_spool_key_batch_forget (store *s)
{
  store_spoolkeys *c = s->spoolkeys;

  /* its secret went with the vault's rollback (or stays, unused, if the
   * vault had committed: the next run destroys it) */
  if (c->cur_pending)
    {
      c->cur_id = 0;
      c->cur_pending = FALSE;
      sodium_memzero (store_spoolkey_cur (c), STORE_KEY_BYTES);
    }
  g_array_set_size (c->doomed, 0);
  c->unused_next_set = FALSE;
}

void
store_spool_key_batch_done (store *s)
{
  store_spoolkeys *c = s->spoolkeys;
  sqlite3_stmt *st = NULL;
  GError *error = NULL;
  int rc = SQLITE_DONE, log = 0, done = 0;

  c->cur_pending = FALSE;
  if (c->unused_next_set)
    {
      g_array_set_size (c->unused, 0);
      g_array_append_vals (c->unused, c->unused_next->data,
                           c->unused_next->len);
      c->unused_next_set = FALSE;
    }
  if (c->doomed->len == 0)
    return;
  if (!store_vault_begin (s->wvault, &error))
    goto out;
  rc = sqlite3_prepare_v2 (s->wvault, "DELETE FROM spool_secrets"
                                      " WHERE id = ?1", -1, &st, NULL);
  for (guint i = 0; rc == SQLITE_OK && i < c->doomed->len; i++)
    {
      sqlite3_bind_int64 (st, 1, g_array_index (c->doomed, gint64, i));
      rc = sqlite3_step (st);
      sqlite3_reset (st);
      if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_OK)
    {
      store_set_sqlite_error (&error, s->wvault, rc, "key vault: spool key");
      store_vault_rollback (s->wvault);
      goto out;
    }
  if (!store_vault_commit (s->wvault, &error))
    goto out;
  /* as for an erasure: no file of the vault keeps the secret */
  rc = sqlite3_wal_checkpoint_v2 (s->wvault, NULL,
                                  SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
  if (rc != SQLITE_OK || log != 0)
    g_warning ("event=spool-key-checkpoint result=deferred");
  for (guint i = 0; i < c->doomed->len; i++)
    {
      gint64 id = g_array_index (c->doomed, gint64, i);
      store_spoolkey_cache_forget (c, id);
      g_message ("event=spool-key-destroyed key=%" G_GINT64_FORMAT, id);
    }
out:
  if (error != NULL)
    {
      /* still unused at the next run, and destroyed then */
      g_warning ("event=spool-key-destroy result=failed error=%s",
                 error->message);
      g_error_free (error);
    }
  g_array_set_size (c->doomed, 0);
}

/* ----------------------------------------------------- the vault's keys */

static gint
store_spool_key_info_cmp (gconstpointer a, gconstpointer b)
{
  const store_spool_key_info *x = a, *y = b;

  return x->id < y->id ? -1 : x->id > y->id;
}

static store_spool_key_info *
store_spool_key_info_find (GArray *out, gint64 id)
{
  for (guint i = 0; i < out->len; i++)
    if (g_array_index (out, store_spool_key_info, i).id == id)
      return &g_array_index (out, store_spool_key_info, i);
  return NULL;
}

/* Every key in the key vault @vdb (the writer's own, or the shared one
 * with vlock held): its id and when it was made, appended to @out
 * (store_spool_key_info, in_vault set).  */
static gboolean
store_spoolkey_vault_list (sqlite3 *vdb, GArray *out, GError **error)
{
  sqlite3_stmt *st = NULL;
  int rc = vdb == NULL ? SQLITE_MISUSE
                       : sqlite3_prepare_v2 (vdb, "SELECT id, created_at"
                                                  " FROM spool_secrets", -1,
                                             &st, NULL);

  while (rc == SQLITE_OK && (rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      store_spool_key_info k = { 0 };

      k.id = sqlite3_column_int64 (st, 0);
      k.created_at = sqlite3_column_int64 (st, 1);
      k.in_vault = TRUE;
      g_array_append_val (out, k);
      rc = SQLITE_OK;
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, vdb, rc, "key vault: spool keys");
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------ rotation */

typedef struct {
  store_job job;
  guint max;                   /* rows re-sealed at most */
  store_spool_rotation *out;   /* (nullable) */
} store_rotate_job;

static void
store_rotate_job_free (store_job *job)
{
  g_free (job);
}

static gboolean
store_spoolkey_contains (GArray *a, gint64 id)
{
  for (guint i = 0; i < a->len; i++)
    if (g_array_index (a, gint64, i) == id)
      return TRUE;
  return FALSE;
}

/* The first column of every row of @st (bound, then released) in @out.  */
static gboolean
store_spoolkey_column (sqlite3 *db, sqlite3_stmt *st, GArray *out,
                       const char *what, GError **error)
{
  int rc;

  g_array_set_size (out, 0);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (st, 0);
      g_array_append_val (out, id);
    }
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, what);
      return FALSE;
    }
  return TRUE;
}

/* The ids of the spool's keys in use (key 0 too), in @used.  */
static gboolean
store_spoolkey_used (store *s, sqlite3 *db, GArray *used, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db, "SELECT DISTINCT key_id FROM spool",
                                 error);

  return st != NULL
         && store_spoolkey_column (db, st, used, "spool keys in use", error);
}

/* Re-seal the rows under key @old (at most @max) under the current key
 * @cur (id @cur_id); how many, or -1.  A row that does not open stays as
 * it is, for a person (it keeps its key alive).  */
static gint64
store_spoolkey_reseal (store *s, sqlite3 *db, gint64 old, const guint8 *cur,
                       gint64 cur_id, guint max, guint *unreadable,
                       GError **error)
{
  guint8 *key = sodium_malloc (STORE_KEY_BYTES);
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  sqlite3_stmt *st;
  gint64 n = 0;
  int rc;

  g_assert (key != NULL);
  if (!store_spool_key_get (s, db, old, key, error))
    {
      sodium_free (key);
      return -1;
    }
  st = store_stmt (s, db, "SELECT id FROM spool WHERE key_id = ?1"
                          " ORDER BY id LIMIT ?2", error);
  if (st == NULL)
    goto fail;
  sqlite3_bind_int64 (st, 1, old);
  sqlite3_bind_int64 (st, 2, max);
  if (!store_spoolkey_column (db, st, ids, "spool re-seal", error))
    goto fail;
  for (guint i = 0; i < ids->len; i++)
    {
      gint64 id = g_array_index (ids, gint64, i);
      g_autoptr (GBytes) env = NULL;
      g_autoptr (GBytes) raw = NULL;
      g_autoptr (GBytes) env_sealed = NULL;
      g_autoptr (GBytes) raw_sealed = NULL;
      const void *p;
      gsize len;

      st = store_stmt (s, db, "SELECT envelope, raw FROM spool WHERE id = ?1",
                       error);
      if (st == NULL)
        goto fail;
      sqlite3_bind_int64 (st, 1, id);
      if ((rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          env = store_unseal (key, "spool", "envelope", id, 0,
                              sqlite3_column_blob (st, 0),
                              sqlite3_column_bytes (st, 0), NULL);
          raw = store_unseal (key, "spool", "raw", id, 0,
                              sqlite3_column_blob (st, 1),
                              sqlite3_column_bytes (st, 1), NULL);
        }
      store_stmt_release (st);
      if (rc != SQLITE_ROW)
        {
          store_set_sqlite_error (error, db, rc, "spool re-seal");
          goto fail;
        }
      if (env == NULL || raw == NULL)
        {
          (*unreadable)++;
          g_warning ("event=spool-key-reseal result=unreadable spool=%"
                     G_GINT64_FORMAT, id);
          continue;
        }
      p = g_bytes_get_data (env, &len);
      env_sealed = store_seal (cur, "spool", "envelope", id, 0, p, len);
      p = g_bytes_get_data (raw, &len);
      raw_sealed = store_seal (cur, "spool", "raw", id, 0, p, len);
      st = store_stmt (s, db, "UPDATE spool SET envelope = ?2, raw = ?3,"
                              " key_id = ?4 WHERE id = ?1", error);
      if (st == NULL)
        goto fail;
      sqlite3_bind_int64 (st, 1, id);
      p = g_bytes_get_data (env_sealed, &len);
      sqlite3_bind_blob64 (st, 2, p, len, SQLITE_STATIC);
      p = g_bytes_get_data (raw_sealed, &len);
      sqlite3_bind_blob64 (st, 3, p, len, SQLITE_STATIC);
      sqlite3_bind_int64 (st, 4, cur_id);
      if (!store_step_done (db, st, "spool re-seal", error))
        goto fail;
      n++;
    }
  sodium_free (key);
  return n;

fail:
  sodium_free (key);
  return -1;
}

static gboolean
store_rotate_job_run (store *s, sqlite3 *db, store_job *job, GError **error)
{
  store_rotate_job *rj = (store_rotate_job *) job;
  store_spoolkeys *c = s->spoolkeys;
  store_spool_rotation r = { 0 };
  g_autoptr (GArray) used = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr (GArray) unused = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr (GArray) vault = g_array_new (FALSE, TRUE,
                                          sizeof (store_spool_key_info));
  gint64 now = g_get_real_time ();
  const guint8 *cur;
  gint64 cur_id;
  guint budget = rj->max;

  /* 1. a current key no older than the period (a new one if it is) */
  cur = store_spool_key_current (s, db, &cur_id, error);
  if (cur == NULL)
    return FALSE;
  r.key = cur_id;
  r.rotated = c->cur_pending;

  /* 2. when each key in the vault was made */
  if (!store_spoolkey_vault_list (s->wvault, vault, error))
    return FALSE;

  /* 3. the rows under a key a period old (or under key 0, or a key the
   * vault does not date) re-sealed under the current one; their old
   * ciphertext is overwritten, not left in free pages (the writer's
   * connection has secure_delete on) */
  if (!store_spoolkey_used (s, db, used, error))
    return FALSE;
  for (guint i = 0; i < used->len && budget > 0; i++)
    {
      gint64 k = g_array_index (used, gint64, i);
      const store_spool_key_info *made = store_spool_key_info_find (vault, k);
      gint64 n;

      if (k == cur_id)
        continue;
      if (k != 0 && made != NULL && now >= made->created_at
          && now - made->created_at < c->lifetime)
        continue;
      n = store_spoolkey_reseal (s, db, k, cur, cur_id, budget,
                                 &r.unreadable, error);
      if (n < 0)
        return FALSE;
      r.resealed += n;
      budget -= (guint) MIN ((gint64) budget, n);
      if (budget == 0)
        r.more = TRUE;
    }

  /* 4. the keys no row uses (nor the writer) are destroyed after this
   * commit if they were unused at the run before too */
  if (!store_spoolkey_used (s, db, used, error))
    return FALSE;
  for (guint i = 0; i < vault->len; i++)
    {
      gint64 id = g_array_index (vault, store_spool_key_info, i).id;

      if (id == cur_id || store_spoolkey_contains (used, id))
        continue;
      g_array_append_val (unused, id);
      if (store_spoolkey_contains (c->unused, id))
        {
          g_array_append_val (c->doomed, id);
          r.destroyed++;
        }
    }
  g_array_set_size (c->unused_next, 0);
  g_array_append_vals (c->unused_next, unused->data, unused->len);
  c->unused_next_set = TRUE;
  r.waiting = unused->len - r.destroyed;
  if (rj->out != NULL)
    *rj->out = r;
  job->result_id = r.resealed;
  return TRUE;
}

void
store_spool_rotate_submit (store *s, guint max, store_spool_rotation *out,
                           store_done_fn done, gpointer user_data)
{
  store_rotate_job *rj = g_new0 (store_rotate_job, 1);

  rj->job.run = store_rotate_job_run;
  rj->job.free = store_rotate_job_free;
  rj->job.done = done;
  rj->job.user_data = user_data;
  rj->max = max > 0 ? max : 1;
  rj->out = out;
  store_job_submit (s, &rj->job);
}

/* ------------------------------------------------------------ listing */

GArray *
store_spool_keys_list (store *s, GError **error)
{
  GArray *out = g_array_new (FALSE, TRUE, sizeof (store_spool_key_info));
  sqlite3_stmt *st;
  int rc;

  store_vault_lock (s);
  if (!store_spoolkey_vault_list (s->rvault, out, error))
    {
      store_vault_unlock (s);
      g_array_unref (out);
      return NULL;
    }
  store_vault_unlock (s);

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT key_id, count(*) FROM spool"
                              " GROUP BY key_id", error);
  rc = st == NULL ? SQLITE_ERROR : SQLITE_OK;
  while (st != NULL && (rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (st, 0);
      store_spool_key_info *k = store_spool_key_info_find (out, id);

      if (k == NULL)
        {
          store_spool_key_info n = { .id = id };
          g_array_append_val (out, n);
          k = &g_array_index (out, store_spool_key_info, out->len - 1);
        }
      k->rows = sqlite3_column_int64 (st, 1);
    }
  if (st != NULL && rc != SQLITE_DONE)
    store_set_sqlite_error (error, s->rdb, rc, "spool keys");
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  if (rc != SQLITE_DONE)
    {
      g_array_unref (out);
      return NULL;
    }
  g_array_sort (out, store_spool_key_info_cmp);
  return out;
}
