/*
 * imap_child.h - one child process per IMAP mailbox ([imap NAME]).
 *
 * The child holds that mailbox's credentials and nothing else: no keys, no
 * database.  It connects (TLS verified against the system store or the
 * configured CA, host name included; STARTTLS required when configured,
 * never a silent fallback), logs in, and takes every message of the folder
 * by UID with BODY.PEEK[] (never the server's BODYSTRUCTURE), checks it
 * against RFC822.SIZE, and hands it to the master with its (UIDVALIDITY,
 * UID).  Only when the master says the spool row and the checkpoint are
 * committed (or were, earlier) is the message moved to the processed
 * folder: MOVE when offered, else COPY + STORE \Deleted + UID EXPUNGE
 * (UIDPLUS), else a keyword that later searches skip.  Then it waits with
 * IDLE (re-issued before 29 minutes) or polls.  Failures reconnect with
 * exponential back-off and jitter; the master restarts a child that dies
 * (libetpan 1.9.4 can crash on hostile responses: that costs nothing).
 */
#ifndef INTAKE_IMAP_CHILD_H
#define INTAKE_IMAP_CHILD_H

#include "intake/intake_config.h"

typedef struct imap_child imap_child;

/* Read mailbox @name's credentials (before privileges are dropped).  NULL
 * with @error if the mailbox is unknown or its secret file is refused
 * (missing, not 0600, empty).  */
imap_child *imap_child_new (intake_config *cfg, const char *name, int ipc_fd,
                            GError **error);

/* Run until the master goes away; returns an exit code (sysexits.h).  */
int imap_child_run (imap_child *ch);

/* Tell the master that @ch cannot start (@word: "credentials").  */
void imap_child_report (intake_config *cfg, int ipc_fd, const char *word);

#endif
