/* Measures the media module per photo: probe, thumbnail (256) and medium
 * (1280) renditions, and both from one decode as the importer makes them.
 * Runs on every file of fixtures/exif (or the files named on the command
 * line) and on synthetic 12 MP and 24 MP JPEGs, since the fixtures are
 * small. Times are CPU time of this process, decoder threads included, so
 * other processes on a shared machine do not count; each is the median of
 * 3 to 201 runs. Probe in microseconds, renditions in milliseconds. */
#include "shoebox/err.h"
#include "shoebox/media.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <turbojpeg.h>

#ifndef SBX_SHARED_DIR
#define SBX_SHARED_DIR "../shared"
#endif

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAX_RUNS 201

/* Median time of `fn` over enough runs to fill about 300 ms (3..201 runs). */
typedef int (*bench_fn)(const uint8_t *b, size_t n, unsigned arg);

static double measure(bench_fn fn, const uint8_t *b, size_t n, unsigned arg, int *rc)
{
    static double t[MAX_RUNS];
    double start = now_ms();
    int runs = 0;
    while (runs < MAX_RUNS && (runs < 3 || now_ms() - start < 300.0)) {
        double t0 = now_ms();
        *rc = fn(b, n, arg);
        t[runs++] = now_ms() - t0;
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    return t[runs / 2];
}

static int do_probe(const uint8_t *b, size_t n, unsigned arg)
{
    (void)arg;
    struct sbx_media_info info;
    return sbx_media_probe(b, n, &info);
}

static int do_render(const uint8_t *b, size_t n, unsigned max_px)
{
    uint8_t *j = NULL;
    size_t jl = 0;
    int rc = sbx_media_render(b, n, max_px, 85, &j, &jl);
    free(j);
    return rc;
}

/* Both renditions from one decode, as the importer makes them. */
static int do_pair(const uint8_t *b, size_t n, unsigned arg)
{
    (void)arg;
    static const unsigned sizes[2] = {SBX_MEDIA_THUMB_PX, SBX_MEDIA_MEDIUM_PX};
    uint8_t *j[2];
    size_t jl[2];
    int rc = sbx_media_render_sizes(b, n, sizes, 2, 85, j, jl);
    if (rc == 0) {
        free(j[0]);
        free(j[1]);
    }
    return rc;
}

static void bench_one(const char *name, const uint8_t *b, size_t n)
{
    struct sbx_media_info info;
    sbx_media_probe(b, n, &info);
    int rc1, rc2, rc3, rc4;
    double probe = measure(do_probe, b, n, 0, &rc1);
    double thumb = measure(do_render, b, n, SBX_MEDIA_THUMB_PX, &rc2);
    double medium = measure(do_render, b, n, SBX_MEDIA_MEDIUM_PX, &rc3);
    double pair = measure(do_pair, b, n, 0, &rc4);
    printf("%-28s %10s %5ux%-5u %8.1f %8.2f %8.2f %8.2f%s\n", name, info.mime ? info.mime : "?",
           info.width, info.height, probe * 1000.0, thumb, medium, pair,
           rc1 || rc2 || rc3 || rc4 ? "  (error)" : "");
}

static void bench_file(const char *path)
{
    uint8_t *b;
    size_t n;
    if (sbx_file_read(path, 1u << 30, &b, &n) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        return;
    }
    const char *base = strrchr(path, '/');
    bench_one(base ? base + 1 : path, b, n);
    free(b);
}

/* A camera-sized JPEG: smooth gradients plus fine noise, quality 92, 4:2:0,
 * which lands near the size of a phone's 12 MP photo (3 to 5 MB). */
static uint8_t *synthetic_jpeg(int w, int h, size_t *len)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    uint64_t s = 0x243f6a8885a308d3ull;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            int noise = (int)(s & 31) - 16;
            int r = x * 255 / w + noise, g = y * 255 / h + noise, bl = ((x ^ y) & 255) / 2 + 64 + noise;
            p[0] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
            p[1] = (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
            p[2] = (uint8_t)(bl < 0 ? 0 : bl > 255 ? 255 : bl);
        }
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long jl = 0;
    if (tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpg, &jl, TJSAMP_420, 92, 0) != 0) abort();
    tjDestroy(tj);
    free(rgb);
    uint8_t *out = malloc(jl);
    memcpy(out, jpg, jl);
    tjFree(jpg);
    *len = jl;
    return out;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    printf("%-28s %10s %11s %8s %8s %8s %8s\n", "file", "type", "size", "probe", "thumb",
           "medium", "1 decode");
    printf("%-28s %10s %11s %8s %8s %8s %8s\n", "", "", "", "us", "256 ms", "1280 ms", "both ms");
    if (argc > 1) {
        for (int i = 1; i < argc; i++) bench_file(argv[i]);
        return 0;
    }
    const char *shared = getenv("SHOEBOX_SHARED");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fixtures/exif", shared ? shared : SBX_SHARED_DIR);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "cannot open %s (set SHOEBOX_SHARED)\n", dir);
        return 1;
    }
    struct dirent *de;
    char *names[256];
    size_t nn = 0;
    while ((de = readdir(d)) != NULL && nn < 256)
        if (de->d_name[0] != '.') names[nn++] = strdup(de->d_name);
    closedir(d);
    qsort(names, nn, sizeof names[0], cmp_name);
    for (size_t i = 0; i < nn; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        bench_file(path);
        free(names[i]);
    }
    static const struct {
        const char *name;
        int w, h;
    } synth[] = {{"synthetic 12 MP", 4032, 3024}, {"synthetic 24 MP", 6000, 4000}};
    for (size_t i = 0; i < sizeof synth / sizeof synth[0]; i++) {
        size_t n;
        uint8_t *b = synthetic_jpeg(synth[i].w, synth[i].h, &n);
        bench_one(synth[i].name, b, n);
        printf("%-28s %.1f MB\n", "", n / 1e6);
        free(b);
    }
    return 0;
}
