/* The local database: schema as documented, migrations, and damaged or
 * foreign files reported without being changed. */
#include "sbx_test.h"
#include "shoebox/err.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <unistd.h>

/* Every object of a database as "type name sql" lines, whitespace folded,
 * sorted by name: the schema's fingerprint. */
static char *schema_of(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    sqlite3_prepare_v2(db, "SELECT type, name, ifnull(sql, '') FROM sqlite_master "
                           "WHERE name NOT LIKE 'sqlite_%' ORDER BY name", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char line[16384];
        int n = snprintf(line, sizeof line, "%s %s ", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1));
        const char *sql = (const char *)sqlite3_column_text(st, 2);
        bool space = false;
        for (const char *p = sql; *p && n < (int)sizeof line - 2; p++) {
            if (*p == ' ' || *p == '\n' || *p == '\t') {
                space = true;
                continue;
            }
            if (space) line[n++] = ' ';
            space = false;
            line[n++] = *p;
        }
        line[n++] = '\n';
        line[n] = '\0';
        while (len + (size_t)n + 1 > cap) out = realloc(out, cap *= 2);
        memcpy(out + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    sqlite3_finalize(st);
    return out;
}

SBX_TEST(fresh_database_matches_docs_schema)
{
    char path[128], err[256];
    sbx_test_path(path, sizeof path, "fresh.db");
    sbx_store *s = NULL;
    REQUIRE(sbx_store_open(&s, path, SBX_STORE_CREATE, err, sizeof err) == 0);
    CHECK_EQ_INT(sbx_store_schema_version(s), SBX_SCHEMA_VERSION);
    /* New plain databases use 16 KiB pages (daemon/store.c says why). */
    sqlite3_stmt *ps = NULL;
    REQUIRE(sqlite3_prepare_v2(sbx_store_db(s), "PRAGMA page_size", -1, &ps, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_step(ps) == SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(ps, 0), 16384);
    sqlite3_finalize(ps);
    char *have = schema_of(sbx_store_db(s));

    const char *src = getenv("SHOEBOX_SRC");
    char doc[512];
    snprintf(doc, sizeof doc, "%s/docs/schema.sql", src ? src : ".");
    uint8_t *sql = NULL;
    size_t len = 0;
    REQUIRE(sbx_file_read(doc, 1 << 20, &sql, &len) == 0);
    sqlite3 *mem = NULL;
    sqlite3_open(":memory:", &mem);
    char *e = NULL;
    CHECK_EQ_INT(sqlite3_exec(mem, (const char *)sql, NULL, NULL, &e), SQLITE_OK);
    if (e) printf("# %s\n", e);
    sqlite3_free(e);
    char *want = schema_of(mem);
    CHECK(strlen(want) > 1000);
    if (strcmp(have, want) != 0) {
        printf("# docs/schema.sql differs from the schema the daemon creates\n");
        sbx_test_failed_ = 1;
    }
    sqlite3_close(mem);
    free(sql);
    free(have);
    free(want);
    sbx_store_close(s);
}

SBX_TEST(reopen_keeps_version_and_meta)
{
    char path[128], err[256], buf[64];
    sbx_test_path(path, sizeof path, "meta.db");
    sbx_store *s = NULL;
    REQUIRE(sbx_store_open(&s, path, SBX_STORE_CREATE, err, sizeof err) == 0);
    CHECK_EQ_INT(sbx_store_meta_set_text(s, "device_name", "laptop"), 0);
    sbx_store_close(s);
    REQUIRE(sbx_store_open(&s, path, 0, err, sizeof err) == 0);
    CHECK_EQ_INT(sbx_store_meta_get_text(s, "device_name", buf, sizeof buf), 0);
    CHECK_EQ_STR(buf, "laptop");
    CHECK_EQ_INT(sbx_store_meta_get_text(s, "nothing", buf, sizeof buf), SBX_ENOENT);
    CHECK_EQ_INT(sbx_store_meta_get_text(s, "device_name", buf, 3), SBX_ETOOBIG);
    CHECK_EQ_INT(sbx_store_query_int(s, "PRAGMA foreign_keys"), 1);
    sbx_store_close(s);
}

static int file_sum(const char *path, uint8_t out[32])
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sbx_file_read(path, 1 << 26, &buf, &len);
    if (rc == 0) {
        memset(out, 0, 32);
        for (size_t i = 0; i < len; i++) out[i % 32] = (uint8_t)(out[i % 32] * 31 + buf[i]);
        free(buf);
    }
    return rc;
}

SBX_TEST(newer_schema_refused_unchanged)
{
    char path[128], err[256];
    sbx_test_path(path, sizeof path, "newer.db");
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "CREATE TABLE x(y); PRAGMA user_version = 99;", NULL, NULL, NULL);
    sqlite3_close(db);
    uint8_t before[32], after[32];
    REQUIRE(file_sum(path, before) == 0);
    sbx_store *s = NULL;
    CHECK_EQ_INT(sbx_store_open(&s, path, 0, err, sizeof err), SBX_EUNSUPPORTED);
    CHECK(strstr(err, "newer") != NULL);
    REQUIRE(file_sum(path, after) == 0);
    CHECK(memcmp(before, after, 32) == 0);
}

SBX_TEST(garbage_file_refused_unchanged)
{
    char path[128], err[256];
    sbx_test_path(path, sizeof path, "garbage.db");
    uint8_t junk[8192];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 7 + 3);
    REQUIRE(sbx_file_write_atomic(path, junk, sizeof junk, 0600) == 0);
    sbx_store *s = NULL;
    CHECK_EQ_INT(sbx_store_open(&s, path, 0, err, sizeof err), SBX_ECORRUPT);
    CHECK(strstr(err, "damaged") != NULL);
    uint8_t *buf = NULL;
    size_t len = 0;
    REQUIRE(sbx_file_read(path, 1 << 20, &buf, &len) == 0);
    CHECK(len == sizeof junk && memcmp(buf, junk, len) == 0);
    free(buf);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", path);
    CHECK(access(wal, F_OK) != 0);
}

SBX_TEST(missing_file_without_create)
{
    char path[128], err[256];
    sbx_test_path(path, sizeof path, "missing.db");
    sbx_store *s = NULL;
    CHECK_EQ_INT(sbx_store_open(&s, path, 0, err, sizeof err), SBX_ENOENT);
    CHECK(access(path, F_OK) != 0);
}

SBX_TEST(transactions_roll_back)
{
    char path[128], err[256];
    sbx_test_path(path, sizeof path, "txn.db");
    sbx_store *s = NULL;
    REQUIRE(sbx_store_open(&s, path, SBX_STORE_CREATE, err, sizeof err) == 0);
    CHECK_EQ_INT(sbx_store_begin(s), 0);
    CHECK_EQ_INT(sbx_store_meta_set_text(s, "k", "v"), 0);
    sbx_store_rollback(s);
    char buf[8];
    CHECK_EQ_INT(sbx_store_meta_get_text(s, "k", buf, sizeof buf), SBX_ENOENT);
    sbx_store_close(s);
}

/* A database made by schema version 1 (the first release) is upgraded in
 * place, keeps its data, and ends with the documented schema. */
SBX_TEST(version_1_database_upgrades_in_place)
{
    char path[128], err[256], doc[512];
    sbx_test_path(path, sizeof path, "v1.db");
    const char *src = getenv("SHOEBOX_SRC");
    snprintf(doc, sizeof doc, "%s/daemon/migrations/0001_init.sql", src ? src : ".");
    uint8_t *sql = NULL;
    size_t len = 0;
    REQUIRE(sbx_file_read(doc, 1 << 20, &sql, &len) == 0);
    sqlite3 *db = NULL;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, (const char *)sql, NULL, NULL, NULL), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA user_version = 1; INSERT INTO meta(key, value) VALUES ('device_name', 'old');",
                              NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    free(sql);
    sbx_store *s = NULL;
    REQUIRE(sbx_store_open(&s, path, 0, err, sizeof err) == 0);
    CHECK_EQ_INT(sbx_store_schema_version(s), SBX_SCHEMA_VERSION);
    char buf[16];
    CHECK_EQ_INT(sbx_store_meta_get_text(s, "device_name", buf, sizeof buf), 0);
    CHECK_EQ_STR(buf, "old");
    CHECK_EQ_INT(sbx_store_query_int(s, "SELECT count(*) FROM sqlite_master WHERE name = 'photos_hash'"), 0);
    /* Same objects as a fresh database. */
    char fresh_path[128];
    sbx_test_path(fresh_path, sizeof fresh_path, "v2.db");
    sbx_store *f = NULL;
    REQUIRE(sbx_store_open(&f, fresh_path, SBX_STORE_CREATE, err, sizeof err) == 0);
    char *a = schema_of(sbx_store_db(s)), *b = schema_of(sbx_store_db(f));
    CHECK(strcmp(a, b) == 0);
    free(a);
    free(b);
    sbx_store_close(f);
    sbx_store_close(s);
}

int main(void)
{
    static const struct sbx_test_case cases[] = {
        SBX_CASE(fresh_database_matches_docs_schema), SBX_CASE(reopen_keeps_version_and_meta),
        SBX_CASE(newer_schema_refused_unchanged),     SBX_CASE(garbage_file_refused_unchanged),
        SBX_CASE(missing_file_without_create),        SBX_CASE(transactions_roll_back),
        SBX_CASE(version_1_database_upgrades_in_place),
    };
    return sbx_test_run(cases, SBX_ARRAY_LEN(cases));
}
