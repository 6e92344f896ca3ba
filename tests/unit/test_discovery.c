/* LAN discovery: the announcement codec, the replay cache, and two discovery
 * instances finding each other over multicast on the loopback interface. */
#include "sbx_test.h"

#include "shoebox/discovery.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t LIB[16] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01};
static const uint8_t NONCE[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const int64_t NOW = 1700000000000; /* 2023-11-14, any fixed time will do */
static const int64_t SKEW = 60000;

static void make_id(struct sbx_identity *id, uint8_t seed_byte)
{
    uint8_t seed[32];
    memset(seed, seed_byte, sizeof seed);
    crypto_sign_seed_keypair(id->pk, id->sk, seed);
}

SBX_TEST(round_trip)
{
    struct sbx_identity id;
    make_id(&id, 7);
    uint8_t pkt[SBX_MAX_DISCOVERY_PACKET];
    size_t len = 0;
    uint16_t one[1] = {22000};
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, one, 1, NOW, NONCE) == 0);
    CHECK_EQ_INT(len, SBX_DISCOVERY_MIN_PACKET);
    CHECK_EQ_INT(len, 144);
    struct sbx_announce a;
    REQUIRE(sbx_discovery_decode(pkt, len, LIB, NOW, SKEW, &a) == 0);
    CHECK(memcmp(a.key, id.pk, 32) == 0);
    CHECK(memcmp(a.nonce, NONCE, 16) == 0);
    CHECK_EQ_INT(a.timestamp_ms, NOW);
    CHECK_EQ_INT(a.n_ports, 1);
    CHECK_EQ_INT(a.ports[0], 22000);

    /* The layout is the documented one. */
    CHECK(memcmp(pkt, "SBXD", 4) == 0);
    CHECK_EQ_INT(pkt[4], 1);
    CHECK_EQ_INT(pkt[5], 1);
    uint8_t tag[16];
    sbx_discovery_tag(LIB, tag);
    CHECK(memcmp(pkt + 6, tag, 16) == 0);
    CHECK(memcmp(pkt + 22, id.pk, 32) == 0);
    CHECK(memcmp(pkt + 62, NONCE, 16) == 0);
    CHECK_EQ_INT(pkt[78], 22000 >> 8);
    CHECK_EQ_INT(pkt[79], 22000 & 0xff);
    /* The tag is BLAKE2b-128 keyed with the library id, and the library id
     * itself appears nowhere in the packet. */
    uint8_t want[16];
    crypto_generichash_blake2b(want, 16, (const uint8_t *)"shoebox/discovery/1", 19, LIB, 16);
    CHECK(memcmp(tag, want, 16) == 0);
    CHECK(memmem(pkt, len, LIB, 16) == NULL);
    /* The signature covers the domain prefix and the body. */
    uint8_t msg[19 + SBX_MAX_DISCOVERY_PACKET];
    memcpy(msg, "shoebox/discovery/1", 19);
    memcpy(msg + 19, pkt, len - 64);
    CHECK(crypto_sign_verify_detached(pkt + len - 64, msg, 19 + len - 64, id.pk) == 0);

    uint16_t four[4] = {1, 443, 22000, 65535};
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, four, 4, NOW, NULL) == 0);
    CHECK_EQ_INT(len, SBX_MAX_DISCOVERY_PACKET);
    REQUIRE(sbx_discovery_decode(pkt, len, LIB, NOW, SKEW, &a) == 0);
    CHECK_EQ_INT(a.n_ports, 4);
    for (size_t i = 0; i < 4; i++) CHECK_EQ_INT(a.ports[i], four[i]);
    CHECK(memcmp(a.nonce, NONCE, 16) != 0); /* a random nonce when none given */
}

SBX_TEST(encode_refuses_bad_arguments)
{
    struct sbx_identity id;
    make_id(&id, 7);
    uint8_t pkt[SBX_MAX_DISCOVERY_PACKET];
    size_t len = 0;
    uint16_t five[5] = {1, 2, 3, 4, 5}, zero[2] = {80, 0};
    CHECK_EQ_INT(sbx_discovery_encode(pkt, &len, &id, LIB, five, 0, NOW, NULL), SBX_EINVAL);
    CHECK_EQ_INT(sbx_discovery_encode(pkt, &len, &id, LIB, five, 5, NOW, NULL), SBX_EINVAL);
    CHECK_EQ_INT(sbx_discovery_encode(pkt, &len, &id, LIB, zero, 2, NOW, NULL), SBX_EINVAL);
    CHECK_EQ_INT(sbx_discovery_encode(pkt, &len, &id, LIB, five, 1, -1, NULL), SBX_EINVAL);
    CHECK_EQ_INT(sbx_discovery_encode(pkt, &len, NULL, LIB, five, 1, NOW, NULL), SBX_EINVAL);
    CHECK_EQ_INT(len, 0);
    struct sbx_announce a;
    CHECK_EQ_INT(sbx_discovery_decode(pkt, 10, LIB, NOW, -1, &a), SBX_EINVAL);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, 10, LIB, NOW, SBX_MAX_DISCOVERY_SKEW_MS + 1, &a),
                 SBX_EINVAL);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, 10, LIB, -5, SKEW, &a), SBX_EINVAL);
    CHECK_EQ_INT(sbx_discovery_decode(NULL, 0, LIB, NOW, SKEW, &a), SBX_EMALFORMED);
}

SBX_TEST(other_library_refused)
{
    struct sbx_identity id;
    make_id(&id, 7);
    uint8_t pkt[SBX_MAX_DISCOVERY_PACKET], other[16];
    memcpy(other, LIB, 16);
    other[15] ^= 1;
    size_t len;
    uint16_t port = 22000;
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, &port, 1, NOW, NONCE) == 0);
    struct sbx_announce a;
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, other, NOW, SKEW, &a), SBX_EREFUSED);
    /* Two libraries have unrelated tags. */
    uint8_t t1[16], t2[16];
    sbx_discovery_tag(LIB, t1);
    sbx_discovery_tag(other, t2);
    CHECK(memcmp(t1, t2, 16) != 0);
}

/* Every single-byte change, anywhere, is refused, and for the fields whose
 * refusal is fixed, with that field's reason. */
SBX_TEST(tampered_bytes_refused)
{
    struct sbx_identity id;
    make_id(&id, 9);
    uint16_t ports[2] = {22000, 22001};
    uint8_t pkt[SBX_MAX_DISCOVERY_PACKET], t[SBX_MAX_DISCOVERY_PACKET];
    size_t len;
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, ports, 2, NOW, NONCE) == 0);
    struct sbx_announce a;
    int tried = 0;
    for (size_t i = 0; i < len; i++) {
        static const uint8_t flips[] = {0x01, 0x80, 0xff};
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(t, pkt, len);
            t[i] ^= flips[f];
            int rc = sbx_discovery_decode(t, len, LIB, NOW, SKEW, &a);
            tried++;
            if (rc == 0) {
                printf("# byte %zu ^ 0x%02x accepted\n", i, flips[f]);
                CHECK(rc != 0);
                continue;
            }
            int want = 0;
            if (i < 4 || i == 5) want = SBX_EMALFORMED; /* magic; port count vs length */
            else if (i == 4) want = SBX_EUNSUPPORTED;
            else if (i < 22) want = SBX_EREFUSED;
            else if (i < 54 || (i >= 62 && i < 78) || i >= 82) want = SBX_ECRYPTO;
            if (want && rc != want) {
                printf("# byte %zu ^ 0x%02x: %s, want %s\n", i, flips[f], sbx_strerror(rc),
                       sbx_strerror(want));
                CHECK_EQ_INT(rc, want);
            }
            /* A timestamp changed by a little fails the signature, by a lot
             * the clock window; a port fails the signature (or is 0). */
            if (i >= 54 && i < 62)
                CHECK(rc == SBX_ECRYPTO || rc == SBX_EEXPIRED);
        }
    }
    CHECK_EQ_INT(tried, (int)len * 3);
}

SBX_TEST(malformed_lengths_refused)
{
    struct sbx_identity id;
    make_id(&id, 9);
    uint16_t ports[3] = {1000, 2000, 3000};
    uint8_t pkt[SBX_MAX_DISCOVERY_PACKET + 8];
    size_t len;
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, ports, 3, NOW, NONCE) == 0);
    struct sbx_announce a;
    for (size_t n = 0; n < len; n++)
        CHECK_EQ_INT(sbx_discovery_decode(pkt, n, LIB, NOW, SKEW, &a), SBX_EMALFORMED);
    memset(pkt + len, 0, sizeof pkt - len);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len + 1, LIB, NOW, SKEW, &a), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, SBX_MAX_DISCOVERY_PACKET + 1, LIB, NOW, SKEW, &a),
                 SBX_ETOOBIG);
    /* Port counts 0 and 5 with a length that would fit them. */
    pkt[5] = 0;
    CHECK_EQ_INT(sbx_discovery_decode(pkt, SBX_MAX_DISCOVERY_PACKET - 8, LIB, NOW, SKEW, &a),
                 SBX_EMALFORMED);
    pkt[5] = 5;
    CHECK_EQ_INT(sbx_discovery_decode(pkt, SBX_MAX_DISCOVERY_PACKET + 2, LIB, NOW, SKEW, &a),
                 SBX_ETOOBIG);
    /* A port 0 is refused before the signature is even looked at. */
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, ports, 3, NOW, NONCE) == 0);
    pkt[78 + 2] = 0;
    pkt[78 + 3] = 0;
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW, SKEW, &a), SBX_EMALFORMED);
}

SBX_TEST(stale_and_future_refused)
{
    struct sbx_identity id;
    make_id(&id, 3);
    uint16_t port = 22000;
    uint8_t pkt[SBX_MAX_DISCOVERY_PACKET];
    size_t len;
    struct sbx_announce a;
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, &port, 1, NOW, NONCE) == 0);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW + SKEW, SKEW, &a), 0);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW + SKEW + 1, SKEW, &a), SBX_EEXPIRED);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW + 3600000, SKEW, &a), SBX_EEXPIRED);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW - SKEW, SKEW, &a), 0);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW - SKEW - 1, SKEW, &a), SBX_EEXPIRED);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, 0, SKEW, &a), SBX_EEXPIRED);
    /* A zero window accepts only the very millisecond. */
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW, 0, &a), 0);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW + 1, 0, &a), SBX_EEXPIRED);
    /* Timestamps at the ends of the range do not wrap into the window. */
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, &port, 1, INT64_MAX, NONCE) == 0);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW, SBX_MAX_DISCOVERY_SKEW_MS, &a),
                 SBX_EEXPIRED);
    memset(pkt + 54, 0xff, 8); /* UINT64_MAX, unsigned: clock first, then signature */
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW, SBX_MAX_DISCOVERY_SKEW_MS, &a),
                 SBX_EEXPIRED);
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, &port, 1, 0, NONCE) == 0);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, 0, 0, &a), 0);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, INT64_MAX, SBX_MAX_DISCOVERY_SKEW_MS, &a),
                 SBX_EEXPIRED);
}

SBX_TEST(replay_refused)
{
    struct sbx_identity id;
    make_id(&id, 5);
    uint16_t port = 22000;
    uint8_t pkt[SBX_MAX_DISCOVERY_PACKET];
    size_t len;
    struct sbx_announce a, b;
    sbx_discovery_replay *r = NULL;
    REQUIRE(sbx_discovery_replay_new(&r, 0) == 0);
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, &port, 1, NOW, NONCE) == 0);
    REQUIRE(sbx_discovery_decode(pkt, len, LIB, NOW, SKEW, &a) == 0);
    CHECK(!sbx_discovery_replay_knows(r, id.pk));
    CHECK_EQ_INT(sbx_discovery_replay_check(r, &a, SKEW, NOW), 0);
    CHECK(sbx_discovery_replay_knows(r, id.pk));
    /* The same packet again, a second later: a replay. */
    REQUIRE(sbx_discovery_decode(pkt, len, LIB, NOW + 1000, SKEW, &b) == 0);
    CHECK_EQ_INT(sbx_discovery_replay_check(r, &b, SKEW, NOW + 1000), SBX_EEXIST);
    /* The same device with a new nonce is a new announcement. */
    REQUIRE(sbx_discovery_encode(pkt, &len, &id, LIB, &port, 1, NOW + 1000, NULL) == 0);
    REQUIRE(sbx_discovery_decode(pkt, len, LIB, NOW + 1000, SKEW, &b) == 0);
    CHECK_EQ_INT(sbx_discovery_replay_check(r, &b, SKEW, NOW + 1000), 0);
    CHECK_EQ_INT(sbx_discovery_replay_count(r), 2);
    /* The same nonce from another key is another announcement too. */
    struct sbx_announce c = a;
    c.key[0] ^= 1;
    CHECK_EQ_INT(sbx_discovery_replay_check(r, &c, SKEW, NOW + 1000), 0);
    CHECK_EQ_INT(sbx_discovery_replay_count(r), 3);
    /* Entries leave once their timestamp is out of the window, when the
     * clock check refuses the packet anyway. */
    CHECK_EQ_INT(sbx_discovery_replay_check(r, &b, SKEW, NOW + SKEW + 500), SBX_EEXIST);
    CHECK_EQ_INT(sbx_discovery_replay_count(r), 1);
    CHECK_EQ_INT(sbx_discovery_decode(pkt, len, LIB, NOW + SKEW + 1001, SKEW, &b), SBX_EEXPIRED);
    CHECK_EQ_INT(sbx_discovery_replay_check(r, &c, SKEW, -1), SBX_EINVAL);
    sbx_discovery_replay_free(r);

    CHECK_EQ_INT(sbx_discovery_replay_new(&r, SBX_MAX_DISCOVERY_REPLAY + 1), SBX_EINVAL);
}

/* A full cache stays at its size and forgets the entry closest to expiry. */
SBX_TEST(replay_cache_bounded)
{
    sbx_discovery_replay *r = NULL;
    REQUIRE(sbx_discovery_replay_new(&r, 4) == 0);
    struct sbx_announce a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < 10; i++) {
        a.key[0] = (uint8_t)i;
        /* Entry 0 is the oldest; later ones are younger. */
        a.timestamp_ms = NOW + i;
        CHECK_EQ_INT(sbx_discovery_replay_check(r, &a, SKEW, NOW), 0);
        CHECK(sbx_discovery_replay_count(r) <= 4);
    }
    CHECK_EQ_INT(sbx_discovery_replay_count(r), 4);
    for (int i = 0; i < 10; i++) {
        a.key[0] = (uint8_t)i;
        CHECK_EQ_INT(sbx_discovery_replay_knows(r, a.key), i >= 6);
    }
    a.key[0] = 9;
    a.timestamp_ms = NOW + 9;
    CHECK_EQ_INT(sbx_discovery_replay_check(r, &a, SKEW, NOW), SBX_EEXIST);
    sbx_discovery_replay_free(r);
}

/* ---- libuv glue ------------------------------------------------------------ */

/* Whether this machine delivers multicast on the loopback interface back to
 * the host: a plain socket joins a group on lo and sends itself a datagram.
 * Nothing leaves the host: lo is the only interface used. */
static bool loopback_multicast_works(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return false;
    bool ok = false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t sl = sizeof sa;
    struct ip_mreq mreq;
    struct in_addr lo = {.s_addr = htonl(INADDR_LOOPBACK)};
    unsigned char one = 1;
    inet_pton(AF_INET, SBX_DISCOVERY_GROUP4, &mreq.imr_multiaddr);
    mreq.imr_interface = lo;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one) != 0)
        goto done;
    inet_pton(AF_INET, SBX_DISCOVERY_GROUP4, &sa.sin_addr);
    if (sendto(fd, "probe", 5, 0, (struct sockaddr *)&sa, sizeof sa) != 5) goto done;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[8];
    ok = poll(&p, 1, 1000) == 1 && recv(fd, buf, sizeof buf, 0) == 5;
done:
    close(fd);
    return ok;
}

/* A UDP port for one test run, so that runs of this test in parallel (other
 * build dirs on the same host) use separate ports. */
static uint16_t test_port(void)
{
    return (uint16_t)(40000 + randombytes_uniform(20000));
}

/* Sends a raw datagram to the group on lo, as a third party on the LAN. */
static void inject(uint16_t port, const uint8_t *pkt, size_t len)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return;
    struct in_addr lo = {.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, SBX_DISCOVERY_GROUP4, &sa.sin_addr);
    (void)sendto(fd, pkt, len, 0, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
}

struct node {
    struct sbx_discovery d;
    struct sbx_identity id;
    uint16_t tcp_port;
    int heard_peer;   /* announcements from the other node */
    int heard_third;  /* announcements from the injected third key */
    const struct node *peer;
    uint8_t third[32];
    bool from_loopback, ports_ok;
};

static void on_found(struct sbx_discovery *d, const struct sbx_announce *a, const struct sockaddr *from)
{
    struct node *n = d->data;
    if (memcmp(a->key, n->peer->id.pk, 32) == 0) {
        n->heard_peer++;
        n->ports_ok = a->n_ports == 1 && a->ports[0] == n->peer->tcp_port;
        n->from_loopback = from->sa_family == AF_INET &&
                           ((const struct sockaddr_in *)from)->sin_addr.s_addr ==
                               htonl(INADDR_LOOPBACK);
    } else if (memcmp(a->key, n->third, 32) == 0) {
        n->heard_third++;
    }
}

struct run {
    uv_loop_t loop;
    uv_timer_t late_start, deadline, poll;
    struct node a, b;
    struct sbx_discovery_config cfg_b;
    uint16_t port;
    int start_b_rc;
    int phase;
    bool timed_out;
    uint8_t third_pkt[SBX_MAX_DISCOVERY_PACKET];
    size_t third_len;
};

static void start_b(uv_timer_t *t)
{
    struct run *r = t->data;
    r->start_b_rc = sbx_discovery_start(&r->b.d, &r->loop, &r->cfg_b, on_found);
}

static void end_run(struct run *r)
{
    sbx_discovery_stop(&r->a.d);
    sbx_discovery_stop(&r->b.d);
    uv_close((uv_handle_t *)&r->late_start, NULL);
    uv_close((uv_handle_t *)&r->deadline, NULL);
    uv_close((uv_handle_t *)&r->poll, NULL);
}

static void on_deadline(uv_timer_t *t)
{
    struct run *r = t->data;
    r->timed_out = true;
    end_run(r);
}

/* Phases: 0 wait until each node heard the other; 1 inject a third device's
 * announcement, its exact replay, a forged and a stale copy; 2 wait until
 * both counted them, then end. */
static void on_poll(uv_timer_t *t)
{
    struct run *r = t->data;
    if (r->phase == 0 && r->a.heard_peer > 0 && r->b.heard_peer > 0) {
        struct sbx_identity third;
        make_id(&third, 0x33);
        memcpy(r->a.third, third.pk, 32);
        memcpy(r->b.third, third.pk, 32);
        uint16_t port = 4242;
        sbx_discovery_encode(r->third_pkt, &r->third_len, &third, LIB, &port, 1, sbx_now_ms(),
                             NULL);
        inject(r->port, r->third_pkt, r->third_len);
        inject(r->port, r->third_pkt, r->third_len); /* replay */
        uint8_t bad[SBX_MAX_DISCOVERY_PACKET];
        memcpy(bad, r->third_pkt, r->third_len);
        bad[r->third_len - 1] ^= 1;
        inject(r->port, bad, r->third_len); /* forged */
        size_t len;
        sbx_discovery_encode(bad, &len, &third, LIB, &port, 1, sbx_now_ms() - 3600 * 1000, NULL);
        inject(r->port, bad, len); /* an hour old */
        uint8_t other[16] = {0};
        sbx_discovery_encode(bad, &len, &third, other, &port, 1, sbx_now_ms(), NULL);
        inject(r->port, bad, len); /* another library */
        inject(r->port, (const uint8_t *)"hello", 5);
        r->phase = 1;
        return;
    }
    if (r->phase == 1) {
        struct sbx_discovery_stats sa, sb;
        sbx_discovery_get_stats(&r->a.d, &sa);
        sbx_discovery_get_stats(&r->b.d, &sb);
        if (sa.replayed >= 1 && sb.replayed >= 1 && sa.bad_signature >= 1 &&
            sb.bad_signature >= 1 && sa.stale >= 1 && sb.stale >= 1 && sa.other_library >= 1 &&
            sb.other_library >= 1 && sa.malformed >= 1 && sb.malformed >= 1)
            r->phase = 2;
        return;
    }
    if (r->phase == 2) {
        struct sbx_discovery_stats sa;
        sbx_discovery_get_stats(&r->a.d, &sa);
        CHECK(sa.sent >= 1);
        CHECK(sa.own >= 1);   /* our own announcements came back and were skipped */
        CHECK(sa.throttled == 0);
        end_run(r);
        r->phase = 3;
    }
}

SBX_TEST(two_instances_find_each_other)
{
    if (!loopback_multicast_works()) SKIP("no multicast");
    struct run *r = calloc(1, sizeof *r);
    REQUIRE(r);
    REQUIRE(uv_loop_init(&r->loop) == 0);
    r->port = test_port();
    make_id(&r->a.id, 0xa1);
    make_id(&r->b.id, 0xb2);
    r->a.tcp_port = 22001;
    r->b.tcp_port = 22002;
    r->a.peer = &r->b;
    r->b.peer = &r->a;
    r->a.d.data = &r->a;
    r->b.d.data = &r->b;
    /* The default 30 s interval: B starts after A's first announcement, so B
     * hears of A only because A answers a newcomer at once. */
    struct sbx_discovery_config ca = {
        .id = &r->a.id, .library = LIB, .ports = &r->a.tcp_port, .n_ports = 1,
        .udp_port = r->port, .interface = "lo", .ipv4_only = true,
    };
    r->cfg_b = ca;
    r->cfg_b.id = &r->b.id;
    r->cfg_b.ports = &r->b.tcp_port;
    int rc = sbx_discovery_start(&r->a.d, &r->loop, &ca, on_found);
    CHECK_EQ_INT(rc, 0);
    if (rc == 0) {
        uv_timer_init(&r->loop, &r->late_start);
        uv_timer_init(&r->loop, &r->deadline);
        uv_timer_init(&r->loop, &r->poll);
        r->late_start.data = r->deadline.data = r->poll.data = r;
        uv_timer_start(&r->late_start, start_b, 300, 0);
        uv_timer_start(&r->deadline, on_deadline, 10000, 0);
        uv_timer_start(&r->poll, on_poll, 20, 20);
        uint64_t t0 = uv_hrtime();
        uv_run(&r->loop, UV_RUN_DEFAULT);
        double ms = (double)(uv_hrtime() - t0) / 1e6;
        printf("# exchange took %.0f ms\n", ms);
        CHECK_EQ_INT(r->start_b_rc, 0);
        CHECK(!r->timed_out);
        CHECK(r->a.heard_peer >= 1);
        CHECK(r->b.heard_peer >= 1);
        CHECK(r->a.ports_ok && r->b.ports_ok);
        CHECK(r->a.from_loopback && r->b.from_loopback);
        /* The third device was heard once each: its replay was refused. */
        CHECK_EQ_INT(r->a.heard_third, 1);
        CHECK_EQ_INT(r->b.heard_third, 1);
        CHECK_EQ_INT(r->phase, 3);
    }
    CHECK_EQ_INT(uv_loop_close(&r->loop), 0); /* every handle closed */
    free(r);
}

/* A failed start leaves nothing behind: no handle on the loop, `d` as it was. */
SBX_TEST(failed_start_leaves_nothing)
{
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    struct sbx_identity id;
    make_id(&id, 1);
    uint16_t tcp = 22000;
    struct sbx_discovery d = {.data = &tcp};
    struct sbx_discovery_config cfg = {
        .id = &id, .library = LIB, .ports = &tcp, .n_ports = 1, .interface = "lo",
        .udp_port = test_port(), .ipv4_only = true,
    };
    struct sbx_discovery_config bad = cfg;
    bad.interface = "no-such-if0";
    CHECK_EQ_INT(sbx_discovery_start(&d, &loop, &bad, on_found), SBX_ENOENT);
    bad = cfg;
    bad.group4 = "192.0.2.1"; /* not a multicast group */
    CHECK_EQ_INT(sbx_discovery_start(&d, &loop, &bad, on_found), SBX_EINVAL);
    bad = cfg;
    bad.n_ports = 0;
    CHECK_EQ_INT(sbx_discovery_start(&d, &loop, &bad, on_found), SBX_EINVAL);
    bad = cfg;
    bad.max_skew_ms = -1;
    CHECK_EQ_INT(sbx_discovery_start(&d, &loop, &bad, on_found), SBX_EINVAL);

    /* The port held by a socket that does not share it: the bind fails after
     * the libuv handle exists, which must still be closed and freed. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(cfg.udp_port)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        CHECK_EQ_INT(sbx_discovery_start(&d, &loop, &cfg, on_found), SBX_EBUSY);
    }
    close(fd);
    CHECK(d.impl == NULL);
    CHECK(d.data == &tcp);
    CHECK_EQ_INT(sbx_discovery_announce(&d), SBX_ESTATE);
    sbx_discovery_stop(&d); /* a no-op on a stopped handle */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);

    /* Start then stop at once, before the first announcement. */
    REQUIRE(uv_loop_init(&loop) == 0);
    CHECK_EQ_INT(sbx_discovery_start(&d, &loop, &cfg, on_found), 0);
    CHECK(d.impl != NULL);
    sbx_discovery_stop(&d);
    CHECK(d.impl == NULL);
    sbx_discovery_stop(&d);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

SBX_TEST_MAIN(SBX_CASE(round_trip), SBX_CASE(encode_refuses_bad_arguments),
              SBX_CASE(other_library_refused), SBX_CASE(tampered_bytes_refused),
              SBX_CASE(malformed_lengths_refused), SBX_CASE(stale_and_future_refused),
              SBX_CASE(replay_refused), SBX_CASE(replay_cache_bounded),
              SBX_CASE(two_instances_find_each_other), SBX_CASE(failed_start_leaves_nothing))
