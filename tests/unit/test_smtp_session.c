/*
 * test_smtp_session.c - unit tests of the pure SMTP session
 * (intake/smtp_session.c).
 *
 * Covers: commands and reply codes; sequencing; address and parameter
 * syntax (SECURITY-TESTS 19-21, 28-32, 44); pipelining and RFC 2920
 * synchronisation (9-11); STARTTLS (12-14); error, line, recipient, size,
 * text-line, header and hop limits at limit-1, limit and limit+1 (16-18,
 * 22-25, 50); DATA framing and SMTP smuggling (1-6, the corpus in
 * tests/data/smtp-smuggling, and a differential test against a reference
 * unstuffer); the store's answers; shutdown; deadlines with a fake clock
 * (26, 27).
 *
 * Table cases are run twice: each client write fed whole, and the same
 * bytes fed one at a time.  Cases marked F_WHOLE_ONLY test what depends on
 * the split (input that arrives before a reply: RFC 2920 synchronisation).
 */
#include "intake/smtp_session.h"

#include "intake/smtp_limits.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Fixture: deliberately small limits.
 */
#define T_HOST              "mx.council.example"
#define T_MAX_LINE          512
#define T_MAX_TEXT_LINE     100
#define T_MAX_HEADER_BYTES  300
#define T_MAX_HEADER_LINES  10
#define T_MAX_MESSAGE       1000
#define T_MAX_RCPT          5
#define T_MAX_HOPS          3
#define T_MAX_ERRORS        5
#define T_TIMEOUT_S         10
#define T_MIN_RATE          100

#define SEC                 G_USEC_PER_SEC

enum {
  F_WHOLE_ONLY     = 1 << 0,  /* outcome depends on the split */
  F_NORMALISE      = 1 << 1,  /* normalise_bare_lf = TRUE */
  F_TLS            = 1 << 2,  /* tls_available = TRUE */
  F_STORAGE_LOW    = 1 << 3,
  F_STORE_TEMPFAIL = 1 << 4,  /* the fake store answers TEMPFAIL */
  F_STORE_NOSPACE  = 1 << 5,
  F_STORE_SHUTDOWN = 1 << 6,
  F_MANY_ERRORS    = 1 << 7,  /* max_errors 100: many refusals in a row */
};

/* enquiries@ and foi@council.example, with +detail; postmaster; UNKNOWN
 * for other council.example addresses; RELAY for every other domain.  */
static smtp_rcpt_verdict
fixture_rcpt_check (const char *address, gpointer user_data)
{
  guint *calls = user_data;
  const char *at = strrchr (address, '@');
  g_autofree char *local = NULL;
  char *plus;

  if (calls != NULL)
    (*calls)++;
  if (at == NULL)
    return g_ascii_strcasecmp (address, "postmaster") == 0
           ? SMTP_RCPT_OK : SMTP_RCPT_UNKNOWN;
  if (g_ascii_strcasecmp (at + 1, "council.example") != 0)
    return SMTP_RCPT_RELAY;
  local = g_strndup (address, (gsize) (at - address));
  plus = strchr (local, '+');
  if (plus != NULL)
    *plus = '\0';
  if (g_ascii_strcasecmp (local, "enquiries") == 0
      || g_ascii_strcasecmp (local, "foi") == 0
      || g_ascii_strcasecmp (local, "postmaster") == 0)
    return SMTP_RCPT_OK;
  return SMTP_RCPT_UNKNOWN;
}

static void
fixture_config (smtp_session_config *cfg, guint flags)
{
  smtp_session_config_init (cfg);
  cfg->hostname = T_HOST;
  cfg->max_line = T_MAX_LINE;
  cfg->max_text_line = T_MAX_TEXT_LINE;
  cfg->max_header_bytes = T_MAX_HEADER_BYTES;
  cfg->max_header_lines = T_MAX_HEADER_LINES;
  cfg->max_message = T_MAX_MESSAGE;
  cfg->max_rcpt = T_MAX_RCPT;
  cfg->max_hops = T_MAX_HOPS;
  cfg->max_errors = T_MAX_ERRORS;
  cfg->timeout_s = T_TIMEOUT_S;
  cfg->min_rate = T_MIN_RATE;
  cfg->normalise_bare_lf = (flags & F_NORMALISE) != 0;
  cfg->tls_available = (flags & F_TLS) != 0;
  if (flags & F_MANY_ERRORS)
    cfg->max_errors = 100;
  cfg->rcpt_check = fixture_rcpt_check;
  cfg->rcpt_check_data = NULL;
}

/* ------------------------------------------------------------------------
 * A scripted client with a fake store.
 */
typedef struct {
  smtp_session *s;
  GString *out;                 /* every byte the session sent */
  gsize seen;                   /* of out, already looked at */
  GPtrArray *messages;          /* smtp_message *, handed to the store */
  smtp_store_result store;      /* the fake store's answer */
  gint64 now;                   /* the fake clock (us) */
} client;

static void client_pump (client *c);

static client *
client_new_cfg (const smtp_session_config *cfg, guint flags)
{
  client *c = g_new0 (client, 1);

  c->out = g_string_new (NULL);
  c->messages = g_ptr_array_new_with_free_func
    ((GDestroyNotify) smtp_message_free);
  c->store = (flags & F_STORE_TEMPFAIL) ? SMTP_STORE_TEMPFAIL
             : (flags & F_STORE_NOSPACE) ? SMTP_STORE_NOSPACE
             : (flags & F_STORE_SHUTDOWN) ? SMTP_STORE_SHUTDOWN
             : SMTP_STORE_OK;
  c->now = 1000 * SEC;
  c->s = smtp_session_new (cfg, c->now);
  ck_assert_ptr_nonnull (c->s);
  if (flags & F_STORAGE_LOW)
    smtp_session_set_storage_low (c->s, TRUE);
  client_pump (c);
  return c;
}

static client *
client_new (guint flags)
{
  smtp_session_config cfg;

  fixture_config (&cfg, flags);
  return client_new_cfg (&cfg, flags);
}

static void
client_free (client *c)
{
  smtp_session_free (&c->s);
  ck_assert_ptr_null (c->s);
  g_string_free (c->out, TRUE);
  g_ptr_array_unref (c->messages);
  g_free (c);
}

/* What a shell does between reads: write the output; hand a finished
 * message to the store and pass its answer back.  */
static void
client_pump (client *c)
{
  for (;;)
    {
      GBytes *b = smtp_session_take_output (c->s);
      if (b != NULL)
        {
          gsize n;
          const char *p = g_bytes_get_data (b, &n);
          ck_assert_uint_gt (n, 0);
          g_string_append_len (c->out, p, (gssize) n);
          g_bytes_unref (b);
        }
      if (smtp_session_get_status (c->s) != SMTP_SESSION_MESSAGE)
        return;
      smtp_message *msg = smtp_session_take_message (c->s);
      ck_assert_ptr_nonnull (msg);
      ck_assert_ptr_null (smtp_session_take_message (c->s));
      g_ptr_array_add (c->messages, msg);
      g_autofree char *id = g_strdup_printf ("Q%u", c->messages->len);
      smtp_session_message_done (c->s, c->store, id, c->now);
    }
}

static void
client_send (client *c, const void *data, gsize len, gboolean bytewise)
{
  const char *p = data;

  if (!bytewise)
    {
      smtp_session_feed (c->s, p, len, c->now);
      client_pump (c);
      return;
    }
  for (gsize i = 0; i < len; i++)
    {
      smtp_session_feed (c->s, p + i, 1, c->now);
      client_pump (c);
    }
}

static void
client_say (client *c, const char *line)
{
  client_send (c, line, strlen (line), FALSE);
}

/* The reply codes in @p, one per reply ("220 250 354"), checking the shape
 * of every line: "ddd" then SP (last line) or "-", printable ASCII, CRLF;
 * an enhanced code x.y.z whose class matches, except in the greeting, the
 * EHLO/HELO reply (RFC 2034) and 354 (RFC 3463 has no class 3).  */
static char *
reply_codes (const char *p, gsize len)
{
  GString *codes = g_string_new (NULL);
  gboolean continued = FALSE;
  char code[4] = "";

  for (gsize i = 0; i < len;)
    {
      const char *eol = g_strstr_len (p + i, (gssize) (len - i), "\r\n");
      ck_assert_msg (eol != NULL, "reply without CRLF: %.*s",
                     (int) (len - i), p + i);
      gsize n = (gsize) (eol - (p + i));
      const char *l = p + i;

      ck_assert_msg (n >= 4 && g_ascii_isdigit (l[0])
                     && g_ascii_isdigit (l[1]) && g_ascii_isdigit (l[2])
                     && (l[3] == ' ' || l[3] == '-'),
                     "bad reply line: %.*s", (int) n, l);
      for (gsize k = 0; k < n; k++)
        ck_assert_msg (l[k] >= 0x20 && l[k] <= 0x7e,
                       "unprintable byte in reply: %.*s", (int) n, l);
      if (continued)
        ck_assert_msg (memcmp (code, l, 3) == 0, "code changed mid-reply");
      memcpy (code, l, 3);
      if (n >= 10 && g_ascii_isdigit (l[4]) && l[5] == '.')
        ck_assert_msg (l[4] == l[0], "enhanced code of another class: %.*s",
                       (int) n, l);
      else
        ck_assert_msg (memcmp (l, "220", 3) == 0 || memcmp (l, "250", 3) == 0
                       || memcmp (l, "354", 3) == 0,
                       "no enhanced status code: %.*s", (int) n, l);
      continued = l[3] == '-';
      if (!continued)
        g_string_append_printf (codes, "%s%.3s", codes->len ? " " : "", l);
      i += n + 2;
    }
  ck_assert_msg (!continued, "multi-line reply not finished");
  return g_string_free (codes, FALSE);
}

static char *
client_codes (client *c)
{
  return reply_codes (c->out->str, c->out->len);
}

/* Replies since the last call, as text.  */
static char *
client_text_since (client *c)
{
  char *t = g_strndup (c->out->str + c->seen, c->out->len - c->seen);

  c->seen = c->out->len;
  return t;
}

/* Forget the replies so far (the greeting, a preamble).  */
static void
client_skip (client *c)
{
  c->seen = c->out->len;
}

static char *
client_codes_since (client *c)
{
  g_autofree char *t = client_text_since (c);

  return reply_codes (t, strlen (t));
}

static smtp_message *
client_message (client *c, guint i)
{
  ck_assert_uint_lt (i, c->messages->len);
  return g_ptr_array_index (c->messages, i);
}

/* C-escaped bytes for failure messages.  */
static char *
escape (const void *data, gsize len)
{
  const guint8 *p = data;
  GString *s = g_string_new (NULL);

  for (gsize i = 0; i < len; i++)
    {
      if (p[i] == '\r')
        g_string_append (s, "\\r");
      else if (p[i] == '\n')
        g_string_append (s, "\\n");
      else if (p[i] < 0x20 || p[i] > 0x7e || p[i] == '\\')
        g_string_append_printf (s, "\\x%02x", p[i]);
      else
        g_string_append_c (s, (char) p[i]);
    }
  return g_string_free (s, FALSE);
}

static void
assert_bytes (GBytes *got, const void *want, gsize want_len,
              const char *what)
{
  gsize n;
  const void *p = g_bytes_get_data (got, &n);

  if (n != want_len || (n > 0 && memcmp (p, want, n) != 0))
    {
      g_autofree char *g = escape (p, n);
      g_autofree char *w = escape (want, want_len);
      ck_abort_msg ("%s: stored \"%s\", expected \"%s\"", what, g, w);
    }
}

/* ------------------------------------------------------------------------
 * Scripts: a case's input is a list of client writes.
 *   {{>}}         end of a write (the client waits for the replies)
 *   {{tls}}       the TLS handshake succeeds (smtp_session_tls_done TRUE)
 *   {{tlsfail}}   the TLS handshake fails
 *   {{N*text}}    text repeated N times (may nest)
 */
typedef enum { STEP_WRITE, STEP_TLS_OK, STEP_TLS_FAIL } step_kind;

typedef struct {
  step_kind kind;
  GByteArray *bytes;
} step;

static void
step_free (gpointer p)
{
  step *st = p;

  if (st->bytes != NULL)
    g_byte_array_unref (st->bytes);
  g_free (st);
}

static void
expand_repeats (const char *p, gsize len, GByteArray *out)
{
  gsize i = 0;

  while (i < len)
    {
      if (i + 2 < len && p[i] == '{' && p[i + 1] == '{'
          && g_ascii_isdigit (p[i + 2]))
        {
          gsize j = i + 2, k, depth = 1;
          guint n = 0;
          while (j < len && g_ascii_isdigit (p[j]))
            n = n * 10 + (guint) (p[j++] - '0');
          ck_assert_msg (j < len && p[j] == '*', "bad repeat in script");
          for (k = j + 1; k + 1 < len; k++)
            {
              if (p[k] == '{' && p[k + 1] == '{')
                depth++, k++;
              else if (p[k] == '}' && p[k + 1] == '}' && --depth == 0)
                break;
              else if (p[k] == '}' && p[k + 1] == '}')
                k++;
            }
          ck_assert_msg (depth == 0, "unterminated repeat in script");
          GByteArray *body = g_byte_array_new ();
          expand_repeats (p + j + 1, k - j - 1, body);
          for (guint r = 0; r < n; r++)
            g_byte_array_append (out, body->data, body->len);
          g_byte_array_unref (body);
          i = k + 2;
        }
      else
        g_byte_array_append (out, (const guint8 *) p + i++, 1);
    }
}

static GPtrArray *
script_parse (const char *in, gsize len)
{
  static const struct { const char *mark; step_kind kind; } marks[] = {
    { "{{>}}", STEP_WRITE },
    { "{{tls}}", STEP_TLS_OK },
    { "{{tlsfail}}", STEP_TLS_FAIL },
  };
  GPtrArray *steps = g_ptr_array_new_with_free_func (step_free);
  GByteArray *all = g_byte_array_new ();
  step *cur = g_new0 (step, 1);

  expand_repeats (in, len, all);
  cur->bytes = g_byte_array_new ();
  for (gsize i = 0; i < all->len;)
    {
      gboolean marked = FALSE;
      for (gsize m = 0; m < G_N_ELEMENTS (marks) && !marked; m++)
        {
          gsize ml = strlen (marks[m].mark);
          if (i + ml <= all->len && memcmp (all->data + i, marks[m].mark,
                                            ml) == 0)
            {
              g_ptr_array_add (steps, cur);
              if (marks[m].kind != STEP_WRITE)
                {
                  step *t = g_new0 (step, 1);
                  t->kind = marks[m].kind;
                  g_ptr_array_add (steps, t);
                }
              cur = g_new0 (step, 1);
              cur->bytes = g_byte_array_new ();
              i += ml;
              marked = TRUE;
            }
        }
      if (!marked)
        g_byte_array_append (cur->bytes, all->data + i++, 1);
    }
  g_ptr_array_add (steps, cur);
  g_byte_array_unref (all);
  return steps;
}

static void
client_run_script (client *c, const char *in, gsize len, gboolean bytewise)
{
  g_autoptr (GPtrArray) steps = script_parse (in, len);

  for (guint i = 0; i < steps->len; i++)
    {
      step *st = g_ptr_array_index (steps, i);
      switch (st->kind)
        {
        case STEP_WRITE:
          if (st->bytes->len > 0)
            client_send (c, st->bytes->data, st->bytes->len, bytewise);
          break;
        case STEP_TLS_OK:
        case STEP_TLS_FAIL:
          ck_assert_int_eq (smtp_session_get_status (c->s),
                            SMTP_SESSION_STARTTLS);
          smtp_session_tls_done (c->s, st->kind == STEP_TLS_OK, c->now);
          client_pump (c);
          break;
        }
    }
}

/* ------------------------------------------------------------------------
 * Table cases.
 */
typedef struct {
  const char *name;
  const char *in;               /* script, see above */
  gsize in_len;
  const char *replies;          /* reply codes in order */
  smtp_session_status status;   /* at the end */
  guint messages;               /* handed to the store */
  guint flags;                  /* F_* */
  const char *msg;              /* bytes of the last message; NULL: any */
  gsize msg_len;
} session_case;

#define IN(s)   s, sizeof (s) - 1
#define MSG(s)  s, sizeof (s) - 1
#define READ    SMTP_SESSION_READ
#define CLOSE   SMTP_SESSION_CLOSE
#define TLS     SMTP_SESSION_STARTTLS

/* The normal preamble (SECURITY-TESTS "P"), one command per write.  */
#define EHLO    "EHLO client.example\r\n{{>}}"
#define R_EHLO  "220 250"
#define MAILED  EHLO "MAIL FROM:<a@sender.example>\r\n{{>}}"
#define R_MAILED R_EHLO " 250"
#define ENV     MAILED "RCPT TO:<foi@council.example>\r\n{{>}}DATA\r\n{{>}}"
#define R_ENV   R_MAILED " 250 354"

static void
run_case (const session_case *tc, int loop)
{
  gboolean bytewise = loop % 2 == 1;
  const char *mode = bytewise ? "byte at a time" : "whole";

  if (bytewise && (tc->flags & F_WHOLE_ONLY))
    return;

  client *c = client_new (tc->flags);
  client_run_script (c, tc->in, tc->in_len, bytewise);

  g_autofree char *codes = client_codes (c);
  ck_assert_msg (strcmp (codes, tc->replies) == 0,
                 "%s (%s): replies \"%s\", expected \"%s\"",
                 tc->name, mode, codes, tc->replies);
  ck_assert_msg (smtp_session_get_status (c->s) == tc->status,
                 "%s (%s): status %d, expected %d (phase %s)", tc->name,
                 mode, smtp_session_get_status (c->s), tc->status,
                 smtp_session_phase_name (c->s));
  ck_assert_msg (c->messages->len == tc->messages,
                 "%s (%s): %u messages, expected %u", tc->name, mode,
                 c->messages->len, tc->messages);
  if (tc->msg != NULL)
    {
      smtp_message *m = client_message (c, c->messages->len - 1);
      g_autofree char *what = g_strdup_printf ("%s (%s)", tc->name, mode);
      assert_bytes (m->data, tc->msg, tc->msg_len, what);
      if (!(tc->flags & F_NORMALISE))
        ck_assert_msg (!m->normalised, "%s: normalised", what);
    }
  client_free (c);
}

#define TABLE_TEST(table)                                   \
  START_TEST (test_##table)                                 \
  {                                                         \
    run_case (&table[_i / 2], _i);                          \
  }                                                         \
  END_TEST

#define ADD_TABLE(tc, table) \
  tcase_add_loop_test (tc, test_##table, 0, 2 * (int) G_N_ELEMENTS (table))

/* Commands and their replies.  */
static const session_case command_cases[] = {
  { "greeting", IN (""), "220", READ },
  { "EHLO", IN ("EHLO client.example\r\n"), "220 250", READ },
  { "HELO", IN ("HELO client.example\r\n"), "220 250", READ },
  { "verbs are case-insensitive",
    IN ("ehlo x\r\n{{>}}mAiL fRoM:<a@sender.example>\r\n"
        "rcpt to:<foi@council.example>\r\nNoOp\r\nrset\r\nquit\r\n"),
    "220 250 250 250 250 250 221", CLOSE },
  { "bare LF ends a command line",
    IN ("EHLO x\n{{>}}MAIL FROM:<a@sender.example>\nNOOP\n"),
    "220 250 250 250", READ },
  { "NOOP with an argument", IN ("NOOP hello there\r\n"), "220 250", READ },
  { "RSET", IN ("RSET\r\n"), "220 250", READ },
  { "QUIT", IN ("QUIT\r\n"), "220 221", CLOSE },
  { "input after QUIT is ignored", IN ("QUIT\r\nNOOP\r\n{{>}}NOOP\r\n"),
    "220 221", CLOSE },
  { "HELP", IN ("HELP\r\nHELP MAIL\r\n"), "220 214 214", READ },
  { "VRFY", IN ("VRFY foi@council.example\r\n"), "220 252", READ },
  { "VRFY without argument", IN ("VRFY\r\n"), "220 501", READ },
  { "EXPN", IN ("EXPN staff\r\nNOOP\r\n"), "220 502 250", READ },
  { "unknown verbs: BDAT AUTH ETRN TURN XYZZY",
    IN ("BDAT 10 LAST\r\nAUTH PLAIN AGZvbwBiYXI=\r\nETRN x\r\nTURN\r\n"
        "NOOP\r\n"),
    "220 502 502 502 502 250", READ },
  { "BDAT with a 2^64-1 size (21)",
    IN ("BDAT 18446744073709551615 LAST\r\nNOOP\r\n"), "220 502 250", READ },
  { "verb glued to text", IN ("NOOPX\r\nMAILFROM:<a@b.example>\r\n"),
    "220 502 502", READ },
  { "empty line", IN ("\r\nNOOP\r\n"), "220 500 250", READ },
  { "QUIT with an argument (14)", IN ("QUIT now\r\nNOOP\r\n"),
    "220 501 250", READ },
  { "RSET with an argument", IN ("RSET x\r\n"), "220 501", READ },
  { "DATA with an argument", IN (ENV "body\r\n.\r\n{{>}}DATA x\r\n"),
    R_ENV " 250 501", READ, 1 },
  { "trailing spaces are no argument", IN ("RSET  \r\nQUIT \r\n"),
    "220 250 221", CLOSE },
  { "EHLO without a name", IN ("EHLO\r\n{{>}}EHLO \r\n{{>}}HELO\r\n"),
    "220 501 501 501", READ },
  { "EHLO name with a space", IN ("EHLO a b\r\n"), "220 501", READ },
  { "EHLO name with controls (32)", IN ("EHLO a\x0b" "b\x1b[2J\r\n"),
    "220 501", READ },
  { "EHLO name with 8-bit bytes", IN ("EHLO h\xc3\xa9llo\r\n"), "220 501",
    READ },
  { "EHLO address literal", IN ("EHLO [192.0.2.1]\r\n"), "220 250", READ },
  { "NUL in a command (19)", IN ("NOOP\x00x\r\nNOOP\r\n"), "220 500 250",
    READ },
  { "NUL in MAIL (19)",
    IN (EHLO "MAIL FROM:<a\x00" "b@sender.example>\r\n{{>}}"
        "MAIL FROM:<a@sender.example>\r\n{{>}}"
        "RCPT TO:<foi@council.example\x00@evil.example>\r\n{{>}}DATA\r\n"),
    R_EHLO " 500 250 500 503", READ },
  { "bare CR in a command", IN ("NOOP\rRSET\r\nNOOP\r\r\n"), "220 500 500",
    READ },
  { "STARTTLS when TLS is not available", IN ("STARTTLS\r\n"), "220 502",
    READ },
  { "STARTTLS with an argument (14)", IN ("STARTTLS foo\r\n"), "220 501",
    READ, 0, F_TLS },
};
TABLE_TEST (command_cases)

/* Order of commands; STARTTLS.  */
static const session_case sequence_cases[] = {
  { "MAIL before EHLO", IN ("MAIL FROM:<a@sender.example>\r\n"), "220 503",
    READ },
  { "nested MAIL",
    IN (MAILED "MAIL FROM:<b@sender.example>\r\n"), R_MAILED " 503", READ },
  { "RCPT before MAIL", IN (EHLO "RCPT TO:<foi@council.example>\r\n"),
    R_EHLO " 503", READ },
  { "DATA before MAIL", IN (EHLO "DATA\r\n"), R_EHLO " 503", READ },
  { "DATA before RCPT", IN (MAILED "DATA\r\n"), R_MAILED " 503", READ },
  { "DATA after every RCPT was refused",
    IN (MAILED "RCPT TO:<nobody@council.example>\r\n"
        "RCPT TO:<x@elsewhere.example>\r\n{{>}}DATA\r\n"),
    R_MAILED " 550 554 554", READ },
  { "DATA after a syntax error in RCPT",
    IN (MAILED "RCPT TO:foi@council.example\r\n{{>}}DATA\r\n"),
    R_MAILED " 501 554", READ },
  { "EHLO resets the transaction",
    IN (MAILED "EHLO again.example\r\n{{>}}"
        "RCPT TO:<foi@council.example>\r\n"),
    R_MAILED " 250 503", READ },
  { "RSET resets the transaction",
    IN (MAILED "RSET\r\nRCPT TO:<foi@council.example>\r\n"
        "MAIL FROM:<b@sender.example>\r\n"),
    R_MAILED " 250 503 250", READ },
  { "HELO transaction",
    IN ("HELO client.example\r\n{{>}}MAIL FROM:<a@sender.example>\r\n"
        "RCPT TO:<foi@council.example>\r\nDATA\r\n{{>}}hi\r\n.\r\n"),
    "220 250 250 250 354 250", READ, 1, 0, MSG ("hi\r\n") },
  { "two transactions",
    IN (ENV "one\r\n.\r\n{{>}}MAIL FROM:<b@sender.example>\r\n"
        "RCPT TO:<enquiries@council.example>\r\nDATA\r\n{{>}}two\r\n.\r\n"),
    R_ENV " 250 250 250 354 250", READ, 2, 0, MSG ("two\r\n") },
  { "STARTTLS injection (12)",
    IN (EHLO "STARTTLS\r\nRSET\r\n{{tls}}NOOP\r\n"),
    R_EHLO " 220 250", READ, 0, F_TLS },
  { "state reset after STARTTLS (13)",
    IN (MAILED "STARTTLS\r\n{{tls}}RCPT TO:<foi@council.example>\r\n"),
    R_MAILED " 220 503", READ, 0, F_TLS },
  { "MAIL after STARTTLS needs EHLO again",
    IN (EHLO "STARTTLS\r\n{{tls}}MAIL FROM:<a@sender.example>\r\n{{>}}"
        "EHLO client.example\r\n{{>}}MAIL FROM:<a@sender.example>\r\n"),
    R_EHLO " 220 503 250 250", READ, 0, F_TLS },
  { "STARTTLS under TLS (14)",
    IN ("STARTTLS\r\n{{tls}}EHLO x\r\n{{>}}STARTTLS\r\n"),
    "220 220 250 554", READ, 0, F_TLS },
  { "STARTTLS mid-transaction resets it (14)",
    IN (MAILED "RCPT TO:<foi@council.example>\r\n{{>}}STARTTLS\r\n{{tls}}"
        "EHLO b\r\n{{>}}DATA\r\n"),
    R_MAILED " 250 220 250 503", READ, 0, F_TLS },
  { "STARTTLS before EHLO", IN ("STARTTLS\r\n{{tls}}EHLO x\r\n"),
    "220 220 250", READ, 0, F_TLS },
  { "STARTTLS waits for the handshake", IN (EHLO "STARTTLS\r\n"),
    R_EHLO " 220", TLS, 0, F_TLS },
  { "failed handshake closes", IN ("STARTTLS\r\n{{tlsfail}}NOOP\r\n"),
    "220 220", CLOSE, 0, F_TLS },
};
TABLE_TEST (sequence_cases)

/* Addresses: shared by MAIL and RCPT (SECURITY-TESTS 28-30, 44).  */
static const session_case address_cases[] = {
  { "recipient", IN (MAILED "RCPT TO:<foi@council.example>\r\n"),
    R_MAILED " 250", READ },
  { "recipients: plus address, case, one SP",
    IN (MAILED "RCPT TO:<foi+7@council.example>\r\n"
        "RCPT TO:<Enquiries@Council.Example>\r\n"
        "RCPT TO: <foi@council.example>\r\n"),
    R_MAILED " 250 250 250", READ },
  { "unknown local recipient (29)",
    IN (MAILED "RCPT TO:<nosuchdept@council.example>\r\n"),
    R_MAILED " 550", READ },
  { "open relay (28)",
    IN (MAILED "RCPT TO:<victim@mail.example>\r\n"
        "RCPT TO:<victim%mail.example@council.example>\r\n"
        "RCPT TO:<@council.example:victim@mail.example>\r\n"
        "RCPT TO:<\"victim@mail.example\"@council.example>\r\n"
        "NOOP\r\n"),
    R_MAILED " 554 550 554 550 250", READ },
  { "open relay, continued (28)",
    IN (MAILED "RCPT TO:<council.example!victim@mail.example>\r\n"
        "RCPT TO:<victim@mail.example@council.example>\r\n"
        "RCPT TO:<@a.example,@b.example:foi@council.example>\r\n"
        "NOOP\r\n"),
    R_MAILED " 554 554 554 250", READ },
  { "postmaster without domain",
    IN (MAILED "RCPT TO:<postmaster>\r\nRCPT TO:<Postmaster>\r\n"
        "RCPT TO:<postmaster@council.example>\r\nRCPT TO:<nobody>\r\n"),
    R_MAILED " 250 250 250 501", READ },
  { "null recipient", IN (MAILED "RCPT TO:<>\r\n"), R_MAILED " 501", READ },
  { "shell metacharacters (30)",
    IN (EHLO "MAIL FROM:<;sleep 5;@sender.example>\r\n"
        "MAIL FROM:<%n%n%s%s@sender.example>\r\n"
        "MAIL FROM:<a@sender.example>\r\n"
        "RCPT TO:<${run{/bin/sh -c \"id\"}}@council.example>\r\n"),
    R_EHLO " 501 501 250 501", READ },
  { "null sender is accepted (44)",
    IN (EHLO "MAIL FROM:<>\r\n{{>}}RCPT TO:<foi@council.example>\r\n"
        "DATA\r\n{{>}}Subject: Undelivered Mail\r\n\r\nbounce\r\n.\r\n"),
    R_EHLO " 250 250 354 250", READ, 1 },
  { "MAIL source route is dropped",
    IN (EHLO "MAIL FROM:<@relay.example,@b.example:a@sender.example>\r\n"),
    R_EHLO " 250", READ },
  { "MAIL syntax",
    IN (EHLO "MAIL FROM:a@sender.example\r\nMAIL FROM<a@sender.example>\r\n"
        "MAIL TO:<a@sender.example>\r\nMAIL\r\n"
        "MAIL FROM:  <a@sender.example>\r\n"),
    R_EHLO " 501 501 501 501 501", READ, 0, F_MANY_ERRORS },
  { "MAIL path syntax",
    IN (EHLO "MAIL FROM:<a@sender.example\r\nMAIL FROM:<a>\r\n"
        "MAIL FROM:<@x.example>\r\nMAIL FROM:<@:a@x.example>\r\n"
        "MAIL FROM:<@x.example:>\r\nMAIL FROM:<postmaster>\r\n"),
    R_EHLO " 501 501 501 501 501 501", READ, 0, F_MANY_ERRORS },
  { "quoted local parts",
    IN (EHLO "MAIL FROM:<\"john.doe\"@sender.example>\r\nRSET\r\n"
        "MAIL FROM:<\"a\\\"b\"@sender.example>\r\nRSET\r\n"
        "MAIL FROM:<\"a\\@b\"@sender.example>\r\n"
        "MAIL FROM:<\"a>b\"@sender.example>\r\nRSET\r\n"
        "MAIL FROM:<\"ab@sender.example>\r\n"),
    R_EHLO " 250 250 250 250 501 250 250 501", READ },
  { "domains",
    IN (EHLO "MAIL FROM:<a@[192.0.2.1]>\r\nRSET\r\n"
        "MAIL FROM:<a@[IPv6:2001:db8::1]>\r\nRSET\r\n"
        "MAIL FROM:<a@b-c.example>\r\nRSET\r\n"
        "MAIL FROM:<a@[]>\r\nMAIL FROM:<a@[192.0.2.1>\r\n"
        "MAIL FROM:<a@x..example>\r\nMAIL FROM:<a@.example>\r\n"
        "MAIL FROM:<a@example.>\r\nMAIL FROM:<a@x_y.example>\r\n"
        "MAIL FROM:<a@>\r\n"),
    R_EHLO " 250 250 250 250 250 250 501 501 501 501 501 501 501", READ, 0,
    F_MANY_ERRORS },
  { "local part dots and atext",
    IN (EHLO "MAIL FROM:<a.b+c=d'e@sender.example>\r\nRSET\r\n"
        "MAIL FROM:<.a@sender.example>\r\nMAIL FROM:<a.@sender.example>\r\n"
        "MAIL FROM:<a..b@sender.example>\r\nMAIL FROM:<a,b@sender.example>\r\n"
        "MAIL FROM:<a(b)@sender.example>\r\n"),
    R_EHLO " 250 250 501 501 501 501 501", READ, 0, F_MANY_ERRORS },
  { "8-bit, DEL and space in paths",
    IN (EHLO "MAIL FROM:<\xc3\xa9@sender.example>\r\n"
        "MAIL FROM:<a\x7f@sender.example>\r\n"
        "MAIL FROM:<a b@sender.example>\r\n"
        "MAIL FROM:<a@sender.example\t>\r\nNOOP\r\n"),
    R_EHLO " 501 501 501 501 250", READ },
  { "local part 63, 64, 65",
    IN (MAILED "RCPT TO:<foi+{{59*x}}@council.example>\r\n"
        "RCPT TO:<foi+{{60*x}}@council.example>\r\n"
        "RCPT TO:<foi+{{61*x}}@council.example>\r\nNOOP\r\n"),
    R_MAILED " 250 250 501 250", READ },
  { "path 255, 256, 257 with <>",
    IN (EHLO "MAIL FROM:<a@{{243*b}}.example>\r\nRSET\r\n"
        "MAIL FROM:<a@{{244*b}}.example>\r\nRSET\r\n"
        "MAIL FROM:<a@{{245*b}}.example>\r\nNOOP\r\n"),
    R_EHLO " 250 250 250 250 501 250", READ },
  { "RCPT syntax",
    IN (MAILED "RCPT TO:foi@council.example\r\nRCPT <foi@council.example>\r\n"
        "RCPT TO:<foi@council.example>x\r\n"),
    R_MAILED " 501 501 501", READ },
};
TABLE_TEST (address_cases)

/* MAIL and RCPT parameters (SECURITY-TESTS 20, 21, 32).  */
static const session_case param_cases[] = {
  { "SIZE 999, 1000, 1001",
    IN (EHLO "MAIL FROM:<a@sender.example> SIZE=999\r\nRSET\r\n"
        "MAIL FROM:<a@sender.example> SIZE=1000\r\nRSET\r\n"
        "MAIL FROM:<a@sender.example> SIZE=1001\r\nNOOP\r\n"),
    R_EHLO " 250 250 250 250 552 250", READ },
  { "declared size too large (20)",
    IN (EHLO "MAIL FROM:<a@sender.example> SIZE=999999999999\r\n"),
    R_EHLO " 552", READ },
  { "SIZE 2^64-1 parses, 2^64 does not (21)",
    IN (EHLO "MAIL FROM:<a@sender.example> SIZE=18446744073709551615\r\n"
        "MAIL FROM:<a@sender.example> SIZE=18446744073709551616\r\n"),
    R_EHLO " 552 501", READ },
  { "SIZE garbage (21)",
    IN (EHLO "MAIL FROM:<a@sender.example> SIZE=-1\r\n"
        "MAIL FROM:<a@sender.example> SIZE=1e9\r\n"
        "MAIL FROM:<a@sender.example> SIZE=\r\n"
        "MAIL FROM:<a@sender.example> SIZE=0x10\r\n"),
    R_EHLO " 501 501 501 501", READ, 0 },
  { "SIZE garbage, continued (21)",
    IN (EHLO "MAIL FROM:<a@sender.example> SIZE\r\n"
        "MAIL FROM:<a@sender.example> SIZE=+5\r\n"
        "MAIL FROM:<a@sender.example> SIZE=000000000000000000001\r\n"
        "MAIL FROM:<a@sender.example> SIZE=0\r\n"),
    R_EHLO " 501 501 501 250", READ },
  { "BODY",
    IN (EHLO "MAIL FROM:<a@sender.example> BODY=8BITMIME\r\nRSET\r\n"
        "MAIL FROM:<a@sender.example> body=7bit\r\nRSET\r\n"
        "MAIL FROM:<a@sender.example> BODY=BINARYMIME\r\n"
        "MAIL FROM:<a@sender.example> BODY\r\n"),
    R_EHLO " 250 250 250 250 555 555", READ },
  { "SIZE and BODY",
    IN (EHLO "MAIL FROM:<a@sender.example> SIZE=10  BODY=7BIT\r\n"),
    R_EHLO " 250", READ },
  { "repeated and unknown parameters",
    IN (EHLO "MAIL FROM:<a@sender.example> SIZE=10 SIZE=10\r\n"
        "MAIL FROM:<a@sender.example> BODY=7BIT BODY=7BIT\r\n"
        "MAIL FROM:<a@sender.example> X-FOO=bar\r\n"
        "MAIL FROM:<a@sender.example> AUTH=<>\r\n"),
    R_EHLO " 555 555 555 555", READ },
  { "control character in a parameter (32)",
    IN (EHLO "MAIL FROM:<a@sender.example> X-FOO=\x7f\r\n"
        "MAIL FROM:<a@sender.example> SIZE=1\x1b[2J\r\nNOOP\r\n"),
    R_EHLO " 501 501 250", READ },
  { "parameter glued to the path",
    IN (EHLO "MAIL FROM:<a@sender.example>SIZE=10\r\n"), R_EHLO " 501",
    READ },
  { "RCPT parameters",
    IN (MAILED "RCPT TO:<foi@council.example> NOTIFY=NEVER\r\n"
        "RCPT TO:<foi@council.example> X=\x01\r\n"
        "RCPT TO:<foi@council.example>  \r\n"),
    R_MAILED " 555 501 250", READ },
  { "storage low (37)",
    IN (EHLO "MAIL FROM:<a@sender.example>\r\nNOOP\r\n"),
    R_EHLO " 452 250", READ, 0, F_STORAGE_LOW },
};
TABLE_TEST (param_cases)

#define RCPT_N(n) "RCPT TO:<foi+" #n "@council.example>\r\n"

/* Limits at limit-1, limit and limit+1, each followed by a command that
 * must still be answered normally (SECURITY-TESTS 16-18, 22-25, 31, 50).  */
static const session_case limit_cases[] = {
  { "command line 511", IN ("NOOP {{504*x}}\r\nNOOP\r\n"), "220 250 250",
    READ },
  { "command line 512", IN ("NOOP {{505*x}}\r\nNOOP\r\n"), "220 250 250",
    READ },
  { "command line 513", IN ("NOOP {{506*x}}\r\nNOOP\r\n"), "220 500 250",
    READ },
  { "command line 512 with bare LF", IN ("NOOP {{506*x}}\nNOOP\r\n"),
    "220 250 250", READ },
  { "overlong MAIL (17)",
    IN (EHLO "MAIL FROM:<{{600*a}}@sender.example>\r\nNOOP\r\n"),
    R_EHLO " 500 250", READ },
  { "overlong line skipped: 2047 bytes before LF",
    IN ("{{2046*A}}\r\nNOOP\r\n"), "220 500 250", READ },
  { "overlong line skipped: 2048 bytes before LF",
    IN ("{{2047*A}}\r\nNOOP\r\n"), "220 500 250", READ },
  { "overlong line skipped: 2049 bytes before LF closes (18)",
    IN ("{{2048*A}}\r\nNOOP\r\n"), "220 500 421", CLOSE },
  { "huge EHLO (31)", IN ("EHLO {{100000*A}}\r\n"), "220 500 421", CLOSE },
  { "EHLO name 254", IN ("EHLO {{254*a}}\r\n{{>}}NOOP\r\n"), "220 250 250",
    READ },
  { "EHLO name 255", IN ("EHLO {{255*a}}\r\n{{>}}NOOP\r\n"), "220 250 250",
    READ },
  { "EHLO name 256", IN ("EHLO {{256*a}}\r\n{{>}}NOOP\r\n"), "220 501 250",
    READ },
  { "recipients 4",
    IN (MAILED RCPT_N (1) RCPT_N (2) RCPT_N (3) RCPT_N (4) "DATA\r\n"),
    R_MAILED " 250 250 250 250 354", READ },
  { "recipients 5",
    IN (MAILED RCPT_N (1) RCPT_N (2) RCPT_N (3) RCPT_N (4) RCPT_N (5)
        "DATA\r\n"),
    R_MAILED " 250 250 250 250 250 354", READ },
  { "recipients 6 (23)",
    IN (MAILED RCPT_N (1) RCPT_N (2) RCPT_N (3) RCPT_N (4) RCPT_N (5)
        RCPT_N (6) RCPT_N (1) "DATA\r\n"),
    R_MAILED " 250 250 250 250 250 452 250 354", READ },
  { "duplicate recipients are not counted",
    IN (MAILED "{{7*RCPT TO:<foi@council.example>\r\n}}DATA\r\n"),
    R_MAILED " 250 250 250 250 250 250 250 354", READ },
  { "errors 4", IN ("{{4*XYZZY\r\n}}NOOP\r\n"), "220 502 502 502 502 250",
    READ },
  { "errors 5", IN ("{{5*XYZZY\r\n}}NOOP\r\n"),
    "220 502 502 502 502 502 421", CLOSE },
  { "junk (16)", IN ("{{25*XYZZY\r\n}}"), "220 502 502 502 502 502 421",
    CLOSE },
  { "errors of every kind count",
    IN ("MAIL FROM:<a@sender.example>\r\n{{>}}EHLO\r\n{{>}}\r\n"
        "EXPN x\r\nQUIT x\r\nNOOP\r\n"),
    "220 503 501 500 502 501 421", CLOSE },
  { "452 replies are not errors",
    IN (MAILED RCPT_N (1) RCPT_N (2) RCPT_N (3) RCPT_N (4) RCPT_N (5)
        "{{6*RCPT TO:<foi+9@council.example>\r\n}}NOOP\r\n"),
    R_MAILED " 250 250 250 250 250 452 452 452 452 452 452 250", READ },
  { "message 999",
    IN (ENV "\r\n{{9*{{98*a}}\r\n}}{{95*a}}\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "message 1000",
    IN (ENV "\r\n{{9*{{98*a}}\r\n}}{{96*a}}\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "message 1001 (22)",
    IN (ENV "\r\n{{9*{{98*a}}\r\n}}{{97*a}}\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 552 250", READ, 0 },
  { "text line 99", IN (ENV "\r\n{{99*a}}\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "text line 100", IN (ENV "\r\n{{100*a}}\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "text line 101", IN (ENV "\r\n{{101*a}}\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 552 250", READ, 0 },
  { "text line 100 after unstuffing",
    IN (ENV "\r\n..{{99*a}}\r\n.\r\n{{>}}NOOP\r\n"), R_ENV " 250 250",
    READ, 1 },
  { "text line 101 after unstuffing",
    IN (ENV "\r\n..{{100*a}}\r\n.\r\n{{>}}NOOP\r\n"), R_ENV " 552 250",
    READ, 0 },
  { "header section 299",
    IN (ENV "{{4*X: {{45*a}}\r\n}}Y: {{92*a}}\r\n\r\nbody\r\n.\r\n{{>}}"
        "NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "header section 300",
    IN (ENV "{{4*X: {{45*a}}\r\n}}Y: {{93*a}}\r\n\r\nbody\r\n.\r\n{{>}}"
        "NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "header section 301 (24)",
    IN (ENV "{{4*X: {{45*a}}\r\n}}Y: {{94*a}}\r\n\r\nbody\r\n.\r\n{{>}}"
        "NOOP\r\n"),
    R_ENV " 552 250", READ, 0 },
  { "no empty line: the whole message is header",
    IN (ENV "{{6*X: {{45*a}}\r\n}}.\r\n{{>}}" ENV
        "{{6*X: {{45*a}}\r\n}}Z\r\n.\r\n"),
    R_ENV " 250 250 250 250 354 552", READ, 1 },
  { "header lines 9", IN (ENV "{{8*X: a\r\n}}\r\nbody\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "header lines 10",
    IN (ENV "{{9*X: a\r\n}}\r\nbody\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "header lines 11 (25)",
    IN (ENV "{{10*X: a\r\n}}\r\nbody\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 552 250", READ, 0 },
  { "hops 2",
    IN (ENV "{{2*Received: from x\r\n}}\r\nb\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "hops 3",
    IN (ENV "{{3*Received: from x\r\n}}\r\nb\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 250 250", READ, 1 },
  { "hops 4 (50)",
    IN (ENV "{{4*Received: from x\r\n}}\r\nb\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 554 250", READ, 0 },
  { "hops in any case, dot-stuffed",
    IN (ENV "received: a\r\nRECEIVED: b\r\n.Received: c\r\nreCeived:d\r\n"
        "\r\nb\r\n.\r\n"),
    R_ENV " 554", READ, 0 },
  { "not hops: other fields, body, continuation",
    IN (ENV "{{4*X-Received: a\r\n}}Subject: x\r\n Received: y\r\n"
        "Received : z\r\n\r\n{{4*Received: b\r\n}}.\r\n"),
    R_ENV " 250", READ, 1 },
  { "precedence: size before bare LF",
    IN (ENV "\r\n{{11*{{98*a}}\n}}\r\n.\r\n"), R_ENV " 552", READ, 0 },
  { "precedence: header before bare LF",
    IN (ENV "{{11*X: a\n}}\r\nb\r\n.\r\n"), R_ENV " 552", READ, 0 },
  { "precedence: bare LF before hops",
    IN (ENV "{{4*Received: x\n}}\r\nb\r\n.\r\n"), R_ENV " 550", READ, 0 },
};
TABLE_TEST (limit_cases)

/* The smuggled commands of SECURITY-TESTS 1-5.  */
#define SMUGGLED "MAIL FROM:<chief.exec@council.example>\r\n" \
  "RCPT TO:<finance@council.example>\r\nDATA\r\n" \
  "Subject: smuggled\r\n\r\npay invoice 42\r\n"
#define NEAR(seq) ENV "x\r\nA" seq SMUGGLED ".\r\n"

/* DATA framing, dot-unstuffing and SMTP smuggling.  */
static const session_case data_cases[] = {
  { "empty message", IN (ENV ".\r\n"), R_ENV " 250", READ, 1, 0, MSG ("") },
  { "simple message", IN (ENV "Subject: x\r\n\r\nhello\r\n.\r\n"),
    R_ENV " 250", READ, 1, 0, MSG ("Subject: x\r\n\r\nhello\r\n") },
  { "dot-unstuffing (6)",
    IN (ENV "\r\n..leading\r\n...\r\n..\r\n.x\r\n.\r\n"), R_ENV " 250",
    READ, 1, 0, MSG ("\r\n.leading\r\n..\r\n.\r\nx\r\n") },
  { "dots split across reads",
    IN (ENV "a\r{{>}}\n.{{>}}.x\r\n{{>}}.{{>}}\r{{>}}\n"), R_ENV " 250",
    READ, 1, 0, MSG ("a\r\n.x\r\n") },
  { "dots inside lines stay",
    IN (ENV "a.b\r\nc.\r\n.\r\n"), R_ENV " 250", READ, 1, 0,
    MSG ("a.b\r\nc.\r\n") },
  { "\". \" is content (5)", IN (ENV "a\r\n. \r\nb\r\n.\r\n"), R_ENV " 250",
    READ, 1, 0, MSG ("a\r\n \r\nb\r\n") },
  { "\".NUL\" is content (5)", IN (ENV "a\r\n.\x00\r\nb\r\n.\r\n"),
    R_ENV " 250", READ, 1, 0, MSG ("a\r\n\x00\r\nb\r\n") },
  { "8-bit and NUL stored as-is",
    IN (ENV "h\xc3\xa9\x00\xff\x01\r\n.\r\n"), R_ENV " 250", READ, 1, 0,
    MSG ("h\xc3\xa9\x00\xff\x01\r\n") },
  { "pipelined QUIT after the end",
    IN (ENV "a\r\n.\r\nQUIT\r\n"), R_ENV " 250 221", CLOSE, 1, 0,
    MSG ("a\r\n") },
  { "bare LF rejected", IN (ENV "a\nb\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 550 250", READ, 0 },
  { "bare CR rejected", IN (ENV "a\rb\r\n.\r\n{{>}}NOOP\r\n"),
    R_ENV " 550 250", READ, 0 },
  { "bare LF normalised", IN (ENV "a\nb\r\n.\r\n"), R_ENV " 250", READ, 1,
    F_NORMALISE, MSG ("a\r\nb\r\n") },
  { "bare CR normalised", IN (ENV "a\rb\r\r\n.\r\n"), R_ENV " 250", READ, 1,
    F_NORMALISE, MSG ("a\r\nb\r\n\r\n") },
  { "no unstuffing after a bare LF", IN (ENV "a\n..b\r\n.\r\n"),
    R_ENV " 250", READ, 1, F_NORMALISE, MSG ("a\r\n..b\r\n") },
  { "no end after a bare CR", IN (ENV "a\r.\r\n.\r\n"),
    R_ENV " 250", READ, 1, F_NORMALISE, MSG ("a\r\n.\r\n") },
  { "<LF>.<LF> smuggle (1)",
    IN (ENV "Subject: s1\r\n\r\nhello\n.\n" SMUGGLED ".\r\nQUIT\r\n"),
    R_ENV " 550 221", CLOSE, 0 },
  { "<LF>.<LF> smuggle normalised (1)",
    IN (ENV "Subject: s1\r\n\r\nhello\n.\n" SMUGGLED ".\r\nQUIT\r\n"),
    R_ENV " 250 221", CLOSE, 1, F_NORMALISE,
    MSG ("Subject: s1\r\n\r\nhello\r\n.\r\n" SMUGGLED) },
  { "<LF>.<CR><LF> smuggle (2)",
    IN (ENV "Subject: s1\r\n\r\nhello\n.\r\n" SMUGGLED ".\r\nQUIT\r\n"),
    R_ENV " 550 221", CLOSE, 0 },
  { "<LF>.<CR><LF> smuggle normalised (2)",
    IN (ENV "Subject: s1\r\n\r\nhello\n.\r\n" SMUGGLED ".\r\nQUIT\r\n"),
    R_ENV " 250 221", CLOSE, 1, F_NORMALISE,
    MSG ("Subject: s1\r\n\r\nhello\r\n.\r\n" SMUGGLED) },
  { "<CR><LF>.<LF> smuggle (3)",
    IN (ENV "Subject: s1\r\n\r\nhello\r\n.\n" SMUGGLED ".\r\nQUIT\r\n"),
    R_ENV " 550 221", CLOSE, 0 },
  { "<CR><LF>.<LF> smuggle normalised (3)",
    IN (ENV "Subject: s1\r\n\r\nhello\r\n.\n" SMUGGLED ".\r\nQUIT\r\n"),
    R_ENV " 250 221", CLOSE, 1, F_NORMALISE,
    MSG ("Subject: s1\r\n\r\nhello\r\n\r\n" SMUGGLED) },
  { "<CR>.<CR> smuggle (4)",
    IN (ENV "hello\r.\rMAIL FROM:<x@council.example>\r\n.\r\n"),
    R_ENV " 550", READ, 0 },
  { "<CR>.<CR> smuggle normalised (4)",
    IN (ENV "hello\r.\rMAIL FROM:<x@council.example>\r\n.\r\n"),
    R_ENV " 250", READ, 1, F_NORMALISE,
    MSG ("hello\r\n.\r\nMAIL FROM:<x@council.example>\r\n") },
  { "near terminator \\n.\\n (5)", IN (NEAR ("\n.\n")), R_ENV " 550",
    READ, 0 },
  { "near terminator \\n.\\r\\n (5)", IN (NEAR ("\n.\r\n")), R_ENV " 550",
    READ, 0 },
  { "near terminator \\r\\n.\\n (5)", IN (NEAR ("\r\n.\n")), R_ENV " 550",
    READ, 0 },
  { "near terminator \\r.\\r (5)", IN (NEAR ("\r.\r")), R_ENV " 550",
    READ, 0 },
  { "near terminator \\r.\\r\\n (5)", IN (NEAR ("\r.\r\n")), R_ENV " 550",
    READ, 0 },
  { "near terminator \\r\\n.\\rX (5)", IN (NEAR ("\r\n.\rX")),
    R_ENV " 550", READ, 0 },
  { "near terminator \\r\\n. \\r\\n (5)", IN (NEAR ("\r\n. \r\n")),
    R_ENV " 250", READ, 1, 0, MSG ("x\r\nA\r\n \r\n" SMUGGLED) },
  { "near terminator \\r\\n.NUL\\r\\n (5)", IN (NEAR ("\r\n.\x00\r\n")),
    R_ENV " 250", READ, 1, 0, MSG ("x\r\nA\r\n\x00\r\n" SMUGGLED) },
  { "normalised \\n.\\n (5)", IN (NEAR ("\n.\n")), R_ENV " 250", READ, 1,
    F_NORMALISE, MSG ("x\r\nA\r\n.\r\n" SMUGGLED) },
  { "normalised \\r.\\r\\n (5)", IN (NEAR ("\r.\r\n")), R_ENV " 250", READ,
    1, F_NORMALISE, MSG ("x\r\nA\r\n.\r\n" SMUGGLED) },
  { "normalised \\r\\n.\\rX (5)", IN (NEAR ("\r\n.\rX")), R_ENV " 250",
    READ, 1, F_NORMALISE, MSG ("x\r\nA\r\n\r\nX" SMUGGLED) },
};
TABLE_TEST (data_cases)

/* Pipelining (RFC 2920) and its synchronisation points.  */
static const session_case pipeline_cases[] = {
  { "legitimate pipelining (11)",
    IN (EHLO "MAIL FROM:<a@sender.example>\r\nRCPT TO:<foi@council.example>"
        "\r\nRCPT TO:<enquiries@council.example>\r\nDATA\r\n"),
    R_EHLO " 250 250 250 354", READ },
  { "RSET and NOOP pipelined", IN ("RSET\r\nNOOP\r\nNOOP\r\nRSET\r\n"),
    "220 250 250 250 250", READ },
  { "next transaction pipelined behind the end",
    IN (ENV "a\r\n.\r\nMAIL FROM:<b@sender.example>\r\n"
        "RCPT TO:<enquiries@council.example>\r\nDATA\r\n{{>}}b\r\n.\r\n"),
    R_ENV " 250 250 250 354 250", READ, 2, 0, MSG ("b\r\n") },
  { "talking before the greeting (9)",
    IN ("EHLO x\r\nMAIL FROM:<a@b.example>\r\n"), "220 554", CLOSE, 0,
    F_WHOLE_ONLY },
  { "DATA body before 354 (10)",
    IN (EHLO "MAIL FROM:<a@sender.example>\r\n"
        "RCPT TO:<foi@council.example>\r\nDATA\r\nSubject: x\r\n\r\n"
        "body\r\n.\r\n"),
    R_EHLO " 250 250 554", CLOSE, 0, F_WHOLE_ONLY },
  { "second DATA body before 354 behind the end",
    IN (ENV "a\r\n.\r\nMAIL FROM:<b@sender.example>\r\n"
        "RCPT TO:<foi@council.example>\r\nDATA\r\nb\r\n.\r\n"),
    R_ENV " 250 250 250 554", CLOSE, 1, F_WHOLE_ONLY },
  { "EHLO pipelined behind the end",
    IN (ENV "a\r\n.\r\nEHLO x\r\nNOOP\r\n"), R_ENV " 250 554", CLOSE, 1,
    F_WHOLE_ONLY },
  { "refused DATA followed by input",
    IN (EHLO "DATA\r\nNOOP\r\n"), R_EHLO " 554", CLOSE, 0, F_WHOLE_ONLY },
};
TABLE_TEST (pipeline_cases)

/* The store's answers.  */
static const session_case store_cases[] = {
  { "store OK", IN (ENV "a\r\n.\r\n{{>}}NOOP\r\n"), R_ENV " 250 250", READ,
    1 },
  { "store TEMPFAIL", IN (ENV "a\r\n.\r\n{{>}}NOOP\r\n"), R_ENV " 451 250",
    READ, 1, F_STORE_TEMPFAIL },
  { "store NOSPACE", IN (ENV "a\r\n.\r\n{{>}}NOOP\r\n"), R_ENV " 452 250",
    READ, 1, F_STORE_NOSPACE },
  { "store SHUTDOWN", IN (ENV "a\r\n.\r\nNOOP\r\n{{>}}NOOP\r\n"),
    R_ENV " 421", CLOSE, 1, F_STORE_SHUTDOWN },
  { "transaction reset after TEMPFAIL",
    IN (ENV "a\r\n.\r\n{{>}}RCPT TO:<foi@council.example>\r\n"),
    R_ENV " 451 503", READ, 1, F_STORE_TEMPFAIL },
  { "transaction reset after a refusal",
    IN (ENV "a\nb\r\n.\r\n{{>}}RCPT TO:<foi@council.example>\r\n"),
    R_ENV " 550 503", READ, 0 },
  { "pipelined QUIT after TEMPFAIL", IN (ENV "a\r\n.\r\nQUIT\r\n"),
    R_ENV " 451 221", CLOSE, 1, F_STORE_TEMPFAIL },
};
TABLE_TEST (store_cases)

/* ------------------------------------------------------------------------
 * Replies and envelope in detail.
 */
START_TEST (test_greeting_and_ehlo_text)
{
  client *c = client_new (F_TLS);
  g_autofree char *greeting = client_text_since (c);

  ck_assert_str_eq (greeting, "220 " T_HOST " ESMTP intake\r\n");

  client_say (c, "EHLO client.example\r\n");
  g_autofree char *ehlo = client_text_since (c);
  ck_assert_str_eq (ehlo, "250-" T_HOST "\r\n"
                    "250-PIPELINING\r\n"
                    "250-SIZE 1000\r\n"
                    "250-8BITMIME\r\n"
                    "250-ENHANCEDSTATUSCODES\r\n"
                    "250 STARTTLS\r\n");

  client_say (c, "HELO client.example\r\n");
  g_autofree char *helo = client_text_since (c);
  ck_assert_str_eq (helo, "250 " T_HOST "\r\n");

  /* RFC 3207 4.2: after TLS, EHLO does not announce STARTTLS.  */
  client_say (c, "STARTTLS\r\n");
  g_autofree char *ready = client_text_since (c);
  ck_assert_str_eq (ready, "220 2.0.0 Ready to start TLS\r\n");
  smtp_session_tls_done (c->s, TRUE, c->now);
  ck_assert_ptr_null (smtp_session_take_output (c->s));
  client_say (c, "EHLO client.example\r\n");
  g_autofree char *ehlo_tls = client_text_since (c);
  ck_assert_str_eq (ehlo_tls, "250-" T_HOST "\r\n"
                    "250-PIPELINING\r\n"
                    "250-SIZE 1000\r\n"
                    "250-8BITMIME\r\n"
                    "250 ENHANCEDSTATUSCODES\r\n");
  client_free (c);
}
END_TEST

START_TEST (test_reply_texts)
{
  static const struct { const char *in; const char *out; } cases[] = {
    { "XYZZY\r\n", "502 5.5.1 Error: command not recognized\r\n" },
    { "NOOP\r\n", "250 2.0.0 Ok\r\n" },
    { "EXPN x\r\n", "502 5.5.1 " },
    { "VRFY x\r\n", "252 2.5.0 Cannot VRFY user" },
    { "HELP\r\n", "214 2.0.0 " },
    { "MAIL FROM:<a@sender.example>\r\n", "503 5.5.1 " },
    { "HELO x\r\n", "250 " T_HOST "\r\n" },
    { "MAIL FROM:<a@@sender.example>\r\n",
      "501 5.1.7 Bad sender address syntax\r\n" },
    { "MAIL FROM:<a@sender.example> SIZE=5000\r\n",
      "552 5.3.4 Message size exceeds fixed limit\r\n" },
    { "MAIL FROM:<a@sender.example> FOO\r\n",
      "555 5.5.4 Unsupported option\r\n" },
    { "MAIL FROM:<a@sender.example> SIZE=x\r\n", "501 5.5.4 " },
    { "RCPT TO:<foi@council.example>\r\n", "503 5.5.1 " },
    { "MAIL FROM:<a@sender.example>\r\n", "250 2.1.0 Ok\r\n" },
    { "RCPT TO:<a b>\r\n", "501 5.1.3 Bad recipient address syntax\r\n" },
    { "RCPT TO:<x@council.example>\r\n",
      "550 5.1.1 Recipient address rejected: User unknown\r\n" },
    { "RCPT TO:<x@else.example>\r\n", "554 5.7.1 Relay access denied\r\n" },
    { "DATA\r\n", "554 5.5.1 Error: no valid recipients\r\n" },
    { "RCPT TO:<foi@council.example>\r\n", "250 2.1.5 Ok\r\n" },
    { "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n" },
    { "x\r\n.\r\n", "250 2.0.0 Ok: queued as Q1\r\n" },
    { "RSET\r\n", "250 2.0.0 Ok\r\n" },
    { "QUIT\r\n", "221 2.0.0 Bye\r\n" },
  };
  smtp_session_config cfg;

  fixture_config (&cfg, 0);
  cfg.max_errors = 100;
  client *c = client_new_cfg (&cfg, 0);
  client_skip (c);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      client_say (c, cases[i].in);
      g_autofree char *t = client_text_since (c);
      ck_assert_msg (g_str_has_prefix (t, cases[i].out),
                     "%zu: \"%s\" does not start with \"%s\"", i, t,
                     cases[i].out);
    }
  client_free (c);
}
END_TEST

START_TEST (test_nul_command_span)
{
  /* The NUL sits inside the span: strlen() would see "NOOP".  */
  client *c = client_new (0);
  client_skip (c);

  client_send (c, "NOOP\x00\r\n", 7, FALSE);
  client_send (c, "MAIL FROM:<a\x00@b.example>\r\n", 26, FALSE);
  g_autofree char *t = client_text_since (c);
  ck_assert_str_eq (t, "500 5.5.2 Error: NUL in command\r\n"
                    "500 5.5.2 Error: NUL in command\r\n");
  ck_assert_uint_eq (smtp_session_errors (c->s), 2);
  client_free (c);
}
END_TEST

START_TEST (test_data_refusal_texts)
{
  static const struct { const char *body; const char *out; } cases[] = {
    { "\r\n{{1001*a}}\n\r\n.\r\n",
      "552 5.3.4 Message size exceeds fixed limit\r\n" },
    { "{{11*X: a\r\n}}{{101*a}}\n\r\n.\r\n",
      "552 5.3.4 Error: line too long\r\n" },
    { "{{11*X: a\n}}\r\n.\r\n",
      "552 5.3.4 Error: header section too large\r\n" },
    { "a\nb\rc\r\n.\r\n", "550 5.5.2 Error: bare <LF> received\r\n" },
    { "a\rb\r\n.\r\n", "550 5.5.2 Error: bare <CR> received\r\n" },
    { "{{4*Received: x\r\n}}\r\n.\r\n", "554 5.4.6 Too many hops\r\n" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      client *c = client_new (0);
      const char *env = ENV;
      client_run_script (c, env, strlen (env), FALSE);
      client_skip (c);
      client_run_script (c, cases[i].body, strlen (cases[i].body), FALSE);
      g_autofree char *t = client_text_since (c);
      ck_assert_msg (strcmp (t, cases[i].out) == 0, "%zu: \"%s\"", i, t);
      ck_assert_uint_eq (c->messages->len, 0);
      ck_assert_uint_eq (smtp_session_errors (c->s), 1);
      client_free (c);
    }
}
END_TEST

START_TEST (test_envelope)
{
  client *c = client_new (F_TLS);

  client_say (c, "STARTTLS\r\n");
  smtp_session_tls_done (c->s, TRUE, c->now);
  client_say (c, "EHLO client.example\r\n");
  client_say (c, "MAIL FROM:<@relay.example:a@sender.example> "
              "BODY=8BITMIME SIZE=100\r\n"
              "RCPT TO:<foi@council.example>\r\n"
              "RCPT TO:<enquiries@council.example>\r\n"
              "RCPT TO:<foi@COUNCIL.example>\r\n"
              "RCPT TO:<FOI@council.example>\r\n"
              "RCPT TO:<nobody@council.example>\r\n"
              "RCPT TO:<enquiries@council.example>\r\n"
              "DATA\r\n");
  client_say (c, "body\r\n.\r\n");
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, "220 220 250 250 250 250 250 250 550 250 354 250");

  smtp_message *m = client_message (c, 0);
  ck_assert_str_eq (m->helo, "client.example");
  ck_assert_str_eq (m->mail_from, "a@sender.example");
  ck_assert_uint_eq (m->rcpts->len, 3);
  ck_assert_str_eq (g_ptr_array_index (m->rcpts, 0), "foi@council.example");
  ck_assert_str_eq (g_ptr_array_index (m->rcpts, 1),
                    "enquiries@council.example");
  ck_assert_str_eq (g_ptr_array_index (m->rcpts, 2), "FOI@council.example");
  ck_assert (m->tls);
  ck_assert (m->esmtp);
  ck_assert (m->body_8bit);
  ck_assert (!m->normalised);
  assert_bytes (m->data, "body\r\n", 6, "envelope");
  client_free (c);
}
END_TEST

START_TEST (test_envelope_null_sender_helo)
{
  client *c = client_new (F_NORMALISE);

  client_say (c, "HELO client.example\r\n");
  client_say (c, "MAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\n");
  client_say (c, "a\nb\r\n.\r\n");
  smtp_message *m = client_message (c, 0);
  ck_assert_str_eq (m->mail_from, "");
  ck_assert_str_eq (g_ptr_array_index (m->rcpts, 0), "postmaster");
  ck_assert (!m->tls);
  ck_assert (!m->esmtp);
  ck_assert (!m->body_8bit);
  ck_assert (m->normalised);
  client_free (c);
}
END_TEST

START_TEST (test_recipient_callback)
{
  /* The callback sees only addresses that passed syntax, without the
   * angle brackets, in their original case; source routes, NUL and two
   * '@' never reach it.  '%' is legal syntax in a recipient: the callback
   * decides (here: an unknown mailbox).  */
  guint calls = 0;
  smtp_session_config cfg;

  fixture_config (&cfg, 0);
  cfg.rcpt_check_data = &calls;
  cfg.max_errors = 100;
  client *c = client_new_cfg (&cfg, 0);
  client_say (c, "EHLO x\r\n");
  static const char in[] = "MAIL FROM:<a@sender.example>\r\n"
                           "RCPT TO:<@a.example:foi@council.example>\r\n"
                           "RCPT TO:<foi@council.example\x00>\r\n"
                           "RCPT TO:<a@b@council.example>\r\n";
  client_send (c, in, sizeof in - 1, FALSE);
  ck_assert_uint_eq (calls, 0);
  client_say (c, "RCPT TO:<Foi@Council.Example>\r\n");
  ck_assert_uint_eq (calls, 1);
  client_say (c, "RCPT TO:<a%b@council.example>\r\n");
  ck_assert_uint_eq (calls, 2);
  client_free (c);
}
END_TEST

START_TEST (test_too_many_recipients_23)
{
  /* 150 recipients with a limit of 100: 100 x 250, then 452; the message
   * goes to the 100 accepted ones.  Whole and one byte at a time.  */
  gboolean bytewise = _i == 1;
  smtp_session_config cfg;
  GString *in = g_string_new ("MAIL FROM:<a@sender.example>\r\n");
  GString *want = g_string_new (R_EHLO " 250");

  fixture_config (&cfg, 0);
  cfg.max_rcpt = SMTP_LIMIT_RCPT_DEFAULT;
  for (guint i = 1; i <= 150; i++)
    {
      g_string_append_printf (in, "RCPT TO:<foi+%u@council.example>\r\n", i);
      g_string_append (want, i <= 100 ? " 250" : " 452");
    }
  g_string_append (in, "DATA\r\n");
  g_string_append (want, " 354 250");

  client *c = client_new_cfg (&cfg, 0);
  client_say (c, "EHLO x\r\n");
  client_send (c, in->str, in->len, bytewise);
  client_send (c, "hi\r\n.\r\n", 7, bytewise);
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, want->str);
  smtp_message *m = client_message (c, 0);
  ck_assert_uint_eq (m->rcpts->len, 100);
  ck_assert_str_eq (g_ptr_array_index (m->rcpts, 99),
                    "foi+100@council.example");
  ck_assert_uint_eq (smtp_session_errors (c->s), 0);
  client_free (c);
  g_string_free (in, TRUE);
  g_string_free (want, TRUE);
}
END_TEST

START_TEST (test_junk_default_limit_16)
{
  /* 25 x XYZZY with the default limit of 10: ten 502, then 421.  */
  smtp_session_config cfg;
  GString *want = g_string_new ("220");

  fixture_config (&cfg, 0);
  cfg.max_errors = SMTP_LIMIT_ERRORS_DEFAULT;
  client *c = client_new_cfg (&cfg, 0);
  for (guint i = 0; i < 25; i++)
    client_say (c, "XYZZY\r\n");
  for (guint i = 0; i < SMTP_LIMIT_ERRORS_DEFAULT; i++)
    g_string_append (want, " 502");
  g_string_append (want, " 421");
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, want->str);
  ck_assert_uint_eq (smtp_session_errors (c->s), SMTP_LIMIT_ERRORS_DEFAULT);
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_CLOSE);
  ck_assert (g_str_has_suffix (c->out->str, "421 4.7.0 " T_HOST
                               " Error: too many errors\r\n"));
  client_free (c);
  g_string_free (want, TRUE);
}
END_TEST

START_TEST (test_unterminated_command_18)
{
  /* 10 MiB of 'A' without LF, in 64 KiB reads: one 500 when the line
   * passes max_line, 421 when it passes 4 x max_line; the rest is not
   * even looked at.  */
  const gsize chunk = 64 * 1024;
  g_autofree char *a = g_malloc (chunk);
  client *c = client_new (0);

  memset (a, 'A', chunk);
  for (gsize sent = 0; sent < 10 * 1024 * 1024; sent += chunk)
    {
      client_send (c, a, chunk, FALSE);
      ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_CLOSE);
    }
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, "220 500 421");

  /* Below 4 x max_line the session resynchronises at the LF.  */
  client *d = client_new (0);
  for (gsize i = 0; i < 3; i++)
    client_send (d, a, T_MAX_LINE, TRUE);
  client_say (d, "\r\nNOOP\r\n");
  g_autofree char *codes_d = client_codes (d);
  ck_assert_str_eq (codes_d, "220 500 250");
  ck_assert_str_eq (smtp_session_phase_name (d->s), "command");
  client_free (c);
  client_free (d);
}
END_TEST

START_TEST (test_oversized_data_22)
{
  /* 60 KiB of body with a 1000-byte limit: no reply until the end of
   * data, then 552, nothing stored, and the session goes on.  */
  g_autofree char *line = g_strnfill (78, 'z');
  client *c = client_new (0);
  const char *env = ENV;

  client_run_script (c, env, strlen (env), FALSE);
  client_skip (c);
  client_say (c, "\r\n");
  for (guint i = 0; i < 768; i++)
    {
      client_say (c, line);
      client_say (c, "\r\n");
      ck_assert_uint_eq (c->out->len, c->seen);
    }
  ck_assert_str_eq (smtp_session_phase_name (c->s), "data");
  client_say (c, ".\r\n");
  client_say (c, "NOOP\r\n");
  g_autofree char *t = client_text_since (c);
  ck_assert_str_eq (t, "552 5.3.4 Message size exceeds fixed limit\r\n"
                    "250 2.0.0 Ok\r\n");
  ck_assert_uint_eq (c->messages->len, 0);
  client_free (c);
}
END_TEST

START_TEST (test_defaults)
{
  smtp_session_config cfg;

  smtp_session_config_init (&cfg);
  ck_assert_str_eq (cfg.hostname, "localhost");
  ck_assert_uint_eq (cfg.max_line, SMTP_LIMIT_LINE_DEFAULT);
  ck_assert_uint_eq (cfg.max_message, SMTP_LIMIT_MESSAGE_DEFAULT);
  ck_assert_uint_eq (cfg.max_hops, SMTP_LIMIT_HOPS_DEFAULT);
  ck_assert_uint_eq (cfg.max_errors, SMTP_LIMIT_ERRORS_DEFAULT);
  ck_assert (!cfg.normalise_bare_lf);
  ck_assert (!cfg.tls_available);
  ck_assert_ptr_nonnull (cfg.rcpt_check);
  ck_assert_int_eq (cfg.rcpt_check ("foi@council.example", NULL),
                    SMTP_RCPT_RELAY);

  /* Default limits: 101 Received fields (SECURITY-TESTS 50).  */
  cfg.rcpt_check = fixture_rcpt_check;
  client *c = client_new_cfg (&cfg, 0);
  const char *env = ENV;
  client_run_script (c, env, strlen (env), FALSE);
  client_run_script (c, IN ("{{101*Received: from x by y\r\n}}\r\nb\r\n"
                            ".\r\n"), FALSE);
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, R_ENV " 554");
  ck_assert (g_str_has_prefix (c->out->str, "220 localhost ESMTP intake\r\n"));
  client_free (c);

  /* The default recipient check accepts nobody.  */
  smtp_session_config_init (&cfg);
  c = client_new_cfg (&cfg, 0);
  client_say (c, "EHLO x\r\n");
  client_say (c, "MAIL FROM:<a@sender.example>\r\n"
              "RCPT TO:<foi@council.example>\r\n");
  g_autofree char *codes2 = client_codes (c);
  ck_assert_str_eq (codes2, "220 250 250 554");
  client_free (c);
}
END_TEST

/* ------------------------------------------------------------------------
 * STARTTLS (SECURITY-TESTS 12).
 */
START_TEST (test_starttls_injection_12)
{
  client *c = client_new (F_TLS);
  client_skip (c);

  client_say (c, "EHLO client.example\r\n");
  client_skip (c);
  client_say (c, "STARTTLS\r\nRSET\r\n");
  g_autofree char *t = client_text_since (c);
  ck_assert_str_eq (t, "220 2.0.0 Ready to start TLS\r\n");
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_STARTTLS);
  ck_assert_str_eq (smtp_session_phase_name (c->s), "starttls");
  ck_assert_int_eq (smtp_session_deadline (c->s), G_MAXINT64);

  /* Fed during the handshake (a shell bug): dropped too.  */
  client_say (c, "NOOP\r\n");
  smtp_session_tls_done (c->s, TRUE, c->now);
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_READ);
  ck_assert_ptr_null (smtp_session_take_output (c->s));

  client_say (c, "NOOP\r\n");
  g_autofree char *n = client_text_since (c);
  ck_assert_str_eq (n, "250 2.0.0 Ok\r\n");
  client_say (c, "MAIL FROM:<a@sender.example>\r\n");
  g_autofree char *m = client_text_since (c);
  ck_assert (g_str_has_prefix (m, "503 5.5.1 "));
  client_free (c);
}
END_TEST

/* ------------------------------------------------------------------------
 * The store, shutdown, pipelined input behind a message.
 */
START_TEST (test_message_take_and_done)
{
  client *c = client_new (0);
  const char *env = ENV;

  ck_assert_ptr_null (smtp_session_take_message (c->s));
  client_run_script (c, env, strlen (env), FALSE);
  smtp_session_feed (c->s, "a\r\n.\r\nNOOP\r\n", 12, c->now);
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_MESSAGE);
  ck_assert_str_eq (smtp_session_phase_name (c->s), "message");
  ck_assert_int_eq (smtp_session_deadline (c->s), G_MAXINT64);
  ck_assert (!smtp_session_check_deadline (c->s, G_MAXINT64 - 1));
  /* No reply until the store has answered.  */
  ck_assert_ptr_null (smtp_session_take_output (c->s));

  /* message_done without taking the message: the session frees it.  The
   * queue id goes on the wire cleaned.  */
  client_skip (c);
  smtp_session_message_done (c->s, SMTP_STORE_OK, "ab\r\ncd", c->now);
  client_pump (c);
  g_autofree char *t = client_text_since (c);
  ck_assert_str_eq (t, "250 2.0.0 Ok: queued as ab??cd\r\n250 2.0.0 Ok\r\n");
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_READ);
  client_free (c);
}
END_TEST

START_TEST (test_shutdown)
{
  /* Idle: 421 and close.  */
  client *c = client_new (0);
  smtp_session_shutdown (c->s);
  client_pump (c);
  ck_assert (g_str_has_suffix (c->out->str, "421 4.3.2 " T_HOST
                               " Service shutting down\r\n"));
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_CLOSE);
  smtp_session_shutdown (c->s);
  client_say (c, "NOOP\r\n");
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, "220 421");
  client_free (c);

  /* In DATA: 421, nothing stored.  */
  c = client_new (0);
  const char *env = ENV;
  client_run_script (c, env, strlen (env), FALSE);
  client_say (c, "half a mess");
  smtp_session_shutdown (c->s);
  client_pump (c);
  g_autofree char *codes_d = client_codes (c);
  ck_assert_str_eq (codes_d, R_ENV " 421");
  ck_assert_uint_eq (c->messages->len, 0);
  client_free (c);

  /* During the TLS handshake: close without plaintext.  */
  c = client_new (F_TLS);
  client_say (c, "STARTTLS\r\n");
  smtp_session_shutdown (c->s);
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_CLOSE);
  ck_assert_ptr_null (smtp_session_take_output (c->s));
  client_free (c);
}
END_TEST

START_TEST (test_shutdown_while_storing)
{
  /* A message is with the store: its 250 still goes out, then 421; the
   * pipelined NOOP is not answered.  Once per store answer.  */
  static const struct { smtp_store_result r; const char *codes; } cases[] = {
    { SMTP_STORE_OK, R_ENV " 250 421" },
    { SMTP_STORE_TEMPFAIL, R_ENV " 451 421" },
    { SMTP_STORE_NOSPACE, R_ENV " 452 421" },
    { SMTP_STORE_SHUTDOWN, R_ENV " 421" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      client *c = client_new (0);
      const char *env = ENV;
      client_run_script (c, env, strlen (env), FALSE);
      smtp_session_feed (c->s, "a\r\n.\r\nNOOP\r\n", 12, c->now);
      ck_assert_int_eq (smtp_session_get_status (c->s),
                        SMTP_SESSION_MESSAGE);
      smtp_session_shutdown (c->s);
      ck_assert_int_eq (smtp_session_get_status (c->s),
                        SMTP_SESSION_MESSAGE);
      smtp_message *m = smtp_session_take_message (c->s);
      ck_assert_ptr_nonnull (m);
      smtp_message_free (m);
      smtp_session_message_done (c->s, cases[i].r, "Q1", c->now);
      client_pump (c);
      g_autofree char *codes = client_codes (c);
      ck_assert_msg (strcmp (codes, cases[i].codes) == 0, "%zu: %s", i,
                     codes);
      ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_CLOSE);
      if (cases[i].r == SMTP_STORE_OK)
        ck_assert (g_str_has_suffix (c->out->str,
                                     "250 2.0.0 Ok: queued as Q1\r\n"
                                     "421 4.3.2 " T_HOST
                                     " Service shutting down\r\n"));
      client_free (c);
    }
}
END_TEST

static GString *
noops_of_size (gsize size)
{
  GString *s = g_string_new (NULL);

  while (s->len + 6 <= size - 16)
    g_string_append (s, "NOOP\r\n");
  g_string_append (s, "NOOP ");
  while (s->len < size - 2)
    g_string_append_c (s, 'x');
  g_string_append (s, "\r\n");
  ck_assert_uint_eq (s->len, size);
  return s;
}

START_TEST (test_pipeline_bound)
{
  /* Input waiting behind a finished message: SMTP_LIMIT_PIPELINE_BYTES is
   * kept and answered; one byte more and the session closes with 421
   * after the store's answer.  Run at limit - 1, limit, limit + 1.  */
  gsize size = SMTP_LIMIT_PIPELINE_BYTES - 1 + (gsize) _i;
  g_autoptr (GString) noops = noops_of_size (size);
  client *c = client_new (0);
  const char *env = ENV;

  client_run_script (c, env, strlen (env), FALSE);
  client_skip (c);
  GString *in = g_string_new ("a\r\n.\r\n");
  g_string_append_len (in, noops->str, (gssize) noops->len);
  client_send (c, in->str, in->len, FALSE);
  g_string_free (in, TRUE);
  g_autofree char *t = client_text_since (c);
  ck_assert (g_str_has_prefix (t, "250 2.0.0 Ok: queued as Q1\r\n"));
  if (size <= SMTP_LIMIT_PIPELINE_BYTES)
    {
      ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_READ);
      ck_assert (g_str_has_suffix (t, "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"));
    }
  else
    {
      ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_CLOSE);
      ck_assert_str_eq (t, "250 2.0.0 Ok: queued as Q1\r\n421 4.7.0 " T_HOST
                        " Error: too much pipelined input\r\n");
    }
  client_free (c);
}
END_TEST

START_TEST (test_feed_while_message)
{
  /* A shell that feeds while a message is with the store: the input
   * waits and is answered after the store's answer.  */
  client *c = client_new (0);
  const char *env = ENV;

  client_run_script (c, env, strlen (env), FALSE);
  smtp_session_feed (c->s, "a\r\n.\r\n", 6, c->now);
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_MESSAGE);
  smtp_session_feed (c->s, "NO", 2, c->now);
  smtp_session_feed (c->s, "OP\r\nQUIT\r\n", 10, c->now);
  client_pump (c);
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, R_ENV " 250 250 221");
  client_free (c);
}
END_TEST

START_TEST (test_closed_ignores_input)
{
  client *c = client_new (0);

  client_say (c, "QUIT\r\n");
  ck_assert_str_eq (smtp_session_phase_name (c->s), "closed");
  client_say (c, "NOOP\r\n");
  smtp_session_feed (c->s, NULL, 0, c->now);
  ck_assert (!smtp_session_check_deadline (c->s, G_MAXINT64 - 1));
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, "220 221");
  ck_assert_int_eq (smtp_session_deadline (c->s), G_MAXINT64);
  client_free (c);
}
END_TEST

START_TEST (test_phase_names)
{
  client *c = client_new (0);

  ck_assert_str_eq (smtp_session_phase_name (c->s), "command");
  client_say (c, "NOOP ");
  for (guint i = 0; i < T_MAX_LINE; i++)
    client_send (c, "x", 1, FALSE);
  ck_assert_str_eq (smtp_session_phase_name (c->s), "skip-line");
  client_say (c, "\r\n");
  ck_assert_str_eq (smtp_session_phase_name (c->s), "command");
  client_say (c, "EHLO x\r\n");
  client_say (c, "MAIL FROM:<a@sender.example>\r\n"
              "RCPT TO:<foi@council.example>\r\nDATA\r\n");
  ck_assert_str_eq (smtp_session_phase_name (c->s), "data");
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, "220 500 250 250 250 354");
  client_free (c);
}
END_TEST

/* ------------------------------------------------------------------------
 * Deadlines with a fake clock (SECURITY-TESTS 26, 27).
 */
START_TEST (test_deadline_idle)
{
  client *c = client_new (0);
  gint64 t0 = c->now;

  ck_assert_int_eq (smtp_session_deadline (c->s), t0 + T_TIMEOUT_S * SEC);
  ck_assert (!smtp_session_check_deadline (c->s, t0 + T_TIMEOUT_S * SEC - 1));
  /* A complete command: idle again from its reply.  */
  c->now = t0 + 5 * SEC;
  client_say (c, "NOOP\r\n");
  ck_assert_int_eq (smtp_session_deadline (c->s),
                    t0 + 5 * SEC + T_TIMEOUT_S * SEC);
  ck_assert (!smtp_session_check_deadline (c->s, t0 + 14 * SEC));
  ck_assert (smtp_session_check_deadline (c->s, t0 + 15 * SEC));
  client_pump (c);
  ck_assert (g_str_has_suffix (c->out->str, "421 4.4.2 " T_HOST
                               " Error: timeout exceeded\r\n"));
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_CLOSE);
  ck_assert (!smtp_session_check_deadline (c->s, t0 + 100 * SEC));
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, "220 250 421");
  client_free (c);
}
END_TEST

START_TEST (test_deadline_request)
{
  /* A partial command line: start + timeout + bytes / min_rate.  */
  client *c = client_new (0);
  gint64 t0 = c->now;

  c->now = t0 + 1 * SEC;
  client_say (c, "NOOP");
  ck_assert_int_eq (smtp_session_deadline (c->s),
                    t0 + 1 * SEC + T_TIMEOUT_S * SEC + 4 * SEC / T_MIN_RATE);
  c->now = t0 + 3 * SEC;
  client_say (c, " 12345");
  ck_assert_int_eq (smtp_session_deadline (c->s),
                    t0 + 1 * SEC + T_TIMEOUT_S * SEC + 10 * SEC / T_MIN_RATE);
  /* Bytes that arrive after the deadline do not extend it.  */
  c->now = t0 + 12 * SEC;
  client_say (c, "\r\n");
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, "220 421");
  client_free (c);

  /* min_rate 0: no extension.  */
  smtp_session_config cfg;
  fixture_config (&cfg, 0);
  cfg.min_rate = 0;
  c = client_new_cfg (&cfg, 0);
  client_say (c, "NOOP 1234567890");
  ck_assert_int_eq (smtp_session_deadline (c->s),
                    c->now + T_TIMEOUT_S * SEC);
  client_free (c);
}
END_TEST

START_TEST (test_slowloris_26)
{
  /* One byte a second of a command line: each byte buys 10 ms, so the
   * request is cut at about timeout + 10%.  */
  client *c = client_new (0);
  gint64 t0 = c->now;
  guint sent = 0;

  while (smtp_session_get_status (c->s) == SMTP_SESSION_READ && sent < 100)
    {
      c->now = t0 + (gint64) (sent + 1) * SEC;
      client_send (c, "x", 1, FALSE);
      sent++;
      if (smtp_session_check_deadline (c->s, c->now))
        client_pump (c);
    }
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_CLOSE);
  ck_assert_uint_le (sent, T_TIMEOUT_S + 2);
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, "220 421");
  client_free (c);
}
END_TEST

START_TEST (test_slow_data_27)
{
  /* 10 bytes a second of DATA: cut with 421 4.4.2 well before 1 MiB,
   * nothing stored, no 250.  */
  client *c = client_new (0);
  const char *env = ENV;
  gint64 t0;
  guint sent = 0;

  client_run_script (c, env, strlen (env), FALSE);
  t0 = c->now;
  while (smtp_session_get_status (c->s) == SMTP_SESSION_READ
         && sent < 1024 * 1024)
    {
      c->now = t0 + (gint64) sent * SEC / 10;
      client_send (c, sent % 50 == 49 ? "\n" : sent % 50 == 48 ? "\r" : "y",
                   1, FALSE);
      sent++;
      if (smtp_session_check_deadline (c->s, c->now))
        client_pump (c);
    }
  ck_assert_int_eq (smtp_session_get_status (c->s), SMTP_SESSION_CLOSE);
  /* timeout / (1/10 - 1/min_rate) = 10 / 0.09 = 111 bytes.  */
  ck_assert_uint_le (sent, 115);
  ck_assert_uint_ge (sent, 105);
  ck_assert_uint_eq (c->messages->len, 0);
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, R_ENV " 421");
  client_free (c);
}
END_TEST

START_TEST (test_fast_data_not_cut)
{
  /* 1000 bytes a second for 20 s (longer than timeout_s): each byte buys
   * 10 ms, so the deadline keeps moving ahead.  */
  smtp_session_config cfg;
  const char *env = ENV;
  g_autofree char *line = g_strnfill (48, 'q');

  fixture_config (&cfg, 0);
  cfg.max_message = 100 * 1000;
  client *c = client_new_cfg (&cfg, 0);
  client_run_script (c, env, strlen (env), FALSE);
  gint64 t0 = c->now;
  for (guint i = 0; i < 400; i++)
    {
      c->now = t0 + (gint64) i * SEC / 20;
      ck_assert (!smtp_session_check_deadline (c->s, c->now));
      client_say (c, "\r\n");
      client_say (c, line);
    }
  client_say (c, "\r\n.\r\n");
  g_autofree char *codes = client_codes (c);
  ck_assert_str_eq (codes, R_ENV " 250");
  /* After the store's answer: idle again.  */
  ck_assert_int_eq (smtp_session_deadline (c->s), c->now + T_TIMEOUT_S * SEC);
  client_free (c);
}
END_TEST

/* ------------------------------------------------------------------------
 * SMTP smuggling corpus (tests/data/smtp-smuggling) and a differential
 * test against a reference unstuffer.
 */

/* Reference, written differently from the session on purpose: find the
 * first <CRLF>.<CRLF> (or "." CRLF at the very start), split what comes
 * before into CRLF lines, drop one leading dot per line, then turn bare
 * CR and bare LF into CRLF.  Returns the message, or NULL if there is no
 * terminator; *@bare tells whether any bare CR/LF was seen; *@rest is the
 * offset just after the terminator.  */
static GByteArray *
reference_data (const guint8 *p, gsize len, gboolean *bare, gsize *rest)
{
  gsize end = G_MAXSIZE;
  GByteArray *lines = g_byte_array_new ();
  GByteArray *out = g_byte_array_new ();

  if (len >= 3 && memcmp (p, ".\r\n", 3) == 0)
    end = 0;
  else
    for (gsize i = 0; i + 5 <= len && end == G_MAXSIZE; i++)
      if (memcmp (p + i, "\r\n.\r\n", 5) == 0)
        end = i + 2;
  if (end == G_MAXSIZE)
    {
      g_byte_array_unref (lines);
      g_byte_array_unref (out);
      return NULL;
    }
  *rest = end + 3;

  for (gsize start = 0; start < end;)
    {
      const guint8 *crlf = memmem (p + start, end - start, "\r\n", 2);
      gsize stop = (gsize) (crlf - p) + 2;
      gsize skip = p[start] == '.' ? 1 : 0;
      g_byte_array_append (lines, p + start + skip,
                           (guint) (stop - start - skip));
      start = stop;
    }
  *bare = FALSE;
  for (gsize i = 0; i < lines->len; i++)
    {
      guint8 ch = lines->data[i];
      if (ch == '\r' && i + 1 < lines->len && lines->data[i + 1] == '\n')
        {
          g_byte_array_append (out, (const guint8 *) "\r\n", 2);
          i++;
        }
      else if (ch == '\r' || ch == '\n')
        {
          *bare = TRUE;
          g_byte_array_append (out, (const guint8 *) "\r\n", 2);
        }
      else
        g_byte_array_append (out, &ch, 1);
    }
  g_byte_array_unref (lines);
  return out;
}

static char *
smuggling_dir (void)
{
  const char *base = g_getenv ("INTAKE_TEST_DATA");

  return g_build_filename (base != NULL ? base : "tests/data",
                           "smtp-smuggling", NULL);
}

static gint
compare_paths (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static GPtrArray *
smuggling_payloads (void)
{
  g_autofree char *dir = smuggling_dir ();
  GDir *d = g_dir_open (dir, 0, NULL);
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *n;

  ck_assert_msg (d != NULL, "cannot open %s (set INTAKE_TEST_DATA)", dir);
  while ((n = g_dir_read_name (d)) != NULL)
    if (g_str_has_suffix (n, ".bin"))
      g_ptr_array_add (names, g_build_filename (dir, n, NULL));
  g_dir_close (d);
  g_ptr_array_sort (names, compare_paths);
  return names;
}

START_TEST (test_smuggling_corpus)
{
  /* Each payload as the DATA section after P; _i: bit 0 one byte at a
   * time, bit 1 normalise_bare_lf.  At most one message per session and
   * never a second 250 for a smuggled transaction.  */
  gboolean bytewise = (_i & 1) != 0;
  gboolean normalise = (_i & 2) != 0;
  g_autoptr (GPtrArray) files = smuggling_payloads ();
  guint smuggled_files = 0;

  ck_assert_uint_ge (files->len, 15);
  for (guint f = 0; f < files->len; f++)
    {
      const char *path = g_ptr_array_index (files, f);
      g_autofree char *raw = NULL;
      gsize len, rest = 0;
      gboolean bare = FALSE;

      ck_assert (g_file_get_contents (path, &raw, &len, NULL));
      g_autoptr (GByteArray) ref = reference_data ((const guint8 *) raw, len,
                                                   &bare, &rest);
      ck_assert_msg (ref != NULL, "%s: no terminator", path);
      gboolean quit = len - rest == 6
                      && memcmp (raw + rest, "QUIT\r\n", 6) == 0;
      ck_assert_msg (quit || rest == len, "%s: unexpected tail", path);
      gboolean accepted = normalise || !bare;

      client *c = client_new (normalise ? F_NORMALISE : 0);
      const char *env = ENV;
      client_run_script (c, env, strlen (env), FALSE);
      client_skip (c);
      client_send (c, raw, len, bytewise);

      g_autofree char *codes = client_codes_since (c);
      g_autofree char *want = g_strdup_printf ("%s%s",
                                               accepted ? "250" : "550",
                                               quit ? " 221" : "");
      ck_assert_msg (strcmp (codes, want) == 0, "%s (%s%s): replies %s, "
                     "expected %s", path, bytewise ? "bytes" : "whole",
                     normalise ? ", normalise" : "", codes, want);
      ck_assert_msg (c->messages->len == (accepted ? 1u : 0u),
                     "%s: %u messages", path, c->messages->len);
      ck_assert_int_eq (smtp_session_get_status (c->s),
                        quit ? SMTP_SESSION_CLOSE : SMTP_SESSION_READ);
      if (accepted)
        {
          smtp_message *m = client_message (c, 0);
          assert_bytes (m->data, ref->data, ref->len, path);
          ck_assert (m->normalised == bare);
          if (memmem (raw, len, "MAIL FROM:<smuggled", 19) != NULL)
            {
              gsize n;
              const char *d = g_bytes_get_data (m->data, &n);
              ck_assert (memmem (d, n, "MAIL FROM:<smuggled@example.test>",
                                 33) != NULL);
              ck_assert (memmem (d, n, "Subject: SMUGGLED", 17) != NULL);
              smuggled_files++;
            }
        }
      client_free (c);
    }
  /* Every eod_* payload carries a smuggled transaction; with the default
   * policy those with bare CR/LF are refused outright.  */
  if (normalise)
    ck_assert_uint_eq (smuggled_files, 10);
}
END_TEST

START_TEST (test_smuggling_sequences_listed)
{
  /* Every end-of-data sequence of eod_sequences.json has its payload, and
   * the payload holds that sequence.  */
  g_autofree char *dir = smuggling_dir ();
  g_autofree char *json_path = g_build_filename (dir, "eod_sequences.json",
                                                 NULL);
  g_autofree char *lic = g_build_filename (dir, "LICENSE.MIT-The-Login",
                                           NULL);
  g_autofree char *json = NULL;
  g_autoptr (GRegex) re = g_regex_new ("\"hex\": \"([0-9a-f]+)\"", 0, 0,
                                       NULL);
  GMatchInfo *mi = NULL;
  guint seen = 0;

  ck_assert (g_file_test (lic, G_FILE_TEST_IS_REGULAR));
  ck_assert (g_file_get_contents (json_path, &json, NULL, NULL));
  g_regex_match (re, json, 0, &mi);
  while (g_match_info_matches (mi))
    {
      g_autofree char *hex = g_match_info_fetch (mi, 1);
      g_autofree char *name = g_strdup_printf ("eod_%02u_%s.bin", seen, hex);
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autofree char *raw = NULL;
      gsize len, hlen = strlen (hex) / 2;
      guint8 seq[16];

      ck_assert_uint_le (hlen, sizeof seq);
      for (gsize i = 0; i < hlen; i++)
        seq[i] = (guint8) (g_ascii_xdigit_value (hex[2 * i]) * 16
                           + g_ascii_xdigit_value (hex[2 * i + 1]));
      ck_assert_msg (g_file_get_contents (path, &raw, &len, NULL),
                     "missing %s", path);
      ck_assert_msg (memmem (raw, len, seq, hlen) != NULL,
                     "%s does not hold its sequence", name);
      seen++;
      g_match_info_next (mi, NULL);
    }
  g_match_info_free (mi);
  ck_assert_uint_eq (seen, 10);
}
END_TEST

START_TEST (test_dot_stream_differential)
{
  /* Random DATA sections over { a . CR LF NUL }, each ending in
   * <CRLF>.<CRLF>, fed in random splits; the session must agree with the
   * reference byte for byte (SECURITY-TESTS 6), under both policies.  */
  static const char alphabet[] = { 'a', '.', '\r', '\n', '\0', '.', '\r',
                                   '\n' };
  GRand *rnd = g_rand_new_with_seed (5321);
  smtp_session_config cfg;

  for (guint round = 0; round < 1000; round++)
    {
      gboolean normalise = round % 2 == 1;
      guint8 buf[64];
      gsize n = (gsize) g_rand_int_range (rnd, 0, 40);

      for (gsize i = 0; i < n; i++)
        buf[i] = (guint8) alphabet[g_rand_int_range (rnd, 0,
                                                     sizeof alphabet)];
      memcpy (buf + n, "\r\n.\r\n", 5);
      n += 5;

      gboolean bare = FALSE;
      gsize rest = 0;
      g_autoptr (GByteArray) ref = reference_data (buf, n, &bare, &rest);
      ck_assert_ptr_nonnull (ref);

      fixture_config (&cfg, normalise ? F_NORMALISE : 0);
      cfg.max_header_lines = SMTP_LIMIT_HEADER_LINES_DEFAULT;
      cfg.max_header_bytes = SMTP_LIMIT_HEADER_BYTES_DEFAULT;
      client *c = client_new_cfg (&cfg, 0);
      const char *env = ENV;
      client_run_script (c, env, strlen (env), FALSE);
      client_skip (c);
      for (gsize i = 0; i < rest;)
        {
          gsize k = (gsize) g_rand_int_range (rnd, 1, 8);
          k = MIN (k, rest - i);
          client_send (c, buf + i, k, FALSE);
          i += k;
        }
      g_autofree char *codes = client_codes_since (c);
      g_autofree char *e = escape (buf, n);
      if (!normalise && bare)
        ck_assert_msg (strcmp (codes, "550") == 0, "\"%s\": %s", e, codes);
      else
        {
          ck_assert_msg (strcmp (codes, "250") == 0, "\"%s\": %s", e, codes);
          assert_bytes (client_message (c, 0)->data, ref->data, ref->len, e);
        }
      client_free (c);
    }
  g_rand_free (rnd);
}
END_TEST

/* One client write of the random test, with a byte or two mutated at
 * random now and then.  */
static void
random_write (client *c, GRand *rnd, const char *data, gsize len)
{
  GByteArray *w = g_byte_array_new ();

  g_byte_array_append (w, (const guint8 *) data, (guint) len);
  while (w->len > 0 && g_rand_int_range (rnd, 0, 5) == 0)
    {
      guint at = (guint) g_rand_int_range (rnd, 0, (gint32) w->len);
      guint8 b = (guint8) g_rand_int_range (rnd, 0, 256);
      switch (g_rand_int_range (rnd, 0, 3))
        {
        case 0:
          w->data[at] = b;
          break;
        case 1:
          g_byte_array_remove_index (w, at);
          break;
        default:
          g_byte_array_set_size (w, w->len + 1);
          memmove (w->data + at + 1, w->data + at, w->len - 1 - at);
          w->data[at] = b;
          break;
        }
    }
  for (guint i = 0; i < w->len;)
    {
      guint k = (guint) g_rand_int_range (rnd, 1, 64);
      k = MIN (k, w->len - i);
      c->store = (smtp_store_result) g_rand_int_range (rnd, 0, 3);
      client_send (c, w->data + i, k, g_rand_int_range (rnd, 0, 8) == 0);
      i += k;
    }
  if (smtp_session_get_status (c->s) == SMTP_SESSION_STARTTLS)
    {
      smtp_session_tls_done (c->s, g_rand_int_range (rnd, 0, 8) != 0, c->now);
      client_pump (c);
    }
  g_byte_array_unref (w);
}

START_TEST (test_random_input)
{
  /* Sessions of valid commands and random DATA sections, mutated at
   * random and fed in random pieces, with random handshake and store
   * outcomes: no crash, no sanitizer report, every reply well formed, at
   * most one message per 354.  */
  static const char *const body_bits[] = {
    "a", "xyz", ".", "..", "\r", "\n", "\r\n", "\r\n.", "\x00", "\xff",
    "Received: x\r\n", "\r\n\r\n",
  };
  static const char *const after[] = {
    "", "QUIT\r\n", "RSET\r\n", "NOOP\r\n", "STARTTLS\r\n", "EHLO z\r\n",
    "MAIL FROM:<b@sender.example>\r\n",
  };
  GRand *rnd = g_rand_new_with_seed (2920);
  guint messages = 0;

  for (guint round = 0; round < 200; round++)
    {
      client *c = client_new (F_TLS | F_MANY_ERRORS
                              | (round % 2 ? F_NORMALISE : 0));
      guint datas = 0;

      random_write (c, rnd, "EHLO x\r\n", 8);
      for (guint t = 0; t < 3; t++)
        {
          GString *w = g_string_new ("MAIL FROM:<a@sender.example>\r\n");
          for (gint r = g_rand_int_range (rnd, 0, 3); r >= 0; r--)
            g_string_append (w, g_rand_boolean (rnd)
                             ? "RCPT TO:<foi@council.example>\r\n"
                             : "RCPT TO:<nobody@council.example>\r\n");
          g_string_append (w, "DATA\r\n");
          random_write (c, rnd, w->str, w->len);
          g_string_truncate (w, 0);
          for (gint k = g_rand_int_range (rnd, 0, 30); k > 0; k--)
            {
              const char *bit = body_bits[g_rand_int_range
                                          (rnd, 0, G_N_ELEMENTS (body_bits))];
              g_string_append_len (w, bit, bit[0] == '\0' ? 1
                                   : (gssize) strlen (bit));
            }
          g_string_append (w, "\r\n.\r\n");
          g_string_append (w, after[g_rand_int_range (rnd, 0,
                                                      G_N_ELEMENTS (after))]);
          random_write (c, rnd, w->str, w->len);
          g_string_free (w, TRUE);
        }
      g_autofree char *codes = client_codes (c);
      for (const char *p = codes; (p = strstr (p, "354")) != NULL; p++)
        datas++;
      ck_assert_uint_le (c->messages->len, datas);
      messages += c->messages->len;
      client_free (c);
    }
  g_rand_free (rnd);
  /* The generator does reach the store.  */
  ck_assert_uint_gt (messages, 100);
}
END_TEST

/* ------------------------------------------------------------------------
 */
static Suite *
smtp_session_suite (void)
{
  Suite *s = suite_create ("smtp_session");
  TCase *tc;

  tc = tcase_create ("tables");
  ADD_TABLE (tc, command_cases);
  ADD_TABLE (tc, sequence_cases);
  ADD_TABLE (tc, address_cases);
  ADD_TABLE (tc, param_cases);
  ADD_TABLE (tc, limit_cases);
  ADD_TABLE (tc, data_cases);
  ADD_TABLE (tc, pipeline_cases);
  ADD_TABLE (tc, store_cases);
  suite_add_tcase (s, tc);

  tc = tcase_create ("replies");
  tcase_add_test (tc, test_greeting_and_ehlo_text);
  tcase_add_test (tc, test_reply_texts);
  tcase_add_test (tc, test_nul_command_span);
  tcase_add_test (tc, test_data_refusal_texts);
  tcase_add_test (tc, test_envelope);
  tcase_add_test (tc, test_envelope_null_sender_helo);
  tcase_add_test (tc, test_recipient_callback);
  tcase_add_test (tc, test_defaults);
  suite_add_tcase (s, tc);

  tc = tcase_create ("limits");
  tcase_add_loop_test (tc, test_too_many_recipients_23, 0, 2);
  tcase_add_test (tc, test_junk_default_limit_16);
  tcase_add_test (tc, test_unterminated_command_18);
  tcase_add_test (tc, test_oversized_data_22);
  tcase_add_loop_test (tc, test_pipeline_bound, 0, 3);
  suite_add_tcase (s, tc);

  tc = tcase_create ("session");
  tcase_add_test (tc, test_starttls_injection_12);
  tcase_add_test (tc, test_message_take_and_done);
  tcase_add_test (tc, test_shutdown);
  tcase_add_test (tc, test_shutdown_while_storing);
  tcase_add_test (tc, test_feed_while_message);
  tcase_add_test (tc, test_closed_ignores_input);
  tcase_add_test (tc, test_phase_names);
  suite_add_tcase (s, tc);

  tc = tcase_create ("deadlines");
  tcase_add_test (tc, test_deadline_idle);
  tcase_add_test (tc, test_deadline_request);
  tcase_add_test (tc, test_slowloris_26);
  tcase_add_test (tc, test_slow_data_27);
  tcase_add_test (tc, test_fast_data_not_cut);
  suite_add_tcase (s, tc);

  tc = tcase_create ("smuggling");
  tcase_add_loop_test (tc, test_smuggling_corpus, 0, 4);
  tcase_add_test (tc, test_smuggling_sequences_listed);
  tcase_add_test (tc, test_dot_stream_differential);
  tcase_add_test (tc, test_random_input);
  suite_add_tcase (s, tc);

  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (smtp_session_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
