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

/* Images above this many pixels are refused before any decoding: the
 * largest phone sensors make 200 MP photos (16320 x 12240 fits), and a
 * decompression bomb (a tiny file that claims 60000 x 60000 pixels) must
 * not get to allocate. */
#define SBX_MAX_IMAGE_PIXELS (200u * 1000u * 1000u)
/* Boxes, segments and elements that one media probe walks before it gives
 * up: real files have a few dozen, so this only stops crafted input from
 * turning a probe into a long loop. */
#define SBX_MAX_MEDIA_ITEMS 4096u

#endif
