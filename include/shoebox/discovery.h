/* LAN discovery: devices of one library find each other on the local network
 * by UDP multicast, the way Syncthing's local discovery does, but without
 * telling the network which library they belong to.
 *
 * Every device multicasts a signed announcement every 30 s (and once at
 * start) to 239.255.77.77 and ff12::7783, UDP port 27183. The announcement
 * says "the device with Ed25519 key K listens on TCP ports P", carries a tag
 * that only devices knowing the library id recognise, and a timestamp and a
 * random nonce against replays. Nothing in it is secret, and the library id
 * is not in it. A receiver that knows the library checks the tag, the clock
 * window, the signature and its replay cache, and hands (K, sender address,
 * ports) to the daemon, which connects and lets the Noise handshake prove K:
 * an announcement is only a hint where to knock.
 *
 * Packet (all integers big-endian), SBX_DISCOVERY_VERSION 1:
 *
 *   off  size  field
 *     0     4  magic "SBXD"
 *     4     1  version (1)
 *     5     1  n, number of TCP ports (1..SBX_MAX_DISCOVERY_PORTS)
 *     6    16  tag = BLAKE2b-128(key = library id, "shoebox/discovery/1")
 *    22    32  Ed25519 public key of the device
 *    54     8  timestamp, ms since the Unix epoch
 *    62    16  random nonce
 *    78   2n   TCP ports, each 1..65535
 * 78+2n    64  Ed25519 signature of "shoebox/discovery/1" || bytes 0..78+2n
 *
 * What an observer on the LAN learns: that shoebox runs here, the device key
 * and ports, and (from the constant tag) which announcements belong to one
 * library. It cannot tell which library that is, nor forge announcements.
 *
 * Two layers, as everywhere in shoebox: a sans-I/O codec (encode, decode,
 * replay cache) that the tests and the fuzzer drive directly, and a thin
 * libuv glue that owns the sockets and the timer. */
#ifndef SHOEBOX_DISCOVERY_H
#define SHOEBOX_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "shoebox/identity.h"
#include "shoebox/limits.h"

#define SBX_DISCOVERY_PORT 27183
#define SBX_DISCOVERY_GROUP4 "239.255.77.77" /* IPv4 organization-local scope */
#define SBX_DISCOVERY_GROUP6 "ff12::7783"    /* IPv6 link-local scope, transient */
#define SBX_DISCOVERY_DOMAIN "shoebox/discovery/1"
#define SBX_DISCOVERY_VERSION 1
#define SBX_DISCOVERY_MIN_PACKET (SBX_MAX_DISCOVERY_PACKET - 2u * (SBX_MAX_DISCOVERY_PORTS - 1u))
#define SBX_DISCOVERY_DEFAULT_INTERVAL_MS 30000u
/* Announcements stamped further than this from the receiver's clock, either
 * way, are refused (ms). */
#define SBX_DISCOVERY_DEFAULT_SKEW_MS (5 * 60 * 1000)

/* A decoded announcement. */
struct sbx_announce {
    uint8_t key[32];
    uint8_t nonce[16];
    int64_t timestamp_ms;
    uint16_t ports[SBX_MAX_DISCOVERY_PORTS];
    size_t n_ports;
};

/* ---- sans-I/O codec ----------------------------------------------------- */

/* The library's discovery tag: BLAKE2b-128 keyed with the 16-byte library id
 * over SBX_DISCOVERY_DOMAIN. */
void sbx_discovery_tag(const uint8_t library[16], uint8_t tag[16]);

/* Builds a signed announcement of 1..SBX_MAX_DISCOVERY_PORTS TCP ports (each
 * non-zero) into `out`; *out_len gets its size. `nonce` may be NULL for a
 * random one (tests pass a fixed one). SBX_EINVAL for a bad argument (no
 * ports, too many, port 0, negative time). */
int sbx_discovery_encode(uint8_t out[SBX_MAX_DISCOVERY_PACKET], size_t *out_len,
                         const struct sbx_identity *id, const uint8_t library[16],
                         const uint16_t *ports, size_t n_ports, int64_t now_ms,
                         const uint8_t nonce[16]);

/* Checks and decodes an announcement for `library`. The checks run cheapest
 * first, so a stranger's packet never costs a signature check:
 *   SBX_ETOOBIG       longer than SBX_MAX_DISCOVERY_PACKET
 *   SBX_EMALFORMED    wrong magic, length or port count, or a port 0
 *   SBX_EUNSUPPORTED  another version of the format
 *   SBX_EREFUSED      the tag belongs to another library
 *   SBX_EEXPIRED      the timestamp is more than max_skew_ms before or after
 *                     now_ms (a stale replay, or a sender's clock far off)
 *   SBX_ECRYPTO       the signature does not verify
 *   SBX_EINVAL        bad arguments (max_skew_ms outside
 *                     0..SBX_MAX_DISCOVERY_SKEW_MS, negative now_ms)
 * `out` is filled only on success. Replays inside the window are the replay
 * cache's job (below). */
int sbx_discovery_decode(const uint8_t *buf, size_t len, const uint8_t library[16],
                         int64_t now_ms, int64_t max_skew_ms, struct sbx_announce *out);

/* A bounded memory of the (key, nonce) pairs of accepted announcements, each
 * kept until its timestamp leaves the skew window (after which decode refuses
 * the packet anyway). When full, the entry closest to expiry is dropped: a
 * replay of that one packet would then pass, which at worst makes a daemon
 * knock once more at an address where the Noise handshake fails. */
typedef struct sbx_discovery_replay sbx_discovery_replay;

/* capacity 1..SBX_MAX_DISCOVERY_REPLAY; 0 means SBX_MAX_DISCOVERY_REPLAY. */
int sbx_discovery_replay_new(sbx_discovery_replay **out, size_t capacity);
void sbx_discovery_replay_free(sbx_discovery_replay *r);
/* Returns 0 and remembers `a` when its (key, nonce) is new, SBX_EEXIST for a
 * replay. `a` must have passed sbx_discovery_decode with the same skew. */
int sbx_discovery_replay_check(sbx_discovery_replay *r, const struct sbx_announce *a,
                               int64_t max_skew_ms, int64_t now_ms);
/* Whether any remembered announcement came from `key`. */
bool sbx_discovery_replay_knows(const sbx_discovery_replay *r, const uint8_t key[32]);
/* Entries held now. */
size_t sbx_discovery_replay_count(const sbx_discovery_replay *r);

/* ---- libuv glue --------------------------------------------------------- */

struct sbx_discovery_config {
    const struct sbx_identity *id; /* signs the announcements (copied) */
    const uint8_t *library;        /* 16-byte library id (copied) */
    const uint16_t *ports;         /* TCP ports to announce, 1..SBX_MAX_DISCOVERY_PORTS */
    size_t n_ports;
    uint16_t udp_port;      /* 0: SBX_DISCOVERY_PORT */
    const char *group4;     /* NULL: SBX_DISCOVERY_GROUP4 */
    const char *group6;     /* NULL: SBX_DISCOVERY_GROUP6 */
    bool ipv4_only;         /* skip IPv6 (which is otherwise best effort) */
    /* One interface by name ("eth0", "lo"). NULL: every interface that has
     * an address and is not loopback, or the loopback ones when there is no
     * other; re-read at every announcement, so interfaces that come up later
     * (a laptop joining Wi-Fi) are joined then. */
    const char *interface;
    uint64_t interval_ms;   /* 0: SBX_DISCOVERY_DEFAULT_INTERVAL_MS */
    int64_t max_skew_ms;    /* 0: SBX_DISCOVERY_DEFAULT_SKEW_MS */
};

struct sbx_discovery;

/* Called on the loop for every valid, fresh announcement from another device
 * of the library: expect one per peer, interface and address family every
 * interval (the daemon ignores peers it is connected to). `from` is the
 * sender's address (its port is the UDP one; connect to a->ports). The
 * callback may call sbx_discovery_stop. */
typedef void (*sbx_discovery_cb)(struct sbx_discovery *d, const struct sbx_announce *a,
                                 const struct sockaddr *from);

/* Caller-owned, libuv style: `data` is the caller's; `impl` is private. */
struct sbx_discovery {
    void *data;
    struct sbx_discovery_impl *impl;
};

/* Counters, for logs and tests. */
struct sbx_discovery_stats {
    uint64_t sent;           /* announcements sent (one per interface and family) */
    uint64_t send_errors;
    uint64_t received;       /* datagrams received */
    uint64_t accepted;       /* handed to the callback */
    uint64_t own;            /* our own announcements, looped back */
    uint64_t other_library;  /* SBX_EREFUSED */
    uint64_t malformed;      /* SBX_EMALFORMED, SBX_ETOOBIG, SBX_EUNSUPPORTED */
    uint64_t stale;          /* SBX_EEXPIRED */
    uint64_t bad_signature;  /* SBX_ECRYPTO */
    uint64_t replayed;       /* refused by the replay cache */
    uint64_t throttled;      /* dropped: over SBX_MAX_DISCOVERY_VERIFY_PER_S */
    bool ipv6;               /* the IPv6 socket is open */
};

/* Opens the UDP sockets (port shared with other processes: SO_REUSEADDR),
 * joins the group(s) with multicast loop on (two daemons on one host find
 * each other), and announces at once and then every interval. IPv4 must
 * work; IPv6 is used when it does. Returns 0, SBX_EINVAL for a bad config,
 * SBX_ENOENT when the named interface does not exist, or the socket error
 * mapped (SBX_EBUSY: the port is taken without sharing; SBX_EPERM; SBX_EIO
 * otherwise). On failure nothing stays open: `d` is left as it was
 * and the callback never fires (any libuv handle already made is closed on
 * the loop's next turn). */
int sbx_discovery_start(struct sbx_discovery *d, uv_loop_t *loop,
                        const struct sbx_discovery_config *cfg, sbx_discovery_cb cb);

/* Announces now (a new network came up, the ports changed); the timer
 * carries on. SBX_ESTATE when not started. */
int sbx_discovery_announce(struct sbx_discovery *d);

/* Stops at once: no callback fires after it returns. The sockets and timer
 * close on the loop's next turns, and their memory is freed then; `d` itself
 * may be freed or reused as soon as this returns. Safe on a stopped `d`. */
void sbx_discovery_stop(struct sbx_discovery *d);

void sbx_discovery_get_stats(const struct sbx_discovery *d, struct sbx_discovery_stats *out);

#endif
