/*
 * parse_worker.h - the parse worker process: raw bytes in, normalised
 * message out, holding nothing.
 *
 * DESIGN.md: hostile MIME never meets the keys.  A worker has no keys, no
 * database, no network; it runs as the unprivileged user with an
 * address-space limit, no core dumps and a seccomp filter (below).  The
 * master times every message and replaces a worker that crashes or
 * overruns; after
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

/* Install the worker's seccomp filter (after the limits, before the first
 * message): from then on the process can read and write the descriptors
 * it has, manage its memory, poll, read the clock and open files read-only
 * (iconv modules, the MIME database), and nothing else.  Any other system
 * call -- socket, connect, execve, ptrace, an open for writing, a writable
 * and executable mapping -- kills the worker with SIGSYS; the master
 * counts that as a crash on the message in hand.  Sanitizer builds allow
 * the few calls the ASan/UBSan runtime makes (docs/design-notes.md).
 * INTAKE_PARSE_SECCOMP=off in the environment skips it, for debugging
 * only (strace works either way).  Returns FALSE with @error if the filter
 * could not be loaded.  */
gboolean parse_worker_seccomp (GError **error);

/* Tell the master this worker is ready: only then does it get work, so a
 * worker that cannot start never costs a message a failure.  */
void parse_worker_ready (parse_worker *w);

void parse_worker_free (parse_worker **w);

#endif
