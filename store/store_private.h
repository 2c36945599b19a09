/*
 * store_private.h - what the files of store/ share; never included from
 * outside store/.
 */
#ifndef INTAKE_STORE_PRIVATE_H
#define INTAKE_STORE_PRIVATE_H

#include <sqlite3.h>

#include "store/store.h"

/* Work for the writer thread.  @run executes inside the batch transaction,
 * within a SAVEPOINT of its own: returning FALSE rolls back this job only.
 * @done is called after the batch committed (error NULL) or failed.  */
typedef struct store_job store_job;
typedef gboolean (*store_job_run_fn) (store *s, sqlite3 *db, store_job *job,
                                      GError **error);
typedef void (*store_job_free_fn) (store_job *job);

struct store_job {
  store_job_run_fn run;
  store_job_free_fn free;    /* releases the job's own data */
  store_done_fn done;
  gpointer user_data;
  gint64 result_id;          /* set by @run */
  gsize weight;              /* bytes, for the batch bound */
  gboolean atomic;           /* @run is one statement: no SAVEPOINT needed,
                              * SQLite undoes a failed statement itself */
  gboolean rerunnable;       /* @run may run again from the start after the
                              * batch's transaction rolled back: it changes
                              * nothing outside it but what the writer puts
                              * back (store_batch_restart ()) */
  gboolean kill_after_commit; /* fault injection (tests): SIGKILL once the
                               * batch holding this job is committed */
  /* (nullable) called in the writer after the batch holding this job
   * committed, if the job did not fail (@error NULL), before @done */
  void (*committed) (store *s, store_job *job);
  GError *error;             /* set by the writer */
};

struct store {
  char *path;
  const store_keys *keys;
  store_due_fn due_fn;       /* (nullable) a re-routed kind's clock */
  gpointer due_data;
  sqlite3 *wdb;              /* writer thread only */
  sqlite3 *rdb;              /* readers, serialised by rlock */
  guint8 *wkey;              /* writer's data-key scratch (sodium_malloc) */
  struct store_keycache *wkeys; /* writer's opened data keys */
  gint64 next_spool_id;      /* writer only; 0 = read it from the table */
  /* The audit chain's head as the writer's open batch sees it (writer
   * only, store_audit.c): kept in memory while a batch runs instead of
   * read back for every event, and the signed audit_head row written once,
   * just before the batch commits.  Forgotten (read again) on any
   * rollback, and when another connection committed (PRAGMA data_version
   * changed) since the writer's last batch.  */
  struct store_audit_cache {
    gboolean known;          /* last_id / last_mac are the chain's end */
    gboolean dirty;          /* audit_head row not yet written this batch */
    gint64 last_id;
    guint8 last_mac[32];
  } audit;
  gboolean wbatch;           /* the writer is inside a batch: between its
                              * BEGIN IMMEDIATE and the audit head's flush
                              * (store.c) */
  gint64 wdata_version;      /* PRAGMA data_version of wdb at the start of
                              * the last batch; -1 unknown (store.c) */
  /* Whether any queue has a webhook, a notification address (writer
   * only, store_webhook.c): the writer never writes queue_outbound, so
   * what it read stays true until another connection commits.  */
  struct {
    gboolean known;
    gboolean webhook;
    gboolean notify;
  } outbound;
  GHashTable *wstmts;        /* sql -> sqlite3_stmt *, for wdb */
  GHashTable *rstmts;        /* sql -> sqlite3_stmt *, for rdb */
  GMutex rlock;
  GThread *writer;
  GThread *checkpointer;     /* WAL checkpoints off the writer's path */
  sqlite3 *cdb;              /* checkpointer thread only */
  GMutex clock;
  GCond ccond;
  int wal_pages;             /* a checkpoint wanted: the WAL's pages when a
                              * commit left it past STORE_CHECKPOINT_PAGES;
                              * 0 once the checkpointer took it (so that a
                              * failing checkpoint is tried again at the next
                              * commit, not in a loop) */
  gint wal_last;             /* WAL pages after the last commit, whatever
                              * its size (atomic; /metrics) */
  guint ckpt_failures;       /* checkpoints failed in a row (atomic) */
  gint64 ckpt_warned;        /* when the last of them was logged */
  gboolean cstop;
  gint64 last_spool_submit;  /* monotonic us; atomic */
  GAsyncQueue *jobs;         /* store_job * ; NULL item = stop */
  char *vault_path;          /* the key vault (store_vault.c) */
  sqlite3 *wvault;           /* writer thread only */
  sqlite3 *rvault;           /* everyone else, under vlock */
  sqlite3_stmt *wvault_get;  /* store_vault_get(), prepared once for each */
  sqlite3_stmt *rvault_get;
  GRecMutex vlock;
  struct store_spoolkeys *spoolkeys;  /* the spool's keys (store_spoolkey.c) */
  struct store_feed *feed;   /* rows just spooled, for the pipeline
                              * (store_feed.c) */
};

/* The name of the VFS the writer's connection opens the database with:
 * the unix one, its WAL written in runs (store_walbuf.c).  Registers it
 * the first time; thread-safe.  */
const char *store_walbuf_vfs_name (void);
/* ... and the checkpointer's: the unix one, its database file written in
 * runs.  */
const char *store_ckptbuf_vfs_name (void);

/* Queue @job for the writer.  */
void store_job_submit (store *s, store_job *job);

/* Map a SQLite result code to a GError of STORE_ERROR.  */
void store_set_sqlite_error (GError **error, sqlite3 *db, int rc,
                             const char *what);

/* Prepare, or fail with a GError; the caller finalizes.  */
sqlite3_stmt *store_prepare (sqlite3 *db, const char *sql, GError **error);

/* A prepared statement for @sql on @db (the write or the read connection
 * of @s), prepared once and kept: @sql must be a string literal, its
 * address is the key.  Give it back with store_stmt_release() (reset,
 * bindings cleared) -- never finalize it.  */
sqlite3_stmt *store_stmt (store *s, sqlite3 *db, const char *sql,
                          GError **error);
void store_stmt_release (sqlite3_stmt *st);

/* The next id of an AUTOINCREMENT table (writer thread only): the row id is
 * known before the insert so that it can be bound into associated data.  */
gint64 store_next_id (store *s, sqlite3 *db, const char *table,
                      GError **error);

/* Step @st (a statement of store_stmt ()) to its end and release it;
 * FALSE with @error naming @what if it did not finish.  */
gboolean store_step_done (sqlite3 *db, sqlite3_stmt *st, const char *what,
                          GError **error);

/* Seal a value for (table, column, row, owner) under @key.  */
GBytes *store_seal (const guint8 *key, const char *table, const char *column,
                    gint64 row, gint64 owner, const void *p, gsize len);
/* The same with a nonce the caller drew (store_keys_seal_nonce ()).  */
GBytes *store_seal_nonce (const guint8 *key, const char *table,
                          const char *column, gint64 row, gint64 owner,
                          const guint8 *nonce, const void *p, gsize len);
/* (nullable) Open it again; NULL with STORE_ERROR_CRYPTO.  */
GBytes *store_unseal (const guint8 *key, const char *table,
                      const char *column, gint64 row, gint64 owner,
                      const void *p, gsize len, GError **error);


/* Append a hash-chained audit event (writer thread, inside a transaction).
 * @detail: ids and facts only, never personal data.  */
gboolean store_audit_append (store *s, sqlite3 *db, const char *actor,
                             const char *action, const char *object,
                             const char *detail, GError **error);
/* The same with an outcome other than "ok" ("denied", "failed", ...).  */
gboolean store_audit_append_outcome (store *s, sqlite3 *db, const char *actor,
                                     const char *action, const char *object,
                                     const char *detail, const char *outcome,
                                     GError **error);
/* Writer batch hooks (store.c): at the start of a batch (@others: another
 * connection committed since the last one, or that is not known, so the
 * cached head is read again), the audit_head row written before its
 * commit, and the cache dropped when anything rolls back.  */
void store_audit_batch_begin (store *s, gboolean others);
gboolean store_audit_batch_flush (store *s, sqlite3 *db, GError **error);
void store_audit_batch_forget (store *s);

/* ------------------------------------------------- writer's key cache */

/* Data keys the writer opened lately (store_keycache.c); writer thread
 * only, but for store_keycache_epoch ().  */
typedef struct store_keycache store_keycache;
store_keycache *store_keycache_new (void);
void store_keycache_free (store_keycache **c);
/* Wipe every key.  */
void store_keycache_clear (store_keycache *c);
/* Copy the key of @subject_id into @out (STORE_KEY_BYTES secure memory) if
 * it was opened from exactly @wrapped (@len bytes) and is not too old.  */
gboolean store_keycache_get (store_keycache *c, gint64 subject_id,
                             const void *wrapped, gsize len, guint8 *out);
/* Remember @key, opened from @wrapped, for @subject_id.  */
void store_keycache_put (store_keycache *c, gint64 subject_id,
                         const void *wrapped, gsize len, const guint8 *key);
/* Wipe the key of one subject.  */
void store_keycache_forget (store_keycache *c, gint64 subject_id);
/* Every cache of this process is wiped before its next use (an erasure
 * is under way); any thread.  */
void store_keycache_epoch (void);
/* Apply the TTL and the erasure epoch now (writer thread, while idle).  */
void store_keycache_tick (store_keycache *c);
/* How many keys are held; any thread.  */
guint store_keycache_live (store_keycache *c);
void store_keycache_stats (store_keycache *c, guint64 *hits,
                          guint64 *misses);

/* ------------------------------------------------- spool feed */

/* Rows just committed to the spool, kept for store_spool_list ()
 * (store_feed.c).  */
typedef struct store_feed store_feed;
store_feed *store_feed_new (void);
void store_feed_free (store_feed **f);
/* Writer, after the commit that stored row @id: keep it (unless the feed
 * is full, off, or a reader has already passed @id).  *@env is taken
 * (set to NULL) if kept; @env_bytes and @raw are referenced.  */
void store_feed_add (store *s, gint64 id, store_envelope **env,
                     GBytes *env_bytes, GBytes *raw);
/* Move the fed rows after_id + 1, after_id + 2, ... (no id missing), at
 * most @max, onto @out; how many.  */
guint store_feed_take_run (store *s, gint64 after_id, guint max,
                           GPtrArray *out);
/* (transfer full) (nullable) The fed row @id, taken out of the feed;
 * fed rows below it are dropped.  */
store_spool_item *store_feed_take (store *s, gint64 id);
/* A reader has seen the rows up to @id: drop those, feed none again.  */
void store_feed_passed (store *s, gint64 id);

/* ------------------------------------------------- spool keys */

/* The spool's keys by period (store_spoolkey.c).  */
typedef struct store_spoolkeys store_spoolkeys;
store_spoolkeys *store_spoolkeys_new (void);
void store_spoolkeys_free (store_spoolkeys **c);
/* Key @id of the spool into @out (STORE_KEY_BYTES, secure memory), for a
 * row sealed under it: from the cache, else from its vault secret (the
 * writer's vault connection for @db the writer's, else the shared one,
 * under vlock).  STORE_ERROR_CRYPTO if the vault no longer has it.  */
gboolean store_spool_key_get (store *s, sqlite3 *db, gint64 id, guint8 *out,
                              GError **error);
/* (transfer none) The key new spool rows are sealed under (writer thread,
 * inside a batch), and its id in *@id: a new one, its secret put in the
 * writer's vault transaction, if the current one is a period old.  */
const guint8 *store_spool_key_current (store *s, sqlite3 *db, gint64 *id,
                                       GError **error);
/* Writer batch hooks: a batch rolled back (a key it made is forgotten),
 * a batch committed (the secrets it left unused are destroyed).  */
void store_spool_key_batch_forget (store *s);
void store_spool_key_batch_done (store *s);

/* ------------------------------------------------------- key vault */

/* (transfer full) "DIR/STEM-vault.db" for "DIR/STEM.db".  */
char *store_vault_default_path (const char *db_path);
sqlite3 *store_vault_connect (const char *path, gboolean create,
                              GError **error);
/* Open the vault connections of @s (refused if the vault is missing but
 * needed).  */
gboolean store_vault_open (store *s, gboolean writer, GError **error);
/* Whether the vault holds a secret for @subject_id.  */
gboolean store_vault_has (store *s, sqlite3 *db, gint64 subject_id);
void store_vault_lock (store *s);
void store_vault_unlock (store *s);
gboolean store_vault_begin (sqlite3 *vdb, GError **error);
gboolean store_vault_commit (sqlite3 *vdb, GError **error);
void store_vault_rollback (sqlite3 *vdb);

/* A new data key for @subject_id into @data_key (STORE_KEY_BYTES, secure
 * memory), its vault secret put into the vault beside @db (the writer's:
 * in the writer's vault transaction, committed before the batch; any
 * other: the caller holds vlock and has begun a vault transaction).
 * (transfer full) the wrapped key for subjects.data_key.  */
GBytes *store_subject_key_new (store *s, sqlite3 *db, gint64 subject_id,
                               guint8 *data_key, GError **error);
/* (transfer full) @wrapped re-wrapped with the current master key version
 * and a vault secret (a new one for a key not yet in the vault; same rules
 * as store_subject_key_new()).  @scratch: STORE_KEY_BYTES secure memory. */
GBytes *store_subject_key_rewrap (store *s, sqlite3 *db, gint64 subject_id,
                                  const void *wrapped, gsize len,
                                  guint8 *scratch, GError **error);
/* Open a subject's wrapped data key, with its vault secret if it has one
 * (STORE_ERROR_CRYPTO if that is gone: an erased subject).  */
gboolean store_subject_key_unwrap_into (store *s, sqlite3 *db,
                                        const void *wrapped, gsize len,
                                        gint64 subject_id, guint8 *out,
                                        GError **error);
/* The same with the vault secret read into @scratch
 * (STORE_VAULT_SECRET_BYTES of the caller's secure memory, wiped before
 * return; may be NULL for a key that is not vaulted): for a reader that
 * unwraps many keys and would otherwise sodium_malloc one per key.  */
gboolean store_subject_key_unwrap_scratch (store *s, sqlite3 *db,
                                           const void *wrapped, gsize len,
                                           gint64 subject_id,
                                           guint8 *scratch, guint8 *out,
                                           GError **error);
/* (transfer full) (nullable) the same in new secure memory; free with
 * store_keys_data_key_free().  */
guint8 *store_subject_key_unwrap (store *s, sqlite3 *db, const void *wrapped,
                                  gsize len, gint64 subject_id,
                                  GError **error);

/* Whether case @ref may go to @queue (the caller holds rlock, in its
 * transaction): never out of STORE_RESTRICTED_QUEUE while its person's
 * processing is restricted (art. 18: nobody else sees it, by intakectl
 * or by the API); STORE_ERROR_STATE if not.  */
gboolean store_case_reroute_allowed (store *s, const char *ref,
                                     const char *queue, GError **error);

/* ------------------------------------------ data keys of one read */

/* The data keys one read (a page, a case, an export) unwraps, by subject
 * id, in one block of secure memory wiped and freed with the cache
 * (store_readkeys.c).  Bounded (least recently used out); never kept
 * past the read, so that an erasure leaves no key behind (unlike the
 * writer's store_keycache, which lives on, at most 10 s a key).  */
typedef struct store_readkeys store_readkeys;
store_readkeys *store_readkeys_new (void);
void store_readkeys_free (store_readkeys *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (store_readkeys, store_readkeys_free)
/* (transfer none) (nullable) the data key of @subject_id, unwrapped from
 * @wrapped (its subjects.data_key, read on @db) the first time; valid
 * until the cache is freed or STORE_READKEYS_SLOTS other keys have been
 * asked for since.  */
const guint8 *store_readkeys_get (store *s, store_readkeys *c, sqlite3 *db,
                                  const void *wrapped, gsize len,
                                  gint64 subject_id, GError **error);

/* Delete the vault secret of @subject_id, commit (synchronous=FULL) and
 * truncate the vault's WAL: crypto-shredding.  *@had: there was one.  */
gboolean store_vault_forget (store *s, gint64 subject_id, gboolean *had,
                             GError **error);
/* The same for many subjects in one vault transaction.  */
gboolean store_vault_forget_many (store *s, GArray *ids, GError **error);
/* Erase the subjects @ids (gint64) together (store_rights.c; the caller
 * holds rlock): how many, or -1.  */
gint64 store_erase_many_locked (store *s, GArray *ids, const char *reason,
                                const char *actor, GError **error);

/* PRAGMA secure_delete on @db (s->rdb, with its lock held): ON
 * overwrites deleted cells and freed pages with zeros, FAST (the read
 * connection's setting) only where that costs no extra write.  The
 * writer's connection is ON for good: nothing to do for s->wdb.  */
gboolean store_secure_delete (store *s, sqlite3 *db, gboolean on,
                              GError **error);

/* Within a re-routing's transaction on s->rdb: when @kind (nullable)
 * differs from @old_kind and the store has a due function, case @case_id
 * gets the due date of its new kind counted from its first inbound
 * message's receipt (none when that kind has no clock), and @detail gets
 * " due=OLD->NEW" (days, or "none") for the audit event.  */
gboolean store_case_due_again (store *s, gint64 case_id, const char *old_kind,
                               const char *kind, GString *detail,
                               GError **error);

#endif
