/*
 * anonymise.c - personal data in text replaced by placeholders
 * (anonymise.h).
 *
 * Owns: nothing beyond one call.
 * Refuses: nothing; text that holds no personal data comes back the same.
 * What the parser's patterns miss (a neighbour's name, a street without a
 * postcode) stays: docs/rights.md says so.
 */
#define G_LOG_DOMAIN "intake-router"

#include "router/anonymise.h"

#include <string.h>

#include "parser/parser.h"
#include "parser/parser_text.h"

/* Words of a name shorter than this are left (initials, "de", "Mr").  */
#define ANONYMISE_NAME_WORD_MIN 3

typedef struct {
  char *value;
  const char *placeholder;
} anonymise_item;

static const char *
anonymise_placeholder (parser_pd_kind kind)
{
  switch (kind)
    {
    case PARSER_PD_EMAIL:
      return "[email]";
    case PARSER_PD_PHONE:
      return "[phone]";
    case PARSER_PD_POSTCODE:
      return "[postcode]";
    case PARSER_PD_NINO:
      return "[nino]";
    case PARSER_PD_DOB:
      return "[dob]";
    case PARSER_PD_SORT_CODE:
      return "[sort-code]";
    case PARSER_PD_ACCOUNT:
      return "[account]";
    case PARSER_PD_CARD:
      return "[card]";
    }
  return "[personal]";
}

static void
anonymise_add (GArray *items, const char *value, const char *placeholder)
{
  anonymise_item it;
  g_autofree char *v = g_strstrip (g_strdup (value ? value : ""));

  if (*v == '\0')
    return;
  it.value = g_steal_pointer (&v);
  it.placeholder = placeholder;
  g_array_append_val (items, it);
}

/* Longest first: "07700 900123" before a shorter value inside it.  */
static gint
anonymise_longest_first (gconstpointer a, gconstpointer b)
{
  const anonymise_item *x = a, *y = b;
  gsize lx = strlen (x->value), ly = strlen (y->value);

  return lx < ly ? 1 : lx > ly ? -1 : 0;
}

static gboolean
anonymise_word_char (char c)
{
  return g_ascii_isalnum (c) || (c & 0x80) != 0;
}

/* Replace every occurrence of @needle in @s, ignoring ASCII case; a
 * needle that starts and ends with a word character only matches whole
 * words ("Ann" not in "Annual").  */
static char *
anonymise_replace (const char *s, const char *needle, const char *with,
                   guint *count)
{
  const gsize n = strlen (needle);
  const gboolean words = anonymise_word_char (needle[0])
                         && anonymise_word_char (needle[n - 1]);
  GString *out = g_string_sized_new (strlen (s));
  const char *p = s;

  while (*p)
    {
      if (g_ascii_strncasecmp (p, needle, n) == 0
          && (!words
              || ((p == s || !anonymise_word_char (p[-1]))
                  && !anonymise_word_char (p[n]))))
        {
          g_string_append (out, with);
          p += n;
          (*count)++;
          continue;
        }
      g_string_append_c (out, *p++);
    }
  return g_string_free (out, FALSE);
}

char *
anonymise_text (const char *text, const anonymise_person *person,
                guint *replaced)
{
  g_autoptr (GPtrArray) found = NULL;
  GArray *items;
  char *cur;
  guint count = 0;

  if (text == NULL)
    return NULL;
  items = g_array_new (FALSE, FALSE, sizeof (anonymise_item));
  found = g_ptr_array_new_with_free_func ((GDestroyNotify) parser_pd_free);
  /* cards first: the parser redacts them to "**** **** **** 1234" */
  {
    guint cards = 0;
    cur = parser_cards_redact (text, &cards, NULL);
  }
  parser_pd_find (cur, found);
  for (guint i = 0; i < found->len; i++)
    {
      parser_pd *pd = found->pdata[i];
      anonymise_add (items, pd->value, anonymise_placeholder (pd->kind));
    }
  if (person != NULL)
    {
      anonymise_add (items, person->email, "[email]");
      anonymise_add (items, person->phone, "[phone]");
      anonymise_add (items, person->postal, "[address]");
      anonymise_add (items, person->name, "[name]");
      if (person->name != NULL)
        {
          g_auto (GStrv) words = g_strsplit_set (person->name, " \t,.", -1);
          for (guint i = 0; words[i]; i++)
            if (strlen (words[i]) >= ANONYMISE_NAME_WORD_MIN)
              anonymise_add (items, words[i], "[name]");
        }
    }
  g_array_sort (items, anonymise_longest_first);
  for (guint i = 0; i < items->len; i++)
    {
      anonymise_item *it = &g_array_index (items, anonymise_item, i);
      char *next = anonymise_replace (cur, it->value, it->placeholder,
                                      &count);
      g_free (cur);
      cur = next;
      g_free (it->value);
    }
  /* a card the parser had already shortened */
  {
    static const char masked[] = "**** **** **** ";
    const char *hit;
    GString *out = g_string_new (NULL);
    const char *p = cur;
    while ((hit = strstr (p, masked)) != NULL)
      {
        const char *q = hit + sizeof masked - 1;
        g_string_append_len (out, p, hit - p);
        g_string_append (out, "[card]");
        while (g_ascii_isdigit (*q))
          q++;
        p = q;
        count++;
      }
    g_string_append (out, p);
    g_free (cur);
    cur = g_string_free (out, FALSE);
  }
  g_array_free (items, TRUE);
  if (replaced)
    *replaced = count;
  return cur;
}
