/*
 * smtp_session.c - the SMTP server session as a pure state machine:
 * command lines in, replies out; the DATA section in, one finished message
 * out.  No sockets, no clocks (time is a parameter), no global state.
 *
 * Owns: the session's copy of the configuration and hostname, the partial
 * command line (at most max_line - 1 bytes), the envelope of the current
 * transaction, the message being received (dropped as soon as it cannot be
 * accepted), the input that arrived behind a finished message (at most
 * SMTP_LIMIT_PIPELINE_BYTES) and the output not yet taken by the shell.
 *
 * Refuses:
 *  - any end of DATA but <CRLF>.<CRLF>.  Bare LF and bare CR in DATA are
 *    rejected at the end (550 5.5.2) or, by policy, stored as CRLF; they
 *    never end DATA nor start a line for dot-unstuffing (RFC 5321 4.1.1.4,
 *    SMTP smuggling CVE-2023-51764/51765/51766);
 *  - input already waiting behind EHLO, HELO or DATA, whether or not the
 *    DATA itself is valid (RFC 2920 3.1): 554 5.5.0 and close, nothing
 *    stored;
 *  - plaintext sent behind STARTTLS, or fed before tls_done()
 *    (CVE-2011-0411): dropped;
 *  - NUL or bare CR in a command line (500 5.5.2);
 *  - a command line longer than max_line: 500 5.5.2 as soon as the
 *    max_line-th byte without LF arrives, then the line is skipped up to
 *    its LF; when more than SMTP_SESSION_SKIP_FACTOR * max_line bytes come
 *    before that LF, 421 4.7.0 and close (SECURITY-TESTS 18);
 *  - more than SMTP_LIMIT_PIPELINE_BYTES of input behind a finished
 *    message: the store's answer still goes out, then 421 4.7.0 and close;
 *  - relaying: source routes and paths with two '@' in RCPT (554 5.7.1);
 *    '%', '!' and quoted '@' in a sender (501 5.1.7); in a recipient they
 *    are legal syntax and the callback refuses them (550 5.1.1 for our
 *    domains, 554 5.7.1 for others);
 *  - client errors: every 5xx reply counts one (4xx replies never do:
 *    452 for recipients or storage, the store's answers); the reply that
 *    brings the count to max_errors is followed by 421 4.7.0 and close.
 *
 * Choices the RFCs leave open: the path limit of 256 octets counts the
 * angle brackets (RFC 5321 4.5.3.1.3); duplicate recipients (local part
 * exact, domain without case) get 250, are stored once and do not count
 * towards max_rcpt; the recipient limit is checked before the callback;
 * the header section's line count includes its empty line; a dot at the
 * start of a line followed by a bare LF or CR is removed like any other
 * leading dot; STARTTLS is allowed before EHLO; the greeting, the EHLO/HELO
 * reply and 354 carry no enhanced status code (RFC 2034, RFC 3463).
 */
#include "intake/smtp_session.h"

#include "intake/smtp_limits.h"

#include <stdarg.h>
#include <string.h>

/* A command line that goes on without LF for this many times max_line is
 * not a client that will ever resynchronise (SECURITY-TESTS 18): after
 * the 500 for the overlong line, 421 and close.  */
#define SMTP_SESSION_SKIP_FACTOR 4

/* ------------------------------------------------------------------------
 * Phases (habit 6): every transition goes through smtp_session_set_phase().
 */
typedef enum {
  SMTP_SESSION_PHASE_COMMAND,   /* reading a command line */
  SMTP_SESSION_PHASE_SKIP_LINE, /* discarding an overlong line up to LF */
  SMTP_SESSION_PHASE_DATA,      /* reading the DATA section */
  SMTP_SESSION_PHASE_MESSAGE,   /* a finished message is with the store */
  SMTP_SESSION_PHASE_STARTTLS,  /* 220 sent, waiting for the handshake */
  SMTP_SESSION_PHASE_CLOSED,    /* the shell must close; input is ignored */
  SMTP_SESSION_N_PHASES
} smtp_session_phase;

static const char *const smtp_session_phase_names[SMTP_SESSION_N_PHASES] = {
  [SMTP_SESSION_PHASE_COMMAND] = "command",
  [SMTP_SESSION_PHASE_SKIP_LINE] = "skip-line",
  [SMTP_SESSION_PHASE_DATA] = "data",
  [SMTP_SESSION_PHASE_MESSAGE] = "message",
  [SMTP_SESSION_PHASE_STARTTLS] = "starttls",
  [SMTP_SESSION_PHASE_CLOSED] = "closed",
};

/* Where the DATA scanner stands.  This is a byte-level sub-state of
 * SMTP_SESSION_PHASE_DATA, kept out of the phase setter because it changes
 * on every line.  Only DATA_BOL is a line start: it is entered after a
 * real CRLF or right after the 354, never after a bare LF or bare CR.  */
typedef enum {
  SMTP_SESSION_DATA_BOL,         /* start of a line */
  SMTP_SESSION_DATA_BOL_DOT,     /* "." at the start of a line */
  SMTP_SESSION_DATA_BOL_DOT_CR,  /* "." CR at the start of a line */
  SMTP_SESSION_DATA_TEXT,        /* inside a line */
  SMTP_SESSION_DATA_CR,          /* CR inside a line: CRLF or a bare CR */
} smtp_session_data_state;

typedef struct {
  smtp_session_data_state state;
  GByteArray *bytes;      /* unstuffed, CRLF line ends; NULL once doomed */
  guint64 size;           /* bytes the message has (stored or not) */
  guint64 line_len;       /* current line, excluding its end */
  guint64 header_bytes;   /* header section so far, incl. the empty line */
  guint header_lines;     /* physical lines in the header section */
  guint hops;             /* "Received:" fields in the header section */
  guint rcvd_matched;     /* bytes of "received:" matched on this line */
  gboolean rcvd_dead;     /* this line does not start with "Received:" */
  gboolean in_header;
  gboolean too_big;
  gboolean line_too_long;
  gboolean header_too_big;
  gboolean bare_lf;
  gboolean bare_cr;
} smtp_session_data;

struct smtp_session {
  smtp_session_config cfg;
  char *hostname;                /* printable copy of cfg.hostname */
  smtp_session_phase phase;
  GString *out;                  /* replies not yet taken */

  /* Input.  */
  GByteArray *line;              /* partial command line, < max_line */
  guint64 skipped;               /* bytes of the overlong line so far */
  GByteArray *pending;           /* input behind a finished message */
  gboolean pending_overflow;     /* more than SMTP_LIMIT_PIPELINE_BYTES */

  /* Session.  */
  char *helo;                    /* NULL until EHLO/HELO */
  gboolean esmtp;
  gboolean tls;
  gboolean storage_low;
  gboolean shutdown_pending;     /* 421 after the store's answer */
  guint errors;

  /* Transaction.  */
  char *mail_from;               /* NULL: no MAIL yet; "": null sender */
  gboolean body_8bit;
  GPtrArray *rcpts;              /* char *, accepted, deduplicated */
  GHashTable *rcpt_keys;         /* smtp_session_rcpt_key() of rcpts */
  guint rcpt_attempts;           /* RCPT commands in this transaction */
  smtp_session_data data;
  smtp_message *message;         /* finished, not yet taken */

  /* Deadline (monotonic us).  */
  gboolean in_request;
  gint64 request_start;
  guint64 request_bytes;
  gint64 last_activity;
};

/* What one command line holds, and what check() found for apply().  */
typedef struct {
  const guint8 *arg;             /* after the verb and its SP; a span */
  gsize arg_len;
  gint64 now_us;                 /* when the line was complete */
  char *address;                 /* (owned) validated path for MAIL/RCPT */
  gboolean rcpt_duplicate;
  gboolean body_8bit;
} smtp_session_cmd;

typedef gboolean (*smtp_session_check_fn) (smtp_session *s,
                                           smtp_session_cmd *cmd);
typedef void (*smtp_session_apply_fn) (smtp_session *s,
                                       smtp_session_cmd *cmd);

enum {
  /* Anything but spaces after the verb: 501 5.5.4.  */
  SMTP_SESSION_CMD_NO_ARG = 1 << 0,
  /* RFC 2920 3.1: must be the last command of a pipelined group; input
   * already waiting behind it is a synchronisation error.  */
  SMTP_SESSION_CMD_SYNC = 1 << 1,
};

typedef struct {
  const char *name;
  guint flags;
  smtp_session_check_fn check;   /* NULL: always valid */
  smtp_session_apply_fn apply;   /* NULL: check always refuses */
} smtp_session_command;

/* ------------------------------------------------------------------------
 * Phase setter and replies.
 */
static void
smtp_session_set_phase (smtp_session *s, smtp_session_phase phase)
{
  g_assert (phase < SMTP_SESSION_N_PHASES);
  /* CLOSED is final: nothing may revive a session the shell is closing.  */
  g_assert (s->phase != SMTP_SESSION_PHASE_CLOSED
            || phase == SMTP_SESSION_PHASE_CLOSED);
  s->phase = phase;
}

static void smtp_session_reply (smtp_session *s, const char *fmt, ...)
  G_GNUC_PRINTF (2, 3);

/* One reply line; @fmt holds neither CR nor LF, arguments are printable.  */
static void
smtp_session_reply (smtp_session *s, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  g_string_append_vprintf (s->out, fmt, ap);
  va_end (ap);
  g_string_append (s->out, "\r\n");
}

static void
smtp_session_close (smtp_session *s)
{
  g_byte_array_set_size (s->line, 0);
  g_byte_array_set_size (s->pending, 0);
  s->in_request = FALSE;
  smtp_session_set_phase (s, SMTP_SESSION_PHASE_CLOSED);
}

static void smtp_session_reject (smtp_session *s, const char *fmt, ...)
  G_GNUC_PRINTF (2, 3);

/* A 5xx reply to the client's input: counted; at max_errors the session
 * answers 421 and closes (habit 9).  The limit-th error still gets its own
 * reply first.  */
static void
smtp_session_reject (smtp_session *s, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  g_string_append_vprintf (s->out, fmt, ap);
  va_end (ap);
  g_string_append (s->out, "\r\n");

  s->errors++;
  if (s->errors >= s->cfg.max_errors)
    {
      smtp_session_reply (s, "421 4.7.0 %s Error: too many errors",
                          s->hostname);
      smtp_session_close (s);
    }
}

static void
smtp_session_end_request (smtp_session *s, gint64 now_us)
{
  s->in_request = FALSE;
  s->request_bytes = 0;
  s->last_activity = now_us;
}

static void
smtp_session_start_request (smtp_session *s, gint64 now_us)
{
  s->in_request = TRUE;
  s->request_start = now_us;
  s->request_bytes = 0;
}

/* ------------------------------------------------------------------------
 * Transaction state.
 */
static void
smtp_session_data_clear (smtp_session_data *d)
{
  if (d->bytes != NULL)
    g_byte_array_unref (d->bytes);
  memset (d, 0, sizeof *d);
}

static void
smtp_session_reset_transaction (smtp_session *s)
{
  g_clear_pointer (&s->mail_from, g_free);
  s->body_8bit = FALSE;
  g_ptr_array_set_size (s->rcpts, 0);
  g_hash_table_remove_all (s->rcpt_keys);
  s->rcpt_attempts = 0;
  smtp_session_data_clear (&s->data);
}

static void
smtp_session_forget_helo (smtp_session *s)
{
  g_clear_pointer (&s->helo, g_free);
  s->esmtp = FALSE;
}

/* ------------------------------------------------------------------------
 * Syntax helpers.  All take spans; none relies on a NUL terminator.
 */

/* RFC 5321 4.1.2 printable: what may appear in a path or parameter.  */
static gboolean
smtp_session_all_graph (const guint8 *p, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if (p[i] < 0x21 || p[i] > 0x7e)
      return FALSE;
  return TRUE;
}

static gboolean
smtp_session_only_spaces (const guint8 *p, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if (p[i] != ' ')
      return FALSE;
  return TRUE;
}

/* @p starts with @word, ASCII case-insensitively.  */
static gboolean
smtp_session_has_prefix (const guint8 *p, gsize len, const char *word)
{
  gsize n = strlen (word);

  return len >= n && g_ascii_strncasecmp ((const char *) p, word, n) == 0;
}

static gboolean
smtp_session_span_equal (const guint8 *p, gsize len, const char *word)
{
  return len == strlen (word) && smtp_session_has_prefix (p, len, word);
}

/* RFC 5322 3.2.3 atext.  In a sender, '%' (the percent hack) and '!'
 * (bang paths) are refused outright (SECURITY-TESTS 30); in a recipient
 * they are legal syntax and the recipient check refuses them as unknown
 * mailboxes or other people's domains (SECURITY-TESTS 28).  */
static gboolean
smtp_session_is_atext (guint8 c, gboolean rcpt)
{
  if (c == '%' || c == '!')
    return rcpt;
  return g_ascii_isalnum (c) || (c != 0 && strchr ("#$&'*+-/=?^_`{|}~", c));
}

/* RFC 5321 4.1.2 Domain (letters, digits, hyphens in dot-separated
 * labels) or address-literal "[...]" (IPv4, "IPv6:..."), at most
 * SMTP_LIMIT_DOMAIN octets.  */
static gboolean
smtp_session_valid_domain (const guint8 *p, gsize len)
{
  if (len == 0 || len > SMTP_LIMIT_DOMAIN)
    return FALSE;
  if (p[0] == '[')
    {
      if (len < 3 || p[len - 1] != ']')
        return FALSE;
      for (gsize i = 1; i + 1 < len; i++)
        if (!g_ascii_isalnum (p[i]) && p[i] != '.' && p[i] != ':')
          return FALSE;
      return TRUE;
    }
  gsize label = 0;
  for (gsize i = 0; i < len; i++)
    {
      if (p[i] == '.')
        {
          if (label == 0)
            return FALSE;
          label = 0;
        }
      else if (g_ascii_isalnum (p[i]) || p[i] == '-')
        label++;
      else
        return FALSE;
    }
  return label > 0;
}

/* Local part: dot-atom of atext, or a quoted string.  A sender's quoted
 * local part may hold no '@' (the "user@other"@us trick); a recipient's
 * may, and is then simply no configured mailbox (550 5.1.1).  CR, LF, NUL
 * and other controls were refused before (all bytes are 0x21-0x7e).  */
static gboolean
smtp_session_valid_local (const guint8 *p, gsize len, gboolean rcpt)
{
  if (len == 0 || len > SMTP_LIMIT_LOCAL_PART)
    return FALSE;
  if (p[0] == '"')
    {
      if (len < 3 || p[len - 1] != '"')
        return FALSE;
      for (gsize i = 1; i + 1 < len; i++)
        {
          if ((p[i] == '@' && !rcpt) || p[i] == '"')
            return FALSE;
          if (p[i] == '\\')
            {
              i++;      /* quoted-pair: the next byte is printable */
              if (i + 1 >= len || (p[i] == '@' && !rcpt))
                return FALSE;
            }
        }
      return TRUE;
    }
  gboolean after_dot = TRUE;
  for (gsize i = 0; i < len; i++)
    {
      if (p[i] == '.')
        {
          if (after_dot)
            return FALSE;
          after_dot = TRUE;
        }
      else if (smtp_session_is_atext (p[i], rcpt))
        after_dot = FALSE;
      else
        return FALSE;
    }
  return !after_dot;
}

typedef enum {
  SMTP_SESSION_PATH_OK,
  SMTP_SESSION_PATH_BAD,     /* syntax */
  SMTP_SESSION_PATH_ROUTE,   /* a well-formed source route (RCPT refuses) */
} smtp_session_path_result;

/* Where a quoted local part ends: index of its closing quote, or @len.  */
static gsize
smtp_session_quoted_end (const guint8 *p, gsize len)
{
  for (gsize i = 1; i < len; i++)
    {
      if (p[i] == '\\')
        i++;
      else if (p[i] == '"')
        return i;
    }
  return len;
}

/* Parse "<path>" at the start of @p.  On success *@path_end is the index
 * just after '>', *@address the mailbox without route (transfer full;
 * "" for "<>").  @rcpt: "<>" is refused and "<postmaster>" allowed
 * (RFC 5321 4.5.1).  A source route "@a,@b:" (RFC 5321 4.1.1.2, 4.1.2)
 * is dropped from the address and reported as SMTP_SESSION_PATH_ROUTE.  */
static smtp_session_path_result
smtp_session_parse_path (const guint8 *p, gsize len, gboolean rcpt,
                         gsize *path_end, char **address)
{
  gsize rbr = 0;
  gboolean quoted = FALSE;

  *address = NULL;
  if (len == 0 || p[0] != '<')
    return SMTP_SESSION_PATH_BAD;
  for (rbr = 1; rbr < len; rbr++)
    {
      if (quoted && p[rbr] == '\\')
        rbr++;
      else if (p[rbr] == '"')
        quoted = !quoted;
      else if (!quoted && p[rbr] == '>')
        break;
    }
  if (rbr >= len)
    return SMTP_SESSION_PATH_BAD;
  *path_end = rbr + 1;

  /* RFC 5321 4.5.3.1.3: 256 octets including the punctuation.  */
  const guint8 *a = p + 1;
  gsize alen = rbr - 1;
  if (alen + 2 > SMTP_LIMIT_PATH || !smtp_session_all_graph (a, alen))
    return SMTP_SESSION_PATH_BAD;

  if (alen == 0)
    {
      if (rcpt)
        return SMTP_SESSION_PATH_BAD;
      *address = g_strdup ("");
      return SMTP_SESSION_PATH_OK;
    }

  gboolean route = FALSE;
  if (a[0] == '@')
    {
      /* A-d-l: "@" Domain *( "," "@" Domain ) ":" */
      const guint8 *colon = memchr (a, ':', alen);
      if (colon == NULL)
        return SMTP_SESSION_PATH_BAD;
      gsize rlen = (gsize) (colon - a);
      gsize start = 0;
      for (gsize i = 0; i <= rlen; i++)
        {
          if (i == rlen || a[i] == ',')
            {
              if (a[start] != '@'
                  || !smtp_session_valid_domain (a + start + 1,
                                                 i - start - 1))
                return SMTP_SESSION_PATH_BAD;
              start = i + 1;
            }
        }
      a += rlen + 1;
      alen -= rlen + 1;
      route = TRUE;
      if (alen == 0)
        return SMTP_SESSION_PATH_BAD;
    }

  gsize local_len;
  if (a[0] == '"')
    local_len = smtp_session_quoted_end (a, alen) + 1;
  else
    {
      const guint8 *at = memchr (a, '@', alen);
      local_len = at != NULL ? (gsize) (at - a) : alen;
    }
  if (local_len > alen || !smtp_session_valid_local (a, local_len, rcpt))
    return SMTP_SESSION_PATH_BAD;

  if (local_len == alen)
    {
      /* No domain: only "<Postmaster>" as a recipient.  */
      if (!rcpt || route || !smtp_session_span_equal (a, alen, "postmaster"))
        return SMTP_SESSION_PATH_BAD;
    }
  else if (a[local_len] != '@'
           || !smtp_session_valid_domain (a + local_len + 1,
                                          alen - local_len - 1))
    return SMTP_SESSION_PATH_BAD;

  *address = g_strndup ((const char *) a, alen);
  return route ? SMTP_SESSION_PATH_ROUTE : SMTP_SESSION_PATH_OK;
}

/* "FROM:" / "TO:" then one optional SP before "<".  Returns the offset of
 * "<" or 0 when the keyword is missing.  */
static gsize
smtp_session_path_start (const smtp_session_cmd *cmd, const char *keyword)
{
  gsize n = strlen (keyword);

  if (!smtp_session_has_prefix (cmd->arg, cmd->arg_len, keyword))
    return 0;
  if (n < cmd->arg_len && cmd->arg[n] == ' ')
    n++;
  return n;
}

/* (transfer full) what makes two recipients the same: the local part as
 * given (RFC 5321 2.4), the domain and "postmaster" without case.  */
static char *
smtp_session_rcpt_key (const char *address)
{
  const char *at = strrchr (address, '@');
  char *key;

  if (at == NULL)
    return g_ascii_strdown (address, -1);
  key = g_strdup (address);
  for (char *c = key + (at - address); *c != '\0'; c++)
    *c = g_ascii_tolower (*c);
  return key;
}

/* ------------------------------------------------------------------------
 * Commands (habit 7).  check() validates order and syntax and answers
 * refusals; apply() does the side effect and answers success.
 */
static gboolean
smtp_session_check_helo (smtp_session *s, smtp_session_cmd *cmd)
{
  if (cmd->arg_len == 0)
    {
      smtp_session_reject (s, "501 5.5.4 Syntax: EHLO hostname");
      return FALSE;
    }
  /* SECURITY-TESTS 31, 32: length first, then bytes (no controls, no
   * spaces, no 8-bit): the name ends up in Received: and logs.  */
  if (cmd->arg_len > SMTP_LIMIT_HELO)
    {
      smtp_session_reject (s, "501 5.5.4 Error: hostname too long");
      return FALSE;
    }
  if (!smtp_session_all_graph (cmd->arg, cmd->arg_len))
    {
      smtp_session_reject (s, "501 5.5.4 Error: bad hostname syntax");
      return FALSE;
    }
  return TRUE;
}

static void
smtp_session_set_helo (smtp_session *s, smtp_session_cmd *cmd,
                       gboolean esmtp)
{
  /* RFC 5321 4.1.4: EHLO/HELO resets any transaction.  */
  smtp_session_reset_transaction (s);
  g_free (s->helo);
  s->helo = g_strndup ((const char *) cmd->arg, cmd->arg_len);
  s->esmtp = esmtp;
}

static void
smtp_session_apply_ehlo (smtp_session *s, smtp_session_cmd *cmd)
{
  const char *ext[8];
  guint n = 0;
  g_autofree char *size = NULL;

  smtp_session_set_helo (s, cmd, TRUE);

  size = g_strdup_printf ("SIZE %" G_GSIZE_FORMAT, s->cfg.max_message);
  ext[n++] = "PIPELINING";
  ext[n++] = size;
  ext[n++] = "8BITMIME";
  ext[n++] = "ENHANCEDSTATUSCODES";
  /* RFC 3207 4.2: not announced once TLS is on.  */
  if (s->cfg.tls_available && !s->tls)
    ext[n++] = "STARTTLS";

  /* RFC 2034: no enhanced code in the EHLO response.  */
  smtp_session_reply (s, "250-%s", s->hostname);
  for (guint i = 0; i < n; i++)
    smtp_session_reply (s, "250%c%s", i + 1 < n ? '-' : ' ', ext[i]);
}

static void
smtp_session_apply_helo (smtp_session *s, smtp_session_cmd *cmd)
{
  smtp_session_set_helo (s, cmd, FALSE);
  smtp_session_reply (s, "250 %s", s->hostname);
}

/* What follows "<path>": nothing, or SP and parameters of printable
 * ASCII (SECURITY-TESTS 32: controls, DEL and 8-bit get 501).  */
static gboolean
smtp_session_params_valid (smtp_session *s, const guint8 *p, gsize len,
                           const char *syntax)
{
  if (len > 0 && p[0] != ' ')
    {
      smtp_session_reject (s, "%s", syntax);
      return FALSE;
    }
  for (gsize i = 0; i < len; i++)
    if (p[i] < 0x20 || p[i] > 0x7e)
      {
        smtp_session_reject (s, "501 5.5.4 Error: bad parameter syntax");
        return FALSE;
      }
  return TRUE;
}

/* MAIL parameters (RFC 1870 SIZE, RFC 6152 BODY); each at most once.  */
static gboolean
smtp_session_mail_params (smtp_session *s, smtp_session_cmd *cmd,
                          const guint8 *p, gsize len)
{
  gboolean seen_size = FALSE, seen_body = FALSE, too_big = FALSE;

  if (!smtp_session_params_valid (s, p, len,
                                  "501 5.5.4 Syntax: MAIL FROM:<address>"))
    return FALSE;

  gsize i = 0;
  while (i < len)
    {
      if (p[i] == ' ')
        {
          i++;
          continue;
        }
      gsize start = i;
      while (i < len && p[i] != ' ')
        i++;
      const guint8 *tok = p + start;
      gsize tlen = i - start;
      const guint8 *eq = memchr (tok, '=', tlen);
      gsize klen = eq != NULL ? (gsize) (eq - tok) : tlen;
      const guint8 *val = eq != NULL ? eq + 1 : NULL;
      gsize vlen = eq != NULL ? tlen - klen - 1 : 0;

      if (smtp_session_span_equal (tok, klen, "SIZE") && !seen_size)
        {
          guint64 v = 0;

          seen_size = TRUE;
          /* RFC 1870: 1*20DIGIT; no sign, hex or exponent; never wraps
           * (SECURITY-TESTS 21).  */
          if (val == NULL || vlen == 0 || vlen > 20)
            goto bad_size;
          for (gsize k = 0; k < vlen; k++)
            {
              guint d = (guint) (val[k] - '0');
              if (!g_ascii_isdigit (val[k]) || v > (G_MAXUINT64 - d) / 10)
                goto bad_size;
              v = v * 10 + d;
            }
          if (v > s->cfg.max_message)
            too_big = TRUE;
        }
      else if (smtp_session_span_equal (tok, klen, "BODY") && !seen_body)
        {
          seen_body = TRUE;
          if (val != NULL && smtp_session_span_equal (val, vlen, "8BITMIME"))
            cmd->body_8bit = TRUE;
          else if (val == NULL || !smtp_session_span_equal (val, vlen, "7BIT"))
            goto unsupported;
        }
      else
        goto unsupported;
    }

  if (too_big)
    {
      smtp_session_reject (s, "552 5.3.4 Message size exceeds fixed limit");
      return FALSE;
    }
  return TRUE;

bad_size:
  smtp_session_reject (s, "501 5.5.4 Error: bad SIZE parameter");
  return FALSE;
unsupported:
  smtp_session_reject (s, "555 5.5.4 Unsupported option");
  return FALSE;
}

static gboolean
smtp_session_check_mail (smtp_session *s, smtp_session_cmd *cmd)
{
  gsize at, end = 0;

  if (s->helo == NULL)
    {
      smtp_session_reject (s, "503 5.5.1 Error: send HELO/EHLO first");
      return FALSE;
    }
  if (s->mail_from != NULL)
    {
      smtp_session_reject (s, "503 5.5.1 Error: nested MAIL command");
      return FALSE;
    }
  at = smtp_session_path_start (cmd, "FROM:");
  if (at == 0)
    {
      smtp_session_reject (s, "501 5.5.4 Syntax: MAIL FROM:<address>");
      return FALSE;
    }
  /* A source route in MAIL is accepted and dropped (RFC 5321 4.1.1.2).  */
  if (smtp_session_parse_path (cmd->arg + at, cmd->arg_len - at, FALSE,
                               &end, &cmd->address) == SMTP_SESSION_PATH_BAD)
    {
      smtp_session_reject (s, "501 5.1.7 Bad sender address syntax");
      return FALSE;
    }
  at += end;
  if (!smtp_session_mail_params (s, cmd, cmd->arg + at, cmd->arg_len - at))
    return FALSE;
  if (s->storage_low)
    {
      /* The server's condition, not the client's error: not counted.  */
      smtp_session_reply (s, "452 4.3.1 Insufficient system storage");
      return FALSE;
    }
  return TRUE;
}

static void
smtp_session_apply_mail (smtp_session *s, smtp_session_cmd *cmd)
{
  s->mail_from = g_steal_pointer (&cmd->address);
  s->body_8bit = cmd->body_8bit;
  smtp_session_reply (s, "250 2.1.0 Ok");
}

static gboolean
smtp_session_check_rcpt (smtp_session *s, smtp_session_cmd *cmd)
{
  gsize at, end = 0;
  smtp_session_path_result r;

  if (s->mail_from == NULL)
    {
      smtp_session_reject (s, "503 5.5.1 Error: need MAIL command");
      return FALSE;
    }
  s->rcpt_attempts++;
  at = smtp_session_path_start (cmd, "TO:");
  if (at == 0)
    {
      smtp_session_reject (s, "501 5.5.4 Syntax: RCPT TO:<address>");
      return FALSE;
    }
  r = smtp_session_parse_path (cmd->arg + at, cmd->arg_len - at, TRUE,
                               &end, &cmd->address);
  if (r == SMTP_SESSION_PATH_BAD)
    {
      /* "<victim@other.example@council.example>": malformed, and a relay
       * attempt; answered as one (SECURITY-TESTS 28).  */
      const guint8 *path = cmd->arg + at;
      gsize plen = cmd->arg_len - at;
      const guint8 *first = memchr (path, '@', plen);
      if (first != NULL
          && memchr (first + 1, '@', plen - (gsize) (first + 1 - path)))
        smtp_session_reject (s, "554 5.7.1 Relay access denied");
      else
        smtp_session_reject (s, "501 5.1.3 Bad recipient address syntax");
      return FALSE;
    }
  if (r == SMTP_SESSION_PATH_ROUTE)
    {
      smtp_session_reject (s, "554 5.7.1 Relay access denied");
      return FALSE;
    }
  at += end;
  /* We announce no RCPT parameters (no DSN).  */
  if (!smtp_session_params_valid (s, cmd->arg + at, cmd->arg_len - at,
                                  "501 5.5.4 Syntax: RCPT TO:<address>"))
    return FALSE;
  if (!smtp_session_only_spaces (cmd->arg + at, cmd->arg_len - at))
    {
      smtp_session_reject (s, "555 5.5.4 Unsupported option");
      return FALSE;
    }

  g_autofree char *key = smtp_session_rcpt_key (cmd->address);
  cmd->rcpt_duplicate = g_hash_table_contains (s->rcpt_keys, key);

  /* RFC 5321 4.5.3.1.10: refuse beyond the limit, keep the earlier ones;
   * the client sends the rest later, so this is not counted as an error
   * (SECURITY-TESTS 23).  */
  if (!cmd->rcpt_duplicate && s->rcpts->len >= s->cfg.max_rcpt)
    {
      smtp_session_reply (s, "452 4.5.3 Error: too many recipients");
      return FALSE;
    }

  switch (s->cfg.rcpt_check (cmd->address, s->cfg.rcpt_check_data))
    {
    case SMTP_RCPT_OK:
      return TRUE;
    case SMTP_RCPT_UNKNOWN:
      smtp_session_reject (s, "550 5.1.1 Recipient address rejected: "
                           "User unknown");
      return FALSE;
    case SMTP_RCPT_RELAY:
    default:
      smtp_session_reject (s, "554 5.7.1 Relay access denied");
      return FALSE;
    }
}

static void
smtp_session_apply_rcpt (smtp_session *s, smtp_session_cmd *cmd)
{
  if (!cmd->rcpt_duplicate)
    {
      g_hash_table_add (s->rcpt_keys,
                        smtp_session_rcpt_key (cmd->address));
      g_ptr_array_add (s->rcpts, g_steal_pointer (&cmd->address));
    }
  smtp_session_reply (s, "250 2.1.5 Ok");
}

static gboolean
smtp_session_check_data (smtp_session *s, smtp_session_cmd *cmd)
{
  if (s->mail_from == NULL)
    smtp_session_reject (s, "503 5.5.1 Error: need MAIL command");
  else if (s->rcpts->len > 0)
    return TRUE;
  else if (s->rcpt_attempts > 0)
    smtp_session_reject (s, "554 5.5.1 Error: no valid recipients");
  else
    smtp_session_reject (s, "503 5.5.1 Error: need RCPT command");
  return FALSE;
}

static void smtp_session_apply_data (smtp_session *s,
                                     smtp_session_cmd *cmd);

static void
smtp_session_apply_rset (smtp_session *s, smtp_session_cmd *cmd)
{
  smtp_session_reset_transaction (s);
  smtp_session_reply (s, "250 2.0.0 Ok");
}

static void
smtp_session_apply_noop (smtp_session *s, smtp_session_cmd *cmd)
{
  smtp_session_reply (s, "250 2.0.0 Ok");
}

static void
smtp_session_apply_quit (smtp_session *s, smtp_session_cmd *cmd)
{
  smtp_session_reply (s, "221 2.0.0 Bye");
  smtp_session_close (s);
}

static void
smtp_session_apply_help (smtp_session *s, smtp_session_cmd *cmd)
{
  smtp_session_reply (s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA "
                      "RSET NOOP QUIT HELP VRFY%s",
                      s->cfg.tls_available && !s->tls ? " STARTTLS" : "");
}

static gboolean
smtp_session_check_vrfy (smtp_session *s, smtp_session_cmd *cmd)
{
  if (smtp_session_only_spaces (cmd->arg, cmd->arg_len))
    {
      smtp_session_reject (s, "501 5.5.4 Syntax: VRFY address");
      return FALSE;
    }
  return TRUE;
}

static void
smtp_session_apply_vrfy (smtp_session *s, smtp_session_cmd *cmd)
{
  /* RFC 5321 3.5.3: 252 rather than an address-harvesting oracle.  */
  smtp_session_reply (s, "252 2.5.0 Cannot VRFY user, but will accept "
                      "message and attempt delivery");
}

static gboolean
smtp_session_check_expn (smtp_session *s, smtp_session_cmd *cmd)
{
  smtp_session_reject (s, "502 5.5.1 Error: command not implemented");
  return FALSE;
}

static gboolean
smtp_session_check_starttls (smtp_session *s, smtp_session_cmd *cmd)
{
  if (!s->cfg.tls_available)
    {
      smtp_session_reject (s, "502 5.5.1 Error: command not implemented");
      return FALSE;
    }
  if (s->tls)
    {
      smtp_session_reject (s, "554 5.5.1 Error: TLS already active");
      return FALSE;
    }
  return TRUE;
}

static void
smtp_session_apply_starttls (smtp_session *s, smtp_session_cmd *cmd)
{
  smtp_session_reply (s, "220 2.0.0 Ready to start TLS");
  /* RFC 3207 4.2: forget everything learnt in plaintext.  The input
   * behind this line is dropped by the caller when it sees the phase
   * (CVE-2011-0411).  */
  smtp_session_reset_transaction (s);
  smtp_session_forget_helo (s);
  smtp_session_set_phase (s, SMTP_SESSION_PHASE_STARTTLS);
}

static const smtp_session_command smtp_session_commands[] = {
  { "EHLO", SMTP_SESSION_CMD_SYNC, smtp_session_check_helo,
    smtp_session_apply_ehlo },
  { "HELO", SMTP_SESSION_CMD_SYNC, smtp_session_check_helo,
    smtp_session_apply_helo },
  { "MAIL", 0, smtp_session_check_mail, smtp_session_apply_mail },
  { "RCPT", 0, smtp_session_check_rcpt, smtp_session_apply_rcpt },
  { "DATA", SMTP_SESSION_CMD_SYNC | SMTP_SESSION_CMD_NO_ARG,
    smtp_session_check_data, smtp_session_apply_data },
  { "RSET", SMTP_SESSION_CMD_NO_ARG, NULL, smtp_session_apply_rset },
  { "NOOP", 0, NULL, smtp_session_apply_noop },
  { "QUIT", SMTP_SESSION_CMD_NO_ARG, NULL, smtp_session_apply_quit },
  { "HELP", 0, NULL, smtp_session_apply_help },
  { "VRFY", 0, smtp_session_check_vrfy, smtp_session_apply_vrfy },
  { "EXPN", 0, smtp_session_check_expn, NULL },
  { "STARTTLS", SMTP_SESSION_CMD_NO_ARG, smtp_session_check_starttls,
    smtp_session_apply_starttls },
};

/* One complete command line (@line without its LF).  @more: input is
 * already waiting behind it.  */
static void
smtp_session_command_line (smtp_session *s, const guint8 *line, gsize len,
                           gboolean more, gint64 now_us)
{
  const smtp_session_command *command = NULL;
  smtp_session_cmd cmd = { .now_us = now_us };
  gsize verb_len;

  /* RFC 5321 2.3.8: lines end in CRLF; a bare LF is tolerated as the end
   * of a command line (never of DATA).  */
  if (len > 0 && line[len - 1] == '\r')
    len--;
  if (len == 0)
    {
      smtp_session_reject (s, "500 5.5.2 Error: bad syntax");
      return;
    }
  /* SECURITY-TESTS 19 (Dovecot CVE-2019-11500): nothing downstream may
   * see a truncated C string.  A CR inside a command line is how
   * smuggled commands hide (SMTP smuggling).  */
  if (memchr (line, '\0', len) != NULL)
    {
      smtp_session_reject (s, "500 5.5.2 Error: NUL in command");
      return;
    }
  if (memchr (line, '\r', len) != NULL)
    {
      smtp_session_reject (s, "500 5.5.2 Error: bare <CR> in command");
      return;
    }

  for (verb_len = 0; verb_len < len && line[verb_len] != ' '; verb_len++)
    ;
  for (gsize i = 0; i < G_N_ELEMENTS (smtp_session_commands); i++)
    if (smtp_session_span_equal (line, verb_len,
                                 smtp_session_commands[i].name))
      command = &smtp_session_commands[i];
  if (command == NULL)
    {
      smtp_session_reject (s, "502 5.5.1 Error: command not recognized");
      return;
    }

  if ((command->flags & SMTP_SESSION_CMD_SYNC) && more)
    {
      /* RFC 2920 3.1; SECURITY-TESTS 9, 10.  Nothing is stored.  */
      smtp_session_reply (s, "554 5.5.0 Error: SMTP protocol "
                          "synchronization");
      smtp_session_close (s);
      return;
    }

  cmd.arg = line + verb_len + (verb_len < len ? 1 : 0);
  cmd.arg_len = len - verb_len - (verb_len < len ? 1 : 0);
  if ((command->flags & SMTP_SESSION_CMD_NO_ARG)
      && !smtp_session_only_spaces (cmd.arg, cmd.arg_len))
    {
      smtp_session_reject (s, "501 5.5.4 Syntax: %s", command->name);
      return;
    }

  if (command->check == NULL || command->check (s, &cmd))
    {
      g_assert (command->apply != NULL);
      command->apply (s, &cmd);
    }
  g_free (cmd.address);
}

/* ------------------------------------------------------------------------
 * DATA section: a byte-level state machine with constant state; any split
 * of the input gives the same result.
 */

/* Once the message cannot be accepted, stop keeping its bytes (SECURITY-
 * TESTS 22: bounded memory while we read on to the end of data).  */
static void
smtp_session_data_check (smtp_session *s)
{
  smtp_session_data *d = &s->data;

  if (d->size > s->cfg.max_message)
    d->too_big = TRUE;
  if (d->line_len > s->cfg.max_text_line)
    d->line_too_long = TRUE;
  if (d->in_header && (d->header_bytes > s->cfg.max_header_bytes
                       || d->header_lines > s->cfg.max_header_lines))
    d->header_too_big = TRUE;

  gboolean doomed = d->too_big || d->line_too_long || d->header_too_big
                    || d->hops > s->cfg.max_hops
                    || (!s->cfg.normalise_bare_lf
                        && (d->bare_lf || d->bare_cr));
  if (doomed && d->bytes != NULL)
    g_clear_pointer (&d->bytes, g_byte_array_unref);
}

/* Content bytes of the current line (unstuffed, no line end).  */
static void
smtp_session_data_put (smtp_session *s, const guint8 *p, gsize n)
{
  static const char received[] = "received:";
  smtp_session_data *d = &s->data;

  if (d->in_header && !d->rcvd_dead)
    {
      /* Count "Received:" at the start of header lines (RFC 5321 6.3).  */
      for (gsize i = 0; i < n && !d->rcvd_dead
                        && d->rcvd_matched < sizeof received - 1; i++)
        {
          if (g_ascii_tolower (p[i]) == received[d->rcvd_matched])
            {
              d->rcvd_matched++;
              if (d->rcvd_matched == sizeof received - 1)
                d->hops++;
            }
          else
            d->rcvd_dead = TRUE;
        }
    }
  d->size += n;
  d->line_len += n;
  if (d->in_header)
    d->header_bytes += n;
  /* Check before keeping: the buffer never holds more than max_message.  */
  smtp_session_data_check (s);
  if (d->bytes != NULL)
    g_byte_array_append (d->bytes, p, (guint) n);
}

/* A line end: a real CRLF, or a bare LF or bare CR stored as CRLF (the
 * message is then either rejected or flagged as normalised).  */
static void
smtp_session_data_eol (smtp_session *s)
{
  smtp_session_data *d = &s->data;

  d->size += 2;
  if (d->in_header)
    {
      d->header_bytes += 2;
      d->header_lines++;
    }
  smtp_session_data_check (s);
  if (d->bytes != NULL)
    g_byte_array_append (d->bytes, (const guint8 *) "\r\n", 2);
  /* RFC 5322 2.1: the header section ends at the first empty line.  */
  if (d->in_header && d->line_len == 0)
    d->in_header = FALSE;
  d->line_len = 0;
  d->rcvd_matched = 0;
  d->rcvd_dead = FALSE;
}

static void smtp_session_data_end (smtp_session *s, gint64 now_us);

/* Returns the bytes consumed: all of @len, or up to and including the
 * LF of the terminating <CRLF>.<CRLF>.  */
static gsize
smtp_session_data_scan (smtp_session *s, const guint8 *p, gsize len,
                        gint64 now_us)
{
  smtp_session_data *d = &s->data;
  gsize i = 0;

  while (i < len)
    {
      guint8 c = p[i];

      switch (d->state)
        {
        case SMTP_SESSION_DATA_BOL:
          if (c == '.')
            {
              d->state = SMTP_SESSION_DATA_BOL_DOT;
              i++;
            }
          else
            d->state = SMTP_SESSION_DATA_TEXT;
          break;

        case SMTP_SESSION_DATA_BOL_DOT:
          if (c == '\r')
            {
              d->state = SMTP_SESSION_DATA_BOL_DOT_CR;
              i++;
            }
          else
            /* RFC 5321 4.5.2: the leading dot of a line that is not the
             * terminator is removed; c is reread as text.  */
            d->state = SMTP_SESSION_DATA_TEXT;
          break;

        case SMTP_SESSION_DATA_BOL_DOT_CR:
          if (c == '\n')
            {
              i++;
              s->request_bytes += i;
              smtp_session_data_end (s, now_us);
              return i;
            }
          /* "." CR without LF: not the terminator; the dot is removed and
           * the CR is a bare CR; c is reread as text.  */
          d->bare_cr = TRUE;
          smtp_session_data_eol (s);
          d->state = SMTP_SESSION_DATA_TEXT;
          break;

        case SMTP_SESSION_DATA_TEXT:
          {
            gsize j = i;
            while (j < len && p[j] != '\r' && p[j] != '\n')
              j++;
            if (j > i)
              smtp_session_data_put (s, p + i, j - i);
            i = j;
            if (i < len)
              {
                if (p[i] == '\r')
                  d->state = SMTP_SESSION_DATA_CR;
                else
                  {
                    /* Bare LF: a line end, but not a line start for
                     * "." (SMTP smuggling).  */
                    d->bare_lf = TRUE;
                    smtp_session_data_eol (s);
                  }
                i++;
              }
          }
          break;

        case SMTP_SESSION_DATA_CR:
          if (c == '\n')
            {
              smtp_session_data_eol (s);
              d->state = SMTP_SESSION_DATA_BOL;
              i++;
            }
          else
            {
              /* Bare CR; c is reread as text.  */
              d->bare_cr = TRUE;
              smtp_session_data_eol (s);
              d->state = SMTP_SESSION_DATA_TEXT;
            }
          break;
        }
    }
  s->request_bytes += i;
  return i;
}

static void
smtp_session_apply_data (smtp_session *s, smtp_session_cmd *cmd)
{
  smtp_session_data *d = &s->data;

  smtp_session_data_clear (d);
  d->state = SMTP_SESSION_DATA_BOL;  /* right after the 354: a line start */
  d->bytes = g_byte_array_new ();
  d->in_header = TRUE;
  smtp_session_reply (s, "354 End data with <CR><LF>.<CR><LF>");
  smtp_session_set_phase (s, SMTP_SESSION_PHASE_DATA);
  /* The DATA request runs from the 354 to the end of data.  */
  smtp_session_start_request (s, cmd->now_us);
}

/* <CRLF>.<CRLF> seen: answer a refusal, or hand the message over.  */
static void
smtp_session_data_end (smtp_session *s, gint64 now_us)
{
  smtp_session_data *d = &s->data;
  const char *refusal = NULL;

  smtp_session_end_request (s, now_us);
  if (d->too_big)
    refusal = "552 5.3.4 Message size exceeds fixed limit";
  else if (d->line_too_long)
    refusal = "552 5.3.4 Error: line too long";
  else if (d->header_too_big)
    refusal = "552 5.3.4 Error: header section too large";
  else if (!s->cfg.normalise_bare_lf && d->bare_lf)
    refusal = "550 5.5.2 Error: bare <LF> received";
  else if (!s->cfg.normalise_bare_lf && d->bare_cr)
    refusal = "550 5.5.2 Error: bare <CR> received";
  else if (d->hops > s->cfg.max_hops)
    refusal = "554 5.4.6 Too many hops";

  if (refusal != NULL)
    {
      smtp_session_reset_transaction (s);
      smtp_session_set_phase (s, SMTP_SESSION_PHASE_COMMAND);
      smtp_session_reject (s, "%s", refusal);
      return;
    }

  g_assert (d->bytes != NULL);
  smtp_message *msg = g_new0 (smtp_message, 1);
  msg->helo = g_strdup (s->helo);
  msg->mail_from = g_strdup (s->mail_from);
  msg->rcpts = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < s->rcpts->len; i++)
    g_ptr_array_add (msg->rcpts, g_strdup (g_ptr_array_index (s->rcpts, i)));
  msg->data = g_byte_array_free_to_bytes (g_steal_pointer (&d->bytes));
  msg->tls = s->tls;
  msg->esmtp = s->esmtp;
  msg->body_8bit = s->body_8bit;
  msg->normalised = d->bare_lf || d->bare_cr;

  smtp_session_reset_transaction (s);
  s->message = msg;
  smtp_session_set_phase (s, SMTP_SESSION_PHASE_MESSAGE);
}

/* ------------------------------------------------------------------------
 * Input.
 */

/* A command line, or a piece of one.  Returns the bytes consumed: up to
 * and including the first LF, or all of @len.  */
static gsize
smtp_session_line_scan (smtp_session *s, const guint8 *p, gsize len,
                        gint64 now_us)
{
  const guint8 *lf = memchr (p, '\n', len);
  gsize n = lf != NULL ? (gsize) (lf - p) + 1 : len;
  gsize content = lf != NULL ? n - 1 : n;

  if (!s->in_request)
    smtp_session_start_request (s, now_us);
  s->request_bytes += n;

  if (s->phase == SMTP_SESSION_PHASE_COMMAND)
    {
      if (s->line->len + content < s->cfg.max_line)
        {
          g_byte_array_append (s->line, p, (guint) content);
          if (lf == NULL)
            return n;
          smtp_session_command_line (s, s->line->data, s->line->len,
                                     n < len, now_us);
          g_byte_array_set_size (s->line, 0);
          if (s->phase == SMTP_SESSION_PHASE_COMMAND)
            smtp_session_end_request (s, now_us);
          return n;
        }
      /* RFC 5321 4.5.3.1.4; SECURITY-TESTS 17, 18: answer as soon as the
       * line is too long, never keep more than max_line - 1 bytes of it,
       * resynchronise at the next LF.  */
      s->skipped = s->line->len;
      g_byte_array_set_size (s->line, 0);
      smtp_session_reject (s, "500 5.5.2 Error: line too long");
      if (s->phase == SMTP_SESSION_PHASE_CLOSED)
        return n;
      smtp_session_set_phase (s, SMTP_SESSION_PHASE_SKIP_LINE);
    }

  /* SKIP_LINE.  @skipped counts the bytes before the LF, so any split of
   * the input closes at the same byte.  */
  s->skipped += content;
  if (s->skipped > (guint64) SMTP_SESSION_SKIP_FACTOR * s->cfg.max_line)
    {
      smtp_session_reply (s, "421 4.7.0 %s Error: command line too long",
                          s->hostname);
      smtp_session_close (s);
      return n;
    }
  if (lf != NULL)
    {
      smtp_session_set_phase (s, SMTP_SESSION_PHASE_COMMAND);
      smtp_session_end_request (s, now_us);
    }
  return n;
}

/* Run @p through the session while it reads.  Returns the bytes consumed;
 * the rest is for the caller to keep (MESSAGE) or drop.  */
static gsize
smtp_session_process (smtp_session *s, const guint8 *p, gsize len,
                      gint64 now_us)
{
  gsize pos = 0;

  while (pos < len)
    {
      switch (s->phase)
        {
        case SMTP_SESSION_PHASE_COMMAND:
        case SMTP_SESSION_PHASE_SKIP_LINE:
          pos += smtp_session_line_scan (s, p + pos, len - pos, now_us);
          break;
        case SMTP_SESSION_PHASE_DATA:
          pos += smtp_session_data_scan (s, p + pos, len - pos, now_us);
          break;
        default:
          return pos;
        }
    }
  return pos;
}

/* Input behind a finished message waits for smtp_session_message_done(),
 * at most SMTP_LIMIT_PIPELINE_BYTES of it; beyond that the session will
 * close with 421 once the store has answered (the 250 still goes out).  */
static void
smtp_session_keep_pending (smtp_session *s, const guint8 *p, gsize len)
{
  if (len == 0 || s->pending_overflow)
    return;
  if (s->pending->len + len > SMTP_LIMIT_PIPELINE_BYTES)
    {
      s->pending_overflow = TRUE;
      g_byte_array_set_size (s->pending, 0);
      return;
    }
  g_byte_array_append (s->pending, p, (guint) len);
}

/* What was not consumed: kept behind a message; dropped after STARTTLS
 * (CVE-2011-0411) or CLOSE.  */
static void
smtp_session_leftover (smtp_session *s, const guint8 *p, gsize len)
{
  if (s->phase == SMTP_SESSION_PHASE_MESSAGE)
    smtp_session_keep_pending (s, p, len);
}

static void
smtp_session_process_pending (smtp_session *s, gint64 now_us)
{
  GByteArray *in;
  gsize used;

  if (s->pending->len == 0)
    return;
  in = s->pending;
  s->pending = g_byte_array_new ();
  used = smtp_session_process (s, in->data, in->len, now_us);
  smtp_session_leftover (s, in->data + used, in->len - used);
  g_byte_array_unref (in);
}

/* ------------------------------------------------------------------------
 * Public API.
 */
static smtp_rcpt_verdict
smtp_session_refuse_all (const char *address, gpointer user_data)
{
  return SMTP_RCPT_RELAY;
}

void
smtp_session_config_init (smtp_session_config *cfg)
{
  g_return_if_fail (cfg != NULL);

  memset (cfg, 0, sizeof *cfg);
  cfg->hostname = "localhost";
  cfg->max_line = SMTP_LIMIT_LINE_DEFAULT;
  cfg->max_text_line = SMTP_LIMIT_TEXT_LINE_DEFAULT;
  cfg->max_header_bytes = SMTP_LIMIT_HEADER_BYTES_DEFAULT;
  cfg->max_header_lines = SMTP_LIMIT_HEADER_LINES_DEFAULT;
  cfg->max_message = SMTP_LIMIT_MESSAGE_DEFAULT;
  cfg->max_rcpt = SMTP_LIMIT_RCPT_DEFAULT;
  cfg->max_hops = SMTP_LIMIT_HOPS_DEFAULT;
  cfg->max_errors = SMTP_LIMIT_ERRORS_DEFAULT;
  cfg->timeout_s = SMTP_LIMIT_TIMEOUT_DEFAULT;
  cfg->min_rate = SMTP_LIMIT_MIN_RATE_DEFAULT;
  cfg->normalise_bare_lf = FALSE;
  cfg->tls_available = FALSE;
  cfg->rcpt_check = smtp_session_refuse_all;
  cfg->rcpt_check_data = NULL;
}

void
smtp_message_free (smtp_message *msg)
{
  if (msg == NULL)
    return;
  g_free (msg->helo);
  g_free (msg->mail_from);
  if (msg->rcpts != NULL)
    g_ptr_array_unref (msg->rcpts);
  if (msg->data != NULL)
    g_bytes_unref (msg->data);
  g_free (msg);
}

smtp_session *
smtp_session_new (const smtp_session_config *cfg, gint64 now_us)
{
  smtp_session *s;

  g_return_val_if_fail (cfg != NULL, NULL);
  g_return_val_if_fail (cfg->hostname != NULL, NULL);
  g_return_val_if_fail (cfg->rcpt_check != NULL, NULL);
  /* Not limits to tune (intake_config.c range-checks those) but what the
   * code relies on: a line can hold a verb, an error count exists.  */
  g_return_val_if_fail (cfg->max_line >= 16, NULL);
  g_return_val_if_fail (cfg->max_errors >= 1, NULL);

  s = g_new0 (smtp_session, 1);
  s->cfg = *cfg;
  /* Our own name goes into every reply: keep it printable, no spaces.  */
  s->hostname = g_strdup (cfg->hostname);
  for (char *c = s->hostname; *c != '\0'; c++)
    if (*c < 0x21 || *c > 0x7e)
      *c = '?';
  smtp_session_set_phase (s, SMTP_SESSION_PHASE_COMMAND);
  s->out = g_string_new (NULL);
  s->line = g_byte_array_new ();
  s->pending = g_byte_array_new ();
  s->rcpts = g_ptr_array_new_with_free_func (g_free);
  s->rcpt_keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        NULL);
  s->last_activity = now_us;

  smtp_session_reply (s, "220 %s ESMTP intake", s->hostname);
  return s;
}

void
smtp_session_free (smtp_session **s)
{
  smtp_session *p;

  g_return_if_fail (s != NULL);
  p = g_steal_pointer (s);
  if (p == NULL)
    return;
  smtp_session_reset_transaction (p);
  smtp_session_forget_helo (p);
  smtp_message_free (p->message);
  g_ptr_array_unref (p->rcpts);
  g_hash_table_unref (p->rcpt_keys);
  g_byte_array_unref (p->line);
  g_byte_array_unref (p->pending);
  g_string_free (p->out, TRUE);
  g_free (p->hostname);
  g_free (p);
}

void
smtp_session_feed (smtp_session *s, const char *data, gsize len,
                   gint64 now_us)
{
  gsize used;

  g_return_if_fail (s != NULL);
  g_return_if_fail (data != NULL || len == 0);

  switch (s->phase)
    {
    case SMTP_SESSION_PHASE_CLOSED:
    case SMTP_SESSION_PHASE_STARTTLS:
      /* After STARTTLS, plaintext bytes must never reach the TLS session
       * (CVE-2011-0411).  */
      return;
    case SMTP_SESSION_PHASE_MESSAGE:
      /* The shell should not feed now; keep it as pipelined input.  */
      smtp_session_keep_pending (s, (const guint8 *) data, len);
      return;
    default:
      break;
    }
  /* Bytes that arrive after the deadline are too late to extend it.  */
  if (smtp_session_check_deadline (s, now_us))
    return;
  used = smtp_session_process (s, (const guint8 *) data, len, now_us);
  smtp_session_leftover (s, (const guint8 *) data + used, len - used);
}

smtp_session_status
smtp_session_get_status (smtp_session *s)
{
  g_return_val_if_fail (s != NULL, SMTP_SESSION_CLOSE);

  switch (s->phase)
    {
    case SMTP_SESSION_PHASE_MESSAGE:
      return SMTP_SESSION_MESSAGE;
    case SMTP_SESSION_PHASE_STARTTLS:
      return SMTP_SESSION_STARTTLS;
    case SMTP_SESSION_PHASE_CLOSED:
      return SMTP_SESSION_CLOSE;
    default:
      return SMTP_SESSION_READ;
    }
}

GBytes *
smtp_session_take_output (smtp_session *s)
{
  GBytes *b;

  g_return_val_if_fail (s != NULL, NULL);
  if (s->out->len == 0)
    return NULL;
  b = g_string_free_to_bytes (s->out);
  s->out = g_string_new (NULL);
  return b;
}

smtp_message *
smtp_session_take_message (smtp_session *s)
{
  g_return_val_if_fail (s != NULL, NULL);
  if (s->phase != SMTP_SESSION_PHASE_MESSAGE)
    return NULL;
  return g_steal_pointer (&s->message);
}

void
smtp_session_message_done (smtp_session *s, smtp_store_result result,
                           const char *queue_id, gint64 now_us)
{
  g_return_if_fail (s != NULL);
  g_return_if_fail (s->phase == SMTP_SESSION_PHASE_MESSAGE);

  g_clear_pointer (&s->message, smtp_message_free);
  smtp_session_set_phase (s, SMTP_SESSION_PHASE_COMMAND);
  smtp_session_end_request (s, now_us);

  switch (result)
    {
    case SMTP_STORE_OK:
      {
        /* The id comes from our store, but it goes on the wire: only
         * printable bytes, bounded.  */
        g_autofree char *id = g_strndup (queue_id != NULL ? queue_id : "-",
                                         64);
        for (char *c = id; *c != '\0'; c++)
          if (*c < 0x21 || *c > 0x7e)
            *c = '?';
        smtp_session_reply (s, "250 2.0.0 Ok: queued as %s", id);
      }
      break;
    case SMTP_STORE_TEMPFAIL:
      smtp_session_reply (s, "451 4.3.0 Error: queue file write error");
      break;
    case SMTP_STORE_NOSPACE:
      smtp_session_reply (s, "452 4.3.1 Insufficient system storage");
      break;
    case SMTP_STORE_SHUTDOWN:
    default:
      smtp_session_reply (s, "421 4.3.2 %s Service shutting down",
                          s->hostname);
      smtp_session_close (s);
      return;
    }

  if (s->shutdown_pending)
    {
      smtp_session_reply (s, "421 4.3.2 %s Service shutting down",
                          s->hostname);
      smtp_session_close (s);
      return;
    }
  if (s->pending_overflow)
    {
      smtp_session_reply (s, "421 4.7.0 %s Error: too much pipelined input",
                          s->hostname);
      smtp_session_close (s);
      return;
    }
  smtp_session_process_pending (s, now_us);
}

void
smtp_session_tls_done (smtp_session *s, gboolean ok, gint64 now_us)
{
  g_return_if_fail (s != NULL);
  g_return_if_fail (s->phase == SMTP_SESSION_PHASE_STARTTLS);

  if (!ok)
    {
      smtp_session_close (s);
      return;
    }
  s->tls = TRUE;
  g_byte_array_set_size (s->line, 0);
  smtp_session_set_phase (s, SMTP_SESSION_PHASE_COMMAND);
  smtp_session_end_request (s, now_us);
}

void
smtp_session_set_storage_low (smtp_session *s, gboolean low)
{
  g_return_if_fail (s != NULL);
  s->storage_low = low;
}

/* a + b, saturating at G_MAXINT64 (b >= 0).  */
static gint64
smtp_session_add_us (gint64 a, guint64 b)
{
  if (b > (guint64) G_MAXINT64 || a > G_MAXINT64 - (gint64) b)
    return G_MAXINT64;
  return a + (gint64) b;
}

gint64
smtp_session_deadline (smtp_session *s)
{
  guint64 timeout_us;

  g_return_val_if_fail (s != NULL, G_MAXINT64);

  switch (s->phase)
    {
    case SMTP_SESSION_PHASE_COMMAND:
    case SMTP_SESSION_PHASE_SKIP_LINE:
    case SMTP_SESSION_PHASE_DATA:
      break;
    default:
      return G_MAXINT64;
    }

  timeout_us = (guint64) s->cfg.timeout_s * G_USEC_PER_SEC;
  if (!s->in_request)
    return smtp_session_add_us (s->last_activity, timeout_us);

  /* Postfix smtpd_per_request_deadline + smtpd_min_data_rate: each byte
   * received buys 1/min_rate s, so a trickling client is still cut
   * (SECURITY-TESTS 26, 27).  */
  guint64 extra = 0;
  if (s->cfg.min_rate > 0)
    {
      guint64 b = s->request_bytes, r = s->cfg.min_rate;
      if (b / r > G_MAXINT64 / G_USEC_PER_SEC)
        return G_MAXINT64;
      extra = b / r * G_USEC_PER_SEC + b % r * G_USEC_PER_SEC / r;
    }
  return smtp_session_add_us (smtp_session_add_us (s->request_start,
                                                   timeout_us), extra);
}

gboolean
smtp_session_check_deadline (smtp_session *s, gint64 now_us)
{
  g_return_val_if_fail (s != NULL, FALSE);

  if (now_us < smtp_session_deadline (s))
    return FALSE;
  smtp_session_reply (s, "421 4.4.2 %s Error: timeout exceeded",
                      s->hostname);
  smtp_session_close (s);
  return TRUE;
}

void
smtp_session_shutdown (smtp_session *s)
{
  g_return_if_fail (s != NULL);

  switch (s->phase)
    {
    case SMTP_SESSION_PHASE_CLOSED:
      return;
    case SMTP_SESSION_PHASE_MESSAGE:
      /* The store's answer (maybe a 250) must go out first.  */
      s->shutdown_pending = TRUE;
      return;
    case SMTP_SESSION_PHASE_STARTTLS:
      /* The 220 is out and the connection now belongs to the TLS
       * handshake: no more plaintext, just close.  */
      smtp_session_close (s);
      return;
    default:
      smtp_session_reply (s, "421 4.3.2 %s Service shutting down",
                          s->hostname);
      smtp_session_close (s);
      return;
    }
}

guint
smtp_session_errors (smtp_session *s)
{
  g_return_val_if_fail (s != NULL, 0);
  return s->errors;
}

const char *
smtp_session_phase_name (smtp_session *s)
{
  g_return_val_if_fail (s != NULL, "invalid");
  return smtp_session_phase_names[s->phase];
}
