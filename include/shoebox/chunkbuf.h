/* Page-aligned, recycled buffers for one received chunk.
 *
 * A chunk that arrives from a peer is reassembled into one of these and
 * handed, without a copy, to the thread that verifies and writes it. Being
 * page-aligned, its bytes go to disk with O_DIRECT straight from it (the
 * blob store copies unaligned ones into a bounce buffer first), and being
 * recycled, its pages are not faulted in and zeroed again for every chunk:
 * on the VMs these run on, the copy and the fresh pages together were
 * about a tenth of a receiving daemon's CPU (docs/sync-flow.md). */
#ifndef SHOEBOX_CHUNKBUF_H
#define SHOEBOX_CHUNKBUF_H

#include <stdint.h>

#include "shoebox/limits.h"

/* A chunk, or a sealed record of one (a chunk and its 40 bytes of nonce
 * and tag) starting anywhere within its first page: the blob store seals
 * records into these at their file offset's alignment. */
#define SBX_CHUNKBUF_BYTES (SBX_BLOB_CHUNK + 8192u)

/* Holds SBX_CHUNKBUF_BYTES bytes, starts on a page boundary. NULL when no
 * memory can be had. */
uint8_t *sbx_chunkbuf_get(void);
/* Gives a buffer back (NULL is fine): kept for the next get, up to
 * SBX_MAX_FREE_CHUNKBUFS, unmapped beyond. Any thread. */
void sbx_chunkbuf_put(uint8_t *buf);
/* Unmaps every spare buffer: for a daemon with nothing to receive. */
void sbx_chunkbuf_trim(void);

#endif
