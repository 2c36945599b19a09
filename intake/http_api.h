/*
 * http_api.h - the department queue API, /api/v1 (docs/api.md), and the
 * `intakectl tokens` commands that issue its tokens.
 *
 * Departments authenticate with a bearer token (Authorization: Bearer
 * itk_...).  A token holds queues: cases of other queues answer 404, the
 * same as cases that do not exist.  Special-category details need the
 * token's special grant.  Every read of personal data is audited with the
 * token's name ("api:NAME"); every change is audited by the store in the
 * transaction that makes it.
 */
#ifndef INTAKE_HTTP_API_H
#define INTAKE_HTTP_API_H

#include <glib.h>

#include "intake/http_server.h"
#include "intake/intake_config.h"
#include "store/store.h"

/* Authentication failures (401) from one client address within
 * HTTP_API_FAIL_WINDOW_S before every request from it gets 429: guessing
 * a 256-bit token is hopeless anyway, this keeps scanners from filling
 * the audit trail (SECURITY-TESTS 102).  */
#define HTTP_API_FAIL_MAX 10
#define HTTP_API_FAIL_WINDOW_S 60
/* Cases one list request returns at most (and by default).  */
#define HTTP_API_LIST_MAX 500
#define HTTP_API_LIST_DEFAULT 50
/* Characters of a re-routing reason (it is audited as a word count only). */
#define HTTP_API_REASON_MAX 2000

/* Register the API with @h (http_server_set_api).  Its state lives as
 * long as the process.  */
void http_api_register (http_server *h);

/* `intakectl tokens ...`: @args (transfer none) holds "tokens", the
 * subcommand and its arguments:
 *   tokens create --name N --queue Q [--queue R ...] [--special-category]
 *   tokens list [--json]
 *   tokens revoke NAME
 * Returns a sysexits.h code.  The token is printed once by create and
 * never stored (its keyed hash is).  */
int http_api_tokens_cli (intake_config *cfg, const store_keys *keys,
                         store *st, GPtrArray *args);

#endif
