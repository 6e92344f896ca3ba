/* The peer session, sans-I/O: two sessions joined by in-memory pipes. */
#include "sbx_test.h"
#include "workload.h"
#include "shoebox/blob.h"
#include "shoebox/engine.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/peer.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <sodium.h>
#include <unistd.h>

#define T0 1700000000000LL

struct node {
    char dir[64];
    struct sbx_identity id;
    sbx_store *store;
    sbx_engine *engine;
    sbx_peer *peer;
    int events[8];
    char reason[200];
    uint8_t psk[32];
    bool invite_open;
    /* Blobs: a store to serve from, chunks heard of. */
    sbx_blobstore *blobs;
    const struct sbx_peer_blob_cb *blob_cb;
    int chunks_data, chunks_none;
};

static int node_open(struct node *n)
{
    snprintf(n->dir, sizeof n->dir, "/tmp/sbx-peer-XXXXXX");
    if (!mkdtemp(n->dir)) return -1;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/shoebox.db", n->dir);
    return sbx_store_open(&n->store, path, SBX_STORE_CREATE, err, sizeof err);
}

static int founder(struct node *n)
{
    memset(n, 0, sizeof *n);
    crypto_sign_keypair(n->id.pk, n->id.sk);
    int rc = node_open(n);
    if (rc == 0) rc = sbx_engine_create_library(n->store, &n->id, "Lib", "a", SBX_ROLE_FULL, T0);
    if (rc == 0) rc = sbx_engine_open(&n->engine, n->store, &n->id, NULL);
    return rc;
}

static int joiner(struct node *n, const struct node *f)
{
    memset(n, 0, sizeof *n);
    crypto_sign_keypair(n->id.pk, n->id.sk);
    int rc = node_open(n);
    if (rc == 0) rc = sbx_engine_prepare_join(n->store, &n->id, sbx_engine_library(f->engine), "b", SBX_ROLE_CACHE);
    if (rc == 0) rc = sbx_engine_open(&n->engine, n->store, &n->id, NULL);
    return rc;
}

static void node_close(struct node *n)
{
    sbx_peer_free(n->peer);
    sbx_blobstore_close(n->blobs);
    sbx_engine_close(n->engine);
    sbx_store_close(n->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", n->dir);
    if (system(cmd) != 0) printf("# cannot remove %s\n", n->dir);
}

static void on_event(sbx_peer *p, enum sbx_peer_event ev, const char *reason)
{
    struct node *n = sbx_peer_data(p);
    n->events[ev]++;
    if (reason) snprintf(n->reason, sizeof n->reason, "%s", reason);
}

static int find_invite(void *data, const uint8_t id[8], uint8_t psk[32])
{
    struct node *n = data;
    uint8_t want[8];
    sbx_peer_invite_id(n->psk, want);
    if (!n->invite_open || memcmp(id, want, 8) != 0) return SBX_ENOENT;
    n->invite_open = false; /* one use */
    memcpy(psk, n->psk, 32);
    return 0;
}

static int start(struct node *n, bool initiator, const uint8_t *psk, const uint8_t *expect, int64_t now)
{
    struct sbx_peer_config cfg = {
        .initiator = initiator, .id = &n->id, .engine = n->engine, .psk = psk, .expect_key = expect,
        .name = initiator ? "joiner" : "inviter", .join_role = SBX_ROLE_CACHE, .find_invite = find_invite,
        .platform = "linux", .app_version = "test", .blobs = n->blobs, .blob_cb = n->blob_cb,
    };
    return sbx_peer_new(&n->peer, &cfg, on_event, n, now);
}

/* Moves bytes both ways until nothing moves (bounded). `limit` caps what
 * one side may take per round, to exercise partial reads. */
static size_t pump_pair(struct node *a, struct node *b, int64_t now, size_t limit)
{
    size_t moved = 0;
    for (int round = 0; round < 100000; round++) {
        size_t this_round = 0;
        struct node *ends[2][2] = {{a, b}, {b, a}};
        for (int k = 0; k < 2; k++) {
            struct node *from = ends[k][0], *to = ends[k][1];
            const uint8_t *bytes;
            size_t len;
            sbx_peer_output(from->peer, &bytes, &len);
            if (len == 0) continue;
            if (limit && len > limit) len = limit;
            uint8_t *copy = malloc(len);
            memcpy(copy, bytes, len);
            sbx_peer_output_consume(from->peer, len);
            if (!sbx_peer_is_closed(to->peer)) sbx_peer_input(to->peer, copy, len, now);
            if (!sbx_peer_is_closed(to->peer)) sbx_peer_apply(to->peer);
            free(copy);
            this_round += len;
        }
        moved += this_round;
        if (this_round == 0) break;
    }
    return moved;
}

static void digest(struct node *n, char out[65])
{
    uint8_t d[32];
    sbx_engine_digest(n->engine, d);
    sbx_hex_encode(out, d, 32);
}

static int add_member(struct node *a, struct node *b)
{
    struct sbx_op add = {.type = SBX_OP_DEVICE_ADD, .role = SBX_ROLE_CACHE};
    memcpy(add.key, b->id.pk, 32);
    add.name = (struct sbx_str){"b", 1};
    return sbx_engine_write(a->engine, &add, 1, T0 + 1);
}

/* Gives B A's log as it is now (what a pairing would have done). */
static int seed_log(struct node *a, struct node *b)
{
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(sbx_store_db(a->store), "SELECT raw FROM entries ORDER BY hlc", -1, &st, NULL);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const uint8_t *raw = sqlite3_column_blob(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        rc = sbx_engine_receive(b->engine, &raw, &len, 1, T0 + 5, NULL);
    }
    sqlite3_finalize(st);
    return rc;
}

static int import_n(struct node *n, unsigned count, unsigned base)
{
    struct sbx_op *ops = calloc(count, sizeof *ops);
    for (unsigned i = 0; i < count; i++) ops[i] = sbx_wl_op_put(n->engine, base + i, NULL);
    int rc = sbx_engine_write(n->engine, ops, count, T0 + 10);
    free(ops);
    return rc;
}

SBX_TEST(members_sync_both_ways)
{
    struct node a, b;
    REQUIRE(founder(&a) == 0);
    REQUIRE(joiner(&b, &a) == 0);
    REQUIRE(add_member(&a, &b) == 0);
    REQUIRE(seed_log(&a, &b) == 0);
    REQUIRE(import_n(&a, 600, 0) == 0);
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&b, true, NULL, NULL, T0) == 0);
    pump_pair(&a, &b, T0 + 100, 0);
    CHECK_EQ_INT(a.events[SBX_PEER_READY], 1);
    CHECK_EQ_INT(b.events[SBX_PEER_READY], 1);
    CHECK(sbx_peer_remote_key(b.peer) && memcmp(sbx_peer_remote_key(b.peer), a.id.pk, 32) == 0);
    CHECK_EQ_STR(sbx_peer_remote_name(b.peer), "inviter");
    char da[65], db[65];
    digest(&a, da);
    digest(&b, db);
    CHECK_EQ_STR(da, db);
    CHECK_EQ_INT(sbx_peer_entries_behind(a.peer), 0);
    /* Live: B writes, kicks, A gets it. */
    REQUIRE(import_n(&b, 3, 5000) == 0);
    sbx_peer_kick(b.peer);
    pump_pair(&a, &b, T0 + 200, 0);
    digest(&a, da);
    digest(&b, db);
    CHECK_EQ_STR(da, db);
    CHECK(!sbx_peer_is_closed(a.peer) && !sbx_peer_is_closed(b.peer));
    node_close(&a);
    node_close(&b);
}

SBX_TEST(partial_reads_and_backpressure)
{
    struct node a, b;
    REQUIRE(founder(&a) == 0);
    REQUIRE(joiner(&b, &a) == 0);
    REQUIRE(add_member(&a, &b) == 0);
    REQUIRE(seed_log(&a, &b) == 0);
    REQUIRE(import_n(&a, 20000, 0) == 0);
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&b, true, NULL, NULL, T0) == 0);
    /* Only the handshake and hellos: A then holds at most its bound. */
    pump_pair(&a, &b, T0, 7);
    const uint8_t *bytes;
    size_t len;
    sbx_peer_output(a.peer, &bytes, &len);
    CHECK(len <= SBX_MAX_PEER_OUTPUT + SBX_NOISE_MAX_MSG + 2);
    pump_pair(&a, &b, T0 + 1, 1000);
    char da[65], db[65];
    digest(&a, da);
    digest(&b, db);
    CHECK_EQ_STR(da, db);
    node_close(&a);
    node_close(&b);
}

static void on_chunk(sbx_peer *p, const uint8_t hash[32], uint32_t idx, const uint8_t *data, size_t len)
{
    struct node *n = sbx_peer_data(p);
    (void)hash;
    (void)idx;
    if (data && len == SBX_BLOB_CHUNK) n->chunks_data++;
    else if (!data) n->chunks_none++;
}

static const struct sbx_peer_blob_cb chunk_cb = {.chunk = on_chunk};

/* Open descriptors of this process. */
static int open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int n = 0;
    while (readdir(dir)) n++;
    closedir(dir);
    return n;
}

/* A peer asked for many chunks holds the blob of the one it serves open,
 * not one per request waiting in its queue; a chunk it does not hold is
 * still answered "none". */
SBX_TEST(queued_chunk_requests_hold_no_files)
{
    struct node a, b;
    REQUIRE(founder(&a) == 0);
    REQUIRE(joiner(&b, &a) == 0);
    REQUIRE(add_member(&a, &b) == 0);
    REQUIRE(seed_log(&a, &b) == 0);
    REQUIRE(sbx_blobstore_open(&a.blobs, a.dir, a.store) == 0);
    enum { N = SBX_MAX_CHUNKS_IN_FLIGHT - 1 };
    uint8_t hashes[N + 1][32];
    uint8_t *buf = malloc(SBX_BLOB_CHUNK);
    REQUIRE(buf != NULL);
    for (int i = 0; i < N; i++) {
        randombytes_buf(buf, SBX_BLOB_CHUNK);
        REQUIRE(sbx_blob_put_buf(a.blobs, buf, SBX_BLOB_CHUNK, SBX_BLOB_ORIGINAL, hashes[i], NULL) == 0);
    }
    free(buf);
    randombytes_buf(hashes[N], 32); /* held by nobody */
    b.blob_cb = &chunk_cb;
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&b, true, NULL, NULL, T0) == 0);
    pump_pair(&a, &b, T0 + 100, 0);
    REQUIRE(sbx_peer_is_ready(a.peer) && sbx_peer_is_ready(b.peer));

    int before = open_fds();
    /* The unknown blob in the middle of the queue. */
    for (int i = 0; i <= N; i++) {
        int k = i < N / 2 ? i : i == N / 2 ? N : i - 1;
        REQUIRE(sbx_peer_chunk_get(b.peer, hashes[k], 0) == 0);
    }
    /* The requests reach A; its output fills up (its bound is a few
     * chunks) and nobody drains it yet: the rest wait in its queue. */
    const uint8_t *bytes;
    size_t len;
    sbx_peer_output(b.peer, &bytes, &len);
    REQUIRE(len > 0);
    uint8_t *copy = malloc(len);
    memcpy(copy, bytes, len);
    sbx_peer_output_consume(b.peer, len);
    REQUIRE(sbx_peer_input(a.peer, copy, len, T0 + 200) == 0);
    free(copy);
    sbx_peer_output(a.peer, &bytes, &len);
    CHECK(len >= SBX_MAX_PEER_OUTPUT && len < (size_t)(N - 2) * SBX_BLOB_CHUNK);
    int during = open_fds();
    CHECK(during - before <= 1);
    if (during - before > 1) printf("# %d blob files open for queued requests\n", during - before);

    pump_pair(&a, &b, T0 + 300, 0);
    CHECK_EQ_INT(b.chunks_data, N);
    CHECK_EQ_INT(b.chunks_none, 1);
    CHECK_EQ_INT(sbx_peer_chunks_in_flight(b.peer), 0);
    CHECK_EQ_INT(open_fds(), before);
    CHECK(!sbx_peer_is_closed(a.peer) && !sbx_peer_is_closed(b.peer));
    node_close(&a);
    node_close(&b);
}

SBX_TEST(pairing_admits_the_joiner)
{
    struct node a, b;
    REQUIRE(founder(&a) == 0);
    REQUIRE(joiner(&b, &a) == 0);
    REQUIRE(import_n(&a, 50, 0) == 0);
    randombytes_buf(a.psk, 32);
    a.invite_open = true;
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&b, true, a.psk, a.id.pk, T0) == 0);
    pump_pair(&a, &b, T0 + 100, 0);
    CHECK_EQ_INT(a.events[SBX_PEER_JOINED], 1);
    CHECK_EQ_INT(b.events[SBX_PEER_JOINED], 1);
    CHECK(sbx_engine_is_member(a.engine, b.id.pk));
    CHECK(sbx_engine_is_member(b.engine, b.id.pk));
    char da[65], db[65];
    digest(&a, da);
    digest(&b, db);
    CHECK_EQ_STR(da, db);
    CHECK(!a.invite_open);
    node_close(&a);
    node_close(&b);
}

SBX_TEST(pairing_with_a_wrong_or_used_secret_fails)
{
    struct node a, b;
    REQUIRE(founder(&a) == 0);
    REQUIRE(joiner(&b, &a) == 0);
    randombytes_buf(a.psk, 32);
    a.invite_open = true;
    uint8_t wrong[32];
    randombytes_buf(wrong, 32);
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&b, true, wrong, a.id.pk, T0) == 0);
    pump_pair(&a, &b, T0 + 100, 0);
    CHECK(sbx_peer_is_closed(a.peer));
    CHECK(strstr(a.reason, "invitation") != NULL);
    CHECK(!sbx_engine_is_member(a.engine, b.id.pk));
    CHECK(a.invite_open); /* a wrong secret does not burn the invitation */
    sbx_peer_free(a.peer);
    sbx_peer_free(b.peer);
    /* Used once, refused the second time. */
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&b, true, a.psk, a.id.pk, T0) == 0);
    pump_pair(&a, &b, T0 + 100, 0);
    CHECK_EQ_INT(a.events[SBX_PEER_JOINED], 1);
    struct node c;
    REQUIRE(joiner(&c, &a) == 0);
    sbx_peer_free(a.peer);
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&c, true, a.psk, a.id.pk, T0) == 0);
    pump_pair(&a, &c, T0 + 100, 0);
    CHECK(sbx_peer_is_closed(a.peer));
    CHECK(!sbx_engine_is_member(a.engine, c.id.pk));
    node_close(&a);
    node_close(&b);
    node_close(&c);
}

SBX_TEST(stranger_is_dropped_after_handshake)
{
    struct node a, s;
    REQUIRE(founder(&a) == 0);
    REQUIRE(joiner(&s, &a) == 0); /* knows the library id, was never added */
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&s, true, NULL, NULL, T0) == 0);
    pump_pair(&a, &s, T0 + 100, 0);
    CHECK_EQ_INT(a.events[SBX_PEER_AUTHENTICATED], 1);
    CHECK(sbx_peer_is_closed(a.peer));
    CHECK(strstr(a.reason, "not a member") != NULL);
    CHECK_EQ_INT(a.events[SBX_PEER_READY], 0);
    node_close(&a);
    node_close(&s);
}

SBX_TEST(garbage_and_truncation_close_cleanly)
{
    struct node a, b;
    REQUIRE(founder(&a) == 0);
    REQUIRE(joiner(&b, &a) == 0);
    for (int i = 0; i < 200; i++) {
        REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
        uint8_t junk[300];
        randombytes_buf(junk, sizeof junk);
        size_t n = 3 + (size_t)(i % 297);
        bool whole = i % 3 == 0;
        if (whole) { junk[0] = 0; junk[1] = (uint8_t)(n - 2); } /* one whole frame of junk */
        sbx_peer_input(a.peer, junk, n, T0);
        /* A whole frame of junk is a failed handshake: closed, with a
         * reason. Anything else may still be waiting for the rest of a
         * frame; it never gets the session anywhere. */
        if (whole) CHECK(sbx_peer_is_closed(a.peer) && a.reason[0]);
        CHECK(!sbx_peer_is_ready(a.peer));
        a.reason[0] = '\0';
        sbx_peer_free(a.peer);
        a.peer = NULL;
    }
    /* A session that never completes times out. */
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    sbx_peer_tick(a.peer, T0 + SBX_PEER_IDLE_TIMEOUT_MS + 1);
    CHECK(sbx_peer_is_closed(a.peer));
    node_close(&a);
    node_close(&b);
}

SBX_TEST(keepalive_and_library_mismatch)
{
    struct node a, b, other, c;
    REQUIRE(founder(&a) == 0);
    REQUIRE(joiner(&b, &a) == 0);
    REQUIRE(add_member(&a, &b) == 0);
    REQUIRE(seed_log(&a, &b) == 0);
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&b, true, NULL, NULL, T0) == 0);
    pump_pair(&a, &b, T0, 0);
    REQUIRE(sbx_peer_is_ready(a.peer));
    /* Pings keep an idle session alive. */
    for (int64_t t = T0; t < T0 + 3 * SBX_PEER_IDLE_TIMEOUT_MS; t += 5000) {
        sbx_peer_tick(a.peer, t);
        sbx_peer_tick(b.peer, t);
        pump_pair(&a, &b, t, 0);
    }
    CHECK(!sbx_peer_is_closed(a.peer) && !sbx_peer_is_closed(b.peer));
    /* Silence closes it. */
    sbx_peer_tick(a.peer, T0 + 5 * SBX_PEER_IDLE_TIMEOUT_MS);
    CHECK(sbx_peer_is_closed(a.peer));
    CHECK(strstr(a.reason, "idle") != NULL);
    /* A member of another library with the same key set-up is refused. */
    REQUIRE(founder(&other) == 0);
    REQUIRE(joiner(&c, &other) == 0);
    sbx_engine_close(c.engine);
    c.id = b.id; /* B's key, but C's engine serves another library */
    REQUIRE(sbx_engine_open(&c.engine, c.store, &c.id, NULL) == 0);
    sbx_peer_free(a.peer);
    REQUIRE(start(&a, false, NULL, NULL, T0) == 0);
    REQUIRE(start(&c, true, NULL, NULL, T0) == 0);
    pump_pair(&a, &c, T0, 0);
    CHECK(sbx_peer_is_closed(a.peer) || sbx_peer_is_closed(c.peer));
    CHECK(strstr(a.reason, "library") != NULL || strstr(c.reason, "library") != NULL);
    node_close(&a);
    node_close(&b);
    node_close(&other);
    node_close(&c);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    sbx_log_set_level(SBX_LOG_ERROR);
    static const struct sbx_test_case cases[] = {
        SBX_CASE(members_sync_both_ways),
        SBX_CASE(partial_reads_and_backpressure),
        SBX_CASE(queued_chunk_requests_hold_no_files),
        SBX_CASE(pairing_admits_the_joiner),
        SBX_CASE(pairing_with_a_wrong_or_used_secret_fails),
        SBX_CASE(stranger_is_dropped_after_handshake),
        SBX_CASE(garbage_and_truncation_close_cleanly),
        SBX_CASE(keepalive_and_library_mismatch),
    };
    return sbx_test_run(cases, SBX_ARRAY_LEN(cases));
}
