/*
 * etpan_tls.c - verifying the certificate a server showed to libetpan:
 * the DER chain becomes PEM, GIO verifies it (etpan_tls.h).
 */
#include "intake/etpan_tls.h"

#include <string.h>

gboolean
etpan_tls_verify (mailstream *stream, GTlsDatabase *db, const char *host,
                  guint16 port, GError **error)
{
  carray *chain = mailstream_get_certificate_chain (stream);
  g_autoptr (GString) pem = g_string_new (NULL);
  g_autoptr (GTlsCertificate) cert = NULL;
  g_autoptr (GSocketConnectable) id = NULL;
  GTlsCertificateFlags flags;
  GError *local = NULL;

  if (chain == NULL || carray_count (chain) == 0)
    {
      if (chain)
        mailstream_certificate_chain_free (chain);
      g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
                   "the server sent no certificate");
      return FALSE;
    }
  for (guint i = 0; i < carray_count (chain); i++)
    {
      MMAPString *der = carray_get (chain, i);
      g_autofree char *b64 = g_base64_encode ((const guchar *) der->str,
                                              der->len);
      gsize b64len = strlen (b64);

      g_string_append (pem, "-----BEGIN CERTIFICATE-----\n");
      for (gsize off = 0; off < b64len; off += 64)
        g_string_append_printf (pem, "%.64s\n", b64 + off);
      g_string_append (pem, "-----END CERTIFICATE-----\n");
    }
  mailstream_certificate_chain_free (chain);
  cert = g_tls_certificate_new_from_pem (pem->str, -1, error);
  if (cert == NULL)
    return FALSE;
  if (db == NULL)
    {
      g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_MISC,
                   "no certificate store");
      return FALSE;
    }
  id = g_network_address_new (host, port);
  flags = g_tls_database_verify_chain (db, cert,
                                       G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER,
                                       id, NULL, G_TLS_DATABASE_VERIFY_NONE,
                                       NULL, &local);
  if (local != NULL)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  if (flags != 0)
    {
      g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
                   "certificate does not verify for %s (flags 0x%x:%s%s%s%s)",
                   host, flags,
                   flags & G_TLS_CERTIFICATE_UNKNOWN_CA ? " unknown-ca" : "",
                   flags & G_TLS_CERTIFICATE_BAD_IDENTITY ? " wrong-host" : "",
                   flags & G_TLS_CERTIFICATE_EXPIRED ? " expired" : "",
                   flags & G_TLS_CERTIFICATE_NOT_ACTIVATED ? " not-yet-valid"
                                                           : "");
      return FALSE;
    }
  return TRUE;
}
