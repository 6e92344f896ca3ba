/* The pure pieces of the local API: route matching, cursors, Range and
 * query parsing, durations, HTML escaping, JSON key style, rate limiting.
 * See shoebox/api.h. */
#include "shoebox/api.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <ctype.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

const struct sbx_api_route sbx_api_routes[SBX_ROUTE__COUNT] = {
#define SBX_API_ROUTE_ROW(name, method, pattern, server) {#name, method, pattern, server},
    SBX_API_ROUTES(SBX_API_ROUTE_ROW)
#undef SBX_API_ROUTE_ROW
};

/* ---- routes ---- */

/* Matches one pattern against a path, segment by segment. */
static bool pattern_match(const char *pat, const char *path, size_t plen, struct sbx_api_match *m)
{
    size_t i = 0;
    const char *p = pat;
    m->n_params = 0;
    while (*p) {
        if (*p != '/' || i >= plen || path[i] != '/') return false;
        p++;
        i++;
        size_t seg = i;
        while (i < plen && path[i] != '/') i++;
        size_t seglen = i - seg;
        const char *pend = strchr(p, '/');
        size_t patlen = pend ? (size_t)(pend - p) : strlen(p);
        if (patlen > 0 && p[0] == '{') {
            if (seglen == 0 || m->n_params == SBX_API_MAX_PARAMS) return false;
            m->param[m->n_params].ptr = path + seg;
            m->param[m->n_params].len = seglen;
            m->n_params++;
        } else if (patlen != seglen || memcmp(p, path + seg, seglen) != 0) {
            return false;
        }
        p += patlen;
    }
    return i == plen;
}

int sbx_api_route_match(int server, const char *method, size_t method_len, const char *path,
                        size_t path_len, struct sbx_api_match *m)
{
    bool path_known = false;
    for (size_t r = 0; r < SBX_ROUTE__COUNT; r++) {
        const struct sbx_api_route *rt = &sbx_api_routes[r];
        if (rt->server != server) continue;
        struct sbx_api_match tmp;
        if (!pattern_match(rt->pattern, path, path_len, &tmp)) continue;
        path_known = true;
        if (strlen(rt->method) != method_len || memcmp(rt->method, method, method_len) != 0) continue;
        tmp.route = (enum sbx_api_route_id)r;
        *m = tmp;
        return 0;
    }
    return path_known ? SBX_EUNSUPPORTED : SBX_ENOENT;
}

/* ---- cursors ---- */

#define CURSOR_VERSION 1
#define CURSOR_BODY 27
#define CURSOR_MAC 16
#define CURSOR_BYTES (CURSOR_BODY + CURSOR_MAC)

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static void seal(char out[SBX_API_CURSOR_STRLEN + 1], const uint8_t key[32], uint8_t b[CURSOR_BYTES])
{
    crypto_generichash(b + CURSOR_BODY, CURSOR_MAC, b, CURSOR_BODY, key, 32);
    sodium_bin2base64(out, SBX_API_CURSOR_STRLEN + 1, b, CURSOR_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* libsodium 1.0.18's decoder maps some bytes above 0x7f to base64 values
 * (it reads them as negative chars), so the alphabet is checked first: a
 * cursor has exactly one spelling. */
static bool b64url_alphabet(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static int unseal(const uint8_t key[32], const char *text, size_t len, char type, uint8_t b[CURSOR_BYTES])
{
    size_t n = 0;
    const char *end = NULL;
    if (len != SBX_API_CURSOR_STRLEN || !b64url_alphabet(text, len)) return SBX_EMALFORMED;
    if (sodium_base642bin(b, CURSOR_BYTES, text, len, NULL, &n, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != CURSOR_BYTES || end != text + len)
        return SBX_EMALFORMED;
    uint8_t mac[CURSOR_MAC];
    crypto_generichash(mac, CURSOR_MAC, b, CURSOR_BODY, key, 32);
    if (sodium_memcmp(mac, b + CURSOR_BODY, CURSOR_MAC) != 0) return SBX_ECRYPTO;
    /* Version and type are checked only once the MAC holds: a forged byte
     * never gets that far. */
    if (b[0] != CURSOR_VERSION || b[1] != (uint8_t)type) return SBX_EMALFORMED;
    return 0;
}

void sbx_api_feed_cursor(char out[SBX_API_CURSOR_STRLEN + 1], const uint8_t key[32], const struct sbx_feed_pos *p)
{
    uint8_t b[CURSOR_BYTES] = {CURSOR_VERSION, 'F'};
    put_be64(b + 2, p->seq);
    b[10] = p->kind;
    memcpy(b + 11, p->id, 16);
    seal(out, key, b);
}

int sbx_api_feed_cursor_parse(const uint8_t key[32], const char *text, size_t len, struct sbx_feed_pos *p)
{
    uint8_t b[CURSOR_BYTES];
    int rc = unseal(key, text, len, 'F', b);
    if (rc != 0) return rc;
    if (b[10] > SBX_FEED_ALBUM || get_be64(b + 2) > (uint64_t)INT64_MAX) return SBX_EMALFORMED;
    p->seq = get_be64(b + 2);
    p->kind = b[10];
    memcpy(p->id, b + 11, 16);
    return 0;
}

void sbx_api_page_cursor(char out[SBX_API_CURSOR_STRLEN + 1], const uint8_t key[32], const struct sbx_page_pos *p)
{
    uint8_t b[CURSOR_BYTES] = {CURSOR_VERSION, 'P'};
    b[2] = (uint8_t)((p->deleted ? 1 : 0) | (p->null_zone ? 2 : 0));
    put_be64(b + 3, (uint64_t)p->captured_at);
    memcpy(b + 11, p->id, 16);
    seal(out, key, b);
}

int sbx_api_page_cursor_parse(const uint8_t key[32], const char *text, size_t len, struct sbx_page_pos *p)
{
    uint8_t b[CURSOR_BYTES];
    int rc = unseal(key, text, len, 'P', b);
    if (rc != 0) return rc;
    if (b[2] & ~3u) return SBX_EMALFORMED;
    p->deleted = b[2] & 1;
    p->null_zone = (b[2] & 2) != 0;
    p->captured_at = (int64_t)get_be64(b + 3);
    memcpy(p->id, b + 11, 16);
    return 0;
}

/* ---- HTTP details ---- */

int sbx_api_status_for_error(int err)
{
    switch (err) {
    case SBX_ENOENT: return 404;
    case SBX_EEXIST:
    case SBX_ESTATE: return 409;
    case SBX_EINVAL:
    case SBX_EMALFORMED:
    case SBX_EAMBIGUOUS:
    case SBX_ETOOBIG:
    case SBX_EUNSUPPORTED: return 400;
    case SBX_EPERM:
    case SBX_EREFUSED:
    case SBX_ECRYPTO: return 403;
    case SBX_EEXPIRED: return 410;
    /* Busy: the database stayed locked past its timeout (an import's or
     * the renderer's writes), which passes; a retry later succeeds. */
    case SBX_EBUSY:
    case SBX_ELOCKED:
    case SBX_EAGAIN: return 503;
    case SBX_ENOSPC: return 507;
    default: return 500; /* NOMEM, IO, CORRUPT, DB, PROTO, and no code */
    }
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

int sbx_http_range(const char *v, size_t len, uint64_t size, uint64_t *first, uint64_t *last)
{
    while (len > 0 && (*v == ' ' || *v == '\t')) v++, len--;
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) len--;
    if (len < 7 || strncasecmp(v, "bytes=", 6) != 0) return SBX_EUNSUPPORTED;
    v += 6;
    len -= 6;
    while (len > 0 && *v == ' ') v++, len--;
    if (memchr(v, ',', len)) return SBX_EUNSUPPORTED;
    const char *dash = memchr(v, '-', len);
    if (!dash) return SBX_EUNSUPPORTED;
    size_t alen = (size_t)(dash - v), blen = len - alen - 1;
    uint64_t a = 0, b = 0;
    if (alen == 0) {
        /* A suffix: the last b bytes. */
        if (!parse_u64(dash + 1, blen, &b)) return SBX_EUNSUPPORTED;
        if (b == 0 || size == 0) return SBX_EINVAL;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 0;
    }
    if (!parse_u64(v, alen, &a)) return SBX_EUNSUPPORTED;
    if (blen == 0) b = UINT64_MAX;
    else if (!parse_u64(dash + 1, blen, &b)) return SBX_EUNSUPPORTED;
    if (b < a) return SBX_EUNSUPPORTED;
    if (a >= size) return SBX_EINVAL;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sbx_http_unescape(const char *in, size_t len, bool plus, char *out, size_t cap, size_t *out_len)
{
    size_t o = 0;
    if (cap == 0) return SBX_ETOOBIG;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= len) return SBX_EMALFORMED;
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h < 0 || l < 0) return SBX_EMALFORMED;
            c = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (c == '\0') return SBX_EMALFORMED;
        if (o + 1 >= cap) return SBX_ETOOBIG;
        out[o++] = c;
    }
    out[o] = '\0';
    if (out_len) *out_len = o;
    return 0;
}

int sbx_http_query(const char *q, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && q[i] != '&') i++;
        const char *pair = q + start;
        size_t plen = i - start;
        i++; /* past '&' */
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        if (klen != nlen || memcmp(pair, name, nlen) != 0) continue;
        if (!eq) {
            if (cap == 0) return SBX_ETOOBIG;
            out[0] = '\0';
            return 0;
        }
        return sbx_http_unescape(eq + 1, plen - klen - 1, true, out, cap, NULL);
    }
    return SBX_ENOENT;
}

int sbx_duration_parse(const char *s, int64_t *seconds)
{
    if (!s || !*s) return SBX_EINVAL;
    size_t len = strlen(s);
    int64_t unit = 1;
    switch (s[len - 1]) {
    case 's': unit = 1; len--; break;
    case 'm': unit = 60; len--; break;
    case 'h': unit = 3600; len--; break;
    case 'd': unit = 86400; len--; break;
    case 'w': unit = 7 * 86400; len--; break;
    default: break;
    }
    uint64_t n = 0;
    if (!parse_u64(s, len, &n)) return SBX_EINVAL;
    const int64_t max = 10ll * 366 * 86400;
    if (n == 0 || n > (uint64_t)(max / unit)) return SBX_EINVAL;
    *seconds = (int64_t)n * unit;
    return 0;
}

char *sbx_html_escape(const char *in)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) n += (*p == '&') ? 5 : (*p == '<' || *p == '>') ? 4 : (*p == '"' || *p == '\'') ? 5 : 1;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    char *o = out;
    for (const char *p = in; *p; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&#34;"; break;
        case '\'': rep = "&#39;"; break;
        default: *o++ = *p; continue;
        }
        size_t rl = strlen(rep);
        memcpy(o, rep, rl);
        o += rl;
    }
    *o = '\0';
    return out;
}

/* ---- JSON key style ---- */

static json_t *camel_rec(json_t *v, int depth)
{
    /* The daemon's own documents nest a few levels; the bound only keeps a
     * bug from recursing without end. */
    if (depth > 32) return json_null();
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            char key[128];
            size_t o_n = 0;
            bool up = false;
            for (const char *p = k; *p && o_n + 1 < sizeof key; p++) {
                if (*p == '_' && o_n > 0) {
                    up = true;
                    continue;
                }
                key[o_n++] = up ? (char)toupper((unsigned char)*p) : *p;
                up = false;
            }
            key[o_n] = '\0';
            json_object_set_new(o, key, camel_rec(x, depth + 1));
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) json_array_append_new(a, camel_rec(x, depth + 1));
        return a;
    }
    return json_deep_copy(v);
}

json_t *sbx_json_camel(json_t *v) { return v ? camel_rec(v, 0) : NULL; }

/* ---- rate limiting ---- */

#define RL_WAYS 8

struct rl_slot {
    uint8_t key[16];
    uint8_t key_len;
    bool used;
    double tokens;
    int64_t last_ms;
};

struct sbx_ratelimit {
    size_t n_sets;
    double rate, burst;
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    struct rl_slot slots[];
};

int sbx_ratelimit_new(sbx_ratelimit **out, size_t slots, double per_second, double burst)
{
    if (slots < RL_WAYS || per_second <= 0 || burst < 1) return SBX_EINVAL;
    size_t n_sets = slots / RL_WAYS;
    sbx_ratelimit *rl = calloc(1, sizeof *rl + n_sets * RL_WAYS * sizeof(struct rl_slot));
    if (!rl) return SBX_ENOMEM;
    rl->n_sets = n_sets;
    rl->rate = per_second;
    rl->burst = burst;
    randombytes_buf(rl->hash_key, sizeof rl->hash_key);
    *out = rl;
    return 0;
}

void sbx_ratelimit_free(sbx_ratelimit *rl) { free(rl); }

/* The bucket of key, refilled up to now. */
static struct rl_slot *rl_bucket(sbx_ratelimit *rl, const uint8_t *key, size_t key_len, int64_t now_ms)
{
    SBX_ASSERT(key_len <= 16);
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, key_len, rl->hash_key);
    uint64_t hv = 0;
    memcpy(&hv, h, sizeof hv);
    struct rl_slot *set = rl->slots + (hv % rl->n_sets) * RL_WAYS;
    struct rl_slot *s = NULL, *lru = &set[0];
    for (int i = 0; i < RL_WAYS; i++) {
        if (set[i].used && set[i].key_len == key_len && memcmp(set[i].key, key, key_len) == 0) {
            s = &set[i];
            break;
        }
        if (!set[i].used) lru = &set[i];
        else if (lru->used && set[i].last_ms < lru->last_ms) lru = &set[i];
    }
    if (!s) {
        s = lru;
        memset(s, 0, sizeof *s);
        memcpy(s->key, key, key_len);
        s->key_len = (uint8_t)key_len;
        s->used = true;
        s->tokens = rl->burst;
        s->last_ms = now_ms;
    }
    if (now_ms > s->last_ms) {
        s->tokens += (double)(now_ms - s->last_ms) * rl->rate / 1000.0;
        if (s->tokens > rl->burst) s->tokens = rl->burst;
    }
    s->last_ms = now_ms > s->last_ms ? now_ms : s->last_ms;
    return s;
}

bool sbx_ratelimit_take(sbx_ratelimit *rl, const uint8_t *key, size_t key_len, double cost, int64_t now_ms)
{
    struct rl_slot *s = rl_bucket(rl, key, key_len, now_ms);
    if (s->tokens < cost) return false;
    s->tokens -= cost;
    return true;
}

void sbx_ratelimit_charge(sbx_ratelimit *rl, const uint8_t *key, size_t key_len, double cost, int64_t now_ms)
{
    struct rl_slot *s = rl_bucket(rl, key, key_len, now_ms);
    s->tokens -= cost;
    if (s->tokens < -rl->burst) s->tokens = -rl->burst;
}
