/*
 * parser_charset.h - charsets glibc's iconv does not have, decoded here.
 *
 * HZ (RFC 1843, "hz-gb-2312"): 7-bit GB2312 between "~{" and "~}", used by
 * Chinese mailers of the 1990s and still sent by some (F6 in
 * tests/corpus/FINDINGS.md).  glibc has GB2312 (as EUC-CN) but not HZ, so
 * HZ is turned into EUC-CN bytes here and iconv does the rest.
 */
#ifndef INTAKE_PARSER_CHARSET_H
#define INTAKE_PARSER_CHARSET_H

#include <glib.h>

/* Whether @name (@len bytes; any case; an RFC 2231 "*language" suffix
 * ignored) names HZ: "hz-gb-2312", "hz-gb2312" or "hz".  */
gboolean parser_charset_is_hz (const char *name, gsize len);

/* (transfer full) HZ @p[0..n) as GB2312 in EUC-CN form: ASCII as it is;
 * between "~{" and "~}" each pair of bytes 0x21-0x7E with the high bit
 * set; "~~" is '~' and "~" before a line end joins the lines (both only
 * in ASCII mode).  Whatever is not HZ -- an 8-bit byte, '~' before
 * anything else, a byte outside 0x21-0x7E in GB mode, an odd byte at the
 * end -- becomes the byte 0xFF, which no EUC-CN decoder accepts, so
 * iconv turns it into U+FFFD; *@bad (nullable) is set then.  A line end
 * in GB mode also ends GB mode (RFC 1843 wants "~}" first; mailers forget
 * it) and sets *@bad.  Linear in @n, never fails.  */
GByteArray *parser_charset_hz_to_euc (const guint8 *p, gsize n,
                                      gboolean *bad);

/* (transfer full) HZ @p[0..n) as valid UTF-8 (NUL-terminated; *@len, if
 * not NULL, gets its length): parser_charset_hz_to_euc, then GB2312 to
 * UTF-8 with iconv, each byte iconv refuses as U+FFFD.  *@bad (nullable)
 * is set when anything became U+FFFD.  */
char *parser_charset_hz_to_utf8 (const guint8 *p, gsize n, gsize *len,
                                 gboolean *bad);

/* Keeps glibc's converter from @iconv_name (a name iconv_open() takes) to
 * UTF-8 loaded for the life of the process: one descriptor of it is
 * opened and never closed.  glibc unloads a converter's module a few
 * iconv_close() calls after its last descriptor goes, and the next
 * iconv_open() loads it again with dlopen(); GMime 3 opens and closes a
 * descriptor for every 8-bit header value and every encoded word, so a
 * run of messages in one charset paid a dlopen() each (F8).  At most
 * PARSER_CHARSET_PINS charsets are kept (the first seen); a name iconv
 * does not know is not kept.  Thread-safe.  Returns
 * whether iconv knows @iconv_name (pinned or not: past the bound a name
 * is only tried), so that it also answers "is this charset known".  */
#define PARSER_CHARSET_PINS 32
gboolean parser_charset_pin (const char *iconv_name);

#endif
