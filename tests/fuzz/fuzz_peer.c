/* Fuzzes every wire message of the peer protocol: each input is handled as
 * one decrypted message by a session that completed its handshake and
 * hellos with a real peer (two engines on temporary databases, joined by
 * memory). Whatever the input, the session must either carry on or close
 * with a reason, and never crash; a closed session is set up again. */
#include "shoebox/blob.h"
#include "shoebox/engine.h"
#include "shoebox/log.h"
#include "shoebox/peer.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct node {
    struct sbx_identity id;
    sbx_store *store;
    sbx_engine *engine;
    sbx_blobstore *blobs;
    sbx_peer *peer;
};

static struct node a, b;
static bool ready;

static void on_event(sbx_peer *p, enum sbx_peer_event ev, const char *reason)
{
    (void)p;
    (void)ev;
    (void)reason;
}

static void move(void)
{
    for (int round = 0; round < 1000; round++) {
        size_t moved = 0;
        struct node *ends[2][2] = {{&a, &b}, {&b, &a}};
        for (int k = 0; k < 2; k++) {
            const uint8_t *bytes;
            size_t len;
            sbx_peer_output(ends[k][0]->peer, &bytes, &len);
            if (!len) continue;
            uint8_t *copy = malloc(len);
            memcpy(copy, bytes, len);
            sbx_peer_output_consume(ends[k][0]->peer, len);
            if (!sbx_peer_is_closed(ends[k][1]->peer)) {
                sbx_peer_input(ends[k][1]->peer, copy, len, 1700000000000LL);
                sbx_peer_apply(ends[k][1]->peer);
            }
            free(copy);
            moved += len;
        }
        if (!moved) break;
    }
}

static void open_node(struct node *n, const char *dir, bool founder, const uint8_t *library)
{
    char path[256], err[256];
    crypto_sign_keypair(n->id.pk, n->id.sk);
    snprintf(path, sizeof path, "%s/db", dir);
    SBX_ASSERT(sbx_store_open(&n->store, path, SBX_STORE_CREATE, err, sizeof err) == 0);
    if (founder) SBX_ASSERT(sbx_engine_create_library(n->store, &n->id, "Fuzz", "a", SBX_ROLE_FULL, 1700000000000LL) == 0);
    else SBX_ASSERT(sbx_engine_prepare_join(n->store, &n->id, library, "b", SBX_ROLE_CACHE) == 0);
    SBX_ASSERT(sbx_engine_open(&n->engine, n->store, &n->id, NULL) == 0);
    SBX_ASSERT(sbx_blobstore_open(&n->blobs, dir, n->store) == 0);
}

static void connect_pair(void)
{
    sbx_peer_free(a.peer);
    sbx_peer_free(b.peer);
    struct sbx_peer_config ca = {.initiator = false, .id = &a.id, .engine = a.engine, .name = "a", .blobs = a.blobs};
    struct sbx_peer_config cb = {.initiator = true, .id = &b.id, .engine = b.engine, .name = "b", .blobs = b.blobs};
    SBX_ASSERT(sbx_peer_new(&a.peer, &ca, on_event, &a, 1700000000000LL) == 0);
    SBX_ASSERT(sbx_peer_new(&b.peer, &cb, on_event, &b, 1700000000000LL) == 0);
    move();
    SBX_ASSERT(sbx_peer_is_ready(a.peer));
}

static char da[] = "/tmp/sbx-fuzz-peer-a-XXXXXX", db[] = "/tmp/sbx-fuzz-peer-b-XXXXXX";

static void close_node(struct node *n)
{
    sbx_peer_free(n->peer);
    sbx_blobstore_close(n->blobs);
    sbx_engine_close(n->engine);
    sbx_store_close(n->store);
}

/* Leaves nothing behind: the temporary databases go with the process. */
static void teardown(void)
{
    close_node(&a);
    close_node(&b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", da, db);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_peer: cannot remove %s %s\n", da, db);
}

static void setup(void)
{
    SBX_ASSERT(sodium_init() >= 0);
    sbx_log_set_level(SBX_LOG_ERROR + 1);
    SBX_ASSERT(mkdtemp(da) && mkdtemp(db));
    open_node(&a, da, true, NULL);
    open_node(&b, db, false, sbx_engine_library(a.engine));
    struct sbx_op add = {.type = SBX_OP_DEVICE_ADD, .role = SBX_ROLE_CACHE, .name = {"b", 1}};
    memcpy(add.key, b.id.pk, 32);
    SBX_ASSERT(sbx_engine_write(a.engine, &add, 1, 1700000000001LL) == 0);
    /* B starts with A's log, as a pairing leaves it. */
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(sbx_store_db(a.store), "SELECT raw FROM entries ORDER BY hlc", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const uint8_t *raw = sqlite3_column_blob(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        sbx_engine_receive(b.engine, &raw, &len, 1, 1700000000002LL, NULL);
    }
    sqlite3_finalize(st);
    atexit(teardown);
    ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) setup();
    if (!a.peer || sbx_peer_is_closed(a.peer) || sbx_peer_is_closed(b.peer)) connect_pair();
    sbx_peer_feed_plaintext(a.peer, data, size);
    sbx_peer_apply(a.peer);
    /* Whatever A answered goes to B, which must cope as well. */
    move();
    return 0;
}
