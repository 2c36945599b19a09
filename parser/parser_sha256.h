/*
 * parser_sha256.h - SHA-256 of attachment content, as lower-case hex.
 *
 * The same digest as g_compute_checksum_for_bytes (G_CHECKSUM_SHA256),
 * computed with the x86 SHA extensions where the CPU has them (about four
 * times GLib's speed), else by GLib.  Used by parser_message.c and its
 * tests.
 */
#ifndef INTAKE_PARSER_SHA256_H
#define INTAKE_PARSER_SHA256_H

#include <glib.h>

/* Write the 64 hex digits of SHA-256 of @data[0..@len) and a NUL to
 * @hex.  */
void parser_sha256_hex (const void *data, gsize len, char hex[65]);

/* TRUE when parser_sha256_hex uses the SHA extensions (for tests and the
 * benchmark's report).  */
gboolean parser_sha256_accelerated (void);

#endif
