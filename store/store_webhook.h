/*
 * store_webhook.h - CRM webhook events and department notifications,
 * queued in the same transaction as the change they report.
 *
 * Which queues have a webhook or a notification address is what the master
 * last loaded from intake.conf ([queue NAME] sections), kept in the
 * database (store_webhook_queues_set()) so that every writer -- the
 * pipeline, the department API, intakectl -- queues the same events
 * without reading the configuration.  The sender (outbound/webhook.c) takes
 * due events, builds the JSON and POSTs it signed; docs/webhooks.md.
 *
 * An event row holds ids, the reference, queue, kind, status, priority and
 * due date: nothing that identifies a person.  A message's text and sender
 * are read at delivery time, only for a queue configured to receive them.
 */
#ifndef INTAKE_STORE_WEBHOOK_H
#define INTAKE_STORE_WEBHOOK_H

#include <glib.h>

#include "store/store.h"

struct sqlite3;

/* --------------------------------------- inside a store transaction
 * For store/ code only: @db is the connection that holds the open
 * transaction (the writer's, or the read connection under BEGIN
 * IMMEDIATE).  Each returns FALSE with @error if the insert failed; the
 * caller rolls back the whole change.  */

/* Event names (the "event" field of the payload).  */
#define STORE_WEBHOOK_CREATED "case.created"
#define STORE_WEBHOOK_UPDATED "case.updated"
#define STORE_WEBHOOK_CLOSED  "case.closed"
#define STORE_WEBHOOK_ERASED  "case.erased"

/* Queue @event about case @case_id for the webhook of its queue and, when
 * @previous_queue (nullable) differs, for that queue's too.  @change
 * (nullable): "status", "routing", "reply" or "message" for
 * STORE_WEBHOOK_UPDATED.  @message_id: the message that caused it (0:
 * none).  Nothing is queued for a queue without a webhook, nor while the
 * case's data subject is restricted (UK GDPR art. 18).  */
gboolean store_webhook_case_event (store *s, struct sqlite3 *db,
                                   gint64 case_id, const char *event,
                                   const char *change, gint64 message_id,
                                   const char *previous_queue,
                                   GError **error);

/* The same for the case with reference @ref; a status change (@change
 * "status") to "closed" (@status) is STORE_WEBHOOK_CLOSED, any other
 * change STORE_WEBHOOK_UPDATED.  */
gboolean store_webhook_ref_event (store *s, struct sqlite3 *db,
                                  const char *ref, const char *change,
                                  const char *status,
                                  const char *previous_queue,
                                  GError **error);

/* Case @case_id is being erased: call this in the erasing transaction
 * BEFORE its row is deleted.  Events of the case still waiting are dropped
 * (their messages are going); one STORE_WEBHOOK_ERASED event, carrying the
 * reference only, is queued for its queue's webhook and for every webhook
 * that was ever sent an event about it.  */
gboolean store_webhook_enqueue_erased (store *s, struct sqlite3 *db,
                                       gint64 case_id, GError **error);

/* Work arrived in the queue of case @case_id (a new case, or re-routed
 * there): queue a notification (outbox kind "notify") to the queue's
 * department address, if it has one and the data subject is not
 * restricted; due now, or at the next full hour for a digest queue.  The
 * notification itself names no person (outbound/).  */
gboolean store_webhook_notify (store *s, struct sqlite3 *db, gint64 case_id,
                               GError **error);

/* ------------------------------------------------------- everyone */

/* store_webhook_enqueue_erased() for case @ref in a transaction of its
 * own: for a case whose data went by another way than
 * store_subject_erase() (and for the tests).  STORE_ERROR_NOT_FOUND for
 * an unknown case.  */
gboolean store_webhook_erased (store *s, const char *ref, GError **error);

/* Record which queues have a webhook, which a notification address sent
 * at once, and which an hourly digest (NULL-terminated lists, any may be
 * NULL).  The master calls it at start.  */
gboolean store_webhook_queues_set (store *s, const char *const *webhooks,
                                   const char *const *notify,
                                   const char *const *digest,
                                   GError **error);

typedef struct {
  gint64 id;               /* the delivery id: receivers deduplicate on it */
  gint64 case_id;
  gint64 message_id;       /* 0: none */
  char *hook;              /* the queue whose webhook gets it */
  char *event;             /* STORE_WEBHOOK_* */
  char *change;            /* (nullable) */
  char *ref;
  char *queue;             /* the case's queue when it happened */
  char *previous_queue;    /* (nullable) */
  char *kind;              /* (nullable: erased) */
  char *status;            /* (nullable: erased) */
  char *priority;          /* (nullable: erased) */
  gint64 due_at;           /* unix us; 0: none */
  gint64 created_at;       /* unix us */
  guint attempts;
  /* the delivery log */
  char *state;             /* queued, delivered, failed, dropped */
  gint64 delivered_at;
  int last_http;           /* 0: no answer */
  char *last_error;        /* (nullable) */
} store_webhook_item;

void store_webhook_item_free (store_webhook_item *it);

/* (transfer full) up to @max events due now, oldest first.  */
GPtrArray *store_webhook_due (store *s, guint max, GError **error);

/* What happened to event @id: delivered, to be tried again at @next_at,
 * failed for good (@failed), or dropped (@dropped: its queue has no
 * webhook any more).  @http: the status answered (0: none); @why
 * (nullable): a short reason, no content.  Delivered and failed ones are
 * audited.  */
gboolean store_webhook_done (store *s, gint64 id, gboolean delivered,
                             gint64 next_at, gboolean failed,
                             gboolean dropped, int http, const char *why,
                             GError **error);

/* Forget delivered, failed and dropped events created before @before_us
 * (unix us): the delivery log is kept for a while, not for ever.  How
 * many went, or -1.  */
gint64 store_webhook_prune (store *s, gint64 before_us, GError **error);

/* (transfer full) the delivery log, newest first (@limit 0: 100).  */
GPtrArray *store_webhook_log (store *s, guint limit, GError **error);

/* The message of an event, for a queue that receives content: sender
 * address, display name (nullable), subject (nullable), text (nullable)
 * and special-category bits, decrypted in memory (transfer full).  */
gboolean store_webhook_message (store *s, gint64 message_id, char **addr,
                                char **name, char **subject, char **text,
                                guint *special, GError **error);

#endif
