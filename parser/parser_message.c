/*
 * parser_message.c - raw MIME to one parser_message: GMime 3 parses, our
 * own walker applies intake's limits and fills the result.
 *
 * Owns: the parser_message it returns (every string, array, GBytes in it)
 * and, for the length of one call, the GMime parser, its options and the
 * tree.  The caller keeps the raw bytes.
 *
 * Refuses: to re-serialise anything GMime parsed (GMime issue 165: no
 * g_mime_object_to_string, no write_to_stream of objects, no
 * set_*_parameter); content is only *decoded* through a part's data
 * wrapper.  A message/rfc822 part's bytes are cut from the raw input by
 * offsets, never rebuilt.  Names from messages (Content-Disposition,
 * uuencode "begin" lines, TNEF) are display names only, never paths.
 * Bad input is never an error: it becomes an anomaly flag and a note, and
 * parser_message_parse() never returns NULL.
 *
 * Limits (parser.h) are applied by the walker, not by GMime: depth before
 * GMime's own 1024/512, parts, header fields and bytes, decoded bytes,
 * parameters, text kept.  The walk is recursive with an explicit depth
 * counter capped at PARSER_LIMIT_DEPTH, and linear in the number of parts.
 * One linear pass before GMime cuts header fields over
 * PARSER_MESSAGE_FIELD_CUT and the input after PARSER_MESSAGE_DELIMITERS_MAX
 * MIME delimiters, so GMime's own work stays bounded too (flagged, noted).
 *
 * winmail.dat goes to libytnef (checksums recomputed first: some writers
 * get them wrong).  libytnef prints its complaints about broken TNEF on
 * stdout; callers whose stdout matters (intakectl parse) redirect it.
 */
#include "parser/parser.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>
#include <gmime/gmime.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "parser/parser_charset.h"
#include "parser/parser_sha256.h"
#include "parser/parser_sniff.h"
#include "parser/parser_text.h"
#include "parser/parser_transfer.h"

/* Last: libytnef's headers #define BYTE, WORD and DWORD.  */
#include <ytnef.h>

/* Bytes of an attachment given to content sniffing: shared-mime-info's
 * magic rules look at most a few KiB in (ISO 9660 at 32 KiB); more only
 * costs time.  */
#define PARSER_MESSAGE_SNIFF_BYTES   (256 * 1024)
/* Longest extension kept when a long name is cut to
 * PARSER_LIMIT_FILENAME bytes.  */
#define PARSER_MESSAGE_EXT_MAX       32
/* RFC 2046 section 5.1.1: a boundary is 1 to 70 characters.  */
#define PARSER_MESSAGE_BOUNDARY_MAX  70
/* Delivery-status fields kept (bytes).  */
#define PARSER_MESSAGE_FIELD_MAX     998
/* A header field longer than this is cut before GMime sees it: GMime
 * grows its header buffer a read at a time, which is quadratic where
 * realloc cannot grow in place (ASan), and no more than
 * PARSER_LIMIT_HEADER_VALUE of a value is kept anyway (SECURITY-TESTS 57,
 * 60; Dovecot CVE-2024-23185).  */
#define PARSER_MESSAGE_FIELD_CUT     PARSER_LIMIT_HEADER_VALUE
/* Delimiter lines GMime is shown: enough for the PARSER_LIMIT_PARTS parts
 * the walker looks at (an opening and a closing delimiter each, twice
 * over).  */
#define PARSER_MESSAGE_DELIMITERS_MAX  (4 * PARSER_LIMIT_PARTS)
/* GMimeParserWarning values are small; anything else is counted as 0.  */
#define PARSER_MESSAGE_WARN_KINDS    32

/* ------------------------------------------------------------ state */

/* The bytes one GMime tree's offsets refer to: the raw message, or the
 * decoded content of a base64/quoted-printable message/rfc822 part that
 * was parsed again.  */
typedef struct {
  const guint8 *data;
  gsize len;
  guint bounds_base;           /* first boundary of this tree in the stack */
} parser_walk_buf;

/* Text gathered for one message: the top-level one or a forwarded one.  */
typedef struct {
  GString *text;
  gboolean any_plain;
  gboolean any_html;
  gboolean full;               /* PARSER_LIMIT_TEXT reached */
  char *tnef_body;             /* TNEF PR_BODY, used when nothing else */
  gboolean top;                /* the top-level message */
} parser_walk_text;

typedef struct {
  parser_message *m;
  const parser_context *ctx;
  GMimeParserOptions *opts;
  GMimeParserOptions *quiet_opts; /* opts without the warning callback:
                                   * for values read again (GMime already
                                   * warned about the originals);
                                   * NULL until parser_walk_quiet() */
  gboolean quiet_parse;        /* the top-level tree was parsed without
                                * the warning callback
                                * (parser_walk_quiet_safe()): its header
                                * values are ASCII without "=?" */
  gsize quiet_len;             /* then: the bytes GMime parsed */

  guint warn_count[PARSER_MESSAGE_WARN_KINDS];
  gint64 warn_offset[PARSER_MESSAGE_WARN_KINDS];

  guint parts_skipped;         /* over PARSER_LIMIT_PARTS */
  guint depth_skipped;         /* deeper than PARSER_LIMIT_DEPTH */
  guint header_fields;
  gsize header_bytes;
  gsize decoded;               /* decoded bytes kept, all parts */
  gsize forwarded_text;        /* bytes of forwarded text kept */
  guint atts_dropped;          /* over PARSER_LIMIT_PARTS attachments */

  gboolean noted_headers;
  gboolean noted_decoded;
  gboolean noted_params;
  gboolean noted_value_cut;
  gboolean noted_lists;
  gboolean noted_charset;
  gboolean noted_boundary;

  /* Boundaries of the enclosing multiparts, innermost last: where a
   * message/rfc822 part ends.  */
  const char *bounds[PARSER_LIMIT_DEPTH + 2];
  guint n_bounds;

  const char *last_ok_charset; /* encoded-word charset check cache */
} parser_walk;

static void parser_walk_object (parser_walk *w, GMimeObject *o, guint depth,
                                gboolean want_text, guint att_flags,
                                parser_walk_text *acc,
                                const parser_walk_buf *buf, gsize limit_end,
                                gboolean in_report, GMimeObject *owner);

/* ------------------------------------------------------------ helpers */

static void parser_walk_note (parser_walk *w, const char *fmt, ...)
    G_GNUC_PRINTF (2, 3);

static void
parser_walk_note (parser_walk *w, const char *fmt, ...)
{
  va_list ap;

  if (w->m->notes->len >= PARSER_LIMIT_NOTES)
    return;
  va_start (ap, fmt);
  g_ptr_array_add (w->m->notes, g_strdup_vprintf (fmt, ap));
  va_end (ap);
}

/* Cut @s to at most @max bytes at a UTF-8 character boundary.  */
/* w->opts without the warning callback, made when first needed (most
 * messages never need it).  */
static GMimeParserOptions *
parser_walk_quiet (parser_walk *w)
{
  if (w->quiet_opts == NULL)
    {
      w->quiet_opts = g_mime_parser_options_clone (w->opts);
      g_mime_parser_options_set_warning_callback (w->quiet_opts, NULL, NULL);
    }
  return w->quiet_opts;
}

static gboolean
parser_walk_cut (GString *s, gsize max)
{
  gsize n = max;

  if (s->len <= max)
    return FALSE;
  while (n > 0 && ((guchar) s->str[n] & 0xc0) == 0x80)
    n--;
  g_string_truncate (s, n);
  return TRUE;
}

/* (transfer full) A header value as valid UTF-8 without controls, at most
 * PARSER_LIMIT_HEADER_VALUE bytes; a longer one sets
 * PARSER_ANOMALY_HEADERS.  */
static char *
parser_walk_value_len (parser_walk *w, const char *s, gsize len)
{
  if (len > PARSER_LIMIT_HEADER_VALUE)
    {
      w->m->anomalies |= PARSER_ANOMALY_HEADERS;
      if (!w->noted_value_cut)
        parser_walk_note (w, "header value of %zu bytes cut to %d", len,
                          PARSER_LIMIT_HEADER_VALUE);
      w->noted_value_cut = TRUE;
      /* A character cut here becomes U+FFFD beyond the limit.  */
      len = MIN (len, (gsize) PARSER_LIMIT_HEADER_VALUE + 8);
    }
  return parser_clean_text (s, (gssize) len, PARSER_LIMIT_HEADER_VALUE);
}

static char *
parser_walk_value (parser_walk *w, const char *s)
{
  return s != NULL ? parser_walk_value_len (w, s, strlen (s)) : NULL;
}

static char *
parser_walk_value_or_null (parser_walk *w, const char *s)
{
  char *v;

  if (s == NULL)
    return NULL;
  v = parser_walk_value (w, s);
  g_strstrip (v);
  if (*v == '\0')
    {
      g_free (v);
      return NULL;
    }
  return v;
}

static char *
parser_walk_lower (const char *s)
{
  return g_ascii_strdown (s ? s : "", -1);
}

/* The decoded-bytes budget: how many of @n more bytes may be kept.  */
static gsize
parser_walk_budget (parser_walk *w, gsize n)
{
  gsize left = PARSER_LIMIT_DECODED - w->decoded;

  if (n > left)
    {
      w->m->anomalies |= PARSER_ANOMALY_DECODED_SIZE;
      if (!w->noted_decoded)
        parser_walk_note (w, "decoded content over %d bytes: the rest was "
                          "cut", PARSER_LIMIT_DECODED);
      w->noted_decoded = TRUE;
      n = left;
    }
  w->decoded += n;
  return n;
}

/* ------------------------------------------------------------ warnings */

static const struct {
  guint anomaly;
  const char *name;
} parser_walk_warnings[] = {
  [0] = { PARSER_ANOMALY_GMIME_WARNING, "unknown" },
  [GMIME_WARN_DUPLICATED_HEADER] = { PARSER_ANOMALY_CONFLICTING,
                                     "duplicated-header" },
  [GMIME_WARN_DUPLICATED_PARAMETER] = { PARSER_ANOMALY_GMIME_WARNING,
                                        "duplicated-parameter" },
  [GMIME_WARN_UNENCODED_8BIT_HEADER] = { PARSER_ANOMALY_GMIME_WARNING,
                                         "unencoded-8bit-header" },
  [GMIME_WARN_INVALID_CONTENT_TYPE] = { PARSER_ANOMALY_GMIME_WARNING,
                                        "invalid-content-type" },
  [GMIME_WARN_INVALID_RFC2047_HEADER_VALUE] = { PARSER_ANOMALY_ENCODED_WORD,
                                                "invalid-rfc2047-value" },
  [GMIME_WARN_MALFORMED_MULTIPART] = { PARSER_ANOMALY_BOUNDARY,
                                       "malformed-multipart" },
  /* GMime reports a missing closing delimiter as a truncated message.  */
  [GMIME_WARN_TRUNCATED_MESSAGE] = { PARSER_ANOMALY_BOUNDARY,
                                     "truncated-message" },
  [GMIME_WARN_MALFORMED_MESSAGE] = { PARSER_ANOMALY_GMIME_WARNING,
                                     "malformed-message" },
  [GMIME_CRIT_INVALID_HEADER_NAME] = { PARSER_ANOMALY_GMIME_CRITICAL,
                                       "invalid-header-name" },
  [GMIME_CRIT_CONFLICTING_HEADER] = { PARSER_ANOMALY_GMIME_CRITICAL
                                      | PARSER_ANOMALY_CONFLICTING,
                                      "conflicting-header" },
  [GMIME_CRIT_CONFLICTING_PARAMETER] = { PARSER_ANOMALY_GMIME_CRITICAL
                                         | PARSER_ANOMALY_CONFLICTING,
                                         "conflicting-parameter" },
  [GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY] = { PARSER_ANOMALY_GMIME_CRITICAL
                                              | PARSER_ANOMALY_BOUNDARY,
                                              "multipart-without-boundary" },
  [GMIME_WARN_INVALID_PARAMETER] = { PARSER_ANOMALY_GMIME_WARNING,
                                     "invalid-parameter" },
  [GMIME_WARN_INVALID_ADDRESS_LIST] = { PARSER_ANOMALY_GMIME_WARNING,
                                        "invalid-address-list" },
  [GMIME_CRIT_NESTING_OVERFLOW] = { PARSER_ANOMALY_GMIME_CRITICAL
                                    | PARSER_ANOMALY_NESTING,
                                    "nesting-overflow" },
  [GMIME_WARN_PART_WITHOUT_CONTENT] = { PARSER_ANOMALY_BOUNDARY,
                                        "part-without-content" },
  [GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT] = {
      PARSER_ANOMALY_GMIME_CRITICAL | PARSER_ANOMALY_BOUNDARY,
      "part-without-headers-or-content" },
};

/* GMime's warning callback: every warning is counted by kind; one note per
 * kind is written at the end.  @item is attacker text and is not kept.  */
static void
parser_walk_gmime_warning (gint64 offset, GMimeParserWarning code,
                           const gchar *item, gpointer data)
{
  parser_walk *w = data;
  guint k = (guint) code;

  if (k >= G_N_ELEMENTS (parser_walk_warnings)
      || parser_walk_warnings[k].name == NULL)
    k = 0;
  if (w->warn_count[k]++ == 0)
    w->warn_offset[k] = offset;
  w->m->anomalies |= parser_walk_warnings[k].anomaly;
}

static void
parser_walk_warning_notes (parser_walk *w)
{
  for (guint k = 0; k < G_N_ELEMENTS (parser_walk_warnings); k++)
    {
      if (w->warn_count[k] == 0)
        continue;
      if (w->warn_offset[k] >= 0)
        parser_walk_note (w, "GMime %s: %u time%s, first at byte %"
                          G_GINT64_FORMAT, parser_walk_warnings[k].name,
                          w->warn_count[k], w->warn_count[k] == 1 ? "" : "s",
                          w->warn_offset[k]);
      else
        parser_walk_note (w, "GMime %s: %u time%s",
                          parser_walk_warnings[k].name, w->warn_count[k],
                          w->warn_count[k] == 1 ? "" : "s");
    }
}

/* ------------------------------------------------------------ encoded
 * words.  GMime 3.2.13 decodes broken RFC 2047 words leniently and warns
 * about few of them, so the raw values of Subject, the address fields and
 * filename parameters are checked here too (SECURITY-TESTS 59).  */

static gboolean
parser_walk_charset_known (parser_walk *w, const char *cs, gsize len)
{
  g_autofree char *name = g_strndup (cs, len);
  char *star = strchr (name, '*');    /* RFC 2231 section 5 language */

  if (star != NULL)
    *star = '\0';
  if (parser_charset_is_hz (name, strlen (name)))
    return TRUE;                      /* decoded here (parser_charset.h) */
  if (w->last_ok_charset != NULL
      && g_ascii_strcasecmp (w->last_ok_charset, name) == 0)
    return TRUE;
  /* known to iconv: its converter is then kept loaded too */
  if (!parser_charset_pin (g_mime_charset_iconv_name (name)))
    return FALSE;
  /* interned: lives as long as the process */
  w->last_ok_charset = g_intern_string (name);
  return TRUE;
}

/* TRUE when @raw holds a malformed encoded word: unterminated, unknown
 * charset, bad base64 (stray or all padding) or a bad Q escape.  */
static gboolean
parser_walk_bad_encoded_words (parser_walk *w, const char *raw)
{
  const char *p = raw;

  if (raw == NULL)
    return FALSE;
  while ((p = strstr (p, "=?")) != NULL)
    {
      const char *cs = p + 2, *q, *text, *end;
      char enc;

      for (q = cs; *q && *q != '?' && !g_ascii_isspace (*q); q++)
        ;
      if (*q != '?' || q == cs)
        return TRUE;
      enc = g_ascii_toupper (q[1]);
      if ((enc != 'B' && enc != 'Q') || q[2] != '?')
        return TRUE;
      text = q + 3;
      for (end = text; *end && !(end[0] == '?' && end[1] == '=')
                       && !g_ascii_isspace (*end); end++)
        ;
      if (end[0] != '?' || end[1] != '=')
        return TRUE;                        /* unterminated */
      if (!parser_walk_charset_known (w, cs, (gsize) (q - cs)))
        return TRUE;
      if (enc == 'B')
        {
          gsize n = (gsize) (end - text), pad = 0;
          for (const char *c = text; c < end; c++)
            {
              if (*c == '=')
                pad++;
              else if (pad > 0 || !(g_ascii_isalnum (*c) || *c == '+'
                                    || *c == '/'))
                return TRUE;
            }
          if (n == 0 || pad > 2 || pad == n || n % 4 != 0)
            return TRUE;
        }
      else
        {
          for (const char *c = text; c < end; c++)
            if (*c == '=' && !(c + 2 < end && g_ascii_isxdigit (c[1])
                               && g_ascii_isxdigit (c[2])))
              return TRUE;
        }
      p = end + 2;
    }
  return FALSE;
}

/* TRUE if a header named @hn is named @name (ASCII, without case): the
 * first letters are compared before the whole names, as most differ
 * there.  */
static inline gboolean
parser_walk_name_eq (const char *hn, const char *name)
{
  if (hn != NULL)
    {
      char a = hn[0], b = name[0];

      if (a >= 'A' && a <= 'Z')
        a = (char) (a + ('a' - 'A'));
      if (b >= 'A' && b <= 'Z')
        b = (char) (b + ('a' - 'A'));
      if (a != b)
        return FALSE;
    }
  return g_ascii_strcasecmp (hn, name) == 0;
}

/* Fields a parser_walk_index holds without an allocation.  */
#define PARSER_WALK_INDEX_INLINE 32

/* A message's header fields and their names, read from GMime once for
 * the scans by name that follow (subject, four address fields, four
 * checks for encoded words, the date), instead of once for each.  */
typedef struct {
  GMimeHeader **h;
  const char **name;
  int n;
  GMimeHeader *h_inline[PARSER_WALK_INDEX_INLINE];
  const char *name_inline[PARSER_WALK_INDEX_INLINE];
} parser_walk_index;

static void
parser_walk_index_init (parser_walk_index *f, GMimeObject *o)
{
  GMimeHeaderList *hl = g_mime_object_get_header_list (o);
  int n = hl ? g_mime_header_list_get_count (hl) : 0;

  f->n = MAX (n, 0);
  if (f->n <= PARSER_WALK_INDEX_INLINE)
    {
      f->h = f->h_inline;
      f->name = f->name_inline;
    }
  else
    {
      f->h = g_new (GMimeHeader *, f->n);
      f->name = g_new (const char *, f->n);
    }
  for (int i = 0; i < f->n; i++)
    {
      f->h[i] = g_mime_header_list_get_header_at (hl, i);
      f->name[i] = g_mime_header_get_name (f->h[i]);
    }
}

static void
parser_walk_index_clear (parser_walk_index *f)
{
  if (f->h != f->h_inline)
    {
      g_free (f->h);
      g_free (f->name);
    }
  f->h = NULL;
  f->name = NULL;
  f->n = 0;
}

static char *parser_walk_unfold (const char *raw);

/* The decoded value of the first field named @name (any case), or NULL;
 * after a quiet parse the raw value unfolded, which is the same there
 * (parser_walk_unfold()), made in *@mine for the caller to free.  */
static const char *
parser_walk_index_value (const parser_walk *w, const parser_walk_index *f,
                         const char *name, char **mine)
{
  for (int i = 0; i < f->n; i++)
    if (parser_walk_name_eq (f->name[i], name))
      {
        const char *raw = g_mime_header_get_raw_value (f->h[i]);

        if (w->quiet_parse && raw != NULL)
          return *mine = parser_walk_unfold (raw);
        return g_mime_header_get_value (f->h[i]);
      }
  return NULL;
}

static void
parser_walk_check_words (parser_walk *w, const parser_walk_index *f,
                         const char *name)
{
  for (int i = 0; i < f->n; i++)
    if (parser_walk_name_eq (f->name[i], name)
        && parser_walk_bad_encoded_words (
            w, g_mime_header_get_raw_value (f->h[i])))
      w->m->anomalies |= PARSER_ANOMALY_ENCODED_WORD;
}

/* Where an encoded word "=?charset?E?text?=" starts at @p: its charset
 * (@cs, @cs_len), encoding (upper case), text (@text, @text_len) and the
 * byte after it (@end).  FALSE when @p is not the start of a well-formed
 * one (no white space inside, B or Q, terminated); then @end is where an
 * unterminated text stopped (no word starts before it: callers go on
 * from there, so a scan stays linear), else NULL.  */
static gboolean
parser_walk_word_at (const char *p, const char **cs, gsize *cs_len,
                     char *enc, const char **text, gsize *text_len,
                     const char **end)
{
  const char *q, *e;

  *end = NULL;
  if (p[0] != '=' || p[1] != '?')
    return FALSE;
  for (q = p + 2; *q && *q != '?' && !g_ascii_isspace (*q); q++)
    ;
  if (*q != '?' || q == p + 2)
    return FALSE;
  *enc = g_ascii_toupper (q[1]);
  if ((*enc != 'B' && *enc != 'Q') || q[2] != '?')
    return FALSE;
  for (e = q + 3; *e && !(e[0] == '?' && e[1] == '=')
                  && !g_ascii_isspace (*e); e++)
    ;
  if (e[0] != '?' || e[1] != '=')
    {
      *end = e;
      return FALSE;
    }
  *cs = p + 2;
  *cs_len = (gsize) (q - (p + 2));
  *text = q + 3;
  *text_len = (gsize) (e - (q + 3));
  *end = e + 2;
  return TRUE;
}

/* TRUE when s[0..n) is only white space.  */
static gboolean
parser_walk_all_space (const char *s, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isspace (s[i]))
      return FALSE;
  return TRUE;
}

static gboolean parser_walk_from_utf8 (const guint8 *p, gsize n, GString *out,
                                       gsize max);

static void
parser_walk_gstring_free (GString *s)
{
  g_string_free (s, TRUE);
}

/* Whether an encoded word's charset (RFC 2231 section 5:
 * "charset*language") is UTF-8.  */
static gboolean
parser_walk_word_utf8 (const char *cs, gsize cs_len)
{
  gsize lang = cs_len;

  for (gsize i = 0; i < cs_len; i++)
    if (cs[i] == '*')
      {
        lang = i;
        break;
      }
  return (lang == 5 && g_ascii_strncasecmp (cs, "utf-8", 5) == 0)
         || (lang == 4 && g_ascii_strncasecmp (cs, "utf8", 4) == 0);
}

/* The bytes of a Q payload: '_' is a space, "=XX" a byte.  */
static void
parser_walk_q_bytes (const char *text, gsize text_len, GByteArray *bytes)
{
  guint start = bytes->len;
  guint8 *o;

  if (text_len == 0)
    return;
  /* at most one byte out for each byte in: written in place */
  g_byte_array_set_size (bytes, start + (guint) text_len);
  o = bytes->data + start;
  for (gsize i = 0; i < text_len; i++)
    {
      guint8 c = (guint8) text[i];
      if (c == '_')
        c = ' ';
      else if (c == '=' && i + 2 < text_len && g_ascii_isxdigit (text[i + 1])
               && g_ascii_isxdigit (text[i + 2]))
        {
          c = (guint8) (g_ascii_xdigit_value (text[i + 1]) * 16
                        + g_ascii_xdigit_value (text[i + 2]));
          i += 2;
        }
      *o++ = c;
    }
  g_byte_array_set_size (bytes, (guint) (o - bytes->data));
}

/* A UTF-8 encoded word decoded here rather than by GMime, which turns
 * invalid bytes into '?' without a word (F5): the payload (B or Q) is
 * decoded, invalid bytes become U+FFFD and the message is flagged.  HZ
 * words too, which GMime cannot decode at all (F6).  FALSE if the word is
 * neither (GMime decodes those).  */
static gboolean
parser_walk_decode_utf8_word (parser_walk *w, GString *out, const char *cs,
                              gsize cs_len, char enc, const char *text,
                              gsize text_len)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  gboolean hz = parser_charset_is_hz (cs, cs_len);

  if (!hz && !parser_walk_word_utf8 (cs, cs_len))
    return FALSE;
  if (enc == 'B')
    {
      gint state = 0;
      guint save = 0;
      gsize n;

      g_byte_array_set_size (bytes, (guint) (text_len / 4 * 3 + 3));
      n = g_base64_decode_step (text, text_len, bytes->data, &state, &save);
      g_byte_array_set_size (bytes, (guint) n);
    }
  else
    parser_walk_q_bytes (text, text_len, bytes);
  if (hz)
    {
      gboolean bad = FALSE;
      gsize n;
      char *utf8 = parser_charset_hz_to_utf8 (bytes->data, bytes->len, &n,
                                              &bad);

      g_byte_array_set_size (bytes, 0);
      g_byte_array_append (bytes, (const guint8 *) utf8, (guint) n);
      g_free (utf8);
      if (bad)
        w->m->anomalies |= PARSER_ANOMALY_CHARSET;
    }
  {
    GString *dec = g_string_new (NULL);
    g_autofree char *clean = NULL;

    if (parser_walk_from_utf8 (bytes->data, bytes->len, dec, G_MAXSIZE))
      w->m->anomalies |= PARSER_ANOMALY_CHARSET;
    clean = parser_clean_text (dec->str, (gssize) dec->len, dec->len);
    g_string_free (dec, TRUE);
    g_string_append (out, clean);
  }
  return TRUE;
}

/* Append s[0..n) decoded by GMime on its own: one encoded word, or text
 * between words (8-bit text gets the fallback charsets).  */
static void
parser_walk_decode_piece (parser_walk *w, GString *out, const char *s,
                          gsize n, gboolean word)
{
  g_autofree char *piece = NULL;
  g_autofree char *dec = NULL;
  gboolean ascii = TRUE;

  for (gsize i = 0; i < n && ascii; i++)
    ascii = (guchar) s[i] < 0x80;
  if (ascii && !word)
    {
      g_string_append_len (out, s, (gssize) n);
      return;
    }
  piece = g_strndup (s, n);
  dec = g_mime_utils_header_decode_text (parser_walk_quiet (w), piece);
  g_string_append (out, dec ? dec : piece);
}

/* (transfer full) An unstructured header value (Subject) decoded from its
 * raw bytes one encoded word at a time: GMime 3.2.13 joins the payloads
 * of adjacent B words of one charset and loses everything after the
 * first padded one (F3, jstedfast/gmime#133).  White space between two
 * adjacent encoded words is dropped (RFC 2047 section 6.2); other text is
 * kept as it is.  */
static char *
parser_walk_decode_words (parser_walk *w, const char *raw)
{
  g_autofree char *unfolded = g_mime_utils_header_unfold (raw);
  GString *out = g_string_new (NULL);
  const char *p = unfolded, *text_start = unfolded;
  gboolean after_word = FALSE;

  while (*p == ' ' || *p == '\t')
    p++;
  text_start = p;
  while (*p)
    {
      const char *cs, *text, *end;
      gsize cs_len, text_len;
      char enc;

      if (!parser_walk_word_at (p, &cs, &cs_len, &enc, &text, &text_len,
                                &end))
        {
          p = end != NULL && end > p ? end : p + 1;
          continue;
        }
      if (p > text_start
          && !(after_word && parser_walk_all_space (text_start,
                                                    (gsize) (p - text_start))))
        parser_walk_decode_piece (w, out, text_start,
                                  (gsize) (p - text_start), FALSE);
      if (!parser_walk_decode_utf8_word (w, out, cs, cs_len, enc, text,
                                         text_len))
        parser_walk_decode_piece (w, out, p, (gsize) (end - p), TRUE);
      after_word = TRUE;
      p = text_start = end;
    }
  if (p > text_start)
    parser_walk_decode_piece (w, out, text_start, (gsize) (p - text_start),
                              FALSE);
  return g_string_free (out, FALSE);
}

/* (transfer full) @raw with every well-formed B encoded word rewritten as
 * a Q word of the same bytes and charset, or NULL when it has none.  Q
 * payloads may be joined byte by byte, so GMime's merging of adjacent
 * words (F3) no longer loses text in structured fields (addresses,
 * parameters) whose raw form GMime must still parse.  A UTF-8 word (B or
 * Q) whose bytes are not valid UTF-8 is rewritten too, each bad byte as
 * U+FFFD, where GMime would put a silent '?' (F5); *@bad_utf8 (nullable)
 * is set then.  */
static char *
parser_walk_b_to_q (const char *raw, gboolean *bad_utf8)
{
  GString *out = NULL;
  const char *p = raw, *copied = raw;

  if (raw == NULL)
    return NULL;
  while ((p = strstr (p, "=?")) != NULL)
    {
      const char *cs, *text, *end;
      gsize cs_len, text_len;
      char enc;
      g_autoptr (GByteArray) bytes = NULL;
      GString *fixed = NULL;
      const guint8 *b;
      gsize n;

      if (!parser_walk_word_at (p, &cs, &cs_len, &enc, &text, &text_len,
                                &end))
        {
          p = end != NULL && end > p + 2 ? end : p + 2;
          continue;
        }
      bytes = g_byte_array_new ();
      if (enc == 'B' && text_len > 0 && text_len % 4 == 0)
        {
          g_autofree char *b64 = g_strndup (text, text_len);
          gsize bn;
          guchar *d = g_base64_decode (b64, &bn);

          g_byte_array_append (bytes, d, (guint) bn);
          g_free (d);
        }
      else if (enc == 'Q')
        parser_walk_q_bytes (text, text_len, bytes);
      else
        {
          p = end;
          continue;
        }
      if (parser_charset_is_hz (cs, cs_len))
        {
          /* GMime has no HZ: the word becomes a UTF-8 one (F6) */
          gboolean bad = FALSE;
          gsize hn;
          char *utf8 = parser_charset_hz_to_utf8 (bytes->data, bytes->len,
                                                  &hn, &bad);

          fixed = g_string_new_len (utf8, (gssize) hn);
          g_free (utf8);
          if (bad && bad_utf8 != NULL)
            *bad_utf8 = TRUE;
          cs = "UTF-8";
          cs_len = 5;
        }
      else if (parser_walk_word_utf8 (cs, cs_len))
        {
          fixed = g_string_new (NULL);
          if (!parser_walk_from_utf8 (bytes->data, bytes->len, fixed,
                                      G_MAXSIZE))
            g_clear_pointer (&fixed, parser_walk_gstring_free);
          else if (bad_utf8 != NULL)
            *bad_utf8 = TRUE;
        }
      if (enc == 'Q' && fixed == NULL)
        {
          p = end;
          continue;
        }
      b = fixed ? (const guint8 *) fixed->str : bytes->data;
      n = fixed ? fixed->len : bytes->len;
      if (out == NULL)
        out = g_string_new (NULL);
      g_string_append_len (out, copied, (gssize) (p - copied));
      g_string_append (out, "=?");
      g_string_append_len (out, cs, (gssize) cs_len);
      g_string_append (out, "?Q?");
      for (gsize i = 0; i < n; i++)
        {
          if (g_ascii_isalnum (b[i]))
            g_string_append_c (out, (char) b[i]);
          else
            g_string_append_printf (out, "=%02X", b[i]);
        }
      g_string_append (out, "?=");
      if (fixed != NULL)
        g_string_free (fixed, TRUE);
      p = copied = end;
    }
  if (out == NULL)
    return NULL;
  g_string_append (out, copied);
  return g_string_free (out, FALSE);
}

/* Whether parser_walk_b_to_q (@raw, NULL) would rewrite any word (return
 * non-NULL), without building the rewritten value: a B word of whole
 * base64 quads, or a Q word in HZ, or in UTF-8 with bytes that are not
 * (NUL apart).  */
static gboolean
parser_walk_b_to_q_needed (const char *raw)
{
  const char *p = raw;

  if (raw == NULL)
    return FALSE;
  while ((p = strstr (p, "=?")) != NULL)
    {
      const char *cs, *text, *end;
      gsize cs_len, text_len;
      char enc;

      if (!parser_walk_word_at (p, &cs, &cs_len, &enc, &text, &text_len,
                                &end))
        {
          p = end != NULL && end > p + 2 ? end : p + 2;
          continue;
        }
      if (enc == 'B' && text_len > 0 && text_len % 4 == 0)
        return TRUE;
      if (enc == 'Q')
        {
          if (parser_charset_is_hz (cs, cs_len))
            return TRUE;
          if (parser_walk_word_utf8 (cs, cs_len))
            {
              g_autoptr (GByteArray) bytes = g_byte_array_new ();
              GString *tmp = g_string_new (NULL);
              gboolean bad;

              parser_walk_q_bytes (text, text_len, bytes);
              bad = parser_walk_from_utf8 (bytes->data, bytes->len, tmp,
                                           G_MAXSIZE);
              g_string_free (tmp, TRUE);
              if (bad)
                return TRUE;
            }
        }
      p = end;
    }
  return FALSE;
}

/* F11: (transfer full) @raw, a header value in raw 8-bit UTF-8, with each
 * sequence cut short (a lead byte without all its continuation bytes:
 * the sender cut the value inside a character) as U+FFFD; NULL when @raw
 * is not like that.  GMime reads raw 8-bit text a word at a time with the
 * fallback charsets, so the word with the cut character became
 * windows-1252 mojibake.  A value with other invalid bytes, or without
 * one complete multi-byte sequence (real Latin-1: "Caf\xE9 au lait"), is
 * left to the fallback.  */
static char *
parser_walk_fix_cut_utf8 (const char *raw)
{
  const guchar *p;
  gboolean cut = FALSE, whole = FALSE;
  GString *out;

  if (raw == NULL)
    return NULL;
  /* ASCII (most raw values) has nothing cut: skip it eight bytes at a
   * time, within the string */
  {
    gsize n = strlen (raw), i = 0;

    for (; i + 8 <= n; i += 8)
      {
        guint64 x;

        memcpy (&x, raw + i, 8);
        if ((x & 0x8080808080808080ULL) != 0)
          break;
      }
    p = (const guchar *) raw + i;
  }
  while (*p)
    {
      gsize need, k;

      if (*p < 0x80)
        {
          p++;
          continue;
        }
      need = *p >= 0xc2 && *p <= 0xdf   ? 2
             : *p >= 0xe0 && *p <= 0xef ? 3
             : *p >= 0xf0 && *p <= 0xf4 ? 4
                                        : 0;
      if (need == 0)
        return NULL;
      for (k = 1; k < need && (p[k] & 0xc0) == 0x80; k++)
        ;
      /* the bytes there must be a valid start (no overlong form, no
       * surrogate, nothing over U+10FFFF) */
      if (k > 1
          && ((*p == 0xe0 && p[1] < 0xa0) || (*p == 0xed && p[1] > 0x9f)
              || (*p == 0xf0 && p[1] < 0x90) || (*p == 0xf4 && p[1] > 0x8f)))
        return NULL;
      if (k == need)
        whole = TRUE;
      else
        cut = TRUE;
      p += k;
    }
  if (!cut || !whole)
    return NULL;
  out = g_string_new (NULL);
  for (p = (const guchar *) raw; *p;)
    {
      gsize need, k;

      if (*p < 0x80)
        {
          g_string_append_c (out, (char) *p++);
          continue;
        }
      need = *p <= 0xdf ? 2 : *p <= 0xef ? 3 : 4;
      for (k = 1; k < need && (p[k] & 0xc0) == 0x80; k++)
        ;
      if (k == need)
        g_string_append_len (out, (const char *) p, (gssize) k);
      else
        g_string_append (out, "\xef\xbf\xbd");
      p += k;
    }
  return g_string_free (out, FALSE);
}

/* (transfer full) @raw as GMime should read it again: cut UTF-8
 * characters repaired (F11), B words made Q and bad UTF-8 words repaired
 * (F3, F5); NULL when nothing changes.  A repair sets
 * PARSER_ANOMALY_CHARSET.  */
static char *
parser_walk_fix_raw (parser_walk *w, const char *raw)
{
  g_autofree char *cut = parser_walk_fix_cut_utf8 (raw);
  gboolean bad = FALSE;
  char *q = parser_walk_b_to_q (cut ? cut : raw, &bad);

  if (cut != NULL || bad)
    w->m->anomalies |= PARSER_ANOMALY_CHARSET;
  return q ? q : g_steal_pointer (&cut);
}

static const char *
parser_walk_last_raw (const parser_walk_index *f, const char *name)
{
  const char *raw = NULL;

  for (int i = 0; i < f->n; i++)
    if (parser_walk_name_eq (f->name[i], name))
      raw = g_mime_header_get_raw_value (f->h[i]);
  return raw;
}

/* F7: a Date whose zone is "[+-]HMM" (three digits, "-600"), which GMime
 * reads as UTC: read as "[+-]0HMM" and flagged.  Returns the corrected
 * time (transfer full) or NULL when the zone is not of that form.  */
static GDateTime *
parser_walk_short_zone_date (parser_walk *w, const parser_walk_index *f)
{
  const char *raw = parser_walk_last_raw (f, "Date");
  g_autofree char *v = NULL;
  g_autofree char *fixed = NULL;
  char *end, *tok;
  GDateTime *dt;

  if (raw == NULL)
    return NULL;
  v = g_mime_utils_header_unfold (raw);
  g_strstrip (v);
  end = v + strlen (v);
  /* a trailing comment: "-600 (CST)" */
  if (end > v && end[-1] == ')')
    {
      char *open = strrchr (v, '(');
      if (open == NULL)
        return NULL;
      end = open;
      while (end > v && g_ascii_isspace (end[-1]))
        end--;
    }
  tok = end;
  while (tok > v && g_ascii_isdigit (tok[-1]))
    tok--;
  if (end - tok != 3 || tok - v < 2 || (tok[-1] != '+' && tok[-1] != '-')
      || !g_ascii_isspace (tok[-2]))
    return NULL;
  fixed = g_strdup_printf ("%.*s0%.3s", (int) (tok - v), v, tok);
  dt = g_mime_utils_header_decode_date (fixed);
  if (dt != NULL)
    {
      w->m->anomalies |= PARSER_ANOMALY_GMIME_WARNING;
      parser_walk_note (w, "Date zone of three digits read as %c0%.3s",
                        tok[-1], tok);
    }
  return dt;
}

/* (transfer full) A message's Subject decoded word by word, or NULL.
 * @f: the message's fields.  */
static char *
parser_walk_subject (parser_walk *w, GMimeMessage *msg,
                     const parser_walk_index *f)
{
  const char *subject = g_mime_message_get_subject (msg);
  const char *raw = parser_walk_last_raw (f, "Subject");
  g_autofree char *cut = NULL;

  if (subject == NULL)
    return NULL;
  /* F11: a character cut short, as U+FFFD */
  if ((cut = parser_walk_fix_cut_utf8 (raw)) != NULL)
    {
      w->m->anomalies |= PARSER_ANOMALY_CHARSET;
      return parser_walk_decode_words (w, cut);
    }
  if (raw != NULL && strstr (raw, "=?") != NULL)
    return parser_walk_decode_words (w, raw);
  return g_strdup (subject);
}

/* (transfer full) The addresses of every @name field of @msg as GMime
 * reads them, but with each value through parser_walk_fix_raw() first
 * (B words made Q, F3; bad UTF-8 repaired, F5, F11); NULL when that
 * changes no field (GMime's own list is right).  */
static InternetAddressList *
parser_walk_address_list (parser_walk *w, const parser_walk_index *f,
                          const char *name)
{
  InternetAddressList *all = NULL;
  gboolean changed = FALSE;

  for (int i = 0; i < f->n && !changed; i++)
    {
      const char *raw;

      if (!parser_walk_name_eq (f->name[i], name))
        continue;
      raw = g_mime_header_get_raw_value (f->h[i]);
      if (raw != NULL)
        {
          g_autofree char *q = parser_walk_fix_raw (w, raw);
          changed = q != NULL;
        }
    }
  if (!changed)
    return NULL;
  all = internet_address_list_new ();
  for (int i = 0; i < f->n; i++)
    {
      const char *raw = g_mime_header_get_raw_value (f->h[i]);
      g_autofree char *q = NULL;
      InternetAddressList *one;

      if (!parser_walk_name_eq (f->name[i], name)
          || raw == NULL)
        continue;
      q = parser_walk_fix_raw (w, raw);
      one = internet_address_list_parse (parser_walk_quiet (w), q ? q : raw);
      if (one != NULL)
        {
          internet_address_list_append (all, one);
          g_object_unref (one);
        }
    }
  return all;
}

/* ------------------------------------------------------------ charsets */

static gboolean
parser_walk_is_utf7 (const char *cs)
{
  static const char *const utf7[] = {
    "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7",
    "x-unicode-2-0-utf-7", "utf-7-imap", NULL
  };

  for (guint i = 0; utf7[i]; i++)
    if (g_ascii_strcasecmp (cs, utf7[i]) == 0)
      return TRUE;
  return FALSE;
}

/* Valid UTF-8 apart from NUL bytes (which the final pass replaces).  */
static gboolean
parser_walk_utf8_ok (const guint8 *p, gsize n)
{
  const gchar *s = (const gchar *) p, *end;

  if (parser_text_utf8_valid (s, n))
    return TRUE;
  while (n > 0)
    {
      if (g_utf8_validate (s, (gssize) n, &end))
        return TRUE;
      if (*end != '\0')
        return FALSE;
      n -= (gsize) (end - s) + 1;
      s = end + 1;
    }
  return TRUE;
}

/* g_string_append_len() without a call while there is room: the text
 * passes append a few bytes at a time.  */
static inline void
parser_walk_put (GString *out, const char *p, gsize n)
{
  if (out->len + n < out->allocated_len)
    {
      memcpy (out->str + out->len, p, n);
      out->len += n;
      out->str[out->len] = '\0';
    }
  else
    g_string_append_len (out, p, (gssize) n);
}

static void
parser_walk_append_fffd (GString *out)
{
  parser_walk_put (out, "\xef\xbf\xbd", 3);
}

/* UTF-8 input: invalid bytes become U+FFFD one by one.  */
static gboolean
parser_walk_from_utf8 (const guint8 *p, gsize n, GString *out, gsize max)
{
  const gchar *s = (const gchar *) p, *end;
  gboolean bad = FALSE;

  if (out->len <= max && parser_text_utf8_valid (s, n))
    {
      g_string_append_len (out, s, (gssize) n);
      return FALSE;
    }
  while (n > 0 && out->len <= max)
    {
      if (g_utf8_validate (s, (gssize) n, &end))
        {
          g_string_append_len (out, s, (gssize) n);
          break;
        }
      g_string_append_len (out, s, end - s);
      n -= (gsize) (end - s);
      s = end;
      if (*s == '\0')
        g_string_append_c (out, '\0');  /* replaced by the final pass */
      else
        {
          parser_walk_append_fffd (out);
          bad = TRUE;
        }
      s++;
      n--;
    }
  return bad;
}

/* Any iconv charset: each byte iconv refuses becomes U+FFFD and the
 * conversion goes on from the next byte (never fail the whole part).  */
static gboolean
parser_walk_from_iconv (GIConv cd, const guint8 *p, gsize n, GString *out,
                        gsize max)
{
  gchar *in = (gchar *) p;
  gsize inleft = n;
  gboolean bad = FALSE;
  char buf[4096];

  while (inleft > 0 && out->len <= max)
    {
      gchar *o = buf;
      gsize oleft = sizeof buf;
      gsize r = g_iconv (cd, &in, &inleft, &o, &oleft);
      int err = errno;

      g_string_append_len (out, buf, o - buf);
      if (r != (gsize) -1)
        continue;
      if (err == E2BIG && o != buf)
        continue;
      /* EILSEQ, EINVAL (truncated sequence at the end) or no progress */
      parser_walk_append_fffd (out);
      bad = TRUE;
      in++;
      inleft--;
      g_iconv (cd, NULL, NULL, NULL, NULL);
    }
  {
    gchar *o = buf;
    gsize oleft = sizeof buf;
    g_iconv (cd, NULL, NULL, &o, &oleft);      /* flush shift state */
    g_string_append_len (out, buf, o - buf);
  }
  return bad;
}

/* Bytes 0x80-0xFF of windows-1252 as glibc's CP1252 maps them, in UTF-8:
 * length, then the bytes; length 0 for 0x81 0x8D 0x8F 0x90 0x9D, which
 * iconv refuses.  0xA0-0xFF are U+00A0-U+00FF.  */
static const guint8 parser_walk_cp1252_utf8[128][4] = {
  { 3, 0xe2, 0x82, 0xac }, { 0 }, { 3, 0xe2, 0x80, 0x9a },
  { 2, 0xc6, 0x92 }, { 3, 0xe2, 0x80, 0x9e }, { 3, 0xe2, 0x80, 0xa6 },
  { 3, 0xe2, 0x80, 0xa0 }, { 3, 0xe2, 0x80, 0xa1 }, { 2, 0xcb, 0x86 },
  { 3, 0xe2, 0x80, 0xb0 }, { 2, 0xc5, 0xa0 }, { 3, 0xe2, 0x80, 0xb9 },
  { 2, 0xc5, 0x92 }, { 0 }, { 2, 0xc5, 0xbd },
  { 0 }, { 0 }, { 3, 0xe2, 0x80, 0x98 },
  { 3, 0xe2, 0x80, 0x99 }, { 3, 0xe2, 0x80, 0x9c }, { 3, 0xe2, 0x80, 0x9d },
  { 3, 0xe2, 0x80, 0xa2 }, { 3, 0xe2, 0x80, 0x93 }, { 3, 0xe2, 0x80, 0x94 },
  { 2, 0xcb, 0x9c }, { 3, 0xe2, 0x84, 0xa2 }, { 2, 0xc5, 0xa1 },
  { 3, 0xe2, 0x80, 0xba }, { 2, 0xc5, 0x93 }, { 0 },
  { 2, 0xc5, 0xbe }, { 2, 0xc5, 0xb8 }, { 2, 0xc2, 0xa0 },
  { 2, 0xc2, 0xa1 }, { 2, 0xc2, 0xa2 }, { 2, 0xc2, 0xa3 },
  { 2, 0xc2, 0xa4 }, { 2, 0xc2, 0xa5 }, { 2, 0xc2, 0xa6 },
  { 2, 0xc2, 0xa7 }, { 2, 0xc2, 0xa8 }, { 2, 0xc2, 0xa9 },
  { 2, 0xc2, 0xaa }, { 2, 0xc2, 0xab }, { 2, 0xc2, 0xac },
  { 2, 0xc2, 0xad }, { 2, 0xc2, 0xae }, { 2, 0xc2, 0xaf },
  { 2, 0xc2, 0xb0 }, { 2, 0xc2, 0xb1 }, { 2, 0xc2, 0xb2 },
  { 2, 0xc2, 0xb3 }, { 2, 0xc2, 0xb4 }, { 2, 0xc2, 0xb5 },
  { 2, 0xc2, 0xb6 }, { 2, 0xc2, 0xb7 }, { 2, 0xc2, 0xb8 },
  { 2, 0xc2, 0xb9 }, { 2, 0xc2, 0xba }, { 2, 0xc2, 0xbb },
  { 2, 0xc2, 0xbc }, { 2, 0xc2, 0xbd }, { 2, 0xc2, 0xbe },
  { 2, 0xc2, 0xbf }, { 2, 0xc3, 0x80 }, { 2, 0xc3, 0x81 },
  { 2, 0xc3, 0x82 }, { 2, 0xc3, 0x83 }, { 2, 0xc3, 0x84 },
  { 2, 0xc3, 0x85 }, { 2, 0xc3, 0x86 }, { 2, 0xc3, 0x87 },
  { 2, 0xc3, 0x88 }, { 2, 0xc3, 0x89 }, { 2, 0xc3, 0x8a },
  { 2, 0xc3, 0x8b }, { 2, 0xc3, 0x8c }, { 2, 0xc3, 0x8d },
  { 2, 0xc3, 0x8e }, { 2, 0xc3, 0x8f }, { 2, 0xc3, 0x90 },
  { 2, 0xc3, 0x91 }, { 2, 0xc3, 0x92 }, { 2, 0xc3, 0x93 },
  { 2, 0xc3, 0x94 }, { 2, 0xc3, 0x95 }, { 2, 0xc3, 0x96 },
  { 2, 0xc3, 0x97 }, { 2, 0xc3, 0x98 }, { 2, 0xc3, 0x99 },
  { 2, 0xc3, 0x9a }, { 2, 0xc3, 0x9b }, { 2, 0xc3, 0x9c },
  { 2, 0xc3, 0x9d }, { 2, 0xc3, 0x9e }, { 2, 0xc3, 0x9f },
  { 2, 0xc3, 0xa0 }, { 2, 0xc3, 0xa1 }, { 2, 0xc3, 0xa2 },
  { 2, 0xc3, 0xa3 }, { 2, 0xc3, 0xa4 }, { 2, 0xc3, 0xa5 },
  { 2, 0xc3, 0xa6 }, { 2, 0xc3, 0xa7 }, { 2, 0xc3, 0xa8 },
  { 2, 0xc3, 0xa9 }, { 2, 0xc3, 0xaa }, { 2, 0xc3, 0xab },
  { 2, 0xc3, 0xac }, { 2, 0xc3, 0xad }, { 2, 0xc3, 0xae },
  { 2, 0xc3, 0xaf }, { 2, 0xc3, 0xb0 }, { 2, 0xc3, 0xb1 },
  { 2, 0xc3, 0xb2 }, { 2, 0xc3, 0xb3 }, { 2, 0xc3, 0xb4 },
  { 2, 0xc3, 0xb5 }, { 2, 0xc3, 0xb6 }, { 2, 0xc3, 0xb7 },
  { 2, 0xc3, 0xb8 }, { 2, 0xc3, 0xb9 }, { 2, 0xc3, 0xba },
  { 2, 0xc3, 0xbb }, { 2, 0xc3, 0xbc }, { 2, 0xc3, 0xbd },
  { 2, 0xc3, 0xbe }, { 2, 0xc3, 0xbf },
};

/* parser_walk_from_iconv() with glibc's CP1252, by table: undeclared
 * 8-bit text and ISO-8859-1 labels are read as windows-1252, and iconv
 * costs most of the time of such a part.  Output is appended in the
 * chunks iconv would fill (a 4096-byte buffer, stopping before an
 * undefined byte), so @max is checked at the same points.  */
static gboolean
parser_walk_from_cp1252 (const guint8 *p, gsize n, GString *out, gsize max)
{
  gsize i = 0;
  gboolean bad = FALSE;
  char buf[4096];

  while (i < n && out->len <= max)
    {
      gsize o = 0;
      gboolean undefined = FALSE;

      while (i < n)
        {
          guint b = p[i];
          const guint8 *u;

          if (b < 0x80)
            {
              if (o + 1 > sizeof buf)
                break;
              buf[o++] = (char) b;
              i++;
              continue;
            }
          u = parser_walk_cp1252_utf8[b - 0x80];
          if (u[0] == 0)
            {
              undefined = TRUE;
              break;
            }
          if (o + u[0] > sizeof buf)
            break;
          memcpy (buf + o, u + 1, u[0]);
          o += u[0];
          i++;
        }
      parser_walk_put (out, buf, o);
      if (undefined)
        {
          parser_walk_append_fffd (out);
          bad = TRUE;
          i++;
        }
    }
  return bad;
}

/* parser_walk_from_cp1252() and the final pass of parser_walk_to_utf8()
 * in one, by a table of every byte: its output (windows-1252 in UTF-8;
 * U+FFFD for NUL, the other C0 controls but TAB and LF, DEL and the five
 * undefined bytes), then in the fourth byte its length and whether it sets
 * PARSER_ANOMALY_CHARSET (NUL, undefined).  CR is the one byte with no
 * entry: CR and CRLF become LF.  windows-1252 never yields a C1 control,
 * so these are the same bytes and flags as the two passes.  */
#define PARSER_WALK_CP_LEN   0x03
#define PARSER_WALK_CP_BAD   0x04

static guint8 parser_walk_cp_final[256][4];

static void
parser_walk_cp_final_init (void)
{
  static gsize done = 0;

  if (!g_once_init_enter (&done))
    return;
  for (guint b = 0; b < 256; b++)
    {
      guint8 *e = parser_walk_cp_final[b];
      const guint8 *u = b >= 0x80 ? parser_walk_cp1252_utf8[b - 0x80] : NULL;

      if ((b >= 0x20 && b < 0x7f) || b == '\t')
        {
          e[0] = (guint8) b;
          e[3] = 1;
        }
      else if (b == '\r' || b == '\n')
        e[3] = 0; /* a line end: handled apart */
      else if (u != NULL && u[0] != 0)
        {
          memcpy (e, u + 1, 3);
          e[3] = u[0];
        }
      else
        {
          e[0] = 0xef;
          e[1] = 0xbf;
          e[2] = 0xbd;
          e[3] = 3 | (b == 0 || b >= 0x80 ? PARSER_WALK_CP_BAD : 0);
        }
    }
  g_once_init_leave (&done, 1);
}

/* Printable ASCII (0x20-0x7E) from @p[@i], eight bytes at a time, to
 * *@o as it is (its own UTF-8), up to the first other byte or the last
 * eight; returns where it stopped.  Writes up to eight bytes past what
 * it keeps: *@o + 8 <= buf + 3 * i + 8 <= buf + 3 * n + 1 in
 * parser_walk_cp1252_final's buffer while i + 8 <= n.  */
static inline gsize
parser_walk_cp_ascii_run (const guint8 *p, gsize n, gsize i, char **o)
{
  while (n - i >= 8)
    {
      guint64 x, bad;

      memcpy (&x, p + i, 8);
      x = GUINT64_FROM_LE (x);
      /* a byte below 0x20 | a byte above 0x7E; the lowest flag is exact
       * (borrows and carries only flag bytes above a flagged one) */
      bad = (((x - 0x2020202020202020ULL) & ~x)
             | ((x + 0x0101010101010101ULL) | x))
            & 0x8080808080808080ULL;
      __builtin_memcpy (*o, p + i, 8);
      if (bad != 0)
        {
          gsize k = (gsize) __builtin_ctzll (bad) / 8;

          *o += k;
          return i + k;
        }
      *o += 8;
      i += 8;
    }
  return i;
}

/* At most 3 output bytes a byte, so the caller's limit is never reached
 * when @n <= max / 3 (the caller checks; no cut).  At the start and after
 * each line end, printable ASCII goes eight bytes at a time; the rest of
 * a line (and binary content, where line ends are rare) by table, one
 * byte at a time.  */
static char *
parser_walk_cp1252_final (parser_walk *w, const guint8 *p, gsize n)
{
  char *buf = g_malloc (n * 3 + 1);
  char *o = buf;
  guint flags = 0;

  parser_walk_cp_final_init ();
  for (gsize i = parser_walk_cp_ascii_run (p, n, 0, &o); i < n; i++)
    {
      const guint8 *e = parser_walk_cp_final[p[i]];

      if (G_UNLIKELY (e[3] == 0))
        {
          /* CR, CRLF, LF: one LF */
          *o++ = '\n';
          if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
            i++;
          /* i + 1 >= 1: the loop's i++ takes it back */
          i = parser_walk_cp_ascii_run (p, n, i + 1, &o) - 1;
          continue;
        }
      /* four bytes stored, the fourth overwritten next: o + 4 <=
       * buf + 3 * i + 4 <= buf + 3 * n + 1 */
      __builtin_memcpy (o, e, 4);
      o += e[3] & PARSER_WALK_CP_LEN;
      flags |= e[3];
    }
  *o = '\0';
  if (flags & PARSER_WALK_CP_BAD)
    w->m->anomalies |= PARSER_ANOMALY_CHARSET;
  return g_realloc (buf, (gsize) (o - buf) + 1);
}

/* The final pass of parser_walk_to_utf8() over @d[0..@olen), valid
 * UTF-8: CRLF and CR to LF; NUL (flagged), the other C0 controls but TAB
 * and LF, DEL and the C1 controls to U+FFFD, so that no terminal or log
 * ever gets an escape sequence from a message.  */
/* Bytes the final pass looks at: C0 controls but TAB and LF, DEL, and
 * 0xC2 (the lead byte of the C1 controls U+0080-U+009F).  */
static const guint8 parser_walk_final_special[256] = {
  1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  [0x7f] = 1, [0xc2] = 1,
};

#ifdef __SSE2__
/* From @q, sixteen bytes at a time while at least sixteen are left: the
 * first byte that is a control other than TAB and LF, DEL or 0xC2 (the
 * bytes the final pass may change), or where fewer than sixteen are left.
 * SSE2 is part of x86-64.  */
static inline const guchar *
parser_walk_final_scan (const guchar *q, const guchar *end)
{
  const __m128i ctl_max = _mm_set1_epi8 (0x1f);
  const __m128i tab = _mm_set1_epi8 ('\t'), lf = _mm_set1_epi8 ('\n');
  const __m128i del = _mm_set1_epi8 (0x7f);
  const __m128i c2 = _mm_set1_epi8 ((char) 0xc2);

  while (end - q >= 16)
    {
      __m128i v = _mm_loadu_si128 ((const __m128i *) (const void *) q);
      /* v <= 0x1f (unsigned): min (v, 0x1f) == v */
      __m128i ctl = _mm_cmpeq_epi8 (_mm_min_epu8 (v, ctl_max), v);
      __m128i kept = _mm_or_si128 (_mm_cmpeq_epi8 (v, tab),
                                   _mm_cmpeq_epi8 (v, lf));
      __m128i look = _mm_or_si128 (_mm_andnot_si128 (kept, ctl),
                                   _mm_or_si128 (_mm_cmpeq_epi8 (v, del),
                                                 _mm_cmpeq_epi8 (v, c2)));
      int bits = _mm_movemask_epi8 (look);

      if (bits != 0)
        return q + __builtin_ctz ((unsigned) bits);
      q += 16;
    }
  return q;
}
#endif

static GString *
parser_walk_final_pass (parser_walk *w, const guchar *d, gsize olen)
{
  GString *fin = g_string_sized_new (olen + 1);
  const guchar *q = d, *end = d + olen, *run = d;

  /* runs of ordinary bytes are copied whole; sixteen bytes at a time
   * (SSE2), or eight, are passed over while none is a control, DEL or
   * 0xC2 (with eight, a word with a line feed or tab is looked at byte
   * by byte) */
  while (q < end)
    {
      guchar c;

#ifdef __SSE2__
      if (end - q >= 16)
        {
          q = parser_walk_final_scan (q, end);
          if (q >= end)
            break;
          if (end - q >= 16)
            goto look;      /* at a byte to look at */
        }
#endif
      if (end - q >= 8)
        {
          const guint64 ones = 0x0101010101010101ULL;
          const guint64 highs = 0x8080808080808080ULL;
          guint64 x, del, c2;

          memcpy (&x, q, 8);
          del = x ^ (0x7f * ones);
          c2 = x ^ (0xc2 * ones);
          /* no byte < 0x20, none 0x7f, none 0xc2 (exact for the first
           * such byte; a false alarm only means the slow way) */
          if (((((x & ~highs) - 0x20 * ones) & ~x)
               | ((del - ones) & ~del) | ((c2 - ones) & ~c2))
              & highs)
            {
              /* the slow way for these eight bytes */
              const guchar *stop = q + 8;

              while (q < stop)
                {
                  c = *q;
                  if (!parser_walk_final_special[c]
                      || (c == 0xc2
                          && !(end - q > 1 && q[1] >= 0x80 && q[1] < 0xa0)))
                    {
                      q++;
                      continue;
                    }
                  break;
                }
              if (q >= stop)
                continue;
            }
          else
            {
              q += 8;
              continue;
            }
        }
#ifdef __SSE2__
    look:
#endif
      c = *q;
      if (!parser_walk_final_special[c]
          || (c == 0xc2 && !(end - q > 1 && q[1] >= 0x80 && q[1] < 0xa0)))
        {
          q++;
          continue;
        }
      parser_walk_put (fin, (const char *) run, (gsize) (q - run));
      if (c == '\r')
        {
          parser_walk_put (fin, "\n", 1);
          if (end - q > 1 && q[1] == '\n')
            q++;
        }
      else if (c == '\0')
        {
          parser_walk_append_fffd (fin);
          w->m->anomalies |= PARSER_ANOMALY_CHARSET;
        }
      else if (c == 0xc2)
        {
          parser_walk_append_fffd (fin);
          q++;
        }
      else
        parser_walk_append_fffd (fin);
      q++;
      run = q;
    }
  parser_walk_put (fin, (const char *) run, (gsize) (end - run));
  return fin;
}

/* (transfer full) @p in charset @charset (nullable: undeclared) as valid
 * UTF-8 with LF line ends and no NUL, at most about @max bytes
 * (*@truncated set when more was there).  UTF-7 is never decoded: a
 * browser would read "+ADw-script+AD4-" as markup (SECURITY-TESTS 62).
 * Unknown charsets are read as undeclared.  Undeclared 8-bit text is
 * UTF-8 when valid, else windows-1252.  */
static char *
parser_walk_to_utf8 (parser_walk *w, const guint8 *p, gsize n,
                     const char *charset, gsize max, gboolean *truncated)
{
  g_autofree char *cs = NULL;
  GString *out = NULL;
  GString *fin;
  gboolean bad = FALSE, hz = FALSE, is_utf8 = FALSE;
  GIConv cd = (GIConv) -1;
  const guchar *d;
  gsize olen;

  if (charset != NULL)
    {
      cs = g_strstrip (g_ascii_strdown (charset, -1));
      if (*cs == '\0')
        g_clear_pointer (&cs, g_free);
    }
  if (cs != NULL && parser_walk_is_utf7 (cs))
    {
      w->m->anomalies |= PARSER_ANOMALY_CHARSET;
      parser_walk_note (w, "UTF-7 text not decoded (read as ASCII)");
      g_clear_pointer (&cs, g_free);
    }
  /* US-ASCII labels are routinely put on 8-bit text: read as undeclared.
   * ISO-8859-1 is read as its superset windows-1252 (WHATWG).  */
  if (cs != NULL && (strcmp (cs, "us-ascii") == 0 || strcmp (cs, "ascii") == 0
                     || strcmp (cs, "ansi_x3.4-1968") == 0))
    g_clear_pointer (&cs, g_free);
  else if (cs != NULL && (strcmp (cs, "iso-8859-1") == 0
                          || strcmp (cs, "iso8859-1") == 0
                          || strcmp (cs, "iso_8859-1") == 0
                          || strcmp (cs, "latin1") == 0
                          || strcmp (cs, "l1") == 0))
    {
      g_free (cs);
      cs = g_strdup ("windows-1252");
    }

  if (cs != NULL && (strcmp (cs, "utf-8") == 0 || strcmp (cs, "utf8") == 0))
    is_utf8 = TRUE;  /* not HZ, iconv or CP1252: no look-up of its name */
  else if (cs != NULL && parser_charset_is_hz (cs, strlen (cs)))
    {
      /* F6: glibc has no HZ; GB2312 underneath, by parser_charset.c */
      gboolean hzbad = FALSE;
      gsize hn;
      g_autofree char *utf8 = parser_charset_hz_to_utf8 (p, n, &hn, &hzbad);

      hz = TRUE;
      out = g_string_sized_new (MIN (n, max) + 16);
      bad = parser_walk_from_utf8 ((const guint8 *) utf8, hn, out, max)
            || hzbad;
    }
  else if (cs != NULL && strcmp (g_mime_charset_iconv_name (cs), "UTF-8") != 0
      && g_ascii_strcasecmp (cs, "utf-8") != 0
      && g_ascii_strcasecmp (cs, "utf8") != 0
      && g_ascii_strcasecmp (g_mime_charset_iconv_name (cs), "CP1252") != 0)
    {
      cd = g_iconv_open ("UTF-8", g_mime_charset_iconv_name (cs));
      if (cd != (GIConv) -1)
        (void) parser_charset_pin (g_mime_charset_iconv_name (cs));
      else
        {
          w->m->anomalies |= PARSER_ANOMALY_CHARSET;
          if (!w->noted_charset)
            {
              g_autofree char *shown = parser_clean_text (cs, -1, 40);
              parser_walk_note (w, "unknown charset \"%s\" read as "
                                "undeclared", shown);
            }
          w->noted_charset = TRUE;
          g_clear_pointer (&cs, g_free);
        }
    }

  if (hz)
    ;
  else if (cd != (GIConv) -1)
    {
      out = g_string_sized_new (MIN (n, max) + 16);
      bad = parser_walk_from_iconv (cd, p, n, out, max);
      g_iconv_close (cd);
    }
  else if (cs != NULL && !is_utf8
           && g_ascii_strcasecmp (g_mime_charset_iconv_name (cs), "CP1252")
                  == 0)
    {
      if (n <= max / 3)
        {
          *truncated = FALSE;
          return parser_walk_cp1252_final (w, p, n);
        }
      out = g_string_sized_new (MIN (n, max) + 16);
      bad = parser_walk_from_cp1252 (p, n, out, max);
    }
  else if (parser_text_utf8_valid ((const gchar *) p, n))
    ;     /* UTF-8 (declared or not) as it is: the final pass reads @p */
  else if (cs != NULL || parser_walk_utf8_ok (p, n))
    {
      out = g_string_sized_new (MIN (n, max) + 16);
      bad = parser_walk_from_utf8 (p, n, out, max);
    }
  else if (n <= max / 3)
    {
      /* every byte fits: no cut, conversion and final pass in one */
      *truncated = FALSE;
      return parser_walk_cp1252_final (w, p, n);
    }
  else
    {
      out = g_string_sized_new (MIN (n, max) + 16);
      bad = parser_walk_from_cp1252 (p, n, out, max);
    }
  if (bad)
    w->m->anomalies |= PARSER_ANOMALY_CHARSET;
  if (out != NULL)
    {
      d = (const guchar *) out->str;
      olen = out->len;
    }
  else
    {
      d = p != NULL ? p : (const guchar *) "";
      olen = n;
    }

  fin = parser_walk_final_pass (w, d, olen);
  if (out != NULL)
    g_string_free (out, TRUE);
  *truncated = parser_walk_cut (fin, max);
  return g_string_free (fin, FALSE);
}

/* ------------------------------------------------------------ names */

static gboolean
parser_walk_name_drop (gunichar c)
{
  return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)
         || (c >= 0x202a && c <= 0x202e)     /* bidi embeddings/overrides */
         || (c >= 0x2066 && c <= 0x2069)     /* bidi isolates */
         || c == 0x200e || c == 0x200f       /* LRM, RLM */
         || c == 0x061c || c == 0xfeff;      /* ALM, BOM */
}

/* (transfer full) A display name from message data (SECURITY-TESTS 65):
 * the last component after '/' or '\\', without control and bidi
 * characters, trimmed of white space and of trailing dots (Windows drops
 * them), at most PARSER_LIMIT_FILENAME bytes keeping the extension;
 * "attachment-@index" when nothing is left.  *@changed when it differs
 * from @raw.  Never a path: callers store content under their own ids.  */
static char *
parser_walk_safe_name (const char *raw, guint index, gboolean *changed)
{
  g_autofree char *valid = NULL;
  const char *last;
  GString *out;
  gsize start, end;

  *changed = FALSE;
  if (raw == NULL || *raw == '\0')
    return g_strdup_printf ("attachment-%u", index);
  valid = g_utf8_make_valid (raw, -1);
  if (strcmp (valid, raw) != 0)
    *changed = TRUE;

  last = valid;
  for (const char *p = valid; *p; p++)
    if (*p == '/' || *p == '\\')
      last = p + 1;
  if (last != valid)
    *changed = TRUE;

  out = g_string_new (NULL);
  for (const char *p = last; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (parser_walk_name_drop (c))
        *changed = TRUE;
      else
        g_string_append_unichar (out, c);
    }

  start = 0;
  while (start < out->len && g_ascii_isspace (out->str[start]))
    start++;
  end = out->len;
  while (end > start && (g_ascii_isspace (out->str[end - 1])
                         || out->str[end - 1] == '.'))
    end--;
  if (start > 0 || end < out->len)
    {
      *changed = TRUE;
      g_string_truncate (out, end);
      g_string_erase (out, 0, (gssize) start);
    }

  if (out->len > PARSER_LIMIT_FILENAME)
    {
      const char *dot = strrchr (out->str, '.');
      gsize ext = dot ? strlen (dot) : 0;
      g_autofree char *tail = NULL;

      *changed = TRUE;
      if (dot == NULL || dot == out->str || ext > PARSER_MESSAGE_EXT_MAX)
        ext = 0;
      tail = g_strdup (out->str + out->len - ext);
      g_string_truncate (out, out->len - ext);
      parser_walk_cut (out, PARSER_LIMIT_FILENAME - ext);
      g_string_append (out, tail);
    }

  if (out->len == 0)
    {
      *changed = TRUE;
      g_string_free (out, TRUE);
      return g_strdup_printf ("attachment-%u", index);
    }
  return g_string_free (out, FALSE);
}

static gboolean
parser_walk_exec_ext (const char *ext)
{
  static const char *const exts[] = {
    "exe", "com", "scr", "bat", "cmd", "pif", "vbs", "vbe", "js", "jse",
    "wsf", "wsh", "msi", "msp", "hta", "cpl", "jar", "ps1", "psm1", "lnk",
    "reg", "dll", NULL
  };

  for (guint i = 0; exts[i]; i++)
    if (g_ascii_strcasecmp (ext, exts[i]) == 0)
      return TRUE;
  return FALSE;
}

static gboolean
parser_walk_exec_type (const char *type)
{
  static const char *const types[] = {
    "application/x-executable", "application/x-msdownload",
    "application/x-ms-dos-executable", "application/x-msi",
    /* the same kinds under other shared-mime-info names */
    "application/x-sharedlib", "application/x-pie-executable",
    "application/x-dosexec", "application/x-msdos-program",
    "application/vnd.microsoft.portable-executable",
    "application/x-ms-shortcut", NULL
  };

  for (guint i = 0; types[i]; i++)
    if (g_ascii_strcasecmp (type, types[i]) == 0)
      return TRUE;
  return FALSE;
}

/* EXECUTABLE and DOUBLE_EXT from a cleaned name.  */
static guint
parser_walk_name_flags (const char *name)
{
  const char *dot = strrchr (name, '.');
  guint flags = 0;

  if (dot == NULL || !parser_walk_exec_ext (dot + 1))
    return 0;
  flags |= PARSER_ATT_EXECUTABLE;
  if (dot > name)
    {
      const char *prev = dot - 1;
      /* "invoice.pdf   .exe", "invoice.pdf..exe" */
      if (*prev == ' ' || *prev == '.')
        flags |= PARSER_ATT_DOUBLE_EXT;
      else
        {
          const char *p = prev;
          while (p > name && *p != '.' && g_ascii_isalnum (*p))
            p--;
          if (*p == '.' && p > name && p < prev)
            flags |= PARSER_ATT_DOUBLE_EXT;
        }
    }
  return flags;
}

/* Declared and detected types of different families: neither is a
 * subtype of the other (GIO knows aliases and sub-classes: a .docx is a
 * zip) and their top-level types differ.  application/octet-stream and an
 * empty body say nothing.  */
static gboolean
parser_walk_type_mismatch (const char *declared, const char *detected)
{
  const char *ds, *ts;

  if (*declared == '\0' || *detected == '\0'
      || strcmp (declared, "application/octet-stream") == 0
      || strcmp (detected, "application/octet-stream") == 0
      || strcmp (detected, "application/x-zerosize") == 0
      || g_ascii_strcasecmp (declared, detected) == 0)
    return FALSE;
  if (g_content_type_is_a (detected, declared)
      || g_content_type_is_a (declared, detected))
    return FALSE;
  ds = strchr (declared, '/');
  ts = strchr (detected, '/');
  if (ds == NULL || ts == NULL)
    return FALSE;
  return (ds - declared) != (ts - detected)
         || g_ascii_strncasecmp (declared, detected,
                                 (gsize) (ds - declared)) != 0;
}

/* ------------------------------------------------------------ attachments */

/* TRUE when @p[0..n) opens with a header field: a name of printable
 * ASCII other than ':' and a ':' on the first line.  No magic number of
 * an executable or archive looks like that.  */
static gboolean
parser_walk_opens_with_field (const guint8 *p, gsize n)
{
  gsize i = 0;

  while (i < n && p[i] > 0x20 && p[i] < 0x7f && p[i] != ':')
    i++;
  return i > 0 && i < n && p[i] == ':';
}

/* Add an attachment; takes @content.  @detected (nullable): the type the
 * caller already knows the content to be, instead of sniffing it.  */
static parser_attachment *
parser_walk_attach (parser_walk *w, GBytes *content, const char *declared,
                    const char *detected, const char *raw_name,
                    const char *content_id, guint flags, gboolean name_cut)
{
  parser_message *m = w->m;
  parser_attachment *a;
  gboolean changed;
  gsize n;
  const guint8 *data;

  if (m->attachments->len >= PARSER_LIMIT_PARTS)
    {
      if (w->atts_dropped++ == 0)
        parser_walk_note (w, "more than %d attachments: the rest were not "
                          "kept", PARSER_LIMIT_PARTS);
      m->anomalies |= PARSER_ANOMALY_PARTS;
      g_bytes_unref (content);
      return NULL;
    }
  a = g_new0 (parser_attachment, 1);
  a->name = parser_walk_safe_name (raw_name, m->attachments->len + 1,
                                   &changed);
  if (changed || name_cut)
    {
      flags |= PARSER_ATT_NAME_CLEANED;
      m->anomalies |= PARSER_ANOMALY_FILENAME;
    }
  a->declared_type = parser_walk_lower (declared && *declared
                                        ? declared
                                        : "application/octet-stream");
  {
    g_autofree char *clean = parser_clean_text (a->declared_type, -1, 255);
    g_free (a->declared_type);
    a->declared_type = g_steal_pointer (&clean);
  }
  data = g_bytes_get_data (content, &n);
  if (detected != NULL)
    a->detected_type = g_strdup (detected);
  else
    a->detected_type = parser_sniff_type (data,
                                          MIN (n, PARSER_MESSAGE_SNIFF_BYTES));
  if (a->detected_type == NULL)
    a->detected_type = g_strdup ("application/octet-stream");
  a->size = n;
  parser_sha256_hex (data, n, a->sha256);
  a->content = content;
  a->content_id = content_id && *content_id
                      ? parser_clean_text (content_id, -1, 998) : NULL;

  flags |= parser_walk_name_flags (a->name);
  if (parser_walk_exec_type (a->detected_type))
    flags |= PARSER_ATT_EXECUTABLE;
  if (!(flags & PARSER_ATT_FORWARDED)
      && parser_walk_type_mismatch (a->declared_type, a->detected_type))
    flags |= PARSER_ATT_TYPE_MISMATCH;
  a->flags = flags;
  g_ptr_array_add (m->attachments, a);
  return a;
}

/* (transfer full) The decoded bytes of a part, from @ba (taken), cut to
 * the message's budget.  Nothing decoded: no bytes at all, as the array
 * that never grew gave (GIO sniffs an empty buffer as
 * application/x-zerosize, and a NULL one not at all).  */
static GBytes *
parser_walk_decoded (parser_walk *w, GByteArray *ba)
{
  if (ba->len == 0)
    {
      g_byte_array_unref (ba);
      return g_bytes_new (NULL, 0);
    }
  g_byte_array_set_size (ba, (guint) parser_walk_budget (w, ba->len));
  return g_byte_array_free_to_bytes (ba);
}

/* The bytes a plain data wrapper reads from GMime's memory stream (every
 * part GMime's parser makes from intake's bytes): its bounds within the
 * stream's array, cut to the array.  FALSE for any other wrapper or
 * stream.  */
static gboolean
parser_walk_mem_span (GMimeDataWrapper *dw, const guint8 **p, gsize *n)
{
  GMimeStream *in = dw->stream;
  GByteArray *src;
  gint64 start, end;

  if (G_OBJECT_TYPE (dw) != GMIME_TYPE_DATA_WRAPPER || in == NULL
      || G_OBJECT_TYPE (in) != GMIME_TYPE_STREAM_MEM)
    return FALSE;
  src = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (in));
  start = in->bound_start;
  end = in->bound_end;
  if (src == NULL || start < 0 || (gint64) src->len < start)
    return FALSE;
  if (end < 0 || end > (gint64) src->len)
    end = src->len;
  if (end < start)
    end = start;
  *p = src->data + start;
  *n = (gsize) (end - start);
  return TRUE;
}

/* (transfer full) A part's decoded content (transfer encoding undone by
 * its data wrapper; nothing re-encoded), within the decoded budget.
 * @borrow: the caller drops the bytes before the GMime tree goes, so a
 * part with no encoding may be handed over in place, not copied.  */
static GBytes *
parser_walk_decode (parser_walk *w, GMimePart *part, gboolean borrow)
{
  GMimeDataWrapper *dw = g_mime_part_get_content (part);
  GMimeStream *out;
  GByteArray *ba;
  gsize reserve;
  const guint8 *p;
  gsize n;

  if (dw == NULL)
    return g_bytes_new (NULL, 0);
  /* No transfer encoding to undo (7bit, 8bit, binary, none or unknown:
   * GMime's write_to_stream copies the stream as it is): the bytes are
   * the wrapper's memory stream between its bounds, taken without a
   * filter stream, an output stream and its growing array.  Base64 and
   * quoted-printable from the same memory stream: undone in one call
   * over those bytes (parser_transfer.h), with the bytes GMime's filter
   * stream gives.  */
  if (parser_walk_mem_span (dw, &p, &n))
    switch (dw->encoding)
      {
      case GMIME_CONTENT_ENCODING_UUENCODE:
        break;          /* GMime's filter finds the "begin" line */
      case GMIME_CONTENT_ENCODING_BASE64:
        ba = g_byte_array_sized_new ((guint) PARSER_TRANSFER_BASE64_ROOM (n));
        ba->len = (guint) parser_transfer_base64 (p, n, ba->data);
        return parser_walk_decoded (w, ba);
      case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
        ba = g_byte_array_sized_new ((guint) n);
        ba->len = (guint) parser_transfer_qp (p, n, ba->data);
        return parser_walk_decoded (w, ba);
      default:
        n = parser_walk_budget (w, n);
        /* an empty part stays NULL bytes, as g_bytes_new() gives */
        return borrow && n > 0 ? g_bytes_new_static (p, n)
                               : g_bytes_new (p, n);
      }
  /* Base64 and uuencode give at most 3 bytes for every 4 they are sent
   * as: the array is made about that big at once, instead of growing by
   * doubling and copying what it holds at each step (for a 36 KB
   * attachment, 54,000 instructions of realloc and copying).  A guess too
   * small only means the array grows as before.  */
  reserve = 0;
  if ((dw->encoding == GMIME_CONTENT_ENCODING_BASE64
       || dw->encoding == GMIME_CONTENT_ENCODING_UUENCODE)
      && dw->stream != NULL)
    {
      gint64 sent = g_mime_stream_length (dw->stream);

      if (sent > 0)
        reserve = (gsize) MIN (sent / 4 * 3 + 4, PARSER_LIMIT_DECODED);
    }
  out = g_mime_stream_mem_new_with_byte_array (
      g_byte_array_sized_new ((guint) reserve));
  g_mime_data_wrapper_write_to_stream (dw, out);
  ba = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (out));
  g_mime_stream_mem_set_owner (GMIME_STREAM_MEM (out), FALSE);
  g_object_unref (out);
  return parser_walk_decoded (w, ba);
}

/* A parameter among the first PARSER_LIMIT_PARAMS of @list.  */
static const char *
parser_walk_param (parser_walk *w, GMimeParamList *list, const char *name)
{
  int n = list ? g_mime_param_list_length (list) : 0;

  if (n > PARSER_LIMIT_PARAMS)
    {
      w->m->anomalies |= PARSER_ANOMALY_PARAMS;
      if (!w->noted_params)
        parser_walk_note (w, "%d parameters on one header: only the first "
                          "%d read", n, PARSER_LIMIT_PARAMS);
      w->noted_params = TRUE;
      n = PARSER_LIMIT_PARAMS;
    }
  for (int i = 0; i < n; i++)
    {
      GMimeParam *p = g_mime_param_list_get_parameter_at (list, i);
      if (g_ascii_strcasecmp (g_mime_param_get_name (p), name) == 0)
        return g_mime_param_get_value (p);
    }
  return NULL;
}

static const char *
parser_walk_raw_header (GMimeObject *o, const char *name)
{
  GMimeHeaderList *hl = g_mime_object_get_header_list (o);
  GMimeHeader *h = hl ? g_mime_header_list_get_header (hl, name) : NULL;

  return h ? g_mime_header_get_raw_value (h) : NULL;
}

/* RFC 2231 "%00" in a name parameter: GMime's C string ends there, so
 * what follows was cut (SECURITY-TESTS 65, "a.pdf%00.exe").  */
static gboolean
parser_walk_name_nul (const char *raw)
{
  return raw != NULL && strstr (raw, "%00") != NULL;
}

/* (transfer full) @s without its "%00"s.  */
static char *
parser_walk_drop_nul (const char *s)
{
  GString *out = g_string_new (NULL);

  for (const char *p = s; *p; p++)
    {
      if (p[0] == '%' && p[1] == '0' && p[2] == '0')
        p += 2;
      else
        g_string_append_c (out, *p);
    }
  return g_string_free (out, FALSE);
}

/* (transfer full) A raw Content-Type read again by GMime, or NULL when
 * GMime's own reading stands: as parser_walk_fix_raw() gives it (B words
 * made Q, F3; bad UTF-8 repaired, F5, F11), "%00"s dropped
 * when @drop_nul (F9), and a type without a subtype (F4, "text;
 * charset=us-ascii", "application-pdf; name=x") read as text/plain when it
 * is "text", else application/octet-stream, its parameters kept (GMime
 * drops them with the type).  *@no_subtype tells the last.  */
static GMimeContentType *
parser_walk_reparse_ct (parser_walk *w, const char *raw, gboolean drop_nul,
                        gboolean gmime_default, gboolean *no_subtype)
{
  g_autofree char *q = parser_walk_fix_raw (w, raw);
  g_autofree char *nonul = NULL;
  g_autofree char *fixed = NULL;
  const char *v, *p, *tok;

  *no_subtype = FALSE;
  if (raw == NULL)
    return NULL;
  v = q ? q : raw;
  if (drop_nul)
    v = nonul = parser_walk_drop_nul (v);
  for (p = v; g_ascii_isspace (*p); p++)
    ;
  tok = p;
  while (g_ascii_isalnum (*p) || (*p && strchr ("!#$%&'*+-.^_`|~", *p)))
    p++;
  if (gmime_default && p > tok && (*p == '\0' || *p == ';'
                                   || g_ascii_isspace (*p)))
    {
      const char *rest = p;
      while (g_ascii_isspace (*rest))
        rest++;
      if (*rest != '/')
        {
          gboolean text = (gsize) (p - tok) == 4
                          && g_ascii_strncasecmp (tok, "text", 4) == 0;
          *no_subtype = TRUE;
          v = fixed = g_strconcat (text ? "text/plain"
                                        : "application/octet-stream",
                                   strchr (p, ';') ? strchr (p, ';') : "",
                                   NULL);
        }
    }
  if (q == NULL && !drop_nul && !*no_subtype)
    return NULL;
  return g_mime_content_type_parse (parser_walk_quiet (w), v);
}

/* (transfer full) A raw Content-Disposition read again, as above
 * (parser_walk_fix_raw(), "%00"s dropped when @drop_nul), or NULL when
 * nothing changes.  */
static GMimeContentDisposition *
parser_walk_reparse_cd (parser_walk *w, const char *raw, gboolean drop_nul)
{
  g_autofree char *q = parser_walk_fix_raw (w, raw);
  g_autofree char *nonul = NULL;

  if (raw == NULL || (q == NULL && !drop_nul))
    return NULL;
  if (drop_nul)
    nonul = parser_walk_drop_nul (q ? q : raw);
  return g_mime_content_disposition_parse (parser_walk_quiet (w),
                                           nonul ? nonul : q);
}

/* ------------------------------------------------------------ uuencode */

#define PARSER_UU_DEC(c) (((c) - ' ') & 0x3f)

static gboolean
parser_walk_uu_line (const char *line, gsize len, GByteArray *out)
{
  gsize n, need;
  const char *p;

  while (len > 0 && (line[len - 1] == '\r'))
    len--;
  if (len == 0)
    return FALSE;
  n = PARSER_UU_DEC (line[0]);
  need = (n + 2) / 3 * 4;
  if (len - 1 < need)
    return FALSE;                     /* bad length line (GMime 3fb8f529) */
  for (gsize i = 1; i <= need; i++)
    if (line[i] < ' ' || line[i] > '`')
      return FALSE;
  p = line + 1;
  while (n > 0)
    {
      guint8 b[3];
      b[0] = (guint8) (PARSER_UU_DEC (p[0]) << 2 | PARSER_UU_DEC (p[1]) >> 4);
      b[1] = (guint8) (PARSER_UU_DEC (p[1]) << 4 | PARSER_UU_DEC (p[2]) >> 2);
      b[2] = (guint8) (PARSER_UU_DEC (p[2]) << 6 | PARSER_UU_DEC (p[3]));
      g_byte_array_append (out, b, MIN (n, 3));
      n -= MIN (n, 3);
      p += 4;
    }
  return TRUE;
}

/* "begin 644 name": the name (transfer full) or NULL.  */
static char *
parser_walk_uu_begin (const char *line, gsize len)
{
  gsize i = 6, digits = 0;

  if (len < 8 || strncmp (line, "begin ", 6) != 0)
    return NULL;
  while (i < len && line[i] >= '0' && line[i] <= '7')
    i++, digits++;
  if (digits < 3 || digits > 4 || i >= len || line[i] != ' ')
    return NULL;
  return g_strndup (line + i + 1, len - i - 1);
}

/* Inline uuencoded files in a plain text part become attachments
 * (PARSER_ATT_FROM_UUENCODE) and leave the text; a broken block stays in
 * the text and sets PARSER_ANOMALY_UUENCODE.  Takes @text (transfer
 * full) and gives it back as it is when it has no "begin " line, else a
 * new text (transfer full).  */
static char *
parser_walk_uuencode (parser_walk *w, char *text, guint att_flags)
{
  g_autofree char *owned = text;
  GString *out;
  const char *p = text;

  if (strstr (text, "begin ") == NULL)
    return g_steal_pointer (&owned);
  out = g_string_sized_new (strlen (text));
  while (*p)
    {
      const char *eol = strchr (p, '\n');
      gsize len = eol ? (gsize) (eol - p) : strlen (p);
      const char *next = eol ? eol + 1 : p + len;
      g_autofree char *name = parser_walk_uu_begin (p, len);

      if (name != NULL)
        {
          GByteArray *data = g_byte_array_new ();
          const char *q = next;
          gboolean ok = FALSE;

          while (*q)
            {
              const char *qe = strchr (q, '\n');
              gsize ql = qe ? (gsize) (qe - q) : strlen (q);
              const char *qn = qe ? qe + 1 : q + ql;
              gsize tl = ql;

              while (tl > 0 && (q[tl - 1] == ' ' || q[tl - 1] == '\r'))
                tl--;
              if (tl == 3 && strncmp (q, "end", 3) == 0)
                {
                  ok = TRUE;
                  next = qn;
                  break;
                }
              if (!parser_walk_uu_line (q, ql, data))
                break;
              q = qn;
            }
          if (ok)
            {
              gsize keep = parser_walk_budget (w, data->len);
              g_strstrip (name);
              g_byte_array_set_size (data, (guint) keep);
              parser_walk_attach (w, g_byte_array_free_to_bytes (data),
                                  "application/octet-stream", NULL, name, NULL,
                                  att_flags | PARSER_ATT_FROM_UUENCODE,
                                  FALSE);
              p = next;
              continue;
            }
          g_byte_array_unref (data);
          w->m->anomalies |= PARSER_ANOMALY_UUENCODE;
          parser_walk_note (w, "broken uuencoded block kept in the text");
        }
      g_string_append_len (out, p, (gssize) (next - p));
      p = next;
    }
  return g_string_free (out, FALSE);
}

/* ------------------------------------------------------------ text */

/* Adds @piece (taken: g_malloc'd) to @acc's text.  */
static void
parser_walk_text_add (parser_walk *w, parser_walk_text *acc, char *piece,
                      gboolean html)
{
  gsize len;

  len = strlen (piece);
  while (len > 0 && g_ascii_isspace (piece[len - 1]))
    len--;
  piece[len] = '\0';
  if (len == 0 || acc->full)
    {
      g_free (piece);
      return;
    }
  if (html)
    acc->any_html = TRUE;
  else
    acc->any_plain = TRUE;
  if (acc->text->len > 0)
    {
      g_string_append (acc->text, "\n\n");
      g_string_append_len (acc->text, piece, (gssize) len);
      g_free (piece);
    }
  else
    {
      /* the first piece (most messages have one) becomes the text's
       * buffer instead of being copied into it: GString's fields are
       * public, and str is g_malloc'd of at least len + 1 bytes (GLib
       * 2.78's g_string_new_take() does the same) */
      g_free (acc->text->str);
      acc->text->str = piece;
      acc->text->len = len;
      acc->text->allocated_len = len + 1;
    }
  if (parser_walk_cut (acc->text, PARSER_LIMIT_TEXT))
    {
      acc->full = TRUE;
      w->m->anomalies |= PARSER_ANOMALY_TRUNCATED_TEXT;
      parser_walk_note (w, "text over %d bytes cut", PARSER_LIMIT_TEXT);
    }
}

static gboolean
parser_walk_is_body_text (const char *type, const char *subtype)
{
  return g_ascii_strcasecmp (type, "text") == 0
         && (g_ascii_strcasecmp (subtype, "plain") == 0
             || g_ascii_strcasecmp (subtype, "html") == 0
             || g_ascii_strcasecmp (subtype, "enriched") == 0
             || g_ascii_strcasecmp (subtype, "richtext") == 0);
}

static void
parser_walk_text_part (parser_walk *w, GMimePart *part, GMimeContentType *ct,
                       guint att_flags, parser_walk_text *acc)
{
  GMimeParamList *params = g_mime_content_type_get_parameters (ct);
  const char *subtype = g_mime_content_type_get_media_subtype (ct);
  const char *charset = parser_walk_param (w, params, "charset");
  const char *format = parser_walk_param (w, params, "format");
  const char *delsp = parser_walk_param (w, params, "delsp");
  /* dropped at the end of this function: the tree is still there */
  g_autoptr (GBytes) content = parser_walk_decode (w, part, TRUE);
  gsize n;
  const guint8 *data = g_bytes_get_data (content, &n);
  gboolean cut = FALSE;
  g_autofree char *utf8 = NULL;
  char *piece;
  gboolean html = g_ascii_strcasecmp (subtype, "html") == 0;

  utf8 = parser_walk_to_utf8 (w, data, n, charset, PARSER_LIMIT_TEXT, &cut);
  if (cut)
    {
      w->m->anomalies |= PARSER_ANOMALY_TRUNCATED_TEXT;
      parser_walk_note (w, "a text part over %d bytes was cut",
                        PARSER_LIMIT_TEXT);
    }
  if (html)
    piece = parser_html_to_text (utf8, strlen (utf8));
  else if (format != NULL && g_ascii_strcasecmp (format, "flowed") == 0)
    {
      g_autofree char *flowed = parser_flowed_decode (
          utf8, delsp != NULL && g_ascii_strcasecmp (delsp, "yes") == 0);
      piece = parser_walk_uuencode (w, g_steal_pointer (&flowed), att_flags);
    }
  else
    piece = parser_walk_uuencode (w, g_steal_pointer (&utf8), att_flags);
  parser_walk_text_add (w, acc, piece, html);
}

/* ------------------------------------------------------------ reports */

typedef void (*parser_walk_field_fn) (parser_walk *w, const char *name,
                                      gsize name_len, const char *value,
                                      gpointer data);

/* Header-style fields of a part body (message/delivery-status,
 * text/rfc822-headers): "Name: value" with folded continuation lines,
 * values cleaned and at most PARSER_MESSAGE_FIELD_MAX bytes.  */
static void
parser_walk_fields (parser_walk *w, GBytes *content, parser_walk_field_fn fn,
                    gpointer data)
{
  gsize n;
  const char *p = g_bytes_get_data (content, &n);
  const char *end;

  if (p == NULL || n == 0)
    return;
  end = p + n;
  while (p < end)
    {
      const char *eol = memchr (p, '\n', (gsize) (end - p));
      const char *le = eol ? eol : end;
      const char *next = eol ? eol + 1 : end;
      const char *colon = memchr (p, ':', (gsize) (le - p));

      if (colon != NULL && colon > p && !g_ascii_isspace (*p))
        {
          GString *v = g_string_new_len (colon + 1, le - colon - 1);
          g_autofree char *clean = NULL;
          gsize name_len = (gsize) (colon - p);

          while (next < end && (*next == ' ' || *next == '\t'))
            {
              const char *e2 = memchr (next, '\n', (gsize) (end - next));
              const char *l2 = e2 ? e2 : end;
              if (v->len < PARSER_MESSAGE_FIELD_MAX)
                g_string_append_len (v, next, l2 - next);
              next = e2 ? e2 + 1 : end;
            }
          while (name_len > 0 && g_ascii_isspace (p[name_len - 1]))
            name_len--;
          clean = parser_clean_text (v->str, (gssize) MIN (v->len,
                                                           PARSER_MESSAGE_FIELD_MAX
                                                           + 8),
                                     PARSER_MESSAGE_FIELD_MAX);
          g_strstrip (clean);
          fn (w, p, name_len, clean, data);
          g_string_free (v, TRUE);
        }
      p = next;
    }
}

static gboolean
parser_walk_field_is (const char *name, gsize len, const char *want)
{
  return len == strlen (want) && g_ascii_strncasecmp (name, want, len) == 0;
}

typedef struct {
  char *orig;
  char *final;
} parser_walk_rcpt;

static void
parser_walk_report_field (parser_walk *w, const char *name, gsize len,
                          const char *value, gpointer data)
{
  parser_message *m = w->m;
  parser_walk_rcpt *r = data;

  if (*value == '\0')
    return;
  if (parser_walk_field_is (name, len, "Status") && m->report_status == NULL)
    m->report_status = g_strndup (value, strcspn (value, " \t("));
  else if ((parser_walk_field_is (name, len, "Original-Recipient")
            && r->orig == NULL)
           || (parser_walk_field_is (name, len, "Final-Recipient")
               && r->final == NULL))
    {
      /* "rfc822; addr": the address type is dropped (RFC 3464 2.3.1) */
      const char *semi = strchr (value, ';');
      char *addr = g_strstrip (g_strdup (semi ? semi + 1 : value));
      if (*addr == '\0')
        g_free (addr);
      else if (name[1] == 'r' || name[1] == 'R')
        r->orig = addr;
      else
        r->final = addr;
    }
  else if (parser_walk_field_is (name, len, "Original-Message-ID")
           && m->report_message_id == NULL)
    {
      g_autofree char *id = g_mime_utils_decode_message_id (value);
      if (id && *id)
        m->report_message_id = parser_clean_text (id, -1, 998);
    }
}

/* message/delivery-status (RFC 3464) or message/disposition-notification
 * (RFC 8098): the first Status, the first recipient, the original
 * Message-ID.  */
static void
parser_walk_report_fields (parser_walk *w, GBytes *content)
{
  parser_walk_rcpt r = { NULL, NULL };

  parser_walk_fields (w, content, parser_walk_report_field, &r);
  if (w->m->report_recipient == NULL && (r.orig || r.final))
    w->m->report_recipient = g_strdup (r.orig ? r.orig : r.final);
  g_free (r.orig);
  g_free (r.final);
}

static void
parser_walk_headers_field (parser_walk *w, const char *name, gsize len,
                           const char *value, gpointer data)
{
  if (parser_walk_field_is (name, len, "Message-ID")
      && w->m->report_message_id == NULL)
    {
      g_autofree char *id = g_mime_utils_decode_message_id (value);
      if (id && *id)
        w->m->report_message_id = parser_clean_text (id, -1, 998);
    }
}

/* text/rfc822-headers: the original Message-ID.  */
static void
parser_walk_report_headers (parser_walk *w, GBytes *content)
{
  parser_walk_fields (w, content, parser_walk_headers_field, NULL);
}

/* ------------------------------------------------------------ TNEF */

/* (transfer full) A TNEF string property: libytnef gives PT_UNICODE as
 * UTF-8 already and PT_STRING8 in the sender's code page; both end at the
 * first NUL.  */
static char *
parser_walk_tnef_string (const variableLength *v)
{
  gsize n;
  g_autofree char *s = NULL;

  if (v == NULL || v == MAPI_UNDEFINED || v->data == NULL || v->size <= 0)
    return NULL;
  n = strnlen ((const char *) v->data, (gsize) v->size);
  if (n == 0)
    return NULL;
  if (g_utf8_validate ((const char *) v->data, (gssize) n, NULL))
    return g_strndup ((const char *) v->data, n);
  s = g_convert ((const char *) v->data, (gssize) n, "UTF-8", "CP1252", NULL,
                 NULL, NULL);
  return s ? g_steal_pointer (&s) : g_utf8_make_valid ((const char *) v->data,
                                                       (gssize) n);
}

static char *
parser_walk_tnef_name (Attachment *a)
{
  static const unsigned int tags[] = {
    PROP_TAG (PT_UNICODE, PR_ATTACH_LONG_FILENAME),
    PROP_TAG (PT_STRING8, PR_ATTACH_LONG_FILENAME),
    PROP_TAG (PT_UNICODE, PR_ATTACH_FILENAME),
    PROP_TAG (PT_STRING8, PR_ATTACH_FILENAME),
    PROP_TAG (PT_UNICODE, PR_DISPLAY_NAME),
    PROP_TAG (PT_STRING8, PR_DISPLAY_NAME),
  };

  for (guint i = 0; i < G_N_ELEMENTS (tags); i++)
    {
      char *s = parser_walk_tnef_string (MAPIFindProperty (&a->MAPI, tags[i]));
      if (s != NULL)
        return s;
    }
  return parser_walk_tnef_string (&a->Title);
}

/* TNEF attributes are level (1), id (4), length (4), data, checksum (2:
 * the sum of the data bytes).  Some writers get the checksum wrong and
 * libytnef then refuses the whole stream; the framing is walked here and
 * each checksum recomputed, so a bad one costs nothing but a note.  An
 * attribute of length 0 (an empty transport file name, say: F10,
 * data-before-name.tnef) also makes libytnef refuse everything ("Field
 * with size of 0"); it carries nothing and is dropped from the copy, whose
 * length *@n shrinks.  With @drop_msgprops the message's own MAPI
 * properties (attMsgProps, level 1) go too: the retry when libytnef
 * refused them (a property name over its 100-byte cap: F10,
 * christmas.tnef), so that the files can still be read.  Stops at the
 * first attribute that does not fit.  Returns how many checksums were
 * rewritten; *@empty gets how many attributes were dropped.  */
/* The TNEF checksum of @n bytes: their sum modulo 65536.  Eight bytes at
 * a time: each 64-bit word is folded into four 16-bit lanes of byte
 * pairs (each at most 510), added up for at most 128 words so that no
 * lane overflows, then the lanes are added together.  */
static guint16
parser_walk_tnef_sum (const guint8 *p, gsize n)
{
  const guint64 lo = 0x00ff00ff00ff00ffULL;
  guint64 total = 0;
  gsize i = 0;

  while (n - i >= 8)
    {
      guint64 lanes = 0;

      for (guint k = 0; k < 128 && n - i >= 8; k++, i += 8)
        {
          guint64 x;

          memcpy (&x, p + i, 8);
          lanes += (x & lo) + ((x >> 8) & lo);
        }
      total += (lanes & 0xffff) + ((lanes >> 16) & 0xffff)
               + ((lanes >> 32) & 0xffff) + (lanes >> 48);
    }
  for (; i < n; i++)
    total += p[i];
  return (guint16) total;
}

static guint
parser_walk_tnef_checksums (guint8 *d, gsize *n, guint *empty,
                            gboolean drop_msgprops)
{
  gsize p = 6;                  /* signature (4), key (2) */
  guint fixed = 0;

  *empty = 0;
  while (p + 9 <= *n)
    {
      guint32 len = (guint32) d[p + 5] | (guint32) d[p + 6] << 8
                    | (guint32) d[p + 7] << 16 | (guint32) d[p + 8] << 24;
      guint16 sum = 0, had;

      if (len > *n - p - 9 || *n - p - 9 - len < 2)
        break;
      if (len == 0
          || (drop_msgprops && d[p] == 1 && d[p + 1] == 0x03
              && d[p + 2] == 0x90 && d[p + 3] == 0x06 && d[p + 4] == 0x00))
        {
          /* attMsgProps is 0x00069003 */
          memmove (d + p, d + p + 11 + len, *n - p - 11 - len);
          *n -= 11 + (gsize) len;
          (*empty)++;
          continue;
        }
      sum = parser_walk_tnef_sum (d + p + 9, len);
      had = (guint16) (d[p + 9 + len] | d[p + 10 + len] << 8);
      if (had != sum)
        {
          d[p + 9 + len] = (guint8) (sum & 0xff);
          d[p + 10 + len] = (guint8) (sum >> 8);
          fixed++;
        }
      p += 9 + (gsize) len + 2;
    }
  return fixed;
}

/* Decode winmail.dat with libytnef: each file inside becomes an attachment
 * (PARSER_ATT_FROM_TNEF, same name cleaning: SECURITY-TESTS 66), the body
 * (PR_BODY) is kept for a message without other text.  FALSE when
 * libytnef refuses it or nothing was inside; the caller then keeps
 * winmail.dat whole and flags TNEF.  When libytnef stops part of the way
 * (its own size limits: a property over 512 KiB, a property name over 100
 * bytes; or bytes it cannot frame: F10) the files it had read whole are
 * still attached, so they are checked like any other, and FALSE is
 * returned: winmail.dat is kept too, for what was not read.  */
static gboolean
parser_walk_tnef (parser_walk *w, GBytes *content, guint att_flags,
                  parser_walk_text *acc)
{
  gsize n;
  const guint8 *data = g_bytes_get_data (content, &n);
  g_autofree guint8 *copy = NULL;
  TNEFStruct tnef;
  guint found = 0, fixed, empty;
  char *body = NULL;
  int rc, rc_props = 0;
  gsize full = n;

  if (n < 6 || n > G_MAXINT32)
    return FALSE;
  copy = g_memdup2 (data, n);
  fixed = parser_walk_tnef_checksums (copy, &n, &empty, FALSE);
  TNEFInitialize (&tnef);
  tnef.Debug = 0;
  rc = TNEFParseMemory (copy, (long) n, &tnef);
  if (rc != 0)
    {
      /* again without the message's own properties, if it has some */
      guint empty2 = 0;
      gsize n2 = full;

      memcpy (copy, data, full);
      parser_walk_tnef_checksums (copy, &n2, &empty2, TRUE);
      if (empty2 > empty)
        {
          TNEFFree (&tnef);
          TNEFInitialize (&tnef);
          tnef.Debug = 0;
          rc_props = rc;
          rc = TNEFParseMemory (copy, (long) n2, &tnef);
        }
    }
  if (rc != 0)
    {
      guint part = 0;

      /* libytnef fills an Attachment as it reads its attributes: those
       * before the one it choked on are whole (it allocates each to its
       * announced size); one without data yet is skipped below.  */
      for (Attachment *a = tnef.starting_attach.next; a != NULL; a = a->next)
        if (a->FileData.size > 0 && a->FileData.data != NULL)
          {
            g_autofree char *name = parser_walk_tnef_name (a);
            gsize keep = parser_walk_budget (w, (gsize) a->FileData.size);
            GBytes *bytes = g_bytes_new (a->FileData.data, keep);

            parser_walk_attach (w, bytes, NULL, NULL, name, NULL,
                                att_flags | PARSER_ATT_FROM_TNEF, FALSE);
            part++;
          }
      TNEFFree (&tnef);
      if (part > 0)
        parser_walk_note (w, "TNEF (winmail.dat) read in part by libytnef "
                          "(error %d): %u file%s taken, winmail.dat kept "
                          "as it is too", rc, part, part == 1 ? "" : "s");
      else
        parser_walk_note (w, "TNEF (winmail.dat) refused by libytnef (error "
                          "%d): kept as it is", rc);
      return FALSE;
    }
  if (rc_props != 0)
    parser_walk_note (w, "TNEF (winmail.dat): libytnef refused the "
                      "message properties (error %d); files read without "
                      "them, winmail.dat kept as it is too", rc_props);
  else if (empty > 0)
    parser_walk_note (w, "TNEF: %u empty attribute%s dropped", empty,
                      empty == 1 ? "" : "s");
  for (Attachment *a = tnef.starting_attach.next; a != NULL; a = a->next)
    {
      variableLength *v = &a->FileData;
      gsize skip = 0;
      g_autofree char *name = NULL;
      g_autofree char *mime = NULL;
      GBytes *bytes;
      gsize keep;

      if (v->size <= 0 || v->data == NULL)
        {
          v = MAPIFindProperty (&a->MAPI,
                                PROP_TAG (PT_BINARY, PR_ATTACH_DATA_OBJ));
          if (v == MAPI_UNDEFINED)
            {
              /* an embedded object: a 16-byte IID, then the data */
              v = MAPIFindProperty (&a->MAPI,
                                    PROP_TAG (PT_OBJECT, PR_ATTACH_DATA_OBJ));
              skip = 16;
            }
        }
      name = parser_walk_tnef_name (a);
      if (v == MAPI_UNDEFINED || v == NULL || v->data == NULL
          || v->size <= (int) skip)
        {
          /* A named file of no bytes (its data attribute was empty:
           * data-before-name.tnef's AUTOEXEC.BAT) is still a file the
           * sender attached, and its name is checked like any other.  */
          if (name == NULL)
            continue;
          parser_walk_attach (w, g_bytes_new (NULL, 0), NULL, NULL, name,
                              NULL, att_flags | PARSER_ATT_FROM_TNEF, FALSE);
          found++;
          continue;
        }
      mime = parser_walk_tnef_string (
          MAPIFindProperty (&a->MAPI, PROP_TAG (PT_STRING8, PR_ATTACH_MIME_TAG)));
      keep = parser_walk_budget (w, (gsize) v->size - skip);
      bytes = g_bytes_new (v->data + skip, keep);
      parser_walk_attach (w, bytes, mime, NULL, name, NULL,
                          att_flags | PARSER_ATT_FROM_TNEF, FALSE);
      found++;
    }
  if (tnef.body.size > 0 && tnef.body.data != NULL)
    body = parser_walk_tnef_string (&tnef.body);
  if (body == NULL)
    body = parser_walk_tnef_string (MAPIFindProperty (
        &tnef.MapiProperties, PROP_TAG (PT_UNICODE, PR_BODY)));
  if (body == NULL)
    body = parser_walk_tnef_string (MAPIFindProperty (
        &tnef.MapiProperties, PROP_TAG (PT_STRING8, PR_BODY)));
  if (body == NULL)
    {
      g_autofree char *html = parser_walk_tnef_string (MAPIFindProperty (
          &tnef.MapiProperties, PROP_TAG (PT_BINARY, PR_BODY_HTML)));
      if (html == NULL)
        html = parser_walk_tnef_string (MAPIFindProperty (
            &tnef.MapiProperties, PROP_TAG (PT_STRING8, PR_BODY_HTML)));
      if (html != NULL)
        body = parser_html_to_text (html, strlen (html));
    }
  TNEFFree (&tnef);
  if (body != NULL && acc->tnef_body == NULL)
    {
      gboolean cut;
      acc->tnef_body = parser_walk_to_utf8 (w, (const guint8 *) body,
                                            strlen (body), "utf-8",
                                            PARSER_LIMIT_TEXT, &cut);
      found++;
    }
  g_free (body);
  if (found == 0)
    parser_walk_note (w, "TNEF (winmail.dat) holds no file and no plain "
                      "or HTML body: kept as it is");
  if (found > 0 && fixed > 0)
    parser_walk_note (w, "TNEF: %u attribute checksum%s did not match; read "
                      "anyway", fixed, fixed == 1 ? "" : "s");
  /* read without the message properties: something was not read, so
   * winmail.dat is kept and flagged by the caller */
  return found > 0 && rc_props == 0;
}

static gboolean
parser_walk_is_tnef (const char *type, const char *subtype, const char *name)
{
  return (g_ascii_strcasecmp (type, "application") == 0
          && (g_ascii_strcasecmp (subtype, "ms-tnef") == 0
              || g_ascii_strcasecmp (subtype, "vnd.ms-tnef") == 0))
         || (name != NULL && g_ascii_strcasecmp (name, "winmail.dat") == 0);
}

/* ------------------------------------------------------------ ranges */

static gint64
parser_walk_header_extent (GMimeObject *o, gboolean want_max)
{
  GMimeHeaderList *hl = o ? g_mime_object_get_header_list (o) : NULL;
  int n = hl ? g_mime_header_list_get_count (hl) : 0;
  gint64 best = -1;

  for (int i = 0; i < n; i++)
    {
      gint64 off = g_mime_header_get_offset (g_mime_header_list_get_header_at (hl,
                                                                           i));
      if (off < 0)
        continue;
      if (best < 0 || (want_max ? off > best : off < best))
        best = off;
    }
  return best;
}

/* Largest end offset of any leaf content within @o, looking at no more
 * than PARSER_LIMIT_PARTS objects.  */
static gint64
parser_walk_content_end (GMimeObject *o, guint depth, guint *budget)
{
  gint64 best = -1;

  if (o == NULL || depth > PARSER_LIMIT_DEPTH || *budget == 0)
    return -1;
  (*budget)--;
  if (GMIME_IS_MULTIPART (o))
    {
      int n = g_mime_multipart_get_count (GMIME_MULTIPART (o));
      for (int i = 0; i < n && *budget > 0; i++)
        best = MAX (best, parser_walk_content_end (
                              g_mime_multipart_get_part (GMIME_MULTIPART (o), i),
                              depth + 1, budget));
    }
  else if (GMIME_IS_MESSAGE_PART (o))
    {
      GMimeMessage *msg = g_mime_message_part_get_message (GMIME_MESSAGE_PART (o));
      if (msg)
        best = parser_walk_content_end (g_mime_message_get_mime_part (msg),
                                        depth + 1, budget);
    }
  else if (GMIME_IS_PART (o))
    {
      GMimeDataWrapper *dw = g_mime_part_get_content (GMIME_PART (o));
      GMimeStream *s = dw ? g_mime_data_wrapper_get_stream (dw) : NULL;
      if (s != NULL)
        best = s->bound_end;
    }
  return best;
}

/* The first line at or after @from (a line start or not) that is a
 * delimiter of an enclosing multipart of this tree: "--" boundary, an
 * optional "--", then only white space.  -1 if none before @to.  */
static gssize
parser_walk_find_boundary (parser_walk *w, const parser_walk_buf *buf,
                           gsize from, gsize to)
{
  const char *d = (const char *) buf->data;
  gsize pos = from;

  if (w->n_bounds <= buf->bounds_base)
    return -1;
  if (pos > 0 && pos < to && d[pos - 1] != '\n')
    {
      const char *nl = memchr (d + pos, '\n', to - pos);
      if (nl == NULL)
        return -1;
      pos = (gsize) (nl - d) + 1;
    }
  while (pos < to)
    {
      const char *nl = memchr (d + pos, '\n', to - pos);
      gsize le = nl ? (gsize) (nl - d) : to;

      if (le - pos >= 2 && d[pos] == '-' && d[pos + 1] == '-')
        for (guint b = buf->bounds_base; b < w->n_bounds; b++)
          {
            gsize bl = strlen (w->bounds[b]);
            gsize q = pos + 2 + bl;
            if (q > le || memcmp (d + pos + 2, w->bounds[b], bl) != 0)
              continue;
            if (q + 2 <= le && d[q] == '-' && d[q + 1] == '-')
              q += 2;
            while (q < le && (d[q] == ' ' || d[q] == '\t' || d[q] == '\r'))
              q++;
            if (q == le)
              return (gssize) pos;
          }
      if (nl == NULL)
        break;
      pos = le + 1;
    }
  return -1;
}

/* Where a message/rfc822 part's content lies in @buf: after its own header
 * block (or, for a part without headers, at the inner message's first
 * header) up to the newline before the next delimiter of an enclosing
 * multipart, or @limit_end.  Offsets only: nothing is re-serialised.  */
static gboolean
parser_walk_part_range (parser_walk *w, GMimeObject *part, GMimeObject *owner,
                        GMimeMessage *inner, const parser_walk_buf *buf,
                        gsize limit_end, gsize *start, gsize *end)
{
  const char *d = (const char *) buf->data;
  gint64 last = parser_walk_header_extent (part, TRUE);
  gint64 s = -1, c;
  guint budget = PARSER_LIMIT_PARTS;
  gssize b;

  limit_end = MIN (limit_end, buf->len);
  if (owner != NULL)
    last = MAX (last, parser_walk_header_extent (owner, TRUE));
  if (last >= 0 && (gsize) last < limit_end)
    {
      gsize p = (gsize) last;
      s = (gint64) limit_end;
      while (p < limit_end)
        {
          const char *nl = memchr (d + p, '\n', limit_end - p);
          gsize q;
          if (nl == NULL)
            break;
          q = (gsize) (nl - d) + 1;
          if (q < limit_end && d[q] == '\n')
            {
              s = (gint64) q + 1;
              break;
            }
          if (q + 1 < limit_end && d[q] == '\r' && d[q + 1] == '\n')
            {
              s = (gint64) q + 2;
              break;
            }
          p = q;
        }
    }
  else if (inner != NULL)
    {
      gint64 a = parser_walk_header_extent (GMIME_OBJECT (inner), FALSE);
      gint64 bo = parser_walk_header_extent (g_mime_message_get_mime_part (inner),
                                             FALSE);
      s = a < 0 ? bo : bo < 0 ? a : MIN (a, bo);
    }
  if (s < 0 || (gsize) s > limit_end)
    return FALSE;
  c = inner ? parser_walk_content_end (GMIME_OBJECT (inner), 0, &budget) : -1;
  c = MAX (c, s);
  if ((gsize) c > limit_end)
    c = (gint64) limit_end;
  b = parser_walk_find_boundary (w, buf, (gsize) c, limit_end);
  *start = (gsize) s;
  if (b < 0)
    *end = limit_end;
  else
    {
      gsize e = (gsize) b;
      if (e > 0 && d[e - 1] == '\n')
        e--;
      if (e > 0 && d[e - 1] == '\r')
        e--;
      *end = MAX (e, *start);
    }
  return TRUE;
}

/* ------------------------------------------------------------ prescreen */

/* "Name:" at @p: printable ASCII without space up to a colon.  */
static gboolean
parser_walk_field_line (const guint8 *p, gsize len)
{
  gsize i = 0;

  while (i < len && p[i] > ' ' && p[i] < 0x7f && p[i] != ':')
    i++;
  return i > 0 && i < len && p[i] == ':';
}

static gsize
parser_walk_line_end (const guint8 *d, gsize n, gsize pos)
{
  const guint8 *nl = memchr (d + pos, '\n', n - pos);

  return nl ? (gsize) (nl - d) + 1 : n;
}

/* Remember the boundary parameter of a Content-Type field at @p in
 * *@bounds (made at the first one).  Only a 'C' and a 'b' are handed to
 * g_ascii_strncasecmp(): most fields and most bytes are neither.  */
static void
parser_walk_note_boundary (GHashTable **bounds, const guint8 *p, gsize len)
{
  static const char key[] = "boundary=";
  gsize i;

  if (len < 13 || (p[0] | 0x20) != 'c'
      || g_ascii_strncasecmp ((const char *) p, "Content-Type:", 13) != 0
      || (*bounds != NULL
          && g_hash_table_size (*bounds) >= PARSER_MESSAGE_DELIMITERS_MAX))
    return;
  for (i = 13; i + sizeof key - 1 < len; i++)
    if ((p[i] | 0x20) == 'b'
        && g_ascii_strncasecmp ((const char *) p + i, key, sizeof key - 1)
               == 0)
      {
        gsize v = i + sizeof key - 1, e;
        if (v < len && p[v] == '"')
          {
            v++;
            for (e = v; e < len && p[e] != '"'; e++)
              ;
          }
        else
          for (e = v; e < len && p[e] != ';' && !g_ascii_isspace (p[e]); e++)
            ;
        if (e > v && e - v <= PARSER_LIMIT_HEADER_VALUE)
          {
            if (*bounds == NULL)
              *bounds = g_hash_table_new_full (g_str_hash, g_str_equal,
                                               g_free, NULL);
            g_hash_table_add (*bounds,
                              g_strndup ((const char *) p + v, e - v));
          }
        return;
      }
}

/* A line "--" boundary ["--"] of a boundary declared before it (@bounds
 * NULL: none was).  */
static gboolean
parser_walk_is_delimiter (GHashTable *bounds, const guint8 *p, gsize len)
{
  g_autofree char *b = NULL;

  if (len < 3 || p[0] != '-' || p[1] != '-' || bounds == NULL
      || g_hash_table_size (bounds) == 0)
    return FALSE;
  while (len > 2 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
    len--;
  b = g_strndup ((const char *) p + 2, len - 2);
  if (g_hash_table_contains (bounds, b))
    return TRUE;
  if (len > 4 && p[len - 1] == '-' && p[len - 2] == '-')
    {
      b[len - 4] = '\0';
      return g_hash_table_contains (bounds, b);
    }
  return FALSE;
}

/* What GMime is given, in one linear pass over the raw bytes:
 *
 * - every header field longer than PARSER_MESSAGE_FIELD_CUT is cut, in
 *   the header blocks such a pass can see: the top, after a line that
 *   starts with "--" (a part), and a block of fields right after a
 *   block's blank line (an enclosed message);
 * - the input ends before the delimiter line after
 *   PARSER_MESSAGE_DELIMITERS_MAX of them (of boundaries declared above
 *   it): the walker stops at PARSER_LIMIT_PARTS parts anyway, and GMime
 *   would otherwise build every one of 100,000 siblings (SECURITY-TESTS
 *   55).
 *
 * Both set anomalies and a note.  (transfer full) the bytes to parse, or
 * NULL when nothing changed (the common case: no copy).  */
static GBytes *
parser_walk_prescreen (parser_walk *w, const guint8 *d, gsize n)
{
  g_autoptr (GHashTable) bounds = NULL; /* made at the first boundary */
  GByteArray *out = NULL;
  gsize pos = 0, copied = 0, stop = n, skip = 0;
  gboolean hdr = TRUE;
  guint cuts = 0, delimiters = 0, blank = 0;

  /* Leading lines of only spaces and tabs: GMime 3.2.13 takes the first
   * for a continuation line without a field and gives no message at all
   * (F2).  They are dropped from what GMime is shown.  */
  while (skip < n && (d[skip] == ' ' || d[skip] == '\t'))
    {
      gsize p = skip;

      while (p < n && (d[p] == ' ' || d[p] == '\t'))
        p++;
      if (p < n && d[p] == '\r' && p + 1 < n && d[p + 1] == '\n')
        p += 2;
      else if (p < n && d[p] == '\n')
        p++;
      else
        break;
      skip = p;
      blank++;
    }
  if (skip > 0)
    {
      w->m->anomalies |= PARSER_ANOMALY_GMIME_WARNING;
      parser_walk_note (w, "%u leading line%s of white space dropped before "
                        "parsing", blank, blank == 1 ? "" : "s");
    }
  pos = copied = skip;

  while (pos < n)
    {
      gsize le, body;

      /* In a body only a line that starts with "--" matters (a
       * delimiter, or the part headers after it): the others are passed
       * over without looking at their ends.  */
      if (!hdr)
        {
          /* the next line that starts "--": found by its dashes (a
           * base64 body has none), not line by line */
          gsize from = pos;

          while (pos < n
                 && !(d[pos] == '-' && pos + 1 < n && d[pos + 1] == '-'
                      && (pos == from || d[pos - 1] == '\n')))
            {
              const guint8 *dash = memchr (d + pos + 1, '-', n - pos - 1);

              pos = dash != NULL ? (gsize) (dash - d) : n;
            }
          if (pos >= n)
            break;
        }
      le = parser_walk_line_end (d, n, pos);
      body = le - pos;

      while (body > 0 && (d[pos + body - 1] == '\n'
                          || d[pos + body - 1] == '\r'))
        body--;
      if (body >= 3 && d[pos] == '-' && d[pos + 1] == '-'
          && parser_walk_is_delimiter (bounds, d + pos, body)
          && ++delimiters > PARSER_MESSAGE_DELIMITERS_MAX)
        {
          stop = pos;
          break;
        }
      if (!hdr)
        {
          hdr = body >= 2 && d[pos] == '-' && d[pos + 1] == '-';
          pos = le;
          continue;
        }
      if (body == 0)
        {
          hdr = le < n && parser_walk_field_line (d + le, n - le);
          pos = le;
          continue;
        }
      if (parser_walk_field_line (d + pos, body))
        {
          gsize end = le;
          while (end < n && (d[end] == ' ' || d[end] == '\t'))
            end = parser_walk_line_end (d, n, end);
          parser_walk_note_boundary (&bounds, d + pos,
                                     MIN (end - pos, PARSER_MESSAGE_FIELD_CUT));
          if (end - pos > PARSER_MESSAGE_FIELD_CUT)
            {
              gsize keep = PARSER_MESSAGE_FIELD_CUT;
              gboolean crlf = body + 1 < le - pos && d[pos + body] == '\r';

              if (out == NULL)
                out = g_byte_array_sized_new ((guint) MIN (n, G_MAXUINT));
              while (keep > 0 && (d[pos + keep - 1] == '\n'
                                  || d[pos + keep - 1] == '\r'))
                keep--;
              g_byte_array_append (out, d + copied,
                                   (guint) (pos + keep - copied));
              g_byte_array_append (out, (const guint8 *) (crlf ? "\r\n"
                                                               : "\n"),
                                   crlf ? 2 : 1);
              copied = end;
              cuts++;
            }
          pos = end;
          continue;
        }
      pos = le;
    }
  if (cuts > 0)
    {
      w->m->anomalies |= PARSER_ANOMALY_HEADERS;
      parser_walk_note (w, "%u header field%s over %d bytes cut before "
                        "parsing", cuts, cuts == 1 ? "" : "s",
                        PARSER_MESSAGE_FIELD_CUT);
    }
  if (stop < n)
    {
      w->m->anomalies |= PARSER_ANOMALY_PARTS;
      parser_walk_note (w, "more than %d MIME delimiters: the %zu bytes "
                        "after the last were not parsed",
                        PARSER_MESSAGE_DELIMITERS_MAX, n - stop);
    }
  if (out == NULL)
    return stop < n || skip > 0 ? g_bytes_new (d + skip, stop - skip) : NULL;
  g_byte_array_append (out, d + copied, (guint) (stop - copied));
  return g_byte_array_free_to_bytes (out);
}

/* ------------------------------------------------------------ quiet parse
 *
 * With a warning callback set, GMime 3.2.13 decodes every header value as
 * it adds the field (gmime-object.c, object_header_changed(): "validate
 * header if requested, caches the decoded value") and looks for repeated
 * fields: about 60,000 instructions of a 2 KB message, most of the gap to
 * a bare parse (docs/performance.md, ninth and tenth sessions).  A
 * message on which GMime cannot warn at all is therefore parsed without
 * the callback: the flags and notes are the same (none from GMime), and
 * the values are decoded only when read, or not at all (see
 * parser_walk_header_list()).
 *
 * parser_walk_quiet_safe() decides, and must never say TRUE for bytes on
 * which GMime would warn; it accepts one narrow, common shape and sends
 * everything else the old way.  Where GMime 3.2.13 warns (every
 * _g_mime_parser_options_warn() call):
 *
 * - gmime-parser.c: headers not ended by a blank line (truncated), a
 *   line that is not a field (invalid header name), 8-bit names or
 *   values, a repeated RFC 5322 single field (from, to, cc, bcc,
 *   reply-to, sender, subject, date, message-id, in-reply-to,
 *   references), a repeated Content-* field of a part, the multipart
 *   structure (boundaries, parts without headers or content, nesting)
 *   and message/rfc822 content;
 * - gmime-utils.c: encoded words ("=?"), in any decoded value;
 * - gmime-content-type.c, gmime-param.c: a Content-Type without
 *   type/subtype, bad or repeated parameters (also Content-Disposition's);
 * - internet-address.c: the address lists of Sender, From, Reply-To, To,
 *   Cc and Bcc, parsed as the fields are added.
 *
 * So TRUE needs header blocks of printable ASCII and tabs, CRLF or LF
 * line ends (no lone CR), at least one field and a blank line after the
 * last; each field a name of visible characters then ':'; no "=?"; no
 * repeated single or Content-* field; a Content-Type, if any,
 * "type/subtype" (never message/...) and a Content-Disposition with
 * distinct name=token or name="text" parameters; and address fields
 * that are lists of plain mailboxes: a@b.c, <a@b.c>, Words <a@b.c>,
 * "Quoted words" <a@b.c>.  Nothing in a leaf part's body makes GMime
 * warn.  A multipart is taken one level deep, its structure checked
 * too (parser_walk_quiet_safe()).  */

/* Byte classes for characters below 128, as two 64-bit masks; the sets
 * are GMime's (gmime-table-private.h: CHARS_SPECIAL, CHARS_TSPECIAL).  */
#define PARSER_QUIET_LO(c) ((c) < 64 ? G_GUINT64_CONSTANT (1) << (c) : 0)
#define PARSER_QUIET_HI(c) ((c) >= 64 ? G_GUINT64_CONSTANT (1) << ((c) - 64) \
                                      : 0)
/* "()<>@,;:\\\"" common to both sets */
#define PARSER_QUIET_COMMON(F)                                              \
  (F ('(') | F (')') | F ('<') | F ('>') | F ('@') | F (',') | F (';')      \
   | F (':') | F ('\\') | F ('"') | F ('[') | F (']'))
/* visible characters, 0x21-0x7e */
#define PARSER_QUIET_VIS_LO (~((G_GUINT64_CONSTANT (1) << 33) - 1))
#define PARSER_QUIET_VIS_HI (~G_GUINT64_CONSTANT (0) >> 1)
/* atext: visible, not a special (RFC 5322 atom, as GMime's is_atom) */
#define PARSER_QUIET_ATEXT_LO                                               \
  (PARSER_QUIET_VIS_LO & ~(PARSER_QUIET_COMMON (PARSER_QUIET_LO)            \
                           | PARSER_QUIET_LO ('.')))
#define PARSER_QUIET_ATEXT_HI                                               \
  (PARSER_QUIET_VIS_HI & ~(PARSER_QUIET_COMMON (PARSER_QUIET_HI)            \
                           | PARSER_QUIET_HI ('.')))
/* token: visible, not a tspecial (RFC 2045, as GMime's is_ttoken) */
#define PARSER_QUIET_TOKEN_LO                                               \
  (PARSER_QUIET_VIS_LO & ~(PARSER_QUIET_COMMON (PARSER_QUIET_LO)            \
                           | PARSER_QUIET_LO ('/') | PARSER_QUIET_LO ('?')  \
                           | PARSER_QUIET_LO ('=')))
#define PARSER_QUIET_TOKEN_HI                                               \
  (PARSER_QUIET_VIS_HI & ~(PARSER_QUIET_COMMON (PARSER_QUIET_HI)            \
                           | PARSER_QUIET_HI ('/') | PARSER_QUIET_HI ('?')  \
                           | PARSER_QUIET_HI ('=')))

static inline gboolean
parser_walk_quiet_in (guint64 lo, guint64 hi, guint8 c)
{
  return c < 64 ? (lo >> c) & 1 : c < 128 && ((hi >> (c - 64)) & 1);
}

static inline gboolean
parser_walk_quiet_atext (guint8 c)
{
  return parser_walk_quiet_in (PARSER_QUIET_ATEXT_LO, PARSER_QUIET_ATEXT_HI,
                               c);
}

static inline gboolean
parser_walk_quiet_token (guint8 c)
{
  return parser_walk_quiet_in (PARSER_QUIET_TOKEN_LO, PARSER_QUIET_TOKEN_HI,
                               c);
}

/* TRUE if the @len bytes at @name are @lower (lower-case letters and
 * '-') in any case: a byte or'ed with 0x20 equals a lower-case letter
 * only if it is that letter in either case, and '-' only if it is '-' or
 * CR (which is not in a field name).  */
static inline gboolean
parser_walk_quiet_name_is (const char *name, gsize len, const char *lower,
                           gsize lower_len)
{
  if (len != lower_len)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if ((name[i] | 0x20) != lower[i])
      return FALSE;
  return TRUE;
}

/* Folding white space as GMime skips it in a raw value (is_lwsp).  */
static gsize
parser_walk_quiet_ws (const guint8 *v, gsize n, gsize i)
{
  while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r'
                   || v[i] == '\n'))
    i++;
  return i;
}

/* A quoted string without backslashes or line ends at @i; where it ends,
 * or 0.  */
static gsize
parser_walk_quiet_quoted (const guint8 *v, gsize n, gsize i)
{
  if (i >= n || v[i] != '"')
    return 0;
  for (i++; i < n && v[i] >= 0x20 && v[i] < 0x7f && v[i] != '"'
            && v[i] != '\\';
       i++)
    ;
  return i < n && v[i] == '"' ? i + 1 : 0;
}

/* atom ("." atom)* "@" atom ("." atom)* at @i, nothing around it; where
 * it ends, or 0.  */
static gsize
parser_walk_quiet_addr_spec (const guint8 *v, gsize n, gsize i)
{
  for (guint side = 0; side < 2; side++)
    {
      for (;;)
        {
          gsize a = i;

          while (i < n && parser_walk_quiet_atext (v[i]))
            i++;
          if (i == a)
            return 0;
          if (i < n && v[i] == '.')
            {
              i++;
              continue;
            }
          break;
        }
      if (side == 0)
        {
          if (i >= n || v[i] != '@')
            return 0;
          i++;
        }
    }
  return i;
}

/* An address list of plain mailboxes (above), the raw value of one of
 * the fields GMime parses as addresses.  */
static gboolean
parser_walk_quiet_addresses (const guint8 *v, gsize n)
{
  gsize i = 0;

  for (;;)
    {
      gsize e;

      i = parser_walk_quiet_ws (v, n, i);
      e = parser_walk_quiet_addr_spec (v, n, i);
      if (e != 0 && (e = parser_walk_quiet_ws (v, n, e)) < n && v[e] != ',')
        e = 0;
      if (e == 0)
        {
          /* [words] "<" addr-spec ">": a word is atext then atext or
           * dots, or a quoted string; white space between words */
          while (i < n && v[i] != '<')
            {
              if (v[i] == '"')
                {
                  i = parser_walk_quiet_quoted (v, n, i);
                  if (i == 0)
                    return FALSE;
                }
              else
                {
                  if (!parser_walk_quiet_atext (v[i]))
                    return FALSE;
                  while (i < n && (parser_walk_quiet_atext (v[i])
                                   || v[i] == '.'))
                    i++;
                }
              e = parser_walk_quiet_ws (v, n, i);
              if (e == i && e < n && v[e] != '<')
                return FALSE;
              i = e;
            }
          if (i >= n)
            return FALSE;
          e = parser_walk_quiet_addr_spec (v, n, i + 1);
          if (e == 0 || e >= n || v[e] != '>')
            return FALSE;
          e = parser_walk_quiet_ws (v, n, e + 1);
          if (e < n && v[e] != ',')
            return FALSE;
        }
      if (e >= n)
        return TRUE;
      i = e + 1;                  /* past the comma: another address */
    }
}

/* Parameters from @i (white space, then ';' or the end): distinct
 * name=token or name="text", names without '*' (RFC 2231).  Where a
 * parameter named boundary is, its value in *@boundary and
 * *@boundary_len (a quoted one without its quotes).  */
static gboolean
parser_walk_quiet_params (const guint8 *v, gsize n, gsize i,
                          const guint8 **boundary, gsize *boundary_len)
{
  gsize names[8], name_len[8];
  guint n_names = 0;

  for (;;)
    {
      gsize p, t;

      i = parser_walk_quiet_ws (v, n, i);
      if (i >= n)
        return TRUE;
      if (v[i] != ';' || n_names == G_N_ELEMENTS (names))
        return FALSE;
      i = p = parser_walk_quiet_ws (v, n, i + 1);
      while (i < n && parser_walk_quiet_token (v[i]) && v[i] != '*')
        i++;
      if (i == p || i >= n || v[i] != '=')
        return FALSE;
      for (guint k = 0; k < n_names; k++)
        if (name_len[k] == i - p
            && g_ascii_strncasecmp ((const char *) v + names[k],
                                    (const char *) v + p, i - p) == 0)
          return FALSE;
      names[n_names] = p;
      name_len[n_names++] = i - p;
      i++;
      if (i < n && v[i] == '"')
        {
          t = i + 1;
          i = parser_walk_quiet_quoted (v, n, i);
          if (i == 0)
            return FALSE;
          if (boundary != NULL && name_len[n_names - 1] == 8
              && parser_walk_quiet_name_is ((const char *) v + p, 8,
                                            "boundary", 8))
            {
              *boundary = v + t;
              *boundary_len = i - 1 - t;
            }
        }
      else
        {
          t = i;
          while (i < n && parser_walk_quiet_token (v[i]))
            i++;
          if (i == t)
            return FALSE;
          if (boundary != NULL && name_len[n_names - 1] == 8
              && parser_walk_quiet_name_is ((const char *) v + p, 8,
                                            "boundary", 8))
            {
              *boundary = v + t;
              *boundary_len = i - t;
            }
        }
    }
}

/* What a header block declares of its part, for the structure.  */
typedef struct {
  gboolean multipart;          /* Content-Type multipart/... (not digest) */
  const guint8 *boundary;      /* its boundary parameter, or NULL */
  gsize boundary_len;
} parser_walk_quiet_part;

/* Content-Type: type/subtype, then parameters (above).  Never
 * message/... (GMime parses its content as a message); multipart/...
 * only where @multipart is not NULL, and not digest (whose parts default
 * to message/rfc822).  */
static gboolean
parser_walk_quiet_content_type (const guint8 *v, gsize n,
                                parser_walk_quiet_part *multipart)
{
  gsize i = parser_walk_quiet_ws (v, n, 0), t = i, st;
  gboolean is_multipart;

  while (i < n && parser_walk_quiet_token (v[i]))
    i++;
  if (i == t || i >= n || v[i] != '/'
      || parser_walk_quiet_name_is ((const char *) v + t, i - t, "message",
                                    7))
    return FALSE;
  is_multipart = parser_walk_quiet_name_is ((const char *) v + t, i - t,
                                            "multipart", 9);
  st = ++i;
  while (i < n && parser_walk_quiet_token (v[i]))
    i++;
  if (i == st)
    return FALSE;
  if (!is_multipart)
    return parser_walk_quiet_params (v, n, i, NULL, NULL);
  if (multipart == NULL
      || parser_walk_quiet_name_is ((const char *) v + st, i - st, "digest",
                                    6))
    return FALSE;
  multipart->multipart = TRUE;
  return parser_walk_quiet_params (v, n, i, &multipart->boundary,
                                   &multipart->boundary_len);
}

/* Content-Disposition: anything up to the first ';' (GMime keeps it as
 * it is), then parameters (above).  */
static gboolean
parser_walk_quiet_disposition (const guint8 *v, gsize n)
{
  const guint8 *semi = memchr (v, ';', n);

  return semi == NULL
         || parser_walk_quiet_params (v, n, (gsize) (semi - v), NULL, NULL);
}

/* Where the field whose value starts at @pos ends (the start of the next
 * line that is not a continuation), or 0 when a byte of it is not plain
 * (above) or the input ends inside it.  */
static gsize
parser_walk_quiet_field_end (const guint8 *d, gsize n, gsize pos)
{
  const guint64 ones = G_GUINT64_CONSTANT (0x0101010101010101);
  const guint64 highs = G_GUINT64_CONSTANT (0x8080808080808080);

  while (pos < n)
    {
      guint8 c;

      /* eight bytes at a time while none is below 0x20, 0x7f or above,
       * or '=' (haszero() tricks: the lowest flagged byte is exact) */
      if (pos + 8 <= n)
        {
          guint64 x, eq_del, eq_eq, m;

          memcpy (&x, d + pos, 8);
          eq_del = x ^ (ones * 0x7f);
          eq_eq = x ^ (ones * '=');
          m = ((x - ones * 0x20) & ~x & highs) | (x & highs)
              | ((eq_del - ones) & ~eq_del & highs)
              | ((eq_eq - ones) & ~eq_eq & highs);
          if (m == 0)
            {
              pos += 8;
              continue;
            }
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
          pos += (gsize) __builtin_ctzll (m) / 8;
#endif
        }
      c = d[pos];

      if (c == '\n')
        {
          pos++;
          if (pos < n && (d[pos] == ' ' || d[pos] == '\t'))
            continue;
          return pos;
        }
      if (c == '\r')
        {
          if (pos + 1 >= n || d[pos + 1] != '\n')
            return 0;
        }
      else if (c == '=')
        {
          if (pos + 1 < n && d[pos + 1] == '?')
            return 0;
        }
      else if ((c < 0x20 && c != '\t') || c >= 0x7f)
        return 0;
      pos++;
    }
  return 0;
}

/* One header block from @pos (the message's when @top, else a part's):
 * where the line after its blank line starts, or 0 when it is not plain
 * (above).  The message's: no single field twice, address fields of
 * plain mailboxes.  A part's: no field twice at all (GMime checks every
 * field of a part against the others), no multipart.  Both: no Content-*
 * field twice, Content-Type and Content-Disposition plain.  */
static gsize
parser_walk_quiet_block (const guint8 *d, gsize n, gsize pos, gboolean top,
                         parser_walk_quiet_part *part)
{
  /* RFC 5322 section 3.6's single fields, as GMime checks them
   * (gmime-parser.c: rfc5322_single_hdr); the first six are GMime's
   * address fields too */
  static const struct {
    const char *name;
    gsize len;
  } single[] = {
    { "from", 4 }, { "to", 2 }, { "cc", 2 }, { "bcc", 3 },
    { "reply-to", 8 }, { "sender", 6 }, { "date", 4 }, { "subject", 7 },
    { "message-id", 10 }, { "in-reply-to", 11 }, { "references", 10 },
  };
  /* single[] by name length: at most two candidates each, 1-based (0:
   * none) */
  static const guint8 by_len[12][2] = {
    [2] = { 2, 3 }, [3] = { 4, 0 }, [4] = { 1, 7 }, [6] = { 6, 0 },
    [7] = { 8, 0 }, [8] = { 5, 0 }, [10] = { 9, 11 }, [11] = { 10, 0 },
  };
  /* the names to keep apart: Content-* (the message's), every one (a
   * part's) */
  gsize kept[16], kept_len[16];
  guint n_kept = 0, seen = 0;
  gsize first = pos;

  if (pos >= n || d[pos] == ' ' || d[pos] == '\t')
    return 0;
  for (;;)
    {
      const char *name = (const char *) d + pos;
      gsize colon = pos, end, len;
      gboolean content;

      if (pos >= n)
        return 0;
      if (d[pos] == '\n')
        return pos > first ? pos + 1 : 0;
      if (d[pos] == '\r' && pos + 1 < n && d[pos + 1] == '\n')
        return pos > first ? pos + 2 : 0;
      while (colon < n && d[colon] > 0x20 && d[colon] < 0x7f
             && d[colon] != ':')
        colon++;
      if (colon == pos || colon >= n || d[colon] != ':')
        return 0;
      end = parser_walk_quiet_field_end (d, n, colon + 1);
      if (end == 0)
        return 0;
      len = colon - pos;
      content = len >= 8 && parser_walk_quiet_name_is (name, 8, "content-", 8);
      if (content || !top)
        {
          for (guint k = 0; k < n_kept; k++)
            if (kept_len[k] == len
                && g_ascii_strncasecmp ((const char *) d + kept[k], name,
                                        len) == 0)
              return 0;
          if (n_kept == G_N_ELEMENTS (kept))
            return 0;
          kept[n_kept] = pos;
          kept_len[n_kept++] = len;
        }
      if (content)
        {
          if (parser_walk_quiet_name_is (name, len, "content-type", 12)
              && !parser_walk_quiet_content_type (d + colon + 1,
                                                  end - colon - 1,
                                                  top ? part : NULL))
            return 0;
          if (parser_walk_quiet_name_is (name, len, "content-disposition", 19)
              && !parser_walk_quiet_disposition (d + colon + 1,
                                                 end - colon - 1))
            return 0;
        }
      else if (top && len <= 11)
        for (guint c = 0; c < 2 && by_len[len][c] != 0; c++)
          {
            guint k = by_len[len][c] - 1u;

            if (!parser_walk_quiet_name_is (name, len, single[k].name,
                                            single[k].len))
              continue;
            if (seen & (1u << k))
              return 0;
            seen |= 1u << k;
            if (k < 6 && !parser_walk_quiet_addresses (d + colon + 1,
                                                       end - colon - 1))
              return 0;
            break;
          }
      pos = end;
    }
}

/* The next "--" @b at or after @from, wherever it is, or @n.  */
static gsize
parser_walk_quiet_find (const guint8 *d, gsize n, gsize from,
                        const guint8 *b, gsize blen)
{
  while (from + 2 + blen <= n)
    {
      const guint8 *dash = memchr (d + from, '-', n - from - 2 - blen + 1);

      if (dash == NULL)
        break;
      from = (gsize) (dash - d);
      if (d[from + 1] == '-' && memcmp (d + from + 2, b, blen) == 0)
        return from;
      from++;
    }
  return n;
}

/* TRUE when GMime 3.2.13 cannot warn while parsing @d (above).
 *
 * A multipart (one level: its parts are leaves) is plain when its
 * boundary is 1 to 70 visible characters without ':' (so no delimiter
 * line reads as a field) and every "--boundary" in the body, wherever it
 * is, starts a delimiter line ("--boundary" or "--boundary--", then only
 * white space): GMime looks for delimiters at line starts, and also where
 * a line longer than its read buffer goes on, so one inside a line is
 * refused too.  The first is not the closing one, each is followed by a
 * part's plain header block, and the closing one comes (else GMime warns
 * of a truncated message); after it anything may follow (the epilogue is
 * read with no boundary left).  */
static gboolean
parser_walk_quiet_safe (const guint8 *d, gsize n)
{
  parser_walk_quiet_part top = { 0 };
  gsize pos = parser_walk_quiet_block (d, n, 0, TRUE, &top);
  gsize body = pos;
  const guint8 *b = top.boundary;
  gsize blen = top.boundary_len;

  if (pos == 0)
    return FALSE;
  if (!top.multipart)
    return TRUE;
  if (b == NULL || blen == 0 || blen > PARSER_MESSAGE_BOUNDARY_MAX)
    return FALSE;
  for (gsize i = 0; i < blen; i++)
    if (b[i] <= 0x20 || b[i] >= 0x7f || b[i] == ':')
      return FALSE;
  for (gboolean in_parts = FALSE;;)
    {
      gsize q = parser_walk_quiet_find (d, n, pos, b, blen), r;
      gboolean closing;

      if (q >= n || (q != body && d[q - 1] != '\n'))
        return FALSE;
      r = q + 2 + blen;
      closing = r + 2 <= n && d[r] == '-' && d[r + 1] == '-';
      if (closing)
        r += 2;
      for (; r < n && d[r] != '\n'; r++)
        if (d[r] != ' ' && d[r] != '\t' && d[r] != '\r')
          return FALSE;
      if (closing)
        return in_parts;
      in_parts = TRUE;
      r = r < n ? r + 1 : n;
      pos = parser_walk_quiet_block (d, n, r, FALSE, NULL);
      /* no "--boundary" inside the part's headers either */
      if (pos == 0 || parser_walk_quiet_find (d, n, r, b, blen) < pos)
        return FALSE;
    }
}

/* ------------------------------------------------------------ walk */

static void
parser_walk_count_headers (parser_walk *w, GMimeObject *o)
{
  GMimeHeaderList *hl = g_mime_object_get_header_list (o);
  int n = hl ? g_mime_header_list_get_count (hl) : 0;
  /* After a quiet parse every header's name and raw value are pieces of
   * one field of the input (GMime adds none to a parsed tree, and there
   * is no message parsed again): together fewer bytes than the input,
   * which when under half the limit cannot reach it; they need not be
   * measured.  */
  int measured = w->quiet_parse
                         && w->quiet_len <= PARSER_LIMIT_HEADER_BYTES / 2
                     ? 0
                     : n;

  for (int i = 0; i < measured; i++)
    {
      GMimeHeader *h = g_mime_header_list_get_header_at (hl, i);
      const char *name = g_mime_header_get_name (h);
      const char *raw = g_mime_header_get_raw_value (h);
      w->header_bytes += (name ? strlen (name) : 0) + (raw ? strlen (raw) : 0)
                         + 1;
    }
  w->header_fields += (guint) n;
  if ((w->header_fields > PARSER_LIMIT_HEADERS
       || w->header_bytes > PARSER_LIMIT_HEADER_BYTES) && !w->noted_headers)
    {
      w->m->anomalies |= PARSER_ANOMALY_HEADERS;
      parser_walk_note (w, "headers over the limit (%d fields or %d bytes)",
                        PARSER_LIMIT_HEADERS, PARSER_LIMIT_HEADER_BYTES);
      w->noted_headers = TRUE;
    }
}

static void parser_walk_message (parser_walk *w, GMimeMessage *msg,
                                 guint depth, parser_walk_text *acc,
                                 const parser_walk_buf *buf,
                                 gsize limit_end);

static char *
parser_walk_text_finish (parser_walk_text *acc)
{
  if (acc->text->len == 0 && acc->tnef_body != NULL)
    {
      g_string_append (acc->text, acc->tnef_body);
      parser_walk_cut (acc->text, PARSER_LIMIT_TEXT);
    }
  g_clear_pointer (&acc->tnef_body, g_free);
  return g_string_free (g_steal_pointer (&acc->text), FALSE);
}

/* A forwarded message: kept whole as an attachment (PARSER_ATT_FORWARDED,
 * @bytes its original bytes), walked one level deeper, and its text (with
 * its Subject line) added to m->forwarded.  Takes @bytes.  */
static void
parser_walk_forwarded (parser_walk *w, GMimeMessage *inner, GBytes *bytes,
                       guint depth, guint att_flags,
                       const parser_walk_buf *inner_buf, gsize inner_end,
                       gboolean in_report, parser_walk_text *parent)
{
  parser_message *m = w->m;
  g_autofree char *subject = NULL;
  g_autofree char *subj = NULL;
  g_autofree char *name = NULL;
  parser_walk_text acc = { g_string_new (NULL) };
  guint slot;
  char *text;
  GString *fwd;

  if (inner != NULL)
    {
      parser_walk_index f;

      parser_walk_index_init (&f, GMIME_OBJECT (inner));
      subject = parser_walk_subject (w, inner, &f);
      parser_walk_index_clear (&f);
    }
  subj = parser_walk_value_or_null (w, subject);
  name = g_strdup_printf ("%s.eml", subj ? subj
                                         : "forwarded-message");
  {
    gsize n;
    const guint8 *p = g_bytes_get_data (bytes, &n);

    /* A message GMime parsed, opening with a header field, is detected
     * by that parse: no content sniffing (GIO's magic knows a message
     * only by a few first fields, calls the rest text/plain, and tries
     * every one of its rules to say so: a third of the cost of parsing a
     * message with a forwarded one, F8).  */
    parser_walk_attach (w, bytes, "message/rfc822",
                        inner != NULL && parser_walk_opens_with_field (p, n)
                            ? "message/rfc822" : NULL,
                        name, NULL, att_flags | PARSER_ATT_FORWARDED, FALSE);
  }
  if (inner == NULL)
    {
      g_string_free (acc.text, TRUE);
      return;
    }
  if (in_report && parent->top && m->report_message_id == NULL)
    {
      const char *id = g_mime_message_get_message_id (inner);
      m->report_message_id = id && *id ? parser_clean_text (id, -1, 998)
                                       : NULL;
    }
  if (m->forwarded->len >= PARSER_LIMIT_PARTS)
    {
      parser_walk_message (w, inner, depth, &acc, inner_buf, inner_end);
      g_free (parser_walk_text_finish (&acc));
      return;
    }
  slot = m->forwarded->len;
  g_ptr_array_add (m->forwarded, NULL);
  parser_walk_message (w, inner, depth, &acc, inner_buf, inner_end);
  text = parser_walk_text_finish (&acc);
  fwd = g_string_new ("Subject: ");
  if (subj)
    g_string_append (fwd, subj);
  g_string_append (fwd, "\n\n");
  g_string_append (fwd, text);
  g_free (text);
  if (w->forwarded_text + fwd->len > PARSER_LIMIT_TEXT)
    {
      parser_walk_cut (fwd, PARSER_LIMIT_TEXT - w->forwarded_text);
      m->anomalies |= PARSER_ANOMALY_TRUNCATED_TEXT;
      parser_walk_note (w, "forwarded text over %d bytes cut",
                        PARSER_LIMIT_TEXT);
    }
  w->forwarded_text += fwd->len;
  m->forwarded->pdata[slot] = g_string_free (fwd, FALSE);
}

/* message/rfc822 as GMime parsed it (GMimeMessagePart).  */
static void
parser_walk_message_part (parser_walk *w, GMimeMessagePart *mp, guint depth,
                          guint att_flags, parser_walk_text *acc,
                          const parser_walk_buf *buf, gsize limit_end,
                          gboolean in_report, GMimeObject *owner)
{
  GMimeMessage *inner = g_mime_message_part_get_message (mp);
  gsize start = 0, end = 0;
  GBytes *bytes;

  if (!parser_walk_part_range (w, GMIME_OBJECT (mp), owner, inner, buf,
                               limit_end, &start, &end))
    {
      parser_walk_note (w, "a message/rfc822 part could not be located in "
                        "the raw bytes: kept empty");
      start = end = 0;
    }
  bytes = g_bytes_new (buf->data + start,
                       parser_walk_budget (w, end - start));
  parser_walk_forwarded (w, inner, bytes, depth, att_flags, buf, end,
                         in_report, acc);
}

/* A memory stream over @data without a copy: g_mime_stream_mem_new_with_
 * buffer() copies the whole message into a GByteArray of its own, which
 * the parser only ever reads.  The array here is a shell around the
 * caller's bytes (never written: GMime's parser and data wrappers only
 * read and seek), owned by the caller through *@shell and given back by
 * parser_walk_stream_free(), which must come after every GMime object
 * of the tree is gone.  */
static GMimeStream *
parser_walk_stream_new (const guint8 *data, gsize len, GByteArray **shell)
{
  GMimeStream *stream;

  *shell = g_byte_array_new_take ((guint8 *) data, len);
  stream = g_mime_stream_mem_new_with_byte_array (*shell);
  g_mime_stream_mem_set_owner (GMIME_STREAM_MEM (stream), FALSE);
  return stream;
}

/* One GMimeParser a thread, used again for every message (and every
 * message/rfc822 parsed again inside one): g_mime_parser_new () allocates
 * its 4 KiB scan buffer each time, a large block whose malloc first
 * consolidates every small block freed since (about 24,000 instructions
 * a message, 5% of parsing a 2 KB letter).  g_mime_parser_init_with_
 * stream () resets all of its state.  Given back bound to an empty
 * stream, so that it never keeps a message's bytes or stream alive.  */
static GPrivate parser_walk_spare = G_PRIVATE_INIT (g_object_unref);

static GMimeParser *
parser_walk_parser_take (GMimeStream *stream)
{
  GMimeParser *parser = g_private_get (&parser_walk_spare);

  if (parser == NULL)
    return g_mime_parser_new_with_stream (stream);
  g_private_set (&parser_walk_spare, NULL);
  g_mime_parser_init_with_stream (parser, stream);
  return parser;
}

static void
parser_walk_parser_give (GMimeParser *parser)
{
  static const guint8 nothing[1];
  GMimeStream *empty;

  if (g_private_get (&parser_walk_spare) != NULL)
    {
      g_object_unref (parser);  /* a nested parse's: one is kept */
      return;
    }
  empty = g_mime_stream_mem_new_with_buffer ((const char *) nothing, 0);
  g_mime_parser_init_with_stream (parser, empty);
  g_object_unref (empty);
  g_private_set (&parser_walk_spare, parser);
}

static void
parser_walk_stream_free (GMimeStream *stream, GByteArray *shell)
{
  /* the tree and the parser are gone: nothing else holds the stream,
   * which would otherwise outlive the shell it reads from */
  g_assert (G_OBJECT (stream)->ref_count == 1);
  g_object_unref (stream);
  /* FALSE: the bytes are the caller's, only the shell is freed */
  (void) g_byte_array_free (shell, FALSE);
}

/* message/rfc822 with a transfer encoding: GMime leaves it a leaf; the
 * decoded bytes are parsed again with the same options.  */
static void
parser_walk_encoded_message (parser_walk *w, GBytes *content, guint depth,
                             guint att_flags, parser_walk_text *acc,
                             gboolean in_report)
{
  gsize n;
  const guint8 *data = g_bytes_get_data (content, &n);
  g_autoptr (GBytes) screened = parser_walk_prescreen (w, data, n);
  GMimeStream *stream;
  GByteArray *shell;
  GMimeParser *parser;
  GMimeMessage *inner;
  parser_walk_buf ibuf;

  if (screened != NULL)
    data = g_bytes_get_data (screened, &n);
  /* An empty GBytes gives NULL: GMime refuses a NULL buffer (F1).  */
  if (data == NULL)
    {
      data = (const guint8 *) "";
      n = 0;
    }
  stream = parser_walk_stream_new (data, n, &shell);
  parser = parser_walk_parser_take (stream);
  inner = g_mime_parser_construct_message (parser, w->opts);
  ibuf.data = data;
  ibuf.len = n;
  ibuf.bounds_base = w->n_bounds;
  /* the attachment keeps the decoded bytes as they came */
  parser_walk_forwarded (w, inner, g_bytes_ref (content), depth, att_flags,
                         &ibuf, n, in_report, acc);
  g_clear_object (&inner);
  parser_walk_parser_give (parser);
  parser_walk_stream_free (stream, shell);
}

static void
parser_walk_leaf (parser_walk *w, GMimePart *part, guint depth,
                  gboolean want_text, guint att_flags, parser_walk_text *acc,
                  gboolean in_report)
{
  GMimeObject *o = GMIME_OBJECT (part);
  GMimeContentType *ct = g_mime_object_get_content_type (o);
  const char *type = ct ? g_mime_content_type_get_media_type (ct) : "text";
  const char *subtype = ct ? g_mime_content_type_get_media_subtype (ct)
                           : "plain";
  GMimeContentDisposition *disp = g_mime_object_get_content_disposition (o);
  const char *dname = disp ? g_mime_content_disposition_get_disposition (disp)
                           : NULL;
  const char *raw_cd = parser_walk_raw_header (o, "Content-Disposition");
  const char *raw_ct = parser_walk_raw_header (o, "Content-Type");
  const char *name;
  gboolean name_cut = FALSE;
  gboolean attachment_disp = dname && g_ascii_strcasecmp (dname, "attachment")
                                          == 0;
  g_autofree char *declared = NULL;
  GBytes *content;
  gboolean no_subtype = FALSE, ignored;
  GMimeContentDisposition *disp2 = disp ? parser_walk_reparse_cd (w, raw_cd,
                                                                  FALSE)
                                        : NULL;
  gboolean octet = ct == NULL
                   || g_mime_content_type_is_type (ct, "application",
                                                   "octet-stream");
  GMimeContentType *ct2 = parser_walk_reparse_ct (w, raw_ct, FALSE, octet,
                                                  &no_subtype);
  GMimeContentDisposition *disp_nul = NULL;
  GMimeContentType *ct_nul = NULL;
  guint name_flags = 0;

  if (disp2 != NULL)
    disp = disp2;
  if (ct2 != NULL)
    {
      ct = ct2;
      if (no_subtype)
        {
          type = g_mime_content_type_get_media_type (ct);
          subtype = g_mime_content_type_get_media_subtype (ct);
          parser_walk_note (w, "a Content-Type without a subtype read as "
                            "%s/%s", type, subtype);
          w->m->anomalies |= PARSER_ANOMALY_GMIME_WARNING;
        }
    }
  type = type ? type : "application";
  subtype = subtype ? subtype : "octet-stream";
  name = disp ? parser_walk_param (w, g_mime_content_disposition_get_parameters (disp),
                                   "filename")
              : NULL;
  if (name != NULL)
    {
      name_cut = parser_walk_name_nul (raw_cd);
      /* F9: the name as it would be without the NUL ("invoice.pdf.exe")
       * is checked too; the name shown stays cut and cleaned.  */
      if (name_cut
          && (disp_nul = parser_walk_reparse_cd (w, raw_cd, TRUE)) != NULL)
        {
          const char *full = parser_walk_param (
              w, g_mime_content_disposition_get_parameters (disp_nul),
              "filename");
          g_autofree char *safe = parser_walk_safe_name (full, 0, &ignored);
          name_flags = parser_walk_name_flags (safe);
        }
    }
  else if (ct != NULL)
    {
      name = parser_walk_param (w, g_mime_content_type_get_parameters (ct),
                                "name");
      name_cut = name != NULL && parser_walk_name_nul (raw_ct);
      if (name_cut
          && (ct_nul = parser_walk_reparse_ct (w, raw_ct, TRUE, octet,
                                                &ignored))
                 != NULL)
        {
          const char *full = parser_walk_param (
              w, g_mime_content_type_get_parameters (ct_nul), "name");
          g_autofree char *safe = parser_walk_safe_name (full, 0, &ignored);
          name_flags = parser_walk_name_flags (safe);
        }
    }
  if (parser_walk_bad_encoded_words (w, raw_cd)
      || parser_walk_bad_encoded_words (w, raw_ct))
    w->m->anomalies |= PARSER_ANOMALY_ENCODED_WORD;
  if (dname && g_ascii_strcasecmp (dname, "inline") == 0)
    att_flags |= PARSER_ATT_INLINE;

  if (parser_walk_is_body_text (type, subtype) && !attachment_disp
      && name == NULL)
    {
      /* A rendering not chosen (another alternative) is not kept.  */
      if (want_text)
        parser_walk_text_part (w, part, ct, att_flags & PARSER_ATT_INLINE,
                               acc);
      goto out;
    }

  declared = g_strdup_printf ("%s/%s", type, subtype);
  content = parser_walk_decode (w, part, FALSE);

  if (in_report && acc->top
      && g_ascii_strcasecmp (type, "message") == 0
      && (g_ascii_strcasecmp (subtype, "delivery-status") == 0
          || g_ascii_strcasecmp (subtype, "disposition-notification") == 0))
    parser_walk_report_fields (w, content);
  else if (in_report && acc->top && g_ascii_strcasecmp (type, "text") == 0
           && g_ascii_strcasecmp (subtype, "rfc822-headers") == 0)
    parser_walk_report_headers (w, content);

  if (g_ascii_strcasecmp (type, "message") == 0
      && (g_ascii_strcasecmp (subtype, "rfc822") == 0
          || g_ascii_strcasecmp (subtype, "global") == 0))
    {
      parser_walk_encoded_message (w, content, depth, att_flags, acc,
                                   in_report);
      g_bytes_unref (content);
      goto out;
    }
  if (parser_walk_is_tnef (type, subtype, name))
    {
      if (parser_walk_tnef (w, content, att_flags, acc))
        {
          g_bytes_unref (content);
          goto out;
        }
      w->m->anomalies |= PARSER_ANOMALY_TNEF;
      if (name == NULL)
        name = "winmail.dat";
    }
  parser_walk_attach (w, content, declared, NULL, name,
                      g_mime_object_get_content_id (o),
                      att_flags | name_flags, name_cut);
out:
  g_clear_object (&disp2);
  g_clear_object (&ct2);
  g_clear_object (&disp_nul);
  g_clear_object (&ct_nul);
}

/* multipart/alternative: the first text/plain, else the last text/html,
 * else the last multipart, else the first part.  */
static int
parser_walk_pick_alternative (GMimeMultipart *mp, int n)
{
  int html = -1, multi = -1;

  for (int i = 0; i < n; i++)
    {
      GMimeObject *c = g_mime_multipart_get_part (mp, i);
      GMimeContentType *ct = g_mime_object_get_content_type (c);
      GMimeContentDisposition *d = g_mime_object_get_content_disposition (c);
      const char *dn = d ? g_mime_content_disposition_get_disposition (d)
                         : NULL;

      if (dn && g_ascii_strcasecmp (dn, "attachment") == 0)
        continue;
      if (GMIME_IS_MULTIPART (c))
        multi = i;
      else if (ct && g_mime_content_type_is_type (ct, "text", "plain"))
        return i;
      else if (ct && g_mime_content_type_is_type (ct, "text", "html"))
        html = i;
    }
  return html >= 0 ? html : multi >= 0 ? multi : 0;
}

/* multipart/related: the part named by start=, else the first.  */
static int
parser_walk_pick_related (parser_walk *w, GMimeMultipart *mp, int n)
{
  GMimeContentType *ct = g_mime_object_get_content_type (GMIME_OBJECT (mp));
  const char *start = ct ? parser_walk_param (w,
                                              g_mime_content_type_get_parameters (ct),
                                              "start")
                         : NULL;
  g_autofree char *id = NULL;

  if (start == NULL)
    return 0;
  id = g_strdup (start);
  g_strstrip (id);
  if (*id == '<')
    memmove (id, id + 1, strlen (id));
  if (*id && id[strlen (id) - 1] == '>')
    id[strlen (id) - 1] = '\0';
  for (int i = 0; i < n; i++)
    {
      const char *cid = g_mime_object_get_content_id (
          g_mime_multipart_get_part (mp, i));
      if (cid && strcmp (cid, id) == 0)
        return i;
    }
  return 0;
}

static void
parser_walk_multipart (parser_walk *w, GMimeMultipart *mp, guint depth,
                       gboolean want_text, guint att_flags,
                       parser_walk_text *acc, const parser_walk_buf *buf,
                       gsize limit_end, gboolean in_report)
{
  GMimeContentType *ct = g_mime_object_get_content_type (GMIME_OBJECT (mp));
  const char *subtype = ct ? g_mime_content_type_get_media_subtype (ct) : NULL;
  const char *boundary = g_mime_multipart_get_boundary (mp);
  int n = g_mime_multipart_get_count (mp);
  int chosen = -1;
  gboolean related = FALSE, pushed = FALSE;

  subtype = subtype ? subtype : "mixed";
  if (boundary == NULL || *boundary == '\0'
      || strlen (boundary) > PARSER_MESSAGE_BOUNDARY_MAX)
    {
      w->m->anomalies |= PARSER_ANOMALY_BOUNDARY;
      if (!w->noted_boundary)
        parser_walk_note (w, "multipart boundary missing, empty or longer "
                          "than %d", PARSER_MESSAGE_BOUNDARY_MAX);
      w->noted_boundary = TRUE;
    }
  if (boundary != NULL && *boundary != '\0'
      && w->n_bounds < G_N_ELEMENTS (w->bounds))
    {
      w->bounds[w->n_bounds++] = boundary;
      pushed = TRUE;
    }

  if (g_ascii_strcasecmp (subtype, "alternative") == 0)
    chosen = parser_walk_pick_alternative (mp, n);
  else if (g_ascii_strcasecmp (subtype, "related") == 0)
    {
      chosen = parser_walk_pick_related (w, mp, n);
      related = TRUE;
    }
  else if (g_ascii_strcasecmp (subtype, "report") == 0 && acc->top)
    {
      w->m->is_report = TRUE;
      in_report = TRUE;
    }

  for (int i = 0; i < n; i++)
    {
      GMimeObject *c;
      gboolean text = want_text;
      guint flags = att_flags;

      if (w->m->n_parts >= PARSER_LIMIT_PARTS)
        {
          /* Linear even for 100,000 siblings: the rest are counted, not
           * walked (SECURITY-TESTS 55).  */
          w->parts_skipped += (guint) (n - i);
          w->m->anomalies |= PARSER_ANOMALY_PARTS;
          break;
        }
      c = g_mime_multipart_get_part (mp, i);
      if (chosen >= 0 && i != chosen)
        {
          text = FALSE;
          if (related)
            flags |= PARSER_ATT_INLINE;
        }
      parser_walk_object (w, c, depth + 1, text, flags, acc, buf, limit_end,
                          in_report, NULL);
    }
  if (pushed)
    w->n_bounds--;
}

static void
parser_walk_object (parser_walk *w, GMimeObject *o, guint depth,
                    gboolean want_text, guint att_flags,
                    parser_walk_text *acc, const parser_walk_buf *buf,
                    gsize limit_end, gboolean in_report, GMimeObject *owner)
{
  parser_message *m = w->m;

  if (o == NULL)
    return;
  if (m->n_parts >= PARSER_LIMIT_PARTS)
    {
      w->parts_skipped++;
      m->anomalies |= PARSER_ANOMALY_PARTS;
      return;
    }
  if (depth > PARSER_LIMIT_DEPTH)
    {
      /* Before GMime's own 1024 / 512 (SECURITY-TESTS 53, 54).  */
      w->depth_skipped++;
      m->anomalies |= PARSER_ANOMALY_NESTING;
      return;
    }
  m->n_parts++;
  parser_walk_count_headers (w, o);

  if (GMIME_IS_MULTIPART (o))
    parser_walk_multipart (w, GMIME_MULTIPART (o), depth, want_text,
                           att_flags, acc, buf, limit_end, in_report);
  else if (GMIME_IS_MESSAGE_PART (o))
    parser_walk_message_part (w, GMIME_MESSAGE_PART (o), depth, att_flags,
                              acc, buf, limit_end, in_report, owner);
  else if (GMIME_IS_PART (o))
    parser_walk_leaf (w, GMIME_PART (o), depth, want_text, att_flags, acc,
                      in_report);
}

static void
parser_walk_message (parser_walk *w, GMimeMessage *msg, guint depth,
                     parser_walk_text *acc, const parser_walk_buf *buf,
                     gsize limit_end)
{
  parser_walk_count_headers (w, GMIME_OBJECT (msg));
  parser_walk_object (w, g_mime_message_get_mime_part (msg), depth + 1, TRUE,
                      0, acc, buf, limit_end, FALSE, GMIME_OBJECT (msg));
}

/* ------------------------------------------------------------ headers */

static parser_address *
parser_walk_address (parser_walk *w, InternetAddress *ia)
{
  parser_address *a = g_new0 (parser_address, 1);
  const char *name = internet_address_get_name (ia);
  const char *addr = internet_address_mailbox_get_addr (
      INTERNET_ADDRESS_MAILBOX (ia));
  char *at;

  a->name = parser_walk_value_or_null (w, name);
  a->addr = parser_clean_text (addr ? addr : "", -1, 998);
  g_strstrip (a->addr);
  at = strrchr (a->addr, '@');
  if (at != NULL)
    for (char *p = at + 1; *p; p++)
      *p = g_ascii_tolower (*p);
  return a;
}

static void
parser_walk_addresses (parser_walk *w, InternetAddressList *list,
                       GPtrArray *out, guint max, guint level)
{
  int n = list ? internet_address_list_length (list) : 0;

  for (int i = 0; i < n; i++)
    {
      InternetAddress *ia = internet_address_list_get_address (list, i);
      if (out->len >= max)
        {
          if (max > 1)
            {
              w->m->anomalies |= PARSER_ANOMALY_HEADERS;
              if (!w->noted_lists)
                parser_walk_note (w, "more than %d addresses in a field",
                                  PARSER_LIMIT_LIST);
              w->noted_lists = TRUE;
            }
          return;
        }
      if (INTERNET_ADDRESS_IS_MAILBOX (ia))
        g_ptr_array_add (out, parser_walk_address (w, ia));
      else if (INTERNET_ADDRESS_IS_GROUP (ia) && level == 0)
        parser_walk_addresses (w, internet_address_group_get_members (
                                      INTERNET_ADDRESS_GROUP (ia)),
                               out, max, level + 1);
    }
}

static parser_address *
parser_walk_first_address (parser_walk *w, InternetAddressList *list)
{
  g_autoptr (GPtrArray) one = g_ptr_array_new ();

  parser_walk_addresses (w, list, one, 1, 0);
  return one->len ? one->pdata[0] : NULL;
}

typedef struct {
  gint64 offset;
  guint index;
  GMimeHeader *h;
} parser_walk_hdr;

static gint
parser_walk_hdr_cmp (gconstpointer a, gconstpointer b)
{
  const parser_walk_hdr *x = a, *y = b;

  if (x->offset != y->offset)
    return x->offset < y->offset ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

static gint
parser_walk_hdr_cmp_data (gconstpointer a, gconstpointer b, gpointer data)
{
  return parser_walk_hdr_cmp (a, b);
}

/* (transfer full) g_mime_utils_header_unfold() of @raw: without the
 * white space (space, tab, CR, LF) at either end and without CR and LF
 * within.  For an ASCII value without "=?" this is also what GMime's
 * g_mime_header_get_value() gives (its decoder then copies every token
 * as it is).  */
static void
parser_walk_unfold_span (const char *raw, const char **start,
                         const char **end)
{
  const char *s = raw, *e;

  while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
    s++;
  e = s + strlen (s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'
                   || e[-1] == '\n'))
    e--;
  *start = s;
  *end = e;
}

static char *
parser_walk_unfold (const char *raw)
{
  const char *s, *e;
  char *out, *o;

  parser_walk_unfold_span (raw, &s, &e);
  o = out = g_malloc ((gsize) (e - s) + 1);
  /* the runs between line ends, copied whole */
  while (s < e)
    {
      const char *r = s;

      while (r < e && *r != '\r' && *r != '\n')
        r++;
      memcpy (o, s, (gsize) (r - s));
      o += r - s;
      while (r < e && (*r == '\r' || *r == '\n'))
        r++;
      s = r;
    }
  *o = '\0';
  return out;
}

/* Every top-level header in the order received: GMime keeps Content-*
 * on the body part, so both lists are merged by offset.  */
static void
parser_walk_header_list (parser_walk *w, GMimeMessage *msg)
{
  GMimeObject *lists[2] = { GMIME_OBJECT (msg),
                            g_mime_message_get_mime_part (msg) };
  GMimeHeaderList *hls[2];
  guint counts[2], total = 0, run = 0;
  gboolean sorted[2] = { TRUE, TRUE };
  parser_walk_hdr *both, *merged;
  /* both lists and the merge: on the stack for a usual message */
  parser_walk_hdr inline_hdrs[2 * PARSER_WALK_INDEX_INLINE];
  g_autofree parser_walk_hdr *heap_hdrs = NULL;

  for (guint l = 0; l < 2; l++)
    {
      hls[l] = lists[l] ? g_mime_object_get_header_list (lists[l]) : NULL;
      counts[l] = hls[l] ? (guint) MAX (g_mime_header_list_get_count (hls[l]),
                                        0)
                         : 0;
      total += counts[l];
    }
  /* both lists in one array, then in (offset, index) order: each list is
   * normally in that order already, and two sorted runs are merged */
  if (total <= PARSER_WALK_INDEX_INLINE)
    both = inline_hdrs;
  else
    both = heap_hdrs = g_new (parser_walk_hdr, (gsize) total * 2);
  merged = both + total;
  for (guint l = 0; l < 2; l++)
    for (guint i = 0; i < counts[l]; i++)
      {
        parser_walk_hdr *e = &both[run];

        e->h = g_mime_header_list_get_header_at (hls[l], (int) i);
        e->offset = g_mime_header_get_offset (e->h);
        e->index = run;
        if (e->offset < 0)
          e->offset = G_MAXINT64;
        if (i > 0 && parser_walk_hdr_cmp (e - 1, e) > 0)
          sorted[l] = FALSE;
        run++;
      }
  if (sorted[0] && sorted[1] && total > 0)
    {
      guint a = 0, b = counts[0], o = 0;

      while (a < counts[0] && b < total)
        merged[o++] = parser_walk_hdr_cmp (&both[a], &both[b]) <= 0
                          ? both[a++]
                          : both[b++];
      while (a < counts[0])
        merged[o++] = both[a++];
      while (b < total)
        merged[o++] = both[b++];
      memcpy (both, merged, total * sizeof *both);
    }
  if (!(sorted[0] && sorted[1]))
    g_qsort_with_data (both, (gint) total, sizeof *both,
                       parser_walk_hdr_cmp_data, NULL);
  for (guint i = 0; i < total; i++)
    {
      parser_walk_hdr *e = &both[i];
      const char *value;
      const char *raw = g_mime_header_get_raw_value (e->h);
      g_autofree char *mine = NULL;
      g_autofree char *cut = NULL;

      if (i >= PARSER_LIMIT_HEADERS)
        {
          w->m->anomalies |= PARSER_ANOMALY_HEADERS;
          break;
        }
      /* After a quiet parse every value is ASCII without "=?"
       * (parser_walk_quiet_safe()): GMime's decoded value is the raw one
       * unfolded, made here without its tokens.  */
      if (w->quiet_parse && raw != NULL)
        {
          const char *s, *t;

          g_ptr_array_add (w->m->header_names,
                           parser_clean_text (g_mime_header_get_name (e->h),
                                              -1, 998));
          /* a value on one line (most) is taken in place */
          parser_walk_unfold_span (raw, &s, &t);
          if (memchr (s, '\n', (gsize) (t - s)) == NULL
              && memchr (s, '\r', (gsize) (t - s)) == NULL)
            g_ptr_array_add (w->m->header_values,
                             parser_walk_value_len (w, s, (gsize) (t - s)));
          else
            {
              mine = parser_walk_unfold (raw);
              g_ptr_array_add (w->m->header_values,
                               parser_walk_value (w, mine));
            }
          continue;
        }
      cut = parser_walk_fix_cut_utf8 (raw);
      value = g_mime_header_get_value (e->h);
      /* B words and UTF-8 words of bad bytes: decoded one at a time (F3,
       * F5), not by GMime; a character cut short, as U+FFFD (F11).  */
      if (cut != NULL)
        {
          w->m->anomalies |= PARSER_ANOMALY_CHARSET;
          value = mine = parser_walk_decode_words (w, cut);
        }
      else if (raw != NULL && strstr (raw, "=?") != NULL
               && parser_walk_b_to_q_needed (raw))
        value = mine = parser_walk_decode_words (w, raw);
      g_ptr_array_add (w->m->header_names,
                       parser_clean_text (g_mime_header_get_name (e->h), -1,
                                          998));
      g_ptr_array_add (w->m->header_values,
                       parser_walk_value (w, value ? value : ""));
    }
}

static void
parser_walk_headers (parser_walk *w, GMimeMessage *msg)
{
  parser_message *m = w->m;
  GMimeObject *o = GMIME_OBJECT (msg);
  GDateTime *date;
  GMimeReferences *refs;
  const char *refs_raw;
  const char *irt;
  const char *id;
  g_autofree char *irt_mine = NULL;
  g_autofree char *refs_mine = NULL;
  parser_walk_index f;

  parser_walk_index_init (&f, o);
  {
    /* After a quiet parse no value has an encoded word, a cut character
     * or a byte to repair: GMime's subject and addresses stand, and
     * parser_walk_check_words() has nothing to find.  */
    gboolean plain = w->quiet_parse;
    g_autofree char *subject = plain
        ? g_strdup (g_mime_message_get_subject (msg))
        : parser_walk_subject (w, msg, &f);
    InternetAddressList *from = plain ? NULL
        : parser_walk_address_list (w, &f, "From");
    InternetAddressList *to = plain ? NULL
        : parser_walk_address_list (w, &f, "To");
    InternetAddressList *cc = plain ? NULL
        : parser_walk_address_list (w, &f, "Cc");
    InternetAddressList *reply_to = plain ? NULL
        : parser_walk_address_list (w, &f, "Reply-To");

    m->subject = parser_walk_value (w, subject);
    m->from = parser_walk_first_address (
        w, from ? from : g_mime_message_get_from (msg));
    parser_walk_addresses (w, to ? to : g_mime_message_get_to (msg), m->to,
                           PARSER_LIMIT_LIST, 0);
    parser_walk_addresses (w, cc ? cc : g_mime_message_get_cc (msg), m->cc,
                           PARSER_LIMIT_LIST, 0);
    m->reply_to = parser_walk_first_address (
        w, reply_to ? reply_to : g_mime_message_get_reply_to (msg));
    g_clear_object (&from);
    g_clear_object (&to);
    g_clear_object (&cc);
    g_clear_object (&reply_to);
  }
  for (guint i = 0; i < 4 && !w->quiet_parse; i++)
    parser_walk_check_words (w, &f, (const char *[]){ "Subject", "From", "To",
                                                      "Cc" }[i]);

  date = g_mime_message_get_date (msg);
  m->date = date ? g_date_time_to_unix (date) : 0;
  if (date != NULL)
    {
      GDateTime *fixed = parser_walk_short_zone_date (w, &f);
      if (fixed != NULL)
        {
          m->date = g_date_time_to_unix (fixed);
          g_date_time_unref (fixed);
        }
    }
  id = g_mime_message_get_message_id (msg);
  m->message_id = id && *id ? parser_walk_value_or_null (w, id) : NULL;

  /* what g_mime_object_get_header() gives (the decoded value of the first
   * field of the name), from the index instead of GMime's table */
  irt = parser_walk_index_value (w, &f, "In-Reply-To", &irt_mine);
  refs_raw = parser_walk_index_value (w, &f, "References", &refs_mine);
  parser_walk_index_clear (&f);
  if (irt != NULL)
    {
      GMimeReferences *r = g_mime_references_parse (w->opts, irt);
      if (r != NULL && g_mime_references_length (r) > 0)
        m->in_reply_to = parser_walk_value_or_null (
            w, g_mime_references_get_message_id (r, 0));
      else
        {
          g_autofree char *d = g_mime_utils_decode_message_id (irt);
          m->in_reply_to = parser_walk_value_or_null (w, d);
        }
      if (r != NULL)
        g_mime_references_free (r);
    }

  refs = refs_raw ? g_mime_references_parse (w->opts, refs_raw) : NULL;
  for (int i = 0; refs && i < g_mime_references_length (refs); i++)
    {
      char *v;
      if (m->references->len >= PARSER_LIMIT_LIST)
        {
          m->anomalies |= PARSER_ANOMALY_HEADERS;
          break;
        }
      v = parser_walk_value_or_null (w, g_mime_references_get_message_id (refs,
                                                                        i));
      if (v)
        g_ptr_array_add (m->references, v);
    }
  if (refs != NULL)
    g_mime_references_free (refs);
  parser_walk_header_list (w, msg);
}

/* ------------------------------------------------------------ result */

void
parser_attachment_free (parser_attachment *a)
{
  if (a == NULL)
    return;
  g_free (a->name);
  g_free (a->declared_type);
  g_free (a->detected_type);
  g_clear_pointer (&a->content, g_bytes_unref);
  g_free (a->content_id);
  g_free (a);
}

void
parser_address_free (parser_address *a)
{
  if (a == NULL)
    return;
  g_free (a->name);
  g_free (a->addr);
  g_free (a);
}

/* Top-level header fields of a usual message (the 2 KB benchmark message
 * has 13, one through a big provider 20 to 40): a size to start from, not
 * a limit.  */
#define PARSER_MESSAGE_FIELDS_USUAL 32

parser_message *
parser_message_new (void)
{
  parser_message *m = g_new0 (parser_message, 1);

  m->to = g_ptr_array_new_with_free_func ((GDestroyNotify) parser_address_free);
  m->cc = g_ptr_array_new_with_free_func ((GDestroyNotify) parser_address_free);
  m->references = g_ptr_array_new_with_free_func (g_free);
  /* room for a usual message's top-level fields at once: grown from
   * nothing, each array would be reallocated five times on the way */
  m->header_names = g_ptr_array_new_full (PARSER_MESSAGE_FIELDS_USUAL, g_free);
  m->header_values = g_ptr_array_new_full (PARSER_MESSAGE_FIELDS_USUAL,
                                           g_free);
  m->forwarded = g_ptr_array_new_with_free_func (g_free);
  m->attachments = g_ptr_array_new_with_free_func (
      (GDestroyNotify) parser_attachment_free);
  m->case_refs = g_ptr_array_new_with_free_func (g_free);
  m->personal = g_ptr_array_new_with_free_func ((GDestroyNotify) parser_pd_free);
  m->notes = g_ptr_array_new_with_free_func (g_free);
  return m;
}

void
parser_message_free (parser_message *m)
{
  if (m == NULL)
    return;
  g_free (m->subject);
  parser_address_free (m->from);
  g_ptr_array_unref (m->to);
  g_ptr_array_unref (m->cc);
  parser_address_free (m->reply_to);
  g_free (m->message_id);
  g_free (m->in_reply_to);
  g_ptr_array_unref (m->references);
  g_ptr_array_unref (m->header_names);
  g_ptr_array_unref (m->header_values);
  g_free (m->text);
  g_free (m->quoted);
  g_ptr_array_unref (m->forwarded);
  g_ptr_array_unref (m->attachments);
  g_free (m->report_message_id);
  g_free (m->report_status);
  g_free (m->report_recipient);
  g_free (m->auto_reason);
  g_ptr_array_unref (m->case_refs);
  g_ptr_array_unref (m->personal);
  g_ptr_array_unref (m->notes);
  g_free (m);
}

/* The set of (kind, value) pairs parser_walk_take_personal() has listed:
 * a hash table of the parser_pd * themselves (owned by m->personal), not
 * of "kind:value" strings made for each datum.  */
static guint
parser_walk_pd_hash (gconstpointer p)
{
  const parser_pd *pd = p;

  return g_str_hash (pd->value) * 31u + (guint) pd->kind;
}

static gboolean
parser_walk_pd_equal (gconstpointer a, gconstpointer b)
{
  const parser_pd *x = a, *y = b;

  return x->kind == y->kind && strcmp (x->value, y->value) == 0;
}

/* Up to this many listed, a new datum is compared with each; beyond, a
 * hash table of them is made (a message has a few, or hundreds).  */
#define PARSER_WALK_PD_LINEAR 16

/* Whether (kind, value) of @pd is in m->personal.  *@seen: NULL, or the
 * table of m->personal made here once the list is long.  Everything in
 * m->personal came through parser_walk_take_personal() with this @seen.  */
static gboolean
parser_walk_pd_listed (parser_message *m, GHashTable **seen,
                       const parser_pd *pd)
{
  if (*seen == NULL && m->personal->len < PARSER_WALK_PD_LINEAR)
    {
      for (guint j = 0; j < m->personal->len; j++)
        if (parser_walk_pd_equal (m->personal->pdata[j], pd))
          return TRUE;
      return FALSE;
    }
  if (*seen == NULL)
    {
      *seen = g_hash_table_new (parser_walk_pd_hash, parser_walk_pd_equal);
      for (guint j = 0; j < m->personal->len; j++)
        g_hash_table_add (*seen, m->personal->pdata[j]);
    }
  return g_hash_table_contains (*seen, pd);
}

/* Move personal data from @found to m->personal: each (kind, value) once,
 * at most PARSER_LIMIT_LIST.  *@seen: NULL at first (see
 * parser_walk_pd_listed()); the caller frees what it becomes.  */
static void
parser_walk_take_personal (parser_walk *w, GHashTable **seen,
                           GPtrArray *found)
{
  parser_message *m = w->m;

  for (guint i = 0; i < found->len; i++)
    {
      parser_pd *pd = found->pdata[i];

      if (pd == NULL || pd->value == NULL
          || strlen (pd->value) > PARSER_LIMIT_HEADER_VALUE)
        continue;
      if (parser_walk_pd_listed (m, seen, pd))
        continue;
      if (m->personal->len >= PARSER_LIMIT_LIST)
        {
          parser_walk_note (w, "more than %d personal data items: the rest "
                            "not listed", PARSER_LIMIT_LIST);
          break;
        }
      if (*seen != NULL)
        g_hash_table_add (*seen, pd);
      g_ptr_array_add (m->personal, found->pdata[i]);
      found->pdata[i] = NULL;
    }
  g_ptr_array_set_size (found, 0);
}

static char *
parser_walk_redact (parser_walk *w, char *text, GPtrArray *found)
{
  guint count = 0;
  char *out;

  if (text == NULL)
    return NULL;
  /* every text here came out of parser_walk_to_utf8 or
   * parser_clean_text: valid UTF-8 */
  out = parser_cards_redact_take (text, TRUE, &count, found);
  w->m->cards_redacted += count;
  return out;
}

/* What the rest of intake needs, from the parsed fields: quoted history,
 * card redaction, personal data, special categories, auto-reply, case
 * references.  */
static void
parser_walk_derive (parser_walk *w, char *raw_text)
{
  parser_message *m = w->m;
  const parser_context *ctx = w->ctx;
  g_autoptr (GPtrArray) found = g_ptr_array_new_with_free_func (
      (GDestroyNotify) parser_pd_free);
  g_autoptr (GHashTable) seen = NULL;
  g_autoptr (GPtrArray) refs = g_ptr_array_new_with_free_func (g_free);
  char *new_text = NULL, *quoted = NULL;
  const char *reason = NULL;

  /* the walker's text: to_utf8 output, and HTML, flowed and uuencode
   * passes over it that keep whole characters */
  parser_quote_split_valid (raw_text, &new_text, &quoted);
  g_free (raw_text);
  m->text = parser_walk_redact (w, new_text, found);
  m->quoted = parser_walk_redact (w, quoted, found);
  m->subject = parser_walk_redact (w, m->subject, found);
  for (guint i = 0; i < m->forwarded->len; i++)
    m->forwarded->pdata[i] = parser_walk_redact (w, m->forwarded->pdata[i],
                                                 found);
  /* The same numbers in the raw header values (Subject) go too; they are
   * counted once, above.  */
  for (guint i = 0; i < m->header_values->len; i++)
    {
      guint dummy = 0;

      /* parser_walk_value() made each: valid UTF-8 */
      m->header_values->pdata[i] = parser_cards_redact_take (
          m->header_values->pdata[i], TRUE, &dummy, NULL);
    }
  parser_walk_take_personal (w, &seen, found);

  /* all valid UTF-8: parser_walk_redact() says why */
  {
    parser_pd_seen pd_seen = { 0 };

    if (m->subject)
      parser_pd_find_valid (m->subject, found, &pd_seen);
    parser_pd_find_valid (m->text, found, &pd_seen);
    parser_pd_find_valid (m->quoted, found, &pd_seen);
    for (guint i = 0; i < m->forwarded->len; i++)
      parser_pd_find_valid (m->forwarded->pdata[i], found, &pd_seen);
    parser_pd_seen_clear (&pd_seen);
  }
  parser_walk_take_personal (w, &seen, found);

  if (ctx != NULL && ctx->lexicon != NULL)
    {
      g_autofree char *both = g_strconcat (m->subject ? m->subject : "", "\n",
                                           m->text, NULL);
      m->special = parser_lexicon_match_valid (ctx->lexicon, both);
    }

  m->auto_reply = parser_autoreply_detect (
      m->header_names, m->header_values, ctx ? ctx->envelope_from : NULL,
      m->from ? m->from->addr : NULL, m->subject, m->text, m->is_report,
      &reason);
  m->auto_reason = m->auto_reply && reason ? g_strdup (reason) : NULL;

  if (m->subject)
    parser_refs_find (m->subject, refs);
  for (guint i = 0; ctx && ctx->envelope_rcpts && ctx->envelope_rcpts[i]; i++)
    parser_refs_find (ctx->envelope_rcpts[i], refs);
  for (guint i = 0; i < refs->len && i < PARSER_LIMIT_LIST; i++)
    g_ptr_array_add (m->case_refs, parser_clean_text (refs->pdata[i], -1, 998));
}

parser_message *
parser_message_parse (GBytes *raw, const parser_context *ctx)
{
  static const char *fallback[] = { "UTF-8", "windows-1252", NULL };
  parser_walk w = { 0 };
  parser_message *m;
  gsize len = 0;
  const guint8 *data = raw ? g_bytes_get_data (raw, &len) : NULL;
  GMimeStream *stream;
  GByteArray *shell;
  GMimeParser *parser;
  GMimeMessage *msg;
  g_autoptr (GBytes) screened = NULL;
  char *text;

  parser_init ();
  m = parser_message_new ();
  w.m = m;
  w.ctx = ctx;
  w.opts = g_mime_parser_options_new ();
  g_mime_parser_options_set_fallback_charsets (w.opts, fallback);
  if (data == NULL)
    data = (const guint8 *) "";
  screened = parser_walk_prescreen (&w, data, len);
  if (screened != NULL)
    data = g_bytes_get_data (screened, &len);
  if (data == NULL)
    data = (const guint8 *) "";

  /* Bytes GMime cannot warn about are parsed without the callback (the
   * tree's objects keep copies of the options they were parsed with);
   * w.opts has it from then on, for what is parsed again.  */
  /* The scan encodes where GMime 3.2.13 warns: under another GMime
   * (run-time library) every message is parsed with the callback until
   * the scan is checked against that version's source.  */
  w.quiet_parse = gmime_major_version == 3 && gmime_minor_version == 2
                  && gmime_micro_version == 13
                  && parser_walk_quiet_safe (data, len);
  w.quiet_len = len;
  if (!w.quiet_parse)
    g_mime_parser_options_set_warning_callback (w.opts,
                                                parser_walk_gmime_warning,
                                                &w);
  stream = parser_walk_stream_new (data, len, &shell);
  parser = parser_walk_parser_take (stream);
  msg = g_mime_parser_construct_message (parser, w.opts);
  if (w.quiet_parse)
    {
      g_mime_parser_options_set_warning_callback (w.opts,
                                                  parser_walk_gmime_warning,
                                                  &w);
      if (msg == NULL)
        {
          /* not expected of a header block that passed; parse again, as
           * any other message is */
          w.quiet_parse = FALSE;
          parser_walk_parser_give (parser);
          parser_walk_stream_free (stream, shell);
          stream = parser_walk_stream_new (data, len, &shell);
          parser = parser_walk_parser_take (stream);
          msg = g_mime_parser_construct_message (parser, w.opts);
        }
    }

  if (msg == NULL)
    {
      gboolean cut = FALSE;
      m->anomalies |= PARSER_ANOMALY_UNPARSEABLE;
      parser_walk_note (&w, "GMime could not parse the message: its bytes "
                        "are kept as text");
      text = parser_walk_to_utf8 (&w, data, len, NULL, PARSER_LIMIT_TEXT,
                                  &cut);
      if (cut)
        m->anomalies |= PARSER_ANOMALY_TRUNCATED_TEXT;
      /* No quote split, personal data or lexicon; cards are still
       * redacted, and loops and case references still come from the
       * envelope.  */
      {
        g_autoptr (GPtrArray) found = g_ptr_array_new_with_free_func (
            (GDestroyNotify) parser_pd_free);
        g_autoptr (GHashTable) seen = NULL;
        g_autoptr (GPtrArray) refs = g_ptr_array_new_with_free_func (g_free);
        const char *reason = NULL;

        m->text = parser_walk_redact (&w, text, found);
        parser_walk_take_personal (&w, &seen, found);
        m->auto_reply = parser_autoreply_detect (
            m->header_names, m->header_values, ctx ? ctx->envelope_from : NULL,
            NULL, NULL, "", FALSE, &reason);
        m->auto_reason = m->auto_reply && reason ? g_strdup (reason) : NULL;
        for (guint i = 0; ctx && ctx->envelope_rcpts && ctx->envelope_rcpts[i];
             i++)
          parser_refs_find (ctx->envelope_rcpts[i], refs);
        for (guint i = 0; i < refs->len && i < PARSER_LIMIT_LIST; i++)
          g_ptr_array_add (m->case_refs,
                           parser_clean_text (refs->pdata[i], -1, 998));
      }
      m->quoted = g_strdup ("");
    }
  else
    {
      parser_walk_buf buf = { data, len, 0 };
      parser_walk_text acc = { g_string_new (NULL) };

      acc.top = TRUE;
      parser_walk_headers (&w, msg);
      parser_walk_message (&w, msg, 0, &acc, &buf, len);
      m->text_from_html = acc.any_html && !acc.any_plain;
      text = parser_walk_text_finish (&acc);
      if (w.parts_skipped > 0)
        parser_walk_note (&w, "more than %d MIME parts: %u not walked",
                          PARSER_LIMIT_PARTS, w.parts_skipped);
      if (w.depth_skipped > 0)
        parser_walk_note (&w, "nesting deeper than %d: %u part%s not walked",
                          PARSER_LIMIT_DEPTH, w.depth_skipped,
                          w.depth_skipped == 1 ? "" : "s");
      parser_walk_derive (&w, text);
    }
  parser_walk_warning_notes (&w);

  g_clear_object (&msg);
  parser_walk_parser_give (parser);
  parser_walk_stream_free (stream, shell);
  g_mime_parser_options_free (w.opts);
  if (w.quiet_opts != NULL)
    g_mime_parser_options_free (w.quiet_opts);
  return m;
}
