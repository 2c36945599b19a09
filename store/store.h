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
  STORE_ERROR_STATE,       /* a status change that is not allowed */
  STORE_ERROR_CLOCK,       /* the clock jumped: retention waits for a
                            * person to confirm */
  STORE_ERROR_EXPIRED,     /* an API token past its expiry */
} store_error_code;

/* The schema version this binary writes (PRAGMA user_version).  */
#define STORE_SCHEMA_VERSION 13

typedef enum {
  STORE_OPEN_WRITER = 1 << 0,  /* create/migrate, start the writer thread */
} store_open_flags;

/* (transfer full) Open the database at @path.  @keys (transfer none) must
 * outlive the store.  With STORE_OPEN_WRITER the file is created (mode
 * 0600) and migrated; without it, the file must exist at this binary's
 * schema version.  */
store *store_open (const char *path, const store_keys *keys, guint flags,
                   GError **error);

/* The same with the key vault at @vault (nullable: "DIR/STEM-vault.db"
 * beside "DIR/STEM.db"); docs/rights.md.  */
store *store_open_full (const char *path, const char *vault,
                        const store_keys *keys, guint flags, GError **error);

/* Process-wide SQLite settings; call once, before any thread and before
 * any database is opened (later it changes nothing).  Only how SQLite
 * counts its own memory: nothing stored or guaranteed changes.  */
void store_library_init (void);

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

/* Whether @a and @b hold the same envelope, field by field.  */
gboolean store_envelope_equal (const store_envelope *a,
                               const store_envelope *b);

/* (transfer full) An envelope as bytes (a GVariant), for the spool and for
 * the frames between processes; and back, treating the bytes as untrusted
 * (NULL with STORE_ERROR_CRYPTO if they are not a well-formed envelope).  */
GBytes *store_envelope_pack (const store_envelope *env);
/* The two ways store_envelope_pack () takes: serialised by hand (NULL if
 * a string is not UTF-8), and with g_variant_new (), which the first must
 * equal byte for byte (test_store).  */
GBytes *store_envelope_pack_direct (const store_envelope *env);
GBytes *store_envelope_pack_gvariant (const store_envelope *env);
/* The two ways store_envelope_unpack () takes: by hand (NULL unless the
 * bytes are exactly what store_envelope_pack_direct () makes of what it
 * read), else through GVariant, which the first must agree with on every
 * input (test_store).  */
store_envelope *store_envelope_unpack_direct (GBytes *bytes);
store_envelope *store_envelope_unpack_gvariant (GBytes *bytes,
                                                GError **error);
store_envelope *store_envelope_unpack (GBytes *bytes, GError **error);

/* Called in the writer thread after the commit (@error NULL, @id the spool
 * id) or after a failure (@error set, nothing stored).  */
typedef void (*store_done_fn) (gint64 id, const GError *error,
                               gpointer user_data);

/* ---------------------------------------------------------- spool keys */

/* The spool is sealed under a key that changes every @seconds (default
 * STORE_SPOOL_KEY_LIFETIME_S, a day; [store] spool_key_lifetime), each
 * destroyed once no spool row needs it (store_spoolkey.c,
 * docs/cases.md "Keys").  */
#define STORE_SPOOL_KEY_LIFETIME_S (24 * 3600)
void store_spool_key_set_lifetime (store *s, guint seconds);

/* One of the spool's keys, for `intakectl spool keys`.  */
typedef struct {
  gint64 id;           /* 0: version 1's spool key (rows before schema 12) */
  gint64 created_at;   /* unix us; 0 when not in the key vault */
  gint64 rows;         /* spool rows sealed under it, quarantined too */
  gboolean in_vault;   /* its secret is in the key vault (never for 0) */
} store_spool_key_info;

/* (transfer full) Every key the key vault holds and every key a spool row
 * names, by id (store_spool_key_info); NULL with @error.  */
GArray *store_spool_keys_list (store *s, GError **error);

/* What one run of store_spool_rotate_submit() did.  */
typedef struct {
  gint64 key;          /* the current key's id */
  gboolean rotated;    /* that key was made by this run */
  gint64 resealed;     /* rows moved under it from keys a period old */
  guint unreadable;    /* rows under such a key that did not open: left */
  guint destroyed;     /* keys destroyed after the commit */
  guint waiting;       /* keys unused, destroyed at the next run */
  gboolean more;       /* @max rows re-sealed: run again */
} store_spool_rotation;

/* One run of the spool keys' rotation in the writer: start a new key if
 * the current one is a period old, re-seal (at most @max) rows still
 * under a key a period old, and destroy, after the commit, the keys that
 * no row used at this run nor at the one before.  @out (nullable) is
 * filled before @done runs (in the writer thread).  Only the process
 * that spools (intaked) runs it.  */
void store_spool_rotate_submit (store *s, guint max,
                                store_spool_rotation *out,
                                store_done_fn done, gpointer user_data);

/* An IMAP message: the spool row and the (mailbox, UIDVALIDITY, UID)
 * checkpoint are committed together.  If that message was taken before,
 * nothing is stored and @done gets id 0 (it may be moved now).  */
void store_spool_submit_imap (store *s, store_envelope *env, GBytes *raw,
                              const char *mailbox, guint32 uidvalidity,
                              guint32 uid, store_done_fn done,
                              gpointer user_data);

/* How an IMAP mailbox is doing (`intakectl mailboxes`).  */
typedef struct {
  char *mailbox;
  char *state;
  gint64 last_success;     /* unix us; 0: never */
  char *last_error;        /* (nullable) */
  gint64 last_error_at;
  gint64 backlog;          /* messages waiting on the server, last seen */
  gint64 token_expires;    /* unix s; 0: not an OAuth token */
  gint64 updated_at;
} store_imap_status;

void store_imap_status_free (store_imap_status *st);

/* Record @st (from the master, on the writer).  */
void store_imap_status_submit (store *s, const store_imap_status *st);

/* (transfer full) every mailbox's status, by name.  */
GPtrArray *store_imap_status_list (store *s, GError **error);

/* Room for a case reference: "PREFIX-YYYY-NNNNNN-C" and a NUL.  */
#define STORE_REF_MAX 32

/* A web form submission: spooled with its case reference allocated in the
 * same transaction (the 201 tells the citizen); the case is opened under
 * that reference when the message is filed.  @ref_out (STORE_REF_MAX
 * bytes) holds it when @done is called without error.  */
void store_spool_submit_form (store *s, store_envelope *env, GBytes *raw,
                              const char *prefix, char *ref_out,
                              store_done_fn done, gpointer user_data);

/* Queue @raw with @env for the spool; both (transfer full).  @done is
 * called once, from the writer thread.  */
void store_spool_submit (store *s, store_envelope *env, GBytes *raw,
                         store_done_fn done, gpointer user_data);

typedef struct {
  gint64 id;
  store_envelope *env;     /* NULL if the row did not open */
  GBytes *env_bytes;       /* @env as stored: store_envelope_pack (env) */
  GBytes *raw;             /* NULL if the row did not open */
  GError *error;           /* why it did not open (STORE_ERROR_CRYPTO) */
} store_spool_item;

void store_spool_item_free (store_spool_item *item);

/* (transfer full) Up to @max spooled messages with id > @after_id, oldest
 * first, decrypted.  A row that does not open comes back with @error set
 * and no content; it is not an error of the call.  */
GPtrArray *store_spool_list (store *s, gint64 after_id, guint max,
                             GError **error);

/* The spool feed (store_feed.c, docs/design-notes.md "The spool feed"):
 * rows the writer has just committed are kept in memory, in plaintext,
 * until store_spool_list () hands them out, so that the pipeline does
 * not read and unseal them again.  At most this many raw bytes and rows;
 * rows beyond are read from the database as before.  */
#define STORE_FEED_MAX_BYTES ((gsize) 64 * 1024 * 1024)
#define STORE_FEED_MAX_ROWS 32768

typedef struct {
  guint64 fed;         /* rows taken in */
  guint64 taken;       /* rows handed out by store_spool_list () */
  guint64 dropped;     /* rows let go unread (passed, cleared) */
  guint64 full;        /* rows not taken in: the feed was full */
  guint rows;          /* held now */
  gsize bytes;         /* their raw bytes */
} store_spool_feed_stats;

/* Drop every fed row: anything that deletes or hides spool rows other
 * than filing must call it (today nothing does).  */
void store_spool_feed_clear (store *s);
/* On by default; off (and cleared) with @on FALSE, or at store_open ()
 * when the environment has INTAKE_SPOOL_FEED=0 (tests, benchmarks).  */
void store_spool_feed_set_enabled (store *s, gboolean on);
/* Tests: lower bounds than STORE_FEED_MAX_ROWS and _BYTES (clamped to
 * them).  */
void store_spool_feed_set_limits (store *s, guint rows, gsize bytes);
void store_spool_feed_get_stats (store *s, store_spool_feed_stats *out);

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

/* An attachment as the parser found it.  */
typedef struct {
  char *name;              /* safe display name */
  char *declared_type;
  char *detected_type;
  char sha256[65];         /* hex */
  GBytes *content;         /* (owned) (nullable) decoded bytes */
  guint flags;             /* parser_att_flag */
} store_attachment;

store_attachment *store_attachment_new (void);
void store_attachment_free (store_attachment *a);

/* What the pipeline learnt of one spooled message.  */
typedef struct {
  gint64 spool_id;
  store_envelope *env;     /* (owned) */
  GBytes *env_packed;      /* (owned) (nullable) store_envelope_pack (env),
                            * when the caller has it already (the spool
                            * row's): sealed as it is, not packed again */
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
  guint n_attachments;     /* when @attachments is empty: count only */
  char *quoted;            /* (nullable) quoted history */
  char *headers;           /* (nullable) top-level header block, decoded */
  char *in_reply_to;       /* (nullable) without <> */
  GPtrArray *references;   /* char *, without <>, oldest first */
  GPtrArray *case_refs;    /* char *, references found (not yet checked) */
  GPtrArray *attachments;  /* store_attachment * */
  char *priority;          /* (nullable) "normal" */
  gint64 due_at;           /* unix us; 0: none yet */
  char *reasons;           /* (nullable) why it was routed: rule names and
                            * scores, never personal data */
  char *rules_hash;        /* (nullable) the rule set that routed it */
  /* acknowledgements (the pipeline has ruled out auto-replies, bounces,
   * lists, the null sender, our own addresses): the store adds the loop
   * breaker and the per-sender limit, and queues one for a new case */
  gboolean ack_wanted;
  guint ack_per_day;       /* acknowledgements one person gets a day */
  guint loop_messages;     /* more than this many messages into one case */
  guint loop_minutes;      /* ...within this many minutes: no more acks,
                            * the case is flagged */
  char *language;          /* (nullable) of the acknowledgement: "cy" for
                            * a Welsh mailbox or form; NULL: English */
} store_ingest;

store_ingest *store_ingest_new (void);
void store_ingest_free (store_ingest *in);

/* File a spooled message and delete the spool row, all in one
 * transaction.  @in (transfer full).  @done gets the case id.
 *
 * - The same bytes as a recorded message, or the same Message-ID from the
 *   same data subject: one more arrival on that message, nothing else.
 * - It joins a case it names (a valid reference in the subject or a plus-
 *   address, or In-Reply-To/References naming one of the case's messages)
 *   only if its sender is a participant of that case and the case is not
 *   closed; a waiting or resolved case goes back to "assigned".
 * - Otherwise a new case, linked to every case it named (a stranger quoting
 *   someone's reference never lands in their case).  */
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
  gint64 subject_id;
  gint64 due_at;           /* unix us; 0: none */
  gint64 closed_at;        /* unix us; 0: open */
  char *reasons;           /* (nullable) */
  char *rules_hash;        /* (nullable) */
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
  guint n_attachments;
  char *thread_by;         /* "new", "reference", "in-reply-to", ... */
  guint anomalies;
  guint special;
  gboolean auto_reply;
} store_message_view;

void store_case_view_free (store_case_view *v);
void store_message_view_free (store_message_view *v);

/* (transfer full) every case, newest first, decrypted in memory.  */
GPtrArray *store_case_list (store *s, GError **error);

/* (transfer full) one case by reference, and its messages (transfer full,
 * store_message_view *).  STORE_ERROR_NOT_FOUND if none.  */
store_case_view *store_case_get (store *s, const char *ref,
                                 GPtrArray **messages, GError **error);

/* Cases matching a filter, newest first (NULL fields match anything;
 * @limit 0 = no limit; @before_id > 0 pages back from that id).  */
typedef struct {
  const char *queue;
  const char *status;
  const char *kind;
  const char *tag;         /* a tag of the routing reasons ("tags") */
  guint limit;
  gint64 before_id;
  gboolean brief;          /* a list's columns only: from_name and
                            * message_id stay NULL, not decrypted */
} store_case_filter;

/* (transfer full) store_case_view *, decrypted in memory.  */
GPtrArray *store_case_find (store *s, const store_case_filter *f,
                            GError **error);

/* Whether a case may go from @from to @to:
 *   new -> assigned, resolved, closed
 *   assigned -> new, waiting, resolved
 *   waiting -> assigned, resolved
 *   resolved -> assigned (reopened), closed
 *   closed -> nothing (new mail opens a new, linked case)  */
gboolean store_status_allowed (const char *from, const char *to);

/* Change the status of case @ref, audited with @actor.  STORE_ERROR_NOT_FOUND
 * for an unknown case, STORE_ERROR_STATE for a transition not allowed.  */
gboolean store_case_set_status (store *s, const char *ref, const char *to,
                                const char *actor, GError **error);

/* What a department sees of a case beyond the view.  */
typedef struct {
  char *ref;
  char *reason;            /* "reference", "in-reply-to", "references" */
} store_case_link;

typedef struct {
  gint64 subject_id;
  char *role;
  char *addr;              /* decrypted */
  char *name;              /* (nullable) */
} store_participant_view;

typedef struct {
  gint64 message_id;
  guint position;
  char *name;
  char *declared_type;
  char *detected_type;
  char *sha256;
  gsize size;
  guint flags;
} store_attachment_view;

void store_case_link_free (store_case_link *l);
void store_participant_view_free (store_participant_view *p);
void store_attachment_view_free (store_attachment_view *a);

/* (transfer full) links (both directions), participants and attachment
 * facts of case @case_id; any of the out-arguments may be NULL.  */
gboolean store_case_details (store *s, gint64 case_id, GPtrArray **links,
                             GPtrArray **participants,
                             GPtrArray **attachments, GError **error);

/* (transfer full) (nullable) the text of message @message_id, decrypted.  */
char *store_message_text (store *s, gint64 message_id, GError **error);

/* (transfer full) the content of attachment @position of message
 * @message_id, decrypted; STORE_ERROR_NOT_FOUND if none.  */
GBytes *store_attachment_content (store *s, gint64 message_id,
                                  guint position, GError **error);

/* ------------------------------------------------------------ outbox */

typedef struct {
  gint64 id;
  gint64 case_id;
  char *kind;              /* "ack", "reply", "notify" (to the department
                            * address of @queue) */
  guint attempts;
  gint64 created_at;
  /* decrypted in memory for building the message */
  char *ref;
  char *case_kind;
  char *queue;
  gint64 due_at;
  char *to;                /* the inbound envelope sender */
  char *mailbox;           /* the intake mailbox it came to */
  char *subject;           /* (nullable) the citizen's subject */
  char *in_reply_to;       /* (nullable) the citizen's Message-ID */
  char *body;              /* (nullable) a reply's text */
  char *priority;          /* the case's */
  char *language;          /* (nullable) "cy": the Welsh templates */
} store_outbox_item;

void store_outbox_item_free (store_outbox_item *it);

/* (transfer full) up to @max messages due now, oldest first.  */
GPtrArray *store_outbox_due (store *s, guint max, GError **error);

/* What happened to one: sent (@next_at 0, @failed FALSE), to be tried
 * again at @next_at, or failed for good (@failed).  Audited.  */
gboolean store_outbox_done (store *s, gint64 id, gboolean sent,
                            gint64 next_at, gboolean failed,
                            const char *reply, GError **error);

/* Queue a reply to the citizen of case @ref (text sealed under the
 * requester's key); audited with @actor.  */
gboolean store_outbox_reply (store *s, const char *ref, const char *text,
                             const char *actor, GError **error);

/* Counts for tests and `intakectl outbox`.  */
gboolean store_outbox_counts (store *s, gint64 *queued, gint64 *sent,
                              gint64 *failed, GError **error);

/* ------------------------------------------------------------ health */

/* Whether the database takes a write lock now (/healthz).  */
gboolean store_writable (store *s);

typedef struct {
  char *queue;
  char *status;
  gint64 n;
} store_case_count;

void store_case_count_free (store_case_count *c);

/* (transfer full) cases by queue and status (/metrics).  */
GPtrArray *store_case_counts (store *s, GError **error);

/* ----------------------------------------------------------- routing */

/* The due date of a case of @kind first received at @received_us (unix
 * us): unix us of the due day at 00:00 UTC, 0 when the kind has no
 * clock (router_due_for_kind()).  */
typedef gint64 (*store_due_fn) (const char *kind, gint64 received_us,
                                gpointer data);

/* Give the store the statutory clocks, for re-routing: a case whose kind a
 * person changes (store_case_reroute(), store_api_case_reroute()) then
 * takes the due date of its new kind, counted from the day its first
 * message arrived, or none when that kind has no clock.  Without it
 * (NULL) a re-routing leaves the due date as it was.  Call before any
 * re-routing; @data must outlive the store.  */
void store_set_due_fn (store *s, store_due_fn fn, gpointer data);

/* A person re-routes a case (queue and/or kind; NULL keeps it): audited
 * with both values (and the due dates, when the kind changed and the
 * store has a due function), and remembered as training data for the
 * classifier.  STORE_ERROR_NOT_FOUND for an unknown case.  */
gboolean store_case_reroute (store *s, const char *ref, const char *queue,
                             const char *kind, const char *actor,
                             GError **error);

/* One stored case as the router sees it, decrypted in memory.  */
typedef struct {
  const char *ref, *queue, *kind, *source;
  gboolean rerouted;         /* a person corrected queue or kind */
  gint64 created_at;
  const char *subject, *text, *sender;    /* of the first message */
  const char *const *recipients;          /* NULL-terminated */
} store_replay_item;

typedef void (*store_replay_fn) (const store_replay_item *item,
                                 gpointer data);

/* Call @fn for every case created at or after @since_us (unix us), oldest
 * first.  Returns how many, or -1.  */
gint64 store_replay (store *s, gint64 since_us, store_replay_fn fn,
                     gpointer data, GError **error);

/* Count, over every routed case, how often each rule fired (@fired) and
 * which rule set the queue (@routed): char * -> GINT_TO_POINTER (n), both
 * created by the caller with g_free keys.  @cases: routed cases.  */
gboolean store_rule_stats (store *s, GHashTable *fired, GHashTable *routed,
                           gint64 *cases, GError **error);

/* ------------------------------------------------------------- subjects */

typedef struct {
  gint64 id;
  char *addr;
  char *name;              /* (nullable) */
  gint64 created_at;
  guint wrap_version;
  GPtrArray *case_refs;    /* char *: cases this person takes part in */
} store_subject_view;

void store_subject_view_free (store_subject_view *v);

/* (transfer full) the data subject with e-mail address @addr (found by its
 * blind index; case does not matter), or NULL with STORE_ERROR_NOT_FOUND. */
store_subject_view *store_subject_find (store *s, const char *addr,
                                        GError **error);

/* The queue a restricted person's cases go to, and the only one that sees
 * them.  */
#define STORE_RESTRICTED_QUEUE "information-governance"

/* Restrict (or lift the restriction of) processing for subject @id: new
 * messages are filed but not routed or acknowledged; every case of the
 * person moves to STORE_RESTRICTED_QUEUE (its queue remembered and given
 * back when lifted).  Audited with @actor.  */
gboolean store_subject_restrict (store *s, gint64 id, gboolean on,
                                 const char *actor, GError **error);

/* An objection to processing (UK GDPR art. 21): the same effect as
 * store_subject_restrict() (@on), recorded as an objection (objected_at,
 * audit action subject.object); store_subject_restrict (FALSE) lifts
 * both.  */
gboolean store_subject_object (store *s, gint64 id, const char *actor,
                               GError **error);

/* (transfer full) Everything intake holds about subject @id as one JSON
 * document (docs/export.md): the person, every case they started or take
 * part in, their messages (text, headers, attachments in base64), notes,
 * routing reasons, due dates and the audit events about them; other
 * people's messages in the same cases are left out and counted.  Audited
 * with @actor.  */
char *store_subject_export (store *s, gint64 id, const char *actor,
                            GError **error);

/* store_subject_export() where @own_domains (NULL-terminated, may be
 * NULL) are the organisation's mail domains: in the address headers of
 * the person's messages, everyone but the person and those domains is
 * redacted to "[another person]" (counted in other_people_redacted).  */
char *store_subject_export_full (store *s, gint64 id, const char *actor,
                                 const char *const *own_domains,
                                 GError **error);

/* ------------------------------------------------- erasure (rights) */

/* Whether @reason is an erasure reason category ("request", "objection",
 * "consent-withdrawn", "unlawful", "legal-obligation", "retention",
 * "anonymised"): free text could carry personal data.  */
gboolean store_erase_reason_valid (const char *reason);
/* (transfer none) the categories, NULL-terminated.  */
const char *const *store_erase_reason_list (void);

typedef struct {
  gint64 cases;            /* cases the person took part in */
  gint64 messages;         /* messages deleted */
  gint64 attachments;
  gboolean vault_secret;   /* a vault secret was deleted (crypto-shred) */
  gboolean wal_truncated;  /* the WAL was checkpointed to nothing */
} store_erasure_report;

/* Erase data subject @id (docs/rights.md): their vault secret is deleted
 * first (every copy of their rows, backups included, stops opening), then
 * their rows with secure_delete on, then the WAL is truncated; cases keep
 * only non-identifying facts.  Audited with @actor and @reason (a
 * category).  Resumable: an erasure interrupted after it began is finished
 * by store_erase_resume().  STORE_ERROR_NOT_FOUND for an unknown or already
 * erased subject, STORE_ERROR_STATE for a bad reason.  */
gboolean store_subject_erase (store *s, gint64 id, const char *reason,
                              const char *actor, store_erasure_report *r,
                              GError **error);

/* Rectification (UK GDPR art. 16): each non-NULL field is sealed again
 * under a fresh nonce ("" clears name, phone or postal); @email changes the
 * address and its blind index (refused if another subject has it).  The
 * audit records who, when and which fields -- never a value.  */
typedef struct {
  const char *name;
  const char *phone;
  const char *postal;
  const char *email;
} store_rectification;

gboolean store_subject_rectify (store *s, gint64 id,
                                const store_rectification *r,
                                const char *actor, GError **error);

/* ------------------------------------------------------ anonymisation */

typedef struct {
  gint64 message_id;       /* 0 for text already kept (store_case_texts) */
  gint64 case_id;
  gint64 received_at;
  char *subject;           /* (nullable) */
  char *text;              /* (nullable) */
} store_subject_text;

void store_subject_text_free (store_subject_text *t);

typedef struct {
  char *name, *email, *phone, *postal;   /* (nullable), decrypted */
} store_subject_details;

void store_subject_details_clear (store_subject_details *d);

/* (transfer full) the Subject and text of every message of subject @id,
 * decrypted, and the person's details into @d (clear it after use).  */
GPtrArray *store_subject_texts (store *s, gint64 id, store_subject_details *d,
                                GError **error);

/* Anonymise subject @id (docs/rights.md): @texts (store_subject_text *,
 * already stripped of personal data by the caller, router/anonymise.h) are
 * kept for their cases under the statistics key, tied to no one; then the
 * subject is erased (reason "anonymised") exactly as store_subject_erase()
 * does.  Run again after an interruption, it replaces what it kept.  */
gboolean store_subject_anonymise (store *s, gint64 id, GPtrArray *texts,
                                  const char *actor, store_erasure_report *r,
                                  GError **error);

/* (transfer full) the anonymised text kept for case @ref.  */
GPtrArray *store_case_texts (store *s, const char *ref, GError **error);

/* Finish erasures that were interrupted; how many, or -1.  */
gint64 store_erase_resume (store *s, GError **error);

/* (transfer full) What an access request about an erased subject shows:
 * the erasure record only.  STORE_ERROR_NOT_FOUND if @id was never
 * erased.  */
char *store_subject_export_erased (store *s, gint64 id, GError **error);

/* The id of the subject with address @addr, or -1.  */
gint64 store_subject_id (store *s, const char *addr, GError **error);

/* How many opened data keys the writer holds now (store_keycache.c); for
 * tests and diagnostics.  */
guint store_writer_keys_held (store *s);
/* The WAL's size in pages after the last commit, and how many
 * checkpoints in a row have failed (0 once one works): for /metrics.  */
void store_wal_status (store *s, gint *wal_pages, guint *ckpt_failures);

/* ------------------------------------------------------------ retention */

/* The retention schedule (docs/retention.md): classes with the years a
 * case is kept after it closed, the class of each kind and queue, the
 * default, the maximum after opening, how long a data subject with nothing
 * left is kept, and how far the clock may run ahead of the daily interval
 * before a run stops.  */
typedef struct {
  GHashTable *classes;       /* name -> GUINT_TO_POINTER (years) */
  GHashTable *by_kind;       /* kind -> class name */
  GHashTable *by_queue;      /* queue -> class name */
  char *default_class;
  guint maximum_years;
  guint subject_inactive_years;
  guint clock_jump_hours;
} store_retention_policy;

/* (transfer full) The built-in schedule: enquiry 2, complaint 6,
 * financial 5 (queues council-tax, benefits), foi 3 years after closure;
 * at most 7 years after opening; subjects 2 years.  */
store_retention_policy *store_retention_policy_new (void);
/* (transfer full) The schedule in @path (conf/retention.conf); errors name
 * the file, group and key.  */
store_retention_policy *store_retention_policy_load (const char *path,
                                                     GError **error);
void store_retention_policy_free (store_retention_policy *p);
gboolean store_retention_class_known (const store_retention_policy *p,
                                      const char *name);

typedef enum {
  STORE_RETENTION_DRY_RUN = 1 << 0,             /* report, change nothing */
  STORE_RETENTION_CONFIRM_CLOCK_JUMP = 1 << 1,  /* a person confirmed */
} store_retention_flags;

typedef struct {
  gint64 case_id;
  char *ref;
  char *class_name;
  char *basis;             /* "closed-2024-01-31+2y", "opened-...+7y-maximum" */
  gint64 delete_after;
  gboolean deleted;
} store_retention_item;

void store_retention_item_free (store_retention_item *it);

typedef struct {
  gint64 cases, due, deleted, held;
  gint64 subjects_due, subjects_erased;
  gint64 last_run;           /* unix us; 0: never */
  gboolean clock_jump;
} store_retention_report;

/* Apply the schedule at @now (unix us): write each case's due date, delete
 * the due cases not on hold (batches, audited per case without personal
 * data; a killed run resumes and deletes each once), erase data subjects
 * with nothing left and inactive long enough.  With a clock more than a
 * day past the daily interval since the last run: STORE_ERROR_CLOCK and
 * nothing deleted, unless STORE_RETENTION_CONFIRM_CLOCK_JUMP.  @items
 * (nullable, transfer full): the due cases (store_retention_item *).  */
gboolean store_retention_run (store *s, const store_retention_policy *p,
                              gint64 now, guint flags,
                              store_retention_report *r, GPtrArray **items,
                              GError **error);

/* Put case @ref on legal hold (@on; @reason sealed, never audited) or
 * release it: a held case is never deleted by the schedule.  Audited.  */
gboolean store_case_hold (store *s, const char *ref, gboolean on,
                          const char *reason, const char *actor,
                          GError **error);

/* ---------------------------------------------------------------- audit */

/* Record an event from outside the pipeline (a person reading personal
 * data, an export ...), in its own transaction.  @detail: ids and facts
 * only.  */
gboolean store_audit_record (store *s, const char *actor, const char *action,
                             const char *object, const char *detail,
                             const char *outcome, GError **error);

typedef struct {
  gint64 events;           /* events checked */
  gint64 first_bad;        /* 0: the chain holds; else the first event that
                            * does not verify */
  char *reason;            /* (nullable) why */
} store_audit_report;

void store_audit_report_clear (store_audit_report *r);

/* Walk the chain.  FALSE only if the database could not be read; a broken
 * chain is reported in @r.  */
gboolean store_audit_verify (store *s, store_audit_report *r, GError **error);

/* ----------------------------------------------------------------- keys */

/* Re-wrap up to @max data keys still wrapped by an older master key version
 * with the current one, in one transaction (rows, not data, change).
 * Returns how many were re-wrapped (0: done), -1 on error.  Resumable: run
 * it until it returns 0.  */
gint64 store_rewrap_batch (store *s, guint max, GError **error);

/* Data keys wrapped by a version older than the current one.  */
gint64 store_rewrap_pending (store *s, GError **error);

/* ---------------------------------------------------------------- refs */

/* (transfer full) "PREFIX-YYYY-NNNNNN-C": the check character catches any
 * single-character error and any adjacent transposition in the digits.  */
char *store_ref_format (const char *prefix, guint year, guint64 serial);

/* Whether @ref is well formed and its check character matches.  */
gboolean store_ref_valid (const char *ref);

/* The MAC a plus-address carries with a reference
 * ("enquiries+ESC-2026-000123-K.3f9a@..."): keyed BLAKE2b of @ref, 16 bits
 * as 4 lower-case hex digits.  Enough against guessing by a stranger (one
 * in 65,536, and threading also wants the sender to take part in the
 * case); short enough for an address.  */
#define STORE_REF_MAC_LEN 4
void store_ref_mac (const store_keys *keys, const char *ref,
                    char out[STORE_REF_MAC_LEN + 1]);

/* Whether @address names @ref (upper case) in a plus-address detail: 0 if
 * it does not, 1 if as "REF.MAC" with the right MAC, -1 otherwise (a
 * forged or mangled MAC, or none: threading takes it for no reference).  */
int store_ref_plus_check (const store_keys *keys, const char *address,
                          const char *ref);

#endif
