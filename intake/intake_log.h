/*
 * intake_log.h - one line per event on standard error.
 *
 * GLib structured logging with a writer that prints
 * "time level domain[pid]: key=value ...", escaping every control byte, so
 * no input can forge a log line (SECURITY-TESTS 33).  Callers log ids and
 * facts, never addresses, names, subjects, bodies, tokens or keys.
 */
#ifndef INTAKE_LOG_H
#define INTAKE_LOG_H

#include <glib.h>

/* Install the writer; @role names the process in every line.  Messages of
 * level debug are printed when INTAKE_DEBUG is set.  */
void intake_log_init (const char *role);

/* (transfer full) A short, per-process salted token for a client address:
 * the same address gives the same token within one process lifetime, and
 * the address cannot be read back from it.  */
char *intake_log_client_token (const char *addr);

#endif
