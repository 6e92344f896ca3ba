/* Fuzzes the discovery announcement decoder and the replay cache.
 *
 * The first input byte picks a mode. Even: the rest is a datagram as it
 * would arrive from the LAN. Odd: the rest is a datagram whose key and
 * signature the harness replaces with a valid pair over whatever the body
 * says, so the fuzzer reaches the code behind the signature check; there,
 * every accepted announcement must encode back to exactly the same bytes,
 * and the replay cache must take it once and refuse it the second time. */
#include "shoebox/discovery.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The seeds are stamped with this time and this library. */
#define FUZZ_NOW 1700000000000ll
static const uint8_t LIB[16] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sbx_identity id;
    static sbx_discovery_replay *replay;
    static int ready;
    if (!ready) {
        uint8_t seed[32];
        SBX_ASSERT(sodium_init() >= 0);
        memset(seed, 0x5a, sizeof seed);
        crypto_sign_seed_keypair(id.pk, id.sk, seed);
        SBX_ASSERT(sbx_discovery_replay_new(&replay, 8) == 0);
        ready = 1;
    }
    if (size < 1) return 0;
    int resign = data[0] & 1;
    const int64_t skew = (data[0] >> 1) % 2 ? 1000 : SBX_MAX_DISCOVERY_SKEW_MS;
    size_t len = size - 1;
    if (len > SBX_MAX_DISCOVERY_PACKET + 16) len = SBX_MAX_DISCOVERY_PACKET + 16;
    uint8_t pkt[SBX_MAX_DISCOVERY_PACKET + 16];
    memcpy(pkt, data + 1, len);

    if (resign && len >= SBX_DISCOVERY_MIN_PACKET && len <= SBX_MAX_DISCOVERY_PACKET) {
        /* Sign bytes 0..len-64 as the layout would, whatever they hold. */
        size_t body = len - 64;
        uint8_t msg[19 + SBX_MAX_DISCOVERY_PACKET];
        memcpy(pkt + 22, id.pk, 32);
        memcpy(msg, SBX_DISCOVERY_DOMAIN, 19);
        memcpy(msg + 19, pkt, body);
        crypto_sign_detached(pkt + body, NULL, msg, 19 + body, id.sk);
    }

    struct sbx_announce a;
    int rc = sbx_discovery_decode(pkt, len, LIB, FUZZ_NOW, skew, &a);
    SBX_ASSERT(rc == 0 || rc == SBX_ETOOBIG || rc == SBX_EMALFORMED || rc == SBX_EUNSUPPORTED ||
               rc == SBX_EREFUSED || rc == SBX_EEXPIRED || rc == SBX_ECRYPTO);
    if (len > SBX_MAX_DISCOVERY_PACKET) SBX_ASSERT(rc == SBX_ETOOBIG);
    if (rc != 0) return 0;

    SBX_ASSERT(a.n_ports >= 1 && a.n_ports <= SBX_MAX_DISCOVERY_PORTS);
    SBX_ASSERT(a.timestamp_ms >= FUZZ_NOW - skew && a.timestamp_ms <= FUZZ_NOW + skew);
    for (size_t i = 0; i < a.n_ports; i++) SBX_ASSERT(a.ports[i] != 0);
    if (memcmp(a.key, id.pk, 32) == 0) {
        /* Ed25519 signatures are deterministic: the same fields give the
         * same packet, byte for byte. */
        uint8_t again[SBX_MAX_DISCOVERY_PACKET];
        size_t again_len = 0;
        SBX_ASSERT(sbx_discovery_encode(again, &again_len, &id, LIB, a.ports, a.n_ports,
                                        a.timestamp_ms, a.nonce) == 0);
        SBX_ASSERT(again_len == len && memcmp(again, pkt, len) == 0);
    }
    int first = sbx_discovery_replay_check(replay, &a, skew, FUZZ_NOW);
    SBX_ASSERT(first == 0 || first == SBX_EEXIST);
    SBX_ASSERT(sbx_discovery_replay_check(replay, &a, skew, FUZZ_NOW) == SBX_EEXIST);
    SBX_ASSERT(sbx_discovery_replay_count(replay) <= 8);
    return 0;
}
