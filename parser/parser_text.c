/*
 * parser_text.c - pure functions on decoded text (parser_text.h): HTML to
 * text, format=flowed, quoted history, card redaction, personal data,
 * the special-category lexicon, auto-reply detection, case references.
 *
 * Owns: nothing beyond a call, except a loaded parser_lexicon.
 * Refuses: nothing; any input gives an answer.  Every scanner here is
 * hand-written and moves forward through its input, looking at most a
 * bounded window (a named constant below) around a position, so the time
 * is linear in the input (SECURITY-TESTS 74: no regular expressions, no
 * backtracking).  Input that is not valid UTF-8 is repaired first (invalid
 * bytes and NULs become U+FFFD), so every output is valid UTF-8 and no
 * scanner can step into the middle of a character.
 */
#include "parser/parser_text.h"

#include <string.h>

/* ------------------------------------------------------------ limits */

/* Longest href shown after a link's text; longer ones are dropped (the
 * text stays).  Browsers cope with 2 MB; a reader of a case does not.  */
#define PARSER_TEXT_LINK_MAX            2048
/* Tag names longer than this are unknown tags (the longest we know is
 * "blockquote"/"figcaption", 10).  */
#define PARSER_TEXT_TAG_NAME_MAX        16
/* Named character references: the longest HTML 4 name is 8 bytes.  */
#define PARSER_TEXT_ENTITY_NAME_MAX     32
/* Indentation of nested lists stops growing here.  */
#define PARSER_TEXT_LIST_INDENT_MAX     8
/* An "On ... wrote:" attribution: at most 3 lines and this many bytes.  */
#define PARSER_TEXT_ATTRIBUTION_LINES   3
#define PARSER_TEXT_ATTRIBUTION_MAX     400
/* Lines after "From:" searched for Sent/To/Subject of a header block.  */
#define PARSER_TEXT_HEADER_BLOCK_LINES  10
/* Lines around a Lotus Notes "To" line searched for its block.  */
#define PARSER_TEXT_LOTUS_LINES         8
/* Card numbers: ISO/IEC 7812 PANs are 13 to 19 digits.  */
#define PARSER_TEXT_CARD_MIN            13
#define PARSER_TEXT_CARD_MAX            19
/* A date of birth must start within this many bytes after its keyword;
 * sort codes and account numbers within this many of theirs.  */
#define PARSER_TEXT_DOB_WINDOW          40
#define PARSER_TEXT_NEAR_WINDOW         40
/* Entries one call may add to a result array: a 4 MB text of addresses
 * must not become a million-entry list (STYLE habit 8).  */
#define PARSER_TEXT_PD_MAX              10000
#define PARSER_TEXT_REFS_MAX            1000
/* Lexicon: file size, terms, words per term, bytes per word.  */
#define PARSER_TEXT_LEXICON_FILE_MAX    (16 * 1024 * 1024)
#define PARSER_TEXT_LEXICON_TERMS_MAX   100000
#define PARSER_TEXT_LEXICON_WORDS_MAX   8
#define PARSER_TEXT_WORD_MAX            64
/* Punctuation kept between two words of a term ("crohn's", "self-harm").  */
#define PARSER_TEXT_GAP_MAX             8
/* E-mail addresses: RFC 5321 4.5.3.1 sizes of a local part and a domain.  */
#define PARSER_TEXT_LOCAL_PART_MAX      64
#define PARSER_TEXT_DOMAIN_MAX          253
/* Bytes of an attribute or header value searched for a keyword
 * (class="MsoNormal", X-POST-MessageClass: "...Autoresponder").  */
#define PARSER_TEXT_KEYWORD_SPAN        256
/* Bytes of a subject looked at for out-of-office phrases, and of a body
 * looked at to confirm a subject too common to decide alone.  */
#define PARSER_TEXT_SUBJECT_MAX         1024
#define PARSER_TEXT_BODY_MAX            2048

G_DEFINE_QUARK (parser-lexicon-error-quark, parser_lexicon_error)

/* ------------------------------------------------------------ helpers */

/* Eight bytes at a time while they are ASCII: texts are long and mostly
 * ASCII.  */
gboolean
parser_text_utf8_valid (const char *s, gsize n)
{
  const guchar *p, *end;

  if (n == 0)
    return TRUE;              /* NULL with no bytes is fine */
  p = (const guchar *) s;
  end = p + n;

  while (p < end)
    {
      guint c;

      if (end - p >= 8)
        {
          guint64 x;

          memcpy (&x, p, 8);
          /* no byte with the high bit set, and no zero byte */
          if (((x | ((x - 0x0101010101010101ULL) & ~x))
               & 0x8080808080808080ULL)
              == 0)
            {
              p += 8;
              continue;
            }
        }
      c = *p;
      if (c < 0x80)
        {
          if (c == 0)
            return FALSE;
          p++;
          continue;
        }
      if (c < 0xc2 || c > 0xf4)
        return FALSE;
      if (c < 0xe0)
        {
          if (end - p < 2 || (p[1] & 0xc0) != 0x80)
            return FALSE;
          p += 2;
        }
      else if (c < 0xf0)
        {
          if (end - p < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
              || (c == 0xe0 && p[1] < 0xa0)     /* overlong */
              || (c == 0xed && p[1] > 0x9f))    /* surrogates */
            return FALSE;
          p += 3;
        }
      else
        {
          if (end - p < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
              || (p[3] & 0xc0) != 0x80
              || (c == 0xf0 && p[1] < 0x90)     /* overlong */
              || (c == 0xf4 && p[1] > 0x8f))    /* over U+10FFFF */
            return FALSE;
          p += 4;
        }
    }
  return TRUE;
}

/* @s when it is valid UTF-8 without NULs in its @len bytes, else a
 * repaired copy (U+FFFD for each bad byte) left in *@tmp; *@out_len gets
 * the length of what is returned.  */
static const char *
parser_text_valid (const char *s, gssize len, gsize *out_len, char **tmp)
{
  gsize n = len < 0 ? strlen (s) : (gsize) len;

  *tmp = NULL;
  if (parser_text_utf8_valid (s, n))
    {
      *out_len = n;
      return s;
    }
  *tmp = g_utf8_make_valid (s, (gssize) n);
  *out_len = strlen (*tmp);
  return *tmp;
}

/* The NUL-terminated @text as valid UTF-8: @text itself when the caller
 * promises it is (@valid; the promise is checked in sanitizer builds,
 * where the tests run), else parser_text_valid ()'s answer.  */
static const char *
parser_text_input (const char *text, gboolean valid, gsize *out_len,
                   char **tmp)
{
  if (!valid)
    return parser_text_valid (text, -1, out_len, tmp);
  *tmp = NULL;
  *out_len = strlen (text);
#if defined(__SANITIZE_ADDRESS__)
  g_assert (parser_text_utf8_valid (text, *out_len));
#endif
  return text;
}

/* Byte classes for the lexicon's and personal data's scans: an ASCII
 * letter or digit, a byte of a multi-byte character, the NUL after the
 * text.  Every text they scan is NUL-terminated (strlen() gave its end),
 * so a loop over letters and digits needs no end test of its own.  */
#define PARSER_TEXT_C_ALNUM 1u
#define PARSER_TEXT_C_HIGH  2u
#define PARSER_TEXT_C_NUL   4u
#define PARSER_TEXT_C_DIGIT 8u
#define PARSER_TEXT_C_ALPHA 16u
#define PARSER_TEXT_C_PD    32u /* '@', '+', '(' */
#define PARSER_TEXT_C_KW    64u /* a, b, d, s: a personal data keyword's */

#define PARSER_TEXT_C_D (PARSER_TEXT_C_ALNUM | PARSER_TEXT_C_DIGIT)
#define PARSER_TEXT_C_A (PARSER_TEXT_C_ALNUM | PARSER_TEXT_C_ALPHA)
#define PARSER_TEXT_C_K (PARSER_TEXT_C_A | PARSER_TEXT_C_KW)
#define PARSER_TEXT_C_H PARSER_TEXT_C_HIGH
#define PARSER_TEXT_C_P PARSER_TEXT_C_PD
#define PARSER_TEXT_C_16H                                                     \
  PARSER_TEXT_C_H, PARSER_TEXT_C_H, PARSER_TEXT_C_H, PARSER_TEXT_C_H,         \
      PARSER_TEXT_C_H, PARSER_TEXT_C_H, PARSER_TEXT_C_H, PARSER_TEXT_C_H,     \
      PARSER_TEXT_C_H, PARSER_TEXT_C_H, PARSER_TEXT_C_H, PARSER_TEXT_C_H,     \
      PARSER_TEXT_C_H, PARSER_TEXT_C_H, PARSER_TEXT_C_H, PARSER_TEXT_C_H

static const guint8 parser_text_class[256] = {
  PARSER_TEXT_C_NUL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  /*  ! " # $ % & ' ( ) * + , - . / */
  0, 0, 0, 0, 0, 0, 0, 0, PARSER_TEXT_C_P, 0, 0, PARSER_TEXT_C_P, 0, 0, 0, 0,
  /* 0-9 : ; < = > ? */
  PARSER_TEXT_C_D, PARSER_TEXT_C_D, PARSER_TEXT_C_D, PARSER_TEXT_C_D,
  PARSER_TEXT_C_D, PARSER_TEXT_C_D, PARSER_TEXT_C_D, PARSER_TEXT_C_D,
  PARSER_TEXT_C_D, PARSER_TEXT_C_D, 0, 0, 0, 0, 0, 0,
  /* @ A-O */
  PARSER_TEXT_C_P, PARSER_TEXT_C_K, PARSER_TEXT_C_K, PARSER_TEXT_C_A,
  PARSER_TEXT_C_K, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A,
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A,
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A,
  /* P-Z [ \ ] ^ _ */
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_K,
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A,
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, 0, 0, 0, 0, 0,
  /* ` a-o */
  0, PARSER_TEXT_C_K, PARSER_TEXT_C_K, PARSER_TEXT_C_A,
  PARSER_TEXT_C_K, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A,
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A,
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A,
  /* p-z { | } ~ DEL */
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_K,
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A,
  PARSER_TEXT_C_A, PARSER_TEXT_C_A, PARSER_TEXT_C_A, 0, 0, 0, 0, 0,
  PARSER_TEXT_C_16H, PARSER_TEXT_C_16H, PARSER_TEXT_C_16H, PARSER_TEXT_C_16H,
  PARSER_TEXT_C_16H, PARSER_TEXT_C_16H, PARSER_TEXT_C_16H, PARSER_TEXT_C_16H,
};

/* A window of PARSER_TEXT_WIN bytes classified at once (SSE2, part of
 * every x86-64): bit i of each mask is byte i.  The callers skip by these
 * masks the stretches no detector or term can start in, and run their
 * byte loops only around the bytes that can; every window lies inside
 * the text (its NUL is not in one), so a load never passes the end.  */
#define PARSER_TEXT_WIN 64

#if defined(__SSE2__)
#include <emmintrin.h>
#define PARSER_TEXT_HAVE_WIN 1

typedef struct {
  guint64 alnum; /* ASCII letters and digits */
  guint64 other; /* digits, '@', '+', '(' and bytes >= 0x80 (pd) or
                  * bytes >= 0x80 alone (lexicon) */
  guint64 kw;    /* the first byte of a personal data keyword's first
                  * two (pd only) */
} parser_text_win;

G_ALWAYS_INLINE static inline void
parser_text_win_load (const char *p, gboolean pd, parser_text_win *w)
{
  /* a range test in one signed compare: the range moved to the bottom
   * of the signed bytes (letters folded by the 0x20 bit first); a byte
   * >= 0x80 lands above it either way */
  const __m128i x20 = _mm_set1_epi8 (0x20);
  const __m128i to_a = _mm_set1_epi8 ((char) (0x80 - 'a'));
  const __m128i to_0 = _mm_set1_epi8 ((char) (0x80 - '0'));
  const __m128i n_a = _mm_set1_epi8 ((char) (0x80 + 26));
  const __m128i n_0 = _mm_set1_epi8 ((char) (0x80 + 10));

  w->alnum = w->other = w->kw = 0;
  for (int k = 0; k < PARSER_TEXT_WIN / 16; k++)
    {
      __m128i v
          = _mm_loadu_si128 ((const __m128i *) (const void *) (p + 16 * k));
      __m128i lo = _mm_or_si128 (v, x20);
      __m128i alpha = _mm_cmpgt_epi8 (n_a, _mm_add_epi8 (lo, to_a));
      __m128i digit = _mm_cmpgt_epi8 (n_0, _mm_add_epi8 (v, to_0));
      guint64 high;

      w->alnum |= (guint64) (guint) _mm_movemask_epi8 (
                      _mm_or_si128 (alpha, digit))
                  << (16 * k);
      if (pd)
        {
          __m128i o = _mm_or_si128 (
              _mm_or_si128 (digit, _mm_cmpeq_epi8 (v, _mm_set1_epi8 ('@'))),
              _mm_or_si128 (_mm_cmpeq_epi8 (v, _mm_set1_epi8 ('+')),
                            _mm_cmpeq_epi8 (v, _mm_set1_epi8 ('('))));
          /* the two bytes a keyword starts with (a superset of
           * parser_pd_keyword_start(): "a" and a control byte 0x0f
           * passes as "a/"); the window's last byte's next one is read
           * too, so a pd window has one byte after it */
          __m128i lo2 = _mm_or_si128 (
              _mm_loadu_si128 (
                  (const __m128i *) (const void *) (p + 16 * k + 1)),
              x20);
#define PARSER_TEXT_EQ(x, c) _mm_cmpeq_epi8 ((x), _mm_set1_epi8 (c))
          __m128i kw = _mm_or_si128 (
              _mm_or_si128 (
                  _mm_and_si128 (PARSER_TEXT_EQ (lo, 'a'),
                                 _mm_or_si128 (PARSER_TEXT_EQ (lo2, 'c'),
                                               PARSER_TEXT_EQ (lo2, '/'))),
                  _mm_and_si128 (PARSER_TEXT_EQ (lo, 'b'),
                                 _mm_or_si128 (PARSER_TEXT_EQ (lo2, 'o'),
                                               PARSER_TEXT_EQ (lo2, 'i')))),
              _mm_or_si128 (
                  _mm_and_si128 (
                      PARSER_TEXT_EQ (lo, 'd'),
                      _mm_or_si128 (_mm_or_si128 (PARSER_TEXT_EQ (lo2, 'a'),
                                                  PARSER_TEXT_EQ (lo2, 'o')),
                                    PARSER_TEXT_EQ (lo2, '.'))),
                  _mm_and_si128 (PARSER_TEXT_EQ (lo, 's'),
                                 PARSER_TEXT_EQ (lo2, 'o'))));
#undef PARSER_TEXT_EQ

          high = (guint) _mm_movemask_epi8 (_mm_or_si128 (o, v));
          w->kw |= (guint64) (guint) _mm_movemask_epi8 (kw) << (16 * k);
          w->other |= high << (16 * k);
          /* the caller stops at the first such byte: the rest of the
           * window is not needed */
          if (high != 0)
            return;
        }
      else
        w->other |= (guint64) (guint) _mm_movemask_epi8 (v) << (16 * k);
    }
}
#endif

/* The first ASCII digit in [p, end) (end: the text's NUL), or NULL: as
 * strpbrk (p, "0123456789"), sixteen bytes at a time while sixteen are
 * left, without strpbrk()'s set-up for each call.  */
static const char *
parser_text_next_digit (const char *p, const char *end)
{
#if defined(PARSER_TEXT_HAVE_WIN)
  const __m128i to_0 = _mm_set1_epi8 ((char) (0x80 - '0'));
  const __m128i n_0 = _mm_set1_epi8 ((char) (0x80 + 10));

  while (end - p >= 16)
    {
      __m128i v = _mm_loadu_si128 ((const __m128i *) (const void *) p);
      guint m = (guint) _mm_movemask_epi8 (
          _mm_cmpgt_epi8 (n_0, _mm_add_epi8 (v, to_0)));

      if (m != 0)
        return p + __builtin_ctz (m);
      p += 16;
    }
#endif
  for (; p < end; p++)
    if (*p >= '0' && *p <= '9')
      return p;
  return NULL;
}

/* A constant string and its length, for tables compared against spans
 * (no strlen() each time round).  */
typedef struct {
  const char *s;
  gsize len;
} parser_text_lit;
#define PARSER_TEXT_LIT(str) { str, sizeof str - 1 }

static gboolean
parser_text_is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
         || c == '\v';
}

/* TRUE when the character before @p (not before @start) is a letter or a
 * digit of any script.  */
static gboolean
parser_text_word_before (const char *start, const char *p)
{
  const char *q;

  if (p <= start)
    return FALSE;
  if ((guchar) p[-1] < 0x80)
    return g_ascii_isalnum (p[-1]);
  q = g_utf8_find_prev_char (start, p);
  return q != NULL && g_unichar_isalnum (g_utf8_get_char (q));
}

/* TRUE when the character at @p (before @end) is a letter or a digit.  */
static gboolean
parser_text_word_at (const char *p, const char *end)
{
  if (p >= end)
    return FALSE;
  if ((guchar) *p < 0x80)
    return g_ascii_isalnum (*p);
  return g_unichar_isalnum (g_utf8_get_char (p));
}

static gboolean
parser_text_prefix_ci (const char *s, gsize len, const char *prefix)
{
  gsize n = strlen (prefix);

  return len >= n && g_ascii_strncasecmp (s, prefix, n) == 0;
}

static gboolean
parser_text_suffix_ci (const char *s, gsize len, const char *suffix)
{
  gsize n = strlen (suffix);

  return len >= n && g_ascii_strncasecmp (s + len - n, suffix, n) == 0;
}

/* Case-insensitive (ASCII) search of a short constant @needle in @s.
 * O(len * strlen (needle)); callers only pass bounded @len.  */
static const char *
parser_text_find_ci (const char *s, gsize len, const char *needle)
{
  gsize n = strlen (needle);

  if (n == 0 || len < n)
    return NULL;
  for (gsize i = 0; i + n <= len; i++)
    if (g_ascii_strncasecmp (s + i, needle, n) == 0)
      return s + i;
  return NULL;
}

/* parser_text_trim() for a span that has something to trim.  */
static G_NO_INLINE const char *
parser_text_trim_slow (const char *s, gsize *len)
{
  const char *e = s + *len;

  for (;;)
    {
      if (s < e && parser_text_is_space (*s))
        s++;
      else if (e - s >= 2 && (guchar) s[0] == 0xC2 && (guchar) s[1] == 0xA0)
        s += 2;
      else
        break;
    }
  for (;;)
    {
      if (e > s && parser_text_is_space (e[-1]))
        e--;
      else if (e - s >= 2 && (guchar) e[-2] == 0xC2 && (guchar) e[-1] == 0xA0)
        e -= 2;
      else
        break;
    }
  *len = (gsize) (e - s);
  return s;
}

/* Trim ASCII white space and U+00A0 from both ends of s[0..*len).  Most
 * spans (lines, values) have nothing to trim: their first and last bytes
 * say so without a call.  */
static inline const char *
parser_text_trim (const char *s, gsize *len)
{
  if (*len > 0 && (guchar) s[0] > ' ' && (guchar) s[0] != 0xC2
      && (guchar) s[*len - 1] > ' ' && (guchar) s[*len - 1] != 0xA0)
    return s;
  return parser_text_trim_slow (s, len);
}

/* ============================================================ HTML */

/* Character references: the HTML 4.01 set (Latin-1, symbols and Greek,
 * special), &apos; and the upper-case aliases HTML 5 keeps.  Sorted by
 * strcmp for bsearch.  "legacy" ones are also recognised without the
 * trailing ';', as browsers do.  */
typedef struct {
  const char *name;
  guint16 cp;
  guint8 legacy;
} parser_html_entity_def;

static const parser_html_entity_def parser_html_entities[] = {
  { "AElig", 0x00C6, 1 },
  { "AMP", 0x0026, 1 },
  { "Aacute", 0x00C1, 1 },
  { "Acirc", 0x00C2, 1 },
  { "Agrave", 0x00C0, 1 },
  { "Alpha", 0x0391, 0 },
  { "Aring", 0x00C5, 1 },
  { "Atilde", 0x00C3, 1 },
  { "Auml", 0x00C4, 1 },
  { "Beta", 0x0392, 0 },
  { "COPY", 0x00A9, 1 },
  { "Ccedil", 0x00C7, 1 },
  { "Chi", 0x03A7, 0 },
  { "Dagger", 0x2021, 0 },
  { "Delta", 0x0394, 0 },
  { "ETH", 0x00D0, 1 },
  { "Eacute", 0x00C9, 1 },
  { "Ecirc", 0x00CA, 1 },
  { "Egrave", 0x00C8, 1 },
  { "Epsilon", 0x0395, 0 },
  { "Eta", 0x0397, 0 },
  { "Euml", 0x00CB, 1 },
  { "GT", 0x003E, 1 },
  { "Gamma", 0x0393, 0 },
  { "Iacute", 0x00CD, 1 },
  { "Icirc", 0x00CE, 1 },
  { "Igrave", 0x00CC, 1 },
  { "Iota", 0x0399, 0 },
  { "Iuml", 0x00CF, 1 },
  { "Kappa", 0x039A, 0 },
  { "LT", 0x003C, 1 },
  { "Lambda", 0x039B, 0 },
  { "Mu", 0x039C, 0 },
  { "Ntilde", 0x00D1, 1 },
  { "Nu", 0x039D, 0 },
  { "OElig", 0x0152, 0 },
  { "Oacute", 0x00D3, 1 },
  { "Ocirc", 0x00D4, 1 },
  { "Ograve", 0x00D2, 1 },
  { "Omega", 0x03A9, 0 },
  { "Omicron", 0x039F, 0 },
  { "Oslash", 0x00D8, 1 },
  { "Otilde", 0x00D5, 1 },
  { "Ouml", 0x00D6, 1 },
  { "Phi", 0x03A6, 0 },
  { "Pi", 0x03A0, 0 },
  { "Prime", 0x2033, 0 },
  { "Psi", 0x03A8, 0 },
  { "QUOT", 0x0022, 1 },
  { "REG", 0x00AE, 1 },
  { "Rho", 0x03A1, 0 },
  { "Scaron", 0x0160, 0 },
  { "Sigma", 0x03A3, 0 },
  { "THORN", 0x00DE, 1 },
  { "Tau", 0x03A4, 0 },
  { "Theta", 0x0398, 0 },
  { "Uacute", 0x00DA, 1 },
  { "Ucirc", 0x00DB, 1 },
  { "Ugrave", 0x00D9, 1 },
  { "Upsilon", 0x03A5, 0 },
  { "Uuml", 0x00DC, 1 },
  { "Xi", 0x039E, 0 },
  { "Yacute", 0x00DD, 1 },
  { "Yuml", 0x0178, 0 },
  { "Zeta", 0x0396, 0 },
  { "aacute", 0x00E1, 1 },
  { "acirc", 0x00E2, 1 },
  { "acute", 0x00B4, 1 },
  { "aelig", 0x00E6, 1 },
  { "agrave", 0x00E0, 1 },
  { "alefsym", 0x2135, 0 },
  { "alpha", 0x03B1, 0 },
  { "amp", 0x0026, 1 },
  { "and", 0x2227, 0 },
  { "ang", 0x2220, 0 },
  { "apos", 0x0027, 0 },
  { "aring", 0x00E5, 1 },
  { "asymp", 0x2248, 0 },
  { "atilde", 0x00E3, 1 },
  { "auml", 0x00E4, 1 },
  { "bdquo", 0x201E, 0 },
  { "beta", 0x03B2, 0 },
  { "brvbar", 0x00A6, 1 },
  { "bull", 0x2022, 0 },
  { "cap", 0x2229, 0 },
  { "ccedil", 0x00E7, 1 },
  { "cedil", 0x00B8, 1 },
  { "cent", 0x00A2, 1 },
  { "chi", 0x03C7, 0 },
  { "circ", 0x02C6, 0 },
  { "clubs", 0x2663, 0 },
  { "cong", 0x2245, 0 },
  { "copy", 0x00A9, 1 },
  { "crarr", 0x21B5, 0 },
  { "cup", 0x222A, 0 },
  { "curren", 0x00A4, 1 },
  { "dArr", 0x21D3, 0 },
  { "dagger", 0x2020, 0 },
  { "darr", 0x2193, 0 },
  { "deg", 0x00B0, 1 },
  { "delta", 0x03B4, 0 },
  { "diams", 0x2666, 0 },
  { "divide", 0x00F7, 1 },
  { "eacute", 0x00E9, 1 },
  { "ecirc", 0x00EA, 1 },
  { "egrave", 0x00E8, 1 },
  { "empty", 0x2205, 0 },
  { "emsp", 0x2003, 0 },
  { "ensp", 0x2002, 0 },
  { "epsilon", 0x03B5, 0 },
  { "equiv", 0x2261, 0 },
  { "eta", 0x03B7, 0 },
  { "eth", 0x00F0, 1 },
  { "euml", 0x00EB, 1 },
  { "euro", 0x20AC, 0 },
  { "exist", 0x2203, 0 },
  { "fnof", 0x0192, 0 },
  { "forall", 0x2200, 0 },
  { "frac12", 0x00BD, 1 },
  { "frac14", 0x00BC, 1 },
  { "frac34", 0x00BE, 1 },
  { "frasl", 0x2044, 0 },
  { "gamma", 0x03B3, 0 },
  { "ge", 0x2265, 0 },
  { "gt", 0x003E, 1 },
  { "hArr", 0x21D4, 0 },
  { "harr", 0x2194, 0 },
  { "hearts", 0x2665, 0 },
  { "hellip", 0x2026, 0 },
  { "iacute", 0x00ED, 1 },
  { "icirc", 0x00EE, 1 },
  { "iexcl", 0x00A1, 1 },
  { "igrave", 0x00EC, 1 },
  { "image", 0x2111, 0 },
  { "infin", 0x221E, 0 },
  { "int", 0x222B, 0 },
  { "iota", 0x03B9, 0 },
  { "iquest", 0x00BF, 1 },
  { "isin", 0x2208, 0 },
  { "iuml", 0x00EF, 1 },
  { "kappa", 0x03BA, 0 },
  { "lArr", 0x21D0, 0 },
  { "lambda", 0x03BB, 0 },
  { "lang", 0x2329, 0 },
  { "laquo", 0x00AB, 1 },
  { "larr", 0x2190, 0 },
  { "lceil", 0x2308, 0 },
  { "ldquo", 0x201C, 0 },
  { "le", 0x2264, 0 },
  { "lfloor", 0x230A, 0 },
  { "lowast", 0x2217, 0 },
  { "loz", 0x25CA, 0 },
  { "lrm", 0x200E, 0 },
  { "lsaquo", 0x2039, 0 },
  { "lsquo", 0x2018, 0 },
  { "lt", 0x003C, 1 },
  { "macr", 0x00AF, 1 },
  { "mdash", 0x2014, 0 },
  { "micro", 0x00B5, 1 },
  { "middot", 0x00B7, 1 },
  { "minus", 0x2212, 0 },
  { "mu", 0x03BC, 0 },
  { "nabla", 0x2207, 0 },
  { "nbsp", 0x00A0, 1 },
  { "ndash", 0x2013, 0 },
  { "ne", 0x2260, 0 },
  { "ni", 0x220B, 0 },
  { "not", 0x00AC, 1 },
  { "notin", 0x2209, 0 },
  { "nsub", 0x2284, 0 },
  { "ntilde", 0x00F1, 1 },
  { "nu", 0x03BD, 0 },
  { "oacute", 0x00F3, 1 },
  { "ocirc", 0x00F4, 1 },
  { "oelig", 0x0153, 0 },
  { "ograve", 0x00F2, 1 },
  { "oline", 0x203E, 0 },
  { "omega", 0x03C9, 0 },
  { "omicron", 0x03BF, 0 },
  { "oplus", 0x2295, 0 },
  { "or", 0x2228, 0 },
  { "ordf", 0x00AA, 1 },
  { "ordm", 0x00BA, 1 },
  { "oslash", 0x00F8, 1 },
  { "otilde", 0x00F5, 1 },
  { "otimes", 0x2297, 0 },
  { "ouml", 0x00F6, 1 },
  { "para", 0x00B6, 1 },
  { "part", 0x2202, 0 },
  { "permil", 0x2030, 0 },
  { "perp", 0x22A5, 0 },
  { "phi", 0x03C6, 0 },
  { "pi", 0x03C0, 0 },
  { "piv", 0x03D6, 0 },
  { "plusmn", 0x00B1, 1 },
  { "pound", 0x00A3, 1 },
  { "prime", 0x2032, 0 },
  { "prod", 0x220F, 0 },
  { "prop", 0x221D, 0 },
  { "psi", 0x03C8, 0 },
  { "quot", 0x0022, 1 },
  { "rArr", 0x21D2, 0 },
  { "radic", 0x221A, 0 },
  { "rang", 0x232A, 0 },
  { "raquo", 0x00BB, 1 },
  { "rarr", 0x2192, 0 },
  { "rceil", 0x2309, 0 },
  { "rdquo", 0x201D, 0 },
  { "real", 0x211C, 0 },
  { "reg", 0x00AE, 1 },
  { "rfloor", 0x230B, 0 },
  { "rho", 0x03C1, 0 },
  { "rlm", 0x200F, 0 },
  { "rsaquo", 0x203A, 0 },
  { "rsquo", 0x2019, 0 },
  { "sbquo", 0x201A, 0 },
  { "scaron", 0x0161, 0 },
  { "sdot", 0x22C5, 0 },
  { "sect", 0x00A7, 1 },
  { "shy", 0x00AD, 1 },
  { "sigma", 0x03C3, 0 },
  { "sigmaf", 0x03C2, 0 },
  { "sim", 0x223C, 0 },
  { "spades", 0x2660, 0 },
  { "sub", 0x2282, 0 },
  { "sube", 0x2286, 0 },
  { "sum", 0x2211, 0 },
  { "sup", 0x2283, 0 },
  { "sup1", 0x00B9, 1 },
  { "sup2", 0x00B2, 1 },
  { "sup3", 0x00B3, 1 },
  { "supe", 0x2287, 0 },
  { "szlig", 0x00DF, 1 },
  { "tau", 0x03C4, 0 },
  { "there4", 0x2234, 0 },
  { "theta", 0x03B8, 0 },
  { "thetasym", 0x03D1, 0 },
  { "thinsp", 0x2009, 0 },
  { "thorn", 0x00FE, 1 },
  { "tilde", 0x02DC, 0 },
  { "times", 0x00D7, 1 },
  { "trade", 0x2122, 0 },
  { "uArr", 0x21D1, 0 },
  { "uacute", 0x00FA, 1 },
  { "uarr", 0x2191, 0 },
  { "ucirc", 0x00FB, 1 },
  { "ugrave", 0x00F9, 1 },
  { "uml", 0x00A8, 1 },
  { "upsih", 0x03D2, 0 },
  { "upsilon", 0x03C5, 0 },
  { "uuml", 0x00FC, 1 },
  { "weierp", 0x2118, 0 },
  { "xi", 0x03BE, 0 },
  { "yacute", 0x00FD, 1 },
  { "yen", 0x00A5, 1 },
  { "yuml", 0x00FF, 1 },
  { "zeta", 0x03B6, 0 },
  { "zwj", 0x200D, 0 },
  { "zwnj", 0x200C, 0 },
};

/* Windows-1252 for &#128; .. &#159; (HTML numeric reference rules).  */
static const guint16 parser_html_c1[32] = {
  0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
  0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
  0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
  0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
};

typedef struct {
  const char *s;
  gsize len;
} parser_html_key;

static int
parser_html_entity_cmp (const void *k, const void *e)
{
  const parser_html_key *key = k;
  const char *name = ((const parser_html_entity_def *) e)->name;
  int c = strncmp (key->s, name, key->len);

  if (c != 0)
    return c;
  return name[key->len] == '\0' ? 0 : -1;
}

static const parser_html_entity_def *
parser_html_entity_lookup (const char *s, gsize len)
{
  parser_html_key key = { s, len };

  return bsearch (&key, parser_html_entities,
                  G_N_ELEMENTS (parser_html_entities),
                  sizeof parser_html_entities[0], parser_html_entity_cmp);
}

/* A code point from a numeric reference, made safe: NUL, surrogates,
 * out of range, noncharacters and C0/C1 controls (but tab, LF, FF, CR)
 * become U+FFFD; 128-159 are read as Windows-1252.  */
static gunichar
parser_html_fix_codepoint (guint32 v)
{
  if (v >= 0x80 && v < 0xA0)
    return parser_html_c1[v - 0x80] ? parser_html_c1[v - 0x80] : 0xFFFD;
  if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)
      || (v >= 0xFDD0 && v <= 0xFDEF) || (v & 0xFFFE) == 0xFFFE
      || (v < 0x20 && v != '\t' && v != '\n' && v != '\f' && v != '\r')
      || v == 0x7F)
    return 0xFFFD;
  return v;
}

/* The character reference at @p ('&').  Returns the bytes it takes, 0
 * when the '&' is a literal.  In attributes a name without ';' followed
 * by '=' is not a reference ("?a=1&copy=2"), as in browsers.  */
static gsize
parser_html_entity (const char *p, const char *end, gboolean in_attr,
                    gunichar *c)
{
  const char *q = p + 1;

  if (q < end && *q == '#')
    {
      gboolean hex = FALSE;
      const char *digits;
      guint32 v = 0;

      q++;
      if (q < end && (*q == 'x' || *q == 'X'))
        {
          hex = TRUE;
          q++;
        }
      digits = q;
      while (q < end && (hex ? g_ascii_isxdigit (*q) : g_ascii_isdigit (*q)))
        {
          if (v <= 0x10FFFF) /* saturate: 0x10FFFF * 16 + 15 fits */
            v = v * (hex ? 16 : 10)
                + (guint32) (hex ? g_ascii_xdigit_value (*q)
                                 : g_ascii_digit_value (*q));
          q++;
        }
      if (q == digits)
        return 0;
      if (q < end && *q == ';')
        q++;
      *c = parser_html_fix_codepoint (v);
      return (gsize) (q - p);
    }

  while (q < end && g_ascii_isalnum (*q)
         && q - (p + 1) <= PARSER_TEXT_ENTITY_NAME_MAX)
    q++;
  {
    gsize n = (gsize) (q - (p + 1));
    const parser_html_entity_def *e;

    if (n == 0 || n > PARSER_TEXT_ENTITY_NAME_MAX)
      return 0;
    if (q < end && *q == ';' && (e = parser_html_entity_lookup (p + 1, n)))
      {
        *c = e->cp;
        return n + 2;
      }
    if (in_attr)
      {
        e = parser_html_entity_lookup (p + 1, n);
        if (e && e->legacy && !(q < end && *q == '='))
          {
            *c = e->cp;
            return n + 1;
          }
        return 0;
      }
    /* "&copy2026" is "(c)2026": the longest legacy name that prefixes */
    for (gsize l = MIN (n, 6); l >= 2; l--)
      {
        e = parser_html_entity_lookup (p + 1, l);
        if (e && e->legacy)
          {
            *c = e->cp;
            return l + 1;
          }
      }
  }
  return 0;
}

typedef enum {
  PARSER_HTML_INLINE, /* no effect on layout */
  PARSER_HTML_BLOCK,  /* a line break before and after */
  PARSER_HTML_PARA,   /* a blank line before and after */
  PARSER_HTML_BR,
  PARSER_HTML_HR,
  PARSER_HTML_LI,
  PARSER_HTML_LIST, /* ul ol dl menu dir */
  PARSER_HTML_TABLE,
  PARSER_HTML_TR,
  PARSER_HTML_CELL, /* td th */
  PARSER_HTML_PRE,  /* pre xmp listing plaintext: white space kept; markup
                     * inside is still markup (never shown as text) */
  PARSER_HTML_A,
  PARSER_HTML_IMG,  /* img area: the alt text */
  PARSER_HTML_RAW,  /* script style noscript iframe noembed noframes
                     * title: raw text up to the end tag, dropped */
  PARSER_HTML_SKIP, /* template svg xml: parsed, content dropped */
  PARSER_HTML_HEAD,
  PARSER_HTML_BODY,
  PARSER_HTML_HEADISH, /* meta link base: allowed in head, no content */
} parser_html_kind;

typedef struct {
  const char *name;
  parser_html_kind kind;
} parser_html_tag_def;

/* Sorted by strcmp.  */
static const parser_html_tag_def parser_html_tags[] = {
  { "a", PARSER_HTML_A }, { "address", PARSER_HTML_BLOCK },
  { "area", PARSER_HTML_IMG }, { "article", PARSER_HTML_BLOCK },
  { "aside", PARSER_HTML_BLOCK }, { "base", PARSER_HTML_HEADISH },
  { "blockquote", PARSER_HTML_PARA }, { "body", PARSER_HTML_BODY },
  { "br", PARSER_HTML_BR }, { "caption", PARSER_HTML_BLOCK },
  { "center", PARSER_HTML_BLOCK }, { "dd", PARSER_HTML_BLOCK },
  { "details", PARSER_HTML_BLOCK }, { "dialog", PARSER_HTML_BLOCK },
  { "dir", PARSER_HTML_LIST }, { "div", PARSER_HTML_BLOCK },
  { "dl", PARSER_HTML_LIST }, { "dt", PARSER_HTML_BLOCK },
  { "fieldset", PARSER_HTML_BLOCK }, { "figcaption", PARSER_HTML_BLOCK },
  { "figure", PARSER_HTML_BLOCK }, { "footer", PARSER_HTML_BLOCK },
  { "form", PARSER_HTML_BLOCK }, { "h1", PARSER_HTML_PARA },
  { "h2", PARSER_HTML_PARA }, { "h3", PARSER_HTML_PARA },
  { "h4", PARSER_HTML_PARA }, { "h5", PARSER_HTML_PARA },
  { "h6", PARSER_HTML_PARA }, { "head", PARSER_HTML_HEAD },
  { "header", PARSER_HTML_BLOCK }, { "hgroup", PARSER_HTML_BLOCK },
  { "hr", PARSER_HTML_HR }, { "iframe", PARSER_HTML_RAW },
  { "img", PARSER_HTML_IMG }, { "legend", PARSER_HTML_BLOCK },
  { "li", PARSER_HTML_LI }, { "link", PARSER_HTML_HEADISH },
  { "listing", PARSER_HTML_PRE }, { "main", PARSER_HTML_BLOCK },
  { "menu", PARSER_HTML_LIST }, { "meta", PARSER_HTML_HEADISH },
  { "nav", PARSER_HTML_BLOCK }, { "noembed", PARSER_HTML_RAW },
  { "noframes", PARSER_HTML_RAW }, { "noscript", PARSER_HTML_RAW },
  { "ol", PARSER_HTML_LIST }, { "option", PARSER_HTML_BLOCK },
  { "p", PARSER_HTML_PARA }, { "plaintext", PARSER_HTML_PRE },
  { "pre", PARSER_HTML_PRE }, { "script", PARSER_HTML_RAW },
  { "section", PARSER_HTML_BLOCK }, { "style", PARSER_HTML_RAW },
  { "summary", PARSER_HTML_BLOCK }, { "svg", PARSER_HTML_SKIP },
  { "table", PARSER_HTML_TABLE }, { "td", PARSER_HTML_CELL },
  { "template", PARSER_HTML_SKIP }, { "textarea", PARSER_HTML_BLOCK },
  { "th", PARSER_HTML_CELL }, { "title", PARSER_HTML_RAW },
  { "tr", PARSER_HTML_TR }, { "ul", PARSER_HTML_LIST },
  { "xml", PARSER_HTML_SKIP }, { "xmp", PARSER_HTML_PRE },
};

static int
parser_html_tag_cmp (const void *k, const void *e)
{
  return strcmp (k, ((const parser_html_tag_def *) e)->name);
}

static parser_html_kind
parser_html_tag_kind (const char *name)
{
  const parser_html_tag_def *d
      = bsearch (name, parser_html_tags, G_N_ELEMENTS (parser_html_tags),
                 sizeof parser_html_tags[0], parser_html_tag_cmp);

  return d ? d->kind : PARSER_HTML_INLINE;
}

typedef struct {
  GString *out;
  guint breaks;          /* newlines wanted before the next text (0-2) */
  gboolean space;        /* collapsed white space pending */
  gboolean sep;          /* a table cell separator pending */
  guint pre;             /* depth of white-space-keeping elements */
  guint lists;           /* depth of lists */
  guint skip;            /* depth of template/svg/xml */
  gboolean in_head;
  gboolean body_seen;
  gboolean p_compact;    /* the open <p> is Outlook's MsoNormal: a line */
  gboolean in_link;
  gboolean link_pending; /* no text yet since <a> */
  gsize link_start;      /* out->len where the link's text starts */
  char *link_url;        /* (nullable) safe URL to show after the text */
} parser_html_state;

static void
parser_html_trim_line_end (parser_html_state *h)
{
  GString *o = h->out;

  while (o->len > 0
         && (o->str[o->len - 1] == ' ' || o->str[o->len - 1] == '\t'))
    g_string_truncate (o, o->len - 1);
  if (h->link_start > o->len)
    h->link_start = o->len;
}

/* Before visible text: the pending line breaks, cell separator or
 * collapsed space.  At most one blank line in a row.  */
static void
parser_html_flush (parser_html_state *h)
{
  GString *o = h->out;

  if (h->breaks > 0)
    {
      /* a line holding only spaces (Outlook's <p>&nbsp;</p>) is an empty
       * line, not nothing */
      gboolean open = o->len > 0 && o->str[o->len - 1] != '\n';

      parser_html_trim_line_end (h);
      if (o->len > 0)
        {
          guint have = 0;

          for (gsize i = o->len; i > 0 && o->str[i - 1] == '\n' && have < 2;
               i--)
            have++;
          if (open && have < 2)
            {
              g_string_append_c (o, '\n');
              have++;
            }
          while (have < h->breaks)
            {
              g_string_append_c (o, '\n');
              have++;
            }
        }
      h->breaks = 0;
      h->space = FALSE;
      h->sep = FALSE;
    }
  else if (h->sep)
    {
      if (o->len > 0 && o->str[o->len - 1] != '\n')
        {
          parser_html_trim_line_end (h);
          g_string_append (o, " | ");
        }
      h->sep = FALSE;
      h->space = FALSE;
    }
  else if (h->space)
    {
      if (o->len > 0)
        {
          char last = o->str[o->len - 1];

          if (last != ' ' && last != '\n' && last != '\t')
            g_string_append_c (o, ' ');
        }
      h->space = FALSE;
    }
  if (h->link_pending)
    {
      h->link_start = o->len;
      h->link_pending = FALSE;
    }
}

/* Decoded text into the output, white space collapsed as a browser does
 * (kept inside <pre>); U+00A0 is a space that does not collapse; U+00AD
 * (soft hyphen) is invisible.  @s holds whole characters.  */
static void
parser_html_emit (parser_html_state *h, const char *s, gsize len)
{
  const char *p = s, *end = s + len;

  while (p < end)
    {
      guchar b = (guchar) *p;

      if (parser_text_is_space ((char) b))
        {
          if (h->pre == 0)
            h->space = TRUE;
          else if (b == '\n')
            h->breaks = MIN (h->breaks + 1, 2);
          else if (b != '\r')
            {
              parser_html_flush (h);
              g_string_append_c (h->out, b == '\t' ? '\t' : ' ');
            }
          p++;
          continue;
        }
      if (b == 0xC2 && p + 1 < end
          && ((guchar) p[1] == 0xA0 || (guchar) p[1] == 0xAD))
        {
          if ((guchar) p[1] == 0xA0)
            {
              parser_html_flush (h);
              g_string_append_c (h->out, ' ');
            }
          p += 2;
          continue;
        }
      {
        const char *q = p + 1;

        /* stop at white space or at a 0xC2 lead byte: both are character
         * boundaries in valid UTF-8 */
        while (q < end && !parser_text_is_space (*q) && (guchar) *q != 0xC2)
          q++;
        parser_html_flush (h);
        g_string_append_len (h->out, p, q - p);
        p = q;
      }
    }
}

/* Text of the document (not of an attribute).  */
static void
parser_html_text (parser_html_state *h, const char *s, gsize len)
{
  if (h->skip > 0)
    return;
  if (h->in_head)
    {
      gsize i;

      for (i = 0; i < len && parser_text_is_space (s[i]); i++)
        ;
      if (i == len)
        return;
      h->in_head = FALSE; /* text ends an unclosed head, as in HTML */
    }
  parser_html_emit (h, s, len);
}

static void
parser_html_block (parser_html_state *h, guint n)
{
  h->breaks = MAX (h->breaks, n);
}

/* (transfer full) (nullable) The URL of a link if it is worth showing:
 * http, https, ftp, mailto, tel or "www.".  javascript:, data:, vbscript:,
 * file:, relative URLs and anything else are never shown.  Tab, CR and LF
 * are removed (browsers ignore them: "jav&#x09;ascript:"), and characters
 * that could read as markup or break the line are percent-encoded.  */
static char *
parser_html_link_url (const char *raw, gsize len)
{
  static const char *const schemes[]
      = { "http", "https", "ftp", "mailto", "tel" };
  GString *u;
  gsize i, s;
  gboolean ok = FALSE;

  while (len > 0 && (guchar) *raw <= 0x20)
    raw++, len--;
  while (len > 0 && (guchar) raw[len - 1] <= 0x20)
    len--;
  if (len == 0 || len > PARSER_TEXT_LINK_MAX)
    return NULL;
  u = g_string_sized_new (len + 8);
  for (i = 0; i < len; i++)
    if (raw[i] != '\t' && raw[i] != '\n' && raw[i] != '\r')
      g_string_append_c (u, raw[i]);

  for (s = 0; s < u->len
              && (g_ascii_isalnum (u->str[s]) || u->str[s] == '+'
                  || u->str[s] == '-' || u->str[s] == '.');
       s++)
    ;
  if (s > 0 && s < u->len && u->str[s] == ':' && g_ascii_isalpha (u->str[0]))
    {
      for (i = 0; i < G_N_ELEMENTS (schemes); i++)
        if (strlen (schemes[i]) == s
            && g_ascii_strncasecmp (u->str, schemes[i], s) == 0)
          ok = TRUE;
    }
  else if (parser_text_prefix_ci (u->str, u->len, "www."))
    ok = TRUE;
  if (!ok)
    {
      g_string_free (u, TRUE);
      return NULL;
    }
  {
    GString *e = g_string_sized_new (u->len + 16);

    for (i = 0; i < u->len; i++)
      {
        guchar c = (guchar) u->str[i];

        if (c <= 0x20 || c == 0x7F || strchr ("\"'<>`{}|\\^", c))
          g_string_append_printf (e, "%%%02X", c);
        else
          g_string_append_c (e, (char) c);
      }
    g_string_free (u, TRUE);
    return g_string_free (e, FALSE);
  }
}

static gboolean
parser_html_eq_ci (const char *a, gsize alen, const char *b, gsize blen)
{
  return alen == blen && g_ascii_strncasecmp (a, b, alen) == 0;
}

/* Strip "http://", "https://" and a trailing '/' for comparing.  */
static const char *
parser_html_bare_url (const char *s, gsize *len)
{
  if (parser_text_prefix_ci (s, *len, "http://"))
    s += 7, *len -= 7;
  else if (parser_text_prefix_ci (s, *len, "https://"))
    s += 8, *len -= 8;
  if (*len > 0 && s[*len - 1] == '/')
    (*len)--;
  return s;
}

/* TRUE when showing @url after the link text @t would repeat it.  */
static gboolean
parser_html_same_link (const char *t, gsize tl, const char *url)
{
  gsize ul = strlen (url);
  const char *a, *b;
  gsize al, bl;

  if (parser_html_eq_ci (t, tl, url, ul))
    return TRUE;
  if (parser_text_prefix_ci (url, ul, "mailto:")
      || parser_text_prefix_ci (url, ul, "tel:"))
    {
      const char *v = strchr (url, ':') + 1;
      const char *q = strchr (v, '?');
      gsize vl = q ? (gsize) (q - v) : strlen (v);

      return parser_html_eq_ci (t, tl, v, vl);
    }
  al = tl;
  bl = ul;
  a = parser_html_bare_url (t, &al);
  b = parser_html_bare_url (url, &bl);
  return parser_html_eq_ci (a, al, b, bl);
}

static void
parser_html_finish_link (parser_html_state *h)
{
  char *url = h->link_url;

  if (!h->in_link)
    return;
  h->in_link = FALSE;
  h->link_url = NULL;
  if (url != NULL && h->skip == 0)
    {
      gsize start
          = h->link_pending ? h->out->len : MIN (h->link_start, h->out->len);
      gsize tl = h->out->len - start;
      const char *t = parser_text_trim (h->out->str + start, &tl);

      h->link_pending = FALSE;
      if (tl == 0)
        {
          parser_html_flush (h);
          g_string_append (h->out, url);
        }
      else if (!parser_html_same_link (t, tl, url))
        {
          g_string_append (h->out, " (");
          g_string_append (h->out, url);
          g_string_append_c (h->out, ')');
        }
    }
  h->link_pending = FALSE;
  g_free (url);
}

/* Skip the raw text of @name (script, style...) up to its end tag, or to
 * the end of input.  One forward pass.  */
static const char *
parser_html_skip_raw (const char *p, const char *end, const char *name)
{
  gsize n = strlen (name);

  while (p < end)
    {
      const char *lt = memchr (p, '<', (gsize) (end - p));

      if (lt == NULL)
        return end;
      if ((gsize) (end - lt) >= 2 + n && lt[1] == '/'
          && g_ascii_strncasecmp (lt + 2, name, n) == 0)
        {
          const char *q = lt + 2 + n;

          if (q == end || *q == '>' || *q == '/' || parser_text_is_space (*q))
            {
              const char *gt = memchr (q, '>', (gsize) (end - q));

              return gt ? gt + 1 : end;
            }
        }
      p = lt + 1;
    }
  return end;
}

/* Find @what (2 or 3 bytes) from @p; the position after it, or @end.  */
static const char *
parser_html_skip_past (const char *p, const char *end, const char *what)
{
  gsize n = strlen (what);

  while (p < end)
    {
      const char *q = memchr (p, what[0], (gsize) (end - p));

      if (q == NULL || (gsize) (end - q) < n)
        return end;
      if (memcmp (q, what, n) == 0)
        return q + n;
      p = q + 1;
    }
  return end;
}

/* (transfer full) An attribute value with references decoded.  */
static char *
parser_html_attr_value (const char *s, gsize len)
{
  GString *v = g_string_sized_new (len);
  const char *p = s, *end = s + len;

  while (p < end)
    {
      gunichar c;
      gsize n;

      if (*p == '&' && (n = parser_html_entity (p, end, TRUE, &c)) > 0)
        {
          g_string_append_unichar (v, c);
          p += n;
        }
      else
        g_string_append_c (v, *p++);
    }
  return g_string_free (v, FALSE);
}

typedef struct {
  char name[PARSER_TEXT_TAG_NAME_MAX + 1]; /* lower case; "" unknown */
  gboolean self_closing;
  gboolean mso;                            /* class="MsoNormal" */
  char *href;                              /* (nullable) decoded */
  char *alt;                               /* (nullable) decoded */
} parser_html_tag;

/* Parse a tag from @p (just after "<" or "</") up to its '>'.  Returns
 * the position after '>', or NULL when the input ends inside the tag
 * (the tag is then dropped, as in HTML).  Attribute values may be quoted
 * with ' or " or not at all.  */
static const char *
parser_html_parse_tag (const char *p, const char *end, parser_html_tag *t)
{
  gsize n = 0;
  gboolean want_attrs;

  memset (t, 0, sizeof *t);
  while (p < end && !parser_text_is_space (*p) && *p != '/' && *p != '>')
    {
      if (n < PARSER_TEXT_TAG_NAME_MAX)
        t->name[n] = g_ascii_tolower (*p);
      n++;
      p++;
    }
  if (n > PARSER_TEXT_TAG_NAME_MAX)
    t->name[0] = '\0';
  else
    t->name[n] = '\0';
  want_attrs = strcmp (t->name, "a") == 0 || strcmp (t->name, "img") == 0
               || strcmp (t->name, "area") == 0 || strcmp (t->name, "p") == 0;

  for (;;)
    {
      const char *an, *vs = NULL;
      gsize anl, vl = 0;

      while (p < end && (parser_text_is_space (*p) || *p == '/'))
        {
          if (*p == '/' && p + 1 < end && p[1] == '>')
            t->self_closing = TRUE;
          p++;
        }
      if (p >= end)
        return NULL;
      if (*p == '>')
        return p + 1;
      an = p++;
      while (p < end && !parser_text_is_space (*p) && *p != '/' && *p != '>'
             && *p != '=')
        p++;
      anl = (gsize) (p - an);
      while (p < end && parser_text_is_space (*p))
        p++;
      if (p < end && *p == '=')
        {
          p++;
          while (p < end && parser_text_is_space (*p))
            p++;
          if (p < end && (*p == '"' || *p == '\''))
            {
              const char *close = memchr (p + 1, *p, (gsize) (end - p - 1));

              if (close == NULL)
                return NULL;
              vs = p + 1;
              vl = (gsize) (close - vs);
              p = close + 1;
            }
          else
            {
              vs = p;
              while (p < end && !parser_text_is_space (*p) && *p != '>')
                p++;
              vl = (gsize) (p - vs);
            }
        }
      if (!want_attrs || vs == NULL)
        continue;
      if (parser_html_eq_ci (an, anl, "href", 4) && t->href == NULL)
        t->href = parser_html_attr_value (vs, vl);
      else if (parser_html_eq_ci (an, anl, "alt", 3) && t->alt == NULL)
        t->alt = parser_html_attr_value (vs, vl);
      else if (parser_html_eq_ci (an, anl, "class", 5)
               && parser_text_find_ci (
                   vs, MIN (vl, (gsize) PARSER_TEXT_KEYWORD_SPAN),
                   "msonormal"))
        t->mso = TRUE;
    }
}

static void
parser_html_start_tag (parser_html_state *h, parser_html_tag *t)
{
  parser_html_kind k = parser_html_tag_kind (t->name);

  switch (k)
    {
    case PARSER_HTML_HEAD:
      if (!h->body_seen && h->out->len == 0)
        h->in_head = TRUE;
      return;
    case PARSER_HTML_BODY:
      h->in_head = FALSE;
      h->body_seen = TRUE;
      return;
    case PARSER_HTML_HEADISH:
    case PARSER_HTML_RAW:
      return;
    case PARSER_HTML_SKIP:
      if (!t->self_closing)
        h->skip++;
      return;
    default:
      break;
    }
  /* Word's <o:SmartTagType> and the like may sit in head; anything else
   * starts the body, as in HTML.  */
  if (h->in_head && strchr (t->name, ':') == NULL && t->name[0] != '\0')
    h->in_head = FALSE;
  if (h->skip > 0 || h->in_head)
    return;

  switch (k)
    {
    case PARSER_HTML_BLOCK:
      parser_html_block (h, 1);
      break;
    case PARSER_HTML_PARA:
      h->p_compact = strcmp (t->name, "p") == 0 && t->mso;
      parser_html_block (h, h->p_compact ? 1 : 2);
      break;
    case PARSER_HTML_BR:
      h->breaks = MIN (h->breaks + 1, 2);
      break;
    case PARSER_HTML_HR:
      parser_html_block (h, 2);
      break;
    case PARSER_HTML_LI:
      parser_html_block (h, 1);
      parser_html_flush (h);
      for (guint i = 1; i < MIN (h->lists, PARSER_TEXT_LIST_INDENT_MAX); i++)
        g_string_append (h->out, "  ");
      g_string_append (h->out, "- ");
      break;
    case PARSER_HTML_LIST:
      if (h->lists < G_MAXUINT)
        h->lists++;
      parser_html_block (h, 1);
      break;
    case PARSER_HTML_TABLE:
    case PARSER_HTML_TR:
      parser_html_block (h, 1);
      break;
    case PARSER_HTML_CELL:
      if (h->breaks == 0 && h->out->len > 0
          && h->out->str[h->out->len - 1] != '\n')
        h->sep = TRUE;
      break;
    case PARSER_HTML_PRE:
      parser_html_block (h, 2);
      if (h->pre < G_MAXUINT)
        h->pre++;
      break;
    case PARSER_HTML_A:
      parser_html_finish_link (h);
      h->in_link = TRUE;
      h->link_pending = TRUE;
      h->link_url
          = t->href ? parser_html_link_url (t->href, strlen (t->href)) : NULL;
      break;
    case PARSER_HTML_IMG:
      if (t->alt)
        parser_html_emit (h, t->alt, strlen (t->alt));
      break;
    default:
      break;
    }
}

static void
parser_html_end_tag (parser_html_state *h, const parser_html_tag *t)
{
  parser_html_kind k = parser_html_tag_kind (t->name);

  if (k == PARSER_HTML_HEAD)
    {
      h->in_head = FALSE;
      return;
    }
  if (k == PARSER_HTML_SKIP)
    {
      if (h->skip > 0)
        h->skip--;
      return;
    }
  if (h->skip > 0 || h->in_head)
    return;
  switch (k)
    {
    case PARSER_HTML_BLOCK:
    case PARSER_HTML_LI:
    case PARSER_HTML_TABLE:
    case PARSER_HTML_TR:
      parser_html_block (h, 1);
      break;
    case PARSER_HTML_PARA:
      parser_html_block (h,
                         strcmp (t->name, "p") == 0 && h->p_compact ? 1 : 2);
      break;
    case PARSER_HTML_HR:
      parser_html_block (h, 2);
      break;
    case PARSER_HTML_BR: /* "</br>" is a <br> in every browser */
      h->breaks = MIN (h->breaks + 1, 2);
      break;
    case PARSER_HTML_LIST:
      if (h->lists > 0)
        h->lists--;
      parser_html_block (h, 1);
      break;
    case PARSER_HTML_PRE:
      if (h->pre > 0)
        h->pre--;
      parser_html_block (h, 2);
      break;
    case PARSER_HTML_A:
      parser_html_finish_link (h);
      break;
    default:
      break;
    }
}

/* Markup at @p ('<'): comment, doctype, CDATA (dropped: it is a comment
 * in HTML content), processing instruction, end tag or start tag; a '<'
 * that starts none of them is text.  Returns where to go on.  */
static const char *
parser_html_markup (parser_html_state *h, const char *p, const char *end)
{
  parser_html_tag t;
  const char *q;

  if (end - p < 2)
    {
      parser_html_text (h, "<", 1);
      return end;
    }
  if (p[1] == '!')
    {
      if (end - p >= 4 && p[2] == '-' && p[3] == '-')
        {
          q = p + 4;
          if (q < end && *q == '>') /* "<!-->" */
            return q + 1;
          if (end - q >= 2 && q[0] == '-' && q[1] == '>') /* "<!--->" */
            return q + 2;
          return parser_html_skip_past (q, end, "-->");
        }
      if (end - p >= 9 && memcmp (p + 2, "[CDATA[", 7) == 0)
        return parser_html_skip_past (p + 9, end, "]]>");
      return parser_html_skip_past (p + 2, end, ">"); /* doctype, bogus */
    }
  if (p[1] == '?')
    return parser_html_skip_past (p + 2, end, ">");
  if (p[1] == '/')
    {
      if (end - p >= 3 && g_ascii_isalpha (p[2]))
        {
          q = parser_html_parse_tag (p + 2, end, &t);
          if (q == NULL)
            return end;
          parser_html_end_tag (h, &t);
          return q;
        }
      if (end - p >= 3 && p[2] == '>')
        return p + 3;
      return parser_html_skip_past (p + 2, end, ">");
    }
  if (!g_ascii_isalpha (p[1]))
    {
      parser_html_text (h, "<", 1);
      return p + 1;
    }
  q = parser_html_parse_tag (p + 1, end, &t);
  if (q == NULL)
    {
      g_free (t.href);
      g_free (t.alt);
      return end;
    }
  parser_html_start_tag (h, &t);
  if (parser_html_tag_kind (t.name) == PARSER_HTML_RAW)
    q = parser_html_skip_raw (q, end, t.name);
  g_free (t.href);
  g_free (t.alt);
  return q;
}

char *
parser_html_to_text (const char *html, gsize len)
{
  g_autofree char *fixed = NULL;
  parser_html_state h = { 0 };
  const char *p, *end;
  gsize n;

  if (html == NULL)
    return g_strdup ("");
  p = parser_text_valid (html, (gssize) len, &n, &fixed);
  end = p + n;
  h.out = g_string_sized_new (n / 2 + 16);
  while (p < end)
    {
      if (*p == '<')
        p = parser_html_markup (&h, p, end);
      else if (*p == '&')
        {
          gunichar c;
          gsize k = parser_html_entity (p, end, FALSE, &c);

          if (k == 0)
            {
              parser_html_text (&h, "&", 1);
              p++;
            }
          else
            {
              char buf[6];

              /* a '<' written as a reference is marked with 0xFF (never
               * in UTF-8) until the end: only it may come out before a
               * letter */
              if (c == '<')
                parser_html_text (&h, "\377", 1);
              else
                parser_html_text (&h, buf, (gsize) g_unichar_to_utf8 (c, buf));
              p += k;
            }
        }
      else
        {
          const char *q = p;

          while (q < end && *q != '<' && *q != '&')
            q++;
          parser_html_text (&h, p, (gsize) (q - p));
          p = q;
        }
    }
  parser_html_finish_link (&h);
  {
    gsize l = h.out->len;
    const char *s = parser_text_trim (h.out->str, &l);
    GString *r = g_string_sized_new (l + 1);

    /* The output is plain text, but a viewer that forgets to escape it
     * must still not meet a tag: a literal '<' that ends up before a
     * letter, '/', '!' or '?' ("<<script>x</script>/script>" leaves
     * "</script>"; an alt text) gets a space after it.  Only a '<' the
     * sender wrote as &lt; is kept as it is.  */
    for (gsize i = 0; i < l; i++)
      {
        if ((guchar) s[i] == 0xFF)
          g_string_append_c (r, '<');
        else
          {
            g_string_append_c (r, s[i]);
            if (s[i] == '<' && i + 1 < l
                && (g_ascii_isalpha (s[i + 1]) || s[i + 1] == '/'
                    || s[i + 1] == '!' || s[i + 1] == '?'))
              g_string_append_c (r, ' ');
          }
      }
    g_string_free (h.out, TRUE);
    return g_string_free (r, FALSE);
  }
}

/* ============================================================ flowed */

char *
parser_flowed_decode (const char *text, gboolean delsp)
{
  g_autofree char *fixed = NULL;
  const char *p, *end;
  GString *out;
  gboolean joining = FALSE;
  gsize join_depth = 0, n;

  if (text == NULL)
    return g_strdup ("");
  p = parser_text_valid (text, -1, &n, &fixed);
  end = p + n;
  out = g_string_sized_new (n + 1);
  while (p < end)
    {
      const char *nl = memchr (p, '\n', (gsize) (end - p));
      const char *le = nl ? nl : end;
      const char *c;
      gsize depth = 0, clen;
      gboolean sig, flowed;

      if (le > p && le[-1] == '\r')
        le--;
      /* RFC 3676 4.5: quote depth is the count of leading '>' */
      for (c = p; c < le && *c == '>'; c++)
        depth++;
      /* 4.4: one space after the quote marks is stuffing */
      if (c < le && *c == ' ')
        c++;
      clen = (gsize) (le - c);
      /* 4.3: the signature separator "-- " is never flowed */
      sig = clen == 3 && memcmp (c, "-- ", 3) == 0;
      flowed = !sig && clen > 0 && c[clen - 1] == ' ';
      /* 4.5: a change of quote depth ends a paragraph */
      if (joining && depth != join_depth)
        {
          g_string_append_c (out, '\n');
          joining = FALSE;
        }
      if (!joining)
        {
          for (gsize i = 0; i < depth; i++)
            g_string_append_c (out, '>');
          if (depth > 0 && clen > 0)
            g_string_append_c (out, ' ');
        }
      g_string_append_len (out, c,
                           (gssize) (flowed && delsp ? clen - 1 : clen));
      if (flowed)
        {
          joining = TRUE;
          join_depth = depth;
        }
      else
        {
          joining = FALSE;
          if (nl)
            g_string_append_c (out, '\n');
        }
      p = nl ? nl + 1 : end;
    }
  if (joining && n > 0 && end[-1] == '\n')
    g_string_append_c (out, '\n');
  return g_string_free (out, FALSE);
}

/* ============================================================ quotes */

typedef struct {
  const char *s;
  gsize len; /* without the line end */
} parser_quote_line;

static gboolean
parser_quote_blank (const parser_quote_line *l)
{
  gsize n = l->len;

  parser_text_trim (l->s, &n);
  return n == 0;
}

/* '>' at the start, after at most three spaces.  */
static gboolean
parser_quote_quoted (const parser_quote_line *l)
{
  gsize i = 0;

  while (i < l->len && i < 3 && l->s[i] == ' ')
    i++;
  return i < l->len && l->s[i] == '>';
}

/* "-----Original Message-----", "---------- Forwarded message ---------"
 * and their translations; "Begin forwarded message:".  */
static gboolean
parser_quote_separator (const parser_quote_line *l)
{
  static const parser_text_lit dashed[] = {
    PARSER_TEXT_LIT ("original message"),
    PARSER_TEXT_LIT ("ursprüngliche nachricht"),
    PARSER_TEXT_LIT ("message d'origine"),
    PARSER_TEXT_LIT ("oorspronkelijk bericht"),
    PARSER_TEXT_LIT ("mensaje original"),
    PARSER_TEXT_LIT ("messaggio originale"),
    PARSER_TEXT_LIT ("mensagem original"),
    PARSER_TEXT_LIT ("neges wreiddiol"),
    PARSER_TEXT_LIT ("forwarded message"),
    PARSER_TEXT_LIT ("weitergeleitete nachricht"),
    PARSER_TEXT_LIT ("message transféré"),
    PARSER_TEXT_LIT ("doorgestuurd bericht"),
    PARSER_TEXT_LIT ("mensaje reenviado"),
    PARSER_TEXT_LIT ("messaggio inoltrato"),
    PARSER_TEXT_LIT ("neges wedi'i hanfon ymlaen"),
  };
  static const parser_text_lit begins[] = {
    PARSER_TEXT_LIT ("begin forwarded message:"),
    PARSER_TEXT_LIT ("anfang der weitergeleiteten nachricht:"),
    PARSER_TEXT_LIT ("début du message réexpédié :"),
    PARSER_TEXT_LIT ("début du message réexpédié:"),
    PARSER_TEXT_LIT ("begin doorgestuurd bericht:"),
    PARSER_TEXT_LIT ("inicio del mensaje reenviado:"),
  };
  gsize n = l->len, lead = 0;
  const char *s = parser_text_trim (l->s, &n);

  for (gsize i = 0; i < G_N_ELEMENTS (begins); i++)
    if (parser_html_eq_ci (s, n, begins[i].s, begins[i].len))
      return TRUE;
  while (lead < n && s[lead] == '-')
    lead++;
  if (lead < 2)
    return FALSE;
  s += lead;
  n -= lead;
  while (n > 0 && s[n - 1] == '-')
    n--;
  s = parser_text_trim (s, &n);
  for (gsize i = 0; i < G_N_ELEMENTS (dashed); i++)
    if (parser_html_eq_ci (s, n, dashed[i].s, dashed[i].len))
      return TRUE;
  return FALSE;
}

/* A rule line: at least ten '_' (Outlook draws 32).  */
static gboolean
parser_quote_rule (const parser_quote_line *l)
{
  gsize n = l->len, i;
  const char *s = parser_text_trim (l->s, &n);

  for (i = 0; i < n && s[i] == '_'; i++)
    ;
  return n >= 10 && i == n;
}

enum {
  PARSER_QUOTE_FROM = 1 << 0,
  PARSER_QUOTE_SENT = 1 << 1,
  PARSER_QUOTE_TO = 1 << 2,
  PARSER_QUOTE_CC = 1 << 3,
  PARSER_QUOTE_SUBJECT = 1 << 4,
};

/* The class of an Outlook header line ("From:", "Von:", "De :", "*To:*"
 * ...), 0 if it is none.  */
static guint
parser_quote_header_key (const parser_quote_line *l)
{
  static const struct {
    guint cls;
    parser_text_lit key;
  } keys[] = {
    { PARSER_QUOTE_FROM, PARSER_TEXT_LIT ("from") },
    { PARSER_QUOTE_FROM, PARSER_TEXT_LIT ("von") },
    { PARSER_QUOTE_FROM, PARSER_TEXT_LIT ("de") },
    { PARSER_QUOTE_FROM, PARSER_TEXT_LIT ("van") },
    { PARSER_QUOTE_FROM, PARSER_TEXT_LIT ("da") },
    { PARSER_QUOTE_FROM, PARSER_TEXT_LIT ("oddi wrth") },
    { PARSER_QUOTE_FROM, PARSER_TEXT_LIT ("fra") },
    { PARSER_QUOTE_FROM, PARSER_TEXT_LIT ("från") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("sent") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("date") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("gesendet") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("datum") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("envoyé") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("date d'envoi") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("verzonden") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("verstuurd") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("enviado") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("enviado el") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("fecha") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("anfonwyd") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("inviato") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("data") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("sendt") },
    { PARSER_QUOTE_SENT, PARSER_TEXT_LIT ("skickat") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("to") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("an") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("à") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("À") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("a") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("aan") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("para") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("at") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("til") },
    { PARSER_QUOTE_TO, PARSER_TEXT_LIT ("till") },
    { PARSER_QUOTE_CC, PARSER_TEXT_LIT ("cc") },
    { PARSER_QUOTE_CC, PARSER_TEXT_LIT ("bcc") },
    { PARSER_QUOTE_CC, PARSER_TEXT_LIT ("kopie") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("subject") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("betreff") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("objet") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("onderwerp") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("asunto") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("pwnc") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("oggetto") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("assunto") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("emne") },
    { PARSER_QUOTE_SUBJECT, PARSER_TEXT_LIT ("ämne") },
  };
  gsize n = l->len, kl;
  const char *s = parser_text_trim (l->s, &n), *colon;

  if (n > 0 && *s == '*')
    s++, n--;
  colon = memchr (s, ':', MIN (n, (gsize) 24));
  if (colon == NULL)
    return 0;
  kl = (gsize) (colon - s);
  s = parser_text_trim (s, &kl);
  while (kl > 0 && s[kl - 1] == '*')
    kl--;
  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    if (parser_html_eq_ci (s, kl, keys[i].key.s, keys[i].key.len))
      return keys[i].cls;
  return 0;
}

/* An Outlook header block starting at line @i: "From:" then, on the next
 * lines before a blank one, a date ("Sent:", "Date:", "Gesendet:" ...)
 * and "To:" or "Subject:".  A citizen's letter opening "From: / To: /
 * Subject:" has no date line and stays new text.  */
static gboolean
parser_quote_header_block (const parser_quote_line *lines, gsize n, gsize i)
{
  guint seen = 0;

  if (parser_quote_header_key (&lines[i]) != PARSER_QUOTE_FROM)
    return FALSE;
  for (gsize j = i + 1; j < n && j <= i + PARSER_TEXT_HEADER_BLOCK_LINES; j++)
    {
      if (parser_quote_blank (&lines[j]))
        break;
      seen |= parser_quote_header_key (&lines[j]);
    }
  return (seen & PARSER_QUOTE_SENT)
         && (seen & (PARSER_QUOTE_TO | PARSER_QUOTE_SUBJECT));
}

/* An attribution in @s: "On ... wrote:" and translations.  *@weak is set
 * for the bare "... wrote:" form, which only counts before a '>' line.  */
static gboolean
parser_quote_attribution_text (const char *s, gsize n, gboolean *weak)
{
  static const struct {
    const char *start, *end;
  } pats[] = {
    { "on ", "wrote:" }, { "le ", "a écrit :" }, { "le ", "a écrit:" },
    { "el ", "escribió:" }, { "il ", "ha scritto:" }, { "em ", "escreveu:" },
    { "op ", "geschreven:" },
  };
  static const struct {
    const char *start, *word;
  } colon_pats[] = {
    { "am ", " schrieb" }, { "op ", " schreef" }, { "ar ", "ysgrifennodd" },
  };

  *weak = FALSE;
  s = parser_text_trim (s, &n);
  if (n == 0 || s[n - 1] != ':')
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (pats); i++)
    if (parser_text_prefix_ci (s, n, pats[i].start)
        && parser_text_suffix_ci (s, n, pats[i].end))
      return TRUE;
  for (gsize i = 0; i < G_N_ELEMENTS (colon_pats); i++)
    if (parser_text_prefix_ci (s, n, colon_pats[i].start)
        && parser_text_find_ci (s, n, colon_pats[i].word))
      return TRUE;
  if (parser_text_suffix_ci (s, n, " wrote:")
      || parser_text_suffix_ci (s, n, " schrieb:")
      || parser_text_suffix_ci (s, n, " a écrit :"))
    {
      *weak = TRUE;
      return TRUE;
    }
  return FALSE;
}

/* An attribution starting at line @i, over 1-3 lines (Gmail wraps long
 * ones).  Returns how many lines it takes, 0 if none.  */
static gsize
parser_quote_attribution (const parser_quote_line *lines, gsize n, gsize i,
                          gboolean *weak)
{
  char buf[PARSER_TEXT_ATTRIBUTION_MAX];
  gsize len = 0;
  gboolean colon = FALSE;

  /* every attribution ends its last line with ':' (and
   * parser_quote_attribution_text() needs one at the end): lines without
   * it are not copied and tried */
  for (gsize k = 0; k < PARSER_TEXT_ATTRIBUTION_LINES && i + k < n && !colon;
       k++)
    {
      gsize tl = lines[i + k].len;
      const char *t = parser_text_trim (lines[i + k].s, &tl);

      colon = tl > 0 && t[tl - 1] == ':';
    }
  if (!colon)
    return 0;
  for (gsize k = 0; k < PARSER_TEXT_ATTRIBUTION_LINES && i + k < n; k++)
    {
      const parser_quote_line *l = &lines[i + k];
      gsize tl = l->len;
      const char *t = parser_text_trim (l->s, &tl);

      if (tl == 0 || parser_quote_quoted (l) || len + tl + 1 > sizeof buf)
        return 0;
      if (k > 0)
        {
          /* a wrapped attribution carries a date and does not end a
           * sentence on its first line */
          char last = buf[len - 1];

          if (last == '.' || last == '!' || last == '?')
            return 0;
          buf[len++] = ' ';
        }
      memcpy (buf + len, t, tl);
      len += tl;
      if (parser_quote_attribution_text (buf, len, weak))
        {
          if (k > 0)
            {
              gboolean digit = FALSE;

              for (gsize j = 0; j < len && !digit; j++)
                digit = g_ascii_isdigit (buf[j]);
              if (!digit)
                return 0;
            }
          return k + 1;
        }
    }
  return 0;
}

static gboolean
parser_quote_line_is (const parser_quote_line *l, const char *word)
{
  gsize n = l->len;
  const char *s = parser_text_trim (l->s, &n);

  return parser_html_eq_ci (s, n, word, strlen (word));
}

/* Lotus Notes puts the quoted message's header in a table that becomes
 *   Name <addr>  /  [Sent by: ...]  /  06/03/08 10:00  /  (blank)
 *   To  /  FOI requests <addr>  /  cc  /  (blank)  /  Subject  /  ...
 * Given the "To" line @i, returns the block's first line, or -1.  */
static gssize
parser_quote_lotus (const parser_quote_line *lines, gsize n, gsize i)
{
  gboolean cc = FALSE, subject = FALSE;
  gssize first = -1;
  guint blanks = 0;

  if (!parser_quote_line_is (&lines[i], "to"))
    return -1;
  for (gsize j = i + 1; j < n && j <= i + PARSER_TEXT_LOTUS_LINES; j++)
    {
      if (parser_quote_line_is (&lines[j], "cc") && j <= i + 4)
        cc = TRUE;
      if (parser_quote_line_is (&lines[j], "subject") && cc)
        subject = TRUE;
    }
  if (!cc || !subject)
    return -1;
  for (gsize j = i; j > 0 && i - j < PARSER_TEXT_LOTUS_LINES; j--)
    {
      const parser_quote_line *l = &lines[j - 1];

      if (parser_quote_blank (l))
        {
          if (++blanks > 2)
            break;
          continue;
        }
      blanks = 0;
      if (memchr (l->s, '@', l->len))
        first = (gssize) (j - 1);
    }
  return first >= 0 ? first : (gssize) i;
}

static void
parser_quote_split_impl (const char *text, gboolean valid, char **new_text,
                         char **quoted)
{
  g_autofree char *fixed = NULL;
  g_autofree parser_quote_line *lines = NULL;
  const char *s, *end, *p;
  gsize n = 0, len, split, last_plain = G_MAXSIZE, cap = 1;
  gboolean found = FALSE;

  g_return_if_fail (new_text != NULL && quoted != NULL);
  if (text == NULL)
    text = "";
  s = parser_text_input (text, valid, &len, &fixed);
  end = s + len;
  /* lines: at most one more than there are line feeds */
  for (p = s; p < end && (p = memchr (p, '\n', (gsize) (end - p))) != NULL;
       p++)
    cap++;
  lines = g_new (parser_quote_line, cap);
  for (p = s; p < end;)
    {
      const char *nl = memchr (p, '\n', (gsize) (end - p));
      parser_quote_line l = { p, (gsize) ((nl ? nl : end) - p) };

      if (l.len > 0 && l.s[l.len - 1] == '\r')
        l.len--;
      lines[n++] = l;
      p = nl ? nl + 1 : end;
    }
  for (gsize i = n; i > 0; i--)
    if (!parser_quote_blank (&lines[i - 1])
        && !parser_quote_quoted (&lines[i - 1]))
      {
        last_plain = i - 1;
        break;
      }

  split = n;
  for (gsize i = 0; i < n && !found; i++)
    {
      const parser_quote_line *l = &lines[i];
      gboolean weak;
      gsize span;
      gssize lotus;

      if (parser_quote_blank (l) || parser_quote_quoted (l))
        continue;
      if (parser_quote_separator (l)
          || parser_quote_header_block (lines, n, i))
        {
          split = i;
          found = TRUE;
        }
      else if (parser_quote_rule (l))
        {
          gsize j = i + 1;

          while (j < n && j <= i + 2 && parser_quote_blank (&lines[j]))
            j++;
          if (j < n && parser_quote_header_block (lines, n, j))
            {
              split = i;
              found = TRUE;
            }
        }
      else if ((span = parser_quote_attribution (lines, n, i, &weak)) > 0)
        {
          gsize j = i + span;

          while (j < n && parser_quote_blank (&lines[j]))
            j++;
          if (j < n && parser_quote_quoted (&lines[j]))
            {
              /* interleaved replies keep their quotes in the new text */
              if (last_plain == G_MAXSIZE || last_plain < j)
                {
                  split = i;
                  found = TRUE;
                }
            }
          else if (!weak)
            {
              split = i;
              found = TRUE;
            }
        }
      else if ((lotus = parser_quote_lotus (lines, n, i)) >= 0)
        {
          split = (gsize) lotus;
          found = TRUE;
        }
    }

  /* a block of '>' lines (and blank ones) that runs to the end */
  if (!found)
    {
      gsize k = n;

      while (k > 0
             && (parser_quote_blank (&lines[k - 1])
                 || parser_quote_quoted (&lines[k - 1])))
        k--;
      while (k < n && parser_quote_blank (&lines[k]))
        k++;
      if (k < n)
        split = k;
    }

  {
    gsize nl = split < n ? (gsize) (lines[split].s - s) : len;
    gsize ql = len - nl;
    const char *a = s, *b = s + nl;

    /* trailing white space (blank lines) trimmed from both */
    while (nl > 0 && parser_text_is_space (a[nl - 1]))
      nl--;
    while (ql > 0 && parser_text_is_space (b[ql - 1]))
      ql--;
    *new_text = g_strndup (a, nl);
    *quoted = g_strndup (b, ql);
  }
}

void
parser_quote_split (const char *text, char **new_text, char **quoted)
{
  parser_quote_split_impl (text, FALSE, new_text, quoted);
}

void
parser_quote_split_valid (const char *text, char **new_text, char **quoted)
{
  parser_quote_split_impl (text, TRUE, new_text, quoted);
}

/* ============================================================ cards */

typedef struct {
  const char *s; /* first digit */
  gsize len;     /* digits */
} parser_cards_group;

static gboolean
parser_cards_luhn (const parser_cards_group *g, gsize n)
{
  guint sum = 0, pos = 0;

  for (gsize i = n; i > 0; i--)
    for (gsize k = g[i - 1].len; k > 0; k--, pos++)
      {
        guint d = (guint) (g[i - 1].s[k - 1] - '0');

        if (pos % 2 == 1)
          {
            d *= 2;
            if (d > 9)
              d -= 9;
          }
        sum += d;
      }
  return sum % 10 == 0;
}

/* IBANs written in groups ("GB82 WEST 1234 5698 7654 32"): a run of
 * digits after up to three groups of at most four letters and digits,
 * one of which is a country code and check digits.  */
static gboolean
parser_cards_iban_before (const char *start, const char *p)
{
  for (int k = 0; k < 3; k++)
    {
      const char *e, *b;

      if (p - start < 2 || p[-1] != ' ' || !g_ascii_isalnum (p[-2]))
        return FALSE;
      e = p - 1;
      b = e;
      while (b > start && g_ascii_isalnum (b[-1]) && e - b < 5)
        b--;
      if (e - b > 4 || (b > start && g_ascii_isalnum (b[-1])))
        return FALSE;
      if (e - b == 4 && g_ascii_isalpha (b[0]) && g_ascii_isalpha (b[1])
          && g_ascii_isdigit (b[2]) && g_ascii_isdigit (b[3]))
        return TRUE;
      p = b;
    }
  return FALSE;
}

static void
parser_cards_found_add (GPtrArray *found, const char *value)
{
  parser_pd *pd;

  for (guint i = 0; i < found->len; i++)
    {
      const parser_pd *o = found->pdata[i];

      if (o->kind == PARSER_PD_CARD && strcmp (o->value, value) == 0)
        return;
    }
  if (found->len >= PARSER_TEXT_PD_MAX)
    return;
  pd = g_new0 (parser_pd, 1);
  pd->kind = PARSER_PD_CARD;
  pd->value = g_strdup (value);
  g_ptr_array_add (found, pd);
}

/* @take (nullable): @text itself, owned by the call: returned when
 * nothing changed, else freed.  */
static char *
parser_cards_redact_impl (const char *text, gboolean valid, guint *count,
                          GPtrArray *found, char *take)
{
  g_autofree char *fixed = NULL;
  g_autoptr (GArray) groups = NULL;
  const char *s, *end, *p, *copied;
  GString *out;
  guint redacted = 0;
  gsize len;

  if (count)
    *count = 0;
  if (text == NULL)
    return g_strdup ("");
  s = parser_text_input (text, valid, &len, &fixed);
  end = s + len;
  /* @out and @groups are made when first needed: most texts (header
   * values) have no run of digits long enough for a card */
  out = NULL;
  copied = s;
  p = s;
  while (p < end)
    {
      const char *run, *q;
      gboolean too_long = FALSE;
      const parser_cards_group *g;
      gsize ng, run_digits = 0;

      if (!g_ascii_isdigit (*p))
        {
          /* s[len] is a NUL */
          p = parser_text_next_digit (p, end);
          if (p == NULL)
            break;
        }
      /* the maximal run: groups of digits joined by one space or dash;
       * first only counted, as most runs (dates, amounts, binary text)
       * are too short for a card */
      q = p;
      for (;;)
        {
          const char *g0 = q;

          while (q < end && g_ascii_isdigit (*q))
            q++;
          run_digits += (gsize) (q - g0);
          if ((gsize) (q - g0) > PARSER_TEXT_CARD_MAX)
            too_long = TRUE;
          if (end - q >= 2 && (*q == ' ' || *q == '-')
              && g_ascii_isdigit (q[1]))
            q++;
          else
            break;
        }
      if (too_long || run_digits < PARSER_TEXT_CARD_MIN)
        {
          p = q;
          continue;
        }
      run_digits = 0;
      if (groups == NULL)
        groups = g_array_new (FALSE, FALSE, sizeof (parser_cards_group));
      run = p;
      g_array_set_size (groups, 0);
      q = p;
      for (;;)
        {
          parser_cards_group cg = { q, 0 };

          while (q < end && g_ascii_isdigit (*q))
            q++;
          cg.len = (gsize) (q - cg.s);
          run_digits += cg.len;
          if (cg.len > PARSER_TEXT_CARD_MAX)
            too_long = TRUE;
          g_array_append_val (groups, cg);
          if (end - q >= 2 && (*q == ' ' || *q == '-')
              && g_ascii_isdigit (q[1]))
            q++;
          else
            break;
        }
      p = q;
      if (too_long || run_digits < PARSER_TEXT_CARD_MIN
          || parser_text_word_before (s, run)
          || parser_text_word_at (q, end) || parser_cards_iban_before (s, run))
        continue;

      g = (const parser_cards_group *) (void *) groups->data;
      ng = groups->len;
      for (gsize a = 0; a < ng;)
        {
          gssize best = -1;
          gsize digits = 0;

          /* ISO/IEC 7812: the first digit of a payment card (its major
           * industry identifier) is 2 to 6; 13-digit cards are Visa (4).
           * Timestamps ("id 1335650976813"), phone numbers (0...) and
           * most reference numbers are not cards.  */
          if (g[a].s[0] >= '2' && g[a].s[0] <= '6')
            for (gsize b = a; b < ng; b++)
              {
                /* inside a card number, groups have 3 digits or more */
                if (b > a && g[b - 1].len < 3)
                  break;
                digits += g[b].len;
                if (digits > PARSER_TEXT_CARD_MAX)
                  break;
                if (digits >= PARSER_TEXT_CARD_MIN
                    && (digits > PARSER_TEXT_CARD_MIN || g[a].s[0] == '4')
                    && parser_cards_luhn (g + a, b - a + 1))
                  best = (gssize) b;
              }
          if (best < 0)
            {
              a++;
              continue;
            }
          {
            const parser_cards_group *last = &g[best];
            const char *cend = last->s + last->len;
            char masked[32];
            guint taken = 0;
            char four[5] = { 0 };

            /* the last four digits, which may span groups ("... 12-34") */
            for (const char *r = cend; r > g[a].s && taken < 4; r--)
              if (g_ascii_isdigit (r[-1]))
                four[3 - taken++] = r[-1];
            g_snprintf (masked, sizeof masked, "**** **** **** %s",
                        four + (4 - taken));
            if (out == NULL)
              out = g_string_sized_new (len + 1);
            g_string_append_len (out, copied, g[a].s - copied);
            g_string_append (out, masked);
            copied = cend;
            redacted++;
            if (found)
              parser_cards_found_add (found, masked);
            a = (gsize) best + 1;
          }
        }
    }
  if (count)
    *count = redacted;
  if (out == NULL)
    {
      if (fixed != NULL)
        {
          g_free (take);
          return g_steal_pointer (&fixed);
        }
      return take != NULL ? take : g_strndup (s, len);
    }
  g_string_append_len (out, copied, end - copied);
  g_free (take);
  return g_string_free (out, FALSE);
}

char *
parser_cards_redact (const char *text, guint *count, GPtrArray *found)
{
  return parser_cards_redact_impl (text, FALSE, count, found, NULL);
}

char *
parser_cards_redact_take (char *text, gboolean valid, guint *count,
                          GPtrArray *found)
{
  if (text == NULL)
    {
      if (count)
        *count = 0;
      return g_strdup ("");
    }
  return parser_cards_redact_impl (text, valid, count, found, text);
}

/* ============================================================ personal */

/* Every detector below is a scanner that, started at a position, either
 * passes it or consumes a stretch; parser_pd_find runs them all in one
 * pass over the text, each with its own "next" position, so each sees the
 * positions it would have seen alone, and collects each detector's finds
 * in its own list: the result (order, duplicates, the PARSER_TEXT_PD_MAX
 * cap) is that of running them one after the other.  */
typedef enum {
  PARSER_PD_DET_EMAIL,
  PARSER_PD_DET_PHONE,
  PARSER_PD_DET_POSTCODE,
  PARSER_PD_DET_NINO,
  PARSER_PD_DET_DOB,
  PARSER_PD_DET_BANK,
  PARSER_PD_DET_COUNT,
} parser_pd_det;

/* A find and the detector that made it.  */
typedef struct {
  parser_pd *pd;
  parser_pd_det det;
} parser_pd_out;

/* Finds of one text kept without an allocation; most texts have a few.  */
#define PARSER_PD_OUT_INLINE 16

typedef struct {
  const char *s, *end;  /* the text */
  GPtrArray *found;
  parser_pd_seen *seen; /* "kind:normalised"; filled on the first find */
  /* the finds, in the order found, each with its detector: the first
   * ones here, the rest (a long text) in @more */
  parser_pd_out out[PARSER_PD_OUT_INLINE];
  guint n_out;
  GArray *more;          /* parser_pd_out, made when needed */
  guint n_det[PARSER_PD_DET_COUNT]; /* finds of each detector */
  guint room;            /* finds @found can still take */
} parser_pd_ctx;

static inline char
parser_text_lower (char c)
{
  return c >= 'A' && c <= 'Z' ? (char) (c + ('a' - 'A')) : c;
}

static inline char
parser_text_upper (char c)
{
  return c >= 'a' && c <= 'z' ? (char) (c - ('a' - 'A')) : c;
}

/* The key under which a value counts as a duplicate: e-mail addresses
 * without case, numbers by their digits, codes upper-case without spaces.  */
static char *
parser_pd_key (parser_pd_kind kind, const char *v)
{
  /* "%d:" and at most one byte of @v for each of its bytes, written
   * straight into one allocation */
  char *k = g_malloc (strlen (v) + 4);
  gsize o = 0;

  if ((int) kind >= 10)
    k[o++] = (char) ('0' + (int) kind / 10 % 10);
  k[o++] = (char) ('0' + (int) kind % 10);
  k[o++] = ':';
  switch (kind)
    {
    case PARSER_PD_EMAIL:
    case PARSER_PD_DOB:
    case PARSER_PD_CARD:
      /* g_ascii_tolower() inline: a call for each byte otherwise */
      for (const char *p = v; *p; p++)
        k[o++] = parser_text_lower (*p);
      break;
    case PARSER_PD_PHONE:
      {
        /* national form: +44 (0)20... and 020... are the same number */
        gsize d0 = o, dn, skip = 0;
        const char *d;

        for (const char *p = v; *p; p++)
          if (g_ascii_isdigit (*p))
            k[o++] = *p;
        d = k + d0;
        dn = o - d0;
        if (dn >= 4 && memcmp (d, "0044", 4) == 0)
          skip = 4;
        else if (v[0] == '+' && dn >= 2 && d[0] == '4' && d[1] == '4')
          skip = 2;
        if (skip < dn && d[skip] == '0')
          skip++;
        memmove (k + d0, k + d0 + skip, dn - skip);
        o -= skip;
      }
      break;
    default:
      for (const char *p = v; *p; p++)
        if (g_ascii_isalnum (*p))
          k[o++] = parser_text_upper (*p);
      break;
    }
  k[o] = '\0';
  return k;
}

/* Adds @key (taken) to @s; FALSE (and @key freed) when an equal key was
 * there.  */
static gboolean
parser_pd_seen_add (parser_pd_seen *s, char *key)
{
  if (s->table == NULL)
    {
      for (guint i = 0; i < s->n; i++)
        if (strcmp (s->keys[i], key) == 0)
          {
            g_free (key);
            return FALSE;
          }
      if (s->n < PARSER_PD_SEEN_INLINE)
        {
          s->keys[s->n++] = key;
          return TRUE;
        }
      s->table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      for (guint i = 0; i < s->n; i++)
        g_hash_table_add (s->table, s->keys[i]);
      s->n = 0;
    }
  /* FALSE when the key was there: the table keeps one of the equal keys
   * and frees the other */
  return g_hash_table_add (s->table, key);
}

void
parser_pd_seen_clear (parser_pd_seen *s)
{
  for (guint i = 0; i < s->n; i++)
    g_free (s->keys[i]);
  g_clear_pointer (&s->table, g_hash_table_unref);
  s->n = 0;
  s->filled = FALSE;
}

static void
parser_pd_add (parser_pd_ctx *c, parser_pd_det det, parser_pd_kind kind,
               const char *v, gsize len)
{
  parser_pd *pd;
  parser_pd_out f;
  char *value, *key;
  gsize tl = len;

  v = parser_text_trim (v, &tl);
  if (tl == 0 || c->n_det[det] >= c->room)
    return;
  if (!c->seen->filled)
    {
      c->seen->filled = TRUE;
      for (guint i = 0; i < c->found->len; i++)
        {
          const parser_pd *o = c->found->pdata[i];

          if (o != NULL && o->value != NULL)
            parser_pd_seen_add (c->seen, parser_pd_key (o->kind, o->value));
        }
    }
  value = g_strndup (v, tl);
  key = parser_pd_key (kind, value);
  if (!parser_pd_seen_add (c->seen, key))
    {
      g_free (value);
      return;
    }
  pd = g_new0 (parser_pd, 1);
  pd->kind = kind;
  pd->value = value;
  c->n_det[det]++;
  f.pd = pd;
  f.det = det;
  if (c->n_out < PARSER_PD_OUT_INLINE)
    c->out[c->n_out++] = f;
  else
    {
      if (c->more == NULL)
        c->more = g_array_new (FALSE, FALSE, sizeof (parser_pd_out));
      g_array_append_val (c->more, f);
    }
}

static gboolean
parser_pd_local_char (char c)
{
  return g_ascii_isalnum (c) || c == '.' || c == '_' || c == '%' || c == '+'
         || c == '-' || c == '\'';
}

static gboolean
parser_pd_domain_char (char c)
{
  return g_ascii_isalnum (c) || c == '.' || c == '-';
}

/* E-mail addresses: around each '@' (at @at), at most 64 bytes of local
 * part and 253 of domain (RFC 5321 4.5.3.1), a dot in the domain and a
 * top-level label of two letters or more.  Returns where to look for the
 * next '@'.  */
static const char *
parser_pd_email_at (parser_pd_ctx *c, const char *at)
{
  const char *b, *e, *dot = NULL;
  gboolean tld = TRUE;

  b = at;
  while (b > c->s && parser_pd_local_char (b[-1])
         && at - b <= PARSER_TEXT_LOCAL_PART_MAX)
    b--;
  if (at - b > PARSER_TEXT_LOCAL_PART_MAX)
    return at + 1;
  while (b < at && (*b == '.' || *b == '\'' || *b == '-'))
    b++;
  if (b == at)
    return at + 1;
  e = at + 1;
  while (e < c->end && parser_pd_domain_char (*e)
         && e - at <= PARSER_TEXT_DOMAIN_MAX + 1)
    e++;
  if (e - at > PARSER_TEXT_DOMAIN_MAX + 1)
    return at + 1;
  while (e > at + 1 && (e[-1] == '.' || e[-1] == '-'))
    e--;
  for (const char *d = at + 1; d < e; d++)
    if (*d == '.')
      dot = d;
  if (dot == NULL || dot == at + 1 || e - dot < 3)
    return at + 1;
  for (const char *d = dot + 1; d < e; d++)
    if (!g_ascii_isalpha (*d))
      tld = FALSE;
  if (!tld)
    return at + 1;
  parser_pd_add (c, PARSER_PD_DET_EMAIL, PARSER_PD_EMAIL, b, (gsize) (e - b));
  return e;
}

/* UK telephone numbers: 0 or +44 / 0044 (with an optional "(0)"), then a
 * national number of 9 or 10 digits starting 1, 2, 3, 5, 7, 8 or 9 (9
 * digits only for 01 and 08 numbers), in groups split by one space or
 * dash, the area code optionally in brackets.  The longest valid prefix
 * of a run of groups is taken: "07700 900123 2 times" gives the number.
 * @p is a '+', '(' or '0' not after a letter or digit (@word_before).
 * Returns where to look next.  */
static const char *
parser_pd_phone_at (parser_pd_ctx *c, const char *p, gboolean word_before)
{
  const char *end = c->end;
  const char *start = p, *q, *best_end = NULL;
  char digits[24];
  gsize nd = 0;
  guint opened = 0; /* 1: "(" seen, 2: and closed */
  gboolean intl = FALSE;

  if (word_before || (p > c->s && (p[-1] == '+' || p[-1] == '(')))
    return p + 1;
  q = p;
  if (end - q >= 3 && q[0] == '+' && q[1] == '4' && q[2] == '4')
    {
      intl = TRUE;
      q += 3;
    }
  else if (end - q >= 4 && memcmp (q, "0044", 4) == 0)
    {
      intl = TRUE;
      q += 4;
    }
  else if (end - q >= 2 && q[0] == '(' && q[1] == '0')
    {
      opened = 1;
      q++;
    }
  else if (*q != '0')
    return p + 1;
  if (intl)
    {
      /* "+44 7700 ...", "+44 (0)20 ...", "+44 (0) 20 ..." */
      if (q < end && (*q == ' ' || *q == '-'))
        q++;
      if (end - q >= 3 && q[0] == '(' && q[1] == '0' && q[2] == ')')
        {
          q += 3;
          if (q < end && *q == ' ')
            q++;
        }
    }
  while (q < end && g_ascii_isdigit (*q))
    {
      gsize nsn;
      char first;

      while (q < end && g_ascii_isdigit (*q) && nd < sizeof digits)
        digits[nd++] = *q++;
      if (q < end && g_ascii_isdigit (*q))
        break; /* far too long */
      nsn = intl ? nd : nd - 1;
      first = intl ? digits[0] : (nd > 1 ? digits[1] : '0');
      if ((nsn == 10 && strchr ("1235789", first) != NULL)
          || (nsn == 9 && (first == '1' || first == '8')))
        best_end = q;
      if (nsn >= 10)
        break;
      if (opened == 1 && q < end && *q == ')')
        {
          opened = 2;
          q++;
          if (q < end && (*q == ' ' || *q == '-'))
            q++;
          continue;
        }
      if (end - q >= 2 && (*q == ' ' || *q == '-') && g_ascii_isdigit (q[1]))
        {
          q++;
          continue;
        }
      break;
    }
  if (best_end != NULL && opened != 1 && !parser_text_word_at (best_end, end))
    {
      parser_pd_add (c, PARSER_PD_DET_PHONE, PARSER_PD_PHONE, start,
                     (gsize) (best_end - start));
      return best_end;
    }
  return q > p ? q : p + 1;
}

static gboolean
parser_pd_in (char c, const char *set)
{
  return c != '\0' && strchr (set, parser_text_upper (c)) != NULL;
}

/* The outward code (2-4 characters) of a UK postcode: A9 A99 AA9 AA99
 * A9A AA9A, with the letters each position allows.  */
static gboolean
parser_pd_outward (const char *s, gsize n)
{
  if (n < 2 || n > 4 || !g_ascii_isalpha (s[0]) || parser_pd_in (s[0], "QVX"))
    return FALSE;
  if (g_ascii_isdigit (s[1]))
    {
      if (n == 2)
        return TRUE; /* A9 */
      if (n == 3)
        return g_ascii_isdigit (s[2])                     /* A99 */
               || parser_pd_in (s[2], "ABCDEFGHJKPSTUW"); /* A9A */
      return FALSE;
    }
  if (!g_ascii_isalpha (s[1]) || parser_pd_in (s[1], "IJZ") || n < 3
      || !g_ascii_isdigit (s[2]))
    return FALSE;
  if (n == 3)
    return TRUE;                                 /* AA9 */
  return g_ascii_isdigit (s[3])                  /* AA99 */
         || parser_pd_in (s[3], "ABEHMNPRVWXY"); /* AA9A */
}

/* The inward code: 9AA without C I K M O V.  In lower case, "1st",
 * "2nd", "3rd" and "4th" are ordinals ("M1 2nd exit"), not codes.  */
static gboolean
parser_pd_inward (const char *s)
{
  static const char *const ordinals[] = { "1st", "2nd", "3rd", "4th", "5th",
                                          "6th", "7th", "8th", "9th", "0th" };

  if (!g_ascii_isdigit (s[0]) || !g_ascii_isalpha (s[1])
      || !g_ascii_isalpha (s[2]) || parser_pd_in (s[1], "CIKMOV")
      || parser_pd_in (s[2], "CIKMOV"))
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (ordinals); i++)
    if (strncmp (s, ordinals[i], 3) == 0)
      return FALSE;
  return TRUE;
}

static gboolean
parser_pd_postcode (const char *w1, gsize n1, const char *w2)
{
  if (n1 == 3 && g_ascii_strncasecmp (w1, "GIR", 3) == 0 && w2[0] == '0'
      && parser_text_upper (w2[1]) == 'A' && parser_text_upper (w2[2]) == 'A')
    return TRUE;
  return parser_pd_outward (w1, n1) && parser_pd_inward (w2);
}

/* UK postcodes, any case, with one space or none: every word (maximal
 * run of ASCII letters and digits, starting at @w) is tried alone and
 * with the next; @e is the end of the run.  Returns where the next word
 * may start.  */
static const char *
parser_pd_postcode_at (parser_pd_ctx *c, const char *w, const char *e,
                       gboolean word_before)
{
  gsize n = (gsize) (e - w);

  if (word_before || parser_text_word_at (e, c->end))
    return e;
  /* an inward code starts with a digit (GIR 0AA's too) */
  if (n >= 5 && n <= 7 && g_ascii_isdigit (e[-3])
      && parser_pd_postcode (w, n - 3, e - 3))
    {
      parser_pd_add (c, PARSER_PD_DET_POSTCODE, PARSER_PD_POSTCODE, w, n);
      return e;
    }
  if (n >= 2 && n <= 4 && c->end - e >= 4 && *e == ' '
      && g_ascii_isalnum (e[1]) && g_ascii_isalnum (e[2])
      && g_ascii_isalnum (e[3]) && g_ascii_isdigit (e[1])
      && !parser_text_word_at (e + 4, c->end)
      && parser_pd_postcode (w, n, e + 1))
    {
      parser_pd_add (c, PARSER_PD_DET_POSTCODE, PARSER_PD_POSTCODE, w, n + 4);
      return e + 4;
    }
  return e;
}

/* National Insurance numbers: a prefix of two letters (first not D F I Q
 * U V, second not D F I O Q U V, and not BG GB KN NK NT TN ZZ), six
 * digits, a suffix A-D; one space allowed between the parts and between
 * digit pairs.  HMRC's specimen "QQ 12 34 56 C" is deliberately
 * invalid and is not reported.  @p is two letters not after a letter or
 * digit, with 9 bytes from it; returns where to look next.  */
static const char *
parser_pd_nino_at (parser_pd_ctx *c, const char *p)
{
  static const char *const bad[]
      = { "BG", "GB", "KN", "NK", "NT", "TN", "ZZ" };
  const char *q = p + 2;
  char pre[2];

  /* the digits first: most words fail there */
  for (int k = 0; k < 3; k++)
    {
      if (q < c->end && *q == ' ')
        q++;
      if (c->end - q < 2 || !g_ascii_isdigit (q[0])
          || !g_ascii_isdigit (q[1]))
        return p + 1;
      q += 2;
    }
  pre[0] = parser_text_upper (p[0]);
  pre[1] = parser_text_upper (p[1]);
  if (parser_pd_in (pre[0], "DFIQUV") || parser_pd_in (pre[1], "DFIOQUV"))
    return p + 1;
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    if (pre[0] == bad[i][0] && pre[1] == bad[i][1])
      return p + 1;
  if (q < c->end && *q == ' ')
    q++;
  if (q < c->end && parser_pd_in (*q, "ABCD")
      && !parser_text_word_at (q + 1, c->end))
    {
      parser_pd_add (c, PARSER_PD_DET_NINO, PARSER_PD_NINO, p,
                     (gsize) (q + 1 - p));
      return q + 1;
    }
  return p + 1;
}

typedef struct {
  gsize start, end; /* byte offsets of a keyword */
} parser_pd_kw;

/* Month names and their abbreviations; returns the bytes matched.  */
static gsize
parser_pd_month (const char *p, const char *end)
{
  static const char *const months[] = {
    "january", "february", "march",     "april",   "may",      "june",
    "july",    "august",   "september", "october", "november", "december",
    "sept",    "jan",      "feb",       "mar",     "apr",      "jun",
    "jul",     "aug",      "sep",       "oct",     "nov",      "dec",
  };

  if (p >= end || !strchr ("jfmasondJFMASOND", *p))
    return 0;
  for (gsize i = 0; i < G_N_ELEMENTS (months); i++)
    {
      gsize n = strlen (months[i]);

      if ((gsize) (end - p) >= n && g_ascii_strncasecmp (p, months[i], n) == 0
          && !(p + n < end && g_ascii_isalpha (p[n])))
        return (p + n < end && p[n] == '.' && n <= 4) ? n + 1 : n;
    }
  return 0;
}

static gsize
parser_pd_digits (const char *p, const char *end, gsize max, guint *value)
{
  gsize n = 0;

  *value = 0;
  while (p + n < end && g_ascii_isdigit (p[n]) && n < max + 1)
    {
      *value = *value * 10 + (guint) (p[n] - '0');
      n++;
    }
  return n > max ? 0 : n;
}

/* The end of a written date at @q: an optional comma, spaces, a
 * four-digit year ending a word.  Returns the length from @p, or 0.  */
static gsize
parser_pd_year_tail (const char *p, const char *q, const char *end)
{
  guint y;

  if (q < end && *q == ',')
    q++;
  if (q >= end || *q != ' ')
    return 0;
  while (q < end && *q == ' ')
    q++;
  if (parser_pd_digits (q, end, 4, &y) != 4)
    return 0;
  q += 4;
  return parser_text_word_at (q, end) ? 0 : (gsize) (q - p);
}

/* The length of a date at @p, 0 if none: 1/2/1990, 01-02-90, 01.02.1990,
 * 1990-02-01, 1 February 1990, 1st Feb. 1990, February 1, 1990.  */
static gsize
parser_pd_date (const char *p, const char *end)
{
  const char *q = p;
  guint a, b, y;
  gsize n;

  if (g_ascii_isdigit (*p))
    {
      n = parser_pd_digits (q, end, 4, &a);
      if (n == 4 && q + n < end && (q[n] == '-' || q[n] == '/'))
        {
          char sep = q[n];

          q += n + 1; /* 1990-02-01 */
          if ((n = parser_pd_digits (q, end, 2, &b)) == 0 || b < 1 || b > 12
              || q + n >= end || q[n] != sep)
            return 0;
          q += n + 1;
          if ((n = parser_pd_digits (q, end, 2, &y)) == 0 || y < 1 || y > 31)
            return 0;
          q += n;
          return parser_text_word_at (q, end) ? 0 : (gsize) (q - p);
        }
      if (n == 0 || n > 2 || a < 1 || a > 31)
        return 0;
      q += n;
      if (q < end && (*q == '/' || *q == '-' || *q == '.'))
        {
          char sep = *q++;

          if ((n = parser_pd_digits (q, end, 2, &b)) == 0 || b < 1 || b > 12
              || q + n >= end || q[n] != sep)
            return 0;
          q += n + 1;
          n = parser_pd_digits (q, end, 4, &y);
          if (n != 2 && n != 4)
            return 0;
          q += n;
          return parser_text_word_at (q, end) ? 0 : (gsize) (q - p);
        }
      /* 1st of February 1990 */
      if (end - q >= 2
          && (parser_text_prefix_ci (q, 2, "st")
              || parser_text_prefix_ci (q, 2, "nd")
              || parser_text_prefix_ci (q, 2, "rd")
              || parser_text_prefix_ci (q, 2, "th")))
        q += 2;
      if (q >= end || *q != ' ')
        return 0;
      while (q < end && *q == ' ')
        q++;
      if (parser_text_prefix_ci (q, (gsize) (end - q), "of "))
        q += 3;
      if ((n = parser_pd_month (q, end)) == 0)
        return 0;
      q += n;
      return parser_pd_year_tail (p, q, end);
    }
  if ((n = parser_pd_month (q, end)) == 0) /* February 1, 1990 */
    return 0;
  q += n;
  if (q >= end || *q != ' ')
    return 0;
  while (q < end && *q == ' ')
    q++;
  if ((n = parser_pd_digits (q, end, 2, &a)) == 0 || a < 1 || a > 31)
    return 0;
  q += n;
  if (end - q >= 2
      && (parser_text_prefix_ci (q, 2, "st")
          || parser_text_prefix_ci (q, 2, "nd")
          || parser_text_prefix_ci (q, 2, "rd")
          || parser_text_prefix_ci (q, 2, "th")))
    q += 2;
  return parser_pd_year_tail (p, q, end);
}


/* A keyword (case-insensitive, several words separated by any white
 * space) at @p, which starts a word; returns its length.  */
static gsize
parser_pd_keyword (const char *p, const char *end, const char *kw)
{
  const char *q = p;

  for (const char *k = kw; *k; k++)
    {
      if (*k == ' ')
        {
          if (q >= end || !parser_text_is_space (*q))
            return 0;
          while (q < end && parser_text_is_space (*q))
            q++;
          continue;
        }
      if (q >= end || parser_text_lower (*q) != *k)
        return 0;
      q++;
    }
  if (g_ascii_isalnum (kw[strlen (kw) - 1]) && parser_text_word_at (q, end))
    return 0;
  return (gsize) (q - p);
}

/* Whether a keyword of parser_pd_find can start with @a @b (@a lower
 * case): "date of birth", "dob", "d.o.b", "born", "birth date",
 * "birthdate", "sort...", "account(s)", "acct", "acc no", "acc. no",
 * "a/c".  */
static gboolean
parser_pd_keyword_start (char a, char b)
{
  b = parser_text_lower (b);
  switch (a)
    {
    case 'd':
      return b == 'a' || b == 'o' || b == '.';
    case 'b':
      return b == 'o' || b == 'i';
    case 's':
      return b == 'o';
    case 'a':
      return b == 'c' || b == '/';
    default:
      return FALSE;
    }
}

static gboolean
parser_pd_near (GArray *kws, gsize start, gsize end)
{
  /* keywords are in text order; a binary search finds the last one that
   * starts before @start */
  const parser_pd_kw *k;
  gsize lo = 0, hi;

  if (kws == NULL)
    return FALSE;
  k = (const parser_pd_kw *) (void *) kws->data;
  hi = kws->len;
  while (lo < hi)
    {
      gsize mid = lo + (hi - lo) / 2;

      if (k[mid].start < start)
        lo = mid + 1;
      else
        hi = mid;
    }
  if (lo > 0 && k[lo - 1].end <= start
      && start - k[lo - 1].end <= PARSER_TEXT_NEAR_WINDOW)
    return TRUE;
  if (lo < kws->len && k[lo].start >= end
      && k[lo].start - end <= PARSER_TEXT_NEAR_WINDOW)
    return TRUE;
  return FALSE;
}

/* A sort code or account number candidate: whether it counts depends on
 * keywords that may come after it, so it is decided after the pass.  */
typedef enum {
  PARSER_PD_NEED_NONE,     /* NN-NN-NN: always */
  PARSER_PD_NEED_SORT,     /* near "sort code" */
  PARSER_PD_NEED_ACCOUNT,  /* near "account" or "sort code" */
} parser_pd_need;

typedef struct {
  gsize at, len;           /* the value */
  gsize start, end;        /* the span keywords must be near */
  parser_pd_kind kind;
  parser_pd_need need;
} parser_pd_bank_cand;

/* Sort codes NN-NN-NN anywhere; NN NN NN and NNNNNN near "sort code";
 * account numbers (8 digits) near "account", "a/c" or "sort code".  @p is
 * a digit; candidates go to *@cands.  Returns where to look next.  */
static const char *
parser_pd_bank_at (parser_pd_ctx *c, const char *p, gboolean word_before,
                   GArray **cands)
{
  const char *q = p;
  gsize nd;
  const char *next;
  parser_pd_bank_cand k;

  while (q < c->end && g_ascii_isdigit (*q))
    q++;
  nd = (gsize) (q - p);
  if (word_before || (p - c->s >= 2 && p[-1] == '-' && g_ascii_isdigit (p[-2])))
    return q;
  k.at = (gsize) (p - c->s);
  if (nd == 2 && c->end - q >= 6 && (q[0] == '-' || q[0] == ' ')
      && g_ascii_isdigit (q[1]) && g_ascii_isdigit (q[2]) && q[3] == q[0]
      && g_ascii_isdigit (q[4]) && g_ascii_isdigit (q[5])
      && !parser_text_word_at (q + 6, c->end)
      && !(c->end - q >= 8 && (q[6] == '-' || q[6] == ' ')
           && g_ascii_isdigit (q[7])))
    {
      k.len = 8;
      k.start = k.at;
      k.end = (gsize) (q + 6 - c->s);
      k.kind = PARSER_PD_SORT_CODE;
      k.need = q[0] == '-' ? PARSER_PD_NEED_NONE : PARSER_PD_NEED_SORT;
      next = q + 6;
    }
  else if ((nd == 6 || nd == 8) && !parser_text_word_at (q, c->end))
    {
      k.len = nd;
      k.start = k.at;
      k.end = (gsize) (q - c->s);
      k.kind = nd == 6 ? PARSER_PD_SORT_CODE : PARSER_PD_ACCOUNT;
      k.need = nd == 6 ? PARSER_PD_NEED_SORT : PARSER_PD_NEED_ACCOUNT;
      next = q;
    }
  else
    return q;
  if (*cands == NULL)
    *cands = g_array_new (FALSE, FALSE, sizeof (parser_pd_bank_cand));
  g_array_append_val (*cands, k);
  return next;
}

static void
parser_pd_kw_add (GArray **kws, const char *s, const char *p, gsize n)
{
  parser_pd_kw k = { (gsize) (p - s), (gsize) (p - s) + n };

  if (*kws == NULL)
    *kws = g_array_new (FALSE, FALSE, sizeof (parser_pd_kw));
  g_array_append_val (*kws, k);
}

/* @valid: the caller knows @text is valid UTF-8.  @seen (nullable):
 * where the duplicate keys are kept from one call to the next.  */
static void
parser_pd_find_impl (const char *text, GPtrArray *found, gboolean valid,
                     parser_pd_seen *seen)
{
  static const char *const dob_words[]
      = { "date of birth", "born", "dob", "d.o.b", "birth date", "birthdate" };
  static const char *const sort_words[]
      = { "sort code", "sort-code", "sortcode" };
  static const char *const acct_words[]
      = { "account", "accounts", "acct", "a/c", "acc no", "acc. no" };
  g_autofree char *fixed = NULL;
  GArray *dob_kw = NULL, *sort_kw = NULL, *acct_kw = NULL;
  GArray *cands = NULL;
  parser_pd_ctx c; /* its fields set below: out[] is not cleared */
  parser_pd_seen own_seen = { 0 }; /* when the caller keeps none */
  gsize len;
  /* each detector's next position, and whether the character before
   * the current one is a letter or a digit (of any script) */
  const char *next_kw, *next_email, *next_phone, *next_pc, *next_nino;
  const char *next_bank;
  gboolean prev = FALSE;
#if defined(PARSER_TEXT_HAVE_WIN)
  /* the window being passed: [win_base, win_lim) is known to hold no
   * find but at the word starts of win_kw; none tried before win_next */
  const char *win_base, *win_lim, *win_next;
  guint64 win_kw = 0, win_alnum = 0;
#endif

  if (text == NULL || found == NULL)
    return;
  c.s = parser_text_input (text, valid, &len, &fixed);
  c.end = c.s + len;
  c.found = found;
  c.seen = seen != NULL ? seen : &own_seen;
  c.n_out = 0;
  c.more = NULL;
  memset (c.n_det, 0, sizeof c.n_det);
  c.room = found->len >= PARSER_TEXT_PD_MAX ? 0
                                            : PARSER_TEXT_PD_MAX - found->len;
  next_kw = next_email = next_phone = next_pc = next_nino = next_bank = c.s;
#if defined(PARSER_TEXT_HAVE_WIN)
  win_base = win_lim = win_next = c.s;
#endif

  /* Only '@', '+', '(' and the first character of a run of ASCII
   * letters and digits can start a find: inside a run every scanner
   * sees a letter or digit before it and passes (a postcode's next
   * position is never inside a run), so runs are skipped whole.  The
   * text's NUL (at c.end: strlen() found it) stops every loop over a
   * class of bytes.  */
  for (const char *p = c.s;;)
    {
      guint cls;

#if defined(PARSER_TEXT_HAVE_WIN)
      /* A window with no digit, '@', '+', '(' or byte >= 0x80 in it (up
       * to its first such byte) holds words of ASCII letters only, and
       * a word of letters starts a find only as a keyword, or as the
       * letters of a NINO, a postcode or GIR 0AA when one of the four
       * bytes after its start is a digit: the words starting more than
       * four bytes before the window's first digit (or its end) are
       * passed unless their first two bytes may start a keyword, which
       * go through the loop below as before.  */
      if (p >= win_next && c.end - p > PARSER_TEXT_WIN)
        {
          guint64 bits;

          if (p >= win_lim)
            {
              parser_text_win w;
              guint x, lim;

              parser_text_win_load (p, TRUE, &w);
              x = w.other != 0 ? (guint) __builtin_ctzll (w.other)
                               : PARSER_TEXT_WIN;
              if (x <= 4)
                {
                  /* the loop below takes it past that byte */
                  win_next = p + x + 1;
                  goto scalar;
                }
              lim = x - 4;
              win_base = p;
              win_lim = p + lim;
              win_alnum = w.alnum;
              /* word starts: a letter or digit after a byte that is not
               * one (before the window: @prev) */
              win_kw = w.kw & w.alnum
                       & ~((w.alnum << 1) | (prev ? 1u : 0u))
                       & ((G_GUINT64_CONSTANT (1) << lim) - 1);
            }
          bits = win_kw & (~G_GUINT64_CONSTANT (0) << (p - win_base));
          if (bits != 0)
            {
              p = win_base + __builtin_ctzll (bits);
              prev = FALSE;
            }
          else
            {
              guint lim = (guint) (win_lim - win_base);

              prev = (win_alnum >> (lim - 1)) & 1u;
              p = win_lim;
              continue;
            }
        }
    scalar:
#endif
      cls = parser_text_class[(guchar) *p];
      if (cls == 0)
        {
          /* other ASCII: white space, punctuation, controls */
          do
            p++;
          while ((cls = parser_text_class[(guchar) *p]) == 0);
          prev = FALSE;
        }
      if (cls & PARSER_TEXT_C_ALNUM)
        {
          const char *e = p + 1;

          if (!prev && (cls & PARSER_TEXT_C_ALPHA))
            {
              /* a letter is lower case with the 0x20 bit; p[1] is at
               * most the NUL */
              char a = (char) (*p | 0x20);
              char a2 = parser_text_lower (p[1]);

              if ((cls & PARSER_TEXT_C_KW) && p >= next_kw
                  && parser_pd_keyword_start (a, a2))
                {
                  gsize n = 0;

                  /* every keyword has two letters before any space: those
                   * two are compared here, before a call */
#define PARSER_PD_KW_AT(kw) \
  ((kw)[0] == a && (kw)[1] == a2 && (n = parser_pd_keyword (p, c.end, (kw))) > 0)
                  for (gsize i = 0; i < G_N_ELEMENTS (dob_words) && n == 0;
                       i++)
                    if (PARSER_PD_KW_AT (dob_words[i]))
                      parser_pd_kw_add (&dob_kw, c.s, p, n);
                  for (gsize i = 0; i < G_N_ELEMENTS (sort_words) && n == 0;
                       i++)
                    if (PARSER_PD_KW_AT (sort_words[i]))
                      parser_pd_kw_add (&sort_kw, c.s, p, n);
                  for (gsize i = 0; i < G_N_ELEMENTS (acct_words) && n == 0;
                       i++)
                    if (PARSER_PD_KW_AT (acct_words[i]))
                      parser_pd_kw_add (&acct_kw, c.s, p, n);
#undef PARSER_PD_KW_AT
                  if (n > 0)
                    next_kw = p + n;
                }
              /* a NINO has a digit after its two letters and at most one
               * space: parser_pd_nino_at() would give p + 1 for any other
               * word, which the next word is past anyway */
              if ((parser_text_class[(guchar) p[1]] & PARSER_TEXT_C_ALPHA)
                  && ((parser_text_class[(guchar) p[2]] & PARSER_TEXT_C_DIGIT)
                      || (p[2] == ' '
                          && (parser_text_class[(guchar) p[3]]
                              & PARSER_TEXT_C_DIGIT)))
                  && p >= next_nino && c.end - p >= 9)
                next_nino = parser_pd_nino_at (&c, p);
            }
          else if (!prev)
            {
              if (*p == '0' && p >= next_phone)
                next_phone = parser_pd_phone_at (&c, p, prev);
              if (p >= next_bank)
                next_bank = parser_pd_bank_at (&c, p, prev, &cands);
            }
          while (parser_text_class[(guchar) *e] & PARSER_TEXT_C_ALNUM)
            e++;
          /* a postcode's first word has 2 to 7 characters and a digit
           * second or third (A9, AA9...), or is GIR: any other word
           * gives @e, which the next word is past anyway */
          if (!prev && p >= next_pc && e - p >= 2 && e - p <= 7
              && ((parser_text_class[(guchar) p[1]] & PARSER_TEXT_C_DIGIT)
                  || (parser_text_class[(guchar) p[2]] & PARSER_TEXT_C_DIGIT)
                  || *p == 'G' || *p == 'g'))
            next_pc = parser_pd_postcode_at (&c, p, e, prev);
          p = e;
          prev = TRUE;
          continue;
        }
      if (cls & PARSER_TEXT_C_PD)
        {
          if (*p == '@')
            {
              if (p >= next_email)
                next_email = parser_pd_email_at (&c, p);
            }
          else if (p >= next_phone)
            next_phone = parser_pd_phone_at (&c, p, prev);
          prev = FALSE;
          p++;
          continue;
        }
      if (cls & PARSER_TEXT_C_NUL)
        break;
      prev = g_unichar_isalnum (g_utf8_get_char (p));
      p = g_utf8_next_char (p);
    }

  if (dob_kw != NULL)
    {
      /* windows of nearby keywords overlap ("DOB DOB DOB ..."): positions
       * below @tried held no date and are not tried again */
      const char *tried = c.s;

      for (guint i = 0; i < dob_kw->len; i++)
        {
          const parser_pd_kw *k = &g_array_index (dob_kw, parser_pd_kw, i);
          const char *from = c.s + k->end;
          const char *to = MIN (c.end, from + PARSER_TEXT_DOB_WINDOW);
          const char *p;

          for (p = MAX (from, tried); p < to; p++)
            {
              gsize n;

              if (!g_ascii_isalnum (*p) || parser_text_word_before (c.s, p))
                continue;
              if ((n = parser_pd_date (p, c.end)) > 0)
                {
                  parser_pd_add (&c, PARSER_PD_DET_DOB, PARSER_PD_DOB, p, n);
                  break;
                }
            }
          tried = MAX (tried, p);
        }
    }
  for (guint i = 0; cands != NULL && i < cands->len; i++)
    {
      const parser_pd_bank_cand *k
          = &g_array_index (cands, parser_pd_bank_cand, i);
      gboolean ok;

      switch (k->need)
        {
        case PARSER_PD_NEED_NONE:
          ok = TRUE;
          break;
        case PARSER_PD_NEED_SORT:
          ok = parser_pd_near (sort_kw, k->start, k->end);
          break;
        default:
          ok = parser_pd_near (acct_kw, k->start, k->end)
               || parser_pd_near (sort_kw, k->start, k->end);
          break;
        }
      if (ok)
        parser_pd_add (&c, PARSER_PD_DET_BANK, k->kind, c.s + k->at, k->len);
    }

  /* in the order the detectors used to run one after the other */
  for (guint d = 0; d < PARSER_PD_DET_COUNT && c.n_out > 0; d++)
    {
      guint left = c.n_det[d];

      for (guint i = 0; left > 0 && i < c.n_out + (c.more ? c.more->len : 0);
           i++)
        {
          const parser_pd_out *o
              = i < c.n_out ? &c.out[i]
                            : &g_array_index (c.more, parser_pd_out,
                                              i - c.n_out);

          if (o->det != (parser_pd_det) d)
            continue;
          left--;
          if (found->len < PARSER_TEXT_PD_MAX)
            g_ptr_array_add (found, o->pd);
          else
            parser_pd_free (o->pd);
        }
    }
  if (c.more != NULL)
    g_array_unref (c.more);
  if (dob_kw != NULL)
    g_array_unref (dob_kw);
  if (sort_kw != NULL)
    g_array_unref (sort_kw);
  if (acct_kw != NULL)
    g_array_unref (acct_kw);
  if (cands != NULL)
    g_array_unref (cands);
  if (seen == NULL)
    parser_pd_seen_clear (&own_seen);
}

void
parser_pd_find (const char *text, GPtrArray *found)
{
  parser_pd_find_impl (text, found, FALSE, NULL);
}

void
parser_pd_find_valid (const char *text, GPtrArray *found,
                      parser_pd_seen *seen)
{
  parser_pd_find_impl (text, found, TRUE, seen);
}

void
parser_pd_free (parser_pd *pd)
{
  if (pd == NULL)
    return;
  g_free (pd->value);
  g_free (pd);
}

/* ============================================================ lexicon */

typedef enum {
  PARSER_LEXICON_GAP_SPACE, /* only white space between the words */
  PARSER_LEXICON_GAP_PUNCT, /* punctuation (normalised) in gap[] */
  PARSER_LEXICON_GAP_OTHER, /* too much punctuation: matches nothing */
} parser_lexicon_gap_kind;

typedef struct {
  char word[PARSER_TEXT_WORD_MAX + 1]; /* normalised, NUL-terminated */
  gsize len;                           /* of word */
  gboolean too_long;                   /* longer than the limit */
  parser_lexicon_gap_kind gap_kind;    /* what separates it from the
                                        * previous word */
  char gap[PARSER_TEXT_GAP_MAX];
  guint8 gap_len;
} parser_lexicon_token;

typedef struct {
  guint category;                     /* parser_special bit */
  guint n;                            /* words */
  char **words;                       /* normalised */
  parser_lexicon_gap_kind *gap_kinds; /* [i] before word i */
  char (*gaps)[PARSER_TEXT_GAP_MAX];
  guint8 *gap_lens;
  guint filter1;                      /* parser_lexicon_filter() of
                                       * words[1], when n > 1 */
} parser_lexicon_term;

/* Bits of the lexicon's first-word filter (a power of two).  */
#define PARSER_LEXICON_FILTER_BITS  65536

struct parser_lexicon {
  GPtrArray *terms;  /* parser_lexicon_term *, owned */
  GHashTable *first; /* first word -> GPtrArray of
                      * parser_lexicon_term * (not owned) */
  guint categories;  /* union of the terms' bits */
  /* set for every first word's parser_lexicon_filter(): a word whose bit
   * is clear starts no term, and is not looked up */
  guint8 filter[PARSER_LEXICON_FILTER_BITS / 8];
};

/* The filter bit of a folded word from its length, first, second (0 for
 * a word of one byte) and last byte, mixed so that the words of a text
 * spread over the whole filter (a plain weighted sum of lower-case
 * letters fell in a quarter of it, and one word in ten passed).  */
static inline guint
parser_lexicon_filter_of (gsize len, guchar c0, guchar c1, guchar cl)
{
  guint32 x = (guint32) len * 0x9E3779B1u;

  x ^= ((guint32) c0 << 16) | ((guint32) c1 << 8) | cl;
  x *= 0x85EBCA6Bu;
  x ^= x >> 15;
  return x & (PARSER_LEXICON_FILTER_BITS - 1);
}

static guint
parser_lexicon_filter (const char *word, gsize len)
{
  return parser_lexicon_filter_of (len, len > 0 ? (guchar) word[0] : 0,
                                   len > 1 ? (guchar) word[1] : 0,
                                   len > 0 ? (guchar) word[len - 1] : 0);
}

static const struct {
  const char *name;
  parser_special bit;
} parser_lexicon_categories[] = {
  { "health", PARSER_SPECIAL_HEALTH },
  { "ethnic", PARSER_SPECIAL_ETHNIC },
  { "religion", PARSER_SPECIAL_RELIGION },
  { "sexual", PARSER_SPECIAL_SEXUAL },
  { "union", PARSER_SPECIAL_UNION },
  { "political", PARSER_SPECIAL_POLITICAL },
  { "genetic", PARSER_SPECIAL_GENETIC },
  { "biometric", PARSER_SPECIAL_BIOMETRIC },
  { "criminal", PARSER_SPECIAL_CRIMINAL },
};

static void
parser_lexicon_term_free (parser_lexicon_term *t)
{
  if (t == NULL)
    return;
  g_strfreev (t->words);
  g_free (t->gap_kinds);
  g_free (t->gaps);
  g_free (t->gap_lens);
  g_free (t);
}

static gboolean
parser_lexicon_word_char (gunichar c)
{
  return g_unichar_isalnum (c) || g_unichar_ismark (c);
}

/* Append @c to the token's word, folded: lower case, accents removed
 * (the first character of the canonical decomposition), combining marks
 * dropped.  "Café" and "CAFE" are both "cafe".  */
static void
parser_lexicon_fold_append (parser_lexicon_token *t, gsize *len, gunichar c)
{
  char buf[6];
  gint n;

  if (c < 0x80)
    {
      if (*len + 1 > PARSER_TEXT_WORD_MAX)
        {
          t->too_long = TRUE;
          return;
        }
      t->word[(*len)++] = parser_text_lower ((char) c);
      t->word[*len] = '\0';
      t->len = *len;
      return;
    }
  else
    {
      gunichar d[G_UNICHAR_MAX_DECOMPOSITION_LENGTH];
      gsize k = g_unichar_fully_decompose (c, FALSE, d, G_N_ELEMENTS (d));

      if (k > 0)
        c = d[0];
      if (g_unichar_ismark (c))
        return;
      n = g_unichar_to_utf8 (g_unichar_tolower (c), buf);
    }
  if (*len + (gsize) n > PARSER_TEXT_WORD_MAX)
    {
      t->too_long = TRUE;
      return;
    }
  memcpy (t->word + *len, buf, (gsize) n);
  *len += (gsize) n;
  t->word[*len] = '\0';
  t->len = *len;
}

/* The next word of valid UTF-8 [*pp, end): a maximal run of letters,
 * digits and combining marks, with the gap before it.  FALSE at the end.  */
static gboolean
parser_lexicon_next (const char **pp, const char *end, parser_lexicon_token *t)
{
  const char *p = *pp;
  gsize wl = 0;

  t->word[0] = '\0';
  t->len = 0;
  t->too_long = FALSE;
  t->gap_kind = PARSER_LEXICON_GAP_SPACE;
  t->gap_len = 0;
  while (p < end)
    {
      gunichar c;
      const char *add;
      char buf[6];
      gint n;

      if ((guchar) *p < 0x80)
        {
          if (g_ascii_isalnum (*p))
            break;
          c = (guchar) *p++;
        }
      else
        {
          c = g_utf8_get_char (p);
          if (parser_lexicon_word_char (c))
            break;
          p = g_utf8_next_char (p);
        }
      /* g_unichar_isspace(), quicker for ASCII */
      if (c < 0x80 ? c == ' ' || c == '\t' || c == '\n' || c == '\r'
                         || c == '\f'
                   : g_unichar_isspace (c) || c == 0xA0)
        continue;
      /* typographic apostrophes and hyphens read as ASCII ones */
      if (c == 0x2018 || c == 0x2019 || c == 0x02BC)
        c = '\'';
      else if (c >= 0x2010 && c <= 0x2013)
        c = '-';
      if (c < 0x80)
        {
          buf[0] = (char) c;
          n = 1;
        }
      else
        n = g_unichar_to_utf8 (c, buf);
      add = buf;
      if (t->gap_kind == PARSER_LEXICON_GAP_OTHER
          || t->gap_len + (gsize) n > PARSER_TEXT_GAP_MAX)
        t->gap_kind = PARSER_LEXICON_GAP_OTHER;
      else
        {
          memcpy (t->gap + t->gap_len, add, (gsize) n);
          t->gap_len += (guint8) n;
          t->gap_kind = PARSER_LEXICON_GAP_PUNCT;
        }
    }
  if (p >= end)
    {
      *pp = p;
      return FALSE;
    }
  while (p < end)
    {
      gunichar c;

      if ((guchar) *p < 0x80)
        {
          if (!g_ascii_isalnum (*p))
            break;
          c = (guchar) *p++;
        }
      else
        {
          c = g_utf8_get_char (p);
          if (!parser_lexicon_word_char (c))
            break;
          p = g_utf8_next_char (p);
        }
      parser_lexicon_fold_append (t, &wl, c);
    }
  *pp = p;
  return TRUE;
}

/* Between two words of a term: white space matches any white space; a
 * hyphen also matches white space ("self-harm", "self harm"); other
 * punctuation ("crohn's") must be the same.  */
static gboolean
parser_lexicon_gap_ok (const parser_lexicon_term *term, guint i,
                       const parser_lexicon_token *t)
{
  if (term->gap_kinds[i] == PARSER_LEXICON_GAP_SPACE)
    return t->gap_kind == PARSER_LEXICON_GAP_SPACE;
  if (t->gap_kind == PARSER_LEXICON_GAP_SPACE)
    return term->gap_lens[i] == 1 && term->gaps[i][0] == '-';
  return t->gap_kind == PARSER_LEXICON_GAP_PUNCT
         && t->gap_len == term->gap_lens[i]
         && memcmp (t->gap, term->gaps[i], t->gap_len) == 0;
}

static void parser_lexicon_fail (GError **error, gint code, const char *name,
                                 const char *fmt, ...) G_GNUC_PRINTF (4, 5);

static void
parser_lexicon_fail (GError **error, gint code, const char *name,
                     const char *fmt, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, PARSER_LEXICON_ERROR, code, "%s:%s", name, msg);
}

/* (transfer full) At most 40 bytes of @s, printable, for a message.  */
static char *
parser_lexicon_show (const char *s, gsize len)
{
  GString *o = g_string_new (NULL);

  for (gsize i = 0; i < len && o->len < 40; i++)
    g_string_append_c (o, g_ascii_isprint (s[i]) ? s[i] : '?');
  return g_string_free (o, FALSE);
}

parser_lexicon *
parser_lexicon_new_from_data (const char *data, gssize len, const char *name,
                              GError **error)
{
  parser_lexicon *lex;
  const char *p, *end;
  guint lineno = 0;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  if (data == NULL)
    data = "";
  if (name == NULL)
    name = "lexicon";
  if (len < 0)
    len = (gssize) strlen (data);
  if ((gsize) len > PARSER_TEXT_LEXICON_FILE_MAX)
    {
      g_set_error (error, PARSER_LEXICON_ERROR, PARSER_LEXICON_ERROR_LIMIT,
                   "%s: larger than %d bytes", name,
                   PARSER_TEXT_LEXICON_FILE_MAX);
      return NULL;
    }
  lex = g_new0 (parser_lexicon, 1);
  lex->terms = g_ptr_array_new_with_free_func (
      (GDestroyNotify) parser_lexicon_term_free);
  lex->first = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) g_ptr_array_unref);
  p = data;
  end = data + len;
  while (p < end)
    {
      const char *nl = memchr (p, '\n', (gsize) (end - p));
      const char *ls = p, *le = nl ? nl : end, *colon, *hash;
      gsize cl, tl, ll;
      const char *cat, *term;
      guint bit = 0;
      parser_lexicon_token tok;
      GPtrArray *words;
      GArray *kinds, *gaps, *lens;
      parser_lexicon_term *t;
      GPtrArray *bucket;

      p = nl ? nl + 1 : end;
      lineno++;
      ll = (gsize) (le - ls);
      if (!g_utf8_validate_len (ls, ll, NULL))
        {
          parser_lexicon_fail (error, PARSER_LEXICON_ERROR_SYNTAX, name,
                               "%u: not valid UTF-8", lineno);
          goto fail;
        }
      /* '#' starts a comment at the start of a line or after a space */
      for (hash = ls; hash < le; hash++)
        if (*hash == '#' && (hash == ls || parser_text_is_space (hash[-1])))
          break;
      ll = (gsize) (hash - ls);
      ls = parser_text_trim (ls, &ll);
      if (ll == 0)
        continue;
      colon = memchr (ls, ':', ll);
      if (colon == NULL)
        {
          parser_lexicon_fail (error, PARSER_LEXICON_ERROR_SYNTAX, name,
                               "%u: expected 'category: term'", lineno);
          goto fail;
        }
      cl = (gsize) (colon - ls);
      cat = parser_text_trim (ls, &cl);
      for (gsize i = 0; i < G_N_ELEMENTS (parser_lexicon_categories); i++)
        if (parser_html_eq_ci (cat, cl, parser_lexicon_categories[i].name,
                               strlen (parser_lexicon_categories[i].name)))
          bit = parser_lexicon_categories[i].bit;
      if (bit == 0)
        {
          g_autofree char *shown = parser_lexicon_show (cat, cl);

          parser_lexicon_fail (error, PARSER_LEXICON_ERROR_SYNTAX, name,
                               "%u: unknown category '%s'", lineno, shown);
          goto fail;
        }
      tl = (gsize) (ls + ll - (colon + 1));
      term = parser_text_trim (colon + 1, &tl);
      if (lex->terms->len >= PARSER_TEXT_LEXICON_TERMS_MAX)
        {
          parser_lexicon_fail (error, PARSER_LEXICON_ERROR_LIMIT, name,
                               "%u: more than %d terms", lineno,
                               PARSER_TEXT_LEXICON_TERMS_MAX);
          goto fail;
        }
      words = g_ptr_array_new ();
      kinds = g_array_new (FALSE, FALSE, sizeof (parser_lexicon_gap_kind));
      gaps = g_array_new (FALSE, FALSE, PARSER_TEXT_GAP_MAX);
      lens = g_array_new (FALSE, FALSE, sizeof (guint8));
      {
        const char *q = term;
        gboolean bad = FALSE;

        while (parser_lexicon_next (&q, term + tl, &tok))
          {
            if (tok.too_long || tok.gap_kind == PARSER_LEXICON_GAP_OTHER
                || words->len >= PARSER_TEXT_LEXICON_WORDS_MAX)
              {
                bad = TRUE;
                break;
              }
            g_ptr_array_add (words, g_strdup (tok.word));
            g_array_append_val (kinds, tok.gap_kind);
            g_array_append_vals (gaps, tok.gap, 1);
            g_array_append_val (lens, tok.gap_len);
          }
        if (bad || words->len == 0)
          {
            if (words->len == 0 && !bad)
              parser_lexicon_fail (error, PARSER_LEXICON_ERROR_SYNTAX, name,
                                   "%u: empty term", lineno);
            else
              parser_lexicon_fail (error, PARSER_LEXICON_ERROR_LIMIT, name,
                                   "%u: term longer than %d words of %d bytes",
                                   lineno, PARSER_TEXT_LEXICON_WORDS_MAX,
                                   PARSER_TEXT_WORD_MAX);
            g_ptr_array_set_free_func (words, g_free);
            g_ptr_array_unref (words);
            g_array_unref (kinds);
            g_array_unref (gaps);
            g_array_unref (lens);
            goto fail;
          }
      }
      t = g_new0 (parser_lexicon_term, 1);
      t->category = bit;
      t->n = words->len;
      g_ptr_array_add (words, NULL);
      t->words = (char **) g_ptr_array_free (words, FALSE);
      t->gap_kinds
          = (parser_lexicon_gap_kind *) (void *) g_array_free (kinds, FALSE);
      t->gaps = (char (*)[PARSER_TEXT_GAP_MAX]) (void *) g_array_free (gaps,
                                                                       FALSE);
      t->gap_lens = (guint8 *) g_array_free (lens, FALSE);
      if (t->n > 1)
        t->filter1 = parser_lexicon_filter (t->words[1], strlen (t->words[1]));
      g_ptr_array_add (lex->terms, t);
      lex->categories |= bit;
      {
        guint f = parser_lexicon_filter (t->words[0], strlen (t->words[0]));

        lex->filter[f / 8] |= (guint8) (1u << (f % 8));
      }
      bucket = g_hash_table_lookup (lex->first, t->words[0]);
      if (bucket == NULL)
        {
          bucket = g_ptr_array_new ();
          g_hash_table_insert (lex->first, g_strdup (t->words[0]), bucket);
        }
      g_ptr_array_add (bucket, t);
    }
  return lex;

fail:
  parser_lexicon_free (lex);
  return NULL;
}

parser_lexicon *
parser_lexicon_load (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  GError *local = NULL;

  g_return_val_if_fail (path != NULL, NULL);
  if (!g_file_get_contents (path, &data, &len, &local))
    {
      g_propagate_prefixed_error (error, local, "%s: ", path);
      return NULL;
    }
  return parser_lexicon_new_from_data (data, (gssize) len, path, error);
}

void
parser_lexicon_free (parser_lexicon *lex)
{
  if (lex == NULL)
    return;
  g_hash_table_unref (lex->first);
  g_ptr_array_unref (lex->terms);
  g_free (lex);
}

/* One word of parser_lexicon_match().  Most words start no term, and an
 * ASCII word's filter bit needs only its length and three of its bytes:
 * such a word is only skimmed (its span found), and turned into a full
 * token by parser_lexicon_next() from the same place only when a term
 * may start at it or include it.  */
typedef struct {
  const char *from;          /* where parser_lexicon_next() starts for it */
  gboolean full;             /* tok is filled */
  gboolean too_long;         /* as tok.too_long */
  guint filter;              /* parser_lexicon_filter() of the word */
  parser_lexicon_token tok;
} parser_lexicon_slot;

/* The word at @from that is not all ASCII (or may not be), for
 * parser_lexicon_skim(): the whole token.  */
static G_NO_INLINE void
parser_lexicon_skim_full (const char **pp, const char *end,
                          parser_lexicon_slot *s)
{
  const char *q = s->from;

  if (!parser_lexicon_next (&q, end, &s->tok))
    g_assert_not_reached ();
  s->full = TRUE;
  s->too_long = s->tok.too_long;
  s->filter = parser_lexicon_filter (s->tok.word, s->tok.len);
  *pp = q;
}

/* Where the next word starts at or after @p, as parser_lexicon_next()
 * finds it, or NULL at the end: ASCII other than letters and digits is
 * passed in one loop (the NUL at @end, a class of its own, stops it).
 * Inlined in both word loops: it runs for every word.  */
G_ALWAYS_INLINE static inline const guchar *
parser_lexicon_word_start (const guchar *p, const char *end)
{
  guint cls;

  for (;;)
    {
      while ((cls = parser_text_class[*p]) == 0)
        p++;
      if (cls & PARSER_TEXT_C_ALNUM)
        return p;
      if (cls & PARSER_TEXT_C_PD)
        {
          p++;
          continue;
        }
      if ((const char *) p >= end)
        return NULL;
      if (parser_lexicon_word_char (g_utf8_get_char ((const char *) p)))
        return p;
      p = (const guchar *) g_utf8_next_char (p);
    }
}

/* The next word of valid UTF-8 [*pp, end) into @s, as parser_lexicon_next()
 * would find it; FALSE at the end.  *@end is the text's NUL.  Inlined in
 * the word loop: it runs for every word, and most are short.  */
G_ALWAYS_INLINE static inline gboolean
parser_lexicon_skim (const char **pp, const char *end, parser_lexicon_slot *s)
{
  const guchar *p = (const guchar *) *pp, *w;
  gsize len;

  s->from = (const char *) p;
  s->full = FALSE;
  p = parser_lexicon_word_start (p, end);
  if (p == NULL)
    {
      *pp = end;
      return FALSE;
    }
  w = p;
  while (parser_text_class[*p] & PARSER_TEXT_C_ALNUM)
    p++;
  if (*p >= 0x80)
    {
      parser_lexicon_skim_full (pp, end, s);
      return TRUE;
    }
  len = (gsize) (p - w);
  s->too_long = len > PARSER_TEXT_WORD_MAX;
  if (!s->too_long)
    {
      /* parser_lexicon_filter() of the folded word: an ASCII letter or
       * digit in lower case is itself with the 0x20 bit set */
      s->filter = parser_lexicon_filter_of (len, w[0] | 0x20,
                                            len > 1 ? w[1] | 0x20 : 0,
                                            w[len - 1] | 0x20);
    }
  *pp = (const char *) p;
  return TRUE;
}

/* The token of a skimmed word.  */
static const parser_lexicon_token *
parser_lexicon_slot_token (parser_lexicon_slot *s, const char *end)
{
  if (!s->full)
    {
      const char *q = s->from;

      if (!parser_lexicon_next (&q, end, &s->tok))
        g_assert_not_reached ();
      s->full = TRUE;
    }
  return &s->tok;
}

/* The terms whose first word is the ASCII word @w (@wl bytes, 1 to
 * PARSER_TEXT_WORD_MAX), or NULL.  An ASCII word folded is its bytes in
 * lower case (an ASCII letter or digit is itself with the 0x20 bit set):
 * no token (and no gap) is needed to look it up; the filter answers most
 * words before the copy.  */
static inline GPtrArray *
parser_lexicon_ascii_bucket (const parser_lexicon *lex, const guchar *w,
                             gsize wl)
{
  char word[PARSER_TEXT_WORD_MAX + 1];
  guint f = parser_lexicon_filter_of (wl, w[0] | 0x20,
                                      wl > 1 ? w[1] | 0x20 : 0,
                                      w[wl - 1] | 0x20);

  if ((lex->filter[f / 8] & (1u << (f % 8))) == 0)
    return NULL;
  for (gsize i = 0; i < wl; i++)
    word[i] = (char) (w[i] | 0x20);
  word[wl] = '\0';
  return g_hash_table_lookup (lex->first, word);
}

/* The categories of the terms of @bucket that start at the word @s0,
 * whose next words are skimmed from @after only when a term needs them
 * (the first word of nearly every term is the only one, or the one that
 * differs).  @have: categories already found, whose terms are skipped.  */
static guint
parser_lexicon_match_at (GPtrArray *bucket, const char *after,
                         const char *end, guint have)
{
  /* the words after the first: [0] is the term's second word */
  parser_lexicon_slot next[PARSER_TEXT_LEXICON_WORDS_MAX - 1];
  guint got = 0;
  gboolean eof = FALSE;
  guint bits = 0;

  for (guint i = 0; i < bucket->len; i++)
    {
      const parser_lexicon_term *term = bucket->pdata[i];
      gboolean ok = TRUE;

      if ((have | bits) & term->category)
        continue;
      for (guint k = 1; k < term->n && ok; k++)
        {
          parser_lexicon_slot *sk = &next[k - 1];
          const parser_lexicon_token *t;

          while (got < k && !eof)
            {
              if (parser_lexicon_skim (&after, end, &next[got]))
                got++;
              else
                eof = TRUE;
            }
          /* a second word whose filter (from its skim: its length and
           * three bytes) is not the term's cannot be its word: no token */
          if (got < k || sk->too_long
              || (k == 1 && sk->filter != term->filter1))
            {
              ok = FALSE;
              break;
            }
          t = parser_lexicon_slot_token (sk, end);
          ok = strcmp (t->word, term->words[k]) == 0
               && parser_lexicon_gap_ok (term, k, t);
        }
      if (ok)
        bits |= term->category;
    }
  return bits;
}

/* @valid: the caller knows @text is valid UTF-8.  */
static guint
parser_lexicon_match_impl (const parser_lexicon *lex, const char *text,
                           gboolean valid)
{
  g_autofree char *fixed = NULL;
  parser_lexicon_token tok; /* a word that is not all ASCII */
  guint bits = 0;
  const char *p, *end;
  gsize len;

  if (lex == NULL || text == NULL || lex->categories == 0)
    return 0;
  if (valid)
    {
      p = text;
      len = strlen (text);
#if defined(__SANITIZE_ADDRESS__)
      g_assert (parser_text_utf8_valid (p, len));
#endif
    }
  else
    p = parser_text_valid (text, -1, &len, &fixed);
  end = p + len;
  /* each word is looked up alone; the words after it are read again
   * from it only when it starts a term of more than one word.  The word
   * is found as parser_lexicon_skim() finds it, kept in locals: most
   * words end at the filter.  */
  for (const guchar *q = (const guchar *) p;;)
    {
      const char *from;
      const guchar *w;
      guint f;
      GPtrArray *bucket;

#if defined(PARSER_TEXT_HAVE_WIN)
      /* The ASCII words of a window from the masks: a word's start and
       * end by the letters and digits' bits, no loop over its bytes.  A
       * byte >= 0x80 (a word of other letters, or one that goes on in
       * them) or a word that reaches the window's end goes to the loop
       * below, from where it would have started the search for it.  */
      if ((const char *) end - (const char *) q >= PARSER_TEXT_WIN)
        {
          parser_text_win win;
          guint pos = 0;

          parser_text_win_load ((const char *) q, FALSE, &win);
          if (win.other == 0)
            {
              /* all ASCII: each word from its start bit to its end bit
               * (the first byte after it); a word at q starts one, as
               * the loop below would take it */
              guint64 starts = win.alnum & ~(win.alnum << 1);
              guint64 ends = ~win.alnum & (win.alnum << 1);

              while (starts != 0)
                {
                  guint ws = (guint) __builtin_ctzll (starts);
                  guint we;
                  gsize wl;
                  char word[PARSER_TEXT_WORD_MAX + 1];

                  if (ends == 0)
                    break; /* a word that goes past the window */
                  we = (guint) __builtin_ctzll (ends);
                  starts &= starts - 1;
                  ends &= ends - 1;
                  pos = we;
                  w = q + ws;
                  wl = we - ws;
                  f = parser_lexicon_filter_of (wl, w[0] | 0x20,
                                                wl > 1 ? w[1] | 0x20 : 0,
                                                w[wl - 1] | 0x20);
                  if ((lex->filter[f / 8] & (1u << (f % 8))) == 0)
                    continue;
                  for (gsize i = 0; i < wl; i++)
                    word[i] = (char) (w[i] | 0x20);
                  word[wl] = '\0';
                  bucket = g_hash_table_lookup (lex->first, word);
                  if (bucket == NULL)
                    continue;
                  bits |= parser_lexicon_match_at (
                      bucket, (const char *) q + we, end, bits);
                  if ((bits & lex->categories) == lex->categories)
                    return bits;
                }
              if (starts == 0)
                pos = PARSER_TEXT_WIN; /* the rest is other ASCII */
            }
          else
            for (;;)
              {
                guint64 m = (win.alnum | win.other) >> pos << pos;
                guint64 run;
                guint ws, we;

                if (m == 0)
                  {
                    /* the rest is other ASCII, which the loop passes */
                    pos = PARSER_TEXT_WIN;
                    break;
                  }
                ws = (guint) __builtin_ctzll (m);
                run = ~win.alnum >> ws;
                if (((win.other >> ws) & 1u) || run == 0)
                  break;
                we = ws + (guint) __builtin_ctzll (run);
                if ((win.other >> we) & 1u)
                  break;
                pos = we;
                /* at most 63 bytes: never over PARSER_TEXT_WORD_MAX */
                w = q + ws;
                bucket = parser_lexicon_ascii_bucket (lex, w, we - ws);
                if (bucket == NULL)
                  continue;
                bits |= parser_lexicon_match_at (bucket, (const char *) q + we,
                                                 end, bits);
                if ((bits & lex->categories) == lex->categories)
                  return bits;
              }
          q += pos;
          if (pos == PARSER_TEXT_WIN)
            continue;
        }
#endif
      from = (const char *) q;
      q = parser_lexicon_word_start (q, (const char *) end);
      if (q == NULL)
        return bits;
      w = q;
      while (parser_text_class[*q] & PARSER_TEXT_C_ALNUM)
        q++;
      if (*q >= 0x80)
        {
          /* a word that is not all ASCII (or may not be): the whole
           * token, from where the search for it started */
          const char *r = from;

          if (!parser_lexicon_next (&r, end, &tok))
            g_assert_not_reached ();
          q = (const guchar *) r;
          if (tok.too_long)
            continue;
          f = parser_lexicon_filter (tok.word, tok.len);
          if ((lex->filter[f / 8] & (1u << (f % 8))) == 0)
            continue;
          bucket = g_hash_table_lookup (lex->first, tok.word);
        }
      else
        {
          gsize wl = (gsize) (q - w);

          if (wl > PARSER_TEXT_WORD_MAX)
            continue;
          bucket = parser_lexicon_ascii_bucket (lex, w, wl);
        }
      if (bucket == NULL)
        continue;
      bits |= parser_lexicon_match_at (bucket, (const char *) q, end, bits);
      if ((bits & lex->categories) == lex->categories)
        break;
    }
  return bits;
}

guint
parser_lexicon_match (const parser_lexicon *lex, const char *text)
{
  return parser_lexicon_match_impl (lex, text, FALSE);
}

guint
parser_lexicon_match_valid (const parser_lexicon *lex, const char *text)
{
  return parser_lexicon_match_impl (lex, text, TRUE);
}

/* (transfer full) g_utf8_casefold (@s, -1): for ASCII, which is most
 * subjects and bodies, that is A-Z to a-z and nothing else (Unicode case
 * folding maps no other ASCII character), without GLib's table lookup
 * for every character.  */
static char *
parser_text_casefold (const char *s)
{
  const guchar *p = (const guchar *) s;

  while (*p != '\0' && *p < 0x80)
    p++;
  if (*p == '\0')
    return g_ascii_strdown (s, -1);
  return g_utf8_casefold (s, -1);
}

/* ============================================================ auto-reply */

/* RFC 3834 and practice.  Headers decide; a subject decides when it is
 * an auto-reply's own ("Automatic reply: ...", "Out of Office", a
 * delivery failure).  The body never decides alone: it only confirms a
 * subject too common to trust by itself ("Annual leave").  */

static const char *const parser_autoreply_oof_prefixes[] = {
  "out of office",
  "out of the office",
  "automatic reply",
  "auto reply",
  "auto-reply",
  "autoreply",
  "auto response",
  "auto-response",
  "autoresponse",
  "automatic response",
  "auto:",
  "away from the office",
  "away from my desk",
  "i am away",
  "i'm away",
  "i am out of the office",
  "i am currently out of the office",
  "office closed",
  /* Welsh */
  "ymateb awtomatig",
  "allan o'r swyddfa",
  "allan o’r swyddfa",
  "ateb awtomatig",
  /* German */
  "abwesenheitsnotiz",
  "automatische antwort",
  "abwesend",
  "abwesenheit",
  "nicht im büro",
  /* French */
  "réponse automatique",
  "reponse automatique",
  "absence du bureau",
  "absent du bureau",
  "absence :",
  "absent :",
  /* Dutch */
  "automatisch antwoord",
  "afwezig",
  "niet aanwezig",
  "buiten kantoor",
  "afwezigheidsmelding",
  /* Spanish */
  "respuesta automática",
  "respuesta automatica",
  "fuera de la oficina",
  "fuera de oficina",
  "ausente",
  "ausencia",
  /* Italian, Portuguese */
  "risposta automatica",
  "fuori ufficio",
  "resposta automática",
  "ausente do escritório",
};

/* Anywhere in the subject.  */
static const char *const parser_autoreply_oof_phrases[] = {
  "is out of the office", "out of office autoreply",
  "(out of office)",      "[out of office]",
  "out of office reply",  "out of office response",
  "(automatic reply)",    "[auto-reply]",
  "[autoreply]",          "ist außer haus",
  "n'est pas au bureau",  "is afwezig",
  "ist abwesend",
};

/* A subject that says "out of office hours" is a citizen's complaint. */
static const char *const parser_autoreply_oof_not[] = {
  "out of office hours",
  "out of the office hours",
  "out of office hour",
};

static const char *const parser_autoreply_bounce_prefixes[] = {
  "undeliverable",
  "undelivered mail",
  "undelivered message",
  "mail delivery failed",
  "mail delivery failure",
  "mail delivery system",
  "delivery status notification",
  "delivery failure",
  "delivery has failed",
  "delivery notification",
  "returned mail",
  "failure notice",
  "mail system error",
  "non-delivery",
  "nondeliverable",
  "message not delivered",
  "unzustellbar",
  "nicht zustellbar",
  "non remis",
  "non distribuable",
  "onbestelbaar",
  "niet bezorgd",
  "no se puede entregar",
  "no entregado",
  "non recapitabile",
};

/* Subjects too common to decide alone, and the body text that confirms
 * them.  */
static const char *const parser_autoreply_weak_prefixes[] = {
  "annual leave",
  "on leave",
  "away",
  "holiday",
  "absence",
  "on holiday",
  "thank you for your email",
  "thank you for your e-mail",
  "thank you for contacting",
  "thanks for your email",
};
static const char *const parser_autoreply_body_phrases[] = {
  "out of the office",
  "out of office",
  "on annual leave",
  "on leave until",
  "limited access to email",
  "limited access to my email",
  "limited access to e-mail",
  "no access to email",
  "no access to my email",
  "until my return",
  "on my return",
  "back in the office",
  "i am currently away",
  "i am away",
  "automated response",
  "automatic reply",
  "this is an automated",
  "this is an automatic",
  "this mailbox is not monitored",
  "do not reply to this email",
};

/* TRUE when @s (case-folded) starts with one of @list, followed by the
 * end or a character that is not a letter or digit.  */
static gboolean
parser_autoreply_prefix (const char *s, const char *const *list, gsize n)
{
  gsize sl = strlen (s);

  for (gsize i = 0; i < n; i++)
    {
      gsize l;

      /* no entry is empty: most differ from @s in the first byte */
      if (list[i][0] != s[0])
        continue;
      l = strlen (list[i]);
      if (sl >= l && memcmp (s, list[i], l) == 0
          && (sl == l || !parser_text_word_at (s + l, s + sl)
              || !parser_text_word_at (s + l - 1, s + l)))
        return TRUE;
    }
  return FALSE;
}

static gboolean
parser_autoreply_contains (const char *s, const char *const *list, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (strstr (s, list[i]) != NULL)
      return TRUE;
  return FALSE;
}

/* The local part of @addr is MAILER-DAEMON or postmaster.  */
static gboolean
parser_autoreply_daemon (const char *addr)
{
  const char *at, *s = addr;
  gsize n;

  if (addr == NULL)
    return FALSE;
  if (*s == '<')
    s++;
  at = strrchr (s, '@');
  n = at ? (gsize) (at - s) : strlen (s);
  if (n > 0 && s[n - 1] == '>')
    n--;
  return parser_html_eq_ci (s, n, "mailer-daemon", 13)
         || parser_html_eq_ci (s, n, "postmaster", 10)
         || parser_html_eq_ci (s, n, "mailer_daemon", 13)
         || parser_html_eq_ci (s, n, "mail-daemon", 11);
}

/* The first token of a header value, lower case, at most 31 bytes.  */
static void
parser_autoreply_token (const char *v, char *buf, gsize size)
{
  gsize n = 0;

  while (*v && parser_text_is_space (*v))
    v++;
  while (*v && !parser_text_is_space (*v) && *v != ';' && *v != '('
         && *v != ',' && n + 1 < size)
    buf[n++] = g_ascii_tolower (*v++);
  buf[n] = '\0';
}

typedef enum {
  PARSER_AUTOREPLY_AUTO_SUBMITTED,
  PARSER_AUTOREPLY_X_AUTOREPLY,
  PARSER_AUTOREPLY_PRECEDENCE,
  PARSER_AUTOREPLY_LIST,
  PARSER_AUTOREPLY_NULL_SENDER,
  PARSER_AUTOREPLY_MAILER_DAEMON,
  PARSER_AUTOREPLY_REPORT,
  PARSER_AUTOREPLY_OUT_OF_OFFICE,
  PARSER_AUTOREPLY_NONE,
} parser_autoreply_reason;

static const char *const parser_autoreply_reasons[] = {
  "auto-submitted", "x-autoreply",   "precedence", "list",
  "null-sender",    "mailer-daemon", "report",     "out-of-office",
};

/* The subject with white space and leading tags ("[EXTERNAL]",
 * "[SPAM?]") removed, case-folded.  */
static char *
parser_autoreply_subject (const char *subject)
{
  g_autofree char *fixed = NULL;
  const char *s;
  gsize len;
  g_autofree char *cut = NULL;

  s = parser_text_valid (subject, -1, &len, &fixed);
  for (int k = 0; k < 3; k++)
    {
      s = parser_text_trim (s, &len);
      if (len > 0 && *s == '[')
        {
          const char *close = memchr (s, ']', MIN (len, (gsize) 40));

          if (close == NULL)
            break;
          len -= (gsize) (close + 1 - s);
          s = close + 1;
        }
      else
        break;
    }
  if (len > PARSER_TEXT_SUBJECT_MAX)
    {
      const char *e = s + PARSER_TEXT_SUBJECT_MAX;

      while (e > s && ((guchar) *e & 0xC0) == 0x80)
        e--;
      len = (gsize) (e - s);
    }
  cut = g_strndup (s, len);
  return parser_text_casefold (cut);
}

gboolean
parser_autoreply_detect (GPtrArray *names, GPtrArray *values,
                         const char *envelope_from, const char *from_addr,
                         const char *subject, const char *text,
                         gboolean is_report, const char **reason)
{
  parser_autoreply_reason best = PARSER_AUTOREPLY_NONE;
  gboolean human = FALSE;       /* "Auto-Submitted: no" */
  char tok[32];

  if (names != NULL && values != NULL)
    for (guint i = 0; i < names->len && i < values->len; i++)
      {
        const char *n = names->pdata[i], *v = values->pdata[i];
        parser_autoreply_reason r = PARSER_AUTOREPLY_NONE;

        if (n == NULL || v == NULL)
          continue;
        /* each name is compared only with the names that start with its
         * letter: most headers (Received, From, To, Subject, Date,
         * Content-*) are none of them; the value's first token only
         * for a name that reads it */
        switch (n[0])
          {
          case 'A': case 'a':
            if (g_ascii_strcasecmp (n, "Auto-Submitted") == 0)
              {
                parser_autoreply_token (v, tok, sizeof tok);
                /* RFC 3834 5.1: anything but "no" */
                if (tok[0] != '\0' && strcmp (tok, "no") != 0)
                  r = PARSER_AUTOREPLY_AUTO_SUBMITTED;
                else if (strcmp (tok, "no") == 0)
                  human = TRUE;
              }
            break;
          case 'X': case 'x':
            if (g_ascii_strcasecmp (n, "X-Autoreply") == 0
                || g_ascii_strcasecmp (n, "X-Autorespond") == 0
                || g_ascii_strcasecmp (n, "X-Autogenerated") == 0)
              {
                parser_autoreply_token (v, tok, sizeof tok);
                if (strcmp (tok, "no") != 0 && strcmp (tok, "false") != 0
                    && strcmp (tok, "0") != 0)
                  r = PARSER_AUTOREPLY_X_AUTOREPLY;
              }
            else if (g_ascii_strcasecmp (n, "X-Auto-Response-Suppress") == 0)
              {
                /* Exchange: "All", "OOF", "AutoReply", "DR, RN, NRN" ... */
                g_auto (GStrv) parts = g_strsplit_set (v, ", \t", 16);

                for (guint k = 0; parts[k]; k++)
                  if (g_ascii_strcasecmp (parts[k], "All") == 0
                      || g_ascii_strcasecmp (parts[k], "OOF") == 0
                      || g_ascii_strcasecmp (parts[k], "AutoReply") == 0)
                    r = PARSER_AUTOREPLY_X_AUTOREPLY;
              }
            else if (g_ascii_strcasecmp (n, "X-POST-MessageClass") == 0)
              {
                gsize vl = MIN (strlen (v), (gsize) PARSER_TEXT_KEYWORD_SPAN);

                if (parser_text_find_ci (v, vl, "autoresponder"))
                  r = PARSER_AUTOREPLY_X_AUTOREPLY;
              }
            else if (g_ascii_strcasecmp (n, "X-Failed-Recipients") == 0)
              r = PARSER_AUTOREPLY_REPORT;
            break;
          case 'P': case 'p':
            if (g_ascii_strcasecmp (n, "Precedence") == 0)
              {
                parser_autoreply_token (v, tok, sizeof tok);
                if (strcmp (tok, "bulk") == 0 || strcmp (tok, "list") == 0
                    || strcmp (tok, "junk") == 0
                    || strcmp (tok, "auto_reply") == 0
                    || strcmp (tok, "auto-reply") == 0)
                  r = PARSER_AUTOREPLY_PRECEDENCE;
              }
            break;
          case 'L': case 'l':
            if (g_ascii_strcasecmp (n, "List-Id") == 0
                || g_ascii_strcasecmp (n, "List-Unsubscribe") == 0
                || g_ascii_strcasecmp (n, "List-Post") == 0)
              r = PARSER_AUTOREPLY_LIST;
            break;
          case 'R': case 'r':
            if (g_ascii_strcasecmp (n, "Return-Path") == 0)
              {
                gsize vl = strlen (v);
                const char *t = parser_text_trim (v, &vl);

                if (parser_html_eq_ci (t, vl, "<>", 2))
                  r = PARSER_AUTOREPLY_NULL_SENDER;
                else if (parser_autoreply_daemon (t))
                  r = PARSER_AUTOREPLY_MAILER_DAEMON;
              }
            break;
          default:
            continue;
          }
        if (r < best)
          best = r;
      }

  if (envelope_from != NULL && best > PARSER_AUTOREPLY_NULL_SENDER)
    {
      gsize vl = strlen (envelope_from);
      const char *t = parser_text_trim (envelope_from, &vl);

      if (vl == 0 || parser_html_eq_ci (t, vl, "<>", 2))
        best = PARSER_AUTOREPLY_NULL_SENDER;
    }
  if (best > PARSER_AUTOREPLY_MAILER_DAEMON
      && (parser_autoreply_daemon (envelope_from)
          || parser_autoreply_daemon (from_addr)))
    best = PARSER_AUTOREPLY_MAILER_DAEMON;
  if (best > PARSER_AUTOREPLY_REPORT && is_report)
    best = PARSER_AUTOREPLY_REPORT;
  /* a sender that says a person wrote it is believed over its subject
   * (headers and the envelope above still count) */
  if (best > PARSER_AUTOREPLY_REPORT && subject != NULL && !human)
    {
      g_autofree char *s = parser_autoreply_subject (subject);

      if (parser_autoreply_prefix (
              s, parser_autoreply_bounce_prefixes,
              G_N_ELEMENTS (parser_autoreply_bounce_prefixes)))
        best = PARSER_AUTOREPLY_REPORT;
      else if (!parser_autoreply_prefix (
                   s, parser_autoreply_oof_not,
                   G_N_ELEMENTS (parser_autoreply_oof_not))
               && (parser_autoreply_prefix (
                       s, parser_autoreply_oof_prefixes,
                       G_N_ELEMENTS (parser_autoreply_oof_prefixes))
                   || parser_autoreply_contains (
                       s, parser_autoreply_oof_phrases,
                       G_N_ELEMENTS (parser_autoreply_oof_phrases))))
        best = PARSER_AUTOREPLY_OUT_OF_OFFICE;
      else if (text != NULL
               && parser_autoreply_prefix (
                   s, parser_autoreply_weak_prefixes,
                   G_N_ELEMENTS (parser_autoreply_weak_prefixes)))
        {
          /* only the first lines: an auto-reply says so at once */
          g_autofree char *fixed = NULL;
          g_autofree char *head = NULL, *body = NULL;
          gsize len;
          const char *t = parser_text_valid (text, -1, &len, &fixed);
          const char *e = t + MIN (len, (gsize) PARSER_TEXT_BODY_MAX);

          while (e > t && e < t + len && ((guchar) *e & 0xC0) == 0x80)
            e--;
          head = g_strndup (t, (gsize) (e - t));
          body = parser_text_casefold (head);
          if (parser_autoreply_contains (
                  body, parser_autoreply_body_phrases,
                  G_N_ELEMENTS (parser_autoreply_body_phrases)))
            best = PARSER_AUTOREPLY_OUT_OF_OFFICE;
        }
    }
  if (reason)
    *reason = best == PARSER_AUTOREPLY_NONE ? NULL
                                            : parser_autoreply_reasons[best];
  return best != PARSER_AUTOREPLY_NONE;
}

/* ============================================================ case refs */

void
parser_refs_find (const char *s, GPtrArray *refs)
{
  g_autoptr (GHashTable) seen = NULL;
  const char *p;

  if (s == NULL || refs == NULL)
    return;
  seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < refs->len; i++)
    if (refs->pdata[i])
      g_hash_table_add (seen, refs->pdata[i]);
  p = s;
  while (*p)
    {
      const char *ls = p, *q;
      gsize n;

      if (!g_ascii_isalpha (*p))
        {
          p++;
          continue;
        }
      while (g_ascii_isalpha (*p))
        p++;
      n = (gsize) (p - ls);
      if (n > 10 || (ls > s && g_ascii_isdigit (ls[-1])))
        continue;
      /* PREFIX-YYYY-NNNNNN-C: every byte checked before the next is read,
       * so the NUL ends it */
      q = p;
      if (*q++ != '-')
        continue;
      {
        gboolean ok = TRUE;
        static const int widths[] = { 4, 6 };

        for (int k = 0; k < 2 && ok; k++)
          {
            for (int d = 0; d < widths[k] && ok; d++)
              ok = g_ascii_isdigit (*q++);
            if (ok)
              ok = *q++ == '-';
          }
        if (!ok || !g_ascii_isalnum (*q) || g_ascii_isalnum (q[1]))
          continue;
        q++;
      }
      if (refs->len >= PARSER_TEXT_REFS_MAX)
        return;
      {
        char *ref = g_ascii_strup (ls, (gssize) (q - ls));

        if (g_hash_table_contains (seen, ref))
          g_free (ref);
        else
          {
            g_ptr_array_add (refs, ref);
            g_hash_table_add (seen, ref);
          }
      }
      p = q;
    }
}
