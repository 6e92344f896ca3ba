/* Internal to crdt/: the msgpack pieces shared by the op codec (ops.c) and
 * the entry codec (entry.c).
 *
 * Encoding goes through msgpack-c's packer, whose output is the canonical
 * form by definition (docs/protocol.md, "Log entries"). Decoding uses the
 * small zero-copy reader below instead of msgpack_unpack: msgpack-c sizes an
 * array's storage from the count in its header before reading the elements,
 * so a five-byte input can ask for gigabytes, and its object tree costs an
 * allocation per container. The reader accepts every msgpack format of the
 * type it expects; the decoder then re-encodes with the packer and compares,
 * which rejects every non-canonical form in one place. */
#ifndef SHOEBOX_CRDT_OP_CODEC_H
#define SHOEBOX_CRDT_OP_CODEC_H

#include "shoebox/entry.h"
#include "shoebox/err.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct sbx_mp_reader {
    const uint8_t *p;
    const uint8_t *end;
};

static inline int sbx_mp_take(struct sbx_mp_reader *r, size_t n, const uint8_t **out)
{
    if ((size_t)(r->end - r->p) < n) return SBX_EMALFORMED;
    *out = r->p;
    r->p += n;
    return 0;
}

static inline uint64_t sbx_mp_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Reads `n` big-endian bytes as an unsigned integer. */
static inline int sbx_mp_take_be(struct sbx_mp_reader *r, unsigned n, uint64_t *v)
{
    const uint8_t *p;
    int rc = sbx_mp_take(r, n, &p);
    if (rc) return rc;
    *v = sbx_mp_be(p, n);
    return 0;
}

static inline int sbx_mp_read_uint(struct sbx_mp_reader *r, uint64_t *v)
{
    const uint8_t *b;
    int rc = sbx_mp_take(r, 1, &b);
    if (rc) return rc;
    if (*b <= 0x7f) {
        *v = *b;
        return 0;
    }
    switch (*b) {
    case 0xcc: return sbx_mp_take_be(r, 1, v);
    case 0xcd: return sbx_mp_take_be(r, 2, v);
    case 0xce: return sbx_mp_take_be(r, 4, v);
    case 0xcf: return sbx_mp_take_be(r, 8, v);
    default: return SBX_EMALFORMED;
    }
}

static inline int sbx_mp_read_int(struct sbx_mp_reader *r, int64_t *v)
{
    const uint8_t *b;
    uint64_t u;
    int rc = sbx_mp_take(r, 1, &b);
    if (rc) return rc;
    if (*b <= 0x7f || *b >= 0xe0) {
        *v = (int8_t)*b;
        return 0;
    }
    unsigned n;
    bool is_signed;
    switch (*b) {
    case 0xcc: n = 1; is_signed = false; break;
    case 0xcd: n = 2; is_signed = false; break;
    case 0xce: n = 4; is_signed = false; break;
    case 0xcf: n = 8; is_signed = false; break;
    case 0xd0: n = 1; is_signed = true; break;
    case 0xd1: n = 2; is_signed = true; break;
    case 0xd2: n = 4; is_signed = true; break;
    case 0xd3: n = 8; is_signed = true; break;
    default: return SBX_EMALFORMED;
    }
    rc = sbx_mp_take_be(r, n, &u);
    if (rc) return rc;
    if (!is_signed) {
        if (u > (uint64_t)INT64_MAX) return SBX_EMALFORMED;
        *v = (int64_t)u;
    } else if (n == 8) {
        *v = (int64_t)u; /* two's complement on every platform we build for */
    } else {
        /* Sign-extend an n-byte two's complement value. */
        uint64_t sign = 1ull << (8 * n - 1);
        *v = (int64_t)((u ^ sign) - sign);
    }
    return 0;
}

static inline int sbx_mp_read_array(struct sbx_mp_reader *r, uint32_t *n)
{
    const uint8_t *b;
    uint64_t v;
    int rc = sbx_mp_take(r, 1, &b);
    if (rc) return rc;
    if ((*b & 0xf0) == 0x90) {
        *n = *b & 0x0f;
        return 0;
    }
    if (*b == 0xdc) rc = sbx_mp_take_be(r, 2, &v);
    else if (*b == 0xdd) rc = sbx_mp_take_be(r, 4, &v);
    else return SBX_EMALFORMED;
    if (rc) return rc;
    *n = (uint32_t)v;
    return 0;
}

/* A str of any length; the caller enforces limits. Points into the input. */
static inline int sbx_mp_read_str(struct sbx_mp_reader *r, struct sbx_str *s)
{
    const uint8_t *b, *body;
    uint64_t len;
    int rc = sbx_mp_take(r, 1, &b);
    if (rc) return rc;
    if ((*b & 0xe0) == 0xa0) len = *b & 0x1f;
    else if (*b == 0xd9) rc = sbx_mp_take_be(r, 1, &len);
    else if (*b == 0xda) rc = sbx_mp_take_be(r, 2, &len);
    else if (*b == 0xdb) rc = sbx_mp_take_be(r, 4, &len);
    else return SBX_EMALFORMED;
    if (rc) return rc;
    rc = sbx_mp_take(r, (size_t)len, &body);
    if (rc) return rc;
    s->ptr = (const char *)body;
    s->len = (uint32_t)len;
    return 0;
}

/* A bin of exactly `n` bytes, copied to `out`. */
static inline int sbx_mp_read_bin_n(struct sbx_mp_reader *r, uint8_t *out, size_t n)
{
    const uint8_t *b, *body;
    uint64_t len;
    int rc = sbx_mp_take(r, 1, &b);
    if (rc) return rc;
    if (*b == 0xc4) rc = sbx_mp_take_be(r, 1, &len);
    else if (*b == 0xc5) rc = sbx_mp_take_be(r, 2, &len);
    else if (*b == 0xc6) rc = sbx_mp_take_be(r, 4, &len);
    else return SBX_EMALFORMED;
    if (rc) return rc;
    if (len != n) return SBX_EMALFORMED;
    rc = sbx_mp_take(r, n, &body);
    if (rc) return rc;
    memcpy(out, body, n);
    return 0;
}

/* Only float64: the packer never writes float32 for a double. */
static inline int sbx_mp_read_f64(struct sbx_mp_reader *r, double *d)
{
    const uint8_t *b;
    uint64_t u;
    int rc = sbx_mp_take(r, 1, &b);
    if (rc) return rc;
    if (*b != 0xcb) return SBX_EMALFORMED;
    rc = sbx_mp_take_be(r, 8, &u);
    if (rc) return rc;
    memcpy(d, &u, sizeof *d);
    return 0;
}

static inline int sbx_mp_read_bool(struct sbx_mp_reader *r, bool *v)
{
    const uint8_t *b;
    int rc = sbx_mp_take(r, 1, &b);
    if (rc) return rc;
    if (*b == 0xc2) *v = false;
    else if (*b == 0xc3) *v = true;
    else return SBX_EMALFORMED;
    return 0;
}

/* Consumes a nil if one comes next. */
static inline bool sbx_mp_try_nil(struct sbx_mp_reader *r)
{
    if (r->p < r->end && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

/* Packs one op that sbx_op_check accepted. Returns the packer's status. */
int sbx_op_pack(msgpack_packer *pk, const struct sbx_op *op);

/* Parses one op. The dots of a remove are checked for structure but not
 * stored: `op->n_dots` gets their count, `*dots_at` where they start (NULL
 * for other ops), and the caller fills them with sbx_dots_parse once it has
 * allocated room for every dot of the entry. Limits and value ranges are
 * left to sbx_op_check. */
int sbx_op_parse(struct sbx_mp_reader *r, struct sbx_op *op, const uint8_t **dots_at);

/* Parses `n` dots; `out` may be NULL to only check their structure. */
int sbx_dots_parse(struct sbx_mp_reader *r, struct sbx_dot *out, uint32_t n);

/* Checks what the bytes of one op must satisfy beyond their structure:
 * limits (SBX_ETOOBIG), strings, names, enums and ranges (SBX_EMALFORMED). */
int sbx_op_check(const struct sbx_op *op);

#endif
