/*
 * evaluate.c - confusion counts and the figures drawn from them.
 */
#include "router/evaluate.h"

#include <string.h>

struct evaluate {
  GPtrArray *labels;         /* char *, in order of first appearance */
  GHashTable *index;         /* label -> position + 1 */
  GHashTable *gold_set;      /* labels seen as gold */
  GArray *cells;             /* guint, labels->len squared, grown */
  guint dim;
  guint n;
};

evaluate *
evaluate_new (void)
{
  evaluate *e = g_new0 (evaluate, 1);

  e->labels = g_ptr_array_new_with_free_func (g_free);
  e->index = g_hash_table_new (g_str_hash, g_str_equal);
  e->gold_set = g_hash_table_new (g_str_hash, g_str_equal);
  e->cells = g_array_new (FALSE, TRUE, sizeof (guint));
  return e;
}

void
evaluate_free (evaluate *e)
{
  if (e == NULL)
    return;
  g_hash_table_unref (e->index);
  g_hash_table_unref (e->gold_set);
  g_ptr_array_unref (e->labels);
  g_array_unref (e->cells);
  g_free (e);
}

static guint
evaluate_label (evaluate *e, const char *label)
{
  gpointer v = g_hash_table_lookup (e->index, label);
  guint old = e->dim;
  GArray *grown;

  if (v != NULL)
    return GPOINTER_TO_UINT (v) - 1;
  g_ptr_array_add (e->labels, g_strdup (label));
  g_hash_table_insert (e->index, e->labels->pdata[e->labels->len - 1],
                       GUINT_TO_POINTER (e->labels->len));
  /* grow the square matrix by one row and column */
  e->dim = e->labels->len;
  grown = g_array_new (FALSE, TRUE, sizeof (guint));
  g_array_set_size (grown, e->dim * e->dim);
  for (guint r = 0; r < old; r++)
    for (guint c = 0; c < old; c++)
      g_array_index (grown, guint, r * e->dim + c) =
          g_array_index (e->cells, guint, r * old + c);
  g_array_unref (e->cells);
  e->cells = grown;
  return e->dim - 1;
}

void
evaluate_add (evaluate *e, const char *gold, const char *predicted)
{
  guint g = evaluate_label (e, gold);
  guint p = evaluate_label (e, predicted ? predicted : "(none)");

  g_hash_table_add (e->gold_set, e->labels->pdata[g]);
  g_array_index (e->cells, guint, g * e->dim + p)++;
  e->n++;
}

static guint
evaluate_cell (const evaluate *e, guint g, guint p)
{
  return g_array_index (e->cells, guint, g * e->dim + p);
}

static void
evaluate_class (const evaluate *e, guint c, double *precision,
                double *recall, double *f1, guint *support)
{
  guint tp = evaluate_cell (e, c, c), row = 0, col = 0;

  for (guint i = 0; i < e->dim; i++)
    {
      row += evaluate_cell (e, c, i);
      col += evaluate_cell (e, i, c);
    }
  *precision = col ? (double) tp / col : 0.0;
  *recall = row ? (double) tp / row : 0.0;
  *f1 = *precision + *recall > 0
            ? 2 * *precision * *recall / (*precision + *recall) : 0.0;
  *support = row;
}

static double
evaluate_macro (const evaluate *e, gboolean gold_only)
{
  double sum = 0;
  guint k = 0;

  for (guint c = 0; c < e->dim; c++)
    {
      double p, r, f;
      guint sup;
      if (gold_only && !g_hash_table_contains (e->gold_set,
                                               e->labels->pdata[c]))
        continue;
      evaluate_class (e, c, &p, &r, &f, &sup);
      sum += f;
      k++;
    }
  return k ? sum / k : 0.0;
}

double
evaluate_macro_f1_gold (const evaluate *e)
{
  return evaluate_macro (e, TRUE);
}

double
evaluate_macro_f1_all (const evaluate *e)
{
  return evaluate_macro (e, FALSE);
}

double
evaluate_accuracy (const evaluate *e)
{
  guint tp = 0;

  for (guint c = 0; c < e->dim; c++)
    tp += evaluate_cell (e, c, c);
  return e->n ? (double) tp / e->n : 0.0;
}

static int
evaluate_find (const evaluate *e, const char *label)
{
  gpointer v = g_hash_table_lookup (e->index, label);

  return v ? (int) GPOINTER_TO_UINT (v) - 1 : -1;
}

double
evaluate_recall (const evaluate *e, const char *label)
{
  int c = evaluate_find (e, label);
  double p, r, f;
  guint sup;

  if (c < 0)
    return 0.0;
  evaluate_class (e, c, &p, &r, &f, &sup);
  return r;
}

double
evaluate_precision (const evaluate *e, const char *label)
{
  int c = evaluate_find (e, label);
  double p, r, f;
  guint sup;

  if (c < 0)
    return 0.0;
  evaluate_class (e, c, &p, &r, &f, &sup);
  return p;
}

void
evaluate_report (const evaluate *e, GString *out)
{
  g_string_append_printf (out, "rows: %u\naccuracy: %.4f\n"
                          "macro-F1 (gold classes): %.4f\n"
                          "macro-F1 (all classes seen): %.4f\n\n", e->n,
                          evaluate_accuracy (e), evaluate_macro_f1_gold (e),
                          evaluate_macro_f1_all (e));
  g_string_append_printf (out, "%-24s %9s %9s %9s %8s\n", "class",
                          "precision", "recall", "F1", "support");
  for (guint c = 0; c < e->dim; c++)
    {
      double p, r, f;
      guint sup;
      evaluate_class (e, c, &p, &r, &f, &sup);
      g_string_append_printf (out, "%-24s %9.3f %9.3f %9.3f %8u\n",
                              (const char *) e->labels->pdata[c], p, r, f,
                              sup);
    }
  g_string_append (out, "\nconfusion (rows gold, columns predicted):\n");
  g_string_append_printf (out, "%-24s", "");
  for (guint c = 0; c < e->dim; c++)
    g_string_append_printf (out, " %5.5s", (const char *) e->labels->pdata[c]);
  g_string_append_c (out, '\n');
  for (guint r = 0; r < e->dim; r++)
    {
      g_string_append_printf (out, "%-24s",
                              (const char *) e->labels->pdata[r]);
      for (guint c = 0; c < e->dim; c++)
        g_string_append_printf (out, " %5u", evaluate_cell (e, r, c));
      g_string_append_c (out, '\n');
    }
}
