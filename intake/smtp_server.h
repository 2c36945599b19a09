/*
 * smtp_server.h - the SMTP child process: sockets and TLS around the pure
 * session (smtp_session.h).
 *
 * Runs with no keys and no database.  Accepts on a listening socket the
 * master bound, enforces the session limits (in total and per client
 * address), and hands every finished message to the master over the IPC
 * channel; the client hears 250 only when the master answers "committed".
 */
#ifndef INTAKE_SMTP_SERVER_H
#define INTAKE_SMTP_SERVER_H

#include <glib.h>

#include "intake/intake_config.h"

typedef struct smtp_server smtp_server;

/* (transfer full) Serve on @listen_fd, talk to the master on @ipc_fd; @cfg
 * (transfer none) must outlive the server.  TLS material is read here, so
 * call this before dropping privileges.  @loop is quit when the server has
 * stopped (shutdown finished, or the master went away).  */
smtp_server *smtp_server_new (intake_config *cfg, int listen_fd, int ipc_fd,
                              GMainLoop *loop, GError **error);

/* Stop accepting; every session ends with 421 (after the store's answer
 * for a message already handed over); the loop quits when all are gone.  */
void smtp_server_shutdown (smtp_server *srv);

void smtp_server_free (smtp_server **srv);

#endif
