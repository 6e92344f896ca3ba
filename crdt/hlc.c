/* Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks",
 * 2014). With l in the high 48 bits and c in the low 16, the paper's rules
 * reduce to integer maxima:
 *   send/local: l' = max(l, pt); c' = l' == l ? c + 1 : 0
 *       is      t' = max(t + 1, pt << 16)
 *   receive:    l' = max(l, l_m, pt); c' = the matching c + 1, or 0 when pt wins
 *       is      t' = max(max(t, t_m) + 1, pt << 16)
 * and a counter overflow carries into the milliseconds, which keeps the clock
 * strictly increasing at the cost of running up to 1 ms ahead. */
#include "shoebox/hlc.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#define HLC_MS_MAX ((UINT64_C(1) << (64 - SBX_HLC_COUNTER_BITS)) - 1)

/* The wall clock as a timestamp with counter 0, clamped to what 48 bits hold
 * (a clock before 1970 counts as 1970). */
static uint64_t wall_ts(int64_t wall_ms)
{
    if (wall_ms < 0) return 0;
    if ((uint64_t)wall_ms > HLC_MS_MAX) return SBX_HLC_MAKE(HLC_MS_MAX, 0);
    return SBX_HLC_MAKE(wall_ms, 0);
}

void sbx_hlc_init(sbx_hlc *h, uint64_t last)
{
    h->last = last;
}

uint64_t sbx_hlc_now(sbx_hlc *h, int64_t wall_ms)
{
    /* Running out of 64 bits takes until the year 10889 or a clock that was
     * fed nonsense; sbx_hlc_observe refuses the latter. */
    SBX_ASSERT(h->last != UINT64_MAX);
    uint64_t t = h->last + 1, w = wall_ts(wall_ms);
    if (w > t) t = w;
    h->last = t;
    return t;
}

int sbx_hlc_observe(sbx_hlc *h, uint64_t remote, int64_t wall_ms, uint64_t max_future_ms)
{
    uint64_t remote_ms = remote >> SBX_HLC_COUNTER_BITS;
    uint64_t wall = wall_ms < 0 ? 0 : (uint64_t)wall_ms;
    /* wall + max_future_ms, saturating: a huge bound means no bound. */
    uint64_t bound = max_future_ms > UINT64_MAX - wall ? UINT64_MAX : wall + max_future_ms;
    if (remote_ms > bound) return SBX_EREFUSED;
    uint64_t t = remote > h->last ? remote : h->last;
    /* The clock could not issue anything after this one. */
    if (t == UINT64_MAX) return SBX_EREFUSED;
    t += 1;
    uint64_t w = wall_ts(wall_ms);
    h->last = w > t ? w : t;
    return 0;
}
