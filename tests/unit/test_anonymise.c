/*
 * test_anonymise.c - router/anonymise.c: personal data in text replaced by
 * placeholders for the statistics kept after `subject anonymise`.  A table
 * of cases: each kind the parser finds, the person's own details, whole
 * words only for names, text without personal data left as it was.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "router/anonymise.h"

typedef struct {
  const char *name;
  const char *in;
  const char *person_name;
  const char *person_email;
  const char *expect;          /* exact output */
} anon_case;

static const anon_case cases[] = {
  { "nothing personal", "The potholes on Mill Lane are worse.", NULL, NULL,
    "The potholes on Mill Lane are worse." },
  { "email", "write to jo.bloggs@example.org please", NULL, NULL,
    "write to [email] please" },
  { "phone", "call 07700 900123 today", NULL, NULL, "call [phone] today" },
  { "postcode", "I live near SW1A 1AA.", NULL, NULL,
    "I live near [postcode]." },
  { "nino", "NI AB 12 34 56 C thanks", NULL, NULL, "NI [nino] thanks" },
  { "dob", "born 14/02/1983 in Leeds", NULL, NULL, "born [dob] in Leeds" },
  { "sort code and account", "sort code 12-34-56 account 31926819", NULL,
    NULL, "sort code [sort-code] account [account]" },
  { "card", "card 4111 1111 1111 1111 was charged", NULL, NULL,
    "card [card] was charged" },
  { "name and its words", "Regards, Gina Quartermaine. gina says hi",
    "Gina Quartermaine", NULL, "Regards, [name]. [name] says hi" },
  { "name words are whole words", "Annual report from Ann", "Ann Lee", NULL,
    "Annual report from [name]" },
  { "short name words stay", "Mr Li wrote", "Jo Li", NULL, "Mr Li wrote" },
  { "own address in any case", "from GINA@Example.org", NULL,
    "gina@example.org", "from [email]" },
};

START_TEST (test_table)
{
  const anon_case *c = &cases[_i];
  anonymise_person p = { c->person_name, c->person_email, NULL, NULL };
  guint n = 0;
  char *out = anonymise_text (c->in, &p, &n);

  ck_assert_msg (strcmp (out, c->expect) == 0, "%s: got '%s'", c->name, out);
  ck_assert_msg ((n == 0) == (strcmp (c->in, c->expect) == 0), "%s: count %u",
                 c->name, n);
  g_free (out);
}
END_TEST

START_TEST (test_null)
{
  ck_assert_ptr_null (anonymise_text (NULL, NULL, NULL));
}
END_TEST

static Suite *
anonymise_suite (void)
{
  Suite *s = suite_create ("anonymise");
  TCase *tc = tcase_create ("text");

  tcase_add_loop_test (tc, test_table, 0, G_N_ELEMENTS (cases));
  tcase_add_test (tc, test_null);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (anonymise_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
