/*
 * test_cases.c - the case store (issue 4) on real SQLite files: threading,
 * participants and links, duplicates, attachments, status transitions,
 * the audit chain against edits, deletions and reordering, key rotation,
 * and ciphertexts that are moved or flipped failing closed.
 */
#include <check.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "store/store.h"

static char *tmpdir;

static void
setup (void)
{
  tmpdir = g_dir_make_tmp ("intake-cases-XXXXXX", NULL);
  ck_assert_ptr_nonnull (tmpdir);
}

static void
teardown (void)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);
  ck_assert_int_eq (system (cmd), 0);
  g_clear_pointer (&tmpdir, g_free);
}

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static store_keys *
load_keys (void)
{
  g_autofree char *path = tmp_path ("master.key");
  GError *error = NULL;
  store_keys *keys;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    ck_assert (store_keys_generate (path, &error));
  keys = store_keys_load (path, &error);
  ck_assert_msg (keys != NULL, "%s", error ? error->message : "");
  return keys;
}

static store *
open_store (store_keys *keys)
{
  g_autofree char *db = tmp_path ("intake.db");
  g_autoptr (GError) error = NULL;
  store *st = store_open (db, keys, STORE_OPEN_WRITER, &error);

  ck_assert_msg (st != NULL, "%s", error ? error->message : "");
  return st;
}

/* Raw SQL on the database file, as an attacker with the file would.  */
static void
raw_sql (const char *sql)
{
  g_autofree char *db = tmp_path ("intake.db");
  sqlite3 *raw;
  char *err = NULL;

  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  sqlite3_busy_timeout (raw, 5000);
  ck_assert_msg (sqlite3_exec (raw, sql, NULL, NULL, &err) == SQLITE_OK,
                 "%s: %s", sql, err ? err : "");
  sqlite3_close (raw);
}

static gint64
raw_int (const char *sql)
{
  g_autofree char *db = tmp_path ("intake.db");
  sqlite3 *raw;
  sqlite3_stmt *q;
  gint64 v = -1;

  ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
  ck_assert_int_eq (sqlite3_prepare_v2 (raw, sql, -1, &q, NULL), SQLITE_OK);
  if (sqlite3_step (q) == SQLITE_ROW)
    v = sqlite3_column_int64 (q, 0);
  sqlite3_finalize (q);
  sqlite3_close (raw);
  return v;
}

/* ------------------------------------------------------ filing mail */

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
  g_clear_error (&w->error);
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
}

typedef struct {
  const char *from;
  const char *message_id;
  const char *in_reply_to;
  const char *references;    /* one Message-ID */
  const char *ref;           /* a case reference found in the subject */
  const char *body;          /* makes the bytes unique */
  gboolean with_attachment;
  const char *reasons;       /* routing reasons JSON, or NULL */
} mail;

static store_envelope *
make_env (const char *from)
{
  store_envelope *env = store_envelope_new ();

  env->source = g_strdup ("smtp");
  env->client_addr = g_strdup ("192.0.2.1");
  env->helo = g_strdup ("client.example");
  env->mail_from = g_strdup (from);
  g_ptr_array_add (env->rcpts, g_strdup ("enquiries@council.example"));
  env->received_at = 1790000000LL * G_USEC_PER_SEC;
  return env;
}

/* Spool and file one message; the case id it went to.  */
static gint64
file_mail (store *st, const mail *m)
{
  waiter w = { 0 };
  g_autofree char *text = g_strdup_printf ("From: %s\r\nMessage-ID: <%s>\r\n"
                                           "\r\n%s\r\n", m->from,
                                           m->message_id, m->body);
  GBytes *raw = g_bytes_new (text, strlen (text));
  store_ingest *in = store_ingest_new ();
  gint64 spool_id, case_id;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  store_spool_submit (st, make_env (m->from), g_bytes_ref (raw), waiter_done,
                      &w);
  waiter_wait (&w);
  ck_assert_ptr_null (w.error);
  spool_id = w.id;

  in->spool_id = spool_id;
  in->env = make_env (m->from);
  in->raw = raw;
  in->from_addr = g_strdup (m->from);
  in->from_name = g_strdup ("A Person");
  in->subject = g_strdup ("about my bins");
  in->message_id = g_strdup (m->message_id);
  in->in_reply_to = g_strdup (m->in_reply_to);
  if (m->references)
    g_ptr_array_add (in->references, g_strdup (m->references));
  if (m->ref)
    g_ptr_array_add (in->case_refs, g_strdup (m->ref));
  in->text = g_strdup (m->body);
  in->queue = g_strdup ("general");
  in->kind = g_strdup ("enquiry");
  in->reasons = g_strdup (m->reasons);
  in->ref_prefix = g_strdup ("ESC");
  if (m->with_attachment)
    {
      store_attachment *a = store_attachment_new ();
      a->name = g_strdup ("photo of the bin.jpg");
      a->declared_type = g_strdup ("image/jpeg");
      a->detected_type = g_strdup ("image/jpeg");
      memcpy (a->sha256, "ab", 3);
      a->content = g_bytes_new_static ("JPEG-BYTES-PRIVATE", 18);
      g_ptr_array_add (in->attachments, a);
    }
  store_ingest_submit (st, in, waiter_done, &w);
  waiter_wait (&w);
  ck_assert_msg (w.error == NULL, "%s", w.error ? w.error->message : "");
  case_id = w.id;
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
  return case_id;
}

static store_case_view *
case_by_id (store *st, gint64 id)
{
  g_autoptr (GPtrArray) all = store_case_list (st, NULL);

  for (guint i = 0; i < all->len; i++)
    {
      store_case_view *v = all->pdata[i];
      if (v->id == id)
        return store_case_get (st, v->ref, NULL, NULL);
    }
  ck_abort_msg ("no case %" G_GINT64_FORMAT, id);
  return NULL;
}

static char *
ref_of (store *st, gint64 id)
{
  store_case_view *v = case_by_id (st, id);
  char *ref = g_strdup (v->ref);

  store_case_view_free (v);
  return ref;
}

static gboolean
linked (store *st, gint64 case_id, const char *other_ref)
{
  g_autoptr (GPtrArray) links = NULL;

  ck_assert (store_case_details (st, case_id, &links, NULL, NULL, NULL));
  for (guint i = 0; i < links->len; i++)
    if (strcmp (((store_case_link *) links->pdata[i])->ref, other_ref) == 0)
      return TRUE;
  return FALSE;
}

START_TEST (test_threading_table)
{
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  gint64 c1, c;
  g_autofree char *r1 = NULL;
  g_autoptr (GPtrArray) msgs = NULL;
  store_case_view *v;

  c1 = file_mail (st, &(mail){ "alice@example.org", "a1@example.org", NULL,
                               NULL, NULL, "first", FALSE });
  r1 = ref_of (st, c1);

  /* reply with the reference, same person: same case */
  c = file_mail (st, &(mail){ "Alice@Example.org", "a2@example.org", NULL,
                              NULL, r1, "second", FALSE });
  ck_assert_int_eq (c, c1);
  /* In-Reply-To names a message of the case, same person: same case */
  c = file_mail (st, &(mail){ "alice@example.org", "a3@example.org",
                              "a1@example.org", NULL, NULL, "third", FALSE });
  ck_assert_int_eq (c, c1);
  /* References only */
  c = file_mail (st, &(mail){ "alice@example.org", "a4@example.org", NULL,
                              "a2@example.org", NULL, "fourth", FALSE });
  ck_assert_int_eq (c, c1);

  /* a stranger quoting Alice's reference: a new case, linked */
  c = file_mail (st, &(mail){ "mallory@example.net", "m1@example.net", NULL,
                              NULL, r1, "stranger", FALSE });
  ck_assert_int_ne (c, c1);
  ck_assert (linked (st, c, r1));
  /* a stranger replying to Alice's Message-ID: new case, linked */
  c = file_mail (st, &(mail){ "mallory@example.net", "m2@example.net",
                              "a1@example.org", NULL, NULL, "stranger 2",
                              FALSE });
  ck_assert_int_ne (c, c1);
  ck_assert (linked (st, c, r1));

  /* forwarded by Alice without references: a new case, not linked */
  c = file_mail (st, &(mail){ "alice@example.org", "a5@example.org", NULL,
                              NULL, NULL, "forwarded", FALSE });
  ck_assert_int_ne (c, c1);
  ck_assert (!linked (st, c, r1));

  /* a reference with a wrong check character is no reference */
  {
    g_autofree char *bad = g_strdup (r1);
    bad[strlen (bad) - 1] = bad[strlen (bad) - 1] == 'A' ? 'B' : 'A';
    c = file_mail (st, &(mail){ "alice@example.org", "a6@example.org", NULL,
                                NULL, bad, "bad ref", FALSE });
    ck_assert_int_ne (c, c1);
  }

  /* the same Message-ID from Alice again (other bytes): one record */
  c = file_mail (st, &(mail){ "alice@example.org", "a1@example.org", NULL,
                              NULL, NULL, "first, relayed again", FALSE });
  ck_assert_int_eq (c, c1);
  v = store_case_get (st, r1, &msgs, NULL);
  ck_assert_uint_eq (msgs->len, 4);
  ck_assert_uint_eq (((store_message_view *) msgs->pdata[0])->arrivals, 2);
  ck_assert_str_eq (((store_message_view *) msgs->pdata[1])->thread_by,
                    "reference");
  ck_assert_str_eq (((store_message_view *) msgs->pdata[2])->thread_by,
                    "in-reply-to");
  store_case_view_free (v);
  /* the same Message-ID from someone else is not trusted as a copy */
  c = file_mail (st, &(mail){ "mallory@example.net", "a1@example.org", NULL,
                              NULL, NULL, "spoofed id", FALSE });
  ck_assert_int_ne (c, c1);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM messages"), 9);

  /* waiting for the citizen: the reply puts it back to assigned */
  ck_assert (store_case_set_status (st, r1, "assigned", "test", NULL));
  ck_assert (store_case_set_status (st, r1, "waiting", "test", NULL));
  c = file_mail (st, &(mail){ "alice@example.org", "a7@example.org", NULL,
                              NULL, r1, "answer", FALSE });
  ck_assert_int_eq (c, c1);
  v = case_by_id (st, c1);
  ck_assert_str_eq (v->status, "assigned");
  store_case_view_free (v);

  /* a closed case is not reopened by mail: new case, linked */
  ck_assert (store_case_set_status (st, r1, "resolved", "test", NULL));
  ck_assert (store_case_set_status (st, r1, "closed", "test", NULL));
  c = file_mail (st, &(mail){ "alice@example.org", "a8@example.org", NULL,
                              NULL, r1, "after closing", FALSE });
  ck_assert_int_ne (c, c1);
  ck_assert (linked (st, c, r1));

  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_participants_and_subjects)
{
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) people = NULL;
  store_subject_view *sv;
  gint64 c1;

  c1 = file_mail (st, &(mail){ "bob@example.org", "b1@example.org", NULL,
                               NULL, NULL, "hello", FALSE });
  file_mail (st, &(mail){ "bob@example.org", "b2@example.org", NULL, NULL,
                          NULL, "another matter", FALSE });
  ck_assert (store_case_details (st, c1, NULL, &people, NULL, NULL));
  ck_assert_uint_eq (people->len, 1);
  ck_assert_str_eq (((store_participant_view *) people->pdata[0])->addr,
                    "bob@example.org");
  ck_assert_str_eq (((store_participant_view *) people->pdata[0])->role,
                    "requester");

  sv = store_subject_find (st, "BOB@example.org", &error);
  ck_assert_ptr_nonnull (sv);
  ck_assert_str_eq (sv->addr, "bob@example.org");
  ck_assert_str_eq (sv->name, "A Person");
  ck_assert_uint_eq (sv->case_refs->len, 2);
  store_subject_view_free (sv);
  ck_assert_ptr_null (store_subject_find (st, "nobody@example.org", &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND));

  /* filters */
  {
    store_case_filter f = { .queue = "general", .limit = 1 };
    g_autoptr (GPtrArray) page = store_case_find (st, &f, NULL);
    ck_assert_uint_eq (page->len, 1);
    f.queue = "housing";
    f.limit = 0;
    g_autoptr (GPtrArray) none = store_case_find (st, &f, NULL);
    ck_assert_uint_eq (none->len, 0);
    store_case_filter g = { .status = "new", .kind = "enquiry" };
    g_autoptr (GPtrArray) all = store_case_find (st, &g, NULL);
    ck_assert_uint_eq (all->len, 2);
  }
  /* a tag of the routing reasons: only the cases whose "tags" hold it;
   * reasons that are not JSON, or have no tags, never fail the list */
  {
    gint64 tagged, other;
    store_case_filter f = { .tag = "possible-request" };
    g_autoptr (GPtrArray) none = NULL;

    g_clear_error (&error);
    none = store_case_find (st, &f, &error);

    ck_assert_ptr_nonnull (none);
    ck_assert_uint_eq (none->len, 0);
    tagged = file_mail (st, &(mail){ "cat@example.org", "c1@example.org",
                                     NULL, NULL, NULL, "figures please",
                                     FALSE, "{\"rule\":\"default\",\"tags\":"
                                     "[\"automatic\",\"possible-request\"]}" });
    other = file_mail (st, &(mail){ "dan@example.org", "d1@example.org",
                                    NULL, NULL, NULL, "a pothole", FALSE,
                                    "{\"rule\":\"x\",\"tags\":"
                                    "[\"possible-requests\"],"
                                    "\"note\":\"possible-request\"}" });
    file_mail (st, &(mail){ "eve@example.org", "e1@example.org", NULL, NULL,
                            NULL, "not json", FALSE, "{not json" });
    g_autoptr (GPtrArray) one = store_case_find (st, &f, &error);
    ck_assert_msg (one != NULL, "%s", error ? error->message : "");
    ck_assert_uint_eq (one->len, 1);
    ck_assert_int_eq (((store_case_view *) one->pdata[0])->id, tagged);
    f.tag = "possible-requests";
    g_autoptr (GPtrArray) two = store_case_find (st, &f, NULL);
    ck_assert_uint_eq (two->len, 1);
    ck_assert_int_eq (((store_case_view *) two->pdata[0])->id, other);
    f.queue = "general";
    f.tag = "automatic";
    g_autoptr (GPtrArray) three = store_case_find (st, &f, NULL);
    ck_assert_uint_eq (three->len, 1);
    f.queue = "housing";
    g_autoptr (GPtrArray) four = store_case_find (st, &f, NULL);
    ck_assert_uint_eq (four->len, 0);
  }
  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

/* More people on one list than a read's key cache holds (256 keys, least
 * recently used out): every row still opens with its own person's key;
 * a brief list (the API's) leaves the name and Message-ID unopened; a
 * queue's pages, by the (queue, id) index, hold that queue's cases only,
 * each once, newest first.  */
#define MANY_PEOPLE 300

static guint
number_after (const char *s, char lead)
{
  ck_assert_ptr_nonnull (s);
  ck_assert_int_eq (s[0], lead);
  return (guint) g_ascii_strtoull (s + 1, NULL, 10);
}

START_TEST (test_case_find_many_people)
{
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < MANY_PEOPLE; i++)
    {
      g_autofree char *from = g_strdup_printf ("p%03u@example.org", i);
      g_autofree char *mid = g_strdup_printf ("m%03u@example.org", i);
      g_autofree char *body = g_strdup_printf ("bins %u", i);
      file_mail (st, &(mail){ from, mid, NULL, NULL, NULL, body, FALSE });
    }
  raw_sql ("UPDATE cases SET queue = 'housing' WHERE id % 3 = 0");

  for (int brief = 0; brief <= 1; brief++)
    {
      store_case_filter f = { .brief = brief };
      g_autoptr (GPtrArray) all = store_case_find (st, &f, &error);

      ck_assert_msg (all != NULL, "%s", error ? error->message : "");
      ck_assert_uint_eq (all->len, MANY_PEOPLE);
      for (guint i = 0; i < all->len; i++)
        {
          store_case_view *v = all->pdata[i];
          guint n = number_after (v->from_addr, 'p');
          ck_assert_str_eq (v->subject, "about my bins");
          if (brief)
            {
              ck_assert_ptr_null (v->from_name);
              ck_assert_ptr_null (v->message_id);
            }
          else
            {
              ck_assert_str_eq (v->from_name, "A Person");
              ck_assert_uint_eq (number_after (v->message_id, 'm'), n);
            }
        }
    }

  /* a queue page by page, twice round the cache */
  for (int round = 0; round < 2; round++)
    {
      const char *queues[] = { "housing", "general" };
      for (guint q = 0; q < G_N_ELEMENTS (queues); q++)
        {
          store_case_filter f = { .queue = queues[q], .limit = 7,
                                  .brief = TRUE };
          gint64 last = G_MAXINT64;
          guint seen = 0;

          for (;;)
            {
              g_autoptr (GPtrArray) page = store_case_find (st, &f, &error);
              ck_assert_msg (page != NULL, "%s",
                             error ? error->message : "");
              for (guint i = 0; i < page->len; i++)
                {
                  store_case_view *v = page->pdata[i];
                  ck_assert_str_eq (v->queue, queues[q]);
                  ck_assert_int_lt (v->id, last);
                  ck_assert_int_eq (v->id % 3 == 0, q == 0);
                  last = v->id;
                  number_after (v->from_addr, 'p');
                }
              seen += page->len;
              if (page->len < f.limit)
                break;
              f.before_id = last;
            }
          ck_assert_uint_eq (seen, q == 0 ? MANY_PEOPLE / 3
                                          : MANY_PEOPLE - MANY_PEOPLE / 3);
        }
    }
  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_attachments_sealed)
{
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  g_autoptr (GPtrArray) atts = NULL;
  g_autoptr (GBytes) content = NULL;
  g_autoptr (GError) error = NULL;
  store_attachment_view *a;
  gint64 c1, mid;

  c1 = file_mail (st, &(mail){ "carol@example.org", "c1@example.org", NULL,
                               NULL, NULL, "see photo", TRUE });
  ck_assert (store_case_details (st, c1, NULL, NULL, &atts, NULL));
  ck_assert_uint_eq (atts->len, 1);
  a = atts->pdata[0];
  ck_assert_str_eq (a->name, "photo of the bin.jpg");
  ck_assert_str_eq (a->detected_type, "image/jpeg");
  ck_assert_uint_eq (a->size, 18);
  mid = a->message_id;
  content = store_attachment_content (st, mid, 0, &error);
  ck_assert_ptr_nonnull (content);
  ck_assert_uint_eq (g_bytes_get_size (content), 18);
  ck_assert_ptr_null (store_attachment_content (st, mid, 1, NULL));
  store_close (&st);

  /* neither the name nor the content is readable in the file */
  {
    g_autofree char *db = tmp_path ("intake.db");
    g_autofree char *data = NULL;
    gsize len = 0;
    ck_assert (g_file_get_contents (db, &data, &len, NULL));
    ck_assert_ptr_null (memmem (data, len, "photo of the bin", 16));
    ck_assert_ptr_null (memmem (data, len, "JPEG-BYTES-PRIVATE", 18));
    ck_assert_ptr_null (memmem (data, len, "carol@", 6));
  }
  store_keys_free (&keys);
}
END_TEST

START_TEST (test_status_transitions)
{
  static const char *const all[] = { "new", "assigned", "waiting",
                                     "resolved", "closed" };
  static const char *const ok[][2] = {
    { "new", "assigned" }, { "new", "resolved" }, { "new", "closed" },
    { "assigned", "new" }, { "assigned", "waiting" },
    { "assigned", "resolved" }, { "waiting", "assigned" },
    { "waiting", "resolved" }, { "resolved", "assigned" },
    { "resolved", "closed" },
  };
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  g_autoptr (GError) error = NULL;
  g_autofree char *ref = NULL;
  guint n_ok = 0;

  /* the whole table: exactly the listed transitions are allowed */
  for (guint i = 0; i < G_N_ELEMENTS (all); i++)
    for (guint j = 0; j < G_N_ELEMENTS (all); j++)
      {
        gboolean want = FALSE;
        for (guint k = 0; k < G_N_ELEMENTS (ok); k++)
          want |= strcmp (ok[k][0], all[i]) == 0
                  && strcmp (ok[k][1], all[j]) == 0;
        ck_assert_msg (store_status_allowed (all[i], all[j]) == want,
                       "%s -> %s", all[i], all[j]);
        n_ok += want;
      }
  ck_assert_uint_eq (n_ok, G_N_ELEMENTS (ok));
  ck_assert (!store_status_allowed ("new", "bogus"));

  ref = ref_of (st, file_mail (st, &(mail){ "dan@example.org",
                                            "d1@example.org", NULL, NULL,
                                            NULL, "x", FALSE }));
  ck_assert (!store_case_set_status (st, ref, "waiting", "test", &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_STATE));
  g_clear_error (&error);
  ck_assert (!store_case_set_status (st, "ESC-2026-999999-A", "closed",
                                     "test", &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_NOT_FOUND));
  ck_assert (store_case_set_status (st, ref, "closed", "test", NULL));
  ck_assert (!store_case_set_status (st, ref, "assigned", "test", NULL));
  store_close (&st);
  /* the refused change is audited as refused, the accepted one as ok */
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM audit WHERE action ="
                             " 'case.status' AND outcome = 'refused'"), 2);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM audit WHERE action ="
                             " 'case.status' AND outcome = 'ok'"), 1);
  ck_assert_int_eq (raw_int ("SELECT closed_at > 0 FROM cases"), 1);
  store_keys_free (&keys);
}
END_TEST

/* --------------------------------------------------------------- audit */

static gint64
verify (store_keys *keys)
{
  store *st = open_store (keys);
  store_audit_report r;
  gint64 bad;

  ck_assert (store_audit_verify (st, &r, NULL));
  bad = r.first_bad;
  store_audit_report_clear (&r);
  store_close (&st);
  return bad;
}

START_TEST (test_audit_chain_tamper)
{
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  g_autofree char *db = tmp_path ("intake.db");
  g_autofree char *copy = tmp_path ("pristine.db");
  g_autofree char *cmd = NULL;
  store_audit_report r;

  for (int i = 0; i < 6; i++)
    ck_assert (store_audit_record (st, "test", "case.read", "ESC-X",
                                   i % 2 ? "n=1" : "n=2", "ok", NULL));
  ck_assert (store_audit_verify (st, &r, NULL));
  ck_assert_int_eq (r.first_bad, 0);
  ck_assert_int_eq (r.events, 6);
  store_audit_report_clear (&r);
  store_close (&st);
  raw_sql ("PRAGMA wal_checkpoint(TRUNCATE)");
  cmd = g_strdup_printf ("cp '%s' '%s'", db, copy);
  ck_assert_int_eq (system (cmd), 0);
  g_free (cmd);
  cmd = g_strdup_printf ("cp '%s' '%s' && rm -f '%s-wal' '%s-shm'", copy, db,
                         db, db);

#define RESTORE() ck_assert_int_eq (system (cmd), 0)
  /* an edited field */
  raw_sql ("UPDATE audit SET detail = 'n=9' WHERE id = 3");
  ck_assert_int_eq (verify (keys), 3);
  RESTORE ();
  raw_sql ("UPDATE audit SET outcome = 'denied' WHERE id = 2");
  ck_assert_int_eq (verify (keys), 2);
  RESTORE ();
  raw_sql ("UPDATE audit SET at = at + 1 WHERE id = 5");
  ck_assert_int_eq (verify (keys), 5);
  RESTORE ();
  /* a deleted event: the next one no longer follows */
  raw_sql ("DELETE FROM audit WHERE id = 3");
  ck_assert_int_eq (verify (keys), 4);
  RESTORE ();
  /* reordered: two events swap places (MACs and all) */
  raw_sql ("UPDATE audit SET id = -2 WHERE id = 2;"
           "UPDATE audit SET id = 2 WHERE id = 3;"
           "UPDATE audit SET id = 3 WHERE id = -2");
  ck_assert_int_eq (verify (keys), 2);
  RESTORE ();
  /* the tail cut off */
  raw_sql ("DELETE FROM audit WHERE id = 6");
  ck_assert_int_eq (verify (keys), 6);
  RESTORE ();
  /* tail cut and the head removed too */
  raw_sql ("DELETE FROM audit WHERE id >= 5; DELETE FROM audit_head");
  ck_assert_int_ne (verify (keys), 0);
  RESTORE ();
  /* untouched: holds */
  ck_assert_int_eq (verify (keys), 0);
#undef RESTORE
  store_keys_free (&keys);
}
END_TEST

/* The writer keeps the chain's head in memory during its batches and
 * writes the signed head once a batch: events appended meanwhile by other
 * connections (this process's audited reads, another process), a job
 * rolled back after its event, and several batches in a row must still
 * give one unbroken chain whose head names its last event.  */
START_TEST (test_audit_chain_writer_and_others)
{
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  g_autofree char *dbpath = tmp_path ("intake.db");
  store_audit_report r;
  waiter w = { 0 };
  gint64 events, last;

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  file_mail (st, &(mail) { .from = "a@example.org", .message_id = "a1@x",
                           .body = "one" });
  /* the read connection of this process */
  ck_assert (store_audit_record (st, "test", "case.read", "ESC-X", "n=1",
                                 "ok", NULL));
  file_mail (st, &(mail) { .from = "a@example.org", .message_id = "a2@x",
                           .body = "two" });
  /* another process's connection */
  {
    store *other = store_open (dbpath, keys, 0, NULL);
    ck_assert_ptr_nonnull (other);
    ck_assert (store_audit_record (other, "cli", "case.read", "ESC-Y",
                                   "n=2", "ok", NULL));
    store_close (&other);
  }
  file_mail (st, &(mail) { .from = "b@example.org", .message_id = "b1@x",
                           .body = "three" });
  /* a job that fails after its audit event (its spool row does not
   * exist): rolled back to its savepoint, event and all */
  {
    g_autofree char *text = g_strdup ("From: c@example.org\r\n\r\nfour\r\n");
    store_ingest *in = store_ingest_new ();

    in->spool_id = 999999;
    in->env = make_env ("c@example.org");
    in->raw = g_bytes_new (text, strlen (text));
    in->from_addr = g_strdup ("c@example.org");
    in->text = g_strdup ("four");
    in->queue = g_strdup ("general");
    in->kind = g_strdup ("enquiry");
    in->ref_prefix = g_strdup ("ESC");
    store_ingest_submit (st, in, waiter_done, &w);
    waiter_wait (&w);
    ck_assert_ptr_nonnull (w.error);
    g_clear_error (&w.error);
  }
  file_mail (st, &(mail) { .from = "a@example.org", .message_id = "a3@x",
                           .body = "five" });
  ck_assert (store_audit_verify (st, &r, NULL));
  ck_assert_msg (r.first_bad == 0, "%s", r.reason ? r.reason : "");
  events = r.events;
  store_audit_report_clear (&r);
  store_close (&st);
  /* every event is there once, numbered without gaps, and the signed head
   * names the last */
  last = raw_int ("SELECT max(id) FROM audit");
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM audit"), events);
  ck_assert_int_eq (last, events);
  ck_assert_int_eq (raw_int ("SELECT last_id FROM audit_head"), last);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM audit WHERE action ="
                             " 'case.read'"), 2);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM audit WHERE action ="
                             " 'case.opened' OR action = 'case.message'"), 4);
  ck_assert_int_eq (verify (keys), 0);
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
  store_keys_free (&keys);
}
END_TEST

/* A done callback that holds the writer thread until the test lets it go,
 * so that everything submitted meanwhile is taken into one batch.  */
typedef struct {
  GMutex lock;
  GCond cond;
  gboolean holding, open;
} gate;

static void
gate_done (gint64 id, const GError *error, gpointer data)
{
  gate *g = data;

  g_mutex_lock (&g->lock);
  g->holding = TRUE;
  g_cond_broadcast (&g->cond);
  while (!g->open)
    g_cond_wait (&g->cond, &g->lock);
  g_mutex_unlock (&g->lock);
}

/* Spool @from's message (unless @no_spool: then its spool row does not
 * exist); the ingest that files it (not yet submitted).  */
static store_ingest *
spooled_ingest (store *st, const char *from, const char *mid,
                const char *body, gboolean no_spool)
{
  waiter w = { 0 };
  g_autofree char *text = g_strdup_printf ("From: %s\r\nMessage-ID: <%s>\r\n"
                                           "\r\n%s\r\n", from, mid, body);
  GBytes *raw = g_bytes_new (text, strlen (text));
  store_ingest *in = store_ingest_new ();

  g_mutex_init (&w.lock);
  g_cond_init (&w.cond);
  if (no_spool)
    w.id = 999999;
  else
    {
      store_spool_submit (st, make_env (from), g_bytes_ref (raw),
                          waiter_done, &w);
      waiter_wait (&w);
      ck_assert_ptr_null (w.error);
    }
  in->spool_id = w.id;
  in->env = make_env (from);
  in->raw = raw;
  in->from_addr = g_strdup (from);
  in->from_name = g_strdup ("A Person");
  in->subject = g_strdup ("about my bins");
  in->message_id = g_strdup (mid);
  in->text = g_strdup (body);
  in->queue = g_strdup ("general");
  in->kind = g_strdup ("enquiry");
  in->ref_prefix = g_strdup ("ESC");
  g_mutex_clear (&w.lock);
  g_cond_clear (&w.cond);
  return in;
}

/* One job of a batch fails after it wrote its subject, case, message and
 * audit event (its spool row is gone); the writer may have run the batch
 * without a savepoint per job first (store_batch_run ()): the others
 * are filed all the same, the failed one leaves nothing behind (no
 * subject, no serial, no event), new people's keys open, the chain
 * holds, and the failed message can be filed later.  */
START_TEST (test_batch_job_fails_alone)
{
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  const char *who[] = { "ann@example.org", "bob@example.org",
                        "cat@example.org", "dan@example.org",
                        "eve@example.org" };
  store_ingest *ins[G_N_ELEMENTS (who)];
  waiter ws[G_N_ELEMENTS (who)];
  gate g = { 0 };
  waiter gw = { 0 };
  store_audit_report r;

  g_mutex_init (&g.lock);
  g_cond_init (&g.cond);
  g_mutex_init (&gw.lock);
  g_cond_init (&gw.cond);
  /* ann is known before the batch (her key may be in the writer's cache) */
  file_mail (st, &(mail) { .from = "ann@example.org", .message_id = "a0@x",
                           .body = "earlier" });
  for (guint i = 0; i < G_N_ELEMENTS (who); i++)
    {
      g_autofree char *mid = g_strdup_printf ("m%u@x", i);
      g_autofree char *body = g_strdup_printf ("words of %s", who[i]);
      /* cat's spool row does not exist: her job fails at its last step */
      ins[i] = spooled_ingest (st, who[i], mid, body, i == 2);
      memset (&ws[i], 0, sizeof ws[i]);
      g_mutex_init (&ws[i].lock);
      g_cond_init (&ws[i].cond);
    }
  /* hold the writer, queue every job, let it go: one batch */
  {
    g_autofree char *text = g_strdup ("From: gate@example.org\r\n\r\nx\r\n");
    store_spool_submit (st, make_env ("gate@example.org"),
                        g_bytes_new (text, strlen (text)), gate_done, &g);
  }
  g_mutex_lock (&g.lock);
  while (!g.holding)
    g_cond_wait (&g.cond, &g.lock);
  g_mutex_unlock (&g.lock);
  for (guint i = 0; i < G_N_ELEMENTS (who); i++)
    store_ingest_submit (st, ins[i], waiter_done, &ws[i]);
  g_mutex_lock (&g.lock);
  g.open = TRUE;
  g_cond_broadcast (&g.cond);
  g_mutex_unlock (&g.lock);
  for (guint i = 0; i < G_N_ELEMENTS (who); i++)
    {
      waiter_wait (&ws[i]);
      if (i == 2)
        ck_assert_ptr_nonnull (ws[i].error);
      else
        ck_assert_msg (ws[i].error == NULL, "%s: %s", who[i],
                       ws[i].error->message);
      g_clear_error (&ws[i].error);
      g_mutex_clear (&ws[i].lock);
      g_cond_clear (&ws[i].cond);
    }
  /* every text opens: the keys of the people created in the batch are the
   * ones their vault secrets unwrap */
  for (gint64 id = 1; id <= 5; id++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *text = store_message_text (st, id, &error);
      ck_assert_msg (text != NULL, "message %" G_GINT64_FORMAT ": %s", id,
                     error ? error->message : "");
    }
  ck_assert (store_audit_verify (st, &r, NULL));
  ck_assert_msg (r.first_bad == 0, "%s", r.reason ? r.reason : "");
  store_audit_report_clear (&r);
  store_close (&st);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM cases"), 5);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM messages"), 5);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM subjects"), 4);
  ck_assert_int_eq (raw_int ("SELECT last FROM case_serials"), 5);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM audit WHERE action ="
                             " 'case.opened'"), 5);
  ck_assert_int_eq (raw_int ("SELECT max(id) FROM audit"),
                    raw_int ("SELECT count(*) FROM audit"));
  ck_assert_int_eq (raw_int ("SELECT last_id FROM audit_head"),
                    raw_int ("SELECT max(id) FROM audit"));
  /* the spool holds the gate's row only */
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM spool"), 1);
  ck_assert_int_eq (verify (keys), 0);

  /* cat's message, spooled again, is filed as the sixth case */
  st = open_store (keys);
  file_mail (st, &(mail) { .from = "cat@example.org", .message_id = "m2@x",
                           .body = "words of cat@example.org" });
  store_close (&st);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM subjects"), 5);
  ck_assert_int_eq (raw_int ("SELECT last FROM case_serials"), 6);
  ck_assert_int_eq (verify (keys), 0);
  g_mutex_clear (&g.lock);
  g_cond_clear (&g.cond);
  g_mutex_clear (&gw.lock);
  g_cond_clear (&gw.cond);
  store_keys_free (&keys);
}
END_TEST

/* ----------------------------------------------------------------- keys */

START_TEST (test_keys_rotate)
{
  g_autofree char *key_path = tmp_path ("master.key");
  g_autofree char *old_key = tmp_path ("master.key.v1");
  g_autofree char *cmd = NULL;
  g_autoptr (GError) error = NULL;
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  g_autofree char *db = tmp_path ("intake.db");
  gint64 n, total = 0;
  gint64 c;

  for (int i = 0; i < 7; i++)
    {
      g_autofree char *from = g_strdup_printf ("p%d@example.org", i);
      g_autofree char *mid = g_strdup_printf ("k%d@example.org", i);
      c = file_mail (st, &(mail){ from, mid, NULL, NULL, NULL, "text of it",
                                  FALSE });
    }
  store_close (&st);
  store_keys_free (&keys);
  cmd = g_strdup_printf ("cp -p '%s' '%s'", key_path, old_key);
  ck_assert_int_eq (system (cmd), 0);

  ck_assert_uint_eq (store_keys_add_version (key_path, &error), 2);
  keys = load_keys ();
  ck_assert_uint_eq (store_keys_version (keys), 2);
  st = store_open (db, keys, 0, &error);
  ck_assert_msg (st != NULL, "%s", error ? error->message : "");
  ck_assert_int_eq (store_rewrap_pending (st, NULL), 7);
  /* resumable: small batches, each committed */
  while ((n = store_rewrap_batch (st, 3, &error)) > 0)
    {
      total += n;
      ck_assert_int_le (n, 3);
    }
  ck_assert_int_eq (n, 0);
  ck_assert_int_eq (total, 7);
  ck_assert_int_eq (store_rewrap_pending (st, NULL), 0);
  /* data still opens; nothing was re-encrypted */
  {
    store_case_view *v = case_by_id (st, c);
    ck_assert_str_eq (v->from_addr, "p6@example.org");
    store_case_view_free (v);
  }
  store_close (&st);
  store_keys_free (&keys);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM subjects"
                             " WHERE wrap_version = 2"), 7);
  ck_assert_int_eq (raw_int ("SELECT count(*) FROM keyring"), 2);

  /* the old key file (version 1 only) is refused at start */
  {
    store_keys *old = store_keys_load (old_key, &error);
    ck_assert_ptr_nonnull (old);
    ck_assert_ptr_null (store_open (db, old, STORE_OPEN_WRITER, &error));
    ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_CRYPTO));
    g_clear_error (&error);
    store_keys_free (&old);
  }
  /* so is a wrong key file */
  {
    g_autofree char *other = tmp_path ("other.key");
    store_keys *wrong;
    ck_assert (store_keys_generate (other, NULL));
    wrong = store_keys_load (other, NULL);
    ck_assert_ptr_null (store_open (db, wrong, 0, &error));
    ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_CRYPTO));
    g_clear_error (&error);
    store_keys_free (&wrong);
  }
  store_keys_free (&keys);
}
END_TEST

/* ------------------------------------------------- moved and flipped */

START_TEST (test_ciphertext_moved_or_flipped)
{
  store_keys *keys = load_keys ();
  store *st = open_store (keys);
  g_autoptr (GError) error = NULL;
  char *text;

  file_mail (st, &(mail){ "erin@example.org", "e1@example.org", NULL, NULL,
                          NULL, "erin's words", FALSE });
  file_mail (st, &(mail){ "erin@example.org", "e2@example.org", NULL, NULL,
                          NULL, "more of erin's words", FALSE });
  file_mail (st, &(mail){ "frank@example.org", "f1@example.org", NULL, NULL,
                          NULL, "frank's words", FALSE });
  text = store_message_text (st, 1, &error);
  ck_assert_str_eq (text, "erin's words");
  g_free (text);
  store_close (&st);

  /* another row of the same subject */
  raw_sql ("UPDATE messages SET text = (SELECT text FROM messages"
           " WHERE id = 1) WHERE id = 2");
  st = open_store (keys);
  ck_assert_ptr_null (store_message_text (st, 2, &error));
  ck_assert (g_error_matches (error, STORE_ERROR, STORE_ERROR_CRYPTO));
  g_clear_error (&error);
  store_close (&st);
  /* another column of the same row */
  raw_sql ("UPDATE messages SET text = header_subject WHERE id = 1");
  st = open_store (keys);
  ck_assert_ptr_null (store_message_text (st, 1, &error));
  g_clear_error (&error);
  store_close (&st);
  /* another subject's value (Frank's text into Erin's message) */
  raw_sql ("UPDATE messages SET text = (SELECT text FROM messages"
           " WHERE id = 3) WHERE id = 2");
  st = open_store (keys);
  ck_assert_ptr_null (store_message_text (st, 2, &error));
  g_clear_error (&error);
  text = store_message_text (st, 3, &error);
  ck_assert_str_eq (text, "frank's words");
  g_free (text);
  store_close (&st);

  /* a flipped bit in the nonce (bytes 0-23), the ciphertext (24 on),
   * the tag (the last 16 bytes) */
  {
    g_autofree char *db = tmp_path ("intake.db");
    sqlite3 *raw;
    sqlite3_stmt *q;
    const int positions[] = { 0, 23, 24, 30, -1 };

    for (guint i = 0; i < G_N_ELEMENTS (positions); i++)
      {
        guint8 *blob;
        int len;

        ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
        sqlite3_prepare_v2 (raw, "SELECT text FROM messages WHERE id = 3",
                            -1, &q, NULL);
        ck_assert_int_eq (sqlite3_step (q), SQLITE_ROW);
        len = sqlite3_column_bytes (q, 0);
        blob = g_memdup2 (sqlite3_column_blob (q, 0), len);
        sqlite3_finalize (q);
        int at = positions[i] < 0 ? len - 1 : positions[i];
        blob[at] ^= 0x01;
        sqlite3_prepare_v2 (raw, "UPDATE messages SET text = ?1 WHERE id = 3",
                            -1, &q, NULL);
        sqlite3_bind_blob (q, 1, blob, len, SQLITE_TRANSIENT);
        ck_assert_int_eq (sqlite3_step (q), SQLITE_DONE);
        sqlite3_finalize (q);
        sqlite3_close (raw);

        st = open_store (keys);
        ck_assert_msg (store_message_text (st, 3, &error) == NULL,
                       "flip at %d opened", at);
        g_clear_error (&error);
        store_close (&st);

        /* flip back */
        blob[at] ^= 0x01;
        ck_assert_int_eq (sqlite3_open (db, &raw), SQLITE_OK);
        sqlite3_prepare_v2 (raw, "UPDATE messages SET text = ?1 WHERE id = 3",
                            -1, &q, NULL);
        sqlite3_bind_blob (q, 1, blob, len, SQLITE_TRANSIENT);
        ck_assert_int_eq (sqlite3_step (q), SQLITE_DONE);
        sqlite3_finalize (q);
        sqlite3_close (raw);
        g_free (blob);
      }
  }
  st = open_store (keys);
  text = store_message_text (st, 3, &error);
  ck_assert_str_eq (text, "frank's words");
  g_free (text);
  store_close (&st);

  /* a flipped bit in the wrapped data key: the subject's data fails
   * closed */
  raw_sql ("UPDATE subjects SET data_key = substr(data_key, 1, 40)"
           " || CASE WHEN substr(data_key, 41, 1) = x'00' THEN x'01'"
           "    ELSE x'00' END"       /* changed whatever the byte was */
           " || substr(data_key, 42) WHERE id = 2");
  st = open_store (keys);
  ck_assert_ptr_null (store_message_text (st, 3, &error));
  ck_assert_ptr_nonnull (error);
  g_clear_error (&error);
  store_close (&st);
  store_keys_free (&keys);
}
END_TEST

static Suite *
cases_suite (void)
{
  Suite *s = suite_create ("cases");
  TCase *tc = tcase_create ("store");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_threading_table);
  tcase_add_test (tc, test_participants_and_subjects);
  tcase_add_test (tc, test_case_find_many_people);
  tcase_add_test (tc, test_attachments_sealed);
  tcase_add_test (tc, test_status_transitions);
  tcase_add_test (tc, test_audit_chain_tamper);
  tcase_add_test (tc, test_audit_chain_writer_and_others);
  tcase_add_test (tc, test_batch_job_fails_alone);
  tcase_add_test (tc, test_keys_rotate);
  tcase_add_test (tc, test_ciphertext_moved_or_flipped);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (cases_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
