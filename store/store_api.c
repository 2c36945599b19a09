/*
 * store_api.c - API tokens and cases as a department token sees them.
 *
 * Owns: the SQL of the queue API.  Every case query names the token's
 * queues ("ref = ? AND instr(',' || queues || ',', ...)"): a case of
 * another queue is not found, the same as one that does not exist.
 * Tokens are kept as keyed BLAKE2b hashes only.  Writes run on the read
 * connection under BEGIN IMMEDIATE (as store_case_set_status() does), each
 * with its audit event in the same transaction.
 * Refuses: notes and replies over STORE_API_TEXT_MAX, names outside
 * [a-z0-9._-].
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_api.h"

#include <string.h>

#include <sodium.h>

#include "store/store_private.h"
#include "store/store_webhook.h"

/* last_used_at is written at most this often per token (microseconds).  */
#define STORE_API_USED_EVERY_US (60 * G_USEC_PER_SEC)

gboolean
store_api_name_valid (const char *name)
{
  gsize n = name ? strlen (name) : 0;

  if (n == 0 || n > STORE_API_NAME_MAX)
    return FALSE;
  if (!g_ascii_islower (name[0]) && !g_ascii_isdigit (name[0]))
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_islower (name[i]) && !g_ascii_isdigit (name[i])
        && name[i] != '-' && name[i] != '_' && name[i] != '.')
      return FALSE;
  return strstr (name, "..") == NULL;
}

/* ",a,b," for instr(): queue names hold no commas (store_api_name_valid).  */
static char *
store_api_queue_set (const char *const *queues)
{
  GString *g = g_string_new (",");

  for (guint i = 0; queues && queues[i]; i++)
    if (store_api_name_valid (queues[i]))
      g_string_append_printf (g, "%s,", queues[i]);
  return g_string_free (g, FALSE);
}

static gboolean
store_api_in_queues (const char *queue, const char *const *queues)
{
  for (guint i = 0; queue && queues && queues[i]; i++)
    if (strcmp (queue, queues[i]) == 0)
      return TRUE;
  return FALSE;
}

static char *
store_api_dup (sqlite3_stmt *st, int col)
{
  return g_strdup ((const char *) sqlite3_column_text (st, col));
}

static void
store_api_bind_bytes (sqlite3_stmt *st, int i, GBytes *b)
{
  gsize n = 0;
  const void *p = b ? g_bytes_get_data (b, &n) : NULL;

  if (b == NULL)
    sqlite3_bind_null (st, i);
  else
    sqlite3_bind_blob64 (st, i, p ? p : "", n, SQLITE_TRANSIENT);
}

/* (transfer full) (nullable) a sealed text column opened with @key.  */
static char *
store_api_open_text (sqlite3_stmt *st, int col, const guint8 *key,
                     const char *table, const char *column, gint64 row,
                     gint64 owner)
{
  g_autoptr (GError) error = NULL;
  GBytes *b;

  if (key == NULL || sqlite3_column_type (st, col) == SQLITE_NULL)
    return NULL;
  b = store_unseal (key, table, column, row, owner,
                    sqlite3_column_blob (st, col),
                    sqlite3_column_bytes (st, col), &error);
  if (b == NULL)
    {
      g_warning ("event=unseal-failed table=%s column=%s row=%"
                 G_GINT64_FORMAT, table, column, row);
      return g_strdup ("");
    }
  return g_bytes_unref_to_data (b, &(gsize){ 0 });
}

/* --------------------------------------------------- transactions */

typedef struct {
  gint64 id;
  gint64 subject_id;
  char *status;
  char *queue;
  char *kind;
  char *claimed_by;
} store_api_row;

static void
store_api_row_clear (store_api_row *r)
{
  g_clear_pointer (&r->status, g_free);
  g_clear_pointer (&r->queue, g_free);
  g_clear_pointer (&r->kind, g_free);
  g_clear_pointer (&r->claimed_by, g_free);
}

/* Lock the read connection, BEGIN IMMEDIATE and find case @ref among
 * @queues.  On FALSE the transaction is rolled back and the lock released;
 * on TRUE the caller ends with store_api_end().  */
static gboolean
store_api_begin (store *s, const char *ref, const char *const *queues,
                 store_api_row *row, GError **error)
{
  g_autofree char *set = store_api_queue_set (queues);
  sqlite3_stmt *st;
  int rc;

  memset (row, 0, sizeof *row);
  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "api begin");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb,
                   "SELECT id, subject_id, status, queue, kind, claimed_by"
                   " FROM cases WHERE ref = ?1"
                   " AND instr(?2, ',' || queue || ',') > 0", error);
  if (st == NULL)
    goto fail;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, set, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      row->id = sqlite3_column_int64 (st, 0);
      row->subject_id = sqlite3_column_int64 (st, 1);
      row->status = store_api_dup (st, 2);
      row->queue = store_api_dup (st, 3);
      row->kind = store_api_dup (st, 4);
      row->claimed_by = store_api_dup (st, 5);
    }
  else if (rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no such case");
  else
    store_set_sqlite_error (error, s->rdb, rc, "api case");
  store_stmt_release (st);
  if (rc == SQLITE_ROW && store_api_in_queues (row->queue, queues))
    return TRUE;
fail:
  store_api_row_clear (row);
  sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return FALSE;
}

/* Commit if @ok (else roll back), release the lock.  */
static gboolean
store_api_end (store *s, gboolean ok, GError **error)
{
  if (ok && sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "api commit");
      ok = FALSE;
    }
  if (!sqlite3_get_autocommit (s->rdb))
    sqlite3_exec (s->rdb, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}

/* A refused change is an event too: audit it and commit only that.  */
static void
store_api_refused (store *s, const char *actor, const char *action,
                   const char *object, const char *detail)
{
  if (store_audit_append_outcome (s, s->rdb, actor, action, object, detail,
                                  "refused", NULL))
    sqlite3_exec (s->rdb, "COMMIT", NULL, NULL, NULL);
}

static gboolean
store_api_exec (store *s, sqlite3_stmt *st, const char *what, GError **error)
{
  int rc = sqlite3_step (st);

  store_stmt_release (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, what);
      return FALSE;
    }
  return TRUE;
}

/* (transfer full) (nullable) the data key of subject @subject_id.  */
static guint8 *
store_api_data_key (store *s, gint64 subject_id, char **addr, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, s->rdb, "SELECT data_key, address FROM"
                                            " subjects WHERE id = ?1", error);
  guint8 *key = NULL;
  int rc;

  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, subject_id);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      key = store_subject_key_unwrap (s, s->rdb, sqlite3_column_blob (st, 0),
                               sqlite3_column_bytes (st, 0), subject_id,
                               error);
      if (key != NULL && addr != NULL)
        *addr = store_api_open_text (st, 1, key, "subjects", "address",
                                     subject_id, subject_id);
    }
  else if (rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                 "the case has no data subject");
  else
    store_set_sqlite_error (error, s->rdb, rc, "data key");
  store_stmt_release (st);
  return key;
}

/* ------------------------------------------------------------- tokens */

void
store_api_token_free (store_api_token *t)
{
  if (t == NULL)
    return;
  g_free (t->name);
  g_strfreev (t->queues);
  g_free (t);
}

void
store_api_token_hash (const store_keys *keys, const char *token, gsize len,
                      guint8 out[32])
{
  static const char context[] = "intake api token";
  crypto_generichash_state h;

  crypto_generichash_init (&h, store_keys_get (keys, STORE_KEY_FORMS),
                           STORE_KEY_BYTES, 32);
  crypto_generichash_update (&h, (const guint8 *) context, sizeof context);
  crypto_generichash_update (&h, (const guint8 *) token, len);
  crypto_generichash_final (&h, out, 32);
}

#define STORE_API_TOKEN_COLUMNS \
  "SELECT id, name, queues, special, created_at, revoked_at, last_used_at," \
  " token_hash, expires_at FROM api_tokens "

static store_api_token *
store_api_token_read (sqlite3_stmt *st)
{
  store_api_token *t = g_new0 (store_api_token, 1);
  const char *q = (const char *) sqlite3_column_text (st, 2);

  t->id = sqlite3_column_int64 (st, 0);
  t->name = store_api_dup (st, 1);
  t->queues = g_strsplit (q ? q : "", ",", STORE_API_QUEUES_MAX + 1);
  t->special = sqlite3_column_int (st, 3) != 0;
  t->created_at = sqlite3_column_int64 (st, 4);
  t->revoked_at = sqlite3_column_int64 (st, 5);
  t->last_used_at = sqlite3_column_int64 (st, 6);
  t->expires_at = sqlite3_column_int64 (st, 8);
  return t;
}

gboolean
store_api_token_create (store *s, const char *name, const guint8 hash[32],
                        const char *const *queues, gboolean special,
                        gint64 expires_at, const char *actor, GError **error)
{
  g_autofree char *joined = NULL;
  g_autofree char *detail = NULL;
  g_autofree char *object = g_strconcat ("token:", name, NULL);
  sqlite3_stmt *st;
  gboolean ok = FALSE, exists = FALSE;
  guint n = queues ? g_strv_length ((char **) queues) : 0;

  g_return_val_if_fail (store_api_name_valid (name), FALSE);
  g_return_val_if_fail (n > 0 && n <= STORE_API_QUEUES_MAX, FALSE);
  for (guint i = 0; i < n; i++)
    g_return_val_if_fail (store_api_name_valid (queues[i]), FALSE);
  joined = g_strjoinv (",", (char **) queues);
  detail = g_strdup_printf ("queues=%s special=%d expires=%" G_GINT64_FORMAT,
                            joined, special ? 1 : 0,
                            expires_at / G_USEC_PER_SEC);

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "token create");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb, "SELECT 1 FROM api_tokens WHERE name = ?1",
                   error);
  if (st == NULL)
    return store_api_end (s, FALSE, NULL);
  sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC);
  exists = sqlite3_step (st) == SQLITE_ROW;
  store_stmt_release (st);
  if (exists)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "a token named %s exists (names are never reused)", name);
      store_api_refused (s, actor, "token.create", object, detail);
      return store_api_end (s, FALSE, NULL);
    }
  st = store_stmt (s, s->rdb, "INSERT INTO api_tokens (name, token_hash,"
                              " queues, special, created_at, expires_at)"
                              " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", error);
  if (st == NULL)
    return store_api_end (s, FALSE, NULL);
  sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_blob (st, 2, hash, 32, SQLITE_STATIC);
  sqlite3_bind_text (st, 3, joined, -1, SQLITE_STATIC);
  sqlite3_bind_int (st, 4, special ? 1 : 0);
  sqlite3_bind_int64 (st, 5, g_get_real_time ());
  if (expires_at > 0)
    sqlite3_bind_int64 (st, 6, expires_at);
  else
    sqlite3_bind_null (st, 6);
  ok = store_api_exec (s, st, "token create", error)
       && store_audit_append (s, s->rdb, actor, "token.create", object,
                              detail, error);
  return store_api_end (s, ok, error);
}

GPtrArray *
store_api_token_list (store *s, GError **error)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_api_token_free);
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, STORE_API_TOKEN_COLUMNS "ORDER BY name", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      g_ptr_array_unref (out);
      return NULL;
    }
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (out, store_api_token_read (st));
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "token list");
      g_clear_pointer (&out, g_ptr_array_unref);
    }
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return out;
}

gboolean
store_api_token_revoke (store *s, const char *name, const char *actor,
                        GError **error)
{
  g_autofree char *object = g_strconcat ("token:", name, NULL);
  sqlite3_stmt *st;
  gboolean ok;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (s->rdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, s->rdb, sqlite3_errcode (s->rdb),
                              "token revoke");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_stmt (s, s->rdb, "UPDATE api_tokens SET revoked_at = ?2"
                              " WHERE name = ?1 AND revoked_at IS NULL",
                   error);
  if (st == NULL)
    return store_api_end (s, FALSE, NULL);
  sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 2, g_get_real_time ());
  ok = store_api_exec (s, st, "token revoke", error);
  if (ok && sqlite3_changes (s->rdb) == 0)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   "no token named %s in force", name);
      store_api_refused (s, actor, "token.revoke", object, "not-found");
      return store_api_end (s, FALSE, NULL);
    }
  ok = ok && store_audit_append (s, s->rdb, actor, "token.revoke", object,
                                 "", error);
  return store_api_end (s, ok, error);
}

store_api_token *
store_api_token_lookup (store *s, const guint8 hash[32], char **revoked_name,
                        GError **error)
{
  store_api_token *t = NULL;
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, STORE_API_TOKEN_COLUMNS "WHERE token_hash = ?1",
                   error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      return NULL;
    }
  sqlite3_bind_blob (st, 1, hash, 32, SQLITE_STATIC);
  rc = sqlite3_step (st);
  /* The index finds the row; the bytes are compared again in constant
   * time (SECURITY-TESTS 102).  */
  if (rc == SQLITE_ROW && sqlite3_column_bytes (st, 7) == 32
      && sodium_memcmp (sqlite3_column_blob (st, 7), hash, 32) == 0)
    t = store_api_token_read (st);
  else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "unknown token");
  else
    store_set_sqlite_error (error, s->rdb, rc, "token lookup");
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  if (t != NULL && t->revoked_at != 0)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE, "token revoked");
      if (revoked_name)
        *revoked_name = g_strdup (t->name);
      g_clear_pointer (&t, store_api_token_free);
    }
  else if (t != NULL && t->expires_at != 0
           && g_get_real_time () >= t->expires_at)
    {
      /* checked on every request: refused from its first second on */
      g_set_error (error, STORE_ERROR, STORE_ERROR_EXPIRED, "token expired");
      if (revoked_name)
        *revoked_name = g_strdup (t->name);
      g_clear_pointer (&t, store_api_token_free);
    }
  return t;
}

void
store_api_token_used (store *s, gint64 id, gint64 now)
{
  sqlite3_stmt *st;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "UPDATE api_tokens SET last_used_at = ?2"
                              " WHERE id = ?1 AND (last_used_at IS NULL"
                              " OR last_used_at < ?3)", NULL);
  if (st != NULL)
    {
      sqlite3_bind_int64 (st, 1, id);
      sqlite3_bind_int64 (st, 2, now);
      sqlite3_bind_int64 (st, 3, now - STORE_API_USED_EVERY_US);
      if (sqlite3_step (st) != SQLITE_DONE)
        g_debug ("event=token-used-not-recorded token_id=%" G_GINT64_FORMAT,
                 id);
      store_stmt_release (st);
    }
  g_mutex_unlock (&s->rlock);
}

/* -------------------------------------------------------------- reads */

GPtrArray *
store_api_case_find (store *s, const char *const *queues,
                     const store_case_filter *f, GError **error)
{
  store_case_filter brief;
  GPtrArray *all;
  GPtrArray *out;

  if (f == NULL || !store_api_in_queues (f->queue, queues))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no such queue");
      return NULL;
    }
  /* a list shows the address and the subject line: the name and the
   * Message-ID are not decrypted for it */
  brief = *f;
  brief.brief = TRUE;
  all = store_case_find (s, &brief, error);
  if (all == NULL)
    return NULL;
  /* The filter named the queue; check every row again all the same.  */
  out = g_ptr_array_new_with_free_func ((GDestroyNotify) store_case_view_free);
  for (guint i = 0; i < all->len; i++)
    {
      store_case_view *v = all->pdata[i];
      if (store_api_in_queues (v->queue, queues))
        {
          g_ptr_array_add (out, v);
          all->pdata[i] = NULL;
        }
    }
  g_ptr_array_unref (all);
  return out;
}

/* Whether case @ref is in @queues now; its id and claimant.  */
static gboolean
store_api_case_visible (store *s, const char *ref, const char *const *queues,
                        gint64 *id, char **claimed_by, GError **error)
{
  g_autofree char *set = store_api_queue_set (queues);
  g_autofree char *queue = NULL;
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb, "SELECT id, queue, claimed_by FROM cases"
                              " WHERE ref = ?1"
                              " AND instr(?2, ',' || queue || ',') > 0",
                   error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, set, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      if (id)
        *id = sqlite3_column_int64 (st, 0);
      queue = store_api_dup (st, 1);
      if (claimed_by)
        *claimed_by = store_api_dup (st, 2);
    }
  else if (rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no such case");
  else
    store_set_sqlite_error (error, s->rdb, rc, "api case");
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  return queue != NULL && store_api_in_queues (queue, queues);
}

store_case_view *
store_api_case_get (store *s, const char *ref, const char *const *queues,
                    GPtrArray **messages, char **claimed_by, GError **error)
{
  store_case_view *v;
  GPtrArray *msgs = NULL;
  g_autofree char *claim = NULL;

  if (!store_api_case_visible (s, ref, queues, NULL, &claim, error))
    return NULL;
  v = store_case_get (s, ref, &msgs, error);
  if (v == NULL)
    return NULL;
  /* Re-routed between the two reads: it is not this token's any more.  */
  if (!store_api_in_queues (v->queue, queues))
    {
      store_case_view_free (v);
      g_ptr_array_unref (msgs);
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no such case");
      return NULL;
    }
  if (messages)
    *messages = msgs;
  else
    g_ptr_array_unref (msgs);
  if (claimed_by)
    *claimed_by = g_steal_pointer (&claim);
  return v;
}

GBytes *
store_api_attachment (store *s, const char *ref, const char *const *queues,
                      gint64 message_id, guint position, gboolean special_ok,
                      store_attachment_view **meta, GError **error)
{
  g_autofree char *set = store_api_queue_set (queues);
  g_autoptr (GPtrArray) atts = NULL;
  store_attachment_view *found = NULL;
  sqlite3_stmt *st;
  gint64 case_id = 0;
  guint special = 0;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb,
                   "SELECT c.id, m.special FROM attachments a"
                   " JOIN messages m ON m.id = a.message_id"
                   " JOIN cases c ON c.id = m.case_id"
                   " WHERE c.ref = ?1 AND instr(?2, ',' || c.queue || ',') > 0"
                   " AND a.message_id = ?3 AND a.position = ?4", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      return NULL;
    }
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, set, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 3, message_id);
  sqlite3_bind_int64 (st, 4, position);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      case_id = sqlite3_column_int64 (st, 0);
      special = sqlite3_column_int64 (st, 1);
    }
  else if (rc == SQLITE_DONE)
    g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                 "no such attachment");
  else
    store_set_sqlite_error (error, s->rdb, rc, "api attachment");
  store_stmt_release (st);
  g_mutex_unlock (&s->rlock);
  if (case_id == 0)
    return NULL;
  if (special != 0 && !special_ok)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "special-category data needs the special grant");
      return NULL;
    }
  if (!store_case_details (s, case_id, NULL, NULL, &atts, error))
    return NULL;
  for (guint i = 0; i < atts->len && found == NULL; i++)
    {
      store_attachment_view *a = atts->pdata[i];
      if (a->message_id == message_id && a->position == position)
        found = g_ptr_array_steal_index (atts, i);
    }
  if (found == NULL)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND,
                   "no such attachment");
      return NULL;
    }
  {
    GBytes *content = store_attachment_content (s, message_id, position,
                                                error);
    if (content == NULL)
      {
        store_attachment_view_free (found);
        return NULL;
      }
    if (meta)
      *meta = found;
    else
      store_attachment_view_free (found);
    return content;
  }
}

/* ------------------------------------------------------------ changes */

gboolean
store_api_case_claim (store *s, const char *ref, const char *const *queues,
                      const char *who, const char *actor, GError **error)
{
  store_api_row row;
  g_autofree char *detail = NULL;
  sqlite3_stmt *st;
  gboolean ok;
  const char *to;

  if (!store_api_begin (s, ref, queues, &row, error))
    return FALSE;
  if (row.claimed_by != NULL && strcmp (row.claimed_by, who) != 0)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "the case is claimed by %s", row.claimed_by);
      store_api_refused (s, actor, "case.claim", ref, "held-by-other");
      store_api_row_clear (&row);
      return store_api_end (s, FALSE, NULL);
    }
  to = strcmp (row.status, "new") == 0
           && store_status_allowed ("new", "assigned") ? "assigned"
                                                         : row.status;
  detail = g_strdup_printf ("from=%s to=%s", row.status, to);
  st = store_stmt (s, s->rdb, "UPDATE cases SET claimed_by = ?2,"
                              " status = ?3, updated_at = ?4 WHERE id = ?1",
                   error);
  ok = st != NULL;
  if (ok)
    {
      sqlite3_bind_int64 (st, 1, row.id);
      sqlite3_bind_text (st, 2, who, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 3, to, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (st, 4, g_get_real_time ());
      ok = store_api_exec (s, st, "claim", error)
           && store_audit_append (s, s->rdb, actor, "case.claim", ref, detail,
                                  error)
           && (strcmp (to, row.status) == 0
               || store_webhook_case_event (s, s->rdb, row.id,
                                            STORE_WEBHOOK_UPDATED, "status",
                                            0, NULL, error));
    }
  store_api_row_clear (&row);
  return store_api_end (s, ok, error);
}

gboolean
store_api_case_status (store *s, const char *ref, const char *const *queues,
                       const char *to, const char *actor, GError **error)
{
  store_api_row row;
  g_autofree char *detail = NULL;
  sqlite3_stmt *st;
  gboolean ok;
  gint64 now = g_get_real_time ();

  if (!store_api_begin (s, ref, queues, &row, error))
    return FALSE;
  detail = g_strdup_printf ("from=%s to=%s", row.status, to);
  if (!store_status_allowed (row.status, to))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "the case is %s; it cannot become %s", row.status, to);
      store_api_refused (s, actor, "case.status", ref, detail);
      store_api_row_clear (&row);
      return store_api_end (s, FALSE, NULL);
    }
  st = store_stmt (s, s->rdb,
      "UPDATE cases SET status = ?2, updated_at = ?3,"
      " closed_at = CASE WHEN ?2 = 'closed' THEN ?3 ELSE NULL END"
      " WHERE id = ?1", error);
  ok = st != NULL;
  if (ok)
    {
      sqlite3_bind_int64 (st, 1, row.id);
      sqlite3_bind_text (st, 2, to, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (st, 3, now);
      ok = store_api_exec (s, st, "status", error)
           && store_audit_append (s, s->rdb, actor, "case.status", ref,
                                  detail, error)
           && store_webhook_case_event (s, s->rdb, row.id,
                                        strcmp (to, "closed") == 0
                                            ? STORE_WEBHOOK_CLOSED
                                            : STORE_WEBHOOK_UPDATED,
                                        "status", 0, NULL, error);
    }
  store_api_row_clear (&row);
  return store_api_end (s, ok, error);
}

gboolean
store_api_case_reroute (store *s, const char *ref, const char *const *queues,
                        const char *queue, const char *kind,
                        const char *reason_code, const char *actor,
                        GError **error)
{
  store_api_row row;
  g_autoptr (GString) detail = g_string_new (NULL);
  sqlite3_stmt *st;
  gboolean ok;

  if (!store_api_begin (s, ref, queues, &row, error))
    return FALSE;
  if (!store_case_reroute_allowed (s, ref, queue, error))
    {
      store_api_row_clear (&row);
      return store_api_end (s, FALSE, error);
    }
  g_string_printf (detail, "queue=%s->%s kind=%s->%s", row.queue,
                   queue ? queue : row.queue, row.kind,
                   kind ? kind : row.kind);
  /* Moved out of the department's queue, it is no longer theirs to hold.  */
  st = store_stmt (s, s->rdb,
      "UPDATE cases SET queue = coalesce(?2, queue), kind = coalesce(?3, kind),"
      " claimed_by = CASE WHEN coalesce(?2, queue) = queue THEN claimed_by"
      " ELSE NULL END, rerouted_at = ?4, updated_at = ?4 WHERE id = ?1",
      error);
  ok = st != NULL;
  if (ok)
    {
      sqlite3_bind_int64 (st, 1, row.id);
      sqlite3_bind_text (st, 2, queue, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 3, kind, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (st, 4, g_get_real_time ());
      ok = store_api_exec (s, st, "reroute", error)
           && store_case_due_again (s, row.id, row.kind, kind, detail, error);
      if (ok && reason_code != NULL)
        g_string_append_printf (detail, " %s", reason_code);
      ok = ok
           && store_audit_append (s, s->rdb, actor, "case.reroute", ref,
                                  detail->str, error)
           && store_webhook_case_event (s, s->rdb, row.id,
                                        STORE_WEBHOOK_UPDATED, "routing", 0,
                                        row.queue, error)
           /* work arrived in another queue: its department hears of it */
           && (queue == NULL || strcmp (queue, row.queue) == 0
               || store_webhook_notify (s, s->rdb, row.id, error));
    }
  store_api_row_clear (&row);
  return store_api_end (s, ok, error);
}

/* -------------------------------------------------------------- notes */

void
store_api_note_free (store_api_note *n)
{
  if (n == NULL)
    return;
  g_free (n->author);
  g_free (n->text);
  g_free (n);
}

gint64
store_api_note_add (store *s, const char *ref, const char *const *queues,
                    const char *author, const char *text, const char *actor,
                    GError **error)
{
  store_api_row row;
  g_autofree char *detail = NULL;
  g_autoptr (GBytes) ct = NULL;
  guint8 *key;
  sqlite3_stmt *st;
  gint64 id;
  gboolean ok = FALSE;
  gsize len = strlen (text);

  g_return_val_if_fail (len <= STORE_API_TEXT_MAX, 0);
  if (!store_api_begin (s, ref, queues, &row, error))
    return 0;
  key = store_api_data_key (s, row.subject_id, NULL, error);
  id = key ? store_next_id (s, s->rdb, "case_notes", error) : -1;
  if (id > 0)
    {
      ct = store_seal (key, "case_notes", "text", id, row.subject_id, text,
                       len);
      detail = g_strdup_printf ("note=%" G_GINT64_FORMAT " bytes=%zu", id,
                                len);
      st = store_stmt (s, s->rdb, "INSERT INTO case_notes (id, case_id,"
                                  " subject_id, author, text, created_at)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", error);
      if (st != NULL)
        {
          sqlite3_bind_int64 (st, 1, id);
          sqlite3_bind_int64 (st, 2, row.id);
          sqlite3_bind_int64 (st, 3, row.subject_id);
          sqlite3_bind_text (st, 4, author, -1, SQLITE_STATIC);
          store_api_bind_bytes (st, 5, ct);
          sqlite3_bind_int64 (st, 6, g_get_real_time ());
          ok = store_api_exec (s, st, "note", error)
               && store_audit_append (s, s->rdb, actor, "case.note", ref,
                                      detail, error);
        }
    }
  store_keys_data_key_free (key);
  store_api_row_clear (&row);
  return store_api_end (s, ok, error) ? id : 0;
}

GPtrArray *
store_api_notes (store *s, const char *ref, const char *const *queues,
                 GError **error)
{
  g_autofree char *set = store_api_queue_set (queues);
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_api_note_free);
  guint8 *key = NULL;
  gint64 key_owner = 0;
  sqlite3_stmt *st;
  int rc;

  g_mutex_lock (&s->rlock);
  st = store_stmt (s, s->rdb,
                   "SELECT n.id, n.subject_id, s.data_key, n.text, n.author,"
                   " n.created_at FROM case_notes n"
                   " JOIN cases c ON c.id = n.case_id"
                   " JOIN subjects s ON s.id = n.subject_id"
                   " WHERE c.ref = ?1 AND instr(?2, ',' || c.queue || ',') > 0"
                   " ORDER BY n.id", error);
  if (st == NULL)
    {
      g_mutex_unlock (&s->rlock);
      g_ptr_array_unref (out);
      return NULL;
    }
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, set, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      store_api_note *n = g_new0 (store_api_note, 1);
      gint64 owner = sqlite3_column_int64 (st, 1);

      if (key == NULL || owner != key_owner)
        {
          store_keys_data_key_free (key);
          key = store_subject_key_unwrap (s, s->rdb, sqlite3_column_blob (st, 2),
                                   sqlite3_column_bytes (st, 2), owner, NULL);
          key_owner = owner;
        }
      n->id = sqlite3_column_int64 (st, 0);
      n->text = store_api_open_text (st, 3, key, "case_notes", "text", n->id,
                                     owner);
      if (n->text == NULL)
        n->text = g_strdup ("");
      n->author = store_api_dup (st, 4);
      n->created_at = sqlite3_column_int64 (st, 5);
      g_ptr_array_add (out, n);
    }
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, s->rdb, rc, "notes");
      g_clear_pointer (&out, g_ptr_array_unref);
    }
  store_stmt_release (st);
  store_keys_data_key_free (key);
  g_mutex_unlock (&s->rlock);
  return out;
}

/* ------------------------------------------------------------ replies */

/* Header text from stored values: no control characters (no header
 * injection from a citizen's Subject), at most @max bytes.  */
static char *
store_api_header_clean (const char *s, gsize max)
{
  GString *g = g_string_new (NULL);

  for (const char *p = s ? s : ""; *p && g->len < max; p++)
    g_string_append_c (g, (guchar) *p < 0x20 || *p == 0x7f ? ' ' : *p);
  if (!g_utf8_validate (g->str, g->len, NULL))
    {
      char *v = g_utf8_make_valid (g->str, g->len);
      g_string_assign (g, v);
      g_free (v);
    }
  return g_string_free (g, FALSE);
}

/* RFC 2047 encoded words (B, UTF-8) for non-ASCII header text, each at
 * most 75 characters (RFC 2047 section 2), split on character boundaries. */
static void
store_api_header_append (GString *g, const char *name, const char *value)
{
  gboolean ascii = TRUE;

  for (const char *p = value; *p; p++)
    ascii &= (guchar) *p < 0x80;
  g_string_append_printf (g, "%s: ", name);
  if (ascii)
    {
      g_string_append_printf (g, "%s\r\n", value);
      return;
    }
  for (const char *p = value; *p;)
    {
      const char *end = p;
      while (*end && end - p < 40)
        end = g_utf8_next_char (end);
      {
        g_autofree char *b64 = g_base64_encode ((const guchar *) p, end - p);
        g_string_append_printf (g, "%s=?UTF-8?B?%s?=", p == value ? ""
                                                                  : "\r\n ",
                                b64);
      }
      p = end;
    }
  g_string_append (g, "\r\n");
}

static GBytes *
store_api_reply_build (const char *from, const char *to, const char *subject,
                       const char *in_reply_to, const char *message_id,
                       const char *text, gint64 now)
{
  GString *g = g_string_new (NULL);
  g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (now
                                                           / G_USEC_PER_SEC);
  g_autofree char *date = g_date_time_format (t, "%a, %d %b %Y %H:%M:%S +0000");
  g_autofree char *b64 = g_base64_encode ((const guchar *) text,
                                          strlen (text));
  gsize n = strlen (b64);

  g_string_append_printf (g, "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\n", date,
                          from, to);
  store_api_header_append (g, "Subject", subject);
  g_string_append_printf (g, "Message-ID: <%s>\r\n", message_id);
  if (in_reply_to && *in_reply_to)
    g_string_append_printf (g, "In-Reply-To: <%s>\r\nReferences: <%s>\r\n",
                            in_reply_to, in_reply_to);
  g_string_append (g, "Auto-Submitted: no\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n");
  for (gsize i = 0; i < n; i += 76)
    {
      g_string_append_len (g, b64 + i, MIN (76, n - i));
      g_string_append (g, "\r\n");
    }
  return g_string_free_to_bytes (g);
}

/* An address fit for a header we write: printable ASCII, one '@', no
 * spaces, brackets or quotes.  */
static gboolean
store_api_addr_ok (const char *a)
{
  const char *at = a ? strchr (a, '@') : NULL;

  if (at == NULL || at == a || at[1] == '\0' || strchr (at + 1, '@')
      || strlen (a) > 254)
    return FALSE;
  for (const char *p = a; *p; p++)
    if ((guchar) *p <= 0x20 || (guchar) *p >= 0x7f || strchr ("<>\"(),;:\\[]",
                                                              *p))
      return FALSE;
  return TRUE;
}

gint64
store_api_reply_add (store *s, const char *ref, const char *const *queues,
                     const char *text, const char *fallback_from,
                     const char *hostname, const char *actor, GError **error)
{
  store_api_row row;
  g_autofree char *to = NULL;
  g_autofree char *first_subject = NULL;
  g_autofree char *first_mid = NULL;
  g_autofree char *from = NULL;
  g_autofree char *subject = NULL;
  g_autofree char *mid = NULL;
  g_autofree char *detail = NULL;
  g_autoptr (GBytes) raw = NULL;
  g_autoptr (store_envelope) env = NULL;
  guint8 *key;
  guint8 content[32], mid_index[32], rnd[12];
  char rnd_hex[25];
  sqlite3_stmt *st;
  gint64 id = -1, now = g_get_real_time ();
  gboolean ok = FALSE;

  g_return_val_if_fail (strlen (text) <= STORE_API_TEXT_MAX, 0);
  if (!store_api_begin (s, ref, queues, &row, error))
    return 0;
  key = store_api_data_key (s, row.subject_id, &to, error);
  if (key == NULL)
    goto out;
  if (!store_api_addr_ok (to))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "the requester's address cannot take a reply");
      goto out;
    }
  /* The first message of the requester: its Subject, Message-ID and the
   * mailbox it came to (our From).  */
  st = store_stmt (s, s->rdb, "SELECT id, header_subject, header_message_id,"
                              " envelope FROM messages WHERE case_id = ?1"
                              " AND subject_id = ?2 AND direction = 'in'"
                              " ORDER BY id LIMIT 1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, row.id);
  sqlite3_bind_int64 (st, 2, row.subject_id);
  if (sqlite3_step (st) == SQLITE_ROW)
    {
      gint64 m = sqlite3_column_int64 (st, 0);
      g_autoptr (GBytes) envb = NULL;

      first_subject = store_api_open_text (st, 1, key, "messages",
                                           "header_subject", m,
                                           row.subject_id);
      first_mid = store_api_open_text (st, 2, key, "messages",
                                       "header_message_id", m,
                                       row.subject_id);
      envb = store_unseal (key, "messages", "envelope", m, row.subject_id,
                           sqlite3_column_blob (st, 3),
                           sqlite3_column_bytes (st, 3), NULL);
      if (envb != NULL)
        {
          g_autoptr (store_envelope) in_env = store_envelope_unpack (envb,
                                                                     NULL);
          if (in_env && in_env->rcpts->len > 0
              && store_api_addr_ok (in_env->rcpts->pdata[0]))
            from = g_strdup (in_env->rcpts->pdata[0]);
        }
    }
  store_stmt_release (st);
  if (from == NULL)
    from = g_strdup (fallback_from);
  if (!store_api_addr_ok (from))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "no mailbox to reply from");
      goto out;
    }
  {
    g_autofree char *clean = store_api_header_clean (first_subject, 200);
    g_autofree char *mid_clean = store_api_header_clean (first_mid, 250);
    const char *base = clean;

    if (g_ascii_strncasecmp (base, "re:", 3) == 0)
      base = g_strchug ((char *) base + 3);
    subject = strstr (base, ref) ? g_strdup_printf ("Re: %s", base)
                                 : g_strdup_printf ("Re: %s [%s]", base, ref);
    /* a Message-ID we repeat must look like one */
    g_clear_pointer (&first_mid, g_free);
    if (*mid_clean && strpbrk (mid_clean, " <>") == NULL
        && strchr (mid_clean, '@') != NULL)
      first_mid = g_steal_pointer (&mid_clean);
  }
  randombytes_buf (rnd, sizeof rnd);
  sodium_bin2hex (rnd_hex, sizeof rnd_hex, rnd, sizeof rnd);
  mid = g_strdup_printf ("%s.%s@%s", ref, rnd_hex,
                         hostname && *hostname ? hostname : "intake.invalid");
  raw = store_api_reply_build (from, to, subject, first_mid, mid, text, now);

  env = store_envelope_new ();
  env->source = g_strdup ("api");
  env->client_addr = g_strdup ("");
  env->helo = g_strdup ("");
  env->mail_from = g_strdup (from);
  g_ptr_array_add (env->rcpts, g_strdup (to));
  env->received_at = now;

  id = store_next_id (s, s->rdb, "messages", error);
  if (id < 0)
    goto out;
  {
    gsize raw_len, env_len;
    const void *rawp = g_bytes_get_data (raw, &raw_len);
    g_autoptr (GBytes) envp = store_envelope_pack (env);
    const void *ep = g_bytes_get_data (envp, &env_len);
#define SEAL(col, p, n) \
  store_seal (key, "messages", col, id, row.subject_id, p, n)
    g_autoptr (GBytes) env_ct = SEAL ("envelope", ep, env_len);
    g_autoptr (GBytes) raw_ct = SEAL ("raw", rawp, raw_len);
    g_autoptr (GBytes) from_ct = SEAL ("header_from", from, strlen (from));
    g_autoptr (GBytes) subj_ct = SEAL ("header_subject", subject,
                                       strlen (subject));
    g_autoptr (GBytes) mid_ct = SEAL ("header_message_id", mid, strlen (mid));
    g_autoptr (GBytes) text_ct = SEAL ("text", text, strlen (text));
#undef SEAL

    store_keys_blind (s->keys, "message-content", rawp, raw_len, content);
    store_keys_blind (s->keys, "message-id", mid, strlen (mid), mid_index);
    st = store_stmt (s, s->rdb, "INSERT INTO messages (id, case_id,"
                                " subject_id, direction, source, received_at,"
                                " size, content_index, message_id_index,"
                                " envelope, raw, header_from, header_subject,"
                                " header_message_id, text, thread_by)"
                                " VALUES (?1, ?2, ?3, 'out', 'api', ?4, ?5,"
                                " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
                                " 'reply')", error);
    if (st == NULL)
      goto out;
    sqlite3_bind_int64 (st, 1, id);
    sqlite3_bind_int64 (st, 2, row.id);
    sqlite3_bind_int64 (st, 3, row.subject_id);
    sqlite3_bind_int64 (st, 4, now);
    sqlite3_bind_int64 (st, 5, (gint64) raw_len);
    sqlite3_bind_blob (st, 6, content, 32, SQLITE_STATIC);
    sqlite3_bind_blob (st, 7, mid_index, 32, SQLITE_STATIC);
    store_api_bind_bytes (st, 8, env_ct);
    store_api_bind_bytes (st, 9, raw_ct);
    store_api_bind_bytes (st, 10, from_ct);
    store_api_bind_bytes (st, 11, subj_ct);
    store_api_bind_bytes (st, 12, mid_ct);
    store_api_bind_bytes (st, 13, text_ct);
    if (!store_api_exec (s, st, "reply", error))
      goto out;
    detail = g_strdup_printf ("message=%" G_GINT64_FORMAT " bytes=%zu", id,
                              raw_len);
  }
  /* queued for the sender (outbound/outbox.c) in the same transaction */
  {
    gint64 oid = store_next_id (s, s->rdb, "outbox", error);
    g_autoptr (GBytes) body = NULL;
    if (oid < 0)
      goto out;
    body = store_seal (key, "outbox", "body", oid, row.subject_id, text,
                       strlen (text));
    st = store_stmt (s, s->rdb, "INSERT INTO outbox (id, case_id, subject_id,"
                                " kind, body, next_at, created_at)"
                                " VALUES (?1, ?2, ?3, 'reply', ?4, ?5, ?5)",
                     error);
    if (st == NULL)
      goto out;
    sqlite3_bind_int64 (st, 1, oid);
    sqlite3_bind_int64 (st, 2, row.id);
    sqlite3_bind_int64 (st, 3, row.subject_id);
    store_api_bind_bytes (st, 4, body);
    sqlite3_bind_int64 (st, 5, now);
    if (!store_api_exec (s, st, "reply outbox", error))
      goto out;
  }
  st = store_stmt (s, s->rdb, "UPDATE cases SET updated_at = ?2 WHERE id = ?1",
                   error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, row.id);
  sqlite3_bind_int64 (st, 2, now);
  ok = store_api_exec (s, st, "reply", error)
       && store_audit_append (s, s->rdb, actor, "case.reply", ref, detail,
                              error)
       && store_webhook_case_event (s, s->rdb, row.id, STORE_WEBHOOK_UPDATED,
                                    "reply", id, NULL, error);
out:
  store_keys_data_key_free (key);
  store_api_row_clear (&row);
  return store_api_end (s, ok, error) ? id : 0;
}
