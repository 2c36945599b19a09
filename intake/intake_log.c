/*
 * intake_log.c - the log writer and the client-address token.
 */
#include "intake/intake_log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char *intake_log_role;
static gboolean intake_log_debug;
static guint8 intake_log_salt[16];

static const char *
intake_log_level (GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return "fatal";
  if (level & G_LOG_LEVEL_CRITICAL)
    return "critical";
  if (level & G_LOG_LEVEL_WARNING)
    return "warning";
  if (level & G_LOG_LEVEL_MESSAGE)
    return "notice";
  if (level & G_LOG_LEVEL_INFO)
    return "info";
  return "debug";
}

static GLogWriterOutput
intake_log_writer (GLogLevelFlags level, const GLogField *fields,
                   gsize n_fields, gpointer data)
{
  const char *domain = "intake", *msg = "";
  g_autoptr (GDateTime) now = NULL;
  g_autofree char *stamp = NULL;
  GString *line;

  if ((level & (G_LOG_LEVEL_DEBUG)) && !intake_log_debug)
    return G_LOG_WRITER_HANDLED;
  for (gsize i = 0; i < n_fields; i++)
    {
      if (g_strcmp0 (fields[i].key, "GLIB_DOMAIN") == 0 && fields[i].length < 0)
        domain = fields[i].value;
      else if (g_strcmp0 (fields[i].key, "MESSAGE") == 0
               && fields[i].length < 0)
        msg = fields[i].value;
    }
  now = g_date_time_new_now_utc ();
  stamp = g_date_time_format (now, "%Y-%m-%dT%H:%M:%S.%fZ");
  line = g_string_sized_new (128);
  g_string_append_printf (line, "%.23sZ %s %s %s[%d]: ", stamp,
                          intake_log_level (level), domain,
                          intake_log_role ? intake_log_role : "intake",
                          (int) getpid ());
  for (const guchar *p = (const guchar *) msg; *p && line->len < 4096; p++)
    {
      if (*p < 0x20 || *p == 0x7f)
        g_string_append_printf (line, "\\x%02x", *p);
      else
        g_string_append_c (line, (char) *p);
    }
  g_string_append_c (line, '\n');
  fwrite (line->str, 1, line->len, stderr);
  fflush (stderr);
  g_string_free (line, TRUE);
  return G_LOG_WRITER_HANDLED;
}

void
intake_log_init (const char *role)
{
  static gboolean installed;

  g_free (intake_log_role);
  intake_log_role = g_strdup (role);
  intake_log_debug = g_getenv ("INTAKE_DEBUG") != NULL;
  for (guint i = 0; i < sizeof intake_log_salt; i++)
    intake_log_salt[i] = (guint8) g_random_int ();
  if (!installed)
    g_log_set_writer_func (intake_log_writer, NULL, NULL);
  installed = TRUE;
}

char *
intake_log_client_token (const char *addr)
{
  g_autoptr (GHmac) h = g_hmac_new (G_CHECKSUM_SHA256, intake_log_salt,
                                    sizeof intake_log_salt);

  g_hmac_update (h, (const guchar *) addr, strlen (addr));
  return g_strndup (g_hmac_get_string (h), 10);
}
