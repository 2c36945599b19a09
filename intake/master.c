/*
 * master.c - supervising the children and storing what they receive.
 *
 * Owns: the listening socket, one record per child (pid, IPC channel,
 * restart back-off), the storage-space watch.  A parse worker's socket is
 * handed to the pipeline thread (pipeline_parse_attach): its messages do
 * not pass through this loop.
 * Trusts nothing a child says beyond its frame: the frame is bounded, the
 * envelope is unpacked as untrusted data, the source is set here from the
 * child's role, and a child that breaks the framing is killed.
 */
#define G_LOG_DOMAIN "intake-master"

#include "intake/master.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>

#include "intake/ipc.h"
#include "parser/parser.h"

/* Restart back-off: first restart after this, doubling to the cap; a child
 * that ran for RESET seconds starts again from the first step.  */
#define MASTER_BACKOFF_FIRST_MS  100
#define MASTER_BACKOFF_MAX_MS    30000
#define MASTER_BACKOFF_RESET_S   30
#define MASTER_STORAGE_CHECK_S   1
/* A port still held by a dying predecessor: retry binding for 5 s.  */
/* Children still alive this long after SIGTERM are killed (the SMTP
 * child's own drain limit is 20 s).  */
#define MASTER_STOP_GRACE_S      30
#define MASTER_BIND_TRIES        100
#define MASTER_BIND_WAIT_MS      50

typedef struct {
  intake_master *m;
  const char *role;
  guint index;
  GPid pid;                   /* 0 while not running */
  ipc_channel *ipc;
  guint watch;
  guint restart;
  gint64 started_at;
  guint backoff_ms;
  guint generation;           /* bumped at each start */
  const char *mailbox;        /* imap children: [imap NAME] */
  gboolean sessions;          /* smtp children: a session is open */
} master_child;

struct intake_master {
  intake_config *cfg;
  char *exe;
  char *config_path;
  store *st;
  pipeline *pl;
  GSocket *listen;
  GPtrArray *children;        /* master_child * */
  guint storage_timer;
  gboolean storage_low;
  gboolean stopping;
  guint inflight;             /* messages with the writer */
  GAsyncQueue *replies;       /* master_reply *, from the writer thread */
  gint replies_wake;          /* an idle drain is scheduled */
  GSourceFunc done;
  gpointer done_data;
  guint64 restarts;
  guint64 spooled[3];         /* smtp, imap, form (forms count their own) */
  guint stop_timer;
};

static void master_child_start (master_child *c);

/* --------------------------------------------------------- shutdown */

static void
master_maybe_done (intake_master *m)
{
  if (!m->stopping || m->done == NULL || m->inflight > 0)
    return;
  for (guint i = 0; i < m->children->len; i++)
    if (((master_child *) m->children->pdata[i])->pid != 0)
      return;
  GSourceFunc done = m->done;
  m->done = NULL;
  done (m->done_data);
}

/* ------------------------------------------------------------ frames */

typedef struct {
  master_child *child;
  guint generation;
  guint64 req;
  ipc_status status;
  gint64 spool_id;
} master_reply;

static void
master_reply_one (master_reply *r)
{
  master_child *c = r->child;
  intake_master *m = c->m;
  char qid[32];

  m->inflight--;
  if (r->status == IPC_STATUS_COMMITTED)
    {
      pipeline_kick (m->pl);
      m->spooled[g_strcmp0 (c->role, "imap") == 0 ? 1 : 0]++;
    }
  if (c->generation == r->generation && c->ipc != NULL)
    {
      g_autoptr (GBytes) frame = NULL;
      g_snprintf (qid, sizeof qid, "%" G_GINT64_MODIFIER "X", r->spool_id);
      frame = ipc_result_pack (r->req, r->status,
                               r->status == IPC_STATUS_COMMITTED ? qid : "");
      ipc_channel_send (c->ipc, IPC_RESULT, frame);
    }
}

/* On the main context: answer everything the writer finished.  One wake-up
 * serves a whole committed batch.  */
static gboolean
master_replies_drain (gpointer data)
{
  intake_master *m = data;
  master_reply *r;

  g_atomic_int_set (&m->replies_wake, 0);
  while ((r = g_async_queue_try_pop (m->replies)) != NULL)
    {
      master_reply_one (r);
      g_free (r);
    }
  master_maybe_done (m);
  return G_SOURCE_REMOVE;
}

/* The writer thread calls this after the commit (or the failure).  */
static void
master_spool_done (gint64 id, const GError *error, gpointer data)
{
  master_reply *r = data;

  r->spool_id = id;
  if (error == NULL && id == 0)
    r->status = IPC_STATUS_DUPLICATE;   /* IMAP: taken before */
  else if (error == NULL)
    r->status = IPC_STATUS_COMMITTED;
  else
    {
      r->status = g_error_matches (error, STORE_ERROR, STORE_ERROR_FULL)
                      ? IPC_STATUS_NOSPACE : IPC_STATUS_TEMPFAIL;
      g_warning ("event=spool-failed error=%s", error->message);
    }
  intake_master *m = r->child->m;   /* @r may be freed once pushed */
  g_async_queue_push (m->replies, r);
  if (g_atomic_int_compare_and_exchange (&m->replies_wake, 0, 1))
    g_idle_add (master_replies_drain, m);
}

/* An IMAP child: a message with its checkpoint, or how the mailbox is
 * doing.  */
static void
master_on_imap (master_child *c, guint8 type, GBytes *payload)
{
  store_envelope *env = NULL;
  GBytes *raw = NULL;
  guint32 uidvalidity, uid;
  guint64 req;

  if (type == IPC_IMAP_STATUS)
    {
      g_autofree char *state = NULL;
      g_autofree char *err = NULL;
      store_imap_status st = { 0 };

      if (!ipc_imap_status_unpack (payload, &state, &err, &st.backlog,
                                   &st.token_expires))
        goto bad;
      st.mailbox = (char *) c->mailbox;
      st.state = state;
      if (*err)
        {
          st.last_error = err;
          st.last_error_at = g_get_real_time ();
        }
      else if (g_strcmp0 (state, "ok") == 0 || g_strcmp0 (state, "idle") == 0
               || g_strcmp0 (state, "polling") == 0)
        st.last_success = g_get_real_time ();
      store_imap_status_submit (c->m->st, &st);
      return;
    }
  if (type != IPC_IMAP_SUBMIT
      || !ipc_imap_submit_unpack (payload, &req, &uidvalidity, &uid, &env,
                                  &raw)
      || g_bytes_get_size (raw) > c->m->cfg->session.max_message)
    {
      store_envelope_free (env);
      if (raw)
        g_bytes_unref (raw);
      goto bad;
    }
  g_free (env->source);
  env->source = g_strdup ("imap");
  master_reply *r = g_new0 (master_reply, 1);
  r->child = c;
  r->generation = c->generation;
  r->req = req;
  c->m->inflight++;
  store_spool_submit_imap (c->m->st, env, raw, c->mailbox, uidvalidity, uid,
                           master_spool_done, r);
  return;
bad:
  g_warning ("event=bad-frame child=%s/%u pid=%d type=%u", c->role, c->index,
             c->pid, type);
  if (c->pid)
    kill (c->pid, SIGKILL);
}

/* Whether any SMTP child has a session open, for the pipeline.  */
static void
master_sessions_update (intake_master *m)
{
  gboolean any = FALSE;

  for (guint i = 0; i < m->children->len; i++)
    {
      const master_child *c = m->children->pdata[i];
      any = any || c->sessions;
    }
  if (m->pl != NULL)
    pipeline_set_receiving (m->pl, any);
}

static void
master_on_frame (ipc_channel *ch, guint8 type, GBytes *payload, gpointer data)
{
  master_child *c = data;
  store_envelope *env = NULL;
  GBytes *raw = NULL;
  master_reply *r;
  guint64 req;

  if (g_strcmp0 (c->role, "imap") == 0)
    {
      master_on_imap (c, type, payload);
      return;
    }
  if (type == IPC_SESSIONS && payload != NULL
      && g_bytes_get_size (payload) == 1
      && *(const guint8 *) g_bytes_get_data (payload, NULL) <= 1)
    {
      c->sessions = *(const guint8 *) g_bytes_get_data (payload, NULL) == 1;
      master_sessions_update (c->m);
      return;
    }
  if (type != IPC_SUBMIT || !ipc_submit_unpack (payload, &req, &env, &raw)
      || g_bytes_get_size (raw) > c->m->cfg->session.max_message)
    {
      g_warning ("event=bad-frame child=%s/%u pid=%d type=%u", c->role,
                 c->index, c->pid, type);
      store_envelope_free (env);
      if (raw)
        g_bytes_unref (raw);
      if (c->pid)
        kill (c->pid, SIGKILL);
      return;
    }
  g_free (env->source);
  env->source = g_strdup (c->role);
  r = g_new0 (master_reply, 1);
  r->child = c;
  r->generation = c->generation;
  r->req = req;
  c->m->inflight++;
  store_spool_submit (c->m->st, env, raw, master_spool_done, r);
}

static void
master_on_closed (ipc_channel *ch, gpointer data)
{
  master_child *c = data;

  /* A child that closed its channel but lives on is broken: end it; the
   * exit watch restarts it.  While stopping, children close it on their
   * way out.  */
  if (c->pid && !c->m->stopping)
    kill (c->pid, SIGKILL);
}

/* ---------------------------------------------------------- children */

static gboolean
master_child_restart_cb (gpointer data)
{
  master_child *c = data;

  c->restart = 0;
  master_child_start (c);
  return G_SOURCE_REMOVE;
}

static void
master_child_exited (GPid pid, gint status, gpointer data)
{
  master_child *c = data;
  intake_master *m = c->m;
  gint64 ran = g_get_monotonic_time () - c->started_at;

  g_spawn_close_pid (pid);
  c->watch = 0;
  c->pid = 0;
  /* (a parse worker's messages: its socket is the pipeline's, which
   * sees it end: parse_pool.c) */
  c->generation++;                /* replies for the old one are dropped */
  ipc_channel_free (&c->ipc);
  if (c->sessions)
    {
      c->sessions = FALSE;        /* its sessions died with it */
      master_sessions_update (m);
    }
  if (WIFSIGNALED (status))
    g_message ("event=child-exit child=%s/%u pid=%d signal=%d", c->role,
               c->index, pid, WTERMSIG (status));
  else
    g_message ("event=child-exit child=%s/%u pid=%d status=%d", c->role,
               c->index, pid, WEXITSTATUS (status));
  if (m->stopping)
    {
      master_maybe_done (m);
      return;
    }
  if (ran > MASTER_BACKOFF_RESET_S * G_TIME_SPAN_SECOND)
    c->backoff_ms = MASTER_BACKOFF_FIRST_MS;
  m->restarts++;
  g_message ("event=child-restart child=%s/%u in_ms=%u", c->role, c->index,
             c->backoff_ms);
  c->restart = g_timeout_add (c->backoff_ms, master_child_restart_cb, c);
  c->backoff_ms = MIN (c->backoff_ms * 2, MASTER_BACKOFF_MAX_MS);
}

static void
master_child_setup (gpointer data)
{
  /* Die with the master; the child sets it again after dropping
   * privileges, which clears it.  A master that died between fork and
   * here sent nothing: the parent is then no longer the master.  (Only
   * async-signal-safe calls: this runs between fork and exec.)  */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != GPOINTER_TO_INT (data))
    _exit (127);
}

static void
master_send_storage (master_child *c)
{
  guint8 low = c->m->storage_low ? 1 : 0;
  g_autoptr (GBytes) b = g_bytes_new (&low, 1);

  if (c->ipc && g_strcmp0 (c->role, "smtp") == 0)
    ipc_channel_send (c->ipc, IPC_STORAGE, b);
}

static void
master_child_start (master_child *c)
{
  intake_master *m = c->m;
  g_autoptr (GError) error = NULL;
  int sp[2];
  int source_fds[2], target_fds[2] = { 3, 4 };
  gboolean smtp = g_strcmp0 (c->role, "smtp") == 0;
  GPid pid;
  const char *argv[] = { m->exe, "--role", c->role, "-c", m->config_path,
                         "--ipc-fd", "3", NULL, NULL, NULL };

  if (smtp)
    {
      argv[7] = "--listen-fd";
      argv[8] = "4";
    }
  else if (c->mailbox != NULL)
    {
      argv[7] = "--mailbox";
      argv[8] = c->mailbox;
    }

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
    {
      g_warning ("event=socketpair-failed error=%s", g_strerror (errno));
      c->restart = g_timeout_add (c->backoff_ms, master_child_restart_cb, c);
      return;
    }
  source_fds[0] = sp[1];
  source_fds[1] = smtp ? g_socket_get_fd (m->listen) : -1;
  if (!g_spawn_async_with_pipes_and_fds (NULL, argv, NULL,
                                         G_SPAWN_DO_NOT_REAP_CHILD,
                                         master_child_setup,
                                         GINT_TO_POINTER (getpid ()), -1, -1,
                                         -1,
                                         source_fds, target_fds,
                                         smtp ? 2 : 1, &pid,
                                         NULL, NULL, NULL, &error))
    {
      g_warning ("event=spawn-failed child=%s/%u error=%s", c->role,
                 c->index, error->message);
      close (sp[0]);
      close (sp[1]);
      c->restart = g_timeout_add (c->backoff_ms, master_child_restart_cb, c);
      c->backoff_ms = MIN (c->backoff_ms * 2, MASTER_BACKOFF_MAX_MS);
      return;
    }
  close (sp[1]);
  c->pid = pid;
  c->started_at = g_get_monotonic_time ();
  c->generation++;
  if (g_strcmp0 (c->role, "parse") == 0)
    {
      /* Its messages go to and from the pipeline thread, not through
       * this loop; a pidfd (taken before this loop can reap the child)
       * lets that thread end it without ever signalling a process that
       * took its pid.  */
      int pidfd = pidfd_open (pid, 0);

      if (pidfd < 0)
        {
          g_warning ("event=pidfd-failed child=%s/%u error=%s", c->role,
                     c->index, g_strerror (errno));
          kill (pid, SIGKILL);
          close (sp[0]);
        }
      else
        pipeline_parse_attach (m->pl, c->index, sp[0], pidfd);
    }
  else
    c->ipc = ipc_channel_new (sp[0],
                              m->cfg->session.max_message
                                  + IPC_ENVELOPE_MAX + 64,
                              master_on_frame, master_on_closed, c);
  c->watch = g_child_watch_add (pid, master_child_exited, c);
  if (smtp)
    master_send_storage (c);
  g_message ("event=child-start child=%s/%u pid=%d", c->role, c->index, pid);
}

/* ----------------------------------------------------------- storage */

static gboolean
master_storage_check (gpointer data)
{
  intake_master *m = data;
  g_autofree char *dir = g_path_get_dirname (m->cfg->database);
  struct statvfs sv;
  gboolean low;

  if (statvfs (dir, &sv) != 0)
    return G_SOURCE_CONTINUE;
  low = (guint64) sv.f_bavail * sv.f_frsize < m->cfg->min_free_bytes;
  if (low != m->storage_low)
    {
      m->storage_low = low;
      g_message ("event=storage-%s free_bytes=%" G_GUINT64_FORMAT,
                 low ? "low" : "ok", (guint64) sv.f_bavail * sv.f_frsize);
      for (guint i = 0; i < m->children->len; i++)
        master_send_storage (m->children->pdata[i]);
    }
  return G_SOURCE_CONTINUE;
}

/* -------------------------------------------------------------- bind */

static GSocket *
master_bind (const char *spec, GError **error)
{
  g_autoptr (GSocketConnectable) conn = NULL;
  g_autoptr (GSocketAddressEnumerator) en = NULL;
  g_autoptr (GSocketAddress) addr = NULL;
  g_autoptr (GSocket) sock = NULL;

  conn = g_network_address_parse (spec, 25, error);
  if (conn == NULL)
    {
      g_prefix_error (error, "[smtp] listen = %s: ", spec);
      return NULL;
    }
  en = g_socket_connectable_enumerate (conn);
  addr = g_socket_address_enumerator_next (en, NULL, error);
  if (addr == NULL)
    {
      g_prefix_error (error, "[smtp] listen = %s: ", spec);
      return NULL;
    }
  sock = g_socket_new (g_socket_address_get_family (addr),
                       G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (sock == NULL)
    return NULL;
  g_socket_set_listen_backlog (sock, 1024);
  /* After a crash the old children may hold the port for a moment while
   * they die: wait for it a little before giving up.  */
  for (int tries = 0;; tries++)
    {
      g_autoptr (GError) local = NULL;
      if (g_socket_bind (sock, addr, TRUE, &local))
        break;
      if (!g_error_matches (local, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE)
          || tries >= MASTER_BIND_TRIES)
        {
          g_propagate_prefixed_error (error, g_steal_pointer (&local),
                                      "[smtp] listen = %s: ", spec);
          return NULL;
        }
      g_usleep (MASTER_BIND_WAIT_MS * 1000);
    }
  if (!g_socket_listen (sock, error))
    {
      g_prefix_error (error, "[smtp] listen = %s: ", spec);
      return NULL;
    }
  return g_steal_pointer (&sock);
}

intake_master *
intake_master_start (intake_config *cfg, const char *exe,
                     const char *config_path, store *st, pipeline *pl,
                     GError **error)
{
  intake_master *m = g_new0 (intake_master, 1);

  m->cfg = cfg;
  m->exe = g_strdup (exe);
  m->config_path = g_canonicalize_filename (config_path, NULL);
  m->st = st;
  m->pl = pl;
  m->children = g_ptr_array_new_with_free_func (g_free);
  m->replies = g_async_queue_new ();
  m->listen = master_bind (cfg->smtp_listen, error);
  if (m->listen == NULL)
    {
      intake_master_free (&m);
      return NULL;
    }
  g_message ("event=listening smtp=%s processes=%u", cfg->smtp_listen,
             cfg->smtp_processes);
  master_storage_check (m);
  m->storage_timer = g_timeout_add_seconds (MASTER_STORAGE_CHECK_S,
                                            master_storage_check, m);
  for (guint i = 0; i < cfg->smtp_processes + cfg->parse_workers; i++)
    {
      master_child *c = g_new0 (master_child, 1);
      c->m = m;
      c->role = i < cfg->smtp_processes ? "smtp" : "parse";
      c->index = i < cfg->smtp_processes ? i : i - cfg->smtp_processes;
      c->backoff_ms = MASTER_BACKOFF_FIRST_MS;
      g_ptr_array_add (m->children, c);
      master_child_start (c);
    }
  /* one child per IMAP mailbox: its credentials and nothing else */
  for (guint i = 0; cfg->imap && i < cfg->imap->len; i++)
    {
      const intake_imap_config *mb = cfg->imap->pdata[i];
      master_child *c = g_new0 (master_child, 1);
      c->m = m;
      c->role = "imap";
      c->index = i;
      c->mailbox = mb->name;
      c->backoff_ms = MASTER_BACKOFF_FIRST_MS;
      g_ptr_array_add (m->children, c);
      master_child_start (c);
    }
  return m;
}

static gboolean
master_stop_expired (gpointer data)
{
  intake_master *m = data;

  m->stop_timer = 0;
  for (guint i = 0; i < m->children->len; i++)
    {
      master_child *c = m->children->pdata[i];
      if (c->pid)
        {
          g_message ("event=child-kill child=%s/%u pid=%d reason=stop-timeout",
                     c->role, c->index, c->pid);
          kill (c->pid, SIGKILL);
        }
    }
  return G_SOURCE_REMOVE;
}

void
intake_master_shutdown (intake_master *m, GSourceFunc done, gpointer data)
{
  m->stopping = TRUE;
  /* nothing more is parsed; what the workers hold is answered
   * "shutdown" (it stays in the spool) */
  pipeline_parse_stopping (m->pl);
  m->done = done;
  m->done_data = data;
  for (guint i = 0; i < m->children->len; i++)
    {
      master_child *c = m->children->pdata[i];
      if (c->restart)
        {
          g_source_remove (c->restart);
          c->restart = 0;
        }
      if (c->pid)
        kill (c->pid, SIGTERM);
    }
  m->stop_timer = g_timeout_add_seconds (MASTER_STOP_GRACE_S,
                                         master_stop_expired, m);
  master_maybe_done (m);
}

void
intake_master_free (intake_master **mp)
{
  intake_master *m = mp ? *mp : NULL;

  if (m == NULL)
    return;
  for (guint i = 0; m->children && i < m->children->len; i++)
    {
      master_child *c = m->children->pdata[i];
      if (c->restart)
        g_source_remove (c->restart);
      if (c->watch)
        g_source_remove (c->watch);
      if (c->pid)
        kill (c->pid, SIGKILL);
      ipc_channel_free (&c->ipc);
    }
  if (m->storage_timer)
    g_source_remove (m->storage_timer);
  if (m->stop_timer)
    g_source_remove (m->stop_timer);
  if (m->children)
    g_ptr_array_unref (m->children);
  if (m->replies)
    {
      master_reply *r;
      while ((r = g_async_queue_try_pop (m->replies)) != NULL)
        g_free (r);
      g_async_queue_unref (m->replies);
    }
  g_clear_object (&m->listen);
  g_free (m->exe);
  g_free (m->config_path);
  g_free (m);
  *mp = NULL;
}

void
intake_master_get_status (intake_master *m, intake_master_status *st)
{
  memset (st, 0, sizeof *st);
  for (guint i = 0; i < m->children->len; i++)
    {
      master_child *c = m->children->pdata[i];
      st->children++;
      st->children_down += c->pid == 0;
    }
  st->restarts = m->restarts;
  st->storage_low = m->storage_low;
  st->spooled_smtp = m->spooled[0];
  st->spooled_imap = m->spooled[1];
}

gboolean
intake_master_storage_low (intake_master *m)
{
  return m->storage_low;
}
