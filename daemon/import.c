/* Import of files and folders: each media file is hashed (SHA-256 with
 * libcrypto), typed from its bytes, probed for EXIF, and becomes a photo.put
 * in the log. A hash already in the library is a duplicate and adds nothing.
 * Files are written to the library in batches: one engine write (a few
 * entries, one SQLite transaction) per batch. */
#include "daemon.h"

#include "shoebox/blob.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/media.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMPORT_BATCH 256u
#define IMPORT_MAX_DEPTH 64

struct pending_photo {
    struct sbx_op op;
    char file_name[256];
    char make[SBX_MEDIA_CAMERA_MAX];
    char model[SBX_MEDIA_CAMERA_MAX];
};

struct import {
    struct sbx_daemon *d;
    struct pending_photo batch[IMPORT_BATCH];
    unsigned n;
    int64_t imported, duplicates, skipped, files, bytes;
    json_t *errors;
    int fatal;
};

static void report(struct import *im, const char *path, const char *reason)
{
    json_array_append_new(im->errors, json_pack("{s:s, s:s}", "path", path, "reason", reason));
}

static int flush(struct import *im)
{
    if (im->n == 0) return 0;
    /* Each photo: its put, and the announcement that this device holds its
     * original (the backup peer fetches what someone holds). */
    static struct sbx_op ops[2 * IMPORT_BATCH];
    for (unsigned i = 0; i < im->n; i++) {
        ops[2 * i] = im->batch[i].op;
        ops[2 * i + 1] = (struct sbx_op){.type = SBX_OP_BLOB_HELD};
        memcpy(ops[2 * i + 1].hash, im->batch[i].op.facts.hash, 32);
    }
    int rc = sbx_engine_write(im->d->engine, ops, 2 * (size_t)im->n, sbx_now_ms());
    if (rc == 0) im->imported += im->n;
    im->n = 0;
    return rc;
}

static bool in_batch(struct import *im, const uint8_t id[16])
{
    for (unsigned i = 0; i < im->n; i++)
        if (memcmp(im->batch[i].op.id, id, 16) == 0) return true;
    return false;
}

static bool in_library(struct import *im, const uint8_t id[16])
{
    sqlite3_stmt *st = sbx_store_stmt(im->d->store, "SELECT 1 FROM photos WHERE id = ?1 AND put_hlc IS NOT NULL");
    if (!st) return false;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void import_file(struct import *im, const char *path, const struct stat *st)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t blen = strlen(base);
    /* Sidecars and hidden files are not media: the Takeout importer reads
     * sidecars itself. */
    if (base[0] == '.' || (blen > 5 && strcmp(base + blen - 5, ".json") == 0)) {
        im->skipped++;
        return;
    }
    im->files++;
    if (st->st_size == 0) {
        im->skipped++;
        report(im, path, "empty file");
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        im->skipped++;
        report(im, path, strerror(errno));
        return;
    }
    size_t len = (size_t)st->st_size;
    uint8_t *buf = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (buf == MAP_FAILED) {
        im->skipped++;
        report(im, path, strerror(errno));
        return;
    }
    madvise(buf, len, MADV_SEQUENTIAL);
    im->bytes += (int64_t)len;
    struct sbx_media_info info;
    int rc = sbx_media_probe(buf, len, &info);
    if (rc == SBX_EUNSUPPORTED) {
        im->skipped++;
        report(im, path, "not a photo or video (unknown file type)");
        goto out;
    }
    if (rc != 0) {
        im->skipped++;
        report(im, path, info.reason ? info.reason : sbx_strerror(rc));
        goto out;
    }
    struct pending_photo *p = &im->batch[im->n];
    memset(p, 0, sizeof *p);
    struct sbx_photo_facts *f = &p->op.facts;
    /* The blob store hashes as it stores (one pass) and keeps an original
     * it already holds as it is. */
    bool existed = false;
    int brc = sbx_blob_put_buf(im->d->blobs, buf, len, SBX_BLOB_ORIGINAL, f->hash, &existed);
    if (brc != 0) {
        if (brc == SBX_ENOSPC) im->fatal = brc;
        im->skipped++;
        report(im, path, brc == SBX_ENOSPC ? "disk full" : sbx_strerror(brc));
        goto out;
    }
    p->op.type = SBX_OP_PHOTO_PUT;
    sbx_photo_id_for_hash(sbx_engine_library(im->d->engine), f->hash, p->op.id);
    if (in_batch(im, p->op.id) || in_library(im, p->op.id)) {
        im->duplicates++;
        goto out;
    }
    copy_str(p->file_name, sizeof p->file_name, base);
    copy_str(p->make, sizeof p->make, info.make);
    copy_str(p->model, sizeof p->model, info.model);
    f->size_bytes = len;
    f->width = info.width;
    f->height = info.height;
    f->orientation = info.orientation;
    /* No capture time in the file: its modification time is the best
     * remaining guess (what the camera or phone wrote). */
    f->has_captured_at = true;
    f->captured_at_ms = info.has_captured_at ? info.captured_at_ms
                                             : (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
    f->has_location = info.has_gps;
    f->lat = info.latitude;
    f->lon = info.longitude;
    f->mime_type = (struct sbx_str){info.mime, (uint32_t)strlen(info.mime)};
    f->file_name = (struct sbx_str){p->file_name, (uint32_t)strlen(p->file_name)};
    f->camera_make = (struct sbx_str){p->make, (uint32_t)strlen(p->make)};
    f->camera_model = (struct sbx_str){p->model, (uint32_t)strlen(p->model)};
    im->n++;
    if (im->n == IMPORT_BATCH) im->fatal = flush(im);
out:
    munmap(buf, len);
}

static void walk(struct import *im, const char *path, int depth)
{
    struct stat st;
    if (im->fatal) return;
    if (stat(path, &st) != 0) {
        report(im, path, strerror(errno));
        return;
    }
    if (S_ISREG(st.st_mode)) {
        import_file(im, path, &st);
        return;
    }
    if (!S_ISDIR(st.st_mode)) return;
    if (depth >= IMPORT_MAX_DEPTH) {
        report(im, path, "folders nested too deep");
        return;
    }
    struct dirent **names = NULL;
    /* Sorted, so an import is deterministic and a resumed one walks the
     * same order. */
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        report(im, path, strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            char child[4096];
            if (snprintf(child, sizeof child, "%s/%s", path, name) < (int)sizeof child) walk(im, child, depth + 1);
            else report(im, path, "path too long");
        }
        free(names[i]);
    }
    free(names);
}

json_t *sbx_import_run(struct sbx_daemon *d, json_t *paths, char *err, size_t errsz)
{
    static struct import im; /* large; the daemon runs one import at a time */
    memset(&im, 0, sizeof im);
    im.d = d;
    im.errors = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(paths, i, p) {
        const char *path = json_string_value(p);
        if (!path || path[0] != '/') {
            snprintf(err, errsz, "import paths must be absolute");
            json_decref(im.errors);
            return NULL;
        }
        walk(&im, path, 0);
    }
    if (!im.fatal) im.fatal = flush(&im);
    if (im.fatal) {
        snprintf(err, errsz, "import stopped: cannot write to the library: %s", sbx_strerror(im.fatal));
        json_decref(im.errors);
        return NULL;
    }
    sbx_info("import: %lld imported, %lld duplicates, %lld skipped, %zu errors", (long long)im.imported,
             (long long)im.duplicates, (long long)im.skipped, json_array_size(im.errors));
    return json_pack("{s:I, s:I, s:I, s:o, s:I, s:I}", "imported", (json_int_t)im.imported, "duplicates",
                     (json_int_t)im.duplicates, "skipped", (json_int_t)im.skipped, "errors", im.errors, "files",
                     (json_int_t)im.files, "bytes", (json_int_t)im.bytes);
}
