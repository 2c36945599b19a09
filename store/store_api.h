/*
 * store_api.h - what the department queue API (/api/v1, docs/api.md) reads
 * and writes: API tokens (their keyed hashes only), and cases seen through
 * a token's queues.
 *
 * Authorisation lives here, in the queries: every case function takes the
 * token's queues and finds the case with "ref = ? AND queue IN (...)", so
 * a case outside them is STORE_ERROR_NOT_FOUND exactly like a case that
 * does not exist -- a handler bug cannot leak another department's case.
 * Changes run in one transaction with their audit event; a refused change
 * (STORE_ERROR_STATE) is audited with outcome "refused".
 */
#ifndef INTAKE_STORE_API_H
#define INTAKE_STORE_API_H

#include <glib.h>

#include "store/store.h"

/* A token's name: [a-z0-9][a-z0-9._-]*, at most this long (no "../", no
 * ";", no NUL or line break: SECURITY-TESTS 104).  Queue names follow the
 * same rule.  */
#define STORE_API_NAME_MAX 64
/* Queues one token may hold.  */
#define STORE_API_QUEUES_MAX 32
/* Bytes of a note or a reply's text (a letter, not a document).  */
#define STORE_API_TEXT_MAX (64 * 1024)

/* Whether @name is a valid token or queue name.  */
gboolean store_api_name_valid (const char *name);

/* ------------------------------------------------------------- tokens */

typedef struct {
  gint64 id;
  char *name;
  char **queues;             /* NULL-terminated */
  gboolean special;          /* may read special-category details */
  gint64 created_at;         /* unix us */
  gint64 revoked_at;         /* 0: in force */
  gint64 last_used_at;       /* 0: never */
  gint64 expires_at;         /* unix us; 0: never */
} store_api_token;

void store_api_token_free (store_api_token *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (store_api_token, store_api_token_free)

/* Keyed BLAKE2b-256 of a presented token under the forms/API key
 * (STORE_KEY_FORMS): the only form in which a token is stored.  */
void store_api_token_hash (const store_keys *keys, const char *token,
                           gsize len, guint8 out[32]);

/* Record a token (@hash from store_api_token_hash()) for @queues
 * (NULL-terminated, at least one), audited with @actor as token.create.
 * STORE_ERROR_STATE if a token of that name exists (revoked ones too: a
 * name is never reused, so the audit stays unambiguous).  */
gboolean store_api_token_create (store *s, const char *name,
                                 const guint8 hash[32],
                                 const char *const *queues, gboolean special,
                                 gint64 expires_at, const char *actor,
                                 GError **error);

/* (transfer full) every token (store_api_token *), by name.  */
GPtrArray *store_api_token_list (store *s, GError **error);

/* Revoke token @name (audited as token.revoke).  STORE_ERROR_NOT_FOUND if
 * there is no such token in force.  */
gboolean store_api_token_revoke (store *s, const char *name,
                                 const char *actor, GError **error);

/* (transfer full) The token in force whose hash is @hash; NULL with
 * STORE_ERROR_NOT_FOUND for an unknown one, STORE_ERROR_STATE for a
 * revoked one, STORE_ERROR_EXPIRED for one past its expiry (@revoked_name
 * (nullable) then gets its name, for the audit).  The hashes are also compared with sodium_memcmp.  */
store_api_token *store_api_token_lookup (store *s, const guint8 hash[32],
                                         char **revoked_name,
                                         GError **error);

/* Note that token @id was used at @now (unix us); written at most once a
 * minute per token.  Failure is not an error of the request.  */
void store_api_token_used (store *s, gint64 id, gint64 now);

/* -------------------------------------------------------------- cases */

/* (transfer full) store_case_view * of one of @queues (f->queue must be
 * one of them, else STORE_ERROR_NOT_FOUND), newest first; brief (no
 * from_name, no message_id).  */
GPtrArray *store_api_case_find (store *s, const char *const *queues,
                                const store_case_filter *f, GError **error);

/* (transfer full) Case @ref if its queue is one of @queues, with its
 * messages (as store_case_get()) and who claimed it (@claimed_by,
 * nullable out, (transfer full) (nullable)).  STORE_ERROR_NOT_FOUND
 * otherwise.  */
store_case_view *store_api_case_get (store *s, const char *ref,
                                     const char *const *queues,
                                     GPtrArray **messages, char **claimed_by,
                                     GError **error);

/* (transfer full) Attachment @position of message @message_id of case
 * @ref (in @queues), its facts in @meta (transfer full).  A message with
 * special-category flags gives STORE_ERROR_STATE unless @special_ok.
 * STORE_ERROR_NOT_FOUND for anything not there or not in @queues.  */
GBytes *store_api_attachment (store *s, const char *ref,
                              const char *const *queues, gint64 message_id,
                              guint position, gboolean special_ok,
                              store_attachment_view **meta, GError **error);

/* Claim case @ref for @who: claimed_by = @who, and "new" becomes
 * "assigned".  STORE_ERROR_STATE if someone else holds it.  */
gboolean store_api_case_claim (store *s, const char *ref,
                               const char *const *queues, const char *who,
                               const char *actor, GError **error);

/* Change the status (store_status_allowed()); STORE_ERROR_STATE for a
 * change not allowed (audited as refused).  */
gboolean store_api_case_status (store *s, const char *ref,
                                const char *const *queues, const char *to,
                                const char *actor, GError **error);

/* Move case @ref (in @queues) to @queue and/or @kind (NULL keeps it).
 * @reason_code: ids or counts only ("reason_words=7"), added to the audit
 * detail.  Checking that the queue is declared is the caller's.  */
gboolean store_api_case_reroute (store *s, const char *ref,
                                 const char *const *queues, const char *queue,
                                 const char *kind, const char *reason_code,
                                 const char *actor, GError **error);

typedef struct {
  gint64 id;
  char *author;
  char *text;                /* decrypted */
  gint64 created_at;
} store_api_note;

void store_api_note_free (store_api_note *n);

/* Add a note (sealed under the case subject's data key) by @author.
 * Returns its id, or 0 with @error.  */
gint64 store_api_note_add (store *s, const char *ref,
                           const char *const *queues, const char *author,
                           const char *text, const char *actor,
                           GError **error);

/* (transfer full) the notes of case @ref (in @queues), oldest first.  */
GPtrArray *store_api_notes (store *s, const char *ref,
                            const char *const *queues, GError **error);

/* Store a reply to the case's requester: a new message, direction "out",
 * source "api", built here from our own parts (From: the mailbox the
 * case's first message came to, else @fallback_from; To: the requester;
 * Subject: "Re: ..." with the reference; In-Reply-To the first message),
 * sealed under the requester's data key, for the outbound sender.
 * Returns the message id, or 0 with @error.  */
gint64 store_api_reply_add (store *s, const char *ref,
                            const char *const *queues, const char *text,
                            const char *fallback_from, const char *hostname,
                            const char *actor, GError **error);

#endif
