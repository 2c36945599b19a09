/*
 * parser_sniff.h - an attachment's content type from its bytes: GIO's
 * content sniffing, answered without GIO's linear walk of every magic
 * rule where that is provably the same answer.
 *
 * GIO 2.74 (g_content_type_guess with no file name, xdgmime's
 * cache_magic_lookup_data over shared-mime-info's mime.cache) tries the
 * magic rules one by one, and a rule with a range (shared-mime-info has
 * rules over the first 257, 1,025 and 3,001 bytes) compares the value at
 * every offset of the range with memcmp: about 12,000 memcmp calls and
 * 500,000 instructions for a text attachment, which no rule matches.
 * parser_sniff_type() runs the same rules, in the same order, over the
 * same mime.cache bytes, with the same answers, but finds a value in a
 * range with one memmem().  It is used only where it is known to read
 * what GIO reads: GLib 2.74 at run time (the version whose xdgmime this
 * copies), exactly one of g_content_type_get_mime_dirs() holding a
 * mime.cache, of a version GIO takes (1.1 or 1.2), whose magic section
 * passes every bounds check here.  Otherwise, and once the file or the
 * set of caches is seen to change (checked at most every 5 s, as xdgmime
 * does), every call is g_content_type_guess() as before.
 *
 * Owns: a copy of the mime.cache, read once and kept for the process.
 */
#ifndef INTAKE_PARSER_SNIFF_H
#define INTAKE_PARSER_SNIFF_H

#include <glib.h>

/* Reads the mime.cache (parser_init calls it before any sandbox; the
 * first parser_sniff_type call does otherwise).  Idempotent.  */
void parser_sniff_init (void);

/* (transfer full) The MIME type g_content_type_get_mime_type
 * (g_content_type_guess (NULL, @data, @n, NULL)) gives, or NULL where
 * that gives NULL.  @data may be NULL (then GIO is asked, as before).  */
char *parser_sniff_type (const guint8 *data, gsize n);

/* TRUE when parser_sniff_type answers from its own copy of the rules
 * (for the tests).  */
gboolean parser_sniff_own (void);

#endif
