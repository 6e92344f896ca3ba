/* Every limit of shoebox, in one place.
 *
 * Each bound here is enforced at the input boundary that first sees the data
 * (decoder, framer, importer), so code behind that boundary can rely on it. */
#ifndef SHOEBOX_LIMITS_H
#define SHOEBOX_LIMITS_H

/* Noise transport messages are at most 65535 bytes on the wire (Noise spec). */
#define SBX_NOISE_MAX_MSG 65535u
/* The AEAD tag that every Noise transport message carries. */
#define SBX_NOISE_TAG 16u
/* Largest plaintext carried by one Noise transport message. */
#define SBX_MAX_MSG (SBX_NOISE_MAX_MSG - SBX_NOISE_TAG)

/* One log entry must fit inside a single wire message with room for the
 * message header, so entries are bounded below SBX_MAX_MSG. */
#define SBX_MAX_ENTRY_BYTES 60000u
/* An entry carries at most this many ops; a user action above it is split
 * into several entries (an import of 10,000 photos is ~40 entries). */
#define SBX_MAX_OPS_PER_ENTRY 256u
/* Strings inside ops (names, labels, file names, camera make/model). */
#define SBX_MAX_STR 1024u
/* Dots that one set-remove op may name. */
#define SBX_MAX_DOTS_PER_REMOVE 64u
/* An entry stamped further in the future than this is refused (ms). */
#define SBX_DEFAULT_MAX_FUTURE_MS (24ull * 3600ull * 1000ull)

/* Local control socket: one request or response line. */
#define SBX_MAX_CONTROL_LINE (1u << 20)

/* Device and library names. */
#define SBX_MAX_NAME 64u
/* Album names and tag labels: people type these in any script and the
 * Takeout importer carries them over as they are, so they get more room
 * than device names (256 bytes is 64 four-byte characters). */
#define SBX_MAX_LABEL 256u

/* Entries waiting for their causal predecessors (e.g. a new member's entries
 * that arrived before the device.add that admits it). */
#define SBX_MAX_PENDING_ENTRIES 100000u

/* Pairing invitations (net/pair.c). A pairing URI is shown as a QR code, so
 * the longest URI accepted is the most a QR code holds at error correction
 * level M in 8-bit mode (version 40): whatever parses could have been
 * scanned. A fully loaded invitation (8 addresses of 255 characters, every
 * field at its longest) formats to 2287 characters and fits. */
#define SBX_MAX_PAIR_URI 2331u
/* Addresses an invitation carries (LAN, public, DNS names, IPv6, ...). */
#define SBX_MAX_PAIR_ADDRS 8u
/* One address as "host:port", "[v6]:port" or "name:port", decoded. */
#define SBX_MAX_PAIR_ADDR 255u
/* Pixels per QR module in a PNG: 32 gives a 5920-pixel square at version
 * 40, already more than any screen shows. */
#define SBX_MAX_QR_SCALE 32

/* Blobs (daemon/blob.c) are cut into chunks of this fixed size, the last one
 * shorter. The chunk is the unit of transfer between peers (a fetch names
 * chunk indexes), the granularity of resume (a transfer killed midway keeps
 * every chunk verified so far) and the unit of verification (one SHA-256
 * per chunk, checked before a byte of it is written). 1 MiB keeps the
 * per-chunk overhead (a hash, a database row, a request) below 0.01% while a
 * lost chunk costs little to fetch again; a whole thumbnail fits in one.
 * Every blob row records its chunk size, so old blobs stay readable should
 * this ever change, but peers must agree on it: it is part of the protocol. */
#define SBX_BLOB_CHUNK (1u << 20)
/* Largest blob accepted, from import or from a peer: 64 GiB, over an hour of
 * 4K phone video, and 65536 chunks whose hash list (2 MiB) a peer can send
 * and a device can hold in memory. */
#define SBX_MAX_BLOB_BYTES (64ull << 30)
#define SBX_MAX_BLOB_CHUNKS (SBX_MAX_BLOB_BYTES / SBX_BLOB_CHUNK)

#endif
