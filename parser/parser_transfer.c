/*
 * parser_transfer.c - base64 and quoted-printable undone as GMime 3.2
 * undoes them (parser_transfer.h), without its filter stream.
 *
 * Owns nothing; pure.
 */
#include "parser/parser_transfer.h"

#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) \
    && (defined(__GNUC__) || defined(__clang__))
#define PARSER_TRANSFER_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* A base64 byte's value: 0-63 for the alphabet of RFC 4648 section 4,
 * PARSER_TRANSFER_PAD for '=', PARSER_TRANSFER_SKIP for anything else.  */
#define PARSER_TRANSFER_PAD  0x40
#define PARSER_TRANSFER_SKIP 0xFF

/* Not a digit, in the shifted tables: any bit above the 24 of a quartet */
#define PARSER_TRANSFER_NOT_DIGIT 0x80000000u

static guint8 parser_transfer_b64[256];
#ifdef PARSER_TRANSFER_X86
static gboolean parser_transfer_ssse3; /* the CPU has SSSE3 */
#endif
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
#ifdef PARSER_TRANSFER_X86
      {
        unsigned int a, b, c, d;

        parser_transfer_ssse3 = __get_cpuid (1, &a, &b, &c, &d)
                                && (c & bit_SSSE3) != 0;
      }
#endif
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

#ifdef PARSER_TRANSFER_X86
/* Sixteen digits at a time from @p while all sixteen are digits (no '=',
 * no byte outside the alphabet), as twelve bytes each at *@o; returns
 * where it stopped.  Each store writes sixteen bytes, four past the
 * twelve: overwritten next, or within PARSER_TRANSFER_BASE64_ROOM.  The
 * classification and the value of each digit by nibble look-ups
 * (pshufb), as in Mula and Lemire, "Faster Base64 Encoding and Decoding
 * using AVX2 Instructions" (2018), with SSSE3.  */
__attribute__ ((target ("ssse3"))) static const guint8 *
parser_transfer_b64_ssse3 (const guint8 *p, const guint8 *end, guint8 **o)
{
  /* a byte is a digit when the entries of its low and of its high nibble
   * share no bit */
  const __m128i lut_lo = _mm_setr_epi8 (0x15, 0x11, 0x11, 0x11, 0x11, 0x11,
                                        0x11, 0x11, 0x11, 0x11, 0x13, 0x1a,
                                        0x1b, 0x1b, 0x1b, 0x1a);
  const __m128i lut_hi = _mm_setr_epi8 (0x10, 0x10, 0x01, 0x02, 0x04, 0x08,
                                        0x04, 0x08, 0x10, 0x10, 0x10, 0x10,
                                        0x10, 0x10, 0x10, 0x10);
  /* what to add to a digit for its value, by its high nibble ('/' apart) */
  const __m128i lut_roll = _mm_setr_epi8 (0, 16, 19, 4, -65, -65, -71, -71,
                                          0, 0, 0, 0, 0, 0, 0, 0);
  const __m128i mask_2f = _mm_set1_epi8 (0x2f);
  const __m128i pack = _mm_setr_epi8 (2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12,
                                      -1, -1, -1, -1);
  guint8 *out = *o;

  while (end - p >= 16)
    {
      __m128i in = _mm_loadu_si128 ((const __m128i *) (const void *) p);
      __m128i hi_n = _mm_and_si128 (_mm_srli_epi32 (in, 4), mask_2f);
      __m128i lo_n = _mm_and_si128 (in, mask_2f);
      __m128i bad = _mm_and_si128 (_mm_shuffle_epi8 (lut_lo, lo_n),
                                   _mm_shuffle_epi8 (lut_hi, hi_n));
      __m128i roll, val;

      if (_mm_movemask_epi8 (_mm_cmpeq_epi8 (bad, _mm_setzero_si128 ()))
          != 0xffff)
        break;
      roll = _mm_shuffle_epi8 (
          lut_roll, _mm_add_epi8 (_mm_cmpeq_epi8 (in, mask_2f), hi_n));
      val = _mm_add_epi8 (in, roll);
      /* pairs of digits to 12 bits (the first high), pairs of those to
       * the 24 bits of a quartet, then three bytes of each, high first */
      val = _mm_maddubs_epi16 (val, _mm_set1_epi32 (0x01400140));
      val = _mm_madd_epi16 (val, _mm_set1_epi32 (0x00011000));
      _mm_storeu_si128 ((__m128i *) (void *) out, _mm_shuffle_epi8 (val, pack));
      out += 12;
      p += 16;
    }
  *o = out;
  return p;
}
#endif

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
#ifdef PARSER_TRANSFER_X86
          if (parser_transfer_ssse3)
            p = parser_transfer_b64_ssse3 (p, end, &o);
#endif
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
