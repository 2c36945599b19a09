/*
 * parser.h - raw MIME to one normalised message.
 *
 * GMime 3 parses; our own walker applies intake's limits (nesting 50,
 * parts 1,000, header bytes and count, decoded size, parameters, filename
 * length) and turns every GMime warning and every limit into an anomaly
 * flag.  Nothing is dropped: a message that cannot be parsed at all comes
 * back with PARSER_ANOMALY_UNPARSEABLE and whatever could be read.  The
 * raw bytes are never re-serialised (GMime issue 165); the caller keeps
 * them.  Every string in the result is valid UTF-8.
 *
 * This header is the contract between the MIME walker (parser_message.c),
 * the text functions (parser_text.h) and the rest of intake.
 */
#ifndef INTAKE_PARSER_H
#define INTAKE_PARSER_H

#include <glib.h>

#include "parser/parser_headers.h"

/* ------------------------------------------------------------ limits */

#define PARSER_LIMIT_DEPTH          50       /* multipart / rfc822 nesting */
#define PARSER_LIMIT_PARTS          1000     /* MIME parts in total */
#define PARSER_LIMIT_HEADER_BYTES   (1024 * 1024)
#define PARSER_LIMIT_HEADERS        10000    /* header fields, all parts */
#define PARSER_LIMIT_DECODED        (64 * 1024 * 1024) /* decoded bytes */
#define PARSER_LIMIT_PARAMS         100      /* Content-Type/-Disposition */
#define PARSER_LIMIT_FILENAME       255      /* bytes, after cleaning */
#define PARSER_LIMIT_TEXT           (4 * 1024 * 1024)  /* text kept */
#define PARSER_LIMIT_HEADER_VALUE   (64 * 1024) /* bytes kept per decoded
                                                 * header value (Subject,
                                                 * header_values); more sets
                                                 * PARSER_ANOMALY_HEADERS */
#define PARSER_LIMIT_LIST           1000     /* entries kept per list: to,
                                              * cc, references, case_refs,
                                              * personal */
#define PARSER_LIMIT_NOTES          100      /* notes kept */

/* parser_message_unpack() refusing its input.  */
#define PARSER_ERROR (parser_error_quark ())
GQuark parser_error_quark (void);
typedef enum {
  PARSER_ERROR_MALFORMED,      /* not a pack of this version, or out of
                                * bounds */
} parser_error;

/* ------------------------------------------------------------ flags */

/* Anomalies: what was odd about the message as received.  */
typedef enum {
  PARSER_ANOMALY_UNPARSEABLE     = 1u << 0,  /* GMime gave no message */
  PARSER_ANOMALY_NESTING         = 1u << 1,  /* deeper than the limit */
  PARSER_ANOMALY_PARTS           = 1u << 2,  /* more parts than the limit */
  PARSER_ANOMALY_HEADERS         = 1u << 3,  /* header bytes or count */
  PARSER_ANOMALY_DECODED_SIZE    = 1u << 4,  /* decoded content too large */
  PARSER_ANOMALY_PARAMS          = 1u << 5,  /* too many parameters */
  PARSER_ANOMALY_FILENAME        = 1u << 6,  /* a name was cut or cleaned */
  PARSER_ANOMALY_CHARSET         = 1u << 7,  /* invalid bytes -> U+FFFD, or
                                              * unknown charset */
  PARSER_ANOMALY_ENCODED_WORD    = 1u << 8,  /* broken RFC 2047 word */
  PARSER_ANOMALY_BOUNDARY        = 1u << 9,  /* missing/odd boundaries */
  PARSER_ANOMALY_CONFLICTING     = 1u << 10, /* duplicate/conflicting headers */
  PARSER_ANOMALY_GMIME_WARNING   = 1u << 11, /* any other GMime warning */
  PARSER_ANOMALY_GMIME_CRITICAL  = 1u << 12, /* a GMIME_CRIT_* warning */
  PARSER_ANOMALY_TNEF            = 1u << 13, /* winmail.dat not (wholly)
                                              * decoded: kept as it is,
                                              * next to any files read */
  PARSER_ANOMALY_UUENCODE        = 1u << 14, /* broken inline uuencode */
  PARSER_ANOMALY_TRUNCATED_TEXT  = 1u << 15, /* text over PARSER_LIMIT_TEXT */
} parser_anomaly;

/* Attachment flags.  */
typedef enum {
  PARSER_ATT_INLINE          = 1u << 0,  /* Content-Disposition: inline or
                                          * a related part */
  PARSER_ATT_EXECUTABLE      = 1u << 1,  /* .exe .scr .bat .js ... or an
                                          * executable detected type */
  PARSER_ATT_DOUBLE_EXT      = 1u << 2,  /* "invoice.pdf.exe" */
  PARSER_ATT_TYPE_MISMATCH   = 1u << 3,  /* declared vs detected type */
  PARSER_ATT_NAME_CLEANED    = 1u << 4,  /* path, controls, bidi removed */
  PARSER_ATT_FROM_TNEF       = 1u << 5,
  PARSER_ATT_FROM_UUENCODE   = 1u << 6,
  PARSER_ATT_FORWARDED       = 1u << 7,  /* a message/rfc822 part */
} parser_att_flag;

/* Special categories of personal data (UK GDPR art. 9 and 10).  */
typedef enum {
  PARSER_SPECIAL_HEALTH      = 1u << 0,  /* health and disability */
  PARSER_SPECIAL_ETHNIC      = 1u << 1,  /* racial or ethnic origin */
  PARSER_SPECIAL_RELIGION    = 1u << 2,  /* religion or belief */
  PARSER_SPECIAL_SEXUAL      = 1u << 3,  /* sex life, sexual orientation */
  PARSER_SPECIAL_UNION       = 1u << 4,  /* trade union membership */
  PARSER_SPECIAL_POLITICAL   = 1u << 5,  /* political opinions */
  PARSER_SPECIAL_GENETIC     = 1u << 6,  /* genetic data */
  PARSER_SPECIAL_BIOMETRIC   = 1u << 7,  /* biometric data */
  PARSER_SPECIAL_CRIMINAL    = 1u << 8,  /* criminal offences */
} parser_special;

/* ------------------------------------------------------------ result */

typedef struct {
  char *name;                /* (nullable) display name, decoded */
  char *addr;                /* address as given (lower-cased domain) */
} parser_address;

typedef struct {
  char *name;                /* safe display name: last path component,
                              * no controls or bidi overrides, <= 255 bytes,
                              * never used as a path; "attachment-N" if none */
  char *declared_type;       /* "application/pdf" (lower case) */
  char *detected_type;       /* from the content's bytes (GIO/libmagic) */
  gsize size;                /* decoded bytes */
  char sha256[65];           /* hex of the decoded content */
  GBytes *content;           /* decoded content */
  char *content_id;          /* (nullable) without <> */
  guint flags;               /* parser_att_flag */
} parser_attachment;

typedef enum {
  PARSER_PD_EMAIL,
  PARSER_PD_PHONE,           /* UK numbers */
  PARSER_PD_POSTCODE,        /* UK postcodes */
  PARSER_PD_NINO,            /* National Insurance numbers */
  PARSER_PD_DOB,             /* dates of birth (date near "born"/"DOB") */
  PARSER_PD_SORT_CODE,
  PARSER_PD_ACCOUNT,         /* bank account numbers (8 digits near sort
                              * code / "account") */
  PARSER_PD_CARD,            /* a card number (redacted; value is the
                              * redacted form) */
} parser_pd_kind;

typedef struct {
  parser_pd_kind kind;
  char *value;               /* as found (for cards: "**** **** **** 1234") */
} parser_pd;

typedef struct {
  /* headers, decoded (RFC 2047, RFC 2231, RFC 6532) */
  char *subject;             /* (nullable), cards redacted */
  parser_address *from;      /* (nullable) first From mailbox */
  GPtrArray *to;             /* parser_address * */
  GPtrArray *cc;             /* parser_address * */
  parser_address *reply_to;  /* (nullable) */
  gint64 date;               /* unix seconds; 0 if absent or invalid */
  char *message_id;          /* (nullable) without <> */
  char *in_reply_to;         /* (nullable) without <> */
  GPtrArray *references;     /* char *, without <>, in order */
  GPtrArray *header_names;   /* char *, every top-level header, in order */
  GPtrArray *header_values;  /* char *, decoded, same order */

  /* text */
  char *text;                /* what the citizen wrote (new text), UTF-8,
                              * cards redacted */
  char *quoted;              /* quoted history separated from it */
  gboolean text_from_html;   /* no text/plain: converted from HTML */
  GPtrArray *forwarded;      /* char *, text of each message/rfc822 part */

  /* parts */
  GPtrArray *attachments;    /* parser_attachment * */
  guint n_parts;             /* MIME parts walked */

  /* delivery reports (multipart/report) */
  gboolean is_report;
  char *report_message_id;   /* (nullable) Message-ID of the original */
  char *report_status;       /* (nullable) e.g. "5.1.1" */
  char *report_recipient;    /* (nullable) the failed address: Original-
                              * Recipient, else Final-Recipient, without
                              * the "rfc822;" type */

  /* what the rest of intake needs */
  gboolean auto_reply;       /* never acknowledge this (loops) */
  char *auto_reason;         /* (nullable) "auto-submitted", "precedence",
                              * "list", "null-sender", "mailer-daemon",
                              * "report", "x-autoreply", "out-of-office" */
  GPtrArray *case_refs;      /* char *, case references in subject and
                              * recipient plus-addresses (not verified) */
  GPtrArray *personal;       /* parser_pd * */
  guint special;             /* parser_special bits */
  guint cards_redacted;

  guint anomalies;           /* parser_anomaly bits */
  GPtrArray *notes;          /* char *: what was not processed and why */
} parser_message;

/* What the caller knows beyond the bytes.  */
typedef struct {
  const char *envelope_from;        /* (nullable) MAIL FROM; "" = null */
  const char *const *envelope_rcpts; /* (nullable) NULL-terminated */
  const struct parser_lexicon *lexicon; /* (nullable) special categories */
} parser_context;

/* (transfer full) An empty message: every array allocated (with its free
 * function), every string NULL.  For parser_message_unpack() and tests.  */
parser_message *parser_message_new (void);
void parser_address_free (parser_address *a);
void parser_attachment_free (parser_attachment *a);

/* (transfer full) Parse @raw.  Never fails: see anomalies.  */
parser_message *parser_message_parse (GBytes *raw, const parser_context *ctx);
void parser_message_free (parser_message *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (parser_message, parser_message_free)

/* (transfer full) The message as pretty JSON (intakectl parse): every
 * field above; attachments without content (name, types, size, sha256,
 * flags).  */
char *parser_message_to_json (const parser_message *m);

/* (transfer full) The message as bytes for the trip from a parse worker to
 * the master (a flat binary format, content included: parser_pack.c), and
 * back.  Unpacking treats the bytes as untrusted: NULL on anything
 * malformed.  */
GBytes *parser_message_pack (const parser_message *m);
/* The same bytes appended to @b (a parse worker packs the message straight
 * into the frame that carries it), and a size to reserve for them.  */
void parser_message_pack_append (GByteArray *b, const parser_message *m);
gsize parser_message_pack_size_hint (const parser_message *m);
parser_message *parser_message_unpack (GBytes *bytes, GError **error);

/* Names for flags and kinds (JSON, logs).  */
const char *parser_anomaly_name (parser_anomaly bit);
const char *parser_att_flag_name (parser_att_flag bit);
const char *parser_special_name (parser_special bit);
const char *parser_pd_kind_name (parser_pd_kind kind);

#endif
