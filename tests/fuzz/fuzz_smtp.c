/*
 * fuzz_smtp.c - libFuzzer target for the SMTP session state machine
 * (intake/smtp_session.c): what any client on the network can send.
 *
 * The first input byte picks the configuration (bare LF normalised or
 * refused, STARTTLS offered, storage low) and seeds the "shell": how the
 * rest of the input is cut into reads (1 to 256 bytes), what the store
 * answers each finished message (stored, temporary failure, no space,
 * shutting down), whether a TLS handshake succeeds, and the clock (a
 * read every few milliseconds, sometimes a jump past the deadline).
 * Small limits (512-byte lines, a 64 KiB message, 10 header lines, 3
 * recipients) so that inputs reach them.
 *
 * Checked on every output: each reply line is "DDD" then ' ' or '-' then
 * printable ASCII, ending in CRLF, with a first digit of 2 to 5; a
 * message taken has at least one recipient and a reverse path without
 * control bytes; after CLOSE the session produces nothing more.
 * Everything is freed (LeakSanitizer checks).
 *
 * Built by `make fuzz-smtp` (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "intake/smtp_session.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static smtp_rcpt_verdict
fuzz_smtp_rcpt (const char *address, gpointer user_data)
{
  const char *at = strrchr (address, '@');

  (void) user_data;
  if (at == NULL)
    return g_ascii_strcasecmp (address, "postmaster") == 0
           ? SMTP_RCPT_OK : SMTP_RCPT_UNKNOWN;
  if (g_ascii_strcasecmp (at + 1, "council.example") != 0)
    return SMTP_RCPT_RELAY;
  return g_ascii_strncasecmp (address, "foi", 3) == 0
         || g_ascii_strncasecmp (address, "enquiries", 9) == 0
         ? SMTP_RCPT_OK : SMTP_RCPT_UNKNOWN;
}

/* Every reply line well formed, or abort.  */
static void
fuzz_smtp_check_output (GBytes *out)
{
  gsize n;
  const guchar *p = out ? g_bytes_get_data (out, &n) : NULL;
  gsize i = 0;

  if (p == NULL)
    return;
  while (i < n)
    {
      gsize start = i;

      if (n - i < 6 || p[i] < '2' || p[i] > '5'
          || !g_ascii_isdigit (p[i + 1]) || !g_ascii_isdigit (p[i + 2])
          || (p[i + 3] != ' ' && p[i + 3] != '-'))
        abort ();
      for (i += 4; i < n && p[i] != '\r'; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
          abort ();
      if (i + 1 >= n || p[i + 1] != '\n' || i - start > 512)
        abort ();
      i += 2;
    }
}

static void
fuzz_smtp_check_message (const smtp_message *m)
{
  if (m == NULL || m->rcpts == NULL || m->rcpts->len == 0
      || m->mail_from == NULL || m->data == NULL)
    abort ();
  for (const guchar *q = (const guchar *) m->mail_from; *q; q++)
    if (*q < 0x20 || *q == 0x7f)
      abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  smtp_session_config cfg;
  smtp_session *s;
  GRand *rng;
  gint64 now = 1000 * G_USEC_PER_SEC;
  gsize off = 1;
  guint8 mode;
  gboolean closed = FALSE;

  if (size < 1)
    return 0;
  mode = data[0];
  smtp_session_config_init (&cfg);
  cfg.hostname = "mx.council.example";
  cfg.max_line = 512;
  cfg.max_text_line = 1000;
  cfg.max_header_bytes = 1024;
  cfg.max_header_lines = 10;
  cfg.max_message = 64 * 1024;
  cfg.max_rcpt = 3;
  cfg.max_hops = 3;
  cfg.max_errors = 5;
  cfg.timeout_s = 10;
  cfg.min_rate = 100;
  cfg.normalise_bare_lf = (mode & 1) != 0;
  cfg.tls_available = (mode & 2) != 0;
  cfg.rcpt_check = fuzz_smtp_rcpt;
  rng = g_rand_new_with_seed (mode);
  s = smtp_session_new (&cfg, now);
  smtp_session_set_storage_low (s, (mode & 4) != 0 && (mode & 8) != 0);

  for (guint steps = 0; steps < 100000 && !closed; steps++)
    {
      smtp_session_status st = smtp_session_get_status (s);
      GBytes *out = smtp_session_take_output (s);

      fuzz_smtp_check_output (out);
      if (out != NULL)
        g_bytes_unref (out);
      switch (st)
        {
        case SMTP_SESSION_MESSAGE:
          {
            smtp_message *m = smtp_session_take_message (s);
            static const smtp_store_result answers[] = {
              SMTP_STORE_OK, SMTP_STORE_OK, SMTP_STORE_OK, SMTP_STORE_TEMPFAIL,
              SMTP_STORE_NOSPACE, SMTP_STORE_SHUTDOWN,
            };

            fuzz_smtp_check_message (m);
            smtp_message_free (m);
            smtp_session_message_done (s, answers[g_rand_int_range (rng, 0, 6)],
                                       "Q123", now);
            continue;
          }
        case SMTP_SESSION_STARTTLS:
          smtp_session_tls_done (s, g_rand_int_range (rng, 0, 4) != 0, now);
          continue;
        case SMTP_SESSION_CLOSE:
          closed = TRUE;
          continue;
        case SMTP_SESSION_READ:
        default:
          break;
        }
      if (off >= size)
        break;
      {
        /* not MIN (g_rand_int_range (...), ...): it would draw twice */
        gsize n = (gsize) g_rand_int_range (rng, 1, 257);

        n = MIN (n, size - off);

        now += g_rand_int_range (rng, 0, 5000);
        if (g_rand_int_range (rng, 0, 64) == 0)
          now += 30 * G_USEC_PER_SEC;   /* a stall: the deadline may pass */
        if (smtp_session_check_deadline (s, now))
          continue;
        smtp_session_feed (s, (const char *) data + off, n, now);
        off += n;
        if (g_rand_int_range (rng, 0, 512) == 0)
          smtp_session_shutdown (s);
      }
    }
  if (closed)
    {
      /* nothing more after CLOSE, whatever is fed */
      GBytes *out;

      smtp_session_feed (s, "QUIT\r\n", 6, now);
      out = smtp_session_take_output (s);
      if (out != NULL && g_bytes_get_size (out) > 0)
        abort ();
      if (out != NULL)
        g_bytes_unref (out);
    }
  smtp_session_free (&s);
  g_rand_free (rng);
  return 0;
}
