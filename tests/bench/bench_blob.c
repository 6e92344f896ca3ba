/* Blob store micro benchmark: ingest throughput against the SHA-256 floor.
 *
 *   bench_blob [dir]   (default: a fresh directory under /tmp)
 *
 * 256 MiB as 64 distinct random 4 MiB buffers (photo-sized blobs). Times:
 *   - plain SHA-256 (libcrypto) of the same bytes: the floor of any ingest;
 *   - SHA-256 whole + per-chunk, in memory: the hashing an ingest must do;
 *   - sbx_blob_put_buf into a fresh store: hashes, temp file, fsync, rename,
 *     directory fsync, one SQLite transaction per blob;
 *   - put_buf of blobs already held (hash, lookup, no write);
 *   - sbx_blob_put_file from files on the same disk (read + copy);
 *   - a partial transfer through the sbx_blob_partial handle: partial_begin,
 *     open, put per 1 MiB chunk (verify, pwrite, whole hash as chunks land),
 *     install (fsync, rename) and record; with a flush and a record after
 *     every chunk, or one sync per blob (install's).
 * The disk is whatever `dir` lives on; fsync cost dominates on slow disks. */
#include "shoebox/blob.h"
#include "shoebox/err.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <ftw.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOB (4u << 20)
#define NBLOBS 64
#define TOTAL ((double)BLOB * NBLOBS)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *what, double secs)
{
    printf("%-44s %8.1f MB/s  (%.3f s for %.0f MiB)\n", what, TOTAL / secs / 1e6, secs,
           TOTAL / (1 << 20));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) return 1;
    char dir[512];
    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s/sbx-bench-blob-XXXXXX", argv[1]);
    } else {
        snprintf(dir, sizeof dir, "/tmp/sbx-bench-blob-XXXXXX");
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    uint8_t **bufs = malloc(NBLOBS * sizeof *bufs);
    uint8_t (*hashes)[32] = malloc(NBLOBS * 32);
    SBX_ASSERT(bufs && hashes);
    for (int i = 0; i < NBLOBS; i++) {
        bufs[i] = malloc(BLOB);
        SBX_ASSERT(bufs[i]);
        randombytes_buf(bufs[i], BLOB);
    }

    /* The floor: one SHA-256 over every byte. */
    uint8_t out[32];
    double t0 = now_s();
    for (int i = 0; i < NBLOBS; i++) {
        SBX_ASSERT(EVP_Digest(bufs[i], BLOB, hashes[i], NULL, EVP_sha256(), NULL) == 1);
    }
    report("plain SHA-256 (libcrypto)", now_s() - t0);

    /* What an ingest must hash: the whole, plus chunks 1.. of each blob
     * (chunk 0's hash falls out of the whole-blob state). */
    t0 = now_s();
    for (int i = 0; i < NBLOBS; i++) {
        SBX_ASSERT(EVP_Digest(bufs[i], BLOB, out, NULL, EVP_sha256(), NULL) == 1);
        for (uint32_t off = SBX_BLOB_CHUNK; off < BLOB; off += SBX_BLOB_CHUNK)
            SBX_ASSERT(EVP_Digest(bufs[i] + off, SBX_BLOB_CHUNK, out, NULL, EVP_sha256(), NULL) == 1);
    }
    report("SHA-256 whole + chunks 1.. (in memory)", now_s() - t0);

    char db[600], err[256];
    snprintf(db, sizeof db, "%s/shoebox.db", dir);
    sbx_store *s;
    sbx_blobstore *bs;
    SBX_ASSERT(sbx_store_open(&s, db, SBX_STORE_CREATE, err, sizeof err) == 0);
    SBX_ASSERT(sbx_blobstore_open(&bs, dir, s) == 0);

    bool existed;
    t0 = now_s();
    for (int i = 0; i < NBLOBS; i++) {
        SBX_ASSERT(sbx_blob_put_buf(bs, bufs[i], BLOB, SBX_BLOB_ORIGINAL, out, &existed) == 0);
        SBX_ASSERT(!existed && memcmp(out, hashes[i], 32) == 0);
    }
    report("sbx_blob_put_buf, new blobs", now_s() - t0);

    t0 = now_s();
    for (int i = 0; i < NBLOBS; i++) {
        SBX_ASSERT(sbx_blob_put_buf(bs, bufs[i], BLOB, SBX_BLOB_ORIGINAL, out, &existed) == 0);
        SBX_ASSERT(existed);
    }
    report("sbx_blob_put_buf, already held", now_s() - t0);

    t0 = now_s();
    for (int i = 0; i < NBLOBS; i++) SBX_ASSERT(sbx_blob_verify(bs, hashes[i]) == 0);
    report("sbx_blob_verify (page cache warm)", now_s() - t0);

    /* put_file: delete the blobs, write them out as source files, ingest. */
    char src[700];
    for (int i = 0; i < NBLOBS; i++) {
        SBX_ASSERT(sbx_blob_delete(bs, hashes[i]) == 0);
        snprintf(src, sizeof src, "%s/src-%d", dir, i);
        SBX_ASSERT(sbx_file_write_atomic(src, bufs[i], BLOB, 0600) == 0);
    }
    t0 = now_s();
    for (int i = 0; i < NBLOBS; i++) {
        snprintf(src, sizeof src, "%s/src-%d", dir, i);
        SBX_ASSERT(sbx_blob_put_file(bs, src, NULL, SBX_BLOB_ORIGINAL, out, &existed) == 0);
        SBX_ASSERT(!existed && memcmp(out, hashes[i], 32) == 0);
    }
    report("sbx_blob_put_file (source in page cache)", now_s() - t0);

    /* A transfer: chunk list known, chunks arrive one by one through a
     * handle. Pass 0 makes every chunk durable and recorded as it lands (a
     * flush and a record per chunk); pass 1 leaves that to install, whose
     * fsync covers the whole blob. */
    uint8_t chunks[4 * 32];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < NBLOBS; i++) SBX_ASSERT(sbx_blob_delete(bs, hashes[i]) == 0);
        t0 = now_s();
        for (int i = 0; i < NBLOBS; i++) {
            for (uint32_t c = 0; c < 4; c++)
                sbx_blob_sha256(bufs[i] + c * SBX_BLOB_CHUNK, SBX_BLOB_CHUNK, chunks + c * 32);
            SBX_ASSERT(sbx_blob_partial_begin(bs, hashes[i], BLOB, SBX_BLOB_ORIGINAL, chunks, 4) == 0);
            sbx_blob_partial *p = NULL;
            SBX_ASSERT(sbx_blob_partial_open(bs, hashes[i], &p) == 0);
            for (uint32_t c = 0; c < 4; c++) {
                SBX_ASSERT(sbx_blob_partial_put(p, c, bufs[i] + c * SBX_BLOB_CHUNK, SBX_BLOB_CHUNK) == 0);
                if (pass == 0) SBX_ASSERT(sbx_blob_partial_flush(p) == 0 && sbx_blob_partial_record(p) == 0);
            }
            SBX_ASSERT(sbx_blob_partial_install(p) == 0 && sbx_blob_partial_record(p) == 0);
            sbx_blob_partial_close(p);
        }
        report(pass ? "partial handle, one sync per blob (install)" : "partial handle, flush + record per chunk",
               now_s() - t0);
        for (int i = 0; i < NBLOBS; i++) SBX_ASSERT(sbx_blob_has(bs, hashes[i]) == 0);
    }

    sbx_blobstore_close(bs);
    sbx_store_close(s);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < NBLOBS; i++) free(bufs[i]);
    free(bufs);
    free(hashes);
    return 0;
}
