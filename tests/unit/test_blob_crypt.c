/* The blob store in an encrypted data dir, beyond what test_blob checks in
 * both modes: no plaintext and no content hash on disk, tampering of every
 * kind refused (a bit, a swapped chunk, a swapped file, a header), and
 * range reads that open only what they touch. */
#include "sbx_test.h"
#include "shoebox/blob.h"
#include "shoebox/crypt.h"
#include "shoebox/err.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#define C SBX_BLOB_CHUNK
#define HDR 32
#define REC (C + 40)

static const uint8_t key[32] = {9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29};

struct env {
    char dir[64];
    sbx_store *s;
    sbx_blobstore *bs;
};

static int env_open(struct env *e)
{
    char db[128], err[256];
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/sbx-blobc-XXXXXX");
    if (!mkdtemp(e->dir)) return SBX_EIO;
    snprintf(db, sizeof db, "%s/shoebox.db", e->dir);
    int rc = sbx_store_open_key(&e->s, db, SBX_STORE_CREATE, key, err, sizeof err);
    if (rc == 0) rc = sbx_blobstore_open(&e->bs, e->dir, e->s);
    return rc;
}

static void env_close(struct env *e)
{
    sbx_blobstore_close(e->bs);
    sbx_store_close(e->s);
    sbx_test_rmtree(e->dir);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

/* The file name of a blob: a keyed hash of its hash, in hex. */
static void name_of(const uint8_t hash[32], char hex[65])
{
    uint8_t k[32], name[32];
    sbx_subkey_derive(k, key, SBX_SUBKEY_BLOB_NAME);
    crypto_generichash(name, 32, hash, 32, k, 32);
    sbx_hex_encode(hex, name, 32);
}

static void path_of(const struct env *e, const uint8_t hash[32], char out[256])
{
    char hex[65];
    name_of(hash, hex);
    snprintf(out, 256, "%s/blobs/%.2s/%.2s/%s", e->dir, hex, hex + 2, hex);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *buf = NULL;
    if (sbx_file_read(path, 1u << 28, &buf, len) != 0) return NULL;
    return buf;
}

/* Does any file under dir contain `needle`? */
static const uint8_t *g_needle;
static size_t g_needle_len;
static int g_found;
static int scan_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(st->st_mode)) return 0;
    size_t len;
    uint8_t *buf = slurp(path, &len);
    if (buf && memmem(buf, len, g_needle, g_needle_len)) {
        printf("# found in %s\n", path);
        g_found++;
    }
    free(buf);
    return 0;
}

static const char *g_name;
static int name_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (strstr(path + ftw->base, g_name)) g_found++;
    return 0;
}

/* Does any file or folder name under dir contain `name`? */
static int names_have(const char *dir, const char *name)
{
    g_name = name;
    g_found = 0;
    nftw(dir, name_one, 16, FTW_PHYS);
    return g_found;
}

static int tree_has(const char *dir, const void *needle, size_t n)
{
    g_needle = needle;
    g_needle_len = n;
    g_found = 0;
    nftw(dir, scan_one, 16, FTW_PHYS);
    return g_found;
}

static void copy_range(const char *src, off_t soff, const char *dst, off_t doff, size_t n)
{
    uint8_t *buf = malloc(n);
    int a = open(src, O_RDONLY), b = open(dst, O_RDWR);
    if (a < 0 || b < 0 || pread(a, buf, n, soff) != (ssize_t)n || pwrite(b, buf, n, doff) != (ssize_t)n) abort();
    close(a);
    close(b);
    free(buf);
}

SBX_TEST(nothing_readable_on_disk)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 3 * C + 1000;
    uint8_t *data = malloc(len);
    fill(data, len, 1);
    uint8_t hash[32], thumb_hash[32];
    REQUIRE(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL) == 0);
    const char *thumb = "JFIF thumbnail of Canon EOS at 43.4612N 11.8813E, a small blob in one chunk";
    REQUIRE(sbx_blob_put_buf(e.bs, thumb, strlen(thumb), SBX_BLOB_THUMB, thumb_hash, NULL) == 0);
    /* A streamed put and a transfer too. */
    sbx_blob_writer *w = NULL;
    uint8_t *data2 = malloc(len);
    fill(data2, len, 2);
    REQUIRE(sbx_blob_writer_begin(e.bs, SBX_BLOB_ORIGINAL, &w) == 0);
    for (size_t off = 0; off < len; off += 77777)
        REQUIRE(sbx_blob_writer_write(w, data2 + off, len - off < 77777 ? len - off : 77777) == 0);
    uint8_t hash2[32];
    REQUIRE(sbx_blob_writer_commit(w, NULL, hash2, NULL) == 0);
    /* Close everything so that the WAL is folded in, then look. */
    sbx_blobstore_close(e.bs);
    sbx_store_close(e.s);
    e.bs = NULL;
    e.s = NULL;
    char hex[65];
    const uint8_t *blobs[] = {data, data2};
    for (int b = 0; b < 2; b++)
        for (size_t off = 0; off + 64 <= len; off += len / 7) CHECK_EQ_INT(tree_has(e.dir, blobs[b] + off, 64), 0);
    CHECK_EQ_INT(tree_has(e.dir, "Canon EOS", 9), 0);
    CHECK_EQ_INT(tree_has(e.dir, "43.4612", 7), 0);
    /* Neither the hash nor its hex names anything. */
    CHECK_EQ_INT(tree_has(e.dir, hash, 32), 0);
    sbx_hex_encode(hex, hash, 32);
    CHECK_EQ_INT(tree_has(e.dir, hex, 64), 0);
    CHECK_EQ_INT(names_have(e.dir, hex), 0);

    char err[256], db[128];
    snprintf(db, sizeof db, "%s/shoebox.db", e.dir);
    REQUIRE(sbx_store_open_key(&e.s, db, 0, key, err, sizeof err) == 0);
    REQUIRE(sbx_blobstore_open(&e.bs, e.dir, e.s) == 0);
    uint8_t *back = malloc(len);
    size_t got;
    CHECK_EQ_INT(sbx_blob_read(e.bs, hash, 0, back, len, &got), 0);
    CHECK(got == len && memcmp(back, data, len) == 0);
    CHECK_EQ_INT(sbx_blob_read(e.bs, hash2, 0, back, len, &got), 0);
    CHECK(got == len && memcmp(back, data2, len) == 0);
    CHECK_EQ_INT(sbx_blob_read(e.bs, thumb_hash, 0, back, len, &got), 0);
    CHECK(got == strlen(thumb) && memcmp(back, thumb, got) == 0);
    free(back);
    free(data);
    free(data2);
    env_close(&e);
}

SBX_TEST(tampering_is_refused_never_served)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 3 * C;
    uint8_t *a = malloc(len), *b = malloc(len), *back = malloc(len);
    fill(a, len, 3);
    fill(b, len, 4);
    uint8_t ha[32], hb[32];
    REQUIRE(sbx_blob_put_buf(e.bs, a, len, SBX_BLOB_ORIGINAL, ha, NULL) == 0);
    REQUIRE(sbx_blob_put_buf(e.bs, b, len, SBX_BLOB_ORIGINAL, hb, NULL) == 0);
    char pa[256], pb[256], saved[256];
    path_of(&e, ha, pa);
    path_of(&e, hb, pb);
    snprintf(saved, sizeof saved, "%s/saved", e.dir);
    size_t flen;
    uint8_t *orig = slurp(pa, &flen);
    REQUIRE(orig && flen == HDR + 3 * REC);

    /* A flipped bit in chunk 1: reads of it fail and hand out nothing;
     * chunks 0 and 2 still read. */
    uint8_t one = orig[HDR + REC + 500] ^ 0x08;
    int fd = open(pa, O_RDWR);
    REQUIRE(fd >= 0 && pwrite(fd, &one, 1, HDR + REC + 500) == 1);
    close(fd);
    size_t got = 77;
    memset(back, 0x55, len);
    CHECK_EQ_INT(sbx_blob_read(e.bs, ha, C + 10, back, 100, &got), SBX_ECORRUPT);
    CHECK_EQ_INT(got, 0);
    uint8_t pattern[100];
    memset(pattern, 0x55, sizeof pattern);
    CHECK(memcmp(back, pattern, 100) == 0 || memcmp(back, a + C + 10, 100) != 0);
    size_t clen;
    CHECK_EQ_INT(sbx_blob_read_chunk(e.bs, ha, 1, back, C, &clen), SBX_ECORRUPT);
    CHECK_EQ_INT(sbx_blob_read_chunk(e.bs, ha, 0, back, C, &clen), 0);
    CHECK(clen == C && memcmp(back, a, C) == 0);
    CHECK_EQ_INT(sbx_blob_read(e.bs, ha, 2 * C + 3, back, 10, &got), 0);
    CHECK(got == 10 && memcmp(back, a + 2 * C + 3, 10) == 0);
    CHECK_EQ_INT(sbx_blob_verify(e.bs, ha), SBX_ECORRUPT);
    REQUIRE(sbx_file_write_atomic(pa, orig, flen, 0600) == 0);
    CHECK_EQ_INT(sbx_blob_verify(e.bs, ha), 0);

    /* Chunks 0 and 1 swapped within the file: each fails its index. */
    REQUIRE(sbx_file_write_atomic(saved, orig, flen, 0600) == 0);
    copy_range(saved, HDR, pa, HDR + REC, REC);
    copy_range(saved, HDR + REC, pa, HDR, REC);
    CHECK_EQ_INT(sbx_blob_read_chunk(e.bs, ha, 0, back, C, &clen), SBX_ECORRUPT);
    CHECK_EQ_INT(sbx_blob_read_chunk(e.bs, ha, 1, back, C, &clen), SBX_ECORRUPT);
    REQUIRE(sbx_file_write_atomic(pa, orig, flen, 0600) == 0);

    /* A chunk of blob b put into blob a's file at the same index. */
    copy_range(pb, HDR + REC, pa, HDR + REC, REC);
    CHECK_EQ_INT(sbx_blob_read_chunk(e.bs, ha, 1, back, C, &clen), SBX_ECORRUPT);
    REQUIRE(sbx_file_write_atomic(pa, orig, flen, 0600) == 0);

    /* Blob b's whole file under blob a's name: same size, its own valid
     * chunks, but its header names another blob. */
    size_t blen;
    uint8_t *bfile = slurp(pb, &blen);
    REQUIRE(bfile && blen == flen);
    REQUIRE(sbx_file_write_atomic(pa, bfile, blen, 0600) == 0);
    sbx_blob_file *f = NULL;
    CHECK_EQ_INT(sbx_blob_open(e.bs, ha, &f), SBX_ECORRUPT);
    CHECK_EQ_INT(sbx_blob_read(e.bs, ha, 0, back, 10, &got), SBX_ECORRUPT);
    CHECK_EQ_INT(sbx_blob_verify(e.bs, ha), SBX_ECORRUPT);
    REQUIRE(sbx_file_write_atomic(pa, orig, flen, 0600) == 0);

    /* A damaged header. */
    orig[3] ^= 1;
    REQUIRE(sbx_file_write_atomic(pa, orig, flen, 0600) == 0);
    CHECK_EQ_INT(sbx_blob_open(e.bs, ha, &f), SBX_ECORRUPT);
    orig[3] ^= 1;
    REQUIRE(sbx_file_write_atomic(pa, orig, flen, 0600) == 0);
    CHECK_EQ_INT(sbx_blob_read(e.bs, ha, 0, back, len, &got), 0);
    CHECK(got == len && memcmp(back, a, len) == 0);
    free(bfile);
    free(orig);
    free(a);
    free(b);
    free(back);
    env_close(&e);
}

SBX_TEST(ranges_across_chunks_and_cache)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 2 * C + 12345;
    uint8_t *data = malloc(len), *back = malloc(len);
    fill(data, len, 5);
    uint8_t hash[32];
    REQUIRE(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL) == 0);
    sbx_blob_file *f = NULL;
    REQUIRE(sbx_blob_open(e.bs, hash, &f) == 0);
    CHECK_EQ_INT(sbx_blob_file_size(f), len);
    /* Small sequential reads (a player), then ranges across boundaries,
     * then the tail, then past the end. */
    size_t got;
    for (size_t off = 0; off < len; off += 65536) {
        size_t want = len - off < 65536 ? len - off : 65536;
        REQUIRE(sbx_blob_file_read(f, off, back + off, 65536, &got) == 0);
        CHECK_EQ_INT(got, want);
    }
    CHECK(memcmp(back, data, len) == 0);
    const size_t offs[] = {0, 1, C - 1, C, C + 1, 2 * C - 7, 2 * C, len - 1, len};
    for (size_t i = 0; i < SBX_ARRAY_LEN(offs); i++) {
        size_t want = len - offs[i] < C + 100 ? len - offs[i] : C + 100;
        memset(back, 0, len);
        CHECK_EQ_INT(sbx_blob_file_read(f, offs[i], back, C + 100, &got), 0);
        CHECK_EQ_INT(got, want);
        CHECK(want == 0 || memcmp(back, data + offs[i], want) == 0);
    }
    CHECK_EQ_INT(sbx_blob_file_read(f, len + 1, back, 1, &got), SBX_EINVAL);
    sbx_blob_file_close(f);
    free(data);
    free(back);
    env_close(&e);
}

SBX_TEST(partial_transfer_heals_a_damaged_header)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 2 * C + 3;
    uint8_t *data = malloc(len);
    fill(data, len, 6);
    uint8_t hash[32], chunks[3 * 32];
    sbx_blob_sha256(data, len, hash);
    for (size_t i = 0; i < 3; i++) sbx_blob_sha256(data + i * C, i < 2 ? C : 3, chunks + i * 32);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, 3) == 0);
    sbx_blob_partial *p = NULL;
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    REQUIRE(sbx_blob_partial_put(p, 0, data, C) == 0);
    REQUIRE(sbx_blob_partial_flush(p) == 0 && sbx_blob_partial_record(p) == 0);
    sbx_blob_partial_close(p);
    /* The partial file's header is damaged: chunk 0 can no longer be read,
     * so the next handle starts the file over and chunk 0 is missing
     * again. */
    char hex[65], part[256];
    name_of(hash, hex);
    snprintf(part, sizeof part, "%s/blobs/partial/%s", e.dir, hex);
    int fd = open(part, O_RDWR);
    uint8_t x = 0xFF;
    REQUIRE(fd >= 0 && pwrite(fd, &x, 1, 20) == 1);
    close(fd);
    uint8_t *back = malloc(C);
    size_t clen;
    CHECK_EQ_INT(sbx_blob_read_chunk(e.bs, hash, 0, back, C, &clen), SBX_ECORRUPT);
    free(back);
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 2, data + 2 * C, 3), 0);
    CHECK_EQ_INT(sbx_blob_partial_flush(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    uint32_t missing[4];
    size_t nm = 0;
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 4, &nm), 0);
    CHECK_EQ_INT(nm, 2);
    CHECK(nm == 2 && missing[0] == 0 && missing[1] == 1);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 0, data, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 1, data + C, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_install(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    sbx_blob_partial_close(p);
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), 0);
    CHECK_EQ_INT(sbx_blob_verify(e.bs, hash), 0);
    free(data);
    env_close(&e);
}

SBX_TEST_MAIN(SBX_CASE(nothing_readable_on_disk), SBX_CASE(tampering_is_refused_never_served),
              SBX_CASE(ranges_across_chunks_and_cache), SBX_CASE(partial_transfer_heals_a_damaged_header))
