/*
 * fuzz_router.c - libFuzzer target for one routing decision (router/):
 * the shipped rules and both models on hostile text.
 *
 * One input is one message's text, made valid UTF-8 first (the parser
 * guarantees that to the router): up to the first line end is the
 * subject, the rest the body.  It goes through router_decide_text() with
 * conf/rules.conf, conf/models/kind.model and conf/models/topic.model
 * (relative to the working directory, or the files named by
 * $FUZZ_ROUTER_RULES, $FUZZ_ROUTER_KIND, $FUZZ_ROUTER_TOPIC), and its
 * reasons JSON must be valid UTF-8.  A decision that does not end is a
 * bug libFuzzer reports as a timeout: the rules' word table once filled
 * up on words that only non-ASCII characters separated and probed for
 * ever (test_rules test_body_words_non_ascii_separators).
 *
 * Owns: everything it allocates per input, freed before returning
 * (LeakSanitizer checks); the router itself lives for the run.
 *
 * Built by `make fuzz-router` (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "router/router.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static router *fuzz_router;

static const char *
fuzz_router_path (const char *env, const char *dflt)
{
  const char *v = getenv (env);

  return v != NULL && *v != '\0' ? v : dflt;
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  GError *error = NULL;
  router_config rc = {
    .rules = fuzz_router_path ("FUZZ_ROUTER_RULES", "conf/rules.conf"),
    .kind_model = fuzz_router_path ("FUZZ_ROUTER_KIND",
                                    "conf/models/kind.model"),
    .topic_model = fuzz_router_path ("FUZZ_ROUTER_TOPIC",
                                     "conf/models/topic.model"),
    .holidays = fuzz_router_path ("FUZZ_ROUTER_HOLIDAYS",
                                  "conf/bank-holidays.json"),
    .nation = "england-and-wales",
  };

  (void) argc;
  (void) argv;
  fuzz_router = router_new (&rc, &error);
  if (fuzz_router == NULL)
    {
      fprintf (stderr, "fuzz_router: %s (run from the repository root)\n",
               error->message);
      exit (1);
    }
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *rcpts[] = { "enquiries@council.example", NULL };
  router_context ctx = { .source = "smtp", .recipients = rcpts,
                         .envelope_from = "resident@example.org" };
  g_autofree char *text = g_utf8_make_valid ((const char *) data,
                                             (gssize) size);
  g_autofree char *reasons = NULL;
  const char *body = "";
  router_result res;
  char *nl;

  /* a NUL ends the text, as it would end a C string from the parser */
  nl = strchr (text, '\n');
  if (nl != NULL)
    {
      *nl = '\0';
      body = nl + 1;
    }
  ctx.received = g_date_time_new_utc (2026, 12, 2, 12, 0, 0);
  router_decide_text (fuzz_router, NULL, text, body, &ctx, &res);
  reasons = router_result_reasons (&res);
  if (reasons == NULL || !g_utf8_validate (reasons, -1, NULL)
      || res.d.queue == NULL || res.d.kind == NULL)
    abort ();
  router_result_clear (&res);
  g_date_time_unref (ctx.received);
  return 0;
}
