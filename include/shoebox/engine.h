/* The merge engine: validates entries against the library's state, applies
 * their ops to the materialized model (the seed's tables) with LWW-register
 * and add-wins-set semantics, and appends the device's own entries.
 *
 * Sans-I/O in the tinc sense: it touches only its SQLite store. The caller
 * passes the wall clock in, and learns of new entries through a callback, so
 * the simulator drives it with no sockets and no real time. */
#ifndef SHOEBOX_ENGINE_H
#define SHOEBOX_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/entry.h"
#include "shoebox/identity.h"
#include "shoebox/store.h"

typedef struct sbx_engine sbx_engine;

/* Called after a transaction that added entries to the log commits, once per
 * entry in log order: the peer layer pushes them to connected peers. */
typedef void (*sbx_engine_entry_cb)(sbx_engine *e, const struct sbx_entry *entry);

struct sbx_engine_config {
    uint64_t max_future_ms; /* 0: SBX_DEFAULT_MAX_FUTURE_MS */
};

/* Creates a new library in an empty store: a random library id bound to
 * the founder's key, and the genesis entry (library.create, device.add of the
 * founder). */
int sbx_engine_create_library(sbx_store *store, const struct sbx_identity *id,
                              const char *library_name, const char *device_name,
                              enum sbx_role role, int64_t now_ms);

/* The same with a given nonce instead of a random one: the simulator's
 * runs are then reproducible to the byte. */
int sbx_engine_create_library_nonce(sbx_store *store, const struct sbx_identity *id,
                                    const uint8_t nonce[SBX_ID_BYTES], const char *library_name,
                                    const char *device_name, enum sbx_role role, int64_t now_ms);

/* Prepares a store for a device that joins an existing library: records the
 * library id; the log arrives from peers. */
int sbx_engine_prepare_join(sbx_store *store, const struct sbx_identity *id,
                            const uint8_t library[SBX_ID_BYTES], const char *device_name,
                            enum sbx_role role);

/* Opens the engine over an initialised store. `id` may be NULL for a
 * read-only engine that can apply but never author entries. */
int sbx_engine_open(sbx_engine **out, sbx_store *store, const struct sbx_identity *id,
                    const struct sbx_engine_config *cfg);
void sbx_engine_close(sbx_engine *e);

void *sbx_engine_get_data(const sbx_engine *e);
void sbx_engine_set_data(sbx_engine *e, void *data);
void sbx_engine_set_entry_cb(sbx_engine *e, sbx_engine_entry_cb cb);

const uint8_t *sbx_engine_library(const sbx_engine *e);
bool sbx_engine_is_member(sbx_engine *e, const uint8_t key[SBX_KEY_BYTES]);

/* Authors `n` ops as this device: as few entries as the limits allow, all
 * signed, validated and applied in one SQLite transaction. */
int sbx_engine_write(sbx_engine *e, const struct sbx_op *ops, size_t n, int64_t now_ms);

/* The outcome of receiving one encoded entry. */
enum sbx_recv_status {
    SBX_RECV_APPLIED,   /* new, valid, applied (and any pending entries it unblocked) */
    SBX_RECV_DUPLICATE, /* already in the log */
    SBX_RECV_PENDING,   /* valid so far, waits for its predecessors */
    SBX_RECV_REFUSED,   /* refused for good; reason says why */
    SBX_RECV_DEFERRED,  /* refused for now (too far in the future); may be retried */
};

struct sbx_recv_result {
    enum sbx_recv_status status;
    char reason[160];
};

/* Receives entries from a peer: each is decoded, validated and applied (or
 * parked, or refused) on its own; all of them share one SQLite transaction.
 * `results` (may be NULL) gets one result per entry. Returns 0 unless the
 * store failed, in which case nothing of the batch is applied. */
int sbx_engine_receive(sbx_engine *e, const uint8_t *const *raw, const size_t *len, size_t n,
                       int64_t now_ms, struct sbx_recv_result *results);

/* The canonical hash of the materialized model (not of the log): two
 * replicas with the same accepted entries have the same digest. */
int sbx_engine_digest(sbx_engine *e, uint8_t out[32]);

/* Rebuilds the materialized model from the log (after a device removal that
 * invalidates entries already applied). */
int sbx_engine_rebuild(sbx_engine *e);
/* The same in a transaction of its own, for a maintenance command. Sets
 * meta feed_floor: feed cursors from before it are stale. */
int sbx_engine_rebuild_now(sbx_engine *e);

/* Heads: per author, the highest contiguous seq held. */
struct sbx_head {
    uint8_t author[SBX_KEY_BYTES];
    uint64_t seq;
};
/* Fills up to `cap` heads; returns how many (or a negative error). */
int sbx_engine_heads(sbx_engine *e, struct sbx_head *heads, size_t cap);

/* Visits the entries of `author` with seq > after_seq, in seq order, at most
 * `max` of them; stops early when the callback returns non-zero. */
typedef int (*sbx_engine_raw_cb)(void *arg, const uint8_t *raw, size_t len);
int sbx_engine_entries_after(sbx_engine *e, const uint8_t author[SBX_KEY_BYTES],
                             uint64_t after_seq, size_t max, sbx_engine_raw_cb cb, void *arg);

/* Ids that derive from content, so concurrent creations of the same thing on
 * two devices merge into one. */
void sbx_photo_id_for_hash(const uint8_t library[SBX_ID_BYTES], const uint8_t sha256[32],
                           uint8_t out[SBX_ID_BYTES]);
void sbx_tag_id_for_label(const uint8_t library[SBX_ID_BYTES], const char *label, size_t len,
                          uint8_t out[SBX_ID_BYTES]);

#endif
