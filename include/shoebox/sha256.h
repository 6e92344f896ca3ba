/* SHA-256, with a two-stream update that hashes the same bytes into two
 * states in one pass.
 *
 * Every original is hashed twice as it arrives: once whole (its identity)
 * and once per 1 MiB chunk (for verified, resumable transfers). The SHA-NI
 * round instruction is latency-bound: one stream leaves half of the unit
 * idle, so interleaving the whole-blob and chunk states over one shared
 * message schedule costs about what one stream costs (3.6 GB/s of hashing
 * at 1.8 GB/s of data on the EPYC these VMs run on; docs/sync-flow.md).
 * Without SHA-NI the block function is libcrypto's, one stream after the
 * other, as fast as before. */
#ifndef SHOEBOX_SHA256_H
#define SHOEBOX_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_SHA256_BYTES 32

/* Plain data on the caller's stack: no allocation, no failure. */
typedef struct sbx_sha256_ctx {
    uint32_t h[8];
    uint64_t len;     /* bytes fed so far */
    uint8_t buf[64];  /* the partial block, len % 64 bytes of it */
} sbx_sha256_ctx;

void sbx_sha256_init(sbx_sha256_ctx *c);
void sbx_sha256_update(sbx_sha256_ctx *c, const void *data, size_t len);
/* Feeds the same bytes to a and b, which must sit at the same offset
 * within a block (a->len % 64 == b->len % 64): a chunk state started on a
 * chunk boundary and the whole-blob state, say. */
void sbx_sha256_update2(sbx_sha256_ctx *a, sbx_sha256_ctx *b, const void *data, size_t len);
/* Writes the digest; the state is spent (init it again to reuse it). */
void sbx_sha256_final(sbx_sha256_ctx *c, uint8_t out[SBX_SHA256_BYTES]);
/* One call: the digest of a buffer. */
void sbx_sha256(const void *data, size_t len, uint8_t out[SBX_SHA256_BYTES]);

/* True when the SHA-NI block functions are in use. */
bool sbx_sha256_accelerated(void);
/* Tests only: turn the SHA-NI path off (false) or back on where the CPU
 * has it (true), so both paths are checked on one machine. */
void sbx_sha256_use_accel(bool on);

#endif
