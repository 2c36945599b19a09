/*
 * store_case.c - data subjects, cases and messages: turning a spooled
 * message into a case, and reading cases back for people.
 *
 * Everything that identifies a person is sealed under that person's own
 * data key (wrapped by the key-wrapping key), with table, column, row and
 * subject as associated data.  Lookups go through keyed blind indexes.
 * The spool row is deleted in the transaction that writes the case, so a
 * crash leaves either the spool row or the case, never both, never neither.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>

#include <sodium.h>

store_ingest *
store_ingest_new (void)
{
  return g_new0 (store_ingest, 1);
}

void
store_ingest_free (store_ingest *in)
{
  if (in == NULL)
    return;
  store_envelope_free (in->env);
  if (in->raw)
    g_bytes_unref (in->raw);
  g_free (in->from_addr);
  g_free (in->from_name);
  g_free (in->subject);
  g_free (in->message_id);
  g_free (in->queue);
  g_free (in->kind);
  g_free (in->ref_prefix);
  g_free (in->text);
  g_free (in);
}

void
store_case_view_free (store_case_view *v)
{
  if (v == NULL)
    return;
  g_free (v->ref);
  g_free (v->kind);
  g_free (v->queue);
  g_free (v->status);
  g_free (v->priority);
  g_free (v->subject);
  g_free (v->from_addr);
  g_free (v->from_name);
  g_free (v->message_id);
  g_free (v);
}

void
store_message_view_free (store_message_view *v)
{
  if (v == NULL)
    return;
  g_free (v->direction);
  g_free (v->source);
  g_free (v->from_addr);
  g_free (v->subject);
  g_free (v->message_id);
  g_free (v);
}

/* ------------------------------------------------------------ helpers */

static gboolean
store_step_done (sqlite3 *db, sqlite3_stmt *st, const char *what,
                 GError **error)
{
  int rc = sqlite3_step (st);

  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, what);
      return FALSE;
    }
  return TRUE;
}

static void
store_bind_bytes (sqlite3_stmt *st, int i, GBytes *b)
{
  gsize n;
  const void *p;

  if (b == NULL)
    {
      sqlite3_bind_null (st, i);
      return;
    }
  p = g_bytes_get_data (b, &n);
  sqlite3_bind_blob64 (st, i, p, n, SQLITE_TRANSIENT);
}

static GBytes *
store_seal_text (const guint8 *key, const char *table, const char *column,
                 gint64 row, gint64 owner, const char *text)
{
  if (text == NULL)
    return NULL;
  return store_seal (key, table, column, row, owner, text, strlen (text));
}

/* (transfer full) (nullable) the text of a sealed column, or NULL for SQL
 * NULL; "" plus a warning if it does not open (never the ciphertext).  */
static char *
store_column_text (sqlite3_stmt *st, int col, const guint8 *key,
                   const char *table, const char *column, gint64 row,
                   gint64 owner)
{
  g_autoptr (GError) error = NULL;
  GBytes *b;

  if (sqlite3_column_type (st, col) == SQLITE_NULL || key == NULL)
    return NULL;
  b = store_unseal (key, table, column, row, owner,
                    sqlite3_column_blob (st, col),
                    sqlite3_column_bytes (st, col), &error);
  if (b == NULL)
    {
      g_warning ("store: %s", error->message);
      return g_strdup ("");
    }
  return g_bytes_unref_to_data (b, &(gsize){ 0 });
}

/* Addresses compare in lower case; the blind index is of that form.  */
static char *
store_address_normalise (const char *addr)
{
  return g_ascii_strdown (addr ? addr : "", -1);
}

/* --------------------------------------------------------- ingest job */

typedef struct {
  store_job job;
  store_ingest *in;
} store_ingest_job;

static void
store_ingest_job_free (store_job *job)
{
  store_ingest_job *ij = (store_ingest_job *) job;

  store_ingest_free (ij->in);
  g_free (ij);
}

static gboolean
store_spool_delete (store *s, sqlite3 *db, gint64 spool_id, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db, "DELETE FROM spool WHERE id = ?1",
                                    error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, spool_id);
  if (!store_step_done (db, st, "spool delete", error))
    return FALSE;
  if (sqlite3_changes (db) != 1)
    {
      /* Someone processed it already: do not record it twice.  */
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   "spool row %" G_GINT64_FORMAT " is gone", spool_id);
      return FALSE;
    }
  return TRUE;
}

static gboolean
store_arrival_add (store *s, sqlite3 *db, gint64 message_id, const store_ingest *in,
                   GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db,
      "INSERT INTO arrivals (message_id, spool_id, source, received_at)"
      " VALUES (?1, ?2, ?3, ?4)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, message_id);
  sqlite3_bind_int64 (st, 2, in->spool_id);
  sqlite3_bind_text (st, 3, in->env->source, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 4, in->env->received_at);
  return store_step_done (db, st, "arrival insert", error);
}

/* Find the data subject for @addr, or create one with a fresh data key.
 * Returns the subject id and (transfer full) its data key.  */
static gint64
store_subject_find_or_create (store *s, sqlite3 *db, const char *addr,
                              const char *name, gint64 now,
                              guint8 *data_key, GError **error)
{
  g_autofree char *norm = store_address_normalise (addr);
  guint8 index[32];
  sqlite3_stmt *st;
  gint64 id;
  int rc;

  store_keys_blind (s->keys, "subject-address", norm, strlen (norm), index);
  st = store_stmt (s, db, "SELECT id, data_key FROM subjects"
                          " WHERE address_index = ?1", error);
  if (st == NULL)
    return -1;
  sqlite3_bind_blob (st, 1, index, sizeof index, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      id = sqlite3_column_int64 (st, 0);
      gboolean ok = store_keys_unwrap_into (s->keys,
                                            sqlite3_column_blob (st, 1),
                                            sqlite3_column_bytes (st, 1), id,
                                            data_key, error);
      store_stmt_release (st);
      return ok ? id : -1;
    }
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "subject lookup");
      return -1;
    }

  id = store_next_id (s, db, "subjects", error);
  if (id < 0)
    return -1;
  store_keys_data_key_fill (data_key);
  g_autoptr (GBytes) wrapped = store_keys_wrap (s->keys, data_key, id);
  g_autoptr (GBytes) addr_ct = store_seal_text (data_key, "subjects",
                                                "address", id, id, norm);
  g_autoptr (GBytes) name_ct = store_seal_text (data_key, "subjects", "name",
                                                id, id, name);
  st = store_stmt (s, db, "INSERT INTO subjects (id, address_index, data_key,"
                          " address, name, created_at)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", error);
  if (st == NULL)
    return -1;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_blob (st, 2, index, sizeof index, SQLITE_STATIC);
  store_bind_bytes (st, 3, wrapped);
  store_bind_bytes (st, 4, addr_ct);
  store_bind_bytes (st, 5, name_ct);
  sqlite3_bind_int64 (st, 6, now);
  if (!store_step_done (db, st, "subject insert", error))
    return -1;
  return id;
}

static gint64
store_serial_next (store *s, sqlite3 *db, guint year, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db,
      "INSERT INTO case_serials (year, last) VALUES (?1, 1)"
      " ON CONFLICT (year) DO UPDATE SET last = last + 1 RETURNING last",
      error);
  gint64 serial = -1;

  if (st == NULL)
    return -1;
  sqlite3_bind_int (st, 1, year);
  if (sqlite3_step (st) == SQLITE_ROW)
    serial = sqlite3_column_int64 (st, 0);
  else
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "case serial");
  store_stmt_release (st);
  return serial;
}

static gboolean
store_ingest_job_run (store *s, sqlite3 *db, store_job *job, GError **error)
{
  store_ingest *in = ((store_ingest_job *) job)->in;
  const char *addr = in->from_addr ? in->from_addr : in->env->mail_from;
  g_autoptr (GDateTime) when = NULL;
  guint8 *data_key = s->wkey;    /* the writer's secure scratch */
  guint8 content[32], mid_index[32];
  g_autofree char *ref = NULL;
  g_autofree char *detail = NULL;
  sqlite3_stmt *st;
  gint64 subject_id, case_id, message_id, serial;
  gboolean ok = FALSE;
  gsize raw_len;
  const void *raw = g_bytes_get_data (in->raw, &raw_len);
  int rc;

  /* The same bytes again (a client retrying after a lost 250, the same
   * message to two mailboxes, SMTP and IMAP): recorded once, every arrival
   * kept.  */
  store_keys_blind (s->keys, "message-content", raw, raw_len, content);
  st = store_stmt (s, db, "SELECT id, case_id FROM messages"
                          " WHERE content_index = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_blob (st, 1, content, sizeof content, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      message_id = sqlite3_column_int64 (st, 0);
      case_id = sqlite3_column_int64 (st, 1);
      store_stmt_release (st);
      detail = g_strdup_printf ("message=%" G_GINT64_FORMAT " spool=%"
                                G_GINT64_FORMAT " source=%s", message_id,
                                in->spool_id, in->env->source);
      if (!store_arrival_add (s, db, message_id, in, error)
          || !store_audit_append (s, db, "pipeline", "message.duplicate",
                                  "message", detail, error)
          || !store_spool_delete (s, db, in->spool_id, error))
        return FALSE;
      job->result_id = case_id;
      return TRUE;
    }
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "message lookup");
      return FALSE;
    }

  subject_id = store_subject_find_or_create (s, db, addr, in->from_name,
                                             in->env->received_at, data_key,
                                             error);
  if (subject_id < 0)
    return FALSE;

  when = g_date_time_new_from_unix_utc (in->env->received_at / G_USEC_PER_SEC);
  serial = store_serial_next (s, db, g_date_time_get_year (when), error);
  if (serial < 0)
    goto out;
  ref = store_ref_format (in->ref_prefix, g_date_time_get_year (when), serial);
  case_id = store_next_id (s, db, "cases", error);
  if (case_id < 0)
    goto out;
  st = store_stmt (s, db, "INSERT INTO cases (id, ref, subject_id, kind,"
                          " queue, status, priority, created_at, updated_at)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, 'new', 'normal', ?6,"
                          " ?6)", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, case_id);
  sqlite3_bind_text (st, 2, ref, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 3, subject_id);
  sqlite3_bind_text (st, 4, in->kind, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 5, in->queue, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 6, in->env->received_at);
  if (!store_step_done (db, st, "case insert", error))
    goto out;

  message_id = store_next_id (s, db, "messages", error);
  if (message_id < 0)
    goto out;
  {
    g_autoptr (GBytes) env_plain = store_envelope_pack (in->env);
    gsize n;
    const void *p = g_bytes_get_data (env_plain, &n);
    g_autoptr (GBytes) env_ct = store_seal (data_key, "messages", "envelope",
                                            message_id, subject_id, p, n);
    g_autoptr (GBytes) raw_ct = store_seal (data_key, "messages", "raw",
                                            message_id, subject_id, raw,
                                            raw_len);
    g_autoptr (GBytes) from_ct = store_seal_text (data_key, "messages",
                                                  "header_from", message_id,
                                                  subject_id, addr);
    g_autoptr (GBytes) subj_ct = store_seal_text (data_key, "messages",
                                                  "header_subject",
                                                  message_id, subject_id,
                                                  in->subject);
    g_autoptr (GBytes) mid_ct = store_seal_text (data_key, "messages",
                                                 "header_message_id",
                                                 message_id, subject_id,
                                                 in->message_id);
    g_autoptr (GBytes) text_ct = store_seal_text (data_key, "messages",
                                                  "text", message_id,
                                                  subject_id, in->text);

    st = store_stmt (s, db, "INSERT INTO messages (id, case_id, subject_id,"
                            " direction, source, received_at, size,"
                            " content_index, message_id_index, envelope, raw,"
                            " header_from, header_subject, header_message_id,"
                            " text, anomalies, special, auto_reply,"
                            " attachments)"
                            " VALUES (?1, ?2, ?3, 'in', ?4, ?5, ?6, ?7, ?8,"
                            " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
                            " ?18)", error);
    if (st == NULL)
      goto out;
    sqlite3_bind_int64 (st, 1, message_id);
    sqlite3_bind_int64 (st, 2, case_id);
    sqlite3_bind_int64 (st, 3, subject_id);
    sqlite3_bind_text (st, 4, in->env->source, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (st, 5, in->env->received_at);
    sqlite3_bind_int64 (st, 6, (gint64) raw_len);
    sqlite3_bind_blob (st, 7, content, sizeof content, SQLITE_STATIC);
    if (in->message_id != NULL)
      {
        store_keys_blind (s->keys, "message-id", in->message_id,
                          strlen (in->message_id), mid_index);
        sqlite3_bind_blob (st, 8, mid_index, sizeof mid_index, SQLITE_STATIC);
      }
    else
      sqlite3_bind_null (st, 8);
    store_bind_bytes (st, 9, env_ct);
    store_bind_bytes (st, 10, raw_ct);
    store_bind_bytes (st, 11, from_ct);
    store_bind_bytes (st, 12, subj_ct);
    store_bind_bytes (st, 13, mid_ct);
    store_bind_bytes (st, 14, text_ct);
    sqlite3_bind_int64 (st, 15, in->anomalies);
    sqlite3_bind_int64 (st, 16, in->special);
    sqlite3_bind_int (st, 17, in->auto_reply ? 1 : 0);
    sqlite3_bind_int64 (st, 18, in->n_attachments);
    if (!store_step_done (db, st, "message insert", error))
      goto out;
  }

  detail = g_strdup_printf ("ref=%s message=%" G_GINT64_FORMAT " spool=%"
                            G_GINT64_FORMAT " source=%s queue=%s", ref,
                            message_id, in->spool_id, in->env->source,
                            in->queue);
  if (!store_arrival_add (s, db, message_id, in, error)
      || !store_audit_append (s, db, "pipeline", "case.opened", ref, detail,
                              error)
      || !store_spool_delete (s, db, in->spool_id, error))
    goto out;
  job->result_id = case_id;
  ok = TRUE;

out:
  sodium_memzero (data_key, STORE_KEY_BYTES);
  return ok;
}

void
store_ingest_submit (store *s, store_ingest *in, store_done_fn done,
                     gpointer user_data)
{
  store_ingest_job *ij = g_new0 (store_ingest_job, 1);

  g_return_if_fail (in->env != NULL && in->raw != NULL && in->queue != NULL
                    && in->kind != NULL && in->ref_prefix != NULL);
  ij->job.run = store_ingest_job_run;
  ij->job.free = store_ingest_job_free;
  ij->job.done = done;
  ij->job.user_data = user_data;
  ij->job.weight = g_bytes_get_size (in->raw);
  ij->in = in;
  store_job_submit (s, &ij->job);
}

/* ------------------------------------------------------------ reading */

/* Data keys unwrapped during one read, by subject id; freed after it.  */
static const guint8 *
store_key_cache_get (store *s, GHashTable *cache, sqlite3_stmt *st,
                     int col, gint64 subject_id)
{
  guint8 *k = g_hash_table_lookup (cache, &subject_id);
  g_autoptr (GError) error = NULL;

  if (k != NULL || sqlite3_column_type (st, col) == SQLITE_NULL)
    return k;
  k = store_keys_unwrap (s->keys, sqlite3_column_blob (st, col),
                         sqlite3_column_bytes (st, col), subject_id, &error);
  if (k == NULL)
    {
      g_warning ("store: data key of subject %" G_GINT64_FORMAT ": %s",
                 subject_id, error->message);
      return NULL;
    }
  g_hash_table_insert (cache, g_memdup2 (&subject_id, sizeof subject_id), k);
  return k;
}

static GHashTable *
store_key_cache_new (void)
{
  return g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                (GDestroyNotify) store_keys_data_key_free);
}

#define STORE_CASE_COLUMNS \
  "SELECT c.id, c.ref, c.kind, c.queue, c.status, c.priority," \
  " c.created_at, c.updated_at, c.subject_id, s.data_key, s.address, s.name," \
  " m.id, m.header_subject," \
  " (SELECT count(*) FROM messages WHERE case_id = c.id)," \
  " m.header_message_id" \
  " FROM cases c LEFT JOIN subjects s ON s.id = c.subject_id" \
  " LEFT JOIN messages m ON m.id = (SELECT min(id) FROM messages" \
  "                                 WHERE case_id = c.id) "

static store_case_view *
store_case_view_read (store *s, GHashTable *cache, sqlite3_stmt *st)
{
  store_case_view *v = g_new0 (store_case_view, 1);
  gint64 subject_id = sqlite3_column_int64 (st, 8);
  const guint8 *key = store_key_cache_get (s, cache, st, 9, subject_id);

  v->id = sqlite3_column_int64 (st, 0);
  v->ref = g_strdup ((const char *) sqlite3_column_text (st, 1));
  v->kind = g_strdup ((const char *) sqlite3_column_text (st, 2));
  v->queue = g_strdup ((const char *) sqlite3_column_text (st, 3));
  v->status = g_strdup ((const char *) sqlite3_column_text (st, 4));
  v->priority = g_strdup ((const char *) sqlite3_column_text (st, 5));
  v->created_at = sqlite3_column_int64 (st, 6);
  v->updated_at = sqlite3_column_int64 (st, 7);
  v->from_addr = store_column_text (st, 10, key, "subjects", "address",
                                    subject_id, subject_id);
  v->from_name = store_column_text (st, 11, key, "subjects", "name",
                                    subject_id, subject_id);
  v->subject = store_column_text (st, 13, key, "messages", "header_subject",
                                  sqlite3_column_int64 (st, 12), subject_id);
  v->n_messages = sqlite3_column_int (st, 14);
  v->message_id = store_column_text (st, 15, key, "messages",
                                     "header_message_id",
                                     sqlite3_column_int64 (st, 12),
                                     subject_id);
  return v;
}

GPtrArray *
store_case_list (store *s, GError **error)
{
  g_autoptr (GHashTable) cache = store_key_cache_new ();
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_case_view_free);
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, STORE_CASE_COLUMNS "ORDER BY c.id DESC", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      g_ptr_array_unref (out);
      return NULL;
    }
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (out, store_case_view_read (s, cache, st));
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "case list");
      g_clear_pointer (&out, g_ptr_array_unref);
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;
}

store_case_view *
store_case_get (store *s, const char *ref, GPtrArray **messages,
                GError **error)
{
  g_autoptr (GHashTable) cache = store_key_cache_new ();
  store_case_view *v = NULL;
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, STORE_CASE_COLUMNS "WHERE c.ref = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    v = store_case_view_read (s, cache, st);
  else if (rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                 "no case %s", ref);
  else
    store_set_sqlite_error (error, s->rdb, rc, "case get");
  store_stmt_release (st);
  if (v == NULL || messages == NULL)
    goto out;

  *messages = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_message_view_free);
  st = store_stmt (s, s->rdb,
      "SELECT m.id, m.direction, m.source, m.received_at, m.size,"
      " m.subject_id, s.data_key, m.header_from, m.header_subject,"
      " m.header_message_id,"
      " (SELECT count(*) FROM arrivals a WHERE a.message_id = m.id)"
      " FROM messages m JOIN subjects s ON s.id = m.subject_id"
      " WHERE m.case_id = ?1 ORDER BY m.id", error);
  if (st == NULL)
    {
      g_clear_pointer (&v, store_case_view_free);
      g_clear_pointer (messages, g_ptr_array_unref);
      goto out;
    }
  sqlite3_bind_int64 (st, 1, v->id);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      store_message_view *m = g_new0 (store_message_view, 1);
      gint64 subject_id = sqlite3_column_int64 (st, 5);
      const guint8 *key = store_key_cache_get (s, cache, st, 6, subject_id);

      m->id = sqlite3_column_int64 (st, 0);
      m->direction = g_strdup ((const char *) sqlite3_column_text (st, 1));
      m->source = g_strdup ((const char *) sqlite3_column_text (st, 2));
      m->received_at = sqlite3_column_int64 (st, 3);
      m->size = sqlite3_column_int64 (st, 4);
      m->from_addr = store_column_text (st, 7, key, "messages", "header_from",
                                        m->id, subject_id);
      m->subject = store_column_text (st, 8, key, "messages",
                                      "header_subject", m->id, subject_id);
      m->message_id = store_column_text (st, 9, key, "messages",
                                         "header_message_id", m->id,
                                         subject_id);
      m->arrivals = sqlite3_column_int (st, 10);
      g_ptr_array_add (*messages, m);
    }
  store_stmt_release (st);

out:
  g_mutex_unlock (&s->rlock);
  return v;
}
