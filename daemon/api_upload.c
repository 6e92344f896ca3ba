/* Upload sessions, hash first (the seed's UploadSession): an app declares
 * the SHA-256 and size of a file; when the library already holds those
 * bytes it sends none. Otherwise it sends chunks in any order, resumes
 * after a drop by asking which chunks arrived, and completes: the daemon
 * checks the whole file against the declared hash, stores it in the blob
 * store, renders the thumbnail and medium, and writes the photo.put.
 *
 * Sessions are local (table upload_sessions, never in the log). Their
 * bytes are staged in DATA_DIR/uploads/: ID.data (the file, each chunk at
 * its offset), ID.map (a bitmap of chunks on disk) and ID.json (what the
 * app asked for besides the bytes: albums, capture time). A chunk's bit is
 * set only after its bytes are synced, so a crash never marks a chunk
 * received that is not. */
#include "api_internal.h"

#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/media.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct session {
    uint8_t id[16];
    uint8_t hash[32];
    uint64_t size;
    uint32_t chunk_size, n_chunks;
    char file_name[SBX_MAX_STR + 1];
    char status[16];
    int64_t created_at, completed_at;
    bool has_completed;
    char error[512];
};

enum { STAGE_DATA, STAGE_MAP, STAGE_META };

static int stage_path(struct sbx_api *api, const uint8_t id[16], int which, char *out, size_t cap)
{
    static const char *const ext[] = {"data", "map", "json"};
    char hex[33];
    sbx_hex_encode(hex, id, 16);
    int n = snprintf(out, cap, "%s/uploads/%s.%s", api->d->data_dir, hex, ext[which]);
    return n > 0 && (size_t)n < cap ? 0 : SBX_ETOOBIG;
}

static void stage_remove(struct sbx_api *api, const uint8_t id[16])
{
    char path[4200];
    for (int i = STAGE_DATA; i <= STAGE_META; i++)
        if (stage_path(api, id, i, path, sizeof path) == 0) unlink(path);
}

static int load_session(struct sbx_api *api, const uint8_t id_in[16], struct session *s)
{
    uint8_t id[16];
    memcpy(id, id_in, 16); /* id_in may be s->id, which is about to be cleared */
    sqlite3_stmt *st = sbx_store_stmt(api->d->store, "SELECT hash, size_bytes, chunk_size, file_name, status, created_at, "
                                                     "completed_at, error FROM upload_sessions WHERE id = ?1");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW || sqlite3_column_bytes(st, 0) != 32) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE || rc == SQLITE_ROW ? SBX_ENOENT : SBX_EDB;
    }
    memset(s, 0, sizeof *s);
    memcpy(s->id, id, 16);
    memcpy(s->hash, sqlite3_column_blob(st, 0), 32);
    s->size = (uint64_t)sqlite3_column_int64(st, 1);
    s->chunk_size = (uint32_t)sqlite3_column_int64(st, 2);
    snprintf(s->file_name, sizeof s->file_name, "%s", sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "");
    snprintf(s->status, sizeof s->status, "%s", (const char *)sqlite3_column_text(st, 4));
    s->created_at = sqlite3_column_int64(st, 5);
    s->has_completed = sqlite3_column_type(st, 6) != SQLITE_NULL;
    s->completed_at = sqlite3_column_int64(st, 6);
    snprintf(s->error, sizeof s->error, "%s", sqlite3_column_text(st, 7) ? (const char *)sqlite3_column_text(st, 7) : "");
    sqlite3_reset(st);
    s->n_chunks = s->chunk_size ? (uint32_t)((s->size + s->chunk_size - 1) / s->chunk_size) : 0;
    return 0;
}

static int set_status(struct sbx_api *api, const uint8_t id[16], const char *status, const char *error)
{
    sqlite3_stmt *st = sbx_store_stmt(api->d->store, "UPDATE upload_sessions SET status = ?2, error = ?3, completed_at = "
                                                     "CASE WHEN ?2 = 'completed' THEN ?4 ELSE completed_at END WHERE id = ?1");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    if (error) sqlite3_bind_text(st, 3, error, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, sbx_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return sbx_store_err(rc);
}

/* The received-chunk bitmap; *out is malloc'd, n_chunks bits. */
static int read_map(struct sbx_api *api, const struct session *s, uint8_t **out)
{
    char path[4200];
    int rc = stage_path(api, s->id, STAGE_MAP, path, sizeof path);
    if (rc != 0) return rc;
    size_t want = (s->n_chunks + 7) / 8, len = 0;
    uint8_t *m = NULL;
    if ((rc = sbx_file_read(path, want + 1, &m, &len)) != 0) return rc;
    if (len != want) {
        free(m);
        return SBX_ECORRUPT;
    }
    *out = m;
    return 0;
}

static bool bit(const uint8_t *m, uint32_t i) { return (m[i / 8] >> (i % 8)) & 1; }

static uint32_t count_bits(const uint8_t *m, uint32_t n)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; i++) c += bit(m, i);
    return c;
}

static bool job_for(struct sbx_api *api, const uint8_t id[16]);

static json_t *session_json(struct sbx_api *api, const struct session *s, bool with_chunks)
{
    char id[SBX_UUID_STRLEN + 1], hex[65];
    sbx_uuid_format(id, s->id);
    sbx_hex_encode(hex, s->hash, 32);
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:o}", "id", id, "hash", hex, "sizeBytes",
                          (json_int_t)s->size, "chunkSize", (json_int_t)s->chunk_size, "fileName", s->file_name,
                          "status", s->status, "chunks", (json_int_t)s->n_chunks, "createdAt", sbx_json_time(s->created_at));
    json_object_set_new(o, "completedAt", s->has_completed ? sbx_json_time(s->completed_at) : json_null());
    json_object_set_new(o, "error", s->error[0] ? json_string(s->error) : json_null());
    /* A completion is under way (POST .../complete answers when it ends). */
    json_object_set_new(o, "completing", json_boolean(job_for(api, s->id)));
    if (strcmp(s->status, "completed") == 0) {
        uint8_t pid[16];
        char ps[SBX_UUID_STRLEN + 1];
        sbx_photo_id_for_hash(sbx_engine_library(api->d->engine), s->hash, pid);
        sbx_uuid_format(ps, pid);
        json_object_set_new(o, "photoId", json_string(ps));
    }
    if (with_chunks && (strcmp(s->status, "pending") == 0 || strcmp(s->status, "uploading") == 0)) {
        uint8_t *m = NULL;
        json_t *got = json_array();
        if (read_map(api, s, &m) == 0) {
            for (uint32_t i = 0; i < s->n_chunks; i++)
                if (bit(m, i)) json_array_append_new(got, json_integer(i));
            free(m);
        }
        json_object_set_new(o, "receivedChunks", got);
    }
    return o;
}

static bool parse_hash(const char *hex, uint8_t out[32])
{
    /* sbx_hex_decode takes either case and wants exactly 64 digits. */
    return hex && sbx_hex_decode(out, 32, hex) == 0;
}

static bool album_alive(struct sbx_daemon *d, const uint8_t id[16])
{
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT 1 FROM albums WHERE id = ?1 AND create_hlc IS NOT NULL AND is_deleted = 0");
    if (!st) return false;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return ok;
}

/* album.add ops for the album ids of a session's metadata. */
static size_t album_ops(json_t *albums, const uint8_t photo[16], struct sbx_op *ops, size_t cap)
{
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(albums, i, v) {
        if (n == cap) break;
        memset(&ops[n], 0, sizeof ops[n]);
        if (sbx_uuid_parse(ops[n].id, json_string_value(v)) != 0) continue;
        ops[n].type = SBX_OP_ALBUM_ADD;
        memcpy(ops[n].ref, photo, 16);
        n++;
    }
    return n;
}

/* ---- POST /uploads ---- */

void h_upload_create(struct api_req *r)
{
    struct sbx_api *api = r->api;
    struct sbx_daemon *d = r->d;
    json_t *body = api_body(r);
    if (!body) return;
    uint8_t hash[32];
    json_t *size_v = json_object_get(body, "sizeBytes"), *chunk_v = json_object_get(body, "chunkSize");
    const char *name = json_string_value(json_object_get(body, "fileName"));
    json_t *albums = json_object_get(body, "albumIds");
    const char *cap_s = json_string_value(json_object_get(body, "capturedAt"));
    int64_t captured = 0;
    const char *bad = NULL;
    if (!parse_hash(json_string_value(json_object_get(body, "hash")), hash)) bad = "hash must be the SHA-256 of the file, in hex";
    else if (!json_is_integer(size_v) || json_integer_value(size_v) < 1 ||
             (uint64_t)json_integer_value(size_v) > SBX_MAX_BLOB_BYTES)
        bad = "sizeBytes must be 1 byte to 64 GiB";
    else if (!json_is_integer(chunk_v) || json_integer_value(chunk_v) < 1 ||
             json_integer_value(chunk_v) > (json_int_t)SBX_MAX_UPLOAD_CHUNK)
        bad = "chunkSize must be 1 byte to 16 MiB";
    else if (name && (strlen(name) > SBX_MAX_STR || strchr(name, '/')))
        bad = "fileName must be a file name (no '/') of at most 1024 bytes";
    else if (albums && (!json_is_array(albums) || json_array_size(albums) > SBX_MAX_UPLOAD_ALBUMS))
        bad = "albumIds must be an array of at most 64 album ids";
    else if (cap_s && sbx_rfc3339_parse(cap_s, &captured) != 0)
        bad = "capturedAt must be an RFC 3339 time";
    if (!bad && ((uint64_t)json_integer_value(size_v) + (uint64_t)json_integer_value(chunk_v) - 1) /
                        (uint64_t)json_integer_value(chunk_v) > SBX_MAX_UPLOAD_CHUNKS)
        bad = "too many chunks: a session has at most 65536; use a larger chunkSize";
    size_t i;
    json_t *v;
    json_array_foreach(albums, i, v) {
        uint8_t aid[16];
        if (bad) break;
        if (!json_is_string(v) || sbx_uuid_parse(aid, json_string_value(v)) != 0) bad = "albumIds must be full album ids";
        else if (!album_alive(d, aid)) {
            json_decref(body);
            return api_error(r, 404, "no album with id %s", json_string_value(v));
        }
    }
    if (bad) {
        json_decref(body);
        return api_error(r, 400, "%s", bad);
    }
    struct session s = {0};
    sbx_uuid_random(s.id);
    memcpy(s.hash, hash, 32);
    s.size = (uint64_t)json_integer_value(size_v);
    s.chunk_size = (uint32_t)json_integer_value(chunk_v);
    s.n_chunks = (uint32_t)((s.size + s.chunk_size - 1) / s.chunk_size);
    snprintf(s.file_name, sizeof s.file_name, "%s", name ? name : "");
    s.created_at = sbx_now_ms();

    /* Hash first: when the library has these bytes, no byte moves. */
    uint8_t photo[16];
    sbx_photo_id_for_hash(sbx_engine_library(d->engine), hash, photo);
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT is_deleted FROM photos WHERE id = ?1 AND put_hlc IS NOT NULL");
    int exists = -1;
    if (st) {
        sqlite3_bind_blob(st, 1, photo, 16, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) exists = sqlite3_column_int(st, 0);
        sqlite3_reset(st);
    }
    bool already = exists >= 0;
    int rc = 0;
    if (already) {
        /* The app may still attach the photo to albums; uploading bytes a
         * deleted photo had is taken as wanting it back. */
        struct sbx_op ops[SBX_MAX_UPLOAD_ALBUMS + 1];
        size_t n = album_ops(albums, photo, ops, SBX_MAX_UPLOAD_ALBUMS);
        if (exists == 1) {
            memset(&ops[n], 0, sizeof ops[n]);
            ops[n].type = SBX_OP_PHOTO_RESTORE;
            memcpy(ops[n].id, photo, 16);
            n++;
        }
        if (n > 0) rc = sbx_engine_write(d->engine, ops, n, sbx_now_ms());
        if (rc != 0) {
            json_decref(body);
            return api_error(r, 500, "cannot write to the library: %s", sbx_strerror(rc));
        }
        snprintf(s.status, sizeof s.status, "completed");
        s.has_completed = true;
        s.completed_at = s.created_at;
    } else {
        int64_t open = sbx_store_query_int(d->store, "SELECT count(*) FROM upload_sessions WHERE status IN ('pending', 'uploading')");
        if (open < 0 || open >= (int64_t)SBX_MAX_OPEN_UPLOADS) {
            json_decref(body);
            return api_error(r, 429, "too many open upload sessions (at most %u): complete some first", SBX_MAX_OPEN_UPLOADS);
        }
        snprintf(s.status, sizeof s.status, "pending");
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/uploads", d->data_dir);
    if (!already) {
        /* Staging files first: a session row never points at nothing. */
        json_t *meta = json_pack("{s:O?, s:s?}", "albumIds", albums, "capturedAt", cap_s);
        char *text = json_dumps(meta, JSON_COMPACT);
        json_decref(meta);
        uint8_t *zeros = calloc((s.n_chunks + 7) / 8, 1);
        int fd = -1;
        rc = text && zeros ? sbx_mkdir_p(path, 0700) : SBX_ENOMEM;
        if (rc == 0 && (rc = stage_path(api, s.id, STAGE_META, path, sizeof path)) == 0)
            rc = sbx_file_write_atomic(path, (const uint8_t *)text, strlen(text), 0600);
        if (rc == 0 && (rc = stage_path(api, s.id, STAGE_MAP, path, sizeof path)) == 0)
            rc = sbx_file_write_atomic(path, zeros, (s.n_chunks + 7) / 8, 0600);
        if (rc == 0 && (rc = stage_path(api, s.id, STAGE_DATA, path, sizeof path)) == 0) {
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd < 0 || ftruncate(fd, (off_t)s.size) != 0) rc = sbx_err_from_errno(errno);
            if (fd >= 0) close(fd);
        }
        free(text);
        free(zeros);
        if (rc != 0) {
            stage_remove(api, s.id);
            json_decref(body);
            return api_error(r, rc == SBX_ENOSPC ? 507 : 500, "cannot stage the upload: %s", sbx_strerror(rc));
        }
    }
    json_decref(body);
    st = sbx_store_stmt(d->store, "INSERT INTO upload_sessions(id, device_id, hash, size_bytes, chunk_size, file_name, "
                                  "status, created_at, completed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    if (st) {
        sqlite3_bind_blob(st, 1, s.id, 16, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, d->id.pk, 32, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, s.hash, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (int64_t)s.size);
        sqlite3_bind_int64(st, 5, s.chunk_size);
        sqlite3_bind_text(st, 6, s.file_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, s.status, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, s.created_at);
        if (already) sqlite3_bind_int64(st, 9, s.completed_at);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : SBX_EDB;
        sqlite3_reset(st);
    }
    if (!st || rc != 0) {
        stage_remove(api, s.id);
        return api_error(r, 500, "cannot record the upload session");
    }
    json_t *o = session_json(api, &s, !already);
    json_object_set_new(o, "alreadyExists", json_boolean(already));
    if (already && exists == 1) json_object_set_new(o, "restored", json_true());
    api_json(r, 201, o);
}

/* ---- GET /uploads/{id} ---- */

static bool session_arg(struct api_req *r, struct session *s)
{
    uint8_t id[16];
    if (!api_param_id(r, 0, "upload session", id)) return false;
    int rc = load_session(r->api, id, s);
    if (rc == 0) return true;
    if (rc == SBX_ENOENT) api_error(r, 404, "no upload session with this id");
    else api_error(r, 500, "database error");
    return false;
}

void h_upload_get(struct api_req *r)
{
    struct session s;
    if (!session_arg(r, &s)) return;
    api_json(r, 200, session_json(r->api, &s, true));
}

/* ---- PUT /uploads/{id}/chunks/{n} ----
 *
 * Hashing a chunk of up to 16 MiB (its X-Chunk-Sha256) and syncing it to
 * disk take milliseconds to seconds: they run on libuv's thread pool, and
 * the request is answered when its write ends (or not at all when the
 * client went away meanwhile: the chunk is stored all the same). At most
 * SBX_MAX_UPLOAD_CHUNK_WRITES run at once; the others wait, in order, and
 * so does a chunk whose index is being written by another request, so two
 * writes of one chunk never overlap (the second finds the first's bit and
 * is a duplicate). Workers write only staging files: the session's row is
 * updated on the loop. Several workers may set bits in one byte of a map:
 * they do it under api->map_lock, reading the byte back first. */

/* Lives in a request's pool, for a job that answers the request when it
 * ends: when the request goes first (the client went away), its dispose
 * callback clears the job's pointers, and the job knows there is nobody
 * to answer. A job that ends first clears `req` here (req_ref_forget). */
struct req_ref {
    h2o_req_t **req;       /* the job's request pointer */
    struct req_ref **self; /* the job's pointer to this */
};

static void req_ref_dispose(void *p)
{
    struct req_ref *ref = p;
    if (!ref->req) return;
    *ref->req = NULL;
    *ref->self = NULL;
}

/* Ties a job's request to it (see struct req_ref). */
static void req_ref_make(h2o_req_t *req, h2o_req_t **job_req, struct req_ref **job_ref)
{
    struct req_ref *ref = h2o_mem_alloc_shared(&req->pool, sizeof *ref, req_ref_dispose);
    ref->req = job_req;
    ref->self = job_ref;
    *job_req = req;
    *job_ref = ref;
}

static void req_ref_forget(struct req_ref *ref)
{
    if (ref) ref->req = NULL;
}


struct chunk_job {
    uv_work_t work;
    struct sbx_api *api;
    struct chunk_job *next; /* on the waiting or the running list */
    h2o_req_t *req;         /* NULL once the client is gone */
    struct req_ref *ref;    /* in req's pool; NULL with req */
    uint8_t id[16];
    uint32_t idx, n_chunks;
    uint64_t off;
    size_t len;
    bool check; /* the request gave X-Chunk-Sha256: want */
    uint8_t want[32];
    /* The worker's own copy of the body: the request's lives in h2o's
     * buffers, freed with the request should the client go away while the
     * worker reads it. Made when the write starts, so waiting writes hold
     * no second copy. */
    uint8_t *bytes;
    char data_path[4200], map_path[4200];
    /* The worker's results. */
    int rc;
    bool bad_hash, dup;
};

static void chunk_free(struct chunk_job *j)
{
    req_ref_forget(j->ref);
    free(j->bytes);
    free(j);
}

static int write_all_at(int fd, const void *buf, size_t len, off_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return sbx_err_from_errno(w < 0 ? errno : EIO);
        p += w;
        len -= (size_t)w;
        off += w;
    }
    return 0;
}

/* Reads the map byte of chunk idx (under map_lock); with `set`, sets its
 * bit and writes the byte back. *was: the bit before. */
static int map_bit(struct chunk_job *j, int fd, bool set, bool *was)
{
    uint8_t b = 0, mask = (uint8_t)(1u << (j->idx % 8));
    off_t at = (off_t)(j->idx / 8);
    ssize_t n;
    do n = pread(fd, &b, 1, at);
    while (n < 0 && errno == EINTR);
    if (n != 1) return n < 0 ? sbx_err_from_errno(errno) : SBX_ECORRUPT;
    *was = (b & mask) != 0;
    if (!set || *was) return 0;
    b |= mask;
    return write_all_at(fd, &b, 1, at);
}

/* The worker: check, write and sync the bytes, then the bit. */
static void chunk_work(uv_work_t *w)
{
    struct chunk_job *j = w->data;
    struct sbx_api *api = j->api;
    if (j->check) {
        uint8_t h[32];
        sbx_blob_sha256(j->bytes, j->len, h);
        if (memcmp(h, j->want, 32) != 0) {
            j->bad_hash = true;
            return;
        }
    }
    /* Test hook: SHOEBOX_TEST_CHUNK_DELAY_MS=N makes each chunk write take
     * N ms longer, so a test can have writes overlap for sure. */
    const char *delay = getenv("SHOEBOX_TEST_CHUNK_DELAY_MS");
    if (delay && atol(delay) > 0) usleep((useconds_t)(atol(delay) > 10000 ? 10000 : atol(delay)) * 1000);
    int mfd = open(j->map_path, O_RDWR | O_CLOEXEC);
    if (mfd < 0) {
        j->rc = sbx_err_from_errno(errno);
        return;
    }
    bool was = false;
    uv_mutex_lock(&api->map_lock);
    int rc = map_bit(j, mfd, false, &was);
    uv_mutex_unlock(&api->map_lock);
    if (rc == 0 && was) {
        /* Already here: the bytes are not written again. */
        j->dup = true;
        goto done;
    }
    /* The bytes, synced; then the bit, synced: a crash never leaves a bit
     * set for bytes that are not on disk. */
    int dfd = rc == 0 ? open(j->data_path, O_WRONLY | O_CLOEXEC) : -1;
    if (rc == 0 && dfd < 0) rc = sbx_err_from_errno(errno);
    if (rc == 0) rc = write_all_at(dfd, j->bytes, j->len, (off_t)j->off);
    if (rc == 0 && fdatasync(dfd) != 0) rc = sbx_err_from_errno(errno);
    if (dfd >= 0) close(dfd);
    if (rc == 0) {
        uv_mutex_lock(&api->map_lock);
        rc = map_bit(j, mfd, true, &was);
        uv_mutex_unlock(&api->map_lock);
    }
    /* Outside the lock: each sync covers at least its own write. */
    if (rc == 0 && fdatasync(mfd) != 0) rc = sbx_err_from_errno(errno);
done:
    close(mfd);
    j->rc = rc;
}

static void chunk_start_next(struct sbx_api *api);

/* The request's answer, from the session as it is now. */
static void chunk_answer(struct chunk_job *j)
{
    struct sbx_api *api = j->api;
    struct api_req r = {.api = api, .d = api->d, .req = j->req};
    if (j->bad_hash) return api_error(&r, 400, "chunk %u does not match its X-Chunk-Sha256", j->idx);
    struct session s;
    int lrc = load_session(api, j->id, &s);
    bool open = lrc == 0 && (strcmp(s.status, "pending") == 0 || strcmp(s.status, "uploading") == 0);
    if (j->rc != 0) {
        /* The session may have ended meanwhile (a duplicate's write raced
         * its completion, which removed the staging files). */
        if (lrc == 0 && !open) return api_error(&r, 409, "the session is %s: it takes no more chunks", s.status);
        return api_error(&r, j->rc == SBX_ENOSPC ? 507 : 500, "cannot store chunk %u: %s", j->idx,
                         sbx_strerror(j->rc));
    }
    uint8_t *map = NULL;
    uint32_t have = 0;
    if (lrc == 0 && open && read_map(api, &s, &map) == 0) {
        have = count_bits(map, s.n_chunks);
        free(map);
    } else if (lrc == 0 && strcmp(s.status, "completed") == 0) {
        have = s.n_chunks; /* completed meanwhile, its staging files gone */
    }
    char id[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(id, j->id);
    api_json(&r, 200, json_pack("{s:s, s:i, s:b, s:I, s:I}", "id", id, "chunk", (int)j->idx, "duplicate", j->dup,
                                "receivedCount", (json_int_t)have, "chunks", (json_int_t)j->n_chunks));
}

static void chunk_done(uv_work_t *w, int status)
{
    struct chunk_job *j = w->data;
    struct sbx_api *api = j->api;
    struct chunk_job **pp = &api->chunks_running;
    while (*pp && *pp != j) pp = &(*pp)->next;
    SBX_ASSERT(*pp == j && api->n_chunks_running > 0);
    *pp = j->next;
    j->next = NULL;
    api->n_chunks_running--;
    free(j->bytes);
    j->bytes = NULL;
    if (status != 0) j->rc = SBX_EIO;
    if (j->rc == 0 && !j->dup && !j->bad_hash) {
        /* The first chunk makes a pending session uploading; a session
         * that went on meanwhile keeps its status. */
        sqlite3_stmt *st = sbx_store_stmt(api->d->store, "UPDATE upload_sessions SET status = 'uploading' "
                                                         "WHERE id = ?1 AND status = 'pending'");
        if (st) {
            sqlite3_bind_blob(st, 1, j->id, 16, SQLITE_STATIC);
            sqlite3_step(st);
            sqlite3_reset(st);
        }
    }
    if (j->req) chunk_answer(j);
    chunk_free(j);
    chunk_start_next(api);
}

static bool chunk_busy(struct sbx_api *api, const uint8_t id[16], uint32_t idx)
{
    for (struct chunk_job *o = api->chunks_running; o; o = o->next)
        if (o->idx == idx && memcmp(o->id, id, 16) == 0) return true;
    return false;
}

/* Starts waiting writes while slots are free: the first whose chunk is not
 * being written already. Writes whose client went away are dropped (their
 * bytes went with the request). */
static void chunk_start_next(struct sbx_api *api)
{
    /* Bounded: every turn starts or drops a waiting write, or ends. */
    for (size_t guard = 0; guard <= SBX_MAX_API_CONNECTIONS * 256u && !api->stopping; guard++) {
        struct chunk_job **pp = &api->chunks_waiting, *j = NULL;
        for (; *pp; pp = &(*pp)->next) {
            if (!(*pp)->req || (api->n_chunks_running < SBX_MAX_UPLOAD_CHUNK_WRITES && !chunk_busy(api, (*pp)->id, (*pp)->idx))) {
                j = *pp;
                break;
            }
        }
        if (!j) return;
        *pp = j->next;
        j->next = NULL;
        if (!j->req) {
            chunk_free(j);
            continue;
        }
        j->bytes = malloc(j->len);
        if (!j->bytes) {
            struct api_req r = {.api = api, .d = api->d, .req = j->req};
            api_error(&r, 500, "out of memory");
            chunk_free(j);
            continue;
        }
        memcpy(j->bytes, j->req->entity.base, j->len);
        j->work.data = j;
        j->next = api->chunks_running;
        api->chunks_running = j;
        api->n_chunks_running++;
        int rc = uv_queue_work(api->d->loop, &j->work, chunk_work, chunk_done);
        /* Not queued: the callback never runs, so it runs here. */
        if (rc != 0) chunk_done(&j->work, rc);
    }
}

void h_upload_chunk(struct api_req *r)
{
    struct sbx_api *api = r->api;
    struct session s;
    if (!session_arg(r, &s)) return;
    char nbuf[16];
    if (!api_param(r, 1, nbuf, sizeof nbuf)) return;
    char *end = NULL;
    long idx = strtol(nbuf, &end, 10);
    if (!nbuf[0] || *end || idx < 0 || (uint64_t)idx >= s.n_chunks)
        return api_error(r, 400, "chunk index must be 0 to %u", s.n_chunks ? s.n_chunks - 1 : 0);
    if (strcmp(s.status, "pending") != 0 && strcmp(s.status, "uploading") != 0)
        return api_error(r, 409, "the session is %s: it takes no more chunks", s.status);
    uint64_t off = (uint64_t)idx * s.chunk_size;
    size_t want = (size_t)(s.size - off < s.chunk_size ? s.size - off : s.chunk_size);
    h2o_iovec_t e = r->req->entity;
    size_t got = e.base ? e.len : 0;
    if (got != want) return api_error(r, 400, "chunk %ld must be exactly %zu bytes, not %zu", idx, want, got);
    uint8_t want_h[32];
    ssize_t hi = h2o_find_header_by_str(&r->req->headers, H2O_STRLIT("x-chunk-sha256"), -1);
    if (hi >= 0) {
        const char *hv = r->req->headers.entries[hi].value.base;
        size_t hl = r->req->headers.entries[hi].value.len;
        char hex[65];
        snprintf(hex, sizeof hex, "%.*s", (int)(hl < 64 ? hl : 64), hv);
        if (hl != 64 || !parse_hash(hex, want_h))
            return api_error(r, 400, "chunk %ld does not match its X-Chunk-Sha256", idx);
    }
    uint8_t *map = NULL;
    int rc = read_map(api, &s, &map);
    if (rc != 0) return api_error(r, 500, "the session's staging files are damaged: %s", sbx_strerror(rc));
    bool dup = bit(map, (uint32_t)idx);
    uint32_t have = count_bits(map, s.n_chunks);
    free(map);
    if (dup && hi < 0) {
        /* Here already, and nothing to check: nothing to do. */
        char id[SBX_UUID_STRLEN + 1];
        sbx_uuid_format(id, s.id);
        return api_json(r, 200, json_pack("{s:s, s:i, s:b, s:I, s:I}", "id", id, "chunk", (int)idx, "duplicate", 1,
                                           "receivedCount", (json_int_t)have, "chunks", (json_int_t)s.n_chunks));
    }
    if (!api->map_lock_on) {
        if (uv_mutex_init(&api->map_lock) != 0) return api_error(r, 500, "cannot set up the chunk writer");
        api->map_lock_on = true;
    }
    /* The waiting list is bounded: each job holds two paths and its
     * request, and the loop walks the list. A client past it retries. */
    size_t n_waiting = 0;
    for (struct chunk_job *w = api->chunks_waiting; w; w = w->next) n_waiting++;
    if (n_waiting >= SBX_MAX_UPLOAD_CHUNK_WAITING) {
        api_header(r, H2O_TOKEN_RETRY_AFTER, "1");
        return api_error(r, 503, "%zu chunk writes are waiting already; send chunk %ld again shortly", n_waiting, idx);
    }
    struct chunk_job *j = calloc(1, sizeof *j);
    if (!j) return api_error(r, 500, "out of memory");
    j->api = api;
    memcpy(j->id, s.id, 16);
    j->idx = (uint32_t)idx;
    j->n_chunks = s.n_chunks;
    j->off = off;
    j->len = got;
    j->check = hi >= 0;
    if (j->check) memcpy(j->want, want_h, 32);
    if ((rc = stage_path(api, s.id, STAGE_DATA, j->data_path, sizeof j->data_path)) != 0 ||
        (rc = stage_path(api, s.id, STAGE_MAP, j->map_path, sizeof j->map_path)) != 0) {
        chunk_free(j);
        return api_error(r, 500, "cannot store chunk %ld: %s", idx, sbx_strerror(rc));
    }
    req_ref_make(r->req, &j->req, &j->ref);
    /* Last on the waiting list: writes start in the order they came. */
    struct chunk_job **pp = &api->chunks_waiting;
    while (*pp) pp = &(*pp)->next;
    *pp = j;
    chunk_start_next(api);
}

/* ---- POST /uploads/{id}/complete ----
 *
 * Reading, hashing and storing a file of up to 64 GiB, and rendering its
 * thumbnail and medium, take long: they run on libuv's thread pool, so the
 * loop goes on serving every other request meanwhile. The worker uses the
 * API's own SQLite connection and blob store handle (the blob rows it
 * writes are one transaction per blob); the photo's entry and the
 * session's row are written back on the loop thread, which alone uses the
 * engine and the daemon's connection. One completion runs at a time; the
 * others queue behind it. The request is answered when its completion
 * ends, and the completion ends whether or not the client is still there. */

enum job_outcome { JOB_STORED = 0, JOB_REFUSED, JOB_ERROR };


struct complete_job {
    uv_work_t work;
    struct sbx_api *api;
    struct complete_job *next; /* the queue */
    h2o_req_t *req;            /* NULL once the client is gone */
    struct req_ref *ref;       /* in req's pool; NULL with req */
    struct session s;
    json_t *meta;
    char data_path[4200];
    /* The worker's results. */
    enum job_outcome outcome;
    int rc;
    char why[300];
    struct sbx_media_info info;
    bool rendered;
    uint8_t thumb[32], medium[32];
};

static void job_free(struct complete_job *j)
{
    req_ref_forget(j->ref);
    json_decref(j->meta);
    free(j);
}

/* The worker: verify, probe, store, render. No engine, no loop state. */
static void job_work(uv_work_t *w)
{
    struct complete_job *j = w->data;
    sbx_blobstore *bs = j->api->wblobs;
    const struct session *s = &j->s;
    uint8_t *buf = MAP_FAILED;
    uint8_t h[32];
    int fd = open(j->data_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc = 0;
    if (fd < 0 || fstat(fd, &st) != 0) rc = sbx_err_from_errno(errno);
    else if ((uint64_t)st.st_size != s->size) rc = SBX_ECORRUPT;
    else if ((buf = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) rc = sbx_err_from_errno(errno);
    if (fd >= 0) close(fd);
    if (rc != 0) {
        j->outcome = JOB_ERROR;
        j->rc = rc;
        snprintf(j->why, sizeof j->why, "cannot read the staged upload: %s", sbx_strerror(rc));
        return;
    }
    madvise(buf, s->size, MADV_SEQUENTIAL);
    /* Test hook: SHOEBOX_TEST_COMPLETE_DELAY_MS=N makes each completion
     * take N ms longer, so a test can show the loop serving meanwhile
     * without racing a fast disk. */
    const char *delay = getenv("SHOEBOX_TEST_COMPLETE_DELAY_MS");
    if (delay && atol(delay) > 0) usleep((useconds_t)(atol(delay) > 10000 ? 10000 : atol(delay)) * 1000);
    sbx_blob_sha256(buf, s->size, h);
    if (memcmp(h, s->hash, 32) != 0) {
        char got[65], want[65];
        sbx_hex_encode(got, h, 32);
        sbx_hex_encode(want, s->hash, 32);
        snprintf(j->why, sizeof j->why, "hash mismatch: the bytes hash to %s, not to the declared %s", got, want);
        j->outcome = JOB_REFUSED;
        goto done;
    }
    rc = sbx_media_probe(buf, s->size, &j->info);
    if (rc != 0) {
        snprintf(j->why, sizeof j->why, "%s", rc == SBX_EUNSUPPORTED ? "not a photo or video (unknown file type)"
                                              : j->info.reason       ? j->info.reason
                                                                     : sbx_strerror(rc));
        j->outcome = JOB_REFUSED;
        goto done;
    }
    rc = sbx_blob_put_buf(bs, buf, s->size, SBX_BLOB_ORIGINAL, h, NULL);
    if (rc == 0) {
        /* A type with no rendition (a video, a RAW) is still a photo. */
        bool rendered = false;
        int rrc = sbx_render_renditions(bs, buf, s->size, j->thumb, j->medium, &rendered);
        if (rendered) rc = rrc;
        j->rendered = rendered && rrc == 0;
    }
    if (rc != 0) {
        j->outcome = JOB_ERROR;
        j->rc = rc;
        snprintf(j->why, sizeof j->why, "cannot store the upload: %s", sbx_strerror(rc));
        goto done;
    }
    j->outcome = JOB_STORED;
done:
    munmap(buf, s->size);
}

/* The loop's half of a stored upload: one engine write (one transaction:
 * the photo, its renditions, the holder, its albums). */
static int job_write(struct complete_job *j)
{
    struct sbx_daemon *d = j->api->d;
    const struct session *s = &j->s;
    uint8_t photo[16];
    sbx_photo_id_for_hash(sbx_engine_library(d->engine), s->hash, photo);
    struct sbx_op ops[4 + SBX_MAX_UPLOAD_ALBUMS];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    struct sbx_op *put = &ops[n++];
    put->type = SBX_OP_PHOTO_PUT;
    memcpy(put->id, photo, 16);
    struct sbx_photo_facts *f = &put->facts;
    const struct sbx_media_info *info = &j->info;
    memcpy(f->hash, s->hash, 32);
    f->size_bytes = s->size;
    f->width = info->width;
    f->height = info->height;
    f->orientation = info->orientation;
    int64_t app_time = 0;
    const char *cap = json_string_value(json_object_get(j->meta, "capturedAt"));
    bool app_has = cap && sbx_rfc3339_parse(cap, &app_time) == 0;
    /* The file's own capture time first, then what the app says, then the
     * upload time. */
    f->has_captured_at = true;
    f->captured_at_ms = info->has_captured_at ? info->captured_at_ms : app_has ? app_time : s->created_at;
    f->has_location = info->has_gps;
    f->lat = info->latitude;
    f->lon = info->longitude;
    const char *fname = s->file_name[0] ? s->file_name : "upload";
    f->mime_type = (struct sbx_str){info->mime, (uint32_t)strlen(info->mime)};
    f->file_name = (struct sbx_str){fname, (uint32_t)strlen(fname)};
    f->camera_make = (struct sbx_str){info->make, (uint32_t)strlen(info->make)};
    f->camera_model = (struct sbx_str){info->model, (uint32_t)strlen(info->model)};
    if (j->rendered) {
        for (int i = 0; i < 2; i++) {
            ops[n].type = SBX_OP_PHOTO_SET;
            memcpy(ops[n].id, photo, 16);
            ops[n].field = i == 0 ? SBX_PF_THUMB : SBX_PF_MEDIUM;
            memcpy(ops[n].value.hash, i == 0 ? j->thumb : j->medium, 32);
            n++;
        }
    }
    /* This device holds the original now: the library learns it, so a
     * full peer knows to fetch it and others know where it is. */
    ops[n].type = SBX_OP_BLOB_HELD;
    memcpy(ops[n].hash, s->hash, 32);
    n++;
    n += album_ops(json_object_get(j->meta, "albumIds"), photo, ops + n, SBX_MAX_UPLOAD_ALBUMS);
    return sbx_engine_write(d->engine, ops, n, sbx_now_ms());
}

static void job_start_next(struct sbx_api *api);

static void job_done(uv_work_t *w, int status)
{
    struct complete_job *j = w->data;
    struct sbx_api *api = j->api;
    SBX_ASSERT(api->job_running == j);
    api->job_running = NULL;
    SBX_ASSERT(api->n_jobs > 0);
    api->n_jobs--;
    struct session *s = &j->s;
    struct api_req r = {.api = api, .d = api->d, .req = j->req};
    int http = 200, rc = 0;
    if (status != 0) {
        j->outcome = JOB_ERROR;
        j->rc = SBX_EIO;
        snprintf(j->why, sizeof j->why, "the completion did not run: %s", uv_strerror(status));
    }
    if (j->outcome == JOB_REFUSED) {
        set_status(api, s->id, "failed", j->why);
        stage_remove(api, s->id);
        sbx_info("upload %s failed: %s", s->file_name, j->why);
        load_session(api, s->id, s);
        http = 422;
    } else if (j->outcome == JOB_STORED) {
        if ((rc = job_write(j)) != 0) snprintf(j->why, sizeof j->why, "cannot write to the library: %s", sbx_strerror(rc));
        else if ((rc = set_status(api, s->id, "completed", NULL)) != 0) snprintf(j->why, sizeof j->why, "database error");
        if (rc == 0) {
            stage_remove(api, s->id);
            load_session(api, s->id, s);
            sbx_info("upload %s: %llu bytes stored", s->file_name, (unsigned long long)s->size);
        } else {
            j->outcome = JOB_ERROR;
            j->rc = rc;
        }
    }
    if (j->outcome == JOB_ERROR) {
        /* The session stays open: the client may complete it again. */
        http = j->rc == SBX_ENOSPC ? 507 : 500;
        sbx_warn("upload %s: %s", s->file_name, j->why);
    }
    if (r.req) {
        if (j->outcome == JOB_ERROR) {
            api_error(&r, http, "%s", j->why);
        } else {
            json_t *o = session_json(api, s, false);
            if (http == 200) json_object_set_new(o, "alreadyExists", json_false());
            api_json(&r, http, o);
        }
    }
    job_free(j);
    job_start_next(api);
}

static void job_start_next(struct sbx_api *api)
{
    if (api->job_running || !api->jobs_head || api->stopping) return;
    struct complete_job *j = api->jobs_head;
    api->jobs_head = j->next;
    if (!api->jobs_head) api->jobs_tail = NULL;
    j->next = NULL;
    j->work.data = j;
    api->job_running = j;
    int rc = uv_queue_work(api->d->loop, &j->work, job_work, job_done);
    if (rc != 0) {
        /* Not queued: the callback never runs, so it runs here. */
        job_done(&j->work, rc);
    }
}

static bool job_for(struct sbx_api *api, const uint8_t id[16])
{
    if (api->job_running && memcmp(api->job_running->s.id, id, 16) == 0) return true;
    for (struct complete_job *j = api->jobs_head; j; j = j->next)
        if (memcmp(j->s.id, id, 16) == 0) return true;
    return false;
}

static void worker_close(struct sbx_api *api)
{
    sbx_blobstore_close(api->wblobs);
    api->wblobs = NULL;
    sbx_store_close(api->wstore);
    api->wstore = NULL;
}

/* The worker's own connection and blob store handle, opened once. */
static int worker_handles(struct sbx_api *api)
{
    if (api->wblobs) return 0;
    char path[4096], err[256];
    int rc = sbx_datadir_path(path, sizeof path, api->d->data_dir, SBX_FILE_DB);
    if (rc == 0) rc = sbx_store_open_sibling(&api->wstore, api->d->store, path, err, sizeof err);
    if (rc == 0) rc = sbx_blobstore_open(&api->wblobs, api->d->data_dir, api->wstore);
    if (rc != 0) {
        sbx_warn("api: cannot open the upload worker's database handle: %s", sbx_strerror(rc));
        worker_close(api);
    }
    return rc;
}

void h_upload_complete(struct api_req *r)
{
    struct sbx_api *api = r->api;
    struct session s;
    if (!session_arg(r, &s)) return;
    if (strcmp(s.status, "completed") == 0) return api_json(r, 200, session_json(api, &s, false));
    if (strcmp(s.status, "failed") == 0) {
        json_t *o = session_json(api, &s, false);
        return api_json(r, 409, o);
    }
    if (job_for(api, s.id))
        return api_error(r, 409, "the session is being completed: its status says when it is done (GET /uploads/{id})");
    uint8_t *map = NULL;
    int rc = read_map(api, &s, &map);
    if (rc != 0) return api_error(r, 500, "the session's staging files are damaged: %s", sbx_strerror(rc));
    uint32_t have = count_bits(map, s.n_chunks);
    if (have != s.n_chunks) {
        json_t *missing = json_array();
        for (uint32_t i = 0; i < s.n_chunks && json_array_size(missing) < 1000; i++)
            if (!bit(map, i)) json_array_append_new(missing, json_integer(i));
        free(map);
        return api_json(r, 409, json_pack("{s:s, s:o, s:I}", "error", "chunks are missing: send them first",
                                          "missingChunks", missing, "receivedCount", (json_int_t)have));
    }
    free(map);
    if (api->n_jobs >= SBX_MAX_UPLOAD_COMPLETIONS) {
        api_header(r, H2O_TOKEN_RETRY_AFTER, "5");
        return api_error(r, 503, "too many uploads are being completed: retry");
    }
    if ((rc = worker_handles(api)) != 0) return api_error(r, 500, "cannot open the database: %s", sbx_strerror(rc));
    struct complete_job *j = calloc(1, sizeof *j);
    if (!j) return api_error(r, 500, "out of memory");
    j->api = api;
    j->s = s;
    char path[4200];
    if ((rc = stage_path(api, s.id, STAGE_META, path, sizeof path)) == 0) {
        json_error_t jerr;
        j->meta = json_load_file(path, 0, &jerr);
    }
    if (rc == 0) rc = stage_path(api, s.id, STAGE_DATA, j->data_path, sizeof j->data_path);
    if (rc != 0) {
        job_free(j);
        return api_error(r, 500, "cannot read the staged upload: %s", sbx_strerror(rc));
    }
    req_ref_make(r->req, &j->req, &j->ref);
    if (api->jobs_tail) api->jobs_tail->next = j;
    else api->jobs_head = j;
    api->jobs_tail = j;
    api->n_jobs++;
    job_start_next(api);
}

void api_upload_stop(struct sbx_api *api)
{
    /* Chunk writes not begun are dropped, as their clients are told; those
     * running finish (the loop waits for them). */
    for (size_t guard = 0; api->chunks_waiting && guard <= SBX_MAX_API_CONNECTIONS * 256u; guard++) {
        struct chunk_job *j = api->chunks_waiting;
        api->chunks_waiting = j->next;
        if (j->req) {
            struct api_req r = {.api = api, .d = api->d, .req = j->req};
            api_close_after(&r);
            api_header(&r, H2O_TOKEN_RETRY_AFTER, "10");
            api_error(&r, 503, "the daemon is shutting down: send the chunk again later");
        }
        chunk_free(j);
    }
    /* The running completion finishes (the loop waits for it); those not
     * begun are dropped, and their clients may complete them again later. */
    for (size_t guard = 0; api->jobs_head && guard <= SBX_MAX_UPLOAD_COMPLETIONS; guard++) {
        struct complete_job *j = api->jobs_head;
        api->jobs_head = j->next;
        api->n_jobs--;
        if (j->req) {
            struct api_req r = {.api = api, .d = api->d, .req = j->req};
            api_close_after(&r);
            api_header(&r, H2O_TOKEN_RETRY_AFTER, "10");
            api_error(&r, 503, "the daemon is shutting down: complete the upload again later");
        }
        job_free(j);
    }
    api->jobs_tail = NULL;
}

void api_upload_close(struct sbx_api *api)
{
    SBX_ASSERT(api->job_running == NULL);
    SBX_ASSERT(api->chunks_running == NULL && api->n_chunks_running == 0 && api->chunks_waiting == NULL);
    if (api->map_lock_on) uv_mutex_destroy(&api->map_lock);
    api->map_lock_on = false;
    worker_close(api);
}

/* ---- start-up sweep ---- */

void api_upload_sweep(struct sbx_api *api)
{
    struct sbx_daemon *d = api->d;
    sqlite3_stmt *st = sbx_store_stmt(d->store, "UPDATE upload_sessions SET status = 'failed', "
                                                "error = 'expired: not completed in time' "
                                                "WHERE status IN ('pending', 'uploading') AND created_at < ?1");
    if (st) {
        sqlite3_bind_int64(st, 1, sbx_now_ms() - SBX_UPLOAD_TTL_MS);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/uploads", d->data_dir);
    DIR *dh = opendir(dir);
    if (!dh) return;
    st = sbx_store_stmt(d->store, "SELECT 1 FROM upload_sessions WHERE id = ?1 AND status IN ('pending', 'uploading')");
    struct dirent *de;
    /* Bounded: the directory holds three files per open session. */
    for (int guard = 0; guard < 64 * (int)SBX_MAX_OPEN_UPLOADS && (de = readdir(dh)) != NULL; guard++) {
        uint8_t id[16];
        char hex[33];
        if (strlen(de->d_name) < 33 || de->d_name[32] != '.') continue;
        memcpy(hex, de->d_name, 32);
        hex[32] = '\0';
        if (sbx_hex_decode(id, 16, hex) != 0 || !st) continue;
        sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
        bool live = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        if (!live) {
            char path[4500];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(dh);
}
