/*
 * etpan_tls.h - verifying the certificate a server showed to libetpan.
 *
 * libetpan's TLS (OpenSSL underneath) checks neither the chain nor the
 * host name.  After the handshake, the IMAP fetcher and the SMTP sender
 * hand the chain to GIO's certificate database, which does both.
 */
#ifndef INTAKE_ETPAN_TLS_H
#define INTAKE_ETPAN_TLS_H

#include <gio/gio.h>
#include <libetpan/libetpan.h>

/* TRUE if the chain @stream received verifies against @db (nullable: an
 * error) for @host:@port, host name included.  The error names the host
 * and what failed (unknown-ca, wrong-host, expired, not-yet-valid).  */
gboolean etpan_tls_verify (mailstream *stream, GTlsDatabase *db,
                           const char *host, guint16 port, GError **error);

#endif
