/*
 * parser_headers.h - the few headers the pipeline needs, read with GMime:
 * From (address and display name), Subject and Message-ID.
 *
 * Every string comes back as valid UTF-8 without control characters
 * (RFC 2047 words decoded by GMime; invalid bytes become U+FFFD), so it is
 * safe to print.  A message GMime cannot parse gives empty fields and
 * parsed = FALSE; nothing is ever dropped.
 */
#ifndef INTAKE_PARSER_HEADERS_H
#define INTAKE_PARSER_HEADERS_H

#include <glib.h>

typedef struct {
  char *from_addr;       /* (nullable) first From: mailbox address */
  char *from_name;       /* (nullable) its display name */
  char *subject;         /* (nullable) decoded Subject */
  char *message_id;      /* (nullable) Message-ID without <> */
  gboolean parsed;       /* GMime produced a message */
} parser_headers;

/* Initialise GMime once per process.  Thread-safe.  */
void parser_init (void);

/* (transfer full) Read the headers of @raw (transfer none).  */
parser_headers *parser_headers_parse (GBytes *raw);
void parser_headers_free (parser_headers *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (parser_headers, parser_headers_free)

/* (transfer full) @s as valid UTF-8 with every control character (C0, DEL,
 * C1, and the bidi overrides) replaced by a space, at most @max bytes
 * (cut at a character boundary).  NULL stays NULL.  */
char *parser_clean_text (const char *s, gssize len, gsize max);

#endif
