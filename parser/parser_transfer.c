/*
 * parser_transfer.c - base64 and quoted-printable undone as GMime 3.2
 * undoes them (parser_transfer.h), without its filter stream.
 *
 * Owns nothing; pure.
 */
#include "parser/parser_transfer.h"

#include <string.h>

/* A base64 byte's value: 0-63 for the alphabet of RFC 4648 section 4,
 * PARSER_TRANSFER_PAD for '=', PARSER_TRANSFER_SKIP for anything else.  */
#define PARSER_TRANSFER_PAD  0x40
#define PARSER_TRANSFER_SKIP 0xFF

/* Not a digit, in the shifted tables: any bit above the 24 of a quartet */
#define PARSER_TRANSFER_NOT_DIGIT 0x80000000u

static guint8 parser_transfer_b64[256];
/* A digit's value already in its place in a quartet's 24 bits (the first
 * digit's shifted by 18, then 12, 6, 0), or PARSER_TRANSFER_NOT_DIGIT:
 * four look-ups OR-ed together are the quartet, or have that bit set.  */
static guint32 parser_transfer_q[4][256];

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
      for (guint k = 0; k < 4; k++)
        for (guint c = 0; c < 256; c++)
          parser_transfer_q[k][c]
              = parser_transfer_b64[c] < 64
                    ? (guint32) parser_transfer_b64[c] << (18 - 6 * k)
                    : PARSER_TRANSFER_NOT_DIGIT;
      g_once_init_leave (&once, 1);
    }
}

/* The quartet of four digits at @p, or a value with
 * PARSER_TRANSFER_NOT_DIGIT set.  */
static inline guint32
parser_transfer_quartet (const guint8 *p)
{
  return parser_transfer_q[0][p[0]] | parser_transfer_q[1][p[1]]
         | parser_transfer_q[2][p[2]] | parser_transfer_q[3][p[3]];
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

      /* whole quartets (a 76-byte line is nineteen of them), two at a
       * time while there are */
      if (held == 0)
        {
          while (end - p >= 8)
            {
              guint32 v = parser_transfer_quartet (p);
              guint32 u = parser_transfer_quartet (p + 4);

              if ((v | u) & PARSER_TRANSFER_NOT_DIGIT)
                break;
              o[0] = (guint8) (v >> 16);
              o[1] = (guint8) (v >> 8);
              o[2] = (guint8) v;
              o[3] = (guint8) (u >> 16);
              o[4] = (guint8) (u >> 8);
              o[5] = (guint8) u;
              o += 6;
              p += 8;
            }
          while (end - p >= 4)
            {
              guint32 v = parser_transfer_quartet (p);

              if (v & PARSER_TRANSFER_NOT_DIGIT)
                break;
              o[0] = (guint8) (v >> 16);
              o[1] = (guint8) (v >> 8);
              o[2] = (guint8) v;
              o += 3;
              p += 4;
            }
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
