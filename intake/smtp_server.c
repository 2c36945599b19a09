/*
 * smtp_server.c - the socket and TLS shell around smtp_session.
 *
 * Owns: the listening service, every client connection, the IPC channel to
 * the master.  Each connection pairs a GIO stream (plain, then TLS after
 * STARTTLS) with a pure smtp_session; bytes go in, the session's output goes
 * out, and the shell acts on the session's status.  Reading stops while the
 * session waits for the store, for TLS, or while the client is not reading
 * our replies.  One timer per connection follows the session's deadline.
 *
 * Refuses: sessions over the total or per-client limit (421 4.7.0).
 * Logs: session ids, reply codes, sizes; never addresses or text.  The
 * client's IP address is logged only as a per-process salted token.
 */
#define G_LOG_DOMAIN "intake-smtp"

#include "intake/smtp_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>

#include "intake/intake_log.h"
#include "intake/ipc.h"
#include "intake/smtp_limits.h"

/* Stop reading from a client while this much of our output is unsent.  */
#define SMTP_SERVER_OUT_HIGH  (64 * 1024)
/* After shutdown, connections still open after this are cut.  */
#define SMTP_SERVER_DRAIN_S   20

typedef struct smtp_conn smtp_conn;

struct smtp_server {
  intake_config *cfg;
  GMainLoop *loop;
  GSocket *listen;            /* shared with the other SMTP children */
  GSource *accept_src;
  ipc_channel *ipc;
  GTlsCertificate *cert;
  GHashTable *conns;          /* smtp_conn * set */
  GHashTable *per_client;     /* client address -> GUINT count */
  GHashTable *pending;        /* request id (guint64 *) -> smtp_conn * */
  guint64 next_req;
  guint64 next_sid;
  gboolean storage_low;
  gboolean stopping;
  guint drain_timer;
};

struct smtp_conn {
  smtp_server *srv;
  guint64 sid;
  GSocketConnection *sock;
  GIOStream *io;              /* sock, or the TLS connection over it */
  GSource *in_src;
  GSource *out_src;
  GSource *timer;
  smtp_session *sess;
  GQueue outq;                /* GBytes * */
  gsize out_off;
  gsize out_len;
  char *client;               /* address, for the envelope and limits */
  char *token;                /* what the log shows of it */
  guint64 req;                /* request with the master, 0 if none */
  gboolean tls_started;
  GCancellable *tls_cancel;
  GSource *tls_timer;         /* handshake deadline, while it runs */
  gboolean closed;
};

static void smtp_conn_pump (smtp_conn *c);
static void smtp_conn_close (smtp_conn *c, const char *why);

static gint64
smtp_now (void)
{
  return g_get_monotonic_time ();
}

/* ------------------------------------------------------------ timers */

static gboolean
smtp_conn_timer_cb (gpointer data)
{
  smtp_conn *c = data;

  if (smtp_session_check_deadline (c->sess, smtp_now ()))
    g_message ("sid=%" G_GINT64_MODIFIER "x event=timeout phase=%s",
               c->sid, smtp_session_phase_name (c->sess));
  smtp_conn_pump (c);
  return G_SOURCE_CONTINUE;
}

static gboolean
smtp_timer_dispatch (GSource *source, GSourceFunc cb, gpointer data)
{
  g_source_set_ready_time (source, -1);
  return cb (data);
}

static GSourceFuncs smtp_timer_funcs = { .dispatch = smtp_timer_dispatch };

static void
smtp_conn_arm_timer (smtp_conn *c)
{
  gint64 deadline = smtp_session_deadline (c->sess);

  if (c->timer == NULL)
    {
      c->timer = g_source_new (&smtp_timer_funcs, sizeof (GSource));
      g_source_set_can_recurse (c->timer, TRUE);
      g_source_set_callback (c->timer, smtp_conn_timer_cb, c, NULL);
      g_source_attach (c->timer, NULL);
    }
  /* Moving the ready time wakes the main loop (an eventfd write), and the
   * deadline moves with every byte: only bring it forward.  A timer that
   * fires before the (extended) deadline finds nothing to do and is armed
   * again here.  */
  gint64 ready = g_source_get_ready_time (c->timer);
  if (deadline == G_MAXINT64)
    return;                       /* not armed while the store or TLS has
                                   * the session; re-armed after */
  if (ready == -1 || deadline < ready)
    g_source_set_ready_time (c->timer, deadline);
}

/* ------------------------------------------------------------ output */

static gboolean smtp_conn_out_ready (GObject *stream, gpointer data);

/* Plain connections are driven on the GSocket itself: a socket source has
 * no child source, so with can-recurse set nothing is blocked, removed and
 * re-added around each dispatch (each of those wakes the loop).  Under TLS
 * the pollable streams of the TLS connection are used.  */
static gboolean
smtp_conn_plain (smtp_conn *c)
{
  return c->io == G_IO_STREAM (c->sock);
}

static gboolean
smtp_conn_sock_out_cb (GSocket *sock, GIOCondition cond, gpointer data)
{
  return smtp_conn_out_ready (NULL, data);
}

static gboolean smtp_conn_in_ready (GObject *stream, gpointer data);

static gboolean
smtp_conn_sock_in_cb (GSocket *sock, GIOCondition cond, gpointer data)
{
  return smtp_conn_in_ready (NULL, data);
}

static GSource *
smtp_conn_source (smtp_conn *c, gboolean input)
{
  GSource *src;

  if (smtp_conn_plain (c))
    {
      src = g_socket_create_source (g_socket_connection_get_socket (c->sock),
                                    input ? G_IO_IN : G_IO_OUT, NULL);
      g_source_set_callback (src, (GSourceFunc) (void (*) (void))
                             (input ? smtp_conn_sock_in_cb
                                    : smtp_conn_sock_out_cb), c, NULL);
    }
  else if (input)
    {
      src = g_pollable_input_stream_create_source (
          G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (c->io)),
          NULL);
      g_source_set_callback (src, (GSourceFunc) (void (*) (void))
                             smtp_conn_in_ready, c, NULL);
    }
  else
    {
      src = g_pollable_output_stream_create_source (
          G_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (c->io)),
          NULL);
      g_source_set_callback (src, (GSourceFunc) (void (*) (void))
                             smtp_conn_out_ready, c, NULL);
    }
  /* No callback here runs a nested loop, so no source needs blocking
   * during its dispatch.  */
  g_source_set_can_recurse (src, TRUE);
  g_source_attach (src, NULL);
  return src;
}

static gssize
smtp_conn_write (smtp_conn *c, const char *p, gsize n, GError **error)
{
  if (smtp_conn_plain (c))
    return g_socket_send_with_blocking (
        g_socket_connection_get_socket (c->sock), p, n, FALSE, NULL, error);
  return g_pollable_output_stream_write_nonblocking (
      G_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (c->io)), p, n,
      NULL, error);
}

static gssize
smtp_conn_read (smtp_conn *c, char *p, gsize n, GError **error)
{
  if (smtp_conn_plain (c))
    return g_socket_receive_with_blocking (
        g_socket_connection_get_socket (c->sock), p, n, FALSE, NULL, error);
  return g_pollable_input_stream_read_nonblocking (
      G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (c->io)), p, n,
      NULL, error);
}

static void
smtp_conn_out_wait (smtp_conn *c)
{
  if (c->out_src == NULL)
    c->out_src = smtp_conn_source (c, FALSE);
}

/* Write what we can; TRUE when everything queued is out.  */
static gboolean
smtp_conn_flush (smtp_conn *c)
{
  if (c->closed)
    return FALSE;
  while (c->outq.length > 0)
    {
      GBytes *head = g_queue_peek_head (&c->outq);
      gsize len;
      const char *p = g_bytes_get_data (head, &len);
      g_autoptr (GError) error = NULL;
      gssize w;

      w = smtp_conn_write (c, p + c->out_off, len - c->out_off, &error);
      if (w < 0)
        {
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            {
              smtp_conn_out_wait (c);
              return FALSE;
            }
          smtp_conn_close (c, "write error");
          return FALSE;
        }
      c->out_off += (gsize) w;
      c->out_len -= (gsize) w;
      if (c->out_off == len)
        {
          g_bytes_unref (g_queue_pop_head (&c->outq));
          c->out_off = 0;
        }
    }
  return TRUE;
}

static gboolean
smtp_conn_out_ready (GObject *stream, gpointer data)
{
  smtp_conn *c = data;

  g_source_destroy (c->out_src);
  g_source_unref (c->out_src);
  c->out_src = NULL;
  smtp_conn_pump (c);
  return G_SOURCE_REMOVE;
}

/* ------------------------------------------------------------- input */

static void
smtp_conn_in_start (smtp_conn *c)
{
  if (c->in_src != NULL || c->closed)
    return;
  c->in_src = smtp_conn_source (c, TRUE);
}

static void
smtp_conn_in_stop (smtp_conn *c)
{
  if (c->in_src == NULL)
    return;
  g_source_destroy (c->in_src);
  g_source_unref (c->in_src);
  c->in_src = NULL;
}

static gboolean
smtp_conn_in_ready (GObject *stream, gpointer data)
{
  /* One process serves every connection on one thread, so one buffer does
   * for all of them.  */
  static char buf[64 * 1024];
  smtp_conn *c = data;

  /* While a message is with the store the session keeps what the client
   * pipelines behind it (bounded: it closes with 421 past the limit), so
   * the source stays attached: re-attaching it for every message costs
   * the loop two wake-ups.  */
  while (!c->closed
         && (smtp_session_get_status (c->sess) == SMTP_SESSION_READ
             || smtp_session_get_status (c->sess) == SMTP_SESSION_MESSAGE)
         && c->out_len < SMTP_SERVER_OUT_HIGH)
    {
      g_autoptr (GError) error = NULL;
      gssize r = smtp_conn_read (c, buf, sizeof buf, &error);
      if (r < 0)
        {
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            break;
          smtp_conn_close (c, "read error");
          return G_SOURCE_REMOVE;
        }
      if (r == 0)
        {
          smtp_conn_close (c, "client closed");
          return G_SOURCE_REMOVE;
        }
      smtp_session_feed (c->sess, buf, (gsize) r, smtp_now ());
      gboolean drained = (gsize) r < sizeof buf;
      /* Take output now so that a long pipelined batch does not pile up.  */
      GBytes *o = smtp_session_take_output (c->sess);
      if (o != NULL)
        {
          c->out_len += g_bytes_get_size (o);
          g_queue_push_tail (&c->outq, o);
        }
      /* A short read took everything there was; the source is level
       * triggered and fires again when more comes, so skip the read that
       * would only say EAGAIN.  */
      if (drained)
        break;
    }
  if (c->closed)
    return G_SOURCE_REMOVE;
  smtp_conn_pump (c);
  return G_SOURCE_CONTINUE;
}

/* ---------------------------------------------------------------- TLS */

static void
smtp_conn_tls_timer_clear (smtp_conn *c)
{
  if (c->tls_timer == NULL)
    return;
  g_source_destroy (c->tls_timer);
  g_source_unref (c->tls_timer);
  c->tls_timer = NULL;
}

static gboolean
smtp_conn_tls_timeout (gpointer data)
{
  smtp_conn *c = data;

  g_cancellable_cancel (c->tls_cancel);
  return G_SOURCE_CONTINUE;        /* destroyed by smtp_conn_tls_done */
}

static void
smtp_conn_tls_done (GObject *obj, GAsyncResult *res, gpointer data)
{
  smtp_conn *c = data;
  g_autoptr (GError) error = NULL;
  gboolean ok = g_tls_connection_handshake_finish (G_TLS_CONNECTION (obj),
                                                   res, &error);

  if (c->closed)
    {
      /* The connection went away during the handshake.  */
      smtp_conn_tls_timer_clear (c);
      g_free (c);
      return;
    }
  g_clear_object (&c->tls_cancel);
  smtp_conn_tls_timer_clear (c);
  if (!ok)
    g_message ("sid=%" G_GINT64_MODIFIER "x event=tls-failed",
               c->sid);
  else
    g_info ("sid=%" G_GINT64_MODIFIER "x event=tls", c->sid);
  smtp_session_tls_done (c->sess, ok, smtp_now ());
  smtp_conn_pump (c);
}

static void
smtp_conn_tls_start (smtp_conn *c)
{
  g_autoptr (GError) error = NULL;
  GIOStream *tls;

  c->tls_started = TRUE;
  tls = g_tls_server_connection_new (c->io, c->srv->cert, &error);
  if (tls == NULL)
    {
      g_warning ("sid=%" G_GINT64_MODIFIER "x event=tls-unavailable: %s",
                 c->sid, error->message);
      smtp_session_tls_done (c->sess, FALSE, smtp_now ());
      smtp_conn_pump (c);
      return;
    }
  /* The plain stream stays open beneath; closing the TLS one closes it.  */
  c->io = tls;
  c->tls_cancel = g_cancellable_new ();
  c->tls_timer = g_timeout_source_new_seconds (
      c->srv->cfg->session.timeout_s);
  g_source_set_callback (c->tls_timer, smtp_conn_tls_timeout, c, NULL);
  g_source_attach (c->tls_timer, NULL);
  g_tls_connection_handshake_async (G_TLS_CONNECTION (tls),
                                    G_PRIORITY_DEFAULT, c->tls_cancel,
                                    smtp_conn_tls_done, c);
}

/* --------------------------------------------------------- the store */

static void
smtp_conn_submit (smtp_conn *c)
{
  g_autoptr (smtp_message) msg = smtp_session_take_message (c->sess);
  g_autoptr (store_envelope) env = store_envelope_new ();
  g_autoptr (GBytes) frame = NULL;
  guint64 *key;

  g_assert (msg != NULL);
  env->source = g_strdup ("smtp");
  env->client_addr = g_strdup (c->client);
  env->helo = g_strdup (msg->helo);
  env->mail_from = g_strdup (msg->mail_from);
  for (guint i = 0; i < msg->rcpts->len; i++)
    g_ptr_array_add (env->rcpts, g_strdup (msg->rcpts->pdata[i]));
  env->tls = msg->tls;
  env->received_at = g_get_real_time ();

  c->req = ++c->srv->next_req;
  key = g_new (guint64, 1);
  *key = c->req;
  g_hash_table_insert (c->srv->pending, key, c);
  frame = ipc_submit_pack (c->req, env, msg->data);
  ipc_channel_send (c->srv->ipc, IPC_SUBMIT, frame);
}

static void
smtp_server_on_result (smtp_server *srv, GBytes *payload)
{
  g_autofree char *qid = NULL;
  smtp_store_result result;
  ipc_status status;
  smtp_conn *c;
  guint64 req;

  if (!ipc_result_unpack (payload, &req, &status, &qid))
    {
      g_warning ("event=bad-result-frame");
      return;
    }
  c = g_hash_table_lookup (srv->pending, &req);
  if (c == NULL)
    return;                         /* the client left meanwhile */
  g_hash_table_remove (srv->pending, &req);
  c->req = 0;
  switch (status)
    {
    case IPC_STATUS_COMMITTED:
      result = SMTP_STORE_OK;
      break;
    case IPC_STATUS_NOSPACE:
      result = SMTP_STORE_NOSPACE;
      break;
    case IPC_STATUS_SHUTDOWN:
      result = SMTP_STORE_SHUTDOWN;
      break;
    default:
      result = SMTP_STORE_TEMPFAIL;
      break;
    }
  g_info ("sid=%" G_GINT64_MODIFIER "x event=%s queue_id=%s", c->sid,
          result == SMTP_STORE_OK ? "queued" : "store-failed",
          qid[0] ? qid : "-");
  smtp_session_message_done (c->sess, result, qid, smtp_now ());
  smtp_conn_pump (c);
}

/* ------------------------------------------------------------- pump */

/* Act on the session's status after anything happened.  */
static void
smtp_conn_pump (smtp_conn *c)
{
  for (;;)
    {
      GBytes *o;

      if (c->closed)
        return;
      o = smtp_session_take_output (c->sess);
      if (o != NULL)
        {
          c->out_len += g_bytes_get_size (o);
          g_queue_push_tail (&c->outq, o);
        }
      gboolean flushed = smtp_conn_flush (c);
      if (c->closed)
        return;

      switch (smtp_session_get_status (c->sess))
        {
        case SMTP_SESSION_READ:
          if (c->out_len < SMTP_SERVER_OUT_HIGH)
            smtp_conn_in_start (c);
          else
            smtp_conn_in_stop (c);
          smtp_conn_arm_timer (c);
          return;
        case SMTP_SESSION_MESSAGE:
          if (c->out_len >= SMTP_SERVER_OUT_HIGH)
            smtp_conn_in_stop (c);
          if (c->req == 0)
            smtp_conn_submit (c);
          smtp_conn_arm_timer (c);
          return;
        case SMTP_SESSION_STARTTLS:
          smtp_conn_in_stop (c);
          if (flushed && !c->tls_started)
            smtp_conn_tls_start (c);
          return;
        case SMTP_SESSION_CLOSE:
          smtp_conn_in_stop (c);
          if (flushed)
            smtp_conn_close (c, NULL);
          return;
        }
    }
}

/* --------------------------------------------------------- lifecycle */

/* The master hears when this child has a first session open and when it
 * has none left: while no session is open anywhere nothing can arrive by
 * SMTP, and the pipeline need not wait for a pause (pipeline.c).  */
static void
smtp_server_say_sessions (smtp_server *srv, gboolean open)
{
  static const guint8 yes = 1, no = 0;
  g_autoptr (GBytes) b = g_bytes_new_static (open ? &yes : &no, 1);

  if (srv->ipc != NULL)
    ipc_channel_send (srv->ipc, IPC_SESSIONS, b);
}

static void
smtp_conn_close (smtp_conn *c, const char *why)
{
  smtp_server *srv = c->srv;
  GSocket *sock;
  guint n;

  if (c->closed)
    return;
  c->closed = TRUE;
  g_info ("sid=%" G_GINT64_MODIFIER "x event=disconnect client=%s"
          " errors=%u%s%s", c->sid, c->token, smtp_session_errors (c->sess),
          why ? " reason=" : "", why ? why : "");
  smtp_conn_in_stop (c);
  if (c->out_src)
    {
      g_source_destroy (c->out_src);
      g_source_unref (c->out_src);
    }
  if (c->timer)
    {
      g_source_destroy (c->timer);
      g_source_unref (c->timer);
    }
  if (c->req)
    g_hash_table_remove (srv->pending, &c->req);
  n = GPOINTER_TO_UINT (g_hash_table_lookup (srv->per_client, c->client));
  if (n <= 1)
    g_hash_table_remove (srv->per_client, c->client);
  else
    g_hash_table_insert (srv->per_client, g_strdup (c->client),
                         GUINT_TO_POINTER (n - 1));
  g_hash_table_remove (srv->conns, c);
  if (g_hash_table_size (srv->conns) == 0)
    smtp_server_say_sessions (srv, FALSE);

  sock = g_socket_connection_get_socket (c->sock);
  g_socket_close (sock, NULL);
  if (c->io != G_IO_STREAM (c->sock))
    g_object_unref (c->io);
  g_object_unref (c->sock);
  g_queue_clear_full (&c->outq, (GDestroyNotify) g_bytes_unref);
  smtp_session_free (&c->sess);
  g_free (c->client);
  g_free (c->token);
  if (c->tls_cancel != NULL)
    {
      /* The handshake callback still holds @c and frees it.  */
      g_cancellable_cancel (c->tls_cancel);
      g_clear_object (&c->tls_cancel);
    }
  else
    g_free (c);

  if (srv->stopping && g_hash_table_size (srv->conns) == 0)
    g_main_loop_quit (srv->loop);
}

static void
smtp_server_refuse (GSocketConnection *sock, const char *reply)
{
  GSocket *s = g_socket_connection_get_socket (sock);

  g_socket_set_blocking (s, FALSE);
  g_socket_send (s, reply, strlen (reply), NULL, NULL);
  g_socket_close (s, NULL);
}

static gboolean
smtp_server_incoming (smtp_server *srv, GSocketConnection *sock)
{
  g_autoptr (GSocketAddress) addr = NULL;
  g_autofree char *client = NULL;
  smtp_conn *c;
  guint n;

  addr = g_socket_connection_get_remote_address (sock, NULL);
  if (addr != NULL && G_IS_INET_SOCKET_ADDRESS (addr))
    client = g_inet_address_to_string (g_inet_socket_address_get_address (
        G_INET_SOCKET_ADDRESS (addr)));
  else
    client = g_strdup ("unknown");

  if (srv->stopping)
    {
      smtp_server_refuse (sock, "421 4.3.2 Service shutting down\r\n");
      return TRUE;
    }
  if (g_hash_table_size (srv->conns) >= srv->cfg->max_sessions)
    {
      g_message ("event=refused reason=too-many-sessions");
      smtp_server_refuse (sock, "421 4.7.0 Error: too many sessions,"
                                " try again later\r\n");
      return TRUE;
    }
  n = GPOINTER_TO_UINT (g_hash_table_lookup (srv->per_client, client));
  if (n >= srv->cfg->max_per_client)
    {
      g_autofree char *token = intake_log_client_token (client);
      g_message ("event=refused reason=too-many-connections client=%s",
                 token);
      smtp_server_refuse (sock, "421 4.7.0 Error: too many connections"
                                " from your address\r\n");
      return TRUE;
    }
  g_hash_table_insert (srv->per_client, g_strdup (client),
                       GUINT_TO_POINTER (n + 1));

  /* Replies are small and each waits for the client's next command:
   * without TCP_NODELAY, Nagle and delayed ACKs stall persistent sessions
   * for tens of milliseconds per message.  */
  g_socket_set_option (g_socket_connection_get_socket (sock), IPPROTO_TCP,
                       TCP_NODELAY, 1, NULL);

  c = g_new0 (smtp_conn, 1);
  c->srv = srv;
  c->sid = ++srv->next_sid;
  c->sock = g_object_ref (sock);
  c->io = G_IO_STREAM (sock);
  c->client = g_steal_pointer (&client);
  c->token = intake_log_client_token (c->client);
  g_queue_init (&c->outq);
  c->sess = smtp_session_new (&srv->cfg->session, smtp_now ());
  if (srv->storage_low)
    smtp_session_set_storage_low (c->sess, TRUE);
  g_hash_table_add (srv->conns, c);
  if (g_hash_table_size (srv->conns) == 1)
    smtp_server_say_sessions (srv, TRUE);
  g_debug ("sid=%" G_GINT64_MODIFIER "x event=connect client=%s", c->sid,
           c->token);
  smtp_conn_pump (c);
  return TRUE;
}

/* Take every connection waiting (bounded per wake-up).  */
static gboolean
smtp_server_accept (GSocket *lsock, GIOCondition cond, gpointer data)
{
  smtp_server *srv = data;

  for (int i = 0; i < 64; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GSocket) sock = g_socket_accept (lsock, NULL, &error);
      g_autoptr (GSocketConnection) conn = NULL;

      if (sock == NULL)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            g_message ("event=accept-failed error=%s", error->message);
          break;
        }
      conn = g_socket_connection_factory_create_connection (sock);
      smtp_server_incoming (srv, conn);
    }
  return G_SOURCE_CONTINUE;
}

static void
smtp_server_on_frame (ipc_channel *ch, guint8 type, GBytes *payload,
                      gpointer data)
{
  smtp_server *srv = data;

  switch (type)
    {
    case IPC_RESULT:
      smtp_server_on_result (srv, payload);
      break;
    case IPC_STORAGE:
      {
        gsize n;
        const guint8 *p = g_bytes_get_data (payload, &n);
        GHashTableIter it;
        gpointer c;

        srv->storage_low = n == 1 && p[0] != 0;
        g_hash_table_iter_init (&it, srv->conns);
        while (g_hash_table_iter_next (&it, &c, NULL))
          smtp_session_set_storage_low (((smtp_conn *) c)->sess,
                                        srv->storage_low);
        break;
      }
    default:
      g_warning ("event=unexpected-frame type=%u", type);
      break;
    }
}

static void
smtp_server_on_ipc_closed (ipc_channel *ch, gpointer data)
{
  smtp_server *srv = data;

  /* Without the master nothing can be stored: stop at once.  Sessions that
   * were waiting for the store never got a 250.  */
  g_warning ("event=master-gone");
  g_main_loop_quit (srv->loop);
}

smtp_server *
smtp_server_new (intake_config *cfg, int listen_fd, int ipc_fd,
                 GMainLoop *loop, GError **error)
{
  smtp_server *srv = g_new0 (smtp_server, 1);
  g_autoptr (GSocket) lsock = NULL;

  srv->cfg = cfg;
  srv->loop = loop;
  srv->conns = g_hash_table_new (g_direct_hash, g_direct_equal);
  srv->per_client = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           NULL);
  srv->pending = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                        NULL);
  if (cfg->tls_certificate != NULL)
    {
      srv->cert = g_tls_certificate_new_from_files (cfg->tls_certificate,
                                                    cfg->tls_key, error);
      if (srv->cert == NULL)
        {
          g_prefix_error (error, "TLS certificate %s / key %s: ",
                          cfg->tls_certificate, cfg->tls_key);
          smtp_server_free (&srv);
          return NULL;
        }
      if (g_tls_backend_supports_tls (g_tls_backend_get_default ()) == FALSE)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       "TLS is configured but GIO has no TLS backend"
                       " (install glib-networking)");
          smtp_server_free (&srv);
          return NULL;
        }
    }
  lsock = g_socket_new_from_fd (listen_fd, error);
  if (lsock == NULL)
    {
      smtp_server_free (&srv);
      return NULL;
    }
  /* Several SMTP children may wait on the same socket: it is
   * non-blocking, and a child that loses the race for a connection gets
   * EAGAIN and goes back to its loop (a blocking accept would stall every
   * session of the loser until the next connection).  */
  g_socket_set_blocking (lsock, FALSE);
  srv->listen = g_steal_pointer (&lsock);
  srv->accept_src = g_socket_create_source (srv->listen, G_IO_IN, NULL);
  g_source_set_can_recurse (srv->accept_src, TRUE);
  g_source_set_callback (srv->accept_src, (GSourceFunc) (void (*) (void))
                         smtp_server_accept, srv, NULL);
  g_source_attach (srv->accept_src, NULL);
  srv->ipc = ipc_channel_new (ipc_fd, 1024 * 1024, smtp_server_on_frame,
                              smtp_server_on_ipc_closed, srv);
  return srv;
}

static gboolean
smtp_server_drain_expired (gpointer data)
{
  smtp_server *srv = data;

  srv->drain_timer = 0;
  g_message ("event=shutdown-timeout sessions=%u",
             g_hash_table_size (srv->conns));
  g_main_loop_quit (srv->loop);
  return G_SOURCE_REMOVE;
}

void
smtp_server_shutdown (smtp_server *srv)
{
  GHashTableIter it;
  gpointer c;
  g_autoptr (GPtrArray) all = g_ptr_array_new ();

  if (srv->stopping)
    return;
  srv->stopping = TRUE;
  /* Stop accepting; the socket itself stays open for the other children
   * and the master.  */
  g_source_destroy (srv->accept_src);
  g_hash_table_iter_init (&it, srv->conns);
  while (g_hash_table_iter_next (&it, &c, NULL))
    g_ptr_array_add (all, c);
  for (guint i = 0; i < all->len; i++)
    {
      smtp_conn *conn = all->pdata[i];
      smtp_session_shutdown (conn->sess);
      smtp_conn_pump (conn);
    }
  if (g_hash_table_size (srv->conns) == 0)
    g_main_loop_quit (srv->loop);
  else
    srv->drain_timer = g_timeout_add_seconds (SMTP_SERVER_DRAIN_S,
                                              smtp_server_drain_expired, srv);
}

void
smtp_server_free (smtp_server **srvp)
{
  smtp_server *srv = srvp ? *srvp : NULL;

  if (srv == NULL)
    return;
  if (srv->drain_timer)
    g_source_remove (srv->drain_timer);
  srv->stopping = FALSE;         /* no loop quit from the closes below */
  while (srv->conns && g_hash_table_size (srv->conns) > 0)
    {
      GHashTableIter it;
      gpointer c;
      g_hash_table_iter_init (&it, srv->conns);
      g_hash_table_iter_next (&it, &c, NULL);
      smtp_conn_close (c, "server stopped");
    }
  if (srv->accept_src)
    {
      g_source_destroy (srv->accept_src);
      g_source_unref (srv->accept_src);
    }
  g_clear_object (&srv->listen);
  ipc_channel_free (&srv->ipc);
  g_clear_object (&srv->cert);
  if (srv->conns)
    g_hash_table_unref (srv->conns);
  if (srv->per_client)
    g_hash_table_unref (srv->per_client);
  if (srv->pending)
    g_hash_table_unref (srv->pending);
  g_free (srv);
  *srvp = NULL;
}
