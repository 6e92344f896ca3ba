/* Device ids in Syncthing's human form.
 *
 * The check characters follow Syncthing's luhnBase32 exactly, so an id that
 * Syncthing's code would print for the same 32 bytes is the id we print, and
 * Syncthing's published ids serve as test vectors. Syncthing's variant differs
 * from the textbook Luhn mod N in one way: the doubling factor starts at 1 on
 * the first character of a group and alternates from the left, where the
 * textbook starts at 2 on the character next to the check character. Both
 * catch every single substitution; the variant gives the last data character
 * the same weight as the check character, so swapping those two goes
 * unnoticed (tests/unit/test_devid.c pins down what is and is not caught). */
#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <string.h>

#define B32_LEN 52   /* 256 bits in 5-bit characters, rounded up */
#define GROUP_LEN 13 /* data characters per check character */
#define GROUPS 4
#define LUHN_LEN (B32_LEN + GROUPS)
/* Longest input worth reading: 56 characters with generous separators. A
 * longer string cannot be a device id a person copied or typed. */
#define MAX_INPUT 256

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* The value of a base32 character, or -1 when it is outside the alphabet. */
static int b32_val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= '2' && c <= '7') return c - '2' + 26;
    return -1;
}

/* Syncthing's luhnBase32 check character for `n` characters that are known
 * to be in the alphabet. */
static char luhn32_check(const char *s, size_t n)
{
    unsigned factor = 1, sum = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b32_val(s[i]);
        SBX_ASSERT(v >= 0);
        unsigned addend = factor * (unsigned)v;
        factor = factor == 2 ? 1 : 2;
        /* Doubling can overflow one base-32 digit; as in Luhn, add the two
         * digits of the product, which keeps the doubling a permutation of
         * the alphabet. */
        addend = addend / 32 + addend % 32;
        sum += addend;
    }
    return alphabet[(32 - sum % 32) % 32];
}

/* RFC 4648 base32 without padding. `out` receives exactly B32_LEN chars. */
static void b32_encode(char out[B32_LEN], const uint8_t key[32])
{
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < 32; i++) {
        acc = (acc << 8 | key[i]) & 0xfffu;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = alphabet[(acc >> bits) & 31u];
        }
    }
    if (bits > 0) out[o++] = alphabet[(acc << (5 - bits)) & 31u];
    SBX_ASSERT(o == B32_LEN);
}

/* Decodes B32_LEN alphabet characters. The final character carries one bit
 * of the key and four padding bits; they must be zero so that every key has
 * exactly one id. */
static int b32_decode(uint8_t key[32], const char in[B32_LEN])
{
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < B32_LEN; i++) {
        int v = b32_val(in[i]);
        SBX_ASSERT(v >= 0);
        acc = (acc << 5 | (unsigned)v) & 0xfffu;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            key[o++] = (uint8_t)(acc >> bits);
        }
    }
    SBX_ASSERT(o == 32 && bits == 4);
    return (acc & 0xfu) == 0 ? 0 : SBX_EMALFORMED;
}

void sbx_devid_format(char out[SBX_DEVID_STRLEN + 1], const uint8_t key[32])
{
    char b32[B32_LEN], luhn[LUHN_LEN];
    b32_encode(b32, key);
    for (size_t g = 0; g < GROUPS; g++) {
        memcpy(luhn + g * (GROUP_LEN + 1), b32 + g * GROUP_LEN, GROUP_LEN);
        luhn[g * (GROUP_LEN + 1) + GROUP_LEN] = luhn32_check(b32 + g * GROUP_LEN, GROUP_LEN);
    }
    size_t o = 0;
    for (size_t i = 0; i < LUHN_LEN; i++) {
        if (i > 0 && i % 7 == 0) out[o++] = '-';
        out[o++] = luhn[i];
    }
    SBX_ASSERT(o == SBX_DEVID_STRLEN);
    out[o] = '\0';
}

int sbx_devid_parse(uint8_t key[32], const char *s)
{
    char luhn[LUHN_LEN], b32[B32_LEN];
    size_t n = 0;
    if (strnlen(s, MAX_INPUT + 1) > MAX_INPUT) return SBX_EMALFORMED;
    for (size_t i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        if (c == '-' || c == ' ') continue;
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        if (b32_val(c) < 0 || n == LUHN_LEN) return SBX_EMALFORMED;
        luhn[n++] = c;
    }
    if (n != LUHN_LEN) return SBX_EMALFORMED;
    for (size_t g = 0; g < GROUPS; g++) {
        const char *grp = luhn + g * (GROUP_LEN + 1);
        if (luhn32_check(grp, GROUP_LEN) != grp[GROUP_LEN]) return SBX_ECORRUPT;
        memcpy(b32 + g * GROUP_LEN, grp, GROUP_LEN);
    }
    uint8_t tmp[32];
    int rc = b32_decode(tmp, b32);
    if (rc == 0) memcpy(key, tmp, 32);
    return rc;
}
