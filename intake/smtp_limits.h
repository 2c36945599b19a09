/*
 * smtp_limits.h - every limit of the SMTP receiver, in one place.
 *
 * Each limit has a default, a floor and a hard ceiling.  The tunable ones are
 * read from the [smtp] section of intake.conf and range-checked at load
 * (intake_config.c); docs/limits.md lists them for operators.  Stricter
 * limits apply before the peer has said EHLO.
 */
#ifndef INTAKE_SMTP_LIMITS_H
#define INTAKE_SMTP_LIMITS_H

/* RFC 5321 4.5.3.1.4: 512 octets including CRLF; extensions may raise it.
 * SECURITY-TESTS 17, 18, 31: longer lines get 500 5.5.2 and the session
 * resynchronises at the next LF.  */
#define SMTP_LIMIT_LINE_DEFAULT         2048
#define SMTP_LIMIT_LINE_MIN             512
#define SMTP_LIMIT_LINE_MAX             65536

/* RFC 5321 4.5.3.1.6: 1000 octets; we store longer lines byte-exact but cap
 * a single text line (SECURITY-TESTS 2.3): 552 5.3.4 at end of data.  */
#define SMTP_LIMIT_TEXT_LINE_DEFAULT    (1024 * 1024)
#define SMTP_LIMIT_TEXT_LINE_MIN        1000
#define SMTP_LIMIT_TEXT_LINE_MAX        (16 * 1024 * 1024)

/* Header section: SECURITY-TESTS 24, 25, 57 (CVE-2024-23184/23185).  */
#define SMTP_LIMIT_HEADER_BYTES_DEFAULT (1024 * 1024)
#define SMTP_LIMIT_HEADER_BYTES_MIN     1024
#define SMTP_LIMIT_HEADER_BYTES_MAX     (16 * 1024 * 1024)
#define SMTP_LIMIT_HEADER_LINES_DEFAULT 10000
#define SMTP_LIMIT_HEADER_LINES_MIN     10
#define SMTP_LIMIT_HEADER_LINES_MAX     100000

/* Message size, announced with SIZE (RFC 1870) and enforced at MAIL and at
 * end of data; RFC 5321 4.5.3.1.7 asks for at least 64 KiB.  */
#define SMTP_LIMIT_MESSAGE_DEFAULT      (25 * 1024 * 1024)
#define SMTP_LIMIT_MESSAGE_MIN          (64 * 1024)
#define SMTP_LIMIT_MESSAGE_MAX          (256 * 1024 * 1024)

/* RFC 5321 4.5.3.1.8: at least 100 recipients; beyond: 452 4.5.3.  */
#define SMTP_LIMIT_RCPT_DEFAULT         100
#define SMTP_LIMIT_RCPT_MIN             1
#define SMTP_LIMIT_RCPT_MAX             10000

/* Received: headers before 554 5.4.6 (RFC 5321 6.3; SECURITY-TESTS 50).  */
#define SMTP_LIMIT_HOPS_DEFAULT         50
#define SMTP_LIMIT_HOPS_MIN             5
#define SMTP_LIMIT_HOPS_MAX             500

/* Errors per session before 421 4.7.0 (SECURITY-TESTS 16).  */
#define SMTP_LIMIT_ERRORS_DEFAULT       10
#define SMTP_LIMIT_ERRORS_MIN           1
#define SMTP_LIMIT_ERRORS_MAX           1000

/* Seconds a request (a command line, or the DATA section) may take; with
 * the minimum data rate it is a deadline, not an idle timer, so a client
 * that trickles one byte every few seconds is still cut (slowloris,
 * SECURITY-TESTS 26, 27; Postfix smtpd_per_request_deadline).  */
#define SMTP_LIMIT_TIMEOUT_DEFAULT      300
#define SMTP_LIMIT_TIMEOUT_MIN          1
#define SMTP_LIMIT_TIMEOUT_MAX          3600
#define SMTP_LIMIT_MIN_RATE_DEFAULT     500     /* bytes per second */
#define SMTP_LIMIT_MIN_RATE_MIN         0
#define SMTP_LIMIT_MIN_RATE_MAX         (1024 * 1024)

/* Concurrent sessions, in total and per client address (421 4.7.0).  */
#define SMTP_LIMIT_SESSIONS_DEFAULT     1000
#define SMTP_LIMIT_SESSIONS_MIN         1
#define SMTP_LIMIT_SESSIONS_MAX         20000
#define SMTP_LIMIT_PER_CLIENT_DEFAULT   50
#define SMTP_LIMIT_PER_CLIENT_MIN       1
#define SMTP_LIMIT_PER_CLIENT_MAX       20000

/* Bytes read ahead of the command being processed.  A pipelining client
 * may send this much before the session stops reading from it.  */
#define SMTP_LIMIT_PIPELINE_BYTES       (64 * 1024)

/* RFC 5321 4.5.3.1.1-3: local part 64, domain 255, path 256 octets.  */
#define SMTP_LIMIT_LOCAL_PART           64
#define SMTP_LIMIT_DOMAIN               255
#define SMTP_LIMIT_PATH                 256

/* EHLO argument (SECURITY-TESTS 31).  */
#define SMTP_LIMIT_HELO                 255

#endif
