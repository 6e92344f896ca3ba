/* Photos' bytes over HTTP: thumbnail, medium and original, streamed from
 * the blob store with strong ETags (the content hash) and byte ranges.
 * Thumbnails and mediums missing from the log are made by the background
 * renderer (daemon/render.c): a request for one that was never tried here
 * queues the photo when this device holds the original, and is answered
 * 503 with Retry-After like one an import queued; a photo whose render
 * failed is answered with the recorded reason. No image is decoded on the
 * loop thread.
 *
 * An original held only by other devices is fetched on demand: the request
 * starts the transfer (the one `shoebox get` starts, shared by every request
 * for the same blob) and waits, its response not begun, until the blob is
 * complete, then is served like any other (ETag, Range). The wait is bounded
 * (SBX_API_FETCH_WAIT_MS, or the client's `Prefer: wait=N`): past it the
 * answer is 503 with Retry-After and the fetch goes on. Bytes are served
 * only once the whole blob matched its SHA-256: the chunk hashes a transfer
 * verifies come from the serving peer, not from the log, so a verified
 * prefix proves nothing about the content the ETag names. */
#include "api_internal.h"

#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/media.h"
#include "shoebox/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STREAM_BLOCK (256u << 10)

/* Originals that other devices hold: asks the transfer manager for them
 * (an on-demand fetch goes before background work). 0 when the original is
 * here now, SBX_EAGAIN while the fetch runs, another error when no fetch
 * could start. */
static int fetch_original(struct sbx_daemon *d, const uint8_t hash[32])
{
    int rc = sbx_transfer_want(d, hash);
    if (rc != 0) return rc;
    return sbx_blob_has(d->blobs, hash) == 0 ? 0 : SBX_EAGAIN;
}

struct photo_row {
    uint8_t hash[32], thumb[32], medium[32];
    bool has_thumb, has_medium;
    char mime[128];
    char file_name[512];
};

static int load_photo(struct sbx_daemon *d, const uint8_t id[16], struct photo_row *p)
{
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT hash, thumb_hash, medium_hash, mime_type, file_name FROM photos "
                                                "WHERE id = ?1 AND put_hlc IS NOT NULL");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW || sqlite3_column_bytes(st, 0) != 32) {
        sqlite3_reset(st);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? SBX_ENOENT : SBX_EDB;
    }
    memset(p, 0, sizeof *p);
    memcpy(p->hash, sqlite3_column_blob(st, 0), 32);
    if ((p->has_thumb = sqlite3_column_bytes(st, 1) == 32)) memcpy(p->thumb, sqlite3_column_blob(st, 1), 32);
    if ((p->has_medium = sqlite3_column_bytes(st, 2) == 32)) memcpy(p->medium, sqlite3_column_blob(st, 2), 32);
    snprintf(p->mime, sizeof p->mime, "%s", sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "");
    snprintf(p->file_name, sizeof p->file_name, "%s",
             sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "");
    sqlite3_reset(st);
    return 0;
}

/* ---- renditions the log does not name ---- */

/* A failure: the share server's plain answer, or the API's JSON error. */
static void fail(struct api_req *r, bool share, int status, const char *msg)
{
    if (share) api_plain(r, status, status == 404 ? "Not Found" : api_reason(status));
    else api_error(r, status, "%s", msg);
}

enum render_row { ROW_NONE, ROW_PENDING, ROW_FAILED };

/* The photo's row in the render queue: pending (the renderer makes it),
 * failed (why in `why`), or none (never tried on this device, or done). */
static int render_row(struct sbx_daemon *d, const uint8_t photo[16], char *why, size_t cap)
{
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT state, error FROM render_queue WHERE photo_id = ?1");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, photo, 16, SQLITE_STATIC);
    int rc = sqlite3_step(st), row = ROW_NONE;
    if (rc == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        const char *error = (const char *)sqlite3_column_text(st, 1);
        row = state && strcmp(state, "failed") == 0 ? ROW_FAILED : ROW_PENDING;
        snprintf(why, cap, "%s", error ? error : "no reason recorded");
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? row : SBX_EDB;
}

/* Hands a photo to the background renderer, as an import does. */
static int queue_render(struct sbx_daemon *d, const uint8_t photo[16])
{
    sqlite3_stmt *st = sbx_store_stmt(d->store, "INSERT OR IGNORE INTO render_queue(photo_id, queued_at, updated_at) "
                                                "VALUES (?1, ?2, ?2)");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, photo, 16, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, sbx_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return sbx_store_err(rc);
    sbx_render_kick(d);
    return 0;
}

/* A thumbnail or medium the log does not name: says why there is none, or
 * queues its render. Always answers. */
static void no_rendition(struct api_req *r, const uint8_t photo[16], const struct photo_row *p, enum api_media which,
                         bool share)
{
    const char *what = which == API_THUMB ? "thumbnail" : "medium image";
    char msg[400], why[200] = "";
    /* The renderer makes a photo's two sizes together, for photos without
     * a thumbnail: a medium missing beside a thumbnail is not its work. */
    if (which == API_MEDIUM && p->has_thumb)
        return fail(r, share, 404, "no medium image: the library names only a thumbnail for this photo");
    int row = render_row(r->d, photo, why, sizeof why);
    if (row < 0) return fail(r, share, 500, "database error");
    if (row == ROW_FAILED) {
        /* Tried and failed for good (the bytes decide): not again. */
        snprintf(msg, sizeof msg, "no %s: rendering this photo failed (%s)", what, why);
        return fail(r, share, 404, msg);
    }
    if (row == ROW_NONE) {
        /* Never tried here (a photo from before the renderer, or whose
         * device could not render it): the renderer may, when the type is
         * one it renders and the original is here. */
        if (!sbx_media_can_render(p->mime)) return fail(r, share, 404, "this type of file has no thumbnail");
        if (sbx_blob_has(r->api->blobs, p->hash) != 0)
            return fail(r, share, 404, "no thumbnail: this device does not hold the original to render one");
        int rc = queue_render(r->d, photo);
        if (rc != 0) return fail(r, share, 500, "cannot queue the render");
        char id[SBX_UUID_STRLEN + 1];
        sbx_uuid_format(id, photo);
        sbx_info("api: photo %s has no %s: queued for the renderer", id, what);
    }
    /* Queued (by an import, or just now): it comes soon, and rendering it
     * here would hold the daemon's loop for the decode. */
    api_header(r, H2O_TOKEN_RETRY_AFTER, "2");
    if (share) return api_plain(r, 503, "Service Unavailable");
    snprintf(msg, sizeof msg, "the %s is being rendered: retry", what);
    api_error(r, 503, "%s", msg);
}

/* ---- streaming ---- */

struct blob_stream {
    h2o_generator_t super;
    sbx_blob_file *f;
    uint64_t off, end; /* end is exclusive */
    char *buf;
};

static void stream_dispose(void *p)
{
    struct blob_stream *s = p;
    if (s->f) sbx_blob_file_close(s->f);
    free(s->buf);
}

static void stream_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    struct blob_stream *s = (struct blob_stream *)g;
    uint64_t left = s->end - s->off;
    size_t want = left < STREAM_BLOCK ? (size_t)left : STREAM_BLOCK;
    size_t got = 0;
    int rc = want ? sbx_blob_file_read(s->f, s->off, s->buf, want, &got) : 0;
    if (rc != 0 || got != want) {
        sbx_warn("api: reading a blob failed midway: %s", sbx_strerror(rc ? rc : SBX_EIO));
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    s->off += got;
    h2o_iovec_t v = h2o_iovec_init(s->buf, got);
    h2o_send(req, &v, 1, s->off == s->end ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void stream_stop(h2o_generator_t *g, h2o_req_t *req)
{
    /* The client went away; the request's pool disposes of the stream. */
    (void)g;
    (void)req;
}

static bool etag_listed(const char *list, size_t len, const char *etag)
{
    size_t el = strlen(etag);
    for (size_t i = 0; i + 1 <= len; i++) {
        if (list[i] == '*') return true;
        if (i + el <= len && memcmp(list + i, etag, el) == 0) return true;
    }
    return false;
}

/* A file name for Content-Disposition: printable ASCII without quotes or
 * backslashes, so the header can carry it as a quoted string. */
static void safe_name(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        out[o++] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '/') ? '_' : (char)c;
    }
    out[o] = '\0';
    if (o == 0) snprintf(out, cap, "photo");
}

static bool wait_for_fetch(struct api_req *r, const uint8_t photo[16], const uint8_t hash[32], bool share,
                           int64_t wait_ms);

/* wait_ms: how long the request may wait for an original being fetched
 * (0: answer now). */
static void media_send(struct api_req *r, const uint8_t photo[16], enum api_media which, bool share, int64_t wait_ms)
{
    struct sbx_api *api = r->api;
    struct photo_row p;
    int rc = load_photo(r->d, photo, &p);
    if (rc != 0) return fail(r, share, rc == SBX_ENOENT ? 404 : 500, "no photo with this id");
    if (which != API_ORIGINAL && !(which == API_THUMB ? p.has_thumb : p.has_medium))
        return no_rendition(r, photo, &p, which, share);
    const uint8_t *hash = which == API_THUMB ? p.thumb : which == API_MEDIUM ? p.medium : p.hash;
    sbx_blob_file *f = NULL;
    rc = sbx_blob_open(api->blobs, hash, &f);
    if (rc == SBX_ENOENT) {
        /* A removed device never serves again: only members count. */
        sqlite3_stmt *st = sbx_store_stmt(r->d->store, "SELECT count(*) FROM blob_holders h JOIN authors a ON "
                                                       "a.ix = h.holder_ix JOIN devices v ON v.key = a.key WHERE "
                                                       "h.hash = ?1 AND h.held = 1 AND a.key != ?2 AND v.removed = 0");
        int64_t holders = 0;
        if (st) {
            sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
            sqlite3_bind_blob(st, 2, r->d->id.pk, 32, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW) holders = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
        }
        if (which == API_ORIGINAL && holders == 0)
            return fail(r, share, 404, "no device of the library is known to hold the original");
        /* Thumbnails and mediums come from peers by themselves; an original
         * is asked for now. Either way the client retries shortly. */
        int frc = which == API_ORIGINAL ? fetch_original(r->d, hash) : SBX_EAGAIN;
        if (frc == 0) rc = sbx_blob_open(api->blobs, hash, &f);
        /* The response waits, not begun, for the fetch to end. */
        if (frc == SBX_EAGAIN && which == API_ORIGINAL && wait_ms > 0 && wait_for_fetch(r, photo, hash, share, wait_ms))
            return;
        if (frc != 0 || rc == SBX_ENOENT) {
            uint64_t done = 0, size = 0;
            sbx_transfer_progress(r->d, hash, &done, &size);
            api_header(r, H2O_TOKEN_RETRY_AFTER, which == API_ORIGINAL ? "2" : "10");
            if (share) return api_plain(r, 503, "Service Unavailable");
            return api_json(r, 503,
                            json_pack("{s:s, s:I, s:I, s:I}", "error",
                                      which == API_ORIGINAL
                                          ? "the original is being fetched from another device of the library: retry"
                                          : "these bytes are on other devices and on their way here: retry",
                                      "holders", (json_int_t)holders, "bytesDone", (json_int_t)done, "sizeBytes",
                                      (json_int_t)size));
        }
    }
    if (rc != 0) return fail(r, share, 500, "cannot read the blob store");

    uint64_t size = sbx_blob_file_size(f);
    char hex[65], etag[72];
    sbx_hex_encode(hex, hash, 32);
    snprintf(etag, sizeof etag, "\"%s\"", hex);
    api_header(r, H2O_TOKEN_ETAG, etag);
    api_header(r, H2O_TOKEN_ACCEPT_RANGES, "bytes");
    api_header(r, H2O_TOKEN_CACHE_CONTROL, share ? "private, max-age=3600" : "private, max-age=86400");
    api_header_str(r, "x-content-type-options", "nosniff");
    const char *type = which == API_ORIGINAL ? (p.mime[0] ? p.mime : "application/octet-stream") : "image/jpeg";
    if (which == API_ORIGINAL) {
        char name[300], disp[400];
        safe_name(name, sizeof name, p.file_name);
        snprintf(disp, sizeof disp, "%s; filename=\"%s\"", share ? "attachment" : "inline", name);
        api_header(r, H2O_TOKEN_CONTENT_DISPOSITION, disp);
    }
    size_t vlen = 0;
    const char *inm = api_req_header(r, H2O_TOKEN_IF_NONE_MATCH, &vlen);
    if (inm && etag_listed(inm, vlen, etag)) {
        sbx_blob_file_close(f);
        r->req->res.status = 304;
        r->req->res.reason = api_reason(304);
        h2o_send_inline(r->req, "", 0);
        return;
    }
    uint64_t first = 0, last = size ? size - 1 : 0;
    int status = 200;
    const char *range = api_req_header(r, H2O_TOKEN_RANGE, &vlen);
    size_t ilen = 0;
    const char *if_range = api_req_header(r, H2O_TOKEN_IF_RANGE, &ilen);
    if (range && (!if_range || (ilen == strlen(etag) && memcmp(if_range, etag, ilen) == 0))) {
        rc = sbx_http_range(range, vlen, size, &first, &last);
        if (rc == SBX_EINVAL) {
            sbx_blob_file_close(f);
            char cr[64];
            snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
            api_header(r, H2O_TOKEN_CONTENT_RANGE, cr);
            return api_send_bytes(r, 416, "text/plain", "", 0);
        }
        if (rc == 0) {
            status = 206;
            char cr[96];
            snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)first, (unsigned long long)last,
                     (unsigned long long)size);
            api_header(r, H2O_TOKEN_CONTENT_RANGE, cr);
        } else {
            first = 0;
            last = size ? size - 1 : 0;
        }
    }
    struct blob_stream *s = h2o_mem_alloc_shared(&r->req->pool, sizeof *s, stream_dispose);
    memset(s, 0, sizeof *s);
    s->super.proceed = stream_proceed;
    s->super.stop = stream_stop;
    s->f = f;
    s->off = first;
    s->end = size ? last + 1 : 0;
    s->buf = malloc(STREAM_BLOCK);
    if (!s->buf) return fail(r, share, 500, "out of memory");
    r->req->res.status = status;
    r->req->res.reason = api_reason(status);
    r->req->res.content_length = (size_t)(s->end - s->off);
    api_header(r, H2O_TOKEN_CONTENT_TYPE, type);
    h2o_start_response(r->req, &s->super);
    stream_proceed(&s->super, r->req);
}

/* ---- waiting for an original ---- */

#define WAIT_POLL_MS 250

/* A request waiting for an original. It lives in the request's memory pool,
 * so it goes with the request: when the client goes away first (an HTTP/2
 * stream reset, a closed connection) the pool's dispose callback takes it
 * off the list, and nothing points at the request any more. */
struct fetch_wait {
    struct fetch_wait *prev, *next;
    struct sbx_api *api;
    h2o_req_t *req;
    uint8_t photo[16], hash[32];
    bool share, linked, due;
    int64_t deadline_ms;
};

static void wait_unlink(struct fetch_wait *w)
{
    struct sbx_api *api = w->api;
    SBX_ASSERT(w->linked && api->n_waiters > 0);
    if (w->prev) w->prev->next = w->next;
    else api->waiters = w->next;
    if (w->next) w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = false;
    api->n_waiters--;
}

static void wait_dispose(void *p)
{
    struct fetch_wait *w = p;
    if (w->linked) wait_unlink(w);
}

/* Answers a waiting request: the original now, or (past its wait, or at
 * shutdown) the usual 503 with the fetch's progress. */
static void wait_answer(struct fetch_wait *w)
{
    struct sbx_api *api = w->api;
    wait_unlink(w);
    struct api_req r = {.api = api, .d = api->d, .req = w->req};
    if (api->stopping) {
        api_close_after(&r);
        api_header(&r, H2O_TOKEN_RETRY_AFTER, "10");
        if (w->share) return api_plain(&r, 503, "Service Unavailable");
        return api_error(&r, 503, "the daemon is shutting down");
    }
    media_send(&r, w->photo, API_ORIGINAL, w->share, 0);
}

static void on_wait_tick(uv_timer_t *t)
{
    struct sbx_api *api = t->data;
    int64_t now = sbx_now_ms();
    for (struct fetch_wait *w = api->waiters; w; w = w->next)
        w->due = api->stopping || now >= w->deadline_ms || sbx_blob_has(api->blobs, w->hash) == 0;
    /* One answer per walk, from the list's head: answering may run h2o
     * code that disposes of other requests (and so of their waits). */
    for (size_t guard = 0; guard <= SBX_MAX_API_FETCH_WAITERS; guard++) {
        struct fetch_wait *due = api->waiters;
        while (due && !due->due) due = due->next;
        if (!due) break;
        wait_answer(due);
    }
    if (!api->waiters) uv_timer_stop(t);
}

static bool wait_for_fetch(struct api_req *r, const uint8_t photo[16], const uint8_t hash[32], bool share,
                           int64_t wait_ms)
{
    struct sbx_api *api = r->api;
    if (api->stopping || api->n_waiters >= SBX_MAX_API_FETCH_WAITERS) return false;
    if (!api->wait_timer_on) {
        if (uv_timer_init(api->d->loop, &api->wait_timer) != 0) return false;
        api->wait_timer.data = api;
        api->wait_timer_on = true;
    }
    struct fetch_wait *w = h2o_mem_alloc_shared(&r->req->pool, sizeof *w, wait_dispose);
    memset(w, 0, sizeof *w);
    w->api = api;
    w->req = r->req;
    memcpy(w->photo, photo, 16);
    memcpy(w->hash, hash, 32);
    w->share = share;
    w->deadline_ms = sbx_now_ms() + wait_ms;
    w->next = api->waiters;
    if (api->waiters) api->waiters->prev = w;
    api->waiters = w;
    w->linked = true;
    api->n_waiters++;
    char h[13];
    sbx_hex_encode(h, hash, 6);
    sbx_info("api: a request waits for original %s (%zu waiting)", h, api->n_waiters);
    /* Polled as well as told (sbx_api_blob_ready): the blob may also come
     * complete by another way (an upload or import of the same bytes). */
    if (!uv_is_active((uv_handle_t *)&api->wait_timer))
        uv_timer_start(&api->wait_timer, on_wait_tick, WAIT_POLL_MS, WAIT_POLL_MS);
    return true;
}

void sbx_api_blob_ready(struct sbx_daemon *d, const uint8_t hash[32])
{
    struct sbx_api *api = d->api;
    if (!api || !api->wait_timer_on || api->stopping) return;
    for (struct fetch_wait *w = api->waiters; w; w = w->next) {
        if (memcmp(w->hash, hash, 32) != 0) continue;
        /* Answered on the next turn of the loop, not inside the transfer
         * code that calls this. */
        uv_timer_start(&api->wait_timer, on_wait_tick, 0, WAIT_POLL_MS);
        return;
    }
}

void api_media_stop(struct sbx_api *api)
{
    if (!api->wait_timer_on) return;
    SBX_ASSERT(api->stopping);
    on_wait_tick(&api->wait_timer);
    SBX_ASSERT(api->waiters == NULL);
    uv_close((uv_handle_t *)&api->wait_timer, NULL);
    api->wait_timer_on = false;
}

/* How long this request may wait for an original: `Prefer: wait=SECONDS`
 * (RFC 7240) when the client gives it, bounded, else the default. */
static int64_t wanted_wait(struct api_req *r)
{
    ssize_t hi = h2o_find_header_by_str(&r->req->headers, H2O_STRLIT("prefer"), -1);
    size_t len = hi >= 0 ? r->req->headers.entries[hi].value.len : 0;
    const char *v = hi >= 0 ? r->req->headers.entries[hi].value.base : NULL;
    for (size_t i = 0; v && i + 5 <= len; i++) {
        if (strncasecmp(v + i, "wait=", 5) != 0 || (i > 0 && v[i - 1] != ' ' && v[i - 1] != ',' && v[i - 1] != ';'))
            continue;
        int64_t s = 0;
        size_t k = i + 5, digits = 0;
        for (; k < len && v[k] >= '0' && v[k] <= '9' && digits < 7; k++, digits++) s = s * 10 + (v[k] - '0');
        if (digits == 0) break;
        int64_t ms = s * 1000;
        return ms > SBX_MAX_API_FETCH_WAIT_MS ? SBX_MAX_API_FETCH_WAIT_MS : ms;
    }
    return SBX_API_FETCH_WAIT_MS;
}

void api_media_send(struct api_req *r, const uint8_t photo[16], enum api_media which, bool share)
{
    media_send(r, photo, which, share, which == API_ORIGINAL ? wanted_wait(r) : 0);
}
