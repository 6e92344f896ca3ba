/* The encrypting SQLite VFS: round trips, no plaintext in any file (the
 * database, the WAL, a rollback journal, temporary files), every page's
 * tamper detected, WAL recovery after a crash with a torn or altered tail,
 * and hot journal rollback through the VFS. */
#include "sbx_test.h"
#include "shoebox/cryptvfs.h"
#include "shoebox/err.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER "Canon EOS 5D Mark IV 43.4612N"
#define NROWS 300

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *buf = NULL;
    *len = 0;
    if (sbx_file_read(path, 1u << 30, &buf, len) != 0) return NULL;
    return buf;
}

static bool file_has(const char *path, const void *needle, size_t n)
{
    size_t len;
    uint8_t *buf = slurp(path, &len);
    bool found = buf && memmem(buf, len, needle, n) != NULL;
    free(buf);
    return found;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void copy_file(const char *src, const char *dst)
{
    size_t len;
    uint8_t *buf = slurp(src, &len);
    if (!buf) abort();
    if (sbx_file_write_atomic(dst, buf, len, 0600) != 0) abort();
    free(buf);
}

static void flip_bit(const char *path, off_t off, int bit)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    if (fd < 0 || pread(fd, &b, 1, off) != 1) abort();
    b ^= (uint8_t)(1u << bit);
    if (pwrite(fd, &b, 1, off) != 1) abort();
    close(fd);
}

static void unlink_db(const char *path)
{
    char side[300];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-journal", path);
    unlink(side);
}

/* A raw connection through a fresh VFS instance with `key`. */
static sqlite3 *raw_open(const char *path, const uint8_t key[32], sbx_cryptvfs **vfs)
{
    sqlite3 *db = NULL;
    struct stat st;
    bool fresh = stat(path, &st) != 0 || st.st_size == 0;
    if (sbx_cryptvfs_new(vfs, key) != 0) return NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, sbx_cryptvfs_name(*vfs)) != SQLITE_OK ||
        sbx_cryptvfs_prepare(db, fresh) != SQLITE_OK) {
        sqlite3_close(db);
        sbx_cryptvfs_free(*vfs);
        *vfs = NULL;
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    return db;
}

static void raw_close(sqlite3 *db, sbx_cryptvfs *vfs)
{
    if (sqlite3_close(db) != SQLITE_OK) abort();
    sbx_cryptvfs_free(vfs);
}

static int64_t one_int(sqlite3 *db, const char *sql, int *rc_out)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc_out) *rc_out = rc;
    return v;
}

/* Rows [from, to) of t: a text with the marker and a blob big enough to
 * need overflow pages. */
static int insert_rows(sqlite3 *db, int from, int to)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "INSERT INTO t(id, a, b) VALUES (?1, ?2, ?3)", -1, &st, NULL);
    static uint8_t blob[6000];
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = (uint8_t)"PHOTO-BYTES-"[i % 12];
    for (int i = from; i < to && rc == SQLITE_OK; i++) {
        char text[96];
        snprintf(text, sizeof text, "%s row %d", MARKER, i);
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, blob, sizeof blob, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

static void key_of(uint8_t key[32], uint8_t seed)
{
    for (int i = 0; i < 32; i++) key[i] = (uint8_t)(seed * 31 + i);
}

/* A store-level database with NROWS rows, closed (its WAL checkpointed and
 * removed). */
static bool make_store_db(const char *path, const uint8_t key[32])
{
    sbx_store *s = NULL;
    char err[256];
    unlink_db(path);
    if (sbx_store_open_key(&s, path, SBX_STORE_CREATE, key, err, sizeof err) != 0) {
        printf("# %s\n", err);
        return false;
    }
    bool ok = sbx_store_exec(s, "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB)") == 0 &&
              sbx_store_begin(s) == 0 && insert_rows(sbx_store_db(s), 0, NROWS) == SQLITE_OK &&
              sbx_store_commit(s) == 0;
    sbx_store_close(s);
    return ok;
}

SBX_TEST(store_round_trip_leaves_no_plaintext)
{
    char path[128], side[160], err[256];
    uint8_t key[32];
    key_of(key, 1);
    sbx_test_path(path, sizeof path, "rt.db");
    REQUIRE(make_store_db(path, key));
    snprintf(side, sizeof side, "%s-wal", path);
    CHECK(file_size(side) < 0); /* checkpointed and removed at close */
    CHECK(file_size(path) > 100 * SBX_CRYPTVFS_PAGE);
    CHECK(!file_has(path, MARKER, strlen(MARKER)));
    CHECK(!file_has(path, "PHOTO-BYTES-PHOTO", 17));
    CHECK(!file_has(path, "SQLite format 3", 15));
    CHECK(!file_has(path, "CREATE TABLE", 12));

    sbx_store *s = NULL;
    REQUIRE(sbx_store_open_key(&s, path, 0, key, err, sizeof err) == 0);
    CHECK(sbx_store_encrypted(s));
    CHECK_EQ_INT(sbx_store_query_int(s, "SELECT count(*) FROM t"), NROWS);
    CHECK_EQ_INT(sbx_store_query_int(s, "SELECT count(*) FROM t WHERE a LIKE '" MARKER " row %' AND length(b) = 6000"),
                 NROWS);
    uint8_t sub[32], again[32];
    CHECK_EQ_INT(sbx_store_subkey(s, SBX_SUBKEY_BLOB_DATA, sub), 0);
    CHECK_EQ_INT(sbx_store_subkey(s, SBX_SUBKEY_BLOB_DATA, again), 0);
    CHECK(memcmp(sub, again, 32) == 0);
    CHECK_EQ_INT(sbx_store_subkey(s, SBX_SUBKEY_BLOB_NAME, again), 0);
    CHECK(memcmp(sub, again, 32) != 0);
    sbx_store_close(s);

    /* A plain store has no subkeys and is not encrypted. */
    sbx_test_path(path, sizeof path, "plain.db");
    unlink_db(path);
    REQUIRE(sbx_store_open(&s, path, SBX_STORE_CREATE, err, sizeof err) == 0);
    CHECK(!sbx_store_encrypted(s));
    CHECK_EQ_INT(sbx_store_subkey(s, SBX_SUBKEY_BLOB_DATA, sub), SBX_ESTATE);
    sbx_store_close(s);
}

SBX_TEST(every_tampered_page_is_reported_damaged)
{
    char path[128], err[256];
    uint8_t key[32];
    key_of(key, 2);
    sbx_test_path(path, sizeof path, "tamper.db");
    REQUIRE(make_store_db(path, key));
    off_t size = file_size(path);
    REQUIRE(size > 0 && size % SBX_CRYPTVFS_PAGE == 0);
    size_t before_len, after_len;
    uint8_t *before = slurp(path, &before_len);
    REQUIRE(before);
    int pages = (int)(size / SBX_CRYPTVFS_PAGE), refused = 0;
    uint32_t r = 12345;
    for (int pg = 0; pg < pages; pg++) {
        /* A different byte in each page, in the ciphertext, the nonce or the
         * tag alike. */
        r = r * 1103515245u + 12345u;
        off_t at = (off_t)pg * SBX_CRYPTVFS_PAGE + (off_t)(r >> 8) % SBX_CRYPTVFS_PAGE;
        flip_bit(path, at, (int)(r % 8));
        sbx_store *s = NULL;
        err[0] = '\0';
        int rc = sbx_store_open_key(&s, path, 0, key, err, sizeof err);
        if (rc == SBX_ECORRUPT && strstr(err, "damaged")) refused++;
        else printf("# page %d: rc %d (%s)\n", pg + 1, rc, err);
        sbx_store_close(s);
        flip_bit(path, at, (int)(r % 8));
    }
    CHECK_EQ_INT(refused, pages);
    uint8_t *after = slurp(path, &after_len);
    CHECK(after && after_len == before_len && memcmp(before, after, before_len) == 0);
    free(before);
    free(after);
    /* Untouched again, it opens. */
    sbx_store *s = NULL;
    CHECK_EQ_INT(sbx_store_open_key(&s, path, 0, key, err, sizeof err), 0);
    sbx_store_close(s);
}

SBX_TEST(wrong_key_and_wrong_mode_are_refused)
{
    char path[128], plain[128], err[256];
    uint8_t key[32], other[32];
    key_of(key, 3);
    key_of(other, 4);
    sbx_test_path(path, sizeof path, "keys.db");
    REQUIRE(make_store_db(path, key));
    size_t before_len, after_len;
    uint8_t *before = slurp(path, &before_len);
    sbx_store *s = NULL;
    CHECK_EQ_INT(sbx_store_open_key(&s, path, 0, other, err, sizeof err), SBX_ECORRUPT);
    CHECK(strstr(err, "damaged") != NULL);
    CHECK_EQ_INT(sbx_store_open(&s, path, 0, err, sizeof err), SBX_ECORRUPT);
    uint8_t *after = slurp(path, &after_len);
    CHECK(before && after && after_len == before_len && memcmp(before, after, before_len) == 0);
    free(before);
    free(after);

    sbx_test_path(plain, sizeof plain, "keys-plain.db");
    unlink_db(plain);
    REQUIRE(sbx_store_open(&s, plain, SBX_STORE_CREATE, err, sizeof err) == 0);
    sbx_store_close(s);
    CHECK_EQ_INT(sbx_store_open_key(&s, plain, 0, key, err, sizeof err), SBX_ECORRUPT);
}

/* Frames in the WAL so far. */
static int64_t wal_frames(const char *db_path)
{
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    off_t n = file_size(wal);
    return n < 32 ? 0 : (n - 32) / (24 + SBX_CRYPTVFS_PAGE);
}

static off_t frame_page_off(int64_t frame) { return 32 + frame * (24 + SBX_CRYPTVFS_PAGE) + 24; }

SBX_TEST(wal_is_encrypted_and_recovers_after_a_crash)
{
    char path[128], wal[160], copy[128], copywal[160];
    uint8_t key[32];
    key_of(key, 5);
    sbx_test_path(path, sizeof path, "wal.db");
    unlink_db(path);
    snprintf(wal, sizeof wal, "%s-wal", path);
    sbx_cryptvfs *vfs;
    sqlite3 *db = raw_open(path, key, &vfs);
    REQUIRE(db);
    REQUIRE(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                             "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB)", NULL, NULL, NULL) == SQLITE_OK);
    /* Three transactions; the frame count after each. */
    int64_t ends[3];
    for (int tx = 0; tx < 3; tx++) {
        REQUIRE(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
        REQUIRE(insert_rows(db, tx * 100, tx * 100 + 100) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
        ends[tx] = wal_frames(path);
    }
    CHECK(ends[0] > 0 && ends[1] > ends[0] && ends[2] > ends[1]);
    CHECK(!file_has(wal, MARKER, strlen(MARKER)));
    CHECK(!file_has(wal, "PHOTO-BYTES-PHOTO", 17));
    CHECK(!file_has(path, MARKER, strlen(MARKER)));

    /* A crash now: the database and its WAL as they are on disk, no WAL
     * index. Recovery must read the frames back through the VFS. */
    sbx_test_path(copy, sizeof copy, "wal-copy.db");
    snprintf(copywal, sizeof copywal, "%s-wal", copy);
    for (int round = 0; round < 3; round++) {
        unlink_db(copy);
        copy_file(path, copy);
        copy_file(wal, copywal);
        int64_t want = 300;
        if (round == 1) {
            /* A torn last frame: the last transaction is lost, the rest
             * stays. */
            flip_bit(copywal, frame_page_off(ends[2] - 1) + 100, 3);
            want = 200;
        } else if (round == 2) {
            /* An altered frame inside the second transaction ends the log
             * there, as a checksum mismatch does without encryption. */
            flip_bit(copywal, frame_page_off(ends[0] + 1) + 7, 0);
            want = 100;
        }
        sbx_cryptvfs *v2;
        sqlite3 *db2 = raw_open(copy, key, &v2);
        REQUIRE(db2);
        int rc;
        CHECK_EQ_INT(one_int(db2, "SELECT count(*) FROM t", &rc), want);
        CHECK_EQ_INT(rc, SQLITE_OK);
        CHECK_EQ_INT(one_int(db2, "SELECT count(*) FROM t WHERE a LIKE '" MARKER "%'", &rc), want);
        CHECK_EQ_INT(sbx_cryptvfs_rejected(v2), round == 0 ? 0 : 1);
        raw_close(db2, v2);
    }

    /* A frame altered after recovery, read by a lookup: an error, never
     * the bytes. */
    unlink_db(copy);
    copy_file(path, copy);
    copy_file(wal, copywal);
    sbx_cryptvfs *v3, *v4;
    sqlite3 *db3 = raw_open(copy, key, &v3);
    REQUIRE(db3);
    int rc;
    CHECK_EQ_INT(one_int(db3, "SELECT count(*) FROM t", &rc), 300);
    flip_bit(copywal, frame_page_off(ends[1] + 2) + 5, 1);
    flip_bit(copywal, frame_page_off(ends[2] - 1) + 5, 1);
    sqlite3 *db4 = raw_open(copy, key, &v4); /* a new connection: no cached pages */
    REQUIRE(db4);
    /* hex() reads every overflow page (length() of a blob would not). */
    one_int(db4, "SELECT sum(length(hex(b))) FROM t", &rc);
    CHECK_EQ_INT(rc, SQLITE_IOERR_DATA);
    raw_close(db4, v4);
    raw_close(db3, v3);
    raw_close(db, vfs);
}

SBX_TEST(hot_journal_rolls_back_through_the_vfs)
{
    char path[128], journal[160], copy[128], copyj[160];
    uint8_t key[32];
    key_of(key, 6);
    sbx_test_path(path, sizeof path, "journal.db");
    unlink_db(path);
    snprintf(journal, sizeof journal, "%s-journal", path);
    sbx_cryptvfs *vfs;
    sqlite3 *db = raw_open(path, key, &vfs);
    REQUIRE(db);
    REQUIRE(sqlite3_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;"
                             "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB)", NULL, NULL, NULL) == SQLITE_OK);
    REQUIRE(insert_rows(db, 0, NROWS) == SQLITE_OK);
    /* A transaction too big for a tiny cache spills changed pages into the
     * database file before the commit, after journaling the originals. */
    REQUIRE(sqlite3_exec(db, "PRAGMA cache_size=4; BEGIN; UPDATE t SET a = 'changed', b = zeroblob(6000)", NULL,
                         NULL, NULL) == SQLITE_OK);
    CHECK(file_size(journal) > 10 * SBX_CRYPTVFS_PAGE);
    CHECK(!file_has(journal, MARKER, strlen(MARKER)));
    CHECK(!file_has(journal, "PHOTO-BYTES-PHOTO", 17));
    /* The crash: the half-written database and its hot journal, twice. */
    char copy2[128], copy2j[160];
    sbx_test_path(copy, sizeof copy, "journal-copy.db");
    sbx_test_path(copy2, sizeof copy2, "journal-copy2.db");
    snprintf(copyj, sizeof copyj, "%s-journal", copy);
    snprintf(copy2j, sizeof copy2j, "%s-journal", copy2);
    unlink_db(copy);
    unlink_db(copy2);
    copy_file(path, copy);
    copy_file(journal, copyj);
    copy_file(path, copy2);
    copy_file(journal, copy2j);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    raw_close(db, vfs);

    sbx_cryptvfs *v2;
    sqlite3 *db2 = raw_open(copy, key, &v2);
    REQUIRE(db2);
    int rc;
    CHECK_EQ_INT(one_int(db2, "SELECT count(*) FROM t WHERE a LIKE '" MARKER "%' AND b != zeroblob(6000)", &rc),
                 NROWS);
    CHECK_EQ_INT(one_int(db2, "SELECT count(*) FROM pragma_quick_check WHERE quick_check = 'ok'", &rc), 1);
    CHECK(file_size(copyj) <= 0);
    raw_close(db2, v2);

    /* An altered journal page stops the rollback rather than playing back
     * bytes nobody wrote. The first record's page follows the header (one
     * sector: SQLite takes 512 bytes when the VFS promises powersafe
     * overwrite) and its 4-byte page number. */
    flip_bit(copy2j, 512 + 4 + 50, 2);
    for (int attempt = 0; attempt < 2; attempt++) {
        db2 = raw_open(copy2, key, &v2);
        REQUIRE(db2);
        one_int(db2, "SELECT count(*) FROM t", &rc);
        CHECK_EQ_INT(rc, SQLITE_IOERR_DATA);
        raw_close(db2, v2);
        /* Still hot: the next open refuses again instead of going on
         * with a half-restored database. */
        CHECK(file_size(copy2j) > 0);
    }
}

/* Reads every file of this process that lives in `dir` (temporary files
 * are unlinked at once, so only /proc/self/fd still reaches them). */
static int scan_open_temp_files(const char *dir, bool *found_marker)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char link[300], target[512];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = '\0';
        if (strncmp(target, dir, strlen(dir)) != 0) continue;
        struct stat st;
        if (stat(link, &st) != 0 || st.st_size == 0) continue;
        n++;
        if (file_has(link, MARKER, strlen(MARKER)) || file_has(link, "PHOTO-BYTES-PHOTO", 17)) *found_marker = true;
    }
    closedir(d);
    return n;
}

SBX_TEST(temporary_files_are_encrypted)
{
    char path[128], tdir[128];
    uint8_t key[32];
    key_of(key, 7);
    sbx_test_path(path, sizeof path, "temp.db");
    sbx_test_path(tdir, sizeof tdir, "sqlite-tmp");
    mkdir(tdir, 0700);
    unlink_db(path);
    sqlite3_temp_directory = sqlite3_mprintf("%s", tdir);
    sbx_cryptvfs *vfs;
    sqlite3 *db = raw_open(path, key, &vfs);
    REQUIRE(db);
    REQUIRE(sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB)",
                         NULL, NULL, NULL) == SQLITE_OK);
    REQUIRE(insert_rows(db, 0, NROWS) == SQLITE_OK);
    /* A temporary table larger than its tiny cache lives in a temp file. */
    REQUIRE(sqlite3_exec(db, "PRAGMA temp_store=FILE; PRAGMA temp.cache_size=2;"
                             "CREATE TEMP TABLE tt AS SELECT a, b FROM t", NULL, NULL, NULL) == SQLITE_OK);
    bool marker = false;
    int files = scan_open_temp_files(tdir, &marker);
    CHECK(files >= 1);
    CHECK(!marker);
    int rc;
    CHECK_EQ_INT(one_int(db, "SELECT count(*) FROM tt WHERE a LIKE '" MARKER "%' AND length(b) = 6000", &rc), NROWS);
    /* A sort bigger than its memory spills to temp files too. */
    sqlite3_stmt *st = NULL;
    REQUIRE(sqlite3_exec(db, "PRAGMA cache_size=2", NULL, NULL, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_prepare_v2(db, "SELECT a FROM tt ORDER BY b || a DESC", -1, &st, NULL) == SQLITE_OK);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK(strncmp((const char *)sqlite3_column_text(st, 0), MARKER, strlen(MARKER)) == 0);
    marker = false;
    files = scan_open_temp_files(tdir, &marker);
    CHECK(!marker);
    printf("# %d temporary files open during the sort\n", files);
    sqlite3_finalize(st);
    raw_close(db, vfs);
    sqlite3_free(sqlite3_temp_directory);
    sqlite3_temp_directory = NULL;
}

SBX_TEST(page_size_cannot_change)
{
    char path[128];
    uint8_t key[32];
    key_of(key, 8);
    sbx_test_path(path, sizeof path, "pagesize.db");
    unlink_db(path);
    sbx_cryptvfs *vfs;
    sqlite3 *db = raw_open(path, key, &vfs);
    REQUIRE(db);
    REQUIRE(sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x)", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "PRAGMA page_size=8192", NULL, NULL, NULL) != SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "VACUUM", NULL, NULL, NULL), SQLITE_OK);
    int rc;
    CHECK_EQ_INT(one_int(db, "PRAGMA page_size", &rc), SBX_CRYPTVFS_PAGE);
    raw_close(db, vfs);
}

/* Two connections to one encrypted database (each store has its own VFS
 * instance, the same key): they share the WAL and its index, as two plain
 * connections do. */
SBX_TEST(two_connections_share_the_wal)
{
    char path[128], err[256];
    uint8_t key[32];
    key_of(key, 9);
    sbx_test_path(path, sizeof path, "two.db");
    unlink_db(path);
    sbx_store *a = NULL, *b = NULL;
    REQUIRE(sbx_store_open_key(&a, path, SBX_STORE_CREATE, key, err, sizeof err) == 0);
    REQUIRE(sbx_store_exec(a, "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB)") == 0);
    REQUIRE(sbx_store_open_key(&b, path, 0, key, err, sizeof err) == 0);
    for (int round = 0; round < 3; round++) {
        REQUIRE(sbx_store_begin(a) == 0);
        REQUIRE(insert_rows(sbx_store_db(a), round * 50, round * 50 + 50) == SQLITE_OK);
        REQUIRE(sbx_store_commit(a) == 0);
        CHECK_EQ_INT(sbx_store_query_int(b, "SELECT count(*) FROM t"), (round + 1) * 50);
        /* And the other way round. */
        REQUIRE(sbx_store_exec(b, "UPDATE t SET a = a || ' seen' WHERE id % 7 = 0") == 0);
        CHECK(sbx_store_query_int(a, "SELECT count(*) FROM t WHERE a LIKE '% seen%'") > 0);
    }
    CHECK_EQ_INT(sbx_store_exec(a, "PRAGMA wal_checkpoint(TRUNCATE)"), 0);
    CHECK_EQ_INT(sbx_store_query_int(b, "SELECT count(*) FROM t WHERE length(b) = 6000"), 150);
    sbx_store_close(b);
    sbx_store_close(a);
    CHECK(!file_has(path, MARKER, strlen(MARKER)));
}

SBX_TEST_MAIN(SBX_CASE(two_connections_share_the_wal), SBX_CASE(store_round_trip_leaves_no_plaintext), SBX_CASE(every_tampered_page_is_reported_damaged),
              SBX_CASE(wrong_key_and_wrong_mode_are_refused), SBX_CASE(wal_is_encrypted_and_recovers_after_a_crash),
              SBX_CASE(hot_journal_rolls_back_through_the_vfs), SBX_CASE(temporary_files_are_encrypted),
              SBX_CASE(page_size_cannot_change))
