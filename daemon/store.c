#include "shoebox/store.h"
#include "shoebox/cryptvfs.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrations.h"

/* Migration N takes a database from user_version N-1 to N. Append only:
 * a released migration never changes. */
static const char *const migrations[] = {
    migration_0001_init,
    migration_0002_drop_photos_hash,
    migration_0003_import_jobs,
    migration_0004_render_queue,
};
_Static_assert(sizeof migrations / sizeof migrations[0] == SBX_SCHEMA_VERSION,
               "one migration per schema version");

#define STMT_CACHE 256

struct sbx_store {
    sqlite3 *db;
    /* Encrypted databases: the VFS that seals every page, and the storage
     * key that other modules derive their subkeys from (sbx_store_subkey). */
    sbx_cryptvfs *vfs;
    bool encrypted;
    uint8_t storage_key[SBX_STORAGE_KEY_BYTES];
    struct {
        const char *sql; /* the caller's string constant: compared by address */
        sqlite3_stmt *stmt;
    } cache[STMT_CACHE];
    int n_cached;
};

int sbx_store_err(int rc)
{
    /* The encrypting VFS reports a page that fails authentication this way
     * (as SQLite's checksum VFS does for a bad checksum). */
    if (rc == SQLITE_IOERR_DATA) return SBX_ECORRUPT;
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW: return 0;
    case SQLITE_NOMEM: return SBX_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return SBX_EBUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return SBX_ECORRUPT;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH: return SBX_EPERM;
    case SQLITE_CANTOPEN: return SBX_ENOENT;
    case SQLITE_FULL: return SBX_ENOSPC;
    case SQLITE_IOERR: return SBX_EIO;
    case SQLITE_CONSTRAINT: return SBX_EEXIST;
    default: return SBX_EDB;
    }
}

static void set_err(char *errmsg, size_t size, const char *fmt, const char *detail)
{
    if (errmsg && size) snprintf(errmsg, size, fmt, detail ? detail : "");
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Reads only: a damaged file must be reported before anything writes to it. */
/* Process-wide SQLite settings, made once before the first connection.
 * Memory statistics are off: SQLite then takes no global mutex around every
 * allocation, which costs about 2% of applying a large batch of entries
 * (tests/bench/bench_engine under callgrind), and nothing reads them. */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;
static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int check_integrity(sqlite3 *db, char *errmsg, size_t size)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    int ok = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    if (rc == SQLITE_IOERR_DATA)
        set_err(errmsg, size, "database is damaged: a page failed authentication (corrupted, tampered "
                              "with, or not this library's key)%s", "");
    else if (!ok && rc == SQLITE_ROW)
        set_err(errmsg, size, "database is damaged: %s", (const char *)sqlite3_column_text(st, 0));
    else if (!ok)
        set_err(errmsg, size, "database is damaged or not a shoebox database: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (ok) return 0;
    return (rc == SQLITE_ROW || (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB ||
            rc == SQLITE_IOERR_DATA)
               ? SBX_ECORRUPT
               : sbx_store_err(rc);
}

static int migrate(sqlite3 *db, int64_t from, char *errmsg, size_t size)
{
    for (int64_t v = from; v < SBX_SCHEMA_VERSION; v++) {
        char *err = NULL;
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %lld", (long long)v + 1);
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &err);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, migrations[v], NULL, NULL, &err);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, bump, NULL, NULL, &err);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &err);
        if (rc != SQLITE_OK) {
            set_err(errmsg, size, "database migration failed: %s", err ? err : sqlite3_errmsg(db));
            sqlite3_free(err);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return sbx_store_err(rc);
        }
        sbx_info("database migrated to schema version %lld", (long long)v + 1);
    }
    return 0;
}

int sbx_store_open(sbx_store **out, const char *path, int flags, char *errmsg, size_t size)
{
    return sbx_store_open_key(out, path, flags, NULL, errmsg, size);
}

int sbx_store_open_key(sbx_store **out, const char *path, int flags,
                       const uint8_t *storage_key, char *errmsg, size_t size)
{
    int rc;
    pthread_once(&sqlite_once, sqlite_setup);
    sbx_store *s = calloc(1, sizeof *s);
    if (!s) return SBX_ENOMEM;
    struct stat st;
    bool new_file = false;
    if (stat(path, &st) != 0) {
        new_file = true;
        if (errno != ENOENT || !(flags & SBX_STORE_CREATE)) {
            rc = sbx_err_from_errno(errno);
            set_err(errmsg, size, "cannot open database: %s", strerror(errno));
            goto fail;
        }
    } else if (access(path, (flags & SBX_STORE_READONLY) ? R_OK : (R_OK | W_OK)) != 0) {
        rc = SBX_EPERM;
        set_err(errmsg, size, "cannot open database: %s", strerror(errno));
        goto fail;
    } else if (st.st_size == 0) {
        new_file = true;
    }
    if (storage_key) {
        uint8_t dbkey[SBX_AEAD_KEY_BYTES];
        sbx_subkey_derive(dbkey, storage_key, SBX_SUBKEY_DB);
        rc = sbx_cryptvfs_new(&s->vfs, dbkey);
        sodium_memzero(dbkey, sizeof dbkey);
        if (rc != 0) {
            set_err(errmsg, size, "cannot set up database encryption: %s", sbx_strerror(rc));
            goto fail;
        }
        memcpy(s->storage_key, storage_key, SBX_STORAGE_KEY_BYTES);
        s->encrypted = true;
    }
    int oflags = (flags & SBX_STORE_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (flags & SBX_STORE_CREATE) oflags |= SQLITE_OPEN_CREATE;
    rc = sqlite3_open_v2(path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, s->vfs ? sbx_cryptvfs_name(s->vfs) : NULL);
    if (rc != SQLITE_OK) {
        /* Opening reads the database header, which for an encrypted file
         * means opening page 1. */
        if (s->db) rc = sqlite3_extended_errcode(s->db);
        if (rc == SQLITE_IOERR_DATA)
            set_err(errmsg, size, "database is damaged: its first page failed authentication (corrupted, "
                                  "tampered with, or not this library's key)%s", "");
        else
            set_err(errmsg, size, "cannot open database: %s", s->db ? sqlite3_errmsg(s->db) : "out of memory");
        rc = sbx_store_err(rc);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    if (s->vfs && (rc = sbx_cryptvfs_prepare(s->db, new_file)) != SQLITE_OK) {
        set_err(errmsg, size, "cannot set up database encryption: %s", sqlite3_errmsg(s->db));
        rc = sbx_store_err(rc);
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if ((rc = check_integrity(s->db, errmsg, size)) != 0) goto fail;
    int64_t version = 0;
    if ((rc = pragma_int(s->db, "PRAGMA user_version", &version)) != SQLITE_OK) {
        set_err(errmsg, size, "cannot read database version: %s", sqlite3_errmsg(s->db));
        rc = sbx_store_err(rc);
        goto fail;
    }
    if (version > SBX_SCHEMA_VERSION) {
        set_err(errmsg, size, "database was written by a newer shoebox%s", "");
        rc = SBX_EUNSUPPORTED;
        goto fail;
    }
    if (!(flags & SBX_STORE_READONLY)) {
        /* WAL lets readers (the CLI, the local API) run beside the writer;
         * NORMAL sync is durable across process crashes, and a power loss can
         * only lose the last transactions, never corrupt the file. */
        char *err = NULL;
        /* A new plain database gets 16 KiB pages (SQLite's default is 4 KiB):
         * fewer, shallower b-tree pages for the photo rows and their indexes.
         * tests/bench/bench_engine applied 100,000 received photo puts at
         * ~172k ops/s of CPU time with 4 KiB pages and 190k-220k with 16 KiB,
         * in the same minutes. The size is fixed once the first table exists
         * and WAL mode is on, so it is set before both; an existing database
         * keeps its own. The encrypting VFS has its own fixed page format. */
        if (new_file && !s->vfs && (rc = sqlite3_exec(s->db, "PRAGMA page_size=16384", NULL, NULL, NULL)) != SQLITE_OK) {
            set_err(errmsg, size, "cannot set the page size: %s", sqlite3_errmsg(s->db));
            rc = sbx_store_err(rc);
            goto fail;
        }
        rc = sqlite3_exec(s->db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
                          NULL, NULL, &err);
        if (rc != SQLITE_OK) {
            set_err(errmsg, size, "cannot configure database: %s", err);
            sqlite3_free(err);
            rc = sbx_store_err(rc);
            goto fail;
        }
        if ((rc = migrate(s->db, version, errmsg, size)) != 0) goto fail;
    } else if (version != SBX_SCHEMA_VERSION) {
        set_err(errmsg, size, "database needs a migration; start shoeboxd once%s", "");
        rc = SBX_ESTATE;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    sbx_store_close(s);
    return rc;
}

void sbx_store_remove_files(const char *path)
{
    char side[PATH_MAX + 8];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

void sbx_store_close(sbx_store *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_cached; i++) sqlite3_finalize(s->cache[i].stmt);
    if (s->vfs && sqlite3_close(s->db) != SQLITE_OK) {
        /* A statement someone did not finalize keeps the connection, and so
         * its VFS and key, alive: leak them rather than free what it uses. */
        sbx_error("database closed with statements still open; its encryption key stays in memory");
        sqlite3_close_v2(s->db);
    } else {
        if (!s->vfs) sqlite3_close_v2(s->db);
        sbx_cryptvfs_free(s->vfs);
    }
    sodium_memzero(s->storage_key, sizeof s->storage_key);
    free(s);
}

bool sbx_store_encrypted(const sbx_store *s) { return s->encrypted; }

int sbx_store_subkey(const sbx_store *s, enum sbx_subkey id, uint8_t out[SBX_AEAD_KEY_BYTES])
{
    if (!s->encrypted) return SBX_ESTATE;
    sbx_subkey_derive(out, s->storage_key, id);
    return 0;
}

sqlite3 *sbx_store_db(sbx_store *s) { return s->db; }

int sbx_store_schema_version(sbx_store *s)
{
    int64_t v = -1;
    return pragma_int(s->db, "PRAGMA user_version", &v) == SQLITE_OK ? (int)v : -1;
}

int sbx_store_exec(sbx_store *s, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        sbx_error("sql failed: %s: %s", err ? err : "?", sql);
        sqlite3_free(err);
    }
    return sbx_store_err(rc);
}

int sbx_store_begin(sbx_store *s) { return sbx_store_exec(s, "BEGIN IMMEDIATE"); }
int sbx_store_commit(sbx_store *s) { return sbx_store_exec(s, "COMMIT"); }
void sbx_store_rollback(sbx_store *s)
{
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

sqlite3_stmt *sbx_store_stmt(sbx_store *s, const char *sql)
{
    for (int i = 0; i < s->n_cached; i++) {
        if (s->cache[i].sql == sql) {
            sqlite3_reset(s->cache[i].stmt);
            sqlite3_clear_bindings(s->cache[i].stmt);
            return s->cache[i].stmt;
        }
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        sbx_error("sql prepare failed: %s: %s", sqlite3_errmsg(s->db), sql);
        return NULL;
    }
    /* A full cache is a programming error: statements are string constants
     * of the code, so their number is fixed. */
    SBX_ASSERT(s->n_cached < STMT_CACHE);
    s->cache[s->n_cached].sql = sql;
    s->cache[s->n_cached].stmt = st;
    s->n_cached++;
    return st;
}

int sbx_store_meta_set(sbx_store *s, const char *key, const void *value, size_t len)
{
    sqlite3_stmt *st = sbx_store_stmt(s, "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!st) return SBX_EDB;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, value, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return sbx_store_err(rc);
}

int sbx_store_meta_set_text(sbx_store *s, const char *key, const char *value)
{
    return sbx_store_meta_set(s, key, value, strlen(value));
}

int sbx_store_meta_get(sbx_store *s, const char *key, void *buf, size_t cap, size_t *len)
{
    sqlite3_stmt *st = sbx_store_stmt(s, "SELECT value FROM meta WHERE key = ?1");
    if (!st) return SBX_EDB;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SBX_ENOENT : sbx_store_err(rc);
    }
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    const void *v = sqlite3_column_blob(st, 0);
    if (n > cap) {
        sqlite3_reset(st);
        return SBX_ETOOBIG;
    }
    if (n) memcpy(buf, v, n);
    *len = n;
    sqlite3_reset(st);
    return 0;
}

int sbx_store_meta_get_text(sbx_store *s, const char *key, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0) return SBX_ETOOBIG;
    int rc = sbx_store_meta_get(s, key, buf, cap - 1, &len);
    if (rc == 0) buf[len] = '\0';
    return rc;
}

int64_t sbx_store_query_int(sbx_store *s, const char *sql)
{
    sqlite3_stmt *st = sbx_store_stmt(s, sql);
    if (!st) return -1;
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return v;
}

int sbx_store_open_sibling(sbx_store **out, const sbx_store *like, const char *path, char *errmsg, size_t size)
{
    return sbx_store_open_key(out, path, 0, like->encrypted ? like->storage_key : NULL, errmsg, size);
}
