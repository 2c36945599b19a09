/*
 * store_ref.c - case references people read, type and quote:
 * PREFIX-YYYY-NNNNNN-C.
 *
 * The check character is sum(d_i * i) mod 31 over the digits of year and
 * serial (i counts from 1), written in an alphabet without look-alikes.
 * With 31 prime and fewer than 31 digits, changing one digit changes the
 * sum by (d - d') * i, and swapping two neighbours by (a - b), neither a
 * multiple of 31: every single-digit error and every adjacent transposition
 * is caught.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store.h"

#include <string.h>

#include <sodium.h>

static const char store_ref_alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ2345679";
G_STATIC_ASSERT (sizeof store_ref_alphabet - 1 == 31);

#define STORE_REF_PREFIX_MAX 10

static char
store_ref_check (const char *digits, gsize n)
{
  guint sum = 0;

  for (gsize i = 0; i < n; i++)
    sum += (guint) (digits[i] - '0') * (guint) (i + 1);
  return store_ref_alphabet[sum % 31];
}

char *
store_ref_format (const char *prefix, guint year, guint64 serial)
{
  g_autofree char *digits = g_strdup_printf ("%04u%06" G_GUINT64_FORMAT,
                                             year, serial);
  gsize n = strlen (digits);

  g_return_val_if_fail (n < 31, NULL);
  return g_strdup_printf ("%s-%.4s-%s-%c", prefix, digits, digits + 4,
                          store_ref_check (digits, n));
}

gboolean
store_ref_valid (const char *ref)
{
  g_auto (GStrv) part = NULL;
  g_autofree char *digits = NULL;
  gsize plen, slen;

  if (ref == NULL)
    return FALSE;
  part = g_strsplit (ref, "-", 5);
  if (g_strv_length (part) != 4)
    return FALSE;
  plen = strlen (part[0]);
  if (plen == 0 || plen > STORE_REF_PREFIX_MAX)
    return FALSE;
  for (gsize i = 0; i < plen; i++)
    if (!g_ascii_isalpha (part[0][i]))
      return FALSE;
  if (strlen (part[1]) != 4)
    return FALSE;
  slen = strlen (part[2]);
  if (slen < 6 || slen > 20 || strlen (part[3]) != 1)
    return FALSE;
  digits = g_strconcat (part[1], part[2], NULL);
  for (gsize i = 0; digits[i]; i++)
    if (!g_ascii_isdigit (digits[i]))
      return FALSE;
  return g_ascii_toupper (part[3][0])
         == store_ref_check (digits, strlen (digits));
}

void
store_ref_mac (const store_keys *keys, const char *ref,
               char out[STORE_REF_MAC_LEN + 1])
{
  guint8 mac[STORE_REF_MAC_LEN / 2];

  crypto_generichash (mac, sizeof mac, (const guint8 *) ref, strlen (ref),
                      store_keys_get (keys, STORE_KEY_FORMS), 32);
  g_snprintf (out, STORE_REF_MAC_LEN + 1, "%02x%02x", mac[0], mac[1]);
}

int
store_ref_plus_check (const store_keys *keys, const char *address,
                      const char *ref)
{
  const char *at = address ? strrchr (address, '@') : NULL;
  const char *plus = at ? memchr (address, '+', (gsize) (at - address))
                        : NULL;
  g_autofree char *detail = NULL;
  gsize n = strlen (ref);
  char mac[STORE_REF_MAC_LEN + 1];

  if (plus == NULL)
    return 0;
  detail = g_ascii_strup (plus + 1, at - plus - 1);
  if (strstr (detail, ref) == NULL)
    return 0;
  store_ref_mac (keys, ref, mac);
  /* exactly REF.MAC: the form we write (outbound/outbox.c) */
  if (strncmp (detail, ref, n) == 0 && detail[n] == '.'
      && strlen (detail + n + 1) == STORE_REF_MAC_LEN
      && g_ascii_strcasecmp (detail + n + 1, mac) == 0)
    return 1;
  return -1;
}
