/* Imports: files, folders and Google Takeout zips become photos.
 *
 * One import at a time runs as a job (docs/import.md):
 * - a worker thread walks the paths, reads every file once (mmap for files,
 *   a streaming read for zip members), stores the original in the blob store
 *   (which hashes it: the SHA-256 names the blob and the photo), probes its
 *   type and metadata, and fills batches of results;
 * - the loop thread applies each batch: one engine write for the photos'
 *   ops (one SQLite transaction, a few signed entries), one per 256 album
 *   adds, and the job's rows, so a killed import loses at most the batch in
 *   flight and a run with the same paths resumes it.
 * Thumbnails and mediums are not rendered here: each new photo that can be
 * rendered is queued (render_queue, with its file's `applying` row) for the
 * background renderer (daemon/render.c), so the import returns once the
 * originals and the records are durable.
 * The engine and the daemon's store stay on the loop thread; the worker has
 * its own SQLite connection and blob store handle (WAL lets both work at
 * once; their writes take turns on SQLite's lock). */
#include "daemon.h"

#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/import.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/media.h"
#include "shoebox/takeout.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A batch closes at 256 files (one entry of photo.put ops, and with the
 * other ops of those photos a handful), at 256 MiB of originals or after a
 * second, whichever comes first: a kill then loses little work, and the
 * progress that status shows as applied stays fresh. */
#define BATCH_FILES 256u
#define BATCH_BYTES (256ull << 20)
#define BATCH_MS 1000
#define READ_BUF (1u << 20)

enum item_state { ST_IMPORTED = 0, ST_DUPLICATE, ST_SKIPPED };
static const char *const state_names[] = {"imported", "duplicate", "skipped"};

/* One file's outcome, made by the worker, applied by the loop. */
struct item {
    char *key;      /* job row key: absolute path, or the path inside the Takeout */
    int64_t size, mtime_ms;
    uint8_t state;  /* enum item_state */
    bool write;     /* loop: its photo ops are written by this batch */
    char *reason;   /* reported with the file (an error, or a note); NULL: nothing */
    bool photo;     /* id and facts.hash are set */
    uint8_t id[SBX_ID_BYTES];
    struct sbx_photo_facts facts; /* strings point to the fields below */
    char *file_name, *make, *model;
    bool render;    /* a type the renderer can render: queued when written */
    bool favorite, archived, trashed;
    char *description;
    bool in_album;
    uint8_t album_id[SBX_ID_BYTES];
    char *album_title;
};

struct batch {
    struct item items[BATCH_FILES];
    size_t n;
    uint64_t bytes;
    int64_t opened_ms;
};

/* A file the walk found. */
struct found {
    char *path;
    int64_t size, mtime_ms;
    int tk;        /* index of its folder Takeout in job->fix, or -1 */
    size_t rel;    /* offset of the path relative to that folder */
    char *err;     /* the path could not be read: why */
};

/* One processing thread's tools: its own database connection and blob
 * store handle (a handle serves one thread at a time), its buffers, and
 * where the item of the file it works on goes. */
struct wctx {
    struct job *j;
    sbx_store *store;
    sbx_blobstore *blobs;
    uint8_t *rbuf;  /* READ_BUF */
    uint8_t *pbuf;  /* a zip member's first bytes, for the probe */
    size_t pcap;
    bool serial;       /* items append to job->cur (zips, errors) */
    struct item *slot; /* otherwise: the one item of the current file */
};

/* Files of a folder are processed by several threads (hashing, copying and
 * rendering use a core each): a batch is a range of found files, claimed
 * one by one; each file's item goes to its own slot, so the batch keeps
 * the walk's order whatever thread finishes first. */
struct pool {
    uv_thread_t th[SBX_MAX_IMPORT_THREADS];
    size_t n;                 /* helper threads (the worker is one more) */
    uv_mutex_t m;
    uv_cond_t go, idle;
    uint64_t gen;             /* bumped for every range */
    size_t running;           /* helpers still in the range */
    bool quit;
    struct batch *b;          /* the range: found[base .. end) into b */
    size_t base, next, end;
    int64_t opened_ms;
    bool closed;
};

struct job {
    struct sbx_importer *im;
    struct sbx_daemon *d;
    uint8_t id[SBX_ID_BYTES];
    uint8_t library[SBX_ID_BYTES];
    char **paths;
    size_t n_paths;
    bool resumed;
    sbx_control_pending *reply;
    int64_t started_ms;

    uv_thread_t thread;
    uv_async_t async;
    uv_mutex_t mu;
    uv_cond_t cv;
    atomic_bool cancel;
    /* Under mu. */
    struct batch *handed; /* waiting for the loop */
    bool worker_done;
    const char *phase;
    int64_t files_total, files_done, bytes_total, bytes_done;

    /* Worker only. */
    struct batch *cur;
    int delay_ms;
    size_t n_threads;
    struct wctx ctx[SBX_MAX_IMPORT_THREADS];
    struct pool pool;
    struct found *found;
    size_t n_found, cap_found;
    char **zips;
    size_t n_zips, cap_zips;
    sbx_takeout_index **fix; /* folder Takeouts (a Takeout extracted to disk) */
    size_t n_fix;
    int worker_rc;
    char worker_err[300];

    /* Loop only. */
    int fatal;
    char fatal_msg[300];
    long exit_after;  /* test hook: exit after this many photo writes */
    long photo_writes;
};

struct sbx_importer {
    struct sbx_daemon *d;
    /* The workers' own connections and blob stores: opened by the first
     * import (on its thread, since the integrity check reads the whole
     * database), kept for the next ones, one per processing thread. */
    sbx_store *wstore[SBX_MAX_IMPORT_THREADS];
    sbx_blobstore *wblobs[SBX_MAX_IMPORT_THREADS];
    struct job *job;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static char *dup_clean(const char *s, size_t len, size_t max)
{
    char *out = malloc(max + 1);
    if (out) sbx_import_clean_text(out, max + 1, s, len);
    return out;
}


static const char *base_of(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static int64_t mtime_ms_of(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

static bool is_cancelled(struct job *j) { return atomic_load(&j->cancel); }

static void item_free(struct item *it)
{
    free(it->key);
    free(it->reason);
    free(it->file_name);
    free(it->make);
    free(it->model);
    free(it->description);
    free(it->album_title);
    memset(it, 0, sizeof *it);
}

static void batch_free(struct batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) item_free(&b->items[i]);
    free(b);
}

static struct batch *batch_new(void)
{
    struct batch *b = calloc(1, sizeof *b);
    if (b) b->opened_ms = sbx_now_ms();
    return b;
}

static void progress_add(struct job *j, int64_t files, int64_t bytes)
{
    uv_mutex_lock(&j->mu);
    j->files_done += files;
    j->bytes_done += bytes;
    uv_mutex_unlock(&j->mu);
}

static void worker_fail(struct job *j, int rc, const char *fmt, const char *detail)
{
    uv_mutex_lock(&j->mu);
    if (j->worker_rc == 0) {
        j->worker_rc = rc;
        snprintf(j->worker_err, sizeof j->worker_err, fmt, detail ? detail : "", sbx_strerror(rc));
    }
    uv_mutex_unlock(&j->mu);
    atomic_store(&j->cancel, true);
}

/* ------------------------------------------------------------------ */
/* Worker: batches                                                      */

/* Hands the current batch to the loop (waiting while the previous one is
 * still being applied) and starts a new one. */
static void hand_over(struct job *j, struct batch *b)
{
    if (!b || b->n == 0) {
        batch_free(b);
        return;
    }
    uv_mutex_lock(&j->mu);
    while (j->handed && !is_cancelled(j)) uv_cond_wait(&j->cv, &j->mu);
    bool give = !is_cancelled(j);
    if (give) j->handed = b;
    uv_mutex_unlock(&j->mu);
    if (!give) {
        /* Stopping: what this batch stored stays in the blob store, where
         * the resumed import finds it again. */
        batch_free(b);
    } else {
        uv_async_send(&j->async);
    }
}

static void submit(struct job *j)
{
    if (!j->cur || j->cur->n == 0) return;
    hand_over(j, j->cur);
    j->cur = batch_new();
    if (!j->cur) worker_fail(j, SBX_ENOMEM, "out of memory%s: %s", "");
}

static void maybe_submit(struct job *j)
{
    struct batch *b = j->cur;
    if (b && (b->n >= BATCH_FILES || b->bytes >= BATCH_BYTES || sbx_now_ms() - b->opened_ms >= BATCH_MS))
        submit(j);
}

/* A new item in the current batch, keyed `key`; NULL when out of memory. */
static struct item *item_add(struct wctx *c, const char *key, int64_t size, int64_t mtime_ms, int state,
                             const char *reason)
{
    struct job *j = c->j;
    struct item *it;
    if (c->serial) {
        if (!j->cur) return NULL;
        if (j->cur->n == BATCH_FILES) submit(j);
        if (!j->cur) return NULL;
        it = &j->cur->items[j->cur->n];
    } else {
        /* One item per file: its slot. */
        SBX_ASSERT(c->slot != NULL);
        it = c->slot;
        c->slot = NULL;
    }
    memset(it, 0, sizeof *it);
    it->key = strdup(key);
    it->reason = reason ? strdup(reason) : NULL;
    if (!it->key || (reason && !it->reason)) {
        item_free(it);
        worker_fail(j, SBX_ENOMEM, "out of memory%s: %s", "");
        return NULL;
    }
    it->size = size;
    it->mtime_ms = mtime_ms;
    it->state = (uint8_t)state;
    if (c->serial) {
        j->cur->n++;
        j->cur->bytes += size > 0 ? (uint64_t)size : 0;
    }
    return it;
}

static void skip_item(struct wctx *c, const char *key, int64_t size, int64_t mtime_ms, const char *reason)
{
    item_add(c, key, size, mtime_ms, ST_SKIPPED, reason);
}

/* ------------------------------------------------------------------ */
/* Worker: database lookups (its own connection)                        */

static const char SQL_FILE_ROW[] =
    "SELECT state, size_bytes, mtime FROM import_job_files WHERE job_id = ?1 AND path = ?2";
static const char SQL_PHOTO_PUT[] = "SELECT 1 FROM photos WHERE id = ?1 AND put_hlc IS NOT NULL";

/* True when a run of this job already finished this file (same size and
 * modification time): it is skipped without being read. */
static bool file_done(struct wctx *c, const char *key, int64_t size, int64_t mtime_ms)
{
    struct job *j = c->j;
    if (!j->resumed) return false;
    sqlite3_stmt *st = sbx_store_stmt(c->store, SQL_FILE_ROW);
    if (!st) return false;
    sqlite3_bind_blob(st, 1, j->id, SBX_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    bool done = false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        done = state && strcmp(state, "applying") != 0 && sqlite3_column_int64(st, 1) == size &&
               sqlite3_column_int64(st, 2) == mtime_ms;
    }
    sqlite3_reset(st);
    return done;
}

static bool photo_in_store(sbx_store *s, const uint8_t id[SBX_ID_BYTES])
{
    sqlite3_stmt *st = sbx_store_stmt(s, SQL_PHOTO_PUT);
    if (!st) return false;
    sqlite3_bind_blob(st, 1, id, SBX_ID_BYTES, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found;
}

static bool batch_has(const struct batch *b, const uint8_t id[SBX_ID_BYTES])
{
    for (size_t i = 0; b && i < b->n; i++)
        if (b->items[i].photo && memcmp(b->items[i].id, id, SBX_ID_BYTES) == 0) return true;
    return false;
}

/* Already in the library, or in a batch that is not applied yet: the
 * batch being applied is checked before the database, so a batch that
 * commits in between is seen in one of the two. The loop decides for good
 * when it applies; this is what the progress and a duplicate's item say
 * until then. */
static bool seen_before(struct wctx *c, const uint8_t id[SBX_ID_BYTES])
{
    struct job *j = c->j;
    /* Other threads fill the slots of a parallel batch: the loop settles
     * duplicates inside one batch. */
    if (c->serial && batch_has(j->cur, id)) return true;
    uv_mutex_lock(&j->mu);
    bool pending = batch_has(j->handed, id);
    uv_mutex_unlock(&j->mu);
    return pending || photo_in_store(c->store, id);
}

/* ------------------------------------------------------------------ */
/* Worker: one media file                                               */

struct media_src {
    const char *key;
    const char *base;
    int64_t size, mtime_ms;
    bool has_mtime;
    const struct sbx_takeout_media *tm; /* NULL outside a Takeout */
    const sbx_takeout_index *ix;
};

/* A store error stops the import (a full disk, a database that fails):
 * going on would only report every later file. */
static bool store_failed(struct wctx *c, int rc)
{
    struct job *j = c->j;
    if (rc == 0) return false;
    worker_fail(j, rc, "cannot write to the blob store%s: %s", "");
    return true;
}

static const char *time_note(int source)
{
    switch (source) {
    case SBX_IMPORT_TIME_EXIF: return "imported without a Takeout sidecar (no JSON matched it): date from its metadata";
    case SBX_IMPORT_TIME_FILE: return "imported without a Takeout sidecar (no JSON matched it): date from the file time";
    default: return "imported without a Takeout sidecar (no JSON matched it): no date";
    }
}

/* The file is stored (hash known) and probed: makes its item. */
static void finish_media(struct wctx *c, const struct media_src *s, const struct sbx_media_info *info,
                         const uint8_t hash[32])
{
    struct job *j = c->j;
    uint8_t id[SBX_ID_BYTES];
    sbx_photo_id_for_hash(j->library, hash, id);
    /* A duplicate still gets its facts: the loop has the last word and may
     * find it new after all. */
    bool dup = seen_before(c, id);
    struct item *it = item_add(c, s->key, s->size, s->mtime_ms, dup ? ST_DUPLICATE : ST_IMPORTED, NULL);
    if (!it) return;
    it->photo = true;
    memcpy(it->id, id, SBX_ID_BYTES);
    memcpy(it->facts.hash, hash, 32);

    if (s->tm && s->ix) {
        struct sbx_takeout_folder fo;
        if (sbx_takeout_index_folder(s->ix, s->tm->folder, &fo) == 0 && fo.kind == SBX_TAKEOUT_FOLDER_ALBUM) {
            it->in_album = true;
            sbx_import_album_id(j->library, fo.name, strlen(fo.name), it->album_id);
            const char *title = fo.title && fo.title[0] ? fo.title : fo.name;
            it->album_title = dup_clean(title, strlen(title), SBX_MAX_LABEL);
            if (it->album_title && !it->album_title[0]) {
                free(it->album_title);
                it->album_title = strdup("Album");
            }
            if (!it->album_title) {
                worker_fail(j, SBX_ENOMEM, "out of memory%s: %s", "");
                return;
            }
        }
    }

    struct sbx_import_sources src = {
        .info = info,
        .sidecar = s->tm ? s->tm->sidecar : NULL,
        .how = s->tm ? s->tm->how : 0,
        .base_name = s->base,
        .has_mtime = s->has_mtime,
        .mtime_ms = s->mtime_ms,
    };
    struct sbx_import_decision dec;
    sbx_import_decide(&src, &dec);
    if (s->tm && !s->tm->sidecar) {
        const char *note = s->tm->sidecar_path ? "imported, but its Takeout sidecar could not be read: date from its metadata or file time"
                                               : time_note(dec.time_source);
        if (!(it->reason = strdup(note))) {
            worker_fail(j, SBX_ENOMEM, "out of memory%s: %s", "");
            return;
        }
    }
    it->file_name = dup_clean(dec.file_name, strlen(dec.file_name), SBX_MAX_STR);
    it->make = dup_clean(info->make, strlen(info->make), SBX_MAX_STR);
    it->model = dup_clean(info->model, strlen(info->model), SBX_MAX_STR);
    if (dec.description) it->description = dup_clean(dec.description, strlen(dec.description), SBX_MAX_STR);
    if (!it->file_name || !it->make || !it->model || (dec.description && !it->description)) {
        worker_fail(j, SBX_ENOMEM, "out of memory%s: %s", "");
        return;
    }
    it->favorite = dec.favorite;
    it->archived = dec.archived;
    it->trashed = dec.trashed;

    struct sbx_photo_facts *f = &it->facts;
    f->size_bytes = (uint64_t)s->size;
    f->width = info->width;
    f->height = info->height;
    f->orientation = info->orientation <= 8 ? info->orientation : 0;
    f->has_captured_at = dec.has_captured_at;
    f->captured_at_ms = dec.captured_at_ms;
    f->has_location = dec.has_location;
    f->lat = dec.lat;
    f->lon = dec.lon;
    f->mime_type = (struct sbx_str){info->mime, (uint32_t)strlen(info->mime)};
    f->file_name = (struct sbx_str){it->file_name, (uint32_t)strlen(it->file_name)};
    f->camera_make = (struct sbx_str){it->make, (uint32_t)strlen(it->make)};
    f->camera_model = (struct sbx_str){it->model, (uint32_t)strlen(it->model)};

    /* Rendered later, from the blob store: a large zip member that was
     * probed from its start only is rendered whole. */
    it->render = sbx_media_can_render(info->mime);
    if (j->delay_ms > 0) {
        struct timespec ts = {j->delay_ms / 1000, (long)(j->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static const char *probe_reason(int rc, const struct sbx_media_info *info)
{
    if (rc == SBX_EUNSUPPORTED) return "not a photo or video (unknown file type)";
    return info->reason ? info->reason : sbx_strerror(rc);
}

/* A file on disk: mapped once; the probe, the blob store's hash and copy,
 * and the renditions all read the mapping. */
static void do_file(struct wctx *c, const struct media_src *s, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        skip_item(c, s->key, s->size, s->mtime_ms, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        skip_item(c, s->key, s->size, s->mtime_ms, "not a regular file");
        return;
    }
    size_t len = (size_t)st.st_size;
    if (len == 0 || (uint64_t)st.st_size > SBX_MAX_BLOB_BYTES) {
        close(fd);
        skip_item(c, s->key, s->size, s->mtime_ms, len == 0 ? "empty file" : "file too large (over 64 GiB)");
        return;
    }
    uint8_t *buf = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (buf == MAP_FAILED) {
        skip_item(c, s->key, s->size, s->mtime_ms, strerror(errno));
        return;
    }
    madvise(buf, len, MADV_SEQUENTIAL);
    struct sbx_media_info info;
    int rc = sbx_media_probe(buf, len, &info);
    if (rc != 0) {
        skip_item(c, s->key, s->size, s->mtime_ms, probe_reason(rc, &info));
    } else {
        uint8_t hash[32];
        rc = sbx_blob_put_buf(c->blobs, buf, len, SBX_BLOB_ORIGINAL, hash, NULL);
        if (!store_failed(c, rc)) finish_media(c, s, &info, hash);
    }
    munmap(buf, len);
}

/* A zip member: streamed into a blob writer (which hashes it) while its
 * first SBX_MAX_IMPORT_PROBE_BYTES stay in memory for the probe. */
static void do_entry(struct wctx *c, sbx_takeout_reader *r, const struct media_src *s)
{
    struct job *j = c->j;
    size_t got = 0, plen = 0;
    uint64_t total = 0;
    int rc = sbx_takeout_reader_read(r, c->rbuf, READ_BUF, &got);
    if (rc != 0) {
        skip_item(c, s->key, s->size, s->mtime_ms, sbx_takeout_reader_error(r));
        return;
    }
    if (got == 0) {
        skip_item(c, s->key, s->size, s->mtime_ms, "empty file");
        return;
    }
    /* The type from the first bytes: anything else is not stored at all. */
    const char *mime;
    enum sbx_media_kind kind;
    if (sbx_media_sniff(c->rbuf, got, &mime, &kind) != 0) {
        skip_item(c, s->key, s->size, s->mtime_ms, "not a photo or video (unknown file type)");
        return;
    }
    sbx_blob_writer *w = NULL;
    rc = sbx_blob_writer_begin(c->blobs, SBX_BLOB_ORIGINAL, &w);
    if (store_failed(c, rc)) return;
    while (got > 0) {
        if ((rc = sbx_blob_writer_write(w, c->rbuf, got)) != 0) break;
        total += got;
        if (plen < SBX_MAX_IMPORT_PROBE_BYTES) {
            size_t take = got < SBX_MAX_IMPORT_PROBE_BYTES - plen ? got : SBX_MAX_IMPORT_PROBE_BYTES - plen;
            if (plen + take > c->pcap) {
                size_t cap = c->pcap ? c->pcap : READ_BUF;
                while (cap < plen + take) cap *= 2;
                if (cap > SBX_MAX_IMPORT_PROBE_BYTES) cap = SBX_MAX_IMPORT_PROBE_BYTES;
                uint8_t *nb = realloc(c->pbuf, cap);
                if (!nb) { rc = SBX_ENOMEM; break; }
                c->pbuf = nb;
                c->pcap = cap;
            }
            memcpy(c->pbuf + plen, c->rbuf, take);
            plen += take;
        }
        if (is_cancelled(j)) { rc = SBX_EAGAIN; break; }
        int rr = sbx_takeout_reader_read(r, c->rbuf, READ_BUF, &got);
        if (rr != 0) {
            sbx_blob_writer_abort(w);
            skip_item(c, s->key, s->size, s->mtime_ms, sbx_takeout_reader_error(r));
            return;
        }
    }
    if (rc != 0) {
        sbx_blob_writer_abort(w);
        if (rc != SBX_EAGAIN) store_failed(c, rc);
        return;
    }
    uint8_t hash[32];
    bool existed = false;
    rc = sbx_blob_writer_commit(w, NULL, hash, &existed);
    if (store_failed(c, rc)) return;
    bool whole = total == plen;
    struct sbx_media_info info;
    rc = sbx_media_probe(c->pbuf, plen, &info);
    /* A member longer than what was kept looks truncated to the probe: what
     * it read before the cut (type, often size and date) is kept. */
    if (rc == SBX_ECORRUPT && !whole && info.mime) rc = 0;
    if (rc != 0) {
        if (!existed) sbx_blob_delete(c->blobs, hash);
        skip_item(c, s->key, s->size, s->mtime_ms, probe_reason(rc, &info));
        return;
    }
    struct media_src s2 = *s;
    s2.size = (int64_t)total;
    finish_media(c, &s2, &info, hash);
}

/* ------------------------------------------------------------------ */
/* Worker: finding the files                                            */

static int found_push(struct job *j, const char *path, const struct stat *st, const char *err)
{
    if (j->n_found == j->cap_found) {
        size_t cap = j->cap_found ? j->cap_found * 2 : 1024;
        struct found *nf = realloc(j->found, cap * sizeof *nf);
        if (!nf) return SBX_ENOMEM;
        j->found = nf;
        j->cap_found = cap;
    }
    struct found *f = &j->found[j->n_found];
    memset(f, 0, sizeof *f);
    f->tk = -1;
    f->path = strdup(path);
    f->err = err ? strdup(err) : NULL;
    if (!f->path || (err && !f->err)) {
        free(f->path);
        free(f->err);
        return SBX_ENOMEM;
    }
    if (st) {
        f->size = st->st_size;
        f->mtime_ms = mtime_ms_of(st);
    }
    j->n_found++;
    return 0;
}

static int zip_push(struct job *j, const char *path)
{
    for (size_t i = 0; i < j->n_zips; i++)
        if (strcmp(j->zips[i], path) == 0) return 0;
    if (j->n_zips == j->cap_zips) {
        size_t cap = j->cap_zips ? j->cap_zips * 2 : 16;
        char **nz = realloc(j->zips, cap * sizeof *nz);
        if (!nz) return SBX_ENOMEM;
        j->zips = nz;
        j->cap_zips = cap;
    }
    if (!(j->zips[j->n_zips] = strdup(path))) return SBX_ENOMEM;
    j->n_zips++;
    return 0;
}

struct walk {
    struct job *j;
    sbx_takeout_index *ix; /* NULL once indexing gave up */
    size_t rel;            /* length of the folder's path plus the slash */
    int rc;                /* fatal (out of memory) */
};

static void index_file(struct walk *w, const char *path, const struct stat *st)
{
    if (!w->ix) return;
    const char *rel = path + w->rel;
    uint8_t *json = NULL;
    size_t len = 0;
    if (sbx_takeout_is_json_name(rel, strlen(rel)) && (uint64_t)st->st_size <= SBX_MAX_SIDECAR_BYTES &&
        sbx_file_read(path, SBX_MAX_SIDECAR_BYTES, &json, &len) != 0)
        json = NULL;
    int rc = sbx_takeout_index_add(w->ix, rel, (uint64_t)st->st_size, 0, json, len);
    free(json);
    /* A name the index refuses (not UTF-8, too long) is imported as a
     * plain file; running out of room ends the Takeout view of the folder. */
    if (rc == SBX_ENOMEM || (rc == SBX_ETOOBIG && strlen(rel) <= SBX_MAX_TAKEOUT_PATH)) {
        sbx_takeout_index_free(w->ix);
        w->ix = NULL;
    }
}

static void walk(struct walk *w, const char *path, unsigned depth)
{
    struct job *j = w->j;
    if (w->rc || is_cancelled(j)) return;
    struct stat st;
    if (stat(path, &st) != 0) {
        w->rc = found_push(j, path, NULL, strerror(errno));
        return;
    }
    if (S_ISREG(st.st_mode)) {
        if (sbx_takeout_is_zip(path) == 1) {
            w->rc = zip_push(j, path);
            return;
        }
        w->rc = found_push(j, path, &st, NULL);
        if (w->rc == 0) index_file(w, path, &st);
        return;
    }
    if (!S_ISDIR(st.st_mode)) return; /* sockets, fifos, devices */
    if (depth >= SBX_MAX_IMPORT_DEPTH) {
        w->rc = found_push(j, path, NULL, "folders nested too deep (or a symbolic link loop)");
        return;
    }
    struct dirent **names = NULL;
    /* Sorted, so an import is deterministic and a resumed one walks the
     * same order. */
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        w->rc = found_push(j, path, NULL, strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && !w->rc) {
            char child[4096];
            if (snprintf(child, sizeof child, "%s/%s", path, name) < (int)sizeof child) walk(w, child, depth + 1);
            else w->rc = found_push(j, path, NULL, "path too long");
        }
        free(names[i]);
    }
    free(names);
}

/* Walks one path given to the import. A folder is also read as a Takeout
 * extracted to disk: when it holds a Google Photos root, its files get the
 * same sidecars and albums as from the zips. */
static int collect(struct job *j, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return found_push(j, path, NULL, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        struct walk w = {.j = j};
        walk(&w, path, 0);
        return w.rc;
    }
    size_t plen = strlen(path);
    /* Paths inside the folder, relative to it ("/" is the one folder whose
     * absolute path ends with a slash). */
    struct walk w = {.j = j, .rel = plen + (plen > 0 && path[plen - 1] == '/' ? 0 : 1)};
    if (sbx_takeout_index_new(&w.ix) != 0) w.ix = NULL;
    size_t first = j->n_found;
    walk(&w, path, 0);
    if (w.ix && sbx_takeout_index_finish(w.ix) == 0 && sbx_takeout_index_root(w.ix) &&
        sbx_takeout_index_media_count(w.ix) > 0) {
        sbx_takeout_index **nf = realloc(j->fix, (j->n_fix + 1) * sizeof *nf);
        if (!nf) {
            sbx_takeout_index_free(w.ix);
            return SBX_ENOMEM;
        }
        j->fix = nf;
        j->fix[j->n_fix] = w.ix;
        for (size_t i = first; i < j->n_found; i++) {
            j->found[i].tk = (int)j->n_fix;
            j->found[i].rel = w.rel;
        }
        j->n_fix++;
        sbx_info("import: %s holds a Google Takeout (root %s)", path, sbx_takeout_index_root(w.ix));
    } else {
        sbx_takeout_index_free(w.ix);
    }
    return w.rc;
}

static const char ORPHAN_REASON[] = "Takeout sidecar without its photo or video (the media file is not in the archive)";

static void do_found(struct wctx *c, const struct found *f)
{
    struct job *j = c->j;
    if (f->err) {
        skip_item(c, f->path, 0, 0, f->err);
        return;
    }
    if (file_done(c, f->path, f->size, f->mtime_ms)) return;
    const char *base = base_of(f->path);
    struct sbx_takeout_media tm;
    const sbx_takeout_index *ix = f->tk >= 0 ? j->fix[f->tk] : NULL;
    bool takeout = false;
    if (ix) {
        const char *rel = f->path + f->rel;
        if (sbx_takeout_index_find(ix, rel, &tm) == 0) {
            takeout = true;
        } else if (sbx_takeout_is_json_name(base, strlen(base))) {
            /* Sidecars and album metadata were read by the index. */
            if (sbx_takeout_index_is_orphan(ix, rel)) skip_item(c, f->path, f->size, f->mtime_ms, ORPHAN_REASON);
            return;
        }
    }
    if (!takeout && (base[0] == '.' || sbx_takeout_is_json_name(base, strlen(base)))) {
        /* Hidden files (.DS_Store, ._IMG_1.JPG) and stray JSON: not media,
         * nothing to say about them. */
        skip_item(c, f->path, f->size, f->mtime_ms, NULL);
        return;
    }
    struct media_src s = {
        .key = f->path, .base = base, .size = f->size, .mtime_ms = f->mtime_ms, .has_mtime = true,
        .tm = takeout ? &tm : NULL, .ix = ix,
    };
    do_file(c, &s, f->path);
}

/* ------------------------------------------------------------------ */
/* Worker: Takeout zips                                                 */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void do_zips(struct wctx *c)
{
    struct job *j = c->j;
    sbx_takeout_reader *r = NULL;
    sbx_takeout_index *ix = NULL;
    qsort(j->zips, j->n_zips, sizeof *j->zips, cmp_str);
    int rc = sbx_takeout_reader_open(&r, (const char *const *)j->zips, j->n_zips);
    if (rc == 0) rc = sbx_takeout_index_new(&ix);
    if (rc == 0) rc = sbx_takeout_scan(r, ix);
    if (rc != 0) {
        const char *why = r ? sbx_takeout_reader_error(r) : "";
        char reason[600];
        snprintf(reason, sizeof reason, "cannot read the Takeout: %s%s%s", sbx_strerror(rc), why[0] ? ": " : "", why);
        for (size_t i = 0; i < j->n_zips; i++) skip_item(c, j->zips[i], 0, 0, reason);
        goto out;
    }
    struct sbx_takeout_stats stats;
    sbx_takeout_index_stats(ix, &stats);
    int64_t media_bytes = 0;
    for (size_t i = 0; i < sbx_takeout_index_media_count(ix); i++) {
        struct sbx_takeout_media m;
        if (sbx_takeout_index_media(ix, i, &m) == 0) media_bytes += (int64_t)m.size;
    }
    uv_mutex_lock(&j->mu);
    j->files_total += (int64_t)stats.entries;
    j->bytes_total += media_bytes;
    j->phase = "importing";
    uv_mutex_unlock(&j->mu);
    sbx_info("import: Takeout of %zu part(s): %zu entries, %zu media, %zu albums, %zu unmatched, %zu orphan sidecars",
             j->n_zips, stats.entries, stats.media, stats.albums, stats.unmatched_media, stats.orphan_sidecars);

    struct sbx_takeout_entry e;
    while (!is_cancelled(j) && (rc = sbx_takeout_reader_next(r, &e)) == 0) {
        int64_t mtime_ms = e.mtime_known ? e.mtime * 1000 : 0;
        int64_t size = (int64_t)e.size;
        struct sbx_takeout_media tm;
        bool media = sbx_takeout_index_find(ix, e.path, &tm) == 0;
        const char *base = base_of(e.path);
        int64_t counted = 0;
        if (media && tm.part != e.part) {
            /* The same path in two parts is one file: the first part's. */
        } else if (!media && sbx_takeout_is_json_name(base, strlen(base))) {
            if (sbx_takeout_index_is_orphan(ix, e.path) && !file_done(c, e.path, size, mtime_ms))
                skip_item(c, e.path, size, mtime_ms, ORPHAN_REASON);
        } else if (file_done(c, e.path, size, mtime_ms)) {
            counted = media ? size : 0;
        } else if (base[0] == '.') {
            skip_item(c, e.path, size, mtime_ms, NULL);
        } else {
            struct media_src s = {
                .key = e.path, .base = base, .size = size, .mtime_ms = mtime_ms, .has_mtime = e.mtime_known,
                .tm = media ? &tm : NULL, .ix = ix,
            };
            do_entry(c, r, &s);
            counted = media ? size : 0;
        }
        progress_add(j, 1, counted);
        maybe_submit(j);
    }
    if (rc != 0 && rc != SBX_ENOENT && !is_cancelled(j)) {
        char reason[600];
        snprintf(reason, sizeof reason, "the Takeout could not be read to the end: %s", sbx_takeout_reader_error(r));
        skip_item(c, j->zips[0], 0, 0, reason);
    }
out:
    sbx_takeout_index_free(ix);
    sbx_takeout_reader_free(r);
}

/* ------------------------------------------------------------------ */
/* Worker thread                                                        */

static int open_worker_stores(struct job *j, char *err, size_t errsz)
{
    struct sbx_importer *im = j->im;
    int rc = sbx_datadir_open_workers(im->d->data_dir, im->d->store, j->n_threads, im->wstore, im->wblobs,
                                      err, errsz);
    for (size_t i = 0; i < j->n_threads && rc == 0; i++) {
        struct wctx *c = &j->ctx[i];
        c->j = j;
        c->store = im->wstore[i];
        c->blobs = im->wblobs[i];
        if (!(c->rbuf = malloc(READ_BUF))) rc = SBX_ENOMEM;
    }
    return rc;
}

/* Claims the files of the current range one by one until it is used up
 * or a second old. */
static void process_range(struct wctx *c)
{
    struct job *j = c->j;
    struct pool *p = &j->pool;
    /* The originals this thread stores in the range are made durable
     * together when it ends, before the batch goes to the loop: a few
     * journal commits and one blob-row transaction for the range instead
     * of several per file (shoebox/blob.h). Without a batch (out of
     * memory) every put is durable on its own. */
    bool batch = sbx_blob_batch_begin(c->blobs) == 0;
    for (;;) {
        uv_mutex_lock(&p->m);
        if (!p->closed && (p->next >= p->end || is_cancelled(j) ||
                           (p->next > p->base && sbx_now_ms() - p->opened_ms >= BATCH_MS)))
            p->closed = true;
        if (p->closed) {
            uv_mutex_unlock(&p->m);
            if (batch) store_failed(c, sbx_blob_batch_commit(c->blobs));
            return;
        }
        size_t i = p->next++;
        struct batch *b = p->b;
        uv_mutex_unlock(&p->m);
        c->slot = &b->items[i - p->base];
        do_found(c, &j->found[i]);
        c->slot = NULL;
        progress_add(j, 1, j->found[i].size);
    }
}

static void helper_main(void *arg)
{
    struct wctx *c = arg;
    struct pool *p = &c->j->pool;
    uint64_t seen = 0;
    uv_mutex_lock(&p->m);
    for (;;) {
        while (p->gen == seen && !p->quit) uv_cond_wait(&p->go, &p->m);
        if (p->quit) break;
        seen = p->gen;
        uv_mutex_unlock(&p->m);
        process_range(c);
        uv_mutex_lock(&p->m);
        if (--p->running == 0) uv_cond_signal(&p->idle);
    }
    uv_mutex_unlock(&p->m);
}

/* The files found in folders, batch by batch, on every processing thread. */
static void process_found(struct job *j)
{
    struct pool *p = &j->pool;
    uv_mutex_init(&p->m);
    uv_cond_init(&p->go);
    uv_cond_init(&p->idle);
    for (size_t i = 1; i < j->n_threads; i++) {
        if (uv_thread_create(&p->th[p->n], helper_main, &j->ctx[i]) != 0) break;
        p->n++;
    }
    for (size_t base = 0; base < j->n_found && !is_cancelled(j);) {
        struct batch *b = batch_new();
        if (!b) {
            worker_fail(j, SBX_ENOMEM, "out of memory%s: %s", "");
            break;
        }
        /* At most a batch of files and of bytes. */
        size_t end = base;
        uint64_t bytes = 0;
        while (end < j->n_found && end - base < BATCH_FILES && (end == base || bytes < BATCH_BYTES))
            bytes += (uint64_t)j->found[end++].size;
        uv_mutex_lock(&p->m);
        p->b = b;
        p->base = p->next = base;
        p->end = end;
        p->opened_ms = sbx_now_ms();
        p->closed = false;
        p->running = p->n;
        p->gen++;
        uv_cond_broadcast(&p->go);
        uv_mutex_unlock(&p->m);
        process_range(&j->ctx[0]);
        uv_mutex_lock(&p->m);
        while (p->running > 0) uv_cond_wait(&p->idle, &p->m);
        b->n = p->next - base;
        base = p->next;
        uv_mutex_unlock(&p->m);
        hand_over(j, b);
    }
    uv_mutex_lock(&p->m);
    p->quit = true;
    uv_cond_broadcast(&p->go);
    uv_mutex_unlock(&p->m);
    for (size_t i = 0; i < p->n; i++) uv_thread_join(&p->th[i]);
    uv_cond_destroy(&p->idle);
    uv_cond_destroy(&p->go);
    uv_mutex_destroy(&p->m);
}

static void worker_main(void *arg)
{
    struct job *j = arg;
    char err[256] = "";
    int rc = open_worker_stores(j, err, sizeof err);
    if (rc != 0) {
        worker_fail(j, rc, "cannot open the library for the import: %s%s", err);
        goto done;
    }
    if (!(j->cur = batch_new())) {
        worker_fail(j, SBX_ENOMEM, "out of memory%s: %s", "");
        goto done;
    }
    for (size_t i = 0; i < j->n_paths && !is_cancelled(j); i++) {
        if ((rc = collect(j, j->paths[i])) != 0) {
            worker_fail(j, rc, "cannot list the files to import%s: %s", "");
            goto done;
        }
    }
    int64_t bytes = 0;
    for (size_t i = 0; i < j->n_found; i++) bytes += j->found[i].size;
    uv_mutex_lock(&j->mu);
    j->files_total = (int64_t)j->n_found;
    j->bytes_total = bytes;
    j->phase = "importing";
    uv_mutex_unlock(&j->mu);
    process_found(j);
    /* A zip is one stream: its members go one after the other. */
    j->ctx[0].serial = true;
    if (j->n_zips && !is_cancelled(j)) {
        uv_mutex_lock(&j->mu);
        j->phase = "scanning";
        uv_mutex_unlock(&j->mu);
        do_zips(&j->ctx[0]);
    }
    if (!is_cancelled(j)) submit(j);
done:
    batch_free(j->cur);
    j->cur = NULL;
    uv_mutex_lock(&j->mu);
    j->worker_done = true;
    uv_mutex_unlock(&j->mu);
    uv_async_send(&j->async);
}

/* ------------------------------------------------------------------ */
/* Loop: applying a batch                                               */

static const char SQL_ROW_UPSERT[] =
    "INSERT INTO import_job_files(job_id, path, state, error, size_bytes, mtime) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT(job_id, path) DO UPDATE SET state = excluded.state, error = excluded.error, "
    "size_bytes = excluded.size_bytes, mtime = excluded.mtime";
static const char SQL_ROW_STATE[] = "SELECT state FROM import_job_files WHERE job_id = ?1 AND path = ?2";
static const char SQL_JOB_PROGRESS[] =
    "UPDATE import_jobs SET files_done = files_done + ?2, bytes_done = bytes_done + ?3, imported = imported + ?4, "
    "duplicates = duplicates + ?5, skipped = skipped + ?6, errors = errors + ?7, files_total = ?8, "
    "bytes_total = ?9, updated_at = ?10 WHERE id = ?1";
static const char SQL_HELD_BY_ME[] =
    "SELECT 1 FROM blob_holders h JOIN authors a ON a.ix = h.holder_ix WHERE h.hash = ?1 AND a.key = ?2 "
    "AND h.held = 1";
static const char SQL_ALBUM_EXISTS[] = "SELECT 1 FROM albums WHERE id = ?1 AND create_hlc IS NOT NULL";
static const char SQL_ITEM_PRESENT[] =
    "SELECT 1 FROM album_items WHERE album_id = ?1 AND photo_id = ?2 AND present = 1";
static const char SQL_QUEUE_RENDER[] =
    "INSERT OR IGNORE INTO render_queue(photo_id, queued_at, updated_at) VALUES (?1, ?2, ?2)";

static bool row_applying(struct job *j, const char *key)
{
    sqlite3_stmt *st = sbx_store_stmt(j->d->store, SQL_ROW_STATE);
    if (!st) return false;
    sqlite3_bind_blob(st, 1, j->id, SBX_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    bool applying = sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "applying") == 0;
    sqlite3_reset(st);
    return applying;
}

static bool exists_2(sbx_store *s, const char *sql, const void *a, int alen, const void *b, int blen)
{
    sqlite3_stmt *st = sbx_store_stmt(s, sql);
    if (!st) return false;
    sqlite3_bind_blob(st, 1, a, alen, SQLITE_STATIC);
    if (b) sqlite3_bind_blob(st, 2, b, blen, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found;
}

static int write_rows(struct job *j, struct batch *b, bool applying_only)
{
    sbx_store *s = j->d->store;
    int rc = sbx_store_begin(s);
    if (rc != 0) return rc;
    int64_t files = 0, bytes = 0, counts[3] = {0, 0, 0}, errors = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        struct item *it = &b->items[i];
        if (!it->key) continue; /* a file with nothing to record (a sidecar, a file done before) */
        if (applying_only && !it->write) continue;
        sqlite3_stmt *st = sbx_store_stmt(s, SQL_ROW_UPSERT);
        if (!st) { rc = SBX_EDB; break; }
        sqlite3_bind_blob(st, 1, j->id, SBX_ID_BYTES, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, it->key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, applying_only ? "applying" : state_names[it->state], -1, SQLITE_STATIC);
        if (!applying_only && it->reason) sqlite3_bind_text(st, 4, it->reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, it->size);
        sqlite3_bind_int64(st, 6, it->mtime_ms);
        int sr = sqlite3_step(st);
        sqlite3_reset(st);
        if (sr != SQLITE_DONE) rc = sbx_store_err(sr);
        /* Queued with its `applying` row, before the photo is written: the
         * renderer takes only rows whose photo is in the library, and a row
         * whose photo never came is dropped at the next start (the resumed
         * import queues it again). */
        if (rc == 0 && applying_only && it->render) {
            if (!(st = sbx_store_stmt(s, SQL_QUEUE_RENDER))) {
                rc = SBX_EDB;
                break;
            }
            sqlite3_bind_blob(st, 1, it->id, SBX_ID_BYTES, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, sbx_now_ms());
            sr = sqlite3_step(st);
            sqlite3_reset(st);
            if (sr != SQLITE_DONE) rc = sbx_store_err(sr);
        }
        files++;
        bytes += it->size;
        counts[it->state]++;
        if (it->reason) errors++;
    }
    if (rc == 0 && !applying_only) {
        uv_mutex_lock(&j->mu);
        int64_t files_total = j->files_total, bytes_total = j->bytes_total;
        uv_mutex_unlock(&j->mu);
        sqlite3_stmt *st = sbx_store_stmt(s, SQL_JOB_PROGRESS);
        if (!st) rc = SBX_EDB;
        if (st) {
            sqlite3_bind_blob(st, 1, j->id, SBX_ID_BYTES, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, files);
            sqlite3_bind_int64(st, 3, bytes);
            sqlite3_bind_int64(st, 4, counts[ST_IMPORTED]);
            sqlite3_bind_int64(st, 5, counts[ST_DUPLICATE]);
            sqlite3_bind_int64(st, 6, counts[ST_SKIPPED]);
            sqlite3_bind_int64(st, 7, errors);
            sqlite3_bind_int64(st, 8, files_total);
            sqlite3_bind_int64(st, 9, bytes_total);
            sqlite3_bind_int64(st, 10, sbx_now_ms());
            int sr = sqlite3_step(st);
            sqlite3_reset(st);
            if (sr != SQLITE_DONE) rc = sbx_store_err(sr);
        }
    }
    if (rc == 0) rc = sbx_store_commit(s);
    if (rc != 0) sbx_store_rollback(s);
    return rc;
}

struct ops {
    struct sbx_op *v;
    size_t n, cap;
};

static struct sbx_op *op_new(struct ops *o, enum sbx_op_type type, const uint8_t id[SBX_ID_BYTES])
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 512;
        struct sbx_op *nv = realloc(o->v, cap * sizeof *nv);
        if (!nv) return NULL;
        o->v = nv;
        o->cap = cap;
    }
    struct sbx_op *op = &o->v[o->n++];
    memset(op, 0, sizeof *op);
    op->type = type;
    if (id) memcpy(op->id, id, SBX_ID_BYTES);
    return op;
}

static struct sbx_op *photo_set(struct ops *o, const struct item *it, enum sbx_photo_field field)
{
    struct sbx_op *op = op_new(o, SBX_OP_PHOTO_SET, it->id);
    if (op) op->field = field;
    return op;
}

/* The photos' ops, in file order: put, Takeout flags, the original held
 * here, and a delete for what Google had in its trash. The renditions come
 * later, from the renderer. */
static int photo_ops(struct job *j, struct batch *b, struct ops *o)
{
    const uint8_t *me = j->d->id.pk;
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        if (!it->photo) continue;
        struct sbx_op *op;
        if (it->write) {
            if (!(op = op_new(o, SBX_OP_PHOTO_PUT, it->id))) return SBX_ENOMEM;
            op->facts = it->facts;
            if (it->favorite) {
                if (!(op = photo_set(o, it, SBX_PF_FAVORITE))) return SBX_ENOMEM;
                op->value.b = true;
            }
            if (it->archived) {
                if (!(op = photo_set(o, it, SBX_PF_ARCHIVED))) return SBX_ENOMEM;
                op->value.b = true;
            }
            if (it->description) {
                if (!(op = photo_set(o, it, SBX_PF_DESCRIPTION))) return SBX_ENOMEM;
                op->value.str = (struct sbx_str){it->description, (uint32_t)strlen(it->description)};
            }
        }
        /* Peers learn that this device holds the original (the transfer
         * layer reads it), once per hash. */
        bool announced = exists_2(j->d->store, SQL_HELD_BY_ME, it->facts.hash, 32, me, 32);
        for (size_t k = 0; k < o->n && !announced; k++)
            announced = o->v[k].type == SBX_OP_BLOB_HELD && memcmp(o->v[k].hash, it->facts.hash, 32) == 0;
        if (!announced) {
            if (!(op = op_new(o, SBX_OP_BLOB_HELD, NULL))) return SBX_ENOMEM;
            memcpy(op->hash, it->facts.hash, 32);
        }
        /* Imported as deleted, so it can be restored: only what this
         * import adds, never a photo the library already had. */
        if (it->write && it->trashed && !(op = op_new(o, SBX_OP_PHOTO_DELETE, it->id))) return SBX_ENOMEM;
    }
    return 0;
}

static int album_ops(struct job *j, struct batch *b)
{
    struct ops o = {0};
    int rc = 0;
    sbx_store *s = j->d->store;
    /* Creates first (one write), then the adds, at most an entry's worth of
     * ops per write. */
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        struct item *it = &b->items[i];
        if (!it->in_album || !it->photo) continue;
        bool known = exists_2(s, SQL_ALBUM_EXISTS, it->album_id, SBX_ID_BYTES, NULL, 0);
        for (size_t k = 0; k < o.n && !known; k++) known = memcmp(o.v[k].id, it->album_id, SBX_ID_BYTES) == 0;
        if (known) continue;
        struct sbx_op *op = op_new(&o, SBX_OP_ALBUM_CREATE, it->album_id);
        if (!op) rc = SBX_ENOMEM;
        else op->name = (struct sbx_str){it->album_title, (uint32_t)strlen(it->album_title)};
    }
    if (rc == 0 && o.n) rc = sbx_engine_write(j->d->engine, o.v, o.n, sbx_now_ms());
    o.n = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        struct item *it = &b->items[i];
        if (!it->in_album || !it->photo || it->state == ST_SKIPPED) continue;
        if (exists_2(s, SQL_ITEM_PRESENT, it->album_id, SBX_ID_BYTES, it->id, SBX_ID_BYTES)) continue;
        bool dup = false;
        for (size_t k = 0; k < o.n && !dup; k++)
            dup = memcmp(o.v[k].id, it->album_id, SBX_ID_BYTES) == 0 && memcmp(o.v[k].ref, it->id, SBX_ID_BYTES) == 0;
        if (dup) continue;
        struct sbx_op *op = op_new(&o, SBX_OP_ALBUM_ADD, it->album_id);
        if (!op) {
            rc = SBX_ENOMEM;
            break;
        }
        memcpy(op->ref, it->id, SBX_ID_BYTES);
        if (o.n == SBX_MAX_OPS_PER_ENTRY) {
            rc = sbx_engine_write(j->d->engine, o.v, o.n, sbx_now_ms());
            o.n = 0;
        }
    }
    if (rc == 0 && o.n) rc = sbx_engine_write(j->d->engine, o.v, o.n, sbx_now_ms());
    free(o.v);
    return rc;
}

static void apply(struct job *j, struct batch *b)
{
    bool any_write = false;
    /* The loop decides for good: the worker's duplicate check was a hint. */
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        if (!it->photo) continue;
        bool in_library = photo_in_store(j->d->store, it->id);
        bool earlier = false;
        for (size_t k = 0; k < i && !earlier; k++)
            earlier = b->items[k].write && memcmp(b->items[k].id, it->id, SBX_ID_BYTES) == 0;
        if (!in_library && !earlier) {
            it->state = ST_IMPORTED;
            it->write = true;
            any_write = true;
        } else if (in_library && j->resumed && row_applying(j, it->key)) {
            /* A killed run of this job wrote it: imported, not a duplicate. */
            it->state = ST_IMPORTED;
        } else {
            it->state = ST_DUPLICATE;
        }
        if (it->state == ST_DUPLICATE) {
            /* Notes about dates describe an import; a duplicate has none. */
            free(it->reason);
            it->reason = NULL;
        }
    }
    struct ops o = {0};
    int rc = any_write ? write_rows(j, b, true) : 0;
    const char *what = "record the import's progress";
    if (rc == 0) {
        what = "write the photos";
        rc = photo_ops(j, b, &o);
        if (rc == 0 && o.n) rc = sbx_engine_write(j->d->engine, o.v, o.n, sbx_now_ms());
        /* Test hook: dies where a kill hurts most, between the photos'
         * transaction and the job's rows (docs/import.md). */
        if (rc == 0 && o.n && j->exit_after > 0 && ++j->photo_writes == j->exit_after) {
            sbx_warn("import: SHOEBOX_TEST_IMPORT_EXIT_AFTER_WRITE reached, exiting");
            _exit(137);
        }
    }
    free(o.v);
    if (rc == 0) {
        what = "write the albums";
        rc = album_ops(j, b);
    }
    if (rc == 0) {
        what = "record the import's progress";
        rc = write_rows(j, b, false);
    }
    if (rc != 0) {
        j->fatal = rc;
        snprintf(j->fatal_msg, sizeof j->fatal_msg, "import stopped: cannot %s: %s", what, sbx_strerror(rc));
        sbx_error("%s", j->fatal_msg);
        atomic_store(&j->cancel, true);
    }
}

/* ------------------------------------------------------------------ */
/* Loop: job lifecycle                                                  */

static const char SQL_JOB_FIND[] =
    "SELECT id FROM import_jobs WHERE paths = ?1 AND status <> 'done' ORDER BY created_at DESC LIMIT 1";
static const char SQL_JOB_INSERT[] =
    "INSERT INTO import_jobs(id, status, paths, created_at, updated_at) VALUES (?1, 'running', ?2, ?3, ?3)";
static const char SQL_JOB_RESUME[] =
    "UPDATE import_jobs SET status = 'running', error = NULL, updated_at = ?2 WHERE id = ?1";
static const char SQL_JOB_END[] =
    "UPDATE import_jobs SET status = ?2, error = ?3, updated_at = ?4, "
    "finished_at = CASE WHEN ?2 = 'done' THEN ?4 ELSE NULL END WHERE id = ?1";
static const char SQL_JOB_PRUNE[] = "DELETE FROM import_job_files WHERE job_id = ?1 AND error IS NULL";
static const char SQL_JOB_SUMMARY[] =
    "SELECT imported, duplicates, skipped, files_done, bytes_done FROM import_jobs WHERE id = ?1";
static const char SQL_JOB_ERRORS[] =
    "SELECT path, error FROM import_job_files WHERE job_id = ?1 AND error IS NOT NULL ORDER BY path LIMIT ?2";

/* The job's row says how it ended ('done' or 'failed', with a message). */
static void job_record_end(sbx_store *s, const uint8_t id[SBX_ID_BYTES], const char *status, const char *msg)
{
    sqlite3_stmt *st = sbx_store_stmt(s, SQL_JOB_END);
    if (!st) return;
    sqlite3_bind_blob(st, 1, id, SBX_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    if (msg && msg[0]) sqlite3_bind_text(st, 3, msg, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, sbx_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) sbx_error("import: cannot record the end of the job");
    sqlite3_reset(st);
}

static json_t *clean_json_string(const char *s)
{
    size_t n = strlen(s ? s : "");
    char *c = dup_clean(s, n, 3 * n);
    json_t *v = json_string(c ? c : "");
    free(c);
    return v;
}

static json_t *job_summary(struct job *j)
{
    sbx_store *s = j->d->store;
    json_t *errors = json_array();
    sqlite3_stmt *st = sbx_store_stmt(s, SQL_JOB_ERRORS);
    if (st) {
        sqlite3_bind_blob(st, 1, j->id, SBX_ID_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, SBX_MAX_IMPORT_ERRORS_SHOWN);
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *e = json_object();
            json_object_set_new(e, "path", clean_json_string((const char *)sqlite3_column_text(st, 0)));
            json_object_set_new(e, "reason", clean_json_string((const char *)sqlite3_column_text(st, 1)));
            json_array_append_new(errors, e);
        }
        sqlite3_reset(st);
    }
    int64_t v[5] = {0, 0, 0, 0, 0};
    st = sbx_store_stmt(s, SQL_JOB_SUMMARY);
    if (st) {
        sqlite3_bind_blob(st, 1, j->id, SBX_ID_BYTES, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            for (int i = 0; i < 5; i++) v[i] = sqlite3_column_int64(st, i);
        sqlite3_reset(st);
    }
    char id[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(id, j->id);
    return json_pack("{s:I, s:I, s:I, s:o, s:I, s:I, s:s, s:b}", "imported", (json_int_t)v[0], "duplicates",
                     (json_int_t)v[1], "skipped", (json_int_t)v[2], "errors", errors, "files", (json_int_t)v[3],
                     "bytes", (json_int_t)v[4], "job_id", id, "resumed", j->resumed);
}

static void job_free(struct job *j)
{
    for (size_t i = 0; i < j->n_paths; i++) free(j->paths[i]);
    free(j->paths);
    for (size_t i = 0; i < j->n_found; i++) {
        free(j->found[i].path);
        free(j->found[i].err);
    }
    free(j->found);
    for (size_t i = 0; i < j->n_zips; i++) free(j->zips[i]);
    free(j->zips);
    for (size_t i = 0; i < j->n_fix; i++) sbx_takeout_index_free(j->fix[i]);
    free(j->fix);
    for (size_t i = 0; i < SBX_MAX_IMPORT_THREADS; i++) {
        free(j->ctx[i].rbuf);
        free(j->ctx[i].pbuf);
    }
    batch_free(j->handed);
    batch_free(j->cur);
    uv_mutex_destroy(&j->mu);
    uv_cond_destroy(&j->cv);
    free(j);
}

static void on_async_closed(uv_handle_t *h) { job_free(h->data); }

static void job_end(struct job *j)
{
    uv_thread_join(&j->thread);
    struct sbx_importer *im = j->im;
    sbx_store *s = j->d->store;
    const char *status = "done";
    char msg[400] = "";
    if (j->fatal) {
        status = "failed";
        snprintf(msg, sizeof msg, "%s", j->fatal_msg);
    } else if (j->worker_rc) {
        status = "failed";
        snprintf(msg, sizeof msg, "import stopped: %s", j->worker_err);
    } else if (is_cancelled(j)) {
        status = "failed";
        snprintf(msg, sizeof msg, "import interrupted: the daemon is stopping");
    }
    int64_t now = sbx_now_ms();
    sqlite3_stmt *st;
    job_record_end(s, j->id, status, msg);
    json_t *resp;
    if (strcmp(status, "done") == 0) {
        json_t *summary = job_summary(j);
        /* The rows served the resume; only the reported ones stay. */
        st = sbx_store_stmt(s, SQL_JOB_PRUNE);
        if (st) {
            sqlite3_bind_blob(st, 1, j->id, SBX_ID_BYTES, SQLITE_STATIC);
            sqlite3_step(st);
            sqlite3_reset(st);
        }
        sbx_info("import: %lld imported, %lld duplicates, %lld skipped, %zu errors in %.1f s",
                 (long long)json_integer_value(json_object_get(summary, "imported")),
                 (long long)json_integer_value(json_object_get(summary, "duplicates")),
                 (long long)json_integer_value(json_object_get(summary, "skipped")),
                 json_array_size(json_object_get(summary, "errors")), (double)(now - j->started_ms) / 1000.0);
        resp = json_pack("{s:b, s:o}", "ok", 1, "result", summary);
    } else {
        char full[512];
        snprintf(full, sizeof full, "%s; run the same import again to resume it", msg);
        sbx_warn("%s", full);
        resp = json_pack("{s:b, s:s}", "ok", 0, "error", full);
    }
    sbx_control_answer(j->reply, resp);
    j->reply = NULL;
    im->job = NULL;
    /* The renderer waited for the import to end (daemon/render.c). */
    sbx_render_kick(j->d);
    uv_close((uv_handle_t *)&j->async, on_async_closed);
}

static void on_async(uv_async_t *a)
{
    struct job *j = a->data;
    uv_mutex_lock(&j->mu);
    struct batch *b = j->handed;
    uv_mutex_unlock(&j->mu);
    if (b) {
        if (!j->fatal) apply(j, b);
        uv_mutex_lock(&j->mu);
        j->handed = NULL;
        uv_cond_signal(&j->cv);
        uv_mutex_unlock(&j->mu);
        batch_free(b);
    }
    uv_mutex_lock(&j->mu);
    bool end = j->worker_done && !j->handed;
    uv_mutex_unlock(&j->mu);
    if (end) job_end(j);
}


int sbx_import_start(struct sbx_daemon *d, json_t *paths, sbx_control_pending *reply, char *err, size_t errsz)
{
    struct sbx_importer *im = d->importer;
    if (!im) {
        snprintf(err, errsz, "imports are not available");
        return SBX_ESTATE;
    }
    if (im->job) {
        uv_mutex_lock(&im->job->mu);
        snprintf(err, errsz, "an import is already running (%lld of %lld files); shoebox status shows its progress",
                 (long long)im->job->files_done, (long long)im->job->files_total);
        uv_mutex_unlock(&im->job->mu);
        return SBX_EBUSY;
    }
    size_t n = json_array_size(paths);
    if (n == 0 || n > SBX_MAX_IMPORT_PATHS) {
        snprintf(err, errsz, "give 1 to %u paths to import", SBX_MAX_IMPORT_PATHS);
        return SBX_EINVAL;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j || !(j->paths = calloc(n, sizeof *j->paths))) {
        free(j);
        snprintf(err, errsz, "out of memory");
        return SBX_ENOMEM;
    }
    uv_mutex_init(&j->mu);
    uv_cond_init(&j->cv);
    j->im = im;
    j->d = d;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = json_string_value(json_array_get(paths, i));
        if (!p || p[0] != '/' || strlen(p) >= 4096) {
            snprintf(err, errsz, "import paths must be absolute");
            rc = SBX_EINVAL;
            goto fail;
        }
        /* The same path twice is one. */
        bool seen = false;
        for (size_t k = 0; k < j->n_paths && !seen; k++) seen = strcmp(j->paths[k], p) == 0;
        if (seen) continue;
        if (!(j->paths[j->n_paths] = strdup(p))) { rc = SBX_ENOMEM; goto fail; }
        j->n_paths++;
    }
    /* A job is named by its sorted paths: the same import run again, in
     * any order, resumes it. */
    qsort(j->paths, j->n_paths, sizeof *j->paths, cmp_str);
    json_t *arr = json_array();
    for (size_t i = 0; i < j->n_paths; i++) json_array_append_new(arr, clean_json_string(j->paths[i]));
    char *key = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!key) { rc = SBX_ENOMEM; goto fail; }
    int64_t now = sbx_now_ms();
    sqlite3_stmt *st = sbx_store_stmt(d->store, SQL_JOB_FIND);
    if (!st) rc = SBX_EDB;
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == SBX_ID_BYTES) {
            memcpy(j->id, sqlite3_column_blob(st, 0), SBX_ID_BYTES);
            j->resumed = true;
        }
        sqlite3_reset(st);
    }
    if (rc == 0) {
        st = sbx_store_stmt(d->store, j->resumed ? SQL_JOB_RESUME : SQL_JOB_INSERT);
        if (!st) rc = SBX_EDB;
    }
    if (rc == 0) {
        if (!j->resumed) sbx_uuid_random(j->id);
        sqlite3_bind_blob(st, 1, j->id, SBX_ID_BYTES, SQLITE_STATIC);
        if (j->resumed) {
            sqlite3_bind_int64(st, 2, now);
        } else {
            sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, now);
        }
        int sr = sqlite3_step(st);
        sqlite3_reset(st);
        if (sr != SQLITE_DONE) rc = sbx_store_err(sr);
    }
    free(key);
    if (rc != 0) {
        snprintf(err, errsz, "cannot record the import job: %s", sbx_strerror(rc));
        goto fail;
    }
    memcpy(j->library, sbx_engine_library(d->engine), SBX_ID_BYTES);
    j->reply = reply;
    j->started_ms = now;
    j->phase = "scanning";
    const char *delay = getenv("SHOEBOX_TEST_IMPORT_DELAY_MS");
    if (delay) {
        long v = strtol(delay, NULL, 10);
        j->delay_ms = v > 0 && v < 60000 ? (int)v : 0;
    }
    /* Four processing threads per core (at most SBX_MAX_IMPORT_THREADS):
     * hashing and copying scale with cores, and each thread spends much of
     * its time waiting on the disk (its reads when the files are not
     * cached, its batch's fsyncs) while others compute. bench_import on 2
     * cores, same minutes: 4 threads 984-1108 MB/s hot and 568-627 cold,
     * 6 threads 1137 and 717, 8 threads 1163 and 739. */
    long cpus = 4 * sysconf(_SC_NPROCESSORS_ONLN);
    const char *th = getenv("SHOEBOX_IMPORT_THREADS");
    if (th) cpus = strtol(th, NULL, 10);
    j->n_threads = cpus < 1 ? 1 : cpus > (long)SBX_MAX_IMPORT_THREADS ? SBX_MAX_IMPORT_THREADS : (size_t)cpus;
    const char *ex = getenv("SHOEBOX_TEST_IMPORT_EXIT_AFTER_WRITE");
    if (ex) j->exit_after = strtol(ex, NULL, 10);
    atomic_init(&j->cancel, false);
    uv_async_init(d->loop, &j->async, on_async);
    j->async.data = j;
    if (uv_thread_create(&j->thread, worker_main, j) != 0) {
        snprintf(err, errsz, "cannot start the import thread");
        /* Its row, just made 'running', must not stay so. */
        job_record_end(d->store, j->id, "failed", err);
        uv_close((uv_handle_t *)&j->async, on_async_closed);
        return SBX_ENOMEM;
    }
    im->job = j;
    sbx_info("import %s: %zu path(s)%s", j->resumed ? "resumed" : "started", j->n_paths,
             j->delay_ms ? " (test delay on)" : "");
    return 0;

fail:
    if (rc == SBX_ENOMEM && !err[0]) snprintf(err, errsz, "out of memory");
    job_free(j);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Loop: daemon hooks and progress                                      */

int sbx_import_init(struct sbx_daemon *d)
{
    struct sbx_importer *im = calloc(1, sizeof *im);
    if (!im) return SBX_ENOMEM;
    im->d = d;
    d->importer = im;
    /* A job still "running" in the database belonged to a daemon that died
     * (kill -9, power loss): it can be resumed, it is not running. */
    return sbx_store_exec(d->store, "UPDATE import_jobs SET status = 'failed', "
                                    "error = 'interrupted: the daemon stopped during the import' "
                                    "WHERE status = 'running'");
}

void sbx_import_stop(struct sbx_daemon *d)
{
    struct sbx_importer *im = d->importer;
    if (!im || !im->job) return;
    struct job *j = im->job;
    atomic_store(&j->cancel, true);
    uv_mutex_lock(&j->mu);
    uv_cond_broadcast(&j->cv);
    uv_mutex_unlock(&j->mu);
}

void sbx_import_close(struct sbx_daemon *d)
{
    struct sbx_importer *im = d->importer;
    if (!im) return;
    /* The loop has ended, so any job has ended and been freed. */
    SBX_ASSERT(im->job == NULL);
    for (size_t i = 0; i < SBX_MAX_IMPORT_THREADS; i++) {
        sbx_blobstore_close(im->wblobs[i]);
        sbx_store_close(im->wstore[i]);
    }
    free(im);
    d->importer = NULL;
}

static json_t *job_json(struct job *j)
{
    char id[SBX_UUID_STRLEN + 1];
    sbx_uuid_format(id, j->id);
    json_t *paths = json_array();
    for (size_t i = 0; i < j->n_paths; i++) json_array_append_new(paths, clean_json_string(j->paths[i]));
    uv_mutex_lock(&j->mu);
    json_t *o = json_pack("{s:b, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:o, s:I, s:b}", "running", 1, "id", id,
                          "status", "running", "phase", j->phase, "paths", paths, "files_done",
                          (json_int_t)j->files_done, "files_total", (json_int_t)j->files_total, "bytes_done",
                          (json_int_t)j->bytes_done, "bytes_total", (json_int_t)j->bytes_total, "started_at",
                          sbx_json_time(j->started_ms), "elapsed_ms", (json_int_t)(sbx_now_ms() - j->started_ms),
                          "resumed", j->resumed);
    uv_mutex_unlock(&j->mu);
    return o;
}

bool sbx_import_running(struct sbx_daemon *d)
{
    return d->importer && d->importer->job;
}

json_t *sbx_import_progress_json(struct sbx_daemon *d)
{
    struct sbx_importer *im = d->importer;
    if (!im || !im->job) return json_pack("{s:b}", "running", 0);
    return job_json(im->job);
}

json_t *sbx_import_jobs_json(struct sbx_daemon *d)
{
    json_t *arr = json_array();
    struct sbx_importer *im = d->importer;
    if (im && im->job) {
        json_t *o = job_json(im->job);
        json_object_del(o, "running");
        json_array_append_new(arr, o);
    }
    return arr;
}
