/*
 * parser_transfer.c - base64 and quoted-printable undone as GMime 3.2
 * undoes them (parser_transfer.h), without its filter stream.
 *
 * Owns nothing; pure.
 */
#include "parser/parser_transfer.h"

#include <string.h>

/* A base64 byte's value: 0-63 for the alphabet of RFC 4648 section 4,
 * PARSER_TRANSFER_PAD for '=', PARSER_TRANSFER_SKIP for anything else.
 * Both marks have one of the top two bits set, so four values OR-ed
 * together below 64 are four digits.  */
#define PARSER_TRANSFER_PAD  0x40
#define PARSER_TRANSFER_SKIP 0xFF

static guint8 parser_transfer_b64[256];

static void
parser_transfer_b64_init (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      static const char digits[]
          = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

      memset (parser_transfer_b64, PARSER_TRANSFER_SKIP,
              sizeof parser_transfer_b64);
      for (guint i = 0; i < 64; i++)
        parser_transfer_b64[(guchar) digits[i]] = (guint8) i;
      parser_transfer_b64['='] = PARSER_TRANSFER_PAD;
      g_once_init_leave (&once, 1);
    }
}

gsize
parser_transfer_base64 (const guint8 *p, gsize n, guint8 *out)
{
  const guint8 *const t = parser_transfer_b64;
  const guint8 *end = p + n;
  guint8 *o = out;
  guint32 saved = 0;
  guint held = 0; /* digits in @saved, 0-3 */

  parser_transfer_b64_init ();
  for (;;)
    {
      guint8 r;

      /* whole quartets (a 76-byte line is nineteen of them) */
      if (held == 0)
        while (end - p >= 4)
          {
            guint32 a = t[p[0]], b = t[p[1]], c = t[p[2]], d = t[p[3]];
            guint32 v;

            if ((a | b | c | d) >= 64)
              break;
            v = a << 18 | b << 12 | c << 6 | d;
            o[0] = (guint8) (v >> 16);
            o[1] = (guint8) (v >> 8);
            o[2] = (guint8) v;
            o += 3;
            p += 4;
          }
      if (p >= end)
        break;
      r = t[*p++];
      if (r == PARSER_TRANSFER_SKIP)
        continue;
      if (r == PARSER_TRANSFER_PAD)
        {
          /* GMime counts the '=' as a zero digit, then ends */
          held++;
          saved <<= 6;
          if (held >= 3)
            {
              if (held == 3)
                saved <<= 6;
              *o++ = (guint8) (saved >> 16);
              if (held == 4)
                *o++ = (guint8) (saved >> 8);
            }
          break;
        }
      saved = saved << 6 | r;
      if (++held == 4)
        {
          o[0] = (guint8) (saved >> 16);
          o[1] = (guint8) (saved >> 8);
          o[2] = (guint8) saved;
          o += 3;
          saved = 0;
          held = 0;
        }
    }
  return (gsize) (o - out);
}

static inline guint
parser_transfer_hex (guint8 c)
{
  return c <= '9' ? (guint) (c - '0') : (guint) ((c | 0x20) - 'a' + 10);
}

gsize
parser_transfer_qp (const guint8 *p, gsize n, guint8 *out)
{
  const guint8 *end = p + n;
  guint8 *o = out;

  while (p < end)
    {
      const guint8 *eq = memchr (p, '=', (gsize) (end - p));
      guint8 a, b;

      if (eq == NULL)
        {
          memcpy (o, p, (gsize) (end - p));
          o += end - p;
          break;
        }
      memcpy (o, p, (gsize) (eq - p));
      o += eq - p;
      p = eq + 1;
      if (p >= end)
        break;          /* "=" at the end: dropped */
      a = *p++;
      if (a == '\n')
        continue;       /* soft line break */
      if (p >= end)
        break;          /* "=" and one byte at the end: dropped */
      b = *p++;
      if (g_ascii_isxdigit (a) && g_ascii_isxdigit (b))
        *o++ = (guint8) (parser_transfer_hex (a) << 4 | parser_transfer_hex (b));
      else if (a == '\r' && b == '\n')
        ;               /* soft line break */
      else
        {
          o[0] = '=';
          o[1] = a;
          o[2] = b;
          o += 3;
        }
    }
  return (gsize) (o - out);
}
