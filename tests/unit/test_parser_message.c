/*
 * test_parser_message.c - the MIME walker (parser_message.c) and the pack
 * (parser_pack.c).
 *
 * Covers: SECURITY-TESTS 53-66 as far as parsing goes, built here (the big
 * ones generated: 2,000-level multipart and rfc822 nesting, 100,000
 * siblings, 20,000 RFC 2231 continuations, a 10 MiB Subject), each timed
 * (< 2 s, also under ASan) with its flags; a charset table; encoded words;
 * attachment names and flags; forwarded message/rfc822 (original bytes);
 * multipart/report; TNEF (tests/data/mail/mimekit/tnef and a crafted
 * stream); uuencode; text selection (alternative, related, mixed, HTML
 * only, flowed); headers; pack/unpack round trip on every file in
 * tests/data/mail, truncated and bit-flipped packs, every cut and every
 * single-byte change of a full pack, crafted lengths and counts at every
 * offset, hostile UTF-8 in a string field and every list at and over its
 * limit (unpack refuses, or gives a message that packs back to the same
 * bytes: a worker is untrusted); and every file of the
 * corpus ($INTAKE_CORPUS, default ../shared/corpus/mail) parsed within
 * 2 s into valid JSON.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-glib/json-glib.h>

#include "parser/parser.h"
#include "parser/parser_sha256.h"
#include "parser/parser_text.h"

/* Every case, however hostile, finishes within this (ASan included).  */
#define TEST_BUDGET_US (2 * G_USEC_PER_SEC)

/* ------------------------------------------------------------ helpers */

static parser_message *
parse_ctx (const char *data, gsize len, const parser_context *ctx)
{
  g_autoptr (GBytes) raw = g_bytes_new (data, len);
  parser_message *m = parser_message_parse (raw, ctx);

  ck_assert_ptr_nonnull (m);
  return m;
}

static parser_message *
parse_len (const char *data, gsize len)
{
  return parse_ctx (data, len, NULL);
}

static parser_message *
parse (const char *s)
{
  return parse_len (s, strlen (s));
}

/* The CPU time this thread has used, in us: a budget measured in it
 * holds whatever else the machine is doing (a loaded CI box once took a
 * 5 s wall-clock budget).  */
static gint64
thread_cpu_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (gint64) ts.tv_sec * G_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* Parse and check a CPU-time budget.  */
static parser_message *
parse_budget (GString *s, const char *what, gint64 budget)
{
  gint64 t0 = thread_cpu_us ();
  parser_message *m = parse_len (s->str, s->len);
  gint64 dt = thread_cpu_us () - t0;

  ck_assert_msg (dt < budget, "%s took %" G_GINT64_FORMAT " us", what, dt);
  return m;
}

static parser_message *
parse_timed (GString *s, const char *what)
{
  return parse_budget (s, what, TEST_BUDGET_US);
}

static void
assert_utf8 (const char *s, const char *what)
{
  /* Plain tests in the helpers: every ck_assert marks a point (a write
   * to Check's pipe), which is slow in loops.  */
  if (s != NULL && !g_utf8_validate (s, -1, NULL))
    ck_abort_msg ("%s is not UTF-8", what);
}

static void
assert_strs_utf8 (GPtrArray *a, const char *what)
{
  if (a == NULL)
    ck_abort_msg ("%s: no array", what);
  for (guint i = 0; i < a->len; i++)
    {
      if (a->pdata[i] == NULL)
        ck_abort_msg ("%s: NULL entry", what);
      assert_utf8 (a->pdata[i], what);
    }
}

static void
assert_addr_utf8 (const parser_address *a)
{
  if (a == NULL)
    return;
  assert_utf8 (a->name, "address name");
  if (a->addr == NULL)
    ck_abort_msg ("address without addr");
  assert_utf8 (a->addr, "address");
}

/* Every string of @m is valid UTF-8 and every array is there.  */
static void
assert_message_valid (const parser_message *m)
{
  assert_utf8 (m->subject, "subject");
  assert_addr_utf8 (m->from);
  assert_addr_utf8 (m->reply_to);
  for (guint i = 0; i < m->to->len; i++)
    assert_addr_utf8 (m->to->pdata[i]);
  for (guint i = 0; i < m->cc->len; i++)
    assert_addr_utf8 (m->cc->pdata[i]);
  assert_utf8 (m->message_id, "message_id");
  assert_utf8 (m->in_reply_to, "in_reply_to");
  assert_strs_utf8 (m->references, "references");
  assert_strs_utf8 (m->header_names, "header name");
  assert_strs_utf8 (m->header_values, "header value");
  ck_assert_uint_eq (m->header_names->len, m->header_values->len);
  assert_utf8 (m->text, "text");
  assert_utf8 (m->quoted, "quoted");
  assert_strs_utf8 (m->forwarded, "forwarded");
  for (guint i = 0; i < m->attachments->len; i++)
    {
      parser_attachment *a = m->attachments->pdata[i];
      if (a->name == NULL || *a->name == '\0'
          || strlen (a->name) > PARSER_LIMIT_FILENAME)
        ck_abort_msg ("attachment %u: bad name", i);
      assert_utf8 (a->name, "attachment name");
      assert_utf8 (a->declared_type, "declared type");
      assert_utf8 (a->detected_type, "detected type");
      assert_utf8 (a->content_id, "content id");
      if (a->size != g_bytes_get_size (a->content) || strlen (a->sha256) != 64)
        ck_abort_msg ("attachment %u: size or sha256", i);
    }
  assert_utf8 (m->report_message_id, "report message id");
  assert_utf8 (m->report_status, "report status");
  assert_utf8 (m->report_recipient, "report recipient");
  assert_utf8 (m->auto_reason, "auto reason");
  assert_strs_utf8 (m->case_refs, "case ref");
  for (guint i = 0; i < m->personal->len; i++)
    assert_utf8 (((parser_pd *) m->personal->pdata[i])->value, "personal");
  assert_strs_utf8 (m->notes, "note");
  ck_assert_uint_le (m->n_parts, PARSER_LIMIT_PARTS);
}

static parser_attachment *
find_att (const parser_message *m, const char *name)
{
  for (guint i = 0; i < m->attachments->len; i++)
    {
      parser_attachment *a = m->attachments->pdata[i];
      if (strcmp (a->name, name) == 0)
        return a;
    }
  return NULL;
}

static gboolean
has_header (const parser_message *m, const char *name)
{
  for (guint i = 0; i < m->header_names->len; i++)
    if (g_ascii_strcasecmp (m->header_names->pdata[i], name) == 0)
      return TRUE;
  return FALSE;
}

/* The project root: where tests/data/mail is, from the current directory
 * up.  */
static char *
project_root (void)
{
  g_autofree char *dir = g_get_current_dir ();

  for (int i = 0; i < 6; i++)
    {
      g_autofree char *probe = g_build_filename (dir, "tests", "data", "mail",
                                                 NULL);
      char *up;
      if (g_file_test (probe, G_FILE_TEST_IS_DIR))
        return g_steal_pointer (&dir);
      up = g_path_get_dirname (dir);
      g_free (dir);
      dir = up;
    }
  return NULL;
}

static void
collect_files (const char *dir, GPtrArray *out)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  if (d == NULL)
    return;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      char *path = g_build_filename (dir, name, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        {
          collect_files (path, out);
          g_free (path);
        }
      else if (g_str_has_prefix (name, "LICENSE") || strcmp (name, "NOTICE") == 0
               || g_str_has_suffix (name, ".md"))
        g_free (path);
      else
        g_ptr_array_add (out, path);
    }
}

static GPtrArray *
data_files (void)
{
  g_autofree char *root = project_root ();
  g_autofree char *dir = NULL;
  GPtrArray *files = g_ptr_array_new_with_free_func (g_free);

  ck_assert_msg (root != NULL, "tests/data/mail not found");
  dir = g_build_filename (root, "tests", "data", "mail", NULL);
  collect_files (dir, files);
  g_ptr_array_sort (files, (GCompareFunc) g_strcmp0);
  return files;
}

static GBytes *
read_file (const char *path)
{
  char *data = NULL;
  gsize len = 0;
  g_autoptr (GError) error = NULL;

  ck_assert_msg (g_file_get_contents (path, &data, &len, &error), "%s: %s",
                 path, error ? error->message : "");
  return g_bytes_new_take (data, len);
}

static const char *hdr =
  "From: Citizen <citizen@Example.ORG>\r\n"
  "To: enquiries@council.example\r\n"
  "Subject: test\r\n"
  "Message-ID: <m1@example.org>\r\n"
  "MIME-Version: 1.0\r\n";

/* ------------------------------------------------------------ 53-57 */

START_TEST (test_deep_multipart)
{
  /* SECURITY-TESTS 53: 2,000 levels; GMime stops at 1024, we at 50.  */
  GString *s = g_string_new (hdr);
  parser_message *m;
  const int n = 2000;

  g_string_append (s, "Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n");
  for (int i = 1; i < n; i++)
    g_string_append_printf (s, "--b%d\r\nContent-Type: multipart/mixed; "
                            "boundary=\"b%d\"\r\n\r\n", i - 1, i);
  g_string_append_printf (s, "--b%d\r\nContent-Type: text/plain\r\n\r\n"
                          "deep\r\n", n - 1);
  for (int i = n - 1; i >= 0; i--)
    g_string_append_printf (s, "--b%d--\r\n", i);
  m = parse_timed (s, "2,000-level multipart");
  ck_assert (m->anomalies & PARSER_ANOMALY_NESTING);
  ck_assert (m->anomalies & PARSER_ANOMALY_GMIME_CRITICAL);
  ck_assert_uint_le (m->n_parts, PARSER_LIMIT_DEPTH + 1);
  ck_assert_ptr_null (strstr (m->text, "deep"));
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_deep_rfc822)
{
  /* SECURITY-TESTS 54: 2,000 message/rfc822 levels (GMime stops at 512).  */
  GString *s = g_string_new (NULL);
  parser_message *m;

  for (int i = 0; i < 2000; i++)
    g_string_append_printf (s, "From: a@b.example\r\nSubject: level %d\r\n"
                            "Content-Type: message/rfc822\r\n\r\n", i);
  g_string_append (s, "From: a@b.example\r\nSubject: inner\r\n\r\nhello\r\n");
  m = parse_timed (s, "2,000-level rfc822");
  ck_assert (m->anomalies & PARSER_ANOMALY_NESTING);
  ck_assert_str_eq (m->subject, "level 0");
  ck_assert_uint_le (m->forwarded->len, PARSER_LIMIT_DEPTH);
  ck_assert_uint_gt (m->forwarded->len, 10);
  ck_assert (g_str_has_prefix (m->forwarded->pdata[0], "Subject: level 1"));
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_siblings)
{
  /* SECURITY-TESTS 55: 100,000 siblings; GMime does not warn, we count.  */
  GString *s = g_string_new (hdr);
  parser_message *m;

  g_string_append (s, "Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n");
  for (int i = 0; i < 100000; i++)
    g_string_append_printf (s, "--x\r\nContent-Type: text/plain\r\n\r\n"
                            "p%d\r\n", i);
  g_string_append (s, "--x--\r\n");
  m = parse_timed (s, "100,000 siblings");
  ck_assert (m->anomalies & PARSER_ANOMALY_PARTS);
  ck_assert_uint_eq (m->n_parts, PARSER_LIMIT_PARTS);
  {
    gboolean walked = FALSE, parsed = FALSE;
    for (guint i = 0; i < m->notes->len; i++)
      {
        walked |= strstr (m->notes->pdata[i], "not walked") != NULL;
        parsed |= strstr (m->notes->pdata[i], "were not parsed") != NULL;
      }
    ck_assert_msg (walked && parsed, "no note of the parts skipped");
  }
  /* the parts that were walked are all there */
  ck_assert (g_str_has_prefix (m->text, "p0\n\np1\n\np2"));
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_live_boundaries)
{
  /* SECURITY-TESTS 56: 1,000 live boundaries and a 5 MB body.  */
  GString *s = g_string_new (hdr);
  parser_message *m;
  const int n = 1000;

  g_string_append (s, "Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n");
  for (int i = 1; i < n; i++)
    g_string_append_printf (s, "--b%d\r\nContent-Type: multipart/mixed; "
                            "boundary=\"b%d\"\r\n\r\n", i - 1, i);
  g_string_append_printf (s, "--b%d\r\nContent-Type: application/octet-stream"
                          "\r\n\r\n", n - 1);
  for (int i = 0; i < 5 * 1024 * 1024 / 64; i++)
    g_string_append (s, "-- body line that looks a little like a boundary --"
                        "----------\r\n");
  for (int i = n - 1; i >= 0; i--)
    g_string_append_printf (s, "--b%d--\r\n", i);
  /* Body lines that all start with "--" make GMime test each against the
   * 1,000 live boundaries: the worst case, held to the 5 s per-message
   * budget of SECURITY-TESTS 56 (about 1 s without ASan).  */
  m = parse_budget (s, "1,000 live boundaries", 5 * G_USEC_PER_SEC);
  ck_assert (m->anomalies & PARSER_ANOMALY_NESTING);
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_giant_subject)
{
  /* SECURITY-TESTS 57: a single 10 MiB Subject.  */
  GString *s = g_string_new ("From: a@b.example\r\nSubject: ");
  parser_message *m;

  for (int i = 0; i < 10 * 1024 * 1024 / 16; i++)
    g_string_append (s, "AAAAAAAAAAAAAAA ");
  g_string_append (s, "\r\n\r\nbody\r\n");
  m = parse_timed (s, "10 MiB Subject");
  ck_assert (m->anomalies & PARSER_ANOMALY_HEADERS);
  ck_assert_ptr_nonnull (m->subject);
  ck_assert_uint_le (strlen (m->subject), PARSER_LIMIT_HEADER_VALUE);
  ck_assert_uint_gt (strlen (m->subject), 1000);
  ck_assert_str_eq (m->text, "body");
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_header_count)
{
  GString *s = g_string_new ("From: a@b.example\r\nSubject: many\r\n");
  parser_message *m;

  for (int i = 0; i < PARSER_LIMIT_HEADERS + 1; i++)
    g_string_append_printf (s, "X-H%d: v\r\n", i);
  g_string_append (s, "\r\nbody\r\n");
  m = parse_timed (s, "10,001 headers");
  ck_assert (m->anomalies & PARSER_ANOMALY_HEADERS);
  ck_assert_uint_le (m->header_names->len, PARSER_LIMIT_HEADERS);
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_text_cap)
{
  GString *s = g_string_new (hdr);
  parser_message *m;

  g_string_append (s, "Content-Type: text/plain; charset=utf-8\r\n\r\n");
  while (s->len < PARSER_LIMIT_TEXT + 512 * 1024)
    g_string_append (s, "The bins were not collected on Tuesday again.\r\n");
  m = parse_timed (s, "4.5 MiB of text");
  ck_assert (m->anomalies & PARSER_ANOMALY_TRUNCATED_TEXT);
  ck_assert_uint_le (strlen (m->text) + strlen (m->quoted), PARSER_LIMIT_TEXT);
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_decoded_cap)
{
  /* Each enclosed message is kept whole: 35 levels around 2 MiB make more
   * than PARSER_LIMIT_DECODED of content.  */
  GString *s = g_string_new (NULL);
  parser_message *m;
  gsize total = 0;

  for (int i = 0; i < 35; i++)
    g_string_append_printf (s, "From: a@b.example\r\nSubject: level %d\r\n"
                            "Content-Type: message/rfc822\r\n\r\n", i);
  g_string_append (s, "From: a@b.example\r\nSubject: inner\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n");
  while (s->len < 2 * 1024 * 1024)
    g_string_append (s, "0123456789abcdef0123456789abcdef0123456789abcdef\r\n");
  m = parse_timed (s, "35 x 2 MiB enclosed");
  ck_assert (m->anomalies & PARSER_ANOMALY_DECODED_SIZE);
  for (guint i = 0; i < m->attachments->len; i++)
    total += ((parser_attachment *) m->attachments->pdata[i])->size;
  ck_assert_uint_le (total, PARSER_LIMIT_DECODED);
  ck_assert_uint_gt (total, PARSER_LIMIT_DECODED / 2);
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

/* ------------------------------------------------------------ 58 */

typedef struct {
  const char *name;
  const char *body;            /* after the top-level headers */
  guint must;                  /* anomalies that must be set */
  const char *text;            /* (nullable) expected text */
} boundary_case;

static const boundary_case boundary_cases[] = {
  { "no boundary parameter",
    "Content-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: text/plain"
    "\r\n\r\nhi\r\n--x--\r\n",
    PARSER_ANOMALY_BOUNDARY | PARSER_ANOMALY_GMIME_CRITICAL, NULL },
  { "boundary=\"\"",
    "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n"
    "Content-Type: text/plain\r\n\r\nhi\r\n----\r\n",
    PARSER_ANOMALY_BOUNDARY, NULL },
  /* GMime gives no part for it: flagged, the raw bytes are kept */
  { "5,000-character boundary", NULL, PARSER_ANOMALY_BOUNDARY, NULL },
  { "boundary a, parts delimited by --ab",
    "Content-Type: multipart/mixed; boundary=a\r\n\r\n--ab\r\n"
    "Content-Type: text/plain\r\n\r\nhi\r\n--ab--\r\n",
    PARSER_ANOMALY_BOUNDARY, NULL },
  { "no closing delimiter",
    "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
    "Content-Type: text/plain\r\n\r\nopen\r\n",
    PARSER_ANOMALY_BOUNDARY, "open" },
  { "two Content-Type headers",
    "Content-Type: multipart/mixed; boundary=x\r\n"
    "Content-Type: multipart/mixed; boundary=y\r\n\r\n--x\r\n"
    "Content-Type: text/plain\r\n\r\nhi\r\n--x--\r\n",
    PARSER_ANOMALY_CONFLICTING | PARSER_ANOMALY_GMIME_CRITICAL, NULL },
  { "boundary inside base64 content",
    "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--x\r\naGVsbG8=\r\n"
    "--x\r\nContent-Type: text/plain\r\n\r\nafter\r\n--x--\r\n",
    0, NULL },
  { "preamble holding a fake part",
    "Content-Type: multipart/mixed; boundary=x\r\n\r\n"
    "Content-Type: text/html\r\n\r\n<b>fake</b>\r\n--x\r\n"
    "Content-Type: text/plain\r\n\r\nreal\r\n--x--\r\n",
    0, "real" },
  { "part with neither headers nor content",
    "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n"
    "Content-Type: text/plain\r\n\r\nhi\r\n--x--\r\n",
    PARSER_ANOMALY_GMIME_CRITICAL | PARSER_ANOMALY_BOUNDARY, NULL },
};

START_TEST (test_boundary_tricks)
{
  const boundary_case *c = &boundary_cases[_i];
  GString *s = g_string_new (hdr);
  parser_message *m;

  if (c->body != NULL)
    g_string_append (s, c->body);
  else
    {
      GString *b = g_string_new (NULL);
      for (int i = 0; i < 5000; i++)
        g_string_append_c (b, 'a' + i % 26);
      g_string_append_printf (s, "Content-Type: multipart/mixed; boundary=\"%s\""
                              "\r\n\r\n--%s\r\nContent-Type: text/plain\r\n\r\n"
                              "long\r\n--%s--\r\n", b->str, b->str, b->str);
      g_string_free (b, TRUE);
    }
  m = parse_timed (s, c->name);
  ck_assert_msg ((m->anomalies & c->must) == c->must,
                 "%s: anomalies %#x, want %#x", c->name, m->anomalies,
                 c->must);
  if (c->text)
    ck_assert_msg (strcmp (m->text, c->text) == 0, "%s: text \"%s\"",
                   c->name, m->text);
  ck_assert_ptr_null (strstr (m->text, "fake"));
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

/* ------------------------------------------------------------ 59 */

typedef struct {
  const char *subject;         /* raw Subject value */
  gboolean flagged;            /* PARSER_ANOMALY_ENCODED_WORD expected */
  const char *want;            /* (nullable) expected decoded subject */
} word_case;

static const word_case word_cases[] = {
  { "=?UTF-8?B?====?=", TRUE, NULL },
  { "=?UTF-8?Q?=ZZ=?=", TRUE, NULL },
  { "=?x-unknown?B?SGk=?=", TRUE, NULL },
  { "=?UTF-8*en?B?SGk=?=", FALSE, "Hi" },      /* RFC 2231 language: valid */
  { "=?UTF-8?B?SGk", TRUE, NULL },
  { "=?UTF-8?Q?caf=C3=A9?=", FALSE, "café" },
  { "=?ISO-8859-1?Q?caf=E9?=", FALSE, "café" },
  { "=?UTF-8?B?/w==?=", FALSE, NULL },         /* decodes to 0xFF: U+FFFD */
  { "plain \xff\xfe bytes", FALSE, NULL },
};

START_TEST (test_encoded_words)
{
  const word_case *c = &word_cases[_i];
  g_autofree char *msg = g_strdup_printf (
      "From: =?UTF-8?B?====?= <a@b.example>\r\nSubject: %s\r\n\r\nx\r\n",
      c->subject);
  parser_message *m = parse (msg);

  /* The From display name is broken in every case.  */
  ck_assert (m->anomalies & PARSER_ANOMALY_ENCODED_WORD);
  if (c->want)
    ck_assert_str_eq (m->subject, c->want);
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_encoded_words_subject_only)
{
  const word_case *c = &word_cases[_i];
  g_autofree char *msg = g_strdup_printf (
      "From: a@b.example\r\nSubject: %s\r\n\r\nx\r\n", c->subject);
  parser_message *m = parse (msg);

  ck_assert_msg (!!(m->anomalies & PARSER_ANOMALY_ENCODED_WORD) == c->flagged,
                 "%s: anomalies %#x", c->subject, m->anomalies);
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_encoded_words_bulk)
{
  GString *s = g_string_new ("From: a@b.example\r\nSubject:");
  parser_message *m;
  g_autofree char *big = NULL;
  g_autofree char *raw = g_malloc (75000);

  for (int i = 0; i < 10000; i++)
    g_string_append (s, " =?UTF-8?B?SGk=?=");
  g_string_append (s, "\r\n\r\nx\r\n");
  m = parse_timed (s, "10,000 adjacent encoded words");
  assert_message_valid (m);
  parser_message_free (m);

  memset (raw, 'x', 75000);
  big = g_base64_encode ((const guchar *) raw, 75000);
  g_string_printf (s, "From: a@b.example\r\nSubject: =?UTF-8?B?%s?=\r\n"
                   "Content-Type: application/octet-stream\r\n"
                   "Content-Disposition: attachment; filename=\"=?UTF-8?B?%s?=\""
                   "\r\n\r\nx\r\n", big, big);
  m = parse_timed (s, "one 100 KB encoded word");
  ck_assert_uint_le (strlen (m->subject), PARSER_LIMIT_HEADER_VALUE);
  ck_assert_uint_eq (m->attachments->len, 1);
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

/* ------------------------------------------------------------ 60-61 */

START_TEST (test_rfc2231_bomb)
{
  GString *s = g_string_new (hdr);
  parser_message *m;
  parser_attachment *a;

  g_string_append (s, "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      "Content-Disposition: attachment;");
  for (int i = 0; i < 20000; i++)
    g_string_append_printf (s, " filename*%d*=abcdefghijklmnopq;\r\n", i);
  g_string_append (s, "\r\n\r\ndata\r\n--x--\r\n");
  m = parse_timed (s, "20,000 RFC 2231 continuations");
  ck_assert_uint_eq (m->attachments->len, 1);
  a = m->attachments->pdata[0];
  ck_assert_uint_le (strlen (a->name), PARSER_LIMIT_FILENAME);
  ck_assert (a->flags & PARSER_ATT_NAME_CLEANED);
  ck_assert (m->anomalies & PARSER_ANOMALY_FILENAME);
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_rfc2231_odd)
{
  static const char *msg =
    "From: a@b.example\r\nSubject: odd\r\n"
    "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Disposition: attachment; filename*1*=b; filename*0*=a; "
    "filename*0*=c; name*4294967296*=x\r\n\r\ndata\r\n--x--\r\n";
  parser_message *m = parse (msg);

  ck_assert_uint_eq (m->attachments->len, 1);
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_param_count)
{
  GString *s = g_string_new (hdr);
  parser_message *m;

  g_string_append (s, "Content-Type: text/plain; charset=utf-8");
  for (int i = 0; i < 2 * PARSER_LIMIT_PARAMS; i++)
    g_string_append_printf (s, ";\r\n p%d=v", i);
  g_string_append (s, "\r\n\r\nbody\r\n");
  m = parse_timed (s, "200 parameters");
  ck_assert (m->anomalies & PARSER_ANOMALY_PARAMS);
  ck_assert_str_eq (m->text, "body");
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_gmime165)
{
  /* SECURITY-TESTS 61: parsing is fine; we never re-encode parameters.  */
  GString *s = g_string_new ("From: a@b.example\r\nSubject: 165\r\n"
                             "Content-Type: text/plain; ");
  parser_message *m;

  for (int i = 0; i < 72 * 1024; i++)
    g_string_append_c (s, 'K');
  g_string_append (s, "=\"\xd1\x9c\"\r\n\r\nbody\r\n");
  m = parse_timed (s, "GMime #165 parameter");
  ck_assert_str_eq (m->text, "body");
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

/* ------------------------------------------------------------ 62 */

typedef struct {
  const char *charset;         /* (nullable) */
  const char *subtype;
  const char *body;
  gsize body_len;              /* 0: strlen */
  const char *want;            /* (nullable) expected text */
  gboolean flagged;            /* PARSER_ANOMALY_CHARSET */
} charset_case;

static const charset_case charset_cases[] = {
  { "iso-8859-1", "plain", "caf\xe9", 0, "café", FALSE },
  { "windows-1252", "plain", "\x93quoted\x94 \x80", 0,
    "\xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x82\xac", FALSE },
  { "koi8-r", "plain", "\xf0\xd2\xc9\xd7\xc5\xd4", 0,
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", FALSE },
  { "shift_jis", "plain", "\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd", 0,
    "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf", FALSE },
  { "iso-2022-jp", "plain", "\x1b$B$3$s$K$A$O\x1b(B", 0,
    "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf", FALSE },
  { "utf-16", "plain", "\xfe\xff\x00h\x00i\x00", 7, "hi\xef\xbf\xbd", TRUE },
  { "utf-7", "plain", "+ADw-script+AD4-alert(1)+ADw-/script+AD4-", 0,
    "+ADw-script+AD4-alert(1)+ADw-/script+AD4-", TRUE },
  { "utf-7", "html", "+ADw-script+AD4-alert(1)+ADw-/script+AD4-", 0, NULL,
    TRUE },
  { "x-unknown", "plain", "hello \xe9", 0, "hello é", TRUE },
  { NULL, "plain", "caf\xe9", 0, "café", FALSE },
  { NULL, "plain", "caf\xc3\xa9", 0, "café", FALSE },
  { "us-ascii", "plain", "caf\xc3\xa9", 0, "café", FALSE },
  { "utf-8", "plain", "\xc0\xbcscript\xc0\xbe", 0,
    "\xef\xbf\xbd\xef\xbf\xbdscript\xef\xbf\xbd\xef\xbf\xbd", TRUE },
  { "utf-8", "plain", "nul\0byte", 8, "nul\xef\xbf\xbd" "byte", TRUE },
  { "utf-8", "plain", "esc\x1b[31mred\xc2\x9b", 0,
    "esc\xef\xbf\xbd[31mred\xef\xbf\xbd", FALSE },
  { "ks_c_5601-1987", "plain", "\xc7\xd1", 0, "\xed\x95\x9c", FALSE },
};

START_TEST (test_charsets)
{
  const charset_case *c = &charset_cases[_i];
  gsize n = c->body_len ? c->body_len : strlen (c->body);
  g_autofree char *b64 = g_base64_encode ((const guchar *) c->body, n);
  g_autofree char *msg = g_strdup_printf (
      "From: a@b.example\r\nSubject: cs\r\nMIME-Version: 1.0\r\n"
      "Content-Type: text/%s%s%s\r\nContent-Transfer-Encoding: base64\r\n"
      "\r\n%s\r\n",
      c->subtype, c->charset ? "; charset=" : "",
      c->charset ? c->charset : "", b64);
  parser_message *m = parse (msg);

  assert_message_valid (m);
  ck_assert_uint_le (strlen (m->text), 4 * n + 16);
  if (c->want)
    ck_assert_msg (strcmp (m->text, c->want) == 0, "%s: got \"%s\"",
                   c->charset ? c->charset : "(none)", m->text);
  ck_assert_msg (!!(m->anomalies & PARSER_ANOMALY_CHARSET) == c->flagged,
                 "%s: anomalies %#x", c->charset ? c->charset : "(none)",
                 m->anomalies);
  /* UTF-7 is never read as markup (SECURITY-TESTS 62).  */
  ck_assert_ptr_null (strstr (m->text, "<script"));
  parser_message_free (m);
}
END_TEST

START_TEST (test_iso2022_bomb)
{
  GString *body = g_string_new (NULL);
  GString *s = g_string_new ("From: a@b.example\r\nSubject: 2022\r\n"
                             "Content-Type: text/plain; charset=ISO-2022-JP"
                             "\r\n\r\n");
  parser_message *m;

  while (body->len < 1024 * 1024)
    g_string_append (body, "\x1b$B\x1b(B");
  g_string_append_len (s, body->str, (gssize) body->len);
  m = parse_timed (s, "1 MB of ISO-2022-JP escapes");
  assert_message_valid (m);
  ck_assert_uint_le (strlen (m->text), 4 * body->len);
  parser_message_free (m);
  g_string_free (s, TRUE);
  g_string_free (body, TRUE);
}
END_TEST

/* ------------------------------------------------------------ 63-64 */

typedef struct {
  const char *name;
  const char *part;            /* one MIME part: headers, blank line, body */
  guint must;
} junk_case;

static const junk_case junk_cases[] = {
  { "base64 with ==== and garbage",
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\naGVs====bG8g!!@@##d29y\r\n"
    "bGQ=\r\n", 0 },
  { "quoted-printable ending in =",
    "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable"
    "\r\n\r\nsoft break at the end=", 0 },
  { "endless =CRLF",
    "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable"
    "\r\n\r\n=\r\n=\r\n=\r\n=\r\n=\r\n=\r\n=\r\n=\r\n=\r\n=\r\n", 0 },
  { "x-uuencode with a bad length line",
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 ../../x\r\n"
    "M86)C\r\n`\r\nend\r\n", 0 },
  { "inline uuencode with a bad length line",
    "Content-Type: text/plain\r\n\r\nsee attached\r\nbegin 644 ../../x\r\n"
    "M86)C\r\n`\r\nend\r\n", PARSER_ANOMALY_UUENCODE },
  { "binary with NULs",
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\na\0b\0c\r\n", 0 },
  { "binary text with NULs",
    "Content-Type: text/plain\r\n"
    "Content-Transfer-Encoding: binary\r\n\r\na\0b\0c\r\n",
    PARSER_ANOMALY_CHARSET },
};

START_TEST (test_transfer_junk)
{
  const junk_case *c = &junk_cases[_i];
  GString *s = g_string_new (hdr);
  parser_message *m;
  gsize part_len;

  /* The NUL cases: the part runs to the last "\r\n".  */
  part_len = strlen (c->part);
  if (strstr (c->name, "NUL"))
    part_len = strlen (c->part) + 6;
  g_string_append (s, "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n");
  g_string_append_len (s, c->part, (gssize) part_len);
  g_string_append (s, "\r\n--x--\r\n");
  m = parse_timed (s, c->name);
  ck_assert_msg ((m->anomalies & c->must) == c->must, "%s: %#x", c->name,
                 m->anomalies);
  for (guint i = 0; i < m->attachments->len; i++)
    {
      parser_attachment *a = m->attachments->pdata[i];
      ck_assert_uint_le (a->size, part_len);
      ck_assert_ptr_null (strchr (a->name, '/'));
    }
  if (c->must & PARSER_ANOMALY_UUENCODE)
    ck_assert_ptr_nonnull (strstr (m->text, "begin 644"));
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

START_TEST (test_header_pathologies)
{
  static const char msg[] =
    "From: a@b.example\r\n"
    "Date: Mon, 32 Foo 99999999999 99:99:99 +9999\r\n"
    "To: \"a\" <@[\r\n"
    "Cc: a@b, ,,,, c@, <>, \"x\" <y@z>\r\n"
    "Reply-To: a@[1.2.3\r\n"
    "Sub\0ject: x\r\n"
    "Subject: real\r\n"
    "\r\nbody\r\n";
  parser_message *m = parse_len (msg, sizeof msg - 1);
  gboolean y = FALSE;

  ck_assert_int_eq (m->date, 0);
  for (guint i = 0; i < m->cc->len; i++)
    y |= strcmp (((parser_address *) m->cc->pdata[i])->addr, "y@z") == 0;
  ck_assert (y);
  ck_assert_str_eq (m->text, "body");
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

/* ------------------------------------------------------------ 65 */

typedef struct {
  const char *disposition;     /* Content-Disposition, or NULL */
  const char *type;            /* Content-Type */
  const char *want;
  guint flags;                 /* of NAME_CLEANED | EXECUTABLE | DOUBLE_EXT */
} name_case;

#define NAME_FLAGS (PARSER_ATT_NAME_CLEANED | PARSER_ATT_EXECUTABLE \
                    | PARSER_ATT_DOUBLE_EXT)

static const name_case name_cases[] = {
  { "attachment; filename=\"../../../../etc/cron.d/x\"",
    "application/octet-stream", "x", PARSER_ATT_NAME_CLEANED },
  { "attachment; filename*=UTF-8''..%2F..%2Fx.sh",
    "application/octet-stream", "x.sh", PARSER_ATT_NAME_CLEANED },
  { "attachment; filename=\"..\\\\..\\\\x.bat\"",
    "application/octet-stream", "x.bat",
    PARSER_ATT_NAME_CLEANED | PARSER_ATT_EXECUTABLE },
  { "attachment; filename=\"/etc/passwd\"",
    "application/octet-stream", "passwd", PARSER_ATT_NAME_CLEANED },
  { "attachment; filename=\"C:\\\\Windows\\\\win.ini\"",
    "application/octet-stream", "win.ini", PARSER_ATT_NAME_CLEANED },
  { "attachment; filename*=UTF-8''a.pdf%00.exe",
    "application/octet-stream", "a.pdf",   /* F9: ".exe" still seen */
    PARSER_ATT_NAME_CLEANED | PARSER_ATT_EXECUTABLE | PARSER_ATT_DOUBLE_EXT },
  { "attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe",
    "application/octet-stream", "invoicefdp.exe",
    PARSER_ATT_NAME_CLEANED | PARSER_ATT_EXECUTABLE },
  { "attachment; filename=\"invoice\xe2\x80\xae" "fdp.exe\"",
    "application/octet-stream", "invoicefdp.exe",
    PARSER_ATT_NAME_CLEANED | PARSER_ATT_EXECUTABLE },
  { NULL, NULL, NULL, PARSER_ATT_NAME_CLEANED },  /* 5,000 characters */
  { "attachment; filename=\"CON\"", "application/octet-stream", "CON", 0 },
  { "attachment; filename=\".htaccess\"", "application/octet-stream",
    ".htaccess", 0 },
  { NULL, "application/pdf; name=\"report.pdf\"", "report.pdf", 0 },
  { "attachment; filename=\"invoice.pdf.exe\"", "application/octet-stream",
    "invoice.pdf.exe", PARSER_ATT_EXECUTABLE | PARSER_ATT_DOUBLE_EXT },
  { "attachment; filename=\"invoice.pdf   .scr\"", "application/octet-stream",
    "invoice.pdf   .scr", PARSER_ATT_EXECUTABLE | PARSER_ATT_DOUBLE_EXT },
  { "attachment; filename=\"run.exe. \"", "application/octet-stream",
    "run.exe", PARSER_ATT_NAME_CLEANED | PARSER_ATT_EXECUTABLE },
  { "attachment; filename=\"tab\there.txt\"", "application/octet-stream",
    "tabhere.txt", PARSER_ATT_NAME_CLEANED },
  { "attachment", "application/octet-stream", "attachment-1", 0 },
  { "attachment; filename=\"..\"", "application/octet-stream",
    "attachment-1", PARSER_ATT_NAME_CLEANED },
  { "attachment; filename=\"report.JS\"", "application/octet-stream",
    "report.JS", PARSER_ATT_EXECUTABLE },
};

START_TEST (test_attachment_names)
{
  const name_case *c = &name_cases[_i];
  GString *s = g_string_new (hdr);
  parser_message *m;
  parser_attachment *a;
  g_autofree char *longname = NULL;

  g_string_append (s, "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
                      "Content-Type: text/plain\r\n\r\nsee attached\r\n--x\r\n");
  if (c->want == NULL)
    {
      GString *n = g_string_new (NULL);
      for (int i = 0; i < 5000; i++)
        g_string_append_c (n, 'a' + i % 26);
      g_string_append (n, ".pdf");
      longname = g_string_free (n, FALSE);
      g_string_append_printf (s, "Content-Type: application/octet-stream\r\n"
                              "Content-Disposition: attachment; filename=\"%s\""
                              "\r\n", longname);
    }
  else
    {
      g_string_append_printf (s, "Content-Type: %s\r\n", c->type);
      if (c->disposition)
        g_string_append_printf (s, "Content-Disposition: %s\r\n",
                                c->disposition);
    }
  g_string_append (s, "\r\nhello\r\n--x--\r\n");
  m = parse_timed (s, "attachment name");
  ck_assert_uint_eq (m->attachments->len, 1);
  a = m->attachments->pdata[0];
  if (c->want)
    ck_assert_str_eq (a->name, c->want);
  else
    {
      ck_assert_uint_le (strlen (a->name), PARSER_LIMIT_FILENAME);
      ck_assert_uint_ge (strlen (a->name), PARSER_LIMIT_FILENAME - 3);
      ck_assert (g_str_has_suffix (a->name, ".pdf"));
    }
  ck_assert_msg ((a->flags & NAME_FLAGS) == c->flags, "%s: flags %#x want %#x",
                 a->name, a->flags, c->flags);
  if (c->flags & PARSER_ATT_NAME_CLEANED)
    ck_assert (m->anomalies & PARSER_ANOMALY_FILENAME);
  ck_assert_str_eq (m->text, "see attached");
  ck_assert_uint_eq (a->size, 5);
  ck_assert_str_eq (a->sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e"
                               "73043362938b9824");
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);
}
END_TEST

typedef struct {
  const char *type;
  const char *name;
  const char *b64;             /* content */
  guint flags;                 /* of EXECUTABLE | TYPE_MISMATCH | INLINE */
  const char *detected;        /* (nullable) */
} type_case;

#define TYPE_FLAGS (PARSER_ATT_EXECUTABLE | PARSER_ATT_TYPE_MISMATCH)

static const type_case type_cases[] = {
  /* an "image" that is HTML with script (SECURITY-TESTS 68) */
  { "image/png", "cat.png",
    "PGh0bWw+PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0PjwvaHRtbD4=",
    PARSER_ATT_TYPE_MISMATCH, "text/html" },
  { "application/pdf", "a.pdf", "JVBERi0xLjQKJeLjz9MK", 0, "application/pdf" },
  /* an MZ executable called a PDF */
  { "application/pdf", "invoice.pdf",
    "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAABQRQAATAEAAAAAAAA=", PARSER_ATT_EXECUTABLE, NULL },
  { "application/octet-stream", "x.bin", "AAECAwQF", 0, NULL },
  { "IMAGE/PNG", "dot.png", "iVBORw0KGgoAAAANSUhEUg==", 0, "image/png" },
  /* base64 that decodes to nothing: no bytes to sniff, as before the
   * decode buffer was made its expected size up front (an empty but
   * allocated buffer is application/x-zerosize to GIO) */
  { "application/pdf", "empty.pdf", "====", 0, "application/octet-stream" },
};

START_TEST (test_attachment_types)
{
  const type_case *c = &type_cases[_i];
  g_autofree char *msg = g_strdup_printf (
      "%sContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
      "Content-Type: %s; name=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n"
      "Content-ID: <id1@example>\r\n\r\n%s\r\n--x--\r\n",
      hdr, c->type, c->name, c->b64);
  parser_message *m = parse (msg);
  parser_attachment *a;

  ck_assert_uint_eq (m->attachments->len, 1);
  a = m->attachments->pdata[0];
  ck_assert_msg ((a->flags & TYPE_FLAGS) == c->flags,
                 "%s: flags %#x want %#x (detected %s)", c->name, a->flags,
                 c->flags, a->detected_type);
  if (c->detected)
    ck_assert_str_eq (a->detected_type, c->detected);
  ck_assert_str_eq (a->content_id, "id1@example");
  {
    g_autofree char *lower = g_ascii_strdown (c->type, -1);
    ck_assert_str_eq (a->declared_type, lower);
  }
  parser_message_free (m);
}
END_TEST

/* ------------------------------------------------------------ TNEF */

static void
tnef_attr (GByteArray *b, guint8 level, guint32 id, const void *data,
           guint32 len)
{
  guint8 h[9] = { level, id & 0xff, (id >> 8) & 0xff, (id >> 16) & 0xff,
                  id >> 24, len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff,
                  len >> 24 };
  guint16 sum = 0;
  guint8 c[2];

  for (guint32 i = 0; i < len; i++)
    sum = (guint16) (sum + ((const guint8 *) data)[i]);
  c[0] = sum & 0xff;
  c[1] = sum >> 8;
  g_byte_array_append (b, h, 9);
  g_byte_array_append (b, data, len);
  g_byte_array_append (b, c, 2);
}

/* A TNEF stream with one attachment called @name holding @data.  */
static GBytes *
tnef_make (const char *name, const char *data)
{
  static const guint8 sig[] = { 0x78, 0x9f, 0x3e, 0x22, 0x01, 0x00 };
  static const guint8 version[] = { 0x00, 0x00, 0x01, 0x00 };
  static const char cls[] = "IPM.Microsoft Mail.Note";
  guint8 rend[14] = { 0 };
  GByteArray *b = g_byte_array_new ();

  g_byte_array_append (b, sig, sizeof sig);
  tnef_attr (b, 1, 0x00089006, version, 4);            /* attTnefVersion */
  tnef_attr (b, 1, 0x00078008, cls, sizeof cls);       /* attMessageClass */
  tnef_attr (b, 2, 0x00069002, rend, sizeof rend);     /* attAttachRenddata */
  tnef_attr (b, 2, 0x00018010, name, (guint32) strlen (name) + 1);
  tnef_attr (b, 2, 0x0006800f, data, (guint32) strlen (data));
  return g_byte_array_free_to_bytes (b);
}

static parser_message *
parse_with_tnef (GBytes *tnef, const char *name)
{
  gsize n;
  const guchar *d = g_bytes_get_data (tnef, &n);
  g_autofree char *b64 = g_base64_encode (d, n);
  g_autofree char *msg = g_strdup_printf (
      "%sContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
      "Content-Type: text/plain\r\n\r\nsee attached\r\n--x\r\n"
      "Content-Type: application/ms-tnef%s%s%s\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--x--\r\n",
      hdr, name ? "; name=\"" : "", name ? name : "", name ? "\"" : "", b64);

  return parse (msg);
}

START_TEST (test_tnef_names)
{
  /* SECURITY-TESTS 66: the same sanitiser inside winmail.dat.  */
  g_autoptr (GBytes) t = tnef_make ("..\\..\\x", "payload");
  parser_message *m = parse_with_tnef (t, "winmail.dat");
  parser_attachment *a;

  ck_assert_uint_eq (m->attachments->len, 1);
  a = m->attachments->pdata[0];
  ck_assert_str_eq (a->name, "x");
  ck_assert (a->flags & PARSER_ATT_FROM_TNEF);
  ck_assert (a->flags & PARSER_ATT_NAME_CLEANED);
  ck_assert_uint_eq (a->size, 7);
  ck_assert (!(m->anomalies & PARSER_ANOMALY_TNEF));
  ck_assert_ptr_null (find_att (m, "winmail.dat"));
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

typedef struct {
  const char *file;
  const char *expect[4];       /* names that must be there */
} tnef_case;

static const tnef_case tnef_cases[] = {
  { "two-files.tnef", { "AUTHORS", "README", NULL } },
  { "long-filename.tnef", { "allproductsmar2000.dat", NULL } },
  { "missing-filenames.tnef", { "generpts.src", "TechlibDEC99.doc",
                                "TechlibNOV99.doc", NULL } },
  { "winmail.tnef", { NULL } },
};

START_TEST (test_tnef_data)
{
  const tnef_case *c = &tnef_cases[_i];
  g_autofree char *root = project_root ();
  g_autofree char *path = g_build_filename (root, "tests", "data", "mail",
                                            "mimekit", "tnef", c->file, NULL);
  g_autoptr (GBytes) t = read_file (path);
  parser_message *m = parse_with_tnef (t, NULL);

  ck_assert_msg (!(m->anomalies & PARSER_ANOMALY_TNEF), "%s not decoded",
                 c->file);
  ck_assert_uint_gt (m->attachments->len, 0);
  ck_assert_ptr_null (find_att (m, "winmail.dat"));
  for (guint i = 0; i < m->attachments->len; i++)
    ck_assert (((parser_attachment *) m->attachments->pdata[i])->flags
               & PARSER_ATT_FROM_TNEF);
  for (guint i = 0; c->expect[i]; i++)
    ck_assert_msg (find_att (m, c->expect[i]) != NULL, "%s: no %s", c->file,
                   c->expect[i]);
  ck_assert_str_eq (m->text, "see attached");
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_tnef_broken)
{
  g_autoptr (GBytes) good = tnef_make ("a.txt", "payload");
  g_autoptr (GBytes) cut = g_bytes_new_from_bytes (good, 0, 30);
  static const char junk[] = "\x78\x9f\x3e\x22 this is not TNEF at all";
  g_autoptr (GBytes) bad = g_bytes_new (junk, sizeof junk - 1);
  GBytes *inputs[] = { cut, bad };

  for (guint i = 0; i < G_N_ELEMENTS (inputs); i++)
    {
      parser_message *m = parse_with_tnef (inputs[i], NULL);
      parser_attachment *a = find_att (m, "winmail.dat");

      ck_assert (m->anomalies & PARSER_ANOMALY_TNEF);
      ck_assert_ptr_nonnull (a);
      ck_assert_uint_eq (a->size, g_bytes_get_size (inputs[i]));
      ck_assert (!(a->flags & PARSER_ATT_FROM_TNEF));
      assert_message_valid (m);
      parser_message_free (m);
    }
}
END_TEST

/* F10: TNEF that libytnef cannot read whole.  Each stream has the usual
 * header (version, message class), then what libytnef chokes on: an empty
 * data attribute (it refuses "a field with size of 0": dropped before it
 * sees it), message properties with a named property whose name is over
 * its 100-byte cap (read again without them), bytes after the last
 * attribute that are no attribute (files read so far kept), an attachment
 * property over its 512 KiB cap (refused whole).  What libytnef did not
 * read is never lost: winmail.dat is kept whole and the message flagged
 * TNEF whenever anything was left unread.  */
static GByteArray *
tnef_start (void)
{
  static const guint8 sig[] = { 0x78, 0x9f, 0x3e, 0x22, 0x01, 0x00 };
  static const guint8 version[] = { 0x00, 0x00, 0x01, 0x00 };
  static const char cls[] = "IPM.Microsoft Mail.Note";
  GByteArray *b = g_byte_array_new ();

  g_byte_array_append (b, sig, sizeof sig);
  tnef_attr (b, 1, 0x00089006, version, 4);            /* attTnefVersion */
  tnef_attr (b, 1, 0x00078008, cls, sizeof cls);       /* attMessageClass */
  return b;
}

static void
tnef_file (GByteArray *b, const char *name, const char *data)
{
  guint8 rend[14] = { 0 };

  tnef_attr (b, 2, 0x00069002, rend, sizeof rend);     /* attAttachRenddata */
  tnef_attr (b, 2, 0x00018010, name, (guint32) strlen (name) + 1);
  tnef_attr (b, 2, 0x0006800f, data, (guint32) strlen (data));
}

static void
le32 (GByteArray *b, guint32 v)
{
  guint8 x[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };

  g_byte_array_append (b, x, 4);
}

static GBytes *
tnef_f10 (guint kind)
{
  GByteArray *b = tnef_start ();

  switch (kind)
    {
    case 0:                     /* an empty data attribute */
      tnef_file (b, "AUTOEXEC.BAT", "");
      tnef_file (b, "boot.ini", "[boot loader]");
      break;
    case 1:                     /* message properties over a cap */
      {
        GByteArray *mp = g_byte_array_new ();
        static const guint8 zero[16] = { 0 };
        char name[200];

        memset (name, 'x', sizeof name);
        le32 (mp, 1);                          /* one property */
        le32 (mp, 0x8001001e);                 /* PT_STRING8, named */
        g_byte_array_append (mp, zero, 16);    /* GUID */
        le32 (mp, 1);                          /* MNID_STRING */
        le32 (mp, sizeof name);                /* over libytnef's 100 */
        g_byte_array_append (mp, (const guint8 *) name, sizeof name);
        le32 (mp, 1);
        le32 (mp, 2);
        g_byte_array_append (mp, (const guint8 *) "v\0\0\0", 4);
        tnef_attr (b, 1, 0x00069003, mp->data, mp->len);   /* attMsgProps */
        g_byte_array_unref (mp);
        tnef_file (b, "a.txt", "payload");
      }
      break;
    case 2:                     /* no attribute after the last one */
      tnef_file (b, "a.txt", "payload");
      g_byte_array_append (b, (const guint8 *) "KAKdKAKdKAKdKAKd", 16);
      break;
    default:                    /* an attachment property over 512 KiB */
      {
        GByteArray *ap = g_byte_array_new ();
        guint8 rend[14] = { 0 };
        gsize big = 600000;

        le32 (ap, 1);
        le32 (ap, 0x37010102);                 /* PR_ATTACH_DATA_BIN */
        le32 (ap, 1);
        le32 (ap, (guint32) big);
        g_byte_array_set_size (ap, ap->len + (guint) big);
        memset (ap->data + ap->len - big, 'z', big);
        tnef_attr (b, 2, 0x00069002, rend, sizeof rend);
        tnef_attr (b, 2, 0x00018010, "big.bin", 8);
        tnef_attr (b, 2, 0x00069005, ap->data, ap->len); /* attAttachment */
        g_byte_array_unref (ap);
      }
      break;
    }
  return g_byte_array_free_to_bytes (b);
}

static gboolean
has_note (const parser_message *m, const char *part)
{
  for (guint i = 0; i < m->notes->len; i++)
    if (strstr (m->notes->pdata[i], part) != NULL)
      return TRUE;
  return FALSE;
}

static const struct {
  const char *what;
  const char *files[3];        /* read from the TNEF */
  gboolean kept;               /* winmail.dat kept whole, TNEF flagged */
  const char *note;
} tnef_f10_cases[] = {
  { "empty data attribute", { "AUTOEXEC.BAT", "boot.ini", NULL }, FALSE,
    "empty attribute" },
  { "message properties over a cap", { "a.txt", NULL }, TRUE,
    "refused the message properties" },
  { "not an attribute at the end", { "a.txt", NULL }, TRUE,
    "read in part" },
  { "attachment property over 512 KiB", { NULL }, TRUE, "refused by libytnef" },
};

START_TEST (test_f10_tnef_unread)
{
  g_autoptr (GBytes) t = tnef_f10 ((guint) _i);
  parser_message *m = parse_with_tnef (t, "winmail.dat");
  parser_attachment *w = find_att (m, "winmail.dat");
  guint from_tnef = 0, want = 0;

  for (guint i = 0; tnef_f10_cases[_i].files[i]; i++, want++)
    {
      parser_attachment *a = find_att (m, tnef_f10_cases[_i].files[i]);

      ck_assert_msg (a != NULL, "%s: no %s", tnef_f10_cases[_i].what,
                     tnef_f10_cases[_i].files[i]);
      ck_assert (a->flags & PARSER_ATT_FROM_TNEF);
    }
  for (guint i = 0; i < m->attachments->len; i++)
    from_tnef += (((parser_attachment *) m->attachments->pdata[i])->flags
                  & PARSER_ATT_FROM_TNEF) != 0;
  ck_assert_uint_eq (from_tnef, want);
  if (tnef_f10_cases[_i].kept)
    {
      ck_assert_msg (w != NULL, "%s: winmail.dat not kept",
                     tnef_f10_cases[_i].what);
      ck_assert_uint_eq (w->size, g_bytes_get_size (t));
      ck_assert (m->anomalies & PARSER_ANOMALY_TNEF);
    }
  else
    {
      ck_assert_ptr_null (w);
      ck_assert (!(m->anomalies & PARSER_ANOMALY_TNEF));
    }
  ck_assert_msg (has_note (m, tnef_f10_cases[_i].note), "%s: no note \"%s\"",
                 tnef_f10_cases[_i].what, tnef_f10_cases[_i].note);
  if (_i == 0)
    {
      parser_attachment *bat = find_att (m, "AUTOEXEC.BAT");

      ck_assert_uint_eq (bat->size, 0);
      ck_assert (bat->flags & PARSER_ATT_EXECUTABLE);
    }
  ck_assert_str_eq (m->text, "see attached");
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

/* The MimeKit streams behind F10 that are small enough to keep
 * (tests/data/mail/mimekit/tnef, MIT): data-before-name.tnef read whole
 * (its two empty files included), panic.tnef's three images read before
 * the bytes libytnef cannot frame, winmail.dat kept too.  */
START_TEST (test_f10_tnef_mimekit)
{
  g_autofree char *root = project_root ();
  g_autofree char *p1 = g_build_filename (root, "tests", "data", "mail",
                                          "mimekit", "tnef",
                                          "data-before-name.tnef", NULL);
  g_autofree char *p2 = g_build_filename (root, "tests", "data", "mail",
                                          "mimekit", "tnef", "panic.tnef",
                                          NULL);
  g_autoptr (GBytes) t1 = read_file (p1);
  g_autoptr (GBytes) t2 = read_file (p2);
  parser_message *m = parse_with_tnef (t1, NULL);

  ck_assert_ptr_nonnull (find_att (m, "AUTOEXEC.BAT"));
  ck_assert_ptr_nonnull (find_att (m, "CONFIG.SYS"));
  ck_assert_ptr_nonnull (find_att (m, "boot.ini"));
  ck_assert_ptr_null (find_att (m, "winmail.dat"));
  ck_assert (!(m->anomalies & PARSER_ANOMALY_TNEF));
  parser_message_free (m);

  m = parse_with_tnef (t2, NULL);
  ck_assert_ptr_nonnull (find_att (m, "image001.jpg"));
  ck_assert_ptr_nonnull (find_att (m, "image002.jpg"));
  ck_assert_ptr_nonnull (find_att (m, "image003.png"));
  ck_assert_ptr_nonnull (find_att (m, "winmail.dat"));
  ck_assert (m->anomalies & PARSER_ANOMALY_TNEF);
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

/* ------------------------------------------------------------ uuencode */

START_TEST (test_uuencode)
{
  static const char msg[] =
    "From: a@b.example\r\nSubject: uu\r\n\r\n"
    "Here is the file.\r\n\r\n"
    "begin 644 ../../hello.txt\r\n"
    ",:&5L;&\\@=V]R;&0*\r\n"
    "`\r\n"
    "end\r\n"
    "\r\nThanks\r\n";
  parser_message *m = parse (msg);
  parser_attachment *a;

  ck_assert_uint_eq (m->attachments->len, 1);
  a = m->attachments->pdata[0];
  ck_assert_str_eq (a->name, "hello.txt");
  ck_assert (a->flags & PARSER_ATT_FROM_UUENCODE);
  ck_assert (a->flags & PARSER_ATT_NAME_CLEANED);
  ck_assert_uint_eq (a->size, 12);
  ck_assert_int_eq (memcmp (g_bytes_get_data (a->content, NULL),
                            "hello world\n", 12), 0);
  ck_assert_ptr_null (strstr (m->text, "begin 644"));
  ck_assert_ptr_nonnull (strstr (m->text, "Here is the file."));
  ck_assert_ptr_nonnull (strstr (m->text, "Thanks"));
  ck_assert (!(m->anomalies & PARSER_ANOMALY_UUENCODE));
  parser_message_free (m);
}
END_TEST

START_TEST (test_uuencode_broken)
{
  static const char msg[] =
    "From: a@b.example\r\nSubject: uu\r\n\r\n"
    "begin 644 x.bin\r\n"
    "+:&5L;&\\@=V]R;&0*\r\n"
    "no end line\r\n";
  parser_message *m = parse (msg);

  ck_assert_uint_eq (m->attachments->len, 0);
  ck_assert (m->anomalies & PARSER_ANOMALY_UUENCODE);
  ck_assert_ptr_nonnull (strstr (m->text, "begin 644 x.bin"));
  parser_message_free (m);
}
END_TEST

/* ------------------------------------------------------------ forwarded */

static const char fwd_inner[] =
  "From: Other <other@example.net>\r\n"
  "Subject: Inner subject\r\n"
  "Message-ID: <inner@example.net>\r\n"
  "Content-Type: multipart/mixed; boundary=inner\r\n"
  "\r\n"
  "--inner\r\n"
  "Content-Type: text/plain\r\n"
  "\r\n"
  "the inner body\r\n"
  "--inner\r\n"
  "Content-Type: application/pdf; name=\"inner.pdf\"\r\n"
  "\r\n"
  "%PDF-1.4\r\n"
  "--inner--\r\n"
  "epilogue of the inner message";

START_TEST (test_forwarded)
{
  g_autofree char *msg = g_strdup_printf (
      "%sContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n"
      "Content-Type: text/plain\r\n\r\nplease see below\r\n--outer\r\n"
      "Content-Type: message/rfc822\r\n\r\n%s\r\n--outer--\r\n",
      hdr, fwd_inner);
  parser_message *m = parse (msg);
  parser_attachment *a = find_att (m, "Inner subject.eml");

  ck_assert_ptr_nonnull (a);
  ck_assert (a->flags & PARSER_ATT_FORWARDED);
  ck_assert_str_eq (a->declared_type, "message/rfc822");
  /* the original bytes, not a re-serialisation */
  ck_assert_uint_eq (a->size, strlen (fwd_inner));
  ck_assert_int_eq (memcmp (g_bytes_get_data (a->content, NULL), fwd_inner,
                            a->size), 0);
  ck_assert_ptr_nonnull (find_att (m, "inner.pdf"));
  ck_assert_uint_eq (m->forwarded->len, 1);
  ck_assert_str_eq (m->forwarded->pdata[0],
                    "Subject: Inner subject\n\nthe inner body");
  ck_assert_str_eq (m->text, "please see below");
  ck_assert_str_eq (m->subject, "test");
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

/* A forwarded message GMime parses is detected as message/rfc822 by that
 * parse, whatever its first field (GIO's magic knows only a few, and
 * said text/plain for this one); a message/rfc822 part that does not open
 * with a header field is still sniffed, so an executable declared as a
 * forwarded message is still flagged.  */
START_TEST (test_forwarded_detected)
{
  static const guint8 pe[] = { 'M', 'Z', 0x90, 0x00, 0x03, 0x00, 0x00, 0x00,
                               0x04, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00,
                               0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                               0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
  g_autofree char *pe64 = g_base64_encode (pe, sizeof pe);
  g_autofree char *msg = g_strdup_printf (
      "%sContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n"
      "Content-Type: message/rfc822\r\n\r\n"
      "X-Ticket: 4411\r\nSubject: Odd first field\r\n\r\nbody\r\n"
      "--outer\r\nContent-Type: message/rfc822\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--outer--\r\n",
      hdr, pe64);
  parser_message *m = parse (msg);
  parser_attachment *a = find_att (m, "Odd first field.eml");
  parser_attachment *x = NULL;

  ck_assert_ptr_nonnull (a);
  ck_assert_str_eq (a->detected_type, "message/rfc822");
  ck_assert (!(a->flags & PARSER_ATT_EXECUTABLE));
  for (guint i = 0; i < m->attachments->len; i++)
    if (m->attachments->pdata[i] != a)
      x = m->attachments->pdata[i];
  ck_assert_ptr_nonnull (x);
  ck_assert (x->flags & PARSER_ATT_FORWARDED);
  ck_assert_uint_eq (x->size, sizeof pe);
  ck_assert_str_ne (x->detected_type, "message/rfc822");
  ck_assert_msg (x->flags & PARSER_ATT_EXECUTABLE, "detected %s",
                 x->detected_type);
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_forwarded_encoded)
{
  static const char inner[] = "From: x@y.example\r\nSubject: Encoded\r\n\r\n"
                              "encoded inner body\r\n";
  g_autofree char *b64 = g_base64_encode ((const guchar *) inner,
                                          sizeof inner - 1);
  g_autofree char *msg = g_strdup_printf (
      "%sContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64"
      "\r\n\r\n%s\r\n", hdr, b64);
  parser_message *m = parse (msg);
  parser_attachment *a = find_att (m, "Encoded.eml");

  ck_assert_ptr_nonnull (a);
  ck_assert_uint_eq (a->size, sizeof inner - 1);
  ck_assert_uint_eq (m->forwarded->len, 1);
  ck_assert_str_eq (m->forwarded->pdata[0],
                    "Subject: Encoded\n\nencoded inner body");
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_forwarded_top_and_digest)
{
  /* The whole body is message/rfc822; then a digest (parts without
   * headers default to message/rfc822).  */
  static const char top[] =
    "From: a@b.example\r\nSubject: top\r\nContent-Type: message/rfc822\r\n"
    "\r\nFrom: c@d.example\r\nSubject: Wrapped\r\n\r\nwrapped body\r\n";
  static const char digest[] =
    "From: a@b.example\r\nSubject: digest\r\n"
    "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
    "From: c@d.example\r\nSubject: One\r\n\r\nfirst\r\n--d\r\n\r\n"
    "From: e@f.example\r\nSubject: Two\r\n\r\nsecond\r\n--d--\r\n";
  parser_message *m = parse (top);
  parser_attachment *a = find_att (m, "Wrapped.eml");

  ck_assert_ptr_nonnull (a);
  ck_assert_int_eq (memcmp (g_bytes_get_data (a->content, NULL),
                            "From: c@d.example", 17), 0);
  ck_assert_uint_eq (a->size, strlen (strstr (top, "From: c@d")));
  parser_message_free (m);

  m = parse (digest);
  ck_assert_uint_eq (m->forwarded->len, 2);
  a = find_att (m, "One.eml");
  ck_assert_ptr_nonnull (a);
  ck_assert_uint_eq (a->size, strlen ("From: c@d.example\r\nSubject: One\r\n"
                                      "\r\nfirst"));
  ck_assert_ptr_nonnull (find_att (m, "Two.eml"));
  parser_message_free (m);
}
END_TEST

/* ------------------------------------------------------------ reports */

START_TEST (test_report)
{
  static const char msg[] =
    "From: MAILER-DAEMON@mx.example\r\nTo: enquiries@council.example\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status; "
    "boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\n"
    "Your message could not be delivered.\r\n--r\r\n"
    "Content-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.example\r\n\r\n"
    "Final-Recipient: rfc822; gone@example.org\r\n"
    "Original-Recipient: rfc822;Gone@Example.org\r\n"
    "Action: failed\r\nStatus: 5.1.1 (user unknown)\r\n\r\n--r\r\n"
    "Content-Type: text/rfc822-headers\r\n\r\n"
    "From: enquiries@council.example\r\nMessage-ID:\r\n"
    " <orig-123@council.example>\r\nSubject: Your case\r\n--r--\r\n";
  parser_message *m = parse (msg);

  ck_assert (m->is_report);
  ck_assert_str_eq (m->report_status, "5.1.1");
  ck_assert_str_eq (m->report_message_id, "orig-123@council.example");
  ck_assert_str_eq (m->report_recipient, "Gone@Example.org");
  ck_assert (m->auto_reply);
  ck_assert_str_eq (m->text, "Your message could not be delivered.");
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_report_rfc822)
{
  static const char msg[] =
    "From: postmaster@mx.example\r\nSubject: failure\r\n"
    "Content-Type: multipart/report; report-type=delivery-status; "
    "boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
    "--r\r\nContent-Type: message/delivery-status\r\n\r\n"
    "Final-Recipient: rfc822; x@y.example\r\nStatus: 4.4.1\r\n\r\n--r\r\n"
    "Content-Type: message/rfc822\r\n\r\nFrom: me@council.example\r\n"
    "Message-ID: <orig-9@council.example>\r\nSubject: hi\r\n\r\nbody\r\n"
    "--r--\r\n";
  parser_message *m = parse (msg);

  ck_assert (m->is_report);
  ck_assert_str_eq (m->report_status, "4.4.1");
  ck_assert_str_eq (m->report_message_id, "orig-9@council.example");
  ck_assert_str_eq (m->report_recipient, "x@y.example");
  parser_message_free (m);
}
END_TEST

/* ------------------------------------------------------------ text */

typedef struct {
  const char *name;
  const char *body;            /* after the top-level headers */
  const char *want;            /* exact text, or NULL */
  const char *contains;        /* (nullable) */
  gboolean from_html;
} text_case;

static const text_case text_cases[] = {
  { "alternative prefers text/plain",
    "Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n"
    "Content-Type: text/html\r\n\r\n<p>HTML version</p>\r\n--a\r\n"
    "Content-Type: text/plain\r\n\r\nPLAIN version\r\n--a--\r\n",
    "PLAIN version", NULL, FALSE },
  { "iPhone-style HTML only",
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    "<html><head><meta http-equiv=3D\"content-type\" content=3D\"text/html; "
    "charset=3Dutf-8\"></head><body dir=3D\"auto\">Hello council,<div><br>"
    "</div><div>The bin was not collected on Tuesday =E2=80=93 again.</div>"
    "<div><br><div>Sent from my iPhone</div></div></body></html>\r\n",
    NULL, "The bin was not collected on Tuesday \xe2\x80\x93 again.", TRUE },
  { "mixed concatenates inline text",
    "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
    "Content-Type: text/plain\r\n\r\none\r\n--m\r\n"
    "Content-Type: image/png; name=a.png\r\n\r\nPNG\r\n--m\r\n"
    "Content-Type: text/plain\r\n\r\ntwo\r\n--m--\r\n",
    "one\n\ntwo", NULL, FALSE },
  { "related takes the root (start=)",
    "Content-Type: multipart/related; boundary=r; start=\"<root@x>\"\r\n\r\n"
    "--r\r\nContent-Type: text/plain\r\nContent-ID: <other@x>\r\n\r\nnot root"
    "\r\n--r\r\nContent-Type: text/plain\r\nContent-ID: <root@x>\r\n\r\n"
    "the root\r\n--r--\r\n",
    "the root", NULL, FALSE },
  { "alternative in mixed, html in related",
    "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
    "Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n"
    "Content-Type: multipart/related; boundary=r\r\n\r\n--r\r\n"
    "Content-Type: text/html\r\n\r\n<p>only html</p>\r\n--r\r\n"
    "Content-Type: image/gif\r\nContent-ID: <g@x>\r\n\r\nGIF89a\r\n--r--\r\n"
    "--a--\r\n--m--\r\n",
    NULL, "only html", TRUE },
  { "text/plain attachment is not text",
    "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
    "Content-Type: text/plain\r\n\r\nbody\r\n--m\r\n"
    "Content-Type: text/plain\r\nContent-Disposition: attachment; "
    "filename=notes.txt\r\n\r\nattached notes\r\n--m--\r\n",
    "body", NULL, FALSE },
  { "format=flowed",
    "Content-Type: text/plain; format=flowed\r\n\r\n"
    "This line is \r\nflowed.\r\n",
    "This line is flowed.", NULL, FALSE },
  { "no Content-Type at all", "\r\n", "", NULL, FALSE },
};

START_TEST (test_text)
{
  const text_case *c = &text_cases[_i];
  g_autofree char *msg = g_strdup_printf ("%s%s", hdr, c->body);
  parser_message *m = parse (msg);

  if (c->want)
    ck_assert_msg (strcmp (m->text, c->want) == 0, "%s: \"%s\"", c->name,
                   m->text);
  if (c->contains)
    ck_assert_msg (strstr (m->text, c->contains) != NULL, "%s: \"%s\"",
                   c->name, m->text);
  ck_assert_msg (m->text_from_html == c->from_html, "%s: from_html", c->name);
  ck_assert_ptr_null (strstr (m->text, "<p>"));
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_text_part_attachment_counts)
{
  static const char msg[] =
    "From: a@b.example\r\nSubject: att\r\n"
    "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n"
    "Content-Type: text/plain\r\n\r\nbody\r\n--m\r\n"
    "Content-Type: text/plain\r\nContent-Disposition: attachment; "
    "filename=notes.txt\r\n\r\nattached notes\r\n--m--\r\n";
  parser_message *m = parse (msg);
  parser_attachment *a = find_att (m, "notes.txt");

  ck_assert_ptr_nonnull (a);
  ck_assert_uint_eq (a->size, strlen ("attached notes"));
  ck_assert_uint_eq (m->n_parts, 3);
  parser_message_free (m);
}
END_TEST

/* ------------------------------------------------------------ headers */

START_TEST (test_headers)
{
  static const char msg[] =
    "Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <Joerg@Example.ORG>\r\n"
    "To: enquiries@council.example, \"B, C\" <bc@example.net>\r\n"
    "Cc: team: one@example.net, two@example.net;\r\n"
    "Reply-To: replies@example.org\r\n"
    "Subject: =?ISO-8859-1?Q?Stra=DFe?= repairs\r\n"
    "Date: Tue, 02 Jan 2024 10:30:00 +0100\r\n"
    "Message-ID: <abc@example.org>\r\n"
    "In-Reply-To: <prev@council.example>\r\n"
    "References: <first@council.example>\r\n <prev@council.example>\r\n"
    "X-Odd: tab\there\x01 ctl\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\nhello\r\n";
  parser_message *m = parse (msg);
  parser_address *to1;

  ck_assert_str_eq (m->subject, "Straße repairs");
  ck_assert_ptr_nonnull (m->from);
  ck_assert_str_eq (m->from->name, "Jörg Müller");
  ck_assert_str_eq (m->from->addr, "Joerg@example.org");
  ck_assert_uint_eq (m->to->len, 2);
  to1 = m->to->pdata[1];
  ck_assert_str_eq (to1->name, "B, C");
  ck_assert_str_eq (to1->addr, "bc@example.net");
  ck_assert_ptr_null (((parser_address *) m->to->pdata[0])->name);
  ck_assert_uint_eq (m->cc->len, 2);
  ck_assert_str_eq (m->reply_to->addr, "replies@example.org");
  ck_assert_int_eq (m->date, 1704187800);
  ck_assert_str_eq (m->message_id, "abc@example.org");
  ck_assert_str_eq (m->in_reply_to, "prev@council.example");
  ck_assert_uint_eq (m->references->len, 2);
  ck_assert_str_eq (m->references->pdata[0], "first@council.example");
  ck_assert_str_eq (m->references->pdata[1], "prev@council.example");
  /* every top-level header, in order, Content-* included */
  ck_assert_uint_eq (m->header_names->len, 13);
  ck_assert_str_eq (m->header_names->pdata[0], "Received");
  ck_assert_str_eq (m->header_names->pdata[5], "Subject");
  ck_assert_str_eq (m->header_values->pdata[5], "Straße repairs");
  ck_assert_str_eq (m->header_names->pdata[12], "Content-Type");
  ck_assert_ptr_null (strchr (m->header_values->pdata[10], '\x01'));
  ck_assert (has_header (m, "MIME-Version"));
  ck_assert_str_eq (m->text, "hello");
  ck_assert_int_eq (m->anomalies & ~PARSER_ANOMALY_GMIME_WARNING, 0);
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

/* A single-part message whose headers GMime cannot warn about is parsed
 * without the warning callback (parser_message.c, "quiet parse").  The
 * plain message below takes that way; each case changes one field into
 * something GMime warns about, which the pre-scan must catch: the flag
 * and the "GMime ..." note are still there.  */
#define QUIET_PLAIN_HEAD                                                    \
  "Received: from mail.example.org by intake.example;\r\n"                  \
  "\tTue, 5 Mar 2024 09:00:11 +0000\r\n"                                    \
  "From: Sarah Thompson <sarah@example.org>\r\n"                            \
  "To: \"Council, Enquiries\" <enquiries@council.example>, x.y@example.net\r\n" \
  "Subject: Re: pothole on Mill Lane\r\n"                                   \
  "Date: Tue, 5 Mar 2024 09:00:07 +0000\r\n"                                \
  "Message-ID: <m1@example.org>\r\n"                                        \
  "In-Reply-To: <ack-0@council.example>\r\n"                                \
  "References: <first@council.example>\r\n <ack-0@council.example>\r\n"     \
  "MIME-Version: 1.0\r\n"

static const struct {
  const char *what;
  const char *head;            /* fields after QUIET_PLAIN_HEAD */
  gboolean blank;              /* a blank line and a body after them */
  const char *note;
  guint anomaly;
} quiet_cases[] = {
  { "plain", "Content-Type: text/plain; charset=utf-8\r\n", TRUE, NULL, 0 },
  { "subject twice", "Subject: Re: pothole on Mill Lane\r\n", TRUE,
    "GMime duplicated-header", PARSER_ANOMALY_CONFLICTING },
  { "from twice", "FROM: other@example.org\r\n", TRUE,
    "GMime conflicting-header", PARSER_ANOMALY_CONFLICTING },
  { "content field twice",
    "Content-Transfer-Encoding: 8bit\r\ncontent-transfer-encoding: 7bit\r\n",
    TRUE, "GMime conflicting-header", PARSER_ANOMALY_CONFLICTING },
  { "address list", "Cc: a@example.org b@example.org\r\n", TRUE,
    "GMime invalid-address-list", PARSER_ANOMALY_GMIME_WARNING },
  { "no domain", "Cc: a@example.org, b@\r\n", TRUE,
    "GMime invalid-address-list", PARSER_ANOMALY_GMIME_WARNING },
  { "encoded word", "X-Note: =?utf-8?q?a b?=\r\n", TRUE,
    "GMime invalid-rfc2047-value", PARSER_ANOMALY_ENCODED_WORD },
  { "8-bit value", "X-Note: caf\xe9\r\n", TRUE,
    "GMime unencoded-8bit-header", PARSER_ANOMALY_GMIME_WARNING },
  { "content type", "Content-Type: text\r\n", TRUE,
    "GMime invalid-content-type", PARSER_ANOMALY_GMIME_WARNING },
  { "parameter twice",
    "Content-Type: text/plain; charset=utf-8; Charset=latin1\r\n", TRUE,
    "GMime conflicting-parameter", PARSER_ANOMALY_CONFLICTING },
  { "bad parameter", "Content-Type: text/plain; =x\r\n", TRUE,
    "GMime invalid-parameter", PARSER_ANOMALY_GMIME_WARNING },
  { "disposition parameter",
    "Content-Disposition: inline; filename=a.txt; filename=a.txt\r\n", TRUE,
    "GMime duplicated-parameter", PARSER_ANOMALY_GMIME_WARNING },
  { "field name", "Bad Name: x\r\n", TRUE, "GMime invalid-header-name",
    PARSER_ANOMALY_GMIME_CRITICAL },
  { "no blank line", "X-Last: x", FALSE, "GMime truncated-message",
    PARSER_ANOMALY_BOUNDARY },
  { "multipart without boundary", "Content-Type: multipart/mixed\r\n", TRUE,
    "GMime multipart-without-boundary", PARSER_ANOMALY_BOUNDARY },
};

START_TEST (test_quiet_parse)
{
  g_autofree char *msg = g_strconcat (
      QUIET_PLAIN_HEAD, quiet_cases[_i].head,
      quiet_cases[_i].blank ? "\r\nThe light is out.\r\n" : "", NULL);
  parser_message *m = parse (msg);
  gboolean gmime_note = FALSE;

  for (guint i = 0; i < m->notes->len; i++)
    gmime_note |= g_str_has_prefix (m->notes->pdata[i], "GMime ");
  if (quiet_cases[_i].note == NULL)
    {
      ck_assert_msg (!gmime_note && m->anomalies == 0, "%s: %#x",
                     quiet_cases[_i].what, m->anomalies);
      /* the values as GMime decodes them: unfolded, the ends trimmed
       * (and the tab a space, as in every value) */
      ck_assert_str_eq (m->header_values->pdata[0],
                        "from mail.example.org by intake.example; "
                        "Tue, 5 Mar 2024 09:00:11 +0000");
      ck_assert_str_eq (m->header_values->pdata[7],
                        "<first@council.example> <ack-0@council.example>");
      ck_assert_str_eq (m->in_reply_to, "ack-0@council.example");
      ck_assert_uint_eq (m->references->len, 2);
      ck_assert_str_eq (m->references->pdata[1], "ack-0@council.example");
      ck_assert_uint_eq (m->to->len, 2);
      ck_assert_str_eq (((parser_address *) m->to->pdata[0])->name,
                        "Council, Enquiries");
      ck_assert_str_eq (m->text, "The light is out.");
    }
  else
    {
      ck_assert_msg (has_note (m, quiet_cases[_i].note), "%s: no note \"%s\"",
                     quiet_cases[_i].what, quiet_cases[_i].note);
      ck_assert_msg ((m->anomalies & quiet_cases[_i].anomaly)
                         == quiet_cases[_i].anomaly,
                     "%s: %#x", quiet_cases[_i].what, m->anomalies);
    }
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

/* The same for a multipart one level deep: the plain one is parsed
 * quietly, and each defect (of the structure, or in a part's headers)
 * keeps its GMime warning.  */
#define QUIET_MP_HEAD                                                       \
  "From: Sarah Thompson <sarah@example.org>\r\n"                            \
  "To: enquiries@council.example\r\n"                                       \
  "Subject: photos\r\n"                                                     \
  "MIME-Version: 1.0\r\n"                                                   \
  "Content-Type: multipart/mixed; boundary=\"=_b1\"\r\n"                    \
  "\r\nThis is a multi-part message in MIME format.\r\n"
#define QUIET_MP_TEXT                                                       \
  "--=_b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"               \
  "The light is out.\r\n"
#define QUIET_MP_ATT                                                        \
  "--=_b1\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"    \
  "Content-Disposition: attachment; filename=\"a.bin\"\r\n"                 \
  "Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n"

static const struct {
  const char *what;
  const char *body;            /* after QUIET_MP_HEAD */
  const char *note;
  guint anomaly;
} quiet_mp_cases[] = {
  { "plain", QUIET_MP_TEXT QUIET_MP_ATT "--=_b1--\r\n", NULL, 0 },
  { "no closing delimiter", QUIET_MP_TEXT QUIET_MP_ATT,
    "GMime truncated-message", PARSER_ANOMALY_BOUNDARY },
  { "part without content",
    QUIET_MP_TEXT "--=_b1\r\nContent-Type: text/plain\r\n--=_b1--\r\n",
    "GMime part-without-content", PARSER_ANOMALY_BOUNDARY },
  { "a part's field twice",
    "--=_b1\r\nContent-Type: text/plain\r\nX-Seen: 1\r\nX-Seen: 1\r\n\r\n"
    "x\r\n--=_b1--\r\n",
    "GMime duplicated-header", PARSER_ANOMALY_CONFLICTING },
  { "a part's parameter twice",
    "--=_b1\r\nContent-Type: text/plain; charset=utf-8; charset=latin1\r\n"
    "\r\nx\r\n--=_b1--\r\n",
    "GMime conflicting-parameter", PARSER_ANOMALY_CONFLICTING },
  { "a part's encoded word",
    "--=_b1\r\nContent-Type: text/plain\r\nX-Note: =?utf-8?q?a b?=\r\n\r\n"
    "x\r\n--=_b1--\r\n",
    "GMime invalid-rfc2047-value", PARSER_ANOMALY_ENCODED_WORD },
  { "a nested multipart without boundary",
    QUIET_MP_TEXT "--=_b1\r\nContent-Type: multipart/alternative\r\n\r\n"
    "x\r\n--=_b1--\r\n",
    "GMime multipart-without-boundary", PARSER_ANOMALY_BOUNDARY },
};

START_TEST (test_quiet_parse_multipart)
{
  g_autofree char *msg = g_strconcat (QUIET_MP_HEAD, quiet_mp_cases[_i].body,
                                      NULL);
  parser_message *m = parse (msg);
  gboolean gmime_note = FALSE;

  for (guint i = 0; i < m->notes->len; i++)
    gmime_note |= g_str_has_prefix (m->notes->pdata[i], "GMime ");
  if (quiet_mp_cases[_i].note == NULL)
    {
      ck_assert_msg (!gmime_note && m->anomalies == 0, "%s: %#x",
                     quiet_mp_cases[_i].what, m->anomalies);
      ck_assert_str_eq (m->text, "The light is out.");
      ck_assert_uint_eq (m->attachments->len, 1);
    }
  else
    {
      ck_assert_msg (has_note (m, quiet_mp_cases[_i].note),
                     "%s: no note \"%s\"", quiet_mp_cases[_i].what,
                     quiet_mp_cases[_i].note);
      ck_assert_msg ((m->anomalies & quiet_mp_cases[_i].anomaly)
                         == quiet_mp_cases[_i].anomaly,
                     "%s: %#x", quiet_mp_cases[_i].what, m->anomalies);
    }
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_context)
{
  static const char msg[] =
    "From: citizen@example.org\r\nSubject: Re: [ESC-2026-000123-K] bins "
    "card 4111 1111 1111 1111\r\n\r\nI have diabetes and the bins were "
    "missed. My card is 4111-1111-1111-1111.\r\n";
  static const char *const rcpts[] = { "foi+ESC-2026-000456-X@council.example",
                                       NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (parser_lexicon) lex = parser_lexicon_new_from_data (
      "health: diabetes\n", -1, "test", &error);
  parser_context ctx = { "", rcpts, NULL };
  parser_message *m;

  ck_assert_msg (lex != NULL, "%s", error ? error->message : "");
  ctx.lexicon = lex;
  m = parse_ctx (msg, sizeof msg - 1, &ctx);
  ck_assert (m->auto_reply);                /* null reverse path */
  ck_assert_ptr_nonnull (m->auto_reason);
  ck_assert (m->special & PARSER_SPECIAL_HEALTH);
  ck_assert_uint_ge (m->cards_redacted, 2);
  ck_assert_ptr_null (strstr (m->subject, "4111 1111 1111 1111"));
  ck_assert_ptr_null (strstr (m->text, "4111-1111-1111-1111"));
  for (guint i = 0; i < m->header_values->len; i++)
    ck_assert_ptr_null (strstr (m->header_values->pdata[i],
                                "4111 1111 1111 1111"));
  ck_assert_uint_ge (m->case_refs->len, 1);
  {
    gboolean card = FALSE;
    for (guint i = 0; i < m->personal->len; i++)
      card |= ((parser_pd *) m->personal->pdata[i])->kind == PARSER_PD_CARD;
    ck_assert (card);
  }
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_unparseable)
{
  GString *s = g_string_new (NULL);
  parser_message *m;

  /* a continuation line without a field first (a line of only white
   * space is dropped instead: test_f2_leading_space) */
  g_string_append (s, " x\nFrom: a@b.example\nSubject: hidden\n\nbody \xe9\n");
  m = parse_len (s->str, s->len);
  ck_assert (m->anomalies & PARSER_ANOMALY_UNPARSEABLE);
  ck_assert_ptr_nonnull (m->text);
  ck_assert_ptr_nonnull (strstr (m->text, "body é"));
  ck_assert_ptr_null (m->subject);
  ck_assert_uint_eq (m->attachments->len, 0);
  ck_assert_uint_gt (m->notes->len, 0);
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);

  m = parse_len ("", 0);
  ck_assert_ptr_nonnull (m->text);
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST


/* ------------------------------------------------------------ findings
 * tests/corpus/FINDINGS.md: one case per fixed item.  */

static parser_message *
parse_found (const char *dir, const char *file)
{
  g_autofree char *root = project_root ();
  g_autofree char *path = NULL;
  g_autoptr (GBytes) raw = NULL;
  parser_message *m;

  ck_assert_ptr_nonnull (root);
  path = g_build_filename (root, "tests", dir, file, NULL);
  raw = read_file (path);
  m = parser_message_parse (raw, NULL);
  ck_assert_ptr_nonnull (m);
  assert_message_valid (m);
  return m;
}

static guint found_criticals;

static void
count_criticals (const gchar *domain, GLogLevelFlags level,
                 const gchar *message, gpointer data)
{
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    found_criticals++;
}

START_TEST (test_f1_empty_encoded_rfc822)
{
  static const char *const files[] = { "critical-empty-encoded-rfc822.eml",
                                       "critical-empty-encoded-rfc822.min" };
  guint id = g_log_set_handler ("gmime", G_LOG_LEVEL_MASK, count_criticals,
                                NULL);
  GLogFunc old = g_log_set_default_handler (count_criticals, NULL);

  found_criticals = 0;
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      parser_message *m = parse_found ("fuzz/crashes", files[i]);
      parser_message_free (m);
    }
  /* inline: the 28-byte fuzzer input and a readable one */
  parser_message_free (parse ("Content-type:message/rfc822\x90"));
  {
    parser_message *m = parse (
        "From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    ck_assert_ptr_nonnull (find_att (m, "forwarded-message.eml"));
    parser_message_free (m);
  }
  g_log_set_default_handler (old, NULL);
  g_log_remove_handler ("gmime", id);
  ck_assert_uint_eq (found_criticals, 0);
}
END_TEST

START_TEST (test_f2_leading_space)
{
  parser_message *m = parse_found ("corpus/repro", "leading-space-line.eml");
  parser_attachment *a;
  GString *s = g_string_new (NULL);

  ck_assert (!(m->anomalies & PARSER_ANOMALY_UNPARSEABLE));
  ck_assert (m->anomalies & PARSER_ANOMALY_GMIME_WARNING);
  ck_assert_str_eq (m->subject, "Missed bin collection");
  ck_assert_str_eq (m->from->addr, "citizen@example.org");
  a = find_att (m, "invoice.pdf.exe");
  ck_assert_ptr_nonnull (a);
  ck_assert (a->flags & PARSER_ATT_EXECUTABLE);
  ck_assert (a->flags & PARSER_ATT_DOUBLE_EXT);
  ck_assert_str_eq (m->text, "My bin was not collected.");
  parser_message_free (m);

  /* flanker's fixtures: a line of 255 spaces; also tabs, CRLF, two lines */
  for (int i = 0; i < 255; i++)
    g_string_append_c (s, ' ');
  g_string_append (s, "\r\n\t \r\nFrom: a@b.example\r\nSubject: seen\r\n\r\n"
                      "body \xe9\r\n");
  m = parse_len (s->str, s->len);
  ck_assert (!(m->anomalies & PARSER_ANOMALY_UNPARSEABLE));
  ck_assert (m->anomalies & PARSER_ANOMALY_GMIME_WARNING);
  ck_assert_str_eq (m->subject, "seen");
  ck_assert_ptr_nonnull (strstr (m->text, "body"));
  assert_message_valid (m);
  parser_message_free (m);
  g_string_free (s, TRUE);

  /* nothing but white space lines: no message, no critical */
  m = parse (" \n\t\n");
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_f5_invalid_utf8_in_word)
{
  /* "hello" + a lone 0xF0 in a B word, and in a Q word: U+FFFD and the
   * charset flag, never a silent '?'; a clean word sets nothing.  */
  parser_message *m = parse ("From: a@example.org\r\n"
                             "Subject: =?UTF-8?B?aGVsbG/w?=\r\n\r\nhi\r\n");

  ck_assert_str_eq (m->subject, "hello\xef\xbf\xbd");
  ck_assert (m->anomalies & PARSER_ANOMALY_CHARSET);
  parser_message_free (m);
  m = parse ("From: a@example.org\r\n"
             "Subject: =?utf-8?q?caf=C3=A9_=FF?=\r\n\r\nhi\r\n");
  ck_assert_str_eq (m->subject, "caf\xc3\xa9 \xef\xbf\xbd");
  ck_assert (m->anomalies & PARSER_ANOMALY_CHARSET);
  parser_message_free (m);
  m = parse ("From: a@example.org\r\n"
             "Subject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\nhi\r\n");
  ck_assert_str_eq (m->subject, "caf\xc3\xa9");
  ck_assert (!(m->anomalies & PARSER_ANOMALY_CHARSET));
  parser_message_free (m);
}
END_TEST

/* F5 in display names and filenames: a UTF-8 word (B or Q) with a bad
 * byte gives U+FFFD and the charset flag, never GMime's silent '?'; the
 * Content-Type name= and Content-Disposition filename= alike.  */
START_TEST (test_f5_names_filenames)
{
  parser_message *m = parse (
      "From: =?UTF-8?B?SmFuZfA=?= <jane@example.org>\r\n"
      "To: =?utf-8?q?J=C3=B6rg_=FF?= <j@example.org>\r\n"
      "Subject: names\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=x\r\n\r\n"
      "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
      "--x\r\nContent-Type: application/octet-stream\r\n"
      "Content-Disposition: attachment;\r\n"
      " filename=\"=?UTF-8?B?cmVwb3J08C5wZGY=?=\"\r\n\r\n"
      "data\r\n"
      "--x\r\nContent-Type: application/octet-stream;\r\n"
      " name=\"=?UTF-8?Q?na=EFme.txt?=\"\r\n\r\n"
      "data\r\n"
      "--x--\r\n");

  ck_assert_str_eq (m->from->name, "Jane\xef\xbf\xbd");
  ck_assert_str_eq (m->from->addr, "jane@example.org");
  ck_assert_uint_eq (m->to->len, 1);
  ck_assert_str_eq (((parser_address *) m->to->pdata[0])->name,
                    "J\xc3\xb6rg \xef\xbf\xbd");
  ck_assert_ptr_nonnull (find_att (m, "report\xef\xbf\xbd.pdf"));
  ck_assert_ptr_nonnull (find_att (m, "na\xef\xbf\xbdme.txt"));
  ck_assert (m->anomalies & PARSER_ANOMALY_CHARSET);
  parser_message_free (m);

  /* clean words: nothing changes, nothing flagged */
  m = parse ("From: =?UTF-8?B?SmFuZQ==?= <jane@example.org>\r\n"
             "Subject: names\r\n"
             "MIME-Version: 1.0\r\n"
             "Content-Type: application/octet-stream;\r\n"
             " name=\"=?UTF-8?Q?caf=C3=A9.txt?=\"\r\n\r\n"
             "data\r\n");
  ck_assert_str_eq (m->from->name, "Jane");
  ck_assert_ptr_nonnull (find_att (m, "caf\xc3\xa9.txt"));
  ck_assert (!(m->anomalies & PARSER_ANOMALY_CHARSET));
  parser_message_free (m);
}
END_TEST

/* F11: raw 8-bit UTF-8 with its last character cut by the sender (the
 * corpus case: flanker russian-attachment-yahoo.eml) is read as UTF-8,
 * the cut character as U+FFFD, and flagged; real Latin-1 keeps the
 * windows-1252 reading, unflagged.  */
START_TEST (test_f11_cut_utf8)
{
  parser_message *m = parse (
      "From: \xd0\x9e\xd0\xbb\xd1\x8f \xd0 <olya@example.org>\r\n"
      "Subject: \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd1\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=x\r\n\r\n"
      "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
      "--x\r\nContent-Type: image/jpeg\r\n"
      "Content-Disposition: attachment;\r\n"
      " filename=\"\xd1\x82\xd0\xb0\xd0\xba \xd1\x87\xd1\x82\xd0\"\r\n\r\n"
      "data\r\n"
      "--x--\r\n");

  ck_assert_str_eq (m->from->name, "\xd0\x9e\xd0\xbb\xd1\x8f \xef\xbf\xbd");
  ck_assert_str_eq (m->subject,
                    "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 "
                    "\xef\xbf\xbd");
  ck_assert_str_eq (m->header_values->pdata[1], m->subject);
  ck_assert_ptr_nonnull (
      find_att (m, "\xd1\x82\xd0\xb0\xd0\xba \xd1\x87\xd1\x82\xef\xbf\xbd"));
  ck_assert (m->anomalies & PARSER_ANOMALY_CHARSET);
  parser_message_free (m);

  /* Latin-1: no complete UTF-8 sequence, so still windows-1252 */
  m = parse ("From: Ren\xe9 <rene@example.org>\r\n"
             "Subject: caf\xe9 au lait\r\n\r\nhi\r\n");
  ck_assert_str_eq (m->from->name, "Ren\xc3\xa9");
  ck_assert_str_eq (m->subject, "caf\xc3\xa9 au lait");
  ck_assert (!(m->anomalies & PARSER_ANOMALY_CHARSET));
  parser_message_free (m);
}
END_TEST

/* F6: HZ (RFC 1843), which glibc's iconv lacks, in an encoded word in
 * Subject, in a display name, in a filename and as a text part's charset
 * (tests/corpus/repro/hz-gb-2312.eml); broken HZ becomes U+FFFD and is
 * flagged.  */
START_TEST (test_f6_hz)
{
  parser_message *m = parse_found ("corpus/repro", "hz-gb-2312.eml");

  ck_assert_str_eq (m->subject, "\xe5\x90\x91\xe5\x85\x88\xe7\x94\x9f"
                                "\xe8\x87\xb4 (bins)");
  ck_assert_str_eq (m->from->name, "\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e");
  ck_assert_ptr_nonnull (find_att (m, "\xe7\x94\xb3\xe8\xaf\xb7\xe8\xa1\xa8"
                                      ".pdf"));
  ck_assert_str_eq (m->text,
                    "\xe6\x82\xa8\xe5\xa5\xbd,\n\xe6\x88\x91\xe6\x83\xb3"
                    "\xe6\x8a\x95\xe8\xaf\x89\xe5\x9e\x83\xe5\x9c\xbe"
                    "\xe6\x94\xb6\xe9\x9b\x86\xe3\x80\x82");
  ck_assert (!(m->anomalies & PARSER_ANOMALY_CHARSET));
  ck_assert (!(m->anomalies & PARSER_ANOMALY_ENCODED_WORD));
  parser_message_free (m);

  /* broken HZ: '~' before 'x', a space inside a GB run */
  m = parse ("From: a@example.org\r\n"
             "Subject: =?HZ-GB-2312?Q?a~x~{Or_Oh~}?=\r\n"
             "Content-Type: text/plain; charset=hz-gb-2312\r\n\r\n"
             "~{Or~} ~x\r\n");
  ck_assert_str_eq (m->subject, "a\xef\xbf\xbdx\xe5\x90\x91\xef\xbf\xbd"
                                "\xe7\xbf\x94");
  ck_assert_str_eq (m->text, "\xe5\x90\x91 \xef\xbf\xbdx");
  ck_assert (m->anomalies & PARSER_ANOMALY_CHARSET);
  parser_message_free (m);
}
END_TEST

START_TEST (test_f3_b_words)
{
  parser_message *m = parse_found ("corpus/repro", "b-word-after-padding.eml");
  parser_attachment *a;

  ck_assert_str_eq (m->subject, "Planning objection");
  ck_assert_str_eq (m->from->name, "Jane Doe");
  ck_assert_ptr_nonnull (find_att (m, "letter1.pdf"));
  ck_assert (!(m->anomalies & PARSER_ANOMALY_ENCODED_WORD));
  ck_assert_str_eq (m->header_values->pdata[2], "Planning objection");
  parser_message_free (m);

  m = parse_found ("corpus/repro", "b-word-hides-extension.eml");
  a = find_att (m, "invoice.pdf.js");
  ck_assert_ptr_nonnull (a);
  ck_assert (a->flags & PARSER_ATT_EXECUTABLE);
  ck_assert (a->flags & PARSER_ATT_DOUBLE_EXT);
  parser_message_free (m);

  /* To/Cc names, name= on Content-Type, Q and B mixed, white space
   * between words dropped but kept around other text, a forwarded
   * message's subject */
  m = parse ("From: a@example.org\r\n"
             "To: =?UTF-8?B?Sm9obg==?=  =?UTF-8?B?IFNtaXRo?= <j@example.org>\r\n"
             "Cc: \"=?ISO-8859-1?B?Suk=?= =?ISO-8859-1?B?cvRtZQ==?=\" <c@example.org>\r\n"
             "Subject: Re: =?UTF-8?B?YQ==?=\r\n =?UTF-8?Q?b?= and =?UTF-8?B?Yw==?=\r\n"
             "MIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed; boundary=x\r\n\r\n"
             "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
             "--x\r\nContent-Type: application/octet-stream;\r\n"
             " name=\"=?UTF-8?B?cmVwb3J0?= =?UTF-8?B?LnBkZi5zY3I=?=\"\r\n\r\n"
             "data\r\n"
             "--x\r\nContent-Type: message/rfc822\r\n\r\n"
             "From: b@example.org\r\n"
             "Subject: =?UTF-8?B?Rm9yd2FyZA==?= =?UTF-8?B?ZWQ=?=\r\n\r\n"
             "inner\r\n"
             "--x--\r\n");
  ck_assert_str_eq (m->subject, "Re: ab and c");
  ck_assert_uint_eq (m->to->len, 1);
  ck_assert_str_eq (((parser_address *) m->to->pdata[0])->name, "John Smith");
  ck_assert_str_eq (((parser_address *) m->to->pdata[0])->addr,
                    "j@example.org");
  ck_assert_str_eq (((parser_address *) m->cc->pdata[0])->name,
                    "J\xc3\xa9r\xc3\xb4me");
  a = find_att (m, "report.pdf.scr");
  ck_assert_ptr_nonnull (a);
  ck_assert (a->flags & PARSER_ATT_EXECUTABLE);
  ck_assert (a->flags & PARSER_ATT_DOUBLE_EXT);
  ck_assert_ptr_nonnull (find_att (m, "Forwarded.eml"));
  ck_assert (!(m->anomalies & PARSER_ANOMALY_ENCODED_WORD));
  assert_message_valid (m);
  parser_message_free (m);

  /* broken words are still flagged */
  m = parse ("From: a@example.org\r\n"
             "Subject: =?UTF-8?B?UGxhbm5pbmc?= =?UTF-8?B?IG9iamVjdGlvbg==?=\r\n"
             "\r\nbody\r\n");
  ck_assert (m->anomalies & PARSER_ANOMALY_ENCODED_WORD);
  ck_assert_ptr_nonnull (m->subject);
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

/* F8: attachments are hashed with the SHA extensions where the CPU has
 * them: the digest is GLib's for every length to 1 KiB (each alignment
 * mod 4) and for large sizes around the block size.  */
START_TEST (test_f8_sha256)
{
  gsize max = 3 * 1024 * 1024 + 70;
  g_autofree guint8 *d = g_malloc (max);
  guint32 x = 0x9e3779b9u;
  static const gsize big[] = { 65536, 65536 + 55, 65536 + 56, 1000003,
                               3 * 1024 * 1024 + 64 };

  for (gsize i = 0; i < max; i++)
    {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      d[i] = (guint8) x;
    }
  for (gsize n = 0; n <= 1024 + G_N_ELEMENTS (big); n++)
    {
      gsize len = n <= 1024 ? n : big[n - 1025];

      for (gsize off = 0; off < (n <= 1024 ? 4u : 1u); off++)
        {
          g_autofree char *want = g_compute_checksum_for_data (
              G_CHECKSUM_SHA256, d + off, len);
          char got[65];

          parser_sha256_hex (d + off, len, got);
          ck_assert_msg (strcmp (want, got) == 0, "length %zu offset %zu: "
                         "%s, GLib %s", len, off, got, want);
        }
    }
  {
    char got[65];

    parser_sha256_hex (NULL, 0, got);
    ck_assert_str_eq (got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b9"
                           "34ca495991b7852b855");
  }
}
END_TEST

START_TEST (test_f9_nul_in_filename)
{
  parser_message *m = parse_found ("corpus/repro",
                                   "filename-nul-hides-extension.eml");
  parser_attachment *a;

  ck_assert_uint_eq (m->attachments->len, 1);
  a = m->attachments->pdata[0];
  ck_assert_str_eq (a->name, "invoice");  /* shown cut, as before */
  ck_assert (a->flags & PARSER_ATT_NAME_CLEANED);
  ck_assert (a->flags & PARSER_ATT_EXECUTABLE);
  ck_assert (a->flags & PARSER_ATT_DOUBLE_EXT);
  ck_assert (m->anomalies & PARSER_ANOMALY_FILENAME);
  parser_message_free (m);

  /* name*= on Content-Type */
  m = parse ("From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed; boundary=x\r\n\r\n"
             "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
             "--x\r\nContent-Type: application/pdf; "
             "name*=utf-8''statement%00.pdf.js\r\n\r\ndata\r\n--x--\r\n");
  ck_assert_uint_eq (m->attachments->len, 1);
  a = m->attachments->pdata[0];
  ck_assert (a->flags & PARSER_ATT_EXECUTABLE);
  ck_assert (a->flags & PARSER_ATT_DOUBLE_EXT);
  ck_assert (a->flags & PARSER_ATT_NAME_CLEANED);
  assert_message_valid (m);
  parser_message_free (m);

  /* a harmless name after the NUL sets nothing more */
  m = parse ("From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed; boundary=x\r\n\r\n"
             "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
             "--x\r\nContent-Type: application/pdf\r\n"
             "Content-Disposition: attachment; filename*=utf-8''a%00b.pdf\r\n"
             "\r\n%PDF-1.4\r\n--x--\r\n");
  a = m->attachments->pdata[0];
  ck_assert (!(a->flags & (PARSER_ATT_EXECUTABLE | PARSER_ATT_DOUBLE_EXT)));
  ck_assert (a->flags & PARSER_ATT_NAME_CLEANED);
  parser_message_free (m);
}
END_TEST

START_TEST (test_f4_no_subtype)
{
  parser_message *m = parse_found ("corpus/repro",
                                   "content-type-no-subtype.eml");

  ck_assert_uint_eq (m->attachments->len, 0);
  ck_assert_str_eq (m->text, "The dog next door barks all night.");
  ck_assert (m->anomalies & PARSER_ANOMALY_GMIME_WARNING);
  parser_message_free (m);

  m = parse_found ("corpus/repro", "content-type-no-slash-name.eml");
  ck_assert_str_eq (m->text, "Form attached.");
  ck_assert_uint_eq (m->attachments->len, 1);
  ck_assert_ptr_nonnull (find_att (m, "form.pdf"));
  parser_message_free (m);

  /* charset kept with the missing subtype */
  m = parse ("From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
             "Content-Type: TEXT ; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n");
  ck_assert_uint_eq (m->attachments->len, 0);
  ck_assert_str_eq (m->text, "caf\xc3\xa9");
  assert_message_valid (m);
  parser_message_free (m);
}
END_TEST

START_TEST (test_f7_three_digit_zone)
{
  parser_message *m = parse_found ("corpus/repro", "date-three-digit-zone.eml");

  /* 13:30:57 -0600 */
  ck_assert_int_eq (m->date, 809033457);
  ck_assert (m->anomalies & PARSER_ANOMALY_GMIME_WARNING);
  parser_message_free (m);

  m = parse ("From: a@example.org\r\n"
             "Date: Mon, 21 Aug 1995 13:30:57 +130 (odd)\r\n\r\nbody\r\n");
  ck_assert_int_eq (m->date, 809033457 - 6 * 3600 - 90 * 60);
  parser_message_free (m);

  /* four digits: untouched, no anomaly */
  m = parse ("From: a@example.org\r\n"
             "Date: Mon, 21 Aug 1995 13:30:57 -0600\r\n\r\nbody\r\n");
  ck_assert_int_eq (m->date, 809033457);
  ck_assert (!(m->anomalies & PARSER_ANOMALY_GMIME_WARNING));
  parser_message_free (m);
}
END_TEST

/* ------------------------------------------------------------ pack */

static void
assert_str_same (const char *a, const char *b, const char *what)
{
  if (g_strcmp0 (a, b) != 0)
    ck_abort_msg ("%s differs: \"%s\" / \"%s\"", what, a ? a : "(null)",
                  b ? b : "(null)");
}

static void
assert_addr_same (const parser_address *a, const parser_address *b)
{
  ck_assert ((a == NULL) == (b == NULL));
  if (a == NULL)
    return;
  assert_str_same (a->name, b->name, "address name");
  assert_str_same (a->addr, b->addr, "address");
}

static void
assert_strs_same (GPtrArray *a, GPtrArray *b, const char *what)
{
  if (a->len != b->len)
    ck_abort_msg ("%s: %u / %u entries", what, a->len, b->len);
  for (guint i = 0; i < a->len; i++)
    assert_str_same (a->pdata[i], b->pdata[i], what);
}

static void
assert_messages_same (const parser_message *a, const parser_message *b)
{
  assert_str_same (a->subject, b->subject, "subject");
  assert_addr_same (a->from, b->from);
  assert_addr_same (a->reply_to, b->reply_to);
  ck_assert_uint_eq (a->to->len, b->to->len);
  for (guint i = 0; i < a->to->len; i++)
    assert_addr_same (a->to->pdata[i], b->to->pdata[i]);
  ck_assert_uint_eq (a->cc->len, b->cc->len);
  for (guint i = 0; i < a->cc->len; i++)
    assert_addr_same (a->cc->pdata[i], b->cc->pdata[i]);
  ck_assert_int_eq (a->date, b->date);
  assert_str_same (a->message_id, b->message_id, "message_id");
  assert_str_same (a->in_reply_to, b->in_reply_to, "in_reply_to");
  assert_strs_same (a->references, b->references, "references");
  assert_strs_same (a->header_names, b->header_names, "header names");
  assert_strs_same (a->header_values, b->header_values, "header values");
  assert_str_same (a->text, b->text, "text");
  assert_str_same (a->quoted, b->quoted, "quoted");
  ck_assert_int_eq (a->text_from_html, b->text_from_html);
  assert_strs_same (a->forwarded, b->forwarded, "forwarded");
  ck_assert_uint_eq (a->attachments->len, b->attachments->len);
  for (guint i = 0; i < a->attachments->len; i++)
    {
      parser_attachment *x = a->attachments->pdata[i];
      parser_attachment *y = b->attachments->pdata[i];
      assert_str_same (x->name, y->name, "attachment name");
      assert_str_same (x->declared_type, y->declared_type, "declared");
      assert_str_same (x->detected_type, y->detected_type, "detected");
      ck_assert_uint_eq (x->size, y->size);
      ck_assert_str_eq (x->sha256, y->sha256);
      ck_assert (g_bytes_equal (x->content, y->content));
      assert_str_same (x->content_id, y->content_id, "content id");
      ck_assert_uint_eq (x->flags, y->flags);
    }
  ck_assert_uint_eq (a->n_parts, b->n_parts);
  ck_assert_int_eq (a->is_report, b->is_report);
  assert_str_same (a->report_message_id, b->report_message_id, "report id");
  assert_str_same (a->report_status, b->report_status, "report status");
  assert_str_same (a->report_recipient, b->report_recipient, "report rcpt");
  ck_assert_int_eq (a->auto_reply, b->auto_reply);
  assert_str_same (a->auto_reason, b->auto_reason, "auto reason");
  assert_strs_same (a->case_refs, b->case_refs, "case refs");
  ck_assert_uint_eq (a->personal->len, b->personal->len);
  for (guint i = 0; i < a->personal->len; i++)
    {
      parser_pd *x = a->personal->pdata[i], *y = b->personal->pdata[i];
      ck_assert_int_eq (x->kind, y->kind);
      ck_assert_str_eq (x->value, y->value);
    }
  ck_assert_uint_eq (a->special, b->special);
  ck_assert_uint_eq (a->cards_redacted, b->cards_redacted);
  ck_assert_uint_eq (a->anomalies, b->anomalies);
  assert_strs_same (a->notes, b->notes, "notes");
}

static void
assert_json (const parser_message *m, const char *what)
{
  g_autofree char *json = parser_message_to_json (m);
  g_autoptr (JsonParser) p = json_parser_new ();
  g_autoptr (GError) error = NULL;

  ck_assert_msg (json_parser_load_from_data (p, json, -1, &error),
                 "%s: bad JSON: %s", what, error ? error->message : "");
  ck_assert (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p)));
  ck_assert_ptr_nonnull (strstr (json, "\"anomalies\""));
  /* no raw control character anywhere (json-glib leaves U+001F) */
  for (const char *c = json; *c; c++)
    if ((guchar) *c < 0x20 && *c != '\n')
      ck_abort_msg ("%s: control 0x%02x", what, (guchar) *c);
}

START_TEST (test_pack_roundtrip)
{
  g_autoptr (GPtrArray) files = data_files ();

  ck_assert_uint_ge (files->len, 30);
  for (guint i = 0; i < files->len; i++)
    {
      g_autoptr (GBytes) raw = read_file (files->pdata[i]);
      g_autoptr (parser_message) m = parser_message_parse (raw, NULL);
      g_autoptr (GBytes) packed = parser_message_pack (m);
      g_autoptr (GError) error = NULL;
      g_autoptr (parser_message) back = parser_message_unpack (packed, &error);
      g_autoptr (GBytes) again = NULL;

      ck_assert_msg (back != NULL, "%s: %s", (char *) files->pdata[i],
                     error ? error->message : "");
      assert_messages_same (m, back);
      again = parser_message_pack (back);
      ck_assert_msg (g_bytes_equal (packed, again), "%s: pack not stable",
                     (char *) files->pdata[i]);
    }
}
END_TEST

/* A message with every field set, for the fuzzing below.  */
static parser_message *
rich_message (void)
{
  g_autofree char *msg = g_strdup_printf (
      "From: =?UTF-8?Q?J=C3=B6rg?= <j@example.org>\r\nTo: a@b.example\r\n"
      "Cc: c@d.example\r\nReply-To: r@example.org\r\nSubject: Rich\r\n"
      "Date: Tue, 02 Jan 2024 10:30:00 +0100\r\nMessage-ID: <r@x>\r\n"
      "In-Reply-To: <p@x>\r\nReferences: <q@x> <p@x>\r\n"
      "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
      "Content-Type: text/plain\r\n\r\nCall 01632 960001 or write to SW1A 1AA."
      "\r\n\r\nOn Mon, someone wrote:\r\n> old\r\n--o\r\n"
      "Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-ID: <c@x>\r\n"
      "\r\n%%PDF-1.4\r\n--o\r\nContent-Type: message/rfc822\r\n\r\n%s\r\n"
      "--o--\r\n", fwd_inner);

  return parse (msg);
}

START_TEST (test_unpack_hostile)
{
  parser_message *m = rich_message ();
  g_autoptr (GBytes) packed = parser_message_pack (m);
  gsize n;
  const guint8 *p = g_bytes_get_data (packed, &n);
  g_autofree guint8 *copy = g_memdup2 (p, n);
  GRand *rand = g_rand_new_with_seed (1);
  guint ok = 0;

  parser_message_free (m);

  /* truncated: every length of the first KiB, then every 13th */
  for (gsize len = 0; len < n; len += len < 1024 ? 1 : 13)
    {
      g_autoptr (GBytes) cut = g_bytes_new (p, len);
      g_autoptr (GError) error = NULL;
      parser_message *back = parser_message_unpack (cut, &error);
      if (back)
        {
          assert_message_valid (back);
          parser_message_free (back);
          ok++;
        }
      else
        ck_assert (error != NULL && error->domain == PARSER_ERROR);
    }

  /* one bit flipped, 3,000 times */
  for (int i = 0; i < 3000; i++)
    {
      gsize at = (gsize) g_rand_int_range (rand, 0, (gint32) n);
      guint8 bit = (guint8) (1u << g_rand_int_range (rand, 0, 8));
      g_autoptr (GBytes) flipped = NULL;
      g_autoptr (GError) error = NULL;
      parser_message *back;

      copy[at] ^= bit;
      flipped = g_bytes_new (copy, n);
      copy[at] ^= bit;
      back = parser_message_unpack (flipped, &error);
      if (back)
        {
          assert_message_valid (back);
          parser_message_free (back);
          ok++;
        }
      else
        ck_assert (error != NULL);
    }

  /* random garbage */
  for (int i = 0; i < 200; i++)
    {
      gsize len = (gsize) g_rand_int_range (rand, 0, 4096);
      g_autofree guint8 *junk = g_malloc (len + 1);
      g_autoptr (GBytes) b = NULL;
      g_autoptr (GError) error = NULL;
      parser_message *back;

      for (gsize k = 0; k < len; k++)
        junk[k] = (guint8) g_rand_int (rand);
      b = g_bytes_new (junk, len);
      back = parser_message_unpack (b, &error);
      if (back)
        {
          assert_message_valid (back);
          parser_message_free (back);
        }
    }
  g_rand_free (rand);
  (void) ok;
}
END_TEST

/* What the master may rely on in an unpacked message, beyond
 * assert_message_valid(): every bound, mask and kind unpack promises, and
 * that the accepted bytes are exactly what packing the result gives (the
 * format has one encoding per message, so anything else accepted would be
 * a second reading of the same bytes).  */
static void
assert_unpacked_strict (const parser_message *m, GBytes *from)
{
  g_autoptr (GBytes) again = parser_message_pack (m);
  guint64 total = 0;

  assert_message_valid (m);
  ck_assert_msg (g_bytes_equal (again, from), "accepted bytes that do not "
                 "pack back to themselves");
  ck_assert_uint_le (m->to->len, PARSER_LIMIT_LIST);
  ck_assert_uint_le (m->cc->len, PARSER_LIMIT_LIST);
  ck_assert_uint_le (m->references->len, PARSER_LIMIT_LIST);
  ck_assert_uint_le (m->header_names->len, PARSER_LIMIT_HEADERS);
  ck_assert_uint_le (m->forwarded->len, PARSER_LIMIT_PARTS);
  ck_assert_uint_le (m->attachments->len, PARSER_LIMIT_PARTS);
  ck_assert_uint_le (m->case_refs->len, PARSER_LIMIT_LIST);
  ck_assert_uint_le (m->personal->len, PARSER_LIMIT_LIST);
  ck_assert_uint_le (m->notes->len, PARSER_LIMIT_NOTES);
  ck_assert_uint_eq (m->special & ~((PARSER_SPECIAL_CRIMINAL << 1) - 1), 0);
  ck_assert_uint_eq (m->anomalies
                     & ~((PARSER_ANOMALY_TRUNCATED_TEXT << 1) - 1), 0);
  for (guint i = 0; i < m->attachments->len; i++)
    {
      const parser_attachment *a = m->attachments->pdata[i];
      ck_assert_uint_eq (a->flags & ~((PARSER_ATT_FORWARDED << 1) - 1), 0);
      for (guint k = 0; k < 64; k++)
        ck_assert (g_ascii_isdigit (a->sha256[k])
                   || (a->sha256[k] >= 'a' && a->sha256[k] <= 'f'));
      ck_assert_int_eq (a->sha256[64], '\0');
      total += a->size;
    }
  ck_assert_uint_le (total, PARSER_LIMIT_DECODED);
  for (guint i = 0; i < m->personal->len; i++)
    ck_assert_uint_le (((parser_pd *) m->personal->pdata[i])->kind,
                       PARSER_PD_CARD);
}

/* Unpack @len bytes of @p: refused with a PARSER_ERROR_MALFORMED error, or
 * accepted and strictly valid.  TRUE if accepted.  */
static gboolean
unpack_checked (const guint8 *p, gsize len)
{
  /* a copy of its own, so ASan sees any read past @len */
  g_autoptr (GBytes) b = g_bytes_new (p, len);
  g_autoptr (GError) error = NULL;
  parser_message *back = parser_message_unpack (b, &error);

  if (back == NULL)
    {
      ck_assert (g_error_matches (error, PARSER_ERROR,
                                  PARSER_ERROR_MALFORMED));
      return FALSE;
    }
  ck_assert_ptr_null (error);
  assert_unpacked_strict (back, b);
  parser_message_free (back);
  return TRUE;
}

/* A message with every field set and every list non-empty.  */
static parser_message *
full_message (void)
{
  parser_message *m = rich_message ();
  parser_pd *pd = g_new0 (parser_pd, 1);

  pd->kind = PARSER_PD_NINO;
  pd->value = g_strdup ("QQ123456C");
  g_ptr_array_add (m->personal, pd);
  g_ptr_array_add (m->case_refs, g_strdup ("REF-1234"));
  g_ptr_array_add (m->notes, g_strdup ("a note \xe2\x9c\x93"));
  g_clear_pointer (&m->report_status, g_free);
  m->report_status = g_strdup ("failed");
  g_clear_pointer (&m->auto_reason, g_free);
  m->auto_reason = g_strdup ("header");
  m->special |= PARSER_SPECIAL_HEALTH;
  m->anomalies |= PARSER_ANOMALY_CHARSET;
  m->cards_redacted = 2;
  return m;
}

START_TEST (test_unpack_every_byte)
{
  /* Every cut, every single-byte change and a crafted 32- and 64-bit
   * length or count at every offset of a valid pack: each is refused
   * cleanly or gives a message that passes every check (ASan: no read
   * outside the bytes).  */
  parser_message *m = full_message ();
  g_autoptr (GBytes) packed = parser_message_pack (m);
  gsize n;
  const guint8 *p = g_bytes_get_data (packed, &n);
  g_autofree guint8 *copy = g_memdup2 (p, n);
  guint cut_ok = 0, byte_ok = 0, crafted = 0;

  parser_message_free (m);
  ck_assert_uint_ge (n, 200);
  ck_assert (unpack_checked (p, n));

  /* cut short at every offset: never accepted (nothing in the format is
   * optional at the end) */
  for (gsize len = 0; len < n; len++)
    cut_ok += unpack_checked (p, len);
  ck_assert_uint_eq (cut_ok, 0);
  /* one byte more: refused (nothing may follow the last field) */
  {
    g_autofree guint8 *longer = g_malloc (n + 1);
    memcpy (longer, p, n);
    longer[n] = 0;
    ck_assert (!unpack_checked (longer, n + 1));
  }

  /* every byte changed to each of a few values */
  for (gsize at = 0; at < n; at++)
    {
      const guint8 orig = copy[at];
      const guint8 vals[] = { 0x00, 0xff, 0x7f, 0x80, (guint8) (orig ^ 0x80),
                              (guint8) (orig + 1), (guint8) (orig - 1),
                              (guint8) (orig ^ 0x01), 0xc0, '\\' };
      for (guint k = 0; k < G_N_ELEMENTS (vals); k++)
        {
          if (vals[k] == orig)
            continue;
          copy[at] = vals[k];
          byte_ok += unpack_checked (copy, n);
        }
      copy[at] = orig;
    }

  /* crafted 32-bit lengths and counts at every offset, including the ones
   * that wrap when added to the offset or multiplied by an entry size */
  for (gsize at = 0; at + 4 <= n; at++)
    {
      const guint32 vals[] = { 0xffffffffu, 0xfffffffeu, 0x80000000u,
                               0x7fffffffu, 0x40000000u, 0x10000000u,
                               (guint32) (0u - (guint32) at),
                               (guint32) (0u - (guint32) at - 4),
                               (guint32) (n - at - 4),
                               (guint32) (n - at - 3),
                               (guint32) (n - at), 0, 1000, 1001, 10001,
                               PARSER_LIMIT_FILENAME + 1,
                               2 * PARSER_LIMIT_HEADER_VALUE + 1 };
      guint8 save[4];

      memcpy (save, copy + at, 4);
      for (guint k = 0; k < G_N_ELEMENTS (vals); k++)
        {
          guint32 le = GUINT32_TO_LE (vals[k]);
          memcpy (copy + at, &le, 4);
          unpack_checked (copy, n);
          crafted++;
        }
      memcpy (copy + at, save, 4);
    }
  /* crafted 64-bit sizes (attachment size and content length) */
  for (gsize at = 0; at + 8 <= n; at++)
    {
      const guint64 vals[] = { G_MAXUINT64, G_MAXUINT64 - 7,
                               G_GUINT64_CONSTANT (1) << 63,
                               G_GUINT64_CONSTANT (1) << 32,
                               (G_GUINT64_CONSTANT (1) << 32) + 8,
                               (guint64) PARSER_LIMIT_DECODED + 1,
                               (guint64) 0 - (guint64) at,
                               (guint64) (n - at - 8),
                               (guint64) (n - at) };
      guint8 save[8];

      memcpy (save, copy + at, 8);
      for (guint k = 0; k < G_N_ELEMENTS (vals); k++)
        {
          guint64 le = GUINT64_TO_LE (vals[k]);
          memcpy (copy + at, &le, 8);
          unpack_checked (copy, n);
          crafted++;
        }
      memcpy (copy + at, save, 8);
    }
  ck_assert (memcmp (copy, p, n) == 0);
  /* the fields really are there to be damaged: some single-byte changes
   * (inside text) are still valid packs */
  ck_assert_uint_gt (byte_ok, 0);
  ck_assert_uint_gt (crafted, 0);
}
END_TEST

/* A pack of an empty message whose subject is @len bytes of @s (the
 * subject is the first field after the version).  */
static GBytes *
pack_with_subject (const void *s, guint32 len)
{
  g_autoptr (parser_message) m = parser_message_new ();
  g_autoptr (GBytes) base = parser_message_pack (m);
  gsize n;
  const guint8 *p = g_bytes_get_data (base, &n);
  GByteArray *b = g_byte_array_new ();
  guint32 le = GUINT32_TO_LE (len);

  ck_assert_uint_ge (n, 8);
  /* version, then the subject's length (none), then the rest */
  ck_assert (memcmp (p + 4, "\xff\xff\xff\xff", 4) == 0);
  g_byte_array_append (b, p, 4);
  g_byte_array_append (b, (const guint8 *) &le, 4);
  g_byte_array_append (b, s, len);
  g_byte_array_append (b, p + 8, (guint) (n - 8));
  return g_byte_array_free_to_bytes (b);
}

static gboolean
subject_accepted (const char *s, guint32 len)
{
  g_autoptr (GBytes) b = pack_with_subject (s, len);
  gsize n;
  const guint8 *p = g_bytes_get_data (b, &n);

  return unpack_checked (p, n);
}

START_TEST (test_unpack_strings)
{
  /* What a string field may hold: UTF-8 without NUL, within its bound.  */
  const gsize max = 2 * (gsize) PARSER_LIMIT_HEADER_VALUE;
  g_autofree char *big = g_malloc (max + 1);

  memset (big, 'a', max + 1);
  ck_assert (subject_accepted ("", 0));
  ck_assert (subject_accepted ("abc", 3));
  ck_assert (subject_accepted ("\xe2\x80\xa8\xf0\x9f\x98\x80", 7));
  ck_assert (subject_accepted (big, (guint32) max));
  ck_assert (!subject_accepted (big, (guint32) max + 1));
  ck_assert (!subject_accepted ("a\0b", 3));        /* NUL inside */
  ck_assert (!subject_accepted ("ab\0", 3));        /* NUL at the end */
  ck_assert (!subject_accepted ("\xc0\x80", 2));    /* overlong NUL */
  ck_assert (!subject_accepted ("\xc1\xbf", 2));    /* overlong */
  ck_assert (!subject_accepted ("\xe0\x80\xaf", 3));
  ck_assert (!subject_accepted ("\xed\xa0\x80", 3)); /* surrogate */
  ck_assert (!subject_accepted ("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  ck_assert (!subject_accepted ("\x80", 1));        /* lone continuation */
  ck_assert (!subject_accepted ("a\xe2\x82", 3));   /* cut sequence */
  ck_assert (!subject_accepted ("\xff", 1));
  /* a length that does not match the bytes that follow */
  {
    g_autoptr (GBytes) b = pack_with_subject ("abc", 3);
    gsize n;
    const guint8 *bp = g_bytes_get_data (b, &n);
    g_autofree guint8 *q = g_memdup2 (bp, n);
    for (guint32 len = 0; len < 64; len++)
      if (len != 3)
        {
          guint32 le = GUINT32_TO_LE (len);
          memcpy (q + 4, &le, 4);
          ck_assert (!unpack_checked (q, n));
        }
  }
}
END_TEST

/* Packs @m and unpacks it: TRUE if accepted (strictly valid then).  */
static gboolean
pack_accepted (const parser_message *m)
{
  g_autoptr (GBytes) b = parser_message_pack (m);
  gsize n;
  const guint8 *p = g_bytes_get_data (b, &n);

  return unpack_checked (p, n);
}

/* Fills @list to @count with short strings (addresses if @addrs).  */
static void
fill_list (GPtrArray *list, guint count, gboolean addrs)
{
  while (list->len < count)
    if (addrs)
      {
        parser_address *a = g_new0 (parser_address, 1);
        a->addr = g_strdup ("a@b.example");
        g_ptr_array_add (list, a);
      }
    else
      g_ptr_array_add (list, g_strdup ("x"));
}

START_TEST (test_unpack_counts)
{
  /* Each list at its limit is accepted, one over it refused, although
   * the bytes for every entry are there.  */
  struct { gsize off; guint limit; gboolean addrs; } lists[] = {
    { G_STRUCT_OFFSET (parser_message, to), PARSER_LIMIT_LIST, TRUE },
    { G_STRUCT_OFFSET (parser_message, cc), PARSER_LIMIT_LIST, TRUE },
    { G_STRUCT_OFFSET (parser_message, references), PARSER_LIMIT_LIST, FALSE },
    { G_STRUCT_OFFSET (parser_message, forwarded), PARSER_LIMIT_PARTS, FALSE },
    { G_STRUCT_OFFSET (parser_message, case_refs), PARSER_LIMIT_LIST, FALSE },
    { G_STRUCT_OFFSET (parser_message, notes), PARSER_LIMIT_NOTES, FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (lists); i++)
    {
      g_autoptr (parser_message) m = parser_message_new ();
      GPtrArray *list = G_STRUCT_MEMBER (GPtrArray *, m, lists[i].off);

      fill_list (list, lists[i].limit, lists[i].addrs);
      ck_assert_msg (pack_accepted (m), "list %u at its limit refused", i);
      fill_list (list, lists[i].limit + 1, lists[i].addrs);
      ck_assert_msg (!pack_accepted (m), "list %u over its limit", i);
    }

  {
    g_autoptr (parser_message) m = parser_message_new ();
    fill_list (m->header_names, PARSER_LIMIT_HEADERS, FALSE);
    fill_list (m->header_values, PARSER_LIMIT_HEADERS, FALSE);
    ck_assert (pack_accepted (m));
    fill_list (m->header_names, PARSER_LIMIT_HEADERS + 1, FALSE);
    fill_list (m->header_values, PARSER_LIMIT_HEADERS + 1, FALSE);
    ck_assert (!pack_accepted (m));
    /* names and values must pair up */
    g_ptr_array_set_size (m->header_values, 3);
    g_ptr_array_set_size (m->header_names, 4);
    ck_assert (!pack_accepted (m));
  }

  {
    g_autoptr (parser_message) m = parser_message_new ();
    while (m->personal->len < PARSER_LIMIT_LIST + 1)
      {
        parser_pd *pd = g_new0 (parser_pd, 1);
        pd->kind = PARSER_PD_EMAIL;
        pd->value = g_strdup ("a@b.example");
        g_ptr_array_add (m->personal, pd);
        if (m->personal->len == PARSER_LIMIT_LIST)
          ck_assert (pack_accepted (m));
      }
    ck_assert (!pack_accepted (m));
    ((parser_pd *) m->personal->pdata[0])->kind = PARSER_PD_CARD + 1;
    g_ptr_array_set_size (m->personal, 1);
    ck_assert (!pack_accepted (m));
  }

  {
    g_autoptr (parser_message) m = parser_message_new ();
    while (m->attachments->len < PARSER_LIMIT_PARTS + 1)
      {
        parser_attachment *a = g_new0 (parser_attachment, 1);
        a->name = g_strdup ("a");
        a->declared_type = g_strdup ("text/plain");
        a->detected_type = g_strdup ("text/plain");
        a->content = g_bytes_new_static ("", 0);
        parser_sha256_hex ("", 0, a->sha256);
        g_ptr_array_add (m->attachments, a);
        if (m->attachments->len == PARSER_LIMIT_PARTS)
          ck_assert (pack_accepted (m));
      }
    ck_assert (!pack_accepted (m));
  }
}
END_TEST

START_TEST (test_unpack_bounds)
{
  /* A well-formed pack whose counts are out of bounds is refused.  */
  parser_message *m = rich_message ();
  g_autoptr (GBytes) packed = NULL;
  g_autoptr (GError) error = NULL;
  parser_message *back;

  m->anomalies |= 1u << 30;
  packed = parser_message_pack (m);
  back = parser_message_unpack (packed, &error);
  ck_assert_ptr_null (back);
  ck_assert (g_error_matches (error, PARSER_ERROR, PARSER_ERROR_MALFORMED));
  g_clear_error (&error);
  g_clear_pointer (&packed, g_bytes_unref);
  m->anomalies &= ~(1u << 30);

  m->n_parts = PARSER_LIMIT_PARTS + 1;
  packed = parser_message_pack (m);
  back = parser_message_unpack (packed, &error);
  ck_assert_ptr_null (back);
  g_clear_error (&error);
  g_clear_pointer (&packed, g_bytes_unref);
  m->n_parts = 1;

  ((parser_attachment *) m->attachments->pdata[0])->sha256[3] = 'X';
  packed = parser_message_pack (m);
  back = parser_message_unpack (packed, &error);
  ck_assert_ptr_null (back);
  g_clear_error (&error);
  g_clear_pointer (&packed, g_bytes_unref);

  /* well-formed, but not the hash of the content: a worker's word is not
   * taken for it */
  {
    parser_attachment *a = m->attachments->pdata[0];
    char good[65];

    parser_sha256_hex (g_bytes_get_data (a->content, NULL),
                       g_bytes_get_size (a->content), good);
    parser_sha256_hex ("something else", 14, a->sha256);
    packed = parser_message_pack (m);
    back = parser_message_unpack (packed, &error);
    ck_assert_ptr_null (back);
    ck_assert (strstr (error->message, "sha256 does not match content"));
    g_clear_error (&error);
    g_clear_pointer (&packed, g_bytes_unref);
    memcpy (a->sha256, good, sizeof good);
    packed = parser_message_pack (m);
    back = parser_message_unpack (packed, &error);
    ck_assert_msg (back != NULL, "%s", error ? error->message : "");
    parser_message_free (back);
  }
  parser_message_free (m);
}
END_TEST

START_TEST (test_json)
{
  parser_message *m = rich_message ();
  g_autofree char *json = parser_message_to_json (m);
  g_autoptr (JsonParser) p = json_parser_new ();
  JsonObject *o;
  JsonArray *atts;

  ck_assert (json_parser_load_from_data (p, json, -1, NULL));
  o = json_node_get_object (json_parser_get_root (p));
  ck_assert_str_eq (json_object_get_string_member (o, "subject"), "Rich");
  ck_assert_str_eq (json_object_get_string_member (o, "date"),
                    "2024-01-02T09:30:00Z");
  ck_assert_int_eq (json_object_get_int_member (o, "date_unix"), 1704187800);
  ck_assert_str_eq (json_object_get_string_member (
                        json_object_get_object_member (o, "from"), "name"),
                    "Jörg");
  atts = json_object_get_array_member (o, "attachments");
  ck_assert_uint_eq (json_array_get_length (atts), 3);
  ck_assert (json_object_has_member (json_array_get_object_element (atts, 0),
                                     "sha256"));
  ck_assert (!json_object_has_member (json_array_get_object_element (atts, 0),
                                      "content"));
  ck_assert (json_object_has_member (o, "headers"));
  ck_assert (json_object_has_member (o, "personal"));
  ck_assert (json_object_get_null_member (o, "report_status"));
  assert_json (m, "rich");
  parser_message_free (m);

  ck_assert_str_eq (parser_anomaly_name (PARSER_ANOMALY_NESTING), "nesting");
  ck_assert_str_eq (parser_att_flag_name (PARSER_ATT_DOUBLE_EXT),
                    "double_ext");
  ck_assert_str_eq (parser_anomaly_name (PARSER_ANOMALY_DECODED_SIZE),
                    "decoded_size");
  ck_assert_str_eq (parser_pd_kind_name (PARSER_PD_SORT_CODE), "sort-code");
  ck_assert_str_eq (parser_special_name (PARSER_SPECIAL_UNION), "union");
  ck_assert_str_eq (parser_pd_kind_name (PARSER_PD_NINO), "nino");
}
END_TEST

/* ------------------------------------------------------------ corpus */

static void
corpus_check (GPtrArray *files)
{
  for (guint i = 0; i < files->len; i++)
    {
      const char *path = files->pdata[i];
      g_autoptr (GBytes) raw = read_file (path);
      gint64 t0 = thread_cpu_us (), dt;
      parser_message *m = parser_message_parse (raw, NULL);

      dt = thread_cpu_us () - t0;
      ck_assert_msg (m != NULL, "%s: NULL", path);
      ck_assert_msg (dt < TEST_BUDGET_US, "%s took %" G_GINT64_FORMAT " us",
                     path, dt);
      assert_message_valid (m);
      assert_json (m, path);
      parser_message_free (m);
    }
}

START_TEST (test_data_mail)
{
  g_autoptr (GPtrArray) files = data_files ();

  corpus_check (files);
}
END_TEST

START_TEST (test_corpus)
{
  const char *env = g_getenv ("INTAKE_CORPUS");
  g_autofree char *root = project_root ();
  g_autofree char *dir = NULL;
  g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func (g_free);

  if (env != NULL && *env)
    dir = g_strdup (env);
  else if (root != NULL)
    dir = g_build_filename (root, "..", "shared", "corpus", "mail", NULL);
  if (dir == NULL || !g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      printf ("test_parser_message: corpus %s not found: corpus test skipped "
              "(set INTAKE_CORPUS)\n", dir ? dir : "(unset)");
      return;
    }
  collect_files (dir, files);
  ck_assert_uint_gt (files->len, 0);
  corpus_check (files);
}
END_TEST

/* ------------------------------------------------------------ suite */

/* One GMimeParser a thread is used again for every message
 * (parser_message.c, parser_walk_parser_take ()): what a message gives
 * must not depend on what the thread parsed before.  Each message packed
 * as a fresh thread parses it, then in one thread, twice, in two orders,
 * after a forwarded message whose base64 body is parsed again (a second
 * parser while the first is out) and after bytes GMime cannot parse.  */
static const char *reuse_msgs[4];

static gpointer
reuse_pack_one (gpointer data)
{
  const char *s = data;
  parser_message *m = parse (s);
  GBytes *b = parser_message_pack (m);

  parser_message_free (m);
  return b;
}

static gpointer
reuse_pack_all (gpointer data)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) g_bytes_unref);
  const guint order[] = { 0, 1, 2, 3, 3, 2, 1, 0, 1, 3, 0, 2 };

  for (guint i = 0; i < G_N_ELEMENTS (order); i++)
    g_ptr_array_add (out, reuse_pack_one ((gpointer) reuse_msgs[order[i]]));
  return out;
}

START_TEST (test_parser_reused_between_messages)
{
  g_autofree char *inner_b64 = NULL;
  g_autofree char *forwarded = NULL;
  const char *inner =
      "From: Inner <inner@example.org>\r\nSubject: inner one\r\n"
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=in\r\n"
      "\r\n--in\r\nContent-Type: text/plain\r\n\r\nThe inner text.\r\n"
      "--in\r\nContent-Type: text/html\r\n\r\n<p>inner html</p>\r\n"
      "--in--\r\n";
  const guint order[] = { 0, 1, 2, 3, 3, 2, 1, 0, 1, 3, 0, 2 };
  GBytes *fresh[4];
  GPtrArray *seq;

  inner_b64 = g_base64_encode ((const guchar *) inner, strlen (inner));
  forwarded = g_strdup_printf (
      "From: A <a@example.org>\r\nTo: b@example.org\r\nSubject: fwd\r\n"
      "Message-ID: <fwd@example.org>\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=out\r\n\r\n"
      "--out\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
      "--out\r\nContent-Type: message/rfc822\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--out--\r\n",
      inner_b64);
  reuse_msgs[0] = forwarded;
  reuse_msgs[1] = "From: C <c@example.org>\r\nSubject: plain\r\n"
                  "Date: Tue, 3 Nov 2026 10:00:00 +0000\r\n\r\n"
                  "Dear council, the bins were not collected.\r\n";
  reuse_msgs[2] = "\x01\x02 not a header\r\n\r\n";
  reuse_msgs[3] = "From: D <d@example.org>\r\nSubject: =?UTF-8?B?w6l0w6k=?=\r\n"
                  "Content-Type: text/html; charset=windows-1252\r\n\r\n"
                  "<html><body><p>Caf\xe9 closed</p></body></html>\r\n";
  for (guint i = 0; i < 4; i++)
    fresh[i] = g_thread_join (g_thread_new ("fresh", reuse_pack_one,
                                            (gpointer) reuse_msgs[i]));
  seq = g_thread_join (g_thread_new ("reused", reuse_pack_all, NULL));
  ck_assert_uint_eq (seq->len, G_N_ELEMENTS (order));
  for (guint i = 0; i < seq->len; i++)
    ck_assert_msg (g_bytes_equal (seq->pdata[i], fresh[order[i]]),
                   "message %u (position %u) parsed differently after "
                   "others", order[i], i);
  /* the forwarded one was parsed again, inner text and all */
  {
    parser_message *m = parse (forwarded);
    ck_assert_uint_eq (m->forwarded->len, 1);
    ck_assert_ptr_nonnull (strstr (m->forwarded->pdata[0],
                                   "The inner text."));
    parser_message_free (m);
  }
  g_ptr_array_unref (seq);
  for (guint i = 0; i < 4; i++)
    g_bytes_unref (fresh[i]);
}
END_TEST

static Suite *
parser_message_suite (void)
{
  Suite *s = suite_create ("parser_message");
  TCase *limits = tcase_create ("limits");
  TCase *mime = tcase_create ("mime");
  TCase *pack = tcase_create ("pack");
  TCase *corpus = tcase_create ("corpus");

  tcase_set_timeout (limits, 120);
  tcase_set_timeout (mime, 60);
  tcase_set_timeout (pack, 120);
  tcase_set_timeout (corpus, 300);

  tcase_add_test (limits, test_deep_multipart);
  tcase_add_test (limits, test_deep_rfc822);
  tcase_add_test (limits, test_siblings);
  tcase_add_test (limits, test_live_boundaries);
  tcase_add_test (limits, test_giant_subject);
  tcase_add_test (limits, test_header_count);
  tcase_add_test (limits, test_text_cap);
  tcase_add_test (limits, test_decoded_cap);
  tcase_add_test (limits, test_rfc2231_bomb);
  tcase_add_test (limits, test_rfc2231_odd);
  tcase_add_test (limits, test_param_count);
  tcase_add_test (limits, test_gmime165);
  tcase_add_test (limits, test_encoded_words_bulk);
  tcase_add_test (limits, test_iso2022_bomb);
  suite_add_tcase (s, limits);

  tcase_add_loop_test (mime, test_boundary_tricks, 0,
                       G_N_ELEMENTS (boundary_cases));
  tcase_add_loop_test (mime, test_encoded_words, 0,
                       G_N_ELEMENTS (word_cases));
  tcase_add_loop_test (mime, test_encoded_words_subject_only, 0,
                       G_N_ELEMENTS (word_cases));
  tcase_add_loop_test (mime, test_charsets, 0, G_N_ELEMENTS (charset_cases));
  tcase_add_loop_test (mime, test_transfer_junk, 0,
                       G_N_ELEMENTS (junk_cases));
  tcase_add_test (mime, test_header_pathologies);
  tcase_add_loop_test (mime, test_attachment_names, 0,
                       G_N_ELEMENTS (name_cases));
  tcase_add_loop_test (mime, test_attachment_types, 0,
                       G_N_ELEMENTS (type_cases));
  tcase_add_test (mime, test_tnef_names);
  tcase_add_loop_test (mime, test_tnef_data, 0, G_N_ELEMENTS (tnef_cases));
  tcase_add_test (mime, test_tnef_broken);
  tcase_add_test (mime, test_uuencode);
  tcase_add_test (mime, test_uuencode_broken);
  tcase_add_test (mime, test_forwarded);
  tcase_add_test (mime, test_forwarded_detected);
  tcase_add_test (mime, test_forwarded_encoded);
  tcase_add_test (mime, test_forwarded_top_and_digest);
  tcase_add_test (mime, test_report);
  tcase_add_test (mime, test_report_rfc822);
  tcase_add_loop_test (mime, test_text, 0, G_N_ELEMENTS (text_cases));
  tcase_add_test (mime, test_text_part_attachment_counts);
  tcase_add_test (mime, test_headers);
  tcase_add_loop_test (mime, test_quiet_parse, 0,
                       G_N_ELEMENTS (quiet_cases));
  tcase_add_loop_test (mime, test_quiet_parse_multipart, 0,
                       G_N_ELEMENTS (quiet_mp_cases));
  tcase_add_test (mime, test_context);
  tcase_add_test (mime, test_unparseable);
  tcase_add_test (mime, test_f1_empty_encoded_rfc822);
  tcase_add_test (mime, test_f2_leading_space);
  tcase_add_test (mime, test_f3_b_words);
  tcase_add_test (mime, test_f5_invalid_utf8_in_word);
  tcase_add_test (mime, test_f5_names_filenames);
  tcase_add_test (mime, test_f11_cut_utf8);
  tcase_add_test (mime, test_f6_hz);
  tcase_add_loop_test (mime, test_f10_tnef_unread, 0, 4);
  tcase_add_test (mime, test_f10_tnef_mimekit);
  tcase_add_test (mime, test_f9_nul_in_filename);
  tcase_add_test (mime, test_f8_sha256);
  tcase_add_test (mime, test_f4_no_subtype);
  tcase_add_test (mime, test_f7_three_digit_zone);
  tcase_add_test (mime, test_parser_reused_between_messages);
  suite_add_tcase (s, mime);

  tcase_add_test (pack, test_pack_roundtrip);
  tcase_add_test (pack, test_unpack_hostile);
  tcase_add_test (pack, test_unpack_bounds);
  tcase_add_test (pack, test_unpack_every_byte);
  tcase_add_test (pack, test_unpack_strings);
  tcase_add_test (pack, test_unpack_counts);
  tcase_add_test (pack, test_json);
  suite_add_tcase (s, pack);

  tcase_add_test (corpus, test_data_mail);
  tcase_add_test (corpus, test_corpus);
  suite_add_tcase (s, corpus);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (parser_message_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
