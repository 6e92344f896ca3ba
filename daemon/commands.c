/* Control commands: one handler per command name, each running inside the
 * daemon's loop thread and answering with a JSON result. */
#include "daemon.h"

#include "shoebox/blob.h"
#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>

struct cmd_ctx {
    struct sbx_daemon *d;
    json_t *args;
    char err[512];
    /* With err, the SBX_E* code of the failure: the HTTP API answers with
     * the status it maps to (sbx_api_status_for_error). */
    int code;
};

typedef json_t *(*cmd_fn)(struct cmd_ctx *c);

static json_t *fail(struct cmd_ctx *c, int code, const char *fmt, const char *detail)
{
    c->code = code;
    snprintf(c->err, sizeof c->err, fmt, detail ? detail : "");
    return NULL;
}

static void hex_of(char *out, const uint8_t *b, size_t n) { sbx_hex_encode(out, b, n); }

json_t *sbx_json_time(int64_t ms)
{
    char buf[32];
    sbx_rfc3339(buf, ms);
    return json_string(buf);
}

static json_t *cmd_status(struct cmd_ctx *c)
{
    struct sbx_daemon *d = c->d;
    sbx_store *s = d->store;
    /* Locked, nothing of the library is open: say only that. */
    if (d->locked)
        return json_pack("{s:b, s:b, s:s, s:o}", "encrypted", 1, "locked", 1, "version", SBX_VERSION, "started_at",
                         sbx_json_time(d->started_at_ms));
    char devid[SBX_DEVID_STRLEN + 1], lib[SBX_UUID_STRLEN + 1], name[256] = "", libname[256] = "",
         role[16] = "cache";
    sbx_devid_format(devid, d->id.pk);
    sbx_uuid_format(lib, sbx_engine_library(d->engine));
    sbx_store_meta_get_text(s, "device_name", name, sizeof name);
    sbx_store_meta_get_text(s, "library_name", libname, sizeof libname);
    sbx_store_meta_get_text(s, "role", role, sizeof role);
    uint8_t digest[32];
    char digest_hex[65];
    int rc = sbx_engine_digest(d->engine, digest);
    if (rc != 0) return fail(c, rc, "cannot compute the state digest: %s", sbx_strerror(rc));
    hex_of(digest_hex, digest, 32);

    json_t *forks = json_array();
    sqlite3_stmt *st = sbx_store_stmt(
        s, "SELECT a.key, f.seq FROM forks f JOIN authors a ON a.ix = f.author_ix ORDER BY f.detected_at");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        char fid[SBX_DEVID_STRLEN + 1];
        if (sqlite3_column_bytes(st, 0) != 32) continue;
        sbx_devid_format(fid, sqlite3_column_blob(st, 0));
        json_array_append_new(forks, json_pack("{s:s, s:I}", "device_id", fid, "seq",
                                               (json_int_t)sqlite3_column_int64(st, 1)));
    }
    if (st) sqlite3_reset(st);
    json_t *refused = json_array();
    st = sbx_store_stmt(s, "SELECT a.key, r.seq, r.reason, r.refused_at FROM refused_entries r "
                           "LEFT JOIN authors a ON a.ix = r.author_ix ORDER BY r.refused_at DESC LIMIT 20");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        char fid[SBX_DEVID_STRLEN + 1] = "";
        if (sqlite3_column_bytes(st, 0) == 32) sbx_devid_format(fid, sqlite3_column_blob(st, 0));
        json_array_append_new(refused,
                              json_pack("{s:s, s:I, s:s, s:o}", "device_id", fid, "seq",
                                        (json_int_t)sqlite3_column_int64(st, 1), "reason",
                                        (const char *)sqlite3_column_text(st, 2), "refused_at",
                                        sbx_json_time(sqlite3_column_int64(st, 3))));
    }
    if (st) sqlite3_reset(st);

    json_t *status = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:o, s:o, s:b, s:i, s:s, s:o}",
        "device_id", devid, "device_name", name, "role", role, "library_id", lib, "library_name",
        libname, "photos",
        (json_int_t)sbx_store_query_int(
            s, "SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL AND is_deleted = 0"),
        "albums",
        (json_int_t)sbx_store_query_int(
            s, "SELECT count(*) FROM albums WHERE create_hlc IS NOT NULL AND is_deleted = 0"),
        "tags", (json_int_t)sbx_store_query_int(s, "SELECT count(*) FROM tags WHERE label IS NOT NULL"),
        "devices", (json_int_t)sbx_store_query_int(s, "SELECT count(*) FROM devices WHERE removed = 0"),
        "entries", (json_int_t)sbx_store_query_int(s, "SELECT count(*) FROM entries"),
        "state_digest", digest_hex, "forks", forks, "refused", refused, "encrypted", (int)sbx_store_encrypted(s),
        "schema_version", sbx_store_schema_version(s), "version", SBX_VERSION, "started_at",
        sbx_json_time(d->started_at_ms));
    if (status) {
        /* One scan of the photos for all three counts: a large library
         * would otherwise be walked once per count. Every photo put counts,
         * deleted ones too (their originals are kept until purged). */
        int64_t photos = 0, held = 0, backed_up = 0;
        st = sbx_store_stmt(s, "SELECT count(*), ifnull(sum(held), 0), ifnull(sum(backed_up), 0) FROM (SELECT "
                               "EXISTS (SELECT 1 FROM blobs b WHERE b.hash = p.hash AND b.complete = 1) AS held, "
                               "EXISTS (SELECT 1 FROM blob_holders h JOIN authors a ON a.ix = h.holder_ix "
                               "JOIN devices v ON v.key = a.key WHERE h.hash = p.hash AND h.held = 1 AND "
                               "v.role = 1 AND v.removed = 0) AS backed_up "
                               "FROM photos p WHERE p.put_hlc IS NOT NULL)");
        if (st && sqlite3_step(st) == SQLITE_ROW) {
            photos = sqlite3_column_int64(st, 0);
            held = sqlite3_column_int64(st, 1);
            backed_up = sqlite3_column_int64(st, 2);
        }
        if (st) sqlite3_reset(st);
        json_object_set_new(status, "blobs",
                            json_pack("{s:I, s:I, s:I}", "held", (json_int_t)held, "missing",
                                      (json_int_t)(photos - held), "backed_up", (json_int_t)backed_up));
        json_object_set_new(status, "peers", sbx_net_peers_json(d));
        json_object_set_new(status, "listen", d->listen_port ? json_string(d->listen) : json_null());
        json_object_set_new(status, "import_jobs", sbx_import_jobs_json(d));
        json_object_set_new(status, "renders", sbx_render_status_json(d));
        json_object_set_new(status, "locked", json_false());
    }
    return status;
}

/* ---- ids ---- */

static void uuid_json(json_t *o, const char *key, const void *blob, int len)
{
    if (len != 16) {
        json_object_set_new(o, key, json_null());
        return;
    }
    char s[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(s, blob);
    json_object_set_new(o, key, json_string(s));
}

static void hex_json(json_t *o, const char *key, const void *blob, int len)
{
    if (len <= 0) {
        json_object_set_new(o, key, json_null());
        return;
    }
    char s[2 * 64 + 1];
    sbx_hex_encode(s, blob, (size_t)len > 64 ? 64 : (size_t)len);
    json_object_set_new(o, key, json_string(s));
}

/* Resolves a full id or a unique prefix (dashes optional) of a row id. */
static int resolve_id(struct cmd_ctx *c, const char *what, const char *table, const char *prefix, uint8_t out[16])
{
    char hex[33];
    size_t n = 0;
    for (const char *p = prefix ? prefix : ""; *p; p++) {
        if (*p == '-') continue;
        char ch = *p >= 'a' && *p <= 'f' ? (char)(*p - 32) : *p;
        if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F')) || n == 32) {
            snprintf(c->err, sizeof c->err, "'%s' is not a %s id", prefix, what);
            return c->code = SBX_EINVAL;
        }
        hex[n++] = ch;
    }
    hex[n] = '\0';
    if (n == 0) {
        snprintf(c->err, sizeof c->err, "a %s id is needed", what);
        return c->code = SBX_EINVAL;
    }
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE hex(id) LIKE ?1 || '%%' LIMIT 2", table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(sbx_store_db(c->d->store), sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(c->err, sizeof c->err, "database error");
        return c->code = SBX_EDB;
    }
    sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
    int found = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (found++ == 0) memcpy(out, sqlite3_column_blob(st, 0), 16);
    }
    sqlite3_finalize(st);
    if (found == 1) return 0;
    snprintf(c->err, sizeof c->err, found ? "%s id '%s' is ambiguous: give more characters" : "no %s with id '%s'",
             what, prefix);
    return c->code = found ? SBX_EAMBIGUOUS : SBX_ENOENT;
}

static const char *arg_str(struct cmd_ctx *c, const char *key)
{
    return c->args ? json_string_value(json_object_get(c->args, key)) : NULL;
}

static json_t *write_ops(struct cmd_ctx *c, const struct sbx_op *ops, size_t n, json_t *result)
{
    int rc = sbx_engine_write(c->d->engine, ops, n, sbx_now_ms());
    if (rc != 0) {
        json_decref(result);
        return fail(c, rc, "cannot write to the library: %s", sbx_strerror(rc));
    }
    return result ? result : json_object();
}

/* ---- photos ---- */

static json_t *photo_json(sqlite3_stmt *st)
{
    json_t *o = json_object();
    uuid_json(o, "id", sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0));
    hex_json(o, "hash", sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1));
    json_object_set_new(o, "file_name", json_string((const char *)sqlite3_column_text(st, 2)));
    json_object_set_new(o, "size_bytes", json_integer(sqlite3_column_int64(st, 3)));
    json_object_set_new(o, "captured_at", sqlite3_column_type(st, 4) == SQLITE_NULL ? json_null()
                                                                                     : sbx_json_time(sqlite3_column_int64(st, 4)));
    json_object_set_new(o, "uploaded_at", sbx_json_time(sqlite3_column_int64(st, 5)));
    json_object_set_new(o, "width", json_integer(sqlite3_column_int64(st, 6)));
    json_object_set_new(o, "height", json_integer(sqlite3_column_int64(st, 7)));
    json_object_set_new(o, "mime_type", json_string((const char *)sqlite3_column_text(st, 8)));
    json_object_set_new(o, "location_lat", sqlite3_column_type(st, 9) == SQLITE_NULL ? json_null()
                                                                                      : json_real(sqlite3_column_double(st, 9)));
    json_object_set_new(o, "location_lon", sqlite3_column_type(st, 10) == SQLITE_NULL ? json_null()
                                                                                       : json_real(sqlite3_column_double(st, 10)));
    json_object_set_new(o, "camera_make", json_string((const char *)sqlite3_column_text(st, 11)));
    json_object_set_new(o, "camera_model", json_string((const char *)sqlite3_column_text(st, 12)));
    json_object_set_new(o, "orientation", json_integer(sqlite3_column_int64(st, 13)));
    json_object_set_new(o, "is_deleted", json_boolean(sqlite3_column_int(st, 14)));
    json_object_set_new(o, "deleted_at", sqlite3_column_type(st, 15) == SQLITE_NULL ? json_null()
                                                                                     : sbx_json_time(sqlite3_column_int64(st, 15)));
    json_object_set_new(o, "updated_at", sbx_json_time(sqlite3_column_int64(st, 16)));
    json_object_set_new(o, "favorite", json_boolean(sqlite3_column_int(st, 17)));
    json_object_set_new(o, "archived", json_boolean(sqlite3_column_int(st, 18)));
    if (sqlite3_column_bytes(st, 19) == 32) {
        char devid[SBX_DEVID_STRLEN + 1];
        sbx_devid_format(devid, sqlite3_column_blob(st, 19));
        json_object_set_new(o, "device_id", json_string(devid));
    }
    const char *tags = (const char *)sqlite3_column_text(st, 20);
    json_t *arr = json_array();
    while (tags && *tags) {
        const char *sep = strchr(tags, '\x1f');
        size_t len = sep ? (size_t)(sep - tags) : strlen(tags);
        json_array_append_new(arr, json_stringn(tags, len));
        tags += len + (sep ? 1 : 0);
    }
    json_object_set_new(o, "tags", arr);
    return o;
}

#define PHOTO_COLUMNS                                                                                         \
    "p.id, p.hash, p.file_name, p.size_bytes, p.captured_at, p.uploaded_at, p.width, p.height, p.mime_type, " \
    "p.location_lat, p.location_lon, p.camera_make, p.camera_model, p.orientation, p.is_deleted, "           \
    "p.deleted_at, p.updated_at, p.favorite, p.archived, p.device_id, "                                      \
    "(SELECT group_concat(label, char(31)) FROM (SELECT t.label FROM photo_tags pt JOIN tags t "             \
    "ON t.id = pt.tag_id WHERE pt.photo_id = p.id AND pt.present = 1 ORDER BY t.label))"

/* For the HTTP API, which lists photos with the same columns. */
const char sbx_photo_columns[] = PHOTO_COLUMNS;
json_t *sbx_photo_json(sqlite3_stmt *st) { return photo_json(st); }

static json_t *cmd_photos(struct cmd_ctx *c)
{
    bool deleted = c->args && json_is_true(json_object_get(c->args, "deleted"));
    sqlite3_stmt *st = NULL;
    const char *sql = deleted ? "SELECT " PHOTO_COLUMNS " FROM photos p WHERE p.put_hlc IS NOT NULL AND p.is_deleted = 1 "
                                "ORDER BY p.captured_at DESC, p.id"
                              : "SELECT " PHOTO_COLUMNS " FROM photos p WHERE p.put_hlc IS NOT NULL AND p.is_deleted = 0 "
                                "ORDER BY p.captured_at DESC, p.id";
    if (sqlite3_prepare_v2(sbx_store_db(c->d->store), sql, -1, &st, NULL) != SQLITE_OK)
        return fail(c, SBX_EDB, "cannot list photos: %s", sqlite3_errmsg(sbx_store_db(c->d->store)));
    json_t *arr = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) json_array_append_new(arr, photo_json(st));
    sqlite3_finalize(st);
    return arr;
}

static json_t *photo_deleted(struct cmd_ctx *c, enum sbx_op_type type)
{
    struct sbx_op op = {.type = type};
    if (resolve_id(c, "photo", "photos", arg_str(c, "id"), op.id) != 0) return NULL;
    char id[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(id, op.id);
    return write_ops(c, &op, 1, json_pack("{s:s}", "id", id));
}

static json_t *cmd_photo_delete(struct cmd_ctx *c) { return photo_deleted(c, SBX_OP_PHOTO_DELETE); }
static json_t *cmd_photo_restore(struct cmd_ctx *c) { return photo_deleted(c, SBX_OP_PHOTO_RESTORE); }

/* ---- albums ---- */

static int name_arg(struct cmd_ctx *c, const char *key, struct sbx_str *out)
{
    const char *name = arg_str(c, key);
    /* Album names and tag labels: the log takes up to SBX_MAX_LABEL. */
    if (!name || !*name || strlen(name) > SBX_MAX_LABEL) {
        snprintf(c->err, sizeof c->err, "a name of 1 to %u bytes is needed", SBX_MAX_LABEL);
        return c->code = SBX_EINVAL;
    }
    *out = (struct sbx_str){name, (uint32_t)strlen(name)};
    return 0;
}

static json_t *cmd_album_create(struct cmd_ctx *c)
{
    struct sbx_op op = {.type = SBX_OP_ALBUM_CREATE};
    if (name_arg(c, "name", &op.name) != 0) return NULL;
    sbx_uuid_random(op.id);
    char id[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(id, op.id);
    return write_ops(c, &op, 1, json_pack("{s:s}", "id", id));
}

static json_t *cmd_album_rename(struct cmd_ctx *c)
{
    struct sbx_op op = {.type = SBX_OP_ALBUM_RENAME};
    if (resolve_id(c, "album", "albums", arg_str(c, "album"), op.id) != 0) return NULL;
    if (name_arg(c, "name", &op.name) != 0) return NULL;
    return write_ops(c, &op, 1, NULL);
}

static json_t *cmd_album_delete(struct cmd_ctx *c)
{
    struct sbx_op op = {.type = SBX_OP_ALBUM_DELETE};
    if (resolve_id(c, "album", "albums", arg_str(c, "album"), op.id) != 0) return NULL;
    return write_ops(c, &op, 1, NULL);
}

static json_t *album_items(struct cmd_ctx *c, enum sbx_op_type type)
{
    uint8_t album[16];
    if (resolve_id(c, "album", "albums", arg_str(c, "album"), album) != 0) return NULL;
    json_t *photos = c->args ? json_object_get(c->args, "photos") : NULL;
    size_t n = json_array_size(photos);
    if (n == 0) return fail(c, SBX_EINVAL, "give at least one photo id%s", "");
    if (n > 100000) return fail(c, SBX_ETOOBIG, "too many photos in one request%s", "");
    struct sbx_op *ops = calloc(n, sizeof *ops);
    if (!ops) return fail(c, SBX_ENOMEM, "out of memory%s", "");
    for (size_t i = 0; i < n; i++) {
        ops[i].type = type;
        memcpy(ops[i].id, album, 16);
        if (resolve_id(c, "photo", "photos", json_string_value(json_array_get(photos, i)), ops[i].ref) != 0) {
            free(ops);
            return NULL;
        }
    }
    json_t *r = write_ops(c, ops, n, NULL);
    free(ops);
    return r;
}

static json_t *cmd_album_add(struct cmd_ctx *c) { return album_items(c, SBX_OP_ALBUM_ADD); }
static json_t *cmd_album_remove(struct cmd_ctx *c) { return album_items(c, SBX_OP_ALBUM_REMOVE); }

static json_t *cmd_albums(struct cmd_ctx *c)
{
    sqlite3 *db = sbx_store_db(c->d->store);
    sqlite3_stmt *st = NULL, *items = NULL;
    if (sqlite3_prepare_v2(db, "SELECT id, name, cover_photo_id, created_at, updated_at FROM albums "
                               "WHERE create_hlc IS NOT NULL AND is_deleted = 0 ORDER BY name, id", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT i.photo_id FROM album_items i JOIN photos p ON p.id = i.photo_id "
                               "WHERE i.album_id = ?1 AND i.present = 1 AND p.put_hlc IS NOT NULL AND p.is_deleted = 0 "
                               "ORDER BY i.position, i.photo_id", -1, &items, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return fail(c, SBX_EDB, "cannot list albums: %s", sqlite3_errmsg(db));
    }
    json_t *arr = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *o = json_object();
        uuid_json(o, "id", sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0));
        json_object_set_new(o, "name", json_string((const char *)sqlite3_column_text(st, 1)));
        uuid_json(o, "cover_photo_id", sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2));
        json_object_set_new(o, "created_at", sbx_json_time(sqlite3_column_int64(st, 3)));
        json_object_set_new(o, "updated_at", sbx_json_time(sqlite3_column_int64(st, 4)));
        json_t *ids = json_array();
        sqlite3_bind_blob(items, 1, sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0), SQLITE_TRANSIENT);
        while (sqlite3_step(items) == SQLITE_ROW) {
            char s[SBX_UUID_STRLEN + 1];
            sbx_uuid_format(s, sqlite3_column_blob(items, 0));
            json_array_append_new(ids, json_string(s));
        }
        sqlite3_reset(items);
        json_object_set_new(o, "photo_ids", ids);
        json_array_append_new(arr, o);
    }
    sqlite3_finalize(st);
    sqlite3_finalize(items);
    return arr;
}

/* ---- tags ---- */

static json_t *tag_op(struct cmd_ctx *c, bool add)
{
    struct sbx_op ops[2];
    memset(ops, 0, sizeof ops);
    uint8_t photo[16];
    if (resolve_id(c, "photo", "photos", arg_str(c, "photo"), photo) != 0) return NULL;
    struct sbx_str label;
    if (name_arg(c, "label", &label) != 0) return NULL;
    uint8_t tag[16];
    sbx_tag_id_for_label(sbx_engine_library(c->d->engine), label.ptr, label.len, tag);
    size_t n = 0;
    if (add) {
        ops[n].type = SBX_OP_TAG_CREATE;
        memcpy(ops[n].id, tag, 16);
        ops[n].name = label;
        n++;
    }
    ops[n].type = add ? SBX_OP_PHOTO_TAG_ADD : SBX_OP_PHOTO_TAG_REMOVE;
    memcpy(ops[n].id, photo, 16);
    memcpy(ops[n].ref, tag, 16);
    n++;
    return write_ops(c, ops, n, NULL);
}

static json_t *cmd_tag(struct cmd_ctx *c) { return tag_op(c, true); }
static json_t *cmd_untag(struct cmd_ctx *c) { return tag_op(c, false); }

/* ---- devices and pairing ---- */

static json_t *cmd_pair(struct cmd_ctx *c)
{
    json_int_t ttl = c->args && json_is_integer(json_object_get(c->args, "ttl"))
                         ? json_integer_value(json_object_get(c->args, "ttl"))
                         : 600;
    if (ttl < 10 || ttl > 7 * 86400) return fail(c, SBX_EINVAL, "--ttl is 10 seconds to 7 days%s", "");
    json_t *inv = sbx_net_invite(c->d, ttl, c->err, sizeof c->err);
    /* It fails only for what this daemon is doing now: it does not listen
     * for peers, or holds too many open invitations. */
    if (!inv) c->code = SBX_ESTATE;
    return inv;
}

static json_t *cmd_devices(struct cmd_ctx *c)
{
    json_t *arr = json_array();
    json_t *peers = sbx_net_peers_json(c->d);
    sqlite3_stmt *st = NULL;
    sqlite3 *db = sbx_store_db(c->d->store);
    if (sqlite3_prepare_v2(db, "SELECT key, name, role, removed, created_at, last_seen_at FROM devices "
                               "WHERE created_at IS NOT NULL ORDER BY created_at, key", -1, &st, NULL) != SQLITE_OK) {
        json_decref(peers);
        json_decref(arr);
        return fail(c, SBX_EDB, "cannot list devices: %s", sqlite3_errmsg(db));
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        char devid[SBX_DEVID_STRLEN + 1];
        sbx_devid_format(devid, sqlite3_column_blob(st, 0));
        bool self = memcmp(sqlite3_column_blob(st, 0), c->d->id.pk, 32) == 0;
        bool connected = false;
        size_t i;
        json_t *p;
        json_array_foreach(peers, i, p)
            if (strcmp(json_string_value(json_object_get(p, "device_id")), devid) == 0)
                connected = json_is_true(json_object_get(p, "connected"));
        json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:o}", "device_id", devid, "name",
                              (const char *)sqlite3_column_text(st, 1), "role",
                              sqlite3_column_int(st, 2) ? "full" : "cache", "removed", sqlite3_column_int(st, 3),
                              "self", self, "connected", connected, "created_at",
                              sbx_json_time(sqlite3_column_int64(st, 4)));
        json_object_set_new(o, "last_seen_at", sqlite3_column_type(st, 5) == SQLITE_NULL
                                                   ? json_null()
                                                   : sbx_json_time(sqlite3_column_int64(st, 5)));
        json_array_append_new(arr, o);
    }
    sqlite3_finalize(st);
    json_decref(peers);
    return arr;
}

/* A device id in full (check characters verified) or a unique prefix of
 * its printed form. */
static int resolve_device(struct cmd_ctx *c, const char *text, uint8_t key[32])
{
    if (!text || !*text) return fail(c, SBX_EINVAL, "a device id is needed%s", ""), SBX_EINVAL;
    int rc = sbx_devid_parse(key, text);
    if (rc == 0) return 0;
    if (rc == SBX_ECORRUPT) {
        snprintf(c->err, sizeof c->err, "device id %s has a typo (a check character does not match)", text);
        c->code = SBX_EINVAL; /* the request's, not the store's */
        return rc;
    }
    char want[SBX_DEVID_STRLEN + 1];
    size_t n = 0;
    for (const char *p = text; *p && n < SBX_DEVID_STRLEN; p++) want[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    want[n] = '\0';
    sqlite3_stmt *st = sbx_store_stmt(c->d->store, "SELECT key FROM devices WHERE created_at IS NOT NULL");
    int found = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        char devid[SBX_DEVID_STRLEN + 1];
        sbx_devid_format(devid, sqlite3_column_blob(st, 0));
        if (strncmp(devid, want, n) == 0 && found++ == 0) memcpy(key, sqlite3_column_blob(st, 0), 32);
    }
    if (st) sqlite3_reset(st);
    if (found == 1) return 0;
    snprintf(c->err, sizeof c->err, found ? "device id '%s' is ambiguous" : "no device with id '%s'", text);
    return c->code = found ? SBX_EAMBIGUOUS : SBX_ENOENT;
}

static json_t *cmd_device_remove(struct cmd_ctx *c)
{
    struct sbx_op op = {.type = SBX_OP_DEVICE_REMOVE};
    if (resolve_device(c, arg_str(c, "id"), op.key) != 0) return NULL;
    if (!sbx_engine_is_member(c->d->engine, op.key)) {
        /* A full id parses without a look at the table: one the library
         * never had is not found; a removed one is a conflict. */
        sqlite3_stmt *st = sbx_store_stmt(c->d->store, "SELECT 1 FROM devices WHERE key = ?1 AND created_at IS NOT NULL");
        if (!st) return fail(c, SBX_EDB, "database error%s", "");
        sqlite3_bind_blob(st, 1, op.key, 32, SQLITE_STATIC);
        bool known = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        if (!known) return fail(c, SBX_ENOENT, "no device with id '%s'", arg_str(c, "id"));
        return fail(c, SBX_ESTATE, "that device is not a member (it was removed)%s", "");
    }
    /* Its entries up to what this device holds stay valid; later ones are
     * refused everywhere. */
    sqlite3_stmt *st = sbx_store_stmt(c->d->store, "SELECT h.seq FROM heads h JOIN authors a ON a.ix = h.author_ix "
                                                   "WHERE a.key = ?1");
    if (!st) return fail(c, SBX_EDB, "database error%s", "");
    sqlite3_bind_blob(st, 1, op.key, 32, SQLITE_STATIC);
    op.last_seq = sqlite3_step(st) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    char devid[SBX_DEVID_STRLEN + 1];
    sbx_devid_format(devid, op.key);
    return write_ops(c, &op, 1, json_pack("{s:s, s:I}", "device_id", devid, "last_seq", (json_int_t)op.last_seq));
}

/* ---- originals: get and free-space ---- */

static int photo_hash(struct cmd_ctx *c, const char *prefix, uint8_t hash[32], char *name, size_t cap)
{
    uint8_t id[16];
    int rc = resolve_id(c, "photo", "photos", prefix, id);
    if (rc != 0) return rc;
    sqlite3_stmt *st = sbx_store_stmt(c->d->store, "SELECT hash, file_name FROM photos WHERE id = ?1");
    if (!st) {
        snprintf(c->err, sizeof c->err, "database error");
        return c->code = SBX_EDB;
    }
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    rc = SBX_ENOENT;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
        memcpy(hash, sqlite3_column_blob(st, 0), 32);
        snprintf(name, cap, "%s", sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
        rc = 0;
    }
    sqlite3_reset(st);
    if (rc != 0) {
        snprintf(c->err, sizeof c->err, "that photo has no known original");
        c->code = rc;
    }
    return rc;
}

/* Copies an open blob to a file (written aside, synced, then renamed). On
 * the thread pool: it reads the whole original. */
static int export_copy(sbx_blob_file *f, const char *out)
{
    /* Test hook: holds the copy (tests/integration/get.sh). */
    sbx_test_gate("SHOEBOX_TEST_EXPORT_GATE");
    /* A temp name of its own (mkstemp): two copies to one path may run at
     * once on the pool, and neither may write into the other's file. */
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.shoebox-XXXXXX", out);
    uint8_t *buf = malloc(1 << 20);
    int fd = buf ? mkstemp(tmp) : -1;
    FILE *w = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!w) {
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(buf);
        return buf ? SBX_EIO : SBX_ENOMEM;
    }
    /* mkstemp makes it 0600; an exported photo is an ordinary file. (Not
     * from the umask: reading it means setting it, process-wide.) */
    (void)fchmod(fd, 0644);
    int rc = 0;
    uint64_t off = 0, size = sbx_blob_file_size(f);
    while (rc == 0 && off < size) {
        size_t got = 0;
        rc = sbx_blob_file_read(f, off, buf, 1 << 20, &got);
        if (rc == 0 && (got == 0 || fwrite(buf, 1, got, w) != got)) rc = SBX_EIO;
        off += got;
    }
    free(buf);
    if (fflush(w) != 0 || fsync(fileno(w)) != 0) rc = rc ? rc : SBX_EIO;
    fclose(w);
    if (rc == 0 && rename(tmp, out) != 0) rc = SBX_EIO;
    if (rc != 0) unlink(tmp);
    return rc;
}

/* shoebox get --out: the copy runs on the thread pool (a multi-gigabyte
 * video takes seconds, and the loop serves peers and the API meanwhile),
 * and the control request is answered when it ends. */
struct export_job {
    uv_work_t req;
    sbx_blob_file *f; /* opened on the loop (the store's thread), read on the pool */
    char out[PATH_MAX];
    json_t *result; /* the answer once written */
    sbx_control_pending *reply;
    int rc;
};

static void export_work(uv_work_t *req)
{
    struct export_job *j = req->data;
    j->rc = export_copy(j->f, j->out);
}

static void export_done(uv_work_t *req, int status)
{
    struct export_job *j = req->data;
    int rc = status != 0 ? SBX_EIO : j->rc;
    json_t *resp;
    if (rc == 0) {
        resp = json_pack("{s:b, s:o}", "ok", 1, "result", j->result);
    } else {
        json_decref(j->result);
        char msg[128];
        snprintf(msg, sizeof msg, "cannot write the original: %s", sbx_strerror(rc));
        resp = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
    }
    sbx_control_answer(j->reply, resp);
    sbx_blob_file_close(j->f);
    free(j);
}

/* Starts the copy of a held original to `out`, answering with `result`
 * (taken) when it is written. */
static int export_start(struct cmd_ctx *c, const uint8_t hash[32], const char *out, json_t *result)
{
    struct export_job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(result);
        return SBX_ENOMEM;
    }
    int rc = sbx_blob_open(c->d->blobs, hash, &j->f);
    if (rc != 0) {
        json_decref(result);
        free(j);
        return rc;
    }
    snprintf(j->out, sizeof j->out, "%s", out);
    j->result = result;
    j->req.data = j;
    j->reply = sbx_control_defer(c->d);
    if ((rc = uv_queue_work(c->d->loop, &j->req, export_work, export_done)) != 0) {
        /* Not queued: the callback never runs, so it runs here. */
        export_done(&j->req, rc);
    }
    return 0;
}

static json_t *cmd_get(struct cmd_ctx *c)
{
    uint8_t hash[32];
    char name[256];
    if (photo_hash(c, arg_str(c, "id"), hash, name, sizeof name) != 0) return NULL;
    const char *out = arg_str(c, "out");
    if (sbx_blob_has(c->d->blobs, hash) == 0) {
        struct sbx_blob_info info;
        sbx_blob_stat(c->d->blobs, hash, &info);
        json_t *result = json_pack("{s:b, s:I, s:I, s:s}", "held", 1, "done", (json_int_t)info.size, "size",
                                   (json_int_t)info.size, "file_name", name);
        if (!out) return result;
        json_decref(result);
        if (out[0] != '/') return fail(c, SBX_EINVAL, "--out must be an absolute path%s", "");
        /* Room for the temp file's suffix. */
        if (strlen(out) + sizeof ".shoebox-XXXXXX" > PATH_MAX) return fail(c, SBX_ETOOBIG, "the --out path is too long%s", "");
        /* Answered when the copy ends: only a control client can wait. */
        if (!c->d->control_current) return fail(c, SBX_EINVAL, "--out is for the control socket%s", "");
        result = json_pack("{s:b, s:I, s:I, s:s}", "held", 1, "done", (json_int_t)info.size, "size",
                           (json_int_t)info.size, "file_name", name);
        int rc = export_start(c, hash, out, result);
        if (rc != 0) return fail(c, rc, "cannot write the original: %s", sbx_strerror(rc));
        return json_object(); /* dropped: export_done answers */
    }
    int rc = sbx_transfer_want(c->d, hash);
    if (rc != 0) return fail(c, rc, "cannot fetch the original: %s", sbx_strerror(rc));
    uint64_t done = 0, size = 0;
    sbx_transfer_progress(c->d, hash, &done, &size);
    return json_pack("{s:b, s:I, s:I, s:s}", "held", 0, "done", (json_int_t)done, "size", (json_int_t)size,
                     "file_name", name);
}

/* Deletes local originals that enough full peers hold (never others), and
 * says so in the log. */
static json_t *cmd_free_space(struct cmd_ctx *c)
{
    json_int_t min_full = 1;
    if (c->args && json_is_integer(json_object_get(c->args, "min_full")))
        min_full = json_integer_value(json_object_get(c->args, "min_full"));
    if (min_full < 1) return fail(c, SBX_EINVAL, "at least one full peer must hold an original before it is freed%s", "");
    sqlite3 *db = sbx_store_db(c->d->store);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT b.hash, b.size_bytes FROM blobs b WHERE b.kind = 'original' AND b.complete = 1 "
                               "AND (SELECT count(*) FROM blob_holders h JOIN authors a ON a.ix = h.holder_ix "
                               "JOIN devices v ON v.key = a.key WHERE h.hash = b.hash AND h.held = 1 AND v.role = 1 "
                               "AND v.removed = 0 AND v.key != ?1) >= ?2", -1, &st, NULL) != SQLITE_OK)
        return fail(c, SBX_EDB, "database error: %s", sqlite3_errmsg(db));
    sqlite3_bind_blob(st, 1, c->d->id.pk, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, min_full);
    size_t n = 0, cap = 0;
    uint8_t (*hashes)[32] = NULL;
    json_int_t bytes = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            void *nh = realloc(hashes, cap * 32);
            if (!nh) break;
            hashes = nh;
        }
        memcpy(hashes[n++], sqlite3_column_blob(st, 0), 32);
        bytes += sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    /* Announce first: a device never claims to hold what it deleted. */
    struct sbx_op *ops = calloc(n + 1, sizeof *ops);
    for (size_t i = 0; ops && i < n; i++) {
        ops[i].type = SBX_OP_BLOB_DROPPED;
        memcpy(ops[i].hash, hashes[i], 32);
    }
    int rc = ops ? (n ? sbx_engine_write(c->d->engine, ops, n, sbx_now_ms()) : 0) : SBX_ENOMEM;
    free(ops);
    size_t freed = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (sbx_blob_delete(c->d->blobs, hashes[i]) == 0) freed++;
    free(hashes);
    if (rc != 0) return fail(c, rc, "cannot write to the library: %s", sbx_strerror(rc));
    return json_pack("{s:I, s:I}", "freed", (json_int_t)freed, "bytes", bytes);
}

/* ---- unlock ---- */

/* The passphrase comes hex-encoded: any bytes, where a JSON string must be
 * UTF-8. It is wiped once used. */
static json_t *cmd_unlock(struct cmd_ctx *c)
{
    const char *hex = arg_str(c, "passphrase_hex");
    size_t n = hex ? strlen(hex) : 0;
    if (n == 0 || n % 2 != 0 || n / 2 > SBX_MAX_PASSPHRASE) return fail(c, SBX_EINVAL, "a passphrase is needed%s", "");
    char pass[SBX_MAX_PASSPHRASE];
    if (sbx_hex_decode((uint8_t *)pass, n / 2, hex) != 0) return fail(c, SBX_EINVAL, "the passphrase is not hex%s", "");
    int rc = sbx_daemon_unlock(c->d, pass, n / 2, c->err, sizeof c->err);
    sodium_memzero(pass, sizeof pass);
    if (rc != 0) {
        c->code = rc;
        return NULL;
    }
    char devid[SBX_DEVID_STRLEN + 1];
    sbx_devid_format(devid, c->d->id.pk);
    return json_pack("{s:b, s:s}", "unlocked", 1, "device_id", devid);
}

/* ---- import ---- */

/* Answers when the import ends (it runs on a worker thread); progress
 * comes from import.progress meanwhile. */
static json_t *cmd_import(struct cmd_ctx *c)
{
    json_t *paths = c->args ? json_object_get(c->args, "paths") : NULL;
    if (!json_is_array(paths) || json_array_size(paths) == 0) return fail(c, SBX_EINVAL, "give at least one path%s", "");
    sbx_control_pending *reply = sbx_control_defer(c->d);
    if (sbx_import_start(c->d, paths, reply, c->err, sizeof c->err) != 0) {
        /* Nothing started: answer now after all. */
        json_t *resp = json_pack("{s:b, s:s}", "ok", 0, "error", c->err);
        sbx_control_answer(reply, resp);
    }
    return json_object();
}

static json_t *cmd_import_progress(struct cmd_ctx *c) { return sbx_import_progress_json(c->d); }

static const struct {
    const char *name;
    cmd_fn fn;
} commands[] = {
    {"unlock", cmd_unlock},
    {"import", cmd_import},
    {"get", cmd_get},
    {"free_space", cmd_free_space},
    {"import.progress", cmd_import_progress},
    {"pair", cmd_pair},
    {"devices", cmd_devices},
    {"device.remove", cmd_device_remove},
    {"status", cmd_status},
    {"photos", cmd_photos},
    {"photo.delete", cmd_photo_delete},
    {"photo.restore", cmd_photo_restore},
    {"albums", cmd_albums},
    {"album.create", cmd_album_create},
    {"album.rename", cmd_album_rename},
    {"album.delete", cmd_album_delete},
    {"album.add", cmd_album_add},
    {"album.remove", cmd_album_remove},
    {"tag", cmd_tag},
    {"untag", cmd_untag},
};

static json_t *error_json(int *code, int rc, const char *msg)
{
    /* A failure that did not say why is the daemon's own. */
    if (code) *code = rc ? rc : SBX_EIO;
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

json_t *sbx_control_dispatch(struct sbx_daemon *d, json_t *request, int *code)
{
    if (code) *code = 0;
    const char *name = json_string_value(json_object_get(request, "cmd"));
    if (!name) return error_json(code, SBX_EINVAL, "request has no \"cmd\"");
    json_t *args = json_object_get(request, "args");
    struct cmd_ctx c = {.d = d, .args = json_is_object(args) ? args : NULL};
    if (d->locked && strcmp(name, "status") != 0 && strcmp(name, "unlock") != 0)
        return error_json(code, SBX_ELOCKED, "the library is encrypted and locked: run 'shoebox unlock' first");
    for (size_t i = 0; i < SBX_ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i].name, name) != 0) continue;
        json_t *result = commands[i].fn(&c);
        if (!result) return error_json(code, c.code, c.err[0] ? c.err : "command failed");
        return json_pack("{s:b, s:o}", "ok", 1, "result", result);
    }
    bool handled = false;
    json_t *result = sbx_api_control(d, name, c.args, c.err, sizeof c.err, &c.code, &handled);
    if (handled)
        return result ? json_pack("{s:b, s:o}", "ok", 1, "result", result)
                      : error_json(code, c.code, c.err[0] ? c.err : "command failed");
    char msg[128];
    snprintf(msg, sizeof msg, "unknown command \"%.64s\"", name);
    return error_json(code, SBX_EUNSUPPORTED, msg);
}

int sbx_resolve_id(struct sbx_daemon *d, const char *what, const char *table, const char *prefix, uint8_t out[16],
                   char *err, size_t errsz)
{
    struct cmd_ctx c = {.d = d};
    int rc = resolve_id(&c, what, table, prefix, out);
    if (rc != 0) snprintf(err, errsz, "%s", c.err);
    return rc;
}
