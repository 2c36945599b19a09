/*
 * intake_config.c - reading and checking intake.conf.
 *
 * Owns: the parsed configuration.  Refuses: values out of range, unknown
 * policy words, a world- or group-writable file, mailboxes that are not
 * addresses.
 */
#include "intake/intake_config.h"

#include <string.h>
#include <sys/stat.h>

#include "intake/smtp_limits.h"
#include "store/store.h"

G_DEFINE_QUARK (intake-config-error-quark, intake_config_error)

static char *
intake_config_path (const char *dir, const char *value)
{
  if (value == NULL || *value == '\0')
    return NULL;
  if (g_path_is_absolute (value))
    return g_strdup (value);
  g_autofree char *joined = g_build_filename (dir, value, NULL);
  return g_canonicalize_filename (joined, NULL);
}

static char *
intake_config_string (GKeyFile *kf, const char *group, const char *key,
                      const char *def)
{
  char *v = g_key_file_get_string (kf, group, key, NULL);

  if (v == NULL)
    return def ? g_strdup (def) : NULL;
  g_strstrip (v);
  return v;
}

/* An integer in [min, max], or the default when absent.  */
static gboolean
intake_config_uint (GKeyFile *kf, const char *path, const char *group,
                    const char *key, guint64 def, guint64 min, guint64 max,
                    guint64 *out, GError **error)
{
  g_autofree char *v = intake_config_string (kf, group, key, NULL);
  guint64 n;

  if (v == NULL)
    {
      *out = def;
      return TRUE;
    }
  if (!g_ascii_string_to_unsigned (v, 10, min, max, &n, NULL))
    {
      g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                   "%s: [%s] %s = %s: expected a whole number from %"
                   G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT, path, group,
                   key, v, min, max);
      return FALSE;
    }
  *out = n;
  return TRUE;
}

static gboolean
intake_config_address_ok (const char *a)
{
  const char *at = strchr (a, '@');

  if (at == NULL || at == a || at[1] == '\0' || strchr (at + 1, '@'))
    return FALSE;
  for (const char *p = a; *p; p++)
    if (!g_ascii_isgraph (*p) || *p == '+')
      return FALSE;
  return TRUE;
}

static gboolean
intake_config_load_mailboxes (intake_config *cfg, GKeyFile *kf,
                              GError **error)
{
  g_auto (GStrv) keys = g_key_file_get_keys (kf, "mailboxes", NULL, NULL);

  if (keys == NULL || keys[0] == NULL)
    {
      g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                   "%s: [mailboxes] is empty: name at least one address"
                   " intake receives for", cfg->path);
      return FALSE;
    }
  for (guint i = 0; keys[i]; i++)
    {
      char *addr = g_ascii_strdown (keys[i], -1);

      if (!intake_config_address_ok (addr))
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [mailboxes] %s: not a mailbox address"
                       " (local@domain, no '+')", cfg->path, keys[i]);
          g_free (addr);
          return FALSE;
        }
      g_hash_table_replace (cfg->mailboxes, addr,
                            intake_config_string (kf, "mailboxes", keys[i],
                                                  ""));
      char *domain = g_strdup (strchr (addr, '@') + 1);
      g_hash_table_replace (cfg->domains, domain, domain);
    }
  return TRUE;
}

static gboolean intake_config_load_imap (intake_config *cfg, GKeyFile *kf,
                                         const char *dir, GError **error);
static gboolean intake_config_load_queues (intake_config *cfg, GKeyFile *kf,
                                           const char *dir, GError **error);

intake_config *
intake_config_load (const char *path, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (intake_config) cfg = g_new0 (intake_config, 1);
  g_autofree char *dir = NULL;
  g_autofree char *policy = NULL;
  g_autofree char *db = NULL, *key = NULL;
  smtp_session_config *sc = &cfg->session;
  struct stat st;
  guint64 v;

  cfg->path = g_strdup (path);
  cfg->mailboxes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                          g_free);
  cfg->domains = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        NULL);
  if (stat (path, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)))
    {
      g_set_error (error, INTAKE_CONFIG_ERROR,
                   INTAKE_CONFIG_ERROR_PERMISSION,
                   "%s: writable by group or other; refusing it (chmod"
                   " go-w %s)", path, path);
      return NULL;
    }
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, error))
    {
      g_prefix_error (error, "%s: ", path);
      return NULL;
    }
  {
    g_autofree char *abs = g_canonicalize_filename (path, NULL);
    dir = g_path_get_dirname (abs);
  }

  cfg->hostname = intake_config_string (kf, "intake", "hostname",
                                        "localhost");
  cfg->user = intake_config_string (kf, "intake", "user", "nobody");
  cfg->parse_user = intake_config_string (kf, "parser", "user", cfg->user);
  db = intake_config_string (kf, "store", "database", "../var/intake.db");
  key = intake_config_string (kf, "store", "master_key", "../var/master.key");
  cfg->database = intake_config_path (dir, db);
  cfg->master_key = intake_config_path (dir, key);
  {
    /* the key vault: never in the same backup as the database
     * (docs/rights.md); default beside it, store_vault_default_path() */
    g_autofree char *vault = intake_config_string (kf, "store", "vault",
                                                   NULL);
    cfg->vault = intake_config_path (dir, vault);
  }
  {
    /* the retention schedule (docs/retention.md); NULL: built in */
    g_autofree char *sched = intake_config_string (kf, "retention",
                                                   "schedule", NULL);
    cfg->retention = intake_config_path (dir, sched);
  }
  if (!intake_config_uint (kf, path, "store", "min_free_space",
                           64 * 1024 * 1024, 0, G_MAXUINT64,
                           &cfg->min_free_bytes, error))
    return NULL;
  {
    /* SECURITY-TESTS 98 asks for a day; longer is refused (a week) */
    guint64 life;
    if (!intake_config_uint (kf, path, "store", "spool_key_lifetime",
                             STORE_SPOOL_KEY_LIFETIME_S, 1, 7 * 24 * 3600,
                             &life, error))
      return NULL;
    cfg->spool_key_lifetime_s = (guint) life;
  }

  cfg->smtp_listen = intake_config_string (kf, "smtp", "listen",
                                           "127.0.0.1:2525");
  {
    g_autofree char *c = intake_config_string (kf, "smtp", "tls_certificate",
                                               NULL);
    g_autofree char *k = intake_config_string (kf, "smtp", "tls_key", NULL);
    cfg->tls_certificate = intake_config_path (dir, c);
    cfg->tls_key = intake_config_path (dir, k);
    if ((cfg->tls_certificate == NULL) != (cfg->tls_key == NULL))
      {
        g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                     "%s: [smtp] tls_certificate and tls_key go together",
                     path);
        return NULL;
      }
  }

#define UINT_KEY(group, name, def, min, max, dest)                        \
  do                                                                      \
    {                                                                     \
      if (!intake_config_uint (kf, path, group, name, def, min, max, &v,  \
                               error))                                    \
        return NULL;                                                      \
      dest = v;                                                           \
    }                                                                     \
  while (0)

  UINT_KEY ("smtp", "processes", 1, 1, 16, cfg->smtp_processes);
  UINT_KEY ("smtp", "max_sessions", SMTP_LIMIT_SESSIONS_DEFAULT,
            SMTP_LIMIT_SESSIONS_MIN, SMTP_LIMIT_SESSIONS_MAX,
            cfg->max_sessions);
  UINT_KEY ("smtp", "max_sessions_per_client", SMTP_LIMIT_PER_CLIENT_DEFAULT,
            SMTP_LIMIT_PER_CLIENT_MIN, SMTP_LIMIT_PER_CLIENT_MAX,
            cfg->max_per_client);

  smtp_session_config_init (sc);
  UINT_KEY ("smtp", "max_line_length", SMTP_LIMIT_LINE_DEFAULT,
            SMTP_LIMIT_LINE_MIN, SMTP_LIMIT_LINE_MAX, sc->max_line);
  UINT_KEY ("smtp", "max_text_line_length", SMTP_LIMIT_TEXT_LINE_DEFAULT,
            SMTP_LIMIT_TEXT_LINE_MIN, SMTP_LIMIT_TEXT_LINE_MAX,
            sc->max_text_line);
  UINT_KEY ("smtp", "max_header_size", SMTP_LIMIT_HEADER_BYTES_DEFAULT,
            SMTP_LIMIT_HEADER_BYTES_MIN, SMTP_LIMIT_HEADER_BYTES_MAX,
            sc->max_header_bytes);
  UINT_KEY ("smtp", "max_header_lines", SMTP_LIMIT_HEADER_LINES_DEFAULT,
            SMTP_LIMIT_HEADER_LINES_MIN, SMTP_LIMIT_HEADER_LINES_MAX,
            sc->max_header_lines);
  UINT_KEY ("smtp", "max_message_size", SMTP_LIMIT_MESSAGE_DEFAULT,
            SMTP_LIMIT_MESSAGE_MIN, SMTP_LIMIT_MESSAGE_MAX, sc->max_message);
  UINT_KEY ("smtp", "max_recipients", SMTP_LIMIT_RCPT_DEFAULT,
            SMTP_LIMIT_RCPT_MIN, SMTP_LIMIT_RCPT_MAX, sc->max_rcpt);
  UINT_KEY ("smtp", "max_hops", SMTP_LIMIT_HOPS_DEFAULT, SMTP_LIMIT_HOPS_MIN,
            SMTP_LIMIT_HOPS_MAX, sc->max_hops);
  UINT_KEY ("smtp", "max_errors", SMTP_LIMIT_ERRORS_DEFAULT,
            SMTP_LIMIT_ERRORS_MIN, SMTP_LIMIT_ERRORS_MAX, sc->max_errors);
  UINT_KEY ("smtp", "timeout", SMTP_LIMIT_TIMEOUT_DEFAULT,
            SMTP_LIMIT_TIMEOUT_MIN, SMTP_LIMIT_TIMEOUT_MAX, sc->timeout_s);
  UINT_KEY ("smtp", "min_data_rate", SMTP_LIMIT_MIN_RATE_DEFAULT,
            SMTP_LIMIT_MIN_RATE_MIN, SMTP_LIMIT_MIN_RATE_MAX, sc->min_rate);
  UINT_KEY ("parser", "workers", 2, 1, 16, cfg->parse_workers);
  UINT_KEY ("parser", "timeout", 10, 1, 600, cfg->parse_timeout_s);
  UINT_KEY ("parser", "memory", 1024, 256, 65536, cfg->parse_memory_mb);
  UINT_KEY ("parser", "max_failures", 3, 1, 100, cfg->parse_max_failures);
#undef UINT_KEY

  {
    g_autofree char *lex = intake_config_string (kf, "parser",
                                                 "special_categories", NULL);
    cfg->special_categories = intake_config_path (dir, lex);
  }

  policy = intake_config_string (kf, "smtp", "bare_newline", "reject");
  if (g_strcmp0 (policy, "reject") == 0)
    sc->normalise_bare_lf = FALSE;
  else if (g_strcmp0 (policy, "normalise") == 0)
    sc->normalise_bare_lf = TRUE;
  else
    {
      g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                   "%s: [smtp] bare_newline = %s: expected reject or"
                   " normalise", path, policy);
      return NULL;
    }
  sc->hostname = cfg->hostname;
  sc->tls_available = cfg->tls_certificate != NULL;
  sc->rcpt_check = intake_config_rcpt_check;
  sc->rcpt_check_data = cfg;

  if (!intake_config_load_mailboxes (cfg, kf, error))
    return NULL;
  cfg->default_queue = intake_config_string (kf, "cases", "default_queue",
                                             "general");
  cfg->ref_prefix = intake_config_string (kf, "cases", "reference_prefix",
                                          "CASE");
  for (const char *p = cfg->ref_prefix; *p; p++)
    if (!g_ascii_isupper (*p) || p - cfg->ref_prefix >= 10)
      {
        g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                     "%s: [cases] reference_prefix = %s: 1 to 10 capital"
                     " letters", path, cfg->ref_prefix);
        return NULL;
      }
  if (*cfg->ref_prefix == '\0')
    {
      g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                   "%s: [cases] reference_prefix is empty", path);
      return NULL;
    }

  /* routing: file names only; the router checks what is in them */
  {
    static const char *const keys[] = { "rules", "kind_model",
                                        "topic_model" };
    char **slots[] = { &cfg->rules, &cfg->kind_model, &cfg->topic_model };
    for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
      {
        g_autofree char *file = intake_config_string (kf, "routing",
                                                      keys[i], NULL);
        if (file != NULL && *file)
          *slots[i] = intake_config_path (dir, file);
      }
  }
  cfg->clocks = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       g_free);
  cfg->nation = intake_config_string (kf, "clocks", "nation",
                                      "england-and-wales");
  {
    g_autofree char *h = intake_config_string (kf, "clocks", "holidays",
                                               NULL);
    if (h != NULL && *h)
      cfg->holidays = intake_config_path (dir, h);
    g_auto (GStrv) keys = g_key_file_get_keys (kf, "clocks", NULL, NULL);
    for (guint i = 0; keys && keys[i]; i++)
      if (strcmp (keys[i], "nation") != 0 && strcmp (keys[i], "holidays") != 0)
        g_hash_table_insert (cfg->clocks, g_ascii_strdown (keys[i], -1),
                             intake_config_string (kf, "clocks", keys[i],
                                                   ""));
  }
  if (!intake_config_load_imap (cfg, kf, dir, error)
      || !intake_config_load_queues (cfg, kf, dir, error))
    return NULL;
  {
    guint64 n;
    g_autofree char *tls = NULL;
    g_autofree char *ca = NULL;
    g_autofree char *pw = NULL;
    g_autofree char *tpl = NULL;
    cfg->smarthost = intake_config_string (kf, "outbound", "smarthost", NULL);
    if (cfg->smarthost != NULL && *cfg->smarthost == '\0')
      g_clear_pointer (&cfg->smarthost, g_free);
    tls = intake_config_string (kf, "outbound", "starttls", "yes");
    cfg->smarthost_starttls = g_ascii_strcasecmp (tls, "no") != 0;
    if (!cfg->smarthost_starttls && cfg->smarthost != NULL
        && !g_str_has_prefix (cfg->smarthost, "127.")
        && !g_str_has_prefix (cfg->smarthost, "localhost:")
        && !g_str_has_prefix (cfg->smarthost, "[::1]"))
      {
        g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                     "%s: [outbound] starttls = no is allowed only to a"
                     " loopback smarthost", path);
        return NULL;
      }
    ca = intake_config_string (kf, "outbound", "ca_file", NULL);
    cfg->smarthost_ca = intake_config_path (dir, ca);
    cfg->smarthost_user = intake_config_string (kf, "outbound", "user", NULL);
    pw = intake_config_string (kf, "outbound", "password_file", NULL);
    cfg->smarthost_password_file = intake_config_path (dir, pw);
    {
      g_autofree char *acks = intake_config_string (kf, "outbound",
                                                    "acknowledgements",
                                                    "yes");
      cfg->acks = g_ascii_strcasecmp (acks, "no") != 0;
    }
    if (!intake_config_uint (kf, path, "outbound", "ack_per_day", 3, 0, 1000,
                             &n, error))
      return NULL;
    cfg->ack_per_day = n;
    if (!intake_config_uint (kf, path, "outbound", "loop_messages", 10, 2,
                             100000, &n, error))
      return NULL;
    cfg->loop_messages = n;
    if (!intake_config_uint (kf, path, "outbound", "loop_minutes", 10, 1,
                             10080, &n, error))
      return NULL;
    cfg->loop_minutes = n;
    if (!intake_config_uint (kf, path, "outbound", "retry_for", 172800, 60,
                             30 * 86400, &n, error))
      return NULL;
    cfg->retry_for_s = n;
    tpl = intake_config_string (kf, "outbound", "templates", "templates");
    cfg->templates_dir = intake_config_path (dir, tpl);
    cfg->case_url = intake_config_string (kf, "outbound", "case_url", NULL);
  }
  cfg->http_listen = intake_config_string (kf, "http", "listen", NULL);
  if (cfg->http_listen != NULL && *cfg->http_listen == '\0')
    g_clear_pointer (&cfg->http_listen, g_free);
  {
    g_autofree char *fd = intake_config_string (kf, "http", "forms", "forms");
    cfg->forms_dir = intake_config_path (dir, fd);
    guint64 n;
    if (!intake_config_uint (kf, path, "http", "max_body", 12 * 1024 * 1024,
                             64 * 1024, 1024 * 1024 * 1024, &n, error))
      return NULL;
    cfg->http_max_body = n;
    if (!intake_config_uint (kf, path, "http", "form_rate", 20, 1, 100000,
                             &n, error))
      return NULL;
    cfg->http_form_rate = n;
    if (!intake_config_uint (kf, path, "http", "request_timeout", 60, 1, 3600,
                             &n, error))
      return NULL;
    cfg->http_request_timeout = n;
    cfg->http_origin = intake_config_string (kf, "http", "public_origin",
                                             NULL);
    if (cfg->http_origin == NULL && cfg->http_listen != NULL)
      cfg->http_origin = g_strconcat ("http://", cfg->http_listen, NULL);
  }
  {
    g_autofree char *pf = intake_config_string (kf, "intake", "pid_file",
                                                NULL);
    if (pf != NULL && *pf)
      cfg->pid_file = intake_config_path (dir, pf);
    else
      {
        g_autofree char *ddir = g_path_get_dirname (cfg->database);
        cfg->pid_file = g_build_filename (ddir, "intaked.pid", NULL);
      }
  }
  return g_steal_pointer (&cfg);
}

static void
intake_queue_config_free (intake_queue_config *q)
{
  if (q == NULL)
    return;
  g_free (q->name);
  g_free (q->notify);
  g_free (q->webhook_url);
  g_free (q->webhook_secret_file);
  g_free (q);
}

const intake_queue_config *
intake_config_queue (const intake_config *cfg, const char *name)
{
  for (guint i = 0; cfg->queues && i < cfg->queues->len; i++)
    {
      const intake_queue_config *q = cfg->queues->pdata[i];
      if (g_strcmp0 (q->name, name) == 0)
        return q;
    }
  return NULL;
}

static void
intake_imap_config_free (intake_imap_config *m)
{
  if (m == NULL)
    return;
  g_free (m->name);
  g_free (m->host);
  g_free (m->ca_file);
  g_free (m->user);
  g_free (m->password_file);
  g_free (m->token_file);
  g_free (m->folder);
  g_free (m->processed_folder);
  g_free (m->recipient);
  g_free (m);
}

const intake_imap_config *
intake_config_imap (const intake_config *cfg, const char *name)
{
  for (guint i = 0; cfg->imap && i < cfg->imap->len; i++)
    {
      const intake_imap_config *m = cfg->imap->pdata[i];
      if (g_strcmp0 (m->name, name) == 0)
        return m;
    }
  return NULL;
}

static gboolean
intake_config_loopback (const char *host)
{
  return g_strcmp0 (host, "127.0.0.1") == 0 || g_strcmp0 (host, "::1") == 0
         || g_strcmp0 (host, "localhost") == 0
         || g_str_has_prefix (host, "127.");
}

/* [imap NAME] sections: one IMAP child each.  */
static gboolean
intake_config_load_imap (intake_config *cfg, GKeyFile *kf, const char *dir,
                         GError **error)
{
  g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);
  const char *path = cfg->path;

  cfg->imap = g_ptr_array_new_with_free_func (
      (GDestroyNotify) intake_imap_config_free);
  for (guint i = 0; groups[i]; i++)
    {
      const char *g = groups[i];
      intake_imap_config *m;
      g_autofree char *tls = NULL;
      g_autofree char *mode = NULL;
      g_autofree char *pw = NULL;
      g_autofree char *tok = NULL;
      g_autofree char *ca = NULL;
      guint64 n;

      if (!g_str_has_prefix (g, "imap "))
        continue;
      m = g_new0 (intake_imap_config, 1);
      g_ptr_array_add (cfg->imap, m);
      m->name = g_strstrip (g_strdup (g + 5));
      for (const char *c = m->name; *c; c++)
        if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_')
          {
            g_set_error (error, INTAKE_CONFIG_ERROR,
                         INTAKE_CONFIG_ERROR_VALUE,
                         "%s: [%s]: a mailbox name is letters, digits, - and"
                         " _", path, g);
            return FALSE;
          }
      m->host = intake_config_string (kf, g, "host", NULL);
      m->user = intake_config_string (kf, g, "user", NULL);
      if (m->host == NULL || m->user == NULL || *m->name == '\0')
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [%s] needs host and user", path, g);
          return FALSE;
        }
      tls = intake_config_string (kf, g, "tls", "implicit");
      if (strcmp (tls, "implicit") == 0)
        m->tls = INTAKE_IMAP_TLS_IMPLICIT;
      else if (strcmp (tls, "starttls") == 0)
        m->tls = INTAKE_IMAP_TLS_STARTTLS;
      else if (strcmp (tls, "plain") == 0)
        m->tls = INTAKE_IMAP_TLS_PLAIN;
      else
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [%s] tls = %s: expected implicit, starttls or"
                       " plain", path, g, tls);
          return FALSE;
        }
      if (m->tls == INTAKE_IMAP_TLS_PLAIN && !intake_config_loopback (m->host))
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [%s] tls = plain is allowed only to loopback;"
                       " %s would see the password in clear", path, g,
                       m->host);
          return FALSE;
        }
      if (!intake_config_uint (kf, path, g, "port",
                               m->tls == INTAKE_IMAP_TLS_IMPLICIT ? 993 : 143,
                               1, 65535, &n, error))
        return FALSE;
      m->port = n;
      if (!intake_config_uint (kf, path, g, "poll_interval", 60, 5, 86400,
                               &n, error))
        return FALSE;
      m->poll_interval_s = n;
      if (!intake_config_uint (kf, path, g, "idle_refresh", 1740, 10, 1740,
                               &n, error))
        return FALSE;
      m->idle_refresh_s = n;
      pw = intake_config_string (kf, g, "password_file", NULL);
      tok = intake_config_string (kf, g, "token_file", NULL);
      ca = intake_config_string (kf, g, "ca_file", NULL);
      m->password_file = intake_config_path (dir, pw);
      m->token_file = intake_config_path (dir, tok);
      m->ca_file = intake_config_path (dir, ca);
      if ((m->password_file == NULL) == (m->token_file == NULL))
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [%s] needs exactly one of password_file and"
                       " token_file", path, g);
          return FALSE;
        }
      m->folder = intake_config_string (kf, g, "folder", "INBOX");
      m->processed_folder = intake_config_string (kf, g, "processed_folder",
                                                  "Processed");
      if (g_strcmp0 (m->folder, m->processed_folder) == 0)
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [%s] folder and processed_folder are the same",
                       path, g);
          return FALSE;
        }
      mode = intake_config_string (kf, g, "mode", "idle");
      if (strcmp (mode, "idle") != 0 && strcmp (mode, "poll") != 0)
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [%s] mode = %s: expected idle or poll", path, g,
                       mode);
          return FALSE;
        }
      m->idle = strcmp (mode, "idle") == 0;
      m->recipient = intake_config_string (kf, g, "recipient", NULL);
      if (m->recipient == NULL)
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [%s] needs recipient: the intake mailbox this"
                       " IMAP mailbox stands for (routing reads it)",
                       path, g);
          return FALSE;
        }
      for (guint j = 0; j + 1 < cfg->imap->len; j++)
        if (strcmp (((intake_imap_config *) cfg->imap->pdata[j])->name,
                    m->name) == 0)
          {
            g_set_error (error, INTAKE_CONFIG_ERROR,
                         INTAKE_CONFIG_ERROR_VALUE,
                         "%s: [%s] given twice", path, g);
            return FALSE;
          }
    }
  return TRUE;
}

/* [queue NAME] sections (notification address, webhook), [webhooks] and
 * [languages].  */
static gboolean
intake_config_load_queues (intake_config *cfg, GKeyFile *kf, const char *dir,
                           GError **error)
{
  g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);
  const char *path = cfg->path;
  guint64 n;

  cfg->queues = g_ptr_array_new_with_free_func (
      (GDestroyNotify) intake_queue_config_free);
  for (guint i = 0; groups[i]; i++)
    {
      const char *g = groups[i];
      intake_queue_config *q;
      g_autofree char *secret = NULL;
      g_autofree char *content = NULL;
      g_autofree char *special = NULL;

      if (!g_str_has_prefix (g, "queue "))
        continue;
      q = g_new0 (intake_queue_config, 1);
      g_ptr_array_add (cfg->queues, q);
      q->name = g_strstrip (g_strdup (g + 6));
      if (*q->name == '\0' || intake_config_queue (cfg, q->name) != q)
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [%s]: no queue name, or given twice", path, g);
          return FALSE;
        }
      q->notify = intake_config_string (kf, g, "notify", NULL);
      if (q->notify != NULL)
        {
          g_autofree char *lower = g_ascii_strdown (q->notify, -1);
          const char *at = strrchr (lower, '@');
          gboolean bad = at == NULL || at == lower || at[1] == '\0';

          for (const char *c = lower; !bad && *c; c++)
            bad = (guchar) *c <= ' ' || *c == '<' || *c == '>' || *c == ','
                  || (guchar) *c >= 0x7f;
          if (bad)
            {
              g_set_error (error, INTAKE_CONFIG_ERROR,
                           INTAKE_CONFIG_ERROR_VALUE,
                           "%s: [%s] notify = %s: expected one address",
                           path, g, q->notify);
              return FALSE;
            }
          /* our own mailbox would file the notification as a new case,
           * which would be announced again: a loop */
          if (g_hash_table_contains (cfg->mailboxes, lower)
              || g_hash_table_contains (cfg->domains, at + 1))
            {
              g_set_error (error, INTAKE_CONFIG_ERROR,
                           INTAKE_CONFIG_ERROR_VALUE,
                           "%s: [%s] notify = %s is one of intake's own"
                           " addresses or domains (a mail loop)", path, g,
                           q->notify);
              return FALSE;
            }
        }
      {
        g_autofree char *mode = intake_config_string (kf, g, "notify_mode",
                                                      "immediate");
        if (strcmp (mode, "off") == 0)
          g_clear_pointer (&q->notify, g_free);
        else if (strcmp (mode, "digest") == 0)
          q->notify_digest = TRUE;
        else if (strcmp (mode, "immediate") != 0)
          {
            g_set_error (error, INTAKE_CONFIG_ERROR,
                         INTAKE_CONFIG_ERROR_VALUE,
                         "%s: [%s] notify_mode = %s: expected off, immediate"
                         " or digest", path, g, mode);
            return FALSE;
          }
      }
      q->webhook_url = intake_config_string (kf, g, "webhook_url", NULL);
      secret = intake_config_string (kf, g, "webhook_secret_file", NULL);
      q->webhook_secret_file = intake_config_path (dir, secret);
      if (q->webhook_url != NULL)
        {
          g_autoptr (GUri) uri = g_uri_parse (q->webhook_url,
                                              G_URI_FLAGS_NONE, NULL);
          const char *scheme = uri ? g_uri_get_scheme (uri) : NULL;
          const char *host = uri ? g_uri_get_host (uri) : NULL;

          if (uri == NULL || host == NULL || *host == '\0'
              || (g_strcmp0 (scheme, "https") != 0
                  && g_strcmp0 (scheme, "http") != 0))
            {
              g_set_error (error, INTAKE_CONFIG_ERROR,
                           INTAKE_CONFIG_ERROR_VALUE,
                           "%s: [%s] webhook_url = %s: expected an http or"
                           " https URL", path, g, q->webhook_url);
              return FALSE;
            }
          /* case data in clear over the network: only to this machine */
          if (g_strcmp0 (scheme, "http") == 0
              && !intake_config_loopback (host))
            {
              g_set_error (error, INTAKE_CONFIG_ERROR,
                           INTAKE_CONFIG_ERROR_VALUE,
                           "%s: [%s] webhook_url: http is allowed only to"
                           " loopback; use https", path, g);
              return FALSE;
            }
          if (q->webhook_secret_file == NULL)
            {
              g_set_error (error, INTAKE_CONFIG_ERROR,
                           INTAKE_CONFIG_ERROR_VALUE,
                           "%s: [%s] webhook_url needs webhook_secret_file",
                           path, g);
              return FALSE;
            }
        }
      content = intake_config_string (kf, g, "webhook_content", "metadata");
      if (strcmp (content, "metadata") == 0)
        q->webhook_content = INTAKE_WEBHOOK_METADATA;
      else if (strcmp (content, "full") == 0)
        q->webhook_content = INTAKE_WEBHOOK_FULL;
      else
        {
          g_set_error (error, INTAKE_CONFIG_ERROR, INTAKE_CONFIG_ERROR_VALUE,
                       "%s: [%s] webhook_content = %s: expected metadata or"
                       " full", path, g, content);
          return FALSE;
        }
      special = intake_config_string (kf, g, "webhook_special", "no");
      q->webhook_special = g_ascii_strcasecmp (special, "yes") == 0;
    }
  if (!intake_config_uint (kf, path, "webhooks", "retry_for", 86400, 60,
                           30 * 86400, &n, error))
    return FALSE;
  cfg->webhook_retry_for_s = n;
  if (!intake_config_uint (kf, path, "webhooks", "timeout", 30, 1, 300, &n,
                           error))
    return FALSE;
  cfg->webhook_timeout_s = n;
  {
    g_autofree char *ca = intake_config_string (kf, "webhooks", "ca_file",
                                                NULL);
    g_auto (GStrv) keys = g_key_file_get_keys (kf, "languages", NULL, NULL);

    cfg->webhook_ca = intake_config_path (dir, ca);
    cfg->languages = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                            g_free);
    for (guint i = 0; keys && keys[i]; i++)
      {
        g_autofree char *v = intake_config_string (kf, "languages", keys[i],
                                                   "en");
        if (strcmp (v, "en") != 0 && strcmp (v, "cy") != 0)
          {
            g_set_error (error, INTAKE_CONFIG_ERROR,
                         INTAKE_CONFIG_ERROR_VALUE,
                         "%s: [languages] %s = %s: expected en or cy", path,
                         keys[i], v);
            return FALSE;
          }
        g_hash_table_insert (cfg->languages, g_ascii_strdown (keys[i], -1),
                             g_steal_pointer (&v));
      }
  }
  return TRUE;
}

void
intake_config_free (intake_config *cfg)
{
  if (cfg == NULL)
    return;
  g_free (cfg->path);
  g_free (cfg->hostname);
  g_free (cfg->user);
  g_free (cfg->parse_user);
  g_free (cfg->database);
  g_free (cfg->master_key);
  g_free (cfg->vault);
  g_free (cfg->retention);
  g_free (cfg->smtp_listen);
  g_free (cfg->tls_certificate);
  g_free (cfg->tls_key);
  if (cfg->mailboxes)
    g_hash_table_unref (cfg->mailboxes);
  if (cfg->domains)
    g_hash_table_unref (cfg->domains);
  g_free (cfg->default_queue);
  g_free (cfg->ref_prefix);
  g_free (cfg->special_categories);
  g_free (cfg->rules);
  g_free (cfg->kind_model);
  g_free (cfg->topic_model);
  g_free (cfg->holidays);
  g_free (cfg->nation);
  if (cfg->clocks)
    g_hash_table_unref (cfg->clocks);
  g_free (cfg->pid_file);
  if (cfg->imap)
    g_ptr_array_unref (cfg->imap);
  if (cfg->queues)
    g_ptr_array_unref (cfg->queues);
  if (cfg->languages)
    g_hash_table_unref (cfg->languages);
  g_free (cfg->webhook_ca);
  g_free (cfg->case_url);
  g_free (cfg->http_listen);
  g_free (cfg->forms_dir);
  g_free (cfg->http_origin);
  g_free (cfg->smarthost);
  g_free (cfg->smarthost_ca);
  g_free (cfg->smarthost_user);
  g_free (cfg->smarthost_password_file);
  g_free (cfg->templates_dir);
  g_free (cfg);
}

smtp_rcpt_verdict
intake_config_rcpt_check (const char *address, gpointer data)
{
  intake_config *cfg = data;
  g_autofree char *lower = g_ascii_strdown (address, -1);
  const char *at = strrchr (lower, '@');
  g_autofree char *base = NULL;
  const char *plus;

  if (at == NULL)
    return SMTP_RCPT_UNKNOWN;       /* "postmaster" alone: not configured */
  if (!g_hash_table_contains (cfg->domains, at + 1))
    return SMTP_RCPT_RELAY;
  if (g_hash_table_contains (cfg->mailboxes, lower))
    return SMTP_RCPT_OK;
  /* box+detail@domain: the detail carries references and MACs for later
   * threading; the mailbox is the part before '+'.  */
  plus = memchr (lower, '+', (gsize) (at - lower));
  if (plus != NULL && plus > lower)
    {
      base = g_strdup_printf ("%.*s%s", (int) (plus - lower), lower, at);
      if (g_hash_table_contains (cfg->mailboxes, base))
        return SMTP_RCPT_OK;
    }
  return SMTP_RCPT_UNKNOWN;
}
