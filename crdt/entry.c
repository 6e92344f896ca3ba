/* Log entries: the body codec, the canonical check, signing and hashing.
 * docs/protocol.md ("Log entries") defines the bytes. */
#include "op_codec.h"

#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdlib.h>

/* The decoded entry, its dots and its bytes. `pub` comes first so that
 * sbx_entry_free can get back from the public pointer to the whole. */
struct entry_box {
    struct sbx_entry pub;
    struct sbx_dot *dots; /* one array for the dots of every remove */
    uint8_t raw[];        /* body || signature */
};

/* The body before the ops array holds at most 106 bytes: array header,
 * version, bin16, bin32, uint64 seq, bin32, uint64 hlc. */
#define HEAD_MAX 128u

struct sbx_entry_builder {
    uint8_t head[HEAD_MAX]; /* the packed body up to the ops array header */
    size_t head_len;
    uint8_t author[SBX_KEY_BYTES];
    uint32_t n_ops;
    bool finished;
    msgpack_sbuffer ops; /* the packed ops, appended as they are added */
    msgpack_packer pk;
};

static const uint8_t zero_hash[SBX_HASH_BYTES];

/* ---- packer sinks ------------------------------------------------------ */

/* Writes into a fixed buffer; fails instead of overflowing. */
struct buf_sink {
    uint8_t *p;
    size_t left;
};

static int buf_sink_write(void *data, const char *buf, size_t len)
{
    struct buf_sink *s = data;
    if (len > s->left) return -1;
    if (len) memcpy(s->p, buf, len);
    s->p += len;
    s->left -= len;
    return 0;
}

/* Compares what the packer writes with bytes already there, so the canonical
 * check re-encodes without allocating and stops at the first difference. */
struct cmp_sink {
    const uint8_t *p;
    size_t left;
};

/* Equality of two runs of at most 16 bytes with two (possibly overlapping)
 * loads per side instead of a byte loop. */
static inline bool small_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    if (len >= 8) {
        uint64_t a0, b0, a1, b1;
        memcpy(&a0, a, 8);
        memcpy(&b0, b, 8);
        memcpy(&a1, a + len - 8, 8);
        memcpy(&b1, b + len - 8, 8);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    if (len >= 4) {
        uint32_t a0, b0, a1, b1;
        memcpy(&a0, a, 4);
        memcpy(&b0, b, 4);
        memcpy(&a1, a + len - 4, 4);
        memcpy(&b1, b + len - 4, 4);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++) diff |= (uint8_t)(a[i] ^ b[i]);
    return diff == 0;
}

static int cmp_sink_write(void *data, const char *buf, size_t len)
{
    struct cmp_sink *s = data;
    if (len > s->left) return -1;
    /* The packer writes in pieces of a few bytes (a header, then its body),
     * thousands per entry; comparing those inline costs much less than a
     * call to memcmp each. */
    if (len <= 16) {
        if (!small_equal(s->p, (const uint8_t *)buf, len)) return -1;
    } else if (memcmp(s->p, buf, len) != 0) {
        return -1;
    }
    s->p += len;
    s->left -= len;
    return 0;
}

/* ---- body encoding ------------------------------------------------------- */

static int pack_bin(msgpack_packer *pk, const uint8_t *p, size_t n)
{
    int rc = msgpack_pack_bin(pk, n);
    return rc ? rc : msgpack_pack_bin_body(pk, p, n);
}

/* The body up to (not including) the ops array header. The builder and the
 * canonical check both encode through here and sbx_op_pack. */
static int pack_head(msgpack_packer *pk, const uint8_t library[SBX_ID_BYTES],
                     const uint8_t author[SBX_KEY_BYTES], uint64_t seq,
                     const uint8_t prev[SBX_HASH_BYTES], uint64_t hlc)
{
    int rc;
    if ((rc = msgpack_pack_array(pk, 7))) return rc;
    if ((rc = msgpack_pack_uint32(pk, SBX_ENTRY_VERSION))) return rc;
    if ((rc = pack_bin(pk, library, SBX_ID_BYTES))) return rc;
    if ((rc = pack_bin(pk, author, SBX_KEY_BYTES))) return rc;
    if ((rc = msgpack_pack_uint64(pk, seq))) return rc;
    if ((rc = pack_bin(pk, prev, SBX_HASH_BYTES))) return rc;
    return msgpack_pack_uint64(pk, hlc);
}

static int pack_body(msgpack_packer *pk, const struct sbx_entry *e)
{
    int rc = pack_head(pk, e->library, e->author, e->seq, e->prev, e->hlc);
    if (rc) return rc;
    if ((rc = msgpack_pack_array(pk, e->n_ops))) return rc;
    for (uint32_t i = 0; i < e->n_ops; i++)
        if ((rc = sbx_op_pack(pk, &e->ops[i]))) return rc;
    return 0;
}

/* Size of the msgpack array header for n elements, as the packer writes it. */
static size_t array_header_len(uint32_t n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

/* ---- decoding ---------------------------------------------------------------- */

void sbx_entry_free(struct sbx_entry *e)
{
    if (!e) return;
    struct entry_box *box = (struct entry_box *)e;
    free(box->dots);
    free(e->ops);
    free(box);
}

static int parse_head(struct sbx_mp_reader *r, struct sbx_entry *e, uint32_t *n_ops)
{
    uint32_t n;
    uint64_t version;
    int rc;
    if ((rc = sbx_mp_read_array(r, &n))) return rc;
    if (n != 7) return SBX_EMALFORMED;
    if ((rc = sbx_mp_read_uint(r, &version))) return rc;
    if (version != SBX_ENTRY_VERSION) return SBX_EMALFORMED;
    if ((rc = sbx_mp_read_bin_n(r, e->library, SBX_ID_BYTES))) return rc;
    if ((rc = sbx_mp_read_bin_n(r, e->author, SBX_KEY_BYTES))) return rc;
    if ((rc = sbx_mp_read_uint(r, &e->seq))) return rc;
    if ((rc = sbx_mp_read_bin_n(r, e->prev, SBX_HASH_BYTES))) return rc;
    if ((rc = sbx_mp_read_uint(r, &e->hlc))) return rc;
    if ((rc = sbx_mp_read_array(r, n_ops))) return rc;
    /* A chain starts at seq 1, which has no predecessor to name. */
    if (e->seq == 0) return SBX_EMALFORMED;
    if (e->seq == 1 && sodium_memcmp(e->prev, zero_hash, SBX_HASH_BYTES) != 0) return SBX_EMALFORMED;
    /* Refuse the count before allocating for it. */
    if (*n_ops > SBX_MAX_OPS_PER_ENTRY) return SBX_ETOOBIG;
    if (*n_ops == 0) return SBX_EMALFORMED;
    return 0;
}

/* Decodes the entry whose bytes box->raw already holds (len bytes), and takes
 * ownership of box: on failure it is freed. */
static int decode_box(struct entry_box *box, size_t len, struct sbx_entry **out)
{
    struct sbx_entry *e = &box->pub;
    const uint8_t *dots_at[SBX_MAX_OPS_PER_ENTRY];
    size_t body_len = len - SBX_SIG_BYTES, n_dots = 0, k = 0;
    uint32_t n_ops = 0;
    int rc;

    memset(e, 0, sizeof *e);
    box->dots = NULL;
    e->raw = box->raw;
    e->raw_len = len;

    /* Structure first: it is cheap next to the signature, so garbage costs
     * little. The body must end exactly where the signature starts. */
    struct sbx_mp_reader r = {box->raw, box->raw + body_len};
    if ((rc = parse_head(&r, e, &n_ops))) goto fail;
    e->ops = malloc(n_ops * sizeof *e->ops);
    if (!e->ops) {
        rc = SBX_ENOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < n_ops; i++) {
        /* n_ops counts the ops parsed so far, so that nothing reads an op
         * that was never filled in. */
        e->n_ops = i + 1;
        if ((rc = sbx_op_parse(&r, &e->ops[i], &dots_at[i]))) goto fail;
        n_dots += e->ops[i].n_dots;
    }
    if (r.p != r.end) {
        rc = SBX_EMALFORMED;
        goto fail;
    }

    /* The dots of every remove share one allocation; the first pass checked
     * their structure, so the second cannot fail. */
    if (n_dots) {
        box->dots = malloc(n_dots * sizeof *box->dots);
        if (!box->dots) {
            rc = SBX_ENOMEM;
            goto fail;
        }
        for (uint32_t i = 0; i < n_ops; i++) {
            if (!dots_at[i]) continue;
            struct sbx_mp_reader dr = {dots_at[i], box->raw + body_len};
            rc = sbx_dots_parse(&dr, box->dots + k, e->ops[i].n_dots);
            SBX_ASSERT(rc == 0);
            e->ops[i].dots = box->dots + k;
            k += e->ops[i].n_dots;
        }
    }
    for (uint32_t i = 0; i < n_ops; i++)
        if ((rc = sbx_op_check(&e->ops[i]))) goto fail;

    /* Canonical form: the packer must write these very bytes back, so one
     * set of ops has one encoding, one signature input and one hash. */
    struct cmp_sink cs = {box->raw, body_len};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &cs, cmp_sink_write);
    if (pack_body(&pk, e) != 0 || cs.left != 0) {
        rc = SBX_EMALFORMED;
        goto fail;
    }

    memcpy(e->sig, box->raw + body_len, SBX_SIG_BYTES);
    /* libsodium refuses non-canonical S and small-order keys, so a valid
     * signature cannot be tweaked into another valid one with another hash. */
    if (crypto_sign_verify_detached(e->sig, box->raw, body_len, e->author) != 0) {
        rc = SBX_ECRYPTO;
        goto fail;
    }
    crypto_generichash(e->hash, SBX_HASH_BYTES, box->raw, len, NULL, 0);
    *out = e;
    return 0;

fail:
    sbx_entry_free(e);
    return rc;
}

int sbx_entry_decode(const uint8_t *buf, size_t len, struct sbx_entry **out)
{
    if (!out) return SBX_EINVAL;
    *out = NULL;
    if (len > SBX_MAX_ENTRY_BYTES) return SBX_ETOOBIG;
    if (!buf || len <= SBX_SIG_BYTES) return SBX_EMALFORMED;
    /* sodium_init picks the fast BLAKE2b and SHA-512 code for this CPU; it is
     * cheap once done. */
    if (sodium_init() < 0) return SBX_ECRYPTO;
    struct entry_box *box = malloc(sizeof *box + len);
    if (!box) return SBX_ENOMEM;
    memcpy(box->raw, buf, len);
    return decode_box(box, len, out);
}

/* ---- building ----------------------------------------------------------------- */

int sbx_entry_builder_new(sbx_entry_builder **out, const uint8_t library[SBX_ID_BYTES],
                          const uint8_t author[SBX_KEY_BYTES], uint64_t seq,
                          const uint8_t prev[SBX_HASH_BYTES], uint64_t hlc)
{
    if (!out) return SBX_EINVAL;
    *out = NULL;
    if (!library || !author || seq == 0) return SBX_EINVAL;
    if (!prev) prev = zero_hash;
    if (seq == 1 && sodium_memcmp(prev, zero_hash, SBX_HASH_BYTES) != 0) return SBX_EINVAL;
    if (sodium_init() < 0) return SBX_ECRYPTO;

    sbx_entry_builder *b = calloc(1, sizeof *b);
    if (!b) return SBX_ENOMEM;
    struct buf_sink hs = {b->head, sizeof b->head};
    msgpack_packer hpk;
    msgpack_packer_init(&hpk, &hs, buf_sink_write);
    int rc = pack_head(&hpk, library, author, seq, prev, hlc);
    SBX_ASSERT(rc == 0);
    b->head_len = sizeof b->head - hs.left;
    memcpy(b->author, author, SBX_KEY_BYTES);
    msgpack_sbuffer_init(&b->ops);
    msgpack_packer_init(&b->pk, &b->ops, msgpack_sbuffer_write);
    *out = b;
    return 0;
}

static size_t builder_size(const sbx_entry_builder *b, uint32_t n_ops, size_t ops_len)
{
    return b->head_len + array_header_len(n_ops) + ops_len + SBX_SIG_BYTES;
}

int sbx_entry_builder_add(sbx_entry_builder *b, const struct sbx_op *op)
{
    if (!b || !op) return SBX_EINVAL;
    if (b->finished) return SBX_ESTATE;
    /* An op that would not decode can never fit: EINVAL, not ETOOBIG. */
    if (sbx_op_check(op) != 0) return SBX_EINVAL;
    if (b->n_ops >= SBX_MAX_OPS_PER_ENTRY) return SBX_ETOOBIG;
    size_t before = b->ops.size;
    if (sbx_op_pack(&b->pk, op) != 0) {
        b->ops.size = before;
        return SBX_ENOMEM;
    }
    /* Packing and then rolling back is simpler than sizing the op first,
     * and the sbuffer keeps its memory for the next op. */
    if (builder_size(b, b->n_ops + 1, b->ops.size) > SBX_MAX_ENTRY_BYTES) {
        b->ops.size = before;
        return SBX_ETOOBIG;
    }
    b->n_ops++;
    return 0;
}

uint32_t sbx_entry_builder_count(const sbx_entry_builder *b)
{
    return b ? b->n_ops : 0;
}

size_t sbx_entry_builder_size(const sbx_entry_builder *b)
{
    return b ? builder_size(b, b->n_ops, b->ops.size) : 0;
}

int sbx_entry_builder_finish(sbx_entry_builder *b, const uint8_t sk[64], struct sbx_entry **out)
{
    if (!out) return SBX_EINVAL;
    *out = NULL;
    if (!b || !sk) return SBX_EINVAL;
    if (b->finished || b->n_ops == 0) return SBX_ESTATE;
    /* A secret key whose public half is not the author would sign an entry
     * nobody accepts; say so plainly instead of failing in decode. */
    if (sodium_memcmp(sk + 32, b->author, SBX_KEY_BYTES) != 0) return SBX_ECRYPTO;

    size_t len = builder_size(b, b->n_ops, b->ops.size);
    SBX_ASSERT(len <= SBX_MAX_ENTRY_BYTES);
    struct entry_box *box = malloc(sizeof *box + len);
    if (!box) return SBX_ENOMEM;
    struct buf_sink s = {box->raw, len};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s, buf_sink_write);
    /* The buffer was sized from the same numbers: these writes fit. */
    int rc = buf_sink_write(&s, (const char *)b->head, b->head_len);
    if (rc == 0) rc = msgpack_pack_array(&pk, b->n_ops);
    if (rc == 0) rc = buf_sink_write(&s, b->ops.data, b->ops.size);
    SBX_ASSERT(rc == 0 && s.left == SBX_SIG_BYTES);
    size_t body_len = len - SBX_SIG_BYTES;
    crypto_sign_detached(box->raw + body_len, NULL, box->raw, body_len, sk);
    /* Decoding what we just built re-checks every rule, including that the
     * key pair is whole, at the cost of one verify per entry. */
    rc = decode_box(box, len, out);
    if (rc == 0) b->finished = true;
    return rc;
}

void sbx_entry_builder_free(sbx_entry_builder *b)
{
    if (!b) return;
    msgpack_sbuffer_destroy(&b->ops);
    free(b);
}
