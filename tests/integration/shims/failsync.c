/*
 * failsync.c - an LD_PRELOAD shim for test_durability: fsync() and
 * fdatasync() on a file whose path contains $FAILSYNC_PATH fail with EIO
 * from the $FAILSYNC_AT-th such call on, $FAILSYNC_COUNT times (default
 * 1); every other call goes to libc.  A disk that reports a write error
 * at the moment intake makes a message durable (SECURITY-TESTS 39).
 * With $FAILSYNC_SLOW_MS instead, those calls succeed but take that many
 * milliseconds first: a slow disk, to show that no 250 is sent before
 * the sync that makes the message durable has returned (SECURITY-TESTS
 * 34).
 * With $FAILSYNC_CALL=write, pwrite() and pwrite64() fail instead of the
 * syncs (a write error, SECURITY-TESTS 39); with $FAILSYNC_CALL=rename,
 * rename() of a path that matches (SECURITY-TESTS 39 again).  A $FAILSYNC_PATH ending in
 * '$' matches only paths ending with what comes before it ("intake.db$":
 * the database file, not its WAL).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failsync_calls;

/* Whether the calls of this kind ("sync" or "write") are the ones to
 * fail.  */
static int
failsync_kind (const char *kind)
{
  const char *call = getenv ("FAILSYNC_CALL");

  return strcmp (call != NULL ? call : "sync", kind) == 0;
}

static int
failsync_path_matches (const char *path, const char *want)
{
  size_t w = strlen (want), p = strlen (path);

  if (w > 0 && want[w - 1] == '$')
    return p >= w - 1 && memcmp (path + p - (w - 1), want, w - 1) == 0;
  return strstr (path, want) != NULL;
}

/* Whether this call, on a file at @path, is one of those to fail.  */
static int
failsync_should_fail_path (const char *path)
{
  const char *want = getenv ("FAILSYNC_PATH");
  const char *at = getenv ("FAILSYNC_AT");
  const char *count = getenv ("FAILSYNC_COUNT");
  int k, from, many;

  if (want == NULL || at == NULL || !failsync_path_matches (path, want))
    return 0;
  k = __atomic_add_fetch (&failsync_calls, 1, __ATOMIC_SEQ_CST);
  from = atoi (at);
  many = count ? atoi (count) : 1;
  return k >= from && k < from + many;
}

static int
failsync_should_fail (int fd)
{
  char link[64], path[PATH_MAX];
  ssize_t n;

  if (getenv ("FAILSYNC_PATH") == NULL)
    return 0;
  snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
  n = readlink (link, path, sizeof path - 1);
  if (n <= 0)
    return 0;
  path[n] = '\0';
  return failsync_should_fail_path (path);
}

/* -1 with EIO for a failed call; 0 to go on to libc (after the delay of
 * a slow one).  */
static int
failsync_hit (int fd)
{
  const char *slow = getenv ("FAILSYNC_SLOW_MS");

  if (!failsync_should_fail (fd))
    return 0;
  if (slow != NULL)
    {
      long ms = atol (slow);
      struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
      int saved = errno;

      while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
        ;
      errno = saved;
      return 0;
    }
  errno = EIO;
  return -1;
}

int
fdatasync (int fd)
{
  static int (*real) (int);

  if (real == NULL)
    real = (int (*) (int)) dlsym (RTLD_NEXT, "fdatasync");
  if (failsync_kind ("sync") && failsync_hit (fd) < 0)
    return -1;
  return real (fd);
}

int
fsync (int fd)
{
  static int (*real) (int);

  if (real == NULL)
    real = (int (*) (int)) dlsym (RTLD_NEXT, "fsync");
  if (failsync_kind ("sync") && failsync_hit (fd) < 0)
    return -1;
  return real (fd);
}

ssize_t
pwrite (int fd, const void *buf, size_t n, off_t off)
{
  static ssize_t (*real) (int, const void *, size_t, off_t);

  if (real == NULL)
    real = (ssize_t (*) (int, const void *, size_t, off_t))
        dlsym (RTLD_NEXT, "pwrite");
  if (failsync_kind ("write") && failsync_hit (fd) < 0)
    return -1;
  return real (fd, buf, n, off);
}

ssize_t
pwrite64 (int fd, const void *buf, size_t n, off64_t off)
{
  static ssize_t (*real) (int, const void *, size_t, off64_t);

  if (real == NULL)
    real = (ssize_t (*) (int, const void *, size_t, off64_t))
        dlsym (RTLD_NEXT, "pwrite64");
  if (failsync_kind ("write") && failsync_hit (fd) < 0)
    return -1;
  return real (fd, buf, n, off);
}

int
rename (const char *from, const char *to)
{
  static int (*real) (const char *, const char *);

  if (real == NULL)
    real = (int (*) (const char *, const char *)) dlsym (RTLD_NEXT, "rename");
  if (failsync_kind ("rename") && failsync_should_fail_path (from))
    {
      errno = EIO;
      return -1;
    }
  return real (from, to);
}
