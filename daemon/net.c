/* The daemon's network glue: libuv TCP around the sans-I/O peer sessions.
 * It listens, dials members at their known addresses with exponential
 * backoff and jitter, keeps one session per pair of devices, pushes new
 * entries to every session, and serves pairing invitations. */
#include "daemon.h"
#include "conn.h"

#include "shoebox/addr.h"
#include "shoebox/devid.h"
#include "shoebox/discovery.h"
#include "shoebox/upnp.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/pair.h"
#include "shoebox/peer.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define WRITE_SLICE (1u << 20)
#define MAX_INFLIGHT (8u << 20)
#define TICK_MS 1000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000

struct wreq {
    uv_write_t req;
    struct conn *c;
    size_t n;
    uint8_t data[];
};

struct dialer {
    uint8_t key[SBX_KEY_BYTES];
    int64_t retry_at;
    unsigned failures;
    unsigned next_addr;
};

static void conn_close(struct conn *c);
static void flush(struct conn *c);

static void short_id(char out[16], const uint8_t key[SBX_KEY_BYTES])
{
    char full[SBX_DEVID_STRLEN + 1];
    sbx_devid_format(full, key);
    snprintf(out, 16, "%.7s", full);
}

/* ---- sessions ---- */

static struct conn *find_session(struct sbx_daemon *d, const uint8_t key[SBX_KEY_BYTES], struct conn *except)
{
    for (struct conn *c = d->conns; c; c = c->next) {
        if (c == except || c->closing || c->want_close || !c->peer) continue;
        const uint8_t *rk = sbx_peer_remote_key(c->peer);
        if ((rk && memcmp(rk, key, SBX_KEY_BYTES) == 0) ||
            (!rk && c->outbound && memcmp(c->dial_key, key, SBX_KEY_BYTES) == 0))
            return c;
    }
    return NULL;
}

static struct dialer *dialer_for(struct sbx_daemon *d, const uint8_t key[SBX_KEY_BYTES])
{
    if (!d->dialers && !(d->dialers = calloc(SBX_MAX_MEMBERS, sizeof *d->dialers))) return NULL;
    for (size_t i = 0; i < d->n_dialers; i++)
        if (memcmp(d->dialers[i].key, key, SBX_KEY_BYTES) == 0) return &d->dialers[i];
    if (d->n_dialers == SBX_MAX_MEMBERS) return NULL;
    struct dialer *dl = &d->dialers[d->n_dialers++];
    memset(dl, 0, sizeof *dl);
    memcpy(dl->key, key, SBX_KEY_BYTES);
    return dl;
}

static void record_address(struct sbx_daemon *d, const uint8_t key[SBX_KEY_BYTES], const char *addr, const char *source)
{
    sqlite3_stmt *st = sbx_store_stmt(d->store, "INSERT INTO peer_addresses(device_key, address, source, last_ok_at) "
                                                "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET "
                                                "last_ok_at = excluded.last_ok_at");
    if (!st) return;
    sqlite3_bind_blob(st, 1, key, SBX_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, addr, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, sbx_now_ms());
    sqlite3_step(st);
    sqlite3_reset(st);
}

void sbx_net_add_address(struct sbx_daemon *d, const uint8_t key[SBX_KEY_BYTES], const char *addr, const char *source)
{
    sqlite3_stmt *st = sbx_store_stmt(d->store, "INSERT INTO peer_addresses(device_key, address, source) "
                                                "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING");
    if (!st) return;
    sqlite3_bind_blob(st, 1, key, SBX_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, addr, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_reset(st);
}

static void touch_seen(struct sbx_daemon *d, const uint8_t key[SBX_KEY_BYTES])
{
    sqlite3_stmt *st = sbx_store_stmt(d->store, "UPDATE devices SET last_seen_at = ?2 WHERE key = ?1");
    if (!st) return;
    sqlite3_bind_blob(st, 1, key, SBX_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, sbx_now_ms());
    sqlite3_step(st);
    sqlite3_reset(st);
}

static void send_pex(struct sbx_daemon *d, struct conn *c);
static void upnp_map(struct sbx_daemon *d);

static void on_peer_event(sbx_peer *p, enum sbx_peer_event ev, const char *reason)
{
    struct conn *c = sbx_peer_data(p);
    struct sbx_daemon *d = c->d;
    char id[16] = "?";
    const uint8_t *rk = sbx_peer_remote_key(p);
    if (rk) short_id(id, rk);
    switch (ev) {
    case SBX_PEER_AUTHENTICATED: {
        /* Two devices that dial each other at once end up with two
         * sessions: both keep the one dialed by the greater key. */
        struct conn *other = find_session(d, rk, c);
        if (other && sbx_peer_remote_key(other->peer)) {
            const uint8_t *mine = d->id.pk;
            bool keep_outbound = memcmp(mine, rk, SBX_KEY_BYTES) > 0;
            struct conn *loser = (c->outbound == keep_outbound) ? other : c;
            sbx_debug("peer %s: duplicate session, closing one", id);
            sbx_peer_close(loser->peer, "duplicate session");
            loser->want_close = true;
        }
        break;
    }
    case SBX_PEER_READY: {
        sbx_info("peer %s (%s) connected %s %s", id, sbx_peer_remote_name(p), c->outbound ? "to" : "from", c->addr);
        struct dialer *dl = dialer_for(d, rk);
        if (dl) dl->failures = 0;
        if (c->outbound) {
            record_address(d, rk, c->addr, "dial");
        } else if (sbx_peer_remote_port(p)) {
            /* Learn where the remote listens: its address and hello port. */
            char host[80];
            snprintf(host, sizeof host, "%s", c->addr);
            char *colon = strrchr(host, ':');
            if (colon && colon - host < 64) {
                char addr[80];
                *colon = '\0';
                snprintf(addr, sizeof addr, "%.64s:%u", host, sbx_peer_remote_port(p));
                sbx_net_add_address(d, rk, addr, "peer");
            }
        }
        touch_seen(d, rk);
        send_pex(d, c);
        sbx_transfer_session_ready(d); /* blobs this peer may hold: ask now */
        break;
    }
    case SBX_PEER_JOINED:
        sbx_info("device %s (%s) joined the library", id, sbx_peer_remote_name(p));
        break;
    case SBX_PEER_CLOSED:
        sbx_transfer_session_closed(d, p);
        if (rk) sbx_info("peer %s %s: session closed: %s", id, c->addr, reason ? reason : "");
        else sbx_warn("connection %s refused: %s", c->addr, reason ? reason : "");
        c->want_close = true;
        break;
    }
}

static void on_pex(sbx_peer *p, const uint8_t key[32], const char *addr)
{
    struct conn *c = sbx_peer_data(p);
    struct sbx_daemon *d = c->d;
    struct sockaddr_storage ss;
    if (memcmp(key, d->id.pk, 32) == 0 || !sbx_engine_is_member(d->engine, key) || sbx_addr_parse(addr, false, &ss) != 0)
        return;
    sbx_net_add_address(d, key, addr, "pex");
}

/* Tells a new session where the other members were last reached. */
static void send_pex(struct sbx_daemon *d, struct conn *c)
{
    const uint8_t *rk = sbx_peer_remote_key(c->peer);
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT device_key, address FROM peer_addresses WHERE last_ok_at "
                                                "IS NOT NULL OR source = 'peer' ORDER BY last_ok_at DESC LIMIT 64");
    if (!st || !rk) return;
    uint8_t keys[SBX_MAX_PEX_ADDRS][32];
    char addrs[SBX_MAX_PEX_ADDRS][81];
    const char *ptrs[SBX_MAX_PEX_ADDRS];
    size_t n = 0;
    while (n < SBX_MAX_PEX_ADDRS && sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != 32 || memcmp(sqlite3_column_blob(st, 0), rk, 32) == 0) continue;
        memcpy(keys[n], sqlite3_column_blob(st, 0), 32);
        snprintf(addrs[n], sizeof addrs[n], "%s", (const char *)sqlite3_column_text(st, 1));
        ptrs[n] = addrs[n];
        n++;
    }
    sqlite3_reset(st);
    if (n) sbx_peer_send_addrs(c->peer, (const uint8_t(*)[32])keys, ptrs, n);
}

static int find_invite(void *data, const uint8_t id[8], uint8_t psk[32])
{
    struct conn *c = data;
    struct sbx_daemon *d = c->d;
    int64_t now = sbx_now_ms();
    for (size_t i = 0; i < SBX_ARRAY_LEN(d->invites); i++) {
        struct sbx_invite_slot *inv = &d->invites[i];
        if (!inv->active) continue;
        uint8_t want[8];
        sbx_peer_invite_id(inv->psk, want);
        if (memcmp(want, id, 8) != 0) continue;
        if (inv->used) {
            sbx_warn("pairing from %s refused: the invitation was already used", c->addr);
            return SBX_EREFUSED;
        }
        if (now >= inv->expires_at_ms) {
            sbx_warn("pairing from %s refused: the invitation expired", c->addr);
            return SBX_EEXPIRED;
        }
        inv->used = true;
        memcpy(psk, inv->psk, 32);
        return 0;
    }
    sbx_warn("pairing from %s refused: no such invitation (wrong secret?)", c->addr);
    return SBX_ENOENT;
}

static int session_start(struct conn *c)
{
    struct sbx_daemon *d = c->d;
    struct sbx_peer_config cfg = {
        .initiator = c->outbound,
        .id = &d->id,
        .engine = d->engine,
        .name = d->device_name,
        .find_invite = find_invite,
        .platform = "linux",
        .app_version = SBX_VERSION,
        .listen_port = d->listen_port,
        .blobs = d->blobs,
        .blob_cb = sbx_transfer_callbacks(),
        .corrupt_chunks = d->test_corrupt_chunks,
        .addr_cb = on_pex,
    };
    return sbx_peer_new(&c->peer, &cfg, on_peer_event, c, sbx_now_ms());
}

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct sbx_daemon *d = c->d;
    for (struct conn **pp = &d->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    sbx_peer_free(c->peer);
    free(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    struct conn *c = req->data;
    free(req);
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void conn_close(struct conn *c)
{
    if (c->closing) return;
    c->closing = true;
    if (c->connected) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_shutdown_t *req = malloc(sizeof *req);
        if (req) {
            req->data = c;
            if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) == 0) return;
            free(req);
        }
    }
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    c->inflight -= w->n;
    free(w);
    if (status < 0) {
        if (c->peer && !sbx_peer_is_closed(c->peer)) sbx_peer_close(c->peer, "write failed");
        c->want_close = true;
    }
    flush(c);
}

/* Writes what the session has, in slices, up to a bound in flight: the
 * session produces more as this drains (backpressure end to end). */
static void flush(struct conn *c)
{
    while (!c->closing && c->connected && c->peer && c->inflight < MAX_INFLIGHT) {
        const uint8_t *bytes;
        size_t n;
        sbx_peer_output(c->peer, &bytes, &n);
        if (n == 0) break;
        if (c->inflight == 0) {
            /* Nothing queued ahead: the socket takes what it can now,
             * straight from the session's buffer, with no copy. */
            uv_buf_t direct = uv_buf_init((char *)bytes, (unsigned)(n > WRITE_SLICE ? WRITE_SLICE : n));
            int w = uv_try_write((uv_stream_t *)&c->tcp, &direct, 1);
            if (w > 0) {
                sbx_peer_output_consume(c->peer, (size_t)w);
                continue;
            }
            if (w < 0 && w != UV_EAGAIN && w != UV_ENOSYS) {
                if (c->peer && !sbx_peer_is_closed(c->peer)) sbx_peer_close(c->peer, "write failed");
                c->want_close = true;
                break;
            }
        }
        if (n > WRITE_SLICE) n = WRITE_SLICE;
        struct wreq *w = malloc(sizeof *w + n);
        if (!w) break;
        memcpy(w->data, bytes, n);
        w->c = c;
        w->n = n;
        sbx_peer_output_consume(c->peer, n);
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
            free(w);
            c->want_close = true;
            break;
        }
        c->inflight += n;
    }
    if (c->want_close && c->inflight == 0 && !c->closing) conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (nread == 0) return;
    if (nread < 0) {
        if (c->peer && !sbx_peer_is_closed(c->peer)) sbx_peer_close(c->peer, "connection closed by the peer");
        c->want_close = true;
        c->inflight = 0;
        conn_close(c);
        return;
    }
    sbx_peer_input(c->peer, c->buf, (size_t)nread, sbx_now_ms());
    flush(c);
}

static struct conn *conn_new(struct sbx_daemon *d, bool outbound)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->d = d;
    c->outbound = outbound;
    uv_tcp_init(d->loop, &c->tcp);
    uv_tcp_nodelay(&c->tcp, 1);
    c->tcp.data = c;
    c->next = d->conns;
    d->conns = c;
    return c;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct sbx_daemon *d = server->data;
    if (status < 0) return;
    size_t n = 0;
    for (struct conn *c = d->conns; c; c = c->next) n++;
    struct conn *c = conn_new(d, false);
    if (!c) return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    c->connected = true;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) sbx_addr_format(c->addr, (struct sockaddr *)&ss);
    /* A bound on connections keeps a flood from exhausting memory. */
    if (n >= SBX_MAX_CONNECTIONS || session_start(c) != 0) {
        sbx_warn("connection from %s refused: too many connections", c->addr);
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    flush(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    free(req);
    if (c->closing) return;
    struct dialer *dl = dialer_for(c->d, c->dial_key);
    if (status < 0) {
        sbx_debug("dial %s failed: %s", c->addr, uv_strerror(status));
        if (dl) {
            dl->failures++;
            dl->next_addr++;
        }
        conn_close(c);
        return;
    }
    c->connected = true;
    if (session_start(c) != 0) {
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    flush(c);
}

static void dial(struct sbx_daemon *d, struct dialer *dl)
{
    /* The next known address, round robin. */
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT address FROM peer_addresses WHERE device_key = ?1 "
                                                "ORDER BY last_ok_at DESC NULLS LAST, address LIMIT 1 OFFSET ?2");
    if (!st) return;
    int64_t count = 0;
    sqlite3_stmt *cnt = sbx_store_stmt(d->store, "SELECT count(*) FROM peer_addresses WHERE device_key = ?1");
    if (!cnt) return;
    sqlite3_bind_blob(cnt, 1, dl->key, SBX_KEY_BYTES, SQLITE_STATIC);
    if (sqlite3_step(cnt) == SQLITE_ROW) count = sqlite3_column_int64(cnt, 0);
    sqlite3_reset(cnt);
    if (count == 0) return;
    sqlite3_bind_blob(st, 1, dl->key, SBX_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)(dl->next_addr % (uint64_t)count));
    char addr[80] = "";
    if (sqlite3_step(st) == SQLITE_ROW) snprintf(addr, sizeof addr, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    struct sockaddr_storage ss;
    if (!addr[0] || sbx_addr_parse(addr, false, &ss) != 0) {
        dl->next_addr++;
        return;
    }
    /* Exponential backoff with jitter, so a library of devices that all
     * lost their network does not reconnect in lockstep. */
    unsigned shift = dl->failures < 6 ? dl->failures : 6;
    int64_t backoff = (int64_t)BACKOFF_MIN_MS << shift;
    if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
    backoff = backoff / 2 + (int64_t)randombytes_uniform((uint32_t)backoff);
    dl->retry_at = sbx_now_ms() + backoff;
    struct conn *c = conn_new(d, true);
    if (!c) return;
    memcpy(c->dial_key, dl->key, SBX_KEY_BYTES);
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    uv_connect_t *req = malloc(sizeof *req);
    if (!req) {
        conn_close(c);
        return;
    }
    req->data = c;
    if (uv_tcp_connect(req, &c->tcp, (struct sockaddr *)&ss, on_connect) != 0) {
        free(req);
        dl->failures++;
        dl->next_addr++;
        conn_close(c);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct sbx_daemon *d = t->data;
    int64_t now = sbx_now_ms();
    for (struct conn *c = d->conns, *next; c; c = next) {
        next = c->next;
        if (c->peer && !c->closing) {
            sbx_peer_tick(c->peer, now);
            /* A member removed since the session began is dropped. */
            const uint8_t *rk = sbx_peer_remote_key(c->peer);
            if (rk && sbx_peer_is_ready(c->peer) && !sbx_engine_is_member(d->engine, rk)) {
                sbx_peer_close(c->peer, "device removed from the library");
                c->want_close = true;
            }
            flush(c);
        }
    }
    sbx_transfer_tick(d);
    sbx_transfer_gc(d);
    upnp_map(d);
    for (struct conn *c = d->conns; c; c = c->next) flush(c);
    if (!sbx_engine_is_member(d->engine, d->id.pk)) return;
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT key FROM devices WHERE removed = 0 AND created_at IS NOT NULL "
                                                "AND key != ?1");
    if (!st) return;
    sqlite3_bind_blob(st, 1, d->id.pk, SBX_KEY_BYTES, SQLITE_STATIC);
    uint8_t keys[64][SBX_KEY_BYTES];
    size_t n = 0;
    while (n < 64 && sqlite3_step(st) == SQLITE_ROW) memcpy(keys[n++], sqlite3_column_blob(st, 0), SBX_KEY_BYTES);
    sqlite3_reset(st);
    for (size_t i = 0; i < n; i++) {
        if (find_session(d, keys[i], NULL)) continue;
        struct dialer *dl = dialer_for(d, keys[i]);
        if (dl && now >= dl->retry_at) dial(d, dl);
    }
}

static void on_entry(sbx_engine *e, const struct sbx_entry *entry)
{
    struct sbx_daemon *d = sbx_engine_get_data(e);
    (void)entry;
    for (struct conn *c = d->conns; c; c = c->next) {
        if (!c->peer || c->closing || !sbx_peer_is_ready(c->peer)) continue;
        sbx_peer_kick(c->peer);
    }
    /* Flushing from inside the engine's callback is fine: writes only
     * queue in libuv. */
    for (struct conn *c = d->conns; c; c = c->next) flush(c);
}

/* ---- LAN discovery and UPnP ---- */

static void on_announce(struct sbx_discovery *disc, const struct sbx_announce *a, const struct sockaddr *from)
{
    struct sbx_daemon *d = disc->data;
    if (memcmp(a->key, d->id.pk, 32) == 0 || !sbx_engine_is_member(d->engine, a->key) || a->n_ports == 0) return;
    char host[64] = "", addr[96];
    if (from->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)from, host, sizeof host);
        snprintf(addr, sizeof addr, "%s:%u", host, a->ports[0]);
    } else if (from->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)from, host, sizeof host);
        if (strchr(host, '%')) return; /* link-local with a zone: not dialable from HOST:PORT */
        snprintf(addr, sizeof addr, "[%s]:%u", host, a->ports[0]);
    } else {
        return;
    }
    sbx_net_add_address(d, a->key, addr, "lan");
    struct dialer *dl = dialer_for(d, a->key);
    if (dl && !find_session(d, a->key, NULL)) dl->retry_at = 0; /* try it now */
}

static void on_upnp(struct sbx_upnp_req *req)
{
    struct sbx_daemon *d = req->data;
    d->upnp_busy = false;
    if (d->stopping) return;
    if (req->status != 0) {
        sbx_warn("UPnP: %s", req->error[0] ? req->error : sbx_strerror(req->status));
        d->upnp_renew_at = sbx_now_ms() + 600000;
        return;
    }
    d->upnp_mapped = true;
    uint32_t lease = req->mapping.lease_s;
    d->upnp_renew_at = sbx_now_ms() + (lease ? (int64_t)lease * 500 : 1800000);
    if (req->mapping.external_ip[0])
        snprintf(d->upnp_external, sizeof d->upnp_external, "%s:%u", req->mapping.external_ip,
                 req->mapping.external_port);
    sbx_info("UPnP: port %u mapped to %s (%s)", req->mapping.internal_port,
             d->upnp_external[0] ? d->upnp_external : "unknown external address",
             req->mapping.reachable ? "public" : "not a public address");
}

static void upnp_map(struct sbx_daemon *d)
{
    if (!d->upnp_wanted || d->upnp_busy || !d->listen_port || sbx_now_ms() < d->upnp_renew_at) return;
    if (!d->upnp_req && !(d->upnp_req = calloc(1, sizeof *d->upnp_req))) return;
    d->upnp_req->data = d;
    d->upnp_req->op = SBX_UPNP_MAP;
    d->upnp_req->internal_port = d->listen_port;
    d->upnp_req->lease_s = 3600;
    if (sbx_upnp_queue(d->loop, d->upnp_req, on_upnp) == 0) d->upnp_busy = true;
}

/* After each round of I/O: apply what sessions received, in one transaction
 * per session, then write what that produced. */
static void on_check(uv_check_t *h)
{
    struct sbx_daemon *d = h->data;
    for (struct conn *c = d->conns; c; c = c->next) {
        if (!c->peer || c->closing || sbx_peer_is_closed(c->peer)) continue;
        if (sbx_peer_apply(c->peer) != 0) {
            sbx_peer_close(c->peer, "cannot store entries");
            c->want_close = true;
        }
        flush(c);
    }
}

int sbx_net_start(struct sbx_daemon *d, char *errmsg, size_t size)
{
    sbx_engine_set_entry_cb(d->engine, on_entry);
    uv_check_init(d->loop, &d->net_check);
    d->net_check.data = d;
    d->net_check_on = true;
    uv_check_start(&d->net_check, on_check);
    uv_timer_init(d->loop, &d->net_timer);
    d->net_timer.data = d;
    d->net_timer_on = true;
    uv_timer_start(&d->net_timer, on_tick, 50, TICK_MS);
    if (!d->listen[0]) return 0;
    struct sockaddr_storage ss;
    if (sbx_addr_parse(d->listen, false, &ss) != 0) {
        snprintf(errmsg, size, "--listen %s is not HOST:PORT (IPv4 or [IPv6])", d->listen);
        return SBX_EINVAL;
    }
    uv_tcp_init(d->loop, &d->listener);
    d->listener.data = d;
    d->listener_on = true;
    int rc = uv_tcp_bind(&d->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&d->listener, 64, on_connection);
    if (rc != 0) {
        snprintf(errmsg, size, "cannot listen on %s: %s", d->listen, uv_strerror(rc));
        return SBX_EIO;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&d->listener, (struct sockaddr *)&bound, &blen);
    d->listen_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                       : ((struct sockaddr_in *)&bound)->sin_port);
    sbx_info("listening for peers on %s", d->listen);
    if (d->discovery_on) {
        d->discovery = calloc(1, sizeof *d->discovery);
        struct sbx_discovery_config dc = {.id = &d->id, .library = sbx_engine_library(d->engine),
                                          .ports = &d->listen_port, .n_ports = 1};
        if (d->discovery) d->discovery->data = d;
        if (!d->discovery || sbx_discovery_start(d->discovery, d->loop, &dc, on_announce) != 0) {
            /* Discovery is a convenience: without it, peers are still found
             * through invitations and peer exchange. */
            sbx_warn("LAN discovery could not start; continuing without it");
            free(d->discovery);
            d->discovery = NULL;
        }
    }
    upnp_map(d);
    return 0;
}

void sbx_net_stop(struct sbx_daemon *d)
{
    if (d->discovery) {
        sbx_discovery_stop(d->discovery);
        free(d->discovery);
        d->discovery = NULL;
    }
    if (d->upnp_req) {
        if (d->upnp_busy) sbx_upnp_cancel(d->upnp_req);
        /* The mapping goes with the daemon (blocking, but bounded by the
         * router's answer; only the backup peer maps at all). */
        if (d->upnp_mapped && d->upnp_req->upnp) {
            char err[256];
            if (sbx_upnp_unmap(d->upnp_req->upnp, d->upnp_req->mapping.external_port, err, sizeof err) == 0)
                sbx_info("UPnP: mapping removed");
        }
        if (!d->upnp_busy) {
            sbx_upnp_free(d->upnp_req->upnp);
            free(d->upnp_req);
            d->upnp_req = NULL;
        }
    }
    if (d->listener_on) {
        uv_close((uv_handle_t *)&d->listener, NULL);
        d->listener_on = false;
    }
    if (d->net_timer_on) {
        uv_close((uv_handle_t *)&d->net_timer, NULL);
        d->net_timer_on = false;
    }
    if (d->net_check_on) {
        uv_close((uv_handle_t *)&d->net_check, NULL);
        d->net_check_on = false;
    }
    for (struct conn *c = d->conns; c; c = c->next) {
        if (c->peer && !sbx_peer_is_closed(c->peer)) sbx_peer_close(c->peer, "shutting down");
        c->want_close = true;
        c->inflight = 0;
        flush(c);
        conn_close(c);
    }
}

/* ---- status, invitations ---- */

json_t *sbx_net_peers_json(struct sbx_daemon *d)
{
    json_t *arr = json_array();
    sqlite3_stmt *st = sbx_store_stmt(d->store, "SELECT key, name, last_seen_at, (SELECT address FROM peer_addresses a "
                                                "WHERE a.device_key = devices.key ORDER BY last_ok_at DESC NULLS LAST "
                                                "LIMIT 1) FROM devices WHERE removed = 0 AND created_at IS NOT NULL "
                                                "AND key != ?1 ORDER BY name, key");
    if (!st) return arr;
    sqlite3_bind_blob(st, 1, d->id.pk, SBX_KEY_BYTES, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const uint8_t *key = sqlite3_column_blob(st, 0);
        char devid[SBX_DEVID_STRLEN + 1];
        sbx_devid_format(devid, key);
        struct conn *c = find_session(d, key, NULL);
        bool connected = c && c->peer && sbx_peer_is_ready(c->peer);
        json_t *o = json_pack("{s:s, s:s, s:b}", "device_id", devid, "name", (const char *)sqlite3_column_text(st, 1),
                              "connected", connected);
        const char *addr = connected ? c->addr : (const char *)sqlite3_column_text(st, 3);
        json_object_set_new(o, "address", addr ? json_string(addr) : json_null());
        json_object_set_new(o, "last_seen_at", sqlite3_column_type(st, 2) == SQLITE_NULL
                                                   ? json_null()
                                                   : sbx_json_time(sqlite3_column_int64(st, 2)));
        json_object_set_new(o, "entries_behind", connected ? json_integer((json_int_t)sbx_peer_entries_behind(c->peer))
                                                           : json_null());
        json_array_append_new(arr, o);
    }
    sqlite3_reset(st);
    return arr;
}

json_t *sbx_net_invite(struct sbx_daemon *d, int64_t ttl_s, char *err, size_t errsz)
{
    if (!d->listen_port) {
        snprintf(err, errsz, "this daemon does not listen for peers: start it with --listen HOST:PORT");
        return NULL;
    }
    int64_t now = sbx_now_ms();
    struct sbx_invite_slot *slot = NULL;
    for (size_t i = 0; i < SBX_ARRAY_LEN(d->invites); i++) {
        struct sbx_invite_slot *s = &d->invites[i];
        if (!s->active || s->used || now >= s->expires_at_ms) {
            slot = s;
            break;
        }
    }
    if (!slot) {
        snprintf(err, errsz, "too many open invitations; wait for one to expire");
        return NULL;
    }
    sbx_pair_invite inv;
    int rc = sbx_pair_invite_init(&inv, sbx_engine_library(d->engine), d->id.pk, (now / 1000) + ttl_s);
    /* Where this device can be reached: the listen address if it is a
     * specific one, else every non-internal interface address. */
    char addr[80];
    struct sockaddr_storage ss;
    bool any = sbx_addr_parse(d->listen, false, &ss) == 0 &&
               ((ss.ss_family == AF_INET && ((struct sockaddr_in *)&ss)->sin_addr.s_addr == 0) ||
                (ss.ss_family == AF_INET6 && memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, &in6addr_any, 16) == 0));
    if (rc == 0 && !any) {
        rc = sbx_pair_invite_add_addr(&inv, d->listen);
    } else if (rc == 0) {
        uv_interface_address_t *ifs = NULL;
        int n = 0;
        if (uv_interface_addresses(&ifs, &n) == 0) {
            for (int i = 0; i < n && inv.naddrs < SBX_MAX_PAIR_ADDRS; i++) {
                if (ifs[i].is_internal || ifs[i].address.address4.sin_family != AF_INET) continue;
                char host[64];
                uv_ip4_name(&ifs[i].address.address4, host, sizeof host);
                snprintf(addr, sizeof addr, "%s:%u", host, d->listen_port);
                sbx_pair_invite_add_addr(&inv, addr);
            }
            uv_free_interface_addresses(ifs, n);
        }
        if (inv.naddrs == 0) {
            snprintf(addr, sizeof addr, "127.0.0.1:%u", d->listen_port);
            sbx_pair_invite_add_addr(&inv, addr);
        }
    }
    if (rc == 0 && d->upnp_external[0] && inv.naddrs < SBX_MAX_PAIR_ADDRS)
        sbx_pair_invite_add_addr(&inv, d->upnp_external);
    char uri[SBX_MAX_PAIR_URI + 1];
    if (rc == 0) rc = sbx_pair_uri_format(uri, &inv);
    if (rc != 0) {
        sbx_pair_invite_wipe(&inv);
        snprintf(err, errsz, "cannot make an invitation: %s", sbx_strerror(rc));
        return NULL;
    }
    memset(slot, 0, sizeof *slot);
    slot->active = true;
    memcpy(slot->psk, inv.psk, 32);
    slot->expires_at_ms = (int64_t)inv.expires_s * 1000;
    sbx_pair_invite_wipe(&inv);
    json_t *r = json_pack("{s:s, s:o}", "uri", uri, "expires_at", sbx_json_time(slot->expires_at_ms));
    sodium_memzero(uri, sizeof uri);
    return r;
}
