/*
 * store_bench.c - the encrypted case store at council size (issue 4).
 *
 * Creates a fresh store (key file and database) in a temporary directory,
 * or in --dir, and fills it through the public API the pipeline uses:
 * store_spool_submit() then, from its completion, store_ingest_submit(),
 * with up to --inflight messages under way at once so that the writer's
 * group commit sees company.  --cases messages (default 1,000,000) from
 * --subjects data subjects (default 200,000; message i comes from
 * "person-(i mod S)@example.org"), 1-2 KB of synthetic text each, spread
 * over eight queues; every message opens a case (no threading hints).
 *
 * Then it closes the store (the last connection checkpoints the WAL into
 * the database), weighs the files, opens the database again as a reader
 * and times, after a few untimed calls:
 *
 *   lookup  store_subject_find() of --lookups random existing addresses
 *           (target p99 < 5 ms);
 *   page    store_case_find({queue, limit 50}) of --pages random queues,
 *           half the first page, half a page before a random case id
 *           (target p99 < 10 ms);
 *   bytes   database bytes per case (no target: reported).
 *
 * The fill prints its rate and the size of the WAL every 10 s.  The
 * timings run on a warm page cache (the file was just written).  Each
 * timing prints p50, p99 and max, the target and PASS or MISS.
 * --subjects 1 shows what one prolific sender (a portal, a councillor)
 * costs the filing.
 * Exit status 0 whatever the targets say (a benchmark reports); 1 when the
 * fill or a query fails, 2 on usage errors.  Built by `make bench-store`
 * against libintake.a with the normal -O2 flags; run by
 * tests/bench/store_bench.sh.
 *
 *   store_bench [--cases N] [--subjects S] [--dir DIR] [--inflight K]
 *               [--lookups N] [--pages N] [--seed N]
 *
 * Owns: the temporary directory (removed at the end; a --dir is kept).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#include "store/store.h"

#define STORE_BENCH_CASES         1000000
#define STORE_BENCH_SUBJECTS      200000
#define STORE_BENCH_INFLIGHT      4096
#define STORE_BENCH_QUERIES       1000
#define STORE_BENCH_WARMUP        20
#define STORE_BENCH_PAGE          50
#define STORE_BENCH_LOOKUP_MS     5.0      /* issue 4 */
#define STORE_BENCH_PAGE_MS       10.0     /* issue 4 */
#define STORE_BENCH_PROGRESS_US   (10 * G_TIME_SPAN_SECOND)

static const char *const store_bench_queues[] = {
  "general", "waste", "housing", "council-tax", "planning", "highways",
  "benefits", "complaints",
};
#define STORE_BENCH_NQUEUES G_N_ELEMENTS (store_bench_queues)

static const char *const store_bench_words[] = {
  "the", "bin", "collection", "on", "my", "street", "was", "missed",
  "again", "this", "week", "and", "I", "would", "like", "to", "know",
  "when", "it", "will", "be", "collected", "please", "could", "you",
  "also", "look", "at", "the", "pothole", "outside", "number", "twelve",
  "which", "has", "been", "there", "since", "March", "council", "tax",
  "bill", "seems", "wrong", "for", "our", "flat", "we", "moved", "in",
  "last", "month", "thank", "you", "for", "your", "help", "regards",
  "planning", "application", "neighbour", "fence", "noise", "late",
  "evening", "housing", "repair", "damp", "window", "boiler", "heating",
  "benefit", "payment", "delayed", "letter", "reference", "appointment",
};

typedef struct {
  guint64 cases;
  guint subjects;
  guint inflight;
  guint lookups;
  guint pages;
  guint32 seed;
  const char *dir;
} store_bench_opts;

/* What the fill shares with the writer thread's completions.  */
typedef struct {
  store *st;
  GMutex lock;
  GCond cond;
  guint inflight;
  guint64 filed;
  guint64 failed;
  char *first_error;
  gint64 max_case_id;
  const char *wal;             /* path of the WAL file */
  gint64 wal_max;              /* largest WAL seen at a progress line */
} store_bench_fill;

typedef struct {
  store_bench_fill *f;
  store_ingest *in;            /* (owned) until submitted */
} store_bench_job;

/* ------------------------------------------------------------ inputs */

static char *
store_bench_addr (guint subject)
{
  return g_strdup_printf ("person-%u@example.org", subject);
}

static store_envelope *
store_bench_env (const char *from, gint64 now)
{
  store_envelope *env = store_envelope_new ();

  env->source = g_strdup ("smtp");
  env->client_addr = g_strdup ("192.0.2.25");
  env->helo = g_strdup ("mail.example.org");
  env->mail_from = g_strdup (from);
  g_ptr_array_add (env->rcpts, g_strdup ("enquiries@council.example"));
  env->tls = TRUE;
  env->received_at = now;
  return env;
}

/* 1000-2000 bytes of words, lines of about 72 characters.  */
static char *
store_bench_text (GRand *r)
{
  guint want = 1000 + g_rand_int_range (r, 0, 1001);
  GString *s = g_string_sized_new (want + 80);
  guint col = 0;

  while (s->len < want)
    {
      const char *w = store_bench_words[g_rand_int_range (
          r, 0, G_N_ELEMENTS (store_bench_words))];
      gsize n = strlen (w);

      if (col > 0 && col + n + 1 > 72)
        {
          g_string_append (s, "\r\n");
          col = 0;
        }
      else if (col > 0)
        {
          g_string_append_c (s, ' ');
          col++;
        }
      g_string_append_len (s, w, n);
      col += n;
    }
  g_string_append (s, "\r\n");
  return g_string_free (s, FALSE);
}

static gint64
store_bench_file_size (const char *path)
{
  GStatBuf sb;
  return g_stat (path, &sb) == 0 ? (gint64) sb.st_size : 0;
}

/* ------------------------------------------------------------ filling */

static void
store_bench_fail (store_bench_fill *f, const GError *error)
{
  f->failed++;
  if (f->first_error == NULL)
    f->first_error = g_strdup (error ? error->message : "unknown");
}

static void
store_bench_ingest_done (gint64 id, const GError *error, gpointer data)
{
  store_bench_job *job = data;
  store_bench_fill *f = job->f;

  g_mutex_lock (&f->lock);
  if (error != NULL)
    store_bench_fail (f, error);
  else
    {
      f->filed++;
      f->max_case_id = MAX (f->max_case_id, id);
    }
  f->inflight--;
  g_cond_signal (&f->cond);
  g_mutex_unlock (&f->lock);
  g_free (job);
}

/* In the writer thread, after the spool commit: hand the ingest over (it
 * only queues a job; the writer takes it in a later batch).  */
static void
store_bench_spool_done (gint64 id, const GError *error, gpointer data)
{
  store_bench_job *job = data;
  store_bench_fill *f = job->f;

  if (error != NULL)
    {
      g_mutex_lock (&f->lock);
      store_bench_fail (f, error);
      f->inflight--;
      g_cond_signal (&f->cond);
      g_mutex_unlock (&f->lock);
      store_ingest_free (job->in);
      g_free (job);
      return;
    }
  job->in->spool_id = id;
  store_ingest_submit (f->st, g_steal_pointer (&job->in),
                       store_bench_ingest_done, job);
}

static void
store_bench_submit (store_bench_fill *f, GRand *r, guint64 i, guint subject)
{
  g_autofree char *addr = store_bench_addr (subject);
  g_autofree char *text = store_bench_text (r);
  const char *queue = store_bench_queues[g_rand_int_range (
      r, 0, STORE_BENCH_NQUEUES)];
  gint64 now = g_get_real_time ();
  g_autofree char *subj = g_strdup_printf ("About my %s, enquiry %"
                                           G_GUINT64_FORMAT, queue, i);
  g_autofree char *mid = g_strdup_printf ("bench-%" G_GUINT64_FORMAT
                                          ".%u@mail.example.org", i,
                                          g_rand_int (r));
  g_autofree char *hdr = g_strdup_printf (
      "Received: from mail.example.org (mail.example.org [192.0.2.25])\r\n"
      "\tby intake.council.example with ESMTPS; %" G_GINT64_FORMAT "\r\n"
      "From: Person %u <%s>\r\n"
      "To: enquiries@council.example\r\n"
      "Subject: %s\r\n"
      "Message-ID: <%s>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "\r\n", now, subject, addr, subj, mid);
  GString *raw = g_string_new (hdr);
  store_bench_job *job = g_new0 (store_bench_job, 1);
  store_ingest *in = store_ingest_new ();
  GBytes *bytes;

  g_string_append (raw, text);
  bytes = g_string_free_to_bytes (raw);

  in->env = store_bench_env (addr, now);
  in->raw = g_bytes_ref (bytes);
  in->from_addr = g_strdup (addr);
  in->from_name = g_strdup_printf ("Person %u", subject);
  in->subject = g_steal_pointer (&subj);
  in->message_id = g_steal_pointer (&mid);
  in->text = g_steal_pointer (&text);
  in->queue = g_strdup (queue);
  in->kind = g_strdup ("enquiry");
  in->ref_prefix = g_strdup ("ESC");
  in->priority = g_strdup ("normal");
  in->headers = g_strdup (hdr);
  job->f = f;
  job->in = in;

  g_mutex_lock (&f->lock);
  f->inflight++;
  g_mutex_unlock (&f->lock);
  store_spool_submit (f->st, store_bench_env (addr, now), bytes,
                      store_bench_spool_done, job);
}

static gboolean
store_bench_do_fill (store_bench_fill *f, const store_bench_opts *o)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (o->seed);
  gint64 t0 = g_get_monotonic_time ();
  gint64 last_t = t0;
  guint64 last_n = 0;
  double secs;

  printf ("fill: %" G_GUINT64_FORMAT " cases from %u subjects, up to %u"
          " in flight\n", o->cases, o->subjects, o->inflight);
  fflush (stdout);
  for (guint64 i = 0; i < o->cases; i++)
    {
      g_mutex_lock (&f->lock);
      while (f->inflight >= o->inflight)
        g_cond_wait (&f->cond, &f->lock);
      gboolean stop = f->failed > 0;
      g_mutex_unlock (&f->lock);
      if (stop)
        break;
      store_bench_submit (f, r, i, (guint) (i % o->subjects));

      if ((i & 1023) == 0)
        {
          gint64 now = g_get_monotonic_time ();
          if (now - last_t >= STORE_BENCH_PROGRESS_US)
            {
              gint64 wal = store_bench_file_size (f->wal);
              g_mutex_lock (&f->lock);
              guint64 n = f->filed;
              g_mutex_unlock (&f->lock);
              f->wal_max = MAX (f->wal_max, wal);
              printf ("  %9" G_GUINT64_FORMAT " filed  %6.0f s  %7.0f cases/s"
                      " (last %.0f s: %.0f/s)  WAL %.0f MB\n", n,
                      (now - t0) / 1e6, n / ((now - t0) / 1e6),
                      (now - last_t) / 1e6,
                      (n - last_n) / ((now - last_t) / 1e6), wal / 1048576.0);
              fflush (stdout);
              last_t = now;
              last_n = n;
            }
        }
    }
  g_mutex_lock (&f->lock);
  while (f->inflight > 0)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);
  secs = (g_get_monotonic_time () - t0) / 1e6;
  f->wal_max = MAX (f->wal_max, store_bench_file_size (f->wal));
  printf ("fill: %" G_GUINT64_FORMAT " cases filed in %.1f s = %.0f cases/s"
          " (spool commit + ingest commit each); largest WAL seen %.0f MB\n",
          f->filed, secs, f->filed / secs, f->wal_max / 1048576.0);
  if (f->failed > 0)
    {
      fprintf (stderr, "store_bench: %" G_GUINT64_FORMAT " failed;"
               " first: %s\n", f->failed, f->first_error);
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------ timings */

static int
store_bench_cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
store_bench_pct (GArray *ms, double p)
{
  guint i = (guint) (p * (ms->len - 1) + 0.5);
  return g_array_index (ms, double, MIN (i, ms->len - 1));
}

/* Sort @ms and print one line; TRUE if p99 is under @target.  */
static gboolean
store_bench_report (const char *what, GArray *ms, double target)
{
  double p50, p99, max;

  if (ms->len == 0)
    {
      /* --lookups or --pages too small to time this one */
      printf ("%-34s n=0\n", what);
      return TRUE;
    }
  g_array_sort (ms, store_bench_cmp_double);
  p50 = store_bench_pct (ms, 0.50);
  p99 = store_bench_pct (ms, 0.99);
  max = g_array_index (ms, double, ms->len - 1);
  printf ("%-34s n=%u  p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms"
          "  (target p99 < %.0f ms: %s)\n", what, ms->len, p50, p99, max,
          target, p99 < target ? "PASS" : "MISS");
  return p99 < target;
}

static gboolean
store_bench_lookups (store *st, const store_bench_opts *o, GRand *r,
                     GArray *ms)
{
  guint expect_min = (guint) (o->cases / o->subjects);

  for (guint i = 0; i < o->lookups + STORE_BENCH_WARMUP; i++)
    {
      guint subject = g_rand_int_range (r, 0, (gint32) o->subjects);
      g_autofree char *addr = store_bench_addr (subject);
      g_autoptr (GError) error = NULL;
      gint64 t0 = g_get_monotonic_time ();
      store_subject_view *v = store_subject_find (st, addr, &error);
      double dt = (g_get_monotonic_time () - t0) / 1000.0;

      if (v == NULL || g_strcmp0 (v->addr, addr) != 0
          || v->case_refs->len < expect_min)
        {
          fprintf (stderr, "store_bench: lookup of subject %u: %s\n",
                   subject, v == NULL ? error->message
                   : "wrong address or too few cases");
          store_subject_view_free (v);
          return FALSE;
        }
      store_subject_view_free (v);
      if (i >= STORE_BENCH_WARMUP)
        g_array_append_val (ms, dt);
    }
  return TRUE;
}

static gboolean
store_bench_pages (store *st, const store_bench_opts *o, GRand *r,
                   gint64 max_id, GArray *first, GArray *deep)
{
  for (guint i = 0; i < o->pages + STORE_BENCH_WARMUP; i++)
    {
      store_case_filter cf = { 0 };
      g_autoptr (GError) error = NULL;
      GPtrArray *page;
      gint64 t0;
      double dt;

      cf.queue = store_bench_queues[g_rand_int_range (r, 0,
                                                      STORE_BENCH_NQUEUES)];
      cf.limit = STORE_BENCH_PAGE;
      cf.before_id = (i & 1) ? 1 + (gint64) (g_rand_double (r) * max_id) : 0;
      t0 = g_get_monotonic_time ();
      page = store_case_find (st, &cf, &error);
      dt = (g_get_monotonic_time () - t0) / 1000.0;
      if (page == NULL)
        {
          fprintf (stderr, "store_bench: queue page: %s\n", error->message);
          return FALSE;
        }
      for (guint k = 0; k < page->len; k++)
        {
          store_case_view *v = page->pdata[k];
          if (g_strcmp0 (v->queue, cf.queue) != 0 || v->from_addr == NULL
              || v->subject == NULL)
            {
              fprintf (stderr, "store_bench: queue page: a case that is not"
                       " in %s or does not open\n", cf.queue);
              g_ptr_array_unref (page);
              return FALSE;
            }
        }
      /* Each queue gets about 1/8 of the cases: with 16 pages' worth in
       * the store, a first page must be full.  */
      if (cf.before_id == 0 && o->cases >= 16 * STORE_BENCH_PAGE
          && page->len != STORE_BENCH_PAGE)
        {
          fprintf (stderr, "store_bench: first page of %s has %u cases\n",
                   cf.queue, page->len);
          g_ptr_array_unref (page);
          return FALSE;
        }
      g_ptr_array_unref (page);
      if (i >= STORE_BENCH_WARMUP)
        g_array_append_val ((i & 1) ? deep : first, dt);
    }
  return TRUE;
}

/* ------------------------------------------------------------ sizes */

/* Bytes of each table and index (the dbstat virtual table; skipped where
 * SQLite was built without it).  Read-only, on the closed store's file.  */
static void
store_bench_breakdown (const char *db, guint64 cases)
{
  sqlite3 *h = NULL;
  sqlite3_stmt *q = NULL;

  if (sqlite3_open_v2 (db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK
      || sqlite3_prepare_v2 (h, "SELECT name, sum(pgsize) AS b FROM dbstat"
                                " GROUP BY name ORDER BY b DESC", -1, &q,
                             NULL) != SQLITE_OK)
    {
      printf ("  (no per-table breakdown: %s)\n", h ? sqlite3_errmsg (h)
                                                    : "cannot open");
      sqlite3_close (h);
      return;
    }
  printf ("  per table/index (dbstat), bytes per case:\n");
  while (sqlite3_step (q) == SQLITE_ROW)
    {
      gint64 b = sqlite3_column_int64 (q, 1);
      if (b * 200 < (gint64) (cases * 4096) && b < 1024 * 1024)
        continue;               /* below 0.5% of a 4 KB/case store */
      printf ("    %-28s %12" G_GINT64_FORMAT " B  %8.1f\n",
              (const char *) sqlite3_column_text (q, 0), b,
              (double) b / cases);
    }
  sqlite3_finalize (q);
  if (sqlite3_prepare_v2 (h, "PRAGMA freelist_count", -1, &q, NULL)
      == SQLITE_OK && sqlite3_step (q) == SQLITE_ROW)
    printf ("    free pages: %" G_GINT64_FORMAT "\n",
            (gint64) sqlite3_column_int64 (q, 0));
  sqlite3_finalize (q);
  sqlite3_close (h);
}

/* ------------------------------------------------------------ main */

static gboolean
store_bench_parse_u64 (const char *s, guint64 min, guint64 max, guint64 *out)
{
  guint64 v;

  if (!g_ascii_string_to_unsigned (s, 10, min, max, &v, NULL))
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
store_bench_args (int argc, char **argv, store_bench_opts *o)
{
  o->cases = STORE_BENCH_CASES;
  o->subjects = STORE_BENCH_SUBJECTS;
  o->inflight = STORE_BENCH_INFLIGHT;
  o->lookups = STORE_BENCH_QUERIES;
  o->pages = STORE_BENCH_QUERIES;
  o->seed = 4;
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      guint64 v;

      if (i + 1 >= argc)
        return FALSE;
      if (strcmp (a, "--dir") == 0)
        {
          o->dir = argv[++i];
          continue;
        }
      if (!store_bench_parse_u64 (argv[++i], 1, 100000000, &v))
        return FALSE;
      if (strcmp (a, "--cases") == 0)
        o->cases = v;
      else if (strcmp (a, "--subjects") == 0)
        o->subjects = (guint) v;
      else if (strcmp (a, "--inflight") == 0)
        o->inflight = (guint) v;
      else if (strcmp (a, "--lookups") == 0)
        o->lookups = (guint) v;
      else if (strcmp (a, "--pages") == 0)
        o->pages = (guint) v;
      else if (strcmp (a, "--seed") == 0)
        o->seed = (guint32) v;
      else
        return FALSE;
    }
  if (o->subjects > o->cases)
    o->subjects = (guint) o->cases;
  return TRUE;
}

int
main (int argc, char **argv)
{
  store_bench_opts o = { 0 };
  g_autofree char *dir = NULL;
  g_autofree char *keyfile = NULL;
  g_autofree char *db = NULL;
  g_autofree char *wal = NULL;
  g_autoptr (GError) error = NULL;
  store_keys *keys = NULL;
  store_bench_fill f = { 0 };
  gint64 db_bytes, wal_bytes;
  int rc = 1;

  store_library_init ();        /* as intaked does, before any database */

  if (!store_bench_args (argc, argv, &o))
    {
      fprintf (stderr, "usage: store_bench [--cases N] [--subjects S]"
               " [--dir DIR] [--inflight K] [--lookups N] [--pages N]"
               " [--seed N]\n");
      return 2;
    }
  store_keys_init ();
  g_mutex_init (&f.lock);
  g_cond_init (&f.cond);
  if (o.dir != NULL)
    {
      if (g_mkdir_with_parents (o.dir, 0700) != 0)
        {
          fprintf (stderr, "store_bench: %s: %s\n", o.dir, g_strerror (errno));
          return 1;
        }
      dir = g_strdup (o.dir);
    }
  else if ((dir = g_dir_make_tmp ("intake-store-bench-XXXXXX", &error))
           == NULL)
    {
      fprintf (stderr, "store_bench: %s\n", error->message);
      return 1;
    }
  keyfile = g_build_filename (dir, "master.key", NULL);
  db = g_build_filename (dir, "intake.db", NULL);
  wal = g_strconcat (db, "-wal", NULL);
  if (g_file_test (db, G_FILE_TEST_EXISTS))
    {
      fprintf (stderr, "store_bench: %s exists; give an empty --dir\n", db);
      goto out;
    }
  printf ("store bench: %s (SQLite %s, WAL, synchronous=FULL)\n", db,
          sqlite3_libversion ());
  if (!store_keys_generate (keyfile, &error)
      || (keys = store_keys_load (keyfile, &error)) == NULL
      || (f.st = store_open (db, keys, STORE_OPEN_WRITER, &error)) == NULL)
    {
      fprintf (stderr, "store_bench: %s\n", error->message);
      goto out;
    }
  f.wal = wal;
  /* it files each row from its spool completion, never listing the
   * spool: the spool feed would only hold rows nobody takes */
  store_spool_feed_set_enabled (f.st, FALSE);
  if (!store_bench_do_fill (&f, &o))
    {
      store_close (&f.st);
      goto out;
    }
  {
    gint64 t0 = g_get_monotonic_time ();
    wal_bytes = store_bench_file_size (wal);
    store_close (&f.st);
    printf ("close: %.1f s (WAL of %.1f MB checkpointed into the database)\n",
            (g_get_monotonic_time () - t0) / 1e6, wal_bytes / 1048576.0);
  }

  db_bytes = store_bench_file_size (db);
  wal_bytes = store_bench_file_size (wal);
  printf ("size: database %.1f MB + WAL %.1f MB = %.1f MB for %"
          G_GUINT64_FORMAT " cases\n", db_bytes / 1048576.0,
          wal_bytes / 1048576.0, (db_bytes + wal_bytes) / 1048576.0,
          f.filed);
  store_bench_breakdown (db, f.filed);

  {
    g_autoptr (GRand) r = g_rand_new_with_seed (o.seed + 1);
    g_autoptr (GArray) lookup = g_array_new (FALSE, FALSE, sizeof (double));
    g_autoptr (GArray) first = g_array_new (FALSE, FALSE, sizeof (double));
    g_autoptr (GArray) deep = g_array_new (FALSE, FALSE, sizeof (double));
    g_autoptr (GArray) all = g_array_new (FALSE, FALSE, sizeof (double));
    store *rd = store_open (db, keys, 0, &error);
    gboolean ok;

    if (rd == NULL)
      {
        fprintf (stderr, "store_bench: reopen: %s\n", error->message);
        goto out;
      }
    ok = store_bench_lookups (rd, &o, r, lookup)
         && store_bench_pages (rd, &o, r, f.max_case_id, first, deep);
    store_close (&rd);
    if (!ok)
      goto out;
    g_array_append_vals (all, first->data, first->len);
    g_array_append_vals (all, deep->data, deep->len);

    printf ("\n== Case store, %" G_GUINT64_FORMAT " cases / %u subjects"
            " (reader connection, %u untimed calls first)\n", f.filed,
            o.subjects, STORE_BENCH_WARMUP);
    store_bench_report ("subject lookup by address", lookup,
                        STORE_BENCH_LOOKUP_MS);
    store_bench_report ("queue page of 50 (all)", all, STORE_BENCH_PAGE_MS);
    store_bench_report ("  first page", first, STORE_BENCH_PAGE_MS);
    store_bench_report ("  page before a random id", deep,
                        STORE_BENCH_PAGE_MS);
    printf ("database bytes per case: %.0f (%.1f MB total, after checkpoint)"
            "\n", (double) (db_bytes + wal_bytes) / MAX (f.filed, 1),
            (db_bytes + wal_bytes) / 1048576.0);
  }
  rc = 0;

out:
  g_mutex_clear (&f.lock);
  g_cond_clear (&f.cond);
  g_free (f.first_error);
  store_keys_free (&keys);
  if (o.dir == NULL && dir != NULL)
    {
      const char *names[] = { "intake.db", "intake.db-wal", "intake.db-shm",
                              "master.key" };
      for (guint i = 0; i < G_N_ELEMENTS (names); i++)
        {
          g_autofree char *p = g_build_filename (dir, names[i], NULL);
          g_unlink (p);
        }
      if (g_rmdir (dir) != 0)
        fprintf (stderr, "store_bench: %s not removed: %s\n", dir,
                 g_strerror (errno));
    }
  return rc;
}
