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

/* Device names. */
#define SBX_MAX_NAME 64u

/* Entries waiting for their causal predecessors (e.g. a new member's entries
 * that arrived before the device.add that admits it). */
#define SBX_MAX_PENDING_ENTRIES 100000u

/* Google Takeout import. A sidecar or album metadata JSON is a few hundred
 * bytes; anything above this is not one and is not read into memory. */
#define SBX_MAX_SIDECAR_BYTES (1u << 20)
/* A path inside a Takeout zip, and one of its components (file or folder
 * name; Google's names are far shorter, the bound keeps buffers fixed). */
#define SBX_MAX_TAKEOUT_PATH 4096u
#define SBX_MAX_TAKEOUT_NAME 1024u
/* Entries of one Takeout (all parts): the first pass keeps each name and
 * parsed sidecar in memory, about 270 bytes per entry (measured: 268 MB for
 * 500,000 photos with their sidecars), so this bounds it near 1.1 GB. */
#define SBX_MAX_TAKEOUT_ENTRIES 4000000u
/* Zip parts of one Takeout (Google splits at 2-50 GB per part). */
#define SBX_MAX_TAKEOUT_PARTS 4096u

#endif
