/* The op codec: one msgpack array per op, its type first, then its fields in
 * the fixed order of docs/protocol.md ("Log entries"). sbx_op_pack and
 * sbx_op_parse must stay mirror images of each other and of that table. */
#include "op_codec.h"

#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <math.h>

/* Element count of each op's array, type included; 0 marks a hole. */
static const uint8_t op_arity[SBX_OP__COUNT] = {
    [SBX_OP_LIBRARY_CREATE] = 3,  [SBX_OP_DEVICE_ADD] = 4,     [SBX_OP_DEVICE_REMOVE] = 3,
    [SBX_OP_DEVICE_RENAME] = 3,   [SBX_OP_DEVICE_ROLE] = 3,    [SBX_OP_PHOTO_PUT] = 13,
    [SBX_OP_PHOTO_SET] = 4,       [SBX_OP_PHOTO_DELETE] = 2,   [SBX_OP_PHOTO_RESTORE] = 2,
    [SBX_OP_ALBUM_CREATE] = 3,    [SBX_OP_ALBUM_RENAME] = 3,   [SBX_OP_ALBUM_COVER] = 3,
    [SBX_OP_ALBUM_DELETE] = 2,    [SBX_OP_ALBUM_RESTORE] = 2,  [SBX_OP_ALBUM_ADD] = 3,
    [SBX_OP_ALBUM_REMOVE] = 4,    [SBX_OP_ALBUM_POSITION] = 4, [SBX_OP_TAG_CREATE] = 3,
    [SBX_OP_PHOTO_TAG_ADD] = 3,   [SBX_OP_PHOTO_TAG_REMOVE] = 4, [SBX_OP_SHARE_CREATE] = 5,
    [SBX_OP_SHARE_REVOKE] = 2,    [SBX_OP_BLOB_HELD] = 2,      [SBX_OP_BLOB_DROPPED] = 2,
};

static const char *const op_names[SBX_OP__COUNT] = {
    [SBX_OP_LIBRARY_CREATE] = "library.create",
    [SBX_OP_DEVICE_ADD] = "device.add",
    [SBX_OP_DEVICE_REMOVE] = "device.remove",
    [SBX_OP_DEVICE_RENAME] = "device.rename",
    [SBX_OP_DEVICE_ROLE] = "device.role",
    [SBX_OP_PHOTO_PUT] = "photo.put",
    [SBX_OP_PHOTO_SET] = "photo.set",
    [SBX_OP_PHOTO_DELETE] = "photo.delete",
    [SBX_OP_PHOTO_RESTORE] = "photo.restore",
    [SBX_OP_ALBUM_CREATE] = "album.create",
    [SBX_OP_ALBUM_RENAME] = "album.rename",
    [SBX_OP_ALBUM_COVER] = "album.cover",
    [SBX_OP_ALBUM_DELETE] = "album.delete",
    [SBX_OP_ALBUM_RESTORE] = "album.restore",
    [SBX_OP_ALBUM_ADD] = "album.add",
    [SBX_OP_ALBUM_REMOVE] = "album.remove",
    [SBX_OP_ALBUM_POSITION] = "album.position",
    [SBX_OP_TAG_CREATE] = "tag.create",
    [SBX_OP_PHOTO_TAG_ADD] = "photo_tag.add",
    [SBX_OP_PHOTO_TAG_REMOVE] = "photo_tag.remove",
    [SBX_OP_SHARE_CREATE] = "share.create",
    [SBX_OP_SHARE_REVOKE] = "share.revoke",
    [SBX_OP_BLOB_HELD] = "blob.held",
    [SBX_OP_BLOB_DROPPED] = "blob.dropped",
};

static const char *const field_names[SBX_PF__COUNT] = {
    [SBX_PF_CAPTURED_AT] = "captured_at", [SBX_PF_LOCATION] = "location",
    [SBX_PF_FILE_NAME] = "file_name",     [SBX_PF_FAVORITE] = "favorite",
    [SBX_PF_ARCHIVED] = "archived",       [SBX_PF_DESCRIPTION] = "description",
    [SBX_PF_THUMB] = "thumb",             [SBX_PF_MEDIUM] = "medium",
};

const char *sbx_op_type_name(enum sbx_op_type t)
{
    if ((unsigned)t >= SBX_OP__COUNT || !op_names[t]) return "unknown";
    return op_names[t];
}

const char *sbx_photo_field_name(enum sbx_photo_field f)
{
    if ((unsigned)f >= SBX_PF__COUNT || !field_names[f]) return "unknown";
    return field_names[f];
}

/* ---- checks ---------------------------------------------------------- */

/* Strict UTF-8 (RFC 3629, see sbx_utf8_next): no overlong forms, no
 * surrogates, nothing above U+10FFFF. NUL is refused too, so every string
 * survives a round trip through C strings, SQLite text and JSON. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* Most strings (file names, MIME types, camera names) are ASCII:
         * take eight bytes at a time while they are ASCII and not NUL. */
        while (n - i >= 8) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
            if ((v & highs) || ((v - ones) & ~v & highs)) break;
            i += 8;
        }
        if (i == n) break;
        if (s[i] == 0) return false;
        size_t len = sbx_utf8_next(s + i, n - i);
        if (len == 0) return false;
        i += len;
    }
    return true;
}

static int check_str(struct sbx_str s, uint32_t min, uint32_t max)
{
    if (s.len > max) return SBX_ETOOBIG;
    if (s.len < min) return SBX_EMALFORMED;
    if (s.len == 0) return 0;
    if (!s.ptr || !utf8_valid((const uint8_t *)s.ptr, s.len)) return SBX_EMALFORMED;
    return 0;
}

static bool lat_lon_valid(double lat, double lon)
{
    /* The comparisons are false for NaN, and the bounds exclude infinities. */
    return lat >= -90.0 && lat <= 90.0 && lon >= -180.0 && lon <= 180.0;
}

static int check_dots(const struct sbx_op *op)
{
    if (op->n_dots > SBX_MAX_DOTS_PER_REMOVE) return SBX_ETOOBIG;
    if (op->n_dots == 0 || !op->dots) return SBX_EMALFORMED;
    for (uint32_t i = 0; i < op->n_dots; i++) {
        /* A dot names an op of an entry that exists: seq starts at 1 and an
         * entry holds at most SBX_MAX_OPS_PER_ENTRY ops. */
        if (op->dots[i].seq == 0 || op->dots[i].idx >= SBX_MAX_OPS_PER_ENTRY)
            return SBX_EMALFORMED;
    }
    return 0;
}

static int check_value(enum sbx_photo_field f, const struct sbx_photo_value *v)
{
    switch (f) {
    case SBX_PF_CAPTURED_AT:
    case SBX_PF_THUMB:
    case SBX_PF_MEDIUM:
        return 0;
    case SBX_PF_LOCATION:
        return v->is_nil || lat_lon_valid(v->lat, v->lon) ? 0 : SBX_EMALFORMED;
    case SBX_PF_FILE_NAME:
    case SBX_PF_DESCRIPTION:
        if (v->is_nil) return SBX_EMALFORMED;
        return check_str(v->str, 0, SBX_MAX_STR);
    case SBX_PF_FAVORITE:
    case SBX_PF_ARCHIVED:
        return v->is_nil ? SBX_EMALFORMED : 0;
    default:
        return SBX_EMALFORMED;
    }
}

int sbx_op_check(const struct sbx_op *op)
{
    int rc;
    switch (op->type) {
    case SBX_OP_LIBRARY_CREATE:
    case SBX_OP_DEVICE_RENAME:
        return check_str(op->name, 1, SBX_MAX_NAME);
    case SBX_OP_DEVICE_ADD:
        if ((rc = check_str(op->name, 1, SBX_MAX_NAME))) return rc;
        /* fall through */
    case SBX_OP_DEVICE_ROLE:
        return op->role == SBX_ROLE_CACHE || op->role == SBX_ROLE_FULL ? 0 : SBX_EMALFORMED;
    case SBX_OP_ALBUM_CREATE:
    case SBX_OP_ALBUM_RENAME:
    case SBX_OP_TAG_CREATE:
        return check_str(op->name, 1, SBX_MAX_LABEL);
    case SBX_OP_PHOTO_PUT: {
        const struct sbx_photo_facts *f = &op->facts;
        if (f->orientation > 8) return SBX_EMALFORMED;
        if (f->has_location && !lat_lon_valid(f->lat, f->lon)) return SBX_EMALFORMED;
        if ((rc = check_str(f->mime_type, 0, SBX_MAX_STR))) return rc;
        if ((rc = check_str(f->file_name, 0, SBX_MAX_STR))) return rc;
        if ((rc = check_str(f->camera_make, 0, SBX_MAX_STR))) return rc;
        return check_str(f->camera_model, 0, SBX_MAX_STR);
    }
    case SBX_OP_PHOTO_SET:
        return check_value(op->field, &op->value);
    case SBX_OP_ALBUM_REMOVE:
    case SBX_OP_PHOTO_TAG_REMOVE:
        return check_dots(op);
    case SBX_OP_ALBUM_POSITION:
        return isfinite(op->position) ? 0 : SBX_EMALFORMED;
    case SBX_OP_SHARE_CREATE:
        return op->expires_at_ms >= 0 ? 0 : SBX_EMALFORMED;
    case SBX_OP_DEVICE_REMOVE:
    case SBX_OP_PHOTO_DELETE:
    case SBX_OP_PHOTO_RESTORE:
    case SBX_OP_ALBUM_COVER:
    case SBX_OP_ALBUM_DELETE:
    case SBX_OP_ALBUM_RESTORE:
    case SBX_OP_ALBUM_ADD:
    case SBX_OP_PHOTO_TAG_ADD:
    case SBX_OP_SHARE_REVOKE:
    case SBX_OP_BLOB_HELD:
    case SBX_OP_BLOB_DROPPED:
        return 0;
    default:
        return SBX_EMALFORMED;
    }
}

/* ---- packing --------------------------------------------------------- */

#define PK(call)                                                             \
    do {                                                                     \
        int pk_rc_ = (call);                                                 \
        if (pk_rc_) return pk_rc_;                                           \
    } while (0)

static int pack_bin(msgpack_packer *pk, const uint8_t *p, size_t n)
{
    PK(msgpack_pack_bin(pk, n));
    return msgpack_pack_bin_body(pk, p, n);
}

static int pack_str(msgpack_packer *pk, struct sbx_str s)
{
    PK(msgpack_pack_str(pk, s.len));
    /* An empty string may come with a NULL pointer, which memcpy must not see. */
    return s.len ? msgpack_pack_str_body(pk, s.ptr, s.len) : 0;
}

static int pack_location(msgpack_packer *pk, bool present, double lat, double lon)
{
    if (!present) return msgpack_pack_nil(pk);
    PK(msgpack_pack_array(pk, 2));
    PK(msgpack_pack_double(pk, lat));
    return msgpack_pack_double(pk, lon);
}

static int pack_dots(msgpack_packer *pk, const struct sbx_op *op)
{
    PK(msgpack_pack_array(pk, op->n_dots));
    for (uint32_t i = 0; i < op->n_dots; i++) {
        PK(msgpack_pack_array(pk, 3));
        PK(pack_bin(pk, op->dots[i].author, SBX_KEY_BYTES));
        PK(msgpack_pack_uint64(pk, op->dots[i].seq));
        PK(msgpack_pack_uint32(pk, op->dots[i].idx));
    }
    return 0;
}

static int pack_value(msgpack_packer *pk, enum sbx_photo_field f, const struct sbx_photo_value *v)
{
    switch (f) {
    case SBX_PF_CAPTURED_AT:
        return v->is_nil ? msgpack_pack_nil(pk) : msgpack_pack_int64(pk, v->ms);
    case SBX_PF_LOCATION:
        return pack_location(pk, !v->is_nil, v->lat, v->lon);
    case SBX_PF_FILE_NAME:
    case SBX_PF_DESCRIPTION:
        return pack_str(pk, v->str);
    case SBX_PF_FAVORITE:
    case SBX_PF_ARCHIVED:
        return v->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case SBX_PF_THUMB:
    case SBX_PF_MEDIUM:
        return v->is_nil ? msgpack_pack_nil(pk) : pack_bin(pk, v->hash, SBX_HASH_BYTES);
    default:
        SBX_ASSERT(!"photo field checked before packing");
        return -1;
    }
}

int sbx_op_pack(msgpack_packer *pk, const struct sbx_op *op)
{
    SBX_ASSERT((unsigned)op->type < SBX_OP__COUNT && op_arity[op->type] != 0);
    PK(msgpack_pack_array(pk, op_arity[op->type]));
    PK(msgpack_pack_uint32(pk, (uint32_t)op->type));
    switch (op->type) {
    case SBX_OP_LIBRARY_CREATE:
    case SBX_OP_ALBUM_CREATE:
    case SBX_OP_ALBUM_RENAME:
    case SBX_OP_TAG_CREATE:
        PK(pack_bin(pk, op->id, SBX_ID_BYTES));
        return pack_str(pk, op->name);
    case SBX_OP_DEVICE_ADD:
        PK(pack_bin(pk, op->key, SBX_KEY_BYTES));
        PK(pack_str(pk, op->name));
        return msgpack_pack_uint32(pk, (uint32_t)op->role);
    case SBX_OP_DEVICE_REMOVE:
        PK(pack_bin(pk, op->key, SBX_KEY_BYTES));
        return msgpack_pack_uint64(pk, op->last_seq);
    case SBX_OP_DEVICE_RENAME:
        PK(pack_bin(pk, op->key, SBX_KEY_BYTES));
        return pack_str(pk, op->name);
    case SBX_OP_DEVICE_ROLE:
        PK(pack_bin(pk, op->key, SBX_KEY_BYTES));
        return msgpack_pack_uint32(pk, (uint32_t)op->role);
    case SBX_OP_PHOTO_PUT: {
        const struct sbx_photo_facts *f = &op->facts;
        PK(pack_bin(pk, op->id, SBX_ID_BYTES));
        PK(pack_bin(pk, f->hash, SBX_HASH_BYTES));
        PK(msgpack_pack_uint64(pk, f->size_bytes));
        PK(msgpack_pack_uint32(pk, f->width));
        PK(msgpack_pack_uint32(pk, f->height));
        PK(f->has_captured_at ? msgpack_pack_int64(pk, f->captured_at_ms) : msgpack_pack_nil(pk));
        PK(pack_location(pk, f->has_location, f->lat, f->lon));
        PK(msgpack_pack_uint8(pk, f->orientation));
        PK(pack_str(pk, f->mime_type));
        PK(pack_str(pk, f->file_name));
        PK(pack_str(pk, f->camera_make));
        return pack_str(pk, f->camera_model);
    }
    case SBX_OP_PHOTO_SET:
        PK(pack_bin(pk, op->id, SBX_ID_BYTES));
        PK(msgpack_pack_uint32(pk, (uint32_t)op->field));
        return pack_value(pk, op->field, &op->value);
    case SBX_OP_PHOTO_DELETE:
    case SBX_OP_PHOTO_RESTORE:
    case SBX_OP_ALBUM_DELETE:
    case SBX_OP_ALBUM_RESTORE:
    case SBX_OP_SHARE_REVOKE:
        return pack_bin(pk, op->id, SBX_ID_BYTES);
    case SBX_OP_ALBUM_COVER:
    case SBX_OP_ALBUM_ADD:
    case SBX_OP_PHOTO_TAG_ADD:
        PK(pack_bin(pk, op->id, SBX_ID_BYTES));
        return pack_bin(pk, op->ref, SBX_ID_BYTES);
    case SBX_OP_ALBUM_REMOVE:
    case SBX_OP_PHOTO_TAG_REMOVE:
        PK(pack_bin(pk, op->id, SBX_ID_BYTES));
        PK(pack_bin(pk, op->ref, SBX_ID_BYTES));
        return pack_dots(pk, op);
    case SBX_OP_ALBUM_POSITION:
        PK(pack_bin(pk, op->id, SBX_ID_BYTES));
        PK(pack_bin(pk, op->ref, SBX_ID_BYTES));
        return msgpack_pack_double(pk, op->position);
    case SBX_OP_SHARE_CREATE:
        PK(pack_bin(pk, op->id, SBX_ID_BYTES));
        PK(msgpack_pack_uint8(pk, op->ref_is_album ? 1 : 0));
        PK(pack_bin(pk, op->ref, SBX_ID_BYTES));
        return msgpack_pack_int64(pk, op->expires_at_ms);
    case SBX_OP_BLOB_HELD:
    case SBX_OP_BLOB_DROPPED:
        return pack_bin(pk, op->hash, SBX_HASH_BYTES);
    default:
        SBX_ASSERT(!"op type checked before packing");
        return -1;
    }
}

/* ---- parsing --------------------------------------------------------- */

#define RD(call)                                                             \
    do {                                                                     \
        int rd_rc_ = (call);                                                 \
        if (rd_rc_) return rd_rc_;                                           \
    } while (0)

static int read_u32(struct sbx_mp_reader *r, uint32_t *v)
{
    uint64_t u;
    RD(sbx_mp_read_uint(r, &u));
    if (u > UINT32_MAX) return SBX_EMALFORMED;
    *v = (uint32_t)u;
    return 0;
}

/* An unsigned integer that must be 0 or 1 (roles, share kinds). */
static int read_bit(struct sbx_mp_reader *r, uint32_t *v)
{
    RD(read_u32(r, v));
    return *v <= 1 ? 0 : SBX_EMALFORMED;
}

static int read_location(struct sbx_mp_reader *r, bool *present, double *lat, double *lon)
{
    uint32_t n;
    if (sbx_mp_try_nil(r)) {
        *present = false;
        return 0;
    }
    RD(sbx_mp_read_array(r, &n));
    if (n != 2) return SBX_EMALFORMED;
    RD(sbx_mp_read_f64(r, lat));
    RD(sbx_mp_read_f64(r, lon));
    *present = true;
    return 0;
}

int sbx_dots_parse(struct sbx_mp_reader *r, struct sbx_dot *out, uint32_t n)
{
    struct sbx_dot scratch;
    for (uint32_t i = 0; i < n; i++) {
        struct sbx_dot *d = out ? &out[i] : &scratch;
        uint32_t arity;
        RD(sbx_mp_read_array(r, &arity));
        if (arity != 3) return SBX_EMALFORMED;
        RD(sbx_mp_read_bin_n(r, d->author, SBX_KEY_BYTES));
        RD(sbx_mp_read_uint(r, &d->seq));
        RD(read_u32(r, &d->idx));
    }
    return 0;
}

static int read_dots(struct sbx_mp_reader *r, struct sbx_op *op, const uint8_t **dots_at)
{
    uint32_t n;
    RD(sbx_mp_read_array(r, &n));
    /* Refuse the count before walking it: it bounds the work. */
    if (n > SBX_MAX_DOTS_PER_REMOVE) return SBX_ETOOBIG;
    *dots_at = r->p;
    op->n_dots = n;
    return sbx_dots_parse(r, NULL, n);
}

static int read_value(struct sbx_mp_reader *r, enum sbx_photo_field f, struct sbx_photo_value *v)
{
    switch (f) {
    case SBX_PF_CAPTURED_AT:
        v->is_nil = sbx_mp_try_nil(r);
        return v->is_nil ? 0 : sbx_mp_read_int(r, &v->ms);
    case SBX_PF_LOCATION: {
        bool present;
        RD(read_location(r, &present, &v->lat, &v->lon));
        v->is_nil = !present;
        return 0;
    }
    case SBX_PF_FILE_NAME:
    case SBX_PF_DESCRIPTION:
        return sbx_mp_read_str(r, &v->str);
    case SBX_PF_FAVORITE:
    case SBX_PF_ARCHIVED:
        return sbx_mp_read_bool(r, &v->b);
    case SBX_PF_THUMB:
    case SBX_PF_MEDIUM:
        v->is_nil = sbx_mp_try_nil(r);
        return v->is_nil ? 0 : sbx_mp_read_bin_n(r, v->hash, SBX_HASH_BYTES);
    default:
        return SBX_EMALFORMED;
    }
}

int sbx_op_parse(struct sbx_mp_reader *r, struct sbx_op *op, const uint8_t **dots_at)
{
    uint32_t arity, type, u;
    memset(op, 0, sizeof *op);
    *dots_at = NULL;
    RD(sbx_mp_read_array(r, &arity));
    RD(read_u32(r, &type));
    if (type >= SBX_OP__COUNT || op_arity[type] == 0 || arity != op_arity[type])
        return SBX_EMALFORMED;
    op->type = (enum sbx_op_type)type;
    switch (op->type) {
    case SBX_OP_LIBRARY_CREATE:
    case SBX_OP_ALBUM_CREATE:
    case SBX_OP_ALBUM_RENAME:
    case SBX_OP_TAG_CREATE:
        RD(sbx_mp_read_bin_n(r, op->id, SBX_ID_BYTES));
        return sbx_mp_read_str(r, &op->name);
    case SBX_OP_DEVICE_ADD:
        RD(sbx_mp_read_bin_n(r, op->key, SBX_KEY_BYTES));
        RD(sbx_mp_read_str(r, &op->name));
        RD(read_bit(r, &u));
        op->role = (enum sbx_role)u;
        return 0;
    case SBX_OP_DEVICE_REMOVE:
        RD(sbx_mp_read_bin_n(r, op->key, SBX_KEY_BYTES));
        return sbx_mp_read_uint(r, &op->last_seq);
    case SBX_OP_DEVICE_RENAME:
        RD(sbx_mp_read_bin_n(r, op->key, SBX_KEY_BYTES));
        return sbx_mp_read_str(r, &op->name);
    case SBX_OP_DEVICE_ROLE:
        RD(sbx_mp_read_bin_n(r, op->key, SBX_KEY_BYTES));
        RD(read_bit(r, &u));
        op->role = (enum sbx_role)u;
        return 0;
    case SBX_OP_PHOTO_PUT: {
        struct sbx_photo_facts *f = &op->facts;
        RD(sbx_mp_read_bin_n(r, op->id, SBX_ID_BYTES));
        RD(sbx_mp_read_bin_n(r, f->hash, SBX_HASH_BYTES));
        RD(sbx_mp_read_uint(r, &f->size_bytes));
        RD(read_u32(r, &f->width));
        RD(read_u32(r, &f->height));
        f->has_captured_at = !sbx_mp_try_nil(r);
        if (f->has_captured_at) RD(sbx_mp_read_int(r, &f->captured_at_ms));
        RD(read_location(r, &f->has_location, &f->lat, &f->lon));
        RD(read_u32(r, &u));
        if (u > UINT8_MAX) return SBX_EMALFORMED;
        f->orientation = (uint8_t)u;
        RD(sbx_mp_read_str(r, &f->mime_type));
        RD(sbx_mp_read_str(r, &f->file_name));
        RD(sbx_mp_read_str(r, &f->camera_make));
        return sbx_mp_read_str(r, &f->camera_model);
    }
    case SBX_OP_PHOTO_SET:
        RD(sbx_mp_read_bin_n(r, op->id, SBX_ID_BYTES));
        RD(read_u32(r, &u));
        if (u == 0 || u >= SBX_PF__COUNT) return SBX_EMALFORMED;
        op->field = (enum sbx_photo_field)u;
        return read_value(r, op->field, &op->value);
    case SBX_OP_PHOTO_DELETE:
    case SBX_OP_PHOTO_RESTORE:
    case SBX_OP_ALBUM_DELETE:
    case SBX_OP_ALBUM_RESTORE:
    case SBX_OP_SHARE_REVOKE:
        return sbx_mp_read_bin_n(r, op->id, SBX_ID_BYTES);
    case SBX_OP_ALBUM_COVER:
    case SBX_OP_ALBUM_ADD:
    case SBX_OP_PHOTO_TAG_ADD:
        RD(sbx_mp_read_bin_n(r, op->id, SBX_ID_BYTES));
        return sbx_mp_read_bin_n(r, op->ref, SBX_ID_BYTES);
    case SBX_OP_ALBUM_REMOVE:
    case SBX_OP_PHOTO_TAG_REMOVE:
        RD(sbx_mp_read_bin_n(r, op->id, SBX_ID_BYTES));
        RD(sbx_mp_read_bin_n(r, op->ref, SBX_ID_BYTES));
        return read_dots(r, op, dots_at);
    case SBX_OP_ALBUM_POSITION:
        RD(sbx_mp_read_bin_n(r, op->id, SBX_ID_BYTES));
        RD(sbx_mp_read_bin_n(r, op->ref, SBX_ID_BYTES));
        return sbx_mp_read_f64(r, &op->position);
    case SBX_OP_SHARE_CREATE:
        RD(sbx_mp_read_bin_n(r, op->id, SBX_ID_BYTES));
        RD(read_bit(r, &u));
        op->ref_is_album = u == 1;
        RD(sbx_mp_read_bin_n(r, op->ref, SBX_ID_BYTES));
        return sbx_mp_read_int(r, &op->expires_at_ms);
    case SBX_OP_BLOB_HELD:
    case SBX_OP_BLOB_DROPPED:
        return sbx_mp_read_bin_n(r, op->hash, SBX_HASH_BYTES);
    default:
        return SBX_EMALFORMED;
    }
}
