/* The library over HTTP: the gallery's pages, the change feed, and a JSON
 * endpoint for every CLI command (albums, tags, delete and restore,
 * devices, status, pairing, imports). Writes go through the same control
 * commands as the CLI, so both surfaces behave alike; the JSON is the
 * seed's camelCase. */
#include "api_internal.h"

#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <stdlib.h>
#include <string.h>

/* Statements cached by the store are keyed by their text's address, so
 * the ones built from sbx_photo_columns live in static buffers. */
static char sql_page[2][3][2048];
static char sql_photo_one[2048];

static void build_sql(void)
{
    if (sql_photo_one[0]) return;
    for (int del = 0; del < 2; del++) {
        /* 0: the first page (dated photos newest first, then the undated
         * ones: SQLite sorts NULL last in DESC order); 1: after a dated
         * position (a range seek on the gallery index); 2: the undated
         * photos, from the start (?4) or after an id. */
        snprintf(sql_page[del][0], sizeof sql_page[del][0],
                 "SELECT %s, p.captured_at FROM photos p WHERE p.put_hlc IS NOT NULL AND p.is_deleted = %d "
                 "ORDER BY p.captured_at DESC, p.id LIMIT ?1",
                 sbx_photo_columns, del);
        snprintf(sql_page[del][1], sizeof sql_page[del][1],
                 "SELECT %s, p.captured_at FROM photos p WHERE p.put_hlc IS NOT NULL AND p.is_deleted = %d "
                 "AND p.captured_at <= ?2 AND (p.captured_at < ?2 OR p.id > ?3) "
                 "ORDER BY p.captured_at DESC, p.id LIMIT ?1",
                 sbx_photo_columns, del);
        snprintf(sql_page[del][2], sizeof sql_page[del][2],
                 "SELECT %s, p.captured_at FROM photos p WHERE p.put_hlc IS NOT NULL AND p.is_deleted = %d "
                 "AND p.captured_at IS NULL AND (?4 OR p.id > ?3) ORDER BY p.id LIMIT ?1",
                 sbx_photo_columns, del);
    }
    snprintf(sql_photo_one, sizeof sql_photo_one,
             "SELECT %s FROM photos p WHERE p.id = ?1 AND p.put_hlc IS NOT NULL", sbx_photo_columns);
}

/* The photo columns end at index 20; extra columns follow. */
#define EXTRA_COL 21

static json_t *photo_camel(sqlite3_stmt *st)
{
    json_t *raw = sbx_photo_json(st);
    json_t *o = sbx_json_camel(raw);
    json_decref(raw);
    return o;
}

static bool limit_param(struct api_req *r, unsigned def, unsigned *out)
{
    char buf[32];
    *out = def;
    if (!api_query(r, "limit", buf, sizeof buf)) return true;
    char *end = NULL;
    long v = strtol(buf, &end, 10);
    if (!*buf || *end || v < 1 || v > (long)SBX_MAX_API_PAGE) {
        api_error(r, 400, "limit is 1 to %u", SBX_MAX_API_PAGE);
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static uint64_t current_seq(struct sbx_daemon *d)
{
    int64_t v = sbx_store_query_int(d->store, "SELECT ifnull(max(cursor), 0) FROM sync_state");
    return v > 0 ? (uint64_t)v : 0;
}

void api_feed_now(struct sbx_api *api, char out[SBX_API_CURSOR_STRLEN + 1])
{
    /* "Everything up to the current change": the largest position at the
     * current sequence. */
    struct sbx_feed_pos p = {.seq = current_seq(api->d), .kind = SBX_FEED_ALBUM};
    memset(p.id, 0xff, sizeof p.id);
    sbx_api_feed_cursor(out, api->cursor_key, &p);
}

/* ---- GET /photos ---- */

void h_photos_list(struct api_req *r)
{
    build_sql();
    unsigned limit;
    if (!limit_param(r, 100, &limit)) return;
    char buf[128];
    bool deleted = api_query(r, "deleted", buf, sizeof buf) && (strcmp(buf, "true") == 0 || strcmp(buf, "1") == 0);
    struct sbx_page_pos pos = {.deleted = deleted};
    bool have_pos = false;
    if (api_query(r, "cursor", buf, sizeof buf) && buf[0]) {
        if (sbx_api_page_cursor_parse(r->api->cursor_key, buf, strlen(buf), &pos) != 0) {
            api_error(r, 400, "invalid cursor (a page cursor from GET /photos is needed)");
            return;
        }
        deleted = pos.deleted;
        have_pos = true;
    }
    char feed[SBX_API_CURSOR_STRLEN + 1];
    api_feed_now(r->api, feed);
    json_t *items = json_array();
    unsigned n = 0;
    bool more = false;
    struct sbx_page_pos last = {.deleted = deleted};
    /* At most two queries: the dated photos after the cursor, then the
     * undated ones from their start. */
    int phase = !have_pos ? 0 : pos.null_zone ? 2 : 1;
    bool from_start = false;
    for (int pass = 0; pass < 2; pass++) {
        sqlite3_stmt *st = sbx_store_stmt(r->d->store, sql_page[deleted][phase]);
        if (!st) {
            json_decref(items);
            api_error(r, 500, "database error");
            return;
        }
        sqlite3_bind_int64(st, 1, (int64_t)(limit - n) + 1);
        if (phase == 1) sqlite3_bind_int64(st, 2, pos.captured_at);
        if (phase >= 1) sqlite3_bind_blob(st, 3, pos.id, 16, SQLITE_STATIC);
        if (phase == 2) sqlite3_bind_int(st, 4, from_start);
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (n == limit) {
                more = true;
                break;
            }
            json_array_append_new(items, photo_camel(st));
            last.null_zone = sqlite3_column_type(st, EXTRA_COL) == SQLITE_NULL;
            last.captured_at = last.null_zone ? 0 : sqlite3_column_int64(st, EXTRA_COL);
            if (sqlite3_column_bytes(st, 0) == 16) memcpy(last.id, sqlite3_column_blob(st, 0), 16);
            n++;
        }
        sqlite3_reset(st);
        if (more || phase != 1) break;
        phase = 2;
        from_start = true;
    }
    char next[SBX_API_CURSOR_STRLEN + 1] = "";
    if (more) sbx_api_page_cursor(next, r->api->cursor_key, &last);
    api_json(r, 200, json_pack("{s:o, s:s?, s:s, s:b}", "items", items, "nextCursor", more ? next : NULL,
                               "feedCursor", feed, "hasMore", more));
}

/* ---- GET /photos/{id}, delete, restore, tags ---- */

static json_t *photo_by_id(struct sbx_daemon *d, const uint8_t id[16])
{
    build_sql();
    sqlite3_stmt *st = sbx_store_stmt(d->store, sql_photo_one);
    if (!st) return NULL;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    json_t *o = sqlite3_step(st) == SQLITE_ROW ? photo_camel(st) : NULL;
    sqlite3_reset(st);
    return o;
}

void h_photo_get(struct api_req *r)
{
    uint8_t id[16];
    if (!api_param_id(r, 0, "photo", id)) return;
    json_t *o = photo_by_id(r->d, id);
    if (!o) return api_error(r, 404, "no photo with this id");
    api_json(r, 200, o);
}

static void photo_write(struct api_req *r, const char *cmd)
{
    uint8_t id[16];
    if (!api_param_id(r, 0, "photo", id)) return;
    char s[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(s, id);
    json_t *res = api_control(r, cmd, json_pack("{s:s}", "id", s));
    if (!res) return;
    json_decref(res);
    json_t *o = photo_by_id(r->d, id);
    if (!o) return api_error(r, 404, "no photo with this id");
    api_json(r, 200, o);
}

void h_photo_delete(struct api_req *r) { photo_write(r, "photo.delete"); }
void h_photo_restore(struct api_req *r) { photo_write(r, "photo.restore"); }

static void photo_tag(struct api_req *r, const char *cmd)
{
    uint8_t id[16];
    char label[SBX_MAX_LABEL + 1];
    if (!api_param_id(r, 0, "photo", id) || !api_param(r, 1, label, sizeof label)) return;
    char s[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(s, id);
    json_t *res = api_control(r, cmd, json_pack("{s:s, s:s}", "photo", s, "label", label));
    if (!res) return;
    json_decref(res);
    json_t *o = photo_by_id(r->d, id);
    if (!o) return api_error(r, 404, "no photo with this id");
    api_json(r, 200, o);
}

void h_photo_tag(struct api_req *r) { photo_tag(r, "tag"); }
void h_photo_untag(struct api_req *r) { photo_tag(r, "untag"); }

void h_photo_thumb(struct api_req *r)
{
    uint8_t id[16];
    if (api_param_id(r, 0, "photo", id)) api_media_send(r, id, API_THUMB, false);
}

void h_photo_medium(struct api_req *r)
{
    uint8_t id[16];
    if (api_param_id(r, 0, "photo", id)) api_media_send(r, id, API_MEDIUM, false);
}

void h_photo_original(struct api_req *r)
{
    uint8_t id[16];
    if (api_param_id(r, 0, "photo", id)) api_media_send(r, id, API_ORIGINAL, false);
}

/* ---- albums ---- */

json_t *api_album_json(struct sbx_daemon *d, const uint8_t id[16], bool *deleted, int64_t *updated_at)
{
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT name, cover_photo_id, created_at, updated_at, is_deleted, "
                                                "deleted_at FROM albums WHERE id = ?1 AND create_hlc IS NOT NULL");
    if (!st) return NULL;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return NULL;
    }
    char s[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(s, id);
    json_t *o = json_pack("{s:s, s:s}", "id", s, "name", (const char *)sqlite3_column_text(st, 0));
    if (sqlite3_column_bytes(st, 1) == 16) {
        sbx_uuid_format(s, sqlite3_column_blob(st, 1));
        json_object_set_new(o, "coverPhotoId", json_string(s));
    } else {
        json_object_set_new(o, "coverPhotoId", json_null());
    }
    json_object_set_new(o, "createdAt", sbx_json_time(sqlite3_column_int64(st, 2)));
    json_object_set_new(o, "updatedAt", sbx_json_time(sqlite3_column_int64(st, 3)));
    if (updated_at) *updated_at = sqlite3_column_int64(st, 3);
    bool del = sqlite3_column_int(st, 4) != 0;
    if (deleted) *deleted = del;
    json_object_set_new(o, "isDeleted", json_boolean(del));
    json_object_set_new(o, "deletedAt", sqlite3_column_type(st, 5) == SQLITE_NULL ? json_null()
                                                                                 : sbx_json_time(sqlite3_column_int64(st, 5)));
    sqlite3_reset(st);
    st = sbx_store_stmt(d->store, "SELECT i.photo_id FROM album_items i JOIN photos p ON p.id = i.photo_id "
                                  "WHERE i.album_id = ?1 AND i.present = 1 AND p.put_hlc IS NOT NULL AND p.is_deleted = 0 "
                                  "ORDER BY i.position, i.photo_id");
    json_t *ids = json_array();
    if (st) {
        sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
            sbx_uuid_format(s, sqlite3_column_blob(st, 0));
            json_array_append_new(ids, json_string(s));
        }
        sqlite3_reset(st);
    }
    json_object_set_new(o, "photoIds", ids);
    return o;
}

void h_albums_list(struct api_req *r)
{
    json_t *res = api_control(r, "albums", NULL);
    if (!res) return;
    json_t *o = sbx_json_camel(res);
    json_decref(res);
    api_json(r, 200, json_pack("{s:o}", "items", o));
}

void h_album_get(struct api_req *r)
{
    uint8_t id[16];
    if (!api_param_id(r, 0, "album", id)) return;
    json_t *o = api_album_json(r->d, id, NULL, NULL);
    if (!o) return api_error(r, 404, "no album with this id");
    api_json(r, 200, o);
}

void h_album_create(struct api_req *r)
{
    json_t *body = api_body(r);
    if (!body) return;
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!name) {
        json_decref(body);
        return api_error(r, 400, "give the album's name: {\"name\": \"...\"}");
    }
    json_t *res = api_control(r, "album.create", json_pack("{s:s}", "name", name));
    json_decref(body);
    if (!res) return;
    uint8_t id[16];
    int rc = sbx_uuid_parse(id, json_string_value(json_object_get(res, "id")));
    json_decref(res);
    json_t *o = rc == 0 ? api_album_json(r->d, id, NULL, NULL) : NULL;
    if (!o) return api_error(r, 500, "the album was not created");
    api_json(r, 201, o);
}

static bool album_arg(struct api_req *r, uint8_t id[16], char s[SBX_UUID_STRLEN + 1])
{
    if (!api_param_id(r, 0, "album", id)) return false;
    sbx_uuid_format(s, id);
    return true;
}

static void album_done(struct api_req *r, json_t *res, const uint8_t id[16])
{
    if (!res) return;
    json_decref(res);
    json_t *o = api_album_json(r->d, id, NULL, NULL);
    if (!o) return api_error(r, 404, "no album with this id");
    api_json(r, 200, o);
}

void h_album_rename(struct api_req *r)
{
    uint8_t id[16];
    char s[SBX_UUID_STRLEN + 1];
    if (!album_arg(r, id, s)) return;
    json_t *body = api_body(r);
    if (!body) return;
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!name) {
        json_decref(body);
        return api_error(r, 400, "give the album's new name: {\"name\": \"...\"}");
    }
    json_t *res = api_control(r, "album.rename", json_pack("{s:s, s:s}", "album", s, "name", name));
    json_decref(body);
    album_done(r, res, id);
}

void h_album_delete(struct api_req *r)
{
    uint8_t id[16];
    char s[SBX_UUID_STRLEN + 1];
    if (!album_arg(r, id, s)) return;
    album_done(r, api_control(r, "album.delete", json_pack("{s:s}", "album", s)), id);
}

void h_album_add(struct api_req *r)
{
    uint8_t id[16];
    char s[SBX_UUID_STRLEN + 1];
    if (!album_arg(r, id, s)) return;
    json_t *body = api_body(r);
    if (!body) return;
    json_t *ids = json_object_get(body, "photoIds");
    size_t i;
    json_t *v;
    bool good = json_is_array(ids) && json_array_size(ids) > 0;
    json_array_foreach(ids, i, v) {
        uint8_t pid[16];
        if (!json_is_string(v) || sbx_uuid_parse(pid, json_string_value(v)) != 0) good = false;
    }
    if (!good) {
        json_decref(body);
        return api_error(r, 400, "give {\"photoIds\": [full photo ids]}");
    }
    json_t *res = api_control(r, "album.add", json_pack("{s:s, s:O}", "album", s, "photos", ids));
    json_decref(body);
    album_done(r, res, id);
}

void h_album_remove(struct api_req *r)
{
    uint8_t id[16], pid[16];
    char s[SBX_UUID_STRLEN + 1], ps[SBX_UUID_STRLEN + 1];
    if (!album_arg(r, id, s) || !api_param_id(r, 1, "photo", pid)) return;
    sbx_uuid_format(ps, pid);
    album_done(r, api_control(r, "album.remove", json_pack("{s:s, s:[s]}", "album", s, "photos", ps)), id);
}

/* ---- devices, pairing, imports ---- */

void h_devices_list(struct api_req *r)
{
    json_t *res = api_control(r, "devices", NULL);
    if (!res) return;
    json_t *o = sbx_json_camel(res);
    json_decref(res);
    api_json(r, 200, json_pack("{s:o}", "items", o));
}

void h_device_remove(struct api_req *r)
{
    char id[SBX_DEVID_STRLEN + 16];
    if (!api_param(r, 0, id, sizeof id)) return;
    uint8_t key[32];
    if (sbx_devid_parse(key, id) != 0) return api_error(r, 400, "'%s' is not a device id", id);
    json_t *res = api_control(r, "device.remove", json_pack("{s:s}", "id", id));
    if (!res) return;
    json_t *o = sbx_json_camel(res);
    json_decref(res);
    api_json(r, 200, o);
}

void h_pair(struct api_req *r)
{
    json_t *body = api_body(r);
    if (!body) return;
    json_t *args = json_object();
    json_t *ttl = json_object_get(body, "ttl");
    if (ttl) json_object_set(args, "ttl", ttl);
    json_decref(body);
    json_t *res = api_control(r, "pair", args);
    if (!res) return;
    json_t *o = sbx_json_camel(res);
    json_decref(res);
    api_json(r, 201, o);
}

void h_imports_list(struct api_req *r)
{
    sqlite3_stmt *st = sbx_store_stmt(r->d->store,
                                      "SELECT id, status, paths, files_total, files_done, bytes_total, bytes_done, imported, "
                                      "duplicates, skipped, errors, created_at, updated_at, finished_at, error FROM import_jobs "
                                      "ORDER BY created_at DESC LIMIT 100");
    if (!st) return api_error(r, 500, "database error");
    json_t *items = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        char id[SBX_UUID_STRLEN + 1] = "";
        if (sqlite3_column_bytes(st, 0) == 16) sbx_uuid_format(id, sqlite3_column_blob(st, 0));
        json_error_t jerr;
        const char *paths = (const char *)sqlite3_column_text(st, 2);
        json_t *pv = paths ? json_loads(paths, 0, &jerr) : NULL;
        if (!pv) pv = paths ? json_string(paths) : json_null();
        json_t *o = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "id", id, "status",
                              (const char *)sqlite3_column_text(st, 1), "paths", pv, "filesTotal",
                              (json_int_t)sqlite3_column_int64(st, 3), "filesDone",
                              (json_int_t)sqlite3_column_int64(st, 4), "bytesTotal",
                              (json_int_t)sqlite3_column_int64(st, 5), "bytesDone",
                              (json_int_t)sqlite3_column_int64(st, 6), "imported",
                              (json_int_t)sqlite3_column_int64(st, 7), "duplicates",
                              (json_int_t)sqlite3_column_int64(st, 8), "skipped",
                              (json_int_t)sqlite3_column_int64(st, 9), "errors",
                              (json_int_t)sqlite3_column_int64(st, 10), "createdAt",
                              sbx_json_time(sqlite3_column_int64(st, 11)), "updatedAt",
                              sbx_json_time(sqlite3_column_int64(st, 12)));
        if (o) {
            json_object_set_new(o, "finishedAt", sqlite3_column_type(st, 13) == SQLITE_NULL
                                                     ? json_null()
                                                     : sbx_json_time(sqlite3_column_int64(st, 13)));
            json_object_set_new(o, "error", sqlite3_column_text(st, 14)
                                                ? json_string((const char *)sqlite3_column_text(st, 14))
                                                : json_null());
            json_array_append_new(items, o);
        }
    }
    sqlite3_reset(st);
    json_t *prog = sbx_import_progress_json(r->d);
    json_t *running = sbx_json_camel(prog);
    json_decref(prog);
    api_json(r, 200, json_pack("{s:o, s:o}", "items", items, "running", running ? running : json_null()));
}

void h_import_run(struct api_req *r)
{
    json_t *body = api_body(r);
    if (!body) return;
    json_t *paths = json_object_get(body, "paths");
    if (!json_is_array(paths) || json_array_size(paths) == 0) {
        json_decref(body);
        return api_error(r, 400, "give {\"paths\": [absolute paths on this device]}");
    }
    /* The import runs on the importer's worker thread; the answer is the
     * job as it starts, and GET /imports follows it. */
    char err[512] = "";
    int rc = sbx_import_start(r->d, paths, NULL, err, sizeof err);
    json_decref(body);
    if (rc != 0) return api_error(r, rc == SBX_EBUSY ? 409 : 400, "%s", err[0] ? err : sbx_strerror(rc));
    json_t *prog = sbx_import_progress_json(r->d);
    json_t *o = sbx_json_camel(prog);
    json_decref(prog);
    api_header(r, H2O_TOKEN_LOCATION, "/imports");
    api_json(r, 202, o);
}

void h_free_space(struct api_req *r)
{
    json_t *body = api_body(r);
    if (!body) return;
    json_t *min = json_object_get(body, "minFullPeers");
    json_t *args = json_object();
    if (json_is_integer(min)) json_object_set(args, "min_full", min);
    else if (min && !json_is_null(min)) {
        json_decref(body);
        json_decref(args);
        return api_error(r, 400, "minFullPeers is a number of full peers");
    }
    json_decref(body);
    json_t *res = api_control(r, "free_space", args);
    if (!res) return;
    json_t *o = sbx_json_camel(res);
    json_decref(res);
    api_json(r, 200, o);
}

/* ---- share links (the commands live in api_share.c) ---- */

void h_shares_list(struct api_req *r)
{
    json_t *res = api_control(r, "share.list", NULL);
    if (!res) return;
    json_t *o = sbx_json_camel(res);
    json_decref(res);
    api_json(r, 200, json_pack("{s:o}", "items", o));
}

void h_share_create(struct api_req *r)
{
    json_t *body = api_body(r);
    if (!body) return;
    json_t *args = json_object();
    const char *album = json_string_value(json_object_get(body, "albumId"));
    const char *photo = json_string_value(json_object_get(body, "photoId"));
    uint8_t tmp[16];
    if (!!album == !!photo || sbx_uuid_parse(tmp, album ? album : photo) != 0) {
        json_decref(body);
        json_decref(args);
        return api_error(r, 400, "give exactly one of albumId and photoId (a full id)");
    }
    json_object_set_new(args, album ? "album" : "photo", json_string(album ? album : photo));
    json_t *exp = json_object_get(body, "expiresIn");
    if (json_is_integer(exp)) json_object_set(args, "expires", exp);
    else if (json_is_string(exp)) json_object_set(args, "expires", exp);
    else if (exp && !json_is_null(exp)) {
        json_decref(body);
        json_decref(args);
        return api_error(r, 400, "expiresIn is a number of seconds or a duration such as \"7d\"");
    }
    json_decref(body);
    json_t *res = api_control(r, "share.create", args);
    if (!res) return;
    json_t *o = sbx_json_camel(res);
    json_decref(res);
    api_json(r, 201, o);
}

void h_share_revoke(struct api_req *r)
{
    uint8_t id[16];
    if (!api_param_id(r, 0, "share link", id)) return;
    char s[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(s, id);
    json_t *res = api_control(r, "share.revoke", json_pack("{s:s}", "id", s));
    if (!res) return;
    json_t *o = sbx_json_camel(res);
    json_decref(res);
    api_json(r, 200, o);
}

/* ---- GET /feed ---- */

struct feed_row {
    uint64_t seq;
    uint8_t kind;
    uint8_t id[16];
};

static int feed_cmp(const void *a, const void *b)
{
    const struct feed_row *x = a, *y = b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    return memcmp(x->id, y->id, 16);
}

static uint64_t feed_floor(struct sbx_daemon *d)
{
    char buf[32] = "";
    if (sbx_store_meta_get_text(d->store, "feed_floor", buf, sizeof buf) != 0) return 0;
    return strtoull(buf, NULL, 10);
}

void h_feed(struct api_req *r)
{
    build_sql();
    unsigned limit;
    if (!limit_param(r, 500, &limit)) return;
    struct sbx_feed_pos pos = {0};
    char buf[128];
    uint64_t now = current_seq(r->d);
    if (api_query(r, "cursor", buf, sizeof buf) && buf[0]) {
        if (sbx_api_feed_cursor_parse(r->api->cursor_key, buf, strlen(buf), &pos) != 0)
            return api_error(r, 400, "invalid cursor (a feed cursor from GET /photos or GET /feed is needed)");
        /* Older than what this device can answer for (its model was rebuilt
         * since), or from a history this device no longer has (its database
         * was restored from a backup): the client must start over. */
        if (pos.seq < feed_floor(r->d) || pos.seq > now) {
            api_json(r, 410, json_pack("{s:b, s:s}", "reset", 1, "error",
                                       "the cursor is older than this device's change history: bootstrap again "
                                       "with GET /photos"));
            return;
        }
    }
    /* First the keys of the changes after the cursor, from both tables
     * (index-only scans), merged in change order; then the JSON of only
     * those that make the page. */
    struct feed_row *rows = calloc(2 * ((size_t)limit + 1), sizeof *rows);
    if (!rows) return api_error(r, 500, "out of memory");
    size_t n = 0;
    bool failed = false;
    static const char *const sql[2] = {
        "SELECT id, cursor_updated_at FROM photos WHERE put_hlc IS NOT NULL "
        "AND cursor_updated_at >= ?1 AND (cursor_updated_at > ?1 OR ?2 OR (?4 AND id > ?3)) "
        "ORDER BY cursor_updated_at, id LIMIT ?5",
        "SELECT id, cursor_updated_at FROM albums WHERE create_hlc IS NOT NULL "
        "AND cursor_updated_at >= ?1 AND (cursor_updated_at > ?1 OR ?2 OR (?4 AND id > ?3)) "
        "ORDER BY cursor_updated_at, id LIMIT ?5",
    };
    for (int kind = SBX_FEED_PHOTO; kind <= SBX_FEED_ALBUM && !failed; kind++) {
        sqlite3_stmt *st = sbx_store_stmt(r->d->store, sql[kind]);
        if (!st) {
            failed = true;
            break;
        }
        /* At the cursor's own sequence, rows of a later kind all come
         * after it, rows of its kind only past its id. */
        sqlite3_bind_int64(st, 1, (int64_t)pos.seq);
        sqlite3_bind_int(st, 2, kind > pos.kind);
        sqlite3_bind_blob(st, 3, pos.id, 16, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, kind == pos.kind);
        sqlite3_bind_int64(st, 5, (int64_t)limit + 1);
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (sqlite3_column_bytes(st, 0) != 16) continue;
            struct feed_row *fr = &rows[n++];
            fr->seq = (uint64_t)sqlite3_column_int64(st, 1);
            fr->kind = (uint8_t)kind;
            memcpy(fr->id, sqlite3_column_blob(st, 0), 16);
        }
        sqlite3_reset(st);
    }
    qsort(rows, n, sizeof *rows, feed_cmp);
    size_t out = n < limit ? n : limit;
    json_t *items = json_array();
    for (size_t i = 0; i < out && !failed; i++) {
        struct feed_row *fr = &rows[i];
        json_t *item = NULL;
        if (fr->kind == SBX_FEED_PHOTO) {
            json_t *ph = photo_by_id(r->d, fr->id);
            if (!ph) {
                failed = true;
                break;
            }
            json_t *upd = json_incref(json_object_get(ph, "updatedAt"));
            if (json_is_true(json_object_get(ph, "isDeleted"))) {
                char s[SBX_UUID_STRLEN + 1];
                sbx_uuid_format(s, fr->id);
                item = json_pack("{s:s, s:{s:s, s:s, s:O}, s:o}", "type", "tombstone", "data", "kind", "photo", "id", s,
                                 "deletedAt", json_object_get(ph, "deletedAt"), "updatedAt", upd);
                json_decref(ph);
            } else {
                item = json_pack("{s:s, s:o, s:o}", "type", "photo", "data", ph, "updatedAt", upd);
            }
        } else {
            bool del = false;
            int64_t updated = 0;
            json_t *a = api_album_json(r->d, fr->id, &del, &updated);
            if (!a) {
                failed = true;
                break;
            }
            if (del) {
                char s[SBX_UUID_STRLEN + 1];
                sbx_uuid_format(s, fr->id);
                item = json_pack("{s:s, s:{s:s, s:s, s:O}, s:o}", "type", "tombstone", "data", "kind", "album", "id", s,
                                 "deletedAt", json_object_get(a, "deletedAt"), "updatedAt", sbx_json_time(updated));
                json_decref(a);
            } else {
                item = json_pack("{s:s, s:o, s:o}", "type", "album", "data", a, "updatedAt", sbx_json_time(updated));
            }
        }
        if (!item) failed = true;
        else json_array_append_new(items, item);
    }
    bool more = n > limit;
    char next[SBX_API_CURSOR_STRLEN + 1];
    if (more) {
        struct sbx_feed_pos p = {.seq = rows[out - 1].seq, .kind = rows[out - 1].kind};
        memcpy(p.id, rows[out - 1].id, 16);
        sbx_api_feed_cursor(next, r->api->cursor_key, &p);
    } else {
        /* Everything after the cursor was sent: the next change will have
         * a larger sequence than any now, so the client may skip ahead. */
        api_feed_now(r->api, next);
    }
    free(rows);
    if (failed) {
        json_decref(items);
        return api_error(r, 500, "database error");
    }
    api_json(r, 200, json_pack("{s:o, s:s, s:b}", "items", items, "nextCursor", next, "hasMore", more));
}
