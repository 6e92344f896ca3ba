/* UPnP IGD port mapping with miniupnpc: the always-on device asks the home
 * router to forward a public TCP port to its listen port, so devices away
 * from home can reach it.
 *
 * The sbx_upnp_* calls block (SSDP discovery waits up to its delay; each
 * SOAP call is an HTTP request to the router, which miniupnpc bounds with
 * socket time-outs of a few seconds): run them off the loop. sbx_upnp_queue
 * does that on libuv's thread pool and calls back on the loop.
 *
 * A typical daemon:
 *   start:     queue MAP (upnp = NULL: the job discovers the router and
 *              leaves the handle in req.upnp); on success publish
 *              mapping.external_ip:mapping.external_port in invitations.
 *   renewal:   every lease/2, queue MAP again with the same handle.
 *   shutdown:  queue UNMAP of mapping.external_port, then sbx_upnp_free.
 *
 * One sbx_upnp is used by one thread at a time: never queue two requests
 * that share a handle. */
#ifndef SHOEBOX_UPNP_H
#define SHOEBOX_UPNP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "shoebox/limits.h"

/* The description a mapping carries on the router's status page. */
#define SBX_UPNP_DESCRIPTION "shoebox"
/* Default lease (s); the caller renews at half of it. */
#define SBX_UPNP_DEFAULT_LEASE_S 3600u
/* Default SSDP wait (ms) for routers to answer. */
#define SBX_UPNP_DEFAULT_DISCOVER_MS 2000
/* Text form of an IPv4 or IPv6 address, with its terminating NUL. */
#define SBX_UPNP_ADDR_MAX 64

typedef struct sbx_upnp sbx_upnp;

struct sbx_upnp_options {
    /* How long to wait for SSDP answers (ms); 0: SBX_UPNP_DEFAULT_DISCOVER_MS,
     * clamped to SBX_MIN_UPNP_DISCOVER_MS..SBX_MAX_UPNP_DISCOVER_MS. */
    int discover_ms;
    /* Interface for the SSDP search: a name ("eth0") or an IPv4 address of
     * this host. NULL: the system's default for multicast. */
    const char *multicast_if;
};

/* Finds the router. SBX_ENOENT when no UPnP device answered within the wait,
 * or the ones that did are not Internet gateways; SBX_EIO when the search
 * could not be sent (no socket, no route for multicast); SBX_ENOMEM. On
 * error `err` (may be NULL) says what happened in a sentence. */
int sbx_upnp_discover(sbx_upnp **out, const struct sbx_upnp_options *opt, char *err, size_t errsz);
void sbx_upnp_free(sbx_upnp *u);

/* This host's address on the router's side (the internal client of any
 * mapping), and the control URL of the router's WAN connection service. */
const char *sbx_upnp_lan_addr(const sbx_upnp *u);
const char *sbx_upnp_control_url(const sbx_upnp *u);
/* Whether the router said its WAN connection is up (miniupnpc's "connected
 * IGD"); a router that says no may still map ports. */
bool sbx_upnp_connected(const sbx_upnp *u);

/* The router's external address. SBX_EIO when the router did not answer;
 * SBX_EPROTO with the UPnP error when it refused; SBX_ESTATE when it has no
 * public IPv4 address (none, or a private, shared or reserved one: the
 * router sits behind another NAT, so a mapping would not make this device
 * reachable); `out` then still holds what the router said. */
int sbx_upnp_external_ip(sbx_upnp *u, char out[SBX_UPNP_ADDR_MAX], char *err, size_t errsz);

struct sbx_upnp_mapping {
    uint16_t internal_port;
    uint16_t external_port;
    /* The lease granted: the one asked for, or 0 when the router only
     * grants permanent mappings (then delete it on shutdown without fail). */
    uint32_t lease_s;
    char external_ip[SBX_UPNP_ADDR_MAX]; /* "" when the router would not say */
    bool reachable;                      /* external_ip is a public address */
};

/* Maps TCP external port = internal_port to this host, or, when another host
 * holds that port, the next free one (up to SBX_MAX_UPNP_PORT_TRIES ports).
 * Mapping a port this host already holds renews its lease. lease_s 0 means
 * SBX_UPNP_DEFAULT_LEASE_S. Errors: SBX_EINVAL (port 0); SBX_EBUSY (every
 * port tried is taken); SBX_EPERM (the router refused: not authorized, or
 * mappings are disabled, as on a router without a public address); SBX_EIO
 * (no answer); SBX_EPROTO (any other UPnP error). `err` names the cause and,
 * when the router has no public address, says so. */
int sbx_upnp_map(sbx_upnp *u, uint16_t internal_port, uint32_t lease_s,
                 struct sbx_upnp_mapping *out, char *err, size_t errsz);

/* Deletes the TCP mapping of external_port. SBX_ENOENT when the router has
 * no such mapping; SBX_EIO, SBX_EPERM, SBX_EPROTO as above. */
int sbx_upnp_unmap(sbx_upnp *u, uint16_t external_port, char *err, size_t errsz);

/* Whether a textual IPv4 address is public: not private (RFC 1918), shared
 * (RFC 6598), loopback, link-local, documentation, benchmarking, multicast,
 * reserved or "this network". */
bool sbx_upnp_ip_is_public(const char *ip);

/* ---- libuv glue: the calls above on the thread pool ---------------------- */

enum sbx_upnp_op {
    SBX_UPNP_MAP = 1, /* discover when needed, then map internal_port */
    SBX_UPNP_UNMAP,   /* delete the mapping of external_port */
};

struct sbx_upnp_req;
typedef void (*sbx_upnp_cb)(struct sbx_upnp_req *req);

/* Caller-owned, libuv style; it must stay alive until the callback. */
struct sbx_upnp_req {
    void *data; /* the caller's */
    /* in */
    enum sbx_upnp_op op;
    struct sbx_upnp_options options; /* for the discovery (strings must outlive the request) */
    uint16_t internal_port;          /* MAP */
    uint32_t lease_s;                /* MAP; 0: SBX_UPNP_DEFAULT_LEASE_S */
    uint16_t external_port;          /* UNMAP */
    /* in and out: the router. NULL: the job discovers it and leaves the new
     * handle here (the caller frees it). When a request on a known router
     * gets no answer (the router rebooted, its URL changed), the job
     * discovers once more and replaces the handle. */
    sbx_upnp *upnp;
    /* out, valid in the callback */
    int status;                      /* 0 or an SBX_E* code; SBX_EAGAIN: cancelled */
    struct sbx_upnp_mapping mapping; /* MAP */
    char error[256];                 /* why, when status != 0 */
    /* private */
    uv_work_t work;
    sbx_upnp_cb cb;
};

/* Runs the request on the thread pool; `cb` runs on the loop when it is
 * done. SBX_EINVAL for a bad request (no op, MAP of port 0, UNMAP without a
 * router or of port 0). */
int sbx_upnp_queue(uv_loop_t *loop, struct sbx_upnp_req *req, sbx_upnp_cb cb);

/* Cancels a request that has not started yet: its callback then runs with
 * status SBX_EAGAIN. Returns 0, or SBX_EBUSY when it already runs (its
 * callback comes when it is done). */
int sbx_upnp_cancel(struct sbx_upnp_req *req);

#endif
