/* Replays a harness without libFuzzer: every file of the corpus directory
 * given as argv[1], then a fixed number of pseudo-random mutations of them.
 * It prints one TAP point per phase so the test run counts it. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DRIVER_MAX_INPUT (1u << 20)
#define MUTATIONS 20000u

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

int main(int argc, char **argv)
{
    static uint8_t seeds[64][4096];
    static size_t seed_len[64];
    size_t nseeds = 0, replayed = 0;
    printf("TAP version 13\n1..2\n");
    if (argc > 1) {
        DIR *d = opendir(argv[1]);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
            FILE *f = fopen(path, "rb");
            if (!f) continue;
            uint8_t *buf = malloc(DRIVER_MAX_INPUT);
            size_t n = fread(buf, 1, DRIVER_MAX_INPUT, f);
            fclose(f);
            LLVMFuzzerTestOneInput(buf, n);
            replayed++;
            if (nseeds < 64) {
                seed_len[nseeds] = n < 4096 ? n : 4096;
                memcpy(seeds[nseeds], buf, seed_len[nseeds]);
                nseeds++;
            }
            free(buf);
        }
        if (d) closedir(d);
    }
    printf("ok 1 - replayed %zu corpus files\n", replayed);
    uint8_t buf[4096];
    for (unsigned i = 0; i < MUTATIONS; i++) {
        size_t n;
        if (nseeds && (rng() & 3)) {
            size_t s = rng() % nseeds;
            n = seed_len[s];
            memcpy(buf, seeds[s], n);
            unsigned flips = 1 + rng() % 8;
            for (unsigned k = 0; k < flips && n; k++) buf[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
            if (rng() % 4 == 0 && n) n = rng() % n;
        } else {
            n = rng() % sizeof buf;
            for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)rng();
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("ok 2 - %u mutated inputs\n", MUTATIONS);
    return 0;
}
