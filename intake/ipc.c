/*
 * ipc.c - length-prefixed, bounded frames over a non-blocking socket.
 *
 * Owns: the fd, an input buffer (what one read() brought: often several
 * frames, each delivered without another system call) with, for a frame
 * larger than the buffer, an exactly sized payload read straight into,
 * and a queue of outgoing frames.
 * Refuses: frames longer than the bound or shorter than a type byte;
 * payloads that do not unpack.  Either ends the channel.
 */
#define G_LOG_DOMAIN "intake-ipc"

#include "intake/ipc.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <glib-unix.h>

#define IPC_HEADER IPC_FRAME_HEADER
/* One read() takes up to this much: a parse request or answer (a few KB
 * for most mail) and the ones behind it.  A larger frame's payload is
 * read into its own buffer.  */
#define IPC_INBUF (64 * 1024)

struct ipc_channel {
  GSource source;            /* must be first */
  int fd;
  gpointer tag;              /* g_source_add_unix_fd */
  gsize max_frame;
  ipc_frame_fn on_frame;
  ipc_closed_fn on_closed;
  gpointer user_data;
  gboolean closed;
  GIOCondition events;       /* what the source watches now */

  guint8 *in;                /* (nullable) IPC_INBUF bytes, made on first
                              * read */
  gsize in_start, in_end;    /* unread bytes: in[in_start..in_end) */
  guint8 *payload;           /* (nullable) a large frame's payload,
                              * exactly the announced size */
  gsize payload_len, payload_have;
  guint8 payload_type;

  GQueue out;                /* GBytes *, header and payload interleaved */
  gsize out_offset;          /* into the head */
  gsize out_pending;
};

static void
ipc_channel_close (ipc_channel *ch, const char *why)
{
  if (ch->closed)
    return;
  ch->closed = TRUE;
  if (why != NULL)
    g_warning ("ipc: fd=%d closed: %s", ch->fd, why);
  g_source_remove_unix_fd (&ch->source, ch->tag);
  ch->tag = NULL;
  if (ch->on_closed)
    ch->on_closed (ch, ch->user_data);
}

/* Only when they change: g_source_modify_unix_fd() wakes the main
 * context up (an eventfd write and a poll more) every time it is called,
 * which was once a message for nothing.  */
static void
ipc_channel_update_events (ipc_channel *ch)
{
  GIOCondition events = G_IO_IN | G_IO_HUP | G_IO_ERR
                        | (ch->out.length ? G_IO_OUT : 0);

  if (ch->closed || events == ch->events)
    return;
  ch->events = events;
  g_source_modify_unix_fd (&ch->source, ch->tag, events);
}

static void
ipc_channel_flush (ipc_channel *ch)
{
  while (ch->out.length > 0 && !ch->closed)
    {
      struct iovec iov[64];
      int n = 0;
      gsize off = ch->out_offset;
      ssize_t w;

      for (GList *l = ch->out.head; l != NULL && n < 64; l = l->next)
        {
          gsize len;
          const guint8 *p = g_bytes_get_data (l->data, &len);
          iov[n].iov_base = (void *) (p + off);
          iov[n].iov_len = len - off;
          off = 0;
          n++;
        }
      w = writev (ch->fd, iov, n);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
          ipc_channel_close (ch, g_strerror (errno));
          return;
        }
      ch->out_pending -= (gsize) w;
      while (w > 0)
        {
          GBytes *head = g_queue_peek_head (&ch->out);
          gsize left = g_bytes_get_size (head) - ch->out_offset;
          if ((gsize) w >= left)
            {
              w -= (ssize_t) left;
              g_bytes_unref (g_queue_pop_head (&ch->out));
              ch->out_offset = 0;
            }
          else
            {
              ch->out_offset += (gsize) w;
              w = 0;
            }
        }
    }
  ipc_channel_update_events (ch);
}

/* Deliver the complete frames in the input buffer; a frame too large
 * for it gets its own payload buffer, which takes what was read of it.
 * FALSE if the channel closed (a bad length, or by a handler).  */
static gboolean
ipc_channel_deliver (ipc_channel *ch)
{
  while (!ch->closed && ch->payload == NULL
         && ch->in_end - ch->in_start >= IPC_HEADER)
    {
      const guint8 *h = ch->in + ch->in_start;
      gsize have = ch->in_end - ch->in_start - IPC_HEADER;
      guint32 len = ((guint32) h[0] << 24) | ((guint32) h[1] << 16)
                    | ((guint32) h[2] << 8) | h[3];
      gsize plen;

      if (len < 1 || len > ch->max_frame)
        {
          ipc_channel_close (ch, "frame length out of bounds");
          return FALSE;
        }
      plen = len - 1;
      if (have >= plen)
        {
          /* an empty payload's data is "", never NULL, for handlers
           * that hand it to memcpy() and the like */
          g_autoptr (GBytes) payload =
              plen > 0 ? g_bytes_new (h + IPC_HEADER, plen)
                       : g_bytes_new_static ("", 0);
          guint8 type = h[4];

          ch->in_start += IPC_HEADER + plen;
          ch->on_frame (ch, type, payload, ch->user_data);
        }
      else if (IPC_HEADER + plen > IPC_INBUF)
        {
          ch->payload_type = h[4];
          ch->payload_len = plen;
          ch->payload_have = have;
          ch->payload = g_malloc (plen);
          memcpy (ch->payload, h + IPC_HEADER, have);
          ch->in_start = ch->in_end = 0;
        }
      else
        break;
    }
  if (ch->in_start == ch->in_end)
    ch->in_start = ch->in_end = 0;
  return !ch->closed;
}

/* Read what is there; deliver complete frames.  FALSE once the socket
 * has nothing more for now (or the channel closed).  */
static gboolean
ipc_channel_read (ipc_channel *ch)
{
  if (ch->in == NULL)
    ch->in = g_malloc (IPC_INBUF);
  for (int rounds = 0; rounds < 64 && !ch->closed; rounds++)
    {
      ssize_t r;

      if (ch->payload != NULL)
        r = read (ch->fd, ch->payload + ch->payload_have,
                  ch->payload_len - ch->payload_have);
      else
        {
          /* a partial frame goes to the front: it fits (deliver) */
          if (ch->in_start > 0)
            {
              memmove (ch->in, ch->in + ch->in_start,
                       ch->in_end - ch->in_start);
              ch->in_end -= ch->in_start;
              ch->in_start = 0;
            }
          r = read (ch->fd, ch->in + ch->in_end, IPC_INBUF - ch->in_end);
        }
      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FALSE;
          ipc_channel_close (ch, g_strerror (errno));
          return FALSE;
        }
      if (r == 0)
        {
          ipc_channel_close (ch, NULL);
          return FALSE;
        }
      if (ch->payload != NULL)
        {
          ch->payload_have += (gsize) r;
          if (ch->payload_have == ch->payload_len)
            {
              g_autoptr (GBytes) payload =
                  g_bytes_new_take (ch->payload, ch->payload_len);

              ch->payload = NULL;
              ch->on_frame (ch, ch->payload_type, payload, ch->user_data);
            }
        }
      else
        ch->in_end += (gsize) r;
      if (!ipc_channel_deliver (ch))
        return FALSE;
    }
  return !ch->closed;
}

void
ipc_channel_flush_all (ipc_channel *ch)
{
  while (ch != NULL && !ch->closed && ch->out.length > 0)
    {
      struct pollfd p = { .fd = ch->fd, .events = POLLOUT };

      if (poll (&p, 1, -1) < 0 && errno != EINTR)
        {
          ipc_channel_close (ch, g_strerror (errno));
          return;
        }
      ipc_channel_flush (ch);
    }
  if (ch != NULL && !ch->closed)
    ipc_channel_update_events (ch);
}

void
ipc_channel_drain (ipc_channel *ch)
{
  while (ch != NULL && ipc_channel_read (ch))
    ;
}

static gboolean
ipc_source_dispatch (GSource *source, GSourceFunc cb, gpointer data)
{
  ipc_channel *ch = (ipc_channel *) source;
  GIOCondition cond;

  if (ch->closed)
    return G_SOURCE_CONTINUE;
  cond = g_source_query_unix_fd (source, ch->tag);
  if (cond & G_IO_OUT)
    ipc_channel_flush (ch);
  if (!ch->closed && (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
    ipc_channel_read (ch);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs ipc_source_funcs = {
  .dispatch = ipc_source_dispatch,
};

ipc_channel *
ipc_channel_new (int fd, gsize max_frame, ipc_frame_fn on_frame,
                 ipc_closed_fn on_closed, gpointer user_data)
{
  ipc_channel *ch;

  g_unix_set_fd_nonblocking (fd, TRUE, NULL);
  ch = (ipc_channel *) g_source_new (&ipc_source_funcs, sizeof *ch);
  ch->fd = fd;
  ch->max_frame = max_frame;
  ch->on_frame = on_frame;
  ch->on_closed = on_closed;
  ch->user_data = user_data;
  g_queue_init (&ch->out);
  ch->events = G_IO_IN | G_IO_HUP | G_IO_ERR;
  ch->tag = g_source_add_unix_fd (&ch->source, fd, ch->events);
  g_source_set_name (&ch->source, "ipc");
  /* Never dispatched recursively (no nested loops); not blocking it saves
   * removing and re-adding the descriptor at every frame.  */
  g_source_set_can_recurse (&ch->source, TRUE);
  g_source_attach (&ch->source, g_main_context_get_thread_default ());
  return ch;
}

void
ipc_channel_free (ipc_channel **chp)
{
  ipc_channel *ch = chp ? *chp : NULL;

  if (ch == NULL)
    return;
  ch->on_closed = NULL;
  if (!ch->closed)
    {
      ch->closed = TRUE;
      g_source_remove_unix_fd (&ch->source, ch->tag);
    }
  g_queue_clear_full (&ch->out, (GDestroyNotify) g_bytes_unref);
  g_free (ch->payload);
  g_free (ch->in);
  close (ch->fd);
  g_source_destroy (&ch->source);
  g_source_unref (&ch->source);
  *chp = NULL;
}

void
ipc_frame_header (guint8 *h, guint8 type, gsize payload_len)
{
  g_assert (payload_len + 1 <= G_MAXUINT32);
  h[0] = (guint8) ((payload_len + 1) >> 24);
  h[1] = (guint8) ((payload_len + 1) >> 16);
  h[2] = (guint8) ((payload_len + 1) >> 8);
  h[3] = (guint8) (payload_len + 1);
  h[4] = type;
}

void
ipc_channel_send (ipc_channel *ch, guint8 type, GBytes *payload)
{
  gsize len = g_bytes_get_size (payload);
  guint8 *h;

  if (ch->closed)
    return;
  h = g_malloc (IPC_HEADER);
  ipc_frame_header (h, type, len);
  g_queue_push_tail (&ch->out, g_bytes_new_take (h, IPC_HEADER));
  if (len > 0)
    g_queue_push_tail (&ch->out, g_bytes_ref (payload));
  ch->out_pending += IPC_HEADER + len;
  ipc_channel_flush (ch);
}

void
ipc_channel_queue_frame (ipc_channel *ch, GBytes *frame)
{
  gsize len = g_bytes_get_size (frame);

  g_assert (len >= IPC_HEADER);
  if (ch->closed)
    return;
  g_queue_push_tail (&ch->out, g_bytes_ref (frame));
  ch->out_pending += len;
}

void
ipc_channel_push (ipc_channel *ch)
{
  if (!ch->closed)
    ipc_channel_flush (ch);
}

void
ipc_channel_send_frame (ipc_channel *ch, GBytes *frame)
{
  ipc_channel_queue_frame (ch, frame);
  ipc_channel_push (ch);
}

gsize
ipc_channel_pending (ipc_channel *ch)
{
  return ch->out_pending;
}

/* ------------------------------------------------------------ payloads */

static void
ipc_put64 (guint8 *p, guint64 v)
{
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (guint8) v;
}

static guint64
ipc_get64 (const guint8 *p)
{
  guint64 v = 0;

  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

/* The SUBMIT layout, after a frame header of @type when @framed.  */
static GBytes *
ipc_submit_pack_after (gboolean framed, guint8 type, guint64 req,
                       const store_envelope *env, GBytes *raw)
{
  gsize head = framed ? IPC_HEADER : 0;
  g_autoptr (GBytes) e = store_envelope_pack (env);
  gsize elen = g_bytes_get_size (e), rlen = g_bytes_get_size (raw);
  guint8 *buf = g_malloc (head + 12 + elen + rlen);
  guint8 *p = buf + head;

  ipc_put64 (p, req);
  p[8] = (guint8) (elen >> 24);
  p[9] = (guint8) (elen >> 16);
  p[10] = (guint8) (elen >> 8);
  p[11] = (guint8) elen;
  memcpy (p + 12, g_bytes_get_data (e, NULL), elen);
  if (rlen)
    memcpy (p + 12 + elen, g_bytes_get_data (raw, NULL), rlen);
  if (framed)
    ipc_frame_header (buf, type, 12 + elen + rlen);
  return g_bytes_new_take (buf, head + 12 + elen + rlen);
}

GBytes *
ipc_submit_pack (guint64 req, const store_envelope *env, GBytes *raw)
{
  return ipc_submit_pack_after (FALSE, 0, req, env, raw);
}

GBytes *
ipc_submit_frame (guint8 type, guint64 req, const store_envelope *env,
                  GBytes *raw)
{
  return ipc_submit_pack_after (TRUE, type, req, env, raw);
}

gboolean
ipc_submit_unpack (GBytes *payload, guint64 *req, store_envelope **env,
                   GBytes **raw)
{
  gsize len;
  const guint8 *p = g_bytes_get_data (payload, &len);
  guint32 elen;
  g_autoptr (GBytes) e = NULL;

  if (len < 12)
    return FALSE;
  *req = ipc_get64 (p);
  elen = ((guint32) p[8] << 24) | ((guint32) p[9] << 16)
         | ((guint32) p[10] << 8) | p[11];
  if (elen > IPC_ENVELOPE_MAX || elen > len - 12)
    return FALSE;
  e = g_bytes_new_from_bytes (payload, 12, elen);
  *env = store_envelope_unpack (e, NULL);
  if (*env == NULL)
    return FALSE;
  *raw = g_bytes_new_from_bytes (payload, 12 + elen, len - 12 - elen);
  return TRUE;
}

GBytes *
ipc_result_pack (guint64 req, ipc_status status, const char *qid)
{
  gsize qlen = qid ? strlen (qid) : 0;
  guint8 *buf = g_malloc (9 + qlen);

  ipc_put64 (buf, req);
  buf[8] = (guint8) status;
  if (qlen)
    memcpy (buf + 9, qid, qlen);
  return g_bytes_new_take (buf, 9 + qlen);
}

gboolean
ipc_result_unpack (GBytes *payload, guint64 *req, ipc_status *status,
                   char **qid)
{
  gsize len;
  const guint8 *p = g_bytes_get_data (payload, &len);

  if (len < 9 || len > 9 + 64 || p[8] > IPC_STATUS_DUPLICATE)
    return FALSE;
  for (gsize i = 9; i < len; i++)
    if (!g_ascii_isalnum (p[i]))
      return FALSE;
  *req = ipc_get64 (p);
  *status = (ipc_status) p[8];
  *qid = g_strndup ((const char *) p + 9, len - 9);
  return TRUE;
}

void
ipc_parsed_head (guint8 *p, guint64 req)
{
  ipc_put64 (p, req);
}

GBytes *
ipc_parsed_pack (guint64 req, GBytes *packed)
{
  gsize n = g_bytes_get_size (packed);
  guint8 *buf = g_malloc (8 + n);

  ipc_put64 (buf, req);
  if (n)
    memcpy (buf + 8, g_bytes_get_data (packed, NULL), n);
  return g_bytes_new_take (buf, 8 + n);
}

gboolean
ipc_parsed_unpack (GBytes *payload, guint64 *req, GBytes **packed)
{
  gsize len;
  const guint8 *p = g_bytes_get_data (payload, &len);

  if (len < 8)
    return FALSE;
  *req = ipc_get64 (p);
  *packed = g_bytes_new_from_bytes (payload, 8, len - 8);
  return TRUE;
}

GBytes *
ipc_imap_submit_pack (guint64 req, guint32 uidvalidity, guint32 uid,
                      const store_envelope *env, GBytes *raw)
{
  g_autoptr (GBytes) inner = ipc_submit_pack (req, env, raw);
  gsize n;
  const guint8 *p = g_bytes_get_data (inner, &n);
  guint8 *buf = g_malloc (8 + n);
  guint32 a = GUINT32_TO_BE (uidvalidity), b = GUINT32_TO_BE (uid);

  memcpy (buf, &a, 4);
  memcpy (buf + 4, &b, 4);
  memcpy (buf + 8, p, n);
  return g_bytes_new_take (buf, 8 + n);
}

gboolean
ipc_imap_submit_unpack (GBytes *payload, guint64 *req, guint32 *uidvalidity,
                        guint32 *uid, store_envelope **env, GBytes **raw)
{
  gsize n;
  const guint8 *p = g_bytes_get_data (payload, &n);
  g_autoptr (GBytes) inner = NULL;
  guint32 a, b;

  if (n < 8)
    return FALSE;
  memcpy (&a, p, 4);
  memcpy (&b, p + 4, 4);
  *uidvalidity = GUINT32_FROM_BE (a);
  *uid = GUINT32_FROM_BE (b);
  if (*uidvalidity == 0 || *uid == 0)
    return FALSE;
  inner = g_bytes_new_from_bytes (payload, 8, n - 8);
  return ipc_submit_unpack (inner, req, env, raw);
}

#define IPC_WORD_MAX 64

static gboolean
ipc_word_ok (const char *s)
{
  gsize n = 0;

  for (; *s; s++, n++)
    if (!(g_ascii_isalnum (*s) || *s == '-' || *s == '_') || n >= IPC_WORD_MAX)
      return FALSE;
  return TRUE;
}

GBytes *
ipc_imap_status_pack (const char *state, const char *error, gint64 backlog,
                      gint64 token_expires)
{
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new (
      "(ssxx)", state, error ? error : "", backlog, token_expires));

  return g_variant_get_data_as_bytes (v);
}

gboolean
ipc_imap_status_unpack (GBytes *payload, char **state, char **error,
                        gint64 *backlog, gint64 *token_expires)
{
  g_autoptr (GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (
      G_VARIANT_TYPE ("(ssxx)"), payload, FALSE));
  const char *s, *e;

  if (!g_variant_is_normal_form (v))
    return FALSE;
  g_variant_get (v, "(&s&sxx)", &s, &e, backlog, token_expires);
  if (*s == '\0' || !ipc_word_ok (s) || !ipc_word_ok (e))
    return FALSE;
  *state = g_strdup (s);
  *error = g_strdup (e);
  return TRUE;
}
