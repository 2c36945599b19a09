/*
 * fuzz_parser.c - libFuzzer target for the MIME parser (parser/).
 *
 * One input is one raw message.  It goes through parser_message_parse()
 * (with the special-category lexicon and an envelope, so every text
 * function runs), parser_message_to_json(), parser_message_pack() and
 * parser_message_unpack() of the packed bytes; the unpacked message must
 * serialise to the same JSON as the original (the pack is the trip from a
 * parse worker to the master, so a difference is a lost field).  The
 * packed bytes are then damaged (one byte flipped, then cut short) and
 * unpacked again: parser_message_unpack() treats its input as untrusted,
 * so it may refuse, but never crash or leak.
 *
 * Owns: everything it allocates, freed before returning (LeakSanitizer
 * checks).  GLib criticals and warnings are bugs here (a g_return_if_fail
 * in GMime or GLib means the parser misused an API), so they abort unless
 * FUZZ_PARSER_CRITICALS_OK is set in the environment, or the first one of
 * an input contains a substring listed ('|'-separated) in
 * FUZZ_PARSER_KNOWN_CRITICALS (a known bug: the run goes on, and the
 * criticals that follow from it in the same input are ignored too).  libytnef prints on
 * stdout; stdout is sent to /dev/null so libFuzzer's own output (stderr)
 * stays readable.
 *
 * Built by `make fuzz` (clang -fsanitize=fuzzer,address,undefined); the
 * lexicon is read from $FUZZ_PARSER_LEXICON, else
 * conf/special-categories.txt relative to the working directory, else
 * none.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "parser/parser.h"
#include "parser/parser_text.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static parser_lexicon *fuzz_parser_lexicon;
/* Set when the current input raised a known critical: the criticals that
 * follow from it (GMime handed a NULL stream, ...) are then not reported
 * again for this input.  */
static gboolean fuzz_parser_tolerate;

/* TRUE when @msg contains one of the '|'-separated substrings of
 * $FUZZ_PARSER_KNOWN_CRITICALS (known bugs, so a long run goes on looking
 * for new ones).  */
static gboolean
fuzz_parser_known (const char *msg)
{
  const char *known = getenv ("FUZZ_PARSER_KNOWN_CRITICALS");
  gboolean found = FALSE;
  char **v;

  if (known == NULL || *known == '\0' || msg == NULL)
    return FALSE;
  v = g_strsplit (known, "|", -1);
  for (guint i = 0; v[i] && !found; i++)
    found = *v[i] && strstr (msg, v[i]) != NULL;
  g_strfreev (v);
  return found;
}

static GLogWriterOutput
fuzz_parser_log_writer (GLogLevelFlags level, const GLogField *fields,
                        gsize n_fields, gpointer user_data)
{
  const char *msg = NULL;

  if (!(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL
                 | G_LOG_LEVEL_WARNING))
      || getenv ("FUZZ_PARSER_CRITICALS_OK") != NULL)
    return G_LOG_WRITER_HANDLED;
  for (gsize i = 0; i < n_fields; i++)
    if (strcmp (fields[i].key, "MESSAGE") == 0 && fields[i].length < 0)
      msg = fields[i].value;
  if (!fuzz_parser_tolerate && fuzz_parser_known (msg))
    fuzz_parser_tolerate = TRUE;
  if (fuzz_parser_tolerate)
    return G_LOG_WRITER_HANDLED;
  g_log_writer_standard_streams (level, fields, n_fields, user_data);
  fprintf (stderr, "fuzz_parser: GLib warning/critical: aborting\n");
  abort ();
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *path = getenv ("FUZZ_PARSER_LEXICON");
  GError *error = NULL;
  int devnull;

  (void) argc;
  (void) argv;
  g_log_set_writer_func (fuzz_parser_log_writer, NULL, NULL);
  if (path == NULL)
    path = "conf/special-categories.txt";
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    {
      fuzz_parser_lexicon = parser_lexicon_load (path, &error);
      if (fuzz_parser_lexicon == NULL)
        {
          fprintf (stderr, "fuzz_parser: %s\n", error->message);
          g_error_free (error);
          exit (1);
        }
    }
  devnull = open ("/dev/null", O_WRONLY);
  if (devnull >= 0)
    {
      fflush (stdout);
      dup2 (devnull, STDOUT_FILENO);
      close (devnull);
    }
  return 0;
}

/* Unpack @bytes (which may be refused) and free whatever comes back.  */
static void
fuzz_parser_unpack_any (GBytes *bytes)
{
  GError *error = NULL;
  parser_message *m = parser_message_unpack (bytes, &error);

  if (m != NULL)
    {
      char *json = parser_message_to_json (m);
      g_free (json);
      parser_message_free (m);
    }
  g_clear_error (&error);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const rcpts[] = {
    "enquiries+ESC-2024-000123-K@council.example", "foi@council.example",
    NULL
  };
  parser_context ctx = { "citizen@example.org", rcpts, fuzz_parser_lexicon };
  GBytes *raw = g_bytes_new (data, size);
  parser_message *m;
  parser_message *back;
  GError *error = NULL;
  GBytes *packed;
  char *json;
  char *json_back;
  gsize plen = 0;
  const guint8 *p;

  fuzz_parser_tolerate = FALSE;
  m = parser_message_parse (raw, &ctx);
  if (m == NULL)
    {
      fprintf (stderr, "fuzz_parser: parser_message_parse returned NULL\n");
      abort ();
    }
  json = parser_message_to_json (m);
  packed = parser_message_pack (m);
  back = parser_message_unpack (packed, &error);
  if (back == NULL)
    {
      fprintf (stderr, "fuzz_parser: unpack refused our own pack: %s\n",
               error ? error->message : "(no error)");
      abort ();
    }
  json_back = parser_message_to_json (back);
  if (strcmp (json, json_back) != 0)
    {
      fprintf (stderr, "fuzz_parser: pack/unpack round trip changed the "
               "message\n--- parsed\n%s\n--- unpacked\n%s\n", json,
               json_back);
      abort ();
    }

  /* Damaged packs: one byte flipped (position and bits from the input, so
   * a reproducer reproduces), then the pack cut short.  */
  p = g_bytes_get_data (packed, &plen);
  if (plen > 0)
    {
      guint8 *copy = g_memdup2 (p, plen);
      guint32 h = 2166136261u;
      GBytes *bad;

      for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
      copy[h % plen] ^= (guint8) (1u << (h >> 29)) | 0x01;
      bad = g_bytes_new_take (copy, plen);
      fuzz_parser_unpack_any (bad);
      g_bytes_unref (bad);

      bad = g_bytes_new_from_bytes (packed, 0, (h >> 8) % plen);
      fuzz_parser_unpack_any (bad);
      g_bytes_unref (bad);
    }

  g_free (json);
  g_free (json_back);
  parser_message_free (back);
  g_bytes_unref (packed);
  parser_message_free (m);
  g_bytes_unref (raw);
  return 0;
}
