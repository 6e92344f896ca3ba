/* Encryption at rest: the AEAD and the key derivation that the database VFS
 * (shoebox/cryptvfs.h) and the blob store (shoebox/blob.h) share.
 *
 * The AEAD is XChaCha20-Poly1305 (IETF variant, as libsodium's
 * crypto_aead_xchacha20poly1305_ietf_*): a 24-byte nonce, so every sealed
 * unit (a database page, a blob chunk) gets a fresh random nonce with no
 * counter to keep, and a 16-byte tag. The output is byte for byte what
 * libsodium produces (the unit test checks both ways); the bulk of the work
 * runs on libcrypto's ChaCha20-Poly1305, which is three times faster here
 * than libsodium's (about 3.7 GB/s against 1.3 GB/s on 1 MiB chunks), after
 * libsodium's HChaCha20 has derived the per-nonce subkey. docs/security.md
 * says why.
 *
 * One storage key (32 random bytes, wrapped in the key file by the
 * passphrase: shoebox/identity.h) is the root of every key here; each use
 * gets its own subkey, so no key ever serves two purposes. */
#ifndef SHOEBOX_CRYPT_H
#define SHOEBOX_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#define SBX_STORAGE_KEY_BYTES 32
#define SBX_AEAD_KEY_BYTES 32
#define SBX_AEAD_NONCE_BYTES 24
#define SBX_AEAD_TAG_BYTES 16

/* The subkeys of the storage key, one per purpose. The numbers are part of
 * the on-disk format: never reuse or renumber one. */
enum sbx_subkey {
    SBX_SUBKEY_DB = 1,          /* database pages, WAL frames, journal pages */
    SBX_SUBKEY_BLOB_DATA = 2,   /* blob chunks */
    SBX_SUBKEY_BLOB_NAME = 3,   /* blob file names: keyed BLAKE2b of the SHA-256 */
    SBX_SUBKEY_BLOB_HEADER = 4, /* the MAC binding a blob file to its hash */
};

/* out = BLAKE2b-based KDF (libsodium crypto_kdf) of the storage key for `id`,
 * context "sbxstore". */
void sbx_subkey_derive(uint8_t out[SBX_AEAD_KEY_BYTES], const uint8_t storage_key[SBX_STORAGE_KEY_BYTES],
                       enum sbx_subkey id);

/* An AEAD context: holds libcrypto's cipher state so that sealing many
 * small units (4 KiB pages) costs no allocation. Not thread-safe: one per
 * thread or per handle. */
/* Nonces for one sealing context (a database file handle, a blob writer):
 * a random 16-byte prefix drawn once, then a 64-bit counter. Sealing a
 * 4 KiB page then costs no system call for randomness (getrandom takes
 * about 0.4 us here, a fifth of sealing the page), and no two seals share
 * a nonce: within a sequence the counter differs, across sequences the
 * random prefixes do (a collision among n sequences has probability about
 * n^2 / 2^129). */
struct sbx_nonce_seq {
    uint8_t prefix[16];
    uint64_t counter;
};
void sbx_nonce_seq_init(struct sbx_nonce_seq *seq);
void sbx_nonce_seq_next(struct sbx_nonce_seq *seq, uint8_t nonce[SBX_AEAD_NONCE_BYTES]);

typedef struct sbx_aead sbx_aead;

int sbx_aead_new(sbx_aead **out);
void sbx_aead_free(sbx_aead *a);

/* Seals len bytes (at most SBX_AEAD_MAX_LEN) of `in` into `out` (the same
 * length; out may equal in) and writes the tag. `ad` (adlen bytes) is
 * authenticated, not encrypted. */
#define SBX_AEAD_MAX_LEN (64u << 20)
int sbx_aead_seal(sbx_aead *a, const uint8_t key[SBX_AEAD_KEY_BYTES],
                  const uint8_t nonce[SBX_AEAD_NONCE_BYTES], const void *ad, size_t adlen,
                  const void *in, size_t len, void *out, uint8_t tag[SBX_AEAD_TAG_BYTES]);

/* Opens what seal made: 0, or SBX_ECRYPTO when the tag does not match (a
 * flipped bit, another key, another nonce or another `ad`), in which case
 * `out` is wiped: nothing unauthenticated is ever handed out. */
int sbx_aead_open(sbx_aead *a, const uint8_t key[SBX_AEAD_KEY_BYTES],
                  const uint8_t nonce[SBX_AEAD_NONCE_BYTES], const void *ad, size_t adlen,
                  const void *in, size_t len, void *out, const uint8_t tag[SBX_AEAD_TAG_BYTES]);

#endif
