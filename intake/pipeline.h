/*
 * pipeline.h - the worker that drains the spool into cases.
 *
 * A thread of the master.  It takes spooled messages oldest first, parses
 * them (parser/), and hands each to the store, which writes the case and
 * deletes the spool row in one transaction.  On start it resumes whatever
 * the spool holds; a crash at any point leaves either the spool row or the
 * finished case.
 */
#ifndef INTAKE_PIPELINE_H
#define INTAKE_PIPELINE_H

#include <glib.h>

#include "intake/intake_config.h"
#include "parser/parser.h"
#include "router/router.h"
#include "store/store.h"

typedef struct pipeline pipeline;

/* (transfer full) Start the worker on @st with @cfg and @rt (transfer
 * none, outliving the pipeline; @rt may be NULL: every case then goes to
 * [cases] default_queue).  */
pipeline *pipeline_start (store *st, intake_config *cfg, router *rt);

/* The parse workers ([parser] workers of @cfg) are started by the master,
 * which hands each one's socket to the pipeline thread (parse_pool.h):
 * slot @slot, socket @fd and a pidfd of the process (transfer full).  Any
 * thread.  */
void pipeline_parse_attach (pipeline *p, guint slot, int fd, int pidfd);

/* Stopping: nothing more is parsed, what the workers hold is answered
 * "shutdown" (and stays in the spool).  Any thread.  */
void pipeline_parse_stopping (pipeline *p);

/* Something new is in the spool.  Any thread.  */
void pipeline_kick (pipeline *p);

/* Whether an SMTP session is open in any child (the master, from the
 * children's IPC_SESSIONS).  While none is, a pause in arrivals need not
 * be waited for as long (PIPELINE_QUIET_IDLE_US).  */
void pipeline_set_receiving (pipeline *p, gboolean on);

/* Append the filing-latency histogram (arrival to case, seconds) in the
 * Prometheus text format.  */
void pipeline_metrics (pipeline *p, GString *out);

/* Finish the batch in hand and stop; what is left stays in the spool.  */
void pipeline_stop (pipeline **p);

#endif
