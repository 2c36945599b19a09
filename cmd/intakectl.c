/*
 * intakectl - intake's admin command line.  Wiring only.
 *
 *   intakectl [-c FILE] keygen [FILE]
 *   intakectl [-c FILE] keys rotate
 *   intakectl [-c FILE] cases list [--queue Q] [--status S] [--kind K]
 *                                   [--limit N] [--json]
 *   intakectl [-c FILE] cases show REF [--json]
 *   intakectl [-c FILE] cases status REF STATUS
 *   intakectl [-c FILE] subjects find ADDRESS [--json]
 *   intakectl [-c FILE] audit verify
 *   intakectl [-c FILE] spool count
 *   intakectl [-c FILE] quarantine list|show ID|retry ID
 *   intakectl [-c FILE] parse FILE.eml [FILE...]
 *
 * Every command that shows personal data (cases, subjects, quarantine
 * show) is an audit event: who ran it, what, how many; never the data.
 *
 * Without -c it reads $INTAKE_CONFIG, else conf/intake.conf when run from
 * the project root, else /etc/intake/intake.conf.  Secrets are never taken
 * on the command line.  Exit codes follow sysexits.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
  "  keys rotate              add a master key version and re-wrap every\n"
  "                           data key with it (resumable; run it again\n"
  "                           after an interruption)\n"
  "  cases list [--queue Q] [--status S] [--kind K] [--limit N] [--json]\n"
  "                           cases, newest first\n"
  "  cases show REF [--json]  one case: messages, text, attachments,\n"
  "                           participants, links\n"
  "  cases status REF STATUS  new, assigned, waiting, resolved, closed\n"
  "  subjects find ADDRESS [--json]  the person with that e-mail address\n"
  "  audit verify             check the audit chain; names the first\n"
  "                           event that does not verify\n"
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

/* Who is asking: the audit names the Unix user behind every command.  */
static char *
ctl_actor (void)
{
  return g_strconcat ("cli:", g_get_user_name (), NULL);
}

/* Audit a read of personal data; a read that cannot be audited is not
 * shown.  */
static gboolean
ctl_audit (store *st, const char *action, const char *object,
           const char *detail)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();

  if (store_audit_record (st, actor, action, object, detail, "ok", &error))
    return TRUE;
  fprintf (stderr, "intakectl: cannot record the audit event, nothing"
           " shown: %s\n", error->message);
  return FALSE;
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
  json_builder_set_member_name (b, "due");
  if (v->due_at > 0)
    {
      g_autofree char *due = ctl_time (v->due_at);
      json_builder_add_string_value (b, due);
    }
  else
    json_builder_add_null_value (b);
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
ctl_cases_list (store *st, const store_case_filter *f, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) cases = store_case_find (st, f, &error);
  g_autofree char *detail = NULL;

  if (cases == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  detail = g_strdup_printf ("cases=%u queue=%s status=%s kind=%s", cases->len,
                            f->queue ? f->queue : "*",
                            f->status ? f->status : "*",
                            f->kind ? f->kind : "*");
  if (cases->len > 0 && !ctl_audit (st, "cases.list", "cases", detail))
    return EX_IOERR;
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

static const char *
ctl_nz (const char *s)
{
  return s ? s : "";
}

static void
ctl_json_str (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, ctl_nz (value));
}

static int
ctl_cases_show (store *st, const char *ref, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) msgs = NULL;
  g_autoptr (GPtrArray) links = NULL;
  g_autoptr (GPtrArray) people = NULL;
  g_autoptr (GPtrArray) atts = NULL;
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *detail = NULL;
  store_case_view *v = store_case_get (st, ref, &msgs, &error);

  if (v == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT : EX_IOERR;
    }
  if (!store_case_details (st, v->id, &links, &people, &atts, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      store_case_view_free (v);
      return EX_IOERR;
    }
  for (guint i = 0; i < msgs->len; i++)
    {
      store_message_view *m = msgs->pdata[i];
      g_autoptr (GError) terr = NULL;
      char *text = store_message_text (st, m->id, &terr);
      if (text == NULL)
        text = g_strdup ("");
      g_ptr_array_add (texts, text);
    }
  detail = g_strdup_printf ("messages=%u attachments=%u", msgs->len,
                            atts->len);
  if (!ctl_audit (st, "case.read", ref, detail))
    {
      store_case_view_free (v);
      return EX_IOERR;
    }
  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      ctl_json_case (b, v);
      json_builder_set_member_name (b, "participants");
      json_builder_begin_array (b);
      for (guint i = 0; i < people->len; i++)
        {
          store_participant_view *p = people->pdata[i];
          json_builder_begin_object (b);
          ctl_json_str (b, "role", p->role);
          ctl_json_str (b, "address", p->addr);
          ctl_json_str (b, "name", p->name);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "links");
      json_builder_begin_array (b);
      for (guint i = 0; i < links->len; i++)
        {
          store_case_link *l = links->pdata[i];
          json_builder_begin_object (b);
          ctl_json_str (b, "ref", l->ref);
          ctl_json_str (b, "reason", l->reason);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_set_member_name (b, "message_list");
      json_builder_begin_array (b);
      for (guint i = 0; i < msgs->len; i++)
        {
          store_message_view *m = msgs->pdata[i];
          g_autofree char *when = ctl_time (m->received_at);
          json_builder_begin_object (b);
          ctl_json_str (b, "direction", m->direction);
          ctl_json_str (b, "source", m->source);
          ctl_json_str (b, "received", when);
          ctl_json_str (b, "from", m->from_addr);
          ctl_json_str (b, "subject", m->subject);
          ctl_json_str (b, "message_id", m->message_id);
          ctl_json_str (b, "thread", m->thread_by);
          ctl_json_str (b, "text", texts->pdata[i]);
          json_builder_set_member_name (b, "size");
          json_builder_add_int_value (b, (gint64) m->size);
          json_builder_set_member_name (b, "arrivals");
          json_builder_add_int_value (b, m->arrivals);
          json_builder_set_member_name (b, "auto_reply");
          json_builder_add_boolean_value (b, m->auto_reply);
          json_builder_set_member_name (b, "attachments");
          json_builder_begin_array (b);
          for (guint j = 0; j < atts->len; j++)
            {
              store_attachment_view *a = atts->pdata[j];
              if (a->message_id != m->id)
                continue;
              json_builder_begin_object (b);
              ctl_json_str (b, "name", a->name);
              ctl_json_str (b, "declared_type", a->declared_type);
              ctl_json_str (b, "detected_type", a->detected_type);
              ctl_json_str (b, "sha256", a->sha256);
              json_builder_set_member_name (b, "size");
              json_builder_add_int_value (b, (gint64) a->size);
              json_builder_set_member_name (b, "flags");
              json_builder_add_int_value (b, a->flags);
              json_builder_end_object (b);
            }
          json_builder_end_array (b);
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
      g_autofree char *due = v->due_at > 0 ? ctl_time (v->due_at)
                                           : g_strdup ("-");

      printf ("Case:      %s\n", v->ref);
      printf ("Kind:      %s\n", v->kind);
      printf ("Queue:     %s\n", v->queue);
      printf ("Status:    %s\n", v->status);
      printf ("Priority:  %s\n", v->priority);
      printf ("Opened:    %s\n", created);
      printf ("Due:       %s\n", due);
      printf ("From:      %s%s%s%s\n", name, *name ? " <" : "", from,
              *name ? ">" : "");
      printf ("Subject:   %s\n", subj);
      for (guint i = 0; i < people->len; i++)
        {
          store_participant_view *p = people->pdata[i];
          g_autofree char *pa = ctl_clean (p->addr);
          printf ("Person:    %s (%s)\n", pa, p->role);
        }
      for (guint i = 0; i < links->len; i++)
        {
          store_case_link *l = links->pdata[i];
          printf ("Linked:    %s (%s)\n", l->ref, l->reason);
        }
      printf ("Messages:  %u\n", v->n_messages);
      for (guint i = 0; i < msgs->len; i++)
        {
          store_message_view *m = msgs->pdata[i];
          g_autofree char *when = ctl_time (m->received_at);
          g_autofree char *mfrom = ctl_clean (m->from_addr);
          g_autofree char *msubj = ctl_clean (m->subject);
          g_autofree char *mid = ctl_clean (m->message_id);
          g_autofree char *text = parser_clean_text (texts->pdata[i], -1,
                                                     64 * 1024);
          printf ("\n  [%u] %s %s via %s, %zu bytes, arrived %u time%s,"
                  " thread: %s%s\n", i + 1, m->direction, when, m->source,
                  m->size, m->arrivals, m->arrivals == 1 ? "" : "s",
                  m->thread_by, m->auto_reply ? ", auto-reply" : "");
          printf ("      From: %s\n      Subject: %s\n      Message-ID: %s\n",
                  mfrom, msubj, mid);
          for (guint j = 0; j < atts->len; j++)
            {
              store_attachment_view *a = atts->pdata[j];
              g_autofree char *an = NULL;
              if (a->message_id != m->id)
                continue;
              an = ctl_clean (a->name);
              printf ("      Attachment: %s (%s, %zu bytes)\n", an,
                      ctl_nz (a->detected_type), a->size);
            }
          if (*text)
            printf ("\n%s\n", text);
        }
    }
  store_case_view_free (v);
  return EX_OK;
}

static int
ctl_cases_status (store *st, const char *ref, const char *to)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();

  if (!store_case_set_status (st, ref, to, actor, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      if (g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND))
        return EX_NOINPUT;
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_STATE)
                 ? EX_DATAERR : EX_IOERR;
    }
  printf ("%s is now %s\n", ref, to);
  return EX_OK;
}

static int
ctl_subjects_find (store *st, const char *addr, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *detail = NULL;
  g_autofree char *object = NULL;
  store_subject_view *v = store_subject_find (st, addr, &error);

  if (v == NULL)
    {
      /* a search is a processing of personal data even when it finds no
       * one: audited, without the address */
      ctl_audit (st, "subject.find", "subject", "found=0");
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT : EX_IOERR;
    }
  object = g_strdup_printf ("subject:%" G_GINT64_FORMAT, v->id);
  detail = g_strdup_printf ("found=1 cases=%u", v->case_refs->len);
  if (!ctl_audit (st, "subject.find", object, detail))
    {
      store_subject_view_free (v);
      return EX_IOERR;
    }
  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      g_autofree char *created = ctl_time (v->created_at);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "id");
      json_builder_add_int_value (b, v->id);
      ctl_json_str (b, "address", v->addr);
      ctl_json_str (b, "name", v->name);
      ctl_json_str (b, "created", created);
      json_builder_set_member_name (b, "cases");
      json_builder_begin_array (b);
      for (guint i = 0; i < v->case_refs->len; i++)
        json_builder_add_string_value (b, v->case_refs->pdata[i]);
      json_builder_end_array (b);
      json_builder_end_object (b);
      ctl_print_json (b);
    }
  else
    {
      g_autofree char *a = ctl_clean (v->addr);
      g_autofree char *n = ctl_clean (v->name);
      g_autofree char *created = ctl_time (v->created_at);
      printf ("Subject:   %" G_GINT64_FORMAT "\n", v->id);
      printf ("Address:   %s\n", a);
      printf ("Name:      %s\n", n);
      printf ("Since:     %s\n", created);
      printf ("Cases:    ");
      for (guint i = 0; i < v->case_refs->len; i++)
        printf (" %s", (const char *) v->case_refs->pdata[i]);
      printf ("%s\n", v->case_refs->len ? "" : " none");
    }
  store_subject_view_free (v);
  return EX_OK;
}

static int
ctl_audit_verify (store *st)
{
  g_autoptr (GError) error = NULL;
  store_audit_report r;

  if (!store_audit_verify (st, &r, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  if (r.first_bad != 0)
    {
      printf ("audit chain BROKEN at event %" G_GINT64_FORMAT ": %s\n",
              r.first_bad, r.reason);
      store_audit_report_clear (&r);
      return EX_DATAERR;
    }
  printf ("audit chain verified: %" G_GINT64_FORMAT " events\n", r.events);
  store_audit_report_clear (&r);
  return EX_OK;
}

/* Add a master key version, then re-wrap every data key with it.  If an
 * earlier run was interrupted after adding its version, finish that one
 * instead of adding another.  */
static int
ctl_keys_rotate (intake_config *cfg, store_keys **keys, store **st)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();
  g_autofree char *detail = NULL;
  gint64 pending = store_rewrap_pending (*st, &error);
  gint64 total = 0, n;
  guint version;

  if (pending < 0)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  if (pending > 0)
    printf ("resuming: %" G_GINT64_FORMAT " data keys still wrapped by an"
            " older version\n", pending);
  else
    {
      version = store_keys_add_version (cfg->master_key, &error);
      if (version == 0)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          return EX_IOERR;
        }
      /* Reopen with the new version: its check value goes into the
       * database before any key is wrapped with it.  */
      store_close (st);
      store_keys_free (keys);
      *keys = store_keys_load (cfg->master_key, &error);
      if (*keys != NULL)
        *st = store_open (cfg->database, *keys, 0, &error);
      if (*keys == NULL || *st == NULL)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          return EX_IOERR;
        }
      detail = g_strdup_printf ("version=%u", version);
      if (!store_audit_record (*st, actor, "keys.rotate", "keyring", detail,
                               "ok", &error))
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          return EX_IOERR;
        }
      printf ("master key version %u added to %s\n", version,
              cfg->master_key);
    }
  while ((n = store_rewrap_batch (*st, 500, &error)) > 0)
    total += n;
  if (n < 0)
    {
      fprintf (stderr, "intakectl: re-wrapping stopped after %" G_GINT64_FORMAT
               " data keys: %s (run 'intakectl keys rotate' again to"
               " resume)\n", total, error->message);
      return EX_IOERR;
    }
  printf ("re-wrapped %" G_GINT64_FORMAT " data keys with version %u; no data"
          " was re-encrypted\n", total, store_keys_version (*keys));
  printf ("restart intaked so that it wraps new data keys with the new"
          " version\n");
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
      g_autofree char *actor = ctl_actor ();
      if (!store_quarantine_retry (st, id, actor, &error))
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
  {
    g_autofree char *object = g_strdup_printf ("spool:%" G_GINT64_FORMAT, id);
    if (!ctl_audit (st, "quarantine.read", object, raw ? "raw=1" : "raw=0"))
      {
        store_spool_item_free (item);
        return EX_IOERR;
      }
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
  store_case_filter filter = { 0 };
  GPtrArray *args = g_ptr_array_new ();
  int rc = EX_USAGE;

  for (int i = 1; i < argc; i++)
    {
      if ((strcmp (argv[i], "-c") == 0 || strcmp (argv[i], "--config") == 0)
          && i + 1 < argc)
        config = argv[++i];
      else if (strcmp (argv[i], "--queue") == 0 && i + 1 < argc)
        filter.queue = argv[++i];
      else if (strcmp (argv[i], "--status") == 0 && i + 1 < argc)
        filter.status = argv[++i];
      else if (strcmp (argv[i], "--kind") == 0 && i + 1 < argc)
        filter.kind = argv[++i];
      else if (strcmp (argv[i], "--limit") == 0 && i + 1 < argc)
        {
          guint64 n;
          if (!g_ascii_string_to_unsigned (argv[++i], 10, 1, 100000, &n,
                                           NULL))
            {
              fprintf (stderr, "intakectl: --limit takes a number from 1 to"
                       " 100000, not '%s'\n", argv[i]);
              g_ptr_array_free (args, TRUE);
              return EX_USAGE;
            }
          filter.limit = n;
        }
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
      || (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "status") == 0
          && args->len == 4)
      || (strcmp (cmd, "subjects") == 0 && g_strcmp0 (sub, "find") == 0
          && args->len == 3)
      || (strcmp (cmd, "audit") == 0 && g_strcmp0 (sub, "verify") == 0
          && args->len == 2)
      || (strcmp (cmd, "keys") == 0 && g_strcmp0 (sub, "rotate") == 0
          && args->len == 2)
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

  /* Keys from here on: no core dumps, no ptrace by other users.  */
  setrlimit (RLIMIT_CORE, &(struct rlimit){ 0, 0 });
  prctl (PR_SET_DUMPABLE, 0);
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
    rc = ctl_cases_list (st, &filter, json);
  else if (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "show") == 0)
    rc = ctl_cases_show (st, args->pdata[2], json);
  else if (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "status") == 0)
    rc = ctl_cases_status (st, args->pdata[2], args->pdata[3]);
  else if (strcmp (cmd, "subjects") == 0)
    rc = ctl_subjects_find (st, args->pdata[2], json);
  else if (strcmp (cmd, "audit") == 0)
    rc = ctl_audit_verify (st);
  else if (strcmp (cmd, "keys") == 0)
    rc = ctl_keys_rotate (cfg, &keys, &st);
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
