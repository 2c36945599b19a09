/*
 * intakectl - intake's admin command line.  Wiring only.
 *
 *   intakectl [-c FILE] keygen [FILE]
 *   intakectl [-c FILE] keys rotate
 *   intakectl [-c FILE] cases list [--queue Q] [--status S] [--kind K] [--tag T]
 *                                   [--limit N] [--json]
 *   intakectl [-c FILE] cases show REF [--json]
 *   intakectl [-c FILE] cases status REF STATUS
 *   intakectl [-c FILE] subjects find ADDRESS [--json]
 *   intakectl [-c FILE] audit verify
 *   intakectl [-c FILE] spool count
 *   intakectl [-c FILE] spool keys [--json]
 *   intakectl [-c FILE] quarantine list|show ID|retry ID
 *   intakectl [-c FILE] parse FILE.eml [FILE...]
 *   intakectl [-c FILE] tokens create|list|revoke ...  (intake/http_api.c)
 *
 * Every command that shows personal data (cases, subjects, quarantine
 * show) is an audit event: who ran it, what, how many; never the data.
 *
 * Without -c it reads $INTAKE_CONFIG, else conf/intake.conf when run from
 * the project root, else /etc/intake/intake.conf.  Secrets are never taken
 * on the command line.  Exit codes follow sysexits.h.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "intake/http_api.h"
#include "intake/intake_config.h"
#include "parser/parser.h"
#include "parser/parser_headers.h"
#include "parser/parser_text.h"
#include "router/anonymise.h"
#include "router/classify.h"
#include "router/clock.h"
#include "router/evaluate.h"
#include "router/router.h"
#include "store/store.h"
#include "store/store_api.h"
#include "store/store_webhook.h"

static const char *ctl_usage =
  "usage: intakectl [-c FILE] COMMAND\n"
  "\n"
  "commands:\n"
  "  keygen [FILE]            create a master key (mode 0600); never\n"
  "                           overwrites one\n"
  "  keys rotate              add a master key version and re-wrap every\n"
  "                           data key with it (resumable; run it again\n"
  "                           after an interruption)\n"
  "  cases list [--queue Q] [--status S] [--kind K] [--tag T] [--limit N]\n"
  "             [--json]      cases, newest first (--tag: a tag the rules\n"
  "                           gave, e.g. possible-request)\n"
  "  cases show REF [--json]  one case: messages, text, attachments,\n"
  "                           participants, links\n"
  "  cases status REF STATUS  new, assigned, waiting, resolved, closed\n"
  "  subjects find ADDRESS [--json]  the person with that e-mail address\n"
  "  audit verify             check the audit chain; names the first\n"
  "                           event that does not verify\n"
  "  rules check [FILE]       every error as file:line:column\n"
  "  rules test [--json] [--rules FILE] FILE.eml...\n"
  "                           the decision for each message; nothing stored\n"
  "  rules test --csv FILE.csv [--label COL] [--map FROM=TO] [--by-rule]\n"
  "                           the whole decision against labelled text\n"
  "  rules test --replay [--since YYYY-MM-DD] --rules DRAFT\n"
  "                           which stored cases a draft would move\n"
  "  rules reload             check, then tell intaked to load the rules\n"
  "  rules stats              hits per rule; rules that never fire\n"
  "  cases reply REF --file TEXT  a reply to the citizen, sent threaded\n"
  "  outbox                   messages queued, sent and failed\n"
  "  webhooks [--json]        the webhook delivery log, newest first:\n"
  "                           event, case, queue, state, attempts, HTTP\n"
  "  subject export ADDRESS|ID [--out FILE]  everything about a person\n"
  "                           (JSON, docs/export.md); audited\n"
  "  subject restrict|unrestrict ADDRESS|ID  restriction of processing\n"
  "  subject erase ADDRESS|ID --reason CATEGORY\n"
  "                           crypto-shredding (docs/rights.md); CATEGORY:\n"
  "                           request, objection, consent-withdrawn,\n"
  "                           unlawful, legal-obligation, retention\n"
  "  subject rectify ADDRESS|ID [--name N] [--phone P] [--address POSTAL]\n"
  "                  [--email ADDRESS]  correct a person's details (\"\"\n"
  "                           clears one); audited without the values\n"
  "  subject object ADDRESS|ID  an objection (art. 21): processing stops as\n"
  "                           for restrict, recorded as an objection\n"
  "  subject anonymise ADDRESS|ID  the person goes (erased); their cases\n"
  "                           keep their words with personal data replaced\n"
  "                           by placeholders, for statistics\n"
  "  cases texts REF          the anonymised text kept for a case (JSON)\n"
  "  cases hold REF --reason TEXT  legal hold: the retention schedule never\n"
  "                           deletes the case (the reason is sealed)\n"
  "  cases release REF        end the legal hold\n"
  "  retention run [--dry-run] [--confirm-clock-jump]\n"
  "                           apply the retention schedule\n"
  "                           (docs/retention.md); --dry-run prints what\n"
  "                           would go and why\n"
  "  keys vault               put every data key not yet in the key vault\n"
  "                           there (resumable; intaked does it at start)\n"
  "  mailboxes [--json]       each IMAP mailbox: state, last success,\n"
  "                           last error, backlog, OAuth token expiry\n"
  "  cases route REF [--to-queue Q] [--to-kind K]\n"
  "                           a person's correction (audited; training data)\n"
  "  classify train FILE.csv --label COL --out MODEL [--from-cases]\n"
  "                 [--method logreg|nblr|nb|cnb] [--l2 X] [--seeds N]\n"
  "                 [--seed N] [--polarity]\n"
  "                           --from-cases adds every re-routed case\n"
  "  classify eval FILE.csv --label COL --model MODEL [--map FROM=TO]\n"
  "  holidays import FILE     GOV.UK bank-holidays JSON into [clocks]\n"
  "                           holidays\n"
  "  spool count              messages waiting to be processed\n"
  "  spool keys [--json]      the spool's keys: when each was made, how\n"
  "                           many waiting messages each seals\n"
  "  quarantine list [--json] messages the parser failed on, kept raw\n"
  "  quarantine show ID [--raw]  its envelope (or, --raw, its bytes)\n"
  "  quarantine retry ID      hand it to the parser again\n"
  "  parse FILE.eml [FILE...] each message as the parser sees it (JSON);\n"
  "                           needs no key and no database\n"
  "  tokens create --name N --queue Q [--queue R] [--special-category]\n"
  "                [--expires never|DAYS|DATE]\n"
  "                           a department API token, printed once (expires\n"
  "                           after 365 days unless --expires says)\n"
  "  tokens list [--json]     tokens: queues, grants, created, revoked,\n"
  "                           expires, used\n"
  "  tokens revoke NAME       the token stops working at once\n";

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
        *st = store_open_full (cfg->database, cfg->vault, *keys, 0, &error);
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

/* ------------------------------------------------------------ routing */

typedef struct {
  const char *rules;          /* --rules FILE */
  gboolean replay;            /* --replay */
  const char *since;          /* --since YYYY-MM-DD */
  const char *csv;            /* --csv FILE */
  const char *label;          /* --label COLUMN */
  const char *model;          /* --model FILE */
  const char *out;            /* --out FILE */
  GPtrArray *map;             /* --map FROM=TO, NULL-terminated */
  guint examples;             /* --examples N */
  gboolean by_rule;           /* rules test --csv --by-rule */
  const char *method;         /* classify train --method */
  const char *l2;             /* classify train --l2 */
  const char *seeds;          /* classify train --seeds */
  const char *seed;           /* classify train --seed */
  gboolean polarity;          /* classify train --polarity */
  gboolean from_cases;        /* --from-cases */
  const char *file;           /* cases reply --file */
  const char *queue;          /* cases route --queue */
  const char *kind;           /* cases route --kind */
  const char *reason;         /* subject erase --reason */
  store_rectification rect;   /* subject rectify --name ... */
  gboolean dry_run;           /* retention run --dry-run */
  gboolean confirm_jump;      /* retention run --confirm-clock-jump */
} ctl_route_opts;

typedef struct {
  GPtrArray *texts;
  GPtrArray *labels;
  gboolean by_queue;
} ctl_train_cases;

static void
ctl_train_case (const store_replay_item *it, gpointer data)
{
  ctl_train_cases *c = data;

  if (!it->rerouted || it->text == NULL)
    return;
  g_ptr_array_add (c->texts, g_strdup_printf ("%s\n%s", it->subject
                                                          ? it->subject : "",
                                              it->text));
  g_ptr_array_add (c->labels, g_strdup (c->by_queue ? it->queue : it->kind));
}

static router *
ctl_router (intake_config *cfg, const char *rules_path, GError **error)
{
  router_config rc = { .rules = rules_path ? rules_path : cfg->rules,
                       .kind_model = cfg->kind_model,
                       .topic_model = cfg->topic_model,
                       .holidays = cfg->holidays,
                       .nation = cfg->nation,
                       .clocks = cfg->clocks };

  if (rc.rules == NULL)
    {
      g_set_error (error, RULES_ERROR, RULES_ERROR_READ,
                   "%s has no [routing] rules and no --rules was given",
                   cfg->path);
      return NULL;
    }
  return router_new (&rc, error);
}

static int
ctl_rules_check (intake_config *cfg, const char *file)
{
  g_autoptr (GError) error = NULL;
  const char *path = file ? file : cfg->rules;
  g_autoptr (rules) r = NULL;

  if (path == NULL)
    {
      fprintf (stderr, "intakectl: no rule file: give one, or set [routing]"
               " rules in %s\n", cfg->path);
      return EX_USAGE;
    }
  r = rules_load (path, &error);
  if (r == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      return g_error_matches (error, RULES_ERROR, RULES_ERROR_READ)
                 ? EX_NOINPUT : EX_DATAERR;
    }
  printf ("%s: %u rules, %u queues, OK (sha256 %s)\n", path, rules_count (r),
          g_strv_length ((char **) rules_queues (r)), rules_hash (r));
  return EX_OK;
}

static char *
ctl_due (gint64 us)
{
  g_autoptr (GDateTime) t = NULL;

  if (us <= 0)
    return NULL;
  t = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
  return g_date_time_format (t, "%Y-%m-%d");
}

static void
ctl_json_scores (JsonBuilder *b, const char *name, const rules_score *s,
                 guint n)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_object (b);
  for (guint i = 0; i < n; i++)
    {
      json_builder_set_member_name (b, s[i].label);
      json_builder_add_double_value (b, s[i].score);
    }
  json_builder_end_object (b);
}

static void
ctl_result_json (JsonBuilder *b, const char *file, const router_result *res,
                 const char *rules_file)
{
  g_autofree char *due = ctl_due (res->due_at);

  json_builder_begin_object (b);
  ctl_json_str (b, "file", file);
  ctl_json_str (b, "queue", res->d.queue);
  ctl_json_str (b, "kind", res->d.kind);
  ctl_json_str (b, "priority", res->d.priority);
  json_builder_set_member_name (b, "due");
  if (due)
    json_builder_add_string_value (b, due);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "rule");
  json_builder_begin_object (b);
  ctl_json_str (b, "name", res->d.rule);
  ctl_json_str (b, "file", rules_file);
  json_builder_set_member_name (b, "line");
  json_builder_add_int_value (b, res->d.line);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "fired");
  json_builder_begin_array (b);
  for (guint i = 0; i < res->d.fired->len; i++)
    json_builder_add_string_value (b, res->d.fired->pdata[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "tags");
  json_builder_begin_array (b);
  for (guint i = 0; i < res->d.tags->len; i++)
    json_builder_add_string_value (b, res->d.tags->pdata[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "sla");
  if (res->d.sla)
    json_builder_add_string_value (b, res->d.sla);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "scores");
  json_builder_begin_object (b);
  ctl_json_scores (b, "kind", res->kinds, res->n_kinds);
  ctl_json_scores (b, "topic", res->topics, res->n_topics);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "regex_limit");
  json_builder_add_boolean_value (b, res->d.limit_hit);
  ctl_json_str (b, "rules_hash", res->rules_hash);
  json_builder_end_object (b);
}

static void
ctl_print_scores (const char *name, const rules_score *s, guint n)
{
  if (n == 0)
    return;
  printf ("  %s scores:", name);
  for (guint i = 0; i < n && i < 4; i++)
    printf ("%s %s %.2f", i ? "," : "", s[i].label, s[i].score);
  printf ("\n");
}

static void
ctl_result_text (const char *file, const router_result *res,
                 const char *rules_file)
{
  g_autofree char *due = ctl_due (res->due_at);

  printf ("%s: queue %s, kind %s, priority %s, due %s%s\n", file,
          res->d.queue, res->d.kind, res->d.priority, due ? due : "-",
          res->due_beyond ? " (beyond the holiday file)" : "");
  if (res->d.line > 0)
    printf ("  rule \"%s\" (%s:%u)\n", res->d.rule, rules_file, res->d.line);
  else
    printf ("  rule: default\n");
  if (res->d.fired->len > 0)
    {
      printf ("  fired:");
      for (guint i = 0; i < res->d.fired->len; i++)
        printf ("%s \"%s\"", i ? "," : "",
                (const char *) res->d.fired->pdata[i]);
      printf ("\n");
    }
  if (res->d.tags->len > 0)
    {
      printf ("  tags:");
      for (guint i = 0; i < res->d.tags->len; i++)
        printf (" %s", (const char *) res->d.tags->pdata[i]);
      printf ("\n");
    }
  ctl_print_scores ("kind", res->kinds, res->n_kinds);
  ctl_print_scores ("topic", res->topics, res->n_topics);
  if (res->d.limit_hit)
    printf ("  a regular expression hit its bound and counted as no"
            " match\n");
}

/* Parse FILE.eml in this process (as `intakectl parse` does).  */
static parser_message *
ctl_parse_file (const char *file, const parser_context *pctx, GError **error)
{
  char *data = NULL;
  gsize len = 0;
  g_autoptr (GBytes) raw = NULL;
  parser_message *m;
  int saved;

  if (!g_file_get_contents (file, &data, &len, error))
    return NULL;
  raw = g_bytes_new_take (data, len);
  fflush (stdout);
  saved = dup (STDOUT_FILENO);
  if (saved >= 0)
    dup2 (STDERR_FILENO, STDOUT_FILENO);
  m = parser_message_parse (raw, pctx);
  fflush (stdout);
  if (saved >= 0)
    {
      dup2 (saved, STDOUT_FILENO);
      close (saved);
    }
  return m;
}

static void
ctl_csv_eval (router *rt, const ctl_route_opts *o, GString *report,
              double *macro, evaluate **out, GError **error);

static int
ctl_rules_test (intake_config *cfg, const ctl_route_opts *o, GPtrArray *args,
                gboolean json)
{
  g_autoptr (GError) error = NULL;
  router *rt = ctl_router (cfg, o->rules, &error);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  parser_lexicon *lex = NULL;
  parser_context pctx = { NULL, NULL, NULL };
  g_autoptr (rules) r = NULL;
  int rc = EX_OK;

  if (rt == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      return EX_DATAERR;
    }
  r = router_rules (rt);
  if (o->csv != NULL)
    {
      g_autoptr (GString) report = g_string_new (NULL);
      evaluate *ev = NULL;
      double macro = 0;

      ctl_csv_eval (rt, o, report, &macro, &ev, &error);
      if (ev == NULL)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          router_free (rt);
          return EX_DATAERR;
        }
      printf ("%s: the whole decision (rules %s and classifier) against"
              " column %s\n%s", o->csv, rules_path (r),
              o->label ? o->label : "kind", report->str);
      evaluate_free (ev);
      router_free (rt);
      return EX_OK;
    }
  if (args->len < 3)
    {
      fprintf (stderr, "intakectl: rules test needs FILE.eml, --csv FILE"
               " or --replay\n");
      router_free (rt);
      return EX_USAGE;
    }
  if (cfg->special_categories)
    {
      lex = parser_lexicon_load (cfg->special_categories, &error);
      if (lex == NULL)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          router_free (rt);
          return EX_CONFIG;
        }
    }
  pctx.lexicon = lex;
  if (json)
    json_builder_begin_array (b);
  for (guint i = 2; i < args->len; i++)
    {
      const char *file = args->pdata[i];
      g_autoptr (GError) ferr = NULL;
      g_autoptr (parser_message) m = ctl_parse_file (file, &pctx, &ferr);
      /* the mailbox: the first To of ours, else enquiries */
      g_autoptr (GPtrArray) rcpts = g_ptr_array_new ();
      router_context rc2 = { .source = "smtp" };
      router_result res;

      if (m == NULL)
        {
          fprintf (stderr, "intakectl: %s\n", ferr->message);
          rc = EX_NOINPUT;
          continue;
        }
      for (guint j = 0; j < m->to->len; j++)
        {
          parser_address *a = m->to->pdata[j];
          if (a->addr && g_hash_table_contains (cfg->mailboxes, a->addr))
            g_ptr_array_add (rcpts, a->addr);
        }
      g_ptr_array_add (rcpts, NULL);
      rc2.recipients = (const char *const *) rcpts->pdata;
      rc2.envelope_from = m->from ? m->from->addr : NULL;
      if (m->date > 0)
        rc2.received = g_date_time_new_from_unix_utc (m->date);
      router_decide (rt, NULL, m, &rc2, &res);
      if (json)
        ctl_result_json (b, file, &res, rules_path (r));
      else
        ctl_result_text (file, &res, rules_path (r));
      if (rc2.received)
        g_date_time_unref (rc2.received);
      router_result_clear (&res);
    }
  if (json)
    {
      json_builder_end_array (b);
      ctl_print_json (b);
    }
  parser_lexicon_free (lex);
  router_free (rt);
  return rc;
}

/* --by-rule: for each deciding rule (the one that set the queue, or
 * "default"), how many rows it decided and how many of those were right.
 * Counts only: no row's text is ever printed.  */
typedef struct {
  guint line;
  guint n;
  guint right;
} ctl_rule_count;

static void
ctl_by_rule_add (GHashTable *t, const char *rule, guint line, gboolean right)
{
  ctl_rule_count *c = g_hash_table_lookup (t, rule ? rule : "default");

  if (c == NULL)
    {
      c = g_new0 (ctl_rule_count, 1);
      c->line = line;
      g_hash_table_insert (t, g_strdup (rule ? rule : "default"), c);
    }
  c->n++;
  c->right += right ? 1 : 0;
}

static gint
ctl_by_rule_cmp (gconstpointer a, gconstpointer b, gpointer data)
{
  const ctl_rule_count *x = g_hash_table_lookup (data, *(char **) a);
  const ctl_rule_count *y = g_hash_table_lookup (data, *(char **) b);
  guint wx = x->n - x->right, wy = y->n - y->right;

  if (wx != wy)
    return wx > wy ? -1 : 1;
  return g_strcmp0 (*(char **) a, *(char **) b);
}

static void
ctl_by_rule_report (GHashTable *t, GString *report)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  GHashTableIter it;
  gpointer k;

  g_hash_table_iter_init (&it, t);
  while (g_hash_table_iter_next (&it, &k, NULL))
    g_ptr_array_add (names, k);
  g_ptr_array_sort_with_data (names, ctl_by_rule_cmp, t);
  g_string_append (report, "\nby deciding rule (rows, right, wrong):\n");
  for (guint i = 0; i < names->len; i++)
    {
      const ctl_rule_count *c = g_hash_table_lookup (t, names->pdata[i]);
      g_string_append_printf (report, "  %6u %6u %6u  %s (line %u)\n", c->n,
                              c->right, c->n - c->right,
                              (char *) names->pdata[i], c->line);
    }
}

/* --csv: the rows' text through the whole decision, compared with the
 * label column.  --label department compares the queue, anything else the
 * kind; --map FROM=TO rewrites gold labels (service-request=enquiry).  */
static void
ctl_csv_eval (router *rt, const ctl_route_opts *o, GString *report,
              double *macro, evaluate **out, GError **error)
{
  const char *label = o->label ? o->label : "kind";
  gboolean by_queue = g_strcmp0 (label, "kind") != 0;
  g_autoptr (classify_csv) csv = classify_csv_read (o->csv, label, error);
  evaluate *ev;
  const char *none[] = { NULL };
  router_context rc = { .source = "form", .recipients = none };
  g_autoptr (GTimer) timer = g_timer_new ();
  g_autoptr (GHashTable) by_rule = NULL;

  *out = NULL;
  if (csv == NULL)
    return;
  ev = evaluate_new ();
  by_rule = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 0; i < csv->texts->len; i++)
    {
      router_result res;
      const char *gold = csv->labels->pdata[i];
      const char *pred;

      for (guint j = 0; o->map && j + 1 < o->map->len; j++)
        {
          const char *m = o->map->pdata[j];
          const char *eq = strchr (m, '=');
          if (eq && strncmp (m, gold, eq - m) == 0 && gold[eq - m] == '\0')
            gold = eq + 1;
        }
      router_decide_text (rt, NULL, NULL, csv->texts->pdata[i], &rc, &res);
      pred = by_queue ? res.d.queue : res.d.kind;
      for (guint j = 0; !by_queue && o->map && j + 1 < o->map->len; j++)
        {
          const char *m = o->map->pdata[j];
          const char *eq = strchr (m, '=');
          if (eq && strncmp (m, pred, eq - m) == 0 && pred[eq - m] == '\0')
            pred = eq + 1;
        }
      evaluate_add (ev, gold, pred);
      if (o->by_rule)
        ctl_by_rule_add (by_rule, res.d.rule, res.d.line,
                         strcmp (gold, pred) == 0);
      router_result_clear (&res);
    }
  evaluate_report (ev, report);
  if (o->by_rule)
    ctl_by_rule_report (by_rule, report);
  g_string_append_printf (report, "\n%.0f decisions/s (rules and classifier,"
                          " one thread)\n",
                          csv->texts->len / MAX (g_timer_elapsed (timer, NULL),
                                                 1e-9));
  *macro = evaluate_macro_f1_gold (ev);
  *out = ev;
}

typedef struct {
  router *rt;
  rules *draft;
  GHashTable *moves;          /* "from -> to" -> count */
  GHashTable *examples;       /* "from -> to" -> GPtrArray of refs */
  guint examples_max;
  gint64 total, moved;
} ctl_replay_ctx;

static void
ctl_replay_one (const store_replay_item *it, gpointer data)
{
  ctl_replay_ctx *c = data;
  router_result res;
  g_autoptr (GDateTime) when = g_date_time_new_from_unix_utc (
      it->created_at / G_USEC_PER_SEC);
  router_context rc = { .source = it->source, .recipients = it->recipients,
                        .envelope_from = it->sender, .received = when };

  router_decide_text (c->rt, c->draft, it->subject, it->text, &rc, &res);
  c->total++;
  if (g_strcmp0 (res.d.queue, it->queue) != 0)
    {
      char *key = g_strdup_printf ("%s -> %s", it->queue, res.d.queue);
      GPtrArray *ex = g_hash_table_lookup (c->examples, key);
      gpointer n = g_hash_table_lookup (c->moves, key);

      c->moved++;
      if (ex == NULL)
        {
          ex = g_ptr_array_new_with_free_func (g_free);
          g_hash_table_insert (c->examples, g_strdup (key), ex);
        }
      if (ex->len < c->examples_max)
        g_ptr_array_add (ex, g_strdup_printf ("%s (rule \"%s\")", it->ref,
                                              res.d.rule));
      g_hash_table_insert (c->moves, key,
                           GINT_TO_POINTER (GPOINTER_TO_INT (n) + 1));
    }
  router_result_clear (&res);
}

static int
ctl_rules_replay (intake_config *cfg, store *st, const ctl_route_opts *o)
{
  g_autoptr (GError) error = NULL;
  ctl_replay_ctx c = { 0 };
  router *rt;
  gint64 since = 0;
  g_autofree char *detail = NULL;
  GHashTableIter it;
  gpointer k, v;

  if (o->rules == NULL)
    {
      fprintf (stderr, "intakectl: --replay needs --rules DRAFT\n");
      return EX_USAGE;
    }
  if (o->since)
    {
      g_autofree char *iso = g_strconcat (o->since, "T00:00:00Z", NULL);
      g_autoptr (GDateTime) t = g_date_time_new_from_iso8601 (iso, NULL);
      if (t == NULL)
        {
          fprintf (stderr, "intakectl: --since %s: expected YYYY-MM-DD\n",
                   o->since);
          return EX_USAGE;
        }
      since = g_date_time_to_unix (t) * G_USEC_PER_SEC;
    }
  rt = ctl_router (cfg, NULL, &error);
  if (rt == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      return EX_CONFIG;
    }
  c.rt = rt;
  c.draft = rules_load (o->rules, &error);
  if (c.draft == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      router_free (rt);
      return EX_DATAERR;
    }
  c.moves = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  c.examples = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) g_ptr_array_unref);
  c.examples_max = o->examples ? o->examples : 3;
  if (store_replay (st, since, ctl_replay_one, &c, &error) < 0)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      router_free (rt);
      return EX_IOERR;
    }
  detail = g_strdup_printf ("cases=%" G_GINT64_FORMAT " moved=%"
                            G_GINT64_FORMAT " draft=%.16s", c.total, c.moved,
                            rules_hash (c.draft));
  ctl_audit (st, "rules.replay", "cases", detail);
  printf ("replayed %" G_GINT64_FORMAT " cases%s%s with %s: %" G_GINT64_FORMAT
          " would move\n", c.total, o->since ? " since " : "",
          o->since ? o->since : "", o->rules, c.moved);
  g_hash_table_iter_init (&it, c.moves);
  while (g_hash_table_iter_next (&it, &k, &v))
    {
      GPtrArray *ex = g_hash_table_lookup (c.examples, k);
      printf ("  %-50s %6d   e.g.", (const char *) k, GPOINTER_TO_INT (v));
      for (guint i = 0; ex && i < ex->len; i++)
        printf ("%s %s", i ? "," : "", (const char *) ex->pdata[i]);
      printf ("\n");
    }
  g_hash_table_unref (c.moves);
  g_hash_table_unref (c.examples);
  rules_unref (c.draft);
  router_free (rt);
  return EX_OK;
}

/* ADDRESS or numeric id of a data subject.  */
static gint64
ctl_subject_ref (store *st, const char *arg, GError **error)
{
  guint64 n;

  if (g_ascii_string_to_unsigned (arg, 10, 1, G_MAXINT64, &n, NULL))
    return (gint64) n;
  return store_subject_id (st, arg, error);
}

/* (transfer full) The organisation's mail domains: intake's host name
 * and the domain of every intake mailbox -- kept in an export's headers,
 * where everyone else but the person is redacted.  */
static GStrv
ctl_own_domains (const intake_config *cfg)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash,
                                                       g_str_equal, g_free,
                                                       NULL);
  GHashTableIter it;
  gpointer k;

  if (cfg->hostname != NULL)
    g_hash_table_add (seen, g_ascii_strdown (cfg->hostname, -1));
  if (cfg->mailboxes != NULL)
    {
      g_hash_table_iter_init (&it, cfg->mailboxes);
      while (g_hash_table_iter_next (&it, &k, NULL))
        {
          const char *at = strrchr (k, '@');
          if (at != NULL && at[1] != '\0')
            g_hash_table_add (seen, g_ascii_strdown (at + 1, -1));
        }
    }
  g_hash_table_iter_init (&it, seen);
  while (g_hash_table_iter_next (&it, &k, NULL))
    g_strv_builder_add (b, k);
  return g_strv_builder_end (b);
}

/* Rights of the data subject: export, restrict, unrestrict.  */
static int
ctl_subject (const intake_config *cfg, store *st, const char *sub,
             const char *arg, const char *out)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();
  gint64 id = ctl_subject_ref (st, arg, &error);

  if (id < 0)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_NOINPUT;
    }
  if (strcmp (sub, "export") == 0)
    {
      g_auto (GStrv) domains = ctl_own_domains (cfg);
      g_autofree char *json = store_subject_export_full (
          st, id, actor, (const char *const *) domains, &error);
      if (json == NULL)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                     ? EX_NOINPUT : EX_IOERR;
        }
      if (out == NULL)
        {
          printf ("%s\n", json);
          return EX_OK;
        }
      {
        /* the export is personal data: readable by its owner only */
        mode_t old = umask (077);
        gboolean ok = g_file_set_contents (out, json, -1, &error);
        umask (old);
        if (!ok)
          {
            fprintf (stderr, "intakectl: %s\n", error->message);
            return EX_CANTCREAT;
          }
      }
      printf ("subject %" G_GINT64_FORMAT " exported to %s (mode 0600)\n",
              id, out);
      return EX_OK;
    }
  if (strcmp (sub, "object") == 0
          ? !store_subject_object (st, id, actor, &error)
          : !store_subject_restrict (st, id, strcmp (sub, "restrict") == 0,
                                     actor, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT : EX_IOERR;
    }
  printf ("subject %" G_GINT64_FORMAT " %s\n", id,
          strcmp (sub, "object") == 0
              ? "objection recorded: new messages are filed for information"
                " governance only, never routed or acknowledged"
              : strcmp (sub, "restrict") == 0
              ? "restricted: new messages are filed for information"
                " governance only, never routed or acknowledged"
              : "no longer restricted; cases back in their queues");
  return EX_OK;
}

/* Erasure (crypto-shredding): docs/rights.md.  */
static int
ctl_subject_erase (store *st, const char *arg, const char *reason)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();
  store_erasure_report r = { 0 };
  gint64 id;

  if (!store_erase_reason_valid (reason))
    {
      const char *const *l = store_erase_reason_list ();
      fprintf (stderr, "intakectl: subject erase needs --reason CATEGORY,"
               " one of:");
      for (guint i = 0; l[i]; i++)
        if (strcmp (l[i], "anonymised") != 0
            && strcmp (l[i], "shredded") != 0)
          fprintf (stderr, " %s", l[i]);
      fprintf (stderr, " (a category, never free text: it is kept)\n");
      return EX_USAGE;
    }
  id = ctl_subject_ref (st, arg, &error);
  if (id < 0)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_NOINPUT;
    }
  if (!store_subject_erase (st, id, reason, actor, &r, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT : EX_IOERR;
    }
  printf ("subject %" G_GINT64_FORMAT " erased: %" G_GINT64_FORMAT
          " messages, %" G_GINT64_FORMAT " attachments in %" G_GINT64_FORMAT
          " cases; %s\n", id, r.messages, r.attachments, r.cases,
          r.vault_secret ? "vault secret destroyed (copies and backups of"
                           " the database no longer open)"
                         : "no vault secret (this key was never in the"
                           " vault: copies taken before it was stay"
                           " readable with the master key)");
  if (!r.wal_truncated)
    printf ("warning: the WAL could not be truncated now (a reader held"
            " it); it will be at the next checkpoint\n");
  return EX_OK;
}

/* Rectification: docs/rights.md.  The values come on the command line
 * (an admin types what the person told them); they are never printed or
 * logged.  */
static int
ctl_subject_rectify (store *st, const char *arg,
                     const store_rectification *r)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();
  gint64 id;

  if (r->name == NULL && r->phone == NULL && r->postal == NULL
      && r->email == NULL)
    {
      fprintf (stderr, "intakectl: subject rectify needs --name, --phone,"
               " --address or --email\n");
      return EX_USAGE;
    }
  id = ctl_subject_ref (st, arg, &error);
  if (id < 0)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_NOINPUT;
    }
  if (!store_subject_rectify (st, id, r, actor, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT
                 : g_error_matches (error, STORE_ERROR, STORE_ERROR_STATE)
                       ? EX_DATAERR : EX_IOERR;
    }
  printf ("subject %" G_GINT64_FORMAT " rectified\n", id);
  return EX_OK;
}

/* Anonymisation: the words stay, the person goes (docs/rights.md).  */
static int
ctl_subject_anonymise (store *st, const char *arg)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();
  store_subject_details d = { 0 };
  store_erasure_report r = { 0 };
  g_autoptr (GPtrArray) texts = NULL;
  guint replaced = 0;
  gint64 id;

  id = ctl_subject_ref (st, arg, &error);
  if (id < 0)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_NOINPUT;
    }
  texts = store_subject_texts (st, id, &d, &error);
  if (texts == NULL)
    {
      store_subject_details_clear (&d);
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT : EX_IOERR;
    }
  {
    anonymise_person p = { d.name, d.email, d.phone, d.postal };
    for (guint i = 0; i < texts->len; i++)
      {
        store_subject_text *t = texts->pdata[i];
        guint n = 0;
        char *x = anonymise_text (t->subject, &p, &n);
        g_free (t->subject);
        t->subject = x;
        replaced += n;
        x = anonymise_text (t->text, &p, &n);
        g_free (t->text);
        t->text = x;
        replaced += n;
      }
  }
  store_subject_details_clear (&d);
  if (!store_subject_anonymise (st, id, texts, actor, &r, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  printf ("subject %" G_GINT64_FORMAT " anonymised: %u texts kept with %u"
          " personal data replaced; the person erased (%" G_GINT64_FORMAT
          " messages, vault secret %s)\n", id, texts->len, replaced,
          r.messages, r.vault_secret ? "destroyed" : "none");
  return EX_OK;
}

/* The anonymised text of a case: no person's data, so no audit event.  */
static int
ctl_cases_texts (store *st, const char *ref)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) texts = store_case_texts (st, ref, &error);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *out = NULL;

  if (texts == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  json_builder_begin_array (b);
  for (guint i = 0; i < texts->len; i++)
    {
      store_subject_text *t = texts->pdata[i];
      g_autofree char *when = ctl_time (t->received_at);
      json_builder_begin_object (b);
      ctl_json_str (b, "received", when);
      ctl_json_str (b, "subject", t->subject);
      ctl_json_str (b, "text", t->text);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  root = json_builder_get_root (b);
  json_generator_set_pretty (gen, TRUE);
  json_generator_set_root (gen, root);
  out = json_generator_to_data (gen, NULL);
  printf ("%s\n", out);
  return EX_OK;
}

/* Legal hold: docs/retention.md.  */
static int
ctl_cases_hold (store *st, const char *ref, gboolean on, const char *reason)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();

  if (on && (reason == NULL || *reason == '\0'))
    {
      fprintf (stderr, "intakectl: cases hold needs --reason TEXT\n");
      return EX_USAGE;
    }
  if (!store_case_hold (st, ref, on, reason, actor, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT : EX_IOERR;
    }
  printf ("%s %s\n", ref, on ? "on legal hold: the retention schedule will"
                             " not delete it" : "released from legal hold");
  return EX_OK;
}

/* The time of the schedule: now, or INTAKE_TEST_NOW (unix seconds) for the
 * tests' injected clock (docs/retention.md).  */
static gint64
ctl_retention_now (void)
{
  const char *e = g_getenv ("INTAKE_TEST_NOW");

  if (e != NULL && *e)
    return (gint64) g_ascii_strtoll (e, NULL, 10) * G_USEC_PER_SEC;
  return g_get_real_time ();
}

static int
ctl_retention_run (intake_config *cfg, store *st, const ctl_route_opts *ro)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) items = NULL;
  store_retention_policy *p;
  store_retention_report r = { 0 };
  guint flags = (ro->dry_run ? STORE_RETENTION_DRY_RUN : 0)
                | (ro->confirm_jump ? STORE_RETENTION_CONFIRM_CLOCK_JUMP : 0);
  gboolean ok;

  p = cfg->retention ? store_retention_policy_load (cfg->retention, &error)
                     : store_retention_policy_new ();
  if (p == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_CONFIG;
    }
  ok = store_retention_run (st, p, ctl_retention_now (), flags, &r, &items,
                            &error);
  store_retention_policy_free (p);
  if (!ok)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_CLOCK)
                 ? EX_TEMPFAIL : EX_IOERR;
    }
  for (guint i = 0; i < items->len; i++)
    {
      store_retention_item *it = items->pdata[i];
      g_autofree char *due = ctl_time (it->delete_after);
      printf ("%s %s class=%s due=%s basis=%s\n", it->ref,
              ro->dry_run ? "would-delete" : it->deleted ? "deleted"
                                                         : "skipped",
              it->class_name, due, it->basis);
    }
  printf ("%s%" G_GINT64_FORMAT " cases, %" G_GINT64_FORMAT " due, %"
          G_GINT64_FORMAT " deleted, %" G_GINT64_FORMAT " on legal hold; %"
          G_GINT64_FORMAT " data subjects %s%s\n",
          ro->dry_run ? "dry run: " : "", r.cases, r.due, r.deleted, r.held,
          ro->dry_run ? r.subjects_due : r.subjects_erased,
          ro->dry_run ? "would be erased" : "erased",
          r.clock_jump ? " (clock jump since the last run)" : "");
  return EX_OK;
}

/* Put data keys not in the key vault yet there.  */
static int
ctl_keys_vault (store *st)
{
  g_autoptr (GError) error = NULL;
  gint64 total = 0, n;

  while ((n = store_rewrap_batch (st, 500, &error)) > 0)
    total += n;
  if (n < 0)
    {
      fprintf (stderr, "intakectl: stopped after %" G_GINT64_FORMAT
               " data keys: %s (run it again to resume)\n", total,
               error->message);
      return EX_IOERR;
    }
  printf ("%" G_GINT64_FORMAT " data keys re-wrapped with a key-vault"
          " secret\n", total);
  return EX_OK;
}

/* A department's reply to the citizen, queued for the sender.  */
static int
ctl_cases_reply (store *st, const char *ref, const char *file)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();
  g_autofree char *text = NULL;
  gsize len;

  if (file == NULL)
    {
      fprintf (stderr, "intakectl: cases reply needs --file TEXT\n");
      return EX_USAGE;
    }
  if (!g_file_get_contents (file, &text, &len, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_NOINPUT;
    }
  if (!g_utf8_validate (text, len, NULL) || len == 0 || len > 1024 * 1024)
    {
      fprintf (stderr, "intakectl: %s: the reply must be UTF-8 text of 1 byte"
               " to 1 MiB\n", file);
      return EX_DATAERR;
    }
  if (!store_outbox_reply (st, ref, text, actor, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT : EX_IOERR;
    }
  printf ("reply to %s queued; intaked sends it through the smarthost\n",
          ref);
  return EX_OK;
}

static int
ctl_outbox (store *st)
{
  g_autoptr (GError) error = NULL;
  gint64 q, sent, failed;

  if (!store_outbox_counts (st, &q, &sent, &failed, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error ? error->message : "?");
      return EX_IOERR;
    }
  printf ("queued %" G_GINT64_FORMAT "\nsent %" G_GINT64_FORMAT
          "\nfailed %" G_GINT64_FORMAT "\n", q, sent, failed);
  return EX_OK;
}

/* The webhook delivery log (no payloads: they are built when sent).  */
static int
ctl_webhooks (store *st, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) log = store_webhook_log (st, 0, &error);

  if (log == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      g_autoptr (JsonGenerator) gen = json_generator_new ();
      g_autoptr (JsonNode) root = NULL;
      g_autofree char *out = NULL;

      json_builder_begin_array (b);
      for (guint i = 0; i < log->len; i++)
        {
          store_webhook_item *it = log->pdata[i];
          g_autofree char *at = it->delivered_at ? ctl_time (it->delivered_at)
                                                 : NULL;
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "id");
          json_builder_add_int_value (b, it->id);
          ctl_json_str (b, "event", it->event);
          ctl_json_str (b, "change", it->change);
          ctl_json_str (b, "case", it->ref);
          ctl_json_str (b, "webhook", it->hook);
          ctl_json_str (b, "state", it->state);
          json_builder_set_member_name (b, "attempts");
          json_builder_add_int_value (b, it->attempts);
          json_builder_set_member_name (b, "last_http");
          json_builder_add_int_value (b, it->last_http);
          ctl_json_str (b, "delivered", at);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      root = json_builder_get_root (b);
      json_generator_set_pretty (gen, TRUE);
      json_generator_set_root (gen, root);
      out = json_generator_to_data (gen, NULL);
      printf ("%s\n", out);
      return EX_OK;
    }
  for (guint i = 0; i < log->len; i++)
    {
      store_webhook_item *it = log->pdata[i];
      g_autofree char *at = it->delivered_at ? ctl_time (it->delivered_at)
                                             : g_strdup ("-");
      printf ("%" G_GINT64_FORMAT " %s%s%s %s %s %s attempts=%u http=%d %s\n",
              it->id, it->event, it->change ? "/" : "",
              it->change ? it->change : "", it->ref, it->hook, it->state,
              it->attempts, it->last_http, at);
    }
  return EX_OK;
}

/* Every [imap NAME] mailbox: state, last success, last error, backlog,
 * token expiry (loudly when near).  */
static int
ctl_mailboxes (intake_config *cfg, store *st, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) rows = store_imap_status_list (st, &error);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  int rc = EX_OK;

  if (rows == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  if (json)
    json_builder_begin_array (b);
  else
    printf ("%-16s %-11s %-20s %-20s %-18s %s\n", "MAILBOX", "STATE",
            "LAST SUCCESS", "LAST ERROR AT", "LAST ERROR", "BACKLOG");
  for (guint i = 0; cfg->imap && i < cfg->imap->len; i++)
    {
      const intake_imap_config *mb = cfg->imap->pdata[i];
      store_imap_status *e = NULL;
      g_autofree char *ok = NULL;
      g_autofree char *errat = NULL;
      gboolean token_soon;

      for (guint j = 0; j < rows->len; j++)
        if (g_strcmp0 (((store_imap_status *) rows->pdata[j])->mailbox,
                       mb->name) == 0)
          e = rows->pdata[j];
      ok = e && e->last_success ? ctl_time (e->last_success)
                                : g_strdup ("never");
      errat = e && e->last_error_at ? ctl_time (e->last_error_at)
                                    : g_strdup ("-");
      token_soon = e && e->token_expires > 0
                   && e->token_expires - now < 7 * 24 * 3600;
      if (json)
        {
          json_builder_begin_object (b);
          ctl_json_str (b, "mailbox", mb->name);
          ctl_json_str (b, "state", e ? e->state : "not-started");
          ctl_json_str (b, "last_success", ok);
          ctl_json_str (b, "last_error", e ? e->last_error : NULL);
          ctl_json_str (b, "last_error_at", errat);
          json_builder_set_member_name (b, "backlog");
          json_builder_add_int_value (b, e ? e->backlog : 0);
          json_builder_set_member_name (b, "token_expires");
          json_builder_add_int_value (b, e ? e->token_expires : 0);
          json_builder_end_object (b);
        }
      else
        printf ("%-16s %-11s %-20s %-20s %-18s %" G_GINT64_FORMAT "\n",
                mb->name, e ? e->state : "not-started", ok, errat,
                e && e->last_error ? e->last_error : "-",
                e ? e->backlog : 0);
      if (token_soon)
        {
          fprintf (stderr, "WARNING: the OAuth token of mailbox %s expires"
                   " %s; renew %s now\n", mb->name,
                   e->token_expires < now ? "has expired" : "within 7 days",
                   mb->token_file ? mb->token_file : "it");
          rc = EX_TEMPFAIL;
        }
      if (e && g_strcmp0 (e->last_error, "token-rejected") == 0
          && g_strcmp0 (e->state, "error") == 0)
        {
          fprintf (stderr, "WARNING: the server refused the OAuth token of"
                   " mailbox %s\n", mb->name);
          rc = EX_TEMPFAIL;
        }
    }
  if (json)
    {
      json_builder_end_array (b);
      ctl_print_json (b);
    }
  return rc;
}

/* A person re-routes a case: the queue must be one the rules declare, the
 * kind one intake knows.  */
static gint64
ctl_due_for_kind (const char *kind, gint64 received_us, gpointer data)
{
  return router_due_for_kind (data, kind, received_us);
}

static int
ctl_cases_route (intake_config *cfg, store *st, const char *ref,
                 const ctl_route_opts *o)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *actor = ctl_actor ();
  g_autoptr (rules) r = cfg->rules ? rules_load (cfg->rules, NULL) : NULL;
  g_autoptr (router) clocks = NULL;

  if (o->queue == NULL && o->kind == NULL)
    {
      fprintf (stderr, "intakectl: cases route needs --to-queue Q and/or"
               " --to-kind K\n");
      return EX_USAGE;
    }
  if (o->queue && r && !rules_has_queue (r, o->queue))
    {
      fprintf (stderr, "intakectl: unknown queue '%s' (not declared in"
               " %s)\n", o->queue, cfg->rules);
      return EX_DATAERR;
    }
  if (o->kind)
    {
      gboolean known = FALSE;
      for (guint i = 0; rules_kinds[i]; i++)
        known |= strcmp (rules_kinds[i], o->kind) == 0;
      if (!known)
        {
          fprintf (stderr, "intakectl: unknown kind '%s'\n", o->kind);
          return EX_DATAERR;
        }
    }
  /* a new kind takes its own clock, counted from receipt: the clocks and
   * the calendar of the config (no models needed) */
  if (o->kind && cfg->rules)
    {
      router_config rc = { .rules = cfg->rules, .holidays = cfg->holidays,
                           .nation = cfg->nation, .clocks = cfg->clocks };
      clocks = router_new (&rc, &error);
      if (clocks == NULL)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          return EX_CONFIG;
        }
      store_set_due_fn (st, ctl_due_for_kind, clocks);
    }
  if (!store_case_reroute (st, ref, o->queue, o->kind, actor, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND)
                 ? EX_NOINPUT
             : g_error_matches (error, STORE_ERROR, STORE_ERROR_STATE)
                 ? EX_DATAERR : EX_IOERR;
    }
  printf ("%s re-routed%s%s%s%s; `intakectl classify train ... --from-cases`"
          " learns from it\n", ref, o->queue ? " to queue " : "",
          o->queue ? o->queue : "", o->kind ? ", kind " : "",
          o->kind ? o->kind : "");
  return EX_OK;
}

static int
ctl_rules_stats (intake_config *cfg, store *st)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) fired = g_hash_table_new_full (g_str_hash,
                                                        g_str_equal, g_free,
                                                        NULL);
  g_autoptr (GHashTable) routed = g_hash_table_new_full (g_str_hash,
                                                         g_str_equal, g_free,
                                                         NULL);
  g_autoptr (rules) r = NULL;
  gint64 cases = 0;
  guint never = 0;

  if (cfg->rules == NULL || (r = rules_load (cfg->rules, &error)) == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error ? error->message
                                                : "no [routing] rules");
      return EX_CONFIG;
    }
  if (!store_rule_stats (st, fired, routed, &cases, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  printf ("%" G_GINT64_FORMAT " routed cases; rules in %s:\n", cases,
          rules_path (r));
  printf ("  %-6s %8s %8s  %s\n", "LINE", "FIRED", "ROUTED", "RULE");
  for (guint i = 0; i < rules_count (r); i++)
    {
      guint line;
      const char *name = rules_name (r, i, &line);
      int nf = GPOINTER_TO_INT (g_hash_table_lookup (fired, name));
      int nr = GPOINTER_TO_INT (g_hash_table_lookup (routed, name));
      printf ("  %-6u %8d %8d  %s\n", line, nf, nr, name);
      never += nf == 0;
    }
  printf ("  %-6s %8s %8d  (default)\n", "", "",
          GPOINTER_TO_INT (g_hash_table_lookup (routed, "default")));
  if (never > 0)
    {
      printf ("never fired:");
      for (guint i = 0; i < rules_count (r); i++)
        {
          const char *name = rules_name (r, i, NULL);
          if (!g_hash_table_contains (fired, name))
            printf (" \"%s\"", name);
        }
      printf ("\n");
    }
  return EX_OK;
}

static int
ctl_rules_reload (intake_config *cfg)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  int rc = ctl_rules_check (cfg, NULL);
  long pid;

  if (rc != EX_OK)
    {
      fprintf (stderr, "intakectl: not reloaded; intaked keeps the rules it"
               " has\n");
      return rc;
    }
  if (!g_file_get_contents (cfg->pid_file, &text, NULL, &error))
    {
      fprintf (stderr, "intakectl: is intaked running? %s\n", error->message);
      return EX_UNAVAILABLE;
    }
  pid = strtol (text, NULL, 10);
  if (pid <= 1 || kill ((pid_t) pid, SIGHUP) != 0)
    {
      fprintf (stderr, "intakectl: cannot signal intaked (pid %ld): %s\n",
               pid, g_strerror (errno));
      return EX_UNAVAILABLE;
    }
  printf ("intaked (pid %ld) told to reload; it logs event=rules-reload\n",
          pid);
  return EX_OK;
}

/* @value of @flag as a whole number from @min to @max into *@out; FALSE
 * with the usage error printed.  */
static gboolean
ctl_flag_number (const char *flag, const char *value, guint64 min,
                 guint64 max, guint64 *out)
{
  if (g_ascii_string_to_unsigned (value, 10, min, max, out, NULL))
    return TRUE;
  fprintf (stderr, "intakectl: %s takes a number from %" G_GUINT64_FORMAT
           " to %" G_GUINT64_FORMAT ", not '%s'\n", flag, min, max, value);
  return FALSE;
}

/* classify train's --method, --l2, --seeds, --seed and --polarity over the
 * defaults.  */
static gboolean
ctl_train_options (const ctl_route_opts *o, classify_train_options *t)
{
  classify_train_options_init (t);
  t->polarity = o->polarity;
  if (o->method != NULL && !classify_method_from_name (o->method, &t->method))
    {
      fprintf (stderr, "intakectl: --method takes logreg, nblr, nb or cnb,"
               " not '%s'\n", o->method);
      return FALSE;
    }
  if (o->l2 != NULL)
    {
      char *end = NULL;
      double v = g_ascii_strtod (o->l2, &end);
      if (end == o->l2 || *end != '\0' || !(v > 0 && v < 1))
        {
          fprintf (stderr, "intakectl: --l2 takes a number between 0 and 1,"
                   " not '%s'\n", o->l2);
          return FALSE;
        }
      t->l2 = v;
    }
  if (o->seeds != NULL)
    {
      guint64 v;
      if (!ctl_flag_number ("--seeds", o->seeds, 1, 50, &v))
        return FALSE;
      t->seeds = (guint) v;
    }
  if (o->seed != NULL)
    {
      guint64 v;
      if (!ctl_flag_number ("--seed", o->seed, 0, G_MAXUINT32 - 64, &v))
        return FALSE;
      t->seed = (guint32) v;
    }
  return TRUE;
}

static int
ctl_classify (const char *sub, const ctl_route_opts *o, GPtrArray *args,
              store *st)
{
  g_autoptr (GError) error = NULL;
  const char *csv = args->len > 2 ? args->pdata[2] : NULL;
  const char *label = o->label ? o->label : "label";
  classify_train_options topts;

  if (!ctl_train_options (o, &topts))
    return EX_USAGE;
  if (st != NULL && strcmp (sub, "train") == 0)
    {
      /* the training file plus every case a person re-routed: the
       * correction is the label */
      g_autoptr (classify_csv) rows = classify_csv_read (csv, label, &error);
      ctl_train_cases c = { g_ptr_array_new_with_free_func (g_free),
                            g_ptr_array_new_with_free_func (g_free),
                            g_strcmp0 (label, "kind") != 0 };
      classify_model *m = NULL;
      guint from_csv;
      g_autofree char *detail = NULL;

      if (rows == NULL)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          return EX_DATAERR;
        }
      for (guint i = 0; i < rows->texts->len; i++)
        {
          g_ptr_array_add (c.texts, g_strdup (rows->texts->pdata[i]));
          g_ptr_array_add (c.labels, g_strdup (rows->labels->pdata[i]));
        }
      from_csv = c.texts->len;
      if (store_replay (st, 0, ctl_train_case, &c, &error) < 0)
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          return EX_IOERR;
        }
      detail = g_strdup_printf ("rerouted=%u", c.texts->len - from_csv);
      ctl_audit (st, "classify.train", "cases", detail);
      m = classify_train ((const char *const *) c.texts->pdata,
                          (const char *const *) c.labels->pdata, c.texts->len,
                          label, &topts, &error);
      if (m == NULL || o->out == NULL
          || !classify_model_save (m, o->out, &error))
        {
          fprintf (stderr, "intakectl: %s\n", error ? error->message
                                                     : "--out MODEL needed");
          classify_model_free (m);
          return EX_DATAERR;
        }
      printf ("%s + %u re-routed cases: %u classes, %u features,"
              " temperature %.3f -> %s\n", csv, c.texts->len - from_csv,
              classify_model_n_classes (m), classify_model_n_features (m),
              classify_model_temperature (m), o->out);
      classify_model_free (m);
      g_ptr_array_unref (c.texts);
      g_ptr_array_unref (c.labels);
      return EX_OK;
    }

  if (csv == NULL)
    {
      fprintf (stderr, "intakectl: classify %s needs FILE.csv\n", sub);
      return EX_USAGE;
    }
  if (strcmp (sub, "train") == 0)
    {
      classify_model *m;
      if (o->out == NULL)
        {
          fprintf (stderr, "intakectl: classify train needs --out MODEL\n");
          return EX_USAGE;
        }
      m = classify_train_csv (csv, label, &topts, &error);
      if (m == NULL || !classify_model_save (m, o->out, &error))
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          classify_model_free (m);
          return EX_DATAERR;
        }
      printf ("%s: %u classes, %u features, temperature %.3f -> %s\n", csv,
              classify_model_n_classes (m), classify_model_n_features (m),
              classify_model_temperature (m), o->out);
      classify_model_free (m);
      return EX_OK;
    }
  else
    {
      g_autoptr (GString) report = g_string_new (NULL);
      classify_model *m;
      if (o->model == NULL)
        {
          fprintf (stderr, "intakectl: classify eval needs --model MODEL\n");
          return EX_USAGE;
        }
      m = classify_model_load (o->model, &error);
      if (m == NULL
          || !classify_eval_csv (m, csv, label,
                                 o->map ? (const char *const *) o->map->pdata
                                        : NULL, report, NULL, &error))
        {
          fprintf (stderr, "intakectl: %s\n", error->message);
          classify_model_free (m);
          return EX_DATAERR;
        }
      printf ("%s", report->str);
      classify_model_free (m);
      return EX_OK;
    }
}

static int
ctl_holidays_import (intake_config *cfg, const char *file)
{
  g_autoptr (GError) error = NULL;
  const char *out = cfg->holidays;

  if (out == NULL)
    {
      fprintf (stderr, "intakectl: %s has no [clocks] holidays file to"
               " write\n", cfg->path);
      return EX_CONFIG;
    }
  if (!clock_holidays_import (file, out, &error))
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_DATAERR;
    }
  printf ("%s imported into %s; restart intaked (or reload) to use it\n",
          file, out);
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

/* `intakectl spool keys`: what the spool is sealed under
 * (docs/cases.md "Spool keys"): each key in the vault and each a
 * spool row names, when it was made and how many rows it seals.  A key
 * a row names but the vault lacks is shown (and makes the exit code
 * EX_DATAERR): those rows no longer open.  */
static int
ctl_spool_keys (store *st, gboolean json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) keys = store_spool_keys_list (st, &error);
  gboolean lost = FALSE;

  if (keys == NULL)
    {
      fprintf (stderr, "intakectl: %s\n", error->message);
      return EX_IOERR;
    }
  for (guint i = 0; i < keys->len; i++)
    {
      const store_spool_key_info *k
          = &g_array_index (keys, store_spool_key_info, i);
      if (k->id != 0 && !k->in_vault && k->rows > 0)
        lost = TRUE;
    }
  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_array (b);
      for (guint i = 0; i < keys->len; i++)
        {
          const store_spool_key_info *k
              = &g_array_index (keys, store_spool_key_info, i);
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "id");
          json_builder_add_int_value (b, k->id);
          json_builder_set_member_name (b, "made");
          if (k->in_vault)
            {
              g_autofree char *t = ctl_time (k->created_at);
              json_builder_add_string_value (b, t);
            }
          else
            json_builder_add_null_value (b);
          json_builder_set_member_name (b, "rows");
          json_builder_add_int_value (b, k->rows);
          json_builder_set_member_name (b, "in_vault");
          json_builder_add_boolean_value (b, k->in_vault);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      ctl_print_json (b);
      return lost ? EX_DATAERR : EX_OK;
    }
  printf ("%-8s %-20s %8s\n", "KEY", "MADE", "ROWS");
  for (guint i = 0; i < keys->len; i++)
    {
      const store_spool_key_info *k
          = &g_array_index (keys, store_spool_key_info, i);
      g_autofree char *t = k->in_vault ? ctl_time (k->created_at) : NULL;

      printf ("%-8" G_GINT64_FORMAT " %-20s %8" G_GINT64_FORMAT "%s\n", k->id,
              t ? t : "-", k->rows,
              k->id == 0 ? "  (the master key's; re-sealed at the next"
                           " rotation run)"
              : !k->in_vault ? "  (NOT IN THE KEY VAULT: these rows do not"
                               " open)" : "");
    }
  return lost ? EX_DATAERR : EX_OK;
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
  ctl_route_opts ro = { 0 };
  g_autoptr (GPtrArray) maps = g_ptr_array_new ();
  GPtrArray *args = g_ptr_array_new ();

  /* Before any thread: GLib's number parsers take the C locale from a
   * g_once on first use, and a contended g_once can leave errno set by
   * a futex wait; g_ascii_string_to_unsigned() then refuses a valid "0"
   * ("min_free_space = 0: expected a whole number", seen once in a few
   * hundred daemon starts).  Initialised here, it is never contended.  */
  (void) g_ascii_strtoull ("0", NULL, 10);

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
      else if (strcmp (argv[i], "--tag") == 0 && i + 1 < argc)
        {
          filter.tag = argv[++i];
          /* the names the rules can give (what the API accepts too) */
          if (!store_api_name_valid (filter.tag))
            {
              fprintf (stderr, "intakectl: --tag %s: not a tag (lower-case"
                       " letters, digits, '-', '_', '.')\n", filter.tag);
              g_ptr_array_free (args, TRUE);
              return EX_USAGE;
            }
        }
      else if (strcmp (argv[i], "--limit") == 0 && i + 1 < argc)
        {
          guint64 n;
          if (!ctl_flag_number ("--limit", argv[++i], 1, 100000, &n))
            {
              g_ptr_array_free (args, TRUE);
              return EX_USAGE;
            }
          filter.limit = n;
        }
      else if (strcmp (argv[i], "--rules") == 0 && i + 1 < argc)
        ro.rules = argv[++i];
      else if (strcmp (argv[i], "--replay") == 0)
        ro.replay = TRUE;
      else if (strcmp (argv[i], "--since") == 0 && i + 1 < argc)
        ro.since = argv[++i];
      else if (strcmp (argv[i], "--csv") == 0 && i + 1 < argc)
        ro.csv = argv[++i];
      else if (strcmp (argv[i], "--label") == 0 && i + 1 < argc)
        ro.label = argv[++i];
      else if (strcmp (argv[i], "--model") == 0 && i + 1 < argc)
        ro.model = argv[++i];
      else if (strcmp (argv[i], "--out") == 0 && i + 1 < argc)
        ro.out = argv[++i];
      else if (strcmp (argv[i], "--map") == 0 && i + 1 < argc)
        g_ptr_array_add (maps, argv[++i]);
      else if (strcmp (argv[i], "--file") == 0 && i + 1 < argc)
        ro.file = argv[++i];
      else if (strcmp (argv[i], "--reason") == 0 && i + 1 < argc)
        ro.reason = argv[++i];
      else if (strcmp (argv[i], "--name") == 0 && i + 1 < argc)
        ro.rect.name = argv[++i];
      else if (strcmp (argv[i], "--phone") == 0 && i + 1 < argc)
        ro.rect.phone = argv[++i];
      else if (strcmp (argv[i], "--address") == 0 && i + 1 < argc)
        ro.rect.postal = argv[++i];
      else if (strcmp (argv[i], "--email") == 0 && i + 1 < argc)
        ro.rect.email = argv[++i];
      else if (strcmp (argv[i], "--dry-run") == 0)
        ro.dry_run = TRUE;
      else if (strcmp (argv[i], "--by-rule") == 0)
        ro.by_rule = TRUE;
      else if (strcmp (argv[i], "--method") == 0 && i + 1 < argc)
        ro.method = argv[++i];
      else if (strcmp (argv[i], "--l2") == 0 && i + 1 < argc)
        ro.l2 = argv[++i];
      else if (strcmp (argv[i], "--seeds") == 0 && i + 1 < argc)
        ro.seeds = argv[++i];
      else if (strcmp (argv[i], "--seed") == 0 && i + 1 < argc)
        ro.seed = argv[++i];
      else if (strcmp (argv[i], "--polarity") == 0)
        ro.polarity = TRUE;
      else if (strcmp (argv[i], "--confirm-clock-jump") == 0)
        ro.confirm_jump = TRUE;
      else if (strcmp (argv[i], "--from-cases") == 0)
        ro.from_cases = TRUE;
      else if (strcmp (argv[i], "--to-queue") == 0 && i + 1 < argc)
        ro.queue = argv[++i];
      else if (strcmp (argv[i], "--to-kind") == 0 && i + 1 < argc)
        ro.kind = argv[++i];
      else if (strcmp (argv[i], "--examples") == 0 && i + 1 < argc)
        {
          /* 0 was taken for the default (3) and "x" for 0 */
          guint64 n;
          if (!ctl_flag_number ("--examples", argv[++i], 1, 1000, &n))
            {
              g_ptr_array_free (args, TRUE);
              return EX_USAGE;
            }
          ro.examples = (guint) n;
        }
      else if (strcmp (argv[i], "--json") == 0)
        json = TRUE;
      else if (strcmp (argv[i], "--raw") == 0)
        raw = TRUE;
      else if (args->len == 0 && strcmp (argv[i], "tokens") == 0)
        {
          /* tokens has options of its own (http_api_tokens_cli) */
          while (i < argc)
            g_ptr_array_add (args, argv[i++]);
        }
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
  if (maps->len > 0)
    {
      g_ptr_array_add (maps, NULL);
      ro.map = maps;
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

  /* Routing and the classifier need no key: the database only for
   * --replay and stats.  */
  if (strcmp (cmd, "rules") == 0 && g_strcmp0 (sub, "check") == 0
      && args->len <= 3)
    rc = ctl_rules_check (cfg, args->len == 3 ? args->pdata[2] : NULL);
  else if (strcmp (cmd, "rules") == 0 && g_strcmp0 (sub, "test") == 0
           && !ro.replay)
    rc = ctl_rules_test (cfg, &ro, args, json);
  else if (strcmp (cmd, "rules") == 0 && g_strcmp0 (sub, "reload") == 0
           && args->len == 2)
    rc = ctl_rules_reload (cfg);
  else if (strcmp (cmd, "classify") == 0 && !ro.from_cases
           && (g_strcmp0 (sub, "train") == 0 || g_strcmp0 (sub, "eval") == 0)
           && args->len == 3)
    rc = ctl_classify (sub, &ro, args, NULL);
  else if (strcmp (cmd, "holidays") == 0 && g_strcmp0 (sub, "import") == 0
           && args->len == 3)
    rc = ctl_holidays_import (cfg, args->pdata[2]);
  else
    rc = -1;
  if (rc != -1)
    goto out;
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
      || (strcmp (cmd, "keys") == 0 && g_strcmp0 (sub, "vault") == 0
          && args->len == 2)
      || (strcmp (cmd, "subject") == 0 && g_strcmp0 (sub, "erase") == 0
          && args->len == 3)
      || (strcmp (cmd, "subject") == 0 && g_strcmp0 (sub, "rectify") == 0
          && args->len == 3)
      || (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "texts") == 0
          && args->len == 3)
      || (strcmp (cmd, "subject") == 0
          && (g_strcmp0 (sub, "object") == 0
              || g_strcmp0 (sub, "anonymise") == 0) && args->len == 3)
      || (strcmp (cmd, "cases") == 0
          && (g_strcmp0 (sub, "hold") == 0 || g_strcmp0 (sub, "release") == 0)
          && args->len == 3)
      || (strcmp (cmd, "retention") == 0 && g_strcmp0 (sub, "run") == 0
          && args->len == 2)
      || (strcmp (cmd, "rules") == 0 && g_strcmp0 (sub, "test") == 0
          && ro.replay && args->len == 2)
      || (strcmp (cmd, "rules") == 0 && g_strcmp0 (sub, "stats") == 0
          && args->len == 2)
      || (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "route") == 0
          && args->len == 3)
      || (strcmp (cmd, "mailboxes") == 0 && args->len == 1)
      || (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "reply") == 0
          && args->len == 3)
      || (strcmp (cmd, "outbox") == 0 && args->len == 1)
      || (strcmp (cmd, "webhooks") == 0 && args->len == 1)
      || (strcmp (cmd, "subject") == 0
          && (g_strcmp0 (sub, "export") == 0
              || g_strcmp0 (sub, "restrict") == 0
              || g_strcmp0 (sub, "unrestrict") == 0) && args->len == 3)
      || (strcmp (cmd, "classify") == 0 && g_strcmp0 (sub, "train") == 0
          && ro.from_cases && args->len == 3)
      || (strcmp (cmd, "spool") == 0 && g_strcmp0 (sub, "count") == 0
          && args->len == 2)
      || (strcmp (cmd, "spool") == 0 && g_strcmp0 (sub, "keys") == 0
          && args->len == 2)
      || (strcmp (cmd, "quarantine") == 0 && g_strcmp0 (sub, "list") == 0
          && args->len == 2)
      || (strcmp (cmd, "quarantine") == 0
          && (g_strcmp0 (sub, "show") == 0 || g_strcmp0 (sub, "retry") == 0)
          && args->len == 3)
      || (strcmp (cmd, "parse") == 0 && args->len >= 2)
      || (strcmp (cmd, "tokens") == 0 && args->len >= 2);

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
  st = store_open_full (cfg->database, cfg->vault, keys, 0, &error);
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
  else if (strcmp (cmd, "keys") == 0 && g_strcmp0 (sub, "vault") == 0)
    rc = ctl_keys_vault (st);
  else if (strcmp (cmd, "keys") == 0)
    rc = ctl_keys_rotate (cfg, &keys, &st);
  else if (strcmp (cmd, "subject") == 0 && g_strcmp0 (sub, "erase") == 0)
    rc = ctl_subject_erase (st, args->pdata[2], ro.reason);
  else if (strcmp (cmd, "subject") == 0 && g_strcmp0 (sub, "rectify") == 0)
    rc = ctl_subject_rectify (st, args->pdata[2], &ro.rect);
  else if (strcmp (cmd, "subject") == 0 && g_strcmp0 (sub, "anonymise") == 0)
    rc = ctl_subject_anonymise (st, args->pdata[2]);
  else if (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "texts") == 0)
    rc = ctl_cases_texts (st, args->pdata[2]);
  else if (strcmp (cmd, "cases") == 0 && (g_strcmp0 (sub, "hold") == 0
                                          || g_strcmp0 (sub, "release") == 0))
    rc = ctl_cases_hold (st, args->pdata[2], strcmp (sub, "hold") == 0,
                         ro.reason);
  else if (strcmp (cmd, "retention") == 0)
    rc = ctl_retention_run (cfg, st, &ro);
  else if (strcmp (cmd, "rules") == 0 && g_strcmp0 (sub, "test") == 0)
    rc = ctl_rules_replay (cfg, st, &ro);
  else if (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "route") == 0)
    rc = ctl_cases_route (cfg, st, args->pdata[2], &ro);
  else if (strcmp (cmd, "mailboxes") == 0)
    rc = ctl_mailboxes (cfg, st, json);
  else if (strcmp (cmd, "cases") == 0 && g_strcmp0 (sub, "reply") == 0)
    rc = ctl_cases_reply (st, args->pdata[2], ro.file);
  else if (strcmp (cmd, "outbox") == 0)
    rc = ctl_outbox (st);
  else if (strcmp (cmd, "webhooks") == 0)
    rc = ctl_webhooks (st, json);
  else if (strcmp (cmd, "subject") == 0)
    rc = ctl_subject (cfg, st, sub, args->pdata[2], ro.out);
  else if (strcmp (cmd, "classify") == 0)
    rc = ctl_classify (sub, &ro, args, st);
  else if (strcmp (cmd, "rules") == 0)
    rc = ctl_rules_stats (cfg, st);
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
  else if (strcmp (cmd, "spool") == 0 && g_strcmp0 (sub, "keys") == 0)
    rc = ctl_spool_keys (st, json);
  else if (strcmp (cmd, "tokens") == 0)
    rc = http_api_tokens_cli (cfg, keys, st, args);
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
