/*
 * test_log.c - the log writer (intake/intake_log.c).
 *
 * Covers SECURITY-TESTS 33: a message that holds a line break, a
 * carriage return, an escape sequence or DEL is written as one line, the
 * control bytes as \xNN, so that text from outside (a HELO name, a header
 * value that reaches a log line by mistake) can neither forge a second
 * record nor drive a terminal; a very long message is cut at 4 KB; the
 * record starts with a UTC time stamp, the level, domain and role.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "intake/intake_log.h"

/* What g_message (@msg) writes, read back from stderr.  */
static char *
logged (const char *msg)
{
  g_autofree char *path = NULL;
  int fd = g_file_open_tmp ("intake-test-log-XXXXXX", &path, NULL);
  int saved = dup (STDERR_FILENO);
  gchar *out = NULL;

  ck_assert_int_ge (fd, 0);
  ck_assert_int_ge (saved, 0);
  fflush (stderr);
  dup2 (fd, STDERR_FILENO);
  g_log_structured ("intake-test", G_LOG_LEVEL_MESSAGE, "MESSAGE", "%s", msg);
  fflush (stderr);
  dup2 (saved, STDERR_FILENO);
  close (saved);
  close (fd);
  ck_assert (g_file_get_contents (path, &out, NULL, NULL));
  unlink (path);
  return out;
}

START_TEST (test_control_bytes_escaped)
{
  g_autofree char *out = NULL;

  intake_log_init ("smtp");
  out = logged ("event=helo name=evil\r\n2026-01-01T00:00:00.000Z notice"
                " forged\x1b[2J\x7f end");
  ck_assert_msg (g_regex_match_simple ("^[0-9]{4}-[0-9]{2}-[0-9]{2}T"
                                       "[0-9:.]{12}Z notice intake-test "
                                       "smtp\\[[0-9]+\\]: ", out, 0, 0),
                 "%s", out);
  /* one line: the only line end is the last byte */
  ck_assert_ptr_eq (strchr (out, '\n'), out + strlen (out) - 1);
  ck_assert_ptr_null (strchr (out, '\r'));
  ck_assert_ptr_null (strchr (out, '\x1b'));
  ck_assert_ptr_null (strchr (out, '\x7f'));
  ck_assert_ptr_nonnull (strstr (out, "name=evil\\x0d\\x0a2026-01-01T"));
  ck_assert_ptr_nonnull (strstr (out, "forged\\x1b[2J\\x7f end\n"));
}
END_TEST

START_TEST (test_long_message_cut)
{
  g_autofree char *big = g_strnfill (100000, 'a');
  g_autofree char *out = NULL;

  intake_log_init ("master");
  out = logged (big);
  ck_assert_uint_le (strlen (out), 4096 + 1);
  ck_assert_ptr_eq (strchr (out, '\n'), out + strlen (out) - 1);
}
END_TEST

static Suite *
log_suite (void)
{
  Suite *s = suite_create ("log");
  TCase *tc = tcase_create ("writer");

  tcase_add_test (tc, test_control_bytes_escaped);
  tcase_add_test (tc, test_long_message_cut);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (log_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
