/*
 * intake_config.h - intake.conf: what the processes are told at start.
 *
 * A GKeyFile ("INI") file.  Relative paths in it are relative to the
 * directory of the file itself, so conf/intake.conf can name ../var/.
 * Every tunable limit is range-checked when the file loads; an error names
 * the file, the section and key, and the allowed range.  See
 * docs/configuration.md and docs/limits.md.
 */
#ifndef INTAKE_CONFIG_H
#define INTAKE_CONFIG_H

#include <glib.h>

#include "intake/smtp_session.h"

#define INTAKE_CONFIG_ERROR (intake_config_error_quark ())
GQuark intake_config_error_quark (void);
typedef enum {
  INTAKE_CONFIG_ERROR_READ,
  INTAKE_CONFIG_ERROR_VALUE,
  INTAKE_CONFIG_ERROR_PERMISSION,
} intake_config_error;

/* An IMAP mailbox intake empties: [imap NAME].  */
typedef enum {
  INTAKE_IMAP_TLS_IMPLICIT,    /* TLS from the first byte (993) */
  INTAKE_IMAP_TLS_STARTTLS,    /* STARTTLS required; no fallback */
  INTAKE_IMAP_TLS_PLAIN,       /* loopback only */
} intake_imap_tls;

typedef struct {
  char *name;                  /* from the section: "[imap enquiries]" */
  char *host;
  guint port;
  intake_imap_tls tls;
  char *ca_file;               /* (nullable) else the system store */
  char *user;
  char *password_file;         /* (nullable) mode 0600 */
  char *token_file;            /* (nullable) XOAUTH2 bearer token, 0600;
                                * a second line may hold its expiry (unix
                                * seconds) */
  char *folder;                /* INBOX */
  char *processed_folder;      /* where taken mail is moved */
  gboolean idle;               /* mode = idle (default) or poll */
  guint poll_interval_s;
  guint idle_refresh_s;        /* re-issue IDLE (RFC 2177: < 30 min) */
  char *recipient;             /* the intake mailbox it stands for */
} intake_imap_config;

/* What a department queue is told: [queue NAME] (docs/webhooks.md,
 * docs/outbound.md).  */
typedef enum {
  INTAKE_WEBHOOK_METADATA,     /* reference, kind, queue, status, dates */
  INTAKE_WEBHOOK_FULL,         /* also the message's sender and text */
} intake_webhook_content;

typedef struct {
  char *name;                  /* from the section: "[queue housing]" */
  char *notify;                /* (nullable) department address: work that
                                * arrives is announced there */
  gboolean notify_digest;      /* notify_mode = digest: once an hour */
  char *webhook_url;           /* (nullable) http(s) URL the CRM listens on */
  char *webhook_secret_file;   /* (nullable) HMAC secret, mode 0600 */
  intake_webhook_content webhook_content;
  gboolean webhook_special;    /* full content of special-category cases
                                * too (UK GDPR art. 9: off by default) */
} intake_queue_config;

typedef struct {
  char *path;                  /* the file read */
  char *hostname;              /* [intake] hostname */
  char *user;                  /* [intake] user: SMTP children run as this */
  char *parse_user;            /* [parser] user: parse workers (default:
                                * [intake] user); a user of its own keeps a
                                * compromised worker out of the listener */
  char *database;              /* [store] database (absolute) */
  char *master_key;            /* [store] master_key (absolute) */
  char *vault;                 /* (nullable) [store] vault (absolute);
                                * NULL: beside the database */
  char *retention;             /* (nullable) [retention] schedule
                                * (absolute); NULL: the built-in one */
  guint64 min_free_bytes;      /* [store] min_free_space */
  guint spool_key_lifetime_s;  /* [store] spool_key_lifetime: seconds a
                                * spool key seals new mail (a day) */

  char *smtp_listen;           /* [smtp] listen, host:port */
  guint smtp_processes;        /* [smtp] processes */
  guint max_sessions;          /* [smtp] max_sessions */
  guint max_per_client;        /* [smtp] max_sessions_per_client */
  char *tls_certificate;       /* (nullable) [smtp] tls_certificate */
  char *tls_key;               /* (nullable) [smtp] tls_key */
  smtp_session_config session; /* limits; hostname points into this struct */

  guint parse_workers;         /* [parser] workers */
  guint parse_timeout_s;       /* [parser] timeout: seconds per message */
  guint parse_memory_mb;       /* [parser] memory: address space, MiB */
  guint parse_max_failures;    /* [parser] max_failures before quarantine */
  char *special_categories;    /* (nullable) [parser] special_categories */

  GHashTable *mailboxes;       /* lower-case address -> label */
  GHashTable *domains;         /* lower-case domain -> itself */
  char *default_queue;         /* [cases] default_queue */
  char *ref_prefix;            /* [cases] reference_prefix */

  char *rules;                 /* (nullable) [routing] rules: without it
                                * every case goes to [cases] default_queue */
  char *kind_model;            /* (nullable) [routing] kind_model */
  char *topic_model;           /* (nullable) [routing] topic_model */
  char *holidays;              /* (nullable) [clocks] holidays */
  char *nation;                /* [clocks] nation */
  GHashTable *clocks;          /* [clocks] kind or service-level class ->
                                * rule text ("20 working days") */
  char *pid_file;              /* [intake] pid_file (default: intaked.pid
                                * beside the database) */
  GPtrArray *imap;             /* intake_imap_config *, [imap NAME] */

  char *http_listen;           /* (nullable) [http] listen, host:port */
  char *forms_dir;             /* [http] forms (default forms/ beside the
                                * configuration) */
  guint64 http_max_body;       /* [http] max_body, bytes */
  guint http_request_timeout;  /* [http] request_timeout: seconds to read a
                                * whole request, headers and body */
  guint http_form_rate;        /* [http] form_rate: submissions per minute
                                * per client address */
  char *http_origin;           /* [http] public_origin: what Origin a
                                * browser sends for our own pages */

  char *smarthost;             /* (nullable) [outbound] smarthost host:port;
                                * without it nothing is sent */
  gboolean smarthost_starttls; /* [outbound] starttls (required unless the
                                * smarthost is loopback) */
  char *smarthost_ca;          /* (nullable) [outbound] ca_file */
  char *smarthost_user;        /* (nullable) [outbound] user */
  char *smarthost_password_file; /* (nullable) [outbound] password_file */
  gboolean acks;               /* [outbound] acknowledgements */
  guint ack_per_day;           /* [outbound] ack_per_day */
  guint loop_messages;         /* [outbound] loop_messages */
  guint loop_minutes;          /* [outbound] loop_minutes */
  guint retry_for_s;           /* [outbound] retry_for */
  char *templates_dir;         /* [outbound] templates */
  char *case_url;              /* (nullable) [outbound] case_url: a link
                                * with {{ref}} put in notifications */

  GPtrArray *queues;           /* intake_queue_config *, [queue NAME] */
  guint webhook_retry_for_s;   /* [webhooks] retry_for */
  guint webhook_timeout_s;     /* [webhooks] timeout */
  char *webhook_ca;            /* (nullable) [webhooks] ca_file */
  GHashTable *languages;       /* [languages] lower-case mailbox address or
                                * "form:NAME" -> "cy" / "en" */
} intake_config;

/* (transfer none) The [imap NAME] mailbox, or NULL.  */
const intake_imap_config *intake_config_imap (const intake_config *cfg,
                                              const char *name);

/* (transfer none) The [queue NAME] settings, or NULL.  */
const intake_queue_config *intake_config_queue (const intake_config *cfg,
                                                const char *name);

/* (transfer full) Load and check @path.  Refuses a file writable by group
 * or other.  */
intake_config *intake_config_load (const char *path, GError **error);
void intake_config_free (intake_config *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (intake_config, intake_config_free)

/* What RCPT TO gets for @address: a configured mailbox (plus-addressed
 * forms "box+detail@domain" included), one of our domains without such a
 * mailbox, or someone else's domain (we never relay).  */
smtp_rcpt_verdict intake_config_rcpt_check (const char *address,
                                            gpointer cfg);

#endif
