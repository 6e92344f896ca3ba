/* Log entries and the ops they carry: the canonical msgpack codec, signing
 * and verification. docs/protocol.md defines the bytes.
 *
 * An entry is {library, author, seq, prev, hlc, ops[]} encoded as one msgpack
 * array (the body) followed by the author's 64-byte Ed25519 signature over
 * the body. Its hash is BLAKE2b-256 over body and signature; the author's
 * next entry names it as `prev`. Validation against the library's state
 * (membership, seq, prev) belongs to the engine; this module checks
 * everything that can be checked from the bytes alone. */
#ifndef SHOEBOX_ENTRY_H
#define SHOEBOX_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_KEY_BYTES 32  /* Ed25519 public key: a device's identity */
#define SBX_SIG_BYTES 64
#define SBX_HASH_BYTES 32 /* BLAKE2b-256 entry hash, SHA-256 content hash */
#define SBX_ID_BYTES 16   /* library, photo, album, tag and link ids */
#define SBX_ENTRY_VERSION 1

/* A string or byte run inside a decoded entry: points into the entry's own
 * buffer, not NUL-terminated. */
struct sbx_str {
    const char *ptr;
    uint32_t len;
};

/* An add in an add-wins set is identified by its dot: the entry that made it
 * and the op's index in that entry. A remove names the dots it has seen. */
struct sbx_dot {
    uint8_t author[SBX_KEY_BYTES];
    uint64_t seq;
    uint32_t idx;
};

enum sbx_role { SBX_ROLE_CACHE = 0, SBX_ROLE_FULL = 1 };

enum sbx_op_type {
    SBX_OP_LIBRARY_CREATE = 1, /* genesis: nonce, name */
    SBX_OP_DEVICE_ADD,         /* key, name, role */
    SBX_OP_DEVICE_REMOVE,      /* key, last_seq */
    SBX_OP_DEVICE_RENAME,      /* key, name */
    SBX_OP_DEVICE_ROLE,        /* key, role */
    SBX_OP_PHOTO_PUT,          /* id, facts */
    SBX_OP_PHOTO_SET,          /* id, field, value */
    SBX_OP_PHOTO_DELETE,       /* id */
    SBX_OP_PHOTO_RESTORE,      /* id */
    SBX_OP_ALBUM_CREATE,       /* id, name */
    SBX_OP_ALBUM_RENAME,       /* id, name */
    SBX_OP_ALBUM_COVER,        /* id, photo (all-zero id: no cover) */
    SBX_OP_ALBUM_DELETE,       /* id */
    SBX_OP_ALBUM_RESTORE,      /* id */
    SBX_OP_ALBUM_ADD,          /* id, photo; dot = (entry, op index) */
    SBX_OP_ALBUM_REMOVE,       /* id, photo, dots[] */
    SBX_OP_ALBUM_POSITION,     /* id, photo, position */
    SBX_OP_TAG_CREATE,         /* id, label */
    SBX_OP_PHOTO_TAG_ADD,      /* photo, tag; dot = (entry, op index) */
    SBX_OP_PHOTO_TAG_REMOVE,   /* photo, tag, dots[] */
    SBX_OP_SHARE_CREATE,       /* id, album or photo, expires_at */
    SBX_OP_SHARE_REVOKE,       /* id */
    SBX_OP_BLOB_HELD,          /* content hash */
    SBX_OP_BLOB_DROPPED,       /* content hash */
    SBX_OP__COUNT
};

/* Mutable photo fields, each an LWW register. */
enum sbx_photo_field {
    SBX_PF_CAPTURED_AT = 1, /* int ms, or nil */
    SBX_PF_LOCATION,        /* [lat, lon] doubles, or nil */
    SBX_PF_FILE_NAME,       /* str */
    SBX_PF_FAVORITE,        /* bool */
    SBX_PF_ARCHIVED,        /* bool */
    SBX_PF_DESCRIPTION,     /* str */
    SBX_PF_THUMB,           /* bin32 content hash, or nil */
    SBX_PF_MEDIUM,          /* bin32 content hash, or nil */
    SBX_PF__COUNT
};

/* The immutable facts of a photo, written once by photo.put. */
struct sbx_photo_facts {
    uint8_t hash[SBX_HASH_BYTES]; /* SHA-256 of the original */
    uint64_t size_bytes;
    uint32_t width, height;
    bool has_captured_at;
    int64_t captured_at_ms;
    bool has_location;
    double lat, lon;
    uint8_t orientation; /* EXIF 1..8, 0 unknown */
    struct sbx_str mime_type, file_name, camera_make, camera_model;
};

struct sbx_photo_value {
    bool is_nil;
    bool b;                          /* FAVORITE, ARCHIVED */
    int64_t ms;                      /* CAPTURED_AT */
    double lat, lon;                 /* LOCATION */
    struct sbx_str str;              /* FILE_NAME, DESCRIPTION */
    uint8_t hash[SBX_HASH_BYTES];    /* THUMB, MEDIUM */
};

struct sbx_op {
    enum sbx_op_type type;
    uint8_t id[SBX_ID_BYTES];        /* the photo/album/tag/link/library id */
    uint8_t ref[SBX_ID_BYTES];       /* the second id: photo of an album op, tag of a tag op,
                                        album or photo of a share */
    uint8_t key[SBX_KEY_BYTES];      /* device ops */
    uint8_t hash[SBX_HASH_BYTES];    /* blob ops */
    struct sbx_str name;             /* library/device/album name, tag label */
    enum sbx_role role;              /* DEVICE_ADD, DEVICE_ROLE */
    uint64_t last_seq;               /* DEVICE_REMOVE */
    bool ref_is_album;               /* SHARE_CREATE: ref is an album (else a photo) */
    int64_t expires_at_ms;           /* SHARE_CREATE, 0 = never */
    double position;                 /* ALBUM_POSITION */
    enum sbx_photo_field field;      /* PHOTO_SET */
    struct sbx_photo_value value;    /* PHOTO_SET */
    struct sbx_photo_facts facts;    /* PHOTO_PUT */
    uint32_t n_dots;                 /* *_REMOVE, at most SBX_MAX_DOTS_PER_REMOVE */
    const struct sbx_dot *dots;
};

/* A decoded, signature-checked entry. Strings and dots point into memory the
 * entry owns; everything lives until sbx_entry_free. */
struct sbx_entry {
    uint8_t library[SBX_ID_BYTES];
    uint8_t author[SBX_KEY_BYTES];
    uint64_t seq;                    /* 1, 2, ... per author */
    uint8_t prev[SBX_HASH_BYTES];    /* all zero for seq 1 */
    uint64_t hlc;
    uint32_t n_ops;
    struct sbx_op *ops;
    uint8_t sig[SBX_SIG_BYTES];
    uint8_t hash[SBX_HASH_BYTES];    /* BLAKE2b-256(body || sig) */
    const uint8_t *raw;              /* the encoded entry (body || sig) */
    size_t raw_len;
};

/* Decodes an encoded entry and checks everything the bytes alone decide:
 * structure, every limit of shoebox/limits.h, canonical encoding (the bytes
 * re-encode to themselves) and the author's signature. Copies `buf`.
 * Returns 0, SBX_EMALFORMED, SBX_ETOOBIG, SBX_ECRYPTO or SBX_ENOMEM. */
int sbx_entry_decode(const uint8_t *buf, size_t len, struct sbx_entry **out);
void sbx_entry_free(struct sbx_entry *e);

/* Builds and signs entries. The builder grows until it holds
 * SBX_MAX_OPS_PER_ENTRY ops or SBX_MAX_ENTRY_BYTES; sbx_entry_builder_add
 * returns SBX_ETOOBIG when the op does not fit, and the caller then finishes
 * this entry and starts the next one: every valid op fits in an empty entry.
 * An op the decoder would refuse (a bad string, a name over its limit, a
 * role out of range, ...) gets SBX_EINVAL, so that loop cannot spin.
 *
 * sbx_entry_builder_new returns SBX_EINVAL for seq 0, or seq 1 with a
 * non-zero prev (`prev` may be NULL: all zero). The builder packs each op as
 * it is added, so the op's strings and dots need not outlive the call. */
typedef struct sbx_entry_builder sbx_entry_builder;

int sbx_entry_builder_new(sbx_entry_builder **out, const uint8_t library[SBX_ID_BYTES],
                          const uint8_t author[SBX_KEY_BYTES], uint64_t seq,
                          const uint8_t prev[SBX_HASH_BYTES], uint64_t hlc);
int sbx_entry_builder_add(sbx_entry_builder *b, const struct sbx_op *op);
uint32_t sbx_entry_builder_count(const sbx_entry_builder *b);
/* Bytes the entry would take if finished now, signature included. */
size_t sbx_entry_builder_size(const sbx_entry_builder *b);
/* Signs with the author's 64-byte libsodium Ed25519 secret key and returns
 * the decoded entry (as sbx_entry_decode would) in *out. SBX_ESTATE when the
 * builder holds no op or was already finished; SBX_ECRYPTO when `sk` is not
 * the author's key. After a success the builder only accepts _free. */
int sbx_entry_builder_finish(sbx_entry_builder *b, const uint8_t sk[64],
                             struct sbx_entry **out);
void sbx_entry_builder_free(sbx_entry_builder *b);

/* Names for logs, JSON and errors ("photo.put", "captured_at"); "unknown"
 * for a value outside the enum. */
const char *sbx_op_type_name(enum sbx_op_type t);
const char *sbx_photo_field_name(enum sbx_photo_field f);

#endif
