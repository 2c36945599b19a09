/*
 * fuzz_envelope.c - libFuzzer target for store_envelope_unpack(): the
 * envelope bytes an SMTP, IMAP or form child hands the master with every
 * message (a compromised child's are hostile), and every spool row's.
 *
 * The envelope is read by hand (store_envelope_unpack_direct ()) and, when
 * that declines, through GVariant.  Checked on every input: the hand
 * reader takes nothing GVariant would refuse and reads what it takes
 * exactly as GVariant does; what it takes packs again to the same bytes.
 * Everything is freed (LeakSanitizer checks).
 *
 * Built by `make fuzz-envelope` (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) in = g_bytes_new (data, size);
  store_envelope *mine = store_envelope_unpack_direct (in);
  store_envelope *theirs = store_envelope_unpack_gvariant (in, NULL);

  if (mine != NULL)
    {
      g_autoptr (GBytes) again = store_envelope_pack (mine);

      if (theirs == NULL || !store_envelope_equal (mine, theirs))
        abort ();
      if (!g_bytes_equal (again, in))
        abort ();
    }
  store_envelope_free (mine);
  store_envelope_free (theirs);
  return 0;
}
