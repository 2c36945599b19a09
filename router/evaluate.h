/*
 * evaluate.h - agreement between gold labels and decisions: accuracy,
 * macro-F1, per-class precision/recall, confusion matrix.  Used by
 * `intakectl rules test --csv` to measure the whole decision (rules and
 * classifier) on labelled text.
 */
#ifndef INTAKE_ROUTER_EVALUATE_H
#define INTAKE_ROUTER_EVALUATE_H

#include <glib.h>

typedef struct evaluate evaluate;

evaluate *evaluate_new (void);
void evaluate_free (evaluate *e);
void evaluate_add (evaluate *e, const char *gold, const char *predicted);

/* Macro-F1 over the classes in the gold labels (a prediction outside them
 * counts against the gold class's recall), and over every class seen.  */
double evaluate_macro_f1_gold (const evaluate *e);
double evaluate_macro_f1_all (const evaluate *e);
double evaluate_accuracy (const evaluate *e);
/* Recall and precision of one class.  */
double evaluate_recall (const evaluate *e, const char *label);
double evaluate_precision (const evaluate *e, const char *label);

/* Append a readable report: counts, accuracy, both macro-F1s, a table per
 * class and the confusion matrix (rows gold, columns predicted).  */
void evaluate_report (const evaluate *e, GString *out);

#endif
