/* Noise: the cacophony vectors for XX and XXpsk3 (each vector one TAP point),
 * HMAC-BLAKE2b against OpenSSL, and the failure rules of shoebox/noise.h. */
#include "sbx_test.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/noise.h"
#include "shoebox/util.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdint.h>

#define MAXMSG SBX_NOISE_MAX_MSG

static uint8_t buf_a[MAXMSG + 64], buf_b[MAXMSG + 64], buf_c[MAXMSG + 64];

/* ---- helpers -------------------------------------------------------------- */

static void keypair(uint8_t priv[32], uint8_t pub[32])
{
    randombytes_buf(priv, 32);
    if (pub) SBX_ASSERT(sbx_noise_pubkey(pub, priv) == 0);
}

/* Runs the handshake between ini and resp with short payloads. Returns 0 or
 * the first error, and in *who which side failed (1 initiator, 2 responder).
 * When tamper_msg >= 0, byte tamper_pos of that message gets tamper_xor. */
static int exchange(sbx_noise_hs *ini, sbx_noise_hs *resp, int tamper_msg,
                    size_t tamper_pos, uint8_t tamper_xor, int *who)
{
    uint8_t msg[256], pl[256];
    size_t mlen, plen;
    for (int i = 0; i < 3; i++) {
        sbx_noise_hs *w = (i % 2 == 0) ? ini : resp, *r = (i % 2 == 0) ? resp : ini;
        char payload[32];
        int n = snprintf(payload, sizeof payload, "payload %d", i);
        *who = (w == ini) ? 1 : 2;
        int rc = sbx_noise_hs_write(w, (const uint8_t *)payload, (size_t)n, msg,
                                    sizeof msg, &mlen);
        if (rc != 0) return rc;
        if (i == tamper_msg && tamper_pos < mlen) msg[tamper_pos] ^= tamper_xor;
        *who = (r == ini) ? 1 : 2;
        rc = sbx_noise_hs_read(r, msg, mlen, pl, sizeof pl, &plen);
        if (rc != 0) return rc;
        if (plen != (size_t)n || memcmp(pl, payload, plen) != 0) return SBX_ECORRUPT;
    }
    *who = 0;
    return 0;
}

struct pair {
    sbx_noise_hs *ini, *resp;
    uint8_t ini_s[32], ini_pub[32], resp_s[32], resp_pub[32];
};

static int pair_new(struct pair *p, const uint8_t *ipsk, const uint8_t *rpsk)
{
    static const uint8_t prologue[] = "shoebox/1";
    keypair(p->ini_s, p->ini_pub);
    keypair(p->resp_s, p->resp_pub);
    int rc = sbx_noise_hs_new(&p->ini, 1, prologue, 9, p->ini_s, ipsk);
    if (rc == 0) rc = sbx_noise_hs_new(&p->resp, 0, prologue, 9, p->resp_s, rpsk);
    return rc;
}

static void pair_free(struct pair *p)
{
    sbx_noise_hs_free(p->ini);
    sbx_noise_hs_free(p->resp);
}

/* A completed session: the four transport cipher states. */
struct session {
    sbx_noise_cs *ini_tx, *ini_rx, *resp_tx, *resp_rx;
};

static int session_new(struct session *s, const uint8_t *psk)
{
    struct pair p;
    int who, rc;
    memset(s, 0, sizeof *s);
    rc = pair_new(&p, psk, psk);
    if (rc == 0) rc = exchange(p.ini, p.resp, -1, 0, 0, &who);
    if (rc == 0) rc = sbx_noise_hs_split(p.ini, &s->ini_tx, &s->ini_rx);
    if (rc == 0) rc = sbx_noise_hs_split(p.resp, &s->resp_tx, &s->resp_rx);
    pair_free(&p);
    return rc;
}

static void session_free(struct session *s)
{
    sbx_noise_cs_free(s->ini_tx);
    sbx_noise_cs_free(s->ini_rx);
    sbx_noise_cs_free(s->resp_tx);
    sbx_noise_cs_free(s->resp_rx);
}

/* ---- HMAC ----------------------------------------------------------------- */

SBX_TEST(hmac_blake2b_matches_openssl)
{
    static const size_t key_lens[] = {0, 1, 32, 64, 127, 128, 129, 200, 300, 1000};
    static const size_t data_lens[] = {0, 1, 63, 64, 65, 127, 128, 129, 255, 1000, 5000};
    static uint8_t key[1000], data[5000];
    const EVP_MD *md = EVP_blake2b512();
    int checked = 0;
    REQUIRE(md != NULL);
    REQUIRE(EVP_MD_get_block_size(md) == 128);
    randombytes_buf(key, sizeof key);
    randombytes_buf(data, sizeof data);
    for (size_t i = 0; i < SBX_ARRAY_LEN(key_lens); i++) {
        for (size_t j = 0; j < SBX_ARRAY_LEN(data_lens); j++) {
            uint8_t ours[64], theirs[EVP_MAX_MD_SIZE];
            unsigned theirs_len = 0;
            sbx_noise_hmac_blake2b(ours, key, key_lens[i], data, data_lens[j]);
            REQUIRE(HMAC(md, key, (int)key_lens[i], data, data_lens[j], theirs,
                         &theirs_len) != NULL);
            CHECK_EQ_INT(theirs_len, 64);
            if (memcmp(ours, theirs, 64) != 0) {
                printf("# mismatch at key %zu data %zu\n", key_lens[i], data_lens[j]);
                CHECK(0);
            }
            checked++;
        }
    }
    /* Different keys must give different MACs (the key is really used). */
    uint8_t m1[64], m2[64];
    sbx_noise_hmac_blake2b(m1, key, 200, data, 10);
    key[199] ^= 1;
    sbx_noise_hmac_blake2b(m2, key, 200, data, 10);
    CHECK(memcmp(m1, m2, 64) != 0);
    printf("# %d HMAC pairs compared with OpenSSL\n", checked);
}

/* ---- Handshakes ----------------------------------------------------------- */

SBX_TEST(xx_handshake_random_keys)
{
    struct pair p;
    int who = -1;
    uint8_t rs[32], h1[64], h2[64];
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_turn(p.ini), SBX_NOISE_TURN_WRITE);
    CHECK_EQ_INT(sbx_noise_hs_turn(p.resp), SBX_NOISE_TURN_READ);
    CHECK_EQ_INT(sbx_noise_hs_hash(p.ini, h1), SBX_ESTATE);
    CHECK_EQ_INT(sbx_noise_hs_remote_static(p.ini, rs), SBX_ESTATE);
    CHECK_EQ_INT(exchange(p.ini, p.resp, -1, 0, 0, &who), 0);
    CHECK(sbx_noise_hs_done(p.ini) && sbx_noise_hs_done(p.resp));
    CHECK_EQ_INT(sbx_noise_hs_turn(p.ini), SBX_NOISE_TURN_DONE);
    CHECK_EQ_INT(sbx_noise_hs_turn(p.resp), SBX_NOISE_TURN_DONE);
    CHECK(sbx_noise_hs_initiator(p.ini) && !sbx_noise_hs_initiator(p.resp));
    CHECK_EQ_INT(sbx_noise_hs_remote_static(p.ini, rs), 0);
    CHECK(memcmp(rs, p.resp_pub, 32) == 0);
    CHECK_EQ_INT(sbx_noise_hs_remote_static(p.resp, rs), 0);
    CHECK(memcmp(rs, p.ini_pub, 32) == 0);
    CHECK_EQ_INT(sbx_noise_hs_hash(p.ini, h1), 0);
    CHECK_EQ_INT(sbx_noise_hs_hash(p.resp, h2), 0);
    CHECK(memcmp(h1, h2, 64) == 0);

    sbx_noise_cs *itx, *irx, *rtx, *rrx;
    REQUIRE(sbx_noise_hs_split(p.ini, &itx, &irx) == 0);
    REQUIRE(sbx_noise_hs_split(p.resp, &rtx, &rrx) == 0);
    /* After split: the hash and the peer key stay, everything else is refused. */
    CHECK_EQ_INT(sbx_noise_hs_hash(p.ini, h2), 0);
    CHECK(memcmp(h1, h2, 64) == 0);
    CHECK_EQ_INT(sbx_noise_hs_remote_static(p.ini, rs), 0);
    CHECK_EQ_INT(sbx_noise_hs_turn(p.ini), SBX_ESTATE);
    sbx_noise_cs *x, *y;
    CHECK_EQ_INT(sbx_noise_hs_split(p.ini, &x, &y), SBX_ESTATE);

    /* Transport both ways, sizes from empty to the largest message. */
    static const size_t sizes[] = {0, 1, 100, 4096, SBX_MAX_MSG};
    for (size_t i = 0; i < SBX_ARRAY_LEN(sizes); i++) {
        size_t n = sizes[i];
        randombytes_buf(buf_a, n);
        CHECK_EQ_INT(sbx_noise_cs_encrypt(itx, NULL, 0, buf_a, n, buf_b), 0);
        CHECK_EQ_INT(sbx_noise_cs_decrypt(rrx, NULL, 0, buf_b, n + 16, buf_c), 0);
        CHECK(n == 0 || memcmp(buf_a, buf_c, n) == 0);
        CHECK_EQ_INT(sbx_noise_cs_encrypt(rtx, NULL, 0, buf_a, n, buf_b), 0);
        CHECK_EQ_INT(sbx_noise_cs_decrypt(irx, NULL, 0, buf_b, n + 16, buf_c), 0);
        CHECK(n == 0 || memcmp(buf_a, buf_c, n) == 0);
    }
    /* A message from one direction does not decrypt in the other. */
    CHECK_EQ_INT(sbx_noise_cs_encrypt(itx, NULL, 0, buf_a, 10, buf_b), 0);
    CHECK_EQ_INT(sbx_noise_cs_decrypt(rtx, NULL, 0, buf_b, 26, buf_c), SBX_ECRYPTO);
    /* The right receiver still opens it, in place. */
    CHECK_EQ_INT(sbx_noise_cs_decrypt(rrx, NULL, 0, buf_b, 26, buf_b), 0);
    CHECK(memcmp(buf_b, buf_a, 10) == 0);
    /* In-place encryption and decryption. */
    memcpy(buf_c, buf_a, 1000);
    CHECK_EQ_INT(sbx_noise_cs_encrypt(itx, NULL, 0, buf_c, 1000, buf_c), 0);
    CHECK_EQ_INT(sbx_noise_cs_decrypt(rrx, NULL, 0, buf_c, 1016, buf_c), 0);
    CHECK(memcmp(buf_c, buf_a, 1000) == 0);
    CHECK_EQ_INT(sbx_noise_cs_nonce(itx), SBX_ARRAY_LEN(sizes) + 2);
    CHECK_EQ_INT(sbx_noise_cs_nonce(rrx), SBX_ARRAY_LEN(sizes) + 2);

    sbx_noise_cs_free(itx);
    sbx_noise_cs_free(irx);
    sbx_noise_cs_free(rtx);
    sbx_noise_cs_free(rrx);
    pair_free(&p);
}

SBX_TEST(xxpsk3_same_psk_succeeds)
{
    uint8_t psk[32];
    struct pair p;
    int who = -1;
    randombytes_buf(psk, 32);
    REQUIRE(pair_new(&p, psk, psk) == 0);
    CHECK_EQ_INT(exchange(p.ini, p.resp, -1, 0, 0, &who), 0);
    CHECK(sbx_noise_hs_done(p.ini) && sbx_noise_hs_done(p.resp));
    pair_free(&p);
}

SBX_TEST(xxpsk3_mismatched_psk_fails)
{
    uint8_t psk1[32], psk2[32], rs[32];
    struct pair p;
    int who = -1;
    randombytes_buf(psk1, 32);
    memcpy(psk2, psk1, 32);
    psk2[31] ^= 0x80;
    REQUIRE(pair_new(&p, psk1, psk2) == 0);
    /* The psk enters at the end of message 3, so the responder finds out. */
    CHECK_EQ_INT(exchange(p.ini, p.resp, -1, 0, 0, &who), SBX_ECRYPTO);
    CHECK_EQ_INT(who, 2);
    CHECK(!sbx_noise_hs_done(p.resp));
    CHECK_EQ_INT(sbx_noise_hs_turn(p.resp), SBX_ESTATE);
    CHECK_EQ_INT(sbx_noise_hs_remote_static(p.resp, rs), SBX_ESTATE);
    pair_free(&p);

    /* XX against XXpsk3: different protocol names, so message 2 fails. */
    REQUIRE(pair_new(&p, NULL, psk1) == 0);
    CHECK(exchange(p.ini, p.resp, -1, 0, 0, &who) != 0);
    CHECK(!sbx_noise_hs_done(p.ini) && !sbx_noise_hs_done(p.resp));
    pair_free(&p);
}

SBX_TEST(prologue_mismatch_fails)
{
    uint8_t s1[32], s2[32];
    sbx_noise_hs *a, *b;
    int who;
    keypair(s1, NULL);
    keypair(s2, NULL);
    REQUIRE(sbx_noise_hs_new(&a, 1, (const uint8_t *)"shoebox/1", 9, s1, NULL) == 0);
    REQUIRE(sbx_noise_hs_new(&b, 0, (const uint8_t *)"shoebox/2", 9, s2, NULL) == 0);
    CHECK_EQ_INT(exchange(a, b, -1, 0, 0, &who), SBX_ECRYPTO);
    CHECK_EQ_INT(who, 1);
    sbx_noise_hs_free(a);
    sbx_noise_hs_free(b);
}

SBX_TEST(tampered_handshake_fails)
{
    /* Flip single bits all over each of the three messages (ephemeral key,
     * encrypted static key, payload, tags), for XX and XXpsk3. */
    uint8_t psk[32];
    randombytes_buf(psk, 32);
    int runs = 0;
    for (int withpsk = 0; withpsk < 2; withpsk++) {
        for (int m = 0; m < 3; m++) {
            for (size_t pos = 0; pos < 120; pos += 7) {
                struct pair p;
                int who = -1;
                const uint8_t *k = withpsk ? psk : NULL;
                REQUIRE(pair_new(&p, k, k) == 0);
                int rc = exchange(p.ini, p.resp, m, pos, (uint8_t)(1u << (pos % 8)), &who);
                /* Positions past the end of a short message leave it intact. */
                size_t mlen = m == 0 ? 32 + 9 + (withpsk ? 16 : 0)
                            : m == 1 ? 32 + 48 + 9 + 16 : 48 + 9 + 16;
                if (pos < mlen) {
                    if (rc == 0) printf("# tamper msg %d pos %zu psk %d accepted\n", m, pos, withpsk);
                    CHECK(rc != 0);
                    CHECK(!sbx_noise_hs_done(p.ini) || !sbx_noise_hs_done(p.resp));
                    if (m >= 1) {
                        /* Messages 2 and 3 are authenticated: the reader
                         * itself refuses them. */
                        CHECK_EQ_INT(rc, SBX_ECRYPTO);
                        CHECK_EQ_INT(who, m == 1 ? 1 : 2);
                    }
                    runs++;
                } else {
                    CHECK_EQ_INT(rc, 0);
                }
                pair_free(&p);
            }
        }
    }
    printf("# %d tampered handshakes refused\n", runs);
}

SBX_TEST(failed_read_leaks_no_plaintext)
{
    struct pair p;
    uint8_t msg[512], pl[512];
    size_t mlen, plen = 99;
    static const char secret[] = "the secret payload of message two";
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    REQUIRE(sbx_noise_hs_write(p.ini, NULL, 0, msg, sizeof msg, &mlen) == 0);
    REQUIRE(sbx_noise_hs_read(p.resp, msg, mlen, pl, sizeof pl, &plen) == 0);
    CHECK_EQ_INT(plen, 0);
    REQUIRE(sbx_noise_hs_write(p.resp, (const uint8_t *)secret, sizeof secret, msg,
                               sizeof msg, &mlen) == 0);
    msg[mlen - 1] ^= 1; /* break the payload's tag only */
    memset(pl, 0xAA, sizeof pl);
    plen = 99;
    CHECK_EQ_INT(sbx_noise_hs_read(p.ini, msg, mlen, pl, sizeof pl, &plen), SBX_ECRYPTO);
    CHECK_EQ_INT(plen, 0);
    CHECK(memmem(pl, sizeof pl, "secret", 6) == NULL);
    for (size_t i = 0; i < sizeof pl; i++) {
        if (pl[i] != 0 && pl[i] != 0xAA) {
            CHECK(0);
            break;
        }
    }
    /* Poisoned: the peer's static key (decrypted before the payload failed)
     * is not reported and nothing else works. */
    uint8_t rs[32];
    CHECK_EQ_INT(sbx_noise_hs_remote_static(p.ini, rs), SBX_ESTATE);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, NULL, 0, msg, sizeof msg, &mlen), SBX_ESTATE);
    CHECK_EQ_INT(sbx_noise_hs_read(p.ini, msg, mlen, pl, sizeof pl, &plen), SBX_ESTATE);
    pair_free(&p);
}

SBX_TEST(wrong_order_is_refused_and_poisons)
{
    struct pair p;
    uint8_t msg[512], pl[512], e[32];
    size_t mlen, plen;
    sbx_noise_cs *a, *b;

    /* The responder may not speak first. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.resp, NULL, 0, msg, sizeof msg, &mlen), SBX_ESTATE);
    CHECK_EQ_INT(sbx_noise_hs_turn(p.resp), SBX_ESTATE);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, NULL, 0, msg, sizeof msg, &mlen), 0);
    CHECK_EQ_INT(sbx_noise_hs_read(p.resp, msg, mlen, pl, sizeof pl, &plen), SBX_ESTATE);
    pair_free(&p);

    /* The initiator may not read first. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_read(p.ini, msg, 32, pl, sizeof pl, &plen), SBX_ESTATE);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, NULL, 0, msg, sizeof msg, &mlen), SBX_ESTATE);
    pair_free(&p);

    /* No split before the end, no second write in a row. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_split(p.ini, &a, &b), SBX_ESTATE);
    CHECK(a == NULL && b == NULL);
    pair_free(&p);
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, NULL, 0, msg, sizeof msg, &mlen), 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, NULL, 0, msg, sizeof msg, &mlen), SBX_ESTATE);
    pair_free(&p);

    /* The ephemeral key cannot change once it was sent. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    keypair(e, NULL);
    CHECK_EQ_INT(sbx_noise_hs_set_ephemeral(p.ini, e), 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, NULL, 0, msg, sizeof msg, &mlen), 0);
    CHECK_EQ_INT(sbx_noise_hs_set_ephemeral(p.ini, e), SBX_ESTATE);
    CHECK_EQ_INT(sbx_noise_hs_turn(p.ini), SBX_ESTATE);
    pair_free(&p);

    /* A too-small output buffer is a failure too, and poisons. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, NULL, 0, msg, 31, &mlen), SBX_EINVAL);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, NULL, 0, msg, sizeof msg, &mlen), SBX_ESTATE);
    pair_free(&p);

    /* A payload larger than the caller's buffer. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, (const uint8_t *)"0123456789", 10, msg,
                                    sizeof msg, &mlen), 0);
    CHECK_EQ_INT(sbx_noise_hs_read(p.resp, msg, mlen, pl, 9, &plen), SBX_EINVAL);
    CHECK_EQ_INT(sbx_noise_hs_turn(p.resp), SBX_ESTATE);
    pair_free(&p);

    /* Truncated messages. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_read(p.resp, msg, 31, pl, sizeof pl, &plen), SBX_EMALFORMED);
    pair_free(&p);
}

SBX_TEST(zero_dh_result_fails)
{
    /* An all-zero ephemeral key is a small-order point: X25519 with it
     * gives zero, and the handshake must stop there. */
    struct pair p;
    uint8_t msg[64] = {0}, pl[64], out[512];
    size_t plen, mlen;
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_read(p.resp, msg, 32, pl, sizeof pl, &plen), 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.resp, NULL, 0, out, sizeof out, &mlen), SBX_ECRYPTO);
    CHECK_EQ_INT(sbx_noise_hs_turn(p.resp), SBX_ESTATE);
    pair_free(&p);

    /* The other small-order point u = 1 fails as well. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    msg[0] = 1;
    CHECK_EQ_INT(sbx_noise_hs_read(p.resp, msg, 32, pl, sizeof pl, &plen), 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.resp, NULL, 0, out, sizeof out, &mlen), SBX_ECRYPTO);
    pair_free(&p);
}

SBX_TEST(oversize_messages_refused)
{
    struct pair p;
    size_t mlen, plen;
    /* Message 1 of XX is e (32 bytes) + the plaintext payload. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, buf_a, MAXMSG - 32 + 1, buf_b, sizeof buf_b,
                                    &mlen), SBX_ETOOBIG);
    pair_free(&p);
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, buf_a, MAXMSG - 32, buf_b, sizeof buf_b, &mlen), 0);
    CHECK_EQ_INT(mlen, MAXMSG);
    CHECK_EQ_INT(sbx_noise_hs_read(p.resp, buf_b, mlen, buf_c, sizeof buf_c, &plen), 0);
    CHECK_EQ_INT(plen, MAXMSG - 32);
    /* Message 2 carries the largest overhead. */
    CHECK_EQ_INT(sbx_noise_hs_write(p.resp, buf_a, SBX_NOISE_HS_MAX_PAYLOAD, buf_b,
                                    sizeof buf_b, &mlen), 0);
    CHECK_EQ_INT(mlen, MAXMSG);
    CHECK_EQ_INT(sbx_noise_hs_read(p.ini, buf_b, mlen, buf_c, sizeof buf_c, &plen), 0);
    pair_free(&p);
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.ini, NULL, 0, buf_b, sizeof buf_b, &mlen), 0);
    CHECK_EQ_INT(sbx_noise_hs_read(p.resp, buf_b, mlen, buf_c, sizeof buf_c, &plen), 0);
    CHECK_EQ_INT(sbx_noise_hs_write(p.resp, buf_a, SBX_NOISE_HS_MAX_PAYLOAD + 1, buf_b,
                                    sizeof buf_b, &mlen), SBX_ETOOBIG);
    pair_free(&p);
    /* Reading more than the limit. */
    REQUIRE(pair_new(&p, NULL, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_hs_read(p.resp, buf_b, MAXMSG + 1, buf_c, sizeof buf_c, &plen),
                 SBX_ETOOBIG);
    pair_free(&p);

    struct session s;
    REQUIRE(session_new(&s, NULL) == 0);
    CHECK_EQ_INT(sbx_noise_cs_encrypt(s.ini_tx, NULL, 0, buf_a, SBX_MAX_MSG + 1, buf_b),
                 SBX_ETOOBIG);
    CHECK_EQ_INT(sbx_noise_cs_nonce(s.ini_tx), 0);
    CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, NULL, 0, buf_b, MAXMSG + 1, buf_c),
                 SBX_ETOOBIG);
    CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, NULL, 0, buf_b, 15, buf_c), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_noise_cs_encrypt(s.ini_tx, NULL, 0, buf_a, SBX_MAX_MSG, buf_b), 0);
    CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, NULL, 0, buf_b, MAXMSG, buf_c), 0);
    session_free(&s);
}

SBX_TEST(bad_tag_then_valid_message)
{
    struct session s;
    uint8_t ad[8] = "assocdat";
    REQUIRE(session_new(&s, NULL) == 0);
    for (int round = 0; round < 3; round++) {
        randombytes_buf(buf_a, 500);
        REQUIRE(sbx_noise_cs_encrypt(s.ini_tx, ad, 8, buf_a, 500, buf_b) == 0);
        memcpy(buf_c, buf_b, 516);
        uint64_t n = sbx_noise_cs_nonce(s.resp_rx);
        /* Tag, body and associated data each break it. */
        buf_c[515] ^= 0x01;
        memset(buf_a + 600, 0, 600);
        CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, ad, 8, buf_c, 516, buf_a + 600), SBX_ECRYPTO);
        buf_c[515] ^= 0x01;
        buf_c[round * 100] ^= 0x40;
        CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, ad, 8, buf_c, 516, buf_a + 600), SBX_ECRYPTO);
        CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, ad, 7, buf_b, 516, buf_a + 600), SBX_ECRYPTO);
        CHECK_EQ_INT(sbx_noise_cs_nonce(s.resp_rx), n);
        /* Nothing decrypted leaked into the output. */
        CHECK(sodium_is_zero(buf_a + 600, 500));
        CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, ad, 8, buf_b, 516, buf_a + 600), 0);
        CHECK(memcmp(buf_a, buf_a + 600, 500) == 0);
        CHECK_EQ_INT(sbx_noise_cs_nonce(s.resp_rx), n + 1);
    }
    /* Replaying an accepted message fails (the nonce moved on). */
    CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, ad, 8, buf_b, 516, buf_c), SBX_ECRYPTO);
    session_free(&s);
}

SBX_TEST(rekey_in_step)
{
    struct session s;
    REQUIRE(session_new(&s, NULL) == 0);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 3; i++) {
            randombytes_buf(buf_a, 300);
            REQUIRE(sbx_noise_cs_encrypt(s.resp_tx, NULL, 0, buf_a, 300, buf_b) == 0);
            CHECK_EQ_INT(sbx_noise_cs_decrypt(s.ini_rx, NULL, 0, buf_b, 316, buf_c), 0);
            CHECK(memcmp(buf_a, buf_c, 300) == 0);
        }
        uint64_t n = sbx_noise_cs_nonce(s.resp_tx);
        CHECK_EQ_INT(sbx_noise_cs_rekey(s.resp_tx), 0);
        CHECK_EQ_INT(sbx_noise_cs_nonce(s.resp_tx), n);
        REQUIRE(sbx_noise_cs_encrypt(s.resp_tx, NULL, 0, buf_a, 300, buf_b) == 0);
        /* The receiver has not rekeyed yet: the message must not open... */
        CHECK_EQ_INT(sbx_noise_cs_decrypt(s.ini_rx, NULL, 0, buf_b, 316, buf_c), SBX_ECRYPTO);
        /* ...and opens once it has. */
        CHECK_EQ_INT(sbx_noise_cs_rekey(s.ini_rx), 0);
        CHECK_EQ_INT(sbx_noise_cs_decrypt(s.ini_rx, NULL, 0, buf_b, 316, buf_c), 0);
        CHECK(memcmp(buf_a, buf_c, 300) == 0);
    }
    /* Rekeying one direction leaves the other alone. */
    REQUIRE(sbx_noise_cs_encrypt(s.ini_tx, NULL, 0, buf_a, 10, buf_b) == 0);
    CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, NULL, 0, buf_b, 26, buf_c), 0);
    session_free(&s);
}

SBX_TEST(nonce_exhaustion)
{
    struct session s;
    REQUIRE(session_new(&s, NULL) == 0);
    sbx_noise_cs_set_nonce(s.ini_tx, UINT64_MAX - 1);
    sbx_noise_cs_set_nonce(s.resp_rx, UINT64_MAX - 1);
    CHECK_EQ_INT(sbx_noise_cs_encrypt(s.ini_tx, NULL, 0, buf_a, 10, buf_b), 0);
    CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, NULL, 0, buf_b, 26, buf_c), 0);
    /* 2^64-1 is reserved (for rekey): no message may use it. */
    CHECK_EQ_INT(sbx_noise_cs_nonce(s.ini_tx), UINT64_MAX);
    CHECK_EQ_INT(sbx_noise_cs_encrypt(s.ini_tx, NULL, 0, buf_a, 10, buf_b), SBX_EEXPIRED);
    CHECK_EQ_INT(sbx_noise_cs_decrypt(s.resp_rx, NULL, 0, buf_b, 26, buf_c), SBX_EEXPIRED);
    /* Rekey still works at that point (it uses the reserved nonce itself). */
    CHECK_EQ_INT(sbx_noise_cs_rekey(s.ini_tx), 0);
    session_free(&s);
}

SBX_TEST(static_key_from_ed25519)
{
    uint8_t ed_pk[2][32], ed_sk[2][64], x_priv[2][32], x_pub[2][32], check[32], rs[32];
    for (int i = 0; i < 2; i++) {
        REQUIRE(crypto_sign_ed25519_keypair(ed_pk[i], ed_sk[i]) == 0);
        CHECK_EQ_INT(sbx_noise_static_from_ed25519(x_priv[i], ed_sk[i]), 0);
        CHECK_EQ_INT(sbx_noise_static_pub_from_ed25519(x_pub[i], ed_pk[i]), 0);
        CHECK_EQ_INT(sbx_noise_pubkey(check, x_priv[i]), 0);
        CHECK(memcmp(check, x_pub[i], 32) == 0);
    }
    sbx_noise_hs *a, *b;
    int who;
    REQUIRE(sbx_noise_hs_new(&a, 1, NULL, 0, x_priv[0], NULL) == 0);
    REQUIRE(sbx_noise_hs_new(&b, 0, NULL, 0, x_priv[1], NULL) == 0);
    CHECK_EQ_INT(exchange(a, b, -1, 0, 0, &who), 0);
    /* Each side sees the other's Ed25519 identity through the Noise key. */
    CHECK_EQ_INT(sbx_noise_hs_remote_static(a, rs), 0);
    CHECK(memcmp(rs, x_pub[1], 32) == 0);
    CHECK_EQ_INT(sbx_noise_hs_remote_static(b, rs), 0);
    CHECK(memcmp(rs, x_pub[0], 32) == 0);
    sbx_noise_hs_free(a);
    sbx_noise_hs_free(b);
    /* An Ed25519 public key that is not a valid point is refused. */
    uint8_t bad[32];
    memset(bad, 0xff, sizeof bad);
    CHECK_EQ_INT(sbx_noise_static_pub_from_ed25519(check, bad), SBX_ECRYPTO);
}

/* ---- Cacophony vectors ---------------------------------------------------- */

static uint8_t *hexdup(json_t *obj, const char *key, size_t *len)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (!s) return NULL;
    size_t n = strlen(s);
    if (n % 2) return NULL;
    uint8_t *out = malloc(n / 2 + 1);
    if (!out) return NULL;
    if (sbx_hex_decode(out, n / 2, s) != 0) {
        free(out);
        return NULL;
    }
    *len = n / 2;
    return out;
}

/* The psk for a psk3 vector: exactly one 32-byte entry. */
static uint8_t *vector_psk(json_t *v, const char *key, int *bad)
{
    json_t *arr = json_object_get(v, key);
    if (!arr) return NULL;
    if (!json_is_array(arr) || json_array_size(arr) != 1) {
        *bad = 1;
        return NULL;
    }
    const char *s = json_string_value(json_array_get(arr, 0));
    uint8_t *out = malloc(32);
    if (!s || !out || strlen(s) != 64 || sbx_hex_decode(out, 32, s) != 0) {
        *bad = 1;
        free(out);
        return NULL;
    }
    return out;
}

static void vector_fail(const char *what, size_t msg)
{
    printf("# %s (message %zu)\n", what, msg);
    sbx_test_failed_ = 1;
}

static void run_vector(json_t *v)
{
    const char *name = json_string_value(json_object_get(v, "protocol_name"));
    bool want_psk = strstr(name, "psk3") != NULL;
    size_t ipl = 0, rpl = 0, l = 0, hlen = 0;
    int bad = 0;
    uint8_t *iprol = hexdup(v, "init_prologue", &ipl);
    uint8_t *rprol = hexdup(v, "resp_prologue", &rpl);
    uint8_t *is = hexdup(v, "init_static", &l);
    uint8_t *ie = hexdup(v, "init_ephemeral", &l);
    uint8_t *rst = hexdup(v, "resp_static", &l);
    uint8_t *re = hexdup(v, "resp_ephemeral", &l);
    uint8_t *hash = hexdup(v, "handshake_hash", &hlen);
    uint8_t *ipsk = vector_psk(v, "init_psks", &bad);
    uint8_t *rpsk = vector_psk(v, "resp_psks", &bad);
    json_t *msgs = json_object_get(v, "messages");
    sbx_noise_hs *ini = NULL, *resp = NULL;
    sbx_noise_cs *itx = NULL, *irx = NULL, *rtx = NULL, *rrx = NULL;
    size_t nmsgs = json_array_size(msgs);

    if (!is || !ie || !rst || !re || !iprol || !rprol || bad || !json_is_array(msgs) ||
        (want_psk != (ipsk != NULL)) || (want_psk != (rpsk != NULL))) {
        vector_fail("vector fields missing or malformed", 0);
        goto done;
    }
    if (nmsgs < 3) {
        vector_fail("fewer than 3 messages", 0);
        goto done;
    }
    if (sbx_noise_hs_new(&ini, 1, iprol, ipl, is, ipsk) != 0 ||
        sbx_noise_hs_new(&resp, 0, rprol, rpl, rst, rpsk) != 0 ||
        sbx_noise_hs_set_ephemeral(ini, ie) != 0 || sbx_noise_hs_set_ephemeral(resp, re) != 0) {
        vector_fail("cannot create handshake states", 0);
        goto done;
    }
    for (size_t i = 0; i < nmsgs; i++) {
        json_t *m = json_array_get(msgs, i);
        size_t plen = 0, clen = 0, outlen = 0;
        uint8_t *pl = hexdup(m, "payload", &plen), *ct = hexdup(m, "ciphertext", &clen);
        /* Messages alternate, the initiator first, handshake and transport
         * alike (XX is a two-way pattern). */
        bool from_ini = i % 2 == 0;
        if (!pl || !ct) {
            vector_fail("message fields missing", i);
        } else if (i < 3) {
            sbx_noise_hs *w = from_ini ? ini : resp, *r = from_ini ? resp : ini;
            if (sbx_noise_hs_write(w, pl, plen, buf_a, sizeof buf_a, &outlen) != 0)
                vector_fail("write failed", i);
            else if (outlen != clen || memcmp(buf_a, ct, clen) != 0)
                vector_fail("ciphertext differs", i);
            if (sbx_noise_hs_read(r, ct, clen, buf_b, sizeof buf_b, &outlen) != 0)
                vector_fail("read failed", i);
            else if (outlen != plen || memcmp(buf_b, pl, plen) != 0)
                vector_fail("payload differs", i);
            if (i == 2) {
                uint8_t h1[64], h2[64];
                if (!sbx_noise_hs_done(ini) || !sbx_noise_hs_done(resp))
                    vector_fail("handshake not done after 3 messages", i);
                if (sbx_noise_hs_hash(ini, h1) != 0 || sbx_noise_hs_hash(resp, h2) != 0)
                    vector_fail("no handshake hash", i);
                else if (memcmp(h1, h2, 64) != 0)
                    vector_fail("handshake hashes differ", i);
                else if (hash && (hlen != 64 || memcmp(h1, hash, 64) != 0))
                    vector_fail("handshake hash differs from the vector", i);
                uint8_t rs[32];
                if (sbx_noise_hs_remote_static(ini, rs) != 0 ||
                    sbx_noise_pubkey(h1, rst) != 0 || memcmp(rs, h1, 32) != 0)
                    vector_fail("initiator saw the wrong responder key", i);
                if (sbx_noise_hs_split(ini, &itx, &irx) != 0 ||
                    sbx_noise_hs_split(resp, &rtx, &rrx) != 0) {
                    vector_fail("split failed", i);
                    free(pl);
                    free(ct);
                    goto done;
                }
            }
        } else {
            sbx_noise_cs *tx = from_ini ? itx : rtx, *rx = from_ini ? rrx : irx;
            if (sbx_noise_cs_encrypt(tx, NULL, 0, pl, plen, buf_a) != 0)
                vector_fail("encrypt failed", i);
            else if (plen + 16 != clen || memcmp(buf_a, ct, clen) != 0)
                vector_fail("transport ciphertext differs", i);
            if (sbx_noise_cs_decrypt(rx, NULL, 0, ct, clen, buf_b) != 0)
                vector_fail("decrypt failed", i);
            else if (clen - 16 != plen || memcmp(buf_b, pl, plen) != 0)
                vector_fail("transport payload differs", i);
        }
        free(pl);
        free(ct);
    }

done:
    sbx_noise_hs_free(ini);
    sbx_noise_hs_free(resp);
    sbx_noise_cs_free(itx);
    sbx_noise_cs_free(irx);
    sbx_noise_cs_free(rtx);
    sbx_noise_cs_free(rrx);
    free(iprol);
    free(rprol);
    free(is);
    free(ie);
    free(rst);
    free(re);
    free(hash);
    free(ipsk);
    free(rpsk);
}

static bool wanted(json_t *v)
{
    const char *name = json_string_value(json_object_get(v, "protocol_name"));
    return name && (strcmp(name, "Noise_XX_25519_ChaChaPoly_BLAKE2b") == 0 ||
                    strcmp(name, "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b") == 0);
}

int main(void)
{
    static const struct sbx_test_case cases[] = {
        SBX_CASE(hmac_blake2b_matches_openssl),
        SBX_CASE(xx_handshake_random_keys),
        SBX_CASE(xxpsk3_same_psk_succeeds),
        SBX_CASE(xxpsk3_mismatched_psk_fails),
        SBX_CASE(prologue_mismatch_fails),
        SBX_CASE(tampered_handshake_fails),
        SBX_CASE(failed_read_leaks_no_plaintext),
        SBX_CASE(wrong_order_is_refused_and_poisons),
        SBX_CASE(zero_dh_result_fails),
        SBX_CASE(oversize_messages_refused),
        SBX_CASE(bad_tag_then_valid_message),
        SBX_CASE(rekey_in_step),
        SBX_CASE(nonce_exhaustion),
        SBX_CASE(static_key_from_ed25519),
    };
    const size_t ncases = SBX_ARRAY_LEN(cases);
    char path[4096];
    const char *shared = getenv("SHOEBOX_SHARED");
    json_error_t jerr;
    json_t *root = NULL, *vectors = NULL;
    size_t nvec = 0, point = 0;
    int failures = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (sodium_init() < 0) return 1;
    if (shared) {
        snprintf(path, sizeof path, "%s/fixtures/noise/cacophony.txt", shared);
        root = json_load_file(path, 0, &jerr);
        vectors = json_object_get(root, "vectors");
    }
    for (size_t i = 0; i < json_array_size(vectors); i++)
        nvec += wanted(json_array_get(vectors, i));

    /* One point per case, one per vector, and one saying vectors ran. */
    printf("TAP version 13\n1..%zu\n", ncases + nvec + 1);
    for (size_t i = 0; i < ncases; i++) {
        sbx_test_failed_ = 0;
        cases[i].fn();
        printf("%s %zu - %s\n", sbx_test_failed_ ? "not ok" : "ok", ++point, cases[i].name);
        failures += sbx_test_failed_;
    }
    for (size_t i = 0; i < json_array_size(vectors); i++) {
        json_t *v = json_array_get(vectors, i);
        if (!wanted(v)) continue;
        sbx_test_failed_ = 0;
        run_vector(v);
        printf("%s %zu - cacophony vector %zu %s\n", sbx_test_failed_ ? "not ok" : "ok",
               ++point, i, json_string_value(json_object_get(v, "protocol_name")));
        failures += sbx_test_failed_;
    }
    printf("# ran %zu cacophony vectors for XX/XXpsk3 25519 ChaChaPoly BLAKE2b\n", nvec);
    if (!root) printf("# cannot load %s\n", shared ? path : "$SHOEBOX_SHARED (unset)");
    printf("%s %zu - cacophony vectors ran (%zu)\n", nvec ? "ok" : "not ok", ++point, nvec);
    failures += nvec == 0;
    json_decref(root);
    return failures ? 1 : 0;
}
