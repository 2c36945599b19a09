/*
 * store_spool.c - the spool: raw messages and envelopes, sealed under the
 * spool key of the day (store_spoolkey.c), committed before anyone is told
 * "accepted".
 *
 * Owns: nothing beyond the calls.  Refuses: rows whose seal does not open
 * (tampered, or moved from another row).
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>

#include <sodium.h>

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

/* The offset size GVariant gives a container of @body bytes with @n
 * framing offsets (gvs_calculate_total_size () and gvs_get_offset_size ()
 * of GLib's gvariant-serialiser.c): the total size in *@total.  */
static guint
store_envelope_offset_size (gsize body, gsize n, gsize *total)
{
  if (n == 0)
    *total = body;
  else if (body + n <= G_MAXUINT8)
    *total = body + n;
  else if (body + 2 * n <= G_MAXUINT16)
    *total = body + 2 * n;
  else if (body + 4 * n <= G_MAXUINT32)
    *total = body + 4 * n;
  else
    *total = body + 8 * n;
  return *total == 0 ? 0
         : *total <= G_MAXUINT8 ? 1
         : *total <= G_MAXUINT16 ? 2
         : *total <= G_MAXUINT32 ? 4 : 8;
}

static void
store_envelope_put_offset (GByteArray *b, gsize at, gsize value, guint size)
{
  for (guint i = 0; i < size; i++)
    b->data[at + i] = (guint8) (value >> (8 * i));
}

static void
store_envelope_put_string (GByteArray *b, const char *s)
{
  g_byte_array_append (b, (const guint8 *) s, (guint) strlen (s) + 1);
}

/* The envelope serialised by hand exactly as GVariant serialises
 * STORE_ENVELOPE_TYPE in normal form: four strings, an array of strings,
 * a boolean and an int64 (aligned to 8), then the five strings' and the
 * array's end offsets, last first.  g_variant_new () took a third of the
 * writer's time to spool a message (32k of 88k instructions); this takes
 * a few hundred.  NULL if a string is not UTF-8 (GVariant's path decides
 * then).  test_store test_envelope_pack_as_gvariant compares the two.  */
GBytes *
store_envelope_pack_direct (const store_envelope *env)
{
  const char *s[4] = { env->source ? env->source : "",
                       env->client_addr ? env->client_addr : "",
                       env->helo ? env->helo : "",
                       env->mail_from ? env->mail_from : "" };
  gsize ends[5], body = 0, arr_body = 0, arr_total, total;
  guint arr_osz, osz;
  GByteArray *b;

  for (guint i = 0; i < 4; i++)
    {
      if (!g_utf8_validate (s[i], -1, NULL))
        return NULL;
      body += strlen (s[i]) + 1;
      ends[i] = body;
    }
  for (guint i = 0; i < env->rcpts->len; i++)
    {
      const char *r = env->rcpts->pdata[i];
      if (r == NULL || !g_utf8_validate (r, -1, NULL))
        return NULL;
      arr_body += strlen (r) + 1;
    }
  arr_osz = store_envelope_offset_size (arr_body, env->rcpts->len,
                                        &arr_total);
  body += arr_total;
  ends[4] = body;
  body += 1;                            /* b */
  body += (8 - body % 8) % 8;           /* x is aligned to 8 */
  body += 8;
  osz = store_envelope_offset_size (body, 5, &total);

  b = g_byte_array_sized_new ((guint) total);
  for (guint i = 0; i < 4; i++)
    store_envelope_put_string (b, s[i]);
  {
    gsize start = b->len, at, end = 0;

    for (guint i = 0; i < env->rcpts->len; i++)
      store_envelope_put_string (b, env->rcpts->pdata[i]);
    at = b->len;
    g_byte_array_set_size (b, (guint) (start + arr_total));
    for (guint i = 0; i < env->rcpts->len; i++)
      {
        end += strlen (env->rcpts->pdata[i]) + 1;
        store_envelope_put_offset (b, at + i * arr_osz, end, arr_osz);
      }
  }
  {
    guint8 t = env->tls ? 1 : 0;
    gint64 when = (gint64) env->received_at;

    g_byte_array_append (b, &t, 1);
    while (b->len % 8 != 0)
      g_byte_array_append (b, (const guint8 *) "", 1);
    g_byte_array_append (b, (const guint8 *) &when, sizeof when);
  }
  g_byte_array_set_size (b, (guint) total);
  for (guint i = 0; i < 5; i++)
    store_envelope_put_offset (b, total - (i + 1) * osz, ends[i], osz);
  return g_byte_array_free_to_bytes (b);
}

gboolean
store_envelope_equal (const store_envelope *a, const store_envelope *b)
{
  if (g_strcmp0 (a->source, b->source) != 0
      || g_strcmp0 (a->client_addr, b->client_addr) != 0
      || g_strcmp0 (a->helo, b->helo) != 0
      || g_strcmp0 (a->mail_from, b->mail_from) != 0
      || a->tls != b->tls || a->received_at != b->received_at
      || a->rcpts->len != b->rcpts->len)
    return FALSE;
  for (guint i = 0; i < a->rcpts->len; i++)
    if (g_strcmp0 (a->rcpts->pdata[i], b->rcpts->pdata[i]) != 0)
      return FALSE;
  return TRUE;
}

GBytes *
store_envelope_pack (const store_envelope *env)
{
  GBytes *fast = store_envelope_pack_direct (env);

  return fast != NULL ? fast : store_envelope_pack_gvariant (env);
}

GBytes *
store_envelope_pack_gvariant (const store_envelope *env)
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

/* A little-endian offset of @size bytes at @p.  */
static gsize
store_envelope_get_offset (const guint8 *p, guint size)
{
  gsize v = 0;

  for (guint i = 0; i < size; i++)
    v |= (gsize) p[i] << (8 * i);
  return v;
}

/* (transfer full) The string [@from, @to) of @d if it is one: ends with
 * its only NUL, UTF-8.  */
static char *
store_envelope_get_string (const guint8 *d, gsize from, gsize to)
{
  if (from >= to || d[to - 1] != '\0'
      || memchr (d + from, '\0', to - from - 1) != NULL
      || !g_utf8_validate ((const char *) d + from, (gssize) (to - from - 1),
                           NULL))
    return NULL;
  return g_strndup ((const char *) d + from, to - from - 1);
}

/* Read @bytes by hand as store_envelope_pack_direct () writes them: NULL
 * unless every offset, string and the layout hold, and packing the result
 * again gives exactly @bytes -- so only what is in GVariant's normal form
 * is taken (zero padding, the smallest offset size, a boolean of 0 or 1),
 * and anything else is left to GVariant's own checks.  g_variant_get ()
 * cost 37k instructions an envelope, in the master for every message an
 * SMTP child hands over and in the pipeline for every spool row.  */
store_envelope *
store_envelope_unpack_direct (GBytes *bytes)
{
  gsize n;
  const guint8 *d = g_bytes_get_data (bytes, &n);
  gsize ends[5], body, prev = 0, x_at;
  guint osz;
  store_envelope *env;
  g_autoptr (GBytes) again = NULL;

  if (d == NULL || n == 0)
    return NULL;
  osz = n <= G_MAXUINT8 ? 1 : n <= G_MAXUINT16 ? 2 : n <= G_MAXUINT32 ? 4 : 8;
  if (n < 5 * (gsize) osz + 9)
    return NULL;
  body = n - 5 * (gsize) osz;
  for (guint i = 0; i < 5; i++)
    {
      ends[i] = store_envelope_get_offset (d + n - (i + 1) * osz, osz);
      if (ends[i] < prev || ends[i] > body)
        return NULL;
      prev = ends[i];
    }
  x_at = ends[4] + 1;
  x_at += (8 - x_at % 8) % 8;
  if (x_at + 8 != body)
    return NULL;
  env = store_envelope_new ();
  env->source = store_envelope_get_string (d, 0, ends[0]);
  env->client_addr = store_envelope_get_string (d, ends[0], ends[1]);
  env->helo = store_envelope_get_string (d, ends[1], ends[2]);
  env->mail_from = store_envelope_get_string (d, ends[2], ends[3]);
  if (env->source == NULL || env->client_addr == NULL || env->helo == NULL
      || env->mail_from == NULL)
    goto fail;
  if (ends[4] > ends[3])
    {
      const guint8 *a = d + ends[3];
      gsize alen = ends[4] - ends[3], table, count, from = 0;
      guint aosz = alen <= G_MAXUINT8 ? 1 : alen <= G_MAXUINT16 ? 2
                   : alen <= G_MAXUINT32 ? 4 : 8;

      if (alen < aosz)
        goto fail;
      table = store_envelope_get_offset (a + alen - aosz, aosz);
      if (table > alen - aosz || (alen - table) % aosz != 0)
        goto fail;
      count = (alen - table) / aosz;
      for (gsize i = 0; i < count; i++)
        {
          gsize to = store_envelope_get_offset (a + table + i * aosz, aosz);
          char *r;

          if (to < from || to > table
              || (r = store_envelope_get_string (a, from, to)) == NULL)
            goto fail;
          g_ptr_array_add (env->rcpts, r);
          from = to;
        }
      if (from != table)
        goto fail;
    }
  env->tls = d[ends[4]] != 0;
  memcpy (&env->received_at, d + x_at, sizeof (gint64));
  again = store_envelope_pack_direct (env);
  if (again == NULL || !g_bytes_equal (again, bytes))
    goto fail;
  return env;

fail:
  store_envelope_free (env);
  return NULL;
}

store_envelope *
store_envelope_unpack (GBytes *bytes, GError **error)
{
  store_envelope *env = store_envelope_unpack_direct (bytes);

  return env != NULL ? env : store_envelope_unpack_gvariant (bytes, error);
}

store_envelope *
store_envelope_unpack_gvariant (GBytes *bytes, GError **error)
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
  GBytes *env_bytes;          /* @env as sealed, once @run succeeded */
  gboolean feedable;          /* packed by hand: @env is what unpacking
                               * @env_bytes gives, once normalised */
} store_spool_job;

static void
store_spool_job_free (store_job *job)
{
  store_spool_job *sj = (store_spool_job *) job;

  store_envelope_free (sj->env);
  g_bytes_unref (sj->raw);
  if (sj->env_bytes)
    g_bytes_unref (sj->env_bytes);
  g_free (sj);
}

/* After the commit that stored the row (store_batch_run ()): the row to
 * the spool feed (store_feed.c), its envelope made exactly what reading
 * the row back would give -- store_envelope_pack_direct () writes a
 * missing string as "" and a boolean as 0 or 1, and
 * store_envelope_unpack_direct () takes only what it writes.  The
 * envelope is taken from the job (the callers' done functions never see
 * it); the raw bytes are shared, not copied.  Each job type frees its
 * own fields, so only the spool part is touched here.  */
static void
store_spool_job_committed (store *s, store_job *job)
{
  store_spool_job *sj = (store_spool_job *) job;
  store_envelope *env = sj->env;
  char **str[4];

  if (job->result_id <= 0 || sj->env_bytes == NULL || !sj->feedable)
    return;
  str[0] = &env->source;
  str[1] = &env->client_addr;
  str[2] = &env->helo;
  str[3] = &env->mail_from;
  for (guint i = 0; i < G_N_ELEMENTS (str); i++)
    if (*str[i] == NULL)
      *str[i] = g_strdup ("");
  env->tls = env->tls ? TRUE : FALSE;
  store_feed_add (s, job->result_id, &sj->env, sj->env_bytes, sj->raw);
}

static gboolean
store_spool_job_run (store *s, sqlite3 *db, store_job *job, GError **error)
{
  store_spool_job *sj = (store_spool_job *) job;
  const guint8 *key;
  gint64 key_id;
  guint8 nonces[2][STORE_KEYS_NONCE_BYTES];
  g_autoptr (GBytes) env_plain = NULL;
  g_autoptr (GBytes) env_sealed = NULL;
  g_autoptr (GBytes) raw_sealed = NULL;
  sqlite3_stmt *st;
  gint64 id;
  gsize n;
  const void *p;
  int rc;

  /* The writer is the only thread that inserts, so the next spool id is
   * kept in memory once read; a failed batch forgets it (its ids may have
   * been rolled back).  */
  if (s->next_spool_id <= 0)
    s->next_spool_id = store_next_id (s, db, "spool", error);
  id = s->next_spool_id;
  if (id < 0)
    return FALSE;
  key = store_spool_key_current (s, db, &key_id, error);
  if (key == NULL)
    return FALSE;
  /* both nonces in one call (each randombytes_buf () is a getpid () and
   * a ChaCha20 block), each used once, here */
  randombytes_buf (nonces, sizeof nonces);
  env_plain = store_envelope_pack_direct (sj->env);
  sj->feedable = env_plain != NULL;
  if (env_plain == NULL)
    env_plain = store_envelope_pack_gvariant (sj->env);
  p = g_bytes_get_data (env_plain, &n);
  env_sealed = store_seal_nonce (key, "spool", "envelope", id, 0, nonces[0],
                                 p, n);
  p = g_bytes_get_data (sj->raw, &n);
  raw_sealed = store_seal_nonce (key, "spool", "raw", id, 0, nonces[1], p, n);
  sodium_memzero (nonces, sizeof nonces);

  st = store_stmt (s, db, "INSERT INTO spool (id, received_at, source, size,"
                          " envelope, raw, key_id)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", error);
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
  sqlite3_bind_int64 (st, 7, key_id);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "spool insert");
      return FALSE;
    }
  job->result_id = id;
  s->next_spool_id = id + 1;
  /* a batch run again (store_batch_restart ()) packs it again */
  if (sj->env_bytes)
    g_bytes_unref (sj->env_bytes);
  sj->env_bytes = g_steal_pointer (&env_plain);
  return TRUE;
}

void
store_spool_submit (store *s, store_envelope *env, GBytes *raw,
                    store_done_fn done, gpointer user_data)
{
  store_spool_job *sj = g_new0 (store_spool_job, 1);

  sj->job.run = store_spool_job_run;
  sj->job.free = store_spool_job_free;
  sj->job.committed = store_spool_job_committed;
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

/* (transfer full) The row whose key id, sealed envelope and raw bytes
 * are columns @col to @col + 2 of @st (read on @db), opened; @error of
 * the item set if they do not open (tampered, moved from another row, or
 * under a key that is gone).  @key: STORE_KEY_BYTES of the caller's
 * secure memory, holding key *@key_id (-1: none yet).  */
static store_spool_item *
store_spool_item_open (store *s, sqlite3 *db, guint8 *key, gint64 *key_id,
                       gint64 id, sqlite3_stmt *st, int col)
{
  store_spool_item *item = g_new0 (store_spool_item, 1);
  g_autoptr (GBytes) env_plain = NULL;
  gint64 want = sqlite3_column_int64 (st, col);

  item->id = id;
  col++;
  if (want != *key_id)
    {
      *key_id = -1;
      if (!store_spool_key_get (s, db, want, key, &item->error))
        return item;
      *key_id = want;
    }
  env_plain = store_unseal (key, "spool", "envelope", id, 0,
                            sqlite3_column_blob (st, col),
                            sqlite3_column_bytes (st, col), &item->error);
  if (env_plain != NULL)
    item->env = store_envelope_unpack (env_plain, &item->error);
  /* in normal form (unpack checks), so exactly what packing @env makes */
  if (item->env != NULL)
    item->env_bytes = g_bytes_ref (env_plain);
  if (item->env != NULL)
    item->raw = store_unseal (key, "spool", "raw", id, 0,
                              sqlite3_column_blob (st, col + 1),
                              sqlite3_column_bytes (st, col + 1),
                              &item->error);
  return item;
}

void
store_spool_item_free (store_spool_item *item)
{
  if (item == NULL)
    return;
  store_envelope_free (item->env);
  if (item->env_bytes)
    g_bytes_unref (item->env_bytes);
  if (item->raw)
    g_bytes_unref (item->raw);
  g_clear_error (&item->error);
  g_free (item);
}

/* Up to @max rows after @after_id read from the database onto @out, a
 * fed copy (store_feed.c) taken instead of opening a row's seals where
 * the feed has one.  FALSE with @error if the spool cannot be read.  */
static gboolean
store_spool_list_read (store *s, gint64 after_id, guint max, GPtrArray *out,
                       GError **error)
{
  guint8 *key = sodium_malloc (STORE_KEY_BYTES);
  gint64 key_id = -1, last = -1;
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  int rc;

  g_assert (key != NULL);
  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT id, key_id, envelope, raw FROM spool"
                              " WHERE id > ?1 AND quarantined_at IS NULL"
                              " ORDER BY id LIMIT ?2", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, after_id);
  sqlite3_bind_int64 (st, 2, max);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (st, 0);
      store_spool_item *item = store_feed_take (s, id);

      /* A row that does not open is reported with its id and left in the
       * spool for a person; it never blocks the rows behind it.  */
      if (item == NULL)
        item = store_spool_item_open (s, s->rdb, key, &key_id, id, st, 1);
      g_ptr_array_add (out, item);
      last = id;
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "spool list");
      goto out;
    }
  ok = TRUE;
out:
  /* even on failure: what was read has been seen, and is not fed now */
  if (last > 0)
    store_feed_passed (s, last);
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  sodium_free (key);
  return ok;
}

GPtrArray *
store_spool_list (store *s, gint64 after_id, guint max, GError **error)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_spool_item_free);
  guint fed;

  /* The rows just spooled, from memory, while their ids follow on from
   * @after_id without a gap (no row can lie between); the rest from the
   * database.  */
  fed = store_feed_take_run (s, after_id, max, out);
  if (fed < max
      && !store_spool_list_read (s, fed > 0
                                        ? ((store_spool_item *)
                                           out->pdata[fed - 1])->id
                                        : after_id,
                                 max - fed, out, error))
    {
      g_ptr_array_unref (out);
      return NULL;
    }
  return out;
}

gint64
store_spool_count (store *s, GError **error)
{
  sqlite3_stmt *st;
  gint64 n = -1;

  g_mutex_lock (&s->rlock);
  /* both counts from an index (spool_key holds every row, the partial
   * spool_quarantine only the quarantined ones): never a scan of the
   * rows themselves, however long the backlog */
  st = store_stmt (s, s->rdb, "SELECT (SELECT count(*) FROM spool"
                              " INDEXED BY spool_key)"
                              " - (SELECT count(*) FROM spool"
                              "    WHERE quarantined_at IS NOT NULL)", error);
  if (st != NULL && sqlite3_step (st) == SQLITE_ROW)
    n = sqlite3_column_int64 (st, 0);
  else if (st != NULL)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "spool count");
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return n;
}

/* ---------------------------------------------------------- quarantine */

typedef struct {
  store_job job;
  gint64 spool_id;
  char *reason;
  guint max;
} store_fail_job;

static void
store_fail_job_free (store_job *job)
{
  store_fail_job *fj = (store_fail_job *) job;

  g_free (fj->reason);
  g_free (fj);
}

static gboolean
store_fail_job_run (store *s, sqlite3 *db, store_job *job, GError **error)
{
  store_fail_job *fj = (store_fail_job *) job;
  g_autofree char *detail = NULL;
  sqlite3_stmt *st;
  gint64 failures = -1;
  int rc;

  st = store_stmt (s, db, "UPDATE spool SET failures = failures + 1,"
                          " last_error = ?2,"
                          " quarantined_at = CASE WHEN failures + 1 >= ?3"
                          "   THEN ?4 ELSE NULL END"
                          " WHERE id = ?1 RETURNING failures", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, fj->spool_id);
  sqlite3_bind_text (st, 2, fj->reason, -1, SQLITE_STATIC);
  sqlite3_bind_int (st, 3, (int) fj->max);
  sqlite3_bind_int64 (st, 4, g_get_real_time ());
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    failures = sqlite3_column_int64 (st, 0);
  while (rc == SQLITE_ROW)
    rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "spool failure");
      return FALSE;
    }
  if (failures < 0)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   "spool row %" G_GINT64_FORMAT " is gone", fj->spool_id);
      return FALSE;
    }
  job->result_id = failures >= fj->max ? 1 : 0;
  if (job->result_id == 1)
    {
      detail = g_strdup_printf ("spool=%" G_GINT64_FORMAT " failures=%"
                                G_GINT64_FORMAT " reason=%s", fj->spool_id,
                                failures, fj->reason);
      if (!store_audit_append (s, db, "pipeline", "message.quarantined",
                               "spool", detail, error))
        return FALSE;
    }
  return TRUE;
}

void
store_spool_fail_submit (store *s, gint64 spool_id, const char *reason,
                         guint max, store_done_fn done, gpointer user_data)
{
  store_fail_job *fj = g_new0 (store_fail_job, 1);

  fj->job.run = store_fail_job_run;
  fj->job.free = store_fail_job_free;
  fj->job.done = done;
  fj->job.user_data = user_data;
  fj->spool_id = spool_id;
  fj->reason = g_strdup (reason);
  fj->max = max;
  store_job_submit (s, &fj->job);
}

void
store_quarantine_entry_free (store_quarantine_entry *e)
{
  if (e == NULL)
    return;
  g_free (e->last_error);
  g_free (e->source);
  g_free (e);
}

GPtrArray *
store_quarantine_list (store *s, GError **error)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_quarantine_entry_free);
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT id, received_at, quarantined_at, size,"
                              " failures, last_error, source FROM spool"
                              " INDEXED BY spool_quarantine"
                              " WHERE quarantined_at IS NOT NULL ORDER BY id",
                   error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      g_ptr_array_unref (out);
      return NULL;
    }
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      store_quarantine_entry *e = g_new0 (store_quarantine_entry, 1);
      e->id = sqlite3_column_int64 (st, 0);
      e->received_at = sqlite3_column_int64 (st, 1);
      e->quarantined_at = sqlite3_column_int64 (st, 2);
      e->size = sqlite3_column_int64 (st, 3);
      e->failures = sqlite3_column_int (st, 4);
      e->last_error = g_strdup ((const char *) sqlite3_column_text (st, 5));
      e->source = g_strdup ((const char *) sqlite3_column_text (st, 6));
      g_ptr_array_add (out, e);
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "quarantine list");
      g_clear_pointer (&out, g_ptr_array_unref);
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;
}

store_spool_item *
store_quarantine_get (store *s, gint64 id, GError **error)
{
  guint8 *key = sodium_malloc (STORE_KEY_BYTES);
  gint64 key_id = -1;
  store_spool_item *item = NULL;
  sqlite3_stmt *st;
  int rc;

  g_assert (key != NULL);
  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT key_id, envelope, raw FROM spool"
                              " WHERE id = ?1 AND quarantined_at IS NOT NULL",
                   error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      item = store_spool_item_open (s, s->rdb, key, &key_id, id, st, 0);
      if (item->error != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&item->error));
          g_clear_pointer (&item, store_spool_item_free);
        }
    }
  else if (rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                 "no quarantined message %" G_GINT64_FORMAT, id);
  else
    store_set_sqlite_error (error, s->rdb, rc, "quarantine get");
  store_stmt_release (st);
out:
  g_mutex_unlock (&s->rlock);
  sodium_free (key);
  return item;
}

gboolean
store_quarantine_retry (store *s, gint64 id, const char *actor,
                        GError **error)
{
  g_autofree char *detail = NULL;
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  int rc;

  /* An admin command: its own short transaction on the read connection
   * (opened read-write), waiting for the daemon's writer if need be.  */
  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "quarantine retry");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb, "UPDATE spool SET failures = 0,"
                              " quarantined_at = NULL, last_error = NULL"
                              " WHERE id = ?1 AND quarantined_at IS NOT NULL",
                   error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "quarantine retry");
      goto out;
    }
  if (sqlite3_changes (s->rdb) != 1)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   "no quarantined message %" G_GINT64_FORMAT, id);
      goto out;
    }
  detail = g_strdup_printf ("spool=%" G_GINT64_FORMAT, id);
  if (!store_audit_append (s, s->rdb, actor, "message.retry", "spool",
                           detail, error))
    goto out;
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "quarantine retry commit");
out:
  if (!ok && !sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

/* ------------------------------------------------------------- IMAP */

typedef struct {
  store_spool_job sj;
  char *mailbox;
  guint32 uidvalidity, uid;
} store_imap_job;

static void
store_imap_job_free (store_job *job)
{
  store_imap_job *ij = (store_imap_job *) job;

  store_envelope_free (ij->sj.env);
  g_bytes_unref (ij->sj.raw);
  if (ij->sj.env_bytes)
    g_bytes_unref (ij->sj.env_bytes);
  g_free (ij->mailbox);
  g_free (ij);
}

static gboolean
store_imap_job_run (store *s, sqlite3 *db, store_job *job, GError **error)
{
  store_imap_job *ij = (store_imap_job *) job;
  sqlite3_stmt *st;
  int rc;

  st = store_stmt (s, db, "SELECT spool_id FROM imap_seen WHERE mailbox = ?1"
                          " AND uidvalidity = ?2 AND uid = ?3", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_text (st, 1, ij->mailbox, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 2, ij->uidvalidity);
  sqlite3_bind_int64 (st, 3, ij->uid);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc == SQLITE_ROW)
    {
      job->result_id = 0;       /* taken before: nothing to store */
      return TRUE;
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "imap seen");
      return FALSE;
    }
  if (!store_spool_job_run (s, db, job, error))
    return FALSE;
  /* a mailbox being emptied is mail arriving until its last group is in:
   * the mark is kept fresh as groups commit, not only as they come, so
   * that filing does not start in the gap while the child moves one
   * group and fetches the next (the yield stays capped, pipeline.c) */
  __atomic_store_n (&s->last_spool_submit, g_get_monotonic_time (),
                    __ATOMIC_RELAXED);
  st = store_stmt (s, db, "INSERT INTO imap_seen (mailbox, uidvalidity, uid,"
                          " spool_id, seen_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                   error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_text (st, 1, ij->mailbox, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 2, ij->uidvalidity);
  sqlite3_bind_int64 (st, 3, ij->uid);
  sqlite3_bind_int64 (st, 4, job->result_id);
  sqlite3_bind_int64 (st, 5, g_get_real_time ());
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "imap seen insert");
      return FALSE;
    }
  return TRUE;
}

/* SIGKILL right after the commit of the batch that holds the @n-th IMAP
 * message submitted when INTAKE_FAULT_IMAP_KILL says so: the tests prove
 * that a crash between the commit and the move (with more messages on the
 * way) loses nothing, takes nothing twice and moves nothing uncommitted.  */
static gboolean
store_imap_fault_now (void)
{
  static gsize once;
  static guint64 target;
  static guint64 count;          /* the master's main thread submits */

  if (g_once_init_enter (&once))
    {
      const char *e = g_getenv ("INTAKE_FAULT_IMAP_KILL");
      target = e ? g_ascii_strtoull (e, NULL, 10) : 0;
      g_once_init_leave (&once, 1);
    }
  return target != 0 && ++count == target;
}

void
store_spool_submit_imap (store *s, store_envelope *env, GBytes *raw,
                         const char *mailbox, guint32 uidvalidity,
                         guint32 uid, store_done_fn done, gpointer user_data)
{
  store_imap_job *ij = g_new0 (store_imap_job, 1);

  ij->sj.job.run = store_imap_job_run;
  ij->sj.job.free = store_imap_job_free;
  ij->sj.job.committed = store_spool_job_committed;
  ij->sj.job.done = done;
  ij->sj.job.user_data = user_data;
  ij->sj.job.weight = g_bytes_get_size (raw);
  ij->sj.env = env;
  ij->sj.raw = raw;
  ij->mailbox = g_strdup (mailbox);
  ij->uidvalidity = uidvalidity;
  ij->uid = uid;
  ij->sj.job.kill_after_commit = store_imap_fault_now ();
  /* mail arriving: the pipeline yields to it, as for SMTP */
  __atomic_store_n (&s->last_spool_submit, g_get_monotonic_time (),
                    __ATOMIC_RELAXED);
  store_job_submit (s, &ij->sj.job);
}

void
store_imap_status_free (store_imap_status *st)
{
  if (st == NULL)
    return;
  g_free (st->mailbox);
  g_free (st->state);
  g_free (st->last_error);
  g_free (st);
}

typedef struct {
  store_job job;
  store_imap_status st;
} store_status_job;

static void
store_status_job_free (store_job *job)
{
  store_status_job *sj = (store_status_job *) job;

  g_free (sj->st.mailbox);
  g_free (sj->st.state);
  g_free (sj->st.last_error);
  g_free (sj);
}

static gboolean
store_status_job_run (store *s, sqlite3 *db, store_job *job, GError **error)
{
  store_status_job *sj = (store_status_job *) job;
  sqlite3_stmt *st = store_stmt (s, db,
      "INSERT INTO imap_status (mailbox, state, last_success, last_error,"
      " last_error_at, backlog, token_expires, updated_at)"
      " VALUES (?1, ?2, nullif(?3, 0), ?4, nullif(?5, 0), ?6, nullif(?7, 0),"
      " ?8) ON CONFLICT (mailbox) DO UPDATE SET state = excluded.state,"
      " last_success = coalesce(excluded.last_success, last_success),"
      " last_error = coalesce(excluded.last_error, last_error),"
      " last_error_at = coalesce(excluded.last_error_at, last_error_at),"
      " backlog = excluded.backlog,"
      " token_expires = coalesce(excluded.token_expires, token_expires),"
      " updated_at = excluded.updated_at", error);
  int rc;

  if (st == NULL)
    return FALSE;
  sqlite3_bind_text (st, 1, sj->st.mailbox, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, sj->st.state, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 3, sj->st.last_success);
  sqlite3_bind_text (st, 4, sj->st.last_error, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 5, sj->st.last_error_at);
  sqlite3_bind_int64 (st, 6, sj->st.backlog);
  sqlite3_bind_int64 (st, 7, sj->st.token_expires);
  sqlite3_bind_int64 (st, 8, g_get_real_time ());
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "imap status");
      return FALSE;
    }
  return TRUE;
}

void
store_imap_status_submit (store *s, const store_imap_status *st)
{
  store_status_job *sj = g_new0 (store_status_job, 1);

  sj->job.run = store_status_job_run;
  sj->job.free = store_status_job_free;
  sj->job.atomic = TRUE;
  sj->st = *st;
  sj->st.mailbox = g_strdup (st->mailbox);
  sj->st.state = g_strdup (st->state);
  sj->st.last_error = g_strdup (st->last_error);
  store_job_submit (s, &sj->job);
}

GPtrArray *
store_imap_status_list (store *s, GError **error)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_imap_status_free);
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT mailbox, state, last_success,"
                              " last_error, last_error_at, backlog,"
                              " token_expires, updated_at FROM imap_status"
                              " ORDER BY mailbox", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      g_ptr_array_unref (out);
      return NULL;
    }
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      store_imap_status *e = g_new0 (store_imap_status, 1);
      e->mailbox = g_strdup ((const char *) sqlite3_column_text (st, 0));
      e->state = g_strdup ((const char *) sqlite3_column_text (st, 1));
      e->last_success = sqlite3_column_int64 (st, 2);
      if (sqlite3_column_type (st, 3) != SQLITE_NULL)
        e->last_error = g_strdup ((const char *) sqlite3_column_text (st, 3));
      e->last_error_at = sqlite3_column_int64 (st, 4);
      e->backlog = sqlite3_column_int64 (st, 5);
      e->token_expires = sqlite3_column_int64 (st, 6);
      e->updated_at = sqlite3_column_int64 (st, 7);
      g_ptr_array_add (out, e);
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "imap status");
      g_clear_pointer (&out, g_ptr_array_unref);
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;
}

/* ------------------------------------------------------------- forms */

typedef struct {
  store_spool_job sj;
  char *prefix;
  char *ref_out;             /* caller's buffer, STORE_REF_MAX bytes */
} store_form_job;

static void
store_form_job_free (store_job *job)
{
  store_form_job *fj = (store_form_job *) job;

  store_envelope_free (fj->sj.env);
  g_bytes_unref (fj->sj.raw);
  if (fj->sj.env_bytes)
    g_bytes_unref (fj->sj.env_bytes);
  g_free (fj->prefix);
  g_free (fj);
}

static gboolean
store_form_job_run (store *s, sqlite3 *db, store_job *job, GError **error)
{
  store_form_job *fj = (store_form_job *) job;
  g_autoptr (GDateTime) when = g_date_time_new_from_unix_utc (
      fj->sj.env->received_at / G_USEC_PER_SEC);
  g_autofree char *ref = NULL;
  sqlite3_stmt *st;
  gint64 serial = -1;
  int rc;

  st = store_stmt (s, db,
      "INSERT INTO case_serials (year, last) VALUES (?1, 1)"
      " ON CONFLICT (year) DO UPDATE SET last = last + 1 RETURNING last",
      error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int (st, 1, g_date_time_get_year (when));
  if (sqlite3_step (st) == SQLITE_ROW)
    serial = sqlite3_column_int64 (st, 0);
  else
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "case serial");
  store_stmt_release (st);
  if (serial < 0)
    return FALSE;
  ref = store_ref_format (fj->prefix, g_date_time_get_year (when), serial);
  if (!store_spool_job_run (s, db, job, error))
    return FALSE;
  st = store_stmt (s, db, "INSERT INTO spool_refs (spool_id, ref)"
                          " VALUES (?1, ?2)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, job->result_id);
  sqlite3_bind_text (st, 2, ref, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "spool ref");
      return FALSE;
    }
  g_strlcpy (fj->ref_out, ref, STORE_REF_MAX);
  return TRUE;
}

void
store_spool_submit_form (store *s, store_envelope *env, GBytes *raw,
                         const char *prefix, char *ref_out,
                         store_done_fn done, gpointer user_data)
{
  store_form_job *fj = g_new0 (store_form_job, 1);

  fj->sj.job.run = store_form_job_run;
  fj->sj.job.free = store_form_job_free;
  fj->sj.job.committed = store_spool_job_committed;
  fj->sj.job.done = done;
  fj->sj.job.user_data = user_data;
  fj->sj.job.weight = g_bytes_get_size (raw);
  fj->sj.env = env;
  fj->sj.raw = raw;
  fj->prefix = g_strdup (prefix);
  fj->ref_out = ref_out;
  __atomic_store_n (&s->last_spool_submit, g_get_monotonic_time (),
                    __ATOMIC_RELAXED);
  store_job_submit (s, &fj->sj.job);
}
