/*
 * rules.h - routing rules that a council admin can read (conf/rules.conf).
 *
 *   queues customer-services, complaints, waste, highways
 *   default queue customer-services, kind enquiry, priority normal
 *
 *   rule "complaints mailbox"
 *     when recipient is complaints@council.example
 *     then kind complaint, queue complaints, priority high
 *
 * Rules are read top to bottom.  When a rule's condition holds, its actions
 * apply to what no earlier rule has set (first match wins, attribute by
 * attribute); tags add up; `stop` ends the evaluation.  What no rule set
 * comes from the default.  The language is in docs/rules.md.
 *
 * A compiled rule set is immutable and reference-counted: the pipeline
 * swaps it atomically on reload while decisions in flight keep the old
 * one.  Regular expressions are PCRE2, compiled once at load, matched with
 * a step and depth limit: a pattern that hits the limit does not match and
 * the decision says so (SECURITY-TESTS 74).
 */
#ifndef INTAKE_ROUTER_RULES_H
#define INTAKE_ROUTER_RULES_H

#include <glib.h>

typedef struct rules rules;

#define RULES_ERROR (rules_error_quark ())
GQuark rules_error_quark (void);
typedef enum {
  RULES_ERROR_READ,
  RULES_ERROR_SYNTAX,        /* the message lists every error, one per line,
                              * as file:line:column: what (hint) */
} rules_error;

/* Header names in intake's own namespace: never read from outside mail
 * (SECURITY-TESTS 72).  */
#define RULES_OWN_HEADER_PREFIX "X-Intake-"

/* One classifier score.  */
typedef struct {
  const char *label;
  double score;
} rules_score;

/* What a decision looks at.  Strings are UTF-8; any may be NULL.  */
typedef struct {
  const char *source;                 /* "smtp", "imap", "form" */
  const char *const *recipients;      /* NULL-terminated mailboxes */
  const char *form;                   /* web form id */
  const char *sender;                 /* address */
  const char *subject;
  const char *body;                   /* the new text */
  const char *const *header_names;    /* n_headers each */
  const char *const *header_values;
  guint n_headers;
  const char *const *att_names;       /* n_attachments each */
  const char *const *att_types;
  guint n_attachments;
  guint special;                      /* parser_special bits */
  guint cards_redacted;
  gboolean auto_reply;
  GDateTime *received;                /* (nullable): now */
  const rules_score *kind_scores;     /* highest first */
  guint n_kind;
  const rules_score *topic_scores;
  guint n_topic;
} rules_input;

typedef struct {
  char *queue;
  char *kind;
  char *priority;
  char *sla;                 /* (nullable) service-level class */
  char *retention;           /* (nullable) retention class (docs/retention.md) */
  GPtrArray *tags;           /* char * */
  char *rule;                /* the rule that set the queue, or "default" */
  guint line;                /* its line; 0 for the default */
  GPtrArray *fired;          /* char *: every rule whose condition held */
  gboolean limit_hit;        /* a regular expression hit its bound */
} rules_decision;

void rules_decision_clear (rules_decision *d);

/* (transfer full) Compile @path; NULL with RULES_ERROR_SYNTAX listing every
 * error.  */
rules *rules_load (const char *path, GError **error);
/* The same from text (@name is used in messages).  */
rules *rules_load_text (const char *name, const char *text, gssize len,
                        GError **error);
rules *rules_ref (rules *r);
void rules_unref (rules *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (rules, rules_unref)

/* SHA-256 (hex) of the rule file's bytes: stored with every routed case.  */
const char *rules_hash (const rules *r);
const char *rules_path (const rules *r);
guint rules_count (const rules *r);
/* Name and line of rule @i (0-based, in file order).  */
const char *rules_name (const rules *r, guint i, guint *line);
/* Whether @queue was declared.  */
gboolean rules_has_queue (const rules *r, const char *queue);
/* NULL-terminated declared queues (transfer none).  */
const char *const *rules_queues (const rules *r);

/* Decide.  Thread-safe; never fails.  */
void rules_decide (const rules *r, const rules_input *in, rules_decision *out);

/* The kinds the classifier and rules know.  */
extern const char *const rules_kinds[];
/* Those of them that only a rule gives: when no rule sets the kind, the
 * kind is the classifier's best kind not in this list, else enquiry.  */
extern const char *const rules_rule_only_kinds[];

#endif
