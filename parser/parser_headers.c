/*
 * parser_headers.c - GMime's one-time set-up, and cleaning header text for
 * display: valid UTF-8, no control or bidi-override characters, bounded.
 *
 * Owns: nothing beyond the call.
 */
#include "parser/parser_headers.h"

#include <string.h>

#include <gmime/gmime.h>

void
parser_init (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      g_mime_init ();
      g_once_init_leave (&once, 1);
    }
}

char *
parser_clean_text (const char *s, gssize len, gsize max)
{
  g_autofree char *valid = NULL;
  GString *out;

  if (s == NULL)
    return NULL;
  valid = g_utf8_make_valid (s, len);
  out = g_string_sized_new (strlen (valid));
  for (const char *p = valid; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      const char *next = g_utf8_next_char (p);

      if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)
          || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069))
        c = ' ';
      if (out->len + (gsize) (next - p) > max)
        break;
      g_string_append_unichar (out, c);
    }
  return g_string_free (out, FALSE);
}
