/*
 * classify.h - a trained text classifier over stemmed tokens: one model,
 * one head (one label column: "kind" or "topic").
 *
 * Features are English Snowball stems of the text (stop words dropped,
 * numbers collapsed to a token class) plus adjacent-stem bigrams, weighted
 * (1 + ln tf) * idf and L2-normalised.  The model is linear: a softmax
 * regression (default) or multinomial / complement naive Bayes, all scored
 * the same way, with one temperature fitted by cross-validation so that the
 * scores are calibrated probabilities.  docs/classifier.md has the details
 * and the file format.
 *
 * A loaded model is immutable: any number of threads may call
 * classify_text() on it at once.  Each thread keeps its own stemmer and a
 * bounded stem cache (Snowball stemmers are not thread-safe).
 */
#ifndef INTAKE_CLASSIFY_H
#define INTAKE_CLASSIFY_H

#include <glib.h>

/* ----------------------------------------------------------------- limits
 * Every limit of the classifier; they bound work and memory per text and
 * per model file (the router's hot path and untrusted model files).  */

/* Tokens kept per text (after stop words); the rest is ignored.  The
 * opening of a message says what it is about; this bounds the time per
 * decision whatever the body size.  */
#define CLASSIFY_TOKENS_MAX 2000
/* Bytes of a text looked at: a body of megabytes of separators or
 * overlong words would otherwise be scanned in full.  */
#define CLASSIFY_TEXT_BYTES_MAX (64 * 1024)
/* Longer words (base64, URLs without separators) are dropped.  */
#define CLASSIFY_TOKEN_BYTES_MAX 48
/* Classes per head, and bytes per class label.  */
#define CLASSIFY_CLASSES_MAX 64
#define CLASSIFY_LABEL_BYTES_MAX 64
/* Features per model (unigrams + bigrams): bounds model size and memory.  */
#define CLASSIFY_FEATURES_MAX 2000000
/* Training / evaluation CSV size, and lines of a model file.  */
#define CLASSIFY_CSV_BYTES_MAX (512 * 1024 * 1024)
#define CLASSIFY_MODEL_BYTES_MAX (1024 * 1024 * 1024)
/* Words remembered per thread by the stem cache before it is cleared.  */
#define CLASSIFY_STEM_CACHE_MAX 20000

#define CLASSIFY_ERROR (classify_error_quark ())
GQuark classify_error_quark (void);
typedef enum {
  CLASSIFY_ERROR_IO,       /* a file cannot be read or written */
  CLASSIFY_ERROR_CSV,      /* malformed CSV: message names file:line */
  CLASSIFY_ERROR_MODEL,    /* malformed model file: names file:line */
  CLASSIFY_ERROR_DATA,     /* nothing to train on, one class only, bad map */
} classify_error_code;

/* ------------------------------------------------------------- tokenizer */

/* (transfer full) The unigram tokens of @text (@len bytes, or -1 if
 * NUL-terminated) as the model sees them: case-folded (UTF-8 aware, NFKC),
 * split on everything but letters and digits (an apostrophe inside a word
 * joins: "don't" -> "dont"), English stop words dropped (negations and
 * question words kept), Snowball English stems (except "parking" and
 * "parked", which become "parking", not the "park" of a park);
 * digits-only words become "#n", digit runs inside words become "0", and
 * "?" / "!" become "#q" / "#x"; after the text's tokens, one "#neg" for
 * every word of complaint and one "#pos" for every word of praise in it
 * (classify.c's polarity lists).  Invalid UTF-8 bytes separate words.  At most CLASSIFY_TOKENS_MAX
 * tokens from the first CLASSIFY_TEXT_BYTES_MAX bytes.  */
GStrv classify_tokenize (const char *text, gssize len);

/* ------------------------------------------------------------------- CSV */

/* A parsed training or evaluation file: the "text" column and one label
 * column.  Rows whose label is empty are skipped and counted (a file may
 * carry several heads, not every row labelled for each).  */
typedef struct {
  GPtrArray *texts;        /* char *, owned */
  GPtrArray *labels;       /* char *, owned, trimmed */
  GArray *lines;           /* guint: line where each row starts (1-based) */
  guint skipped;           /* rows with an empty label */
} classify_csv;

/* (transfer full) Parse RFC 4180 CSV held in memory (@name is used in error
 * messages only): a header row naming the columns, then records; quoted
 * fields may hold commas, CR/LF and "" for a quote; CRLF or LF line ends; a
 * UTF-8 byte order mark is skipped; blank lines are skipped.  Refused, with
 * CLASSIFY_ERROR_CSV and "name:line: reason": an unterminated quote, text
 * after a closing quote, a quote inside an unquoted field, a NUL byte, a
 * record with a different number of fields than the header, a missing or
 * duplicate "text" / @label column, a label longer than
 * CLASSIFY_LABEL_BYTES_MAX or holding control characters or invalid
 * UTF-8.  */
classify_csv *classify_csv_parse (const char *name, const char *data,
                                  gsize len, const char *label,
                                  GError **error);
/* (transfer full) The same from a file (at most CLASSIFY_CSV_BYTES_MAX).  */
classify_csv *classify_csv_read (const char *path, const char *label,
                                 GError **error);
void classify_csv_free (classify_csv *csv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (classify_csv, classify_csv_free)

/* ---------------------------------------------------------------- models */

typedef struct classify_model classify_model;

typedef enum {
  CLASSIFY_METHOD_LOGREG,  /* softmax regression, SGD with L2 (default) */
  CLASSIFY_METHOD_NB,      /* multinomial naive Bayes on weighted counts */
  CLASSIFY_METHOD_CNB,     /* complement naive Bayes (Rennie et al. 2003) */
  CLASSIFY_METHOD_NBLR,    /* softmax regression on features scaled by
                            * naive Bayes log-count ratios (NBSVM, Wang and
                            * Manning 2012), folded into the weights */
} classify_method;

/* "logreg", "nb", "cnb", "nblr" -> @out; FALSE for any other name.  */
gboolean classify_method_from_name (const char *name, classify_method *out);

/* Training knobs; classify_train_options_init() sets the defaults, which
 * are what docs/classifier.md describes.  */
typedef struct {
  classify_method method;
  gboolean bigrams;        /* adjacent-stem pairs as features (TRUE) */
  guint min_df;            /* documents a feature must occur in (2; 1 if
                            * fewer than 200 training rows) */
  gboolean balanced;       /* weight classes by 1 / frequency (TRUE): the
                            * small kinds (sar, foi-request) matter */
  guint epochs;            /* SGD passes, logreg only (15) */
  double l2;               /* L2 penalty per example, logreg only (3e-5) */
  double alpha;            /* additive smoothing, NB/CNB only (0.1) */
  guint folds;             /* cross-validation folds for the temperature
                            * (5); 0 or 1: temperature 1 */
  guint32 seed;            /* shuffling; same data and seed, same model */
  guint seeds;             /* logreg/nblr: runs with seed, seed + 1, ...
                            * whose weights are averaged (1) */
  gboolean polarity;       /* learn the "#neg" / "#pos" tokens of the
                            * polarity words (FALSE; the shipped kind
                            * model: TRUE) */
} classify_train_options;

void classify_train_options_init (classify_train_options *options);

/* (transfer full) Train one head from @n texts and their labels (NUL-
 * terminated UTF-8; labels as for CSV).  @options may be NULL for the
 * defaults.  CLASSIFY_ERROR_DATA if there are fewer than two classes, more
 * than CLASSIFY_CLASSES_MAX, or no features at all.  @label_column is
 * recorded in the model (NULL: "label").  */
classify_model *classify_train (const char *const *texts,
                                const char *const *labels, gsize n,
                                const char *label_column,
                                const classify_train_options *options,
                                GError **error);

/* (transfer full) Train from the "text" column and column @label of the
 * CSV file at @csv_path (classify_csv_read()).  */
classify_model *classify_train_csv (const char *csv_path, const char *label,
                                    const classify_train_options *options,
                                    GError **error);

/* Write @m to @path in the versioned text format (docs/classifier.md):
 * written to a temporary file, synced and renamed over @path.  */
gboolean classify_model_save (const classify_model *m, const char *path,
                              GError **error);

/* (transfer full) Read a model file; anything malformed (unknown version,
 * missing or repeated header lines, bad numbers, wrong counts, duplicate or
 * unknown features, too large) is refused with CLASSIFY_ERROR_MODEL and
 * "path:line: reason".  */
classify_model *classify_model_load (const char *path, GError **error);

/* Frees @m (NULL allowed).  */
void classify_model_free (classify_model *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (classify_model, classify_model_free)

/* (transfer none) The label column the model was trained for.  */
const char *classify_model_label_column (const classify_model *m);
/* Number of classes, and (transfer none) the name of class @i.  */
guint classify_model_n_classes (const classify_model *m);
const char *classify_model_class (const classify_model *m, guint i);
/* The fitted temperature (1.0 when not calibrated).  */
double classify_model_temperature (const classify_model *m);
/* Number of features (unigrams + bigrams).  */
guint classify_model_n_features (const classify_model *m);

typedef struct {
  const char *label;       /* (transfer none) owned by the model */
  double score;            /* calibrated probability */
} classify_score;

/* Score @text (@len bytes, or -1 if NUL-terminated) against every class:
 * writes min(@max, classes) scores to @out, highest first (ties in class
 * order), and returns how many.  Scores over all classes sum to 1.  A text
 * with no known feature gets the class priors.  Safe to call from many
 * threads on one model.  */
guint classify_text (const classify_model *m, const char *text, gssize len,
                     classify_score *out, guint max);

/* The tokens of a text, made once for several models: classify_text_tokens
 * (m, toks, ...) gives exactly what classify_text (m, text, ...) gives.  */
typedef struct classify_tokens classify_tokens;
classify_tokens *classify_tokens_new (const char *text, gssize len);
void classify_tokens_free (classify_tokens *toks);
guint classify_text_tokens (const classify_model *m,
                            const classify_tokens *toks,
                            classify_score *out, guint max);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (classify_tokens, classify_tokens_free)

/* Evaluate @m on the CSV at @csv_path (gold labels in column @label).
 * @map (nullable, NULL-terminated) holds "from=to" rewrites applied to the
 * gold labels first (e.g. "service-request=enquiry").  Appends to @report:
 * rows, accuracy, macro-F1 (over classes present in gold or predictions),
 * log-loss and expected calibration error, per-class precision / recall /
 * F1 / support and the confusion matrix (rows gold, columns predicted).
 * @macro_f1 (nullable) receives macro-F1.  */
gboolean classify_eval_csv (const classify_model *m, const char *csv_path,
                            const char *label, const char *const *map,
                            GString *report, double *macro_f1,
                            GError **error);

/* The same over rows in memory (@texts, @gold: @n each).  */
gboolean classify_eval (const classify_model *m, const char *const *texts,
                        const char *const *gold, gsize n,
                        const char *const *map, GString *report,
                        double *macro_f1, GError **error);

#endif /* INTAKE_CLASSIFY_H */
