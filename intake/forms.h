/*
 * forms.h - web forms for citizens: definitions in conf/forms/ (NAME.form),
 * accessible HTML (GOV.UK Design System conventions, no JavaScript),
 * validation with a problem per field, and the message built from our own
 * parts (never re-serialised MIME from outside) that goes to the spool.
 */
#ifndef INTAKE_FORMS_H
#define INTAKE_FORMS_H

#include <glib.h>

typedef enum {
  FORM_TEXT, FORM_LONGTEXT, FORM_EMAIL, FORM_UK_PHONE, FORM_UK_POSTCODE,
  FORM_DATE, FORM_CHOICE, FORM_FILE,
} form_type;

typedef struct {
  char *name;
  char *label;
  char *hint;                /* (nullable) */
  form_type type;
  gboolean required;
  guint max_length;          /* characters (text); bytes for files */
  char **choices;            /* FORM_CHOICE */
  char *purpose;             /* (nullable) shown on the form */
  char *lawful_basis;        /* (nullable) */
  char *special;             /* (nullable) special category it may hold */
} form_field;

typedef struct {
  char *id;
  char *title;
  char *intro;
  char *privacy;
  char *mailbox;
  GPtrArray *fields;         /* form_field * */
} form_def;

typedef struct forms forms;

/* (transfer full) every *.form in @dir; errors name file and line.  */
forms *forms_load (const char *dir, GError **error);
void forms_free (forms *f);
const form_def *forms_get (const forms *f, const char *id);

/* A submission as received: values by field name; files by field name.  */
typedef struct {
  GHashTable *values;        /* name -> char * (UTF-8) */
  GHashTable *files;         /* name -> form_file * */
} form_input;

typedef struct {
  char *filename;            /* as sent; made safe when the message is built */
  char *content_type;
  GBytes *data;
} form_file;

form_input *form_input_new (void);
void form_input_free (form_input *in);

typedef struct {
  char *field;
  char *problem;
} form_problem;

/* (transfer full) form_problem *, empty when the input is good.  */
GPtrArray *form_validate (const form_def *def, const form_input *in);

/* (transfer full) The HTML page of @def, with @in's values and @problems
 * (both nullable) and the form token.  */
char *form_render (const form_def *def, const form_input *in,
                   const GPtrArray *problems, const char *token);

/* (transfer full) The confirmation page.  */
char *form_render_done (const form_def *def, const char *ref);

/* (transfer full) RFC 5322 message built from @in: From the e-mail field
 * (if any), To the form's mailbox, a body of "Label: value" lines and
 * the files as attachments; X-Intake-Form and X-Intake-Form-User-Agent
 * are ours (the router trusts them only from the form source).  */
GBytes *form_build_message (const form_def *def, const form_input *in,
                            const char *hostname, const char *user_agent);

/* The e-mail address given, if any (transfer none).  */
const char *form_email (const form_def *def, const form_input *in);

/* CSRF tokens: "time.mac" for @form_id under @key (32 bytes), valid for
 * two hours.  */
char *form_token_new (const guint8 *key, const char *form_id);
gboolean form_token_valid (const guint8 *key, const char *form_id,
                           const char *token);

#endif
