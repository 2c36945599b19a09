/*
 * test_outbox.c - messages the outbox builds (issue 8): a Welsh
 * acknowledgement from conf/templates with the due date in Welsh, the
 * English fallback, a department notification (the department address,
 * Auto-Submitted: auto-generated, no Reply-To, no threading headers, no
 * text of the case even when one is at hand), and the plus-address MAC
 * check threading relies on (right, forged, missing, mangled, case).
 */
#include <check.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

#include "outbound/outbox.h"
#include "store/store.h"

static char *tmpdir;
static store_keys *keys;
static intake_config cfg;

static void
setup (void)
{
  g_autofree char *kpath = NULL;
  GError *error = NULL;
  intake_queue_config *q = g_new0 (intake_queue_config, 1);

  tmpdir = g_dir_make_tmp ("intake-outbox-XXXXXX", NULL);
  kpath = g_build_filename (tmpdir, "master.key", NULL);
  ck_assert (store_keys_generate (kpath, &error));
  keys = store_keys_load (kpath, &error);
  ck_assert_ptr_nonnull (keys);
  memset (&cfg, 0, sizeof cfg);
  cfg.hostname = (char *) "intake.test";
  cfg.templates_dir = (char *) "conf/templates";
  cfg.mailboxes = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (cfg.mailboxes, (char *) "ymholiadau@council.example",
                       (char *) "Ymholiadau");
  cfg.queues = g_ptr_array_new_with_free_func (g_free);
  q->name = (char *) "housing";
  q->notify = (char *) "housing@departments.example";
  g_ptr_array_add (cfg.queues, q);
}

static void
teardown (void)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);
  ck_assert_int_eq (system (cmd), 0);
  g_clear_pointer (&tmpdir, g_free);
  store_keys_free (&keys);
  g_hash_table_unref (cfg.mailboxes);
  g_ptr_array_unref (cfg.queues);
}

static store_outbox_item
item (const char *kind, const char *language)
{
  return (store_outbox_item) {
    .id = 1, .kind = (char *) kind, .ref = (char *) "ESC-2026-000123-K",
    .case_kind = (char *) "complaint", .queue = (char *) "housing",
    .due_at = 1800619200LL * G_USEC_PER_SEC,     /* Fri 22 Jan 2027 */
    .to = (char *) "gwen@example.org",
    .mailbox = (char *) "ymholiadau+ESC-2026-000123-K.abcd@council.example",
    .subject = (char *) "Damp at 10 High Street",
    .in_reply_to = (char *) "gwen-1@example.org",
    .body = (char *) "Mrs Jones, your son's asthma...",
    .priority = (char *) "high", .language = (char *) language };
}

static char *
build (const store_outbox_item *it, char **rcpt)
{
  g_autoptr (GBytes) b = outbox_build (&cfg, keys, it, rcpt);
  gsize n;
  const char *p;

  ck_assert_ptr_nonnull (b);
  p = g_bytes_get_data (b, &n);
  return g_strndup (p, n);
}

START_TEST (test_welsh_ack)
{
  store_outbox_item it = item ("ack", "cy");
  g_autofree char *rcpt = NULL;
  g_autofree char *m = build (&it, &rcpt);

  ck_assert_str_eq (rcpt, "gwen@example.org");
  ck_assert_ptr_nonnull (strstr (m, "Mae eich cwyn wedi dod i law"));
  ck_assert_ptr_nonnull (strstr (m, "Byddwn yn ateb erbyn Dydd Gwener 22"
                                    " Ionawr 2027."));
  /* From the mailbox itself, not its plus-address */
  ck_assert_ptr_nonnull (strstr (m, "From: Ymholiadau"
                                    " <ymholiadau@council.example>"));
  ck_assert_ptr_nonnull (strstr (m, "Auto-Submitted: auto-replied"));
}
END_TEST

START_TEST (test_english_fallback)
{
  store_outbox_item it = item ("ack", NULL);
  g_autofree char *rcpt = NULL;
  g_autofree char *m = build (&it, &rcpt);

  ck_assert_ptr_nonnull (strstr (m, "Your complaint has been received"));
  ck_assert_ptr_nonnull (strstr (m, "Friday 22 January 2027"));
  ck_assert_ptr_null (strstr (m, "Byddwn"));
}
END_TEST

START_TEST (test_notification)
{
  store_outbox_item it = item ("notify", "cy");
  g_autofree char *rcpt = NULL;
  g_autofree char *m = build (&it, &rcpt);

  ck_assert_str_eq (rcpt, "housing@departments.example");
  ck_assert_ptr_nonnull (strstr (m, "Auto-Submitted: auto-generated"));
  ck_assert_ptr_nonnull (strstr (m, "ESC-2026-000123-K"));
  ck_assert_ptr_nonnull (strstr (m, "high"));
  ck_assert_ptr_nonnull (strstr (m, "Friday 22 January 2027"));
  ck_assert_ptr_nonnull (strstr (m, "intakectl cases show"));
  ck_assert_ptr_null (strstr (m, "Reply-To"));
  ck_assert_ptr_null (strstr (m, "In-Reply-To"));
  ck_assert_ptr_null (strstr (m, "gwen"));
  ck_assert_ptr_null (strstr (m, "Jones"));
  ck_assert_ptr_null (strstr (m, "asthma"));
  ck_assert_ptr_null (strstr (m, "High Street"));

  /* a queue without an address: nobody to write to */
  it.queue = (char *) "parks";
  g_clear_pointer (&rcpt, g_free);
  ck_assert_ptr_null (outbox_build (&cfg, keys, &it, &rcpt));
}
END_TEST

START_TEST (test_digest)
{
  store_outbox_item a = item ("notify", NULL);
  store_outbox_item b = item ("notify", NULL);
  g_autoptr (GPtrArray) items = g_ptr_array_new ();
  g_autoptr (GBytes) raw = NULL;
  g_autofree char *rcpt = NULL;
  g_autofree char *m = NULL;

  b.ref = (char *) "ESC-2026-000124-M";
  b.case_kind = (char *) "enquiry";
  b.priority = (char *) "normal";
  b.due_at = 0;
  ((intake_queue_config *) cfg.queues->pdata[0])->notify_digest = TRUE;
  ck_assert (outbox_digest (&cfg, &a));
  g_ptr_array_add (items, &a);
  g_ptr_array_add (items, &b);
  raw = outbox_build_digest (&cfg, items, &rcpt);
  ck_assert_ptr_nonnull (raw);
  m = g_strndup (g_bytes_get_data (raw, NULL), g_bytes_get_size (raw));
  ck_assert_str_eq (rcpt, "housing@departments.example");
  ck_assert_ptr_nonnull (strstr (m, "Subject: New cases in housing"));
  ck_assert_ptr_nonnull (strstr (m, "- ESC-2026-000123-K: complaint,"
                                    " priority high, due Friday 22 January"
                                    " 2027"));
  ck_assert_ptr_nonnull (strstr (m, "- ESC-2026-000124-M: enquiry,"
                                    " priority normal\n"));
  ck_assert_ptr_nonnull (strstr (m, "Auto-Submitted: auto-generated"));
  ck_assert_ptr_null (strstr (m, "Reply-To"));
  ck_assert_ptr_null (strstr (m, "gwen"));
  ck_assert_ptr_null (strstr (m, "asthma"));
  ck_assert_ptr_null (strstr (m, "High Street"));
  /* an acknowledgement is never part of a digest */
  a.kind = (char *) "ack";
  ck_assert (!outbox_digest (&cfg, &a));
}
END_TEST

/* An HTML sibling of the template chosen: multipart/alternative, the plain
 * text first, every value escaped in the HTML (a reply's text is never
 * markup), line breaks kept as <br>.  */
START_TEST (test_html_alternative)
{
  store_outbox_item it = item ("reply", NULL);
  g_autofree char *rcpt = NULL;
  g_autofree char *m = NULL;
  g_autofree char *txt = g_build_filename (tmpdir, "reply.txt", NULL);
  g_autofree char *htm = g_build_filename (tmpdir, "reply.html", NULL);
  g_autofree char *plain = NULL;
  g_autofree char *html = NULL;
  GMimeStream *stream;
  GMimeParser *parser;
  GMimeMessage *msg;
  GMimeObject *part;
  GMimeMultipart *alt;

  ck_assert (g_file_set_contents (txt, "Subject: Re: your message"
                                       " [{{ref}}]\n\n{{body}}\n", -1, NULL));
  ck_assert (g_file_set_contents (htm, "Subject: ignored\n<html><body>"
                                       "<p>{{body}}</p><p>Ref {{ref}},"
                                       " {{queue}}</p></body></html>\n",
                                  -1, NULL));
  cfg.templates_dir = tmpdir;
  it.body = (char *) "<script>alert(1)</script>\nTom & Jerry's \"bin\"";
  m = build (&it, &rcpt);
  cfg.templates_dir = (char *) "conf/templates";

  stream = g_mime_stream_mem_new_with_buffer (m, strlen (m));
  parser = g_mime_parser_new_with_stream (stream);
  msg = g_mime_parser_construct_message (parser, NULL);
  ck_assert_ptr_nonnull (msg);
  part = g_mime_message_get_mime_part (msg);
  ck_assert (GMIME_IS_MULTIPART (part));
  ck_assert (g_mime_content_type_is_type (g_mime_object_get_content_type
                                              (part),
                                          "multipart", "alternative"));
  alt = GMIME_MULTIPART (part);
  ck_assert_int_eq (g_mime_multipart_get_count (alt), 2);
  ck_assert (g_mime_content_type_is_type (g_mime_object_get_content_type
                                              (g_mime_multipart_get_part
                                                   (alt, 0)),
                                          "text", "plain"));
  ck_assert (g_mime_content_type_is_type (g_mime_object_get_content_type
                                              (g_mime_multipart_get_part
                                                   (alt, 1)),
                                          "text", "html"));
  plain = g_mime_text_part_get_text (GMIME_TEXT_PART (
      g_mime_multipart_get_part (alt, 0)));
  html = g_mime_text_part_get_text (GMIME_TEXT_PART (
      g_mime_multipart_get_part (alt, 1)));
  ck_assert_ptr_nonnull (strstr (plain, "<script>alert(1)</script>\n"));
  ck_assert_ptr_null (strstr (html, "<script>"));
  ck_assert_ptr_nonnull (strstr (html, "<p>&lt;script&gt;alert(1)"
                                       "&lt;/script&gt;<br>\nTom &amp;"
                                       " Jerry&apos;s &quot;bin&quot;</p>"));
  ck_assert_ptr_nonnull (strstr (html, "Ref ESC-2026-000123-K, housing"));
  ck_assert_ptr_null (strstr (html, "Subject:"));
  ck_assert_str_eq (g_mime_message_get_subject (msg),
                    "Re: your message [ESC-2026-000123-K]");
  g_object_unref (msg);
  g_object_unref (parser);
  g_object_unref (stream);
}
END_TEST

START_TEST (test_plus_mac)
{
  const char *ref = "ESC-2026-000123-K";
  char mac[STORE_REF_MAC_LEN + 1];
  g_autofree char *good = NULL;
  g_autofree char *upper = NULL;
  g_autofree char *bad = NULL;

  store_ref_mac (keys, ref, mac);
  good = g_strdup_printf ("enquiries+%s.%s@council.example", ref, mac);
  upper = g_ascii_strup (good, -1);
  bad = g_strdup_printf ("enquiries+%s.%c%s@council.example", ref,
                         mac[0] == '0' ? '1' : '0', mac + 1);
  ck_assert_int_eq (store_ref_plus_check (keys, good, ref), 1);
  ck_assert_int_eq (store_ref_plus_check (keys, upper, ref), 1);
  ck_assert_int_eq (store_ref_plus_check (keys, bad, ref), -1);
  ck_assert_int_eq (store_ref_plus_check (keys,
      "enquiries+ESC-2026-000123-K@council.example", ref), -1);
  ck_assert_int_eq (store_ref_plus_check (keys,
      "enquiries+x.ESC-2026-000123-K.abcd@council.example", ref), -1);
  ck_assert_int_eq (store_ref_plus_check (keys, "enquiries@council.example",
                                          ref), 0);
  ck_assert_int_eq (store_ref_plus_check (keys,
      "enquiries+ESC-2026-000124-M.abcd@council.example", ref), 0);
  {
    /* one hex digit too many */
    g_autofree char *longer = g_strdup_printf (
        "enquiries+%s.%s0@council.example", ref, mac);
    ck_assert_int_eq (store_ref_plus_check (keys, longer, ref), -1);
  }
}
END_TEST

static Suite *
outbox_suite (void)
{
  Suite *s = suite_create ("outbox");
  TCase *tc = tcase_create ("build");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_welsh_ack);
  tcase_add_test (tc, test_english_fallback);
  tcase_add_test (tc, test_notification);
  tcase_add_test (tc, test_digest);
  tcase_add_test (tc, test_plus_mac);
  tcase_add_test (tc, test_html_alternative);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (outbox_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
