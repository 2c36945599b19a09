/*
 * store_rights.c - erasure (crypto-shredding) and what an access request
 * shows afterwards.
 *
 * An erasure runs in three committed steps, each resumable:
 *   1. the subject is marked (subjects.erasing_at) and a tombstone written
 *      (erasures: id, when, who, a reason category -- no personal data);
 *   2. the subject's vault secret is deleted, committed and the vault's WAL
 *      truncated (store_vault_forget()): from here on no copy of the
 *      subject's rows opens, backups included;
 *   3. the rows go with secure_delete on -- attachments, arrivals, outbox,
 *      notes, messages, participation, blind index, the subject row -- the
 *      cases keep only kind, queue, status, dates and counts; the audit
 *      records the erasure; then the WAL is checkpointed and truncated.
 * A crash after step 1 leaves a marked subject that store_erase_resume()
 * (intaked at start, `intakectl subject erase` again) finishes.
 *
 * Owns: nothing beyond one call.
 * Refuses: free-text reasons (they could carry personal data): a reason is
 * one of store_erase_reasons.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"
#include "store/store_webhook.h"

#include <string.h>

#include <json-glib/json-glib.h>

/* Why a person's data was erased: categories, never free text.  */
static const char *const store_erase_reasons[] = {
  "request",            /* UK GDPR art. 17 request of the person */
  "objection",          /* art. 21 objection upheld */
  "consent-withdrawn",  /* art. 17(1)(b) */
  "unlawful",           /* art. 17(1)(d): should not have been held */
  "legal-obligation",   /* art. 17(1)(e) */
  "retention",          /* the retention schedule */
  "anonymised",         /* store_subject_anonymise(): the link goes */
  "shredded",           /* found with its vault secret gone: rows of an
                         * erased person in a database restored from a
                         * backup taken before the erasure */
  NULL
};

gboolean
store_erase_reason_valid (const char *reason)
{
  for (guint i = 0; reason != NULL && store_erase_reasons[i]; i++)
    if (strcmp (reason, store_erase_reasons[i]) == 0)
      return TRUE;
  return FALSE;
}

const char *const *
store_erase_reason_list (void)
{
  return store_erase_reasons;
}

static gboolean
store_rights_exec (sqlite3 *db, const char *sql, gint64 id, gint64 *changes,
                   GError **error)
{
  sqlite3_stmt *st = store_prepare (db, sql, error);
  int rc;

  if (st == NULL)
    return FALSE;
  if (sqlite3_bind_parameter_count (st) >= 1)
    sqlite3_bind_int64 (st, 1, id);
  rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "erase");
      return FALSE;
    }
  if (changes != NULL)
    *changes = sqlite3_changes (db);
  return TRUE;
}

static gint64
store_rights_count (sqlite3 *db, const char *sql, gint64 id)
{
  sqlite3_stmt *st = NULL;
  gint64 n = -1;

  if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) == SQLITE_OK)
    {
      sqlite3_bind_int64 (st, 1, id);
      if (sqlite3_step (st) == SQLITE_ROW)
        n = sqlite3_column_int64 (st, 0);
    }
  sqlite3_finalize (st);
  return n;
}

/* The erasure webhook (issue 8, docs/webhooks.md): in the erasing
 * transaction, before the person's rows go, every case they started gets a
 * case.erased event (the reference only) for each CRM that may hold it;
 * its events still waiting are dropped.  */
static gboolean
store_rights_erasure_hook (store *s, sqlite3 *db, gint64 subject_id,
                           GError **error)
{
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  sqlite3_stmt *st = store_prepare (db, "SELECT id FROM cases WHERE"
                                        " subject_id = ?1", error);

  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, subject_id);
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (st, 0);
      g_array_append_val (ids, id);
    }
  sqlite3_finalize (st);
  for (guint i = 0; i < ids->len; i++)
    if (!store_webhook_enqueue_erased (s, db, g_array_index (ids, gint64, i),
                                       error))
      return FALSE;
  return TRUE;
}

/* Step 1: mark the subject and write the tombstone.  */
static gboolean
store_erase_mark (store *s, gint64 id, const char *reason, const char *actor,
                  GError **error)
{
  sqlite3 *db = s->rdb;
  sqlite3_stmt *st = NULL;
  gboolean ok = FALSE;
  int rc;

  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "erase");
      return FALSE;
    }
  st = store_prepare (db, "UPDATE subjects SET erasing_at ="
                          " coalesce(erasing_at, ?2) WHERE id = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_int64 (st, 2, g_get_real_time ());
  rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "erase mark");
      goto out;
    }
  if (sqlite3_changes (db) != 1)
    {
      gint64 done = store_rights_count (db, "SELECT count(*) FROM erasures"
                                            " WHERE subject_id = ?1 AND"
                                            " erased_at IS NOT NULL", id);
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   done > 0 ? "data subject %" G_GINT64_FORMAT " was erased"
                              " already"
                            : "no data subject %" G_GINT64_FORMAT, id);
      goto out;
    }
  st = store_prepare (db, "INSERT OR IGNORE INTO erasures (subject_id,"
                          " requested_at, actor, reason) VALUES (?1, ?2, ?3,"
                          " ?4)", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_int64 (st, 2, g_get_real_time ());
  sqlite3_bind_text (st, 3, actor, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 4, reason, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "erase tombstone");
      goto out;
    }
  ok = sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "erase commit");
out:
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  return ok;
}

/* Step 3: the rows, inside the caller's transaction.  */
static gboolean
store_erase_rows_in (store *s, gint64 id, gboolean had_secret,
                     store_erasure_report *r, GError **error)
{
  sqlite3 *db = s->rdb;
  g_autofree char *object = g_strdup_printf ("subject:%" G_GINT64_FORMAT, id);
  g_autofree char *detail = NULL;
  g_autofree char *reason = NULL;
  sqlite3_stmt *st;
  gint64 n;
  gboolean ok = FALSE;

  st = store_prepare (db, "SELECT reason FROM erasures WHERE subject_id = ?1",
                      error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  if (sqlite3_step (st) == SQLITE_ROW)
    reason = g_strdup ((const char *) sqlite3_column_text (st, 0));
  sqlite3_finalize (st);
  if (reason == NULL)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   "no erasure of subject %" G_GINT64_FORMAT " under way", id);
      goto out;
    }
  r->cases = store_rights_count (db, "SELECT count(DISTINCT case_id) FROM"
                                     " (SELECT case_id FROM messages WHERE"
                                     " subject_id = ?1 UNION SELECT case_id"
                                     " FROM case_participants WHERE"
                                     " subject_id = ?1 UNION SELECT id FROM"
                                     " cases WHERE subject_id = ?1)", id);
  if (!store_rights_erasure_hook (s, db, id, error))
    goto out;
  /* what the cases keep for statistics: how many messages there were */
  if (!store_rights_exec (db, "UPDATE cases SET erased_messages ="
                              " erased_messages + (SELECT count(*) FROM"
                              " messages m WHERE m.case_id = cases.id AND"
                              " m.subject_id = ?1) WHERE id IN (SELECT"
                              " case_id FROM messages WHERE subject_id = ?1)",
                          id, NULL, error)
      || !store_rights_exec (db, "DELETE FROM attachments WHERE subject_id ="
                                 " ?1", id, &r->attachments, error)
      || !store_rights_exec (db, "DELETE FROM arrivals WHERE message_id IN"
                                 " (SELECT id FROM messages WHERE subject_id"
                                 " = ?1)", id, NULL, error)
      || !store_rights_exec (db, "DELETE FROM outbox WHERE subject_id = ?1"
                                 " OR message_id IN (SELECT id FROM messages"
                                 " WHERE subject_id = ?1)", id, NULL, error)
      /* notes and replies of the person's cases are sealed under their
       * key: unreadable now, so gone too */
      || !store_rights_exec (db, "DELETE FROM case_notes WHERE subject_id ="
                                 " ?1", id, NULL, error)
      || !store_rights_exec (db, "DELETE FROM messages WHERE subject_id = ?1",
                             id, &r->messages, error)
      || !store_rights_exec (db, "DELETE FROM case_participants WHERE"
                                 " subject_id = ?1", id, NULL, error)
      || !store_rights_exec (db, "UPDATE cases SET subject_id = NULL,"
                                 " claimed_by = NULL WHERE subject_id = ?1",
                             id, NULL, error)
      || !store_rights_exec (db, "DELETE FROM subjects WHERE id = ?1", id, &n,
                             error))
    goto out;
  st = store_prepare (db, "UPDATE erasures SET erased_at = ?2, cases = ?3,"
                          " messages = ?4 WHERE subject_id = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_int64 (st, 2, g_get_real_time ());
  sqlite3_bind_int64 (st, 3, r->cases);
  sqlite3_bind_int64 (st, 4, r->messages);
  if (sqlite3_step (st) != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "erase");
      sqlite3_finalize (st);
      goto out;
    }
  sqlite3_finalize (st);
  detail = g_strdup_printf ("reason=%s cases=%" G_GINT64_FORMAT " messages=%"
                            G_GINT64_FORMAT " attachments=%" G_GINT64_FORMAT
                            " vault_secret=%s", reason, r->cases, r->messages,
                            r->attachments,
                            had_secret ? "deleted" : "none");
  {
    /* the actor who asked for it (step 1), not whoever finished it */
    g_autofree char *actor = NULL;
    st = store_prepare (db, "SELECT actor FROM erasures WHERE subject_id ="
                            " ?1", error);
    if (st == NULL)
      goto out;
    sqlite3_bind_int64 (st, 1, id);
    if (sqlite3_step (st) == SQLITE_ROW)
      actor = g_strdup ((const char *) sqlite3_column_text (st, 0));
    sqlite3_finalize (st);
    if (!store_audit_append (s, db, actor ? actor : "?", "subject.erase",
                             object, detail, error))
      goto out;
  }
  ok = TRUE;
out:
  return ok;
}

static gboolean
store_erase_rows (store *s, gint64 id, gboolean had_secret,
                  store_erasure_report *r, GError **error)
{
  sqlite3 *db = s->rdb;
  gboolean ok;

  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "erase");
      return FALSE;
    }
  ok = store_erase_rows_in (s, id, had_secret, r, error)
       && sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok && error != NULL && *error == NULL)
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "erase commit");
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  return ok;
}

/* Many subjects at once (the retention schedule): one transaction marks
 * them, one vault transaction forgets their secrets, one transaction
 * deletes their rows; each subject is audited on its own.  Called with
 * rlock held.  Returns how many, or -1.  */
gint64
store_erase_many_locked (store *s, GArray *ids, const char *reason,
                         const char *actor, GError **error)
{
  sqlite3 *db = s->rdb;
  gint64 done = 0;
  gboolean ok = FALSE;

  if (ids->len == 0)
    return 0;
  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "erase");
      return -1;
    }
  for (guint i = 0; i < ids->len; i++)
    {
      gint64 id = g_array_index (ids, gint64, i);
      g_autofree char *sql = g_strdup_printf (
          "INSERT OR IGNORE INTO erasures (subject_id, requested_at, actor,"
          " reason) VALUES (?1, %" G_GINT64_FORMAT ", 'retention', '%s')",
          g_get_real_time (), reason);
      if (!store_rights_exec (db, "UPDATE subjects SET erasing_at ="
                                  " coalesce(erasing_at, strftime('%s')"
                                  " * 1000000) WHERE id = ?1", id, NULL,
                              error)
          || !store_rights_exec (db, sql, id, NULL, error))
        goto out;
    }
  if (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "erase");
      goto out;
    }
  if (!store_vault_forget_many (s, ids, error)
      || !store_secure_delete (s, db, TRUE, error))
    goto out;
  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "erase");
      goto out;
    }
  for (guint i = 0; i < ids->len; i++)
    {
      store_erasure_report r = { 0 };
      if (!store_erase_rows_in (s, g_array_index (ids, gint64, i), TRUE, &r,
                                error))
        goto out;
      done++;
    }
  ok = sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "erase");
out:
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  store_secure_delete (s, db, FALSE, NULL);
  (void) actor;
  return ok ? done : -1;
}

/* Steps 2 and 3 for a marked subject, then the WAL.  Called with rlock
 * held.  */
static gboolean
store_erase_finish (store *s, gint64 id, store_erasure_report *r,
                    GError **error)
{
  gboolean had = FALSE, ok;
  int log = -1, done = -1, rc;

  if (!store_vault_forget (s, id, &had, error))
    return FALSE;
  r->vault_secret = had;
  /* Deleted cells and freed pages are overwritten with zeros, not only
   * unlinked.  */
  if (!store_secure_delete (s, s->rdb, TRUE, error))
    return FALSE;
  ok = store_erase_rows (s, id, had, r, error);
  store_secure_delete (s, s->rdb, FALSE, NULL);
  if (!ok)
    return FALSE;
  /* Every page the erasure rewrote goes into the database file and the
   * WAL, which still holds the old versions, is cut to nothing.  A reader
   * in the middle of a long read can hold it up: then it is tried again a
   * few times, and reported.  */
  for (guint i = 0; i < 10; i++)
    {
      rc = sqlite3_wal_checkpoint_v2 (s->rdb, NULL,
                                      SQLITE_CHECKPOINT_TRUNCATE, &log,
                                      &done);
      if (rc == SQLITE_OK && log == 0)
        break;
      g_usleep (100 * 1000);
    }
  r->wal_truncated = rc == SQLITE_OK && log == 0;
  return TRUE;
}

gboolean
store_subject_erase (store *s, gint64 id, const char *reason,
                     const char *actor, store_erasure_report *r,
                     GError **error)
{
  store_erasure_report local = { 0 };
  gboolean ok;

  if (r == NULL)
    r = &local;
  memset (r, 0, sizeof *r);
  if (!store_erase_reason_valid (reason))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "erasure reason '%s' is not a category", reason
                   ? reason : "");
      return FALSE;
    }
  g_mutex_lock (&s->rlock);
  ok = store_erase_mark (s, id, reason, actor, error)
       && store_erase_finish (s, id, r, error);
  g_mutex_unlock (&s->rlock);
  if (ok)
    g_message ("event=subject.erased subject=%" G_GINT64_FORMAT
               " reason=%s messages=%" G_GINT64_FORMAT, id, reason,
               r->messages);
  return ok;
}

gint64
store_erase_resume (store *s, GError **error)
{
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  sqlite3_stmt *st;
  gint64 n = 0;

  g_autoptr (GArray) shredded = g_array_new (FALSE, FALSE, sizeof (gint64));

  g_mutex_lock (&s->rlock);
  /* Rows whose vault secret is gone were erased after the backup this
   * database was restored from: they go the same way (the vault is this
   * database's: store_vault_open() checked its binding).  */
  st = store_prepare (s->rdb, "ATTACH DATABASE ?1 AS vault", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      return -1;
    }
  sqlite3_bind_text (st, 1, s->vault_path, -1, SQLITE_STATIC);
  if (sqlite3_step (st) == SQLITE_DONE)
    {
      sqlite3_stmt *q = store_prepare (s->rdb,
          "SELECT id FROM main.subjects s WHERE vault = 1 AND erasing_at IS"
          " NULL AND NOT EXISTS (SELECT 1 FROM vault.secrets v WHERE"
          " v.subject_id = s.id)", NULL);
      while (q != NULL && sqlite3_step (q) == SQLITE_ROW)
        {
          gint64 id = sqlite3_column_int64 (q, 0);
          g_array_append_val (shredded, id);
        }
      sqlite3_finalize (q);
      sqlite3_exec (s->rdb, "DETACH DATABASE vault", NULL, NULL, NULL);
    }
  sqlite3_finalize (st);
  for (guint i = 0; i < shredded->len; i++)
    if (!store_erase_mark (s, g_array_index (shredded, gint64, i), "shredded",
                           "store", error))
      {
        g_mutex_unlock (&s->rlock);
        return -1;
      }
  st = store_prepare (s->rdb, "SELECT id FROM subjects WHERE erasing_at IS"
                              " NOT NULL ORDER BY id", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      return -1;
    }
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (st, 0);
      g_array_append_val (ids, id);
    }
  sqlite3_finalize (st);
  for (guint i = 0; i < ids->len; i++)
    {
      store_erasure_report r = { 0 };
      if (!store_erase_finish (s, g_array_index (ids, gint64, i), &r, error))
        {
          g_mutex_unlock (&s->rlock);
          return -1;
        }
      n++;
    }
  g_mutex_unlock (&s->rlock);
  return n;
}

char *
store_subject_export_erased (store *s, gint64 id, GError **error)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *me = g_strdup_printf ("subject:%" G_GINT64_FORMAT, id);
  sqlite3_stmt *st;
  gboolean found = FALSE;

  g_mutex_lock (&s->rlock);
  sqlite3_exec (s->rdb, "BEGIN", NULL, NULL, NULL);
  st = store_prepare (s->rdb, "SELECT erased_at, reason FROM erasures"
                              " WHERE subject_id = ?1 AND erased_at IS NOT"
                              " NULL", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "schema");
  json_builder_add_string_value (b, "intake-subject-export/1");
  if (sqlite3_step (st) == SQLITE_ROW)
    {
      g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (
          sqlite3_column_int64 (st, 0) / G_USEC_PER_SEC);
      g_autofree char *iso = g_date_time_format_iso8601 (t);
      found = TRUE;
      json_builder_set_member_name (b, "subject");
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "id");
      json_builder_add_int_value (b, id);
      json_builder_set_member_name (b, "erased");
      json_builder_add_string_value (b, iso);
      json_builder_set_member_name (b, "erasure_reason");
      json_builder_add_string_value (b,
                                     (const char *) sqlite3_column_text (st,
                                                                         1));
      json_builder_end_object (b);
    }
  sqlite3_finalize (st);
  if (!found)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   "no data subject %" G_GINT64_FORMAT, id);
      goto out;
    }
  json_builder_set_member_name (b, "cases");
  json_builder_begin_array (b);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "audit");
  json_builder_begin_array (b);
  /* the erasure record only: what happened before it is gone with the
   * person */
  st = store_prepare (s->rdb, "SELECT at, actor, action, detail, outcome"
                              " FROM audit WHERE object = ?1 AND action ="
                              " 'subject.erase' ORDER BY id", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_text (st, 1, me, -1, SQLITE_STATIC);
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (
          sqlite3_column_int64 (st, 0) / G_USEC_PER_SEC);
      g_autofree char *iso = g_date_time_format_iso8601 (t);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "at");
      json_builder_add_string_value (b, iso);
      json_builder_set_member_name (b, "actor");
      json_builder_add_string_value (b,
                                     (const char *) sqlite3_column_text (st,
                                                                         1));
      json_builder_set_member_name (b, "action");
      json_builder_add_string_value (b,
                                     (const char *) sqlite3_column_text (st,
                                                                         2));
      json_builder_set_member_name (b, "object");
      json_builder_add_string_value (b, me);
      json_builder_set_member_name (b, "detail");
      json_builder_add_string_value (b,
                                     (const char *) sqlite3_column_text (st,
                                                                         3));
      json_builder_set_member_name (b, "outcome");
      json_builder_add_string_value (b,
                                     (const char *) sqlite3_column_text (st,
                                                                         4));
      json_builder_end_object (b);
    }
  sqlite3_finalize (st);
  json_builder_end_array (b);
  json_builder_end_object (b);
  sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  root = json_builder_get_root (b);
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);

out:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return NULL;
}

/* ------------------------------------------------------ rectification */

gboolean
store_subject_rectify (store *s, gint64 id, const store_rectification *r,
                       const char *actor, GError **error)
{
  static const char *const cols[] = { "name", "phone", "postal" };
  const char *vals[] = { r->name, r->phone, r->postal };
  g_autofree char *object = g_strdup_printf ("subject:%" G_GINT64_FORMAT, id);
  g_autoptr (GString) fields = g_string_new (NULL);
  guint8 *key = NULL;
  sqlite3 *db = s->rdb;
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  gint64 now = g_get_real_time ();
  int rc;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "rectify");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_prepare (db, "SELECT data_key FROM subjects WHERE id = ?1 AND"
                          " erasing_at IS NULL", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  if (sqlite3_step (st) == SQLITE_ROW)
    key = store_subject_key_unwrap (s, db, sqlite3_column_blob (st, 0),
                                    sqlite3_column_bytes (st, 0), id, error);
  else
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                 "no data subject %" G_GINT64_FORMAT, id);
  sqlite3_finalize (st);
  if (key == NULL)
    goto out;
  for (guint i = 0; i < G_N_ELEMENTS (cols); i++)
    {
      g_autofree char *sql = NULL;
      g_autoptr (GBytes) sealed = NULL;

      if (vals[i] == NULL)
        continue;
      /* a fresh nonce: nothing of the old ciphertext is reused; "" clears
       * the field */
      if (*vals[i] != '\0')
        sealed = store_seal (key, "subjects", cols[i], id, id, vals[i],
                             strlen (vals[i]));
      sql = g_strdup_printf ("UPDATE subjects SET %s = ?2, updated_at = ?3"
                             " WHERE id = ?1", cols[i]);
      st = store_prepare (db, sql, error);
      if (st == NULL)
        goto out;
      sqlite3_bind_int64 (st, 1, id);
      if (sealed != NULL)
        sqlite3_bind_blob64 (st, 2, g_bytes_get_data (sealed, NULL),
                             g_bytes_get_size (sealed), SQLITE_TRANSIENT);
      else
        sqlite3_bind_null (st, 2);
      sqlite3_bind_int64 (st, 3, now);
      rc = sqlite3_step (st);
      sqlite3_finalize (st);
      if (rc != SQLITE_DONE)
        {
          store_set_sqlite_error (error, db, rc, "rectify");
          goto out;
        }
      g_string_append_printf (fields, "%s%s", fields->len ? "," : "",
                              cols[i]);
    }
  if (r->email != NULL)
    {
      g_autofree char *norm = g_ascii_strdown (r->email, -1);
      g_autoptr (GBytes) sealed = NULL;
      guint8 index[32];

      if (strchr (norm, '@') == NULL || strpbrk (norm, " \r\n<>") != NULL)
        {
          g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                       "not an e-mail address");
          goto out;
        }
      store_keys_blind (s->keys, "subject-address", norm, strlen (norm),
                        index);
      sealed = store_seal (key, "subjects", "address", id, id, norm,
                           strlen (norm));
      st = store_prepare (db, "UPDATE subjects SET address = ?2,"
                              " address_index = ?3, updated_at = ?4"
                              " WHERE id = ?1", error);
      if (st == NULL)
        goto out;
      sqlite3_bind_int64 (st, 1, id);
      sqlite3_bind_blob64 (st, 2, g_bytes_get_data (sealed, NULL),
                           g_bytes_get_size (sealed), SQLITE_TRANSIENT);
      sqlite3_bind_blob (st, 3, index, sizeof index, SQLITE_TRANSIENT);
      sqlite3_bind_int64 (st, 4, now);
      rc = sqlite3_step (st);
      sqlite3_finalize (st);
      if ((rc & 0xff) == SQLITE_CONSTRAINT)
        {
          /* never say whose: that would disclose another person */
          g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                       "that address belongs to another data subject");
          goto out;
        }
      if (rc != SQLITE_DONE)
        {
          store_set_sqlite_error (error, db, rc, "rectify");
          goto out;
        }
      g_string_append_printf (fields, "%saddress", fields->len ? "," : "");
    }
  if (fields->len == 0)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "nothing to rectify");
      goto out;
    }
  {
    /* which fields, never the old (or the new) value */
    g_autofree char *detail = g_strdup_printf ("fields=%s", fields->str);
    if (!store_audit_append (s, db, actor, "subject.rectify", object, detail,
                             error))
      goto out;
  }
  ok = sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "rectify");
out:
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  store_keys_data_key_free (key);
  return ok;
}

/* ------------------------------------------------------- anonymisation */

void
store_subject_text_free (store_subject_text *t)
{
  if (t == NULL)
    return;
  g_free (t->subject);
  g_free (t->text);
  g_free (t);
}

void
store_subject_details_clear (store_subject_details *d)
{
  g_clear_pointer (&d->name, g_free);
  g_clear_pointer (&d->email, g_free);
  g_clear_pointer (&d->phone, g_free);
  g_clear_pointer (&d->postal, g_free);
}

static char *
store_rights_open_text (sqlite3_stmt *st, int col, const guint8 *key,
                        const char *table, const char *column, gint64 row,
                        gint64 owner)
{
  GBytes *b;

  if (sqlite3_column_type (st, col) == SQLITE_NULL)
    return NULL;
  b = store_unseal (key, table, column, row, owner,
                    sqlite3_column_blob (st, col),
                    sqlite3_column_bytes (st, col), NULL);
  return b ? g_bytes_unref_to_data (b, &(gsize){ 0 }) : NULL;
}

GPtrArray *
store_subject_texts (store *s, gint64 id, store_subject_details *d,
                     GError **error)
{
  GPtrArray *out = NULL;
  guint8 *key = NULL;
  sqlite3_stmt *st;

  g_mutex_lock (&s->rlock);
  sqlite3_exec (s->rdb, "BEGIN", NULL, NULL, NULL);
  st = store_prepare (s->rdb, "SELECT data_key, address, name, phone, postal"
                              " FROM subjects WHERE id = ?1 AND erasing_at IS"
                              " NULL", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  if (sqlite3_step (st) == SQLITE_ROW)
    {
      key = store_subject_key_unwrap (s, s->rdb, sqlite3_column_blob (st, 0),
                                      sqlite3_column_bytes (st, 0), id,
                                      error);
      if (key != NULL)
        {
          d->email = store_rights_open_text (st, 1, key, "subjects",
                                             "address", id, id);
          d->name = store_rights_open_text (st, 2, key, "subjects", "name",
                                            id, id);
          d->phone = store_rights_open_text (st, 3, key, "subjects", "phone",
                                             id, id);
          d->postal = store_rights_open_text (st, 4, key, "subjects",
                                              "postal", id, id);
        }
    }
  else
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                 "no data subject %" G_GINT64_FORMAT, id);
  sqlite3_finalize (st);
  if (key == NULL)
    goto out;
  st = store_prepare (s->rdb, "SELECT id, case_id, received_at,"
                              " header_subject, text FROM messages"
                              " WHERE subject_id = ?1 ORDER BY id", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  out = g_ptr_array_new_with_free_func ((GDestroyNotify)
                                        store_subject_text_free);
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      store_subject_text *t = g_new0 (store_subject_text, 1);
      t->message_id = sqlite3_column_int64 (st, 0);
      t->case_id = sqlite3_column_int64 (st, 1);
      t->received_at = sqlite3_column_int64 (st, 2);
      t->subject = store_rights_open_text (st, 3, key, "messages",
                                           "header_subject", t->message_id,
                                           id);
      t->text = store_rights_open_text (st, 4, key, "messages", "text",
                                        t->message_id, id);
      g_ptr_array_add (out, t);
    }
  sqlite3_finalize (st);
out:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  store_keys_data_key_free (key);
  return out;
}

gboolean
store_subject_anonymise (store *s, gint64 id, GPtrArray *texts,
                         const char *actor, store_erasure_report *r,
                         GError **error)
{
  const guint8 *stats = store_keys_get (s->keys, STORE_KEY_STATS);
  sqlite3 *db = s->rdb;
  gboolean ok = FALSE;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "anonymise");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  for (guint i = 0; i < texts->len; i++)
    {
      const store_subject_text *t = texts->pdata[i];
      gint64 row = store_rights_count (db, "SELECT coalesce((SELECT id FROM"
                                           " case_texts WHERE source_message"
                                           " = ?1), (SELECT coalesce(max(id),"
                                           " 0) + 1 FROM case_texts))",
                                       t->message_id);
      g_autoptr (GBytes) subj = NULL;
      g_autoptr (GBytes) text = NULL;
      sqlite3_stmt *st;
      int rc;

      if (row < 0)
        {
          store_set_sqlite_error (error, db, sqlite3_errcode (db),
                                  "anonymise");
          goto out;
        }
      if (t->subject)
        subj = store_seal (stats, "case_texts", "subject", row, 0, t->subject,
                           strlen (t->subject));
      if (t->text)
        text = store_seal (stats, "case_texts", "text", row, 0, t->text,
                           strlen (t->text));
      /* again after an interruption: the same row, sealed afresh */
      st = store_prepare (db, "INSERT OR REPLACE INTO case_texts (id,"
                              " case_id, source_message, received_at,"
                              " subject, text) VALUES (?1, ?2, ?3, ?4, ?5,"
                              " ?6)", error);
      if (st == NULL)
        goto out;
      sqlite3_bind_int64 (st, 1, row);
      sqlite3_bind_int64 (st, 2, t->case_id);
      sqlite3_bind_int64 (st, 3, t->message_id);
      sqlite3_bind_int64 (st, 4, t->received_at);
      if (subj)
        sqlite3_bind_blob64 (st, 5, g_bytes_get_data (subj, NULL),
                             g_bytes_get_size (subj), SQLITE_TRANSIENT);
      if (text)
        sqlite3_bind_blob64 (st, 6, g_bytes_get_data (text, NULL),
                             g_bytes_get_size (text), SQLITE_TRANSIENT);
      rc = sqlite3_step (st);
      sqlite3_finalize (st);
      if (rc != SQLITE_DONE)
        {
          store_set_sqlite_error (error, db, rc, "anonymise");
          goto out;
        }
    }
  {
    /* an integer of ours, not input: safe in the statement text */
    g_autofree char *sql = g_strdup_printf (
        "UPDATE cases SET anonymised_at = %" G_GINT64_FORMAT " WHERE id IN"
        " (SELECT case_id FROM messages WHERE subject_id = ?1) OR"
        " subject_id = ?1", g_get_real_time ());
    if (!store_rights_exec (db, sql, id, NULL, error))
      goto out;
  }
  ok = sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
out:
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  if (!ok)
    return FALSE;
  /* the link to the person goes: an erasure like any other */
  return store_subject_erase (s, id, "anonymised", actor, r, error);
}

GPtrArray *
store_case_texts (store *s, const char *ref, GError **error)
{
  const guint8 *stats = store_keys_get (s->keys, STORE_KEY_STATS);
  GPtrArray *out = NULL;
  sqlite3_stmt *st;

  g_mutex_lock (&s->rlock);
  st = store_prepare (s->rdb, "SELECT t.id, t.case_id, t.received_at,"
                              " t.subject, t.text FROM case_texts t JOIN"
                              " cases c ON c.id = t.case_id WHERE c.ref = ?1"
                              " ORDER BY t.id", error);
  if (st != NULL)
    {
      sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
      out = g_ptr_array_new_with_free_func ((GDestroyNotify)
                                            store_subject_text_free);
      while (sqlite3_step (st) == SQLITE_ROW)
        {
          store_subject_text *t = g_new0 (store_subject_text, 1);
          gint64 row = sqlite3_column_int64 (st, 0);
          t->case_id = sqlite3_column_int64 (st, 1);
          t->received_at = sqlite3_column_int64 (st, 2);
          t->subject = store_rights_open_text (st, 3, stats, "case_texts",
                                               "subject", row, 0);
          t->text = store_rights_open_text (st, 4, stats, "case_texts",
                                            "text", row, 0);
          g_ptr_array_add (out, t);
        }
      sqlite3_finalize (st);
    }
  g_mutex_unlock (&s->rlock);
  return out;
}
