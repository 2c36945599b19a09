/*
 * http_api.c - the department queue API (/api/v1) and `intakectl tokens`.
 *
 * Owns: the routing of /api/v1 requests, bearer-token authentication, a
 * per-address counter of authentication failures, the JSON of requests
 * and replies.  Authorisation itself is in store/store_api.c: every case
 * query there names the token's queues, so a case of another department
 * is "not found" (404) whatever this file does.
 * Refuses: a missing, unknown or revoked token (401), more than
 * HTTP_API_FAIL_MAX failures a minute from one address (429), fields a
 * request may not set (422, naming the field: no mass assignment), admin
 * functions (403: tokens and rules are `intakectl` only).
 * Logs: event names, token names and case references; never a token,
 * a body, an address or a name.
 */
#define G_LOG_DOMAIN "intake-http"

#include "intake/http_api.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <json-glib/json-glib.h>
#include <sodium.h>

#include "parser/parser.h"
#include "router/rules.h"
#include "store/store_api.h"

/* A presented token: "itk_" and 43 base64url characters; anything much
 * longer is not ours and is not hashed.  */
#define HTTP_API_TOKEN_PREFIX "itk_"
#define HTTP_API_TOKEN_BYTES 32
/* A new token expires after this many days unless --expires says.  */
#define HTTP_API_TOKEN_DAYS 365
#define HTTP_API_TOKEN_MAX 128
/* Path segments: queue names, references, ids.  */
#define HTTP_API_SEGMENT_MAX 64
#define HTTP_API_SEGMENTS_MAX 6

typedef struct {
  http_server *h;
  GHashTable *fails;         /* client address -> http_api_fails * */
} http_api;

typedef struct {
  gint64 window_start;       /* monotonic seconds */
  guint count;
} http_api_fails;

/* One request, once authenticated.  */
typedef struct {
  http_api *api;
  SoupServerMessage *msg;
  store *st;
  store_api_token *token;
  const char *const *queues;
  char *actor;               /* "api:NAME" */
} http_api_req;

/* ---------------------------------------------------- failure counter */

/* Whether @addr is over the limit at @now (seconds).  Pure but for the
 * table.  */
static gboolean
http_api_limited (GHashTable *fails, const char *addr, gint64 now)
{
  http_api_fails *f = g_hash_table_lookup (fails, addr);

  if (f == NULL || now - f->window_start >= HTTP_API_FAIL_WINDOW_S)
    return FALSE;
  return f->count > HTTP_API_FAIL_MAX;
}

static void
http_api_failed (GHashTable *fails, const char *addr, gint64 now)
{
  http_api_fails *f = g_hash_table_lookup (fails, addr);

  if (g_hash_table_size (fails) > 100000)
    g_hash_table_remove_all (fails);       /* bounded memory */
  if (f == NULL)
    {
      f = g_new0 (http_api_fails, 1);
      g_hash_table_insert (fails, g_strdup (addr), f);
    }
  if (now - f->window_start >= HTTP_API_FAIL_WINDOW_S)
    {
      f->window_start = now;
      f->count = 0;
    }
  f->count++;
}

/* ------------------------------------------------------------ replies */

static char *
http_api_time (gint64 us)
{
  g_autoptr (GDateTime) t = NULL;

  if (us <= 0)
    return NULL;
  t = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
  return g_date_time_format (t, "%Y-%m-%dT%H:%M:%SZ");
}

static void
http_api_member_str (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

static void
http_api_member_time (JsonBuilder *b, const char *name, gint64 us)
{
  g_autofree char *t = http_api_time (us);

  http_api_member_str (b, name, t);
}

static void
http_api_member_int (JsonBuilder *b, const char *name, gint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, value);
}

static void
http_api_reply_builder (SoupServerMessage *msg, guint status, JsonBuilder *b)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = NULL;

  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, NULL);
  http_reply_json (msg, status, text);
}

/* 422 naming the field: {"error": "...", "field": "..."}.  */
static void
http_api_reply_field (SoupServerMessage *msg, const char *field,
                      const char *problem)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  http_api_member_str (b, "error", problem);
  http_api_member_str (b, "field", field);
  json_builder_end_object (b);
  http_api_reply_builder (msg, SOUP_STATUS_UNPROCESSABLE_ENTITY, b);
}

/* A store error as a reply: not found and not yours are the same 404.  */
static void
http_api_reply_store_error (SoupServerMessage *msg, const GError *error,
                            const char *what)
{
  if (g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND))
    http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "no such case");
  else if (g_error_matches (error, STORE_ERROR, STORE_ERROR_STATE))
    http_reply_error (msg, SOUP_STATUS_CONFLICT, error->message);
  else
    {
      g_warning ("event=api-store-failed what=%s error=%s", what,
                 error ? error->message : "?");
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Retry-After",
          "30");
      http_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                        "the case store is busy; try again");
    }
}

/* Audit a read of personal data; a read that cannot be audited is not
 * shown (503).  @detail: ids and counts only.  */
static gboolean
http_api_audit_read (http_api_req *r, const char *action, const char *object,
                     const char *detail)
{
  g_autoptr (GError) error = NULL;

  if (store_audit_record (r->st, r->actor, action, object, detail, "ok",
                          &error))
    return TRUE;
  http_api_reply_store_error (r->msg, error, "audit");
  return FALSE;
}

/* ------------------------------------------------------ authentication */

/* (transfer full) (nullable) The token of "Authorization: Bearer ...".  */
static char *
http_api_bearer (SoupServerMessage *msg)
{
  const char *auth = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Authorization");
  const char *t;
  gsize n;

  if (auth == NULL || g_ascii_strncasecmp (auth, "Bearer ", 7) != 0)
    return NULL;
  t = auth + 7;
  while (*t == ' ')
    t++;
  n = strlen (t);
  while (n > 0 && t[n - 1] == ' ')
    n--;
  if (n == 0 || n > HTTP_API_TOKEN_MAX)
    return NULL;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isalnum (t[i]) && t[i] != '-' && t[i] != '_')
      return NULL;
  return g_strndup (t, n);
}

/* (transfer full) (nullable) The token in force, or NULL after the 401.  */
static store_api_token *
http_api_authenticate (http_api *api, SoupServerMessage *msg,
                       const char *addr)
{
  store *st = http_server_store (api->h);
  g_autofree char *bearer = http_api_bearer (msg);
  g_autofree char *revoked = NULL;
  g_autoptr (GError) error = NULL;
  store_api_token *t = NULL;
  guint8 hash[32];

  if (bearer != NULL)
    {
      store_api_token_hash (http_server_keys (api->h), bearer,
                            strlen (bearer), hash);
      sodium_memzero (bearer, strlen (bearer));
      t = store_api_token_lookup (st, hash, &revoked, &error);
      if (t == NULL && !g_error_matches (error, STORE_ERROR,
                                         STORE_ERROR_NOT_FOUND)
          && !g_error_matches (error, STORE_ERROR, STORE_ERROR_STATE)
          && !g_error_matches (error, STORE_ERROR, STORE_ERROR_EXPIRED))
        {
          http_api_reply_store_error (msg, error, "token");
          return NULL;
        }
    }
  if (t != NULL)
    return t;
  http_api_failed (api->fails, addr, g_get_monotonic_time ()
                                         / G_USEC_PER_SEC);
  if (bearer != NULL)
    {
      /* a token that was presented and refused is an event; a request
       * with none is not (scanners) */
      const char *why = revoked == NULL ? "unknown"
                        : g_error_matches (error, STORE_ERROR,
                                           STORE_ERROR_EXPIRED)
                            ? "expired" : "revoked";
      g_autofree char *object = revoked ? g_strconcat ("token:", revoked,
                                                       NULL)
                                        : g_strdup ("token:unknown");
      g_autofree char *detail = g_strconcat ("reason=", why, NULL);
      store_audit_record (st, "api:-", "api.auth", object, detail, "denied",
                          NULL);
      g_message ("event=api-auth-refused reason=%s", why);
    }
  soup_message_headers_replace (soup_server_message_get_response_headers (
                                    msg),
                                "WWW-Authenticate", "Bearer realm=\"intake\"");
  http_reply_error (msg, SOUP_STATUS_UNAUTHORIZED,
                    bearer ? "the token is not valid (unknown, revoked or"
                             " expired)"
                           : "send a token: Authorization: Bearer itk_...");
  return NULL;
}

/* ------------------------------------------------------- request bits */

static gboolean
http_api_segment_ok (const char *s)
{
  gsize n = strlen (s);

  if (n == 0 || n > HTTP_API_SEGMENT_MAX)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isalnum (s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
      return FALSE;
  return TRUE;
}

/* (transfer full) (nullable) The JSON object of a POST body; NULL after
 * replying 400/415.  An empty body is an empty object.  */
static JsonObject *
http_api_body (SoupServerMessage *msg)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  const char *ct = soup_message_headers_get_content_type (
      soup_server_message_get_request_headers (msg), NULL);
  const char *why = NULL;
  JsonObject *o;
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  if (len == 0)
    return json_object_new ();
  if (ct == NULL || strcmp (ct, "application/json") != 0)
    {
      http_reply_error (msg, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE,
                        "send JSON (Content-Type: application/json)");
      return NULL;
    }
  o = http_json_object (data, len, &why);
  if (o == NULL)
    http_reply_error (msg, SOUP_STATUS_BAD_REQUEST, why);
  return o;
}

/* Every member of @o must be one of @allowed (NULL-terminated) and a
 * string.  Anything else (queue in /status, id, subject_id, claimed_by
 * ...) is refused by name: mass assignment (SECURITY-TESTS 101).  */
static gboolean
http_api_fields_ok (SoupServerMessage *msg, JsonObject *o,
                    const char *const *allowed)
{
  g_autoptr (GList) members = json_object_get_members (o);

  for (GList *l = members; l; l = l->next)
    {
      const char *name = l->data;
      JsonNode *n = json_object_get_member (o, name);
      gboolean known = FALSE;

      for (guint i = 0; allowed[i]; i++)
        known |= strcmp (allowed[i], name) == 0;
      if (!known)
        {
          g_autofree char *clean = g_strndup (name, 40);
          g_autofree char *problem = NULL;
          for (char *p = clean; *p; p++)
            if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-')
              *p = '?';
          problem = g_strdup_printf ("the field '%s' cannot be set here",
                                     clean);
          http_api_reply_field (msg, clean, problem);
          return FALSE;
        }
      if (!JSON_NODE_HOLDS_VALUE (n)
          || json_node_get_value_type (n) != G_TYPE_STRING)
        {
          http_api_reply_field (msg, name, "must be a string");
          return FALSE;
        }
    }
  return TRUE;
}

static const char *
http_api_field (JsonObject *o, const char *name)
{
  JsonNode *n = json_object_get_member (o, name);

  return n ? json_node_get_string (n) : NULL;
}

static void
http_api_special_names (JsonBuilder *b, guint special)
{
  json_builder_begin_array (b);
  for (guint bit = 0; bit < 32; bit++)
    if (special & (1u << bit))
      {
        const char *name = parser_special_name ((parser_special) (1u << bit));
        json_builder_add_string_value (b, name ? name : "unknown");
      }
  json_builder_end_array (b);
}

/* ------------------------------------------------------------- reads */

static void
http_api_case_summary (JsonBuilder *b, const store_case_view *v)
{
  http_api_member_str (b, "ref", v->ref);
  http_api_member_str (b, "kind", v->kind);
  http_api_member_str (b, "queue", v->queue);
  http_api_member_str (b, "status", v->status);
  http_api_member_str (b, "priority", v->priority);
  http_api_member_time (b, "created", v->created_at);
  http_api_member_time (b, "updated", v->updated_at);
  http_api_member_time (b, "due", v->due_at);
  http_api_member_time (b, "closed", v->closed_at);
  http_api_member_int (b, "messages", v->n_messages);
}

static void
http_api_list (http_api_req *r, const char *queue)
{
  const char *q = g_uri_get_query (soup_server_message_get_uri (r->msg));
  g_autoptr (GHashTable) params = q ? soup_form_decode (q) : NULL;
  store_case_filter f = { .queue = queue, .limit = HTTP_API_LIST_DEFAULT };
  g_autoptr (GPtrArray) cases = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autofree char *object = g_strconcat ("queue:", queue, NULL);
  g_autofree char *detail = NULL;
  const char *v;

  if (params && (v = g_hash_table_lookup (params, "status")) && *v)
    {
      if (!store_api_name_valid (v))
        { http_api_reply_field (r->msg, "status", "not a status"); return; }
      f.status = v;
    }
  if (params && (v = g_hash_table_lookup (params, "kind")) && *v)
    {
      if (!store_api_name_valid (v))
        { http_api_reply_field (r->msg, "kind", "not a kind"); return; }
      f.kind = v;
    }
  if (params && (v = g_hash_table_lookup (params, "tag")) && *v)
    {
      if (!store_api_name_valid (v))
        { http_api_reply_field (r->msg, "tag", "not a tag"); return; }
      f.tag = v;
    }
  if (params && (v = g_hash_table_lookup (params, "limit")) && *v)
    {
      guint64 n;
      if (!g_ascii_string_to_unsigned (v, 10, 1, HTTP_API_LIST_MAX, &n, NULL))
        { http_api_reply_field (r->msg, "limit",
                                     "a number from 1 to 500"); return; }
      f.limit = n;
    }
  if (params && (v = g_hash_table_lookup (params, "before")) && *v)
    {
      guint64 n;
      if (!g_ascii_string_to_unsigned (v, 10, 1, G_MAXINT64, &n, NULL))
        { http_api_reply_field (r->msg, "before",
                                     "the \"next\" value of the last page"); return; }
      f.before_id = n;
    }
  cases = store_api_case_find (r->st, r->queues, &f, &error);
  if (cases == NULL)
    {
      /* a queue the token does not hold: not found, like a missing one */
      if (g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND))
        http_reply_error (r->msg, SOUP_STATUS_NOT_FOUND, "no such queue");
      else
        http_api_reply_store_error (r->msg, error, "list");
      return;
    }
  detail = g_strdup_printf ("count=%u", cases->len);
  if (!http_api_audit_read (r, "cases.list", object, detail))
    return;
  json_builder_begin_object (b);
  http_api_member_str (b, "queue", queue);
  json_builder_set_member_name (b, "cases");
  json_builder_begin_array (b);
  for (guint i = 0; i < cases->len; i++)
    {
      const store_case_view *c = cases->pdata[i];
      json_builder_begin_object (b);
      http_api_case_summary (b, c);
      http_api_member_str (b, "subject", c->subject ? c->subject : "");
      http_api_member_str (b, "from", c->from_addr ? c->from_addr : "");
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "next");
  if (cases->len > 0 && cases->len == f.limit)
    {
      g_autofree char *next = g_strdup_printf (
          "%" G_GINT64_FORMAT,
          ((store_case_view *) cases->pdata[cases->len - 1])->id);
      json_builder_add_string_value (b, next);
    }
  else
    json_builder_add_null_value (b);
  json_builder_end_object (b);
  http_api_reply_builder (r->msg, SOUP_STATUS_OK, b);
}

static const char http_api_withheld[] =
    "[withheld: special-category data; this token has no special grant]";

static void
http_api_case (http_api_req *r, const char *ref)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) messages = NULL;
  g_autoptr (GPtrArray) links = NULL;
  g_autoptr (GPtrArray) participants = NULL;
  g_autoptr (GPtrArray) atts = NULL;
  g_autoptr (GPtrArray) notes = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autofree char *claimed_by = NULL;
  g_autofree char *detail = NULL;
  store_case_view *v;
  guint withheld = 0;
  gboolean first_special;

  v = store_api_case_get (r->st, ref, r->queues, &messages, &claimed_by,
                          &error);
  if (v == NULL)
    { http_api_reply_store_error (r->msg, error, "case"); return; }
  if (!store_case_details (r->st, v->id, &links, &participants, &atts,
                           &error)
      || (notes = store_api_notes (r->st, ref, r->queues, &error)) == NULL)
    {
      store_case_view_free (v);
      { http_api_reply_store_error (r->msg, error, "case details"); return; }
    }
  for (guint i = 0; i < messages->len; i++)
    withheld += ((store_message_view *) messages->pdata[i])->special != 0
                && !r->token->special;
  detail = g_strdup_printf ("messages=%u attachments=%u notes=%u"
                            " special=%s", messages->len, atts->len,
                            notes->len,
                            withheld ? "withheld"
                                     : r->token->special ? "granted"
                                                         : "none");
  if (!http_api_audit_read (r, "case.read", ref, detail))
    {
      store_case_view_free (v);
      return;
    }
  first_special = messages->len > 0
                  && ((store_message_view *) messages->pdata[0])->special != 0
                  && !r->token->special;

  json_builder_begin_object (b);
  http_api_case_summary (b, v);
  http_api_member_str (b, "claimed_by", claimed_by);
  http_api_member_str (b, "subject",
                       first_special ? http_api_withheld
                                     : v->subject ? v->subject : "");
  http_api_member_str (b, "from", v->from_addr ? v->from_addr : "");
  http_api_member_str (b, "from_name", v->from_name);

  json_builder_set_member_name (b, "message_list");
  json_builder_begin_array (b);
  for (guint i = 0; i < messages->len; i++)
    {
      const store_message_view *m = messages->pdata[i];
      gboolean hide = m->special != 0 && !r->token->special;

      json_builder_begin_object (b);
      http_api_member_int (b, "id", m->id);
      http_api_member_str (b, "direction", m->direction);
      http_api_member_str (b, "source", m->source);
      http_api_member_time (b, "received", m->received_at);
      http_api_member_str (b, "from", m->from_addr ? m->from_addr : "");
      http_api_member_str (b, "subject", hide ? http_api_withheld
                                              : m->subject ? m->subject : "");
      http_api_member_str (b, "thread_by", m->thread_by);
      json_builder_set_member_name (b, "auto_reply");
      json_builder_add_boolean_value (b, m->auto_reply);
      http_api_member_int (b, "anomalies", m->anomalies);
      json_builder_set_member_name (b, "special_withheld");
      json_builder_add_boolean_value (b, hide);
      json_builder_set_member_name (b, "special");
      if (hide)
        json_builder_add_null_value (b);
      else
        http_api_special_names (b, m->special);
      json_builder_set_member_name (b, "text");
      if (hide)
        json_builder_add_string_value (b, http_api_withheld);
      else
        {
          g_autoptr (GError) terr = NULL;
          g_autofree char *text = store_message_text (r->st, m->id, &terr);
          json_builder_add_string_value (b, text ? text : "");
        }
      json_builder_set_member_name (b, "attachments");
      json_builder_begin_array (b);
      for (guint j = 0; j < atts->len; j++)
        {
          const store_attachment_view *a = atts->pdata[j];
          g_autofree char *href = NULL;

          if (a->message_id != m->id)
            continue;
          href = g_strdup_printf ("/api/v1/cases/%s/attachments/%"
                                  G_GINT64_FORMAT "/%u", v->ref,
                                  a->message_id, a->position);
          json_builder_begin_object (b);
          http_api_member_int (b, "position", a->position);
          http_api_member_str (b, "name", hide ? http_api_withheld : a->name);
          http_api_member_str (b, "declared_type", a->declared_type);
          http_api_member_str (b, "detected_type", a->detected_type);
          http_api_member_str (b, "sha256", a->sha256);
          http_api_member_int (b, "size", a->size);
          http_api_member_int (b, "flags", a->flags);
          http_api_member_str (b, "download", hide ? NULL : href);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);

  json_builder_set_member_name (b, "participants");
  json_builder_begin_array (b);
  for (guint i = 0; i < participants->len; i++)
    {
      const store_participant_view *p = participants->pdata[i];
      json_builder_begin_object (b);
      http_api_member_str (b, "role", p->role);
      http_api_member_str (b, "address", p->addr ? p->addr : "");
      http_api_member_str (b, "name", p->name);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);

  /* a linked case may be another department's: only its reference */
  json_builder_set_member_name (b, "links");
  json_builder_begin_array (b);
  for (guint i = 0; i < links->len; i++)
    {
      const store_case_link *l = links->pdata[i];
      json_builder_begin_object (b);
      http_api_member_str (b, "ref", l->ref);
      http_api_member_str (b, "reason", l->reason);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);

  json_builder_set_member_name (b, "notes");
  json_builder_begin_array (b);
  for (guint i = 0; i < notes->len; i++)
    {
      const store_api_note *n = notes->pdata[i];
      json_builder_begin_object (b);
      http_api_member_int (b, "id", n->id);
      http_api_member_str (b, "author", n->author);
      http_api_member_time (b, "created", n->created_at);
      http_api_member_str (b, "text", n->text);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  store_case_view_free (v);
  http_api_reply_builder (r->msg, SOUP_STATUS_OK, b);
}

/* Content-Disposition for a download: an ASCII fallback name (no quotes,
 * backslashes, controls, slashes or non-ASCII) and RFC 5987 filename*
 * for the UTF-8 name (RFC 6266 section 4.3).  Never inline.  */
static char *
http_api_disposition (const char *name)
{
  GString *ascii = g_string_new (NULL);
  GString *ext = g_string_new (NULL);
  const char *n = name && *name ? name : "attachment";

  for (const char *p = n; *p && ascii->len < 150; p++)
    {
      guchar c = *p;
      g_string_append_c (ascii, c >= 0x20 && c < 0x7f
                                    && !strchr ("\"\\/;%", c) ? c : '_');
    }
  for (const char *p = n; *p && ext->len < 600; p++)
    {
      guchar c = *p;
      if (g_ascii_isalnum (c) || strchr ("!#$&+-.^_`|~", c))
        g_string_append_c (ext, c);
      else
        g_string_append_printf (ext, "%%%02X", c);
    }
  {
    char *out = g_strdup_printf ("attachment; filename=\"%s\";"
                                 " filename*=UTF-8''%s", ascii->str,
                                 ext->str);
    g_string_free (ascii, TRUE);
    g_string_free (ext, TRUE);
    return out;
  }
}

static void
http_api_attachment (http_api_req *r, const char *ref, const char *mid,
                     const char *pos)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) content = NULL;
  g_autofree char *detail = NULL;
  g_autofree char *disp = NULL;
  store_attachment_view *meta = NULL;
  guint64 message_id, position;
  SoupMessageHeaders *rh;
  gsize len;
  gconstpointer data;

  if (!g_ascii_string_to_unsigned (mid, 10, 1, G_MAXINT64, &message_id, NULL)
      || !g_ascii_string_to_unsigned (pos, 10, 0, G_MAXUINT32, &position,
                                      NULL))
    { http_reply_error (r->msg, SOUP_STATUS_NOT_FOUND,
                             "no such attachment"); return; }
  content = store_api_attachment (r->st, ref, r->queues, message_id,
                                  position, r->token->special, &meta, &error);
  if (content == NULL)
    {
      if (g_error_matches (error, STORE_ERROR, STORE_ERROR_STATE))
        http_reply_error (r->msg, SOUP_STATUS_FORBIDDEN, error->message);
      else if (g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND))
        http_reply_error (r->msg, SOUP_STATUS_NOT_FOUND,
                          "no such attachment");
      else
        http_api_reply_store_error (r->msg, error, "attachment");
      return;
    }
  data = g_bytes_get_data (content, &len);
  detail = g_strdup_printf ("message=%" G_GUINT64_FORMAT " position=%"
                            G_GUINT64_FORMAT " bytes=%zu", message_id,
                            position, len);
  if (!http_api_audit_read (r, "attachment.read", ref, detail))
    {
      store_attachment_view_free (meta);
      return;
    }
  disp = http_api_disposition (meta->name);
  store_attachment_view_free (meta);
  rh = soup_server_message_get_response_headers (r->msg);
  soup_message_headers_replace (rh, "Content-Disposition", disp);
  soup_message_headers_replace (rh, "X-Content-Type-Options", "nosniff");
  soup_message_headers_replace (rh, "Cache-Control", "no-store");
  soup_message_headers_replace (rh, "Content-Security-Policy",
                                "default-src 'none'; sandbox");
  soup_server_message_set_status (r->msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (r->msg, "application/octet-stream",
                                    SOUP_MEMORY_COPY, data, len);
}

/* ----------------------------------------------------------- changes */

static void
http_api_claim (http_api_req *r, const char *ref, JsonObject *o)
{
  static const char *const allowed[] = { NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();

  if (!http_api_fields_ok (r->msg, o, allowed))
    return;
  if (!store_api_case_claim (r->st, ref, r->queues, r->token->name, r->actor,
                             &error))
    { http_api_reply_store_error (r->msg, error, "claim"); return; }
  json_builder_begin_object (b);
  http_api_member_str (b, "ref", ref);
  http_api_member_str (b, "claimed_by", r->token->name);
  json_builder_end_object (b);
  http_api_reply_builder (r->msg, SOUP_STATUS_OK, b);
}

static void
http_api_status (http_api_req *r, const char *ref, JsonObject *o)
{
  static const char *const allowed[] = { "status", NULL };
  static const char *const statuses[] = { "new", "assigned", "waiting",
                                          "resolved", "closed", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  const char *to;

  if (!http_api_fields_ok (r->msg, o, allowed))
    return;
  to = http_api_field (o, "status");
  if (to == NULL || !g_strv_contains (statuses, to))
    { http_api_reply_field (r->msg, "status",
                                 "one of new, assigned, waiting, resolved,"
                                 " closed"); return; }
  if (!store_api_case_status (r->st, ref, r->queues, to, r->actor, &error))
    { http_api_reply_store_error (r->msg, error, "status"); return; }
  json_builder_begin_object (b);
  http_api_member_str (b, "ref", ref);
  http_api_member_str (b, "status", to);
  json_builder_end_object (b);
  http_api_reply_builder (r->msg, SOUP_STATUS_OK, b);
}

/* Text a person typed: present, UTF-8, not too long.  */
static const char *
http_api_text (http_api_req *r, JsonObject *o)
{
  const char *text = http_api_field (o, "text");

  if (text == NULL || *text == '\0')
    http_api_reply_field (r->msg, "text", "required");
  else if (strlen (text) > STORE_API_TEXT_MAX)
    http_api_reply_field (r->msg, "text", "at most 65536 bytes");
  else
    return text;
  return NULL;
}

static void
http_api_note (http_api_req *r, const char *ref, JsonObject *o)
{
  static const char *const allowed[] = { "text", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  const char *text;
  gint64 id;

  if (!http_api_fields_ok (r->msg, o, allowed)
      || (text = http_api_text (r, o)) == NULL)
    return;
  id = store_api_note_add (r->st, ref, r->queues, r->token->name, text,
                           r->actor, &error);
  if (id == 0)
    { http_api_reply_store_error (r->msg, error, "note"); return; }
  json_builder_begin_object (b);
  http_api_member_str (b, "ref", ref);
  http_api_member_int (b, "note", id);
  json_builder_end_object (b);
  http_api_reply_builder (r->msg, SOUP_STATUS_CREATED, b);
}

static guint
http_api_words (const char *s)
{
  guint n = 0;
  gboolean in = FALSE;

  for (; s && *s; s++)
    {
      gboolean space = g_ascii_isspace (*s);
      n += !space && !in;
      in = !space;
    }
  return n;
}

static void
http_api_reroute (http_api_req *r, const char *ref, JsonObject *o)
{
  static const char *const allowed[] = { "queue", "kind", "reason", NULL };
  intake_config *cfg = http_server_config (r->api->h);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autofree char *code = NULL;
  const char *queue, *kind, *reason;

  if (!http_api_fields_ok (r->msg, o, allowed))
    return;
  queue = http_api_field (o, "queue");
  kind = http_api_field (o, "kind");
  reason = http_api_field (o, "reason");
  if (queue == NULL && kind == NULL)
    { http_api_reply_field (r->msg, "queue",
                                 "give a queue and/or a kind"); return; }
  if (queue != NULL)
    {
      g_autoptr (rules) rl = NULL;
      if (!store_api_name_valid (queue))
        { http_api_reply_field (r->msg, "queue", "not a queue name"); return; }
      if (cfg->rules != NULL)
        {
          rl = rules_load (cfg->rules, &error);
          if (rl == NULL)
            {
              g_warning ("event=api-rules-unreadable error=%s",
                         error->message);
              { http_reply_error (r->msg,
                                       SOUP_STATUS_SERVICE_UNAVAILABLE,
                                       "the routing rules cannot be read"); return; }
            }
          if (!rules_has_queue (rl, queue))
            { http_api_reply_field (r->msg, "queue",
                                         "not a queue the rules declare"); return; }
        }
    }
  if (kind != NULL && !g_strv_contains (rules_kinds, kind))
    { http_api_reply_field (r->msg, "kind", "not a kind intake knows"); return; }
  if (reason != NULL && strlen (reason) > HTTP_API_REASON_MAX)
    { http_api_reply_field (r->msg, "reason", "at most 2000 bytes"); return; }
  /* the reason is free text: only its length reaches the audit */
  code = g_strdup_printf ("reason_words=%u", http_api_words (reason));
  if (!store_api_case_reroute (r->st, ref, r->queues, queue, kind, code,
                               r->actor, &error))
    { http_api_reply_store_error (r->msg, error, "reroute"); return; }
  json_builder_begin_object (b);
  http_api_member_str (b, "ref", ref);
  http_api_member_str (b, "queue", queue);
  http_api_member_str (b, "kind", kind);
  json_builder_end_object (b);
  http_api_reply_builder (r->msg, SOUP_STATUS_OK, b);
}

static void
http_api_reply_post (http_api_req *r, const char *ref, JsonObject *o)
{
  static const char *const allowed[] = { "text", NULL };
  intake_config *cfg = http_server_config (r->api->h);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autofree char *fallback = g_strconcat ("postmaster@", cfg->hostname,
                                           NULL);
  const char *text;
  gint64 id;

  if (!http_api_fields_ok (r->msg, o, allowed)
      || (text = http_api_text (r, o)) == NULL)
    return;
  id = store_api_reply_add (r->st, ref, r->queues, text, fallback,
                            cfg->hostname, r->actor, &error);
  if (id == 0)
    { http_api_reply_store_error (r->msg, error, "reply"); return; }
  json_builder_begin_object (b);
  http_api_member_str (b, "ref", ref);
  http_api_member_int (b, "message", id);
  http_api_member_str (b, "state", "queued");
  json_builder_end_object (b);
  http_api_reply_builder (r->msg, SOUP_STATUS_ACCEPTED, b);
}

/* ----------------------------------------------------------- routing */

typedef void (*http_api_post_fn) (http_api_req *r, const char *ref,
                                  JsonObject *o);

static const struct {
  const char *name;
  http_api_post_fn fn;
} http_api_posts[] = {
  { "claim", http_api_claim },
  { "status", http_api_status },
  { "notes", http_api_note },
  { "reroute", http_api_reroute },
  { "reply", http_api_reply_post },
};

/* Functions that exist only in intakectl: a department token gets 403
 * (SECURITY-TESTS 100), not a hint that they might exist here.  */
static const char *const http_api_admin[] = {
  "tokens", "rules", "admin", "keys", "audit", "export", "shred",
  "retention", "subjects", "quarantine", NULL
};

static gboolean
http_api_method (SoupServerMessage *msg, gboolean post)
{
  const char *m = soup_server_message_get_method (msg);

  if (post ? strcmp (m, "POST") == 0
           : strcmp (m, "GET") == 0 || strcmp (m, "HEAD") == 0)
    return TRUE;
  soup_message_headers_replace (soup_server_message_get_response_headers (
                                    msg),
                                "Allow", post ? "POST" : "GET, HEAD");
  http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED,
                    post ? "use POST" : "use GET");
  return FALSE;
}

static void
http_api_route (http_api_req *r, char **seg, guint n)
{
  if (n >= 1 && g_strv_contains (http_api_admin, seg[0]))
    {
      g_message ("event=api-admin-refused token=%s", r->token->name);
      http_reply_error (r->msg, SOUP_STATUS_FORBIDDEN,
                        "admin functions are only in intakectl");
      return;
    }
  if (n == 3 && strcmp (seg[0], "queues") == 0
      && strcmp (seg[2], "cases") == 0)
    {
      if (http_api_method (r->msg, FALSE))
        http_api_list (r, seg[1]);
      return;
    }
  if (n >= 2 && strcmp (seg[0], "cases") == 0 && store_ref_valid (seg[1]))
    {
      if (n == 2)
        {
          if (http_api_method (r->msg, FALSE))
            http_api_case (r, seg[1]);
          return;
        }
      if (n == 5 && strcmp (seg[2], "attachments") == 0)
        {
          if (http_api_method (r->msg, FALSE))
            http_api_attachment (r, seg[1], seg[3], seg[4]);
          return;
        }
      for (guint i = 0; n == 3 && i < G_N_ELEMENTS (http_api_posts); i++)
        if (strcmp (seg[2], http_api_posts[i].name) == 0)
          {
            JsonObject *o;
            if (!http_api_method (r->msg, TRUE)
                || (o = http_api_body (r->msg)) == NULL)
              return;
            http_api_posts[i].fn (r, seg[1], o);
            json_object_unref (o);
            return;
          }
    }
  if (n >= 2 && strcmp (seg[0], "cases") == 0)
    {
      http_reply_error (r->msg, SOUP_STATUS_NOT_FOUND, "no such case");
      return;
    }
  http_reply_error (r->msg, SOUP_STATUS_NOT_FOUND, "no such endpoint");
}

static void
http_api_handle (http_server *h, SoupServerMessage *msg, const char *path,
                 gpointer data)
{
  http_api *api = data;
  const char *addr = soup_server_message_get_remote_host (msg);
  http_api_req r = { .api = api, .msg = msg, .st = http_server_store (h) };
  g_auto (GStrv) seg = NULL;
  guint n;

  if (addr == NULL)
    addr = "?";
  if (http_api_limited (api->fails, addr,
                        g_get_monotonic_time () / G_USEC_PER_SEC))
    {
      soup_message_headers_replace (soup_server_message_get_response_headers (
                                        msg),
                                    "Retry-After", "60");
      http_reply_error (msg, 429, "too many failed authentications from this"
                                  " address; try again in a minute");
      return;
    }
  r.token = http_api_authenticate (api, msg, addr);
  if (r.token == NULL)
    return;
  /* last_used_at is coarse (a minute): no write lock on every request */
  if (g_get_real_time () - r.token->last_used_at >= 60 * G_USEC_PER_SEC)
    store_api_token_used (r.st, r.token->id, g_get_real_time ());
  r.queues = (const char *const *) r.token->queues;
  r.actor = g_strconcat ("api:", r.token->name, NULL);

  if (!g_str_has_prefix (path, "/api/v1/"))
    {
      http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "no such API version");
      goto out;
    }
  seg = g_strsplit (path + strlen ("/api/v1/"), "/",
                    HTTP_API_SEGMENTS_MAX + 1);
  n = g_strv_length (seg);
  if (n > 0 && *seg[n - 1] == '\0')
    n--;                                   /* a trailing slash */
  for (guint i = 0; i < n; i++)
    if (!http_api_segment_ok (seg[i]) || n > HTTP_API_SEGMENTS_MAX)
      {
        http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "no such endpoint");
        goto out;
      }
  http_api_route (&r, seg, n);
out:
  g_free (r.actor);
  store_api_token_free (r.token);
}

void
http_api_register (http_server *h)
{
  http_api *api = g_new0 (http_api, 1);

  api->h = h;
  api->fails = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      g_free);
  http_server_set_api (h, http_api_handle, api);
}

/* -------------------------------------------------------- intakectl */

static char *
http_api_cli_actor (void)
{
  return g_strconcat ("cli:", g_get_user_name (), NULL);
}

/* A token's expiry from --expires: "never", N days ("90" or "90d"), or
 * an ISO 8601 date ("2027-03-31": the start of that day, UTC) or date and
 * time with a zone ("2027-03-31T17:00:00Z").  Unix us, 0 for never, -1
 * (with a message) for anything else or a time not in the future.  */
static gint64
http_api_cli_expiry (const char *when, gint64 now)
{
  g_autoptr (GDateTime) t = NULL;
  guint64 days;
  gint64 at;

  if (when == NULL)
    return now + (gint64) HTTP_API_TOKEN_DAYS * 86400 * G_USEC_PER_SEC;
  if (strcmp (when, "never") == 0)
    return 0;
  {
    g_autofree char *d = g_strdup (when);
    gsize n = strlen (d);
    if (n > 1 && d[n - 1] == 'd')
      d[n - 1] = '\0';
    if (g_ascii_string_to_unsigned (d, 10, 1, 3650, &days, NULL))
      return now + (gint64) days * 86400 * G_USEC_PER_SEC;
  }
  if (strlen (when) == 10)
    {
      g_autofree char *full = g_strconcat (when, "T00:00:00Z", NULL);
      t = g_date_time_new_from_iso8601 (full, NULL);
    }
  else
    t = g_date_time_new_from_iso8601 (when, NULL);
  if (t == NULL)
    {
      fprintf (stderr, "intakectl: --expires takes never, a number of days"
               " (1-3650), a date (2027-03-31) or a date and time with a"
               " zone (2027-03-31T17:00:00Z), not '%s'\n", when);
      return -1;
    }
  at = g_date_time_to_unix (t) * G_USEC_PER_SEC;
  if (at <= now)
    {
      fprintf (stderr, "intakectl: --expires %s is not in the future\n",
               when);
      return -1;
    }
  return at;
}

static int
http_api_cli_create (intake_config *cfg, const store_keys *keys, store *st,
                     const char *name, GPtrArray *queues, gboolean special,
                     const char *expires)
{
  gint64 expires_at = http_api_cli_expiry (expires, g_get_real_time ());
  g_autoptr (GError) error = NULL;
  g_autoptr (rules) rl = NULL;
  g_autofree char *actor = http_api_cli_actor ();
  guint8 raw[HTTP_API_TOKEN_BYTES];
  char b64[sodium_base64_ENCODED_LEN (HTTP_API_TOKEN_BYTES,
                                      sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  char token[sizeof HTTP_API_TOKEN_PREFIX + sizeof b64];
  guint8 hash[32];

  if (name == NULL || queues->len == 0)
    {
      fprintf (stderr, "intakectl: tokens create needs --name N and at least"
               " one --queue Q\n");
      return EX_USAGE;
    }
  if (expires_at < 0)
    return EX_USAGE;
  if (!store_api_name_valid (name))
    {
      fprintf (stderr, "intakectl: a token name is lower-case letters,"
               " digits, '-', '_' and '.' (at most %d)\n",
               STORE_API_NAME_MAX);
      return EX_DATAERR;
    }
  if (queues->len > STORE_API_QUEUES_MAX)
    {
      fprintf (stderr, "intakectl: at most %d queues\n",
               STORE_API_QUEUES_MAX);
      return EX_DATAERR;
    }
  if (cfg->rules != NULL && (rl = rules_load (cfg->rules, &error)) == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_CONFIG;
    }
  for (guint i = 0; i < queues->len; i++)
    {
      const char *q = queues->pdata[i];
      if (!store_api_name_valid (q) || (rl && !rules_has_queue (rl, q)))
        {
          fprintf (stderr, "intakectl: unknown queue '%s'%s%s%s\n",
                   store_api_name_valid (q) ? q : "?",
                   rl ? " (not declared in " : "",
                   rl ? cfg->rules : "", rl ? ")" : "");
          return EX_DATAERR;
        }
    }
  randombytes_buf (raw, sizeof raw);
  sodium_bin2base64 (b64, sizeof b64, raw, sizeof raw,
                     sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  g_snprintf (token, sizeof token, "%s%s", HTTP_API_TOKEN_PREFIX, b64);
  store_api_token_hash (keys, token, strlen (token), hash);
  sodium_memzero (raw, sizeof raw);
  sodium_memzero (b64, sizeof b64);
  g_ptr_array_add (queues, NULL);
  if (!store_api_token_create (st, name, hash,
                               (const char *const *) queues->pdata, special,
                               expires_at, actor, &error))
    {
      sodium_memzero (token, sizeof token);
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_STATE)
                 ? EX_DATAERR : EX_IOERR;
    }
  printf ("%s\n", token);
  fflush (stdout);
  sodium_memzero (token, sizeof token);
  {
    g_autofree char *until = http_api_time (expires_at);
    fprintf (stderr, "intakectl: token %s created; it is shown only now"
             " (only its keyed hash is kept); %s%s\n", name,
             until ? "it expires " : "it never expires",
             until ? until : "");
  }
  return EX_OK;
}

static int
http_api_cli_list (store *st, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) list = store_api_token_list (st, &error);
  g_autofree char *actor = http_api_cli_actor ();

  if (list == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  store_audit_record (st, actor, "tokens.list", "tokens", "", "ok", NULL);
  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      g_autoptr (JsonGenerator) gen = json_generator_new ();
      g_autoptr (JsonNode) root = NULL;
      g_autofree char *text = NULL;

      json_builder_begin_array (b);
      for (guint i = 0; i < list->len; i++)
        {
          const store_api_token *t = list->pdata[i];
          json_builder_begin_object (b);
          http_api_member_str (b, "name", t->name);
          json_builder_set_member_name (b, "queues");
          json_builder_begin_array (b);
          for (guint j = 0; t->queues[j]; j++)
            json_builder_add_string_value (b, t->queues[j]);
          json_builder_end_array (b);
          json_builder_set_member_name (b, "special");
          json_builder_add_boolean_value (b, t->special);
          http_api_member_time (b, "created", t->created_at);
          http_api_member_time (b, "revoked", t->revoked_at);
          http_api_member_time (b, "last_used", t->last_used_at);
          http_api_member_time (b, "expires", t->expires_at);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      root = json_builder_get_root (b);
      json_generator_set_root (gen, root);
      json_generator_set_pretty (gen, TRUE);
      text = json_generator_to_data (gen, NULL);
      printf ("%s\n", text);
      return EX_OK;
    }
  printf ("%-24s %-30s %-7s %-20s %-20s %-20s %s\n", "NAME", "QUEUES",
          "SPECIAL", "CREATED", "REVOKED", "EXPIRES", "LAST USED");
  for (guint i = 0; i < list->len; i++)
    {
      const store_api_token *t = list->pdata[i];
      g_autofree char *queues = g_strjoinv (",", t->queues);
      g_autofree char *created = http_api_time (t->created_at);
      g_autofree char *revoked = http_api_time (t->revoked_at);
      g_autofree char *used = http_api_time (t->last_used_at);
      g_autofree char *expires = http_api_time (t->expires_at);
      printf ("%-24s %-30s %-7s %-20s %-20s %-20s %s\n", t->name, queues,
              t->special ? "yes" : "no", created ? created : "-",
              revoked ? revoked : "-", expires ? expires : "never",
              used ? used : "-");
    }
  return EX_OK;
}

int
http_api_tokens_cli (intake_config *cfg, const store_keys *keys, store *st,
                     GPtrArray *args)
{
  const char *sub = args->len > 1 ? args->pdata[1] : NULL;
  g_autoptr (GPtrArray) queues = g_ptr_array_new ();
  const char *name = NULL, *expires = NULL;
  gboolean special = FALSE, json = FALSE;
  GPtrArray *rest = g_ptr_array_new ();
  int rc = EX_USAGE;

  for (guint i = 2; i < args->len; i++)
    {
      const char *a = args->pdata[i];
      if (strcmp (a, "--name") == 0 && i + 1 < args->len)
        name = args->pdata[++i];
      else if (strcmp (a, "--queue") == 0 && i + 1 < args->len)
        g_ptr_array_add (queues, args->pdata[++i]);
      else if (strcmp (a, "--special-category") == 0)
        special = TRUE;
      else if (strcmp (a, "--expires") == 0 && i + 1 < args->len)
        expires = args->pdata[++i];
      else if (strcmp (a, "--json") == 0)
        json = TRUE;
      else if (a[0] == '-')
        {
          fprintf (stderr, "intakectl: tokens: unknown option %s\n", a);
          goto out;
        }
      else
        g_ptr_array_add (rest, args->pdata[i]);
    }
  if (g_strcmp0 (sub, "create") == 0 && rest->len == 0)
    rc = http_api_cli_create (cfg, keys, st, name, queues, special,
                              expires);
  else if (g_strcmp0 (sub, "list") == 0 && rest->len == 0)
    rc = http_api_cli_list (st, json);
  else if (g_strcmp0 (sub, "revoke") == 0 && rest->len == 1)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *actor = http_api_cli_actor ();
      const char *n = rest->pdata[0];

      if (!store_api_name_valid (n))
        {
          fprintf (stderr, "intakectl: not a token name\n");
          rc = EX_DATAERR;
        }
      else if (!store_api_token_revoke (st, n, actor, &error))
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          rc = g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                   ? EX_NOINPUT : EX_IOERR;
        }
      else
        {
          printf ("token %s revoked\n", n);
          rc = EX_OK;
        }
    }
  else
    fprintf (stderr, "intakectl: tokens create --name N --queue Q [--queue R]"
             " [--special-category] [--expires never|DAYS|DATE] | tokens list"
             " [--json] | tokens revoke NAME\n");
out:
  g_ptr_array_free (rest, TRUE);
  return rc;
}
