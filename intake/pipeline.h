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

/* How the pipeline gets a message parsed: @fn hands @raw (transfer none)
 * and @env to a parse worker and calls @done exactly once, from any
 * thread, with the worker's answer (transfer full: parser_message_pack()
 * bytes, untrusted: the pipeline thread unpacks and checks them) and an
 * id of the worker, or NULL and a failure word.  An answer that does not
 * unpack fails its message ("bad-result") and is reported to @refused
 * with that id.  The pipeline waits for this to be set before its first
 * batch.  */
typedef void (*pipeline_parse_done) (GBytes *packed, const char *failure,
                                     guint64 worker, gpointer user_data);
typedef void (*pipeline_parse_fn) (GBytes *raw, const store_envelope *env,
                                   pipeline_parse_done done,
                                   gpointer user_data, gpointer fn_data);
typedef void (*pipeline_parse_refused_fn) (guint64 worker, gpointer fn_data);
void pipeline_set_parser (pipeline *p, pipeline_parse_fn fn,
                          pipeline_parse_refused_fn refused, gpointer data);

/* Something new is in the spool.  Any thread.  */
void pipeline_kick (pipeline *p);

/* Append the filing-latency histogram (arrival to case, seconds) in the
 * Prometheus text format.  */
void pipeline_metrics (pipeline *p, GString *out);

/* Finish the batch in hand and stop; what is left stays in the spool.  */
void pipeline_stop (pipeline **p);

#endif
