/*
 * clock.h - statutory clocks: when a request is due.
 *
 * Three kinds of rule, given in the configuration as text
 * (clock_rule_parse()):
 *
 *   "N working days"     count N working days of the calendar's nation;
 *                        day 1 is the first working day AFTER the day of
 *                        receipt (complaints, FOISA s.10 in Scotland);
 *   "N UK working days"  the same, but a bank holiday in ANY part of the
 *                        UK is not a working day: the FOI Act 2000 s.10(6)
 *                        definition, which EIR 2004 reg. 2(1) adopts (FOI
 *                        and EIR requests to English, Welsh and Northern
 *                        Irish authorities);
 *   "N calendar months"  the ICO's subject-access rule: the same day of the
 *                        month N months after the day of receipt, the last
 *                        day of that month when it has no such day, then the
 *                        next working day if that is a weekend or a bank
 *                        holiday of the calendar's nation;
 *   "none"               no clock.
 *
 * Bank holidays come from a file in the GOV.UK format
 * (https://www.gov.uk/bank-holidays.json): one object per nation
 * ("england-and-wales", "scotland", "northern-ireland"), each with an
 * "events" array of {"title", "date": "YYYY-MM-DD", "notes", "bunting"}.
 * A file must hold all three nations.  The calendar covers the years from
 * its nation's first listed holiday to its last; a due date reaching
 * outside them is still computed (weekends only) and flagged "beyond" so
 * callers can warn.  See docs/clocks.md.
 *
 * The day of receipt is the date in Europe/London, whatever zone the
 * caller's GDateTime is in.
 */
#ifndef INTAKE_CLOCK_H
#define INTAKE_CLOCK_H

#include <glib.h>

/* Limits (STYLE habit 8; router/ has no router_limits.h yet).  */

/* The GOV.UK file is about 20 KB for a decade; anything near this is not a
 * bank-holidays file.  */
#define CLOCK_FILE_MAX_BYTES (1024 * 1024)
/* Events per nation: about 10 a year.  */
#define CLOCK_EVENTS_MAX 4096
/* Title and notes of one event, in bytes.  */
#define CLOCK_TEXT_MAX 200
/* Years a date in the file may have: a typo guard, not a policy.  */
#define CLOCK_YEAR_MIN 1900
#define CLOCK_YEAR_MAX 2199
/* Largest N in a rule: a year of working days, two years of months.  The
 * statutory clocks are 20 working days (FOIA s.10, EIR reg. 5, extendable
 * to 40 under EIR reg. 7) and one to three months (UK GDPR Art. 12(3)).  */
#define CLOCK_RULE_MAX_WORKING_DAYS 260
#define CLOCK_RULE_MAX_MONTHS 24

#define CLOCK_ERROR (clock_error_quark ())
GQuark clock_error_quark (void);
typedef enum {
  CLOCK_ERROR_IO,      /* cannot read or write a file */
  CLOCK_ERROR_JSON,    /* not JSON */
  CLOCK_ERROR_FORMAT,  /* JSON, but not the GOV.UK shape */
  CLOCK_ERROR_NATION,  /* unknown or missing nation */
  CLOCK_ERROR_DATE,    /* a date that is not a valid YYYY-MM-DD */
  CLOCK_ERROR_RULE,    /* a rule clock_rule_parse() does not accept */
} clock_error_code;

typedef struct clock_calendar clock_calendar;

typedef enum {
  CLOCK_NONE,
  CLOCK_WORKING_DAYS,     /* the calendar's nation's bank holidays */
  CLOCK_UK_WORKING_DAYS,  /* bank holidays of any UK nation (FOIA s.10(6)) */
  CLOCK_CALENDAR_MONTHS,
} clock_kind;

typedef struct {
  clock_kind kind;
  guint n;                /* 1..CLOCK_RULE_MAX_*; 0 for CLOCK_NONE */
} clock_rule;

/* TRUE if @nation is "england-and-wales", "scotland" or
 * "northern-ireland" (for checking configuration before loading).  */
gboolean clock_nation_valid (const char *nation);

/* (transfer full) Load the GOV.UK-format file at @path for @nation.  The
 * whole file is checked as clock_holidays_import() checks it; the error
 * names the file and what is wrong.  Free with clock_calendar_free().  */
clock_calendar *clock_calendar_load (const char *path, const char *nation,
                                     GError **error);

/* Free @c and set it to NULL; accepts NULL and a pointer to NULL.  */
void clock_calendar_free (clock_calendar **c);

/* (transfer none) The nation the calendar was loaded for.  */
const char *clock_calendar_nation (const clock_calendar *c);

/* The first and last year the calendar's nation has holidays listed for
 * (either pointer may be NULL).  */
void clock_calendar_years (const clock_calendar *c, guint *first,
                           guint *last);

/* Monday to Friday and not a bank holiday of the calendar's nation.  Dates
 * outside clock_calendar_years() are judged by weekday alone.  */
gboolean clock_is_working_day (const clock_calendar *c, const GDate *d);

/* Parse a rule: "20 working days", "20 UK working days", "1 calendar
 * month", "3 calendar months", "none"; case and runs of spaces do not
 * matter, "day"/"days" and "month"/"months" both do.  FALSE with
 * CLOCK_ERROR_RULE (naming the text and the accepted forms) otherwise;
 * @out is untouched then.  */
gboolean clock_rule_parse (const char *text, clock_rule *out,
                           GError **error);

/* (transfer full) The rule as clock_rule_parse() reads it back:
 * "20 working days", "1 calendar month", "none".  */
char *clock_rule_to_string (const clock_rule *rule);

/* The due date of something received at @received (any zone: the day of
 * receipt is its date in Europe/London; 23:30 UTC on a summer day is the
 * next day there).  Working days: the Nth working day after the day of
 * receipt.  Calendar months: as described at the top.  CLOCK_NONE gives a
 * cleared (invalid) GDate.  @beyond (nullable) is set TRUE when any day the
 * calculation looked at lies outside the years the holidays file covers
 * (for UK working days, the years all three nations cover): the date is
 * then computed with weekends only and may be early.  */
GDate clock_due (const clock_calendar *c, const clock_rule *rule,
                 GDateTime *received, gboolean *beyond);

/* The same from a day of receipt already in UK local time.  */
GDate clock_due_date (const clock_calendar *c, const clock_rule *rule,
                      const GDate *received, gboolean *beyond);

/* `intakectl holidays import`: read the GOV.UK-format file at @in_path,
 * check it (well-formed JSON, all three nations and no others, each event
 * with a title and a valid YYYY-MM-DD date, no date twice in a nation) and
 * write it to @out_path in the same format, normalised: nations in the
 * order above, events sorted by date, one per line, only the four GOV.UK
 * fields.  The write goes to a temporary file beside @out_path, fsync'd,
 * then renamed over it: readers see the old file or the new one, and on
 * any error the old one is left as it was.  Errors name the file and what
 * is wrong.  */
gboolean clock_holidays_import (const char *in_path, const char *out_path,
                                GError **error);

#endif /* INTAKE_CLOCK_H */
