/*
 * test_spool_feed.c - the spool feed (store_feed.c): rows the writer has
 * just committed handed to store_spool_list () from memory.  Covers: a
 * fed row is exactly the row read back (ids, envelope, packed envelope,
 * raw bytes); every row listed once and in order across the bound (rows
 * and bytes) and across mixes of fed and read rows; a batch that rolls
 * back, and a job rolled back alone, feed nothing; a row deleted behind
 * the feed's back is not filed; a store opened again reads its backlog
 * from the database; INTAKE_SPOOL_FEED=0 and store_spool_feed_set_enabled
 * turn it off.
 */
#include <check.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "store/store.h"
#include "store/store_private.h"      /* store_feed_add (), white-box */

static char *tmpdir;
static store_keys *keys;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static void
setup (void)
{
  g_autofree char *key = NULL;
  GError *error = NULL;

  tmpdir = g_dir_make_tmp ("intake-feed-XXXXXX", NULL);
  ck_assert_ptr_nonnull (tmpdir);
  key = tmp_path ("master.key");
  ck_assert (store_keys_generate (key, &error));
  keys = store_keys_load (key, &error);
  ck_assert_msg (keys != NULL, "%s", error ? error->message : "");
}

static void
teardown (void)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);

  store_keys_free (&keys);
  ck_assert_int_eq (system (cmd), 0);
  g_clear_pointer (&tmpdir, g_free);
}

static store *
open_store (void)
{
  g_autofree char *db = tmp_path ("intake.db");
  g_autoptr (GError) error = NULL;
  store *st = store_open (db, keys, STORE_OPEN_WRITER, &error);

  ck_assert_msg (st != NULL, "%s", error ? error->message : "");
  return st;
}

/* Raw SQL on the database file from a connection of its own, as another
 * process would.  */
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

typedef struct {
  GMutex lock;
  GCond cond;
  guint done;
  guint failed;
  gint64 ids[256];           /* by completion order; 0 when it failed */
} waiter;

static void
waiter_init (waiter *w)
{
  memset (w, 0, sizeof *w);
  g_mutex_init (&w->lock);
  g_cond_init (&w->cond);
}

static void
waiter_clear (waiter *w)
{
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->cond);
}

static void
waiter_done (gint64 id, const GError *error, gpointer data)
{
  waiter *w = data;

  g_mutex_lock (&w->lock);
  if (w->done < G_N_ELEMENTS (w->ids))
    w->ids[w->done] = error ? 0 : id;
  if (error)
    w->failed++;
  w->done++;
  g_cond_signal (&w->cond);
  g_mutex_unlock (&w->lock);
}

static void
waiter_wait (waiter *w, guint n)
{
  g_mutex_lock (&w->lock);
  while (w->done < n)
    g_cond_wait (&w->cond, &w->lock);
  g_mutex_unlock (&w->lock);
}

/* Envelopes of every shape a receiver makes: missing strings (the form
 * path leaves none, a test may), several recipients, none, tls as a
 * non-1 truth value, non-ASCII UTF-8.  */
static store_envelope *
make_env (guint i)
{
  store_envelope *env = store_envelope_new ();

  switch (i % 4)
    {
    case 0:
      env->source = g_strdup ("smtp");
      env->client_addr = g_strdup ("192.0.2.1");
      env->helo = g_strdup ("client.example");
      env->mail_from = g_strdup_printf ("person%u@example.org", i);
      g_ptr_array_add (env->rcpts, g_strdup ("enquiries@council.example"));
      env->tls = TRUE;
      break;
    case 1:
      env->source = g_strdup ("form");
      env->mail_from = g_strdup ("");
      env->tls = 2;                       /* any truth value */
      break;
    case 2:
      env->source = g_strdup ("imap");
      env->client_addr = g_strdup ("2001:db8::1");
      env->helo = g_strdup ("h\xc3\xa9lo.example");
      env->mail_from = g_strdup ("\xc3\xa9milie@example.org");
      g_ptr_array_add (env->rcpts, g_strdup ("complaints@council.example"));
      g_ptr_array_add (env->rcpts, g_strdup ("foi@council.example"));
      g_ptr_array_add (env->rcpts, g_strdup (""));
      break;
    default:
      env->source = g_strdup ("smtp");
      env->mail_from = NULL;
      g_ptr_array_add (env->rcpts, g_strdup ("dataprotection@council.example"));
      break;
    }
  env->received_at = 1790000000LL * G_USEC_PER_SEC + i;
  return env;
}

static GBytes *
make_raw (guint i, gsize size)
{
  GString *t = g_string_new (NULL);

  g_string_append_printf (t, "From: person%u@example.org\r\n"
                             "Message-ID: <m%u@example.org>\r\n\r\n", i, i);
  while (t->len + 2 < size)
    g_string_append_c (t, (char) ('a' + (i + t->len) % 26));
  g_string_append (t, "\r\n");
  return g_string_free_to_bytes (t);
}

/* Spool @n messages (numbered from @first) and wait for every commit;
 * each committed id in order into @ids (nullable).  */
static void
spool_n (store *st, guint first, guint n, gsize size, gint64 *ids)
{
  waiter w;

  waiter_init (&w);
  for (guint i = 0; i < n; i++)
    {
      store_spool_submit (st, make_env (first + i), make_raw (first + i, size),
                          waiter_done, &w);
      waiter_wait (&w, i + 1);
      ck_assert_uint_eq (w.failed, 0);
      if (ids)
        ids[i] = w.ids[i];
    }
  waiter_clear (&w);
}

/* Every row of the spool through store_spool_list () in batches of
 * @batch, as the pipeline reads it; the items in order.  */
static GPtrArray *
list_all (store *st, guint batch)
{
  GPtrArray *all = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_spool_item_free);
  gint64 after = 0;

  for (;;)
    {
      g_autoptr (GError) error = NULL;
      GPtrArray *got = store_spool_list (st, after, batch, &error);
      guint len;

      ck_assert_msg (got != NULL, "%s", error ? error->message : "");
      ck_assert_uint_le (got->len, batch);
      len = got->len;
      for (guint i = 0; i < got->len; i++)
        {
          store_spool_item *item = got->pdata[i];
          ck_assert_int_gt (item->id, after);
          after = item->id;
        }
      g_ptr_array_set_free_func (got, NULL);
      g_ptr_array_extend_and_steal (all, got);
      /* a short batch ends the pass, as in the pipeline */
      if (len < batch)
        break;
    }
  return all;
}

static void
assert_env_same (const store_envelope *a, const store_envelope *b)
{
  ck_assert_str_eq (a->source, b->source);
  ck_assert_str_eq (a->client_addr, b->client_addr);
  ck_assert_str_eq (a->helo, b->helo);
  ck_assert_str_eq (a->mail_from, b->mail_from);
  ck_assert_int_eq (a->tls, b->tls);
  ck_assert_int_eq (a->received_at, b->received_at);
  ck_assert_uint_eq (a->rcpts->len, b->rcpts->len);
  for (guint i = 0; i < a->rcpts->len; i++)
    ck_assert_str_eq (a->rcpts->pdata[i], b->rcpts->pdata[i]);
  ck_assert (store_envelope_equal (a, b));
}

static void
assert_item_same (const store_spool_item *a, const store_spool_item *b)
{
  ck_assert_int_eq (a->id, b->id);
  ck_assert_ptr_null (a->error);
  ck_assert_ptr_null (b->error);
  assert_env_same (a->env, b->env);
  ck_assert (g_bytes_equal (a->env_bytes, b->env_bytes));
  ck_assert (g_bytes_equal (a->raw, b->raw));
}

/* Rows handed out by the feed are the rows as read back: the same ids in
 * the same order, the same envelope (every field, NULL strings as ""),
 * the same packed envelope byte for byte, the same raw bytes.  */
START_TEST (test_fed_rows_equal_read_rows)
{
  store *st = open_store ();
  store_spool_feed_stats stats;
  g_autoptr (GPtrArray) fed = NULL;
  g_autoptr (GPtrArray) read = NULL;
  gint64 ids[40];

  spool_n (st, 0, 40, 700, ids);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.fed, 40);
  ck_assert_uint_eq (stats.rows, 40);

  fed = list_all (st, 16);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.taken, 40);
  ck_assert_uint_eq (stats.rows, 0);
  ck_assert_uint_eq (stats.bytes, 0);

  /* nothing was filed: a second pass reads every row from the database */
  read = list_all (st, 16);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.taken, 40);
  ck_assert_uint_eq (fed->len, 40);
  ck_assert_uint_eq (read->len, 40);
  for (guint i = 0; i < 40; i++)
    {
      assert_item_same (fed->pdata[i], read->pdata[i]);
      ck_assert_int_eq (((store_spool_item *) fed->pdata[i])->id, ids[i]);
      /* and the packed envelope is what packing the envelope gives */
      g_autoptr (GBytes) again = store_envelope_pack (
          ((store_spool_item *) fed->pdata[i])->env);
      ck_assert (g_bytes_equal (again,
                                ((store_spool_item *) fed->pdata[i])
                                    ->env_bytes));
    }
  store_close (&st);
}
END_TEST

/* More rows than the feed holds (rows bound, then bytes bound): every
 * row listed exactly once and in id order, fed and read mixed, and the
 * feed never above its bound.  */
START_TEST (test_bound_every_row_once_in_order)
{
  store *st = open_store ();
  store_spool_feed_stats stats;
  g_autoptr (GPtrArray) all = NULL;
  g_autoptr (GPtrArray) again = NULL;
  gint64 ids[60];

  store_spool_feed_set_limits (st, 10, STORE_FEED_MAX_BYTES);
  spool_n (st, 0, 25, 300, ids);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.fed, 10);
  ck_assert_uint_eq (stats.full, 15);
  ck_assert_uint_eq (stats.rows, 10);

  /* 1..7 fed; 8..10 fed then 11..14 read; the rest read */
  all = list_all (st, 7);
  ck_assert_uint_eq (all->len, 25);
  for (guint i = 0; i < all->len; i++)
    ck_assert_int_eq (((store_spool_item *) all->pdata[i])->id, ids[i]);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.taken, 10);

  /* a byte bound of three messages; rows spooled after the first pass:
   * a pass from 0 reads the old rows and takes the fed ones among them */
  store_spool_feed_set_limits (st, 100, 3 * 300);
  spool_n (st, 25, 5, 300, ids + 25);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.fed, 13);
  ck_assert_uint_le (stats.bytes, 3 * 300);
  again = list_all (st, 7);
  ck_assert_uint_eq (again->len, 30);
  for (guint i = 0; i < again->len; i++)
    {
      ck_assert_int_eq (((store_spool_item *) again->pdata[i])->id, ids[i]);
      ck_assert_ptr_nonnull (((store_spool_item *) again->pdata[i])->raw);
    }
  for (guint i = 0; i < 25; i++)
    assert_item_same (all->pdata[i], again->pdata[i]);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.taken, 13);
  ck_assert_uint_eq (stats.rows, 0);
  store_close (&st);
}
END_TEST

/* A batch rolled back as a whole (a trigger raises ROLLBACK on the IMAP
 * checkpoint of one message, after the spool rows of its batch were
 * written) and a job rolled back alone feed nothing: the feed holds
 * exactly the rows that are in the database.  */
START_TEST (test_rolled_back_feeds_nothing)
{
  store *st = open_store ();
  store_spool_feed_stats stats;
  g_autoptr (GPtrArray) got = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *db = tmp_path ("intake.db");
  sqlite3 *hold;
  waiter w;
  guint n = 0, committed = 0;

  raw_sql ("CREATE TRIGGER no_seen BEFORE INSERT ON imap_seen"
           " WHEN NEW.uid = 666 BEGIN SELECT RAISE(ROLLBACK, 'no'); END;"
           "CREATE TRIGGER no_seen_alone BEFORE INSERT ON imap_seen"
           " WHEN NEW.uid = 667 BEGIN SELECT RAISE(ABORT, 'no'); END;");
  waiter_init (&w);
  /* hold the write lock so that what follows waits and goes into one
   * batch: a spool row, the IMAP message that rolls it all back, two
   * more spool rows */
  ck_assert_int_eq (sqlite3_open (db, &hold), SQLITE_OK);
  ck_assert_int_eq (sqlite3_exec (hold, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                    SQLITE_OK);
  store_spool_submit (st, make_env (0), make_raw (0, 300), waiter_done, &w);
  n++;
  g_usleep (100 * G_TIME_SPAN_MILLISECOND);   /* the writer waits on it */
  store_spool_submit (st, make_env (1), make_raw (1, 300), waiter_done, &w);
  store_spool_submit_imap (st, make_env (2), make_raw (2, 300), "INBOX", 1,
                           666, waiter_done, &w);
  store_spool_submit (st, make_env (3), make_raw (3, 300), waiter_done, &w);
  n += 3;
  ck_assert_int_eq (sqlite3_exec (hold, "COMMIT", NULL, NULL, NULL),
                    SQLITE_OK);
  sqlite3_close (hold);
  waiter_wait (&w, n);
  /* the first went alone; the next three were rolled back together */
  ck_assert_uint_ge (w.failed, 3);

  /* a job rolled back alone (ROLLBACK TO its savepoint) in a batch that
   * commits */
  store_spool_submit_imap (st, make_env (4), make_raw (4, 300), "INBOX", 1,
                           667, waiter_done, &w);
  store_spool_submit (st, make_env (5), make_raw (5, 300), waiter_done, &w);
  n += 2;
  waiter_wait (&w, n);
  for (guint i = 0; i < n; i++)
    committed += w.ids[i] > 0;

  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.fed, committed);
  ck_assert_uint_eq (stats.rows, committed);
  ck_assert_int_eq (store_spool_count (st, NULL), committed);
  got = store_spool_list (st, 0, 100, &error);
  ck_assert_ptr_nonnull (got);
  ck_assert_uint_eq (got->len, committed);
  for (guint i = 0, j = 0; i < n; i++)
    if (w.ids[i] > 0)
      {
        ck_assert_int_eq (((store_spool_item *) got->pdata[j])->id, w.ids[i]);
        j++;
      }
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.taken, committed);
  waiter_clear (&w);
  store_close (&st);
}
END_TEST

/* A row deleted behind the feed's back (by another connection, as
 * another process would; nothing in intaked deletes a spool row but
 * filing) is not filed: the feed may still hand it out, but the filing
 * transaction finds the row gone and stores nothing.  */
START_TEST (test_deleted_row_not_filed)
{
  store *st = open_store ();
  g_autoptr (GPtrArray) got = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) cases = NULL;
  store_spool_feed_stats stats;
  store_spool_item *item;
  store_ingest *in;
  gint64 ids[2];
  waiter w;

  spool_n (st, 0, 2, 400, ids);
  {
    g_autofree char *sql = g_strdup_printf ("DELETE FROM spool WHERE id = %"
                                            G_GINT64_FORMAT, ids[0]);
    raw_sql (sql);
  }
  got = store_spool_list (st, 0, 10, &error);
  ck_assert_ptr_nonnull (got);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.taken, 2);
  item = got->pdata[0];
  ck_assert_int_eq (item->id, ids[0]);

  in = store_ingest_new ();
  in->spool_id = item->id;
  in->env = g_steal_pointer (&item->env);
  in->env_packed = g_steal_pointer (&item->env_bytes);
  in->raw = g_steal_pointer (&item->raw);
  in->from_addr = g_strdup ("person0@example.org");
  in->subject = g_strdup ("about my bins");
  in->message_id = g_strdup ("m0@example.org");
  in->text = g_strdup ("hello");
  in->queue = g_strdup ("general");
  in->kind = g_strdup ("enquiry");
  in->ref_prefix = g_strdup ("ESC");
  waiter_init (&w);
  store_ingest_submit (st, in, waiter_done, &w);
  waiter_wait (&w, 1);
  ck_assert_uint_eq (w.failed, 1);
  waiter_clear (&w);
  cases = store_case_list (st, NULL);
  ck_assert_ptr_nonnull (cases);
  ck_assert_uint_eq (cases->len, 0);
  store_close (&st);
}
END_TEST

/* store_spool_feed_clear () drops every fed row; the rows are then read
 * from the database, the same.  */
START_TEST (test_clear_reads_database)
{
  store *st = open_store ();
  store_spool_feed_stats stats;
  g_autoptr (GPtrArray) all = NULL;
  gint64 ids[6];

  spool_n (st, 0, 6, 500, ids);
  store_spool_feed_clear (st);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.rows, 0);
  ck_assert_uint_eq (stats.bytes, 0);
  all = list_all (st, 4);
  ck_assert_uint_eq (all->len, 6);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.taken, 0);
  for (guint i = 0; i < 6; i++)
    ck_assert_int_eq (((store_spool_item *) all->pdata[i])->id, ids[i]);
  store_close (&st);
}
END_TEST

/* A store opened again has an empty feed: its backlog comes from the
 * database, every row once, in order, the same bytes as fed.  */
START_TEST (test_restart_reads_backlog)
{
  store *st = open_store ();
  g_autoptr (GPtrArray) before = NULL;
  g_autoptr (GPtrArray) after = NULL;
  store_spool_feed_stats stats;
  gint64 ids[30];

  store_spool_feed_set_limits (st, 20, STORE_FEED_MAX_BYTES);
  spool_n (st, 0, 30, 600, ids);
  before = list_all (st, 8);   /* fed and read, nothing filed */
  store_close (&st);

  st = open_store ();
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.rows, 0);
  after = list_all (st, 8);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.taken, 0);
  ck_assert_uint_eq (after->len, 30);
  for (guint i = 0; i < 30; i++)
    {
      ck_assert_int_eq (((store_spool_item *) after->pdata[i])->id, ids[i]);
      assert_item_same (before->pdata[i], after->pdata[i]);
    }
  store_close (&st);
}
END_TEST

/* Off: by INTAKE_SPOOL_FEED=0 at open, and by the call.  */
/* The writer feeds a row after its COMMIT returned, so a reader may
 * list the row from the database first: a row at or below the highest id
 * already listed is refused, never left in the feed (where its plaintext
 * would wait for nothing, or be handed out again).  */
START_TEST (test_late_feed_refused)
{
  store *st = open_store ();
  store_spool_feed_stats stats;
  g_autoptr (GPtrArray) all = NULL;
  gint64 ids[4];

  spool_n (st, 0, 4, 300, ids);
  all = list_all (st, 10);
  ck_assert_uint_eq (all->len, 4);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.fed, 4);
  ck_assert_uint_eq (stats.rows, 0);
  for (guint i = 1; i < 4; i += 2)      /* below, and at, the last listed */
    {
      store_envelope *env = make_env (i);
      g_autoptr (GBytes) packed = store_envelope_pack (env);
      g_autoptr (GBytes) raw = make_raw (i, 300);

      store_feed_add (st, ids[i], &env, packed, raw);
      store_envelope_free (env);            /* not taken: still ours */
    }
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.fed, 4);
  ck_assert_uint_eq (stats.rows, 0);
  ck_assert_uint_eq (stats.bytes, 0);
  store_close (&st);
}
END_TEST

START_TEST (test_off)
{
  store *st;
  store_spool_feed_stats stats;
  g_autoptr (GPtrArray) all = NULL;

  g_setenv ("INTAKE_SPOOL_FEED", "0", TRUE);
  st = open_store ();
  g_unsetenv ("INTAKE_SPOOL_FEED");
  spool_n (st, 0, 3, 300, NULL);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.fed, 0);
  store_spool_feed_set_enabled (st, TRUE);
  spool_n (st, 3, 3, 300, NULL);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.fed, 3);
  store_spool_feed_set_enabled (st, FALSE);
  store_spool_feed_get_stats (st, &stats);
  ck_assert_uint_eq (stats.rows, 0);
  all = list_all (st, 4);
  ck_assert_uint_eq (all->len, 6);
  store_close (&st);
}
END_TEST

static Suite *
feed_suite (void)
{
  Suite *s = suite_create ("spool_feed");
  TCase *tc = tcase_create ("feed");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_fed_rows_equal_read_rows);
  tcase_add_test (tc, test_bound_every_row_once_in_order);
  tcase_add_test (tc, test_rolled_back_feeds_nothing);
  tcase_add_test (tc, test_deleted_row_not_filed);
  tcase_add_test (tc, test_clear_reads_database);
  tcase_add_test (tc, test_restart_reads_backlog);
  tcase_add_test (tc, test_late_feed_refused);
  tcase_add_test (tc, test_off);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  int failed;
  SRunner *sr = srunner_create (feed_suite ());

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
