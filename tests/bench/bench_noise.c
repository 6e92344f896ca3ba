/* Noise micro benchmark: handshakes per second and transport throughput.
 *
 *   bench_noise [seconds-per-measurement]   (default 2)
 *
 * Handshakes run both sides in one thread, so one "handshake" is the CPU of
 * an initiator plus a responder (new states, 3 messages, split). Transport
 * messages are the largest Noise allows: 65535 bytes on the wire, 65519 of
 * plaintext ("64 KiB" messages would exceed the limit by one byte). For
 * reference it also times libcrypto's ChaCha20-Poly1305 on the same sizes. */
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/noise.h"
#include "shoebox/util.h"

#include "bench_wire.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t pt[SBX_MAX_MSG], ct[SBX_NOISE_MAX_MSG], back[SBX_MAX_MSG];

static void handshake(const uint8_t is[32], const uint8_t rs[32], const uint8_t *psk)
{
    static const uint8_t prologue[] = "shoebox/1";
    uint8_t msg[256], pl[256];
    size_t n, pn;
    sbx_noise_hs *i, *r;
    sbx_noise_cs *a, *b, *c, *d;
    SBX_ASSERT(sbx_noise_hs_new(&i, 1, prologue, 9, is, psk) == 0);
    SBX_ASSERT(sbx_noise_hs_new(&r, 0, prologue, 9, rs, psk) == 0);
    for (int m = 0; m < 3; m++) {
        sbx_noise_hs *w = m % 2 ? r : i, *rd = m % 2 ? i : r;
        SBX_ASSERT(sbx_noise_hs_write(w, NULL, 0, msg, sizeof msg, &n) == 0);
        SBX_ASSERT(sbx_noise_hs_read(rd, msg, n, pl, sizeof pl, &pn) == 0);
    }
    SBX_ASSERT(sbx_noise_hs_split(i, &a, &b) == 0);
    SBX_ASSERT(sbx_noise_hs_split(r, &c, &d) == 0);
    sbx_noise_cs_free(a);
    sbx_noise_cs_free(b);
    sbx_noise_cs_free(c);
    sbx_noise_cs_free(d);
    sbx_noise_hs_free(i);
    sbx_noise_hs_free(r);
}

static void bench_handshakes(double secs, const uint8_t *psk)
{
    uint8_t is[32], rs[32];
    randombytes_buf(is, 32);
    randombytes_buf(rs, 32);
    long count = 0;
    double t0 = now_s(), t;
    do {
        for (int k = 0; k < 20; k++) handshake(is, rs, psk);
        count += 20;
        t = now_s() - t0;
    } while (t < secs);
    printf("handshake %-7s %8.0f handshakes/s (both sides, one core)\n",
           psk ? "XXpsk3" : "XX", (double)count / t);
}

static void bench_transport(double secs)
{
    sbx_noise_cs *tx, *rx;
    size_t len = SBX_MAX_MSG;
    randombytes_buf(pt, sizeof pt);

    bench_wire_open(&tx, &rx);

    long count = 0;
    double t0 = now_s(), t;
    do {
        for (int j = 0; j < 50; j++) {
            SBX_ASSERT(sbx_noise_cs_encrypt(tx, NULL, 0, pt, len, ct) == 0);
            SBX_ASSERT(sbx_noise_cs_decrypt(rx, NULL, 0, ct, len + 16, back) == 0);
        }
        count += 50;
        t = now_s() - t0;
    } while (t < secs);
    SBX_ASSERT(memcmp(pt, back, len) == 0);
    printf("transport encrypt+decrypt %8.1f MB/s of plaintext (%zu-byte messages, %.0f msg/s)\n",
           (double)count * (double)len / t / 1e6, len, (double)count / t);

    count = 0;
    t0 = now_s();
    do {
        for (int j = 0; j < 50; j++)
            SBX_ASSERT(sbx_noise_cs_encrypt(tx, NULL, 0, pt, len, ct) == 0);
        count += 50;
        t = now_s() - t0;
    } while (t < secs);
    printf("transport encrypt only    %8.1f MB/s\n", (double)count * (double)len / t / 1e6);

    sbx_noise_cs_free(tx);
    sbx_noise_cs_free(rx);
}

/* The same AEAD through libcrypto, as a yardstick for the transport. */
static void bench_libcrypto(double secs)
{
    EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new(), *d = EVP_CIPHER_CTX_new();
    uint8_t key[32], nonce[12] = {0}, tag[16];
    int outl;
    size_t len = SBX_MAX_MSG;
    randombytes_buf(key, 32);
    SBX_ASSERT(EVP_EncryptInit_ex(e, EVP_chacha20_poly1305(), NULL, key, NULL) == 1);
    SBX_ASSERT(EVP_DecryptInit_ex(d, EVP_chacha20_poly1305(), NULL, key, NULL) == 1);
    long count = 0;
    double t0 = now_s(), t;
    do {
        for (int j = 0; j < 50; j++) {
            nonce[4]++;
            SBX_ASSERT(EVP_EncryptInit_ex(e, NULL, NULL, NULL, nonce) == 1);
            SBX_ASSERT(EVP_EncryptUpdate(e, ct, &outl, pt, (int)len) == 1);
            SBX_ASSERT(EVP_EncryptFinal_ex(e, ct + outl, &outl) == 1);
            SBX_ASSERT(EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1);
            SBX_ASSERT(EVP_DecryptInit_ex(d, NULL, NULL, NULL, nonce) == 1);
            SBX_ASSERT(EVP_DecryptUpdate(d, back, &outl, ct, (int)len) == 1);
            SBX_ASSERT(EVP_CIPHER_CTX_ctrl(d, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1);
            SBX_ASSERT(EVP_DecryptFinal_ex(d, back + outl, &outl) == 1);
        }
        count += 50;
        t = now_s() - t0;
    } while (t < secs);
    SBX_ASSERT(memcmp(pt, back, len) == 0);
    printf("reference: libcrypto ChaCha20-Poly1305 encrypt+decrypt %8.1f MB/s\n",
           (double)count * (double)len / t / 1e6);
    EVP_CIPHER_CTX_free(e);
    EVP_CIPHER_CTX_free(d);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    if (secs <= 0) secs = 2.0;
    if (sodium_init() < 0) return 1;
    bench_handshakes(secs, NULL);
    bench_handshakes(secs, (const uint8_t *)"0123456789abcdef0123456789abcdef");
    bench_transport(secs);
    bench_libcrypto(secs);
    return 0;
}
