/*
 * parser_pack.c - a parser_message as JSON (intakectl parse), as flat
 * binary bytes for the trip from a parse worker to the master and back,
 * and the names of flags and kinds.
 *
 * Owns: what it returns.  Unpacking treats the bytes as untrusted (they
 * come from a process that parsed hostile mail): the pack must be of this
 * version, every length within the bytes there are, nothing left over,
 * every string valid UTF-8 without NUL and bounded, every count within
 * the parser's limits, every flag a known bit; anything else is refused
 * with PARSER_ERROR_MALFORMED and nothing is returned.  Attachment content is not copied on unpack: it references
 * the packed bytes.
 */
#include "parser/parser.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "parser/parser_sha256.h"
#include "parser/parser_text.h"

/* Text, quoted and forwarded strings: PARSER_LIMIT_TEXT, with room for
 * card redaction, which turns 13 digits into 19 characters.  */
#define PARSER_PACK_TEXT_MAX    (2 * (gsize) PARSER_LIMIT_TEXT)
/* Every other string: header values and names, addresses, ids, types,
 * notes, personal data (the same allowance over the header value cap).  */
#define PARSER_PACK_VALUE_MAX   (2 * (gsize) PARSER_LIMIT_HEADER_VALUE)

#define PARSER_PACK_ANOMALY_MASK  ((guint) ((PARSER_ANOMALY_TRUNCATED_TEXT \
                                             << 1) - 1))
#define PARSER_PACK_ATT_MASK      ((guint) ((PARSER_ATT_FORWARDED << 1) - 1))
#define PARSER_PACK_SPECIAL_MASK  ((guint) ((PARSER_SPECIAL_CRIMINAL << 1) \
                                            - 1))

G_DEFINE_QUARK (parser-error-quark, parser_error)

/* ------------------------------------------------------------ names
 * Anomalies and attachment flags as in docs/limits.md (snake_case);
 * personal-data kinds as in docs/personal-data.md.  */

const char *
parser_anomaly_name (parser_anomaly bit)
{
  switch (bit)
    {
    case PARSER_ANOMALY_UNPARSEABLE: return "unparseable";
    case PARSER_ANOMALY_NESTING: return "nesting";
    case PARSER_ANOMALY_PARTS: return "parts";
    case PARSER_ANOMALY_HEADERS: return "headers";
    case PARSER_ANOMALY_DECODED_SIZE: return "decoded_size";
    case PARSER_ANOMALY_PARAMS: return "params";
    case PARSER_ANOMALY_FILENAME: return "filename";
    case PARSER_ANOMALY_CHARSET: return "charset";
    case PARSER_ANOMALY_ENCODED_WORD: return "encoded_word";
    case PARSER_ANOMALY_BOUNDARY: return "boundary";
    case PARSER_ANOMALY_CONFLICTING: return "conflicting";
    case PARSER_ANOMALY_GMIME_WARNING: return "gmime_warning";
    case PARSER_ANOMALY_GMIME_CRITICAL: return "gmime_critical";
    case PARSER_ANOMALY_TNEF: return "tnef";
    case PARSER_ANOMALY_UUENCODE: return "uuencode";
    case PARSER_ANOMALY_TRUNCATED_TEXT: return "truncated_text";
    }
  return "unknown";
}

const char *
parser_att_flag_name (parser_att_flag bit)
{
  switch (bit)
    {
    case PARSER_ATT_INLINE: return "inline";
    case PARSER_ATT_EXECUTABLE: return "executable";
    case PARSER_ATT_DOUBLE_EXT: return "double_ext";
    case PARSER_ATT_TYPE_MISMATCH: return "type_mismatch";
    case PARSER_ATT_NAME_CLEANED: return "name_cleaned";
    case PARSER_ATT_FROM_TNEF: return "from_tnef";
    case PARSER_ATT_FROM_UUENCODE: return "from_uuencode";
    case PARSER_ATT_FORWARDED: return "forwarded";
    }
  return "unknown";
}

const char *
parser_special_name (parser_special bit)
{
  switch (bit)
    {
    case PARSER_SPECIAL_HEALTH: return "health";
    case PARSER_SPECIAL_ETHNIC: return "ethnic";
    case PARSER_SPECIAL_RELIGION: return "religion";
    case PARSER_SPECIAL_SEXUAL: return "sexual";
    case PARSER_SPECIAL_UNION: return "union";
    case PARSER_SPECIAL_POLITICAL: return "political";
    case PARSER_SPECIAL_GENETIC: return "genetic";
    case PARSER_SPECIAL_BIOMETRIC: return "biometric";
    case PARSER_SPECIAL_CRIMINAL: return "criminal";
    }
  return "unknown";
}

const char *
parser_pd_kind_name (parser_pd_kind kind)
{
  switch (kind)
    {
    case PARSER_PD_EMAIL: return "email";
    case PARSER_PD_PHONE: return "phone";
    case PARSER_PD_POSTCODE: return "postcode";
    case PARSER_PD_NINO: return "nino";
    case PARSER_PD_DOB: return "dob";
    case PARSER_PD_SORT_CODE: return "sort-code";
    case PARSER_PD_ACCOUNT: return "account";
    case PARSER_PD_CARD: return "card";
    }
  return "unknown";
}

/* ------------------------------------------------------------ JSON */

static void
parser_json_string (JsonBuilder *b, const char *member, const char *s)
{
  if (member)
    json_builder_set_member_name (b, member);
  if (s)
    json_builder_add_string_value (b, s);
  else
    json_builder_add_null_value (b);
}

static void
parser_json_address (JsonBuilder *b, const char *member,
                     const parser_address *a)
{
  if (member)
    json_builder_set_member_name (b, member);
  if (a == NULL)
    {
      json_builder_add_null_value (b);
      return;
    }
  json_builder_begin_object (b);
  parser_json_string (b, "name", a->name);
  parser_json_string (b, "addr", a->addr);
  json_builder_end_object (b);
}

static void
parser_json_addresses (JsonBuilder *b, const char *member, GPtrArray *list)
{
  json_builder_set_member_name (b, member);
  json_builder_begin_array (b);
  for (guint i = 0; list && i < list->len; i++)
    parser_json_address (b, NULL, list->pdata[i]);
  json_builder_end_array (b);
}

static void
parser_json_strings (JsonBuilder *b, const char *member, GPtrArray *list)
{
  json_builder_set_member_name (b, member);
  json_builder_begin_array (b);
  for (guint i = 0; list && i < list->len; i++)
    parser_json_string (b, NULL, list->pdata[i]);
  json_builder_end_array (b);
}

static void
parser_json_bits (JsonBuilder *b, const char *member, guint bits,
                  const char *(*name) (guint))
{
  json_builder_set_member_name (b, member);
  json_builder_begin_array (b);
  for (guint i = 0; i < 32; i++)
    if (bits & (1u << i))
      json_builder_add_string_value (b, name (1u << i));
  json_builder_end_array (b);
}

static const char *
parser_json_anomaly (guint bit)
{
  return parser_anomaly_name ((parser_anomaly) bit);
}

static const char *
parser_json_att (guint bit)
{
  return parser_att_flag_name ((parser_att_flag) bit);
}

static const char *
parser_json_special (guint bit)
{
  return parser_special_name ((parser_special) bit);
}

char *
parser_message_to_json (const parser_message *m)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GDateTime) when = NULL;
  g_autofree char *iso = NULL;
  char *out;

  if (m->date != 0)
    when = g_date_time_new_from_unix_utc (m->date);
  if (when != NULL)
    iso = g_date_time_format (when, "%Y-%m-%dT%H:%M:%SZ");

  json_builder_begin_object (b);
  parser_json_string (b, "subject", m->subject);
  parser_json_address (b, "from", m->from);
  parser_json_addresses (b, "to", m->to);
  parser_json_addresses (b, "cc", m->cc);
  parser_json_address (b, "reply_to", m->reply_to);
  parser_json_string (b, "date", iso);
  json_builder_set_member_name (b, "date_unix");
  json_builder_add_int_value (b, m->date);
  parser_json_string (b, "message_id", m->message_id);
  parser_json_string (b, "in_reply_to", m->in_reply_to);
  parser_json_strings (b, "references", m->references);

  json_builder_set_member_name (b, "headers");
  json_builder_begin_array (b);
  for (guint i = 0; m->header_names && i < m->header_names->len; i++)
    {
      json_builder_begin_array (b);
      parser_json_string (b, NULL, m->header_names->pdata[i]);
      parser_json_string (b, NULL, i < m->header_values->len
                                       ? m->header_values->pdata[i] : NULL);
      json_builder_end_array (b);
    }
  json_builder_end_array (b);

  parser_json_string (b, "text", m->text);
  parser_json_string (b, "quoted", m->quoted);
  json_builder_set_member_name (b, "text_from_html");
  json_builder_add_boolean_value (b, m->text_from_html);
  parser_json_strings (b, "forwarded", m->forwarded);

  json_builder_set_member_name (b, "attachments");
  json_builder_begin_array (b);
  for (guint i = 0; m->attachments && i < m->attachments->len; i++)
    {
      const parser_attachment *a = m->attachments->pdata[i];
      json_builder_begin_object (b);
      parser_json_string (b, "name", a->name);
      parser_json_string (b, "declared_type", a->declared_type);
      parser_json_string (b, "detected_type", a->detected_type);
      json_builder_set_member_name (b, "size");
      json_builder_add_int_value (b, (gint64) a->size);
      parser_json_string (b, "sha256", a->sha256);
      parser_json_string (b, "content_id", a->content_id);
      parser_json_bits (b, "flags", a->flags, parser_json_att);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);

  json_builder_set_member_name (b, "n_parts");
  json_builder_add_int_value (b, m->n_parts);
  json_builder_set_member_name (b, "is_report");
  json_builder_add_boolean_value (b, m->is_report);
  parser_json_string (b, "report_message_id", m->report_message_id);
  parser_json_string (b, "report_status", m->report_status);
  parser_json_string (b, "report_recipient", m->report_recipient);
  json_builder_set_member_name (b, "auto_reply");
  json_builder_add_boolean_value (b, m->auto_reply);
  parser_json_string (b, "auto_reason", m->auto_reason);
  parser_json_strings (b, "case_refs", m->case_refs);

  json_builder_set_member_name (b, "personal");
  json_builder_begin_array (b);
  for (guint i = 0; m->personal && i < m->personal->len; i++)
    {
      const parser_pd *pd = m->personal->pdata[i];
      json_builder_begin_object (b);
      parser_json_string (b, "kind", parser_pd_kind_name (pd->kind));
      parser_json_string (b, "value", pd->value);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);

  parser_json_bits (b, "special", m->special, parser_json_special);
  json_builder_set_member_name (b, "cards_redacted");
  json_builder_add_int_value (b, m->cards_redacted);
  parser_json_bits (b, "anomalies", m->anomalies, parser_json_anomaly);
  parser_json_strings (b, "notes", m->notes);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  out = json_generator_to_data (gen, NULL);
  /* json-glib 1.6 leaves U+001F unescaped (it escapes below 0x1f only),
   * which is not JSON.  The byte 0x1f is that character and nothing else
   * in UTF-8, and the generator writes it only inside strings.  */
  if (strchr (out, '\x1f') != NULL)
    {
      GString *fixed = g_string_sized_new (strlen (out) + 16);
      for (const char *p = out; *p; p++)
        if (*p == '\x1f')
          g_string_append (fixed, "\\u001f");
        else
          g_string_append_c (fixed, *p);
      g_free (out);
      out = g_string_free (fixed, FALSE);
    }
  return out;
}

/* ------------------------------------------------------------ pack
 *
 * The format: a flat run of fields in the order of parser_message, little
 * endian, nothing between them and nothing after the last:
 *
 *   u32      PARSER_PACK_MAGIC (format and version)
 *   str      u32 length, then that many bytes (UTF-8, no NUL, no
 *            terminator)
 *   mstr     u32 length, PARSER_PACK_NONE for NULL, then the bytes
 *   bool     u8, 0 or 1
 *   list     u32 count, then the entries
 *   addr     mstr name, str addr
 *   maddr    u8 0 (NULL) or 1 followed by an addr
 *   att      str name, declared, detected; u64 size; str sha256; u64
 *            content length, the content; mstr content_id; u32 flags
 *   pd       u32 kind, str value
 *
 *   magic, mstr subject, maddr from, list addr to, list addr cc, maddr
 *   reply_to, i64 date, mstr message_id, mstr in_reply_to, list str
 *   references, list str header_names, list str header_values, mstr text,
 *   mstr quoted, bool text_from_html, list str forwarded, list att
 *   attachments, u32 n_parts, bool is_report, mstr report_message_id,
 *   mstr report_status, mstr report_recipient, bool auto_reply, mstr
 *   auto_reason, list str case_refs, list pd personal, u32 special, u32
 *   cards_redacted, u32 anomalies, list str notes.
 *
 * It replaced a GVariant of the same fields (version 1), whose building
 * and normal-form check, one allocation per node, took about a quarter of
 * a parse worker's CPU and a third of the master's main loop per message
 * (docs/performance.md).  Both ends are the same binary; a pack of another
 * version is refused.  */

#define PARSER_PACK_MAGIC  0x32504b49u  /* "IKP2" read as little endian */
#define PARSER_PACK_NONE   0xffffffffu

static inline void
parser_pack_u32 (GByteArray *b, guint32 v)
{
  guint32 le = GUINT32_TO_LE (v);

  g_byte_array_append (b, (const guint8 *) &le, 4);
}

static inline void
parser_pack_u64 (GByteArray *b, guint64 v)
{
  guint64 le = GUINT64_TO_LE (v);

  g_byte_array_append (b, (const guint8 *) &le, 8);
}

static inline void
parser_pack_u8 (GByteArray *b, guint8 v)
{
  g_byte_array_append (b, &v, 1);
}

/* A string for the pack: valid UTF-8 whatever the caller put there.  */
static void
parser_pack_str (GByteArray *b, const char *s)
{
  g_autofree char *valid = NULL;
  gsize len;

  if (s == NULL)
    s = "";
  len = strlen (s);
  if (!parser_text_utf8_valid (s, len))
    {
      s = valid = g_utf8_make_valid (s, (gssize) len);
      len = strlen (s);
    }
  parser_pack_u32 (b, (guint32) len);
  g_byte_array_append (b, (const guint8 *) s, (guint) len);
}

static void
parser_pack_mstr (GByteArray *b, const char *s)
{
  if (s == NULL)
    parser_pack_u32 (b, PARSER_PACK_NONE);
  else
    parser_pack_str (b, s);
}

static void
parser_pack_addr (GByteArray *b, const parser_address *a)
{
  parser_pack_mstr (b, a->name);
  parser_pack_str (b, a->addr);
}

static void
parser_pack_maddr (GByteArray *b, const parser_address *a)
{
  parser_pack_u8 (b, a != NULL);
  if (a != NULL)
    parser_pack_addr (b, a);
}

static void
parser_pack_addrs (GByteArray *b, GPtrArray *list)
{
  parser_pack_u32 (b, list ? list->len : 0);
  for (guint i = 0; list && i < list->len; i++)
    parser_pack_addr (b, list->pdata[i]);
}

static void
parser_pack_strs (GByteArray *b, GPtrArray *list)
{
  parser_pack_u32 (b, list ? list->len : 0);
  for (guint i = 0; list && i < list->len; i++)
    parser_pack_str (b, list->pdata[i]);
}

static gsize
parser_pack_guess (const parser_message *m)
{
  gsize n = 4096;

  if (m->text)
    n += strlen (m->text);
  if (m->quoted)
    n += strlen (m->quoted);
  for (guint i = 0; m->attachments && i < m->attachments->len; i++)
    {
      const parser_attachment *a = m->attachments->pdata[i];
      n += 512 + (a->content ? g_bytes_get_size (a->content) : 0);
    }
  return MIN (n, (gsize) G_MAXUINT - 1);
}

gsize
parser_message_pack_size_hint (const parser_message *m)
{
  return parser_pack_guess (m);
}

GBytes *
parser_message_pack (const parser_message *m)
{
  GByteArray *b = g_byte_array_sized_new ((guint) parser_pack_guess (m));

  parser_message_pack_append (b, m);
  return g_byte_array_free_to_bytes (b);
}

void
parser_message_pack_append (GByteArray *b, const parser_message *m)
{
  parser_pack_u32 (b, PARSER_PACK_MAGIC);
  parser_pack_mstr (b, m->subject);
  parser_pack_maddr (b, m->from);
  parser_pack_addrs (b, m->to);
  parser_pack_addrs (b, m->cc);
  parser_pack_maddr (b, m->reply_to);
  parser_pack_u64 (b, (guint64) m->date);
  parser_pack_mstr (b, m->message_id);
  parser_pack_mstr (b, m->in_reply_to);
  parser_pack_strs (b, m->references);
  parser_pack_strs (b, m->header_names);
  parser_pack_strs (b, m->header_values);
  parser_pack_mstr (b, m->text);
  parser_pack_mstr (b, m->quoted);
  parser_pack_u8 (b, m->text_from_html != FALSE);
  parser_pack_strs (b, m->forwarded);

  parser_pack_u32 (b, m->attachments ? m->attachments->len : 0);
  for (guint i = 0; m->attachments && i < m->attachments->len; i++)
    {
      const parser_attachment *a = m->attachments->pdata[i];
      gsize clen = 0;
      const guint8 *c = a->content ? g_bytes_get_data (a->content, &clen)
                                   : NULL;

      parser_pack_str (b, a->name);
      parser_pack_str (b, a->declared_type);
      parser_pack_str (b, a->detected_type);
      parser_pack_u64 (b, a->size);
      parser_pack_str (b, a->sha256);
      parser_pack_u64 (b, clen);
      if (clen > 0)
        g_byte_array_append (b, c, (guint) clen);
      parser_pack_mstr (b, a->content_id);
      parser_pack_u32 (b, a->flags);
    }

  parser_pack_u32 (b, m->n_parts);
  parser_pack_u8 (b, m->is_report != FALSE);
  parser_pack_mstr (b, m->report_message_id);
  parser_pack_mstr (b, m->report_status);
  parser_pack_mstr (b, m->report_recipient);
  parser_pack_u8 (b, m->auto_reply != FALSE);
  parser_pack_mstr (b, m->auto_reason);
  parser_pack_strs (b, m->case_refs);

  parser_pack_u32 (b, m->personal ? m->personal->len : 0);
  for (guint i = 0; m->personal && i < m->personal->len; i++)
    {
      const parser_pd *pd = m->personal->pdata[i];
      parser_pack_u32 (b, (guint32) pd->kind);
      parser_pack_str (b, pd->value);
    }

  parser_pack_u32 (b, m->special);
  parser_pack_u32 (b, m->cards_redacted);
  parser_pack_u32 (b, m->anomalies);
  parser_pack_strs (b, m->notes);
}

/* ------------------------------------------------------------ unpack */

typedef struct {
  GBytes *bytes;               /* the pack (attachment content slices it) */
  const guint8 *base;
  gsize len;
  gsize at;                    /* next byte */
  const char *field;           /* for the error message */
  GError **error;
  gboolean failed;
} parser_unpack;

static gboolean parser_unpack_fail (parser_unpack *u, const char *what)
    G_GNUC_WARN_UNUSED_RESULT;

static gboolean
parser_unpack_fail (parser_unpack *u, const char *what)
{
  if (!u->failed)
    g_set_error (u->error, PARSER_ERROR, PARSER_ERROR_MALFORMED,
                 "parser pack: %s: %s", u->field, what);
  u->failed = TRUE;
  return FALSE;
}

static gboolean
parser_unpack_take (parser_unpack *u, gsize n, const guint8 **out)
{
  if (u->failed)
    return FALSE;
  if (n > u->len - u->at)
    return parser_unpack_fail (u, "cut short");
  *out = u->base + u->at;
  u->at += n;
  return TRUE;
}

static gboolean
parser_unpack_u32 (parser_unpack *u, const char *field, guint32 *out)
{
  const guint8 *p = NULL;
  guint32 le;

  u->field = field;
  if (!parser_unpack_take (u, 4, &p))
    return FALSE;
  memcpy (&le, p, 4);
  *out = GUINT32_FROM_LE (le);
  return TRUE;
}

static gboolean
parser_unpack_u64 (parser_unpack *u, const char *field, guint64 *out)
{
  const guint8 *p = NULL;
  guint64 le;

  u->field = field;
  if (!parser_unpack_take (u, 8, &p))
    return FALSE;
  memcpy (&le, p, 8);
  *out = GUINT64_FROM_LE (le);
  return TRUE;
}

static gboolean
parser_unpack_bool (parser_unpack *u, const char *field, gboolean *out)
{
  const guint8 *p = NULL;

  u->field = field;
  if (!parser_unpack_take (u, 1, &p))
    return FALSE;
  if (*p > 1)
    return parser_unpack_fail (u, "not a boolean");
  *out = *p;
  return TRUE;
}

/* A list's count, within @max and the bytes left (every entry takes at
 * least @min_size).  */
static gboolean
parser_unpack_count (parser_unpack *u, const char *field, gsize max,
                     gsize min_size, guint32 *out)
{
  if (!parser_unpack_u32 (u, field, out))
    return FALSE;
  if (*out > max)
    return parser_unpack_fail (u, "too many entries");
  if ((gsize) *out * min_size > u->len - u->at)
    return parser_unpack_fail (u, "cut short");
  return TRUE;
}

/* The string whose length was read: UTF-8, no NUL, at most @max bytes.  */
static gboolean
parser_unpack_bytes_str (parser_unpack *u, guint32 len, gsize max,
                         char **out)
{
  const guint8 *p = NULL;

  if (len > max)
    return parser_unpack_fail (u, "string too long");
  if (!parser_unpack_take (u, len, &p))
    return FALSE;
  /* What g_utf8_validate_len () accepts, NUL refused too, eight ASCII
   * bytes at a time (the text of a 50 KB letter is checked here once a
   * message; test_parser_text test_utf8_valid_as_glib).  */
  if (!parser_text_utf8_valid ((const char *) p, len))
    return parser_unpack_fail (u, "string not UTF-8");
  *out = g_strndup ((const char *) p, len);
  return TRUE;
}

static gboolean
parser_unpack_str (parser_unpack *u, const char *field, gsize max,
                   char **out)
{
  guint32 len;

  return parser_unpack_u32 (u, field, &len)
         && parser_unpack_bytes_str (u, len, max, out);
}

static gboolean
parser_unpack_mstr (parser_unpack *u, const char *field, gsize max,
                    char **out)
{
  guint32 len;

  *out = NULL;
  if (!parser_unpack_u32 (u, field, &len))
    return FALSE;
  return len == PARSER_PACK_NONE || parser_unpack_bytes_str (u, len, max, out);
}

static gboolean
parser_unpack_strs (parser_unpack *u, const char *field, gsize max_items,
                    gsize max, GPtrArray *out)
{
  guint32 n;

  if (!parser_unpack_count (u, field, max_items, 4, &n))
    return FALSE;
  for (guint32 i = 0; i < n; i++)
    {
      char *v = NULL;
      if (!parser_unpack_str (u, field, max, &v))
        return FALSE;
      g_ptr_array_add (out, v);
    }
  return TRUE;
}

static gboolean
parser_unpack_addr (parser_unpack *u, const char *field, parser_address **out)
{
  parser_address *a = g_new0 (parser_address, 1);

  *out = a;
  return parser_unpack_mstr (u, field, PARSER_PACK_VALUE_MAX, &a->name)
         && parser_unpack_str (u, field, PARSER_PACK_VALUE_MAX, &a->addr);
}

static gboolean
parser_unpack_maddr (parser_unpack *u, const char *field,
                     parser_address **out)
{
  gboolean present = FALSE;

  *out = NULL;
  if (!parser_unpack_bool (u, field, &present))
    return FALSE;
  return !present || parser_unpack_addr (u, field, out);
}

static gboolean
parser_unpack_addrs (parser_unpack *u, const char *field, GPtrArray *out)
{
  guint32 n;

  if (!parser_unpack_count (u, field, PARSER_LIMIT_LIST, 8, &n))
    return FALSE;
  for (guint32 i = 0; i < n; i++)
    {
      parser_address *a = NULL;
      gboolean ok = parser_unpack_addr (u, field, &a);
      g_ptr_array_add (out, a);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

static gboolean
parser_unpack_sha256 (const char *s)
{
  if (strlen (s) != 64)
    return FALSE;
  for (guint i = 0; i < 64; i++)
    if (!g_ascii_isxdigit (s[i]) || g_ascii_isupper (s[i]))
      return FALSE;
  return TRUE;
}

static gboolean
parser_unpack_attachments (parser_unpack *u, GPtrArray *out)
{
  guint32 n;
  guint64 total = 0;

  /* name, declared, detected, size, sha256, length, content_id, flags */
  if (!parser_unpack_count (u, "attachments", PARSER_LIMIT_PARTS,
                            4 + 4 + 4 + 8 + 4 + 8 + 4 + 4, &n))
    return FALSE;
  for (guint32 i = 0; i < n; i++)
    {
      parser_attachment *a = g_new0 (parser_attachment, 1);
      g_autofree char *hex = NULL;
      const guint8 *content = NULL;
      guint64 size, clen;
      gsize off;

      g_ptr_array_add (out, a);
      if (!parser_unpack_str (u, "attachments", PARSER_LIMIT_FILENAME,
                              &a->name)
          || !parser_unpack_str (u, "attachments", PARSER_PACK_VALUE_MAX,
                                 &a->declared_type)
          || !parser_unpack_str (u, "attachments", PARSER_PACK_VALUE_MAX,
                                 &a->detected_type)
          || !parser_unpack_u64 (u, "attachments", &size)
          || !parser_unpack_str (u, "attachments", 64, &hex))
        return FALSE;
      if (*a->name == '\0')
        return parser_unpack_fail (u, "empty attachment name");
      if (!parser_unpack_sha256 (hex))
        return parser_unpack_fail (u, "bad sha256");
      memcpy (a->sha256, hex, 65);
      if (!parser_unpack_u64 (u, "attachments", &clen))
        return FALSE;
      if (clen != size)
        return parser_unpack_fail (u, "size does not match content");
      total += size;
      if (size > PARSER_LIMIT_DECODED || total > PARSER_LIMIT_DECODED)
        return parser_unpack_fail (u, "content over the decoded limit");
      off = u->at;
      if (!parser_unpack_take (u, (gsize) size, &content))
        return FALSE;
      /* The master does not take a worker's word for the hash it files:
       * a worker is where hostile input runs.  */
      {
        char want[65];

        parser_sha256_hex (content, (gsize) size, want);
        if (memcmp (want, a->sha256, 65) != 0)
          return parser_unpack_fail (u, "sha256 does not match content");
      }
      a->size = (gsize) size;
      /* A slice of the packed bytes (no copy).  */
      a->content = g_bytes_new_from_bytes (u->bytes, off, (gsize) size);
      if (!parser_unpack_mstr (u, "attachments", PARSER_PACK_VALUE_MAX,
                               &a->content_id)
          || !parser_unpack_u32 (u, "attachments", &a->flags))
        return FALSE;
      if (a->flags & ~PARSER_PACK_ATT_MASK)
        return parser_unpack_fail (u, "unknown attachment flag");
    }
  return TRUE;
}

static gboolean
parser_unpack_personal (parser_unpack *u, GPtrArray *out)
{
  guint32 n;

  if (!parser_unpack_count (u, "personal", PARSER_LIMIT_LIST, 8, &n))
    return FALSE;
  for (guint32 i = 0; i < n; i++)
    {
      parser_pd *pd = g_new0 (parser_pd, 1);
      guint32 k;

      g_ptr_array_add (out, pd);
      if (!parser_unpack_u32 (u, "personal", &k))
        return FALSE;
      if (k > PARSER_PD_CARD)
        return parser_unpack_fail (u, "unknown personal data kind");
      pd->kind = (parser_pd_kind) k;
      if (!parser_unpack_str (u, "personal", PARSER_PACK_VALUE_MAX,
                              &pd->value))
        return FALSE;
    }
  return TRUE;
}

parser_message *
parser_message_unpack (GBytes *bytes, GError **error)
{
  parser_message *m;
  parser_unpack u = { bytes, NULL, 0, 0, "pack", error, FALSE };
  guint32 magic = 0;
  guint64 date = 0;
  gboolean ok;

  g_return_val_if_fail (bytes != NULL, NULL);
  u.base = g_bytes_get_data (bytes, &u.len);
  if (!parser_unpack_u32 (&u, "version", &magic))
    return NULL;
  if (magic != PARSER_PACK_MAGIC)
    {
      g_set_error (error, PARSER_ERROR, PARSER_ERROR_MALFORMED,
                   "parser pack: unknown version");
      return NULL;
    }

  m = parser_message_new ();
  ok = parser_unpack_mstr (&u, "subject", PARSER_PACK_VALUE_MAX, &m->subject)
       && parser_unpack_maddr (&u, "from", &m->from)
       && parser_unpack_addrs (&u, "to", m->to)
       && parser_unpack_addrs (&u, "cc", m->cc)
       && parser_unpack_maddr (&u, "reply_to", &m->reply_to)
       && parser_unpack_u64 (&u, "date", &date)
       && parser_unpack_mstr (&u, "message_id", PARSER_PACK_VALUE_MAX,
                              &m->message_id)
       && parser_unpack_mstr (&u, "in_reply_to", PARSER_PACK_VALUE_MAX,
                              &m->in_reply_to)
       && parser_unpack_strs (&u, "references", PARSER_LIMIT_LIST,
                              PARSER_PACK_VALUE_MAX, m->references)
       && parser_unpack_strs (&u, "header_names", PARSER_LIMIT_HEADERS,
                              PARSER_PACK_VALUE_MAX, m->header_names)
       && parser_unpack_strs (&u, "header_values", PARSER_LIMIT_HEADERS,
                              PARSER_PACK_VALUE_MAX, m->header_values)
       && parser_unpack_mstr (&u, "text", PARSER_PACK_TEXT_MAX, &m->text)
       && parser_unpack_mstr (&u, "quoted", PARSER_PACK_TEXT_MAX, &m->quoted)
       && parser_unpack_bool (&u, "text_from_html", &m->text_from_html)
       && parser_unpack_strs (&u, "forwarded", PARSER_LIMIT_PARTS,
                              PARSER_PACK_TEXT_MAX, m->forwarded)
       && parser_unpack_attachments (&u, m->attachments)
       && parser_unpack_u32 (&u, "n_parts", &m->n_parts)
       && parser_unpack_bool (&u, "is_report", &m->is_report)
       && parser_unpack_mstr (&u, "report_message_id", PARSER_PACK_VALUE_MAX,
                              &m->report_message_id)
       && parser_unpack_mstr (&u, "report_status", PARSER_PACK_VALUE_MAX,
                              &m->report_status)
       && parser_unpack_mstr (&u, "report_recipient", PARSER_PACK_VALUE_MAX,
                              &m->report_recipient)
       && parser_unpack_bool (&u, "auto_reply", &m->auto_reply)
       && parser_unpack_mstr (&u, "auto_reason", PARSER_PACK_VALUE_MAX,
                              &m->auto_reason)
       && parser_unpack_strs (&u, "case_refs", PARSER_LIMIT_LIST,
                              PARSER_PACK_VALUE_MAX, m->case_refs)
       && parser_unpack_personal (&u, m->personal)
       && parser_unpack_u32 (&u, "special", &m->special)
       && parser_unpack_u32 (&u, "cards_redacted", &m->cards_redacted)
       && parser_unpack_u32 (&u, "anomalies", &m->anomalies)
       && parser_unpack_strs (&u, "notes", PARSER_LIMIT_NOTES,
                              PARSER_PACK_VALUE_MAX, m->notes);
  m->date = (gint64) date;
  u.field = "pack";
  if (ok && u.at != u.len)
    ok = parser_unpack_fail (&u, "bytes after the last field");
  if (ok && m->n_parts > PARSER_LIMIT_PARTS)
    ok = parser_unpack_fail (&u, "more parts than the limit");
  if (ok && (m->special & ~PARSER_PACK_SPECIAL_MASK))
    ok = parser_unpack_fail (&u, "unknown special category");
  if (ok && (m->anomalies & ~PARSER_PACK_ANOMALY_MASK))
    ok = parser_unpack_fail (&u, "unknown anomaly");
  if (ok && m->header_names->len != m->header_values->len)
    ok = parser_unpack_fail (&u, "header names and values differ in number");
  if (!ok)
    {
      parser_message_free (m);
      return NULL;
    }
  return m;
}
