/*
 * test_classify.c - the text classifier (router/classify.c).
 *
 * Covers: RFC 4180 CSV (quotes, "" escapes, embedded CR/LF, BOM, blank
 * lines, empty labels skipped) and its refusals with file:line; the
 * tokenizer (case folding, stop words, Snowball stems, number classes,
 * apostrophes, invalid UTF-8, the token and word-length limits at
 * limit-1 / limit / limit+1); training on a tiny set where the answer is
 * obvious; scores ordered and summing to 1; the fitted temperature; a
 * save/load round trip giving bit-identical scores; malformed model files
 * refused with their line; evaluation numbers against a hand-computed
 * example; concurrent scoring from several threads.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "router/classify.h"

static char *tmpdir;

static void
setup (void)
{
  tmpdir = g_dir_make_tmp ("intake-classify-XXXXXX", NULL);
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
tmp_file (const char *name, const char *content)
{
  char *path = g_build_filename (tmpdir, name, NULL);

  if (content != NULL)
    ck_assert (g_file_set_contents (path, content, -1, NULL));
  return path;
}

/* A small training set where each topic has its own words.  */
static const char *const train_texts[] = {
  "My bin was not collected this week",
  "The recycling bin was missed again",
  "Black bin collection missed on our street",
  "Garden waste bin not emptied",
  "Missed bin collection, bins left on the pavement",
  "Pothole on the road outside my house",
  "The road surface is broken and there is a pothole",
  "Street light out on the main road",
  "Road resurfacing left loose gravel",
  "Deep pothole damaged my car tyre on the road",
  "The park playground swings are broken",
  "Park gates locked early, could not get into the park",
  "Grass in the park has not been cut",
  "Dog fouling in the park near the pond",
  "Park benches vandalised in the park",
};
static const char *const train_labels[] = {
  "waste", "waste", "waste", "waste", "waste",
  "highways", "highways", "highways", "highways", "highways",
  "parks", "parks", "parks", "parks", "parks",
};
G_STATIC_ASSERT (G_N_ELEMENTS (train_texts) == G_N_ELEMENTS (train_labels));

static classify_model *
train_tiny (void)
{
  g_autoptr (GError) error = NULL;
  classify_model *m = classify_train (train_texts, train_labels,
                                      G_N_ELEMENTS (train_texts), "topic",
                                      NULL, &error);

  ck_assert_msg (m != NULL, "%s", error ? error->message : "");
  return m;
}

/* ------------------------------------------------------------------ CSV */

typedef struct {
  const char *name;
  const char *data;
  guint rows;              /* expected rows kept */
  guint skipped;
  const char *text0;       /* expected text of the first row */
  const char *label_last;  /* expected label of the last row */
  const char *error;       /* expected "csv:N: ..." substring, or NULL */
} csv_case;

static const csv_case csv_cases[] = {
  { "plain", "id,text,kind\n1,hello,enquiry\n2,bye,complaint\n", 2, 0,
    "hello", "complaint", NULL },
  { "crlf and no final newline",
    "text,kind\r\nhello,enquiry\r\nbye,complaint", 2, 0, "hello",
    "complaint", NULL },
  { "quoted comma, escaped quote, embedded newlines",
    "kind,text\nenquiry,\"a, \"\"b\"\"\nc\r\nd\"\ncomplaint,x\n", 2, 0,
    "a, \"b\"\nc\r\nd", "complaint", NULL },
  { "BOM, blank lines, label trimmed",
    "\xEF\xBB\xBFtext,kind\n\nhello, enquiry \n\n", 1, 0, "hello",
    "enquiry", NULL },
  { "empty labels skipped and counted",
    "text,kind\na,\nb,x\nc,  \n", 1, 2, "b", "x", NULL },
  { "empty quoted field", "text,kind\n\"\",x\n", 1, 0, "", "x", NULL },
  { "unterminated quote names its opening line",
    "text,kind\nok,x\n\"never\nclosed,x\n", 0, 0, NULL, NULL,
    "csv:3: unterminated" },
  { "text after closing quote", "text,kind\n\"a\"b,x\n", 0, 0, NULL, NULL,
    "csv:2: text after a closing quote" },
  { "quote inside unquoted field", "text,kind\nok,x\na\"b,x\n", 0, 0, NULL,
    NULL, "csv:3: quote inside" },
  { "field count, line after an embedded newline",
    "text,kind\n\"two\nlines\",x\nthree,x,extra\n", 0, 0, NULL, NULL,
    "csv:4: 3 fields, the header has 2" },
  { "missing label column", "text,topic\na,b\n", 0, 0, NULL, NULL,
    "csv:1: no column \"kind\"" },
  { "missing text column", "body,kind\na,b\n", 0, 0, NULL, NULL,
    "csv:1: no column \"text\"" },
  { "duplicate label column", "text,kind,kind\na,b,c\n", 0, 0, NULL, NULL,
    "csv:1: column \"kind\" twice" },
  { "empty file", "", 0, 0, NULL, NULL, "csv:1: no header row" },
  { "control character in label", "text,kind\na,b\tc\n", 0, 0, NULL, NULL,
    "csv:2: control character" },
};

START_TEST (test_csv)
{
  const csv_case *c = &csv_cases[_i];
  g_autoptr (GError) error = NULL;
  g_autoptr (classify_csv) csv = classify_csv_parse ("csv", c->data,
                                                     strlen (c->data),
                                                     "kind", &error);

  if (c->error != NULL)
    {
      ck_assert_msg (csv == NULL, "%s: accepted", c->name);
      ck_assert (g_error_matches (error, CLASSIFY_ERROR,
                                  CLASSIFY_ERROR_CSV));
      ck_assert_msg (strstr (error->message, c->error) != NULL,
                     "%s: \"%s\" lacks \"%s\"", c->name, error->message,
                     c->error);
      return;
    }
  ck_assert_msg (csv != NULL, "%s: %s", c->name, error->message);
  ck_assert_uint_eq (csv->texts->len, c->rows);
  ck_assert_uint_eq (csv->labels->len, c->rows);
  ck_assert_uint_eq (csv->skipped, c->skipped);
  ck_assert_str_eq (csv->texts->pdata[0], c->text0);
  ck_assert_str_eq (csv->labels->pdata[c->rows - 1], c->label_last);
}
END_TEST

START_TEST (test_csv_lines_and_file)
{
  g_autofree char *path = tmp_file ("t.csv", "text,kind\n\"a\nb\",x\nc,y\n");
  g_autofree char *missing = tmp_file ("none.csv", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (classify_csv) csv = classify_csv_read (path, "kind", &error);

  ck_assert_ptr_nonnull (csv);
  ck_assert_uint_eq (g_array_index (csv->lines, guint, 0), 2);
  ck_assert_uint_eq (g_array_index (csv->lines, guint, 1), 4);
  ck_assert_ptr_null (classify_csv_read (missing, "kind", &error));
  ck_assert (g_error_matches (error, CLASSIFY_ERROR, CLASSIFY_ERROR_IO));
  ck_assert_ptr_nonnull (strstr (error->message, missing));
}
END_TEST

/* ------------------------------------------------------------ tokenizer */

typedef struct {
  const char *input;
  const char *tokens;      /* joined by one space */
} tok_case;

static const tok_case tok_cases[] = {
  { "Complaints", "complaint #neg" },
  { "bins", "bin" },
  /* parking is not the parks department: only the vehicle-only forms are
   * kept apart, "park" and "parks" (noun or verb) keep the stem */
  { "Parking parked PARKS park parkland carpark", "parking parking park park parkland carpark" },
  { "no parking sign, cars parked on the path in the park",
    "no parking sign car parking path park" },
  { "The bins weren't collected!", "bin werent collect #x" },
  { "Complaints about 3 potholes on the A467???", "complaint #n pothol a0 #q #neg" },
  { "I don\xE2\x80\x99t know why; NOT happy!!", "dont know whi not happi #x #pos" },
  { "STRASSE Stra\xC3\x9F" "e \xEF\xAC\x81le", "strass strass file" },
  { "bin\xFF" "bag\xC3", "bin bag" },
  { "flight UA1234 on 12/03", "flight ua0 #n #n" },
  { "", "" },
  { "the of and to", "" },
  /* Tokenizer 2 keeps the words that give a message its shape.  */
  { "But it was cancelled because your driver had gone",
    "but was cancel becaus your driver had gone" },
  { "Could you do the same after 5? Any update?",
    "could do same after #n #q ani updat #q" },
  { "email@example.org http://x.gov.uk/a?b=c", "email exampl org http x gov uk #q b c" },
  /* Polarity words: one "#neg" or "#pos" each, after the text's tokens,
   * negatives first; matched on the word, not the stem ("helpless" is
   * not "helpful"), case-folded, apostrophes joined.  */
  { "An ABYSMAL shambles, truly abysmal. Thanks anyway!",
    "abysm shambl truli abysm thank anyway #x #neg #neg #neg #pos" },
  { "helpless, kindly, unhelpful", "helpless kind unhelp #neg" },
  { "Wasn't rude", "wasnt rude #neg" },
};

START_TEST (test_tokenize)
{
  const tok_case *c = &tok_cases[_i];
  g_auto (GStrv) toks = classify_tokenize (c->input, -1);
  g_autofree char *joined = g_strjoinv (" ", toks);

  ck_assert_str_eq (joined, c->tokens);
}
END_TEST

START_TEST (test_tokenize_limits)
{
  g_autoptr (GString) s = g_string_new (NULL);
  g_auto (GStrv) toks = NULL;
  g_autofree char *w47 = g_strnfill (CLASSIFY_TOKEN_BYTES_MAX - 1, 'k');
  g_autofree char *w48 = g_strnfill (CLASSIFY_TOKEN_BYTES_MAX, 'k');
  g_autofree char *w49 = g_strnfill (CLASSIFY_TOKEN_BYTES_MAX + 1, 'k');
  g_autofree char *text = g_strdup_printf ("%s %s %s bin", w47, w48, w49);

  /* word length: limit-1 and limit kept, limit+1 dropped, next word kept */
  toks = classify_tokenize (text, -1);
  ck_assert_uint_eq (g_strv_length (toks), 3);
  ck_assert_uint_eq (strlen (toks[0]), CLASSIFY_TOKEN_BYTES_MAX - 1);
  ck_assert_uint_eq (strlen (toks[1]), CLASSIFY_TOKEN_BYTES_MAX);
  ck_assert_str_eq (toks[2], "bin");
  g_clear_pointer (&toks, g_strfreev);

  /* the same at the end of a text or of a span, and after a character
   * outside ASCII (the tokenizer measures a long run before copying it) */
  toks = classify_tokenize (w48, -1);
  ck_assert_uint_eq (g_strv_length (toks), 1);
  g_clear_pointer (&toks, g_strfreev);
  toks = classify_tokenize (w49, -1);
  ck_assert_uint_eq (g_strv_length (toks), 0);
  g_clear_pointer (&toks, g_strfreev);
  toks = classify_tokenize (w49, CLASSIFY_TOKEN_BYTES_MAX);
  ck_assert_uint_eq (g_strv_length (toks), 1);
  ck_assert_uint_eq (strlen (toks[0]), CLASSIFY_TOKEN_BYTES_MAX);
  g_clear_pointer (&toks, g_strfreev);
  {
    g_autofree char *e46 = g_strdup_printf ("\xc3\xa9%s bin", w47 + 1);
    g_autofree char *e47 = g_strdup_printf ("\xc3\xa9%s bin", w47);

    toks = classify_tokenize (e46, -1);   /* 48 bytes: kept */
    ck_assert_uint_eq (g_strv_length (toks), 2);
    g_clear_pointer (&toks, g_strfreev);
    toks = classify_tokenize (e47, -1);   /* 49 bytes: dropped */
    ck_assert_uint_eq (g_strv_length (toks), 1);
    ck_assert_str_eq (toks[0], "bin");
    g_clear_pointer (&toks, g_strfreev);
  }

  /* tokens per text: limit+1 words give limit tokens */
  for (guint i = 0; i < CLASSIFY_TOKENS_MAX + 1; i++)
    g_string_append (s, i % 2 ? "road " : "bin ");
  toks = classify_tokenize (s->str, (gssize) s->len);
  ck_assert_uint_eq (g_strv_length (toks), CLASSIFY_TOKENS_MAX);
  g_clear_pointer (&toks, g_strfreev);
  toks = classify_tokenize (s->str, 8);   /* a span, not a C string */
  ck_assert_uint_eq (g_strv_length (toks), 2);
  g_clear_pointer (&toks, g_strfreev);

  /* only the first CLASSIFY_TEXT_BYTES_MAX bytes are read */
  g_string_truncate (s, 0);
  g_string_append_len (s, "", 0);
  while (s->len < CLASSIFY_TEXT_BYTES_MAX)
    g_string_append_c (s, ' ');
  g_string_append (s, " bin");
  toks = classify_tokenize (s->str, (gssize) s->len);
  ck_assert_uint_eq (g_strv_length (toks), 0);
}
END_TEST

/* ------------------------------------------------------------- training */

START_TEST (test_train_obvious)
{
  g_autoptr (classify_model) m = train_tiny ();
  static const struct {
    const char *text, *label;
  } want[] = {
    { "Nobody collected the bin", "waste" },
    { "There is a pothole in the road", "highways" },
    { "The swings in the park", "parks" },
    { "BINS BINS BINS", "waste" },
  };
  classify_score s[8];

  ck_assert_str_eq (classify_model_label_column (m), "topic");
  ck_assert_uint_eq (classify_model_n_classes (m), 3);
  ck_assert_str_eq (classify_model_class (m, 0), "waste");
  for (gsize i = 0; i < G_N_ELEMENTS (want); i++)
    {
      ck_assert_uint_eq (classify_text (m, want[i].text, -1, s, 8), 3);
      ck_assert_msg (strcmp (s[0].label, want[i].label) == 0,
                     "\"%s\": %s %.3f", want[i].text, s[0].label,
                     s[0].score);
      ck_assert (s[0].score > 0.5);
    }
}
END_TEST

START_TEST (test_scores_calibrated_shape)
{
  g_autoptr (classify_model) m = train_tiny ();
  static const char *const texts[] = {
    "bin", "road park bin", "", "nothing known here zzz", "\xFF\xFE",
  };
  classify_score s[8], one[1];

  /* 15 rows, 5 folds: the temperature was fitted, not left at 1 */
  ck_assert (classify_model_temperature (m) != 1.0);
  ck_assert (classify_model_temperature (m) > 0);
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      double sum = 0;
      guint n = classify_text (m, texts[i], -1, s, 8);

      ck_assert_uint_eq (n, 3);
      for (guint k = 0; k < n; k++)
        {
          sum += s[k].score;
          ck_assert (s[k].score >= 0 && s[k].score <= 1);
          if (k > 0)
            ck_assert (s[k - 1].score >= s[k].score);
        }
      ck_assert_double_eq_tol (sum, 1.0, 1e-9);
      ck_assert_uint_eq (classify_text (m, texts[i], -1, one, 1), 1);
      ck_assert_str_eq (one[0].label, s[0].label);
    }
  ck_assert_uint_eq (classify_text (m, "bin", -1, s, 0), 0);
}
END_TEST

START_TEST (test_train_methods_and_options)
{
  static const classify_method methods[] = {
    CLASSIFY_METHOD_LOGREG, CLASSIFY_METHOD_NB, CLASSIFY_METHOD_CNB,
    CLASSIFY_METHOD_NBLR,
  };
  classify_train_options o;
  classify_score s[3];

  for (gsize i = 0; i < G_N_ELEMENTS (methods); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (classify_model) m = NULL;

      classify_train_options_init (&o);
      o.method = methods[i];
      o.bigrams = i != 1;
      o.folds = 0;
      m = classify_train (train_texts, train_labels,
                          G_N_ELEMENTS (train_texts), NULL, &o, &error);
      ck_assert_ptr_nonnull (m);
      ck_assert_str_eq (classify_model_label_column (m), "label");
      ck_assert (classify_model_temperature (m) == 1.0);
      classify_text (m, "missed bin", -1, s, 3);
      ck_assert_str_eq (s[0].label, "waste");
      classify_text (m, "pothole", -1, s, 3);
      ck_assert_str_eq (s[0].label, "highways");
    }
}
END_TEST

/* Tokens made once and scored by two models give exactly what each
 * model gives on the text (the router tokenizes once for kind and
 * topic).  */
START_TEST (test_tokens_once_same_scores)
{
  classify_train_options o;
  g_autoptr (GError) error = NULL;
  g_autoptr (classify_model) bi = NULL;
  g_autoptr (classify_model) uni = NULL;
  g_autoptr (GString) longtext = g_string_new (NULL);
  const char *texts[] = {
    "bin", "Missed BIN! road park bin?", "", "nothing known here zzz",
    "\xFF\xFE bin \xC3", "don\u2019t fix the pothole 2026 ua1234", NULL,
  };

  while (longtext->len < 200000)
    g_string_append (longtext, "missed bin pothole road park ");
  texts[G_N_ELEMENTS (texts) - 1] = longtext->str;
  classify_train_options_init (&o);
  o.folds = 0;
  o.bigrams = TRUE;
  bi = classify_train (train_texts, train_labels, G_N_ELEMENTS (train_texts),
                       NULL, &o, &error);
  ck_assert_ptr_nonnull (bi);
  o.bigrams = FALSE;
  o.method = CLASSIFY_METHOD_NB;
  uni = classify_train (train_texts, train_labels, G_N_ELEMENTS (train_texts),
                        NULL, &o, &error);
  ck_assert_ptr_nonnull (uni);
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autoptr (classify_tokens) toks = classify_tokens_new (texts[i], -1);
      const classify_model *ms[] = { bi, uni };

      for (gsize j = 0; j < G_N_ELEMENTS (ms); j++)
        {
          classify_score a[8], b[8];
          guint na = classify_text (ms[j], texts[i], -1, a, 8);
          guint nb = classify_text_tokens (ms[j], toks, b, 8);

          ck_assert_uint_eq (na, nb);
          for (guint k = 0; k < na; k++)
            {
              ck_assert_str_eq (a[k].label, b[k].label);
              ck_assert (a[k].score == b[k].score);
            }
        }
    }
}
END_TEST

/* nblr: the naive Bayes ratios are folded into the saved weights, so the
 * model scores like any linear one and survives a save and load; --seeds
 * averages runs: the same seeds give the same file, the average differs
 * from each of its runs.  */
/* --polarity: a word of complaint the training rows never used still
 * counts as one; without it the model has no "#neg" feature at all and
 * the unseen word gives it nothing to go on.  */
START_TEST (test_polarity_training)
{
  static const char *const texts[] = {
    "terrible service from the bin crew", "awful road repairs",
    "rude staff at the library", "useless phone line",
    "disgusting state of the park", "the tip was horrible",
    "lovely bin crew", "wonderful road repairs",
    "brilliant staff at the library", "helpful phone line",
    "beautiful park today", "the tip was excellent",
  };
  static const char *const labels[] = {
    "complaint", "complaint", "complaint", "complaint", "complaint",
    "complaint", "compliment", "compliment", "compliment", "compliment",
    "compliment", "compliment",
  };
  classify_train_options o;
  g_autoptr (classify_model) plain = NULL, pol = NULL;
  g_autoptr (GError) error = NULL;
  classify_score s[2], e[2];

  classify_train_options_init (&o);
  ck_assert (!o.polarity);
  o.folds = 0;
  plain = classify_train (texts, labels, G_N_ELEMENTS (texts), NULL, &o,
                          &error);
  ck_assert_ptr_nonnull (plain);
  o.polarity = TRUE;
  pol = classify_train (texts, labels, G_N_ELEMENTS (texts), NULL, &o,
                        &error);
  ck_assert_ptr_nonnull (pol);

  /* "atrocious" and "superb" are in no training row */
  ck_assert_uint_eq (classify_text (pol, "atrocious", -1, s, 2), 2);
  ck_assert_str_eq (s[0].label, "complaint");
  ck_assert (s[0].score > 0.6);
  ck_assert_uint_eq (classify_text (pol, "superb", -1, s, 2), 2);
  ck_assert_str_eq (s[0].label, "compliment");
  ck_assert (s[0].score > 0.6);
  /* without polarity it is an unknown word: the scores of an empty text */
  ck_assert_uint_eq (classify_text (plain, "atrocious", -1, s, 2), 2);
  ck_assert_uint_eq (classify_text (plain, "", -1, e, 2), 2);
  ck_assert_str_eq (s[0].label, e[0].label);
  ck_assert_double_eq_tol (s[0].score, e[0].score, 1e-12);
  ck_assert_uint_eq (classify_text (plain, "superb", -1, s, 2), 2);
  ck_assert_double_eq_tol (s[0].score, e[0].score, 1e-12);
}
END_TEST

START_TEST (test_nblr_and_seeds)
{
  classify_train_options o;
  classify_method m;
  g_autoptr (classify_model) a = NULL, b = NULL, one = NULL, back = NULL;
  g_autofree char *pa = tmp_file ("nblr-a.model", NULL);
  g_autofree char *pb = tmp_file ("nblr-b.model", NULL);
  g_autofree char *p1 = tmp_file ("nblr-1.model", NULL);
  g_autofree char *ca = NULL, *cb = NULL, *c1 = NULL;
  g_autoptr (GError) error = NULL;
  classify_score s[3], t[3];

  ck_assert (classify_method_from_name ("nblr", &m));
  ck_assert_int_eq (m, CLASSIFY_METHOD_NBLR);
  ck_assert (classify_method_from_name ("logreg", &m));
  ck_assert_int_eq (m, CLASSIFY_METHOD_LOGREG);
  ck_assert (!classify_method_from_name ("svm", &m));
  ck_assert (!classify_method_from_name ("", &m));

  classify_train_options_init (&o);
  ck_assert_uint_eq (o.seeds, 1);
  o.method = CLASSIFY_METHOD_NBLR;
  o.seeds = 3;
  a = classify_train (train_texts, train_labels, G_N_ELEMENTS (train_texts),
                      NULL, &o, &error);
  b = classify_train (train_texts, train_labels, G_N_ELEMENTS (train_texts),
                      NULL, &o, &error);
  o.seeds = 1;
  one = classify_train (train_texts, train_labels,
                        G_N_ELEMENTS (train_texts), NULL, &o, &error);
  ck_assert_ptr_nonnull (a);
  ck_assert_ptr_nonnull (one);
  ck_assert (classify_model_save (a, pa, &error));
  ck_assert (classify_model_save (b, pb, &error));
  ck_assert (classify_model_save (one, p1, &error));
  ck_assert (g_file_get_contents (pa, &ca, NULL, NULL));
  ck_assert (g_file_get_contents (pb, &cb, NULL, NULL));
  ck_assert (g_file_get_contents (p1, &c1, NULL, NULL));
  ck_assert_str_eq (ca, cb);
  ck_assert_str_ne (ca, c1);
  ck_assert_ptr_nonnull (strstr (ca, "\nmethod nblr\n"));
  back = classify_model_load (pa, &error);
  ck_assert_msg (back != NULL, "%s", error ? error->message : "");
  classify_text (a, "missed bin", -1, s, 3);
  classify_text (back, "missed bin", -1, t, 3);
  ck_assert_str_eq (s[0].label, "waste");
  ck_assert_str_eq (t[0].label, "waste");
  ck_assert (s[0].score == t[0].score);
  classify_text (back, "pothole", -1, t, 3);
  ck_assert_str_eq (t[0].label, "highways");
}
END_TEST

START_TEST (test_train_refusals)
{
  static const char *const texts[] = { "a b", "c d" };
  static const char *const one[] = { "x", "x" };
  static const char *const empty[] = { "x", "" };
  static const char *const words[] = { "", "the of" };
  static const char *const two[] = { "x", "y" };
  g_autoptr (GError) error = NULL;
  g_autofree char *bad = tmp_file ("bad.csv", "text,kind\n\"open\n");

  ck_assert_ptr_null (classify_train (texts, one, 2, NULL, NULL, &error));
  ck_assert (g_error_matches (error, CLASSIFY_ERROR, CLASSIFY_ERROR_DATA));
  g_clear_error (&error);
  ck_assert_ptr_null (classify_train (texts, empty, 2, NULL, NULL, &error));
  ck_assert (g_error_matches (error, CLASSIFY_ERROR, CLASSIFY_ERROR_DATA));
  g_clear_error (&error);
  ck_assert_ptr_null (classify_train (words, two, 2, NULL, NULL, &error));
  ck_assert (g_error_matches (error, CLASSIFY_ERROR, CLASSIFY_ERROR_DATA));
  g_clear_error (&error);
  ck_assert_ptr_null (classify_train_csv (bad, "kind", NULL, &error));
  ck_assert (g_error_matches (error, CLASSIFY_ERROR, CLASSIFY_ERROR_CSV));
  ck_assert_ptr_nonnull (strstr (error->message, "bad.csv:2:"));
}
END_TEST

START_TEST (test_train_csv_deterministic)
{
  g_autoptr (GString) csv = g_string_new ("id,text,topic\n");
  g_autofree char *path = NULL;
  g_autofree char *p1 = tmp_file ("a.model", NULL);
  g_autofree char *p2 = tmp_file ("b.model", NULL);
  g_autofree char *c1 = NULL, *c2 = NULL;
  g_autoptr (classify_model) m1 = NULL, m2 = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (train_texts); i++)
    g_string_append_printf (csv, "%" G_GSIZE_FORMAT ",\"%s\",%s\n", i,
                            train_texts[i], train_labels[i]);
  path = tmp_file ("train.csv", csv->str);
  m1 = classify_train_csv (path, "topic", NULL, NULL);
  m2 = classify_train_csv (path, "topic", NULL, NULL);
  ck_assert_ptr_nonnull (m1);
  ck_assert (classify_model_save (m1, p1, NULL));
  ck_assert (classify_model_save (m2, p2, NULL));
  ck_assert (g_file_get_contents (p1, &c1, NULL, NULL));
  ck_assert (g_file_get_contents (p2, &c2, NULL, NULL));
  ck_assert_str_eq (c1, c2);
}
END_TEST

/* ------------------------------------------------------------ save/load */

START_TEST (test_save_load_roundtrip)
{
  g_autoptr (classify_model) m = train_tiny ();
  g_autoptr (classify_model) back = NULL;
  g_autofree char *path = tmp_file ("topic.model", NULL);
  g_autoptr (GError) error = NULL;
  static const char *const texts[] = {
    "bin road", "the park is lovely", "pothole pothole bin", "", "zzz",
  };
  GStatBuf st;

  ck_assert (classify_model_save (m, path, &error));
  ck_assert_int_eq (g_stat (path, &st), 0);
  ck_assert_int_eq (st.st_mode & 0777, 0644);
  back = classify_model_load (path, &error);
  ck_assert_msg (back != NULL, "%s", error ? error->message : "");
  ck_assert_str_eq (classify_model_label_column (back), "topic");
  ck_assert_uint_eq (classify_model_n_features (back),
                     classify_model_n_features (m));
  ck_assert (classify_model_temperature (back)
             == classify_model_temperature (m));
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      classify_score a[3], b[3];

      classify_text (m, texts[i], -1, a, 3);
      classify_text (back, texts[i], -1, b, 3);
      for (guint k = 0; k < 3; k++)
        {
          ck_assert_str_eq (a[k].label, b[k].label);
          ck_assert_msg (a[k].score == b[k].score, "%s: %.17g != %.17g",
                         texts[i], a[k].score, b[k].score);
        }
    }
  /* saving again over the file (atomic replace) gives the same bytes */
  {
    g_autofree char *c1 = NULL, *c2 = NULL;

    ck_assert (g_file_get_contents (path, &c1, NULL, NULL));
    ck_assert (classify_model_save (back, path, &error));
    ck_assert (g_file_get_contents (path, &c2, NULL, NULL));
    ck_assert_str_eq (c1, c2);
  }
}
END_TEST

/* A mutation of the saved tiny model (3 classes: the features count is on
 * line 11, the first feature on line 12) and the line the refusal names.  */
typedef struct {
  const char *name;
  guint line;              /* line to change (1-based), 0: see below */
  const char *replace;     /* new text of that line; NULL deletes it */
  guint error_line;        /* 0: the line after the last one */
  const char *reason;
} model_case;

static const model_case model_cases[] = {
  { "newer version", 1, "intake-classify-model 2", 1, "version 2" },
  { "not a model", 1, "text,kind", 1, "expected \"intake-classify-model" },
  { "label column missing", 2, NULL, 2, "label-column" },
  { "unknown method", 3, "method svm", 3, "unknown method" },
  { "other tokenizer", 4, "tokenizer 9", 4, "tokenizer 9" },
  { "older tokenizer", 4, "tokenizer 1", 4, "tokenizer 1" },
  { "bigrams flag", 5, "bigrams 2", 5, "bigrams" },
  { "temperature nan", 6, "temperature nan", 6, "bad temperature" },
  { "temperature negative", 6, "temperature -1", 6, "bad temperature" },
  { "one class", 7, "classes 1", 7, "classes must be" },
  { "too many classes", 7, "classes 65", 7, "classes must be" },
  { "class twice", 9, "class\twaste\t0.5", 9, "twice" },
  { "class bias junk", 10, "class\tparks\t0.5x", 10, "bad bias" },
  { "feature count junk", 11, "features many 1", 11, "features" },
  { "weight inf", 12, "u\t1\tinf\t0\t0\tzz", 12, "expected 4 numbers" },
  { "too few weights", 12, "u\t1\t0\t0\tzz", 12, "expected 4 numbers" },
  { "idf zero", 12, "u\t0\t0\t0\t0\tzz", 12, "idf must be > 0" },
  { "bigram where a unigram belongs", 12, "b\t1\t0\t0\t0\tzz", 12,
    "unigram" },
  { "unigram repeated", 13, NULL, 0, "" },   /* filled in by the test */
  { "end missing", 0, NULL, 0, "expected \"end\"" },
  { "text after end", 0, "extra", 0, "text after" },
};

START_TEST (test_model_malformed)
{
  const model_case *c = &model_cases[_i];
  g_autoptr (classify_model) m = train_tiny ();
  g_autofree char *path = tmp_file ("m.model", NULL);
  g_autofree char *text = NULL;
  g_autofree char *want = NULL;
  g_auto (GStrv) lines = NULL;
  g_autoptr (GPtrArray) out = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *joined = NULL;
  guint n, error_line = c->error_line;
  const char *reason = c->reason;
  g_autofree char *dup = NULL;

  ck_assert (classify_model_save (m, path, NULL));
  ck_assert (g_file_get_contents (path, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  n = g_strv_length (lines) - 1;   /* the last is "" after the final \n */
  ck_assert_str_eq (lines[n - 1], "end");
  ck_assert_str_eq (lines[6], "classes 3");
  for (guint i = 0; i < n; i++)
    {
      if (strcmp (c->name, "unigram repeated") == 0 && i == 12)
        {
          /* the second feature line becomes a copy of the first */
          dup = g_strdup (lines[11]);
          g_ptr_array_add (out, dup);
          error_line = 13;
          reason = "twice";
          continue;
        }
      if (c->line == i + 1)
        {
          if (c->replace != NULL)
            g_ptr_array_add (out, (gpointer) c->replace);
          continue;
        }
      if (c->line == 0 && i == n - 1)
        {
          if (c->replace != NULL)   /* keep "end", add a line after it */
            {
              g_ptr_array_add (out, lines[i]);
              g_ptr_array_add (out, (gpointer) c->replace);
              error_line = n + 1;
            }
          else
            error_line = n;
          continue;
        }
      g_ptr_array_add (out, lines[i]);
    }
  g_ptr_array_add (out, (gpointer) "");
  g_ptr_array_add (out, NULL);
  joined = g_strjoinv ("\n", (GStrv) out->pdata);
  ck_assert (g_file_set_contents (path, joined, -1, NULL));

  ck_assert_ptr_null (classify_model_load (path, &error));
  ck_assert (g_error_matches (error, CLASSIFY_ERROR, CLASSIFY_ERROR_MODEL));
  want = g_strdup_printf ("%s:%u: ", path, error_line);
  ck_assert_msg (g_str_has_prefix (error->message, want)
                 && strstr (error->message, reason) != NULL,
                 "%s: \"%s\" is not \"%s...%s\"", c->name, error->message,
                 want, reason);
}
END_TEST

START_TEST (test_model_truncated_and_empty)
{
  g_autoptr (classify_model) m = train_tiny ();
  g_autofree char *path = tmp_file ("m.model", NULL);
  g_autofree char *text = NULL;
  g_autofree char *missing = tmp_file ("none.model", NULL);
  g_autoptr (GError) error = NULL;
  gsize len;

  ck_assert (classify_model_save (m, path, NULL));
  ck_assert (g_file_get_contents (path, &text, &len, NULL));
  /* cut anywhere: never accepted, never a crash */
  for (gsize cut = 0; cut < len - 1; cut += 1 + cut / 16)
    {
      ck_assert (g_file_set_contents (path, text, (gssize) cut, NULL));
      ck_assert_ptr_null (classify_model_load (path, &error));
      ck_assert_msg (g_error_matches (error, CLASSIFY_ERROR,
                                      CLASSIFY_ERROR_MODEL), "cut %zu", cut);
      ck_assert_ptr_nonnull (strstr (error->message, path));
      g_clear_error (&error);
    }
  ck_assert (g_file_set_contents (path, "", 0, NULL));
  ck_assert_ptr_null (classify_model_load (path, &error));
  ck_assert_ptr_nonnull (strstr (error->message, ":1: "));
  g_clear_error (&error);
  ck_assert (g_file_set_contents (path, "intake-classify-model 1\n\0x", 26,
                                  NULL));
  ck_assert_ptr_null (classify_model_load (path, &error));
  ck_assert_ptr_nonnull (strstr (error->message, "NUL"));
  g_clear_error (&error);
  ck_assert_ptr_null (classify_model_load (missing, &error));
  ck_assert (g_error_matches (error, CLASSIFY_ERROR, CLASSIFY_ERROR_IO));
}
END_TEST

/* ----------------------------------------------------------- evaluation */

/* Predicted by the tiny model: "bin" -> waste, "road" -> highways,
 * "park" -> parks.  Gold labels chosen so that:
 *
 *   row  text  gold                    predicted
 *   1    bin   waste                   waste      ok
 *   2    bin   waste                   waste      ok
 *   3    road  highways                highways   ok
 *   4    road  waste                   highways   wrong
 *   5    park  park-issue (-> parks)   parks      ok
 *   6    bin   parks                   waste      wrong
 *   7    road  highways                highways   ok
 *
 * accuracy 5/7 = 0.7143
 * waste:    tp 2, predicted 3 (1,2,6), gold 3 (1,2,4): P 2/3 R 2/3 F1 2/3
 * highways: tp 2, predicted 3 (3,4,7), gold 2 (3,7):   P 2/3 R 1   F1 4/5
 * parks:    tp 1, predicted 1 (5),     gold 2 (5,6):   P 1   R 1/2 F1 2/3
 * macro-F1 = (2/3 + 4/5 + 2/3) / 3 = 32/45 = 0.7111
 * confusion (gold rows; waste highways parks):
 *   waste 2 1 0 / highways 0 2 0 / parks 1 0 1
 */
static const char eval_csv[] =
  "text,topic\n"
  "bin,waste\nbin,waste\nroad,highways\nroad,waste\n"
  "park,park-issue\nbin,parks\nroad,highways\n";

static void
confusion_row (const char *report, const char *label, guint *v)
{
  const char *conf = strstr (report, "confusion");
  g_autofree char *key = g_strdup_printf ("\n%s ", label);
  const char *row;

  ck_assert_ptr_nonnull (conf);
  row = strstr (conf, key);
  ck_assert_ptr_nonnull (row);
  ck_assert_int_eq (sscanf (row + strlen (key), "%u %u %u", &v[0], &v[1],
                            &v[2]), 3);
}

START_TEST (test_eval_hand_computed)
{
  g_autoptr (classify_model) m = train_tiny ();
  g_autofree char *path = tmp_file ("eval.csv", eval_csv);
  g_autoptr (GString) report = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  static const char *const map[] = { "park-issue=parks", NULL };
  double macro = -1;
  guint v[3];

  ck_assert (classify_eval_csv (m, path, "topic", map, report, &macro,
                                &error));
  ck_assert_double_eq_tol (macro, 32.0 / 45.0, 1e-12);
  ck_assert_ptr_nonnull (strstr (report->str, "accuracy    0.7143 (5/7)"));
  ck_assert_ptr_nonnull (strstr (report->str, "macro-F1    0.7111"));
  ck_assert_ptr_nonnull (strstr (report->str, "log-loss"));
  ck_assert_ptr_nonnull (strstr (report->str, "ECE"));
  ck_assert_ptr_nonnull (strstr (report->str,
                                 "highways     0.6667    1.0000    0.8000"
                                 "         2"));
  ck_assert_ptr_nonnull (strstr (report->str,
                                 "parks        1.0000    0.5000    0.6667"
                                 "         2"));
  confusion_row (report->str, "waste", v);
  ck_assert (v[0] == 2 && v[1] == 1 && v[2] == 0);
  confusion_row (report->str, "highways", v);
  ck_assert (v[0] == 0 && v[1] == 2 && v[2] == 0);
  confusion_row (report->str, "parks", v);
  ck_assert (v[0] == 1 && v[1] == 0 && v[2] == 1);
}
END_TEST

START_TEST (test_eval_unmapped_and_bad_map)
{
  g_autoptr (classify_model) m = train_tiny ();
  g_autofree char *path = tmp_file ("eval.csv", eval_csv);
  g_autoptr (GString) report = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  static const char *const bad[] = { "park-issue", NULL };
  double macro = -1;

  /* without the map, park-issue is a class of its own, never predicted:
   * waste 2/3, highways 4/5, parks (tp 0, predicted 1, gold 1) 0,
   * park-issue (gold 1, predicted 0) 0: macro (2/3 + 4/5) / 4 = 11/30 */
  ck_assert (classify_eval_csv (m, path, "topic", NULL, report, &macro,
                                &error));
  ck_assert_double_eq_tol (macro, 11.0 / 30.0, 1e-12);
  ck_assert_ptr_nonnull (strstr (report->str, "\npark-issue "));
  ck_assert_ptr_nonnull (strstr (report->str, "over 6 rows with a class"));
  ck_assert (!classify_eval_csv (m, path, "topic", bad, report, NULL,
                                 &error));
  ck_assert (g_error_matches (error, CLASSIFY_ERROR, CLASSIFY_ERROR_DATA));
}
END_TEST

/* --------------------------------------------------------------- threads */

#define THREADS 4
#define THREAD_ROUNDS 300

typedef struct {
  const classify_model *m;
  double want[G_N_ELEMENTS (train_texts)];
  gboolean ok;
} thread_job;

static gpointer
thread_run (gpointer data)
{
  thread_job *j = data;

  j->ok = TRUE;
  for (guint r = 0; r < THREAD_ROUNDS; r++)
    for (gsize i = 0; i < G_N_ELEMENTS (train_texts); i++)
      {
        classify_score s[1];
        /* a fresh word now and then: the stem cache fills in parallel */
        g_autofree char *t = g_strdup_printf ("%s walking%u", train_texts[i],
                                              r);

        classify_text (j->m, r == 0 ? train_texts[i] : t, -1, s, 1);
        if (r == 0 && s[0].score != j->want[i])
          j->ok = FALSE;
      }
  return NULL;
}

START_TEST (test_threads)
{
  g_autoptr (classify_model) m = train_tiny ();
  thread_job jobs[THREADS];
  GThread *th[THREADS];

  for (guint k = 0; k < THREADS; k++)
    {
      jobs[k].m = m;
      for (gsize i = 0; i < G_N_ELEMENTS (train_texts); i++)
        {
          classify_score s[1];

          classify_text (m, train_texts[i], -1, s, 1);
          jobs[k].want[i] = s[0].score;
        }
      th[k] = g_thread_new ("classify", thread_run, &jobs[k]);
    }
  for (guint k = 0; k < THREADS; k++)
    {
      g_thread_join (th[k]);
      ck_assert (jobs[k].ok);
    }
}
END_TEST

static Suite *
classify_suite (void)
{
  Suite *s = suite_create ("classify");
  TCase *tc = tcase_create ("csv");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_loop_test (tc, test_csv, 0, G_N_ELEMENTS (csv_cases));
  tcase_add_test (tc, test_csv_lines_and_file);
  suite_add_tcase (s, tc);

  tc = tcase_create ("tokenize");
  tcase_add_loop_test (tc, test_tokenize, 0, G_N_ELEMENTS (tok_cases));
  tcase_add_test (tc, test_tokenize_limits);
  suite_add_tcase (s, tc);

  tc = tcase_create ("model");
  tcase_set_timeout (tc, 60);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_train_obvious);
  tcase_add_test (tc, test_scores_calibrated_shape);
  tcase_add_test (tc, test_train_methods_and_options);
  tcase_add_test (tc, test_train_refusals);
  tcase_add_test (tc, test_nblr_and_seeds);
  tcase_add_test (tc, test_polarity_training);
  tcase_add_test (tc, test_tokens_once_same_scores);
  tcase_add_test (tc, test_train_csv_deterministic);
  tcase_add_test (tc, test_save_load_roundtrip);
  tcase_add_loop_test (tc, test_model_malformed, 0,
                       G_N_ELEMENTS (model_cases));
  tcase_add_test (tc, test_model_truncated_and_empty);
  tcase_add_test (tc, test_eval_hand_computed);
  tcase_add_test (tc, test_eval_unmapped_and_bad_map);
  tcase_add_test (tc, test_threads);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (classify_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
