/*
 * smtp_send.h - deliver one message to the configured smarthost.
 *
 * One synchronous SMTP transaction (libetpan's mailsmtp) per call, for the
 * outbox sender thread: connect, EHLO (HELO if refused), STARTTLS with the
 * certificate chain and host name verified by GIO, AUTH PLAIN/LOGIN, MAIL,
 * one RCPT, DATA, QUIT.  Nothing is kept between calls.  Thread-safe: it
 * touches no global state of ours (libetpan's SASL and TLS set-up is
 * reference-counted under its own lock).  The process must ignore SIGPIPE
 * (intaked does): a smarthost that hangs up mid-write must not kill it.
 * AUTH needs Cyrus SASL's PLAIN/LOGIN plugins (libsasl2-modules).
 */
#ifndef INTAKE_SMTP_SEND_H
#define INTAKE_SMTP_SEND_H

#include <glib.h>

typedef struct {
  char *host;            /* smarthost */
  guint port;            /* 25 / 587 / 2526 ... */
  gboolean starttls;     /* TRUE: STARTTLS required (no fallback); FALSE
                          * allowed only to loopback hosts (checked here
                          * too, and refused otherwise) */
  char *ca_file;         /* (nullable) else the system store */
  char *user, *password; /* (nullable) AUTH PLAIN/LOGIN when both set, only
                          * after TLS or to loopback */
  char *helo;            /* our host name for EHLO */
  guint timeout_s;       /* per command; 0: SMTP_SEND_TIMEOUT_DEFAULT_S */
} smtp_send_config;

typedef enum {
  SMTP_SEND_OK,
  SMTP_SEND_TEMPFAIL,
  SMTP_SEND_PERMFAIL
} smtp_send_result;

/* Send @raw (RFC 5322 bytes with CRLF or LF line ends, built by intake)
 * from envelope sender @mail_from ("" = null sender <>) to the single
 * recipient @rcpt.
 *
 * The bytes go out with every line end (CRLF, bare LF, bare CR) as CRLF and
 * every line that starts with '.' doubled (RFC 5321 §4.5.2), so nothing in
 * the text can end DATA early (SECURITY-TESTS 8); a missing final line end
 * is added.
 *
 * PERMFAIL without connecting: a sender or recipient with a byte outside
 * printable ASCII (CR, LF, space, NUL, 8-bit...), '<' or '>', longer than
 * 254 bytes (RFC 5321 §4.5.3.1.3), or an empty recipient (SECURITY-TESTS
 * 49).  TEMPFAIL without connecting: a configuration this function refuses
 * (plaintext to a host that is not loopback, a bad EHLO name, port 0,
 * credentials too long for libetpan's command buffer) - fixing the
 * configuration delivers the message.
 *
 * Otherwise TEMPFAIL for connection errors, timeouts, TLS and verification
 * failures, a smarthost without STARTTLS when it is required, failures of
 * the greeting, EHLO/HELO, STARTTLS or AUTH (they say nothing about this
 * message), and 4xx replies; PERMFAIL for 5xx replies to MAIL, RCPT, DATA
 * and the end of data; OK for 2xx to the end of data.
 *
 * @reply: (out) (optional) (transfer full): g_free.  The server's last
 * reply line, code and text ("550 5.1.1 ..."), at most
 * SMTP_SEND_REPLY_MAX bytes of printable ASCII; or "local: ..." when the
 * call failed without a reply.  For the case log; it never contains
 * message content (it may contain the addresses, as servers echo them: do
 * not put it in the system log).  */
smtp_send_result smtp_send (const smtp_send_config *cfg, const char *mail_from,
                            const char *rcpt, GBytes *raw, char **reply);

/* TRUE for "localhost" and literal loopback addresses (127.0.0.0/8, ::1,
 * bracketed or not): the only hosts plaintext SMTP may go to.  */
gboolean smtp_send_host_is_loopback (const char *host);

/* The name of a result, for logs.  */
const char *smtp_send_result_name (smtp_send_result r);

#define SMTP_SEND_REPLY_MAX 256       /* bytes of @reply, "..." included */
#define SMTP_SEND_TIMEOUT_DEFAULT_S 120
#define SMTP_SEND_TIMEOUT_MAX_S 600   /* RFC 5321 §4.5.3.2.6: 10 minutes for
                                       * the end of data */

#endif /* INTAKE_SMTP_SEND_H */
