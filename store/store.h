/*
 * store.h - the database: spool, data subjects, cases, messages, audit.
 *
 * SQLite in WAL mode with synchronous=FULL, checked at open (a database that
 * will not report both is refused).  One writer thread owns the write
 * connection: callers hand it work, it takes everything waiting (up to a
 * bound), runs it in one transaction, commits once and only then completes
 * every caller (group commit).  Readers use their own connection.
 *
 * Every SQL statement of intake lives in store/, behind functions that say
 * what they do.  Personal data is sealed (store_keys.h) before it reaches
 * SQLite; plain columns hold ids, queues, kinds, statuses, flags and times.
 */
#ifndef INTAKE_STORE_H
#define INTAKE_STORE_H

#include <glib.h>

#include "store/store_keys.h"

typedef struct store store;

#define STORE_ERROR (store_error_quark ())
GQuark store_error_quark (void);
typedef enum {
  STORE_ERROR_OPEN,        /* cannot open or create the database */
  STORE_ERROR_PRAGMA,      /* WAL / synchronous=FULL not in force */
  STORE_ERROR_VERSION,     /* schema newer than this binary, or older for a
                            * reader */
  STORE_ERROR_FULL,        /* disk or database full: 452 4.3.1 */
  STORE_ERROR_BUSY,        /* locked for longer than the busy timeout */
  STORE_ERROR_IO,          /* any other failure to write: 451 4.3.0 */
  STORE_ERROR_NOT_FOUND,
  STORE_ERROR_CRYPTO,      /* a sealed value did not open */
  STORE_ERROR_SHUTDOWN,    /* the writer is stopping */
} store_error_code;

/* The schema version this binary writes (PRAGMA user_version).  */
#define STORE_SCHEMA_VERSION 2

typedef enum {
  STORE_OPEN_WRITER = 1 << 0,  /* create/migrate, start the writer thread */
} store_open_flags;

/* (transfer full) Open the database at @path.  @keys (transfer none) must
 * outlive the store.  With STORE_OPEN_WRITER the file is created (mode
 * 0600) and migrated; without it, the file must exist at this binary's
 * schema version.  */
store *store_open (const char *path, const store_keys *keys, guint flags,
                   GError **error);

/* Stop the writer after everything already submitted is committed, then
 * close.  */
void store_close (store **s);

/* Monotonic time of the last store_spool_submit(): background work
 * yields to arriving mail.  */
gint64 store_spool_last_submit (store *s);

/* ---------------------------------------------------------------- spool */

/* How a message reached us; the envelope travels with the raw bytes.  */
typedef struct {
  char *source;            /* "smtp", "imap", "form" */
  char *client_addr;       /* peer address, printable */
  char *helo;
  char *mail_from;         /* "" for the null sender */
  GPtrArray *rcpts;        /* char * */
  gboolean tls;
  gint64 received_at;      /* unix microseconds */
} store_envelope;

store_envelope *store_envelope_new (void);
void store_envelope_free (store_envelope *env);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (store_envelope, store_envelope_free)

/* (transfer full) An envelope as bytes (a GVariant), for the spool and for
 * the frames between processes; and back, treating the bytes as untrusted
 * (NULL with STORE_ERROR_CRYPTO if they are not a well-formed envelope).  */
GBytes *store_envelope_pack (const store_envelope *env);
store_envelope *store_envelope_unpack (GBytes *bytes, GError **error);

/* Called in the writer thread after the commit (@error NULL, @id the spool
 * id) or after a failure (@error set, nothing stored).  */
typedef void (*store_done_fn) (gint64 id, const GError *error,
                               gpointer user_data);

/* Queue @raw with @env for the spool; both (transfer full).  @done is
 * called once, from the writer thread.  */
void store_spool_submit (store *s, store_envelope *env, GBytes *raw,
                         store_done_fn done, gpointer user_data);

typedef struct {
  gint64 id;
  store_envelope *env;     /* NULL if the row did not open */
  GBytes *raw;             /* NULL if the row did not open */
  GError *error;           /* why it did not open (STORE_ERROR_CRYPTO) */
} store_spool_item;

void store_spool_item_free (store_spool_item *item);

/* (transfer full) Up to @max spooled messages with id > @after_id, oldest
 * first, decrypted.  A row that does not open comes back with @error set
 * and no content; it is not an error of the call.  */
GPtrArray *store_spool_list (store *s, gint64 after_id, guint max,
                             GError **error);

/* Number of messages waiting in the spool (quarantined ones excluded).  */
gint64 store_spool_count (store *s, GError **error);

/* A message could not be parsed (@reason: a word such as "crash",
 * "timeout"): count the failure; at @max failures the row is quarantined,
 * kept as it is and skipped by store_spool_list() until an admin retries
 * it.  @done gets 1 if the row is now quarantined, else 0.  */
void store_spool_fail_submit (store *s, gint64 spool_id, const char *reason,
                              guint max, store_done_fn done,
                              gpointer user_data);

typedef struct {
  gint64 id;
  gint64 received_at;
  gint64 quarantined_at;
  gsize size;
  guint failures;
  char *last_error;
  char *source;
} store_quarantine_entry;

void store_quarantine_entry_free (store_quarantine_entry *e);

/* (transfer full) quarantined messages, oldest first.  */
GPtrArray *store_quarantine_list (store *s, GError **error);

/* (transfer full) one quarantined message, decrypted in memory.  */
store_spool_item *store_quarantine_get (store *s, gint64 id, GError **error);

/* Release a quarantined message back to the pipeline (failures reset),
 * audited with @actor.  STORE_ERROR_NOT_FOUND if it is not quarantined.  */
gboolean store_quarantine_retry (store *s, gint64 id, const char *actor,
                                 GError **error);

/* ---------------------------------------------------------------- cases */

/* What the pipeline learnt of one spooled message.  */
typedef struct {
  gint64 spool_id;
  store_envelope *env;     /* (owned) */
  GBytes *raw;             /* (owned) */
  char *from_addr;         /* (nullable) From: address, else envelope */
  char *from_name;         /* (nullable) display name */
  char *subject;           /* (nullable) decoded Subject, UTF-8 */
  char *message_id;        /* (nullable) Message-ID without <> */
  char *queue;             /* destination queue */
  char *kind;              /* "enquiry" until the router decides */
  char *ref_prefix;        /* e.g. "ESC" */
  char *text;              /* (nullable) normalised new text */
  guint anomalies;         /* parser_anomaly bits */
  guint special;           /* parser_special bits */
  gboolean auto_reply;
  guint n_attachments;
} store_ingest;

store_ingest *store_ingest_new (void);
void store_ingest_free (store_ingest *in);

/* Turn a spooled message into a case (or, for a message already recorded
 * with the same bytes, an arrival on the existing one) and delete the spool
 * row, all in one transaction.  @in (transfer full).  @done gets the case
 * id.  */
void store_ingest_submit (store *s, store_ingest *in, store_done_fn done,
                          gpointer user_data);

typedef struct {
  gint64 id;
  char *ref;
  char *kind;
  char *queue;
  char *status;
  char *priority;
  gint64 created_at;       /* unix microseconds */
  gint64 updated_at;
  char *subject;           /* decrypted Subject of the first message */
  char *from_addr;         /* decrypted data-subject address */
  char *from_name;         /* (nullable) */
  char *message_id;        /* (nullable) Message-ID of the first message */
  guint n_messages;
} store_case_view;

typedef struct {
  gint64 id;
  char *direction;         /* "in" / "out" */
  char *source;
  gint64 received_at;
  char *from_addr;
  char *subject;
  char *message_id;
  gsize size;
  guint arrivals;          /* times the same bytes arrived */
} store_message_view;

void store_case_view_free (store_case_view *v);
void store_message_view_free (store_message_view *v);

/* (transfer full) every case, newest first, decrypted in memory.  */
GPtrArray *store_case_list (store *s, GError **error);

/* (transfer full) one case by reference, and its messages (transfer full,
 * store_message_view *).  STORE_ERROR_NOT_FOUND if none.  */
store_case_view *store_case_get (store *s, const char *ref,
                                 GPtrArray **messages, GError **error);

/* ---------------------------------------------------------------- refs */

/* (transfer full) "PREFIX-YYYY-NNNNNN-C": the check character catches any
 * single-character error and any adjacent transposition in the digits.  */
char *store_ref_format (const char *prefix, guint year, guint64 serial);

/* Whether @ref is well formed and its check character matches.  */
gboolean store_ref_valid (const char *ref);

#endif
