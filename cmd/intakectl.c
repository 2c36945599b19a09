/*
 * intakectl - intake's admin command line.  Wiring only.
 *
 *   intakectl [-c FILE] keygen [FILE]
 *   intakectl [-c FILE] cases list [--json]
 *   intakectl [-c FILE] cases show REF [--json]
 *   intakectl [-c FILE] spool count
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
#include "parser/parser_headers.h"
#include "store/store.h"

static const char *ctl_usage =
  "usage: intakectl [-c FILE] COMMAND\n"
  "\n"
  "commands:\n"
  "  keygen [FILE]            create a master key (mode 0600); never\n"
  "                           overwrites one\n"
  "  cases list [--json]      every case, newest first\n"
  "  cases show REF [--json]  one case and its messages\n"
  "  spool count              messages waiting to be processed\n";

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

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (intake_config) cfg = NULL;
  const char *config = NULL;
  store_keys *keys = NULL;
  store *st = NULL;
  gboolean json = FALSE;
  GPtrArray *args = g_ptr_array_new ();
  int rc = EX_USAGE;

  for (int i = 1; i < argc; i++)
    {
      if ((strcmp (argv[i], "-c") == 0 || strcmp (argv[i], "--config") == 0)
          && i + 1 < argc)
        config = argv[++i];
      else if (strcmp (argv[i], "--json") == 0)
        json = TRUE;
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
          && args->len == 2);

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
