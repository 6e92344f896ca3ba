/* Encryption primitives: the XChaCha20-Poly1305 AEAD (interoperable with
 * libsodium's), the storage subkeys, and sealed key files (passphrase
 * wrapping, wrong passphrases, damage, re-wrapping). */
#include "sbx_test.h"
#include "shoebox/crypt.h"
#include "shoebox/err.h"
#include "shoebox/identity.h"
#include "shoebox/limits.h"
#include "shoebox/passphrase.h"
#include "shoebox/util.h"

#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

/* Cheap Argon2id for tests: the cost is stored in the file, so the code
 * paths are the same as with the defaults. */
static const struct sbx_kdf_params fast = {.opslimit = 1, .memlimit = 64 * 1024};

SBX_TEST(aead_matches_libsodium_both_ways)
{
    sbx_aead *a = NULL;
    REQUIRE(sbx_aead_new(&a) == 0);
    static uint8_t msg[70000], ours[70000], theirs[70000], back[70000];
    uint8_t key[32], nonce[24], tag[16], tag2[16], ad[37];
    randombytes_buf(msg, sizeof msg);
    randombytes_buf(ad, sizeof ad);
    const size_t lens[] = {0, 1, 63, 64, 65, 4056, 65536 + 7, sizeof msg};
    for (size_t i = 0; i < SBX_ARRAY_LEN(lens); i++) {
        size_t n = lens[i];
        randombytes_buf(key, sizeof key);
        randombytes_buf(nonce, sizeof nonce);
        REQUIRE(sbx_aead_seal(a, key, nonce, ad, sizeof ad, msg, n, ours, tag) == 0);
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(theirs, tag2, NULL, msg, n, ad, sizeof ad, NULL, nonce,
                                                            key);
        CHECK(memcmp(ours, theirs, n) == 0);
        CHECK(memcmp(tag, tag2, 16) == 0);
        CHECK_EQ_INT(crypto_aead_xchacha20poly1305_ietf_decrypt_detached(back, NULL, ours, n, tag, ad, sizeof ad,
                                                                         nonce, key),
                     0);
        CHECK(memcmp(back, msg, n) == 0);
        memset(back, 0, n);
        CHECK_EQ_INT(sbx_aead_open(a, key, nonce, ad, sizeof ad, theirs, n, back, tag2), 0);
        CHECK(memcmp(back, msg, n) == 0);
    }
    /* In place, and without associated data. */
    memcpy(back, msg, 4096);
    REQUIRE(sbx_aead_seal(a, key, nonce, NULL, 0, back, 4096, back, tag) == 0);
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(theirs, tag2, NULL, msg, 4096, NULL, 0, NULL, nonce, key);
    CHECK(memcmp(back, theirs, 4096) == 0 && memcmp(tag, tag2, 16) == 0);
    CHECK_EQ_INT(sbx_aead_open(a, key, nonce, NULL, 0, back, 4096, back, tag), 0);
    CHECK(memcmp(back, msg, 4096) == 0);
    sbx_aead_free(a);
}

SBX_TEST(aead_refuses_any_change_and_hands_out_nothing)
{
    sbx_aead *a = NULL;
    REQUIRE(sbx_aead_new(&a) == 0);
    uint8_t key[32], nonce[24], tag[16], ad[9] = "page 7\0\0", msg[300], ct[300], out[300];
    randombytes_buf(key, sizeof key);
    randombytes_buf(nonce, sizeof nonce);
    randombytes_buf(msg, sizeof msg);
    REQUIRE(sbx_aead_seal(a, key, nonce, ad, sizeof ad, msg, sizeof msg, ct, tag) == 0);
    int refused = 0, total = 0;
    for (size_t bit = 0; bit < sizeof ct * 8; bit += 37, total++) {
        ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        memset(out, 0xAA, sizeof out);
        if (sbx_aead_open(a, key, nonce, ad, sizeof ad, ct, sizeof ct, out, tag) == SBX_ECRYPTO) {
            uint8_t zero[300] = {0};
            if (memcmp(out, zero, sizeof out) == 0) refused++;
        }
        ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK_EQ_INT(refused, total);
    uint8_t bad[16];
    memcpy(bad, tag, 16);
    bad[3] ^= 0x10;
    CHECK_EQ_INT(sbx_aead_open(a, key, nonce, ad, sizeof ad, ct, sizeof ct, out, bad), SBX_ECRYPTO);
    ad[6] = '8'; /* another page's associated data */
    CHECK_EQ_INT(sbx_aead_open(a, key, nonce, ad, sizeof ad, ct, sizeof ct, out, tag), SBX_ECRYPTO);
    ad[6] = '\0';
    nonce[0] ^= 1;
    CHECK_EQ_INT(sbx_aead_open(a, key, nonce, ad, sizeof ad, ct, sizeof ct, out, tag), SBX_ECRYPTO);
    nonce[0] ^= 1;
    key[31] ^= 1;
    CHECK_EQ_INT(sbx_aead_open(a, key, nonce, ad, sizeof ad, ct, sizeof ct, out, tag), SBX_ECRYPTO);
    key[31] ^= 1;
    CHECK_EQ_INT(sbx_aead_open(a, key, nonce, ad, sizeof ad, ct, sizeof ct, out, tag), 0);
    CHECK(memcmp(out, msg, sizeof msg) == 0);
    sbx_aead_free(a);
}

SBX_TEST(subkeys_are_distinct_and_stable)
{
    uint8_t root[32], k[4][32], again[32];
    for (int i = 0; i < 32; i++) root[i] = (uint8_t)i;
    for (int id = 1; id <= 4; id++) sbx_subkey_derive(k[id - 1], root, (enum sbx_subkey)id);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++) CHECK(memcmp(k[i], k[j], 32) != 0);
    sbx_subkey_derive(again, root, SBX_SUBKEY_DB);
    CHECK(memcmp(again, k[0], 32) == 0);
    /* Pinned to libsodium's KDF: the subkeys are part of the on-disk format. */
    uint8_t want[32];
    crypto_kdf_derive_from_key(want, 32, 1, "sbxstore", root);
    CHECK(memcmp(want, k[0], 32) == 0);
    root[0] ^= 1;
    sbx_subkey_derive(again, root, SBX_SUBKEY_DB);
    CHECK(memcmp(again, k[0], 32) != 0);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *buf = NULL;
    if (sbx_file_read(path, 1 << 20, &buf, len) != 0) return NULL;
    return buf;
}

SBX_TEST(sealed_key_file_round_trip)
{
    char path[128];
    sbx_test_path(path, sizeof path, "sealed.key");
    unlink(path);
    struct sbx_identity id, id2;
    uint8_t sk[32], sk2[32];
    const char *pass = "correct horse battery staple";
    REQUIRE(sbx_identity_create_sealed(path, pass, strlen(pass), &fast, &id, sk) == 0);
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    CHECK_EQ_INT(st.st_size, SBX_SEALED_KEY_FILE_LEN);
    CHECK_EQ_INT(sbx_identity_create_sealed(path, pass, strlen(pass), &fast, &id2, sk2), SBX_EEXIST);

    /* Neither secret appears in the file. */
    size_t len;
    uint8_t *file = slurp(path, &len);
    REQUIRE(file);
    CHECK(memmem(file, len, id.sk, 32) == NULL);
    CHECK(memmem(file, len, sk, 32) == NULL);
    CHECK(memmem(file, len, id.pk, 32) == NULL);
    CHECK(memcmp(file, "SBXKEY2\n", 8) == 0);

    bool sealed = false;
    CHECK_EQ_INT(sbx_identity_probe(path, &sealed), 0);
    CHECK(sealed);
    CHECK_EQ_INT(sbx_identity_load(path, &id2), SBX_ELOCKED);
    CHECK_EQ_INT(sbx_identity_unseal(path, NULL, 0, &id2, sk2, &sealed), SBX_ELOCKED);
    CHECK_EQ_INT(sbx_identity_unseal(path, "wrong", 5, &id2, sk2, &sealed), SBX_ECRYPTO);
    CHECK_EQ_INT(sbx_identity_unseal(path, pass, strlen(pass) - 1, &id2, sk2, NULL), SBX_ECRYPTO);
    memset(&id2, 0, sizeof id2);
    memset(sk2, 0, sizeof sk2);
    CHECK_EQ_INT(sbx_identity_unseal(path, pass, strlen(pass), &id2, sk2, &sealed), 0);
    CHECK(sealed);
    CHECK(memcmp(id.pk, id2.pk, 32) == 0 && memcmp(id.sk, id2.sk, 64) == 0);
    CHECK(memcmp(sk, sk2, 32) == 0);
    /* A refused passphrase changed nothing. */
    size_t len2;
    uint8_t *file2 = slurp(path, &len2);
    CHECK(file2 && len2 == len && memcmp(file, file2, len) == 0);
    free(file2);

    /* Others may not read it. */
    chmod(path, 0640);
    CHECK_EQ_INT(sbx_identity_unseal(path, pass, strlen(pass), &id2, sk2, NULL), SBX_EPERM);
    chmod(path, 0600);

    /* Damage anywhere is damage, not a wrong passphrase. */
    for (size_t at = 0; at < len; at += 13) {
        file[at] ^= 0x40;
        char bad[140];
        sbx_test_path(bad, sizeof bad, "damaged.key");
        unlink(bad);
        REQUIRE(sbx_file_write_atomic(bad, file, len, 0600) == 0);
        int rc = sbx_identity_unseal(bad, pass, strlen(pass), &id2, sk2, NULL);
        if (rc != SBX_ECORRUPT) printf("# byte %zu: %d\n", at, rc);
        CHECK(rc == SBX_ECORRUPT);
        file[at] ^= 0x40;
    }
    free(file);

    /* Empty or overlong passphrases are refused at creation. */
    char other[140];
    sbx_test_path(other, sizeof other, "other.key");
    unlink(other);
    CHECK_EQ_INT(sbx_identity_create_sealed(other, "", 0, &fast, &id2, sk2), SBX_EINVAL);
    static char huge[SBX_MAX_PASSPHRASE + 2];
    memset(huge, 'x', sizeof huge - 1);
    CHECK_EQ_INT(sbx_identity_create_sealed(other, huge, strlen(huge), &fast, &id2, sk2), SBX_EINVAL);
    CHECK(access(other, F_OK) != 0);
    sbx_identity_wipe(&id);
    sbx_identity_wipe(&id2);
}

SBX_TEST(default_cost_is_moderate)
{
    char path[128];
    sbx_test_path(path, sizeof path, "default.key");
    unlink(path);
    struct sbx_identity id;
    uint8_t sk[32];
    REQUIRE(sbx_identity_create_sealed(path, "pw", 2, NULL, &id, sk) == 0);
    size_t len;
    uint8_t *file = slurp(path, &len);
    REQUIRE(file);
    struct sbx_sealed_key k;
    REQUIRE(sbx_sealed_key_parse(file, len, &k) == 0);
    CHECK_EQ_INT(k.opslimit, crypto_pwhash_OPSLIMIT_MODERATE);
    CHECK_EQ_INT(k.memlimit, crypto_pwhash_MEMLIMIT_MODERATE);
    free(file);
    sbx_identity_wipe(&id);
}

/* A file with a valid checksum but a cost out of bounds is refused before
 * any Argon2id runs. */
SBX_TEST(hostile_cost_is_refused)
{
    char path[128];
    sbx_test_path(path, sizeof path, "cost.key");
    unlink(path);
    struct sbx_identity id;
    uint8_t sk[32];
    REQUIRE(sbx_identity_create_sealed(path, "pw", 2, &fast, &id, sk) == 0);
    size_t len;
    uint8_t *file = slurp(path, &len);
    REQUIRE(file && len == SBX_SEALED_KEY_FILE_LEN);
    struct sbx_sealed_key k;
    file[16 + 5] = 0x10; /* memlimit far above 4 GiB */
    crypto_generichash(file + len - 16, 16, file, len - 16, NULL, 0);
    CHECK_EQ_INT(sbx_sealed_key_parse(file, len, &k), SBX_ECORRUPT);
    file[16 + 5] = 0;
    file[12] = 0; /* zero passes */
    crypto_generichash(file + len - 16, 16, file, len - 16, NULL, 0);
    CHECK_EQ_INT(sbx_sealed_key_parse(file, len, &k), SBX_ECORRUPT);
    file[12] = 1;
    file[8] = 2; /* an unknown KDF */
    crypto_generichash(file + len - 16, 16, file, len - 16, NULL, 0);
    CHECK_EQ_INT(sbx_sealed_key_parse(file, len, &k), SBX_EUNSUPPORTED);
    file[8] = 1;
    crypto_generichash(file + len - 16, 16, file, len - 16, NULL, 0);
    CHECK_EQ_INT(sbx_sealed_key_parse(file, len, &k), 0);
    CHECK_EQ_INT(sbx_sealed_key_parse(file, len - 1, &k), SBX_ECORRUPT);
    free(file);
    sbx_identity_wipe(&id);
}

SBX_TEST(rewrap_changes_only_the_wrapping)
{
    char path[128];
    sbx_test_path(path, sizeof path, "rewrap.key");
    unlink(path);
    struct sbx_identity id, id2;
    uint8_t sk[32], sk2[32];
    REQUIRE(sbx_identity_create_sealed(path, "old pass", 8, &fast, &id, sk) == 0);
    size_t len, len2;
    uint8_t *before = slurp(path, &len);
    CHECK_EQ_INT(sbx_identity_rewrap(path, "not it", 6, "new pass", 8, &fast), SBX_ECRYPTO);
    CHECK_EQ_INT(sbx_identity_rewrap(path, "old pass", 8, "", 0, &fast), SBX_EINVAL);
    uint8_t *after = slurp(path, &len2);
    CHECK(before && after && len == len2 && memcmp(before, after, len) == 0);
    free(after);
    CHECK_EQ_INT(sbx_identity_rewrap(path, "old pass", 8, "new pass", 8, &fast), 0);
    after = slurp(path, &len2);
    CHECK(after && len2 == len && memcmp(before + 24, after + 24, 40) != 0); /* new salt and nonce */
    free(before);
    free(after);
    CHECK_EQ_INT(sbx_identity_unseal(path, "old pass", 8, &id2, sk2, NULL), SBX_ECRYPTO);
    CHECK_EQ_INT(sbx_identity_unseal(path, "new pass", 8, &id2, sk2, NULL), 0);
    CHECK(memcmp(id.sk, id2.sk, 64) == 0 && memcmp(sk, sk2, 32) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

    /* A plain key file has nothing to re-wrap. */
    char plain[140];
    sbx_test_path(plain, sizeof plain, "plain.key");
    unlink(plain);
    REQUIRE(sbx_identity_create(plain, &id2) == 0);
    bool sealed = true;
    CHECK_EQ_INT(sbx_identity_probe(plain, &sealed), 0);
    CHECK(!sealed);
    CHECK_EQ_INT(sbx_identity_rewrap(plain, "a", 1, "b", 1, &fast), SBX_ESTATE);
    memset(sk2, 0x5A, sizeof sk2);
    CHECK_EQ_INT(sbx_identity_unseal(plain, NULL, 0, &id, sk2, &sealed), 0);
    CHECK(!sealed && sk2[0] == 0x5A);
    CHECK(memcmp(id.pk, id2.pk, 32) == 0);
    sbx_identity_wipe(&id);
    sbx_identity_wipe(&id2);
}

SBX_TEST(nonces_never_repeat)
{
    struct sbx_nonce_seq a, b;
    sbx_nonce_seq_init(&a);
    sbx_nonce_seq_init(&b);
    uint8_t n1[24], n2[24], n3[24];
    sbx_nonce_seq_next(&a, n1);
    sbx_nonce_seq_next(&a, n2);
    sbx_nonce_seq_next(&b, n3);
    CHECK(memcmp(n1, n2, 24) != 0);
    CHECK(memcmp(n1, n2, 16) == 0); /* one prefix, two counters */
    CHECK(memcmp(n1, n3, 16) != 0); /* another sequence, another prefix */
}

static int write_pass(const char *path, const char *text, unsigned mode)
{
    unlink(path);
    return sbx_file_write_atomic(path, (const uint8_t *)text, strlen(text), mode);
}

SBX_TEST(passphrase_files)
{
    char path[128], out[SBX_PASSPHRASE_BUF];
    size_t len = 99;
    sbx_test_path(path, sizeof path, "pass");
    REQUIRE(write_pass(path, "open sesame\nsecond line\n", 0600) == 0);
    CHECK_EQ_INT(sbx_passphrase_read_file(path, out, &len), 0);
    CHECK_EQ_INT(len, 11);
    CHECK_EQ_STR(out, "open sesame");
    REQUIRE(write_pass(path, "crlf\r\n", 0600) == 0);
    CHECK_EQ_INT(sbx_passphrase_read_file(path, out, &len), 0);
    CHECK_EQ_STR(out, "crlf");
    REQUIRE(write_pass(path, "no newline", 0600) == 0);
    CHECK_EQ_INT(sbx_passphrase_read_file(path, out, &len), 0);
    CHECK_EQ_INT(len, 10);
    REQUIRE(write_pass(path, "\n", 0600) == 0);
    CHECK_EQ_INT(sbx_passphrase_read_file(path, out, &len), SBX_EINVAL);
    REQUIRE(write_pass(path, "readable", 0644) == 0);
    CHECK_EQ_INT(sbx_passphrase_read_file(path, out, &len), SBX_EPERM);
    static char big[SBX_MAX_PASSPHRASE + 10];
    memset(big, 'p', sizeof big - 1);
    REQUIRE(write_pass(path, big, 0600) == 0);
    CHECK_EQ_INT(sbx_passphrase_read_file(path, out, &len), SBX_ETOOBIG);
    big[SBX_MAX_PASSPHRASE] = '\0';
    REQUIRE(write_pass(path, big, 0600) == 0);
    CHECK_EQ_INT(sbx_passphrase_read_file(path, out, &len), 0);
    CHECK_EQ_INT(len, SBX_MAX_PASSPHRASE);
    CHECK_EQ_INT(sbx_passphrase_read_file("/nonexistent/pass", out, &len), SBX_ENOENT);
    sbx_passphrase_wipe(out);
    CHECK(out[0] == 0);
}

SBX_TEST_MAIN(SBX_CASE(nonces_never_repeat), SBX_CASE(passphrase_files), SBX_CASE(aead_matches_libsodium_both_ways), SBX_CASE(aead_refuses_any_change_and_hands_out_nothing),
              SBX_CASE(subkeys_are_distinct_and_stable), SBX_CASE(sealed_key_file_round_trip),
              SBX_CASE(default_cost_is_moderate), SBX_CASE(hostile_cost_is_refused),
              SBX_CASE(rewrap_changes_only_the_wrapping))
