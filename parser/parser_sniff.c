/*
 * parser_sniff.c - GIO 2.74's content sniffing over shared-mime-info's
 * mime.cache, with a range rule's value found by memmem (parser_sniff.h).
 *
 * Written here (no GLib code is copied: this file is MIT like the rest of
 * intake); it reads the system's own mime.cache at run time, as GIO does,
 * and gives the answers GIO gives.  The behaviour it reproduces, read
 * from GLib 2.74.6 (gio/gcontenttype.c g_content_type_guess
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
 * Owns: the copy of the mime.cache and its magic rules decoded (never
 * freed: the rules of the process).
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

/* A matchlet, decoded from the cache's big-endian record.  */
typedef struct parser_sniff_rule {
  guint32 rs, rl, dl;          /* range start and length, value length */
  guint32 n_children;
  const guint8 *value;
  const guint8 *mask;          /* NULL: none */
  const struct parser_sniff_rule *children;
} parser_sniff_rule;

/* A match: its type and its matchlets, in the cache's order.  */
typedef struct {
  const char *type;
  guint32 n;
  const parser_sniff_rule *rules;
} parser_sniff_match;

typedef struct {
  guint8 *buf;                 /* the mime.cache's bytes */
  gsize size;
  char *path;                  /* its file */
  struct stat st;              /* as it was when read */
  GPtrArray *absent;           /* char *: the other dirs' mime.cache, none
                                  there when read */
  parser_sniff_match *matches; /* the magic section, decoded */
  guint32 n_matches;
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

/* (transfer full, kept for the process) The @n matchlets from @off on
 * and their children, already checked by parser_sniff_valid().  */
static parser_sniff_rule *
parser_sniff_decode (guint32 off, guint32 n)
{
  const guint8 *b = parser_sniff.buf;
  parser_sniff_rule *r = g_new0 (parser_sniff_rule, MAX (n, 1));

  for (guint32 i = 0; i < n; i++)
    {
      guint32 m = off + 32 * i;
      guint32 mo = parser_sniff_u32 (b, m + 20);

      r[i].rs = parser_sniff_u32 (b, m);
      r[i].rl = parser_sniff_u32 (b, m + 4);
      r[i].dl = parser_sniff_u32 (b, m + 12);
      r[i].value = b + parser_sniff_u32 (b, m + 16);
      r[i].mask = mo != 0 ? b + mo : NULL;
      r[i].n_children = parser_sniff_u32 (b, m + 24);
      r[i].children = r[i].n_children > 0
                          ? parser_sniff_decode (parser_sniff_u32 (b, m + 28),
                                                 r[i].n_children)
                          : NULL;
    }
  return r;
}

static void
parser_sniff_decode_all (void)
{
  const guint8 *b = parser_sniff.buf;
  guint32 list = parser_sniff_u32 (b, 24);
  guint32 first = parser_sniff_u32 (b, list + 8);

  parser_sniff.n_matches = parser_sniff_u32 (b, list);
  parser_sniff.matches = g_new0 (parser_sniff_match,
                                 MAX (parser_sniff.n_matches, 1));
  for (guint32 j = 0; j < parser_sniff.n_matches; j++)
    {
      guint32 m = first + 16 * j;

      parser_sniff.matches[j].type =
          (const char *) b + parser_sniff_u32 (b, m + 4);
      parser_sniff.matches[j].n = parser_sniff_u32 (b, m + 8);
      parser_sniff.matches[j].rules =
          parser_sniff_decode (parser_sniff_u32 (b, m + 12),
                               parser_sniff.matches[j].n);
    }
}

static void
parser_sniff_load (void)
{
  const char *const *dirs;
  gchar *data = NULL;
  gsize len = 0;

  parser_sniff.absent = g_ptr_array_new_with_free_func (g_free);
  parser_sniff.own = FALSE;
  /* the xdgmime behaviour reproduced here is GLib 2.74's */
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
              /* two caches: GIO weighs them; not reproduced here */
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
  parser_sniff_decode_all ();
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
parser_sniff_rule_data (const parser_sniff_rule *r, const guint8 *d,
                        gsize len)
{
  gsize last;

  if (r->rl == 0 || (gsize) r->rs + r->dl > len)
    return FALSE;
  if (r->mask != NULL)
    {
      for (guint32 i = r->rs; i < r->rs + r->rl; i++)
        {
          guint32 j;

          if ((gsize) i + r->dl > len)
            return FALSE;
          for (j = 0; j < r->dl; j++)
            if ((r->value[j] & r->mask[j]) != (d[i + j] & r->mask[j]))
              break;
          if (j == r->dl)
            return TRUE;
        }
      return FALSE;
    }
  if (r->dl == 0)
    return TRUE;
  if (r->rl == 1)
    return d[r->rs] == r->value[0]
           && memcmp (r->value, d + r->rs, r->dl) == 0;
  /* the last offset tried: the range's, or the last where the value
   * still fits */
  last = MIN ((gsize) r->rs + r->rl - 1, len - r->dl);
  return memmem (d + r->rs, last - r->rs + r->dl, r->value, r->dl) != NULL;
}

/* cache_magic_matchlet_compare  */
static gboolean
parser_sniff_rule_match (const parser_sniff_rule *r, const guint8 *d,
                         gsize len)
{
  if (!parser_sniff_rule_data (r, d, len))
    return FALSE;
  if (r->n_children == 0)
    return TRUE;
  for (guint32 i = 0; i < r->n_children; i++)
    if (parser_sniff_rule_match (&r->children[i], d, len))
      return TRUE;
  return FALSE;
}

/* cache_magic_lookup_data with cache_magic_compare_to_data: the first
 * match's type, or NULL.  */
static const char *
parser_sniff_lookup (const guint8 *d, gsize len)
{
  for (guint32 j = 0; j < parser_sniff.n_matches; j++)
    {
      const parser_sniff_match *m = &parser_sniff.matches[j];

      for (guint32 i = 0; i < m->n; i++)
        if (parser_sniff_rule_match (&m->rules[i], d, len))
          return m->type;
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
