/*
 * smtp_session.h - the SMTP server session as a pure state machine.
 *
 * Bytes in, replies and events out: no sockets, no clocks, no database.
 * The shell (smtp_server.c) reads from the socket, feeds the bytes here,
 * writes whatever output the session produced, and acts on the session's
 * status: hand a finished message to the store, start TLS, or close.
 * Time is a parameter (monotonic microseconds) so timeouts are testable.
 *
 * RFC 5321 with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152),
 * ENHANCEDSTATUSCODES (RFC 2034/3463) and STARTTLS (RFC 3207).
 * Only <CRLF>.<CRLF> ends DATA (RFC 5321 4.1.1.4; SMTP smuggling).
 * The session never relays: recipients are vetted by a callback that knows
 * the configured mailboxes.
 */
#ifndef INTAKE_SMTP_SESSION_H
#define INTAKE_SMTP_SESSION_H

#include <glib.h>

typedef struct smtp_session smtp_session;

/* What the recipient callback says of one RCPT TO address.  */
typedef enum {
  SMTP_RCPT_OK,             /* a configured mailbox: 250 2.1.5 */
  SMTP_RCPT_UNKNOWN,        /* one of our domains, no such mailbox: 550 5.1.1 */
  SMTP_RCPT_RELAY,          /* not one of our domains: 554 5.7.1 relay denied */
} smtp_rcpt_verdict;

/* @address: the path without angle brackets, validated for syntax
 * (no NUL, no control bytes, no source route, one '@', lengths checked),
 * in its original case.  */
typedef smtp_rcpt_verdict (*smtp_rcpt_check_fn) (const char *address,
                                                 gpointer user_data);

typedef struct {
  const char *hostname;        /* (transfer none) our name in 220/250 */
  gsize max_line;              /* command line incl. CRLF */
  gsize max_text_line;         /* DATA line, unstuffed, excl. CRLF */
  gsize max_header_bytes;      /* header section incl. the empty line */
  guint max_header_lines;      /* physical lines in the header section */
  gsize max_message;           /* unstuffed message bytes; SIZE announces it */
  guint max_rcpt;
  guint max_hops;              /* Received: fields */
  guint max_errors;
  guint timeout_s;             /* per-request deadline, seconds */
  guint min_rate;              /* bytes/s that extend the deadline; 0 = none */
  gboolean normalise_bare_lf;  /* FALSE: bare LF/CR in DATA -> 550 5.5.2;
                                * TRUE: stored as CRLF (never an end) */
  gboolean tls_available;      /* announce STARTTLS (until TLS is on) */
  smtp_rcpt_check_fn rcpt_check;
  gpointer rcpt_check_data;
} smtp_session_config;

/* Fill @cfg with the defaults of smtp_limits.h; hostname "localhost",
 * no TLS, a recipient check that accepts nothing.  */
void smtp_session_config_init (smtp_session_config *cfg);

/* What the shell must do next.  */
typedef enum {
  SMTP_SESSION_READ,       /* feed more input when it comes */
  SMTP_SESSION_MESSAGE,    /* a message is complete: take it, hand it to the
                            * store, answer with smtp_session_message_done();
                            * do not feed until then */
  SMTP_SESSION_STARTTLS,   /* write the output (the 220), then do the TLS
                            * handshake and call smtp_session_tls_done();
                            * do not feed until then */
  SMTP_SESSION_CLOSE,      /* write the output, then close the connection */
} smtp_session_status;

/* A finished message and its envelope.  Owned by whoever took it.  */
typedef struct {
  char *helo;              /* EHLO/HELO argument as given (printable ASCII) */
  char *mail_from;         /* reverse-path without <>, "" for the null sender */
  GPtrArray *rcpts;        /* char *, forward-paths accepted (250), in order */
  GBytes *data;            /* unstuffed message bytes, without the final . */
  gboolean tls;            /* the transaction ran under TLS */
  gboolean esmtp;          /* EHLO rather than HELO */
  gboolean body_8bit;      /* BODY=8BITMIME given */
  gboolean normalised;     /* bare LF/CR were turned into CRLF */
} smtp_message;

void smtp_message_free (smtp_message *msg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (smtp_message, smtp_message_free)

/* A store's answer to a finished message.  */
typedef enum {
  SMTP_STORE_OK,           /* committed: 250 2.0.0 Ok: queued as ID */
  SMTP_STORE_TEMPFAIL,     /* 451 4.3.0 Error: queue file write error */
  SMTP_STORE_NOSPACE,      /* 452 4.3.1 Insufficient system storage */
  SMTP_STORE_SHUTDOWN,     /* 421 4.3.2 shutting down; message not kept */
} smtp_store_result;

/* (transfer full) a new session for a client at @client_addr (printable,
 * for the log only); @cfg is copied, the strings it points to must outlive
 * the session.  @now_us: monotonic microseconds.  The greeting
 * "220 hostname ESMTP intake" is already in the output.  */
smtp_session *smtp_session_new (const smtp_session_config *cfg,
                                gint64 now_us);
void smtp_session_free (smtp_session **s);

/* Feed bytes received from the client (any split: one byte at a time gives
 * the same replies as the whole).  In status READ; in status MESSAGE the
 * bytes are kept as pipelined input (at most SMTP_LIMIT_PIPELINE_BYTES,
 * then 421 after the store's answer) and processed after
 * smtp_session_message_done().  In STARTTLS and CLOSE they are dropped.  */
void smtp_session_feed (smtp_session *s, const char *data, gsize len,
                        gint64 now_us);

smtp_session_status smtp_session_get_status (smtp_session *s);

/* (transfer full) (nullable) bytes to send to the client, NULL if none.  */
GBytes *smtp_session_take_output (smtp_session *s);

/* (transfer full) the finished message, in status MESSAGE; NULL otherwise
 * or when already taken.  */
smtp_message *smtp_session_take_message (smtp_session *s);

/* The store's answer for the message taken; @queue_id (transfer none) is
 * shown in the 250 reply.  Processes any pipelined input waiting.  */
void smtp_session_message_done (smtp_session *s, smtp_store_result result,
                                const char *queue_id, gint64 now_us);

/* The TLS handshake finished (@ok) or failed.  On success the session starts
 * over (RFC 3207 4.2: EHLO again, no STARTTLS announced); on failure it
 * closes.  */
void smtp_session_tls_done (smtp_session *s, gboolean ok, gint64 now_us);

/* Storage is short (the master says so): MAIL gets 452 4.3.1.  */
void smtp_session_set_storage_low (smtp_session *s, gboolean low);

/* The monotonic time (us) at which the current request's deadline passes,
 * given what has been received so far; the shell arms a timer for it.  */
gint64 smtp_session_deadline (smtp_session *s);

/* Check the deadline at @now_us: if passed, 421 4.4.2 timeout and CLOSE.
 * Returns TRUE if the session timed out.  */
gboolean smtp_session_check_deadline (smtp_session *s, gint64 now_us);

/* The server is stopping: 421 4.3.2 and CLOSE, unless a message is with the
 * store, in which case the 421 follows the store's answer.  */
void smtp_session_shutdown (smtp_session *s);

/* Counters for the log and tests.  */
guint smtp_session_errors (smtp_session *s);

/* Name of the internal phase (for logs and test failures).  */
const char *smtp_session_phase_name (smtp_session *s);

#endif
