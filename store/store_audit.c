/*
 * store_audit.c - the append-only, hash-chained audit trail.
 *
 * Each event's MAC is keyed BLAKE2b (audit key) over the previous event's
 * MAC and this event's id and fields, so editing, deleting, renumbering or
 * reordering a row breaks verification from that row on; a MAC over the
 * last event (audit_head) catches a deleted tail.  Events carry ids and
 * facts, never message text, names or addresses.
 *
 * Format 1 (schema 1-2) MACed time, actor, action, object, detail; format 2
 * adds the event id and the outcome.  Old events keep their format.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>

#include <sodium.h>

#define STORE_AUDIT_FORMAT 2

static void
store_audit_mac_field (crypto_generichash_state *h, const char *s)
{
  guint32 n = GUINT32_TO_BE ((guint32) strlen (s));

  /* Length-prefixed, so "a|b" and "a" "|b" differ.  */
  crypto_generichash_update (h, (const guint8 *) &n, sizeof n);
  crypto_generichash_update (h, (const guint8 *) s, strlen (s));
}

static void
store_audit_mac (const store *s, int format, const guint8 prev[32], gint64 id,
                 gint64 at, const char *actor, const char *action,
                 const char *object, const char *detail, const char *outcome,
                 guint8 mac[32])
{
  const guint8 *key = store_keys_get (s->keys, STORE_KEY_AUDIT);
  crypto_generichash_state h;
  guint64 at_be = GUINT64_TO_BE ((guint64) at);
  guint64 id_be = GUINT64_TO_BE ((guint64) id);

  crypto_generichash_init (&h, key, STORE_KEY_BYTES, 32);
  crypto_generichash_update (&h, prev, 32);
  if (format >= 2)
    crypto_generichash_update (&h, (const guint8 *) &id_be, sizeof id_be);
  crypto_generichash_update (&h, (const guint8 *) &at_be, sizeof at_be);
  store_audit_mac_field (&h, actor);
  store_audit_mac_field (&h, action);
  store_audit_mac_field (&h, object);
  store_audit_mac_field (&h, detail);
  if (format >= 2)
    store_audit_mac_field (&h, outcome);
  crypto_generichash_final (&h, mac, 32);
}

static void
store_audit_head_mac (const store *s, gint64 last_id, const guint8 last[32],
                      guint8 mac[32])
{
  static const char label[] = "intake audit head";
  const guint8 *key = store_keys_get (s->keys, STORE_KEY_AUDIT);
  crypto_generichash_state h;
  guint64 id_be = GUINT64_TO_BE ((guint64) last_id);

  crypto_generichash_init (&h, key, STORE_KEY_BYTES, 32);
  crypto_generichash_update (&h, (const guint8 *) label, sizeof label);
  crypto_generichash_update (&h, (const guint8 *) &id_be, sizeof id_be);
  crypto_generichash_update (&h, last, 32);
  crypto_generichash_final (&h, mac, 32);
}

/* The last event's id and MAC, from the table.  */
static gboolean
store_audit_head_read (store *s, sqlite3 *db, gint64 *last_id,
                       guint8 last_mac[32], GError **error)
{
  sqlite3_stmt *st;
  int rc;

  *last_id = 0;
  memset (last_mac, 0, 32);
  st = store_stmt (s, db, "SELECT id, mac FROM audit ORDER BY id DESC"
                          " LIMIT 1", error);
  if (st == NULL)
    return FALSE;
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      *last_id = sqlite3_column_int64 (st, 0);
      if (sqlite3_column_bytes (st, 1) == 32)
        memcpy (last_mac, sqlite3_column_blob (st, 1), 32);
    }
  store_stmt_release (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "audit head read");
      return FALSE;
    }
  return TRUE;
}

static gboolean
store_audit_head_write (store *s, sqlite3 *db, gint64 last_id,
                        const guint8 last_mac[32], GError **error)
{
  guint8 head[32];
  sqlite3_stmt *st;
  int rc;

  store_audit_head_mac (s, last_id, last_mac, head);
  st = store_stmt (s, db, "INSERT INTO audit_head (id, last_id, mac)"
                          " VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE"
                          " SET last_id = excluded.last_id,"
                          " mac = excluded.mac", error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, last_id);
  sqlite3_bind_blob (st, 2, head, sizeof head, SQLITE_STATIC);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "audit head");
      return FALSE;
    }
  return TRUE;
}

gboolean
store_audit_append_outcome (store *s, sqlite3 *db, const char *actor,
                            const char *action, const char *object,
                            const char *detail, const char *outcome,
                            GError **error)
{
  /* Inside the writer's batch the head is kept in memory: the writer holds
   * the write lock for the whole batch, and the batch began by checking
   * that no other connection committed since the last one.  */
  const gboolean cached = db == s->wdb && s->wbatch;
  guint8 prev[32], mac[32];
  gint64 at = g_get_real_time ();
  gint64 id;
  sqlite3_stmt *st;
  int rc;

  if (cached && s->audit.known)
    {
      id = s->audit.last_id + 1;
      memcpy (prev, s->audit.last_mac, 32);
    }
  else
    {
      if (!store_audit_head_read (s, db, &id, prev, error))
        return FALSE;
      id++;
    }

  store_audit_mac (s, STORE_AUDIT_FORMAT, prev, id, at, actor, action, object,
                   detail, outcome, mac);
  st = store_stmt (s, db, "INSERT INTO audit (id, at, actor, action, object,"
                          " detail, outcome, format, mac)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                   error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_int64 (st, 2, at);
  sqlite3_bind_text (st, 3, actor, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 4, action, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 5, object, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 6, detail, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 7, outcome, -1, SQLITE_STATIC);
  sqlite3_bind_int (st, 8, STORE_AUDIT_FORMAT);
  sqlite3_bind_blob (st, 9, mac, sizeof mac, SQLITE_STATIC);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "audit insert");
      return FALSE;
    }

  if (cached)
    {
      /* the signed head row follows once, before the batch commits
       * (store_audit_batch_flush) */
      s->audit.known = TRUE;
      s->audit.dirty = TRUE;
      s->audit.last_id = id;
      memcpy (s->audit.last_mac, mac, 32);
      return TRUE;
    }
  /* The writer's connection outside a batch (start-up): what it commits
   * is not seen as another connection's, so forget the cached head.  */
  if (db == s->wdb)
    s->audit.known = FALSE;
  return store_audit_head_write (s, db, id, mac, error);
}

void
store_audit_batch_begin (store *s, gboolean others)
{
  if (others)
    s->audit.known = FALSE;
  s->audit.dirty = FALSE;
}

gboolean
store_audit_batch_flush (store *s, sqlite3 *db, GError **error)
{
  gboolean ok = TRUE;

  if (s->wbatch && s->audit.dirty)
    {
      g_assert (s->audit.known);
      ok = store_audit_head_write (s, db, s->audit.last_id,
                                   s->audit.last_mac, error);
    }
  s->audit.dirty = FALSE;
  return ok;
}

void
store_audit_batch_forget (store *s)
{
  s->audit.known = FALSE;
  s->audit.dirty = FALSE;
}

gboolean
store_audit_append (store *s, sqlite3 *db, const char *actor,
                    const char *action, const char *object,
                    const char *detail, GError **error)
{
  return store_audit_append_outcome (s, db, actor, action, object, detail,
                                     "ok", error);
}

gboolean
store_audit_record (store *s, const char *actor, const char *action,
                    const char *object, const char *detail,
                    const char *outcome, GError **error)
{
  gboolean ok = FALSE;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                            "audit");
  else if (store_audit_append_outcome (s, s->rdb, actor, action, object,
                                       detail, outcome, error))
    {
      ok = sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
      if (!ok)
        store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                                "audit commit");
    }
  if (!ok && !sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

void
store_audit_report_clear (store_audit_report *r)
{
  g_clear_pointer (&r->reason, g_free);
}

gboolean
store_audit_verify (store *s, store_audit_report *r, GError **error)
{
  guint8 prev[32] = { 0 }, mac[32];
  gint64 last_id = 0;
  gboolean any_v2 = FALSE;
  sqlite3_stmt *st;
  int rc;

  memset (r, 0, sizeof *r);
  g_mutex_lock (&s->rlock);
  /* One snapshot for the chain and its head.  */
  if (sqlite3_exec (s->rdb, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "audit verify");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_prepare (s->rdb, "SELECT id, at, actor, action, object, detail,"
                              " outcome, format, mac FROM audit ORDER BY id",
                      error);
  if (st == NULL)
    goto fail;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (st, 0);
      int format = sqlite3_column_int (st, 7);
      const char *actor = (const char *) sqlite3_column_text (st, 2);
      const char *action = (const char *) sqlite3_column_text (st, 3);
      const char *object = (const char *) sqlite3_column_text (st, 4);
      const char *detail = (const char *) sqlite3_column_text (st, 5);
      const char *outcome = (const char *) sqlite3_column_text (st, 6);

      r->events++;
      any_v2 |= format >= 2;
      if (format < 1 || format > STORE_AUDIT_FORMAT)
        {
          r->first_bad = id;
          r->reason = g_strdup_printf ("unknown format %d", format);
          break;
        }
      store_audit_mac (s, format, prev, id, sqlite3_column_int64 (st, 1),
                       actor ? actor : "", action ? action : "",
                       object ? object : "", detail ? detail : "",
                       outcome ? outcome : "", mac);
      if (sqlite3_column_bytes (st, 8) != 32
          || sodium_memcmp (mac, sqlite3_column_blob (st, 8), 32) != 0)
        {
          r->first_bad = id;
          r->reason = g_strdup ("MAC does not match: this event or the one"
                                " before it was edited, removed or moved");
          break;
        }
      memcpy (prev, mac, 32);
      last_id = id;
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "audit verify");
      goto fail;
    }
  if (r->first_bad == 0)
    {
      st = store_prepare (s->rdb, "SELECT last_id, mac FROM audit_head"
                                  " WHERE id = 1", error);
      if (st == NULL)
        goto fail;
      if (sqlite3_step (st) == SQLITE_ROW)
        {
          gint64 head_id = sqlite3_column_int64 (st, 0);
          guint8 want[32];

          store_audit_head_mac (s, head_id, prev, want);
          if (head_id != last_id || sqlite3_column_bytes (st, 1) != 32
              || sodium_memcmp (want, sqlite3_column_blob (st, 1), 32) != 0)
            {
              r->first_bad = head_id > last_id ? last_id + 1 : head_id;
              if (r->first_bad <= 0)
                r->first_bad = 1;
              r->reason = g_strdup_printf (
                  "the chain ends at event %" G_GINT64_FORMAT " but the"
                  " signed head names event %" G_GINT64_FORMAT ": events"
                  " were removed from the end, or the head was edited",
                  last_id, head_id);
            }
        }
      else if (any_v2)
        {
          r->first_bad = last_id > 0 ? last_id : 1;
          r->reason = g_strdup ("the signed head of the chain is missing");
        }
      sqlite3_finalize (st);
    }
  sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return TRUE;

fail:
  sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return FALSE;
}
