/* Import of a folder of camera-sized JPEGs through the real daemon and CLI,
 * next to plain SHA-256 of the same files measured in the same run.
 *
 *   bench_import [MiB [dir]]     (default 1024 MiB under /tmp)
 *
 * The files are real 12 MP JPEGs (turbojpeg, a gradient with noise, ~3 MB
 * each, like a phone's); every copy gets a different COM segment after the
 * SOI marker so every file has its own hash. They are written and fsynced
 * first, so no writeback of theirs competes with what is measured. Then,
 * twice: with the files in the page cache (hot, as just written), and with
 * their pages dropped before each side reads them (cold, posix_fadvise
 * DONTNEED: the disk's read speed counts for both sides):
 *   - plain SHA-256 (libcrypto) of every file, read() into a buffer: the
 *     floor of any import, one core;
 *   - `shoebox import --json DIR` into a fresh library: hash, type, EXIF,
 *     the durable copy into the blob store, photo records; the time is the
 *     CLI call's (the daemon is started before and waited for).
 * The hot import's daemon renders the thumbnails and mediums in the
 * background, as a user gets it (its renderer starts when the import
 * ends): after the import returns, the bench waits until `shoebox status` shows
 * no render pending and reports that time as well (thumbnails/s), so
 * nothing is hidden. The cold import's daemon has no render threads
 * (SHOEBOX_RENDER_THREADS=0) so that it measures the ingest alone.
 * Also measured in the same run: a durable copy of the files (write into
 * one new file each, fsync, rename, directory fsync), the disk's ceiling
 * for any import that keeps its originals.
 * Prints BENCH lines: import_mbps is the hot import (what the issue's
 * target is measured on), import_cold_mbps the cold one against cold
 * SHA-256, renders_per_s the background rendering. */
#include "shoebox/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>

#ifndef SHOEBOXD_PATH
#define SHOEBOXD_PATH "shoeboxd"
#endif
#ifndef SHOEBOX_PATH
#define SHOEBOX_PATH "shoebox"
#endif

extern char **environ;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Evicts a file's pages from the page cache (it is clean: fsynced). */
static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A 4000 x 3000 photo-like JPEG: smooth gradients plus sensor-like noise,
 * quality 92, which lands near the size of a phone's 12 MP picture. */
static unsigned char *make_jpeg(unsigned long *len)
{
    const int w = 4000, h = 3000;
    unsigned char *rgb = malloc((size_t)w * h * 3);
    if (!rgb) return NULL;
    uint32_t x = 2463534242u;
    for (int y = 0; y < h; y++) {
        for (int i = 0; i < w; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            int n = (int)(x & 15) - 8;
            unsigned char *p = rgb + ((size_t)y * w + i) * 3;
            int r = i * 255 / w + n, g = y * 255 / h + n, b = (i + y) * 255 / (w + h) + n;
            p[0] = (unsigned char)(r < 0 ? 0 : r > 255 ? 255 : r);
            p[1] = (unsigned char)(g < 0 ? 0 : g > 255 ? 255 : g);
            p[2] = (unsigned char)(b < 0 ? 0 : b > 255 ? 255 : b);
        }
    }
    tjhandle tj = tjInitCompress();
    unsigned char *jpeg = NULL;
    int rc = tj ? tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpeg, len, TJSAMP_420, 92, 0) : -1;
    free(rgb);
    if (tj) tjDestroy(tj);
    if (rc != 0) {
        tjFree(jpeg);
        return NULL;
    }
    return jpeg;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Runs argv with extra environment entries (NULL-terminated); returns the
 * exit status, or -1. With `pid_out` it does not wait. */
static int run(char *const argv[], const char *const *env_add, pid_t *pid_out, const char *out_path)
{
    size_t n = 0, k = 0;
    while (environ[n]) n++;
    while (env_add && env_add[k]) k++;
    char **env = calloc(n + k + 1, sizeof *env);
    if (!env) return -1;
    for (size_t i = 0; i < n; i++) env[i] = environ[i];
    for (size_t i = 0; i < k; i++) env[n + i] = (char *)env_add[i];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path ? out_path : "/dev/null",
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (rc != 0) return -1;
    if (pid_out) {
        *pid_out = pid;
        return 0;
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `shoebox status --json` of a data dir: the pending renders, or -1. */
static long renders_pending(const char *data, const char *out)
{
    char *status[] = {SHOEBOX_PATH, "--data", (char *)data, "status", "--json", NULL};
    if (run(status, NULL, NULL, out) != 0) return -1;
    FILE *f = fopen(out, "r");
    if (!f) return -1;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *r = strstr(buf, "\"renders\"");
    const char *p = r ? strstr(r, "\"pending\":") : NULL;
    return p ? strtol(p + 10, NULL, 10) : -1;
}

struct import_run {
    double secs;        /* the CLI call, or negative */
    double render_secs; /* from the call's start until no render is pending */
    long imported;
};

/* Imports `dir` into a new library under `work`; with `render` the daemon
 * renders in the background and the run waits for it to finish. */
static struct import_run import_once(const char *work, const char *name, const char *dir, bool render)
{
    struct import_run res = {-1, -1, 0};
    char data[600], out[700];
    snprintf(data, sizeof data, "%s/%s", work, name);
    snprintf(out, sizeof out, "%s/%s.json", work, name);
    char *init[] = {SHOEBOX_PATH, "--data", data, "init", "--name", "bench", NULL};
    if (run(init, NULL, NULL, NULL) != 0) return res;
    const char *no_render[] = {"SHOEBOX_RENDER_THREADS=0", NULL};
    char *daemon[] = {SHOEBOXD_PATH, "--data", data, "--log-level", "warn", NULL};
    pid_t pid;
    if (run(daemon, render ? NULL : no_render, &pid, NULL) != 0) return res;
    char *status[] = {SHOEBOX_PATH, "--data", data, "status", NULL};
    bool up = false;
    for (int i = 0; i < 200 && !up; i++) {
        up = run(status, NULL, NULL, NULL) == 0;
        if (!up) usleep(50000);
    }
    if (up) {
        char *imp[] = {SHOEBOX_PATH, "--data", data, "import", "--json", (char *)dir, NULL};
        double t0 = now_s();
        int rc = run(imp, NULL, NULL, out);
        res.secs = now_s() - t0;
        if (rc != 0) res.secs = -1;
        FILE *f = fopen(out, "r");
        char line[256] = "";
        if (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "\"imported\":");
            res.imported = p ? strtol(p + 11, NULL, 10) : -1;
        }
        if (f) fclose(f);
        /* Ten minutes at most: a renderer that never finishes is a failure. */
        for (int i = 0; render && res.secs > 0 && i < 12000; i++) {
            long pending = renders_pending(data, out);
            if (pending == 0) {
                res.render_secs = now_s() - t0;
                break;
            }
            if (pending < 0) break;
            usleep(50000);
        }
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return res;
}

/* SHA-256 of every file, read() into a buffer, one core; the seconds. */
static double sha_files(const char *dir, int nfiles, bool cold)
{
    char path[700];
    for (int i = 0; cold && i < nfiles; i++) {
        snprintf(path, sizeof path, "%s/IMG_%05d.jpg", dir, i);
        drop_cache(path);
    }
    uint8_t *buf = malloc(1u << 20);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    double t0 = now_s();
    for (int i = 0; i < nfiles; i++) {
        snprintf(path, sizeof path, "%s/IMG_%05d.jpg", dir, i);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        ssize_t n;
        while (fd >= 0 && (n = read(fd, buf, 1u << 20)) > 0) EVP_DigestUpdate(ctx, buf, (size_t)n);
        uint8_t h[32];
        EVP_DigestFinal_ex(ctx, h, NULL);
        if (fd >= 0) close(fd);
    }
    double secs = now_s() - t0;
    EVP_MD_CTX_free(ctx);
    free(buf);
    return secs;
}

/* A durable copy of every file, as a blob store makes one: a new file,
 * written, fsynced, renamed, its directory fsynced. The seconds. */
static double durable_copy(const char *work, const char *dir, int nfiles)
{
    char cdir[600], path[700], tmp[700], dst[700];
    snprintf(cdir, sizeof cdir, "%s/copy", work);
    mkdir(cdir, 0700);
    uint8_t *buf = malloc(1u << 20);
    double t0 = now_s();
    for (int i = 0; i < nfiles; i++) {
        snprintf(path, sizeof path, "%s/IMG_%05d.jpg", dir, i);
        snprintf(tmp, sizeof tmp, "%s/tmp", cdir);
        snprintf(dst, sizeof dst, "%s/%05d", cdir, i);
        int in = open(path, O_RDONLY | O_CLOEXEC);
        int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ssize_t n;
        while (in >= 0 && out >= 0 && (n = read(in, buf, 1u << 20)) > 0) write_all(out, buf, (size_t)n);
        if (out >= 0) fsync(out);
        if (in >= 0) close(in);
        if (out >= 0) close(out);
        rename(tmp, dst);
        int d = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d >= 0) {
            fsync(d);
            close(d);
        }
    }
    double secs = now_s() - t0;
    free(buf);
    return secs;
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 1024;
    if (mib < 16) mib = 16;
    char work[512];
    snprintf(work, sizeof work, "%s/sbx-bench-import-XXXXXX", argc > 2 ? argv[2] : "/tmp");
    if (!mkdtemp(work)) {
        perror("mkdtemp");
        return 1;
    }
    char dir[600];
    snprintf(dir, sizeof dir, "%s/photos", work);
    mkdir(dir, 0700);

    unsigned long jlen = 0;
    unsigned char *jpeg = make_jpeg(&jlen);
    if (!jpeg) {
        fprintf(stderr, "cannot make the sample JPEG\n");
        return 1;
    }
    uint64_t want = (uint64_t)mib << 20, total = 0;
    int nfiles = 0;
    uint8_t com[4 + 32] = {0xFF, 0xFE, 0, 2 + 32};
    while (total < want) {
        char path[700];
        snprintf(path, sizeof path, "%s/IMG_%05d.jpg", dir, nfiles);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        /* SOI, a comment that makes this copy unique, then the rest. */
        char tag[40];
        snprintf(tag, sizeof tag, "shoebox bench copy %012d", nfiles);
        memcpy(com + 4, tag, 32);
        if (fd < 0 || write_all(fd, jpeg, 2) || write_all(fd, com, sizeof com) ||
            write_all(fd, jpeg + 2, jlen - 2) || close(fd)) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
        total += jlen + sizeof com;
        nfiles++;
    }
    tjFree(jpeg);
    printf("%d JPEGs of %.1f MB (4000x3000), %.1f MiB in %s\n", nfiles, (double)(jlen + sizeof com) / 1e6,
           (double)total / (1 << 20), dir);

    /* Written back before anything is measured. */
    sync();
    double mb = (double)total / 1e6;

    double sha_s = sha_files(dir, nfiles, false);
    double sha = mb / sha_s;
    printf("plain SHA-256 of the files, hot (read + hash, 1 core)  %8.1f MB/s  (%.2f s)\n", sha, sha_s);
    struct import_run hot = import_once(work, "hot", dir, true);
    double imp = hot.secs > 0 ? mb / hot.secs : 0;
    printf("shoebox import, hot                                    %8.1f MB/s  (%.2f s, %ld imported, %.1f photos/s)\n",
           imp, hot.secs, hot.imported, hot.secs > 0 ? nfiles / hot.secs : 0);
    double rps = hot.render_secs > 0 ? nfiles / hot.render_secs : 0;
    printf("  thumbnails + mediums rendered in the background       all done %.2f s after the import started "
           "(%.1f photos/s)\n", hot.render_secs, rps);
    int ok = hot.imported == nfiles && hot.render_secs > 0;
    sync();

    double shac_s = sha_files(dir, nfiles, true);
    double shac = mb / shac_s;
    printf("plain SHA-256 of the files, cold                       %8.1f MB/s  (%.2f s)\n", shac, shac_s);
    for (int i = 0; i < nfiles; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/IMG_%05d.jpg", dir, i);
        drop_cache(path);
    }
    struct import_run cold = import_once(work, "cold", dir, false);
    double impc = cold.secs > 0 ? mb / cold.secs : 0;
    printf("shoebox import, cold (no render threads)               %8.1f MB/s  (%.2f s, %ld imported)\n", impc,
           cold.secs, cold.imported);
    ok = ok && cold.imported == nfiles;
    sync();

    double copy_s = durable_copy(work, dir, nfiles);
    double copy = mb / copy_s;
    printf("durable copy of the files (write, fsync, rename, dir fsync; hot reads)  %8.1f MB/s  (%.2f s)\n", copy,
           copy_s);

    double target = 0.7 * sha, target_c = 0.7 * shac;
    printf("BENCH name=sha256_files_mbps value=%.1f unit=MB/s\n", sha);
    printf("BENCH name=import_mbps value=%.1f unit=MB/s target=%.1f ratio=%.2f\n", imp, target, imp / target);
    printf("BENCH name=sha256_files_cold_mbps value=%.1f unit=MB/s\n", shac);
    printf("BENCH name=import_cold_mbps value=%.1f unit=MB/s target=%.1f ratio=%.2f\n", impc, target_c,
           impc / target_c);
    printf("BENCH name=durable_copy_mbps value=%.1f unit=MB/s\n", copy);
    printf("BENCH name=renders_per_s value=%.1f unit=photos/s\n", rps);
    nftw(work, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (!ok) fprintf(stderr, "bench_import: an import did not import every file\n");
    return ok ? 0 : 1;
}
