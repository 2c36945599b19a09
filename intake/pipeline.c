/*
 * pipeline.c - draining the spool into cases.
 *
 * Owns: one thread and its batch.  Every batch is handed to the store in
 * one go, so the writer commits it as one transaction; the next batch is
 * read only when the last one is done.  A row that does not open or whose
 * ingest fails is logged by id and skipped for this run; it stays in the
 * spool for a person.
 */
#define G_LOG_DOMAIN "intake-pipeline"

#include "intake/pipeline.h"

#include "parser/parser_headers.h"

#define PIPELINE_BATCH 128
/* Accepting mail comes first: while messages are arriving (one was spooled
 * less than QUIET ago), a batch waits, polling every POLL, for at most
 * YIELD; so a burst is spooled at full speed and turned into cases right
 * after it, and under sustained load cases still open once per YIELD.  */
#define PIPELINE_YIELD_US (2 * G_TIME_SPAN_SECOND)
#define PIPELINE_QUIET_US (50 * G_TIME_SPAN_MILLISECOND)
#define PIPELINE_POLL_US  (10 * G_TIME_SPAN_MILLISECOND)
/* A message whose ingest failed (database busy, disk full) is tried again
 * after this long; it stays in the spool meanwhile.  */
#define PIPELINE_RETRY_US (30 * G_TIME_SPAN_SECOND)

struct pipeline {
  store *st;
  intake_config *cfg;
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean kicked;
  gboolean stop;
  guint outstanding;          /* ingests not yet completed */
  GHashTable *failed;         /* spool id -> monotonic time of failure */
};

void
pipeline_kick (pipeline *p)
{
  g_mutex_lock (&p->lock);
  p->kicked = TRUE;
  g_cond_signal (&p->cond);
  g_mutex_unlock (&p->lock);
}

typedef struct {
  pipeline *p;
  gint64 spool_id;
} pipeline_done_ctx;

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
  p->outstanding--;
  g_cond_signal (&p->cond);
  g_mutex_unlock (&p->lock);
  g_free (ctx);
}

static store_ingest *
pipeline_prepare (pipeline *p, store_spool_item *item)
{
  g_autoptr (parser_headers) h = parser_headers_parse (item->raw);
  store_ingest *in = store_ingest_new ();

  in->spool_id = item->id;
  in->env = g_steal_pointer (&item->env);
  in->raw = g_steal_pointer (&item->raw);
  in->from_addr = g_steal_pointer (&h->from_addr);
  in->from_name = g_steal_pointer (&h->from_name);
  in->subject = g_steal_pointer (&h->subject);
  in->message_id = g_steal_pointer (&h->message_id);
  in->queue = g_strdup (p->cfg->default_queue);
  in->kind = g_strdup ("enquiry");
  in->ref_prefix = g_strdup (p->cfg->ref_prefix);
  return in;
}

/* One batch: returns the number of rows taken.  */
static guint
pipeline_batch (pipeline *p, gint64 *after)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) items = NULL;
  gint64 until = g_get_monotonic_time () + PIPELINE_YIELD_US;
  guint taken = 0;

  while (g_get_monotonic_time () - store_spool_last_submit (p->st)
             < PIPELINE_QUIET_US
         && g_get_monotonic_time () < until && !p->stop)
    g_usleep (PIPELINE_POLL_US);
  items = store_spool_list (p->st, *after, PIPELINE_BATCH, &error);
  if (items == NULL)
    {
      g_warning ("event=spool-read-failed error=%s", error->message);
      return 0;
    }
  for (guint i = 0; i < items->len; i++)
    {
      store_spool_item *item = items->pdata[i];
      pipeline_done_ctx *ctx;

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
      ctx = g_new0 (pipeline_done_ctx, 1);
      ctx->p = p;
      ctx->spool_id = item->id;
      g_mutex_lock (&p->lock);
      p->outstanding++;
      g_mutex_unlock (&p->lock);
      store_ingest_submit (p->st, pipeline_prepare (p, item),
                           pipeline_ingest_done, ctx);
      taken++;
    }
  /* Wait for the batch: the store commits it as one transaction.  */
  g_mutex_lock (&p->lock);
  while (p->outstanding > 0)
    g_cond_wait (&p->cond, &p->lock);
  g_mutex_unlock (&p->lock);
  return items->len;
}

static gpointer
pipeline_main (gpointer data)
{
  pipeline *p = data;

  for (;;)
    {
      gint64 after = 0;
      guint n;

      g_mutex_lock (&p->lock);
      p->kicked = FALSE;
      g_mutex_unlock (&p->lock);

      /* A full pass over the spool, batch by batch.  */
      do
        {
          n = pipeline_batch (p, &after);
          g_mutex_lock (&p->lock);
          gboolean stop = p->stop;
          g_mutex_unlock (&p->lock);
          if (stop)
            return NULL;
        }
      while (n == PIPELINE_BATCH);

      g_mutex_lock (&p->lock);
      if (!p->kicked && !p->stop)
        g_cond_wait_until (&p->cond, &p->lock,
                           g_get_monotonic_time () + 5 * G_TIME_SPAN_SECOND);
      gboolean stop = p->stop;
      g_mutex_unlock (&p->lock);
      if (stop)
        return NULL;
    }
}

pipeline *
pipeline_start (store *st, intake_config *cfg)
{
  pipeline *p = g_new0 (pipeline, 1);

  p->st = st;
  p->cfg = cfg;
  g_mutex_init (&p->lock);
  g_cond_init (&p->cond);
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
  g_mutex_unlock (&p->lock);
  g_thread_join (p->thread);
  g_hash_table_unref (p->failed);
  g_mutex_clear (&p->lock);
  g_cond_clear (&p->cond);
  g_free (p);
  *pp = NULL;
}
