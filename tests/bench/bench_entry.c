/* Entry codec throughput: builds 100,000 photo.put ops into entries (256 per
 * entry), then decodes and verifies them all, several rounds, and reports
 * ops/s. For comparison it also times the two costs the decoder cannot avoid,
 * Ed25519 verification and BLAKE2b over the same bytes.
 *   bench_entry [n_photos] [rounds] */
#include "shoebox/entry.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct sbx_str S(const char *s)
{
    return (struct sbx_str){s, (uint32_t)strlen(s)};
}

/* A photo.put shaped like an import from a phone: every fact present,
 * realistic strings. */
static void make_put(struct sbx_op *o, uint32_t i, char name[32])
{
    memset(o, 0, sizeof *o);
    o->type = SBX_OP_PHOTO_PUT;
    randombytes_buf(o->id, sizeof o->id);
    randombytes_buf(o->facts.hash, sizeof o->facts.hash);
    o->facts.size_bytes = 2500000 + (i * 7919u) % 3000000;
    o->facts.width = 4032;
    o->facts.height = 3024;
    o->facts.has_captured_at = true;
    o->facts.captured_at_ms = 1600000000000ll + (int64_t)i * 61000;
    o->facts.has_location = true;
    o->facts.lat = 48.8566 + (double)(i % 1000) / 10000.0;
    o->facts.lon = 2.3522 - (double)(i % 777) / 10000.0;
    o->facts.orientation = (uint8_t)(1 + i % 8);
    o->facts.mime_type = S("image/jpeg");
    snprintf(name, 32, "IMG_%08u.JPG", i);
    o->facts.file_name = S(name);
    o->facts.camera_make = S("Apple");
    o->facts.camera_model = S("iPhone 13 Pro");
}

int main(int argc, char **argv)
{
    uint32_t n_photos = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 100000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (n_photos == 0 || rounds <= 0 || sodium_init() < 0) {
        fprintf(stderr, "usage: bench_entry [n_photos] [rounds]\n");
        return 2;
    }
    uint8_t pk[32], sk[64], lib[16], prev[32] = {0};
    crypto_sign_keypair(pk, sk);
    randombytes_buf(lib, sizeof lib);

    size_t cap = n_photos / SBX_MAX_OPS_PER_ENTRY + 2, n_entries = 0, total_bytes = 0;
    struct sbx_entry **es = calloc(cap, sizeof *es);
    if (!es) return 1;

    /* Build. */
    double t0 = now_s();
    sbx_entry_builder *b = NULL;
    uint64_t seq = 1;
    char name[32];
    struct sbx_op op;
    if (sbx_entry_builder_new(&b, lib, pk, seq, prev, (uint64_t)1 << 40) != 0) return 1;
    for (uint32_t i = 0; i <= n_photos; i++) {
        int rc = 0;
        if (i < n_photos) {
            make_put(&op, i, name);
            rc = sbx_entry_builder_add(b, &op);
            if (rc == 0) continue;
            if (rc != SBX_ETOOBIG) return 1;
        }
        if (n_entries == cap || sbx_entry_builder_finish(b, sk, &es[n_entries]) != 0) return 1;
        memcpy(prev, es[n_entries]->hash, 32);
        total_bytes += es[n_entries]->raw_len;
        n_entries++;
        sbx_entry_builder_free(b);
        b = NULL;
        if (i < n_photos) {
            if (sbx_entry_builder_new(&b, lib, pk, ++seq, prev, (uint64_t)1 << 40) != 0) return 1;
            if (sbx_entry_builder_add(b, &op) != 0) return 1;
        }
    }
    double t_build = now_s() - t0;
    printf("built %u photo.put ops into %zu entries, %zu bytes (%.1f bytes/op) in %.3f s: %.0f ops/s\n",
           n_photos, n_entries, total_bytes, (double)total_bytes / n_photos, t_build,
           n_photos / t_build);

    /* Decode + verify (+ hash, + canonical check), best of `rounds`. */
    double best = 1e9;
    for (int r = 0; r < rounds; r++) {
        t0 = now_s();
        for (size_t k = 0; k < n_entries; k++) {
            struct sbx_entry *d = NULL;
            if (sbx_entry_decode(es[k]->raw, es[k]->raw_len, &d) != 0) {
                fprintf(stderr, "decode failed\n");
                return 1;
            }
            sbx_entry_free(d);
        }
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    printf("decode+verify: %.0f ops/s, %.0f entries/s, %.0f MB/s (best of %d rounds, %.3f s)\n",
           n_photos / best, n_entries / best, total_bytes / best / 1e6, rounds, best);

    /* The floor: what Ed25519 and BLAKE2b alone cost on the same bytes. */
    double t_ver = 1e9, t_hash = 1e9;
    for (int r = 0; r < rounds; r++) {
        t0 = now_s();
        for (size_t k = 0; k < n_entries; k++) {
            size_t body = es[k]->raw_len - SBX_SIG_BYTES;
            if (crypto_sign_verify_detached(es[k]->raw + body, es[k]->raw, body, pk) != 0) return 1;
        }
        double t = now_s() - t0;
        if (t < t_ver) t_ver = t;
        t0 = now_s();
        uint8_t h[32];
        for (size_t k = 0; k < n_entries; k++)
            crypto_generichash(h, 32, es[k]->raw, es[k]->raw_len, NULL, 0);
        t = now_s() - t0;
        if (t < t_hash) t_hash = t;
    }
    printf("of which unavoidable: Ed25519 verify %.3f s + BLAKE2b %.3f s = %.0f%% of decode; "
           "parse, checks and canonical re-encode: %.1f us/entry\n",
           t_ver, t_hash, 100.0 * (t_ver + t_hash) / best,
           (best - t_ver - t_hash) / n_entries * 1e6);

    for (size_t k = 0; k < n_entries; k++) sbx_entry_free(es[k]);
    free(es);
    return 0;
}
