/*
 * ipc.h - framed messages between intake's processes over a socketpair.
 *
 * A frame is a 4-byte big-endian length, a 1-byte type and the payload; the
 * length counts type and payload and is bounded by the receiver: a frame
 * over the bound, or a short or malformed one, closes the channel (the peer
 * is then treated as dead).  The channel runs on the thread-default GLib
 * main context, non-blocking both ways.
 */
#ifndef INTAKE_IPC_H
#define INTAKE_IPC_H

#include <glib.h>

#include "store/store.h"

typedef enum {
  IPC_SUBMIT = 1,      /* child -> master: a message to spool */
  IPC_RESULT = 2,      /* master -> child: what became of it */
  IPC_STORAGE = 3,     /* master -> child: storage is low / fine again */
  IPC_PARSE = 4,       /* master -> parse worker: request id, envelope,
                        * raw message (the SUBMIT layout) */
  IPC_PARSED = 5,      /* parse worker -> master: request id, then a
                        * packed parser_message */
  IPC_READY = 6,       /* parse worker -> master: started, limits set,
                        * ready for work (empty payload) */
  IPC_IMAP_SUBMIT = 7, /* imap child -> master: UIDVALIDITY, UID, then the
                        * SUBMIT layout; answered by RESULT */
  IPC_IMAP_STATUS = 8, /* imap child -> master: state, error word,
                        * backlog, token expiry */
  IPC_SESSIONS = 9,    /* smtp child -> master: one byte, 1 when it has
                        * an SMTP session open, 0 when it has none left
                        * (sent on each change between the two) */
} ipc_type;

/* Headroom over the largest message for the envelope in a SUBMIT frame.  */
#define IPC_ENVELOPE_MAX (1024 * 1024)

typedef struct ipc_channel ipc_channel;

typedef void (*ipc_frame_fn) (ipc_channel *ch, guint8 type, GBytes *payload,
                              gpointer user_data);
typedef void (*ipc_closed_fn) (ipc_channel *ch, gpointer user_data);

/* (transfer full) A channel on @fd (the channel owns and closes it).
 * @on_frame gets each complete frame; @on_closed is called once when the
 * peer goes away or breaks the framing; no frame follows it.  */
ipc_channel *ipc_channel_new (int fd, gsize max_frame, ipc_frame_fn on_frame,
                              ipc_closed_fn on_closed, gpointer user_data);
void ipc_channel_free (ipc_channel **ch);

/* Queue a frame; it is written as the socket allows.  */
void ipc_channel_send (ipc_channel *ch, guint8 type, GBytes *payload);

/* The frame header's size, and the header for a payload of @payload_len
 * bytes written at @h: for a sender that builds the whole frame in one
 * buffer (a parse request or answer: no header allocated and queued
 * apart, one copy less).  */
#define IPC_FRAME_HEADER 5
void ipc_frame_header (guint8 *h, guint8 type, gsize payload_len);

/* Queue @frame (transfer none), a header from ipc_frame_header() and its
 * payload in one buffer.  */
void ipc_channel_send_frame (ipc_channel *ch, GBytes *frame);

/* The same without writing yet, and the write: several frames queued,
 * then one writev() for them all.  */
void ipc_channel_queue_frame (ipc_channel *ch, GBytes *frame);
void ipc_channel_push (ipc_channel *ch);

/* Bytes queued and not yet written.  */
gsize ipc_channel_pending (ipc_channel *ch);

/* Write everything queued, waiting for the socket as long as it takes
 * (a parse worker, before it reads the next message: an answer is never
 * left half-sent while it parses the next).  */
void ipc_channel_flush_all (ipc_channel *ch);

/* Deliver now every complete frame the socket holds (the peer has
 * exited: what it sent before is not lost to the order in which the main
 * loop sees the exit and the data).  */
void ipc_channel_drain (ipc_channel *ch);

/* ------------------------------------------------------------ payloads */

typedef enum {
  IPC_STATUS_COMMITTED = 0,
  IPC_STATUS_TEMPFAIL = 1,
  IPC_STATUS_NOSPACE = 2,
  IPC_STATUS_SHUTDOWN = 3,
  IPC_STATUS_DUPLICATE = 4,  /* IMAP: taken before; move it now */
} ipc_status;

/* SUBMIT: request id, envelope, raw message.  */
GBytes *ipc_submit_pack (guint64 req, const store_envelope *env, GBytes *raw);
gboolean ipc_submit_unpack (GBytes *payload, guint64 *req,
                            store_envelope **env, GBytes **raw);

/* The same as a whole frame of @type (header included), for
 * ipc_channel_send_frame(): a parse request, packed off the main loop.  */
GBytes *ipc_submit_frame (guint8 type, guint64 req, const store_envelope *env,
                          GBytes *raw);

/* IMAP_SUBMIT: checkpoint and the SUBMIT layout.  */
GBytes *ipc_imap_submit_pack (guint64 req, guint32 uidvalidity, guint32 uid,
                              const store_envelope *env, GBytes *raw);
gboolean ipc_imap_submit_unpack (GBytes *payload, guint64 *req,
                                 guint32 *uidvalidity, guint32 *uid,
                                 store_envelope **env, GBytes **raw);

/* IMAP_STATUS: a state word, an error word (or ""), backlog, token expiry
 * (unix seconds, 0: none).  Words only: never message content.  */
GBytes *ipc_imap_status_pack (const char *state, const char *error,
                              gint64 backlog, gint64 token_expires);
gboolean ipc_imap_status_unpack (GBytes *payload, char **state, char **error,
                                 gint64 *backlog, gint64 *token_expires);

/* PARSED: request id and the packed message (transfer none: a slice).
 * IPC_PARSED_HEAD: the bytes before the packed message (a worker packs
 * the message straight after them, header included: parse_worker.c).  */
#define IPC_PARSED_HEAD 8
GBytes *ipc_parsed_pack (guint64 req, GBytes *packed);
void ipc_parsed_head (guint8 *p, guint64 req);
gboolean ipc_parsed_unpack (GBytes *payload, guint64 *req, GBytes **packed);

/* RESULT: request id, status, queue id (printable).  */
GBytes *ipc_result_pack (guint64 req, ipc_status status, const char *qid);
gboolean ipc_result_unpack (GBytes *payload, guint64 *req,
                            ipc_status *status, char **qid);

#endif
