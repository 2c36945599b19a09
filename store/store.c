/*
 * store.c - opening the database, checking its durability settings,
 * migrating the schema, and the writer thread with group commit.
 *
 * Owns: the write connection (used by the writer thread only) and a read
 * connection serialised by a mutex.
 * Refuses: a database that does not report journal_mode=wal and
 * synchronous=FULL; a schema newer than this binary.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

/* Group commit bounds: one transaction takes at most this many jobs or
 * bytes; the rest wait for the next one.  */
#define STORE_BATCH_MAX_JOBS   1024
#define STORE_BATCH_MAX_BYTES  (64 * 1024 * 1024)
/* How long a batch waits for company when the last one had some.  */
#define STORE_GATHER_US        300
/* How long a connection waits for a lock held by another process (an admin
 * command, say) before the write fails with 451 (SECURITY-TESTS 41).  */
#define STORE_BUSY_TIMEOUT_MS  5000

G_DEFINE_QUARK (store-error-quark, store_error)

static int store_wal_hook (void *data, sqlite3 *db, const char *name,
                           int pages);

/* The stop marker pushed after the last job.  */
static store_job store_stop_marker;

/* Schema migrations, applied in order; migration i brings user_version from
 * i to i + 1, each in its own transaction.  */
static const char *const store_migrations[] = {
  /* 0 -> 1: spool, subjects, cases, messages, arrivals, audit.  */
  "CREATE TABLE spool ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  received_at INTEGER NOT NULL,"        /* unix us */
  "  source TEXT NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  envelope BLOB NOT NULL,"              /* sealed: spool|envelope|id */
  "  raw BLOB NOT NULL"                    /* sealed: spool|raw|id */
  ");"
  "CREATE TABLE subjects ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  address_index BLOB NOT NULL UNIQUE,"  /* keyed BLAKE2b, never the address */
  "  data_key BLOB NOT NULL,"              /* wrapped by the key-wrapping key */
  "  key_version INTEGER NOT NULL DEFAULT 1,"
  "  address BLOB NOT NULL,"               /* sealed under the data key */
  "  name BLOB,"                           /* sealed under the data key */
  "  created_at INTEGER NOT NULL"
  ");"
  "CREATE TABLE case_serials ("
  "  year INTEGER PRIMARY KEY,"
  "  last INTEGER NOT NULL"
  ");"
  "CREATE TABLE cases ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  ref TEXT NOT NULL UNIQUE,"
  "  subject_id INTEGER REFERENCES subjects(id),"
  "  kind TEXT NOT NULL,"
  "  queue TEXT NOT NULL,"
  "  status TEXT NOT NULL DEFAULT 'new',"
  "  priority TEXT NOT NULL DEFAULT 'normal',"
  "  created_at INTEGER NOT NULL,"
  "  updated_at INTEGER NOT NULL"
  ");"
  "CREATE INDEX cases_queue ON cases(queue, status);"
  "CREATE TABLE messages ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  case_id INTEGER NOT NULL REFERENCES cases(id),"
  "  subject_id INTEGER NOT NULL REFERENCES subjects(id),"
  "  direction TEXT NOT NULL,"
  "  source TEXT NOT NULL,"
  "  received_at INTEGER NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  content_index BLOB NOT NULL UNIQUE,"  /* keyed hash of the bytes: dedupe */
  "  message_id_index BLOB,"               /* keyed hash of Message-ID */
  "  envelope BLOB NOT NULL,"              /* sealed under the data key */
  "  raw BLOB NOT NULL,"                   /* sealed under the data key */
  "  header_from BLOB,"                    /* sealed under the data key */
  "  header_subject BLOB,"                 /* sealed under the data key */
  "  header_message_id BLOB"               /* sealed under the data key */
  ");"
  "CREATE INDEX messages_case ON messages(case_id);"
  "CREATE INDEX messages_mid ON messages(message_id_index);"
  "CREATE TABLE arrivals ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  message_id INTEGER NOT NULL REFERENCES messages(id),"
  "  spool_id INTEGER NOT NULL,"
  "  source TEXT NOT NULL,"
  "  received_at INTEGER NOT NULL"
  ");"
  "CREATE INDEX arrivals_message ON arrivals(message_id);"
  "CREATE TABLE audit ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  at INTEGER NOT NULL,"                 /* unix us */
  "  actor TEXT NOT NULL,"
  "  action TEXT NOT NULL,"
  "  object TEXT NOT NULL,"
  "  detail TEXT NOT NULL,"
  "  mac BLOB NOT NULL"                    /* BLAKE2b(audit key, prev mac|row) */
  ");",

  /* 1 -> 2: parse failures and quarantine; what the parser found.  */
  "ALTER TABLE spool ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE spool ADD COLUMN last_error TEXT;"   /* a reason word */
  "ALTER TABLE spool ADD COLUMN quarantined_at INTEGER;"
  "CREATE INDEX spool_quarantine ON spool(quarantined_at);"
  "ALTER TABLE messages ADD COLUMN anomalies INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE messages ADD COLUMN special INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE messages ADD COLUMN auto_reply INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE messages ADD COLUMN attachments INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE messages ADD COLUMN text BLOB;",     /* sealed: data key */

  /* 2 -> 3: the case store (issue 4): participants, links, attachments,
   * statuses and due dates, audit outcome and head, key versions.  */
  "ALTER TABLE subjects ADD COLUMN wrap_version INTEGER NOT NULL DEFAULT 1;"
  "ALTER TABLE subjects ADD COLUMN phone BLOB;"        /* sealed */
  "ALTER TABLE subjects ADD COLUMN postal BLOB;"       /* sealed */
  "ALTER TABLE subjects ADD COLUMN updated_at INTEGER;"
  "CREATE INDEX subjects_wrap ON subjects(wrap_version);"
  "ALTER TABLE cases ADD COLUMN due_at INTEGER;"       /* unix us */
  "ALTER TABLE cases ADD COLUMN closed_at INTEGER;"
  "ALTER TABLE cases ADD COLUMN reasons TEXT;"         /* rule names, scores:
                                                        * never personal */
  "ALTER TABLE cases ADD COLUMN rules_hash TEXT;"
  "CREATE INDEX cases_queue_id ON cases(queue, id);"
  "CREATE INDEX cases_subject ON cases(subject_id);"
  "CREATE TABLE case_participants ("
  "  case_id INTEGER NOT NULL REFERENCES cases(id),"
  "  subject_id INTEGER NOT NULL REFERENCES subjects(id),"
  "  role TEXT NOT NULL,"                  /* requester, correspondent */
  "  added_at INTEGER NOT NULL,"
  "  PRIMARY KEY (case_id, subject_id)"
  ") WITHOUT ROWID;"
  "CREATE INDEX participants_subject ON case_participants(subject_id);"
  "INSERT INTO case_participants (case_id, subject_id, role, added_at)"
  "  SELECT id, subject_id, 'requester', created_at FROM cases"
  "  WHERE subject_id IS NOT NULL;"
  "CREATE TABLE case_links ("
  "  case_id INTEGER NOT NULL REFERENCES cases(id),"
  "  other_id INTEGER NOT NULL REFERENCES cases(id),"
  "  reason TEXT NOT NULL,"                /* a word: quoted-reference ... */
  "  created_at INTEGER NOT NULL,"
  "  PRIMARY KEY (case_id, other_id)"
  ") WITHOUT ROWID;"
  "CREATE INDEX links_other ON case_links(other_id);"
  "ALTER TABLE messages ADD COLUMN headers BLOB;"      /* sealed */
  "ALTER TABLE messages ADD COLUMN quoted BLOB;"       /* sealed */
  "ALTER TABLE messages ADD COLUMN thread_by TEXT;"    /* how it joined */
  "CREATE INDEX messages_subject ON messages(subject_id);"
  "CREATE TABLE attachments ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  message_id INTEGER NOT NULL REFERENCES messages(id),"
  "  subject_id INTEGER NOT NULL REFERENCES subjects(id),"
  "  position INTEGER NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  flags INTEGER NOT NULL,"              /* parser_att_flag */
  "  meta BLOB NOT NULL,"                  /* sealed: name, types, SHA-256 */
  "  content BLOB NOT NULL"                /* sealed */
  ");"
  "CREATE INDEX attachments_message ON attachments(message_id);"
  "ALTER TABLE audit ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok';"
  "ALTER TABLE audit ADD COLUMN format INTEGER NOT NULL DEFAULT 1;"
  "CREATE TABLE audit_head ("              /* MAC over the last event: a */
  "  id INTEGER PRIMARY KEY CHECK (id = 1)," /* deleted tail is caught */
  "  last_id INTEGER NOT NULL,"
  "  mac BLOB NOT NULL"
  ");"
  "CREATE TABLE keyring ("
  "  version INTEGER PRIMARY KEY,"
  "  check_value BLOB NOT NULL,"           /* store_keys_check_value() */
  "  created_at INTEGER NOT NULL"
  ");",

  /* 3 -> 4: a person's correction of the routing (training data).  */
  "ALTER TABLE cases ADD COLUMN rerouted_at INTEGER;"
  "CREATE INDEX cases_rerouted ON cases(rerouted_at)"
  "  WHERE rerouted_at IS NOT NULL;",

  /* 4 -> 5: IMAP mailboxes: what was taken (committed with the spool row,
   * exactly once) and how each mailbox is doing.  Mailbox names are the
   * configuration's, never addresses.  */
  "CREATE TABLE imap_seen ("
  "  mailbox TEXT NOT NULL,"
  "  uidvalidity INTEGER NOT NULL,"
  "  uid INTEGER NOT NULL,"
  "  spool_id INTEGER NOT NULL,"
  "  seen_at INTEGER NOT NULL,"
  "  PRIMARY KEY (mailbox, uidvalidity, uid)"
  ") WITHOUT ROWID;"
  "CREATE TABLE imap_status ("
  "  mailbox TEXT PRIMARY KEY,"
  "  state TEXT NOT NULL,"                 /* connecting, idle, fetching,
                                            * error */
  "  last_success INTEGER,"
  "  last_error TEXT,"                     /* a reason, no message content */
  "  last_error_at INTEGER,"
  "  backlog INTEGER NOT NULL DEFAULT 0,"
  "  token_expires INTEGER,"
  "  updated_at INTEGER NOT NULL"
  ");",

  /* 5 -> 6: web forms get their case reference when the submission is
   * spooled (the 201 carries it); department API tokens (hashes only).  */
  "CREATE TABLE spool_refs ("
  "  spool_id INTEGER PRIMARY KEY,"
  "  ref TEXT NOT NULL UNIQUE"
  ");"
  "CREATE TABLE api_tokens ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  name TEXT NOT NULL UNIQUE,"
  "  token_hash BLOB NOT NULL UNIQUE,"     /* keyed BLAKE2b of the token */
  "  queues TEXT NOT NULL,"                /* comma-separated */
  "  special INTEGER NOT NULL DEFAULT 0,"  /* may see special categories */
  "  created_at INTEGER NOT NULL,"
  "  revoked_at INTEGER,"
  "  last_used_at INTEGER"
  ");"
  "CREATE TABLE case_notes ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  case_id INTEGER NOT NULL REFERENCES cases(id),"
  "  subject_id INTEGER NOT NULL REFERENCES subjects(id),"
  "  author TEXT NOT NULL,"                /* token or CLI user name */
  "  text BLOB NOT NULL,"                  /* sealed under the subject */
  "  created_at INTEGER NOT NULL"
  ");"
  "CREATE INDEX case_notes_case ON case_notes(case_id);"
  "ALTER TABLE cases ADD COLUMN claimed_by TEXT;",

  /* 6 -> 7: what intake sends (acknowledgements, replies), and the loop
   * breaker's flag.  */
  "CREATE TABLE outbox ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  case_id INTEGER NOT NULL REFERENCES cases(id),"
  "  subject_id INTEGER NOT NULL REFERENCES subjects(id),"
  "  message_id INTEGER,"                  /* the message answered */
  "  kind TEXT NOT NULL,"                  /* ack, reply */
  "  body BLOB,"                           /* sealed: a reply's text */
  "  status TEXT NOT NULL DEFAULT 'queued'," /* queued, sent, failed */
  "  attempts INTEGER NOT NULL DEFAULT 0,"
  "  next_at INTEGER NOT NULL,"            /* unix us */
  "  created_at INTEGER NOT NULL,"
  "  sent_at INTEGER,"
  "  last_reply TEXT"                      /* the smarthost's last line */
  ");"
  "CREATE INDEX outbox_due ON outbox(status, next_at);"
  "CREATE INDEX outbox_subject ON outbox(subject_id, kind, created_at);"
  "ALTER TABLE cases ADD COLUMN loop_flag INTEGER NOT NULL DEFAULT 0;",

  /* 7 -> 8: restriction of processing (UK GDPR art. 18): the person's
   * cases go to information governance, their queue remembered.  */
  "ALTER TABLE subjects ADD COLUMN restricted_at INTEGER;"
  "ALTER TABLE cases ADD COLUMN restricted_from TEXT;",

  /* 8 -> 9: data-subject rights (issue 9): data keys wrapped with a
   * key-vault secret (subjects.vault), erasure in two steps
   * (subjects.erasing_at, then the erasures tombstone that a later access
   * request shows), objection recorded as such, anonymised cases and what
   * an erasure leaves of a case for statistics.  No personal data.  */
  "ALTER TABLE subjects ADD COLUMN vault INTEGER NOT NULL DEFAULT 0;"
  "CREATE INDEX subjects_unvaulted ON subjects(id) WHERE vault = 0;"
  "ALTER TABLE subjects ADD COLUMN erasing_at INTEGER;"
  "ALTER TABLE subjects ADD COLUMN objected_at INTEGER;"
  "CREATE TABLE erasures ("
  "  subject_id INTEGER PRIMARY KEY,"
  "  requested_at INTEGER NOT NULL,"
  "  erased_at INTEGER,"                   /* NULL: not finished yet */
  "  actor TEXT NOT NULL,"
  "  reason TEXT NOT NULL,"                /* a category word */
  "  cases INTEGER NOT NULL DEFAULT 0,"
  "  messages INTEGER NOT NULL DEFAULT 0"
  ");"
  "ALTER TABLE cases ADD COLUMN erased_messages INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE cases ADD COLUMN anonymised_at INTEGER;"
  "CREATE TABLE vault_binding ("           /* the vault this database uses */
  "  id INTEGER PRIMARY KEY CHECK (id = 1),"
  "  vault_id BLOB NOT NULL"
  ");"
  /* anonymised text kept for statistics: sealed under the statistics key,
   * tied to no person */
  "CREATE TABLE case_texts ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  case_id INTEGER NOT NULL REFERENCES cases(id),"
  "  source_message INTEGER NOT NULL UNIQUE," /* the message it replaced */
  "  received_at INTEGER NOT NULL,"
  "  subject BLOB,"                        /* sealed: statistics key */
  "  text BLOB"                            /* sealed: statistics key */
  ");"
  "CREATE INDEX case_texts_case ON case_texts(case_id);"
  /* retention (docs/retention.md): the class, the date a case is due for
   * deletion, legal hold; the last run, for the clock-jump check */
  "ALTER TABLE cases ADD COLUMN retention_class TEXT;"
  "ALTER TABLE cases ADD COLUMN delete_after INTEGER;"   /* unix us */
  "ALTER TABLE cases ADD COLUMN hold_at INTEGER;"
  "ALTER TABLE cases ADD COLUMN hold_reason BLOB;"       /* sealed: stats */
  "CREATE INDEX cases_delete_after ON cases(delete_after)"
  "  WHERE delete_after IS NOT NULL;"
  "CREATE TABLE retention_state ("
  "  id INTEGER PRIMARY KEY CHECK (id = 1),"
  "  last_run_at INTEGER NOT NULL"         /* unix us, the run's clock */
  ");",

  /* 9 -> 10: CRM webhooks and department notifications (issue 8): which
   * queues have them (as intake.conf last said), the webhook delivery
   * queue and log (ids, reference, queue, kind, status: no personal
   * data), the queue a notification tells and the language of an
   * acknowledgement.  */
  "CREATE TABLE queue_outbound ("
  "  queue TEXT PRIMARY KEY,"
  "  webhook INTEGER NOT NULL DEFAULT 0,"
  "  notify INTEGER NOT NULL DEFAULT 0"    /* 1 at once, 2 hourly digest */
  ") WITHOUT ROWID;"
  "CREATE TABLE webhook_events ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  case_id INTEGER NOT NULL,"            /* no REFERENCES: the erasure
                                            * event outlives the case */
  "  hook TEXT NOT NULL,"                  /* the queue whose webhook */
  "  event TEXT NOT NULL,"                 /* case.created, ... */
  "  change TEXT,"                         /* status, routing, reply, message */
  "  message_id INTEGER,"
  "  ref TEXT NOT NULL,"
  "  queue TEXT NOT NULL,"
  "  previous_queue TEXT,"
  "  kind TEXT,"
  "  status TEXT,"
  "  priority TEXT,"
  "  due_at INTEGER,"
  "  state TEXT NOT NULL DEFAULT 'queued'," /* delivered, failed, dropped */
  "  attempts INTEGER NOT NULL DEFAULT 0,"
  "  next_at INTEGER NOT NULL,"
  "  created_at INTEGER NOT NULL,"
  "  delivered_at INTEGER,"
  "  last_http INTEGER,"
  "  last_error TEXT"                      /* a reason, never content */
  ");"
  "CREATE INDEX webhook_due ON webhook_events(state, next_at);"
  "CREATE INDEX webhook_case ON webhook_events(case_id);"
  "ALTER TABLE outbox ADD COLUMN queue TEXT;"
  "ALTER TABLE outbox ADD COLUMN language TEXT;",
  /* 10 -> 11: department API tokens expire (SECURITY-TESTS 102); tokens
   * made before have none (NULL) until revoked.  */
  "ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;",
  /* 11 -> 12: the spool key rotates (SECURITY-TESTS 98): the key each row
   * is sealed under (store_spoolkey.c); 0, the master key's spool key, for
   * the rows before, re-sealed by the first rotation run.  */
  "ALTER TABLE spool ADD COLUMN key_id INTEGER NOT NULL DEFAULT 0;"
  "CREATE INDEX spool_key ON spool(key_id);",
  /* 12 -> 13: the quarantine index holds only the quarantined rows.  Every
   * row spooled and filed went into it and out again, under one NULL key
   * shared by the whole backlog; the pipeline's scan goes by id
   * (store_spool_list) and the count subtracts the few quarantined rows
   * from a count over spool_key (store_spool_count).  */
  "DROP INDEX spool_quarantine;"
  "CREATE INDEX spool_quarantine ON spool(quarantined_at)"
  "  WHERE quarantined_at IS NOT NULL;",
};

void
store_set_sqlite_error (GError **error, sqlite3 *db, int rc, const char *what)
{
  int primary = rc & 0xff;
  store_error_code code;

  switch (primary)
    {
    case SQLITE_FULL:
      code = STORE_ERROR_FULL;
      break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = STORE_ERROR_BUSY;
      break;
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
      code = STORE_ERROR_OPEN;
      break;
    default:
      code = STORE_ERROR_IO;
      break;
    }
  g_set_error (error, STORE_ERROR, code, "%s: %s", what,
               db ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
}

/* SQLite keeps memory statistics by default, behind one process-wide
 * mutex taken for every sqlite3_malloc () and sqlite3_free () of every
 * connection (about 8 of the writer's 93 µs a message while filing, in
 * the bench).  Nothing here reads them (no sqlite3_memory_used (), no
 * soft heap limit), so they are off.  sqlite3_config () is refused (SQLITE_MISUSE, harmless) once the
 * library is initialised.  */
void
store_library_init (void)
{
  (void) sqlite3_config (SQLITE_CONFIG_MEMSTATUS, 0);
}

sqlite3_stmt *
store_prepare (sqlite3 *db, const char *sql, GError **error)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (db, sql, -1, &st, NULL);

  if (rc != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, rc, "prepare");
      return NULL;
    }
  return st;
}

static gboolean
store_exec (sqlite3 *db, const char *sql, GError **error)
{
  int rc = sqlite3_exec (db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, rc, sql);
      return FALSE;
    }
  return TRUE;
}

static gint64
store_pragma_int (sqlite3 *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  gint64 v = -1;

  if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) == SQLITE_OK
      && sqlite3_step (st) == SQLITE_ROW)
    v = sqlite3_column_int64 (st, 0);
  sqlite3_finalize (st);
  return v;
}

static char *
store_pragma_text (sqlite3 *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  char *v = NULL;

  if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) == SQLITE_OK
      && sqlite3_step (st) == SQLITE_ROW)
    v = g_strdup ((const char *) sqlite3_column_text (st, 0));
  sqlite3_finalize (st);
  return v;
}

sqlite3_stmt *
store_stmt (store *s, sqlite3 *db, const char *sql, GError **error)
{
  GHashTable *cache = db == s->wdb ? s->wstmts : s->rstmts;
  sqlite3_stmt *st = g_hash_table_lookup (cache, sql);
  int rc;

  g_assert (db == s->wdb || db == s->rdb);
  if (st != NULL)
    return st;
  rc = sqlite3_prepare_v3 (db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
  if (rc != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, rc, "prepare");
      return NULL;
    }
  g_hash_table_insert (cache, (gpointer) sql, st);
  return st;
}

static void
store_stmt_finalize (gpointer st)
{
  sqlite3_finalize (st);
}

void
store_stmt_release (sqlite3_stmt *st)
{
  if (st == NULL)
    return;
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
}

gint64
store_next_id (store *s, sqlite3 *db, const char *table, GError **error)
{
  sqlite3_stmt *st;
  gint64 id = -1;

  st = store_stmt (s, db,
                      "SELECT COALESCE((SELECT seq FROM sqlite_sequence"
                      " WHERE name = ?1), 0) + 1", error);
  if (st == NULL)
    return -1;
  sqlite3_bind_text (st, 1, table, -1, SQLITE_STATIC);
  if (sqlite3_step (st) == SQLITE_ROW)
    id = sqlite3_column_int64 (st, 0);
  else
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "next id");
  store_stmt_release (st);
  return id;
}

GBytes *
store_seal (const guint8 *key, const char *table, const char *column,
            gint64 row, gint64 owner, const void *p, gsize len)
{
  guint8 nonce[STORE_KEYS_NONCE_BYTES];
  GBytes *sealed;

  /* a fresh random nonce for every value (SECURITY-TESTS 90) */
  randombytes_buf (nonce, sizeof nonce);
  sealed = store_seal_nonce (key, table, column, row, owner, nonce, p, len);
  return sealed;
}

/* The associated data on the stack (table and column names are short
 * literals): two allocations less a value, sixteen a message filed.  */
#define STORE_AAD_STACK 160

GBytes *
store_seal_nonce (const guint8 *key, const char *table, const char *column,
                  gint64 row, gint64 owner, const guint8 *nonce,
                  const void *p, gsize len)
{
  const gsize tl = strlen (table), cl = strlen (column);
  char buf[STORE_AAD_STACK];
  gsize n;

  if (STORE_KEYS_AAD_SIZE (tl, cl) > sizeof buf)
    {
      g_autoptr (GBytes) aad = store_keys_aad (table, column, row, owner, 1);

      return store_keys_seal_nonce (key, aad, nonce, p, len);
    }
  n = store_keys_aad_into (buf, table, tl, column, cl, row, owner, 1);
  return store_keys_seal_nonce_ad (key, buf, n, nonce, p, len);
}

GBytes *
store_unseal (const guint8 *key, const char *table, const char *column,
              gint64 row, gint64 owner, const void *p, gsize len,
              GError **error)
{
  g_autoptr (GBytes) aad = store_keys_aad (table, column, row, owner, 1);
  GError *local = NULL;
  GBytes *b = store_keys_open (key, aad, p, len, &local);

  if (b == NULL)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                   "%s.%s of row %" G_GINT64_FORMAT ": %s", table, column,
                   row, local->message);
      g_error_free (local);
    }
  return b;
}

#define STORE_LOOKASIDE_SLOT  1200
#define STORE_LOOKASIDE_SLOTS 1000

/* Durability is checked, not assumed (SECURITY-TESTS 40).  */
static gboolean
store_configure (sqlite3 *db, gboolean writer, GError **error)
{
  g_autofree char *mode = NULL;
  gint64 sync;

  /* The writer's statements allocate many small objects (cursors, records,
   * savepoints) for every message: a larger lookaside than SQLite's default
   * serves them without malloc.  Set before any statement runs.  */
  if (writer)
    sqlite3_db_config (db, SQLITE_DBCONFIG_LOOKASIDE, NULL,
                       STORE_LOOKASIDE_SLOT, STORE_LOOKASIDE_SLOTS);
  sqlite3_busy_timeout (db, STORE_BUSY_TIMEOUT_MS);
  sqlite3_extended_result_codes (db, 1);
  if (writer && !store_exec (db, "PRAGMA journal_mode=WAL", error))
    return FALSE;
  if (!store_exec (db, "PRAGMA synchronous=FULL;"
                       "PRAGMA foreign_keys=ON;"
                       "PRAGMA temp_store=MEMORY;"
                       "PRAGMA secure_delete=FAST;"
                       "PRAGMA cache_size=-16384;"
                       "PRAGMA mmap_size=268435456;", error))
    return FALSE;
  /* The writer deletes spool rows all day, each with secure_delete on
   * (store_spool_delete ()); it keeps it on rather than switch it for
   * each message (two PRAGMAs, 14k instructions a message).  */
  if (writer && !store_exec (db, "PRAGMA secure_delete=ON", error))
    return FALSE;
  mode = store_pragma_text (db, "PRAGMA journal_mode");
  sync = store_pragma_int (db, "PRAGMA synchronous");
  if (mode == NULL || g_ascii_strcasecmp (mode, "wal") != 0 || sync < 2)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_PRAGMA,
                   "database reports journal_mode=%s synchronous=%"
                   G_GINT64_FORMAT "; intake needs wal and 2 (FULL) or more",
                   mode ? mode : "?", sync);
      return FALSE;
    }
  return TRUE;
}

G_STATIC_ASSERT (G_N_ELEMENTS (store_migrations) == STORE_SCHEMA_VERSION);

static gboolean
store_migrate (sqlite3 *db, GError **error)
{
  const gint64 n = G_N_ELEMENTS (store_migrations);
  gint64 v = store_pragma_int (db, "PRAGMA user_version");

  if (v > n)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_VERSION,
                   "database schema version %" G_GINT64_FORMAT " is newer"
                   " than this intake (%" G_GINT64_FORMAT "); refusing to"
                   " touch it", v, n);
      return FALSE;
    }
  for (; v < n; v++)
    {
      g_autofree char *bump = g_strdup_printf ("PRAGMA user_version=%"
                                               G_GINT64_FORMAT, v + 1);
      if (!store_exec (db, "BEGIN IMMEDIATE", error))
        return FALSE;
      if (!store_exec (db, store_migrations[v], error)
          || !store_exec (db, bump, error)
          || !store_exec (db, "COMMIT", error))
        {
          sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
          return FALSE;
        }
      g_info ("store: migrated schema to version %" G_GINT64_FORMAT, v + 1);
    }
  return TRUE;
}

/* @vfs: NULL for the default one.  */
static sqlite3 *
store_connect_vfs (const char *path, gboolean writer, const char *vfs,
                   GError **error)
{
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  sqlite3 *db = NULL;
  mode_t old;
  int rc;

  if (writer)
    flags |= SQLITE_OPEN_CREATE;
  old = umask (077);              /* database, WAL and SHM: 0600 */
  rc = sqlite3_open_v2 (path, &db, flags, vfs);
  umask (old);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_OPEN,
                   "database %s: %s%s", path,
                   db ? sqlite3_errmsg (db) : sqlite3_errstr (rc),
                   writer ? "" : " (start intaked once to create it)");
      sqlite3_close (db);
      return NULL;
    }
  if (!store_configure (db, writer, error))
    {
      sqlite3_close (db);
      return NULL;
    }
  return db;
}

static sqlite3 *
store_connect (const char *path, gboolean writer, GError **error)
{
  return store_connect_vfs (path, writer,
                            writer ? store_walbuf_vfs_name () : NULL, error);
}

/* ------------------------------------------------------------- writer */

static void
store_job_finish (store_job *job)
{
  if (job->done)
    job->done (job->error ? -1 : job->result_id, job->error, job->user_data);
  g_clear_error (&job->error);
  job->free (job);
}

static void
store_batch_fail (GPtrArray *batch, const GError *error)
{
  for (guint i = 0; i < batch->len; i++)
    {
      store_job *job = batch->pdata[i];
      if (job->error == NULL)
        job->error = g_error_copy (error);
    }
}

/* After an I/O error SQLite's view of the file cannot be trusted; the
 * connection is closed and opened again (SECURITY-TESTS 39).  */
static void
store_writer_reopen (store *s)
{
  GError *error = NULL;

  g_hash_table_remove_all (s->wstmts);
  sqlite3_close_v2 (s->wdb);
  s->wdb = NULL;
  while (s->wdb == NULL)
    {
      s->wdb = store_connect (s->path, TRUE, &error);
      if (s->wdb == NULL)
        {
          g_warning ("store: reopen failed: %s", error->message);
          g_clear_error (&error);
          g_usleep (G_USEC_PER_SEC);
        }
    }
  sqlite3_wal_autocheckpoint (s->wdb, 0);
  sqlite3_wal_hook (s->wdb, store_wal_hook, s);
}

/* A statement without results, prepared once (SAVEPOINT and friends run
 * for every job).  */
static gboolean
store_run (store *s, sqlite3 *db, const char *sql, GError **error)
{
  sqlite3_stmt *st = store_stmt (s, db, sql, error);
  int rc;

  if (st == NULL)
    return FALSE;
  rc = sqlite3_step (st);
  store_stmt_release (st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    {
      store_set_sqlite_error (error, db, rc, sql);
      return FALSE;
    }
  return TRUE;
}

/* What the writer keeps in memory between statements of its batches (the
 * audit chain's head, the queues' outbound settings) holds while only the
 * writer commits; PRAGMA data_version tells whether another connection
 * (this process's reads and audited actions, intakectl) committed since
 * the last batch.  The writer holds the write lock from BEGIN IMMEDIATE to
 * COMMIT, so nothing else changes during the batch.  */
static void
store_writer_batch_begin (store *s, sqlite3 *db)
{
  sqlite3_stmt *st = store_stmt (s, db, "PRAGMA data_version", NULL);
  gint64 v = -1;
  gboolean others;

  if (st != NULL && sqlite3_step (st) == SQLITE_ROW)
    v = sqlite3_column_int64 (st, 0);
  store_stmt_release (st);
  others = v < 0 || v != s->wdata_version;
  s->wdata_version = v;
  if (others)
    s->outbound.known = FALSE;
  s->wbatch = TRUE;
  store_audit_batch_begin (s, others);
}

/* ... and what it kept is forgotten when a batch rolls back.  */
static void
store_writer_batch_forget (store *s)
{
  store_audit_batch_forget (s);
  s->wbatch = FALSE;
  s->outbound.known = FALSE;
  s->wdata_version = -1;
}

/* The batch did not commit: roll back, fail every job with the same error,
 * and after an I/O error reopen the connection.  */
static void
store_batch_abort (store *s, GPtrArray *batch, int rc, const char *what)
{
  GError *error = NULL;

  s->next_spool_id = 0;         /* the batch's ids were rolled back */
  store_writer_batch_forget (s); /* and its audit events */
  store_spool_key_batch_forget (s);
  /* keys of subjects the batch created, under ids handed out again */
  store_keycache_clear (s->wkeys);
  store_set_sqlite_error (&error, s->wdb, rc, what);
  g_warning ("store: %s", error->message);
  if (!sqlite3_get_autocommit (s->wdb))
    sqlite3_exec (s->wdb, "ROLLBACK", NULL, NULL, NULL);
  store_vault_rollback (s->wvault);
  for (guint i = 0; i < batch->len; i++)
    {
      store_job *job = batch->pdata[i];
      g_clear_error (&job->error);
      job->error = g_error_copy (error);
    }
  g_error_free (error);
  if ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CORRUPT)
    store_writer_reopen (s);
}

/* Whether every job of @batch can simply be run again from the start after
 * the whole transaction rolled back: one statement (atomic), or marked
 * rerunnable (nothing it does outside this transaction survives a
 * rollback but what store_batch_restart () puts back).  */
static gboolean
store_batch_rerunnable (GPtrArray *batch)
{
  for (guint i = 0; i < batch->len; i++)
    {
      const store_job *job = batch->pdata[i];
      if (!job->atomic && !job->rerunnable)
        return FALSE;
    }
  return TRUE;
}

/* A job of a batch run without savepoints failed and left part of its work
 * in the transaction: roll all of it back, put back what the writer kept
 * from it, and let every job start again.  FALSE if the rollback failed
 * (then the batch is aborted, as for any other failure).  */
static gboolean
store_batch_restart (store *s, GPtrArray *batch)
{
  int rc = sqlite3_exec (s->wdb, "ROLLBACK", NULL, NULL, NULL);

  s->next_spool_id = 0;         /* as in store_batch_abort () */
  store_writer_batch_forget (s);
  store_spool_key_batch_forget (s);
  store_keycache_clear (s->wkeys);
  store_vault_rollback (s->wvault);
  if (rc != SQLITE_OK || !sqlite3_get_autocommit (s->wdb))
    {
      store_batch_abort (s, batch, rc != SQLITE_OK ? rc : SQLITE_ERROR,
                         "rollback");
      return FALSE;
    }
  for (guint i = 0; i < batch->len; i++)
    {
      store_job *job = batch->pdata[i];
      g_clear_error (&job->error);
      job->result_id = 0;
      job->kill_after_commit = FALSE;
    }
  return TRUE;
}

/* Each job runs inside a SAVEPOINT, so that one that fails is undone alone
 * and the others commit.  A SAVEPOINT is not free: SQLite copies every
 * page a job changes into the statement journal first, and allocates and
 * frees its bookkeeping, about a tenth of the writer's CPU when filing
 * (8 of 85 us a message in the bench).  So a batch whose jobs can all be
 * run again (mail being filed, spool rows) first runs without them; if
 * one of its jobs fails, the whole transaction is rolled back and the
 * batch run again, this time with a SAVEPOINT per job: what is committed,
 * and which jobs fail, is the same either way.  */
static void
store_batch_run (store *s, GPtrArray *batch)
{
  sqlite3 *db = s->wdb;
  GError *error = NULL;
  gboolean broken = FALSE, ok;
  gboolean plain = store_batch_rerunnable (batch);
  int rc;

again:
  if (!store_run (s, db, "BEGIN IMMEDIATE", &error))
    {
      store_vault_rollback (s->wvault);
      store_writer_batch_forget (s);
      store_spool_key_batch_forget (s);
      store_batch_fail (batch, error);
      g_clear_error (&error);
      return;
    }
  store_writer_batch_begin (s, db);
  for (guint i = 0; i < batch->len && !broken; i++)
    {
      store_job *job = batch->pdata[i];
      /* the audit head as it was at the SAVEPOINT, for a ROLLBACK TO */
      const struct store_audit_cache audit = s->audit;

      if (job->atomic)
        {
          if (!job->run (s, db, job, &job->error) && sqlite3_get_autocommit (db))
            broken = TRUE;
          continue;
        }
      if (plain)
        {
          if (job->run (s, db, job, &job->error))
            continue;
          /* SQLite rolled the whole transaction back itself (full disk,
           * I/O error): as below, no job of this batch is stored */
          if (sqlite3_get_autocommit (db))
            {
              broken = TRUE;
              break;
            }
          if (!store_batch_restart (s, batch))
            return;
          plain = FALSE;
          goto again;
        }
      if (!store_run (s, db, "SAVEPOINT job", &job->error))
        {
          broken = TRUE;
          break;
        }
      if (job->run (s, db, job, &job->error))
        {
          store_run (s, db, "RELEASE job", NULL);
          continue;
        }
      /* SQLite rolls the whole transaction back on some errors (full disk,
       * I/O error): then no job of this batch is stored.  */
      if (sqlite3_get_autocommit (db))
        broken = TRUE;
      else if (!store_run (s, db, "ROLLBACK TO job", NULL)
               || !store_run (s, db, "RELEASE job", NULL))
        broken = TRUE;
      else
        s->audit = audit;
    }
  if (broken)
    {
      store_batch_abort (s, batch, sqlite3_extended_errcode (db),
                         "transaction aborted");
      return;
    }
  /* the signed head of the audit chain, once for the batch */
  ok = store_audit_batch_flush (s, db, &error);
  s->wbatch = FALSE;
  if (!ok)
    {
      g_warning ("store: %s", error->message);
      g_clear_error (&error);
      store_batch_abort (s, batch, sqlite3_extended_errcode (db),
                         "audit head");
      return;
    }
  /* The vault secrets of the batch's new subjects are on disk before the
   * data keys that need them: a crash in between leaves unused secrets
   * (replaced when the id is handed out again), never a key without its
   * secret.  */
  if (!store_vault_commit (s->wvault, &error))
    {
      g_warning ("store: %s", error->message);
      g_clear_error (&error);
      store_batch_abort (s, batch, SQLITE_IOERR, "key vault commit");
      return;
    }
  {
    sqlite3_stmt *commit = store_stmt (s, db, "COMMIT", NULL);
    rc = commit ? sqlite3_step (commit) : sqlite3_errcode (db);
    store_stmt_release (commit);
  }
  /* A failed commit is never retried and assumed good: everything in the
   * batch is reported failed (451) and nothing is kept.  */
  if (rc != SQLITE_DONE && rc != SQLITE_OK)
    {
      store_batch_abort (s, batch, rc, "commit");
      return;
    }
  store_spool_key_batch_done (s);
  /* only now, committed, may the spool feed have a row (store_feed.c) */
  for (guint i = 0; i < batch->len; i++)
    {
      store_job *job = batch->pdata[i];
      if (job->committed != NULL && job->error == NULL)
        job->committed (s, job);
    }
  for (guint i = 0; i < batch->len; i++)
    if (((store_job *) batch->pdata[i])->kill_after_commit)
      {
        g_message ("store: fault injection: SIGKILL after the commit");
        kill (getpid (), SIGKILL);
      }
}

static gpointer
store_writer_main (gpointer data)
{
  store *s = data;
  GPtrArray *batch = g_ptr_array_new ();
  gboolean stop = FALSE;
  guint last = 0;

  while (!stop)
    {
      store_job *job;
      gint64 until;
      gsize weight;

      /* While it holds opened data keys the writer wakes every second
       * even without work, so that they go after their TTL or an
       * erasure (store_keycache.c), not at the next letter.  */
      if (store_keycache_live (s->wkeys) > 0)
        {
          job = g_async_queue_timeout_pop (s->jobs, G_USEC_PER_SEC);
          store_keycache_tick (s->wkeys);
          if (job == NULL)
            continue;
        }
      else
        job = g_async_queue_pop (s->jobs);
      if (job == &store_stop_marker)
        break;
      g_ptr_array_add (batch, job);
      weight = job->weight;
      /* Under concurrency (the last batch had company) wait a moment for
       * more: every commit is an fsync, and the callers arriving in the
       * next STORE_GATHER_US would otherwise wait for a whole commit of
       * their own.  A lone client never waits.  */
      until = last > 1 ? g_get_monotonic_time () + STORE_GATHER_US : 0;
      while (batch->len < STORE_BATCH_MAX_JOBS
             && weight < STORE_BATCH_MAX_BYTES
             && ((job = g_async_queue_try_pop (s->jobs)) != NULL
                 || (until > 0 && (job = g_async_queue_timeout_pop (
                                       s->jobs, MAX (until
                                                     - g_get_monotonic_time (),
                                                     1))) != NULL)))
        {
          if (job == &store_stop_marker)
            {
              stop = TRUE;
              break;
            }
          g_ptr_array_add (batch, job);
          weight += job->weight;
        }
      last = batch->len;
      store_batch_run (s, batch);
      /* Only now, after the commit returned, does anyone hear "stored".  */
      for (guint i = 0; i < batch->len; i++)
        store_job_finish (batch->pdata[i]);
      g_ptr_array_set_size (batch, 0);
    }
  g_ptr_array_free (batch, TRUE);
  return NULL;
}

guint
store_writer_keys_held (store *s)
{
  return store_keycache_live (s->wkeys);
}

void
store_job_submit (store *s, store_job *job)
{
  g_assert (s->writer != NULL);
  g_async_queue_push (s->jobs, job);
}

/* -------------------------------------------------------- checkpoints */

/* The writer's connection does not checkpoint (that would stall the next
 * batch behind a copy and an fsync of the database file); a thread of its
 * own does, passively, once the WAL has grown past this many pages.  */
#define STORE_CHECKPOINT_PAGES 4000
/* A WAL that passive checkpoints cannot bring back to its start (writes
 * never pause) is truncated once it holds this many pages (256 MiB at 4 KiB
 * pages): the writer waits for that one checkpoint, instead of the file
 * growing without bound under a sustained burst.  */
#define STORE_CHECKPOINT_TRUNCATE_PAGES 65536

static int
store_wal_hook (void *data, sqlite3 *db, const char *name, int pages)
{
  store *s = data;

  g_atomic_int_set (&s->wal_last, pages);
  if (pages >= STORE_CHECKPOINT_PAGES)
    {
      g_mutex_lock (&s->clock);
      s->wal_pages = pages;
      g_cond_signal (&s->ccond);
      g_mutex_unlock (&s->clock);
    }
  return SQLITE_OK;
}

/* A checkpoint that fails (an I/O error writing the database file, a
 * full disk) loses nothing: the WAL keeps every commit and the next
 * checkpoint copies it.  But the WAL then grows with every message, so
 * the operator hears of it: the first failure of a run, then at most once
 * a minute while it lasts, and once when a checkpoint works again.
 * SQLITE_BUSY (a reader or the writer in the way of a TRUNCATE) is not a
 * failure.  */
#define STORE_CHECKPOINT_WARN_US (60 * G_TIME_SPAN_SECOND)

static void
store_checkpoint_outcome (store *s, int rc)
{
  gint64 now = g_get_monotonic_time ();
  guint failures = (guint) g_atomic_int_get (&s->ckpt_failures);

  if (rc == SQLITE_OK || rc == SQLITE_BUSY)
    {
      if (failures > 0)
        g_message ("event=checkpoint-recovered failures=%u", failures);
      g_atomic_int_set (&s->ckpt_failures, 0);
      return;
    }
  g_atomic_int_set (&s->ckpt_failures, ++failures);
  if (failures == 1 || now - s->ckpt_warned >= STORE_CHECKPOINT_WARN_US)
    {
      g_warning ("event=checkpoint-failed error=%s failures=%u "
                 "(nothing is lost: the WAL keeps growing until a "
                 "checkpoint works)", sqlite3_errstr (rc), failures);
      s->ckpt_warned = now;
    }
}

void
store_wal_status (store *s, gint *wal_pages, guint *ckpt_failures)
{
  *wal_pages = g_atomic_int_get (&s->wal_last);
  *ckpt_failures = (guint) g_atomic_int_get (&s->ckpt_failures);
}

static gpointer
store_checkpointer_main (gpointer data)
{
  store *s = data;

  g_mutex_lock (&s->clock);
  while (!s->cstop)
    {
      if (s->wal_pages < STORE_CHECKPOINT_PAGES)
        g_cond_wait_until (&s->ccond, &s->clock,
                           g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND);
      s->wal_pages = 0;
      g_mutex_unlock (&s->clock);
      /* PASSIVE never waits for readers or the writer; what it cannot copy
       * now is copied next time.  */
      {
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2 (s->cdb, NULL,
                                            SQLITE_CHECKPOINT_PASSIVE,
                                            &log, &done);
        if (rc == SQLITE_OK && log >= STORE_CHECKPOINT_TRUNCATE_PAGES)
          rc = sqlite3_wal_checkpoint_v2 (s->cdb, NULL,
                                          SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                          NULL);
        store_checkpoint_outcome (s, rc);
      }
      g_mutex_lock (&s->clock);
    }
  g_mutex_unlock (&s->clock);
  return NULL;
}

/* A vault that is not this database's fails closed at start too (besides
 * the binding of store_vault_open()): of the newest vaulted data keys whose
 * secret the vault holds, one must open (one damaged row is that row's
 * failure, not the whole store's).  Subjects without a secret are erased
 * ones (a restored backup may still hold their rows).  */
static gboolean
store_keyring_check_vault (store *s, sqlite3 *db, GError **error)
{
  sqlite3_stmt *st = store_prepare (db, "SELECT id, data_key FROM subjects"
                                        " WHERE vault = 1 AND erasing_at IS"
                                        " NULL ORDER BY id DESC LIMIT 64",
                                    error);
  GError *first = NULL;
  gboolean ok = TRUE;

  if (st == NULL)
    return FALSE;
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      GError *local = NULL;
      gint64 id = sqlite3_column_int64 (st, 0);
      guint8 *k;

      if (!store_vault_has (s, db, id))
        continue;
      k = store_subject_key_unwrap (s, db, sqlite3_column_blob (st, 1),
                                    sqlite3_column_bytes (st, 1), id, &local);
      if (k != NULL)
        {
          store_keys_data_key_free (k);
          g_clear_error (&first);
          ok = TRUE;
          break;
        }
      ok = FALSE;
      if (first == NULL)
        first = local;
      else
        g_error_free (local);
    }
  sqlite3_finalize (st);
  if (!ok)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                   "the key vault %s does not open this database's data keys"
                   " (%s): wrong or stale vault; refusing to start",
                   s->vault_path, first->message);
      g_error_free (first);
    }
  return ok;
}

/* A wrong or missing master key fails closed at start (not row by row
 * later): the database keeps a check value of every key version it has
 * seen, and versions the key file has added (`intakectl keys rotate`) are
 * recorded here.  */
static gboolean
store_keyring_check (store *s, sqlite3 *db, GError **error)
{
  const guint n = store_keys_version (s->keys);
  guint8 want[32];
  guint seen = 0;
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  int rc;

  if (!store_exec (db, "BEGIN IMMEDIATE", error))
    return FALSE;
  st = store_prepare (db, "SELECT version, check_value FROM keyring"
                          " ORDER BY version", error);
  if (st == NULL)
    goto out;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      guint v = sqlite3_column_int (st, 0);
      if (v > n)
        {
          g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                       "the database has seen master key version %u but the"
                       " key file holds %u version%s: wrong or old key file;"
                       " refusing to start", v, n, n == 1 ? "" : "s");
          sqlite3_finalize (st);
          goto out;
        }
      store_keys_check_value (s->keys, v, want);
      if (sqlite3_column_bytes (st, 1) != 32
          || sodium_memcmp (want, sqlite3_column_blob (st, 1), 32) != 0)
        {
          g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                       "master key version %u does not match this database:"
                       " wrong key file; refusing to start", v);
          sqlite3_finalize (st);
          goto out;
        }
      seen = MAX (seen, v);
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "keyring");
      goto out;
    }
  if (!store_keyring_check_vault (s, db, error))
    goto out;
  if (seen == 0)
    {
      /* A database from before key versions: one data key must open with
       * this key file before its check value is written down.  */
      st = store_prepare (db, "SELECT id, data_key FROM subjects"
                              " ORDER BY id LIMIT 1", error);
      if (st == NULL)
        goto out;
      if (sqlite3_step (st) == SQLITE_ROW)
        {
          guint8 *k = store_keys_unwrap (s->keys, sqlite3_column_blob (st, 1),
                                         sqlite3_column_bytes (st, 1),
                                         sqlite3_column_int64 (st, 0), NULL);
          if (k == NULL)
            {
              g_set_error (error, STORE_ERROR, STORE_ERROR_CRYPTO,
                           "the master key file does not open this"
                           " database's data keys: wrong key file; refusing"
                           " to start");
              sqlite3_finalize (st);
              goto out;
            }
          store_keys_data_key_free (k);
        }
      sqlite3_finalize (st);
    }
  for (guint v = seen + 1; v <= n; v++)
    {
      st = store_prepare (db, "INSERT INTO keyring (version, check_value,"
                              " created_at) VALUES (?1, ?2, ?3)", error);
      if (st == NULL)
        goto out;
      store_keys_check_value (s->keys, v, want);
      sqlite3_bind_int (st, 1, v);
      sqlite3_bind_blob (st, 2, want, 32, SQLITE_TRANSIENT);
      sqlite3_bind_int64 (st, 3, g_get_real_time ());
      rc = sqlite3_step (st);
      sqlite3_finalize (st);
      if (rc != SQLITE_DONE)
        {
          store_set_sqlite_error (error, db, rc, "keyring insert");
          goto out;
        }
    }
  ok = store_exec (db, "COMMIT", error);
out:
  if (!ok && !sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  return ok;
}

/* -------------------------------------------------------------- open */

store *
store_open (const char *path, const store_keys *keys, guint flags,
            GError **error)
{
  return store_open_full (path, NULL, keys, flags, error);
}

store *
store_open_full (const char *path, const char *vault, const store_keys *keys,
                 guint flags, GError **error)
{
  gboolean writer = (flags & STORE_OPEN_WRITER) != 0;
  store *s;

  store_keys_init ();
  if (!writer && !g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_OPEN,
                   "database %s does not exist (start intaked once, or"
                   " 'make run', to create it)", path);
      return NULL;
    }
  s = g_new0 (store, 1);
  s->path = g_strdup (path);
  s->vault_path = vault ? g_strdup (vault) : store_vault_default_path (path);
  s->keys = keys;
  g_rec_mutex_init (&s->vlock);
  g_mutex_init (&s->rlock);
  g_mutex_init (&s->clock);
  g_cond_init (&s->ccond);
  s->wkey = sodium_malloc (STORE_KEY_BYTES);
  g_assert (s->wkey != NULL);
  s->wkeys = store_keycache_new ();
  s->spoolkeys = store_spoolkeys_new ();
  s->feed = store_feed_new ();
  s->wdata_version = -1;       /* what the writer keeps is read at first */
  s->wstmts = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                     store_stmt_finalize);
  s->rstmts = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                     store_stmt_finalize);
  if (writer)
    {
      s->wdb = store_connect (path, TRUE, error);
      if (s->wdb == NULL || !store_migrate (s->wdb, error))
        {
          store_close (&s);
          return NULL;
        }
    }
  s->rdb = store_connect (path, FALSE, error);
  if (s->rdb == NULL)
    {
      store_close (&s);
      return NULL;
    }
  if (!writer)
    {
      gint64 v = store_pragma_int (s->rdb, "PRAGMA user_version");
      if (v != STORE_SCHEMA_VERSION)
        {
          g_set_error (error, STORE_ERROR, STORE_ERROR_VERSION,
                       "database schema version %" G_GINT64_FORMAT ", this"
                       " intake reads %d%s", v, STORE_SCHEMA_VERSION,
                       v < STORE_SCHEMA_VERSION
                           ? " (start intaked to migrate it)" : "");
          store_close (&s);
          return NULL;
        }
    }
  if (!store_vault_open (s, writer, error)
      || !store_keyring_check (s, writer ? s->wdb : s->rdb, error))
    {
      store_close (&s);
      return NULL;
    }
  if (writer)
    {
      /* its copies go to the database file in runs (store_walbuf.c) */
      s->cdb = store_connect_vfs (path, FALSE, store_ckptbuf_vfs_name (),
                                  error);
      if (s->cdb == NULL)
        {
          store_close (&s);
          return NULL;
        }
      sqlite3_wal_autocheckpoint (s->wdb, 0);
      sqlite3_wal_hook (s->wdb, store_wal_hook, s);
      s->checkpointer = g_thread_new ("store-ckpt",
                                      store_checkpointer_main, s);
      s->jobs = g_async_queue_new ();
      s->writer = g_thread_new ("store-writer", store_writer_main, s);
    }
  return s;
}

void
store_close (store **sp)
{
  store *s = sp ? *sp : NULL;

  if (s == NULL)
    return;
  if (s->writer)
    {
      g_async_queue_push (s->jobs, &store_stop_marker);
      g_thread_join (s->writer);
      g_async_queue_unref (s->jobs);
    }
  if (s->checkpointer)
    {
      g_mutex_lock (&s->clock);
      s->cstop = TRUE;
      g_cond_signal (&s->ccond);
      g_mutex_unlock (&s->clock);
      g_thread_join (s->checkpointer);
    }
  if (s->cdb)
    sqlite3_close_v2 (s->cdb);
  /* Statements first: a connection with live statements does not close. */
  g_hash_table_unref (s->wstmts);
  g_hash_table_unref (s->rstmts);
  if (s->wdb)
    sqlite3_close_v2 (s->wdb);
  if (s->rdb)
    sqlite3_close_v2 (s->rdb);
  sqlite3_finalize (s->wvault_get);
  sqlite3_finalize (s->rvault_get);
  if (s->wvault)
    sqlite3_close_v2 (s->wvault);
  if (s->rvault)
    sqlite3_close_v2 (s->rvault);
  g_rec_mutex_clear (&s->vlock);
  g_free (s->vault_path);
  g_mutex_clear (&s->rlock);
  g_mutex_clear (&s->clock);
  g_cond_clear (&s->ccond);
  sodium_free (s->wkey);
  store_keycache_free (&s->wkeys);
  store_spoolkeys_free (&s->spoolkeys);
  store_feed_free (&s->feed);
  g_free (s->path);
  g_free (s);
  *sp = NULL;
}
