/* The content-addressed blob store (see shoebox/blob.h for the contract).
 *
 * Every byte of every blob goes through this file: the paths are private to
 * it, and so is encryption at rest. In an encrypted data dir (the store was
 * opened with a storage key) a blob file is
 *     header: a random 16-byte file id | a 16-byte MAC of (file id, blob
 *             hash, size) under the header subkey
 *     then per chunk: 24-byte random nonce | ciphertext | 16-byte tag
 * each chunk sealed with XChaCha20-Poly1305 under the blob data subkey with
 * (file id, chunk index) as associated data, and the file is named by a
 * keyed BLAKE2b of the blob's SHA-256 instead of the SHA-256 itself. So a
 * chunk cannot move within a file or to another file, a file cannot be
 * swapped for another blob's, and a range read decrypts only the chunks it
 * touches. A chunk that fails its tag is SBX_ECORRUPT: never handed out. */
#include "shoebox/blob.h"
#include "shoebox/chunkbuf.h"
#include "shoebox/crypt.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/sha256.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HASH SBX_BLOB_HASH_BYTES
#define HEX_LEN (2 * HASH)

/* last_access_at only feeds LRU eviction, where a minute is no difference;
 * writing it on every range read of a streamed video would be a database
 * write per request. */
#define TOUCH_EVERY_MS 60000
/* A temp or partial file younger than this is never swept: another handle
 * (the CLI beside the daemon) may have just created it and not yet locked
 * it or recorded it. Leftovers simply wait for a later open. */
#define SWEEP_MIN_AGE_S 60
/* Read buffer of put_file, finish and verify: one chunk, so a copy needs a
 * bounded, small amount of memory whatever the file size. */
#define IO_BUF SBX_BLOB_CHUNK
/* Stored blob files and directories are private to the device's user. */
#define FILE_MODE 0600
#define DIR_MODE 0700

_Static_assert(SBX_MAX_BLOB_CHUNKS <= UINT32_MAX, "chunk indexes fit in 32 bits");

/* Encrypted blob files: header, then one record per chunk. */
#define FILE_ID 16
#define ENC_HDR (FILE_ID + 16)
#define REC_OVERHEAD (SBX_AEAD_NONCE_BYTES + SBX_AEAD_TAG_BYTES)
#define REC_MAX (SBX_BLOB_CHUNK + REC_OVERHEAD)
#define CHUNK_AD 28

/* What sealing or opening a chunk needs: the data key and a cipher context.
 * Each handle (store, writer, open file) has its own, so an open file can
 * be read on another thread than the store's. */
struct sealer {
    sbx_aead *aead;
    struct sbx_nonce_seq nonces;
    uint8_t key[SBX_AEAD_KEY_BYTES];
    uint8_t *rec; /* one record of scratch (REC_MAX bytes) */
};

/* A blob written to its temp file in a batch, not yet named or recorded
 * (sbx_blob_batch_begin). */
struct staged {
    int fd;
    uint8_t hash[HASH];
    uint64_t size;
    sbx_blob_kind kind;
    uint8_t *chunks; /* n chunk hashes */
    uint32_t n;
    char tmp[PATH_MAX];
};

struct sbx_blobstore {
    sbx_store *store;
    /* A batch: blobs staged by put_buf, installed together by commit. */
    bool batching;
    struct staged *staged; /* SBX_MAX_BLOB_BATCH of them */
    size_t n_staged;
    /* Encryption at rest, when the store has a storage key. */
    bool enc;
    struct sealer seal;
    uint8_t *bounce; /* put_buf's direct writes of sealed records (bounce_map), or NULL */
    uint8_t k_name[SBX_AEAD_KEY_BYTES]; /* file names */
    uint8_t k_hdr[SBX_AEAD_KEY_BYTES];  /* header MACs */
    /* DATA_DIR/blobs. Shorter than PATH_MAX by more than any name appended
     * to it, so every path built below provably fits. */
    char root[PATH_MAX - 128];
};

/* Incremental SHA-256 of a whole blob and of each of its chunks, both fed
 * by one two-stream pass over the bytes (shoebox/sha256.h). */
struct hasher {
    sbx_sha256_ctx whole, chunk;
    uint64_t size;
    uint32_t fill; /* bytes of the current chunk seen so far */
    uint8_t *chunks; /* n hashes of completed chunks */
    size_t n, cap;
};

struct sbx_blob_writer {
    sbx_blobstore *bs;
    sbx_blob_kind kind;
    int fd;
    int err; /* sticky: the first write error */
    uint64_t kicked; /* bytes handed to writeback so far */
    struct hasher h;
    /* Encrypted: the current chunk's plaintext, sealed once full. */
    struct sealer seal;
    uint8_t *pending;
    size_t pending_len;
    uint32_t next_idx;
    uint8_t file_id[FILE_ID];
    char tmp[PATH_MAX];
};

struct sbx_blob_file {
    int fd;
    uint64_t size;
    /* Encrypted: the file id, and the last chunk opened, so that small
     * sequential range reads open each chunk once. */
    bool enc;
    uint32_t chunk_size;
    uint8_t file_id[FILE_ID];
    struct sealer seal;
    uint8_t *cache;
    int64_t cached; /* chunk index in cache, -1 for none */
};

/* A blob's row. */
struct row {
    uint64_t size;
    uint32_t chunk_size;
    uint32_t n_chunks;
    sbx_blob_kind kind;
    bool complete;
    int64_t stored_at, last_access_at;
};

static const char *const kind_names[] = {"original", "thumb", "medium"};

static const char SQL_ROW[] =
    "SELECT size_bytes, chunk_size, kind, complete, stored_at, last_access_at "
    "FROM blobs WHERE hash = ?1";
static const char SQL_PUT_COMPLETE[] =
    "INSERT INTO blobs(hash, size_bytes, chunk_size, kind, complete, stored_at, last_access_at) "
    "VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5) "
    "ON CONFLICT(hash) DO UPDATE SET size_bytes = excluded.size_bytes, "
    "chunk_size = excluded.chunk_size, complete = 1, stored_at = excluded.stored_at, "
    "last_access_at = excluded.last_access_at";
static const char SQL_PUT_PARTIAL[] =
    "INSERT INTO blobs(hash, size_bytes, chunk_size, kind, complete, stored_at, last_access_at) "
    "VALUES (?1, ?2, ?3, ?4, 0, NULL, NULL) "
    "ON CONFLICT(hash) DO UPDATE SET size_bytes = excluded.size_bytes, "
    "chunk_size = excluded.chunk_size, kind = excluded.kind, complete = 0, stored_at = NULL";
static const char SQL_MARK_COMPLETE[] =
    "UPDATE blobs SET complete = 1, stored_at = ?2, last_access_at = ?2 WHERE hash = ?1";
static const char SQL_TOUCH[] = "UPDATE blobs SET last_access_at = ?2 WHERE hash = ?1";
static const char SQL_DEL_BLOB[] = "DELETE FROM blobs WHERE hash = ?1";
static const char SQL_DEL_CHUNKS[] = "DELETE FROM blob_chunks WHERE hash = ?1";
static const char SQL_ADD_CHUNK[] =
    "INSERT INTO blob_chunks(hash, idx, chunk_hash, have) VALUES (?1, ?2, ?3, ?4)";
static const char SQL_CHUNK[] =
    "SELECT chunk_hash, have FROM blob_chunks WHERE hash = ?1 AND idx = ?2";
static const char SQL_CHUNK_LIST[] =
    "SELECT idx, chunk_hash, have FROM blob_chunks WHERE hash = ?1 ORDER BY idx";
static const char SQL_SET_HAVE[] =
    "UPDATE blob_chunks SET have = ?3 WHERE hash = ?1 AND idx = ?2";
static const char SQL_RESET_HAVE[] = "UPDATE blob_chunks SET have = 0 WHERE hash = ?1";
static const char SQL_ALL_HAVE[] = "UPDATE blob_chunks SET have = 1 WHERE hash = ?1";
static const char SQL_MISSING[] =
    "SELECT idx FROM blob_chunks WHERE hash = ?1 AND have = 0 ORDER BY idx";
static const char SQL_COUNT_HAVE[] =
    "SELECT count(*), coalesce(sum(have), 0) FROM blob_chunks WHERE hash = ?1";

/* ---- Small helpers ------------------------------------------------------ */

static int errno_rc(void) { return sbx_err_from_errno(errno); }

static bool kind_ok(sbx_blob_kind k) { return (unsigned)k < SBX_ARRAY_LEN(kind_names); }

static uint32_t chunks_for(uint64_t size, uint32_t chunk_size)
{
    return (uint32_t)((size + chunk_size - 1) / chunk_size);
}

/* The length of chunk idx of a blob of `size` bytes: chunk_size, less for
 * the last chunk. */
static size_t chunk_len(uint64_t size, uint32_t chunk_size, uint32_t idx)
{
    uint64_t left = size - (uint64_t)idx * chunk_size;
    return (size_t)(left < chunk_size ? left : chunk_size);
}

/* The file name of a blob: its SHA-256 in hex, or in an encrypted store a
 * keyed BLAKE2b of it, so the names on disk do not tell which photos (of
 * known hash) the library holds. */
static void blob_name(const sbx_blobstore *bs, const uint8_t hash[HASH], char hex[HEX_LEN + 1])
{
    if (!bs->enc) {
        sbx_hex_encode(hex, hash, HASH);
        return;
    }
    uint8_t name[HASH];
    crypto_generichash(name, sizeof name, hash, HASH, bs->k_name, sizeof bs->k_name);
    sbx_hex_encode(hex, name, HASH);
}

static void final_path(const sbx_blobstore *bs, const uint8_t hash[HASH], char out[PATH_MAX])
{
    char hex[HEX_LEN + 1];
    blob_name(bs, hash, hex);
    snprintf(out, PATH_MAX, "%s/%.2s/%.2s/%s", bs->root, hex, hex + 2, hex);
}

static void partial_path(const sbx_blobstore *bs, const uint8_t hash[HASH], char out[PATH_MAX])
{
    char hex[HEX_LEN + 1];
    blob_name(bs, hash, hex);
    snprintf(out, PATH_MAX, "%s/partial/%s", bs->root, hex);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_rc();
    int rc = fsync(fd) == 0 ? 0 : errno_rc();
    close(fd);
    return rc;
}

/* fsync of the directory holding `path`. */
static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    SBX_ASSERT(slash && slash != dir);
    *slash = '\0';
    return fsync_dir(dir);
}

/* mkdir that makes a new directory durable: a rename into it must not be
 * lost with the directory entry of the directory itself. */
static int mkdir_durable(const char *dir)
{
    if (mkdir(dir, DIR_MODE) == 0) return fsync_parent(dir);
    return errno == EEXIST ? 0 : errno_rc();
}

static int ensure_fanout(const sbx_blobstore *bs, const uint8_t hash[HASH])
{
    char hex[HEX_LEN + 1], dir[PATH_MAX];
    blob_name(bs, hash, hex);
    snprintf(dir, sizeof dir, "%s/%.2s", bs->root, hex);
    int rc = mkdir_durable(dir);
    if (rc) return rc;
    snprintf(dir, sizeof dir, "%s/%.2s/%.2s", bs->root, hex, hex + 2);
    return mkdir_durable(dir);
}

/* Starts writing a range back to disk without waiting for it: the fsync
 * that makes the blob durable then finds most of it already written. Only a
 * hint; the fsync reports any error. */
static void kick_writeback(int fd, uint64_t off, uint64_t len)
{
    (void)sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno_rc();
        if (w == 0) return SBX_EIO;
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Reads up to len bytes at off; *got < len only at end of file. */
static int pread_upto(int fd, uint8_t *p, size_t len, uint64_t off, size_t *got)
{
    size_t n = 0;
    while (n < len) {
        ssize_t r = pread(fd, p + n, len - n, (off_t)(off + n));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno_rc();
        if (r == 0) break;
        n += (size_t)r;
    }
    *got = n;
    return 0;
}

/* Exactly len bytes: a file shorter than its row says is corrupt. */
static int pread_exact(int fd, uint8_t *p, size_t len, uint64_t off)
{
    size_t got = 0;
    int rc = pread_upto(fd, p, len, off, &got);
    if (rc) return rc;
    return got == len ? 0 : SBX_ECORRUPT;
}

/* O_DIRECT wants buffers, offsets and lengths aligned to the device's
 * logical block; a page covers every common one. */
#define DIRECT_ALIGN 4096u

/* The bounce buffer of a direct writer: a sealed record and a page of
 * slack, so that a record at any offset fits at the offset's alignment. */
#define BOUNCE_SIZE ((REC_MAX + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN + DIRECT_ALIGN)

/* Writing new file pages through the page cache costs this VM's kernel
 * 0.8-2.1 s of system time per GB (allocating and later reclaiming the
 * pages: dd of 1 GiB took 1.12 s of system time buffered, 0.18 s with
 * O_DIRECT), more than hashing the bytes. So blob writes go around the
 * cache: the pages that [at, at+n) covers whole are written through dfd
 * (the file opened with O_DIRECT), straight from bytes when they are
 * page-aligned, else through the page-aligned bounce buffer (NULL: none
 * to be had); the partial pages at either end, shared with a neighbouring
 * record or the header, go through the buffered fd. A page is thus always
 * written the same way, and the kernel keeps the two paths coherent. When
 * the file system refuses direct writes (EINVAL), *dfd is closed and set to
 * -1: buffered from then on. Durability is the caller's fsync, as before. */
static int direct_pwrite(int fd, int *dfd, uint8_t *bounce, const uint8_t *bytes, size_t n, uint64_t at)
{
    uint64_t lo = (at + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
    uint64_t hi = (at + n) / DIRECT_ALIGN * DIRECT_ALIGN;
    const uint8_t *mid = hi > lo ? bytes + (lo - at) : NULL;
    bool aligned = mid && (uintptr_t)mid % DIRECT_ALIGN == 0;
    if (*dfd < 0 || hi <= lo || (!aligned && !bounce)) {
        int rc = pwrite_all(fd, bytes, n, at);
        if (rc == 0) kick_writeback(fd, at, n);
        return rc;
    }
    int rc = 0;
    if (lo > at) rc = pwrite_all(fd, bytes, (size_t)(lo - at), at);
    if (rc == 0 && hi < at + n) rc = pwrite_all(fd, bytes + (hi - at), (size_t)(at + n - hi), hi);
    if (rc) return rc;
    size_t mlen = (size_t)(hi - lo);
    if (!aligned) {
        SBX_ASSERT(mlen <= BOUNCE_SIZE);
        memcpy(bounce, mid, mlen);
        mid = bounce;
    }
    if (pwrite_all(*dfd, mid, mlen, lo) == 0) return 0;
    /* EINVAL and the like: the device wants another alignment, or the
     * file system refuses direct writes after all. Buffered from now on. */
    close(*dfd);
    *dfd = -1;
    rc = pwrite_all(fd, bytes + (lo - at), mlen, lo);
    if (rc == 0) kick_writeback(fd, lo, mlen);
    return rc;
}

/* A page-aligned buffer of BOUNCE_SIZE bytes: a recycled chunk buffer, so
 * a receiver opening a handle per blob does not fault in fresh pages for
 * each. NULL when none can be had. */
static uint8_t *bounce_map(void)
{
    _Static_assert(BOUNCE_SIZE <= SBX_CHUNKBUF_BYTES, "a sealed record fits a chunk buffer");
    return sbx_chunkbuf_get();
}

/* ---- Encryption --------------------------------------------------------- */

/* rec_cap: the largest record the handle will see (a whole chunk and its
 * overhead, or less for a small blob opened for reading). */
static int sealer_init(struct sealer *s, const uint8_t key[SBX_AEAD_KEY_BYTES], size_t rec_cap)
{
    memset(s, 0, sizeof *s);
    memcpy(s->key, key, SBX_AEAD_KEY_BYTES);
    if (sbx_aead_new(&s->aead) != 0 || !(s->rec = malloc(rec_cap))) return SBX_ENOMEM;
    sbx_nonce_seq_init(&s->nonces);
    return 0;
}

static void sealer_free(struct sealer *s)
{
    sbx_aead_free(s->aead);
    free(s->rec);
    sodium_memzero(s, sizeof *s);
}

/* Where chunk idx starts on disk, and how big the file of a blob is. */
static uint64_t rec_off(bool enc, uint32_t chunk_size, uint32_t idx)
{
    return enc ? ENC_HDR + (uint64_t)idx * (chunk_size + REC_OVERHEAD) : (uint64_t)idx * chunk_size;
}

static uint64_t disk_size(bool enc, uint64_t size, uint32_t chunk_size)
{
    return enc ? ENC_HDR + size + (uint64_t)chunks_for(size, chunk_size) * REC_OVERHEAD : size;
}

static void header_mac(const uint8_t key[SBX_AEAD_KEY_BYTES], const uint8_t file_id[FILE_ID],
                       const uint8_t hash[HASH], uint64_t size, uint8_t out[16])
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(size >> (8 * i));
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, SBX_AEAD_KEY_BYTES, 16);
    crypto_generichash_update(&st, (const uint8_t *)"sbxblob1", 8);
    crypto_generichash_update(&st, file_id, FILE_ID);
    crypto_generichash_update(&st, hash, HASH);
    crypto_generichash_update(&st, le, sizeof le);
    crypto_generichash_final(&st, out, 16);
}

/* A new header for the blob `hash` of `size` bytes, with a fresh file id. */
static void header_make(const sbx_blobstore *bs, const uint8_t hash[HASH], uint64_t size,
                        uint8_t hdr[ENC_HDR])
{
    randombytes_buf(hdr, FILE_ID);
    header_mac(bs->k_hdr, hdr, hash, size, hdr + FILE_ID);
}

/* Reads and checks the header of an encrypted blob file: the file must be
 * the one made for this hash and size (not another blob's, swapped in). */
static int header_check(const uint8_t k_hdr[SBX_AEAD_KEY_BYTES], int fd, const uint8_t hash[HASH],
                        uint64_t size, uint8_t file_id[FILE_ID])
{
    uint8_t hdr[ENC_HDR], mac[16];
    int rc = pread_exact(fd, hdr, sizeof hdr, 0);
    if (rc) return rc;
    header_mac(k_hdr, hdr, hash, size, mac);
    if (sodium_memcmp(mac, hdr + FILE_ID, 16) != 0) {
        /* No hash in the log: in an encrypted store it is not to be seen. */
        sbx_warn("blob store: a file header failed authentication (damaged, tampered with or swapped)");
        return SBX_ECORRUPT;
    }
    memcpy(file_id, hdr, FILE_ID);
    return 0;
}

static void chunk_ad(uint8_t ad[CHUNK_AD], const uint8_t file_id[FILE_ID], uint32_t idx)
{
    memcpy(ad, "sbxblob1", 8);
    memcpy(ad + 8, file_id, FILE_ID);
    for (int i = 0; i < 4; i++) ad[24 + i] = (uint8_t)(idx >> (8 * i));
}

/* Seals chunk idx (len plaintext bytes) into rec (len + REC_OVERHEAD bytes):
 * nonce | ciphertext | tag. */
static int seal_into(struct sealer *s, const uint8_t file_id[FILE_ID], uint32_t idx, const uint8_t *plain,
                     size_t len, uint8_t *rec)
{
    uint8_t ad[CHUNK_AD];
    chunk_ad(ad, file_id, idx);
    sbx_nonce_seq_next(&s->nonces, rec);
    return sbx_aead_seal(s->aead, s->key, rec, ad, sizeof ad, plain, len, rec + SBX_AEAD_NONCE_BYTES,
                         rec + SBX_AEAD_NONCE_BYTES + len);
}

/* The same into s->rec. */
static int seal_chunk(struct sealer *s, const uint8_t file_id[FILE_ID], uint32_t idx, const uint8_t *plain,
                      size_t len)
{
    return seal_into(s, file_id, idx, plain, len, s->rec);
}

/* Reads chunk idx (clen plaintext bytes) of a blob file into out: as it is
 * on disk when plain, opened when encrypted (file_id non-NULL). */
static int read_plain_chunk(struct sealer *s, int fd, const uint8_t *file_id, uint32_t chunk_size, uint32_t idx,
                            size_t clen, uint8_t *out)
{
    if (!file_id) return pread_exact(fd, out, clen, rec_off(false, chunk_size, idx));
    int rc = pread_exact(fd, s->rec, clen + REC_OVERHEAD, rec_off(true, chunk_size, idx));
    if (rc) return rc;
    uint8_t ad[CHUNK_AD];
    chunk_ad(ad, file_id, idx);
    rc = sbx_aead_open(s->aead, s->key, s->rec, ad, sizeof ad, s->rec + SBX_AEAD_NONCE_BYTES, clen, out,
                       s->rec + SBX_AEAD_NONCE_BYTES + clen);
    if (rc == SBX_ECRYPTO) {
        sbx_warn("blob store: chunk %u failed authentication (damaged or tampered with)", idx);
        return SBX_ECORRUPT;
    }
    return rc;
}

void sbx_blob_sha256(const void *data, size_t len, uint8_t out[SBX_BLOB_HASH_BYTES])
{
    sbx_sha256(data, len, out);
}

/* ---- Hashing while copying ---------------------------------------------- */

static void hasher_init(struct hasher *h)
{
    memset(h, 0, sizeof *h);
    sbx_sha256_init(&h->whole);
    sbx_sha256_init(&h->chunk);
}

static void hasher_free(struct hasher *h)
{
    free(h->chunks);
    memset(h, 0, sizeof *h);
}

static int hasher_push(struct hasher *h, const uint8_t hash[HASH])
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        uint8_t *p = realloc(h->chunks, cap * HASH);
        if (!p) return SBX_ENOMEM;
        h->chunks = p;
        h->cap = cap;
    }
    memcpy(h->chunks + h->n * HASH, hash, HASH);
    h->n++;
    return 0;
}

/* Closes the current chunk; its state starts over for the next. */
static int hasher_close_chunk(struct hasher *h)
{
    uint8_t out[HASH];
    sbx_sha256_final(&h->chunk, out);
    sbx_sha256_init(&h->chunk);
    h->fill = 0;
    return hasher_push(h, out);
}

static int hasher_update(struct hasher *h, const uint8_t *p, size_t len)
{
    if (len > SBX_MAX_BLOB_BYTES - h->size) return SBX_ETOOBIG;
    while (len > 0) {
        size_t room = SBX_BLOB_CHUNK - h->fill;
        size_t take = len < room ? len : room;
        sbx_sha256_update2(&h->whole, &h->chunk, p, take);
        h->fill += (uint32_t)take;
        h->size += take;
        p += take;
        len -= take;
        if (h->fill == SBX_BLOB_CHUNK) {
            int rc = hasher_close_chunk(h);
            if (rc) return rc;
        }
    }
    return 0;
}

static int hasher_final(struct hasher *h, uint8_t out[HASH])
{
    sbx_sha256_final(&h->whole, out);
    return h->fill > 0 ? hasher_close_chunk(h) : 0;
}

/* SHA-256 of a buffer and of each of its n chunks, in one two-stream pass. */
static void hash_buf(const uint8_t *p, size_t len, uint32_t n, uint8_t whole[HASH], uint8_t *chunks)
{
    sbx_sha256_ctx w, c;
    sbx_sha256_init(&w);
    for (uint32_t i = 0; i < n; i++) {
        size_t off = (size_t)i * SBX_BLOB_CHUNK;
        size_t clen = chunk_len(len, SBX_BLOB_CHUNK, i);
        sbx_sha256_init(&c);
        sbx_sha256_update2(&w, &c, p + off, clen);
        sbx_sha256_final(&c, chunks + (size_t)i * HASH);
    }
    sbx_sha256_final(&w, whole);
}

/* SHA-256 of the `size` bytes of the blob in fd, read chunk by chunk
 * (opened when encrypted: file_id non-NULL). */
static int hash_fd(sbx_blobstore *bs, int fd, const uint8_t *file_id, uint64_t size, uint32_t chunk_size,
                   uint8_t out[HASH])
{
    int rc = 0;
    uint8_t *buf = malloc(IO_BUF);
    sbx_sha256_ctx ctx;
    _Static_assert(IO_BUF >= SBX_BLOB_CHUNK, "a chunk fits the buffer");
    if (!buf) return SBX_ENOMEM;
    sbx_sha256_init(&ctx);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (uint32_t idx = 0, n = chunks_for(size, chunk_size); idx < n; idx++) {
        size_t want = chunk_len(size, chunk_size, idx);
        if ((rc = read_plain_chunk(&bs->seal, fd, file_id, chunk_size, idx, want, buf)) != 0) goto fail;
        sbx_sha256_update(&ctx, buf, want);
    }
    sbx_sha256_final(&ctx, out);
fail:
    free(buf);
    return rc;
}

/* ---- Database ----------------------------------------------------------- */

/* A unit of work is one transaction, or a savepoint inside the caller's. */
static int tx_begin(sbx_blobstore *bs, bool *nested)
{
    *nested = !sqlite3_get_autocommit(sbx_store_db(bs->store));
    return *nested ? sbx_store_exec(bs->store, "SAVEPOINT sbx_blob") : sbx_store_begin(bs->store);
}

static int tx_commit(sbx_blobstore *bs, bool nested)
{
    return nested ? sbx_store_exec(bs->store, "RELEASE sbx_blob") : sbx_store_commit(bs->store);
}

static void tx_rollback(sbx_blobstore *bs, bool nested)
{
    if (nested) {
        sqlite3_exec(sbx_store_db(bs->store), "ROLLBACK TO sbx_blob; RELEASE sbx_blob", NULL, NULL, NULL);
    } else {
        sbx_store_rollback(bs->store);
    }
}

/* Steps a statement that returns no rows, and resets it. */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : sbx_store_err(rc);
}

static int row_get(sbx_blobstore *bs, const uint8_t hash[HASH], struct row *r)
{
    sqlite3_stmt *st = sbx_store_stmt(bs->store, SQL_ROW);
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SBX_ENOENT : sbx_store_err(rc);
    }
    int64_t size = sqlite3_column_int64(st, 0);
    int64_t cs = sqlite3_column_int64(st, 1);
    const char *kind = (const char *)sqlite3_column_text(st, 2);
    r->complete = sqlite3_column_int(st, 3) != 0;
    r->stored_at = sqlite3_column_int64(st, 4);
    r->last_access_at = sqlite3_column_int64(st, 5);
    rc = SBX_ECORRUPT;
    for (size_t k = 0; kind && k < SBX_ARRAY_LEN(kind_names); k++) {
        if (strcmp(kind, kind_names[k]) == 0) {
            r->kind = (sbx_blob_kind)k;
            rc = 0;
        }
    }
    sqlite3_reset(st);
    /* The rows steer file offsets: a damaged or foreign row must not. */
    if (size < 0 || (uint64_t)size > SBX_MAX_BLOB_BYTES || cs <= 0 || cs > SBX_BLOB_CHUNK)
        rc = SBX_ECORRUPT;
    if (rc) return rc;
    r->size = (uint64_t)size;
    r->chunk_size = (uint32_t)cs;
    r->n_chunks = chunks_for(r->size, r->chunk_size);
    return 0;
}

/* Number of chunk rows and of those present. */
static int count_chunks(sbx_blobstore *bs, const uint8_t hash[HASH], int64_t *total, int64_t *have)
{
    sqlite3_stmt *st = sbx_store_stmt(bs->store, SQL_COUNT_HAVE);
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *total = sqlite3_column_int64(st, 0);
        *have = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : sbx_store_err(rc);
}

/* Reads the chunk list of a blob of n chunks: the first min(n, cap) chunk
 * hashes, in order, into out, and with `have` (n bytes) whether each chunk
 * is present (1) or not (0). The rows must be exactly chunks 0..n-1, each
 * with a 32-byte hash: the rows steer what is accepted and served, so a
 * damaged or foreign list is SBX_ECORRUPT, never a partial answer. */
static int chunk_list(sbx_blobstore *bs, const uint8_t hash[HASH], uint32_t n, uint8_t *out, size_t cap,
                      uint8_t *have)
{
    sqlite3_stmt *st = sbx_store_stmt(bs->store, SQL_CHUNK_LIST);
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
    uint32_t i = 0;
    int rc;
    /* Bounded: a row past the n-th ends the loop as corrupt. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (i == n || sqlite3_column_int64(st, 0) != i || sqlite3_column_bytes(st, 1) != HASH) {
            rc = SQLITE_CORRUPT;
            break;
        }
        if (i < cap) memcpy(out + (size_t)i * HASH, sqlite3_column_blob(st, 1), HASH);
        if (have) have[i] = sqlite3_column_int(st, 2) != 0;
        i++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return sbx_store_err(rc);
    return i == n ? 0 : SBX_ECORRUPT;
}

static int set_have(sbx_blobstore *bs, const uint8_t hash[HASH], uint32_t idx, int have)
{
    sqlite3_stmt *st = sbx_store_stmt(bs->store, SQL_SET_HAVE);
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, idx);
    sqlite3_bind_int(st, 3, have);
    return step_done(st);
}

/* Sets have = `have` on every chunk i < n with sel[i] == match: one
 * transaction (or a savepoint in the caller's), none when no chunk
 * matches. */
static int set_have_where(sbx_blobstore *bs, const uint8_t hash[HASH], const uint8_t *sel, uint8_t match,
                          uint32_t n, int have)
{
    bool nested, any = false;
    for (uint32_t i = 0; i < n; i++) any |= sel[i] == match;
    if (!any) return 0;
    int rc = tx_begin(bs, &nested);
    if (rc) return rc;
    for (uint32_t i = 0; i < n && rc == 0; i++)
        if (sel[i] == match) rc = set_have(bs, hash, i, have);
    if (rc == 0) rc = tx_commit(bs, nested);
    if (rc) tx_rollback(bs, nested);
    return rc;
}

static int exec_hash(sbx_blobstore *bs, const char *sql, const uint8_t hash[HASH], int *changes)
{
    sqlite3_stmt *st = sbx_store_stmt(bs->store, sql);
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
    int rc = step_done(st);
    if (changes) *changes = sqlite3_changes(sbx_store_db(bs->store));
    return rc;
}

/* Writes the blob row and its chunk rows, replacing any earlier ones. */
static int db_put(sbx_blobstore *bs, const uint8_t hash[HASH], uint64_t size, sbx_blob_kind kind,
                  bool complete, const uint8_t *chunks, size_t n)
{
    bool nested;
    int rc = tx_begin(bs, &nested);
    if (rc) return rc;
    sqlite3_stmt *st = sbx_store_stmt(bs->store, complete ? SQL_PUT_COMPLETE : SQL_PUT_PARTIAL);
    if (!st) { rc = SBX_EDB; goto fail; }
    sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)size);
    sqlite3_bind_int64(st, 3, SBX_BLOB_CHUNK);
    sqlite3_bind_text(st, 4, kind_names[kind], -1, SQLITE_STATIC);
    if (complete) sqlite3_bind_int64(st, 5, sbx_now_ms());
    if ((rc = step_done(st)) != 0) goto fail;
    if ((rc = exec_hash(bs, SQL_DEL_CHUNKS, hash, NULL)) != 0) goto fail;
    for (size_t i = 0; i < n; i++) {
        if (!(st = sbx_store_stmt(bs->store, SQL_ADD_CHUNK))) { rc = SBX_EDB; goto fail; }
        sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)i);
        sqlite3_bind_blob(st, 3, chunks + i * HASH, HASH, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, complete ? 1 : 0);
        if ((rc = step_done(st)) != 0) goto fail;
    }
    if ((rc = tx_commit(bs, nested)) != 0) goto fail;
    return 0;
fail:
    tx_rollback(bs, nested);
    return rc;
}

static void touch_row(sbx_blobstore *bs, const uint8_t hash[HASH], const struct row *r)
{
    int64_t now = sbx_now_ms();
    if (r->last_access_at <= now && now - r->last_access_at < TOUCH_EVERY_MS) return;
    sqlite3_stmt *st = sbx_store_stmt(bs->store, SQL_TOUCH);
    if (!st) return;
    sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    /* A lost touch only ages a blob for eviction: never fail a read on it. */
    int rc = step_done(st);
    if (rc) sbx_debug("blob touch failed: %s", sbx_strerror(rc));
}

/* 0 when the blob is held complete (row and file), with its row in *r. */
static int held(sbx_blobstore *bs, const uint8_t hash[HASH], struct row *r)
{
    int rc = row_get(bs, hash, r);
    if (rc) return rc;
    if (!r->complete) return SBX_ENOENT;
    char path[PATH_MAX];
    final_path(bs, hash, path);
    struct stat st;
    if (stat(path, &st) != 0) return errno == ENOENT ? SBX_ENOENT : errno_rc();
    return 0;
}

/* ---- Opening ------------------------------------------------------------ */

static bool is_hex_name(const char *name, uint8_t hash[HASH])
{
    return strlen(name) == HEX_LEN && sbx_hex_decode(hash, HASH, name) == 0;
}

static bool old_enough(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    return time(NULL) - st.st_mtime >= SWEEP_MIN_AGE_S;
}

/* Removes temp files whose writer is gone: a live writer holds a flock on
 * its temp file, and the kernel drops it when the process dies. */
static void sweep_tmp(sbx_blobstore *bs)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tmp", bs->root);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !old_enough(dirfd(d), e->d_name)) continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            sbx_info("blob store: removing stale temp file %s", e->d_name);
            unlinkat(dirfd(d), e->d_name, 0);
        }
        if (fd >= 0) close(fd);
    }
    closedir(d);
}

static const char SQL_PARTIALS[] = "SELECT hash FROM blobs WHERE complete = 0";

/* In an encrypted store a file name is a keyed hash that cannot be turned
 * back into the blob's hash: a partial file is live when one of the
 * partial rows (few: transfers under way) has its name. 1 live, 0 not, -1
 * unsure (a database error). */
static int enc_partial_live(sbx_blobstore *bs, const char *name)
{
    sqlite3_stmt *st = sbx_store_stmt(bs->store, SQL_PARTIALS);
    if (!st) return -1;
    int live = 0, rc;
    while (!live && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char hex[HEX_LEN + 1];
        if (sqlite3_column_bytes(st, 0) != HASH) continue;
        blob_name(bs, sqlite3_column_blob(st, 0), hex);
        live = strcmp(hex, name) == 0;
    }
    if (!live && rc != SQLITE_DONE) live = -1;
    sqlite3_reset(st);
    return live;
}

/* Removes partial files with no partial row (a crash between creating the
 * file and recording it, or a row deleted while a file stayed). */
static void sweep_partial(sbx_blobstore *bs)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/partial", bs->root);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !old_enough(dirfd(d), e->d_name)) continue;
        uint8_t hash[HASH];
        struct row r;
        if (bs->enc) {
            if (enc_partial_live(bs, e->d_name) != 0) continue; /* live, or unsure: keep it */
        } else if (is_hex_name(e->d_name, hash)) {
            int rc = row_get(bs, hash, &r);
            if (rc == 0 && !r.complete) continue;
            if (rc != 0 && rc != SBX_ENOENT) continue; /* unsure: keep it */
        }
        sbx_info("blob store: removing orphan partial file %s", e->d_name);
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int sbx_blobstore_open(sbx_blobstore **out, const char *data_dir, sbx_store *store)
{
    int rc;
    if (!out || !data_dir || !store) return SBX_EINVAL;
    sbx_blobstore *bs = calloc(1, sizeof *bs);
    if (!bs) return SBX_ENOMEM;
    bs->store = store;
    int n = snprintf(bs->root, sizeof bs->root, "%s/blobs", data_dir);
    if (n < 0 || (size_t)n >= sizeof bs->root) { rc = SBX_ETOOBIG; goto fail; }
    uint8_t key[SBX_AEAD_KEY_BYTES];
    if (sbx_store_subkey(store, SBX_SUBKEY_BLOB_DATA, key) == 0) {
        /* The store is encrypted, so are its blobs. */
        bs->enc = true;
        rc = sealer_init(&bs->seal, key, REC_MAX);
        sodium_memzero(key, sizeof key);
        if (rc) goto fail;
        sbx_store_subkey(store, SBX_SUBKEY_BLOB_NAME, bs->k_name);
        sbx_store_subkey(store, SBX_SUBKEY_BLOB_HEADER, bs->k_hdr);
    }
    char dir[PATH_MAX];
    if ((rc = sbx_mkdir_p(bs->root, DIR_MODE)) != 0) goto fail;
    snprintf(dir, sizeof dir, "%s/tmp", bs->root);
    if ((rc = mkdir_durable(dir)) != 0) goto fail;
    snprintf(dir, sizeof dir, "%s/partial", bs->root);
    if ((rc = mkdir_durable(dir)) != 0) goto fail;
    sweep_tmp(bs);
    sweep_partial(bs);
    *out = bs;
    return 0;
fail:
    sbx_blobstore_close(bs);
    return rc;
}

void sbx_blobstore_close(sbx_blobstore *bs)
{
    if (!bs) return;
    sbx_blob_batch_abort(bs);
    sealer_free(&bs->seal);
    sbx_chunkbuf_put(bs->bounce);
    sodium_memzero(bs->k_name, sizeof bs->k_name);
    sodium_memzero(bs->k_hdr, sizeof bs->k_hdr);
    free(bs);
}

/* ---- Ingest ------------------------------------------------------------- */

static int tmp_create(sbx_blobstore *bs, char path[PATH_MAX], int *fd_out)
{
    snprintf(path, PATH_MAX, "%s/tmp/put-XXXXXX", bs->root);
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) return errno_rc();
    /* The lock tells the sweeper of another handle that this file is live. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fchmod(fd, FILE_MODE) != 0) {
        int rc = errno_rc();
        close(fd);
        unlink(path);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* Moves a written temp file under its hash name and records it. The temp
 * file is gone afterwards whatever happens: in place or removed. */
static int install(sbx_blobstore *bs, sbx_blob_kind kind, const char *tmp, int fd,
                   const uint8_t hash[HASH], uint64_t size, const uint8_t *chunks, size_t n)
{
    char dst[PATH_MAX];
    final_path(bs, hash, dst);
    int rc = fsync(fd) == 0 ? 0 : errno_rc();
    if (close(fd) != 0 && rc == 0) rc = errno_rc();
    if (rc == 0) rc = ensure_fanout(bs, hash);
    if (rc == 0 && rename(tmp, dst) != 0) rc = errno_rc();
    if (rc) {
        unlink(tmp);
        return rc;
    }
    if ((rc = fsync_parent(dst)) == 0) rc = db_put(bs, hash, size, kind, true, chunks, n);
    if (rc) {
        /* Not recorded, so not held: the file goes too. held() said no file
         * was here before, so this removes nothing of anyone else's. */
        unlink(dst);
        return rc;
    }
    /* A transfer of the same blob may have been under way: it is done. */
    char part[PATH_MAX];
    partial_path(bs, hash, part);
    unlink(part);
    return 0;
}

static void set_existed(bool *existed, bool v)
{
    if (existed) *existed = v;
}

int sbx_blob_put_buf(sbx_blobstore *bs, const void *data, size_t len, sbx_blob_kind kind,
                     uint8_t hash_out[SBX_BLOB_HASH_BYTES], bool *existed)
{
    if (!bs || (!data && len) || !kind_ok(kind)) return SBX_EINVAL;
    if (len > SBX_MAX_BLOB_BYTES) return SBX_ETOOBIG;
    set_existed(existed, false);
    const uint8_t *p = data;
    uint8_t hash[HASH];
    char tmp[PATH_MAX];
    int fd = -1;
    /* Every hash first, in one two-stream pass that costs what the whole-
     * blob hash alone would: a blob already held (a duplicate in an
     * import) then costs that pass and no write at all. */
    uint32_t n = chunks_for(len, SBX_BLOB_CHUNK);
    uint8_t *chunks = malloc((size_t)n * HASH + 1);
    if (!chunks) return SBX_ENOMEM;
    hash_buf(p, len, n, hash, chunks);
    if (hash_out) memcpy(hash_out, hash, HASH);
    struct row r;
    int rc = held(bs, hash, &r);
    if (rc == 0) {
        touch_row(bs, hash, &r);
        set_existed(existed, true);
        goto out;
    }
    if (rc != SBX_ENOENT) goto out;
    for (size_t i = 0; bs->batching && i < bs->n_staged; i++) {
        if (memcmp(bs->staged[i].hash, hash, HASH) == 0) {
            set_existed(existed, true);
            rc = 0;
            goto out;
        }
    }
    /* A full batch is installed first: each staged blob holds a file open. */
    if (bs->batching && bs->n_staged == SBX_MAX_BLOB_BATCH) {
        if ((rc = sbx_blob_batch_commit(bs)) != 0) goto out;
        if ((rc = sbx_blob_batch_begin(bs)) != 0) goto out;
    }
    if ((rc = tmp_create(bs, tmp, &fd)) != 0) goto out;
    /* Large blobs (originals) are written around the page cache
     * (direct_pwrite): straight from the caller's pages when they are
     * page-aligned (an importer's mmap of the source file), else through
     * the bounce buffer. Small ones (thumbnails) are not worth a second
     * descriptor. */
    int dfd = len >= SBX_BLOB_CHUNK ? open(tmp, O_WRONLY | O_DIRECT | O_CLOEXEC) : -1;
    if (dfd >= 0 && !bs->bounce) bs->bounce = bounce_map();
    uint8_t hdr[ENC_HDR];
    if (bs->enc) {
        header_make(bs, hash, len, hdr);
        rc = pwrite_all(fd, hdr, sizeof hdr, 0);
    }
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        size_t off = (size_t)i * SBX_BLOB_CHUNK;
        size_t clen = chunk_len(len, SBX_BLOB_CHUNK, i);
        if (bs->enc) {
            uint64_t at = rec_off(true, SBX_BLOB_CHUNK, i);
            rc = seal_chunk(&bs->seal, hdr, i, p + off, clen);
            if (rc == 0) rc = direct_pwrite(fd, &dfd, bs->bounce, bs->seal.rec, clen + REC_OVERHEAD, at);
        } else {
            rc = direct_pwrite(fd, &dfd, bs->bounce, p + off, clen, off);
        }
    }
    if (dfd >= 0) close(dfd);
    if (rc) {
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (bs->batching) {
        struct staged *sg = &bs->staged[bs->n_staged++];
        sg->fd = fd;
        memcpy(sg->hash, hash, HASH);
        sg->size = len;
        sg->kind = kind;
        sg->chunks = chunks;
        sg->n = n;
        memcpy(sg->tmp, tmp, PATH_MAX);
        return 0;
    }
    rc = install(bs, kind, tmp, fd, hash, len, chunks, n);
out:
    free(chunks);
    return rc;
}

/* ---- Batches ------------------------------------------------------------ */

int sbx_blob_batch_begin(sbx_blobstore *bs)
{
    if (!bs || bs->batching) return bs ? SBX_ESTATE : SBX_EINVAL;
    if (!bs->staged && !(bs->staged = calloc(SBX_MAX_BLOB_BATCH, sizeof *bs->staged))) return SBX_ENOMEM;
    bs->batching = true;
    bs->n_staged = 0;
    return 0;
}

/* Drops the staged blobs from index `from` on: files closed and removed. */
static void unstage(sbx_blobstore *bs, size_t from)
{
    for (size_t i = from; i < bs->n_staged; i++) {
        struct staged *sg = &bs->staged[i];
        if (sg->fd >= 0) close(sg->fd);
        unlink(sg->tmp);
        free(sg->chunks);
    }
}

/* Adds `dir` to the set of directories to fsync (each once). */
static int dirs_add(char (*dirs)[PATH_MAX], size_t *n, size_t cap, const char *dir)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(dirs[i], dir) == 0) return 0;
    SBX_ASSERT(*n < cap);
    snprintf(dirs[(*n)++], PATH_MAX, "%s", dir);
    return 0;
}

/* The fan-out directories of a blob, made when missing; the directories
 * whose entries changed go into the set to fsync. */
static int fanout_batched(const sbx_blobstore *bs, const uint8_t hash[HASH], char (*dirs)[PATH_MAX], size_t *nd,
                          size_t cap)
{
    char hex[HEX_LEN + 1], d1[PATH_MAX], d2[PATH_MAX];
    blob_name(bs, hash, hex);
    snprintf(d1, sizeof d1, "%s/%.2s", bs->root, hex);
    snprintf(d2, sizeof d2, "%s/%.2s/%.2s", bs->root, hex, hex + 2);
    if (mkdir(d1, DIR_MODE) == 0) dirs_add(dirs, nd, cap, bs->root);
    else if (errno != EEXIST) return errno_rc();
    if (mkdir(d2, DIR_MODE) == 0) dirs_add(dirs, nd, cap, d1);
    else if (errno != EEXIST) return errno_rc();
    return dirs_add(dirs, nd, cap, d2);
}

/* Installs the staged blobs in the order that keeps the guarantees: every
 * file's bytes durable (fsync; their writeback started as they were
 * written, so little is left), then the names (rename), then the
 * directories that changed (fsync, each once: one journal commit covers
 * them all), then the rows in one transaction. A crash before the rows
 * leaves whole files without rows: inert, adopted by the next put. */
int sbx_blob_batch_commit(sbx_blobstore *bs)
{
    if (!bs || !bs->batching) return bs ? SBX_ESTATE : SBX_EINVAL;
    bs->batching = false;
    size_t n = bs->n_staged, cap = 3 * n + 1, nd = 0, renamed = 0;
    if (n == 0) return 0;
    char(*dirs)[PATH_MAX] = malloc(cap * sizeof *dirs);
    int rc = dirs ? 0 : SBX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct staged *sg = &bs->staged[i];
        if (rc == 0 && fsync(sg->fd) != 0) rc = errno_rc();
        if (close(sg->fd) != 0 && rc == 0) rc = errno_rc();
        sg->fd = -1;
    }
    for (; renamed < n && rc == 0; renamed++) {
        struct staged *sg = &bs->staged[renamed];
        char dst[PATH_MAX];
        final_path(bs, sg->hash, dst);
        rc = fanout_batched(bs, sg->hash, dirs, &nd, cap);
        if (rc == 0 && rename(sg->tmp, dst) != 0) rc = errno_rc();
        if (rc) break;
    }
    for (size_t i = 0; i < nd && rc == 0; i++) rc = fsync_dir(dirs[i]);
    free(dirs);
    bool nested = false, in_tx = false;
    if (rc == 0) in_tx = (rc = tx_begin(bs, &nested)) == 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct staged *sg = &bs->staged[i];
        rc = db_put(bs, sg->hash, sg->size, sg->kind, true, sg->chunks, sg->n);
    }
    if (rc == 0) rc = tx_commit(bs, nested);
    if (rc != 0 && in_tx) tx_rollback(bs, nested);
    /* Not recorded, so not held: the named files go too, and the rest are
     * temp files. A named file stays when another writer (a transfer, an
     * upload, another import thread with the same bytes) recorded the same
     * blob since put_buf looked: the file under that name is then its, with
     * the same bytes. */
    for (size_t i = 0; i < n; i++) {
        struct staged *sg = &bs->staged[i];
        char path[PATH_MAX];
        struct row r;
        if (rc != 0 && i < renamed) {
            final_path(bs, sg->hash, path);
            if (held(bs, sg->hash, &r) != 0) unlink(path);
        } else if (rc != 0) {
            unlink(sg->tmp);
        } else {
            /* A transfer of the same blob may have been under way: done. */
            partial_path(bs, sg->hash, path);
            unlink(path);
        }
        free(sg->chunks);
    }
    bs->n_staged = 0;
    return rc;
}

void sbx_blob_batch_abort(sbx_blobstore *bs)
{
    if (!bs) return;
    if (bs->batching) unstage(bs, 0);
    bs->batching = false;
    bs->n_staged = 0;
    free(bs->staged);
    bs->staged = NULL;
}

int sbx_blob_writer_begin(sbx_blobstore *bs, sbx_blob_kind kind, sbx_blob_writer **out)
{
    if (!bs || !out || !kind_ok(kind)) return SBX_EINVAL;
    sbx_blob_writer *w = calloc(1, sizeof *w);
    if (!w) return SBX_ENOMEM;
    w->bs = bs;
    w->kind = kind;
    w->fd = -1;
    hasher_init(&w->h);
    int rc = 0;
    if (bs->enc) {
        rc = sealer_init(&w->seal, bs->seal.key, REC_MAX);
        if (rc == 0 && !(w->pending = malloc(SBX_BLOB_CHUNK))) rc = SBX_ENOMEM;
        randombytes_buf(w->file_id, sizeof w->file_id);
    }
    if (rc == 0) rc = tmp_create(bs, w->tmp, &w->fd);
    if (rc) {
        sbx_blob_writer_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Seals the pending plaintext as the next chunk and writes its record. */
static int writer_seal(sbx_blob_writer *w)
{
    uint64_t at = rec_off(true, SBX_BLOB_CHUNK, w->next_idx);
    size_t n = w->pending_len + REC_OVERHEAD;
    int rc = seal_chunk(&w->seal, w->file_id, w->next_idx, w->pending, w->pending_len);
    if (rc == 0) rc = pwrite_all(w->fd, w->seal.rec, n, at);
    if (rc == 0) kick_writeback(w->fd, at, n);
    w->next_idx++;
    w->pending_len = 0;
    return rc;
}

/* Encrypted writes gather a whole chunk before sealing it: a record is the
 * unit that range reads and transfers open. */
static int writer_push(sbx_blob_writer *w, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t take = SBX_BLOB_CHUNK - w->pending_len;
        if (take > len) take = len;
        memcpy(w->pending + w->pending_len, p, take);
        w->pending_len += take;
        p += take;
        len -= take;
        if (w->pending_len == SBX_BLOB_CHUNK) {
            int rc = writer_seal(w);
            if (rc) return rc;
        }
    }
    return 0;
}

int sbx_blob_writer_write(sbx_blob_writer *w, const void *data, size_t len)
{
    if (!w || (!data && len)) return SBX_EINVAL;
    if (w->err) return w->err;
    int rc = hasher_update(&w->h, data, len);
    if (rc == 0 && w->bs->enc) {
        rc = writer_push(w, data, len);
        w->err = rc;
        return rc;
    }
    /* At the end of what is written so far: the hasher counted len in. */
    if (rc == 0) rc = pwrite_all(w->fd, data, len, w->h.size - len);
    uint64_t whole = w->h.size - w->h.fill; /* up to the last chunk boundary */
    if (rc == 0 && whole > w->kicked) {
        kick_writeback(w->fd, w->kicked, whole - w->kicked);
        w->kicked = whole;
    }
    w->err = rc;
    return rc;
}

void sbx_blob_writer_abort(sbx_blob_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp);
    }
    hasher_free(&w->h);
    sealer_free(&w->seal);
    if (w->pending) sodium_memzero(w->pending, SBX_BLOB_CHUNK);
    free(w->pending);
    free(w);
}

int sbx_blob_writer_commit(sbx_blob_writer *w, const uint8_t *expect,
                           uint8_t hash_out[SBX_BLOB_HASH_BYTES], bool *existed)
{
    if (!w) return SBX_EINVAL;
    set_existed(existed, false);
    uint8_t hash[HASH];
    struct row r;
    int rc = w->err;
    if (rc == 0) rc = hasher_final(&w->h, hash);
    if (rc) goto fail;
    if (expect && memcmp(expect, hash, HASH) != 0) { rc = SBX_ECRYPTO; goto fail; }
    if (hash_out) memcpy(hash_out, hash, HASH);
    rc = held(w->bs, hash, &r);
    if (rc == 0) {
        touch_row(w->bs, hash, &r);
        set_existed(existed, true);
        goto fail; /* drops the temp file; rc is 0 */
    }
    if (rc != SBX_ENOENT) goto fail;
    if (w->bs->enc) {
        /* The last, shorter chunk, then the header binding the file to the
         * hash now known. */
        rc = w->pending_len > 0 ? writer_seal(w) : 0;
        uint8_t hdr[ENC_HDR];
        memcpy(hdr, w->file_id, FILE_ID);
        header_mac(w->bs->k_hdr, w->file_id, hash, w->h.size, hdr + FILE_ID);
        if (rc == 0) rc = pwrite_all(w->fd, hdr, sizeof hdr, 0);
        if (rc) goto fail;
    }
    rc = install(w->bs, w->kind, w->tmp, w->fd, hash, w->h.size, w->h.chunks, w->h.n);
    w->fd = -1; /* install closed it and moved or removed the file */
fail:
    sbx_blob_writer_abort(w);
    return rc;
}

int sbx_blob_put_file(sbx_blobstore *bs, const char *path, const uint8_t *expect,
                      sbx_blob_kind kind, uint8_t hash_out[SBX_BLOB_HASH_BYTES], bool *existed)
{
    if (!bs || !path || !kind_ok(kind)) return SBX_EINVAL;
    set_existed(existed, false);
    struct row r;
    int rc = expect ? held(bs, expect, &r) : SBX_ENOENT;
    if (rc == 0) {
        touch_row(bs, expect, &r);
        if (hash_out) memcpy(hash_out, expect, HASH);
        set_existed(existed, true);
        return 0;
    }
    if (rc != SBX_ENOENT) return rc;
    sbx_blob_writer *w = NULL;
    uint8_t *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_rc();
    struct stat st;
    if (fstat(fd, &st) != 0) { rc = errno_rc(); goto fail; }
    if (!S_ISREG(st.st_mode)) { rc = SBX_EINVAL; goto fail; }
    if ((uint64_t)st.st_size > SBX_MAX_BLOB_BYTES) { rc = SBX_ETOOBIG; goto fail; }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (!(buf = malloc(IO_BUF))) { rc = SBX_ENOMEM; goto fail; }
    if ((rc = sbx_blob_writer_begin(bs, kind, &w)) != 0) goto fail;
    /* Bounded by SBX_MAX_BLOB_BYTES: the writer refuses more. */
    for (;;) {
        ssize_t n = read(fd, buf, IO_BUF);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { rc = errno_rc(); goto fail; }
        if (n == 0) break;
        if ((rc = sbx_blob_writer_write(w, buf, (size_t)n)) != 0) goto fail;
    }
    rc = sbx_blob_writer_commit(w, expect, hash_out, existed);
    w = NULL;
fail:
    sbx_blob_writer_abort(w);
    free(buf);
    close(fd);
    return rc;
}

/* ---- Partial blobs ------------------------------------------------------ */

/* Creates (or recreates, empty) the partial file at its full size. */
static int partial_create(sbx_blobstore *bs, const uint8_t hash[HASH], uint64_t size)
{
    char path[PATH_MAX];
    partial_path(bs, hash, path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
    if (fd < 0) return errno_rc();
    int rc = 0;
    uint64_t on_disk = disk_size(bs->enc, size, SBX_BLOB_CHUNK);
    if (on_disk > 0) {
        int e = posix_fallocate(fd, 0, (off_t)on_disk);
        /* A file system without fallocate still works, without the early
         * full-disk check. */
        if (e == EOPNOTSUPP || e == EINVAL) e = ftruncate(fd, (off_t)on_disk) == 0 ? 0 : errno;
        if (e) rc = sbx_err_from_errno(e);
    }
    if (rc == 0 && bs->enc) {
        /* A new file id: chunks written under an earlier one (a reset
         * partial) no longer open. */
        uint8_t hdr[ENC_HDR];
        header_make(bs, hash, size, hdr);
        rc = pwrite_all(fd, hdr, sizeof hdr, 0);
    }
    /* No fsync here, of the file or of its directory: nothing trusts the
     * new file until a chunk is marked present, which comes only after an
     * fdatasync of the file (its header included); and a file that a
     * crash took away is simply created again by the next begin, every
     * chunk missing. Two journal commits per blob, on the thread that
     * receives, were a fifth of a transfer's time. */
    if (close(fd) != 0 && rc == 0) rc = errno_rc();
    if (rc) unlink(path);
    return rc;
}

/* Is the recorded chunk list of a partial blob of n chunks `chunks`? A
 * list damaged in the database is not: the caller starts over. */
static int same_chunks(sbx_blobstore *bs, const uint8_t hash[HASH], const uint8_t *chunks, uint32_t n,
                       bool *same)
{
    uint8_t *list = malloc((size_t)n * HASH + 1);
    if (!list) return SBX_ENOMEM;
    int rc = chunk_list(bs, hash, n, list, n, NULL);
    *same = rc == 0 && (n == 0 || memcmp(list, chunks, (size_t)n * HASH) == 0);
    free(list);
    return rc == SBX_ECORRUPT ? 0 : rc;
}

int sbx_blob_partial_begin(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES],
                           uint64_t size, sbx_blob_kind kind, const uint8_t *chunk_hashes, size_t n)
{
    if (!bs || !hash || !kind_ok(kind) || (n && !chunk_hashes)) return SBX_EINVAL;
    if (size > SBX_MAX_BLOB_BYTES) return SBX_ETOOBIG;
    if (n != chunks_for(size, SBX_BLOB_CHUNK)) return SBX_EINVAL;
    struct row r;
    int rc = row_get(bs, hash, &r);
    if (rc != 0 && rc != SBX_ENOENT) return rc;
    if (rc == 0 && r.complete) {
        rc = held(bs, hash, &r);
        if (rc != SBX_ENOENT) return rc == 0 ? SBX_EEXIST : rc;
        /* Recorded but its file is gone: fetch it again. */
    } else if (rc == 0) {
        bool same;
        if (r.size != size || r.chunk_size != SBX_BLOB_CHUNK) return SBX_ESTATE;
        if ((rc = same_chunks(bs, hash, chunk_hashes, r.n_chunks, &same)) != 0) return rc;
        if (!same) return SBX_ESTATE;
        char path[PATH_MAX];
        struct stat st;
        partial_path(bs, hash, path);
        int found = stat(path, &st) == 0 ? 0 : errno;
        if (found == 0 && (uint64_t)st.st_size == disk_size(bs->enc, size, SBX_BLOB_CHUNK)) return 0; /* resume */
        if (found == ENOENT) {
            /* No partial file: maybe an install renamed it into place and
             * its record step failed. finish checks that file and records
             * it; a blob complete and verified is not fetched again. */
            rc = sbx_blob_partial_finish(bs, hash);
            if (rc == 0) return SBX_EEXIST;
            /* SBX_ESTATE: chunks missing, no file in place; SBX_ECORRUPT:
             * a file in place did not verify (finish removed it). Both
             * start over below. */
            if (rc != SBX_ESTATE && rc != SBX_ECORRUPT) return rc;
        }
    }
    /* New, or its file went missing: (re)create the file, then the rows
     * with every chunk missing. */
    if ((rc = partial_create(bs, hash, size)) != 0) return rc;
    if ((rc = db_put(bs, hash, size, kind, false, chunk_hashes, n)) != 0) {
        char path[PATH_MAX];
        partial_path(bs, hash, path);
        unlink(path);
    }
    return rc;
}

/* The row of a partial blob (not complete). */
static int partial_row(sbx_blobstore *bs, const uint8_t hash[HASH], struct row *r)
{
    int rc = row_get(bs, hash, r);
    if (rc) return rc;
    return r->complete ? SBX_ESTATE : 0;
}

static int open_partial(sbx_blobstore *bs, const uint8_t hash[HASH], int flags, int *fd)
{
    char path[PATH_MAX];
    partial_path(bs, hash, path);
    *fd = open(path, flags | O_CLOEXEC);
    return *fd < 0 ? errno_rc() : 0;
}

int sbx_blob_partial_missing(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES],
                             uint32_t *idx, size_t cap, size_t *n)
{
    if (!bs || !hash || !n || (cap && !idx)) return SBX_EINVAL;
    *n = 0;
    struct row r;
    int rc = row_get(bs, hash, &r);
    if (rc) return rc;
    if (r.complete) return 0;
    sqlite3_stmt *st = sbx_store_stmt(bs->store, SQL_MISSING);
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
    size_t count = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count < cap) idx[count] = (uint32_t)sqlite3_column_int64(st, 0);
        count++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return sbx_store_err(rc);
    *n = count;
    return 0;
}

/* Empties the partial file and marks every chunk missing: what is on disk
 * can no longer be trusted. */
static int partial_reset(sbx_blobstore *bs, const uint8_t hash[HASH], const struct row *r)
{
    int rc = partial_create(bs, hash, r->size);
    if (rc == 0) rc = exec_hash(bs, SQL_RESET_HAVE, hash, NULL);
    return rc;
}

/* Moves a partial file, verified whole and synced, under the blob's name,
 * durably: the fan-out directories, the rename, then an fsync of both
 * directories, so that a crash can neither lose the new name nor bring
 * back the partial one. */
static int rename_durable(sbx_blobstore *bs, const uint8_t hash[HASH], const char *src, const char *dst)
{
    int rc = ensure_fanout(bs, hash);
    if (rc) return rc;
    if (rename(src, dst) != 0) return errno_rc();
    if ((rc = fsync_parent(dst)) != 0) return rc;
    return fsync_parent(src);
}

/* Records a blob installed under its name: complete, every chunk present,
 * in one transaction (or a savepoint in the caller's). */
static int mark_complete(sbx_blobstore *bs, const uint8_t hash[HASH])
{
    bool nested;
    sqlite3_stmt *mark;
    int rc = tx_begin(bs, &nested);
    if (rc) return rc;
    if ((rc = exec_hash(bs, SQL_ALL_HAVE, hash, NULL)) != 0) goto fail;
    if (!(mark = sbx_store_stmt(bs->store, SQL_MARK_COMPLETE))) {
        rc = SBX_EDB;
        goto fail;
    }
    sqlite3_bind_blob(mark, 1, hash, HASH, SQLITE_STATIC);
    sqlite3_bind_int64(mark, 2, sbx_now_ms());
    if ((rc = step_done(mark)) != 0) goto fail;
    if ((rc = tx_commit(bs, nested)) != 0) goto fail;
    return 0;
fail:
    tx_rollback(bs, nested);
    return rc;
}

/* After a whole-file mismatch: re-reads every present chunk and marks those
 * that no longer match missing. *bad counts them. The chunks are read
 * before the transaction begins: a multi-gigabyte blob takes seconds to
 * read, and the write lock held meanwhile would stall every other writer
 * of the database (the daemon's loop among them). */
static int recheck_chunks(sbx_blobstore *bs, const uint8_t hash[HASH], const struct row *r, int fd,
                          const uint8_t *file_id, size_t *bad)
{
    *bad = 0;
    uint8_t *want = malloc((size_t)r->n_chunks * HASH + 1);
    uint8_t *buf = malloc(r->chunk_size);
    uint8_t *is_bad = calloc((size_t)r->n_chunks + 1, 1);
    int rc = SBX_ENOMEM;
    if (!want || !buf || !is_bad) goto fail;
    uint32_t n = r->n_chunks;
    if ((rc = chunk_list(bs, hash, n, want, n, NULL)) != 0) goto fail;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = chunk_len(r->size, r->chunk_size, i);
        uint8_t got[HASH];
        rc = read_plain_chunk(&bs->seal, fd, file_id, r->chunk_size, i, len, buf);
        if (rc == 0) sbx_sha256(buf, len, got);
        if (rc == SBX_ECORRUPT || (rc == 0 && memcmp(got, want + (size_t)i * HASH, HASH) != 0)) {
            is_bad[i] = 1;
            (*bad)++;
            rc = 0;
        }
        if (rc) goto fail;
    }
    rc = set_have_where(bs, hash, is_bad, 1, n, 0);
fail:
    free(want);
    free(buf);
    free(is_bad);
    return rc;
}

int sbx_blob_partial_finish(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES])
{
    if (!bs || !hash) return SBX_EINVAL;
    struct row r;
    int rc = row_get(bs, hash, &r);
    if (rc) return rc;
    if (r.complete) return held(bs, hash, &r);
    int64_t total = 0, have = 0;
    if ((rc = count_chunks(bs, hash, &total, &have)) != 0) return rc;
    if (total != r.n_chunks) return SBX_ECORRUPT;

    char src[PATH_MAX], dst[PATH_MAX];
    partial_path(bs, hash, src);
    final_path(bs, hash, dst);
    uint8_t got[HASH];
    int fd = open(src, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) return errno_rc();
    if (fd < 0) {
        /* A crash between the rename and the row update leaves the file in
         * place and the row partial: check it and record it. Whatever the
         * rows say of its chunks: an install through a handle renames the
         * file before its record step marks the last chunks present (in
         * the same transaction as the blob complete), so a failed record
         * leaves chunks marked missing that the file holds. */
        fd = open(dst, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT) return errno_rc();
        if (fd < 0 && have != total) return SBX_ESTATE;
        uint8_t file_id[FILE_ID];
        rc = fd < 0 ? SBX_ECORRUPT : bs->enc ? header_check(bs->k_hdr, fd, hash, r.size, file_id) : 0;
        if (rc == 0) rc = hash_fd(bs, fd, bs->enc ? file_id : NULL, r.size, r.chunk_size, got);
        if (fd >= 0) close(fd);
        if (rc == 0 && memcmp(got, hash, HASH) != 0) rc = SBX_ECORRUPT;
        /* The failed step may have been the directory sync after the
         * rename: synced again before the row says held. */
        if (rc == 0 && (rc = fsync_parent(dst)) == 0) return mark_complete(bs, hash);
        if (rc != SBX_ECORRUPT) return rc;
        unlink(dst);
        rc = partial_reset(bs, hash, &r);
        return rc ? rc : SBX_ECORRUPT;
    }
    if (have != total) {
        close(fd);
        return SBX_ESTATE;
    }
    struct stat st;
    uint8_t file_id[FILE_ID];
    if (fstat(fd, &st) != 0) { rc = errno_rc(); goto fail; }
    if ((uint64_t)st.st_size != disk_size(bs->enc, r.size, r.chunk_size) ||
        (bs->enc && header_check(bs->k_hdr, fd, hash, r.size, file_id) != 0)) {
        close(fd);
        rc = partial_reset(bs, hash, &r);
        return rc ? rc : SBX_ECORRUPT;
    }
    rc = hash_fd(bs, fd, bs->enc ? file_id : NULL, r.size, r.chunk_size, got);
    /* Encrypted, a damaged chunk fails its tag before the whole hash can
     * fail: either way the chunks are checked one by one. */
    bool mismatch = rc == 0 ? memcmp(got, hash, HASH) != 0 : bs->enc && rc == SBX_ECORRUPT;
    if (rc != 0 && !mismatch) goto fail;
    if (mismatch) {
        size_t bad = 0;
        rc = recheck_chunks(bs, hash, &r, fd, bs->enc ? file_id : NULL, &bad);
        if (rc == 0) rc = bad ? SBX_ECORRUPT : SBX_ECRYPTO;
        goto fail;
    }
    if (fsync(fd) != 0) { rc = errno_rc(); goto fail; }
    close(fd);
    fd = -1;
    if ((rc = rename_durable(bs, hash, src, dst)) != 0) return rc;
    return mark_complete(bs, hash);
fail:
    if (fd >= 0) close(fd);
    return rc;
}

/* ---- Partial blobs through a handle ------------------------------------- */

/* Where a chunk of an open partial blob is. */
enum { PC_MISSING = 0, PC_WRITTEN, PC_DURABLE, PC_RECORDED };

struct sbx_blob_partial {
    sbx_blobstore *bs; /* only its immutable fields (keys, md, paths) off the store's thread */
    uint8_t hash[HASH];
    uint64_t size;
    uint32_t chunk_size, n_chunks;
    uint8_t *want;  /* the recorded chunk hashes, n_chunks * HASH */
    uint8_t *where; /* PC_* per chunk */
    int fd;
    int dfd; /* the same file with O_DIRECT, or -1 */
    uint8_t *bounce; /* page-aligned, a record's size (an sbx_chunkbuf), or NULL */
    bool enc;
    uint8_t file_id[FILE_ID];
    struct sealer seal;
    /* The whole blob's SHA-256 over chunks [0, hashed): fed as chunks land
     * in order, so finishing needs no second pass over the file. */
    sbx_sha256_ctx whole; /* chunks 0..hashed-1 */
    uint32_t hashed;
    uint8_t *scratch; /* one chunk, for chunks hashed from the file */
    bool installed;   /* verified whole, synced, renamed into place */
    char src[PATH_MAX], dst[PATH_MAX];
};

void sbx_blob_partial_close(sbx_blob_partial *p)
{
    if (!p) return;
    if (p->fd >= 0) close(p->fd);
    if (p->dfd >= 0) close(p->dfd);
    sbx_chunkbuf_put(p->bounce);
    if (p->enc) sealer_free(&p->seal);
    free(p->want);
    free(p->where);
    free(p->scratch);
    sodium_memzero(p, sizeof *p);
    free(p);
}

int sbx_blob_partial_open(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES], sbx_blob_partial **out)
{
    if (!bs || !hash || !out) return SBX_EINVAL;
    *out = NULL;
    struct row r;
    int rc = partial_row(bs, hash, &r);
    if (rc) return rc;
    sbx_blob_partial *p = calloc(1, sizeof *p);
    if (!p) return SBX_ENOMEM;
    p->fd = p->dfd = -1;
    p->bs = bs;
    memcpy(p->hash, hash, HASH);
    p->size = r.size;
    p->chunk_size = r.chunk_size;
    p->n_chunks = r.n_chunks;
    p->enc = bs->enc;
    partial_path(bs, hash, p->src);
    final_path(bs, hash, p->dst);
    rc = SBX_ENOMEM;
    p->want = malloc((size_t)r.n_chunks * HASH + 1);
    p->where = calloc((size_t)r.n_chunks + 1, 1);
    sbx_sha256_init(&p->whole);
    if (!p->want || !p->where) goto fail;
    if (p->enc && (rc = sealer_init(&p->seal, bs->seal.key, REC_MAX)) != 0) goto fail;
    /* The chunk list and what is already present: both are fixed while the
     * handle is open (only the handle writes this partial). */
    if ((rc = chunk_list(bs, hash, r.n_chunks, p->want, r.n_chunks, p->where)) != 0) goto fail;
    for (uint32_t i = 0; i < r.n_chunks; i++) p->where[i] = p->where[i] ? PC_RECORDED : PC_MISSING;
    if ((rc = open_partial(bs, hash, O_RDWR, &p->fd)) != 0) goto fail;
    if (p->enc) {
        rc = header_check(bs->k_hdr, p->fd, hash, r.size, p->file_id);
        if (rc == SBX_ECORRUPT) {
            /* A damaged header makes every chunk unreadable: start over. */
            close(p->fd);
            p->fd = -1;
            if ((rc = partial_reset(bs, hash, &r)) != 0) goto fail;
            memset(p->where, PC_MISSING, r.n_chunks);
            if ((rc = open_partial(bs, hash, O_RDWR, &p->fd)) != 0) goto fail;
            rc = header_check(bs->k_hdr, p->fd, hash, r.size, p->file_id);
        }
        if (rc) goto fail;
    }
    /* Chunks go to the disk with O_DIRECT, straight from memory, with no
     * copy into the page cache: on the 2-core VMs this runs on, filling
     * fresh page cache cost 0.8-2 s of CPU per GB, the direct write next
     * to none. A file system without O_DIRECT gets buffered writes. */
    p->dfd = open(p->src, O_WRONLY | O_DIRECT | O_CLOEXEC);
    *out = p;
    return 0;
fail:
    sbx_blob_partial_close(p);
    return rc;
}

/* The handle's bounce buffer, made at the first direct write. */
static bool bounce_ready(sbx_blob_partial *p)
{
    if (p->bounce) return true;
    if (p->dfd < 0) return false;
    p->bounce = bounce_map();
    return p->bounce != NULL;
}

/* Writes the n bytes of a chunk (its record, when encrypted) at offset at,
 * around the page cache where it can (direct_pwrite). */
static int write_rec(sbx_blob_partial *p, const uint8_t *bytes, size_t n, uint64_t at)
{
    return direct_pwrite(p->fd, &p->dfd, bounce_ready(p) ? p->bounce : NULL, bytes, n, at);
}

/* Feeds the whole-blob hash every chunk from `hashed` on that is on disk,
 * reading back those not in hand (written ahead of a gap, or before a
 * restart). `idx`/`data` is the chunk just written, in memory. */
static int whole_advance(sbx_blob_partial *p, uint32_t idx, const uint8_t *data)
{
    while (p->hashed < p->n_chunks && p->where[p->hashed] != PC_MISSING) {
        uint32_t i = p->hashed;
        size_t len = chunk_len(p->size, p->chunk_size, i);
        const uint8_t *bytes = data;
        if (i != idx || !data) {
            if (!p->scratch && !(p->scratch = malloc(p->chunk_size))) return SBX_ENOMEM;
            int rc = read_plain_chunk(&p->seal, p->fd, p->enc ? p->file_id : NULL, p->chunk_size, i, len,
                                      p->scratch);
            if (rc) return rc;
            bytes = p->scratch;
        }
        sbx_sha256_update(&p->whole, bytes, len);
        p->hashed++;
    }
    return 0;
}

int sbx_blob_partial_put(sbx_blob_partial *p, uint32_t idx, const void *data, size_t len)
{
    if (!p || (!data && len) || p->installed) return SBX_EINVAL;
    if (idx >= p->n_chunks || len != chunk_len(p->size, p->chunk_size, idx)) return SBX_EINVAL;
    if (p->where[idx] != PC_MISSING) return 0; /* verified and written before */
    uint8_t got[HASH];
    int rc;
    /* A chunk that continues the whole-blob hash (the usual case: chunks
     * arrive in order) feeds both states in one two-stream pass. The state
     * is plain data: a copy puts it back if the chunk is refused. */
    bool fed = idx == p->hashed && p->whole.len % 64 == 0; /* (chunk sizes are whole blocks, but rows are input) */
    sbx_sha256_ctx before = p->whole;
    if (fed) {
        sbx_sha256_ctx c;
        sbx_sha256_init(&c);
        sbx_sha256_update2(&p->whole, &c, data, len);
        sbx_sha256_final(&c, got);
    } else {
        sbx_sha256(data, len, got);
    }
    if (memcmp(got, p->want + (size_t)idx * HASH, HASH) != 0) {
        p->whole = before;
        return SBX_ECRYPTO;
    }
    uint64_t at = rec_off(p->enc, p->chunk_size, idx);
    size_t n = p->enc ? len + REC_OVERHEAD : len;
    const uint8_t *bytes = data;
    rc = 0;
    if (p->enc) {
        /* Sealed straight into the bounce buffer at the offset's alignment
         * when writes go direct: its whole pages then leave from there. */
        uint8_t *rec = bounce_ready(p) ? p->bounce + at % DIRECT_ALIGN : p->seal.rec;
        rc = seal_into(&p->seal, p->file_id, idx, data, len, rec);
        bytes = rec;
    }
    if (rc == 0) rc = write_rec(p, bytes, n, at);
    if (rc) {
        p->whole = before;
        return rc;
    }
    p->where[idx] = PC_WRITTEN;
    if (fed) p->hashed++;
    /* This chunk is in; a chunk that cannot be read back for the whole
     * hash is install's to report (it tries again and fails there). */
    (void)whole_advance(p, idx, data);
    return 0;
}

int sbx_blob_partial_flush(sbx_blob_partial *p)
{
    if (!p) return SBX_EINVAL;
    bool any = false;
    for (uint32_t i = 0; i < p->n_chunks; i++) any |= p->where[i] == PC_WRITTEN;
    if (!any) return 0;
    if (fdatasync(p->fd) != 0) return errno_rc();
    for (uint32_t i = 0; i < p->n_chunks; i++)
        if (p->where[i] == PC_WRITTEN) p->where[i] = PC_DURABLE;
    return 0;
}

int sbx_blob_partial_install(sbx_blob_partial *p)
{
    if (!p) return SBX_EINVAL;
    if (p->installed) return 0;
    for (uint32_t i = 0; i < p->n_chunks; i++)
        if (p->where[i] == PC_MISSING) return SBX_ESTATE;
    int rc = whole_advance(p, UINT32_MAX, NULL);
    if (rc) return rc;
    SBX_ASSERT(p->hashed == p->n_chunks);
    uint8_t got[HASH];
    sbx_sha256_final(&p->whole, got);
    /* The state is spent: a retry hashes from the file. */
    p->hashed = 0;
    sbx_sha256_init(&p->whole);
    if (memcmp(got, p->hash, HASH) != 0) return SBX_ECORRUPT;
    if (fsync(p->fd) != 0) return errno_rc();
    for (uint32_t i = 0; i < p->n_chunks; i++)
        if (p->where[i] == PC_WRITTEN) p->where[i] = PC_DURABLE;
    /* Not installed until the rename is durable: on an error here the file
     * may be in place and the row partial, which sbx_blob_partial_finish
     * checks and records. */
    if ((rc = rename_durable(p->bs, p->hash, p->src, p->dst)) != 0) return rc;
    p->installed = true;
    return 0;
}

int sbx_blob_partial_record(sbx_blob_partial *p)
{
    if (!p) return SBX_EINVAL;
    /* Installed: install synced the file, so every chunk is durable and the
     * blob is recorded complete with all of them present. */
    int rc = p->installed ? mark_complete(p->bs, p->hash)
                          : set_have_where(p->bs, p->hash, p->where, PC_DURABLE, p->n_chunks, 1);
    if (rc) return rc;
    for (uint32_t i = 0; i < p->n_chunks; i++)
        if (p->where[i] == PC_DURABLE) p->where[i] = PC_RECORDED;
    return 0;
}

/* ---- Reads -------------------------------------------------------------- */

int sbx_blob_has(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES])
{
    if (!bs || !hash) return SBX_EINVAL;
    struct row r;
    return held(bs, hash, &r);
}

int sbx_blob_stat(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES],
                  struct sbx_blob_info *info)
{
    if (!bs || !hash || !info) return SBX_EINVAL;
    struct row r;
    int rc = row_get(bs, hash, &r);
    if (rc) return rc;
    int64_t total = 0, have = 0;
    if ((rc = count_chunks(bs, hash, &total, &have)) != 0) return rc;
    memset(info, 0, sizeof *info);
    info->size = r.size;
    info->chunk_size = r.chunk_size;
    info->n_chunks = r.n_chunks;
    info->n_have = (uint32_t)(have < 0 ? 0 : have > r.n_chunks ? r.n_chunks : have);
    info->kind = r.kind;
    info->complete = r.complete;
    info->stored_at = r.stored_at;
    info->last_access_at = r.last_access_at;
    return 0;
}

int sbx_blob_chunk_hashes(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES],
                          uint8_t *out, size_t cap, size_t *n)
{
    if (!bs || !hash || !n || (cap && !out)) return SBX_EINVAL;
    *n = 0;
    struct row r;
    int rc = row_get(bs, hash, &r);
    if (rc) return rc;
    if ((rc = chunk_list(bs, hash, r.n_chunks, out, cap, NULL)) != 0) return rc;
    *n = r.n_chunks;
    return 0;
}

/* Opens a complete blob's file and checks its size against the row (and
 * when encrypted its header, whose file id goes to file_id). */
static int open_final(sbx_blobstore *bs, const uint8_t hash[HASH], struct row *r, int *fd_out,
                      uint8_t file_id[FILE_ID])
{
    int rc = row_get(bs, hash, r);
    if (rc) return rc;
    if (!r->complete) return SBX_ENOENT;
    char path[PATH_MAX];
    final_path(bs, hash, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? SBX_ENOENT : errno_rc();
    struct stat st;
    if (fstat(fd, &st) != 0) rc = errno_rc();
    else if ((uint64_t)st.st_size != disk_size(bs->enc, r->size, r->chunk_size)) rc = SBX_ECORRUPT;
    else if (bs->enc) rc = header_check(bs->k_hdr, fd, hash, r->size, file_id);
    if (rc) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

int sbx_blob_open(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES], sbx_blob_file **out)
{
    if (!bs || !hash || !out) return SBX_EINVAL;
    struct row r;
    int fd;
    uint8_t file_id[FILE_ID];
    int rc = open_final(bs, hash, &r, &fd, file_id);
    if (rc) return rc;
    sbx_blob_file *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return SBX_ENOMEM;
    }
    f->fd = fd;
    f->size = r.size;
    f->cached = -1;
    if (bs->enc) {
        f->enc = true;
        f->chunk_size = r.chunk_size;
        memcpy(f->file_id, file_id, FILE_ID);
        size_t biggest = r.size < r.chunk_size ? (size_t)r.size : r.chunk_size;
        if ((rc = sealer_init(&f->seal, bs->seal.key, biggest + REC_OVERHEAD)) != 0) {
            sbx_blob_file_close(f);
            return rc;
        }
    }
    touch_row(bs, hash, &r);
    *out = f;
    return 0;
}

uint64_t sbx_blob_file_size(const sbx_blob_file *f) { return f->size; }

int sbx_blob_file_read(sbx_blob_file *f, uint64_t offset, void *buf, size_t len, size_t *got)
{
    if (!f || !got || (!buf && len)) return SBX_EINVAL;
    *got = 0;
    if (offset > f->size) return SBX_EINVAL;
    size_t want = f->size - offset < len ? (size_t)(f->size - offset) : len;
    if (!f->enc) {
        int rc = pread_exact(f->fd, buf, want, offset);
        if (rc == 0) *got = want;
        return rc;
    }
    /* Chunk by chunk: a whole chunk opens straight into the caller's buffer,
     * a part of one goes through the cache so the next read of the same
     * chunk (a player's small sequential ranges) costs a copy. */
    uint8_t *dst = buf;
    uint32_t cs = f->chunk_size;
    for (size_t done = 0; done < want;) {
        uint64_t pos = offset + done;
        uint32_t idx = (uint32_t)(pos / cs);
        size_t within = (size_t)(pos % cs);
        size_t clen = chunk_len(f->size, cs, idx);
        size_t n = clen - within < want - done ? clen - within : want - done;
        int rc = 0;
        if (f->cached != (int64_t)idx && within == 0 && n == clen) {
            rc = read_plain_chunk(&f->seal, f->fd, f->file_id, cs, idx, clen, dst + done);
        } else {
            if (f->cached != (int64_t)idx) {
                f->cached = -1;
                if (!f->cache && !(f->cache = malloc(f->size < cs ? (size_t)f->size : cs))) return SBX_ENOMEM;
                rc = read_plain_chunk(&f->seal, f->fd, f->file_id, cs, idx, clen, f->cache);
                if (rc == 0) f->cached = idx;
            }
            if (rc == 0) memcpy(dst + done, f->cache + within, n);
        }
        if (rc) return rc;
        done += n;
    }
    *got = want;
    return 0;
}

void sbx_blob_file_close(sbx_blob_file *f)
{
    if (!f) return;
    close(f->fd);
    if (f->cache) sodium_memzero(f->cache, f->size < f->chunk_size ? (size_t)f->size : f->chunk_size);
    free(f->cache);
    sealer_free(&f->seal);
    free(f);
}

int sbx_blob_read_all(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES], uint64_t max, uint8_t **out,
                      size_t *len)
{
    sbx_blob_file *f = NULL;
    uint8_t *buf = NULL;
    int rc = sbx_blob_open(bs, hash, &f);
    if (rc != 0) return rc;
    uint64_t size = sbx_blob_file_size(f);
    if (size > max || size > SIZE_MAX) {
        rc = SBX_ETOOBIG;
        goto fail;
    }
    if (!(buf = malloc(size ? (size_t)size : 1))) {
        rc = SBX_ENOMEM;
        goto fail;
    }
    size_t got = 0;
    for (uint64_t off = 0; off < size && rc == 0;) {
        rc = sbx_blob_file_read(f, off, buf + off, (size_t)(size - off), &got);
        if (rc == 0 && got == 0) rc = SBX_ECORRUPT; /* shorter than recorded */
        off += got;
    }
    if (rc != 0) goto fail;
    sbx_blob_file_close(f);
    *out = buf;
    *len = (size_t)size;
    return 0;
fail:
    free(buf);
    sbx_blob_file_close(f);
    return rc;
}

int sbx_blob_read(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES], uint64_t offset,
                  void *buf, size_t len, size_t *got)
{
    sbx_blob_file *f;
    if (!got) return SBX_EINVAL;
    *got = 0;
    int rc = sbx_blob_open(bs, hash, &f);
    if (rc) return rc;
    rc = sbx_blob_file_read(f, offset, buf, len, got);
    sbx_blob_file_close(f);
    return rc;
}

int sbx_blob_read_chunk(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES], uint32_t idx,
                        void *buf, size_t cap, size_t *len)
{
    if (!bs || !hash || !len || (!buf && cap)) return SBX_EINVAL;
    *len = 0;
    struct row r;
    int rc = row_get(bs, hash, &r);
    if (rc) return rc;
    if (idx >= r.n_chunks) return SBX_EINVAL;
    size_t clen = chunk_len(r.size, r.chunk_size, idx);
    if (clen > cap) return SBX_ETOOBIG;
    int fd;
    uint8_t file_id[FILE_ID];
    if (r.complete) {
        if ((rc = open_final(bs, hash, &r, &fd, file_id)) != 0) return rc;
    } else {
        sqlite3_stmt *st = sbx_store_stmt(bs->store, SQL_CHUNK);
        if (!st) return SBX_EDB;
        sqlite3_bind_blob(st, 1, hash, HASH, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, idx);
        rc = sqlite3_step(st);
        int have = rc == SQLITE_ROW ? sqlite3_column_int(st, 1) : 0;
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sbx_store_err(rc);
        if (!have) return SBX_ENOENT;
        if ((rc = open_partial(bs, hash, O_RDONLY, &fd)) != 0) return rc;
        if (bs->enc && (rc = header_check(bs->k_hdr, fd, hash, r.size, file_id)) != 0) {
            close(fd);
            return rc;
        }
    }
    rc = read_plain_chunk(&bs->seal, fd, bs->enc ? file_id : NULL, r.chunk_size, idx, clen, buf);
    close(fd);
    if (rc) return rc;
    if (r.complete) touch_row(bs, hash, &r);
    *len = clen;
    return 0;
}

int sbx_blob_touch(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES])
{
    if (!bs || !hash) return SBX_EINVAL;
    struct row r;
    int rc = row_get(bs, hash, &r);
    if (rc == 0) touch_row(bs, hash, &r);
    return rc;
}

int sbx_blob_verify(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES])
{
    if (!bs || !hash) return SBX_EINVAL;
    struct row r;
    int fd;
    uint8_t file_id[FILE_ID];
    int rc = open_final(bs, hash, &r, &fd, file_id);
    if (rc) return rc;
    uint8_t got[HASH];
    rc = hash_fd(bs, fd, bs->enc ? file_id : NULL, r.size, r.chunk_size, got);
    close(fd);
    if (rc == 0 && memcmp(got, hash, HASH) != 0) rc = SBX_ECORRUPT;
    return rc;
}

int sbx_blob_delete(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES])
{
    if (!bs || !hash) return SBX_EINVAL;
    bool nested;
    int found = 0, n = 0;
    int rc = tx_begin(bs, &nested);
    if (rc) return rc;
    if ((rc = exec_hash(bs, SQL_DEL_CHUNKS, hash, NULL)) != 0) goto fail;
    if ((rc = exec_hash(bs, SQL_DEL_BLOB, hash, &n)) != 0) goto fail;
    if ((rc = tx_commit(bs, nested)) != 0) goto fail;
    found = n;
    /* Rows first: a file without a row is inert, a row without its file
     * would claim a blob that is gone. */
    char path[PATH_MAX];
    final_path(bs, hash, path);
    if (unlink(path) == 0) found = 1;
    else if (errno != ENOENT) return errno_rc();
    partial_path(bs, hash, path);
    if (unlink(path) == 0) found = 1;
    else if (errno != ENOENT) return errno_rc();
    return found ? 0 : SBX_ENOENT;
fail:
    tx_rollback(bs, nested);
    return rc;
}
