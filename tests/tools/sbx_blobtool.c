/* Test tool for encryption at rest (tests/integration/encryption.sh).
 *
 *   sbx-blobtool put DATA_DIR FILE...     store files as original blobs
 *   sbx-blobtool get DATA_DIR HEX OUT     read a blob back into OUT
 *   sbx-blobtool verify DATA_DIR HEX      re-hash a blob from disk
 *   sbx-blobtool partial DATA_DIR FILE [installed]
 *                                         leave FILE as a partial original
 *                                         blob with every chunk present (as
 *                                         a transfer killed before its
 *                                         install would); "installed": in
 *                                         place under its name but not
 *                                         recorded (an install whose record
 *                                         step failed)
 *   sbx-blobtool scan DIR [-s STRING]... [-d NUMBER]... [-w FILE]...
 *
 * put/get/verify open the data dir's store and blob store as the daemon
 * does (the passphrase from $SHOEBOX_PASSPHRASE when the key is sealed),
 * with the daemon stopped. They stand in for the importer until it stores
 * blobs itself, and let the test read a blob after flipping a bit in it.
 *
 * scan looks for known plaintext in every regular file under DIR, binary
 * safe: each STRING as bytes; each NUMBER as text and as an IEEE double in
 * both byte orders (SQLite and msgpack store REALs big-endian); and from
 * each FILE, 64-byte windows at 16 offsets spread over it. It prints every
 * hit and exits 1 when there is any, 0 when there is none. */
#include "shoebox/blob.h"
#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/identity.h"
#include "shoebox/store.h"
#include "shoebox/util.h"

#include <ftw.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_NEEDLES 4096
#define WINDOW 64
#define WINDOWS_PER_FILE 16

struct needle {
    uint8_t bytes[WINDOW];
    size_t len;
    char what[300];
};

static struct needle needles[MAX_NEEDLES];
static size_t n_needles;
static int hits, files_scanned;

static void add_needle(const void *bytes, size_t len, const char *what)
{
    if (n_needles == MAX_NEEDLES || len == 0 || len > WINDOW) {
        fprintf(stderr, "sbx-blobtool: cannot search for %s\n", what);
        exit(2);
    }
    struct needle *n = &needles[n_needles++];
    memcpy(n->bytes, bytes, len);
    n->len = len;
    snprintf(n->what, sizeof n->what, "%s", what);
}

static int scan_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(st->st_mode)) return 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (sbx_file_read(path, (size_t)1 << 32, &buf, &len) != 0) {
        fprintf(stderr, "sbx-blobtool: cannot read %s\n", path);
        hits++;
        return 0;
    }
    files_scanned++;
    for (size_t i = 0; i < n_needles; i++) {
        if (memmem(buf, len, needles[i].bytes, needles[i].len)) {
            printf("FOUND %s in %s\n", needles[i].what, path);
            hits++;
        }
    }
    free(buf);
    return 0;
}

static void be_double(uint8_t out[8], double v, bool big)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    for (int i = 0; i < 8; i++) out[big ? i : 7 - i] = (uint8_t)(u >> (56 - 8 * i));
}

static int cmd_scan(int argc, char **argv)
{
    const char *dir = argv[0];
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        char what[300];
        if (strcmp(opt, "-s") == 0) {
            snprintf(what, sizeof what, "string \"%s\"", val);
            add_needle(val, strlen(val), what);
        } else if (strcmp(opt, "-d") == 0) {
            double v = strtod(val, NULL);
            uint8_t b[8];
            snprintf(what, sizeof what, "number %s as text", val);
            add_needle(val, strlen(val), what);
            be_double(b, v, true);
            snprintf(what, sizeof what, "number %s as a big-endian double", val);
            add_needle(b, 8, what);
            be_double(b, v, false);
            snprintf(what, sizeof what, "number %s as a little-endian double", val);
            add_needle(b, 8, what);
        } else if (strcmp(opt, "-w") == 0) {
            uint8_t *buf = NULL;
            size_t len = 0;
            if (sbx_file_read(val, 1u << 30, &buf, &len) != 0) {
                fprintf(stderr, "sbx-blobtool: cannot read %s\n", val);
                return 2;
            }
            if (len < WINDOW) {
                snprintf(what, sizeof what, "all of %s", val);
                add_needle(buf, len, what);
            }
            for (size_t k = 0; len >= WINDOW && k < WINDOWS_PER_FILE; k++) {
                size_t off = (len - WINDOW) * k / (WINDOWS_PER_FILE - 1);
                snprintf(what, sizeof what, "bytes %zu..%zu of %s", off, off + WINDOW, val);
                add_needle(buf + off, WINDOW, what);
            }
            free(buf);
        } else {
            fprintf(stderr, "sbx-blobtool: unknown scan option %s\n", opt);
            return 2;
        }
    }
    nftw(dir, scan_one, 32, FTW_PHYS);
    printf("scanned %d files for %zu patterns: %d found\n", files_scanned, n_needles, hits);
    return hits ? 1 : 0;
}

/* Opens the data dir's store (encrypted when its key is sealed) and blob
 * store. */
static int open_dir(const char *dir, sbx_store **s, sbx_blobstore **bs)
{
    char key[4096], db[4096], err[512] = "";
    sbx_datadir_path(key, sizeof key, dir, SBX_FILE_KEY);
    sbx_datadir_path(db, sizeof db, dir, SBX_FILE_DB);
    const char *pass = getenv("SHOEBOX_PASSPHRASE");
    struct sbx_identity id;
    uint8_t storage_key[32];
    bool sealed = false;
    int rc = sbx_identity_unseal(key, pass, pass ? strlen(pass) : 0, &id, storage_key, &sealed);
    sbx_identity_wipe(&id);
    if (rc != 0) {
        fprintf(stderr, "sbx-blobtool: key: %s\n", sbx_strerror(rc));
        return rc;
    }
    rc = sbx_store_open_key(s, db, 0, sealed ? storage_key : NULL, err, sizeof err);
    sodium_memzero(storage_key, sizeof storage_key);
    if (rc == 0) rc = sbx_blobstore_open(bs, dir, *s);
    if (rc != 0) fprintf(stderr, "sbx-blobtool: %s %s\n", sbx_strerror(rc), err);
    return rc;
}

/* A partial blob of FILE with every chunk present; installed: the handle
 * also installs it (verified, renamed into place) and is closed without
 * recording that. Prints the blob's hash. */
static int cmd_partial(sbx_blobstore *bs, const char *path, bool installed)
{
    uint8_t *buf = NULL, hash[32], *chunks = NULL;
    size_t len = 0;
    sbx_blob_partial *p = NULL;
    int rc = sbx_file_read(path, 1u << 30, &buf, &len);
    size_t n = (len + SBX_BLOB_CHUNK - 1) / SBX_BLOB_CHUNK;
    if (rc == 0 && !(chunks = malloc(n * 32 + 1))) rc = SBX_ENOMEM;
    if (rc != 0) goto fail;
    sbx_blob_sha256(buf, len, hash);
    for (size_t i = 0; i < n; i++) {
        size_t off = i * SBX_BLOB_CHUNK, cl = len - off < SBX_BLOB_CHUNK ? len - off : SBX_BLOB_CHUNK;
        sbx_blob_sha256(buf + off, cl, chunks + i * 32);
    }
    if ((rc = sbx_blob_partial_begin(bs, hash, len, SBX_BLOB_ORIGINAL, chunks, n)) != 0) goto fail;
    if ((rc = sbx_blob_partial_open(bs, hash, &p)) != 0) goto fail;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t off = i * SBX_BLOB_CHUNK, cl = len - off < SBX_BLOB_CHUNK ? len - off : SBX_BLOB_CHUNK;
        rc = sbx_blob_partial_put(p, (uint32_t)i, buf + off, cl);
    }
    /* Installed: in place, never recorded. Otherwise every chunk made
     * durable and recorded present, the blob left partial. */
    if (rc == 0) rc = installed ? sbx_blob_partial_install(p) : sbx_blob_partial_flush(p);
    if (rc == 0 && !installed) rc = sbx_blob_partial_record(p);
fail:
    sbx_blob_partial_close(p);
    free(chunks);
    free(buf);
    if (rc != 0) {
        fprintf(stderr, "sbx-blobtool: partial %s: %s\n", path, sbx_strerror(rc));
        return 1;
    }
    char hex[65];
    sbx_hex_encode(hex, hash, 32);
    printf("%s\n", hex);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0 || argc < 3) {
        fprintf(stderr, "usage: sbx-blobtool put|get|verify|partial|scan DIR ...\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "scan") == 0) return cmd_scan(argc - 2, argv + 2);
    sbx_store *s = NULL;
    sbx_blobstore *bs = NULL;
    int rc = open_dir(argv[2], &s, &bs);
    if (rc != 0) return 1;
    int status = 0;
    if (strcmp(cmd, "put") == 0) {
        for (int i = 3; i < argc; i++) {
            uint8_t hash[32];
            char hex[65];
            rc = sbx_blob_put_file(bs, argv[i], NULL, SBX_BLOB_ORIGINAL, hash, NULL);
            if (rc != 0) {
                fprintf(stderr, "sbx-blobtool: put %s: %s\n", argv[i], sbx_strerror(rc));
                status = 1;
                continue;
            }
            sbx_hex_encode(hex, hash, 32);
            printf("%s %s\n", hex, argv[i]);
        }
    } else if ((strcmp(cmd, "get") == 0 && argc == 5) || (strcmp(cmd, "verify") == 0 && argc == 4)) {
        uint8_t hash[32];
        if (sbx_hex_decode(hash, 32, argv[3]) != 0) {
            fprintf(stderr, "sbx-blobtool: not a hash: %s\n", argv[3]);
            status = 2;
        } else if (cmd[0] == 'v') {
            rc = sbx_blob_verify(bs, hash);
            printf("%s\n", rc == 0 ? "ok" : sbx_strerror(rc));
            status = rc ? 1 : 0;
        } else {
            struct sbx_blob_info info;
            uint8_t *buf = NULL;
            size_t got = 0;
            rc = sbx_blob_stat(bs, hash, &info);
            if (rc == 0 && !(buf = malloc(info.size + 1))) rc = SBX_ENOMEM;
            if (rc == 0) rc = sbx_blob_read(bs, hash, 0, buf, info.size, &got);
            if (rc == 0) rc = sbx_file_write_atomic(argv[4], buf, got, 0600);
            if (rc != 0) {
                fprintf(stderr, "sbx-blobtool: get: %s\n", sbx_strerror(rc));
                status = 1;
            }
            free(buf);
        }
    } else if (strcmp(cmd, "partial") == 0 && (argc == 4 || (argc == 5 && strcmp(argv[4], "installed") == 0))) {
        status = cmd_partial(bs, argv[3], argc == 5);
    } else {
        fprintf(stderr, "sbx-blobtool: bad command\n");
        status = 2;
    }
    sbx_blobstore_close(bs);
    sbx_store_close(s);
    return status;
}
