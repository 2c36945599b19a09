/*
 * router.c - classifier, rules and statutory clock put together.
 *
 * Owns: the current rule set (behind a mutex, reference-counted so a
 * decision in flight keeps the set it started with), the models and the
 * calendar (read-only after load).
 */
#define G_LOG_DOMAIN "intake-router"

#include "router/router.h"

#include <math.h>
#include <string.h>

#include "router/classify.h"
#include "router/clock.h"

/* Text the classifier reads: subject and the first part of the body.  */
#define ROUTER_CLASSIFY_BYTES (16 * 1024)

struct router {
  GMutex lock;
  rules *rules;
  char *rules_path;
  classify_model *kind_model;
  classify_model *topic_model;
  clock_calendar *calendar;
  GHashTable *clocks;        /* name -> clock_rule * */
};

void
router_result_clear (router_result *r)
{
  rules_decision_clear (&r->d);
  g_clear_pointer (&r->rules_hash, g_free);
  g_clear_pointer (&r->reasons, g_free);
}

void
router_free (router *r)
{
  if (r == NULL)
    return;
  g_clear_pointer (&r->rules, rules_unref);
  g_free (r->rules_path);
  g_clear_pointer (&r->kind_model, classify_model_free);
  g_clear_pointer (&r->topic_model, classify_model_free);
  clock_calendar_free (&r->calendar);
  if (r->clocks)
    g_hash_table_unref (r->clocks);
  g_mutex_clear (&r->lock);
  g_free (r);
}

router *
router_new (const router_config *cfg, GError **error)
{
  router *r = g_new0 (router, 1);

  g_mutex_init (&r->lock);
  r->clocks = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  r->rules_path = g_strdup (cfg->rules);
  r->rules = rules_load (cfg->rules, error);
  if (r->rules == NULL)
    goto fail;
  if (cfg->kind_model
      && (r->kind_model = classify_model_load (cfg->kind_model, error))
             == NULL)
    goto fail;
  if (cfg->topic_model
      && (r->topic_model = classify_model_load (cfg->topic_model, error))
             == NULL)
    goto fail;
  if (cfg->holidays
      && (r->calendar = clock_calendar_load (cfg->holidays,
                                             cfg->nation ? cfg->nation
                                                         : "england-and-wales",
                                             error)) == NULL)
    goto fail;
  if (cfg->clocks)
    {
      GHashTableIter it;
      gpointer k, v;
      g_hash_table_iter_init (&it, cfg->clocks);
      while (g_hash_table_iter_next (&it, &k, &v))
        {
          clock_rule *cr = g_new0 (clock_rule, 1);
          GError *local = NULL;
          if (!clock_rule_parse (v, cr, &local))
            {
              g_set_error (error, RULES_ERROR, RULES_ERROR_SYNTAX,
                           "[clocks] %s: %s", (const char *) k,
                           local->message);
              g_error_free (local);
              g_free (cr);
              goto fail;
            }
          g_hash_table_insert (r->clocks, g_strdup (k), cr);
        }
    }
  return r;

fail:
  router_free (r);
  return NULL;
}

gboolean
router_reload (router *r, const char *path, GError **error)
{
  rules *fresh = rules_load (path ? path : r->rules_path, error);
  rules *old;

  if (fresh == NULL)
    return FALSE;
  g_mutex_lock (&r->lock);
  old = r->rules;
  r->rules = fresh;
  g_mutex_unlock (&r->lock);
  rules_unref (old);
  return TRUE;
}

rules *
router_rules (router *r)
{
  rules *cur;

  g_mutex_lock (&r->lock);
  cur = rules_ref (r->rules);
  g_mutex_unlock (&r->lock);
  return cur;
}

static guint
router_classify (const classify_model *m, const classify_tokens *toks,
                 rules_score *out)
{
  classify_score s[ROUTER_MAX_SCORES];
  guint n;

  if (m == NULL)
    return 0;
  n = classify_text_tokens (m, toks, s, ROUTER_MAX_SCORES);
  for (guint i = 0; i < n; i++)
    {
      out[i].label = s[i].label;
      out[i].score = s[i].score;
    }
  return n;
}

/* The bytes of @s[@len] (no NUL among them) up to the first that is not
 * valid UTF-8: g_utf8_validate()'s end, with ASCII (most mail) skipped
 * eight bytes a step instead of going through its character loop.  */
static gsize
router_utf8_prefix (const char *s, gsize len)
{
  const char *end;
  gsize i = 0;

  for (; i + 8 <= len; i += 8)
    {
      guint64 w;

      memcpy (&w, s + i, 8);
      if (w & G_GUINT64_CONSTANT (0x8080808080808080))
        break;
    }
  g_utf8_validate (s + i, (gssize) (len - i), &end);
  return (gsize) (end - s);
}

/* The classifier's text is put together in a buffer of the thread's,
 * kept for the next decision, when it is no longer than this: a 2 KiB
 * allocation a message was a large one for malloc, which first
 * consolidates the small chunks freed since (glibc's malloc_consolidate).  */
#define ROUTER_SCRATCH_KEEP (64 * 1024)

static GPrivate router_scratch_key =
    G_PRIVATE_INIT ((GDestroyNotify) g_byte_array_unref);

/* Both models score the subject, a line break and the start of the body
 * (ROUTER_CLASSIFY_BYTES, to its first NUL), tokenized once and cut
 * before the first byte that is not valid UTF-8: a cut never falls
 * inside a character.  */
static void
router_classify_text (router *r, const char *subject, const char *body,
                      router_result *out)
{
  g_autofree char *own = NULL;
  char *text;
  g_autoptr (classify_tokens) toks = NULL;
  gsize slen = subject ? strlen (subject) : 0;
  gsize blen = body ? strnlen (body, ROUTER_CLASSIFY_BYTES) : 0;
  gsize len;

  if (r->kind_model == NULL && r->topic_model == NULL)
    return;
  if (slen + 1 + blen + 1 <= ROUTER_SCRATCH_KEEP)
    {
      GByteArray *buf = g_private_get (&router_scratch_key);

      if (buf == NULL)
        {
          buf = g_byte_array_sized_new (4096);
          g_private_set (&router_scratch_key, buf);
        }
      g_byte_array_set_size (buf, (guint) (slen + 1 + blen + 1));
      text = (char *) buf->data;
    }
  else
    text = own = g_malloc (slen + 1 + blen + 1);
  memcpy (text, subject ? subject : "", slen);
  text[slen] = '\n';
  memcpy (text + slen + 1, body ? body : "", blen);
  text[slen + 1 + blen] = '\0';
  len = router_utf8_prefix (text, slen + 1 + blen);
  text[len] = '\0';
  toks = classify_tokens_new (text, (gssize) len);
  out->n_kinds = router_classify (r->kind_model, toks, out->kinds);
  out->n_topics = router_classify (r->topic_model, toks, out->topics);
}

/* The routing reasons as compact JSON, written directly: json-glib's
 * builder, node tree and generator were a sixth of the pipeline thread's
 * CPU per message (docs/performance.md).  The same members, in the same
 * order, as json-glib wrote them; test_rules checks the two agree.  */
static void
router_json_str (GString *o, const char *s)
{
  static const char hex[] = "0123456789abcdef";
  const guchar *p = (const guchar *) (s ? s : "");

  g_string_append_c (o, '"');
  for (;;)
    {
      /* printable ASCII but the quote and the backslash, as it is: a
       * run of it in one append */
      const guchar *q = p;

      while (*q >= 0x20 && *q < 0x7f && *q != '"' && *q != '\\')
        q++;
      if (q > p)
        g_string_append_len (o, (const char *) p, q - p);
      p = q;
      if (*p == '\0')
        break;
      switch (*p)
        {
        case '"': g_string_append (o, "\\\""); break;
        case '\\': g_string_append (o, "\\\\"); break;
        case '\b': g_string_append (o, "\\b"); break;
        case '\f': g_string_append (o, "\\f"); break;
        case '\n': g_string_append (o, "\\n"); break;
        case '\r': g_string_append (o, "\\r"); break;
        case '\t': g_string_append (o, "\\t"); break;
        default:
          if (*p < 0x20 || *p == 0x7f)
            {
              g_string_append (o, "\\u00");
              g_string_append_c (o, hex[*p >> 4]);
              g_string_append_c (o, hex[*p & 0xf]);
            }
          else
            {
              /* Never invalid UTF-8 in the output (it would not be
               * JSON): rule files and model labels are checked on load,
               * but this is the last place to catch anything else.  A
               * byte that does not start a valid character becomes
               * U+FFFD, as in g_utf8_make_valid().  */
              gunichar c = g_utf8_get_char_validated ((const char *) p, -1);
              if (c == (gunichar) -1 || c == (gunichar) -2)
                g_string_append (o, "\xef\xbf\xbd");
              else
                {
                  guint n = (guint) g_unichar_to_utf8 (c, NULL);
                  g_string_append_len (o, (const char *) p, n);
                  p += n - 1;
                }
            }
        }
      p++;
    }
  g_string_append_c (o, '"');
}

static void
router_json_member (GString *o, const char *name)
{
  if (o->len > 1)
    g_string_append_c (o, ',');
  router_json_str (o, name);
  g_string_append_c (o, ':');
}

static void
router_json_strs (GString *o, const char *name, GPtrArray *list)
{
  router_json_member (o, name);
  g_string_append_c (o, '[');
  for (guint i = 0; list && i < list->len; i++)
    {
      if (i > 0)
        g_string_append_c (o, ',');
      router_json_str (o, list->pdata[i]);
    }
  g_string_append_c (o, ']');
}

/* A score as the reasons write it: three decimals, in g_ascii_dtostr's
 * digits, and a double stays a double (json-glib's ".0").  */
static void
router_json_score (char *buf, gsize size, double v)
{
  g_ascii_dtostr (buf, size, v);
  if (strpbrk (buf, ".eE") == NULL)
    g_strlcat (buf, ".0", size);
}

/* Scores are probabilities, so three decimals give 1,001 texts: written
 * once, here, instead of formatting a double for each score of every
 * decision (two fifths of the reasons' instructions).  Each is what
 * router_json_score() writes for it.  */
#define ROUTER_SCORE_STEPS 1000
#define ROUTER_SCORE_TEXT_MAX 24

static const char *
router_score_text (guint k)
{
  static gsize once;
  static char text[ROUTER_SCORE_STEPS + 1][ROUTER_SCORE_TEXT_MAX];

  g_assert (k <= ROUTER_SCORE_STEPS);
  if (g_once_init_enter (&once))
    {
      for (guint i = 0; i <= ROUTER_SCORE_STEPS; i++)
        {
          char buf[G_ASCII_DTOSTR_BUF_SIZE + 2];

          gsize len;

          router_json_score (buf, sizeof buf,
                             (double) i / ROUTER_SCORE_STEPS);
          len = strlen (buf);
          g_assert (len < ROUTER_SCORE_TEXT_MAX);
          memcpy (text[i], buf, len + 1);
        }
      g_once_init_leave (&once, 1);
    }
  return text[k];
}

static void
router_json_scores (GString *o, const char *name, const rules_score *s,
                    guint n)
{
  router_json_member (o, name);
  g_string_append_c (o, '{');
  for (guint i = 0; i < n && i < 3; i++)
    {
      double v = s[i].score;

      if (i > 0)
        g_string_append_c (o, ',');
      router_json_str (o, s[i].label);
      g_string_append_c (o, ':');
      /* three decimals: enough to explain, no false precision.  NaN and
       * infinities are not JSON and a double out of gint64's range must
       * not be converted to it (undefined): 0 and as it is.  */
      if (v >= 0 && v <= 1)
        g_string_append (o, router_score_text ((guint) (gint64) (v * 1000
                                                                 + 0.5)));
      else
        {
          char buf[G_ASCII_DTOSTR_BUF_SIZE + 2];

          if (!isfinite (v))
            v = 0;
          else if (fabs (v) < 1e15)
            v = (double) (gint64) (v * 1000 + 0.5) / 1000;
          router_json_score (buf, sizeof buf, v);
          g_string_append (o, buf);
        }
    }
  g_string_append_c (o, '}');
}

char *
router_result_reasons (const router_result *out)
{
  GString *o = g_string_sized_new (256);

  g_string_append_c (o, '{');
  router_json_member (o, "rule");
  router_json_str (o, out->d.rule);
  router_json_member (o, "line");
  g_string_append_printf (o, "%u", out->d.line);
  router_json_strs (o, "fired", out->d.fired);
  router_json_strs (o, "tags", out->d.tags);
  if (out->d.sla)
    {
      router_json_member (o, "sla");
      router_json_str (o, out->d.sla);
    }
  if (out->d.retention)
    {
      /* the schedule reads it from the stored reasons (store_retention.c) */
      router_json_member (o, "retention");
      router_json_str (o, out->d.retention);
    }
  router_json_scores (o, "kind_scores", out->kinds, out->n_kinds);
  router_json_scores (o, "topic_scores", out->topics, out->n_topics);
  if (out->d.limit_hit)
    {
      router_json_member (o, "regex_limit");
      g_string_append (o, "true");
    }
  router_json_member (o, "rules_hash");
  router_json_str (o, out->rules_hash);
  g_string_append_c (o, '}');
  return g_string_free (o, FALSE);
}

/* Unix us of the due day (00:00 UTC) by @cr, or 0 for none.  */
static gint64
router_due_at (router *r, const clock_rule *cr, GDateTime *received,
               gboolean *beyond)
{
  GDate due;

  if (cr == NULL || cr->kind == CLOCK_NONE)
    return 0;
  due = clock_due (r->calendar, cr, received, beyond);
  if (!g_date_valid (&due))
    return 0;
  {
    g_autoptr (GDateTime) t = g_date_time_new_utc (
        g_date_get_year (&due), g_date_get_month (&due),
        g_date_get_day (&due), 0, 0, 0);
    return g_date_time_to_unix (t) * G_USEC_PER_SEC;
  }
}

gint64
router_due_for_kind (router *r, const char *kind, gint64 received_us)
{
  g_autoptr (GDateTime) received = NULL;

  g_return_val_if_fail (r != NULL && kind != NULL, 0);
  received = g_date_time_new_from_unix_utc (received_us / G_USEC_PER_SEC);
  if (received == NULL)
    return 0;
  return router_due_at (r, g_hash_table_lookup (r->clocks, kind), received,
                        NULL);
}

static void
router_due (router *r, GDateTime *received, router_result *out)
{
  const clock_rule *cr = NULL;

  if (out->d.sla)
    cr = g_hash_table_lookup (r->clocks, out->d.sla);
  if (cr == NULL)
    cr = g_hash_table_lookup (r->clocks, out->d.kind);
  out->due_at = router_due_at (r, cr, received, &out->due_beyond);
}

static void
router_finish (router *r, rules *use, const rules_input *in,
               GDateTime *received, router_result *out)
{
  rules_decide (use, in, &out->d);
  out->rules_hash = g_strdup (rules_hash (use));
  router_due (r, received, out);
  out->reasons = router_result_reasons (out);
}

void
router_decide_text (router *r, rules *with, const char *subject,
                    const char *body, const router_context *ctx,
                    router_result *out)
{
  g_autoptr (rules) use = with ? rules_ref (with) : router_rules (r);
  g_autoptr (GDateTime) now = ctx->received ? g_date_time_ref (ctx->received)
                                            : g_date_time_new_now_utc ();
  g_autofree char *text = NULL;
  rules_input in = { 0 };

  memset (out, 0, sizeof *out);
  router_classify_text (r, subject, body, out);
  in.source = ctx->source;
  in.recipients = ctx->recipients;
  in.form = ctx->form;
  in.sender = ctx->envelope_from;
  in.subject = subject;
  in.body = body;
  in.received = now;
  in.kind_scores = out->kinds;
  in.n_kind = out->n_kinds;
  in.topic_scores = out->topics;
  in.n_topic = out->n_topics;
  router_finish (r, use, &in, now, out);
}

void
router_decide (router *r, rules *with, const parser_message *m,
               const router_context *ctx, router_result *out)
{
  g_autoptr (rules) use = with ? rules_ref (with) : router_rules (r);
  g_autoptr (GDateTime) now = ctx->received ? g_date_time_ref (ctx->received)
                                            : g_date_time_new_now_utc ();
  g_autofree char *text = NULL;
  g_autofree const char **att_names = NULL;
  g_autofree const char **att_types = NULL;
  rules_input in = { 0 };

  memset (out, 0, sizeof *out);
  router_classify_text (r, m->subject, m->text, out);

  att_names = g_new0 (const char *, m->attachments->len + 1);
  att_types = g_new0 (const char *, m->attachments->len + 1);
  for (guint i = 0; i < m->attachments->len; i++)
    {
      const parser_attachment *a = m->attachments->pdata[i];
      att_names[i] = a->name;
      att_types[i] = a->detected_type ? a->detected_type : a->declared_type;
    }
  in.source = ctx->source;
  in.recipients = ctx->recipients;
  in.form = ctx->form;
  in.sender = m->from && m->from->addr ? m->from->addr : ctx->envelope_from;
  in.subject = m->subject;
  in.body = m->text;
  in.header_names = (const char *const *) m->header_names->pdata;
  in.header_values = (const char *const *) m->header_values->pdata;
  in.n_headers = MIN (m->header_names->len, m->header_values->len);
  in.att_names = att_names;
  in.att_types = att_types;
  in.n_attachments = m->attachments->len;
  in.special = m->special;
  in.cards_redacted = m->cards_redacted;
  in.auto_reply = m->auto_reply;
  in.received = now;
  in.kind_scores = out->kinds;
  in.n_kind = out->n_kinds;
  in.topic_scores = out->topics;
  in.n_topic = out->n_topics;
  router_finish (r, use, &in, now, out);
}
