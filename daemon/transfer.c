/* Blob transfers: which blobs this device wants, from which connected
 * peers, and the verified, resumable fetch of their chunks.
 *
 * Every device wants the thumbnail and medium of every photo; a device of
 * role full also wants every original; any device wants an original that
 * `shoebox get` asked for. A transfer asks a peer for the blob's chunk list,
 * begins a partial blob (resuming one a crash left), and keeps a window of
 * chunk requests spread over every peer that holds the blob. Each chunk is
 * verified against its hash before it is written; a peer that serves a bad
 * one is dropped for that blob. The finished blob is verified whole, and a
 * held original is announced in the log (blob.held). Blobs no peer can
 * serve now wait and retry with exponential backoff.
 *
 * The loop thread only receives and decides: the chunks of a blob go
 * through its sbx_blob_partial handle on libuv's thread pool (verify, seal
 * when encrypted, write, sync, hash the whole blob as it grows, rename into
 * place), one job at a time per blob, and the loop thread records what a
 * job made durable in the database when it returns. Received chunks wait
 * for their job in a queue whose size bounds the memory: no more chunks
 * are asked for while it is full.
 *
 * The loop thread never reads a whole blob: a blob resumed with every
 * chunk present is installed by a job like any other (which reads back and
 * hashes what it did not receive), and the work that needs the database
 * and the whole file at once (finding the damaged chunks of a blob that
 * did not verify) runs on the thread pool too, as a store job, with the
 * transfers' own database connection. */
#include "conn.h"
#include "daemon.h"

#include "shoebox/blob.h"
#include "shoebox/chunkbuf.h"
#include "shoebox/datadir.h"
#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/peer.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <string.h>

#define MAX_TRANSFERS 8
#define MAX_EXCLUDED 8
#define INFO_TIMEOUT_MS 10000
/* Chunks written between two syncs of a blob's file: a crash costs at most
 * these being fetched again. A blob that goes idle (stalled, or waiting for
 * a peer) is synced at once whatever the count. */
#define SYNC_BATCH 8
/* Chunks asked for and not yet written, over every transfer and peer (in
 * flight, or received and waiting for a job): no more are asked for while
 * this many are under way. It bounds the memory of chunks (1 MiB each)
 * whatever the number of peers, and it is deep enough that a peer's
 * window (SBX_MAX_CHUNKS_IN_FLIGHT) stays full while jobs drain. */
#define MAX_PIPELINE 24
/* Chunks handed to one job. */
#define JOB_CHUNKS 4

enum chunk_state { CH_MISSING = 0, CH_IN_FLIGHT, CH_QUEUED, CH_WRITTEN };

/* A received chunk, waiting to be verified and written, and who sent it. */
struct rx {
    uint32_t idx;
    uint8_t *buf;
    size_t len;
    uint8_t from[32];
};

struct transfer;

/* Work for the thread pool on one blob's handle. */
struct job {
    uv_work_t req;
    struct sbx_daemon *d;
    struct transfer *t; /* NULL once the transfer was dropped meanwhile */
    sbx_blob_partial *pw;
    struct rx rx[JOB_CHUNKS];
    int rc[JOB_CHUNKS];
    size_t n;
    bool flush, install;
    int flush_rc, install_rc;
};

/* Store jobs: blob store work that reads or writes the database and may
 * read a whole blob. */
enum store_op {
    OP_NONE = 0,
    /* The chunk list is in: record it and create the partial file at its
     * full size, or resume the partial a crash left
     * (sbx_blob_partial_begin). Preallocating is posix_fallocate, which
     * on a file system without fallocate writes the whole size, zeros,
     * through glibc's emulation: seconds for a video. */
    OP_BEGIN,
    /* Every chunk is on disk and the blob did not verify whole: re-read
     * each chunk, mark the damaged ones missing (or learn that the chunk
     * list was wrong and delete the partial); or record a blob that
     * verifies. sbx_blob_partial_finish. */
    OP_FINISH,
};

/* A store job runs on the thread pool with the transfers' own database
 * connection and blob store handle (the loop's connection serves the loop
 * thread only). One runs at a time, since a connection serves one thread
 * at a time; the others wait for their turn in their transfer
 * (transfer.store_op). */
struct store_job {
    uv_work_t req;
    struct sbx_daemon *d;
    struct transfer *t; /* NULL once the transfer was dropped meanwhile */
    enum store_op op;
    uint8_t hash[32];
    /* OP_BEGIN: the blob and its chunk list (a copy: the transfer may go
     * while the job runs); whether a partial was there before. */
    uint64_t size;
    int kind;
    uint8_t *list;
    uint32_t n;
    bool was_partial;
    int rc;
};

struct transfer {
    bool used;
    uint8_t hash[32];
    int kind;
    bool on_demand;
    uint64_t size;
    uint32_t n_chunks;
    uint8_t *list; /* chunk hashes as they arrive */
    uint32_t list_got;
    bool begun;
    uint8_t *state; /* enum chunk_state per chunk */
    sbx_blob_partial *pw;
    struct rx *q; /* received, waiting for a job */
    size_t nq, qcap;
    struct job *job; /* running on the thread pool */
    enum store_op store_op; /* waiting for the store job's turn */
    struct store_job *sjob; /* running on the thread pool */
    size_t n_unsynced; /* written since the last sync */
    uint8_t asked_key[32];
    bool asked;
    int64_t asked_at;
    uint8_t excluded[MAX_EXCLUDED][32];
    size_t n_excluded;
    uint8_t sources[MAX_EXCLUDED][32]; /* peers that said they hold it */
    size_t n_sources;
    uint64_t bytes_done;
};

struct backoff {
    uint8_t hash[32];
    unsigned failures;
    int64_t retry_at;
};

struct sbx_transfers {
    struct transfer t[MAX_TRANSFERS];
    /* Originals received and not yet announced: one entry for many. */
    uint8_t held[64][32];
    size_t n_held;
    int64_t held_since;
    struct backoff wait[256];
    size_t n_wait;
    size_t n_queued; /* chunks in queues and jobs, over every transfer (see MAX_PIPELINE) */
    struct store_job *sjob; /* the store job running, if any */
    /* The store jobs' database connection and blob store handle, opened by
     * the first store job: only store jobs use them, one at a time. */
    sbx_store *wstore;
    sbx_blobstore *wblobs;
};

static bool key_in(const uint8_t (*keys)[32], size_t n, const uint8_t *key)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(keys[i], key, 32) == 0) return true;
    return false;
}

static void key_add(uint8_t (*keys)[32], size_t *n, const uint8_t *key)
{
    if (!key_in((const uint8_t(*)[32])keys, *n, key) && *n < MAX_EXCLUDED) memcpy(keys[(*n)++], key, 32);
}

static void short_hash(char out[13], const uint8_t h[32]) { sbx_hex_encode(out, h, 6); }

static struct transfer *find(struct sbx_daemon *d, const uint8_t hash[32])
{
    for (int i = 0; i < MAX_TRANSFERS; i++)
        if (d->xfers->t[i].used && memcmp(d->xfers->t[i].hash, hash, 32) == 0) return &d->xfers->t[i];
    return NULL;
}

static struct backoff *backoff_for(struct sbx_daemon *d, const uint8_t hash[32], bool create)
{
    struct sbx_transfers *x = d->xfers;
    for (size_t i = 0; i < x->n_wait; i++)
        if (memcmp(x->wait[i].hash, hash, 32) == 0) return &x->wait[i];
    if (!create) return NULL;
    if (x->n_wait == SBX_ARRAY_LEN(x->wait)) {
        /* Forget the oldest: it will simply be tried again. */
        memmove(x->wait, x->wait + 1, (x->n_wait - 1) * sizeof *x->wait);
        x->n_wait--;
    }
    struct backoff *b = &x->wait[x->n_wait++];
    memset(b, 0, sizeof *b);
    memcpy(b->hash, hash, 32);
    return b;
}

/* Drops the pipeline of a transfer: queued chunks are freed, a running job
 * finishes on its own and then closes the handle; a store job waiting for
 * its turn is forgotten, a running one finishes on its own. */
static void pipeline_drop(struct sbx_daemon *d, struct transfer *t)
{
    for (size_t i = 0; i < t->nq; i++) sbx_chunkbuf_put(t->q[i].buf);
    d->xfers->n_queued -= t->nq;
    free(t->q);
    t->q = NULL;
    t->nq = t->qcap = 0;
    if (t->job) {
        t->job->t = NULL;
        t->job = NULL;
    } else {
        sbx_blob_partial_close(t->pw);
    }
    t->pw = NULL;
    t->n_unsynced = 0;
    if (t->sjob) {
        t->sjob->t = NULL;
        t->sjob = NULL;
    }
    t->store_op = OP_NONE;
}

static void transfer_free(struct sbx_daemon *d, struct transfer *t)
{
    pipeline_drop(d, t);
    free(t->list);
    free(t->state);
    memset(t, 0, sizeof *t);
}

/* Gives up for now: the blob is retried after a growing delay. */
static void transfer_defer(struct sbx_daemon *d, struct transfer *t, const char *why)
{
    struct backoff *b = backoff_for(d, t->hash, true);
    b->failures++;
    unsigned shift = b->failures < 8 ? b->failures : 8;
    int64_t delay = 1000LL << shift;
    if (delay > 300000) delay = 300000;
    b->retry_at = sbx_now_ms() + delay / 2 + (int64_t)randombytes_uniform((uint32_t)delay);
    char h[13];
    short_hash(h, t->hash);
    sbx_debug("blob %s: %s; retry in about %lld s", h, why, (long long)(delay / 1000));
    bool keep = t->on_demand;
    if (!keep) transfer_free(d, t);
    else {
        t->asked = false;
        t->n_excluded = 0;
    }
}

static struct conn *session_for_key(struct sbx_daemon *d, const uint8_t key[32])
{
    for (struct conn *c = d->conns; c; c = c->next) {
        if (!c->peer || c->closing || !sbx_peer_is_ready(c->peer)) continue;
        const uint8_t *rk = sbx_peer_remote_key(c->peer);
        if (rk && memcmp(rk, key, 32) == 0) return c;
    }
    return NULL;
}

/* A ready session that may hold the blob: a source first, then a holder
 * per the log, then anyone not excluded. */
static struct conn *pick_session(struct sbx_daemon *d, struct transfer *t)
{
    struct conn *any = NULL;
    for (struct conn *c = d->conns; c; c = c->next) {
        if (!c->peer || c->closing || !sbx_peer_is_ready(c->peer)) continue;
        const uint8_t *rk = sbx_peer_remote_key(c->peer);
        if (!rk || key_in((const uint8_t(*)[32])t->excluded, t->n_excluded, rk)) continue;
        if (key_in((const uint8_t(*)[32])t->sources, t->n_sources, rk)) return c;
        sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT 1 FROM blob_holders h JOIN authors a ON a.ix = h.holder_ix "
                                                    "WHERE h.hash = ?1 AND a.key = ?2 AND h.held = 1");
        if (st) {
            sqlite3_bind_blob(st, 1, t->hash, 32, SQLITE_STATIC);
            sqlite3_bind_blob(st, 2, rk, 32, SQLITE_STATIC);
            bool holder = sqlite3_step(st) == SQLITE_ROW;
            sqlite3_reset(st);
            if (holder) return c;
        }
        if (!any) any = c;
    }
    return any;
}

/* Held originals are announced in batches (one signed entry, one commit
 * for up to 64), at the latest a second after the first. */
static void flush_held(struct sbx_daemon *d)
{
    struct sbx_transfers *x = d->xfers;
    if (x->n_held == 0) return;
    struct sbx_op ops[64];
    memset(ops, 0, sizeof ops);
    for (size_t i = 0; i < x->n_held; i++) {
        ops[i].type = SBX_OP_BLOB_HELD;
        memcpy(ops[i].hash, x->held[i], 32);
    }
    int rc = sbx_engine_write(d->engine, ops, x->n_held, sbx_now_ms());
    if (rc != 0) sbx_warn("cannot announce held blobs: %s", sbx_strerror(rc));
    x->n_held = 0;
}

static void announce_held(struct sbx_daemon *d, const uint8_t hash[32])
{
    struct sbx_transfers *x = d->xfers;
    if (x->n_held == 0) x->held_since = sbx_now_ms();
    memcpy(x->held[x->n_held++], hash, 32);
    if (x->n_held == SBX_ARRAY_LEN(x->held)) flush_held(d);
}

/* The blob is held: announce it and start the next one. */
static void transfer_done(struct sbx_daemon *d, struct transfer *t)
{
    char h[13];
    short_hash(h, t->hash);
    sbx_info("blob %s received (%llu bytes)", h, (unsigned long long)t->size);
    sbx_api_blob_ready(d, t->hash);
    struct backoff *b = backoff_for(d, t->hash, false);
    if (b) b->retry_at = 0, b->failures = 0;
    if (t->kind == SBX_BLOB_ORIGINAL) announce_held(d, t->hash);
    transfer_free(d, t);
    /* Start the next blob now, not at the next timer tick: a backup of many
     * photos is a stream of blobs, and idle gaps between them cost more
     * than anything else. */
    sbx_transfer_tick(d);
}

/* Sets every chunk's state from the store's view of the partial blob:
 * written where it holds a verified chunk, missing elsewhere. Returns how
 * many are missing, or UINT32_MAX (states untouched) when the store cannot
 * say. */
static uint32_t state_from_store(struct sbx_daemon *d, struct transfer *t)
{
    uint32_t *missing = calloc((size_t)t->n_chunks + 1, sizeof *missing);
    size_t nm = 0;
    if (!missing || sbx_blob_partial_missing(d->blobs, t->hash, missing, t->n_chunks, &nm) != 0) {
        free(missing);
        return UINT32_MAX;
    }
    for (uint32_t i = 0; i < t->n_chunks; i++) t->state[i] = CH_WRITTEN;
    for (size_t i = 0; i < nm; i++) t->state[missing[i]] = CH_MISSING;
    t->bytes_done = (uint64_t)(t->n_chunks - nm) * SBX_BLOB_CHUNK;
    free(missing);
    return (uint32_t)nm;
}

static void store_next(struct sbx_daemon *d);
static void request_chunks(struct sbx_daemon *d, struct transfer *t);
static void kick(struct sbx_daemon *d, struct transfer *t);

/* The slow path of finishing: the whole blob did not match, so a store job
 * re-reads it and says which chunks are bad, or that the chunk list was
 * (finish_done). */
static void finish_slow(struct sbx_daemon *d, struct transfer *t)
{
    pipeline_drop(d, t);
    t->store_op = OP_FINISH;
    store_next(d);
}

/* Forgets the chunk list and asks for it again. */
static void transfer_restart(struct sbx_daemon *d, struct transfer *t)
{
    pipeline_drop(d, t);
    free(t->list);
    t->list = NULL;
    t->list_got = 0;
    free(t->state);
    t->state = NULL;
    t->begun = false;
    t->asked = false;
}

/* The partial blob is begun (on the loop thread): chunks verified before
 * a crash are kept, the others asked for. */
static void begin_done(struct sbx_daemon *d, struct transfer *t, int rc, bool was_partial)
{
    if (rc == SBX_EEXIST) {
        /* Held already. It was partial when the job began: an install
         * whose record step failed, which begin checked and recorded now.
         * That blob is received: announced, and its waiters woken. */
        if (was_partial) transfer_done(d, t);
        else transfer_free(d, t);
        return;
    }
    if (rc != 0) {
        transfer_defer(d, t, sbx_strerror(rc));
        return;
    }
    free(t->state);
    t->state = calloc((size_t)t->n_chunks + 1, 1);
    if (!t->state) {
        transfer_defer(d, t, "out of memory");
        return;
    }
    uint32_t nm = state_from_store(d, t);
    if (was_partial && nm != UINT32_MAX) {
        char h[13];
        short_hash(h, t->hash);
        sbx_info("blob %s: resuming a transfer, %u of %u chunks already verified", h, (unsigned)(t->n_chunks - nm),
                 (unsigned)t->n_chunks);
    }
    t->begun = true;
    request_chunks(d, t);
    kick(d, t); /* a resumed blob may have every chunk already */
}

/* What the finishing store job found (on the loop thread). */
static void finish_done(struct sbx_daemon *d, struct transfer *t, int rc)
{
    char h[13];
    short_hash(h, t->hash);
    if (rc == 0) {
        transfer_done(d, t);
        return;
    }
    if (rc == SBX_ECORRUPT) {
        /* Chunks damaged on disk since: the store marked them missing. */
        uint32_t n = state_from_store(d, t);
        if (n == 0 || n == UINT32_MAX) transfer_defer(d, t, "the blob does not verify");
        else sbx_warn("blob %s: %u chunks were damaged on disk: fetching them again", h, (unsigned)n);
        return;
    }
    if (rc == SBX_ECRYPTO) {
        /* The job deleted the partial blob. */
        sbx_warn("blob %s: the chunk list served was wrong; starting over with another peer", h);
        if (t->asked) key_add(t->excluded, &t->n_excluded, t->asked_key);
        transfer_restart(d, t);
        return;
    }
    transfer_defer(d, t, sbx_strerror(rc));
}

static uint32_t count_state(const struct transfer *t, enum chunk_state s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_chunks; i++) n += t->state[i] == s;
    return n;
}

/* Test hook: SHOEBOX_TEST_STALL_AFTER_CHUNKS=N stops asking for chunks of a
 * blob once N are written, so a test can kill a daemon mid-transfer
 * without racing it. */
static bool stalled(const struct transfer *t)
{
    static long limit = -1;
    if (limit < 0) {
        const char *v = getenv("SHOEBOX_TEST_STALL_AFTER_CHUNKS");
        limit = v ? atol(v) : 0;
    }
    if (limit <= 0) return false;
    return (long)(count_state(t, CH_WRITTEN) + count_state(t, CH_QUEUED)) >= limit;
}

static void request_chunks(struct sbx_daemon *d, struct transfer *t)
{
    if (!t->begun || !t->state || stalled(t)) return;
    size_t under_way = d->xfers->n_queued;
    for (struct conn *c = d->conns; c; c = c->next)
        if (c->peer) under_way += sbx_peer_chunks_in_flight(c->peer);
    /* Spread the window over every peer that holds the blob. */
    for (struct conn *c = d->conns; c && under_way < MAX_PIPELINE; c = c->next) {
        if (!c->peer || c->closing || !sbx_peer_is_ready(c->peer)) continue;
        const uint8_t *rk = sbx_peer_remote_key(c->peer);
        if (!rk || key_in((const uint8_t(*)[32])t->excluded, t->n_excluded, rk) ||
            !key_in((const uint8_t(*)[32])t->sources, t->n_sources, rk))
            continue;
        for (uint32_t i = 0; i < t->n_chunks && under_way < MAX_PIPELINE; i++) {
            if (t->state[i] != CH_MISSING) continue;
            int rc = sbx_peer_chunk_get(c->peer, t->hash, i);
            if (rc != 0) break; /* SBX_EBUSY: this peer's window is full */
            t->state[i] = CH_IN_FLIGHT;
            under_way++;
        }
    }
}

/* Every transfer gets a chance at the window a job just freed. */
static void request_all(struct sbx_daemon *d)
{
    for (int i = 0; i < MAX_TRANSFERS; i++)
        if (d->xfers->t[i].used) request_chunks(d, &d->xfers->t[i]);
}

static void job_work(uv_work_t *req)
{
    struct job *j = req->data;
    for (size_t i = 0; i < j->n; i++) {
        j->rc[i] = sbx_blob_partial_put(j->pw, j->rx[i].idx, j->rx[i].buf, j->rx[i].len);
        sbx_chunkbuf_put(j->rx[i].buf);
        j->rx[i].buf = NULL;
    }
    /* Installing syncs the file itself; a flush first would be a second
     * journal commit for nothing. */
    if (j->install) j->install_rc = sbx_blob_partial_install(j->pw);
    if (j->flush || (j->install && j->install_rc != 0)) j->flush_rc = sbx_blob_partial_flush(j->pw);
}

static void job_done(uv_work_t *req, int status)
{
    struct job *j = req->data;
    struct sbx_daemon *d = j->d;
    struct transfer *t = j->t;
    d->xfers->n_queued -= j->n;
    if (status != 0 || !t) {
        /* Cancelled, or the transfer was dropped meanwhile. */
        for (size_t i = 0; i < j->n; i++) sbx_chunkbuf_put(j->rx[i].buf);
        if (!t) sbx_blob_partial_close(j->pw);
        else t->job = NULL;
        /* Its chunks were not written: asked for again. */
        for (size_t i = 0; t && t->state && i < j->n; i++) t->state[j->rx[i].idx] = CH_MISSING;
        free(j);
        if (t) kick(d, t);
        return;
    }
    t->job = NULL;
    int fail = 0;
    for (size_t i = 0; i < j->n; i++) {
        uint32_t idx = j->rx[i].idx;
        int rc = j->rc[i];
        if (rc == 0) {
            t->state[idx] = CH_WRITTEN;
            t->bytes_done += j->rx[i].len;
            t->n_unsynced++;
            continue;
        }
        t->state[idx] = CH_MISSING;
        if (rc == SBX_ECRYPTO || rc == SBX_EINVAL) {
            char h[13], id[SBX_DEVID_STRLEN + 1];
            short_hash(h, t->hash);
            sbx_devid_format(id, j->rx[i].from);
            sbx_warn("peer %.7s served a bad chunk %u of blob %s: dropped for this blob", id, idx, h);
            key_add(t->excluded, &t->n_excluded, j->rx[i].from);
        } else if (!fail) {
            fail = rc;
        }
    }
    bool installed = j->install && j->install_rc == 0;
    if (j->flush || j->install) {
        if (j->flush_rc == 0) t->n_unsynced = 0;
        int rc = j->flush_rc == 0 ? sbx_blob_partial_record(t->pw) : j->flush_rc;
        if (rc != 0) {
            /* Not recorded: those chunks are fetched again. */
            for (uint32_t i = 0; i < t->n_chunks; i++)
                if (t->state[i] == CH_WRITTEN) t->state[i] = CH_MISSING;
            installed = false;
            if (!fail) fail = rc;
            pipeline_drop(d, t);
        }
    }
    int install_rc = j->install ? j->install_rc : 0;
    free(j);
    if (fail) {
        transfer_defer(d, t, sbx_strerror(fail));
        request_all(d);
        return;
    }
    if (installed) {
        transfer_done(d, t);
        request_all(d);
        return;
    }
    if (install_rc == SBX_ECORRUPT) {
        finish_slow(d, t);
    } else if (install_rc == SBX_ESTATE) {
        /* The handle found chunks missing that the loop counted as written
         * (an encrypted partial whose damaged header was reset when the
         * handle opened): the store's view wins, and those are asked for
         * again. Kicking on the loop's view would install again, forever. */
        pipeline_drop(d, t);
        if (state_from_store(d, t) == UINT32_MAX) {
            transfer_restart(d, t);
            transfer_defer(d, t, "cannot read the partial blob's chunks");
        } else {
            request_chunks(d, t);
        }
    } else if (install_rc != 0) {
        /* Begun afresh when retried: begin resumes the partial's verified
         * chunks, or checks and records a file the install did put in
         * place. Kept as it was, an on-demand transfer would wait forever
         * with every chunk written and nothing to kick it. */
        transfer_restart(d, t);
        transfer_defer(d, t, sbx_strerror(install_rc));
    } else {
        kick(d, t);
    }
    request_all(d);
}

/* Hands the blob's queued chunks to the thread pool, unless a job for it
 * is running; syncs and installs the file when its time has come. */
static void kick(struct sbx_daemon *d, struct transfer *t)
{
    if (!t->used || !t->begun || t->job || !t->state || t->store_op || t->sjob) return;
    uint32_t written = count_state(t, CH_WRITTEN);
    bool complete_after = written + (uint32_t)(t->nq < JOB_CHUNKS ? t->nq : JOB_CHUNKS) == t->n_chunks;
    if (t->nq == 0) {
        /* A blob resumed with every chunk already there goes on: its job
         * installs it (reading back and hashing every chunk, off this
         * thread). Idle with chunks written and not synced: sync them now. */
        bool idle = count_state(t, CH_IN_FLIGHT) == 0;
        if (!(t->n_unsynced > 0 && idle) && written != t->n_chunks) return;
    }
    if (!t->pw) {
        int rc = sbx_blob_partial_open(d->blobs, t->hash, &t->pw);
        if (rc == SBX_ENOENT || rc == SBX_ESTATE) {
            /* The partial file or row is gone: an install whose record
             * step failed renamed the file into place, or the blob was
             * deleted or completed meanwhile. Beginning again sorts it out
             * (begin checks and records a file in place). */
            transfer_restart(d, t);
            return;
        }
        if (rc != 0) {
            transfer_defer(d, t, sbx_strerror(rc));
            return;
        }
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j) return; /* tried again at the next chunk or tick */
    j->req.data = j;
    j->d = d;
    j->t = t;
    j->pw = t->pw;
    j->n = t->nq < JOB_CHUNKS ? t->nq : JOB_CHUNKS;
    if (j->n > 0) {
        /* A job with no chunk installs (a resumed blob) or syncs. */
        memcpy(j->rx, t->q, j->n * sizeof *j->rx);
        memmove(t->q, t->q + j->n, (t->nq - j->n) * sizeof *t->q);
        t->nq -= j->n;
    }
    j->install = complete_after;
    bool idle_after = t->nq == 0 && count_state(t, CH_IN_FLIGHT) == 0;
    j->flush = t->n_unsynced + j->n >= SYNC_BATCH || idle_after;
    if (uv_queue_work(d->loop, &j->req, job_work, job_done) != 0) {
        /* Only with a bad loop; put the chunks back. */
        if (j->n > 0) {
            memmove(t->q + j->n, t->q, t->nq * sizeof *t->q);
            memcpy(t->q, j->rx, j->n * sizeof *j->rx);
            t->nq += j->n;
        }
        free(j);
        return;
    }
    t->job = j;
}

/* ---- store jobs ---- */

/* The store jobs' own connection and blob store handle (on the pool). */
static int worker_handles(struct sbx_daemon *d)
{
    struct sbx_transfers *x = d->xfers;
    if (x->wblobs) return 0;
    char path[4096], err[256] = "";
    int rc = sbx_datadir_path(path, sizeof path, d->data_dir, SBX_FILE_DB);
    if (rc == 0 && !x->wstore) rc = sbx_store_open_sibling(&x->wstore, d->store, path, err, sizeof err);
    if (rc == 0) rc = sbx_blobstore_open(&x->wblobs, d->data_dir, x->wstore);
    if (rc != 0) sbx_warn("transfers: cannot open the database for blob work: %s %s", sbx_strerror(rc), err);
    return rc;
}

static void store_work(uv_work_t *req)
{
    struct store_job *j = req->data;
    /* Test hook: holds every store job (tests/integration/transfer.sh). */
    sbx_test_gate("SHOEBOX_TEST_STORE_GATE");
    j->rc = worker_handles(j->d);
    if (j->rc != 0) return;
    sbx_blobstore *bs = j->d->xfers->wblobs;
    switch (j->op) {
    case OP_BEGIN: {
        struct sbx_blob_info before;
        j->was_partial = sbx_blob_stat(bs, j->hash, &before) == 0 && !before.complete;
        j->rc = sbx_blob_partial_begin(bs, j->hash, j->size, (sbx_blob_kind)j->kind, j->list, j->n);
        if (j->rc == SBX_ESTATE) {
            /* A partial from another peer's (different) list: start over. */
            sbx_blob_delete(bs, j->hash);
            j->rc = sbx_blob_partial_begin(bs, j->hash, j->size, (sbx_blob_kind)j->kind, j->list, j->n);
        }
        break;
    }
    case OP_FINISH:
        j->rc = sbx_blob_partial_finish(bs, j->hash);
        /* The chunk list itself was wrong: the partial goes, and the
         * transfer starts over with another peer's list. */
        if (j->rc == SBX_ECRYPTO) sbx_blob_delete(bs, j->hash);
        break;
    case OP_NONE:
        break;
    }
}

static void store_done(uv_work_t *req, int status)
{
    struct store_job *j = req->data;
    struct sbx_daemon *d = j->d;
    struct transfer *t = j->t;
    SBX_ASSERT(d->xfers->sjob == j);
    d->xfers->sjob = NULL;
    int rc = status != 0 ? SBX_EIO : j->rc;
    enum store_op op = j->op;
    bool was_partial = j->was_partial;
    free(j->list);
    free(j);
    if (t) {
        t->sjob = NULL;
        if (op == OP_BEGIN) begin_done(d, t, rc, was_partial);
        else if (op == OP_FINISH) finish_done(d, t, rc);
        request_all(d);
    }
    store_next(d);
}

/* Starts the next store job a transfer waits for, unless one runs. */
static void store_next(struct sbx_daemon *d)
{
    struct sbx_transfers *x = d->xfers;
    if (x->sjob || d->stopping) return;
    for (int i = 0; i < MAX_TRANSFERS; i++) {
        struct transfer *t = &x->t[i];
        if (!t->used || t->store_op == OP_NONE) continue;
        struct store_job *j = calloc(1, sizeof *j);
        if (!j) return; /* tried again when a transfer asks */
        j->req.data = j;
        j->d = d;
        j->t = t;
        j->op = t->store_op;
        memcpy(j->hash, t->hash, 32);
        t->store_op = OP_NONE;
        if (j->op == OP_BEGIN) {
            j->size = t->size;
            j->kind = t->kind;
            j->n = t->n_chunks;
            j->list = malloc((size_t)t->n_chunks * 32 + 1);
            if (j->list && t->list) memcpy(j->list, t->list, (size_t)t->n_chunks * 32);
            if (!j->list || !t->list) {
                free(j->list);
                free(j);
                transfer_defer(d, t, "out of memory");
                continue;
            }
        }
        if (uv_queue_work(d->loop, &j->req, store_work, store_done) != 0) {
            free(j->list);
            free(j);
            transfer_defer(d, t, "cannot queue work");
            continue;
        }
        t->sjob = j;
        x->sjob = j;
        return;
    }
}

/* ---- peer callbacks ---- */

static struct sbx_daemon *daemon_of(sbx_peer *p) { return ((struct conn *)sbx_peer_data(p))->d; }

static void on_info(sbx_peer *p, const uint8_t hash[32], uint64_t size, int kind, uint32_t first,
                    const uint8_t *hashes, uint32_t n)
{
    struct sbx_daemon *d = daemon_of(p);
    struct transfer *t = find(d, hash);
    const uint8_t *rk = sbx_peer_remote_key(p);
    if (!t || !rk) return;
    key_add(t->sources, &t->n_sources, rk);
    if (t->begun) {
        request_chunks(d, t);
        return;
    }
    /* The last attempt's writes are still draining, or a store job
     * decides. */
    if (t->job || t->nq || t->store_op || t->sjob) return;
    uint32_t total = (uint32_t)((size + SBX_BLOB_CHUNK - 1) / SBX_BLOB_CHUNK);
    if (!t->list || t->size != size) {
        free(t->list);
        t->list = calloc((size_t)total + 1, 32);
        t->size = size;
        t->n_chunks = total;
        t->list_got = 0;
        t->kind = kind;
    }
    if (!t->list || first != t->list_got || first + n > total) return;
    memcpy(t->list + (size_t)first * 32, hashes, (size_t)n * 32);
    t->list_got += n;
    if (t->list_got < total) return;
    /* The partial blob is begun by a store job (begin_done). */
    pipeline_drop(d, t);
    t->store_op = OP_BEGIN;
    store_next(d);
}

static void on_none(sbx_peer *p, const uint8_t hash[32])
{
    struct sbx_daemon *d = daemon_of(p);
    struct transfer *t = find(d, hash);
    const uint8_t *rk = sbx_peer_remote_key(p);
    if (!t || !rk) return;
    key_add(t->excluded, &t->n_excluded, rk);
    t->asked = false;
    sbx_transfer_tick(d); /* ask the next peer now */
}

/* A chunk the remote could not serve: ask another holder. */
static void on_chunk(sbx_peer *p, const uint8_t hash[32], uint32_t idx, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    struct sbx_daemon *d = daemon_of(p);
    struct transfer *t = find(d, hash);
    const uint8_t *rk = sbx_peer_remote_key(p);
    if (!t || !t->begun || !t->state || idx >= t->n_chunks || !rk) return;
    if (t->state[idx] == CH_WRITTEN || t->state[idx] == CH_QUEUED) return;
    t->state[idx] = CH_MISSING;
    key_add(t->excluded, &t->n_excluded, rk);
    request_chunks(d, t);
}

/* A chunk arrived: it waits in the blob's queue for a job to verify and
 * write it. The buffer is ours now. */
static void on_chunk_take(sbx_peer *p, const uint8_t hash[32], uint32_t idx, uint8_t *data, size_t len)
{
    struct sbx_daemon *d = daemon_of(p);
    struct transfer *t = find(d, hash);
    const uint8_t *rk = sbx_peer_remote_key(p);
    if (!t || !t->begun || !t->state || idx >= t->n_chunks || !rk || t->state[idx] == CH_WRITTEN ||
        t->state[idx] == CH_QUEUED) {
        sbx_chunkbuf_put(data);
        return;
    }
    t->state[idx] = CH_MISSING;
    if (t->nq == t->qcap) {
        size_t cap = t->qcap ? t->qcap * 2 : 8;
        struct rx *q = realloc(t->q, cap * sizeof *q);
        if (!q) {
            sbx_chunkbuf_put(data); /* asked again later */
            return;
        }
        t->q = q;
        t->qcap = cap;
    }
    struct rx *r = &t->q[t->nq++];
    r->idx = idx;
    r->buf = data;
    r->len = len;
    memcpy(r->from, rk, 32);
    d->xfers->n_queued++;
    t->state[idx] = CH_QUEUED;
    kick(d, t);
    request_chunks(d, t);
}

static const struct sbx_peer_blob_cb blob_cb = {
    .info = on_info, .none = on_none, .chunk = on_chunk, .chunk_take = on_chunk_take};

const struct sbx_peer_blob_cb *sbx_transfer_callbacks(void) { return &blob_cb; }

/* ---- what this device wants ---- */

static bool wanted_now(struct sbx_daemon *d, const uint8_t hash[32])
{
    if (find(d, hash)) return false;
    struct backoff *b = backoff_for(d, hash, false);
    return !b || sbx_now_ms() >= b->retry_at;
}

static void start(struct sbx_daemon *d, const uint8_t hash[32], int kind, bool on_demand)
{
    for (int i = 0; i < MAX_TRANSFERS; i++) {
        struct transfer *t = &d->xfers->t[i];
        if (t->used) continue;
        memset(t, 0, sizeof *t);
        t->used = true;
        memcpy(t->hash, hash, 32);
        t->kind = kind;
        t->on_demand = on_demand;
        return;
    }
}

static size_t active(struct sbx_daemon *d)
{
    size_t n = 0;
    for (int i = 0; i < MAX_TRANSFERS; i++) n += d->xfers->t[i].used;
    return n;
}

static void refill(struct sbx_daemon *d)
{
    static const char *const queries[] = {
        /* Thumbnails and mediums: every device, for every photo. */
        "SELECT thumb_hash, 1 FROM photos WHERE thumb_hash IS NOT NULL AND is_deleted = 0 AND "
        "NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = photos.thumb_hash AND b.complete = 1) LIMIT 32",
        "SELECT medium_hash, 2 FROM photos WHERE medium_hash IS NOT NULL AND is_deleted = 0 AND "
        "NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = photos.medium_hash AND b.complete = 1) LIMIT 32",
        /* Originals: the backup keeps all of them, when someone holds them. */
        "SELECT p.hash, 0 FROM photos p WHERE p.put_hlc IS NOT NULL AND (p.is_deleted = 0 OR p.deleted_at >= ?1) AND "
        "NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = p.hash AND b.complete = 1) AND "
        "EXISTS (SELECT 1 FROM blob_holders h WHERE h.hash = p.hash AND h.held = 1) LIMIT 32",
    };
    bool full = false;
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT role FROM devices WHERE key = ?1");
    if (st) {
        sqlite3_bind_blob(st, 1, d->id.pk, 32, SQLITE_STATIC);
        full = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == SBX_ROLE_FULL;
        sqlite3_reset(st);
    }
    for (size_t q = 0; q < SBX_ARRAY_LEN(queries) && active(d) < MAX_TRANSFERS; q++) {
        if (q == 2 && !full) break;
        st = sbx_store_stmt(d->store, queries[q]);
        if (!st) continue;
        if (q == 2) sqlite3_bind_int64(st, 1, sbx_now_ms() - d->trash_ms);
        while (active(d) < MAX_TRANSFERS && sqlite3_step(st) == SQLITE_ROW) {
            if (sqlite3_column_bytes(st, 0) != 32) continue;
            const uint8_t *h = sqlite3_column_blob(st, 0);
            if (wanted_now(d, h)) start(d, h, sqlite3_column_int(st, 1), false);
        }
        sqlite3_reset(st);
    }
}

void sbx_transfer_tick(struct sbx_daemon *d)
{
    if (!d->xfers || !d->blobs) return;
    if (d->xfers->n_held && sbx_now_ms() - d->xfers->held_since >= 1000) flush_held(d);
    refill(d);
    bool any = false;
    for (int i = 0; i < MAX_TRANSFERS && !any; i++) any = d->xfers->t[i].used;
    if (!any) sbx_chunkbuf_trim(); /* nothing to receive: no spare buffers */
    int64_t now = sbx_now_ms();
    for (int i = 0; i < MAX_TRANSFERS; i++) {
        struct transfer *t = &d->xfers->t[i];
        if (!t->used) continue;
        /* A store job decides what comes next for it. */
        if (t->store_op || t->sjob) continue;
        if (!t->begun) {
            if (t->asked && now - t->asked_at < INFO_TIMEOUT_MS && session_for_key(d, t->asked_key)) continue;
            struct conn *c = pick_session(d, t);
            if (!c) {
                transfer_defer(d, t, "no connected peer holds it");
                continue;
            }
            memcpy(t->asked_key, sbx_peer_remote_key(c->peer), 32);
            t->asked = true;
            t->asked_at = now;
            sbx_peer_blob_get(c->peer, t->hash);
            continue;
        }
        /* Chunks in flight to a peer that went away are asked again. */
        bool any_source = false;
        for (size_t k = 0; k < t->n_sources; k++) {
            if (key_in((const uint8_t(*)[32])t->excluded, t->n_excluded, t->sources[k])) continue;
            if (session_for_key(d, t->sources[k])) any_source = true;
        }
        if (!any_source) {
            for (uint32_t k = 0; k < t->n_chunks; k++)
                if (t->state[k] == CH_IN_FLIGHT) t->state[k] = CH_MISSING;
            /* What was received is written and recorded first. */
            if (t->job || t->nq || t->n_unsynced) {
                kick(d, t);
                continue;
            }
            /* Ask again (another peer, maybe): the list starts over. */
            transfer_restart(d, t);
            continue;
        }
        request_chunks(d, t);
    }
    store_next(d);
}

/* A new peer may hold what no peer could serve until now: blobs waiting
 * out their backoff are tried at once (a daemon that starts defers its
 * first blobs before any session is up, and they would otherwise wait
 * seconds after the peer arrived). */
void sbx_transfer_session_ready(struct sbx_daemon *d)
{
    if (!d->xfers) return;
    for (size_t i = 0; i < d->xfers->n_wait; i++) d->xfers->wait[i].retry_at = 0;
    sbx_transfer_tick(d);
}

/* A session ended: its chunks in flight go back to missing. */
void sbx_transfer_session_closed(struct sbx_daemon *d, sbx_peer *p)
{
    if (!d->xfers) return;
    const uint8_t *rk = sbx_peer_remote_key(p);
    if (!rk) return;
    for (int i = 0; i < MAX_TRANSFERS; i++) {
        struct transfer *t = &d->xfers->t[i];
        if (!t->used) continue;
        if (!t->begun) {
            /* Its chunk list was asked on this session and will not come:
             * ask again at once (a session replaced by a duplicate to the
             * same device would otherwise look like a pending question,
             * and the transfer would wait out INFO_TIMEOUT_MS). */
            if (t->asked && memcmp(t->asked_key, rk, 32) == 0) t->asked = false;
            continue;
        }
        bool was_source = false;
        for (size_t k = 0; k < t->n_sources; k++)
            if (memcmp(t->sources[k], rk, 32) == 0) was_source = true;
        if (!was_source) continue;
        for (uint32_t k = 0; k < t->n_chunks; k++)
            if (t->state[k] == CH_IN_FLIGHT) t->state[k] = CH_MISSING;
    }
}

int sbx_transfer_want(struct sbx_daemon *d, const uint8_t hash[32])
{
    if (!d->xfers) return SBX_ESTATE;
    if (sbx_blob_has(d->blobs, hash) == 0) return 0;
    struct transfer *t = find(d, hash);
    if (t) {
        t->on_demand = true;
        return 0;
    }
    struct backoff *b = backoff_for(d, hash, false);
    if (b) b->retry_at = 0;
    if (active(d) == MAX_TRANSFERS) {
        /* Make room: an on-demand get beats background work. Preferably
         * not a transfer whose job runs on the thread pool: the job still
         * writes its partial file, which a later transfer of that blob would
         * open beside it (wasted work, at worst a re-fetch). */
        int victim = -1;
        for (int i = 0; i < MAX_TRANSFERS; i++) {
            const struct transfer *o = &d->xfers->t[i];
            if (o->on_demand) continue;
            if (!o->job && !o->sjob) {
                victim = i;
                break;
            }
            if (victim < 0) victim = i;
        }
        if (victim >= 0) transfer_free(d, &d->xfers->t[victim]);
    }
    start(d, hash, SBX_BLOB_ORIGINAL, true);
    sbx_transfer_tick(d);
    return 0;
}

int sbx_transfer_progress(struct sbx_daemon *d, const uint8_t hash[32], uint64_t *done, uint64_t *size)
{
    struct transfer *t = d->xfers ? find(d, hash) : NULL;
    if (!t) return SBX_ENOENT;
    *done = t->bytes_done > t->size ? t->size : t->bytes_done;
    *size = t->size;
    return 0;
}

int sbx_transfer_init(struct sbx_daemon *d)
{
    d->xfers = calloc(1, sizeof *d->xfers);
    return d->xfers ? 0 : SBX_ENOMEM;
}

void sbx_transfer_free(struct sbx_daemon *d)
{
    if (!d->xfers) return;
    flush_held(d);
    for (int i = 0; i < MAX_TRANSFERS; i++)
        if (d->xfers->t[i].used) {
            /* The loop has ended, so no job runs: what is written but not
             * yet synced is synced and recorded now, to be kept. */
            struct transfer *t = &d->xfers->t[i];
            if (t->pw && !t->job && t->n_unsynced > 0 && sbx_blob_partial_flush(t->pw) == 0)
                sbx_blob_partial_record(t->pw);
            transfer_free(d, t);
        }
    sbx_blobstore_close(d->xfers->wblobs);
    sbx_store_close(d->xfers->wstore);
    free(d->xfers);
    d->xfers = NULL;
}

/* Housekeeping, once a minute: deleted photos past the trash window lose
 * their original on every device; a cache device over its quota evicts the
 * least recently used originals that a full peer holds (never thumbnails or
 * mediums, never an original no full peer holds). */
void sbx_transfer_gc(struct sbx_daemon *d)
{
    int64_t now = sbx_now_ms();
    if (!d->blobs || now < d->gc_next_at) return;
    d->gc_next_at = now + 60000;
    /* The log must say what this device holds: an original completed just
     * before a crash (announcements are batched) is announced now. */
    sqlite3_stmt *hs = sbx_store_stmt(d->store, "SELECT b.hash FROM blobs b WHERE b.kind = 'original' AND "
                                                "b.complete = 1 AND NOT EXISTS (SELECT 1 FROM blob_holders h JOIN "
                                                "authors a ON a.ix = h.holder_ix WHERE h.hash = b.hash AND "
                                                "a.key = ?1 AND h.held = 1) LIMIT 64");
    if (hs) {
        sqlite3_bind_blob(hs, 1, d->id.pk, 32, SQLITE_STATIC);
        while (sqlite3_step(hs) == SQLITE_ROW) {
            bool pending = false;
            for (size_t i = 0; i < d->xfers->n_held; i++)
                if (memcmp(d->xfers->held[i], sqlite3_column_blob(hs, 0), 32) == 0) pending = true;
            if (!pending) announce_held(d, sqlite3_column_blob(hs, 0));
        }
        sqlite3_reset(hs);
    }
    uint8_t (*drop)[32] = calloc(256, 32);
    if (!drop) return;
    size_t n = 0;
    int64_t trash_bytes = 0;
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT DISTINCT b.hash, b.size_bytes FROM blobs b JOIN photos p ON "
                                                "p.hash = b.hash WHERE b.kind = 'original' AND b.complete = 1 AND "
                                                "p.is_deleted = 1 AND p.deleted_at < ?1 LIMIT 256");
    if (st) {
        sqlite3_bind_int64(st, 1, now - d->trash_ms);
        while (n < 256 && sqlite3_step(st) == SQLITE_ROW) {
            memcpy(drop[n++], sqlite3_column_blob(st, 0), 32);
            trash_bytes += sqlite3_column_int64(st, 1);
        }
        sqlite3_reset(st);
    }
    size_t trash = n;
    if (d->cache_quota_bytes >= 0) {
        /* What the trash drops is freed already: the quota evicts only what
         * is still over it, and never a blob the trash drops (one
         * BLOB_DROPPED each). */
        int64_t used = sbx_store_query_int(d->store, "SELECT ifnull(sum(size_bytes), 0) FROM blobs WHERE kind = "
                                                     "'original' AND complete = 1") - trash_bytes;
        st = sbx_store_stmt(d->store, "SELECT b.hash, b.size_bytes FROM blobs b WHERE b.kind = 'original' AND "
                                      "b.complete = 1 AND EXISTS (SELECT 1 FROM blob_holders h JOIN authors a ON "
                                      "a.ix = h.holder_ix JOIN devices v ON v.key = a.key WHERE h.hash = b.hash AND "
                                      "h.held = 1 AND v.role = 1 AND v.removed = 0 AND v.key != ?1) "
                                      "ORDER BY ifnull(b.last_access_at, 0), b.hash LIMIT 256");
        if (st) {
            sqlite3_bind_blob(st, 1, d->id.pk, 32, SQLITE_STATIC);
            while (used > d->cache_quota_bytes && n < 256 && sqlite3_step(st) == SQLITE_ROW) {
                bool trashed = false;
                for (size_t i = 0; i < trash; i++)
                    if (memcmp(drop[i], sqlite3_column_blob(st, 0), 32) == 0) trashed = true;
                if (trashed) continue;
                memcpy(drop[n++], sqlite3_column_blob(st, 0), 32);
                used -= sqlite3_column_int64(st, 1);
            }
            sqlite3_reset(st);
        }
    }
    if (n > 0) {
        struct sbx_op *ops = calloc(n, sizeof *ops);
        for (size_t i = 0; ops && i < n; i++) {
            ops[i].type = SBX_OP_BLOB_DROPPED;
            memcpy(ops[i].hash, drop[i], 32);
        }
        /* Announce first: a device never claims to hold what it deleted. */
        if (ops && sbx_engine_write(d->engine, ops, n, now) == 0) {
            for (size_t i = 0; i < n; i++) sbx_blob_delete(d->blobs, drop[i]);
            sbx_info("dropped %zu originals (%zu past the trash window, %zu over the cache quota)", n, trash,
                     n - trash);
        }
        free(ops);
    }
    free(drop);
}
