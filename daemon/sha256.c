/* SHA-256 with a two-stream SHA-NI block function (see shoebox/sha256.h). */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Transform: the fallback block function */
#include "shoebox/sha256.h"

#include <openssl/sha.h>
#include <stdatomic.h>
#include <string.h>

#include "shoebox/util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define SBX_HAVE_SHANI_CODE 1
#endif

static const uint32_t IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

/* ---- Fallback: libcrypto's block function, one stream at a time --------- */

/* libcrypto picks its best code for the CPU (SHA-NI, AVX2, ARMv8 SHA2);
 * SHA256_Transform runs it on one block of a context whose h[] we lend. */
static void blocks_crypto(uint32_t h[8], const uint8_t *p, size_t n)
{
    SHA256_CTX c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 8; i++) c.h[i] = h[i];
    for (; n > 0; n--, p += 64) SHA256_Transform(&c, p);
    for (int i = 0; i < 8; i++) h[i] = c.h[i];
}

static void blocks2_crypto(uint32_t a[8], uint32_t b[8], const uint8_t *p, size_t n)
{
    blocks_crypto(a, p, n);
    blocks_crypto(b, p, n);
}

/* ---- SHA-NI ------------------------------------------------------------- */

#ifdef SBX_HAVE_SHANI_CODE
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define SHANI __attribute__((target("sha,sse4.1,ssse3")))

/* The round instruction wants the state as (A,B,E,F) and (C,D,G,H). */
SHANI static inline void shani_load(const uint32_t h[8], __m128i *abef, __m128i *cdgh)
{
    __m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0xB1);
    __m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(h + 4)), 0x1B);
    *abef = _mm_alignr_epi8(dcba, hgfe, 8);
    *cdgh = _mm_blend_epi16(hgfe, dcba, 0xF0);
}

SHANI static inline void shani_store(uint32_t h[8], __m128i abef, __m128i cdgh)
{
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)h, _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)(h + 4), _mm_alignr_epi8(dchg, feba, 8));
}

/* Message words 4g..4g+3 of the block: loaded for g < 4, else extended in
 * place from the previous four groups (x[] is a ring of four). */
SHANI static inline __m128i shani_schedule(__m128i x[4], const uint8_t *p, int g)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    if (g < 4) {
        x[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
    } else {
        __m128i w7 = _mm_alignr_epi8(x[(g - 1) & 3], x[(g - 2) & 3], 4);
        __m128i s0 = _mm_add_epi32(_mm_sha256msg1_epu32(x[g & 3], x[(g - 3) & 3]), w7);
        x[g & 3] = _mm_sha256msg2_epu32(s0, x[(g - 1) & 3]);
    }
    return _mm_add_epi32(x[g & 3], _mm_loadu_si128((const __m128i *)(K + 4 * g)));
}

SHANI static void blocks_shani(uint32_t h[8], const uint8_t *p, size_t n)
{
    __m128i abef, cdgh;
    shani_load(h, &abef, &cdgh);
    for (; n > 0; n--, p += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh, x[4];
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            __m128i m = shani_schedule(x, p, g);
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(m, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    shani_store(h, abef, cdgh);
}

/* Two states, one message schedule: the rounds of each state depend only
 * on its own previous round, so the two chains fill each other's waits. */
SHANI static void blocks2_shani(uint32_t ha[8], uint32_t hb[8], const uint8_t *p, size_t n)
{
    __m128i a_abef, a_cdgh, b_abef, b_cdgh;
    shani_load(ha, &a_abef, &a_cdgh);
    shani_load(hb, &b_abef, &b_cdgh);
    for (; n > 0; n--, p += 64) {
        __m128i a0 = a_abef, a1 = a_cdgh, b0 = b_abef, b1 = b_cdgh, x[4];
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            __m128i m = shani_schedule(x, p, g), m2 = _mm_shuffle_epi32(m, 0x0E);
            a_cdgh = _mm_sha256rnds2_epu32(a_cdgh, a_abef, m);
            b_cdgh = _mm_sha256rnds2_epu32(b_cdgh, b_abef, m);
            a_abef = _mm_sha256rnds2_epu32(a_abef, a_cdgh, m2);
            b_abef = _mm_sha256rnds2_epu32(b_abef, b_cdgh, m2);
        }
        a_abef = _mm_add_epi32(a_abef, a0);
        a_cdgh = _mm_add_epi32(a_cdgh, a1);
        b_abef = _mm_add_epi32(b_abef, b0);
        b_cdgh = _mm_add_epi32(b_cdgh, b1);
    }
    shani_store(ha, a_abef, a_cdgh);
    shani_store(hb, b_abef, b_cdgh);
}

static bool cpu_has_shani(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    bool sse = (c & bit_SSSE3) && (c & bit_SSE4_1);
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return sse && (b & bit_SHA);
}
#else
static bool cpu_has_shani(void) { return false; }
#endif

/* ---- Dispatch ----------------------------------------------------------- */

typedef void blocks_fn(uint32_t h[8], const uint8_t *p, size_t n);
typedef void blocks2_fn(uint32_t a[8], uint32_t b[8], const uint8_t *p, size_t n);

/* Chosen from the CPU at first use. Import, render and pool threads hash
 * at once, so the choice is an atomic: -1 until made, then 0 or 1. */
static _Atomic int accel = -1;

static bool use_shani(void)
{
    int a = atomic_load_explicit(&accel, memory_order_relaxed);
    if (a < 0) {
        a = cpu_has_shani();
        atomic_store_explicit(&accel, a, memory_order_relaxed);
    }
    return a == 1;
}

bool sbx_sha256_accelerated(void) { return use_shani(); }

void sbx_sha256_use_accel(bool on) { atomic_store(&accel, on && cpu_has_shani()); }

static void blocks(uint32_t h[8], const uint8_t *p, size_t n)
{
#ifdef SBX_HAVE_SHANI_CODE
    if (use_shani()) { blocks_shani(h, p, n); return; }
#endif
    blocks_crypto(h, p, n);
}

static void blocks2(uint32_t a[8], uint32_t b[8], const uint8_t *p, size_t n)
{
#ifdef SBX_HAVE_SHANI_CODE
    if (use_shani()) { blocks2_shani(a, b, p, n); return; }
#endif
    blocks2_crypto(a, b, p, n);
}

/* ---- Streaming ---------------------------------------------------------- */

void sbx_sha256_init(sbx_sha256_ctx *c)
{
    memcpy(c->h, IV, sizeof IV);
    c->len = 0;
}

/* One body for both updates: b is NULL for a single stream. A partial
 * block is finished for each state on its own (their earlier bytes may
 * differ); the whole blocks in between go through one two-stream pass. */
static void update(sbx_sha256_ctx *a, sbx_sha256_ctx *b, const uint8_t *p, size_t len)
{
    if (len == 0) return;
    size_t fill = (size_t)(a->len % 64);
    a->len += len;
    if (b) b->len += len;
    if (fill > 0) {
        size_t take = 64 - fill < len ? 64 - fill : len;
        memcpy(a->buf + fill, p, take);
        if (b) memcpy(b->buf + fill, p, take);
        p += take;
        len -= take;
        if (fill + take < 64) return;
        blocks(a->h, a->buf, 1);
        if (b) blocks(b->h, b->buf, 1);
    }
    if (len >= 64) {
        if (b) blocks2(a->h, b->h, p, len / 64);
        else blocks(a->h, p, len / 64);
        p += len / 64 * 64;
        len %= 64;
    }
    memcpy(a->buf, p, len);
    if (b) memcpy(b->buf, p, len);
}

void sbx_sha256_update(sbx_sha256_ctx *c, const void *data, size_t len)
{
    update(c, NULL, data, len);
}

void sbx_sha256_update2(sbx_sha256_ctx *a, sbx_sha256_ctx *b, const void *data, size_t len)
{
    SBX_ASSERT(a->len % 64 == b->len % 64);
    update(a, b, data, len);
}

void sbx_sha256_final(sbx_sha256_ctx *c, uint8_t out[SBX_SHA256_BYTES])
{
    uint8_t tail[128] = {0};
    size_t fill = (size_t)(c->len % 64), n = fill < 56 ? 64 : 128;
    uint64_t bits = c->len * 8;
    memcpy(tail, c->buf, fill);
    tail[fill] = 0x80;
    for (int i = 0; i < 8; i++) tail[n - 1 - i] = (uint8_t)(bits >> (8 * i));
    blocks(c->h, tail, n / 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void sbx_sha256(const void *data, size_t len, uint8_t out[SBX_SHA256_BYTES])
{
    sbx_sha256_ctx c;
    sbx_sha256_init(&c);
    sbx_sha256_update(&c, data, len);
    sbx_sha256_final(&c, out);
}
