/*
 * parse_pool.c - sending messages to the parse workers and taking their
 * answers, on the pipeline thread's context.
 *
 * Owns: one slot per worker (its IPC channel, a pidfd of its process, the
 * messages sent to it in order, the deadline of the one in hand) and the
 * queue of messages no worker has yet.  A worker writes each answer whole
 * before it reads the next message (parse_worker.c), so when its socket
 * ends the first message it was sent and did not answer is the one it
 * died on: that one is failed, the ones behind it go back to the queue
 * uncounted.
 * Refuses: a frame that is not the answer to the message in hand (the
 * worker is ended); answers are not checked here (the caller unpacks
 * them, and reports a refusal).
 */
#define G_LOG_DOMAIN "intake-pipeline"

#include "intake/parse_pool.h"

#include <signal.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "intake/ipc.h"

/* Messages sent to one worker and not yet answered: it starts on the next
 * as soon as it has written an answer, whenever the pipeline thread gets
 * to read it.  A worker is topped up only once it holds LOW or fewer, so
 * that one write carries several messages.  */
#define PARSE_POOL_DEPTH 8
#define PARSE_POOL_LOW   4
/* [parser] workers is at most this (intake_config.c).  */
#define PARSE_POOL_WORKERS_MAX 16

typedef struct {
  guint64 req;
  GBytes *frame;               /* the whole IPC_PARSE frame */
  parse_pool_done done;
  gpointer user_data;
} parse_pool_job;

typedef struct {
  parse_pool *pp;
  guint index;
  guint generation;            /* bumped at each attach */
  ipc_channel *ipc;            /* (nullable) */
  gboolean gone;               /* its socket ended (ipc kept until the next
                                * attach: it may be inside its own call) */
  int pidfd;                   /* -1: none */
  gboolean ready;              /* said IPC_READY */
  GQueue sent;                 /* parse_pool_job *, head: in hand */
  gint64 deadline;             /* monotonic: the head must be answered */
  GSource *timer;              /* (nullable) fires at or after deadline */
  gboolean timed_out;          /* ended for overrunning ... */
  gpointer timed_out_job;      /* ... on this message (compared only) */
  gboolean refused;
} parse_pool_worker;

struct parse_pool {
  GMainContext *ctx;
  parse_pool_worker *workers;
  guint n_workers;
  guint timeout_s;
  gsize max_frame;
  GQueue pending;              /* parse_pool_job *, no worker yet */
  guint64 next_req;
  gint stopping;               /* atomic */
};

static void parse_pool_gone (parse_pool_worker *w);

static void
parse_pool_job_free (parse_pool_job *j)
{
  g_bytes_unref (j->frame);
  g_free (j);
}

static void
parse_pool_job_fail (parse_pool_job *j, const char *failure)
{
  j->done (NULL, failure, 0, j->user_data);
  parse_pool_job_free (j);
}

static guint64
parse_pool_worker_id (parse_pool_worker *w)
{
  return ((guint64) w->index << 32) | w->generation;
}

static void
parse_pool_kill (parse_pool_worker *w)
{
  if (w->pidfd >= 0)
    pidfd_send_signal (w->pidfd, SIGKILL, NULL, 0);
}

/* ----------------------------------------------------------- deadline */

static gboolean parse_pool_timeout (gpointer data);

static void
parse_pool_timer_set (parse_pool_worker *w, guint ms)
{
  if (w->timer != NULL)
    {
      g_source_destroy (w->timer);
      g_source_unref (w->timer);
    }
  w->timer = g_timeout_source_new (ms);
  g_source_set_callback (w->timer, parse_pool_timeout, w, NULL);
  g_source_attach (w->timer, w->pp->ctx);
}

/* The message now in hand has the whole allowance.  The timer is not
 * made again for every message: one runs while the worker has work and,
 * when it fires early, sleeps again until the deadline of the message in
 * hand then.  */
static void
parse_pool_arm (parse_pool_worker *w)
{
  w->deadline = g_get_monotonic_time ()
                + (gint64) w->pp->timeout_s * G_TIME_SPAN_SECOND;
  if (w->timer == NULL)
    parse_pool_timer_set (w, w->pp->timeout_s * 1000);
}

static gboolean
parse_pool_timeout (gpointer data)
{
  parse_pool_worker *w = data;
  gint64 now = g_get_monotonic_time ();

  g_source_unref (w->timer);
  w->timer = NULL;
  if (w->ipc == NULL || w->gone || w->sent.length == 0)
    return G_SOURCE_REMOVE;
  if (now < w->deadline)
    {
      parse_pool_timer_set (w, (guint) ((w->deadline - now + 999) / 1000));
      return G_SOURCE_REMOVE;
    }
  /* Over its budget: the worker is ended, the message counted as failed
   * once (when its socket ends).  */
  w->timed_out = TRUE;
  w->timed_out_job = g_queue_peek_head (&w->sent);
  parse_pool_kill (w);
  return G_SOURCE_REMOVE;
}

/* ----------------------------------------------------------- sending */

/* Whether @w takes messages now: running, ready, not being ended, and
 * down to LOW or fewer in hand (or taking some already this round).  */
static gboolean
parse_pool_open (parse_pool_worker *w)
{
  return w->ipc != NULL && !w->gone && w->ready && !w->timed_out
         && !w->refused;
}

void
parse_pool_dispatch (parse_pool *pp)
{
  gboolean take[PARSE_POOL_WORKERS_MAX];
  guint n = MIN (pp->n_workers, PARSE_POOL_WORKERS_MAX);

  if (pp->pending.length == 0)
    return;
  for (guint i = 0; i < n; i++)
    take[i] = parse_pool_open (&pp->workers[i])
              && pp->workers[i].sent.length <= PARSE_POOL_LOW;
  /* Round by round, so that the messages spread over the workers: after
   * round d every worker taking holds more than d.  */
  for (guint depth = 0; depth < PARSE_POOL_DEPTH && pp->pending.length > 0;
       depth++)
    for (guint i = 0; i < n && pp->pending.length > 0; i++)
      {
        parse_pool_worker *w = &pp->workers[i];
        parse_pool_job *j;

        if (!take[i] || w->sent.length > depth)
          continue;
        j = g_queue_pop_head (&pp->pending);
        ipc_channel_queue_frame (w->ipc, j->frame);
        g_queue_push_tail (&w->sent, j);
        if (w->sent.length == 1)
          parse_pool_arm (w);
      }
  for (guint i = 0; i < n; i++)
    if (take[i])
      ipc_channel_push (pp->workers[i].ipc);
}

void
parse_pool_submit (parse_pool *pp, GBytes *raw, const store_envelope *env,
                   parse_pool_done done, gpointer user_data)
{
  parse_pool_job *j;

  if (g_atomic_int_get (&pp->stopping))
    {
      done (NULL, "shutdown", 0, user_data);
      return;
    }
  j = g_new0 (parse_pool_job, 1);
  j->req = ++pp->next_req;
  j->frame = ipc_submit_frame (IPC_PARSE, j->req, env, raw);
  j->done = done;
  j->user_data = user_data;
  g_queue_push_tail (&pp->pending, j);
}

/* ----------------------------------------------------------- answers */

static void
parse_pool_on_frame (ipc_channel *ch, guint8 type, GBytes *payload,
                     gpointer data)
{
  parse_pool_worker *w = data;
  parse_pool_job *j = g_queue_peek_head (&w->sent);
  GBytes *packed = NULL;
  guint64 req;

  if (g_atomic_int_get (&w->pp->stopping))
    return;
  if (type == IPC_READY && !w->ready && j == NULL)
    {
      w->ready = TRUE;
      parse_pool_dispatch (w->pp);
      return;
    }
  if (type != IPC_PARSED || j == NULL
      || !ipc_parsed_unpack (payload, &req, &packed) || req != j->req)
    {
      g_warning ("event=bad-frame child=parse/%u type=%u", w->index, type);
      if (packed != NULL)
        g_bytes_unref (packed);
      parse_pool_kill (w);
      return;
    }
  g_queue_pop_head (&w->sent);
  if (w->sent.length > 0)
    parse_pool_arm (w);
  j->done (packed, NULL, parse_pool_worker_id (w), j->user_data);
  parse_pool_job_free (j);
  if (w->sent.length <= PARSE_POOL_LOW)
    parse_pool_dispatch (w->pp);
}

static void
parse_pool_on_closed (ipc_channel *ch, gpointer data)
{
  parse_pool_gone (data);
}

/* The worker's socket ended (it exited, or it is to be replaced): the
 * message in hand is failed (or, stopping, answered "shutdown"; or put
 * back when the worker was ended for something else: an earlier answer
 * refused, or a deadline that the message then in hand met after all),
 * the ones behind it go back to the front of the queue, in order.  */
static void
parse_pool_gone (parse_pool_worker *w)
{
  parse_pool *pp = w->pp;
  gboolean stopping = g_atomic_int_get (&pp->stopping);
  parse_pool_job *j;

  if (w->gone)
    return;
  w->gone = TRUE;
  w->ready = FALSE;
  /* A worker that ended its socket but lives on is broken.  */
  parse_pool_kill (w);
  if (w->pidfd >= 0)
    close (w->pidfd);
  w->pidfd = -1;
  while ((j = g_queue_pop_tail (&w->sent)) != NULL)
    {
      gboolean head = w->sent.length == 0;

      if (stopping)
        parse_pool_job_fail (j, "shutdown");
      else if (head && !w->refused
               && (!w->timed_out || w->timed_out_job == j))
        {
          const char *why = w->timed_out ? "timeout" : "crash";

          g_message ("event=parse-failed child=parse/%u reason=%s",
                     w->index, why);
          parse_pool_job_fail (j, why);
        }
      else
        g_queue_push_head (&pp->pending, j);
    }
  w->timed_out = FALSE;
  w->timed_out_job = NULL;
  w->refused = FALSE;
  parse_pool_dispatch (pp);
}

void
parse_pool_refused (parse_pool *pp, guint64 worker)
{
  guint index = (guint) (worker >> 32);
  parse_pool_worker *w = index < pp->n_workers ? &pp->workers[index] : NULL;

  /* the same worker still (not one started since) */
  if (w == NULL || w->ipc == NULL || w->gone
      || w->generation != (guint) worker || w->refused)
    return;
  g_warning ("event=bad-parse-result child=parse/%u", w->index);
  w->refused = TRUE;
  parse_pool_kill (w);
}

/* ----------------------------------------------------------- workers */

typedef struct {
  parse_pool *pp;
  guint slot;
  int fd;
  int pidfd;
} parse_pool_attachment;

static gboolean
parse_pool_attach_main (gpointer data)
{
  parse_pool_attachment *a = data;
  parse_pool_worker *w = &a->pp->workers[a->slot];

  if (w->ipc != NULL)
    {
      /* what the old one wrote before it went is not lost */
      if (!w->gone)
        ipc_channel_drain (w->ipc);
      parse_pool_gone (w);
      ipc_channel_free (&w->ipc);
    }
  w->generation++;
  w->gone = FALSE;
  w->ready = FALSE;
  w->pidfd = a->pidfd;
  w->ipc = ipc_channel_new (a->fd, a->pp->max_frame, parse_pool_on_frame,
                            parse_pool_on_closed, w);
  g_free (a);
  return G_SOURCE_REMOVE;
}

void
parse_pool_attach (parse_pool *pp, guint slot, int fd, int pidfd)
{
  parse_pool_attachment *a = g_new (parse_pool_attachment, 1);

  g_assert (slot < pp->n_workers);
  a->pp = pp;
  a->slot = slot;
  a->fd = fd;
  a->pidfd = pidfd;
  g_main_context_invoke (pp->ctx, parse_pool_attach_main, a);
}

/* Everything queued or in a worker is answered "shutdown" now (the
 * messages stay in the spool); what the workers send after is dropped.  */
static gboolean
parse_pool_stopping_main (gpointer data)
{
  parse_pool *pp = data;
  parse_pool_job *j;

  while ((j = g_queue_pop_head (&pp->pending)) != NULL)
    parse_pool_job_fail (j, "shutdown");
  for (guint i = 0; i < pp->n_workers; i++)
    {
      parse_pool_worker *w = &pp->workers[i];

      w->ready = FALSE;
      while ((j = g_queue_pop_head (&w->sent)) != NULL)
        parse_pool_job_fail (j, "shutdown");
    }
  return G_SOURCE_REMOVE;
}

void
parse_pool_stopping (parse_pool *pp)
{
  g_atomic_int_set (&pp->stopping, 1);
  g_main_context_invoke (pp->ctx, parse_pool_stopping_main, pp);
}

parse_pool *
parse_pool_new (GMainContext *ctx, guint n_workers, guint timeout_s,
                gsize max_frame)
{
  parse_pool *pp = g_new0 (parse_pool, 1);

  pp->ctx = g_main_context_ref (ctx);
  pp->n_workers = CLAMP (n_workers, 1, PARSE_POOL_WORKERS_MAX);
  pp->timeout_s = MAX (timeout_s, 1);
  pp->max_frame = max_frame;
  pp->workers = g_new0 (parse_pool_worker, pp->n_workers);
  for (guint i = 0; i < pp->n_workers; i++)
    {
      pp->workers[i].pp = pp;
      pp->workers[i].index = i;
      pp->workers[i].pidfd = -1;
      g_queue_init (&pp->workers[i].sent);
    }
  g_queue_init (&pp->pending);
  return pp;
}

void
parse_pool_free (parse_pool **ppp)
{
  parse_pool *pp = ppp ? *ppp : NULL;

  if (pp == NULL)
    return;
  g_atomic_int_set (&pp->stopping, 1);
  parse_pool_stopping_main (pp);
  for (guint i = 0; i < pp->n_workers; i++)
    {
      parse_pool_worker *w = &pp->workers[i];
      parse_pool_job *j;

      while ((j = g_queue_pop_head (&w->sent)) != NULL)
        parse_pool_job_fail (j, "shutdown");
      if (w->timer != NULL)
        {
          g_source_destroy (w->timer);
          g_source_unref (w->timer);
        }
      ipc_channel_free (&w->ipc);
      if (w->pidfd >= 0)
        close (w->pidfd);
    }
  g_free (pp->workers);
  g_main_context_unref (pp->ctx);
  g_free (pp);
  *ppp = NULL;
}
