#include "sbx_test.h"
#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/pair.h"
#include "shoebox/util.h"

#include <png.h>
#include <sodium.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The Syncthing test vector key (see test_devid.c) and its id. */
static const char VKEY_HEX[] = "7f7c8723ecca5b4d22061c4981b34c34d865ec376be1eb74330873c9a6f9b205";
#define VDEV "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"

/* A fixed invitation: library 00..0f, the vector key, PSK 00..1f. */
static void fixed_invite(sbx_pair_invite *inv)
{
    uint8_t lib[16], key[32];
    for (int i = 0; i < 16; i++) lib[i] = (uint8_t)i;
    SBX_ASSERT(sbx_hex_decode(key, 32, VKEY_HEX) == 0);
    SBX_ASSERT(sbx_pair_invite_init(inv, lib, key, 1700000000) == 0);
    for (int i = 0; i < 32; i++) inv->psk[i] = (uint8_t)i;
    SBX_ASSERT(sbx_pair_invite_add_addr(inv, "192.168.1.20:7734") == 0);
}

/* The URI of fixed_invite(), written out by hand: the contract. The PSK is
 * base64url of bytes 0..31 (checked with Python's base64 module). */
#define FIXED_URI                                                             \
    "shoebox://pair?v=1&lib=00010203-0405-0607-0809-0a0b0c0d0e0f"             \
    "&dev=P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"    \
    "&addr=192.168.1.20:7734&psk=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" \
    "&exp=1700000000"

static int invite_eq(const sbx_pair_invite *a, const sbx_pair_invite *b)
{
    if (memcmp(a->library, b->library, 16) || memcmp(a->device_key, b->device_key, 32) ||
        memcmp(a->psk, b->psk, 32) || a->expires_s != b->expires_s || a->naddrs != b->naddrs)
        return 0;
    for (size_t i = 0; i < a->naddrs; i++)
        if (strcmp(a->addrs[i], b->addrs[i]) != 0) return 0;
    return 1;
}

static int all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

SBX_TEST(uri_golden)
{
    sbx_pair_invite inv, back;
    char uri[SBX_MAX_PAIR_URI + 1];
    fixed_invite(&inv);
    REQUIRE(sbx_pair_uri_format(uri, &inv) == 0);
    CHECK_EQ_STR(uri, FIXED_URI);
    CHECK_EQ_INT(sbx_pair_uri_parse(&back, FIXED_URI), 0);
    CHECK(invite_eq(&inv, &back));
    char dev[SBX_DEVID_STRLEN + 1];
    sbx_devid_format(dev, back.device_key);
    CHECK_EQ_STR(dev, VDEV);
}

SBX_TEST(uri_roundtrip)
{
    REQUIRE(sodium_init() >= 0);
    const char *addrs[] = {
        "192.168.1.20:7734", "[2001:db8::1]:7734", "nas.example.org:443",
        "[::ffff:10.0.0.1]:1", "[::1]:65535", "localhost:7734",
        "xn--bcher-kva.example:8080", "10.0.0.255:22",
    };
    for (int round = 0; round < 200; round++) {
        sbx_pair_invite inv, back;
        uint8_t lib[16], key[32];
        sbx_uuid_random(lib);
        randombytes_buf(key, sizeof key);
        REQUIRE(sbx_pair_invite_init(&inv, lib, key, (int64_t)randombytes_uniform(2000000000)) == 0);
        size_t n = 1 + (size_t)round % SBX_ARRAY_LEN(addrs);
        for (size_t i = 0; i < n; i++)
            CHECK_EQ_INT(sbx_pair_invite_add_addr(&inv, addrs[(i + (size_t)round) % n]), 0);
        char uri[SBX_MAX_PAIR_URI + 1];
        REQUIRE(sbx_pair_uri_format(uri, &inv) == 0);
        CHECK(strncmp(uri, "shoebox://pair?v=1&", 19) == 0);
        /* Brackets are not allowed in a query: they travel percent-encoded. */
        CHECK(strchr(uri, '[') == NULL && strchr(uri, ']') == NULL);
        memset(&back, 0xa5, sizeof back);
        CHECK_EQ_INT(sbx_pair_uri_parse(&back, uri), 0);
        CHECK(invite_eq(&inv, &back));
    }
    sbx_pair_invite inv;
    fixed_invite(&inv);
    REQUIRE(sbx_pair_invite_add_addr(&inv, "[2001:db8::1]:7734") == 0);
    char uri[SBX_MAX_PAIR_URI + 1];
    REQUIRE(sbx_pair_uri_format(uri, &inv) == 0);
    CHECK(strstr(uri, "&addr=%5B2001:db8::1%5D:7734&") != NULL);
}

SBX_TEST(uri_lenient_where_harmless)
{
    /* Keys in any order, upper-case scheme, escapes in either case, the
     * device id in lower case without dashes, raw brackets: all mean the
     * same invitation. */
    sbx_pair_invite inv, back;
    fixed_invite(&inv);
    REQUIRE(sbx_pair_invite_add_addr(&inv, "[fe80::1]:7734") == 0);
    const char *same[] = {
        "SHOEBOX://PAIR?exp=1700000000&psk=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
        "&addr=192.168.1.20:7734&addr=%5bfe80::1%5d:7734"
        "&dev=p56ioi7mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmtbbz4tjxzwicq2"
        "&lib=00010203-0405-0607-0809-0A0B0C0D0E0F&v=1",
        "shoebox://pair?v=%31&lib=00010203-0405-0607-0809-0a0b0c0d0e0f"
        "&dev=P56IOI7%20MZJNU2Y%20IQGDREY%20DM2MGTI%20MGL3BXN%20PQ6W5BM%20TBBZ4TJ%20XZWICQ2"
        "&addr=192.168.1.20%3A7734&addr=[fe80::1]:7734"
        "&psk=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8&exp=1700000000",
    };
    for (size_t i = 0; i < SBX_ARRAY_LEN(same); i++) {
        CHECK_EQ_INT(sbx_pair_uri_parse(&back, same[i]), 0);
        CHECK(invite_eq(&inv, &back));
    }
}

#define BASE "shoebox://pair?v=1&lib=00010203-0405-0607-0809-0a0b0c0d0e0f&dev=" \
    "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2&addr=192.168.1.20:7734"
#define PSK "&psk=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define EXP "&exp=1700000000"

SBX_TEST(uri_malformed_refused)
{
    static const struct { const char *uri; int rc; } cases[] = {
        {BASE PSK EXP, 0}, /* the control: everything below differs from it */
        /* missing fields */
        {BASE EXP, SBX_EMALFORMED},
        {BASE PSK, SBX_EMALFORMED},
        {"shoebox://pair?v=1&dev=P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
         "&addr=1.2.3.4:5" PSK EXP, SBX_EMALFORMED},
        {"shoebox://pair?v=1&lib=00010203-0405-0607-0809-0a0b0c0d0e0f&addr=1.2.3.4:5" PSK EXP,
         SBX_EMALFORMED},
        {"shoebox://pair?v=1&lib=00010203-0405-0607-0809-0a0b0c0d0e0f&dev="
         "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2" PSK EXP, SBX_EMALFORMED},
        {"shoebox://pair?lib=00010203-0405-0607-0809-0a0b0c0d0e0f&dev="
         "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2&addr=1.2.3.4:5" PSK EXP,
         SBX_EMALFORMED},
        /* bad base64 for the PSK */
        {BASE "&psk=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh" EXP, SBX_EMALFORMED},
        {BASE "&psk=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A" EXP, SBX_EMALFORMED},
        {BASE "&psk=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" EXP, SBX_EMALFORMED},
        {BASE "&psk=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+" EXP, SBX_EMALFORMED},
        {BASE "&psk=AAECAwQFBgcICQoLDA0ODxAREhMU/RYXGBkaGxwdHh8" EXP, SBX_EMALFORMED},
        {BASE "&psk=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9" EXP, SBX_EMALFORMED},
        {BASE "&psk=" EXP, SBX_EMALFORMED},
        /* versions */
        {"shoebox://pair?v=2&lib=x&whatever=1", SBX_EUNSUPPORTED},
        {BASE PSK EXP "&v=2", SBX_EMALFORMED}, /* v twice */
        {"shoebox://pair?v=0" "&lib=00010203-0405-0607-0809-0a0b0c0d0e0f", SBX_EUNSUPPORTED},
        {"shoebox://pair?v=" "&lib=00010203-0405-0607-0809-0a0b0c0d0e0f", SBX_EUNSUPPORTED},
        /* device id with a typo: the check character catches it */
        {"shoebox://pair?v=1&lib=00010203-0405-0607-0809-0a0b0c0d0e0f&dev="
         "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ3&addr=1.2.3.4:5" PSK EXP,
         SBX_ECORRUPT},
        {"shoebox://pair?v=1&lib=00010203-0405-0607-0809-0a0b0c0d0e0f&dev="
         "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ&addr=1.2.3.4:5" PSK EXP,
         SBX_EMALFORMED},
        /* too many addresses */
        {BASE "&addr=1.1.1.1:1&addr=1.1.1.1:2&addr=1.1.1.1:3&addr=1.1.1.1:4&addr=1.1.1.1:5"
              "&addr=1.1.1.1:6&addr=1.1.1.1:7&addr=1.1.1.1:8" PSK EXP, SBX_ETOOBIG},
        {BASE "&addr=1.1.1.1:1&addr=1.1.1.1:2&addr=1.1.1.1:3&addr=1.1.1.1:4&addr=1.1.1.1:5"
              "&addr=1.1.1.1:6&addr=1.1.1.1:7" PSK EXP, 0},
        /* bad addresses */
        {BASE "&addr=1.2.3.4" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=1.2.3.4:0" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=1.2.3.4:65536" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=1.2.3.4:080" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=1.2.3.4:" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=10.1:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=1.2.3.256:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=2001:db8::1:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=%5Bfe80::1%25eth0%5D:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=%5B1.2.3.4%5D:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=%5B::1%5D" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=-nas.local:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=nas-.local:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=nas..local:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=nas.local.:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=nas_1.local:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=n%20s.local:80" PSK EXP, SBX_EMALFORMED},
        {BASE "&addr=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x:80" PSK EXP,
         SBX_EMALFORMED}, /* a 64-character label */
        /* expiry */
        {BASE PSK "&exp=-1", SBX_EMALFORMED},
        {BASE PSK "&exp=01", SBX_EMALFORMED},
        {BASE PSK "&exp=1e9", SBX_EMALFORMED},
        {BASE PSK "&exp=", SBX_EMALFORMED},
        {BASE PSK "&exp=9223372036854775807", 0},
        {BASE PSK "&exp=9223372036854775808", SBX_EMALFORMED},
        {BASE PSK "&exp=0", 0},
        /* library id */
        {"shoebox://pair?v=1&lib=000102030405-0607-0809-0a0b0c0d0e0f-&dev=" VDEV
         "&addr=1.2.3.4:5" PSK EXP, SBX_EMALFORMED},
        {"shoebox://pair?v=1&lib=00010203-0405-0607-0809-0a0b0c0d0e0g&dev=" VDEV
         "&addr=1.2.3.4:5" PSK EXP, SBX_EMALFORMED},
        /* structure */
        {BASE PSK EXP "&", SBX_EMALFORMED},
        {BASE PSK "&" EXP, SBX_EMALFORMED},
        {BASE PSK EXP "&name=kitchen", SBX_EMALFORMED},
        {BASE PSK EXP "&exp=1700000000", SBX_EMALFORMED},
        {BASE PSK EXP "&lib=00010203-0405-0607-0809-0a0b0c0d0e0f", SBX_EMALFORMED},
        {BASE PSK EXP "&exp", SBX_EMALFORMED},
        {BASE PSK EXP "#frag", SBX_EMALFORMED},
        {BASE "&psk=%GGECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" EXP, SBX_EMALFORMED},
        {BASE PSK "&exp=170000000%3", SBX_EMALFORMED},
        {BASE PSK "&exp=1700000000%00", SBX_EMALFORMED},
        {BASE PSK "&exp=1700000000 ", SBX_EMALFORMED},
        {BASE PSK "&exp=1700000000\xc3\xa9", SBX_EMALFORMED},
        {BASE PSK "&Exp=1700000000", SBX_EMALFORMED},
        {"shoebox://pairs?v=1", SBX_EMALFORMED},
        {"shoebox://pair", SBX_EMALFORMED},
        {"shoebox://pair?", SBX_EMALFORMED},
        {"shoebox://pair/?v=1", SBX_EMALFORMED},
        {"https://pair?v=1", SBX_EMALFORMED},
        {"", SBX_EMALFORMED},
    };
    for (size_t i = 0; i < SBX_ARRAY_LEN(cases); i++) {
        sbx_pair_invite inv;
        memset(&inv, 0x5a, sizeof inv);
        int rc = sbx_pair_uri_parse(&inv, cases[i].uri);
        if (rc != cases[i].rc) printf("# case %zu: %s -> %d, want %d\n", i, cases[i].uri, rc, cases[i].rc);
        CHECK_EQ_INT(rc, cases[i].rc);
        /* A refused URI leaves nothing of its secret behind. */
        if (rc != 0) CHECK(all_zero(&inv, sizeof inv));
    }
}

/* An address of exactly SBX_MAX_PAIR_ADDR characters: a 249-character DNS
 * name (labels of 63, 63, 63, 57) and ":65535". `tag` varies the name. */
static void long_addr(char out[SBX_MAX_PAIR_ADDR + 2], char tag, size_t extra)
{
    size_t o = 0;
    const size_t labels[] = {63, 63, 63, 57 + extra};
    for (size_t l = 0; l < 4; l++) {
        if (l) out[o++] = '.';
        for (size_t i = 0; i < labels[l]; i++) out[o++] = (char)(i == 0 ? tag : 'a' + (char)(i % 26));
    }
    memcpy(out + o, ":65535", 7);
}

SBX_TEST(limits)
{
    sbx_pair_invite inv, back;
    char addr[SBX_MAX_PAIR_ADDR + 2], uri[SBX_MAX_PAIR_URI + 1];
    fixed_invite(&inv);
    inv.naddrs = 0;
    inv.expires_s = INT64_MAX;
    for (size_t i = 0; i < SBX_MAX_PAIR_ADDRS; i++) {
        long_addr(addr, (char)('a' + i), 0);
        CHECK_EQ_INT(strlen(addr), SBX_MAX_PAIR_ADDR);
        CHECK_EQ_INT(sbx_pair_invite_add_addr(&inv, addr), 0);
    }
    CHECK_EQ_INT(sbx_pair_invite_add_addr(&inv, "1.2.3.4:5"), SBX_ETOOBIG);
    /* The largest invitation fits the URI limit, and so a QR code. */
    REQUIRE(sbx_pair_uri_format(uri, &inv) == 0);
    printf("# largest invitation URI: %zu characters (limit %u)\n", strlen(uri), SBX_MAX_PAIR_URI);
    CHECK(strlen(uri) <= SBX_MAX_PAIR_URI);
    CHECK_EQ_INT(sbx_pair_uri_parse(&back, uri), 0);
    CHECK(invite_eq(&inv, &back));
    char *qr = NULL;
    CHECK_EQ_INT(sbx_pair_qr_text(uri, &qr), 0);
    free(qr);

    /* One character more in an address. */
    long_addr(addr, 'z', 1);
    CHECK_EQ_INT(strlen(addr), SBX_MAX_PAIR_ADDR + 1);
    CHECK_EQ_INT(sbx_pair_addr_check(addr), SBX_ETOOBIG);
    char big[SBX_MAX_PAIR_URI + 64];
    snprintf(big, sizeof big, BASE "&addr=%s" PSK EXP, addr);
    CHECK_EQ_INT(sbx_pair_uri_parse(&back, big), SBX_ETOOBIG);

    /* A URI one character over the limit is refused before anything else;
     * one at the limit is read (and here refused for its content). */
    memset(big, 0, sizeof big);
    snprintf(big, sizeof big, "%s", BASE PSK EXP "&addr=");
    size_t n = strlen(big);
    memset(big + n, 'a', SBX_MAX_PAIR_URI + 1 - n);
    big[SBX_MAX_PAIR_URI + 1] = '\0';
    CHECK_EQ_INT(sbx_pair_uri_parse(&back, big), SBX_ETOOBIG);
    big[SBX_MAX_PAIR_URI] = '\0';
    CHECK_EQ_INT(sbx_pair_uri_parse(&back, big), SBX_ETOOBIG); /* addr > 255 */
    CHECK_EQ_INT(sbx_pair_qr_text(big, &qr), 0); /* at the limit: fits a QR code */
    free(qr);
    big[SBX_MAX_PAIR_URI] = 'a';
    qr = NULL;
    CHECK_EQ_INT(sbx_pair_qr_text(big, &qr), SBX_ETOOBIG);
    CHECK(qr == NULL);

    /* Formatting refuses an invitation that breaks the rules. */
    fixed_invite(&inv);
    inv.naddrs = 0;
    CHECK_EQ_INT(sbx_pair_uri_format(uri, &inv), SBX_EINVAL);
    fixed_invite(&inv);
    snprintf(inv.addrs[0], sizeof inv.addrs[0], "not an address");
    CHECK_EQ_INT(sbx_pair_uri_format(uri, &inv), SBX_EINVAL);
    fixed_invite(&inv);
    inv.expires_s = -5;
    CHECK_EQ_INT(sbx_pair_uri_format(uri, &inv), SBX_EINVAL);
}

SBX_TEST(expiry)
{
    sbx_pair_invite inv, back;
    uint8_t lib[16] = {1}, key[32] = {2};
    CHECK_EQ_INT(sbx_pair_invite_init(&inv, lib, key, -1), SBX_EINVAL);
    REQUIRE(sbx_pair_invite_init(&inv, lib, key, 1700000600) == 0);
    CHECK(!all_zero(inv.psk, 32));
    REQUIRE(sbx_pair_invite_add_addr(&inv, "10.0.0.2:7734") == 0);
    char uri[SBX_MAX_PAIR_URI + 1];
    REQUIRE(sbx_pair_uri_format(uri, &inv) == 0);
    REQUIRE(sbx_pair_uri_parse(&back, uri) == 0);
    CHECK_EQ_INT(back.expires_s, 1700000600);
    CHECK_EQ_INT(sbx_pair_invite_expired(&back, 1700000000), 0);
    CHECK_EQ_INT(sbx_pair_invite_expired(&back, 1700000599), 0);
    CHECK_EQ_INT(sbx_pair_invite_expired(&back, 1700000600), SBX_EEXPIRED);
    CHECK_EQ_INT(sbx_pair_invite_expired(&back, 1800000000), SBX_EEXPIRED);
    sbx_pair_invite_wipe(&back);
    CHECK(all_zero(&back, sizeof back));
}

/* ---- QR helpers ---------------------------------------------------------- */

static char tmpdir[64];

static int make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sbx-pair-XXXXXX");
    return mkdtemp(tmpdir) != NULL;
}

static int have_zbarimg(void)
{
    return system("command -v zbarimg >/dev/null 2>&1") == 0;
}

/* Scans a PNG with zbarimg. Returns a malloc'd string of what it read, the
 * final newline removed, or NULL when it read nothing. */
static char *zbar_scan(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "zbarimg --raw -q -Sdisable -Sqrcode.enable '%s' 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - 1 - n, p)) > 0) n += r;
    int st = pclose(p);
    if (!buf || st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || n == 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (buf[n - 1] == '\n') buf[n - 1] = '\0';
    return buf;
}

/* Reads back the half-block text: a grid of modules, 1 = dark. A block
 * paints light modules (qrencode's UTF8 convention): U+2588 both light,
 * U+2580 only the upper, U+2584 only the lower, space neither. Returns the
 * side length, or 0 if the text breaks the convention. */
static size_t text_to_modules(const char *text, uint8_t *grid, size_t max_side)
{
    size_t side = 0, line = 0, x = 0;
    const char *p = text;
    while (*p) {
        int top, bottom;
        if (*p == '\n') {
            if (line == 0) side = x;
            if (x != side || side == 0 || side > max_side) return 0;
            line++;
            x = 0;
            p++;
            continue;
        }
        if (*p == ' ') { top = 0; bottom = 0; p += 1; }
        else if (!strncmp(p, "\xe2\x96\x88", 3)) { top = 1; bottom = 1; p += 3; }
        else if (!strncmp(p, "\xe2\x96\x80", 3)) { top = 1; bottom = 0; p += 3; }
        else if (!strncmp(p, "\xe2\x96\x84", 3)) { top = 0; bottom = 1; p += 3; }
        else return 0;
        if (x >= max_side || 2 * line + 1 >= 2 * max_side) return 0;
        grid[(2 * line) * max_side + x] = (uint8_t)!top;
        grid[(2 * line + 1) * max_side + x] = (uint8_t)!bottom;
        x++;
    }
    if (x != 0 || line != (side + 1) / 2) return 0;
    /* The half row under an odd-height code is drawn light, as margin. */
    for (size_t i = 0; i < side && side % 2; i++)
        if (grid[side * max_side + i]) return 0;
    return side;
}

/* Writes modules as an 8-bit grayscale PNG with libpng's simplified API,
 * independently of the library's own PNG writer. */
static int modules_to_png(const uint8_t *grid, size_t stride, size_t side, size_t scale,
                          const char *path)
{
    size_t px = side * scale;
    uint8_t *img = malloc(px * px);
    if (!img) return 0;
    for (size_t y = 0; y < px; y++)
        for (size_t x = 0; x < px; x++)
            img[y * px + x] = grid[(y / scale) * stride + x / scale] ? 0 : 255;
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)px;
    im.height = (png_uint_32)px;
    im.format = PNG_FORMAT_GRAY;
    int ok = png_image_write_to_file(&im, path, 0, img, (png_int_32)px, NULL);
    free(img);
    return ok;
}

static void cleanup_tmp(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unlink(path);
}

/* ---- QR tests ------------------------------------------------------------ */

SBX_TEST(qr_png_scans)
{
    REQUIRE(sodium_init() >= 0);
    REQUIRE(make_tmpdir());
    char path[256];
    snprintf(path, sizeof path, "%s/invite.png", tmpdir);
    CHECK_EQ_INT(sbx_pair_qr_png(FIXED_URI, path, 0), SBX_EINVAL);
    CHECK_EQ_INT(sbx_pair_qr_png(FIXED_URI, path, SBX_MAX_QR_SCALE + 1), SBX_EINVAL);
    CHECK_EQ_INT(sbx_pair_qr_png("", path, 4), SBX_EINVAL);
    CHECK(access(path, F_OK) != 0);

    REQUIRE(sbx_pair_qr_png(FIXED_URI, path, 6) == 0);
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600); /* it holds the secret */
    uint8_t sig[8];
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    CHECK(fread(sig, 1, 8, f) == 8 && png_sig_cmp(sig, 0, 8) == 0);
    fclose(f);
    /* Read it back: square, side (width + 8) * scale, with a light margin. */
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    REQUIRE(png_image_begin_read_from_file(&im, path));
    im.format = PNG_FORMAT_GRAY;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
    REQUIRE(px != NULL);
    CHECK(png_image_finish_read(&im, NULL, px, 0, NULL));
    CHECK_EQ_INT(im.width, im.height);
    CHECK_EQ_INT(im.width % 6, 0);
    size_t side = im.width / 6;
    CHECK(side >= 29 && (side - 8) % 4 == 1); /* QR sides are 21 + 4k */
    for (size_t i = 0; i < 4 * 6; i++) CHECK(px[i * im.width + i] == 255);
    /* The top-left finder pattern starts dark at module (4, 4). */
    CHECK(px[(4 * 6) * im.width + 4 * 6] == 0);
    free(px);

    if (!have_zbarimg()) {
        cleanup_tmp("invite.png");
        rmdir(tmpdir);
        SKIP("zbarimg missing");
    }
    char *got = zbar_scan(path);
    CHECK_EQ_STR(got, FIXED_URI);
    free(got);

    /* A random invitation with IPv6 and several addresses, and the largest
     * invitation there is (a version 40 code). */
    sbx_pair_invite inv;
    uint8_t lib[16], key[32];
    char uri[SBX_MAX_PAIR_URI + 1];
    sbx_uuid_random(lib);
    randombytes_buf(key, sizeof key);
    REQUIRE(sbx_pair_invite_init(&inv, lib, key, 1700000000) == 0);
    REQUIRE(sbx_pair_invite_add_addr(&inv, "192.168.1.20:7734") == 0);
    REQUIRE(sbx_pair_invite_add_addr(&inv, "[2001:db8:85a3::8a2e:370:7334]:7734") == 0);
    REQUIRE(sbx_pair_invite_add_addr(&inv, "home.example.net:7734") == 0);
    REQUIRE(sbx_pair_uri_format(uri, &inv) == 0);
    REQUIRE(sbx_pair_qr_png(uri, path, 3) == 0);
    got = zbar_scan(path);
    CHECK_EQ_STR(got, uri);
    free(got);

    inv.naddrs = 0;
    char addr[SBX_MAX_PAIR_ADDR + 2];
    for (size_t i = 0; i < SBX_MAX_PAIR_ADDRS; i++) {
        long_addr(addr, (char)('a' + i), 0);
        REQUIRE(sbx_pair_invite_add_addr(&inv, addr) == 0);
    }
    inv.expires_s = INT64_MAX;
    REQUIRE(sbx_pair_uri_format(uri, &inv) == 0);
    REQUIRE(sbx_pair_qr_png(uri, path, 4) == 0);
    got = zbar_scan(path);
    CHECK_EQ_STR(got, uri);
    free(got);
    sbx_pair_invite_wipe(&inv);
    cleanup_tmp("invite.png");
    rmdir(tmpdir);
}

static void check_text_qr(const char *uri, const char *png_path, int scan)
{
    char *text = NULL;
    REQUIRE(sbx_pair_qr_text(uri, &text) == 0);
    REQUIRE(text != NULL);
    /* The first line is quiet zone, light modules: all full blocks. */
    const char *nl = strchr(text, '\n');
    REQUIRE(nl != NULL);
    CHECK((size_t)(nl - text) % 3 == 0);
    for (const char *p = text; p < nl; p += 3) CHECK(strncmp(p, "\xe2\x96\x88", 3) == 0);

    enum { MAX_SIDE = 177 + 8 };
    static uint8_t grid[(MAX_SIDE + 1) * MAX_SIDE];
    memset(grid, 0, sizeof grid);
    size_t side = text_to_modules(text, grid, MAX_SIDE);
    CHECK(side >= 29 && (side - 8) % 4 == 1);
    if (side == 0) { free(text); return; }
    /* Quiet zone all light; finder pattern corner dark. */
    for (size_t i = 0; i < side; i++)
        for (size_t k = 0; k < 4; k++) {
            CHECK(grid[k * MAX_SIDE + i] == 0 && grid[(side - 1 - k) * MAX_SIDE + i] == 0);
            CHECK(grid[i * MAX_SIDE + k] == 0 && grid[i * MAX_SIDE + side - 1 - k] == 0);
        }
    CHECK(grid[4 * MAX_SIDE + 4] == 1);

    /* Byte for byte what qrencode(1) prints, when it is installed. */
    if (system("command -v qrencode >/dev/null 2>&1") == 0) {
        char cmd[SBX_MAX_PAIR_URI + 64];
        snprintf(cmd, sizeof cmd, "qrencode -t UTF8 -l M -m 4 '%s'", uri);
        FILE *p = popen(cmd, "r");
        REQUIRE(p != NULL);
        size_t cap = strlen(text) + 4096, n = 0, r;
        char *ref = malloc(cap);
        REQUIRE(ref != NULL);
        while ((r = fread(ref + n, 1, cap - 1 - n, p)) > 0) n += r;
        pclose(p);
        ref[n] = '\0';
        CHECK_EQ_INT(strcmp(ref, text), 0);
        free(ref);
    } else {
        printf("# qrencode(1) not installed: output not compared with it\n");
    }

    if (scan) {
        CHECK(modules_to_png(grid, MAX_SIDE, side, 4, png_path));
        char *got = zbar_scan(png_path);
        CHECK_EQ_STR(got, uri);
        free(got);
    }
    free(text);
}

SBX_TEST(qr_text_scans)
{
    REQUIRE(make_tmpdir());
    char path[256];
    snprintf(path, sizeof path, "%s/text.png", tmpdir);
    int scan = have_zbarimg();
    char *text = (char *)1;
    CHECK_EQ_INT(sbx_pair_qr_text("", &text), SBX_EINVAL);
    CHECK(text == NULL);

    check_text_qr(FIXED_URI, path, scan);
    check_text_qr("hi", path, scan);
    sbx_pair_invite inv;
    fixed_invite(&inv);
    REQUIRE(sbx_pair_invite_add_addr(&inv, "[2001:db8::42]:7734") == 0);
    REQUIRE(sbx_pair_invite_add_addr(&inv, "photos.example.org:7734") == 0);
    char uri[SBX_MAX_PAIR_URI + 1];
    REQUIRE(sbx_pair_uri_format(uri, &inv) == 0);
    check_text_qr(uri, path, scan);

    cleanup_tmp("text.png");
    rmdir(tmpdir);
    if (!scan) SKIP("zbarimg missing");
}

SBX_TEST_MAIN(SBX_CASE(uri_golden), SBX_CASE(uri_roundtrip),
              SBX_CASE(uri_lenient_where_harmless), SBX_CASE(uri_malformed_refused),
              SBX_CASE(limits), SBX_CASE(expiry), SBX_CASE(qr_png_scans),
              SBX_CASE(qr_text_scans))
