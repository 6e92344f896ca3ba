/* SHA-256: known answers, and every split of the streaming and two-stream
 * updates checked against libcrypto, on the SHA-NI path and without it. */
#include "sbx_test.h"
#include "shoebox/sha256.h"
#include "shoebox/util.h"

#include <openssl/evp.h>
#include <string.h>

static void ref(const uint8_t *p, size_t n, uint8_t out[32])
{
    SBX_ASSERT(EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL) == 1);
}

static uint8_t *pattern(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    SBX_ASSERT(p);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    return p;
}

/* Runs body once with SHA-NI (where the CPU has it) and once without. */
#define BOTH_PATHS(...)                                                      \
    for (int accel_ = 1; accel_ >= 0; accel_--) {                            \
        sbx_sha256_use_accel(accel_);                                        \
        __VA_ARGS__                                                           \
    }                                                                        \
    sbx_sha256_use_accel(true)

SBX_TEST(known_answers)
{
    static const struct { const char *msg, *hex; } kat[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    BOTH_PATHS({
        for (size_t i = 0; i < SBX_ARRAY_LEN(kat); i++) {
            uint8_t out[32];
            char hex[65];
            sbx_sha256(kat[i].msg, strlen(kat[i].msg), out);
            sbx_hex_encode(hex, out, 32);
            CHECK_EQ_STR(hex, kat[i].hex);
        }
        /* A million 'a', fed in uneven pieces. */
        sbx_sha256_ctx c;
        sbx_sha256_init(&c);
        uint8_t a[997];
        memset(a, 'a', sizeof a);
        size_t left = 1000000;
        while (left > 0) {
            size_t n = left < sizeof a ? left : (left % 61) + 1;
            sbx_sha256_update(&c, a, n);
            left -= n;
        }
        uint8_t out[32];
        char hex[65];
        sbx_sha256_final(&c, out);
        sbx_hex_encode(hex, out, 32);
        CHECK_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    });
}

SBX_TEST(every_length_matches_libcrypto)
{
    uint8_t *p = pattern(1024, 7);
    BOTH_PATHS({
        int bad = 0;
        for (size_t n = 0; n <= 1024; n++) {
            uint8_t got[32], want[32];
            sbx_sha256(p, n, got);
            ref(p, n, want);
            bad += memcmp(got, want, 32) != 0;
        }
        CHECK_EQ_INT(bad, 0);
    });
    free(p);
}

/* The two-stream update, as the blob store uses it: a whole-blob state and
 * a chunk state restarted at each chunk boundary, fed in ragged pieces. */
SBX_TEST(two_streams_match_two_passes)
{
    const size_t chunk = 4096, total = 5 * 4096 + 1234;
    uint8_t *p = pattern(total, 99);
    BOTH_PATHS({
        sbx_sha256_ctx whole, part;
        sbx_sha256_init(&whole);
        sbx_sha256_init(&part);
        size_t off = 0, step = 1, bad = 0;
        while (off < total) {
            size_t room = chunk - off % chunk, n = step < room ? step : room;
            if (n > total - off) n = total - off;
            sbx_sha256_update2(&whole, &part, p + off, n);
            off += n;
            step = step * 3 + 1;
            if (step > 3 * chunk) step = 1;
            if (off % chunk == 0 || off == total) {
                uint8_t got[32], want[32];
                size_t start = (off - 1) / chunk * chunk;
                sbx_sha256_final(&part, got);
                ref(p + start, off - start, want);
                bad += memcmp(got, want, 32) != 0;
                sbx_sha256_init(&part);
            }
        }
        uint8_t got[32], want[32];
        sbx_sha256_final(&whole, got);
        ref(p, total, want);
        CHECK(memcmp(got, want, 32) == 0);
        CHECK_EQ_INT((int)bad, 0);
    });
    free(p);
}

/* Two states at the same offset within a block but with different bytes
 * buffered: each keeps its own. */
SBX_TEST(two_streams_with_different_pasts)
{
    uint8_t *p = pattern(300, 3), *q = pattern(300, 4);
    BOTH_PATHS({
        sbx_sha256_ctx a, b;
        sbx_sha256_init(&a);
        sbx_sha256_init(&b);
        sbx_sha256_update(&a, p, 10);
        sbx_sha256_update(&b, q, 74); /* same offset in its block: 10 */
        sbx_sha256_update2(&a, &b, p + 10, 200);
        uint8_t ga[32], gb[32], wa[32], wb[32], mix[274];
        sbx_sha256_final(&a, ga);
        sbx_sha256_final(&b, gb);
        ref(p, 210, wa);
        memcpy(mix, q, 74);
        memcpy(mix + 74, p + 10, 200);
        ref(mix, 274, wb);
        CHECK(memcmp(ga, wa, 32) == 0);
        CHECK(memcmp(gb, wb, 32) == 0);
    });
    free(p);
    free(q);
}

SBX_TEST(reports_the_path)
{
    sbx_sha256_use_accel(false);
    CHECK(!sbx_sha256_accelerated());
    sbx_sha256_use_accel(true);
    /* Whether SHA-NI is there is the CPU's business; say which path ran. */
    printf("# SHA-NI %s\n", sbx_sha256_accelerated() ? "in use" : "not available");
}

SBX_TEST_MAIN(SBX_CASE(known_answers), SBX_CASE(every_length_matches_libcrypto),
              SBX_CASE(two_streams_match_two_passes), SBX_CASE(two_streams_with_different_pasts),
              SBX_CASE(reports_the_path))
