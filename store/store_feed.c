/*
 * store_feed.c - the spool feed: rows the writer has just committed to
 * the spool, kept in memory (their id, envelope, packed envelope and a
 * reference to the raw bytes the writer sealed) so that
 * store_spool_list () hands them to the pipeline without reading them
 * back from the database and opening their seals again.
 *
 * The database stays the only truth; the feed only saves work:
 *  - a row is fed after the COMMIT that stored it returned, never for a
 *    job that failed or a batch that rolled back (store.c);
 *  - store_spool_list (after, max) takes from the feed only a run of ids
 *    after + 1, after + 2, ... with no id missing, so no row can lie
 *    between them; the rest of the answer (if the run is shorter than
 *    @max) comes from the database as before;
 *  - every row that store_spool_list () returns, fed or read, leaves the
 *    feed with every fed row at or below it, and the highest id it
 *    returned is remembered (listed): a row the writer feeds after a
 *    reader already saw it (the commit and the feed are not one step) is
 *    not taken in;
 *  - only filing deletes spool rows in intaked, and a row is filed only
 *    after it was listed (so it has left the feed); a quarantine counts
 *    failures of listed rows only.  Anything else that deletes or hides
 *    spool rows in this process must call store_spool_feed_clear ().
 *    A caller that files rows it has not listed (store_bench) turns the
 *    feed off.  Another process (intakectl) deletes no spool rows; if one
 *    ever did, the filing transaction's store_spool_delete ()
 *    (changes () == 1) refuses to file a row that is gone.
 *
 * Bounded: at most STORE_FEED_MAX_BYTES of raw bytes and
 * STORE_FEED_MAX_ROWS rows; a row beyond either is not fed (it is read
 * from the database like any other).  The plaintext held here is what
 * the writer had in memory anyway, kept until the pipeline takes it
 * (docs/design-notes.md "The spool feed").
 *
 * Owns: the fed items.  Thread-safe: the writer feeds, the pipeline (any
 * reader of store_spool_list ()) takes, under one mutex.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

struct store_feed {
  GMutex lock;
  GQueue items;               /* store_spool_item *, ids increasing */
  gsize bytes;                /* their raw bytes */
  gint64 listed;              /* highest id store_spool_list () returned */
  gboolean disabled;
  gboolean full_said;         /* logged since the feed last took a row */
  guint max_rows;             /* STORE_FEED_MAX_ROWS unless a test lowers */
  gsize max_bytes;            /* STORE_FEED_MAX_BYTES, likewise */
  store_spool_feed_stats stats;
};

store_feed *
store_feed_new (void)
{
  store_feed *f = g_new0 (store_feed, 1);
  const char *e = g_getenv ("INTAKE_SPOOL_FEED");

  g_mutex_init (&f->lock);
  g_queue_init (&f->items);
  f->max_rows = STORE_FEED_MAX_ROWS;
  f->max_bytes = STORE_FEED_MAX_BYTES;
  /* off for comparisons (tests, benchmarks): INTAKE_SPOOL_FEED=0 */
  f->disabled = e != NULL && g_strcmp0 (e, "0") == 0;
  return f;
}

static void
store_feed_clear_locked (store_feed *f)
{
  store_spool_item *item;

  while ((item = g_queue_pop_head (&f->items)) != NULL)
    {
      f->stats.dropped++;
      store_spool_item_free (item);
    }
  f->bytes = 0;
}

void
store_feed_free (store_feed **fp)
{
  store_feed *f = *fp;

  if (f == NULL)
    return;
  store_feed_clear_locked (f);
  g_mutex_clear (&f->lock);
  g_free (f);
  *fp = NULL;
}

void
store_feed_add (store *s, gint64 id, store_envelope **env, GBytes *env_bytes,
                GBytes *raw)
{
  store_feed *f = s->feed;
  store_spool_item *last, *item;
  gsize n = g_bytes_get_size (raw);

  g_mutex_lock (&f->lock);
  last = g_queue_peek_tail (&f->items);
  if (f->disabled || id <= f->listed || (last != NULL && id <= last->id))
    goto out;
  if (f->items.length >= f->max_rows || f->bytes + n > f->max_bytes)
    {
      /* once a spell: these rows are read from the database */
      if (!f->full_said)
        g_message ("event=spool-feed-full spool=%" G_GINT64_FORMAT
                   " rows=%u bytes=%" G_GSIZE_FORMAT, id, f->items.length,
                   f->bytes);
      f->full_said = TRUE;
      f->stats.full++;
      goto out;
    }
  f->full_said = FALSE;
  item = g_new0 (store_spool_item, 1);
  item->id = id;
  item->env = g_steal_pointer (env);
  item->env_bytes = g_bytes_ref (env_bytes);
  item->raw = g_bytes_ref (raw);
  g_queue_push_tail (&f->items, item);
  f->bytes += n;
  f->stats.fed++;
out:
  g_mutex_unlock (&f->lock);
}

/* Drop the fed rows up to @id and remember that a reader has seen it.  */
static void
store_feed_passed_locked (store_feed *f, gint64 id)
{
  store_spool_item *item;

  while ((item = g_queue_peek_head (&f->items)) != NULL && item->id <= id)
    {
      g_queue_pop_head (&f->items);
      f->bytes -= g_bytes_get_size (item->raw);
      f->stats.dropped++;
      store_spool_item_free (item);
    }
  if (id > f->listed)
    f->listed = id;
}

guint
store_feed_take_run (store *s, gint64 after_id, guint max, GPtrArray *out)
{
  store_feed *f = s->feed;
  store_spool_item *item;
  gint64 want = after_id + 1;
  guint n = 0;

  g_mutex_lock (&f->lock);
  while (n < max && (item = g_queue_peek_head (&f->items)) != NULL
         && item->id == want)
    {
      g_queue_pop_head (&f->items);
      f->bytes -= g_bytes_get_size (item->raw);
      g_ptr_array_add (out, item);
      want++;
      n++;
    }
  if (n > 0)
    {
      f->stats.taken += n;
      store_feed_passed_locked (f, want - 1);
    }
  g_mutex_unlock (&f->lock);
  return n;
}

store_spool_item *
store_feed_take (store *s, gint64 id)
{
  store_feed *f = s->feed;
  store_spool_item *item, *got = NULL;

  g_mutex_lock (&f->lock);
  /* rows below @id are behind every reader now */
  while ((item = g_queue_peek_head (&f->items)) != NULL && item->id < id)
    {
      g_queue_pop_head (&f->items);
      f->bytes -= g_bytes_get_size (item->raw);
      f->stats.dropped++;
      store_spool_item_free (item);
    }
  if (item != NULL && item->id == id)
    {
      got = g_queue_pop_head (&f->items);
      f->bytes -= g_bytes_get_size (got->raw);
      f->stats.taken++;
    }
  g_mutex_unlock (&f->lock);
  return got;
}

void
store_feed_passed (store *s, gint64 id)
{
  g_mutex_lock (&s->feed->lock);
  store_feed_passed_locked (s->feed, id);
  g_mutex_unlock (&s->feed->lock);
}

void
store_spool_feed_clear (store *s)
{
  g_mutex_lock (&s->feed->lock);
  store_feed_clear_locked (s->feed);
  g_mutex_unlock (&s->feed->lock);
}

void
store_spool_feed_set_enabled (store *s, gboolean on)
{
  g_mutex_lock (&s->feed->lock);
  s->feed->disabled = !on;
  if (!on)
    store_feed_clear_locked (s->feed);
  g_mutex_unlock (&s->feed->lock);
}

void
store_spool_feed_set_limits (store *s, guint rows, gsize bytes)
{
  g_mutex_lock (&s->feed->lock);
  s->feed->max_rows = MIN (rows, STORE_FEED_MAX_ROWS);
  s->feed->max_bytes = MIN (bytes, STORE_FEED_MAX_BYTES);
  g_mutex_unlock (&s->feed->lock);
}

void
store_spool_feed_get_stats (store *s, store_spool_feed_stats *out)
{
  g_mutex_lock (&s->feed->lock);
  *out = s->feed->stats;
  out->rows = s->feed->items.length;
  out->bytes = s->feed->bytes;
  g_mutex_unlock (&s->feed->lock);
}
