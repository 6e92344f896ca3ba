/* The data dir's helpers: the worker stores that the importer and the
 * renderer open for their threads, on plain and encrypted libraries. */
#include "sbx_test.h"
#include "shoebox/blob.h"
#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define NW 3

/* The storage key of the encrypted cases (any fixed bytes). */
static uint8_t key[32];

static void key_init(void)
{
    for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i * 7 + 3);
}

struct lib {
    char dir[64];
    sbx_store *s;
    sbx_blobstore *bs;
};

/* A fresh data dir with the loop's own store and blob store. */
static int lib_open(struct lib *l, const uint8_t *storage_key)
{
    memset(l, 0, sizeof *l);
    snprintf(l->dir, sizeof l->dir, "/tmp/sbx-datadir-XXXXXX");
    if (!mkdtemp(l->dir)) return SBX_EIO;
    char db[128], err[256] = "";
    if (sbx_datadir_path(db, sizeof db, l->dir, SBX_FILE_DB) != 0) return SBX_ETOOBIG;
    int rc = sbx_store_open_key(&l->s, db, SBX_STORE_CREATE, storage_key, err, sizeof err);
    if (rc == 0) rc = sbx_blobstore_open(&l->bs, l->dir, l->s);
    if (rc) printf("# open: %s: %s\n", sbx_strerror(rc), err);
    return rc;
}

static void lib_close(struct lib *l)
{
    sbx_blobstore_close(l->bs);
    sbx_store_close(l->s);
    sbx_test_rmtree(l->dir);
}

static void close_workers(sbx_store *ws[NW], sbx_blobstore *wb[NW])
{
    for (size_t i = 0; i < NW; i++) {
        sbx_blobstore_close(wb[i]);
        sbx_store_close(ws[i]);
        wb[i] = NULL;
        ws[i] = NULL;
    }
}

/* Every worker reads what the loop stored and stores what the loop then
 * reads: they share the library, its key included. */
static void check_workers_share(struct lib *l, const uint8_t *storage_key)
{
    sbx_store *ws[NW] = {0};
    sbx_blobstore *wb[NW] = {0};
    char err[256] = "";
    REQUIRE(sbx_datadir_open_workers(l->dir, l->s, NW, ws, wb, err, sizeof err) == 0);
    uint8_t h_loop[32];
    REQUIRE(sbx_blob_put_buf(l->bs, "from the loop", 13, SBX_BLOB_ORIGINAL, h_loop, NULL) == 0);
    for (size_t i = 0; i < NW; i++) {
        REQUIRE(ws[i] != NULL && wb[i] != NULL);
        CHECK(ws[i] != l->s);
        for (size_t k = 0; k < i; k++) CHECK(ws[i] != ws[k] && wb[i] != wb[k]);
        CHECK_EQ_INT(sbx_store_encrypted(ws[i]), storage_key != NULL);
        char buf[32] = "";
        size_t got = 0;
        CHECK_EQ_INT(sbx_blob_read(wb[i], h_loop, 0, buf, sizeof buf, &got), 0);
        CHECK_EQ_INT(got, 13);
        CHECK(memcmp(buf, "from the loop", 13) == 0);
        char mine[32];
        int n = snprintf(mine, sizeof mine, "from worker %zu", i);
        uint8_t h[32];
        CHECK_EQ_INT(sbx_blob_put_buf(wb[i], mine, (size_t)n, SBX_BLOB_ORIGINAL, h, NULL), 0);
        CHECK_EQ_INT(sbx_blob_read(l->bs, h, 0, buf, sizeof buf, &got), 0);
        CHECK_EQ_INT(got, n);
        CHECK(memcmp(buf, mine, (size_t)n) == 0);
    }

    /* Open slots are kept; only the empty one is opened again. */
    sbx_store *kept = ws[0];
    sbx_blobstore *kept_bs = wb[0];
    sbx_blobstore_close(wb[1]);
    sbx_store_close(ws[1]);
    wb[1] = NULL;
    ws[1] = NULL;
    CHECK_EQ_INT(sbx_datadir_open_workers(l->dir, l->s, NW, ws, wb, err, sizeof err), 0);
    CHECK(ws[0] == kept && wb[0] == kept_bs);
    CHECK(ws[1] != NULL && wb[1] != NULL);
    CHECK_EQ_INT(sbx_blob_has(wb[1], h_loop), 0);
    close_workers(ws, wb);
}

SBX_TEST(workers_share_a_plain_library)
{
    struct lib l;
    REQUIRE(lib_open(&l, NULL) == 0);
    check_workers_share(&l, NULL);
    lib_close(&l);
}

SBX_TEST(workers_share_an_encrypted_library)
{
    struct lib l;
    key_init();
    REQUIRE(lib_open(&l, key) == 0);
    check_workers_share(&l, key);
    lib_close(&l);
}

SBX_TEST(worker_failures_leave_the_slot_empty)
{
    struct lib l;
    key_init();
    REQUIRE(lib_open(&l, key) == 0);
    sbx_store *ws[NW] = {0};
    sbx_blobstore *wb[NW] = {0};
    char err[256] = "";

    /* No database there: nothing opens, and *err says why. */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nowhere", l.dir);
    CHECK(sbx_datadir_open_workers(missing, l.s, NW, ws, wb, err, sizeof err) < 0);
    CHECK(err[0] != '\0');
    for (size_t i = 0; i < NW; i++) CHECK(ws[i] == NULL && wb[i] == NULL);

    /* The database opens but the blob store cannot (its folder is a
     * file): the connection is closed again, not left half set up. */
    char other[64], db[128], blobs[128];
    snprintf(other, sizeof other, "/tmp/sbx-datadir-XXXXXX");
    REQUIRE(mkdtemp(other) != NULL);
    snprintf(db, sizeof db, "%s/" SBX_FILE_DB, other);
    snprintf(blobs, sizeof blobs, "%s/blobs", other);
    sbx_store *s2 = NULL;
    REQUIRE(sbx_store_open_key(&s2, db, SBX_STORE_CREATE, key, err, sizeof err) == 0);
    FILE *f = fopen(blobs, "w");
    REQUIRE(f != NULL);
    fclose(f);
    CHECK(sbx_datadir_open_workers(other, s2, NW, ws, wb, err, sizeof err) < 0);
    for (size_t i = 0; i < NW; i++) CHECK(ws[i] == NULL && wb[i] == NULL);
    sbx_store_close(s2);
    sbx_test_rmtree(other);
    lib_close(&l);
}

SBX_TEST_MAIN(SBX_CASE(workers_share_a_plain_library), SBX_CASE(workers_share_an_encrypted_library),
              SBX_CASE(worker_failures_leave_the_slot_empty))
