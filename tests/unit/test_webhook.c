/*
 * test_webhook.c - CRM webhooks (issue 8): the signature against a vector
 * computed independently (Python's hmac), the payloads (an erasure says
 * the reference and nothing else; withheld special-category text), and the
 * events the store queues on real SQLite files: created, updated, closed,
 * re-routed to both queues, nothing for queues without a webhook or for a
 * restricted person, and department notifications in the outbox.
 */
#include <check.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "outbound/webhook.h"
#include "store/store.h"
#include "store/store_webhook.h"

static char *tmpdir;

static void
setup (void)
{
  tmpdir = g_dir_make_tmp ("intake-webhook-XXXXXX", NULL);
  ck_assert_ptr_nonnull (tmpdir);
}

static void
teardown (void)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);
  ck_assert_int_eq (system (cmd), 0);
  g_clear_pointer (&tmpdir, g_free);
}

START_TEST (test_signature_vector)
{
  /* python3: hmac.new(b"key-0123456789abcdef", b'1700000000.{"a":1}',
   * hashlib.sha256).hexdigest() */
  static const char body[] = "{\"a\":1}";
  char sig[WEBHOOK_SIGNATURE_MAX];

  webhook_sign ((const guint8 *) "key-0123456789abcdef", 20, "1700000000",
                body, strlen (body), sig);
  ck_assert_str_eq (sig, "sha256=8a091117e0b1ccf5034d0d8c06ab42b2"
                         "9a4451a72f95b56f22afaf6bfb7af0d3");
  /* one byte of body or timestamp more: another signature */
  webhook_sign ((const guint8 *) "key-0123456789abcdef", 20, "1700000001",
                body, strlen (body), sig);
  ck_assert_str_ne (sig, "sha256=8a091117e0b1ccf5034d0d8c06ab42b2"
                         "9a4451a72f95b56f22afaf6bfb7af0d3");
}
END_TEST

static JsonObject *
parse (const char *text, JsonParser **p)
{
  *p = json_parser_new ();
  ck_assert (json_parser_load_from_data (*p, text, -1, NULL));
  return json_node_get_object (json_parser_get_root (*p));
}

START_TEST (test_payloads)
{
  store_webhook_item it = { .id = 7, .event = (char *) "case.erased",
                            .ref = (char *) "ESC-2026-000001-M",
                            .queue = (char *) "housing",
                            .kind = (char *) "complaint",
                            .status = (char *) "closed",
                            .created_at = 1790000000LL * G_USEC_PER_SEC };
  webhook_message m = { "ann@example.org", "Ann", "Damp", "Flat 4", FALSE };
  g_autofree char *erased = webhook_payload (&it, &m);
  g_autoptr (JsonParser) p = NULL;
  g_autoptr (JsonParser) p2 = NULL;
  JsonObject *o = parse (erased, &p);
  JsonObject *c = json_object_get_object_member (o, "case");
  g_autofree char *full = NULL;

  /* the reference, that it is erased, and nothing about anyone */
  ck_assert_int_eq (json_object_get_size (o), 4);
  ck_assert_int_eq (json_object_get_int_member (o, "id"), 7);
  ck_assert_str_eq (json_object_get_string_member (o, "event"),
                    "case.erased");
  ck_assert_int_eq (json_object_get_size (c), 2);
  ck_assert_str_eq (json_object_get_string_member (c, "ref"),
                    "ESC-2026-000001-M");
  ck_assert (json_object_get_boolean_member (c, "erased"));
  ck_assert_ptr_null (strstr (erased, "ann"));
  ck_assert_ptr_null (strstr (erased, "complaint"));

  it.event = (char *) "case.created";
  m.withheld = TRUE;
  full = webhook_payload (&it, &m);
  o = parse (full, &p2);
  c = json_object_get_object_member (o, "case");
  ck_assert_str_eq (json_object_get_string_member (c, "kind"), "complaint");
  ck_assert_str_eq (json_object_get_string_member (o, "occurred_at"),
                    "2026-09-21T14:13:20Z");
  o = json_object_get_object_member (o, "message");
  ck_assert (json_object_get_boolean_member (o, "withheld"));
  ck_assert (!json_object_has_member (o, "text"));
  ck_assert (!json_object_has_member (o, "subject"));
}
END_TEST

/* ------------------------------------------------------------ store */

typedef struct {
  GMutex lock;
  GCond cond;
  int done;
  gint64 id;
  GError *error;
} waiter;

static void
waiter_done (gint64 id, const GError *error, gpointer data)
{
  waiter *w = data;

  g_mutex_lock (&w->lock);
  w->done++;
  w->id = id;
  if (error)
    w->error = g_error_copy (error);
  g_cond_signal (&w->cond);
  g_mutex_unlock (&w->lock);
}

static void
waiter_wait (waiter *w)
{
  g_mutex_lock (&w->lock);
  while (w->done == 0)
    g_cond_wait (&w->cond, &w->lock);
  w->done = 0;
  g_mutex_unlock (&w->lock);
  ck_assert_msg (w->error == NULL, "%s", w->error ? w->error->message : "");
}

static store_envelope *
make_env (const char *from)
{
  store_envelope *env = store_envelope_new ();

  env->source = g_strdup ("smtp");
  env->client_addr = g_strdup ("192.0.2.1");
  env->helo = g_strdup ("client.example");
  env->mail_from = g_strdup (from);
  g_ptr_array_add (env->rcpts, g_strdup ("enquiries@council.example"));
  env->received_at = g_get_real_time ();
  return env;
}

/* File one new message from @from into @queue; the case id.  */
static gint64
file_mail (store *st, const char *from, const char *queue, const char *body,
           gboolean auto_reply)
{
  waiter w = { 0 };
  g_autofree char *text = g_strdup_printf ("From: %s\r\n\r\n%s\r\n", from,
                                           body);
  GBytes *raw = g_bytes_new (text, strlen (text));
  store_ingest *in = store_ingest_new ();

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  store_spool_submit (st, make_env (from), g_bytes_ref (raw), waiter_done,
                      &w);
  waiter_wait (&w);
  in->spool_id = w.id;
  in->env = make_env (from);
  in->raw = raw;
  in->from_addr = g_strdup (from);
  in->subject = g_strdup ("private subject line");
  in->text = g_strdup (body);
  in->queue = g_strdup (queue);
  in->kind = g_strdup ("enquiry");
  in->ref_prefix = g_strdup ("ESC");
  in->auto_reply = auto_reply;
  store_ingest_submit (st, in, waiter_done, &w);
  waiter_wait (&w);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
  return w.id;
}

static GPtrArray *
events (store *st)
{
  g_autoptr (GError) error = NULL;
  GPtrArray *log = store_webhook_log (st, 0, &error);

  ck_assert_msg (log != NULL, "%s", error ? error->message : "");
  return log;
}

static const store_webhook_item *
event_at (GPtrArray *log, guint newest_first)
{
  ck_assert_uint_gt (log->len, newest_first);
  return log->pdata[newest_first];
}

static char *
ref_of (store *st, gint64 id)
{
  g_autoptr (GPtrArray) all = store_case_list (st, NULL);

  for (guint i = 0; i < all->len; i++)
    {
      store_case_view *v = all->pdata[i];
      if (v->id == id)
        return g_strdup (v->ref);
    }
  ck_abort_msg ("no case");
  return NULL;
}

static gint64
outbox_notify_count (store *st, const char *queue)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) due = store_outbox_due (st, 100, &error);
  gint64 n = 0;

  ck_assert_ptr_nonnull (due);
  for (guint i = 0; i < due->len; i++)
    {
      const store_outbox_item *it = due->pdata[i];
      if (g_strcmp0 (it->kind, "notify") == 0
          && g_strcmp0 (it->queue, queue) == 0)
        n++;
    }
  return n;
}

START_TEST (test_store_events)
{
  g_autofree char *kpath = g_build_filename (tmpdir, "master.key", NULL);
  g_autofree char *dpath = g_build_filename (tmpdir, "intake.db", NULL);
  g_autoptr (GError) error = NULL;
  const char *hooks[] = { "general", "housing", NULL };
  const char *notify[] = { "housing", NULL };
  const char *digest[] = { "parks", NULL };
  store_keys *keys;
  store *st;
  gint64 a, b;
  g_autofree char *ref = NULL;

  ck_assert (store_keys_generate (kpath, &error));
  keys = store_keys_load (kpath, &error);
  ck_assert_ptr_nonnull (keys);
  st = store_open (dpath, keys, STORE_OPEN_WRITER, &error);
  ck_assert_msg (st != NULL, "%s", error ? error->message : "");
  ck_assert (store_webhook_queues_set (st, hooks, notify, digest, &error));

  /* a queue without a webhook: nothing; with an hourly digest: its
   * notification waits for the next full hour */
  file_mail (st, "x@example.org", "parks", "about a bench", FALSE);
  {
    g_autoptr (GPtrArray) log = events (st);
    g_autofree char *db = g_build_filename (tmpdir, "intake.db", NULL);
    sqlite3 *raw;
    sqlite3_stmt *q;
    gint64 now = g_get_real_time ();
    ck_assert_uint_eq (log->len, 0);
    ck_assert_int_eq (outbox_notify_count (st, "parks"), 0);
    ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
    ck_assert_int_eq (sqlite3_prepare_v2 (raw, "SELECT next_at FROM outbox"
                                          " WHERE kind = 'notify'", -1, &q,
                                          NULL), SQLITE_OK);
    ck_assert_int_eq (sqlite3_step (q), SQLITE_ROW);
    ck_assert_int_eq (sqlite3_column_int64 (q, 0) % ((gint64) 3600 * G_USEC_PER_SEC),
                      0);
    ck_assert_int_gt (sqlite3_column_int64 (q, 0), now);
    ck_assert_int_le (sqlite3_column_int64 (q, 0),
                      now + (gint64) 3600 * G_USEC_PER_SEC);
    sqlite3_finalize (q);
    sqlite3_close (raw);
  }
  a = file_mail (st, "ann@example.org", "general", "about my bins", FALSE);
  ref = ref_of (st, a);
  {
    g_autoptr (GPtrArray) log = events (st);
    const store_webhook_item *e = event_at (log, 0);
    ck_assert_uint_eq (log->len, 1);
    ck_assert_str_eq (e->event, STORE_WEBHOOK_CREATED);
    ck_assert_str_eq (e->ref, ref);
    ck_assert_str_eq (e->hook, "general");
    ck_assert_str_eq (e->state, "queued");
    ck_assert_int_gt (e->message_id, 0);
  }
  /* no department notification for general (none configured) */
  ck_assert_int_eq (outbox_notify_count (st, "general"), 0);
  ck_assert (store_case_set_status (st, ref, "assigned", "test", &error));
  ck_assert (store_case_reroute (st, ref, "housing", NULL, "test", &error));
  ck_assert (store_case_set_status (st, ref, "resolved", "test", &error));
  ck_assert (store_case_set_status (st, ref, "closed", "test", &error));
  {
    g_autoptr (GPtrArray) log = events (st);
    /* newest first: closed, resolved, routing (two webhooks), assigned,
     * created */
    ck_assert_uint_eq (log->len, 6);
    ck_assert_str_eq (event_at (log, 0)->event, STORE_WEBHOOK_CLOSED);
    ck_assert_str_eq (event_at (log, 0)->hook, "housing");
    ck_assert_str_eq (event_at (log, 1)->event, STORE_WEBHOOK_UPDATED);
    ck_assert_str_eq (event_at (log, 1)->status, "resolved");
    ck_assert_str_eq (event_at (log, 2)->change, "routing");
    ck_assert_str_eq (event_at (log, 3)->change, "routing");
    ck_assert_str_eq (event_at (log, 2)->previous_queue, "general");
    ck_assert_str_eq (event_at (log, 2)->queue, "housing");
    ck_assert_str_eq (event_at (log, 4)->status, "assigned");
  }
  /* re-routed into housing: its department is told */
  ck_assert_int_eq (outbox_notify_count (st, "housing"), 1);

  /* a new case in housing is announced; an automatic reply is not */
  file_mail (st, "bo@example.org", "housing", "damp", FALSE);
  file_mail (st, "robot@example.org", "housing", "out of office", TRUE);
  ck_assert_int_eq (outbox_notify_count (st, "housing"), 2);

  /* a restricted person: nothing shared, nobody notified */
  b = file_mail (st, "rae@example.org", "housing", "first", FALSE);
  ck_assert_int_eq (outbox_notify_count (st, "housing"), 3);
  {
    g_autoptr (GPtrArray) log = events (st);
    guint before = log->len;
    store_subject_view *v = store_subject_find (st, "rae@example.org",
                                                &error);
    ck_assert_ptr_nonnull (v);
    ck_assert (store_subject_restrict (st, v->id, TRUE, "test", &error));
    store_subject_view_free (v);
    file_mail (st, "rae@example.org", "housing", "second", FALSE);
    g_ptr_array_unref (log);
    log = events (st);
    ck_assert_uint_eq (log->len, before);
    ck_assert_int_eq (outbox_notify_count (st, "housing"), 3);
    log = (g_ptr_array_unref (log), NULL);
  }

  /* an erasure: the waiting events of the case are dropped; one event per
   * webhook that heard of the case, the reference only */
  {
    g_autofree char *bref = ref_of (st, b);
    g_autoptr (GPtrArray) log = NULL;
    guint erased = 0, queued_b = 0;
    ck_assert (!store_webhook_erased (st, "ESC-2026-999999-X", NULL));
    ck_assert (store_webhook_erased (st, ref, &error));
    ck_assert (store_webhook_erased (st, bref, &error));
    log = events (st);
    for (guint i = 0; i < log->len; i++)
      {
        const store_webhook_item *e = log->pdata[i];
        if (g_strcmp0 (e->event, STORE_WEBHOOK_ERASED) == 0)
          {
            erased++;
            ck_assert_ptr_null (e->kind);
            ck_assert_ptr_null (e->status);
            ck_assert_str_eq (e->state, "queued");
          }
        else if (e->case_id == a || e->case_id == b)
          ck_assert_str_ne (e->state, "queued");
        if (e->case_id == b && g_strcmp0 (e->state, "queued") == 0)
          queued_b++;
      }
    /* case a: general and housing heard of it; case b: housing only */
    ck_assert_uint_eq (erased, 3);
    ck_assert_uint_eq (queued_b, 1);
    {
      g_autoptr (GPtrArray) due = store_webhook_due (st, 100, &error);
      for (guint i = 0; i < due->len; i++)
        {
          const store_webhook_item *e = due->pdata[i];
          if (g_strcmp0 (e->event, STORE_WEBHOOK_ERASED) == 0)
            store_webhook_done (st, e->id, TRUE, 0, FALSE, FALSE, 200, NULL,
                                &error);
        }
    }
  }

  /* delivered and failed are recorded; a dropped event is not retried */
  {
    g_autoptr (GPtrArray) due = store_webhook_due (st, 100, &error);
    const store_webhook_item *e;
    ck_assert_ptr_nonnull (due);
    ck_assert_uint_ge (due->len, 2);
    e = due->pdata[0];
    ck_assert (store_webhook_done (st, e->id, TRUE, 0, FALSE, FALSE, 204,
                                   NULL, &error));
    ck_assert (!store_webhook_done (st, e->id, TRUE, 0, FALSE, FALSE, 204,
                                    NULL, NULL));
    e = due->pdata[1];
    ck_assert (store_webhook_done (st, e->id, FALSE, 0, FALSE, TRUE, 0,
                                   "no webhook", &error));
  }
  {
    g_autoptr (GPtrArray) due = store_webhook_due (st, 100, &error);
    g_autoptr (GPtrArray) log = events (st);
    guint queued = 0;
    for (guint i = 0; i < log->len; i++)
      queued += g_strcmp0 (((store_webhook_item *) log->pdata[i])->state,
                           "queued") == 0;
    ck_assert_uint_eq (due->len, queued);
    /* the log forgets finished events, never waiting ones */
    ck_assert_int_eq (store_webhook_prune (st, 0, &error), 0);
    ck_assert_int_eq (store_webhook_prune (st, g_get_real_time () + 1,
                                           &error), log->len - queued);
    g_ptr_array_unref (log);
    log = events (st);
    ck_assert_uint_eq (log->len, queued);
  }
  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

static Suite *
webhook_suite (void)
{
  Suite *s = suite_create ("webhook");
  TCase *tc = tcase_create ("webhook");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_signature_vector);
  tcase_add_test (tc, test_payloads);
  tcase_add_test (tc, test_store_events);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (webhook_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
