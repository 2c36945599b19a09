/*
 * store_keys.c - master key file, derived sub-keys, sealing and blind indexes.
 *
 * Owns: the sub-keys, in sodium_malloc memory, wiped on free.
 * Refuses: key files that are missing, of the wrong size, or readable by
 * anyone but the owner; ciphertexts whose tag does not verify.
 */
#define G_LOG_DOMAIN "intake-store"

#include "store/store_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

/* crypto_kdf context: exactly crypto_kdf_CONTEXTBYTES (8) bytes.  */
#define STORE_KEYS_KDF_CONTEXT "intake01"
#define STORE_KEYS_NSUB 6

struct store_keys {
  guint8 *sub;               /* sodium_malloc: STORE_KEYS_NSUB * 32 bytes,
                              * from version 1 */
  guint8 *wrap;              /* sodium_malloc: n_versions * 32 bytes, the
                              * key-wrapping key of each version */
  guint n_versions;          /* the last one is current */
};

/* A wrapped data key: 4-byte big-endian version, nonce, key, tag.  Rows
 * written before versions existed hold the last three only (version 1).  */
#define STORE_KEYS_WRAPPED_LEGACY \
  (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + STORE_KEY_BYTES \
   + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define STORE_KEYS_WRAPPED (4 + STORE_KEYS_WRAPPED_LEGACY)
/* The top bit of the version word: wrapped with a key-vault secret too.  */
#define STORE_KEYS_VAULTED 0x80000000u

G_DEFINE_QUARK (store-keys-error-quark, store_keys_error)

void
store_keys_init (void)
{
  static gsize once;

  if (g_once_init_enter (&once))
    {
      /* libsodium's own ChaCha20 generator, seeded from getrandom() and
       * reseeded after fork, instead of one getrandom() system call for
       * every nonce (two or more per message).  */
      randombytes_set_implementation (&randombytes_internal_implementation);
      if (sodium_init () < 0)
        g_error ("libsodium could not be initialised");
      g_once_init_leave (&once, 1);
    }
}

static store_keys *
store_keys_derive (const guint8 *master, guint n_versions)
{
  store_keys *keys = g_new0 (store_keys, 1);

  G_STATIC_ASSERT (sizeof STORE_KEYS_KDF_CONTEXT - 1 == crypto_kdf_CONTEXTBYTES);
  G_STATIC_ASSERT (STORE_KEY_BYTES == crypto_kdf_KEYBYTES);
  G_STATIC_ASSERT (STORE_KEYS_NONCE_BYTES
                   == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  keys->sub = sodium_malloc (STORE_KEYS_NSUB * STORE_KEY_BYTES);
  g_assert (keys->sub != NULL);
  for (guint i = 0; i < STORE_KEYS_NSUB; i++)
    crypto_kdf_derive_from_key (keys->sub + i * STORE_KEY_BYTES,
                                STORE_KEY_BYTES, i + 1,
                                STORE_KEYS_KDF_CONTEXT, master);
  sodium_mprotect_readonly (keys->sub);
  /* Each version has a key-wrapping key of its own; the blind-index, spool
   * and audit keys stay those of version 1 (docs/keys.md says why).  */
  keys->n_versions = n_versions;
  keys->wrap = sodium_malloc (n_versions * STORE_KEY_BYTES);
  g_assert (keys->wrap != NULL);
  for (guint v = 0; v < n_versions; v++)
    crypto_kdf_derive_from_key (keys->wrap + v * STORE_KEY_BYTES,
                                STORE_KEY_BYTES, STORE_KEY_WRAP,
                                STORE_KEYS_KDF_CONTEXT,
                                master + v * STORE_KEY_BYTES);
  sodium_mprotect_readonly (keys->wrap);
  return keys;
}

store_keys *
store_keys_load (const char *path, GError **error)
{
  struct stat st;
  guint8 *master;
  ssize_t n;
  int fd;

  store_keys_init ();
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    {
      g_set_error (error, STORE_KEYS_ERROR,
                   errno == ENOENT ? STORE_KEYS_ERROR_MISSING
                                   : STORE_KEYS_ERROR_IO,
                   "master key %s: %s (create one with 'intakectl keygen')",
                   path, g_strerror (errno));
      return NULL;
    }
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_IO,
                   "master key %s: not a regular file", path);
      close (fd);
      return NULL;
    }
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_MODE,
                   "master key %s: mode %03o gives access to group or other;"
                   " it must be 0600 (chmod 600 %s)",
                   path, (unsigned) (st.st_mode & 0777), path);
      close (fd);
      return NULL;
    }
  if (st.st_size == 0 || st.st_size % STORE_KEY_BYTES != 0
      || st.st_size > STORE_KEYS_MAX_VERSIONS * STORE_KEY_BYTES)
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_SIZE,
                   "master key %s: %lld bytes, expected %d for each key"
                   " version (create one with 'intakectl keygen')",
                   path, (long long) st.st_size, STORE_KEY_BYTES);
      close (fd);
      return NULL;
    }
  master = sodium_malloc (st.st_size);
  g_assert (master != NULL);
  n = read (fd, master, st.st_size);
  close (fd);
  if (n != st.st_size)
    {
      sodium_free (master);
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_IO,
                   "master key %s: short read", path);
      return NULL;
    }
  store_keys *keys = store_keys_derive (master, st.st_size / STORE_KEY_BYTES);
  sodium_free (master);
  return keys;
}

static void
store_keys_sync_dir (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (dfd >= 0)
    {
      fsync (dfd);
      close (dfd);
    }
}

gboolean
store_keys_generate (const char *path, GError **error)
{
  guint8 *master;
  mode_t old;
  int fd;
  gboolean ok;

  store_keys_init ();
  old = umask (077);
  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  umask (old);
  if (fd < 0)
    {
      g_set_error (error, STORE_KEYS_ERROR,
                   errno == EEXIST ? STORE_KEYS_ERROR_EXISTS
                                   : STORE_KEYS_ERROR_IO,
                   "master key %s: %s", path,
                   errno == EEXIST ? "already exists; not overwritten"
                                   : g_strerror (errno));
      return FALSE;
    }
  master = sodium_malloc (STORE_KEY_BYTES);
  g_assert (master != NULL);
  randombytes_buf (master, STORE_KEY_BYTES);
  ok = write (fd, master, STORE_KEY_BYTES) == STORE_KEY_BYTES
       && fsync (fd) == 0;
  sodium_free (master);
  if (close (fd) < 0)
    ok = FALSE;
  if (!ok)
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_IO,
                   "master key %s: write failed: %s", path, g_strerror (errno));
      unlink (path);
      return FALSE;
    }
  /* The directory entry must survive a crash too.  */
  store_keys_sync_dir (path);
  return TRUE;
}

guint
store_keys_add_version (const char *path, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autofree char *tmp = g_strconcat (path, ".new", NULL);
  store_keys *check;
  guint8 *ring;
  guint n;
  gsize len;
  ssize_t got;
  mode_t old;
  int fd;
  gboolean ok;

  /* The file must load as it is before anything is added to it.  */
  check = store_keys_load (path, error);
  if (check == NULL)
    return 0;
  n = check->n_versions;
  store_keys_free (&check);
  if (n >= STORE_KEYS_MAX_VERSIONS)
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_SIZE,
                   "master key %s already holds %u versions", path, n);
      return 0;
    }
  len = (gsize) (n + 1) * STORE_KEY_BYTES;
  ring = sodium_malloc (len);
  g_assert (ring != NULL);
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  got = fd >= 0 ? read (fd, ring, len - STORE_KEY_BYTES) : -1;
  if (fd >= 0)
    close (fd);
  if (got != (ssize_t) (len - STORE_KEY_BYTES))
    {
      sodium_free (ring);
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_IO,
                   "master key %s: short read", path);
      return 0;
    }
  randombytes_buf (ring + len - STORE_KEY_BYTES, STORE_KEY_BYTES);

  /* Write the longer file beside the old one and rename it over: a crash
   * leaves either the old key file or the new one, never a torn one.  */
  unlink (tmp);
  old = umask (077);
  fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  umask (old);
  ok = fd >= 0 && write (fd, ring, len) == (ssize_t) len && fsync (fd) == 0;
  if (fd >= 0 && close (fd) < 0)
    ok = FALSE;
  sodium_free (ring);
  if (!ok || rename (tmp, path) < 0)
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_IO,
                   "master key %s: cannot write a new version: %s", path,
                   g_strerror (errno));
      unlink (tmp);
      return 0;
    }
  store_keys_sync_dir (path);
  return n + 1;
}

void
store_keys_free (store_keys **keys)
{
  if (keys == NULL || *keys == NULL)
    return;
  sodium_free ((*keys)->sub);
  sodium_free ((*keys)->wrap);
  g_free (*keys);
  *keys = NULL;
}

const guint8 *
store_keys_get (const store_keys *keys, store_key_id id)
{
  g_assert (id >= 1 && id <= STORE_KEYS_NSUB);
  return keys->sub + (id - 1) * STORE_KEY_BYTES;
}

/* @v in decimal at @p; the end.  */
static char *
store_keys_put_u64 (char *p, guint64 v)
{
  char tmp[20];
  guint n = 0;

  do
    tmp[n++] = (char) ('0' + v % 10);
  while ((v /= 10) != 0);
  while (n > 0)
    *p++ = tmp[--n];
  return p;
}

static char *
store_keys_put_i64 (char *p, gint64 v)
{
  if (v < 0)
    {
      *p++ = '-';
      return store_keys_put_u64 (p, (guint64) 0 - (guint64) v);
    }
  return store_keys_put_u64 (p, (guint64) v);
}

/* The bytes of "%s|%s|%" G_GINT64_FORMAT "|%" G_GINT64_FORMAT "|%u", put
 * together by hand: a seal or an open each made one, and printf's
 * machinery was a measurable part of filing a message (ten seals).
 * test_store pins the bytes against the printf form.  */
gsize
store_keys_aad_into (char *buf, const char *table, gsize tl,
                     const char *column, gsize cl, gint64 row, gint64 owner,
                     guint version)
{
  char *p = buf;

  memcpy (p, table, tl);
  p += tl;
  *p++ = '|';
  memcpy (p, column, cl);
  p += cl;
  *p++ = '|';
  p = store_keys_put_i64 (p, row);
  *p++ = '|';
  p = store_keys_put_i64 (p, owner);
  *p++ = '|';
  p = store_keys_put_u64 (p, version);
  *p = '\0';
  return (gsize) (p - buf);
}

GBytes *
store_keys_aad (const char *table, const char *column, gint64 row,
                gint64 owner, guint version)
{
  const gsize tl = strlen (table), cl = strlen (column);
  char *s = g_malloc (STORE_KEYS_AAD_SIZE (tl, cl));
  gsize n = store_keys_aad_into (s, table, tl, column, cl, row, owner,
                                 version);

  return g_bytes_new_take (s, n);
}

GBytes *
store_keys_seal_nonce (const guint8 *key, GBytes *aad, const guint8 *nonce,
                       const void *plain, gsize plain_len)
{
  gsize aad_len = 0;
  const guint8 *aad_p = aad ? g_bytes_get_data (aad, &aad_len) : NULL;

  return store_keys_seal_nonce_ad (key, aad_p, aad_len, nonce, plain,
                                   plain_len);
}

GBytes *
store_keys_seal_nonce_ad (const guint8 *key, const void *aad_p,
                          gsize aad_len, const guint8 *nonce,
                          const void *plain, gsize plain_len)
{
  const gsize npub = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  const gsize overhead = npub + crypto_aead_xchacha20poly1305_ietf_ABYTES;
  guint8 *out = g_malloc (plain_len + overhead);
  unsigned long long clen = 0;

  memcpy (out, nonce, npub);
  crypto_aead_xchacha20poly1305_ietf_encrypt (
      out + npub, &clen, plain, plain_len, aad_p, aad_len, NULL, out, key);
  g_assert (clen == plain_len + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  return g_bytes_new_take (out, plain_len + overhead);
}

GBytes *
store_keys_seal (const guint8 *key, GBytes *aad, const void *plain,
                 gsize plain_len)
{
  guint8 nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];

  /* A fresh random 192-bit nonce for every value and every update
   * (SECURITY-TESTS 90): no counters shared across processes.  */
  randombytes_buf (nonce, sizeof nonce);
  return store_keys_seal_nonce (key, aad, nonce, plain, plain_len);
}

GBytes *
store_keys_open (const guint8 *key, GBytes *aad, const void *sealed,
                 gsize sealed_len, GError **error)
{
  const gsize npub = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  const gsize abytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
  gsize aad_len = 0;
  const guint8 *aad_p = aad ? g_bytes_get_data (aad, &aad_len) : NULL;
  const guint8 *in = sealed;
  unsigned long long plen = 0;
  guint8 *out;

  if (sealed_len < npub + abytes)
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_CRYPTO,
                   "sealed value too short");
      return NULL;
    }
  out = g_malloc (sealed_len - npub - abytes + 1);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt (out, &plen, NULL,
                                                  in + npub,
                                                  sealed_len - npub,
                                                  aad_p, aad_len, in, key) != 0)
    {
      g_free (out);
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_CRYPTO,
                   "authentication failed: wrong key, tampered or moved value");
      return NULL;
    }
  out[plen] = '\0';             /* convenience for text; length is plen */
  return g_bytes_new_take (out, plen);
}

void
store_keys_blind (const store_keys *keys, const char *context,
                  const void *data, gsize len, guint8 out[32])
{
  crypto_generichash_state st;

  crypto_generichash_init (&st, store_keys_get (keys, STORE_KEY_BLIND),
                           STORE_KEY_BYTES, 32);
  /* Domain separation: the same address in two contexts gives two tokens. */
  crypto_generichash_update (&st, (const guint8 *) context,
                             strlen (context) + 1);
  crypto_generichash_update (&st, data, len);
  crypto_generichash_final (&st, out, 32);
}

guint8 *
store_keys_data_key_new (void)
{
  guint8 *k = sodium_malloc (STORE_KEY_BYTES);

  g_assert (k != NULL);
  crypto_aead_xchacha20poly1305_ietf_keygen (k);
  return k;
}

void
store_keys_data_key_free (guint8 *key)
{
  if (key != NULL)
    sodium_free (key);
}

GBytes *
store_keys_wrap (const store_keys *keys, const guint8 *data_key,
                 gint64 subject_id)
{
  const guint v = keys->n_versions;
  g_autoptr (GBytes) aad = store_keys_aad ("subject", "data_key", subject_id,
                                           subject_id, v);
  g_autoptr (GBytes) sealed = store_keys_seal (keys->wrap
                                               + (v - 1) * STORE_KEY_BYTES,
                                               aad, data_key, STORE_KEY_BYTES);
  gsize n;
  const guint8 *p = g_bytes_get_data (sealed, &n);
  guint8 *out = g_malloc (4 + n);
  guint32 be = GUINT32_TO_BE (v);

  g_assert (4 + n == STORE_KEYS_WRAPPED);
  memcpy (out, &be, 4);
  memcpy (out + 4, p, n);
  return g_bytes_new_take (out, 4 + n);
}

guint
store_keys_version (const store_keys *keys)
{
  return keys->n_versions;
}

guint
store_keys_wrapped_version (const void *wrapped, gsize len)
{
  guint32 be;

  if (len == STORE_KEYS_WRAPPED_LEGACY)
    return 1;
  if (len != STORE_KEYS_WRAPPED)
    return 0;
  memcpy (&be, wrapped, 4);
  return GUINT32_FROM_BE (be) & ~STORE_KEYS_VAULTED;
}

gboolean
store_keys_wrapped_vaulted (const void *wrapped, gsize len)
{
  guint32 be;

  if (len != STORE_KEYS_WRAPPED)
    return FALSE;
  memcpy (&be, wrapped, 4);
  return (GUINT32_FROM_BE (be) & STORE_KEYS_VAULTED) != 0;
}

/* The wrapping key of one vaulted data key: the version's key-wrapping key
 * as the BLAKE2b key, over a label, the subject id and the vault secret.
 * Without the secret nothing about it can be computed.  */
static void
store_keys_vault_kwk (const store_keys *keys, guint v, gint64 subject_id,
                      const guint8 *secret, guint8 out[STORE_KEY_BYTES])
{
  static const char label[] = "intake vault wrap";
  crypto_generichash_state st;
  guint64 le = GUINT64_TO_LE ((guint64) subject_id);

  crypto_generichash_init (&st, keys->wrap + (v - 1) * STORE_KEY_BYTES,
                           STORE_KEY_BYTES, STORE_KEY_BYTES);
  crypto_generichash_update (&st, (const guint8 *) label, sizeof label);
  crypto_generichash_update (&st, (const guint8 *) &le, sizeof le);
  crypto_generichash_update (&st, secret, STORE_VAULT_SECRET_BYTES);
  crypto_generichash_final (&st, out, STORE_KEY_BYTES);
}

GBytes *
store_keys_wrap_vaulted (const store_keys *keys, const guint8 *data_key,
                         gint64 subject_id, const guint8 *secret)
{
  const guint v = keys->n_versions;
  g_autoptr (GBytes) aad = store_keys_aad ("subject", "data_key", subject_id,
                                           subject_id, v);
  guint8 *kwk = sodium_malloc (STORE_KEY_BYTES);
  g_autoptr (GBytes) sealed = NULL;
  gsize n;
  const guint8 *p;
  guint8 *out;
  guint32 be = GUINT32_TO_BE (v | STORE_KEYS_VAULTED);

  g_assert (kwk != NULL);
  store_keys_vault_kwk (keys, v, subject_id, secret, kwk);
  sealed = store_keys_seal (kwk, aad, data_key, STORE_KEY_BYTES);
  sodium_free (kwk);
  p = g_bytes_get_data (sealed, &n);
  out = g_malloc (4 + n);
  g_assert (4 + n == STORE_KEYS_WRAPPED);
  memcpy (out, &be, 4);
  memcpy (out + 4, p, n);
  return g_bytes_new_take (out, 4 + n);
}

void
store_keys_secret_fill (guint8 *out)
{
  randombytes_buf (out, STORE_VAULT_SECRET_BYTES);
}

gboolean
store_keys_unwrap_into (const store_keys *keys, const void *wrapped,
                        gsize len, gint64 subject_id, guint8 *out,
                        GError **error)
{
  return store_keys_unwrap_secret_into (keys, wrapped, len, subject_id, NULL,
                                        out, error);
}

gboolean
store_keys_unwrap_secret_into (const store_keys *keys, const void *wrapped,
                               gsize len, gint64 subject_id,
                               const guint8 *secret, guint8 *out,
                               GError **error)
{
  guint v = store_keys_wrapped_version (wrapped, len);
  gboolean vaulted = store_keys_wrapped_vaulted (wrapped, len);
  guint8 *kwk = NULL;
  const guint8 *sealed = wrapped;
  g_autoptr (GBytes) aad = NULL;
  g_autoptr (GBytes) plain = NULL;
  gsize n;
  const guint8 *p;

  if (v == 0)
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_CRYPTO,
                   "wrapped data key has the wrong size");
      return FALSE;
    }
  if (v > keys->n_versions)
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_CRYPTO,
                   "data key wrapped by master key version %u; the key file"
                   " has %u", v, keys->n_versions);
      return FALSE;
    }
  if (len == STORE_KEYS_WRAPPED)
    {
      sealed += 4;
      len -= 4;
      aad = store_keys_aad ("subject", "data_key", subject_id, subject_id, v);
    }
  else
    aad = store_keys_aad ("subject", "data_key", subject_id, subject_id, 1);
  if (vaulted)
    {
      if (secret == NULL)
        {
          g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_CRYPTO,
                       "data key needs its key-vault secret, which is not"
                       " there (an erased subject, or not this database's"
                       " vault)");
          return FALSE;
        }
      /* The wrapping key goes where the data key will: @out is the
       * caller's secure memory, and a sodium_malloc here for every subject
       * (an mmap, three mprotects and an mlock, then as many to free) was
       * most of what a queue page of fifty people cost.  store_keys_open()
       * reads it before the data key is copied over it.  */
      kwk = out;
      store_keys_vault_kwk (keys, v, subject_id, secret, kwk);
    }
  plain = store_keys_open (kwk ? kwk : keys->wrap + (v - 1) * STORE_KEY_BYTES,
                           aad, sealed, len, error);
  if (plain == NULL)
    {
      sodium_memzero (out, STORE_KEY_BYTES);
      return FALSE;
    }
  p = g_bytes_get_data (plain, &n);
  if (n != STORE_KEY_BYTES)
    {
      g_set_error (error, STORE_KEYS_ERROR, STORE_KEYS_ERROR_CRYPTO,
                   "wrapped data key has the wrong size");
      sodium_memzero ((void *) p, n);
      sodium_memzero (out, STORE_KEY_BYTES);
      return FALSE;
    }
  memcpy (out, p, STORE_KEY_BYTES);
  sodium_memzero ((void *) p, n);
  return TRUE;
}

void
store_keys_check_value (const store_keys *keys, guint version,
                        guint8 out[32])
{
  static const char label[] = "intake master key check";

  g_assert (version >= 1 && version <= keys->n_versions);
  crypto_generichash (out, 32, (const guint8 *) label, sizeof label,
                      keys->wrap + (version - 1) * STORE_KEY_BYTES,
                      STORE_KEY_BYTES);
}

void
store_keys_data_key_fill (guint8 *out)
{
  crypto_aead_xchacha20poly1305_ietf_keygen (out);
}

guint8 *
store_keys_unwrap (const store_keys *keys, const void *wrapped, gsize len,
                   gint64 subject_id, GError **error)
{
  guint8 *k = sodium_malloc (STORE_KEY_BYTES);

  g_assert (k != NULL);
  if (!store_keys_unwrap_into (keys, wrapped, len, subject_id, k, error))
    {
      sodium_free (k);
      return NULL;
    }
  return k;
}
