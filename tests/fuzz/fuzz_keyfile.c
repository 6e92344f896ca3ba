/* Fuzzes the sealed key file parser (SBXKEY2): any bytes are refused or
 * parsed into bounded parts, never more. Inputs whose first byte is odd get
 * their checksum recomputed, so that the fuzzer reaches the checks behind
 * it (algorithm, reserved bytes, Argon2id cost bounds) instead of stopping
 * at the checksum every time. */
#include "shoebox/err.h"
#include "shoebox/identity.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[SBX_SEALED_KEY_FILE_LEN + 16];
    if (size == 0) return 0;
    int fix = data[0] & 1;
    data++;
    size--;
    if (size > sizeof buf) size = sizeof buf;
    memcpy(buf, data, size);
    if (fix && size == SBX_SEALED_KEY_FILE_LEN)
        crypto_generichash(buf + size - 16, 16, buf, size - 16, NULL, 0);
    struct sbx_sealed_key k;
    int rc = sbx_sealed_key_parse(buf, size, &k);
    if (rc == 0) {
        SBX_ASSERT(size == SBX_SEALED_KEY_FILE_LEN);
        SBX_ASSERT(memcmp(buf, "SBXKEY2\n", 8) == 0);
        SBX_ASSERT(k.opslimit >= 1 && k.opslimit <= SBX_KDF_MAX_OPSLIMIT);
        SBX_ASSERT(k.memlimit >= crypto_pwhash_MEMLIMIT_MIN && k.memlimit <= SBX_KDF_MAX_MEMLIMIT);
        SBX_ASSERT(memcmp(k.ad, buf, 64) == 0 && memcmp(k.sealed, buf + 64, 64) == 0);
    } else {
        SBX_ASSERT(rc == SBX_ECORRUPT || rc == SBX_EUNSUPPORTED);
    }
    return 0;
}
