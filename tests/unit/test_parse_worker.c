/*
 * test_parse_worker.c - the parse worker's seccomp filter, in a forked
 * child per case.
 *
 * Covers: after parse_worker_seccomp every file of tests/data/mail parses
 * and packs, and the process exits normally (under ASan with leak
 * detection, so LeakSanitizer's own calls are covered too); each call a
 * compromised parser would make -- an Internet or Unix socket, connect on
 * a descriptor it already has, execve, fork, ptrace, an open for writing,
 * creating or truncating, a writable and executable mapping, a signal to
 * another process -- ends the process with SIGSYS; a read-only open still
 * works and abort () still ends it with SIGABRT; INTAKE_PARSE_SECCOMP=off
 * leaves the process unfiltered.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "intake/parse_worker.h"
#include "parser/parser.h"

/* Run @fn in a child after the filter; its wait status.  */
static int
run_filtered (void (*fn) (const void *), const void *arg)
{
  pid_t pid = fork ();
  int status = 0;

  ck_assert_int_ge (pid, 0);
  if (pid == 0)
    {
      g_autoptr (GError) error = NULL;

      if (!parse_worker_seccomp (&error))
        _exit (100);
      fn (arg);
      _exit (0);
    }
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  return status;
}

static void
assert_killed (int status, int sig, const char *what)
{
  ck_assert_msg (WIFSIGNALED (status) && WTERMSIG (status) == sig,
                 "%s: expected signal %d, got %s %d", what, sig,
                 WIFSIGNALED (status) ? "signal" : "exit",
                 WIFSIGNALED (status) ? WTERMSIG (status)
                                      : WEXITSTATUS (status));
}

/* ------------------------------------------------------------ escapes */

static void
do_inet_socket (const void *arg)
{
  socket (AF_INET, SOCK_STREAM, 0);
}

static void
do_unix_socket (const void *arg)
{
  socket (AF_UNIX, SOCK_STREAM, 0);
}

static void
do_socketpair (const void *arg)
{
  int sv[2];

  socketpair (AF_UNIX, SOCK_STREAM, 0, sv);
}

static void
do_connect (const void *arg)
{
  /* a descriptor the worker already holds (stdin here) */
  struct sockaddr sa = { .sa_family = AF_UNIX };

  connect (STDIN_FILENO, &sa, sizeof sa);
}

static void
do_sendto (const void *arg)
{
  sendto (STDIN_FILENO, "x", 1, 0, NULL, 0);
}

static void
do_execve (const void *arg)
{
  char *argv[] = { (char *) "/bin/true", NULL };
  char *envp[] = { NULL };

  execve (argv[0], argv, envp);
}

static void
do_fork (const void *arg)
{
  /* fork () is clone () with SIGCHLD: the raw call, so that no libc
   * fallback hides it.  Only the release filter refuses it (LSan needs
   * clone: test_fork_san is the sanitizer build's case).  */
  syscall (SYS_fork);
}

static void
do_ptrace (const void *arg)
{
  ptrace (PTRACE_TRACEME, 0, NULL, NULL);
}

static void
do_open_write (const void *arg)
{
  open ("/dev/null", O_WRONLY);
}

static void
do_open_rdwr (const void *arg)
{
  open ("/dev/null", O_RDWR);
}

static void
do_open_creat (const void *arg)
{
  /* O_RDONLY | O_CREAT would still create the file */
  open ("/tmp/intake-test-parse-worker-creat", O_RDONLY | O_CREAT, 0600);
}

static void
do_open_trunc (const void *arg)
{
  syscall (SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_TRUNC);
}

static void
do_mmap_wx (const void *arg)
{
  mmap (NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void
do_mprotect_wx (const void *arg)
{
  static char page[8192] __attribute__ ((aligned (4096)));

  mprotect (page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
}

static void
do_kill_parent (const void *arg)
{
  pid_t parent = *(const pid_t *) arg;     /* getppid () is not allowed */

  syscall (SYS_tgkill, parent, parent, 0);
}

static void
do_setuid (const void *arg)
{
  syscall (SYS_setuid, 0);
}

typedef struct {
  const char *name;
  void (*fn) (const void *);
  gboolean release_only;      /* allowed in sanitizer builds (LSan) */
} escape_case;

static const escape_case escapes[] = {
  { "inet socket", do_inet_socket, FALSE },
  { "unix socket", do_unix_socket, FALSE },
  { "socketpair", do_socketpair, FALSE },
  { "connect on an old descriptor", do_connect, FALSE },
  { "sendto", do_sendto, FALSE },
  { "execve", do_execve, FALSE },
  { "fork", do_fork, TRUE },
  { "ptrace", do_ptrace, TRUE },
  { "open O_WRONLY", do_open_write, FALSE },
  { "open O_RDWR", do_open_rdwr, FALSE },
  { "open O_CREAT", do_open_creat, FALSE },
  { "openat O_TRUNC", do_open_trunc, FALSE },
  { "mmap W+X", do_mmap_wx, FALSE },
  { "mprotect W+X", do_mprotect_wx, FALSE },
  { "tgkill another process", do_kill_parent, FALSE },
  { "setuid", do_setuid, FALSE },
};

START_TEST (test_escape_killed)
{
  const escape_case *c = &escapes[_i];

#if defined(__SANITIZE_ADDRESS__)
  if (c->release_only)
    return;
#endif
  pid_t self = getpid ();

  assert_killed (run_filtered (c->fn, &self), SIGSYS, c->name);
}
END_TEST

/* ------------------------------------------------------------ allowed */

static void
do_read_only (const void *arg)
{
  char b[16];
  int fd = open ("/etc/hostname", O_RDONLY | O_CLOEXEC);

  if (fd < 0 && errno == ENOENT)
    fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read (fd, b, sizeof b) < 0)
    _exit (1);
  close (fd);
}

static void
do_abort (const void *arg)
{
  abort ();
}

START_TEST (test_allowed)
{
  int status = run_filtered (do_read_only, NULL);

  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                 "read-only open: status %#x", status);
  assert_killed (run_filtered (do_abort, NULL), SIGABRT, "abort");
}
END_TEST

START_TEST (test_off_switch)
{
  pid_t pid = fork ();
  int status;

  ck_assert_int_ge (pid, 0);
  if (pid == 0)
    {
      int fd;

      g_setenv ("INTAKE_PARSE_SECCOMP", "off", TRUE);
      if (!parse_worker_seccomp (NULL))
        _exit (100);
      fd = socket (AF_INET, SOCK_STREAM, 0);
      _exit (fd >= 0 ? 0 : 1);
    }
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                 "socket refused with the filter off: status %#x", status);
}
END_TEST

/* ------------------------------------------------------------ parsing */

static char *
project_root (void)
{
  g_autofree char *dir = g_get_current_dir ();

  for (int i = 0; i < 6; i++)
    {
      g_autofree char *probe = g_build_filename (dir, "tests", "data", "mail",
                                                 NULL);
      char *up;
      if (g_file_test (probe, G_FILE_TEST_IS_DIR))
        return g_steal_pointer (&dir);
      up = g_path_get_dirname (dir);
      g_free (dir);
      dir = up;
    }
  return NULL;
}

static void
collect (const char *dir, GPtrArray *out)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      char *data;
      gsize len;

      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        collect (path, out);
      else if (g_file_get_contents (path, &data, &len, NULL))
        g_ptr_array_add (out, g_bytes_new_take (data, len));
    }
}

static void
do_parse_all (const void *arg)
{
  const GPtrArray *msgs = arg;

  for (guint i = 0; i < msgs->len; i++)
    {
      parser_context ctx = { 0 };
      parser_message *m = parser_message_parse (msgs->pdata[i], &ctx);
      GBytes *packed = parser_message_pack (m);

      if (g_bytes_get_size (packed) == 0)
        _exit (2);
      g_bytes_unref (packed);
      parser_message_free (m);
    }
  /* exit (), not _exit (): atexit handlers and, under ASan, the leak
   * check run under the filter too.  */
  exit (0);
}

START_TEST (test_parse_under_filter)
{
  g_autofree char *root = project_root ();
  g_autofree char *dir = NULL;
  g_autoptr (GPtrArray) msgs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) g_bytes_unref);
  int status;

  ck_assert_msg (root != NULL, "tests/data/mail not found");
  dir = g_build_filename (root, "tests", "data", "mail", NULL);
  collect (dir, msgs);
  ck_assert_uint_gt (msgs->len, 50);
  parser_init ();
  status = run_filtered (do_parse_all, msgs);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                 "parsing %u files under the filter: %s %d", msgs->len,
                 WIFSIGNALED (status) ? "signal" : "exit",
                 WIFSIGNALED (status) ? WTERMSIG (status)
                                      : WEXITSTATUS (status));
}
END_TEST

static Suite *
parse_worker_suite (void)
{
  Suite *s = suite_create ("parse_worker");
  TCase *tc = tcase_create ("seccomp");

  tcase_set_timeout (tc, 120);
  tcase_add_loop_test (tc, test_escape_killed, 0, G_N_ELEMENTS (escapes));
  tcase_add_test (tc, test_allowed);
  tcase_add_test (tc, test_off_switch);
  tcase_add_test (tc, test_parse_under_filter);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (parse_worker_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
