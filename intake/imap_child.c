/*
 * imap_child.c - take every message of one IMAP folder exactly once.
 *
 * Owns: the mailbox's credentials (read before privileges are dropped),
 * one libetpan session, the IPC descriptor (blocking: one request, one
 * answer).  Refuses: certificates that do not verify for the configured
 * host, servers without STARTTLS when it is required, bodies whose length
 * differs from RFC822.SIZE, messages over [smtp] max_message_size.
 * Logs say which mailbox and what happened; never an address or a subject.
 */
#define G_LOG_DOMAIN "intake-imap"

#include "intake/imap_child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <gio/gio.h>
#include <libetpan/libetpan.h>

#include "intake/etpan_tls.h"
#include "intake/ipc.h"

#define IMAP_CHUNK            500       /* UIDs whose sizes are asked at once */
#define IMAP_CHUNK_BYTES      (16 * 1024 * 1024) /* bodies fetched at once */
#define IMAP_TIMEOUT_S        60        /* network timeout per command */
#define IMAP_BACKOFF_FIRST_MS 1000
#define IMAP_BACKOFF_MAX_MS   (5 * 60 * 1000)
#define IMAP_RESULT_WAIT_MS   (120 * 1000)
#define IMAP_TOKEN_WARN_S     (7 * 24 * 3600)
#define IMAP_TAKEN_KEYWORD    "$IntakeTaken"
#define IMAP_OUT_FLUSH        (256 * 1024) /* frames written at once */

struct imap_child {
  intake_config *cfg;
  const intake_imap_config *mb;
  int ipc;
  char *secret;               /* password or bearer token */
  gint64 token_expires;       /* unix seconds, 0: unknown / password */
  mailimap *imap;
  guint64 next_req;
  gboolean can_move, can_uidplus, can_idle;
  gint64 backlog;
  guint backoff_ms;
  GTlsDatabase *tls_db;       /* the configured CA or the system store,
                               * read before privileges are dropped */
  GByteArray *out;            /* frames not yet written to the master */
  struct imap_flight *flight; /* (nullable) sent, answers not all read */
};
typedef struct imap_child imap_ctx;

/* --------------------------------------------------------------- IPC */

static gboolean
imap_write_all (int fd, const void *p, gsize n)
{
  const guint8 *b = p;

  while (n > 0)
    {
      ssize_t w = write (fd, b, n);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return FALSE;
      b += w;
      n -= w;
    }
  return TRUE;
}

/* Frames queued with imap_queue go out together: one write for many
 * messages, not two per message.  */
static gboolean
imap_flush (imap_ctx *c)
{
  gboolean ok;

  if (c->out == NULL || c->out->len == 0)
    return TRUE;
  ok = imap_write_all (c->ipc, c->out->data, c->out->len);
  g_byte_array_set_size (c->out, 0);
  return ok;
}

static gboolean
imap_queue (imap_ctx *c, guint8 type, GBytes *payload)
{
  gsize n;
  const void *p = g_bytes_get_data (payload, &n);
  guint32 len = GUINT32_TO_BE ((guint32) (n + 1));
  guint8 hdr[5];

  memcpy (hdr, &len, 4);
  hdr[4] = type;
  if (c->out == NULL)
    c->out = g_byte_array_new ();
  g_byte_array_append (c->out, hdr, 5);
  g_byte_array_append (c->out, p, n);
  return c->out->len < IMAP_OUT_FLUSH || imap_flush (c);
}

static gboolean
imap_send (imap_ctx *c, guint8 type, GBytes *payload)
{
  return imap_queue (c, type, payload) && imap_flush (c);
}

static gboolean
imap_read_all (int fd, void *p, gsize n, int timeout_ms)
{
  guint8 *b = p;

  while (n > 0)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      int r = poll (&pfd, 1, timeout_ms);
      ssize_t got;

      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return FALSE;
      got = read (fd, b, n);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        return FALSE;
      b += got;
      n -= got;
    }
  return TRUE;
}

/* The next answer of the master: request id and status; FALSE if it went
 * away.  */
static gboolean
imap_read_result (imap_ctx *c, guint64 *req, ipc_status *status)
{
  for (;;)
    {
      guint8 hdr[5];
      guint32 len;
      g_autofree guint8 *buf = NULL;
      g_autoptr (GBytes) payload = NULL;
      g_autofree char *qid = NULL;

      if (!imap_read_all (c->ipc, hdr, 5, IMAP_RESULT_WAIT_MS))
        return FALSE;
      memcpy (&len, hdr, 4);
      len = GUINT32_FROM_BE (len);
      if (len < 1 || len > 4096)
        return FALSE;
      buf = g_malloc (len);
      if (!imap_read_all (c->ipc, buf, len - 1, IMAP_RESULT_WAIT_MS))
        return FALSE;
      if (hdr[4] != IPC_RESULT)
        continue;                  /* STORAGE and the like: not ours */
      payload = g_bytes_new (buf, len - 1);
      return ipc_result_unpack (payload, req, status, &qid);
    }
}

static void
imap_status (imap_ctx *c, const char *state, const char *error)
{
  g_autoptr (GBytes) b = ipc_imap_status_pack (state, error, c->backlog,
                                               c->token_expires);

  imap_send (c, IPC_IMAP_STATUS, b);
}

/* ------------------------------------------------------- credentials */

/* A secret file: a regular file, no access for group or other.  */
static char *
imap_read_secret (const char *path, gint64 *expires, GError **error)
{
  g_autofree char *text = NULL;
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  char *nl;

  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                   "%s: %s", path, fd < 0 ? g_strerror (errno)
                                          : "not a regular file");
      if (fd >= 0)
        close (fd);
      return NULL;
    }
  close (fd);
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                   "%s: mode %03o gives access to group or other; it must be"
                   " 0600", path, (unsigned) (st.st_mode & 0777));
      return NULL;
    }
  if (!g_file_get_contents (path, &text, NULL, error))
    return NULL;
  nl = strchr (text, '\n');
  if (nl != NULL)
    {
      *nl = '\0';
      if (expires)
        *expires = g_ascii_strtoll (nl + 1, NULL, 10);
    }
  g_strchomp (text);
  if (*text == '\0')
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s is empty",
                   path);
      return NULL;
    }
  return g_steal_pointer (&text);
}

/* --------------------------------------------------------------- TLS */

static void
imap_ssl_setup (struct mailstream_ssl_context *ssl, void *data)
{
  imap_ctx *c = data;

  mailstream_ssl_set_server_name (ssl, c->mb->host);
}

/* The server's chain against the system store (or the configured CA),
 * host name included: libetpan checks nothing itself.  */
static gboolean
imap_verify (imap_ctx *c, GError **error)
{
  return etpan_tls_verify (c->imap->imap_stream, c->tls_db, c->mb->host,
                           (guint16) c->mb->port, error);
}

/* ----------------------------------------------------------- session */

static gboolean
imap_ok (int r)
{
  return r == MAILIMAP_NO_ERROR || r == MAILIMAP_NO_ERROR_AUTHENTICATED
         || r == MAILIMAP_NO_ERROR_NON_AUTHENTICATED;
}

static void
imap_disconnect (imap_ctx *c)
{
  if (c->imap == NULL)
    return;
  mailimap_free (c->imap);
  c->imap = NULL;
}

/* Connect, verify, log in, open the folder.  @why gets a word for the
 * status on failure.  */
static gboolean
imap_connect (imap_ctx *c, const char **why)
{
  const intake_imap_config *mb = c->mb;
  g_autoptr (GError) error = NULL;
  int r;

  c->imap = mailimap_new (0, NULL);
  mailimap_set_timeout (c->imap, IMAP_TIMEOUT_S);
  if (mb->tls == INTAKE_IMAP_TLS_IMPLICIT)
    r = mailimap_ssl_connect_with_callback (c->imap, mb->host, mb->port,
                                            imap_ssl_setup, c);
  else
    r = mailimap_socket_connect (c->imap, mb->host, mb->port);
  if (!imap_ok (r))
    {
      *why = "connect-failed";
      g_warning ("event=imap-connect-failed mailbox=%s code=%d", mb->name, r);
      return FALSE;
    }
  if (mb->tls == INTAKE_IMAP_TLS_STARTTLS)
    {
      struct mailimap_capability_data *caps = NULL;
      if (mailimap_capability (c->imap, &caps) == MAILIMAP_NO_ERROR)
        mailimap_capability_data_free (caps);
      if (!mailimap_has_extension (c->imap, "STARTTLS"))
        {
          /* no silent fallback to plaintext (SECURITY-TESTS 78) */
          *why = "no-starttls";
          g_warning ("event=imap-no-starttls mailbox=%s: the server does not"
                     " offer STARTTLS; not logging in", mb->name);
          return FALSE;
        }
      r = mailimap_socket_starttls_with_callback (c->imap, imap_ssl_setup,
                                                  c);
      /* plaintext the server sent after its OK must not be read as if it
       * came over TLS (SECURITY-TESTS 76) */
      if (r != MAILIMAP_NO_ERROR || c->imap->imap_stream == NULL
          || c->imap->imap_stream->read_buffer_len != 0)
        {
          *why = "starttls-failed";
          g_warning ("event=imap-starttls-failed mailbox=%s code=%d",
                     mb->name, r);
          return FALSE;
        }
    }
  if (mb->tls != INTAKE_IMAP_TLS_PLAIN && !imap_verify (c, &error))
    {
      *why = "tls-verify-failed";
      g_warning ("event=imap-tls-refused mailbox=%s error=%s", mb->name,
                 error->message);
      return FALSE;
    }
  if (mb->token_file != NULL)
    r = mailimap_oauth2_authenticate (c->imap, mb->user, c->secret);
  else
    r = mailimap_login (c->imap, mb->user, c->secret);
  if (r != MAILIMAP_NO_ERROR)
    {
      *why = mb->token_file ? "token-rejected" : "login-failed";
      if (mb->token_file)
        g_critical ("event=imap-token-rejected mailbox=%s: the OAuth token"
                    " was refused; replace %s", mb->name, mb->token_file);
      else
        g_warning ("event=imap-login-failed mailbox=%s code=%d", mb->name, r);
      return FALSE;
    }
  {
    struct mailimap_capability_data *caps = NULL;
    if (mailimap_capability (c->imap, &caps) == MAILIMAP_NO_ERROR)
      mailimap_capability_data_free (caps);
  }
  c->can_move = mailimap_has_extension (c->imap, "MOVE");
  c->can_uidplus = mailimap_has_uidplus (c->imap);
  c->can_idle = mailimap_has_idle (c->imap);
  if (c->can_move || c->can_uidplus)
    mailimap_create (c->imap, mb->processed_folder);  /* exists: fine */
  r = mailimap_select (c->imap, mb->folder);
  if (r != MAILIMAP_NO_ERROR || c->imap->imap_selection_info == NULL
      || c->imap->imap_selection_info->sel_uidvalidity == 0)
    {
      *why = "select-failed";
      g_warning ("event=imap-select-failed mailbox=%s code=%d", mb->name, r);
      return FALSE;
    }
  g_message ("event=imap-connected mailbox=%s move=%d uidplus=%d idle=%d",
             mb->name, c->can_move, c->can_uidplus, c->can_idle);
  return TRUE;
}

static gint
imap_uid_cmp (gconstpointer a, gconstpointer b)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;

  return x < y ? -1 : x > y;
}

/* UIDs waiting in the folder, ascending.  UID FETCH 1:* (UID FLAGS), not
 * SEARCH: every server has it, and the keyword (when neither MOVE nor
 * UIDPLUS) is filtered here.  */
static GArray *
imap_pending (imap_ctx *c, int *r)
{
  GArray *uids = g_array_new (FALSE, FALSE, sizeof (guint32));
  struct mailimap_fetch_type *ft;
  struct mailimap_set *set;
  gboolean keyword = !(c->can_move || c->can_uidplus);
  clist *result = NULL;

  if (c->imap->imap_selection_info != NULL
      && c->imap->imap_selection_info->sel_has_exists
      && c->imap->imap_selection_info->sel_exists == 0)
    {
      *r = MAILIMAP_NO_ERROR;
      return uids;
    }
  set = mailimap_set_new_interval (1, 0);     /* 1:* */
  ft = mailimap_fetch_type_new_fetch_att_list_empty ();
  mailimap_fetch_type_new_fetch_att_list_add (ft, mailimap_fetch_att_new_uid ());
  if (keyword)
    mailimap_fetch_type_new_fetch_att_list_add (ft,
        mailimap_fetch_att_new_flags ());
  *r = mailimap_uid_fetch (c->imap, set, ft, &result);
  mailimap_fetch_type_free (ft);
  mailimap_set_free (set);
  if (*r != MAILIMAP_NO_ERROR)
    return uids;
  for (clistiter *it = clist_begin (result); it; it = clist_next (it))
    {
      struct mailimap_msg_att *att = clist_content (it);
      guint32 uid = 0;
      gboolean taken = FALSE;

      for (clistiter *jt = clist_begin (att->att_list); jt;
           jt = clist_next (jt))
        {
          struct mailimap_msg_att_item *item = clist_content (jt);
          if (item->att_type == MAILIMAP_MSG_ATT_ITEM_STATIC
              && item->att_data.att_static->att_type == MAILIMAP_MSG_ATT_UID)
            uid = item->att_data.att_static->att_data.att_uid;
          else if (item->att_type == MAILIMAP_MSG_ATT_ITEM_DYNAMIC
                   && item->att_data.att_dyn != NULL
                   && item->att_data.att_dyn->att_list != NULL)
            for (clistiter *k = clist_begin (item->att_data.att_dyn->att_list);
                 k; k = clist_next (k))
              {
                struct mailimap_flag_fetch *ff = clist_content (k);
                if (ff->fl_type == MAILIMAP_FLAG_FETCH_OTHER
                    && ff->fl_flag != NULL
                    && ff->fl_flag->fl_type == MAILIMAP_FLAG_KEYWORD
                    && g_ascii_strcasecmp (ff->fl_flag->fl_data.fl_keyword,
                                           IMAP_TAKEN_KEYWORD) == 0)
                  taken = TRUE;
              }
        }
      if (uid != 0 && !taken)
        g_array_append_val (uids, uid);
    }
  mailimap_fetch_list_free (result);
  /* the server's order is not promised: oldest first */
  g_array_sort (uids, imap_uid_cmp);
  return uids;
}

static struct mailimap_set *
imap_set_of (const guint32 *uids, guint n)
{
  struct mailimap_set *set = mailimap_set_new_empty ();

  /* runs of consecutive UIDs as ranges (a:b): ascending input, as
   * imap_pending gives it, makes short commands */
  for (guint i = 0; i < n;)
    {
      guint j = i;
      while (j + 1 < n && uids[j + 1] == uids[j] + 1)
        j++;
      if (j == i)
        mailimap_set_add_single (set, uids[i]);
      else
        mailimap_set_add_interval (set, uids[i], uids[j]);
      i = j + 1;
    }
  return set;
}

/* Taken messages leave the folder.  */
static int
imap_move (imap_ctx *c, const guint32 *uids, guint n)
{
  struct mailimap_set *set;
  int r;

  if (n == 0)
    return MAILIMAP_NO_ERROR;
  set = imap_set_of (uids, n);
  if (c->can_move)
    r = mailimap_uid_move (c->imap, set, c->mb->processed_folder);
  else if (c->can_uidplus)
    {
      struct mailimap_flag_list *fl = mailimap_flag_list_new_empty ();
      struct mailimap_store_att_flags *sa;
      mailimap_flag_list_add (fl, mailimap_flag_new_deleted ());
      sa = mailimap_store_att_flags_new_add_flags_silent (fl);
      r = mailimap_uid_copy (c->imap, set, c->mb->processed_folder);
      if (r == MAILIMAP_NO_ERROR)
        r = mailimap_uid_store (c->imap, set, sa);
      if (r == MAILIMAP_NO_ERROR)
        r = mailimap_uid_expunge (c->imap, set);
      mailimap_store_att_flags_free (sa);
    }
  else
    {
      struct mailimap_flag_list *fl = mailimap_flag_list_new_empty ();
      struct mailimap_store_att_flags *sa;
      mailimap_flag_list_add (fl, mailimap_flag_new_flag_keyword (
                                      g_strdup (IMAP_TAKEN_KEYWORD)));
      sa = mailimap_store_att_flags_new_add_flags_silent (fl);
      r = mailimap_uid_store (c->imap, set, sa);
      mailimap_store_att_flags_free (sa);
    }
  mailimap_set_free (set);
  return r;
}

typedef struct {
  guint32 uid;
  guint32 size;
  const char *body;
  gsize len;
  gboolean have_size, have_body;
} imap_msg;

static void
imap_msg_read (struct mailimap_msg_att *att, imap_msg *m)
{
  memset (m, 0, sizeof *m);
  for (clistiter *it = clist_begin (att->att_list); it; it = clist_next (it))
    {
      struct mailimap_msg_att_item *item = clist_content (it);
      struct mailimap_msg_att_static *s;

      if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
        continue;
      s = item->att_data.att_static;
      switch (s->att_type)
        {
        case MAILIMAP_MSG_ATT_UID:
          m->uid = s->att_data.att_uid;
          break;
        case MAILIMAP_MSG_ATT_RFC822_SIZE:
          m->size = s->att_data.att_rfc822_size;
          m->have_size = TRUE;
          break;
        case MAILIMAP_MSG_ATT_BODY_SECTION:
          if (s->att_data.att_body_section != NULL)
            {
              m->body = s->att_data.att_body_section->sec_body_part;
              m->len = s->att_data.att_body_section->sec_length;
              m->have_body = m->body != NULL;
            }
          break;
        default:
          break;
        }
    }
}

/* Sizes first: what is over the limit is never fetched.  */
static int
imap_sizes (imap_ctx *c, const guint32 *uids, guint n, GArray *ok)
{
  struct mailimap_set *set = imap_set_of (uids, n);
  struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty ();
  clist *result = NULL;
  int r;

  mailimap_fetch_type_new_fetch_att_list_add (ft, mailimap_fetch_att_new_uid ());
  mailimap_fetch_type_new_fetch_att_list_add (ft,
      mailimap_fetch_att_new_rfc822_size ());
  r = mailimap_uid_fetch (c->imap, set, ft, &result);
  mailimap_fetch_type_free (ft);
  mailimap_set_free (set);
  if (r != MAILIMAP_NO_ERROR)
    return r;
  for (clistiter *it = clist_begin (result); it; it = clist_next (it))
    {
      imap_msg m;
      imap_msg_read (clist_content (it), &m);
      if (m.uid == 0 || !m.have_size)
        continue;
      if (m.size > c->cfg->session.max_message)
        {
          g_warning ("event=imap-too-large mailbox=%s uid=%u size=%u limit=%"
                     G_GSIZE_FORMAT ": left on the server", c->mb->name,
                     m.uid, m.size, (gsize) c->cfg->session.max_message);
          imap_status (c, "fetching", "too-large");
          continue;
        }
      guint32 pair[2] = { m.uid, m.size };
      g_array_append_vals (ok, pair, 1);
    }
  mailimap_fetch_list_free (result);
  return MAILIMAP_NO_ERROR;
}

/* A group of messages whose frames went to the master and whose answers
 * have not all been read.  Its messages leave the folder only once every
 * answer is in: the move waits for the commit (exactly once).  Meanwhile
 * the next group is fetched, so the server's work and the master's commit
 * overlap instead of taking turns.  */
typedef struct imap_flight {
  GArray *uids;               /* guint32, in request order */
  guint64 first_req;          /* request id of uids[0]; the rest follow */
  ipc_status *status;         /* per uid, once answered */
  gboolean *have;
  guint answered;
} imap_flight;

static void
imap_flight_free (imap_flight **fp)
{
  imap_flight *f = *fp;

  if (f == NULL)
    return;
  g_array_unref (f->uids);
  g_free (f->status);
  g_free (f->have);
  g_free (f);
  *fp = NULL;
}

/* Record an answer in whichever of @a, @b (nullable) sent it.  An answer
 * for neither is not ours (nothing else is outstanding) and is dropped.  */
static void
imap_flight_note (imap_flight *a, imap_flight *b, guint64 req,
                  ipc_status status)
{
  imap_flight *fs[2] = { a, b };

  for (guint i = 0; i < 2; i++)
    {
      imap_flight *f = fs[i];
      if (f == NULL || req < f->first_req
          || req - f->first_req >= f->uids->len || f->have[req - f->first_req])
        continue;
      f->have[req - f->first_req] = TRUE;
      f->status[req - f->first_req] = status;
      f->answered++;
      return;
    }
}

/* Read answers until every one of @f is in; answers for @other (the group
 * sent after it, nullable) are recorded there.  FALSE if the master went
 * away.  */
static gboolean
imap_flight_wait (imap_ctx *c, imap_flight *f, imap_flight *other)
{
  if (!imap_flush (c))
    return FALSE;
  while (f->answered < f->uids->len)
    {
      guint64 req;
      ipc_status status;

      if (!imap_read_result (c, &req, &status))
        return FALSE;
      imap_flight_note (f, other, req, status);
    }
  return TRUE;
}

/* Every answer of @f is in: move what the master committed (or had
 * committed before).  FALSE on a session error (@r).  */
static gboolean
imap_flight_settle (imap_ctx *c, imap_flight *f, int *r)
{
  g_autoptr (GArray) taken = g_array_new (FALSE, FALSE, sizeof (guint32));

  for (guint k = 0; k < f->uids->len; k++)
    {
      guint32 uid = g_array_index (f->uids, guint32, k);
      if (f->status[k] == IPC_STATUS_COMMITTED
          || f->status[k] == IPC_STATUS_DUPLICATE)
        g_array_append_val (taken, uid);
      else
        /* storage trouble on our side: left on the server, tried again
         * later */
        g_warning ("event=imap-store-deferred mailbox=%s uid=%u status=%d",
                   c->mb->name, uid, f->status[k]);
    }
  *r = imap_move (c, (const guint32 *) taken->data, taken->len);
  if (*r != MAILIMAP_NO_ERROR)
    return FALSE;
  c->backlog = MAX (0, c->backlog - (gint64) taken->len);
  return TRUE;
}

/* The group in flight, if any: its answers read and, when @move, its
 * messages moved.  Without @move (the session failed) they stay on the
 * server; the next session finds their checkpoints and moves them then.
 * FALSE if the master went away (@r = 0) or the move failed (@r).  */
static gboolean
imap_land (imap_ctx *c, gboolean move, int *r)
{
  gboolean ok;

  if (c->flight == NULL)
    return TRUE;
  if (!move)
    g_message ("event=imap-flight-left mailbox=%s messages=%u: the session"
               " ended; they stay in the folder, and those committed are"
               " moved by the next session", c->mb->name,
               c->flight->uids->len);
  if (!imap_flight_wait (c, c->flight, NULL))
    {
      imap_flight_free (&c->flight);
      *r = 0;
      return FALSE;
    }
  ok = !move || imap_flight_settle (c, c->flight, r);
  imap_flight_free (&c->flight);
  return ok;
}

/* Fetch the bodies of @uids (@n, sizes already checked) in one UID FETCH
 * and queue each to the master.  NULL on a session error (@r) or if the
 * master went away (@r = 0).  */
static imap_flight *
imap_flight_send (imap_ctx *c, const guint32 *uids, guint n, int *r)
{
  struct mailimap_fetch_type *ft;
  struct mailimap_set *set;
  clist *result = NULL;
  guint32 uidvalidity = c->imap->imap_selection_info->sel_uidvalidity;
  imap_flight *f;

  set = imap_set_of (uids, n);
  ft = mailimap_fetch_type_new_fetch_att_list_empty ();
  mailimap_fetch_type_new_fetch_att_list_add (ft, mailimap_fetch_att_new_uid ());
  mailimap_fetch_type_new_fetch_att_list_add (ft,
      mailimap_fetch_att_new_rfc822_size ());
  /* the bytes as they are, never the server's parse of them */
  mailimap_fetch_type_new_fetch_att_list_add (ft,
      mailimap_fetch_att_new_body_peek_section (mailimap_section_new (NULL)));
  *r = mailimap_uid_fetch (c->imap, set, ft, &result);
  mailimap_fetch_type_free (ft);
  mailimap_set_free (set);
  if (*r != MAILIMAP_NO_ERROR)
    return NULL;

  /* Every message of the group to the master at once, so that the writer
   * commits them together (one fsync, not hundreds).  */
  f = g_new0 (imap_flight, 1);
  f->uids = g_array_new (FALSE, FALSE, sizeof (guint32));
  f->first_req = c->next_req + 1;
  for (clistiter *it = clist_begin (result); it; it = clist_next (it))
    {
      imap_msg m;
      store_envelope *env;
      g_autoptr (GBytes) raw = NULL;
      g_autoptr (GBytes) frame = NULL;

      imap_msg_read (clist_content (it), &m);
      if (m.uid == 0 || !m.have_body)
        continue;
      /* a literal the parser mis-read (2^32 bytes and more) or a lying
       * server: refused, left where it is (SECURITY-TESTS 81) */
      if (!m.have_size || m.len != m.size
          || m.len > c->cfg->session.max_message)
        {
          g_warning ("event=imap-size-mismatch mailbox=%s uid=%u declared=%u"
                     " got=%" G_GSIZE_FORMAT ": refused", c->mb->name, m.uid,
                     m.size, m.len);
          imap_status (c, "fetching", "size-mismatch");
          continue;
        }
      env = store_envelope_new ();
      env->source = g_strdup ("imap");
      env->client_addr = g_strdup (c->mb->host);
      env->helo = g_strdup ("");
      env->mail_from = g_strdup ("");
      g_ptr_array_add (env->rcpts, g_strdup (c->mb->recipient));
      env->tls = c->mb->tls != INTAKE_IMAP_TLS_PLAIN;
      env->received_at = g_get_real_time ();
      raw = g_bytes_new (m.body, m.len);
      frame = ipc_imap_submit_pack (++c->next_req, uidvalidity, m.uid, env,
                                    raw);
      store_envelope_free (env);
      g_array_append_val (f->uids, m.uid);
      if (!imap_queue (c, IPC_IMAP_SUBMIT, frame))
        {
          mailimap_fetch_list_free (result);
          imap_flight_free (&f);
          *r = 0;
          return NULL;
        }
    }
  mailimap_fetch_list_free (result);
  if (!imap_flush (c))
    {
      imap_flight_free (&f);
      *r = 0;
      return NULL;
    }
  f->status = g_new0 (ipc_status, f->uids->len + 1);
  f->have = g_new0 (gboolean, f->uids->len + 1);
  return f;
}

/* @uids: sizes first (nothing over the limit is fetched), then bodies in
 * groups of at most IMAP_CHUNK_BYTES.  Each group is sent before the one
 * in flight is landed (its answers read, its messages moved); the last
 * group stays in flight for the caller's imap_land.  FALSE on a session
 * error (@r) or if the master went away (@r = 0).  */
static gboolean
imap_take (imap_ctx *c, const guint32 *uids, guint n, int *r)
{
  g_autoptr (GArray) ok = g_array_new (FALSE, FALSE, 2 * sizeof (guint32));
  g_autoptr (GArray) group = g_array_new (FALSE, FALSE, sizeof (guint32));
  gsize bytes = 0;

  *r = imap_sizes (c, uids, n, ok);
  if (*r != MAILIMAP_NO_ERROR)
    return FALSE;
  for (guint i = 0; i <= ok->len; i++)
    {
      const guint32 *pair = i < ok->len
                                ? (const guint32 *) ok->data + 2 * i : NULL;
      if (group->len > 0
          && (pair == NULL || bytes + pair[1] > IMAP_CHUNK_BYTES))
        {
          imap_flight *f = imap_flight_send (c, (const guint32 *) group->data,
                                             group->len, r);
          if (f == NULL)
            return FALSE;
          /* the group before: its answers (those of @f noted on the way),
           * then its move, while the master commits @f */
          if (c->flight != NULL && !imap_flight_wait (c, c->flight, f))
            {
              imap_flight_free (&f);
              *r = 0;
              return FALSE;
            }
          if (c->flight != NULL && !imap_flight_settle (c, c->flight, r))
            {
              imap_flight_free (&c->flight);
              c->flight = f;
              return FALSE;
            }
          imap_flight_free (&c->flight);
          c->flight = f;
          g_array_set_size (group, 0);
          bytes = 0;
        }
      if (pair != NULL)
        {
          g_array_append_val (group, pair[0]);
          bytes += pair[1];
        }
    }
  return TRUE;
}

/* Wait for new mail: IDLE or a poll interval; FALSE if the master went
 * away.  */
static gboolean
imap_wait (imap_ctx *c, int *r)
{
  struct pollfd pfd[2] = { { c->ipc, POLLIN, 0 }, { -1, POLLIN, 0 } };
  guint timeout_s = c->mb->poll_interval_s;
  int n;

  *r = MAILIMAP_NO_ERROR;
  if (c->mb->idle && c->can_idle)
    {
      *r = mailimap_idle (c->imap);
      if (*r != MAILIMAP_NO_ERROR)
        return TRUE;
      pfd[1].fd = mailimap_idle_get_fd (c->imap);
      timeout_s = c->mb->idle_refresh_s;   /* RFC 2177: re-issue < 29 min */
      imap_status (c, "idle", NULL);
    }
  else
    imap_status (c, "polling", NULL);
  do
    n = poll (pfd, pfd[1].fd >= 0 ? 2 : 1, timeout_s * 1000);
  while (n < 0 && errno == EINTR);
  if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
    {
      /* the master writes nothing unasked: this is its end */
      char b;
      if (read (c->ipc, &b, 1) <= 0)
        return FALSE;
    }
  if (pfd[1].fd >= 0)
    *r = mailimap_idle_done (c->imap);
  else
    *r = mailimap_noop (c->imap);
  return TRUE;
}

/* ------------------------------------------------------------- main */

static void
imap_backoff (imap_ctx *c)
{
  /* exponential with +-25% jitter, so many mailboxes do not reconnect in
   * step after a server restart */
  guint ms = c->backoff_ms;
  gint32 jitter = g_random_int_range (-(gint32) ms / 4, (gint32) ms / 4 + 1);
  struct pollfd pfd = { c->ipc, POLLIN, 0 };

  g_message ("event=imap-retry mailbox=%s in_ms=%d", c->mb->name,
             (int) ms + jitter);
  if (poll (&pfd, 1, (int) ms + jitter) > 0)
    {
      char b;
      if (read (c->ipc, &b, 1) <= 0)
        _exit (0);
    }
  c->backoff_ms = MIN (c->backoff_ms * 2, IMAP_BACKOFF_MAX_MS);
}

imap_child *
imap_child_new (intake_config *cfg, const char *name, int ipc_fd,
                GError **error)
{
  const intake_imap_config *mb = intake_config_imap (cfg, name);
  imap_child *c;

  if (mb == NULL)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                   "no [imap %s] in the configuration", name);
      return NULL;
    }
  c = g_new0 (imap_child, 1);
  c->cfg = cfg;
  c->mb = mb;
  c->ipc = ipc_fd;
  c->backoff_ms = IMAP_BACKOFF_FIRST_MS;
  c->secret = imap_read_secret (mb->token_file ? mb->token_file
                                               : mb->password_file,
                                mb->token_file ? &c->token_expires : NULL,
                                error);
  if (c->secret == NULL)
    {
      g_free (c);
      return NULL;
    }
  if (mb->tls != INTAKE_IMAP_TLS_PLAIN)
    {
      if (mb->ca_file != NULL)
        c->tls_db = g_tls_file_database_new (mb->ca_file, error);
      else
        c->tls_db = g_tls_backend_get_default_database (
            g_tls_backend_get_default ());
      if (c->tls_db == NULL)
        {
          if (error && *error == NULL)
            g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_MISC,
                         "no certificate store");
          memset (c->secret, 0, strlen (c->secret));
          g_free (c->secret);
          g_free (c);
          return NULL;
        }
    }
  return c;
}

void
imap_child_report (intake_config *cfg, int ipc_fd, const char *word)
{
  imap_child c = { 0 };

  c.cfg = cfg;
  c.ipc = ipc_fd;
  imap_status (&c, "error", word);
}

int
imap_child_run (imap_child *ch)
{
  imap_ctx c = *ch;
  const intake_imap_config *mb = c.mb;

  g_free (ch);
  for (;;)
    {
      const char *why = "session";
      int r = MAILIMAP_NO_ERROR;

      if (c.token_expires > 0
          && c.token_expires - g_get_real_time () / G_USEC_PER_SEC
                 < IMAP_TOKEN_WARN_S)
        {
          g_critical ("event=imap-token-expiring mailbox=%s expires=%"
                      G_GINT64_FORMAT ": renew %s now", mb->name,
                      c.token_expires, mb->token_file);
          imap_status (&c, "connecting", "token-expiring");
        }
      else
        imap_status (&c, "connecting", NULL);
      if (imap_connect (&c, &why))
        {
          c.backoff_ms = IMAP_BACKOFF_FIRST_MS;
          for (;;)
            {
              g_autoptr (GArray) uids = imap_pending (&c, &r);
              if (r != MAILIMAP_NO_ERROR)
                break;
              c.backlog = uids->len;
              imap_status (&c, uids->len ? "fetching" : "ok", NULL);
              for (guint i = 0; i < uids->len && r == MAILIMAP_NO_ERROR;
                   i += IMAP_CHUNK)
                if (!imap_take (&c, &g_array_index (uids, guint32, i),
                                MIN (IMAP_CHUNK, uids->len - i), &r))
                  {
                    if (r == 0)
                      goto master_gone;
                    break;
                  }
              /* the last group: moved if all went well; else only its
               * answers read, so that none is left in the channel */
              if (!imap_land (&c, r == MAILIMAP_NO_ERROR, &r) && r == 0)
                goto master_gone;
              if (r != MAILIMAP_NO_ERROR)
                break;
              if (uids->len > 0)
                continue;        /* more may have come meanwhile */
              if (!imap_wait (&c, &r))
                goto master_gone;
              if (r != MAILIMAP_NO_ERROR)
                break;
            }
          why = r == MAILIMAP_ERROR_STREAM ? "connection-lost" : "protocol";
          g_warning ("event=imap-session-ended mailbox=%s code=%d", mb->name,
                     r);
        }
      imap_status (&c, "error", why);
      imap_disconnect (&c);
      imap_backoff (&c);
    }
master_gone:
  imap_flight_free (&c.flight);
  if (c.out != NULL)
    g_byte_array_unref (c.out);
  imap_disconnect (&c);
  if (c.secret)
    memset (c.secret, 0, strlen (c.secret));
  g_free (c.secret);
  g_clear_object (&c.tls_db);
  return EX_OK;
}
