/*
 * router_dump.c - every field of router_decide_text()'s result for each
 * text of one or more CSV files (first column), one line a decision: for
 * checking that a change to the router leaves every decision the same,
 * byte for byte (tests/bench/router_same.sh runs it on a base and a new
 * build and compares).
 *
 *   router_dump [--conf conf/intake.conf] FILE.csv...
 *   router_dump --tokens FILE.csv...     (the classifier's tokens instead)
 *
 * Each text is decided three ways: as a form's body with no subject; as an
 * SMTP body with its first 50 bytes as the subject (a cut that may fall
 * inside a character); and, every seventh text, with the text as subject
 * and those 50 bytes as body.  Scores are printed as %.17g.
 */
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "intake/intake_config.h"
#include "router/classify.h"
#include "router/router.h"

static void
dump (router *rt, const char *tag, guint i, const char *subject,
      const char *body, const char *source, const char *const *rcpts)
{
  router_context ctx = { .source = source, .recipients = rcpts,
                         .envelope_from = "resident@example.org" };
  router_result res;

  ctx.received = g_date_time_new_utc (2026, 12, 2, 12, 0, 0);
  router_decide_text (rt, NULL, subject, body, &ctx, &res);
  printf ("%s:%u q=%s k=%s p=%s rule=%s:%u sla=%s ret=%s lim=%d"
          " due=%" G_GINT64_FORMAT "/%d fired=",
          tag, i, res.d.queue, res.d.kind, res.d.priority, res.d.rule,
          res.d.line, res.d.sla ? res.d.sla : "-",
          res.d.retention ? res.d.retention : "-", res.d.limit_hit,
          res.due_at, res.due_beyond);
  for (guint j = 0; j < res.d.fired->len; j++)
    printf ("%s|", (char *) res.d.fired->pdata[j]);
  printf (" tags=");
  for (guint j = 0; j < res.d.tags->len; j++)
    printf ("%s|", (char *) res.d.tags->pdata[j]);
  printf (" kinds=");
  for (guint j = 0; j < res.n_kinds; j++)
    printf ("%s:%.17g,", res.kinds[j].label, res.kinds[j].score);
  printf (" topics=");
  for (guint j = 0; j < res.n_topics; j++)
    printf ("%s:%.17g,", res.topics[j].label, res.topics[j].score);
  printf (" hash=%s reasons=%s\n", res.rules_hash, res.reasons);
  g_date_time_unref (ctx.received);
  router_result_clear (&res);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  const char *conf = "conf/intake.conf";
  const char *none[] = { NULL };
  const char *enq[] = { "enquiries@council.example", NULL };
  const char *foi[] = { "foi@council.example",
                        "complaints@council.example", NULL };
  gboolean tokens = FALSE;
  int a = 1;
  router *rt;

  for (; a < argc && g_str_has_prefix (argv[a], "--"); a++)
    if (strcmp (argv[a], "--conf") == 0 && a + 1 < argc)
      conf = argv[++a];
    else if (strcmp (argv[a], "--tokens") == 0)
      tokens = TRUE;
  g_autoptr (intake_config) cfg = intake_config_load (conf, &error);
  if (cfg == NULL || cfg->rules == NULL)
    {
      fprintf (stderr, "router_dump: %s\n",
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
      fprintf (stderr, "router_dump: %s\n", error->message);
      return 1;
    }
  for (; a < argc; a++)
    {
      g_autoptr (classify_csv) csv = classify_csv_read (argv[a], "kind",
                                                        &error);
      if (csv == NULL)
        {
          fprintf (stderr, "router_dump: %s\n", error->message);
          return 1;
        }
      for (guint i = 0; i < csv->texts->len; i++)
        {
          const char *t = csv->texts->pdata[i];
          g_autofree char *subj = g_strndup (t, 50);

          if (tokens)
            {
              g_auto (GStrv) toks = classify_tokenize (t, -1);
              g_autofree char *j = g_strjoinv (" ", toks);

              printf ("%s:%u %s\n", argv[a], i, j);
              continue;
            }
          dump (rt, argv[a], i, NULL, t, "form", none);
          dump (rt, argv[a], i, subj, t, "smtp", enq);
          if (i % 7 == 0)
            dump (rt, argv[a], i, t, subj, "imap", foi);
        }
    }
  router_free (rt);
  return 0;
}
