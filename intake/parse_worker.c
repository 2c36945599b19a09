/*
 * parse_worker.c - a parse worker: one request at a time.
 *
 * Owns: the IPC channel and the lexicon.  Each IPC_PARSE frame is unpacked
 * (a frame it cannot read ends the worker: the master is the only peer and
 * never sends one), parsed, packed and answered with IPC_PARSED.
 */
#define G_LOG_DOMAIN "intake-parse"

#include "intake/parse_worker.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "intake/ipc.h"
#include "parser/parser.h"
#include "parser/parser_text.h"

struct parse_worker {
  intake_config *cfg;
  GMainLoop *loop;
  ipc_channel *ipc;
  parser_lexicon *lexicon;
  char *fault_crash;          /* INTAKE_FAULT_PARSE_CRASH */
  char *fault_hang;           /* INTAKE_FAULT_PARSE_HANG */
};

/* Fault injection for the supervision and quarantine tests: a message
 * containing the marker in INTAKE_FAULT_PARSE_CRASH kills the worker as a
 * GMime crash would, one containing INTAKE_FAULT_PARSE_HANG spins as a
 * parse that never ends would.  Inert unless the variable is set.  */
static void
parse_worker_faults (parse_worker *w, GBytes *raw)
{
  gsize n;
  const char *p = g_bytes_get_data (raw, &n);

  if (w->fault_crash && memmem (p, n, w->fault_crash, strlen (w->fault_crash)))
    abort ();
  if (w->fault_hang && memmem (p, n, w->fault_hang, strlen (w->fault_hang)))
    for (;;)
      g_usleep (G_USEC_PER_SEC);
}

static void
parse_worker_on_frame (ipc_channel *ch, guint8 type, GBytes *payload,
                       gpointer data)
{
  parse_worker *w = data;
  g_autoptr (store_envelope) env = NULL;
  g_autoptr (GBytes) raw = NULL;
  g_autoptr (GBytes) packed = NULL;
  g_autoptr (GBytes) frame = NULL;
  g_autoptr (parser_message) msg = NULL;
  g_autofree const char **rcpts = NULL;
  parser_context ctx = { 0 };
  guint64 req;

  if (type != IPC_PARSE || !ipc_submit_unpack (payload, &req, &env, &raw))
    {
      g_warning ("event=bad-frame type=%u", type);
      g_main_loop_quit (w->loop);
      return;
    }
  rcpts = g_new0 (const char *, env->rcpts->len + 1);
  for (guint i = 0; i < env->rcpts->len; i++)
    rcpts[i] = env->rcpts->pdata[i];
  ctx.envelope_from = env->mail_from;
  ctx.envelope_rcpts = rcpts;
  ctx.lexicon = w->lexicon;
  parse_worker_faults (w, raw);
  msg = parser_message_parse (raw, &ctx);
  packed = parser_message_pack (msg);
  frame = ipc_parsed_pack (req, packed);
  ipc_channel_send (w->ipc, IPC_PARSED, frame);
}

static void
parse_worker_on_closed (ipc_channel *ch, gpointer data)
{
  parse_worker *w = data;

  g_main_loop_quit (w->loop);
}

parse_worker *
parse_worker_new (intake_config *cfg, int ipc_fd, GMainLoop *loop,
                  GError **error)
{
  parse_worker *w = g_new0 (parse_worker, 1);

  w->cfg = cfg;
  w->loop = loop;
  w->fault_crash = g_strdup (g_getenv ("INTAKE_FAULT_PARSE_CRASH"));
  w->fault_hang = g_strdup (g_getenv ("INTAKE_FAULT_PARSE_HANG"));
  if (w->fault_crash && !*w->fault_crash)
    g_clear_pointer (&w->fault_crash, g_free);
  if (w->fault_hang && !*w->fault_hang)
    g_clear_pointer (&w->fault_hang, g_free);
  parser_init ();
  if (cfg->special_categories != NULL)
    {
      w->lexicon = parser_lexicon_load (cfg->special_categories, error);
      if (w->lexicon == NULL)
        {
          g_free (w);
          return NULL;
        }
    }
  w->ipc = ipc_channel_new (ipc_fd,
                            cfg->session.max_message + IPC_ENVELOPE_MAX + 64,
                            parse_worker_on_frame, parse_worker_on_closed, w);
  return w;
}

void
parse_worker_limit (intake_config *cfg)
{
  struct rlimit rl;

  rl.rlim_cur = rl.rlim_max = 0;
  setrlimit (RLIMIT_CORE, &rl);
#if !defined(__SANITIZE_ADDRESS__)
  /* ASan reserves terabytes of address space; only plain builds get the
   * address-space limit.  */
  rl.rlim_cur = rl.rlim_max = (rlim_t) cfg->parse_memory_mb * 1024 * 1024;
  setrlimit (RLIMIT_AS, &rl);
#endif
}

void
parse_worker_ready (parse_worker *w)
{
  g_autoptr (GBytes) empty = g_bytes_new (NULL, 0);

  ipc_channel_send (w->ipc, IPC_READY, empty);
}

void
parse_worker_free (parse_worker **wp)
{
  parse_worker *w = wp ? *wp : NULL;

  if (w == NULL)
    return;
  ipc_channel_free (&w->ipc);
  if (w->lexicon)
    parser_lexicon_free (w->lexicon);
  g_free (w->fault_crash);
  g_free (w->fault_hang);
  g_free (w);
  *wp = NULL;
}
