/* Local API benchmark: GET /photos and GET /feed on a 100,000-photo
 * library, served by a real shoeboxd (release build) over loopback.
 *
 *   bench_api [photos] [seconds]      (defaults: 100000 photos, 10 s of load)
 *
 * 1. Builds the library with the engine directly: `photos` photo.put ops
 *    (distinct hashes, capture times over ten years), 100 albums of 100
 *    photos, 1,000 deletes (tombstones in the feed).
 * 2. Starts shoeboxd on it (--api 127.0.0.1:0) and reads the address from
 *    GET /status over the unix socket.
 * 3. Latency, one keep-alive connection, requests one after another:
 *    the gallery's first page (limit 100), a page deep in the gallery, the
 *    feed's first page from the start (limit 500), a feed delta (the
 *    changes of the last few edits), and a walk of the whole feed in pages
 *    of 1000. p50 and p99 in ms.
 * 4. Throughput under load from a second process: wrk (Debian's) with 8
 *    connections for `seconds` against the first page and the feed delta;
 *    without wrk, two forked clients loop on keep-alive connections.
 * The daemon and the load share the machine's two cores, so requests/s is
 * what one core of serving gives while another core makes the requests. */
#include "shoebox/engine.h"
#include "shoebox/err.h"
#include "shoebox/identity.h"
#include "shoebox/log.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SBX_SHOEBOXD
#define SBX_SHOEBOXD "shoeboxd"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "bench_api: %s\n", what);
    exit(1);
}

/* ---- a minimal HTTP/1.1 keep-alive client ---- */

struct client {
    int fd;
    char *buf;
    size_t len, cap;
};

static int connect_tcp(const char *hostport)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host) return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int connect_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        close(fd);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One GET; the body (NUL-terminated) stays in c->buf until the next call. */
static int http_get(struct client *c, const char *path, const char *token, const char **body, size_t *blen)
{
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n\r\n", path, token);
    for (int off = 0; off < n;) {
        ssize_t w = write(c->fd, req + off, (size_t)(n - off));
        if (w <= 0) return -1;
        off += (int)w;
    }
    c->len = 0;
    size_t head = 0, want = 0;
    for (;;) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 1 << 20;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf) die("out of memory");
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
        if (r <= 0) return -1;
        c->len += (size_t)r;
        c->buf[c->len] = '\0';
        if (!head) {
            char *e = strstr(c->buf, "\r\n\r\n");
            if (!e) continue;
            head = (size_t)(e - c->buf) + 4;
            char *cl = strcasestr(c->buf, "\r\ncontent-length:");
            if (!cl || cl > e) return -1;
            want = head + strtoul(cl + 17, NULL, 10);
        }
        if (c->len >= want) break;
    }
    int status = atoi(c->buf + 9);
    c->buf[want] = '\0';
    *body = c->buf + head;
    *blen = want - head;
    return status;
}

/* ---- the library ---- */

static void build_library(const char *dir, int photos)
{
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/device.key", dir);
    struct sbx_identity id;
    if (sbx_identity_create(path, &id) != 0) die("cannot create the device key");
    snprintf(path, sizeof path, "%s/shoebox.db", dir);
    sbx_store *store = NULL;
    sbx_engine *eng = NULL;
    if (sbx_store_open(&store, path, SBX_STORE_CREATE, err, sizeof err) != 0) die(err);
    int64_t t0 = 1500000000000LL;
    if (sbx_engine_create_library(store, &id, "Bench", "bench", SBX_ROLE_FULL, t0) != 0 ||
        sbx_engine_open(&eng, store, &id, NULL) != 0)
        die("cannot create the library");
    enum { BATCH = 10000 };
    struct sbx_op *ops = calloc(BATCH, sizeof *ops);
    static char names[BATCH][32];
    uint8_t(*ids)[16] = calloc((size_t)photos, 16);
    if (!ops || !ids) die("out of memory");
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    for (int done = 0; done < photos;) {
        int n = photos - done < BATCH ? photos - done : BATCH;
        memset(ops, 0, (size_t)n * sizeof *ops);
        for (int i = 0; i < n; i++) {
            struct sbx_op *op = &ops[i];
            op->type = SBX_OP_PHOTO_PUT;
            struct sbx_photo_facts *f = &op->facts;
            uint32_t k = (uint32_t)(done + i);
            memcpy(f->hash, &k, 4);
            randombytes_buf(f->hash + 4, 28);
            sbx_photo_id_for_hash(sbx_engine_library(eng), f->hash, op->id);
            memcpy(ids[done + i], op->id, 16);
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            f->size_bytes = 1000000 + rng % 5000000;
            f->width = 4032;
            f->height = 3024;
            f->has_captured_at = true;
            f->captured_at_ms = t0 + (int64_t)(rng % (10ull * 365 * 86400 * 1000));
            f->orientation = 1;
            snprintf(names[i], sizeof names[i], "IMG_%06u.jpg", k);
            f->file_name = (struct sbx_str){names[i], (uint32_t)strlen(names[i])};
            f->mime_type = (struct sbx_str){"image/jpeg", 10};
            f->camera_make = (struct sbx_str){"Canon", 5};
            f->camera_model = (struct sbx_str){"EOS 40D", 7};
        }
        if (sbx_engine_write(eng, ops, (size_t)n, t0 + done) != 0) die("cannot write photos");
        done += n;
    }
    /* 100 albums of 100 photos, then 1,000 deletes. */
    for (int a = 0; a < 100 && photos >= 10000; a++) {
        memset(ops, 0, 101 * sizeof *ops);
        ops[0].type = SBX_OP_ALBUM_CREATE;
        sbx_uuid_random(ops[0].id);
        char name[32];
        snprintf(name, sizeof name, "Album %d", a);
        ops[0].name = (struct sbx_str){name, (uint32_t)strlen(name)};
        for (int i = 1; i <= 100; i++) {
            ops[i].type = SBX_OP_ALBUM_ADD;
            memcpy(ops[i].id, ops[0].id, 16);
            memcpy(ops[i].ref, ids[(a * 100 + i * 7) % photos], 16);
        }
        if (sbx_engine_write(eng, ops, 101, sbx_now_ms()) != 0) die("cannot write albums");
    }
    int dels = photos / 100;
    memset(ops, 0, (size_t)dels * sizeof *ops);
    for (int i = 0; i < dels; i++) {
        ops[i].type = SBX_OP_PHOTO_DELETE;
        memcpy(ops[i].id, ids[(i * 97) % photos], 16);
    }
    if (dels && sbx_engine_write(eng, ops, (size_t)dels, sbx_now_ms()) != 0) die("cannot write deletes");
    free(ops);
    free(ids);
    sbx_engine_close(eng);
    sbx_store_close(store);
    sbx_identity_wipe(&id);
}

/* ---- measuring ---- */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void latency(struct client *c, const char *token, const char *name, const char *path, int n)
{
    double *t = calloc((size_t)n, sizeof *t);
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        const char *body;
        size_t blen;
        double s = now_s();
        int st = http_get(c, path, token, &body, &blen);
        t[i] = (now_s() - s) * 1000.0;
        if (st != 200) {
            fprintf(stderr, "bench_api: GET %s: status %d: %.200s\n", path, st, st > 0 ? body : "");
            exit(1);
        }
        bytes = blen;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    double p50 = t[n / 2], p99 = t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    printf("%-34s %6d requests  p50 %7.2f ms  p99 %7.2f ms  (%zu bytes)\n", name, n, p50, p99, bytes);
    printf("BENCH name=%s_p50 value=%.2f unit=ms\n", name, p50);
    printf("BENCH name=%s_p99 value=%.2f unit=ms\n", name, p99);
    free(t);
}

static double run_wrk(const char *addr, const char *token, const char *path, int secs)
{
    char cmd[2048], line[512];
    snprintf(cmd, sizeof cmd, "wrk -t1 -c8 -d%ds -H 'Authorization: Bearer %s' 'http://%s%s' 2>&1", secs, token, addr, path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    double rps = -1;
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "Requests/sec:", 13) == 0) rps = atof(line + 13);
        if (strstr(line, "Non-2xx")) fprintf(stderr, "bench_api: wrk saw errors: %s", line);
    }
    pclose(p);
    return rps;
}

/* Without wrk: two forked clients, each on its own keep-alive connection. */
static double run_forks(const char *addr, const char *token, const char *path, int secs)
{
    int pipes[2][2];
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        if (pipe(pipes[k]) != 0) return -1;
        kids[k] = fork();
        if (kids[k] == 0) {
            struct client c = {.fd = connect_tcp(addr)};
            long n = 0;
            double end = now_s() + secs;
            const char *body;
            size_t blen;
            while (now_s() < end && http_get(&c, path, token, &body, &blen) == 200) n++;
            if (write(pipes[k][1], &n, sizeof n) != sizeof n) _exit(1);
            _exit(0);
        }
    }
    long total = 0;
    for (int k = 0; k < 2; k++) {
        long n = 0;
        if (read(pipes[k][0], &n, sizeof n) == sizeof n) total += n;
        waitpid(kids[k], NULL, 0);
        close(pipes[k][0]);
        close(pipes[k][1]);
    }
    return (double)total / secs;
}

int main(int argc, char **argv)
{
    int photos = argc > 1 ? atoi(argv[1]) : 100000;
    int secs = argc > 2 ? atoi(argv[2]) : 10;
    if (photos < 1000 || secs < 1) die("usage: bench_api [photos >= 1000] [seconds]");
    if (sodium_init() < 0) die("libsodium failed to initialise");
    sbx_log_set_level(SBX_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sbx-bench-api-XXXXXX", tmp);
    if (!mkdtemp(dir)) die("cannot make a temp dir");
    double t = now_s();
    build_library(dir, photos);
    printf("library: %d photos, %d albums, %d deleted, built in %.1f s\n", photos, photos >= 10000 ? 100 : 0,
           photos / 100, now_s() - t);

    char logpath[600];
    snprintf(logpath, sizeof logpath, "%s.log", dir);
    pid_t d = fork();
    if (d == 0) {
        if (!freopen(logpath, "w", stderr)) _exit(127);
        execl(SBX_SHOEBOXD, "shoeboxd", "--data", dir, "--api", "127.0.0.1:0", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    char sock[600], tokpath[600], token[128] = "";
    snprintf(sock, sizeof sock, "%s/api.sock", dir);
    snprintf(tokpath, sizeof tokpath, "%s/api-token", dir);
    struct client c = {.fd = -1};
    t = now_s();
    while (c.fd < 0 && now_s() - t < 60) {
        FILE *f = fopen(tokpath, "r");
        if (f) {
            if (fgets(token, sizeof token, f)) token[strcspn(token, "\r\n")] = '\0';
            fclose(f);
        }
        if (token[0]) c.fd = connect_unix(sock);
        if (c.fd < 0) usleep(50000);
    }
    if (c.fd < 0) die("shoeboxd did not start (see its log beside the data dir)");
    printf("daemon: ready %.2f s after start\n", now_s() - t);
    const char *body;
    size_t blen;
    char addr[128] = "";
    if (http_get(&c, "/status", token, &body, &blen) != 200) die("GET /status failed");
    json_error_t jerr;
    json_t *st = json_loads(body, 0, &jerr);
    snprintf(addr, sizeof addr, "%s", json_string_value(json_object_get(json_object_get(st, "api"), "listen")));
    json_decref(st);
    close(c.fd);
    c.fd = connect_tcp(addr);
    if (c.fd < 0) die("cannot connect to the API over TCP");

    /* Positions: a cursor deep in the gallery, a feed cursor from now. */
    char deep[256] = "/photos?limit=100", delta[256] = "";
    for (int i = 0; i < 500 / 100 && http_get(&c, deep, token, &body, &blen) == 200; i++) {
        json_t *pg = json_loads(body, 0, &jerr);
        snprintf(deep, sizeof deep, "/photos?limit=100&cursor=%s", json_string_value(json_object_get(pg, "nextCursor")));
        if (i == 0) snprintf(delta, sizeof delta, "/feed?cursor=%s", json_string_value(json_object_get(pg, "feedCursor")));
        json_decref(pg);
    }
    latency(&c, token, "photos_first_page_100", "/photos?limit=100", 300);
    latency(&c, token, "photos_deep_page_100", deep, 300);
    latency(&c, token, "feed_from_start_500", "/feed?limit=500", 100);
    latency(&c, token, "feed_delta_empty", delta, 1000);

    /* The whole feed, in pages of 1000. */
    t = now_s();
    char next[256] = "/feed?limit=1000";
    long items = 0;
    int pages = 0;
    for (; pages < 1000; pages++) {
        if (http_get(&c, next, token, &body, &blen) != 200) die("feed walk failed");
        json_t *pg = json_loads(body, 0, &jerr);
        items += (long)json_array_size(json_object_get(pg, "items"));
        bool more = json_is_true(json_object_get(pg, "hasMore"));
        snprintf(next, sizeof next, "/feed?limit=1000&cursor=%s", json_string_value(json_object_get(pg, "nextCursor")));
        json_decref(pg);
        if (!more) {
            pages++;
            break;
        }
    }
    double walk = now_s() - t;
    printf("%-34s %ld items in %d pages: %.2f s (%.0f items/s)\n", "feed walk, pages of 1000", items, pages, walk,
           items / walk);
    printf("BENCH name=feed_walk_items_per_s value=%.0f unit=items/s\n", items / walk);
    close(c.fd);

    bool wrk = system("command -v wrk >/dev/null 2>&1") == 0;
    const char *tool = wrk ? "wrk -t1 -c8" : "2 forked keep-alive clients";
    double r1 = wrk ? run_wrk(addr, token, "/photos?limit=50", secs) : run_forks(addr, token, "/photos?limit=50", secs);
    printf("%-34s %.0f requests/s (%s, %d s)\n", "load: GET /photos?limit=50", r1, tool, secs);
    printf("BENCH name=photos_page50_rps value=%.0f unit=req/s\n", r1);
    double r2 = wrk ? run_wrk(addr, token, delta, secs) : run_forks(addr, token, delta, secs);
    printf("%-34s %.0f requests/s (%s, %d s)\n", "load: GET /feed (no changes)", r2, tool, secs);
    printf("BENCH name=feed_delta_rps value=%.0f unit=req/s\n", r2);

    kill(d, SIGTERM);
    int wst = 0;
    waitpid(d, &wst, 0);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, logpath);
    if (system(cmd) != 0) fprintf(stderr, "bench_api: cleanup of %s failed\n", dir);
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) die("shoeboxd did not exit cleanly");
    return 0;
}
