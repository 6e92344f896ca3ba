/* Random user actions on a replica: shared by the engine's property tests
 * and by sbx-sim, so both exercise every op with the same generator. */
#ifndef SBX_SIM_WORKLOAD_H
#define SBX_SIM_WORKLOAD_H

#include <stdint.h>

#include "shoebox/engine.h"

/* xorshift64: deterministic for a seed, never 0 once seeded non-zero. */
uint64_t sbx_wl_rand(uint64_t *state);

/* A photo.put for synthetic photo number n (same n, same bytes, same id). */
struct sbx_op sbx_wl_op_put(sbx_engine *e, unsigned n, uint8_t photo_id[16]);

/* An op on one id (photo.delete, album.create, ...), and one that names a
 * second id in `ref` (album.add, photo_tag.add, share.create). */
struct sbx_op sbx_wl_op_id(enum sbx_op_type t, const uint8_t id[16]);
struct sbx_op sbx_wl_op_pair(enum sbx_op_type t, const uint8_t id[16], const uint8_t ref[16]);

/* One integer from a query with no parameters (a count), -1 on error. The
 * statement is prepared afresh each time, not cached as with
 * sbx_store_query_int, so checks may run any number of different queries. */
int64_t sbx_wl_count(sbx_store *s, const char *sql);

/* One random user action (import, edit, delete, restore, album and tag
 * changes, share links, blob holdings) against what the replica knows.
 * `pool` bounds the number of distinct photos so devices collide. */
int sbx_wl_random_write(sbx_engine *e, sbx_store *s, uint64_t *rng, int64_t now_ms, unsigned pool);

#endif
