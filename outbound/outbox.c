/*
 * outbox.c - the sender thread, and the messages it builds.
 *
 * Owns: one thread, the smarthost settings and password (read at start).
 * What goes out: From the intake mailbox the citizen wrote to, To the
 * inbound *envelope* sender only, Auto-Submitted: auto-replied and the
 * null envelope sender for acknowledgements (RFC 3834: nothing answers
 * them), In-Reply-To/References to the citizen's message, a Message-ID
 * under our host name, Reply-To a plus-address carrying the reference and
 * its MAC, the reference in the subject.
 */
#define G_LOG_DOMAIN "intake-outbound"

#include "outbound/outbox.h"

#include <string.h>

#include <gmime/gmime.h>
#include <sodium.h>

#include "outbound/smtp_send.h"
#include "parser/parser_headers.h"

#define OUTBOX_POLL_S        2
#define OUTBOX_BATCH         50
#define OUTBOX_BACKOFF_FIRST (5 * G_USEC_PER_SEC)
#define OUTBOX_BACKOFF_MAX   ((gint64) 3600 * G_USEC_PER_SEC)

struct outbox {
  intake_config *cfg;
  store *st;
  const store_keys *keys;
  smtp_send_config smtp;
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean stop, kicked;
};

void
outbox_ref_mac (const store_keys *keys, const char *ref, char out[5])
{
  guint8 mac[2];

  crypto_generichash (mac, sizeof mac, (const guint8 *) ref, strlen (ref),
                      store_keys_get (keys, STORE_KEY_FORMS), 32);
  g_snprintf (out, 5, "%02x%02x", mac[0], mac[1]);
}

static char *
outbox_template (const intake_config *cfg, const store_outbox_item *it)
{
  const char *kind = g_strcmp0 (it->kind, "reply") == 0 ? NULL
                                                         : it->case_kind;
  g_autofree char *a = kind ? g_strdup_printf ("ack-%s-%s.txt", kind,
                                               it->queue) : NULL;
  g_autofree char *b = kind ? g_strdup_printf ("ack-%s.txt", kind) : NULL;
  const char *names[] = { a, b,
                          g_strcmp0 (it->kind, "reply") == 0 ? "reply.txt"
                                                             : "ack.txt" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *path = NULL;
      char *text = NULL;
      if (names[i] == NULL)
        continue;
      path = g_build_filename (cfg->templates_dir, names[i], NULL);
      if (g_file_get_contents (path, &text, NULL, NULL))
        return text;
    }
  return g_strdup (g_strcmp0 (it->kind, "reply") == 0
                       ? "Subject: Re: your message [{{ref}}]\n\n{{body}}\n"
                       : "Subject: We have your message [{{ref}}]\n\n"
                         "Your reference is {{ref}}.\n{{due_sentence}}\n");
}

static char *
outbox_fill (const char *tpl, const store_outbox_item *it)
{
  g_autofree char *due = NULL;
  g_autofree char *due_sentence = NULL;
  GString *s = g_string_new (NULL);

  if (it->due_at > 0)
    {
      g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (
          it->due_at / G_USEC_PER_SEC);
      due = g_date_time_format (t, "%A %-d %B %Y");
      due_sentence = g_strdup_printf ("\nWe will answer by %s.\n", due);
    }
  for (const char *p = tpl; *p;)
    {
      const char *open = strstr (p, "{{");
      const char *close = open ? strstr (open, "}}") : NULL;
      g_autofree char *name = NULL;
      const char *v = NULL;

      if (open == NULL || close == NULL)
        {
          g_string_append (s, p);
          break;
        }
      g_string_append_len (s, p, open - p);
      name = g_strndup (open + 2, close - open - 2);
      if (strcmp (name, "ref") == 0)
        v = it->ref;
      else if (strcmp (name, "kind") == 0)
        v = it->case_kind;
      else if (strcmp (name, "queue") == 0)
        v = it->queue;
      else if (strcmp (name, "due") == 0)
        v = due ? due : "";
      else if (strcmp (name, "due_sentence") == 0)
        v = due_sentence ? due_sentence : "";
      else if (strcmp (name, "body") == 0)
        v = it->body ? it->body : "";
      g_string_append (s, v ? v : "");
      p = close + 2;
    }
  return g_string_free (s, FALSE);
}

/* No CR, LF or other controls in anything that becomes a header.  */
static char *
outbox_header_value (const char *v)
{
  char *out = g_strdup (v ? v : "");

  for (char *p = out; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      *p = ' ';
  return g_strstrip (out);
}

GBytes *
outbox_build (const intake_config *cfg, const store_keys *keys,
              const store_outbox_item *it, char **rcpt)
{
  g_autofree char *tpl = outbox_template (cfg, it);
  g_autofree char *filled = outbox_fill (tpl, it);
  g_autofree char *subject = NULL;
  g_autofree char *to = NULL;
  g_autofree char *mailbox = NULL;
  g_autofree char *reply_to = NULL;
  g_autofree char *mid = NULL;
  const char *body = filled;
  const char *label;
  GMimeMessage *msg;
  GMimeTextPart *text;
  GMimeStream *out;
  GByteArray *ba;
  GBytes *result;
  char mac[5];

  *rcpt = NULL;
  to = outbox_header_value (it->to);
  if (*to == '\0' || strchr (to, '@') == NULL || strchr (to, ' ') != NULL)
    return NULL;                /* nobody to write to */
  mailbox = outbox_header_value (it->mailbox ? it->mailbox
                                             : "enquiries@invalid");
  if (g_str_has_prefix (filled, "Subject:"))
    {
      const char *nl = strchr (filled, '\n');
      g_autofree char *line = g_strndup (filled + 8,
                                         nl ? (gsize) (nl - filled - 8)
                                            : strlen (filled + 8));
      subject = outbox_header_value (line);
      body = nl ? nl + 1 : "";
      while (*body == '\r' || *body == '\n')
        body++;
    }
  if (subject == NULL || strstr (subject, it->ref) == NULL)
    {
      g_autofree char *base = subject ? g_steal_pointer (&subject)
                                      : g_strdup ("Your message");
      subject = g_strdup_printf ("%s [%s]", base, it->ref);
    }
  parser_init ();
  msg = g_mime_message_new (TRUE);
  text = g_mime_text_part_new_with_subtype ("plain");
  g_mime_text_part_set_text (text, body);
  g_mime_text_part_set_charset (text, "utf-8");
  g_mime_message_set_mime_part (msg, GMIME_OBJECT (text));
  label = g_hash_table_lookup (cfg->mailboxes, mailbox);
  g_mime_message_add_mailbox (msg, GMIME_ADDRESS_TYPE_FROM,
                              label ? label : "", mailbox);
  g_mime_message_add_mailbox (msg, GMIME_ADDRESS_TYPE_TO, NULL, to);
  {
    const char *at = strrchr (mailbox, '@');
    outbox_ref_mac (keys, it->ref, mac);
    reply_to = at ? g_strdup_printf ("%.*s+%s.%s%s", (int) (at - mailbox),
                                     mailbox, it->ref, mac, at)
                  : g_strdup (mailbox);
    g_mime_message_add_mailbox (msg, GMIME_ADDRESS_TYPE_REPLY_TO,
                                label ? label : "", reply_to);
  }
  g_mime_message_set_subject (msg, subject, "utf-8");
  {
    g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
    g_mime_message_set_date (msg, now);
  }
  mid = g_strdup_printf ("%s-%s-%08x@%s", it->kind, it->ref, g_random_int (),
                         cfg->hostname);
  g_mime_message_set_message_id (msg, mid);
  if (it->in_reply_to && *it->in_reply_to)
    {
      g_autofree char *irt = outbox_header_value (it->in_reply_to);
      g_autofree char *bracketed = g_strdup_printf ("<%s>", irt);
      g_mime_object_set_header (GMIME_OBJECT (msg), "In-Reply-To", bracketed,
                                NULL);
      g_mime_object_set_header (GMIME_OBJECT (msg), "References", bracketed,
                                NULL);
    }
  if (g_strcmp0 (it->kind, "ack") == 0)
    {
      /* RFC 3834: an automatic answer; nothing should answer it */
      g_mime_object_set_header (GMIME_OBJECT (msg), "Auto-Submitted",
                                "auto-replied", NULL);
      g_mime_object_set_header (GMIME_OBJECT (msg), "X-Auto-Response-Suppress",
                                "All", NULL);
    }
  out = g_mime_stream_mem_new ();
  g_mime_object_write_to_stream (GMIME_OBJECT (msg), NULL, out);
  ba = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (out));
  result = g_bytes_new (ba->data, ba->len);
  g_object_unref (out);
  g_object_unref (text);
  g_object_unref (msg);
  *rcpt = g_steal_pointer (&to);
  return result;
}

static void
outbox_send_one (outbox *o, store_outbox_item *it)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *rcpt = NULL;
  g_autofree char *reply = NULL;
  g_autoptr (GBytes) raw = outbox_build (o->cfg, o->keys, it, &rcpt);
  gint64 now = g_get_real_time ();
  smtp_send_result r;

  if (raw == NULL)
    {
      store_outbox_done (o->st, it->id, FALSE, 0, TRUE, "no recipient",
                         &error);
      return;
    }
  /* acknowledgements go with the null sender (RFC 3834); replies too:
   * bounces must not come back into a case as mail */
  r = smtp_send (&o->smtp, "", rcpt, raw, &reply);
  if (r == SMTP_SEND_OK)
    {
      g_message ("event=sent outbox=%" G_GINT64_FORMAT " ref=%s kind=%s",
                 it->id, it->ref, it->kind);
      store_outbox_done (o->st, it->id, TRUE, 0, FALSE, reply, &error);
    }
  else if (r == SMTP_SEND_PERMFAIL
           || now - it->created_at
                  > (gint64) o->cfg->retry_for_s * G_USEC_PER_SEC)
    {
      g_warning ("event=send-failed outbox=%" G_GINT64_FORMAT " ref=%s"
                 " permanent=1", it->id, it->ref);
      store_outbox_done (o->st, it->id, FALSE, 0, TRUE, reply, &error);
    }
  else
    {
      gint64 wait = MIN (OUTBOX_BACKOFF_FIRST << MIN (it->attempts, 20u),
                         OUTBOX_BACKOFF_MAX);
      g_message ("event=send-deferred outbox=%" G_GINT64_FORMAT " ref=%s"
                 " retry_in_s=%" G_GINT64_FORMAT, it->id, it->ref,
                 wait / G_USEC_PER_SEC);
      store_outbox_done (o->st, it->id, FALSE, now + wait, FALSE, reply,
                         &error);
    }
  if (error != NULL)
    g_warning ("event=outbox-update-failed outbox=%" G_GINT64_FORMAT
               " error=%s", it->id, error->message);
}

static gpointer
outbox_main (gpointer data)
{
  outbox *o = data;

  for (;;)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GPtrArray) due = NULL;

      g_mutex_lock (&o->lock);
      if (!o->stop && !o->kicked)
        g_cond_wait_until (&o->cond, &o->lock,
                           g_get_monotonic_time ()
                               + OUTBOX_POLL_S * G_TIME_SPAN_SECOND);
      o->kicked = FALSE;
      if (o->stop)
        {
          g_mutex_unlock (&o->lock);
          return NULL;
        }
      g_mutex_unlock (&o->lock);
      due = store_outbox_due (o->st, OUTBOX_BATCH, &error);
      if (due == NULL)
        {
          g_warning ("event=outbox-read-failed error=%s", error->message);
          continue;
        }
      for (guint i = 0; i < due->len; i++)
        {
          g_mutex_lock (&o->lock);
          gboolean stop = o->stop;
          g_mutex_unlock (&o->lock);
          if (stop)
            return NULL;
          outbox_send_one (o, due->pdata[i]);
        }
      if (due->len == OUTBOX_BATCH)
        outbox_kick (o);
    }
}

outbox *
outbox_start (intake_config *cfg, store *st, const store_keys *keys,
              GError **error)
{
  outbox *o;
  g_autoptr (GSocketConnectable) na = NULL;

  if (cfg->smarthost == NULL)
    return NULL;
  na = g_network_address_parse (cfg->smarthost, 25, error);
  if (na == NULL)
    return NULL;
  o = g_new0 (outbox, 1);
  o->cfg = cfg;
  o->st = st;
  o->keys = keys;
  o->smtp.host = g_strdup (g_network_address_get_hostname (
      G_NETWORK_ADDRESS (na)));
  o->smtp.port = g_network_address_get_port (G_NETWORK_ADDRESS (na));
  o->smtp.starttls = cfg->smarthost_starttls;
  o->smtp.ca_file = g_strdup (cfg->smarthost_ca);
  o->smtp.user = g_strdup (cfg->smarthost_user);
  o->smtp.helo = g_strdup (cfg->hostname);
  o->smtp.timeout_s = 60;
  if (cfg->smarthost_password_file != NULL
      && !g_file_get_contents (cfg->smarthost_password_file,
                               &o->smtp.password, NULL, error))
    {
      g_free (o);
      return NULL;
    }
  if (o->smtp.password)
    g_strchomp (o->smtp.password);
  g_mutex_init (&o->lock);
  g_cond_init (&o->cond);
  o->thread = g_thread_new ("outbox", outbox_main, o);
  g_message ("event=outbox-started smarthost=%s starttls=%d",
             cfg->smarthost, o->smtp.starttls);
  return o;
}

void
outbox_kick (outbox *o)
{
  if (o == NULL)
    return;
  g_mutex_lock (&o->lock);
  o->kicked = TRUE;
  g_cond_signal (&o->cond);
  g_mutex_unlock (&o->lock);
}

void
outbox_stop (outbox **op)
{
  outbox *o = op ? *op : NULL;

  if (o == NULL)
    return;
  g_mutex_lock (&o->lock);
  o->stop = TRUE;
  g_cond_signal (&o->cond);
  g_mutex_unlock (&o->lock);
  g_thread_join (o->thread);
  g_mutex_clear (&o->lock);
  g_cond_clear (&o->cond);
  g_free (o->smtp.host);
  g_free (o->smtp.ca_file);
  g_free (o->smtp.user);
  if (o->smtp.password)
    memset (o->smtp.password, 0, strlen (o->smtp.password));
  g_free (o->smtp.password);
  g_free (o->smtp.helo);
  g_free (o);
  *op = NULL;
}
