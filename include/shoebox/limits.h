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
/* Images above this many pixels are refused before any decoding: the
 * largest phone sensors make 200 MP photos (16320 x 12240 fits), and a
 * decompression bomb (a tiny file that claims 60000 x 60000 pixels) must
 * not get to allocate. */
#define SBX_MAX_IMAGE_PIXELS (200u * 1000u * 1000u)
/* Boxes, segments and elements that one media probe walks before it gives
 * up: real files have a few dozen, so this only stops crafted input from
 * turning a probe into a long loop. */
#define SBX_MAX_MEDIA_ITEMS 4096u

/* Members of one library (devices ever added): bounds every per-author table
 * a peer session keeps. */
#define SBX_MAX_MEMBERS 256u
/* A peer session stops producing output when this much waits for the socket
 * (backpressure): enough to keep a loopback link busy, bounded per peer. */
#define SBX_MAX_PEER_OUTPUT (4u << 20)
/* Each direction of a session rekeys every this many messages (both sides
 * count, so they stay in step without a message). */
#define SBX_REKEY_MESSAGES (1ull << 20)
/* Keepalive after this much silence; a session silent for the time-out is
 * closed. */
#define SBX_PEER_KEEPALIVE_MS 15000
#define SBX_PEER_IDLE_TIMEOUT_MS 60000
/* Received entries a session applies in one transaction, at most. */
#define SBX_PEER_APPLY_BATCH 512u
#define SBX_PEER_APPLY_BYTES (16u << 20)
/* Chunks a session has asked of its peer and not received (the transfer
 * window: 16 MiB in flight fills a loopback link), chunk requests it queues
 * to serve, and the size of the pieces a chunk travels in (one wire
 * message each). */
#define SBX_MAX_CHUNKS_IN_FLIGHT 16u
#define SBX_MAX_SERVE_QUEUE 64u
#define SBX_CHUNK_PIECE 65000u
/* Addresses one peer-exchange message carries. */
#define SBX_MAX_PEX_ADDRS 64u
/* Peer connections a daemon holds at once (inbound and outbound). */
#define SBX_MAX_CONNECTIONS 64u
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

/* Import (daemon/import.c). Paths one import request names (files, folders,
 * zip parts; a Takeout of 4096 parts fits). */
#define SBX_MAX_IMPORT_PATHS SBX_MAX_TAKEOUT_PARTS
/* Folder nesting an import walks: deeper trees are reported, not followed
 * (a symlink loop ends here too). */
#define SBX_MAX_IMPORT_DEPTH 64u
/* Bytes of one zip member kept in memory while it streams to the blob store,
 * for the metadata probe and the renditions: every photo fits; of a larger
 * video only the start is probed (docs/import.md). */
#define SBX_MAX_IMPORT_PROBE_BYTES (64u << 20)
/* Threads that process the files of one import (four per core by default):
 * each holds its own database connection and blob store handle. */
#define SBX_MAX_IMPORT_THREADS 8u
/* Errors an import's answer lists (all of them are counted and kept in the
 * job's rows): a folder of a million unreadable files must not make a
 * reply of a hundred megabytes. */
#define SBX_MAX_IMPORT_ERRORS_SHOWN 10000u
/* Blobs one sbx_blob_batch holds before it is committed (each keeps its
 * temp file open until then). */
#define SBX_MAX_BLOB_BATCH 64u
/* Threads of the background renderer (daemon/render.c): thumbnails and
 * mediums are CPU work at low priority, one core's worth each. */
#define SBX_MAX_RENDER_THREADS 4u
/* An original larger than this is not read into memory to be rendered: it
 * is marked failed ("too large to render"). Every camera photo is far
 * smaller; SBX_MAX_IMAGE_PIXELS bounds the decode itself. */
#define SBX_MAX_RENDER_INPUT_BYTES (256u << 20)

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
/* Received chunk buffers kept for reuse once returned (net/chunkbuf.c):
 * more than a receiver has in flight (16 per peer, 24 queued), so a steady
 * transfer never maps fresh pages. Spares exist only after that many were
 * in use at once, so they add nothing to the peak; an idle daemon unmaps
 * them (sbx_chunkbuf_trim). */
#define SBX_MAX_FREE_CHUNKBUFS 48u
/* LAN discovery (net/discovery.c). An announcement carries at most this many
 * TCP ports (IPv4 and IPv6 listeners, a pairing port, ...). */
#define SBX_MAX_DISCOVERY_PORTS 4u
/* The largest announcement: magic (4), version (1), port count (1), tag
 * (16), key (32), timestamp (8), nonce (16), ports (2 each) and signature
 * (64). Anything longer is refused before it is parsed. */
#define SBX_MAX_DISCOVERY_PACKET (4u + 1u + 1u + 16u + 32u + 8u + 16u + 2u * SBX_MAX_DISCOVERY_PORTS + 64u)
/* Announcements remembered against replays. Only announcements with a valid
 * signature enter it; each stays until its timestamp leaves the skew window,
 * so with the defaults (one every 30 s, a 5-minute window) it covers about a
 * hundred announcing device-interfaces. */
#define SBX_MAX_DISCOVERY_REPLAY 1024u
/* The widest clock skew a caller may allow for announcements (ms): the window
 * decides how long a replay cache entry must live. */
#define SBX_MAX_DISCOVERY_SKEW_MS (24ll * 3600ll * 1000ll)
/* Signature checks per second that discovery spends on packets carrying the
 * library's tag: the tag is visible on the LAN, so anyone there can make
 * packets that reach the (costly) Ed25519 check; this bounds the CPU a
 * flood can take (a verify costs ~75 us here). */
#define SBX_MAX_DISCOVERY_VERIFY_PER_S 100u

/* UPnP (net/upnp.c): the SSDP wait for routers to answer is bounded both
 * ways, so a typo cannot make discovery hang for minutes. The floor is
 * miniupnpc's: SSDP's MX is in whole seconds and it waits at least one. */
#define SBX_MIN_UPNP_DISCOVER_MS 1000
#define SBX_MAX_UPNP_DISCOVER_MS 10000
/* External ports tried for one mapping: the internal port, then the next
 * ones, when other hosts behind the router hold them. */
#define SBX_MAX_UPNP_PORT_TRIES 16u

/* Passphrases of encrypted libraries (bytes, any encoding): far above what
 * people type, and small enough to read from a file or a socket line. */
#define SBX_MAX_PASSPHRASE 1024u
/* The local HTTP API (daemon/api*.c). A JSON request body; bigger ones get
 * 413 before they are parsed. */
#define SBX_MAX_API_JSON (1u << 20)
/* Connections the API and share servers hold at once; more are closed as
 * soon as they are accepted. */
#define SBX_MAX_API_CONNECTIONS 512u
/* Items in one page of GET /photos or GET /feed. */
#define SBX_MAX_API_PAGE 1000u
/* Upload sessions: a chunk is one request body that h2o holds in memory
 * whole, so it is bounded; a session has at most this many chunks (its
 * received-chunk bitmap is 8 KiB), and at most this many sessions are open
 * (pending or uploading) at once, each staging up to SBX_MAX_BLOB_BYTES. */
#define SBX_MAX_UPLOAD_CHUNK (16u << 20)
#define SBX_MAX_UPLOAD_CHUNKS 65536u
#define SBX_MAX_OPEN_UPLOADS 256u
/* Albums one upload may be added to. */
#define SBX_MAX_UPLOAD_ALBUMS 64u
/* An unfinished upload session is given up after this long (ms). */
#define SBX_UPLOAD_TTL_MS (7ll * 24 * 3600 * 1000)
/* The share server's rate limit per client address (an IPv6 /64): a
 * gallery page loads one thumbnail per photo, so the burst covers a page of
 * SBX_MAX_SHARE_PAGE photos; a refused token costs SBX_SHARE_FAIL_COST
 * requests, which slows guessing to a few tries a second. */
#define SBX_SHARE_RATE_PER_S 50.0
#define SBX_SHARE_RATE_BURST 400.0
#define SBX_SHARE_FAIL_COST 10.0
#define SBX_MAX_RATELIMIT_SLOTS 8192u
/* Connections one client address may hold to the share server at once
 * (browsers open six per host). */
#define SBX_MAX_SHARE_CONNS_PER_ADDR 16u
/* Photos on one share page (?page=N shows the next ones). */
#define SBX_MAX_SHARE_PAGE 300u
/* At shutdown, open API connections get this long to finish (ms). */
#define SBX_API_SHUTDOWN_MS 3000
/* A request for an original that only other devices hold waits this long
 * (ms) for the on-demand fetch, by default; a client may ask for another
 * wait, up to the maximum, with `Prefer: wait=SECONDS` (RFC 7240). At most
 * this many requests wait at once; more get 503 and Retry-After at once. */
#define SBX_API_FETCH_WAIT_MS 30000
#define SBX_MAX_API_FETCH_WAIT_MS 120000
#define SBX_MAX_API_FETCH_WAITERS 256u
/* Upload completions queued for the worker (hashing and ingest run off the
 * loop, one at a time); more get 503 and Retry-After. */
#define SBX_MAX_UPLOAD_COMPLETIONS 64u
/* Upload chunks written at once on libuv's thread pool (hashed, written,
 * synced): each holds a copy of its body, up to SBX_MAX_UPLOAD_CHUNK. More
 * wait, their bodies in h2o's buffers, for a slot; the pool's other
 * threads stay free for a completion and the transfers. */
#define SBX_MAX_UPLOAD_CHUNK_WRITES 2u
/* Chunk writes that may wait behind those; more get 503 with Retry-After
 * (a client streams a few chunks at a time; tens of thousands of parked
 * requests would only cost memory and loop time). */
#define SBX_MAX_UPLOAD_CHUNK_WAITING 64u

#endif
