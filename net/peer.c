/* The peer session. See include/shoebox/peer.h and docs/protocol.md. */
#include "shoebox/peer.h"
#include "shoebox/chunkbuf.h"
#include "shoebox/blob.h"
#include "shoebox/err.h"
#include "shoebox/frame.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/noise.h"
#include "shoebox/util.h"

#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

enum state { ST_HANDSHAKE, ST_JOINING, ST_HELLO, ST_READY, ST_CLOSED };

/* Wire message types: the first element of every message. */
enum msg_type {
    MSG_HELLO = 1,   /* [1, version, library, [[author, seq]...], name, platform, app_version, listen_port] */
    MSG_ENTRIES = 2, /* [2, [entry bytes...]] */
    MSG_PING = 3,    /* [3] */
    MSG_PONG = 4,    /* [4] */
    MSG_JOIN = 5,    /* [5, name, role] */
    MSG_JOINED = 6,  /* [6] */
    MSG_BYE = 7,     /* [7, reason] */
    MSG_BLOB_GET = 8,   /* [8, sha256]: send the blob's info */
    MSG_BLOB_INFO = 9,  /* [9, sha256, size, chunk_size, kind, first, [chunk sha256...]] */
    MSG_BLOB_NONE = 10, /* [10, sha256]: not held here */
    MSG_CHUNK_GET = 11, /* [11, sha256, idx] */
    MSG_CHUNK_DATA = 12, /* [12, sha256, idx, offset, chunk_len, bytes] */
    MSG_CHUNK_NONE = 13, /* [13, sha256, idx]: cannot serve it */
    MSG_ADDRS = 14,      /* [14, [[device key, "host:port"]...]]: where other members were reached */
    MSG__COUNT
};

/* Handshake message 1 carries a one-byte kind in the clear, so a responder
 * knows which pattern to answer with; a pairing adds the invitation's id. */
enum { HS_KIND_MEMBER = 1, HS_KIND_PAIR = 2 };

struct has {
    uint8_t author[SBX_KEY_BYTES];
    uint64_t seq;
};

struct sbx_peer {
    struct sbx_peer_config cfg;
    char join_name[SBX_MAX_NAME + 1], platform[64], app_version[32];
    sbx_peer_event_cb cb;
    void *data;
    enum state state;
    sbx_noise_hs *hs;
    sbx_noise_cs *tx, *rx;
    sbx_frame_reader *fr;
    uint8_t x_priv[32];
    uint8_t psk[32];
    bool pairing;
    uint8_t id_pk[SBX_KEY_BYTES];
    uint8_t remote_key[SBX_KEY_BYTES];
    bool authed, hello_sent, hello_received, got_msg1;
    char remote_name[SBX_MAX_NAME + 1];
    /* What the remote holds, per author: from its hello, then from what
     * either side sent. */
    struct has has[SBX_MAX_MEMBERS];
    size_t n_has;
    /* The remote's heads as its hello stated them: caught up once ours
     * reach them. */
    struct has hello_heads[SBX_MAX_MEMBERS];
    size_t n_hello_heads;
    uint16_t remote_port;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    int64_t now, last_rx, last_tx;
    bool in_callback;
    /* Entries received but not applied yet: applying many in one SQLite
     * transaction is several times faster than one by one (random-key
     * index pages are written once per commit). Bounded below. */
    uint8_t **rx_raw;
    size_t *rx_len;
    size_t rx_n, rx_bytes;
    /* Chunks the remote asked for, served in pieces as the output drains.
     * Only the request at the head has its blob open (serve_start). */
    struct serve {
        uint8_t hash[32];
        uint32_t idx;
        bool started;
        sbx_blob_file *f;
        uint64_t off, end;
    } serve[SBX_MAX_SERVE_QUEUE];
    size_t serve_head, serve_n;
    /* Chunks asked of the remote, assembled from their pieces. */
    struct want {
        bool used;
        uint8_t hash[32];
        uint32_t idx;
        uint8_t *buf;
        size_t len, got;
    } want[SBX_MAX_CHUNKS_IN_FLIGHT];
};

/* ------------------------------------------------------------------ */

static void emit(sbx_peer *p, enum sbx_peer_event ev, const char *reason)
{
    if (p->cb) p->cb(p, ev, reason);
}

static int out_reserve(sbx_peer *p, size_t n)
{
    if (p->out_off > 0 && p->out_off == p->out_len) p->out_off = p->out_len = 0;
    if (p->out_len + n <= p->out_cap) return 0;
    if (p->out_off > 0) {
        memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
        p->out_len -= p->out_off;
        p->out_off = 0;
        if (p->out_len + n <= p->out_cap) return 0;
    }
    size_t cap = p->out_cap ? p->out_cap : 65536;
    while (cap < p->out_len + n) cap *= 2;
    uint8_t *nb = realloc(p->out, cap);
    if (!nb) return SBX_ENOMEM;
    p->out = nb;
    p->out_cap = cap;
    return 0;
}

static size_t out_pending(const sbx_peer *p) { return p->out_len - p->out_off; }

/* Frames a raw Noise message (handshake). */
static int out_frame(sbx_peer *p, const uint8_t *msg, size_t len)
{
    int rc = out_reserve(p, len + 2);
    if (rc != 0) return rc;
    if ((rc = sbx_frame_header(p->out + p->out_len, len)) != 0) return rc;
    memcpy(p->out + p->out_len + 2, msg, len);
    p->out_len += len + 2;
    p->last_tx = p->now;
    return 0;
}

/* Both sides rekey each direction every SBX_REKEY_MESSAGES messages: they
 * count the same messages, so they stay in step without a message. */
static int maybe_rekey(sbx_noise_cs *cs)
{
    uint64_t n = sbx_noise_cs_nonce(cs);
    return (n > 0 && n % SBX_REKEY_MESSAGES == 0) ? sbx_noise_cs_rekey(cs) : 0;
}

/* Room in the output for one wire message of len bytes: *pt is where its
 * plaintext goes, to be encrypted in place by out_commit. Nothing is sent
 * until then, so a caller that fails in between simply does not commit. */
static int out_open(sbx_peer *p, size_t len, uint8_t **pt)
{
    if (len > SBX_MAX_MSG) return SBX_ETOOBIG;
    int rc = out_reserve(p, len + SBX_NOISE_TAG + 2);
    if (rc != 0) return rc;
    *pt = p->out + p->out_len + 2;
    return 0;
}

static int out_commit(sbx_peer *p, size_t len)
{
    int rc = maybe_rekey(p->tx);
    if (rc != 0) return rc;
    uint8_t *dst = p->out + p->out_len;
    if ((rc = sbx_noise_cs_encrypt(p->tx, NULL, 0, dst + 2, len, dst + 2)) != 0) return rc;
    sbx_frame_header(dst, len + SBX_NOISE_TAG);
    p->out_len += len + SBX_NOISE_TAG + 2;
    p->last_tx = p->now;
    return 0;
}

/* Encrypts one wire message into the output. */
static int out_msg(sbx_peer *p, const uint8_t *pt, size_t len)
{
    uint8_t *dst;
    int rc = out_open(p, len, &dst);
    if (rc != 0) return rc;
    memcpy(dst, pt, len);
    return out_commit(p, len);
}

/* A wire message being packed: an array of `fields` elements whose first is
 * the type. msg_send encrypts it into the output and frees it. */
struct wmsg {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static msgpack_packer *msg_begin(struct wmsg *m, size_t fields, uint8_t type)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&m->pk, fields);
    msgpack_pack_uint8(&m->pk, type);
    return &m->pk;
}

static int msg_send(sbx_peer *p, struct wmsg *m)
{
    int rc = out_msg(p, (const uint8_t *)m->sb.data, m->sb.size);
    msgpack_sbuffer_destroy(&m->sb);
    return rc;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_bin(msgpack_packer *pk, const uint8_t *b, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, b, n);
}

static void finish_close(sbx_peer *p, const char *reason)
{
    if (p->state == ST_CLOSED) return;
    p->state = ST_CLOSED;
    emit(p, SBX_PEER_CLOSED, reason);
}

void sbx_peer_close(sbx_peer *p, const char *reason)
{
    if (p->state == ST_CLOSED) return;
    if (p->tx) {
        /* A goodbye says why, so the other side's log does too. */
        struct wmsg m;
        msgpack_packer *pk = msg_begin(&m, 2, MSG_BYE);
        pack_str(pk, reason);
        msg_send(p, &m);
    }
    finish_close(p, reason);
}

/* ------------------------------------------------------------------ */
/* Sync state                                                           */

static struct has *has_for(sbx_peer *p, const uint8_t author[SBX_KEY_BYTES])
{
    for (size_t i = 0; i < p->n_has; i++)
        if (memcmp(p->has[i].author, author, SBX_KEY_BYTES) == 0) return &p->has[i];
    if (p->n_has == SBX_MAX_MEMBERS) return NULL;
    struct has *h = &p->has[p->n_has++];
    memcpy(h->author, author, SBX_KEY_BYTES);
    h->seq = 0;
    return h;
}

static void note_has(sbx_peer *p, const uint8_t author[SBX_KEY_BYTES], uint64_t seq)
{
    struct has *h = has_for(p, author);
    if (h && seq > h->seq) h->seq = seq;
}

/* Author and seq of an encoded entry, read from its canonical header
 * without a full decode: [version, library bin16, author bin32, seq, ...]. */
static bool peek_entry(const uint8_t *raw, size_t len, uint8_t author[SBX_KEY_BYTES], uint64_t *seq)
{
    if (len < 1 + 1 + 2 + 16 + 2 + 32 + 1) return false;
    size_t o = 0;
    if (raw[o++] != 0x97 || raw[o++] != SBX_ENTRY_VERSION) return false;
    if (raw[o] != 0xc4 || raw[o + 1] != 16) return false;
    o += 2 + 16;
    if (raw[o] != 0xc4 || raw[o + 1] != 32) return false;
    memcpy(author, raw + o + 2, SBX_KEY_BYTES);
    o += 2 + 32;
    uint8_t t = raw[o++];
    size_t n = t < 0x80 ? 0 : t == 0xcc ? 1 : t == 0xcd ? 2 : t == 0xce ? 4 : t == 0xcf ? 8 : 99;
    if (n == 99 || o + n > len) return false;
    uint64_t v = t < 0x80 ? t : 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | raw[o + i];
    *seq = v;
    return true;
}

struct pack_ctx {
    const uint8_t **raw;
    size_t *len;
    size_t n, cap;
    int rc;
};

static int collect_entry(void *arg, const uint8_t *raw, size_t len)
{
    struct pack_ctx *c = arg;
    if (c->n == c->cap) return 1;
    c->raw[c->n] = malloc(len);
    if (!c->raw[c->n]) {
        c->rc = SBX_ENOMEM;
        return 1;
    }
    memcpy((uint8_t *)c->raw[c->n], raw, len);
    c->len[c->n] = len;
    c->n++;
    return 0;
}

/* Sends one ENTRIES message with as many of raw[from..] as fit. */
static size_t send_entries(sbx_peer *p, const uint8_t **raw, const size_t *len, size_t from, size_t n, int *rc)
{
    size_t k = from, budget = SBX_MAX_MSG - 16; /* array headers */
    while (k < n && (len[k] + 5 <= budget || k == from)) {
        budget -= len[k] + 5 < budget ? len[k] + 5 : budget;
        k++;
    }
    struct wmsg m;
    msgpack_packer *pk = msg_begin(&m, 2, MSG_ENTRIES);
    msgpack_pack_array(pk, k - from);
    for (size_t i = from; i < k; i++) pack_bin(pk, raw[i], len[i]);
    *rc = msg_send(p, &m);
    return k;
}

/* Done with the request at the head. The next chunk of the same blob (a
 * transfer asks for a blob's chunks in a row) takes over its open file;
 * otherwise the file is closed. */
static void serve_pop(sbx_peer *p)
{
    struct serve *sv = &p->serve[p->serve_head];
    p->serve_head = (p->serve_head + 1) % SBX_MAX_SERVE_QUEUE;
    p->serve_n--;
    struct serve *next = p->serve_n > 0 ? &p->serve[p->serve_head] : NULL;
    if (sv->f && next && !next->f && memcmp(next->hash, sv->hash, 32) == 0) next->f = sv->f;
    else sbx_blob_file_close(sv->f);
    sv->f = NULL;
    sv->started = false;
}

/* The request at the head is served now: its blob is opened here, not
 * when the request came. A remote may queue SBX_MAX_SERVE_QUEUE requests,
 * and an open blob holds a descriptor (and, encrypted, a chunk-sized
 * buffer), so a session holds one open blob, not one per request. False
 * when the chunk cannot be served (no such blob, or past its end). */
static bool serve_start(sbx_peer *p, struct serve *sv)
{
    sv->started = true;
    if (!sv->f && (!p->cfg.blobs || sbx_blob_open(p->cfg.blobs, sv->hash, &sv->f) != 0)) return false;
    uint64_t size = sbx_blob_file_size(sv->f), start = (uint64_t)sv->idx * SBX_BLOB_CHUNK;
    if (start >= size && !(size == 0 && sv->idx == 0)) return false;
    sv->off = start;
    sv->end = start + SBX_BLOB_CHUNK < size ? start + SBX_BLOB_CHUNK : size;
    return true;
}

/* A msgpack packer into a small fixed buffer: the header of a chunk piece. */
struct fixbuf {
    uint8_t b[96];
    size_t n;
};

static int fixbuf_write(void *data, const char *buf, size_t len)
{
    struct fixbuf *f = data;
    if (len > sizeof f->b - f->n) return -1;
    memcpy(f->b + f->n, buf, len);
    f->n += len;
    return 0;
}

/* Chunk bytes go out after entries (metadata first), piece by piece, while
 * the output has room. Each piece is one message [12, hash, idx, offset,
 * chunk length, bytes]: its header is packed apart, the bytes are read from
 * the blob straight into the output behind it and encrypted in place, so a
 * piece is copied by nobody on its way from the file to the socket. */
static int send_hash_msg(sbx_peer *p, uint8_t type, const uint8_t hash[32], bool with_idx, uint32_t idx);

static int serve_pieces(sbx_peer *p)
{
    while (p->serve_n > 0 && out_pending(p) < SBX_MAX_PEER_OUTPUT) {
        struct serve *sv = &p->serve[p->serve_head];
        if (!sv->started && !serve_start(p, sv)) {
            uint8_t h[32];
            uint32_t idx = sv->idx;
            memcpy(h, sv->hash, 32);
            serve_pop(p);
            int rc = send_hash_msg(p, MSG_CHUNK_NONE, h, true, idx);
            if (rc != 0) return rc;
            continue;
        }
        size_t want = sv->end - sv->off < SBX_CHUNK_PIECE ? (size_t)(sv->end - sv->off) : SBX_CHUNK_PIECE, got = 0;
        uint64_t chunk_start = (uint64_t)sv->idx * SBX_BLOB_CHUNK;
        struct fixbuf hdr = {.n = 0};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &hdr, fixbuf_write);
        msgpack_pack_array(&pk, 6);
        msgpack_pack_uint8(&pk, MSG_CHUNK_DATA);
        pack_bin(&pk, sv->hash, 32);
        msgpack_pack_uint32(&pk, sv->idx);
        msgpack_pack_uint64(&pk, sv->off - chunk_start);
        msgpack_pack_uint64(&pk, sv->end - chunk_start);
        msgpack_pack_bin(&pk, want);
        SBX_ASSERT(hdr.n > 0 && hdr.n < sizeof hdr.b);
        uint8_t *pt;
        int rc = out_open(p, hdr.n + want, &pt);
        if (rc != 0) return rc;
        memcpy(pt, hdr.b, hdr.n);
        rc = sbx_blob_file_read(sv->f, sv->off, pt + hdr.n, want, &got);
        if (rc != 0 || got != want) {
            /* Nothing committed: the output is as it was. The asker hears
             * that this chunk will not come, so its request slot frees. */
            uint8_t h[32];
            uint32_t idx = sv->idx;
            memcpy(h, sv->hash, 32);
            serve_pop(p);
            if ((rc = send_hash_msg(p, MSG_CHUNK_NONE, h, true, idx)) != 0) return rc;
            continue;
        }
        if (p->cfg.corrupt_chunks && sv->off == chunk_start) pt[hdr.n + got / 2] ^= 0x5a;
        if ((rc = out_commit(p, hdr.n + want)) != 0) return rc;
        sv->off += got;
        if (sv->off >= sv->end) serve_pop(p);
    }
    return 0;
}

/* Streams what the remote lacks while the output has room. Bounded: each
 * round sends at least one entry or stops. */
static int pump(sbx_peer *p)
{
    if (p->state != ST_READY) return 0;
    struct sbx_head heads[SBX_MAX_MEMBERS];
    for (int round = 0; round < 1024 && out_pending(p) < SBX_MAX_PEER_OUTPUT; round++) {
        int nh = sbx_engine_heads(p->cfg.engine, heads, SBX_MAX_MEMBERS);
        if (nh < 0) return nh;
        bool sent = false;
        for (int i = 0; i < nh && out_pending(p) < SBX_MAX_PEER_OUTPUT; i++) {
            struct has *h = has_for(p, heads[i].author);
            if (!h || heads[i].seq <= h->seq) continue;
            const uint8_t *raw[64];
            size_t len[64];
            struct pack_ctx c = {.raw = raw, .len = len, .cap = 64};
            int rc = sbx_engine_entries_after(p->cfg.engine, heads[i].author, h->seq, 64, collect_entry, &c);
            if (rc == 0) rc = c.rc;
            for (size_t k = 0; k < c.n && rc == 0;) {
                size_t next = send_entries(p, raw, len, k, c.n, &rc);
                for (; k < next; k++) {
                    uint8_t author[SBX_KEY_BYTES];
                    uint64_t seq;
                    if (peek_entry(raw[k], len[k], author, &seq)) note_has(p, author, seq);
                }
                sent = true;
            }
            for (size_t k = 0; k < c.n; k++) free((void *)raw[k]);
            if (rc != 0) return rc;
        }
        if (!sent) break;
    }
    return serve_pieces(p);
}

void sbx_peer_kick(sbx_peer *p)
{
    if (p->state != ST_READY || p->in_callback) return;
    int rc = pump(p);
    if (rc != 0) sbx_peer_close(p, "cannot read the local log");
}

/* ------------------------------------------------------------------ */
/* Messages                                                             */

static int send_hello(sbx_peer *p)
{
    struct sbx_head heads[SBX_MAX_MEMBERS];
    int nh = sbx_engine_heads(p->cfg.engine, heads, SBX_MAX_MEMBERS);
    if (nh < 0) return nh;
    struct wmsg m;
    msgpack_packer *pk = msg_begin(&m, 8, MSG_HELLO);
    msgpack_pack_uint8(pk, SBX_PROTOCOL_VERSION);
    pack_bin(pk, sbx_engine_library(p->cfg.engine), SBX_ID_BYTES);
    msgpack_pack_array(pk, (size_t)nh);
    for (int i = 0; i < nh; i++) {
        msgpack_pack_array(pk, 2);
        pack_bin(pk, heads[i].author, SBX_KEY_BYTES);
        msgpack_pack_uint64(pk, heads[i].seq);
    }
    pack_str(pk, p->join_name);
    pack_str(pk, p->platform);
    pack_str(pk, p->app_version);
    msgpack_pack_uint16(pk, p->cfg.listen_port);
    p->hello_sent = true;
    return msg_send(p, &m);
}

static int become_ready(sbx_peer *p)
{
    if (!p->hello_sent || !p->hello_received || p->state == ST_READY) return 0;
    p->state = ST_READY;
    emit(p, SBX_PEER_READY, NULL);
    if (p->state != ST_READY) return 0;
    return pump(p);
}

static bool obj_bin(const msgpack_object *o, size_t n)
{
    return o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == n;
}

static bool obj_str(const msgpack_object *o, size_t max)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size <= max;
}

static void copy_str(char *dst, size_t cap, const msgpack_object *o)
{
    size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
    memcpy(dst, o->via.str.ptr, n);
    dst[n] = '\0';
}

typedef int (*msg_fn)(sbx_peer *p, const msgpack_object_array *m, const char **why);

static int on_hello(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (p->state != ST_HELLO && p->state != ST_READY) return *why = "hello out of turn", SBX_EPROTO;
    if (m->size != 8 || m->ptr[7].type != MSGPACK_OBJECT_POSITIVE_INTEGER || m->ptr[7].via.u64 > 65535 ||
        m->ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || !obj_bin(&m->ptr[2], SBX_ID_BYTES) ||
        m->ptr[3].type != MSGPACK_OBJECT_ARRAY || !obj_str(&m->ptr[4], SBX_MAX_NAME) || !obj_str(&m->ptr[5], 63) ||
        !obj_str(&m->ptr[6], 31))
        return *why = "malformed hello", SBX_EPROTO;
    if (m->ptr[1].via.u64 != SBX_PROTOCOL_VERSION) return *why = "unsupported protocol version", SBX_EPROTO;
    if (memcmp(m->ptr[2].via.bin.ptr, sbx_engine_library(p->cfg.engine), SBX_ID_BYTES) != 0)
        return *why = "library mismatch", SBX_EPROTO;
    const msgpack_object_array *heads = &m->ptr[3].via.array;
    if (heads->size > SBX_MAX_MEMBERS) return *why = "too many heads", SBX_EPROTO;
    for (uint32_t i = 0; i < heads->size; i++) {
        const msgpack_object *h = &heads->ptr[i];
        if (h->type != MSGPACK_OBJECT_ARRAY || h->via.array.size != 2 ||
            !obj_bin(&h->via.array.ptr[0], SBX_KEY_BYTES) ||
            h->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return *why = "malformed heads", SBX_EPROTO;
        note_has(p, (const uint8_t *)h->via.array.ptr[0].via.bin.ptr, h->via.array.ptr[1].via.u64);
        memcpy(p->hello_heads[i].author, h->via.array.ptr[0].via.bin.ptr, SBX_KEY_BYTES);
        p->hello_heads[i].seq = h->via.array.ptr[1].via.u64;
    }
    p->n_hello_heads = heads->size;
    p->remote_port = (uint16_t)m->ptr[7].via.u64;
    copy_str(p->remote_name, sizeof p->remote_name, &m->ptr[4]);
    p->hello_received = true;
    return become_ready(p);
}

static int on_entries(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (p->state != ST_READY) return *why = "entries before hello", SBX_EPROTO;
    if (m->size != 2 || m->ptr[1].type != MSGPACK_OBJECT_ARRAY) return *why = "malformed entries", SBX_EPROTO;
    const msgpack_object_array *list = &m->ptr[1].via.array;
    if (list->size == 0 || list->size > SBX_MAX_MSG / 64) return *why = "malformed entries", SBX_EPROTO;
    const uint8_t *raw[SBX_MAX_MSG / 64];
    size_t len[SBX_MAX_MSG / 64];
    for (uint32_t i = 0; i < list->size; i++) {
        if (list->ptr[i].type != MSGPACK_OBJECT_BIN) return *why = "malformed entries", SBX_EPROTO;
        raw[i] = (const uint8_t *)list->ptr[i].via.bin.ptr;
        len[i] = list->ptr[i].via.bin.size;
    }
    /* The remote holds what it sent, applied here or not: never echo it. */
    for (uint32_t i = 0; i < list->size; i++) {
        uint8_t author[SBX_KEY_BYTES];
        uint64_t seq;
        if (peek_entry(raw[i], len[i], author, &seq)) note_has(p, author, seq);
    }
    if (!p->rx_raw) {
        p->rx_raw = calloc(SBX_PEER_APPLY_BATCH, sizeof *p->rx_raw);
        p->rx_len = calloc(SBX_PEER_APPLY_BATCH, sizeof *p->rx_len);
        if (!p->rx_raw || !p->rx_len) return *why = "out of memory", SBX_ENOMEM;
    }
    for (uint32_t i = 0; i < list->size; i++) {
        if (p->rx_n == SBX_PEER_APPLY_BATCH) {
            int rc = sbx_peer_apply(p);
            if (rc != 0) return *why = "cannot store entries", rc;
        }
        uint8_t *copy = malloc(len[i]);
        if (!copy) return *why = "out of memory", SBX_ENOMEM;
        memcpy(copy, raw[i], len[i]);
        p->rx_raw[p->rx_n] = copy;
        p->rx_len[p->rx_n++] = len[i];
        p->rx_bytes += len[i];
    }
    if (p->rx_bytes >= SBX_PEER_APPLY_BYTES) {
        int rc = sbx_peer_apply(p);
        if (rc != 0) return *why = "cannot store entries", rc;
    }
    return 0;
}

int sbx_peer_apply(sbx_peer *p)
{
    if (p->rx_n == 0) return 0;
    p->in_callback = true;
    int rc = sbx_engine_receive(p->cfg.engine, (const uint8_t *const *)p->rx_raw, p->rx_len, p->rx_n, p->now, NULL);
    p->in_callback = false;
    for (size_t i = 0; i < p->rx_n; i++) free(p->rx_raw[i]);
    p->rx_n = 0;
    p->rx_bytes = 0;
    if (rc != 0) return rc;
    return p->state == ST_READY ? pump(p) : 0;
}

static int on_ping(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    (void)m;
    (void)why;
    uint8_t pong[2] = {0x91, MSG_PONG};
    return out_msg(p, pong, sizeof pong);
}

static int on_pong(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    (void)p;
    (void)m;
    (void)why;
    return 0;
}

static int on_join(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (!p->pairing || p->cfg.initiator || p->state != ST_JOINING) return *why = "join out of turn", SBX_EPROTO;
    if (m->size != 3 || !obj_str(&m->ptr[1], SBX_MAX_NAME) || m->ptr[1].via.str.size == 0 ||
        m->ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || m->ptr[2].via.u64 > 1)
        return *why = "malformed join", SBX_EPROTO;
    struct sbx_op add = {.type = SBX_OP_DEVICE_ADD, .role = (enum sbx_role)m->ptr[2].via.u64};
    memcpy(add.key, p->remote_key, SBX_KEY_BYTES);
    add.name = (struct sbx_str){m->ptr[1].via.str.ptr, m->ptr[1].via.str.size};
    copy_str(p->remote_name, sizeof p->remote_name, &m->ptr[1]);
    p->in_callback = true;
    int rc = sbx_engine_write(p->cfg.engine, &add, 1, p->now);
    p->in_callback = false;
    if (rc != 0) return *why = "cannot admit the device", rc;
    uint8_t joined[2] = {0x91, MSG_JOINED};
    if ((rc = out_msg(p, joined, sizeof joined)) != 0) return rc;
    p->state = ST_HELLO;
    emit(p, SBX_PEER_JOINED, NULL);
    if (p->state == ST_CLOSED) return 0;
    return send_hello(p);
}

static int on_joined(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    (void)m;
    if (!p->pairing || !p->cfg.initiator || p->state != ST_JOINING) return *why = "joined out of turn", SBX_EPROTO;
    p->state = ST_HELLO;
    emit(p, SBX_PEER_JOINED, NULL);
    if (p->state == ST_CLOSED) return 0;
    return send_hello(p);
}

static int on_bye(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    char reason[160] = "the peer closed the session";
    if (m->size == 2 && obj_str(&m->ptr[1], 120)) {
        char r[121];
        copy_str(r, sizeof r, &m->ptr[1]);
        snprintf(reason, sizeof reason, "the peer closed the session: %s", r);
    }
    finish_close(p, reason);
    (void)why;
    return 0;
}

static bool obj_hash(const msgpack_object *o) { return obj_bin(o, 32); }

static int send_hash_msg(sbx_peer *p, uint8_t type, const uint8_t hash[32], bool with_idx, uint32_t idx)
{
    struct wmsg m;
    msgpack_packer *pk = msg_begin(&m, with_idx ? 3 : 2, type);
    pack_bin(pk, hash, 32);
    if (with_idx) msgpack_pack_uint32(pk, idx);
    return msg_send(p, &m);
}

static int on_blob_get(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (p->state != ST_READY || m->size != 2 || !obj_hash(&m->ptr[1])) return *why = "malformed blob request", SBX_EPROTO;
    const uint8_t *hash = (const uint8_t *)m->ptr[1].via.bin.ptr;
    struct sbx_blob_info info;
    if (!p->cfg.blobs || sbx_blob_has(p->cfg.blobs, hash) != 0 || sbx_blob_stat(p->cfg.blobs, hash, &info) != 0)
        return send_hash_msg(p, MSG_BLOB_NONE, hash, false, 0);
    size_t n = info.n_chunks, got = 0;
    uint8_t *hashes = malloc(n * 32 + 1);
    if (!hashes) return *why = "out of memory", SBX_ENOMEM;
    int rc = sbx_blob_chunk_hashes(p->cfg.blobs, hash, hashes, n, &got);
    if (rc != 0 || got != n) {
        free(hashes);
        return send_hash_msg(p, MSG_BLOB_NONE, hash, false, 0);
    }
    /* The list goes in as many messages as it needs (1,800 hashes each). */
    size_t first = 0;
    do {
        size_t k = n - first < 1800 ? n - first : 1800;
        struct wmsg out;
        msgpack_packer *pk = msg_begin(&out, 7, MSG_BLOB_INFO);
        pack_bin(pk, hash, 32);
        msgpack_pack_uint64(pk, info.size);
        msgpack_pack_uint32(pk, info.chunk_size);
        msgpack_pack_uint8(pk, (uint8_t)info.kind);
        msgpack_pack_uint32(pk, (uint32_t)first);
        msgpack_pack_array(pk, k);
        for (size_t i = 0; i < k; i++) pack_bin(pk, hashes + (first + i) * 32, 32);
        rc = msg_send(p, &out);
        first += k;
    } while (rc == 0 && first < n);
    free(hashes);
    return rc;
}

static int on_blob_info(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (m->size != 7 || !obj_hash(&m->ptr[1]) || m->ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        m->ptr[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER || m->ptr[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        m->ptr[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER || m->ptr[6].type != MSGPACK_OBJECT_ARRAY ||
        m->ptr[2].via.u64 > SBX_MAX_BLOB_BYTES || m->ptr[3].via.u64 != SBX_BLOB_CHUNK || m->ptr[4].via.u64 > 2 ||
        m->ptr[5].via.u64 > SBX_MAX_BLOB_CHUNKS)
        return *why = "malformed blob info", SBX_EPROTO;
    const msgpack_object_array *list = &m->ptr[6].via.array;
    if (list->size > 1800) return *why = "malformed blob info", SBX_EPROTO;
    uint8_t *hashes = malloc((size_t)list->size * 32 + 1);
    if (!hashes) return *why = "out of memory", SBX_ENOMEM;
    for (uint32_t i = 0; i < list->size; i++) {
        if (!obj_hash(&list->ptr[i])) {
            free(hashes);
            return *why = "malformed blob info", SBX_EPROTO;
        }
        memcpy(hashes + (size_t)i * 32, list->ptr[i].via.bin.ptr, 32);
    }
    if (p->cfg.blob_cb && p->cfg.blob_cb->info)
        p->cfg.blob_cb->info(p, (const uint8_t *)m->ptr[1].via.bin.ptr, m->ptr[2].via.u64, (int)m->ptr[4].via.u64,
                             (uint32_t)m->ptr[5].via.u64, hashes, list->size);
    free(hashes);
    return 0;
}

static int on_blob_none(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (m->size != 2 || !obj_hash(&m->ptr[1])) return *why = "malformed message", SBX_EPROTO;
    if (p->cfg.blob_cb && p->cfg.blob_cb->none) p->cfg.blob_cb->none(p, (const uint8_t *)m->ptr[1].via.bin.ptr);
    return 0;
}

static int on_chunk_get(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (p->state != ST_READY || m->size != 3 || !obj_hash(&m->ptr[1]) ||
        m->ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || m->ptr[2].via.u64 >= SBX_MAX_BLOB_CHUNKS)
        return *why = "malformed chunk request", SBX_EPROTO;
    const uint8_t *hash = (const uint8_t *)m->ptr[1].via.bin.ptr;
    uint32_t idx = (uint32_t)m->ptr[2].via.u64;
    if (p->serve_n == SBX_MAX_SERVE_QUEUE) return *why = "too many chunk requests", SBX_EPROTO;
    /* Queued as asked; the blob is opened when its turn comes (a chunk it
     * cannot serve is answered "none" then, in order). */
    struct serve *sv = &p->serve[(p->serve_head + p->serve_n) % SBX_MAX_SERVE_QUEUE];
    SBX_ASSERT(sv->f == NULL);
    memcpy(sv->hash, hash, 32);
    sv->idx = idx;
    sv->started = false;
    sv->off = sv->end = 0;
    p->serve_n++;
    return serve_pieces(p);
}

static struct want *find_want(sbx_peer *p, const uint8_t *hash, uint32_t idx)
{
    for (size_t i = 0; i < SBX_MAX_CHUNKS_IN_FLIGHT; i++)
        if (p->want[i].used && p->want[i].idx == idx && memcmp(p->want[i].hash, hash, 32) == 0) return &p->want[i];
    return NULL;
}

static void want_drop(struct want *w)
{
    sbx_chunkbuf_put(w->buf);
    memset(w, 0, sizeof *w);
}

static int on_chunk_data(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (m->size != 6 || !obj_hash(&m->ptr[1]) || m->ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        m->ptr[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER || m->ptr[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        m->ptr[5].type != MSGPACK_OBJECT_BIN || m->ptr[4].via.u64 > SBX_BLOB_CHUNK)
        return *why = "malformed chunk", SBX_EPROTO;
    const uint8_t *hash = (const uint8_t *)m->ptr[1].via.bin.ptr;
    struct want *w = find_want(p, hash, (uint32_t)m->ptr[2].via.u64);
    if (!w) return *why = "a chunk nobody asked for", SBX_EPROTO;
    uint64_t off = m->ptr[3].via.u64, total = m->ptr[4].via.u64, n = m->ptr[5].via.bin.size;
    if (!w->buf) {
        w->buf = sbx_chunkbuf_get(); /* total <= SBX_BLOB_CHUNK, checked above */
        if (!w->buf) return *why = "out of memory", SBX_ENOMEM;
        w->len = (size_t)total;
    }
    /* Pieces come in order on an ordered stream; anything else is a bug or
     * an attack. */
    if (total != w->len || off != w->got || off + n > total) return *why = "malformed chunk", SBX_EPROTO;
    memcpy(w->buf + off, m->ptr[5].via.bin.ptr, n);
    w->got += n;
    if (w->got < w->len) return 0;
    uint8_t h[32];
    uint32_t idx = w->idx;
    uint8_t *buf = w->buf;
    size_t len = w->len;
    memcpy(h, w->hash, 32);
    w->buf = NULL;
    want_drop(w);
    if (p->cfg.blob_cb && p->cfg.blob_cb->chunk_take) {
        p->cfg.blob_cb->chunk_take(p, h, idx, buf, len);
        return 0;
    }
    if (p->cfg.blob_cb && p->cfg.blob_cb->chunk) p->cfg.blob_cb->chunk(p, h, idx, buf, len);
    sbx_chunkbuf_put(buf);
    return 0;
}

static int on_chunk_none(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (m->size != 3 || !obj_hash(&m->ptr[1]) || m->ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return *why = "malformed message", SBX_EPROTO;
    const uint8_t *hash = (const uint8_t *)m->ptr[1].via.bin.ptr;
    struct want *w = find_want(p, hash, (uint32_t)m->ptr[2].via.u64);
    if (!w) return 0;
    uint32_t idx = w->idx;
    want_drop(w);
    if (p->cfg.blob_cb && p->cfg.blob_cb->chunk) p->cfg.blob_cb->chunk(p, hash, idx, NULL, 0);
    return 0;
}

/* Peer exchange: addresses are hints only (every session is authenticated
 * by its handshake), so they are taken from any member and bounded. */
static int on_addrs(sbx_peer *p, const msgpack_object_array *m, const char **why)
{
    if (p->state != ST_READY || m->size != 2 || m->ptr[1].type != MSGPACK_OBJECT_ARRAY ||
        m->ptr[1].via.array.size > SBX_MAX_PEX_ADDRS)
        return *why = "malformed addresses", SBX_EPROTO;
    const msgpack_object_array *list = &m->ptr[1].via.array;
    for (uint32_t i = 0; i < list->size; i++) {
        const msgpack_object *e = &list->ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 || !obj_bin(&e->via.array.ptr[0], 32) ||
            !obj_str(&e->via.array.ptr[1], 80))
            return *why = "malformed addresses", SBX_EPROTO;
        char addr[81];
        copy_str(addr, sizeof addr, &e->via.array.ptr[1]);
        if (p->cfg.addr_cb) p->cfg.addr_cb(p, (const uint8_t *)e->via.array.ptr[0].via.bin.ptr, addr);
    }
    return 0;
}

int sbx_peer_send_addrs(sbx_peer *p, const uint8_t (*keys)[32], const char *const *addrs, size_t n)
{
    if (p->state != ST_READY) return SBX_ESTATE;
    if (n > SBX_MAX_PEX_ADDRS) n = SBX_MAX_PEX_ADDRS;
    struct wmsg m;
    msgpack_packer *pk = msg_begin(&m, 2, MSG_ADDRS);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(pk, 2);
        pack_bin(pk, keys[i], 32);
        pack_str(pk, addrs[i]);
    }
    return msg_send(p, &m);
}

int sbx_peer_blob_get(sbx_peer *p, const uint8_t hash[32])
{
    if (p->state != ST_READY) return SBX_ESTATE;
    return send_hash_msg(p, MSG_BLOB_GET, hash, false, 0);
}

int sbx_peer_chunk_get(sbx_peer *p, const uint8_t hash[32], uint32_t idx)
{
    if (p->state != ST_READY) return SBX_ESTATE;
    if (find_want(p, hash, idx)) return 0;
    for (size_t i = 0; i < SBX_MAX_CHUNKS_IN_FLIGHT; i++) {
        if (p->want[i].used) continue;
        p->want[i].used = true;
        memcpy(p->want[i].hash, hash, 32);
        p->want[i].idx = idx;
        return send_hash_msg(p, MSG_CHUNK_GET, hash, true, idx);
    }
    return SBX_EBUSY;
}

size_t sbx_peer_chunks_in_flight(const sbx_peer *p)
{
    size_t n = 0;
    for (size_t i = 0; i < SBX_MAX_CHUNKS_IN_FLIGHT; i++) n += p->want[i].used;
    return n;
}

/* Message handlers in a table indexed by the message type. */
static const msg_fn handlers[MSG__COUNT] = {
    [MSG_HELLO] = on_hello, [MSG_ENTRIES] = on_entries, [MSG_PING] = on_ping, [MSG_PONG] = on_pong,
    [MSG_JOIN] = on_join,   [MSG_JOINED] = on_joined,   [MSG_BYE] = on_bye,
    [MSG_BLOB_GET] = on_blob_get, [MSG_BLOB_INFO] = on_blob_info, [MSG_BLOB_NONE] = on_blob_none,
    [MSG_CHUNK_GET] = on_chunk_get, [MSG_CHUNK_DATA] = on_chunk_data, [MSG_CHUNK_NONE] = on_chunk_none,
    [MSG_ADDRS] = on_addrs,
};

/* msgpack-c reserves room for a container from the count in its header,
 * so a few bytes could ask for gigabytes. Before unpacking, this walks the
 * bytes once: exactly one object, nesting at most 8 deep, and no container
 * counting more elements than bytes remain. */
static bool mp_sane(const uint8_t *b, size_t len)
{
    size_t left[9], depth = 0, o = 0;
    left[0] = 1;
    while (o < len) {
        while (depth > 0 && left[depth] == 0) depth--;
        if (left[depth] == 0) return false; /* trailing bytes */
        left[depth]--;
        uint8_t t = b[o++];
        uint64_t n = 0, skip = 0, items = 0;
        size_t hdr = 0;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) continue;
        if (t >= 0x80 && t <= 0x8f) items = 2u * (t & 0x0f);
        else if (t >= 0x90 && t <= 0x9f) items = t & 0x0f;
        else if (t >= 0xa0 && t <= 0xbf) skip = t & 0x1f;
        else switch (t) {
            case 0xc4: case 0xd9: hdr = 1; break;
            case 0xc5: case 0xda: hdr = 2; break;
            case 0xc6: case 0xdb: hdr = 4; break;
            case 0xc7: hdr = 1; skip = 1; break;
            case 0xc8: hdr = 2; skip = 1; break;
            case 0xc9: hdr = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xde: hdr = 2; break;
            case 0xdd: case 0xdf: hdr = 4; break;
            default: return false;
            }
        if (hdr) {
            if (len - o < hdr) return false;
            for (size_t i = 0; i < hdr; i++) n = n << 8 | b[o + i];
            o += hdr;
            if (t == 0xdc || t == 0xdd) items = n;
            else if (t == 0xde || t == 0xdf) items = 2 * n;
            else skip += n;
        }
        if (skip > len - o) return false;
        o += skip;
        if (items) {
            if (items > len - o || depth == 8) return false;
            left[++depth] = items;
        }
    }
    while (depth > 0 && left[depth] == 0) depth--;
    return depth == 0 && left[0] == 0;
}

static int on_message(sbx_peer *p, const uint8_t *pt, size_t len)
{
    if (!mp_sane(pt, len)) {
        sbx_peer_close(p, "malformed message");
        return SBX_EPROTO;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    const char *why = "malformed message";
    int rc = SBX_EPROTO;
    if (msgpack_unpack_next(&u, (const char *)pt, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size >= 1 &&
        u.data.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        uint64_t t = u.data.via.array.ptr[0].via.u64;
        if (t > 0 && t < MSG__COUNT && handlers[t]) rc = handlers[t](p, &u.data.via.array, &why);
        else why = "unknown message type";
    }
    msgpack_unpacked_destroy(&u);
    if (rc != 0 && p->state != ST_CLOSED) sbx_peer_close(p, why);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Handshake                                                            */

static int hs_start(sbx_peer *p, const uint8_t *psk)
{
    sbx_noise_hs_free(p->hs);
    p->hs = NULL;
    int rc = sbx_noise_hs_new(&p->hs, p->cfg.initiator, (const uint8_t *)SBX_NOISE_PROLOGUE,
                              strlen(SBX_NOISE_PROLOGUE), p->x_priv, psk);
    if (rc == 0 && p->cfg.ephemeral) rc = sbx_noise_hs_set_ephemeral(p->hs, p->cfg.ephemeral);
    return rc;
}

static int hs_write(sbx_peer *p, const uint8_t *payload, size_t len)
{
    uint8_t msg[256];
    size_t n = 0;
    int rc = sbx_noise_hs_write(p->hs, payload, len, msg, sizeof msg, &n);
    return rc ? rc : out_frame(p, msg, n);
}

/* The remote's identity: its Ed25519 key arrives as the handshake payload,
 * and must map to the Noise static key it proved it holds. */
static int check_identity(sbx_peer *p, const uint8_t *payload, size_t len, const char **why)
{
    uint8_t rs[32], mapped[32];
    if (len != SBX_KEY_BYTES || sbx_noise_hs_remote_static(p->hs, rs) != 0 ||
        sbx_noise_static_pub_from_ed25519(mapped, payload) != 0 || sodium_memcmp(rs, mapped, 32) != 0)
        return *why = "the peer's identity does not match its Noise key", SBX_ECRYPTO;
    memcpy(p->remote_key, payload, SBX_KEY_BYTES);
    if (p->cfg.expect_key && memcmp(p->remote_key, p->cfg.expect_key, SBX_KEY_BYTES) != 0)
        return *why = "the peer is not the device of the invitation", SBX_ECRYPTO;
    return 0;
}

static int handshake_done(sbx_peer *p, const char **why)
{
    int rc = sbx_noise_hs_split(p->hs, &p->tx, &p->rx);
    if (rc != 0) return *why = "handshake failed", rc;
    p->authed = true;
    emit(p, SBX_PEER_AUTHENTICATED, NULL);
    if (p->state == ST_CLOSED) return 0;
    if (p->pairing) {
        p->state = ST_JOINING;
        if (!p->cfg.initiator) return 0; /* the joiner speaks first */
        struct wmsg m;
        msgpack_packer *pk = msg_begin(&m, 3, MSG_JOIN);
        pack_str(pk, p->join_name);
        msgpack_pack_uint8(pk, (uint8_t)p->cfg.join_role);
        return msg_send(p, &m);
    }
    /* Between members: the remote must be one, now. */
    if (!sbx_engine_is_member(p->cfg.engine, p->remote_key)) return *why = "the peer is not a member of the library", SBX_EPERM;
    p->state = ST_HELLO;
    return send_hello(p);
}

static int on_handshake(sbx_peer *p, const uint8_t *msg, size_t len, const char **why)
{
    uint8_t payload[256];
    size_t plen = 0;
    int turn = sbx_noise_hs_turn(p->hs);
    if (turn != SBX_NOISE_TURN_READ) return *why = "unexpected handshake message", SBX_EPROTO;
    bool first = !p->cfg.initiator && !p->got_msg1;
    int rc = sbx_noise_hs_read(p->hs, msg, len, payload, sizeof payload, &plen);
    if (rc != 0) return *why = p->pairing ? "pairing handshake failed (wrong secret?)" : "handshake failed", rc;
    if (first) {
        p->got_msg1 = true;
        /* Message 1: member session or pairing? A member's message 1 (XX)
         * carries the kind in the clear. A joiner's (XXpsk3) carries it
         * encrypted under a key from its ephemeral alone (the secret only
         * enters at message 3), so reading it as XXpsk3 with any secret
         * reveals the invitation id; the handshake then restarts with the
         * invitation's real secret. */
        bool member = plen == 0 || (plen == 1 && payload[0] == HS_KIND_MEMBER);
        if (!member) {
            uint8_t zero[32] = {0};
            if ((rc = hs_start(p, zero)) != 0) return rc;
            rc = sbx_noise_hs_read(p->hs, msg, len, payload, sizeof payload, &plen);
            if (rc != 0 || plen != 9 || payload[0] != HS_KIND_PAIR)
                return *why = "unknown handshake kind", SBX_EPROTO;
            if (!p->cfg.find_invite || p->cfg.find_invite(p->data, payload + 1, p->psk) != 0)
                return *why = "pairing refused: the invitation is unknown, expired or used", SBX_EREFUSED;
            p->pairing = true;
            if ((rc = hs_start(p, p->psk)) != 0) return rc;
            if ((rc = sbx_noise_hs_read(p->hs, msg, len, payload, sizeof payload, &plen)) != 0)
                return *why = "handshake failed", rc;
        }
        p->last_rx = p->now;
        return hs_write(p, p->id_pk, SBX_KEY_BYTES);
    }
    p->last_rx = p->now;
    if ((rc = check_identity(p, payload, plen, why)) != 0) return rc;
    if (sbx_noise_hs_turn(p->hs) == SBX_NOISE_TURN_WRITE) {
        if ((rc = hs_write(p, p->id_pk, SBX_KEY_BYTES)) != 0) return rc;
    }
    if (sbx_noise_hs_turn(p->hs) == SBX_NOISE_TURN_DONE) return handshake_done(p, why);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Public                                                               */

void sbx_peer_invite_id(const uint8_t psk[32], uint8_t id[8])
{
    crypto_generichash(id, 8, psk, 32, (const uint8_t *)"shoebox/invite", 14);
}

int sbx_peer_new(sbx_peer **out, const struct sbx_peer_config *cfg, sbx_peer_event_cb cb, void *data,
                 int64_t now_ms)
{
    SBX_ASSERT(cfg->id && cfg->engine);
    sbx_peer *p = calloc(1, sizeof *p);
    if (!p) return SBX_ENOMEM;
    p->cfg = *cfg;
    p->cb = cb;
    p->data = data;
    p->now = now_ms;
    p->last_tx = now_ms;
    snprintf(p->join_name, sizeof p->join_name, "%s", cfg->name ? cfg->name : "");
    snprintf(p->platform, sizeof p->platform, "%s", cfg->platform ? cfg->platform : "");
    snprintf(p->app_version, sizeof p->app_version, "%s", cfg->app_version ? cfg->app_version : "");
    p->cfg.name = p->join_name;
    p->cfg.platform = p->platform;
    p->cfg.app_version = p->app_version;
    if (!p->cfg.keepalive_ms) p->cfg.keepalive_ms = SBX_PEER_KEEPALIVE_MS;
    if (!p->cfg.idle_timeout_ms) p->cfg.idle_timeout_ms = SBX_PEER_IDLE_TIMEOUT_MS;
    memcpy(p->id_pk, cfg->id->pk, SBX_KEY_BYTES);
    int rc = sbx_noise_static_from_ed25519(p->x_priv, cfg->id->sk);
    if (rc == 0) rc = sbx_frame_reader_new(&p->fr);
    if (rc == 0 && cfg->psk) {
        memcpy(p->psk, cfg->psk, 32);
        p->pairing = true;
    }
    if (rc == 0) rc = hs_start(p, p->pairing ? p->psk : NULL);
    if (rc == 0 && cfg->initiator) {
        uint8_t first[9] = {HS_KIND_MEMBER};
        size_t n = 1;
        if (p->pairing) {
            first[0] = HS_KIND_PAIR;
            sbx_peer_invite_id(p->psk, first + 1);
            n = 9;
        }
        rc = hs_write(p, first, n);
    }
    if (rc != 0) {
        sbx_peer_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void sbx_peer_free(sbx_peer *p)
{
    if (!p) return;
    sbx_noise_hs_free(p->hs);
    sbx_noise_cs_free(p->tx);
    sbx_noise_cs_free(p->rx);
    sbx_frame_reader_free(p->fr);
    for (size_t i = 0; i < p->rx_n; i++) free(p->rx_raw[i]);
    while (p->serve_n > 0) serve_pop(p);
    for (size_t i = 0; i < SBX_MAX_CHUNKS_IN_FLIGHT; i++) want_drop(&p->want[i]);
    free(p->rx_raw);
    free(p->rx_len);
    free(p->out);
    sodium_memzero(p, sizeof *p);
    free(p);
}

void *sbx_peer_data(const sbx_peer *p) { return p->data; }

int sbx_peer_input(sbx_peer *p, const uint8_t *bytes, size_t len, int64_t now_ms)
{
    p->now = now_ms;
    if (p->state == ST_CLOSED) return SBX_ESTATE;
    while (len > 0 && p->state != ST_CLOSED) {
        size_t used = 0, flen = 0;
        const uint8_t *frame = NULL;
        int rc = sbx_frame_reader_feed(p->fr, bytes, len, &used, &frame, &flen);
        bytes += used;
        len -= used;
        if (rc < 0) {
            sbx_peer_close(p, "malformed frame");
            return rc;
        }
        if (rc == 0) break;
        const char *why = "protocol error";
        if (!p->rx) {
            rc = on_handshake(p, frame, flen, &why);
            /* With transport keys (a refusal after the handshake) the
             * remote gets a goodbye saying why; before them, just close. */
            if (rc != 0 && p->state != ST_CLOSED) sbx_peer_close(p, why);
            if (rc != 0) return rc;
            continue;
        }
        p->last_rx = now_ms;
        uint8_t pt[SBX_NOISE_MAX_MSG];
        rc = maybe_rekey(p->rx);
        if (rc == 0) rc = sbx_noise_cs_decrypt(p->rx, NULL, 0, frame, flen, pt);
        if (rc != 0) {
            sbx_peer_close(p, "a message failed to decrypt");
            return rc;
        }
        rc = on_message(p, pt, flen - SBX_NOISE_TAG);
        sodium_memzero(pt, flen - SBX_NOISE_TAG);
        if (rc != 0) return rc;
    }
    return 0;
}

void sbx_peer_tick(sbx_peer *p, int64_t now_ms)
{
    p->now = now_ms;
    if (p->state == ST_CLOSED) return;
    if (sbx_peer_apply(p) != 0) {
        sbx_peer_close(p, "cannot store entries");
        return;
    }
    int64_t since_rx = now_ms - (p->last_rx ? p->last_rx : p->last_tx);
    if (since_rx > p->cfg.idle_timeout_ms) {
        sbx_peer_close(p, p->tx ? "idle time-out" : "handshake time-out");
        return;
    }
    if (p->tx && now_ms - p->last_tx >= p->cfg.keepalive_ms) {
        uint8_t ping[2] = {0x91, MSG_PING};
        if (out_msg(p, ping, sizeof ping) != 0) sbx_peer_close(p, "cannot send");
    }
}

void sbx_peer_output(sbx_peer *p, const uint8_t **bytes, size_t *len)
{
    *bytes = p->out + p->out_off;
    *len = out_pending(p);
}

void sbx_peer_output_consume(sbx_peer *p, size_t n)
{
    SBX_ASSERT(n <= out_pending(p));
    p->out_off += n;
    if (p->out_off == p->out_len) p->out_off = p->out_len = 0;
    /* Room again: stream more of what the remote lacks. */
    if (p->state == ST_READY && !p->in_callback && out_pending(p) < SBX_MAX_PEER_OUTPUT / 2) {
        if (pump(p) != 0) sbx_peer_close(p, "cannot read the local log");
    }
}

bool sbx_peer_is_closed(const sbx_peer *p) { return p->state == ST_CLOSED; }
bool sbx_peer_is_ready(const sbx_peer *p) { return p->state == ST_READY; }
const uint8_t *sbx_peer_remote_key(const sbx_peer *p) { return p->authed ? p->remote_key : NULL; }
const char *sbx_peer_remote_name(const sbx_peer *p) { return p->remote_name; }

uint64_t sbx_peer_entries_behind(const sbx_peer *p)
{
    struct sbx_head heads[SBX_MAX_MEMBERS];
    int nh = sbx_engine_heads(p->cfg.engine, heads, SBX_MAX_MEMBERS);
    uint64_t behind = 0;
    for (int i = 0; i < nh; i++) {
        uint64_t theirs = 0;
        for (size_t k = 0; k < p->n_has; k++)
            if (memcmp(p->has[k].author, heads[i].author, SBX_KEY_BYTES) == 0) theirs = p->has[k].seq;
        if (heads[i].seq > theirs) behind += heads[i].seq - theirs;
    }
    return behind;
}

uint16_t sbx_peer_remote_port(const sbx_peer *p) { return p->remote_port; }

bool sbx_peer_caught_up(const sbx_peer *p)
{
    if (p->state != ST_READY || p->rx_n > 0) return false;
    struct sbx_head heads[SBX_MAX_MEMBERS];
    int nh = sbx_engine_heads(p->cfg.engine, heads, SBX_MAX_MEMBERS);
    if (nh < 0) return false;
    for (size_t i = 0; i < p->n_hello_heads; i++) {
        uint64_t mine = 0;
        for (int k = 0; k < nh; k++)
            if (memcmp(heads[k].author, p->hello_heads[i].author, SBX_KEY_BYTES) == 0) mine = heads[k].seq;
        if (mine < p->hello_heads[i].seq) return false;
    }
    return true;
}

int sbx_peer_feed_plaintext(sbx_peer *p, const uint8_t *pt, size_t len)
{
    if (p->state == ST_CLOSED) return SBX_ESTATE;
    if (len > SBX_MAX_MSG) return SBX_ETOOBIG;
    return on_message(p, pt, len);
}
