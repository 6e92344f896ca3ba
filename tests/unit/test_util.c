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

SBX_TEST(errors_have_text)
{
    CHECK_EQ_STR(sbx_strerror(0), "success");
    CHECK_EQ_STR(sbx_strerror(SBX_ENOMEM), "out of memory");
    CHECK_EQ_STR(sbx_strerror(SBX_ELOCKED), "library is locked");
    CHECK_EQ_STR(sbx_strerror(12345), "unknown error");
}

SBX_TEST_MAIN(SBX_CASE(hex_roundtrip), SBX_CASE(rfc3339_format_and_parse),
              SBX_CASE(uuid_roundtrip), SBX_CASE(errors_have_text))
