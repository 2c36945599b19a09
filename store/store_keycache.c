/*
 * store_keycache.c - the writer's cache of unwrapped data keys.
 *
 * Opening a subject's data key costs a vault read, a BLAKE2b, an AEAD open
 * and, without this cache, was most of what filing a message from a known
 * sender cost the writer (docs/performance.md).  The writer thread keeps
 * the keys it opened lately, by subject id, together with the exact
 * wrapped form they came from: a key is used again only for a subject row
 * that still holds those same wrapped bytes (a rewrap by key rotation, or
 * a subject id handed out again after a rolled-back batch, is a miss).
 *
 * Owns: STORE_KEYCACHE_SLOTS keys in one sodium_malloc block (locked,
 * guarded, left out of core dumps), wiped when a slot is reused, when an
 * entry is STORE_KEYCACHE_TTL_US old, and all at once by
 * store_keycache_clear ().
 * Refuses: nothing; a caller that finds no entry unwraps as before.
 * Not thread-safe: the writer thread is its only user.
 *
 * Erasure: a subject being erased is marked (subjects.erasing_at) and
 * committed before its vault secret goes, so the writer, which reads the
 * subject row inside its own write transaction, never takes a cached key
 * for a marked subject (store_case.c) and drops it here; an erasure in this
 * process also clears the whole cache (store_keycache_epoch), and a key of
 * a subject erased by another process (intakectl) is wiped by the TTL.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>

#include <sodium.h>

/* Senders whose keys stay open: a burst from many people still finds most
 * of them; 256 * 32 bytes of locked memory.  */
#define STORE_KEYCACHE_SLOTS 256
/* How long an opened key may stay in memory without being opened again:
 * bounds how long a key shredded by another process (intakectl subject
 * erase) outlives its secret in this one.  */
#define STORE_KEYCACHE_TTL_US (10 * G_TIME_SPAN_SECOND)
/* A wrapped key is 76 bytes (72 before key versions, store_keys.c).  */
#define STORE_KEYCACHE_WRAPPED_MAX 96

typedef struct {
  gint64 subject_id;         /* 0: empty */
  gint64 opened_at;          /* monotonic us */
  guint64 used;              /* tick of the last hit, for eviction */
  guint wrapped_len;
  guint8 wrapped[STORE_KEYCACHE_WRAPPED_MAX];
} store_keycache_slot;

struct store_keycache {
  store_keycache_slot slots[STORE_KEYCACHE_SLOTS];
  guint8 *keys;              /* sodium_malloc: SLOTS * STORE_KEY_BYTES */
  guint64 tick;
  gint epoch;                /* store_keycache_epoch () seen last */
  guint64 hits, misses;
  gint live;                 /* entries held; read by other threads */
};

/* Bumped by every erasure in this process (any thread).  */
static gint store_keycache_erasures;

store_keycache *
store_keycache_new (void)
{
  store_keycache *c = g_new0 (store_keycache, 1);

  c->keys = sodium_malloc (STORE_KEYCACHE_SLOTS * STORE_KEY_BYTES);
  g_assert (c->keys != NULL);
  sodium_memzero (c->keys, STORE_KEYCACHE_SLOTS * STORE_KEY_BYTES);
  c->epoch = g_atomic_int_get (&store_keycache_erasures);
  return c;
}

static void
store_keycache_drop (store_keycache *c, guint i)
{
  if (c->slots[i].subject_id != 0)
    g_atomic_int_add (&c->live, -1);
  sodium_memzero (c->keys + i * STORE_KEY_BYTES, STORE_KEY_BYTES);
  memset (&c->slots[i], 0, sizeof c->slots[i]);
}

void
store_keycache_clear (store_keycache *c)
{
  if (c == NULL)
    return;
  sodium_memzero (c->keys, STORE_KEYCACHE_SLOTS * STORE_KEY_BYTES);
  memset (c->slots, 0, sizeof c->slots);
  g_atomic_int_set (&c->live, 0);
}

void
store_keycache_free (store_keycache **cp)
{
  store_keycache *c = cp ? *cp : NULL;

  if (c == NULL)
    return;
  sodium_free (c->keys);       /* wipes */
  g_free (c);
  *cp = NULL;
}

void
store_keycache_epoch (void)
{
  g_atomic_int_inc (&store_keycache_erasures);
}

static void
store_keycache_expire (store_keycache *c, gint64 now)
{
  gint e = g_atomic_int_get (&store_keycache_erasures);

  if (e != c->epoch)
    {
      store_keycache_clear (c);
      c->epoch = e;
      return;
    }
  for (guint i = 0; i < STORE_KEYCACHE_SLOTS; i++)
    if (c->slots[i].subject_id != 0
        && now - c->slots[i].opened_at >= STORE_KEYCACHE_TTL_US)
      store_keycache_drop (c, i);
}

/* The TTL and an erasure's epoch, applied now: the writer calls this while
 * it waits for work, so that a key goes when its time is up even if no
 * mail comes to look it up.  */
void
store_keycache_tick (store_keycache *c)
{
  store_keycache_expire (c, g_get_monotonic_time ());
}

/* How many keys are held (any thread).  */
guint
store_keycache_live (store_keycache *c)
{
  return (guint) g_atomic_int_get (&c->live);
}

gboolean
store_keycache_get (store_keycache *c, gint64 subject_id,
                    const void *wrapped, gsize len, guint8 *out)
{
  gint64 now = g_get_monotonic_time ();

  store_keycache_expire (c, now);
  for (guint i = 0; i < STORE_KEYCACHE_SLOTS; i++)
    {
      store_keycache_slot *sl = &c->slots[i];

      if (sl->subject_id != subject_id)
        continue;
      if (sl->wrapped_len != len || memcmp (sl->wrapped, wrapped, len) != 0)
        {
          /* rewrapped, or the id was handed out again */
          store_keycache_drop (c, i);
          break;
        }
      sl->used = ++c->tick;
      memcpy (out, c->keys + i * STORE_KEY_BYTES, STORE_KEY_BYTES);
      c->hits++;
      return TRUE;
    }
  c->misses++;
  return FALSE;
}

void
store_keycache_put (store_keycache *c, gint64 subject_id, const void *wrapped,
                    gsize len, const guint8 *key)
{
  guint victim = 0;
  guint64 oldest = G_MAXUINT64;

  g_assert (subject_id != 0);
  if (len > STORE_KEYCACHE_WRAPPED_MAX)
    return;
  for (guint i = 0; i < STORE_KEYCACHE_SLOTS; i++)
    {
      if (c->slots[i].subject_id == subject_id)
        {
          victim = i;
          break;
        }
      if (c->slots[i].used < oldest)
        {
          oldest = c->slots[i].used;
          victim = i;
        }
    }
  store_keycache_drop (c, victim);
  c->slots[victim].subject_id = subject_id;
  c->slots[victim].opened_at = g_get_monotonic_time ();
  c->slots[victim].used = ++c->tick;
  c->slots[victim].wrapped_len = (guint) len;
  memcpy (c->slots[victim].wrapped, wrapped, len);
  memcpy (c->keys + victim * STORE_KEY_BYTES, key, STORE_KEY_BYTES);
  g_atomic_int_inc (&c->live);
}

void
store_keycache_forget (store_keycache *c, gint64 subject_id)
{
  for (guint i = 0; i < STORE_KEYCACHE_SLOTS; i++)
    if (c->slots[i].subject_id == subject_id)
      store_keycache_drop (c, i);
}

void
store_keycache_stats (store_keycache *c, guint64 *hits, guint64 *misses)
{
  *hits = c->hits;
  *misses = c->misses;
}
