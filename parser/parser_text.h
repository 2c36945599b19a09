/*
 * parser_text.h - pure functions on decoded text: HTML to text,
 * format=flowed, quoted history, personal data, card redaction, special
 * categories, auto-replies, case references.
 *
 * Input and output are valid UTF-8 (callers guarantee the input is); no
 * I/O except loading the lexicon; every function is bounded in time by
 * the length of its input (no backtracking regular expressions on
 * unbounded input: SECURITY-TESTS 74).
 */
#ifndef INTAKE_PARSER_TEXT_H
#define INTAKE_PARSER_TEXT_H

#include <glib.h>

#include "parser/parser.h"

/* g_utf8_validate_len (@s, @len, NULL), quicker on long ASCII text: valid
 * UTF-8 (no overlong forms, surrogates or code points over U+10FFFF) and
 * no NUL.  */
gboolean parser_text_utf8_valid (const char *s, gsize len);

/* (transfer full) Readable text from HTML: script, style, head and
 * comments dropped; entities decoded (named, decimal, hex); block elements
 * (p, div, br, li, tr, h1-h6, blockquote, table) become line breaks; list
 * items get "- "; links become "text (URL)" when the URL differs from the
 * text; images become their alt text; runs of blank lines collapse to one;
 * remote content is never fetched.  Tolerates any broken markup.  */
char *parser_html_to_text (const char *html, gsize len);

/* (transfer full) RFC 3676 format=flowed decoded: soft line breaks
 * (a trailing space) joined, space-stuffing removed, with DelSp=yes the
 * trailing space deleted too.  Quote depth ('>' prefixes) is kept.  */
char *parser_flowed_decode (const char *text, gboolean delsp);

/* Split @text into what the writer wrote now and the quoted history:
 * the history starts at the first of "On ... wrote:" (and translations:
 * "Le ... a écrit :", "Am ... schrieb", "El ... escribió:"), a line of
 * "-----Original Message-----", an Outlook header block ("From: ...",
 * "Sent: ...", "To: ...", "Subject: ..." on consecutive lines, also after
 * an underscore rule), "Begin forwarded message:", "---------- Forwarded
 * message ---------", or a block of '>' lines that continues to the end
 * (interleaved replies keep their '>' lines in the new text).  Both
 * results are (transfer full); trailing blank lines are trimmed.  */
void parser_quote_split (const char *text, char **new_text, char **quoted);

/* The same, for a @text the caller knows is valid UTF-8 (the walker's own
 * text): not checked again (asserted in sanitizer builds).  */
void parser_quote_split_valid (const char *text, char **new_text,
                               char **quoted);

/* (transfer full) @text with every payment card number (13-19 digits,
 * single spaces or dashes between groups allowed, passing Luhn) replaced by
 * "**** **** **** 1234" (the last four kept).  Digit runs that fail Luhn,
 * or are part of a longer run of digits, stay.  *@count gets how many were
 * redacted; each is added to @found (parser_pd *, kind CARD, value the
 * redacted form) when @found is not NULL.  */
char *parser_cards_redact (const char *text, guint *count, GPtrArray *found);

/* (transfer full) The same, taking @text (transfer full): @text itself
 * comes back when nothing was redacted or repaired, instead of a copy.
 * With @valid the caller knows @text is valid UTF-8 (the walker's own
 * output): not checked again, which is a pass over every text of every
 * message (asserted in sanitizer builds).  */
char *parser_cards_redact_take (char *text, gboolean valid, guint *count,
                                GPtrArray *found);

/* Append to @found (parser_pd *) the personal data in @text: e-mail
 * addresses, UK phone numbers (+44 / 0 followed by 9-10 digits, spaces,
 * dashes, brackets), UK postcodes (all valid outward/inward formats, with
 * or without the space, any case), National Insurance numbers (two letters
 * from the valid set, six digits, A-D; spaces allowed), dates of birth
 * (a date within 40 characters after "born", "date of birth", "DOB",
 * "d.o.b."), sort codes (NN-NN-NN, "sort code" nearby for the spaced form)
 * and account numbers (8 digits near "account").  Duplicates are listed
 * once.  */
void parser_pd_find (const char *text, GPtrArray *found);

/* Keys kept by parser_pd_find_valid() before they go into a table.  */
#define PARSER_PD_SEEN_INLINE 16

/* The duplicate keys of what a @found holds, kept from one
 * parser_pd_find_valid() call to the next: the first
 * PARSER_PD_SEEN_INLINE in @keys (compared one by one), then all in
 * @table.  Zero-initialised by the caller, freed by parser_pd_seen_clear().  */
typedef struct {
  gboolean filled;      /* @found's earlier items are in */
  guint n;              /* keys in @keys */
  char *keys[PARSER_PD_SEEN_INLINE];
  GHashTable *table;    /* NULL until @keys is full */
} parser_pd_seen;

void parser_pd_seen_clear (parser_pd_seen *seen);

/* The same for @text the caller knows is valid UTF-8 (the walker's own
 * output): not checked again (asserted in sanitizer builds).  @seen
 * (nullable, inout): the duplicate keys of what @found holds, kept from
 * one call to the next on the same @found instead of being rebuilt each
 * time; @found must change only through these calls while it is kept.  */
void parser_pd_find_valid (const char *text, GPtrArray *found,
                           parser_pd_seen *seen);

void parser_pd_free (parser_pd *pd);

/* Special-category lexicon: a text file, one term per line as
 * "category: term" (category one of health, ethnic, religion, sexual,
 * union, political, genetic, biometric, criminal); '#' comments; terms
 * match whole words, case-insensitively, multi-word terms with any white
 * space between.  Errors name file and line.  */
typedef struct parser_lexicon parser_lexicon;

/* Errors of parser_lexicon_load and _new_from_data (the file itself not
 * readable: G_FILE_ERROR, message prefixed with the path).  Added to the
 * contract with the implementation.  */
#define PARSER_LEXICON_ERROR (parser_lexicon_error_quark ())
typedef enum {
  PARSER_LEXICON_ERROR_SYNTAX,   /* "name:12: unknown category 'helth'" */
  PARSER_LEXICON_ERROR_LIMIT,    /* file, term or word count too large */
} parser_lexicon_error;
GQuark parser_lexicon_error_quark (void);

parser_lexicon *parser_lexicon_load (const char *path, GError **error);
parser_lexicon *parser_lexicon_new_from_data (const char *data, gssize len,
                                              const char *name,
                                              GError **error);
void parser_lexicon_free (parser_lexicon *lex);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (parser_lexicon, parser_lexicon_free)

/* parser_special bits for the categories whose terms occur in @text.  */
guint parser_lexicon_match (const parser_lexicon *lex, const char *text);

/* The same for @text the caller knows is valid UTF-8 (not checked again;
 * asserted in sanitizer builds).  */
guint parser_lexicon_match_valid (const parser_lexicon *lex,
                                  const char *text);

/* Auto-reply, bounce and list detection (RFC 3834 and practice), from the
 * decoded top-level headers (parallel arrays, names case-insensitive),
 * the envelope sender (NULL unknown, "" null sender), the subject and the
 * new text.  Returns TRUE and sets *@reason (static string) when the
 * message must never be answered: Auto-Submitted other than "no",
 * X-Autoreply, X-Autorespond, X-Auto-Response-Suppress (All/OOF/AutoReply),
 * Precedence bulk/list/junk/auto_reply, List-Id, List-Unsubscribe,
 * List-Post, null reverse path, MAILER-DAEMON / postmaster senders,
 * multipart/report (@is_report), X-Failed-Recipients, and out-of-office
 * subjects ("Out of Office", "Automatic reply", "Auto-Reply", "Abwesenheit",
 * "I am away", ...).  */
gboolean parser_autoreply_detect (GPtrArray *names, GPtrArray *values,
                                  const char *envelope_from,
                                  const char *from_addr,
                                  const char *subject, const char *text,
                                  gboolean is_report, const char **reason);

/* Append to @refs (char *) every case reference candidate in @s:
 * "PREFIX-YYYY-NNNNNN-C" with PREFIX 1-10 letters, found anywhere (in
 * brackets or not, any case for the prefix and check letter, normalised to
 * upper case), and in plus-addresses "box+PREFIX-YYYY-NNNNNN-C.MAC@...".
 * Duplicates are added once.  The check character is not verified here.  */
void parser_refs_find (const char *s, GPtrArray *refs);

#endif
