/*
 * router.h - one routing decision: classifier scores, rules, due date.
 *
 * The router holds the rule set (swapped atomically on reload), the kind
 * and topic models and the bank-holiday calendar.  A decision never fails:
 * without models there are no scores, without a calendar due dates count
 * weekends only, and a rule set that will not load is refused at start or,
 * on reload, leaves the old one in place.
 */
#ifndef INTAKE_ROUTER_H
#define INTAKE_ROUTER_H

#include <glib.h>

#include "parser/parser.h"
#include "router/rules.h"

typedef struct router router;

typedef struct {
  const char *rules;          /* rule file */
  const char *kind_model;     /* (nullable) */
  const char *topic_model;    /* (nullable) */
  const char *holidays;       /* (nullable) GOV.UK bank-holidays JSON */
  const char *nation;         /* england-and-wales, scotland, ... */
  GHashTable *clocks;         /* (nullable) kind or sla class -> rule text */
} router_config;

#define ROUTER_MAX_SCORES 16

typedef struct {
  rules_decision d;
  gint64 due_at;              /* unix us of the due day at 00:00 UTC; 0 */
  gboolean due_beyond;        /* the holidays file did not cover it */
  char *rules_hash;
  char *reasons;              /* JSON: rule, line, fired, scores, tags: never
                               * personal data */
  rules_score kinds[ROUTER_MAX_SCORES];
  guint n_kinds;
  rules_score topics[ROUTER_MAX_SCORES];
  guint n_topics;
} router_result;

void router_result_clear (router_result *r);

/* (transfer full) @r's reasons as compact JSON (what router_decide() puts
 * in r->reasons): rule, line, fired, tags, sla, retention, the top three
 * kind and topic scores, regex_limit, rules_hash.  */
char *router_result_reasons (const router_result *r);

/* (transfer full) Load everything; an error names the file at fault.  */
router *router_new (const router_config *cfg, GError **error);
void router_free (router *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (router, router_free)

/* Load @path (NULL: the configured file) and swap it in; on error the old
 * rules stay.  */
gboolean router_reload (router *r, const char *path, GError **error);

/* (transfer full) the rules in force.  */
rules *router_rules (router *r);

/* What the router needs beyond the parsed message.  */
typedef struct {
  const char *source;               /* "smtp", "imap", "form" */
  const char *const *recipients;    /* NULL-terminated */
  const char *form;                 /* (nullable) */
  const char *envelope_from;        /* (nullable) */
  GDateTime *received;              /* (nullable): now */
} router_context;

/* Decide with the rules in force (or @with, when not NULL: a draft).  */
void router_decide (router *r, rules *with, const parser_message *m,
                    const router_context *ctx, router_result *out);

/* The due date of a case of @kind first received at @received_us (unix
 * us), by the [clocks] entry of that kind: unix us of the due day at
 * 00:00 UTC, or 0 when the kind has no clock.  For a person's re-routing
 * (store_set_due_fn()): the clock counts from receipt, whenever the
 * request is recognised.  */
gint64 router_due_for_kind (router *r, const char *kind, gint64 received_us);

/* Decide from plain text (the CSV evaluation, the benchmark).  */
void router_decide_text (router *r, rules *with, const char *subject,
                         const char *body, const router_context *ctx,
                         router_result *out);

#endif
