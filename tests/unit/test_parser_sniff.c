/*
 * test_parser_sniff.c - parser_sniff_type() gives GIO's answer.
 *
 * Covers: whether the copy of the rules is used (on a system with one
 * mime.cache, as Debian 12's shared-mime-info installs, it must be);
 * then parser_sniff_type() against g_content_type_guess() +
 * g_content_type_get_mime_type() on: no bytes, NULL, the text/binary
 * fallback's edges (a control byte inside and past the first 128, the
 * ones looks_like_text lets through: VT, FF, backspace; DEL; 8-bit
 * bytes); every matchlet of the installed cache made to compare, its
 * value (and the value of the first child under it, down the
 * tree) put at the first and the last offset of its range, one offset
 * past it, and cut short by the data's end, over a text and a binary
 * filler; every file under tests/data/mail whole and cut at a few
 * lengths.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gio/gio.h>

#include "parser/parser_sniff.h"

static char *
gio_type (const guint8 *d, gsize n)
{
  char *guess = g_content_type_guess (NULL, d, n, NULL);
  char *mime = guess ? g_content_type_get_mime_type (guess) : NULL;

  g_free (guess);
  return mime;
}

static guint compared;

static void
same (const guint8 *d, gsize n, const char *what)
{
  g_autofree char *a = parser_sniff_type (d, n);
  g_autofree char *b = gio_type (d, n);

  compared++;
  if (g_strcmp0 (a, b) != 0)
    ck_abort_msg ("%s (%zu bytes): parser_sniff_type %s, GIO %s", what, n,
                  a ? a : "(null)", b ? b : "(null)");
}

/* The one mime.cache GIO reads, or NULL.  */
static char *
the_cache (void)
{
  const char *const *dirs = g_content_type_get_mime_dirs ();
  char *found = NULL;
  guint n = 0;

  for (guint i = 0; dirs[i] != NULL; i++)
    {
      char *p = g_build_filename (dirs[i], "mime.cache", NULL);
      struct stat st;

      if (stat (p, &st) == 0)
        {
          n++;
          g_free (found);
          found = p;
        }
      else
        g_free (p);
    }
  if (n != 1)
    g_clear_pointer (&found, g_free);
  return found;
}

START_TEST (test_own_used)
{
  g_autofree char *cache = the_cache ();

  parser_sniff_init ();
  if (cache != NULL && glib_major_version == 2 && glib_minor_version == 74)
    ck_assert (parser_sniff_own ());
}
END_TEST

START_TEST (test_fallback_edges)
{
  guint8 buf[600];
  static const guint8 odd[] = { 0, 1, 8, 11, 12, 27, 127, 0x80, 0xff };

  same (NULL, 0, "NULL");
  same ((const guint8 *) "", 0, "empty");
  same ((const guint8 *) "a", 1, "one byte");
  for (guint k = 0; k < G_N_ELEMENTS (odd); k++)
    for (guint at = 0; at < 300; at += 37)
      {
        memset (buf, 'x', sizeof buf);
        buf[at] = odd[k];
        same (buf, sizeof buf, "a byte in text");
        same (buf, at + 1, "a byte at the end");
        /* and a second one past the first 128 */
        buf[500] = 0;
        same (buf, sizeof buf, "two bytes");
      }
}
END_TEST

static guint32
u32 (const guint8 *b, gsize off)
{
  return ((guint32) b[off] << 24) | ((guint32) b[off + 1] << 16)
         | ((guint32) b[off + 2] << 8) | (guint32) b[off + 3];
}

/* Puts matchlet @m's value at offset @at of @d (size @n), then its first
 * child's at the child's first offset, down the tree.  */
static void
plant (const guint8 *c, guint32 m, guint8 *d, gsize n, gsize at)
{
  for (guint depth = 0; depth < 8; depth++)
    {
      guint32 dl = u32 (c, m + 12), vo = u32 (c, m + 16);

      if (at + dl <= n)
        memcpy (d + at, c + vo, dl);
      if (u32 (c, m + 24) == 0)
        return;
      m = u32 (c, m + 28);
      at = u32 (c, m);
    }
}

START_TEST (test_every_rule)
{
  g_autofree char *path = the_cache ();
  g_autofree gchar *c = NULL;
  gsize size;
  guint32 list, nm, first;

  if (path == NULL)
    return;
  ck_assert (g_file_get_contents (path, &c, &size, NULL));
  compared = 0;
  list = u32 ((guint8 *) c, 24);
  nm = u32 ((guint8 *) c, list);
  first = u32 ((guint8 *) c, list + 8);
  for (guint32 j = 0; j < nm; j++)
    {
      const guint8 *b = (const guint8 *) c;
      guint32 nml = u32 (b, first + 16 * j + 8);

      for (guint32 i = 0; i < nml; i++)
        {
          guint32 ml = u32 (b, first + 16 * j + 12) + 32 * i;
          guint32 rs = u32 (b, ml), rl = u32 (b, ml + 4);
          guint32 dl = u32 (b, ml + 12);
          gsize offs[3] = { rs, rs + (rl ? rl - 1 : 0), (gsize) rs + rl };

          for (guint fill = 0; fill < 2; fill++)
            for (guint k = 0; k < 3; k++)
              {
                gsize n = MAX (offs[k] + dl + 64, (gsize) 4096);
                guint8 *d = g_malloc (n);

                memset (d, fill ? 0 : 'a', n);
                plant (b, ml, d, n, offs[k]);
                same (d, n, (const char *) b + u32 (b, first + 16 * j + 4));
                /* cut inside the value */
                if (dl > 0)
                  same (d, offs[k] + dl - 1, "cut");
                g_free (d);
              }
        }
    }
  /* every match has a matchlet: at least 12 comparisons each */
  ck_assert_uint_ge (compared, 12 * nm);
  fprintf (stderr, "test_every_rule: %u comparisons over %u matches\n",
           compared, nm);
}
END_TEST

static void
each_file (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;

  if (d == NULL)
    return;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *p = g_build_filename (dir, name, NULL);
      g_autofree gchar *data = NULL;
      gsize n;

      if (g_file_test (p, G_FILE_TEST_IS_DIR))
        each_file (p);
      else if (g_file_get_contents (p, &data, &n, NULL))
        {
          static const gsize cuts[] = { 1, 7, 128, 129, 1000, 3000, 3010 };

          same ((guint8 *) data, n, p);
          for (guint k = 0; k < G_N_ELEMENTS (cuts); k++)
            if (cuts[k] < n)
              same ((guint8 *) data, cuts[k], p);
        }
    }
  g_dir_close (d);
}

START_TEST (test_mail_files)
{
  each_file ("tests/data/mail");
}
END_TEST

static Suite *
parser_sniff_suite (void)
{
  Suite *s = suite_create ("parser_sniff");
  TCase *tc = tcase_create ("sniff");

  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_own_used);
  tcase_add_test (tc, test_fallback_edges);
  tcase_add_test (tc, test_every_rule);
  tcase_add_test (tc, test_mail_files);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (parser_sniff_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
