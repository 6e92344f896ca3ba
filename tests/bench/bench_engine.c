/* Merge engine benchmark: the target is "100,000 photo puts as
 * verified entries from one author applied to a fresh database: entries/s and
 * ops/s. Target >= 200,000 ops/s, verification included."
 *
 *   bench_engine [photos] [batch]      (defaults: 100000 photos, batch 16)
 *
 * 1. Local write path: a founder authors `photos` photo.put ops with
 *    sbx_engine_write into its fresh library (build, sign, validate, apply,
 *    commit: one transaction).
 * 2. Decode + verify alone: sbx_entry_decode of every raw entry of that log
 *    (structure, limits, canonical re-encode, Ed25519), no database.
 * 3. Receive path (the target): a fresh joiner takes the founder's raw
 *    entries through sbx_engine_receive (decode, verify, validate, apply,
 *    commit), all of them in one call: one transaction.
 * 4. The same into another fresh joiner, `batch` entries per call, one
 *    transaction each, as a sync session applies what arrives.
 * Each joiner must end with the founder's state digest, so a fast but
 * wrong engine does not pass for a fast one.
 *
 * Databases live in a fresh directory under $TMPDIR (default /tmp): a real
 * file system, WAL with synchronous=NORMAL, as the daemon runs them.
 * SBX_BENCH_SQL, if set, runs on both fresh databases first (experiments:
 * "DROP INDEX photos_hash", "PRAGMA wal_autocheckpoint=10000"; a cache_size
 * set here is overridden by sbx_engine_open).
 *
 * Wall time is the figure the target speaks of; the process's CPU time is
 * printed beside it because other work on a shared 2-core machine inflates
 * wall time. */
#include "shoebox/engine.h"
#include "shoebox/entry.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TARGET_OPS_PER_S 200000.0
#define T0 1700000000000LL

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }
/* CPU time of this process (user + system): the figure that holds when
 * other work shares the machine's two cores. */
static double cpu_s(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

struct replica {
    char dir[256];
    struct sbx_identity id;
    sbx_store *store;
    sbx_engine *engine;
};

static void replica_open(struct replica *r, const char *tmp)
{
    snprintf(r->dir, sizeof r->dir, "%s/sbx-bench-engine-XXXXXX", tmp);
    SBX_ASSERT(mkdtemp(r->dir) != NULL);
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/shoebox.db", r->dir);
    crypto_sign_keypair(r->id.pk, r->id.sk);
    int rc = sbx_store_open(&r->store, path, SBX_STORE_CREATE, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "bench_engine: cannot open %s: %s\n", path, err);
        exit(1);
    }
    /* An experiment knob: SQL run on each fresh database before the engine
     * sees it (a pragma, an index dropped), to measure its effect. */
    const char *sql = getenv("SBX_BENCH_SQL");
    if (sql && *sql && sqlite3_exec(sbx_store_db(r->store), sql, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_engine: SBX_BENCH_SQL failed: %s\n", sqlite3_errmsg(sbx_store_db(r->store)));
        exit(1);
    }
}

static void replica_close(struct replica *r)
{
    sbx_engine_close(r->engine);
    sbx_store_close(r->store);
    static const char *const files[] = {"shoebox.db", "shoebox.db-wal", "shoebox.db-shm"};
    for (size_t i = 0; i < SBX_ARRAY_LEN(files); i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", r->dir, files[i]);
        unlink(path);
    }
    rmdir(r->dir);
    sodium_memzero(&r->id, sizeof r->id);
}

/* Strings a camera import really carries: distinct file names, a handful
 * of makes and models, so entries are as large as real ones. */
struct photo_strings {
    char file_name[40];
};

static const char *const makes[] = {"Apple", "samsung", "Google", "Canon", "NIKON CORPORATION", "SONY"};
static const char *const models[] = {"iPhone 14 Pro", "SM-S918B", "Pixel 8", "Canon EOS R6", "NIKON Z 6_2",
                                     "ILCE-7M4"};

static void make_put(sbx_engine *e, unsigned n, struct photo_strings *s, struct sbx_op *op)
{
    memset(op, 0, sizeof *op);
    op->type = SBX_OP_PHOTO_PUT;
    struct sbx_photo_facts *f = &op->facts;
    /* A distinct content hash per photo; the id derives from it as the
     * importer derives it. */
    uint8_t seed[8];
    for (int k = 0; k < 8; k++) seed[k] = (uint8_t)((uint64_t)n >> (8 * k));
    crypto_generichash(f->hash, sizeof f->hash, seed, sizeof seed, NULL, 0);
    sbx_photo_id_for_hash(sbx_engine_library(e), f->hash, op->id);
    int64_t captured = T0 - (int64_t)n * 37000;
    f->size_bytes = 2000000 + (uint64_t)(n % 5000) * 1000;
    f->width = n % 3 ? 4032 : 3024;
    f->height = n % 3 ? 3024 : 4032;
    f->has_captured_at = true;
    f->captured_at_ms = captured;
    if (n % 2) {
        f->has_location = true;
        f->lat = 52.2297 + (double)(n % 1000) / 10000.0;
        f->lon = 21.0122 - (double)(n % 777) / 10000.0;
    }
    f->orientation = (uint8_t)(1 + (n % 4 == 3 ? 5 : 0));
    snprintf(s->file_name, sizeof s->file_name, "IMG_%08u.HEIC", n);
    size_t m = n % SBX_ARRAY_LEN(makes);
    f->mime_type = (struct sbx_str){m == 0 ? "image/heic" : "image/jpeg", 10};
    f->file_name = (struct sbx_str){s->file_name, (uint32_t)strlen(s->file_name)};
    f->camera_make = (struct sbx_str){makes[m], (uint32_t)strlen(makes[m])};
    f->camera_model = (struct sbx_str){models[m], (uint32_t)strlen(models[m])};
}

struct rawlog {
    uint8_t **p;
    size_t *n;
    size_t count, bytes;
};

static void rawlog_load(struct rawlog *l, sbx_store *store)
{
    memset(l, 0, sizeof *l);
    sqlite3_stmt *st = NULL;
    SBX_ASSERT(sqlite3_prepare_v2(sbx_store_db(store), "SELECT raw FROM entries ORDER BY author_ix, seq", -1, &st,
                                  NULL) == SQLITE_OK);
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (l->count == cap) {
            cap = cap ? cap * 2 : 256;
            l->p = realloc(l->p, cap * sizeof *l->p);
            l->n = realloc(l->n, cap * sizeof *l->n);
            SBX_ASSERT(l->p && l->n);
        }
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        l->p[l->count] = malloc(len);
        SBX_ASSERT(l->p[l->count]);
        memcpy(l->p[l->count], sqlite3_column_blob(st, 0), len);
        l->n[l->count] = len;
        l->bytes += len;
        l->count++;
    }
    sqlite3_finalize(st);
}

static void rawlog_free(struct rawlog *l)
{
    for (size_t i = 0; i < l->count; i++) free(l->p[i]);
    free(l->p);
    free(l->n);
}

static void bench_line(const char *id, double value, const char *unit, double target)
{
    if (target > 0)
        printf("BENCH name=%s value=%.0f unit=%s target=%.0f ratio=%.2f\n", id, value, unit, target, value / target);
    else
        printf("BENCH name=%s value=%.0f unit=%s\n", id, value, unit);
}

/* A measured span: wall time (what the target is about) and the
 * process's CPU time beside it. */
struct span {
    double wall, cpu;
};

static struct span span_start(void) { return (struct span){now_s(), cpu_s()}; }
static struct span span_end(struct span s) { return (struct span){now_s() - s.wall, cpu_s() - s.cpu}; }

static void report(const char *what, struct span t, double ops, double entries)
{
    printf("%-48s %7.3f s %9.0f ops/s %7.0f entries/s   (cpu %.3f s: %.0f ops/s)\n", what, t.wall, ops / t.wall,
           entries / t.wall, t.cpu, ops / t.cpu);
}

/* A fresh joiner of the founder's library receives the whole log, `batch`
 * entries per sbx_engine_receive call (0: all in one), and must end with the
 * founder's state digest. Returns the time the receive calls took. */
static struct span receive_fresh(const struct rawlog *log, size_t batch, const char *tmp, sbx_engine *founder)
{
    struct replica b = {0};
    int64_t now = T0 + 1000;
    replica_open(&b, tmp);
    SBX_ASSERT(sbx_engine_prepare_join(b.store, &b.id, sbx_engine_library(founder), "phone", SBX_ROLE_CACHE) == 0);
    SBX_ASSERT(sbx_engine_open(&b.engine, b.store, &b.id, NULL) == 0);
    struct sbx_recv_result *res = calloc(log->count, sizeof *res);
    SBX_ASSERT(res);
    size_t step = batch ? batch : log->count;
    struct span t = span_start();
    for (size_t off = 0; off < log->count; off += step) {
        size_t k = log->count - off < step ? log->count - off : step;
        int rc = sbx_engine_receive(b.engine, (const uint8_t *const *)log->p + off, log->n + off, k, now, res + off);
        if (rc != 0) {
            fprintf(stderr, "bench_engine: receive failed: %s\n", sbx_strerror(rc));
            exit(1);
        }
    }
    t = span_end(t);
    for (size_t i = 0; i < log->count; i++) {
        if (res[i].status != SBX_RECV_APPLIED) {
            fprintf(stderr, "bench_engine: entry %zu not applied: %s\n", i, res[i].reason);
            exit(1);
        }
    }
    free(res);
    uint8_t da[32], db[32];
    SBX_ASSERT(sbx_engine_digest(founder, da) == 0);
    SBX_ASSERT(sbx_engine_digest(b.engine, db) == 0);
    if (memcmp(da, db, 32) != 0) {
        fprintf(stderr, "bench_engine: the replicas' digests differ\n");
        exit(1);
    }
    replica_close(&b);
    return t;
}

int main(int argc, char **argv)
{
    unsigned photos = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000;
    size_t batch = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 16;
    if (photos == 0 || photos > 10000000 || batch == 0) {
        fprintf(stderr, "usage: bench_engine [photos 1..10000000] [entries per batched receive call, >= 1]\n");
        return 2;
    }
    SBX_ASSERT(sodium_init() >= 0);
    sbx_log_set_level(SBX_LOG_WARN); /* "database migrated" lines are not figures */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    int64_t now = T0 + 1000;

    /* 1. The founder writes the import: the local write path. */
    struct replica a = {0};
    replica_open(&a, tmp);
    SBX_ASSERT(sbx_engine_create_library(a.store, &a.id, "Family", "nas", SBX_ROLE_FULL, now) == 0);
    SBX_ASSERT(sbx_engine_open(&a.engine, a.store, &a.id, NULL) == 0);
    struct sbx_op *ops = malloc((size_t)photos * sizeof *ops);
    struct photo_strings *strs = malloc((size_t)photos * sizeof *strs);
    SBX_ASSERT(ops && strs);
    for (unsigned i = 0; i < photos; i++) make_put(a.engine, i, &strs[i], &ops[i]);
    struct span t_write = span_start();
    int rc = sbx_engine_write(a.engine, ops, photos, now);
    t_write = span_end(t_write);
    if (rc != 0) {
        fprintf(stderr, "bench_engine: write failed: %s\n", sbx_strerror(rc));
        return 1;
    }
    free(ops);
    free(strs);

    struct rawlog log;
    rawlog_load(&log, a.store);
    /* The genesis entry carries 2 ops (library.create, device.add). */
    size_t total_ops = (size_t)photos + 2;
    printf("== engine: %u photo.put ops in %zu entries, %.1f MB of log (%.0f bytes/op), databases in %s\n", photos,
           log.count, (double)log.bytes / 1e6, (double)log.bytes / (double)total_ops, tmp);
    report("local write (build+sign+validate+apply+commit)", t_write, photos, (double)(log.count - 1));

    /* 2. Decode and verify alone: what the bytes cost before the database. */
    struct span t_decode = span_start();
    for (size_t i = 0; i < log.count; i++) {
        struct sbx_entry *en = NULL;
        SBX_ASSERT(sbx_entry_decode(log.p[i], log.n[i], &en) == 0);
        sbx_entry_free(en);
    }
    t_decode = span_end(t_decode);
    struct span t_sig = span_start();
    for (size_t i = 0; i < log.count; i++) {
        /* The signature alone, over the body (all but the last 64 bytes). */
        SBX_ASSERT(crypto_sign_verify_detached(log.p[i] + log.n[i] - 64, log.p[i], log.n[i] - 64, a.id.pk) == 0);
    }
    t_sig = span_end(t_sig);
    report("decode+verify alone (no database)", t_decode, total_ops, log.count);
    report("  of which Ed25519 verify alone", t_sig, total_ops, log.count);

    /* 3. A fresh joiner receives the log: the target, all in one call. */
    struct span t_recv = receive_fresh(&log, 0, tmp, a.engine);
    report("receive (decode+verify+validate+apply+commit)", t_recv, total_ops, log.count);
    printf("  one call, one transaction; decode+verify ~%.0f%% of it, validate+apply+commit ~%.0f%%\n",
           100.0 * t_decode.wall / t_recv.wall, 100.0 * (t_recv.wall - t_decode.wall) / t_recv.wall);
    double recv_ops = total_ops / t_recv.wall;
    printf("target >= %.0f ops/s: %s (%.2fx; %.2fx by CPU time)\n", TARGET_OPS_PER_S,
           recv_ops >= TARGET_OPS_PER_S ? "met" : "MISSED", recv_ops / TARGET_OPS_PER_S,
           total_ops / t_recv.cpu / TARGET_OPS_PER_S);

    /* 4. The same in batches, one transaction each, as a sync session
     * applies what arrives. */
    struct span t_batch = receive_fresh(&log, batch, tmp, a.engine);
    char what[80];
    snprintf(what, sizeof what, "receive, %zu entries per call", batch);
    report(what, t_batch, total_ops, log.count);

    bench_line("engine_receive_ops", recv_ops, "ops/s", TARGET_OPS_PER_S);
    bench_line("engine_receive_ops_cpu", total_ops / t_recv.cpu, "ops/s", TARGET_OPS_PER_S);
    bench_line("engine_receive_entries", log.count / t_recv.wall, "entries/s", 0);
    snprintf(what, sizeof what, "engine_receive_b%zu_ops", batch);
    bench_line(what, total_ops / t_batch.wall, "ops/s", 0);
    bench_line("engine_decode_verify_ops", total_ops / t_decode.wall, "ops/s", 0);
    bench_line("engine_write_ops", photos / t_write.wall, "ops/s", 0);

    rawlog_free(&log);
    replica_close(&a);
    return 0;
}
