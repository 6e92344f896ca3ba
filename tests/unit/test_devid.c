#include "sbx_test.h"
#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdint.h>

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* A device id without separators: 4 groups of 13 data + 1 check character. */
static void compact(char out[57], const char id[SBX_DEVID_STRLEN + 1])
{
    size_t n = 0;
    for (size_t i = 0; id[i]; i++)
        if (id[i] != '-') out[n++] = id[i];
    out[n] = '\0';
}

static int val(char c) { return (int)(strchr(B32, c) - B32); }

/* An independent copy of Syncthing's check character (luhn.go), written from
 * its description, to build ids the library did not produce. */
static char ref_check(const char *s)
{
    int factor = 1, sum = 0;
    for (int i = 0; i < 13; i++) {
        int a = factor * val(s[i]);
        factor = 3 - factor;
        sum += a / 32 + a % 32;
    }
    return B32[(32 - sum % 32) % 32];
}

SBX_TEST(syncthing_vector)
{
    /* From Syncthing's lib/protocol/deviceid_test.go; the bytes are the
     * RFC 4648 base32 decoding of the id without its check characters. */
    uint8_t key[32], back[32];
    REQUIRE(sbx_hex_decode(key, 32,
        "7f7c8723ecca5b4d22061c4981b34c34d865ec376be1eb74330873c9a6f9b205") == 0);
    char id[SBX_DEVID_STRLEN + 1];
    sbx_devid_format(id, key);
    CHECK_EQ_STR(id, "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2");
    CHECK_EQ_INT(strlen(id), SBX_DEVID_STRLEN);
    const char *forms[] = {
        "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",
        "P56IOI7 MZJNU2Y IQGDREY DM2MGTI MGL3BXN PQ6W5BM TBBZ4TJ XZWICQ2",
        "P56IOI7MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMTBBZ4TJXZWICQ2",
        "p56ioi7mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmtbbz4tjxzwicq2",
        "p56ioi7-Mzjnu2y-iqgdrey-dm2mgti mgl3bxn-pq6w5bm--tbbz4tj-xzwicq2",
        "  P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2 ",
    };
    for (size_t i = 0; i < SBX_ARRAY_LEN(forms); i++) {
        memset(back, 0, sizeof back);
        CHECK_EQ_INT(sbx_devid_parse(back, forms[i]), 0);
        CHECK(memcmp(back, key, 32) == 0);
    }
}

SBX_TEST(malformed_refused)
{
    uint8_t key[32];
    const char *bad[] = {
        "",
        "a",
        /* Syncthing's old 52-character form has no check characters. */
        "P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQ",
        "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2A",
        "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ",
        /* 0, 1 and 8 are not base32; they are refused, not guessed. */
        "P561017-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",
        "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ=",
        "P56IOI7_MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",
        "P56IOI7\tMZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",
        "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWIC\xc3\x89",
    };
    for (size_t i = 0; i < SBX_ARRAY_LEN(bad); i++) {
        int rc = sbx_devid_parse(key, bad[i]);
        if (rc != SBX_EMALFORMED) printf("# case %zu: rc %d\n", i, rc);
        CHECK_EQ_INT(rc, SBX_EMALFORMED);
    }
    /* A huge string of separators is refused without reading all of it. */
    char big[4096];
    memset(big, '-', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ_INT(sbx_devid_parse(key, big), SBX_EMALFORMED);
}

SBX_TEST(padding_bits_must_be_zero)
{
    /* The 52nd base32 character carries one key bit and four padding bits.
     * An id whose check characters are right but whose padding is not zero
     * names no key: it must be refused, or two ids would mean one key. */
    uint8_t key[32], back[32];
    memset(key, 0, sizeof key);
    char id[SBX_DEVID_STRLEN + 1], c[57];
    sbx_devid_format(id, key);
    compact(c, id);
    CHECK_EQ_INT(strspn(c, "A"), 56); /* zero data and zero checks */
    c[54] = 'B'; /* last data character of the last group: padding bit set */
    c[55] = ref_check(c + 42);
    CHECK_EQ_INT(sbx_devid_parse(back, c), SBX_EMALFORMED);
    c[54] = 'Q'; /* the key bit only: the key 00..01 */
    c[55] = ref_check(c + 42);
    CHECK_EQ_INT(sbx_devid_parse(back, c), 0);
    key[31] = 1;
    CHECK(memcmp(back, key, 32) == 0);
}

SBX_TEST(random_roundtrip)
{
    REQUIRE(sodium_init() >= 0);
    uint8_t key[32], back[32];
    char id[SBX_DEVID_STRLEN + 1], c[57], lower[SBX_DEVID_STRLEN + 1];
    for (int round = 0; round < 2000; round++) {
        randombytes_buf(key, sizeof key);
        if (round == 0) memset(key, 0xff, sizeof key);
        sbx_devid_format(id, key);
        CHECK_EQ_INT(strlen(id), SBX_DEVID_STRLEN);
        for (int i = 0; i < SBX_DEVID_STRLEN; i++) {
            if (i % 8 == 7) CHECK(id[i] == '-');
            else CHECK(strchr(B32, id[i]) != NULL && id[i] != '\0');
        }
        /* Every fourteenth character is the check of the thirteen before. */
        compact(c, id);
        for (int g = 0; g < 4; g++) CHECK(c[g * 14 + 13] == ref_check(c + g * 14));
        memset(back, 0, sizeof back);
        CHECK_EQ_INT(sbx_devid_parse(back, id), 0);
        CHECK(memcmp(back, key, 32) == 0);
        for (int i = 0; id[i]; i++) lower[i] = (char)(id[i] >= 'A' && id[i] <= 'Z' ? id[i] + 32 : id[i]);
        lower[SBX_DEVID_STRLEN] = '\0';
        memset(back, 0, sizeof back);
        CHECK_EQ_INT(sbx_devid_parse(back, lower), 0);
        CHECK(memcmp(back, key, 32) == 0);
        memset(back, 0, sizeof back);
        CHECK_EQ_INT(sbx_devid_parse(back, c), 0);
        CHECK(memcmp(back, key, 32) == 0);
    }
}

SBX_TEST(every_single_substitution_detected)
{
    /* Luhn mod 32 maps each position's character through a permutation of
     * the alphabet (x or 2x with digit sum), so changing one character always
     * changes its group's sum mod 32: every one of the 56 * 31 substitutions
     * must fail its check. */
    REQUIRE(sodium_init() >= 0);
    uint8_t key[32], back[32];
    char id[SBX_DEVID_STRLEN + 1], c[57];
    long tried = 0, refused = 0;
    for (int round = 0; round < 20; round++) {
        randombytes_buf(key, sizeof key);
        sbx_devid_format(id, key);
        compact(c, id);
        for (int pos = 0; pos < 56; pos++) {
            char orig = c[pos];
            for (int k = 0; k < 32; k++) {
                if (B32[k] == orig) continue;
                c[pos] = B32[k];
                tried++;
                int rc = sbx_devid_parse(back, c);
                if (rc == SBX_ECORRUPT) refused++;
                else printf("# substitution at %d by %c not refused (rc %d)\n", pos, B32[k], rc);
            }
            c[pos] = orig;
        }
    }
    CHECK_EQ_INT(tried, 20L * 56 * 31);
    CHECK_EQ_INT(refused, tried);
}

SBX_TEST(adjacent_transpositions)
{
    /* Within the 13 data characters of a group, neighbours carry weights 1
     * and 2, and swapping a and b changes the sum by h(a) - h(b) where
     * h(x) = 2x - x with digit sum: x for x < 16, x + 1 for x >= 16, mod 32.
     * h is one-to-one except h('A') = h('7') = 0, so every swap of two
     * different neighbours is caught except A<->7 (as in every Luhn mod N:
     * the first and last characters of the alphabet).
     *
     * Syncthing's variant weighs the 13th data character 1, like the check
     * character, so swapping those two is never caught. We keep Syncthing's
     * ids byte for byte, so this test pins that down too: if it ever fails,
     * the check characters no longer match Syncthing's. */
    REQUIRE(sodium_init() >= 0);
    uint8_t key[32], back[32];
    char id[SBX_DEVID_STRLEN + 1], c[57];
    long swaps = 0, caught = 0, a7 = 0, a7_missed = 0, last = 0, last_missed = 0;
    for (int round = 0; round < 400; round++) {
        randombytes_buf(key, sizeof key);
        /* Plant A and 7 side by side now and then so the exception is met. */
        if (round % 4 == 0) { key[0] = 0x07; key[1] = 0xf0; } /* "A7" at 1,2 */
        sbx_devid_format(id, key);
        compact(c, id);
        for (int g = 0; g < 4; g++) {
            for (int i = 0; i < 13; i++) {
                int p = g * 14 + i;
                if (c[p] == c[p + 1]) continue;
                char t = c[p]; c[p] = c[p + 1]; c[p + 1] = t;
                int rc = sbx_devid_parse(back, c);
                int is_a7 = (c[p] == 'A' && c[p + 1] == '7') || (c[p] == '7' && c[p + 1] == 'A');
                if (i == 12) {
                    last++;
                    if (rc != SBX_ECORRUPT) last_missed++;
                } else if (is_a7) {
                    a7++;
                    if (rc != SBX_ECORRUPT) a7_missed++;
                } else {
                    swaps++;
                    if (rc == SBX_ECORRUPT) caught++;
                    else printf("# swap at %d (%c%c) not caught\n", p, c[p + 1], c[p]);
                }
                t = c[p]; c[p] = c[p + 1]; c[p + 1] = t;
            }
        }
        /* Swaps across a group boundary change the check character of the
         * group before, so they are always caught. */
        for (int g = 0; g < 3; g++) {
            int p = g * 14 + 13;
            if (c[p] == c[p + 1]) continue;
            char t = c[p]; c[p] = c[p + 1]; c[p + 1] = t;
            CHECK_EQ_INT(sbx_devid_parse(back, c), SBX_ECORRUPT);
            t = c[p]; c[p] = c[p + 1]; c[p + 1] = t;
        }
    }
    printf("# %ld data swaps, %ld caught; A<->7 %ld, missed %ld; data<->check %ld, missed %ld\n",
           swaps, caught, a7, a7_missed, last, last_missed);
    CHECK(swaps > 10000);
    CHECK_EQ_INT(caught, swaps);
    CHECK(a7 > 0);
    CHECK_EQ_INT(a7_missed, a7);
    CHECK(last > 0);
    CHECK_EQ_INT(last_missed, last);
}

SBX_TEST_MAIN(SBX_CASE(syncthing_vector), SBX_CASE(malformed_refused),
              SBX_CASE(padding_bits_must_be_zero), SBX_CASE(random_roundtrip),
              SBX_CASE(every_single_substitution_detected),
              SBX_CASE(adjacent_transpositions))
