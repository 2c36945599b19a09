/*
 * store_keys.h - the key hierarchy and record encryption.
 *
 * A 32-byte master key lives in a file (mode 0600; refused if missing, of the
 * wrong size, or readable by group or other).  Sub-keys are derived from it
 * with libsodium's KDF: key-wrapping key, spool key, blind-index key, audit
 * MAC key.  Every value is sealed with XChaCha20-Poly1305 under a fresh
 * random nonce, with associated data naming table, column, row and owner,
 * so a ciphertext moved to another place fails to open.  There is no
 * plaintext fallback: a missing or wrong key is an error.
 *
 * The key-wrapping key has versions (store_keys_add_version(), `intakectl
 * keys rotate`); a wrapped data key names the version that wrapped it.
 *
 * Key material lives in sodium_malloc()ed memory (guard pages, mlock where
 * the system allows) and is wiped when freed.
 */
#ifndef INTAKE_STORE_KEYS_H
#define INTAKE_STORE_KEYS_H

#include <glib.h>

#define STORE_KEY_BYTES 32

/* A key file holds one 32-byte master key per version, oldest first; the
 * last is current.  */
#define STORE_KEYS_MAX_VERSIONS 64

typedef struct store_keys store_keys;

typedef enum {
  STORE_KEY_WRAP = 1,        /* wraps each data subject's data key */
  STORE_KEY_SPOOL = 2,       /* raw messages and envelopes in the spool */
  STORE_KEY_BLIND = 3,       /* blind indexes (keyed BLAKE2b) */
  STORE_KEY_AUDIT = 4,       /* audit chain MAC */
  STORE_KEY_FORMS = 5,       /* web form tokens (CSRF) and API token
                              * hashes */
  STORE_KEY_STATS = 6,       /* anonymised text and other values that
                              * belong to no person (docs/rights.md) */
} store_key_id;

#define STORE_KEYS_ERROR (store_keys_error_quark ())
GQuark store_keys_error_quark (void);
typedef enum {
  STORE_KEYS_ERROR_MISSING,     /* no key file */
  STORE_KEYS_ERROR_MODE,        /* readable by group or other */
  STORE_KEYS_ERROR_SIZE,        /* not 32 bytes */
  STORE_KEYS_ERROR_EXISTS,      /* keygen would overwrite */
  STORE_KEYS_ERROR_IO,
  STORE_KEYS_ERROR_CRYPTO,      /* a tag did not verify: tampered or moved */
} store_keys_error;

/* Initialise libsodium; aborts if it cannot.  Idempotent.  */
void store_keys_init (void);

/* (transfer full) Load the master key file at @path and derive the sub-keys.
 * Refuses a missing file, a file of another size, or one with any group or
 * other permission bit.  */
store_keys *store_keys_load (const char *path, GError **error);

/* Create a new random master key file at @path, mode 0600 (umask 077 while
 * writing, fsync'd).  Refuses to overwrite an existing file.  */
gboolean store_keys_generate (const char *path, GError **error);

/* Append a new random master key version to the key file at @path
 * (written beside it and renamed over it, fsync'd).  Returns the new
 * version, or 0 with @error.  Data keys are re-wrapped by the store
 * (store_rewrap_batch()); nothing is re-encrypted.  */
guint store_keys_add_version (const char *path, GError **error);

void store_keys_free (store_keys **keys);

/* The current (highest) master key version.  */
guint store_keys_version (const store_keys *keys);

/* The master key version a wrapped data key was wrapped with, or 0 if the
 * value is malformed.  */
guint store_keys_wrapped_version (const void *wrapped, gsize len);

/* A value that proves, without revealing it, which key-wrapping key a
 * version has: kept in the database so that a wrong key file is refused at
 * start instead of failing row by row.  */
void store_keys_check_value (const store_keys *keys, guint version,
                             guint8 out[32]);

/* (transfer none) A derived sub-key, STORE_KEY_BYTES long.  */
const guint8 *store_keys_get (const store_keys *keys, store_key_id id);

/* Build associated data "table|column|row|owner|version" for sealing.
 * (transfer full) */
GBytes *store_keys_aad (const char *table, const char *column, gint64 row,
                        gint64 owner, guint version);
/* The same bytes written to @buf, which holds STORE_KEYS_AAD_SIZE (@tl,
 * @cl) bytes (@tl, @cl: the names' lengths); their length (a NUL
 * follows).  For a caller that keeps them on its stack.  */
#define STORE_KEYS_AAD_SIZE(tl, cl) ((tl) + (cl) + 4 + 2 * 20 + 10 + 1)
gsize store_keys_aad_into (char *buf, const char *table, gsize tl,
                           const char *column, gsize cl, gint64 row,
                           gint64 owner, guint version);

/* (transfer full) nonce || ciphertext || tag of @plain under @key.  */
GBytes *store_keys_seal (const guint8 *key, GBytes *aad,
                         const void *plain, gsize plain_len);
/* The same with the caller's nonce (STORE_KEYS_NONCE_BYTES), which must be
 * fresh from randombytes_buf () and used for this one value only: a writer
 * sealing several values draws their nonces in one call.  */
#define STORE_KEYS_NONCE_BYTES 24
GBytes *store_keys_seal_nonce (const guint8 *key, GBytes *aad,
                               const guint8 *nonce, const void *plain,
                               gsize plain_len);
/* The same with the associated data as a span (@aad_len bytes).  */
GBytes *store_keys_seal_nonce_ad (const guint8 *key, const void *aad,
                                  gsize aad_len, const guint8 *nonce,
                                  const void *plain, gsize plain_len);

/* (transfer full) (nullable) the plaintext, or NULL with
 * STORE_KEYS_ERROR_CRYPTO if the tag does not verify.  */
GBytes *store_keys_open (const guint8 *key, GBytes *aad,
                         const void *sealed, gsize sealed_len,
                         GError **error);

/* Keyed BLAKE2b-256 of @data under the blind-index key: a lookup token that
 * reveals nothing without the key.  @out must hold 32 bytes.  */
void store_keys_blind (const store_keys *keys, const char *context,
                       const void *data, gsize len, guint8 out[32]);

/* (transfer full) A new random data key in sodium_malloc memory, and its
 * wrapped form; free the key with store_keys_data_key_free().  */
guint8 *store_keys_data_key_new (void);
void store_keys_data_key_free (guint8 *key);
GBytes *store_keys_wrap (const store_keys *keys, const guint8 *data_key,
                         gint64 subject_id);
/* The same into caller-owned secure memory (STORE_KEY_BYTES): for a thread
 * that handles many subjects and keeps one sodium_malloc buffer for it.  */
void store_keys_data_key_fill (guint8 *out);
gboolean store_keys_unwrap_into (const store_keys *keys, const void *wrapped,
                                 gsize len, gint64 subject_id, guint8 *out,
                                 GError **error);
/* (transfer full) (nullable) */
guint8 *store_keys_unwrap (const store_keys *keys, const void *wrapped,
                           gsize len, gint64 subject_id, GError **error);


/* ------------------------------------------------------------ key vault */

/* Part of each subject's key lives outside the database, in the key vault
 * (store_vault.c, docs/rights.md): a random per-subject secret.  A data key
 * wrapped "vaulted" is sealed under BLAKE2b-256(key-wrapping key of its
 * version, context || subject id || secret), so a copy of the database --
 * even with the master key -- does not open it once the vault has
 * forgotten the secret (crypto-shredding).  */
#define STORE_VAULT_SECRET_BYTES 32

/* Whether @wrapped was wrapped with a vault secret.  */
gboolean store_keys_wrapped_vaulted (const void *wrapped, gsize len);

/* (transfer full) @data_key wrapped with the current version and @secret
 * (STORE_VAULT_SECRET_BYTES).  */
GBytes *store_keys_wrap_vaulted (const store_keys *keys,
                                 const guint8 *data_key, gint64 subject_id,
                                 const guint8 *secret);

/* Unwrap either form: @secret (nullable) is needed for a vaulted one; a
 * vaulted key without it fails with STORE_KEYS_ERROR_CRYPTO.  @out:
 * STORE_KEY_BYTES of secure memory, also the wrapping key's scratch (wiped
 * on failure); it must not overlap @secret.  */
gboolean store_keys_unwrap_secret_into (const store_keys *keys,
                                        const void *wrapped, gsize len,
                                        gint64 subject_id,
                                        const guint8 *secret, guint8 *out,
                                        GError **error);

/* A fresh random vault secret into @out (STORE_VAULT_SECRET_BYTES).  */
void store_keys_secret_fill (guint8 *out);

#endif
