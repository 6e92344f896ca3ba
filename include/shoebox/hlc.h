/* Hybrid logical clock (Kulkarni et al. 2014), sans-I/O: the caller passes the
 * wall clock in, so the simulator can drive it deterministically.
 *
 * A timestamp is 64 bits: the high 48 bits are milliseconds since the Unix
 * epoch, the low 16 bits a logical counter. Timestamps order like integers. */
#ifndef SHOEBOX_HLC_H
#define SHOEBOX_HLC_H

#include <stdint.h>

typedef struct sbx_hlc {
    uint64_t last; /* the highest timestamp issued or observed */
} sbx_hlc;

#define SBX_HLC_COUNTER_BITS 16
#define SBX_HLC_MAKE(ms, c) (((uint64_t)(ms) << SBX_HLC_COUNTER_BITS) | (uint64_t)(c))

static inline int64_t sbx_hlc_ms(uint64_t t) { return (int64_t)(t >> SBX_HLC_COUNTER_BITS); }

/* Starts a clock that has already issued or seen `last` (0 for a new one). */
void sbx_hlc_init(sbx_hlc *h, uint64_t last);

/* A timestamp for a local event (a new entry): strictly greater than every
 * timestamp issued or observed so far. */
uint64_t sbx_hlc_now(sbx_hlc *h, int64_t wall_ms);

/* Observes a remote timestamp. Returns SBX_EREFUSED, and leaves the clock
 * untouched, when `remote` is more than `max_future_ms` ahead of `wall_ms`;
 * otherwise advances the clock past `remote` and returns 0. */
int sbx_hlc_observe(sbx_hlc *h, uint64_t remote, int64_t wall_ms, uint64_t max_future_ms);

#endif
