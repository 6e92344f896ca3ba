#include "sbx_test.h"
#include "shoebox/entry.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <math.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdint.h>
#include <time.h>

/* ---- fixtures ---------------------------------------------------------- */

static uint8_t PK1[32], SK1[64], PK2[32], SK2[64];
static const uint8_t LIB[16] = {0x4c, 0x49, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
static const uint8_t ZERO32[32];
/* An HLC timestamp above 2^32, so it packs as uint64. */
#define SBX_HLC_TEST_TS ((UINT64_C(1700000000000) << 16) | 4)

static void keys(void)
{
    uint8_t seed[32];
    REQUIRE(sodium_init() >= 0);
    memset(seed, 1, sizeof seed);
    crypto_sign_seed_keypair(PK1, SK1, seed);
    memset(seed, 2, sizeof seed);
    crypto_sign_seed_keypair(PK2, SK2, seed);
}

static struct sbx_str S(const char *s)
{
    return (struct sbx_str){s, (uint32_t)strlen(s)};
}

static void fill(uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v + i);
}

static bool str_eq(struct sbx_str a, struct sbx_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool bytes_eq(const void *a, const void *b, size_t n)
{
    return memcmp(a, b, n) == 0;
}

static bool is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* Every op type, and every photo field with and without nil, with fields
 * that differ from each other so a swap shows. */
static struct sbx_dot DOTS_A[3], DOTS_B[1];
static char LONG_DESC[SBX_MAX_STR + 1];

static size_t all_ops(struct sbx_op *ops)
{
    size_t n = 0;
    struct sbx_op *o;
    for (int i = 0; i < 3; i++) {
        fill(DOTS_A[i].author, 32, (uint8_t)(0x30 + i));
        DOTS_A[i].seq = 1000000ull * (uint64_t)(i + 1) + 7;
        DOTS_A[i].idx = (uint32_t)(i * 100);
    }
    fill(DOTS_B[0].author, 32, 0x77);
    DOTS_B[0].seq = UINT64_MAX;
    DOTS_B[0].idx = SBX_MAX_OPS_PER_ENTRY - 1;
    memset(LONG_DESC, 'd', SBX_MAX_STR);

#define NEW(t) (o = &ops[n++], memset(o, 0, sizeof *o), o->type = (t))
    NEW(SBX_OP_LIBRARY_CREATE); fill(o->id, 16, 0x01); o->name = S("Family photos");
    NEW(SBX_OP_DEVICE_ADD); fill(o->key, 32, 0x02); o->name = S("Nas in the attic"); o->role = SBX_ROLE_FULL;
    NEW(SBX_OP_DEVICE_ADD); fill(o->key, 32, 0x03); o->name = S("phone"); o->role = SBX_ROLE_CACHE;
    NEW(SBX_OP_DEVICE_REMOVE); fill(o->key, 32, 0x04); o->last_seq = 123456789012ull;
    NEW(SBX_OP_DEVICE_RENAME); fill(o->key, 32, 0x05); o->name = S("Ma\xc5\x82gorzata's laptop");
    NEW(SBX_OP_DEVICE_ROLE); fill(o->key, 32, 0x06); o->role = SBX_ROLE_FULL;
    NEW(SBX_OP_PHOTO_PUT); fill(o->id, 16, 0x07); fill(o->facts.hash, 32, 0x08);
    o->facts.size_bytes = 5000000000ull; o->facts.width = 4032; o->facts.height = 3024;
    o->facts.has_captured_at = true; o->facts.captured_at_ms = 1589644091123;
    o->facts.has_location = true; o->facts.lat = -33.8688; o->facts.lon = 151.2093;
    o->facts.orientation = 6; o->facts.mime_type = S("image/jpeg");
    o->facts.file_name = S("IMG_0001.JPG"); o->facts.camera_make = S("Apple");
    o->facts.camera_model = S("iPhone 12 Pro");
    /* No date, no place, empty strings, a date before 1970. */
    NEW(SBX_OP_PHOTO_PUT); fill(o->id, 16, 0x09); fill(o->facts.hash, 32, 0x0a);
    o->facts.size_bytes = 0; o->facts.width = UINT32_MAX; o->facts.height = 1;
    o->facts.mime_type = S("image/png");
    NEW(SBX_OP_PHOTO_PUT); fill(o->id, 16, 0x0b); fill(o->facts.hash, 32, 0x0c);
    o->facts.has_captured_at = true; o->facts.captured_at_ms = -2208988800000ll;
    o->facts.has_location = true; o->facts.lat = 90; o->facts.lon = -180;
    o->facts.orientation = 8; o->facts.file_name = S("\xe6\x97\xa5\xe6\x9c\xac.heic");
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x10); o->field = SBX_PF_CAPTURED_AT; o->value.ms = -5;
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x11); o->field = SBX_PF_CAPTURED_AT; o->value.is_nil = true;
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x12); o->field = SBX_PF_LOCATION;
    o->value.lat = 51.5; o->value.lon = -0.125;
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x13); o->field = SBX_PF_LOCATION; o->value.is_nil = true;
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x14); o->field = SBX_PF_FILE_NAME; o->value.str = S("renamed.jpg");
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x15); o->field = SBX_PF_FAVORITE; o->value.b = true;
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x16); o->field = SBX_PF_ARCHIVED; o->value.b = false;
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x17); o->field = SBX_PF_DESCRIPTION;
    o->value.str = (struct sbx_str){LONG_DESC, SBX_MAX_STR};
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x18); o->field = SBX_PF_DESCRIPTION; o->value.str = S("");
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x19); o->field = SBX_PF_THUMB; fill(o->value.hash, 32, 0x1a);
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x1b); o->field = SBX_PF_THUMB; o->value.is_nil = true;
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x1c); o->field = SBX_PF_MEDIUM; fill(o->value.hash, 32, 0x1d);
    NEW(SBX_OP_PHOTO_SET); fill(o->id, 16, 0x1e); o->field = SBX_PF_MEDIUM; o->value.is_nil = true;
    NEW(SBX_OP_PHOTO_DELETE); fill(o->id, 16, 0x20);
    NEW(SBX_OP_PHOTO_RESTORE); fill(o->id, 16, 0x21);
    NEW(SBX_OP_ALBUM_CREATE); fill(o->id, 16, 0x22); o->name = S("Wakacje 2023 \xf0\x9f\x8f\x96");
    NEW(SBX_OP_ALBUM_RENAME); fill(o->id, 16, 0x23); o->name = S("Holidays");
    NEW(SBX_OP_ALBUM_COVER); fill(o->id, 16, 0x24); fill(o->ref, 16, 0x25);
    NEW(SBX_OP_ALBUM_COVER); fill(o->id, 16, 0x26); /* all-zero ref: no cover */
    NEW(SBX_OP_ALBUM_DELETE); fill(o->id, 16, 0x27);
    NEW(SBX_OP_ALBUM_RESTORE); fill(o->id, 16, 0x28);
    NEW(SBX_OP_ALBUM_ADD); fill(o->id, 16, 0x29); fill(o->ref, 16, 0x2a);
    NEW(SBX_OP_ALBUM_REMOVE); fill(o->id, 16, 0x2b); fill(o->ref, 16, 0x2c);
    o->n_dots = 3; o->dots = DOTS_A;
    NEW(SBX_OP_ALBUM_POSITION); fill(o->id, 16, 0x2d); fill(o->ref, 16, 0x2e); o->position = -1.5e-300;
    NEW(SBX_OP_TAG_CREATE); fill(o->id, 16, 0x2f); o->name = S("cats");
    NEW(SBX_OP_PHOTO_TAG_ADD); fill(o->id, 16, 0x30); fill(o->ref, 16, 0x31);
    NEW(SBX_OP_PHOTO_TAG_REMOVE); fill(o->id, 16, 0x32); fill(o->ref, 16, 0x33);
    o->n_dots = 1; o->dots = DOTS_B;
    NEW(SBX_OP_SHARE_CREATE); fill(o->id, 16, 0x34); o->ref_is_album = true; fill(o->ref, 16, 0x35);
    o->expires_at_ms = 1700000000000ll;
    NEW(SBX_OP_SHARE_CREATE); fill(o->id, 16, 0x36); o->ref_is_album = false; fill(o->ref, 16, 0x37);
    o->expires_at_ms = 0;
    NEW(SBX_OP_SHARE_REVOKE); fill(o->id, 16, 0x38);
    NEW(SBX_OP_BLOB_HELD); fill(o->hash, 32, 0x39);
    NEW(SBX_OP_BLOB_DROPPED); fill(o->hash, 32, 0x3a);
#undef NEW
    return n;
}

/* Compares the fields each op type carries, and that the decoder left every
 * other field zero. Written from the protocol table, not from the codec. */
static void check_op_equal(const struct sbx_op *w, const struct sbx_op *g)
{
    CHECK_EQ_INT(g->type, w->type);
    bool id = false, ref = false, key = false, hash = false, name = false, role = false;
    bool dots = false;
    switch (w->type) {
    case SBX_OP_LIBRARY_CREATE: id = name = true; break;
    case SBX_OP_DEVICE_ADD: key = name = role = true; break;
    case SBX_OP_DEVICE_REMOVE: key = true; CHECK(g->last_seq == w->last_seq); break;
    case SBX_OP_DEVICE_RENAME: key = name = true; break;
    case SBX_OP_DEVICE_ROLE: key = role = true; break;
    case SBX_OP_PHOTO_PUT: {
        id = true;
        const struct sbx_photo_facts *a = &w->facts, *b = &g->facts;
        CHECK(bytes_eq(a->hash, b->hash, 32));
        CHECK(a->size_bytes == b->size_bytes);
        CHECK(a->width == b->width);
        CHECK(a->height == b->height);
        CHECK(a->has_captured_at == b->has_captured_at);
        CHECK(b->captured_at_ms == (a->has_captured_at ? a->captured_at_ms : 0));
        CHECK(a->has_location == b->has_location);
        CHECK(b->lat == (a->has_location ? a->lat : 0));
        CHECK(b->lon == (a->has_location ? a->lon : 0));
        CHECK_EQ_INT(b->orientation, a->orientation);
        CHECK(str_eq(a->mime_type, b->mime_type));
        CHECK(str_eq(a->file_name, b->file_name));
        CHECK(str_eq(a->camera_make, b->camera_make));
        CHECK(str_eq(a->camera_model, b->camera_model));
        break;
    }
    case SBX_OP_PHOTO_SET: {
        id = true;
        CHECK_EQ_INT(g->field, w->field);
        const struct sbx_photo_value *a = &w->value, *b = &g->value;
        CHECK(a->is_nil == b->is_nil);
        bool ms = false, loc = false, str = false, bl = false, h = false;
        switch (w->field) {
        case SBX_PF_CAPTURED_AT: ms = !a->is_nil; break;
        case SBX_PF_LOCATION: loc = !a->is_nil; break;
        case SBX_PF_FILE_NAME:
        case SBX_PF_DESCRIPTION: str = true; break;
        case SBX_PF_FAVORITE:
        case SBX_PF_ARCHIVED: bl = true; break;
        case SBX_PF_THUMB:
        case SBX_PF_MEDIUM: h = !a->is_nil; break;
        default: CHECK(!"field");
        }
        CHECK(b->ms == (ms ? a->ms : 0));
        CHECK(b->lat == (loc ? a->lat : 0) && b->lon == (loc ? a->lon : 0));
        CHECK(str ? str_eq(a->str, b->str) : b->str.len == 0);
        CHECK(b->b == (bl ? a->b : false));
        CHECK(h ? bytes_eq(a->hash, b->hash, 32) : is_zero(b->hash, 32));
        break;
    }
    case SBX_OP_PHOTO_DELETE:
    case SBX_OP_PHOTO_RESTORE:
    case SBX_OP_ALBUM_DELETE:
    case SBX_OP_ALBUM_RESTORE:
    case SBX_OP_SHARE_REVOKE: id = true; break;
    case SBX_OP_ALBUM_CREATE:
    case SBX_OP_ALBUM_RENAME:
    case SBX_OP_TAG_CREATE: id = name = true; break;
    case SBX_OP_ALBUM_COVER:
    case SBX_OP_ALBUM_ADD:
    case SBX_OP_PHOTO_TAG_ADD: id = ref = true; break;
    case SBX_OP_ALBUM_REMOVE:
    case SBX_OP_PHOTO_TAG_REMOVE: id = ref = dots = true; break;
    case SBX_OP_ALBUM_POSITION:
        id = ref = true;
        CHECK(bytes_eq(&g->position, &w->position, sizeof(double)));
        break;
    case SBX_OP_SHARE_CREATE:
        id = ref = true;
        CHECK(g->ref_is_album == w->ref_is_album);
        CHECK(g->expires_at_ms == w->expires_at_ms);
        break;
    case SBX_OP_BLOB_HELD:
    case SBX_OP_BLOB_DROPPED: hash = true; break;
    default: CHECK(!"type");
    }
    CHECK(id ? bytes_eq(g->id, w->id, 16) : is_zero(g->id, 16));
    CHECK(ref ? bytes_eq(g->ref, w->ref, 16) : is_zero(g->ref, 16));
    CHECK(key ? bytes_eq(g->key, w->key, 32) : is_zero(g->key, 32));
    CHECK(hash ? bytes_eq(g->hash, w->hash, 32) : is_zero(g->hash, 32));
    CHECK(name ? str_eq(g->name, w->name) : g->name.len == 0);
    CHECK(g->role == (role ? w->role : 0));
    if (w->type != SBX_OP_DEVICE_REMOVE) CHECK(g->last_seq == 0);
    if (w->type != SBX_OP_SHARE_CREATE) CHECK(!g->ref_is_album && g->expires_at_ms == 0);
    if (w->type != SBX_OP_ALBUM_POSITION) CHECK(g->position == 0);
    if (w->type != SBX_OP_PHOTO_SET) CHECK(g->field == 0 && !g->value.is_nil);
    if (w->type != SBX_OP_PHOTO_PUT) CHECK(is_zero(&g->facts.hash, 32) && g->facts.width == 0);
    if (dots) {
        CHECK_EQ_INT(g->n_dots, w->n_dots);
        REQUIRE(g->dots);
        for (uint32_t i = 0; i < w->n_dots && i < g->n_dots; i++) {
            CHECK(bytes_eq(g->dots[i].author, w->dots[i].author, 32));
            CHECK(g->dots[i].seq == w->dots[i].seq);
            CHECK(g->dots[i].idx == w->dots[i].idx);
        }
    } else {
        CHECK(g->n_dots == 0 && g->dots == NULL);
    }
}

/* Builds one entry from ops with the test key; REQUIREs success. */
static struct sbx_entry *build(const struct sbx_op *ops, size_t n, uint64_t seq,
                               const uint8_t *prev, uint64_t hlc)
{
    sbx_entry_builder *b = NULL;
    struct sbx_entry *e = NULL;
    if (sbx_entry_builder_new(&b, LIB, PK1, seq, prev, hlc) != 0) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (sbx_entry_builder_add(b, &ops[i]) != 0) {
            sbx_entry_builder_free(b);
            return NULL;
        }
    }
    if (sbx_entry_builder_finish(b, SK1, &e) != 0) e = NULL;
    sbx_entry_builder_free(b);
    return e;
}

static void make_put(struct sbx_op *o, uint32_t i, char name[32])
{
    memset(o, 0, sizeof *o);
    o->type = SBX_OP_PHOTO_PUT;
    memcpy(o->id, &i, sizeof i);
    fill(o->facts.hash, 32, (uint8_t)i);
    memcpy(o->facts.hash, &i, sizeof i);
    o->facts.size_bytes = 2000000 + i;
    o->facts.width = 4000;
    o->facts.height = 3000;
    o->facts.has_captured_at = true;
    o->facts.captured_at_ms = 1600000000000ll + i * 1000ll;
    o->facts.has_location = (i % 3) == 0;
    o->facts.lat = 48.85;
    o->facts.lon = 2.35;
    o->facts.orientation = 1;
    o->facts.mime_type = S("image/jpeg");
    snprintf(name, 32, "IMG_%06u.JPG", i);
    o->facts.file_name = S(name);
    o->facts.camera_make = S("Canon");
    o->facts.camera_model = S("Canon EOS 5D Mark IV");
}

/* ---- hand-made bodies, for what the builder refuses to write ----------- */

struct hb {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void hb_init(struct hb *h)
{
    msgpack_sbuffer_init(&h->sb);
    msgpack_packer_init(&h->pk, &h->sb, msgpack_sbuffer_write);
}

static void hb_raw(struct hb *h, const void *p, size_t n)
{
    msgpack_sbuffer_write(&h->sb, p, n);
}

static void hb_bin(struct hb *h, const uint8_t *p, size_t n)
{
    msgpack_pack_bin(&h->pk, n);
    msgpack_pack_bin_body(&h->pk, p, n);
}

static void hb_str(struct hb *h, const char *s, size_t n)
{
    msgpack_pack_str(&h->pk, n);
    if (n) msgpack_pack_str_body(&h->pk, s, n);
}

/* The standard head (version 1, LIB, PK1, seq 1, zero prev, hlc 42) and the
 * ops array header. */
/* The fields of the head, in order, for hb_head_except. */
enum hb_field { HB_BODY = 0, HB_VERSION, HB_LIBRARY, HB_AUTHOR, HB_SEQ, HB_PREV, HB_HLC, HB_NONE };

/* The standard head with one field written as the raw bytes given instead
 * (a non-canonical spelling of the same value). */
static void hb_head_except(struct hb *h, uint32_t n_ops, enum hb_field f, const void *raw, size_t n)
{
    for (int k = HB_BODY; k < HB_NONE; k++) {
        if (k == (int)f) {
            hb_raw(h, raw, n);
            continue;
        }
        switch (k) {
        case HB_BODY: msgpack_pack_array(&h->pk, 7); break;
        case HB_VERSION: msgpack_pack_uint8(&h->pk, 1); break;
        case HB_LIBRARY: hb_bin(h, LIB, 16); break;
        case HB_AUTHOR: hb_bin(h, PK1, 32); break;
        case HB_SEQ: msgpack_pack_uint8(&h->pk, 1); break;
        case HB_PREV: hb_bin(h, ZERO32, 32); break;
        case HB_HLC: msgpack_pack_uint8(&h->pk, 42); break;
        }
    }
    msgpack_pack_array(&h->pk, n_ops);
}

static void hb_head(struct hb *h, uint32_t n_ops) { hb_head_except(h, n_ops, HB_NONE, NULL, 0); }

/* Signs the body with `sk`, decodes, frees; returns the decode status. */
static int hb_try_sk(struct hb *h, const uint8_t sk[64])
{
    size_t len = h->sb.size + 64;
    uint8_t *buf = malloc(len);
    if (!buf) return SBX_ENOMEM;
    memcpy(buf, h->sb.data, h->sb.size);
    crypto_sign_detached(buf + h->sb.size, NULL, buf, h->sb.size, sk);
    struct sbx_entry *e = NULL;
    int rc = sbx_entry_decode(buf, len, &e);
    if (rc == 0 && !e) rc = -1;
    if (rc != 0 && e) rc = -2;
    sbx_entry_free(e);
    free(buf);
    msgpack_sbuffer_destroy(&h->sb);
    return rc;
}

static int hb_try(struct hb *h)
{
    return hb_try_sk(h, SK1);
}

/* One body with a single photo.delete op: the smallest valid entry. */
static void hb_delete_op(struct hb *h)
{
    uint8_t id[16];
    fill(id, 16, 0xd0);
    msgpack_pack_array(&h->pk, 2);
    msgpack_pack_uint8(&h->pk, SBX_OP_PHOTO_DELETE);
    hb_bin(h, id, 16);
}

/* ---- cases -------------------------------------------------------------- */

SBX_TEST(roundtrip_every_op_type)
{
    keys();
    static struct sbx_op ops[64];
    size_t n = all_ops(ops);
    /* Every type appears at least once. */
    for (int t = SBX_OP_LIBRARY_CREATE; t < SBX_OP__COUNT; t++) {
        bool seen = false;
        for (size_t i = 0; i < n; i++) seen |= ops[i].type == (enum sbx_op_type)t;
        CHECK(seen);
    }
    uint8_t prev[32];
    fill(prev, 32, 0xee);
    struct sbx_entry *e = build(ops, n, 77, prev, SBX_HLC_TEST_TS);
    REQUIRE(e);
    CHECK(bytes_eq(e->library, LIB, 16));
    CHECK(bytes_eq(e->author, PK1, 32));
    CHECK(e->seq == 77);
    CHECK(bytes_eq(e->prev, prev, 32));
    CHECK(e->hlc == SBX_HLC_TEST_TS);
    REQUIRE(e->n_ops == n);
    for (size_t i = 0; i < n; i++) check_op_equal(&ops[i], &e->ops[i]);

    /* The hash is BLAKE2b-256 of body || signature, the signature is the
     * last 64 bytes and verifies over the rest. */
    uint8_t h[32];
    crypto_generichash(h, 32, e->raw, e->raw_len, NULL, 0);
    CHECK(bytes_eq(h, e->hash, 32));
    CHECK(bytes_eq(e->sig, e->raw + e->raw_len - 64, 64));
    CHECK(crypto_sign_verify_detached(e->sig, e->raw, e->raw_len - 64, PK1) == 0);

    /* Decoding the bytes again gives the same entry, and strings point into
     * the copy the entry owns, not into the caller's buffer. */
    uint8_t *copy = malloc(e->raw_len);
    REQUIRE(copy);
    memcpy(copy, e->raw, e->raw_len);
    struct sbx_entry *d = NULL;
    CHECK_EQ_INT(sbx_entry_decode(copy, e->raw_len, &d), 0);
    memset(copy, 0xaa, e->raw_len);
    free(copy);
    if (d) {
        CHECK(bytes_eq(d->hash, e->hash, 32));
        CHECK(d->raw_len == e->raw_len && bytes_eq(d->raw, e->raw, e->raw_len));
        REQUIRE(d->n_ops == n);
        for (size_t i = 0; i < n; i++) check_op_equal(&ops[i], &d->ops[i]);
        CHECK((const uint8_t *)d->ops[0].name.ptr >= d->raw &&
              (const uint8_t *)d->ops[0].name.ptr < d->raw + d->raw_len);
    }
    sbx_entry_free(d);
    sbx_entry_free(e);
}

SBX_TEST(roundtrip_each_op_alone)
{
    keys();
    static struct sbx_op ops[64];
    size_t n = all_ops(ops);
    for (size_t i = 0; i < n; i++) {
        struct sbx_entry *e = build(&ops[i], 1, 1, NULL, 1);
        CHECK(e != NULL);
        if (!e) continue;
        CHECK(e->n_ops == 1);
        check_op_equal(&ops[i], &e->ops[0]);
        CHECK(is_zero(e->prev, 32));
        sbx_entry_free(e);
    }
}

SBX_TEST(known_bytes)
{
    /* Pins the encoding of docs/protocol.md's example, byte for byte. */
    keys();
    struct sbx_op op = {.type = SBX_OP_ALBUM_ADD};
    fill(op.id, 16, 0xa0);
    fill(op.ref, 16, 0xb0);
    sbx_entry_builder *b = NULL;
    uint8_t prev[32];
    fill(prev, 32, 0xc0);
    REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, 2, prev, SBX_HLC_TEST_TS) == 0);
    REQUIRE(sbx_entry_builder_add(b, &op) == 0);
    struct sbx_entry *e = NULL;
    REQUIRE(sbx_entry_builder_finish(b, SK1, &e) == 0);
    sbx_entry_builder_free(b);
    static const uint8_t head[] = {
        0x97, 0x01, 0xc4, 0x10, /* array 7, version 1, bin8 16 */
    };
    CHECK(bytes_eq(e->raw, head, sizeof head));
    CHECK(bytes_eq(e->raw + 4, LIB, 16));
    CHECK(e->raw[20] == 0xc4 && e->raw[21] == 32);
    CHECK(bytes_eq(e->raw + 22, PK1, 32));
    CHECK(e->raw[54] == 0x02);                        /* seq: fixint */
    CHECK(e->raw[55] == 0xc4 && e->raw[56] == 32);
    CHECK(bytes_eq(e->raw + 57, prev, 32));
    CHECK(e->raw[89] == 0xcf);                        /* hlc: uint64 */
    CHECK(e->raw[98] == 0x91);                        /* one op */
    CHECK(e->raw[99] == 0x93 && e->raw[100] == 0x0f); /* [15, ...] */
    CHECK(e->raw[101] == 0xc4 && e->raw[102] == 16);
    CHECK(bytes_eq(e->raw + 103, op.id, 16));
    CHECK(e->raw[119] == 0xc4 && e->raw[120] == 16);
    CHECK(bytes_eq(e->raw + 121, op.ref, 16));
    CHECK_EQ_INT(e->raw_len, 137 + 64);
    /* Ed25519 is deterministic, so the hash pins the signature too. */
    char hex[65];
    sbx_hex_encode(hex, e->hash, 32);
    CHECK_EQ_STR(hex, "32f5fe76354ae0165e7c94a2ecd4405e4cfdbb132522192b3fc55b04255c1dba");
    sbx_entry_free(e);
}

SBX_TEST(builder_splits_at_max_ops)
{
    keys();
    sbx_entry_builder *b = NULL;
    REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, 1, NULL, 5) == 0);
    struct sbx_op op = {.type = SBX_OP_PHOTO_DELETE};
    for (uint32_t i = 0; i < SBX_MAX_OPS_PER_ENTRY; i++) {
        memcpy(op.id, &i, sizeof i);
        int rc = sbx_entry_builder_add(b, &op);
        CHECK_EQ_INT(rc, 0);
        if (rc) break;
    }
    CHECK_EQ_INT(sbx_entry_builder_count(b), SBX_MAX_OPS_PER_ENTRY);
    size_t size = sbx_entry_builder_size(b);
    CHECK_EQ_INT(sbx_entry_builder_add(b, &op), SBX_ETOOBIG);
    /* A refused add leaves the builder as it was. */
    CHECK_EQ_INT(sbx_entry_builder_count(b), SBX_MAX_OPS_PER_ENTRY);
    CHECK_EQ_INT(sbx_entry_builder_size(b), size);
    struct sbx_entry *e = NULL;
    CHECK_EQ_INT(sbx_entry_builder_finish(b, SK1, &e), 0);
    REQUIRE(e);
    CHECK_EQ_INT(e->n_ops, SBX_MAX_OPS_PER_ENTRY);
    CHECK_EQ_INT(e->raw_len, size);
    for (uint32_t i = 0; i < e->n_ops; i++) {
        uint32_t v;
        memcpy(&v, e->ops[i].id, 4);
        if (v != i) {
            CHECK(v == i);
            break;
        }
    }
    /* A finished builder takes nothing more. */
    CHECK_EQ_INT(sbx_entry_builder_add(b, &op), SBX_ESTATE);
    struct sbx_entry *e2 = NULL;
    CHECK_EQ_INT(sbx_entry_builder_finish(b, SK1, &e2), SBX_ESTATE);
    CHECK(e2 == NULL);
    sbx_entry_free(e);
    sbx_entry_builder_free(b);
}

SBX_TEST(builder_splits_at_bytes)
{
    keys();
    /* Photo puts with four long strings: about 4 KiB each, so the byte limit
     * comes long before the op limit. */
    static char big[SBX_MAX_STR];
    memset(big, 'x', sizeof big);
    struct sbx_str s = {big, SBX_MAX_STR};
    char name[32];
    struct sbx_op op;
    sbx_entry_builder *b = NULL;
    REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, 3, ZERO32 /* any prev */, 5) == 0);
    uint32_t i = 0;
    int rc;
    size_t last_size = sbx_entry_builder_size(b);
    for (;; i++) {
        make_put(&op, i, name);
        op.facts.camera_make = op.facts.camera_model = op.facts.mime_type = s;
        rc = sbx_entry_builder_add(b, &op);
        if (rc) break;
        CHECK(sbx_entry_builder_size(b) > last_size);
        last_size = sbx_entry_builder_size(b);
        if (i > SBX_MAX_OPS_PER_ENTRY) break;
    }
    CHECK_EQ_INT(rc, SBX_ETOOBIG);
    CHECK(i > 1 && i < SBX_MAX_OPS_PER_ENTRY);
    /* The op that did not fit would have crossed the limit by less than its
     * own size, so the split is tight. */
    CHECK(last_size <= SBX_MAX_ENTRY_BYTES);
    CHECK(last_size + 3 * SBX_MAX_STR + 200 > SBX_MAX_ENTRY_BYTES);
    struct sbx_entry *e = NULL;
    CHECK_EQ_INT(sbx_entry_builder_finish(b, SK1, &e), 0);
    REQUIRE(e);
    CHECK_EQ_INT(e->n_ops, i);
    CHECK_EQ_INT(e->raw_len, last_size);
    CHECK(e->raw_len <= SBX_MAX_ENTRY_BYTES);
    sbx_entry_builder_free(b);

    /* The refused op starts the next entry. */
    b = NULL;
    REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, 4, e->hash, 6) == 0);
    CHECK_EQ_INT(sbx_entry_builder_add(b, &op), 0);
    struct sbx_entry *e2 = NULL;
    CHECK_EQ_INT(sbx_entry_builder_finish(b, SK1, &e2), 0);
    CHECK(e2 && bytes_eq(e2->prev, e->hash, 32));
    sbx_entry_free(e2);
    sbx_entry_free(e);
    sbx_entry_builder_free(b);
}

SBX_TEST(split_many_photo_puts)
{
    /* 10,000 small puts split by the op limit; 2,000 large ones by bytes.
     * Every entry decodes and the ops come back in order. */
    keys();
    static char big[600];
    memset(big, 'y', sizeof big);
    for (int pass = 0; pass < 2; pass++) {
        uint32_t total = pass ? 2000 : 10000, done = 0, entries = 0;
        uint64_t seq = 1;
        uint8_t prev[32] = {0};
        sbx_entry_builder *b = NULL;
        char name[32];
        struct sbx_op op;
        bool ok = true;
        REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, seq, prev, 1) == 0);
        for (uint32_t i = 0; i <= total && ok; i++) {
            if (i < total) {
                make_put(&op, i, name);
                if (pass) op.facts.camera_model = (struct sbx_str){big, sizeof big};
                int rc = sbx_entry_builder_add(b, &op);
                if (rc == 0) continue;
                ok = rc == SBX_ETOOBIG;
                CHECK(ok);
            }
            struct sbx_entry *e = NULL;
            ok = ok && sbx_entry_builder_finish(b, SK1, &e) == 0;
            CHECK(ok);
            sbx_entry_builder_free(b);
            b = NULL;
            if (!ok) break;
            for (uint32_t k = 0; k < e->n_ops; k++) {
                uint32_t v;
                memcpy(&v, e->ops[k].id, 4);
                if (v != done + k) ok = false;
            }
            CHECK(ok);
            done += e->n_ops;
            entries++;
            if (!pass) CHECK(e->n_ops == SBX_MAX_OPS_PER_ENTRY || done == total);
            memcpy(prev, e->hash, 32);
            sbx_entry_free(e);
            if (i < total) {
                REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, ++seq, prev, 1) == 0);
                ok = sbx_entry_builder_add(b, &op) == 0;
                CHECK(ok);
            }
        }
        sbx_entry_builder_free(b);
        CHECK_EQ_INT(done, total);
        if (!pass) CHECK_EQ_INT(entries, (total + 255) / 256);
        else CHECK(entries > total / SBX_MAX_OPS_PER_ENTRY + 1);
        printf("# %u puts -> %u entries\n", total, entries);
    }
}

SBX_TEST(every_byte_flip_refused)
{
    keys();
    static struct sbx_op ops[64];
    size_t n = all_ops(ops);
    /* Leave out the long description to keep the loop short. */
    struct sbx_op some[12];
    size_t m = 0;
    for (size_t i = 0; i < n && m < 12; i += 3) some[m++] = ops[i];
    struct sbx_entry *e = build(some, m, 9, ZERO32, 1234567);
    REQUIRE(e);
    size_t len = e->raw_len;
    uint8_t *buf = malloc(len);
    REQUIRE(buf);
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    size_t refused = 0, tried = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t k = 0; k < sizeof masks; k++) {
            memcpy(buf, e->raw, len);
            buf[pos] ^= masks[k];
            struct sbx_entry *d = NULL;
            int rc = sbx_entry_decode(buf, len, &d);
            tried++;
            if (rc != 0 && d == NULL) refused++;
            else printf("# flip 0x%02x at %zu accepted\n", masks[k], pos);
            if (pos >= len - 64) CHECK_EQ_INT(rc, SBX_ECRYPTO);
            sbx_entry_free(d);
        }
    }
    CHECK_EQ_INT(refused, tried);
    printf("# %zu flips of a %zu-byte entry, all refused\n", tried, len);
    free(buf);
    sbx_entry_free(e);
}

SBX_TEST(hand_built_baseline_accepted)
{
    /* The helpers below make refusals; first show they make valid entries
     * when asked, so a refusal means what the test says. */
    keys();
    struct hb h;
    hb_init(&h);
    hb_head(&h, 1);
    hb_delete_op(&h);
    CHECK_EQ_INT(hb_try(&h), 0);
}

SBX_TEST(non_canonical_refused)
{
    keys();
    struct hb h;
    uint8_t id[16];
    fill(id, 16, 0xd0);

    /* The head with one field spelled non-canonically is refused; the same
     * field written canonically the same way is accepted. */
    uint8_t lib_bin8[2 + 16] = {0xc4, 0x10}, lib_bin16[3 + 16] = {0xc5, 0x00, 0x10};
    memcpy(lib_bin8 + 2, LIB, 16);
    memcpy(lib_bin16 + 3, LIB, 16);
    const struct {
        enum hb_field f;
        const void *bad, *good;
        size_t bad_n, good_n;
    } heads[] = {
        /* seq as uint64 instead of a fixint */
        {HB_SEQ, "\xcf\0\0\0\0\0\0\0\x01", "\x01", 9, 1},
        /* version as uint8 */
        {HB_VERSION, "\xcc\x01", "\x01", 2, 1},
        /* the body array as array16 */
        {HB_BODY, "\xdc\x00\x07", "\x97", 3, 1},
        /* the library id as bin16 instead of bin8 */
        {HB_LIBRARY, lib_bin16, lib_bin8, sizeof lib_bin16, sizeof lib_bin8},
    };
    for (size_t i = 0; i < SBX_ARRAY_LEN(heads); i++) {
        for (int good = 0; good < 2; good++) {
            hb_init(&h);
            hb_head_except(&h, 1, heads[i].f, good ? heads[i].good : heads[i].bad,
                           good ? heads[i].good_n : heads[i].bad_n);
            hb_delete_op(&h);
            CHECK_EQ_INT(hb_try(&h), good ? 0 : SBX_EMALFORMED);
        }
    }

    /* A short name as str8 instead of fixstr. */
    hb_init(&h);
    hb_head(&h, 1);
    msgpack_pack_array(&h.pk, 3);
    msgpack_pack_uint8(&h.pk, SBX_OP_TAG_CREATE);
    hb_bin(&h, id, 16);
    hb_raw(&h, "\xd9\x04" "cats", 6);
    CHECK_EQ_INT(hb_try(&h), SBX_EMALFORMED);
    /* ... and the same name as fixstr is fine. */
    hb_init(&h);
    hb_head(&h, 1);
    msgpack_pack_array(&h.pk, 3);
    msgpack_pack_uint8(&h.pk, SBX_OP_TAG_CREATE);
    hb_bin(&h, id, 16);
    hb_raw(&h, "\xa4" "cats", 5);
    CHECK_EQ_INT(hb_try(&h), 0);

    /* A non-negative captured_at written as int8. */
    for (int variant = 0; variant < 2; variant++) {
        hb_init(&h);
        hb_head(&h, 1);
        msgpack_pack_array(&h.pk, 4);
        msgpack_pack_uint8(&h.pk, SBX_OP_PHOTO_SET);
        hb_bin(&h, id, 16);
        msgpack_pack_uint8(&h.pk, SBX_PF_CAPTURED_AT);
        if (variant) hb_raw(&h, "\xd0\x05", 2);
        else hb_raw(&h, "\x05", 1);
        CHECK_EQ_INT(hb_try(&h), variant ? SBX_EMALFORMED : 0);
    }

    /* A position as float32 instead of float64. */
    hb_init(&h);
    hb_head(&h, 1);
    msgpack_pack_array(&h.pk, 4);
    msgpack_pack_uint8(&h.pk, SBX_OP_ALBUM_POSITION);
    hb_bin(&h, id, 16);
    hb_bin(&h, id, 16);
    msgpack_pack_float(&h.pk, 1.5f);
    CHECK_EQ_INT(hb_try(&h), SBX_EMALFORMED);
}

SBX_TEST(wrong_signature_refused)
{
    keys();
    struct hb h;
    hb_init(&h);
    hb_head(&h, 1);
    hb_delete_op(&h);
    CHECK_EQ_INT(hb_try_sk(&h, SK2), SBX_ECRYPTO);

    struct sbx_op op = {.type = SBX_OP_BLOB_HELD};
    struct sbx_entry *e = build(&op, 1, 1, NULL, 1);
    REQUIRE(e);
    uint8_t *buf = malloc(e->raw_len);
    REQUIRE(buf);
    memcpy(buf, e->raw, e->raw_len);
    memset(buf + e->raw_len - 64, 0, 64);
    struct sbx_entry *d = NULL;
    CHECK_EQ_INT(sbx_entry_decode(buf, e->raw_len, &d), SBX_ECRYPTO);
    CHECK(d == NULL);
    /* The signature of another entry. */
    struct sbx_op op2 = {.type = SBX_OP_BLOB_DROPPED};
    struct sbx_entry *e2 = build(&op2, 1, 1, NULL, 1);
    REQUIRE(e2 && e2->raw_len == e->raw_len);
    memcpy(buf + e->raw_len - 64, e2->sig, 64);
    CHECK_EQ_INT(sbx_entry_decode(buf, e->raw_len, &d), SBX_ECRYPTO);
    free(buf);
    sbx_entry_free(e2);
    sbx_entry_free(e);

    /* The builder refuses a key that is not the author's. */
    sbx_entry_builder *b = NULL;
    REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, 1, NULL, 1) == 0);
    REQUIRE(sbx_entry_builder_add(b, &op) == 0);
    CHECK_EQ_INT(sbx_entry_builder_finish(b, SK2, &e), SBX_ECRYPTO);
    CHECK(e == NULL);
    /* ... and still finishes with the right one. */
    CHECK_EQ_INT(sbx_entry_builder_finish(b, SK1, &e), 0);
    sbx_entry_free(e);
    sbx_entry_builder_free(b);
}

/* A photo.put whose file name is `n` bytes of 'f'. */
static int put_with_file_name(size_t n)
{
    static char s[SBX_MAX_STR + 2];
    memset(s, 'f', sizeof s);
    uint8_t id[16], hash[32];
    fill(id, 16, 1);
    fill(hash, 32, 2);
    struct hb h;
    hb_init(&h);
    hb_head(&h, 1);
    msgpack_pack_array(&h.pk, 13);
    msgpack_pack_uint8(&h.pk, SBX_OP_PHOTO_PUT);
    hb_bin(&h, id, 16);
    hb_bin(&h, hash, 32);
    msgpack_pack_uint8(&h.pk, 10);
    msgpack_pack_uint8(&h.pk, 10);
    msgpack_pack_uint8(&h.pk, 10);
    msgpack_pack_nil(&h.pk);
    msgpack_pack_nil(&h.pk);
    msgpack_pack_uint8(&h.pk, 1);
    hb_str(&h, "image/jpeg", 10);
    hb_str(&h, s, n);
    hb_str(&h, "", 0);
    hb_str(&h, "", 0);
    return hb_try(&h);
}

/* A body with one op carrying a name: `type` is device.rename, album.create
 * or tag.create, and the name is `n` bytes of 'n'. */
static int op_with_name(enum sbx_op_type type, size_t n)
{
    static char s[SBX_MAX_STR + 2];
    memset(s, 'n', sizeof s);
    uint8_t k[32];
    fill(k, 32, 3);
    struct hb h;
    hb_init(&h);
    hb_head(&h, 1);
    msgpack_pack_array(&h.pk, 3);
    msgpack_pack_uint8(&h.pk, type);
    hb_bin(&h, k, type == SBX_OP_DEVICE_RENAME ? 32 : 16);
    hb_str(&h, s, n);
    return hb_try(&h);
}

SBX_TEST(overlong_strings_refused)
{
    keys();
    CHECK_EQ_INT(put_with_file_name(SBX_MAX_STR), 0);
    CHECK_EQ_INT(put_with_file_name(SBX_MAX_STR + 1), SBX_ETOOBIG);
    CHECK_EQ_INT(put_with_file_name(0), 0);

    CHECK_EQ_INT(op_with_name(SBX_OP_DEVICE_RENAME, SBX_MAX_NAME), 0);
    CHECK_EQ_INT(op_with_name(SBX_OP_DEVICE_RENAME, SBX_MAX_NAME + 1), SBX_ETOOBIG);
    CHECK_EQ_INT(op_with_name(SBX_OP_DEVICE_RENAME, 0), SBX_EMALFORMED);
    CHECK_EQ_INT(op_with_name(SBX_OP_LIBRARY_CREATE, SBX_MAX_NAME + 1), SBX_ETOOBIG);
    CHECK_EQ_INT(op_with_name(SBX_OP_ALBUM_CREATE, SBX_MAX_LABEL), 0);
    CHECK_EQ_INT(op_with_name(SBX_OP_ALBUM_CREATE, SBX_MAX_LABEL + 1), SBX_ETOOBIG);
    CHECK_EQ_INT(op_with_name(SBX_OP_ALBUM_RENAME, 0), SBX_EMALFORMED);
    CHECK_EQ_INT(op_with_name(SBX_OP_TAG_CREATE, SBX_MAX_LABEL + 1), SBX_ETOOBIG);
    CHECK_EQ_INT(op_with_name(SBX_OP_TAG_CREATE, 0), SBX_EMALFORMED);

    /* The builder says EINVAL: such an op would never fit anywhere. */
    static char s[SBX_MAX_STR + 1];
    memset(s, 'a', sizeof s);
    sbx_entry_builder *b = NULL;
    REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, 1, NULL, 1) == 0);
    struct sbx_op op;
    char name[32];
    make_put(&op, 1, name);
    op.facts.camera_make = (struct sbx_str){s, SBX_MAX_STR + 1};
    CHECK_EQ_INT(sbx_entry_builder_add(b, &op), SBX_EINVAL);
    op.facts.camera_make = (struct sbx_str){s, SBX_MAX_STR};
    CHECK_EQ_INT(sbx_entry_builder_add(b, &op), 0);
    struct sbx_op dn = {.type = SBX_OP_DEVICE_RENAME, .name = {s, SBX_MAX_NAME + 1}};
    CHECK_EQ_INT(sbx_entry_builder_add(b, &dn), SBX_EINVAL);
    CHECK_EQ_INT(sbx_entry_builder_count(b), 1);
    sbx_entry_builder_free(b);
}

SBX_TEST(zero_ops_refused)
{
    keys();
    struct hb h;
    hb_init(&h);
    hb_head(&h, 0);
    CHECK_EQ_INT(hb_try(&h), SBX_EMALFORMED);

    sbx_entry_builder *b = NULL;
    REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, 1, NULL, 1) == 0);
    struct sbx_entry *e = NULL;
    CHECK_EQ_INT(sbx_entry_builder_finish(b, SK1, &e), SBX_ESTATE);
    CHECK(e == NULL);
    sbx_entry_builder_free(b);
}

SBX_TEST(too_many_ops_refused)
{
    keys();
    struct hb h;
    hb_init(&h);
    hb_head(&h, SBX_MAX_OPS_PER_ENTRY + 1);
    for (uint32_t i = 0; i < SBX_MAX_OPS_PER_ENTRY + 1; i++) hb_delete_op(&h);
    CHECK_EQ_INT(hb_try(&h), SBX_ETOOBIG);
    hb_init(&h);
    hb_head(&h, SBX_MAX_OPS_PER_ENTRY);
    for (uint32_t i = 0; i < SBX_MAX_OPS_PER_ENTRY; i++) hb_delete_op(&h);
    CHECK_EQ_INT(hb_try(&h), 0);
    /* A count far beyond the bytes is refused before anything is allocated. */
    hb_init(&h);
    msgpack_pack_array(&h.pk, 7);
    msgpack_pack_uint8(&h.pk, 1);
    hb_bin(&h, LIB, 16);
    hb_bin(&h, PK1, 32);
    msgpack_pack_uint8(&h.pk, 1);
    hb_bin(&h, ZERO32, 32);
    msgpack_pack_uint8(&h.pk, 42);
    hb_raw(&h, "\xdd\xff\xff\xff\xff", 5);
    CHECK_EQ_INT(hb_try(&h), SBX_ETOOBIG);
}

SBX_TEST(trailing_and_truncated_refused)
{
    keys();
    struct sbx_op op = {.type = SBX_OP_SHARE_REVOKE};
    struct sbx_entry *e = build(&op, 1, 1, NULL, 1);
    REQUIRE(e);
    size_t len = e->raw_len;
    uint8_t *buf = malloc(len + 16);
    REQUIRE(buf);
    memcpy(buf, e->raw, len);
    struct sbx_entry *d = NULL;
    CHECK_EQ_INT(sbx_entry_decode(buf, len, &d), 0);
    sbx_entry_free(d);
    d = NULL;
    /* Trailing bytes, whatever they are. */
    buf[len] = 0;
    CHECK_EQ_INT(sbx_entry_decode(buf, len + 1, &d), SBX_EMALFORMED);
    buf[len] = 0xc0;
    CHECK_EQ_INT(sbx_entry_decode(buf, len + 1, &d), SBX_EMALFORMED);
    memcpy(buf + len, e->raw + len - 16, 16);
    CHECK_EQ_INT(sbx_entry_decode(buf, len + 16, &d), SBX_EMALFORMED);
    /* Every truncation. */
    for (size_t n = 0; n < len; n++) {
        int rc = sbx_entry_decode(buf, n, &d);
        if (rc == 0 || d) {
            CHECK(rc != 0 && d == NULL);
            sbx_entry_free(d);
            d = NULL;
        }
    }
    CHECK_EQ_INT(sbx_entry_decode(buf, 0, &d), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_entry_decode(NULL, 0, &d), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_entry_decode(buf, 64, &d), SBX_EMALFORMED);
    free(buf);
    sbx_entry_free(e);

    /* Over the entry limit: refused before looking. */
    uint8_t *huge = calloc(1, SBX_MAX_ENTRY_BYTES + 1);
    REQUIRE(huge);
    CHECK_EQ_INT(sbx_entry_decode(huge, SBX_MAX_ENTRY_BYTES + 1, &d), SBX_ETOOBIG);
    free(huge);
}

/* One op with the standard head; `fn` packs the op. */
typedef void (*op_fn)(struct hb *h);
static int one_op(op_fn fn)
{
    struct hb h;
    hb_init(&h);
    hb_head(&h, 1);
    fn(&h);
    return hb_try(&h);
}

static const uint8_t ID[16] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
static const char *g_str;
static size_t g_len;
static double g_lat, g_lon;
static int g_int;

static void op_tag_label(struct hb *h)
{
    msgpack_pack_array(&h->pk, 3);
    msgpack_pack_uint8(&h->pk, SBX_OP_TAG_CREATE);
    hb_bin(h, ID, 16);
    hb_str(h, g_str, g_len);
}

static void op_set_location(struct hb *h)
{
    msgpack_pack_array(&h->pk, 4);
    msgpack_pack_uint8(&h->pk, SBX_OP_PHOTO_SET);
    hb_bin(h, ID, 16);
    msgpack_pack_uint8(&h->pk, SBX_PF_LOCATION);
    msgpack_pack_array(&h->pk, 2);
    msgpack_pack_double(&h->pk, g_lat);
    msgpack_pack_double(&h->pk, g_lon);
}

static void op_position(struct hb *h)
{
    msgpack_pack_array(&h->pk, 4);
    msgpack_pack_uint8(&h->pk, SBX_OP_ALBUM_POSITION);
    hb_bin(h, ID, 16);
    hb_bin(h, ID, 16);
    msgpack_pack_double(&h->pk, g_lat);
}

static void op_device_add_role(struct hb *h)
{
    msgpack_pack_array(&h->pk, 4);
    msgpack_pack_uint8(&h->pk, SBX_OP_DEVICE_ADD);
    hb_bin(h, PK2, 32);
    hb_str(h, "nas", 3);
    msgpack_pack_int(&h->pk, g_int);
}

static void op_type_only(struct hb *h)
{
    msgpack_pack_array(&h->pk, 2);
    msgpack_pack_int(&h->pk, g_int);
    hb_bin(h, ID, 16);
}

/* photo.set of field g_int with a boolean value. */
static void op_set_bool(struct hb *h)
{
    msgpack_pack_array(&h->pk, 4);
    msgpack_pack_uint8(&h->pk, SBX_OP_PHOTO_SET);
    hb_bin(h, ID, 16);
    msgpack_pack_int(&h->pk, g_int);
    msgpack_pack_true(&h->pk);
}

/* photo.set of field g_int with a nil value. */
static void op_set_nil(struct hb *h)
{
    msgpack_pack_array(&h->pk, 4);
    msgpack_pack_uint8(&h->pk, SBX_OP_PHOTO_SET);
    hb_bin(h, ID, 16);
    msgpack_pack_int(&h->pk, g_int);
    msgpack_pack_nil(&h->pk);
}

/* album.remove with g_int dots, the first one with seq g_lat, idx g_lon. */
static void op_remove_dots(struct hb *h)
{
    msgpack_pack_array(&h->pk, 4);
    msgpack_pack_uint8(&h->pk, SBX_OP_ALBUM_REMOVE);
    hb_bin(h, ID, 16);
    hb_bin(h, ID, 16);
    msgpack_pack_array(&h->pk, (size_t)g_int);
    for (int i = 0; i < g_int; i++) {
        msgpack_pack_array(&h->pk, 3);
        hb_bin(h, PK2, 32);
        msgpack_pack_uint64(&h->pk, i ? 1 : (uint64_t)g_lat);
        msgpack_pack_uint64(&h->pk, i ? 0 : (uint64_t)g_lon);
    }
}

static void op_share(struct hb *h)
{
    msgpack_pack_array(&h->pk, 5);
    msgpack_pack_uint8(&h->pk, SBX_OP_SHARE_CREATE);
    hb_bin(h, ID, 16);
    msgpack_pack_int(&h->pk, g_int);
    hb_bin(h, ID, 16);
    msgpack_pack_int64(&h->pk, (int64_t)g_lat);
}

static void op_wrong_arity(struct hb *h)
{
    msgpack_pack_array(&h->pk, 3);
    msgpack_pack_uint8(&h->pk, SBX_OP_PHOTO_DELETE);
    hb_bin(h, ID, 16);
    msgpack_pack_nil(&h->pk);
}

static void op_short_id(struct hb *h)
{
    msgpack_pack_array(&h->pk, 2);
    msgpack_pack_uint8(&h->pk, SBX_OP_PHOTO_DELETE);
    hb_bin(h, ID, 15);
}

static void op_id_as_str(struct hb *h)
{
    msgpack_pack_array(&h->pk, 2);
    msgpack_pack_uint8(&h->pk, SBX_OP_PHOTO_DELETE);
    hb_str(h, "0123456789abcdef", 16);
}

static int label(const char *s, size_t n)
{
    g_str = s;
    g_len = n;
    return one_op(op_tag_label);
}

static int location(double lat, double lon)
{
    g_lat = lat;
    g_lon = lon;
    return one_op(op_set_location);
}

static int with_int(op_fn fn, int v)
{
    g_int = v;
    return one_op(fn);
}

SBX_TEST(bad_values_refused)
{
    keys();
    /* UTF-8. */
    CHECK_EQ_INT(label("caf\xc3\xa9", 5), 0);
    CHECK_EQ_INT(label("\xf0\x9f\x90\x88", 4), 0);
    CHECK_EQ_INT(label("\xef\xbf\xbf", 3), 0);
    CHECK_EQ_INT(label("a\0b", 3), SBX_EMALFORMED);          /* NUL */
    CHECK_EQ_INT(label("\xc0\xaf", 2), SBX_EMALFORMED);      /* overlong / */
    CHECK_EQ_INT(label("\xe0\x80\xaf", 3), SBX_EMALFORMED);  /* overlong */
    CHECK_EQ_INT(label("\xed\xa0\x80", 3), SBX_EMALFORMED);  /* surrogate */
    CHECK_EQ_INT(label("\xf4\x90\x80\x80", 4), SBX_EMALFORMED); /* > U+10FFFF */
    CHECK_EQ_INT(label("\xc3", 1), SBX_EMALFORMED);          /* cut short */
    CHECK_EQ_INT(label("\xc3(", 2), SBX_EMALFORMED);         /* bad continuation */
    CHECK_EQ_INT(label("\xff", 1), SBX_EMALFORMED);
    CHECK_EQ_INT(label("\x80", 1), SBX_EMALFORMED);

    /* Coordinates and doubles. */
    CHECK_EQ_INT(location(90, 180), 0);
    CHECK_EQ_INT(location(-90, -180), 0);
    CHECK_EQ_INT(location(90.0001, 0), SBX_EMALFORMED);
    CHECK_EQ_INT(location(0, -180.5), SBX_EMALFORMED);
    CHECK_EQ_INT(location(NAN, 0), SBX_EMALFORMED);
    CHECK_EQ_INT(location(0, INFINITY), SBX_EMALFORMED);
    g_lat = 1e300;
    CHECK_EQ_INT(one_op(op_position), 0);
    g_lat = INFINITY;
    CHECK_EQ_INT(one_op(op_position), SBX_EMALFORMED);
    g_lat = NAN;
    CHECK_EQ_INT(one_op(op_position), SBX_EMALFORMED);

    /* Roles, types, fields. */
    CHECK_EQ_INT(with_int(op_device_add_role, 1), 0);
    CHECK_EQ_INT(with_int(op_device_add_role, 2), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_device_add_role, -1), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_type_only, SBX_OP_PHOTO_DELETE), 0);
    CHECK_EQ_INT(with_int(op_type_only, 0), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_type_only, SBX_OP__COUNT), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_type_only, 200), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_type_only, -3), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_set_bool, SBX_PF_FAVORITE), 0);
    CHECK_EQ_INT(with_int(op_set_bool, SBX_PF_ARCHIVED), 0);
    CHECK_EQ_INT(with_int(op_set_bool, SBX_PF_CAPTURED_AT), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_set_bool, SBX_PF_FILE_NAME), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_set_bool, SBX_PF_THUMB), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_set_bool, 0), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_set_bool, SBX_PF__COUNT), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_set_nil, SBX_PF_CAPTURED_AT), 0);
    CHECK_EQ_INT(with_int(op_set_nil, SBX_PF_LOCATION), 0);
    CHECK_EQ_INT(with_int(op_set_nil, SBX_PF_MEDIUM), 0);
    CHECK_EQ_INT(with_int(op_set_nil, SBX_PF_FAVORITE), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_set_nil, SBX_PF_FILE_NAME), SBX_EMALFORMED);
    CHECK_EQ_INT(with_int(op_set_nil, SBX_PF_DESCRIPTION), SBX_EMALFORMED);

    /* Dots. */
    g_lat = 5;
    g_lon = 3;
    CHECK_EQ_INT(with_int(op_remove_dots, 1), 0);
    CHECK_EQ_INT(with_int(op_remove_dots, SBX_MAX_DOTS_PER_REMOVE), 0);
    CHECK_EQ_INT(with_int(op_remove_dots, SBX_MAX_DOTS_PER_REMOVE + 1), SBX_ETOOBIG);
    CHECK_EQ_INT(with_int(op_remove_dots, 0), SBX_EMALFORMED);
    g_lat = 0;
    CHECK_EQ_INT(with_int(op_remove_dots, 2), SBX_EMALFORMED);
    g_lat = 1;
    g_lon = SBX_MAX_OPS_PER_ENTRY;
    CHECK_EQ_INT(with_int(op_remove_dots, 2), SBX_EMALFORMED);
    g_lon = SBX_MAX_OPS_PER_ENTRY - 1;
    CHECK_EQ_INT(with_int(op_remove_dots, 2), 0);

    /* Shares. */
    g_lat = 0;
    CHECK_EQ_INT(with_int(op_share, 0), 0);
    CHECK_EQ_INT(with_int(op_share, 1), 0);
    CHECK_EQ_INT(with_int(op_share, 2), SBX_EMALFORMED);
    g_lat = -1;
    CHECK_EQ_INT(with_int(op_share, 1), SBX_EMALFORMED);

    /* Shapes. */
    CHECK_EQ_INT(one_op(op_wrong_arity), SBX_EMALFORMED);
    CHECK_EQ_INT(one_op(op_short_id), SBX_EMALFORMED);
    CHECK_EQ_INT(one_op(op_id_as_str), SBX_EMALFORMED);
}

/* A head with the given version, seq, prev byte and array size. */
static int head_variant(int version, uint64_t seq, uint8_t prev_byte, uint32_t arity)
{
    uint8_t prev[32];
    memset(prev, prev_byte, 32);
    struct hb h;
    hb_init(&h);
    msgpack_pack_array(&h.pk, arity);
    msgpack_pack_int(&h.pk, version);
    hb_bin(&h, LIB, 16);
    hb_bin(&h, PK1, 32);
    msgpack_pack_uint64(&h.pk, seq);
    hb_bin(&h, prev, 32);
    msgpack_pack_uint8(&h.pk, 42);
    msgpack_pack_array(&h.pk, 1);
    hb_delete_op(&h);
    if (arity == 8) msgpack_pack_nil(&h.pk);
    return hb_try(&h);
}

SBX_TEST(bad_heads_refused)
{
    keys();
    CHECK_EQ_INT(head_variant(1, 1, 0, 7), 0);
    CHECK_EQ_INT(head_variant(1, 2, 7, 7), 0);
    CHECK_EQ_INT(head_variant(1, UINT64_MAX, 7, 7), 0);
    CHECK_EQ_INT(head_variant(2, 1, 0, 7), SBX_EMALFORMED);
    CHECK_EQ_INT(head_variant(0, 1, 0, 7), SBX_EMALFORMED);
    CHECK_EQ_INT(head_variant(-1, 1, 0, 7), SBX_EMALFORMED);
    CHECK_EQ_INT(head_variant(1, 0, 0, 7), SBX_EMALFORMED);
    CHECK_EQ_INT(head_variant(1, 1, 7, 7), SBX_EMALFORMED); /* seq 1 names a prev */
    CHECK_EQ_INT(head_variant(1, 1, 0, 8), SBX_EMALFORMED);
}

SBX_TEST(builder_rejects_bad_input)
{
    keys();
    sbx_entry_builder *b = NULL;
    uint8_t prev[32];
    fill(prev, 32, 1);
    CHECK_EQ_INT(sbx_entry_builder_new(&b, LIB, PK1, 0, NULL, 1), SBX_EINVAL);
    CHECK_EQ_INT(sbx_entry_builder_new(&b, LIB, PK1, 1, prev, 1), SBX_EINVAL);
    CHECK(b == NULL);
    REQUIRE(sbx_entry_builder_new(&b, LIB, PK1, 2, prev, 1) == 0);
    struct sbx_op bad[8];
    memset(bad, 0, sizeof bad);
    bad[0].type = (enum sbx_op_type)0;
    bad[1].type = SBX_OP__COUNT;
    bad[2].type = SBX_OP_DEVICE_ROLE;
    bad[2].role = (enum sbx_role)2;
    bad[3].type = SBX_OP_ALBUM_REMOVE; /* no dots */
    bad[4].type = SBX_OP_PHOTO_SET;
    bad[4].field = SBX_PF_LOCATION;
    bad[4].value.lat = 100;
    bad[5].type = SBX_OP_PHOTO_PUT;
    bad[5].facts.orientation = 9;
    bad[6].type = SBX_OP_ALBUM_CREATE; /* empty name */
    bad[7].type = SBX_OP_PHOTO_SET;
    bad[7].field = SBX_PF_FAVORITE;
    bad[7].value.is_nil = true;
    for (size_t i = 0; i < SBX_ARRAY_LEN(bad); i++)
        CHECK_EQ_INT(sbx_entry_builder_add(b, &bad[i]), SBX_EINVAL);
    CHECK_EQ_INT(sbx_entry_builder_count(b), 0);
    sbx_entry_builder_free(b);
}

SBX_TEST(biggest_ops_fit_an_empty_entry)
{
    /* The builder's contract (ETOOBIG means "start the next entry") needs
     * every valid op to fit on its own. */
    keys();
    static char s[SBX_MAX_STR];
    memset(s, 'z', sizeof s);
    struct sbx_str big = {s, SBX_MAX_STR};
    struct sbx_op put;
    char name[32];
    make_put(&put, 1, name);
    put.facts.mime_type = put.facts.file_name = put.facts.camera_make = put.facts.camera_model = big;
    put.facts.captured_at_ms = INT64_MIN;
    put.facts.size_bytes = UINT64_MAX;
    put.facts.has_location = true;
    struct sbx_entry *e = build(&put, 1, UINT64_MAX, ZERO32, UINT64_MAX);
    CHECK(e != NULL);
    if (e) CHECK(e->raw_len < SBX_MAX_ENTRY_BYTES / 8);
    sbx_entry_free(e);

    static struct sbx_dot dots[SBX_MAX_DOTS_PER_REMOVE];
    for (uint32_t i = 0; i < SBX_MAX_DOTS_PER_REMOVE; i++) {
        fill(dots[i].author, 32, (uint8_t)i);
        dots[i].seq = UINT64_MAX - i;
        dots[i].idx = SBX_MAX_OPS_PER_ENTRY - 1;
    }
    struct sbx_op rm = {.type = SBX_OP_PHOTO_TAG_REMOVE, .n_dots = SBX_MAX_DOTS_PER_REMOVE, .dots = dots};
    e = build(&rm, 1, 1, NULL, 1);
    CHECK(e != NULL);
    if (e) {
        CHECK(e->raw_len < SBX_MAX_ENTRY_BYTES / 8);
        check_op_equal(&rm, &e->ops[0]);
    }
    sbx_entry_free(e);
}

SBX_TEST(names)
{
    CHECK_EQ_STR(sbx_op_type_name(SBX_OP_PHOTO_PUT), "photo.put");
    CHECK_EQ_STR(sbx_op_type_name(SBX_OP_ALBUM_ADD), "album.add");
    CHECK_EQ_STR(sbx_op_type_name(SBX_OP_DEVICE_ADD), "device.add");
    CHECK_EQ_STR(sbx_op_type_name(SBX_OP_BLOB_HELD), "blob.held");
    CHECK_EQ_STR(sbx_op_type_name((enum sbx_op_type)0), "unknown");
    CHECK_EQ_STR(sbx_op_type_name(SBX_OP__COUNT), "unknown");
    CHECK_EQ_STR(sbx_op_type_name((enum sbx_op_type)-1), "unknown");
    for (int a = 1; a < SBX_OP__COUNT; a++) {
        CHECK(strcmp(sbx_op_type_name((enum sbx_op_type)a), "unknown") != 0);
        for (int b = a + 1; b < SBX_OP__COUNT; b++)
            CHECK(strcmp(sbx_op_type_name((enum sbx_op_type)a), sbx_op_type_name((enum sbx_op_type)b)) != 0);
    }
    CHECK_EQ_STR(sbx_photo_field_name(SBX_PF_CAPTURED_AT), "captured_at");
    CHECK_EQ_STR(sbx_photo_field_name(SBX_PF_MEDIUM), "medium");
    CHECK_EQ_STR(sbx_photo_field_name(SBX_PF__COUNT), "unknown");
}

SBX_TEST(decode_throughput_sanity)
{
    /* Not a benchmark (tests/bench/bench_entry.c is): checks that full
     * entries of 256 puts decode repeatedly and reports a rough rate. */
    keys();
    enum { ENTRIES = 8, ROUNDS = 3 };
    struct sbx_entry *es[ENTRIES] = {0};
    static struct sbx_op ops[SBX_MAX_OPS_PER_ENTRY];
    static char names[SBX_MAX_OPS_PER_ENTRY][32];
    for (int k = 0; k < ENTRIES; k++) {
        for (uint32_t i = 0; i < SBX_MAX_OPS_PER_ENTRY; i++)
            make_put(&ops[i], (uint32_t)k * SBX_MAX_OPS_PER_ENTRY + i, names[i]);
        es[k] = build(ops, SBX_MAX_OPS_PER_ENTRY, (uint64_t)k + 1, ZERO32, 1);
        REQUIRE(es[k]);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t decoded_ops = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < ENTRIES; k++) {
            struct sbx_entry *d = NULL;
            int rc = sbx_entry_decode(es[k]->raw, es[k]->raw_len, &d);
            CHECK_EQ_INT(rc, 0);
            if (d) {
                CHECK(bytes_eq(d->hash, es[k]->hash, 32));
                CHECK(d->ops[255].facts.file_name.len == es[k]->ops[255].facts.file_name.len);
                decoded_ops += d->n_ops;
            }
            sbx_entry_free(d);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK_EQ_INT(decoded_ops, (size_t)ENTRIES * ROUNDS * SBX_MAX_OPS_PER_ENTRY);
    printf("# %zu photo puts decoded+verified in %.3f s (%.0f ops/s; sanitizers slow this)\n",
           decoded_ops, s, s > 0 ? (double)decoded_ops / s : 0.0);
    for (int k = 0; k < ENTRIES; k++) sbx_entry_free(es[k]);
}

SBX_TEST_MAIN(SBX_CASE(roundtrip_every_op_type), SBX_CASE(roundtrip_each_op_alone),
              SBX_CASE(known_bytes), SBX_CASE(builder_splits_at_max_ops),
              SBX_CASE(builder_splits_at_bytes), SBX_CASE(split_many_photo_puts),
              SBX_CASE(every_byte_flip_refused), SBX_CASE(hand_built_baseline_accepted),
              SBX_CASE(non_canonical_refused), SBX_CASE(wrong_signature_refused),
              SBX_CASE(overlong_strings_refused), SBX_CASE(zero_ops_refused),
              SBX_CASE(too_many_ops_refused), SBX_CASE(trailing_and_truncated_refused),
              SBX_CASE(bad_values_refused), SBX_CASE(bad_heads_refused),
              SBX_CASE(builder_rejects_bad_input), SBX_CASE(biggest_ops_fit_an_empty_entry),
              SBX_CASE(names), SBX_CASE(decode_throughput_sanity))
