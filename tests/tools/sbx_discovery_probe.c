/* sbx_discovery_probe: runs LAN discovery as a fresh random device key and
 * reports the other devices it hears, for the network-namespace tests.
 *
 *   sbx_discovery_probe --library HEX32 [--port UDP] [--tcp-port N]
 *       [--interface IF] [--interval MS] [--timeout MS] [--linger MS]
 *       [--want 4|6|any|both] [--ipv4-only]
 *
 * Prints "key HEX" first, then "found HEX FAMILY ADDRESS TCP-PORTS" once per
 * (key, family), and "stats ..." at the end. Exits 0 once another key was
 * heard over the wanted family ("both": over IPv4 and over IPv6), after
 * lingering a little so that the other side hears us too; exits 1 on the
 * time-out, 2 on bad usage or a failed start. */
#include "shoebox/discovery.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 32

struct probe {
    struct sbx_discovery d;
    uv_loop_t *loop;
    uv_timer_t timeout, linger;
    struct sbx_identity id;
    const char *want;
    uint64_t linger_ms;
    bool got4, got6, done, timed_out;
    struct {
        uint8_t key[32];
        int family;
    } seen[MAX_SEEN];
    size_t n_seen;
};

static void usage(void)
{
    fprintf(stderr, "usage: sbx_discovery_probe --library HEX32 [--port UDP] [--tcp-port N]\n"
                    "       [--interface IF] [--interval MS] [--timeout MS] [--linger MS]\n"
                    "       [--want 4|6|any|both] [--ipv4-only]\n");
    exit(2);
}

static void print_stats(struct probe *p)
{
    struct sbx_discovery_stats s;
    sbx_discovery_get_stats(&p->d, &s);
    printf("stats sent=%llu send_errors=%llu received=%llu accepted=%llu own=%llu "
           "other_library=%llu malformed=%llu stale=%llu bad_signature=%llu replayed=%llu "
           "throttled=%llu ipv6=%d\n",
           (unsigned long long)s.sent, (unsigned long long)s.send_errors,
           (unsigned long long)s.received, (unsigned long long)s.accepted,
           (unsigned long long)s.own, (unsigned long long)s.other_library,
           (unsigned long long)s.malformed, (unsigned long long)s.stale,
           (unsigned long long)s.bad_signature, (unsigned long long)s.replayed,
           (unsigned long long)s.throttled, s.ipv6);
}

static void finish(struct probe *p)
{
    print_stats(p);
    sbx_discovery_stop(&p->d);
    uv_close((uv_handle_t *)&p->timeout, NULL);
    uv_close((uv_handle_t *)&p->linger, NULL);
}

static void on_linger(uv_timer_t *t)
{
    finish(t->data);
}

static void on_timeout(uv_timer_t *t)
{
    struct probe *p = t->data;
    p->timed_out = true;
    printf("timeout\n");
    finish(p);
}

static bool satisfied(const struct probe *p)
{
    if (strcmp(p->want, "4") == 0) return p->got4;
    if (strcmp(p->want, "6") == 0) return p->got6;
    if (strcmp(p->want, "both") == 0) return p->got4 && p->got6;
    return p->got4 || p->got6;
}

static void on_found(struct sbx_discovery *d, const struct sbx_announce *a, const struct sockaddr *from)
{
    struct probe *p = d->data;
    for (size_t i = 0; i < p->n_seen; i++)
        if (p->seen[i].family == from->sa_family && memcmp(p->seen[i].key, a->key, 32) == 0)
            return;
    if (p->n_seen < MAX_SEEN) {
        memcpy(p->seen[p->n_seen].key, a->key, 32);
        p->seen[p->n_seen].family = from->sa_family;
        p->n_seen++;
    }
    char hex[65], addr[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = "?";
    sbx_hex_encode(hex, a->key, 32);
    if (from->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)from, addr, sizeof addr);
        p->got4 = true;
    } else if (from->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)from;
        uv_ip6_name(s6, addr, sizeof addr);
        char ifname[IF_NAMESIZE];
        if (s6->sin6_scope_id && if_indextoname(s6->sin6_scope_id, ifname)) {
            size_t n = strlen(addr);
            snprintf(addr + n, sizeof addr - n, "%%%s", ifname);
        }
        p->got6 = true;
    }
    printf("found %s %s %s", hex, from->sa_family == AF_INET ? "ipv4" : "ipv6", addr);
    for (size_t i = 0; i < a->n_ports; i++) printf("%s%u", i ? "," : " ", a->ports[i]);
    printf("\n");
    if (!p->done && satisfied(p)) {
        p->done = true;
        uv_timer_stop(&p->timeout);
        uv_timer_start(&p->linger, on_linger, p->linger_ms, 0);
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (sodium_init() < 0) return 2;
    struct probe p;
    memset(&p, 0, sizeof p);
    p.want = "any";
    p.linger_ms = 1500;
    uint8_t library[16];
    bool have_library = false;
    uint16_t tcp_port = 22000;
    uint64_t timeout_ms = 10000;
    struct sbx_discovery_config cfg = {.library = library, .ports = &tcp_port, .n_ports = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--ipv4-only") == 0) {
            cfg.ipv4_only = true;
            continue;
        }
        if (!v) usage();
        i++;
        if (strcmp(a, "--library") == 0) {
            if (strlen(v) != 32 || sbx_hex_decode(library, 16, v) != 0) usage();
            have_library = true;
        } else if (strcmp(a, "--port") == 0) {
            cfg.udp_port = (uint16_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--tcp-port") == 0) {
            tcp_port = (uint16_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--interface") == 0) {
            cfg.interface = v;
        } else if (strcmp(a, "--interval") == 0) {
            cfg.interval_ms = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--timeout") == 0) {
            timeout_ms = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--linger") == 0) {
            p.linger_ms = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--want") == 0) {
            p.want = v;
        } else {
            usage();
        }
    }
    if (!have_library) usage();

    crypto_sign_keypair(p.id.pk, p.id.sk);
    cfg.id = &p.id;
    char hex[65];
    sbx_hex_encode(hex, p.id.pk, 32);
    printf("key %s\n", hex);

    p.loop = uv_default_loop();
    p.d.data = &p;
    int rc = sbx_discovery_start(&p.d, p.loop, &cfg, on_found);
    if (rc != 0) {
        fprintf(stderr, "sbx_discovery_probe: cannot start discovery: %s\n", sbx_strerror(rc));
        return 2;
    }
    uv_timer_init(p.loop, &p.timeout);
    uv_timer_init(p.loop, &p.linger);
    p.timeout.data = p.linger.data = &p;
    uv_timer_start(&p.timeout, on_timeout, timeout_ms, 0);
    uv_run(p.loop, UV_RUN_DEFAULT);
    uv_loop_close(p.loop);
    sbx_identity_wipe(&p.id);
    return p.timed_out ? 1 : 0;
}
