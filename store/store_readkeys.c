/*
 * store_readkeys.c - the data keys one read has unwrapped, by subject.
 *
 * A queue page of fifty cases from fifty people unwraps fifty data keys.
 * Each used to cost three sodium_malloc blocks (the key, its vault secret,
 * the wrapping key derived from it), and every sodium_malloc and
 * sodium_free is an mmap or munmap, mprotects, an mlock or munlock and a
 * TLB shootdown in a threaded process: about half of a page's time
 * (issue 7's bench-api went from p99 ~18 ms to 40-70 ms).  Here every key
 * of one read, and the one scratch buffer for vault secrets, live in a
 * single sodium_malloc block, taken at the first key and wiped and freed
 * with the cache.
 *
 * Owns: that block and the subject-id -> slot table.  At most
 * STORE_READKEYS_SLOTS keys; past that the least recently used slot is
 * wiped and reused, so a long listing holds no more than that.
 * Refuses: to outlive its read.  It is never kept in the store: an erasure
 * (possibly by intakectl, another process) must leave no copy of a
 * person's key in intaked's memory once the read that needed it is over.
 * (The writer's own cache, store_keycache.c, is another matter: filing
 * only, entries of at most 10 s, wiped by an erasure in this process.)
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>

#include <sodium.h>

/* 256 keys = 8 KiB of locked memory: more distinct people than the largest
 * API page (500 cases) is likely to hold, small enough to mlock freely.  */
#define STORE_READKEYS_SLOTS 256

typedef struct {
  gint64 subject_id;
  guint64 used;                 /* tick of the last lookup; 0: free */
} store_readkeys_slot;

struct store_readkeys {
  guint8 *block;                /* sodium_malloc: SLOTS keys + one secret */
  GHashTable *index;            /* gint64 subject id -> slot + 1 */
  store_readkeys_slot slots[STORE_READKEYS_SLOTS];
  guint n;                      /* slots ever filled */
  guint64 tick;
};

G_STATIC_ASSERT (STORE_VAULT_SECRET_BYTES <= STORE_KEY_BYTES);

store_readkeys *
store_readkeys_new (void)
{
  store_readkeys *c = g_new0 (store_readkeys, 1);

  c->index = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                    NULL);
  return c;
}

void
store_readkeys_free (store_readkeys *c)
{
  if (c == NULL)
    return;
  if (c->block != NULL)
    sodium_free (c->block);     /* wipes it */
  g_hash_table_unref (c->index);
  g_free (c);
}

static guint8 *
store_readkeys_key (store_readkeys *c, guint slot)
{
  return c->block + (gsize) slot * STORE_KEY_BYTES;
}

static guint8 *
store_readkeys_scratch (store_readkeys *c)
{
  return c->block + (gsize) STORE_READKEYS_SLOTS * STORE_KEY_BYTES;
}

/* A slot for a new key: a never-used one, else a free one (used 0: its
 * unwrap failed), else the least recently used, wiped and forgotten by
 * the index.  */
static guint
store_readkeys_take (store_readkeys *c)
{
  guint victim = 0;

  if (c->n < STORE_READKEYS_SLOTS)
    return c->n++;
  for (guint i = 1; i < STORE_READKEYS_SLOTS; i++)
    if (c->slots[i].used < c->slots[victim].used)
      victim = i;
  if (c->slots[victim].used != 0)
    g_hash_table_remove (c->index, &c->slots[victim].subject_id);
  sodium_memzero (store_readkeys_key (c, victim), STORE_KEY_BYTES);
  c->slots[victim].used = 0;
  return victim;
}

const guint8 *
store_readkeys_get (store *s, store_readkeys *c, sqlite3 *db,
                    const void *wrapped, gsize len, gint64 subject_id,
                    GError **error)
{
  gpointer v = g_hash_table_lookup (c->index, &subject_id);
  guint slot;

  if (v != NULL)
    {
      slot = GPOINTER_TO_UINT (v) - 1;
      c->slots[slot].used = ++c->tick;
      return store_readkeys_key (c, slot);
    }
  if (wrapped == NULL)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                   "subject %" G_GINT64_FORMAT " has no data key", subject_id);
      return NULL;
    }
  if (c->block == NULL)
    {
      c->block = sodium_malloc ((gsize) (STORE_READKEYS_SLOTS + 1)
                                * STORE_KEY_BYTES);
      g_assert (c->block != NULL);
    }
  slot = store_readkeys_take (c);
  if (!store_subject_key_unwrap_scratch (s, db, wrapped, len, subject_id,
                                         store_readkeys_scratch (c),
                                         store_readkeys_key (c, slot), error))
    {
      /* the slot stays free (used 0, not in the index): taken first
       * once the never-used ones are gone */
      c->slots[slot].used = 0;
      sodium_memzero (store_readkeys_key (c, slot), STORE_KEY_BYTES);
      return NULL;
    }
  c->slots[slot].subject_id = subject_id;
  c->slots[slot].used = ++c->tick;
  g_hash_table_insert (c->index, g_memdup2 (&subject_id, sizeof subject_id),
                       GUINT_TO_POINTER (slot + 1));
  return store_readkeys_key (c, slot);
}
