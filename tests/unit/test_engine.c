/* The merge engine: one test per merge rule, and property tests in which
 * 3 to 7 authors edit concurrently and their entries reach every replica in
 * random interleavings, with duplicates: every replica must end with the
 * same state digest. */
#include "sbx_test.h"
#include "workload.h"
#include "shoebox/engine.h"
#include "shoebox/err.h"
#include "shoebox/hlc.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdint.h>
#include <unistd.h>

#define MAX_REPLICAS 8
#define T0 1700000000000LL

struct replica {
    char dir[64];
    struct sbx_identity id;
    sbx_store *store;
    sbx_engine *engine;
};

static uint64_t rng_state;
static uint64_t rnd(void) { return sbx_wl_rand(&rng_state); }

static int replica_open(struct replica *r)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/sbx-engine-XXXXXX");
    if (!mkdtemp(r->dir)) return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/shoebox.db", r->dir);
    char err[256];
    return sbx_store_open(&r->store, path, SBX_STORE_CREATE, err, sizeof err);
}

static void replica_close(struct replica *r)
{
    sbx_engine_close(r->engine);
    sbx_store_close(r->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %.*s", (int)sizeof r->dir, r->dir);
    if (system(cmd) != 0) printf("# cleanup of %s failed\n", r->dir);
    memset(r, 0, sizeof *r);
}

/* A founder with a new library. */
static int founder(struct replica *r, int64_t now)
{
    crypto_sign_keypair(r->id.pk, r->id.sk);
    int rc = replica_open(r);
    if (rc == 0) rc = sbx_engine_create_library(r->store, &r->id, "Family", "founder", SBX_ROLE_FULL, now);
    if (rc == 0) rc = sbx_engine_open(&r->engine, r->store, &r->id, NULL);
    return rc;
}

/* A device that joins the founder's library (its log arrives by sync). */
static int joiner(struct replica *r, const struct replica *f)
{
    crypto_sign_keypair(r->id.pk, r->id.sk);
    int rc = replica_open(r);
    if (rc == 0) rc = sbx_engine_prepare_join(r->store, &r->id, sbx_engine_library(f->engine), "joiner", SBX_ROLE_CACHE);
    if (rc == 0) rc = sbx_engine_open(&r->engine, r->store, &r->id, NULL);
    return rc;
}

/* Every entry a replica holds, in (author, seq) order. */
struct rawlist {
    uint8_t **p;
    size_t *n;
    size_t count;
};

static void raws_free(struct rawlist *l)
{
    for (size_t i = 0; i < l->count; i++) free(l->p[i]);
    free(l->p);
    free(l->n);
    memset(l, 0, sizeof *l);
}

/* Entries of one author only when `author` is given. */
static void raws_by(struct replica *r, const uint8_t *author, struct rawlist *l)
{
    memset(l, 0, sizeof *l);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(sbx_store_db(r->store),
                       "SELECT e.raw FROM entries e JOIN authors a ON a.ix = e.author_ix "
                       "WHERE ?1 IS NULL OR a.key = ?1 ORDER BY e.author_ix, e.seq", -1, &st, NULL);
    if (author) sqlite3_bind_blob(st, 1, author, 32, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        l->p = realloc(l->p, (l->count + 1) * sizeof *l->p);
        l->n = realloc(l->n, (l->count + 1) * sizeof *l->n);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        l->p[l->count] = malloc(n);
        memcpy(l->p[l->count], sqlite3_column_blob(st, 0), n);
        l->n[l->count] = n;
        l->count++;
    }
    sqlite3_finalize(st);
}

static void raws_of(struct replica *r, struct rawlist *l) { raws_by(r, NULL, l); }

/* Delivers everything `from` holds to `to`, in one batch. */
static int sync_one(struct replica *from, struct replica *to, int64_t now)
{
    struct rawlist l;
    raws_of(from, &l);
    int rc = sbx_engine_receive(to->engine, (const uint8_t *const *)l.p, l.n, l.count, now, NULL);
    raws_free(&l);
    return rc;
}

static void digest_hex(struct replica *r, char out[65])
{
    uint8_t d[32];
    memset(d, 0, sizeof d);
    sbx_engine_digest(r->engine, d);
    sbx_hex_encode(out, d, 32);
}

/* Both replicas hold byte-identical state; on failure the two digests are
 * printed with the caller's line. */
#define CHECK_SAME_STATE(x, y)                                                   \
    do {                                                                         \
        char dx_[65], dy_[65];                                                   \
        digest_hex((x), dx_);                                                    \
        digest_hex((y), dy_);                                                    \
        CHECK_EQ_STR(dx_, dy_);                                                  \
    } while (0)

static int64_t q(struct replica *r, const char *sql) { return sbx_wl_count(r->store, sql); }

static int q_text(struct replica *r, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    out[0] = '\0';
    if (sqlite3_prepare_v2(sbx_store_db(r->store), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0)) {
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- op makers ---- */

static struct sbx_op op_add_device(const struct replica *r)
{
    struct sbx_op op = {.type = SBX_OP_DEVICE_ADD, .role = SBX_ROLE_CACHE};
    memcpy(op.key, r->id.pk, 32);
    op.name = (struct sbx_str){"dev", 3};
    return op;
}

static struct sbx_op op_put(struct replica *r, unsigned n, uint8_t photo_id[16])
{
    return sbx_wl_op_put(r->engine, n, photo_id);
}

static int write1(struct replica *r, struct sbx_op op, int64_t now)
{
    return sbx_engine_write(r->engine, &op, 1, now);
}

static bool album_has(struct replica *r, const uint8_t album[16], const uint8_t photo[16])
{
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(sbx_store_db(r->store),
                       "SELECT present FROM album_items WHERE album_id = ?1 AND photo_id = ?2", -1, &st, NULL);
    sqlite3_bind_blob(st, 1, album, 16, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, photo, 16, SQLITE_STATIC);
    bool present = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    return present;
}

/* A writes photo n and an album holding it, at T0 + 10, and B receives
 * them at T0 + 11. */
static int album_with_photo(struct replica *a, struct replica *b, unsigned n, const char *name, uint8_t album[16],
                            uint8_t photo[16])
{
    sbx_uuid_random(album);
    struct sbx_op ops[3] = {op_put(a, n, photo), sbx_wl_op_id(SBX_OP_ALBUM_CREATE, album),
                            sbx_wl_op_pair(SBX_OP_ALBUM_ADD, album, photo)};
    ops[1].name = (struct sbx_str){name, (uint32_t)strlen(name)};
    int rc = sbx_engine_write(a->engine, ops, 3, T0 + 10);
    return rc ? rc : sync_one(a, b, T0 + 11);
}

/* Two replicas, A founding and B joined and synced. */
static int pair_setup_keys(struct replica *a, struct replica *b, int b_key_order)
{
    int rc = founder(a, T0);
    if (rc == 0) rc = joiner(b, a);
    /* When asked, give B a key below (-1) or above (1) A's, so tie-breaks
     * are checked against a known answer and not a coin toss. */
    while (rc == 0 && b_key_order != 0 && (memcmp(b->id.pk, a->id.pk, 32) > 0) != (b_key_order > 0)) {
        crypto_sign_keypair(b->id.pk, b->id.sk);
        sbx_engine_close(b->engine);
        rc = sbx_engine_open(&b->engine, b->store, &b->id, NULL);
    }
    if (rc == 0) rc = write1(a, op_add_device(b), T0 + 1);
    if (rc == 0) rc = sync_one(a, b, T0 + 2);
    return rc;
}

static int pair_setup(struct replica *a, struct replica *b) { return pair_setup_keys(a, b, 0); }

/* Two entries written within one millisecond keep their items in order. */
SBX_TEST(album_order_across_entries_in_one_ms)
{
    struct replica a;
    REQUIRE(founder(&a, T0) == 0);
    uint8_t album[16], photo[6][16];
    sbx_uuid_random(album);
    struct sbx_op ops[8];
    ops[0] = sbx_wl_op_id(SBX_OP_ALBUM_CREATE, album);
    ops[0].name = (struct sbx_str){"Order", 5};
    for (int i = 0; i < 6; i++) ops[1 + i] = op_put(&a, 100 + (unsigned)i, photo[i]);
    REQUIRE(sbx_engine_write(a.engine, ops, 7, T0 + 5) == 0);
    for (int e = 0; e < 2; e++) {
        for (int i = 0; i < 3; i++) ops[i] = sbx_wl_op_pair(SBX_OP_ALBUM_ADD, album, photo[e * 3 + i]);
        REQUIRE(sbx_engine_write(a.engine, ops, 3, T0 + 10) == 0); /* same ms both times */
    }
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(sbx_store_db(a.store), "SELECT photo_id FROM album_items WHERE present = 1 "
                                              "ORDER BY position, photo_id", -1, &st, NULL);
    int k = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        CHECK(k < 6 && memcmp(sqlite3_column_blob(st, 0), photo[k], 16) == 0);
        k++;
    }
    sqlite3_finalize(st);
    CHECK_EQ_INT(k, 6);
    replica_close(&a);
}

SBX_TEST(genesis_makes_founder_member)
{
    struct replica a;
    REQUIRE(founder(&a, T0) == 0);
    CHECK(sbx_engine_is_member(a.engine, a.id.pk));
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM entries"), 1);
    char name[64];
    q_text(&a, "SELECT value FROM meta WHERE key = 'library_name'", name, sizeof name);
    CHECK_EQ_STR(name, "Family");
    uint8_t pid[16];
    CHECK_EQ_INT(write1(&a, op_put(&a, 1, pid), T0 + 10), 0);
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL"), 1);
    replica_close(&a);
}

SBX_TEST(joiner_syncs_and_converges)
{
    struct replica a, b;
    REQUIRE(pair_setup(&a, &b) == 0);
    CHECK(sbx_engine_is_member(b.engine, b.id.pk));
    CHECK_EQ_INT(write1(&b, op_put(&b, 7, NULL), T0 + 20), 0);
    CHECK_EQ_INT(sync_one(&b, &a, T0 + 30), 0);
    CHECK_SAME_STATE(&a, &b);
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL"), 1);
    replica_close(&a);
    replica_close(&b);
}

SBX_TEST(add_wins_against_concurrent_remove)
{
    struct replica a, b;
    REQUIRE(pair_setup(&a, &b) == 0);
    uint8_t album[16], photo[16];
    REQUIRE(album_with_photo(&a, &b, 1, "Trip", album, photo) == 0);
    CHECK(album_has(&b, album, photo));
    /* Concurrently: A removes the item (naming the add it saw), B adds it again. */
    CHECK_EQ_INT(write1(&a, sbx_wl_op_pair(SBX_OP_ALBUM_REMOVE, album, photo), T0 + 20), 0);
    CHECK(!album_has(&a, album, photo));
    CHECK_EQ_INT(write1(&b, sbx_wl_op_pair(SBX_OP_ALBUM_ADD, album, photo), T0 + 15), 0);
    REQUIRE(sync_one(&a, &b, T0 + 30) == 0);
    REQUIRE(sync_one(&b, &a, T0 + 30) == 0);
    CHECK(album_has(&a, album, photo));
    CHECK(album_has(&b, album, photo));
    /* A remove that has seen every add removes the item everywhere. */
    CHECK_EQ_INT(write1(&b, sbx_wl_op_pair(SBX_OP_ALBUM_REMOVE, album, photo), T0 + 40), 0);
    REQUIRE(sync_one(&b, &a, T0 + 41) == 0);
    CHECK(!album_has(&a, album, photo));
    CHECK(!album_has(&b, album, photo));
    CHECK_SAME_STATE(&a, &b);
    replica_close(&a);
    replica_close(&b);
}

static void lww_tie(int b_key_order)
{
    struct replica a, b;
    REQUIRE(pair_setup_keys(&a, &b, b_key_order) == 0);
    uint8_t album[16];
    sbx_uuid_random(album);
    struct sbx_op create = sbx_wl_op_id(SBX_OP_ALBUM_CREATE, album);
    create.name = (struct sbx_str){"Start", 5};
    REQUIRE(write1(&a, create, T0 + 10) == 0);
    REQUIRE(sync_one(&a, &b, T0 + 10) == 0);
    /* Both rename at the same wall time with clocks in the same state: the
     * stamps tie on hlc, and the greater author key wins. */
    struct sbx_op ra = sbx_wl_op_id(SBX_OP_ALBUM_RENAME, album), rb = ra;
    ra.name = (struct sbx_str){"From A", 6};
    rb.name = (struct sbx_str){"From B", 6};
    REQUIRE(write1(&a, ra, T0 + 1000) == 0);
    REQUIRE(write1(&b, rb, T0 + 1000) == 0);
    CHECK_EQ_INT(q(&a, "SELECT max(hlc) FROM entries"), q(&b, "SELECT max(hlc) FROM entries"));
    REQUIRE(sync_one(&a, &b, T0 + 1001) == 0);
    REQUIRE(sync_one(&b, &a, T0 + 1001) == 0);
    const char *expect = memcmp(a.id.pk, b.id.pk, 32) > 0 ? "From A" : "From B";
    char na[32], nb[32];
    q_text(&a, "SELECT name FROM albums", na, sizeof na);
    q_text(&b, "SELECT name FROM albums", nb, sizeof nb);
    CHECK_EQ_STR(na, expect);
    CHECK_EQ_STR(nb, expect);
    replica_close(&a);
    replica_close(&b);
}

/* Both orders of keys: the founder (first known author everywhere) loses
 * the tie in one and wins it in the other, so no local numbering can pass. */
SBX_TEST(lww_tie_breaks_on_author_bytes)
{
    lww_tie(-1);
    lww_tie(1);
}

SBX_TEST(remove_arriving_before_its_add)
{
    struct replica a, b, c;
    REQUIRE(pair_setup(&a, &b) == 0);
    REQUIRE(joiner(&c, &a) == 0);
    REQUIRE(write1(&a, op_add_device(&c), T0 + 3) == 0);
    REQUIRE(sync_one(&a, &c, T0 + 4) == 0); /* C knows the members, nothing more */
    uint8_t album[16], photo[16];
    REQUIRE(album_with_photo(&a, &b, 1, "Trip", album, photo) == 0);
    REQUIRE(write1(&b, sbx_wl_op_pair(SBX_OP_ALBUM_REMOVE, album, photo), T0 + 20) == 0);
    /* C hears B's remove first, then A's add: the dot stays removed. */
    struct rawlist l;
    raws_by(&b, b.id.pk, &l);
    REQUIRE(sbx_engine_receive(c.engine, (const uint8_t *const *)l.p, l.n, l.count, T0 + 21, NULL) == 0);
    raws_free(&l);
    CHECK(!album_has(&c, album, photo));
    CHECK(q(&c, "SELECT count(*) FROM album_item_dots WHERE removed = 1") == 1);
    REQUIRE(sync_one(&a, &c, T0 + 22) == 0);
    REQUIRE(sync_one(&b, &a, T0 + 22) == 0);
    CHECK(!album_has(&c, album, photo));
    CHECK(!album_has(&a, album, photo));
    CHECK_SAME_STATE(&a, &c);
    replica_close(&a);
    replica_close(&b);
    replica_close(&c);
}

SBX_TEST(delete_beats_concurrent_edit_and_restore_undoes)
{
    struct replica a, b;
    REQUIRE(pair_setup(&a, &b) == 0);
    uint8_t album[16], photo[16];
    REQUIRE(album_with_photo(&a, &b, 3, "Best", album, photo) == 0);
    /* A deletes; B, later by the clock but unaware, edits a field. */
    CHECK_EQ_INT(write1(&a, sbx_wl_op_id(SBX_OP_PHOTO_DELETE, photo), T0 + 20), 0);
    struct sbx_op fav = sbx_wl_op_id(SBX_OP_PHOTO_SET, photo);
    fav.field = SBX_PF_FAVORITE;
    fav.value.b = true;
    CHECK_EQ_INT(write1(&b, fav, T0 + 30), 0);
    REQUIRE(sync_one(&a, &b, T0 + 40) == 0);
    REQUIRE(sync_one(&b, &a, T0 + 40) == 0);
    CHECK_EQ_INT(q(&a, "SELECT is_deleted FROM photos"), 1);
    CHECK_EQ_INT(q(&b, "SELECT is_deleted FROM photos"), 1);
    CHECK_EQ_INT(q(&b, "SELECT favorite FROM photos"), 1);
    CHECK_EQ_INT(q(&a, "SELECT deleted_at FROM photos"), T0 + 20);
    /* Membership is kept while deleted, so a restore brings it back. */
    CHECK(album_has(&a, album, photo));
    CHECK_EQ_INT(write1(&b, sbx_wl_op_id(SBX_OP_PHOTO_RESTORE, photo), T0 + 50), 0);
    REQUIRE(sync_one(&b, &a, T0 + 51) == 0);
    CHECK_EQ_INT(q(&a, "SELECT is_deleted FROM photos"), 0);
    CHECK(album_has(&a, album, photo));
    CHECK_SAME_STATE(&a, &b);
    replica_close(&a);
    replica_close(&b);
}

SBX_TEST(removed_device_late_entry_refused_everywhere)
{
    struct replica a, b, c;
    REQUIRE(pair_setup(&a, &b) == 0);
    REQUIRE(joiner(&c, &a) == 0);
    REQUIRE(write1(&a, op_add_device(&c), T0 + 3) == 0);
    REQUIRE(sync_one(&a, &c, T0 + 4) == 0);
    REQUIRE(sync_one(&a, &b, T0 + 4) == 0);
    REQUIRE(write1(&b, op_put(&b, 1, NULL), T0 + 10) == 0);
    REQUIRE(sync_one(&b, &a, T0 + 11) == 0);
    int64_t b_seq = q(&a, "SELECT h.seq FROM heads h JOIN devices d ON 1 JOIN authors x ON x.ix = h.author_ix "
                          "AND x.key = d.key WHERE d.name = 'dev'");
    REQUIRE(b_seq > 0);
    /* B writes once more; C hears of it before A's removal of B arrives. */
    REQUIRE(write1(&b, op_put(&b, 2, NULL), T0 + 20) == 0);
    REQUIRE(sync_one(&b, &c, T0 + 21) == 0);
    CHECK_EQ_INT(q(&c, "SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL"), 2);
    struct sbx_op rm = {.type = SBX_OP_DEVICE_REMOVE, .last_seq = (uint64_t)b_seq};
    memcpy(rm.key, b.id.pk, 32);
    REQUIRE(write1(&a, rm, T0 + 30) == 0);
    CHECK(!sbx_engine_is_member(a.engine, b.id.pk));
    REQUIRE(sync_one(&b, &a, T0 + 31) == 0);
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL"), 1);
    CHECK(q(&a, "SELECT count(*) FROM refused_entries WHERE reason LIKE '%removed%'") >= 1);
    /* C applied the late entry already: the removal makes it rebuild. */
    REQUIRE(sync_one(&a, &c, T0 + 32) == 0);
    CHECK_EQ_INT(q(&c, "SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL"), 1);
    CHECK_SAME_STATE(&a, &c);
    /* A removed device cannot write any more (its own replica knows too). */
    REQUIRE(sync_one(&a, &b, T0 + 33) == 0);
    CHECK_EQ_INT(write1(&b, op_put(&b, 3, NULL), T0 + 40), SBX_EPERM);
    replica_close(&a);
    replica_close(&b);
    replica_close(&c);
}

SBX_TEST(fork_is_detected_and_names_the_device)
{
    struct replica a, b, clone;
    REQUIRE(pair_setup(&a, &b) == 0);
    /* A copy of B's data dir: same key, same log, diverging futures. */
    REQUIRE(joiner(&clone, &a) == 0);
    sbx_engine_close(clone.engine);
    clone.id = b.id;
    REQUIRE(sbx_engine_open(&clone.engine, clone.store, &clone.id, NULL) == 0);
    REQUIRE(sync_one(&a, &clone, T0 + 5) == 0);
    REQUIRE(write1(&b, op_put(&b, 1, NULL), T0 + 10) == 0);
    REQUIRE(write1(&clone, op_put(&clone, 2, NULL), T0 + 10) == 0);
    REQUIRE(sync_one(&b, &a, T0 + 11) == 0);
    REQUIRE(sync_one(&clone, &a, T0 + 12) == 0);
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM forks"), 1);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(sbx_store_db(a.store), "SELECT x.key FROM forks f JOIN authors x ON x.ix = f.author_ix", -1,
                       &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW && memcmp(sqlite3_column_blob(st, 0), b.id.pk, 32) == 0);
    sqlite3_finalize(st);
    CHECK(q(&a, "SELECT count(*) FROM refused_entries WHERE reason LIKE 'fork%'") == 1);
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL"), 1);
    replica_close(&a);
    replica_close(&b);
    replica_close(&clone);
}

SBX_TEST(stranger_entries_never_apply)
{
    struct replica a, s;
    REQUIRE(founder(&a, T0) == 0);
    /* A stranger who knows the library id signs entries for it. */
    REQUIRE(joiner(&s, &a) == 0);
    struct sbx_entry_builder *bld = NULL;
    uint8_t zero[32] = {0};
    struct sbx_entry *en = NULL;
    REQUIRE(sbx_entry_builder_new(&bld, sbx_engine_library(a.engine), s.id.pk, 1, zero, SBX_HLC_MAKE(T0 + 5, 0)) == 0);
    struct sbx_op put = op_put(&a, 9, NULL);
    REQUIRE(sbx_entry_builder_add(bld, &put) == 0);
    REQUIRE(sbx_entry_builder_finish(bld, s.id.sk, &en) == 0);
    sbx_entry_builder_free(bld);
    const uint8_t *raw = en->raw;
    size_t len = en->raw_len;
    struct sbx_recv_result r;
    REQUIRE(sbx_engine_receive(a.engine, &raw, &len, 1, T0 + 6, &r) == 0);
    CHECK_EQ_INT(r.status, SBX_RECV_PENDING);
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM photos"), 0);
    sbx_entry_free(en);

    /* A forged genesis (library.create by a non-founder) is refused. */
    struct sbx_op ops[2] = {{.type = SBX_OP_LIBRARY_CREATE}, op_add_device(&s)};
    ops[0].name = (struct sbx_str){"Mine", 4};
    bld = NULL;
    struct sbx_identity t;
    crypto_sign_keypair(t.pk, t.sk);
    memcpy(ops[1].key, t.pk, 32);
    REQUIRE(sbx_entry_builder_new(&bld, sbx_engine_library(a.engine), t.pk, 1, zero, SBX_HLC_MAKE(T0 + 5, 0)) == 0);
    REQUIRE(sbx_entry_builder_add(bld, &ops[0]) == 0);
    REQUIRE(sbx_entry_builder_add(bld, &ops[1]) == 0);
    REQUIRE(sbx_entry_builder_finish(bld, t.sk, &en) == 0);
    sbx_entry_builder_free(bld);
    raw = en->raw;
    len = en->raw_len;
    REQUIRE(sbx_engine_receive(a.engine, &raw, &len, 1, T0 + 6, &r) == 0);
    CHECK_EQ_INT(r.status, SBX_RECV_REFUSED);
    CHECK(!sbx_engine_is_member(a.engine, t.pk));
    sbx_entry_free(en);

    /* Garbage bytes are refused with a reason, not a crash. */
    uint8_t junk[100];
    randombytes_buf(junk, sizeof junk);
    raw = junk;
    len = sizeof junk;
    REQUIRE(sbx_engine_receive(a.engine, &raw, &len, 1, T0 + 6, &r) == 0);
    CHECK_EQ_INT(r.status, SBX_RECV_REFUSED);
    replica_close(&a);
    replica_close(&s);
}

SBX_TEST(future_entries_are_deferred)
{
    struct replica a, b;
    REQUIRE(pair_setup(&a, &b) == 0);
    /* B's clock is two days ahead. */
    REQUIRE(write1(&b, op_put(&b, 1, NULL), T0 + 2 * 86400000LL) == 0);
    struct rawlist l;
    raws_of(&b, &l);
    struct sbx_recv_result *res = calloc(l.count, sizeof *res);
    REQUIRE(sbx_engine_receive(a.engine, (const uint8_t *const *)l.p, l.n, l.count, T0 + 100, res) == 0);
    CHECK_EQ_INT(res[l.count - 1].status, SBX_RECV_DEFERRED);
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM photos"), 0);
    /* Once the local clock catches up, it applies. */
    REQUIRE(sbx_engine_receive(a.engine, (const uint8_t *const *)l.p, l.n, l.count, T0 + 2 * 86400000LL, res) == 0);
    CHECK_EQ_INT(res[l.count - 1].status, SBX_RECV_APPLIED);
    free(res);
    raws_free(&l);
    replica_close(&a);
    replica_close(&b);
}

/* A batch of several entries is decoded ahead on a second thread: results
 * stay in the batch's order, junk in the middle is refused at its own index,
 * and everything else applies as one entry at a time would. */
SBX_TEST(batch_decoded_ahead_keeps_order)
{
    struct replica a, b;
    REQUIRE(pair_setup(&a, &b) == 0);
    for (int i = 0; i < 12; i++) REQUIRE(write1(&b, op_put(&b, 100 + i, NULL), T0 + 10 + i) == 0);
    struct rawlist l;
    raws_of(&b, &l);
    REQUIRE(l.count >= 12);
    size_t n = l.count + 2;
    const uint8_t **p = calloc(n, sizeof *p);
    size_t *len = calloc(n, sizeof *len);
    struct sbx_recv_result *res = calloc(n, sizeof *res);
    REQUIRE(p && len && res);
    uint8_t junk[64];
    randombytes_buf(junk, sizeof junk);
    size_t junk_at[2] = {2, n - 3}, k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == junk_at[0] || i == junk_at[1]) {
            p[i] = junk;
            len[i] = sizeof junk;
        } else {
            p[i] = l.p[k];
            len[i] = l.n[k];
            k++;
        }
    }
    REQUIRE(sbx_engine_receive(a.engine, p, len, n, T0 + 100, res) == 0);
    /* The setup's entries are already known to A: duplicates. */
    int applied = 0;
    for (size_t i = 0; i < n; i++) {
        bool is_junk = i == junk_at[0] || i == junk_at[1];
        if (is_junk) {
            CHECK_EQ_INT(res[i].status, SBX_RECV_REFUSED);
            CHECK(strstr(res[i].reason, "undecodable") != NULL);
        } else {
            CHECK(res[i].status == SBX_RECV_APPLIED || res[i].status == SBX_RECV_DUPLICATE);
            applied += res[i].status == SBX_RECV_APPLIED;
        }
    }
    CHECK_EQ_INT(applied, 12);
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM photos"), q(&b, "SELECT count(*) FROM photos"));
    uint8_t da[32], db[32];
    REQUIRE(sbx_engine_digest(a.engine, da) == 0);
    REQUIRE(sbx_engine_digest(b.engine, db) == 0);
    CHECK(memcmp(da, db, 32) == 0);
    free(p);
    free(len);
    free(res);
    raws_free(&l);
    replica_close(&a);
    replica_close(&b);
}

SBX_TEST(one_action_is_few_entries)
{
    struct replica a;
    REQUIRE(founder(&a, T0) == 0);
    enum { N = 1000 };
    struct sbx_op *ops = calloc(N, sizeof *ops);
    for (unsigned i = 0; i < N; i++) ops[i] = op_put(&a, i, NULL);
    CHECK_EQ_INT(sbx_engine_write(a.engine, ops, N, T0 + 10), 0);
    free(ops);
    CHECK_EQ_INT(q(&a, "SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL"), N);
    int64_t entries = q(&a, "SELECT count(*) FROM entries") - 1;
    CHECK(entries >= (N + SBX_MAX_OPS_PER_ENTRY - 1) / SBX_MAX_OPS_PER_ENTRY);
    CHECK(entries <= N / 50);
    replica_close(&a);
}

/* ---- property test ---- */

/* Delivers a random prefix of each author's entries held by `from`, in an
 * interleaving that keeps each author's order only sometimes (pending
 * handles the rest), with duplicates. */
static int deliver_random(struct replica *from, struct replica *to, int64_t now)
{
    struct rawlist l;
    raws_of(from, &l);
    if (l.count == 0) return 0;
    size_t n = l.count + l.count / 4;
    const uint8_t **p = calloc(n, sizeof *p);
    size_t *len = calloc(n, sizeof *len);
    for (size_t i = 0; i < n; i++) {
        size_t k = i < l.count ? i : (size_t)(rnd() % l.count);
        p[i] = l.p[k];
        len[i] = l.n[k];
    }
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rnd() % (i + 1));
        const uint8_t *tp = p[i];
        p[i] = p[j];
        p[j] = tp;
        size_t tl = len[i];
        len[i] = len[j];
        len[j] = tl;
    }
    size_t take = 1 + (size_t)(rnd() % n);
    int rc = 0;
    for (size_t off = 0; off < take && rc == 0; off += 7) {
        size_t chunk = take - off < 7 ? take - off : 7;
        rc = sbx_engine_receive(to->engine, p + off, len + off, chunk, now, NULL);
    }
    free(p);
    free(len);
    raws_free(&l);
    return rc;
}

static void property_run(uint64_t seed, int authors, int steps)
{
    struct replica rs[MAX_REPLICAS];
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
    int64_t now = T0;
    REQUIRE(founder(&rs[0], now) == 0);
    for (int i = 1; i < authors; i++) {
        REQUIRE(joiner(&rs[i], &rs[0]) == 0);
        REQUIRE(write1(&rs[0], op_add_device(&rs[i]), ++now) == 0);
    }
    for (int i = 1; i < authors; i++) REQUIRE(sync_one(&rs[0], &rs[i], now) == 0);
    for (int s = 0; s < steps; s++) {
        now += (int64_t)(rnd() % 50);
        int who = (int)(rnd() % (uint64_t)authors);
        if (rnd() % 3 == 0) {
            int to = (int)(rnd() % (uint64_t)authors);
            if (to != who) REQUIRE(deliver_random(&rs[who], &rs[to], now) == 0);
        } else {
            /* Clocks are skewed per replica, up to a second. */
            int rc = sbx_wl_random_write(rs[who].engine, rs[who].store, &rng_state, now + who * 137, 12);
            CHECK_EQ_INT(rc, 0);
            if (rc != 0) return;
        }
    }
    /* Heal: everyone hears everything, in random orders. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < authors; i++)
            for (int j = 0; j < authors; j++)
                if (i != j) REQUIRE(sync_one(&rs[i], &rs[j], now + 5000) == 0);
    char d0[65], di[65];
    digest_hex(&rs[0], d0);
    int64_t entries = q(&rs[0], "SELECT count(*) FROM entries");
    for (int i = 1; i < authors; i++) {
        digest_hex(&rs[i], di);
        CHECK_EQ_STR(di, d0);
        CHECK_EQ_INT(q(&rs[i], "SELECT count(*) FROM entries"), entries);
        CHECK_EQ_INT(q(&rs[i], "SELECT count(*) FROM pending_entries"), 0);
    }
    /* Semantic invariants on the healed state. */
    CHECK_EQ_INT(q(&rs[0], "SELECT count(*) FROM refused_entries"), 0);
    CHECK_EQ_INT(q(&rs[0], "SELECT count(*) FROM album_items i WHERE present != EXISTS (SELECT 1 FROM "
                           "album_item_dots d WHERE d.album_id = i.album_id AND d.photo_id = i.photo_id AND "
                           "d.added = 1 AND d.removed = 0)"),
                 0);
    CHECK_EQ_INT(q(&rs[0], "SELECT count(*) FROM photos WHERE put_hlc IS NULL"), 0);
    printf("# seed %llu: %d authors, %lld entries, digest %.16s\n", (unsigned long long)seed, authors,
           (long long)entries, d0);
    for (int i = 0; i < authors; i++) replica_close(&rs[i]);
}

SBX_TEST(property_random_workloads_converge)
{
    for (uint64_t seed = 1; seed <= 12; seed++) property_run(seed, 3 + (int)(seed % 5), 120);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    sbx_log_set_level(SBX_LOG_ERROR);
    static const struct sbx_test_case cases[] = {
        SBX_CASE(genesis_makes_founder_member),
        SBX_CASE(joiner_syncs_and_converges),
        SBX_CASE(add_wins_against_concurrent_remove),
        SBX_CASE(lww_tie_breaks_on_author_bytes),
        SBX_CASE(remove_arriving_before_its_add),
        SBX_CASE(album_order_across_entries_in_one_ms),
        SBX_CASE(delete_beats_concurrent_edit_and_restore_undoes),
        SBX_CASE(removed_device_late_entry_refused_everywhere),
        SBX_CASE(fork_is_detected_and_names_the_device),
        SBX_CASE(stranger_entries_never_apply),
        SBX_CASE(future_entries_are_deferred),
        SBX_CASE(batch_decoded_ahead_keeps_order),
        SBX_CASE(one_action_is_few_entries),
        SBX_CASE(property_random_workloads_converge),
    };
    return sbx_test_run(cases, SBX_ARRAY_LEN(cases));
}
