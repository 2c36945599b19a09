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
#include "store/store_webhook.h"
#include "parser/parser_headers.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <json-glib/json-glib.h>
#include <sodium.h>

/* Cases one message may name and be linked to.  */
#define STORE_THREAD_HINTS 16

store_ingest *
store_ingest_new (void)
{
  store_ingest *in = g_new0 (store_ingest, 1);

  in->references = g_ptr_array_new_with_free_func (g_free);
  in->case_refs = g_ptr_array_new_with_free_func (g_free);
  in->attachments = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_attachment_free);
  return in;
}

store_attachment *
store_attachment_new (void)
{
  return g_new0 (store_attachment, 1);
}

void
store_attachment_free (store_attachment *a)
{
  if (a == NULL)
    return;
  g_free (a->name);
  g_free (a->declared_type);
  g_free (a->detected_type);
  if (a->content)
    g_bytes_unref (a->content);
  g_free (a);
}

void
store_ingest_free (store_ingest *in)
{
  if (in == NULL)
    return;
  store_envelope_free (in->env);
  if (in->env_packed)
    g_bytes_unref (in->env_packed);
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
  g_free (in->quoted);
  g_free (in->headers);
  g_free (in->in_reply_to);
  g_free (in->priority);
  g_free (in->reasons);
  g_free (in->rules_hash);
  g_free (in->language);
  g_clear_pointer (&in->references, g_ptr_array_unref);
  g_clear_pointer (&in->case_refs, g_ptr_array_unref);
  g_clear_pointer (&in->attachments, g_ptr_array_unref);
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
  g_free (v->reasons);
  g_free (v->rules_hash);
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
  g_free (v->thread_by);
  g_free (v);
}

/* ------------------------------------------------------------ helpers */

gboolean
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
  /* every caller keeps @b until the statement was stepped and reset */
  sqlite3_bind_blob64 (st, i, p, n, SQLITE_STATIC);
}

static GBytes *
store_seal_text (const guint8 *key, const char *table, const char *column,
                 gint64 row, gint64 owner, const char *text)
{
  if (text == NULL)
    return NULL;
  return store_seal (key, table, column, row, owner, text, strlen (text));
}

/* The same with a nonce drawn by the caller.  */
static GBytes *
store_seal_text_nonce (const guint8 *key, const char *table,
                       const char *column, gint64 row, gint64 owner,
                       const guint8 *nonce, const char *text)
{
  if (text == NULL)
    return NULL;
  return store_seal_nonce (key, table, column, row, owner, nonce, text,
                           strlen (text));
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
  /* made in the submitting thread, off the writer's: the blind indexes
   * (keyed BLAKE2b: the raw bytes' is most of it) and the normalised
   * sender address */
  guint8 content[32];        /* of the raw bytes */
  guint8 mid_index[32];      /* of in->message_id, if any */
  char *norm;                /* the sender's address, normalised */
  guint8 addr_index[32];     /* of norm */
} store_ingest_job;

static void
store_ingest_job_free (store_job *job)
{
  store_ingest_job *ij = (store_ingest_job *) job;

  store_ingest_free (ij->in);
  g_free (ij->norm);
  g_free (ij);
}

/* SIGKILL at the @n-th step of filing a message when INTAKE_FAULT_INGEST_KILL
 * says so: the tests prove that a crash between any two steps leaves the
 * spool row or the finished case, never both, never neither.  */
static guint
store_fault_target (void)
{
  static gsize once;
  static guint target;

  if (g_once_init_enter (&once))
    {
      const char *e = g_getenv ("INTAKE_FAULT_INGEST_KILL");
      target = e ? (guint) g_ascii_strtoull (e, NULL, 10) : 0;
      g_once_init_leave (&once, 1);
    }
  return target;
}

/* The step after the last one of a job is "after the commit".  */
static void
store_fault_commit (store_job *job, guint step)
{
  if (store_fault_target () != 0 && store_fault_target () == step + 1)
    job->kill_after_commit = TRUE;
}

static void
store_fault_step (guint *step)
{
  guint target = store_fault_target ();

  if (target != 0 && ++*step == target)
    {
      g_message ("store: fault injection: SIGKILL at filing step %u", target);
      kill (getpid (), SIGKILL);
    }
}

gboolean
store_secure_delete (store *s, sqlite3 *db, gboolean on, GError **error)
{
  sqlite3_stmt *st;
  int rc;

  /* the writer's connection has it on for good (store_configure ()) */
  if (db == s->wdb)
    return TRUE;
  st = store_stmt (s, db, on ? "PRAGMA secure_delete=ON"
                             : "PRAGMA secure_delete=FAST", error);
  if (st == NULL)
    return FALSE;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    ;
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "secure_delete");
      return FALSE;
    }
  return TRUE;
}

/* The spool row goes with secure_delete on (the writer's connection has
 * it on for good, store_configure ()): its ciphertext is under the spool
 * key of the day, which lives until no spool row needs it (a day or more,
 * store_spoolkey.c), so a copy left in the file's free pages would still
 * open for that long after the person's own key is shredded
 * (SECURITY-TESTS 98: "the staging copy securely deleted").  test_rights
 * test_erase_leaves_no_spool_ciphertext.  */
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
store_arrival_add (store *s, sqlite3 *db, gint64 message_id,
                   const store_ingest *in, GError **error)
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

/* Find the data subject for the normalised address @norm, whose blind
 * index is @index, or create one with a fresh data key.  Returns the
 * subject id and its data key in @data_key.  */
static gint64
store_subject_find_or_create (store *s, sqlite3 *db, const char *norm,
                              const guint8 index[32], const char *name,
                              gint64 now, guint8 *data_key,
                              gboolean *restricted, GError **error)
{
  sqlite3_stmt *st;
  gint64 id;
  int rc;

  g_assert (db == s->wdb);      /* the writer's key cache */
  *restricted = FALSE;         /* a new subject is not */
  st = store_stmt (s, db, "SELECT id, data_key, erasing_at IS NOT NULL,"
                          " restricted_at IS NOT NULL"
                          " FROM subjects WHERE address_index = ?1", error);
  if (st == NULL)
    return -1;
  sqlite3_bind_blob (st, 1, index, 32, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      const void *wrapped = sqlite3_column_blob (st, 1);
      gsize wlen = (gsize) sqlite3_column_bytes (st, 1);
      gboolean erasing = sqlite3_column_int (st, 2) != 0;
      gboolean ok = TRUE;

      *restricted = sqlite3_column_int (st, 3) != 0;

      id = sqlite3_column_int64 (st, 0);
      /* The writer holds the write lock: an erasure's mark (committed
       * before its vault secret goes) is either seen here or not begun.
       * A key being shredded is never taken from the cache.  */
      if (erasing)
        store_keycache_forget (s->wkeys, id);
      if (erasing || !store_keycache_get (s->wkeys, id, wrapped, wlen,
                                          data_key))
        {
          ok = store_subject_key_unwrap_into (s, db, wrapped, wlen, id,
                                              data_key, error);
          if (ok && !erasing)
            store_keycache_put (s->wkeys, id, wrapped, wlen, data_key);
        }
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
  /* a new data key, wrapped with a fresh vault secret */
  g_autoptr (GBytes) wrapped = store_subject_key_new (s, db, id, data_key,
                                                     error);
  if (wrapped == NULL)
    return -1;
  g_autoptr (GBytes) addr_ct = store_seal_text (data_key, "subjects",
                                                "address", id, id, norm);
  g_autoptr (GBytes) name_ct = store_seal_text (data_key, "subjects", "name",
                                                id, id, name);
  st = store_stmt (s, db, "INSERT INTO subjects (id, address_index, data_key,"
                          " wrap_version, address, name, created_at,"
                          " updated_at, vault)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)", error);
  if (st == NULL)
    return -1;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_blob (st, 2, index, 32, SQLITE_STATIC);
  store_bind_bytes (st, 3, wrapped);
  sqlite3_bind_int (st, 4, store_keys_version (s->keys));
  store_bind_bytes (st, 5, addr_ct);
  store_bind_bytes (st, 6, name_ct);
  sqlite3_bind_int64 (st, 7, now);
  if (!store_step_done (db, st, "subject insert", error))
    return -1;
  {
    gsize wlen;
    const void *w = g_bytes_get_data (wrapped, &wlen);
    store_keycache_put (s->wkeys, id, w, wlen, data_key);
  }
  {
    g_autofree char *object = g_strdup_printf ("subject:%" G_GINT64_FORMAT,
                                               id);
    g_autofree char *detail = g_strdup_printf ("wrap_version=%u",
                                               store_keys_version (s->keys));
    if (!store_audit_append (s, db, "pipeline", "subject.created", object,
                             detail, error))
      return -1;
  }
  return id;
}

/* The next serial of @year.  Two plain statements: RETURNING would build
 * (and free) a temporary table for every case.  */
static gint64
store_serial_next (store *s, sqlite3 *db, guint year, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db,
      "INSERT INTO case_serials (year, last) VALUES (?1, 1)"
      " ON CONFLICT (year) DO UPDATE SET last = last + 1", error);
  gint64 serial = -1;

  if (st == NULL)
    return -1;
  sqlite3_bind_int (st, 1, year);
  if (!store_step_done (db, st, "case serial", error))
    return -1;
  st = store_stmt (s, db, "SELECT last FROM case_serials WHERE year = ?1",
                   error);
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

/* A case another message points at, and how.  */
typedef struct {
  gint64 case_id;
  const char *by;            /* "reference", "in-reply-to", "references" */
} store_thread_hint;

static void
store_hint_add (GArray *hints, gint64 case_id, const char *by)
{
  for (guint i = 0; i < hints->len; i++)
    if (g_array_index (hints, store_thread_hint, i).case_id == case_id)
      return;
  if (hints->len < STORE_THREAD_HINTS)
    g_array_append_val (hints, ((store_thread_hint) { case_id, by }));
}

static gboolean
store_hints_by_message_id (store *s, sqlite3 *db, const char *mid,
                           const char *by, GArray *hints, GError **error)
{
  guint8 index[32];
  sqlite3_stmt *st;
  int rc;

  if (mid == NULL || *mid == '\0')
    return TRUE;
  store_keys_blind (s->keys, "message-id", mid, strlen (mid), index);
  st = store_stmt (s, db, "SELECT DISTINCT case_id FROM messages"
                          " WHERE message_id_index = ?1 ORDER BY case_id",
                   error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_blob (st, 1, index, sizeof index, SQLITE_STATIC);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    store_hint_add (hints, sqlite3_column_int64 (st, 0), by);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "thread lookup");
      return FALSE;
    }
  return TRUE;
}

/* The cases this message names: valid references in the subject and in
 * plus-addresses first, then In-Reply-To, then References newest first.  */
static GArray *
store_thread_hints (store *s, sqlite3 *db, const store_ingest *in,
                    GError **error)
{
  GArray *hints = g_array_new (FALSE, FALSE, sizeof (store_thread_hint));
  sqlite3_stmt *st;

  g_autofree char *subject = in->subject ? g_ascii_strup (in->subject, -1)
                                         : NULL;

  for (guint i = 0; in->case_refs && i < in->case_refs->len; i++)
    {
      const char *ref = in->case_refs->pdata[i];
      int plus = 0;
      if (!store_ref_valid (ref))
        continue;
      /* A reference in a plus-address counts only with its MAC (we wrote
       * it in our Reply-To); a forged or missing one is no reference,
       * unless the subject names the case too.  */
      for (guint j = 0; in->env && j < in->env->rcpts->len && plus < 1; j++)
        {
          int v = store_ref_plus_check (s->keys, in->env->rcpts->pdata[j],
                                        ref);
          plus = v != 0 ? v : plus;
        }
      if (plus < 0 && (subject == NULL || strstr (subject, ref) == NULL))
        continue;
      st = store_stmt (s, db, "SELECT id FROM cases WHERE ref = ?1", error);
      if (st == NULL)
        goto fail;
      sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
      if (sqlite3_step (st) == SQLITE_ROW)
        store_hint_add (hints, sqlite3_column_int64 (st, 0), "reference");
      store_stmt_release (st);
    }
  if (!store_hints_by_message_id (s, db, in->in_reply_to, "in-reply-to",
                                  hints, error))
    goto fail;
  for (guint i = in->references ? in->references->len : 0; i > 0; i--)
    if (!store_hints_by_message_id (s, db, in->references->pdata[i - 1],
                                    "references", hints, error))
      goto fail;
  return hints;

fail:
  g_array_unref (hints);
  return NULL;
}

/* 1 if @subject_id takes part in @case_id, 0 if not, -1 on error; @status
 * gets the case's status.  */
static int
store_participant (store *s, sqlite3 *db, gint64 case_id, gint64 subject_id,
                   char **status, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db,
      "SELECT c.status, EXISTS (SELECT 1 FROM case_participants p"
      "  WHERE p.case_id = c.id AND p.subject_id = ?2)"
      " FROM cases c WHERE c.id = ?1", error);
  int rc, yes = 0;

  if (st == NULL)
    return -1;
  sqlite3_bind_int64 (st, 1, case_id);
  sqlite3_bind_int64 (st, 2, subject_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      *status = g_strdup ((const char *) sqlite3_column_text (st, 0));
      yes = sqlite3_column_int (st, 1);
    }
  store_stmt_release (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "participant");
      return -1;
    }
  return yes;
}

static gboolean
store_participant_add (store *s, sqlite3 *db, gint64 case_id,
                       gint64 subject_id, const char *role, gint64 now,
                       GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db,
      "INSERT OR IGNORE INTO case_participants (case_id, subject_id, role,"
      " added_at) VALUES (?1, ?2, ?3, ?4)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  sqlite3_bind_int64 (st, 2, subject_id);
  sqlite3_bind_text (st, 3, role, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 4, now);
  return store_step_done (db, st, "participant insert", error);
}

static gboolean
store_link_add (store *s, sqlite3 *db, gint64 case_id, gint64 other_id,
                const char *reason, gint64 now, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db,
      "INSERT OR IGNORE INTO case_links (case_id, other_id, reason,"
      " created_at) VALUES (?1, ?2, ?3, ?4)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  sqlite3_bind_int64 (st, 2, other_id);
  sqlite3_bind_text (st, 3, reason, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 4, now);
  return store_step_done (db, st, "link insert", error);
}

/* (transfer full) the reference of case @id.  */
static char *
store_case_ref (store *s, sqlite3 *db, gint64 id, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db, "SELECT ref FROM cases WHERE id = ?1",
                                 error);
  char *ref = NULL;

  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, id);
  if (sqlite3_step (st) == SQLITE_ROW)
    ref = g_strdup ((const char *) sqlite3_column_text (st, 0));
  else
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                 "case %" G_GINT64_FORMAT " is gone", id);
  store_stmt_release (st);
  return ref;
}

static gint64
store_case_create (store *s, sqlite3 *db, const store_ingest *in,
                   gint64 subject_id, char **ref_out, GError **error)
{
  g_autoptr (GDateTime) when = g_date_time_new_from_unix_utc (
      in->env->received_at / G_USEC_PER_SEC);
  gint64 serial, case_id;
  sqlite3_stmt *st;

  if (*ref_out == NULL)
    {
      serial = store_serial_next (s, db, g_date_time_get_year (when), error);
      if (serial < 0)
        return -1;
      *ref_out = store_ref_format (in->ref_prefix,
                                   g_date_time_get_year (when), serial);
    }
  /* The id from AUTOINCREMENT, the one store_next_id () would have read
   * first: no column of a case is sealed, so nothing needs it before the
   * row is there.  */
  st = store_stmt (s, db, "INSERT INTO cases (ref, subject_id, kind,"
                          " queue, status, priority, due_at, reasons,"
                          " rules_hash, created_at, updated_at)"
                          " VALUES (?2, ?3, ?4, ?5, 'new', ?6, ?7, ?8,"
                          " ?9, ?10, ?10)", error);
  if (st == NULL)
    return -1;
  sqlite3_bind_text (st, 2, *ref_out, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 3, subject_id);
  sqlite3_bind_text (st, 4, in->kind, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 5, in->queue, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 6, in->priority ? in->priority : "normal", -1,
                     SQLITE_STATIC);
  if (in->due_at > 0)
    sqlite3_bind_int64 (st, 7, in->due_at);
  else
    sqlite3_bind_null (st, 7);
  sqlite3_bind_text (st, 8, in->reasons, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 9, in->rules_hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 10, in->env->received_at);
  if (!store_step_done (db, st, "case insert", error))
    return -1;
  case_id = sqlite3_last_insert_rowid (db);
  if (!store_participant_add (s, db, case_id, subject_id, "requester",
                              in->env->received_at, error))
    return -1;
  return case_id;
}

/* A reply on a case that waited for the citizen, or was resolved, puts it
 * back in front of the department.  */
static gboolean
store_case_touch (store *s, sqlite3 *db, gint64 case_id, gint64 now,
                  GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db,
      "UPDATE cases SET updated_at = max(updated_at, ?2),"
      " status = CASE WHEN status IN ('waiting', 'resolved')"
      "          THEN 'assigned' ELSE status END"
      " WHERE id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  sqlite3_bind_int64 (st, 2, now);
  return store_step_done (db, st, "case update", error);
}

static gboolean
store_message_insert (store *s, sqlite3 *db, const store_ingest *in,
                      gint64 message_id, gint64 case_id, gint64 subject_id,
                      const guint8 *data_key, const guint8 content[32],
                      const guint8 *mid_index, const char *thread_by,
                      GError **error)
{
  const char *addr = in->from_addr ? in->from_addr : in->env->mail_from;
  gsize raw_len;
  const void *raw = g_bytes_get_data (in->raw, &raw_len);
  g_autoptr (GBytes) env_plain = in->env_packed
                                     ? g_bytes_ref (in->env_packed)
                                     : store_envelope_pack (in->env);
  gsize n;
  const void *p = g_bytes_get_data (env_plain, &n);
  /* one fresh random nonce for each of the eight values, drawn in one
   * call (each randombytes_buf () is a getpid () and a ChaCha20 block) */
  guint8 nonces[8][STORE_KEYS_NONCE_BYTES];

  randombytes_buf (nonces, sizeof nonces);
#define SEAL_TEXT(col, i, v) \
  store_seal_text_nonce (data_key, "messages", col, message_id, subject_id, \
                         nonces[i], v)
  g_autoptr (GBytes) env_ct = store_seal_nonce (data_key, "messages",
                                                "envelope", message_id,
                                                subject_id, nonces[0], p, n);
  g_autoptr (GBytes) raw_ct = store_seal_nonce (data_key, "messages", "raw",
                                                message_id, subject_id,
                                                nonces[1], raw, raw_len);
  g_autoptr (GBytes) from_ct = SEAL_TEXT ("header_from", 2, addr);
  g_autoptr (GBytes) subj_ct = SEAL_TEXT ("header_subject", 3, in->subject);
  g_autoptr (GBytes) mid_ct = SEAL_TEXT ("header_message_id", 4,
                                         in->message_id);
  g_autoptr (GBytes) text_ct = SEAL_TEXT ("text", 5, in->text);
  g_autoptr (GBytes) quoted_ct = SEAL_TEXT ("quoted", 6, in->quoted);
  g_autoptr (GBytes) headers_ct = SEAL_TEXT ("headers", 7, in->headers);
#undef SEAL_TEXT
  sqlite3_stmt *st;

  sodium_memzero (nonces, sizeof nonces);   /* each is used once, here */

  st = store_stmt (s, db, "INSERT INTO messages (id, case_id, subject_id,"
                          " direction, source, received_at, size,"
                          " content_index, message_id_index, envelope, raw,"
                          " header_from, header_subject, header_message_id,"
                          " text, anomalies, special, auto_reply,"
                          " attachments, quoted, headers, thread_by)"
                          " VALUES (?1, ?2, ?3, 'in', ?4, ?5, ?6, ?7, ?8,"
                          " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
                          " ?18, ?19, ?20, ?21)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, message_id);
  sqlite3_bind_int64 (st, 2, case_id);
  sqlite3_bind_int64 (st, 3, subject_id);
  sqlite3_bind_text (st, 4, in->env->source, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 5, in->env->received_at);
  sqlite3_bind_int64 (st, 6, (gint64) raw_len);
  sqlite3_bind_blob (st, 7, content, 32, SQLITE_STATIC);
  if (mid_index != NULL)
    sqlite3_bind_blob (st, 8, mid_index, 32, SQLITE_STATIC);
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
  sqlite3_bind_int64 (st, 18, in->attachments ? in->attachments->len
                                              : in->n_attachments);
  store_bind_bytes (st, 19, quoted_ct);
  store_bind_bytes (st, 20, headers_ct);
  sqlite3_bind_text (st, 21, thread_by, -1, SQLITE_STATIC);
  return store_step_done (db, st, "message insert", error);
}

static gboolean
store_attachments_insert (store *s, sqlite3 *db, const store_ingest *in,
                          gint64 message_id, gint64 subject_id,
                          const guint8 *data_key, GError **error)
{
  for (guint i = 0; in->attachments && i < in->attachments->len; i++)
    {
      const store_attachment *a = in->attachments->pdata[i];
      gint64 id = store_next_id (s, db, "attachments", error);
      if (id < 0)
        return FALSE;
      g_autoptr (GVariant) meta = g_variant_ref_sink (g_variant_new (
          "(ssss)", a->name ? a->name : "",
          a->declared_type ? a->declared_type : "",
          a->detected_type ? a->detected_type : "", a->sha256));
      guint8 nonces[2][STORE_KEYS_NONCE_BYTES];

      randombytes_buf (nonces, sizeof nonces);
      g_autoptr (GBytes) meta_ct = store_seal_nonce (
          data_key, "attachments", "meta", id, subject_id, nonces[0],
          g_variant_get_data (meta), g_variant_get_size (meta));
      gsize n = 0;
      const void *p = a->content ? g_bytes_get_data (a->content, &n) : "";
      g_autoptr (GBytes) content_ct = store_seal_nonce (
          data_key, "attachments", "content", id, subject_id, nonces[1], p,
          n);
      sodium_memzero (nonces, sizeof nonces);
      sqlite3_stmt *st = store_stmt (s, db,
          "INSERT INTO attachments (id, message_id, subject_id, position,"
          " size, flags, meta, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
          " ?8)", error);
      if (st == NULL)
        return FALSE;
      sqlite3_bind_int64 (st, 1, id);
      sqlite3_bind_int64 (st, 2, message_id);
      sqlite3_bind_int64 (st, 3, subject_id);
      sqlite3_bind_int (st, 4, i);
      sqlite3_bind_int64 (st, 5, (gint64) n);
      sqlite3_bind_int64 (st, 6, a->flags);
      store_bind_bytes (st, 7, meta_ct);
      store_bind_bytes (st, 8, content_ct);
      if (!store_step_done (db, st, "attachment insert", error))
        return FALSE;
    }
  return TRUE;
}

/* A message already recorded (same bytes, or the same Message-ID from the
 * same person): one more arrival, nothing else.  */
static gboolean
store_ingest_duplicate (store *s, sqlite3 *db, store_job *job,
                        const store_ingest *in, gint64 message_id,
                        gint64 case_id, const char *why, guint *step,
                        GError **error)
{
  g_autofree char *detail = g_strdup_printf (
      "message=%" G_GINT64_FORMAT " spool=%" G_GINT64_FORMAT " source=%s"
      " same=%s", message_id, in->spool_id, in->env->source, why);

  if (!store_arrival_add (s, db, message_id, in, error))
    return FALSE;
  store_fault_step (step);
  if (!store_audit_append (s, db, "pipeline", "message.duplicate", "message",
                           detail, error))
    return FALSE;
  store_fault_step (step);
  if (!store_spool_delete (s, db, in->spool_id, error))
    return FALSE;
  store_fault_step (step);
  store_fault_commit (job, *step);
  job->result_id = case_id;
  return TRUE;
}

static gint64
store_count (store *s, sqlite3 *db, const char *sql, gint64 a, gint64 b,
             GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db, sql, error);
  gint64 n = -1;

  if (st == NULL)
    return -1;
  sqlite3_bind_int64 (st, 1, a);
  sqlite3_bind_int64 (st, 2, b);
  if (sqlite3_step (st) == SQLITE_ROW)
    n = sqlite3_column_int64 (st, 0);
  else
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "count");
  store_stmt_release (st);
  return n;
}

/* The loop breaker and the acknowledgement, inside the filing transaction
 * (SECURITY-TESTS §F): more than loop_messages messages into one case
 * within loop_minutes flags the case and stops acknowledging it; a person
 * gets at most ack_per_day acknowledgements a day; only a new case is
 * acknowledged.  *@ack: "queued", "skipped" (the per-person limit), or
 * NULL (not wanted, not a new case, or the loop breaker), for the case's
 * event.  */
static gboolean
store_ack_decide (store *s, sqlite3 *db, const store_ingest *in,
                  gint64 case_id, gint64 subject_id, gint64 message_id,
                  const char *ref, gboolean opened, const char **ack,
                  GError **error)
{
  gint64 now = g_get_real_time ();
  sqlite3_stmt *st;

  *ack = NULL;

  /* A case this message opened holds this one message: at most 1 is
   * never more than loop_messages (>= 1), so it is not counted.  */
  if (in->loop_messages > 0 && in->loop_minutes > 0 && !opened)
    {
      gint64 recent = store_count (s, db,
          "SELECT count(*) FROM messages WHERE case_id = ?1"
          " AND direction = 'in' AND received_at >= ?2", case_id,
          now - (gint64) in->loop_minutes * 60 * G_USEC_PER_SEC, error);
      if (recent < 0)
        return FALSE;
      if (recent > in->loop_messages)
        {
          st = store_stmt (s, db, "UPDATE cases SET loop_flag = 1"
                                  " WHERE id = ?1 AND loop_flag = 0", error);
          if (st == NULL)
            return FALSE;
          sqlite3_bind_int64 (st, 1, case_id);
          if (!store_step_done (db, st, "loop flag", error))
            return FALSE;
          if (sqlite3_changes (db) > 0
              && !store_audit_append (s, db, "pipeline", "case.loop", ref,
                                      "acknowledgements stopped", error))
            return FALSE;
          return TRUE;
        }
    }
  if (!in->ack_wanted || !opened)
    return TRUE;
  if (in->ack_per_day > 0)
    {
      gint64 today = store_count (s, db,
          "SELECT count(*) FROM outbox WHERE subject_id = ?1 AND kind = 'ack'"
          " AND created_at >= ?2", subject_id,
          now - (gint64) 24 * 3600 * G_USEC_PER_SEC, error);
      if (today < 0)
        return FALSE;
      if (today >= in->ack_per_day)
        {
          *ack = "skipped";     /* said in the case's own event */
          return TRUE;
        }
    }
  st = store_stmt (s, db, "INSERT INTO outbox (case_id, subject_id,"
                          " message_id, kind, next_at, created_at, language)"
                          " VALUES (?1, ?2, ?3, 'ack', ?4, ?4, ?5)", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  sqlite3_bind_int64 (st, 2, subject_id);
  sqlite3_bind_int64 (st, 3, message_id);
  sqlite3_bind_int64 (st, 4, now);
  sqlite3_bind_text (st, 5, in->language, -1, SQLITE_STATIC);
  *ack = "queued";
  return store_step_done (db, st, "outbox insert", error);
}

static gboolean
store_ingest_job_run (store *s, sqlite3 *db, store_job *job, GError **error)
{
  store_ingest_job *ij = (store_ingest_job *) job;
  store_ingest *in = ij->in;
  const gint64 now = in->env->received_at;
  guint8 *data_key = s->wkey;    /* the writer's secure scratch */
  const guint8 *content = ij->content;
  g_autofree char *ref = NULL;
  g_autofree char *detail = NULL;
  g_autoptr (GArray) hints = NULL;
  const char *thread_by = "new";
  const char *ack = NULL;
  sqlite3_stmt *st;
  gint64 subject_id, case_id = -1, message_id;
  gboolean ok = FALSE, opened = FALSE, restricted = FALSE;
  const guint8 *mid_index = ij->mid_index;
  guint step = 0;
  int rc;

  store_fault_step (&step);

  /* The same bytes again (a client retrying after a lost 250, the same
   * message to two mailboxes, SMTP and IMAP): recorded once, every arrival
   * kept.  */
  st = store_stmt (s, db, "SELECT id, case_id FROM messages"
                          " WHERE content_index = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_blob (st, 1, content, 32, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      message_id = sqlite3_column_int64 (st, 0);
      case_id = sqlite3_column_int64 (st, 1);
      store_stmt_release (st);
      return store_ingest_duplicate (s, db, job, in, message_id, case_id,
                                     "content", &step, error);
    }
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "message lookup");
      return FALSE;
    }

  subject_id = store_subject_find_or_create (s, db, ij->norm, ij->addr_index,
                                             in->from_name, now, data_key,
                                             &restricted, error);
  if (subject_id < 0)
    goto out;
  store_fault_step (&step);
  /* a restricted person: filed, not routed, not acknowledged (art. 18);
   * read with the subject, in this transaction */
  if (restricted)
    {
      g_free (in->queue);
      in->queue = g_strdup (STORE_RESTRICTED_QUEUE);
      in->ack_wanted = FALSE;
      g_clear_pointer (&in->reasons, g_free);
      in->reasons = g_strdup ("{\"rule\": \"restricted\"}");
    }

  /* The same Message-ID from the same person (a copy through another
   * route, with other trace headers): one record.  From someone else it is
   * not trusted to be the same message.  */
  if (in->message_id != NULL)
    {
      /* "+subject_id": look up by the Message-ID index, never scan
       * everything one sender ever wrote */
      st = store_stmt (s, db, "SELECT id, case_id FROM messages"
                              " WHERE message_id_index = ?1"
                              " AND +subject_id = ?2 ORDER BY id LIMIT 1",
                       error);
      if (st == NULL)
        goto out;
      sqlite3_bind_blob (st, 1, mid_index, 32, SQLITE_STATIC);
      sqlite3_bind_int64 (st, 2, subject_id);
      if (sqlite3_step (st) == SQLITE_ROW)
        {
          message_id = sqlite3_column_int64 (st, 0);
          case_id = sqlite3_column_int64 (st, 1);
          store_stmt_release (st);
          ok = store_ingest_duplicate (s, db, job, in, message_id, case_id,
                                       "message-id", &step, error);
          goto out;
        }
      store_stmt_release (st);
    }

  /* A web form got its reference when it was spooled (the 201 told the
   * citizen): it opens that case, whatever it says.  */
  /* (a SELECT, and a DELETE only for a form: DELETE ... RETURNING would
   * build a temporary table for every message) */
  st = store_stmt (s, db, "SELECT ref FROM spool_refs WHERE spool_id = ?1",
                   error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, in->spool_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    ref = g_strdup ((const char *) sqlite3_column_text (st, 0));
  store_stmt_release (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "spool ref");
      goto out;
    }
  if (ref != NULL)
    {
      st = store_stmt (s, db, "DELETE FROM spool_refs WHERE spool_id = ?1",
                       error);
      if (st == NULL)
        goto out;
      sqlite3_bind_int64 (st, 1, in->spool_id);
      if (!store_step_done (db, st, "spool ref", error))
        goto out;
    }

  /* Threading: join a case the message names only if its sender takes
   * part in that case; a stranger quoting a reference gets a new case,
   * linked.  A closed case is never reopened by mail.  */
  hints = ref != NULL ? g_array_new (FALSE, FALSE, sizeof (store_thread_hint))
                      : store_thread_hints (s, db, in, error);
  if (hints == NULL)
    goto out;
  for (guint i = 0; i < hints->len && case_id < 0; i++)
    {
      const store_thread_hint *h = &g_array_index (hints, store_thread_hint,
                                                   i);
      g_autofree char *status = NULL;
      int yes = store_participant (s, db, h->case_id, subject_id, &status,
                                   error);
      if (yes < 0)
        goto out;
      if (yes && g_strcmp0 (status, "closed") != 0)
        {
          case_id = h->case_id;
          thread_by = h->by;
        }
    }
  store_fault_step (&step);

  if (case_id < 0)
    {
      case_id = store_case_create (s, db, in, subject_id, &ref, error);
      if (case_id < 0)
        goto out;
      opened = TRUE;
      store_fault_step (&step);
      for (guint i = 0; i < hints->len; i++)
        {
          const store_thread_hint *h = &g_array_index (hints,
                                                       store_thread_hint, i);
          g_autofree char *other = store_case_ref (s, db, h->case_id, error);
          g_autofree char *ldetail = NULL;

          if (other == NULL
              || !store_link_add (s, db, case_id, h->case_id, h->by, now,
                                  error))
            goto out;
          ldetail = g_strdup_printf ("other=%s by=%s", other, h->by);
          if (!store_audit_append (s, db, "pipeline", "case.linked", ref,
                                   ldetail, error))
            goto out;
          store_fault_step (&step);
        }
    }
  else
    {
      ref = store_case_ref (s, db, case_id, error);
      if (ref == NULL || !store_case_touch (s, db, case_id, now, error))
        goto out;
      store_fault_step (&step);
    }

  message_id = store_next_id (s, db, "messages", error);
  if (message_id < 0
      || !store_message_insert (s, db, in, message_id, case_id, subject_id,
                                data_key, content,
                                in->message_id != NULL ? mid_index : NULL,
                                thread_by, error))
    goto out;
  store_fault_step (&step);
  if (!store_attachments_insert (s, db, in, message_id, subject_id, data_key,
                                 error))
    goto out;
  store_fault_step (&step);

  if (!store_arrival_add (s, db, message_id, in, error))
    goto out;
  store_fault_step (&step);
  /* The acknowledgement is decided first, so that the case's event says
   * what became of it: "ack=queued", or "ack=skipped" when the person was
   * past ack_per_day (one event a message; a portal or a prolific
   * correspondent past the limit used to add a second, ack.skipped, to
   * every case it opened).  */
  if (!store_ack_decide (s, db, in, case_id, subject_id, message_id, ref,
                         opened, &ack, error))
    goto out;
  detail = g_strdup_printf ("message=%" G_GINT64_FORMAT " spool=%"
                            G_GINT64_FORMAT " source=%s queue=%s"
                            " thread=%s attachments=%u%s%s", message_id,
                            in->spool_id, in->env->source, in->queue,
                            thread_by,
                            in->attachments ? in->attachments->len : 0,
                            ack != NULL ? " ack=" : "",
                            ack != NULL ? ack : "");
  if (!store_audit_append (s, db, "pipeline",
                           opened ? "case.opened" : "case.message", ref,
                           detail, error))
    goto out;
  /* the CRM hears of it, and the department that work arrived (not for
   * an automatic reply: that is nobody's work, and could loop) */
  if (!store_webhook_case_event (s, db, case_id,
                                 opened ? STORE_WEBHOOK_CREATED
                                        : STORE_WEBHOOK_UPDATED,
                                 opened ? NULL : "message", message_id, NULL,
                                 error)
      || (opened && !in->auto_reply
          && !store_webhook_notify (s, db, case_id, error)))
    goto out;
  store_fault_step (&step);
  if (!store_spool_delete (s, db, in->spool_id, error))
    goto out;
  store_fault_step (&step);
  store_fault_commit (job, step);
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
  const char *addr;
  gsize raw_len;
  const void *raw;

  g_return_if_fail (in->env != NULL && in->raw != NULL && in->queue != NULL
                    && in->kind != NULL && in->ref_prefix != NULL);
  addr = in->from_addr ? in->from_addr : in->env->mail_from;
  raw = g_bytes_get_data (in->raw, &raw_len);
  store_keys_blind (s->keys, "message-content", raw, raw_len, ij->content);
  if (in->message_id != NULL)
    store_keys_blind (s->keys, "message-id", in->message_id,
                      strlen (in->message_id), ij->mid_index);
  ij->norm = store_address_normalise (addr);
  store_keys_blind (s->keys, "subject-address", ij->norm, strlen (ij->norm),
                    ij->addr_index);
  ij->job.run = store_ingest_job_run;
  ij->job.free = store_ingest_job_free;
  ij->job.done = done;
  ij->job.user_data = user_data;
  ij->job.weight = g_bytes_get_size (in->raw);
  /* Run again after a rollback, it finds the same rows and does the same;
   * what it changes in @in (a restricted person's queue, reasons and
   * acknowledgement) it would change again.  */
  ij->job.rerunnable = TRUE;
  ij->in = in;
  store_job_submit (s, &ij->job);
}

/* ------------------------------------------------------------ reading */

/* The data key of @subject_id, whose wrapped form is column @col of @st,
 * from the read's cache (store_readkeys.c).  */
static const guint8 *
store_case_key (store *s, store_readkeys *cache, sqlite3_stmt *st,
                int col, gint64 subject_id)
{
  g_autoptr (GError) error = NULL;
  const guint8 *k;

  if (sqlite3_column_type (st, col) == SQLITE_NULL)
    return NULL;
  k = store_readkeys_get (s, cache, s->rdb, sqlite3_column_blob (st, col),
                          sqlite3_column_bytes (st, col), subject_id,
                          &error);
  if (k == NULL)
    g_warning ("store: data key of subject %" G_GINT64_FORMAT ": %s",
               subject_id, error->message);
  return k;
}

#define STORE_CASE_COLUMNS \
  "SELECT c.id, c.ref, c.kind, c.queue, c.status, c.priority," \
  " c.created_at, c.updated_at, c.subject_id, s.data_key, s.address, s.name," \
  " m.id, m.header_subject," \
  " (SELECT count(*) FROM messages WHERE case_id = c.id)," \
  " m.header_message_id, c.due_at, c.closed_at, c.reasons, c.rules_hash" \
  " FROM cases c LEFT JOIN subjects s ON s.id = c.subject_id" \
  " LEFT JOIN messages m ON m.id = (SELECT min(id) FROM messages" \
  "                                 WHERE case_id = c.id) "

static char *
store_column_dup (sqlite3_stmt *st, int col)
{
  return g_strdup ((const char *) sqlite3_column_text (st, col));
}

static store_case_view *
store_case_view_read (store *s, store_readkeys *cache, sqlite3_stmt *st,
                      gboolean brief)
{
  store_case_view *v = g_new0 (store_case_view, 1);
  gint64 subject_id = sqlite3_column_int64 (st, 8);
  const guint8 *key = store_case_key (s, cache, st, 9, subject_id);

  v->id = sqlite3_column_int64 (st, 0);
  v->ref = store_column_dup (st, 1);
  v->kind = store_column_dup (st, 2);
  v->queue = store_column_dup (st, 3);
  v->status = store_column_dup (st, 4);
  v->priority = store_column_dup (st, 5);
  v->created_at = sqlite3_column_int64 (st, 6);
  v->updated_at = sqlite3_column_int64 (st, 7);
  v->subject_id = subject_id;
  v->from_addr = store_column_text (st, 10, key, "subjects", "address",
                                    subject_id, subject_id);
  if (!brief)
    v->from_name = store_column_text (st, 11, key, "subjects", "name",
                                      subject_id, subject_id);
  v->subject = store_column_text (st, 13, key, "messages", "header_subject",
                                  sqlite3_column_int64 (st, 12), subject_id);
  v->n_messages = sqlite3_column_int (st, 14);
  if (!brief)
    v->message_id = store_column_text (st, 15, key, "messages",
                                       "header_message_id",
                                       sqlite3_column_int64 (st, 12),
                                       subject_id);
  v->due_at = sqlite3_column_int64 (st, 16);
  v->closed_at = sqlite3_column_int64 (st, 17);
  v->reasons = store_column_dup (st, 18);
  v->rules_hash = store_column_dup (st, 19);
  return v;
}

/* A tag of the routing reasons (their "tags" array; the reasons are
 * intake's own JSON and name no one).  The CASE keeps json_each() off a
 * value that is not JSON, which would fail the whole list.  */
#define STORE_CASE_TAG_FILTER \
  " AND (?6 IS NULL OR CASE WHEN json_valid(c.reasons) THEN EXISTS" \
  " (SELECT 1 FROM json_each(c.reasons, '$.tags') t WHERE t.value = ?6)" \
  " ELSE 0 END)"

GPtrArray *
store_case_find (store *s, const store_case_filter *f, GError **error)
{
  g_autoptr (store_readkeys) cache = store_readkeys_new ();
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_case_view_free);
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  /* A NULL parameter matches anything.  A department's page names its
   * queue with a plain "c.queue = ?1", so that the (queue, id) index walks
   * that queue only: written "?1 IS NULL OR c.queue = ?1" the planner
   * walks every case by id and filters, which costs a whole-table scan
   * for a small queue (information governance, a quiet department) or a
   * page deep in one (EXPLAIN QUERY PLAN: "SEARCH c USING INDEX
   * cases_queue_id (queue=? AND id<?)" against "USING INTEGER PRIMARY
   * KEY (rowid<?)").  */
  if (f != NULL && f->queue != NULL)
    st = store_stmt (s, s->rdb, STORE_CASE_COLUMNS
                     "WHERE c.queue = ?1"
                     " AND (?2 IS NULL OR c.status = ?2)"
                     " AND (?3 IS NULL OR c.kind = ?3)"
                     STORE_CASE_TAG_FILTER
                     " AND c.id < (CASE WHEN ?4 > 0 THEN ?4"
                     "             ELSE 9223372036854775807 END)"
                     " ORDER BY c.id DESC LIMIT ?5", error);
  else
    st = store_stmt (s, s->rdb, STORE_CASE_COLUMNS
                     "WHERE (?2 IS NULL OR c.status = ?2)"
                     " AND (?3 IS NULL OR c.kind = ?3)"
                     STORE_CASE_TAG_FILTER
                     " AND c.id < (CASE WHEN ?4 > 0 THEN ?4"
                     "             ELSE 9223372036854775807 END)"
                     " ORDER BY c.id DESC LIMIT ?5", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      g_ptr_array_unref (out);
      return NULL;
    }
  sqlite3_bind_text (st, 1, f ? f->queue : NULL, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, f ? f->status : NULL, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 3, f ? f->kind : NULL, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 4, f ? f->before_id : 0);
  sqlite3_bind_int64 (st, 5, f && f->limit ? (gint64) f->limit : -1);
  sqlite3_bind_text (st, 6, f ? f->tag : NULL, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (out, store_case_view_read (s, cache, st, f && f->brief));
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "case list");
      g_clear_pointer (&out, g_ptr_array_unref);
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;
}

GPtrArray *
store_case_list (store *s, GError **error)
{
  return store_case_find (s, NULL, error);
}

store_case_view *
store_case_get (store *s, const char *ref, GPtrArray **messages,
                GError **error)
{
  g_autoptr (store_readkeys) cache = store_readkeys_new ();
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
    v = store_case_view_read (s, cache, st, FALSE);
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
      " (SELECT count(*) FROM arrivals a WHERE a.message_id = m.id),"
      " m.attachments, m.thread_by, m.anomalies, m.special, m.auto_reply"
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
      const guint8 *key = store_case_key (s, cache, st, 6, subject_id);

      m->id = sqlite3_column_int64 (st, 0);
      m->direction = store_column_dup (st, 1);
      m->source = store_column_dup (st, 2);
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
      m->n_attachments = sqlite3_column_int (st, 11);
      m->thread_by = g_strdup (sqlite3_column_type (st, 12) == SQLITE_NULL
                                   ? "new"
                                   : (const char *) sqlite3_column_text (st,
                                                                         12));
      m->anomalies = sqlite3_column_int64 (st, 13);
      m->special = sqlite3_column_int64 (st, 14);
      m->auto_reply = sqlite3_column_int (st, 15) != 0;
      g_ptr_array_add (*messages, m);
    }
  store_stmt_release (st);

out:
  g_mutex_unlock (&s->rlock);
  return v;
}

void
store_case_link_free (store_case_link *l)
{
  if (l == NULL)
    return;
  g_free (l->ref);
  g_free (l->reason);
  g_free (l);
}

void
store_participant_view_free (store_participant_view *p)
{
  if (p == NULL)
    return;
  g_free (p->role);
  g_free (p->addr);
  g_free (p->name);
  g_free (p);
}

void
store_attachment_view_free (store_attachment_view *a)
{
  if (a == NULL)
    return;
  g_free (a->name);
  g_free (a->declared_type);
  g_free (a->detected_type);
  g_free (a->sha256);
  g_free (a);
}

gboolean
store_case_details (store *s, gint64 case_id, GPtrArray **links,
                    GPtrArray **participants, GPtrArray **attachments,
                    GError **error)
{
  g_autoptr (store_readkeys) cache = store_readkeys_new ();
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  int rc;

  g_mutex_lock (&s->rlock);
  if (links != NULL)
    {
      *links = g_ptr_array_new_with_free_func (
          (GDestroyNotify) store_case_link_free);
      st = store_stmt (s, s->rdb,
          "SELECT c.ref, l.reason FROM case_links l"
          " JOIN cases c ON c.id = l.other_id WHERE l.case_id = ?1"
          " UNION ALL "
          "SELECT c.ref, 'linked-from-' || l.reason FROM case_links l"
          " JOIN cases c ON c.id = l.case_id WHERE l.other_id = ?1", error);
      if (st == NULL)
        goto out;
      sqlite3_bind_int64 (st, 1, case_id);
      while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          store_case_link *l = g_new0 (store_case_link, 1);
          l->ref = store_column_dup (st, 0);
          l->reason = store_column_dup (st, 1);
          g_ptr_array_add (*links, l);
        }
      store_stmt_release (st);
      if (rc != SQLITE_DONE)
        {
          store_set_sqlite_error (error, s->rdb, rc, "case links");
          goto out;
        }
    }
  if (participants != NULL)
    {
      *participants = g_ptr_array_new_with_free_func (
          (GDestroyNotify) store_participant_view_free);
      st = store_stmt (s, s->rdb,
          "SELECT p.subject_id, p.role, s.data_key, s.address, s.name"
          " FROM case_participants p JOIN subjects s ON s.id = p.subject_id"
          " WHERE p.case_id = ?1 ORDER BY p.added_at, p.subject_id", error);
      if (st == NULL)
        goto out;
      sqlite3_bind_int64 (st, 1, case_id);
      while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          store_participant_view *p = g_new0 (store_participant_view, 1);
          const guint8 *key;

          p->subject_id = sqlite3_column_int64 (st, 0);
          key = store_case_key (s, cache, st, 2, p->subject_id);
          p->role = store_column_dup (st, 1);
          p->addr = store_column_text (st, 3, key, "subjects", "address",
                                       p->subject_id, p->subject_id);
          p->name = store_column_text (st, 4, key, "subjects", "name",
                                       p->subject_id, p->subject_id);
          g_ptr_array_add (*participants, p);
        }
      store_stmt_release (st);
      if (rc != SQLITE_DONE)
        {
          store_set_sqlite_error (error, s->rdb, rc, "participants");
          goto out;
        }
    }
  if (attachments != NULL)
    {
      *attachments = g_ptr_array_new_with_free_func (
          (GDestroyNotify) store_attachment_view_free);
      st = store_stmt (s, s->rdb,
          "SELECT a.id, a.message_id, a.position, a.size, a.flags, a.meta,"
          " a.subject_id, s.data_key FROM attachments a"
          " JOIN messages m ON m.id = a.message_id"
          " JOIN subjects s ON s.id = a.subject_id"
          " WHERE m.case_id = ?1 ORDER BY a.message_id, a.position", error);
      if (st == NULL)
        goto out;
      sqlite3_bind_int64 (st, 1, case_id);
      while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          store_attachment_view *a = g_new0 (store_attachment_view, 1);
          gint64 id = sqlite3_column_int64 (st, 0);
          gint64 subject_id = sqlite3_column_int64 (st, 6);
          const guint8 *key = store_case_key (s, cache, st, 7, subject_id);
          g_autoptr (GError) local = NULL;
          g_autoptr (GBytes) meta = NULL;

          a->message_id = sqlite3_column_int64 (st, 1);
          a->position = sqlite3_column_int (st, 2);
          a->size = sqlite3_column_int64 (st, 3);
          a->flags = sqlite3_column_int64 (st, 4);
          if (key != NULL)
            meta = store_unseal (key, "attachments", "meta", id, subject_id,
                                 sqlite3_column_blob (st, 5),
                                 sqlite3_column_bytes (st, 5), &local);
          if (meta != NULL)
            {
              g_autoptr (GVariant) v = g_variant_ref_sink (
                  g_variant_new_from_bytes (G_VARIANT_TYPE ("(ssss)"), meta,
                                            FALSE));
              if (g_variant_is_normal_form (v))
                g_variant_get (v, "(ssss)", &a->name, &a->declared_type,
                               &a->detected_type, &a->sha256);
            }
          if (a->name == NULL)
            {
              g_warning ("store: attachment %" G_GINT64_FORMAT " does not"
                         " open", id);
              a->name = g_strdup ("");
            }
          g_ptr_array_add (*attachments, a);
        }
      store_stmt_release (st);
      if (rc != SQLITE_DONE)
        {
          store_set_sqlite_error (error, s->rdb, rc, "attachments");
          goto out;
        }
    }
  ok = TRUE;
out:
  g_mutex_unlock (&s->rlock);
  return ok;
}

/* Open one sealed column of one row, with the owner's data key.  */
static GBytes *
store_open_cell (store *s, const char *sql, gint64 a, gint64 b,
                 const char *table, const char *column, GError **error)
{
  sqlite3_stmt *st;
  GBytes *out = NULL;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, sql, error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      return NULL;
    }
  sqlite3_bind_int64 (st, 1, a);
  sqlite3_bind_int64 (st, 2, b);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      /* columns: row id, owner, wrapped key, sealed value */
      gint64 row = sqlite3_column_int64 (st, 0);
      gint64 owner = sqlite3_column_int64 (st, 1);
      guint8 *key = store_subject_key_unwrap (s, s->rdb, sqlite3_column_blob (st, 2),
                                       sqlite3_column_bytes (st, 2), owner,
                                       error);
      if (key != NULL && sqlite3_column_type (st, 3) != SQLITE_NULL)
        out = store_unseal (key, table, column, row, owner,
                            sqlite3_column_blob (st, 3),
                            sqlite3_column_bytes (st, 3), error);
      else if (key != NULL)
        out = g_bytes_new ("", 0);
      store_keys_data_key_free (key);
    }
  else if (rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no such %s",
                 table);
  else
    store_set_sqlite_error (error, s->rdb, rc, table);
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;
}

char *
store_message_text (store *s, gint64 message_id, GError **error)
{
  GBytes *b = store_open_cell (s,
      "SELECT m.id, m.subject_id, s.data_key, m.text FROM messages m"
      " JOIN subjects s ON s.id = m.subject_id WHERE m.id = ?1 AND ?2 = 0",
      message_id, 0, "messages", "text", error);

  return b ? g_bytes_unref_to_data (b, &(gsize){ 0 }) : NULL;
}

GBytes *
store_attachment_content (store *s, gint64 message_id, guint position,
                          GError **error)
{
  return store_open_cell (s,
      "SELECT a.id, a.subject_id, s.data_key, a.content FROM attachments a"
      " JOIN subjects s ON s.id = a.subject_id"
      " WHERE a.message_id = ?1 AND a.position = ?2",
      message_id, position, "attachments", "content", error);
}

/* ------------------------------------------------------------- status */

gboolean
store_status_allowed (const char *from, const char *to)
{
  static const struct {
    const char *from, *to;
  } allowed[] = {
    { "new", "assigned" }, { "new", "resolved" }, { "new", "closed" },
    { "assigned", "new" }, { "assigned", "waiting" },
    { "assigned", "resolved" },
    { "waiting", "assigned" }, { "waiting", "resolved" },
    { "resolved", "assigned" }, { "resolved", "closed" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (allowed); i++)
    if (g_strcmp0 (from, allowed[i].from) == 0
        && g_strcmp0 (to, allowed[i].to) == 0)
      return TRUE;
  return FALSE;
}

gboolean
store_case_set_status (store *s, const char *ref, const char *to,
                       const char *actor, GError **error)
{
  g_autofree char *from = NULL;
  g_autofree char *detail = NULL;
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  gint64 now = g_get_real_time ();
  int rc;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "case status");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb, "SELECT status FROM cases WHERE ref = ?1",
                   error);
  if (st == NULL)
    goto out;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    from = store_column_dup (st, 0);
  store_stmt_release (st);
  if (from == NULL)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no case %s",
                   ref);
      goto out;
    }
  detail = g_strdup_printf ("from=%s to=%s", from, to);
  if (!store_status_allowed (from, to))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "case %s is %s; it cannot become %s", ref, from, to);
      /* A refused change is an event too.  */
      if (store_audit_append_outcome (s, s->rdb, actor, "case.status", ref,
                                      detail, "refused", NULL))
        sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL);
      goto out;
    }
  st = store_stmt (s, s->rdb,
      "UPDATE cases SET status = ?2, updated_at = ?3,"
      " closed_at = CASE WHEN ?2 = 'closed' THEN ?3 ELSE NULL END"
      " WHERE ref = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, to, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 3, now);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "case status");
      goto out;
    }
  if (!store_audit_append (s, s->rdb, actor, "case.status", ref, detail,
                           error)
      || !store_webhook_ref_event (s, s->rdb, ref, "status", to, NULL, error))
    goto out;
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "case status commit");
out:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

/* ----------------------------------------------------------- subjects */

void
store_subject_view_free (store_subject_view *v)
{
  if (v == NULL)
    return;
  g_free (v->addr);
  g_free (v->name);
  g_clear_pointer (&v->case_refs, g_ptr_array_unref);
  g_free (v);
}

store_subject_view *
store_subject_find (store *s, const char *addr, GError **error)
{
  g_autoptr (store_readkeys) cache = store_readkeys_new ();
  g_autofree char *norm = store_address_normalise (addr);
  store_subject_view *v = NULL;
  guint8 index[32];
  sqlite3_stmt *st;
  int rc;

  store_keys_blind (s->keys, "subject-address", norm, strlen (norm), index);
  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT id, data_key, address, name,"
                              " created_at, wrap_version FROM subjects"
                              " WHERE address_index = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_blob (st, 1, index, sizeof index, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      const guint8 *key;

      v = g_new0 (store_subject_view, 1);
      v->id = sqlite3_column_int64 (st, 0);
      key = store_case_key (s, cache, st, 1, v->id);
      v->addr = store_column_text (st, 2, key, "subjects", "address", v->id,
                                   v->id);
      v->name = store_column_text (st, 3, key, "subjects", "name", v->id,
                                   v->id);
      v->created_at = sqlite3_column_int64 (st, 4);
      v->wrap_version = sqlite3_column_int (st, 5);
      v->case_refs = g_ptr_array_new_with_free_func (g_free);
    }
  else if (rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                 "no data subject with that address");
  else
    store_set_sqlite_error (error, s->rdb, rc, "subject find");
  store_stmt_release (st);
  if (v == NULL)
    goto out;
  st = store_stmt (s, s->rdb, "SELECT c.ref FROM case_participants p"
                              " JOIN cases c ON c.id = p.case_id"
                              " WHERE p.subject_id = ?1 ORDER BY c.id",
                   error);
  if (st == NULL)
    {
      g_clear_pointer (&v, store_subject_view_free);
      goto out;
    }
  sqlite3_bind_int64 (st, 1, v->id);
  while (sqlite3_step (st) == SQLITE_ROW)
    g_ptr_array_add (v->case_refs, store_column_dup (st, 0));
  store_stmt_release (st);
out:
  g_mutex_unlock (&s->rlock);
  return v;
}

/* --------------------------------------------------------------- keys */

gint64
store_rewrap_pending (store *s, GError **error)
{
  sqlite3_stmt *st;
  gint64 n = -1;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT count(*) FROM subjects"
                              " WHERE (wrap_version < ?1 OR vault = 0)"
                              " AND erasing_at IS NULL", error);
  if (st != NULL)
    {
      sqlite3_bind_int (st, 1, store_keys_version (s->keys));
      if (sqlite3_step (st) == SQLITE_ROW)
        n = sqlite3_column_int64 (st, 0);
      else
        store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                                "rewrap count");
      store_stmt_release (st);
    }
  g_mutex_unlock (&s->rlock);
  return n;
}

gint64
store_rewrap_batch (store *s, guint max, GError **error)
{
  const guint current = store_keys_version (s->keys);
  guint8 *key = store_keys_data_key_new ();
  sqlite3_stmt *sel = NULL, *upd;
  gint64 done = 0;
  gboolean ok = FALSE;
  int rc;

  gint64 vaulted = 0;

  g_mutex_lock (&s->rlock);
  store_vault_lock (s);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "rewrap");
      goto out;
    }
  /* main database first, then the vault: the writer thread takes the two
   * locks in the same order */
  if (!store_vault_begin (s->rvault, error))
    goto out;
  /* prepared afresh: the update below runs while this one is open.  Keys
   * of an older master key version, and keys not yet in the vault (a
   * database from before the vault): both get the current version and a
   * vault secret.  */
  sel = store_prepare (s->rdb, "SELECT id, data_key, vault FROM subjects"
                               " WHERE vault = 0 AND erasing_at IS NULL"
                               " UNION SELECT id, data_key, vault"
                               " FROM subjects WHERE wrap_version < ?1"
                               " AND erasing_at IS NULL ORDER BY id"
                               " LIMIT ?2", error);
  if (sel == NULL)
    goto out;
  sqlite3_bind_int (sel, 1, current);
  sqlite3_bind_int (sel, 2, max);
  while ((rc = sqlite3_step (sel)) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (sel, 0);
      g_autoptr (GBytes) wrapped = NULL;

      if (sqlite3_column_int (sel, 2) == 0)
        vaulted++;
      wrapped = store_subject_key_rewrap (s, s->rdb, id,
                                          sqlite3_column_blob (sel, 1),
                                          sqlite3_column_bytes (sel, 1), key,
                                          error);
      if (wrapped == NULL)
        goto out;
      upd = store_stmt (s, s->rdb, "UPDATE subjects SET data_key = ?2,"
                                   " wrap_version = ?3, vault = 1"
                                   " WHERE id = ?1", error);
      if (upd == NULL)
        goto out;
      sqlite3_bind_int64 (upd, 1, id);
      store_bind_bytes (upd, 2, wrapped);
      sqlite3_bind_int (upd, 3, current);
      if (!store_step_done (s->rdb, upd, "rewrap", error))
        goto out;
      done++;
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "rewrap");
      goto out;
    }
  if (done > 0)
    {
      g_autofree char *detail = g_strdup_printf ("version=%u subjects=%"
                                                 G_GINT64_FORMAT " vaulted=%"
                                                 G_GINT64_FORMAT, current,
                                                 done, vaulted);
      if (!store_audit_append (s, s->rdb, "keys", "keys.rewrap", "subjects",
                               detail, error))
        goto out;
    }
  /* The new secrets are on disk before the keys that need them: a crash in
   * between leaves secrets no key uses yet, replaced on the next run, and
   * every key is re-wrapped exactly once (its row changes in one commit). */
  if (!store_vault_commit (s->rvault, error))
    goto out;
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "rewrap commit");
out:
  if (sel != NULL)
    sqlite3_finalize (sel);
  store_vault_rollback (s->rvault);
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  store_vault_unlock (s);
  g_mutex_unlock (&s->rlock);
  store_keys_data_key_free (key);
  return ok ? done : -1;
}

/* ------------------------------------------------------------- replay */

gint64
store_replay (store *s, gint64 since_us, store_replay_fn fn, gpointer data,
              GError **error)
{
  g_autoptr (store_readkeys) cache = store_readkeys_new ();
  sqlite3_stmt *st;
  gint64 n = 0;
  int rc;

  g_mutex_lock (&s->rlock);
  /* prepared afresh: @fn may read through this connection too */
  st = store_prepare (s->rdb,
      "SELECT c.ref, c.queue, c.kind, c.created_at, m.id, m.subject_id,"
      " s.data_key, m.header_subject, m.text, m.header_from, m.envelope,"
      " m.source, c.rerouted_at IS NOT NULL"
      " FROM cases c JOIN messages m ON m.id = (SELECT min(id) FROM messages"
      "                                         WHERE case_id = c.id)"
      " JOIN subjects s ON s.id = m.subject_id"
      " WHERE c.created_at >= ?1 ORDER BY c.id", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      return -1;
    }
  sqlite3_bind_int64 (st, 1, since_us);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      gint64 mid = sqlite3_column_int64 (st, 4);
      gint64 subject_id = sqlite3_column_int64 (st, 5);
      const guint8 *key = store_case_key (s, cache, st, 6, subject_id);
      g_autofree char *subj = store_column_text (st, 7, key, "messages",
                                                 "header_subject", mid,
                                                 subject_id);
      g_autofree char *text = store_column_text (st, 8, key, "messages",
                                                 "text", mid, subject_id);
      g_autofree char *from = store_column_text (st, 9, key, "messages",
                                                 "header_from", mid,
                                                 subject_id);
      g_autoptr (GBytes) envb = NULL;
      g_autoptr (GPtrArray) rcpts = g_ptr_array_new ();
      store_envelope *env = NULL;
      store_replay_item it = { 0 };

      if (key != NULL && sqlite3_column_type (st, 10) != SQLITE_NULL)
        envb = store_unseal (key, "messages", "envelope", mid, subject_id,
                             sqlite3_column_blob (st, 10),
                             sqlite3_column_bytes (st, 10), NULL);
      if (envb != NULL)
        env = store_envelope_unpack (envb, NULL);
      for (guint i = 0; env && i < env->rcpts->len; i++)
        g_ptr_array_add (rcpts, env->rcpts->pdata[i]);
      g_ptr_array_add (rcpts, NULL);
      it.ref = (const char *) sqlite3_column_text (st, 0);
      it.queue = (const char *) sqlite3_column_text (st, 1);
      it.kind = (const char *) sqlite3_column_text (st, 2);
      it.created_at = sqlite3_column_int64 (st, 3);
      it.source = (const char *) sqlite3_column_text (st, 11);
      it.rerouted = sqlite3_column_int (st, 12) != 0;
      it.subject = subj;
      it.text = text;
      it.sender = from;
      it.recipients = (const char *const *) rcpts->pdata;
      fn (&it, data);
      store_envelope_free (env);
      n++;
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "replay");
      n = -1;
    }
  sqlite3_finalize (st);
  g_mutex_unlock (&s->rlock);
  return n;
}

gboolean
store_rule_stats (store *s, GHashTable *fired, GHashTable *routed,
                  gint64 *cases, GError **error)
{
  static const char *const sql[] = {
    "SELECT j.value, count(*) FROM cases c,"
    " json_each(c.reasons, '$.fired') j WHERE c.reasons IS NOT NULL"
    " AND json_valid(c.reasons) GROUP BY j.value",
    "SELECT json_extract(reasons, '$.rule'), count(*) FROM cases"
    " WHERE reasons IS NOT NULL AND json_valid(reasons) GROUP BY 1",
    "SELECT count(*), 0 FROM cases WHERE reasons IS NOT NULL",
  };
  GHashTable *into[] = { fired, routed, NULL };
  gboolean ok = TRUE;

  g_mutex_lock (&s->rlock);
  for (guint q = 0; q < G_N_ELEMENTS (sql) && ok; q++)
    {
      sqlite3_stmt *st = store_prepare (s->rdb, sql[q], error);
      int rc;
      if (st == NULL)
        {
          ok = FALSE;
          break;
        }
      while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          if (into[q] == NULL)
            *cases = sqlite3_column_int64 (st, 0);
          else if (sqlite3_column_type (st, 0) != SQLITE_NULL)
            g_hash_table_insert (into[q],
                                 g_strdup ((const char *)
                                               sqlite3_column_text (st, 0)),
                                 GINT_TO_POINTER (sqlite3_column_int (st,
                                                                      1)));
        }
      if (rc != SQLITE_DONE)
        {
          store_set_sqlite_error (error, s->rdb, rc, "rule stats");
          ok = FALSE;
        }
      sqlite3_finalize (st);
    }
  g_mutex_unlock (&s->rlock);
  return ok;
}

gboolean
store_case_reroute_allowed (store *s, const char *ref, const char *queue,
                            GError **error)
{
  sqlite3_stmt *st;
  int rc;

  if (queue == NULL || strcmp (queue, STORE_RESTRICTED_QUEUE) == 0)
    return TRUE;
  st = store_stmt (s, s->rdb, "SELECT s.restricted_at IS NOT NULL"
                              " FROM cases c JOIN subjects s"
                              " ON s.id = c.subject_id WHERE c.ref = ?1",
                   error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW && sqlite3_column_int (st, 0))
    {
      store_stmt_release (st);
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "the person of case %s has restricted processing (or"
                   " objected): the case stays with %s until 'intakectl"
                   " subject unrestrict'", ref, STORE_RESTRICTED_QUEUE);
      return FALSE;
    }
  store_stmt_release (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "reroute");
      return FALSE;
    }
  return TRUE;
}

void
store_set_due_fn (store *s, store_due_fn fn, gpointer data)
{
  g_return_if_fail (s != NULL);
  s->due_fn = fn;
  s->due_data = data;
}

/* A due date for the audit: the day, or "none".  */
static void
store_case_due_text (GString *o, gint64 due_at)
{
  if (due_at <= 0)
    {
      g_string_append (o, "none");
      return;
    }
  {
    g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (due_at
                                                             / G_USEC_PER_SEC);
    g_autofree char *day = t ? g_date_time_format (t, "%Y-%m-%d") : NULL;
    g_string_append (o, day ? day : "none");
  }
}

gboolean
store_case_due_again (store *s, gint64 case_id, const char *old_kind,
                      const char *kind, GString *detail, GError **error)
{
  sqlite3_stmt *st;
  gint64 received = 0, old_due = 0, due;
  int rc;

  if (s->due_fn == NULL || kind == NULL || g_strcmp0 (kind, old_kind) == 0)
    return TRUE;
  /* the clock counts from the day the request arrived: the case's first
   * message from outside, else the case's own creation */
  st = store_stmt (s, s->rdb,
                   "SELECT coalesce((SELECT min(m.received_at) FROM messages m"
                   " WHERE m.case_id = c.id AND m.direction = 'in'),"
                   " c.created_at), coalesce(c.due_at, 0)"
                   " FROM cases c WHERE c.id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      received = sqlite3_column_int64 (st, 0);
      old_due = sqlite3_column_int64 (st, 1);
    }
  store_stmt_release (st);
  if (rc != SQLITE_ROW)
    {
      store_set_sqlite_error (error, s->rdb, rc, "reroute due date");
      return FALSE;
    }
  due = s->due_fn (kind, received, s->due_data);
  st = store_stmt (s, s->rdb, "UPDATE cases SET due_at = ?2 WHERE id = ?1",
                   error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  if (due > 0)
    sqlite3_bind_int64 (st, 2, due);
  else
    sqlite3_bind_null (st, 2);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "reroute due date");
      return FALSE;
    }
  g_string_append (detail, " due=");
  store_case_due_text (detail, old_due);
  g_string_append (detail, "->");
  store_case_due_text (detail, due);
  return TRUE;
}

gboolean
store_case_reroute (store *s, const char *ref, const char *queue,
                    const char *kind, const char *actor, GError **error)
{
  g_autofree char *old_queue = NULL;
  g_autofree char *old_kind = NULL;
  g_autoptr (GString) detail = g_string_new (NULL);
  gint64 case_id = -1;
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  int rc;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "reroute");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb, "SELECT queue, kind, id FROM cases"
                              " WHERE ref = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  if (sqlite3_step (st) == SQLITE_ROW)
    {
      old_queue = store_column_dup (st, 0);
      old_kind = store_column_dup (st, 1);
      case_id = sqlite3_column_int64 (st, 2);
    }
  store_stmt_release (st);
  if (old_queue == NULL)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no case %s",
                   ref);
      goto out;
    }
  if (!store_case_reroute_allowed (s, ref, queue, error))
    goto out;
  st = store_stmt (s, s->rdb,
      "UPDATE cases SET queue = coalesce(?2, queue), kind = coalesce(?3, kind),"
      " rerouted_at = ?4, updated_at = ?4 WHERE ref = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, queue, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 3, kind, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 4, g_get_real_time ());
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "reroute");
      goto out;
    }
  g_string_printf (detail, "queue=%s->%s kind=%s->%s", old_queue,
                   queue ? queue : old_queue, old_kind,
                   kind ? kind : old_kind);
  if (!store_case_due_again (s, case_id, old_kind, kind, detail, error))
    goto out;
  if (!store_audit_append (s, s->rdb, actor, "case.reroute", ref,
                           detail->str, error)
      || !store_webhook_ref_event (s, s->rdb, ref, "routing", NULL, old_queue,
                                   error))
    goto out;
  /* work arrived in another queue: its department hears of it */
  if (queue != NULL && strcmp (queue, old_queue) != 0)
    {
      st = store_stmt (s, s->rdb, "SELECT id FROM cases WHERE ref = ?1",
                       error);
      if (st == NULL)
        goto out;
      sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
      rc = sqlite3_step (st);
      {
        gint64 cid = rc == SQLITE_ROW ? sqlite3_column_int64 (st, 0) : -1;
        store_stmt_release (st);
        if (cid < 0 || !store_webhook_notify (s, s->rdb, cid, error))
          goto out;
      }
    }
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "reroute commit");
out:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

/* ------------------------------------------------------------ health */

gboolean
store_writable (store *s)
{
  gboolean ok;

  g_mutex_lock (&s->rlock);
  ok = sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

void
store_case_count_free (store_case_count *c)
{
  if (c == NULL)
    return;
  g_free (c->queue);
  g_free (c->status);
  g_free (c);
}

GPtrArray *
store_case_counts (store *s, GError **error)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_case_count_free);
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT queue, status, count(*) FROM cases"
                              " GROUP BY queue, status ORDER BY 1, 2", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      g_ptr_array_unref (out);
      return NULL;
    }
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      store_case_count *c = g_new0 (store_case_count, 1);
      c->queue = store_column_dup (st, 0);
      c->status = store_column_dup (st, 1);
      c->n = sqlite3_column_int64 (st, 2);
      g_ptr_array_add (out, c);
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "case counts");
      g_clear_pointer (&out, g_ptr_array_unref);
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;
}

/* ------------------------------------------------------------- outbox */

void
store_outbox_item_free (store_outbox_item *it)
{
  if (it == NULL)
    return;
  g_free (it->kind);
  g_free (it->ref);
  g_free (it->case_kind);
  g_free (it->queue);
  g_free (it->to);
  g_free (it->mailbox);
  g_free (it->subject);
  g_free (it->in_reply_to);
  g_free (it->body);
  g_free (it->priority);
  g_free (it->language);
  g_free (it);
}

GPtrArray *
store_outbox_due (store *s, guint max, GError **error)
{
  g_autoptr (store_readkeys) cache = store_readkeys_new ();
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_outbox_item_free);
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  /* the message answered: the one acknowledged, else the case's first */
  st = store_stmt (s, s->rdb,
      "SELECT o.id, o.case_id, o.kind, o.attempts, o.created_at, c.ref,"
      " c.kind, coalesce(o.queue, c.queue), c.due_at, m.id, m.subject_id,"
      " sm.data_key, m.envelope, m.header_subject, m.header_message_id,"
      " o.body, o.subject_id, so.data_key, c.priority, o.language"
      " FROM outbox o JOIN cases c ON c.id = o.case_id"
      " JOIN messages m ON m.id = coalesce(o.message_id,"
      "   (SELECT min(id) FROM messages WHERE case_id = o.case_id"
      "    AND direction = 'in'))"
      " JOIN subjects sm ON sm.id = m.subject_id"
      " JOIN subjects so ON so.id = o.subject_id"
      " WHERE o.status = 'queued' AND o.next_at <= ?1"
      " ORDER BY o.next_at, o.id LIMIT ?2", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      g_ptr_array_unref (out);
      return NULL;
    }
  sqlite3_bind_int64 (st, 1, g_get_real_time ());
  sqlite3_bind_int (st, 2, max);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      store_outbox_item *it = g_new0 (store_outbox_item, 1);
      gint64 mid = sqlite3_column_int64 (st, 9);
      gint64 msub = sqlite3_column_int64 (st, 10);
      gint64 osub = sqlite3_column_int64 (st, 16);
      const guint8 *mkey = store_case_key (s, cache, st, 11, msub);
      const guint8 *okey = store_case_key (s, cache, st, 17, osub);
      g_autoptr (GBytes) envb = NULL;

      it->id = sqlite3_column_int64 (st, 0);
      it->case_id = sqlite3_column_int64 (st, 1);
      it->kind = store_column_dup (st, 2);
      it->attempts = sqlite3_column_int (st, 3);
      it->created_at = sqlite3_column_int64 (st, 4);
      it->ref = store_column_dup (st, 5);
      it->case_kind = store_column_dup (st, 6);
      it->queue = store_column_dup (st, 7);
      it->due_at = sqlite3_column_int64 (st, 8);
      if (mkey != NULL && sqlite3_column_type (st, 12) != SQLITE_NULL)
        envb = store_unseal (mkey, "messages", "envelope", mid, msub,
                             sqlite3_column_blob (st, 12),
                             sqlite3_column_bytes (st, 12), NULL);
      if (envb != NULL)
        {
          store_envelope *env = store_envelope_unpack (envb, NULL);
          if (env != NULL)
            {
              it->to = g_strdup (env->mail_from);
              if (env->rcpts->len > 0)
                it->mailbox = g_strdup (env->rcpts->pdata[0]);
              store_envelope_free (env);
            }
        }
      it->subject = store_column_text (st, 13, mkey, "messages",
                                       "header_subject", mid, msub);
      it->in_reply_to = store_column_text (st, 14, mkey, "messages",
                                           "header_message_id", mid, msub);
      it->body = store_column_text (st, 15, okey, "outbox", "body", it->id,
                                    osub);
      it->priority = store_column_dup (st, 18);
      it->language = store_column_dup (st, 19);
      g_ptr_array_add (out, it);
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "outbox");
      g_clear_pointer (&out, g_ptr_array_unref);
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;
}

gboolean
store_outbox_done (store *s, gint64 id, gboolean sent, gint64 next_at,
                   gboolean failed, const char *reply, GError **error)
{
  g_autofree char *ref = NULL;
  g_autofree char *detail = NULL;
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  int rc;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "outbox");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb,
      "UPDATE outbox SET status = CASE WHEN ?2 THEN 'sent' WHEN ?4 THEN"
      " 'failed' ELSE 'queued' END, attempts = attempts + 1,"
      " next_at = CASE WHEN ?3 > 0 THEN ?3 ELSE next_at END,"
      " sent_at = CASE WHEN ?2 THEN ?5 ELSE sent_at END, last_reply = ?6"
      " WHERE id = ?1 AND status = 'queued'"
      " RETURNING (SELECT ref FROM cases WHERE id = outbox.case_id), kind",
      error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_int (st, 2, sent);
  sqlite3_bind_int64 (st, 3, next_at);
  sqlite3_bind_int (st, 4, failed);
  sqlite3_bind_int64 (st, 5, g_get_real_time ());
  sqlite3_bind_text (st, 6, reply, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      ref = store_column_dup (st, 0);
      detail = g_strdup_printf ("outbox=%" G_GINT64_FORMAT " kind=%s", id,
                                (const char *) sqlite3_column_text (st, 1));
    }
  store_stmt_release (st);
  if (ref == NULL)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   "outbox %" G_GINT64_FORMAT " is not queued", id);
      goto out;
    }
  if ((sent || failed)
      && !store_audit_append_outcome (s, s->rdb, "outbound",
                                      sent ? "message.sent" : "message.send",
                                      ref, detail, sent ? "ok" : "failed",
                                      error))
    goto out;
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
out:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

gboolean
store_outbox_reply (store *s, const char *ref, const char *text,
                    const char *actor, GError **error)
{
  sqlite3_stmt *st;
  gint64 case_id = -1, subject_id = -1, id;
  guint8 *key = NULL;
  gboolean ok = FALSE;
  int rc;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "reply");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb, "SELECT c.id, c.subject_id, s.data_key"
                              " FROM cases c JOIN subjects s"
                              " ON s.id = c.subject_id WHERE c.ref = ?1",
                   error);
  if (st == NULL)
    goto out;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  if (sqlite3_step (st) == SQLITE_ROW)
    {
      case_id = sqlite3_column_int64 (st, 0);
      subject_id = sqlite3_column_int64 (st, 1);
      key = store_subject_key_unwrap (s, s->rdb, sqlite3_column_blob (st, 2),
                               sqlite3_column_bytes (st, 2), subject_id,
                               error);
    }
  store_stmt_release (st);
  if (case_id < 0)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no case %s",
                   ref);
      goto out;
    }
  if (key == NULL)
    goto out;
  id = store_next_id (s, s->rdb, "outbox", error);
  if (id < 0)
    goto out;
  {
    g_autoptr (GBytes) body = store_seal (key, "outbox", "body", id,
                                          subject_id, text, strlen (text));
    st = store_stmt (s, s->rdb, "INSERT INTO outbox (id, case_id,"
                                " subject_id, kind, body, next_at,"
                                " created_at) VALUES (?1, ?2, ?3, 'reply',"
                                " ?4, ?5, ?5)", error);
    if (st == NULL)
      goto out;
    sqlite3_bind_int64 (st, 1, id);
    sqlite3_bind_int64 (st, 2, case_id);
    sqlite3_bind_int64 (st, 3, subject_id);
    store_bind_bytes (st, 4, body);
    sqlite3_bind_int64 (st, 5, g_get_real_time ());
    rc = sqlite3_step (st);
    store_stmt_release (st);
    if (rc != SQLITE_DONE)
      {
        store_set_sqlite_error (error, s->rdb, rc, "reply");
        goto out;
      }
  }
  {
    g_autofree char *detail = g_strdup_printf ("outbox=%" G_GINT64_FORMAT,
                                               id);
    if (!store_audit_append (s, s->rdb, actor, "case.reply", ref, detail,
                             error)
        || !store_webhook_case_event (s, s->rdb, case_id,
                                      STORE_WEBHOOK_UPDATED, "reply", 0, NULL,
                                      error))
      goto out;
  }
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
out:
  store_keys_data_key_free (key);
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

gboolean
store_outbox_counts (store *s, gint64 *queued, gint64 *sent, gint64 *failed,
                     GError **error)
{
  sqlite3_stmt *st;
  int rc;

  *queued = *sent = *failed = 0;
  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT status, count(*) FROM outbox"
                              " GROUP BY status", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      const char *k = (const char *) sqlite3_column_text (st, 0);
      gint64 n = sqlite3_column_int64 (st, 1);
      if (g_strcmp0 (k, "queued") == 0)
        *queued = n;
      else if (g_strcmp0 (k, "sent") == 0)
        *sent = n;
      else if (g_strcmp0 (k, "failed") == 0)
        *failed = n;
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return rc == SQLITE_DONE;
}

/* ------------------------------------------------------ data subjects */

gint64
store_subject_id (store *s, const char *addr, GError **error)
{
  g_autofree char *norm = store_address_normalise (addr);
  guint8 index[32];
  sqlite3_stmt *st;
  gint64 id = -1;

  store_keys_blind (s->keys, "subject-address", norm, strlen (norm), index);
  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT id FROM subjects"
                              " WHERE address_index = ?1", error);
  if (st != NULL)
    {
      sqlite3_bind_blob (st, 1, index, sizeof index, SQLITE_STATIC);
      if (sqlite3_step (st) == SQLITE_ROW)
        id = sqlite3_column_int64 (st, 0);
      else
        g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                     "no data subject with that address");
      store_stmt_release (st);
    }
  g_mutex_unlock (&s->rlock);
  return id;
}

static gboolean
store_subject_restrict_as (store *s, gint64 id, gboolean on,
                           gboolean objection, const char *actor,
                           GError **error);

gboolean
store_subject_restrict (store *s, gint64 id, gboolean on, const char *actor,
                        GError **error)
{
  return store_subject_restrict_as (s, id, on, FALSE, actor, error);
}

gboolean
store_subject_object (store *s, gint64 id, const char *actor, GError **error)
{
  return store_subject_restrict_as (s, id, TRUE, TRUE, actor, error);
}

/* Restriction and objection have the same effect on processing; an
 * objection (art. 21) is recorded as such (objected_at, its own audit
 * action).  Lifting ends both.  */
static gboolean
store_subject_restrict_as (store *s, gint64 id, gboolean on,
                           gboolean objection, const char *actor,
                           GError **error)
{
  g_autofree char *object = g_strdup_printf ("subject:%" G_GINT64_FORMAT, id);
  g_autofree char *detail = NULL;
  g_autoptr (GArray) back = g_array_new (FALSE, FALSE, sizeof (gint64));
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  int rc;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "restrict");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb, "UPDATE subjects SET restricted_at = CASE"
                              " WHEN ?2 THEN coalesce(restricted_at, ?3)"
                              " ELSE NULL END, objected_at = CASE"
                              " WHEN ?2 AND ?4 THEN coalesce(objected_at, ?3)"
                              " WHEN ?2 THEN objected_at ELSE NULL END"
                              " WHERE id = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_int (st, 2, on);
  sqlite3_bind_int64 (st, 3, g_get_real_time ());
  sqlite3_bind_int (st, 4, objection);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE || sqlite3_changes (s->rdb) != 1)
    {
      if (rc != SQLITE_DONE)
        store_set_sqlite_error (error, s->rdb, rc, "restrict");
      else
        g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                     "no data subject %" G_GINT64_FORMAT, id);
      goto out;
    }
  /* the cases that come back when it is lifted (read before they move) */
  if (!on)
    {
      st = store_stmt (s, s->rdb, "SELECT id FROM cases WHERE subject_id = ?1"
                                  " AND restricted_from IS NOT NULL", error);
      if (st == NULL)
        goto out;
      sqlite3_bind_int64 (st, 1, id);
      while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        g_array_append_val (back, ((gint64) { sqlite3_column_int64 (st, 0) }));
      store_stmt_release (st);
      if (rc != SQLITE_DONE)
        {
          store_set_sqlite_error (error, s->rdb, rc, "restrict cases");
          goto out;
        }
    }
  /* the person's cases: to information governance, and back */
  st = store_stmt (s, s->rdb, on
      ? "UPDATE cases SET restricted_from = queue, queue = ?2"
        " WHERE subject_id = ?1 AND restricted_from IS NULL"
      : "UPDATE cases SET queue = restricted_from, restricted_from = NULL"
        " WHERE subject_id = ?1 AND restricted_from IS NOT NULL", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  if (on)
    sqlite3_bind_text (st, 2, STORE_RESTRICTED_QUEUE, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "restrict cases");
      goto out;
    }
  detail = g_strdup_printf ("cases=%d", sqlite3_changes (s->rdb));
  /* back in their queues: the queue's CRM and department hear of each
   * case now (nothing was shared while the restriction held) */
  for (guint i = 0; i < back->len; i++)
    if (!store_webhook_case_event (s, s->rdb, g_array_index (back, gint64, i),
                                   STORE_WEBHOOK_UPDATED, "routing", 0,
                                   STORE_RESTRICTED_QUEUE, error)
        || !store_webhook_notify (s, s->rdb, g_array_index (back, gint64, i),
                                  error))
      goto out;
  if (!store_audit_append (s, s->rdb, actor,
                           objection ? "subject.object"
                           : on ? "subject.restrict" : "subject.unrestrict",
                           object, detail, error))
    goto out;
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
out:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

static void
store_json_str (JsonBuilder *b, const char *name, const char *v)
{
  json_builder_set_member_name (b, name);
  if (v)
    json_builder_add_string_value (b, v);
  else
    json_builder_add_null_value (b);
}

static void
store_json_time (JsonBuilder *b, const char *name, gint64 us)
{
  json_builder_set_member_name (b, name);
  if (us > 0)
    {
      g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (
          us / G_USEC_PER_SEC);
      g_autofree char *iso = g_date_time_format_iso8601 (t);
      json_builder_add_string_value (b, iso);
    }
  else
    json_builder_add_null_value (b);
}

/* Whether @addr (any case) is the person's own @own (normalised) or at
 * one of the organisation's @domains: neither is another person.  */
static gboolean
store_export_address_kept (const char *addr, const char *own,
                           const char *const *domains)
{
  g_autofree char *norm = store_address_normalise (addr);
  const char *at = strrchr (norm, '@');

  if (own != NULL && strcmp (norm, own) == 0)
    return TRUE;
  for (guint i = 0; at != NULL && domains != NULL && domains[i]; i++)
    if (g_ascii_strcasecmp (at + 1, domains[i]) == 0)
      return TRUE;
  return FALSE;
}

/* The address headers of the person's own message, as given in their
 * export: every other person in them (a Cc'd neighbour: name and
 * address) becomes "[another person]"; the person and the organisation
 * stay.  @headers is "Name: value\n" lines.  */
static char *
store_export_headers (const char *headers, const char *own,
                      const char *const *domains, guint *redacted)
{
  static const char *const names[] = {
    "from", "to", "cc", "bcc", "reply-to", "sender", "resent-from",
    "resent-to", "resent-cc", "resent-bcc", "resent-sender",
    "delivered-to", "x-original-to", "return-path", "envelope-to",
    "disposition-notification-to", "return-receipt-to", "mail-followup-to",
    "mail-reply-to", "x-forwarded-to", "x-forwarded-for",
  };
  g_auto (GStrv) lines = NULL;
  GString *out;

  if (headers == NULL)
    return NULL;
  parser_init ();               /* GMime's address parser */
  lines = g_strsplit (headers, "\n", -1);
  out = g_string_new (NULL);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *colon = strchr (lines[i], ':');
      gboolean addr = FALSE;

      if (lines[i][0] == '\0' && lines[i + 1] == NULL)
        break;
      for (guint k = 0; colon != NULL && k < G_N_ELEMENTS (names); k++)
        addr = addr || ((gsize) (colon - lines[i]) == strlen (names[k])
                        && g_ascii_strncasecmp (lines[i], names[k],
                                                strlen (names[k])) == 0);
      if (addr)
        {
          InternetAddressList *list = internet_address_list_parse (
              NULL, colon + 1);
          GString *v = g_string_new (NULL);
          int n = list ? internet_address_list_length (list) : 0;

          for (int j = 0; j < n; j++)
            {
              InternetAddress *ia = internet_address_list_get_address (list,
                                                                       j);
              gboolean keep = TRUE;

              if (INTERNET_ADDRESS_IS_MAILBOX (ia))
                keep = store_export_address_kept (
                    internet_address_mailbox_get_addr (
                        INTERNET_ADDRESS_MAILBOX (ia)), own, domains);
              else
                {
                  InternetAddressList *m = internet_address_group_get_members (
                      INTERNET_ADDRESS_GROUP (ia));
                  for (int g = 0; m && g < internet_address_list_length (m);
                       g++)
                    {
                      InternetAddress *ma = internet_address_list_get_address (
                          m, g);
                      keep = keep && INTERNET_ADDRESS_IS_MAILBOX (ma)
                             && store_export_address_kept (
                                 internet_address_mailbox_get_addr (
                                     INTERNET_ADDRESS_MAILBOX (ma)),
                                 own, domains);
                    }
                }
              if (v->len > 0)
                g_string_append (v, ", ");
              if (keep)
                {
                  g_autofree char *t = internet_address_to_string (ia, NULL,
                                                                   FALSE);
                  g_string_append (v, t);
                }
              else
                {
                  g_string_append (v, "[another person]");
                  (*redacted)++;
                }
            }
          /* what is not a list of addresses is nobody's to see, but an
           * empty value or the null sender "<>" names no one */
          if (n == 0)
            {
              g_autofree char *raw = g_strstrip (g_strdup (colon + 1));
              if (*raw != '\0' && strcmp (raw, "<>") != 0)
                {
                  g_string_append (v, "[another person]");
                  (*redacted)++;
                }
              else
                g_string_append (v, raw);
            }
          g_string_append_printf (out, "%.*s: %s\n",
                                  (int) (colon - lines[i]), lines[i], v->str);
          g_string_free (v, TRUE);
          if (list)
            g_object_unref (list);
        }
      else
        g_string_append_printf (out, "%s\n", lines[i]);
    }
  return g_string_free (out, FALSE);
}

char *
store_subject_export (store *s, gint64 id, const char *actor, GError **error)
{
  return store_subject_export_full (s, id, actor, NULL, error);
}

char *
store_subject_export_full (store *s, gint64 id, const char *actor,
                           const char *const *own_domains, GError **error)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GPtrArray) refs = g_ptr_array_new_with_free_func (g_free);
  guint8 *key = NULL;
  sqlite3_stmt *st, *ms, *as, *ns;
  gint64 withheld = 0, n_messages = 0;
  g_autofree char *own = NULL;
  guint redacted = 0;
  char *out = NULL;
  int rc;

  g_mutex_lock (&s->rlock);
  /* one snapshot for the whole document */
  sqlite3_exec (s->rdb, "BEGIN", NULL, NULL, NULL);
  st = store_prepare (s->rdb, "SELECT data_key, address, name, phone, postal,"
                              " created_at, restricted_at, objected_at"
                              " FROM subjects WHERE id = ?1", error);
  if (st == NULL)
    goto fail;
  sqlite3_bind_int64 (st, 1, id);
  if (sqlite3_step (st) != SQLITE_ROW)
    {
      sqlite3_finalize (st);
      if (!sqlite3_get_autocommit (s->rdb))
        sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
      g_mutex_unlock (&s->rlock);
      /* an erased person: the erasure record is all there is */
      out = store_subject_export_erased (s, id, error);
      if (out != NULL)
        {
          g_autofree char *object = g_strdup_printf ("subject:%"
                                                     G_GINT64_FORMAT, id);
          if (!store_audit_record (s, actor, "subject.export", object,
                                   "erased=1", "ok", error))
            g_clear_pointer (&out, g_free);
        }
      return out;
    }
  key = store_subject_key_unwrap (s, s->rdb, sqlite3_column_blob (st, 0),
                           sqlite3_column_bytes (st, 0), id, error);
  if (key == NULL)
    {
      sqlite3_finalize (st);
      goto fail;
    }
  json_builder_begin_object (b);
  store_json_str (b, "schema", "intake-subject-export/1");
  {
    g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
    g_autofree char *iso = g_date_time_format_iso8601 (now);
    store_json_str (b, "exported_at", iso);
  }
  json_builder_set_member_name (b, "subject");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "id");
  json_builder_add_int_value (b, id);
  {
    static const char *const cols[] = { "address", "name", "phone",
                                        "postal" };
    for (guint i = 0; i < G_N_ELEMENTS (cols); i++)
      {
        g_autofree char *v = store_column_text (st, 1 + i, key, "subjects",
                                                cols[i], id, id);
        store_json_str (b, cols[i], v);
        if (i == 0)
          own = store_address_normalise (v);
      }
  }
  store_json_time (b, "first_contact", sqlite3_column_int64 (st, 5));
  store_json_time (b, "processing_restricted_since",
                   sqlite3_column_int64 (st, 6));
  store_json_time (b, "objection_since", sqlite3_column_int64 (st, 7));
  json_builder_end_object (b);
  sqlite3_finalize (st);

  /* every case the person started or takes part in */
  st = store_prepare (s->rdb,
      "SELECT c.id, c.ref, c.kind, c.queue, c.status, c.priority,"
      " c.created_at, c.updated_at, c.due_at, c.closed_at, c.reasons,"
      " c.rules_hash, c.subject_id = ?1, c.delete_after, c.hold_at"
      " FROM cases c WHERE c.subject_id = ?1 OR c.id IN"
      " (SELECT case_id FROM case_participants WHERE subject_id = ?1)"
      " OR c.id IN (SELECT case_id FROM messages WHERE subject_id = ?1)"
      " ORDER BY c.id", error);
  ms = store_prepare (s->rdb,
      "SELECT id, subject_id, direction, source, received_at, header_from,"
      " header_subject, header_message_id, text, quoted, headers"
      " FROM messages WHERE case_id = ?1 ORDER BY id", error);
  as = store_prepare (s->rdb,
      "SELECT id, position, size, flags, meta, content FROM attachments"
      " WHERE message_id = ?1 ORDER BY position", error);
  ns = store_prepare (s->rdb,
      "SELECT id, author, text, created_at FROM case_notes"
      " WHERE case_id = ?1 AND subject_id = ?2 ORDER BY id", error);
  if (st == NULL || ms == NULL || as == NULL || ns == NULL)
    {
      sqlite3_finalize (st);
      sqlite3_finalize (ms);
      sqlite3_finalize (as);
      sqlite3_finalize (ns);
      goto fail;
    }
  sqlite3_bind_int64 (st, 1, id);
  json_builder_set_member_name (b, "cases");
  json_builder_begin_array (b);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      gint64 case_id = sqlite3_column_int64 (st, 0);
      const char *reasons = (const char *) sqlite3_column_text (st, 10);

      g_ptr_array_add (refs, store_column_dup (st, 1));
      json_builder_begin_object (b);
      store_json_str (b, "ref", (const char *) sqlite3_column_text (st, 1));
      store_json_str (b, "kind", (const char *) sqlite3_column_text (st, 2));
      store_json_str (b, "queue", (const char *) sqlite3_column_text (st, 3));
      store_json_str (b, "status", (const char *) sqlite3_column_text (st, 4));
      store_json_str (b, "priority",
                      (const char *) sqlite3_column_text (st, 5));
      store_json_time (b, "opened", sqlite3_column_int64 (st, 6));
      store_json_time (b, "updated", sqlite3_column_int64 (st, 7));
      store_json_time (b, "due", sqlite3_column_int64 (st, 8));
      store_json_time (b, "closed", sqlite3_column_int64 (st, 9));
      /* how long it is kept (art. 15(1)(d)): the retention schedule's
       * date, and whether a legal hold keeps it beyond */
      store_json_time (b, "delete_after", sqlite3_column_int64 (st, 13));
      json_builder_set_member_name (b, "legal_hold");
      json_builder_add_boolean_value (b, sqlite3_column_type (st, 14)
                                             != SQLITE_NULL);
      json_builder_set_member_name (b, "role");
      json_builder_add_string_value (b, sqlite3_column_int (st, 12)
                                            ? "requester" : "participant");
      /* the logic of the automated decision (art. 15(1)(h), 22) */
      json_builder_set_member_name (b, "routing");
      if (reasons)
        {
          g_autoptr (JsonParser) p = json_parser_new ();
          if (json_parser_load_from_data (p, reasons, -1, NULL))
            json_builder_add_value (b, json_node_copy (json_parser_get_root (p)));
          else
            json_builder_add_null_value (b);
        }
      else
        json_builder_add_null_value (b);
      json_builder_set_member_name (b, "messages");
      json_builder_begin_array (b);
      sqlite3_bind_int64 (ms, 1, case_id);
      while (sqlite3_step (ms) == SQLITE_ROW)
        {
          gint64 mid = sqlite3_column_int64 (ms, 0);
          if (sqlite3_column_int64 (ms, 1) != id)
            {
              /* another person's words: not theirs to receive */
              withheld++;
              continue;
            }
          n_messages++;
          json_builder_begin_object (b);
          store_json_str (b, "direction",
                          (const char *) sqlite3_column_text (ms, 2));
          store_json_str (b, "source",
                          (const char *) sqlite3_column_text (ms, 3));
          store_json_time (b, "received", sqlite3_column_int64 (ms, 4));
          {
            static const char *const cols[] = { "header_from",
                                                "header_subject",
                                                "header_message_id", "text",
                                                "quoted", "headers" };
            static const char *const names[] = { "from", "subject",
                                                 "message_id", "text",
                                                 "quoted", "headers" };
            for (guint i = 0; i < G_N_ELEMENTS (cols); i++)
              {
                g_autofree char *v = store_column_text (ms, 5 + i, key,
                                                        "messages", cols[i],
                                                        mid, id);
                if (strcmp (cols[i], "headers") == 0)
                  {
                    /* a Cc'd neighbour is not theirs to receive */
                    char *r = store_export_headers (v, own, own_domains,
                                                    &redacted);
                    g_free (v);
                    v = r;
                  }
                store_json_str (b, names[i], v);
              }
          }
          json_builder_set_member_name (b, "attachments");
          json_builder_begin_array (b);
          sqlite3_bind_int64 (as, 1, mid);
          while (sqlite3_step (as) == SQLITE_ROW)
            {
              gint64 aid = sqlite3_column_int64 (as, 0);
              g_autoptr (GBytes) meta = store_unseal (
                  key, "attachments", "meta", aid, id,
                  sqlite3_column_blob (as, 4), sqlite3_column_bytes (as, 4),
                  NULL);
              g_autoptr (GBytes) content = store_unseal (
                  key, "attachments", "content", aid, id,
                  sqlite3_column_blob (as, 5), sqlite3_column_bytes (as, 5),
                  NULL);
              json_builder_begin_object (b);
              if (meta)
                {
                  g_autoptr (GVariant) v = g_variant_ref_sink (
                      g_variant_new_from_bytes (G_VARIANT_TYPE ("(ssss)"),
                                                meta, FALSE));
                  if (g_variant_is_normal_form (v))
                    {
                      const char *n, *dt, *tt, *sha;
                      g_variant_get (v, "(&s&s&s&s)", &n, &dt, &tt, &sha);
                      store_json_str (b, "name", n);
                      store_json_str (b, "declared_type", dt);
                      store_json_str (b, "detected_type", tt);
                      store_json_str (b, "sha256", sha);
                    }
                }
              json_builder_set_member_name (b, "size");
              json_builder_add_int_value (b, sqlite3_column_int64 (as, 2));
              if (content)
                {
                  g_autofree char *b64 = g_base64_encode (
                      g_bytes_get_data (content, NULL),
                      g_bytes_get_size (content));
                  store_json_str (b, "content_base64", b64);
                }
              json_builder_end_object (b);
            }
          sqlite3_reset (as);
          json_builder_end_array (b);
          json_builder_end_object (b);
        }
      sqlite3_reset (ms);
      json_builder_end_array (b);
      /* the notes kept about the case, sealed under the person's key:
       * theirs to see when they started it */
      json_builder_set_member_name (b, "notes");
      json_builder_begin_array (b);
      if (sqlite3_column_int (st, 12))
        {
          sqlite3_bind_int64 (ns, 1, case_id);
          sqlite3_bind_int64 (ns, 2, id);
          while (sqlite3_step (ns) == SQLITE_ROW)
            {
              g_autofree char *v = store_column_text (
                  ns, 2, key, "case_notes", "text",
                  sqlite3_column_int64 (ns, 0), id);
              json_builder_begin_object (b);
              store_json_str (b, "author",
                              (const char *) sqlite3_column_text (ns, 1));
              store_json_time (b, "written", sqlite3_column_int64 (ns, 3));
              store_json_str (b, "text", v);
              json_builder_end_object (b);
            }
          sqlite3_reset (ns);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
  sqlite3_finalize (st);
  sqlite3_finalize (ns);
  sqlite3_finalize (ms);
  sqlite3_finalize (as);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "messages_of_others_withheld");
  json_builder_add_int_value (b, withheld);
  json_builder_set_member_name (b, "other_people_redacted");
  json_builder_add_int_value (b, redacted);

  /* the audit events about the person and their cases */
  st = store_prepare (s->rdb, "SELECT at, actor, action, object, detail,"
                              " outcome FROM audit ORDER BY id", error);
  if (st == NULL)
    goto fail;
  json_builder_set_member_name (b, "audit");
  json_builder_begin_array (b);
  {
    g_autofree char *me = g_strdup_printf ("subject:%" G_GINT64_FORMAT, id);
    while (sqlite3_step (st) == SQLITE_ROW)
      {
        const char *object = (const char *) sqlite3_column_text (st, 3);
        gboolean mine = g_strcmp0 (object, me) == 0;
        for (guint i = 0; !mine && i < refs->len; i++)
          mine = g_strcmp0 (object, refs->pdata[i]) == 0;
        if (!mine)
          continue;
        json_builder_begin_object (b);
        store_json_time (b, "at", sqlite3_column_int64 (st, 0));
        store_json_str (b, "actor", (const char *) sqlite3_column_text (st, 1));
        store_json_str (b, "action",
                        (const char *) sqlite3_column_text (st, 2));
        store_json_str (b, "object", object);
        store_json_str (b, "detail",
                        (const char *) sqlite3_column_text (st, 4));
        store_json_str (b, "outcome",
                        (const char *) sqlite3_column_text (st, 5));
        json_builder_end_object (b);
      }
  }
  sqlite3_finalize (st);
  json_builder_end_array (b);
  json_builder_end_object (b);
  sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  store_keys_data_key_free (key);

  root = json_builder_get_root (b);
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  out = json_generator_to_data (gen, NULL);
  {
    g_autofree char *object = g_strdup_printf ("subject:%" G_GINT64_FORMAT,
                                               id);
    g_autofree char *detail = g_strdup_printf (
        "cases=%u messages=%" G_GINT64_FORMAT " withheld=%" G_GINT64_FORMAT,
        refs->len, n_messages, withheld);
    if (!store_audit_record (s, actor, "subject.export", object, detail, "ok",
                             error))
      g_clear_pointer (&out, g_free);
  }
  return out;

fail:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  store_keys_data_key_free (key);
  return NULL;
}
