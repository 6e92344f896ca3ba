/* sbx-sim: N replicas of the real merge engine, each with its own on-disk
 * SQLite database, over a simulated network that delays, loses, duplicates
 * and reorders messages, partitions the replicas, and crashes and restarts
 * them from disk. Everything is driven by one seed: the same seed gives the
 * same run. After the faults heal, every replica must hold the same entries
 * and the same state digest, and the model must satisfy its invariants.
 *
 *   sbx-sim --seed S [--replicas N] [--steps K]
 *   sbx-sim --seeds FROM:TO [--replicas N] [--steps K]
 *
 * Prints one line per seed:
 *   seed=S replicas=N entries=E converged digest=D
 * and exits 1 at the first seed that does not converge. */
#include "workload.h"

#include "shoebox/engine.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/peer.h"
#include "shoebox/util.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPLICAS 16
#define MAX_MSGS 4096
#define ENTRIES_PER_MSG 32
#define HEAL_ROUNDS 64
#define T0 1700000000000LL

enum msg_kind { MSG_HEADS, MSG_ENTRIES };

struct msg {
    enum msg_kind kind;
    int from, to;
    int64_t at;
    uint64_t order; /* tie-break for equal delivery times: deterministic */
    size_t n;
    struct sbx_head *heads;
    uint8_t **raw;
    size_t *len;
};

struct replica {
    char dir[64];
    struct sbx_identity id;
    sbx_store *store;
    sbx_engine *engine;
    int64_t skew_ms;
    bool down;
    int64_t up_at;
};

/* Peer mode: a simulated TCP connection between two replicas, each end a
 * real sbx_peer session. Bytes arrive in order (as TCP delivers them), late
 * by a random delay; faults drop whole connections, as a network does. */
struct chunk {
    int64_t at;
    uint64_t order;
    int to; /* 0 or 1: which end receives */
    size_t n;
    uint8_t *data;
};

struct link;
struct link_end {
    struct link *link;
    int side;
};

struct link {
    bool up;
    int r[2];
    sbx_peer *p[2];
    struct link_end end[2];
    int64_t last_at[2];
    struct chunk *q;
    size_t nq, cap;
};

struct sim {
    bool peer_mode;
    struct link links[MAX_REPLICAS][MAX_REPLICAS]; /* [a][b] with a < b */
    unsigned sessions, drops;
    uint64_t rng;
    int n;
    struct replica r[MAX_REPLICAS];
    struct msg *q[MAX_MSGS];
    size_t nq;
    uint64_t order;
    int64_t now;
    /* A partition splits replicas by a bit mask until `until`. */
    uint32_t side_mask;
    int64_t partition_until;
    bool faults;
    /* Fault statistics, printed with --verbose. */
    unsigned lost, duplicated, crashes, partitions;
};

static uint64_t rnd(struct sim *s) { return sbx_wl_rand(&s->rng); }
static bool chance(struct sim *s, unsigned per_mille) { return rnd(s) % 1000 < per_mille; }

static void msg_free(struct msg *m)
{
    if (!m) return;
    for (size_t i = 0; m->raw && i < m->n; i++) free(m->raw[i]);
    free(m->raw);
    free(m->len);
    free(m->heads);
    free(m);
}

static void on_sim_entry(sbx_engine *e, const struct sbx_entry *entry);

static int replica_open(struct replica *r)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/shoebox.db", r->dir);
    int rc = sbx_store_open(&r->store, path, SBX_STORE_CREATE, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "sbx-sim: %s: %s\n", path, err);
        return rc;
    }
    rc = sbx_engine_open(&r->engine, r->store, &r->id, NULL);
    if (rc == 0) sbx_engine_set_entry_cb(r->engine, on_sim_entry);
    return rc;
}

static void replica_close(struct replica *r)
{
    sbx_engine_close(r->engine);
    sbx_store_close(r->store);
    r->engine = NULL;
    r->store = NULL;
}

static int64_t clock_of(struct sim *s, int i) { return s->now + s->r[i].skew_ms; }

static bool can_talk(struct sim *s, int a, int b)
{
    if (s->r[a].down || s->r[b].down) return false;
    if (s->now >= s->partition_until) return true;
    return ((s->side_mask >> a) & 1) == ((s->side_mask >> b) & 1);
}

static void enqueue(struct sim *s, struct msg *m)
{
    m->at = s->now + 1 + (s->faults ? (int64_t)(rnd(s) % 200) : 0);
    m->order = s->order++;
    if (s->nq == MAX_MSGS || (s->faults && chance(s, 50))) {
        /* Lost on the way (or the queue is full: a bounded network drops). */
        s->lost++;
        msg_free(m);
        return;
    }
    s->q[s->nq++] = m;
}

static struct msg *copy_msg(const struct msg *m)
{
    struct msg *c = calloc(1, sizeof *c);
    *c = *m;
    c->heads = NULL;
    c->raw = NULL;
    c->len = NULL;
    if (m->heads) {
        c->heads = malloc(m->n * sizeof *c->heads + 1);
        memcpy(c->heads, m->heads, m->n * sizeof *c->heads);
    }
    if (m->raw) {
        c->raw = calloc(m->n + 1, sizeof *c->raw);
        c->len = calloc(m->n + 1, sizeof *c->len);
        for (size_t i = 0; i < m->n; i++) {
            c->raw[i] = malloc(m->len[i]);
            memcpy(c->raw[i], m->raw[i], m->len[i]);
            c->len[i] = m->len[i];
        }
    }
    return c;
}

static void send_heads(struct sim *s, int from, int to)
{
    struct msg *m = calloc(1, sizeof *m);
    m->kind = MSG_HEADS;
    m->from = from;
    m->to = to;
    m->heads = calloc(MAX_REPLICAS * 2, sizeof *m->heads);
    int n = sbx_engine_heads(s->r[from].engine, m->heads, MAX_REPLICAS * 2);
    m->n = n > 0 ? (size_t)n : 0;
    enqueue(s, m);
}

struct collect {
    struct msg *m;
    size_t cap;
};

static int collect_raw(void *arg, const uint8_t *raw, size_t len)
{
    struct collect *c = arg;
    if (c->m->n == c->cap) return 1;
    c->m->raw[c->m->n] = malloc(len);
    memcpy(c->m->raw[c->m->n], raw, len);
    c->m->len[c->m->n] = len;
    c->m->n++;
    return 0;
}

/* Answers a peer's heads with the entries it lacks (bounded per message). */
static void answer_heads(struct sim *s, const struct msg *h)
{
    struct replica *me = &s->r[h->to];
    struct sbx_head mine[MAX_REPLICAS * 2];
    int n = sbx_engine_heads(me->engine, mine, MAX_REPLICAS * 2);
    struct msg *m = calloc(1, sizeof *m);
    m->kind = MSG_ENTRIES;
    m->from = h->to;
    m->to = h->from;
    m->raw = calloc(ENTRIES_PER_MSG, sizeof *m->raw);
    m->len = calloc(ENTRIES_PER_MSG, sizeof *m->len);
    struct collect c = {m, ENTRIES_PER_MSG};
    for (int i = 0; i < n; i++) {
        uint64_t theirs = 0;
        for (size_t k = 0; k < h->n; k++)
            if (memcmp(h->heads[k].author, mine[i].author, 32) == 0) theirs = h->heads[k].seq;
        if (mine[i].seq > theirs)
            sbx_engine_entries_after(me->engine, mine[i].author, theirs, ENTRIES_PER_MSG - m->n, collect_raw, &c);
    }
    if (m->n == 0) {
        msg_free(m);
        return;
    }
    enqueue(s, m);
}

static int deliver(struct sim *s, struct msg *m)
{
    if (!can_talk(s, m->from, m->to)) {
        s->lost++;
        return 0;
    }
    if (m->kind == MSG_HEADS) {
        answer_heads(s, m);
        return 0;
    }
    return sbx_engine_receive(s->r[m->to].engine, (const uint8_t *const *)m->raw, m->len, m->n,
                              clock_of(s, m->to), NULL);
}

/* Delivers every message due by now, earliest first. */
static int run_network(struct sim *s)
{
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < s->nq; i++) {
            if (s->q[i]->at > s->now) continue;
            if (best == SIZE_MAX || s->q[i]->at < s->q[best]->at ||
                (s->q[i]->at == s->q[best]->at && s->q[i]->order < s->q[best]->order))
                best = i;
        }
        if (best == SIZE_MAX) return 0;
        struct msg *m = s->q[best];
        s->q[best] = s->q[--s->nq];
        if (s->faults && chance(s, 30) && s->nq < MAX_MSGS) {
            /* Duplicated: the copy arrives again later. */
            struct msg *d = copy_msg(m);
            d->at = s->now + 1 + (int64_t)(rnd(s) % 300);
            d->order = s->order++;
            s->q[s->nq++] = d;
            s->duplicated++;
        }
        int rc = deliver(s, m);
        msg_free(m);
        if (rc != 0) return rc;
    }
}

static struct sim *g_sim; /* for the engines' entry callbacks */

static void link_close(struct sim *s, struct link *l)
{
    (void)s;
    if (!l->up) return;
    for (int k = 0; k < 2; k++) {
        sbx_peer_free(l->p[k]);
        l->p[k] = NULL;
    }
    for (size_t i = 0; i < l->nq; i++) free(l->q[i].data);
    free(l->q);
    l->q = NULL;
    l->nq = l->cap = 0;
    l->up = false;
}

static void on_link_event(sbx_peer *p, enum sbx_peer_event ev, const char *reason)
{
    (void)p;
    (void)ev;
    (void)reason;
}

static void link_pull(struct sim *s, struct link *l)
{
    for (int k = 0; k < 2 && l->up; k++) {
        const uint8_t *b;
        size_t n;
        sbx_peer_output(l->p[k], &b, &n);
        if (n == 0) continue;
        if (l->nq == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 16;
            l->q = realloc(l->q, l->cap * sizeof *l->q);
        }
        struct chunk *c = &l->q[l->nq++];
        int64_t at = s->now + 1 + (s->faults ? (int64_t)(rnd(s) % 80) : 0);
        if (at < l->last_at[k]) at = l->last_at[k]; /* in order, like TCP */
        l->last_at[k] = at;
        c->at = at;
        c->order = s->order++;
        c->to = 1 - k;
        c->n = n;
        c->data = malloc(n);
        memcpy(c->data, b, n);
        sbx_peer_output_consume(l->p[k], n);
    }
}

static int link_open(struct sim *s, int a, int b)
{
    struct link *l = &s->links[a][b];
    if (l->up || s->r[a].down || s->r[b].down || !can_talk(s, a, b)) return 0;
    memset(l, 0, sizeof *l);
    l->r[0] = a;
    l->r[1] = b;
    for (int k = 0; k < 2; k++) {
        struct replica *r = &s->r[l->r[k]];
        uint8_t eph[32];
        for (int i = 0; i < 32; i += 8) {
            uint64_t v = rnd(s);
            memcpy(eph + i, &v, 8);
        }
        l->end[k] = (struct link_end){l, k};
        struct sbx_peer_config cfg = {.initiator = k == 0, .id = &r->id, .engine = r->engine, .ephemeral = eph,
                                      .name = "sim"};
        int rc = sbx_peer_new(&l->p[k], &cfg, on_link_event, &l->end[k], clock_of(s, l->r[k]));
        if (rc != 0) return rc;
    }
    l->up = true;
    s->sessions++;
    link_pull(s, l);
    return 0;
}

static void links_of_close(struct sim *s, int who)
{
    for (int a = 0; a < s->n; a++)
        for (int b = a + 1; b < s->n; b++)
            if (a == who || b == who) link_close(s, &s->links[a][b]);
}

static void on_sim_entry(sbx_engine *e, const struct sbx_entry *entry)
{
    (void)entry;
    struct sim *s = g_sim;
    if (!s || !s->peer_mode) return;
    for (int a = 0; a < s->n; a++)
        for (int b = a + 1; b < s->n; b++) {
            struct link *l = &s->links[a][b];
            if (!l->up) continue;
            for (int k = 0; k < 2; k++)
                if (s->r[l->r[k]].engine == e) sbx_peer_kick(l->p[k]);
        }
}

/* Delivers every chunk due by now, earliest first, across all links. */
static int run_links(struct sim *s)
{
    for (int guard = 0; guard < 1000000; guard++) {
        struct link *best = NULL;
        size_t bi = 0;
        for (int a = 0; a < s->n; a++)
            for (int b = a + 1; b < s->n; b++) {
                struct link *l = &s->links[a][b];
                for (size_t i = 0; l->up && i < l->nq; i++) {
                    if (l->q[i].at > s->now) continue;
                    if (!best || l->q[i].at < best->q[bi].at ||
                        (l->q[i].at == best->q[bi].at && l->q[i].order < best->q[bi].order)) {
                        best = l;
                        bi = i;
                    }
                }
            }
        if (!best) return 0;
        struct chunk c = best->q[bi];
        memmove(best->q + bi, best->q + bi + 1, (best->nq - bi - 1) * sizeof *best->q);
        best->nq--;
        if (!can_talk(s, best->r[0], best->r[1])) {
            free(c.data);
            s->drops++;
            link_close(s, best);
            continue;
        }
        sbx_peer *to = best->p[c.to];
        sbx_peer_input(to, c.data, c.n, clock_of(s, best->r[c.to]));
        sbx_peer_apply(to);
        free(c.data);
        if (sbx_peer_is_closed(best->p[0]) || sbx_peer_is_closed(best->p[1])) {
            link_pull(s, best);
            link_close(s, best);
            continue;
        }
        for (int a = 0; a < s->n; a++)
            for (int b = a + 1; b < s->n; b++)
                if (s->links[a][b].up) link_pull(s, &s->links[a][b]);
    }
    return 0;
}

static int setup(struct sim *s, uint64_t seed, int replicas)
{
    bool peer_mode = s->peer_mode;
    memset(s, 0, sizeof *s);
    s->peer_mode = peer_mode;
    g_sim = s;
    s->rng = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    s->n = replicas;
    s->now = T0;
    s->faults = true;
    for (int i = 0; i < replicas; i++) {
        struct replica *r = &s->r[i];
        snprintf(r->dir, sizeof r->dir, "/tmp/sbx-sim-XXXXXX");
        if (!mkdtemp(r->dir)) return SBX_EIO;
        /* Keys from the seed, so a run is reproducible to the byte. */
        uint8_t key_seed[32];
        for (int k = 0; k < 32; k += 8) {
            uint64_t v = rnd(s);
            memcpy(key_seed + k, &v, 8);
        }
        crypto_sign_seed_keypair(r->id.pk, r->id.sk, key_seed);
        r->skew_ms = (int64_t)(rnd(s) % 2000) - 1000;
    }
    /* Replica 0 founds the library and adds the others; they learn of it
     * through the network like any other entries. */
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/shoebox.db", s->r[0].dir);
    sbx_store *st = NULL;
    int rc = sbx_store_open(&st, path, SBX_STORE_CREATE, err, sizeof err);
    uint8_t nonce[16];
    for (int k = 0; k < 16; k += 8) {
        uint64_t v = rnd(s);
        memcpy(nonce + k, &v, 8);
    }
    if (rc == 0) rc = sbx_engine_create_library_nonce(st, &s->r[0].id, nonce, "Sim", "r0", SBX_ROLE_FULL, clock_of(s, 0));
    sbx_store_close(st);
    if (rc != 0) return rc;
    if ((rc = replica_open(&s->r[0])) != 0) return rc;
    for (int i = 1; i < replicas && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/shoebox.db", s->r[i].dir);
        rc = sbx_store_open(&st, path, SBX_STORE_CREATE, err, sizeof err);
        char name[16];
        snprintf(name, sizeof name, "r%d", i);
        if (rc == 0)
            rc = sbx_engine_prepare_join(st, &s->r[i].id, sbx_engine_library(s->r[0].engine), name,
                                         SBX_ROLE_CACHE);
        sbx_store_close(st);
        if (rc == 0) rc = replica_open(&s->r[i]);
        struct sbx_op add = {.type = SBX_OP_DEVICE_ADD, .role = SBX_ROLE_CACHE};
        memcpy(add.key, s->r[i].id.pk, 32);
        add.name = (struct sbx_str){name, (uint32_t)strlen(name)};
        if (rc == 0) rc = sbx_engine_write(s->r[0].engine, &add, 1, clock_of(s, 0));
    }
    for (int i = 0; i < replicas; i++) sbx_engine_set_entry_cb(s->r[i].engine, on_sim_entry);
    if (rc == 0 && peer_mode) {
        /* What pairing does: each new device starts with the founder's
         * log, so it knows who the members are. */
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(sbx_store_db(s->r[0].store), "SELECT raw FROM entries ORDER BY hlc", -1, &st, NULL);
        while (rc == 0 && st && sqlite3_step(st) == SQLITE_ROW) {
            const uint8_t *raw = sqlite3_column_blob(st, 0);
            size_t len = (size_t)sqlite3_column_bytes(st, 0);
            for (int i = 1; i < replicas && rc == 0; i++)
                rc = sbx_engine_receive(s->r[i].engine, &raw, &len, 1, clock_of(s, i), NULL);
        }
        sqlite3_finalize(st);
    }
    return rc;
}

static void teardown(struct sim *s)
{
    for (int a = 0; a < s->n; a++)
        for (int b = a + 1; b < s->n; b++) link_close(s, &s->links[a][b]);
    for (size_t i = 0; i < s->nq; i++) msg_free(s->q[i]);
    s->nq = 0;
    for (int i = 0; i < s->n; i++) {
        replica_close(&s->r[i]);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", s->r[i].dir);
        if (system(cmd) != 0) fprintf(stderr, "sbx-sim: cannot remove %s\n", s->r[i].dir);
    }
}

static int step_peer(struct sim *s)
{
    s->now += 1 + (int64_t)(rnd(s) % 40);
    int who = (int)(rnd(s) % (uint64_t)s->n);
    struct replica *r = &s->r[who];
    if (r->down) {
        if (s->now >= r->up_at) {
            int rc = replica_open(r);
            if (rc != 0) return rc;
            r->down = false;
        }
        return run_links(s);
    }
    unsigned roll = (unsigned)(rnd(s) % 100);
    int rc = 0;
    if (roll < 50 && sbx_engine_is_member(r->engine, r->id.pk)) {
        rc = sbx_wl_random_write(r->engine, r->store, &s->rng, clock_of(s, who), 24);
    } else if (roll < 80) {
        int to = (int)(rnd(s) % (uint64_t)s->n);
        if (to != who) rc = link_open(s, who < to ? who : to, who < to ? to : who);
    } else if (roll < 86) {
        int to = (int)(rnd(s) % (uint64_t)s->n);
        if (to != who) link_close(s, &s->links[who < to ? who : to][who < to ? to : who]);
    } else if (roll < 89 && who != 0) {
        links_of_close(s, who);
        replica_close(r);
        r->down = true;
        r->up_at = s->now + 200 + (int64_t)(rnd(s) % 2000);
        s->crashes++;
    } else if (roll < 91 && s->now >= s->partition_until) {
        s->side_mask = (uint32_t)rnd(s);
        s->partition_until = s->now + 500 + (int64_t)(rnd(s) % 3000);
        s->partitions++;
    } else if (roll < 95) {
        for (int a = 0; a < s->n; a++)
            for (int b = a + 1; b < s->n; b++)
                if (s->links[a][b].up) {
                    sbx_peer_tick(s->links[a][b].p[0], clock_of(s, a));
                    sbx_peer_tick(s->links[a][b].p[1], clock_of(s, b));
                    link_pull(s, &s->links[a][b]);
                }
    }
    if (rc != 0) return rc;
    for (int a = 0; a < s->n; a++)
        for (int b = a + 1; b < s->n; b++)
            if (s->links[a][b].up) link_pull(s, &s->links[a][b]);
    return run_links(s);
}

static int step(struct sim *s)
{
    if (s->peer_mode) return step_peer(s);
    s->now += 1 + (int64_t)(rnd(s) % 40);
    int who = (int)(rnd(s) % (uint64_t)s->n);
    struct replica *r = &s->r[who];
    if (r->down) {
        if (s->now >= r->up_at) {
            int rc = replica_open(r); /* restart from what is on disk */
            if (rc != 0) return rc;
            r->down = false;
        }
        return run_network(s);
    }
    unsigned roll = (unsigned)(rnd(s) % 100);
    int rc = 0;
    if (roll < 45 && sbx_engine_is_member(r->engine, r->id.pk)) {
        rc = sbx_wl_random_write(r->engine, r->store, &s->rng, clock_of(s, who), 24);
    } else if (roll < 90) {
        int to = (int)(rnd(s) % (uint64_t)s->n);
        if (to != who) send_heads(s, who, to);
    } else if (roll < 93 && who != 0) {
        replica_close(r); /* crash: memory gone, the database stays */
        r->down = true;
        r->up_at = s->now + 200 + (int64_t)(rnd(s) % 2000);
        s->crashes++;
    } else if (roll < 95 && s->now >= s->partition_until) {
        s->side_mask = (uint32_t)rnd(s);
        s->partition_until = s->now + 500 + (int64_t)(rnd(s) % 3000);
        s->partitions++;
    }
    if (rc != 0) return rc;
    return run_network(s);
}

static int64_t count(struct replica *r, const char *sql) { return sbx_wl_count(r->store, sql); }

/* The invariants every healed replica must satisfy. */
static const char *check_invariants(struct replica *r)
{
    if (count(r, "SELECT count(*) FROM pending_entries") != 0) return "entries still pending";
    if (count(r, "SELECT count(*) FROM refused_entries") != 0) return "an honest entry was refused";
    if (count(r, "SELECT count(*) FROM album_items i WHERE present != EXISTS (SELECT 1 FROM album_item_dots d "
                 "WHERE d.album_id = i.album_id AND d.photo_id = i.photo_id AND d.added = 1 AND d.removed = 0)") != 0)
        return "album membership disagrees with its dots";
    if (count(r, "SELECT count(*) FROM photo_tags t WHERE present != EXISTS (SELECT 1 FROM photo_tag_dots d "
                 "WHERE d.photo_id = t.photo_id AND d.tag_id = t.tag_id AND d.added = 1 AND d.removed = 0)") != 0)
        return "photo tags disagree with their dots";
    if (count(r, "SELECT count(*) FROM photos WHERE put_hlc IS NULL") != 0) return "a photo has no put";
    if (count(r, "SELECT count(*) FROM photos WHERE is_deleted = 1 AND deleted_at IS NULL") != 0)
        return "a deleted photo has no deletion time";
    if (count(r, "SELECT count(*) FROM heads h WHERE h.seq != (SELECT count(*) FROM entries e "
                 "WHERE e.author_ix = h.author_ix)") != 0)
        return "a log has a gap";
    if (count(r, "SELECT count(*) FROM devices WHERE created_at IS NULL OR removed != 0") != 0)
        return "a device is not a plain member";
    return NULL;
}

static int heal(struct sim *s, char digest_out[65], int64_t *entries)
{
    s->faults = false;
    s->partition_until = 0;
    for (int i = 0; i < s->n; i++) {
        if (!s->r[i].down) continue;
        int rc = replica_open(&s->r[i]);
        if (rc != 0) return rc;
        s->r[i].down = false;
    }
    for (int round = 0; round < HEAL_ROUNDS; round++) {
        if (s->peer_mode) {
            for (int a = 0; a < s->n; a++)
                for (int b = a + 1; b < s->n; b++) {
                    int rc = link_open(s, a, b);
                    if (rc != 0) return rc;
                }
        } else {
            for (int i = 0; i < s->n; i++)
                for (int j = 0; j < s->n; j++)
                    if (i != j) send_heads(s, i, j);
        }
        for (int k = 0; k < 8; k++) {
            s->now += 300;
            int rc = s->peer_mode ? run_links(s) : run_network(s);
            if (rc != 0) return rc;
        }
        char d0[65] = "";
        bool same = true;
        for (int i = 0; i < s->n; i++) {
            uint8_t d[32];
            char hex[65];
            if (sbx_engine_digest(s->r[i].engine, d) != 0) return SBX_EDB;
            sbx_hex_encode(hex, d, 32);
            if (i == 0) memcpy(d0, hex, 65);
            else if (strcmp(hex, d0) != 0) same = false;
        }
        int64_t e0 = count(&s->r[0], "SELECT count(*) FROM entries");
        for (int i = 1; i < s->n; i++)
            if (count(&s->r[i], "SELECT count(*) FROM entries") != e0) same = false;
        if (same) {
            memcpy(digest_out, d0, 65);
            *entries = e0;
            return 0;
        }
    }
    return SBX_EAGAIN;
}

static int run_seed(uint64_t seed, int replicas, int steps, bool verbose, bool peer_mode)
{
    struct sim *s = calloc(1, sizeof *s);
    s->peer_mode = peer_mode;
    int rc = setup(s, seed, replicas);
    for (int i = 0; i < steps && rc == 0; i++) rc = step(s);
    char digest[65] = "";
    int64_t entries = 0;
    if (rc == 0) rc = heal(s, digest, &entries);
    int result = 0;
    if (rc == SBX_EAGAIN) {
        printf("seed=%llu replicas=%d DIVERGED after healing:", (unsigned long long)seed, replicas);
        for (int i = 0; i < s->n; i++) {
            uint8_t d[32];
            char hex[65];
            sbx_engine_digest(s->r[i].engine, d);
            sbx_hex_encode(hex, d, 32);
            printf(" r%d=%.12s/%lld", i, hex, (long long)count(&s->r[i], "SELECT count(*) FROM entries"));
        }
        printf("\n");
        result = 1;
    } else if (rc != 0) {
        printf("seed=%llu replicas=%d ERROR %s\n", (unsigned long long)seed, replicas, sbx_strerror(rc));
        result = 1;
    } else {
        for (int i = 0; i < s->n && !result; i++) {
            const char *bad = check_invariants(&s->r[i]);
            if (bad) {
                printf("seed=%llu replicas=%d INVARIANT r%d: %s\n", (unsigned long long)seed, replicas, i, bad);
                result = 1;
            }
        }
        if (!result)
            printf("seed=%llu replicas=%d entries=%lld converged digest=%s\n", (unsigned long long)seed, replicas,
                   (long long)entries, digest);
        if (verbose)
            printf("  lost=%u duplicated=%u crashes=%u partitions=%u sessions=%u dropped=%u photos=%lld\n", s->lost,
                   s->duplicated, s->crashes, s->partitions, s->sessions, s->drops,
                   (long long)count(&s->r[0], "SELECT count(*) FROM photos"));
    }
    fflush(stdout);
    teardown(s);
    free(s);
    return result;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sbx-sim (--seed S | --seeds FROM:TO) [--replicas N] [--steps K] [--net peer|gossip] "
               "[--verbose]\n"
               "  --net peer    replicas talk through real peer sessions (Noise, hello, entries) over\n"
               "                simulated TCP links that delay, drop and partition (default)\n"
               "  --net gossip  heads/entries messages over a network that delays, loses, duplicates\n"
               "                and reorders each message\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"seed", required_argument, NULL, 's'},     {"seeds", required_argument, NULL, 'S'},
        {"replicas", required_argument, NULL, 'r'}, {"steps", required_argument, NULL, 'k'},
        {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
        {"net", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    unsigned long long from = 1, to = 1;
    int replicas = 4, steps = 300, c;
    bool have_seed = false, verbose = false, peer_mode = true;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's': from = to = strtoull(optarg, NULL, 10); have_seed = true; break;
        case 'S':
            if (sscanf(optarg, "%llu:%llu", &from, &to) != 2 || to < from) {
                usage(stderr);
                return 2;
            }
            have_seed = true;
            break;
        case 'r': replicas = atoi(optarg); break;
        case 'k': steps = atoi(optarg); break;
        case 'v': verbose = true; break;
        case 'n':
            if (strcmp(optarg, "peer") == 0) peer_mode = true;
            else if (strcmp(optarg, "gossip") == 0) peer_mode = false;
            else {
                usage(stderr);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!have_seed || replicas < 2 || replicas > MAX_REPLICAS || steps < 0) {
        usage(stderr);
        return 2;
    }
    if (sodium_init() < 0) return 1;
    sbx_log_set_level(SBX_LOG_ERROR);
    for (unsigned long long seed = from; seed <= to; seed++)
        if (run_seed(seed, replicas, steps, verbose, peer_mode) != 0) return 1;
    return 0;
}
