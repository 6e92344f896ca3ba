/* Shared by fuzz_entry.c and gen_entry_corpus.c: the key the seed corpus is
 * signed with, so the harness can re-sign mutated bodies with the author's
 * key and reach the code behind the signature check. */
#ifndef SBX_FUZZ_ENTRY_COMMON_H
#define SBX_FUZZ_ENTRY_COMMON_H

#include <sodium.h>
#include <stdint.h>
#include <string.h>

static inline void fuzz_entry_keypair(uint8_t pk[32], uint8_t sk[64])
{
    uint8_t seed[32];
    memset(seed, 0x5a, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
}

#endif
