/* LAN discovery: signed multicast announcements (see shoebox/discovery.h). */
#include "shoebox/discovery.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "SBXD"
#define OFF_VERSION 4u
#define OFF_NPORTS 5u
#define OFF_TAG 6u
#define OFF_KEY 22u
#define OFF_TIME 54u
#define OFF_NONCE 62u
#define OFF_PORTS 78u
#define SIG_BYTES 64u
#define DOMAIN_LEN (sizeof SBX_DISCOVERY_DOMAIN - 1)

_Static_assert(OFF_PORTS + 2u * SBX_MAX_DISCOVERY_PORTS + SIG_BYTES == SBX_MAX_DISCOVERY_PACKET,
               "SBX_MAX_DISCOVERY_PACKET matches the layout");
_Static_assert(SBX_DISCOVERY_MIN_PACKET == OFF_PORTS + 2u + SIG_BYTES, "one port at least");

/* ---- codec --------------------------------------------------------------- */

void sbx_discovery_tag(const uint8_t library[16], uint8_t tag[16])
{
    crypto_generichash_blake2b(tag, 16, (const uint8_t *)SBX_DISCOVERY_DOMAIN, DOMAIN_LEN,
                               library, 16);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* The signature covers the domain string followed by the signed part of the
 * packet, so a signature made for anything else (an entry, a share token)
 * can never pass as an announcement. */
static size_t signed_message(uint8_t msg[DOMAIN_LEN + SBX_MAX_DISCOVERY_PACKET], const uint8_t *pkt,
                             size_t body_len)
{
    memcpy(msg, SBX_DISCOVERY_DOMAIN, DOMAIN_LEN);
    memcpy(msg + DOMAIN_LEN, pkt, body_len);
    return DOMAIN_LEN + body_len;
}

int sbx_discovery_encode(uint8_t out[SBX_MAX_DISCOVERY_PACKET], size_t *out_len,
                         const struct sbx_identity *id, const uint8_t library[16],
                         const uint16_t *ports, size_t n_ports, int64_t now_ms,
                         const uint8_t nonce[16])
{
    if (!out || !out_len || !id || !library || !ports) return SBX_EINVAL;
    if (n_ports == 0 || n_ports > SBX_MAX_DISCOVERY_PORTS || now_ms < 0) return SBX_EINVAL;
    for (size_t i = 0; i < n_ports; i++)
        if (ports[i] == 0) return SBX_EINVAL;

    memcpy(out, MAGIC, 4);
    out[OFF_VERSION] = SBX_DISCOVERY_VERSION;
    out[OFF_NPORTS] = (uint8_t)n_ports;
    sbx_discovery_tag(library, out + OFF_TAG);
    memcpy(out + OFF_KEY, id->pk, 32);
    put_be64(out + OFF_TIME, (uint64_t)now_ms);
    if (nonce)
        memcpy(out + OFF_NONCE, nonce, 16);
    else
        randombytes_buf(out + OFF_NONCE, 16);
    for (size_t i = 0; i < n_ports; i++) {
        out[OFF_PORTS + 2 * i] = (uint8_t)(ports[i] >> 8);
        out[OFF_PORTS + 2 * i + 1] = (uint8_t)ports[i];
    }
    size_t body = OFF_PORTS + 2 * n_ports;
    uint8_t msg[DOMAIN_LEN + SBX_MAX_DISCOVERY_PACKET];
    size_t mlen = signed_message(msg, out, body);
    if (crypto_sign_detached(out + body, NULL, msg, mlen, id->sk) != 0) return SBX_ECRYPTO;
    *out_len = body + SIG_BYTES;
    return 0;
}

/* The checks that need no signature: layout, version, and (when `tag` is
 * given) the library. Returns the port count through *n_ports. */
static int check_layout(const uint8_t *buf, size_t len, size_t *n_ports)
{
    if (len > SBX_MAX_DISCOVERY_PACKET) return SBX_ETOOBIG;
    if (len < SBX_DISCOVERY_MIN_PACKET || memcmp(buf, MAGIC, 4) != 0) return SBX_EMALFORMED;
    if (buf[OFF_VERSION] != SBX_DISCOVERY_VERSION) return SBX_EUNSUPPORTED;
    size_t n = buf[OFF_NPORTS];
    if (n == 0 || n > SBX_MAX_DISCOVERY_PORTS) return SBX_EMALFORMED;
    if (len != OFF_PORTS + 2 * n + SIG_BYTES) return SBX_EMALFORMED;
    for (size_t i = 0; i < n; i++)
        if (buf[OFF_PORTS + 2 * i] == 0 && buf[OFF_PORTS + 2 * i + 1] == 0) return SBX_EMALFORMED;
    *n_ports = n;
    return 0;
}

static int check_time(uint64_t ts, int64_t now_ms, int64_t max_skew_ms)
{
    /* now_ms >= 0 and max_skew_ms <= SBX_MAX_DISCOVERY_SKEW_MS, so neither
     * sum below can wrap; the first test also keeps ts + skew from wrapping
     * in the second. */
    if (ts > (uint64_t)now_ms + (uint64_t)max_skew_ms) return SBX_EEXPIRED;
    if (ts + (uint64_t)max_skew_ms < (uint64_t)now_ms) return SBX_EEXPIRED;
    return 0;
}

static int decode_tagged(const uint8_t *buf, size_t len, const uint8_t tag[16], int64_t now_ms,
                         int64_t max_skew_ms, struct sbx_announce *out)
{
    size_t n = 0;
    int rc = check_layout(buf, len, &n);
    if (rc != 0) return rc;
    /* Tag and clock before the signature: a packet of another library, or
     * an old one, costs a compare instead of a ~75 us Ed25519 check. */
    if (sodium_memcmp(buf + OFF_TAG, tag, 16) != 0) return SBX_EREFUSED;
    uint64_t ts = get_be64(buf + OFF_TIME);
    rc = check_time(ts, now_ms, max_skew_ms);
    if (rc != 0) return rc;
    size_t body = OFF_PORTS + 2 * n;
    uint8_t msg[DOMAIN_LEN + SBX_MAX_DISCOVERY_PACKET];
    size_t mlen = signed_message(msg, buf, body);
    if (crypto_sign_verify_detached(buf + body, msg, mlen, buf + OFF_KEY) != 0) return SBX_ECRYPTO;

    memset(out, 0, sizeof *out);
    memcpy(out->key, buf + OFF_KEY, 32);
    memcpy(out->nonce, buf + OFF_NONCE, 16);
    out->timestamp_ms = (int64_t)ts; /* ts <= now + skew, which fits */
    out->n_ports = n;
    for (size_t i = 0; i < n; i++)
        out->ports[i] = (uint16_t)((buf[OFF_PORTS + 2 * i] << 8) | buf[OFF_PORTS + 2 * i + 1]);
    return 0;
}

static bool skew_ok(int64_t now_ms, int64_t max_skew_ms)
{
    return now_ms >= 0 && max_skew_ms >= 0 && max_skew_ms <= SBX_MAX_DISCOVERY_SKEW_MS;
}

int sbx_discovery_decode(const uint8_t *buf, size_t len, const uint8_t library[16],
                         int64_t now_ms, int64_t max_skew_ms, struct sbx_announce *out)
{
    if ((!buf && len) || !library || !out || !skew_ok(now_ms, max_skew_ms)) return SBX_EINVAL;
    if (!buf) return SBX_EMALFORMED;
    uint8_t tag[16];
    sbx_discovery_tag(library, tag);
    return decode_tagged(buf, len, tag, now_ms, max_skew_ms, out);
}

/* ---- replay cache -------------------------------------------------------- */

struct replay_entry {
    uint8_t key[32];
    uint8_t nonce[16];
    int64_t expires_ms;
};

struct sbx_discovery_replay {
    size_t cap, count;
    struct replay_entry e[];
};

int sbx_discovery_replay_new(sbx_discovery_replay **out, size_t capacity)
{
    if (!out || capacity > SBX_MAX_DISCOVERY_REPLAY) return SBX_EINVAL;
    if (capacity == 0) capacity = SBX_MAX_DISCOVERY_REPLAY;
    sbx_discovery_replay *r = calloc(1, sizeof *r + capacity * sizeof r->e[0]);
    if (!r) return SBX_ENOMEM;
    r->cap = capacity;
    *out = r;
    return 0;
}

void sbx_discovery_replay_free(sbx_discovery_replay *r)
{
    free(r);
}

int sbx_discovery_replay_check(sbx_discovery_replay *r, const struct sbx_announce *a,
                               int64_t max_skew_ms, int64_t now_ms)
{
    if (!r || !a || !skew_ok(now_ms, max_skew_ms) || a->timestamp_ms < 0) return SBX_EINVAL;
    /* One pass drops what expired (an expired entry's packet is refused by
     * the clock check already) and looks for the pair. */
    size_t i = 0, earliest = 0;
    bool found = false;
    while (i < r->count) {
        SBX_ASSERT(r->count <= r->cap);
        struct replay_entry *e = &r->e[i];
        if (e->expires_ms < now_ms) {
            r->e[i] = r->e[--r->count];
            continue;
        }
        if (memcmp(e->key, a->key, 32) == 0 && memcmp(e->nonce, a->nonce, 16) == 0) found = true;
        if (e->expires_ms < r->e[earliest].expires_ms) earliest = i;
        i++;
    }
    if (found) return SBX_EEXIST;
    if (r->count == r->cap) r->e[earliest] = r->e[--r->count];
    struct replay_entry *e = &r->e[r->count++];
    memcpy(e->key, a->key, 32);
    memcpy(e->nonce, a->nonce, 16);
    e->expires_ms = a->timestamp_ms + max_skew_ms;
    return 0;
}

bool sbx_discovery_replay_knows(const sbx_discovery_replay *r, const uint8_t key[32])
{
    if (!r || !key) return false;
    for (size_t i = 0; i < r->count; i++)
        if (memcmp(r->e[i].key, key, 32) == 0) return true;
    return false;
}

size_t sbx_discovery_replay_count(const sbx_discovery_replay *r)
{
    return r ? r->count : 0;
}

/* ---- libuv glue ---------------------------------------------------------- */

/* Interfaces looked at per announcement: far more than any host has, and a
 * bound on the work a tick does. */
#define MAX_IFACES 64
/* A newcomer's announcement is answered at once (so it does not wait a whole
 * interval to hear of us), but never more often than this. */
#define REPLY_GAP_MS 1000u

struct sbx_discovery_impl {
    struct sbx_discovery *pub; /* NULL once stopped: no more callbacks */
    uv_loop_t *loop;
    uv_udp_t udp4, udp6;
    uv_timer_t timer, reply;
    bool udp4_on, udp6_on, timer_on, reply_on;
    int open_handles;
    bool stopped;

    struct sbx_identity id;
    uint8_t library[16], tag[16];
    uint16_t ports[SBX_MAX_DISCOVERY_PORTS];
    size_t n_ports;
    struct sockaddr_in group4;
    struct sockaddr_in6 group6;
    char group4_str[INET_ADDRSTRLEN], group6_str[INET6_ADDRSTRLEN];
    char interface[IF_NAMESIZE];
    bool one_interface;
    uint64_t interval_ms;
    int64_t skew_ms;

    sbx_discovery_replay *replay;
    sbx_discovery_cb cb;
    struct sbx_discovery_stats stats;
    double tokens;
    uint64_t tokens_at;
    uint64_t last_announce;
    bool announced;
    uint8_t rbuf[SBX_MAX_DISCOVERY_PACKET + 1];
};

static void impl_free(struct sbx_discovery_impl *s)
{
    sbx_identity_wipe(&s->id);
    sbx_discovery_replay_free(s->replay);
    free(s);
}

static void on_closed(uv_handle_t *h)
{
    struct sbx_discovery_impl *s = h->data;
    SBX_ASSERT(s->open_handles > 0);
    if (--s->open_handles == 0 && s->stopped) impl_free(s);
}

static void close_handle(struct sbx_discovery_impl *s, uv_handle_t *h, bool *on)
{
    if (!*on) return;
    *on = false;
    h->data = s;
    uv_close(h, on_closed);
}

/* Closes whatever was opened; the memory goes with the last close callback
 * (or at once when nothing was opened). */
static void impl_close(struct sbx_discovery_impl *s)
{
    s->stopped = true;
    s->pub = NULL;
    close_handle(s, (uv_handle_t *)&s->udp4, &s->udp4_on);
    close_handle(s, (uv_handle_t *)&s->udp6, &s->udp6_on);
    close_handle(s, (uv_handle_t *)&s->timer, &s->timer_on);
    close_handle(s, (uv_handle_t *)&s->reply, &s->reply_on);
    if (s->open_handles == 0) impl_free(s);
}

/* The interfaces to use for one family: the named one, or every non-loopback
 * one, or (IPv4, on a host with no other) the loopback ones. Each name once. */
struct iface {
    char name[IF_NAMESIZE];
    char addr[INET6_ADDRSTRLEN + IF_NAMESIZE + 2]; /* what libuv wants for this family */
};

static size_t pick_interfaces(struct sbx_discovery_impl *s, int family, struct iface *out,
                              size_t cap)
{
    uv_interface_address_t *ifs = NULL;
    int n = 0;
    if (uv_interface_addresses(&ifs, &n) != 0) return 0;
    size_t got = 0;
    /* The loopback fallback is for IPv4 only: Linux has no IPv6 multicast
     * route on lo, so sending there only fails. */
    int passes = family == AF_INET ? 2 : 1;
    for (int pass = 0; pass < passes && got == 0; pass++) {
        bool want_internal = pass == 1;
        for (int i = 0; i < n && got < cap; i++) {
            uv_interface_address_t *f = &ifs[i];
            if (f->address.address4.sin_family != family) continue;
            if (s->one_interface) {
                if (strcmp(f->name, s->interface) != 0) continue;
            } else if ((bool)f->is_internal != want_internal) {
                continue;
            }
            bool dup = false;
            for (size_t j = 0; j < got; j++)
                if (strcmp(out[j].name, f->name) == 0) dup = true;
            if (dup) continue;
            struct iface *o = &out[got];
            snprintf(o->name, sizeof o->name, "%s", f->name);
            if (family == AF_INET) {
                uv_ip4_name(&f->address.address4, o->addr, sizeof o->addr);
            } else {
                /* libuv takes an IPv6 interface as an address whose scope
                 * (after '%') names the interface. */
                snprintf(o->addr, sizeof o->addr, "::%%%s", f->name);
            }
            got++;
        }
        if (s->one_interface) break;
    }
    uv_free_interface_addresses(ifs, n);
    return got;
}

static void send_on(struct sbx_discovery_impl *s, uv_udp_t *udp, const struct sockaddr *group,
                    const char *iface_addr)
{
    uint8_t pkt[SBX_MAX_DISCOVERY_PACKET];
    size_t len = 0;
    /* A fresh nonce per interface: the copies that reach a receiver over two
     * interfaces are two announcements, not a replay of one. */
    int rc = sbx_discovery_encode(pkt, &len, &s->id, s->library, s->ports, s->n_ports,
                                  sbx_now_ms(), NULL);
    SBX_ASSERT(rc == 0);
    if (uv_udp_set_multicast_interface(udp, iface_addr) != 0) {
        s->stats.send_errors++;
        return;
    }
    uv_buf_t b = uv_buf_init((char *)pkt, (unsigned)len);
    /* A synchronous send, so the multicast interface set just above is the
     * one it leaves on; a full socket buffer skips this round. */
    rc = uv_udp_try_send(udp, &b, 1, group);
    if (rc == (int)len)
        s->stats.sent++;
    else
        s->stats.send_errors++;
}

static void announce_family(struct sbx_discovery_impl *s, int family)
{
    struct iface ifs[MAX_IFACES];
    size_t n = pick_interfaces(s, family, ifs, MAX_IFACES);
    uv_udp_t *udp = family == AF_INET ? &s->udp4 : &s->udp6;
    const char *group = family == AF_INET ? s->group4_str : s->group6_str;
    const struct sockaddr *dst = family == AF_INET ? (const struct sockaddr *)&s->group4
                                                   : (const struct sockaddr *)&s->group6;
    for (size_t i = 0; i < n; i++) {
        /* Joining again is harmless (EADDRINUSE) and picks up interfaces
         * that appeared since the last round. */
        int rc = uv_udp_set_membership(udp, group, ifs[i].addr, UV_JOIN_GROUP);
        if (rc != 0 && rc != UV_EADDRINUSE) continue;
        send_on(s, udp, dst, ifs[i].addr);
    }
}

static void announce_all(struct sbx_discovery_impl *s)
{
    SBX_ASSERT(!s->stopped);
    announce_family(s, AF_INET);
    if (s->udp6_on) announce_family(s, AF_INET6);
    s->last_announce = uv_now(s->loop);
    s->announced = true;
}

static void on_timer(uv_timer_t *t)
{
    announce_all(t->data);
}

static void on_reply(uv_timer_t *t)
{
    announce_all(t->data);
}

/* A newcomer gets an answer now, at most one per REPLY_GAP_MS. */
static void schedule_reply(struct sbx_discovery_impl *s)
{
    if (uv_is_active((uv_handle_t *)&s->reply)) return;
    uint64_t now = uv_now(s->loop), due = s->last_announce + REPLY_GAP_MS;
    uv_timer_start(&s->reply, on_reply, s->announced && due > now ? due - now : 0, 0);
}

/* Token bucket for signature checks (see SBX_MAX_DISCOVERY_VERIFY_PER_S). */
static bool take_token(struct sbx_discovery_impl *s)
{
    uint64_t now = uv_now(s->loop);
    s->tokens += (double)(now - s->tokens_at) * SBX_MAX_DISCOVERY_VERIFY_PER_S / 1000.0;
    if (s->tokens > SBX_MAX_DISCOVERY_VERIFY_PER_S) s->tokens = SBX_MAX_DISCOVERY_VERIFY_PER_S;
    s->tokens_at = now;
    if (s->tokens < 1.0) return false;
    s->tokens -= 1.0;
    return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct sbx_discovery_impl *s = h->data;
    /* One byte more than the largest packet: a longer datagram then shows
     * as too long (or partial) instead of being cut to a valid length. */
    *buf = uv_buf_init((char *)s->rbuf, sizeof s->rbuf);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    struct sbx_discovery_impl *s = h->data;
    if (s->stopped || nread <= 0 || !from) return; /* errors and "nothing more" */
    s->stats.received++;
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t len = (size_t)nread, n = 0;
    if ((flags & UV_UDP_PARTIAL) || check_layout(p, len, &n) != 0) {
        s->stats.malformed++;
        return;
    }
    if (sodium_memcmp(p + OFF_TAG, s->tag, 16) != 0) {
        s->stats.other_library++;
        return;
    }
    /* Our own announcements come back through the multicast loop. */
    if (memcmp(p + OFF_KEY, s->id.pk, 32) == 0) {
        s->stats.own++;
        return;
    }
    if (!take_token(s)) {
        s->stats.throttled++;
        return;
    }
    struct sbx_announce a;
    int64_t now = sbx_now_ms();
    int rc = decode_tagged(p, len, s->tag, now, s->skew_ms, &a);
    if (rc == SBX_EEXPIRED) {
        s->stats.stale++;
        return;
    }
    if (rc == SBX_ECRYPTO) {
        s->stats.bad_signature++;
        return;
    }
    if (rc != 0) {
        s->stats.malformed++;
        return;
    }
    bool known = sbx_discovery_replay_knows(s->replay, a.key);
    if (sbx_discovery_replay_check(s->replay, &a, s->skew_ms, now) != 0) {
        s->stats.replayed++;
        return;
    }
    s->stats.accepted++;
    if (!known) schedule_reply(s);
    s->cb(s->pub, &a, from);
}

static int map_uv(int rc)
{
    if (rc == UV_EADDRINUSE || rc == UV_EBUSY) return SBX_EBUSY;
    if (rc == UV_EACCES || rc == UV_EPERM) return SBX_EPERM;
    if (rc == UV_ENOMEM) return SBX_ENOMEM;
    return SBX_EIO;
}

/* Socket options every discovery socket gets: multicast loop on, so that two
 * daemons on one host hear each other; one hop, so announcements stay on the
 * link. */
static int open_socket(struct sbx_discovery_impl *s, uv_udp_t *udp, bool *on, int family,
                       uint16_t port)
{
    int rc = uv_udp_init_ex(s->loop, udp, (unsigned)family);
    if (rc != 0) return map_uv(rc);
    udp->data = s;
    *on = true;
    s->open_handles++;
#ifdef IP_MULTICAST_ALL
    if (family == AF_INET) {
        /* Linux by default hands a socket bound to INADDR_ANY the datagrams
         * of every group any socket on the host joined; only ours, please. */
        uv_os_fd_t fd;
        int zero = 0;
        if (uv_fileno((uv_handle_t *)udp, &fd) == 0)
            (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero);
    }
#endif
    struct sockaddr_storage any;
    unsigned bflags = UV_UDP_REUSEADDR;
    if (family == AF_INET) {
        uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)&any);
    } else {
        uv_ip6_addr("::", port, (struct sockaddr_in6 *)&any);
        bflags |= UV_UDP_IPV6ONLY;
    }
    rc = uv_udp_bind(udp, (const struct sockaddr *)&any, bflags);
    if (rc == 0) rc = uv_udp_set_multicast_loop(udp, 1);
    if (rc == 0) rc = uv_udp_set_multicast_ttl(udp, 1);
    if (rc == 0) rc = uv_udp_recv_start(udp, on_alloc, on_recv);
    return rc == 0 ? 0 : map_uv(rc);
}

int sbx_discovery_start(struct sbx_discovery *d, uv_loop_t *loop,
                        const struct sbx_discovery_config *cfg, sbx_discovery_cb cb)
{
    if (!d || !loop || !cfg || !cb || !cfg->id || !cfg->library || !cfg->ports) return SBX_EINVAL;
    if (cfg->n_ports == 0 || cfg->n_ports > SBX_MAX_DISCOVERY_PORTS) return SBX_EINVAL;
    for (size_t i = 0; i < cfg->n_ports; i++)
        if (cfg->ports[i] == 0) return SBX_EINVAL;
    if (cfg->max_skew_ms < 0 || cfg->max_skew_ms > SBX_MAX_DISCOVERY_SKEW_MS) return SBX_EINVAL;
    if (cfg->interval_ms > 24ull * 3600 * 1000) return SBX_EINVAL;
    if (cfg->interface &&
        (strlen(cfg->interface) >= IF_NAMESIZE || if_nametoindex(cfg->interface) == 0))
        return SBX_ENOENT;

    struct sbx_discovery_impl *s = calloc(1, sizeof *s);
    if (!s) return SBX_ENOMEM;
    int rc;
    s->loop = loop;
    s->cb = cb;
    s->id = *cfg->id;
    memcpy(s->library, cfg->library, 16);
    sbx_discovery_tag(s->library, s->tag);
    memcpy(s->ports, cfg->ports, cfg->n_ports * sizeof cfg->ports[0]);
    s->n_ports = cfg->n_ports;
    s->interval_ms = cfg->interval_ms ? cfg->interval_ms : SBX_DISCOVERY_DEFAULT_INTERVAL_MS;
    s->skew_ms = cfg->max_skew_ms ? cfg->max_skew_ms : SBX_DISCOVERY_DEFAULT_SKEW_MS;
    if (cfg->interface) {
        snprintf(s->interface, sizeof s->interface, "%s", cfg->interface);
        s->one_interface = true;
    }
    s->tokens = SBX_MAX_DISCOVERY_VERIFY_PER_S;
    s->tokens_at = uv_now(loop);
    uint16_t port = cfg->udp_port ? cfg->udp_port : SBX_DISCOVERY_PORT;
    snprintf(s->group4_str, sizeof s->group4_str, "%s",
             cfg->group4 ? cfg->group4 : SBX_DISCOVERY_GROUP4);
    snprintf(s->group6_str, sizeof s->group6_str, "%s",
             cfg->group6 ? cfg->group6 : SBX_DISCOVERY_GROUP6);
    if (uv_ip4_addr(s->group4_str, port, &s->group4) != 0 ||
        !IN_MULTICAST(ntohl(s->group4.sin_addr.s_addr)) ||
        uv_ip6_addr(s->group6_str, port, &s->group6) != 0 ||
        !IN6_IS_ADDR_MULTICAST(&s->group6.sin6_addr)) {
        rc = SBX_EINVAL;
        goto fail;
    }
    rc = sbx_discovery_replay_new(&s->replay, 0);
    if (rc != 0) goto fail;

    rc = open_socket(s, &s->udp4, &s->udp4_on, AF_INET, port);
    if (rc != 0) goto fail;
    if (!cfg->ipv4_only && open_socket(s, &s->udp6, &s->udp6_on, AF_INET6, port) != 0) {
        /* IPv6 is a bonus: a host without it still discovers over IPv4. */
        close_handle(s, (uv_handle_t *)&s->udp6, &s->udp6_on);
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->timer_on = true;
    s->open_handles++;
    uv_timer_init(loop, &s->reply);
    s->reply.data = s;
    s->reply_on = true;
    s->open_handles++;
    /* The first announcement goes out on the loop's first turn, like every
     * later one, so a send error can never fail the start. */
    uv_timer_start(&s->timer, on_timer, 0, s->interval_ms);

    s->pub = d;
    d->impl = s;
    return 0;

fail:
    impl_close(s);
    return rc;
}

int sbx_discovery_announce(struct sbx_discovery *d)
{
    if (!d || !d->impl || d->impl->stopped) return SBX_ESTATE;
    announce_all(d->impl);
    return 0;
}

void sbx_discovery_stop(struct sbx_discovery *d)
{
    if (!d || !d->impl) return;
    struct sbx_discovery_impl *s = d->impl;
    d->impl = NULL;
    impl_close(s);
}

void sbx_discovery_get_stats(const struct sbx_discovery *d, struct sbx_discovery_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!d || !d->impl) return;
    *out = d->impl->stats;
    out->ipv6 = d->impl->udp6_on;
}
