/*
 * test_clock.c - statutory clocks (router/clock.c) and the shipped
 * conf/bank-holidays.json.
 *
 * Covers: every date in the shipped file is a weekday and the file is in
 * the normalised form import writes; spot checks of each nation's
 * holidays (2 January, St Andrew's Day, the Scottish August holiday, St
 * Patrick's Day, 12 July, substitute days); FOI/complaint due dates in
 * working days and UK working days (receipt on a Friday, a weekend, a bank
 * holiday; over Christmas and Easter; nation differences); subject-access
 * due dates in calendar months (month ends, leap years, moved past weekends
 * and holidays); the Europe/London day of receipt around midnight and
 * both clock changes; "beyond the file" flags; two published FOI counts
 * from 2014 against a small fixture; rule parsing; import of good,
 * messy and bad files with the error each gives; the write being atomic.
 *
 * Expected dates were counted by hand on a calendar (the reasoning is in
 * the comments) and cross-checked with an independent script; none is
 * computed by the code under test.  The tests read conf/bank-holidays.json
 * relative to the working directory (make check runs from the top of the
 * tree), or CLOCK_TEST_CONF.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "router/clock.h"

static char *tmpdir;

static const char *
conf_path (void)
{
  const char *p = g_getenv ("CLOCK_TEST_CONF");

  return p != NULL ? p : "conf/bank-holidays.json";
}

static void
setup (void)
{
  tmpdir = g_dir_make_tmp ("intake-clock-XXXXXX", NULL);
  ck_assert_ptr_nonnull (tmpdir);
}

static void
teardown (void)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);
  ck_assert_int_eq (system (cmd), 0);
  g_clear_pointer (&tmpdir, g_free);
}

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static char *
write_tmp (const char *name, const char *content)
{
  char *path = tmp_path (name);

  ck_assert (g_file_set_contents (path, content, -1, NULL));
  return path;
}

static clock_calendar *
load (const char *path, const char *nation)
{
  g_autoptr (GError) error = NULL;
  clock_calendar *c = clock_calendar_load (path, nation, &error);

  ck_assert_msg (c != NULL, "%s", error ? error->message : "");
  return c;
}

static GDate
date_of (const char *iso)
{
  GDate d;
  int y, m, dd;

  ck_assert_int_eq (sscanf (iso, "%d-%d-%d", &y, &m, &dd), 3);
  g_date_clear (&d, 1);
  g_date_set_dmy (&d, (GDateDay) dd, (GDateMonth) m, (GDateYear) y);
  return d;
}

static char *
iso_of (const GDate *d)
{
  char buf[16];

  if (!g_date_valid (d))
    return g_strdup ("(invalid)");
  g_date_strftime (buf, sizeof buf, "%Y-%m-%d", d);
  return g_strdup (buf);
}

/* "YYYY-MM-DD" is noon UTC that day (the same date in London all year);
 * anything longer is an ISO 8601 date and time with its zone.  */
static GDateTime *
received_at (const char *s)
{
  g_autofree char *full = strlen (s) == 10
                              ? g_strconcat (s, "T12:00:00Z", NULL)
                              : g_strdup (s);
  GDateTime *t = g_date_time_new_from_iso8601 (full, NULL);

  ck_assert_msg (t != NULL, "bad time in table: %s", s);
  return t;
}

/* ----------------------------------------------------- the shipped file */

START_TEST (test_shipped_weekdays_and_years)
{
  g_autoptr (JsonParser) p = json_parser_new ();
  static const char *const nations[] = { "england-and-wales", "scotland",
                                         "northern-ireland" };
  /* 8 a year in England and Wales; Scotland drops Easter Monday and adds
   * 2 January and St Andrew's Day; NI adds St Patrick's Day and 12 July */
  static const guint counts[] = { 40, 45, 50 };

  ck_assert_msg (json_parser_load_from_file (p, conf_path (), NULL),
                 "cannot read %s", conf_path ());
  JsonObject *root = json_node_get_object (json_parser_get_root (p));
  for (int n = 0; n < 3; n++)
    {
      JsonObject *nat = json_object_get_object_member (root, nations[n]);
      JsonArray *ev = json_object_get_array_member (nat, "events");
      ck_assert_str_eq (json_object_get_string_member (nat, "division"),
                        nations[n]);
      ck_assert_uint_eq (json_array_get_length (ev), counts[n]);
      for (guint i = 0; i < json_array_get_length (ev); i++)
        {
          const char *ds = json_object_get_string_member (
              json_array_get_object_element (ev, i), "date");
          GDate d = date_of (ds);
          GDateWeekday w = g_date_get_weekday (&d);
          ck_assert_msg (w != G_DATE_SATURDAY && w != G_DATE_SUNDAY,
                         "%s %s is a weekend day", nations[n], ds);
          ck_assert_uint_ge (g_date_get_year (&d), 2024);
          ck_assert_uint_le (g_date_get_year (&d), 2028);
        }
    }
  for (int n = 0; n < 3; n++)
    {
      clock_calendar *c = load (conf_path (), nations[n]);
      guint first = 0, last = 0;
      clock_calendar_years (c, &first, &last);
      ck_assert_uint_eq (first, 2024);
      ck_assert_uint_eq (last, 2028);
      ck_assert_str_eq (clock_calendar_nation (c), nations[n]);
      clock_calendar_free (&c);
      ck_assert_ptr_null (c);
    }
  clock_calendar_free (NULL);
}
END_TEST

START_TEST (test_shipped_is_normalised)
{
  g_autofree char *out = tmp_path ("out.json");
  g_autofree char *a = NULL, *b = NULL;
  g_autoptr (GError) error = NULL;

  /* what `intakectl holidays import` writes is what is committed */
  ck_assert_msg (clock_holidays_import (conf_path (), out, &error), "%s",
                 error ? error->message : "");
  ck_assert (g_file_get_contents (conf_path (), &a, NULL, NULL));
  ck_assert (g_file_get_contents (out, &b, NULL, NULL));
  ck_assert_str_eq (a, b);
}
END_TEST

typedef struct {
  const char *nation;
  const char *date;
  gboolean working;
} day_case;

/* E = england-and-wales, S = scotland, N = northern-ireland */
#define E "england-and-wales"
#define S "scotland"
#define N "northern-ireland"

static const day_case day_cases[] = {
  /* New Year: 2027-01-01 is a Friday; in 2028 1 January is a Saturday and
   * 2 January a Sunday, so the substitutes are Monday 3 and (Scotland)
   * Tuesday 4 January */
  { E, "2027-01-01", FALSE },
  { E, "2028-01-03", FALSE },
  { E, "2028-01-04", TRUE },
  { S, "2028-01-03", FALSE },
  { S, "2028-01-04", FALSE },
  { N, "2028-01-04", TRUE },
  /* 2 January: Scotland only; 2027-01-02 is a Saturday: Monday 4th */
  { S, "2026-01-02", FALSE },
  { E, "2026-01-02", TRUE },
  { N, "2026-01-02", TRUE },
  { S, "2027-01-04", FALSE },
  { E, "2027-01-04", TRUE },
  /* St Patrick's Day: NI only; 2024-03-17 was a Sunday: Monday 18th */
  { N, "2026-03-17", FALSE },
  { E, "2026-03-17", TRUE },
  { N, "2024-03-18", FALSE },
  { S, "2024-03-18", TRUE },
  /* Easter 2026 (Sunday 5 April): Good Friday everywhere, Easter Monday
   * not in Scotland */
  { E, "2026-04-03", FALSE },
  { S, "2026-04-03", FALSE },
  { N, "2026-04-03", FALSE },
  { E, "2026-04-06", FALSE },
  { N, "2026-04-06", FALSE },
  { S, "2026-04-06", TRUE },
  /* Easter 2028 is 16 April */
  { E, "2028-04-14", FALSE },
  { E, "2028-04-17", FALSE },
  /* May: first and last Mondays, everywhere */
  { S, "2026-05-04", FALSE },
  { N, "2026-05-25", FALSE },
  /* 12 July: NI; 2026-07-12 is a Sunday: Monday 13th; 2025-07-12 a
   * Saturday: Monday 14th */
  { N, "2026-07-13", FALSE },
  { E, "2026-07-13", TRUE },
  { N, "2025-07-14", FALSE },
  { N, "2028-07-12", FALSE },
  /* August: first Monday in Scotland, last Monday elsewhere */
  { S, "2026-08-03", FALSE },
  { E, "2026-08-03", TRUE },
  { S, "2026-08-31", TRUE },
  { E, "2026-08-31", FALSE },
  { N, "2026-08-31", FALSE },
  /* St Andrew's Day: Scotland; 2025-11-30 is a Sunday: Monday 1 December */
  { S, "2026-11-30", FALSE },
  { E, "2026-11-30", TRUE },
  { S, "2025-12-01", FALSE },
  { E, "2025-12-01", TRUE },
  /* Christmas 2026: Friday 25th; Boxing Day a Saturday, substitute Monday
   * 28th.  2027: both on the weekend, substitutes Monday 27 and Tuesday
   * 28 December. */
  { E, "2026-12-25", FALSE },
  { E, "2026-12-26", FALSE },
  { E, "2026-12-28", FALSE },
  { S, "2026-12-28", FALSE },
  { E, "2026-12-29", TRUE },
  { N, "2027-12-27", FALSE },
  { N, "2027-12-28", FALSE },
  { N, "2027-12-29", TRUE },
  /* beyond the file: weekdays only */
  { E, "2029-01-01", TRUE },
  { E, "2029-01-06", FALSE },
  { E, "2023-12-25", TRUE },
};

START_TEST (test_working_days)
{
  const day_case *k = &day_cases[_i];
  clock_calendar *c = load (conf_path (), k->nation);
  GDate d = date_of (k->date);

  ck_assert_msg (clock_is_working_day (c, &d) == k->working,
                 "%s %s: expected %s", k->nation, k->date,
                 k->working ? "a working day" : "not a working day");
  clock_calendar_free (&c);
}
END_TEST

/* ------------------------------------------------------------ due dates */

typedef struct {
  const char *nation;
  const char *rule;
  const char *received;
  const char *due;
  gboolean beyond;
} due_case;

#define FOI "20 working days"
#define UKFOI "20 UK working days"
#define SAR "1 calendar month"

static const due_case due_cases[] = {
  /* Received Friday 9 January 2026: day 1 is Monday 12th, four clear
   * weeks: 12-16, 19-23, 26-30 January, 2-6 February.  A request on the
   * Saturday or Sunday has the same day 1 (ICO: receipt may be a
   * non-working day; day one is the next working day).  From Monday 12th,
   * day 1 is Tuesday 13th and day 20 Monday 9 February. */
  { E, FOI, "2026-01-09", "2026-02-06", FALSE },
  { E, FOI, "2026-01-10", "2026-02-06", FALSE },
  { E, FOI, "2026-01-11", "2026-02-06", FALSE },
  { E, FOI, "2026-01-12", "2026-02-09", FALSE },
  /* Received on a bank holiday, Monday 4 May 2026 (early May): day 1 is
   * Tuesday 5th; 5-8 May (1-4), 11-15 (5-9), 18-22 (10-14), Monday 25th
   * is the spring bank holiday, 26-29 (15-18), 1-2 June (19-20). */
  { E, FOI, "2026-05-04", "2026-06-02", FALSE },
  { E, UKFOI, "2026-05-04", "2026-06-02", FALSE },
  /* Christmas: received Friday 18 December 2026.  Day 1 Monday 21st;
   * 21-24 December (1-4); Friday 25th Christmas, 26-27 weekend, Monday
   * 28th Boxing Day substitute; 29-31 December (5-7); Friday 1 January
   * 2027 New Year; 4-8 January (8-12), 11-15 (13-17), 18-20 (18-20):
   * Wednesday 20 January 2027.  Under FOIA s.10(6) Scotland's substitute
   * for 2 January, Monday 4 January 2027, is not a working day either,
   * so everything after it moves a day: Thursday 21 January; the same in
   * Scotland by its own calendar. */
  { E, FOI, "2026-12-18", "2027-01-20", FALSE },
  { E, UKFOI, "2026-12-18", "2027-01-21", FALSE },
  { S, FOI, "2026-12-18", "2027-01-21", FALSE },
  { N, FOI, "2026-12-18", "2027-01-20", FALSE },
  /* Christmas 2024: received Friday 20 December 2024.  Day 1 Monday
   * 23rd, 24th (2), 25-26 holidays, 27th (3), 30-31 (4-5), 1 January
   * holiday, 2-3 January (6-7), 6-10 (8-12), 13-17 (13-17), 20-22
   * (18-20): Wednesday 22 January 2025; UK-wide 2 January 2025 (Scotland)
   * drops out: Thursday 23rd. */
  { E, FOI, "2024-12-20", "2025-01-22", FALSE },
  { E, UKFOI, "2024-12-20", "2025-01-23", FALSE },
  /* Easter 2026: received Friday 6 March.  9-13 March (1-5), 16-20
   * (6-10), 23-27 (11-15), 30 March-2 April (16-19), Good Friday 3rd and
   * Easter Monday 6th skipped, Tuesday 7 April (20).  UK-wide St
   * Patrick's Day (Tuesday 17 March, NI) is skipped too: Wednesday 8th. */
  { E, FOI, "2026-03-06", "2026-04-07", FALSE },
  { E, UKFOI, "2026-03-06", "2026-04-08", FALSE },
  /* Received on Good Friday 3 April 2026.  England: day 1 is Tuesday 7th
   * (Easter Monday is a holiday): 7-10 (1-4), 13-17 (5-9), 20-24 (10-14),
   * 27 April-1 May (15-19), Monday 4 May holiday, Tuesday 5 May (20).
   * Scotland works Easter Monday: day 1 Monday 6th, four clear weeks to
   * Friday 1 May.  UK-wide follows England; the nation of the calendar
   * does not matter for it. */
  { E, FOI, "2026-04-03", "2026-05-05", FALSE },
  { S, FOI, "2026-04-03", "2026-05-01", FALSE },
  { S, UKFOI, "2026-04-03", "2026-05-05", FALSE },
  /* August: received Friday 24 July 2026.  Scotland: 27-31 July (1-5),
   * Monday 3 August holiday, 4-7 (6-9), 10-14 (10-14), 17-21 (15-19),
   * Monday 24th (20).  England: four clear weeks to Friday 21 August. */
  { S, FOI, "2026-07-24", "2026-08-24", FALSE },
  { E, FOI, "2026-07-24", "2026-08-21", FALSE },
  { E, UKFOI, "2026-07-24", "2026-08-24", FALSE },
  /* St Andrew's Day: received Friday 20 November 2026.  Scotland: 23-27
   * November (1-5), Monday 30th holiday, 1-4 December (6-9), 7-11
   * (10-14), 14-18 (15-19), Monday 21st (20).  England: Friday 18th. */
  { S, FOI, "2026-11-20", "2026-12-21", FALSE },
  { E, FOI, "2026-11-20", "2026-12-18", FALSE },
  { E, UKFOI, "2026-11-20", "2026-12-21", FALSE },
  /* 12 July: received Friday 2 July 2027.  NI: 5-9 July (1-5), Monday
   * 12th holiday, 13-16 (6-9), 19-23 (10-14), 26-30 (15-19), Monday 2
   * August (20).  England: Friday 30 July.  UK-wide: 12 July and
   * Scotland's 2 August both skipped: Tuesday 3 August. */
  { N, FOI, "2027-07-02", "2027-08-02", FALSE },
  { E, FOI, "2027-07-02", "2027-07-30", FALSE },
  { E, UKFOI, "2027-07-02", "2027-08-03", FALSE },
  /* St Patrick's Day: received Friday 13 March 2026.  NI: Monday 16th
   * (1), Tuesday 17th holiday, 18-20 (2-4), 23-27 (5-9), 30 March-2
   * April (10-13), Easter, 7-10 April (14-17), 13-15 (18-20): Wednesday
   * 15 April.  England: Tuesday 14 April. */
  { N, FOI, "2026-03-13", "2026-04-15", FALSE },
  { E, FOI, "2026-03-13", "2026-04-14", FALSE },
  /* Complaints: 10 working days from Wednesday 23 December 2026: 24th
   * (1), 25th and 28th holidays, 29-31 (2-4), 1 January holiday, 4-8
   * January (5-9), Monday 11th (10).  One working day from Thursday 24
   * December: Tuesday 29th. */
  { E, "10 working days", "2026-12-23", "2027-01-11", FALSE },
  { E, "1 working day", "2026-12-24", "2026-12-29", FALSE },

  /* Subject access, one calendar month (ICO): the same date next month,
   * else the month's last day, then past weekends and holidays. */
  /* 31 January 2026 -> 28 February, a Saturday -> Monday 2 March */
  { E, SAR, "2026-01-31", "2026-03-02", FALSE },
  /* 2028 is a leap year: 31 January -> Tuesday 29 February */
  { E, SAR, "2028-01-31", "2028-02-29", FALSE },
  /* 31 January 2027 -> 28 February, a Sunday -> Monday 1 March */
  { E, SAR, "2027-01-31", "2027-03-01", FALSE },
  /* 31 March -> 30 April (Thursday in 2026) */
  { E, SAR, "2026-03-31", "2026-04-30", FALSE },
  /* 30 January: 28 February 2026 (Saturday) -> 2 March; 29 February
   * 2028; 29 January 2027 -> 28 February (Sunday) -> 1 March */
  { E, SAR, "2026-01-30", "2026-03-02", FALSE },
  { E, SAR, "2028-01-30", "2028-02-29", FALSE },
  { E, SAR, "2027-01-29", "2027-03-01", FALSE },
  /* 29 February 2028 -> 29 March */
  { E, SAR, "2028-02-29", "2028-03-29", FALSE },
  /* 31 December 2026 -> 31 January 2027, a Sunday -> Monday 1 February */
  { E, SAR, "2026-12-31", "2027-02-01", FALSE },
  /* received on a Saturday: still counts from that day */
  { E, SAR, "2026-05-02", "2026-06-02", FALSE },
  /* Christmas: 25 November 2026 -> Friday 25 December, weekend, Boxing
   * Day substitute Monday 28th -> Tuesday 29th.  27 November 2027 ->
   * Monday 27 December, a substitute day, as is the 28th -> Wednesday
   * 29 December 2027. */
  { E, SAR, "2026-11-25", "2026-12-29", FALSE },
  { E, SAR, "2027-11-27", "2027-12-29", FALSE },
  /* Easter: 3 March 2026 -> Good Friday 3 April -> England Tuesday 7th
   * (Easter Monday), Scotland Monday 6th.  6 March -> Easter Monday. */
  { E, SAR, "2026-03-03", "2026-04-07", FALSE },
  { S, SAR, "2026-03-03", "2026-04-06", FALSE },
  { E, SAR, "2026-03-06", "2026-04-07", FALSE },
  { S, SAR, "2026-03-06", "2026-04-06", FALSE },
  /* 2 January: 2 December 2025 -> Friday 2 January 2026: England works,
   * Scotland's holiday -> Monday 5 January */
  { E, SAR, "2025-12-02", "2026-01-02", FALSE },
  { S, SAR, "2025-12-02", "2026-01-05", FALSE },
  /* St Andrew's Day: 30 October 2026 -> Monday 30 November */
  { S, SAR, "2026-10-30", "2026-12-01", FALSE },
  { E, SAR, "2026-10-30", "2026-11-30", FALSE },
  /* NI: 17 February -> St Patrick's Day; 12 June 2026 -> Sunday 12 July
   * -> Monday 13th, NI's substitute -> Tuesday 14th */
  { N, SAR, "2026-02-17", "2026-03-18", FALSE },
  { E, SAR, "2026-02-17", "2026-03-17", FALSE },
  { N, SAR, "2026-06-12", "2026-07-14", FALSE },
  { E, SAR, "2026-06-12", "2026-07-13", FALSE },
  /* extended by two months (three in all), and month ends */
  { E, "3 calendar months", "2026-11-30", "2027-03-01", FALSE },
  { E, "3 calendar months", "2027-11-30", "2028-02-29", FALSE },
  { E, "2 calendar months", "2026-12-31", "2027-03-01", FALSE },

  /* The day of receipt is London's.  23:30 UTC on Thursday 4 June 2026
   * is 00:30 BST on Friday 5th: day 1 is Monday 8th, day 20 Friday
   * 3 July (from the UTC date it would be Thursday 2 July).  22:59:59 UTC
   * is still the 4th.  08:00 +09:00 on the 5th is midnight in London. */
  { E, FOI, "2026-06-04T23:30:00Z", "2026-07-03", FALSE },
  { E, FOI, "2026-06-04T22:59:59Z", "2026-07-02", FALSE },
  { E, FOI, "2026-06-05T08:00:00+09:00", "2026-07-03", FALSE },
  /* winter: 23:30 UTC is 23:30 GMT, the same day (Thursday 15 January
   * 2026: day 1 Friday 16th, day 20 Thursday 12 February) */
  { E, FOI, "2026-01-15T23:30:00Z", "2026-02-12", FALSE },
  /* clocks go forward at 01:00 UTC on 29 March 2026: 23:30 UTC on the
   * 28th is still GMT, the 28th (SAR due Tuesday 28 April); 23:30 UTC on
   * the 29th is 00:30 BST on the 30th (due Thursday 30 April) */
  { E, SAR, "2026-03-28T23:30:00Z", "2026-04-28", FALSE },
  { E, SAR, "2026-03-29T23:30:00Z", "2026-04-30", FALSE },
  /* clocks go back at 01:00 UTC on 25 October 2026: 22:30 UTC on the
   * 24th is 23:30 BST, the 24th (due Tuesday 24 November); 23:30 UTC on
   * the 24th is the 25th (due Wednesday 25 November) */
  { E, SAR, "2026-10-24T22:30:00Z", "2026-11-24", FALSE },
  { E, SAR, "2026-10-24T23:30:00Z", "2026-11-25", FALSE },

  /* Beyond the file (2024-2028): computed with weekends only, flagged.
   * From Friday 15 December 2028: 18-22 December (1-5), 25-26 holidays,
   * 27-29 (6-8), Monday 1 January 2029 is not in the file so counts (9),
   * 2-5 (10-13), 8-12 (14-18), 15-16 (19-20): Tuesday 16 January 2029
   * (the real answer is a day later). */
  { E, FOI, "2028-12-15", "2029-01-16", TRUE },
  { E, FOI, "2028-11-01", "2028-11-29", FALSE },
  /* From Wednesday 20 December 2023: 21-22 (1-2), 25-29 December 2023
   * not in the file, counted (3-7), 1 January 2024 is (holiday), 2-5
   * (8-11), 8-12 (12-16), 15-18 (17-20). */
  { E, FOI, "2023-12-20", "2024-01-18", TRUE },
  { E, SAR, "2028-12-15", "2029-01-15", TRUE },
  /* 30 November 2028 -> Saturday 30 December -> Monday 1 January 2029:
   * moved into a year the file does not cover */
  { E, SAR, "2028-11-30", "2029-01-01", TRUE },
  { E, SAR, "2028-11-15", "2028-12-15", FALSE },
  /* only days the count looks at matter: 15 December 2023 -> Monday 15
   * January 2024 */
  { E, SAR, "2023-12-15", "2024-01-15", FALSE },
};

START_TEST (test_due)
{
  const due_case *k = &due_cases[_i];
  clock_calendar *c = load (conf_path (), k->nation);
  g_autoptr (GDateTime) t = received_at (k->received);
  g_autoptr (GError) error = NULL;
  clock_rule rule;
  gboolean beyond = !k->beyond;
  GDate due;
  g_autofree char *got = NULL;

  ck_assert_msg (clock_rule_parse (k->rule, &rule, &error), "%s",
                 error ? error->message : "");
  due = clock_due (c, &rule, t, &beyond);
  got = iso_of (&due);
  ck_assert_msg (strcmp (got, k->due) == 0,
                 "%s, %s, received %s: due %s, expected %s", k->nation,
                 k->rule, k->received, got, k->due);
  ck_assert_msg (beyond == k->beyond, "%s, %s, received %s: beyond %d",
                 k->nation, k->rule, k->received, beyond);
  clock_calendar_free (&c);
}
END_TEST

START_TEST (test_due_none_and_date)
{
  clock_calendar *c = load (conf_path (), E);
  clock_rule none = { CLOCK_NONE, 0 };
  clock_rule foi = { CLOCK_WORKING_DAYS, 20 };
  g_autoptr (GDateTime) t = received_at ("2026-12-18");
  GDate r = date_of ("2026-12-18");
  GDate due;
  gboolean beyond = TRUE;
  g_autofree char *s = NULL;

  due = clock_due (c, &none, t, &beyond);
  ck_assert (!g_date_valid (&due));
  ck_assert (!beyond);
  due = clock_due (c, &foi, t, NULL);
  s = iso_of (&due);
  ck_assert_str_eq (s, "2027-01-20");
  /* the GDate entry point agrees */
  due = clock_due_date (c, &foi, &r, NULL);
  g_free (s);
  s = iso_of (&due);
  ck_assert_str_eq (s, "2027-01-20");
  clock_calendar_free (&c);
}
END_TEST

/* Two counts published for 2014 (informationrightsandwrongs.com, 2015:
 * the ICO had counted a request received Sunday 16 March 2014 and
 * answered Monday 14 April as late, overlooking St Patrick's Day; FOIMan's
 * 2014/15 Christmas table: received Tuesday 2 December 2014 -> 5 January
 * 2015, with Scotland's 2 January skipped), against a fixture with 2014's
 * holidays.  */
static const char fixture_2014[] =
    "{\"england-and-wales\": {\"division\": \"england-and-wales\", \"events\":"
    " [{\"title\": \"a\", \"date\": \"2014-01-01\"},"
    "  {\"title\": \"a\", \"date\": \"2014-04-18\"},"
    "  {\"title\": \"a\", \"date\": \"2014-04-21\"},"
    "  {\"title\": \"a\", \"date\": \"2014-05-05\"},"
    "  {\"title\": \"a\", \"date\": \"2014-05-26\"},"
    "  {\"title\": \"a\", \"date\": \"2014-08-25\"},"
    "  {\"title\": \"a\", \"date\": \"2014-12-25\"},"
    "  {\"title\": \"a\", \"date\": \"2014-12-26\"},"
    "  {\"title\": \"a\", \"date\": \"2015-01-01\"}]},"
    " \"scotland\": {\"division\": \"scotland\", \"events\":"
    " [{\"title\": \"a\", \"date\": \"2014-01-01\"},"
    "  {\"title\": \"a\", \"date\": \"2014-01-02\"},"
    "  {\"title\": \"a\", \"date\": \"2014-04-18\"},"
    "  {\"title\": \"a\", \"date\": \"2014-05-05\"},"
    "  {\"title\": \"a\", \"date\": \"2014-05-26\"},"
    "  {\"title\": \"a\", \"date\": \"2014-08-04\"},"
    "  {\"title\": \"a\", \"date\": \"2014-12-01\"},"
    "  {\"title\": \"a\", \"date\": \"2014-12-25\"},"
    "  {\"title\": \"a\", \"date\": \"2014-12-26\"},"
    "  {\"title\": \"a\", \"date\": \"2015-01-01\"},"
    "  {\"title\": \"a\", \"date\": \"2015-01-02\"}]},"
    " \"northern-ireland\": {\"division\": \"northern-ireland\", \"events\":"
    " [{\"title\": \"a\", \"date\": \"2014-01-01\"},"
    "  {\"title\": \"a\", \"date\": \"2014-03-17\"},"
    "  {\"title\": \"a\", \"date\": \"2014-04-18\"},"
    "  {\"title\": \"a\", \"date\": \"2014-04-21\"},"
    "  {\"title\": \"a\", \"date\": \"2014-05-05\"},"
    "  {\"title\": \"a\", \"date\": \"2014-05-26\"},"
    "  {\"title\": \"a\", \"date\": \"2014-07-14\"},"
    "  {\"title\": \"a\", \"date\": \"2014-08-25\"},"
    "  {\"title\": \"a\", \"date\": \"2014-12-25\"},"
    "  {\"title\": \"a\", \"date\": \"2014-12-26\"},"
    "  {\"title\": \"a\", \"date\": \"2015-01-01\"}]}}";

START_TEST (test_published_2014)
{
  g_autofree char *path = write_tmp ("2014.json", fixture_2014);
  clock_calendar *c = load (path, E);
  clock_rule uk = { CLOCK_UK_WORKING_DAYS, 20 };
  clock_rule local = { CLOCK_WORKING_DAYS, 20 };
  GDate r, due;
  gboolean beyond = TRUE;
  g_autofree char *s1 = NULL, *s2 = NULL, *s3 = NULL;

  /* Sunday 16 March 2014: Monday 17th is St Patrick's Day (NI), so day 1
   * is Tuesday 18th: 18-21 (1-4), 24-28 (5-9), 31 March-4 April (10-14),
   * 7-11 (15-19), Monday 14 April (20): on time.  Counting English
   * holidays only gives Friday 11 April: the ICO's mistake. */
  r = date_of ("2014-03-16");
  due = clock_due_date (c, &uk, &r, &beyond);
  s1 = iso_of (&due);
  ck_assert_str_eq (s1, "2014-04-14");
  ck_assert (!beyond);
  due = clock_due_date (c, &local, &r, NULL);
  s2 = iso_of (&due);
  ck_assert_str_eq (s2, "2014-04-11");
  /* Tuesday 2 December 2014: 3-5 (1-3), 8-12 (4-8), 15-19 (9-13), 22-24
   * (14-16), 29-31 (17-19), 1 and 2 January, Monday 5 January 2015 (20) */
  r = date_of ("2014-12-02");
  due = clock_due_date (c, &uk, &r, &beyond);
  s3 = iso_of (&due);
  ck_assert_str_eq (s3, "2015-01-05");
  ck_assert (!beyond);
  clock_calendar_free (&c);
}
END_TEST

/* ---------------------------------------------------------------- rules */

typedef struct {
  const char *text;
  gboolean ok;
  clock_kind kind;
  guint n;
} rule_case;

static const rule_case rule_cases[] = {
  { "20 working days", TRUE, CLOCK_WORKING_DAYS, 20 },
  { "  20   Working\tDAYS ", TRUE, CLOCK_WORKING_DAYS, 20 },
  { "1 working day", TRUE, CLOCK_WORKING_DAYS, 1 },
  { "260 working days", TRUE, CLOCK_WORKING_DAYS, 260 },
  { "20 UK working days", TRUE, CLOCK_UK_WORKING_DAYS, 20 },
  { "40 uk working days", TRUE, CLOCK_UK_WORKING_DAYS, 40 },
  { "1 calendar month", TRUE, CLOCK_CALENDAR_MONTHS, 1 },
  { "3 CALENDAR MONTHS", TRUE, CLOCK_CALENDAR_MONTHS, 3 },
  { "24 calendar months", TRUE, CLOCK_CALENDAR_MONTHS, 24 },
  { "none", TRUE, CLOCK_NONE, 0 },
  { " None ", TRUE, CLOCK_NONE, 0 },
  { "", FALSE, 0, 0 },
  { "20", FALSE, 0, 0 },
  { "20 days", FALSE, 0, 0 },
  { "20 calendar days", FALSE, 0, 0 },
  { "twenty working days", FALSE, 0, 0 },
  { "0 working days", FALSE, 0, 0 },
  { "-1 working days", FALSE, 0, 0 },
  { "+20 working days", FALSE, 0, 0 },
  { "0x14 working days", FALSE, 0, 0 },
  { "261 working days", FALSE, 0, 0 },
  { "25 calendar months", FALSE, 0, 0 },
  { "99999999999999999999 working days", FALSE, 0, 0 },
  { "20 working days extra", FALSE, 0, 0 },
  { "20working days", FALSE, 0, 0 },
  { "20 working dayss", FALSE, 0, 0 },
  { "1 calendar week", FALSE, 0, 0 },
  { "20 scottish working days", FALSE, 0, 0 },
  { "none at all", FALSE, 0, 0 },
};

START_TEST (test_rule_parse)
{
  const rule_case *k = &rule_cases[_i];
  clock_rule r = { 99, 99 };
  g_autoptr (GError) error = NULL;
  gboolean ok = clock_rule_parse (k->text, &r, &error);

  ck_assert_msg (ok == k->ok, "\"%s\": %s", k->text,
                 ok ? "accepted" : error->message);
  if (ok)
    {
      g_autofree char *back = clock_rule_to_string (&r);
      clock_rule again;
      ck_assert_int_eq (r.kind, k->kind);
      ck_assert_uint_eq (r.n, k->n);
      ck_assert (clock_rule_parse (back, &again, NULL));
      ck_assert_int_eq (again.kind, r.kind);
      ck_assert_uint_eq (again.n, r.n);
    }
  else
    {
      ck_assert (g_error_matches (error, CLOCK_ERROR, CLOCK_ERROR_RULE));
      ck_assert_ptr_nonnull (strstr (error->message, "clock rule"));
      /* untouched on failure */
      ck_assert_int_eq (r.kind, 99);
      ck_assert_uint_eq (r.n, 99);
    }
}
END_TEST

START_TEST (test_rule_strings)
{
  clock_rule r;
  g_autoptr (GError) error = NULL;
  g_autofree char *a = NULL, *b = NULL, *c = NULL;

  ck_assert (clock_rule_parse ("1 Calendar Months", &r, NULL));
  a = clock_rule_to_string (&r);
  ck_assert_str_eq (a, "1 calendar month");
  ck_assert (clock_rule_parse ("20 uk working day", &r, NULL));
  b = clock_rule_to_string (&r);
  ck_assert_str_eq (b, "20 UK working days");
  ck_assert (!clock_rule_parse ("20 days", &r, &error));
  /* the message quotes the text and says what would do */
  ck_assert_ptr_nonnull (strstr (error->message, "\"20 days\""));
  ck_assert_ptr_nonnull (strstr (error->message, "N working days"));
  g_clear_error (&error);
  ck_assert (!clock_rule_parse ("0 calendar months", &r, &error));
  ck_assert_ptr_nonnull (strstr (error->message, "1 to 24"));
  g_clear_error (&error);
  /* control characters in config text are not echoed raw */
  ck_assert (!clock_rule_parse ("20\nworking\x1b days", &r, &error));
  ck_assert_ptr_null (strchr (error->message, '\n'));
  ck_assert_ptr_null (strchr (error->message, '\x1b'));
  ck_assert (clock_nation_valid ("scotland"));
  ck_assert (!clock_nation_valid ("wales"));
  ck_assert (!clock_nation_valid (NULL));
  r.kind = CLOCK_NONE;
  c = clock_rule_to_string (&r);
  ck_assert_str_eq (c, "none");
}
END_TEST

/* ------------------------------------------------------------- import */

/* Unsorted, compact, GOV.UK's \u escapes, a quote to keep escaped, an
 * unknown member to drop, notes and bunting missing, nations out of
 * order.  */
static const char messy[] =
    "{\"scotland\":{\"events\":[{\"date\":\"2026-11-30\",\"title\":"
    "\"St Andrew\\u2019s Day\",\"notes\":\"\",\"bunting\":true,\"extra\":1},"
    "{\"title\":\"2nd January\",\"date\":\"2026-01-02\"}],\"division\":"
    "\"scotland\"},"
    "\"northern-ireland\":{\"division\":\"northern-ireland\",\"events\":"
    "[{\"title\":\"St Patrick\\u2019s Day\",\"date\":\"2026-03-17\","
    "\"notes\":\"\",\"bunting\":true}]},"
    "\"england-and-wales\":{\"division\":\"england-and-wales\",\"events\":"
    "[{\"title\":\"Boxing Day\",\"date\":\"2026-12-28\",\"notes\":"
    "\"Substitute day\",\"bunting\":true},{\"title\":\"A \\\"quoted\\\" "
    "day\\\\\",\"date\":\"2026-12-25\",\"notes\":\"\",\"bunting\":true}]}}";

static const char messy_normal[] =
    "{\n"
    "  \"england-and-wales\": {\n"
    "    \"division\": \"england-and-wales\",\n"
    "    \"events\": [\n"
    "      {\"title\": \"A \\\"quoted\\\" day\\\\\", \"date\": \"2026-12-25\", "
    "\"notes\": \"\", \"bunting\": true},\n"
    "      {\"title\": \"Boxing Day\", \"date\": \"2026-12-28\", \"notes\": "
    "\"Substitute day\", \"bunting\": true}\n"
    "    ]\n"
    "  },\n"
    "  \"scotland\": {\n"
    "    \"division\": \"scotland\",\n"
    "    \"events\": [\n"
    "      {\"title\": \"2nd January\", \"date\": \"2026-01-02\", "
    "\"notes\": \"\", \"bunting\": false},\n"
    "      {\"title\": \"St Andrew\xe2\x80\x99s Day\", \"date\": "
    "\"2026-11-30\", \"notes\": \"\", \"bunting\": true}\n"
    "    ]\n"
    "  },\n"
    "  \"northern-ireland\": {\n"
    "    \"division\": \"northern-ireland\",\n"
    "    \"events\": [\n"
    "      {\"title\": \"St Patrick\xe2\x80\x99s Day\", \"date\": "
    "\"2026-03-17\", \"notes\": \"\", \"bunting\": true}\n"
    "    ]\n"
    "  }\n"
    "}\n";

START_TEST (test_import_roundtrip)
{
  g_autofree char *in = write_tmp ("messy.json", messy);
  g_autofree char *out = tmp_path ("holidays.json");
  g_autofree char *out2 = tmp_path ("again.json");
  g_autofree char *got = NULL, *got2 = NULL;
  g_autoptr (GError) error = NULL;
  clock_calendar *c;
  GDate d;

  ck_assert_msg (clock_holidays_import (in, out, &error), "%s",
                 error ? error->message : "");
  ck_assert (g_file_get_contents (out, &got, NULL, NULL));
  ck_assert_str_eq (got, messy_normal);
  /* importing the output changes nothing */
  ck_assert (clock_holidays_import (out, out2, NULL));
  ck_assert (g_file_get_contents (out2, &got2, NULL, NULL));
  ck_assert_str_eq (got2, got);
  /* and it loads */
  c = load (out, S);
  d = date_of ("2026-11-30");
  ck_assert (!clock_is_working_day (c, &d));
  d = date_of ("2026-12-28");
  ck_assert (clock_is_working_day (c, &d));
  clock_calendar_free (&c);
}
END_TEST

typedef struct {
  const char *name;
  const char *content;       /* NULL: no such file */
  int code;
  const char *says;          /* in the message, besides the file name */
} bad_case;

/* the other two nations, well formed, and the closing brace */
#define NATIONS_REST                                                       \
  ",\"scotland\":{\"events\":[{\"title\":\"x\",\"date\":\"2026-01-02\"}]},"  \
  "\"northern-ireland\":{\"events\":[{\"title\":\"x\",\"date\":"           \
  "\"2026-03-17\"}]}"
#define NATIONS_TAIL NATIONS_REST "}"
#define EW(events) "{\"england-and-wales\":{\"events\":[" events "]}"

static const bad_case bad_cases[] = {
  { "missing", NULL, CLOCK_ERROR_IO, "No such file" },
  { "empty", "", CLOCK_ERROR_JSON, "not JSON" },
  { "not json", "<html>Bank holidays</html>", CLOCK_ERROR_JSON,
    "not JSON" },
  { "truncated", "{\"england-and-wales\": {\"events\": [", CLOCK_ERROR_JSON,
    "not JSON" },
  { "array", "[1, 2]", CLOCK_ERROR_FORMAT, "top level" },
  { "unknown nation",
    EW ("{\"title\":\"x\",\"date\":\"2026-01-01\"}") NATIONS_REST
    ",\"wales\":{\"events\":[{\"title\":\"x\",\"date\":\"2026-03-01\"}]}}",
    CLOCK_ERROR_NATION, "unknown nation \"wales\"" },
  { "unknown nation 2",
    "{\"wales\":{\"events\":[{\"title\":\"x\",\"date\":\"2026-01-01\"}]}}",
    CLOCK_ERROR_NATION, "unknown nation \"wales\"" },
  { "missing nation",
    "{\"england-and-wales\":{\"events\":[{\"title\":\"x\",\"date\":"
    "\"2026-01-01\"}]}}",
    CLOCK_ERROR_NATION, "no \"scotland\"" },
  { "bad date", EW ("{\"title\":\"x\",\"date\":\"2026-02-30\"}") NATIONS_TAIL,
    CLOCK_ERROR_DATE, "england-and-wales event 1: date \"2026-02-30\"" },
  { "short date", EW ("{\"title\":\"x\",\"date\":\"2026-2-3\"}") NATIONS_TAIL,
    CLOCK_ERROR_DATE, "\"2026-2-3\"" },
  { "month 13", EW ("{\"title\":\"x\",\"date\":\"2026-13-01\"}") NATIONS_TAIL,
    CLOCK_ERROR_DATE, "\"2026-13-01\"" },
  { "29 Feb non-leap",
    EW ("{\"title\":\"x\",\"date\":\"2026-01-01\"},"
        "{\"title\":\"x\",\"date\":\"2027-02-29\"}") NATIONS_TAIL,
    CLOCK_ERROR_DATE, "event 2: date \"2027-02-29\"" },
  { "year range", EW ("{\"title\":\"x\",\"date\":\"1066-10-14\"}") NATIONS_TAIL,
    CLOCK_ERROR_DATE, "\"1066-10-14\"" },
  { "date and time",
    EW ("{\"title\":\"x\",\"date\":\"2026-01-01T00:00\"}") NATIONS_TAIL,
    CLOCK_ERROR_DATE, "\"2026-01-01T00:00\"" },
  { "date number", EW ("{\"title\":\"x\",\"date\":20260101}") NATIONS_TAIL,
    CLOCK_ERROR_FORMAT, "\"date\" is not a string" },
  { "no date", EW ("{\"title\":\"x\"}") NATIONS_TAIL, CLOCK_ERROR_FORMAT,
    "no \"date\"" },
  { "no title", EW ("{\"date\":\"2026-01-01\"}") NATIONS_TAIL,
    CLOCK_ERROR_FORMAT, "no \"title\"" },
  { "bunting text",
    EW ("{\"title\":\"x\",\"date\":\"2026-01-01\",\"bunting\":\"yes\"}")
        NATIONS_TAIL,
    CLOCK_ERROR_FORMAT, "\"bunting\"" },
  { "twice",
    EW ("{\"title\":\"x\",\"date\":\"2026-01-01\"},"
        "{\"title\":\"y\",\"date\":\"2026-01-01\"}") NATIONS_TAIL,
    CLOCK_ERROR_DATE, "lists 2026-01-01 twice" },
  { "no events", "{\"england-and-wales\":{\"division\":\"x\"}" NATIONS_TAIL,
    CLOCK_ERROR_FORMAT, "no \"events\" array" },
  { "empty events", EW ("") NATIONS_TAIL, CLOCK_ERROR_FORMAT, "0 events" },
  { "event not object", EW ("\"2026-01-01\"") NATIONS_TAIL,
    CLOCK_ERROR_FORMAT, "event 1 is not an object" },
  { "hostile date",
    EW ("{\"title\":\"x\",\"date\":\"\\n\\u001b[31mFAKE LOG LINE\"}")
        NATIONS_TAIL,
    CLOCK_ERROR_DATE, "\\n\\033[31mFAKE" },
};

START_TEST (test_import_bad)
{
  const bad_case *k = &bad_cases[_i];
  g_autofree char *in = NULL;
  g_autofree char *out = tmp_path ("out.json");
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) error2 = NULL;

  if (k->content != NULL)
    in = write_tmp ("bad.json", k->content);
  else
    in = tmp_path ("bad.json");
  ck_assert_msg (!clock_holidays_import (in, out, &error), "%s accepted",
                 k->name);
  ck_assert_msg (g_error_matches (error, CLOCK_ERROR, k->code),
                 "%s: code %d, expected %d: %s", k->name, error->code,
                 k->code, error->message);
  ck_assert_msg (strstr (error->message, in) != NULL,
                 "%s: file not named: %s", k->name, error->message);
  ck_assert_msg (strstr (error->message, k->says) != NULL,
                 "%s: \"%s\" not in: %s", k->name, k->says, error->message);
  ck_assert_ptr_null (strchr (error->message, '\n'));
  ck_assert (!g_file_test (out, G_FILE_TEST_EXISTS));
  /* load refuses the same file the same way */
  ck_assert_ptr_null (clock_calendar_load (in, E, &error2));
  ck_assert (g_error_matches (error2, CLOCK_ERROR, k->code));
}
END_TEST

START_TEST (test_load_errors)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *big = tmp_path ("big.json");
  FILE *f;

  ck_assert_ptr_null (clock_calendar_load (conf_path (), "wales", &error));
  ck_assert (g_error_matches (error, CLOCK_ERROR, CLOCK_ERROR_NATION));
  ck_assert_ptr_nonnull (strstr (error->message, "\"wales\""));
  ck_assert_ptr_nonnull (strstr (error->message, "northern-ireland"));
  g_clear_error (&error);
  ck_assert_ptr_null (clock_calendar_load (conf_path (), NULL, &error));
  ck_assert (g_error_matches (error, CLOCK_ERROR, CLOCK_ERROR_NATION));
  g_clear_error (&error);

  /* over the size cap: refused before it is read */
  f = fopen (big, "w");
  ck_assert_ptr_nonnull (f);
  ck_assert_int_eq (fseek (f, CLOCK_FILE_MAX_BYTES, SEEK_SET), 0);
  ck_assert_int_eq (fputc (' ', f), ' ');
  fclose (f);
  ck_assert_ptr_null (clock_calendar_load (big, E, &error));
  ck_assert (g_error_matches (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT));
  ck_assert_ptr_nonnull (strstr (error->message, "larger"));
}
END_TEST

static guint
count_entries (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  ck_assert_ptr_nonnull (d);
  while (g_dir_read_name (d) != NULL)
    n++;
  return n;
}

START_TEST (test_import_atomic)
{
  g_autofree char *sub = tmp_path ("conf");
  g_autofree char *out = g_build_filename (sub, "bank-holidays.json", NULL);
  g_autofree char *old = g_build_filename (sub, "old-link.json", NULL);
  g_autofree char *good = write_tmp ("good.json", messy);
  g_autofree char *bad = write_tmp ("bad.json", "{\"scotland\": 1}");
  g_autofree char *nodir = tmp_path ("nodir/out.json");
  g_autofree char *before = NULL, *after = NULL, *linked = NULL;
  g_autoptr (GError) error = NULL;
  struct stat st1, st2;

  ck_assert_int_eq (g_mkdir (sub, 0755), 0);
  ck_assert (g_file_set_contents (out, "previous contents\n", -1, NULL));
  ck_assert_int_eq (link (out, old), 0);
  ck_assert_int_eq (stat (out, &st1), 0);

  /* a bad file leaves the old one as it was, and nothing beside it */
  ck_assert (!clock_holidays_import (bad, out, &error));
  g_clear_error (&error);
  ck_assert (g_file_get_contents (out, &before, NULL, NULL));
  ck_assert_str_eq (before, "previous contents\n");
  ck_assert_uint_eq (count_entries (sub), 2);

  /* a good one replaces it by rename: a new inode, while a hard link to
   * the old file still reads the old contents (an in-place rewrite would
   * have changed both) */
  ck_assert_msg (clock_holidays_import (good, out, &error), "%s",
                 error ? error->message : "");
  ck_assert_int_eq (stat (out, &st2), 0);
  ck_assert (st1.st_ino != st2.st_ino);
  /* 0644 less the umask: never writable by group or other */
  ck_assert_int_eq (st2.st_mode & 0022, 0);
  ck_assert (g_file_get_contents (out, &after, NULL, NULL));
  ck_assert_str_eq (after, messy_normal);
  ck_assert (g_file_get_contents (old, &linked, NULL, NULL));
  ck_assert_str_eq (linked, "previous contents\n");
  /* no temporary file left behind */
  ck_assert_uint_eq (count_entries (sub), 2);

  /* nowhere to write: an I/O error naming the path */
  ck_assert (!clock_holidays_import (good, nodir, &error));
  ck_assert (g_error_matches (error, CLOCK_ERROR, CLOCK_ERROR_IO));
  ck_assert_ptr_nonnull (strstr (error->message, nodir));
  g_clear_error (&error);
  /* a directory in the way */
  ck_assert (!clock_holidays_import (good, sub, &error));
  ck_assert (g_error_matches (error, CLOCK_ERROR, CLOCK_ERROR_IO));
  ck_assert (g_file_test (sub, G_FILE_TEST_IS_DIR));
}
END_TEST

static Suite *
clock_suite (void)
{
  Suite *s = suite_create ("clock");
  TCase *tc = tcase_create ("calendar");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_shipped_weekdays_and_years);
  tcase_add_test (tc, test_shipped_is_normalised);
  tcase_add_loop_test (tc, test_working_days, 0, G_N_ELEMENTS (day_cases));
  suite_add_tcase (s, tc);

  tc = tcase_create ("due");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_loop_test (tc, test_due, 0, G_N_ELEMENTS (due_cases));
  tcase_add_test (tc, test_due_none_and_date);
  tcase_add_test (tc, test_published_2014);
  suite_add_tcase (s, tc);

  tc = tcase_create ("rules");
  tcase_add_loop_test (tc, test_rule_parse, 0, G_N_ELEMENTS (rule_cases));
  tcase_add_test (tc, test_rule_strings);
  suite_add_tcase (s, tc);

  tc = tcase_create ("import");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_import_roundtrip);
  tcase_add_loop_test (tc, test_import_bad, 0, G_N_ELEMENTS (bad_cases));
  tcase_add_test (tc, test_load_errors);
  tcase_add_test (tc, test_import_atomic);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (clock_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
