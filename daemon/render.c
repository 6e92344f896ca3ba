/* The background renderer: thumbnails and mediums of imported photos.
 *
 * An import does not render (docs/import.md): it queues each new photo whose
 * type can be rendered in `render_queue` and returns once the originals and
 * the photo records are durable. This module works the queue off:
 * - the loop thread picks pending rows whose photo is in the library and has
 *   no thumbnail yet, and hands them to worker threads through a small
 *   in-memory queue (not while an import runs: the import first);
 * - each worker (its own SQLite connection and blob store handle, at a
 *   lower CPU priority than the loop and the import) reads the original from
 *   the blob store, renders both sizes from one decode and stores them as
 *   blobs;
 * - the loop writes the results of many photos in one engine write
 *   (photo.set thumb and medium; the engine cuts it into entries of at most
 *   SBX_MAX_OPS_PER_ENTRY ops), then deletes their rows. An image that
 *   cannot be rendered keeps its row as 'failed' with the reason; a failure
 *   of the store (disk full) is tried again later.
 * The queue is in the database, so a killed daemon finishes it after a
 * restart: a result lost with the process is rendered again, and its blobs
 * are found in the store. */
#include "daemon.h"

#include "shoebox/blob.h"
#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/media.h"
#include "shoebox/util.h"

#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_CAP 16         /* photos handed to the workers at once */
#define FLUSH_RESULTS 64     /* results written in one engine write, at most */
#define FLUSH_MS 500         /* a result waits at most this long to be written */
#define POLL_MS 2000         /* the queue is looked at this often without a kick */
#define RETRY_MS 60000       /* a store failure is tried again after this */
#define MAX_RETRY 64         /* photos waiting to be tried again, remembered */
#define RENDER_NICE 10       /* the workers' nice value: below the loop and the import */
#define RENDER_QUALITY 85

struct rjob {
    uint8_t id[SBX_ID_BYTES];
    uint8_t hash[32];
};

enum rstate { R_DONE = 0, R_FAILED, R_RETRY, R_GONE };

struct rresult {
    uint8_t id[SBX_ID_BYTES];
    uint8_t state; /* enum rstate */
    uint8_t thumb[32], medium[32];
    char reason[160];
};

struct retry {
    uint8_t id[SBX_ID_BYTES];
    int64_t at;
};

struct sbx_renderer;
struct wargs {
    struct sbx_renderer *r;
    size_t ix;
};

struct sbx_renderer {
    struct sbx_daemon *d;
    struct wargs wargs[SBX_MAX_RENDER_THREADS];
    size_t n_threads;
    uv_thread_t th[SBX_MAX_RENDER_THREADS];
    size_t n_started;
    sbx_store *wstore[SBX_MAX_RENDER_THREADS];
    sbx_blobstore *wblobs[SBX_MAX_RENDER_THREADS];
    int delay_ms; /* test hook */

    uv_mutex_t mu;
    uv_cond_t cv;
    /* Under mu. */
    bool quit;
    struct rjob q[QUEUE_CAP];
    size_t q_n;
    struct rjob busy[SBX_MAX_RENDER_THREADS];
    bool busy_on[SBX_MAX_RENDER_THREADS];
    struct rresult *res; /* finished, for the loop */
    size_t res_n, res_cap;

    /* Loop only. */
    uv_async_t async;
    uv_timer_t timer;
    bool handles_on;
    struct rresult *done; /* taken from res, waiting to be written */
    size_t done_n, done_cap;
    int64_t done_since;
    struct retry retry[MAX_RETRY];
    size_t n_retry;
    /* No new work before this time: a store failure (a full disk) or more
     * photos to try later than the retry list remembers would otherwise
     * send the workers round the same photos again and again. */
    int64_t paused_until;
    int64_t polled_at; /* the timer's last look at the queue */
};

/* ------------------------------------------------------------------ */
/* Worker threads                                                       */

int sbx_render_renditions(sbx_blobstore *bs, const uint8_t *buf, size_t len, uint8_t thumb[32], uint8_t medium[32],
                          bool *rendered)
{
    static const unsigned sizes[2] = {SBX_MEDIA_THUMB_PX, SBX_MEDIA_MEDIUM_PX};
    uint8_t *out[2] = {NULL, NULL};
    size_t out_len[2] = {0, 0};
    *rendered = false;
    int rc = sbx_media_render_sizes(buf, len, sizes, 2, RENDER_QUALITY, out, out_len);
    if (rc != 0) return rc;
    *rendered = true;
    rc = sbx_blob_put_buf(bs, out[0], out_len[0], SBX_BLOB_THUMB, thumb, NULL);
    if (rc == 0) rc = sbx_blob_put_buf(bs, out[1], out_len[1], SBX_BLOB_MEDIUM, medium, NULL);
    free(out[0]);
    free(out[1]);
    return rc;
}

static void render_one(struct sbx_renderer *r, size_t ix, const struct rjob *job, struct rresult *res)
{
    memset(res, 0, sizeof *res);
    memcpy(res->id, job->id, SBX_ID_BYTES);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sbx_blob_read_all(r->wblobs[ix], job->hash, SBX_MAX_RENDER_INPUT_BYTES, &buf, &len);
    if (rc == SBX_ENOENT) {
        /* Evicted since it was queued: nothing to render from here. */
        res->state = R_GONE;
        return;
    }
    if (rc == SBX_ETOOBIG) {
        res->state = R_FAILED;
        snprintf(res->reason, sizeof res->reason, "too large to render (over %u MiB)",
                 SBX_MAX_RENDER_INPUT_BYTES >> 20);
        return;
    }
    if (rc != 0) {
        res->state = R_RETRY;
        snprintf(res->reason, sizeof res->reason, "cannot read the original: %s", sbx_strerror(rc));
        return;
    }
    if (r->delay_ms > 0) {
        struct timespec ts = {r->delay_ms / 1000, (long)(r->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    bool rendered = false;
    rc = sbx_render_renditions(r->wblobs[ix], buf, len, res->thumb, res->medium, &rendered);
    free(buf);
    if (rc == SBX_ENOMEM && !rendered) {
        res->state = R_RETRY;
        snprintf(res->reason, sizeof res->reason, "out of memory");
        return;
    }
    if (rc != 0 && !rendered) {
        /* The bytes decide: the same image fails the same way next time. */
        res->state = R_FAILED;
        snprintf(res->reason, sizeof res->reason, "cannot render the image: %s",
                 rc == SBX_EUNSUPPORTED ? "type not supported" : sbx_strerror(rc));
        return;
    }
    if (rc != 0) {
        res->state = R_RETRY;
        snprintf(res->reason, sizeof res->reason, "cannot store the renditions: %s", sbx_strerror(rc));
        return;
    }
    res->state = R_DONE;
}

static int push_result(struct sbx_renderer *r, const struct rresult *res)
{
    if (r->res_n == r->res_cap) {
        size_t cap = r->res_cap ? r->res_cap * 2 : 32;
        struct rresult *nr = realloc(r->res, cap * sizeof *nr);
        if (!nr) return SBX_ENOMEM;
        r->res = nr;
        r->res_cap = cap;
    }
    r->res[r->res_n++] = *res;
    return 0;
}

static void worker_main(void *arg)
{
    struct wargs *a = arg;
    struct sbx_renderer *r = a->r;
    size_t ix = a->ix;
    /* Renders wait for the loop, the API and an import: they are the part
     * of an import that may come late. Linux takes a thread id here. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), RENDER_NICE) != 0)
        sbx_debug("render: cannot lower the worker's priority");
    uv_mutex_lock(&r->mu);
    for (;;) {
        while (!r->quit && r->q_n == 0) uv_cond_wait(&r->cv, &r->mu);
        if (r->quit) break;
        struct rjob job = r->q[0];
        memmove(r->q, r->q + 1, (r->q_n - 1) * sizeof r->q[0]);
        r->q_n--;
        r->busy[ix] = job;
        r->busy_on[ix] = true;
        uv_mutex_unlock(&r->mu);

        struct rresult res;
        render_one(r, ix, &job, &res);

        uv_mutex_lock(&r->mu);
        r->busy_on[ix] = false;
        /* Out of memory for the result: the row stays pending, and the
         * photo is rendered again at the next look at the queue. */
        if (push_result(r, &res) != 0) sbx_warn("render: out of memory");
        uv_async_send(&r->async);
    }
    uv_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------------ */
/* Loop: picking work, writing results                                  */

static const char SQL_PENDING[] =
    "SELECT q.photo_id, p.hash FROM render_queue q JOIN photos p ON p.id = q.photo_id "
    "WHERE q.state = 'pending' AND p.put_hlc IS NOT NULL AND p.thumb_hash IS NULL LIMIT ?1";
static const char SQL_COUNT[] =
    "SELECT (SELECT count(*) FROM render_queue q JOIN photos p ON p.id = q.photo_id "
    "WHERE q.state = 'pending' AND p.put_hlc IS NOT NULL AND p.thumb_hash IS NULL), "
    "(SELECT count(*) FROM render_queue WHERE state = 'failed')";
static const char SQL_DELETE[] = "DELETE FROM render_queue WHERE photo_id = ?1";
static const char SQL_FAIL[] = "UPDATE render_queue SET state = 'failed', error = ?2, updated_at = ?3 WHERE photo_id = ?1";

static bool id_in(const uint8_t id[SBX_ID_BYTES], const void *base, size_t n, size_t stride)
{
    const uint8_t *p = base;
    for (size_t i = 0; i < n; i++)
        if (memcmp(p + i * stride, id, SBX_ID_BYTES) == 0) return true;
    return false;
}

/* Whether the photo is anywhere between its row and the row's deletion. */
static bool in_flight(struct sbx_renderer *r, const uint8_t id[SBX_ID_BYTES], int64_t now)
{
    if (id_in(id, r->q, r->q_n, sizeof r->q[0]) || id_in(id, r->res, r->res_n, sizeof r->res[0]) ||
        id_in(id, r->done, r->done_n, sizeof r->done[0]))
        return true;
    for (size_t i = 0; i < r->n_threads; i++)
        if (r->busy_on[i] && memcmp(r->busy[i].id, id, SBX_ID_BYTES) == 0) return true;
    for (size_t i = 0; i < r->n_retry; i++)
        if (memcmp(r->retry[i].id, id, SBX_ID_BYTES) == 0 && now < r->retry[i].at) return true;
    return false;
}

static void refill(struct sbx_renderer *r)
{
    /* No new renders while an import runs: measured in bench_import, the
     * renders made the import take up to twice as long, low priority or
     * not (their blob writes and rows take the same journal and SQLite
     * write lock as the import's, and a low-priority thread that holds the
     * lock while it waits for a core stalls everyone). The import's end
     * kicks the renderer. */
    if (r->n_threads == 0 || r->d->stopping || sbx_import_running(r->d)) return;
    sbx_store *s = r->d->store;
    int64_t now = sbx_now_ms();
    if (now < r->paused_until) return;
    uv_mutex_lock(&r->mu);
    if (r->q_n > QUEUE_CAP / 2) {
        uv_mutex_unlock(&r->mu);
        return;
    }
    /* Rows in flight come back from the query too: ask for enough of them
     * to fill the queue past those. */
    size_t skip = r->q_n + r->res_n + r->done_n + r->n_retry + r->n_threads;
    sqlite3_stmt *st = sbx_store_stmt(s, SQL_PENDING);
    bool added = false;
    if (st) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)(skip + QUEUE_CAP));
        while (r->q_n < QUEUE_CAP && sqlite3_step(st) == SQLITE_ROW) {
            if (sqlite3_column_bytes(st, 0) != SBX_ID_BYTES || sqlite3_column_bytes(st, 1) != 32) continue;
            const uint8_t *id = sqlite3_column_blob(st, 0);
            if (in_flight(r, id, now)) continue;
            memcpy(r->q[r->q_n].id, id, SBX_ID_BYTES);
            memcpy(r->q[r->q_n].hash, sqlite3_column_blob(st, 1), 32);
            r->q_n++;
            added = true;
        }
        sqlite3_reset(st);
    }
    if (added) uv_cond_broadcast(&r->cv);
    uv_mutex_unlock(&r->mu);
}

static void retry_later(struct sbx_renderer *r, const uint8_t id[SBX_ID_BYTES], int64_t now)
{
    /* Expired entries make room; a full list forgets the oldest. */
    size_t k = 0;
    for (size_t i = 0; i < r->n_retry; i++)
        if (r->retry[i].at > now && memcmp(r->retry[i].id, id, SBX_ID_BYTES) != 0) r->retry[k++] = r->retry[i];
    r->n_retry = k;
    if (r->n_retry == MAX_RETRY) {
        memmove(r->retry, r->retry + 1, (MAX_RETRY - 1) * sizeof r->retry[0]);
        r->n_retry--;
        r->paused_until = now + RETRY_MS; /* the forgotten one waits too */
    }
    memcpy(r->retry[r->n_retry].id, id, SBX_ID_BYTES);
    r->retry[r->n_retry].at = now + RETRY_MS;
    r->n_retry++;
}

/* Writes what the workers finished: the renditions of every rendered photo
 * in one engine write, then the rows (deleted, or marked failed) in one
 * transaction. A crash between the two renders those photos again, and
 * their blobs are found in the store. */
static void flush(struct sbx_renderer *r)
{
    if (r->done_n == 0) return;
    struct sbx_daemon *d = r->d;
    int64_t now = sbx_now_ms();
    struct sbx_op *ops = calloc(2 * r->done_n, sizeof *ops);
    if (!ops) return; /* kept for the next flush */
    size_t n = 0;
    for (size_t i = 0; i < r->done_n; i++) {
        const struct rresult *res = &r->done[i];
        if (res->state != R_DONE) continue;
        for (int k = 0; k < 2; k++) {
            struct sbx_op *op = &ops[n++];
            op->type = SBX_OP_PHOTO_SET;
            memcpy(op->id, res->id, SBX_ID_BYTES);
            op->field = k == 0 ? SBX_PF_THUMB : SBX_PF_MEDIUM;
            memcpy(op->value.hash, k == 0 ? res->thumb : res->medium, 32);
        }
    }
    int rc = n ? sbx_engine_write(d->engine, ops, n, now) : 0;
    free(ops);
    if (rc != 0) {
        /* The rows stay pending: rendered again later (the blobs are kept). */
        sbx_warn("render: cannot write %zu renditions: %s", n / 2, sbx_strerror(rc));
        for (size_t i = 0; i < r->done_n; i++) retry_later(r, r->done[i].id, now);
        r->done_n = 0;
        return;
    }
    rc = sbx_store_begin(d->store);
    for (size_t i = 0; i < r->done_n && rc == 0; i++) {
        const struct rresult *res = &r->done[i];
        if (res->state == R_RETRY || res->state == R_GONE) {
            /* A store failure may pass; an evicted original may come back
             * (fetched on demand). Neither is tried in a loop. */
            if (res->state == R_RETRY) {
                sbx_warn("render: will try again later: %s", res->reason);
                r->paused_until = now + RETRY_MS; /* a full disk stops every render */
            }
            retry_later(r, res->id, now);
            continue;
        }
        sqlite3_stmt *st = sbx_store_stmt(d->store, res->state == R_FAILED ? SQL_FAIL : SQL_DELETE);
        if (!st) {
            rc = SBX_EDB;
            break;
        }
        sqlite3_bind_blob(st, 1, res->id, SBX_ID_BYTES, SQLITE_STATIC);
        if (res->state == R_FAILED) {
            char id[SBX_UUID_STRLEN + 1];
            sbx_uuid_format(id, res->id);
            sbx_warn("render: photo %s: %s", id, res->reason);
            sqlite3_bind_text(st, 2, res->reason, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, now);
        }
        int sr = sqlite3_step(st);
        sqlite3_reset(st);
        if (sr != SQLITE_DONE) rc = sbx_store_err(sr);
    }
    if (rc == 0) rc = sbx_store_commit(d->store);
    if (rc != 0) {
        sbx_store_rollback(d->store);
        sbx_warn("render: cannot update the render queue: %s", sbx_strerror(rc));
        /* Their thumbnails are in the library, so the queue no longer picks
         * the rendered ones; the failed ones wait a while. */
        for (size_t i = 0; i < r->done_n; i++)
            if (r->done[i].state != R_DONE) retry_later(r, r->done[i].id, now);
    }
    r->done_n = 0;
}

/* Moves the workers' results to the loop's list. */
static void collect(struct sbx_renderer *r)
{
    uv_mutex_lock(&r->mu);
    if (r->res_n > 0 && r->done_n + r->res_n > r->done_cap) {
        size_t cap = r->done_n + r->res_n + 32;
        struct rresult *nd = realloc(r->done, cap * sizeof *nd);
        if (nd) {
            r->done = nd;
            r->done_cap = cap;
        }
    }
    if (r->done_n + r->res_n <= r->done_cap && r->res_n > 0) {
        if (r->done_n == 0) r->done_since = sbx_now_ms();
        memcpy(r->done + r->done_n, r->res, r->res_n * sizeof *r->res);
        r->done_n += r->res_n;
        r->res_n = 0;
    }
    uv_mutex_unlock(&r->mu);
}

static void on_async(uv_async_t *a)
{
    struct sbx_renderer *r = a->data;
    collect(r);
    bool idle;
    uv_mutex_lock(&r->mu);
    idle = r->q_n == 0;
    for (size_t i = 0; i < r->n_threads; i++) idle = idle && !r->busy_on[i];
    uv_mutex_unlock(&r->mu);
    /* Batched, but never kept waiting when the workers have nothing else. */
    if (r->done_n >= FLUSH_RESULTS || idle || sbx_now_ms() - r->done_since >= FLUSH_MS) flush(r);
    refill(r);
}

static void on_timer(uv_timer_t *t)
{
    struct sbx_renderer *r = t->data;
    collect(r);
    int64_t now = sbx_now_ms();
    if (r->done_n && now - r->done_since >= FLUSH_MS) flush(r);
    /* The timer ticks at the flush period; the queue (a query on the loop)
     * is looked at only every POLL_MS: new work kicks the renderer anyway. */
    if (now - r->polled_at >= POLL_MS) {
        r->polled_at = now;
        refill(r);
    }
}

/* ------------------------------------------------------------------ */
/* Daemon hooks                                                         */

int sbx_render_start(struct sbx_daemon *d)
{
    struct sbx_renderer *r = calloc(1, sizeof *r);
    if (!r) return SBX_ENOMEM;
    r->d = d;
    uv_mutex_init(&r->mu);
    uv_cond_init(&r->cv);
    d->renderer = r;
    /* Two workers (or one per core when fewer): a render takes a core for
     * tens of milliseconds, and the loop and an import need the rest. */
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n > 2) n = 2;
    const char *env = getenv("SHOEBOX_RENDER_THREADS");
    if (env) n = strtol(env, NULL, 10);
    r->n_threads = n < 0 ? 0 : n > (long)SBX_MAX_RENDER_THREADS ? SBX_MAX_RENDER_THREADS : (size_t)n;
    const char *delay = getenv("SHOEBOX_TEST_RENDER_DELAY_MS");
    if (delay) {
        long v = strtol(delay, NULL, 10);
        r->delay_ms = v > 0 && v < 60000 ? (int)v : 0;
    }
    /* Rows whose photo never made it into the library belong to an import
     * killed before its photo write; no import runs now, and resuming that
     * one queues them again. Rows of photos that got their thumbnail
     * elsewhere (a peer) are done. */
    int rc = sbx_store_exec(d->store, "DELETE FROM render_queue WHERE photo_id NOT IN "
                                      "(SELECT id FROM photos WHERE put_hlc IS NOT NULL AND thumb_hash IS NULL)");
    if (rc != 0) return rc;
    char err[256] = "";
    rc = sbx_datadir_open_workers(d->data_dir, d->store, r->n_threads, r->wstore, r->wblobs, err, sizeof err);
    if (rc != 0) {
        sbx_error("render: cannot open the library for the renderer: %s", err);
        return rc;
    }
    uv_async_init(d->loop, &r->async, on_async);
    r->async.data = r;
    uv_timer_init(d->loop, &r->timer);
    r->timer.data = r;
    r->handles_on = true;
    for (size_t i = 0; i < r->n_threads; i++) {
        r->wargs[i] = (struct wargs){.r = r, .ix = i};
        if (uv_thread_create(&r->th[i], worker_main, &r->wargs[i]) != 0) break;
        r->n_started++;
    }
    if (r->n_started < r->n_threads) sbx_warn("render: %zu of %zu workers started", r->n_started, r->n_threads);
    r->n_threads = r->n_started;
    if (r->n_threads) uv_timer_start(&r->timer, on_timer, 100, POLL_MS < FLUSH_MS ? POLL_MS : FLUSH_MS);
    return 0;
}

void sbx_render_kick(struct sbx_daemon *d)
{
    if (d->renderer) refill(d->renderer);
}

void sbx_render_stop(struct sbx_daemon *d)
{
    struct sbx_renderer *r = d->renderer;
    if (!r) return;
    uv_mutex_lock(&r->mu);
    r->quit = true;
    r->q_n = 0;
    uv_cond_broadcast(&r->cv);
    uv_mutex_unlock(&r->mu);
    /* A render in progress ends within its photo's time; what finished is
     * written now, while the engine is still open. */
    for (size_t i = 0; i < r->n_started; i++) uv_thread_join(&r->th[i]);
    r->n_started = 0;
    collect(r);
    flush(r);
    if (r->handles_on) {
        uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *)&r->timer, NULL);
        uv_close((uv_handle_t *)&r->async, NULL);
        r->handles_on = false;
    }
}

void sbx_render_close(struct sbx_daemon *d)
{
    struct sbx_renderer *r = d->renderer;
    if (!r) return;
    SBX_ASSERT(r->n_started == 0 && !r->handles_on);
    for (size_t i = 0; i < SBX_MAX_RENDER_THREADS; i++) {
        sbx_blobstore_close(r->wblobs[i]);
        sbx_store_close(r->wstore[i]);
    }
    free(r->res);
    free(r->done);
    uv_cond_destroy(&r->cv);
    uv_mutex_destroy(&r->mu);
    free(r);
    d->renderer = NULL;
}

json_t *sbx_render_status_json(struct sbx_daemon *d)
{
    int64_t pending = 0, failed = 0;
    sqlite3_stmt *st = d->store ? sbx_store_stmt(d->store, SQL_COUNT) : NULL;
    if (st) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            pending = sqlite3_column_int64(st, 0);
            failed = sqlite3_column_int64(st, 1);
        }
        sqlite3_reset(st);
    }
    size_t threads = d->renderer ? d->renderer->n_threads : 0;
    return json_pack("{s:I, s:I, s:I}", "pending", (json_int_t)pending, "failed", (json_int_t)failed, "threads",
                     (json_int_t)threads);
}
