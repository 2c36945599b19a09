/*
 * parser_transfer.h - base64 and quoted-printable bodies undone in one
 * call over the part's bytes, with the result GMime 3.2's decoders give
 * (g_mime_data_wrapper_write_to_stream() through its basic filter), byte
 * for byte, bad input included.
 *
 * GMime reads the part through a filter stream in 4 KB chunks, a table
 * look-up and a state update a byte; here whole quartets of base64 and
 * runs of quoted-printable without '=' go at once.  What GMime does with
 * broken input is kept, not corrected: see each function.
 */
#ifndef INTAKE_PARSER_TRANSFER_H
#define INTAKE_PARSER_TRANSFER_H

#include <glib.h>

/* Room parser_transfer_base64() needs for @n bytes sent.  */
#define PARSER_TRANSFER_BASE64_ROOM(n) ((n) / 4 * 3 + 4)

/* Base64 @p[0..n) into @out (at least PARSER_TRANSFER_BASE64_ROOM(n)
 * bytes); returns the bytes written.  As GMime: bytes outside the
 * alphabet are skipped; the first '=' ends the data (anything after it is
 * ignored), giving one byte after two digits of its quartet, two after
 * three, nothing after none or one; digits left over at the end without
 * an '=' (fewer than four) give nothing.  */
gsize parser_transfer_base64 (const guint8 *p, gsize n, guint8 *out);

/* Quoted-printable @p[0..n) into @out (at least @n bytes); returns the
 * bytes written.  As GMime: "=" and two hex digits (either case) is the
 * byte; "=" before LF or CRLF is a soft line break (nothing); any other
 * "=" with two bytes after it is kept as those three bytes; an "=" with
 * fewer than two bytes after it at the end is dropped with them.  Line
 * ends and trailing white space are left as they are.  */
gsize parser_transfer_qp (const guint8 *p, gsize n, guint8 *out);

#endif
