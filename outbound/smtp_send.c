/*
 * smtp_send.c - deliver one message to the configured smarthost.
 *
 * Owns, for one call: a libetpan mailsmtp session and its descriptor, the
 * certificate store it verifies against.  Refuses: envelope addresses with
 * anything but printable ASCII or with '<' / '>' (before connecting),
 * plaintext to a host that is not loopback, a smarthost without STARTTLS
 * when it is required, certificates that do not verify for the configured
 * host, plaintext the server sent after its 220 to STARTTLS, AUTH before
 * TLS (except to loopback).
 *
 * What libetpan 1.9.4 does and does not do for us (read in its sources and
 * checked on the wire by tests/unit/test_smtp_send.c):
 * - mailsmtp_data_message() turns every bare LF and bare CR into CRLF and
 *   doubles a leading '.' on every line, then appends "\r\n.\r\n" - always,
 *   so a message that already ends with a line end would gain an empty
 *   line: we drop one final line end before handing the bytes over.
 * - mailesmtp_ehlo()/mailsmtp_helo() send gethostname(), not our name: we
 *   send EHLO/HELO ourselves with its exported (but not installed)
 *   command and response helpers.
 * - mailsmtp_socket_connect() applies the session timeout to connect()
 *   only: the greeting and every later plaintext read would wait for the
 *   global mailstream_network_delay.  We connect with GIO and hand libetpan
 *   a stream opened with our timeout.
 * - MAIL, RCPT and AUTH lines are formatted into 513 bytes and silently
 *   cut, CRLF included: addresses and credentials are bounded below so
 *   that never happens.
 * - No certificate is checked: the chain and host name are verified here
 *   with GIO before anything but EHLO is sent.
 * Logs name the smarthost, the phase and the reply code; never an address
 * or the server's reply text (servers echo addresses).
 */
#define G_LOG_DOMAIN "intake-outbound"

#include "outbound/smtp_send.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <libetpan/libetpan.h>

#include "intake/etpan_tls.h"

/* RFC 5321 §4.5.3.1.3: a path is at most 256 octets, angle brackets
 * included.  Also keeps "MAIL FROM:<...> RET=HDRS SIZE=n\r\n" inside
 * libetpan's 513-byte command buffer.  */
#define SMTP_SEND_PATH_MAX 254
/* RFC 5321 §4.5.3.1.2: a domain is at most 255 octets.  */
#define SMTP_SEND_HELO_MAX 255
/* User plus password bytes: "AUTH PLAIN " and the base64 of
 * "\0user\0password" must fit libetpan's 513-byte command buffer, which it
 * cuts without CRLF (the next command would be glued to the credentials).  */
#define SMTP_SEND_AUTH_MAX 360

/* Exported by libetpan 1.9.4 (src/low-level/smtp/mailsmtp.c) and declared
 * in its mailsmtp_private.h, which is not installed.  Needed to send our
 * EHLO name (see above).  */
int mailsmtp_send_command (mailsmtp *session, char *command);
int mailsmtp_read_response (mailsmtp *session);
int mailesmtp_parse_ehlo (mailsmtp *session);

typedef enum {
  SMTP_SEND_PHASE_CHECK,
  SMTP_SEND_PHASE_CONNECT,
  SMTP_SEND_PHASE_GREETING,
  SMTP_SEND_PHASE_EHLO,
  SMTP_SEND_PHASE_STARTTLS,
  SMTP_SEND_PHASE_VERIFY,
  SMTP_SEND_PHASE_AUTH,
  SMTP_SEND_PHASE_MAIL,
  SMTP_SEND_PHASE_RCPT,
  SMTP_SEND_PHASE_DATA,
  SMTP_SEND_PHASE_DOT,
  SMTP_SEND_PHASE_DONE,
} smtp_send_phase;

static const char *const smtp_send_phase_names[] = {
  [SMTP_SEND_PHASE_CHECK] = "check",
  [SMTP_SEND_PHASE_CONNECT] = "connect",
  [SMTP_SEND_PHASE_GREETING] = "greeting",
  [SMTP_SEND_PHASE_EHLO] = "ehlo",
  [SMTP_SEND_PHASE_STARTTLS] = "starttls",
  [SMTP_SEND_PHASE_VERIFY] = "verify",
  [SMTP_SEND_PHASE_AUTH] = "auth",
  [SMTP_SEND_PHASE_MAIL] = "mail",
  [SMTP_SEND_PHASE_RCPT] = "rcpt",
  [SMTP_SEND_PHASE_DATA] = "data",
  [SMTP_SEND_PHASE_DOT] = "dot",
  [SMTP_SEND_PHASE_DONE] = "done",
};

typedef struct {
  const smtp_send_config *cfg;
  char *host;                 /* cfg->host without [brackets] */
  guint timeout_s;
  mailsmtp *smtp;
  smtp_send_phase phase;
  gboolean tls;               /* STARTTLS done and the chain verified */
  int code;                   /* the last reply code, 0: none */
  char *reply;                /* for @reply */
} smtp_send_ctx;

const char *
smtp_send_result_name (smtp_send_result r)
{
  switch (r)
    {
    case SMTP_SEND_OK:
      return "ok";
    case SMTP_SEND_TEMPFAIL:
      return "tempfail";
    case SMTP_SEND_PERMFAIL:
      return "permfail";
    }
  return "?";
}

static void
smtp_send_set_phase (smtp_send_ctx *c, smtp_send_phase phase)
{
  g_assert (phase < G_N_ELEMENTS (smtp_send_phase_names));
  c->phase = phase;
}

/* ------------------------------------------------------------- checks */

/* RFC 5321 §4.1.2 paths, as far as we ever send them: printable ASCII with
 * no space (a space, CR or LF would start a parameter or a command of the
 * attacker's: SECURITY-TESTS 49), no angle brackets, bounded.  No
 * SMTPUTF8: an 8-bit byte is refused too.  */
static gboolean
smtp_send_address_ok (const char *a, gboolean may_be_empty)
{
  gsize n;

  if (a == NULL)
    return FALSE;
  n = strlen (a);
  if (n == 0)
    return may_be_empty;
  if (n > SMTP_SEND_PATH_MAX)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    {
      guchar ch = a[i];
      if (ch <= 0x20 || ch >= 0x7f || ch == '<' || ch == '>')
        return FALSE;
    }
  return TRUE;
}

/* A domain or an address literal (RFC 5321 §4.1.3): letters, digits, '-',
 * '.', and '[', ']', ':' for literals; @extra for host names ('_' is found
 * in internal DNS).  */
static gboolean
smtp_send_name_ok (const char *h, const char *extra)
{
  gsize n = h ? strlen (h) : 0;

  if (n == 0 || n > SMTP_SEND_HELO_MAX)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isalnum (h[i]) && strchr ("-.[]:", h[i]) == NULL
        && strchr (extra, h[i]) == NULL)
      return FALSE;
  return TRUE;
}

/* @host without the brackets of "[::1]".  */
static char *
smtp_send_bare_host (const char *host)
{
  gsize n = strlen (host);

  if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
    return g_strndup (host + 1, n - 2);
  return g_strdup (host);
}

gboolean
smtp_send_host_is_loopback (const char *host)
{
  g_autofree char *bare = NULL;
  g_autoptr (GInetAddress) addr = NULL;

  if (host == NULL)
    return FALSE;
  if (g_ascii_strcasecmp (host, "localhost") == 0)
    return TRUE;
  bare = smtp_send_bare_host (host);
  addr = g_inet_address_new_from_string (bare);
  return addr != NULL && g_inet_address_get_is_loopback (addr);
}

/* ------------------------------------------------------------- replies */

/* Append @n bytes of untrusted text: control characters removed, 8-bit
 * bytes as '?', the whole string bounded by SMTP_SEND_REPLY_MAX.  */
static void
smtp_send_append_clean (GString *s, const char *p, gsize n)
{
  for (gsize i = 0; i < n; i++)
    {
      guchar ch = p[i];
      if (ch < 0x20 || ch == 0x7f)
        continue;
      if (s->len + 1 > SMTP_SEND_REPLY_MAX - 3)
        {
          g_string_append (s, "...");
          return;
        }
      g_string_append_c (s, ch >= 0x80 ? '?' : (char) ch);
    }
}

static void G_GNUC_PRINTF (2, 3)
smtp_send_local (smtp_send_ctx *c, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *text = NULL;
  GString *s = g_string_new ("local: ");

  va_start (ap, fmt);
  text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  smtp_send_append_clean (s, text, strlen (text));
  g_free (c->reply);
  c->reply = g_string_free (s, FALSE);
  c->code = 0;
}

/* After a libetpan call that returned @r for command @what (its reply code
 * was cleared before): keep the reply's code and last line, or say that
 * none came.  Returns the code, 0 for none.  */
static int
smtp_send_take_reply (smtp_send_ctx *c, int r, const char *what)
{
  int code = c->smtp->response_code;
  const char *text = c->smtp->response;
  const char *start, *end;
  GString *s;

  if (code <= 0)
    {
      smtp_send_local (c, "no reply to %s (%s)", what,
                       r == MAILSMTP_ERROR_STREAM
                           ? "connection closed or timed out"
                           : mailsmtp_strerror (r));
      return 0;
    }
  /* libetpan keeps the text of every line without its code, each line
   * ending in '\n': the last non-empty one is the last line.  */
  end = text ? text + strlen (text) : NULL;
  while (end && end > text && (end[-1] == '\n' || end[-1] == '\r'))
    end--;
  start = end;
  while (start && start > text && start[-1] != '\n')
    start--;
  s = g_string_new (NULL);
  g_string_append_printf (s, "%d", code);
  if (start && end > start)
    {
      g_string_append_c (s, ' ');
      smtp_send_append_clean (s, start, end - start);
    }
  g_free (c->reply);
  c->reply = g_string_free (s, FALSE);
  c->code = code;
  return code;
}

/* RFC 5321 §4.2.1: the first digit decides.  No reply, or one that makes
 * no sense, is temporary.  */
static smtp_send_result
smtp_send_class (int code)
{
  if (code >= 200 && code <= 299)
    return SMTP_SEND_OK;
  if (code >= 500 && code <= 599)
    return SMTP_SEND_PERMFAIL;
  return SMTP_SEND_TEMPFAIL;
}

/* ----------------------------------------------------------- transport */

/* Connect with GIO (bounded by our timeout; never through a proxy from the
 * environment) and give libetpan its own blocking descriptor, opened with
 * our per-command timeout, then read the greeting.  */
static gboolean
smtp_send_connect (smtp_send_ctx *c)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnectable) addr = NULL;
  g_autoptr (GSocketConnection) conn = NULL;
  g_autoptr (GError) error = NULL;
  mailstream *stream;
  int fd, flags, r;

  smtp_send_set_phase (c, SMTP_SEND_PHASE_CONNECT);
  g_socket_client_set_enable_proxy (client, FALSE);
  g_socket_client_set_timeout (client, c->timeout_s);
  addr = g_network_address_new (c->host, (guint16) c->cfg->port);
  conn = g_socket_client_connect (client, addr, NULL, &error);
  if (conn == NULL)
    {
      smtp_send_local (c, "cannot connect to the smarthost: %s",
                       error->message);
      return FALSE;
    }
  fd = fcntl (g_socket_get_fd (g_socket_connection_get_socket (conn)),
              F_DUPFD_CLOEXEC, 0);
  if (fd < 0 || (flags = fcntl (fd, F_GETFL)) < 0
      || fcntl (fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
    {
      smtp_send_local (c, "cannot set up the connection: %s",
                       g_strerror (errno));
      if (fd >= 0)
        close (fd);
      return FALSE;
    }
  stream = mailstream_socket_open_timeout (fd, c->timeout_s);
  if (stream == NULL)
    {
      close (fd);
      smtp_send_local (c, "cannot set up the connection");
      return FALSE;
    }
  smtp_send_set_phase (c, SMTP_SEND_PHASE_GREETING);
  c->smtp->response_code = 0;
  r = mailsmtp_connect (c->smtp, stream);   /* closes it on failure */
  return smtp_send_take_reply (c, r, "the connection (greeting)") == 220;
}

/* EHLO with our name, HELO if the server refuses EHLO with 5xx (RFC 5321
 * §3.2).  Returns the final reply code.  */
static int
smtp_send_hello (smtp_send_ctx *c)
{
  g_autofree char *ehlo = g_strdup_printf ("EHLO %s\r\n", c->cfg->helo);
  g_autofree char *helo = g_strdup_printf ("HELO %s\r\n", c->cfg->helo);
  int code;

  smtp_send_set_phase (c, SMTP_SEND_PHASE_EHLO);
  c->smtp->response_code = 0;
  if (mailsmtp_send_command (c->smtp, ehlo) == -1)
    return smtp_send_take_reply (c, MAILSMTP_ERROR_STREAM, "EHLO");
  mailsmtp_read_response (c->smtp);
  code = smtp_send_take_reply (c, MAILSMTP_ERROR_STREAM, "EHLO");
  if (code == 250)
    {
      mailesmtp_parse_ehlo (c->smtp);
      return code;
    }
  if (code < 500 || code > 599)
    return code;
  c->smtp->response_code = 0;
  if (mailsmtp_send_command (c->smtp, helo) == -1)
    return smtp_send_take_reply (c, MAILSMTP_ERROR_STREAM, "HELO");
  mailsmtp_read_response (c->smtp);
  code = smtp_send_take_reply (c, MAILSMTP_ERROR_STREAM, "HELO");
  if (code == 250)
    {
      /* what mailsmtp_helo() records: no extensions */
      c->smtp->esmtp = 0;
      c->smtp->auth = MAILSMTP_AUTH_NOT_CHECKED;
    }
  return code;
}

static void
smtp_send_ssl_setup (struct mailstream_ssl_context *ssl, void *data)
{
  smtp_send_ctx *c = data;
  g_autoptr (GInetAddress) literal = g_inet_address_new_from_string (c->host);

  /* RFC 6066 §3: no SNI for an address literal */
  if (literal == NULL)
    mailstream_ssl_set_server_name (ssl, c->host);
}

/* The server's chain against the configured CA or the system store, host
 * name included: libetpan checks nothing itself.  */
static gboolean
smtp_send_verify (smtp_send_ctx *c, GError **error)
{
  g_autoptr (GTlsDatabase) db = NULL;
  GError *local = NULL;

  if (c->cfg->ca_file != NULL)
    db = g_tls_file_database_new (c->cfg->ca_file, &local);
  else
    db = g_tls_backend_get_default_database (g_tls_backend_get_default ());
  if (local != NULL)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  return etpan_tls_verify (c->smtp->stream, db, c->host,
                           (guint16) c->cfg->port, error);
}

/* STARTTLS (RFC 3207), verification, EHLO again (§4.2: forget what was
 * said before TLS).  */
static smtp_send_result
smtp_send_starttls (smtp_send_ctx *c)
{
  g_autoptr (GError) error = NULL;
  int r, code;

  smtp_send_set_phase (c, SMTP_SEND_PHASE_STARTTLS);
  if (!(c->smtp->esmtp & MAILSMTP_ESMTP_STARTTLS))
    {
      /* no silent fallback to plaintext */
      smtp_send_local (c, "the smarthost does not offer STARTTLS");
      return SMTP_SEND_TEMPFAIL;
    }
  c->smtp->response_code = 0;
  r = mailsmtp_socket_starttls_with_callback (c->smtp, smtp_send_ssl_setup,
                                              c);
  if (r == MAILSMTP_ERROR_SSL)
    {
      smtp_send_local (c, "TLS handshake with the smarthost failed");
      return SMTP_SEND_TEMPFAIL;
    }
  if (r != MAILSMTP_NO_ERROR)
    {
      code = smtp_send_take_reply (c, r, "STARTTLS");
      if (code == 220)   /* the reply was fine, the rest was not */
        smtp_send_local (c, "STARTTLS failed (%s)", mailsmtp_strerror (r));
      return SMTP_SEND_TEMPFAIL;
    }
  /* Bytes the server sent after its 220, before the handshake, would be
   * read as if they had come over TLS (CVE-2011-0411 class).  */
  if (c->smtp->stream == NULL || c->smtp->stream->read_buffer_len != 0)
    {
      smtp_send_local (c, "the smarthost sent plaintext after its reply to"
                          " STARTTLS");
      return SMTP_SEND_TEMPFAIL;
    }
  smtp_send_set_phase (c, SMTP_SEND_PHASE_VERIFY);
  if (!smtp_send_verify (c, &error))
    {
      smtp_send_local (c, "%s", error->message);
      return SMTP_SEND_TEMPFAIL;
    }
  c->tls = TRUE;
  if (smtp_send_hello (c) != 250)
    return SMTP_SEND_TEMPFAIL;
  return SMTP_SEND_OK;
}

static smtp_send_result
smtp_send_auth (smtp_send_ctx *c)
{
  const smtp_send_config *cfg = c->cfg;
  const char *mech, *authzid;
  int r;

  smtp_send_set_phase (c, SMTP_SEND_PHASE_AUTH);
  if (!c->tls && !smtp_send_host_is_loopback (cfg->host))
    {
      smtp_send_local (c, "no AUTH without TLS to a host that is not"
                          " loopback");
      return SMTP_SEND_TEMPFAIL;
    }
  if (c->smtp->auth & MAILSMTP_AUTH_PLAIN)
    {
      mech = "PLAIN";
      authzid = "";        /* "\0user\0password": no separate identity */
    }
  else if (c->smtp->auth & MAILSMTP_AUTH_LOGIN)
    {
      mech = "LOGIN";
      authzid = cfg->user; /* Cyrus' LOGIN sends this one as the name */
    }
  else
    {
      smtp_send_local (c, "the smarthost offers neither AUTH PLAIN nor"
                          " AUTH LOGIN");
      return SMTP_SEND_TEMPFAIL;
    }
  c->smtp->response_code = 0;
  r = mailesmtp_auth_sasl (c->smtp, mech, c->host, NULL, NULL, authzid,
                           cfg->user, cfg->password, NULL);
  if (r == MAILSMTP_NO_ERROR)
    return SMTP_SEND_OK;
  if (c->smtp->response_code == 0 && r != MAILSMTP_ERROR_STREAM)
    /* Cyrus SASL failed before anything was sent */
    smtp_send_local (c, "AUTH %s could not start (%s; is libsasl2-modules"
                        " installed?)", mech, mailsmtp_strerror (r));
  else
    smtp_send_take_reply (c, r, "AUTH");
  /* the smarthost refusing our credentials says nothing about the
   * message */
  return SMTP_SEND_TEMPFAIL;
}

/* The reply to MAIL, RCPT or DATA: @want's class goes on, anything else
 * ends the transaction.  */
static smtp_send_result
smtp_send_step (smtp_send_ctx *c, int r, const char *what, int want)
{
  int code = smtp_send_take_reply (c, r, what);

  if (code / 100 == want / 100)
    return SMTP_SEND_OK;
  if (code / 100 == 2 || code / 100 == 3)
    return SMTP_SEND_TEMPFAIL;   /* a positive reply we did not expect */
  return smtp_send_class (code);
}

static smtp_send_result
smtp_send_transaction (smtp_send_ctx *c, const char *mail_from,
                       const char *rcpt, GBytes *raw)
{
  gsize n;
  const char *p = g_bytes_get_data (raw, &n);
  smtp_send_result res;
  int r;

  /* libetpan ends the data with "\r\n.\r\n" whatever the last byte: one
   * final line end of ours would become an extra empty line.  */
  if (n > 0 && p[n - 1] == '\n')
    n--;
  if (n > 0 && p[n - 1] == '\r')
    n--;

  smtp_send_set_phase (c, SMTP_SEND_PHASE_MAIL);
  c->smtp->response_code = 0;
  /* RET=HDRS when the server offers DSN: a bounce carries the headers,
   * never a resident's text */
  r = mailesmtp_mail_size (c->smtp, mail_from, 0, NULL,
                           n ? mailstream_get_data_crlf_size (p, n) + 2 : 2);
  res = smtp_send_step (c, r, "MAIL", 250);
  if (res != SMTP_SEND_OK)
    return res;

  smtp_send_set_phase (c, SMTP_SEND_PHASE_RCPT);
  c->smtp->response_code = 0;
  r = mailsmtp_rcpt (c->smtp, rcpt);
  res = smtp_send_step (c, r, "RCPT", 250);
  if (res != SMTP_SEND_OK)
    return res;

  smtp_send_set_phase (c, SMTP_SEND_PHASE_DATA);
  c->smtp->response_code = 0;
  r = mailsmtp_data (c->smtp);
  res = smtp_send_step (c, r, "DATA", 354);
  if (res != SMTP_SEND_OK)
    return res;

  /* Line ends to CRLF and leading dots doubled by libetpan (RFC 5321
   * §4.5.2; SECURITY-TESTS 8).  */
  smtp_send_set_phase (c, SMTP_SEND_PHASE_DOT);
  c->smtp->response_code = 0;
  r = mailsmtp_data_message (c->smtp, p, n);
  return smtp_send_step (c, r, "the end of data", 250);
}

/* ---------------------------------------------------------------- main */

static smtp_send_result
smtp_send_check (smtp_send_ctx *c, const char *mail_from, const char *rcpt)
{
  const smtp_send_config *cfg = c->cfg;

  smtp_send_set_phase (c, SMTP_SEND_PHASE_CHECK);
  if (!smtp_send_address_ok (mail_from, TRUE))
    {
      smtp_send_local (c, "sender address refused (a control character,"
                          " space, '<', '>', 8-bit byte, or too long)");
      return SMTP_SEND_PERMFAIL;
    }
  if (!smtp_send_address_ok (rcpt, FALSE))
    {
      smtp_send_local (c, "recipient address refused (empty, a control"
                          " character, space, '<', '>', 8-bit byte, or too"
                          " long)");
      return SMTP_SEND_PERMFAIL;
    }
  if (!smtp_send_name_ok (cfg->host, "_"))
    {
      smtp_send_local (c, "no valid smarthost configured");
      return SMTP_SEND_TEMPFAIL;
    }
  if (cfg->port == 0 || cfg->port > 65535)
    {
      smtp_send_local (c, "smarthost port out of range");
      return SMTP_SEND_TEMPFAIL;
    }
  if (!cfg->starttls && !smtp_send_host_is_loopback (cfg->host))
    {
      smtp_send_local (c, "plaintext SMTP is allowed only to a loopback"
                          " smarthost; STARTTLS is required for %s",
                       cfg->host);
      return SMTP_SEND_TEMPFAIL;
    }
  if (!smtp_send_name_ok (cfg->helo, ""))
    {
      smtp_send_local (c, "no valid EHLO name configured");
      return SMTP_SEND_TEMPFAIL;
    }
  if (cfg->user != NULL && cfg->password != NULL
      && strlen (cfg->user) + strlen (cfg->password) > SMTP_SEND_AUTH_MAX)
    {
      smtp_send_local (c, "smarthost user name and password longer than %d"
                          " bytes", SMTP_SEND_AUTH_MAX);
      return SMTP_SEND_TEMPFAIL;
    }
  return SMTP_SEND_OK;
}

static smtp_send_result
smtp_send_run (smtp_send_ctx *c, const char *mail_from, const char *rcpt,
               GBytes *raw)
{
  const smtp_send_config *cfg = c->cfg;
  smtp_send_result res;

  c->host = smtp_send_bare_host (cfg->host);
  c->timeout_s = cfg->timeout_s == 0 ? SMTP_SEND_TIMEOUT_DEFAULT_S
                                     : MIN (cfg->timeout_s,
                                            SMTP_SEND_TIMEOUT_MAX_S);
  c->smtp = mailsmtp_new (0, NULL);
  if (c->smtp == NULL)
    g_error ("mailsmtp_new: out of memory");
  mailsmtp_set_timeout (c->smtp, c->timeout_s);   /* the TLS handshake */

  if (!smtp_send_connect (c))
    return SMTP_SEND_TEMPFAIL;   /* whatever the greeting: not about us */
  if (smtp_send_hello (c) != 250)
    return SMTP_SEND_TEMPFAIL;
  if (cfg->starttls)
    {
      res = smtp_send_starttls (c);
      if (res != SMTP_SEND_OK)
        return res;
    }
  if (cfg->user != NULL && cfg->password != NULL)
    {
      res = smtp_send_auth (c);
      if (res != SMTP_SEND_OK)
        return res;
    }
  res = smtp_send_transaction (c, mail_from, rcpt, raw);
  if (res == SMTP_SEND_OK)
    smtp_send_set_phase (c, SMTP_SEND_PHASE_DONE);
  return res;
}

smtp_send_result
smtp_send (const smtp_send_config *cfg, const char *mail_from,
           const char *rcpt, GBytes *raw, char **reply)
{
  smtp_send_ctx c = { 0 };
  smtp_send_result res;
  const char *host;

  g_return_val_if_fail (cfg != NULL, SMTP_SEND_TEMPFAIL);
  g_return_val_if_fail (raw != NULL, SMTP_SEND_TEMPFAIL);

  c.cfg = cfg;
  res = smtp_send_check (&c, mail_from, rcpt);
  if (res == SMTP_SEND_OK)
    res = smtp_send_run (&c, mail_from, rcpt, raw);
  if (c.smtp != NULL)
    mailsmtp_free (c.smtp);   /* QUIT, if still connected, and close */

  host = smtp_send_name_ok (cfg->host, "_") ? cfg->host : "-";
  if (res == SMTP_SEND_OK)
    g_info ("event=smtp-sent host=%s port=%u tls=%d code=%d", host,
            cfg->port, c.tls, c.code);
  else
    g_message ("event=smtp-send-failed host=%s port=%u phase=%s result=%s"
               " code=%d tls=%d", host, cfg->port,
               smtp_send_phase_names[c.phase], smtp_send_result_name (res),
               c.code, c.tls);
  g_free (c.host);
  if (reply != NULL)
    *reply = g_steal_pointer (&c.reply);
  g_free (c.reply);
  return res;
}
