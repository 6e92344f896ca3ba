/* Fuzzes what the HTTP API parses from clients before any handler runs:
 * route matching, feed and page cursors, Range headers, query strings and
 * percent-escapes, durations, share tokens, HTML escaping and the JSON key
 * rewrite. The first byte picks the parser; the rest is its input. Every
 * accepted value must satisfy its contract (bounds, canonical encoding). */
#include "shoebox/api.h"
#include "shoebox/err.h"
#include "shoebox/share.h"
#include "shoebox/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void routes(const char *in, size_t len)
{
    /* "METHOD path": the method is what comes before the first space. */
    const char *sp = memchr(in, ' ', len);
    size_t ml = sp ? (size_t)(sp - in) : 0;
    const char *path = sp ? sp + 1 : in;
    size_t pl = len - (size_t)(path - in);
    for (int server = SBX_API_LOCAL; server <= SBX_API_PUBLIC; server++) {
        struct sbx_api_match m;
        int rc = sbx_api_route_match(server, in, ml, path, pl, &m);
        SBX_ASSERT(rc == 0 || rc == SBX_ENOENT || rc == SBX_EUNSUPPORTED);
        if (rc != 0) continue;
        const struct sbx_api_route *r = &sbx_api_routes[m.route];
        SBX_ASSERT(r->server == server && strlen(r->method) == ml && memcmp(r->method, in, ml) == 0);
        SBX_ASSERT(m.n_params <= SBX_API_MAX_PARAMS);
        for (size_t i = 0; i < m.n_params; i++) {
            SBX_ASSERT(m.param[i].len > 0 && m.param[i].ptr >= path && m.param[i].ptr + m.param[i].len <= path + pl);
            SBX_ASSERT(memchr(m.param[i].ptr, '/', m.param[i].len) == NULL);
        }
    }
}

static void cursors(const char *in, size_t len)
{
    struct sbx_feed_pos f;
    char again[SBX_API_CURSOR_STRLEN + 1];
    if (sbx_api_feed_cursor_parse(KEY, in, len, &f) == 0) {
        sbx_api_feed_cursor(again, KEY, &f);
        SBX_ASSERT(len == SBX_API_CURSOR_STRLEN && memcmp(again, in, len) == 0);
    }
    struct sbx_page_pos p;
    if (sbx_api_page_cursor_parse(KEY, in, len, &p) == 0) {
        sbx_api_page_cursor(again, KEY, &p);
        SBX_ASSERT(len == SBX_API_CURSOR_STRLEN && memcmp(again, in, len) == 0);
    }
}

static void range(const char *in, size_t len)
{
    if (len < 8) return;
    uint64_t size = 0;
    memcpy(&size, in, 8);
    size %= 1ull << 40;
    uint64_t a = 0, b = 0;
    int rc = sbx_http_range(in + 8, len - 8, size, &a, &b);
    SBX_ASSERT(rc == 0 || rc == SBX_EINVAL || rc == SBX_EUNSUPPORTED);
    if (rc == 0) SBX_ASSERT(a <= b && b < size);
}

static void query(const char *in, size_t len)
{
    char out[64];
    static const char *const names[] = {"limit", "cursor", "deleted", "page", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int rc = sbx_http_query(in, len, names[i], out, sizeof out);
        if (rc == 0) SBX_ASSERT(strlen(out) < sizeof out);
    }
    size_t n = 0;
    char big[512];
    if (sbx_http_unescape(in, len, true, big, sizeof big, &n) == 0) SBX_ASSERT(n <= len && strlen(big) == n);
}

static void token(const char *in, size_t len)
{
    uint8_t link[16], sig[64];
    if (sbx_share_token_parse(in, len, link, sig) == 0) SBX_ASSERT(len == SBX_SHARE_TOKEN_STRLEN);
    char s[64];
    size_t n = len < sizeof s - 1 ? len : sizeof s - 1;
    memcpy(s, in, n);
    s[n] = '\0';
    int64_t secs = 0;
    if (sbx_duration_parse(s, &secs) == 0) SBX_ASSERT(secs >= 1 && secs <= 10ll * 366 * 86400);
    char *e = sbx_html_escape(s);
    SBX_ASSERT(e && !strchr(e, '<') && !strchr(e, '>') && !strchr(e, '"'));
    free(e);
}

static void camel(const char *in, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(in, len, JSON_DECODE_ANY, &err);
    if (!v) return;
    json_t *c = sbx_json_camel(v);
    SBX_ASSERT(c != NULL);
    json_decref(c);
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 6) {
    case 0: routes(in, len); break;
    case 1: cursors(in, len); break;
    case 2: range(in, len); break;
    case 3: query(in, len); break;
    case 4: token(in, len); break;
    default: camel(in, len); break;
    }
    return 0;
}
