/* A peer session: one Noise-encrypted conversation with another device of the
 * library, as a sans-I/O state machine (in the manner of tinc's SPTPS).
 *
 * Bytes from the socket go in with sbx_peer_input; bytes for the socket come
 * out with sbx_peer_output/sbx_peer_output_consume (the transport pulls, so
 * the session never produces more than SBX_MAX_PEER_OUTPUT bytes ahead of
 * the socket: that is the backpressure). Time comes in through the calls;
 * events come out through one callback. The session applies received
 * entries through the engine and streams the entries the peer lacks, in
 * bounded slices, whenever the transport has room.
 *
 * On the wire: every Noise message (handshake included) is framed as a 2-byte
 * big-endian length and the message; after the handshake each wire message
 * (msgpack, docs/protocol.md) is one Noise transport message. */
#ifndef SHOEBOX_PEER_H
#define SHOEBOX_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/engine.h"
#include "shoebox/identity.h"

#define SBX_PROTOCOL_VERSION 1
#define SBX_NOISE_PROLOGUE "shoebox/1"

typedef struct sbx_peer sbx_peer;

enum sbx_peer_event {
    /* The handshake finished; sbx_peer_remote_key() is now valid. */
    SBX_PEER_AUTHENTICATED = 1,
    /* Hellos were exchanged: the session syncs from now on. */
    SBX_PEER_READY,
    /* A pairing session admitted the joiner (inviter side: device.add was
     * written; joiner side: the inviter confirmed). */
    SBX_PEER_JOINED,
    /* The session ended; `reason` says why. Nothing more comes out of it
     * except its final output (a goodbye), which the transport may flush. */
    SBX_PEER_CLOSED,
};

typedef void (*sbx_peer_event_cb)(sbx_peer *p, enum sbx_peer_event ev, const char *reason);

struct sbx_blobstore;

/* Blob transfer results, called from inside sbx_peer_input. */
struct sbx_peer_blob_cb {
    /* Part of a blob's chunk list (starting at chunk `first`). */
    void (*info)(sbx_peer *p, const uint8_t hash[32], uint64_t size, int kind, uint32_t first,
                 const uint8_t *chunk_hashes, uint32_t n);
    /* The remote does not hold the blob. */
    void (*none)(sbx_peer *p, const uint8_t hash[32]);
    /* A whole chunk arrived (not yet verified: the blob store verifies it);
     * data NULL when the remote could not serve it. */
    void (*chunk)(sbx_peer *p, const uint8_t hash[32], uint32_t idx, const uint8_t *data, size_t len);
    /* Optional: a whole chunk arrived, and the callee takes the buffer
     * (an sbx_chunkbuf: page-aligned, given back with sbx_chunkbuf_put): a
     * receiver that keeps the chunk for later saves a copy of it. When set, it gets the chunks with data, and
     * chunk above only the "could not serve" ones. */
    void (*chunk_take)(sbx_peer *p, const uint8_t hash[32], uint32_t idx, uint8_t *data, size_t len);
};

struct sbx_peer_config {
    bool initiator;
    const struct sbx_identity *id; /* signs nothing here; keys the Noise static */
    sbx_engine *engine;
    /* Pairing: the one-time secret from the invitation (Noise_XXpsk3). NULL
     * for a session between members (Noise_XX). */
    const uint8_t *psk;
    /* This device's name, announced in hello and asked for when joining. */
    const char *name;
    /* Joiner side of a pairing: the inviter's key from the invitation, which
     * the handshake must prove; and the role to ask for. */
    const uint8_t *expect_key;
    enum sbx_role join_role;
    /* Responder side: looks up an open invitation by its id (the first 8
     * bytes of BLAKE2b of its secret, sent in the clear in handshake message
     * 1) and fills its secret. Returns 0 when the invitation exists, is
     * unexpired and unused (and marks it used); anything else refuses the
     * pairing. NULL: this device accepts no pairing. */
    int (*find_invite)(void *data, const uint8_t invite_id[8], uint8_t psk[32]);
    /* Serves blob info and chunks from this store (NULL: serves none). */
    struct sbx_blobstore *blobs;
    const struct sbx_peer_blob_cb *blob_cb;
    /* Peer exchange: the remote told where it reached another member. */
    void (*addr_cb)(sbx_peer *p, const uint8_t key[32], const char *addr);
    /* Test hook: corrupt one byte of every chunk served (a lying peer). */
    bool corrupt_chunks;
    /* The TCP port this device listens on (0: none), told in hello so the
     * remote can dial back. */
    uint16_t listen_port;
    /* Ephemeral Noise key for deterministic runs (simulator); NULL: random. */
    const uint8_t *ephemeral;
    /* Metadata announced in hello (the seed's Device fields). */
    const char *platform, *app_version;
    /* Times (ms): ping after this much silence, close after this much. */
    int64_t keepalive_ms, idle_timeout_ms;
};

int sbx_peer_new(sbx_peer **out, const struct sbx_peer_config *cfg, sbx_peer_event_cb cb, void *data,
                 int64_t now_ms);
void sbx_peer_free(sbx_peer *p);

void *sbx_peer_data(const sbx_peer *p);

/* Feeds bytes received from the socket. Returns 0, or a negative error after
 * which the session is closed (the CLOSED event has fired). */
int sbx_peer_input(sbx_peer *p, const uint8_t *bytes, size_t len, int64_t now_ms);

/* Applies the entries received so far in one transaction. The session
 * batches received entries (up to SBX_PEER_APPLY_BATCH or
 * SBX_PEER_APPLY_BYTES) and applies a full batch by itself; the transport
 * calls this once it has read everything available (libuv: a check handle;
 * tick does it too). */
int sbx_peer_apply(sbx_peer *p);

/* Time passes: keepalives and the idle time-out. */
void sbx_peer_tick(sbx_peer *p, int64_t now_ms);

/* New entries are in the local log (from any source): stream what the peer
 * lacks when there is room. */
void sbx_peer_kick(sbx_peer *p);

/* The transport pulls bytes to write. *len is 0 when nothing is pending. */
void sbx_peer_output(sbx_peer *p, const uint8_t **bytes, size_t *len);
void sbx_peer_output_consume(sbx_peer *p, size_t n);

/* Ends the session with a goodbye carrying `reason`. */
void sbx_peer_close(sbx_peer *p, const char *reason);

bool sbx_peer_is_closed(const sbx_peer *p);
bool sbx_peer_is_ready(const sbx_peer *p);
/* The remote device's Ed25519 key, valid after AUTHENTICATED. */
const uint8_t *sbx_peer_remote_key(const sbx_peer *p);
/* The remote's announced name, platform, version (after READY; "" if none). */
const char *sbx_peer_remote_name(const sbx_peer *p);
/* Entries the remote lacks compared with our heads (for status). */
uint64_t sbx_peer_entries_behind(const sbx_peer *p);

/* The remote's listen port from its hello (0: none or not yet). */
uint16_t sbx_peer_remote_port(const sbx_peer *p);
/* True once this side holds every entry the remote's hello listed. */
bool sbx_peer_caught_up(const sbx_peer *p);

/* Tells the remote where other members were reached (at most
 * SBX_MAX_PEX_ADDRS): it may dial them. */
int sbx_peer_send_addrs(sbx_peer *p, const uint8_t (*keys)[32], const char *const *addrs, size_t n);

/* Blob transfer: ask for a blob's chunk list, ask for one chunk (at most
 * SBX_MAX_CHUNKS_IN_FLIGHT outstanding: SBX_EBUSY beyond). */
int sbx_peer_blob_get(sbx_peer *p, const uint8_t hash[32]);
int sbx_peer_chunk_get(sbx_peer *p, const uint8_t hash[32], uint32_t idx);
size_t sbx_peer_chunks_in_flight(const sbx_peer *p);

/* For fuzzing and tests: handles `pt` as if it had arrived as one decrypted
 * wire message (the Noise layer is fuzzed on its own). */
int sbx_peer_feed_plaintext(sbx_peer *p, const uint8_t *pt, size_t len);

/* The id an invitation is known by: BLAKE2b-64 of its secret. */
void sbx_peer_invite_id(const uint8_t psk[32], uint8_t id[8]);

#endif
