/* Shared by the benches that time Noise transport: the two ends of a real
 * session (a full XX handshake between fresh keys), so a bench times
 * exactly the cipher states peers run. */
#ifndef SBX_BENCH_WIRE_H
#define SBX_BENCH_WIRE_H

#include "shoebox/noise.h"
#include "shoebox/util.h"

#include <sodium.h>

/* *tx is the initiator's sending state, *rx the responder's receiving
 * state: what one sends the other reads. Free both with
 * sbx_noise_cs_free. */
static inline void bench_wire_open(sbx_noise_cs **tx, sbx_noise_cs **rx)
{
    uint8_t is[32], rs[32], msg[256], pl[256];
    size_t n, pn;
    sbx_noise_hs *i, *r;
    sbx_noise_cs *itx, *irx, *rtx, *rrx;
    randombytes_buf(is, 32);
    randombytes_buf(rs, 32);
    SBX_ASSERT(sbx_noise_hs_new(&i, 1, NULL, 0, is, NULL) == 0);
    SBX_ASSERT(sbx_noise_hs_new(&r, 0, NULL, 0, rs, NULL) == 0);
    for (int m = 0; m < 3; m++) {
        SBX_ASSERT(sbx_noise_hs_write(m % 2 ? r : i, NULL, 0, msg, sizeof msg, &n) == 0);
        SBX_ASSERT(sbx_noise_hs_read(m % 2 ? i : r, msg, n, pl, sizeof pl, &pn) == 0);
    }
    SBX_ASSERT(sbx_noise_hs_split(i, &itx, &irx) == 0);
    SBX_ASSERT(sbx_noise_hs_split(r, &rtx, &rrx) == 0);
    *tx = itx;
    *rx = rrx;
    sbx_noise_cs_free(irx);
    sbx_noise_cs_free(rtx);
    sbx_noise_hs_free(i);
    sbx_noise_hs_free(r);
    sodium_memzero(is, sizeof is);
    sodium_memzero(rs, sizeof rs);
}

#endif
