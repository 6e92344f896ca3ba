/* Streaming reader over the zip parts of a Google Takeout (libarchive).
 *
 * Nothing is extracted to disk: entries are pulled one after the other and
 * their bytes read through a caller's buffer, so memory stays bounded
 * whatever the size of the parts. libarchive picks its seekable zip reader
 * for files, which reads the central directory: sizes are known up front
 * and skipping an entry is a seek, which keeps the first pass (names and
 * small JSON files only) fast. */
#include "shoebox/takeout.h"

#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbx_takeout_reader {
    char **parts;
    size_t nparts;
    size_t cur;              /* part being read */
    struct archive *a;       /* open archive of part `cur`, or NULL */
    struct archive_entry *ent;
    bool in_entry;           /* a current entry can be read */
    size_t yielded;          /* entries returned in this pass */
    size_t skipped;          /* unsafe names skipped in this pass */
    size_t skipped_max;      /* the most any pass skipped */
    char path[SBX_MAX_TAKEOUT_PATH + 1];
    char err[512];
    /* libarchive converts entry names to the current locale's charset;
     * under the C locale of a daemon, a name flagged UTF-8 (as Takeout's
     * are) with any non-ASCII character fails to convert and comes back
     * NULL. Each call into libarchive runs under a UTF-8 locale for this
     * thread only (uselocale), leaving the process locale alone. */
    locale_t utf8;
};

static locale_t enter(const sbx_takeout_reader *r)
{
    return r->utf8 ? uselocale(r->utf8) : (locale_t)0;
}

static void leave(const sbx_takeout_reader *r, locale_t old)
{
    if (r->utf8) uselocale(old);
}

bool sbx_takeout_sniff_zip(const uint8_t *head, size_t len)
{
    return len >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
}

int sbx_takeout_is_zip(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return sbx_err_from_errno(errno);
    uint8_t head[4];
    size_t n = fread(head, 1, sizeof head, f);
    int rc = ferror(f) ? SBX_EIO : (sbx_takeout_sniff_zip(head, n) ? 1 : 0);
    fclose(f);
    return rc;
}

static void set_err(sbx_takeout_reader *r, const char *what)
{
    const char *part = r->cur < r->nparts ? r->parts[r->cur] : "";
    const char *detail = r->a ? archive_error_string(r->a) : NULL;
    snprintf(r->err, sizeof r->err, "%s: %s%s%s", part, what, detail ? ": " : "",
             detail ? detail : "");
}

static void close_part(sbx_takeout_reader *r)
{
    locale_t old = enter(r);
    if (r->a) archive_read_free(r->a);
    leave(r, old);
    r->a = NULL;
    r->ent = NULL;
    r->in_entry = false;
}

void sbx_takeout_reader_free(sbx_takeout_reader *r)
{
    if (!r) return;
    close_part(r);
    for (size_t i = 0; i < r->nparts; i++) free(r->parts[i]);
    free(r->parts);
    if (r->utf8) freelocale(r->utf8);
    free(r);
}

int sbx_takeout_reader_open(sbx_takeout_reader **out, const char *const *parts,
                            size_t nparts)
{
    int rc = 0;
    *out = NULL;
    if (nparts == 0 || !parts) return SBX_EINVAL;
    if (nparts > SBX_MAX_TAKEOUT_PARTS) return SBX_ETOOBIG;
    sbx_takeout_reader *r = calloc(1, sizeof *r);
    if (!r) return SBX_ENOMEM;
    r->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    r->parts = calloc(nparts, sizeof *r->parts);
    if (!r->parts) { rc = SBX_ENOMEM; goto fail; }
    for (size_t i = 0; i < nparts; i++) {
        r->parts[i] = strdup(parts[i]);
        if (!r->parts[i]) { rc = SBX_ENOMEM; goto fail; }
        r->nparts++;
    }
    /* Check every part by content before the first pass starts, so a wrong
     * file is reported at once and not after an hour of reading. */
    for (size_t i = 0; i < nparts; i++) {
        int z = sbx_takeout_is_zip(parts[i]);
        if (z < 0) { rc = z == SBX_ENOENT ? SBX_ENOENT : SBX_EIO; goto fail; }
        if (z == 0) { rc = SBX_EUNSUPPORTED; goto fail; }
    }
    *out = r;
    return 0;

fail:
    sbx_takeout_reader_free(r);
    return rc;
}

static int open_part(sbx_takeout_reader *r)
{
    locale_t old = enter(r);
    int rc = 0;
    r->a = archive_read_new();
    if (!r->a) {
        rc = SBX_ENOMEM;
    } else if (archive_read_support_format_zip(r->a) != ARCHIVE_OK ||
               archive_read_open_filename(r->a, r->parts[r->cur], 1u << 16) != ARCHIVE_OK) {
        /* Zip only: Takeout zips are what is recognised; other formats are
         * not silently accepted. */
        set_err(r, "cannot open zip");
        rc = SBX_EIO;
    }
    leave(r, old);
    if (rc < 0) close_part(r);
    return rc;
}

int sbx_takeout_reader_next(sbx_takeout_reader *r, struct sbx_takeout_entry *e)
{
    r->in_entry = false;
    /* Each turn consumes one header or closes one part; the bound stops a
     * corrupt archive that would loop forever. */
    for (size_t guard = 0; guard < 2u * SBX_MAX_TAKEOUT_ENTRIES + SBX_MAX_TAKEOUT_PARTS; guard++) {
        if (!r->a) {
            if (r->cur >= r->nparts) return SBX_ENOENT;
            int rc = open_part(r);
            if (rc < 0) return rc;
        }
        locale_t old = enter(r);
        int ar = archive_read_next_header(r->a, &r->ent);
        const char *p = NULL;
        if (ar == ARCHIVE_OK || ar == ARCHIVE_WARN) {
            /* Names flagged UTF-8 come back as they are; an unflagged name
             * is kept if its bytes are valid UTF-8 anyway (checked below). */
            p = archive_entry_pathname_utf8(r->ent);
            if (!p) p = archive_entry_pathname(r->ent);
        }
        leave(r, old);
        if (ar == ARCHIVE_EOF) {
            close_part(r);
            r->cur++;
            continue;
        }
        if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
            set_err(r, "corrupt zip");
            close_part(r);
            return SBX_ECORRUPT;
        }
        if (archive_entry_filetype(r->ent) != AE_IFREG) continue;
        if (r->yielded + r->skipped >= SBX_MAX_TAKEOUT_ENTRIES) {
            set_err(r, "too many entries");
            return SBX_ETOOBIG;
        }
        if (!p) { r->skipped++; continue; }
        while (p[0] == '.' && p[1] == '/') p += 2;
        size_t len = strlen(p);
        /* The index's own rules, checked here so an unsafe name is skipped
         * with a count instead of failing the whole import. They also bound
         * len to what r->path holds. */
        if (sbx_takeout_check_path(p, len) < 0) { r->skipped++; continue; }
        memcpy(r->path, p, len + 1);
        e->path = r->path;
        e->size_known = archive_entry_size_is_set(r->ent) != 0;
        int64_t sz = archive_entry_size(r->ent);
        e->size = e->size_known && sz > 0 ? (uint64_t)sz : 0;
        e->part = (uint32_t)r->cur;
        e->mtime_known = archive_entry_mtime_is_set(r->ent) != 0;
        e->mtime = e->mtime_known ? (int64_t)archive_entry_mtime(r->ent) : 0;
        r->in_entry = true;
        r->yielded++;
        return 0;
    }
    set_err(r, "too many entries");
    return SBX_ETOOBIG;
}

int sbx_takeout_reader_read(sbx_takeout_reader *r, uint8_t *buf, size_t cap, size_t *got)
{
    *got = 0;
    if (!r->in_entry || !r->a) return SBX_ESTATE;
    if (cap == 0) return 0;
    locale_t old = enter(r);
    la_ssize_t n = archive_read_data(r->a, buf, cap);
    leave(r, old);
    if (n < 0) {
        bool enc = archive_entry_is_encrypted(r->ent);
        set_err(r, enc ? "encrypted entry" : "cannot read entry");
        r->in_entry = false;
        return enc ? SBX_EUNSUPPORTED : SBX_ECORRUPT;
    }
    *got = (size_t)n;
    return 0;
}

int sbx_takeout_reader_rewind(sbx_takeout_reader *r)
{
    close_part(r);
    r->cur = 0;
    r->yielded = 0;
    if (r->skipped > r->skipped_max) r->skipped_max = r->skipped;
    r->skipped = 0;
    r->err[0] = '\0';
    return 0;
}

const char *sbx_takeout_reader_error(const sbx_takeout_reader *r)
{
    return r->err;
}

size_t sbx_takeout_reader_skipped(const sbx_takeout_reader *r)
{
    /* Every pass sees the same entries: report the most one pass skipped. */
    return r->skipped > r->skipped_max ? r->skipped : r->skipped_max;
}

int sbx_takeout_scan(sbx_takeout_reader *r, sbx_takeout_index *ix)
{
    int rc;
    /* One buffer, one byte over the limit to tell "exactly at the limit"
     * from "above it". */
    uint8_t *buf = malloc(SBX_MAX_SIDECAR_BYTES + 1);
    if (!buf) return SBX_ENOMEM;
    if ((rc = sbx_takeout_reader_rewind(r)) < 0) goto fail;
    struct sbx_takeout_entry e;
    while ((rc = sbx_takeout_reader_next(r, &e)) == 0) {
        const uint8_t *json = NULL;
        size_t len = 0;
        if (sbx_takeout_is_json_name(e.path, strlen(e.path)) && (!e.size_known || e.size <= SBX_MAX_SIDECAR_BYTES)) {
            bool over = false;
            for (;;) {
                size_t got;
                if ((rc = sbx_takeout_reader_read(r, buf + len, SBX_MAX_SIDECAR_BYTES + 1 - len,
                                                  &got)) < 0)
                    goto fail;
                if (got == 0) break;
                len += got;
                if (len > SBX_MAX_SIDECAR_BYTES) { over = true; break; }
            }
            if (!over) json = buf;
        }
        if ((rc = sbx_takeout_index_add(ix, e.path, e.size, e.part, json, len)) < 0) goto fail;
    }
    if (rc != SBX_ENOENT) goto fail;
    if ((rc = sbx_takeout_index_finish(ix)) < 0) goto fail;
    rc = sbx_takeout_reader_rewind(r);

fail:
    free(buf);
    return rc;
}
