/*
 * test_smtp_send.c - one message to a smarthost, against a private
 * responder on loopback.
 *
 * Covers: addresses with CR, LF, '<', '>', spaces, 8-bit bytes refused
 * before any connection (SECURITY-TESTS 49), plaintext to a host that is
 * not loopback refused; exact DATA bytes on the wire: bare LF / bare CR /
 * CRLF all become CRLF and leading dots are doubled, so "\n.\n", "\r.\r"
 * and the like in the text never end DATA early and the responder sees
 * exactly one message and one RCPT (SECURITY-TESTS 8); "MAIL FROM:<>" for
 * the null sender; 2xx/4xx/5xx replies at each step mapped to OK /
 * TEMPFAIL / PERMFAIL with the last reply line kept, cleaned and bounded;
 * connection refused and a silent server time out as TEMPFAIL; EHLO
 * refused falls back to HELO; STARTTLS required but not offered, an
 * untrusted or wrong-host certificate and plaintext injected after the
 * 220 to STARTTLS all end as TEMPFAIL with neither AUTH nor MAIL sent;
 * AUTH PLAIN and LOGIN after TLS, the credentials exactly as configured.
 *
 * The responder is a thread on a loopback socket that answers one
 * connection from a script and records every command line and the raw
 * DATA bytes.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>

#include "outbound/smtp_send.h"

/* Test-only certificates (valid 2000-2999), EC P-256, self-signed:
 * A for IP:127.0.0.1 and DNS:localhost, B for DNS:smtp.example.org.  */
static const char CERT_A[] =
  "-----BEGIN CERTIFICATE-----\n"
  "MIIBazCCARGgAwIBAgIUSdq0gGZfA0Oat0lpoBZaCgrgXxgwCgYIKoZIzj0EAwIw\n"
  "FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTAwMDEwMTAwMDAwMFoYDzI5OTkxMjMx\n"
  "MDAwMDAwWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
  "PQMBBwNCAATrqRWcq2R5Z9k+8ERMmBhhTPzTvGfez0hcXQ9CWgqiehKkrZJ1GpRU\n"
  "Z/CHNhzakbNh0Q2jKxLphYfvReFgUNIxoz8wPTAaBgNVHREEEzARhwR/AAABggls\n"
  "b2NhbGhvc3QwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAoQwCgYIKoZI\n"
  "zj0EAwIDSAAwRQIhAJ8yMKtd7h4+m6iTS+Ad5h0DE25hYGlp2mgcfD3Qda+7AiBA\n"
  "b8sPYQAaVoquEAKPZ6Vjg872TOt40DsLGoiUzBzKtg==\n"
  "-----END CERTIFICATE-----\n";
static const char KEY_A[] =
  "-----BEGIN PRIVATE KEY-----\n"
  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg371dCzWVbivuLoOW\n"
  "pZ+xfrHsj5AbP2SN4AI1CMPEUYGhRANCAATrqRWcq2R5Z9k+8ERMmBhhTPzTvGfe\n"
  "z0hcXQ9CWgqiehKkrZJ1GpRUZ/CHNhzakbNh0Q2jKxLphYfvReFgUNIx\n"
  "-----END PRIVATE KEY-----\n";
static const char CERT_B[] =
  "-----BEGIN CERTIFICATE-----\n"
  "MIIBezCCASCgAwIBAgIULs2J0F7if1mTY7SiP3rNoWu1+S4wCgYIKoZIzj0EAwIw\n"
  "GzEZMBcGA1UEAwwQc210cC5leGFtcGxlLm9yZzAgFw0wMDAxMDEwMDAwMDBaGA8y\n"
  "OTk5MTIzMTAwMDAwMFowGzEZMBcGA1UEAwwQc210cC5leGFtcGxlLm9yZzBZMBMG\n"
  "ByqGSM49AgEGCCqGSM49AwEHA0IABFooE2VnAx/1XqGop2DKbHEVA9/q6Qy+cJjX\n"
  "vBdZv7r2Ym5G2QUYDL229PM3N/QDKvACSSAApB6z0V3BxOME7X6jQDA+MBsGA1Ud\n"
  "EQQUMBKCEHNtdHAuZXhhbXBsZS5vcmcwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8B\n"
  "Af8EBAMCAoQwCgYIKoZIzj0EAwIDSQAwRgIhALh1FctC04F9X+Yd7mtfJjBqc44M\n"
  "MjQA52zwxcyikEygAiEA1PwMiQPW2A6dj7n+kQTkHbFICbnquAAwNcU5SACXWTQ=\n"
  "-----END CERTIFICATE-----\n";
static const char KEY_B[] =
  "-----BEGIN PRIVATE KEY-----\n"
  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5Xhf1Y4h+xDr1rvX\n"
  "WpyWFzoTF4plU5GIW+M8wClL5wWhRANCAARaKBNlZwMf9V6hqKdgymxxFQPf6ukM\n"
  "vnCY17wXWb+69mJuRtkFGAy9tvTzNzf0AyrwAkkgAKQes9FdwcTjBO1+\n"
  "-----END PRIVATE KEY-----\n";

#define FROM "sender@council.example"
#define RCPT "resident@example.org"

/* ------------------------------------------------------------ responder */

typedef struct {
  /* script; NULL replies take the defaults */
  const char *greeting;
  const char *ehlo_reply;       /* the whole reply instead of ours */
  const char *extensions;       /* extra EHLO lines, "\r\n"-separated */
  gboolean starttls;            /* offer and do STARTTLS */
  const char *cert, *key;
  gboolean inject;              /* plaintext after the 220 to STARTTLS */
  const char *auth;             /* offered mechanisms; NULL: no AUTH */
  const char *auth_reply;
  const char *mail_reply, *rcpt_reply, *data_reply, *dot_reply;
  gboolean silent;              /* accept, never answer */
  /* record */
  GPtrArray *commands;          /* char *, CRLF removed */
  GByteArray *wire;             /* DATA bytes as sent, terminator removed */
  guint messages;
  GBytes *auth_plain;           /* decoded AUTH PLAIN response */
  char *login_user, *login_pass;
  /* plumbing */
  GSocket *listener;
  guint16 port;
  GThread *thread;
  GIOStream *io;
  GByteArray *in;
  gboolean tls;
} responder;

static void
rsp_send (responder *r, const char *text)
{
  g_autofree char *line = g_strconcat (text, "\r\n", NULL);

  g_output_stream_write_all (g_io_stream_get_output_stream (r->io), line,
                             strlen (line), NULL, NULL, NULL);
}

static gboolean
rsp_fill (responder *r)
{
  guint8 buf[4096];
  gssize n = g_input_stream_read (g_io_stream_get_input_stream (r->io), buf,
                                  sizeof buf, NULL, NULL);

  if (n <= 0)
    return FALSE;
  g_byte_array_append (r->in, buf, n);
  return TRUE;
}

static gssize
rsp_find (GByteArray *a, const char *needle, gsize from)
{
  gsize m = strlen (needle);

  for (gsize i = from; i + m <= a->len; i++)
    if (memcmp (a->data + i, needle, m) == 0)
      return i;
  return -1;
}

/* The next command line without its CRLF; NULL at the end.  */
static char *
rsp_line (responder *r)
{
  for (;;)
    {
      gssize at = rsp_find (r->in, "\r\n", 0);
      if (at >= 0)
        {
          char *line = g_strndup ((const char *) r->in->data, at);
          g_byte_array_remove_range (r->in, 0, at + 2);
          return line;
        }
      if (!rsp_fill (r))
        return NULL;
    }
}

/* DATA up to "\r\n.\r\n" (RFC 5321 §4.1.1.4: only that ends it) into
 * r->wire, the CRLF before the dot included.  */
static gboolean
rsp_data (responder *r)
{
  for (;;)
    {
      gssize at;

      if (r->in->len >= 3 && memcmp (r->in->data, ".\r\n", 3) == 0)
        {
          g_byte_array_remove_range (r->in, 0, 3);
          return TRUE;
        }
      at = rsp_find (r->in, "\r\n.\r\n", 0);
      if (at >= 0)
        {
          g_byte_array_append (r->wire, r->in->data, at + 2);
          g_byte_array_remove_range (r->in, 0, at + 5);
          return TRUE;
        }
      if (!rsp_fill (r))
        return FALSE;
    }
}

static gboolean
rsp_starttls (responder *r)
{
  g_autofree char *pem = g_strconcat (r->cert, r->key, NULL);
  g_autoptr (GTlsCertificate) cert = g_tls_certificate_new_from_pem (pem, -1,
                                                                    NULL);
  GIOStream *tls;

  rsp_send (r, r->inject ? "220 2.0.0 go\r\n250 injected" : "220 2.0.0 go");
  ck_assert_ptr_nonnull (cert);
  tls = g_tls_server_connection_new (r->io, cert, NULL);
  ck_assert_ptr_nonnull (tls);
  if (!g_tls_connection_handshake (G_TLS_CONNECTION (tls), NULL, NULL))
    {
      g_object_unref (tls);
      return FALSE;
    }
  g_object_unref (r->io);          /* the TLS stream holds the base */
  r->io = tls;
  r->tls = TRUE;
  return TRUE;
}

static void
rsp_ehlo (responder *r)
{
  g_autoptr (GString) s = g_string_new ("250-sink.test");

  if (r->ehlo_reply)
    {
      rsp_send (r, r->ehlo_reply);
      return;
    }
  if (r->starttls && !r->tls)
    g_string_append (s, "\r\n250-STARTTLS");
  if (r->auth)
    g_string_append_printf (s, "\r\n250-AUTH %s", r->auth);
  if (r->extensions)
    g_string_append_printf (s, "\r\n250-%s", r->extensions);
  g_string_append (s, "\r\n250-PIPELINING\r\n250 8BITMIME");
  rsp_send (r, s->str);
}

static void
rsp_auth (responder *r, const char *line)
{
  gsize n;

  if (g_str_has_prefix (line, "AUTH PLAIN "))
    {
      guchar *d = g_base64_decode (line + 11, &n);
      r->auth_plain = g_bytes_new_take (d, n);
    }
  else if (strcmp (line, "AUTH LOGIN") == 0)
    {
      g_autofree char *u = NULL, *p = NULL;
      rsp_send (r, "334 VXNlcm5hbWU6");
      u = rsp_line (r);
      rsp_send (r, "334 UGFzc3dvcmQ6");
      p = rsp_line (r);
      if (u == NULL || p == NULL)
        return;
      r->login_user = (char *) g_base64_decode (u, &n);
      r->login_user = g_realloc (r->login_user, n + 1);
      r->login_user[n] = '\0';
      r->login_pass = (char *) g_base64_decode (p, &n);
      r->login_pass = g_realloc (r->login_pass, n + 1);
      r->login_pass[n] = '\0';
    }
  rsp_send (r, r->auth_reply ? r->auth_reply : "235 2.7.0 ok");
}

static gpointer
rsp_thread (gpointer data)
{
  responder *r = data;
  GSocket *s = g_socket_accept (r->listener, NULL, NULL);
  char *line;

  if (s == NULL)
    return NULL;
  r->io = G_IO_STREAM (g_socket_connection_factory_create_connection (s));
  g_object_unref (s);
  if (r->silent)
    {
      while (rsp_fill (r))
        ;
      goto out;
    }
  rsp_send (r, r->greeting ? r->greeting : "220 sink.test ESMTP");
  while ((line = rsp_line (r)) != NULL)
    {
      g_ptr_array_add (r->commands, line);
      if (g_str_has_prefix (line, "EHLO "))
        rsp_ehlo (r);
      else if (g_str_has_prefix (line, "HELO "))
        rsp_send (r, "250 sink.test");
      else if (strcmp (line, "STARTTLS") == 0 && r->starttls && !r->tls)
        {
          if (!rsp_starttls (r))
            break;
        }
      else if (g_str_has_prefix (line, "AUTH ") && r->auth)
        rsp_auth (r, line);
      else if (g_str_has_prefix (line, "MAIL FROM:"))
        rsp_send (r, r->mail_reply ? r->mail_reply : "250 2.1.0 ok");
      else if (g_str_has_prefix (line, "RCPT TO:"))
        rsp_send (r, r->rcpt_reply ? r->rcpt_reply : "250 2.1.5 ok");
      else if (strcmp (line, "DATA") == 0)
        {
          const char *go = r->data_reply ? r->data_reply : "354 go ahead";
          rsp_send (r, go);
          if (go[0] != '3')
            continue;
          if (!rsp_data (r))
            break;
          r->messages++;
          rsp_send (r, r->dot_reply ? r->dot_reply
                                    : "250 2.0.0 Ok: queued as 4F2A");
        }
      else if (strcmp (line, "QUIT") == 0)
        {
          rsp_send (r, "221 2.0.0 bye");
          break;
        }
      else
        rsp_send (r, "500 5.5.2 unrecognised command");
    }
out:
  g_io_stream_close (r->io, NULL, NULL);
  g_clear_object (&r->io);
  return NULL;
}

static GSocket *
listener_new (gboolean listen, guint16 *port)
{
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (
      G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) sa = g_inet_socket_address_new (lo, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  GSocket *s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                             G_SOCKET_PROTOCOL_TCP, NULL);

  ck_assert_ptr_nonnull (s);
  ck_assert (g_socket_bind (s, sa, TRUE, NULL));
  if (listen)
    ck_assert (g_socket_listen (s, NULL));
  bound = g_socket_get_local_address (s, NULL);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return s;
}

static void
rsp_start (responder *r)
{
  r->commands = g_ptr_array_new_with_free_func (g_free);
  r->wire = g_byte_array_new ();
  r->in = g_byte_array_new ();
  r->listener = listener_new (TRUE, &r->port);
  r->thread = g_thread_new ("responder", rsp_thread, r);
}

static void
rsp_join (responder *r)
{
  g_thread_join (r->thread);
  g_object_unref (r->listener);
}

static void
rsp_free (responder *r)
{
  g_ptr_array_unref (r->commands);
  g_byte_array_unref (r->wire);
  g_byte_array_unref (r->in);
  if (r->auth_plain)
    g_bytes_unref (r->auth_plain);
  g_free (r->login_user);
  g_free (r->login_pass);
}

static void
assert_commands (responder *r, const char *const *want)
{
  guint n = g_strv_length ((char **) want);

  for (guint i = 0; i < MIN (n, r->commands->len); i++)
    ck_assert_str_eq (g_ptr_array_index (r->commands, i), want[i]);
  ck_assert_uint_eq (r->commands->len, n);
}

static smtp_send_config
config_plain (guint16 port)
{
  smtp_send_config cfg = {
    .host = (char *) "127.0.0.1", .port = port, .starttls = FALSE,
    .helo = (char *) "test.example", .timeout_s = 10,
  };
  return cfg;
}

static smtp_send_result
send_text (const smtp_send_config *cfg, const char *from, const char *to,
           const char *p, gsize n, char **reply)
{
  g_autoptr (GBytes) raw = g_bytes_new (p, n);

  return smtp_send (cfg, from, to, raw, reply);
}

#define MSG "Subject: t\r\n\r\nhello\r\n"

/* -------------------------------------------------------- no network */

static const struct {
  const char *from, *rcpt;
} bad_addresses[] = {
  { "a@x.example\r\nRCPT TO:<evil@x.example>", RCPT },
  { FROM, "a@x.example\r\nRCPT TO:<evil@x.example>" },
  { FROM, "a@x.example\n" },
  { FROM, "a@x.example\rDATA" },
  { FROM, "<a@x.example>" },
  { FROM, "a@x.example> NOTIFY=NEVER" },
  { FROM, "a b@x.example" },
  { FROM, "a\t@x.example" },
  { FROM, "" },
  { FROM, "\xc3\xa9@x.example" },
  { "<>", RCPT },
  { "a@x.example\x7f", RCPT },
  { FROM, NULL },                  /* 255 bytes: built below */
};

START_TEST (test_bad_address_refused)
{
  guint16 port;
  g_autoptr (GSocket) l = listener_new (TRUE, &port);
  smtp_send_config cfg = config_plain (port);
  g_autofree char *reply = NULL;
  g_autofree char *long_rcpt = NULL;
  const char *rcpt = bad_addresses[_i].rcpt;

  if (rcpt == NULL)
    {
      long_rcpt = g_strnfill (255, 'a');
      long_rcpt[200] = '@';
      rcpt = long_rcpt;
    }
  ck_assert_int_eq (send_text (&cfg, bad_addresses[_i].from, rcpt, MSG,
                               strlen (MSG), &reply),
                    SMTP_SEND_PERMFAIL);
  ck_assert (g_str_has_prefix (reply, "local: "));
  ck_assert (strchr (reply, '\r') == NULL && strchr (reply, '\n') == NULL);
  /* nothing connected */
  ck_assert_uint_eq (g_socket_condition_check (l, G_IO_IN), 0);
}
END_TEST

START_TEST (test_longest_address_accepted)
{
  responder r = { 0 };
  g_autofree char *reply = NULL;
  g_autofree char *rcpt = g_strnfill (254, 'a');
  g_autofree char *want = NULL;
  smtp_send_config cfg;

  rcpt[200] = '@';
  want = g_strdup_printf ("RCPT TO:<%s>", rcpt);
  rsp_start (&r);
  cfg = config_plain (r.port);
  ck_assert_int_eq (send_text (&cfg, FROM, rcpt, MSG, strlen (MSG), &reply),
                    SMTP_SEND_OK);
  rsp_join (&r);
  ck_assert_str_eq (g_ptr_array_index (r.commands, 2), want);
  ck_assert_str_eq (g_ptr_array_index (r.commands, 3), "DATA");
  rsp_free (&r);
}
END_TEST

static const struct {
  const char *host;
  gboolean loopback;
} hosts[] = {
  { "127.0.0.1", TRUE }, { "127.5.6.7", TRUE }, { "::1", TRUE },
  { "[::1]", TRUE }, { "localhost", TRUE }, { "LocalHost", TRUE },
  { "192.0.2.1", FALSE }, { "10.0.0.1", FALSE }, { "0.0.0.0", FALSE },
  { "::2", FALSE }, { "mail.example.org", FALSE },
  { "localhost.example.org", FALSE }, { "127.0.0.1.example.org", FALSE },
  { "[127.0.0.1", FALSE },
};

START_TEST (test_plaintext_only_to_loopback)
{
  smtp_send_config cfg = config_plain (25);
  g_autofree char *reply = NULL;

  ck_assert_int_eq (smtp_send_host_is_loopback (hosts[_i].host),
                    hosts[_i].loopback);
  if (hosts[_i].loopback)
    return;
  /* refused before any connection: 192.0.2.1 is TEST-NET-1, never reached */
  cfg.host = (char *) hosts[_i].host;
  ck_assert_int_eq (send_text (&cfg, FROM, RCPT, MSG, strlen (MSG), &reply),
                    SMTP_SEND_TEMPFAIL);
  ck_assert (g_str_has_prefix (reply, "local: plaintext SMTP is allowed only"
                                      " to a loopback smarthost"));
}
END_TEST

START_TEST (test_bad_config_refused)
{
  guint16 port;
  g_autoptr (GSocket) l = listener_new (TRUE, &port);
  smtp_send_config cfg = config_plain (port);
  g_autofree char *reply = NULL;
  g_autofree char *big = g_strnfill (361, 'p');

  switch (_i)
    {
    case 0:
      cfg.helo = (char *) "test.example\r\nMAIL FROM:<x@y>";
      break;
    case 1:
      cfg.helo = (char *) "";
      break;
    case 2:
      cfg.port = 0;
      break;
    case 3:
      cfg.host = (char *) "127.0.0.1\r\n";
      break;
    case 4:
      cfg.user = (char *) "";
      cfg.password = big;   /* would be cut in libetpan's buffer */
      break;
    }
  ck_assert_int_eq (send_text (&cfg, FROM, RCPT, MSG, strlen (MSG), &reply),
                    SMTP_SEND_TEMPFAIL);
  ck_assert (g_str_has_prefix (reply, "local: "));
  ck_assert_uint_eq (g_socket_condition_check (l, G_IO_IN), 0);
}
END_TEST

/* ------------------------------------------------------ exact DATA bytes */

#define B(s) { s, sizeof (s) - 1 }
static const struct {
  const char *p;
  gsize n;
} bodies[] = {
  B ("Subject: s1\r\n\r\nhello\r\n.\r\nRCPT TO:<x@evil.example>\r\n"),
  B ("Subject: s2\n\nhello\n.\nRCPT TO:<x@evil.example>\nDATA\n"),
  B ("Subject: s3\r\n\r\nhello\r.\rRCPT TO:<x@evil.example>\r\n.\r\n"),
  B ("Subject: s4\r\n\r\nhello\n.\r\nMAIL FROM:<a@b>\r\n\r\n.\nDATA\r.\r\n"
     "x\r\n.\rX\r\n. \r\n.\0\r\n"),
  B ("Subject: s5\r\n\r\n..leading\r\n...\r\n..\r\n.x\r\n."),
  B (".\r\n"),
  B ("."),
  B (""),
  B ("\r\n"),
  B ("\n"),
  B ("a\r\nb"),
  B ("a\r\r\n\n\r"),
  B ("a\0b\r\n\0.\r\n"),
  B ("Subject: s6\n\nquoted:\n> .\n.\n\n.\n"),
};

/* What the responder must store: every line end as CRLF, a final one
 * added.  Written without looking at smtp_send.c.  */
static GByteArray *
expect_crlf (const char *p, gsize n)
{
  GByteArray *out = g_byte_array_new ();

  for (gsize i = 0; i < n; i++)
    {
      if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
        {
          g_byte_array_append (out, (const guint8 *) "\r\n", 2);
          i++;
        }
      else if (p[i] == '\r' || p[i] == '\n')
        g_byte_array_append (out, (const guint8 *) "\r\n", 2);
      else
        g_byte_array_append (out, (const guint8 *) p + i, 1);
    }
  if (out->len < 2 || memcmp (out->data + out->len - 2, "\r\n", 2) != 0)
    g_byte_array_append (out, (const guint8 *) "\r\n", 2);
  return out;
}

/* RFC 5321 §4.5.2, receiver side.  */
static GByteArray *
unstuff (const GByteArray *w)
{
  GByteArray *out = g_byte_array_new ();
  gboolean bol = TRUE;

  for (guint i = 0; i < w->len; i++)
    {
      if (bol && w->data[i] == '.')
        {
          bol = FALSE;
          continue;
        }
      g_byte_array_append (out, w->data + i, 1);
      bol = w->data[i] == '\n';
    }
  return out;
}

static guint
dot_lines (GByteArray *a)
{
  guint k = a->len > 0 && a->data[0] == '.';

  for (gssize at = rsp_find (a, "\r\n.", 0); at >= 0;
       at = rsp_find (a, "\r\n.", at + 1))
    k++;
  return k;
}

static void
check_exact (const char *p, gsize n)
{
  static const char *const want[] = {
    "EHLO test.example", "MAIL FROM:<" FROM ">", "RCPT TO:<" RCPT ">",
    "DATA", "QUIT", NULL
  };
  responder r = { 0 };
  g_autofree char *reply = NULL;
  g_autoptr (GByteArray) expect = expect_crlf (p, n);
  g_autoptr (GByteArray) got = NULL;
  smtp_send_config cfg;

  rsp_start (&r);
  cfg = config_plain (r.port);
  ck_assert_int_eq (send_text (&cfg, FROM, RCPT, p, n, &reply), SMTP_SEND_OK);
  rsp_join (&r);
  ck_assert_str_eq (reply, "250 2.0.0 Ok: queued as 4F2A");
  /* one message, one RCPT: nothing in the text became a command */
  ck_assert_uint_eq (r.messages, 1);
  assert_commands (&r, want);
  /* on the wire every CR is followed by LF and every LF preceded by CR */
  for (guint i = 0; i < r.wire->len; i++)
    {
      if (r.wire->data[i] == '\r')
        ck_assert (i + 1 < r.wire->len && r.wire->data[i + 1] == '\n');
      if (r.wire->data[i] == '\n')
        ck_assert (i > 0 && r.wire->data[i - 1] == '\r');
    }
  got = unstuff (r.wire);
  ck_assert_uint_eq (got->len, expect->len);
  ck_assert (memcmp (got->data, expect->data, got->len) == 0);
  /* and the stuffing is exactly one dot per line that starts with one */
  ck_assert_uint_eq (r.wire->len - got->len, dot_lines (expect));
  rsp_free (&r);
}

START_TEST (test_exact_bytes)
{
  check_exact (bodies[_i].p, bodies[_i].n);
}
END_TEST

/* 1 MB of hostile lines in one message.  */
START_TEST (test_exact_bytes_large)
{
  static const char *const lines[] = {
    ".", "..", "\n.\n", "\r.\r", "x\r\n.\r\nRCPT TO:<e@evil.example>",
    "plain text line", ". leading", "\r\n.\n",
  };
  g_autoptr (GString) s = g_string_new ("Subject: big\r\n\r\n");

  for (guint i = 0; s->len < 1024 * 1024; i++)
    {
      g_string_append (s, lines[i % G_N_ELEMENTS (lines)]);
      g_string_append (s, i % 3 ? "\r\n" : "\n");
    }
  check_exact (s->str, s->len);
}
END_TEST

START_TEST (test_null_sender)
{
  responder r = { 0 };
  g_autofree char *reply = NULL;
  smtp_send_config cfg;

  /* with DSN offered, libetpan adds RET=HDRS: a bounce never carries the
   * text */
  if (_i == 1)
    r.extensions = "DSN";
  rsp_start (&r);
  cfg = config_plain (r.port);
  ck_assert_int_eq (send_text (&cfg, "", RCPT, MSG, strlen (MSG), &reply),
                    SMTP_SEND_OK);
  rsp_join (&r);
  ck_assert_str_eq (g_ptr_array_index (r.commands, 1),
                    _i == 1 ? "MAIL FROM:<> RET=HDRS" : "MAIL FROM:<>");
  ck_assert_uint_eq (r.messages, 1);
  rsp_free (&r);
}
END_TEST

/* ------------------------------------------------------------- replies */

enum { AT_GREETING, AT_MAIL, AT_RCPT, AT_DATA, AT_DOT };

static const struct {
  int at;
  const char *reply;
  smtp_send_result want;
  const char *want_reply;
  guint commands;      /* how many the responder saw, QUIT included */
} replies[] = {
  { AT_RCPT, "450 4.2.0 mailbox busy", SMTP_SEND_TEMPFAIL,
    "450 4.2.0 mailbox busy", 4 },
  { AT_RCPT, "550 5.1.1 <" RCPT ">: no such user", SMTP_SEND_PERMFAIL,
    "550 5.1.1 <" RCPT ">: no such user", 4 },
  { AT_RCPT, "421 4.3.0 closing", SMTP_SEND_TEMPFAIL, "421 4.3.0 closing", 4 },
  { AT_RCPT, "354 what", SMTP_SEND_TEMPFAIL, "354 what", 4 },
  { AT_MAIL, "451 4.3.0 try later", SMTP_SEND_TEMPFAIL,
    "451 4.3.0 try later", 3 },
  { AT_MAIL, "553 5.1.8 bad sender", SMTP_SEND_PERMFAIL,
    "553 5.1.8 bad sender", 3 },
  { AT_DATA, "554 5.5.1 no valid recipients", SMTP_SEND_PERMFAIL,
    "554 5.5.1 no valid recipients", 5 },
  { AT_DATA, "451 4.3.0 later", SMTP_SEND_TEMPFAIL, "451 4.3.0 later", 5 },
  { AT_DOT, "452 4.3.1 insufficient storage", SMTP_SEND_TEMPFAIL,
    "452 4.3.1 insufficient storage", 5 },
  { AT_DOT, "552 5.3.4 too big", SMTP_SEND_PERMFAIL, "552 5.3.4 too big", 5 },
  { AT_DOT, "550-5.7.1 first line\r\n550 5.7.1 second\x1b[2J\x07 line\xff",
    SMTP_SEND_PERMFAIL, "550 5.7.1 second[2J line?", 5 },
  { AT_DOT, "hello", SMTP_SEND_TEMPFAIL, NULL, 5 },
  { AT_DOT, "250 2.0.0 ok", SMTP_SEND_OK, "250 2.0.0 ok", 5 },
  { AT_GREETING, "554 5.3.2 no service here", SMTP_SEND_TEMPFAIL,
    "554 5.3.2 no service here", 0 },
  { AT_GREETING, "421 4.3.2 busy", SMTP_SEND_TEMPFAIL, "421 4.3.2 busy", 0 },
};

START_TEST (test_reply_codes)
{
  responder r = { 0 };
  g_autofree char *reply = NULL;
  smtp_send_config cfg;

  switch (replies[_i].at)
    {
    case AT_GREETING:
      r.greeting = replies[_i].reply;
      break;
    case AT_MAIL:
      r.mail_reply = replies[_i].reply;
      break;
    case AT_RCPT:
      r.rcpt_reply = replies[_i].reply;
      break;
    case AT_DATA:
      r.data_reply = replies[_i].reply;
      break;
    case AT_DOT:
      r.dot_reply = replies[_i].reply;
      break;
    }
  rsp_start (&r);
  cfg = config_plain (r.port);
  ck_assert_int_eq (send_text (&cfg, FROM, RCPT, MSG, strlen (MSG), &reply),
                    replies[_i].want);
  rsp_join (&r);
  if (replies[_i].want_reply)
    ck_assert_str_eq (reply, replies[_i].want_reply);
  else
    ck_assert (g_str_has_prefix (reply, "local: no reply to"));
  /* after a refusal, the transaction stops: QUIT, nothing else */
  ck_assert_uint_eq (r.commands->len, replies[_i].commands);
  if (r.commands->len > 0)
    ck_assert_str_eq (g_ptr_array_index (r.commands, r.commands->len - 1),
                      "QUIT");
  ck_assert_uint_eq (r.messages, replies[_i].at == AT_DOT);
  rsp_free (&r);
}
END_TEST

START_TEST (test_reply_bounded)
{
  responder r = { 0 };
  g_autofree char *reply = NULL;
  g_autofree char *big = g_strnfill (5000, 'A');
  g_autofree char *dot = g_strconcat ("250 2.0.0 ", big, NULL);
  smtp_send_config cfg;

  r.dot_reply = dot;
  rsp_start (&r);
  cfg = config_plain (r.port);
  ck_assert_int_eq (send_text (&cfg, FROM, RCPT, MSG, strlen (MSG), &reply),
                    SMTP_SEND_OK);
  rsp_join (&r);
  ck_assert_uint_eq (strlen (reply), SMTP_SEND_REPLY_MAX);
  ck_assert (g_str_has_prefix (reply, "250 2.0.0 AAAA"));
  ck_assert (g_str_has_suffix (reply, "..."));
  rsp_free (&r);
}
END_TEST

START_TEST (test_connection_refused)
{
  guint16 port;
  g_autoptr (GSocket) closed = listener_new (FALSE, &port); /* not listening */
  smtp_send_config cfg = config_plain (port);
  g_autofree char *reply = NULL;

  ck_assert_int_eq (send_text (&cfg, FROM, RCPT, MSG, strlen (MSG), &reply),
                    SMTP_SEND_TEMPFAIL);
  ck_assert (g_str_has_prefix (reply, "local: cannot connect"));
}
END_TEST

/* A server that accepts and never speaks: libetpan's own socket connect
 * would wait for mailstream_network_delay (5 minutes), beyond this test
 * case's timeout.  */
START_TEST (test_silent_server_times_out)
{
  responder r = { .silent = TRUE };
  g_autofree char *reply = NULL;
  smtp_send_config cfg;

  rsp_start (&r);
  cfg = config_plain (r.port);
  cfg.timeout_s = 1;
  ck_assert_int_eq (send_text (&cfg, FROM, RCPT, MSG, strlen (MSG), &reply),
                    SMTP_SEND_TEMPFAIL);
  rsp_join (&r);
  ck_assert (g_str_has_prefix (reply, "local: no reply to the connection"));
  rsp_free (&r);
}
END_TEST

START_TEST (test_helo_fallback)
{
  static const char *const want[] = {
    "EHLO test.example", "HELO test.example", "MAIL FROM:<" FROM ">",
    "RCPT TO:<" RCPT ">", "DATA", "QUIT", NULL
  };
  responder r = { .ehlo_reply = "502 5.5.1 EHLO not implemented" };
  g_autofree char *reply = NULL;
  smtp_send_config cfg;

  rsp_start (&r);
  cfg = config_plain (r.port);
  ck_assert_int_eq (send_text (&cfg, FROM, RCPT, MSG, strlen (MSG), &reply),
                    SMTP_SEND_OK);
  rsp_join (&r);
  assert_commands (&r, want);
  rsp_free (&r);
}
END_TEST

START_TEST (test_plain_auth_to_loopback)
{
  responder r = { .auth = "LOGIN PLAIN" };
  g_autofree char *reply = NULL;
  smtp_send_config cfg;

  rsp_start (&r);
  cfg = config_plain (r.port);
  cfg.user = (char *) "outbox";
  cfg.password = (char *) "s3cret";
  ck_assert_int_eq (send_text (&cfg, FROM, RCPT, MSG, strlen (MSG), &reply),
                    SMTP_SEND_OK);
  rsp_join (&r);
  ck_assert_ptr_nonnull (r.auth_plain);
  ck_assert_uint_eq (g_bytes_get_size (r.auth_plain), 14);
  ck_assert (memcmp (g_bytes_get_data (r.auth_plain, NULL),
                     "\0outbox\0s3cret", 14) == 0);
  rsp_free (&r);
}
END_TEST

/* ----------------------------------------------------------------- TLS */

enum { CA_A, CA_B, CA_SYSTEM };

static const struct {
  const char *name;
  const char *cert, *key;
  int ca;
  const char *auth;            /* offered; credentials always configured */
  const char *auth_reply;
  gboolean offer_starttls, inject;
  smtp_send_result want;
  const char *want_reply;      /* prefix */
  const char *const commands[9];
} tls_cases[] = {
  { "plain", CERT_A, KEY_A, CA_A, "PLAIN LOGIN", NULL, TRUE, FALSE,
    SMTP_SEND_OK, "250 2.0.0 Ok",
    { "EHLO test.example", "STARTTLS", "EHLO test.example",
      "AUTH PLAIN AG91dGJveABzM2NyZXQ=", "MAIL FROM:<" FROM ">",
      "RCPT TO:<" RCPT ">", "DATA", "QUIT" } },
  { "login", CERT_A, KEY_A, CA_A, "LOGIN", NULL, TRUE, FALSE, SMTP_SEND_OK,
    "250 2.0.0 Ok",
    { "EHLO test.example", "STARTTLS", "EHLO test.example", "AUTH LOGIN",
      "MAIL FROM:<" FROM ">", "RCPT TO:<" RCPT ">", "DATA", "QUIT" } },
  { "no-starttls", CERT_A, KEY_A, CA_A, "PLAIN", NULL, FALSE, FALSE,
    SMTP_SEND_TEMPFAIL, "local: the smarthost does not offer STARTTLS",
    { "EHLO test.example", "QUIT" } },
  { "unknown-ca", CERT_A, KEY_A, CA_B, "PLAIN", NULL, TRUE, FALSE,
    SMTP_SEND_TEMPFAIL, "local: certificate does not verify for 127.0.0.1",
    { "EHLO test.example", "STARTTLS", "QUIT" } },
  { "system-store", CERT_A, KEY_A, CA_SYSTEM, "PLAIN", NULL, TRUE, FALSE,
    SMTP_SEND_TEMPFAIL, "local: certificate does not verify for 127.0.0.1",
    { "EHLO test.example", "STARTTLS", "QUIT" } },
  { "wrong-host", CERT_B, KEY_B, CA_B, "PLAIN", NULL, TRUE, FALSE,
    SMTP_SEND_TEMPFAIL, "local: certificate does not verify for 127.0.0.1",
    { "EHLO test.example", "STARTTLS", "QUIT" } },
  /* "local: the smarthost sent plaintext after its reply to STARTTLS" if
   * the handshake completes; with libetpan 1.9.4 + GnuTLS it fails first
   * ("TLS handshake with the smarthost failed"): either way, no AUTH */
  { "injection", CERT_A, KEY_A, CA_A, "PLAIN", NULL, TRUE, TRUE,
    SMTP_SEND_TEMPFAIL, "local: ",
    { "EHLO test.example", "STARTTLS" } },   /* QUIT over TLS, if any */
  { "no-mechanism", CERT_A, KEY_A, CA_A, "CRAM-MD5", NULL, TRUE, FALSE,
    SMTP_SEND_TEMPFAIL, "local: the smarthost offers neither",
    { "EHLO test.example", "STARTTLS", "EHLO test.example", "QUIT" } },
  { "auth-refused", CERT_A, KEY_A, CA_A, "PLAIN",
    "535 5.7.8 authentication failed", TRUE, FALSE, SMTP_SEND_TEMPFAIL,
    "535 5.7.8 authentication failed",
    { "EHLO test.example", "STARTTLS", "EHLO test.example",
      "AUTH PLAIN AG91dGJveABzM2NyZXQ=", "QUIT" } },
};

START_TEST (test_starttls)
{
  responder r = { 0 };
  g_autofree char *reply = NULL;
  g_autofree char *ca_path = NULL;
  g_autoptr (GError) error = NULL;
  smtp_send_config cfg;
  int fd;

  if (!g_tls_backend_supports_tls (g_tls_backend_get_default ()))
    {
      fprintf (stderr, "test_starttls: no GIO TLS backend"
                       " (glib-networking); skipped\n");
      return;
    }
  r.starttls = tls_cases[_i].offer_starttls;
  r.cert = tls_cases[_i].cert;
  r.key = tls_cases[_i].key;
  r.inject = tls_cases[_i].inject;
  r.auth = tls_cases[_i].auth;
  r.auth_reply = tls_cases[_i].auth_reply;
  rsp_start (&r);
  cfg = config_plain (r.port);
  cfg.starttls = TRUE;
  cfg.user = (char *) "outbox";
  cfg.password = (char *) "s3cret";
  if (tls_cases[_i].ca != CA_SYSTEM)
    {
      const char *pem = tls_cases[_i].ca == CA_A ? CERT_A : CERT_B;
      fd = g_file_open_tmp ("test-smtp-send-XXXXXX.pem", &ca_path, &error);
      ck_assert_int_ge (fd, 0);
      ck_assert_int_eq (write (fd, pem, strlen (pem)), (ssize_t) strlen (pem));
      close (fd);
      cfg.ca_file = ca_path;
    }
  ck_assert_msg (send_text (&cfg, FROM, RCPT, MSG, strlen (MSG), &reply)
                     == tls_cases[_i].want,
                 "%s: %s", tls_cases[_i].name, reply);
  rsp_join (&r);
  if (ca_path)
    unlink (ca_path);
  ck_assert_msg (g_str_has_prefix (reply, tls_cases[_i].want_reply),
                 "%s: %s", tls_cases[_i].name, reply);
  if (tls_cases[_i].inject && r.commands->len == 3
      && strcmp (g_ptr_array_index (r.commands, 2), "QUIT") == 0)
    g_ptr_array_remove_index (r.commands, 2);
  assert_commands (&r, tls_cases[_i].commands);
  if (strcmp (tls_cases[_i].name, "login") == 0)
    {
      ck_assert_str_eq (r.login_user, "outbox");
      ck_assert_str_eq (r.login_pass, "s3cret");
    }
  ck_assert_uint_eq (r.messages, tls_cases[_i].want == SMTP_SEND_OK);
  rsp_free (&r);
}
END_TEST

static Suite *
smtp_send_suite (void)
{
  Suite *s = suite_create ("smtp_send");
  TCase *tc = tcase_create ("refusals");
  TCase *wire = tcase_create ("wire");
  TCase *tls = tcase_create ("starttls");

  tcase_add_loop_test (tc, test_bad_address_refused, 0,
                       G_N_ELEMENTS (bad_addresses));
  tcase_add_loop_test (tc, test_plaintext_only_to_loopback, 0,
                       G_N_ELEMENTS (hosts));
  tcase_add_loop_test (tc, test_bad_config_refused, 0, 5);
  suite_add_tcase (s, tc);

  tcase_set_timeout (wire, 30);
  tcase_add_test (wire, test_longest_address_accepted);
  tcase_add_loop_test (wire, test_exact_bytes, 0, G_N_ELEMENTS (bodies));
  tcase_add_test (wire, test_exact_bytes_large);
  tcase_add_loop_test (wire, test_null_sender, 0, 2);
  tcase_add_loop_test (wire, test_reply_codes, 0, G_N_ELEMENTS (replies));
  tcase_add_test (wire, test_reply_bounded);
  tcase_add_test (wire, test_connection_refused);
  tcase_add_test (wire, test_silent_server_times_out);
  tcase_add_test (wire, test_helo_fallback);
  tcase_add_test (wire, test_plain_auth_to_loopback);
  suite_add_tcase (s, wire);

  tcase_set_timeout (tls, 30);
  tcase_add_loop_test (tls, test_starttls, 0, G_N_ELEMENTS (tls_cases));
  suite_add_tcase (s, tls);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (smtp_send_suite ());
  int failed;

  /* as intaked does: a peer that hangs up must not kill the sender */
  signal (SIGPIPE, SIG_IGN);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
