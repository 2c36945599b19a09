/*
 * pipeline.c - draining the spool into cases.
 *
 * Owns: one thread, its main context and its batch.  A batch goes to the
 * parse workers whole; each message is routed and handed to the store,
 * in spool order, as soon as its parse is back, so parsing, routing and
 * the writer's transactions (which take whatever is waiting: many cases
 * per commit) overlap; at most PIPELINE_FILING_MAX (fewer while mail
 * arrives) wait for their commit.
 * Parsing happens in the parse workers, whose sockets this thread serves
 * itself (parse_pool.c; the master only starts and restarts them), and
 * their answers are unpacked and checked here: a message whose parse
 * fails is counted in the spool row, and quarantined after [parser]
 * max_failures.  A row that does not open, or whose ingest fails
 * (database busy, disk full), stays in the spool and is tried again later.
 */
#define G_LOG_DOMAIN "intake-pipeline"

#include "intake/pipeline.h"

#include <string.h>

#include "intake/ipc.h"
#include "intake/parse_pool.h"
#include "parser/parser.h"

#define PIPELINE_BATCH 128
/* Messages handed to the store and not yet committed: bounds the memory
 * of a pipeline that routes faster than the writer files, and so how
 * large the writer's transactions grow (it takes whatever is waiting).
 * While the spool drains with no mail arriving, up to FILING_MAX: fewer,
 * larger commits write each page that many messages share (the random
 * leaves of the blind-hash indexes, the tables' last leaves) once for
 * more of them (WAL frames a message 3.1 -> 2.0 in the e2e bench).  While
 * mail arrives, FILING_BUSY, so that a spool commit (the 250 of an SMTP
 * session) waits behind fewer filings.  Either way at most FILING_BYTES
 * of messages (at least one).  */
#define PIPELINE_FILING_MAX (8 * PIPELINE_BATCH)
#define PIPELINE_FILING_BUSY (2 * PIPELINE_BATCH)
#define PIPELINE_FILING_BYTES ((gsize) 64 * 1024 * 1024)
/* Accepting mail comes first: while messages are arriving (one was spooled
 * less than QUIET ago), a batch waits, polling every POLL, for at most
 * YIELD; so a burst is spooled at full speed and turned into cases right
 * after it, and under sustained load a batch still opens once per YIELD
 * (with 2 s, at most 64 cases a second were filed while mail kept coming,
 * however idle the machine).  */
#define PIPELINE_YIELD_US (250 * G_TIME_SPAN_MILLISECOND)
#define PIPELINE_QUIET_US (50 * G_TIME_SPAN_MILLISECOND)
#define PIPELINE_POLL_US  (10 * G_TIME_SPAN_MILLISECOND)
/* ... but while no SMTP session is open anywhere (the SMTP children say
 * so: pipeline_set_receiving ()), nothing more can come by SMTP and the
 * pause need only be this long (a form or an IMAP message just spooled);
 * the last session of a burst closing starts the filing at once instead
 * of 50-60 ms later.  */
#define PIPELINE_QUIET_IDLE_US (5 * G_TIME_SPAN_MILLISECOND)
/* A message whose ingest failed (database busy, disk full) is tried again
 * after this long; it stays in the spool meanwhile.  */
#define PIPELINE_RETRY_US (30 * G_TIME_SPAN_SECOND)
/* While filing, the parse workers' sockets are served (answers read, the
 * next messages sent) at least once every this many messages, waiting or
 * not (a poll that does not block).  */
#define PIPELINE_SERVE_EVERY 8
/* ... and, while it waits for the writer, at least this often.  */
#define PIPELINE_SERVE_US (20 * G_TIME_SPAN_MILLISECOND)

/* Filing latency buckets, seconds (the last is +Inf).  */
static const double pipeline_buckets[] = { 0.1, 0.5, 1, 2, 5, 10, 30, 60,
                                           300 };
#define PIPELINE_N_BUCKETS (G_N_ELEMENTS (pipeline_buckets) + 1)

struct pipeline {
  store *st;
  intake_config *cfg;
  router *rt;                 /* (nullable) */
  GThread *thread;
  GMainContext *ctx;          /* the thread's own: its waits, the parse
                               * workers' sockets (parse_pool.c) */
  parse_pool *pool;
  GMutex lock;
  GCond cond;                 /* the writer's answers (filing) */
  gboolean kicked;
  gint receiving;             /* atomic: an SMTP session is open */
  gboolean stop;
  gboolean idle;              /* under lock: waiting for a kick */
  guint filing;               /* ingests and failure counts not yet
                               * committed: one batch files while the next
                               * is parsed */
  gsize filing_bytes;         /* the messages' bytes among them */
  gboolean room_wanted;       /* the thread waits for pipeline_full_locked ()
                               * to turn FALSE */
  GHashTable *failed;         /* spool id -> monotonic time of failure */
  guint64 latency[PIPELINE_N_BUCKETS];   /* under lock */
  double latency_sum;
  guint64 latency_count;
};

void
pipeline_parse_attach (pipeline *p, guint slot, int fd, int pidfd)
{
  parse_pool_attach (p->pool, slot, fd, pidfd);
}

void
pipeline_parse_stopping (pipeline *p)
{
  parse_pool_stopping (p->pool);
}

/* Called for every message committed to the spool: a wake-up (a write
 * to the context's eventfd) only when the thread is waiting for one.  */
void
pipeline_kick (pipeline *p)
{
  g_mutex_lock (&p->lock);
  p->kicked = TRUE;
  if (p->idle)
    g_main_context_wakeup (p->ctx);
  g_mutex_unlock (&p->lock);
}

typedef struct {
  pipeline *p;
  gint64 spool_id;
  gint64 received_at;         /* unix us */
  gsize bytes;                /* counted in filing_bytes */
} pipeline_done_ctx;

void
pipeline_set_receiving (pipeline *p, gboolean on)
{
  g_atomic_int_set (&p->receiving, on ? 1 : 0);
}

/* How long after the last message spooled mail still counts as
 * arriving.  */
static gint64
pipeline_quiet_us (pipeline *p)
{
  return g_atomic_int_get (&p->receiving) ? PIPELINE_QUIET_US
                                          : PIPELINE_QUIET_IDLE_US;
}

/* Whether no more may be handed to the store now (under lock).  */
static gboolean
pipeline_full_locked (pipeline *p)
{
  gboolean arriving = g_get_monotonic_time ()
                          - store_spool_last_submit (p->st)
                      < pipeline_quiet_us (p);

  return p->filing >= (arriving ? PIPELINE_FILING_BUSY : PIPELINE_FILING_MAX)
         || (p->filing > 0 && p->filing_bytes >= PIPELINE_FILING_BYTES);
}

/* One commit answered.  The pipeline thread is woken only when what it
 * waits for came: room for more, or nothing left filing; waking it for
 * every case of a batch cost it and the writer a round trip each.  */
static void
pipeline_filed_locked (pipeline *p, gsize bytes)
{
  p->filing--;
  p->filing_bytes -= bytes;
  if (p->filing == 0 || (p->room_wanted && !pipeline_full_locked (p)))
    {
      p->room_wanted = FALSE;
      g_cond_signal (&p->cond);
    }
}

static void
pipeline_ingest_done (gint64 case_id, const GError *error, gpointer data)
{
  pipeline_done_ctx *ctx = data;
  pipeline *p = ctx->p;

  g_mutex_lock (&p->lock);
  if (error != NULL)
    {
      g_warning ("event=ingest-failed spool=%" G_GINT64_FORMAT " error=%s",
                 ctx->spool_id, error->message);
      gint64 *when = g_new (gint64, 1);
      *when = g_get_monotonic_time ();
      g_hash_table_insert (p->failed,
                           g_memdup2 (&ctx->spool_id, sizeof ctx->spool_id),
                           when);
    }
  else if (ctx->received_at > 0)
    {
      double secs = (g_get_real_time () - ctx->received_at) / 1e6;
      guint b = 0;
      while (b < G_N_ELEMENTS (pipeline_buckets)
             && secs > pipeline_buckets[b])
        b++;
      p->latency[b]++;
      p->latency_sum += secs;
      p->latency_count++;
    }
  pipeline_filed_locked (p, ctx->bytes);
  g_mutex_unlock (&p->lock);
  g_free (ctx);
}

/* (transfer full) (nullable) The language of what we send back, from
 * [languages]: the form's ("form:NAME"; X-Intake-Form is ours only when we
 * built the message), else the first recipient mailbox's (a plus-address
 * counts as its mailbox).  NULL: English.  */
static char *
pipeline_language (const intake_config *cfg, const store_envelope *env,
                   const parser_message *m)
{
  const char *v = NULL;

  if (cfg->languages == NULL || g_hash_table_size (cfg->languages) == 0)
    return NULL;
  if (g_strcmp0 (env->source, "form") == 0)
    for (guint i = 0; v == NULL && i < m->header_names->len; i++)
      if (g_ascii_strcasecmp (m->header_names->pdata[i], "X-Intake-Form")
          == 0)
        {
          g_autofree char *key = g_ascii_strdown (
              m->header_values->pdata[i], -1);
          g_autofree char *form = g_strconcat ("form:", g_strstrip (key),
                                               NULL);
          v = g_hash_table_lookup (cfg->languages, form);
        }
  for (guint i = 0; v == NULL && i < env->rcpts->len; i++)
    {
      g_autofree char *lower = g_ascii_strdown (env->rcpts->pdata[i], -1);
      const char *at = strrchr (lower, '@');
      char *plus = at ? memchr (lower, '+', (gsize) (at - lower)) : NULL;

      if (plus != NULL)
        memmove (plus, at, strlen (at) + 1);
      v = g_hash_table_lookup (cfg->languages, lower);
    }
  return g_strcmp0 (v, "cy") == 0 ? g_strdup ("cy") : NULL;
}

/* (transfer full) What the store files for @m: decided (routed) first,
 * then the parse result's strings and lists are moved into it, not
 * copied: @m is freed right after, and what is left of it must not be
 * read again.  */
static store_ingest *
pipeline_prepare (pipeline *p, store_spool_item *item, parser_message *m)
{
  store_ingest *in = store_ingest_new ();
  GPtrArray *swap;

  in->spool_id = item->id;
  in->env = g_steal_pointer (&item->env);
  in->env_packed = g_steal_pointer (&item->env_bytes);
  in->raw = g_steal_pointer (&item->raw);
  in->anomalies = m->anomalies;
  in->special = m->special;
  in->auto_reply = m->auto_reply;
  in->n_attachments = m->attachments->len;
  if (m->header_names->len > 0)
    {
      GString *h = g_string_sized_new (256);
      /* "%s: %s\n" without printf, which cost a couple of µs a message */
      for (guint i = 0; i < m->header_names->len
                        && i < m->header_values->len; i++)
        {
          g_string_append (h, m->header_names->pdata[i]);
          g_string_append_len (h, ": ", 2);
          g_string_append (h, m->header_values->pdata[i]);
          g_string_append_c (h, '\n');
        }
      in->headers = g_string_free (h, FALSE);
    }
  in->ref_prefix = g_strdup (p->cfg->ref_prefix);
  /* acknowledge only a person: never an auto-reply, bounce, list or bulk
   * mail, the null sender, or one of our own addresses (no loops) */
  if (p->cfg->smarthost != NULL && p->cfg->acks && !m->auto_reply
      && !m->is_report && in->env->mail_from != NULL
      && *in->env->mail_from != '\0')
    {
      g_autofree char *lower = g_ascii_strdown (in->env->mail_from, -1);
      const char *at = strrchr (lower, '@');
      in->ack_wanted = at != NULL
                       && !g_hash_table_contains (p->cfg->mailboxes, lower)
                       && !g_hash_table_contains (p->cfg->domains, at + 1);
    }
  in->language = pipeline_language (p->cfg, in->env, m);
  in->ack_per_day = p->cfg->ack_per_day;
  in->loop_messages = p->cfg->loop_messages;
  in->loop_minutes = p->cfg->loop_minutes;
  if (p->rt != NULL)
    {
      router_result res;
      g_autoptr (GDateTime) when = g_date_time_new_from_unix_utc (
          in->env->received_at / G_USEC_PER_SEC);
      g_autofree const char **rcpts = g_new0 (const char *,
                                              in->env->rcpts->len + 1);
      router_context rc = { .source = in->env->source,
                            .recipients = rcpts,
                            .envelope_from = in->env->mail_from,
                            .received = when };

      /* X-Intake-Form is ours only when we built the message */
      if (g_strcmp0 (in->env->source, "form") == 0)
        for (guint i = 0; i < m->header_names->len; i++)
          if (g_ascii_strcasecmp (m->header_names->pdata[i],
                                  "X-Intake-Form") == 0)
            rc.form = m->header_values->pdata[i];

      for (guint i = 0; i < in->env->rcpts->len; i++)
        rcpts[i] = in->env->rcpts->pdata[i];
      router_decide (p->rt, NULL, m, &rc, &res);
      in->queue = g_strdup (res.d.queue);
      in->kind = g_strdup (res.d.kind);
      in->priority = g_strdup (res.d.priority);
      in->due_at = res.due_at;
      in->reasons = g_steal_pointer (&res.reasons);
      in->rules_hash = g_steal_pointer (&res.rules_hash);
      router_result_clear (&res);
    }
  else
    {
      in->queue = g_strdup (p->cfg->default_queue);
      in->kind = g_strdup ("enquiry");
    }

  /* Decided: what the store keeps of @m is moved, not copied.  Both
   * sides' lists free their strings with g_free.  */
  if (m->from != NULL)
    {
      in->from_addr = g_steal_pointer (&m->from->addr);
      in->from_name = g_steal_pointer (&m->from->name);
    }
  in->subject = g_steal_pointer (&m->subject);
  in->message_id = g_steal_pointer (&m->message_id);
  in->text = g_steal_pointer (&m->text);
  in->quoted = g_steal_pointer (&m->quoted);
  in->in_reply_to = g_steal_pointer (&m->in_reply_to);
  swap = in->references;
  in->references = m->references;
  m->references = swap;
  swap = in->case_refs;
  in->case_refs = m->case_refs;
  m->case_refs = swap;
  for (guint i = 0; i < m->attachments->len; i++)
    {
      parser_attachment *pa = m->attachments->pdata[i];
      store_attachment *a = store_attachment_new ();

      a->name = g_steal_pointer (&pa->name);
      a->declared_type = g_steal_pointer (&pa->declared_type);
      a->detected_type = g_steal_pointer (&pa->detected_type);
      memcpy (a->sha256, pa->sha256, sizeof a->sha256);
      a->content = g_steal_pointer (&pa->content);
      a->flags = pa->flags;
      g_ptr_array_add (in->attachments, a);
    }
  return in;
}

/* One message of a batch, from its spool row to its parse result.  */
typedef struct pipeline_item {
  pipeline *p;
  store_spool_item *item;
  GBytes *packed;             /* (nullable) the worker's answer, as it
                               * came: unpacked (checked) in this thread */
  guint64 worker;             /* who gave it */
  char *failure;              /* (nullable) why the parse failed */
  gboolean parsed;            /* under lock: packed or failure is set */
} pipeline_item;

/* On the pipeline's thread (the parse pool runs on its context).  */
static void
pipeline_on_parsed (GBytes *packed, const char *failure, guint64 worker,
                    gpointer data)
{
  pipeline_item *pi = data;

  pi->packed = packed;
  pi->worker = worker;
  pi->failure = g_strdup (failure);
  pi->parsed = TRUE;
}

static void
pipeline_fail_done (gint64 quarantined, const GError *error, gpointer data)
{
  pipeline_done_ctx *ctx = data;
  pipeline *p = ctx->p;

  if (error != NULL)
    g_warning ("event=failure-not-recorded spool=%" G_GINT64_FORMAT
               " error=%s", ctx->spool_id, error->message);
  else if (quarantined == 1)
    g_message ("event=quarantined spool=%" G_GINT64_FORMAT, ctx->spool_id);
  g_mutex_lock (&p->lock);
  pipeline_filed_locked (p, ctx->bytes);
  g_mutex_unlock (&p->lock);
  g_free (ctx);
}

/* Wait until the writer has answered every filing job handed to it
 * (@all), or enough of them that there is room for more.  Not on the
 * context: every answer of a parse worker would wake the thread (a
 * worker's socket is a source of it); the workers' sockets are served
 * before, and every PIPELINE_SERVE_US meanwhile (their deadlines, a
 * worker restarting; and the room, which mail arriving can shrink).  */
static void
pipeline_wait_filed (pipeline *p, gboolean all)
{
  g_main_context_iteration (p->ctx, FALSE);
  g_mutex_lock (&p->lock);
  while (all ? p->filing > 0 : pipeline_full_locked (p))
    {
      p->room_wanted = !all;
      if (!g_cond_wait_until (&p->cond, &p->lock,
                              g_get_monotonic_time () + PIPELINE_SERVE_US))
        {
          g_mutex_unlock (&p->lock);
          g_main_context_iteration (p->ctx, FALSE);
          g_mutex_lock (&p->lock);
        }
    }
  p->room_wanted = FALSE;
  g_mutex_unlock (&p->lock);
}

/* A batch: its spool rows, read and handed to the parse workers, and
 * the parses to file in spool order.  */
typedef struct {
  GPtrArray *items;           /* store_spool_item *, owned */
  GPtrArray *work;            /* pipeline_item *, in spool order */
  gboolean full;              /* the spool may hold more after it */
} pipeline_fetched;

/* Read the next batch after *@after and send it to the parse workers.
 * @hold: while mail is arriving, wait (at most PIPELINE_YIELD_US) for a
 * pause first; without it, give up at once then (NULL), so that reading
 * ahead never delays the batch being filed nor takes from acceptance.
 * NULL too when nothing is left or the spool cannot be read.  */
static pipeline_fetched *
pipeline_fetch (pipeline *p, gint64 *after, gboolean hold)
{
  g_autoptr (GError) error = NULL;
  pipeline_fetched *f;
  GPtrArray *items;
  GPtrArray *work;
  gint64 until = g_get_monotonic_time () + PIPELINE_YIELD_US;

  for (;;)
    {
      gint64 now = g_get_monotonic_time ();
      gint64 quiet_at = store_spool_last_submit (p->st)
                        + pipeline_quiet_us (p);

      if (now >= quiet_at || now >= until || p->stop)
        break;
      if (!hold)
        return NULL;
      /* until the pause is long enough, but look again every POLL: the
       * last session may close meanwhile */
      g_usleep (MIN (PIPELINE_POLL_US, quiet_at - now));
    }
  items = store_spool_list (p->st, *after, PIPELINE_BATCH, &error);
  if (items == NULL)
    {
      g_warning ("event=spool-read-failed error=%s", error->message);
      return NULL;
    }
  if (items->len == 0)
    {
      g_ptr_array_unref (items);
      return NULL;
    }
  work = g_ptr_array_new ();

  /* 1. Every readable row to the parse workers.  */
  for (guint i = 0; i < items->len; i++)
    {
      store_spool_item *item = items->pdata[i];
      pipeline_item *pi;

      *after = item->id;
      if (item->error != NULL)
        {
          g_warning ("event=spool-row-unreadable spool=%" G_GINT64_FORMAT
                     " error=%s", item->id, item->error->message);
          continue;
        }
      g_mutex_lock (&p->lock);
      gint64 *failed_at = g_hash_table_lookup (p->failed, &item->id);
      gboolean wait = failed_at != NULL
                      && g_get_monotonic_time () - *failed_at
                             < PIPELINE_RETRY_US;
      if (failed_at != NULL && !wait)
        g_hash_table_remove (p->failed, &item->id);
      g_mutex_unlock (&p->lock);
      if (wait)
        continue;
      pi = g_new0 (pipeline_item, 1);
      pi->p = p;
      pi->item = item;
      g_ptr_array_add (work, pi);
      parse_pool_submit (p->pool, item->raw, item->env, pipeline_on_parsed,
                         pi);
    }
  /* one write to each worker for all of them */
  parse_pool_dispatch (p->pool);
  f = g_new0 (pipeline_fetched, 1);
  f->items = items;
  f->work = work;
  f->full = items->len == PIPELINE_BATCH;
  return f;
}

/* File a batch (and free it): *@failed if a parse failed.  */
static void
pipeline_file (pipeline *p, pipeline_fetched *f, gboolean *failed)
{
  GPtrArray *work = f->work;

  /* 2. In spool order, each message as soon as it is parsed: a case for
   * a parsed one, a failure counted for the others.  Filing overlaps
   * parsing; the store groups what is waiting into one transaction.  */
  for (guint i = 0; i < work->len; i++)
    {
      pipeline_item *pi = work->pdata[i];
      pipeline_done_ctx *ctx;
      parser_message *msg = NULL;
      gboolean pool_stopped = FALSE;

      /* The workers' answers are read here, in this thread, whenever it
       * waits (for an answer, or for the writer); and, so that they are
       * never left without work while it routes, every few messages.  */
      if (i % PIPELINE_SERVE_EVERY == PIPELINE_SERVE_EVERY - 1)
        g_main_context_iteration (p->ctx, FALSE);
      for (;;)
        {
          g_mutex_lock (&p->lock);
          gboolean full = pipeline_full_locked (p);
          gboolean stop = p->stop;
          g_mutex_unlock (&p->lock);
          if (pi->parsed && !full)
            break;
          if (full)
            {
              pipeline_wait_filed (p, FALSE);
              continue;
            }
          /* stopped without the master's shutdown (a start that
           * failed): nothing would answer; the pool answers everything
           * "shutdown" at once (on this thread) */
          if (stop && !pool_stopped)
            {
              pool_stopped = TRUE;
              parse_pool_stopping (p->pool);
              continue;
            }
          g_main_context_iteration (p->ctx, TRUE);
        }
      if (pi->packed != NULL)
        {
          g_autoptr (GError) error = NULL;

          /* The worker's answer is as untrusted as the message it read:
           * every bound, string, flag and hash is checked here.  One
           * that fails is a worker failure: this message is counted (a
           * fresh worker tries it again; quarantined after the last) and
           * the worker is ended.  */
          msg = parser_message_unpack (pi->packed, &error);
          g_clear_pointer (&pi->packed, g_bytes_unref);
          if (msg == NULL)
            {
              g_warning ("event=bad-parse-result spool=%" G_GINT64_FORMAT
                         " error=%s", pi->item->id, error->message);
              pi->failure = g_strdup ("bad-result");
              parse_pool_refused (p->pool, pi->worker);
            }
        }
      ctx = g_new0 (pipeline_done_ctx, 1);
      ctx->p = p;
      ctx->spool_id = pi->item->id;
      if (msg != NULL)
        {
          store_ingest *in = pipeline_prepare (p, pi->item, msg);
          ctx->received_at = in->env->received_at;
          ctx->bytes = g_bytes_get_size (in->raw);
          g_mutex_lock (&p->lock);
          p->filing++;
          p->filing_bytes += ctx->bytes;
          g_mutex_unlock (&p->lock);
          store_ingest_submit (p->st, in, pipeline_ingest_done, ctx);
        }
      else if (g_strcmp0 (pi->failure, "shutdown") != 0)
        {
          *failed = TRUE;
          g_mutex_lock (&p->lock);
          p->filing++;
          g_mutex_unlock (&p->lock);
          store_spool_fail_submit (p->st, pi->item->id, pi->failure,
                                   p->cfg->parse_max_failures,
                                   pipeline_fail_done, ctx);
        }
      else
        g_free (ctx);
      /* what filing needs was taken: the parse result goes now */
      parser_message_free (msg);
      g_free (pi->failure);
      g_free (pi);
    }
  g_ptr_array_unref (work);
  g_ptr_array_unref (f->items);
  g_free (f);
}

static gboolean
pipeline_tick (gpointer data)
{
  return G_SOURCE_REMOVE;
}

static gpointer
pipeline_main (gpointer data)
{
  pipeline *p = data;

  g_main_context_push_thread_default (p->ctx);
  for (;;)
    {
      gint64 after = 0;

      g_mutex_lock (&p->lock);
      p->kicked = FALSE;
      g_mutex_unlock (&p->lock);

      /* A full pass over the spool, batch by batch.  The next batch is
       * read and sent to the parse workers before this one is filed, so
       * that they parse while it is filed (reading a batch, between two,
       * left them idle).  */
      gboolean failed = FALSE;
      pipeline_fetched *cur = pipeline_fetch (p, &after, TRUE);

      while (cur != NULL)
        {
          gboolean full = cur->full;
          pipeline_fetched *next = full && !failed
                                       ? pipeline_fetch (p, &after, FALSE)
                                       : NULL;

          pipeline_file (p, cur, &failed);
          g_mutex_lock (&p->lock);
          gboolean stop = p->stop;
          g_mutex_unlock (&p->lock);
          if (stop)
            {
              if (next != NULL)
                pipeline_file (p, next, &failed);
              pipeline_wait_filed (p, TRUE);
              goto out;
            }
          if (next == NULL && failed)
            {
              /* A parse failure is counted; go round again at once, so
               * that a poisonous message reaches quarantine without
               * waiting; rows still being filed must not be read again. */
              pipeline_wait_filed (p, TRUE);
              after = 0;
              failed = FALSE;
              next = pipeline_fetch (p, &after, TRUE);
            }
          else if (next == NULL && full)
            next = pipeline_fetch (p, &after, TRUE);
          cur = next;
        }
      pipeline_wait_filed (p, TRUE);

      /* Nothing left: wait for a kick, at most 5 s (the parse workers'
       * sockets are served meanwhile: a worker restarting says it is
       * ready).  */
      gint64 until = g_get_monotonic_time () + 5 * G_TIME_SPAN_SECOND;
      GSource *tick = g_timeout_source_new_seconds (5);

      g_source_set_callback (tick, pipeline_tick, NULL, NULL);
      g_source_attach (tick, p->ctx);
      for (;;)
        {
          g_mutex_lock (&p->lock);
          gboolean go = p->kicked || p->stop
                        || g_get_monotonic_time () >= until;
          p->idle = !go;
          g_mutex_unlock (&p->lock);
          if (go)
            break;
          g_main_context_iteration (p->ctx, TRUE);
        }
      g_source_destroy (tick);
      g_source_unref (tick);
      g_mutex_lock (&p->lock);
      gboolean stop = p->stop;
      g_mutex_unlock (&p->lock);
      if (stop)
        goto out;
    }
out:
  /* the workers' sockets and whatever was left with them: the master
   * has stopped them (or never started any) */
  parse_pool_free (&p->pool);
  g_main_context_pop_thread_default (p->ctx);
  return NULL;
}

pipeline *
pipeline_start (store *st, intake_config *cfg, router *rt)
{
  pipeline *p = g_new0 (pipeline, 1);

  p->rt = rt;
  p->st = st;
  p->cfg = cfg;
  g_mutex_init (&p->lock);
  g_cond_init (&p->cond);
  p->ctx = g_main_context_new ();
  p->pool = parse_pool_new (p->ctx, cfg->parse_workers, cfg->parse_timeout_s,
                            cfg->session.max_message + IPC_ENVELOPE_MAX
                                + 64);
  p->failed = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                     g_free);
  p->thread = g_thread_new ("pipeline", pipeline_main, p);
  return p;
}

void
pipeline_stop (pipeline **pp)
{
  pipeline *p = pp ? *pp : NULL;

  if (p == NULL)
    return;
  g_mutex_lock (&p->lock);
  p->stop = TRUE;
  g_cond_broadcast (&p->cond);
  g_main_context_wakeup (p->ctx);
  g_mutex_unlock (&p->lock);
  g_thread_join (p->thread);
  g_hash_table_unref (p->failed);
  g_main_context_unref (p->ctx);
  g_mutex_clear (&p->lock);
  g_cond_clear (&p->cond);
  g_free (p);
  *pp = NULL;
}

void
pipeline_metrics (pipeline *p, GString *out)
{
  guint64 cum = 0;

  g_string_append_printf (out, "# HELP intake_smtp_receiving Whether an SMTP"
                               " session is open (the pipeline then waits"
                               " for a pause in arrivals).\n"
                               "# TYPE intake_smtp_receiving gauge\n"
                               "intake_smtp_receiving %d\n",
                          g_atomic_int_get (&p->receiving));
  g_mutex_lock (&p->lock);
  g_string_append (out, "# HELP intake_filing_latency_seconds From arrival"
                        " to the case being written.\n"
                        "# TYPE intake_filing_latency_seconds histogram\n");
  for (guint b = 0; b < PIPELINE_N_BUCKETS; b++)
    {
      cum += p->latency[b];
      if (b < G_N_ELEMENTS (pipeline_buckets))
        g_string_append_printf (out, "intake_filing_latency_seconds_bucket"
                                     "{le=\"%g\"} %" G_GUINT64_FORMAT "\n",
                                pipeline_buckets[b], cum);
      else
        g_string_append_printf (out, "intake_filing_latency_seconds_bucket"
                                     "{le=\"+Inf\"} %" G_GUINT64_FORMAT "\n",
                                cum);
    }
  g_string_append_printf (out, "intake_filing_latency_seconds_sum %.6f\n"
                               "intake_filing_latency_seconds_count %"
                               G_GUINT64_FORMAT "\n", p->latency_sum,
                          p->latency_count);
  g_mutex_unlock (&p->lock);
}
