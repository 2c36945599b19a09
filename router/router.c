/*
 * router.c - classifier, rules and statutory clock put together.
 *
 * Owns: the current rule set (behind a mutex, reference-counted so a
 * decision in flight keeps the set it started with), the models and the
 * calendar (read-only after load).
 */
#define G_LOG_DOMAIN "intake-router"

#include "router/router.h"

#include <string.h>

#include <json-glib/json-glib.h>

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

/* Both models score the subject and the start of the body, tokenized
 * once.  */
static void
router_classify_text (router *r, const char *subject, const char *body,
                      router_result *out)
{
  g_autofree char *text = NULL;
  g_autoptr (classify_tokens) toks = NULL;

  text = g_strdup_printf ("%s\n%.*s", subject ? subject : "",
                          ROUTER_CLASSIFY_BYTES, body ? body : "");
  /* cut at a character, not inside one */
  if (!g_utf8_validate (text, -1, NULL))
    {
      const char *end;
      g_utf8_validate (text, -1, &end);
      text[end - text] = '\0';
    }
  if (r->kind_model == NULL && r->topic_model == NULL)
    return;
  toks = classify_tokens_new (text, -1);
  out->n_kinds = router_classify (r->kind_model, toks, out->kinds);
  out->n_topics = router_classify (r->topic_model, toks, out->topics);
}

static void
router_json_scores (JsonBuilder *b, const char *name, const rules_score *s,
                    guint n)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_object (b);
  for (guint i = 0; i < n && i < 3; i++)
    {
      json_builder_set_member_name (b, s[i].label);
      /* three decimals: enough to explain, no false precision */
      json_builder_add_double_value (b, (double) (gint64) (s[i].score * 1000
                                                            + 0.5) / 1000);
    }
  json_builder_end_object (b);
}

static char *
router_reasons (const router_result *out)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "rule");
  json_builder_add_string_value (b, out->d.rule);
  json_builder_set_member_name (b, "line");
  json_builder_add_int_value (b, out->d.line);
  json_builder_set_member_name (b, "fired");
  json_builder_begin_array (b);
  for (guint i = 0; i < out->d.fired->len; i++)
    json_builder_add_string_value (b, out->d.fired->pdata[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "tags");
  json_builder_begin_array (b);
  for (guint i = 0; i < out->d.tags->len; i++)
    json_builder_add_string_value (b, out->d.tags->pdata[i]);
  json_builder_end_array (b);
  if (out->d.sla)
    {
      json_builder_set_member_name (b, "sla");
      json_builder_add_string_value (b, out->d.sla);
    }
  if (out->d.retention)
    {
      /* the schedule reads it from the stored reasons (store_retention.c) */
      json_builder_set_member_name (b, "retention");
      json_builder_add_string_value (b, out->d.retention);
    }
  router_json_scores (b, "kind_scores", out->kinds, out->n_kinds);
  router_json_scores (b, "topic_scores", out->topics, out->n_topics);
  if (out->d.limit_hit)
    {
      json_builder_set_member_name (b, "regex_limit");
      json_builder_add_boolean_value (b, TRUE);
    }
  json_builder_set_member_name (b, "rules_hash");
  json_builder_add_string_value (b, out->rules_hash);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

static void
router_due (router *r, GDateTime *received, router_result *out)
{
  const clock_rule *cr = NULL;
  GDate due;

  if (out->d.sla)
    cr = g_hash_table_lookup (r->clocks, out->d.sla);
  if (cr == NULL)
    cr = g_hash_table_lookup (r->clocks, out->d.kind);
  if (cr == NULL || cr->kind == CLOCK_NONE)
    return;
  due = clock_due (r->calendar, cr, received, &out->due_beyond);
  if (g_date_valid (&due))
    {
      g_autoptr (GDateTime) t = g_date_time_new_utc (
          g_date_get_year (&due), g_date_get_month (&due),
          g_date_get_day (&due), 0, 0, 0);
      out->due_at = g_date_time_to_unix (t) * G_USEC_PER_SEC;
    }
}

static void
router_finish (router *r, rules *use, const rules_input *in,
               GDateTime *received, router_result *out)
{
  rules_decide (use, in, &out->d);
  out->rules_hash = g_strdup (rules_hash (use));
  router_due (r, received, out);
  out->reasons = router_reasons (out);
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
