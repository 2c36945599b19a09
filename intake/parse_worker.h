/*
 * parse_worker.h - the parse worker process: raw bytes in, normalised
 * message out, holding nothing.
 *
 * DESIGN.md: hostile MIME never meets the keys.  A worker has no keys, no
 * database, no network; it runs as the unprivileged user with an
 * address-space limit and no core dumps.  The master times every message
 * and replaces a worker that crashes or overruns; after
 * [parser] max_failures failures on one message it is quarantined.
 */
#ifndef INTAKE_PARSE_WORKER_H
#define INTAKE_PARSE_WORKER_H

#include <glib.h>

#include "intake/intake_config.h"

/* Serve parse requests on @ipc_fd until the master goes away.  Returns a
 * sysexits code.  Loads the special-category lexicon and sets the limits
 * before dropping privileges (done by the caller after this returns
 * ready: see parse_worker_prepare).  */
typedef struct parse_worker parse_worker;

parse_worker *parse_worker_new (intake_config *cfg, int ipc_fd,
                                GMainLoop *loop, GError **error);

/* Apply the resource limits of @cfg to this process (after privileges are
 * dropped).  */
void parse_worker_limit (intake_config *cfg);

/* Tell the master this worker is ready: only then does it get work, so a
 * worker that cannot start never costs a message a failure.  */
void parse_worker_ready (parse_worker *w);

void parse_worker_free (parse_worker **w);

#endif
