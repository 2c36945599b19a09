/*
 * fuzz_forms.c - libFuzzer target for the citizen web forms
 * (intake/forms.c): what anyone can post to /forms/NAME.
 *
 * The first input byte picks one of the shipped forms (conf/forms/, or
 * $FUZZ_FORMS_DIR); the rest, split at 0x01 bytes, gives the values of
 * its fields in order (a file field takes its part as the file's name, up
 * to a 0x02, and content), each value trimmed as the HTTP server trims
 * it.  The submission goes through form_validate(),
 * form_render() with its problems, and, when it is valid,
 * form_build_message(), whose bytes GMime must parse back.  Checked:
 *   - the page never holds a piece of a value that starts at a '<' and
 *     is not in the same page rendered with every value "x" (raw markup
 *     from the citizen would be cross-site scripting on the council's
 *     site), and it is valid UTF-8;
 *   - the built message has the header fields of a message built from
 *     plain values, each once, and nothing else at the top (a line break
 *     in a value must never make a header: Bcc, a second To);
 *   - everything is freed (LeakSanitizer).
 *
 * Built by `make fuzz-forms` (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <gmime/gmime.h>

#include "intake/forms.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static forms *fuzz_forms;
static const form_def *fuzz_defs[8];
static GHashTable *fuzz_plain_headers[8];   /* name (lower) -> count */
static guint fuzz_n_defs;

static GHashTable *
fuzz_forms_header_counts (GBytes *msg)
{
  GHashTable *counts = g_hash_table_new_full (g_str_hash, g_str_equal,
                                              g_free, NULL);
  GMimeStream *st = g_mime_stream_mem_new_with_buffer (
      g_bytes_get_data (msg, NULL), g_bytes_get_size (msg));
  GMimeParser *p = g_mime_parser_new_with_stream (st);
  GMimeMessage *m = g_mime_parser_construct_message (p, NULL);
  GMimeHeaderList *hl;

  if (m == NULL)
    abort ();   /* our own MIME must parse */
  hl = g_mime_object_get_header_list (GMIME_OBJECT (m));
  for (int i = 0; i < g_mime_header_list_get_count (hl); i++)
    {
      GMimeHeader *h = g_mime_header_list_get_header_at (hl, i);
      char *name = g_ascii_strdown (g_mime_header_get_name (h), -1);
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (counts, name));

      g_hash_table_replace (counts, name, GUINT_TO_POINTER (n + 1));
    }
  g_object_unref (m);
  g_object_unref (p);
  g_object_unref (st);
  return counts;
}

static form_input *
fuzz_forms_plain_input (const form_def *def)
{
  form_input *in = form_input_new ();

  for (guint i = 0; i < def->fields->len; i++)
    {
      const form_field *f = def->fields->pdata[i];
      const char *v;

      switch (f->type)
        {
        case FORM_EMAIL: v = "jo@example.org"; break;
        case FORM_UK_PHONE: v = "01632 960001"; break;
        case FORM_UK_POSTCODE: v = "SW1A 1AA"; break;
        case FORM_DATE: v = "2026-11-27"; break;
        case FORM_CHOICE: v = f->choices && f->choices[0] ? f->choices[0]
                                                          : "x"; break;
        case FORM_FILE: continue;
        default: v = "plain words"; break;
        }
      g_hash_table_insert (in->values, g_strdup (f->name), g_strdup (v));
    }
  return in;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  GError *error = NULL;
  const char *dir = getenv ("FUZZ_FORMS_DIR");
  static const char *const ids[] = { "contact", "complaint", "foi" };

  (void) argc;
  (void) argv;
  g_mime_init ();
  fuzz_forms = forms_load (dir && *dir ? dir : "conf/forms", &error);
  if (fuzz_forms == NULL)
    {
      fprintf (stderr, "fuzz_forms: %s (run from the repository root)\n",
               error->message);
      exit (1);
    }
  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    {
      const form_def *def = forms_get (fuzz_forms, ids[i]);
      form_input *in;
      g_autoptr (GPtrArray) problems = NULL;
      GBytes *msg;

      if (def == NULL)
        continue;
      fuzz_defs[fuzz_n_defs] = def;
      in = fuzz_forms_plain_input (def);
      problems = form_validate (def, in);
      if (problems->len != 0)
        {
          fprintf (stderr, "fuzz_forms: plain values refused by %s: %s\n",
                   ids[i], ((form_problem *) problems->pdata[0])->field);
          exit (1);
        }
      msg = form_build_message (def, in, "intake.example", "Fuzz/1.0");
      fuzz_plain_headers[fuzz_n_defs] = fuzz_forms_header_counts (msg);
      g_bytes_unref (msg);
      form_input_free (in);
      fuzz_n_defs++;
    }
  if (fuzz_n_defs == 0)
    {
      fprintf (stderr, "fuzz_forms: no contact, complaint or foi form\n");
      exit (1);
    }
  return 0;
}

/* No piece of @v from a '<' (at least 4 bytes of it) is in @page unless
 * @ours (the same page with plain values) has it too.  */
static void
fuzz_forms_check_markup (const char *page, const char *ours, const char *v)
{
  for (const char *lt = strchr (v, '<'); lt; lt = strchr (lt + 1, '<'))
    {
      gsize n = strlen (lt);
      g_autofree char *piece = g_strndup (lt, MIN (n, 24));

      if (strlen (piece) < 4 || strstr (ours, piece) != NULL)
        continue;
      if (strstr (page, piece) != NULL)
        {
          fprintf (stderr, "fuzz_forms: raw markup in the page: %s\n", piece);
          abort ();
        }
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const form_def *def;
  guint k;
  form_input *in;
  g_autoptr (GPtrArray) problems = NULL;
  g_autofree char *page = NULL;
  g_autofree char *text = NULL;
  char **parts;

  if (size < 1)
    return 0;
  k = data[0] % fuzz_n_defs;
  def = fuzz_defs[k];
  text = g_strndup ((const char *) data + 1, size - 1);   /* NUL ends it */
  parts = g_strsplit (text, "\x01", -1);
  in = form_input_new ();
  for (guint i = 0, j = 0; i < def->fields->len && parts[j]; i++, j++)
    {
      const form_field *f = def->fields->pdata[i];

      if (f->type == FORM_FILE)
        {
          form_file *ff = g_new0 (form_file, 1);
          char *sep = strchr (parts[j], '\x02');

          ff->filename = sep ? g_strndup (parts[j], sep - parts[j])
                             : g_strdup ("file.bin");
          ff->content_type = g_strdup ("application/octet-stream");
          ff->data = g_bytes_new (sep ? sep + 1 : parts[j],
                                  strlen (sep ? sep + 1 : parts[j]));
          g_hash_table_insert (in->files, g_strdup (f->name), ff);
        }
      else
        /* trimmed as the HTTP server does before anything else
         * (http_server.c: what is validated is what is kept) */
        g_hash_table_insert (in->values, g_strdup (f->name),
                             g_strstrip (g_strdup (parts[j])));
    }
  problems = form_validate (def, in);
  page = form_render (def, in, problems, "t.k");
  if (page == NULL || !g_utf8_validate (page, -1, NULL))
    abort ();
  {
    /* the same page with every value "x": the markup that is ours */
    form_input *x = form_input_new ();
    GHashTableIter it;
    gpointer name;
    g_autofree char *ours = NULL;

    g_hash_table_iter_init (&it, in->values);
    while (g_hash_table_iter_next (&it, &name, NULL))
      g_hash_table_insert (x->values, g_strdup (name), g_strdup ("x"));
    ours = form_render (def, x, problems, "t.k");
    for (guint j = 0; parts[j]; j++)
      fuzz_forms_check_markup (page, ours, parts[j]);
    form_input_free (x);
  }
  if (problems->len == 0)
    {
      GBytes *msg = form_build_message (def, in, "intake.example",
                                        "Fuzz/1.0\r\nBcc: x@example.org");
      GHashTable *counts = fuzz_forms_header_counts (msg);
      GHashTableIter it;
      gpointer name, n;

      g_hash_table_iter_init (&it, counts);
      while (g_hash_table_iter_next (&it, &name, &n))
        if (GPOINTER_TO_UINT (n) != 1
            || !g_hash_table_contains (fuzz_plain_headers[k], name))
          {
            fprintf (stderr, "fuzz_forms: header %s x%u\n",
                     (const char *) name, GPOINTER_TO_UINT (n));
            abort ();
          }
      g_hash_table_unref (counts);
      g_bytes_unref (msg);
    }
  form_input_free (in);
  g_strfreev (parts);
  return 0;
}
