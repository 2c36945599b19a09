/*
 * rules.c - the routing rule language: lexer, parser with error recovery
 * (every error reported, as file:line:column with a hint), and the
 * evaluator.  Grammar (docs/rules.md):
 *
 *   file      := statement*
 *   statement := "queues" WORD ("," WORD)*
 *              | "default" actions
 *              | "pattern" STRING "is" STRING
 *              | "rule" STRING "when" expr "then" actions
 *   expr      := term ("or" term)*
 *   term      := factor ("and" factor)*
 *   factor    := "not" factor | "(" expr ")" | predicate
 *   predicate := field [ARG] op value
 *              | field "matches" "pattern" STRING  (a pattern defined above)
 *   actions   := action ("," action)*
 *   action    := "queue" WORD | "kind" WORD | "priority" WORD
 *              | "tag" WORD | "sla" WORD | "retention" WORD | "stop"
 *
 * Owns: the compiled rules (immutable after load).  Refuses: anything the
 * grammar does not describe, unknown queues, kinds and fields, regular
 * expressions that do not compile, and headers of intake's own namespace.
 */
#define G_LOG_DOMAIN "intake-router"

#include "router/rules.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "parser/parser.h"

/* Bounds on one regular-expression match (SECURITY-TESTS 74): backtracking
 * steps and nesting depth.  A pathological pattern on a long text stops
 * here in a few milliseconds and counts as no match.  */
#define RULES_MATCH_LIMIT   200000
#define RULES_DEPTH_LIMIT   2000
/* Text a rule looks at, per field: the first 256 KiB.  */
#define RULES_TEXT_LIMIT    (256 * 1024)
#define RULES_MAX_ERRORS    100

G_DEFINE_QUARK (intake-rules-error-quark, rules_error)

const char *const rules_kinds[] = {
  "service-request", "enquiry", "complaint", "compliment", "foi-request",
  "sar", "rights-request", "auto-reply", NULL
};

/* Kinds that only a rule gives (docs/rules.md, "The kind"): each starts a
 * statutory clock (FOI 20 working days, SAR and the other rights one
 * month) or silences the acknowledgement, so a classifier's score alone,
 * with no rule that looked for a request, never gives them.  */
const char *const rules_rule_only_kinds[] = {
  "foi-request", "sar", "rights-request", "auto-reply", NULL
};

static const char *const rules_priorities[] = {
  "low", "normal", "high", "urgent", NULL
};

static const char *const rules_sources[] = { "smtp", "imap", "form", NULL };

static const char *const rules_days[] = {
  "mon", "tue", "wed", "thu", "fri", "sat", "sun", NULL
};

static const struct {
  const char *name;
  guint bit;
} rules_special_names[] = {
  { "health", PARSER_SPECIAL_HEALTH }, { "ethnic", PARSER_SPECIAL_ETHNIC },
  { "religion", PARSER_SPECIAL_RELIGION },
  { "sexual", PARSER_SPECIAL_SEXUAL }, { "union", PARSER_SPECIAL_UNION },
  { "political", PARSER_SPECIAL_POLITICAL },
  { "genetic", PARSER_SPECIAL_GENETIC },
  { "biometric", PARSER_SPECIAL_BIOMETRIC },
  { "criminal", PARSER_SPECIAL_CRIMINAL },
};

/* ------------------------------------------------------------ fields */

typedef enum { RT_STRING, RT_NUMBER, RT_BOOL } rules_type;

typedef enum {
  F_RECIPIENT, F_FORM, F_SENDER, F_SENDER_DOMAIN, F_SUBJECT, F_BODY,
  F_HEADER, F_ATT_NAME, F_ATT_TYPE, F_ATTACHMENTS, F_SOURCE, F_KIND,
  F_TOPIC, F_KIND_SCORE, F_TOPIC_SCORE, F_SPECIAL, F_CARDS, F_AUTO_REPLY,
  F_DAY, F_TIME,
} rules_field;

static const struct {
  const char *name;
  rules_field field;
  rules_type type;
  gboolean arg;              /* takes an argument (header name, label) */
} rules_fields[] = {
  { "recipient", F_RECIPIENT, RT_STRING, FALSE },
  { "mailbox", F_RECIPIENT, RT_STRING, FALSE },
  { "form", F_FORM, RT_STRING, FALSE },
  { "sender", F_SENDER, RT_STRING, FALSE },
  { "sender.domain", F_SENDER_DOMAIN, RT_STRING, FALSE },
  { "subject", F_SUBJECT, RT_STRING, FALSE },
  { "body", F_BODY, RT_STRING, FALSE },
  { "header", F_HEADER, RT_STRING, TRUE },
  { "attachment.name", F_ATT_NAME, RT_STRING, FALSE },
  { "attachment.type", F_ATT_TYPE, RT_STRING, FALSE },
  { "attachments", F_ATTACHMENTS, RT_NUMBER, FALSE },
  { "source", F_SOURCE, RT_STRING, FALSE },
  { "kind", F_KIND, RT_STRING, FALSE },
  { "topic", F_TOPIC, RT_STRING, FALSE },
  { "kind.score", F_KIND_SCORE, RT_NUMBER, TRUE },
  { "topic.score", F_TOPIC_SCORE, RT_NUMBER, TRUE },
  { "special", F_SPECIAL, RT_STRING, FALSE },
  { "cards", F_CARDS, RT_NUMBER, FALSE },
  { "auto-reply", F_AUTO_REPLY, RT_BOOL, FALSE },
  { "day", F_DAY, RT_STRING, FALSE },
  { "time", F_TIME, RT_NUMBER, FALSE },
};

typedef enum {
  OP_IS, OP_CONTAINS, OP_WORD, OP_MATCHES, OP_IN,
  OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
} rules_op;

/* ------------------------------------------------------------- AST */

typedef enum { N_OR, N_AND, N_NOT, N_PRED } rules_node_kind;

typedef struct rules_node rules_node;

/* A `word` value as the body's scan looks it up: hash and lengths
 * computed once at load instead of at every message.  */
struct rules_word_key {
  guint32 hash;
  guint32 alen, blen;        /* second word: blen > 0 */
  gboolean simple;           /* one word or two: the body's scan answers */
  char *gate;                /* not simple: its first two words as the
                              * scan's pair ("council tax reduction":
                              * "council tax"), or NULL; hash and lengths
                              * are then the gate's */
  guint32 id;                /* its bit (the gate's) in the scan
                              * (rules.words) */
};
struct rules_node {
  rules_node_kind kind;
  rules_node *a, *b;         /* OR, AND: both; NOT: a */
  /* N_PRED */
  rules_field field;
  rules_type type;
  char *arg;                 /* header name or score label */
  rules_op op;
  GPtrArray *values;         /* char *, casefolded (strings) */
  GArray *numbers;           /* double (numbers, times in minutes) */
  gboolean boolean;
  pcre2_code *re;
  struct rules_word_key *wkeys; /* OP_WORD: one per value, made at load */
  /* OP_WORD on the body: the simple values' bits in the body's scan,
   * grouped by the scan's 64-bit word, and how many values are not
   * simple (rules_words_add) */
  struct rules_word_bits *wbits;
  guint n_wbits, n_wother;
};

struct rules_word_bits {
  guint32 at;                /* index into the scan's bits */
  guint64 bits;
};

typedef struct {
  char *name;
  guint line;
  rules_node *when;
  char *queue, *kind, *priority, *sla, *retention;
  GPtrArray *tags;
  gboolean stop;
} rules_rule;

struct rules {
  gint ref;
  char *path;
  char *hash;
  GPtrArray *rules;          /* rules_rule * */
  rules_rule *deflt;
  GPtrArray *queues;         /* char *, NULL-terminated */
  pcre2_match_context *mctx;
  /* Every simple `word` value of every rule, once, with a bit each (open
   * addressing; NULL value: a free slot): a message's body is scanned
   * once against it.  */
  struct rules_word_entry *words;
  guint32 words_mask;
  guint32 n_words;
  guint32 words_longest;     /* bytes of the longest word of any entry */
};

static void
rules_node_free (rules_node *n)
{
  if (n == NULL)
    return;
  rules_node_free (n->a);
  rules_node_free (n->b);
  g_free (n->arg);
  /* one key per value: before the values go */
  for (guint i = 0; n->wkeys != NULL && i < n->values->len; i++)
    g_free (n->wkeys[i].gate);
  if (n->values)
    g_ptr_array_unref (n->values);
  if (n->numbers)
    g_array_unref (n->numbers);
  if (n->re)
    pcre2_code_free (n->re);
  g_free (n->wkeys);
  g_free (n->wbits);
  g_free (n);
}

static void
rules_rule_free (rules_rule *r)
{
  if (r == NULL)
    return;
  g_free (r->name);
  rules_node_free (r->when);
  g_free (r->queue);
  g_free (r->kind);
  g_free (r->priority);
  g_free (r->sla);
  g_free (r->retention);
  g_ptr_array_unref (r->tags);
  g_free (r);
}

/* ------------------------------------------------------------- lexer */

typedef enum {
  T_EOF, T_WORD, T_STRING, T_NUMBER, T_TIME, T_LPAREN, T_RPAREN, T_COMMA,
  T_CMP, T_BAD,
} rules_tok_kind;

typedef struct {
  rules_tok_kind kind;
  char *text;                /* WORD, STRING (unescaped), CMP, NUMBER */
  double number;
  guint line, col;
} rules_tok;

typedef struct {
  const char *name;
  const char *p, *end;
  guint line;
  const char *line_start;
  rules_tok tok;             /* current token */
  GString *errors;
  guint n_errors;
  rules *r;
  GHashTable *queue_uses;    /* queue -> "line:col" of its first use */
  GHashTable *patterns;      /* pattern name -> regular expression */
} rules_parser;

static void
rules_err (rules_parser *ps, guint line, guint col, const char *hint,
           const char *fmt, ...) G_GNUC_PRINTF (5, 6);

static void
rules_err (rules_parser *ps, guint line, guint col, const char *hint,
           const char *fmt, ...)
{
  va_list ap;

  /* the lexer has already said what is wrong with this token */
  if (ps->tok.kind == T_BAD && line == ps->tok.line && col == ps->tok.col)
    return;
  ps->n_errors++;
  if (ps->n_errors > RULES_MAX_ERRORS)
    return;
  g_string_append_printf (ps->errors, "%s%s:%u:%u: ",
                          ps->errors->len ? "\n" : "", ps->name, line, col);
  va_start (ap, fmt);
  g_string_append_vprintf (ps->errors, fmt, ap);
  va_end (ap);
  if (hint)
    g_string_append_printf (ps->errors, " (%s)", hint);
}

static gboolean
rules_word_char (char c)
{
  return g_ascii_isalnum (c) || c == '-' || c == '_' || c == '.' || c == '@'
         || c == '+' || c == '/' || c == '*' || (guchar) c >= 0x80;
}

static void
rules_next (rules_parser *ps)
{
  rules_tok *t = &ps->tok;

  g_clear_pointer (&t->text, g_free);
  t->number = 0;
  for (;;)
    {
      while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'
                                 || *ps->p == '\r' || *ps->p == '\n'))
        {
          if (*ps->p == '\n')
            {
              ps->line++;
              ps->line_start = ps->p + 1;
            }
          ps->p++;
        }
      if (ps->p < ps->end && *ps->p == '#')
        {
          while (ps->p < ps->end && *ps->p != '\n')
            ps->p++;
          continue;
        }
      break;
    }
  t->line = ps->line;
  t->col = (guint) g_utf8_strlen (ps->line_start, ps->p - ps->line_start) + 1;
  if (ps->p >= ps->end)
    {
      t->kind = T_EOF;
      return;
    }
  char c = *ps->p;
  if (c == '(' || c == ')' || c == ',')
    {
      t->kind = c == '(' ? T_LPAREN : c == ')' ? T_RPAREN : T_COMMA;
      t->text = g_strndup (ps->p, 1);
      ps->p++;
      return;
    }
  if (c == '=' || c == '!' || c == '<' || c == '>')
    {
      const char *s = ps->p++;
      if (ps->p < ps->end && *ps->p == '=')
        ps->p++;
      t->text = g_strndup (s, ps->p - s);
      t->kind = strcmp (t->text, "!") == 0 ? T_BAD : T_CMP;
      return;
    }
  if (c == '"')
    {
      GString *s = g_string_new (NULL);
      ps->p++;
      while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\n')
        {
          if (*ps->p == '\\' && ps->p + 1 < ps->end
              && (ps->p[1] == '"' || ps->p[1] == '\\'))
            ps->p++;
          g_string_append_c (s, *ps->p++);
        }
      if (ps->p >= ps->end || *ps->p != '"')
        {
          rules_err (ps, t->line, t->col, "close it with \" on the same line",
                     "unterminated string");
          t->kind = T_BAD;
          g_string_free (s, TRUE);
          return;
        }
      ps->p++;
      t->kind = T_STRING;
      t->text = g_string_free (s, FALSE);
      if (!g_utf8_validate (t->text, -1, NULL))
        {
          rules_err (ps, t->line, t->col, NULL, "string is not UTF-8");
          t->kind = T_BAD;
        }
      return;
    }
  if (rules_word_char (c))
    {
      const char *s = ps->p;
      while (ps->p < ps->end && (rules_word_char (*ps->p)
                                 || (*ps->p == ':' && ps->p + 1 < ps->end
                                     && g_ascii_isdigit (ps->p[1])
                                     && g_ascii_isdigit (*s))))
        ps->p++;
      t->text = g_strndup (s, ps->p - s);
      t->kind = T_WORD;
      if (g_ascii_isdigit (c))
        {
          char *endp;
          guint h, m;
          double v = g_ascii_strtod (t->text, &endp);
          if (*endp == '\0' && isfinite (v))
            {
              t->kind = T_NUMBER;
              t->number = v;
            }
          else if (strlen (t->text) == 5 && t->text[2] == ':'
                   && sscanf (t->text, "%2u:%2u", &h, &m) == 2 && h < 24
                   && m < 60)
            {
              t->kind = T_TIME;
              t->number = h * 60 + m;
            }
        }
      return;
    }
  rules_err (ps, t->line, t->col, NULL, "unexpected character '%c'", c);
  ps->p++;
  t->kind = T_BAD;
  t->text = g_strdup ("?");
}

static gboolean
rules_is_word (rules_parser *ps, const char *w)
{
  return ps->tok.kind == T_WORD && g_ascii_strcasecmp (ps->tok.text, w) == 0;
}

/* Skip to the start of the next statement after an error.  */
static void
rules_sync (rules_parser *ps)
{
  while (ps->tok.kind != T_EOF && !rules_is_word (ps, "rule")
         && !rules_is_word (ps, "queues") && !rules_is_word (ps, "default")
         && !rules_is_word (ps, "pattern"))
    rules_next (ps);
}

static const char *
rules_tok_desc (const rules_tok *t)
{
  switch (t->kind)
    {
    case T_EOF: return "the end of the file";
    case T_STRING: return "a string";
    case T_NUMBER: return "a number";
    default: return t->text ? t->text : "?";
    }
}

static gboolean
rules_in_list (const char *const *list, const char *w)
{
  for (guint i = 0; list[i]; i++)
    if (g_ascii_strcasecmp (list[i], w) == 0)
      return TRUE;
  return FALSE;
}

static char *
rules_list_hint (const char *prefix, const char *const *list)
{
  g_autofree char *j = g_strjoinv (", ", (char **) list);
  return g_strconcat (prefix, j, NULL);
}

/* ----------------------------------------------------------- parser */

static rules_node *rules_parse_expr (rules_parser *ps);

static char *
rules_fold (const char *s)
{
  return g_utf8_casefold (s, -1);
}

/* Regular expression @text, compiled (and JIT-compiled), or NULL with the
 * error reported at its position in the token at @line:@col.  */
static pcre2_code *
rules_compile_re (rules_parser *ps, const char *text, guint line, guint col)
{
  int ecode;
  PCRE2_SIZE eoff;
  pcre2_code *re = pcre2_compile ((PCRE2_SPTR) text,
                                  PCRE2_ZERO_TERMINATED, PCRE2_CASELESS,
                                  &ecode, &eoff, NULL);

  if (re == NULL)
    {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message (ecode, msg, sizeof msg);
      rules_err (ps, line, col + 1 + (guint) eoff,
                 "PCRE2 syntax; quote the pattern with \"...\"",
                 "regular expression: %s", (const char *) msg);
      return NULL;
    }
  pcre2_jit_compile (re, PCRE2_JIT_COMPLETE);
  return re;
}

/* `matches pattern "NAME"`: the regular expression of a pattern statement
 * above, compiled for this predicate (its errors were reported where it
 * was defined).  */
static gboolean
rules_parse_named_pattern (rules_parser *ps, rules_node *n)
{
  rules_tok *t = &ps->tok;
  const char *re;

  rules_next (ps);
  if (t->kind != T_STRING)
    {
      rules_err (ps, t->line, t->col, "body matches pattern \"name\"",
                 "expected the pattern's name in quotes, found %s",
                 rules_tok_desc (t));
      return FALSE;
    }
  re = g_hash_table_lookup (ps->patterns, t->text);
  if (re == NULL)
    {
      rules_err (ps, t->line, t->col,
                 "define it first: pattern \"name\" is \"regex\"",
                 "no pattern named \"%s\" above", t->text);
      return FALSE;
    }
  /* it compiled where it was defined: no error can be reported here */
  n->re = rules_compile_re (ps, re, t->line, t->col);
  g_ptr_array_add (n->values, rules_fold (re));
  rules_next (ps);
  return TRUE;
}

/* A value of a predicate: a string, a word, a number or a time.  */
static gboolean
rules_parse_value (rules_parser *ps, rules_node *n)
{
  rules_tok *t = &ps->tok;

  if (n->type == RT_NUMBER)
    {
      if (t->kind != T_NUMBER && t->kind != T_TIME)
        {
          rules_err (ps, t->line, t->col, n->field == F_TIME
                                              ? "a time is written 17:30"
                                              : "for example 0.8 or 2",
                     "expected a number, found %s", rules_tok_desc (t));
          return FALSE;
        }
      if ((n->field == F_TIME) != (t->kind == T_TIME))
        {
          rules_err (ps, t->line, t->col, NULL, n->field == F_TIME
                                                    ? "time needs HH:MM"
                                                    : "a time is no number"
                                                      " here");
          return FALSE;
        }
      g_array_append_val (n->numbers, t->number);
      rules_next (ps);
      return TRUE;
    }
  if (n->type == RT_BOOL)
    {
      if (rules_is_word (ps, "true") || rules_is_word (ps, "yes"))
        n->boolean = TRUE;
      else if (rules_is_word (ps, "false") || rules_is_word (ps, "no"))
        n->boolean = FALSE;
      else
        {
          rules_err (ps, t->line, t->col, "true or false",
                     "expected true or false, found %s", rules_tok_desc (t));
          return FALSE;
        }
      rules_next (ps);
      return TRUE;
    }
  if (n->op == OP_MATCHES && rules_is_word (ps, "pattern"))
    return rules_parse_named_pattern (ps, n);
  if (t->kind != T_STRING && t->kind != T_WORD && t->kind != T_NUMBER)
    {
      rules_err (ps, t->line, t->col, "quote text with \"...\"",
                 "expected a value, found %s", rules_tok_desc (t));
      return FALSE;
    }
  /* closed vocabularies are checked here, with the list as the hint */
  {
    const char *const *vocab = NULL;
    const char *what = NULL;
    if (n->field == F_SOURCE)
      vocab = rules_sources, what = "source";
    else if (n->field == F_KIND)
      vocab = rules_kinds, what = "kind";
    else if (n->field == F_DAY)
      vocab = rules_days, what = "day";
    if (vocab && n->op != OP_MATCHES && n->op != OP_CONTAINS
        && !rules_in_list (vocab, t->text))
      {
        g_autofree char *hint = rules_list_hint ("one of: ", vocab);
        rules_err (ps, t->line, t->col, hint, "unknown %s '%s'", what,
                   t->text);
      }
    if (n->field == F_SPECIAL)
      {
        gboolean ok = FALSE;
        for (guint i = 0; i < G_N_ELEMENTS (rules_special_names); i++)
          ok |= g_ascii_strcasecmp (rules_special_names[i].name, t->text)
                == 0;
        if (!ok)
          rules_err (ps, t->line, t->col, "health, ethnic, religion, sexual,"
                     " union, political, genetic, biometric, criminal",
                     "unknown special category '%s'", t->text);
      }
    if (n->field == F_TOPIC && n->op != OP_MATCHES && n->op != OP_CONTAINS)
      g_hash_table_insert (ps->queue_uses, g_strdup (t->text),
                           g_strdup_printf ("%u:%u", t->line, t->col));
  }
  if (n->op == OP_MATCHES)
    n->re = rules_compile_re (ps, t->text, t->line, t->col);
  g_ptr_array_add (n->values, rules_fold (t->text));
  rules_next (ps);
  return TRUE;
}

static void rules_word_keys_make (rules_node *n);
static void rules_words_index (rules *r);

static rules_node *
rules_parse_pred (rules_parser *ps)
{
  rules_tok *t = &ps->tok;
  rules_node *n;
  gboolean negate = FALSE;
  guint fline = t->line, fcol = t->col;
  int f = -1;

  if (t->kind == T_WORD)
    for (guint i = 0; i < G_N_ELEMENTS (rules_fields); i++)
      if (g_ascii_strcasecmp (rules_fields[i].name, t->text) == 0)
        f = i;
  if (f < 0)
    {
      rules_err (ps, t->line, t->col, "fields: recipient, form, sender,"
                 " sender.domain, subject, body, header \"Name\","
                 " attachment.name, attachment.type, attachments, source,"
                 " kind, topic, kind.score LABEL, topic.score LABEL,"
                 " special, cards, auto-reply, day, time",
                 "expected a field, found %s", rules_tok_desc (t));
      return NULL;
    }
  n = g_new0 (rules_node, 1);
  n->kind = N_PRED;
  n->field = rules_fields[f].field;
  n->type = rules_fields[f].type;
  n->values = g_ptr_array_new_with_free_func (g_free);
  n->numbers = g_array_new (FALSE, FALSE, sizeof (double));
  rules_next (ps);
  if (rules_fields[f].arg)
    {
      if (t->kind != T_STRING && t->kind != T_WORD)
        {
          rules_err (ps, t->line, t->col, n->field == F_HEADER
                                              ? "header \"List-Id\""
                                              : "kind.score foi-request",
                     "%s needs a name after it", rules_fields[f].name);
          rules_node_free (n);
          return NULL;
        }
      n->arg = g_strdup (t->text);
      if (n->field == F_HEADER
          && g_ascii_strncasecmp (n->arg, RULES_OWN_HEADER_PREFIX,
                                  strlen (RULES_OWN_HEADER_PREFIX)) == 0)
        rules_err (ps, t->line, t->col, "queue, kind and priority come from"
                   " the recipient, the classifier and the rules, never from"
                   " a header a sender can write (SECURITY-TESTS 72)",
                   "header %s is in intake's own namespace", n->arg);
      if (n->field == F_KIND_SCORE && !rules_in_list (rules_kinds, n->arg))
        {
          g_autofree char *hint = rules_list_hint ("kinds: ", rules_kinds);
          rules_err (ps, t->line, t->col, hint, "unknown kind '%s'", n->arg);
        }
      if (n->field == F_TOPIC_SCORE)
        g_hash_table_insert (ps->queue_uses, g_strdup (n->arg),
                             g_strdup_printf ("%u:%u", t->line, t->col));
      rules_next (ps);
    }

  /* the operator */
  if (t->kind == T_CMP)
    {
      static const struct { const char *s; rules_op op; } cmps[] = {
        { "=", OP_EQ }, { "==", OP_EQ }, { "!=", OP_NE }, { "<", OP_LT },
        { "<=", OP_LE }, { ">", OP_GT }, { ">=", OP_GE },
      };
      gboolean found = FALSE;
      for (guint i = 0; i < G_N_ELEMENTS (cmps); i++)
        if (strcmp (cmps[i].s, t->text) == 0)
          {
            n->op = cmps[i].op;
            found = TRUE;
          }
      if (!found || n->type != RT_NUMBER)
        {
          rules_err (ps, t->line, t->col, n->type == RT_NUMBER
                         ? "use = != < <= > >="
                         : "text is compared with is, contains, word,"
                           " matches or in",
                     "'%s' does not compare %s", t->text,
                     rules_fields[f].name);
          rules_node_free (n);
          return NULL;
        }
      rules_next (ps);
    }
  else if (rules_is_word (ps, "is") || rules_is_word (ps, "equals"))
    {
      n->op = OP_IS;
      rules_next (ps);
      if (rules_is_word (ps, "not"))
        {
          negate = TRUE;
          rules_next (ps);
        }
    }
  else if (rules_is_word (ps, "contains") || rules_is_word (ps, "word")
           || rules_is_word (ps, "matches") || rules_is_word (ps, "in"))
    {
      n->op = rules_is_word (ps, "contains") ? OP_CONTAINS
              : rules_is_word (ps, "word") ? OP_WORD
              : rules_is_word (ps, "matches") ? OP_MATCHES : OP_IN;
      if (n->type != RT_STRING && n->op != OP_IN)
        {
          rules_err (ps, t->line, t->col, "use = != < <= > >=",
                     "%s is a number; '%s' compares text",
                     rules_fields[f].name, t->text);
          rules_node_free (n);
          return NULL;
        }
      rules_next (ps);
    }
  else
    {
      rules_err (ps, t->line, t->col, "operators: is, is not, contains,"
                 " word, matches, in, = != < <= > >=",
                 "expected an operator after %s, found %s",
                 rules_fields[f].name, rules_tok_desc (t));
      rules_node_free (n);
      return NULL;
    }
  if (n->type == RT_BOOL && n->op != OP_IS)
    {
      rules_err (ps, fline, fcol, "auto-reply is true", "%s is true or false",
                 rules_fields[f].name);
      rules_node_free (n);
      return NULL;
    }

  /* the value(s): a list for in, and for word / contains (any of them) */
  if (n->op == OP_IN
      || ((n->op == OP_WORD || n->op == OP_CONTAINS) && t->kind == T_LPAREN))
    {
      if (t->kind != T_LPAREN)
        {
          rules_err (ps, t->line, t->col, "in (a, b, c)",
                     "'in' needs a list in parentheses");
          rules_node_free (n);
          return NULL;
        }
      rules_next (ps);
      for (;;)
        {
          if (!rules_parse_value (ps, n))
            {
              rules_node_free (n);
              return NULL;
            }
          if (t->kind == T_COMMA)
            {
              rules_next (ps);
              continue;
            }
          if (t->kind == T_RPAREN)
            {
              rules_next (ps);
              break;
            }
          rules_err (ps, t->line, t->col, "in (a, b, c)",
                     "expected , or ) in the list, found %s",
                     rules_tok_desc (t));
          rules_node_free (n);
          return NULL;
        }
    }
  else if (!rules_parse_value (ps, n))
    {
      rules_node_free (n);
      return NULL;
    }
  if (n->op == OP_WORD)
    rules_word_keys_make (n);
  if (negate)
    {
      rules_node *m = g_new0 (rules_node, 1);
      m->kind = N_NOT;
      m->a = n;
      return m;
    }
  return n;
}

static rules_node *
rules_parse_factor (rules_parser *ps)
{
  if (rules_is_word (ps, "not"))
    {
      rules_node *n, *a;
      rules_next (ps);
      a = rules_parse_factor (ps);
      if (a == NULL)
        return NULL;
      n = g_new0 (rules_node, 1);
      n->kind = N_NOT;
      n->a = a;
      return n;
    }
  if (ps->tok.kind == T_LPAREN)
    {
      guint line = ps->tok.line, col = ps->tok.col;
      rules_node *n;
      rules_next (ps);
      n = rules_parse_expr (ps);
      if (n == NULL)
        return NULL;
      if (ps->tok.kind != T_RPAREN)
        {
          rules_err (ps, ps->tok.line, ps->tok.col, NULL,
                     "expected ) to close the ( at %u:%u, found %s", line,
                     col, rules_tok_desc (&ps->tok));
          rules_node_free (n);
          return NULL;
        }
      rules_next (ps);
      return n;
    }
  return rules_parse_pred (ps);
}

static rules_node *
rules_parse_binary (rules_parser *ps, gboolean is_or)
{
  rules_node *left = is_or ? rules_parse_binary (ps, FALSE)
                           : rules_parse_factor (ps);

  while (left != NULL && rules_is_word (ps, is_or ? "or" : "and"))
    {
      rules_node *right, *n;
      rules_next (ps);
      right = is_or ? rules_parse_binary (ps, FALSE)
                    : rules_parse_factor (ps);
      if (right == NULL)
        {
          rules_node_free (left);
          return NULL;
        }
      n = g_new0 (rules_node, 1);
      n->kind = is_or ? N_OR : N_AND;
      n->a = left;
      n->b = right;
      left = n;
    }
  return left;
}

static rules_node *
rules_parse_expr (rules_parser *ps)
{
  return rules_parse_binary (ps, TRUE);
}

static gboolean
rules_parse_actions (rules_parser *ps, rules_rule *r)
{
  rules_tok *t = &ps->tok;

  for (;;)
    {
      g_autofree char *verb = NULL;
      guint line = t->line, col = t->col;

      if (t->kind != T_WORD)
        {
          rules_err (ps, t->line, t->col, "actions: queue, kind, priority,"
                     " tag, sla, retention, stop",
                     "expected an action, found %s",
                     rules_tok_desc (t));
          return FALSE;
        }
      verb = g_ascii_strdown (t->text, -1);
      rules_next (ps);
      if (strcmp (verb, "stop") == 0)
        r->stop = TRUE;
      else if (strcmp (verb, "queue") == 0 || strcmp (verb, "kind") == 0
               || strcmp (verb, "priority") == 0 || strcmp (verb, "tag") == 0
               || strcmp (verb, "sla") == 0
               || strcmp (verb, "retention") == 0)
        {
          char **slot = verb[0] == 'q' ? &r->queue : verb[0] == 'k' ? &r->kind
                        : verb[0] == 'p' ? &r->priority
                        : verb[0] == 's' ? &r->sla
                        : verb[0] == 'r' ? &r->retention : NULL;
          if (t->kind != T_WORD && t->kind != T_STRING)
            {
              rules_err (ps, t->line, t->col, NULL, "%s needs a name", verb);
              return FALSE;
            }
          if (slot && *slot)
            rules_err (ps, line, col, NULL, "%s given twice", verb);
          if (verb[0] == 'k' && !rules_in_list (rules_kinds, t->text))
            {
              g_autofree char *hint = rules_list_hint ("kinds: ", rules_kinds);
              rules_err (ps, t->line, t->col, hint, "unknown kind '%s'",
                         t->text);
            }
          if (verb[0] == 'p' && !rules_in_list (rules_priorities, t->text))
            rules_err (ps, t->line, t->col, "low, normal, high, urgent",
                       "unknown priority '%s'", t->text);
          if (verb[0] == 'q')
            g_hash_table_insert (ps->queue_uses, g_strdup (t->text),
                                 g_strdup_printf ("%u:%u", t->line, t->col));
          if (slot)
            {
              g_free (*slot);
              *slot = g_ascii_strdown (t->text, -1);
            }
          else
            g_ptr_array_add (r->tags, g_strdup (t->text));
          rules_next (ps);
        }
      else
        {
          rules_err (ps, line, col, "actions: queue, kind, priority, tag,"
                     " sla, retention, stop", "unknown action '%s'", verb);
          return FALSE;
        }
      if (t->kind != T_COMMA)
        return TRUE;
      rules_next (ps);
    }
}

static rules_rule *
rules_rule_new (void)
{
  rules_rule *r = g_new0 (rules_rule, 1);

  r->tags = g_ptr_array_new_with_free_func (g_free);
  return r;
}

static void
rules_parse_statement (rules_parser *ps)
{
  rules_tok *t = &ps->tok;

  if (rules_is_word (ps, "queues"))
    {
      rules_next (ps);
      for (;;)
        {
          if (t->kind != T_WORD)
            {
              rules_err (ps, t->line, t->col, "queues a, b, c",
                         "expected a queue name, found %s",
                         rules_tok_desc (t));
              rules_sync (ps);
              return;
            }
          g_ptr_array_insert (ps->r->queues, ps->r->queues->len - 1,
                              g_ascii_strdown (t->text, -1));
          rules_next (ps);
          if (t->kind != T_COMMA)
            return;
          rules_next (ps);
        }
    }
  if (rules_is_word (ps, "default"))
    {
      guint line = t->line, col = t->col;
      rules_rule *r = rules_rule_new ();
      rules_next (ps);
      if (!rules_parse_actions (ps, r))
        {
          rules_rule_free (r);
          rules_sync (ps);
          return;
        }
      if (ps->r->deflt)
        {
          rules_err (ps, line, col, NULL, "a second default");
          rules_rule_free (r);
          return;
        }
      r->name = g_strdup ("default");
      r->line = line;
      ps->r->deflt = r;
      return;
    }
  if (rules_is_word (ps, "pattern"))
    {
      g_autofree char *name = NULL;
      pcre2_code *re;

      rules_next (ps);
      if (t->kind != T_STRING || *t->text == '\0')
        {
          rules_err (ps, t->line, t->col, "pattern \"name\" is \"regex\"",
                     "a pattern needs a name in quotes");
          rules_sync (ps);
          return;
        }
      if (g_hash_table_contains (ps->patterns, t->text))
        rules_err (ps, t->line, t->col, "one definition a name",
                   "a pattern named \"%s\" already exists", t->text);
      name = g_strdup (t->text);
      rules_next (ps);
      if (!rules_is_word (ps, "is"))
        {
          rules_err (ps, t->line, t->col, "pattern \"name\" is \"regex\"",
                     "expected 'is', found %s", rules_tok_desc (t));
          rules_sync (ps);
          return;
        }
      rules_next (ps);
      if (t->kind != T_STRING)
        {
          rules_err (ps, t->line, t->col, "quote the pattern with \"...\"",
                     "expected a regular expression, found %s",
                     rules_tok_desc (t));
          rules_sync (ps);
          return;
        }
      re = rules_compile_re (ps, t->text, t->line, t->col);
      if (re != NULL)
        {
          pcre2_code_free (re);
          g_hash_table_replace (ps->patterns, g_steal_pointer (&name),
                                g_strdup (t->text));
        }
      rules_next (ps);
      return;
    }
  if (rules_is_word (ps, "rule"))
    {
      rules_rule *r = rules_rule_new ();
      r->line = t->line;
      rules_next (ps);
      if (t->kind != T_STRING || *t->text == '\0')
        {
          rules_err (ps, t->line, t->col, "rule \"complaints mailbox\"",
                     "a rule needs a name in quotes");
          goto fail;
        }
      for (guint i = 0; i < ps->r->rules->len; i++)
        if (strcmp (((rules_rule *) ps->r->rules->pdata[i])->name, t->text)
            == 0)
          rules_err (ps, t->line, t->col, "names say which rule fired",
                     "a rule named \"%s\" already exists (line %u)", t->text,
                     ((rules_rule *) ps->r->rules->pdata[i])->line);
      r->name = g_strdup (t->text);
      rules_next (ps);
      if (!rules_is_word (ps, "when"))
        {
          rules_err (ps, t->line, t->col, "rule \"name\" when ... then ...",
                     "expected 'when', found %s", rules_tok_desc (t));
          goto fail;
        }
      rules_next (ps);
      r->when = rules_parse_expr (ps);
      if (r->when == NULL)
        goto fail;
      if (!rules_is_word (ps, "then"))
        {
          rules_err (ps, t->line, t->col, "join conditions with and / or;"
                     " actions follow 'then'",
                     "expected 'then', 'and' or 'or', found %s",
                     rules_tok_desc (t));
          goto fail;
        }
      rules_next (ps);
      if (!rules_parse_actions (ps, r))
        goto fail;
      g_ptr_array_add (ps->r->rules, r);
      return;
    fail:
      rules_rule_free (r);
      rules_sync (ps);
      return;
    }
  rules_err (ps, t->line, t->col, "a file holds queues, default, pattern"
             " and rule statements",
             "expected 'rule', 'queues', 'default' or 'pattern', found %s",
             rules_tok_desc (t));
  rules_next (ps);
  rules_sync (ps);
}

rules *
rules_load_text (const char *name, const char *text, gssize len,
                 GError **error)
{
  rules_parser ps = { 0 };
  rules *r = g_new0 (rules, 1);

  if (len < 0)
    len = strlen (text);
  r->ref = 1;
  r->path = g_strdup (name);
  r->hash = g_compute_checksum_for_data (G_CHECKSUM_SHA256,
                                         (const guchar *) text, len);
  r->rules = g_ptr_array_new_with_free_func ((GDestroyNotify) rules_rule_free);
  r->queues = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (r->queues, NULL);
  r->mctx = pcre2_match_context_create (NULL);
  pcre2_set_match_limit (r->mctx, RULES_MATCH_LIMIT);
  pcre2_set_depth_limit (r->mctx, RULES_DEPTH_LIMIT);

  ps.name = name;
  ps.p = text;
  ps.end = text + len;
  ps.line = 1;
  ps.line_start = text;
  ps.errors = g_string_new (NULL);
  ps.r = r;
  ps.queue_uses = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         g_free);
  ps.patterns = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       g_free);
  if (!g_utf8_validate (text, len, NULL))
    rules_err (&ps, 1, 1, NULL, "the file is not UTF-8");
  else
    {
      rules_next (&ps);
      while (ps.tok.kind != T_EOF)
        rules_parse_statement (&ps);
    }
  g_clear_pointer (&ps.tok.text, g_free);

  /* whole-file checks */
  if (ps.n_errors == 0 && (r->deflt == NULL || r->deflt->queue == NULL))
    rules_err (&ps, ps.line, 1, "default queue customer-services",
               "no default queue");
  {
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init (&it, ps.queue_uses);
    while (g_hash_table_iter_next (&it, &k, &v))
      if (!rules_has_queue (r, k))
        {
          guint line = 0, col = 0;
          g_autofree char *hint = NULL;
          sscanf (v, "%u:%u", &line, &col);
          hint = r->queues->len > 1
                     ? rules_list_hint ("declared queues: ",
                                        (const char *const *) r->queues->pdata)
                     : g_strdup ("declare it with: queues NAME, ...");
          rules_err (&ps, line, col, hint, "unknown queue '%s'",
                     (const char *) k);
        }
  }
  g_hash_table_unref (ps.queue_uses);
  g_hash_table_unref (ps.patterns);
  if (ps.n_errors > RULES_MAX_ERRORS)
    g_string_append_printf (ps.errors, "\n%s: %u more errors not shown",
                            name, ps.n_errors - RULES_MAX_ERRORS);
  if (ps.n_errors > 0)
    {
      g_set_error_literal (error, RULES_ERROR, RULES_ERROR_SYNTAX,
                           ps.errors->str);
      g_string_free (ps.errors, TRUE);
      rules_unref (r);
      return NULL;
    }
  g_string_free (ps.errors, TRUE);
  rules_words_index (r);
  return r;
}

rules *
rules_load (const char *path, GError **error)
{
  g_autofree char *text = NULL;
  gsize len;
  GError *local = NULL;

  if (!g_file_get_contents (path, &text, &len, &local))
    {
      g_set_error (error, RULES_ERROR, RULES_ERROR_READ, "%s",
                   local->message);
      g_error_free (local);
      return NULL;
    }
  return rules_load_text (path, text, len, error);
}

rules *
rules_ref (rules *r)
{
  g_atomic_int_inc (&r->ref);
  return r;
}

void
rules_unref (rules *r)
{
  if (r == NULL || !g_atomic_int_dec_and_test (&r->ref))
    return;
  g_free (r->path);
  g_free (r->hash);
  g_ptr_array_unref (r->rules);
  rules_rule_free (r->deflt);
  g_ptr_array_unref (r->queues);
  pcre2_match_context_free (r->mctx);
  g_free (r->words);
  g_free (r);
}

const char *
rules_hash (const rules *r)
{
  return r->hash;
}

const char *
rules_path (const rules *r)
{
  return r->path;
}

guint
rules_count (const rules *r)
{
  return r->rules->len;
}

const char *
rules_name (const rules *r, guint i, guint *line)
{
  const rules_rule *rr = r->rules->pdata[i];

  if (line)
    *line = rr->line;
  return rr->name;
}

gboolean
rules_has_queue (const rules *r, const char *queue)
{
  for (guint i = 0; i + 1 < r->queues->len; i++)
    if (g_ascii_strcasecmp (r->queues->pdata[i], queue) == 0)
      return TRUE;
  return FALSE;
}

const char *const *
rules_queues (const rules *r)
{
  return (const char *const *) r->queues->pdata;
}

/* ---------------------------------------------------------- evaluate */

typedef struct {
  const rules *r;
  const rules_input *in;
  char *subject, *body;      /* casefolded, lazily */
  gboolean body_scratch;     /* body is the thread's buffer */
  guint64 *body_words;       /* the bits of the rules' words and pairs of
                              * words found in @body, lazily */
  pcre2_match_data *md;      /* for every `matches` (only whether one
                              * matched is read), lazily */
  gboolean limit_hit;
} rules_eval;

/* Casefold; ASCII text (most mail) takes a loop of eight bytes a step
 * instead of GLib's per-character Unicode path: the step that finds a
 * byte over 0x7f hands the whole text to g_utf8_casefold().  With every
 * byte under 0x80, b + 0x3f has its top bit set from 'A' up and b + 0x25
 * from '[' ('Z' + 1) up, no carry crossing bytes: the capitals are the
 * bytes with the first and not the second, and 0x80 >> 2 is the 0x20
 * that lower-cases them.  */
static gboolean
rules_casefold_ascii (const char *s, gsize len, char *out)
{
  const guint64 high = G_GUINT64_CONSTANT (0x8080808080808080);
  gsize i = 0;

  for (; i + 8 <= len; i += 8)
    {
      guint64 w, caps;

      memcpy (&w, s + i, 8);
      if (w & high)
        return FALSE;
      caps = (w + G_GUINT64_CONSTANT (0x3f3f3f3f3f3f3f3f))
             & ~(w + G_GUINT64_CONSTANT (0x2525252525252525)) & high;
      w |= caps >> 2;
      /* not memcpy: _FORTIFY_SOURCE=3 makes that a call to __memcpy_chk,
       * the size of @out not being known when this is compiled */
      __builtin_memcpy (out + i, &w, 8);
    }
  for (; i < len; i++)
    {
      guchar c = (guchar) s[i];

      if (c >= 0x80)
        return FALSE;
      out[i] = (char) (c + (((guchar) (c - 'A') < 26) << 5));
    }
  out[len] = '\0';
  return TRUE;
}

static char *
rules_casefold (const char *s, gsize len)
{
  char *out = g_malloc (len + 1);

  if (rules_casefold_ascii (s, len, out))
    return out;
  g_free (out);
  return g_utf8_casefold (s, len);
}

/* The folded body goes into a buffer of the thread's, kept for the next
 * decision, when it is ASCII and no longer than this: a 2 KiB allocation
 * a message was a large one for malloc, which first consolidates the
 * small chunks freed since (glibc's malloc_consolidate).  */
#define RULES_SCRATCH_KEEP (64 * 1024)

static GPrivate rules_scratch_key =
    G_PRIVATE_INIT ((GDestroyNotify) g_byte_array_unref);

/* @s[@len] casefolded; *@scratch TRUE when the text is the thread's
 * buffer (not to be freed).  */
static char *
rules_casefold_body (const char *s, gsize len, gboolean *scratch)
{
  GByteArray *buf;

  *scratch = FALSE;
  if (len + 1 > RULES_SCRATCH_KEEP)
    return rules_casefold (s, len);
  buf = g_private_get (&rules_scratch_key);
  if (buf == NULL)
    {
      buf = g_byte_array_sized_new (4096);
      g_private_set (&rules_scratch_key, buf);
    }
  g_byte_array_set_size (buf, (guint) len + 1);
  if (!rules_casefold_ascii (s, len, (char *) buf->data))
    return g_utf8_casefold (s, len);
  *scratch = TRUE;
  return (char *) buf->data;
}

/* Letters and digits make words; anything else separates them.  */
static gsize
rules_word_char_len (const char *p, gboolean *alnum)
{
  if ((guchar) *p < 0x80)
    {
      *alnum = g_ascii_isalnum (*p);
      return 1;
    }
  *alnum = g_unichar_isalnum (g_utf8_get_char (p));
  return g_utf8_next_char (p) - p;
}

/* The rules' `word` values that are one word or two joined by a space
 * (rules_word_value_simple) are answered by one scan of the folded body:
 * every word, and every two adjacent words, looked up in the table of
 * those values made at load (rules.words: a few hundred entries, most
 * look-ups one probe into an empty slot), each value found setting its
 * bit.  Nothing is stored for the body's own words.  */
struct rules_word_entry {
  guint32 hash;
  guint32 id;
  guint32 alen, blen;        /* second word: blen > 0 */
  const char *v;             /* (nullable: a free slot) a node's value */
};

/* FNV-1a */
#define RULES_HASH_BASIS 2166136261u
#define RULES_HASH_PRIME 16777619u

static guint32
rules_hash_bytes (const char *p, gsize n)
{
  guint32 h = RULES_HASH_BASIS;

  for (gsize i = 0; i < n; i++)
    h = (h ^ (guchar) p[i]) * RULES_HASH_PRIME;
  return h;
}

static guint32
rules_hash_pair (guint32 a, guint32 b)
{
  return (a * 0x9e3779b1u) ^ (b + 0x7f4a7c15u + (a << 6) + (a >> 2));
}

/* Words are short: a loop here is cheaper than a call to memcmp.  */
static inline gboolean
rules_bytes_eq (const char *a, const char *b, guint32 n)
{
  for (guint32 i = 0; i < n; i++)
    if (a[i] != b[i])
      return FALSE;
  return TRUE;
}

/* The entry of the value whose words are @a (@alen bytes) and @b (@blen;
 * 0: one word), or NULL.  */
static inline const struct rules_word_entry *
rules_words_find (const rules *r, guint32 h, const char *a, guint32 alen,
                  const char *b, guint32 blen)
{
  for (guint32 i = h & r->words_mask; r->words[i].v != NULL;
       i = (i + 1) & r->words_mask)
    {
      const struct rules_word_entry *e = &r->words[i];
      if (e->hash == h && e->alen == alen && e->blen == blen
          && rules_bytes_eq (e->v, a, alen)
          && rules_bytes_eq (e->v + alen + 1, b, blen))
        return e;
    }
  return NULL;
}

/* Bit @id of the body's scan into @n->wbits: a node's values are looked
 * for with one AND per 64-bit word of the scan they fall in, not one test
 * per value (the longest list in the example has 110).  */
static void
rules_word_bits_add (rules_node *n, guint32 id)
{
  guint i = 0;

  while (i < n->n_wbits && n->wbits[i].at != id >> 6)
    i++;
  if (i == n->n_wbits)
    {
      n->wbits = g_renew (struct rules_word_bits, n->wbits, n->n_wbits + 1);
      n->wbits[n->n_wbits++] = (struct rules_word_bits) { id >> 6, 0 };
    }
  n->wbits[i].bits |= G_GUINT64_CONSTANT (1) << (id & 63);
}

/* Give @n's simple values their bits, a value already seen the same bit.
 * The table is sized for every value first (rules_words_count), so it is
 * never more than a quarter full.  */
static void
rules_words_add (rules *r, rules_node *n)
{
  if (n == NULL)
    return;
  rules_words_add (r, n->a);
  rules_words_add (r, n->b);
  if (n->kind != N_PRED || n->op != OP_WORD || n->wkeys == NULL)
    return;
  for (guint i = 0; i < n->values->len; i++)
    {
      struct rules_word_key *k = &n->wkeys[i];
      const char *v = n->values->pdata[i];
      const struct rules_word_entry *e;
      guint32 j;

      if (!k->simple)
        {
          n->n_wother++;
          if (k->gate == NULL)
            continue;
          v = k->gate;
        }
      e = rules_words_find (r, k->hash, v, k->alen, v + k->alen + 1,
                            k->blen);
      if (e != NULL)
        k->id = e->id;
      else
        {
          for (j = k->hash & r->words_mask; r->words[j].v != NULL;
               j = (j + 1) & r->words_mask)
            ;
          r->words[j] = (struct rules_word_entry) { k->hash, r->n_words,
                                                    k->alen, k->blen, v };
          k->id = r->n_words++;
          r->words_longest = MAX (r->words_longest, MAX (k->alen, k->blen));
        }
      if (k->simple)
        rules_word_bits_add (n, k->id);
    }
}

static guint32
rules_words_count (const rules_node *n)
{
  guint32 c = 0;

  if (n == NULL)
    return 0;
  if (n->kind == N_PRED && n->op == OP_WORD && n->wkeys != NULL)
    for (guint i = 0; i < n->values->len; i++)
      c += n->wkeys[i].simple || n->wkeys[i].gate != NULL;
  return c + rules_words_count (n->a) + rules_words_count (n->b);
}

static void
rules_words_index (rules *r)
{
  guint32 values = 0, size = 64;

  for (guint i = 0; i < r->rules->len; i++)
    values += rules_words_count (((rules_rule *) r->rules->pdata[i])->when);
  if (r->deflt != NULL)
    values += rules_words_count (r->deflt->when);
  while (size < 4 * values && size < (1u << 30))
    size *= 2;
  r->words = g_new0 (struct rules_word_entry, size);
  r->words_mask = size - 1;
  r->n_words = 0;
  r->words_longest = 0;
  for (guint i = 0; i < r->rules->len; i++)
    rules_words_add (r, ((rules_rule *) r->rules->pdata[i])->when);
  if (r->deflt != NULL)
    rules_words_add (r, r->deflt->when);
}

static inline void
rules_words_mark (const rules *r, guint64 *bits, guint32 h, const char *a,
                  guint32 alen, const char *b, guint32 blen)
{
  const struct rules_word_entry *e = rules_words_find (r, h, a, alen, b,
                                                       blen);
  if (e != NULL)
    bits[e->id >> 6] |= G_GUINT64_CONSTANT (1) << (e->id & 63);
}

/* The body's scan by byte: ASCII letters and digits make words, other
 * ASCII separates them, a byte over 0x7f starts a character that
 * rules_word_char_len() classifies, and NUL ends the text.  */
enum { RULES_BYTE_SEP, RULES_BYTE_ALNUM, RULES_BYTE_HIGH, RULES_BYTE_END };

static const guint8 rules_byte_class[256] = {
  [0] = RULES_BYTE_END,
  ['0' ... '9'] = RULES_BYTE_ALNUM,
  ['A' ... 'Z'] = RULES_BYTE_ALNUM,
  ['a' ... 'z'] = RULES_BYTE_ALNUM,
  [0x80 ... 0xff] = RULES_BYTE_HIGH,
};

/* 1 for an ASCII letter or digit: the byte loop of a word's end.  */
static const guint8 rules_ascii_alnum[256] = {
  ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* The bits of the rules' words and pairs of words that @text (folded)
 * holds: its words are runs of letters and digits (ASCII, or any Unicode
 * letter or digit), and a pair is two adjacent words.  One pass: each
 * word is hashed (rules_hash_bytes) as it is read.  */
static guint64 *
rules_body_words (const rules *r, const char *text)
{
  guint64 *bits = g_new0 (guint64, r->n_words / 64 + 1);
  const guchar *p = (const guchar *) text;
  const char *prev = NULL;
  guint32 prev_len = 0, prev_hash = 0;

  if (r->n_words == 0)
    return bits;
  for (;;)
    {
      gboolean alnum;
      gsize n;
      const guchar *start;
      guint32 h = RULES_HASH_BASIS, len;
      guint8 cls;

      while ((cls = rules_byte_class[*p]) == RULES_BYTE_SEP)
        p++;
      if (cls == RULES_BYTE_END)
        break;
      if (cls == RULES_BYTE_HIGH)
        {
          n = rules_word_char_len ((const char *) p, &alnum);
          if (!alnum)
            {
              p += n;
              continue;
            }
        }
      /* the word's end first, then its hash: a word longer than any in
       * the table (a line of 78 X's, as smtp-source writes) is neither
       * hashed nor looked up, alone or in a pair */
      start = p;
      for (;;)
        {
          /* two bytes a turn (p[1] is read only when p[0] is no NUL) */
          while (rules_ascii_alnum[p[0]] && rules_ascii_alnum[p[1]])
            p += 2;
          p += rules_ascii_alnum[*p];
          if (rules_byte_class[*p] != RULES_BYTE_HIGH)  /* separator, NUL */
            break;
          n = rules_word_char_len ((const char *) p, &alnum);
          if (!alnum)
            break;
          p += n;
        }
      len = (guint32) (p - start);
      if (len > r->words_longest)
        {
          prev_len = 0;
          continue;
        }
      {
        /* two bytes a turn: the same hash */
        const guchar *q = start;

        for (; q + 2 <= p; q += 2)
          {
            h = (h ^ q[0]) * RULES_HASH_PRIME;
            h = (h ^ q[1]) * RULES_HASH_PRIME;
          }
        if (q < p)
          h = (h ^ q[0]) * RULES_HASH_PRIME;
      }
      rules_words_mark (r, bits, h, (const char *) start, len, NULL, 0);
      if (prev_len > 0)
        rules_words_mark (r, bits, rules_hash_pair (prev_hash, h), prev,
                          prev_len, (const char *) start, len);
      prev = (const char *) start;
      prev_len = len;
      prev_hash = h;
    }
  return bits;
}

/* A value that the body's scan can answer: one word, or two joined by one
 * space.  */
static gboolean
rules_word_value_simple (const char *v)
{
  guint spaces = 0;

  if (*v == '\0')
    return FALSE;
  for (const char *p = v; *p;)
    {
      gboolean alnum;
      gsize n = rules_word_char_len (p, &alnum);
      if (!alnum)
        {
          if (*p != ' ' || p == v || p[1] == '\0' || p[1] == ' ')
            return FALSE;
          spaces++;
        }
      p += n;
    }
  return spaces <= 1;
}

/* The gate of a value that is not simple (struct rules_word_key): when
 * it opens with a letter or digit and has a second word, its first two
 * words ("e-mails": "e" and "mails") joined by a space, else NULL.
 * Wherever the value is found as a whole word, its first word starts a
 * word of the text (nothing alphanumeric before it) and ends where the
 * value has a separator, and its second word is the text's next word,
 * ending at a separator or at the value's end (nothing alphanumeric
 * after it): the scan has seen the pair.  So a body whose scan lacks it
 * does not hold the value, and is not searched for it.  */
static char *
rules_word_value_gate (const char *v)
{
  const char *p = v, *a_end, *b_start;
  gboolean alnum = FALSE;

  if (*p == '\0')
    return NULL;
  rules_word_char_len (p, &alnum);
  if (!alnum)
    return NULL;
  while (*p)
    {
      gsize n = rules_word_char_len (p, &alnum);
      if (!alnum)
        break;
      p += n;
    }
  a_end = p;
  while (*p)
    {
      gsize n = rules_word_char_len (p, &alnum);
      if (alnum)
        break;
      p += n;
    }
  if (*p == '\0')
    return NULL;
  b_start = p;
  while (*p)
    {
      gsize n = rules_word_char_len (p, &alnum);
      if (!alnum)
        break;
      p += n;
    }
  return g_strdup_printf ("%.*s %.*s", (int) (a_end - v), v,
                          (int) (p - b_start), b_start);
}

static void
rules_word_keys_make (rules_node *n)
{
  n->wkeys = g_new0 (struct rules_word_key, n->values->len);
  for (guint i = 0; i < n->values->len; i++)
    {
      const char *w = n->values->pdata[i];
      const char *sp;
      struct rules_word_key *k = &n->wkeys[i];

      k->simple = rules_word_value_simple (w);
      if (!k->simple)
        {
          k->gate = rules_word_value_gate (w);
          if (k->gate == NULL)
            continue;
          w = k->gate;
        }
      sp = strchr (w, ' ');
      k->alen = sp ? (guint32) (sp - w) : (guint32) strlen (w);
      k->blen = sp ? (guint32) strlen (sp + 1) : 0;
      k->hash = rules_hash_bytes (w, k->alen);
      if (sp)
        k->hash = rules_hash_pair (k->hash, rules_hash_bytes (sp + 1, k->blen));
    }
}

static gboolean
rules_word_boundary (const char *text, const char *at, gsize len)
{
  if (at > text)
    {
      const char *prev = g_utf8_find_prev_char (text, at);
      if (prev && g_unichar_isalnum (g_utf8_get_char (prev)))
        return FALSE;
    }
  if (at[len] != '\0' && g_unichar_isalnum (g_utf8_get_char (at + len)))
    return FALSE;
  return TRUE;
}

static gboolean
rules_has_word (const char *text, const char *word)
{
  gsize n = strlen (word);
  const char *p = text;

  if (n == 0)
    return FALSE;
  while ((p = strstr (p, word)) != NULL)
    {
      if (rules_word_boundary (text, p, n))
        return TRUE;
      p++;
    }
  return FALSE;
}

/* @folded: the casefolded form of @raw (for is/contains/word); @raw for
 * regular expressions.  */
static gboolean
rules_match_string (rules_eval *ev, const rules_node *n, const char *raw,
                    const char *folded)
{
  if (raw == NULL)
    raw = "";
  if (folded == NULL)
    folded = "";
  switch (n->op)
    {
    case OP_IS:
    case OP_IN:
      for (guint i = 0; i < n->values->len; i++)
        if (strcmp (folded, n->values->pdata[i]) == 0)
          return TRUE;
      return FALSE;
    case OP_CONTAINS:
      for (guint i = 0; i < n->values->len; i++)
        if (strstr (folded, n->values->pdata[i]) != NULL)
          return TRUE;
      return FALSE;
    case OP_WORD:
      if (folded == ev->body)
        {
          /* the simple values from the body's scan, the others by
           * looking for them */
          if (ev->body_words == NULL)
            ev->body_words = rules_body_words (ev->r, ev->body);
          for (guint i = 0; i < n->n_wbits; i++)
            if (ev->body_words[n->wbits[i].at] & n->wbits[i].bits)
              return TRUE;
          for (guint i = 0; n->n_wother > 0 && i < n->values->len; i++)
            {
              const struct rules_word_key *k = &n->wkeys[i];

              if (k->simple
                  || (k->gate != NULL
                      && !((ev->body_words[k->id >> 6] >> (k->id & 63)) & 1)))
                continue;
              if (rules_has_word (folded, n->values->pdata[i]))
                return TRUE;
            }
          return FALSE;
        }
      for (guint i = 0; i < n->values->len; i++)
        if (rules_has_word (folded, n->values->pdata[i]))
          return TRUE;
      return FALSE;
    case OP_MATCHES:
      {
        int rc;
        gsize len = strlen (raw);
        if (n->re == NULL)
          return FALSE;
        if (len > RULES_TEXT_LIMIT)
          {
            const char *end = g_utf8_find_prev_char (raw,
                                                     raw + RULES_TEXT_LIMIT);
            len = end ? (gsize) (end - raw) : 0;
          }
        if (ev->md == NULL)
          ev->md = pcre2_match_data_create (1, NULL);
        rc = pcre2_match (n->re, (PCRE2_SPTR) raw, len, 0, 0, ev->md,
                          ev->r->mctx);
        if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT
            || rc == PCRE2_ERROR_JIT_STACKLIMIT)
          ev->limit_hit = TRUE;
        return rc >= 0;
      }
    default:
      return FALSE;
    }
}

static gboolean
rules_match_number (const rules_node *n, double v)
{
  double w = g_array_index (n->numbers, double, 0);

  switch (n->op)
    {
    case OP_IS:
    case OP_EQ: return fabs (v - w) < 1e-9;
    case OP_NE: return fabs (v - w) >= 1e-9;
    case OP_LT: return v < w;
    case OP_LE: return v <= w;
    case OP_GT: return v > w;
    case OP_GE: return v >= w;
    case OP_IN:
      for (guint i = 0; i < n->numbers->len; i++)
        if (fabs (v - g_array_index (n->numbers, double, i)) < 1e-9)
          return TRUE;
      return FALSE;
    default: return FALSE;
    }
}

/* A string field with one value: fold it, match it.  */
static gboolean
rules_match_one (rules_eval *ev, const rules_node *n, const char *raw)
{
  g_autofree char *own = NULL;
  char buf[256];             /* an address, a source, a label: most values */
  const char *folded;
  gsize len;

  if (raw == NULL)
    raw = "";
  /* a pattern reads the raw text */
  if (n->op == OP_MATCHES)
    return rules_match_string (ev, n, raw, NULL);
  len = strlen (raw);
  if (len > RULES_TEXT_LIMIT)
    {
      /* cut at a character boundary */
      const char *end = g_utf8_find_prev_char (raw, raw + RULES_TEXT_LIMIT);
      len = end ? (gsize) (end - raw) : 0;
    }
  if (len < sizeof buf && rules_casefold_ascii (raw, len, buf))
    folded = buf;
  else
    folded = own = rules_casefold (raw, len);
  return rules_match_string (ev, n, raw, folded);
}

/* g_ascii_tolower(), inline */
static inline guchar
rules_ascii_lower (char c)
{
  guchar b = (guchar) c;

  return (guchar) (b + (((guchar) (b - 'A') < 26) << 5));
}

/* g_ascii_strcasecmp (@a, @b) == 0, inline: the labels and header names
 * it compares differ in their first bytes, mostly, and the call through
 * the PLT cost more than the comparison.  */
static inline gboolean
rules_ascii_caseeq (const char *a, const char *b)
{
  for (;; a++, b++)
    {
      guchar x = rules_ascii_lower (*a);

      if (x != rules_ascii_lower (*b))
        return FALSE;
      if (x == '\0')
        return TRUE;
    }
}

static double
rules_score_of (const rules_score *s, guint n, const char *label)
{
  /* a rule names one label of the eight or fourteen */
  for (guint i = 0; i < n; i++)
    if (rules_ascii_caseeq (s[i].label, label))
      return s[i].score;
  return 0.0;
}

/* Times in rules are the council's local time.  */
static GTimeZone *
rules_london (void)
{
  static gsize once;
  static GTimeZone *tz;

  if (g_once_init_enter (&once))
    {
      tz = g_time_zone_new_identifier ("Europe/London");
      if (tz == NULL)
        tz = g_time_zone_new_utc ();
      g_once_init_leave (&once, 1);
    }
  return tz;
}

static gboolean
rules_own_header (const char *name)
{
  return g_ascii_strncasecmp (name, RULES_OWN_HEADER_PREFIX,
                              strlen (RULES_OWN_HEADER_PREFIX)) == 0;
}

/* (out of line: the and/or/not walk above it then saves no registers
 * for it at every node) */
static G_GNUC_NO_INLINE gboolean
rules_pred (rules_eval *ev, const rules_node *n)
{
  const rules_input *in = ev->in;

  switch (n->field)
    {
    case F_RECIPIENT:
      for (guint i = 0; in->recipients && in->recipients[i]; i++)
        if (rules_match_one (ev, n, in->recipients[i]))
          return TRUE;
      return FALSE;
    case F_FORM:
      return rules_match_one (ev, n, in->form);
    case F_SENDER:
      return rules_match_one (ev, n, in->sender);
    case F_SENDER_DOMAIN:
      {
        const char *at = in->sender ? strrchr (in->sender, '@') : NULL;
        return rules_match_one (ev, n, at ? at + 1 : "");
      }
    case F_SUBJECT:
      if (n->op == OP_MATCHES)
        return rules_match_string (ev, n, in->subject, NULL);
      if (ev->subject == NULL)
        {
          const char *subj = in->subject ? in->subject : "";
          ev->subject = rules_casefold (subj, strlen (subj));
        }
      return rules_match_string (ev, n, in->subject, ev->subject);
    case F_BODY:
      if (n->op == OP_MATCHES)
        return rules_match_string (ev, n, in->body, NULL);
      if (ev->body == NULL)
        {
          const char *b = in->body ? in->body : "";
          gsize len = strlen (b);
          if (len > RULES_TEXT_LIMIT)
            {
              const char *end = g_utf8_find_prev_char (b, b
                                                       + RULES_TEXT_LIMIT);
              len = end ? (gsize) (end - b) : 0;
            }
          ev->body = rules_casefold_body (b, len, &ev->body_scratch);
        }
      return rules_match_string (ev, n, in->body, ev->body);
    case F_HEADER:
      for (guint i = 0; i < in->n_headers; i++)
        if (rules_ascii_caseeq (in->header_names[i], n->arg)
            && !rules_own_header (in->header_names[i])
            && rules_match_one (ev, n, in->header_values[i]))
          return TRUE;
      return FALSE;
    case F_ATT_NAME:
    case F_ATT_TYPE:
      for (guint i = 0; i < in->n_attachments; i++)
        if (rules_match_one (ev, n, n->field == F_ATT_NAME
                                        ? in->att_names[i]
                                        : in->att_types[i]))
          return TRUE;
      return FALSE;
    case F_ATTACHMENTS:
      return rules_match_number (n, in->n_attachments);
    case F_SOURCE:
      return rules_match_one (ev, n, in->source);
    case F_KIND:
      return rules_match_one (ev, n, in->n_kind ? in->kind_scores[0].label
                                                 : "");
    case F_TOPIC:
      return rules_match_one (ev, n, in->n_topic ? in->topic_scores[0].label
                                                  : "");
    case F_KIND_SCORE:
      return rules_match_number (n, rules_score_of (in->kind_scores,
                                                    in->n_kind, n->arg));
    case F_TOPIC_SCORE:
      return rules_match_number (n, rules_score_of (in->topic_scores,
                                                    in->n_topic, n->arg));
    case F_SPECIAL:
      for (guint i = 0; i < G_N_ELEMENTS (rules_special_names); i++)
        if ((in->special & rules_special_names[i].bit)
            && rules_match_one (ev, n, rules_special_names[i].name))
          return TRUE;
      return FALSE;
    case F_CARDS:
      return rules_match_number (n, in->cards_redacted);
    case F_AUTO_REPLY:
      return (in->auto_reply != 0) == n->boolean;
    case F_DAY:
    case F_TIME:
      {
        g_autoptr (GDateTime) now = in->received ? NULL
                                                 : g_date_time_new_now_utc ();
        g_autoptr (GDateTime) local = g_date_time_to_timezone (
            in->received ? in->received : now, rules_london ());
        if (n->field == F_TIME)
          return rules_match_number (n, g_date_time_get_hour (local) * 60
                                            + g_date_time_get_minute (local));
        return rules_match_one (ev, n, rules_days[g_date_time_get_day_of_week
                                                  (local) - 1]);
      }
    }
  return FALSE;
}

static gboolean
rules_eval_node (rules_eval *ev, const rules_node *n)
{
  switch (n->kind)
    {
    case N_OR:
      return rules_eval_node (ev, n->a) || rules_eval_node (ev, n->b);
    case N_AND:
      return rules_eval_node (ev, n->a) && rules_eval_node (ev, n->b);
    case N_NOT:
      return !rules_eval_node (ev, n->a);
    case N_PRED:
      return rules_pred (ev, n);
    }
  return FALSE;
}

static void
rules_apply (const rules_rule *r, rules_decision *out)
{
  if (r->queue && out->queue == NULL)
    {
      out->queue = g_strdup (r->queue);
      g_free (out->rule);
      out->rule = g_strdup (r->name);
      out->line = r->line;
    }
  if (r->kind && out->kind == NULL)
    out->kind = g_strdup (r->kind);
  if (r->priority && out->priority == NULL)
    out->priority = g_strdup (r->priority);
  if (r->sla && out->sla == NULL)
    out->sla = g_strdup (r->sla);
  if (r->retention && out->retention == NULL)
    out->retention = g_strdup (r->retention);
  for (guint i = 0; i < r->tags->len; i++)
    g_ptr_array_add (out->tags, g_strdup (r->tags->pdata[i]));
}

void
rules_decision_clear (rules_decision *d)
{
  g_clear_pointer (&d->queue, g_free);
  g_clear_pointer (&d->kind, g_free);
  g_clear_pointer (&d->priority, g_free);
  g_clear_pointer (&d->sla, g_free);
  g_clear_pointer (&d->retention, g_free);
  g_clear_pointer (&d->rule, g_free);
  g_clear_pointer (&d->tags, g_ptr_array_unref);
  g_clear_pointer (&d->fired, g_ptr_array_unref);
}

void
rules_decide (const rules *r, const rules_input *in, rules_decision *out)
{
  rules_eval ev = { .r = r, .in = in };

  memset (out, 0, sizeof *out);
  out->tags = g_ptr_array_new_with_free_func (g_free);
  out->fired = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < r->rules->len; i++)
    {
      const rules_rule *rr = r->rules->pdata[i];
      if (!rules_eval_node (&ev, rr->when))
        continue;
      g_ptr_array_add (out->fired, g_strdup (rr->name));
      rules_apply (rr, out);
      if (rr->stop)
        break;
    }
  if (out->queue == NULL)
    {
      out->rule = g_strdup ("default");
      out->line = r->deflt->line;
    }
  rules_apply (r->deflt, out);
  if (out->kind == NULL)
    {
      /* no rule said: the classifier's best kind that may come from the
       * classifier alone (rules_rule_only_kinds), else enquiry */
      const char *k = "enquiry";
      for (guint i = 0; i < in->n_kind; i++)
        if (in->kind_scores[i].label
            && !rules_in_list (rules_rule_only_kinds, in->kind_scores[i].label))
          {
            k = in->kind_scores[i].label;
            break;
          }
      out->kind = g_strdup (k);
    }
  if (out->priority == NULL)
    out->priority = g_strdup ("normal");
  out->limit_hit = ev.limit_hit;
  g_free (ev.subject);
  if (!ev.body_scratch)
    g_free (ev.body);
  g_free (ev.body_words);
  pcre2_match_data_free (ev.md);
}
