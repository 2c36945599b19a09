/*
 * store_webhook.c - webhook events and department notifications, queued
 * with the change; the delivery log.
 *
 * Owns: the tables queue_outbound (which queues have a webhook or a
 * notification address) and webhook_events (the delivery queue and log).
 * Refuses: events for a restricted person's cases (art. 18), anything but
 * the reference in an erasure event.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_webhook.h"

#include <string.h>

#include "store/store_private.h"

static char *
store_webhook_dup (sqlite3_stmt *st, int col)
{
  const char *v = (const char *) sqlite3_column_text (st, col);

  return v ? g_strdup (v) : NULL;
}

/* Inside the writer's batch: FALSE when no queue at all has a webhook
 * (@notify FALSE: a notification address), so that the statements below
 * would insert nothing and need not run; read once and kept while no other
 * connection commits (store_writer_batch_begin ()).  TRUE otherwise, and
 * whenever it is not known.  */
static gboolean
store_webhook_any (store *s, sqlite3 *db, gboolean notify)
{
  sqlite3_stmt *st;

  if (db != s->wdb || !s->wbatch)
    return TRUE;
  if (!s->outbound.known)
    {
      st = store_stmt (s, db, "SELECT EXISTS (SELECT 1 FROM queue_outbound"
                              "  WHERE webhook = 1),"
                              " EXISTS (SELECT 1 FROM queue_outbound"
                              "  WHERE notify > 0)", NULL);
      if (st == NULL)
        return TRUE;
      if (sqlite3_step (st) == SQLITE_ROW)
        {
          s->outbound.webhook = sqlite3_column_int (st, 0) != 0;
          s->outbound.notify = sqlite3_column_int (st, 1) != 0;
          s->outbound.known = TRUE;
        }
      store_stmt_release (st);
      if (!s->outbound.known)
        return TRUE;
    }
  return notify ? s->outbound.notify : s->outbound.webhook;
}

gboolean
store_webhook_case_event (store *s, sqlite3 *db, gint64 case_id,
                          const char *event, const char *change,
                          gint64 message_id, const char *previous_queue,
                          GError **error)
{
  /* one row per webhook concerned: the case's queue's and, after a
   * re-route, the previous queue's */
  sqlite3_stmt *st;

  if (!store_webhook_any (s, db, FALSE))
    return TRUE;
  st = store_stmt (s, db,
      "INSERT INTO webhook_events (case_id, hook, event, change, message_id,"
      " ref, queue, previous_queue, kind, status, priority, due_at, next_at,"
      " created_at)"
      " SELECT c.id, q.queue, ?2, ?3, nullif(?4, 0), c.ref, c.queue,"
      " CASE WHEN ?5 <> c.queue THEN ?5 END, c.kind, c.status, c.priority,"
      " c.due_at, ?6, ?6"
      " FROM cases c JOIN queue_outbound q ON q.webhook = 1"
      "  AND (q.queue = c.queue OR q.queue = ?5)"
      " LEFT JOIN subjects p ON p.id = c.subject_id"
      " WHERE c.id = ?1 AND p.restricted_at IS NULL", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  sqlite3_bind_text (st, 2, event, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 3, change, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 4, message_id);
  sqlite3_bind_text (st, 5, previous_queue, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 6, g_get_real_time ());
  return store_step_done (db, st, "webhook event", error);
}

gboolean
store_webhook_ref_event (store *s, sqlite3 *db, const char *ref,
                         const char *change, const char *status,
                         const char *previous_queue, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db, "SELECT id FROM cases WHERE ref = ?1",
                                 error);
  gint64 id = -1;
  int rc;

  if (st == NULL)
    return FALSE;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    id = sqlite3_column_int64 (st, 0);
  store_stmt_release (st);
  if (id < 0)
    {
      store_set_sqlite_error (error, db, rc, "webhook case");
      return FALSE;
    }
  return store_webhook_case_event (s, db, id,
                                   g_strcmp0 (status, "closed") == 0
                                       ? STORE_WEBHOOK_CLOSED
                                       : STORE_WEBHOOK_UPDATED,
                                   change, 0, previous_queue, error);
}

gboolean
store_webhook_enqueue_erased (store *s, sqlite3 *db, gint64 case_id,
                              GError **error)
{
  gint64 now = g_get_real_time ();
  sqlite3_stmt *st;

  st = store_stmt (s, db, "UPDATE webhook_events SET state = 'dropped',"
                          " last_error = 'case erased'"
                          " WHERE case_id = ?1 AND state = 'queued'", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  if (!store_step_done (db, st, "webhook drop", error))
    return FALSE;
  /* every CRM that may hold the case hears of the erasure, whatever the
   * subject's restriction: the reference and nothing else */
  st = store_stmt (s, db,
      "INSERT INTO webhook_events (case_id, hook, event, ref, queue, next_at,"
      " created_at)"
      " SELECT c.id, h.hook, 'case.erased', c.ref, c.queue, ?2, ?2"
      " FROM cases c JOIN ("
      "  SELECT queue AS hook FROM queue_outbound WHERE webhook = 1"
      "   AND queue = (SELECT queue FROM cases WHERE id = ?1)"
      "  UNION SELECT hook FROM webhook_events WHERE case_id = ?1"
      "   AND event <> 'case.erased') h"
      " WHERE c.id = ?1", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  sqlite3_bind_int64 (st, 2, now);
  return store_step_done (db, st, "webhook erased", error);
}

gboolean
store_webhook_erased (store *s, const char *ref, GError **error)
{
  sqlite3_stmt *st;
  gint64 id = -1;
  gboolean ok = FALSE;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "webhook erased");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb, "SELECT id FROM cases WHERE ref = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  if (sqlite3_step (st) == SQLITE_ROW)
    id = sqlite3_column_int64 (st, 0);
  store_stmt_release (st);
  if (id < 0)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no case %s",
                   ref);
      goto out;
    }
  if (!store_webhook_enqueue_erased (s, s->rdb, id, error))
    goto out;
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "webhook erased");
out:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

gboolean
store_webhook_notify (store *s, sqlite3 *db, gint64 case_id, GError **error)
{
  sqlite3_stmt *st;

  if (!store_webhook_any (s, db, TRUE))
    return TRUE;
  st = store_stmt (s, db,
      "INSERT INTO outbox (case_id, subject_id, kind, queue, next_at,"
      " created_at)"
      " SELECT c.id, c.subject_id, 'notify', c.queue,"
      "  CASE WHEN q.notify = 2 THEN (?2 / 3600000000 + 1) * 3600000000"
      "  ELSE ?2 END, ?2"
      " FROM cases c JOIN queue_outbound q ON q.queue = c.queue"
      "  AND q.notify > 0"
      " JOIN subjects p ON p.id = c.subject_id"
      " WHERE c.id = ?1 AND p.restricted_at IS NULL", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, case_id);
  sqlite3_bind_int64 (st, 2, g_get_real_time ());
  return store_step_done (db, st, "notification", error);
}

static gboolean
store_webhook_queues_put (store *s, const char *const *queues,
                          const char *sql, GError **error)
{
  for (guint i = 0; queues && queues[i]; i++)
    {
      sqlite3_stmt *st = store_stmt (s, s->rdb, sql, error);
      if (st == NULL)
        return FALSE;
      sqlite3_bind_text (st, 1, queues[i], -1, SQLITE_STATIC);
      if (!store_step_done (s->rdb, st, "queue settings", error))
        return FALSE;
    }
  return TRUE;
}

gboolean
store_webhook_queues_set (store *s, const char *const *webhooks,
                          const char *const *notify,
                          const char *const *digest, GError **error)
{
  gboolean ok = FALSE;
  sqlite3_stmt *st;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "queue settings");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb, "DELETE FROM queue_outbound", error);
  if (st == NULL || !store_step_done (s->rdb, st, "queue settings", error))
    goto out;
  if (!store_webhook_queues_put (s, webhooks,
          "INSERT INTO queue_outbound (queue, webhook) VALUES (?1, 1)"
          " ON CONFLICT (queue) DO UPDATE SET webhook = 1", error)
      || !store_webhook_queues_put (s, notify,
          "INSERT INTO queue_outbound (queue, notify) VALUES (?1, 1)"
          " ON CONFLICT (queue) DO UPDATE SET notify = 1", error)
      || !store_webhook_queues_put (s, digest,
          "INSERT INTO queue_outbound (queue, notify) VALUES (?1, 2)"
          " ON CONFLICT (queue) DO UPDATE SET notify = 2", error))
    goto out;
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "queue settings");
out:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

void
store_webhook_item_free (store_webhook_item *it)
{
  if (it == NULL)
    return;
  g_free (it->hook);
  g_free (it->event);
  g_free (it->change);
  g_free (it->ref);
  g_free (it->queue);
  g_free (it->previous_queue);
  g_free (it->kind);
  g_free (it->status);
  g_free (it->priority);
  g_free (it->state);
  g_free (it->last_error);
  g_free (it);
}

#define STORE_WEBHOOK_COLUMNS \
  "SELECT id, case_id, message_id, hook, event, change, ref, queue," \
  " previous_queue, kind, status, priority, due_at, created_at, attempts," \
  " state, delivered_at, last_http, last_error FROM webhook_events"

static store_webhook_item *
store_webhook_read (sqlite3_stmt *st)
{
  store_webhook_item *it = g_new0 (store_webhook_item, 1);

  it->id = sqlite3_column_int64 (st, 0);
  it->case_id = sqlite3_column_int64 (st, 1);
  it->message_id = sqlite3_column_int64 (st, 2);
  it->hook = store_webhook_dup (st, 3);
  it->event = store_webhook_dup (st, 4);
  it->change = store_webhook_dup (st, 5);
  it->ref = store_webhook_dup (st, 6);
  it->queue = store_webhook_dup (st, 7);
  it->previous_queue = store_webhook_dup (st, 8);
  it->kind = store_webhook_dup (st, 9);
  it->status = store_webhook_dup (st, 10);
  it->priority = store_webhook_dup (st, 11);
  it->due_at = sqlite3_column_int64 (st, 12);
  it->created_at = sqlite3_column_int64 (st, 13);
  it->attempts = sqlite3_column_int (st, 14);
  it->state = store_webhook_dup (st, 15);
  it->delivered_at = sqlite3_column_int64 (st, 16);
  it->last_http = sqlite3_column_int (st, 17);
  it->last_error = store_webhook_dup (st, 18);
  return it;
}

static GPtrArray *
store_webhook_list (store *s, const char *sql, gint64 a, gint64 b,
                    GError **error)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_webhook_item_free);
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, sql, error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      g_ptr_array_unref (out);
      return NULL;
    }
  sqlite3_bind_int64 (st, 1, a);
  sqlite3_bind_int64 (st, 2, b);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (out, store_webhook_read (st));
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "webhook events");
      g_clear_pointer (&out, g_ptr_array_unref);
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;
}

GPtrArray *
store_webhook_due (store *s, guint max, GError **error)
{
  return store_webhook_list (s, STORE_WEBHOOK_COLUMNS
                             " WHERE state = 'queued' AND next_at <= ?1"
                             " ORDER BY next_at, id LIMIT ?2",
                             g_get_real_time (), max, error);
}

GPtrArray *
store_webhook_log (store *s, guint limit, GError **error)
{
  return store_webhook_list (s, STORE_WEBHOOK_COLUMNS
                             " WHERE ?1 = 0 ORDER BY id DESC LIMIT ?2", 0,
                             limit ? limit : 100, error);
}

gint64
store_webhook_prune (store *s, gint64 before_us, GError **error)
{
  sqlite3_stmt *st;
  gint64 n = -1;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "DELETE FROM webhook_events"
                              " WHERE state <> 'queued' AND created_at < ?1",
                   error);
  if (st != NULL)
    {
      sqlite3_bind_int64 (st, 1, before_us);
      if (store_step_done (s->rdb, st, "webhook prune", error))
        n = sqlite3_changes (s->rdb);
    }
  g_mutex_unlock (&s->rlock);
  return n;
}

gboolean
store_webhook_done (store *s, gint64 id, gboolean delivered, gint64 next_at,
                    gboolean failed, gboolean dropped, int http,
                    const char *why, GError **error)
{
  g_autofree char *ref = NULL;
  g_autofree char *detail = NULL;
  sqlite3_stmt *st;
  gboolean ok = FALSE;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "webhook");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb,
      "UPDATE webhook_events SET state = CASE WHEN ?2 THEN 'delivered'"
      " WHEN ?4 THEN 'failed' WHEN ?5 THEN 'dropped' ELSE 'queued' END,"
      " attempts = attempts + CASE WHEN ?5 THEN 0 ELSE 1 END,"
      " next_at = CASE WHEN ?3 > 0 THEN ?3 ELSE next_at END,"
      " delivered_at = CASE WHEN ?2 THEN ?6 ELSE delivered_at END,"
      " last_http = nullif(?7, 0), last_error = ?8"
      " WHERE id = ?1 AND state = 'queued' RETURNING ref, event, hook",
      error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_int (st, 2, delivered);
  sqlite3_bind_int64 (st, 3, next_at);
  sqlite3_bind_int (st, 4, failed);
  sqlite3_bind_int (st, 5, dropped);
  sqlite3_bind_int64 (st, 6, g_get_real_time ());
  sqlite3_bind_int (st, 7, http);
  sqlite3_bind_text (st, 8, why, -1, SQLITE_STATIC);
  if (sqlite3_step (st) == SQLITE_ROW)
    {
      ref = store_webhook_dup (st, 0);
      detail = g_strdup_printf ("delivery=%" G_GINT64_FORMAT " event=%s"
                                " queue=%s http=%d", id,
                                (const char *) sqlite3_column_text (st, 1),
                                (const char *) sqlite3_column_text (st, 2),
                                http);
    }
  store_stmt_release (st);
  if (ref == NULL)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   "webhook event %" G_GINT64_FORMAT " is not queued", id);
      goto out;
    }
  /* what left for another system is on the record */
  if ((delivered || failed)
      && !store_audit_append_outcome (s, s->rdb, "outbound",
                                      delivered ? "webhook.delivered"
                                                : "webhook.delivery",
                                      ref, detail,
                                      delivered ? "ok" : "failed", error))
    goto out;
  ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "webhook commit");
out:
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

static char *
store_webhook_open (sqlite3_stmt *st, int col, const guint8 *key,
                    const char *table, const char *column, gint64 row,
                    gint64 owner, GError **error)
{
  GBytes *b;
  gsize n;
  const char *p;
  char *out;

  if (sqlite3_column_type (st, col) == SQLITE_NULL)
    return NULL;
  b = store_unseal (key, table, column, row, owner,
                    sqlite3_column_blob (st, col),
                    sqlite3_column_bytes (st, col), error);
  if (b == NULL)
    return NULL;
  p = g_bytes_get_data (b, &n);
  out = g_strndup (p, n);
  g_bytes_unref (b);
  return out;
}

gboolean
store_webhook_message (store *s, gint64 message_id, char **addr, char **name,
                       char **subject, char **text, guint *special,
                       GError **error)
{
  sqlite3_stmt *st;
  guint8 *key = NULL;
  gboolean ok = FALSE;
  gint64 owner;
  int rc;

  *addr = *name = *subject = *text = NULL;
  *special = 0;
  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb,
      "SELECT m.subject_id, p.data_key, m.header_from, p.name,"
      " m.header_subject, m.text, m.special"
      " FROM messages m JOIN subjects p ON p.id = m.subject_id"
      " WHERE m.id = ?1", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  sqlite3_bind_int64 (st, 1, message_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      owner = sqlite3_column_int64 (st, 0);
      key = store_subject_key_unwrap (s, s->rdb, sqlite3_column_blob (st, 1),
                                      sqlite3_column_bytes (st, 1), owner,
                                      error);
      if (key != NULL)
        {
          GError *local = NULL;
          *addr = store_webhook_open (st, 2, key, "messages", "header_from",
                                      message_id, owner, &local);
          if (local == NULL)
            *name = store_webhook_open (st, 3, key, "subjects", "name",
                                        owner, owner, &local);
          if (local == NULL)
            *subject = store_webhook_open (st, 4, key, "messages",
                                           "header_subject", message_id,
                                           owner, &local);
          if (local == NULL)
            *text = store_webhook_open (st, 5, key, "messages", "text",
                                        message_id, owner, &local);
          *special = sqlite3_column_int (st, 6);
          ok = local == NULL;
          if (local != NULL)
            g_propagate_error (error, local);
        }
    }
  else if (rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                 "no message %" G_GINT64_FORMAT, message_id);
  else
    store_set_sqlite_error (error, s->rdb, rc, "webhook message");
  store_stmt_release (st);
  store_keys_data_key_free (key);
  g_mutex_unlock (&s->rlock);
  if (!ok)
    {
      g_clear_pointer (addr, g_free);
      g_clear_pointer (name, g_free);
      g_clear_pointer (subject, g_free);
      g_clear_pointer (text, g_free);
    }
  return ok;
}
