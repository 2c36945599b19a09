/*
 * master.h - the master process: supervises the children and is the only
 * one that writes the store.
 *
 * It binds the listening socket, starts each child (this same binary
 * re-executed with a role) with a socketpair for frames, restarts a child
 * that dies (with back-off), stores what the children hand it and answers
 * "committed" only after the commit, and tells them when storage runs low.
 */
#ifndef INTAKE_MASTER_H
#define INTAKE_MASTER_H

#include <glib.h>

#include "intake/intake_config.h"
#include "intake/pipeline.h"
#include "parser/parser.h"
#include "store/store.h"

typedef struct intake_master intake_master;

/* (transfer full) Bind and start the children.  @exe is the path of this
 * binary, @config_path the configuration the children read.  @cfg, @st and
 * @pl (transfer none) outlive the master.  */
intake_master *intake_master_start (intake_config *cfg, const char *exe,
                                    const char *config_path, store *st,
                                    pipeline *pl, GError **error);

/* Stop the children (SIGTERM: they finish with 421) and call @done on the
 * main context once every child is gone and its last message answered.  */
void intake_master_shutdown (intake_master *m, GSourceFunc done,
                             gpointer data);

void intake_master_free (intake_master **m);

/* For /healthz and /metrics: children not running now (0 = all up),
 * restarts since start, whether storage is low.  */
typedef struct {
  guint children;
  guint children_down;
  guint64 restarts;
  gboolean storage_low;
  guint64 spooled_smtp, spooled_imap, spooled_form;
} intake_master_status;

void intake_master_get_status (intake_master *m, intake_master_status *st);

/* The storage is too low to accept mail (web forms answer 503).  */
gboolean intake_master_storage_low (intake_master *m);

#endif
