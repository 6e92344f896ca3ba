#include "shoebox/identity.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

/* Plain key file layout: an 8-byte magic, the 32-byte Ed25519 seed, and a
 * 16-byte BLAKE2b checksum of both, so a damaged file is told apart from a
 * wrong key. */
#define KEY_MAGIC "SBXKEY1\n"
#define KEY_FILE_LEN (8 + 32 + 16)

/* Sealed key file layout (SBX_SEALED_KEY_FILE_LEN = 160 bytes):
 *     0   8  magic "SBXKEY2\n"
 *     8   1  KDF: 1 = Argon2id v1.3
 *     9   3  zero
 *    12   4  Argon2id passes, little-endian
 *    16   8  Argon2id memory in bytes, little-endian
 *    24  16  salt
 *    40  24  nonce
 *    64  64  sealed: Ed25519 seed (32) || storage key (32)
 *   128  16  tag (XChaCha20-Poly1305, bytes 0..63 as associated data)
 *   144  16  BLAKE2b-128 of bytes 0..143
 * The checksum tells damage (SBX_ECORRUPT) from a wrong passphrase
 * (SBX_ECRYPTO): both would otherwise fail the tag alike. */
#define SEALED_MAGIC "SBXKEY2\n"
#define SEALED_LEN SBX_SEALED_KEY_FILE_LEN
#define KDF_ARGON2ID13 1
#define KEY_FILE_MAX 4096

_Static_assert(SEALED_LEN == 160, "sealed key file layout");

static void checksum(uint8_t out[16], const uint8_t *data, size_t len)
{
    crypto_generichash(out, 16, data, len, NULL, 0);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
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

/* Reads a key file after the permission check. */
static int read_key_file(const char *path, uint8_t **buf, size_t *len)
{
    struct stat st;
    if (stat(path, &st) != 0) return sbx_err_from_errno(errno);
    /* Like ssh, refuse a secret key that others can read: it may already
     * have leaked, and silently using it would hide that. */
    if (st.st_mode & 077) return SBX_EPERM;
    return sbx_file_read(path, KEY_FILE_MAX, buf, len);
}

static void free_key_file(uint8_t *buf, size_t len)
{
    if (buf) sodium_memzero(buf, len);
    free(buf);
}

static int load_plain(const uint8_t *buf, size_t len, struct sbx_identity *out)
{
    uint8_t sum[16];
    if (len != KEY_FILE_LEN || memcmp(buf, KEY_MAGIC, 8) != 0) return SBX_ECORRUPT;
    checksum(sum, buf, 40);
    if (sodium_memcmp(sum, buf + 40, 16) != 0) return SBX_ECORRUPT;
    crypto_sign_seed_keypair(out->pk, out->sk, buf + 8);
    return 0;
}

static bool is_sealed(const uint8_t *buf, size_t len) { return len >= 8 && memcmp(buf, SEALED_MAGIC, 8) == 0; }

int sbx_identity_load(const char *path, struct sbx_identity *out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_key_file(path, &buf, &len);
    if (rc != 0) return rc;
    rc = is_sealed(buf, len) ? SBX_ELOCKED : load_plain(buf, len, out);
    free_key_file(buf, len);
    return rc;
}

void sbx_identity_wipe(struct sbx_identity *id) { sodium_memzero(id, sizeof *id); }

/* ---- Sealed key files ------------------------------------------------------ */

int sbx_sealed_key_parse(const uint8_t *buf, size_t len, struct sbx_sealed_key *out)
{
    uint8_t sum[16];
    if (len != SEALED_LEN || !is_sealed(buf, len)) return SBX_ECORRUPT;
    checksum(sum, buf, SEALED_LEN - 16);
    if (sodium_memcmp(sum, buf + SEALED_LEN - 16, 16) != 0) return SBX_ECORRUPT;
    if (buf[8] != KDF_ARGON2ID13) return SBX_EUNSUPPORTED;
    if (buf[9] | buf[10] | buf[11]) return SBX_ECORRUPT;
    out->opslimit = get_le32(buf + 12);
    out->memlimit = get_le64(buf + 16);
    if (out->opslimit < crypto_pwhash_OPSLIMIT_MIN || out->opslimit > SBX_KDF_MAX_OPSLIMIT ||
        out->memlimit < crypto_pwhash_MEMLIMIT_MIN || out->memlimit > SBX_KDF_MAX_MEMLIMIT)
        return SBX_ECORRUPT;
    memcpy(out->salt, buf + 24, 16);
    memcpy(out->nonce, buf + 40, 24);
    memcpy(out->ad, buf, 64);
    memcpy(out->sealed, buf + 64, 64);
    memcpy(out->tag, buf + 128, 16);
    return 0;
}

static int kdf_params(const struct sbx_kdf_params *in, uint32_t *ops, uint64_t *mem)
{
    *ops = in && in->opslimit ? in->opslimit : crypto_pwhash_OPSLIMIT_MODERATE;
    *mem = in && in->memlimit ? in->memlimit : crypto_pwhash_MEMLIMIT_MODERATE;
    if (*ops < crypto_pwhash_OPSLIMIT_MIN || *ops > SBX_KDF_MAX_OPSLIMIT || *mem < crypto_pwhash_MEMLIMIT_MIN ||
        *mem > SBX_KDF_MAX_MEMLIMIT)
        return SBX_EINVAL;
    return 0;
}

static int derive_kek(uint8_t kek[32], const char *pass, size_t passlen, const uint8_t salt[16], uint32_t ops,
                      uint64_t mem)
{
    _Static_assert(crypto_pwhash_SALTBYTES == 16, "Argon2id salt");
    if (crypto_pwhash(kek, 32, pass, passlen, salt, ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return SBX_ENOMEM; /* libsodium fails only when it cannot allocate */
    return 0;
}

/* Builds a sealed key file around seed || storage key (64 bytes). */
static int seal_file(uint8_t file[SEALED_LEN], const uint8_t secret[64], const char *pass, size_t passlen,
                     const struct sbx_kdf_params *kdf)
{
    uint32_t ops;
    uint64_t mem;
    if (!pass || passlen == 0 || passlen > SBX_MAX_PASSPHRASE) return SBX_EINVAL;
    int rc = kdf_params(kdf, &ops, &mem);
    if (rc != 0) return rc;
    memset(file, 0, SEALED_LEN);
    memcpy(file, SEALED_MAGIC, 8);
    file[8] = KDF_ARGON2ID13;
    put_le32(file + 12, ops);
    put_le64(file + 16, mem);
    randombytes_buf(file + 24, 16);
    randombytes_buf(file + 40, 24);
    uint8_t kek[32];
    if ((rc = derive_kek(kek, pass, passlen, file + 24, ops, mem)) != 0) return rc;
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(file + 64, file + 128, NULL, secret, 64, file, 64, NULL,
                                                        file + 40, kek);
    sodium_memzero(kek, sizeof kek);
    checksum(file + SEALED_LEN - 16, file, SEALED_LEN - 16);
    return 0;
}

/* Opens a sealed key file's 64 secret bytes with the passphrase. */
static int unseal_file(const uint8_t *buf, size_t len, const char *pass, size_t passlen, uint8_t secret[64])
{
    struct sbx_sealed_key k;
    int rc = sbx_sealed_key_parse(buf, len, &k);
    if (rc != 0) return rc;
    if (!pass) return SBX_ELOCKED;
    if (passlen > SBX_MAX_PASSPHRASE) return SBX_ECRYPTO;
    uint8_t kek[32];
    if ((rc = derive_kek(kek, pass, passlen, k.salt, k.opslimit, k.memlimit)) != 0) return rc;
    rc = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(secret, NULL, k.sealed, 64, k.tag, k.ad, 64, k.nonce,
                                                             kek) == 0
             ? 0
             : SBX_ECRYPTO;
    sodium_memzero(kek, sizeof kek);
    if (rc != 0) sodium_memzero(secret, 64);
    return rc;
}

int sbx_identity_create_sealed(const char *path, const char *pass, size_t passlen,
                               const struct sbx_kdf_params *kdf, struct sbx_identity *out,
                               uint8_t storage_key[SBX_STORAGE_KEY_BYTES])
{
    uint8_t file[SEALED_LEN], secret[64];
    struct stat st;
    if (stat(path, &st) == 0) return SBX_EEXIST;
    randombytes_buf(secret, sizeof secret);
    int rc = seal_file(file, secret, pass, passlen, kdf);
    if (rc == 0) rc = sbx_file_write_atomic(path, file, sizeof file, 0600);
    if (rc == 0) {
        crypto_sign_seed_keypair(out->pk, out->sk, secret);
        memcpy(storage_key, secret + 32, SBX_STORAGE_KEY_BYTES);
    }
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(file, sizeof file);
    return rc;
}

int sbx_identity_probe(const char *path, bool *sealed)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_key_file(path, &buf, &len);
    if (rc != 0) return rc;
    *sealed = is_sealed(buf, len);
    free_key_file(buf, len);
    return 0;
}

int sbx_identity_unseal(const char *path, const char *pass, size_t passlen, struct sbx_identity *out,
                        uint8_t storage_key[SBX_STORAGE_KEY_BYTES], bool *sealed)
{
    uint8_t *buf = NULL, secret[64];
    size_t len = 0;
    int rc = read_key_file(path, &buf, &len);
    if (rc != 0) return rc;
    bool s = is_sealed(buf, len);
    if (sealed) *sealed = s;
    if (!s) {
        rc = load_plain(buf, len, out);
    } else if ((rc = unseal_file(buf, len, pass, passlen, secret)) == 0) {
        crypto_sign_seed_keypair(out->pk, out->sk, secret);
        memcpy(storage_key, secret + 32, SBX_STORAGE_KEY_BYTES);
    }
    sodium_memzero(secret, sizeof secret);
    free_key_file(buf, len);
    return rc;
}

int sbx_identity_rewrap(const char *path, const char *old, size_t oldlen, const char *new_pass, size_t newlen,
                        const struct sbx_kdf_params *kdf)
{
    uint8_t *buf = NULL, secret[64], file[SEALED_LEN];
    size_t len = 0;
    int rc = read_key_file(path, &buf, &len);
    if (rc != 0) return rc;
    if (!is_sealed(buf, len)) rc = SBX_ESTATE;
    else if (!old) rc = SBX_ELOCKED;
    else rc = unseal_file(buf, len, old, oldlen, secret);
    if (rc == 0) rc = seal_file(file, secret, new_pass, newlen, kdf);
    /* The same atomic replace as any key file: a crash leaves the old file
     * or the new one, never a torn one. */
    if (rc == 0) rc = sbx_file_write_atomic(path, file, sizeof file, 0600);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(file, sizeof file);
    free_key_file(buf, len);
    return rc;
}
