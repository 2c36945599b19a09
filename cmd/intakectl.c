/*
 * intakectl - intake's admin command line.  Wiring only.
 *
 *   intakectl [-c FILE] keygen [FILE]
 *   intakectl [-c FILE] cases list [--json]
 *   intakectl [-c FILE] cases show REF [--json]
 *   intakectl [-c FILE] spool count
 *   intakectl [-c FILE] parse FILE.eml [FILE...]
 *
 * Without -c it reads $INTAKE_CONFIG, else conf/intake.conf when run from
 * the project root, else /etc/intake/intake.conf.  Secrets are never taken
 * on the command line.  Exit codes follow sysexits.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "intake/intake_config.h"
#include "parser/parser.h"
#include "parser/parser_headers.h"
#include "parser/parser_text.h"
#include "store/store.h"

static const char *ctl_usage =
  "usage: intakectl [-c FILE] COMMAND\n"
  "\n"
  "commands:\n"
  "  keygen [FILE]            create a master key (mode 0600); never\n"
  "                           overwrites one\n"
  "  cases list [--json]      every case, newest first\n"
  "  cases show REF [--json]  one case and its messages\n"
  "  spool count              messages waiting to be processed\n"
  "  quarantine list [--json] messages the parser failed on, kept raw\n"
  "  quarantine show ID [--raw]  its envelope (or, --raw, its bytes)\n"
  "  quarantine retry ID      hand it to the parser again\n"
  "  parse FILE.eml [FILE...] each message as the parser sees it (JSON);\n"
  "                           needs no key and no database\n";

static const char *
ctl_default_config (void)
{
  const char *env = g_getenv ("INTAKE_CONFIG");

  if (env != NULL && *env)
    return env;
  if (g_file_test ("conf/intake.conf", G_FILE_TEST_EXISTS))
    return "conf/intake.conf";
  return "/etc/intake/intake.conf";
}

static char *
ctl_time (gint64 us)
{
  g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (us
                                                           / G_USEC_PER_SEC);
  return g_date_time_format (t, "%Y-%m-%dT%H:%M:%SZ");
}

/* Text from a message is printed cleaned: no control characters.  */
static char *
ctl_clean (const char *s)
{
  return parser_clean_text (s ? s : "", -1, 4096);
}

static int
ctl_keygen (intake_config *cfg, const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = NULL;

  if (path == NULL)
    path = cfg->master_key;
  dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      fprintf (stderr, "intakectl: %s: %s\n", dir, g_strerror (errno));
      return EX_CANTCREAT;
    }
  if (!store_keys_generate (path, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_KEYS_ERROR,
                              STORE_KEYS_ERROR_EXISTS) ? EX_CANTCREAT
                                                       : EX_IOERR;
    }
  printf ("created master key %s (mode 0600)\n", path);
  return EX_OK;
}

static void
ctl_json_case (JsonBuilder *b, store_case_view *v)
{
  g_autofree char *created = ctl_time (v->created_at);
  g_autofree char *updated = ctl_time (v->updated_at);

  json_builder_set_member_name (b, "ref");
  json_builder_add_string_value (b, v->ref);
  json_builder_set_member_name (b, "kind");
  json_builder_add_string_value (b, v->kind);
  json_builder_set_member_name (b, "queue");
  json_builder_add_string_value (b, v->queue);
  json_builder_set_member_name (b, "status");
  json_builder_add_string_value (b, v->status);
  json_builder_set_member_name (b, "priority");
  json_builder_add_string_value (b, v->priority);
  json_builder_set_member_name (b, "created");
  json_builder_add_string_value (b, created);
  json_builder_set_member_name (b, "updated");
  json_builder_add_string_value (b, updated);
  json_builder_set_member_name (b, "from");
  json_builder_add_string_value (b, v->from_addr ? v->from_addr : "");
  json_builder_set_member_name (b, "from_name");
  json_builder_add_string_value (b, v->from_name ? v->from_name : "");
  json_builder_set_member_name (b, "subject");
  json_builder_add_string_value (b, v->subject ? v->subject : "");
  json_builder_set_member_name (b, "message_id");
  json_builder_add_string_value (b, v->message_id ? v->message_id : "");
  json_builder_set_member_name (b, "messages");
  json_builder_add_int_value (b, v->n_messages);
}

static void
ctl_print_json (JsonBuilder *b)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *s = NULL;

  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  s = json_generator_to_data (gen, NULL);
  printf ("%s\n", s);
}

static int
ctl_cases_list (store *st, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) cases = store_case_list (st, &error);

  if (cases == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_array (b);
      for (guint i = 0; i < cases->len; i++)
        {
          json_builder_begin_object (b);
          ctl_json_case (b, cases->pdata[i]);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      ctl_print_json (b);
      return EX_OK;
    }
  if (cases->len == 0)
    {
      printf ("no cases\n");
      return EX_OK;
    }
  printf ("%-20s %-14s %-9s %-20s %-30s %s\n", "REF", "QUEUE", "STATUS",
          "RECEIVED", "FROM", "SUBJECT");
  for (guint i = 0; i < cases->len; i++)
    {
      store_case_view *v = cases->pdata[i];
      g_autofree char *when = ctl_time (v->created_at);
      g_autofree char *from = ctl_clean (v->from_addr);
      g_autofree char *subj = ctl_clean (v->subject);
      printf ("%-20s %-14s %-9s %-20s %-30s %s\n", v->ref, v->queue,
              v->status, when, from, subj);
    }
  return EX_OK;
}

static int
ctl_cases_show (store *st, const char *ref, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) msgs = NULL;
  store_case_view *v = store_case_get (st, ref, &msgs, &error);

  if (v == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT : EX_IOERR;
    }
  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      ctl_json_case (b, v);
      json_builder_set_member_name (b, "message_list");
      json_builder_begin_array (b);
      for (guint i = 0; i < msgs->len; i++)
        {
          store_message_view *m = msgs->pdata[i];
          g_autofree char *when = ctl_time (m->received_at);
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "direction");
          json_builder_add_string_value (b, m->direction);
          json_builder_set_member_name (b, "source");
          json_builder_add_string_value (b, m->source);
          json_builder_set_member_name (b, "received");
          json_builder_add_string_value (b, when);
          json_builder_set_member_name (b, "from");
          json_builder_add_string_value (b, m->from_addr ? m->from_addr : "");
          json_builder_set_member_name (b, "subject");
          json_builder_add_string_value (b, m->subject ? m->subject : "");
          json_builder_set_member_name (b, "message_id");
          json_builder_add_string_value (b, m->message_id ? m->message_id
                                                          : "");
          json_builder_set_member_name (b, "size");
          json_builder_add_int_value (b, (gint64) m->size);
          json_builder_set_member_name (b, "arrivals");
          json_builder_add_int_value (b, m->arrivals);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
      ctl_print_json (b);
    }
  else
    {
      g_autofree char *created = ctl_time (v->created_at);
      g_autofree char *from = ctl_clean (v->from_addr);
      g_autofree char *name = ctl_clean (v->from_name);
      g_autofree char *subj = ctl_clean (v->subject);

      printf ("Case:      %s\n", v->ref);
      printf ("Kind:      %s\n", v->kind);
      printf ("Queue:     %s\n", v->queue);
      printf ("Status:    %s\n", v->status);
      printf ("Priority:  %s\n", v->priority);
      printf ("Opened:    %s\n", created);
      printf ("From:      %s%s%s%s\n", name, *name ? " <" : "", from,
              *name ? ">" : "");
      printf ("Subject:   %s\n", subj);
      printf ("Messages:  %u\n", v->n_messages);
      for (guint i = 0; i < msgs->len; i++)
        {
          store_message_view *m = msgs->pdata[i];
          g_autofree char *when = ctl_time (m->received_at);
          g_autofree char *mfrom = ctl_clean (m->from_addr);
          g_autofree char *msubj = ctl_clean (m->subject);
          g_autofree char *mid = ctl_clean (m->message_id);
          printf ("\n  [%u] %s %s via %s, %zu bytes, arrived %u time%s\n",
                  i + 1, m->direction, when, m->source, m->size, m->arrivals,
                  m->arrivals == 1 ? "" : "s");
          printf ("      From: %s\n      Subject: %s\n      Message-ID: %s\n",
                  mfrom, msubj, mid);
        }
    }
  store_case_view_free (v);
  return EX_OK;
}

static gboolean
ctl_parse_id (const char *s, gint64 *id)
{
  guint64 v;

  if (s == NULL || !g_ascii_string_to_unsigned (s, 10, 1, G_MAXINT64, &v,
                                                NULL))
    return FALSE;
  *id = (gint64) v;
  return TRUE;
}

static int
ctl_quarantine (store *st, const char *sub, const char *arg, gboolean json,
                gboolean raw)
{
  g_autoptr (GError) error = NULL;
  gint64 id = 0;

  if (g_strcmp0 (sub, "list") == 0)
    {
      g_autoptr (GPtrArray) q = store_quarantine_list (st, &error);
      if (q == NULL)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          return EX_IOERR;
        }
      if (json)
        {
          g_autoptr (JsonBuilder) b = json_builder_new ();
          json_builder_begin_array (b);
          for (guint i = 0; i < q->len; i++)
            {
              store_quarantine_entry *e = q->pdata[i];
              g_autofree char *rcv = ctl_time (e->received_at);
              g_autofree char *qat = ctl_time (e->quarantined_at);
              json_builder_begin_object (b);
              json_builder_set_member_name (b, "id");
              json_builder_add_int_value (b, e->id);
              json_builder_set_member_name (b, "received");
              json_builder_add_string_value (b, rcv);
              json_builder_set_member_name (b, "quarantined");
              json_builder_add_string_value (b, qat);
              json_builder_set_member_name (b, "size");
              json_builder_add_int_value (b, (gint64) e->size);
              json_builder_set_member_name (b, "failures");
              json_builder_add_int_value (b, e->failures);
              json_builder_set_member_name (b, "reason");
              json_builder_add_string_value (b, e->last_error ? e->last_error
                                                              : "");
              json_builder_set_member_name (b, "source");
              json_builder_add_string_value (b, e->source ? e->source : "");
              json_builder_end_object (b);
            }
          json_builder_end_array (b);
          ctl_print_json (b);
          return EX_OK;
        }
      if (q->len == 0)
        {
          printf ("nothing in quarantine\n");
          return EX_OK;
        }
      printf ("%-8s %-20s %-20s %10s %8s %s\n", "ID", "RECEIVED",
              "QUARANTINED", "BYTES", "FAILURES", "REASON");
      for (guint i = 0; i < q->len; i++)
        {
          store_quarantine_entry *e = q->pdata[i];
          g_autofree char *rcv = ctl_time (e->received_at);
          g_autofree char *qat = ctl_time (e->quarantined_at);
          printf ("%-8" G_GINT64_FORMAT " %-20s %-20s %10zu %8u %s\n", e->id,
                  rcv, qat, e->size, e->failures,
                  e->last_error ? e->last_error : "");
        }
      return EX_OK;
    }
  if (!ctl_parse_id (arg, &id))
    {
      fprintf (stderr, "intakectl: quarantine %s: %s is not a message id\n",
               sub, arg ? arg : "");
      return EX_USAGE;
    }
  if (g_strcmp0 (sub, "retry") == 0)
    {
      if (!store_quarantine_retry (st, id, "admin", &error))
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                     ? EX_NOINPUT : EX_IOERR;
        }
      printf ("message %" G_GINT64_FORMAT " released to the parser\n", id);
      return EX_OK;
    }
  store_spool_item *item = store_quarantine_get (st, id, &error);
  if (item == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT : EX_IOERR;
    }
  if (raw)
    {
      gsize n;
      const char *p = g_bytes_get_data (item->raw, &n);
      fwrite (p, 1, n, stdout);
    }
  else
    {
      g_autofree char *when = ctl_time (item->env->received_at);
      g_autofree char *sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256,
                                                           item->raw);
      g_autofree char *from = ctl_clean (item->env->mail_from);
      g_autofree char *helo = ctl_clean (item->env->helo);
      printf ("Message:   %" G_GINT64_FORMAT "\n", id);
      printf ("Received:  %s via %s%s\n", when, item->env->source,
              item->env->tls ? " (TLS)" : "");
      printf ("HELO:      %s\n", helo);
      printf ("MAIL FROM: <%s>\n", from);
      for (guint i = 0; i < item->env->rcpts->len; i++)
        {
          g_autofree char *r = ctl_clean (item->env->rcpts->pdata[i]);
          printf ("RCPT TO:   <%s>\n", r);
        }
      printf ("Size:      %zu bytes\nSHA-256:   %s\n",
              g_bytes_get_size (item->raw), sha);
      printf ("(the bytes: intakectl quarantine show %" G_GINT64_FORMAT
              " --raw)\n", id);
    }
  store_spool_item_free (item);
  return EX_OK;
}

/* The lexicon named by [parser] special_categories in @config, relative to
 * the file's directory; *@lex stays NULL when there is no such key.  */
static gboolean
ctl_parse_lexicon (const char *config, parser_lexicon **lex, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree char *path = NULL;
  g_autofree char *dir = NULL;

  *lex = NULL;
  if (!g_key_file_load_from_file (kf, config, G_KEY_FILE_NONE, error))
    return FALSE;
  path = g_key_file_get_string (kf, "parser", "special_categories", NULL);
  if (path == NULL || *g_strstrip (path) == '\0')
    return TRUE;
  if (!g_path_is_absolute (path))
    {
      char *abs;
      dir = g_path_get_dirname (config);
      abs = g_build_filename (dir, path, NULL);
      g_free (path);
      path = abs;
    }
  *lex = parser_lexicon_load (path, error);
  return *lex != NULL;
}

/* intakectl parse: each file through parser_message_parse() and out as
 * JSON, one document per file.  No key, no database; the configuration is
 * read only for the special-category lexicon, and only if there is one
 * (an explicit -c must exist).  */
static int
ctl_parse (const char *config, gboolean explicit_config, GPtrArray *args)
{
  g_autoptr (GError) error = NULL;
  parser_lexicon *lex = NULL;
  parser_context ctx = { NULL, NULL, NULL };
  int rc = EX_OK;

  if (explicit_config || g_file_test (config, G_FILE_TEST_EXISTS))
    {
      if (!ctl_parse_lexicon (config, &lex, &error))
        {
          fprintf (stderr, "intakectl: %s: %s\n", config, error->message);
          return EX_CONFIG;
        }
    }
  ctx.lexicon = lex;
  for (guint i = 1; i < args->len; i++)
    {
      const char *file = args->pdata[i];
      g_autoptr (GError) ferr = NULL;
      g_autoptr (parser_message) m = NULL;
      g_autoptr (GBytes) raw = NULL;
      g_autofree char *json = NULL;
      char *data = NULL;
      gsize len = 0;
      int saved;

      if (!g_file_get_contents (file, &data, &len, &ferr))
        {
          fprintf (stderr, "intakectl: %s\n", ferr->message);
          rc = EX_NOINPUT;
          continue;
        }
      raw = g_bytes_new_take (data, len);
      /* libytnef prints its complaints about a broken winmail.dat on
       * stdout: while parsing, stdout is stderr, so the JSON stays
       * JSON.  */
      fflush (stdout);
      saved = dup (STDOUT_FILENO);
      if (saved >= 0)
        dup2 (STDERR_FILENO, STDOUT_FILENO);
      m = parser_message_parse (raw, &ctx);
      fflush (stdout);
      if (saved >= 0)
        {
          dup2 (saved, STDOUT_FILENO);
          close (saved);
        }
      json = parser_message_to_json (m);
      printf ("%s\n", json);
    }
  parser_lexicon_free (lex);
  return rc;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (intake_config) cfg = NULL;
  const char *config = NULL;
  store_keys *keys = NULL;
  store *st = NULL;
  gboolean json = FALSE;
  gboolean raw = FALSE;
  GPtrArray *args = g_ptr_array_new ();
  int rc = EX_USAGE;

  for (int i = 1; i < argc; i++)
    {
      if ((strcmp (argv[i], "-c") == 0 || strcmp (argv[i], "--config") == 0)
          && i + 1 < argc)
        config = argv[++i];
      else if (strcmp (argv[i], "--json") == 0)
        json = TRUE;
      else if (strcmp (argv[i], "--raw") == 0)
        raw = TRUE;
      else if (strcmp (argv[i], "-h") == 0 || strcmp (argv[i], "--help") == 0)
        {
          fputs (ctl_usage, stdout);
          g_ptr_array_free (args, TRUE);
          return EX_OK;
        }
      else if (argv[i][0] == '-')
        {
          fprintf (stderr, "intakectl: unknown option %s\n%s", argv[i],
                   ctl_usage);
          g_ptr_array_free (args, TRUE);
          return EX_USAGE;
        }
      else
        g_ptr_array_add (args, argv[i]);
    }
  if (args->len == 0)
    {
      fputs (ctl_usage, stderr);
      g_ptr_array_free (args, TRUE);
      return EX_USAGE;
    }
  /* parse needs no key and no database: before anything is loaded.  */
  if (strcmp (args->pdata[0], "parse") == 0)
    {
      gboolean explicit_config = config != NULL;
      if (args->len < 2)
        {
          fprintf (stderr, "intakectl: parse needs a file\n%s", ctl_usage);
          rc = EX_USAGE;
        }
      else
        rc = ctl_parse (config ? config : ctl_default_config (),
                        explicit_config, args);
      g_ptr_array_free (args, TRUE);
      return rc;
    }
  if (config == NULL)
    config = ctl_default_config ();
  cfg = intake_config_load (config, &error);
  if (cfg == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      g_ptr_array_free (args, TRUE);
      return EX_CONFIG;
    }

  const char *cmd = args->pdata[0];
  const char *sub = args->len > 1 ? args->pdata[1] : NULL;
  gboolean known =
      (strcmp (cmd, "keygen") == 0 && args->len <= 2)
      || (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "list") == 0
          && args->len == 2)
      || (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "show") == 0
          && args->len == 3)
      || (strcmp (cmd, "spool") == 0 && g_strcmp0 (sub, "count") == 0
          && args->len == 2)
      || (strcmp (cmd, "quarantine") == 0 && g_strcmp0 (sub, "list") == 0
          && args->len == 2)
      || (strcmp (cmd, "quarantine") == 0
          && (g_strcmp0 (sub, "show") == 0 || g_strcmp0 (sub, "retry") == 0)
          && args->len == 3)
      || (strcmp (cmd, "parse") == 0 && args->len >= 2);

  if (!known)
    {
      fprintf (stderr, "intakectl: unknown command or wrong arguments\n%s",
               ctl_usage);
      rc = EX_USAGE;
      goto out;
    }

  if (strcmp (cmd, "keygen") == 0 && args->len <= 2)
    {
      rc = ctl_keygen (cfg, sub);
      goto out;
    }

  keys = store_keys_load (cfg->master_key, &error);
  if (keys == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      rc = EX_CONFIG;
      goto out;
    }
  st = store_open (cfg->database, keys, 0, &error);
  if (st == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      rc = EX_UNAVAILABLE;
      goto out;
    }
  if (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "list") == 0
      && args->len == 2)
    rc = ctl_cases_list (st, json);
  else if (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "show") == 0
           && args->len == 3)
    rc = ctl_cases_show (st, args->pdata[2], json);
  else if (strcmp (cmd, "spool") == 0 && g_strcmp0 (sub, "count") == 0
           && args->len == 2)
    {
      gint64 n = store_spool_count (st, &error);
      if (n < 0)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          rc = EX_IOERR;
        }
      else
        {
          printf ("%" G_GINT64_FORMAT "\n", n);
          rc = EX_OK;
        }
    }
  else if (strcmp (cmd, "quarantine") == 0)
    rc = ctl_quarantine (st, sub, args->len > 2 ? args->pdata[2] : NULL, json,
                         raw);
  else
    {
      fprintf (stderr, "intakectl: unknown command\n%s", ctl_usage);
      rc = EX_USAGE;
    }

out:
  store_close (&st);
  store_keys_free (&keys);
  g_ptr_array_free (args, TRUE);
  return rc;
}
