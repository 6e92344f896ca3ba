/* The blob store: round trips at chunk boundaries, no rewrite of a held blob,
 * refused hashes, resumable partial transfers, corruption on disk, range
 * reads, and no debris after failures (a full disk included). */
#include "sbx_test.h"
#include "shoebox/blob.h"
#include "shoebox/err.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <sys/mman.h>
#include <signal.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define C SBX_BLOB_CHUNK
#define MiB (1u << 20)

#ifdef SBX_BLOB_TEST_ENCRYPTED
/* Built a second time as the test 'blob_encrypted': every case runs on an
 * encrypted store, where a file is named by a keyed hash and holds a header
 * and one sealed record (nonce, ciphertext, tag) per chunk. */
#include "shoebox/crypt.h"
#include <sodium.h>
static const uint8_t storage_key[32] = {7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2,
                                        3, 5, 3, 6, 0, 2, 8, 7, 4, 7, 1, 3, 5, 2, 6, 6};
#define STORAGE_KEY storage_key
#define ENC_HDR 32
#define REC_OVERHEAD 40
#else
#define STORAGE_KEY NULL
#define ENC_HDR 0
#define REC_OVERHEAD 0
#endif

/* The file name of a blob. */
static void name_hex(const uint8_t hash[32], char hex[65])
{
#ifdef SBX_BLOB_TEST_ENCRYPTED
    uint8_t k[32], name[32];
    sbx_subkey_derive(k, storage_key, SBX_SUBKEY_BLOB_NAME);
    crypto_generichash(name, sizeof name, hash, 32, k, sizeof k);
    sbx_hex_encode(hex, name, 32);
#else
    sbx_hex_encode(hex, hash, 32);
#endif
}

/* The size of a blob's file, and where byte `off` of the blob lies in it. */
static size_t disk_len(size_t len) { return ENC_HDR + len + (len + C - 1) / C * REC_OVERHEAD; }

static off_t disk_off(size_t off)
{
    if (!REC_OVERHEAD) return (off_t)off;
    return (off_t)(ENC_HDR + off / C * (C + REC_OVERHEAD) + 24 + off % C);
}

struct env {
    char dir[64];
    char db[128];
    sbx_store *s;
    sbx_blobstore *bs;
};

static int open_handles(struct env *e)
{
    char err[256] = "";
    int rc = sbx_store_open_key(&e->s, e->db, SBX_STORE_CREATE, STORAGE_KEY, err, sizeof err);
    if (rc) {
        printf("# store open: %s: %s\n", sbx_strerror(rc), err);
        return rc;
    }
    rc = sbx_blobstore_open(&e->bs, e->dir, e->s);
    if (rc) printf("# blobstore open: %s\n", sbx_strerror(rc));
    return rc;
}

static int env_open(struct env *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/sbx-blob-XXXXXX");
    if (!mkdtemp(e->dir)) return SBX_EIO;
    snprintf(e->db, sizeof e->db, "%s/shoebox.db", e->dir);
    return open_handles(e);
}

static void close_handles(struct env *e)
{
    sbx_blobstore_close(e->bs);
    sbx_store_close(e->s);
    e->bs = NULL;
    e->s = NULL;
}

static void env_close(struct env *e)
{
    close_handles(e);
    sbx_test_rmtree(e->dir);
}

/* Deterministic bytes: splitmix64. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) {
            x += 0x9e3779b97f4a7c15ull;
        }
        uint64_t z = x + (i / 8);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        p[i] = (uint8_t)(z >> (8 * (i % 8)));
    }
}

static uint8_t *random_buf(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    fill(p, n, seed);
    return p;
}

static void layout_path(const struct env *e, const uint8_t hash[32], char *out, size_t size)
{
    char hex[65];
    name_hex(hash, hex);
    snprintf(out, size, "%s/blobs/%.2s/%.2s/%s", e->dir, hex, hex + 2, hex);
}

static void partial_file(const struct env *e, const uint8_t hash[32], char *out, size_t size)
{
    char hex[65];
    name_hex(hash, hex);
    snprintf(out, size, "%s/blobs/partial/%s", e->dir, hex);
}

static int count_dir(const struct env *e, const char *sub)
{
    char path[256];
    snprintf(path, sizeof path, "%s/blobs/%s", e->dir, sub);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int64_t count_rows(struct env *e, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(sbx_store_db(e->s), sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void chunk_hashes_of(const uint8_t *data, size_t len, uint8_t *out, size_t *n)
{
    size_t k = 0;
    for (size_t off = 0; off < len; off += C, k++)
        sbx_blob_sha256(data + off, len - off < C ? len - off : C, out + k * 32);
    *n = k;
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = len ? fwrite(data, 1, len, f) : 0;
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t b = 0;
    if (fd < 0 || pread(fd, &b, 1, off) != 1) abort();
    b ^= 0x40;
    if (pwrite(fd, &b, 1, off) != 1) abort();
    close(fd);
}

/* Everything the store says about a blob matches `data`. */
static void check_blob(struct env *e, const uint8_t hash[32], const uint8_t *data, size_t len)
{
    uint8_t want[32];
    sbx_blob_sha256(data, len, want);
    CHECK(memcmp(hash, want, 32) == 0);
    CHECK_EQ_INT(sbx_blob_has(e->bs, hash), 0);
    CHECK_EQ_INT(sbx_blob_verify(e->bs, hash), 0);
    struct sbx_blob_info info;
    REQUIRE(sbx_blob_stat(e->bs, hash, &info) == 0);
    size_t nchunks = (len + C - 1) / C;
    CHECK_EQ_INT(info.size, len);
    CHECK_EQ_INT(info.chunk_size, C);
    CHECK_EQ_INT(info.n_chunks, nchunks);
    CHECK_EQ_INT(info.n_have, nchunks);
    CHECK(info.complete);
    CHECK(info.stored_at > 0);

    /* The layout: blobs/ab/cd/<hex>, holding exactly the bytes. */
    char path[256];
    layout_path(e, hash, path, sizeof path);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (size_t)st.st_size == disk_len(len));

    uint8_t *expect_chunks = malloc(nchunks * 32 + 1), *got_chunks = malloc(nchunks * 32 + 1);
    size_t n = 0, n2 = 0;
    chunk_hashes_of(data, len, expect_chunks, &n);
    CHECK_EQ_INT(sbx_blob_chunk_hashes(e->bs, hash, got_chunks, nchunks, &n2), 0);
    CHECK_EQ_INT(n2, n);
    CHECK(n == 0 || memcmp(expect_chunks, got_chunks, n * 32) == 0);
    free(expect_chunks);
    free(got_chunks);

    uint8_t *back = malloc(len + 1);
    size_t got = 99;
    CHECK_EQ_INT(sbx_blob_read(e->bs, hash, 0, back, len + 1, &got), 0);
    CHECK_EQ_INT(got, len);
    CHECK(len == 0 || memcmp(back, data, len) == 0);
    free(back);

    uint8_t *chunk = malloc(C);
    for (size_t i = 0; i < nchunks; i++) {
        size_t clen = 0;
        CHECK_EQ_INT(sbx_blob_read_chunk(e->bs, hash, (uint32_t)i, chunk, C, &clen), 0);
        size_t want_len = len - i * C < C ? len - i * C : C;
        CHECK_EQ_INT(clen, want_len);
        CHECK(memcmp(chunk, data + i * C, clen) == 0);
    }
    size_t clen;
    CHECK_EQ_INT(sbx_blob_read_chunk(e->bs, hash, (uint32_t)nchunks, chunk, C, &clen), SBX_EINVAL);
    free(chunk);
}

SBX_TEST(round_trip_sizes)
{
    static const size_t sizes[] = {0, 1, C - 1, C, C + 1, 3 * MiB + 12345, 5 * MiB};
    struct env e;
    REQUIRE(env_open(&e) == 0);
    for (size_t k = 0; k < SBX_ARRAY_LEN(sizes); k++) {
        size_t len = sizes[k];
        printf("# size %zu\n", len);
        uint8_t *data = random_buf(len, 100 + k);
        uint8_t hash[32], hash2[32];
        bool existed = true;
        CHECK_EQ_INT(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, &existed), 0);
        CHECK(!existed);
        check_blob(&e, hash, data, len);
        CHECK_EQ_INT(count_rows(&e, "blob_chunks"), (int64_t)((len + C - 1) / C));

        /* The same bytes from a file, once deleted. */
        CHECK_EQ_INT(sbx_blob_delete(e.bs, hash), 0);
        CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
        CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
        CHECK_EQ_INT(count_rows(&e, "blob_chunks"), 0);
        char src[128];
        snprintf(src, sizeof src, "%s/src.bin", e.dir);
        REQUIRE(write_file(src, data, len) == 0);
        existed = true;
        CHECK_EQ_INT(sbx_blob_put_file(e.bs, src, hash, SBX_BLOB_ORIGINAL, hash2, &existed), 0);
        CHECK(!existed);
        CHECK(memcmp(hash, hash2, 32) == 0);
        check_blob(&e, hash, data, len);
        CHECK_EQ_INT(sbx_blob_delete(e.bs, hash), 0);
        CHECK_EQ_INT(count_dir(&e, "tmp"), 0);

        /* From page-aligned memory (an importer's mmap of the source file):
         * the whole pages go to disk straight from it with O_DIRECT, the
         * ragged end buffered. */
        if (len > 0) {
            uint8_t *al = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            REQUIRE(al != MAP_FAILED);
            memcpy(al, data, len);
            CHECK_EQ_INT(sbx_blob_put_buf(e.bs, al + 0, len, SBX_BLOB_ORIGINAL, hash2, NULL), 0);
            CHECK(memcmp(hash, hash2, 32) == 0);
            check_blob(&e, hash, data, len);
            CHECK_EQ_INT(sbx_blob_delete(e.bs, hash), 0);
            munmap(al, len);
        }
        free(data);
    }
    env_close(&e);
}

SBX_TEST(kinds_are_recorded)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    static const sbx_blob_kind kinds[] = {SBX_BLOB_ORIGINAL, SBX_BLOB_THUMB, SBX_BLOB_MEDIUM};
    for (size_t k = 0; k < 3; k++) {
        uint8_t data[100], hash[32];
        fill(data, sizeof data, 7 + k);
        CHECK_EQ_INT(sbx_blob_put_buf(e.bs, data, sizeof data, kinds[k], hash, NULL), 0);
        struct sbx_blob_info info;
        CHECK_EQ_INT(sbx_blob_stat(e.bs, hash, &info), 0);
        CHECK_EQ_INT(info.kind, kinds[k]);
    }
    CHECK_EQ_INT(sbx_store_query_int(e.s, "SELECT count(*) FROM blobs WHERE kind = 'thumb'"), 1);
    uint8_t x = 1, hash[32];
    CHECK_EQ_INT(sbx_blob_put_buf(e.bs, &x, 1, (sbx_blob_kind)3, hash, NULL), SBX_EINVAL);
    env_close(&e);
}

SBX_TEST(existing_blob_not_rewritten)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 2 * MiB + 5;
    uint8_t *data = random_buf(len, 3);
    uint8_t hash[32], hash2[32];
    bool existed = true;
    REQUIRE(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, &existed) == 0);
    CHECK(!existed);
    char path[256];
    layout_path(&e, hash, path, sizeof path);
    struct stat before, after;
    REQUIRE(stat(path, &before) == 0);
    /* A rewrite would show as a new inode (rename) or a new mtime. */
    struct timespec old[2] = {{1000000, 0}, {1000000, 0}};
    REQUIRE(utimensat(AT_FDCWD, path, old, 0) == 0);

    CHECK_EQ_INT(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash2, &existed), 0);
    CHECK(existed);
    CHECK(memcmp(hash, hash2, 32) == 0);

    char src[128];
    snprintf(src, sizeof src, "%s/src.bin", e.dir);
    REQUIRE(write_file(src, data, len) == 0);
    existed = false;
    CHECK_EQ_INT(sbx_blob_put_file(e.bs, src, NULL, SBX_BLOB_ORIGINAL, hash2, &existed), 0);
    CHECK(existed);

    /* With the expected hash of a held blob the file is not even read. */
    existed = false;
    CHECK_EQ_INT(sbx_blob_put_file(e.bs, "/nonexistent/file", hash, SBX_BLOB_ORIGINAL, hash2, &existed), 0);
    CHECK(existed);

    REQUIRE(stat(path, &after) == 0);
    CHECK_EQ_INT(after.st_ino, before.st_ino);
    CHECK_EQ_INT(after.st_mtim.tv_sec, 1000000);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 1);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    free(data);
    env_close(&e);
}

SBX_TEST(wrong_expected_hash_refused)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = C + 77;
    uint8_t *data = random_buf(len, 4);
    uint8_t real[32], wrong[32], out[32];
    sbx_blob_sha256(data, len, real);
    memcpy(wrong, real, 32);
    wrong[31] ^= 1;
    char src[128];
    snprintf(src, sizeof src, "%s/src.bin", e.dir);
    REQUIRE(write_file(src, data, len) == 0);
    CHECK_EQ_INT(sbx_blob_put_file(e.bs, src, wrong, SBX_BLOB_ORIGINAL, out, NULL), SBX_ECRYPTO);
    CHECK_EQ_INT(sbx_blob_has(e.bs, real), SBX_ENOENT);
    CHECK_EQ_INT(sbx_blob_has(e.bs, wrong), SBX_ENOENT);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    CHECK_EQ_INT(count_rows(&e, "blob_chunks"), 0);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    char path[256];
    layout_path(&e, real, path, sizeof path);
    CHECK(access(path, F_OK) != 0);

    /* The same through a streaming writer. */
    sbx_blob_writer *w;
    REQUIRE(sbx_blob_writer_begin(e.bs, SBX_BLOB_ORIGINAL, &w) == 0);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 1);
    CHECK_EQ_INT(sbx_blob_writer_write(w, data, len), 0);
    CHECK_EQ_INT(sbx_blob_writer_commit(w, wrong, out, NULL), SBX_ECRYPTO);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);

    /* And the right hash goes in. */
    CHECK_EQ_INT(sbx_blob_put_file(e.bs, src, real, SBX_BLOB_ORIGINAL, out, NULL), 0);
    check_blob(&e, out, data, len);
    free(data);
    env_close(&e);
}

SBX_TEST(writer_streams_in_odd_pieces)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 3 * MiB + MiB / 2;
    uint8_t *data = random_buf(len, 5);
    sbx_blob_writer *w;
    REQUIRE(sbx_blob_writer_begin(e.bs, SBX_BLOB_MEDIUM, &w) == 0);
    size_t piece = 7777;
    for (size_t off = 0; off < len; off += piece)
        CHECK_EQ_INT(sbx_blob_writer_write(w, data + off, len - off < piece ? len - off : piece), 0);
    uint8_t hash[32];
    bool existed = true;
    CHECK_EQ_INT(sbx_blob_writer_commit(w, NULL, hash, &existed), 0);
    CHECK(!existed);
    check_blob(&e, hash, data, len);

    /* An aborted writer leaves nothing. */
    REQUIRE(sbx_blob_writer_begin(e.bs, SBX_BLOB_MEDIUM, &w) == 0);
    CHECK_EQ_INT(sbx_blob_writer_write(w, data, 1000), 0);
    sbx_blob_writer_abort(w);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 1);
    free(data);
    env_close(&e);
}

SBX_TEST(failed_puts_leave_nothing)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    uint8_t hash[32];
    CHECK_EQ_INT(sbx_blob_put_file(e.bs, "/nonexistent/file", NULL, SBX_BLOB_ORIGINAL, hash, NULL),
                 SBX_ENOENT);
    CHECK_EQ_INT(sbx_blob_put_file(e.bs, e.dir, NULL, SBX_BLOB_ORIGINAL, hash, NULL), SBX_EINVAL);
    /* A file that grows past what a process may write: the copy fails
     * midway, after the temp file was created. */
    char src[128];
    snprintf(src, sizeof src, "%s/src.bin", e.dir);
    size_t len = 3 * MiB;
    uint8_t *data = random_buf(len, 6);
    REQUIRE(write_file(src, data, len) == 0);
    /* SQLite connections must not cross a fork: the child opens its own. */
    close_handles(&e);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {2 * MiB, 2 * MiB};
        if (open_handles(&e) != 0 || setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(2);
        int rc = sbx_blob_put_file(e.bs, src, NULL, SBX_BLOB_ORIGINAL, hash, NULL);
        int rc2 = sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL);
        if (rc != SBX_EIO || rc2 != SBX_EIO) printf("# put_file %d, put_buf %d\n", rc, rc2);
        close_handles(&e);
        _exit(rc == SBX_EIO && rc2 == SBX_EIO ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    REQUIRE(open_handles(&e) == 0);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    CHECK_EQ_INT(count_rows(&e, "blob_chunks"), 0);

    /* The fan-out directory cannot be made (a file squats its name): the
     * temp file, written in full, must still go. */
    uint8_t real[32];
    sbx_blob_sha256(data, len, real);
    char squat[256], hex[65];
    name_hex(real, hex);
    snprintf(squat, sizeof squat, "%s/blobs/%.2s", e.dir, hex);
    REQUIRE(write_file(squat, (const uint8_t *)"x", 1) == 0);
    CHECK(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL) < 0);
    CHECK(sbx_blob_put_file(e.bs, src, NULL, SBX_BLOB_ORIGINAL, hash, NULL) < 0);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    REQUIRE(unlink(squat) == 0);
    free(data);
    env_close(&e);
}

SBX_TEST(database_failure_leaves_nothing)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = C + 3;
    uint8_t *data = random_buf(len, 17);
    uint8_t hash[32], want[32], other[32];
    sbx_blob_sha256(data, len, want);
    REQUIRE(sbx_blob_put_buf(e.bs, data, 1000, SBX_BLOB_THUMB, other, NULL) == 0);
    REQUIRE(sbx_store_exec(e.s, "CREATE TEMP TRIGGER no_big BEFORE INSERT ON blobs "
                                "WHEN NEW.size_bytes > 5000 BEGIN SELECT RAISE(ABORT, 'no'); END") == 0);
    CHECK(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL) < 0);
    char path[256];
    layout_path(&e, want, path, sizeof path);
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 1);
    CHECK_EQ_INT(count_rows(&e, "blob_chunks"), 1);

    /* Inside the caller's transaction only the failed call is undone. */
    REQUIRE(sbx_store_begin(e.s) == 0);
    CHECK_EQ_INT(sbx_blob_delete(e.bs, other), 0);
    CHECK(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL) < 0);
    CHECK(!sqlite3_get_autocommit(sbx_store_db(e.s))); /* still in it */
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    uint8_t small[10] = {1, 2, 3};
    CHECK_EQ_INT(sbx_blob_put_buf(e.bs, small, sizeof small, SBX_BLOB_THUMB, hash, NULL), 0);
    CHECK_EQ_INT(sbx_store_commit(e.s), 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 1);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, other), SBX_ENOENT);
    CHECK(access(path, F_OK) != 0);

    /* A partial that cannot be recorded leaves no partial file. */
    uint8_t chunks[2 * 32];
    size_t n;
    chunk_hashes_of(data, len, chunks, &n);
    CHECK(sbx_blob_partial_begin(e.bs, want, len, SBX_BLOB_ORIGINAL, chunks, n) < 0);
    CHECK_EQ_INT(count_dir(&e, "partial"), 0);
    CHECK_EQ_INT(count_rows(&e, "blob_chunks"), 1);
    free(data);
    env_close(&e);
}

/* Sets up a temp dir whose blobs/ is a 2 MiB tmpfs, in a private mount
 * namespace of a child process: the real disk is never filled. */
static int enter_small_fs(const char *blobs)
{
    if (unshare(CLONE_NEWNS) != 0) {
        uid_t uid = getuid();
        gid_t gid = getgid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return -1;
        char map[64];
        int fd = open("/proc/self/setgroups", O_WRONLY);
        if (fd >= 0) {
            if (write(fd, "deny", 4) != 4) {}
            close(fd);
        }
        fd = open("/proc/self/uid_map", O_WRONLY);
        int n = snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        if (fd < 0 || write(fd, map, (size_t)n) != n) return -1;
        close(fd);
        fd = open("/proc/self/gid_map", O_WRONLY);
        n = snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        if (fd < 0 || write(fd, map, (size_t)n) != n) return -1;
        close(fd);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return -1;
    if (mkdir(blobs, 0700) != 0 && errno != EEXIST) return -1;
    return mount("tmpfs", blobs, "tmpfs", 0, "size=2m");
}

/* Runs in a child whose blobs/ is a 2 MiB tmpfs. */
static void enospc_child(struct env *e)
{
    REQUIRE(open_handles(e) == 0);
    size_t len = 4 * MiB;
    uint8_t *data = random_buf(len, 8);
    uint8_t hash[32], chunks[4 * 32];
    size_t n;
    CHECK_EQ_INT(sbx_blob_put_buf(e->bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL), SBX_ENOSPC);
    CHECK_EQ_INT(count_dir(e, "tmp"), 0);
    CHECK_EQ_INT(count_rows(e, "blobs"), 0);
    CHECK_EQ_INT(sbx_blob_has(e->bs, hash), SBX_ENOENT);

    sbx_blob_writer *w;
    REQUIRE(sbx_blob_writer_begin(e->bs, SBX_BLOB_ORIGINAL, &w) == 0);
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += 65536)
        rc = sbx_blob_writer_write(w, data + off, 65536);
    CHECK_EQ_INT(rc, SBX_ENOSPC);
    CHECK_EQ_INT(sbx_blob_writer_commit(w, NULL, hash, NULL), SBX_ENOSPC);
    CHECK_EQ_INT(count_dir(e, "tmp"), 0);

    /* A transfer that cannot fit is refused up front. */
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(data, len, chunks, &n);
    CHECK_EQ_INT(sbx_blob_partial_begin(e->bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n), SBX_ENOSPC);
    CHECK_EQ_INT(count_dir(e, "partial"), 0);
    CHECK_EQ_INT(count_rows(e, "blobs"), 0);
    CHECK_EQ_INT(count_rows(e, "blob_chunks"), 0);

    /* What fits still goes in. */
    CHECK_EQ_INT(sbx_blob_put_buf(e->bs, data, 100000, SBX_BLOB_THUMB, hash, NULL), 0);
    CHECK_EQ_INT(sbx_blob_has(e->bs, hash), 0);
    free(data);
    close_handles(e);
}

SBX_TEST(disk_full_is_enospc_and_leaves_nothing)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    close_handles(&e);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        char blobs[128];
        snprintf(blobs, sizeof blobs, "%s/blobs", e.dir);
        if (enter_small_fs(blobs) != 0) _exit(77);
        enospc_child(&e);
        fflush(stdout);
        _exit(sbx_test_failed_ ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        env_close(&e);
        SKIP("cannot mount a small tmpfs here");
    }
    CHECK_EQ_INT(WEXITSTATUS(status), 0);
    env_close(&e);
}

static void shuffle(uint32_t *a, size_t n, uint64_t seed)
{
    for (size_t i = n; i > 1; i--) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)((seed >> 33) % i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static size_t clen_of(size_t len, uint32_t i) { return len - (size_t)i * C < C ? len - (size_t)i * C : C; }

/* Receives chunks idx[0..k) of `data` (every chunk, in order, when idx is
 * NULL) as a transfer does: put through a handle, flushed and recorded.
 * The first error, or 0. */
static int recv_chunks(struct env *e, const uint8_t hash[32], const uint8_t *data, size_t len,
                       const uint32_t *idx, size_t k)
{
    sbx_blob_partial *p = NULL;
    int rc = sbx_blob_partial_open(e->bs, hash, &p);
    if (!idx) k = (len + C - 1) / C;
    for (size_t j = 0; j < k && rc == 0; j++) {
        uint32_t i = idx ? idx[j] : (uint32_t)j;
        rc = sbx_blob_partial_put(p, i, data + (size_t)i * C, clen_of(len, i));
    }
    if (rc == 0) rc = sbx_blob_partial_flush(p);
    if (rc == 0) rc = sbx_blob_partial_record(p);
    sbx_blob_partial_close(p);
    return rc;
}

SBX_TEST(partial_transfer_resumes_after_restart)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 5 * MiB + 123;
    uint8_t *data = random_buf(len, 9);
    uint8_t hash[32], chunks[6 * 32];
    size_t n;
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(data, len, chunks, &n);
    REQUIRE(n == 6);

    CHECK_EQ_INT(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n - 1), SBX_EINVAL);
    CHECK_EQ_INT(sbx_blob_partial_begin(e.bs, hash, SBX_MAX_BLOB_BYTES + 1, SBX_BLOB_ORIGINAL, chunks, n),
                 SBX_ETOOBIG);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    char part[256];
    partial_file(&e, hash, part, sizeof part);
    struct stat st;
    CHECK(stat(part, &st) == 0 && (size_t)st.st_size == disk_len(len));
    CHECK(stat(part, &st) == 0 && (size_t)st.st_blocks * 512 >= disk_len(len)); /* preallocated */

    uint32_t missing[16];
    size_t nm = 0;
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 16, &nm), 0);
    CHECK_EQ_INT(nm, 6);
    for (uint32_t i = 0; i < nm; i++) CHECK_EQ_INT(missing[i], i);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);

    /* Half the chunks, in random order. */
    uint32_t order[6] = {0, 1, 2, 3, 4, 5};
    shuffle(order, 6, 42);
    sbx_blob_partial *p = NULL;
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    for (int k = 0; k < 3; k++) {
        uint32_t i = order[k];
        CHECK_EQ_INT(sbx_blob_partial_put(p, i, data + (size_t)i * C, clen_of(len, i)), 0);
    }
    /* A bad chunk is refused, and nothing of it is written. */
    uint32_t bad = order[3];
    uint8_t *evil = malloc(C);
    memcpy(evil, data + (size_t)bad * C, clen_of(len, bad));
    evil[100] ^= 1;
    CHECK_EQ_INT(sbx_blob_partial_put(p, bad, evil, clen_of(len, bad)), SBX_ECRYPTO);
    CHECK_EQ_INT(sbx_blob_partial_put(p, bad, evil, clen_of(len, bad) - 1), SBX_EINVAL);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 6, evil, 123), SBX_EINVAL);
    {
        int fd = open(part, O_RDONLY);
        uint8_t b = 1;
        CHECK(pread(fd, &b, 1, disk_off((size_t)bad * C + 100)) == 1 && b == 0);
        close(fd);
    }
    CHECK_EQ_INT(sbx_blob_partial_flush(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    sbx_blob_partial_close(p);
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), SBX_ESTATE);
    /* A present chunk can be passed on before the blob is complete. */
    size_t got = 0;
    CHECK_EQ_INT(sbx_blob_read_chunk(e.bs, hash, order[0], evil, C, &got), 0);
    CHECK(got == clen_of(len, order[0]) && memcmp(evil, data + (size_t)order[0] * C, got) == 0);
    CHECK_EQ_INT(sbx_blob_read_chunk(e.bs, hash, order[4], evil, C, &got), SBX_ENOENT);
    CHECK_EQ_INT(sbx_blob_read(e.bs, hash, 0, evil, 10, &got), SBX_ENOENT);

    /* "Restart": everything closed and opened again. */
    close_handles(&e);
    REQUIRE(open_handles(&e) == 0);
    CHECK(access(part, F_OK) == 0);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 16, &nm), 0);
    CHECK_EQ_INT(nm, 3);
    uint32_t rest[3] = {order[3], order[4], order[5]};
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++)
            if (rest[b] < rest[a]) {
                uint32_t t = rest[a];
                rest[a] = rest[b];
                rest[b] = t;
            }
    for (int k = 0; k < 3; k++) CHECK_EQ_INT(missing[k], rest[k]);
    /* cap smaller than the count: the count is still the whole. */
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 1, &nm), 0);
    CHECK_EQ_INT(nm, 3);
    CHECK_EQ_INT(missing[0], rest[0]);
    struct sbx_blob_info info;
    CHECK_EQ_INT(sbx_blob_stat(e.bs, hash, &info), 0);
    CHECK(!info.complete);
    CHECK_EQ_INT(info.n_have, 3);

    /* Beginning again with the same list resumes; another list is refused. */
    CHECK_EQ_INT(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n), 0);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 16, &nm), 0);
    CHECK_EQ_INT(nm, 3);
    uint8_t other[6 * 32];
    memcpy(other, chunks, sizeof other);
    other[5 * 32] ^= 1;
    CHECK_EQ_INT(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, other, n), SBX_ESTATE);

    /* The rest: one chunk flushed on its own, then a batch of two with a
     * single flush. What is put but not flushed is not marked present, so
     * a crash (here a close) before the flush costs the batch being
     * fetched again; what is flushed is marked by the next record. */
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, order[3], data + (size_t)order[3] * C, clen_of(len, order[3])), 0);
    CHECK_EQ_INT(sbx_blob_partial_flush(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    for (int k = 4; k < 6; k++)
        CHECK_EQ_INT(sbx_blob_partial_put(p, order[k], data + (size_t)order[k] * C, clen_of(len, order[k])), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    sbx_blob_partial_close(p);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 16, &nm), 0);
    CHECK_EQ_INT(nm, 2); /* not marked until flushed */
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), SBX_ESTATE);
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    for (int k = 4; k < 6; k++)
        CHECK_EQ_INT(sbx_blob_partial_put(p, order[k], data + (size_t)order[k] * C, clen_of(len, order[k])), 0);
    CHECK_EQ_INT(sbx_blob_partial_flush(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 16, &nm), 0);
    CHECK_EQ_INT(nm, 2); /* durable, not yet recorded */
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 16, &nm), 0);
    CHECK_EQ_INT(nm, 0);
    /* A duplicate chunk from a second peer is harmless, whether it was
     * recorded before the restart or put through this handle. */
    CHECK_EQ_INT(sbx_blob_partial_put(p, order[0], data + (size_t)order[0] * C, clen_of(len, order[0])), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, order[5], data + (size_t)order[5] * C, clen_of(len, order[5])), 0);
    sbx_blob_partial_close(p);

    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), 0);
    CHECK(access(part, F_OK) != 0);
    check_blob(&e, hash, data, len);
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), 0);
    CHECK_EQ_INT(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n), SBX_EEXIST);
    CHECK_EQ_INT(sbx_blob_partial_open(e.bs, hash, &p), SBX_ESTATE);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    free(evil);
    free(data);
    env_close(&e);
}

SBX_TEST(partial_damage_found_at_finish)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 3 * MiB + 10;
    uint8_t *data = random_buf(len, 10);
    uint8_t hash[32], chunks[4 * 32];
    size_t n;
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(data, len, chunks, &n);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_THUMB, chunks, n) == 0);
    CHECK_EQ_INT(recv_chunks(&e, hash, data, len, NULL, 0), 0);
    /* The disk changes a byte of chunk 2 behind our back. */
    char part[256];
    partial_file(&e, hash, part, sizeof part);
    flip_byte(part, disk_off(2 * C + 5));
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), SBX_ECORRUPT);
    uint32_t missing[8];
    size_t nm = 0;
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 8, &nm), 0);
    CHECK_EQ_INT(nm, 1);
    CHECK_EQ_INT(missing[0], 2);
    CHECK_EQ_INT(recv_chunks(&e, hash, data, len, missing, 1), 0);
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), 0);
    check_blob(&e, hash, data, len);
    free(data);
    env_close(&e);
}

SBX_TEST(partial_with_lying_chunk_list)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 2 * MiB + 1;
    uint8_t *data = random_buf(len, 11);
    uint8_t *fake = malloc(len);
    memcpy(fake, data, len);
    fake[C + 9] ^= 0x80; /* a peer's version of chunk 1 */
    uint8_t hash[32], chunks[3 * 32];
    size_t n;
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(fake, len, chunks, &n);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    CHECK_EQ_INT(recv_chunks(&e, hash, fake, len, NULL, 0), 0);
    /* Every chunk matches the list, the whole does not: the list lied. */
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), SBX_ECRYPTO);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
    char path[256];
    layout_path(&e, hash, path, sizeof path);
    CHECK(access(path, F_OK) != 0);
    /* Dropped, then fetched with the right list. */
    CHECK_EQ_INT(sbx_blob_delete(e.bs, hash), 0);
    CHECK_EQ_INT(count_dir(&e, "partial"), 0);
    CHECK_EQ_INT(count_rows(&e, "blob_chunks"), 0);
    chunk_hashes_of(data, len, chunks, &n);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    const uint32_t backwards[3] = {2, 1, 0};
    REQUIRE(n == 3);
    CHECK_EQ_INT(recv_chunks(&e, hash, data, len, backwards, 3), 0);
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), 0);
    check_blob(&e, hash, data, len);
    free(fake);
    free(data);
    env_close(&e);
}

/* The handle: chunks in any order, bad ones refused, durable only once
 * flushed and recorded, the whole hash without a second pass. */
SBX_TEST(handle_pipeline_any_order)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 5 * MiB + 123;
    uint8_t *data = random_buf(len, 21);
    uint8_t hash[32], chunks[6 * 32];
    size_t n, nm = 0;
    uint32_t missing[16];
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(data, len, chunks, &n);
    REQUIRE(n == 6);
    sbx_blob_partial *p = NULL;
    CHECK_EQ_INT(sbx_blob_partial_open(e.bs, hash, &p), SBX_ENOENT);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);

    uint8_t *evil = malloc(C);
    memcpy(evil, data, C);
    evil[7] ^= 1;
    CHECK_EQ_INT(sbx_blob_partial_put(p, 0, evil, C), SBX_ECRYPTO);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 0, data, C - 1), SBX_EINVAL);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 6, data, 123), SBX_EINVAL);
    /* Chunk 0 after a refused chunk 0: the whole hash starts clean. */
    CHECK_EQ_INT(sbx_blob_partial_put(p, 0, data, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 3, data + 3 * C, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 1, data + 1 * C, C), 0);
    memcpy(evil, data + 2 * C, C);
    evil[C - 1] ^= 0x40;
    CHECK_EQ_INT(sbx_blob_partial_put(p, 2, evil, C), SBX_ECRYPTO);
    CHECK_EQ_INT(sbx_blob_partial_install(p), SBX_ESTATE);
    /* Written, not recorded: a crash now would lose them. */
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 16, &nm), 0);
    CHECK_EQ_INT(nm, 6);
    CHECK_EQ_INT(sbx_blob_partial_flush(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 16, &nm), 0);
    CHECK_EQ_INT(nm, 3);
    CHECK(missing[0] == 2 && missing[1] == 4 && missing[2] == 5);
    /* The rest, the last first; a duplicate is harmless. */
    CHECK_EQ_INT(sbx_blob_partial_put(p, 5, data + 5 * C, clen_of(len, 5)), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 2, data + 2 * C, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 4, data + 4 * C, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 1, data + 1 * C, C), 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
    CHECK_EQ_INT(sbx_blob_partial_install(p), 0);
    char part[256], path[256];
    partial_file(&e, hash, part, sizeof part);
    layout_path(&e, hash, path, sizeof path);
    CHECK(access(part, F_OK) != 0 && access(path, F_OK) == 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT); /* not until recorded */
    CHECK_EQ_INT(sbx_blob_partial_put(p, 4, data + 4 * C, C), SBX_EINVAL);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    sbx_blob_partial_close(p);
    check_blob(&e, hash, data, len);
    CHECK_EQ_INT(sbx_blob_partial_open(e.bs, hash, &p), SBX_ESTATE);
    CHECK_EQ_INT(count_dir(&e, "partial"), 0);
    free(evil);
    free(data);
    env_close(&e);
}

/* Chunks from before a restart are read back for the whole hash, and a
 * chunk damaged on disk meanwhile is caught at install. */
SBX_TEST(handle_resume_reads_back)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 4 * MiB + 77;
    uint8_t *data = random_buf(len, 22);
    uint8_t hash[32], chunks[5 * 32];
    size_t n, nm = 0;
    uint32_t missing[8];
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(data, len, chunks, &n);
    REQUIRE(n == 5);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    const uint32_t early[2] = {1, 2};
    CHECK_EQ_INT(recv_chunks(&e, hash, data, len, early, 2), 0);
    close_handles(&e);
    REQUIRE(open_handles(&e) == 0);
    char part[256];
    partial_file(&e, hash, part, sizeof part);
    flip_byte(part, disk_off(2 * C + 99));

    sbx_blob_partial *p = NULL;
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 1, data + C, C), 0); /* present already */
    for (uint32_t i = 0; i < n; i++)
        if (i != 1 && i != 2) CHECK_EQ_INT(sbx_blob_partial_put(p, i, data + (size_t)i * C, clen_of(len, i)), 0);
    CHECK_EQ_INT(sbx_blob_partial_install(p), SBX_ECORRUPT);
    CHECK(access(part, F_OK) == 0);
    CHECK_EQ_INT(sbx_blob_partial_flush(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    sbx_blob_partial_close(p);
    /* The slow path finds the bad chunk. */
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), SBX_ECORRUPT);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 8, &nm), 0);
    CHECK_EQ_INT(nm, 1);
    CHECK_EQ_INT(missing[0], 2);
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 2, data + 2 * C, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_install(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    sbx_blob_partial_close(p);
    check_blob(&e, hash, data, len);
    free(data);
    env_close(&e);
}

/* An install whose record step failed leaves the file in place under the
 * blob's name and the row partial, its last chunks still marked missing:
 * beginning the blob again checks that file and records it (no re-fetch);
 * a file in place that does not verify is removed and the blob starts
 * over. */
SBX_TEST(begin_records_an_installed_blob)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 3 * MiB + 5;
    uint8_t *data = random_buf(len, 23);
    uint8_t hash[32], chunks[4 * 32];
    size_t n, nm = 0;
    uint32_t missing[8];
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(data, len, chunks, &n);
    REQUIRE(n == 4);
    char part[256], path[256];
    partial_file(&e, hash, part, sizeof part);
    layout_path(&e, hash, path, sizeof path);

    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    sbx_blob_partial *p = NULL;
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    /* Two chunks recorded, then the rest put and the blob installed; the
     * record step never happens (its transaction failed). */
    CHECK_EQ_INT(sbx_blob_partial_put(p, 0, data, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 1, data + C, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_flush(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 2, data + 2 * C, C), 0);
    CHECK_EQ_INT(sbx_blob_partial_put(p, 3, data + 3 * C, clen_of(len, 3)), 0);
    CHECK_EQ_INT(sbx_blob_partial_install(p), 0);
    sbx_blob_partial_close(p);
    CHECK(access(part, F_OK) != 0 && access(path, F_OK) == 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 8, &nm), 0);
    CHECK_EQ_INT(nm, 2);

    /* "Restart", and the transfer begins the blob again. */
    close_handles(&e);
    REQUIRE(open_handles(&e) == 0);
    CHECK_EQ_INT(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n), SBX_EEXIST);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), 0);
    CHECK(access(part, F_OK) != 0);
    struct sbx_blob_info info;
    CHECK_EQ_INT(sbx_blob_stat(e.bs, hash, &info), 0);
    CHECK(info.complete && info.n_have == 4);
    check_blob(&e, hash, data, len);

    /* The same state with the file in place damaged: removed, and the
     * partial starts over with every chunk missing. */
    CHECK_EQ_INT(sbx_blob_delete(e.bs, hash), 0);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    for (uint32_t i = 0; i < n; i++) CHECK_EQ_INT(sbx_blob_partial_put(p, i, data + (size_t)i * C, clen_of(len, i)), 0);
    CHECK_EQ_INT(sbx_blob_partial_install(p), 0);
    sbx_blob_partial_close(p);
    flip_byte(path, disk_off(C + 3));
    CHECK_EQ_INT(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n), 0);
    CHECK(access(path, F_OK) != 0 && access(part, F_OK) == 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, missing, 8, &nm), 0);
    CHECK_EQ_INT(nm, 4);
    free(data);
    env_close(&e);
}

/* Every chunk matches a lying list, the whole does not: install refuses and
 * the slow path says the list lied. */
SBX_TEST(handle_lying_chunk_list)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 3 * MiB + 5;
    uint8_t *data = random_buf(len, 23);
    uint8_t *fake = malloc(len);
    memcpy(fake, data, len);
    fake[2 * C + 1] ^= 0x10;
    uint8_t hash[32], chunks[4 * 32];
    size_t n;
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(fake, len, chunks, &n);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    sbx_blob_partial *p = NULL;
    REQUIRE(sbx_blob_partial_open(e.bs, hash, &p) == 0);
    for (uint32_t i = 0; i < n; i++)
        CHECK_EQ_INT(sbx_blob_partial_put(p, i, fake + (size_t)i * C, clen_of(len, i)), 0);
    CHECK_EQ_INT(sbx_blob_partial_install(p), SBX_ECORRUPT);
    CHECK_EQ_INT(sbx_blob_partial_install(p), SBX_ECORRUPT); /* again, from the file */
    CHECK_EQ_INT(sbx_blob_partial_flush(p), 0);
    CHECK_EQ_INT(sbx_blob_partial_record(p), 0);
    sbx_blob_partial_close(p);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), SBX_ECRYPTO);
    char path[256];
    layout_path(&e, hash, path, sizeof path);
    CHECK(access(path, F_OK) != 0);
    free(fake);
    free(data);
    env_close(&e);
}

/* The chunk rows steer what is accepted and served: a list with a gap, a
 * hash of the wrong size or a row too many is corrupt wherever it is read,
 * and a partial whose list is damaged is not resumed but begun again. */
SBX_TEST(damaged_chunk_list_refused)
{
    static const char *const damage[] = {
        "DELETE FROM blob_chunks WHERE idx = 1",
        "UPDATE blob_chunks SET chunk_hash = substr(chunk_hash, 1, 31) WHERE idx = 2",
        "INSERT INTO blob_chunks(hash, idx, chunk_hash, have) SELECT hash, 3, chunk_hash, have "
        "FROM blob_chunks WHERE idx = 0",
    };
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 2 * C + 9;
    uint8_t *data = random_buf(len, 31);
    uint8_t hash[32], chunks[3 * 32], got[3 * 32];
    size_t n, n2 = 0;
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(data, len, chunks, &n);
    REQUIRE(n == 3);
    sbx_blob_partial *p = NULL;
    for (size_t k = 0; k < SBX_ARRAY_LEN(damage); k++) {
        /* A complete blob's list, as offered to a peer. */
        REQUIRE(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL) == 0);
        CHECK_EQ_INT(sbx_blob_chunk_hashes(e.bs, hash, got, 3, &n2), 0);
        CHECK(n2 == 3 && memcmp(got, chunks, sizeof chunks) == 0);
        REQUIRE(sqlite3_exec(sbx_store_db(e.s), damage[k], NULL, NULL, NULL) == SQLITE_OK);
        CHECK_EQ_INT(sbx_blob_chunk_hashes(e.bs, hash, got, 3, &n2), SBX_ECORRUPT);
        CHECK_EQ_INT(sbx_blob_chunk_hashes(e.bs, hash, NULL, 0, &n2), SBX_ECORRUPT);
        REQUIRE(sbx_blob_delete(e.bs, hash) == 0);
        /* A partial's list, as a handle or a resume reads it. */
        REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
        REQUIRE(sqlite3_exec(sbx_store_db(e.s), damage[k], NULL, NULL, NULL) == SQLITE_OK);
        CHECK_EQ_INT(sbx_blob_partial_open(e.bs, hash, &p), SBX_ECORRUPT);
        CHECK(p == NULL);
        CHECK_EQ_INT(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n), SBX_ESTATE);
        REQUIRE(sbx_blob_delete(e.bs, hash) == 0);
        REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
        CHECK_EQ_INT(recv_chunks(&e, hash, data, len, NULL, 0), 0);
        CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), 0);
        check_blob(&e, hash, data, len);
        REQUIRE(sbx_blob_delete(e.bs, hash) == 0);
    }
    free(data);
    env_close(&e);
}

SBX_TEST(empty_partial_blob)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    uint8_t hash[32];
    sbx_blob_sha256("", 0, hash);
    CHECK_EQ_INT(sbx_blob_partial_begin(e.bs, hash, 0, SBX_BLOB_ORIGINAL, NULL, 0), 0);
    size_t nm = 9;
    CHECK_EQ_INT(sbx_blob_partial_missing(e.bs, hash, NULL, 0, &nm), 0);
    CHECK_EQ_INT(nm, 0);
    CHECK_EQ_INT(sbx_blob_partial_finish(e.bs, hash), 0);
    check_blob(&e, hash, (const uint8_t *)"", 0);
    env_close(&e);
}

SBX_TEST(flipped_byte_detected_by_verify)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 3 * MiB;
    uint8_t *data = random_buf(len, 12);
    uint8_t hash[32];
    REQUIRE(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL) == 0);
    CHECK_EQ_INT(sbx_blob_verify(e.bs, hash), 0);
    char path[256];
    layout_path(&e, hash, path, sizeof path);
    flip_byte(path, disk_off(len - 1));
    CHECK_EQ_INT(sbx_blob_verify(e.bs, hash), SBX_ECORRUPT);
    flip_byte(path, disk_off(len - 1));
    CHECK_EQ_INT(sbx_blob_verify(e.bs, hash), 0);
    /* A truncated file is caught before any read. */
    REQUIRE(truncate(path, (off_t)disk_len(len) - 10) == 0);
    CHECK_EQ_INT(sbx_blob_verify(e.bs, hash), SBX_ECORRUPT);
    sbx_blob_file *f = NULL;
    CHECK_EQ_INT(sbx_blob_open(e.bs, hash, &f), SBX_ECORRUPT);
    /* A vanished file is simply not held: a put brings it back. */
    REQUIRE(unlink(path) == 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
    CHECK_EQ_INT(sbx_blob_verify(e.bs, hash), SBX_ENOENT);
    bool existed = true;
    CHECK_EQ_INT(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, &existed), 0);
    CHECK(!existed);
    check_blob(&e, hash, data, len);
    free(data);
    env_close(&e);
}

SBX_TEST(range_reads)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = 3 * MiB + 17;
    uint8_t *data = random_buf(len, 13);
    uint8_t hash[32];
    REQUIRE(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, NULL) == 0);
    sbx_blob_file *f;
    REQUIRE(sbx_blob_open(e.bs, hash, &f) == 0);
    CHECK_EQ_INT(sbx_blob_file_size(f), len);
    uint8_t *buf = malloc(2 * MiB);
    static const struct { size_t off, len; } ranges[] = {
        {0, 1}, {C - 3, 6}, {C, C}, {12345, 2 * MiB}, {3 * MiB, 17}, {3 * MiB + 16, 1},
    };
    for (size_t k = 0; k < SBX_ARRAY_LEN(ranges); k++) {
        size_t got = 0;
        CHECK_EQ_INT(sbx_blob_file_read(f, ranges[k].off, buf, ranges[k].len, &got), 0);
        CHECK_EQ_INT(got, ranges[k].len);
        CHECK(memcmp(buf, data + ranges[k].off, ranges[k].len) == 0);
        got = 0;
        CHECK_EQ_INT(sbx_blob_read(e.bs, hash, ranges[k].off, buf, ranges[k].len, &got), 0);
        CHECK_EQ_INT(got, ranges[k].len);
        CHECK(memcmp(buf, data + ranges[k].off, ranges[k].len) == 0);
    }
    size_t got = 99;
    /* Past the end: short, then empty, then refused. */
    CHECK_EQ_INT(sbx_blob_file_read(f, len - 5, buf, 100, &got), 0);
    CHECK_EQ_INT(got, 5);
    CHECK(memcmp(buf, data + len - 5, 5) == 0);
    CHECK_EQ_INT(sbx_blob_file_read(f, len, buf, 100, &got), 0);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(sbx_blob_file_read(f, len + 1, buf, 100, &got), SBX_EINVAL);
    sbx_blob_file_close(f);
    uint8_t nohash[32] = {1};
    CHECK_EQ_INT(sbx_blob_read(e.bs, nohash, 0, buf, 10, &got), SBX_ENOENT);
    CHECK_EQ_INT(sbx_blob_open(e.bs, nohash, &f), SBX_ENOENT);
    size_t clen;
    CHECK_EQ_INT(sbx_blob_read_chunk(e.bs, hash, 0, buf, C - 1, &clen), SBX_ETOOBIG);
    free(buf);
    free(data);
    env_close(&e);
}

SBX_TEST(joins_the_callers_transaction)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    uint8_t data[5000], hash[32];
    fill(data, sizeof data, 14);
    REQUIRE(sbx_store_begin(e.s) == 0);
    CHECK_EQ_INT(sbx_blob_put_buf(e.bs, data, sizeof data, SBX_BLOB_THUMB, hash, NULL), 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), 0);
    sbx_store_rollback(e.s);
    /* Rolled back with the caller: not held, though the file stayed. */
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    bool existed = true;
    REQUIRE(sbx_store_begin(e.s) == 0);
    CHECK_EQ_INT(sbx_blob_put_buf(e.bs, data, sizeof data, SBX_BLOB_THUMB, hash, &existed), 0);
    CHECK(!existed);
    CHECK_EQ_INT(sbx_store_commit(e.s), 0);
    check_blob(&e, hash, data, sizeof data);
    /* A delete inside a transaction that commits. */
    REQUIRE(sbx_store_begin(e.s) == 0);
    CHECK_EQ_INT(sbx_blob_delete(e.bs, hash), 0);
    CHECK_EQ_INT(sbx_store_commit(e.s), 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    CHECK_EQ_INT(sbx_blob_delete(e.bs, hash), SBX_ENOENT);
    env_close(&e);
}

SBX_TEST(touch_updates_last_access)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    uint8_t data[300], hash[32], buf[10];
    fill(data, sizeof data, 15);
    REQUIRE(sbx_blob_put_buf(e.bs, data, sizeof data, SBX_BLOB_ORIGINAL, hash, NULL) == 0);
    REQUIRE(sbx_store_exec(e.s, "UPDATE blobs SET last_access_at = 1000") == 0);
    size_t got;
    int64_t t0 = sbx_now_ms();
    CHECK_EQ_INT(sbx_blob_read(e.bs, hash, 0, buf, sizeof buf, &got), 0);
    struct sbx_blob_info info;
    CHECK_EQ_INT(sbx_blob_stat(e.bs, hash, &info), 0);
    CHECK(info.last_access_at >= t0);
    REQUIRE(sbx_store_exec(e.s, "UPDATE blobs SET last_access_at = 1000") == 0);
    CHECK_EQ_INT(sbx_blob_touch(e.bs, hash), 0);
    CHECK_EQ_INT(sbx_blob_stat(e.bs, hash, &info), 0);
    CHECK(info.last_access_at >= t0);
    env_close(&e);
}

static void make_old_file(const char *path)
{
    REQUIRE(write_file(path, (const uint8_t *)"junk", 4) == 0);
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    REQUIRE(utimensat(AT_FDCWD, path, old, 0) == 0);
}

SBX_TEST(open_sweeps_crash_debris)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    char stale[256], live[256], fresh[256], orphan[256];
    snprintf(stale, sizeof stale, "%s/blobs/tmp/put-stale1", e.dir);
    snprintf(live, sizeof live, "%s/blobs/tmp/put-live01", e.dir);
    snprintf(fresh, sizeof fresh, "%s/blobs/tmp/put-fresh1", e.dir);
    snprintf(orphan, sizeof orphan, "%s/blobs/partial/%064d", e.dir, 0);
    make_old_file(stale);
    make_old_file(live);
    make_old_file(orphan);
    REQUIRE(write_file(fresh, (const uint8_t *)"x", 1) == 0);
    /* A temp file still locked by its writer (another process, here the
     * open file description of this test) is left alone. */
    int fd = open(live, O_RDONLY);
    REQUIRE(fd >= 0 && flock(fd, LOCK_EX) == 0);
    close_handles(&e);
    REQUIRE(open_handles(&e) == 0);
    CHECK(access(stale, F_OK) != 0);
    CHECK(access(orphan, F_OK) != 0);
    CHECK(access(live, F_OK) == 0);
    CHECK(access(fresh, F_OK) == 0);
    close(fd);
    env_close(&e);
}

SBX_TEST(delete_removes_partials)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t len = C + 1;
    uint8_t *data = random_buf(len, 16);
    uint8_t hash[32], chunks[2 * 32];
    size_t n;
    sbx_blob_sha256(data, len, hash);
    chunk_hashes_of(data, len, chunks, &n);
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    const uint32_t last = 1;
    CHECK_EQ_INT(recv_chunks(&e, hash, data, len, &last, 1), 0);
    CHECK_EQ_INT(count_dir(&e, "partial"), 1);
    CHECK_EQ_INT(sbx_blob_delete(e.bs, hash), 0);
    CHECK_EQ_INT(count_dir(&e, "partial"), 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    CHECK_EQ_INT(count_rows(&e, "blob_chunks"), 0);
    sbx_blob_partial *p = NULL;
    CHECK_EQ_INT(sbx_blob_partial_open(e.bs, hash, &p), SBX_ENOENT);

    /* A local put completes a transfer under way for the same bytes. */
    REQUIRE(sbx_blob_partial_begin(e.bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n) == 0);
    bool existed = true;
    CHECK_EQ_INT(sbx_blob_put_buf(e.bs, data, len, SBX_BLOB_ORIGINAL, hash, &existed), 0);
    CHECK(!existed);
    CHECK_EQ_INT(count_dir(&e, "partial"), 0);
    check_blob(&e, hash, data, len);
    free(data);
    env_close(&e);
}

/* A batch: nothing is held before the commit, everything after it; a put
 * of a staged blob says existed; no temp file outlives the batch. */
SBX_TEST(batch_installs_together)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    size_t lens[3] = {5, MiB + 3, 3 * MiB};
    uint8_t *data[3], hash[3][32], again[32];
    REQUIRE(sbx_blob_batch_begin(e.bs) == 0);
    CHECK_EQ_INT(sbx_blob_batch_begin(e.bs), SBX_ESTATE);
    for (int i = 0; i < 3; i++) {
        data[i] = random_buf(lens[i], 40 + (uint64_t)i);
        bool existed = true;
        REQUIRE(sbx_blob_put_buf(e.bs, data[i], lens[i], SBX_BLOB_ORIGINAL, hash[i], &existed) == 0);
        CHECK(!existed);
        CHECK_EQ_INT(sbx_blob_has(e.bs, hash[i]), SBX_ENOENT);
    }
    bool existed = false;
    CHECK_EQ_INT(sbx_blob_put_buf(e.bs, data[1], lens[1], SBX_BLOB_ORIGINAL, again, &existed), 0);
    CHECK(existed);
    CHECK(memcmp(again, hash[1], 32) == 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 3);
    CHECK_EQ_INT(sbx_blob_batch_commit(e.bs), 0);
    for (int i = 0; i < 3; i++) check_blob(&e, hash[i], data[i], lens[i]);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 3);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    /* After the batch, a put is durable on its own again. */
    CHECK_EQ_INT(sbx_blob_batch_commit(e.bs), SBX_ESTATE);
    uint8_t *more = random_buf(100, 49);
    REQUIRE(sbx_blob_put_buf(e.bs, more, 100, SBX_BLOB_THUMB, again, NULL) == 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, again), 0);
    free(more);
    for (int i = 0; i < 3; i++) free(data[i]);
    env_close(&e);
}

SBX_TEST(batch_abort_and_close_leave_nothing)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    uint8_t *data = random_buf(2 * MiB, 50);
    uint8_t hash[32];
    REQUIRE(sbx_blob_batch_begin(e.bs) == 0);
    REQUIRE(sbx_blob_put_buf(e.bs, data, 2 * MiB, SBX_BLOB_ORIGINAL, hash, NULL) == 0);
    REQUIRE(sbx_blob_put_buf(e.bs, data, MiB, SBX_BLOB_ORIGINAL, hash, NULL) == 0);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 2);
    sbx_blob_batch_abort(e.bs);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
    /* A batch left open when the store closes is dropped the same way. */
    REQUIRE(sbx_blob_batch_begin(e.bs) == 0);
    REQUIRE(sbx_blob_put_buf(e.bs, data, 2 * MiB, SBX_BLOB_ORIGINAL, hash, NULL) == 0);
    close_handles(&e);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    REQUIRE(open_handles(&e) == 0);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), SBX_ENOENT);
    CHECK_EQ_INT(count_rows(&e, "blobs"), 0);
    free(data);
    env_close(&e);
}

SBX_TEST(batch_commits_when_full)
{
    struct env e;
    REQUIRE(env_open(&e) == 0);
    REQUIRE(sbx_blob_batch_begin(e.bs) == 0);
    uint8_t buf[64], hash[32];
    for (uint32_t i = 0; i < SBX_MAX_BLOB_BATCH + 2; i++) {
        fill(buf, sizeof buf, 1000 + i);
        REQUIRE(sbx_blob_put_buf(e.bs, buf, sizeof buf, SBX_BLOB_THUMB, hash, NULL) == 0);
        /* The put past a full batch installed the batch first. */
        CHECK_EQ_INT(count_rows(&e, "blobs"), i < SBX_MAX_BLOB_BATCH ? 0 : SBX_MAX_BLOB_BATCH);
    }
    CHECK_EQ_INT(sbx_blob_batch_commit(e.bs), 0);
    CHECK_EQ_INT(count_rows(&e, "blobs"), SBX_MAX_BLOB_BATCH + 2);
    CHECK_EQ_INT(sbx_blob_has(e.bs, hash), 0);
    CHECK_EQ_INT(count_dir(&e, "tmp"), 0);
    env_close(&e);
}

SBX_TEST_MAIN(SBX_CASE(round_trip_sizes), SBX_CASE(kinds_are_recorded),
              SBX_CASE(existing_blob_not_rewritten), SBX_CASE(wrong_expected_hash_refused),
              SBX_CASE(writer_streams_in_odd_pieces), SBX_CASE(failed_puts_leave_nothing),
              SBX_CASE(database_failure_leaves_nothing),
              SBX_CASE(disk_full_is_enospc_and_leaves_nothing),
              SBX_CASE(partial_transfer_resumes_after_restart),
              SBX_CASE(partial_damage_found_at_finish), SBX_CASE(partial_with_lying_chunk_list),
              SBX_CASE(handle_pipeline_any_order), SBX_CASE(handle_resume_reads_back),
              SBX_CASE(begin_records_an_installed_blob),
              SBX_CASE(handle_lying_chunk_list), SBX_CASE(damaged_chunk_list_refused),
              SBX_CASE(empty_partial_blob), SBX_CASE(flipped_byte_detected_by_verify),
              SBX_CASE(range_reads), SBX_CASE(joins_the_callers_transaction),
              SBX_CASE(touch_updates_last_access), SBX_CASE(open_sweeps_crash_debris),
              SBX_CASE(delete_removes_partials), SBX_CASE(batch_installs_together),
              SBX_CASE(batch_abort_and_close_leave_nothing), SBX_CASE(batch_commits_when_full))
