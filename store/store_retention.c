/*
 * store_retention.c - the retention schedule: which cases are due for
 * deletion and why, legal holds, and the deletion itself.
 *
 * A case's class is the routing rule's `retention CLASS` action if one
 * fired (the "retention" member of the case's routing reasons), else the
 * longer of the classes its kind and its queue map to, else the default
 * class.  It is due `years(class)` after it was closed, and in any case
 * `maximum_years` after it was opened (a year is 365.25 days).  A case on
 * legal hold is never due.  The due date is written to cases.delete_after
 * on every run.
 *
 * A run deletes the due cases in batches, each one transaction with an
 * audit event per case (reference, class and basis: nothing about a
 * person), so a run killed half-way resumes with the next run and deletes
 * every case exactly once.  Then the data subjects left without any case,
 * message or note, and inactive for `subject_inactive_years`, are erased
 * (crypto-shredding, store_rights.c).  Before deleting anything the run
 * compares the clock with the last run's: a jump forward of more than a
 * day past the daily interval stops it until a person confirms
 * (SECURITY-TESTS 43).
 *
 * Owns: the policy (store_retention_policy_*).
 * Refuses: to delete while the clock looks wrong, unless confirmed.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_private.h"
#include "store/store_webhook.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

/* A year of the schedule, in microseconds (365.25 days).  */
#define STORE_RETENTION_YEAR_US ((gint64) 36525 * 24 * 3600 * 10000)
/* The daily job's interval: the clock check allows this plus the jump.  */
#define STORE_RETENTION_INTERVAL_US ((gint64) 24 * 3600 * G_USEC_PER_SEC)
/* Cases deleted per transaction.  */
#define STORE_RETENTION_BATCH 2000
/* Hard ceiling of any class, in years (the schedule's own maximum is
 * lower; this only bounds what a configuration file may say).  */
#define STORE_RETENTION_MAX_YEARS 100

G_STATIC_ASSERT (STORE_RETENTION_YEAR_US == 31557600LL * G_USEC_PER_SEC);

/* ------------------------------------------------------------- policy */

store_retention_policy *
store_retention_policy_new (void)
{
  store_retention_policy *p = g_new0 (store_retention_policy, 1);

  p->classes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  p->by_kind = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      g_free);
  p->by_queue = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       g_free);
  /* the example council's privacy notice (docs/retention.md) */
  g_hash_table_insert (p->classes, g_strdup ("enquiry"), GUINT_TO_POINTER (2));
  g_hash_table_insert (p->classes, g_strdup ("complaint"),
                       GUINT_TO_POINTER (6));
  g_hash_table_insert (p->classes, g_strdup ("financial"),
                       GUINT_TO_POINTER (5));
  g_hash_table_insert (p->classes, g_strdup ("foi"), GUINT_TO_POINTER (3));
  g_hash_table_insert (p->by_kind, g_strdup ("complaint"),
                       g_strdup ("complaint"));
  g_hash_table_insert (p->by_kind, g_strdup ("foi-request"),
                       g_strdup ("foi"));
  g_hash_table_insert (p->by_queue, g_strdup ("council-tax"),
                       g_strdup ("financial"));
  g_hash_table_insert (p->by_queue, g_strdup ("benefits"),
                       g_strdup ("financial"));
  p->default_class = g_strdup ("enquiry");
  p->maximum_years = 7;
  p->subject_inactive_years = 2;
  p->clock_jump_hours = 24;
  return p;
}

void
store_retention_policy_free (store_retention_policy *p)
{
  if (p == NULL)
    return;
  g_hash_table_unref (p->classes);
  g_hash_table_unref (p->by_kind);
  g_hash_table_unref (p->by_queue);
  g_free (p->default_class);
  g_free (p);
}

static gboolean
store_retention_uint (GKeyFile *kf, const char *path, const char *group,
                      const char *key, guint max, guint *out, GError **error)
{
  g_autofree char *v = g_key_file_get_string (kf, group, key, NULL);
  guint64 n;

  if (v == NULL)
    return TRUE;
  if (!g_ascii_string_to_unsigned (g_strstrip (v), 10, 0, max, &n, NULL))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "%s: [%s] %s = %s: a whole number from 0 to %u", path,
                   group, key, v, max);
      return FALSE;
    }
  *out = (guint) n;
  return TRUE;
}

store_retention_policy *
store_retention_policy_load (const char *path, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  store_retention_policy *p = store_retention_policy_new ();
  g_auto (GStrv) keys = NULL;

  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, error))
    {
      g_prefix_error (error, "%s: ", path);
      goto fail;
    }
  if (g_key_file_has_group (kf, "classes"))
    {
      g_hash_table_remove_all (p->classes);
      keys = g_key_file_get_keys (kf, "classes", NULL, NULL);
      for (guint i = 0; keys && keys[i]; i++)
        {
          guint years = 0;
          if (!store_retention_uint (kf, path, "classes", keys[i],
                                     STORE_RETENTION_MAX_YEARS, &years,
                                     error))
            goto fail;
          g_hash_table_insert (p->classes, g_strdup (keys[i]),
                               GUINT_TO_POINTER (years));
        }
      g_clear_pointer (&keys, g_strfreev);
    }
  if (g_key_file_has_group (kf, "defaults"))
    {
      g_hash_table_remove_all (p->by_kind);
      g_hash_table_remove_all (p->by_queue);
      keys = g_key_file_get_keys (kf, "defaults", NULL, NULL);
      for (guint i = 0; keys && keys[i]; i++)
        {
          g_autofree char *v = g_key_file_get_string (kf, "defaults", keys[i],
                                                      NULL);
          g_strstrip (v);
          if (!g_hash_table_contains (p->classes, v))
            {
              g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                           "%s: [defaults] %s = %s: no such class in"
                           " [classes]", path, keys[i], v);
              goto fail;
            }
          if (strcmp (keys[i], "default") == 0)
            {
              g_free (p->default_class);
              p->default_class = g_strdup (v);
            }
          else if (g_str_has_prefix (keys[i], "kind."))
            g_hash_table_insert (p->by_kind, g_strdup (keys[i] + 5),
                                 g_strdup (v));
          else if (g_str_has_prefix (keys[i], "queue."))
            g_hash_table_insert (p->by_queue, g_strdup (keys[i] + 6),
                                 g_strdup (v));
          else
            {
              g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                           "%s: [defaults] %s: expected default, kind.KIND"
                           " or queue.QUEUE", path, keys[i]);
              goto fail;
            }
        }
    }
  if (!g_hash_table_contains (p->classes, p->default_class))
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "%s: the default class '%s' is not in [classes]", path,
                   p->default_class);
      goto fail;
    }
  if (!store_retention_uint (kf, path, "limits", "maximum_years",
                             STORE_RETENTION_MAX_YEARS, &p->maximum_years,
                             error)
      || !store_retention_uint (kf, path, "limits", "subject_inactive_years",
                                STORE_RETENTION_MAX_YEARS,
                                &p->subject_inactive_years, error)
      || !store_retention_uint (kf, path, "limits", "clock_jump_hours",
                                24 * 365, &p->clock_jump_hours, error))
    goto fail;
  if (p->maximum_years == 0)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_STATE,
                   "%s: [limits] maximum_years must be at least 1", path);
      goto fail;
    }
  return p;

fail:
  store_retention_policy_free (p);
  return NULL;
}

gboolean
store_retention_class_known (const store_retention_policy *p,
                             const char *name)
{
  return name != NULL && g_hash_table_contains (p->classes, name);
}

/* The class of a case, and its years.  */
static const char *
store_retention_class (const store_retention_policy *p, const char *rule,
                       const char *kind, const char *queue, guint *years)
{
  const char *kc = kind ? g_hash_table_lookup (p->by_kind, kind) : NULL;
  const char *qc = queue ? g_hash_table_lookup (p->by_queue, queue) : NULL;
  const char *c = NULL;
  gpointer v;

  if (rule != NULL && g_hash_table_contains (p->classes, rule))
    c = rule;
  else if (kc != NULL && qc != NULL)
    c = GPOINTER_TO_UINT (g_hash_table_lookup (p->classes, kc))
            >= GPOINTER_TO_UINT (g_hash_table_lookup (p->classes, qc))
        ? kc : qc;               /* the longer of the two */
  else
    c = kc ? kc : qc ? qc : p->default_class;
  v = g_hash_table_lookup (p->classes, c);
  *years = GPOINTER_TO_UINT (v);
  return c;
}

/* ---------------------------------------------------------------- run */

void
store_retention_item_free (store_retention_item *it)
{
  if (it == NULL)
    return;
  g_free (it->ref);
  g_free (it->class_name);
  g_free (it->basis);
  g_free (it);
}

typedef struct {
  gint64 id;
  gint64 delete_after;
} store_retention_due;

/* SIGKILL after the @n-th committed batch when INTAKE_FAULT_RETENTION_KILL
 * says so: the tests prove that a killed run resumes and deletes each case
 * once.  */
static void
store_retention_fault (guint batches)
{
  const char *e = g_getenv ("INTAKE_FAULT_RETENTION_KILL");

  if (e != NULL && (guint) g_ascii_strtoull (e, NULL, 10) == batches)
    {
      g_message ("store: fault injection: SIGKILL after retention batch %u",
                 batches);
      kill (getpid (), SIGKILL);
    }
}

/* The cases of one batch (temp.retention_batch) and what hangs off them,
 * with an audit event each.  */
static gboolean
store_retention_delete_batch (store *s, GPtrArray *items, guint from,
                              guint to, GError **error)
{
  static const char *const deletes[] = {
    "DELETE FROM attachments WHERE message_id IN (SELECT id FROM messages"
    " WHERE case_id IN (SELECT id FROM temp.retention_batch))",
    "DELETE FROM arrivals WHERE message_id IN (SELECT id FROM messages"
    " WHERE case_id IN (SELECT id FROM temp.retention_batch))",
    "DELETE FROM outbox WHERE case_id IN (SELECT id FROM"
    " temp.retention_batch)",
    "DELETE FROM case_notes WHERE case_id IN (SELECT id FROM"
    " temp.retention_batch)",
    "DELETE FROM case_texts WHERE case_id IN (SELECT id FROM"
    " temp.retention_batch)",
    "DELETE FROM messages WHERE case_id IN (SELECT id FROM"
    " temp.retention_batch)",
    "DELETE FROM case_participants WHERE case_id IN (SELECT id FROM"
    " temp.retention_batch)",
    "DELETE FROM case_links WHERE case_id IN (SELECT id FROM"
    " temp.retention_batch) OR other_id IN (SELECT id FROM"
    " temp.retention_batch)",
    "DELETE FROM cases WHERE id IN (SELECT id FROM temp.retention_batch)",
  };
  sqlite3 *db = s->rdb;
  sqlite3_stmt *st;
  gboolean ok = FALSE;

  /* Deleted cells and freed pages are overwritten with zeros, not only
   * unlinked: the person may stay, and their data key with them, which
   * would still open what the schedule deleted (test_rights
   * test_retention_leaves_no_ciphertext).  */
  if (!store_secure_delete (s, db, TRUE, error))
    return FALSE;
  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "retention");
      store_secure_delete (s, db, FALSE, NULL);
      return FALSE;
    }
  if (sqlite3_exec (db, "DELETE FROM temp.retention_batch", NULL, NULL, NULL)
      != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "retention");
      goto out;
    }
  st = store_prepare (db, "INSERT INTO temp.retention_batch (id) SELECT id"
                          " FROM cases WHERE id = ?1 AND hold_at IS NULL",
                      error);
  if (st == NULL)
    goto out;
  for (guint i = from; i < to; i++)
    {
      store_retention_item *it = items->pdata[i];
      sqlite3_bind_int64 (st, 1, it->case_id);
      if (sqlite3_step (st) != SQLITE_DONE)
        {
          store_set_sqlite_error (error, db, sqlite3_errcode (db),
                                  "retention");
          sqlite3_finalize (st);
          goto out;
        }
      /* held since the plan was made, or deleted by a run before: skip */
      it->deleted = sqlite3_changes (db) == 1;
      sqlite3_reset (st);
    }
  sqlite3_finalize (st);
  /* the CRMs hear that each case is gone (docs/webhooks.md), before its
   * rows go */
  for (guint i = from; i < to; i++)
    {
      store_retention_item *it = items->pdata[i];
      if (it->deleted
          && !store_webhook_enqueue_erased (s, db, it->case_id, error))
        goto out;
    }
  for (guint i = 0; i < G_N_ELEMENTS (deletes); i++)
    if (sqlite3_exec (db, deletes[i], NULL, NULL, NULL) != SQLITE_OK)
      {
        store_set_sqlite_error (error, db, sqlite3_errcode (db),
                                "retention delete");
        goto out;
      }
  for (guint i = from; i < to; i++)
    {
      store_retention_item *it = items->pdata[i];
      g_autofree char *detail = NULL;
      if (!it->deleted)
        continue;
      detail = g_strdup_printf ("class=%s basis=%s", it->class_name,
                                it->basis);
      if (!store_audit_append (s, db, "retention", "case.deleted", it->ref,
                               detail, error))
        goto out;
    }
  ok = sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, db, sqlite3_errcode (db),
                            "retention commit");
out:
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  store_secure_delete (s, db, FALSE, NULL);
  return ok;
}

/* Write the due dates that changed, in batches.  */
static gboolean
store_retention_write_dates (store *s, GArray *dates, GError **error)
{
  sqlite3 *db = s->rdb;
  sqlite3_stmt *st = NULL;
  gboolean ok = TRUE;

  for (guint i = 0; ok && i < dates->len; i++)
    {
      store_retention_due *d = &g_array_index (dates, store_retention_due, i);
      if (i % 20000 == 0)
        {
          if (st != NULL)
            {
              sqlite3_finalize (st);
              st = NULL;
              if (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                break;
            }
          if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL)
              != SQLITE_OK)
            break;
          st = store_prepare (db, "UPDATE cases SET delete_after = ?2"
                                  " WHERE id = ?1", error);
          if (st == NULL)
            {
              ok = FALSE;
              break;
            }
        }
      sqlite3_bind_int64 (st, 1, d->id);
      if (d->delete_after > 0)
        sqlite3_bind_int64 (st, 2, d->delete_after);
      else
        sqlite3_bind_null (st, 2);
      ok = sqlite3_step (st) == SQLITE_DONE;
      sqlite3_reset (st);
    }
  if (st != NULL)
    sqlite3_finalize (st);
  if (ok && !sqlite3_get_autocommit (db))
    ok = sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok && (error == NULL || *error == NULL))
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "due dates");
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  return ok;
}

static char *
store_retention_date (gint64 us)
{
  g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (us
                                                           / G_USEC_PER_SEC);
  return g_date_time_format (t, "%Y-%m-%d");
}

gboolean
store_retention_run (store *s, const store_retention_policy *p, gint64 now,
                     guint flags, store_retention_report *r,
                     GPtrArray **items_out, GError **error)
{
  const gboolean dry = (flags & STORE_RETENTION_DRY_RUN) != 0;
  const gint64 max_us = p->maximum_years * STORE_RETENTION_YEAR_US;
  g_autoptr (GPtrArray) items = g_ptr_array_new_with_free_func (
      (GDestroyNotify) store_retention_item_free);
  g_autoptr (GArray) dates = g_array_new (FALSE, FALSE,
                                          sizeof (store_retention_due));
  sqlite3 *db = s->rdb;
  sqlite3_stmt *st;
  gboolean ok = FALSE;
  gint64 last = 0;
  guint batches = 0;
  guint batch = STORE_RETENTION_BATCH;
  int rc;

  memset (r, 0, sizeof *r);
  {
    const char *e = g_getenv ("INTAKE_RETENTION_BATCH");
    if (e != NULL && g_ascii_strtoull (e, NULL, 10) > 0)
      batch = (guint) g_ascii_strtoull (e, NULL, 10);
  }
  g_mutex_lock (&s->rlock);

  /* the clock against the last run */
  st = store_prepare (db, "SELECT last_run_at FROM retention_state", error);
  if (st == NULL)
    goto out;
  if (sqlite3_step (st) == SQLITE_ROW)
    last = sqlite3_column_int64 (st, 0);
  sqlite3_finalize (st);
  r->last_run = last;
  if (last > 0 && now - last > STORE_RETENTION_INTERVAL_US
                                  + (gint64) p->clock_jump_hours * 3600
                                        * G_USEC_PER_SEC)
    {
      r->clock_jump = TRUE;
      if (!dry && (flags & STORE_RETENTION_CONFIRM_CLOCK_JUMP) == 0)
        {
          g_autofree char *a = store_retention_date (last);
          g_autofree char *b = store_retention_date (now);
          g_set_error (error, STORE_ERROR, STORE_ERROR_CLOCK,
                       "the clock says %s but the last retention run was on"
                       " %s: more than a day beyond the daily interval;"
                       " nothing deleted.  If the date is right, run"
                       " 'intakectl retention run --confirm-clock-jump'", b,
                       a);
          /* the refusal is recorded; the error stands */
          if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL)
                  == SQLITE_OK
              && store_audit_append_outcome (s, db, "retention",
                                             "retention.run", "schedule",
                                             "clock-jump", "refused", NULL))
            sqlite3_exec (db, "COMMIT", NULL, NULL, NULL);
          goto out;
        }
    }

  /* every case: its class, its due date */
  st = store_prepare (db, "SELECT id, ref, kind, coalesce(restricted_from,"
                          " queue), coalesce(retention_class, CASE WHEN"
                          " json_valid(reasons) THEN json_extract(reasons,"
                          " '$.retention') END), created_at, closed_at,"
                          " hold_at, delete_after FROM cases ORDER BY id",
                      error);
  if (st == NULL)
    goto out;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (st, 0);
      gint64 created = sqlite3_column_int64 (st, 5);
      gint64 closed = sqlite3_column_int64 (st, 6);
      gboolean held = sqlite3_column_type (st, 7) != SQLITE_NULL;
      gint64 stored = sqlite3_column_int64 (st, 8);
      guint years = 0;
      const char *cls = store_retention_class (
          p, (const char *) sqlite3_column_text (st, 4),
          (const char *) sqlite3_column_text (st, 2),
          (const char *) sqlite3_column_text (st, 3), &years);
      gint64 by_max = created + max_us;
      gint64 by_class = closed > 0 ? closed + years * STORE_RETENTION_YEAR_US
                                   : 0;
      gint64 due = by_class > 0 && by_class < by_max ? by_class : by_max;

      r->cases++;
      if (due != stored)
        {
          store_retention_due d = { id, due };
          g_array_append_val (dates, d);
        }
      if (due > now)
        continue;
      if (held)
        {
          r->held++;
          continue;
        }
      {
        store_retention_item *it = g_new0 (store_retention_item, 1);
        g_autofree char *when = store_retention_date (
            due == by_class ? closed : created);
        it->case_id = id;
        it->ref = g_strdup ((const char *) sqlite3_column_text (st, 1));
        it->class_name = g_strdup (cls);
        it->delete_after = due;
        it->basis = due == by_class
            ? g_strdup_printf ("closed-%s+%uy", when, years)
            : g_strdup_printf ("opened-%s+%uy-maximum", when,
                               p->maximum_years);
        g_ptr_array_add (items, it);
      }
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "retention");
      goto out;
    }
  r->due = items->len;
  if (!dry && !store_retention_write_dates (s, dates, error))
    goto out;

  if (!dry)
    {
      if (sqlite3_exec (db, "CREATE TEMP TABLE IF NOT EXISTS retention_batch"
                            " (id INTEGER PRIMARY KEY)", NULL, NULL, NULL)
          != SQLITE_OK)
        {
          store_set_sqlite_error (error, db, sqlite3_errcode (db),
                                  "retention");
          goto out;
        }
      for (guint i = 0; i < items->len; i += batch)
        {
          guint to = MIN (items->len, i + batch);
          if (!store_retention_delete_batch (s, items, i, to, error))
            goto out;
          for (guint j = i; j < to; j++)
            if (((store_retention_item *) items->pdata[j])->deleted)
              r->deleted++;
          store_retention_fault (++batches);
          /* let the daemon's readers (API, outbox) in between batches */
          g_mutex_unlock (&s->rlock);
          g_thread_yield ();
          g_mutex_lock (&s->rlock);
        }
    }

  /* data subjects with nothing left, inactive long enough */
  {
    g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));
    gint64 before = now - (gint64) p->subject_inactive_years
                          * STORE_RETENTION_YEAR_US;
    st = store_prepare (db, "SELECT s.id FROM subjects s WHERE"
                            " s.erasing_at IS NULL AND coalesce(s.updated_at,"
                            " s.created_at) <= ?1"
                            " AND NOT EXISTS (SELECT 1 FROM messages m WHERE"
                            " m.subject_id = s.id)"
                            " AND NOT EXISTS (SELECT 1 FROM case_participants"
                            " p WHERE p.subject_id = s.id)"
                            " AND NOT EXISTS (SELECT 1 FROM cases c WHERE"
                            " c.subject_id = s.id)"
                            " AND NOT EXISTS (SELECT 1 FROM case_notes n"
                            " WHERE n.subject_id = s.id)"
                            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE"
                            " o.subject_id = s.id)", error);
    if (st == NULL)
      goto out;
    sqlite3_bind_int64 (st, 1, before);
    while (sqlite3_step (st) == SQLITE_ROW)
      {
        gint64 id = sqlite3_column_int64 (st, 0);
        g_array_append_val (ids, id);
      }
    sqlite3_finalize (st);
    r->subjects_due = ids->len;
    if (!dry && ids->len > 0)
      {
        gint64 n = store_erase_many_locked (s, ids, "retention", "retention",
                                            error);
        if (n < 0)
          goto out;
        r->subjects_erased = n;
      }
  }

  if (!dry)
    {
      g_autofree char *detail = g_strdup_printf (
          "cases=%" G_GINT64_FORMAT " due=%" G_GINT64_FORMAT " deleted=%"
          G_GINT64_FORMAT " held=%" G_GINT64_FORMAT " subjects_erased=%"
          G_GINT64_FORMAT "%s", r->cases, r->due, r->deleted, r->held,
          r->subjects_erased, r->clock_jump ? " clock_jump=confirmed" : "");
      if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        {
          store_set_sqlite_error (error, db, sqlite3_errcode (db),
                                  "retention");
          goto out;
        }
      /* the last run only moves forward: a clock set back cannot make
       * the next forward jump look small */
      st = store_prepare (db, "INSERT INTO retention_state (id, last_run_at)"
                              " VALUES (1, ?1) ON CONFLICT (id) DO UPDATE"
                              " SET last_run_at = max(last_run_at, ?1)",
                          error);
      if (st == NULL)
        goto out;
      sqlite3_bind_int64 (st, 1, now);
      rc = sqlite3_step (st);
      sqlite3_finalize (st);
      if (rc != SQLITE_DONE
          || !store_audit_append (s, db, "retention", "retention.run",
                                  "schedule", detail, error)
          || sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        {
          if (error != NULL && *error == NULL)
            store_set_sqlite_error (error, db, sqlite3_errcode (db),
                                    "retention");
          goto out;
        }
      if (r->deleted > 0 || r->subjects_erased > 0)
        sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                   NULL, NULL);
    }
  ok = TRUE;
out:
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  if (ok && items_out != NULL)
    *items_out = g_steal_pointer (&items);
  return ok;
}

/* --------------------------------------------------------------- hold */

gboolean
store_case_hold (store *s, const char *ref, gboolean on, const char *reason,
                 const char *actor, GError **error)
{
  sqlite3 *db = s->rdb;
  sqlite3_stmt *st;
  g_autoptr (GBytes) sealed = NULL;
  gint64 id = -1;
  gboolean ok = FALSE;
  int rc;

  g_mutex_lock (&s->rlock);
  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    {
      store_set_sqlite_error (error, db, sqlite3_errcode (db), "hold");
      g_mutex_unlock (&s->rlock);
      return FALSE;
    }
  st = store_prepare (db, "SELECT id FROM cases WHERE ref = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_text (st, 1, ref, -1, SQLITE_STATIC);
  if (sqlite3_step (st) == SQLITE_ROW)
    id = sqlite3_column_int64 (st, 0);
  sqlite3_finalize (st);
  if (id < 0)
    {
      g_set_error (error, STORE_ERROR, STORE_ERROR_NOT_FOUND, "no case %s",
                   ref);
      goto out;
    }
  /* the reason may name people (a claim, a court case): sealed under the
   * statistics key, never in the audit */
  if (on && reason != NULL)
    sealed = store_seal (store_keys_get (s->keys, STORE_KEY_STATS), "cases",
                         "hold_reason", id, 0, reason, strlen (reason));
  st = store_prepare (db, on ? "UPDATE cases SET hold_at = coalesce(hold_at,"
                               " ?2), hold_reason = ?3 WHERE id = ?1"
                             : "UPDATE cases SET hold_at = NULL,"
                               " hold_reason = NULL WHERE id = ?1", error);
  if (st == NULL)
    goto out;
  sqlite3_bind_int64 (st, 1, id);
  if (on)
    {
      sqlite3_bind_int64 (st, 2, g_get_real_time ());
      if (sealed)
        sqlite3_bind_blob64 (st, 3, g_bytes_get_data (sealed, NULL),
                             g_bytes_get_size (sealed), SQLITE_TRANSIENT);
    }
  rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    {
      store_set_sqlite_error (error, db, rc, "hold");
      goto out;
    }
  if (!store_audit_append (s, db, actor, on ? "case.hold" : "case.release",
                           ref, on ? "legal-hold" : "", error))
    goto out;
  ok = sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (!ok)
    store_set_sqlite_error (error, db, sqlite3_errcode (db), "hold");
out:
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_unlock (&s->rlock);
  return ok;
}
