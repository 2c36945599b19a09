/*
 * test_ipc.c - frames between processes, over a real socketpair.
 *
 * Covers: frames delivered whole however the bytes are split (one byte at
 * a time included), and in order whatever their sizes around the input
 * buffer's (many small frames in one read, frames larger than it, frames
 * straddling it); frames already written are delivered before the peer's
 * close is; a frame over the receiver's bound, or of length zero,
 * closes the channel without delivering anything; SUBMIT and RESULT
 * payloads round-trip, and malformed ones are refused.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "intake/ipc.h"

typedef struct {
  GPtrArray *frames;          /* GBytes *, type prepended */
  gboolean closed;
} sink;

static void
sink_frame (ipc_channel *ch, guint8 type, GBytes *payload, gpointer data)
{
  sink *s = data;
  gsize n;
  const guint8 *p = g_bytes_get_data (payload, &n);
  guint8 *copy = g_malloc (n + 1);

  copy[0] = type;
  memcpy (copy + 1, p, n);
  g_ptr_array_add (s->frames, g_bytes_new_take (copy, n + 1));
}

static void
sink_closed (ipc_channel *ch, gpointer data)
{
  ((sink *) data)->closed = TRUE;
}

static void
spin (void)
{
  for (int i = 0; i < 200; i++)
    g_main_context_iteration (NULL, FALSE);
}

static void
write_all (int fd, const void *p, gsize n)
{
  ck_assert_int_eq (write (fd, p, n), (ssize_t) n);
}

START_TEST (test_frames_any_split)
{
  int sp[2];
  sink s = { g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref) };
  ipc_channel *rx;
  /* two frames: type 1 "hello", type 2 empty */
  static const guint8 wire[] = { 0, 0, 0, 6, 1, 'h', 'e', 'l', 'l', 'o',
                                 0, 0, 0, 1, 2 };
  gsize step = (gsize) _i + 1;

  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM, 0, sp), 0);
  rx = ipc_channel_new (sp[0], 100, sink_frame, sink_closed, &s);
  for (gsize off = 0; off < sizeof wire; off += step)
    {
      write_all (sp[1], wire + off, MIN (step, sizeof wire - off));
      spin ();
    }
  ck_assert_uint_eq (s.frames->len, 2);
  ck_assert_uint_eq (g_bytes_get_size (s.frames->pdata[0]), 6);
  ck_assert_int_eq (memcmp (g_bytes_get_data (s.frames->pdata[0], NULL),
                            "\001hello", 6), 0);
  ck_assert_uint_eq (g_bytes_get_size (s.frames->pdata[1]), 1);
  ck_assert (!s.closed);
  close (sp[1]);
  spin ();
  ck_assert (s.closed);
  ipc_channel_free (&rx);
  ck_assert_ptr_null (rx);
  g_ptr_array_unref (s.frames);
}
END_TEST

/* Frames of every size around the 64 KiB input buffer, written in
 * random pieces: each delivered whole, once, in order.  */
START_TEST (test_frames_mixed_sizes)
{
  int sp[2];
  sink s = { g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref) };
  ipc_channel *rx;
  GRand *rand = g_rand_new_with_seed (20261127 + (guint32) _i);
  static const gsize sizes[] = { 0, 1, 2, 4, 5, 60, 2300, 65530, 65531,
                                 65536, 65537, 70000, 131072, 200000 };
  GByteArray *wire = g_byte_array_new ();
  GPtrArray *want = g_ptr_array_new_with_free_func (
      (GDestroyNotify) g_bytes_unref);

  for (guint f = 0; f < 120; f++)
    {
      gsize n = g_rand_boolean (rand)
                    ? sizes[g_rand_int_range (rand, 0, G_N_ELEMENTS (sizes))]
                    : (gsize) g_rand_int_range (rand, 0, 3000);
      guint8 *b = g_malloc (n + 1);
      guint8 h[5] = { (guint8) ((n + 1) >> 24), (guint8) ((n + 1) >> 16),
                      (guint8) ((n + 1) >> 8), (guint8) (n + 1),
                      (guint8) (f & 0xff) };

      b[0] = h[4];
      for (gsize k = 0; k < n; k++)
        b[k + 1] = (guint8) g_rand_int (rand);
      g_byte_array_append (wire, h, sizeof h);
      g_byte_array_append (wire, b + 1, (guint) n);
      g_ptr_array_add (want, g_bytes_new_take (b, n + 1));
    }
  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM, 0, sp), 0);
  rx = ipc_channel_new (sp[0], 200001, sink_frame, sink_closed, &s);
  for (gsize off = 0; off < wire->len;)
    {
      gsize step = _i == 0 ? 1 + (gsize) g_rand_int_range (rand, 0, 9)
                           : 1 + (gsize) g_rand_int_range (rand, 0, 100000);
      step = MIN (step, wire->len - off);
      step = MIN (step, 100000);
      write_all (sp[1], wire->data + off, step);
      off += step;
      g_main_context_iteration (NULL, FALSE);
    }
  close (sp[1]);
  /* what was written is read before the close is seen */
  ipc_channel_drain (rx);
  ck_assert (s.closed);
  ck_assert_uint_eq (s.frames->len, want->len);
  for (guint f = 0; f < want->len; f++)
    ck_assert (g_bytes_equal (s.frames->pdata[f], want->pdata[f]));
  ipc_channel_free (&rx);
  g_ptr_array_unref (want);
  g_byte_array_unref (wire);
  g_rand_free (rand);
  g_ptr_array_unref (s.frames);
}
END_TEST

START_TEST (test_frame_over_bound_closes)
{
  int sp[2];
  sink s = { g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref) };
  ipc_channel *rx;
  static const guint8 big[] = { 0, 0, 0, 101, 1, 'x' };
  static const guint8 zero[] = { 0, 0, 0, 0, 1 };

  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM, 0, sp), 0);
  rx = ipc_channel_new (sp[0], 100, sink_frame, sink_closed, &s);
  write_all (sp[1], _i == 0 ? big : zero, _i == 0 ? sizeof big : sizeof zero);
  spin ();
  ck_assert (s.closed);
  ck_assert_uint_eq (s.frames->len, 0);
  ipc_channel_free (&rx);
  close (sp[1]);
  g_ptr_array_unref (s.frames);
}
END_TEST

START_TEST (test_send_receive_large)
{
  int sp[2];
  sink s = { g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref) };
  ipc_channel *rx, *tx;
  gsize n = 3 * 1024 * 1024;
  guint8 *buf = g_malloc (n);
  g_autoptr (GBytes) payload = NULL;

  for (gsize i = 0; i < n; i++)
    buf[i] = (guint8) (i * 7);
  payload = g_bytes_new_take (buf, n);
  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM, 0, sp), 0);
  rx = ipc_channel_new (sp[0], n + 1, sink_frame, sink_closed, &s);
  tx = ipc_channel_new (sp[1], 16, sink_frame, sink_closed, &s);
  ipc_channel_send (tx, 9, payload);
  for (int i = 0; i < 10000 && s.frames->len == 0; i++)
    g_main_context_iteration (NULL, TRUE);
  ck_assert_uint_eq (s.frames->len, 1);
  ck_assert_uint_eq (ipc_channel_pending (tx), 0);
  ck_assert_uint_eq (g_bytes_get_size (s.frames->pdata[0]), n + 1);
  ck_assert_int_eq (memcmp ((const guint8 *) g_bytes_get_data (
                                s.frames->pdata[0], NULL) + 1,
                            g_bytes_get_data (payload, NULL), n), 0);
  ipc_channel_free (&tx);
  ipc_channel_free (&rx);
  g_ptr_array_unref (s.frames);
}
END_TEST

START_TEST (test_payloads)
{
  g_autoptr (store_envelope) env = store_envelope_new ();
  g_autoptr (store_envelope) back = NULL;
  g_autoptr (GBytes) raw = g_bytes_new_static ("a\0b", 3);
  g_autoptr (GBytes) got = NULL;
  g_autoptr (GBytes) p = NULL;
  g_autoptr (GBytes) r = NULL;
  g_autofree char *qid = NULL;
  ipc_status st;
  guint64 req = 0;

  env->source = g_strdup ("smtp");
  env->client_addr = g_strdup ("192.0.2.7");
  env->helo = g_strdup ("h");
  env->mail_from = g_strdup ("");
  g_ptr_array_add (env->rcpts, g_strdup ("foi@council.example"));
  env->tls = TRUE;
  env->received_at = 12345;
  p = ipc_submit_pack (77, env, raw);
  ck_assert (ipc_submit_unpack (p, &req, &back, &got));
  ck_assert_uint_eq (req, 77);
  ck_assert_str_eq (back->mail_from, "");
  ck_assert_str_eq (back->rcpts->pdata[0], "foi@council.example");
  ck_assert (back->tls);
  ck_assert_int_eq (back->received_at, 12345);
  ck_assert (g_bytes_equal (got, raw));

  /* truncated or lying envelope lengths are refused */
  for (gsize cut = 0; cut < 12; cut++)
    {
      g_autoptr (GBytes) t = g_bytes_new_from_bytes (p, 0, cut);
      store_envelope *e = NULL;
      GBytes *x = NULL;
      ck_assert (!ipc_submit_unpack (t, &req, &e, &x));
    }
  {
    gsize n = g_bytes_get_size (p);
    guint8 *bad = g_memdup2 (g_bytes_get_data (p, NULL), n);
    g_autoptr (GBytes) t = NULL;
    store_envelope *e = NULL;
    GBytes *x = NULL;
    bad[8] = 0x7f;                 /* envelope length far past the end */
    t = g_bytes_new_take (bad, n);
    ck_assert (!ipc_submit_unpack (t, &req, &e, &x));
  }

  r = ipc_result_pack (5, IPC_STATUS_COMMITTED, "1A2B");
  ck_assert (ipc_result_unpack (r, &req, &st, &qid));
  ck_assert_uint_eq (req, 5);
  ck_assert_int_eq (st, IPC_STATUS_COMMITTED);
  ck_assert_str_eq (qid, "1A2B");
  {
    g_autoptr (GBytes) bad = ipc_result_pack (5, IPC_STATUS_COMMITTED,
                                              "1A\r\n250");
    char *q = NULL;
    ck_assert (!ipc_result_unpack (bad, &req, &st, &q));
  }
}
END_TEST

/* A frame built whole by its sender (header, then the payload, in one
 * buffer: parse requests and answers) arrives as the frame
 * ipc_channel_send() makes of the same payload, between two such.  */
START_TEST (test_send_whole_frame)
{
  int sp[2];
  sink s = { g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref) };
  ipc_channel *rx, *tx;
  g_autoptr (store_envelope) env = store_envelope_new ();
  g_autoptr (GBytes) raw = g_bytes_new_static ("From: a\r\n\r\nhi", 13);
  g_autoptr (GBytes) payload = NULL;
  g_autoptr (GBytes) frame = NULL;
  g_autoptr (GBytes) head = g_bytes_new_static ("\0\0\0\0\0\0\0\x2a", 8);
  g_autoptr (GBytes) tail = g_bytes_new_static ("", 0);
  guint8 h[IPC_FRAME_HEADER];

  env->source = g_strdup ("smtp");
  env->mail_from = g_strdup ("a@example.org");
  g_ptr_array_add (env->rcpts, g_strdup ("foi@council.example"));
  payload = ipc_submit_pack (42, env, raw);
  frame = ipc_submit_frame (IPC_PARSE, 42, env, raw);
  ck_assert_uint_eq (g_bytes_get_size (frame),
                     IPC_FRAME_HEADER + g_bytes_get_size (payload));
  ipc_frame_header (h, IPC_PARSE, g_bytes_get_size (payload));
  ck_assert_int_eq (memcmp (g_bytes_get_data (frame, NULL), h, sizeof h), 0);
  ck_assert_int_eq (memcmp ((const guint8 *) g_bytes_get_data (frame, NULL)
                                + IPC_FRAME_HEADER,
                            g_bytes_get_data (payload, NULL),
                            g_bytes_get_size (payload)), 0);

  ck_assert_int_eq (socketpair (AF_UNIX, SOCK_STREAM, 0, sp), 0);
  rx = ipc_channel_new (sp[0], 1 << 20, sink_frame, sink_closed, &s);
  tx = ipc_channel_new (sp[1], 16, sink_frame, sink_closed, &s);
  ipc_channel_send (tx, IPC_PARSED, head);
  ipc_channel_send_frame (tx, frame);
  ipc_channel_send (tx, IPC_READY, tail);
  for (int i = 0; i < 10000 && s.frames->len < 3; i++)
    g_main_context_iteration (NULL, TRUE);
  ck_assert_uint_eq (s.frames->len, 3);
  ck_assert_uint_eq (ipc_channel_pending (tx), 0);
  {
    /* the sink keeps the type byte before each payload */
    const guint8 *got = g_bytes_get_data (s.frames->pdata[1], NULL);
    ck_assert_uint_eq (got[0], IPC_PARSE);
    ck_assert_uint_eq (g_bytes_get_size (s.frames->pdata[1]),
                       1 + g_bytes_get_size (payload));
    ck_assert_int_eq (memcmp (got + 1, g_bytes_get_data (payload, NULL),
                              g_bytes_get_size (payload)), 0);
    ck_assert_uint_eq (((const guint8 *) g_bytes_get_data (
                            s.frames->pdata[0], NULL))[0], IPC_PARSED);
    ck_assert_uint_eq (g_bytes_get_size (s.frames->pdata[2]), 1);
  }
  ipc_channel_free (&tx);
  ipc_channel_free (&rx);
  g_ptr_array_unref (s.frames);
}
END_TEST

static Suite *
ipc_suite (void)
{
  Suite *s = suite_create ("ipc");
  TCase *tc = tcase_create ("frames");

  tcase_add_loop_test (tc, test_frames_any_split, 0, 15);
  tcase_add_loop_test (tc, test_frames_mixed_sizes, 0, 3);
  tcase_add_loop_test (tc, test_frame_over_bound_closes, 0, 2);
  tcase_add_test (tc, test_send_receive_large);
  tcase_add_test (tc, test_payloads);
  tcase_add_test (tc, test_send_whole_frame);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (ipc_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
