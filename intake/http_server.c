/*
 * http_server.c - the HTTP front door: forms, health, metrics, the API.
 *
 * Owns: the SoupServer, the form definitions, a per-address rate limiter
 * and counters.  Refuses: bodies over [http] max_body before they are
 * read (413), cross-site posts (403), floods from one address (429).  A
 * submission is answered 201 only after its spool row (and case
 * reference) are committed; storage trouble answers 503 with Retry-After.
 * Logs: no field values, no addresses of people, no user agents.
 */
#define G_LOG_DOMAIN "intake-http"

#include "intake/http_server.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "intake/forms.h"

#define HTTP_RATE_WINDOW_S 60

struct http_server {
  SoupServer *soup;
  intake_config *cfg;
  const store_keys *keys;
  store *st;
  intake_master *m;
  pipeline *pl;
  forms *forms;
  GHashTable *rate;          /* client address -> http_rate * */
  http_api_fn api;
  gpointer api_data;
  /* counters for /metrics */
  guint64 form_ok, form_invalid, form_honeypot, form_forbidden, form_limited,
      form_too_large, form_failed;
};

typedef struct {
  gint64 window_start;
  guint count;
} http_rate;

/* A request must be read whole -- request line, headers, body -- within
 * [http] request_timeout of the server starting to wait for it; a client
 * that trickles (SECURITY-TESTS 87) or holds an idle connection gets 408
 * and the connection is shut.  The handler's own time (waiting for the
 * spool commit) does not count: the clock stops when the body is in.  */
typedef struct {
  SoupServerMessage *msg;    /* not a reference: this lives in its data */
  guint source;
  http_server *h;
  goffset received;          /* body bytes so far (got-chunk) */
  gboolean refused;          /* answered and shut: ignore what follows */
} http_deadline;

static void
http_deadline_free (gpointer data)
{
  http_deadline *d = data;

  if (d->source != 0)
    g_source_remove (d->source);
  g_free (d);
}

/* How long a refused connection is still read (and what comes dropped)
 * after the answer, before its reading side is shut too.  */
#define HTTP_LINGER_SECONDS 2

static gboolean
http_linger_end (gpointer data)
{
  /* libsoup sees the end of the stream, finishes the message and closes
   * the connection itself (already closed: an error, ignored) */
  (void) g_socket_shutdown (G_SOCKET (data), TRUE, FALSE, NULL);
  return G_SOURCE_REMOVE;
}

/* Answer @reply (a whole HTTP response) straight on the socket and shut
 * it: for a request that must not be read any further.  A lingering
 * close, as HTTP servers do (RFC 9112 9.6): the answer, then the end of
 * our side, while the client's bytes still in flight are read and
 * dropped for HTTP_LINGER_SECONDS.  Shutting both sides at once made the
 * kernel answer those bytes with a reset, which can throw away the 413
 * before the client has read it (seen under load).  */
static void
http_refuse_and_shut (SoupServerMessage *msg, const char *reply)
{
  GSocket *sock = soup_server_message_get_socket (msg);
  GUri *uri = soup_server_message_get_uri (msg);

  if (sock == NULL)
    return;
  /* plain text only: under TLS the bytes would break the record stream,
   * and the connection is just shut */
  if (uri != NULL && g_strcmp0 (g_uri_get_scheme (uri), "https") == 0)
    {
      (void) g_socket_shutdown (sock, TRUE, TRUE, NULL);
      return;
    }
  /* never blocking: a client that reads nothing (a full send buffer) must
   * not stall the master's loop; then it just goes */
  (void) g_socket_send_with_blocking (sock, reply, strlen (reply), FALSE,
                                      NULL, NULL);
  (void) g_socket_shutdown (sock, FALSE, TRUE, NULL);
  g_timeout_add_seconds_full (G_PRIORITY_DEFAULT, HTTP_LINGER_SECONDS,
                              http_linger_end, g_object_ref (sock),
                              g_object_unref);
}

static const char http_413_reply[] =
    "HTTP/1.1 413 Request Entity Too Large\r\n"
    "Connection: close\r\n"
    "Content-Type: application/json; charset=utf-8\r\n"
    "Content-Length: 33\r\n\r\n"
    "{\"error\":\"the body is too large\"}";

static gboolean
http_deadline_fire (gpointer data)
{
  http_deadline *d = data;

  d->source = 0;
  d->refused = TRUE;
  g_message ("event=http-request-timeout");
  http_refuse_and_shut (d->msg, "HTTP/1.1 408 Request Timeout\r\n"
                                "Connection: close\r\n"
                                "Content-Length: 0\r\n\r\n");
  return G_SOURCE_REMOVE;
}

/* Each piece of a body as it comes: past [http] max_body the request is
 * answered 413 and the connection shut there and then.  libsoup keeps the
 * whole body in memory until it has all of it, and a chunked body (no
 * Content-Length for http_early to refuse) was read whole before its size
 * was looked at: an endless one would have ended the master.  */
static void
http_got_chunk (SoupServerMessage *msg, GBytes *chunk, gpointer data)
{
  http_deadline *d = data;

  if (d->refused)
    return;
  d->received += g_bytes_get_size (chunk);
  if (d->received > (goffset) d->h->cfg->http_max_body)
    {
      d->refused = TRUE;
      d->h->form_too_large++;
      if (d->source != 0)
        {
          g_source_remove (d->source);
          d->source = 0;
        }
      g_message ("event=http-body-too-large");
      /* whatever is still read of it is dropped, not kept */
      soup_message_body_set_accumulate (
          soup_server_message_get_request_body (msg), FALSE);
      http_refuse_and_shut (msg, http_413_reply);
    }
}

static void
http_deadline_stop (SoupServerMessage *msg, gpointer data)
{
  http_deadline *d = data;

  if (d->source != 0)
    {
      g_source_remove (d->source);
      d->source = 0;
    }
}

static void
http_request_started (SoupServer *server, SoupServerMessage *msg,
                      gpointer data)
{
  http_server *h = data;
  http_deadline *d = g_new0 (http_deadline, 1);

  d->msg = msg;
  d->h = h;
  d->source = g_timeout_add_seconds (h->cfg->http_request_timeout,
                                     http_deadline_fire, d);
  g_object_set_data_full (G_OBJECT (msg), "intake-deadline", d,
                          http_deadline_free);
  g_signal_connect (msg, "got-chunk", G_CALLBACK (http_got_chunk), d);
  g_signal_connect (msg, "got-body", G_CALLBACK (http_deadline_stop), d);
  g_signal_connect (msg, "finished", G_CALLBACK (http_deadline_stop), d);
}

store *
http_server_store (http_server *h)
{
  return h->st;
}

const store_keys *
http_server_keys (http_server *h)
{
  return h->keys;
}

intake_config *
http_server_config (http_server *h)
{
  return h->cfg;
}

void
http_server_set_api (http_server *h, http_api_fn fn, gpointer data)
{
  h->api = fn;
  h->api_data = data;
}

static void
http_security_headers (SoupServerMessage *msg)
{
  SoupMessageHeaders *rh = soup_server_message_get_response_headers (msg);

  soup_message_headers_replace (rh, "X-Content-Type-Options", "nosniff");
  soup_message_headers_replace (rh, "X-Frame-Options", "DENY");
  /* same-origin: browsers then send our Origin on the form's POST (with
   * no-referrer they send "Origin: null"), and nothing leaves the site */
  soup_message_headers_replace (rh, "Referrer-Policy", "same-origin");
  soup_message_headers_replace (rh, "Cache-Control", "no-store");
}

void
http_reply_json (SoupServerMessage *msg, guint status, const char *json)
{
  http_security_headers (msg);
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json; charset=utf-8",
                                    SOUP_MEMORY_COPY, json, strlen (json));
}

void
http_reply_error (SoupServerMessage *msg, guint status, const char *message)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "error");
  json_builder_add_string_value (b, message);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, NULL);
  http_reply_json (msg, status, text);
}

static void
http_reply_html (SoupServerMessage *msg, guint status, char *html)
{
  SoupMessageHeaders *rh = soup_server_message_get_response_headers (msg);

  http_security_headers (msg);
  /* our pages need nothing from anywhere (no script at all) */
  soup_message_headers_replace (rh, "Content-Security-Policy",
                                "default-src 'none'; style-src 'unsafe-inline';"
                                " form-action 'self'; frame-ancestors 'none'");
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "text/html; charset=utf-8",
                                    SOUP_MEMORY_TAKE, html, strlen (html));
}

/* ------------------------------------------------------- health */

static void
http_healthz (http_server *h, SoupServerMessage *msg)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;
  g_autoptr (GPtrArray) boxes = NULL;
  intake_master_status ms;
  gint64 spool = store_spool_count (h->st, &error);
  gboolean writable = store_writable (h->st);
  gboolean ok;

  intake_master_get_status (h->m, &ms);
  boxes = store_imap_status_list (h->st, NULL);
  ok = spool >= 0 && writable && ms.children_down == 0 && !ms.storage_low;
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, ok ? "ok" : "unhealthy");
  json_builder_set_member_name (b, "database_writable");
  json_builder_add_boolean_value (b, writable);
  json_builder_set_member_name (b, "storage_low");
  json_builder_add_boolean_value (b, ms.storage_low);
  json_builder_set_member_name (b, "spool");
  json_builder_add_int_value (b, spool);
  json_builder_set_member_name (b, "children");
  json_builder_add_int_value (b, ms.children);
  json_builder_set_member_name (b, "children_down");
  json_builder_add_int_value (b, ms.children_down);
  json_builder_set_member_name (b, "mailboxes");
  json_builder_begin_object (b);
  for (guint i = 0; boxes && i < boxes->len; i++)
    {
      store_imap_status *e = boxes->pdata[i];
      json_builder_set_member_name (b, e->mailbox);
      json_builder_add_string_value (b, e->state);
    }
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, NULL);
  http_reply_json (msg, ok ? SOUP_STATUS_OK : SOUP_STATUS_SERVICE_UNAVAILABLE,
                   text);
}

static void
http_metrics (http_server *h, SoupServerMessage *msg)
{
  GString *s = g_string_new (NULL);
  g_autoptr (GPtrArray) counts = store_case_counts (h->st, NULL);
  g_autoptr (GPtrArray) quarantine = store_quarantine_list (h->st, NULL);
  intake_master_status ms;
  gint64 spool = store_spool_count (h->st, NULL);
  char *text;

  intake_master_get_status (h->m, &ms);
  g_string_append (s, "# HELP intake_messages_received_total Messages"
                      " committed to the spool, by source.\n"
                      "# TYPE intake_messages_received_total counter\n");
  g_string_append_printf (s, "intake_messages_received_total{source=\"smtp\"}"
                             " %" G_GUINT64_FORMAT "\n"
                             "intake_messages_received_total{source=\"imap\"}"
                             " %" G_GUINT64_FORMAT "\n"
                             "intake_messages_received_total{source=\"form\"}"
                             " %" G_GUINT64_FORMAT "\n", ms.spooled_smtp,
                          ms.spooled_imap, h->form_ok);
  g_string_append (s, "# HELP intake_form_submissions_total Web form"
                      " submissions by outcome.\n"
                      "# TYPE intake_form_submissions_total counter\n");
  g_string_append_printf (s,
      "intake_form_submissions_total{outcome=\"accepted\"} %" G_GUINT64_FORMAT
      "\nintake_form_submissions_total{outcome=\"invalid\"} %" G_GUINT64_FORMAT
      "\nintake_form_submissions_total{outcome=\"honeypot\"} %"
      G_GUINT64_FORMAT
      "\nintake_form_submissions_total{outcome=\"forbidden\"} %"
      G_GUINT64_FORMAT
      "\nintake_form_submissions_total{outcome=\"rate_limited\"} %"
      G_GUINT64_FORMAT
      "\nintake_form_submissions_total{outcome=\"too_large\"} %"
      G_GUINT64_FORMAT
      "\nintake_form_submissions_total{outcome=\"failed\"} %"
      G_GUINT64_FORMAT "\n", h->form_ok, h->form_invalid, h->form_honeypot,
      h->form_forbidden, h->form_limited, h->form_too_large, h->form_failed);
  g_string_append (s, "# HELP intake_cases Cases by queue and status.\n"
                      "# TYPE intake_cases gauge\n");
  for (guint i = 0; counts && i < counts->len; i++)
    {
      store_case_count *c = counts->pdata[i];
      g_string_append_printf (s, "intake_cases{queue=\"%s\",status=\"%s\"} %"
                                 G_GINT64_FORMAT "\n", c->queue, c->status,
                              c->n);
    }
  g_string_append_printf (s, "# HELP intake_spool_depth Messages waiting to"
                             " be filed.\n# TYPE intake_spool_depth gauge\n"
                             "intake_spool_depth %" G_GINT64_FORMAT "\n"
                             "# HELP intake_quarantine_size Messages the"
                             " parser failed on, kept.\n"
                             "# TYPE intake_quarantine_size gauge\n"
                             "intake_quarantine_size %u\n"
                             "# HELP intake_child_restarts_total Child"
                             " processes restarted.\n"
                             "# TYPE intake_child_restarts_total counter\n"
                             "intake_child_restarts_total %" G_GUINT64_FORMAT
                             "\n", spool, quarantine ? quarantine->len : 0,
                          ms.restarts);
  {
    gint wal_pages;
    guint ckpt_failures;

    store_wal_status (h->st, &wal_pages, &ckpt_failures);
    g_string_append_printf (s,
        "# HELP intake_wal_pages Pages in the database's write-ahead log"
        " after the last commit; checkpoints copy them into the database"
        " file and the log starts again, so one that only grows means they"
        " fail.\n# TYPE intake_wal_pages gauge\nintake_wal_pages %d\n"
        "# HELP intake_checkpoint_failures Checkpoints failed in a row (0"
        " once one works).\n# TYPE intake_checkpoint_failures gauge\n"
        "intake_checkpoint_failures %u\n", wal_pages, ckpt_failures);
  }
  pipeline_metrics (h->pl, s);
  text = g_string_free (s, FALSE);
  http_security_headers (msg);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "text/plain; version=0.0.4",
                                    SOUP_MEMORY_TAKE, text, strlen (text));
}

/* --------------------------------------------------------- forms */

static gboolean
http_rate_ok (http_server *h, const char *addr)
{
  gint64 now = g_get_monotonic_time () / G_USEC_PER_SEC;
  http_rate *r = g_hash_table_lookup (h->rate, addr);

  if (g_hash_table_size (h->rate) > 100000)
    g_hash_table_remove_all (h->rate);     /* bounded memory */
  if (r == NULL)
    {
      r = g_new0 (http_rate, 1);
      g_hash_table_insert (h->rate, g_strdup (addr), r);
    }
  if (now - r->window_start >= HTTP_RATE_WINDOW_S)
    {
      r->window_start = now;
      r->count = 0;
    }
  return ++r->count <= h->cfg->http_form_rate;
}

static gboolean
http_wants_html (SoupServerMessage *msg)
{
  const char *accept = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Accept");
  const char *ct = soup_message_headers_get_content_type (
      soup_server_message_get_request_headers (msg), NULL);

  if (ct && strcmp (ct, "application/json") == 0)
    return FALSE;
  return accept != NULL && strstr (accept, "text/html") != NULL;
}

JsonObject *
http_json_object (const char *data, gsize len, const char **why)
{
  g_autoptr (JsonParser) p = NULL;
  guint depth = 0;
  gboolean in_string = FALSE;

  for (gsize i = 0; i < len; i++)
    {
      char c = data[i];

      if (in_string)
        {
          if (c == '"')
            in_string = FALSE;
          else if (c == '\\')
            {
              if (i + 5 < len && data[i + 1] == 'u'
                  && memcmp (data + i + 2, "0000", 4) == 0)
                {
                  *why = "a JSON string must not contain \\u0000";
                  return NULL;
                }
              i++;              /* the escaped character */
            }
        }
      else if (c == '"')
        in_string = TRUE;
      else if (c == '\'' || c == '/')
        {
          *why = "the body is not JSON";
          return NULL;
        }
      else if (c == '[' || c == '{')
        {
          if (++depth > HTTP_JSON_DEPTH_MAX)
            {
              *why = "the body nests too deep (at most 32)";
              return NULL;
            }
        }
      else if ((c == ']' || c == '}') && depth > 0)
        depth--;
    }
  p = json_parser_new ();
  if (!json_parser_load_from_data (p, data ? data : "", len, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p)))
    {
      *why = "the body must be a JSON object";
      return NULL;
    }
  return json_object_ref (json_node_get_object (json_parser_get_root (p)));
}

/* A field value from @len bytes: a NUL byte becomes U+0001, so that the
 * value is not cut short at it (what followed would be lost without a
 * word) and validation refuses it as a control character (422).  */
static char *
http_form_value (const char *data, gsize len)
{
  char *v = g_strndup (data ? data : "", len);

  for (gsize i = 0; i < len; i++)
    if (v[i] == '\0')
      v[i] = '\001';
  return v;
}

/* One %-decoded piece of an urlencoded body ('+' is a space); NULL when
 * an escape is broken (the pair is dropped, as soup_form_decode does).  */
static char *
http_form_unescape (const char *s, gsize len)
{
  g_autoptr (GString) out = g_string_sized_new (len);

  for (gsize i = 0; i < len; i++)
    {
      if (s[i] == '%')
        {
          if (i + 2 >= len || !g_ascii_isxdigit (s[i + 1])
              || !g_ascii_isxdigit (s[i + 2]))
            return NULL;
          g_string_append_c (out, (char) (g_ascii_xdigit_value (s[i + 1]) * 16
                                          + g_ascii_xdigit_value (s[i + 2])));
          i += 2;
        }
      else
        g_string_append_c (out, s[i] == '+' ? ' ' : s[i]);
    }
  return http_form_value (out->str, out->len);
}

/* The body as form values and files; FALSE for a body we cannot read
 * (more than HTTP_FORM_FIELDS_MAX fields, JSON nested deeper than
 * HTTP_JSON_DEPTH_MAX, broken multipart or JSON).  */
static gboolean
http_form_read (SoupServerMessage *msg, form_input *in)
{
  SoupMessageHeaders *rq = soup_server_message_get_request_headers (msg);
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  const char *ct = soup_message_headers_get_content_type (rq, NULL);
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  if (ct == NULL || strcmp (ct, "application/x-www-form-urlencoded") == 0)
    {
      guint fields = 0;

      /* decoded here, not by soup_form_decode: that cuts a value short
       * at a %00 */
      for (gsize i = 0; i < len;)
        {
          const char *amp = memchr (data + i, '&', len - i);
          gsize end = amp ? (gsize) (amp - data) : len;
          const char *eq = memchr (data + i, '=', end - i);

          if (++fields > HTTP_FORM_FIELDS_MAX)
            return FALSE;
          if (eq != NULL)
            {
              char *k = http_form_unescape (data + i, eq - (data + i));
              char *val = http_form_unescape (eq + 1, data + end - (eq + 1));
              if (k != NULL && val != NULL)
                {
                  g_hash_table_replace (in->values, k, val);
                  k = val = NULL;
                }
              g_free (k);
              g_free (val);
            }
          i = end + 1;
        }
      goto trim;
    }
  if (strcmp (ct, "multipart/form-data") == 0)
    {
      g_autoptr (SoupMultipart) mp = soup_multipart_new_from_message (rq,
                                                                      bytes);
      if (mp == NULL || soup_multipart_get_length (mp) > HTTP_FORM_FIELDS_MAX)
        return FALSE;
      for (int i = 0; i < soup_multipart_get_length (mp); i++)
        {
          SoupMessageHeaders *ph;
          GBytes *pb;
          g_autofree char *disp = NULL;
          g_autoptr (GHashTable) params = NULL;
          const char *name, *filename;

          if (!soup_multipart_get_part (mp, i, &ph, &pb))
            continue;
          if (!soup_message_headers_get_content_disposition (ph, &disp,
                                                             &params))
            continue;
          name = g_hash_table_lookup (params, "name");
          filename = g_hash_table_lookup (params, "filename");
          if (name == NULL)
            continue;
          if (filename == NULL)
            {
              /* a file whose name did not decode (filename*= with %00,
               * a bad charset): still a file, never its bytes taken as a
               * text value and the upload dropped */
              const char *raw = soup_message_headers_get_one (
                  ph, "Content-Disposition");
              g_autofree char *low = raw ? g_ascii_strdown (raw, -1) : NULL;
              if (low != NULL && strstr (low, "filename") != NULL)
                filename = "attachment";
            }
          if (filename != NULL)
            {
              form_file *ff = g_new0 (form_file, 1);
              ff->filename = g_strdup (filename);
              ff->content_type = g_strdup (
                  soup_message_headers_get_content_type (ph, NULL));
              ff->data = g_bytes_ref (pb);
              g_hash_table_replace (in->files, g_strdup (name), ff);
            }
          else
            g_hash_table_replace (in->values, g_strdup (name),
                                  http_form_value (g_bytes_get_data (pb, NULL),
                                                   g_bytes_get_size (pb)));
        }
      goto trim;
    }
  if (strcmp (ct, "application/json") == 0)
    {
      const char *why;
      g_autoptr (JsonObject) o = http_json_object (data, len, &why);
      GList *members;

      if (o == NULL || json_object_get_size (o) > HTTP_FORM_FIELDS_MAX)
        return FALSE;
      members = json_object_get_members (o);
      for (GList *l = members; l; l = l->next)
        {
          JsonNode *n = json_object_get_member (o, l->data);
          if (JSON_NODE_HOLDS_VALUE (n)
              && json_node_get_value_type (n) == G_TYPE_STRING)
            g_hash_table_replace (in->values, g_strdup (l->data),
                                  g_strdup (json_node_get_string (n)));
        }
      g_list_free (members);
      goto trim;
    }
  return FALSE;

trim:
  /* what is validated (trimmed) is what is kept: a value's leading or
   * trailing line breaks would otherwise pass the one-line check and
   * then start a line of their own in the message */
  {
    GHashTableIter it;
    gpointer val;

    g_hash_table_iter_init (&it, in->values);
    while (g_hash_table_iter_next (&it, NULL, &val))
      g_strstrip ((char *) val);
  }
  return TRUE;
}

typedef struct {
  http_server *h;
  SoupServerMessage *msg;
  const form_def *def;
  gboolean html;
  char ref[STORE_REF_MAX];
  gboolean failed;
  gboolean full;
} http_pending;

static gboolean
http_form_committed_main (gpointer data)
{
  http_pending *p = data;

  if (p->failed)
    {
      SoupMessageHeaders *rh = soup_server_message_get_response_headers (
          p->msg);
      p->h->form_failed++;
      soup_message_headers_replace (rh, "Retry-After", "60");
      http_reply_error (p->msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                        p->full ? "storage is full; nothing was kept, try"
                                  " again later"
                                : "could not store the submission; nothing"
                                  " was kept, try again later");
    }
  else
    {
      p->h->form_ok++;
      pipeline_kick (p->h->pl);
      if (p->html)
        http_reply_html (p->msg, SOUP_STATUS_CREATED,
                         form_render_done (p->def, p->ref));
      else
        {
          g_autofree char *json = g_strdup_printf ("{\"reference\": \"%s\"}",
                                                   p->ref);
          http_reply_json (p->msg, SOUP_STATUS_CREATED, json);
        }
    }
  soup_server_message_unpause (p->msg);
  g_object_unref (p->msg);
  g_free (p);
  return G_SOURCE_REMOVE;
}

/* The writer thread, after the commit: back to the loop.  */
static void
http_form_committed (gint64 id, const GError *error, gpointer data)
{
  http_pending *p = data;

  if (error != NULL)
    {
      p->failed = TRUE;
      p->full = g_error_matches (error, STORE_ERROR, STORE_ERROR_FULL);
      g_warning ("event=form-store-failed form=%s error=%s", p->def->id,
                 error->message);
    }
  g_main_context_invoke (NULL, http_form_committed_main, p);
}

static void
http_form_post (http_server *h, SoupServerMessage *msg, const form_def *def)
{
  SoupMessageHeaders *rq = soup_server_message_get_request_headers (msg);
  const char *origin = soup_message_headers_get_one (rq, "Origin");
  const char *addr = soup_server_message_get_remote_host (msg);
  const char *ua = soup_message_headers_get_one (rq, "User-Agent");
  gboolean html = http_wants_html (msg);
  form_input *in = form_input_new ();
  g_autoptr (GPtrArray) problems = NULL;
  const char *token, *honey;

  if (!http_rate_ok (h, addr ? addr : "?"))
    {
      h->form_limited++;
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Retry-After",
          "60");
      http_reply_error (msg, 429,
                        "too many submissions from this address; try again"
                        " in a minute");
      goto out;
    }
  if (soup_server_message_get_request_body (msg)->length
      > (goffset) h->cfg->http_max_body)
    {
      h->form_too_large++;
      http_reply_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
                        "the submission is too large");
      goto out;
    }
  if (!http_form_read (msg, in))
    {
      h->form_invalid++;
      http_reply_error (msg, SOUP_STATUS_BAD_REQUEST,
                        "send the form as application/x-www-form-urlencoded,"
                        " multipart/form-data or application/json (at most"
                        " 200 fields; JSON nested at most 32 deep)");
      goto out;
    }
  /* cross-site posts: a foreign Origin is refused; otherwise the page's
   * token or our own Origin is needed */
  token = g_hash_table_lookup (in->values, "_token");
  /* "null" is what a privacy setting sends: no Origin; the token decides */
  if (g_strcmp0 (origin, "null") == 0)
    origin = NULL;
  if ((origin != NULL && g_strcmp0 (origin, h->cfg->http_origin) != 0)
      || (!form_token_valid (store_keys_get (h->keys, STORE_KEY_FORMS),
                             def->id, token)
          && g_strcmp0 (origin, h->cfg->http_origin) != 0))
    {
      h->form_forbidden++;
      http_reply_error (msg, SOUP_STATUS_FORBIDDEN,
                        "this form must be sent from its own page (a valid"
                        " _token or our Origin)");
      goto out;
    }
  honey = g_hash_table_lookup (in->values, "website");
  if (honey != NULL && *honey != '\0')
    {
      /* a bot: looks accepted, nothing is kept */
      g_autofree char *fake = NULL;
      g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
      h->form_honeypot++;
      fake = store_ref_format ("ESC", g_date_time_get_year (now),
                               g_random_int_range (100000, 999999));
      if (html)
        http_reply_html (msg, SOUP_STATUS_CREATED,
                         form_render_done (def, fake));
      else
        {
          g_autofree char *json = g_strdup_printf ("{\"reference\": \"%s\"}",
                                                   fake);
          http_reply_json (msg, SOUP_STATUS_CREATED, json);
        }
      goto out;
    }
  problems = form_validate (def, in);
  if (problems->len > 0)
    {
      h->form_invalid++;
      if (html)
        {
          g_autofree char *tok = form_token_new (
              store_keys_get (h->keys, STORE_KEY_FORMS), def->id);
          http_reply_html (msg, SOUP_STATUS_UNPROCESSABLE_ENTITY,
                           form_render (def, in, problems, tok));
        }
      else
        {
          g_autoptr (JsonBuilder) b = json_builder_new ();
          g_autoptr (JsonGenerator) gen = json_generator_new ();
          g_autoptr (JsonNode) root = NULL;
          g_autofree char *text = NULL;
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "errors");
          json_builder_begin_array (b);
          for (guint i = 0; i < problems->len; i++)
            {
              form_problem *p = problems->pdata[i];
              json_builder_begin_object (b);
              json_builder_set_member_name (b, "field");
              json_builder_add_string_value (b, p->field);
              json_builder_set_member_name (b, "problem");
              json_builder_add_string_value (b, p->problem);
              json_builder_end_object (b);
            }
          json_builder_end_array (b);
          json_builder_end_object (b);
          root = json_builder_get_root (b);
          json_generator_set_root (gen, root);
          text = json_generator_to_data (gen, NULL);
          http_reply_json (msg, SOUP_STATUS_UNPROCESSABLE_ENTITY, text);
        }
      goto out;
    }
  if (intake_master_storage_low (h->m))
    {
      h->form_failed++;
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Retry-After",
          "300");
      http_reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                        "storage is low; nothing was kept, try again later");
      goto out;
    }
  {
    store_envelope *env = store_envelope_new ();
    GBytes *raw = form_build_message (def, in, h->cfg->hostname, ua);
    const char *email = form_email (def, in);
    http_pending *p = g_new0 (http_pending, 1);

    env->source = g_strdup ("form");
    env->client_addr = g_strdup (addr ? addr : "");
    env->helo = g_strdup ("");
    env->mail_from = g_strdup (email ? email : "");
    g_ptr_array_add (env->rcpts, g_strdup (def->mailbox));
    env->received_at = g_get_real_time ();
    p->h = h;
    p->msg = g_object_ref (msg);
    p->def = def;
    p->html = html;
    soup_server_message_pause (msg);
    store_spool_submit_form (h->st, env, raw, h->cfg->ref_prefix, p->ref,
                             http_form_committed, p);
  }
out:
  form_input_free (in);
}

static void
http_forms (http_server *h, SoupServerMessage *msg, const char *path)
{
  const char *id = path + strlen ("/forms/");
  const char *method = soup_server_message_get_method (msg);
  const form_def *def = forms_get (h->forms, id);

  if (def == NULL || strchr (id, '/') != NULL)
    {
      http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "no such form");
      return;
    }
  if (strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0)
    {
      g_autofree char *tok = form_token_new (
          store_keys_get (h->keys, STORE_KEY_FORMS), def->id);
      const char *query = g_uri_get_query (soup_server_message_get_uri (msg));
      if (query && strstr (query, "format=json"))
        {
          g_autofree char *json = g_strdup_printf (
              "{\"id\": \"%s\", \"token\": \"%s\"}", def->id, tok);
          http_reply_json (msg, SOUP_STATUS_OK, json);
          return;
        }
      http_reply_html (msg, SOUP_STATUS_OK, form_render (def, NULL, NULL, tok));
      return;
    }
  if (strcmp (method, "POST") == 0)
    {
      http_form_post (h, msg, def);
      return;
    }
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Allow", "GET, HEAD, POST");
  http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "GET or POST");
}

/* ------------------------------------------------------- routing */

static void
http_count_length (const char *name, const char *value, gpointer data)
{
  guint *n = data;

  if (g_ascii_strcasecmp (name, "Content-Length") == 0)
    n[0]++;
  else if (g_ascii_strcasecmp (name, "Transfer-Encoding") == 0)
    n[1]++;
}

static void
http_early (SoupServer *server, SoupServerMessage *msg, const char *path,
            GHashTable *query, gpointer data)
{
  http_server *h = data;
  SoupMessageHeaders *rq = soup_server_message_get_request_headers (msg);
  goffset len = soup_message_headers_get_content_length (rq);
  guint n[2] = { 0, 0 };

  /* a body framed two ways (two Content-Lengths, or Content-Length with
   * Transfer-Encoding) is how requests are smuggled past a proxy in
   * front of us: 400 and the connection closed, so nothing after it on
   * the connection is taken for a request (RFC 9112 6.3) */
  soup_message_headers_foreach (rq, http_count_length, n);
  if (n[0] > 1 || (n[0] > 0 && n[1] > 0))
    {
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Connection",
          "close");
      http_reply_error (msg, SOUP_STATUS_BAD_REQUEST,
                        "the body's length is given twice");
      return;
    }

  /* refused before the body is read.  libsoup reads a body it was told
   * to refuse all the same (a client may send it without waiting): it is
   * dropped as it comes, not kept -- 2 GB sent with Content-Length:
   * 2000000000 once grew the master to 3 GB -- and the connection is
   * closed after the answer (after "Expect: 100-continue" it was left
   * open with no deadline) */
  if (len > (goffset) h->cfg->http_max_body)
    {
      http_deadline *d = g_object_get_data (G_OBJECT (msg),
                                            "intake-deadline");
      h->form_too_large++;
      if (d != NULL)
        d->refused = TRUE;
      soup_message_body_set_accumulate (
          soup_server_message_get_request_body (msg), FALSE);
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Connection",
          "close");
      http_reply_error (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
                        "the body is too large");
    }
}

static void
http_handle (SoupServer *server, SoupServerMessage *msg, const char *path,
             GHashTable *query, gpointer data)
{
  http_server *h = data;
  http_deadline *d = g_object_get_data (G_OBJECT (msg), "intake-deadline");

  /* answered already (413 or 408, written on the socket): a body that
   * still came in whole while the connection lingered is not handled.
   * libsoup wants a status; nothing of it is sent (our side is shut).  */
  if (d != NULL && d->refused)
    {
      soup_server_message_set_status (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
                                      NULL);
      return;
    }
  if ((strcmp (path, "/healthz") == 0 || strcmp (path, "/metrics") == 0)
      && soup_server_message_get_method (msg) != SOUP_METHOD_GET
      && soup_server_message_get_method (msg) != SOUP_METHOD_HEAD)
    {
      /* read-only: PUT, DELETE, TRACE or FOO once answered 200 */
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Allow",
          "GET, HEAD");
      http_reply_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "use GET");
    }
  else if (strcmp (path, "/healthz") == 0)
    http_healthz (h, msg);
  else if (strcmp (path, "/metrics") == 0)
    http_metrics (h, msg);
  else if (g_str_has_prefix (path, "/forms/"))
    http_forms (h, msg, path);
  else if (g_str_has_prefix (path, "/api/"))
    {
      /* tokens never travel in the query string (they end up in logs) */
      const char *q = g_uri_get_query (soup_server_message_get_uri (msg));
      if (q && (strstr (q, "token") || strstr (q, "access_token")))
        http_reply_error (msg, SOUP_STATUS_BAD_REQUEST,
                          "tokens go in the Authorization header, never the"
                          " URL");
      else if (h->api)
        h->api (h, msg, path, h->api_data);
      else
        http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "no API here");
    }
  else
    http_reply_error (msg, SOUP_STATUS_NOT_FOUND, "not found");
}

http_server *
http_server_new (intake_config *cfg, const store_keys *keys, store *st,
                 intake_master *m, pipeline *pl, GError **error)
{
  http_server *h = g_new0 (http_server, 1);
  g_autoptr (GSocketAddress) sa = NULL;
  g_autofree char *host = NULL;
  guint16 port;

  h->cfg = cfg;
  h->keys = keys;
  h->st = st;
  h->m = m;
  h->pl = pl;
  h->rate = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  h->forms = forms_load (cfg->forms_dir, error);
  if (h->forms == NULL)
    {
      http_server_free (&h);
      return NULL;
    }
  {
    g_autoptr (GSocketConnectable) na =
        g_network_address_parse (cfg->http_listen, 8080, error);
    if (na == NULL)
      {
        http_server_free (&h);
        return NULL;
      }
    host = g_strdup (g_network_address_get_hostname (G_NETWORK_ADDRESS (na)));
    port = g_network_address_get_port (G_NETWORK_ADDRESS (na));
  }
  sa = g_inet_socket_address_new_from_string (host, port);
  if (sa == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "[http] listen = %s: an address and port, like"
                   " 127.0.0.1:8080", cfg->http_listen);
      http_server_free (&h);
      return NULL;
    }
  h->soup = soup_server_new ("server-header", "intake", NULL);
  g_signal_connect (h->soup, "request-started",
                    G_CALLBACK (http_request_started), h);
  soup_server_add_early_handler (h->soup, NULL, http_early, h, NULL);
  soup_server_add_handler (h->soup, NULL, http_handle, h, NULL);
  if (!soup_server_listen (h->soup, sa, 0, error))
    {
      http_server_free (&h);
      return NULL;
    }
  g_message ("event=http-listening address=%s forms=%s", cfg->http_listen,
             cfg->forms_dir);
  return h;
}

void
http_server_free (http_server **hp)
{
  http_server *h = hp ? *hp : NULL;

  if (h == NULL)
    return;
  if (h->soup)
    {
      soup_server_disconnect (h->soup);
      g_object_unref (h->soup);
    }
  forms_free (h->forms);
  g_hash_table_unref (h->rate);
  g_free (h);
  *hp = NULL;
}
