/*
 * test_parser_transfer.c - base64 and quoted-printable undone as GMime
 * 3.2 undoes them.
 *
 * Covers: a table of inputs, each with the bytes expected and also
 * compared with GMime's own decoder run over the same bytes through a
 * data wrapper (what parser_walk_decode() did before): clean base64 with
 * LF and CRLF lines, every padding form, '=' in the middle (the rest
 * ignored), digits left over at the end, bytes outside the alphabet
 * (spaces, '*', 8-bit, NUL); quoted-printable escapes in both cases, soft
 * breaks after LF and CRLF, an '=' before something else (kept), and
 * "=", "=A" and "=\r" at the end (dropped).  Then 3,000 seeded random
 * inputs of each, compared with GMime only, and every byte value at every
 * position of 16, 32 and 48 base64 digits against GMime's decode step.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "parser/parser_transfer.h"

typedef struct {
  const char *name;
  gboolean qp;
  const char *in;
  gssize in_len;          /* -1: strlen */
  const char *out;
  gssize out_len;         /* -1: strlen */
} transfer_case;

static const transfer_case transfer_cases[] = {
  { "empty", FALSE, "", -1, "", -1 },
  { "one quartet", FALSE, "QUJD", -1, "ABC", -1 },
  { "lines LF", FALSE, "QUJD\nREVG\n", -1, "ABCDEF", -1 },
  { "lines CRLF", FALSE, "QUJD\r\nREVG\r\n", -1, "ABCDEF", -1 },
  { "one pad", FALSE, "QUJDREU=", -1, "ABCDE", -1 },
  { "two pads", FALSE, "QUJDRA==", -1, "ABCD", -1 },
  { "pad after one digit", FALSE, "QUJDR===", -1, "ABC", -1 },
  { "pad first", FALSE, "=QUJD", -1, "", -1 },
  { "rest after a pad ignored", FALSE, "QUI=REVG", -1, "AB", -1 },
  { "digits left at the end", FALSE, "QUJDRE", -1, "ABC", -1 },
  { "junk skipped", FALSE, "Q U*J\x80" "D\x00R", 9, "ABC", -1 },
  { "quartet across junk", FALSE, "QU\nJD", -1, "ABC", -1 },
  { "every digit", FALSE, "+/09azAZ", -1, "\xfb\xfd\x3d\x6b\x30\x19", 6 },
  { "qp plain", TRUE, "hello\nworld", -1, "hello\nworld", -1 },
  { "qp escapes", TRUE, "caf=C3=a9 =3D", -1, "caf\xc3\xa9 =", -1 },
  { "qp soft LF", TRUE, "ab=\ncd", -1, "abcd", -1 },
  { "qp soft CRLF", TRUE, "ab=\r\ncd", -1, "abcd", -1 },
  { "qp bad escape kept", TRUE, "a=G1b", -1, "a=G1b", -1 },
  { "qp escape of '='", TRUE, "a=4=41", -1, "a=4=41", -1 },
  { "qp CR alone", TRUE, "a=\rb", -1, "a=\rb", -1 },
  { "qp '=' at the end", TRUE, "ab=", -1, "ab", -1 },
  { "qp '=A' at the end", TRUE, "ab=A", -1, "ab", -1 },
  { "qp '=\\r' at the end", TRUE, "ab=\r", -1, "ab", -1 },
  { "qp 8-bit and NUL kept", TRUE, "\xe9\x00z", 3, "\xe9\x00z", 3 },
};

/* GMime's bytes for @in: a data wrapper over it, written out.  */
static GByteArray *
transfer_gmime (const guint8 *in, gsize n, gboolean qp)
{
  GMimeStream *src = g_mime_stream_mem_new_with_buffer ((const char *) in, n);
  GMimeDataWrapper *dw = g_mime_data_wrapper_new_with_stream (
      src, qp ? GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE
              : GMIME_CONTENT_ENCODING_BASE64);
  GMimeStream *out = g_mime_stream_mem_new ();
  GByteArray *ba;

  g_mime_data_wrapper_write_to_stream (dw, out);
  ba = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (out));
  g_mime_stream_mem_set_owner (GMIME_STREAM_MEM (out), FALSE);
  g_object_unref (out);
  g_object_unref (dw);
  g_object_unref (src);
  return ba;
}

static gsize
transfer_mine (const guint8 *in, gsize n, gboolean qp, guint8 **out)
{
  *out = g_malloc (qp ? n + 1 : PARSER_TRANSFER_BASE64_ROOM (n));
  return qp ? parser_transfer_qp (in, n, *out)
            : parser_transfer_base64 (in, n, *out);
}

START_TEST (test_transfer_table)
{
  const transfer_case *c = &transfer_cases[_i];
  gsize n = c->in_len < 0 ? strlen (c->in) : (gsize) c->in_len;
  gsize want = c->out_len < 0 ? strlen (c->out) : (gsize) c->out_len;
  g_autofree guint8 *mine = NULL;
  gsize got = transfer_mine ((const guint8 *) c->in, n, c->qp, &mine);
  GByteArray *ref = transfer_gmime ((const guint8 *) c->in, n, c->qp);

  ck_assert_msg (got == want && memcmp (mine, c->out, want) == 0,
                 "%s: %zu bytes, expected %zu", c->name, got, want);
  /* an array that never grew has no data at all */
  ck_assert_msg (ref->len == want
                     && (want == 0 || memcmp (ref->data, c->out, want) == 0),
                 "%s: GMime gave %u bytes", c->name, ref->len);
  g_byte_array_unref (ref);
}
END_TEST

START_TEST (test_transfer_random)
{
  static const char b64[]
      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        "==\r\n \t*\x80\xff";
  static const char qp[] = "0123456789ABCDEFabcdefGz=\r\n \t\xc3\xff";
  GRand *r = g_rand_new_with_seed (20261127);

  for (guint it = 0; it < 6000; it++)
    {
      gboolean is_qp = it % 2;
      const char *set = is_qp ? qp : b64;
      gsize set_len = is_qp ? sizeof qp - 1 : sizeof b64 - 1;
      gsize n = (gsize) g_rand_int_range (r, 0, it % 10 == 0 ? 12000 : 300);
      guint8 *in = g_malloc (n + 1);
      g_autofree guint8 *mine = NULL;
      GByteArray *ref;
      gsize got;
      /* mostly digits (or plain text), sometimes the whole set */
      guint32 spread = (guint32) g_rand_int_range (r, 1, 5);

      for (gsize i = 0; i < n; i++)
        {
          guint32 k = g_rand_int_range (r, 0, 100);

          if (k < 100 / spread && !is_qp)
            in[i] = (guint8) set[g_rand_int_range (r, 0, 64)];
          else if (k < 100 / spread)
            in[i] = (guint8) g_rand_int_range (r, ' ', '=');
          else
            in[i] = (guint8) set[g_rand_int_range (r, 0, (gint32) set_len)];
        }
      got = transfer_mine (in, n, is_qp, &mine);
      ref = transfer_gmime (in, n, is_qp);
      ck_assert_msg (got == ref->len
                         && (got == 0 || memcmp (mine, ref->data, got) == 0),
                     "input %u (%s, %zu bytes): %zu bytes, GMime %u", it,
                     is_qp ? "qp" : "base64", n, got, ref->len);
      g_byte_array_unref (ref);
      g_free (in);
    }
  g_rand_free (r);
}
END_TEST

/* Every byte value at every position of 16, 32 and 48 digits (whole
 * blocks of the SSSE3 path, and the scalar path after them), against
 * GMime's own decode step over the same bytes.  */
START_TEST (test_transfer_every_byte)
{
  static const char base[]
      = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw==";

  for (gsize len = 16; len <= 48; len += 16)
    for (gsize pos = 0; pos < len; pos++)
      for (guint b = 0; b < 256; b++)
        {
          guint8 in[48], mine[PARSER_TRANSFER_BASE64_ROOM (48)], ref[48 + 3];
          int state = 0;
          guint32 save = 0;
          gsize got, want;

          memcpy (in, base, len);
          in[pos] = (guint8) b;
          got = parser_transfer_base64 (in, len, mine);
          want = g_mime_encoding_base64_decode_step (in, len, ref, &state,
                                                     &save);
          ck_assert_msg (got == want && memcmp (mine, ref, got) == 0,
                         "%zu digits, byte 0x%02x at %zu: %zu bytes, GMime "
                         "%zu", len, b, pos, got, want);
        }
}
END_TEST

static Suite *
parser_transfer_suite (void)
{
  Suite *s = suite_create ("parser_transfer");
  TCase *tc = tcase_create ("decode");

  tcase_add_loop_test (tc, test_transfer_table, 0,
                       G_N_ELEMENTS (transfer_cases));
  tcase_add_test (tc, test_transfer_random);
  tcase_add_test (tc, test_transfer_every_byte);
  tcase_set_timeout (tc, 60);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr;
  int failed;

  g_mime_init ();
  sr = srunner_create (parser_transfer_suite ());
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
