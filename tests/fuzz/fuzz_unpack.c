/*
 * fuzz_unpack.c - libFuzzer target for parser_message_unpack() alone.
 *
 * One input is the bytes a (compromised) parse worker sends the master.
 * parser_message_unpack() must refuse them with PARSER_ERROR_MALFORMED or
 * return a message that keeps every promise of parser_pack.c: bounds,
 * masks, kinds, UTF-8 without NUL, size = content; and since the format
 * has one encoding per message, packing the result must give back exactly
 * the input.  Anything else aborts.
 *
 * fuzz_parser reaches unpack only through packs of parsed mail, lightly
 * damaged; this target lets libFuzzer mutate packs directly.  Its seeds
 * are packs: with FUZZ_UNPACK_SEED_FROM=<dir> and FUZZ_UNPACK_SEED_TO=<dir>
 * in the environment, LLVMFuzzerInitialize() parses every file of the
 * first directory and those below it and writes its pack into the second
 * (make fuzz-unpack does this).
 *
 * Owns: everything it allocates, freed before returning (LeakSanitizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "parser/parser.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static guint
fuzz_unpack_seeds (const char *from, const char *to, guint n)
{
  g_autoptr (GDir) dir = g_dir_open (from, 0, NULL);
  const char *name;

  if (dir == NULL)
    return n;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (from, name, NULL);
      g_autofree char *out = NULL;
      g_autofree char *raw = NULL;
      gsize len;
      parser_message *m;
      GBytes *b, *packed;

      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        {
          n = fuzz_unpack_seeds (path, to, n);
          continue;
        }
      if (!g_file_get_contents (path, &raw, &len, NULL) || len > 1048576)
        continue;
      b = g_bytes_new (raw, len);
      m = parser_message_parse (b, NULL);
      packed = parser_message_pack (m);
      out = g_strdup_printf ("%s/pack-%05u", to, n);
      if (g_bytes_get_size (packed) <= 262144
          && g_file_set_contents (out, g_bytes_get_data (packed, NULL),
                                  (gssize) g_bytes_get_size (packed), NULL))
        n++;
      g_bytes_unref (packed);
      parser_message_free (m);
      g_bytes_unref (b);
    }
  return n;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *from = getenv ("FUZZ_UNPACK_SEED_FROM");
  const char *to = getenv ("FUZZ_UNPACK_SEED_TO");

  if (from != NULL && to != NULL)
    fprintf (stderr, "fuzz_unpack: %u seed packs written to %s\n",
             fuzz_unpack_seeds (from, to, 0), to);
  return 0;
}

static void
fuzz_unpack_check_str (const char *s, gsize max)
{
  if (s == NULL)
    return;
  if (strlen (s) > max || !g_utf8_validate (s, -1, NULL))
    abort ();
}

static void
fuzz_unpack_check_strs (GPtrArray *list, guint max_items, gsize max)
{
  if (list->len > max_items)
    abort ();
  for (guint i = 0; i < list->len; i++)
    {
      if (list->pdata[i] == NULL)
        abort ();
      fuzz_unpack_check_str (list->pdata[i], max);
    }
}

static void
fuzz_unpack_check_addr (const parser_address *a)
{
  if (a == NULL)
    return;
  if (a->addr == NULL)
    abort ();
  fuzz_unpack_check_str (a->name, 2 * PARSER_LIMIT_HEADER_VALUE);
  fuzz_unpack_check_str (a->addr, 2 * PARSER_LIMIT_HEADER_VALUE);
}

static void
fuzz_unpack_check (const parser_message *m)
{
  const gsize v = 2 * (gsize) PARSER_LIMIT_HEADER_VALUE;
  const gsize t = 2 * (gsize) PARSER_LIMIT_TEXT;
  guint64 total = 0;

  fuzz_unpack_check_str (m->subject, v);
  fuzz_unpack_check_addr (m->from);
  fuzz_unpack_check_addr (m->reply_to);
  if (m->to->len > PARSER_LIMIT_LIST || m->cc->len > PARSER_LIMIT_LIST)
    abort ();
  for (guint i = 0; i < m->to->len; i++)
    fuzz_unpack_check_addr (m->to->pdata[i]);
  for (guint i = 0; i < m->cc->len; i++)
    fuzz_unpack_check_addr (m->cc->pdata[i]);
  fuzz_unpack_check_str (m->message_id, v);
  fuzz_unpack_check_str (m->in_reply_to, v);
  fuzz_unpack_check_strs (m->references, PARSER_LIMIT_LIST, v);
  fuzz_unpack_check_strs (m->header_names, PARSER_LIMIT_HEADERS, v);
  fuzz_unpack_check_strs (m->header_values, PARSER_LIMIT_HEADERS, v);
  if (m->header_names->len != m->header_values->len)
    abort ();
  fuzz_unpack_check_str (m->text, t);
  fuzz_unpack_check_str (m->quoted, t);
  fuzz_unpack_check_strs (m->forwarded, PARSER_LIMIT_PARTS, t);
  if (m->attachments->len > PARSER_LIMIT_PARTS)
    abort ();
  for (guint i = 0; i < m->attachments->len; i++)
    {
      const parser_attachment *a = m->attachments->pdata[i];
      if (a->name == NULL || *a->name == '\0' || a->content == NULL
          || a->size != g_bytes_get_size (a->content)
          || (a->flags & ~((PARSER_ATT_FORWARDED << 1) - 1)) != 0
          || strlen (a->sha256) != 64)
        abort ();
      for (guint k = 0; k < 64; k++)
        if (!g_ascii_isdigit (a->sha256[k])
            && !(a->sha256[k] >= 'a' && a->sha256[k] <= 'f'))
          abort ();
      fuzz_unpack_check_str (a->name, PARSER_LIMIT_FILENAME);
      fuzz_unpack_check_str (a->declared_type, v);
      fuzz_unpack_check_str (a->detected_type, v);
      fuzz_unpack_check_str (a->content_id, v);
      total += a->size;
    }
  if (total > PARSER_LIMIT_DECODED || m->n_parts > PARSER_LIMIT_PARTS)
    abort ();
  fuzz_unpack_check_str (m->report_message_id, v);
  fuzz_unpack_check_str (m->report_status, v);
  fuzz_unpack_check_str (m->report_recipient, v);
  fuzz_unpack_check_str (m->auto_reason, v);
  fuzz_unpack_check_strs (m->case_refs, PARSER_LIMIT_LIST, v);
  if (m->personal->len > PARSER_LIMIT_LIST)
    abort ();
  for (guint i = 0; i < m->personal->len; i++)
    {
      const parser_pd *pd = m->personal->pdata[i];
      if ((guint) pd->kind > PARSER_PD_CARD || pd->value == NULL)
        abort ();
      fuzz_unpack_check_str (pd->value, v);
    }
  if ((m->special & ~((PARSER_SPECIAL_CRIMINAL << 1) - 1)) != 0
      || (m->anomalies & ~((PARSER_ANOMALY_TRUNCATED_TEXT << 1) - 1)) != 0)
    abort ();
  fuzz_unpack_check_strs (m->notes, PARSER_LIMIT_NOTES, v);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* a copy of exactly @size bytes, so ASan sees a read past the end */
  GBytes *b = g_bytes_new (data, size);
  GError *error = NULL;
  parser_message *m = parser_message_unpack (b, &error);

  if (m == NULL)
    {
      if (!g_error_matches (error, PARSER_ERROR, PARSER_ERROR_MALFORMED))
        abort ();
      g_error_free (error);
    }
  else
    {
      GBytes *again;

      if (error != NULL)
        abort ();
      fuzz_unpack_check (m);
      again = parser_message_pack (m);
      if (!g_bytes_equal (again, b))
        {
          fprintf (stderr, "fuzz_unpack: accepted bytes that do not pack "
                   "back to themselves\n");
          abort ();
        }
      g_bytes_unref (again);
      parser_message_free (m);
    }
  g_bytes_unref (b);
  return 0;
}
