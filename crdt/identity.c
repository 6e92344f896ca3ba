#include "shoebox/identity.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

/* Key file layout: an 8-byte magic, the 32-byte Ed25519 seed, and a 16-byte
 * BLAKE2b checksum of both, so a damaged file is told apart from a wrong key. */
#define KEY_MAGIC "SBXKEY1\n"
#define KEY_FILE_LEN (8 + 32 + 16)

static void checksum(uint8_t out[16], const uint8_t *data, size_t len)
{
    crypto_generichash(out, 16, data, len, NULL, 0);
}

int sbx_identity_create(const char *path, struct sbx_identity *out)
{
    uint8_t file[KEY_FILE_LEN];
    struct stat st;
    if (stat(path, &st) == 0) return SBX_EEXIST;
    memcpy(file, KEY_MAGIC, 8);
    randombytes_buf(file + 8, 32);
    checksum(file + 40, file, 40);
    crypto_sign_seed_keypair(out->pk, out->sk, file + 8);
    int rc = sbx_file_write_atomic(path, file, sizeof file, 0600);
    sodium_memzero(file, sizeof file);
    if (rc != 0) sbx_identity_wipe(out);
    return rc;
}

int sbx_identity_load(const char *path, struct sbx_identity *out)
{
    struct stat st;
    if (stat(path, &st) != 0) return sbx_err_from_errno(errno);
    /* Like ssh, refuse a secret key that others can read: it may already
     * have leaked, and silently using it would hide that. */
    if (st.st_mode & 077) return SBX_EPERM;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sbx_file_read(path, 4096, &buf, &len);
    if (rc != 0) return rc;
    uint8_t sum[16];
    if (len != KEY_FILE_LEN || memcmp(buf, KEY_MAGIC, 8) != 0) {
        rc = SBX_ECORRUPT;
        goto out;
    }
    checksum(sum, buf, 40);
    if (sodium_memcmp(sum, buf + 40, 16) != 0) {
        rc = SBX_ECORRUPT;
        goto out;
    }
    crypto_sign_seed_keypair(out->pk, out->sk, buf + 8);
out:
    sodium_memzero(buf, len);
    free(buf);
    return rc;
}

void sbx_identity_wipe(struct sbx_identity *id) { sodium_memzero(id, sizeof *id); }
