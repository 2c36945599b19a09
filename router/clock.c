/*
 * clock.c - statutory clocks: bank-holiday calendars, rules, due dates, and
 * the import of a GOV.UK bank-holidays file.
 *
 * Owns: the parsed holidays of one nation and of the whole UK (sets of
 * Julian day numbers), the Europe/London zone.  Refuses: files over
 * CLOCK_FILE_MAX_BYTES, unknown nations, a file missing a nation, dates
 * that are not real YYYY-MM-DD dates, rules outside the documented forms.
 * Pure apart from reading and writing the holidays file: the time of
 * receipt is always a parameter.
 */
#define G_LOG_DOMAIN "intake-router"

#include "router/clock.h"

#include <errno.h>
#include <string.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

G_DEFINE_QUARK (intake-clock-error-quark, clock_error)

/* The GOV.UK file's keys, in the order the file lists them.  */
#define CLOCK_NATIONS 3
static const char *const clock_nation_names[CLOCK_NATIONS] = {
  "england-and-wales",
  "scotland",
  "northern-ireland",
};

/* The longest piece of file text quoted in an error message.  */
#define CLOCK_QUOTE_MAX 40

typedef struct {
  char *title;
  char *notes;
  GDate date;
  gboolean bunting;
} clock_event;

/* A checked file: events[i] holds nation i's events, sorted by date.  */
typedef struct {
  GArray *events[CLOCK_NATIONS];
} clock_file;

struct clock_calendar {
  char *nation;
  GHashTable *local;          /* Julian day -> itself: this nation's days */
  GHashTable *uk;             /* the same for any of the three nations */
  guint local_first, local_last;
  guint uk_first, uk_last;    /* the years all three nations cover */
  GTimeZone *tz;              /* Europe/London (UTC if tzdata is missing) */
};

static int
clock_nation_index (const char *nation)
{
  for (int i = 0; i < CLOCK_NATIONS; i++)
    if (nation != NULL && strcmp (nation, clock_nation_names[i]) == 0)
      return i;
  return -1;
}

gboolean
clock_nation_valid (const char *nation)
{
  return clock_nation_index (nation) >= 0;
}

/* File text quoted in an error: at most CLOCK_QUOTE_MAX bytes, control
 * and non-ASCII bytes escaped, so a hostile file cannot forge log lines.  */
static char *
clock_quote (const char *s)
{
  g_autofree char *head = g_strndup (s, CLOCK_QUOTE_MAX);
  g_autofree char *esc = g_strescape (head, NULL);

  return g_strdup_printf ("\"%s\"%s", esc,
                          strlen (s) > CLOCK_QUOTE_MAX ? "..." : "");
}

static void
clock_event_clear (gpointer p)
{
  clock_event *e = p;

  g_free (e->title);
  g_free (e->notes);
}

static void
clock_file_clear (clock_file *f)
{
  for (int i = 0; i < CLOCK_NATIONS; i++)
    g_clear_pointer (&f->events[i], g_array_unref);
}

static int
clock_event_cmp (gconstpointer a, gconstpointer b)
{
  return g_date_compare (&((const clock_event *) a)->date,
                         &((const clock_event *) b)->date);
}

/* Strictly "YYYY-MM-DD" naming a real day in the allowed years.  */
static gboolean
clock_parse_date (const char *s, GDate *out)
{
  guint y = 0, m = 0, d = 0;

  if (strlen (s) != 10 || s[4] != '-' || s[7] != '-')
    return FALSE;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && !g_ascii_isdigit (s[i]))
      return FALSE;
  for (int i = 0; i < 4; i++)
    y = y * 10 + (guint) (s[i] - '0');
  m = (guint) (s[5] - '0') * 10 + (guint) (s[6] - '0');
  d = (guint) (s[8] - '0') * 10 + (guint) (s[9] - '0');
  if (y < CLOCK_YEAR_MIN || y > CLOCK_YEAR_MAX || m < 1 || m > 12
      || !g_date_valid_dmy ((GDateDay) d, (GDateMonth) m, (GDateYear) y))
    return FALSE;
  g_date_clear (out, 1);
  g_date_set_dmy (out, (GDateDay) d, (GDateMonth) m, (GDateYear) y);
  return TRUE;
}

/* An optional string member of an event: NULL if absent, FALSE with
 * @error if present and not a short UTF-8 string.  */
static gboolean
clock_event_text (const char *path, const char *nation, guint idx,
                  JsonObject *ev, const char *name, gboolean required,
                  char **out, GError **error)
{
  JsonNode *node = json_object_get_member (ev, name);
  const char *s;

  *out = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    {
      if (!required)
        return TRUE;
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: %s event %u: no \"%s\"", path, nation, idx, name);
      return FALSE;
    }
  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: %s event %u: \"%s\" is not a string", path, nation,
                   idx, name);
      return FALSE;
    }
  s = json_node_get_string (node);
  if (!g_utf8_validate (s, -1, NULL) || strlen (s) > CLOCK_TEXT_MAX
      || (required && *s == '\0'))
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: %s event %u: \"%s\" is empty, not UTF-8 or longer "
                   "than %d bytes", path, nation, idx, name, CLOCK_TEXT_MAX);
      return FALSE;
    }
  *out = g_strdup (s);
  return TRUE;
}

static gboolean
clock_read_event (const char *path, const char *nation, guint idx,
                  JsonNode *node, clock_event *out, GError **error)
{
  JsonObject *ev;
  JsonNode *b;
  g_autofree char *date = NULL;

  memset (out, 0, sizeof *out);
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: %s event %u is not an object", path, nation, idx);
      return FALSE;
    }
  ev = json_node_get_object (node);
  if (!clock_event_text (path, nation, idx, ev, "date", TRUE, &date, error))
    return FALSE;
  if (!clock_parse_date (date, &out->date))
    {
      g_autofree char *q = clock_quote (date);
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_DATE,
                   "%s: %s event %u: date %s is not a valid YYYY-MM-DD date "
                   "between %d and %d", path, nation, idx, q, CLOCK_YEAR_MIN,
                   CLOCK_YEAR_MAX);
      return FALSE;
    }
  if (!clock_event_text (path, nation, idx, ev, "title", TRUE, &out->title,
                         error)
      || !clock_event_text (path, nation, idx, ev, "notes", FALSE,
                            &out->notes, error))
    {
      clock_event_clear (out);
      return FALSE;
    }
  if (out->notes == NULL)
    out->notes = g_strdup ("");
  b = json_object_get_member (ev, "bunting");
  if (b != NULL && !JSON_NODE_HOLDS_NULL (b))
    {
      if (!JSON_NODE_HOLDS_VALUE (b)
          || json_node_get_value_type (b) != G_TYPE_BOOLEAN)
        {
          clock_event_clear (out);
          g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                       "%s: %s event %u: \"bunting\" is not true or false",
                       path, nation, idx);
          return FALSE;
        }
      out->bunting = json_node_get_boolean (b);
    }
  return TRUE;
}

static gboolean
clock_read_nation (const char *path, int n, JsonNode *node, clock_file *f,
                   GError **error)
{
  const char *nation = clock_nation_names[n];
  JsonNode *evnode;
  JsonArray *arr;
  guint len;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: \"%s\" is not an object", path, nation);
      return FALSE;
    }
  evnode = json_object_get_member (json_node_get_object (node), "events");
  if (evnode == NULL || !JSON_NODE_HOLDS_ARRAY (evnode))
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: \"%s\" has no \"events\" array", path, nation);
      return FALSE;
    }
  arr = json_node_get_array (evnode);
  len = json_array_get_length (arr);
  if (len == 0 || len > CLOCK_EVENTS_MAX)
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: \"%s\" has %u events (1 to %d expected)", path,
                   nation, len, CLOCK_EVENTS_MAX);
      return FALSE;
    }
  f->events[n] = g_array_sized_new (FALSE, FALSE, sizeof (clock_event), len);
  g_array_set_clear_func (f->events[n], clock_event_clear);
  for (guint i = 0; i < len; i++)
    {
      clock_event ev;
      if (!clock_read_event (path, nation, i + 1,
                             json_array_get_element (arr, i), &ev, error))
        return FALSE;
      g_array_append_val (f->events[n], ev);
    }
  g_array_sort (f->events[n], clock_event_cmp);
  for (guint i = 1; i < len; i++)
    {
      clock_event *a = &g_array_index (f->events[n], clock_event, i - 1);
      clock_event *b = &g_array_index (f->events[n], clock_event, i);
      if (g_date_compare (&a->date, &b->date) == 0)
        {
          char buf[16];
          g_date_strftime (buf, sizeof buf, "%Y-%m-%d", &a->date);
          g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_DATE,
                       "%s: %s lists %s twice", path, nation, buf);
          return FALSE;
        }
    }
  return TRUE;
}

/* Read and check a whole GOV.UK-format file into @f (cleared on error).  */
static gboolean
clock_file_read (const char *path, clock_file *f, GError **error)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) local = NULL;
  g_autofree char *data = NULL;
  JsonObject *root;
  GStatBuf st;
  gsize len = 0;

  memset (f, 0, sizeof *f);
  if (g_stat (path, &st) < 0)
    {
      int e = errno;
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_IO, "%s: %s", path,
                   g_strerror (e));
      return FALSE;
    }
  if (st.st_size > CLOCK_FILE_MAX_BYTES)
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: %lld bytes, larger than a bank-holidays file can be "
                   "(%d)", path, (long long) st.st_size, CLOCK_FILE_MAX_BYTES);
      return FALSE;
    }
  if (!g_file_get_contents (path, &data, &len, &local))
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_IO, "%s", local->message);
      return FALSE;
    }
  if (len > CLOCK_FILE_MAX_BYTES)
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: larger than a bank-holidays file can be (%d)", path,
                   CLOCK_FILE_MAX_BYTES);
      return FALSE;
    }
  parser = json_parser_new ();
  if (len == 0 || !json_parser_load_from_data (parser, data, (gssize) len,
                                               &local))
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_JSON, "%s: not JSON: %s",
                   path, local ? local->message : "empty file");
      return FALSE;
    }
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_FORMAT,
                   "%s: not a GOV.UK bank-holidays file (the top level is "
                   "not an object of nations)", path);
      return FALSE;
    }
  root = json_node_get_object (json_parser_get_root (parser));

  g_autoptr (GList) members = json_object_get_members (root);
  for (GList *l = members; l != NULL; l = l->next)
    if (clock_nation_index (l->data) < 0)
      {
        g_autofree char *q = clock_quote (l->data);
        g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_NATION,
                     "%s: unknown nation %s (expected england-and-wales, "
                     "scotland and northern-ireland)", path, q);
        return FALSE;
      }
  for (int n = 0; n < CLOCK_NATIONS; n++)
    {
      JsonNode *node = json_object_get_member (root, clock_nation_names[n]);
      if (node == NULL)
        {
          g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_NATION,
                       "%s: no \"%s\" (a GOV.UK bank-holidays file has all "
                       "three nations)", path, clock_nation_names[n]);
          clock_file_clear (f);
          return FALSE;
        }
      if (!clock_read_nation (path, n, node, f, error))
        {
          clock_file_clear (f);
          return FALSE;
        }
    }
  return TRUE;
}

/* ------------------------------------------------------------ calendar */

clock_calendar *
clock_calendar_load (const char *path, const char *nation, GError **error)
{
  clock_file f;
  clock_calendar *c;
  int want = clock_nation_index (nation);

  g_return_val_if_fail (path != NULL, NULL);
  if (want < 0)
    {
      g_autofree char *q = clock_quote (nation ? nation : "");
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_NATION,
                   "unknown nation %s for %s (expected england-and-wales, "
                   "scotland or northern-ireland)", q, path);
      return NULL;
    }
  if (!clock_file_read (path, &f, error))
    return NULL;

  c = g_new0 (clock_calendar, 1);
  c->nation = g_strdup (nation);
  c->local = g_hash_table_new (g_direct_hash, g_direct_equal);
  c->uk = g_hash_table_new (g_direct_hash, g_direct_equal);
  c->uk_first = 0;
  c->uk_last = G_MAXUINT;
  for (int n = 0; n < CLOCK_NATIONS; n++)
    {
      GArray *a = f.events[n];
      guint first = g_date_get_year (&g_array_index (a, clock_event, 0).date);
      guint last = g_date_get_year (&g_array_index (a, clock_event,
                                                    a->len - 1).date);
      for (guint i = 0; i < a->len; i++)
        {
          gpointer j = GUINT_TO_POINTER (
              g_date_get_julian (&g_array_index (a, clock_event, i).date));
          g_hash_table_add (c->uk, j);
          if (n == want)
            g_hash_table_add (c->local, j);
        }
      if (n == want)
        {
          c->local_first = first;
          c->local_last = last;
        }
      c->uk_first = MAX (c->uk_first, first);
      c->uk_last = MIN (c->uk_last, last);
    }
  clock_file_clear (&f);

  c->tz = g_time_zone_new_identifier ("Europe/London");
  if (c->tz == NULL)
    {
      /* Debian's tzdata is missing: dates of receipt near midnight in
       * summer will be a day early.  */
      g_warning ("clock: time zone Europe/London not found (install "
                 "tzdata); using UTC for the day of receipt");
      c->tz = g_time_zone_new_utc ();
    }
  return c;
}

void
clock_calendar_free (clock_calendar **c)
{
  if (c == NULL || *c == NULL)
    return;
  g_free ((*c)->nation);
  g_hash_table_unref ((*c)->local);
  g_hash_table_unref ((*c)->uk);
  g_time_zone_unref ((*c)->tz);
  g_clear_pointer (c, g_free);
}

const char *
clock_calendar_nation (const clock_calendar *c)
{
  g_return_val_if_fail (c != NULL, NULL);
  return c->nation;
}

void
clock_calendar_years (const clock_calendar *c, guint *first, guint *last)
{
  g_return_if_fail (c != NULL);
  if (first != NULL)
    *first = c->local_first;
  if (last != NULL)
    *last = c->local_last;
}

static gboolean
clock_working (const clock_calendar *c, gboolean uk, const GDate *d)
{
  GDateWeekday w = g_date_get_weekday (d);

  if (w == G_DATE_SATURDAY || w == G_DATE_SUNDAY)
    return FALSE;
  return !g_hash_table_contains (uk ? c->uk : c->local,
                                 GUINT_TO_POINTER (g_date_get_julian (d)));
}

gboolean
clock_is_working_day (const clock_calendar *c, const GDate *d)
{
  g_return_val_if_fail (c != NULL && d != NULL && g_date_valid (d), FALSE);
  return clock_working (c, FALSE, d);
}

/* --------------------------------------------------------------- rules */

static const char clock_rule_forms[] =
    "expected \"N working days\", \"N UK working days\", \"N calendar "
    "months\" or \"none\"";

/* A count: decimal digits only, 1..@max.  */
static gboolean
clock_rule_count (const char *s, guint max, guint *out)
{
  guint64 v = 0;

  if (*s == '\0' || strlen (s) > 6)
    return FALSE;
  for (const char *p = s; *p; p++)
    {
      if (!g_ascii_isdigit (*p))
        return FALSE;
      v = v * 10 + (guint64) (*p - '0');
    }
  if (v < 1 || v > max)
    return FALSE;
  *out = (guint) v;
  return TRUE;
}

static gboolean
clock_word (const char *w, const char *one)
{
  gsize n = strlen (one);

  /* "day" or "days", "month" or "months" */
  return g_ascii_strncasecmp (w, one, n) == 0
         && (w[n] == '\0' || ((w[n] == 's' || w[n] == 'S') && w[n + 1] == 0));
}

gboolean
clock_rule_parse (const char *text, clock_rule *out, GError **error)
{
  g_auto (GStrv) raw = NULL;
  g_autoptr (GPtrArray) w = g_ptr_array_new ();
  clock_rule r = { CLOCK_NONE, 0 };
  guint max = 0;
  gboolean ok = FALSE;

  g_return_val_if_fail (text != NULL && out != NULL, FALSE);
  raw = g_strsplit_set (text, " \t", -1);
  for (guint i = 0; raw[i] != NULL; i++)
    if (raw[i][0] != '\0')
      g_ptr_array_add (w, raw[i]);

  if (w->len == 1 && g_ascii_strcasecmp (w->pdata[0], "none") == 0)
    ok = TRUE;
  else if (w->len == 3 && g_ascii_strcasecmp (w->pdata[1], "working") == 0
           && clock_word (w->pdata[2], "day"))
    {
      r.kind = CLOCK_WORKING_DAYS;
      max = CLOCK_RULE_MAX_WORKING_DAYS;
    }
  else if (w->len == 4 && g_ascii_strcasecmp (w->pdata[1], "uk") == 0
           && g_ascii_strcasecmp (w->pdata[2], "working") == 0
           && clock_word (w->pdata[3], "day"))
    {
      r.kind = CLOCK_UK_WORKING_DAYS;
      max = CLOCK_RULE_MAX_WORKING_DAYS;
    }
  else if (w->len == 3 && g_ascii_strcasecmp (w->pdata[1], "calendar") == 0
           && clock_word (w->pdata[2], "month"))
    {
      r.kind = CLOCK_CALENDAR_MONTHS;
      max = CLOCK_RULE_MAX_MONTHS;
    }
  if (r.kind != CLOCK_NONE)
    {
      ok = clock_rule_count (w->pdata[0], max, &r.n);
      if (!ok)
        {
          g_autofree char *q = clock_quote (text);
          g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_RULE,
                       "clock rule %s: the number must be 1 to %u", q, max);
          return FALSE;
        }
    }
  if (!ok)
    {
      g_autofree char *q = clock_quote (text);
      g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_RULE, "clock rule %s: %s",
                   q, clock_rule_forms);
      return FALSE;
    }
  *out = r;
  return TRUE;
}

char *
clock_rule_to_string (const clock_rule *rule)
{
  g_return_val_if_fail (rule != NULL, NULL);
  switch (rule->kind)
    {
    case CLOCK_WORKING_DAYS:
      return g_strdup_printf ("%u working day%s", rule->n,
                              rule->n == 1 ? "" : "s");
    case CLOCK_UK_WORKING_DAYS:
      return g_strdup_printf ("%u UK working day%s", rule->n,
                              rule->n == 1 ? "" : "s");
    case CLOCK_CALENDAR_MONTHS:
      return g_strdup_printf ("%u calendar month%s", rule->n,
                              rule->n == 1 ? "" : "s");
    case CLOCK_NONE:
    default:
      return g_strdup ("none");
    }
}

/* ----------------------------------------------------------- due dates */

GDate
clock_due_date (const clock_calendar *c, const clock_rule *rule,
                const GDate *received, gboolean *beyond)
{
  GDate due, first;
  guint lo, hi;
  gboolean uk = FALSE;

  g_date_clear (&due, 1);
  g_date_clear (&first, 1);
  if (beyond != NULL)
    *beyond = FALSE;
  g_return_val_if_fail (c != NULL && rule != NULL, due);
  g_return_val_if_fail (received != NULL && g_date_valid (received), due);

  switch (rule->kind)
    {
    case CLOCK_UK_WORKING_DAYS:
      uk = TRUE;
      G_GNUC_FALLTHROUGH;
    case CLOCK_WORKING_DAYS:
      g_return_val_if_fail (rule->n >= 1
                            && rule->n <= CLOCK_RULE_MAX_WORKING_DAYS, due);
      /* FOIA s.10(1) "the twentieth working day following the date of
       * receipt": the day of receipt never counts, whatever day it is;
       * day 1 is the first working day after it (ICO guidance on s.10).  */
      due = *received;
      g_date_add_days (&due, 1);
      first = due;
      for (guint k = 0;; g_date_add_days (&due, 1))
        if (clock_working (c, uk, &due) && ++k == rule->n)
          break;
      break;
    case CLOCK_CALENDAR_MONTHS:
      g_return_val_if_fail (rule->n >= 1 && rule->n <= CLOCK_RULE_MAX_MONTHS,
                            due);
      /* ICO, "Time limits for responding to a SAR": the corresponding
       * calendar date, or the last day of a shorter month (GDate clamps),
       * then the next working day after a weekend or bank holiday.  */
      due = *received;
      g_date_add_months (&due, rule->n);
      first = due;
      while (!clock_working (c, FALSE, &due))
        g_date_add_days (&due, 1);
      break;
    case CLOCK_NONE:
    default:
      return due;
    }
  lo = uk ? c->uk_first : c->local_first;
  hi = uk ? c->uk_last : c->local_last;
  if (beyond != NULL)
    *beyond = g_date_get_year (&first) < lo || g_date_get_year (&due) > hi;
  return due;
}

GDate
clock_due (const clock_calendar *c, const clock_rule *rule,
           GDateTime *received, gboolean *beyond)
{
  g_autoptr (GDateTime) local = NULL;
  GDate day;
  int y, m, d;

  g_date_clear (&day, 1);
  if (beyond != NULL)
    *beyond = FALSE;
  g_return_val_if_fail (c != NULL && received != NULL, day);
  local = g_date_time_to_timezone (received, c->tz);
  g_return_val_if_fail (local != NULL, day);
  g_date_time_get_ymd (local, &y, &m, &d);
  g_date_set_dmy (&day, (GDateDay) d, (GDateMonth) m, (GDateYear) y);
  return clock_due_date (c, rule, &day, beyond);
}

/* -------------------------------------------------------------- import */

static void
clock_json_string (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    {
      if (*p == '"' || *p == '\\')
        {
          g_string_append_c (out, '\\');
          g_string_append_c (out, (char) *p);
        }
      else if (*p < 0x20 || *p == 0x7f)
        g_string_append_printf (out, "\\u%04x", *p);
      else
        g_string_append_c (out, (char) *p);   /* UTF-8, checked on read */
    }
  g_string_append_c (out, '"');
}

/* The normalised file: fixed nation order, one event per line so that a
 * yearly update reads as a short diff.  */
static GString *
clock_file_write (const clock_file *f)
{
  GString *out = g_string_new ("{\n");

  for (int n = 0; n < CLOCK_NATIONS; n++)
    {
      const GArray *a = f->events[n];
      g_string_append_printf (out, "  \"%s\": {\n    \"division\": \"%s\",\n"
                              "    \"events\": [\n", clock_nation_names[n],
                              clock_nation_names[n]);
      for (guint i = 0; i < a->len; i++)
        {
          const clock_event *e = &g_array_index (a, clock_event, i);
          char date[16];
          g_date_strftime (date, sizeof date, "%Y-%m-%d", &e->date);
          g_string_append (out, "      {\"title\": ");
          clock_json_string (out, e->title);
          g_string_append_printf (out, ", \"date\": \"%s\", \"notes\": ",
                                  date);
          clock_json_string (out, e->notes);
          g_string_append_printf (out, ", \"bunting\": %s}%s\n",
                                  e->bunting ? "true" : "false",
                                  i + 1 < a->len ? "," : "");
        }
      g_string_append_printf (out, "    ]\n  }%s\n",
                              n + 1 < CLOCK_NATIONS ? "," : "");
    }
  g_string_append (out, "}\n");
  return out;
}

gboolean
clock_holidays_import (const char *in_path, const char *out_path,
                       GError **error)
{
  g_autoptr (GError) local = NULL;
  clock_file f;
  GString *out;
  gboolean ok;

  g_return_val_if_fail (in_path != NULL && out_path != NULL, FALSE);
  if (!clock_file_read (in_path, &f, error))
    return FALSE;
  out = clock_file_write (&f);
  clock_file_clear (&f);
  /* GLib writes OUT.XXXXXX beside it, fsyncs and renames it over (and
   * removes it on failure): a reader sees the old file or the new one.  */
  ok = g_file_set_contents_full (out_path, out->str, (gssize) out->len,
                                 G_FILE_SET_CONTENTS_CONSISTENT
                                     | G_FILE_SET_CONTENTS_DURABLE,
                                 0644, &local);
  g_string_free (out, TRUE);
  if (!ok)
    g_set_error (error, CLOCK_ERROR, CLOCK_ERROR_IO, "%s: cannot write: %s",
                 out_path, local->message);
  return ok;
}
