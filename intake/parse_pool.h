/*
 * parse_pool.h - the parse workers as seen from the thread that uses
 * their answers.
 *
 * The master starts and restarts the worker processes (master.c) and
 * hands each one's socket here; the pool runs on the pipeline thread's
 * own main context: it sends each worker the messages to parse (several
 * queued behind the one in hand), reads the answers straight into the
 * thread that unpacks and files them, times the message in hand, and
 * says which message a worker died on.  The master's main loop, which
 * carries every SMTP session, is not on the path of a message.
 */
#ifndef INTAKE_PARSE_POOL_H
#define INTAKE_PARSE_POOL_H

#include <glib.h>

#include "store/store.h"

typedef struct parse_pool parse_pool;

/* Called on the pool's context with the worker's answer (transfer full:
 * parser_message_pack() bytes, NOT checked: unpack them with
 * parser_message_unpack(), and report a refusal with
 * parse_pool_refused()) and the worker that gave it, or with NULL and a
 * reason ("crash", "timeout", "shutdown").  */
typedef void (*parse_pool_done) (GBytes *packed, const char *failure,
                                 guint64 worker, gpointer user_data);

/* (transfer full) A pool of @n_workers slots on @ctx (transfer none,
 * outliving the pool), the message in hand allowed @timeout_s seconds,
 * frames bounded by @max_frame.  */
parse_pool *parse_pool_new (GMainContext *ctx, guint n_workers,
                            guint timeout_s, gsize max_frame);

/* Answer everything queued or in a worker "shutdown", close the sockets
 * and free the pool.  On the pool's thread.  */
void parse_pool_free (parse_pool **pp);

/* A worker (re)started in slot @slot: its socket @fd and a pidfd of the
 * process (both transfer full), used to end it (a pidfd signals nothing
 * once the process is reaped, so never a process that took its pid).
 * Any thread: takes effect on the pool's context.  */
void parse_pool_attach (parse_pool *pp, guint slot, int fd, int pidfd);

/* Stopping: what is queued and what the workers hold is answered
 * "shutdown" (workers stopping end their sockets).  Any thread.  */
void parse_pool_stopping (parse_pool *pp);

/* Queue @raw (transfer none) with @env for a worker; @done is called
 * exactly once.  On the pool's thread; sent at the next
 * parse_pool_dispatch() (one write for many).  */
void parse_pool_submit (parse_pool *pp, GBytes *raw,
                        const store_envelope *env, parse_pool_done done,
                        gpointer user_data);
void parse_pool_dispatch (parse_pool *pp);

/* The answer of @worker (as given to done) did not unpack: that worker is
 * ended unless it is already gone; the message it holds then goes back to
 * the queue, not counted as failed.  On the pool's thread.  */
void parse_pool_refused (parse_pool *pp, guint64 worker);

#endif
