/*
 * store_audit.c - the append-only, hash-chained audit trail.
 *
 * Each event's MAC is keyed BLAKE2b (audit key) over the previous event's
 * MAC and this event's fields, so editing, deleting or reordering a row
 * breaks verification from that row on.  Events carry ids and facts, never
 * message text, names or addresses.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>

#include <sodium.h>

static void
store_audit_mac_field (crypto_generichash_state *h, const char *s)
{
  guint32 n = GUINT32_TO_BE ((guint32) strlen (s));

  /* Length-prefixed, so "a|b" and "a" "|b" differ.  */
  crypto_generichash_update (h, (const guint8 *) &n, sizeof n);
  crypto_generichash_update (h, (const guint8 *) s, strlen (s));
}

gboolean
store_audit_append (store *s, sqlite3 *db, const char *actor,
                    const char *action, const char *object,
                    const char *detail, GError **error)
{
  const guint8 *key = store_keys_get (s->keys, STORE_KEY_AUDIT);
  guint8 prev[32] = { 0 }, mac[32];
  crypto_generichash_state h;
  gint64 at = g_get_real_time ();
  guint64 at_be = GUINT64_TO_BE ((guint64) at);
  sqlite3_stmt *st;
  int rc;

  st = store_stmt (s, db, "SELECT mac FROM audit ORDER BY id DESC LIMIT 1",
                      error);
  if (st == NULL)
    return FALSE;
  if (sqlite3_step (st) == SQLITE_ROW && sqlite3_column_bytes (st, 0) == 32)
    memcpy (prev, sqlite3_column_blob (st, 0), 32);
  store_stmt_release (st);

  crypto_generichash_init (&h, key, STORE_KEY_BYTES, sizeof mac);
  crypto_generichash_update (&h, prev, sizeof prev);
  crypto_generichash_update (&h, (const guint8 *) &at_be, sizeof at_be);
  store_audit_mac_field (&h, actor);
  store_audit_mac_field (&h, action);
  store_audit_mac_field (&h, object);
  store_audit_mac_field (&h, detail);
  crypto_generichash_final (&h, mac, sizeof mac);

  st = store_stmt (s, db, "INSERT INTO audit (at, actor, action, object,"
                          " detail, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                      error);
  if (st == NULL)
    return FALSE;
  sqlite3_bind_int64 (st, 1, at);
  sqlite3_bind_text (st, 2, actor, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 3, action, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 4, object, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 5, detail, -1, SQLITE_STATIC);
  sqlite3_bind_blob (st, 6, mac, sizeof mac, SQLITE_STATIC);
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "audit insert");
      return FALSE;
    }
  return TRUE;
}
