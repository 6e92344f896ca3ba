/* The encrypting SQLite VFS (see shoebox/cryptvfs.h for the format).
 *
 * SQLite does its file I/O in a few fixed shapes, and the mapping below
 * relies on them (docs/security.md cites the SQLite sources):
 *   - database file: whole pages at page offsets, plus one 100-byte read of
 *     the header at offset 0 before the page size is known;
 *   - WAL: a 32-byte header, then frames of a 24-byte header and a page.
 *     Frames are written header first, page second; the page part is read
 *     alone (a lookup, a checkpoint) or with its header (recovery);
 *   - rollback journal: records of a 4-byte page number, the page, a 4-byte
 *     checksum, after a header padded to the sector size, so page images
 *     sit at offsets 4 modulo 8 and everything else at 0 modulo 8;
 *   - temporary files: any shape.
 * Anything else that would touch part of an encrypted page is refused with
 * an I/O error rather than guessed at: a refused write is loud, a guessed
 * one could corrupt a library. */
#include "shoebox/cryptvfs.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PAGE SBX_CRYPTVFS_PAGE
#define RESERVE SBX_CRYPTVFS_RESERVE
#define USABLE (PAGE - RESERVE)
#define NONCE_AT USABLE
#define TAG_AT (USABLE + SBX_AEAD_NONCE_BYTES)
#define WAL_HDR 32
#define FRAME_HDR 24
#define FRAME (FRAME_HDR + PAGE)
/* The frame header fields bound to the page: page number, commit size and
 * the two salts. The two checksums after them are SQLite's to rewrite. */
#define FRAME_AD_HDR 16
#define AD_MAX 40

_Static_assert(RESERVE == 40, "24-byte nonce and 16-byte tag");
_Static_assert(PAGE % 512 == 0 && PAGE <= 65536, "a valid SQLite page size");

enum kind {
    K_PASS,    /* a super-journal: file names only, read by other processes */
    K_DB,      /* the main database file */
    K_WAL,     /* its write-ahead log */
    K_JOURNAL, /* its rollback journal */
    K_TEMP,    /* temporary files, deleted on close */
};

struct sbx_cryptvfs {
    sqlite3_vfs base;
    sqlite3_vfs *inner;
    uint8_t key[SBX_AEAD_KEY_BYTES];
    atomic_uint_fast64_t rejected;
    char name[48];
};

struct cfile {
    sqlite3_file base;
    sbx_cryptvfs *vfs;
    sqlite3_file *real; /* the inner VFS's file, placed right after this struct */
    enum kind kind;
    sbx_aead *aead;
    struct sbx_nonce_seq nonces;
    uint8_t *buf; /* FRAME bytes of scratch */
    const char *name;
    /* Temporary files: a key for this file only, never written anywhere. */
    uint8_t tkey[crypto_stream_xchacha20_KEYBYTES];
    uint8_t tnonce[crypto_stream_xchacha20_NONCEBYTES];
};

static atomic_uint vfs_counter;

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static sqlite3_int64 min_i64(sqlite3_int64 a, sqlite3_int64 b) { return a < b ? a : b; }
static sqlite3_int64 max_i64(sqlite3_int64 a, sqlite3_int64 b) { return a > b ? a : b; }

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static const char *fname(const struct cfile *p) { return p->name ? p->name : "(temporary file)"; }

/* ---- Associated data ------------------------------------------------------ */

static size_t ad_prefix(uint8_t ad[AD_MAX], char kind)
{
    memcpy(ad, "sbxpage1", 8);
    ad[8] = (uint8_t)kind;
    return 9;
}

static size_t ad_db(uint8_t ad[AD_MAX], uint32_t pgno)
{
    size_t n = ad_prefix(ad, 'D');
    put_be32(ad + n, pgno);
    return n + 4;
}

static size_t ad_wal(uint8_t ad[AD_MAX], uint64_t frame, const uint8_t hdr[FRAME_AD_HDR])
{
    size_t n = ad_prefix(ad, 'W');
    put_be64(ad + n, frame);
    memcpy(ad + n + 8, hdr, FRAME_AD_HDR);
    return n + 8 + FRAME_AD_HDR;
}

static size_t ad_journal(uint8_t ad[AD_MAX], uint64_t off, const uint8_t pgno[4])
{
    size_t n = ad_prefix(ad, 'J');
    put_be64(ad + n, off);
    memcpy(ad + n + 8, pgno, 4);
    return n + 12;
}

/* ---- Pages ---------------------------------------------------------------- */

/* Seals the usable part of a plaintext page into out (PAGE bytes). */
static int seal_page(struct cfile *p, const uint8_t *plain, uint8_t *out, const uint8_t *ad, size_t adlen)
{
    sbx_nonce_seq_next(&p->nonces, out + NONCE_AT);
    return sbx_aead_seal(p->aead, p->vfs->key, out + NONCE_AT, ad, adlen, plain, USABLE, out, out + TAG_AT);
}

/* Opens a page in place: ciphertext in, plaintext out with the reserved
 * bytes zeroed (SQLite must see them the same whatever nonce was drawn, or
 * the WAL checksums it computed at write time would not match). */
static int open_page(struct cfile *p, uint8_t *page, const uint8_t *ad, size_t adlen)
{
    uint8_t nonce[SBX_AEAD_NONCE_BYTES], tag[SBX_AEAD_TAG_BYTES];
    memcpy(nonce, page + NONCE_AT, sizeof nonce);
    memcpy(tag, page + TAG_AT, sizeof tag);
    int rc = sbx_aead_open(p->aead, p->vfs->key, nonce, ad, adlen, page, USABLE, page, tag);
    memset(page + USABLE, 0, RESERVE);
    return rc;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

static int refuse(const struct cfile *p, const char *what, sqlite3_int64 off, int code)
{
    sbx_error("encrypted database %s: %s at offset %lld", fname(p), what, (long long)off);
    sqlite3_log(code, "sbxcrypt: %s at offset %lld of %s", what, (long long)off, fname(p));
    return code;
}

/* Reads from the inner file; *got is how many bytes the file had (the rest
 * of buf is zeroed, as SQLite wants of a short read). */
static int inner_read(struct cfile *p, void *buf, int amt, sqlite3_int64 off, size_t *got)
{
    int rc = p->real->pMethods->xRead(p->real, buf, amt, off);
    *got = (size_t)amt;
    if (rc == SQLITE_IOERR_SHORT_READ) {
        sqlite3_int64 size = 0;
        int src = p->real->pMethods->xFileSize(p->real, &size);
        if (src != SQLITE_OK) return src;
        *got = size <= off ? 0 : (size_t)min_i64(size - off, amt);
        return SQLITE_OK;
    }
    return rc;
}

static int inner_write(struct cfile *p, const void *buf, size_t amt, sqlite3_int64 off)
{
    return p->real->pMethods->xWrite(p->real, buf, (int)amt, off);
}

/* ---- Database file -------------------------------------------------------- */

static int db_read(struct cfile *p, uint8_t *out, int amt, sqlite3_int64 off)
{
    bool short_read = false;
    sqlite3_int64 end = off + amt;
    for (sqlite3_int64 pos = off; pos < end;) {
        sqlite3_int64 start = pos - pos % PAGE;
        size_t skip = (size_t)(pos - start), n = (size_t)min_i64(PAGE - (sqlite3_int64)skip, end - pos);
        uint8_t *dst = out + (pos - off);
        bool whole = skip == 0 && n == PAGE;
        uint8_t *page = whole ? dst : p->buf;
        size_t got;
        int rc = inner_read(p, page, PAGE, start, &got);
        if (rc != SQLITE_OK) return rc;
        if (got == 0) {
            /* Past the end of the file: SQLite reads there for a new
             * database, and wants zeros. */
            memset(dst, 0, n);
            short_read = true;
        } else if (got < PAGE) {
            return refuse(p, "truncated page", start, SQLITE_IOERR_DATA);
        } else {
            uint8_t ad[AD_MAX];
            size_t adlen = ad_db(ad, (uint32_t)(start / PAGE + 1));
            if (open_page(p, page, ad, adlen) != 0)
                return refuse(p, "page failed authentication (damaged or tampered with)", start,
                              SQLITE_IOERR_DATA);
            if (!whole) memcpy(dst, page + skip, n);
        }
        pos += (sqlite3_int64)n;
    }
    return short_read ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

/* Page 1 must carry the geometry the format needs; SQLite writing another
 * one (a page_size change and VACUUM) would have its last 40 bytes
 * overwritten by the nonce and tag. */
static bool header_ok(const uint8_t *page1)
{
    unsigned size = ((unsigned)page1[16] << 8) | page1[17];
    return size == PAGE && page1[20] == RESERVE;
}

static int db_write(struct cfile *p, const uint8_t *in, int amt, sqlite3_int64 off)
{
    if (off % PAGE != 0 || amt % PAGE != 0) return refuse(p, "write of a part of a page", off, SQLITE_IOERR_WRITE);
    for (int i = 0; i < amt; i += PAGE) {
        sqlite3_int64 at = off + i;
        uint32_t pgno = (uint32_t)(at / PAGE + 1);
        if (pgno == 1 && !header_ok(in + i))
            return refuse(p, "page 1 without the format's page size and reserved bytes", at, SQLITE_IOERR_WRITE);
        uint8_t ad[AD_MAX];
        size_t adlen = ad_db(ad, pgno);
        int rc = seal_page(p, in + i, p->buf, ad, adlen);
        if (rc != 0) return SQLITE_IOERR_WRITE;
        if ((rc = inner_write(p, p->buf, PAGE, at)) != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* ---- WAL ------------------------------------------------------------------ */

static sqlite3_int64 frame_of(sqlite3_int64 pos) { return (pos - WAL_HDR) / FRAME; }
static sqlite3_int64 frame_at(sqlite3_int64 frame) { return WAL_HDR + frame * FRAME; }

static int wal_read(struct cfile *p, uint8_t *out, int amt, sqlite3_int64 off)
{
    bool short_read = false;
    sqlite3_int64 end = off + amt, pos = off;
    if (pos < WAL_HDR) {
        /* The WAL header: magic, page size, salts, checksums. Plain. */
        sqlite3_int64 n = min_i64(end, WAL_HDR) - pos;
        int rc = p->real->pMethods->xRead(p->real, out, (int)n, pos);
        if (rc == SQLITE_IOERR_SHORT_READ) short_read = true;
        else if (rc != SQLITE_OK) return rc;
        pos += n;
    }
    while (pos < end) {
        sqlite3_int64 frame = frame_of(pos), fo = frame_at(frame), fend = fo + FRAME;
        sqlite3_int64 segend = min_i64(end, fend);
        size_t got;
        int rc = inner_read(p, p->buf, FRAME, fo, &got);
        if (rc != SQLITE_OK) return rc;
        if (pos < fo + FRAME_HDR) {
            sqlite3_int64 a = pos - fo, b = min_i64(segend, fo + FRAME_HDR) - fo;
            memcpy(out + (pos - off), p->buf + a, (size_t)(b - a));
            if ((sqlite3_int64)got < b) short_read = true;
        }
        if (segend > fo + FRAME_HDR) {
            sqlite3_int64 a = max_i64(pos, fo + FRAME_HDR) - fo, b = segend - fo;
            uint8_t *dst = out + (fo + a - off);
            if (got <= FRAME_HDR) {
                memset(dst, 0, (size_t)(b - a));
                short_read = true;
            } else if (got < FRAME) {
                return refuse(p, "truncated WAL frame", fo, SQLITE_IOERR_DATA);
            } else {
                uint8_t ad[AD_MAX];
                size_t adlen = ad_wal(ad, (uint64_t)frame, p->buf);
                if (open_page(p, p->buf + FRAME_HDR, ad, adlen) != 0) {
                    /* A read of the whole frame is SQLite scanning the log
                     * for its valid end (recovery after a crash): a torn
                     * write must end the log there, as it does without
                     * encryption. Random bytes make SQLite's checksum
                     * refuse the frame and everything after it; zeros could
                     * match the checksum of a page that was all zeros. */
                    if (pos != fo || segend != fend)
                        return refuse(p, "WAL frame failed authentication (damaged or tampered with)", fo,
                                      SQLITE_IOERR_DATA);
                    atomic_fetch_add(&p->vfs->rejected, 1);
                    sbx_warn("encrypted database %s: WAL frame %lld failed authentication; the log ends "
                             "before it (a write torn by a crash, or tampering)",
                             fname(p), (long long)frame + 1);
                    randombytes_buf(p->buf + FRAME_HDR, PAGE);
                }
                memcpy(dst, p->buf + a, (size_t)(b - a));
            }
        }
        pos = segend;
    }
    return short_read ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int wal_write(struct cfile *p, const uint8_t *in, int amt, sqlite3_int64 off)
{
    sqlite3_int64 end = off + amt, pos = off;
    int rc;
    if (pos < WAL_HDR) {
        sqlite3_int64 n = min_i64(end, WAL_HDR) - pos;
        if ((rc = inner_write(p, in, (size_t)n, pos)) != SQLITE_OK) return rc;
        pos += n;
    }
    while (pos < end) {
        sqlite3_int64 frame = frame_of(pos), fo = frame_at(frame), fend = fo + FRAME;
        sqlite3_int64 segend = min_i64(end, fend);
        if (pos < fo + FRAME_HDR) {
            sqlite3_int64 n = min_i64(segend, fo + FRAME_HDR) - pos;
            if ((rc = inner_write(p, in + (pos - off), (size_t)n, pos)) != SQLITE_OK) return rc;
            pos += n;
        }
        if (pos >= segend) continue;
        if (pos != fo + FRAME_HDR || segend != fend)
            return refuse(p, "write of a part of a WAL page", pos, SQLITE_IOERR_WRITE);
        const uint8_t *page = in + (pos - off);
        /* SQLite checksums the page as it hands it over, reserved bytes
         * included, and a read gives those bytes back as zeros: anything
         * else there would make the frame fail its checksum after a crash. */
        if (!all_zero(page + USABLE, RESERVE))
            return refuse(p, "WAL page with non-zero reserved bytes", pos, SQLITE_IOERR_WRITE);
        /* The header is bound to the page: it comes in the same write, or
         * SQLite wrote it just before (frames are written header first). */
        uint8_t hdr[FRAME_AD_HDR];
        if (off <= fo) {
            memcpy(hdr, in + (fo - off), FRAME_AD_HDR);
        } else {
            size_t got;
            if ((rc = inner_read(p, hdr, FRAME_AD_HDR, fo, &got)) != SQLITE_OK) return rc;
            if (got != FRAME_AD_HDR) return refuse(p, "WAL page written before its frame header", fo, SQLITE_IOERR_WRITE);
        }
        uint8_t ad[AD_MAX];
        size_t adlen = ad_wal(ad, (uint64_t)frame, hdr);
        if (seal_page(p, page, p->buf, ad, adlen) != 0) return SQLITE_IOERR_WRITE;
        if ((rc = inner_write(p, p->buf, PAGE, pos)) != SQLITE_OK) return rc;
        pos = segend;
    }
    return SQLITE_OK;
}

/* ---- Rollback journal ----------------------------------------------------- */

static bool journal_page(int amt, sqlite3_int64 off) { return amt == PAGE && off >= 4 && off % 8 == 4; }

/* A journal page is authenticated with its record's page number, which
 * SQLite writes just before it. */
static int journal_pgno(struct cfile *p, sqlite3_int64 off, uint8_t pgno[4])
{
    size_t got;
    int rc = inner_read(p, pgno, 4, off - 4, &got);
    if (rc != SQLITE_OK) return rc;
    return got == 4 ? SQLITE_OK : SQLITE_IOERR_SHORT_READ;
}

static int journal_read(struct cfile *p, uint8_t *out, int amt, sqlite3_int64 off)
{
    if (!journal_page(amt, off)) return p->real->pMethods->xRead(p->real, out, amt, off);
    size_t got;
    int rc = inner_read(p, out, amt, off, &got);
    if (rc != SQLITE_OK) return rc;
    if (got == 0) return SQLITE_IOERR_SHORT_READ;
    /* SQLite's journal checksum samples only 20 bytes of a page: a torn or
     * altered record could pass it, so a record that fails authentication
     * stops the rollback instead of being played back. */
    if (got < PAGE) return refuse(p, "truncated journal page", off, SQLITE_IOERR_DATA);
    uint8_t pgno[4], ad[AD_MAX];
    if (journal_pgno(p, off, pgno) != SQLITE_OK) return refuse(p, "journal page without its record", off, SQLITE_IOERR_DATA);
    size_t adlen = ad_journal(ad, (uint64_t)off, pgno);
    if (open_page(p, out, ad, adlen) != 0)
        return refuse(p, "journal page failed authentication (damaged or tampered with)", off, SQLITE_IOERR_DATA);
    return SQLITE_OK;
}

static int journal_write(struct cfile *p, const uint8_t *in, int amt, sqlite3_int64 off)
{
    if (!journal_page(amt, off)) return inner_write(p, in, (size_t)amt, off);
    uint8_t pgno[4], ad[AD_MAX];
    if (journal_pgno(p, off, pgno) != SQLITE_OK)
        return refuse(p, "journal page written before its page number", off, SQLITE_IOERR_WRITE);
    size_t adlen = ad_journal(ad, (uint64_t)off, pgno);
    if (seal_page(p, in, p->buf, ad, adlen) != 0) return SQLITE_IOERR_WRITE;
    return inner_write(p, p->buf, PAGE, off);
}

/* ---- Temporary files ------------------------------------------------------ */

/* XORs the XChaCha20 key stream of this file at byte offset `off`. */
static void temp_xor(struct cfile *p, uint8_t *buf, size_t len, uint64_t off)
{
    while (len > 0) {
        uint64_t block = off / 64;
        size_t skip = (size_t)(off % 64);
        size_t n;
        if (skip != 0 || len < 64) {
            uint8_t ks[64] = {0};
            crypto_stream_xchacha20_xor_ic(ks, ks, sizeof ks, p->tnonce, block, p->tkey);
            n = min_sz(64 - skip, len);
            for (size_t i = 0; i < n; i++) buf[i] ^= ks[skip + i];
            sodium_memzero(ks, sizeof ks);
        } else {
            n = len - len % 64;
            crypto_stream_xchacha20_xor_ic(buf, buf, n, p->tnonce, block, p->tkey);
        }
        buf += n;
        off += n;
        len -= n;
    }
}

static int temp_read(struct cfile *p, uint8_t *out, int amt, sqlite3_int64 off)
{
    size_t got;
    int rc = inner_read(p, out, amt, off, &got);
    if (rc != SQLITE_OK) return rc;
    temp_xor(p, out, got, (uint64_t)off);
    return got == (size_t)amt ? SQLITE_OK : SQLITE_IOERR_SHORT_READ;
}

static int temp_write(struct cfile *p, const uint8_t *in, int amt, sqlite3_int64 off)
{
    for (size_t done = 0; done < (size_t)amt;) {
        size_t n = min_sz(FRAME, (size_t)amt - done);
        memcpy(p->buf, in + done, n);
        temp_xor(p, p->buf, n, (uint64_t)off + done);
        int rc = inner_write(p, p->buf, n, off + (sqlite3_int64)done);
        if (rc != SQLITE_OK) return rc;
        done += n;
    }
    return SQLITE_OK;
}

/* ---- io_methods ----------------------------------------------------------- */

static void cfile_free(struct cfile *p)
{
    sbx_aead_free(p->aead);
    p->aead = NULL;
    if (p->buf) sodium_memzero(p->buf, FRAME);
    free(p->buf);
    p->buf = NULL;
    sodium_memzero(p->tkey, sizeof p->tkey);
}

static int x_close(sqlite3_file *f)
{
    struct cfile *p = (struct cfile *)f;
    int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    cfile_free(p);
    return rc;
}

static int x_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    struct cfile *p = (struct cfile *)f;
    if (amt < 0 || off < 0) return SQLITE_IOERR_READ;
    switch (p->kind) {
    case K_DB: return db_read(p, buf, amt, off);
    case K_WAL: return wal_read(p, buf, amt, off);
    case K_JOURNAL: return journal_read(p, buf, amt, off);
    case K_TEMP: return temp_read(p, buf, amt, off);
    case K_PASS: break;
    }
    return p->real->pMethods->xRead(p->real, buf, amt, off);
}

static int x_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    struct cfile *p = (struct cfile *)f;
    if (amt < 0 || off < 0) return SQLITE_IOERR_WRITE;
    switch (p->kind) {
    case K_DB: return db_write(p, buf, amt, off);
    case K_WAL: return wal_write(p, buf, amt, off);
    case K_JOURNAL: return journal_write(p, buf, amt, off);
    case K_TEMP: return temp_write(p, buf, amt, off);
    case K_PASS: break;
    }
    return p->real->pMethods->xWrite(p->real, buf, amt, off);
}

#define REAL(f) (((struct cfile *)(f))->real)

static int x_truncate(sqlite3_file *f, sqlite3_int64 size) { return REAL(f)->pMethods->xTruncate(REAL(f), size); }
static int x_sync(sqlite3_file *f, int flags) { return REAL(f)->pMethods->xSync(REAL(f), flags); }
static int x_file_size(sqlite3_file *f, sqlite3_int64 *size) { return REAL(f)->pMethods->xFileSize(REAL(f), size); }
static int x_lock(sqlite3_file *f, int lock) { return REAL(f)->pMethods->xLock(REAL(f), lock); }
static int x_unlock(sqlite3_file *f, int lock) { return REAL(f)->pMethods->xUnlock(REAL(f), lock); }
static int x_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int x_sector_size(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }

static int x_file_control(sqlite3_file *f, int op, void *arg)
{
    struct cfile *p = (struct cfile *)f;
    if (op == SQLITE_FCNTL_PRAGMA && p->kind == K_DB) {
        /* A page size change would take effect at the next VACUUM and
         * break the page format: refuse it when it is asked for. */
        char **a = arg;
        if (a[1] && strcasecmp(a[1], "page_size") == 0 && a[2] && atoi(a[2]) != PAGE) {
            a[0] = sqlite3_mprintf("an encrypted shoebox database keeps %d-byte pages", PAGE);
            return SQLITE_ERROR;
        }
    }
    return p->real->pMethods->xFileControl(p->real, op, arg);
}

/* Whole pages are written in one call only when SQLite knows that writing
 * part of a sector leaves the rest intact; without that it may split a WAL
 * write at a sector boundary. The unix VFS says so by default. */
static int x_device_characteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)) | SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static int x_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}
static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void x_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int x_shm_unmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }

/* Version 2: no xFetch, so SQLite never memory-maps the database and every
 * page goes through x_read. */
static const sqlite3_io_methods io_methods = {
    .iVersion = 2,
    .xClose = x_close,
    .xRead = x_read,
    .xWrite = x_write,
    .xTruncate = x_truncate,
    .xSync = x_sync,
    .xFileSize = x_file_size,
    .xLock = x_lock,
    .xUnlock = x_unlock,
    .xCheckReservedLock = x_check_reserved,
    .xFileControl = x_file_control,
    .xSectorSize = x_sector_size,
    .xDeviceCharacteristics = x_device_characteristics,
    .xShmMap = x_shm_map,
    .xShmLock = x_shm_lock,
    .xShmBarrier = x_shm_barrier,
    .xShmUnmap = x_shm_unmap,
};

/* ---- VFS ------------------------------------------------------------------ */

#define INNER(v) (((sbx_cryptvfs *)(v)->pAppData)->inner)

static int v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out_flags)
{
    sbx_cryptvfs *v = vfs->pAppData;
    struct cfile *p = (struct cfile *)f;
    memset(p, 0, sizeof *p);
    p->vfs = v;
    p->real = (sqlite3_file *)(p + 1);
    p->name = name;
    if (flags & SQLITE_OPEN_MAIN_DB) p->kind = K_DB;
    else if (flags & SQLITE_OPEN_WAL) p->kind = K_WAL;
    else if (flags & SQLITE_OPEN_MAIN_JOURNAL) p->kind = K_JOURNAL;
    else if (flags & SQLITE_OPEN_SUPER_JOURNAL) p->kind = K_PASS;
    else p->kind = K_TEMP; /* temp db, temp journal, transient db, subjournal */
    int rc = SQLITE_NOMEM;
    if (sbx_aead_new(&p->aead) != 0 || !(p->buf = malloc(FRAME))) goto fail;
    sbx_nonce_seq_init(&p->nonces);
    if (p->kind == K_TEMP) {
        crypto_stream_xchacha20_keygen(p->tkey);
        randombytes_buf(p->tnonce, sizeof p->tnonce);
    }
    rc = v->inner->xOpen(v->inner, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK) goto fail;
    f->pMethods = &io_methods;
    return SQLITE_OK;
fail:
    cfile_free(p);
    /* SQLite calls xClose only when pMethods is set. */
    f->pMethods = NULL;
    return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *path, int sync_dir)
{
    return INNER(vfs)->xDelete(INNER(vfs), path, sync_dir);
}
static int v_access(sqlite3_vfs *vfs, const char *path, int flags, int *out)
{
    return INNER(vfs)->xAccess(INNER(vfs), path, flags, out);
}
static int v_full_pathname(sqlite3_vfs *vfs, const char *path, int n, char *out)
{
    return INNER(vfs)->xFullPathname(INNER(vfs), path, n, out);
}
static void *v_dlopen(sqlite3_vfs *vfs, const char *path) { return INNER(vfs)->xDlOpen(INNER(vfs), path); }
static void v_dlerror(sqlite3_vfs *vfs, int n, char *msg) { INNER(vfs)->xDlError(INNER(vfs), n, msg); }
static void (*v_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    return INNER(vfs)->xDlSym(INNER(vfs), h, sym);
}
static void v_dlclose(sqlite3_vfs *vfs, void *h) { INNER(vfs)->xDlClose(INNER(vfs), h); }
static int v_randomness(sqlite3_vfs *vfs, int n, char *out) { return INNER(vfs)->xRandomness(INNER(vfs), n, out); }
static int v_sleep(sqlite3_vfs *vfs, int us) { return INNER(vfs)->xSleep(INNER(vfs), us); }
static int v_current_time(sqlite3_vfs *vfs, double *out) { return INNER(vfs)->xCurrentTime(INNER(vfs), out); }
static int v_last_error(sqlite3_vfs *vfs, int n, char *out) { return INNER(vfs)->xGetLastError(INNER(vfs), n, out); }
static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    sqlite3_vfs *in = INNER(vfs);
    if (in->iVersion >= 2 && in->xCurrentTimeInt64) return in->xCurrentTimeInt64(in, out);
    double d = 0;
    int rc = in->xCurrentTime(in, &d);
    *out = (sqlite3_int64)(d * 86400000.0);
    return rc;
}

int sbx_cryptvfs_new(sbx_cryptvfs **out, const uint8_t key[SBX_AEAD_KEY_BYTES])
{
    sqlite3_vfs *inner = sqlite3_vfs_find("unix");
    if (!inner) inner = sqlite3_vfs_find(NULL);
    if (!inner) return SBX_EUNSUPPORTED;
    sbx_cryptvfs *v = calloc(1, sizeof *v);
    if (!v) return SBX_ENOMEM;
    v->inner = inner;
    memcpy(v->key, key, SBX_AEAD_KEY_BYTES);
    atomic_init(&v->rejected, 0);
    snprintf(v->name, sizeof v->name, "sbxcrypt-%u", atomic_fetch_add(&vfs_counter, 1));
    v->base = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct cfile) + inner->szOsFile,
        .mxPathname = inner->mxPathname,
        .zName = v->name,
        .pAppData = v,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full_pathname,
        .xDlOpen = v_dlopen,
        .xDlError = v_dlerror,
        .xDlSym = v_dlsym,
        .xDlClose = v_dlclose,
        .xRandomness = v_randomness,
        .xSleep = v_sleep,
        .xCurrentTime = v_current_time,
        .xGetLastError = v_last_error,
        .xCurrentTimeInt64 = v_current_time64,
    };
    if (sqlite3_vfs_register(&v->base, 0) != SQLITE_OK) {
        sodium_memzero(v->key, sizeof v->key);
        free(v);
        return SBX_EDB;
    }
    *out = v;
    return 0;
}

const char *sbx_cryptvfs_name(const sbx_cryptvfs *v) { return v->name; }

uint64_t sbx_cryptvfs_rejected(const sbx_cryptvfs *v) { return atomic_load(&v->rejected); }

void sbx_cryptvfs_free(sbx_cryptvfs *v)
{
    if (!v) return;
    sqlite3_vfs_unregister(&v->base);
    sodium_memzero(v->key, sizeof v->key);
    free(v);
}

int sbx_cryptvfs_prepare(sqlite3 *db, bool new_file)
{
    /* The reserve takes effect when the database is created (an existing one
     * keeps what its header says, 40 for one made here); the file control
     * reads nothing. */
    int n = RESERVE;
    int rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n);
    if (rc != SQLITE_OK || !new_file) return rc;
    /* Said even where it is SQLite's default, so that a build with another
     * default does not create pages the format does not expect. Only for a
     * new file: the pragma reads the schema. */
    char sql[40];
    snprintf(sql, sizeof sql, "PRAGMA page_size=%d", PAGE);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}
