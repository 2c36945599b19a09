/*
 * store_walbuf.c - the writer's WAL file written in runs, not frame by
 * frame.
 *
 * SQLite writes each WAL frame as two pwrite()s, its 24-byte header and
 * then its page, at offsets that are not page aligned: a 4 KiB frame costs
 * two system calls and three page-cache folio updates, and a filing batch
 * writes some three hundred of them (docs/performance.md, "Fifth round").
 * This VFS is the default (unix) one, except that a WAL file opened
 * through it keeps what is written at the end of the last write in a
 * buffer and hands it to the kernel in one pwrite() when the run breaks:
 * before every xSync (so a commit's frames are in the file before the
 * fdatasync that makes them durable, and before the wal-index says they
 * are there), xRead, xTruncate, xFileSize, xFileControl and xClose, a
 * write anywhere else, or a full buffer.  Nothing SQLite relies on
 * changes: what it reads back it reads after a flush, and no other
 * connection looks at frames before the commit's sync has flushed them
 * (SQLite publishes a commit in the wal-index only after syncing it,
 * with synchronous=FULL).  A failed flush is reported by the call that
 * flushed, an I/O error like a failed write (the commit fails, the
 * writer reopens its connection).
 *
 * The checkpointer's connection opens the database through a second VFS,
 * "intake-ckptbuf", that does the same for the database file: a
 * checkpoint copies pages in page order, one pwrite() each, and about
 * seven in a row are neighbours (the overflow pages of one batch's
 * messages), so they go to the kernel as one run.  SQLite syncs the
 * database file (and before that hints SQLITE_FCNTL_CKPT_DONE) after the
 * copy and before it records in the wal-index how far the WAL is copied,
 * so no reader looks for a page in the file before it is written; the
 * buffer is flushed before every xShmLock too.
 *
 * A flush that fails in a call whose answer SQLite may ignore (a
 * file-control hint, releasing a lock) is also kept for the next xSync,
 * which reports it instead of syncing: nothing is ever made "durable"
 * without a write that failed.
 *
 * Owns: the VFSs "intake-walbuf" and "intake-ckptbuf" (registered once,
 * never the default) and each wrapped file's buffer.  Every other file
 * (the database of the writer and of readers, a checkpointer's WAL, the
 * journal of a migration) is the unix VFS's own file, unwrapped.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"

#include <string.h>

/* A run longer than this is written in pieces (a batch of filings writes
 * about 1.2 MiB of frames at 4 KiB pages).  */
#define STORE_WALBUF_BYTES (1024 * 1024)

typedef struct {
  sqlite3_file base;         /* pMethods = &store_walbuf_methods */
  sqlite3_file *real;        /* the unix VFS's file, right after this */
  guint8 *buf;               /* STORE_WALBUF_BYTES */
  gsize len;                 /* bytes held, for [off, off + len) */
  sqlite3_int64 off;
  int failed;                /* a flush's error that SQLite may not have
                              * heard, until an xSync reports it */
} store_walbuf_file;

static sqlite3_vfs store_walbuf_vfs;
static sqlite3_vfs store_ckptbuf_vfs;

static sqlite3_vfs *
store_walbuf_real (void)
{
  return store_walbuf_vfs.pAppData;
}

/* The unix VFS writes at most 128 KiB - 1 in one pwrite() (it masks the
 * length with 0x1ffff: a write of exactly 128 KiB would be a write of
 * nothing, reported as a full disk), so a run goes in pieces below that.  */
#define STORE_WALBUF_PIECE 0x1f000

static int
store_walbuf_flush (store_walbuf_file *f)
{
  gsize done = 0;
  int rc = SQLITE_OK;

  while (rc == SQLITE_OK && done < f->len)
    {
      gsize n = MIN (f->len - done, STORE_WALBUF_PIECE);
      rc = f->real->pMethods->xWrite (f->real, f->buf + done, (int) n,
                                      f->off + (sqlite3_int64) done);
      done += n;
    }
  f->len = 0;
  return rc;
}

/* A flush in a call whose answer SQLite may ignore (a file-control hint,
 * releasing a lock): a failure is also kept for the next xSync.  */
static int
store_walbuf_flush_kept (store_walbuf_file *f)
{
  int rc = store_walbuf_flush (f);

  if (rc != SQLITE_OK && f->failed == SQLITE_OK)
    f->failed = rc;
  return rc;
}

static int
store_walbuf_close (sqlite3_file *file)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc = store_walbuf_flush (f);
  int rc2 = f->real->pMethods->xClose (f->real);

  g_free (f->buf);
  f->buf = NULL;
  return rc != SQLITE_OK ? rc : rc2;
}

static int
store_walbuf_read (sqlite3_file *file, void *p, int amt, sqlite3_int64 off)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc = store_walbuf_flush (f);

  if (rc != SQLITE_OK)
    return rc;
  return f->real->pMethods->xRead (f->real, p, amt, off);
}

static int
store_walbuf_write (sqlite3_file *file, const void *p, int amt,
                    sqlite3_int64 off)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc;

  if (f->len > 0 && off == f->off + (sqlite3_int64) f->len
      && f->len + (gsize) amt <= STORE_WALBUF_BYTES)
    {
      memcpy (f->buf + f->len, p, amt);
      f->len += amt;
      return SQLITE_OK;
    }
  rc = store_walbuf_flush (f);
  if (rc != SQLITE_OK)
    return rc;
  if ((gsize) amt > STORE_WALBUF_PIECE)
    return f->real->pMethods->xWrite (f->real, p, amt, off);
  memcpy (f->buf, p, amt);
  f->len = amt;
  f->off = off;
  return SQLITE_OK;
}

static int
store_walbuf_truncate (sqlite3_file *file, sqlite3_int64 size)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc = store_walbuf_flush (f);

  if (rc != SQLITE_OK)
    return rc;
  return f->real->pMethods->xTruncate (f->real, size);
}

static int
store_walbuf_sync (sqlite3_file *file, int flags)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc = store_walbuf_flush (f);

  /* a kept failure is reported here, once: the caller fails what it was
   * making durable */
  if (rc == SQLITE_OK)
    rc = f->failed;
  f->failed = SQLITE_OK;
  if (rc != SQLITE_OK)
    return rc;
  return f->real->pMethods->xSync (f->real, flags);
}

static int
store_walbuf_file_size (sqlite3_file *file, sqlite3_int64 *size)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc = store_walbuf_flush (f);

  if (rc != SQLITE_OK)
    return rc;
  return f->real->pMethods->xFileSize (f->real, size);
}

static int
store_walbuf_lock (sqlite3_file *file, int level)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  return f->real->pMethods->xLock (f->real, level);
}

static int
store_walbuf_unlock (sqlite3_file *file, int level)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  return f->real->pMethods->xUnlock (f->real, level);
}

static int
store_walbuf_reserved (sqlite3_file *file, int *out)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  return f->real->pMethods->xCheckReservedLock (f->real, out);
}

static int
store_walbuf_file_control (sqlite3_file *file, int op, void *arg)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc = store_walbuf_flush_kept (f);

  if (rc != SQLITE_OK)
    return rc;
  return f->real->pMethods->xFileControl (f->real, op, arg);
}

static int
store_walbuf_sector_size (sqlite3_file *file)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  return f->real->pMethods->xSectorSize (f->real);
}

static int
store_walbuf_device (sqlite3_file *file)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  return f->real->pMethods->xDeviceCharacteristics (f->real);
}

/* A WAL file has no shared memory of its own and is never mapped; a
 * database file (the checkpointer's) has both, and they pass through.  */
static int
store_walbuf_shm_map (sqlite3_file *file, int pg, int pgsz, int extend,
                      void volatile **pp)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  return f->real->pMethods->xShmMap (f->real, pg, pgsz, extend, pp);
}

static int
store_walbuf_shm_lock (sqlite3_file *file, int offset, int n, int flags)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc = store_walbuf_flush_kept (f);

  /* a lock is released whatever the flush did (SQLite pairs them) */
  if (rc != SQLITE_OK && (flags & SQLITE_SHM_LOCK))
    return rc;
  return f->real->pMethods->xShmLock (f->real, offset, n, flags);
}

static void
store_walbuf_shm_barrier (sqlite3_file *file)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  f->real->pMethods->xShmBarrier (f->real);
}

static int
store_walbuf_shm_unmap (sqlite3_file *file, int del)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  return f->real->pMethods->xShmUnmap (f->real, del);
}

static int
store_walbuf_fetch (sqlite3_file *file, sqlite3_int64 off, int amt, void **pp)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc = store_walbuf_flush (f);

  *pp = NULL;
  if (rc != SQLITE_OK)
    return rc;
  return f->real->pMethods->xFetch (f->real, off, amt, pp);
}

static int
store_walbuf_unfetch (sqlite3_file *file, sqlite3_int64 off, void *p)
{
  store_walbuf_file *f = (store_walbuf_file *) file;
  return f->real->pMethods->xUnfetch (f->real, off, p);
}

static const sqlite3_io_methods store_walbuf_methods = {
  3,
  store_walbuf_close,
  store_walbuf_read,
  store_walbuf_write,
  store_walbuf_truncate,
  store_walbuf_sync,
  store_walbuf_file_size,
  store_walbuf_lock,
  store_walbuf_unlock,
  store_walbuf_reserved,
  store_walbuf_file_control,
  store_walbuf_sector_size,
  store_walbuf_device,
  store_walbuf_shm_map,
  store_walbuf_shm_lock,
  store_walbuf_shm_barrier,
  store_walbuf_shm_unmap,
  store_walbuf_fetch,
  store_walbuf_unfetch,
};

static int
store_walbuf_open (sqlite3_vfs *vfs, const char *name, sqlite3_file *file,
                   int flags, int *out_flags)
{
  sqlite3_vfs *real = store_walbuf_real ();
  store_walbuf_file *f = (store_walbuf_file *) file;
  int rc;

  /* Anything but a WAL file (a database file for intake-ckptbuf) is the
   * unix VFS's own, opened in place (this VFS's szOsFile is larger than
   * the unix one's).  */
  if ((flags & (vfs == &store_ckptbuf_vfs ? SQLITE_OPEN_MAIN_DB
                                          : SQLITE_OPEN_WAL)) == 0)
    return real->xOpen (real, name, file, flags, out_flags);
  memset (f, 0, sizeof *f);
  f->real = (sqlite3_file *) (f + 1);
  rc = real->xOpen (real, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK)
    {
      /* SQLite calls xClose only if pMethods is set */
      if (f->real->pMethods != NULL)
        f->real->pMethods->xClose (f->real);
      f->base.pMethods = NULL;
      return rc;
    }
  f->buf = g_malloc (STORE_WALBUF_BYTES);
  f->base.pMethods = &store_walbuf_methods;
  return SQLITE_OK;
}

static int
store_walbuf_delete (sqlite3_vfs *vfs, const char *name, int sync_dir)
{
  return store_walbuf_real ()->xDelete (store_walbuf_real (), name, sync_dir);
}

static int
store_walbuf_access (sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
  return store_walbuf_real ()->xAccess (store_walbuf_real (), name, flags,
                                        out);
}

static int
store_walbuf_full_pathname (sqlite3_vfs *vfs, const char *name, int n,
                            char *out)
{
  return store_walbuf_real ()->xFullPathname (store_walbuf_real (), name, n,
                                              out);
}

static void *
store_walbuf_dl_open (sqlite3_vfs *vfs, const char *name)
{
  return store_walbuf_real ()->xDlOpen (store_walbuf_real (), name);
}

static void
store_walbuf_dl_error (sqlite3_vfs *vfs, int n, char *msg)
{
  store_walbuf_real ()->xDlError (store_walbuf_real (), n, msg);
}

static void (*store_walbuf_dl_sym (sqlite3_vfs *vfs, void *h,
                                   const char *sym)) (void)
{
  return store_walbuf_real ()->xDlSym (store_walbuf_real (), h, sym);
}

static void
store_walbuf_dl_close (sqlite3_vfs *vfs, void *h)
{
  store_walbuf_real ()->xDlClose (store_walbuf_real (), h);
}

static int
store_walbuf_randomness (sqlite3_vfs *vfs, int n, char *out)
{
  return store_walbuf_real ()->xRandomness (store_walbuf_real (), n, out);
}

static int
store_walbuf_sleep (sqlite3_vfs *vfs, int us)
{
  return store_walbuf_real ()->xSleep (store_walbuf_real (), us);
}

static int
store_walbuf_current_time (sqlite3_vfs *vfs, double *t)
{
  return store_walbuf_real ()->xCurrentTime (store_walbuf_real (), t);
}

static int
store_walbuf_last_error (sqlite3_vfs *vfs, int n, char *msg)
{
  return store_walbuf_real ()->xGetLastError (store_walbuf_real (), n, msg);
}

static int
store_walbuf_current_time64 (sqlite3_vfs *vfs, sqlite3_int64 *t)
{
  return store_walbuf_real ()->xCurrentTimeInt64 (store_walbuf_real (), t);
}

static gsize store_walbuf_once;

const char *
store_walbuf_vfs_name (void)
{
  if (g_once_init_enter (&store_walbuf_once))
    {
      sqlite3_vfs *real = sqlite3_vfs_find (NULL);
      int rc;

      g_assert (real != NULL && real->iVersion >= 2);
      store_walbuf_vfs.iVersion = 2;
      store_walbuf_vfs.szOsFile = (int) sizeof (store_walbuf_file)
                                  + real->szOsFile;
      store_walbuf_vfs.mxPathname = real->mxPathname;
      store_walbuf_vfs.zName = "intake-walbuf";
      store_walbuf_vfs.pAppData = real;
      store_walbuf_vfs.xOpen = store_walbuf_open;
      store_walbuf_vfs.xDelete = store_walbuf_delete;
      store_walbuf_vfs.xAccess = store_walbuf_access;
      store_walbuf_vfs.xFullPathname = store_walbuf_full_pathname;
      store_walbuf_vfs.xDlOpen = store_walbuf_dl_open;
      store_walbuf_vfs.xDlError = store_walbuf_dl_error;
      store_walbuf_vfs.xDlSym = store_walbuf_dl_sym;
      store_walbuf_vfs.xDlClose = store_walbuf_dl_close;
      store_walbuf_vfs.xRandomness = store_walbuf_randomness;
      store_walbuf_vfs.xSleep = store_walbuf_sleep;
      store_walbuf_vfs.xCurrentTime = store_walbuf_current_time;
      store_walbuf_vfs.xGetLastError = store_walbuf_last_error;
      store_walbuf_vfs.xCurrentTimeInt64 = store_walbuf_current_time64;
      rc = sqlite3_vfs_register (&store_walbuf_vfs, 0);
      g_assert (rc == SQLITE_OK);
      store_ckptbuf_vfs = store_walbuf_vfs;
      store_ckptbuf_vfs.zName = "intake-ckptbuf";
      store_ckptbuf_vfs.pNext = NULL;
      rc = sqlite3_vfs_register (&store_ckptbuf_vfs, 0);
      g_assert (rc == SQLITE_OK);
      g_once_init_leave (&store_walbuf_once, 1);
    }
  return store_walbuf_vfs.zName;
}

const char *
store_ckptbuf_vfs_name (void)
{
  store_walbuf_vfs_name ();
  return store_ckptbuf_vfs.zName;
}
