/*
 * parser_headers.h - GMime set-up and display-safe header text.
 */
#ifndef INTAKE_PARSER_HEADERS_H
#define INTAKE_PARSER_HEADERS_H

#include <glib.h>

/* Initialise GMime once per process.  Thread-safe.  */
void parser_init (void);

/* (transfer full) @s as valid UTF-8 with every control character (C0, DEL,
 * C1, and the bidi overrides) replaced by a space, at most @max bytes
 * (cut at a character boundary).  NULL stays NULL.  */
char *parser_clean_text (const char *s, gssize len, gsize max);

#endif
