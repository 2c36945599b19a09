/*
 * forms.c - form definitions, HTML, validation, the message we build.
 *
 * Owns: the definitions (read-only after load).  Refuses: a value with a
 * line break in a one-line field (it could reach a header: SECURITY-TESTS
 * §J), values over their maximum, e-mail addresses, UK phone numbers,
 * postcodes and dates that do not parse, choices not offered, files over
 * their size.  Everything shown back is escaped.
 */
#define G_LOG_DOMAIN "intake-forms"

#include "intake/forms.h"

#include <string.h>

#include <gmime/gmime.h>
#include <sodium.h>

#include "parser/parser_headers.h"

#define FORM_TOKEN_LIFE_S (2 * 3600)
#define FORM_TEXT_DEFAULT_MAX 200
#define FORM_LONGTEXT_DEFAULT_MAX 10000
#define FORM_FILE_DEFAULT_MAX (5 * 1024 * 1024)

struct forms {
  GHashTable *by_id;         /* id -> form_def * */
};

static void
form_field_free (form_field *f)
{
  g_free (f->name);
  g_free (f->label);
  g_free (f->hint);
  g_strfreev (f->choices);
  g_free (f->purpose);
  g_free (f->lawful_basis);
  g_free (f->special);
  g_free (f);
}

static void
form_def_free (form_def *d)
{
  g_free (d->id);
  g_free (d->title);
  g_free (d->intro);
  g_free (d->privacy);
  g_free (d->mailbox);
  g_ptr_array_unref (d->fields);
  g_free (d);
}

void
forms_free (forms *f)
{
  if (f == NULL)
    return;
  g_hash_table_unref (f->by_id);
  g_free (f);
}

const form_def *
forms_get (const forms *f, const char *id)
{
  return f ? g_hash_table_lookup (f->by_id, id) : NULL;
}

static char *
forms_str (GKeyFile *kf, const char *g, const char *k)
{
  char *v = g_key_file_get_string (kf, g, k, NULL);

  return v ? g_strstrip (v) : NULL;
}

static form_def *
forms_load_one (const char *path, const char *id, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_auto (GStrv) groups = NULL;
  form_def *d;

  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, error))
    return NULL;
  d = g_new0 (form_def, 1);
  d->id = g_strdup (id);
  d->fields = g_ptr_array_new_with_free_func ((GDestroyNotify) form_field_free);
  d->title = forms_str (kf, "form", "title");
  d->intro = forms_str (kf, "form", "intro");
  d->privacy = forms_str (kf, "form", "privacy");
  d->mailbox = forms_str (kf, "form", "mailbox");
  if (d->title == NULL || d->mailbox == NULL)
    {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                   "%s: [form] needs title and mailbox", path);
      form_def_free (d);
      return NULL;
    }
  groups = g_key_file_get_groups (kf, NULL);
  for (guint i = 0; groups[i]; i++)
    {
      static const struct { const char *name; form_type t; } types[] = {
        { "text", FORM_TEXT }, { "longtext", FORM_LONGTEXT },
        { "email", FORM_EMAIL }, { "uk_phone", FORM_UK_PHONE },
        { "uk_postcode", FORM_UK_POSTCODE }, { "date", FORM_DATE },
        { "choice", FORM_CHOICE }, { "file", FORM_FILE },
      };
      g_autofree char *type = NULL;
      g_autofree char *choices = NULL;
      form_field *f;
      gboolean known = FALSE;

      if (!g_str_has_prefix (groups[i], "field "))
        continue;
      f = g_new0 (form_field, 1);
      g_ptr_array_add (d->fields, f);
      f->name = g_strstrip (g_strdup (groups[i] + 6));
      for (const char *c = f->name; *c; c++)
        if (!g_ascii_isalnum (*c) && *c != '_')
          {
            g_set_error (error, G_KEY_FILE_ERROR,
                         G_KEY_FILE_ERROR_INVALID_VALUE,
                         "%s: [%s]: a field name is letters, digits and _",
                         path, groups[i]);
            form_def_free (d);
            return NULL;
          }
      f->label = forms_str (kf, groups[i], "label");
      f->hint = forms_str (kf, groups[i], "hint");
      f->purpose = forms_str (kf, groups[i], "purpose");
      f->lawful_basis = forms_str (kf, groups[i], "lawful_basis");
      f->special = forms_str (kf, groups[i], "special");
      type = forms_str (kf, groups[i], "type");
      for (guint t = 0; type && t < G_N_ELEMENTS (types); t++)
        if (strcmp (type, types[t].name) == 0)
          {
            f->type = types[t].t;
            known = TRUE;
          }
      if (!known || f->label == NULL)
        {
          g_set_error (error, G_KEY_FILE_ERROR,
                       G_KEY_FILE_ERROR_INVALID_VALUE,
                       "%s: [%s] needs a label and a type (text, longtext,"
                       " email, uk_phone, uk_postcode, date, choice, file)",
                       path, groups[i]);
          form_def_free (d);
          return NULL;
        }
      if (f->special && (f->purpose == NULL || f->lawful_basis == NULL))
        {
          /* the reason for special category data is given on the form */
          g_set_error (error, G_KEY_FILE_ERROR,
                       G_KEY_FILE_ERROR_INVALID_VALUE,
                       "%s: [%s] asks for special category data: it needs"
                       " purpose and lawful_basis (shown on the form)",
                       path, groups[i]);
          form_def_free (d);
          return NULL;
        }
      f->required = g_key_file_get_boolean (kf, groups[i], "required", NULL);
      f->max_length = g_key_file_get_integer (kf, groups[i],
                                              f->type == FORM_FILE
                                                  ? "max_size"
                                                  : "max_length", NULL);
      if (f->max_length == 0)
        f->max_length = f->type == FORM_FILE ? FORM_FILE_DEFAULT_MAX
                        : f->type == FORM_LONGTEXT ? FORM_LONGTEXT_DEFAULT_MAX
                                                   : FORM_TEXT_DEFAULT_MAX;
      choices = forms_str (kf, groups[i], "choices");
      if (f->type == FORM_CHOICE)
        {
          if (choices == NULL)
            {
              g_set_error (error, G_KEY_FILE_ERROR,
                           G_KEY_FILE_ERROR_INVALID_VALUE,
                           "%s: [%s] needs choices = a|b|c", path, groups[i]);
              form_def_free (d);
              return NULL;
            }
          f->choices = g_strsplit (choices, "|", -1);
        }
    }
  return d;
}

forms *
forms_load (const char *dir, GError **error)
{
  g_autoptr (GDir) gd = g_dir_open (dir, 0, error);
  forms *f;
  const char *name;

  if (gd == NULL)
    return NULL;
  parser_init ();               /* GMime builds the messages */
  f = g_new0 (forms, 1);
  f->by_id = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                    (GDestroyNotify) form_def_free);
  while ((name = g_dir_read_name (gd)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autofree char *id = NULL;
      form_def *d;

      if (!g_str_has_suffix (name, ".form"))
        continue;
      id = g_strndup (name, strlen (name) - 5);
      path = g_build_filename (dir, name, NULL);
      d = forms_load_one (path, id, error);
      if (d == NULL)
        {
          forms_free (f);
          return NULL;
        }
      g_hash_table_insert (f->by_id, g_strdup (id), d);
    }
  return f;
}

/* ------------------------------------------------------------ input */

static void
form_file_free (form_file *ff)
{
  g_free (ff->filename);
  g_free (ff->content_type);
  if (ff->data)
    g_bytes_unref (ff->data);
  g_free (ff);
}

form_input *
form_input_new (void)
{
  form_input *in = g_new0 (form_input, 1);

  in->values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      g_free);
  in->files = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                     (GDestroyNotify) form_file_free);
  return in;
}

void
form_input_free (form_input *in)
{
  if (in == NULL)
    return;
  g_hash_table_unref (in->values);
  g_hash_table_unref (in->files);
  g_free (in);
}

/* ------------------------------------------------------- validation */

static void
form_problem_free (form_problem *p)
{
  g_free (p->field);
  g_free (p->problem);
  g_free (p);
}

static void
form_add_problem (GPtrArray *out, const char *field, const char *fmt, ...)
    G_GNUC_PRINTF (3, 4);

static void
form_add_problem (GPtrArray *out, const char *field, const char *fmt, ...)
{
  form_problem *p = g_new0 (form_problem, 1);
  va_list ap;

  p->field = g_strdup (field);
  va_start (ap, fmt);
  p->problem = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_ptr_array_add (out, p);
}

static gboolean
form_email_ok (const char *v)
{
  const char *at = strchr (v, '@');
  const char *dot;

  if (at == NULL || at == v || strchr (at + 1, '@') != NULL
      || strlen (v) > 254)
    return FALSE;
  for (const char *p = v; *p; p++)
    if ((guchar) *p <= ' ' || *p == '<' || *p == '>' || *p == ','
        || *p == '"' || *p == '(' || *p == ')' || *p == ';' || *p == '\\')
      return FALSE;
  dot = strrchr (at, '.');
  return dot != NULL && dot > at + 1 && dot[1] != '\0';
}

/* UK numbers: 0 and 9 or 10 more digits, +44 for the 0, spaces, dashes and
 * brackets allowed.  */
static gboolean
form_phone_ok (const char *v)
{
  GString *d = g_string_new (NULL);
  gboolean ok;

  for (const char *p = v; *p; p++)
    {
      if (g_ascii_isdigit (*p))
        g_string_append_c (d, *p);
      else if (*p == '+' && p == v)
        g_string_append_c (d, '+');
      else if (*p != ' ' && *p != '-' && *p != '(' && *p != ')')
        {
          g_string_free (d, TRUE);
          return FALSE;
        }
    }
  if (g_str_has_prefix (d->str, "+44"))
    {
      g_string_erase (d, 0, 3);
      g_string_prepend_c (d, '0');
    }
  ok = d->str[0] == '0' && (d->len == 10 || d->len == 11);
  g_string_free (d, TRUE);
  return ok;
}

/* A1 1AA, A11 1AA, AA1 1AA, AA11 1AA, A1A 1AA, AA1A 1AA; the space is
 * optional, case does not matter.  */
static gboolean
form_postcode_ok (const char *v)
{
  char s[16];
  gsize n = 0, i = 0;

  for (const char *p = v; *p; p++)
    if (*p != ' ')
      {
        if (n + 1 >= sizeof s)
          return FALSE;
        s[n++] = g_ascii_toupper (*p);
      }
  s[n] = '\0';
  if (n < 5 || n > 7)
    return FALSE;
  /* the inward code: digit letter letter */
  if (!g_ascii_isdigit (s[n - 3]) || !g_ascii_isalpha (s[n - 2])
      || !g_ascii_isalpha (s[n - 1]))
    return FALSE;
  /* the outward code: 1-2 letters, a digit, then a letter or digit */
  if (!g_ascii_isalpha (s[i++]))
    return FALSE;
  if (g_ascii_isalpha (s[i]))
    i++;
  if (!g_ascii_isdigit (s[i++]))
    return FALSE;
  if (i < n - 3 && g_ascii_isalnum (s[i]))
    i++;
  return i == n - 3;
}

static gboolean
form_date_ok (const char *v)
{
  guint y, m, d;
  char tail;

  if (sscanf (v, "%4u-%2u-%2u%c", &y, &m, &d, &tail) != 3 || strlen (v) != 10)
    return FALSE;
  return g_date_valid_dmy (d, m, y);
}

GPtrArray *
form_validate (const form_def *def, const form_input *in)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) form_problem_free);

  for (guint i = 0; i < def->fields->len; i++)
    {
      const form_field *f = def->fields->pdata[i];
      const char *v = g_hash_table_lookup (in->values, f->name);
      const form_file *ff = g_hash_table_lookup (in->files, f->name);
      g_autofree char *trimmed = v ? g_strstrip (g_strdup (v)) : NULL;

      if (f->type == FORM_FILE)
        {
          if (ff == NULL || ff->data == NULL
              || g_bytes_get_size (ff->data) == 0)
            {
              if (f->required)
                form_add_problem (out, f->name, "Choose a file for: %s",
                                  f->label);
            }
          else if (g_bytes_get_size (ff->data) > f->max_length)
            form_add_problem (out, f->name, "The file must be smaller than"
                              " %u MB", f->max_length / (1024 * 1024));
          continue;
        }
      if (trimmed == NULL || *trimmed == '\0')
        {
          if (f->required)
            form_add_problem (out, f->name, "Enter %s",
                              f->type == FORM_CHOICE ? "a choice" : "this");
          continue;
        }
      if (!g_utf8_validate (trimmed, -1, NULL))
        {
          form_add_problem (out, f->name, "Use plain text");
          continue;
        }
      if (f->type != FORM_LONGTEXT && strpbrk (trimmed, "\r\n") != NULL)
        {
          /* a line break in a one-line field never reaches a header */
          form_add_problem (out, f->name, "Must be on one line");
          continue;
        }
      for (const char *p = trimmed; *p; p++)
        if ((guchar) *p < 0x20 && *p != '\n' && *p != '\r' && *p != '\t')
          {
            form_add_problem (out, f->name, "Contains control characters");
            goto next;
          }
      if (g_utf8_strlen (trimmed, -1) > f->max_length)
        {
          form_add_problem (out, f->name, "Must be %u characters or fewer",
                            f->max_length);
          continue;
        }
      switch (f->type)
        {
        case FORM_EMAIL:
          if (!form_email_ok (trimmed))
            form_add_problem (out, f->name, "Enter an email address in the"
                              " correct format, like name@example.com");
          break;
        case FORM_UK_PHONE:
          if (!form_phone_ok (trimmed))
            form_add_problem (out, f->name, "Enter a UK telephone number,"
                              " like 01632 960 001 or 07700 900 982");
          break;
        case FORM_UK_POSTCODE:
          if (!form_postcode_ok (trimmed))
            form_add_problem (out, f->name, "Enter a real postcode, like"
                              " SW1A 1AA");
          break;
        case FORM_DATE:
          if (!form_date_ok (trimmed))
            form_add_problem (out, f->name, "Enter a real date as"
                              " YYYY-MM-DD, like 2026-11-20");
          break;
        case FORM_CHOICE:
          if (!g_strv_contains ((const char *const *) f->choices, trimmed))
            form_add_problem (out, f->name, "Select one of the options");
          break;
        default:
          break;
        }
    next:
      ;
    }
  return out;
}

/* ------------------------------------------------------------- HTML */

/* A citizen's value comes back in the page when a field has a problem,
 * and "Use plain text" is the problem of one that is not UTF-8: its bytes
 * are shown as U+FFFD, so that the page stays valid UTF-8 (and
 * g_markup_escape_text(), which wants UTF-8, never sees them).  */
static void
form_html_escape (GString *s, const char *text)
{
  g_autofree char *valid = NULL;
  g_autofree char *e = NULL;

  if (text == NULL)
    text = "";
  if (!g_utf8_validate (text, -1, NULL))
    text = valid = g_utf8_make_valid (text, -1);
  e = g_markup_escape_text (text, -1);
  g_string_append (s, e);
}

static const char form_css[] =
  "body{font-family:Arial,sans-serif;margin:2em auto;max-width:40em;"
  "line-height:1.4;color:#0b0c0c}"
  ".govuk-form-group{margin-bottom:1.5em}"
  ".govuk-label{display:block;font-weight:bold}"
  ".govuk-hint{color:#505a5f}"
  ".govuk-error-summary{border:4px solid #d4351c;padding:1em;"
  "margin-bottom:1.5em}"
  ".govuk-error-message{color:#d4351c;font-weight:bold}"
  ".govuk-form-group--error{border-left:4px solid #d4351c;padding-left:1em}"
  ".govuk-input,.govuk-textarea,.govuk-select{font-size:1em;width:100%;"
  "padding:.3em;border:2px solid #0b0c0c}"
  ".govuk-button{background:#00703c;color:#fff;border:0;padding:.6em 1em;"
  "font-size:1em}"
  ".intake-honeypot{position:absolute;left:-10000px}"
  ".govuk-panel{background:#00703c;color:#fff;padding:1.5em;"
  "text-align:center}";

static void
form_page_head (GString *s, const char *title)
{
  g_string_append (s, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
                      "<meta charset=\"utf-8\">\n<meta name=\"viewport\""
                      " content=\"width=device-width, initial-scale=1\">\n"
                      "<title>");
  form_html_escape (s, title);
  g_string_append_printf (s, "</title>\n<style>%s</style>\n</head>\n"
                             "<body>\n<main id=\"main-content\">\n",
                          form_css);
}

static const char *
form_problem_for (const GPtrArray *problems, const char *field)
{
  for (guint i = 0; problems && i < problems->len; i++)
    {
      const form_problem *p = problems->pdata[i];
      if (strcmp (p->field, field) == 0)
        return p->problem;
    }
  return NULL;
}

char *
form_render (const form_def *def, const form_input *in,
             const GPtrArray *problems, const char *token)
{
  GString *s = g_string_new (NULL);
  gboolean multipart = FALSE;

  for (guint i = 0; i < def->fields->len; i++)
    multipart |= ((form_field *) def->fields->pdata[i])->type == FORM_FILE;
  {
    g_autofree char *title = g_strconcat (problems && problems->len
                                              ? "Error: " : "",
                                          def->title, NULL);
    form_page_head (s, title);
  }
  if (problems && problems->len > 0)
    {
      g_string_append (s, "<div class=\"govuk-error-summary\""
                          " aria-labelledby=\"error-summary-title\""
                          " role=\"alert\" tabindex=\"-1\">\n"
                          "<h2 class=\"govuk-error-summary__title\""
                          " id=\"error-summary-title\">There is a problem"
                          "</h2>\n<ul class=\"govuk-error-summary__list\">\n");
      for (guint i = 0; i < problems->len; i++)
        {
          const form_problem *p = problems->pdata[i];
          const char *label = p->field;
          for (guint j = 0; j < def->fields->len; j++)
            if (strcmp (((form_field *) def->fields->pdata[j])->name,
                        p->field) == 0)
              label = ((form_field *) def->fields->pdata[j])->label;
          g_string_append_printf (s, "<li><a href=\"#%s\">", p->field);
          form_html_escape (s, label);
          g_string_append (s, ": ");
          form_html_escape (s, p->problem);
          g_string_append (s, "</a></li>\n");
        }
      g_string_append (s, "</ul>\n</div>\n");
    }
  g_string_append (s, "<h1 class=\"govuk-heading-l\">");
  form_html_escape (s, def->title);
  g_string_append (s, "</h1>\n");
  if (def->intro)
    {
      g_string_append (s, "<p class=\"govuk-body\">");
      form_html_escape (s, def->intro);
      g_string_append (s, "</p>\n");
    }
  g_string_append_printf (s, "<form method=\"post\" action=\"/forms/%s\""
                             " novalidate%s>\n", def->id,
                          multipart ? " enctype=\"multipart/form-data\"" : "");
  g_string_append_printf (s, "<input type=\"hidden\" name=\"_token\""
                             " value=\"%s\">\n", token);
  for (guint i = 0; i < def->fields->len; i++)
    {
      const form_field *f = def->fields->pdata[i];
      const char *problem = form_problem_for (problems, f->name);
      const char *value = in ? g_hash_table_lookup (in->values, f->name)
                             : NULL;
      GString *desc = g_string_new (NULL);

      if (f->hint)
        g_string_append_printf (desc, "%s-hint", f->name);
      if (problem)
        g_string_append_printf (desc, "%s%s-error", desc->len ? " " : "",
                                f->name);
      if (f->purpose)
        g_string_append_printf (desc, "%s%s-purpose", desc->len ? " " : "",
                                f->name);
      g_string_append_printf (s, "<div class=\"govuk-form-group%s\">\n",
                              problem ? " govuk-form-group--error" : "");
      g_string_append_printf (s, "<label class=\"govuk-label\" for=\"%s\">",
                              f->name);
      form_html_escape (s, f->label);
      g_string_append (s, "</label>\n");
      if (f->hint)
        {
          g_string_append_printf (s, "<div id=\"%s-hint\" class=\"govuk-hint\""
                                     ">", f->name);
          form_html_escape (s, f->hint);
          g_string_append (s, "</div>\n");
        }
      if (f->purpose)
        {
          g_string_append_printf (s, "<div id=\"%s-purpose\""
                                     " class=\"govuk-hint\">Why we ask: ",
                                  f->name);
          form_html_escape (s, f->purpose);
          if (f->lawful_basis)
            {
              g_string_append (s, ". Lawful basis: ");
              form_html_escape (s, f->lawful_basis);
            }
          g_string_append (s, ".</div>\n");
        }
      if (problem)
        {
          g_string_append_printf (s, "<p id=\"%s-error\""
                                     " class=\"govuk-error-message\">"
                                     "<span class=\"govuk-visually-hidden\">"
                                     "Error:</span> ", f->name);
          form_html_escape (s, problem);
          g_string_append (s, "</p>\n");
        }
      switch (f->type)
        {
        case FORM_LONGTEXT:
          g_string_append_printf (s, "<textarea class=\"govuk-textarea\""
                                     " id=\"%s\" name=\"%s\" rows=\"6\"%s%s"
                                     "%s%s>", f->name, f->name,
                                  desc->len ? " aria-describedby=\"" : "",
                                  desc->str, desc->len ? "\"" : "",
                                  f->required ? " required" : "");
          form_html_escape (s, value);
          g_string_append (s, "</textarea>\n");
          break;
        case FORM_CHOICE:
          g_string_append_printf (s, "<select class=\"govuk-select\""
                                     " id=\"%s\" name=\"%s\">\n"
                                     "<option value=\"\"></option>\n",
                                  f->name, f->name);
          for (guint c = 0; f->choices[c]; c++)
            {
              g_string_append (s, "<option value=\"");
              form_html_escape (s, f->choices[c]);
              g_string_append_printf (s, "\"%s>",
                                      g_strcmp0 (value, f->choices[c]) == 0
                                          ? " selected" : "");
              form_html_escape (s, f->choices[c]);
              g_string_append (s, "</option>\n");
            }
          g_string_append (s, "</select>\n");
          break;
        case FORM_FILE:
          g_string_append_printf (s, "<input class=\"govuk-file-upload\""
                                     " id=\"%s\" name=\"%s\" type=\"file\">\n",
                                  f->name, f->name);
          break;
        default:
          {
            const char *type = f->type == FORM_EMAIL ? "email"
                               : f->type == FORM_UK_PHONE ? "tel"
                               : f->type == FORM_DATE ? "date" : "text";
            const char *ac = f->type == FORM_EMAIL ? "email"
                             : f->type == FORM_UK_PHONE ? "tel"
                             : f->type == FORM_UK_POSTCODE ? "postal-code"
                             : strcmp (f->name, "name") == 0 ? "name" : "off";
            g_string_append_printf (s, "<input class=\"govuk-input\""
                                       " id=\"%s\" name=\"%s\" type=\"%s\""
                                       " autocomplete=\"%s\"%s%s%s value=\"",
                                    f->name, f->name, type, ac,
                                    desc->len ? " aria-describedby=\"" : "",
                                    desc->str, desc->len ? "\"" : "");
            form_html_escape (s, value);
            g_string_append (s, "\">\n");
          }
        }
      g_string_append (s, "</div>\n");
      g_string_free (desc, TRUE);
    }
  /* a field people never see: bots fill it in */
  g_string_append (s, "<div class=\"intake-honeypot\" aria-hidden=\"true\">"
                      "<label for=\"website\">Leave this empty</label>"
                      "<input id=\"website\" name=\"website\" type=\"text\""
                      " tabindex=\"-1\" autocomplete=\"off\"></div>\n");
  if (def->privacy)
    {
      g_string_append (s, "<p class=\"govuk-body\">");
      form_html_escape (s, def->privacy);
      g_string_append (s, "</p>\n");
    }
  g_string_append (s, "<button class=\"govuk-button\" type=\"submit\">"
                      "Send</button>\n</form>\n</main>\n</body>\n</html>\n");
  return g_string_free (s, FALSE);
}

char *
form_render_done (const form_def *def, const char *ref)
{
  GString *s = g_string_new (NULL);

  form_page_head (s, "Sent");
  g_string_append (s, "<div class=\"govuk-panel govuk-panel--confirmation\">"
                      "\n<h1 class=\"govuk-panel__title\">We have your"
                      " message</h1>\n<div class=\"govuk-panel__body\">Your"
                      " reference<br><strong id=\"reference\">");
  form_html_escape (s, ref);
  g_string_append (s, "</strong></div>\n</div>\n<p class=\"govuk-body\">"
                      "Quote this reference if you contact us about it.</p>"
                      "\n</main>\n</body>\n</html>\n");
  return g_string_free (s, FALSE);
}

/* ---------------------------------------------------------- message */

const char *
form_email (const form_def *def, const form_input *in)
{
  for (guint i = 0; i < def->fields->len; i++)
    {
      const form_field *f = def->fields->pdata[i];
      const char *v = g_hash_table_lookup (in->values, f->name);
      if (f->type == FORM_EMAIL && v && *v)
        return v;
    }
  return NULL;
}

/* A file name made safe: last path component, no controls, bounded.  */
static char *
form_safe_filename (const char *name)
{
  const char *base = name ? strrchr (name, '/') : NULL;
  const char *back = name ? strrchr (name, '\\') : NULL;
  GString *s = g_string_new (NULL);

  if (name == NULL)
    name = "";
  if (back && (!base || back > base))
    base = back;
  base = base ? base + 1 : name;
  for (const char *p = base; *p && s->len < 200; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char_validated (p, -1);
      if (c == (gunichar) -1 || c == (gunichar) -2)
        break;
      if (g_unichar_iscntrl (c) || c == 0x202e || c == 0x202d
          || (c >= 0x2066 && c <= 0x2069) || c == '"')
        continue;
      g_string_append_unichar (s, c);
    }
  if (s->len == 0 || strcmp (s->str, ".") == 0 || strcmp (s->str, "..") == 0)
    g_string_assign (s, "upload");
  return g_string_free (s, FALSE);
}

GBytes *
form_build_message (const form_def *def, const form_input *in,
                    const char *hostname, const char *user_agent)
{
  GMimeMessage *msg = g_mime_message_new (TRUE);
  g_autoptr (GString) body = g_string_new (NULL);
  GMimeTextPart *text = g_mime_text_part_new_with_subtype ("plain");
  GMimeStream *out = g_mime_stream_mem_new ();
  GBytes *result;
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *mid = NULL;
  g_autofree char *subject = NULL;
  const char *email = form_email (def, in);
  const char *name = g_hash_table_lookup (in->values, "name");
  GMimeObject *top;
  GByteArray *ba;
  guint files = 0;

  for (guint i = 0; i < def->fields->len; i++)
    {
      const form_field *f = def->fields->pdata[i];
      const char *v = g_hash_table_lookup (in->values, f->name);
      if (f->type == FORM_FILE || v == NULL || *v == '\0')
        continue;
      if (f->type == FORM_LONGTEXT)
        g_string_append_printf (body, "%s:\n%s\n\n", f->label, v);
      else
        g_string_append_printf (body, "%s: %s\n", f->label, v);
    }
  g_mime_text_part_set_text (text, body->str);
  g_mime_text_part_set_charset (text, "utf-8");
  top = GMIME_OBJECT (text);
  for (guint i = 0; i < def->fields->len; i++)
    files += ((form_field *) def->fields->pdata[i])->type == FORM_FILE
             && g_hash_table_lookup (in->files,
                                     ((form_field *) def->fields->pdata[i])
                                         ->name) != NULL;
  if (files > 0)
    {
      GMimeMultipart *mp = g_mime_multipart_new_with_subtype ("mixed");
      g_mime_multipart_add (mp, GMIME_OBJECT (text));
      for (guint i = 0; i < def->fields->len; i++)
        {
          const form_field *f = def->fields->pdata[i];
          const form_file *ff = g_hash_table_lookup (in->files, f->name);
          g_autofree char *safe = NULL;
          GMimeStream *st;
          GMimeDataWrapper *dw;
          GMimePart *part;

          if (f->type != FORM_FILE || ff == NULL || ff->data == NULL
              || g_bytes_get_size (ff->data) == 0)
            continue;
          safe = form_safe_filename (ff->filename);
          part = g_mime_part_new_with_type ("application", "octet-stream");
          st = g_mime_stream_mem_new_with_buffer (
              g_bytes_get_data (ff->data, NULL), g_bytes_get_size (ff->data));
          dw = g_mime_data_wrapper_new_with_stream (st,
                                                    GMIME_CONTENT_ENCODING_DEFAULT);
          g_mime_part_set_content (part, dw);
          g_object_unref (dw);
          g_object_unref (st);
          g_mime_part_set_filename (part, safe);
          g_mime_part_set_content_encoding (part,
                                            GMIME_CONTENT_ENCODING_BASE64);
          g_mime_multipart_add (mp, GMIME_OBJECT (part));
          g_object_unref (part);
        }
      top = GMIME_OBJECT (mp);
    }
  g_mime_message_set_mime_part (msg, top);
  if (top != GMIME_OBJECT (text))
    g_object_unref (top);
  if (email)
    g_mime_message_add_mailbox (msg, GMIME_ADDRESS_TYPE_FROM,
                                name ? name : "", email);
  else
    g_mime_message_add_mailbox (msg, GMIME_ADDRESS_TYPE_FROM, def->title,
                                "web-form@invalid");
  g_mime_message_add_mailbox (msg, GMIME_ADDRESS_TYPE_TO, NULL, def->mailbox);
  {
    const char *subj = g_hash_table_lookup (in->values, "subject");
    subject = g_strdup_printf ("%s%s%s", def->title, subj ? ": " : "",
                               subj ? subj : "");
  }
  g_mime_message_set_subject (msg, subject, "utf-8");
  g_mime_message_set_date (msg, now);
  mid = g_strdup_printf ("form-%s-%" G_GINT64_FORMAT "-%08x@%s", def->id,
                         g_get_real_time (), g_random_int (), hostname);
  g_mime_message_set_message_id (msg, mid);
  g_mime_object_set_header (GMIME_OBJECT (msg), "X-Intake-Form", def->id,
                            NULL);
  if (user_agent)
    {
      /* kept with the message, sealed like it (the notices say so); never
       * a line break */
      g_autofree char *ua = g_strndup (user_agent, 256);
      g_strdelimit (ua, "\r\n", ' ');
      g_mime_object_set_header (GMIME_OBJECT (msg),
                                "X-Intake-Form-User-Agent", ua, NULL);
    }
  g_mime_object_write_to_stream (GMIME_OBJECT (msg), NULL, out);
  ba = g_mime_stream_mem_get_byte_array (GMIME_STREAM_MEM (out));
  result = g_bytes_new (ba->data, ba->len);
  g_object_unref (out);
  g_object_unref (text);
  g_object_unref (msg);
  return result;
}

/* ----------------------------------------------------------- tokens */

static void
form_token_mac (const guint8 *key, const char *form_id, gint64 t,
                char out[33])
{
  guint8 mac[16];
  g_autofree char *msg = g_strdup_printf ("%s|%" G_GINT64_FORMAT, form_id,
                                          t);

  crypto_generichash (mac, sizeof mac, (const guint8 *) msg, strlen (msg),
                      key, 32);
  for (guint i = 0; i < sizeof mac; i++)
    g_snprintf (out + 2 * i, 3, "%02x", mac[i]);
}

char *
form_token_new (const guint8 *key, const char *form_id)
{
  gint64 t = g_get_real_time () / G_USEC_PER_SEC;
  char mac[33];

  form_token_mac (key, form_id, t, mac);
  return g_strdup_printf ("%" G_GINT64_FORMAT ".%s", t, mac);
}

gboolean
form_token_valid (const guint8 *key, const char *form_id, const char *token)
{
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  char *end;
  gint64 t;
  char mac[33];

  if (token == NULL)
    return FALSE;
  t = g_ascii_strtoll (token, &end, 10);
  if (*end != '.' || t > now + 60 || now - t > FORM_TOKEN_LIFE_S
      || strlen (end + 1) != 32)
    return FALSE;
  form_token_mac (key, form_id, t, mac);
  return sodium_memcmp (mac, end + 1, 32) == 0;
}
