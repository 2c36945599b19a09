/*
 * parser_sha256.c - SHA-256 (FIPS 180-4) of attachment content with the
 * x86 SHA extensions (SHA-NI: sha256rnds2, sha256msg1, sha256msg2), chosen
 * at run time; GLib's portable code everywhere else.  Attachments are
 * hashed whole, and GLib's SHA-256 was the largest single cost of parsing
 * a message with attachments (F8).
 *
 * Owns: nothing.  The digest is checked against GLib's in
 * tests/unit/test_parser_message.c (every length to 1 KiB and some large
 * ones).
 */
#include "parser/parser_sha256.h"

#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) \
    && (defined(__GNUC__) || defined(__clang__))
#define PARSER_SHA256_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static void
parser_sha256_to_hex (const guint8 digest[32], char hex[65])
{
  static const char digits[] = "0123456789abcdef";

  for (guint i = 0; i < 32; i++)
    {
      hex[2 * i] = digits[digest[i] >> 4];
      hex[2 * i + 1] = digits[digest[i] & 0xf];
    }
  hex[64] = '\0';
}

#ifdef PARSER_SHA256_X86

static const guint32 parser_sha256_k[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
  0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
  0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Compress @n 64-byte blocks at @p into @state (a b c d e f g h).  */
__attribute__ ((target ("sha,sse4.1,ssse3"))) static void
parser_sha256_blocks (guint32 state[8], const guint8 *p, gsize n)
{
  /* big-endian words from little-endian loads */
  const __m128i swap = _mm_set_epi64x (0x0c0d0e0f08090a0bULL,
                                       0x0405060700010203ULL);
  __m128i s0, s1, tmp;

  /* the instructions keep the state as ABEF and CDGH */
  tmp = _mm_loadu_si128 ((const __m128i *) (const void *) &state[0]);
  s1 = _mm_loadu_si128 ((const __m128i *) (const void *) &state[4]);
  tmp = _mm_shuffle_epi32 (tmp, 0xb1);      /* CDAB */
  s1 = _mm_shuffle_epi32 (s1, 0x1b);        /* EFGH */
  s0 = _mm_alignr_epi8 (tmp, s1, 8);        /* ABEF */
  s1 = _mm_blend_epi16 (s1, tmp, 0xf0);     /* CDGH */

  for (; n > 0; n--, p += 64)
    {
      const __m128i abef = s0, cdgh = s1;
      __m128i w[4];

      /* 16 groups of 4 rounds; w[g % 4] holds message words 4g..4g+3 */
      for (guint g = 0; g < 16; g++)
        {
          __m128i msg;

          if (g < 4)
            w[g] = _mm_shuffle_epi8 (
                _mm_loadu_si128 ((const __m128i *) (const void *) (p
                                                                   + 16 * g)),
                swap);
          else
            w[g % 4] = _mm_sha256msg2_epu32 (
                _mm_add_epi32 (_mm_sha256msg1_epu32 (w[g % 4],
                                                     w[(g + 1) % 4]),
                               _mm_alignr_epi8 (w[(g + 3) % 4],
                                                w[(g + 2) % 4], 4)),
                w[(g + 3) % 4]);
          msg = _mm_add_epi32 (
              w[g % 4],
              _mm_loadu_si128 ((const __m128i *) (const void *)
                                   &parser_sha256_k[4 * g]));
          s1 = _mm_sha256rnds2_epu32 (s1, s0, msg);
          msg = _mm_shuffle_epi32 (msg, 0x0e);
          s0 = _mm_sha256rnds2_epu32 (s0, s1, msg);
        }
      s0 = _mm_add_epi32 (s0, abef);
      s1 = _mm_add_epi32 (s1, cdgh);
    }

  tmp = _mm_shuffle_epi32 (s0, 0x1b);       /* FEBA */
  s1 = _mm_shuffle_epi32 (s1, 0xb1);        /* DCHG */
  s0 = _mm_blend_epi16 (tmp, s1, 0xf0);     /* DCBA */
  s1 = _mm_alignr_epi8 (s1, tmp, 8);        /* HGFE */
  _mm_storeu_si128 ((__m128i *) (void *) &state[0], s0);
  _mm_storeu_si128 ((__m128i *) (void *) &state[4], s1);
}

static gboolean
parser_sha256_cpu (void)
{
  unsigned int a, b, c, d;

  /* SSSE3 and SSE4.1 (leaf 1), SHA (leaf 7) */
  if (!__get_cpuid (1, &a, &b, &c, &d) || !(c & (1u << 9))
      || !(c & (1u << 19)))
    return FALSE;
  if (!__get_cpuid_count (7, 0, &a, &b, &c, &d))
    return FALSE;
  return (b & (1u << 29)) != 0;
}

gboolean
parser_sha256_accelerated (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    g_once_init_leave (&once, parser_sha256_cpu () ? 2 : 1);
  return once == 2;
}

static void
parser_sha256_ni (const guint8 *data, gsize len, guint8 digest[32])
{
  guint32 state[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
  guint8 tail[128] = { 0 };
  gsize full = len / 64, rest = len % 64, tail_len;
  guint64 bits = (guint64) len * 8;

  parser_sha256_blocks (state, data, full);
  /* the padding: 0x80, zeros, the length in bits (big-endian) */
  memcpy (tail, data + full * 64, rest);
  tail[rest] = 0x80;
  tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
  for (guint i = 0; i < 8; i++)
    tail[tail_len - 1 - i] = (guint8) (bits >> (8 * i));
  parser_sha256_blocks (state, tail, tail_len / 64);
  for (guint i = 0; i < 8; i++)
    {
      digest[4 * i] = (guint8) (state[i] >> 24);
      digest[4 * i + 1] = (guint8) (state[i] >> 16);
      digest[4 * i + 2] = (guint8) (state[i] >> 8);
      digest[4 * i + 3] = (guint8) state[i];
    }
}

#else

gboolean
parser_sha256_accelerated (void)
{
  return FALSE;
}

#endif

void
parser_sha256_hex (const void *data, gsize len, char hex[65])
{
#ifdef PARSER_SHA256_X86
  if (parser_sha256_accelerated ())
    {
      guint8 digest[32];

      parser_sha256_ni (len > 0 ? data : (const guint8 *) "", len, digest);
      parser_sha256_to_hex (digest, hex);
      return;
    }
#endif
  {
    GChecksum *c = g_checksum_new (G_CHECKSUM_SHA256);
    guint8 digest[32];
    gsize dl = sizeof digest;

    if (len > 0)
      g_checksum_update (c, data, (gssize) len);
    g_checksum_get_digest (c, digest, &dl);
    g_checksum_free (c);
    parser_sha256_to_hex (digest, hex);
  }
}
