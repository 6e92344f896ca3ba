/* A device's identity: its Ed25519 key pair. The public key is the device id
 * (shoebox/devid.h shows it to people); the secret key signs log entries and
 * derives the device's Noise static key.
 *
 * Two key file formats:
 *   - "SBXKEY1": the Ed25519 seed in the clear (mode 0600), for a library
 *     the user chose not to encrypt;
 *   - "SBXKEY2" (sealed): the seed and the storage key (the root of the
 *     database and blob encryption, shoebox/crypt.h) sealed with
 *     XChaCha20-Poly1305 under a key-encryption key that Argon2id derives
 *     from a passphrase. Changing the passphrase re-seals these 64 bytes
 *     and nothing else. docs/security.md has the layout. */
#ifndef SHOEBOX_IDENTITY_H
#define SHOEBOX_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/crypt.h"

struct sbx_identity {
    uint8_t pk[32];
    uint8_t sk[64]; /* libsodium layout: seed || pk */
};

/* Creates a new key pair and writes it to `path` with mode 0600. Refuses to
 * overwrite an existing file (SBX_EEXIST). */
int sbx_identity_create(const char *path, struct sbx_identity *out);

/* Loads a key file. SBX_ENOENT when missing, SBX_EPERM when unreadable or
 * readable by others, SBX_ECORRUPT when the file is damaged (wrong size,
 * magic or checksum), SBX_ELOCKED when it is sealed (sbx_identity_unseal). */
int sbx_identity_load(const char *path, struct sbx_identity *out);

/* Wipes the secret key from memory. */
void sbx_identity_wipe(struct sbx_identity *id);

/* ---- Sealed key files ------------------------------------------------------ */

/* Argon2id cost. Zeros mean the defaults: libsodium's "moderate" (3 passes
 * over 256 MiB, about 0.45 s here), the cost a thief pays per guess. */
struct sbx_kdf_params {
    uint32_t opslimit;
    uint64_t memlimit; /* bytes */
};

/* Bounds a key file may ask for: above them the file is refused as damaged
 * (a crafted file must not make the daemon allocate without limit). */
#define SBX_KDF_MAX_OPSLIMIT 64u
#define SBX_KDF_MAX_MEMLIMIT (4ull << 30)
#define SBX_SEALED_KEY_FILE_LEN 160

/* Creates a new key pair and a new random storage key, sealed under the
 * passphrase (1 to SBX_MAX_PASSPHRASE bytes, else SBX_EINVAL). SBX_EEXIST
 * when the file exists. */
int sbx_identity_create_sealed(const char *path, const char *pass, size_t passlen,
                               const struct sbx_kdf_params *kdf, struct sbx_identity *out,
                               uint8_t storage_key[SBX_STORAGE_KEY_BYTES]);

/* Whether the key file at `path` is sealed (the library is encrypted). The
 * same errors as sbx_identity_load, without needing the passphrase. */
int sbx_identity_probe(const char *path, bool *sealed);

/* Loads either format. A sealed file needs the passphrase: SBX_ELOCKED
 * without one (pass NULL), SBX_ECRYPTO when it is wrong, and then fills
 * storage_key too. A plain file ignores pass and leaves storage_key as it
 * is. *sealed (may be NULL) says which it was. Nothing is written. */
int sbx_identity_unseal(const char *path, const char *pass, size_t passlen, struct sbx_identity *out,
                        uint8_t storage_key[SBX_STORAGE_KEY_BYTES], bool *sealed);

/* Re-seals a sealed key file under a new passphrase (new salt, new nonce,
 * the same keys, so no data is re-encrypted), replacing the file
 * atomically. SBX_ECRYPTO when `old` is wrong, SBX_ESTATE for a plain file;
 * the file is unchanged on any error. */
int sbx_identity_rewrap(const char *path, const char *old, size_t oldlen, const char *new_pass,
                        size_t newlen, const struct sbx_kdf_params *kdf);

/* The parts of a sealed key file, for the loader and the fuzz harness:
 * checks size, magic, checksum, algorithm and cost bounds (SBX_ECORRUPT,
 * SBX_EUNSUPPORTED for an unknown algorithm). */
struct sbx_sealed_key {
    uint32_t opslimit;
    uint64_t memlimit;
    uint8_t salt[16];
    uint8_t nonce[24];
    uint8_t ad[64]; /* the header, authenticated with the sealed keys */
    uint8_t sealed[64];
    uint8_t tag[16];
};
int sbx_sealed_key_parse(const uint8_t *buf, size_t len, struct sbx_sealed_key *out);

#endif
