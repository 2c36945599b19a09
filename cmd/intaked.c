/*
 * intaked - the intake daemon.  Wiring only.
 *
 *   intaked [-c conf/intake.conf]                    the master
 *   intaked --role smtp -c FILE --ipc-fd N --listen-fd M   a child (started
 *                                                    by the master itself)
 *
 * The master holds the keys and the database and supervises the children;
 * an SMTP child holds the listening socket and nothing else, and drops to
 * the configured unprivileged user when started as root.
 * Exit codes follow sysexits.h.
 */
#define G_LOG_DOMAIN "intaked"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <unistd.h>

#include <glib-unix.h>
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "intake/intake_config.h"
#include "intake/intake_log.h"
#include "intake/http_api.h"
#include "intake/http_server.h"
#include "outbound/outbox.h"
#include "outbound/webhook.h"
#include "intake/imap_child.h"
#include "intake/master.h"
#include "intake/parse_worker.h"
#include "intake/pipeline.h"
#include "intake/smtp_server.h"
#include "router/router.h"
#include "store/store.h"

static char *opt_config;
static char *opt_role;
static int opt_ipc_fd = -1;
static int opt_listen_fd = -1;
static char *opt_mailbox;

static GOptionEntry intaked_options[] = {
  { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
    "configuration file (default conf/intake.conf)", "FILE" },
  { "role", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &opt_role,
    "child role (set by the master)", "ROLE" },
  { "ipc-fd", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_ipc_fd,
    "IPC descriptor (set by the master)", "N" },
  { "listen-fd", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_listen_fd,
    "listening descriptor (set by the master)", "N" },
  { "mailbox", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &opt_mailbox,
    "IMAP mailbox (set by the master)", "NAME" },
  { NULL },
};

/* store_due_fn: the router's clocks, for a kind a person changed.  */
static gint64
intaked_due_for_kind (const char *kind, gint64 received_us, gpointer data)
{
  return router_due_for_kind (data, kind, received_us);
}

static void
intaked_raise_nofile (void)
{
  struct rlimit rl;

  /* Every session is a descriptor: allow as many as the hard limit.  */
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
}

/* ------------------------------------------------------------ master */

typedef struct {
  GMainLoop *loop;
  intake_master *master;
  router *rt;                /* (nullable) */
  http_server *http;         /* (nullable) */
  outbox *outbox;            /* (nullable) */
  webhook *webhook;          /* (nullable) */
  gboolean stopping;
} intaked_master_ctx;

/* Data keys not yet in the key vault (a database from before it, or a
 * rotation) are re-wrapped in small batches on the loop, so that mail keeps
 * flowing; each batch is one transaction and the work resumes after a
 * restart (docs/rights.md).  */
#define INTAKED_VAULT_BATCH 200

static gboolean
intaked_vault_step (gpointer data)
{
  store *st = data;
  g_autoptr (GError) error = NULL;
  gint64 n = store_rewrap_batch (st, INTAKED_VAULT_BATCH, &error);

  if (n < 0)
    {
      g_warning ("event=keys-vault result=failed error=%s", error->message);
      return G_SOURCE_REMOVE;
    }
  if (n == 0)
    {
      g_message ("event=keys-vault result=done");
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* The spool's keys (store_spoolkey.c, docs/cases.md "Keys"): a quarter of
 * their lifetime apart, at most a minute, one run of the rotation re-seals
 * what waits under a key a period old and destroys the keys no row needs;
 * the writer does the work, between batches of mail.  */
#define INTAKED_SPOOL_KEY_TICK_MAX_S 60
#define INTAKED_SPOOL_KEY_RESEAL     1000

typedef struct {
  store *st;
  store_spool_rotation r;
  gint busy;                   /* a run is queued or running; atomic */
  gint stopping;               /* atomic */
} intaked_spool_keys;

static void intaked_spool_keys_done (gint64 id, const GError *error,
                                     gpointer data);

static void
intaked_spool_keys_submit (intaked_spool_keys *k)
{
  store_spool_rotate_submit (k->st, INTAKED_SPOOL_KEY_RESEAL, &k->r,
                             intaked_spool_keys_done, k);
}

/* In the writer thread.  */
static void
intaked_spool_keys_done (gint64 id, const GError *error, gpointer data)
{
  intaked_spool_keys *k = data;

  if (error != NULL)
    g_warning ("event=spool-key-rotation result=failed error=%s",
               error->message);
  else if (k->r.rotated || k->r.resealed > 0 || k->r.destroyed > 0
           || k->r.unreadable > 0)
    g_message ("event=spool-key-rotation key=%" G_GINT64_FORMAT
               " new=%d resealed=%" G_GINT64_FORMAT " unreadable=%u"
               " destroyed=%u", k->r.key, k->r.rotated ? 1 : 0,
               k->r.resealed, k->r.unreadable, k->r.destroyed);
  if (error == NULL && k->r.more && !g_atomic_int_get (&k->stopping))
    {
      intaked_spool_keys_submit (k);
      return;
    }
  g_atomic_int_set (&k->busy, 0);
}

static gboolean
intaked_spool_keys_tick (gpointer data)
{
  intaked_spool_keys *k = data;

  if (g_atomic_int_compare_and_exchange (&k->busy, 0, 1))
    intaked_spool_keys_submit (k);
  return G_SOURCE_CONTINUE;
}

/* The daily retention job (docs/retention.md): a thread of its own, so a
 * long pass never stalls the loop; first 10 minutes after start, then
 * every 24 hours of the monotonic clock.  The schedule's time is the wall
 * clock (or INTAKE_TEST_NOW, unix seconds: the tests' injected clock);
 * the store refuses to delete when it jumped (SECURITY-TESTS 43), and the
 * job then waits for a person (`intakectl retention run
 * --confirm-clock-jump`).  INTAKE_RETENTION_FIRST_S and
 * INTAKE_RETENTION_INTERVAL_S shorten the waits for the tests.  */
#define INTAKED_RETENTION_FIRST_S    600
#define INTAKED_RETENTION_INTERVAL_S (24 * 3600)

typedef struct {
  store *st;
  store_retention_policy *policy;
  GMutex lock;
  GCond cond;
  gboolean stop;
  GThread *thread;
} intaked_retention;

static guint64
intaked_env_seconds (const char *name, guint64 def)
{
  const char *e = g_getenv (name);
  guint64 v;

  if (e != NULL && g_ascii_string_to_unsigned (e, 10, 1, G_MAXUINT32, &v,
                                               NULL))
    return v;
  return def;
}

static gpointer
intaked_retention_main (gpointer data)
{
  intaked_retention *rt = data;
  gint64 next = g_get_monotonic_time ()
                + intaked_env_seconds ("INTAKE_RETENTION_FIRST_S",
                                       INTAKED_RETENTION_FIRST_S)
                      * G_USEC_PER_SEC;
  const gint64 every = intaked_env_seconds ("INTAKE_RETENTION_INTERVAL_S",
                                            INTAKED_RETENTION_INTERVAL_S)
                       * G_USEC_PER_SEC;

  g_mutex_lock (&rt->lock);
  while (!rt->stop)
    {
      store_retention_report r;
      g_autoptr (GError) error = NULL;
      const char *e;
      gint64 now;

      if (g_get_monotonic_time () < next)
        {
          g_cond_wait_until (&rt->cond, &rt->lock, next);
          continue;
        }
      next = g_get_monotonic_time () + every;
      g_mutex_unlock (&rt->lock);
      e = g_getenv ("INTAKE_TEST_NOW");
      now = e != NULL && *e ? g_ascii_strtoll (e, NULL, 10) * G_USEC_PER_SEC
                            : g_get_real_time ();
      if (store_retention_run (rt->st, rt->policy, now, 0, &r, NULL, &error))
        g_message ("event=retention-run cases=%" G_GINT64_FORMAT " due=%"
                   G_GINT64_FORMAT " deleted=%" G_GINT64_FORMAT " held=%"
                   G_GINT64_FORMAT " subjects_erased=%" G_GINT64_FORMAT,
                   r.cases, r.due, r.deleted, r.held, r.subjects_erased);
      else if (g_error_matches (error, STORE_ERROR, STORE_ERROR_CLOCK))
        g_warning ("event=retention-run result=refused reason=clock-jump"
                   " action=run-'intakectl retention run"
                   " --confirm-clock-jump'-if-the-date-is-right");
      else
        g_warning ("event=retention-run result=failed error=%s",
                   error->message);
      g_mutex_lock (&rt->lock);
    }
  g_mutex_unlock (&rt->lock);
  return NULL;
}

static intaked_retention *
intaked_retention_start (store *st, store_retention_policy *policy)
{
  intaked_retention *rt = g_new0 (intaked_retention, 1);

  rt->st = st;
  rt->policy = policy;
  g_mutex_init (&rt->lock);
  g_cond_init (&rt->cond);
  rt->thread = g_thread_new ("retention", intaked_retention_main, rt);
  return rt;
}

static void
intaked_retention_stop (intaked_retention **p)
{
  intaked_retention *rt = *p;

  if (rt == NULL)
    return;
  g_mutex_lock (&rt->lock);
  rt->stop = TRUE;
  g_cond_signal (&rt->cond);
  g_mutex_unlock (&rt->lock);
  g_thread_join (rt->thread);
  store_retention_policy_free (rt->policy);
  g_mutex_clear (&rt->lock);
  g_cond_clear (&rt->cond);
  g_free (rt);
  *p = NULL;
}

/* SIGHUP: load the rule file again and swap it in; a bad file keeps the
 * rules in force and says why (file:line:column, no message content).  */
static gboolean
intaked_master_hup (gpointer data)
{
  intaked_master_ctx *ctx = data;
  g_autoptr (GError) error = NULL;

  if (ctx->rt == NULL)
    {
      g_message ("event=rules-reload result=none reason=no-[routing]-rules");
      return G_SOURCE_CONTINUE;
    }
  if (router_reload (ctx->rt, NULL, &error))
    {
      g_autoptr (rules) r = router_rules (ctx->rt);
      g_message ("event=rules-reload result=ok rules=%u hash=%.16s",
                 rules_count (r), rules_hash (r));
    }
  else
    {
      g_autofree char *flat = g_strdelimit (g_strdup (error->message), "\n",
                                            ';');
      g_warning ("event=rules-reload result=kept-old error=%s", flat);
    }
  return G_SOURCE_CONTINUE;
}

/* The pid file lets `intakectl rules reload` find the master.  */
static void
intaked_write_pid (const char *path)
{
  g_autofree char *text = g_strdup_printf ("%d\n", (int) getpid ());
  g_autoptr (GError) error = NULL;

  if (!g_file_set_contents_full (path, text, -1,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0644,
                                 &error))
    g_warning ("event=pid-file-failed error=%s", error->message);
}

static gboolean
intaked_master_done (gpointer data)
{
  intaked_master_ctx *ctx = data;

  g_main_loop_quit (ctx->loop);
  return G_SOURCE_REMOVE;
}

static gboolean
intaked_master_term (gpointer data)
{
  intaked_master_ctx *ctx = data;

  if (ctx->stopping)
    return G_SOURCE_CONTINUE;
  ctx->stopping = TRUE;
  g_message ("event=shutdown");
  intake_master_shutdown (ctx->master, intaked_master_done, ctx);
  return G_SOURCE_CONTINUE;
}

/* Register, in this thread and before any other starts, every GObject
 * class the master's threads use.  GLib 2.74 can deadlock when one thread
 * runs a class_init (holding the class-init lock) that needs a type a
 * second thread is registering, and that registration adds an interface
 * (which needs the class-init lock): seen as SoupSession's class_init in
 * the webhook thread against GInetSocketAddress in master_bind, about one
 * start in fifteen under ASan.  Types first, threads after.  */
static void
intaked_types_ensure (void)
{
  const GType types[] = {
    G_TYPE_INET_ADDRESS, G_TYPE_INET_SOCKET_ADDRESS, G_TYPE_SOCKET,
    G_TYPE_SOCKET_CLIENT, G_TYPE_SOCKET_CONNECTION, G_TYPE_TCP_CONNECTION,
    G_TYPE_SOCKET_SERVICE, G_TYPE_NETWORK_ADDRESS,
    G_TYPE_PROXY_ADDRESS, G_TYPE_CANCELLABLE, G_TYPE_TASK,
    G_TYPE_MEMORY_INPUT_STREAM, G_TYPE_MEMORY_OUTPUT_STREAM,
    SOUP_TYPE_SESSION, SOUP_TYPE_MESSAGE, SOUP_TYPE_SERVER,
    SOUP_TYPE_SERVER_MESSAGE, SOUP_TYPE_LOGGER,
    JSON_TYPE_BUILDER, JSON_TYPE_GENERATOR, JSON_TYPE_PARSER,
    JSON_TYPE_READER,
  };

  for (gsize i = 0; i < G_N_ELEMENTS (types); i++)
    g_type_class_unref (g_type_class_ref (types[i]));
  g_type_ensure (JSON_TYPE_NODE);
  g_type_ensure (JSON_TYPE_OBJECT);
  g_type_ensure (JSON_TYPE_ARRAY);
  g_type_ensure (SOUP_TYPE_MESSAGE_HEADERS);
  g_type_ensure (G_TYPE_BYTES);
  /* the default resolver and the TLS backend load GIO modules */
  g_object_unref (g_resolver_get_default ());
  (void) g_tls_backend_get_default ();
  (void) g_proxy_resolver_get_default ();
}

static int
intaked_master_main (const char *config_path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (intake_config) cfg = NULL;
  g_autofree char *exe = NULL;
  store_keys *keys = NULL;
  store *st = NULL;
  pipeline *pl = NULL;
  intaked_master_ctx ctx = { 0 };
  intaked_retention *retention = NULL;
  intaked_spool_keys spool_keys = { 0 };
  guint spool_keys_timer;
  struct rlimit no_core = { 0, 0 };

  intake_log_init ("master");
  store_library_init ();        /* before any thread or database */
  /* Keys live here: no core dumps, no ptrace by other users.  */
  setrlimit (RLIMIT_CORE, &no_core);
  prctl (PR_SET_DUMPABLE, 0);
  intaked_raise_nofile ();
  signal (SIGPIPE, SIG_IGN);
  intaked_types_ensure ();

  cfg = intake_config_load (config_path, &error);
  if (cfg == NULL)
    {
      fprintf (stderr, "intaked: %s\n", error->message);
      return EX_CONFIG;
    }
  keys = store_keys_load (cfg->master_key, &error);
  if (keys == NULL)
    {
      fprintf (stderr, "intaked: %s\n", error->message);
      return EX_CONFIG;
    }
  st = store_open_full (cfg->database, cfg->vault, keys, STORE_OPEN_WRITER,
                        &error);
  if (st == NULL)
    {
      fprintf (stderr, "intaked: %s\n", error->message);
      store_keys_free (&keys);
      return EX_UNAVAILABLE;
    }
  if (cfg->rules != NULL)
    {
      router_config rc = { .rules = cfg->rules,
                           .kind_model = cfg->kind_model,
                           .topic_model = cfg->topic_model,
                           .holidays = cfg->holidays,
                           .nation = cfg->nation,
                           .clocks = cfg->clocks };
      ctx.rt = router_new (&rc, &error);
      if (ctx.rt == NULL)
        {
          fprintf (stderr, "intaked: %s\n", error->message);
          store_close (&st);
          store_keys_free (&keys);
          return EX_CONFIG;
        }
    }
  store_spool_key_set_lifetime (st, cfg->spool_key_lifetime_s);
  /* a kind changed by a person (intakectl, the API) takes its clock */
  if (ctx.rt != NULL)
    store_set_due_fn (st, intaked_due_for_kind, ctx.rt);
  pl = pipeline_start (st, cfg, ctx.rt);
  ctx.outbox = outbox_start (cfg, st, keys, &error);
  if (ctx.outbox == NULL && error != NULL)
    {
      fprintf (stderr, "intaked: [outbound]: %s\n", error->message);
      pipeline_stop (&pl);
      store_close (&st);
      store_keys_free (&keys);
      return EX_CONFIG;
    }
  ctx.webhook = webhook_start (cfg, st, &error);
  if (ctx.webhook == NULL && error != NULL)
    {
      fprintf (stderr, "intaked: webhooks: %s\n", error->message);
      outbox_stop (&ctx.outbox);
      pipeline_stop (&pl);
      store_close (&st);
      store_keys_free (&keys);
      return EX_CONFIG;
    }
  exe = g_file_read_link ("/proc/self/exe", &error);
  if (exe == NULL)
    {
      fprintf (stderr, "intaked: cannot find own binary: %s\n",
               error->message);
      return EX_OSERR;
    }
  ctx.loop = g_main_loop_new (NULL, FALSE);
  ctx.master = intake_master_start (cfg, exe, config_path, st, pl, &error);
  if (ctx.master == NULL)
    {
      fprintf (stderr, "intaked: %s\n", error->message);
      pipeline_stop (&pl);
      store_close (&st);
      store_keys_free (&keys);
      return EX_UNAVAILABLE;
    }
  if (cfg->http_listen != NULL)
    {
      ctx.http = http_server_new (cfg, keys, st, ctx.master, pl, &error);
      if (ctx.http == NULL)
        {
          fprintf (stderr, "intaked: [http]: %s\n", error->message);
          intake_master_shutdown (ctx.master, intaked_master_done, &ctx);
          g_main_loop_run (ctx.loop);
          pipeline_stop (&pl);
          intake_master_free (&ctx.master);
          store_close (&st);
          store_keys_free (&keys);
          return EX_CONFIG;
        }
      http_api_register (ctx.http);
    }
  g_unix_signal_add (SIGTERM, intaked_master_term, &ctx);
  g_unix_signal_add (SIGINT, intaked_master_term, &ctx);
  g_unix_signal_add (SIGHUP, intaked_master_hup, &ctx);
  intaked_write_pid (cfg->pid_file);
  g_message ("event=started database=%s", cfg->database);
  {
    /* an erasure interrupted after it began is finished before anything
     * else reads the person's rows */
    gint64 n = store_erase_resume (st, &error);
    if (n < 0)
      {
        g_warning ("event=erase-resume result=failed error=%s",
                   error->message);
        g_clear_error (&error);
      }
    else if (n > 0)
      g_message ("event=erase-resume subjects=%" G_GINT64_FORMAT, n);
    if (store_rewrap_pending (st, NULL) > 0)
      g_timeout_add (50, intaked_vault_step, st);
  }
  {
    store_retention_policy *policy =
        cfg->retention ? store_retention_policy_load (cfg->retention, &error)
                       : store_retention_policy_new ();
    if (policy == NULL)
      {
        /* mail keeps flowing; nothing is deleted until the file is fixed */
        g_warning ("event=retention-schedule result=refused error=%s",
                   error->message);
        g_clear_error (&error);
      }
    else
      retention = intaked_retention_start (st, policy);
  }
  spool_keys.st = st;
  intaked_spool_keys_tick (&spool_keys);
  spool_keys_timer = g_timeout_add_seconds (
      CLAMP (cfg->spool_key_lifetime_s / 4, 1, INTAKED_SPOOL_KEY_TICK_MAX_S),
      intaked_spool_keys_tick, &spool_keys);

  g_main_loop_run (ctx.loop);
  /* Answer anything still queued for the main context (parse requests
   * made just before the stop get "shutdown") before the pipeline stops.  */
  while (g_main_context_iteration (NULL, FALSE))
    ;

  http_server_free (&ctx.http);
  g_source_remove (spool_keys_timer);
  g_atomic_int_set (&spool_keys.stopping, 1);
  intaked_retention_stop (&retention);
  outbox_stop (&ctx.outbox);
  webhook_stop (&ctx.webhook);
  /* The pipeline first: it may still call the master (which answers
   * "shutdown" to every parse request from now on).  */
  pipeline_stop (&pl);
  intake_master_free (&ctx.master);
  store_close (&st);            /* everything submitted is committed */
  store_keys_free (&keys);
  router_free (ctx.rt);
  unlink (cfg->pid_file);
  g_main_loop_unref (ctx.loop);
  g_message ("event=stopped");
  return EX_OK;
}

/* -------------------------------------------------------------- smtp */

/* Started as root: become the configured user, after binding and reading
 * the TLS key (SECURITY-TESTS 109).  */
static gboolean
intaked_drop_privileges (const char *user, GError **error)
{
  struct passwd *pw;

  if (geteuid () != 0)
    return TRUE;
  pw = getpwnam (user);
  if (pw == NULL || pw->pw_uid == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "[intake] user = %s: no such unprivileged user", user);
      return FALSE;
    }
  if (chdir ("/") != 0 || setgroups (0, NULL) != 0
      || setgid (pw->pw_gid) != 0 || setuid (pw->pw_uid) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "cannot become %s: %s", user, g_strerror (errno));
      return FALSE;
    }
  if (setuid (0) == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "privileges were not dropped");
      return FALSE;
    }
  return TRUE;
}

/* What every child does first: its log name, death with the master, its
 * configuration.  NULL (and a log line) if the configuration fails.  */
static intake_config *
intaked_child_begin (const char *role, const char *config_path)
{
  g_autoptr (GError) error = NULL;
  intake_config *cfg;

  intake_log_init (role);
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  signal (SIGPIPE, SIG_IGN);
  cfg = intake_config_load (config_path, &error);
  if (cfg == NULL)
    g_warning ("event=config-failed error=%s", error->message);
  return cfg;
}

/* After the child has read what it needs as root: become the configured
 * user.  Changing credentials cleared the death signal: set it again, and
 * make sure the master did not go away in between.  */
static int
intaked_child_drop (const char *user, pid_t parent)
{
  g_autoptr (GError) error = NULL;

  if (!intaked_drop_privileges (user, &error))
    {
      g_warning ("event=start-failed error=%s", error->message);
      return EX_NOPERM;
    }
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (getppid () != parent)
    return EX_UNAVAILABLE;
  return EX_OK;
}

static gboolean
intaked_smtp_term (gpointer data)
{
  smtp_server_shutdown (data);
  return G_SOURCE_CONTINUE;
}

static int
intaked_smtp_main (const char *config_path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (intake_config) cfg = NULL;
  GMainLoop *loop;
  smtp_server *srv;
  pid_t parent = getppid ();
  int rc;

  if (opt_ipc_fd < 0 || opt_listen_fd < 0)
    {
      fprintf (stderr, "intaked: --role smtp is started by the master\n");
      return EX_USAGE;
    }
  cfg = intaked_child_begin ("smtp", config_path);
  if (cfg == NULL)
    return EX_CONFIG;
  intaked_raise_nofile ();
  loop = g_main_loop_new (NULL, FALSE);
  srv = smtp_server_new (cfg, opt_listen_fd, opt_ipc_fd, loop, &error);
  if (srv == NULL)
    {
      g_warning ("event=start-failed error=%s", error->message);
      return EX_UNAVAILABLE;
    }
  rc = intaked_child_drop (cfg->user, parent);
  if (rc != EX_OK)
    return rc;
  g_unix_signal_add (SIGTERM, intaked_smtp_term, srv);
  g_unix_signal_add (SIGINT, intaked_smtp_term, srv);
  g_main_loop_run (loop);
  smtp_server_free (&srv);
  g_main_loop_unref (loop);
  return EX_OK;
}

/* ------------------------------------------------------------- parse */

static int
intaked_parse_main (const char *config_path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (intake_config) cfg = NULL;
  GMainLoop *loop;
  parse_worker *w;
  pid_t parent = getppid ();
  int null, rc;

  if (opt_ipc_fd < 0)
    {
      fprintf (stderr, "intaked: --role parse is started by the master\n");
      return EX_USAGE;
    }
  cfg = intaked_child_begin ("parse", config_path);
  if (cfg == NULL)
    return EX_CONFIG;
  /* libytnef prints its complaints on standard output, whatever its debug
   * setting; they may quote names from the message, so they go nowhere.  */
  null = open ("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null >= 0)
    {
      dup2 (null, STDOUT_FILENO);
      close (null);
    }
  loop = g_main_loop_new (NULL, FALSE);
  w = parse_worker_new (cfg, opt_ipc_fd, loop, &error);
  if (w == NULL)
    {
      g_warning ("event=start-failed error=%s", error->message);
      return EX_CONFIG;
    }
  rc = intaked_child_drop (cfg->parse_user, parent);
  if (rc != EX_OK)
    return rc;
  parse_worker_limit (cfg);
  /* Set-up is over (configuration, lexicon, privileges, limits): from
   * here on a hostile message meets only the seccomp filter's calls.  */
  if (!parse_worker_seccomp (&error))
    {
      g_warning ("event=start-failed error=%s", error->message);
      return EX_OSERR;
    }
  parse_worker_ready (w);
  g_main_loop_run (loop);
  parse_worker_free (&w);
  g_main_loop_unref (loop);
  return EX_OK;
}

/* -------------------------------------------------------------- imap */

static int
intaked_imap_main (const char *config_path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (intake_config) cfg = NULL;
  pid_t parent = getppid ();
  imap_child *ch;
  int rc;

  if (opt_ipc_fd < 0 || opt_mailbox == NULL)
    {
      fprintf (stderr, "intaked: --role imap is started by the master\n");
      return EX_USAGE;
    }
  cfg = intaked_child_begin ("imap", config_path);
  if (cfg == NULL)
    return EX_CONFIG;
  /* the credentials are read before privileges go; they never reach a
   * core file */
  setrlimit (RLIMIT_CORE, &(struct rlimit){ 0, 0 });
  ch = imap_child_new (cfg, opt_mailbox, opt_ipc_fd, &error);
  if (ch == NULL)
    {
      g_warning ("event=imap-credentials-refused mailbox=%s error=%s",
                 opt_mailbox, error->message);
      imap_child_report (cfg, opt_ipc_fd, "credentials");
      g_usleep (G_USEC_PER_SEC);   /* the master backs off too */
      return EX_CONFIG;
    }
  rc = intaked_child_drop (cfg->user, parent);
  if (rc != EX_OK)
    return rc;
  prctl (PR_SET_DUMPABLE, 0);
  return imap_child_run (ch);
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) oc = g_option_context_new ("- intake daemon");
  g_autoptr (GError) error = NULL;
  const char *config;

  /* Before any thread: GLib's number parsers take the C locale from a
   * g_once on first use, and a contended g_once can leave errno set by
   * a futex wait; g_ascii_string_to_unsigned() then refuses a valid "0"
   * ("min_free_space = 0: expected a whole number", seen once in a few
   * hundred daemon starts).  Initialised here, it is never contended.  */
  (void) g_ascii_strtoull ("0", NULL, 10);

  g_option_context_add_main_entries (oc, intaked_options, NULL);
  if (!g_option_context_parse (oc, &argc, &argv, &error))
    {
      fprintf (stderr, "intaked: %s\n", error->message);
      return EX_USAGE;
    }
  config = opt_config ? opt_config : "conf/intake.conf";
  if (opt_role == NULL)
    return intaked_master_main (config);
  if (g_strcmp0 (opt_role, "smtp") == 0)
    return intaked_smtp_main (config);
  if (g_strcmp0 (opt_role, "parse") == 0)
    return intaked_parse_main (config);
  if (g_strcmp0 (opt_role, "imap") == 0)
    return intaked_imap_main (config);
  fprintf (stderr, "intaked: unknown role %s\n", opt_role);
  return EX_USAGE;
}
