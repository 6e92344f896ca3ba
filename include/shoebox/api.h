/* The local HTTP API: the pure pieces (route table and matching, opaque
 * cursors, Range and query parsing, the per-address rate limiter, JSON key
 * style). The server itself is libuv + libh2o glue in daemon/api*.c; what
 * is here touches no socket, clock or disk, so the unit tests and the fuzz
 * harness drive it directly. docs/api.yaml describes every route. */
#ifndef SHOEBOX_API_H
#define SHOEBOX_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The local API listens on 127.0.0.1 at this port unless told otherwise. */
#define SBX_API_DEFAULT_PORT 8417
#define SBX_FILE_API_TOKEN "api-token"
#define SBX_FILE_API_SOCKET "api.sock"

/* Which listener a route is served on: the local API (bearer token) or the
 * public share server (no token; only share pages). */
enum sbx_api_server { SBX_API_LOCAL = 1, SBX_API_PUBLIC = 2 };

/* Every route, in one table: the server dispatches on it and
 * tests/unit/test_api.c checks docs/api.yaml against it. Patterns name
 * their parameters in braces; a parameter is one non-empty path segment. */
#define SBX_API_ROUTES(X)                                                                   \
    X(status, "GET", "/status", SBX_API_LOCAL)                                              \
    X(photos_list, "GET", "/photos", SBX_API_LOCAL)                                         \
    X(photo_get, "GET", "/photos/{id}", SBX_API_LOCAL)                                      \
    X(photo_delete, "DELETE", "/photos/{id}", SBX_API_LOCAL)                                \
    X(photo_restore, "POST", "/photos/{id}/restore", SBX_API_LOCAL)                         \
    X(photo_thumb, "GET", "/photos/{id}/thumb", SBX_API_LOCAL)                              \
    X(photo_medium, "GET", "/photos/{id}/medium", SBX_API_LOCAL)                            \
    X(photo_original, "GET", "/photos/{id}/original", SBX_API_LOCAL)                        \
    X(photo_tag, "PUT", "/photos/{id}/tags/{label}", SBX_API_LOCAL)                         \
    X(photo_untag, "DELETE", "/photos/{id}/tags/{label}", SBX_API_LOCAL)                    \
    X(feed, "GET", "/feed", SBX_API_LOCAL)                                                  \
    X(albums_list, "GET", "/albums", SBX_API_LOCAL)                                         \
    X(album_create, "POST", "/albums", SBX_API_LOCAL)                                       \
    X(album_get, "GET", "/albums/{id}", SBX_API_LOCAL)                                      \
    X(album_rename, "PATCH", "/albums/{id}", SBX_API_LOCAL)                                 \
    X(album_delete, "DELETE", "/albums/{id}", SBX_API_LOCAL)                                \
    X(album_add, "POST", "/albums/{id}/photos", SBX_API_LOCAL)                              \
    X(album_remove, "DELETE", "/albums/{id}/photos/{photoId}", SBX_API_LOCAL)               \
    X(devices_list, "GET", "/devices", SBX_API_LOCAL)                                       \
    X(device_remove, "DELETE", "/devices/{deviceId}", SBX_API_LOCAL)                        \
    X(pair, "POST", "/pair", SBX_API_LOCAL)                                                 \
    X(imports_list, "GET", "/imports", SBX_API_LOCAL)                                       \
    X(import_run, "POST", "/imports", SBX_API_LOCAL)                                        \
    X(free_space, "POST", "/free-space", SBX_API_LOCAL)                                     \
    X(upload_create, "POST", "/uploads", SBX_API_LOCAL)                                     \
    X(upload_get, "GET", "/uploads/{id}", SBX_API_LOCAL)                                    \
    X(upload_chunk, "PUT", "/uploads/{id}/chunks/{n}", SBX_API_LOCAL)                       \
    X(upload_complete, "POST", "/uploads/{id}/complete", SBX_API_LOCAL)                     \
    X(shares_list, "GET", "/shares", SBX_API_LOCAL)                                         \
    X(share_create, "POST", "/shares", SBX_API_LOCAL)                                       \
    X(share_revoke, "DELETE", "/shares/{id}", SBX_API_LOCAL)                                \
    X(share_page, "GET", "/s/{token}", SBX_API_PUBLIC)                                      \
    X(share_thumb, "GET", "/s/{token}/thumb/{photoId}", SBX_API_PUBLIC)                     \
    X(share_medium, "GET", "/s/{token}/medium/{photoId}", SBX_API_PUBLIC)                   \
    X(share_original, "GET", "/s/{token}/original/{photoId}", SBX_API_PUBLIC)

enum sbx_api_route_id {
#define SBX_API_ROUTE_ENUM(name, method, pattern, server) SBX_ROUTE_##name,
    SBX_API_ROUTES(SBX_API_ROUTE_ENUM)
#undef SBX_API_ROUTE_ENUM
    SBX_ROUTE__COUNT
};

struct sbx_api_route {
    const char *name;
    const char *method;
    const char *pattern;
    int server;
};
extern const struct sbx_api_route sbx_api_routes[SBX_ROUTE__COUNT];

#define SBX_API_MAX_PARAMS 3
struct sbx_api_match {
    enum sbx_api_route_id route;
    size_t n_params;
    struct {
        const char *ptr; /* into the path, still percent-encoded */
        size_t len;
    } param[SBX_API_MAX_PARAMS];
};

/* Finds the route for a method and a path (without the query). 0 with *m
 * filled; SBX_ENOENT when no route of that server has this path;
 * SBX_EUNSUPPORTED when the path exists with other methods only (405). */
int sbx_api_route_match(int server, const char *method, size_t method_len, const char *path,
                        size_t path_len, struct sbx_api_match *m);

/* ---- Cursors --------------------------------------------------------------
 * Opaque to clients and tamper-evident: base64url of a version byte, a type
 * byte, the position, and a 16-byte keyed BLAKE2b MAC under a per-device
 * key. A cursor that fails any check is refused whole. */
#define SBX_API_CURSOR_STRLEN 58

enum sbx_feed_kind { SBX_FEED_PHOTO = 0, SBX_FEED_ALBUM = 1 };

/* A position in the change feed: changes are ordered by the local change
 * sequence, then kind, then id (one change may stamp several rows). */
struct sbx_feed_pos {
    uint64_t seq;
    uint8_t kind;
    uint8_t id[16];
};

/* A position in the gallery (newest captured_at first, then id). Photos
 * with no capture time come last, ordered by id: null_zone. */
struct sbx_page_pos {
    bool deleted; /* the listing of deleted photos */
    bool null_zone;
    int64_t captured_at;
    uint8_t id[16];
};

void sbx_api_feed_cursor(char out[SBX_API_CURSOR_STRLEN + 1], const uint8_t key[32],
                         const struct sbx_feed_pos *p);
void sbx_api_page_cursor(char out[SBX_API_CURSOR_STRLEN + 1], const uint8_t key[32],
                         const struct sbx_page_pos *p);
/* SBX_EMALFORMED: not a cursor of this kind; SBX_ECRYPTO: the MAC does not
 * match (tampered, or made by another device). */
int sbx_api_feed_cursor_parse(const uint8_t key[32], const char *text, size_t len,
                              struct sbx_feed_pos *p);
int sbx_api_page_cursor_parse(const uint8_t key[32], const char *text, size_t len,
                              struct sbx_page_pos *p);

/* ---- HTTP details ------------------------------------------------------- */

/* A Range header against a body of `size` bytes. 0: one satisfiable range
 * [*first, *last]; SBX_EUNSUPPORTED: ignore the header and send the whole
 * body (not a bytes range, a syntax error, or several ranges, as RFC 9110
 * allows); SBX_EINVAL: not satisfiable (416). */
int sbx_http_range(const char *value, size_t len, uint64_t size, uint64_t *first, uint64_t *last);

/* The HTTP status for a failure with SBX_E* code `err`: 404 not found,
 * 409 exists / wrong state / busy, 400 invalid, malformed, ambiguous, too
 * big or unsupported, 403 refused, 410 expired, 503 locked or try again,
 * 507 no space, 500 anything else (the daemon's own failure). */
int sbx_api_status_for_error(int err);

/* Percent-decodes `len` bytes of `in` into out (cap bytes, NUL-terminated);
 * with `plus` a '+' means a space (query strings). SBX_EMALFORMED for a bad
 * escape or a NUL byte; SBX_ETOOBIG when it does not fit. */
int sbx_http_unescape(const char *in, size_t len, bool plus, char *out, size_t cap, size_t *out_len);

/* The value of parameter `name` in a query string (without the '?'),
 * decoded. SBX_ENOENT when absent; errors as sbx_http_unescape. */
int sbx_http_query(const char *query, size_t len, const char *name, char *out, size_t cap);

/* A duration such as "90s", "30m", "12h", "7d", "2w" or a number of
 * seconds, between 1 second and 10 years. */
int sbx_duration_parse(const char *s, int64_t *seconds);

/* HTML text and attribute escaping (& < > " '); a malloc'd string. */
char *sbx_html_escape(const char *in);

/* A deep copy of a JSON value with every object key in camelCase
 * ("photo_ids" -> "photoIds"): the HTTP API speaks the seed's camelCase,
 * the CLI's --json snake_case. */
json_t *sbx_json_camel(json_t *v);

/* ---- Rate limiting -------------------------------------------------------
 * A token bucket per client address in a bounded, set-associative table:
 * each address hashes (keyed SipHash, so nobody can aim at a set) to a set
 * of 8 slots; a new address takes the least recently used slot of its set.
 * A new address starts with a full bucket, so evicting is the lenient
 * choice, and memory never grows. */
typedef struct sbx_ratelimit sbx_ratelimit;

int sbx_ratelimit_new(sbx_ratelimit **out, size_t slots, double per_second, double burst);
void sbx_ratelimit_free(sbx_ratelimit *rl);
/* Takes `cost` tokens from the bucket of `key` (at most 16 bytes); false
 * when the bucket holds fewer. */
bool sbx_ratelimit_take(sbx_ratelimit *rl, const uint8_t *key, size_t key_len, double cost, int64_t now_ms);
/* Charges `cost` tokens whatever the bucket holds (a penalty: a refused
 * share token), down to minus the burst, so a client that keeps failing
 * pays for each failure and waits for the bucket to refill. */
void sbx_ratelimit_charge(sbx_ratelimit *rl, const uint8_t *key, size_t key_len, double cost, int64_t now_ms);

#endif
