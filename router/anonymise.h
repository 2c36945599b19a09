/*
 * anonymise.h - text kept for statistics once the person is gone.
 *
 * `intakectl subject anonymise` keeps a case's words for statistics and
 * for training the classifier, with every personal datum the parser finds
 * (parser_pd_find(): e-mail addresses, phone numbers, postcodes, National
 * Insurance numbers, dates of birth, sort codes, account numbers, card
 * numbers) and the person's own details (their name and each word of it,
 * address, phone, postal address) replaced by a placeholder such as
 * "[email]" or "[name]".  Pure: text in, text out (docs/rights.md).
 */
#ifndef INTAKE_ANONYMISE_H
#define INTAKE_ANONYMISE_H

#include <glib.h>

/* What is known of the person besides what the patterns find; each
 * (nullable).  */
typedef struct {
  const char *name;
  const char *email;
  const char *phone;
  const char *postal;
} anonymise_person;

/* (transfer full) @text (nullable: NULL back) with every personal datum
 * replaced by its placeholder; *@replaced (nullable) gets how many
 * replacements were made.  */
char *anonymise_text (const char *text, const anonymise_person *person,
                      guint *replaced);

#endif
