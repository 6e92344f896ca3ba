/* UPnP IGD port mapping on miniupnpc (see shoebox/upnp.h). */
#include "shoebox/upnp.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <arpa/inet.h>
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* UPnP error codes (UPnP IGD WANIPConnection:1, section 2.4.16) that the
 * mapping logic acts on. */
#define UPNP_ACTION_FAILED 501
#define UPNP_NOT_AUTHORIZED 606
#define UPNP_NO_SUCH_ENTRY 714
#define UPNP_CONFLICT 718
#define UPNP_SAME_PORT_REQUIRED 724
#define UPNP_ONLY_PERMANENT_LEASES 725
#define UPNP_NO_PORT_MAPS_AVAILABLE 728
#define UPNP_CONFLICT_OTHER_MECHANISM 729

struct sbx_upnp {
    struct UPNPUrls urls;
    struct IGDdatas data;
    char lanaddr[SBX_UPNP_ADDR_MAX];
    bool connected;
};

static void say(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errsz, const char *fmt, ...)
{
    if (!err || errsz == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* ---- addresses ------------------------------------------------------------ */

bool sbx_upnp_ip_is_public(const char *ip)
{
    struct in_addr a;
    if (!ip || inet_pton(AF_INET, ip, &a) != 1) return false;
    uint32_t v = ntohl(a.s_addr);
    /* Prefix and length of every block that is not reachable from the
     * Internet (IANA IPv4 special-purpose registry). */
    static const struct { uint32_t net; int bits; } reserved[] = {
        {0x00000000, 8},  /* "this network" */
        {0x0a000000, 8},  /* private */
        {0x64400000, 10}, /* shared address space (carrier-grade NAT) */
        {0x7f000000, 8},  /* loopback */
        {0xa9fe0000, 16}, /* link-local */
        {0xac100000, 12}, /* private */
        {0xc0000000, 24}, /* IETF protocol assignments */
        {0xc0000200, 24}, /* TEST-NET-1 */
        {0xc0586300, 24}, /* 6to4 relay anycast (deprecated) */
        {0xc0a80000, 16}, /* private */
        {0xc6120000, 15}, /* benchmarking */
        {0xc6336400, 24}, /* TEST-NET-2 */
        {0xcb007100, 24}, /* TEST-NET-3 */
        {0xe0000000, 3},  /* multicast, reserved, broadcast */
    };
    for (size_t i = 0; i < SBX_ARRAY_LEN(reserved); i++) {
        uint32_t mask = 0xffffffffu << (32 - reserved[i].bits);
        if ((v & mask) == reserved[i].net) return false;
    }
    return true;
}

/* ---- discovery ------------------------------------------------------------ */

int sbx_upnp_discover(sbx_upnp **out, const struct sbx_upnp_options *opt, char *err, size_t errsz)
{
    if (!out) return SBX_EINVAL;
    *out = NULL;
    int delay = opt && opt->discover_ms ? opt->discover_ms : SBX_UPNP_DEFAULT_DISCOVER_MS;
    if (delay < SBX_MIN_UPNP_DISCOVER_MS) delay = SBX_MIN_UPNP_DISCOVER_MS;
    if (delay > SBX_MAX_UPNP_DISCOVER_MS) delay = SBX_MAX_UPNP_DISCOVER_MS;
    const char *mif = opt ? opt->multicast_if : NULL;

    if (mif && mif[0] == '\0') mif = NULL;
    if (mif) {
        /* miniupnpc would print an ioctl error and search on the default
         * interface instead: refuse a name that is not there. */
        struct in_addr a;
        if (inet_pton(AF_INET, mif, &a) != 1 && if_nametoindex(mif) == 0) {
            say(err, errsz, "no network interface or IPv4 address %s for the UPnP search", mif);
            return SBX_ENOENT;
        }
    }

    /* Every M-SEARCH goes out at once and the answers are collected in one
     * wait (searchalltypes = 1): upnpDiscover would instead wait the whole
     * delay once per type, four times in all, when no router answers. */
    static const char *const types[] = {
        "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
        "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "urn:schemas-upnp-org:service:WANPPPConnection:1",
        NULL,
    };
    int derr = UPNPDISCOVER_SUCCESS;
    /* IPv4, any local port, TTL 2 (miniupnpc's advice). */
    struct UPNPDev *devs =
        upnpDiscoverDevices(types, delay, mif, NULL, UPNP_LOCAL_PORT_ANY, 0, 2, &derr, 1);
    if (!devs) {
        if (derr == UPNPDISCOVER_MEMORY_ERROR) {
            say(err, errsz, "out of memory during UPnP discovery");
            return SBX_ENOMEM;
        }
        if (derr != UPNPDISCOVER_SUCCESS) {
            say(err, errsz, "cannot send the UPnP search%s%s (miniupnpc error %d)",
                mif ? " on " : "", mif ? mif : "", derr);
            return SBX_EIO;
        }
        say(err, errsz, "no UPnP router answered within %d ms%s%s", delay, mif ? " on " : "",
            mif ? mif : "");
        return SBX_ENOENT;
    }

    sbx_upnp *u = calloc(1, sizeof *u);
    if (!u) {
        freeUPNPDevlist(devs);
        say(err, errsz, "out of memory");
        return SBX_ENOMEM;
    }
    int rc = UPNP_GetValidIGD(devs, &u->urls, &u->data, u->lanaddr, (int)sizeof u->lanaddr);
    if (rc == 1 || rc == 2) {
        u->connected = rc == 1;
        freeUPNPDevlist(devs);
        *out = u;
        return 0;
    }
    say(err, errsz, "UPnP devices answered (first: %s) but none is an Internet gateway",
        devs->descURL ? devs->descURL : "?");
    freeUPNPDevlist(devs);
    if (rc != 0) FreeUPNPUrls(&u->urls);
    free(u);
    return SBX_ENOENT;
}

void sbx_upnp_free(sbx_upnp *u)
{
    if (!u) return;
    FreeUPNPUrls(&u->urls);
    free(u);
}

const char *sbx_upnp_lan_addr(const sbx_upnp *u)
{
    return u ? u->lanaddr : "";
}

const char *sbx_upnp_control_url(const sbx_upnp *u)
{
    return u && u->urls.controlURL ? u->urls.controlURL : "";
}

bool sbx_upnp_connected(const sbx_upnp *u)
{
    return u && u->connected;
}

/* ---- commands ------------------------------------------------------------- */

/* miniupnpc returns negative codes of its own when the HTTP exchange failed
 * and positive UPnP error codes when the router refused. */
static const char *upnp_text(int rc)
{
    const char *t = strupnperror(rc);
    if (t) return t;
    return rc < 0 ? "no valid answer from the router" : "UPnP error";
}

static int map_rc(int rc)
{
    if (rc < 0) return SBX_EIO;
    if (rc == UPNP_NOT_AUTHORIZED || rc == UPNP_CONFLICT_OTHER_MECHANISM) return SBX_EPERM;
    if (rc == UPNP_NO_SUCH_ENTRY) return SBX_ENOENT;
    if (rc == UPNP_CONFLICT || rc == UPNP_NO_PORT_MAPS_AVAILABLE) return SBX_EBUSY;
    return SBX_EPROTO;
}

int sbx_upnp_external_ip(sbx_upnp *u, char out[SBX_UPNP_ADDR_MAX], char *err, size_t errsz)
{
    if (!u || !out) return SBX_EINVAL;
    /* miniupnpc copies at most 16 bytes and may leave the buffer untouched
     * on error: start from an empty string. */
    char ip[SBX_UPNP_ADDR_MAX] = "";
    int rc = UPNP_GetExternalIPAddress(u->urls.controlURL, u->data.first.servicetype, ip);
    ip[sizeof ip - 1] = '\0';
    snprintf(out, SBX_UPNP_ADDR_MAX, "%s", ip);
    if (rc != UPNPCOMMAND_SUCCESS) {
        say(err, errsz, "the router at %s did not give its external address: %s (%d)",
            sbx_upnp_control_url(u), upnp_text(rc), rc);
        return map_rc(rc);
    }
    if (!sbx_upnp_ip_is_public(ip)) {
        if (ip[0])
            say(err, errsz,
                "the router has no public IPv4 address (it says %s): it is behind another NAT, "
                "so a port mapping on it cannot make this device reachable",
                ip);
        else
            say(err, errsz,
                "the router has no public IPv4 address (it gives none): it may be behind "
                "another NAT, so a port mapping on it cannot make this device reachable");
        return SBX_ESTATE;
    }
    return 0;
}

static int add_one(sbx_upnp *u, uint16_t ext, uint16_t in, uint32_t lease)
{
    char e[8], i[8], l[16];
    snprintf(e, sizeof e, "%u", ext);
    snprintf(i, sizeof i, "%u", in);
    snprintf(l, sizeof l, "%u", lease);
    return UPNP_AddPortMapping(u->urls.controlURL, u->data.first.servicetype, e, i, u->lanaddr,
                               SBX_UPNP_DESCRIPTION, "TCP", NULL, l);
}

int sbx_upnp_map(sbx_upnp *u, uint16_t internal_port, uint32_t lease_s,
                 struct sbx_upnp_mapping *out, char *err, size_t errsz)
{
    if (!u || !out || internal_port == 0) return SBX_EINVAL;
    memset(out, 0, sizeof *out);
    out->internal_port = internal_port;
    uint32_t lease = lease_s ? lease_s : SBX_UPNP_DEFAULT_LEASE_S;

    /* The external address first: it is what the caller publishes, and it
     * explains a refusal below when the router sits behind another NAT. */
    char iperr[256] = "";
    int iprc = sbx_upnp_external_ip(u, out->external_ip, iperr, sizeof iperr);
    out->reachable = iprc == 0;

    int rc = 0;
    uint16_t ext = internal_port, last = internal_port;
    bool permanent_tried = false;
    for (unsigned tries = 0; tries < SBX_MAX_UPNP_PORT_TRIES;) {
        last = ext;
        rc = add_one(u, ext, internal_port, lease);
        if (rc == UPNPCOMMAND_SUCCESS) {
            out->external_port = ext;
            out->lease_s = lease;
            return 0;
        }
        if (rc == UPNP_ONLY_PERMANENT_LEASES && !permanent_tried) {
            /* Some routers grant only permanent mappings (IGD:1 allows it);
             * the caller must then delete it on shutdown. */
            permanent_tried = true;
            lease = 0;
            continue;
        }
        if (rc != UPNP_CONFLICT || ext == 65535) break;
        /* Another host holds this port: try the next. */
        ext++;
        tries++;
    }

    int code = map_rc(rc);
    if (rc == UPNP_CONFLICT) {
        say(err, errsz, "the router's TCP ports %u-%u are all mapped to other hosts",
            internal_port, last);
    } else if (rc == UPNP_SAME_PORT_REQUIRED) {
        code = SBX_EBUSY;
        say(err, errsz,
            "TCP port %u is mapped to another host and the router only maps a port to the same "
            "port",
            internal_port);
    } else if (iprc == SBX_ESTATE && rc == UPNP_ACTION_FAILED) {
        /* A router without a public address refuses every mapping with a
         * bare 501 (miniupnpd does): say why. */
        code = SBX_ESTATE;
        say(err, errsz, "the router refused to map TCP port %u (%s, %d): %s", last,
            upnp_text(rc), rc, iperr);
    } else {
        say(err, errsz, "the router at %s refused to map TCP port %u to %s:%u: %s (%d)%s%s",
            sbx_upnp_control_url(u), last, u->lanaddr, internal_port, upnp_text(rc), rc,
            iprc == SBX_ESTATE ? "; besides, " : "", iprc == SBX_ESTATE ? iperr : "");
    }
    return code;
}

int sbx_upnp_unmap(sbx_upnp *u, uint16_t external_port, char *err, size_t errsz)
{
    if (!u || external_port == 0) return SBX_EINVAL;
    char e[8];
    snprintf(e, sizeof e, "%u", external_port);
    int rc = UPNP_DeletePortMapping(u->urls.controlURL, u->data.first.servicetype, e, "TCP", NULL);
    if (rc == UPNPCOMMAND_SUCCESS) return 0;
    say(err, errsz, "the router did not delete the mapping of TCP port %u: %s (%d)", external_port,
        upnp_text(rc), rc);
    return map_rc(rc);
}

/* ---- thread pool ------------------------------------------------------------ */

static int run_op(struct sbx_upnp_req *r)
{
    return r->op == SBX_UPNP_MAP
               ? sbx_upnp_map(r->upnp, r->internal_port, r->lease_s, &r->mapping, r->error,
                              sizeof r->error)
               : sbx_upnp_unmap(r->upnp, r->external_port, r->error, sizeof r->error);
}

static void on_work(uv_work_t *w)
{
    struct sbx_upnp_req *r = w->data;
    bool fresh = false;
    if (!r->upnp) {
        r->status = sbx_upnp_discover(&r->upnp, &r->options, r->error, sizeof r->error);
        if (r->status != 0) return;
        fresh = true;
    }
    r->status = run_op(r);
    if (r->status == SBX_EIO && !fresh) {
        /* A router that stopped answering may have rebooted onto another
         * port or address: find it again, once. */
        sbx_upnp *again = NULL;
        char derr[sizeof r->error];
        if (sbx_upnp_discover(&again, &r->options, derr, sizeof derr) != 0) return;
        sbx_upnp_free(r->upnp);
        r->upnp = again;
        r->status = run_op(r);
    }
    if (r->status == 0) r->error[0] = '\0';
}

static void on_after(uv_work_t *w, int status)
{
    struct sbx_upnp_req *r = w->data;
    if (status == UV_ECANCELED) {
        r->status = SBX_EAGAIN;
        snprintf(r->error, sizeof r->error, "cancelled");
    }
    r->cb(r);
}

int sbx_upnp_queue(uv_loop_t *loop, struct sbx_upnp_req *req, sbx_upnp_cb cb)
{
    if (!loop || !req || !cb) return SBX_EINVAL;
    if (req->op == SBX_UPNP_MAP) {
        if (req->internal_port == 0) return SBX_EINVAL;
    } else if (req->op == SBX_UPNP_UNMAP) {
        if (!req->upnp || req->external_port == 0) return SBX_EINVAL;
    } else {
        return SBX_EINVAL;
    }
    req->status = 0;
    req->error[0] = '\0';
    memset(&req->mapping, 0, sizeof req->mapping);
    req->cb = cb;
    req->work.data = req;
    int rc = uv_queue_work(loop, &req->work, on_work, on_after);
    return rc == 0 ? 0 : SBX_EINVAL;
}

int sbx_upnp_cancel(struct sbx_upnp_req *req)
{
    if (!req) return SBX_EINVAL;
    return uv_cancel((uv_req_t *)&req->work) == 0 ? 0 : SBX_EBUSY;
}
