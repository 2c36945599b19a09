/*
 * store_spool.c - the spool: raw messages and envelopes, sealed under the
 * spool key, committed before anyone is told "accepted".
 *
 * Owns: nothing beyond the calls.  Refuses: rows whose seal does not open
 * (tampered, or moved from another row).
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>

/* Envelope wire form: (source, client, helo, mail_from, rcpts, tls, time). */
#define STORE_ENVELOPE_TYPE "(ssssasbx)"

store_envelope *
store_envelope_new (void)
{
  store_envelope *env = g_new0 (store_envelope, 1);

  env->rcpts = g_ptr_array_new_with_free_func (g_free);
  return env;
}

void
store_envelope_free (store_envelope *env)
{
  if (env == NULL)
    return;
  g_free (env->source);
  g_free (env->client_addr);
  g_free (env->helo);
  g_free (env->mail_from);
  g_ptr_array_unref (env->rcpts);
  g_free (env);
}

GBytes *
store_envelope_pack (const store_envelope *env)
{
  GVariantBuilder rcpts;
  GVariant *v;
  GBytes *b;

  g_variant_builder_init (&rcpts, G_VARIANT_TYPE_STRING_ARRAY);
  for (guint i = 0; i < env->rcpts->len; i++)
    g_variant_builder_add (&rcpts, "s", (const char *) env->rcpts->pdata[i]);
  v = g_variant_ref_sink (g_variant_new (STORE_ENVELOPE_TYPE,
                                         env->source ? env->source : "",
                                         env->client_addr ? env->client_addr : "",
                                         env->helo ? env->helo : "",
                                         env->mail_from ? env->mail_from : "",
                                         &rcpts, env->tls,
                                         (gint64) env->received_at));
  b = g_variant_get_data_as_bytes (v);
  g_variant_unref (v);
  return b;
}

store_envelope *
store_envelope_unpack (GBytes *bytes, GError **error)
{
  g_autoptr (GVariant) v = NULL;
  g_autoptr (GVariantIter) it = NULL;
  store_envelope *env;
  const char *rcpt;
  gboolean tls;
  gint64 when;

  v = g_variant_ref_sink (g_variant_new_from_bytes (
      G_VARIANT_TYPE (STORE_ENVELOPE_TYPE), bytes, FALSE));
  if (!g_variant_is_normal_form (v))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                   "envelope is not in normal form");
      return NULL;
    }
  env = store_envelope_new ();
  g_variant_get (v, STORE_ENVELOPE_TYPE, &env->source, &env->client_addr,
                 &env->helo, &env->mail_from, &it, &tls, &when);
  while (g_variant_iter_next (it, "&s", &rcpt))
    g_ptr_array_add (env->rcpts, g_strdup (rcpt));
  env->tls = tls;
  env->received_at = when;
  return env;
}

/* ---------------------------------------------------------- insert job */

typedef struct {
  store_job job;
  store_envelope *env;
  GBytes *raw;
} store_spool_job;

static void
store_spool_job_free (store_job *job)
{
  store_spool_job *sj = (store_spool_job *) job;

  store_envelope_free (sj->env);
  g_bytes_unref (sj->raw);
  g_free (sj);
}

static gboolean
store_spool_job_run (store *s, sqlite3 *db, store_job *job, GError **error)
{
  store_spool_job *sj = (store_spool_job *) job;
  const guint8 *key = store_keys_get (s->keys, STORE_KEY_SPOOL);
  g_autoptr (GBytes) env_plain = NULL;
  g_autoptr (GBytes) env_sealed = NULL;
  g_autoptr (GBytes) raw_sealed = NULL;
  sqlite3_stmt *st;
  gint64 id;
  gsize n;
  const void *p;
  int rc;

  id = store_next_id (s, db, "spool", error);
  if (id < 0)
    return FALSE;
  env_plain = store_envelope_pack (sj->env);
  p = g_bytes_get_data (env_plain, &n);
  env_sealed = store_seal (key, "spool", "envelope", id, 0, p, n);
  p = g_bytes_get_data (sj->raw, &n);
  raw_sealed = store_seal (key, "spool", "raw", id, 0, p, n);

  st = store_stmt (s, db, "INSERT INTO spool (id, received_at, source, size,"
                          " envelope, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                      error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_int64 (st, 2, sj->env->received_at);
  sqlite3_bind_text (st, 3, sj->env->source, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 4, (gint64) n);
  p = g_bytes_get_data (env_sealed, &n);
  sqlite3_bind_blob64 (st, 5, p, n, SQLITE_STATIC);
  p = g_bytes_get_data (raw_sealed, &n);
  sqlite3_bind_blob64 (st, 6, p, n, SQLITE_STATIC);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "spool insert");
      return FALSE;
    }
  job->result_id = id;
  return TRUE;
}

void
store_spool_submit (store *s, store_envelope *env, GBytes *raw,
                    store_done_fn done, gpointer user_data)
{
  store_spool_job *sj = g_new0 (store_spool_job, 1);

  sj->job.run = store_spool_job_run;
  sj->job.free = store_spool_job_free;
  sj->job.done = done;
  sj->job.user_data = user_data;
  sj->job.weight = g_bytes_get_size (raw);
  sj->job.atomic = TRUE;
  sj->env = env;
  sj->raw = raw;
  __atomic_store_n (&s->last_spool_submit, g_get_monotonic_time (),
                    __ATOMIC_RELAXED);
  store_job_submit (s, &sj->job);
}

gint64
store_spool_last_submit (store *s)
{
  return __atomic_load_n (&s->last_spool_submit, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------- reading */

void
store_spool_item_free (store_spool_item *item)
{
  if (item == NULL)
    return;
  store_envelope_free (item->env);
  if (item->raw)
    g_bytes_unref (item->raw);
  g_clear_error (&item->error);
  g_free (item);
}

GPtrArray *
store_spool_list (store *s, gint64 after_id, guint max, GError **error)
{
  const guint8 *key = store_keys_get (s->keys, STORE_KEY_SPOOL);
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_spool_item_free);
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT id, envelope, raw FROM spool"
                              " WHERE id > ?1 ORDER BY id LIMIT ?2", error);
  if (st == NULL)
    goto fail;
  sqlite3_bind_int64 (st, 1, after_id);
  sqlite3_bind_int64 (st, 2, max);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (st, 0);
      g_autoptr (GBytes) env_plain = NULL;
      store_spool_item *item = g_new0 (store_spool_item, 1);

      /* A row that does not open is reported with its id and left in the
       * spool for a person; it never blocks the rows behind it.  */
      item->id = id;
      env_plain = store_unseal (key, "spool", "envelope", id, 0,
                                sqlite3_column_blob (st, 1),
                                sqlite3_column_bytes (st, 1), &item->error);
      if (env_plain != NULL)
        item->env = store_envelope_unpack (env_plain, &item->error);
      if (item->env != NULL)
        item->raw = store_unseal (key, "spool", "raw", id, 0,
                                  sqlite3_column_blob (st, 2),
                                  sqlite3_column_bytes (st, 2), &item->error);
      g_ptr_array_add (out, item);
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "spool list");
      goto fail;
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;

fail:
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  g_ptr_array_unref (out);
  return NULL;
}

gint64
store_spool_count (store *s, GError **error)
{
  sqlite3_stmt *st;
  gint64 n = -1;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT count(*) FROM spool", error);
  if (st != NULL && sqlite3_step (st) == SQLITE_ROW)
    n = sqlite3_column_int64 (st, 0);
  else if (st != NULL)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "spool count");
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return n;
}
