#include "sbx_test.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <stdint.h>

SBX_TEST(hex_roundtrip)
{
    uint8_t in[4] = {0x00, 0xab, 0x7f, 0xff}, out[4];
    char hex[9];
    sbx_hex_encode(hex, in, 4);
    CHECK_EQ_STR(hex, "00ab7fff");
    CHECK_EQ_INT(sbx_hex_decode(out, 4, hex), 0);
    CHECK(memcmp(in, out, 4) == 0);
    CHECK_EQ_INT(sbx_hex_decode(out, 4, "00ab7fzz"), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_hex_decode(out, 4, "00ab7f"), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_hex_decode(out, 4, "00ab7fff00"), SBX_EMALFORMED);
}

SBX_TEST(rfc3339_format_and_parse)
{
    char buf[32];
    sbx_rfc3339(buf, 1589644091000);
    CHECK_EQ_STR(buf, "2020-05-16T15:48:11Z");
    sbx_rfc3339(buf, 1589644091123);
    CHECK_EQ_STR(buf, "2020-05-16T15:48:11.123Z");
    int64_t ms = 0;
    CHECK_EQ_INT(sbx_rfc3339_parse("2020-05-16T15:48:11Z", &ms), 0);
    CHECK_EQ_INT(ms, 1589644091000);
    CHECK_EQ_INT(sbx_rfc3339_parse("2020-05-16T17:48:11.5+02:00", &ms), 0);
    CHECK_EQ_INT(ms, 1589644091500);
    CHECK_EQ_INT(sbx_rfc3339_parse("2020-13-16T15:48:11Z", &ms), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_rfc3339_parse("yesterday", &ms), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_rfc3339_parse("2020-05-16T15:48:11Zjunk", &ms), SBX_EMALFORMED);
}

SBX_TEST(uuid_roundtrip)
{
    uint8_t id[16], back[16];
    char s[SBX_UUID_STRLEN + 1];
    sbx_uuid_random(id);
    CHECK_EQ_INT(id[6] >> 4, 4);
    sbx_uuid_format(s, id);
    CHECK_EQ_INT(strlen(s), 36);
    CHECK_EQ_INT(sbx_uuid_parse(back, s), 0);
    CHECK(memcmp(id, back, 16) == 0);
    CHECK(sbx_uuid_parse(back, "not-a-uuid") != 0);
}

/* sbx_utf8_next on a string literal of n bytes. */
static size_t u8(const char *s, size_t n)
{
    return sbx_utf8_next((const uint8_t *)s, n);
}

SBX_TEST(utf8_valid_forms)
{
    /* The first and last code point of each length, and the code points
     * either side of the surrogate block. */
    CHECK_EQ_INT(u8("\x00", 1), 1);
    CHECK_EQ_INT(u8("A", 1), 1);
    CHECK_EQ_INT(u8("\x7F", 1), 1);
    CHECK_EQ_INT(u8("\xC2\x80", 2), 2);             /* U+0080 */
    CHECK_EQ_INT(u8("\xC3\xA9", 2), 2);             /* é */
    CHECK_EQ_INT(u8("\xDF\xBF", 2), 2);             /* U+07FF */
    CHECK_EQ_INT(u8("\xE0\xA0\x80", 3), 3);         /* U+0800 */
    CHECK_EQ_INT(u8("\xE5\xB9\xB4", 3), 3);         /* 年 */
    CHECK_EQ_INT(u8("\xED\x9F\xBF", 3), 3);         /* U+D7FF */
    CHECK_EQ_INT(u8("\xEE\x80\x80", 3), 3);         /* U+E000 */
    CHECK_EQ_INT(u8("\xEF\xBF\xBF", 3), 3);         /* U+FFFF */
    CHECK_EQ_INT(u8("\xF0\x90\x80\x80", 4), 4);     /* U+10000 */
    CHECK_EQ_INT(u8("\xF0\x9F\x98\x80", 4), 4);     /* 😀 */
    CHECK_EQ_INT(u8("\xF4\x8F\xBF\xBF", 4), 4);     /* U+10FFFF */
    /* Only the first sequence counts; what follows is not read. */
    CHECK_EQ_INT(u8("\xC3\xA9\xFF", 3), 2);
    CHECK_EQ_INT(u8("ab", 2), 1);
    /* A walk over a mixed string lands on every character. */
    const char *mix = "a\xC3\xA9\xE5\xB9\xB4\xF0\x9F\x98\x80z";
    size_t len = strlen(mix), i = 0, chars = 0;
    while (i < len && chars < len) {
        size_t n = u8(mix + i, len - i);
        REQUIRE(n > 0);
        i += n;
        chars++;
    }
    CHECK_EQ_INT(i, len);
    CHECK_EQ_INT(chars, 5);
}

SBX_TEST(utf8_refused_forms)
{
    CHECK_EQ_INT(sbx_utf8_next((const uint8_t *)"", 0), 0);
    /* Overlong forms of U+0000, U+002F, U+07FF, U+FFFF. */
    CHECK_EQ_INT(u8("\xC0\x80", 2), 0);
    CHECK_EQ_INT(u8("\xC0\xAF", 2), 0);
    CHECK_EQ_INT(u8("\xC1\xBF", 2), 0);
    CHECK_EQ_INT(u8("\xE0\x80\x80", 3), 0);
    CHECK_EQ_INT(u8("\xE0\x9F\xBF", 3), 0);
    CHECK_EQ_INT(u8("\xF0\x80\x80\x80", 4), 0);
    CHECK_EQ_INT(u8("\xF0\x8F\xBF\xBF", 4), 0);
    /* Surrogates, high and low. */
    CHECK_EQ_INT(u8("\xED\xA0\x80", 3), 0);
    CHECK_EQ_INT(u8("\xED\xBF\xBF", 3), 0);
    /* Above U+10FFFF, and lead bytes that could only start such. */
    CHECK_EQ_INT(u8("\xF4\x90\x80\x80", 4), 0);
    CHECK_EQ_INT(u8("\xF5\x80\x80\x80", 4), 0);
    CHECK_EQ_INT(u8("\xF7\xBF\xBF\xBF", 4), 0);
    CHECK_EQ_INT(u8("\xF8\x88\x80\x80\x80", 5), 0);
    CHECK_EQ_INT(u8("\xFE", 1), 0);
    CHECK_EQ_INT(u8("\xFF", 1), 0);
    /* Stray continuation bytes. */
    CHECK_EQ_INT(u8("\x80", 1), 0);
    CHECK_EQ_INT(u8("\xBF\x41", 2), 0);
    /* A continuation byte that is not one. */
    CHECK_EQ_INT(u8("\xC3\x28", 2), 0);
    CHECK_EQ_INT(u8("\xE2\x28\xA1", 3), 0);
    CHECK_EQ_INT(u8("\xE2\x82\x28", 3), 0);
    CHECK_EQ_INT(u8("\xF0\x9F\x28\x80", 4), 0);
    CHECK_EQ_INT(u8("\xF0\x9F\x98\xC0", 4), 0);
    /* Truncated: every proper prefix of a valid sequence, and a valid
     * sequence whose length the caller cuts short. */
    const char *whole[] = {"\xC3\xA9", "\xE5\xB9\xB4", "\xF0\x9F\x98\x80"};
    for (size_t k = 0; k < SBX_ARRAY_LEN(whole); k++) {
        size_t n = strlen(whole[k]);
        CHECK_EQ_INT(u8(whole[k], n), n);
        for (size_t cut = 1; cut < n; cut++) CHECK_EQ_INT(u8(whole[k], cut), 0);
    }
}

/* An independent reading of RFC 3629: decode by the bit patterns alone, then
 * refuse by code point value. Returns the length sbx_utf8_next should give. */
static size_t utf8_reference(const uint8_t *s, size_t len)
{
    size_t n;
    uint32_t cp, min;
    if ((s[0] & 0x80) == 0) return 1;
    if ((s[0] & 0xE0) == 0xC0) { n = 2; cp = s[0] & 0x1F; min = 0x80; }
    else if ((s[0] & 0xF0) == 0xE0) { n = 3; cp = s[0] & 0x0F; min = 0x800; }
    else if ((s[0] & 0xF8) == 0xF0) { n = 4; cp = s[0] & 0x07; min = 0x10000; }
    else return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

SBX_TEST(utf8_matches_reference_on_every_lead_pair)
{
    /* Every first and second byte, each followed by tails that are the
     * lowest and highest continuation bytes and two that are not. */
    static const uint8_t tails[] = {0x80, 0xBF, 0x7F, 0xC0};
    size_t mismatches = 0;
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            for (size_t t = 0; t < SBX_ARRAY_LEN(tails); t++) {
                uint8_t s[4] = {(uint8_t)a, (uint8_t)b, tails[t], tails[t]};
                for (size_t len = 1; len <= 4; len++)
                    if (sbx_utf8_next(s, len) != utf8_reference(s, len)) mismatches++;
            }
        }
    }
    CHECK_EQ_INT(mismatches, 0);
}

SBX_TEST(errors_have_text)
{
    CHECK_EQ_STR(sbx_strerror(0), "success");
    CHECK_EQ_STR(sbx_strerror(SBX_ENOMEM), "out of memory");
    CHECK_EQ_STR(sbx_strerror(SBX_ELOCKED), "library is locked");
    CHECK_EQ_STR(sbx_strerror(12345), "unknown error");
}

SBX_TEST_MAIN(SBX_CASE(hex_roundtrip), SBX_CASE(rfc3339_format_and_parse),
              SBX_CASE(uuid_roundtrip), SBX_CASE(utf8_valid_forms),
              SBX_CASE(utf8_refused_forms), SBX_CASE(utf8_matches_reference_on_every_lead_pair),
              SBX_CASE(errors_have_text))
