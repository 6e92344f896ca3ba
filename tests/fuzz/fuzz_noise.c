/* Fuzzes the Noise handshake and transport with attacker-chosen messages.
 *
 * The first input byte picks where the rest goes:
 *   0/1  message 1 to an XX / XXpsk3 responder (then it writes message 2),
 *   2/3  message 2 to an XX / XXpsk3 initiator that sent message 1,
 *   4/5  message 3 to an XX / XXpsk3 responder after a real message 1 and 2,
 *   6    a transport message to the responder's receiving cipher state.
 * Every key is fixed so runs are reproducible and the seed corpus can hold
 * valid messages (which reach the success paths). Build with
 * -DFUZZ_NOISE_GEN and a main is added that writes those seeds:
 *   cc -DFUZZ_NOISE_GEN -Iinclude tests/fuzz/fuzz_noise.c BUILD/libshoebox_core.a \
 *      -lsodium -o gen && ./gen tests/fuzz/corpus/noise */
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/noise.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t prologue[] = "shoebox/1";
static uint8_t ini_s[32], ini_e[32], resp_s[32], resp_e[32], psk[32];
static uint8_t payload[SBX_NOISE_MAX_MSG];
static uint8_t msgbuf[SBX_NOISE_MAX_MSG];

static void init_keys(void)
{
    static int done;
    if (done) return;
    SBX_ASSERT(sodium_init() >= 0);
    for (int i = 0; i < 32; i++) {
        ini_s[i] = (uint8_t)(i + 1);
        ini_e[i] = (uint8_t)(i + 51);
        resp_s[i] = (uint8_t)(i + 101);
        resp_e[i] = (uint8_t)(i + 151);
        psk[i] = (uint8_t)(i + 201);
    }
    done = 1;
}

static sbx_noise_hs *make(int initiator, int with_psk)
{
    sbx_noise_hs *hs = NULL;
    SBX_ASSERT(sbx_noise_hs_new(&hs, initiator, prologue, sizeof prologue - 1,
                                initiator ? ini_s : resp_s, with_psk ? psk : NULL) == 0);
    SBX_ASSERT(sbx_noise_hs_set_ephemeral(hs, initiator ? ini_e : resp_e) == 0);
    return hs;
}

/* Writes the next message of `w` with a short payload into msgbuf. */
static size_t write_msg(sbx_noise_hs *w)
{
    size_t n = 0;
    SBX_ASSERT(sbx_noise_hs_write(w, (const uint8_t *)"seed", 4, msgbuf, sizeof msgbuf, &n) == 0);
    return n;
}

/* Reads attacker input and checks the failure rules hold. */
static int read_checked(sbx_noise_hs *r, const uint8_t *msg, size_t len)
{
    size_t plen = 12345;
    int rc = sbx_noise_hs_read(r, msg, len, payload, sizeof payload, &plen);
    if (rc == 0) {
        SBX_ASSERT(plen <= len);
    } else {
        SBX_ASSERT(rc < 0 && plen == 0);
        SBX_ASSERT(sbx_noise_hs_turn(r) == SBX_ESTATE);
        SBX_ASSERT(!sbx_noise_hs_done(r));
    }
    return rc;
}

static void finish(sbx_noise_hs *hs)
{
    sbx_noise_cs *tx = NULL, *rx = NULL;
    uint8_t h[64], rs[32];
    if (sbx_noise_hs_turn(hs) == SBX_NOISE_TURN_WRITE) {
        size_t n = 0;
        if (sbx_noise_hs_write(hs, NULL, 0, msgbuf, sizeof msgbuf, &n) != 0) return;
    }
    if (!sbx_noise_hs_done(hs)) return;
    SBX_ASSERT(sbx_noise_hs_hash(hs, h) == 0);
    SBX_ASSERT(sbx_noise_hs_remote_static(hs, rs) == 0);
    SBX_ASSERT(sbx_noise_hs_split(hs, &tx, &rx) == 0);
    sbx_noise_cs_free(tx);
    sbx_noise_cs_free(rx);
}

/* The responder's receive cipher state of a fixed XX session. */
static sbx_noise_cs *transport_rx(sbx_noise_cs **ini_tx_out)
{
    static sbx_noise_cs *ini_tx, *resp_rx;
    if (!resp_rx) {
        sbx_noise_hs *i = make(1, 0), *r = make(0, 0);
        sbx_noise_cs *ini_rx, *resp_tx;
        size_t n, plen;
        for (int m = 0; m < 3; m++) {
            n = write_msg(m % 2 ? r : i);
            SBX_ASSERT(sbx_noise_hs_read(m % 2 ? i : r, msgbuf, n, payload, sizeof payload,
                                         &plen) == 0);
        }
        SBX_ASSERT(sbx_noise_hs_split(i, &ini_tx, &ini_rx) == 0);
        SBX_ASSERT(sbx_noise_hs_split(r, &resp_tx, &resp_rx) == 0);
        sbx_noise_cs_free(ini_rx);
        sbx_noise_cs_free(resp_tx);
        sbx_noise_hs_free(i);
        sbx_noise_hs_free(r);
    }
    if (ini_tx_out) *ini_tx_out = ini_tx;
    return resp_rx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sbx_noise_hs *a = NULL, *b = NULL;
    if (size < 1) return 0;
    init_keys();
    unsigned mode = data[0] % 7;
    const uint8_t *msg = data + 1;
    size_t len = size - 1;
    int with_psk = mode % 2;

    switch (mode) {
    case 0:
    case 1:
        a = make(0, with_psk);
        if (read_checked(a, msg, len) == 0) {
            /* Message 2 runs DH against the attacker's ephemeral key. */
            size_t n = 0;
            int rc = sbx_noise_hs_write(a, NULL, 0, msgbuf, sizeof msgbuf, &n);
            SBX_ASSERT(rc == 0 || sbx_noise_hs_turn(a) == SBX_ESTATE);
        }
        break;
    case 2:
    case 3:
        a = make(1, with_psk);
        write_msg(a);
        if (read_checked(a, msg, len) == 0) finish(a);
        break;
    case 4:
    case 5: {
        size_t n, plen;
        a = make(1, with_psk);
        b = make(0, with_psk);
        n = write_msg(a);
        SBX_ASSERT(sbx_noise_hs_read(b, msgbuf, n, payload, sizeof payload, &plen) == 0);
        n = write_msg(b);
        SBX_ASSERT(sbx_noise_hs_read(a, msgbuf, n, payload, sizeof payload, &plen) == 0);
        if (read_checked(b, msg, len) == 0) finish(b);
        break;
    }
    default: {
        sbx_noise_cs *rx = transport_rx(NULL);
        sbx_noise_cs_set_nonce(rx, 0);
        int rc = sbx_noise_cs_decrypt(rx, NULL, 0, msg, len, payload);
        SBX_ASSERT(rc == 0 ? sbx_noise_cs_nonce(rx) == 1 : sbx_noise_cs_nonce(rx) == 0);
        if (rc != 0 && len > 16) SBX_ASSERT(sodium_is_zero(payload, len - 16));
        break;
    }
    }
    sbx_noise_hs_free(a);
    sbx_noise_hs_free(b);
    return 0;
}

#ifdef FUZZ_NOISE_GEN
static void put(const char *dir, const char *name, uint8_t mode, const uint8_t *m, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    SBX_ASSERT(f);
    fputc(mode, f);
    fwrite(m, 1, n, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    init_keys();
    for (int p = 0; p < 2; p++) {
        sbx_noise_hs *i = make(1, p), *r = make(0, p);
        size_t n, plen;
        char name[64];
        for (int m = 0; m < 3; m++) {
            n = write_msg(m % 2 ? r : i);
            snprintf(name, sizeof name, "%s_msg%d", p ? "xxpsk3" : "xx", m + 1);
            put(argv[1], name, (uint8_t)(2 * m + p), msgbuf, n);
            SBX_ASSERT(sbx_noise_hs_read(m % 2 ? i : r, msgbuf, n, payload, sizeof payload,
                                         &plen) == 0);
        }
        sbx_noise_hs_free(i);
        sbx_noise_hs_free(r);
    }
    sbx_noise_cs *tx;
    transport_rx(&tx);
    sbx_noise_cs_set_nonce(tx, 0);
    SBX_ASSERT(sbx_noise_cs_encrypt(tx, NULL, 0, (const uint8_t *)"transport", 9, msgbuf) == 0);
    put(argv[1], "transport", 6, msgbuf, 25);
    put(argv[1], "short", 0, (const uint8_t *)"x", 1);
    return 0;
}
#endif
