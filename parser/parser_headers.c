/*
 * parser_headers.c - GMime's one-time set-up, and cleaning header text for
 * display: valid UTF-8, no control or bidi-override characters, bounded.
 *
 * Owns: nothing beyond the call.
 */
#include "parser/parser_headers.h"
#include "parser/parser_charset.h"
#include "parser/parser_sniff.h"

#include <string.h>

#include "parser/parser_text.h"

#include <gmime/gmime.h>

void
parser_init (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      g_mime_init ();
      /* GMime's fallback for 8-bit header values (parser_message_parse)
       * and the commonest declared charset: loaded once, not per value
       * (parser_charset.h) */
      (void) parser_charset_pin (g_mime_charset_iconv_name ("windows-1252"));
      /* the content-sniffing rules, read before any sandbox */
      parser_sniff_init ();
      g_once_init_leave (&once, 1);
    }
}

/* TRUE if the eight bytes at @s are printable ASCII (0x20-0x7e).  */
static inline gboolean
parser_clean_printable8 (const char *s)
{
  const guint64 ones = 0x0101010101010101ULL;
  const guint64 highs = 0x8080808080808080ULL;
  guint64 x, del;

  memcpy (&x, s, 8);
  del = x ^ (0x7f * ones);
  /* a byte >= 0x80, a byte < 0x20, or a byte 0x7f */
  return ((x | ((x - 0x20 * ones) & ~x) | ((del - ones) & ~del)) & highs)
         == 0;
}

/* One pass over valid UTF-8 without NULs: controls become spaces, the
 * output is cut before the first character whose (original) bytes would
 * take it over @max.  Eight printable ASCII bytes are copied at once
 * (a folded value is mostly those, between its tabs).  */
static char *
parser_clean_valid (const char *s, gsize n, gsize max)
{
  char *out = g_malloc (MIN (n, max) + 1);
  gsize o = 0;

  for (gsize i = 0; i < n;)
    {
      guchar c = (guchar) s[i];
      gsize k;

      if (i + 8 <= n && o + 8 <= max && parser_clean_printable8 (s + i))
        {
          memcpy (out + o, s + i, 8);
          o += 8;
          i += 8;
          continue;
        }
      if (c < 0x80)
        {
          if (o + 1 > max)
            break;
          out[o++] = c < 0x20 || c == 0x7f ? ' ' : (char) c;
          i++;
          continue;
        }
      k = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
      if (o + k > max)
        break;
      /* C1 controls (U+0080-U+009F), bidi embeddings and overrides
       * (U+202A-U+202E) and isolates (U+2066-U+2069) */
      if ((c == 0xc2 && (guchar) s[i + 1] < 0xa0)
          || (c == 0xe2 && (guchar) s[i + 1] == 0x80
              && (guchar) s[i + 2] >= 0xaa && (guchar) s[i + 2] <= 0xae)
          || (c == 0xe2 && (guchar) s[i + 1] == 0x81
              && (guchar) s[i + 2] >= 0xa6 && (guchar) s[i + 2] <= 0xa9))
        out[o++] = ' ';
      else
        {
          memcpy (out + o, s + i, k);
          o += k;
        }
      i += k;
    }
  out[o] = '\0';
  return out;
}

/* TRUE if [s, s + n) is all printable ASCII (0x20-0x7e), eight bytes at
 * a time.  */
static gboolean
parser_clean_printable (const char *s, gsize n)
{
  gsize i = 0;

  for (; i + 8 <= n; i += 8)
    if (!parser_clean_printable8 (s + i))
      return FALSE;
  for (; i < n; i++)
    if ((guchar) s[i] < 0x20 || (guchar) s[i] >= 0x7f)
      return FALSE;
  return TRUE;
}

char *
parser_clean_text (const char *s, gssize len, gsize max)
{
  g_autofree char *valid = NULL;
  gsize n;

  if (s == NULL)
    return NULL;
  n = len < 0 ? strlen (s) : (gsize) len;
  /* Printable ASCII (most header values) comes out as it is, cut at
   * @max: no character to replace, each one byte.  */
  if (parser_clean_printable (s, n))
    {
      gsize k = MIN (n, max);
      char *out = g_malloc (k + 1);

      memcpy (out, s, k);
      out[k] = '\0';
      return out;
    }
  /* NULs are refused too: those go the slow way */
  if (parser_text_utf8_valid (s, n))
    return parser_clean_valid (s, n, max);
  valid = g_utf8_make_valid (s, len);
  return parser_clean_valid (valid, strlen (valid), max);
}
