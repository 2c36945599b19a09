/*
 * test_parser_charset.c - HZ (RFC 1843) decoded over glibc's GB2312 (F6).
 *
 * Covers: the charset names taken as HZ; a table of HZ inputs with the
 * EUC-CN bytes and the UTF-8 they give (expected values from Python's hz
 * codec where it accepts the input): ASCII, GB runs, "~~", "~" before a
 * line end (LF and CRLF), empty runs, an unterminated run; then what is
 * not HZ, each becoming U+FFFD and setting the flag: '~' before anything
 * else, '~' at the end, 8-bit bytes, a line end inside a GB run, a lone
 * byte in a GB run, a pair GB2312 leaves unassigned.  Every case is also
 * run with the input cut at every length (no crash, valid UTF-8).
 */
#include <check.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser_charset.h"

#define FFFD "\xef\xbf\xbd"

typedef struct {
  const char *name;
  const char *in;
  gssize in_len;          /* -1: strlen */
  const char *euc;        /* NULL: not checked */
  const char *utf8;
  gboolean bad;
} hz_case;

static const hz_case hz_cases[] = {
  { "ascii", "hello, world", -1, "hello, world", "hello, world", FALSE },
  { "one run", "~{OrOHIzVB~}", -1, "\xcf\xf2\xcf\xc8\xc9\xfa\xd6\xc2",
    "\xe5\x90\x91\xe5\x85\x88\xe7\x94\x9f\xe8\x87\xb4", FALSE },
  { "mixed", "Dear ~{OrOHIz~}, thank you", -1, NULL,
    "Dear \xe5\x90\x91\xe5\x85\x88\xe7\x94\x9f, thank you", FALSE },
  { "two lines", "~{Dz:C~},\n~{NROkM6K_@,;xJU</!#~}\n", -1, NULL,
    "\xe6\x82\xa8\xe5\xa5\xbd,\n\xe6\x88\x91\xe6\x83\xb3\xe6\x8a\x95\xe8\xaf"
    "\x89\xe5\x9e\x83\xe5\x9c\xbe\xe6\x94\xb6\xe9\x9b\x86\xe3\x80\x82\n",
    FALSE },
  { "tilde tilde", "a~~b", -1, "a~b", "a~b", FALSE },
  { "continuation LF", "ab~\ncd", -1, "abcd", "abcd", FALSE },
  { "continuation CRLF", "ab~\r\ncd", -1, "abcd", "abcd", FALSE },
  { "empty run", "a~{~}b", -1, "ab", "ab", FALSE },
  { "run not closed at the end", "~{OrOH", -1, "\xcf\xf2\xcf\xc8",
    "\xe5\x90\x91\xe5\x85\x88", FALSE },
  { "NUL kept (the caller's final pass deals with it)", "a\0b", 3, "a\0b",
    "a\0b", FALSE },
  /* not HZ */
  { "tilde before other", "a~xb", -1, "a\xff" "xb", "a" FFFD "xb", TRUE },
  { "tilde at the end", "ab~", -1, "ab\xff", "ab" FFFD, TRUE },
  { "close outside a run", "~}a", -1, "\xff}a", FFFD "}a", TRUE },
  { "8-bit byte", "\xe9t\xe9", -1, "\xfft\xff", FFFD "t" FFFD, TRUE },
  { "line end in a run", "~{OrO\nb", -1, "\xcf\xf2\xff\nb",
    "\xe5\x90\x91" FFFD "\nb", TRUE },
  { "space in a run", "~{Or Oh~}", -1, "\xcf\xf2\xff\xcf\xe8",
    "\xe5\x90\x91" FFFD "\xe7\xbf\x94", TRUE },
  { "tilde tilde in a run", "~{~~~}", -1, NULL, FFFD FFFD, TRUE },
  { "control byte in a run", "~{\x21\x20~}", -1, "\xff\xff", FFFD FFFD,
    TRUE },
  { "unassigned pair, as one", "~{)!~}x", -1, NULL, FFFD "x", TRUE },
};

START_TEST (test_hz_table)
{
  const hz_case *c = &hz_cases[_i];
  gsize n = c->in_len < 0 ? strlen (c->in) : (gsize) c->in_len;
  gboolean bad = FALSE;
  gsize len = 0;
  g_autofree char *utf8 = NULL;

  if (c->euc != NULL)
    {
      g_autoptr (GByteArray) euc = parser_charset_hz_to_euc (
          (const guint8 *) c->in, n, &bad);
      gsize en = c->in_len < 0 ? strlen (c->euc) : (gsize) c->in_len;

      ck_assert_msg (euc->len == en && memcmp (euc->data, c->euc, en) == 0,
                     "%s: EUC bytes differ (%u bytes)", c->name, euc->len);
      ck_assert_msg (bad == c->bad, "%s: EUC bad=%d", c->name, bad);
    }
  bad = FALSE;
  utf8 = parser_charset_hz_to_utf8 ((const guint8 *) c->in, n, &len, &bad);
  ck_assert_msg (len == (c->in_len < 0 ? strlen (c->utf8) : (gsize) c->in_len)
                     && memcmp (utf8, c->utf8, len) == 0,
                 "%s: got \"%s\"", c->name, utf8);
  ck_assert_msg (bad == c->bad, "%s: bad=%d", c->name, bad);
  ck_assert (g_utf8_validate_len (utf8, len, NULL) || memchr (utf8, 0, len));

  /* every prefix: no crash, valid UTF-8 */
  for (gsize k = 0; k <= n; k++)
    {
      gsize l2 = 0;
      g_autofree char *u = parser_charset_hz_to_utf8 ((const guint8 *) c->in,
                                                      k, &l2, NULL);
      ck_assert (memchr (u, 0, l2) || g_utf8_validate_len (u, l2, NULL));
    }
}
END_TEST

START_TEST (test_hz_names)
{
  static const struct {
    const char *name;
    gboolean hz;
  } names[] = {
    { "hz-gb-2312", TRUE }, { "HZ-GB-2312", TRUE }, { "hz-gb2312", TRUE },
    { "hz", TRUE }, { "HZ", TRUE }, { "hz-gb-2312*zh", TRUE },
    { "gb2312", FALSE }, { "hz-gb-231", FALSE }, { "hzz", FALSE },
    { "", FALSE }, { "h", FALSE }, { "utf-8", FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    ck_assert_msg (parser_charset_is_hz (names[i].name,
                                         strlen (names[i].name))
                       == names[i].hz,
                   "%s", names[i].name);
  /* the length counts, not a NUL */
  ck_assert (parser_charset_is_hz ("hz-gb-2312 and more", 10));
  ck_assert (!parser_charset_is_hz ("hz-gb-2312", 9));
}
END_TEST

/* Whether a gconv module whose file name contains @so is mapped.  */
static gboolean
module_loaded (const char *so)
{
  g_autofree char *maps = NULL;

  ck_assert (g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL));
  return strstr (maps, so) != NULL;
}

/* Opens and closes one descriptor from @charset, then five from another
 * charset: glibc unloads a converter nobody holds as the others come and
 * go.  */
static void
open_close_then_others (const char *charset)
{
  iconv_t cd = iconv_open ("UTF-8", charset);

  ck_assert (cd != (iconv_t) -1);
  iconv_close (cd);
  for (guint i = 0; i < 5; i++)
    {
      cd = iconv_open ("UTF-8", "ISO-8859-7");
      ck_assert (cd != (iconv_t) -1);
      iconv_close (cd);
    }
}

/* parser_charset_pin keeps a converter loaded; without it glibc drops it
 * (which is why GMime's open-and-close per header value cost a dlopen()
 * each, F8).  */
START_TEST (test_pin_keeps_module)
{
  open_close_then_others ("KOI8-U");
  ck_assert_msg (!module_loaded ("KOI8-U.so"),
                 "glibc kept an unused converter: the pin is not needed");

  ck_assert (parser_charset_pin ("KOI8-R"));
  ck_assert (parser_charset_pin ("koi8-r"));    /* once is enough */
  /* a name iconv does not know: not kept, and said so */
  ck_assert (!parser_charset_pin ("NO-SUCH-CHARSET-4411"));
  ck_assert (!parser_charset_pin (NULL));
  open_close_then_others ("KOI8-R");
  ck_assert (module_loaded ("KOI8-R.so"));
}
END_TEST

static Suite *
parser_charset_suite (void)
{
  Suite *s = suite_create ("parser_charset");
  TCase *tc = tcase_create ("hz");

  tcase_add_loop_test (tc, test_hz_table, 0, G_N_ELEMENTS (hz_cases));
  tcase_add_test (tc, test_hz_names);
  suite_add_tcase (s, tc);
  tc = tcase_create ("pin");
  tcase_add_test (tc, test_pin_keeps_module);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (parser_charset_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
