/*
 * webhook.c - the webhook sender thread, and the payloads it signs.
 *
 * Owns: one thread with its own GMainContext and SoupSession, the queues'
 * secrets (sodium_malloc, wiped at stop).  Refuses: a secret file readable
 * by anyone but its owner, redirects (a 3xx is a failed attempt: the body
 * never goes where it was not configured to), a certificate that does not
 * verify.  Logs ids, references and HTTP statuses; never a payload or a
 * receiver's answer.
 */
#define G_LOG_DOMAIN "intake-outbound"

#include "outbound/webhook.h"

#include <string.h>
#include <sys/stat.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <sodium.h>

#define WEBHOOK_POLL_S         2
#define WEBHOOK_BATCH          50
#define WEBHOOK_BACKOFF_FIRST  (5 * G_USEC_PER_SEC)
#define WEBHOOK_BACKOFF_MAX    ((gint64) 3600 * G_USEC_PER_SEC)
/* A secret longer than this is not a secret file (threat: a wrong path
 * naming a big file read into locked memory).  */
#define WEBHOOK_SECRET_MAX     4096
/* The delivery log keeps finished events this long (ids and references
 * only), looked at once an hour.  */
#define WEBHOOK_LOG_KEEP       ((gint64) 30 * 86400 * G_USEC_PER_SEC)
#define WEBHOOK_PRUNE_EVERY    ((gint64) 3600 * G_USEC_PER_SEC)

typedef struct {
  const intake_queue_config *q;
  guint8 *secret;          /* sodium_malloc */
  gsize secret_len;
} webhook_hook;

struct webhook {
  intake_config *cfg;
  store *st;
  GPtrArray *hooks;        /* webhook_hook * */
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean stop, kicked;
};

void
webhook_sign (const guint8 *secret, gsize secret_len, const char *timestamp,
              const char *body, gsize body_len,
              char out[WEBHOOK_SIGNATURE_MAX])
{
  crypto_auth_hmacsha256_state h;
  guint8 mac[crypto_auth_hmacsha256_BYTES];

  crypto_auth_hmacsha256_init (&h, secret, secret_len);
  crypto_auth_hmacsha256_update (&h, (const guint8 *) timestamp,
                                 strlen (timestamp));
  crypto_auth_hmacsha256_update (&h, (const guint8 *) ".", 1);
  crypto_auth_hmacsha256_update (&h, (const guint8 *) body, body_len);
  crypto_auth_hmacsha256_final (&h, mac);
  memcpy (out, "sha256=", 7);
  sodium_bin2hex (out + 7, WEBHOOK_SIGNATURE_MAX - 7, mac, sizeof mac);
  sodium_memzero (&h, sizeof h);
}

static void
webhook_json_time (JsonBuilder *b, const char *name, gint64 us)
{
  g_autoptr (GDateTime) t = NULL;
  g_autofree char *v = NULL;

  json_builder_set_member_name (b, name);
  if (us <= 0)
    {
      json_builder_add_null_value (b);
      return;
    }
  t = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
  v = g_date_time_format (t, "%Y-%m-%dT%H:%M:%SZ");
  json_builder_add_string_value (b, v);
}

static void
webhook_json_str (JsonBuilder *b, const char *name, const char *v)
{
  json_builder_set_member_name (b, name);
  if (v == NULL)
    json_builder_add_null_value (b);
  else
    json_builder_add_string_value (b, v);
}

char *
webhook_payload (const store_webhook_item *it, const webhook_message *m)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  gboolean erased = g_strcmp0 (it->event, STORE_WEBHOOK_ERASED) == 0;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "id");
  json_builder_add_int_value (b, it->id);
  webhook_json_str (b, "event", it->event);
  if (!erased && it->change != NULL)
    webhook_json_str (b, "change", it->change);
  webhook_json_time (b, "occurred_at", it->created_at);
  json_builder_set_member_name (b, "case");
  json_builder_begin_object (b);
  webhook_json_str (b, "ref", it->ref);
  if (erased)
    {
      /* nothing about the case but that it is gone */
      json_builder_set_member_name (b, "erased");
      json_builder_add_boolean_value (b, TRUE);
    }
  else
    {
      webhook_json_str (b, "kind", it->kind);
      webhook_json_str (b, "queue", it->queue);
      if (it->previous_queue != NULL)
        webhook_json_str (b, "previous_queue", it->previous_queue);
      webhook_json_str (b, "status", it->status);
      webhook_json_str (b, "priority", it->priority);
      webhook_json_time (b, "due", it->due_at);
    }
  json_builder_end_object (b);
  if (!erased && m != NULL)
    {
      json_builder_set_member_name (b, "message");
      json_builder_begin_object (b);
      webhook_json_str (b, "from", m->addr);
      webhook_json_str (b, "name", m->name);
      if (m->withheld)
        {
          json_builder_set_member_name (b, "withheld");
          json_builder_add_boolean_value (b, TRUE);
        }
      else
        {
          webhook_json_str (b, "subject", m->subject);
          webhook_json_str (b, "text", m->text);
        }
      json_builder_end_object (b);
    }
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

static const webhook_hook *
webhook_find (const webhook *w, const char *queue)
{
  for (guint i = 0; i < w->hooks->len; i++)
    {
      const webhook_hook *h = w->hooks->pdata[i];
      if (g_strcmp0 (h->q->name, queue) == 0)
        return h;
    }
  return NULL;
}

/* POST one event; the HTTP status, 0 if there was no answer.  */
static guint
webhook_post (SoupSession *session, const webhook_hook *h,
              const store_webhook_item *it, const char *body, char **why)
{
  g_autoptr (SoupMessage) msg = soup_message_new ("POST", h->q->webhook_url);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) reply = NULL;
  g_autofree char *ts = g_strdup_printf ("%" G_GINT64_FORMAT,
                                         g_get_real_time () / G_USEC_PER_SEC);
  g_autofree char *id = g_strdup_printf ("%" G_GINT64_FORMAT, it->id);
  char sig[WEBHOOK_SIGNATURE_MAX];
  SoupMessageHeaders *hd;
  gsize len = strlen (body);

  if (msg == NULL)
    {
      *why = g_strdup ("bad URL");
      return 0;
    }
  webhook_sign (h->secret, h->secret_len, ts, body, len, sig);
  soup_message_set_flags (msg, SOUP_MESSAGE_NO_REDIRECT);
  hd = soup_message_get_request_headers (msg);
  soup_message_headers_append (hd, "X-Intake-Event", it->event);
  soup_message_headers_append (hd, "X-Intake-Delivery", id);
  soup_message_headers_append (hd, "X-Intake-Timestamp", ts);
  soup_message_headers_append (hd, "X-Intake-Signature", sig);
  {
    g_autoptr (GBytes) b = g_bytes_new (body, len);
    soup_message_set_request_body_from_bytes (msg, "application/json", b);
  }
  reply = soup_session_send_and_read (session, msg, NULL, &error);
  if (reply == NULL)
    {
      /* a transport or TLS failure: say which, not what was sent */
      *why = g_strdup (error ? error->message : "no answer");
      if (strlen (*why) > 200)
        (*why)[200] = '\0';
      return 0;
    }
  return soup_message_get_status (msg);
}

static void
webhook_send_one (webhook *w, SoupSession *session, store_webhook_item *it)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *why = NULL;
  g_autofree char *body = NULL;
  const webhook_hook *h = webhook_find (w, it->hook);
  gint64 now = g_get_real_time ();
  guint status;

  if (h == NULL)
    {
      store_webhook_done (w->st, it->id, FALSE, 0, FALSE, TRUE, 0,
                          "no webhook for this queue", &error);
      return;
    }
  if (h->q->webhook_content == INTAKE_WEBHOOK_FULL && it->message_id > 0
      && g_strcmp0 (it->event, STORE_WEBHOOK_ERASED) != 0)
    {
      g_autofree char *addr = NULL;
      g_autofree char *name = NULL;
      g_autofree char *subject = NULL;
      g_autofree char *text = NULL;
      g_autoptr (GError) merr = NULL;
      guint special = 0;
      webhook_message m = { 0 };

      if (store_webhook_message (w->st, it->message_id, &addr, &name,
                                 &subject, &text, &special, &merr))
        {
          m = (webhook_message) { addr, name, subject, text,
                                  special != 0 && !h->q->webhook_special };
          body = webhook_payload (it, &m);
        }
      else
        g_warning ("event=webhook-message-unreadable delivery=%"
                   G_GINT64_FORMAT " ref=%s", it->id, it->ref);
    }
  if (body == NULL)
    body = webhook_payload (it, NULL);
  status = webhook_post (session, h, it, body, &why);
  sodium_memzero (body, strlen (body));
  if (status >= 200 && status < 300)
    {
      g_message ("event=webhook-delivered delivery=%" G_GINT64_FORMAT
                 " ref=%s queue=%s http=%u", it->id, it->ref, it->hook,
                 status);
      store_webhook_done (w->st, it->id, TRUE, 0, FALSE, FALSE, status, NULL,
                          &error);
    }
  else if (now - it->created_at
           > (gint64) w->cfg->webhook_retry_for_s * G_USEC_PER_SEC)
    {
      g_warning ("event=webhook-failed delivery=%" G_GINT64_FORMAT
                 " ref=%s queue=%s http=%u", it->id, it->ref, it->hook,
                 status);
      store_webhook_done (w->st, it->id, FALSE, 0, TRUE, FALSE, status,
                          why ? why : "gave up", &error);
    }
  else
    {
      gint64 wait = MIN (WEBHOOK_BACKOFF_FIRST << MIN (it->attempts, 20u),
                         WEBHOOK_BACKOFF_MAX);
      g_message ("event=webhook-deferred delivery=%" G_GINT64_FORMAT
                 " ref=%s queue=%s http=%u retry_in_s=%" G_GINT64_FORMAT,
                 it->id, it->ref, it->hook, status, wait / G_USEC_PER_SEC);
      store_webhook_done (w->st, it->id, FALSE, now + wait, FALSE, FALSE,
                          status, why, &error);
    }
  if (error != NULL)
    g_warning ("event=webhook-update-failed delivery=%" G_GINT64_FORMAT
               " error=%s", it->id, error->message);
}

static gboolean
webhook_stopping (webhook *w)
{
  gboolean stop;

  g_mutex_lock (&w->lock);
  stop = w->stop;
  g_mutex_unlock (&w->lock);
  return stop;
}

static gpointer
webhook_main (gpointer data)
{
  webhook *w = data;
  GMainContext *ctx = g_main_context_new ();
  SoupSession *session;
  gint64 pruned_at = 0;

  g_main_context_push_thread_default (ctx);
  session = soup_session_new_with_options (
      "timeout", w->cfg->webhook_timeout_s,
      "user-agent", "intake-webhook", NULL);
  if (w->cfg->webhook_ca != NULL)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GTlsDatabase) db = g_tls_file_database_new (
          w->cfg->webhook_ca, &error);
      if (db != NULL)
        soup_session_set_tls_database (session, db);
      else
        g_warning ("event=webhook-ca-unreadable error=%s", error->message);
    }
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GPtrArray) due = NULL;

      g_mutex_lock (&w->lock);
      if (!w->stop && !w->kicked)
        g_cond_wait_until (&w->cond, &w->lock,
                           g_get_monotonic_time ()
                               + WEBHOOK_POLL_S * G_TIME_SPAN_SECOND);
      w->kicked = FALSE;
      if (w->stop)
        {
          g_mutex_unlock (&w->lock);
          break;
        }
      g_mutex_unlock (&w->lock);
      if (g_get_monotonic_time () - pruned_at > WEBHOOK_PRUNE_EVERY
          || pruned_at == 0)
        {
          g_autoptr (GError) perr = NULL;
          gint64 n = store_webhook_prune (
              w->st, g_get_real_time () - WEBHOOK_LOG_KEEP, &perr);
          if (n < 0)
            g_warning ("event=webhook-prune-failed error=%s", perr->message);
          else if (n > 0)
            g_message ("event=webhook-log-pruned events=%" G_GINT64_FORMAT, n);
          pruned_at = g_get_monotonic_time ();
        }
      due = store_webhook_due (w->st, WEBHOOK_BATCH, &error);
      if (due == NULL)
        {
          g_warning ("event=webhook-read-failed error=%s", error->message);
          continue;
        }
      for (guint i = 0; i < due->len && !webhook_stopping (w); i++)
        webhook_send_one (w, session, due->pdata[i]);
      if (due->len == WEBHOOK_BATCH)
        webhook_kick (w);
    }
  g_object_unref (session);
  g_main_context_pop_thread_default (ctx);
  g_main_context_unref (ctx);
  return NULL;
}

static void
webhook_hook_free (webhook_hook *h)
{
  if (h == NULL)
    return;
  sodium_free (h->secret);
  g_free (h);
}

/* The secret of @q: its owner's alone (mode 0600 or stricter).  */
static webhook_hook *
webhook_hook_load (const intake_queue_config *q, GError **error)
{
  g_autofree char *text = NULL;
  gsize len = 0;
  struct stat sb;
  webhook_hook *h;

  if (stat (q->webhook_secret_file, &sb) != 0)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                   "[queue %s] webhook_secret_file %s: cannot read it",
                   q->name, q->webhook_secret_file);
      return NULL;
    }
  if ((sb.st_mode & 077) != 0 || !S_ISREG (sb.st_mode))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                   "[queue %s] webhook_secret_file %s must be a file of mode"
                   " 0600 (it is %04o)", q->name, q->webhook_secret_file,
                   (unsigned) (sb.st_mode & 07777));
      return NULL;
    }
  if (sb.st_size > WEBHOOK_SECRET_MAX
      || !g_file_get_contents (q->webhook_secret_file, &text, &len, error))
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                     "[queue %s] webhook_secret_file is too long", q->name);
      return NULL;
    }
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    len--;
  if (len < 16)
    {
      sodium_memzero (text, len);
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "[queue %s] webhook_secret_file: a secret of at least 16"
                   " bytes is needed", q->name);
      return NULL;
    }
  h = g_new0 (webhook_hook, 1);
  h->q = q;
  h->secret = sodium_malloc (len);
  g_assert (h->secret != NULL);
  memcpy (h->secret, text, len);
  h->secret_len = len;
  sodium_memzero (text, len);
  return h;
}

webhook *
webhook_start (intake_config *cfg, store *st, GError **error)
{
  g_autoptr (GPtrArray) hooks = g_ptr_array_new_with_free_func (
      (GDestroyNotify) webhook_hook_free);
  g_autoptr (GPtrArray) with_hook = g_ptr_array_new ();
  g_autoptr (GPtrArray) with_notify = g_ptr_array_new ();
  g_autoptr (GPtrArray) with_digest = g_ptr_array_new ();
  webhook *w;

  for (guint i = 0; cfg->queues && i < cfg->queues->len; i++)
    {
      const intake_queue_config *q = cfg->queues->pdata[i];
      if (q->webhook_url != NULL)
        {
          webhook_hook *h = webhook_hook_load (q, error);
          if (h == NULL)
            return NULL;
          g_ptr_array_add (hooks, h);
          g_ptr_array_add (with_hook, q->name);
        }
      /* a notification goes through the smarthost: none without one */
      if (q->notify != NULL && cfg->smarthost != NULL)
        g_ptr_array_add (q->notify_digest ? with_digest : with_notify,
                         q->name);
    }
  g_ptr_array_add (with_hook, NULL);
  g_ptr_array_add (with_notify, NULL);
  g_ptr_array_add (with_digest, NULL);
  if (!store_webhook_queues_set (st, (const char *const *) with_hook->pdata,
                                 (const char *const *) with_notify->pdata,
                                 (const char *const *) with_digest->pdata,
                                 error))
    return NULL;
  if (hooks->len == 0)
    return NULL;
  w = g_new0 (webhook, 1);
  w->cfg = cfg;
  w->st = st;
  w->hooks = g_steal_pointer (&hooks);
  g_mutex_init (&w->lock);
  g_cond_init (&w->cond);
  w->thread = g_thread_new ("webhook", webhook_main, w);
  g_message ("event=webhook-started queues=%u", w->hooks->len);
  return w;
}

void
webhook_kick (webhook *w)
{
  if (w == NULL)
    return;
  g_mutex_lock (&w->lock);
  w->kicked = TRUE;
  g_cond_signal (&w->cond);
  g_mutex_unlock (&w->lock);
}

void
webhook_stop (webhook **wp)
{
  webhook *w = wp ? *wp : NULL;

  if (w == NULL)
    return;
  g_mutex_lock (&w->lock);
  w->stop = TRUE;
  g_cond_signal (&w->cond);
  g_mutex_unlock (&w->lock);
  g_thread_join (w->thread);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->cond);
  g_ptr_array_unref (w->hooks);
  g_free (w);
  *wp = NULL;
}
