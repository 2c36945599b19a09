/*
 * parser_sniff.c - GIO 2.74's content sniffing over shared-mime-info's
 * mime.cache, with a range rule's value found by memmem (parser_sniff.h).
 *
 * What is copied, from GLib 2.74.6 (gio/gcontenttype.c g_content_type_guess
 * and looks_like_text; gio/xdgmime/xdgmime.c xdg_mime_get_mime_type_for_
 * data; xdgmimecache.c cache_get_mime_type_for_data, cache_magic_lookup_
 * data, cache_magic_compare_to_data, cache_magic_matchlet_compare and
 * cache_magic_matchlet_compare_to_data; xdgmimeint.c _xdg_binary_or_text_
 * fallback), for a call with no file name and a single cache:
 *
 *   no bytes: application/x-zerosize;
 *   the first match (in the cache's order) any of whose matchlets
 *   compares, a matchlet comparing when its value (under its mask, if it
 *   has one) is at one of the offsets range_start .. range_start +
 *   range_length - 1 and wholly within the data, and then, if it has
 *   children, one of them compares; that match's type if its priority is
 *   above 0;
 *   else text/plain when none of the first 128 bytes is below 0x20 other
 *   than tab, LF and CR;
 *   else text/plain when no byte is an ASCII control character other
 *   than white space and backspace (looks_like_text);
 *   else application/octet-stream.
 *
 * The one change: for a matchlet without a mask, the offsets of its range
 * are tried by one memmem over the bytes they cover instead of a memcmp at
 * each (the same offsets, the same answer: GIO stops at the first offset
 * whose value would run past the data, memmem's haystack ends there).
 *
 * Owns: the copy of the mime.cache (never freed: the rules of the process).
 */
#include "parser/parser_sniff.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <gio/gio.h>

/* xdgmime re-reads the mime directories when one changed, looking at
 * most every 5 s (xdgmime.c, xdg_check_time_and_dirs).  */
#define PARSER_SNIFF_RECHECK_US  (5 * G_USEC_PER_SEC)
/* Nesting of matchlets accepted (shared-mime-info's deepest is 4).  */
#define PARSER_SNIFF_DEPTH_MAX   32
/* Bytes of the text/binary fallback (xdgmimeint.c).  */
#define PARSER_SNIFF_FALLBACK    128

typedef struct {
  guint8 *buf;                 /* the mime.cache's bytes */
  gsize size;
  char *path;                  /* its file */
  struct stat st;              /* as it was when read */
  GPtrArray *absent;           /* char *: the other dirs' mime.cache, none
                                  there when read */
  gint64 checked;              /* monotonic us of the last look */
  gboolean own;                /* answer from buf */
} parser_sniff_db;

static parser_sniff_db parser_sniff;
static GMutex parser_sniff_lock;

static inline guint32
parser_sniff_u32 (const guint8 *b, guint32 off)
{
  return ((guint32) b[off] << 24) | ((guint32) b[off + 1] << 16)
         | ((guint32) b[off + 2] << 8) | (guint32) b[off + 3];
}

/* ------------------------------------------------------------ the checks */

/* TRUE when [@off, @off + @len) lies within the cache.  */
static gboolean
parser_sniff_within (guint64 off, guint64 len)
{
  return off <= parser_sniff.size && len <= parser_sniff.size - off;
}

/* Every matchlet from @off on (@n of them, 32 bytes each), their values,
 * masks and children within the cache, no range whose offsets overflow
 * xdgmime's 32-bit sums.  */
static gboolean
parser_sniff_valid_matchlets (guint32 off, guint32 n, guint depth)
{
  const guint8 *b = parser_sniff.buf;

  if (depth > PARSER_SNIFF_DEPTH_MAX
      || !parser_sniff_within (off, (guint64) n * 32))
    return FALSE;
  for (guint32 i = 0; i < n; i++)
    {
      guint32 m = off + 32 * i;
      guint64 rs = parser_sniff_u32 (b, m), rl = parser_sniff_u32 (b, m + 4);
      guint64 dl = parser_sniff_u32 (b, m + 12);
      guint32 vo = parser_sniff_u32 (b, m + 16);
      guint32 mo = parser_sniff_u32 (b, m + 20);

      if (rs + rl + dl > G_MAXUINT32 || !parser_sniff_within (vo, dl)
          || (mo != 0 && !parser_sniff_within (mo, dl))
          || !parser_sniff_valid_matchlets (parser_sniff_u32 (b, m + 28),
                                            parser_sniff_u32 (b, m + 24),
                                            depth + 1))
        return FALSE;
    }
  return TRUE;
}

/* The magic section (header offset 24: the count, the largest extent,
 * the first match; 16 bytes a match: priority, type, matchlet count,
 * first matchlet): every offset within the cache, every type a string
 * ending in it, every priority 1-100 (GIO keeps a match only above 0).  */
static gboolean
parser_sniff_valid (void)
{
  const guint8 *b = parser_sniff.buf;
  guint32 list, n, first;

  if (parser_sniff.size < 28
      || ((guint32) b[0] << 8 | b[1]) != 1
      || (((guint32) b[2] << 8 | b[3]) != 1
          && ((guint32) b[2] << 8 | b[3]) != 2))
    return FALSE;
  list = parser_sniff_u32 (b, 24);
  if (!parser_sniff_within (list, 12))
    return FALSE;
  n = parser_sniff_u32 (b, list);
  first = parser_sniff_u32 (b, list + 8);
  if (!parser_sniff_within (first, (guint64) n * 16))
    return FALSE;
  for (guint32 j = 0; j < n; j++)
    {
      guint32 m = first + 16 * j;
      guint32 prio = parser_sniff_u32 (b, m);
      guint32 type = parser_sniff_u32 (b, m + 4);

      if (prio < 1 || prio > 100 || type >= parser_sniff.size
          || memchr (b + type, '\0', parser_sniff.size - type) == NULL
          || !parser_sniff_valid_matchlets (parser_sniff_u32 (b, m + 12),
                                            parser_sniff_u32 (b, m + 8), 0))
        return FALSE;
    }
  return TRUE;
}

/* Whether the caches GIO would read are still the one read here (and
 * no other has come): the file unchanged, the others still absent.  */
static gboolean
parser_sniff_unchanged (void)
{
  struct stat st;

  if (stat (parser_sniff.path, &st) != 0
      || st.st_dev != parser_sniff.st.st_dev
      || st.st_ino != parser_sniff.st.st_ino
      || st.st_size != parser_sniff.st.st_size
      || st.st_mtim.tv_sec != parser_sniff.st.st_mtim.tv_sec
      || st.st_mtim.tv_nsec != parser_sniff.st.st_mtim.tv_nsec)
    return FALSE;
  for (guint i = 0; i < parser_sniff.absent->len; i++)
    if (stat (parser_sniff.absent->pdata[i], &st) == 0 || errno != ENOENT)
      return FALSE;
  return TRUE;
}

static void
parser_sniff_load (void)
{
  const char *const *dirs;
  gchar *data = NULL;
  gsize len = 0;

  parser_sniff.absent = g_ptr_array_new_with_free_func (g_free);
  parser_sniff.own = FALSE;
  /* the xdgmime copied here is GLib 2.74's */
  if (glib_major_version != 2 || glib_minor_version != 74)
    return;
  dirs = g_content_type_get_mime_dirs ();
  for (guint i = 0; dirs != NULL && dirs[i] != NULL; i++)
    {
      char *path = g_build_filename (dirs[i], "mime.cache", NULL);
      struct stat st;

      if (stat (path, &st) == 0)
        {
          if (parser_sniff.path != NULL)
            {
              /* two caches: GIO weighs them; not copied here */
              g_free (path);
              return;
            }
          parser_sniff.path = path;
          parser_sniff.st = st;
        }
      else if (errno == ENOENT)
        g_ptr_array_add (parser_sniff.absent, path);
      else
        {
          g_free (path);
          return;
        }
    }
  if (parser_sniff.path == NULL
      || !g_file_get_contents (parser_sniff.path, &data, &len, NULL))
    return;
  parser_sniff.buf = (guint8 *) data;
  parser_sniff.size = len;
  /* read what was looked at: the same file, the same size */
  if ((gsize) parser_sniff.st.st_size != len || !parser_sniff_unchanged ()
      || !parser_sniff_valid ())
    return;
  parser_sniff.checked = g_get_monotonic_time ();
  parser_sniff.own = TRUE;
}

void
parser_sniff_init (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      parser_sniff_load ();
      g_once_init_leave (&once, 1);
    }
}

/* Whether to answer from the copy: loaded, and the caches still as read
 * (looked at again after PARSER_SNIFF_RECHECK_US; a change is for good).  */
static gboolean
parser_sniff_use_own (void)
{
  gboolean own;

  parser_sniff_init ();
  g_mutex_lock (&parser_sniff_lock);
  if (parser_sniff.own)
    {
      gint64 now = g_get_monotonic_time ();

      if (now - parser_sniff.checked >= PARSER_SNIFF_RECHECK_US)
        {
          parser_sniff.checked = now;
          if (!parser_sniff_unchanged ())
            parser_sniff.own = FALSE;
        }
    }
  own = parser_sniff.own;
  g_mutex_unlock (&parser_sniff_lock);
  return own;
}

gboolean
parser_sniff_own (void)
{
  return parser_sniff_use_own ();
}

/* ------------------------------------------------------------ the rules */

/* cache_magic_matchlet_compare_to_data, the offsets of a range without a
 * mask tried by one memmem.  */
static gboolean
parser_sniff_matchlet_data (guint32 m, const guint8 *d, gsize len)
{
  const guint8 *b = parser_sniff.buf;
  guint32 rs = parser_sniff_u32 (b, m), rl = parser_sniff_u32 (b, m + 4);
  guint32 dl = parser_sniff_u32 (b, m + 12);
  const guint8 *v = b + parser_sniff_u32 (b, m + 16);
  guint32 mo = parser_sniff_u32 (b, m + 20);
  gsize last;

  if (rl == 0 || (gsize) rs + dl > len)
    return FALSE;
  if (mo != 0)
    {
      const guint8 *mask = b + mo;

      for (guint32 i = rs; i < rs + rl; i++)
        {
          guint32 j;

          if ((gsize) i + dl > len)
            return FALSE;
          for (j = 0; j < dl; j++)
            if ((v[j] & mask[j]) != (d[i + j] & mask[j]))
              break;
          if (j == dl)
            return TRUE;
        }
      return FALSE;
    }
  if (rl == 1 || dl == 0)
    return memcmp (v, d + rs, dl) == 0;
  /* the last offset tried: the range's, or the last where the value
   * still fits */
  last = MIN ((gsize) rs + rl - 1, len - dl);
  return memmem (d + rs, last - rs + dl, v, dl) != NULL;
}

/* cache_magic_matchlet_compare  */
static gboolean
parser_sniff_matchlet (guint32 m, const guint8 *d, gsize len)
{
  const guint8 *b = parser_sniff.buf;
  guint32 n = parser_sniff_u32 (b, m + 24);
  guint32 child = parser_sniff_u32 (b, m + 28);

  if (!parser_sniff_matchlet_data (m, d, len))
    return FALSE;
  if (n == 0)
    return TRUE;
  for (guint32 i = 0; i < n; i++)
    if (parser_sniff_matchlet (child + 32 * i, d, len))
      return TRUE;
  return FALSE;
}

/* cache_magic_lookup_data with cache_magic_compare_to_data: the first
 * match's type, or NULL.  */
static const char *
parser_sniff_lookup (const guint8 *d, gsize len)
{
  const guint8 *b = parser_sniff.buf;
  guint32 list = parser_sniff_u32 (b, 24);
  guint32 n = parser_sniff_u32 (b, list);
  guint32 first = parser_sniff_u32 (b, list + 8);

  for (guint32 j = 0; j < n; j++)
    {
      guint32 m = first + 16 * j;
      guint32 k = parser_sniff_u32 (b, m + 8);
      guint32 ml = parser_sniff_u32 (b, m + 12);

      for (guint32 i = 0; i < k; i++)
        if (parser_sniff_matchlet (ml + 32 * i, d, len))
          return (const char *) b + parser_sniff_u32 (b, m + 4);
    }
  return NULL;
}

/* gcontenttype.c, looks_like_text  */
static gboolean
parser_sniff_looks_like_text (const guint8 *data, gsize n)
{
  for (gsize i = 0; i < n; i++)
    {
      char c = (char) data[i];

      if (g_ascii_iscntrl (c) && !g_ascii_isspace (c) && c != '\b')
        return FALSE;
    }
  return TRUE;
}

char *
parser_sniff_type (const guint8 *data, gsize n)
{
  const char *type;

  if (data == NULL || !parser_sniff_use_own ())
    {
      char *guess = g_content_type_guess (NULL, data, n, NULL);
      char *mime = guess ? g_content_type_get_mime_type (guess) : NULL;

      g_free (guess);
      return mime;
    }
  if (n == 0)
    return g_strdup ("application/x-zerosize");
  type = parser_sniff_lookup (data, n);
  if (type != NULL)
    return g_strdup (type);
  for (gsize i = 0; i < PARSER_SNIFF_FALLBACK && i < n; i++)
    if (data[i] < 32 && data[i] != 9 && data[i] != 10 && data[i] != 13)
      return g_strdup (parser_sniff_looks_like_text (data, n)
                       ? "text/plain" : "application/octet-stream");
  return g_strdup ("text/plain");
}
