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
  GError *error;             /* set by the writer */
};

struct store {
  char *path;
  const store_keys *keys;
  sqlite3 *wdb;              /* writer thread only */
  sqlite3 *rdb;              /* readers, serialised by rlock */
  GMutex rlock;
  GThread *writer;
  GAsyncQueue *jobs;         /* store_job * ; NULL item = stop */
};

/* Queue @job for the writer.  */
void store_job_submit (store *s, store_job *job);

/* Map a SQLite result code to a GError of STORE_ERROR.  */
void store_set_sqlite_error (GError **error, sqlite3 *db, int rc,
                             const char *what);

/* Prepare, or fail with a GError.  */
sqlite3_stmt *store_prepare (sqlite3 *db, const char *sql, GError **error);

/* The next id of an AUTOINCREMENT table (writer thread only): the row id is
 * known before the insert so that it can be bound into associated data.  */
gint64 store_next_id (sqlite3 *db, const char *table, GError **error);

/* Seal a value for (table, column, row, owner) under @key.  */
GBytes *store_seal (const guint8 *key, const char *table, const char *column,
                    gint64 row, gint64 owner, const void *p, gsize len);
/* (nullable) Open it again; NULL with STORE_ERROR_CRYPTO.  */
GBytes *store_unseal (const guint8 *key, const char *table,
                      const char *column, gint64 row, gint64 owner,
                      const void *p, gsize len, GError **error);


/* Append a hash-chained audit event (writer thread, inside a transaction).
 * @detail: ids and facts only, never personal data.  */
gboolean store_audit_append (store *s, sqlite3 *db, const char *actor,
                             const char *action, const char *object,
                             const char *detail, GError **error);

#endif
