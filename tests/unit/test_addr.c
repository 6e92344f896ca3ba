/* HOST:PORT addresses: what the listeners' options, pairing and the peer
 * table accept and refuse, port 0 only where asked for, and printing
 * back the same text. */
#include "sbx_test.h"
#include "shoebox/addr.h"
#include "shoebox/err.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

SBX_TEST(parses_ipv4_and_ipv6)
{
    struct sockaddr_storage ss;
    CHECK_EQ_INT(sbx_addr_parse("192.168.1.20:8417", false, &ss), 0);
    CHECK_EQ_INT(ss.ss_family, AF_INET);
    CHECK_EQ_INT(port_of(&ss), 8417);
    CHECK_EQ_INT(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0xc0a80114);
    CHECK_EQ_INT(sbx_addr_parse("[::1]:65535", false, &ss), 0);
    CHECK_EQ_INT(ss.ss_family, AF_INET6);
    CHECK_EQ_INT(port_of(&ss), 65535);
    CHECK(memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, &in6addr_loopback, 16) == 0);
    CHECK_EQ_INT(sbx_addr_parse("0.0.0.0:1", false, &ss), 0);
    CHECK_EQ_INT(sbx_addr_parse("[::]:7000", false, &ss), 0);
}

SBX_TEST(port_zero_only_for_listeners)
{
    struct sockaddr_storage ss;
    CHECK_EQ_INT(sbx_addr_parse("127.0.0.1:0", false, &ss), SBX_EINVAL);
    CHECK_EQ_INT(sbx_addr_parse("[::1]:0", false, &ss), SBX_EINVAL);
    CHECK_EQ_INT(sbx_addr_parse("127.0.0.1:0", true, &ss), 0);
    CHECK_EQ_INT(port_of(&ss), 0);
    CHECK_EQ_INT(sbx_addr_parse("[::1]:00000", true, &ss), 0);
}

SBX_TEST(refuses_what_is_not_an_address)
{
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        ":8417",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:123456",
        "127.0.0.1:+80",
        "127.0.0.1:-1",
        "127.0.0.1: 80",
        "127.0.0.1:80 ",
        "127.0.0.1:8o",
        "localhost:80",  /* numeric only: no lookups */
        "256.1.1.1:80",
        "::1:80",        /* IPv6 needs its brackets */
        "[::1:80",
        "::1]:80",
        "[]:80",
        "[127.0.0.1]:80",
        "[::1]80",
        "[::g]:80",
        "[1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee:ffff:0000:1111]:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sockaddr_storage ss;
        ss.ss_family = AF_INET;
        int rc = sbx_addr_parse(bad[i], true, &ss);
        if (rc != SBX_EINVAL) printf("# accepted '%s'\n", bad[i]);
        CHECK_EQ_INT(rc, SBX_EINVAL);
        /* Nothing half-parsed is left behind. */
        CHECK_EQ_INT(ss.ss_family, AF_UNSPEC);
    }
    struct sockaddr_storage ss;
    CHECK_EQ_INT(sbx_addr_parse(NULL, true, &ss), SBX_EINVAL);
}

SBX_TEST(formats_what_it_parses)
{
    static const char *const good[] = {
        "10.0.0.1:1", "127.0.0.1:8417", "255.255.255.255:65535", "[::1]:8417", "[fe80::1]:443",
        "[1111:2222:3333:4444:5555:6666:7777:8888]:65535",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct sockaddr_storage ss;
        char out[SBX_ADDR_STRLEN + 1];
        REQUIRE(sbx_addr_parse(good[i], false, &ss) == 0);
        sbx_addr_format(out, (struct sockaddr *)&ss);
        CHECK_EQ_STR(out, good[i]);
    }
    /* The canonical spelling comes back: zeros compressed, lower case. */
    struct sockaddr_storage ss;
    char out[SBX_ADDR_STRLEN + 1];
    REQUIRE(sbx_addr_parse("[2001:DB8:0:0:0:0:0:1]:80", false, &ss) == 0);
    sbx_addr_format(out, (struct sockaddr *)&ss);
    CHECK_EQ_STR(out, "[2001:db8::1]:80");
    /* The longest there is fits. */
    REQUIRE(sbx_addr_parse("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", false, &ss) == 0);
    memset(out, 'x', sizeof out);
    sbx_addr_format(out, (struct sockaddr *)&ss);
    CHECK(strlen(out) <= SBX_ADDR_STRLEN);
    CHECK_EQ_STR(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    ss.ss_family = AF_UNIX;
    sbx_addr_format(out, (struct sockaddr *)&ss);
    CHECK_EQ_STR(out, "?");
}

SBX_TEST_MAIN(SBX_CASE(parses_ipv4_and_ipv6), SBX_CASE(port_zero_only_for_listeners),
              SBX_CASE(refuses_what_is_not_an_address), SBX_CASE(formats_what_it_parses))
