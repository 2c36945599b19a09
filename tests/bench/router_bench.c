/*
 * router_bench.c - routing decisions per second (rules + classifier) on
 * one core, with the example conf/, for synthetic 2 KB messages; and the
 * cost of a decision when a rule holds a pathological regular expression
 * (SECURITY-TESTS 74): it must stay within the match bound.
 *
 *   router_bench [--seconds N] [--conf conf/intake.conf]
 *   router_bench --count N [--conf ...]   (exactly N decisions after 64 to
 *                                          warm up, nothing printed: for
 *                                          valgrind --tool=callgrind, the
 *                                          difference of N and of 0)
 *
 * Target (issue 5): >= 20,000 decisions/s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "intake/intake_config.h"
#include "router/router.h"

static const char *const texts[] = {
  "My wheelie bin was not collected on Tuesday again, the third time this"
  " month. Could someone please come and empty it? ",
  "There is a large pothole outside 14 Mill Lane which damaged my tyre and"
  " the street light opposite has been out for a week. ",
  "Under the Freedom of Information Act 2000 please provide the amount the"
  " council spent on consultants in each of the last three years. ",
  "I would like to make a formal complaint about the way my council tax"
  " single person discount was handled by your staff. ",
  "Someone has dumped a mattress and bags of rubbish in the lane behind"
  " the shops; there is also graffiti on the wall. ",
  "Thank you to the parks team, the playground looks wonderful after the"
  " repairs and the children love the new swings. ",
};

static char *
make_body (guint i, gsize size)
{
  GString *s = g_string_new ("Dear Sir or Madam,\n\n");

  while (s->len < size - 40)
    g_string_append (s, texts[(i + s->len) % G_N_ELEMENTS (texts)]);
  g_string_append (s, "\n\nKind regards,\nA resident\n");
  return g_string_free (s, FALSE);
}

/* CPU time of this thread: "one core" means the decisions a core makes
 * in a second, whatever else the machine is running (wall-clock time
 * would count the time other processes had the core).  */
static double
bench_cpu_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
run (router *rt, rules *with, char **bodies, guint n, double seconds,
     guint *decisions, gboolean *limit_hit)
{
  const char *rcpts[] = { "enquiries@council.example", NULL };
  router_context ctx = { .source = "smtp", .recipients = rcpts,
                         .envelope_from = "resident@example.org" };
  double start = bench_cpu_seconds ();
  guint k = 0;

  ctx.received = g_date_time_new_utc (2026, 12, 2, 12, 0, 0);
  *limit_hit = FALSE;
  do
    {
      for (guint j = 0; j < 200; j++, k++)
        {
          router_result res;
          router_decide_text (rt, with, "Message from a resident",
                              bodies[k % n], &ctx, &res);
          *limit_hit |= res.d.limit_hit;
          router_result_clear (&res);
        }
    }
  while (bench_cpu_seconds () - start < seconds);
  g_date_time_unref (ctx.received);
  *decisions = k;
  return k / (bench_cpu_seconds () - start);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  const char *conf = "conf/intake.conf";
  double seconds = 3;
  gint64 count = -1;
  router *rt;
  char *bodies[64];
  guint n = G_N_ELEMENTS (bodies), decisions;
  double rate, evil_rate;
  gboolean limit;

  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--seconds") == 0 && i + 1 < argc)
      seconds = g_ascii_strtod (argv[++i], NULL);
    else if (strcmp (argv[i], "--conf") == 0 && i + 1 < argc)
      conf = argv[++i];
    else if (strcmp (argv[i], "--count") == 0 && i + 1 < argc)
      count = g_ascii_strtoll (argv[++i], NULL, 10);
  g_autoptr (intake_config) cfg = intake_config_load (conf, &error);
  if (cfg == NULL || cfg->rules == NULL)
    {
      fprintf (stderr, "router_bench: %s\n",
               error ? error->message : "no [routing] rules");
      return 1;
    }
  router_config rc = { .rules = cfg->rules, .kind_model = cfg->kind_model,
                       .topic_model = cfg->topic_model,
                       .holidays = cfg->holidays, .nation = cfg->nation,
                       .clocks = cfg->clocks };
  rt = router_new (&rc, &error);
  if (rt == NULL)
    {
      fprintf (stderr, "router_bench: %s\n", error->message);
      return 1;
    }
  for (guint i = 0; i < n; i++)
    bodies[i] = make_body (i, 2048);

  if (count >= 0)
    {
      /* a fixed number of decisions, to count instructions: the first
       * pass over the bodies fills the stem cache */
      const char *rcpts[] = { "enquiries@council.example", NULL };
      router_context ctx = { .source = "smtp", .recipients = rcpts,
                             .envelope_from = "resident@example.org" };

      ctx.received = g_date_time_new_utc (2026, 12, 2, 12, 0, 0);
      for (gint64 k = 0; k < (gint64) n + count; k++)
        {
          router_result res;
          router_decide_text (rt, NULL, "Message from a resident",
                              bodies[k % n], &ctx, &res);
          router_result_clear (&res);
        }
      g_date_time_unref (ctx.received);
      for (guint i = 0; i < n; i++)
        g_free (bodies[i]);
      router_free (rt);
      return 0;
    }

  printf ("== router: decisions per second of one core's CPU time (%s%s%s)\n",
          cfg->rules, cfg->kind_model ? ", kind model" : "",
          cfg->topic_model ? ", topic model" : "");
  rate = run (rt, NULL, bodies, n, seconds, &decisions, &limit);
  printf ("  2 KB messages: %u decisions, %.0f decisions/s, %.1f us each"
          "  (target >= 20000/s: %s)\n", decisions, rate, 1e6 / rate,
          rate >= 20000 ? "PASS" : "MISS");

  /* the same rules with a catastrophic pattern added, on text that makes
   * it backtrack: the decision stays bounded */
  {
    g_autofree char *text = NULL;
    g_autofree char *path = NULL;
    g_autofree char *evil = NULL;
    char *bad[1];
    rules *draft;
    gsize len;
    int fd = g_file_open_tmp ("router-bench-XXXXXX.conf", &path, &error);

    if (fd < 0 || !g_file_get_contents (cfg->rules, &text, &len, &error))
      {
        fprintf (stderr, "router_bench: %s\n", error->message);
        return 1;
      }
    close (fd);
    evil = g_strconcat ("rule \"pathological\"\n  when body matches"
                        " \"^(a+)+$\" then tag evil\n", text, NULL);
    /* the queues line must come first: put the evil rule after it */
    {
      char *q = strstr (text, "\ndefault ");
      g_free (evil);
      evil = g_strdup_printf ("%.*s\nrule \"pathological\"\n  when body"
                              " matches \"^(a+)+$\" then tag evil\n%s",
                              (int) (q - text), text, q);
    }
    g_file_set_contents (path, evil, -1, &error);
    draft = rules_load (path, &error);
    unlink (path);
    if (draft == NULL)
      {
        fprintf (stderr, "router_bench: %s\n", error->message);
        return 1;
      }
    GString *s = g_string_new (NULL);
    for (int i = 0; i < 2000; i++)
      g_string_append_c (s, 'a');
    g_string_append_c (s, '!');
    bad[0] = g_string_free (s, FALSE);
    evil_rate = run (rt, draft, bad, 1, seconds / 2, &decisions, &limit);
    printf ("  pathological regex ^(a+)+$ on 2,000 'a' + '!': %.0f"
            " decisions/s, %.2f ms each, bound hit: %s\n", evil_rate,
            1e3 / evil_rate, limit ? "yes (counted as no match)" : "no");
    g_free (bad[0]);
    rules_unref (draft);
  }
  for (guint i = 0; i < n; i++)
    g_free (bodies[i]);
  router_free (rt);
  return 0;
}
