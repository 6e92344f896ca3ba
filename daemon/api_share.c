/* Share links: the control commands that create, list and revoke them (for
 * the CLI and the API), and the public pages that serve them (GET /s/TOKEN:
 * a small HTML gallery, thumbnails, mediums and originals).
 *
 * The public side answers every refusal, whatever its reason (malformed,
 * unknown, revoked, expired, forged, deleted target, a photo outside the
 * shared album), with the same plain 404, so a client learns nothing but
 * "no". A refusal costs the client's address several requests of its rate
 * limit, which keeps guessing slow. */
#include "api_internal.h"

#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/share.h"
#include "shoebox/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- control commands ---- */

static void link_token(struct sbx_daemon *d, const struct sbx_share_link *l, char out[SBX_SHARE_TOKEN_STRLEN + 1])
{
    struct sbx_share_claim c = {.is_album = l->is_album, .expires_at_ms = l->expires_at_ms};
    memcpy(c.library, sbx_engine_library(d->engine), 16);
    memcpy(c.link, l->id, 16);
    memcpy(c.target, l->target, 16);
    sbx_share_token_make(out, &c, d->id.sk);
}

static json_t *link_json(struct sbx_daemon *d, const struct sbx_share_link *l)
{
    char id[SBX_UUID_STRLEN + 1], target[SBX_UUID_STRLEN + 1], dev[SBX_DEVID_STRLEN + 1];
    sbx_uuid_format(id, l->id);
    sbx_uuid_format(target, l->target);
    sbx_devid_format(dev, l->creator);
    int64_t now = sbx_now_ms();
    const char *status = l->revoked_at_ms ? "revoked" : (l->expires_at_ms && now >= l->expires_at_ms) ? "expired" : "active";
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, l->is_album ? "album_id" : "photo_id", target, "status",
                          status, "created_by", dev, "created_at", sbx_json_time(l->created_at_ms));
    json_object_set_new(o, "expires_at", l->expires_at_ms ? sbx_json_time(l->expires_at_ms) : json_null());
    json_object_set_new(o, "revoked_at", l->revoked_at_ms ? sbx_json_time(l->revoked_at_ms) : json_null());
    /* Only the creating device can sign, so only it can show the token;
     * any device can serve it. */
    if (memcmp(l->creator, d->id.pk, 32) == 0) {
        char tok[SBX_SHARE_TOKEN_STRLEN + 1], path[SBX_SHARE_TOKEN_STRLEN + 8];
        link_token(d, l, tok);
        snprintf(path, sizeof path, "/s/%s", tok);
        const char *base = d->api ? d->api->public_base : "";
        size_t ul = strlen(base) + strlen(path) + 1;
        char *url = malloc(ul);
        if (url) snprintf(url, ul, "%s%s", base, path);
        json_object_set_new(o, "token", json_string(tok));
        json_object_set_new(o, "path", json_string(path));
        json_object_set_new(o, "url", url && base[0] ? json_string(url) : json_null());
        free(url);
    } else {
        json_object_set_new(o, "token", json_null());
        json_object_set_new(o, "path", json_null());
        json_object_set_new(o, "url", json_null());
    }
    return o;
}

static json_t *cmd_share_create(struct sbx_daemon *d, json_t *args, char *err, size_t errsz, int *code)
{
    const char *album = json_string_value(json_object_get(args, "album"));
    const char *photo = json_string_value(json_object_get(args, "photo"));
    if (!!album == !!photo) {
        snprintf(err, errsz, "share one album or one photo: give --album ID or --photo ID");
        *code = SBX_EINVAL;
        return NULL;
    }
    struct sbx_op op = {.type = SBX_OP_SHARE_CREATE, .ref_is_album = album != NULL};
    int rc = sbx_resolve_id(d, album ? "album" : "photo", album ? "albums" : "photos", album ? album : photo, op.ref,
                            err, errsz);
    if (rc != 0) {
        *code = rc;
        return NULL;
    }
    /* It exists (resolved): not alive means deleted, a conflict with the
     * request rather than a missing thing. */
    if ((rc = sbx_share_target_alive(d->store, album != NULL, op.ref)) != 0) {
        if (rc == SBX_ENOENT) snprintf(err, errsz, "that %s is deleted", album ? "album" : "photo");
        else snprintf(err, errsz, "database error");
        *code = rc == SBX_ENOENT ? SBX_ESTATE : rc;
        return NULL;
    }
    json_t *exp = json_object_get(args, "expires");
    int64_t secs = 0;
    if (json_is_integer(exp)) {
        secs = json_integer_value(exp);
        if (secs < 1 || secs > 10ll * 366 * 86400) secs = -1;
    } else if (json_is_string(exp)) {
        if (sbx_duration_parse(json_string_value(exp), &secs) != 0) secs = -1;
    } else if (exp && !json_is_null(exp)) {
        secs = -1;
    }
    if (secs < 0) {
        snprintf(err, errsz, "--expires is a duration such as 90m, 12h, 7d or 2w (at most 10 years)");
        *code = SBX_EINVAL;
        return NULL;
    }
    int64_t now = sbx_now_ms();
    op.expires_at_ms = secs ? now + secs * 1000 : 0;
    sbx_uuid_random(op.id);
    rc = sbx_engine_write(d->engine, &op, 1, now);
    if (rc != 0) {
        snprintf(err, errsz, "cannot write to the library: %s", sbx_strerror(rc));
        *code = rc;
        return NULL;
    }
    struct sbx_share_link l;
    if ((rc = sbx_share_load(d->store, op.id, &l)) != 0) {
        snprintf(err, errsz, "the link was written but cannot be read back: %s", sbx_strerror(rc));
        *code = rc == SBX_ENOENT ? SBX_EIO : rc;
        return NULL;
    }
    char id[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(id, op.id);
    sbx_info("share link %s created for %s %.8s", id, album ? "album" : "photo", album ? album : photo);
    return link_json(d, &l);
}

static json_t *cmd_share_list(struct sbx_daemon *d, char *err, size_t errsz, int *code)
{
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT id FROM share_links WHERE created_at IS NOT NULL "
                                                "ORDER BY created_at, id");
    if (!st) {
        snprintf(err, errsz, "database error");
        *code = SBX_EDB;
        return NULL;
    }
    /* The ids first: sbx_share_load runs a statement of its own. */
    uint8_t(*ids)[16] = NULL;
    size_t n = 0, cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != 16) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            void *ni = realloc(ids, cap * 16);
            if (!ni) break;
            ids = ni;
        }
        memcpy(ids[n++], sqlite3_column_blob(st, 0), 16);
    }
    sqlite3_reset(st);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        struct sbx_share_link l;
        if (sbx_share_load(d->store, ids[i], &l) == 0) json_array_append_new(arr, link_json(d, &l));
    }
    free(ids);
    return arr;
}

static json_t *cmd_share_revoke(struct sbx_daemon *d, json_t *args, char *err, size_t errsz, int *code)
{
    struct sbx_op op = {.type = SBX_OP_SHARE_REVOKE};
    int rc = sbx_resolve_id(d, "share link", "share_links", json_string_value(json_object_get(args, "id")), op.id, err,
                            errsz);
    if (rc != 0) {
        *code = rc;
        return NULL;
    }
    struct sbx_share_link l;
    rc = sbx_share_load(d->store, op.id, &l);
    if (rc == 0 && l.revoked_at_ms == 0) rc = sbx_engine_write(d->engine, &op, 1, sbx_now_ms());
    if (rc == 0) rc = sbx_share_load(d->store, op.id, &l);
    if (rc != 0) {
        snprintf(err, errsz, rc == SBX_ENOENT ? "no share link with that id" : "cannot revoke the link: %s",
                 sbx_strerror(rc));
        *code = rc;
        return NULL;
    }
    char id[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(id, op.id);
    sbx_info("share link %s revoked", id);
    return link_json(d, &l);
}

json_t *api_share_control(struct sbx_daemon *d, const char *name, json_t *args, char *err, size_t errsz, int *code,
                          bool *handled)
{
    *handled = true;
    if (strcmp(name, "share.create") == 0) return cmd_share_create(d, args, err, errsz, code);
    if (strcmp(name, "share.list") == 0) return cmd_share_list(d, err, errsz, code);
    if (strcmp(name, "share.revoke") == 0) return cmd_share_revoke(d, args, err, errsz, code);
    *handled = false;
    return NULL;
}

/* ---- the public pages ---- */

struct sb {
    char *p;
    size_t n, cap;
    bool oom;
};

static void sb_add(struct sb *b, const char *s, size_t len)
{
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + len + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_str(struct sb *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_esc(struct sb *b, const char *s)
{
    char *e = sbx_html_escape(s ? s : "");
    if (!e) {
        b->oom = true;
        return;
    }
    sb_str(b, e);
    free(e);
}

static void sb_fmt(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(struct sb *b, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static const char PAGE_HEAD[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    "<meta name=\"robots\" content=\"noindex,nofollow\"><title>";
static const char PAGE_STYLE[] =
    "</title><style>"
    "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;background:#f6f6f4;color:#222}"
    "h1{font-size:1.4rem;margin:.2rem 0 .2rem}p{color:#666;margin:0 0 1rem}"
    ".g{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:8px}"
    "figure{margin:0;background:#fff;border-radius:6px;overflow:hidden;box-shadow:0 1px 2px rgba(0,0,0,.15)}"
    "figure img{display:block;width:100%;height:160px;object-fit:cover;background:#ddd}"
    "figcaption{font-size:.75rem;padding:4px 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
    "a{color:#0645ad;text-decoration:none}.one img{max-width:100%;height:auto;border-radius:6px}"
    "nav{margin:1rem 0}</style></head><body>\n";

static void page_headers(struct api_req *r)
{
    /* No scripts, nothing from elsewhere, no framing, and the token never
     * leaks through a Referer. */
    api_header_str(r, "content-security-policy",
                   "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; "
                   "form-action 'none'; frame-ancestors 'none'");
    api_header_str(r, "referrer-policy", "no-referrer");
    api_header_str(r, "x-content-type-options", "nosniff");
    api_header(r, H2O_TOKEN_CACHE_CONTROL, "private, no-store");
}

static void refuse(struct api_req *r)
{
    uint8_t key[16];
    size_t klen = api_peer_key(r->req, key);
    if (klen) sbx_ratelimit_charge(r->api->rl, key, klen, SBX_SHARE_FAIL_COST, sbx_now_ms());
    sbx_info("share: refused a request (unknown, revoked, expired or forged token, or a photo outside the link)");
    api_plain(r, 404, "Not Found");
}

static bool resolve(struct api_req *r, struct sbx_share_link *l, char tok[SBX_SHARE_TOKEN_STRLEN + 1])
{
    if (r->m.param[0].len != SBX_SHARE_TOKEN_STRLEN) return refuse(r), false;
    memcpy(tok, r->m.param[0].ptr, SBX_SHARE_TOKEN_STRLEN);
    tok[SBX_SHARE_TOKEN_STRLEN] = '\0';
    int rc = sbx_share_resolve(r->d->store, sbx_engine_library(r->d->engine), tok, SBX_SHARE_TOKEN_STRLEN, sbx_now_ms(), l);
    if (rc == SBX_EDB) {
        api_plain(r, 500, "Internal Server Error");
        return false;
    }
    if (rc != 0) return refuse(r), false;
    return true;
}

void h_share_page(struct api_req *r)
{
    struct sbx_share_link l;
    char tok[SBX_SHARE_TOKEN_STRLEN + 1];
    if (!resolve(r, &l, tok)) return;
    char pbuf[16];
    long page = 1;
    if (api_query(r, "page", pbuf, sizeof pbuf)) {
        page = strtol(pbuf, NULL, 10);
        if (page < 1 || page > 100000) page = 1;
    }
    struct sb b = {0};
    char lid[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(lid, l.id);
    sb_str(&b, PAGE_HEAD);
    if (!l.is_album) {
        sqlite3_stmt *st = sbx_store_stmt(r->d->store, "SELECT file_name FROM photos WHERE id = ?1");
        const char *name = "Photo";
        char nbuf[1100] = "";
        if (st) {
            sqlite3_bind_blob(st, 1, l.target, 16, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
                snprintf(nbuf, sizeof nbuf, "%s", (const char *)sqlite3_column_text(st, 0));
                name = nbuf;
            }
            sqlite3_reset(st);
        }
        char pid[SBX_UUID_STRLEN + 1];
        sbx_uuid_format(pid, l.target);
        sb_esc(&b, name);
        sb_str(&b, PAGE_STYLE);
        sb_str(&b, "<h1>");
        sb_esc(&b, name);
        sb_str(&b, "</h1>\n<div class=\"one\">");
        sb_fmt(&b, "<a href=\"%s/original/%s\" download><img src=\"%s/medium/%s\" alt=\"", tok, pid, tok, pid);
        sb_esc(&b, name);
        sb_fmt(&b, "\"></a><p><a href=\"%s/original/%s\" download>Download the original</a></p></div>\n", tok, pid);
    } else {
        sqlite3_stmt *st = sbx_store_stmt(r->d->store, "SELECT name FROM albums WHERE id = ?1");
        char name[1100] = "Album";
        if (st) {
            sqlite3_bind_blob(st, 1, l.target, 16, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
                snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(st, 0));
            sqlite3_reset(st);
        }
        int64_t total = 0;
        st = sbx_store_stmt(r->d->store, "SELECT count(*) FROM album_items i JOIN photos p ON p.id = i.photo_id "
                                         "WHERE i.album_id = ?1 AND i.present = 1 AND p.put_hlc IS NOT NULL AND p.is_deleted = 0");
        if (st) {
            sqlite3_bind_blob(st, 1, l.target, 16, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW) total = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
        }
        sb_esc(&b, name);
        sb_str(&b, PAGE_STYLE);
        sb_str(&b, "<h1>");
        sb_esc(&b, name);
        sb_fmt(&b, "</h1><p>%lld photo%s</p>\n<div class=\"g\">\n", (long long)total, total == 1 ? "" : "s");
        st = sbx_store_stmt(r->d->store, "SELECT p.id, p.file_name FROM album_items i JOIN photos p ON p.id = i.photo_id "
                                         "WHERE i.album_id = ?1 AND i.present = 1 AND p.put_hlc IS NOT NULL AND p.is_deleted = 0 "
                                         "ORDER BY i.position, i.photo_id LIMIT ?2 OFFSET ?3");
        int shown = 0;
        if (st) {
            sqlite3_bind_blob(st, 1, l.target, 16, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, SBX_MAX_SHARE_PAGE);
            sqlite3_bind_int64(st, 3, (int64_t)(page - 1) * SBX_MAX_SHARE_PAGE);
            while (sqlite3_step(st) == SQLITE_ROW) {
                char pid[SBX_UUID_STRLEN + 1];
                sbx_uuid_format(pid, sqlite3_column_blob(st, 0));
                const char *fname = (const char *)sqlite3_column_text(st, 1);
                /* The first rows load at once (what a screen shows), the
                 * rest as they scroll into view. */
                sb_fmt(&b, "<figure><a href=\"%s/medium/%s\"><img src=\"%s/thumb/%s\" loading=\"%s\" alt=\"", tok, pid,
                       tok, pid, shown < 48 ? "eager" : "lazy");
                sb_esc(&b, fname);
                sb_fmt(&b, "\"></a><figcaption><a href=\"%s/original/%s\" download>", tok, pid);
                sb_esc(&b, fname);
                sb_str(&b, "</a></figcaption></figure>\n");
                shown++;
            }
            sqlite3_reset(st);
        }
        sb_str(&b, "</div>\n");
        if ((int64_t)page * SBX_MAX_SHARE_PAGE < total) sb_fmt(&b, "<nav><a href=\"%s?page=%ld\">More photos</a></nav>\n", tok, page + 1);
    }
    sb_str(&b, "</body></html>\n");
    if (b.oom) {
        free(b.p);
        return api_plain(r, 500, "Internal Server Error");
    }
    page_headers(r);
    sbx_info("share %.8s: page", lid);
    api_send_bytes(r, 200, "text/html; charset=utf-8", b.p, b.n);
    free(b.p);
}

static void share_media(struct api_req *r, enum api_media which)
{
    struct sbx_share_link l;
    char tok[SBX_SHARE_TOKEN_STRLEN + 1], buf[64];
    if (!resolve(r, &l, tok)) return;
    uint8_t photo[16];
    if (sbx_http_unescape(r->m.param[1].ptr, r->m.param[1].len, false, buf, sizeof buf, NULL) != 0 ||
        sbx_uuid_parse(photo, buf) != 0)
        return refuse(r);
    bool member;
    if (l.is_album) {
        sqlite3_stmt *st = sbx_store_stmt(r->d->store, "SELECT 1 FROM album_items i JOIN photos p ON p.id = i.photo_id "
                                                       "WHERE i.album_id = ?1 AND i.photo_id = ?2 AND i.present = 1 "
                                                       "AND p.put_hlc IS NOT NULL AND p.is_deleted = 0");
        member = false;
        if (st) {
            sqlite3_bind_blob(st, 1, l.target, 16, SQLITE_STATIC);
            sqlite3_bind_blob(st, 2, photo, 16, SQLITE_STATIC);
            member = sqlite3_step(st) == SQLITE_ROW;
            sqlite3_reset(st);
        }
    } else {
        member = memcmp(photo, l.target, 16) == 0;
    }
    if (!member) return refuse(r);
    api_media_send(r, photo, which, true);
    char lid[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(lid, l.id);
    static const char *const names[] = {"thumb", "medium", "original"};
    /* Status 0: an original being fetched from another device, answered later. */
    sbx_info("share %.8s: %s %s -> %d", lid, names[which], buf, r->req->res.status);
}

void h_share_thumb(struct api_req *r) { share_media(r, API_THUMB); }
void h_share_medium(struct api_req *r) { share_media(r, API_MEDIUM); }
void h_share_original(struct api_req *r) { share_media(r, API_ORIGINAL); }
