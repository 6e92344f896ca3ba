#include "sbx_test.h"
#include "shoebox/err.h"
#include "shoebox/hlc.h"

#include <stdint.h>

#define MAXF 1000u

SBX_TEST(now_follows_wall_clock)
{
    sbx_hlc h;
    sbx_hlc_init(&h, 0);
    uint64_t t = sbx_hlc_now(&h, 1000);
    CHECK_EQ_INT(sbx_hlc_ms(t), 1000);
    CHECK_EQ_INT(t & 0xffff, 0);
    /* Same millisecond: the counter moves. */
    uint64_t t2 = sbx_hlc_now(&h, 1000);
    CHECK_EQ_INT(sbx_hlc_ms(t2), 1000);
    CHECK_EQ_INT(t2 & 0xffff, 1);
    /* The wall clock moves: the counter resets. */
    uint64_t t3 = sbx_hlc_now(&h, 1005);
    CHECK(t3 == SBX_HLC_MAKE(1005, 0));
    CHECK_EQ_INT(h.last, t3);
}

SBX_TEST(monotonic_when_clock_goes_backwards)
{
    sbx_hlc h;
    sbx_hlc_init(&h, 0);
    uint64_t prev = sbx_hlc_now(&h, 50000);
    /* A clock stepping back by up to 40 s, then forward, many times. */
    int64_t wall = 50000;
    for (int i = 0; i < 10000; i++) {
        wall += (i % 7 == 0) ? -40000 : 13;
        if (wall < 0) wall = 0;
        uint64_t t = sbx_hlc_now(&h, wall);
        CHECK(t > prev);
        if (t <= prev) break;
        /* The clock never runs behind the wall clock. */
        CHECK(sbx_hlc_ms(t) >= wall);
        prev = t;
    }
    /* While the wall clock is behind, time stays at the highest ms seen and
     * only the counter moves. */
    sbx_hlc h2;
    sbx_hlc_init(&h2, SBX_HLC_MAKE(9000, 7));
    uint64_t t = sbx_hlc_now(&h2, 100);
    CHECK(t == SBX_HLC_MAKE(9000, 8));
    /* A negative wall clock is not a crash. */
    CHECK(sbx_hlc_now(&h2, -5) == SBX_HLC_MAKE(9000, 9));
}

SBX_TEST(observe_remote_ahead)
{
    sbx_hlc h;
    sbx_hlc_init(&h, SBX_HLC_MAKE(1000, 3));
    uint64_t remote = SBX_HLC_MAKE(1500, 9);
    CHECK_EQ_INT(sbx_hlc_observe(&h, remote, 1200, MAXF), 0);
    /* Past the remote: same ms, counter + 1 (Kulkarni's receive rule). */
    CHECK(h.last == SBX_HLC_MAKE(1500, 10));
    uint64_t t = sbx_hlc_now(&h, 1200);
    CHECK(t > remote);
    CHECK(t == SBX_HLC_MAKE(1500, 11));
    /* Once the wall clock passes, the counter resets. */
    CHECK(sbx_hlc_now(&h, 1600) == SBX_HLC_MAKE(1600, 0));
}

SBX_TEST(observe_remote_behind_and_equal)
{
    sbx_hlc h;
    sbx_hlc_init(&h, SBX_HLC_MAKE(2000, 5));
    /* Remote behind, wall behind: local counter + 1. */
    CHECK_EQ_INT(sbx_hlc_observe(&h, SBX_HLC_MAKE(1000, 80), 1500, MAXF), 0);
    CHECK(h.last == SBX_HLC_MAKE(2000, 6));
    /* Same ms: the larger counter + 1. */
    CHECK_EQ_INT(sbx_hlc_observe(&h, SBX_HLC_MAKE(2000, 40), 1500, MAXF), 0);
    CHECK(h.last == SBX_HLC_MAKE(2000, 41));
    /* Wall clock ahead of both: wall, counter 0. */
    CHECK_EQ_INT(sbx_hlc_observe(&h, SBX_HLC_MAKE(2100, 40), 3000, MAXF), 0);
    CHECK(h.last == SBX_HLC_MAKE(3000, 0));
}

SBX_TEST(observe_refuses_beyond_bound)
{
    sbx_hlc h;
    sbx_hlc_init(&h, SBX_HLC_MAKE(1000, 1));
    uint64_t before = h.last;
    /* Exactly at the bound: accepted. */
    CHECK_EQ_INT(sbx_hlc_observe(&h, SBX_HLC_MAKE(1000 + MAXF, 0xffff), 1000, MAXF), 0);
    sbx_hlc_init(&h, before);
    /* One ms past it: refused, and the clock is untouched. */
    CHECK_EQ_INT(sbx_hlc_observe(&h, SBX_HLC_MAKE(1001 + MAXF, 0), 1000, MAXF), SBX_EREFUSED);
    CHECK(h.last == before);
    CHECK_EQ_INT(sbx_hlc_observe(&h, UINT64_MAX, 1000, MAXF), SBX_EREFUSED);
    CHECK(h.last == before);
    /* A saturating bound must not wrap around into a refusal of the past. */
    CHECK_EQ_INT(sbx_hlc_observe(&h, SBX_HLC_MAKE(10, 0), INT64_MAX, UINT64_MAX), 0);
    /* Even with no bound, a timestamp that leaves no room after it is refused. */
    sbx_hlc_init(&h, before);
    CHECK_EQ_INT(sbx_hlc_observe(&h, UINT64_MAX, 1000, UINT64_MAX), SBX_EREFUSED);
    CHECK(h.last == before);
}

SBX_TEST(counter_overflow_bumps_ms)
{
    sbx_hlc h;
    sbx_hlc_init(&h, SBX_HLC_MAKE(7000, 0xfffe));
    uint64_t a = sbx_hlc_now(&h, 7000);
    CHECK(a == SBX_HLC_MAKE(7000, 0xffff));
    uint64_t b = sbx_hlc_now(&h, 7000);
    CHECK(b > a);
    CHECK(b == SBX_HLC_MAKE(7001, 0));
    /* The same through observe. */
    sbx_hlc_init(&h, 0);
    CHECK_EQ_INT(sbx_hlc_observe(&h, SBX_HLC_MAKE(7000, 0xffff), 7000, MAXF), 0);
    CHECK(h.last == SBX_HLC_MAKE(7001, 0));
    /* 70,000 events in one ms keep strictly increasing. */
    sbx_hlc_init(&h, 0);
    uint64_t prev = 0;
    for (int i = 0; i < 70000; i++) {
        uint64_t t = sbx_hlc_now(&h, 5);
        if (t <= prev) {
            CHECK(t > prev);
            break;
        }
        prev = t;
    }
    CHECK_EQ_INT(sbx_hlc_ms(prev), 6);
}

SBX_TEST(init_resumes)
{
    sbx_hlc h;
    sbx_hlc_init(&h, SBX_HLC_MAKE(123456, 9));
    CHECK(sbx_hlc_now(&h, 1) == SBX_HLC_MAKE(123456, 10));
}

SBX_TEST_MAIN(SBX_CASE(now_follows_wall_clock), SBX_CASE(monotonic_when_clock_goes_backwards),
              SBX_CASE(observe_remote_ahead), SBX_CASE(observe_remote_behind_and_equal),
              SBX_CASE(observe_refuses_beyond_bound), SBX_CASE(counter_overflow_bumps_ms),
              SBX_CASE(init_resumes))
