/*
 * webhook.h - pushing case events to a queue's CRM (docs/webhooks.md).
 *
 * A thread of the master takes due rows of webhook_events (queued by the
 * store in the same transaction as the change: store/store_webhook.h),
 * builds the JSON, signs it with the queue's secret and POSTs it with
 * libsoup (TLS chain and host name verified, no redirects followed).  2xx:
 * delivered; anything else, or no answer: tried again after 5 s, doubling
 * to an hour, until [webhooks] retry_for has passed, then failed for good.
 * Receivers deduplicate on the delivery id: a lost 2xx means a second POST
 * of the same event.
 */
#ifndef INTAKE_WEBHOOK_H
#define INTAKE_WEBHOOK_H

#include <glib.h>

#include "intake/intake_config.h"
#include "store/store.h"
#include "store/store_webhook.h"

typedef struct webhook webhook;

/* Record in @st which queues have a webhook or a notification address
 * (store_webhook_queues_set()), read every webhook secret (mode 0600 or
 * refused) and start the sender.  (transfer full) NULL without error when
 * no queue has a webhook.  */
webhook *webhook_start (intake_config *cfg, store *st, GError **error);
void webhook_kick (webhook *w);
void webhook_stop (webhook **w);

/* The message content a queue with webhook_content = full receives.  */
typedef struct {
  const char *addr;        /* (nullable) */
  const char *name;        /* (nullable) */
  const char *subject;     /* (nullable) */
  const char *text;        /* (nullable) */
  gboolean withheld;       /* special category, not for this queue */
} webhook_message;

/* (transfer full) The JSON body for @it (docs/webhooks.md); @m (nullable)
 * the message content.  An erasure carries the reference only.  */
char *webhook_payload (const store_webhook_item *it, const webhook_message *m);

/* The signature header value, "sha256=" and the hex of
 * HMAC-SHA256(@secret, @timestamp "." @body).  */
#define WEBHOOK_SIGNATURE_MAX 72
void webhook_sign (const guint8 *secret, gsize secret_len,
                   const char *timestamp, const char *body, gsize body_len,
                   char out[WEBHOOK_SIGNATURE_MAX]);

#endif
