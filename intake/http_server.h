/*
 * http_server.h - intake over HTTP (libsoup 3, on the master's loop):
 * web forms for citizens (/forms/ID), /healthz and /metrics, and the
 * department queue API (/api/v1/, docs/api.md).
 */
#ifndef INTAKE_HTTP_SERVER_H
#define INTAKE_HTTP_SERVER_H

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "intake/intake_config.h"
#include "intake/master.h"
#include "intake/pipeline.h"
#include "store/store.h"

typedef struct http_server http_server;

/* (transfer full) Listen on [http] listen; NULL with @error if it cannot
 * (the forms do not load, the address is taken).  */
http_server *http_server_new (intake_config *cfg, const store_keys *keys,
                              store *st, intake_master *m, pipeline *pl,
                              GError **error);
void http_server_free (http_server **h);

/* The API handler (intake/http_api.c) registers itself here.  */
typedef void (*http_api_fn) (http_server *h, SoupServerMessage *msg,
                             const char *path, gpointer data);
void http_server_set_api (http_server *h, http_api_fn fn, gpointer data);

/* For the API: what it shares with the server.  */
store *http_server_store (http_server *h);
const store_keys *http_server_keys (http_server *h);
intake_config *http_server_config (http_server *h);

/* Most nesting a JSON body may have (arrays and objects), and most fields a
 * form body may have: json-glib's parser recurses once per level, so a
 * body of 100,000 '[' would end the master on its stack (SECURITY-TESTS
 * 87).  */
#define HTTP_JSON_DEPTH_MAX  32
#define HTTP_FORM_FIELDS_MAX 200

/* (transfer full) (nullable) The JSON object that @data (@len bytes) from
 * outside holds, or NULL with @why (a sentence for the client).  One pass
 * over the text first refuses what json-glib must never see: nesting
 * deeper than HTTP_JSON_DEPTH_MAX, a \u0000 escape in a string (json-glib
 * would hand the string out cut short there), and ' or / outside a string
 * (never JSON, but json-glib's scanner takes them as a string or a
 * comment, in which a '"' would hide the brackets after it).  */
JsonObject *http_json_object (const char *data, gsize len, const char **why);

/* A JSON body with @status; @error_message (nullable) becomes
 * {"error": "..."}.  */
void http_reply_json (SoupServerMessage *msg, guint status, const char *json);
void http_reply_error (SoupServerMessage *msg, guint status,
                       const char *message);

#endif
