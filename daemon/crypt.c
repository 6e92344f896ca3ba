/* XChaCha20-Poly1305 on libcrypto's ChaCha20-Poly1305, and the storage
 * subkeys (see shoebox/crypt.h). */
#include "shoebox/crypt.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <limits.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>

_Static_assert(SBX_AEAD_MAX_LEN <= INT_MAX, "EVP lengths are ints");

struct sbx_aead {
    EVP_CIPHER *cipher; /* NULL: libcrypto has no ChaCha20-Poly1305; libsodium does it all */
    EVP_CIPHER_CTX *ctx;
};

void sbx_subkey_derive(uint8_t out[SBX_AEAD_KEY_BYTES], const uint8_t storage_key[SBX_STORAGE_KEY_BYTES],
                       enum sbx_subkey id)
{
    _Static_assert(SBX_AEAD_KEY_BYTES >= crypto_kdf_BYTES_MIN && SBX_AEAD_KEY_BYTES <= crypto_kdf_BYTES_MAX,
                   "subkey size");
    SBX_ASSERT(crypto_kdf_derive_from_key(out, SBX_AEAD_KEY_BYTES, (uint64_t)id, "sbxstore", storage_key) == 0);
}

void sbx_nonce_seq_init(struct sbx_nonce_seq *seq)
{
    randombytes_buf(seq->prefix, sizeof seq->prefix);
    seq->counter = 0;
}

void sbx_nonce_seq_next(struct sbx_nonce_seq *seq, uint8_t nonce[SBX_AEAD_NONCE_BYTES])
{
    /* 2^64 seals from one handle cannot happen; stop rather than wrap. */
    SBX_ASSERT(seq->counter != UINT64_MAX);
    memcpy(nonce, seq->prefix, sizeof seq->prefix);
    uint64_t c = seq->counter++;
    for (int i = 0; i < 8; i++) nonce[16 + i] = (uint8_t)(c >> (8 * i));
}

int sbx_aead_new(sbx_aead **out)
{
    sbx_aead *a = calloc(1, sizeof *a);
    if (!a) return SBX_ENOMEM;
    /* A libcrypto built without ChaCha20 (a FIPS-only provider) still
     * works, at libsodium's speed. */
    a->cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    if (a->cipher && !(a->ctx = EVP_CIPHER_CTX_new())) {
        EVP_CIPHER_free(a->cipher);
        free(a);
        return SBX_ENOMEM;
    }
    *out = a;
    return 0;
}

void sbx_aead_free(sbx_aead *a)
{
    if (!a) return;
    EVP_CIPHER_CTX_free(a->ctx);
    EVP_CIPHER_free(a->cipher);
    free(a);
}

/* XChaCha20 is ChaCha20 under a subkey that HChaCha20 derives from the key
 * and the first 16 nonce bytes, with the last 8 nonce bytes (after 4 zero
 * bytes) as the IETF nonce: draft-irtf-cfrg-xchacha, section 2.3. */
static void xchacha_split(uint8_t subkey[32], uint8_t iv[12], const uint8_t key[32], const uint8_t nonce[24])
{
    crypto_core_hchacha20(subkey, nonce, key, NULL);
    memset(iv, 0, 4);
    memcpy(iv + 4, nonce + 16, 8);
}

int sbx_aead_seal(sbx_aead *a, const uint8_t key[SBX_AEAD_KEY_BYTES],
                  const uint8_t nonce[SBX_AEAD_NONCE_BYTES], const void *ad, size_t adlen,
                  const void *in, size_t len, void *out, uint8_t tag[SBX_AEAD_TAG_BYTES])
{
    if (len > SBX_AEAD_MAX_LEN || adlen > SBX_AEAD_MAX_LEN) return SBX_EINVAL;
    if (!a->cipher) {
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, tag, NULL, in, len, ad, adlen, NULL, nonce, key);
        return 0;
    }
    uint8_t subkey[32], iv[12];
    xchacha_split(subkey, iv, key, nonce);
    int n = 0, ok = EVP_EncryptInit_ex2(a->ctx, a->cipher, subkey, iv, NULL) &&
                    (adlen == 0 || EVP_EncryptUpdate(a->ctx, NULL, &n, ad, (int)adlen)) &&
                    (len == 0 || EVP_EncryptUpdate(a->ctx, out, &n, in, (int)len)) &&
                    EVP_EncryptFinal_ex(a->ctx, (uint8_t *)out + len, &n) &&
                    EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, SBX_AEAD_TAG_BYTES, tag);
    sodium_memzero(subkey, sizeof subkey);
    return ok ? 0 : SBX_ECRYPTO;
}

int sbx_aead_open(sbx_aead *a, const uint8_t key[SBX_AEAD_KEY_BYTES],
                  const uint8_t nonce[SBX_AEAD_NONCE_BYTES], const void *ad, size_t adlen,
                  const void *in, size_t len, void *out, const uint8_t tag[SBX_AEAD_TAG_BYTES])
{
    if (len > SBX_AEAD_MAX_LEN || adlen > SBX_AEAD_MAX_LEN) return SBX_EINVAL;
    if (!a->cipher) {
        if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL, in, len, tag, ad, adlen, nonce, key) == 0)
            return 0;
        sodium_memzero(out, len);
        return SBX_ECRYPTO;
    }
    uint8_t subkey[32], iv[12];
    xchacha_split(subkey, iv, key, nonce);
    int n = 0, ok = EVP_DecryptInit_ex2(a->ctx, a->cipher, subkey, iv, NULL) &&
                    EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, SBX_AEAD_TAG_BYTES, (void *)tag) &&
                    (adlen == 0 || EVP_DecryptUpdate(a->ctx, NULL, &n, ad, (int)adlen)) &&
                    (len == 0 || EVP_DecryptUpdate(a->ctx, out, &n, in, (int)len)) &&
                    EVP_DecryptFinal_ex(a->ctx, (uint8_t *)out + len, &n) > 0;
    sodium_memzero(subkey, sizeof subkey);
    if (ok) return 0;
    /* The plaintext was written before the tag was checked: take it back. */
    sodium_memzero(out, len);
    return SBX_ECRYPTO;
}
