/*
 * parser_pack.c - a parser_message as JSON (intakectl parse), as GVariant
 * bytes for the trip from a parse worker to the master and back, and the
 * names of flags and kinds.
 *
 * Owns: what it returns.  Unpacking treats the bytes as untrusted (they
 * come from a process that parsed hostile mail): the GVariant must be in
 * normal form, of this version, every string valid UTF-8 and bounded,
 * every count within the parser's limits, every flag a known bit;
 * anything else is refused with PARSER_ERROR_MALFORMED and nothing is
 * returned.  Attachment content is not copied on unpack: it references
 * the packed bytes.
 */
#include "parser/parser.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "parser/parser_text.h"

/* Format version, first member of every pack.  */
#define PARSER_PACK_VERSION     1u
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

/* version, subject, from, to, cc, reply_to, date, message_id, in_reply_to,
 * references, header_names, header_values, text, quoted, text_from_html,
 * forwarded, attachments (name, declared, detected, size, sha256, content,
 * content_id, flags), n_parts, is_report, report_message_id,
 * report_status, report_recipient, auto_reply, auto_reason, case_refs,
 * personal (kind, value), special, cards_redacted, anomalies, notes.  */
#define PARSER_PACK_ADDR "(mss)"
#define PARSER_PACK_ATT  "(ssstsaymsu)"
#define PARSER_PACK_TYPE                                                     \
  "(ums" "m" PARSER_PACK_ADDR "a" PARSER_PACK_ADDR "a" PARSER_PACK_ADDR     \
  "m" PARSER_PACK_ADDR "xmsmsasasas" "msmsbas" "a" PARSER_PACK_ATT           \
  "ubmsmsms" "bmsas" "a(us)" "uuuas)"

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

/* ------------------------------------------------------------ pack */

/* A string for the pack: valid UTF-8 whatever the caller put there.  */
static GVariant *
parser_pack_str (const char *s)
{
  if (s == NULL)
    s = "";
  if (!g_utf8_validate (s, -1, NULL))
    {
      g_autofree char *v = g_utf8_make_valid (s, -1);
      return g_variant_new_string (v);
    }
  return g_variant_new_string (s);
}

static GVariant *
parser_pack_mstr (const char *s)
{
  return g_variant_new_maybe (G_VARIANT_TYPE_STRING,
                              s ? parser_pack_str (s) : NULL);
}

static GVariant *
parser_pack_addr (const parser_address *a)
{
  return g_variant_new ("(@ms@s)", parser_pack_mstr (a->name),
                        parser_pack_str (a->addr));
}

static GVariant *
parser_pack_maddr (const parser_address *a)
{
  return g_variant_new_maybe (G_VARIANT_TYPE (PARSER_PACK_ADDR),
                              a ? parser_pack_addr (a) : NULL);
}

static GVariant *
parser_pack_addrs (GPtrArray *list)
{
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE ("a" PARSER_PACK_ADDR));
  for (guint i = 0; list && i < list->len; i++)
    g_variant_builder_add_value (&b, parser_pack_addr (list->pdata[i]));
  return g_variant_builder_end (&b);
}

static GVariant *
parser_pack_strs (GPtrArray *list)
{
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE_STRING_ARRAY);
  for (guint i = 0; list && i < list->len; i++)
    g_variant_builder_add_value (&b, parser_pack_str (list->pdata[i]));
  return g_variant_builder_end (&b);
}

GBytes *
parser_message_pack (const parser_message *m)
{
  GVariantBuilder atts, pds;
  g_autoptr (GVariant) v = NULL;

  g_variant_builder_init (&atts, G_VARIANT_TYPE ("a" PARSER_PACK_ATT));
  for (guint i = 0; m->attachments && i < m->attachments->len; i++)
    {
      const parser_attachment *a = m->attachments->pdata[i];
      g_autoptr (GBytes) empty = g_bytes_new (NULL, 0);
      GVariant *kids[8];

      kids[0] = parser_pack_str (a->name);
      kids[1] = parser_pack_str (a->declared_type);
      kids[2] = parser_pack_str (a->detected_type);
      kids[3] = g_variant_new_uint64 (a->size);
      kids[4] = parser_pack_str (a->sha256);
      kids[5] = g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING,
                                          a->content ? a->content : empty,
                                          TRUE);
      kids[6] = parser_pack_mstr (a->content_id);
      kids[7] = g_variant_new_uint32 (a->flags);
      g_variant_builder_add_value (&atts, g_variant_new_tuple (kids, 8));
    }

  g_variant_builder_init (&pds, G_VARIANT_TYPE ("a(us)"));
  for (guint i = 0; m->personal && i < m->personal->len; i++)
    {
      const parser_pd *pd = m->personal->pdata[i];
      g_variant_builder_add_value (&pds, g_variant_new ("(u@s)",
                                                        (guint32) pd->kind,
                                                        parser_pack_str (
                                                            pd->value)));
    }

  {
    GVariant *kids[] = {
      g_variant_new_uint32 (PARSER_PACK_VERSION),
      parser_pack_mstr (m->subject),
      parser_pack_maddr (m->from),
      parser_pack_addrs (m->to),
      parser_pack_addrs (m->cc),
      parser_pack_maddr (m->reply_to),
      g_variant_new_int64 (m->date),
      parser_pack_mstr (m->message_id),
      parser_pack_mstr (m->in_reply_to),
      parser_pack_strs (m->references),
      parser_pack_strs (m->header_names),
      parser_pack_strs (m->header_values),
      parser_pack_mstr (m->text),
      parser_pack_mstr (m->quoted),
      g_variant_new_boolean (m->text_from_html),
      parser_pack_strs (m->forwarded),
      g_variant_builder_end (&atts),
      g_variant_new_uint32 (m->n_parts),
      g_variant_new_boolean (m->is_report),
      parser_pack_mstr (m->report_message_id),
      parser_pack_mstr (m->report_status),
      parser_pack_mstr (m->report_recipient),
      g_variant_new_boolean (m->auto_reply),
      parser_pack_mstr (m->auto_reason),
      parser_pack_strs (m->case_refs),
      g_variant_builder_end (&pds),
      g_variant_new_uint32 (m->special),
      g_variant_new_uint32 (m->cards_redacted),
      g_variant_new_uint32 (m->anomalies),
      parser_pack_strs (m->notes),
    };
    v = g_variant_ref_sink (g_variant_new_tuple (kids, G_N_ELEMENTS (kids)));
  }
  g_assert (g_variant_is_of_type (v, G_VARIANT_TYPE (PARSER_PACK_TYPE)));
  return g_variant_get_data_as_bytes (v);
}

/* ------------------------------------------------------------ unpack */

typedef struct {
  GVariant *v;
  gsize i;                     /* next child */
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

static GVariant *
parser_unpack_next (parser_unpack *u, const char *field)
{
  u->field = field;
  return g_variant_get_child_value (u->v, u->i++);
}

/* (transfer full) A string child checked for UTF-8 and @max bytes.  */
static gboolean
parser_unpack_str_of (parser_unpack *u, GVariant *s, gsize max, char **out)
{
  gsize len;
  const char *p = g_variant_get_string (s, &len);

  if (len > max)
    return parser_unpack_fail (u, "string too long");
  if (!g_utf8_validate (p, (gssize) len, NULL) || strlen (p) != len)
    return parser_unpack_fail (u, "string not UTF-8");
  *out = g_strndup (p, len);
  return TRUE;
}

static gboolean
parser_unpack_mstr_of (parser_unpack *u, GVariant *ms, gsize max, char **out)
{
  g_autoptr (GVariant) s = g_variant_get_maybe (ms);

  *out = NULL;
  return s == NULL || parser_unpack_str_of (u, s, max, out);
}

static gboolean
parser_unpack_mstr (parser_unpack *u, const char *field, gsize max,
                    char **out)
{
  g_autoptr (GVariant) c = parser_unpack_next (u, field);

  return parser_unpack_mstr_of (u, c, max, out);
}

static gboolean
parser_unpack_strs (parser_unpack *u, const char *field, gsize max_items,
                    gsize max, GPtrArray *out)
{
  g_autoptr (GVariant) c = parser_unpack_next (u, field);
  gsize n = g_variant_n_children (c);

  if (n > max_items)
    return parser_unpack_fail (u, "too many entries");
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) s = g_variant_get_child_value (c, i);
      char *v = NULL;
      if (!parser_unpack_str_of (u, s, max, &v))
        return FALSE;
      g_ptr_array_add (out, v);
    }
  return TRUE;
}

static gboolean
parser_unpack_addr_of (parser_unpack *u, GVariant *t, parser_address **out)
{
  g_autoptr (GVariant) name = g_variant_get_child_value (t, 0);
  g_autoptr (GVariant) addr = g_variant_get_child_value (t, 1);
  parser_address *a = g_new0 (parser_address, 1);

  *out = a;
  return parser_unpack_mstr_of (u, name, PARSER_PACK_VALUE_MAX, &a->name)
         && parser_unpack_str_of (u, addr, PARSER_PACK_VALUE_MAX, &a->addr);
}

static gboolean
parser_unpack_maddr (parser_unpack *u, const char *field,
                     parser_address **out)
{
  g_autoptr (GVariant) c = parser_unpack_next (u, field);
  g_autoptr (GVariant) t = g_variant_get_maybe (c);

  *out = NULL;
  return t == NULL || parser_unpack_addr_of (u, t, out);
}

static gboolean
parser_unpack_addrs (parser_unpack *u, const char *field, GPtrArray *out)
{
  g_autoptr (GVariant) c = parser_unpack_next (u, field);
  gsize n = g_variant_n_children (c);

  if (n > PARSER_LIMIT_LIST)
    return parser_unpack_fail (u, "too many addresses");
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) t = g_variant_get_child_value (c, i);
      parser_address *a = NULL;
      gboolean ok = parser_unpack_addr_of (u, t, &a);
      g_ptr_array_add (out, a);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

static guint32
parser_unpack_u32 (parser_unpack *u, const char *field)
{
  g_autoptr (GVariant) c = parser_unpack_next (u, field);

  return g_variant_get_uint32 (c);
}

static gboolean
parser_unpack_bool (parser_unpack *u, const char *field)
{
  g_autoptr (GVariant) c = parser_unpack_next (u, field);

  return g_variant_get_boolean (c);
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
  g_autoptr (GVariant) c = parser_unpack_next (u, "attachments");
  gsize n = g_variant_n_children (c);
  guint64 total = 0;

  if (n > PARSER_LIMIT_PARTS)
    return parser_unpack_fail (u, "too many attachments");
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) t = g_variant_get_child_value (c, i);
      g_autoptr (GVariant) name = g_variant_get_child_value (t, 0);
      g_autoptr (GVariant) decl = g_variant_get_child_value (t, 1);
      g_autoptr (GVariant) det = g_variant_get_child_value (t, 2);
      g_autoptr (GVariant) size = g_variant_get_child_value (t, 3);
      g_autoptr (GVariant) sha = g_variant_get_child_value (t, 4);
      g_autoptr (GVariant) content = g_variant_get_child_value (t, 5);
      g_autoptr (GVariant) cid = g_variant_get_child_value (t, 6);
      g_autoptr (GVariant) flags = g_variant_get_child_value (t, 7);
      parser_attachment *a = g_new0 (parser_attachment, 1);
      g_autofree char *hex = NULL;

      g_ptr_array_add (out, a);
      if (!parser_unpack_str_of (u, name, PARSER_LIMIT_FILENAME, &a->name)
          || !parser_unpack_str_of (u, decl, PARSER_PACK_VALUE_MAX,
                                    &a->declared_type)
          || !parser_unpack_str_of (u, det, PARSER_PACK_VALUE_MAX,
                                    &a->detected_type)
          || !parser_unpack_str_of (u, sha, 64, &hex)
          || !parser_unpack_mstr_of (u, cid, PARSER_PACK_VALUE_MAX,
                                     &a->content_id))
        return FALSE;
      if (*a->name == '\0')
        return parser_unpack_fail (u, "empty attachment name");
      if (!parser_unpack_sha256 (hex))
        return parser_unpack_fail (u, "bad sha256");
      memcpy (a->sha256, hex, 65);
      a->size = (gsize) g_variant_get_uint64 (size);
      if (g_variant_get_uint64 (size) != g_variant_get_size (content))
        return parser_unpack_fail (u, "size does not match content");
      total += g_variant_get_uint64 (size);
      if (total > PARSER_LIMIT_DECODED)
        return parser_unpack_fail (u, "content over the decoded limit");
      a->flags = g_variant_get_uint32 (flags);
      if (a->flags & ~PARSER_PACK_ATT_MASK)
        return parser_unpack_fail (u, "unknown attachment flag");
      /* A slice of the packed bytes (no copy).  */
      a->content = g_variant_get_data_as_bytes (content);
    }
  return TRUE;
}

static gboolean
parser_unpack_personal (parser_unpack *u, GPtrArray *out)
{
  g_autoptr (GVariant) c = parser_unpack_next (u, "personal");
  gsize n = g_variant_n_children (c);

  if (n > PARSER_LIMIT_LIST)
    return parser_unpack_fail (u, "too many personal data items");
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) t = g_variant_get_child_value (c, i);
      g_autoptr (GVariant) kind = g_variant_get_child_value (t, 0);
      g_autoptr (GVariant) value = g_variant_get_child_value (t, 1);
      parser_pd *pd = g_new0 (parser_pd, 1);
      guint32 k = g_variant_get_uint32 (kind);

      g_ptr_array_add (out, pd);
      if (k > PARSER_PD_CARD)
        return parser_unpack_fail (u, "unknown personal data kind");
      pd->kind = (parser_pd_kind) k;
      if (!parser_unpack_str_of (u, value, PARSER_PACK_VALUE_MAX, &pd->value))
        return FALSE;
    }
  return TRUE;
}

parser_message *
parser_message_unpack (GBytes *bytes, GError **error)
{
  g_autoptr (GVariant) v = NULL;
  parser_message *m;
  parser_unpack u = { NULL, 0, "pack", error, FALSE };
  gboolean ok;

  g_return_val_if_fail (bytes != NULL, NULL);
  v = g_variant_ref_sink (g_variant_new_from_bytes (
      G_VARIANT_TYPE (PARSER_PACK_TYPE), bytes, FALSE));
  if (!g_variant_is_normal_form (v))
    {
      g_set_error (error, PARSER_ERROR, PARSER_ERROR_MALFORMED,
                   "parser pack: not in normal form (%zu bytes)",
                   g_bytes_get_size (bytes));
      return NULL;
    }
  u.v = v;
  if (parser_unpack_u32 (&u, "version") != PARSER_PACK_VERSION)
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
       && parser_unpack_maddr (&u, "reply_to", &m->reply_to);
  if (ok)
    {
      g_autoptr (GVariant) d = parser_unpack_next (&u, "date");
      m->date = g_variant_get_int64 (d);
      ok = parser_unpack_mstr (&u, "message_id", PARSER_PACK_VALUE_MAX,
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
           && parser_unpack_mstr (&u, "quoted", PARSER_PACK_TEXT_MAX,
                                  &m->quoted);
    }
  if (ok)
    {
      m->text_from_html = parser_unpack_bool (&u, "text_from_html");
      ok = parser_unpack_strs (&u, "forwarded", PARSER_LIMIT_PARTS,
                               PARSER_PACK_TEXT_MAX, m->forwarded)
           && parser_unpack_attachments (&u, m->attachments);
    }
  if (ok)
    {
      m->n_parts = parser_unpack_u32 (&u, "n_parts");
      m->is_report = parser_unpack_bool (&u, "is_report");
      ok = parser_unpack_mstr (&u, "report_message_id", PARSER_PACK_VALUE_MAX,
                               &m->report_message_id)
           && parser_unpack_mstr (&u, "report_status", PARSER_PACK_VALUE_MAX,
                                  &m->report_status)
           && parser_unpack_mstr (&u, "report_recipient",
                                  PARSER_PACK_VALUE_MAX,
                                  &m->report_recipient);
    }
  if (ok)
    {
      m->auto_reply = parser_unpack_bool (&u, "auto_reply");
      ok = parser_unpack_mstr (&u, "auto_reason", PARSER_PACK_VALUE_MAX,
                               &m->auto_reason)
           && parser_unpack_strs (&u, "case_refs", PARSER_LIMIT_LIST,
                                  PARSER_PACK_VALUE_MAX, m->case_refs)
           && parser_unpack_personal (&u, m->personal);
    }
  if (ok)
    {
      m->special = parser_unpack_u32 (&u, "special");
      m->cards_redacted = parser_unpack_u32 (&u, "cards_redacted");
      m->anomalies = parser_unpack_u32 (&u, "anomalies");
      ok = parser_unpack_strs (&u, "notes", PARSER_LIMIT_NOTES,
                               PARSER_PACK_VALUE_MAX, m->notes);
    }
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
