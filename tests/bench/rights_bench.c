/*
 * rights_bench.c - data-subject rights and the retention schedule at
 * council size (issue 9), on stores that store_bench filled through the
 * pipeline's API (tests/bench/rights_bench.sh runs both).
 *
 *   rights_bench export DIR ADDRESS
 *       times store_subject_export() of the subject with ADDRESS (store
 *       bench's --subjects 1 makes one person with every case; target
 *       < 2 s for 1,000 cases), then store_subject_erase() of that person
 *       (target < 1 s), and checks the erasure took every message.
 *   rights_bench retention DIR PERCENT
 *       closes PERCENT% of the cases (every (100/PERCENT)th id) 6.5 years
 *       ago (past every class of the built-in schedule), straight in SQL
 *       -- the bench's set-up, not intake's way -- then times
 *       store_retention_run() with the built-in schedule (target < 60 s
 *       for 1,000,000 cases, 10% due) and checks exactly those cases went.
 *
 * Prints each figure with its target and PASS or MISS; exit status 0
 * whatever the targets say, 1 when something fails, 2 on usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <sqlite3.h>

#include "store/store.h"

#define RIGHTS_BENCH_EXPORT_S     2.0     /* issue 9 */
#define RIGHTS_BENCH_ERASE_S      1.0     /* issue 9 */
#define RIGHTS_BENCH_RETENTION_S  60.0    /* issue 9 */
#define RIGHTS_BENCH_YEAR_US      ((gint64) 31557600 * G_USEC_PER_SEC)

static void
rights_bench_verdict (const char *what, double s, double target)
{
  printf ("  %-10s %8.3f s   target < %.0f s   %s\n", what, s, target,
          s < target ? "PASS" : "MISS");
}

static gboolean
rights_bench_open (const char *dir, store_keys **keys, store **st)
{
  g_autofree char *kf = g_build_filename (dir, "master.key", NULL);
  g_autofree char *db = g_build_filename (dir, "intake.db", NULL);
  g_autoptr (GError) error = NULL;

  *keys = store_keys_load (kf, &error);
  if (*keys != NULL)
    *st = store_open (db, *keys, 0, &error);
  if (*keys == NULL || *st == NULL)
    {
      fprintf (stderr, "rights_bench: %s\n", error->message);
      return FALSE;
    }
  return TRUE;
}

static int
rights_bench_export (const char *dir, const char *addr)
{
  g_autoptr (GError) error = NULL;
  store_keys *keys = NULL;
  store *st = NULL;
  store_erasure_report r = { 0 };
  g_autofree char *json = NULL;
  gint64 id, t;
  guint cases = 0;
  int rc = 1;

  if (!rights_bench_open (dir, &keys, &st))
    goto out;
  id = store_subject_id (st, addr, &error);
  if (id < 0)
    {
      fprintf (stderr, "rights_bench: %s\n", error->message);
      goto out;
    }
  t = g_get_monotonic_time ();
  json = store_subject_export (st, id, "bench", &error);
  t = g_get_monotonic_time () - t;
  if (json == NULL)
    {
      fprintf (stderr, "rights_bench: export: %s\n", error->message);
      goto out;
    }
  for (const char *p = json; (p = strstr (p, "\"ref\" :")) != NULL; p++)
    cases++;
  printf ("  export of one subject: %u cases, %zu bytes of JSON\n", cases,
          strlen (json));
  rights_bench_verdict ("export", t / 1e6, RIGHTS_BENCH_EXPORT_S);
  t = g_get_monotonic_time ();
  if (!store_subject_erase (st, id, "request", "bench", &r, &error))
    {
      fprintf (stderr, "rights_bench: erase: %s\n", error->message);
      goto out;
    }
  t = g_get_monotonic_time () - t;
  printf ("  erasure: %" G_GINT64_FORMAT " messages, %" G_GINT64_FORMAT
          " cases, vault secret %s, WAL %s\n", r.messages, r.cases,
          r.vault_secret ? "destroyed" : "none",
          r.wal_truncated ? "truncated" : "NOT truncated");
  rights_bench_verdict ("erase", t / 1e6, RIGHTS_BENCH_ERASE_S);
  rc = r.messages == (gint64) cases ? 0 : 1;
  if (rc != 0)
    fprintf (stderr, "rights_bench: erased %" G_GINT64_FORMAT " messages of"
             " %u cases\n", r.messages, cases);
out:
  store_close (&st);
  store_keys_free (&keys);
  return rc;
}

static int
rights_bench_retention (const char *dir, guint percent)
{
  g_autofree char *db = g_build_filename (dir, "intake.db", NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *sql = NULL;
  store_keys *keys = NULL;
  store *st = NULL;
  store_retention_policy *p = store_retention_policy_new ();
  store_retention_report r = { 0 };
  gint64 now = g_get_real_time (), t, want = 0, total = 0;
  sqlite3 *raw = NULL;
  char *err = NULL;
  int rc = 1;

  /* set-up: every (100/percent)th case closed 6.5 years ago */
  if (sqlite3_open (db, &raw) != SQLITE_OK)
    goto out;
  sqlite3_busy_timeout (raw, 10000);
  sql = g_strdup_printf ("UPDATE cases SET status = 'closed', closed_at ="
                         " %" G_GINT64_FORMAT " WHERE id %% %u = 0;",
                         now - 13 * RIGHTS_BENCH_YEAR_US / 2, 100 / percent);
  t = g_get_monotonic_time ();
  if (sqlite3_exec (raw, sql, NULL, NULL, &err) != SQLITE_OK)
    {
      fprintf (stderr, "rights_bench: set-up: %s\n", err);
      sqlite3_free (err);
      goto out;
    }
  want = sqlite3_changes (raw);
  {
    sqlite3_stmt *q;
    sqlite3_prepare_v2 (raw, "SELECT count(*) FROM cases", -1, &q, NULL);
    if (sqlite3_step (q) == SQLITE_ROW)
      total = sqlite3_column_int64 (q, 0);
    sqlite3_finalize (q);
  }
  sqlite3_close (raw);
  raw = NULL;
  printf ("  set-up: %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " cases"
          " closed 6.5 years ago (%.1f s, not timed below)\n", want, total,
          (g_get_monotonic_time () - t) / 1e6);
  if (!rights_bench_open (dir, &keys, &st))
    goto out;
  t = g_get_monotonic_time ();
  if (!store_retention_run (st, p, now, STORE_RETENTION_CONFIRM_CLOCK_JUMP,
                            &r, NULL, &error))
    {
      fprintf (stderr, "rights_bench: retention: %s\n", error->message);
      goto out;
    }
  t = g_get_monotonic_time () - t;
  printf ("  retention pass: %" G_GINT64_FORMAT " cases, %" G_GINT64_FORMAT
          " due, %" G_GINT64_FORMAT " deleted, %" G_GINT64_FORMAT " subjects"
          " erased\n", r.cases, r.due, r.deleted, r.subjects_erased);
  rights_bench_verdict ("retention", t / 1e6, RIGHTS_BENCH_RETENTION_S);
  rc = r.deleted == want ? 0 : 1;
  if (rc != 0)
    fprintf (stderr, "rights_bench: deleted %" G_GINT64_FORMAT ", expected %"
             G_GINT64_FORMAT "\n", r.deleted, want);
out:
  if (raw)
    sqlite3_close (raw);
  store_retention_policy_free (p);
  store_close (&st);
  store_keys_free (&keys);
  return rc;
}

int
main (int argc, char **argv)
{
  if (argc == 4 && strcmp (argv[1], "export") == 0)
    return rights_bench_export (argv[2], argv[3]);
  if (argc == 4 && strcmp (argv[1], "retention") == 0)
    {
      guint64 pct;
      if (g_ascii_string_to_unsigned (argv[3], 10, 1, 100, &pct, NULL))
        return rights_bench_retention (argv[2], (guint) pct);
    }
  fprintf (stderr, "usage: rights_bench export DIR ADDRESS\n"
                   "       rights_bench retention DIR PERCENT\n");
  return 2;
}
