/* The local API's pure pieces: the route table against docs/api.yaml,
 * route matching, cursors (round trip, tampering, another device's key),
 * Range and query parsing, durations, HTML escaping, camelCase keys, the
 * rate limiter, and share tokens checked against a real library (valid,
 * revoked, expired, tampered, foreign, deleted target). */
#include "sbx_test.h"
#include "shoebox/api.h"
#include "shoebox/engine.h"
#include "shoebox/err.h"
#include "shoebox/share.h"
#include "shoebox/util.h"

#include <ctype.h>
#include <sodium.h>
#include <stdint.h>
#include <unistd.h>

/* ---- docs/api.yaml against the route table ---- */

#define MAX_DOC_ROUTES 256

/* Reads "METHOD /path" pairs from the paths: section of an OpenAPI file:
 * paths are the keys indented by two spaces, methods the keys under them
 * indented by four. */
static size_t yaml_routes(const char *file, char out[][160], size_t cap)
{
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[1024], path[128] = "";
    bool in_paths = false;
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] != ' ' && line[0] != '\n' && line[0] != '#') in_paths = strncmp(line, "paths:", 6) == 0;
        if (!in_paths) continue;
        size_t ind = strspn(line, " ");
        char *key = line + ind;
        char *colon = strchr(key, ':');
        if (!colon) continue;
        *colon = '\0';
        if (ind == 2 && key[0] == '/') snprintf(path, sizeof path, "%.120s", key);
        else if (ind == 4 && path[0] && n < cap &&
                 (!strcmp(key, "get") || !strcmp(key, "put") || !strcmp(key, "post") || !strcmp(key, "patch") ||
                  !strcmp(key, "delete"))) {
            char m[8];
            size_t i = 0;
            for (; key[i] && i < sizeof m - 1; i++) m[i] = (char)toupper((unsigned char)key[i]);
            m[i] = '\0';
            snprintf(out[n++], 160, "%s %.140s", m, path);
        }
    }
    fclose(f);
    return n;
}

SBX_TEST(api_yaml_matches_route_table)
{
    const char *src = getenv("SHOEBOX_SRC");
    if (!src) SKIP("SHOEBOX_SRC not set");
    char file[1024];
    snprintf(file, sizeof file, "%s/docs/api.yaml", src);
    static char doc[MAX_DOC_ROUTES][160];
    size_t n = yaml_routes(file, doc, MAX_DOC_ROUTES);
    REQUIRE(n > 0);
    /* Every route of the code is documented ... */
    for (size_t r = 0; r < SBX_ROUTE__COUNT; r++) {
        char want[160];
        snprintf(want, sizeof want, "%s %s", sbx_api_routes[r].method, sbx_api_routes[r].pattern);
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) found = strcmp(doc[i], want) == 0;
        if (!found) printf("# route %s is not in docs/api.yaml\n", want);
        CHECK(found);
    }
    /* ... and every documented route exists. */
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t r = 0; r < SBX_ROUTE__COUNT && !found; r++) {
            char have[160];
            snprintf(have, sizeof have, "%s %s", sbx_api_routes[r].method, sbx_api_routes[r].pattern);
            found = strcmp(doc[i], have) == 0;
        }
        if (!found) printf("# docs/api.yaml documents %s, which the server does not have\n", doc[i]);
        CHECK(found);
    }
    CHECK_EQ_INT(n, SBX_ROUTE__COUNT);
}

static int match(int server, const char *method, const char *path, struct sbx_api_match *m)
{
    return sbx_api_route_match(server, method, strlen(method), path, strlen(path), m);
}

SBX_TEST(route_matching)
{
    struct sbx_api_match m;
    CHECK_EQ_INT(match(SBX_API_LOCAL, "GET", "/photos", &m), 0);
    CHECK_EQ_INT(m.route, SBX_ROUTE_photos_list);
    CHECK_EQ_INT(m.n_params, 0);
    CHECK_EQ_INT(match(SBX_API_LOCAL, "PUT", "/uploads/abc/chunks/7", &m), 0);
    CHECK_EQ_INT(m.route, SBX_ROUTE_upload_chunk);
    REQUIRE(m.n_params == 2);
    CHECK(m.param[0].len == 3 && memcmp(m.param[0].ptr, "abc", 3) == 0);
    CHECK(m.param[1].len == 1 && m.param[1].ptr[0] == '7');
    CHECK_EQ_INT(match(SBX_API_LOCAL, "DELETE", "/photos/x/tags/be%20ach", &m), 0);
    CHECK_EQ_INT(m.route, SBX_ROUTE_photo_untag);
    /* The method picks among routes of one path; another method is 405. */
    CHECK_EQ_INT(match(SBX_API_LOCAL, "PATCH", "/albums/x", &m), 0);
    CHECK_EQ_INT(m.route, SBX_ROUTE_album_rename);
    CHECK_EQ_INT(match(SBX_API_LOCAL, "PUT", "/photos", &m), SBX_EUNSUPPORTED);
    CHECK_EQ_INT(match(SBX_API_LOCAL, "GET", "/photos/", &m), SBX_ENOENT);
    CHECK_EQ_INT(match(SBX_API_LOCAL, "GET", "/photos//thumb", &m), SBX_ENOENT);
    CHECK_EQ_INT(match(SBX_API_LOCAL, "GET", "/photos/a/thumb/x", &m), SBX_ENOENT);
    CHECK_EQ_INT(match(SBX_API_LOCAL, "GET", "", &m), SBX_ENOENT);
    CHECK_EQ_INT(match(SBX_API_LOCAL, "GET", "photos", &m), SBX_ENOENT);
    /* Each server sees only its own routes. */
    CHECK_EQ_INT(match(SBX_API_PUBLIC, "GET", "/photos", &m), SBX_ENOENT);
    CHECK_EQ_INT(match(SBX_API_LOCAL, "GET", "/s/tok", &m), SBX_ENOENT);
    CHECK_EQ_INT(match(SBX_API_PUBLIC, "GET", "/s/tok/thumb/p", &m), 0);
    CHECK_EQ_INT(m.route, SBX_ROUTE_share_thumb);
}

/* ---- cursors ---- */

SBX_TEST(cursors_round_trip_and_refuse_tampering)
{
    uint8_t key[32], other[32];
    randombytes_buf(key, sizeof key);
    randombytes_buf(other, sizeof other);
    struct sbx_feed_pos f = {.seq = 123456789, .kind = SBX_FEED_ALBUM}, g;
    randombytes_buf(f.id, 16);
    char c[SBX_API_CURSOR_STRLEN + 1];
    sbx_api_feed_cursor(c, key, &f);
    CHECK_EQ_INT(strlen(c), SBX_API_CURSOR_STRLEN);
    REQUIRE(sbx_api_feed_cursor_parse(key, c, strlen(c), &g) == 0);
    CHECK(g.seq == f.seq && g.kind == f.kind && memcmp(g.id, f.id, 16) == 0);
    /* Another device's key, any changed character, a page cursor, junk. */
    CHECK_EQ_INT(sbx_api_feed_cursor_parse(other, c, strlen(c), &g), SBX_ECRYPTO);
    for (size_t i = 0; i < SBX_API_CURSOR_STRLEN; i++) {
        char t[SBX_API_CURSOR_STRLEN + 1];
        memcpy(t, c, sizeof t);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        int rc = sbx_api_feed_cursor_parse(key, t, strlen(t), &g);
        CHECK(rc == SBX_ECRYPTO || rc == SBX_EMALFORMED);
    }
    struct sbx_page_pos p = {.deleted = true, .captured_at = -5, .null_zone = false}, q;
    randombytes_buf(p.id, 16);
    char pc[SBX_API_CURSOR_STRLEN + 1];
    sbx_api_page_cursor(pc, key, &p);
    CHECK_EQ_INT(sbx_api_feed_cursor_parse(key, pc, strlen(pc), &g), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_api_page_cursor_parse(key, c, strlen(c), &q), SBX_EMALFORMED);
    REQUIRE(sbx_api_page_cursor_parse(key, pc, strlen(pc), &q) == 0);
    CHECK(q.deleted && !q.null_zone && q.captured_at == -5 && memcmp(q.id, p.id, 16) == 0);
    CHECK_EQ_INT(sbx_api_page_cursor_parse(key, "", 0, &q), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_api_page_cursor_parse(key, pc, strlen(pc) - 1, &q), SBX_EMALFORMED);
    char junk[SBX_API_CURSOR_STRLEN + 1];
    memset(junk, '!', SBX_API_CURSOR_STRLEN);
    junk[SBX_API_CURSOR_STRLEN] = '\0';
    CHECK_EQ_INT(sbx_api_page_cursor_parse(key, junk, SBX_API_CURSOR_STRLEN, &q), SBX_EMALFORMED);
    /* A byte above 0x7f is not base64, even where libsodium's decoder would
     * take it (found by fuzz_api). */
    char high[SBX_API_CURSOR_STRLEN + 1];
    memcpy(high, pc, sizeof high);
    high[40] = (char)0xd1;
    CHECK_EQ_INT(sbx_api_page_cursor_parse(key, high, SBX_API_CURSOR_STRLEN, &q), SBX_EMALFORMED);
}

/* ---- HTTP details ---- */

static int range(const char *v, uint64_t size, uint64_t *a, uint64_t *b) { return sbx_http_range(v, strlen(v), size, a, b); }

SBX_TEST(range_parsing)
{
    uint64_t a = 0, b = 0;
    CHECK_EQ_INT(range("bytes=0-99", 1000, &a, &b), 0);
    CHECK(a == 0 && b == 99);
    CHECK_EQ_INT(range("bytes=900-", 1000, &a, &b), 0);
    CHECK(a == 900 && b == 999);
    CHECK_EQ_INT(range("bytes=-100", 1000, &a, &b), 0);
    CHECK(a == 900 && b == 999);
    CHECK_EQ_INT(range("bytes=-5000", 1000, &a, &b), 0);
    CHECK(a == 0 && b == 999);
    CHECK_EQ_INT(range("bytes=500-5000", 1000, &a, &b), 0);
    CHECK(a == 500 && b == 999);
    CHECK_EQ_INT(range("Bytes=1-1", 10, &a, &b), 0);
    CHECK(a == 1 && b == 1);
    CHECK_EQ_INT(range("bytes=1000-", 1000, &a, &b), SBX_EINVAL);
    CHECK_EQ_INT(range("bytes=-0", 1000, &a, &b), SBX_EINVAL);
    CHECK_EQ_INT(range("bytes=0-0", 0, &a, &b), SBX_EINVAL);
    /* Ignored (the whole body is sent): other units, syntax errors, several ranges. */
    CHECK_EQ_INT(range("items=0-1", 1000, &a, &b), SBX_EUNSUPPORTED);
    CHECK_EQ_INT(range("bytes=5-1", 1000, &a, &b), SBX_EUNSUPPORTED);
    CHECK_EQ_INT(range("bytes=0-1,5-6", 1000, &a, &b), SBX_EUNSUPPORTED);
    CHECK_EQ_INT(range("bytes=x-1", 1000, &a, &b), SBX_EUNSUPPORTED);
    CHECK_EQ_INT(range("bytes=99999999999999999999-", 1000, &a, &b), SBX_EUNSUPPORTED);
    CHECK_EQ_INT(range("bytes=-", 1000, &a, &b), SBX_EUNSUPPORTED);
}

SBX_TEST(query_and_escapes)
{
    char out[64];
    const char *q = "limit=20&cursor=ab%2Dc&flag&x=a+b&empty=";
    CHECK_EQ_INT(sbx_http_query(q, strlen(q), "limit", out, sizeof out), 0);
    CHECK_EQ_STR(out, "20");
    CHECK_EQ_INT(sbx_http_query(q, strlen(q), "cursor", out, sizeof out), 0);
    CHECK_EQ_STR(out, "ab-c");
    CHECK_EQ_INT(sbx_http_query(q, strlen(q), "flag", out, sizeof out), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(sbx_http_query(q, strlen(q), "x", out, sizeof out), 0);
    CHECK_EQ_STR(out, "a b");
    CHECK_EQ_INT(sbx_http_query(q, strlen(q), "empty", out, sizeof out), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(sbx_http_query(q, strlen(q), "lim", out, sizeof out), SBX_ENOENT);
    CHECK_EQ_INT(sbx_http_query(q, strlen(q), "cursor", out, 4), SBX_ETOOBIG);
    size_t n = 0;
    CHECK_EQ_INT(sbx_http_unescape("a%2Fb+c", 7, false, out, sizeof out, &n), 0);
    CHECK_EQ_STR(out, "a/b+c");
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_INT(sbx_http_unescape("a%2", 3, false, out, sizeof out, &n), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_http_unescape("a%zz", 4, false, out, sizeof out, &n), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_http_unescape("a%00b", 5, false, out, sizeof out, &n), SBX_EMALFORMED);
}

SBX_TEST(durations)
{
    int64_t s = 0;
    CHECK_EQ_INT(sbx_duration_parse("90", &s), 0);
    CHECK_EQ_INT(s, 90);
    CHECK_EQ_INT(sbx_duration_parse("30m", &s), 0);
    CHECK_EQ_INT(s, 1800);
    CHECK_EQ_INT(sbx_duration_parse("12h", &s), 0);
    CHECK_EQ_INT(s, 43200);
    CHECK_EQ_INT(sbx_duration_parse("7d", &s), 0);
    CHECK_EQ_INT(s, 604800);
    CHECK_EQ_INT(sbx_duration_parse("2w", &s), 0);
    CHECK_EQ_INT(s, 1209600);
    CHECK_EQ_INT(sbx_duration_parse("0s", &s), SBX_EINVAL);
    CHECK_EQ_INT(sbx_duration_parse("", &s), SBX_EINVAL);
    CHECK_EQ_INT(sbx_duration_parse("d", &s), SBX_EINVAL);
    CHECK_EQ_INT(sbx_duration_parse("-5m", &s), SBX_EINVAL);
    CHECK_EQ_INT(sbx_duration_parse("11y", &s), SBX_EINVAL);
    CHECK_EQ_INT(sbx_duration_parse("9999w", &s), SBX_EINVAL);
}

SBX_TEST(html_escape_and_camel_case)
{
    char *e = sbx_html_escape("<a href=\"x\">Tom & 'Jerry'</a>");
    CHECK_EQ_STR(e, "&lt;a href=&#34;x&#34;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
    free(e);
    json_t *in = json_pack("{s:s, s:[{s:i}], s:n, s:s}", "file_name", "a_b", "photo_ids", "size_bytes", 3, "deleted_at",
                           "id", "x");
    json_t *out = sbx_json_camel(in);
    CHECK_EQ_STR(json_string_value(json_object_get(out, "fileName")), "a_b");
    CHECK(json_is_null(json_object_get(out, "deletedAt")));
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(json_object_get(out, "photoIds"), 0), "sizeBytes")), 3);
    CHECK(json_object_get(out, "file_name") == NULL);
    CHECK_EQ_INT(json_object_size(out), 4);
    json_decref(in);
    json_decref(out);
}

SBX_TEST(rate_limiter_buckets)
{
    sbx_ratelimit *rl = NULL;
    REQUIRE(sbx_ratelimit_new(&rl, 64, 10.0, 5.0) == 0);
    const uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
    int64_t t = 1000000;
    for (int i = 0; i < 5; i++) CHECK(sbx_ratelimit_take(rl, a, 4, 1, t));
    CHECK(!sbx_ratelimit_take(rl, a, 4, 1, t));
    /* Another address has its own bucket. */
    CHECK(sbx_ratelimit_take(rl, b, 4, 1, t));
    /* 10 per second: after 200 ms two more. */
    CHECK(sbx_ratelimit_take(rl, a, 4, 1, t + 200));
    CHECK(sbx_ratelimit_take(rl, a, 4, 1, t + 200));
    CHECK(!sbx_ratelimit_take(rl, a, 4, 1, t + 200));
    /* A request costlier than the bucket holds is refused and takes
     * nothing; a penalty is charged whatever it holds: b then waits for
     * its bucket to refill from below zero (10/s, floor -5: 0.6 s to one). */
    CHECK(!sbx_ratelimit_take(rl, b, 4, 10, t));
    CHECK(sbx_ratelimit_take(rl, b, 4, 1, t));
    sbx_ratelimit_charge(rl, b, 4, 10, t);
    CHECK(!sbx_ratelimit_take(rl, b, 4, 1, t));
    CHECK(!sbx_ratelimit_take(rl, b, 4, 1, t + 500));
    CHECK(sbx_ratelimit_take(rl, b, 4, 1, t + 650));
    /* Thousands of addresses: the table stays bounded and keeps working. */
    for (uint32_t i = 0; i < 5000; i++) {
        uint8_t k[4];
        memcpy(k, &i, 4);
        sbx_ratelimit_take(rl, k, 4, 1, t + 1000 + i);
    }
    CHECK(sbx_ratelimit_take(rl, a, 4, 1, t + 100000));
    sbx_ratelimit_free(rl);
    CHECK_EQ_INT(sbx_ratelimit_new(&rl, 4, 1, 1), SBX_EINVAL);
}

/* ---- share tokens against a real library ---- */

struct lib {
    char dir[64];
    struct sbx_identity id;
    sbx_store *store;
    sbx_engine *engine;
};

static int lib_open(struct lib *l)
{
    snprintf(l->dir, sizeof l->dir, "/tmp/sbx-api-XXXXXX");
    if (!mkdtemp(l->dir)) return -1;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/shoebox.db", l->dir);
    crypto_sign_keypair(l->id.pk, l->id.sk);
    int rc = sbx_store_open(&l->store, path, SBX_STORE_CREATE, err, sizeof err);
    if (rc == 0) rc = sbx_engine_create_library(l->store, &l->id, "Family", "nas", SBX_ROLE_FULL, sbx_now_ms());
    if (rc == 0) rc = sbx_engine_open(&l->engine, l->store, &l->id, NULL);
    return rc;
}

static void lib_close(struct lib *l)
{
    sbx_engine_close(l->engine);
    sbx_store_close(l->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %.*s", (int)sizeof l->dir, l->dir);
    if (system(cmd) != 0) printf("# cleanup of %s failed\n", l->dir);
}

static int write1(struct lib *l, const struct sbx_op *op) { return sbx_engine_write(l->engine, op, 1, sbx_now_ms()); }

static void token_for(struct lib *l, const uint8_t link[16], bool album, const uint8_t target[16], int64_t exp,
                      const uint8_t sk[64], char tok[SBX_SHARE_TOKEN_STRLEN + 1])
{
    struct sbx_share_claim c = {.is_album = album, .expires_at_ms = exp};
    memcpy(c.library, sbx_engine_library(l->engine), 16);
    memcpy(c.link, link, 16);
    memcpy(c.target, target, 16);
    sbx_share_token_make(tok, &c, sk);
}

SBX_TEST(share_tokens_checked_against_the_log)
{
    struct lib l;
    REQUIRE(lib_open(&l) == 0);
    int64_t now = sbx_now_ms();
    struct sbx_op album = {.type = SBX_OP_ALBUM_CREATE, .name = {"Trip", 4}};
    sbx_uuid_random(album.id);
    REQUIRE(write1(&l, &album) == 0);
    struct sbx_op link = {.type = SBX_OP_SHARE_CREATE, .ref_is_album = true, .expires_at_ms = now + 3600000};
    sbx_uuid_random(link.id);
    memcpy(link.ref, album.id, 16);
    REQUIRE(write1(&l, &link) == 0);
    char tok[SBX_SHARE_TOKEN_STRLEN + 1];
    token_for(&l, link.id, true, album.id, link.expires_at_ms, l.id.sk, tok);
    CHECK_EQ_INT(strlen(tok), SBX_SHARE_TOKEN_STRLEN);
    struct sbx_share_link got;
    const uint8_t *lib_id = sbx_engine_library(l.engine);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, tok, strlen(tok), now, &got), 0);
    CHECK(got.is_album && memcmp(got.target, album.id, 16) == 0 && memcmp(got.creator, l.id.pk, 32) == 0);
    /* Expired at its expiry, not before. */
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, tok, strlen(tok), link.expires_at_ms - 1, &got), 0);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, tok, strlen(tok), link.expires_at_ms, &got), SBX_ENOENT);
    /* Any changed character is refused. */
    for (size_t i = 0; i < SBX_SHARE_TOKEN_STRLEN; i += 7) {
        char t[SBX_SHARE_TOKEN_STRLEN + 1];
        memcpy(t, tok, sizeof t);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, t, strlen(t), now, &got), SBX_ENOENT);
    }
    /* Signed by another key, or claiming another expiry or target. */
    uint8_t pk2[32], sk2[64], other[16];
    crypto_sign_keypair(pk2, sk2);
    sbx_uuid_random(other);
    char bad[SBX_SHARE_TOKEN_STRLEN + 1];
    token_for(&l, link.id, true, album.id, link.expires_at_ms, sk2, bad);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, bad, strlen(bad), now, &got), SBX_ENOENT);
    token_for(&l, link.id, true, album.id, 0, l.id.sk, bad);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, bad, strlen(bad), now, &got), SBX_ENOENT);
    token_for(&l, link.id, true, other, link.expires_at_ms, l.id.sk, bad);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, bad, strlen(bad), now, &got), SBX_ENOENT);
    /* Another library's device serving this token refuses it. */
    CHECK_EQ_INT(sbx_share_resolve(l.store, other, tok, strlen(tok), now, &got), SBX_ENOENT);
    /* A link the log does not know. */
    token_for(&l, other, true, album.id, link.expires_at_ms, l.id.sk, bad);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, bad, strlen(bad), now, &got), SBX_ENOENT);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, "short", 5, now, &got), SBX_ENOENT);
    uint8_t lk[16], sg[64];
    CHECK_EQ_INT(sbx_share_token_parse(tok, strlen(tok), lk, sg), 0);
    CHECK(memcmp(lk, link.id, 16) == 0);
    memcpy(bad, tok, sizeof bad);
    bad[50] = (char)0xd1;
    CHECK_EQ_INT(sbx_share_token_parse(bad, strlen(bad), lk, sg), SBX_EMALFORMED);
    /* A deleted album ends its links; a restore brings them back. */
    struct sbx_op del = {.type = SBX_OP_ALBUM_DELETE};
    memcpy(del.id, album.id, 16);
    CHECK_EQ_INT(sbx_share_target_alive(l.store, true, album.id), 0);
    REQUIRE(write1(&l, &del) == 0);
    CHECK_EQ_INT(sbx_share_target_alive(l.store, true, album.id), SBX_ENOENT);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, tok, strlen(tok), now, &got), SBX_ENOENT);
    del.type = SBX_OP_ALBUM_RESTORE;
    REQUIRE(write1(&l, &del) == 0);
    CHECK_EQ_INT(sbx_share_target_alive(l.store, true, album.id), 0);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, tok, strlen(tok), now, &got), 0);
    /* An album's id is no photo's, and an id never created is nothing. */
    CHECK_EQ_INT(sbx_share_target_alive(l.store, false, album.id), SBX_ENOENT);
    CHECK_EQ_INT(sbx_share_target_alive(l.store, true, other), SBX_ENOENT);
    /* Revoked for good. */
    struct sbx_op rev = {.type = SBX_OP_SHARE_REVOKE};
    memcpy(rev.id, link.id, 16);
    REQUIRE(write1(&l, &rev) == 0);
    CHECK_EQ_INT(sbx_share_resolve(l.store, lib_id, tok, strlen(tok), now, &got), SBX_ENOENT);
    CHECK_EQ_INT(sbx_share_load(l.store, link.id, &got), 0);
    CHECK(got.revoked_at_ms > 0);
    lib_close(&l);
}

SBX_TEST(rebuild_sets_the_feed_floor)
{
    struct lib l;
    REQUIRE(lib_open(&l) == 0);
    struct sbx_op album = {.type = SBX_OP_ALBUM_CREATE, .name = {"A", 1}};
    sbx_uuid_random(album.id);
    REQUIRE(write1(&l, &album) == 0);
    uint8_t before[32], after[32];
    REQUIRE(sbx_engine_digest(l.engine, before) == 0);
    int64_t seq = sbx_store_query_int(l.store, "SELECT cursor FROM sync_state");
    REQUIRE(sbx_engine_rebuild_now(l.engine) == 0);
    REQUIRE(sbx_engine_digest(l.engine, after) == 0);
    CHECK(memcmp(before, after, 32) == 0);
    char floor[32] = "";
    CHECK_EQ_INT(sbx_store_meta_get_text(l.store, "feed_floor", floor, sizeof floor), 0);
    CHECK_EQ_INT(strtoll(floor, NULL, 10), seq);
    /* Rows are stamped anew, past the floor. */
    CHECK(sbx_store_query_int(l.store, "SELECT min(cursor_updated_at) FROM albums") > seq);
    CHECK(sbx_store_query_int(l.store, "SELECT cursor FROM sync_state") > seq);
    lib_close(&l);
}

SBX_TEST(error_codes_map_to_statuses)
{
    static const struct {
        int err, status;
    } want[] = {
        {SBX_ENOENT, 404},    {SBX_EEXIST, 409},    {SBX_ESTATE, 409},    {SBX_EBUSY, 503},     {SBX_EINVAL, 400},
        {SBX_EMALFORMED, 400}, {SBX_EAMBIGUOUS, 400}, {SBX_ETOOBIG, 400},  {SBX_EUNSUPPORTED, 400},
        {SBX_EPERM, 403},     {SBX_EREFUSED, 403},  {SBX_ECRYPTO, 403},   {SBX_EEXPIRED, 410},  {SBX_ELOCKED, 503},
        {SBX_EAGAIN, 503},    {SBX_ENOSPC, 507},    {SBX_ENOMEM, 500},    {SBX_EIO, 500},       {SBX_EDB, 500},
        {SBX_ECORRUPT, 500},  {SBX_EPROTO, 500},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (sbx_api_status_for_error(want[i].err) != want[i].status)
            printf("# %s: %d, want %d\n", sbx_strerror(want[i].err), sbx_api_status_for_error(want[i].err),
                   want[i].status);
        CHECK_EQ_INT(sbx_api_status_for_error(want[i].err), want[i].status);
    }
    /* Every code is an error status; no code or an unknown one is the
     * server's own failure, never the client's. */
    for (int e = SBX__ERR_BASE + 1; e < SBX__ERR_END; e++) {
        int st = sbx_api_status_for_error(e);
        CHECK(st >= 400 && st <= 599);
    }
    CHECK_EQ_INT(sbx_api_status_for_error(0), 500);
    CHECK_EQ_INT(sbx_api_status_for_error(-1), 500);
    CHECK_EQ_INT(sbx_api_status_for_error(SBX__ERR_END), 500);
}

SBX_TEST_MAIN(SBX_CASE(api_yaml_matches_route_table), SBX_CASE(route_matching),
              SBX_CASE(cursors_round_trip_and_refuse_tampering), SBX_CASE(range_parsing), SBX_CASE(query_and_escapes),
              SBX_CASE(durations), SBX_CASE(html_escape_and_camel_case), SBX_CASE(rate_limiter_buckets),
              SBX_CASE(share_tokens_checked_against_the_log), SBX_CASE(rebuild_sets_the_feed_floor),
              SBX_CASE(error_codes_map_to_statuses))
