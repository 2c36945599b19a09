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
  G_STATIC_ASSERT (STORE_REF_MAC_LEN == 4);
  store_ref_mac (keys, ref, out);
}

/* Whether @it is written in Welsh ("cy"): the language its mailbox or
 * form was configured with when it was filed.  */
static gboolean
outbox_welsh (const store_outbox_item *it)
{
  return g_strcmp0 (it->language, "cy") == 0
         && g_strcmp0 (it->kind, "notify") != 0;
}

/* The template for @it: for an acknowledgement ack-KIND-QUEUE, ack-KIND,
 * ack; for a reply reply; for a department notification notify -- each
 * first as NAME.cy.txt when the message is in Welsh (any Welsh template
 * before any English one), then NAME.txt.  The file found may have an
 * HTML sibling (NAME.cy.html, NAME.html), returned in @html (else NULL):
 * the message then carries both, as multipart/alternative.  */
static char *
outbox_template (const intake_config *cfg, const store_outbox_item *it,
                 char **html)
{
  gboolean reply = g_strcmp0 (it->kind, "reply") == 0;
  gboolean digest = g_strcmp0 (it->kind, "digest") == 0;
  gboolean notify = g_strcmp0 (it->kind, "notify") == 0 || digest;
  const char *kind = reply || notify ? NULL : it->case_kind;
  g_autofree char *a = kind ? g_strdup_printf ("ack-%s-%s", kind, it->queue)
                            : NULL;
  g_autofree char *b = kind ? g_strdup_printf ("ack-%s", kind) : NULL;
  const char *names[] = { a, b, reply ? "reply"
                                : digest ? "notify-digest"
                                : notify ? "notify" : "ack" };

  for (int welsh = outbox_welsh (it); welsh >= 0; welsh--)
    for (guint i = 0; i < G_N_ELEMENTS (names); i++)
      {
        g_autofree char *file = NULL;
        g_autofree char *path = NULL;
        char *text = NULL;
        if (names[i] == NULL)
          continue;
        file = g_strconcat (names[i], welsh ? ".cy.txt" : ".txt", NULL);
        path = g_build_filename (cfg->templates_dir, file, NULL);
        if (g_file_get_contents (path, &text, NULL, NULL))
          {
            g_autofree char *hfile = g_strconcat (names[i], welsh ? ".cy.html"
                                                                  : ".html",
                                                  NULL);
            g_autofree char *hpath = g_build_filename (cfg->templates_dir,
                                                       hfile, NULL);
            if (html != NULL
                && !g_file_get_contents (hpath, html, NULL, NULL))
              *html = NULL;
            return text;
          }
      }
  if (digest)
    return g_strdup ("Subject: New cases in {{queue}}\n\n"
                     "These cases arrived in the {{queue}} queue:\n\n"
                     "{{body}}\nOpen one with intakectl cases show REF (or"
                     " GET /api/v1/cases/REF).\n");
  if (notify)
    return g_strdup ("Subject: New case {{ref}} in {{queue}}\n\n"
                     "Case {{ref}} ({{kind}}, priority {{priority}}) is"
                     " waiting in {{queue}}.\n{{due_sentence}}\n"
                     "Open it: {{link}}\n");
  return g_strdup (reply
                       ? "Subject: Re: your message [{{ref}}]\n\n{{body}}\n"
                       : "Subject: We have your message [{{ref}}]\n\n"
                         "Your reference is {{ref}}.\n{{due_sentence}}\n");
}

/* A date in Welsh: "Dydd Gwener 22 Ionawr 2027".  */
static char *
outbox_date_cy (GDateTime *t)
{
  static const char *const days[] = { "Dydd Llun", "Dydd Mawrth",
                                      "Dydd Mercher", "Dydd Iau",
                                      "Dydd Gwener", "Dydd Sadwrn",
                                      "Dydd Sul" };
  static const char *const months[] = { "Ionawr", "Chwefror", "Mawrth",
                                        "Ebrill", "Mai", "Mehefin",
                                        "Gorffennaf", "Awst", "Medi",
                                        "Hydref", "Tachwedd", "Rhagfyr" };

  return g_strdup_printf ("%s %d %s %d",
                          days[g_date_time_get_day_of_week (t) - 1],
                          g_date_time_get_day_of_month (t),
                          months[g_date_time_get_month (t) - 1],
                          g_date_time_get_year (t));
}

/* @v for an HTML template: escaped, and (@lines) each line break a
 * <br> -- what we put in is text, never markup (a department's reply, a
 * queue name from the configuration).  */
static void
outbox_append_html (GString *s, const char *v, gboolean lines)
{
  g_autofree char *esc = g_markup_escape_text (v, -1);

  for (const char *p = esc; *p; p++)
    {
      if (lines && *p == '\r')
        continue;
      if (lines && *p == '\n')
        g_string_append (s, "<br>\n");
      else
        g_string_append_c (s, *p);
    }
}

/* @tpl with its {{names}} filled in for @it; @html: the template is HTML
 * and every value is escaped.  */
static char *
outbox_fill (const intake_config *cfg, const char *tpl,
             const store_outbox_item *it, gboolean html)
{
  g_autofree char *due = NULL;
  g_autofree char *due_sentence = NULL;
  g_autofree char *link = NULL;
  gboolean notify = g_strcmp0 (it->kind, "notify") == 0;
  GString *s = g_string_new (NULL);

  if (it->due_at > 0)
    {
      g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (
          it->due_at / G_USEC_PER_SEC);
      if (outbox_welsh (it))
        {
          due = outbox_date_cy (t);
          due_sentence = g_strdup_printf ("\nByddwn yn ateb erbyn %s.\n",
                                          due);
        }
      else
        {
          due = g_date_time_format (t, "%A %-d %B %Y");
          due_sentence = g_strdup_printf (notify ? "\nDue by %s.\n"
                                                 : "\nWe will answer by %s.\n",
                                          due);
        }
    }
  /* how a department opens the case: the configured link, or the command
   * and the API path */
  if (cfg->case_url != NULL)
    {
      g_auto (GStrv) parts = g_strsplit (cfg->case_url, "{{ref}}", -1);
      link = g_strjoinv (it->ref, parts);
    }
  else
    link = g_strdup_printf ("intakectl cases show %s (or GET"
                            " /api/v1/cases/%s)", it->ref, it->ref);
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
      else if (strcmp (name, "priority") == 0)
        v = it->priority ? it->priority : "normal";
      else if (strcmp (name, "link") == 0)
        v = link;
      /* a notification carries no personal data: no reply text in it */
      else if (strcmp (name, "body") == 0 && !notify)
        v = it->body ? it->body : "";
      if (html)
        outbox_append_html (s, v ? v : "", strcmp (name, "body") == 0
                                           || strcmp (name, "due_sentence")
                                              == 0);
      else
        g_string_append (s, v ? v : "");
      p = close + 2;
    }
  return g_string_free (s, FALSE);
}

/* The intake mailbox a message came to, without a plus-address detail
 * ("enquiries+ESC-2026-000123-K.3f9a@..." is enquiries@...).  */
static char *
outbox_mailbox (const char *rcpt)
{
  g_autofree char *lower = g_ascii_strdown (rcpt ? rcpt
                                                 : "enquiries@invalid", -1);
  const char *at = strrchr (lower, '@');
  const char *plus = at ? memchr (lower, '+', (gsize) (at - lower)) : NULL;
  char *out;

  if (plus != NULL && plus > lower)
    out = g_strdup_printf ("%.*s%s", (int) (plus - lower), lower, at);
  else
    out = g_strdup (lower);
  for (char *p = out; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      *p = ' ';
  return g_strstrip (out);
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

/* A Message-ID from outside (without its angle brackets) that can go into
 * In-Reply-To and References as it is: printable ASCII without spaces,
 * angle brackets or quotes, one '@' with something on each side, at most
 * 250 bytes (RFC 5322 3.6.4 msg-id, its dot-atom form).  Anything else
 * ("broken", "a b@c", a 10 KB id) is left out: a reply without threading
 * headers is better than a malformed one (SECURITY-TESTS 48).  */
static gboolean
outbox_msg_id_valid (const char *id)
{
  const char *at;
  gsize n;

  if (id == NULL || (n = strlen (id)) == 0 || n > 250)
    return FALSE;
  for (const char *p = id; *p; p++)
    if ((guchar) *p <= 0x20 || (guchar) *p >= 0x7f || *p == '<' || *p == '>'
        || *p == '"' || *p == '\\' || *p == ',' || *p == ';')
      return FALSE;
  at = strchr (id, '@');
  return at != NULL && at != id && at[1] != '\0' && strchr (at + 1, '@') == NULL;
}

GBytes *
outbox_build (const intake_config *cfg, const store_keys *keys,
              const store_outbox_item *it, char **rcpt)
{
  g_autofree char *html_tpl = NULL;
  g_autofree char *tpl = outbox_template (cfg, it, &html_tpl);
  g_autofree char *filled = outbox_fill (cfg, tpl, it, FALSE);
  g_autofree char *html = html_tpl ? outbox_fill (cfg, html_tpl, it, TRUE)
                                   : NULL;
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
  gboolean digest = g_strcmp0 (it->kind, "digest") == 0;
  gboolean notify = g_strcmp0 (it->kind, "notify") == 0 || digest;

  *rcpt = NULL;
  if (notify)
    {
      /* the department's address, from intake.conf as it is now */
      const intake_queue_config *q = intake_config_queue (cfg, it->queue);
      to = outbox_header_value (q ? q->notify : NULL);
      mailbox = g_strdup_printf ("noreply@%s", cfg->hostname);
    }
  else
    {
      to = outbox_header_value (it->to);
      mailbox = outbox_mailbox (it->mailbox);
    }
  if (*to == '\0' || strchr (to, '@') == NULL || strchr (to, ' ') != NULL)
    return NULL;                /* nobody to write to */
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
  if (!digest && (subject == NULL || strstr (subject, it->ref) == NULL))
    {
      g_autofree char *base = subject ? g_steal_pointer (&subject)
                                      : g_strdup ("Your message");
      subject = g_strdup_printf ("%s [%s]", base, it->ref);
    }
  if (subject == NULL)
    subject = g_strdup ("New cases");
  parser_init ();
  msg = g_mime_message_new (TRUE);
  text = g_mime_text_part_new_with_subtype ("plain");
  g_mime_text_part_set_text (text, body);
  g_mime_text_part_set_charset (text, "utf-8");
  if (html != NULL)
    {
      /* the plain text first: the last alternative is the preferred one
       * (RFC 2046 5.1.4), and a reader without HTML shows the first */
      GMimeMultipart *alt = g_mime_multipart_new_with_subtype ("alternative");
      GMimeTextPart *h = g_mime_text_part_new_with_subtype ("html");
      const char *hbody = html;

      /* a Subject line in the HTML template is not part of the body */
      if (g_str_has_prefix (hbody, "Subject:"))
        {
          const char *nl = strchr (hbody, '\n');
          hbody = nl ? nl + 1 : "";
        }
      g_mime_text_part_set_text (h, hbody);
      g_mime_text_part_set_charset (h, "utf-8");
      g_mime_multipart_add (alt, GMIME_OBJECT (text));
      g_mime_multipart_add (alt, GMIME_OBJECT (h));
      g_object_unref (h);
      g_mime_message_set_mime_part (msg, GMIME_OBJECT (alt));
      g_object_unref (alt);
    }
  else
    g_mime_message_set_mime_part (msg, GMIME_OBJECT (text));
  label = notify ? "intake" : g_hash_table_lookup (cfg->mailboxes, mailbox);
  g_mime_message_add_mailbox (msg, GMIME_ADDRESS_TYPE_FROM,
                              label ? label : "", mailbox);
  g_mime_message_add_mailbox (msg, GMIME_ADDRESS_TYPE_TO, NULL, to);
  /* a department answering a notification must not reach the citizen's
   * case: no plus-address, no threading headers */
  if (!notify)
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
  if (!notify && outbox_msg_id_valid (it->in_reply_to))
    {
      g_autofree char *irt = outbox_header_value (it->in_reply_to);
      g_autofree char *bracketed = g_strdup_printf ("<%s>", irt);
      g_mime_object_set_header (GMIME_OBJECT (msg), "In-Reply-To", bracketed,
                                NULL);
      g_mime_object_set_header (GMIME_OBJECT (msg), "References", bracketed,
                                NULL);
    }
  if (notify)
    g_mime_object_set_header (GMIME_OBJECT (msg), "Auto-Submitted",
                              "auto-generated", NULL);
  else if (g_strcmp0 (it->kind, "ack") == 0)
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

/* Record what happened to every row of @items (one message).  */
gboolean
outbox_digest (const intake_config *cfg, const store_outbox_item *it)
{
  const intake_queue_config *q = g_strcmp0 (it->kind, "notify") == 0
                                     ? intake_config_queue (cfg, it->queue)
                                     : NULL;

  return q != NULL && q->notify_digest;
}

GBytes *
outbox_build_digest (const intake_config *cfg, GPtrArray *items,
                     char **rcpt)
{
  const store_outbox_item *first = items->pdata[0];
  store_outbox_item carrier = *first;
  g_autoptr (GString) list = g_string_new (NULL);

  for (guint i = 0; i < items->len; i++)
    {
      const store_outbox_item *it = items->pdata[i];
      g_autofree char *line = NULL;
      g_autofree char *due = NULL;

      if (it->due_at > 0)
        {
          g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (
              it->due_at / G_USEC_PER_SEC);
          due = g_date_time_format (t, ", due %A %-d %B %Y");
        }
      if (cfg->case_url != NULL)
        {
          g_auto (GStrv) parts = g_strsplit (cfg->case_url, "{{ref}}", -1);
          line = g_strjoinv (it->ref, parts);
        }
      g_string_append_printf (list, "- %s: %s, priority %s%s\n%s%s%s",
                              it->ref, it->case_kind,
                              it->priority ? it->priority : "normal",
                              due ? due : "", line ? "  " : "",
                              line ? line : "", line ? "\n" : "");
    }
  carrier.kind = (char *) "digest";
  carrier.body = list->str;
  carrier.due_at = 0;
  carrier.subject = NULL;
  carrier.in_reply_to = NULL;
  carrier.language = NULL;
  return outbox_build (cfg, NULL, &carrier, rcpt);
}

static void
outbox_done_all (outbox *o, GPtrArray *items, gboolean sent, gint64 next_at,
                 gboolean failed, const char *reply)
{
  for (guint i = 0; i < items->len; i++)
    {
      const store_outbox_item *it = items->pdata[i];
      g_autoptr (GError) error = NULL;

      if (!store_outbox_done (o->st, it->id, sent, next_at, failed, reply,
                              &error))
        g_warning ("event=outbox-update-failed outbox=%" G_GINT64_FORMAT
                   " error=%s", it->id, error->message);
    }
}

/* Send one message: one outbox row, or the rows of an hourly digest (all
 * for one queue, the first one's attempts and age deciding).  */
static void
outbox_send_one (outbox *o, GPtrArray *items)
{
  const store_outbox_item *it = items->pdata[0];
  g_autofree char *rcpt = NULL;
  g_autofree char *reply = NULL;
  g_autoptr (GBytes) raw = items->len > 1 || outbox_digest (o->cfg, it)
                               ? outbox_build_digest (o->cfg, items, &rcpt)
                               : outbox_build (o->cfg, o->keys, it, &rcpt);
  gint64 now = g_get_real_time ();
  smtp_send_result r;

  if (raw == NULL)
    {
      outbox_done_all (o, items, FALSE, 0, TRUE, "no recipient");
      return;
    }
  /* acknowledgements go with the null sender (RFC 3834); replies too:
   * bounces must not come back into a case as mail */
  r = smtp_send (&o->smtp, "", rcpt, raw, &reply);
  if (r == SMTP_SEND_OK)
    {
      g_message ("event=sent outbox=%" G_GINT64_FORMAT " ref=%s kind=%s"
                 " rows=%u", it->id, it->ref, it->kind, items->len);
      outbox_done_all (o, items, TRUE, 0, FALSE, reply);
    }
  else if (r == SMTP_SEND_PERMFAIL
           || now - it->created_at
                  > (gint64) o->cfg->retry_for_s * G_USEC_PER_SEC)
    {
      g_warning ("event=send-failed outbox=%" G_GINT64_FORMAT " ref=%s"
                 " permanent=1", it->id, it->ref);
      outbox_done_all (o, items, FALSE, 0, TRUE, reply);
    }
  else
    {
      gint64 wait = MIN (OUTBOX_BACKOFF_FIRST << MIN (it->attempts, 20u),
                         OUTBOX_BACKOFF_MAX);
      g_message ("event=send-deferred outbox=%" G_GINT64_FORMAT " ref=%s"
                 " retry_in_s=%" G_GINT64_FORMAT, it->id, it->ref,
                 wait / G_USEC_PER_SEC);
      outbox_done_all (o, items, FALSE, now + wait, FALSE, reply);
    }
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
          g_autoptr (GPtrArray) group = g_ptr_array_new ();
          store_outbox_item *it = due->pdata[i];
          g_mutex_lock (&o->lock);
          gboolean stop = o->stop;
          g_mutex_unlock (&o->lock);
          if (stop)
            return NULL;
          if (it == NULL)
            continue;             /* went out in a digest already */
          g_ptr_array_add (group, it);
          /* an hourly digest: every due notification of the queue */
          for (guint j = i + 1; outbox_digest (o->cfg, it) && j < due->len;
               j++)
            {
              store_outbox_item *other = due->pdata[j];
              if (other != NULL && g_strcmp0 (other->kind, "notify") == 0
                  && g_strcmp0 (other->queue, it->queue) == 0)
                {
                  g_ptr_array_add (group, other);
                  due->pdata[j] = NULL;
                }
            }
          outbox_send_one (o, group);
          due->pdata[i] = NULL;
          store_outbox_item_free (it);
          for (guint j = 1; j < group->len; j++)
            store_outbox_item_free (group->pdata[j]);
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
