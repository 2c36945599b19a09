/*
 * outbox.h - sending what intake writes: acknowledgements and replies.
 *
 * A thread of the master takes queued rows of the outbox (store/), builds
 * each message from our own parts (templates in conf/templates/, GMime:
 * RFC 2047 where needed, header values free of CR/LF), and hands it to the
 * smarthost (outbound/smtp_send.h).  4xx: tried again with back-off until
 * [outbound] retry_for; 5xx: failed for good, recorded on the case.
 */
#ifndef INTAKE_OUTBOX_H
#define INTAKE_OUTBOX_H

#include <glib.h>

#include "intake/intake_config.h"
#include "store/store.h"

typedef struct outbox outbox;

/* (transfer full) NULL without [outbound] smarthost (nothing is sent).  */
outbox *outbox_start (intake_config *cfg, store *st, const store_keys *keys,
                      GError **error);
void outbox_kick (outbox *o);
void outbox_stop (outbox **o);

/* (transfer full) The message for @it, and its envelope recipient in
 * @rcpt; NULL if it has no one to go to.  (Exposed for the tests.)  */
GBytes *outbox_build (const intake_config *cfg, const store_keys *keys,
                      const store_outbox_item *it, char **rcpt);

/* Whether @it is a notification for a queue with hourly digests.  */
gboolean outbox_digest (const intake_config *cfg, const store_outbox_item *it);

/* (transfer full) One message announcing every case of @items
 * (store_outbox_item *, notifications for one queue), to that queue's
 * address in @rcpt; NULL if it has none.  (Exposed for the tests.)  */
GBytes *outbox_build_digest (const intake_config *cfg, GPtrArray *items,
                             char **rcpt);

/* The plus-address MAC of @ref (4 hex digits; Reply-To of what we send).  */
void outbox_ref_mac (const store_keys *keys, const char *ref, char out[5]);

#endif
