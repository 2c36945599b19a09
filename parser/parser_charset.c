/*
 * parser_charset.c - HZ (RFC 1843) over glibc's GB2312.
 *
 * Owns nothing but the converters it pins (parser_charset_pin, one
 * iconv descriptor per charset for the life of the process); the HZ
 * decoder is pure but for one iconv descriptor per call.  Refuses
 * nothing: bytes that are not HZ become U+FFFD (parser_charset.h).
 */
#include "parser/parser_charset.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>

/* Not HZ: a byte no EUC-CN decoder accepts, so iconv reports it.  */
#define PARSER_CHARSET_BAD 0xFF

gboolean
parser_charset_is_hz (const char *name, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if (name[i] == '*')
      {
        len = i;
        break;
      }
  return (len == 10 && g_ascii_strncasecmp (name, "hz-gb-2312", 10) == 0)
         || (len == 9 && g_ascii_strncasecmp (name, "hz-gb2312", 9) == 0)
         || (len == 2 && g_ascii_strncasecmp (name, "hz", 2) == 0);
}

GByteArray *
parser_charset_hz_to_euc (const guint8 *p, gsize n, gboolean *bad)
{
  GByteArray *out = g_byte_array_sized_new ((guint) MIN (n, G_MAXUINT));
  gboolean gb = FALSE, wrong = FALSE;
  const guint8 badc = PARSER_CHARSET_BAD;
  gsize i = 0;

  while (i < n)
    {
      guint8 c = p[i];

      if (c == '~')
        {
          guint8 d = i + 1 < n ? p[i + 1] : 0;

          if (!gb && d == '~')
            g_byte_array_append (out, &d, 1);
          else if (!gb && d == '{')
            gb = TRUE;
          else if (gb && d == '}')
            gb = FALSE;
          else if (!gb && d == '\n')
            ;                                   /* line continuation */
          else if (!gb && d == '\r' && i + 2 < n && p[i + 2] == '\n')
            i++;                                /* the same, CRLF */
          else
            {
              /* '~' before anything else, or at the very end */
              g_byte_array_append (out, &badc, 1);
              wrong = TRUE;
              i++;
              continue;
            }
          i += 2;
          continue;
        }
      if (c >= 0x80)
        {
          g_byte_array_append (out, &badc, 1);
          wrong = TRUE;
          i++;
          continue;
        }
      if (!gb)
        {
          g_byte_array_append (out, &c, 1);
          i++;
          continue;
        }
      if (c == '\n' || c == '\r')
        {
          /* a line end in GB mode: back to ASCII (mailers that forget
           * "~}" at the end of a line mean that) */
          g_byte_array_append (out, &c, 1);
          gb = FALSE;
          wrong = TRUE;
          i++;
          continue;
        }
      if (c >= 0x21 && c <= 0x7e && i + 1 < n && p[i + 1] >= 0x21
          && p[i + 1] <= 0x7e)
        {
          guint8 pair[2] = { (guint8) (c | 0x80), (guint8) (p[i + 1] | 0x80) };

          g_byte_array_append (out, pair, 2);
          i += 2;
          continue;
        }
      /* a lone byte in GB mode: a space, a control, or the last byte */
      g_byte_array_append (out, &badc, 1);
      wrong = TRUE;
      i++;
    }
  if (bad != NULL && wrong)
    *bad = TRUE;
  return out;
}

char *
parser_charset_hz_to_utf8 (const guint8 *p, gsize n, gsize *len,
                           gboolean *bad)
{
  g_autoptr (GByteArray) euc = parser_charset_hz_to_euc (p, n, bad);
  GString *out = g_string_sized_new (euc->len + euc->len / 2 + 1);
  GIConv cd = g_iconv_open ("UTF-8", "GB2312");
  gchar *in = (gchar *) euc->data;
  gsize inleft = euc->len;
  char buf[4096];

  g_assert (cd != (GIConv) -1);      /* glibc always has GB2312 */
  while (inleft > 0)
    {
      gchar *o = buf;
      gsize oleft = sizeof buf;
      gsize r = g_iconv (cd, &in, &inleft, &o, &oleft);
      int err = errno;

      g_string_append_len (out, buf, o - buf);
      if (r != (gsize) -1 || (err == E2BIG && o != buf))
        continue;
      /* EILSEQ (our 0xFF, or a pair GB2312 leaves unassigned) or EINVAL
       * (a lead byte at the end): U+FFFD */
      g_string_append (out, "\xef\xbf\xbd");
      if (bad != NULL)
        *bad = TRUE;
      /* an unassigned pair goes as one, or its second byte would start
       * the next */
      if (inleft >= 2 && (guint8) in[0] >= 0xa1 && (guint8) in[0] < 0xff
          && (guint8) in[1] >= 0xa1 && (guint8) in[1] < 0xff)
        {
          in++;
          inleft--;
        }
      in++;
      inleft--;
      g_iconv (cd, NULL, NULL, NULL, NULL);
    }
  g_iconv_close (cd);
  if (len != NULL)
    *len = out->len;
  return g_string_free (out, FALSE);
}

gboolean
parser_charset_pin (const char *iconv_name)
{
  static GMutex lock;
  /* each pin's name and its descriptor, kept open on purpose: held
   * here, where a leak checker sees it, not dropped */
  static struct {
    char *name;
    iconv_t cd;
  } pins[PARSER_CHARSET_PINS];
  static guint n_pins;
  gboolean known = TRUE;
  iconv_t cd;

  if (iconv_name == NULL)
    return FALSE;
  g_mutex_lock (&lock);
  for (guint i = 0; i < n_pins; i++)
    if (g_ascii_strcasecmp (pins[i].name, iconv_name) == 0)
      goto out;
  cd = iconv_open ("UTF-8", iconv_name);
  if (cd == (iconv_t) -1)
    known = FALSE;
  else if (n_pins < PARSER_CHARSET_PINS)
    {
      pins[n_pins].cd = cd;
      pins[n_pins++].name = g_strdup (iconv_name);
    }
  else
    iconv_close (cd);
out:
  g_mutex_unlock (&lock);
  return known;
}
