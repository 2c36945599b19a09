/*
 * parse_worker.c - a parse worker: one request at a time.
 *
 * Owns: the IPC channel and the lexicon.  Each IPC_PARSE frame is unpacked
 * (a frame it cannot read ends the worker: the master is the only peer and
 * never sends one), parsed, packed and answered with IPC_PARSED.
 * Refuses, once parse_worker_seccomp has run: every system call but the
 * few a parse needs (the filter below; the threat is code execution by a
 * GMime, libytnef or iconv bug on a hostile message).
 */
#define G_LOG_DOMAIN "intake-parse"

#include "intake/parse_worker.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <seccomp.h>

#include "intake/ipc.h"
#include "parser/parser.h"
#include "parser/parser_text.h"

struct parse_worker {
  intake_config *cfg;
  GMainLoop *loop;
  ipc_channel *ipc;
  parser_lexicon *lexicon;
  char *fault_crash;          /* INTAKE_FAULT_PARSE_CRASH */
  char *fault_hang;           /* INTAKE_FAULT_PARSE_HANG */
  char *fault_escape;         /* INTAKE_FAULT_PARSE_ESCAPE */
  char *fault_garbage;        /* INTAKE_FAULT_PARSE_GARBAGE */
};

/* Fault injection for the seccomp tests: where a message holds the marker
 * in INTAKE_FAULT_PARSE_ESCAPE followed by a space and "socket", "connect",
 * "exec" or "write", the worker tries what code run by a parser bug would:
 * open an Internet socket, connect a Unix one to the master's log socket
 * path (any path does), run /bin/true, or create
 * /tmp/intake-escape-MARKER.  Under the filter the call never returns
 * (SIGSYS); without it, the outcome is logged and parsing goes on.  */
static void
parse_worker_fault_escape (const char *marker, const char *p, gsize n)
{
  gsize ml = strlen (marker);
  const char *hit = memmem (p, n, marker, ml);
  const char *what;
  gsize rest;
  int fd = -1, rc = -1;

  if (hit == NULL)
    return;
  if ((gsize) (hit - p) + ml + 1 > n)
    return;
  what = hit + ml + 1;
  rest = n - (gsize) (what - p);
  if (rest >= 6 && memcmp (what, "socket", 6) == 0)
    {
      fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      g_message ("event=fault-escape call=socket result=%s",
                 fd >= 0 ? "ok" : "refused");
    }
  else if (rest >= 7 && memcmp (what, "connect", 7) == 0)
    {
      /* connect() is filtered on its own: a descriptor could be smuggled
       * in, so socket() being denied is not enough.  The IPC descriptor
       * itself serves: connecting a connected socket fails with EISCONN
       * when allowed.  */
      struct sockaddr sa = { .sa_family = AF_UNIX };

      rc = connect (STDIN_FILENO, &sa, sizeof sa);
      g_message ("event=fault-escape call=connect result=returned");
    }
  else if (rest >= 4 && memcmp (what, "exec", 4) == 0)
    {
      char *argv[] = { (char *) "/bin/true", NULL };
      char *envp[] = { NULL };

      rc = execve (argv[0], argv, envp);
      g_message ("event=fault-escape call=exec result=refused");
    }
  else if (rest >= 5 && memcmp (what, "write", 5) == 0)
    {
      g_autofree char *path = g_strdup_printf ("/tmp/intake-escape-%s",
                                               marker);

      fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
      g_message ("event=fault-escape call=write result=%s",
                 fd >= 0 ? "ok" : "refused");
    }
  if (fd >= 0)
    close (fd);
  (void) rc;
}

/* Fault injection for the supervision and quarantine tests: a message
 * containing the marker in INTAKE_FAULT_PARSE_CRASH kills the worker as a
 * GMime crash would, one containing INTAKE_FAULT_PARSE_HANG spins as a
 * parse that never ends would (one containing INTAKE_FAULT_PARSE_GARBAGE
 * is answered with a pack cut short by a byte, as a worker subverted by
 * it might: parse_worker_on_frame).  Inert unless the variable is set.  */
static void
parse_worker_faults (parse_worker *w, GBytes *raw)
{
  gsize n;
  const char *p = g_bytes_get_data (raw, &n);

  if (w->fault_crash && memmem (p, n, w->fault_crash, strlen (w->fault_crash)))
    abort ();
  if (w->fault_hang && memmem (p, n, w->fault_hang, strlen (w->fault_hang)))
    for (;;)
      g_usleep (G_USEC_PER_SEC);
  if (w->fault_escape)
    parse_worker_fault_escape (w->fault_escape, p, n);
}

static void
parse_worker_on_frame (ipc_channel *ch, guint8 type, GBytes *payload,
                       gpointer data)
{
  parse_worker *w = data;
  g_autoptr (store_envelope) env = NULL;
  g_autoptr (GBytes) raw = NULL;
  g_autoptr (GBytes) frame = NULL;
  GByteArray *b;
  g_autoptr (parser_message) msg = NULL;
  g_autofree const char **rcpts = NULL;
  parser_context ctx = { 0 };
  guint64 req;

  if (type != IPC_PARSE || !ipc_submit_unpack (payload, &req, &env, &raw))
    {
      g_warning ("event=bad-frame type=%u", type);
      g_main_loop_quit (w->loop);
      return;
    }
  rcpts = g_new0 (const char *, env->rcpts->len + 1);
  for (guint i = 0; i < env->rcpts->len; i++)
    rcpts[i] = env->rcpts->pdata[i];
  ctx.envelope_from = env->mail_from;
  ctx.envelope_rcpts = rcpts;
  ctx.lexicon = w->lexicon;
  parse_worker_faults (w, raw);
  msg = parser_message_parse (raw, &ctx);
  /* The frame in one buffer: header, request id, then the message packed
   * straight after them (not packed, copied behind the id, and sent
   * behind a header of its own).  */
  b = g_byte_array_sized_new ((guint) MIN (
      parser_message_pack_size_hint (msg) + IPC_FRAME_HEADER + IPC_PARSED_HEAD,
      (gsize) G_MAXUINT - 1));
  g_byte_array_set_size (b, IPC_FRAME_HEADER + IPC_PARSED_HEAD);
  parser_message_pack_append (b, msg);
  if (w->fault_garbage
      && memmem (g_bytes_get_data (raw, NULL), g_bytes_get_size (raw),
                 w->fault_garbage, strlen (w->fault_garbage)))
    g_byte_array_set_size (b, b->len - 1);
  ipc_frame_header (b->data, IPC_PARSED, b->len - IPC_FRAME_HEADER);
  ipc_parsed_head (b->data + IPC_FRAME_HEADER, req);
  frame = g_byte_array_free_to_bytes (b);
  ipc_channel_send_frame (w->ipc, frame);
  /* The master may already have sent the next message (master.c): the
   * answer is out whole before that one is parsed, so that a crash on it
   * is never taken for a crash on this one.  */
  ipc_channel_flush_all (w->ipc);
}

static void
parse_worker_on_closed (ipc_channel *ch, gpointer data)
{
  parse_worker *w = data;

  g_main_loop_quit (w->loop);
}

parse_worker *
parse_worker_new (intake_config *cfg, int ipc_fd, GMainLoop *loop,
                  GError **error)
{
  parse_worker *w = g_new0 (parse_worker, 1);

  w->cfg = cfg;
  w->loop = loop;
  w->fault_crash = g_strdup (g_getenv ("INTAKE_FAULT_PARSE_CRASH"));
  w->fault_hang = g_strdup (g_getenv ("INTAKE_FAULT_PARSE_HANG"));
  if (w->fault_crash && !*w->fault_crash)
    g_clear_pointer (&w->fault_crash, g_free);
  if (w->fault_hang && !*w->fault_hang)
    g_clear_pointer (&w->fault_hang, g_free);
  w->fault_escape = g_strdup (g_getenv ("INTAKE_FAULT_PARSE_ESCAPE"));
  if (w->fault_escape && !*w->fault_escape)
    g_clear_pointer (&w->fault_escape, g_free);
  w->fault_garbage = g_strdup (g_getenv ("INTAKE_FAULT_PARSE_GARBAGE"));
  if (w->fault_garbage && !*w->fault_garbage)
    g_clear_pointer (&w->fault_garbage, g_free);
  parser_init ();
  if (cfg->special_categories != NULL)
    {
      w->lexicon = parser_lexicon_load (cfg->special_categories, error);
      if (w->lexicon == NULL)
        {
          g_free (w);
          return NULL;
        }
    }
  w->ipc = ipc_channel_new (ipc_fd,
                            cfg->session.max_message + IPC_ENVELOPE_MAX + 64,
                            parse_worker_on_frame, parse_worker_on_closed, w);
  return w;
}

void
parse_worker_limit (intake_config *cfg)
{
  struct rlimit rl;

  rl.rlim_cur = rl.rlim_max = 0;
  setrlimit (RLIMIT_CORE, &rl);
#if !defined(__SANITIZE_ADDRESS__)
  /* ASan reserves terabytes of address space; only plain builds get the
   * address-space limit.  */
  rl.rlim_cur = rl.rlim_max = (rlim_t) cfg->parse_memory_mb * 1024 * 1024;
  setrlimit (RLIMIT_AS, &rl);
#endif
}

/* ------------------------------------------------------------ seccomp */

/* What a parse needs, found by tracing workers through the whole corpus
 * (strace -f, plain and ASan builds, tests/integration/
 * test_parse_seccomp.py): reading and writing the IPC socket and stderr,
 * memory, the main loop's poll, futexes, and read-only opens for what
 * glibc and GLib load lazily (iconv's gconv modules on the first message
 * in a new charset, shared-mime-info's cache on the first content sniff).
 * Besides those: what abort (), g_usleep () and a clock without vDSO
 * use, and read-only metadata calls, which tell no more than a read-only
 * open does.  */
static const int parse_worker_syscalls[] = {
  /* descriptors it already has, and read-only files */
  SCMP_SYS (read), SCMP_SYS (pread64), SCMP_SYS (write), SCMP_SYS (writev),
  SCMP_SYS (close), SCMP_SYS (lseek), SCMP_SYS (fcntl),
  SCMP_SYS (fstat), SCMP_SYS (newfstatat), SCMP_SYS (stat),
  SCMP_SYS (lstat), SCMP_SYS (statx), SCMP_SYS (access),
  SCMP_SYS (faccessat), SCMP_SYS (faccessat2), SCMP_SYS (getdents64),
  SCMP_SYS (readlink), SCMP_SYS (readlinkat),
  /* the main loop */
  SCMP_SYS (poll), SCMP_SYS (ppoll),
  /* memory (mmap and mprotect: below, never writable and executable) */
  SCMP_SYS (munmap), SCMP_SYS (mremap), SCMP_SYS (madvise), SCMP_SYS (brk),
  /* locks, the clock, sleeping */
  SCMP_SYS (futex), SCMP_SYS (clock_gettime), SCMP_SYS (clock_getres),
  SCMP_SYS (gettimeofday), SCMP_SYS (nanosleep), SCMP_SYS (clock_nanosleep),
  SCMP_SYS (getrandom), SCMP_SYS (getpid), SCMP_SYS (gettid),
  /* signals: abort () and g_error () must still end the process; a
   * worker stopped and continued (SIGSTOP/SIGCONT: an operator, a
   * debugger, a cgroup freezer) has its interrupted poll restarted by the
   * kernel through restart_syscall, which only resumes that call */
  SCMP_SYS (restart_syscall),
  SCMP_SYS (rt_sigreturn), SCMP_SYS (rt_sigprocmask),
  SCMP_SYS (rt_sigaction), SCMP_SYS (exit), SCMP_SYS (exit_group),
};

#if defined(__SANITIZE_ADDRESS__)
/* Sanitizer builds (tests only; the release build has none of this): the
 * ASan runtime also needs sigaltstack, and UBSan a pipe to test whether
 * memory is readable before showing it.  LeakSanitizer's check at exit
 * cannot run under the filter (its stop-the-world tracer never attaches
 * and the process spins), so a filtered process turns it off through
 * LSan's documented hook; leaks in the parser are checked by the unit
 * tests and `intakectl parse` on the corpus instead (docs/design-notes.md).  */
static const int parse_worker_syscalls_san[] = {
  SCMP_SYS (sigaltstack), SCMP_SYS (pipe), SCMP_SYS (pipe2),
};

static int parse_worker_filtered;

int __lsan_is_turned_off (void);

int
__lsan_is_turned_off (void)
{
  return parse_worker_filtered;
}
#endif

gboolean
parse_worker_seccomp (GError **error)
{
  const char *off = g_getenv ("INTAKE_PARSE_SECCOMP");
  scmp_filter_ctx ctx;
  int rc = 0;
  /* An open that could create, truncate or write: O_RDONLY is 0.  */
  const scmp_datum_t wr = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND;

  if (off != NULL && g_ascii_strcasecmp (off, "off") == 0)
    {
      g_warning ("event=seccomp-off reason=INTAKE_PARSE_SECCOMP");
      return TRUE;
    }
  /* Kill the whole process, not the thread: a worker left half alive
   * would hold its message forever.  */
  ctx = seccomp_init (SCMP_ACT_KILL_PROCESS);
  if (ctx == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "seccomp_init failed");
      return FALSE;
    }
  for (gsize i = 0; rc == 0 && i < G_N_ELEMENTS (parse_worker_syscalls); i++)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, parse_worker_syscalls[i], 0);
#if defined(__SANITIZE_ADDRESS__)
  for (gsize i = 0;
       rc == 0 && i < G_N_ELEMENTS (parse_worker_syscalls_san); i++)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW,
                           parse_worker_syscalls_san[i], 0);
#endif
  /* Read-only opens only (flags are the third argument of openat, the
   * second of open).  */
  if (rc == 0)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, SCMP_SYS (openat), 1,
                           SCMP_A2 (SCMP_CMP_MASKED_EQ, wr, 0));
  if (rc == 0)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, SCMP_SYS (open), 1,
                           SCMP_A1 (SCMP_CMP_MASKED_EQ, wr, 0));
  /* W^X: a mapping may be writable or executable (dlopen of a gconv
   * module maps code read-only), never both.  Two rules with the same
   * action are alternatives.  */
  if (rc == 0)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, SCMP_SYS (mmap), 1,
                           SCMP_A2 (SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  if (rc == 0)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, SCMP_SYS (mmap), 1,
                           SCMP_A2 (SCMP_CMP_MASKED_EQ, PROT_WRITE, 0));
  if (rc == 0)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, SCMP_SYS (mprotect), 1,
                           SCMP_A2 (SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  if (rc == 0)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, SCMP_SYS (mprotect), 1,
                           SCMP_A2 (SCMP_CMP_MASKED_EQ, PROT_WRITE, 0));
  /* The terminal check glibc's stdio makes on stdout (/dev/null).  */
  if (rc == 0)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, SCMP_SYS (ioctl), 1,
                           SCMP_A1 (SCMP_CMP_EQ, TCGETS));
  /* raise () and abort () signal this process only.  */
  if (rc == 0)
    rc = seccomp_rule_add (ctx, SCMP_ACT_ALLOW, SCMP_SYS (tgkill), 1,
                           SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) getpid ()));
  if (rc == 0)
    rc = seccomp_load (ctx);
#if defined(__SANITIZE_ADDRESS__)
  parse_worker_filtered = rc == 0;
#endif
  seccomp_release (ctx);
  if (rc != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "seccomp filter not loaded: %s", g_strerror (-rc));
      return FALSE;
    }
  return TRUE;
}

void
parse_worker_ready (parse_worker *w)
{
  g_autoptr (GBytes) empty = g_bytes_new (NULL, 0);

  ipc_channel_send (w->ipc, IPC_READY, empty);
}

void
parse_worker_free (parse_worker **wp)
{
  parse_worker *w = wp ? *wp : NULL;

  if (w == NULL)
    return;
  ipc_channel_free (&w->ipc);
  if (w->lexicon)
    parser_lexicon_free (w->lexicon);
  g_free (w->fault_crash);
  g_free (w->fault_hang);
  g_free (w->fault_escape);
  g_free (w->fault_garbage);
  g_free (w);
  *wp = NULL;
}
