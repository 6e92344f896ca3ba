/* sbx_upnp_probe: drives net/upnp.c against a real router, for the
 * network-namespace tests. Every request goes through sbx_upnp_queue (the
 * thread pool and the loop), as in the daemon.
 *
 *   sbx_upnp_probe [--if IFACE] [--delay MS] [--lease S] STEP...
 *
 * Steps run in order against one router handle (found by the first step):
 *   map PORT     map TCP PORT; prints "mapped INT EXT LEASE IP REACHABLE"
 *   unmap PORT   delete the mapping of external PORT; prints "unmapped PORT"
 *   ip           prints "external_ip IP" (the blocking call, on the handle)
 *   serve PORT   listens on TCP PORT, prints "listening PORT", answers one
 *                connection with "shoebox\n" and prints "served"; gives up
 *                after 10 s (prints "error serve ETIMEDOUT ...")
 * After the first step it prints "router LANADDR CONTROLURL CONNECTED".
 * A failed step prints "error STEP CODE ELAPSED_MS MESSAGE" (CODE as in
 * shoebox/err.h, e.g. ENOENT) and ends the run with exit status 1; usage
 * errors exit 2. */
#include "shoebox/err.h"
#include "shoebox/upnp.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *code_name(int rc)
{
    switch (rc) {
    case SBX_ENOENT: return "ENOENT";
    case SBX_EIO: return "EIO";
    case SBX_EBUSY: return "EBUSY";
    case SBX_EPERM: return "EPERM";
    case SBX_EPROTO: return "EPROTO";
    case SBX_ESTATE: return "ESTATE";
    case SBX_EAGAIN: return "EAGAIN";
    case SBX_EINVAL: return "EINVAL";
    case SBX_ENOMEM: return "ENOMEM";
    default: return "E?";
    }
}

struct run {
    uv_loop_t *loop;
    struct sbx_upnp_req req;
    uv_tcp_t server, conn;
    uv_timer_t serve_timer;
    uv_write_t write;
    char **steps;
    int n_steps, next;
    int exit_code;
    uint64_t t0;
};

static void usage(void)
{
    fprintf(stderr, "usage: sbx_upnp_probe [--if IFACE] [--delay MS] [--lease S] "
                    "(map PORT | unmap PORT | ip | serve PORT)...\n");
    exit(2);
}

static void run_next(struct run *r);

static void on_serve_closed(uv_handle_t *h)
{
    struct run *r = h->data;
    if (h != (uv_handle_t *)&r->serve_timer) return;
    /* The timer closes last: the next step may run. */
    if (r->exit_code == 0) {
        r->next += 2;
        run_next(r);
    }
}

static void serve_end(struct run *r, bool served)
{
    if (uv_is_closing((uv_handle_t *)&r->serve_timer)) return;
    if (served)
        printf("served\n");
    else {
        printf("error serve ETIMEDOUT 10000 nobody connected\n");
        r->exit_code = 1;
    }
    uv_close((uv_handle_t *)&r->server, on_serve_closed);
    if (served) uv_close((uv_handle_t *)&r->conn, on_serve_closed);
    uv_close((uv_handle_t *)&r->serve_timer, on_serve_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    serve_end(w->data, true);
}

static void on_connection(uv_stream_t *srv, int status)
{
    struct run *r = srv->data;
    if (status != 0 || uv_is_active((uv_handle_t *)&r->conn) || r->conn.data) return;
    uv_tcp_init(r->loop, &r->conn);
    r->conn.data = r;
    if (uv_accept(srv, (uv_stream_t *)&r->conn) != 0) return;
    static char hello[] = "shoebox\n";
    uv_buf_t b = uv_buf_init(hello, sizeof hello - 1);
    r->write.data = r;
    uv_write(&r->write, (uv_stream_t *)&r->conn, &b, 1, on_written);
}

static void on_serve_timeout(uv_timer_t *t)
{
    serve_end(t->data, false);
}

static void serve(struct run *r, uint16_t port)
{
    struct sockaddr_in sa;
    uv_ip4_addr("0.0.0.0", port, &sa);
    uv_tcp_init(r->loop, &r->server);
    uv_timer_init(r->loop, &r->serve_timer);
    r->server.data = r->serve_timer.data = r;
    int rc = uv_tcp_bind(&r->server, (const struct sockaddr *)&sa, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&r->server, 4, on_connection);
    if (rc != 0) {
        printf("error serve EIO 0 cannot listen on %u: %s\n", port, uv_strerror(rc));
        r->exit_code = 1;
        uv_close((uv_handle_t *)&r->server, NULL);
        uv_close((uv_handle_t *)&r->serve_timer, NULL);
        return;
    }
    printf("listening %u\n", port);
    uv_timer_start(&r->serve_timer, on_serve_timeout, 10000, 0);
}

static void on_done(struct sbx_upnp_req *req)
{
    struct run *r = req->data;
    const char *step = r->steps[r->next];
    unsigned long ms = (unsigned long)((uv_hrtime() - r->t0) / 1000000u);
    if (req->upnp && r->next == 0)
        printf("router %s %s %d\n", sbx_upnp_lan_addr(req->upnp), sbx_upnp_control_url(req->upnp),
               sbx_upnp_connected(req->upnp));
    if (req->status != 0) {
        printf("error %s %s %lu %s\n", step, code_name(req->status), ms, req->error);
        r->exit_code = 1;
        return;
    }
    if (req->op == SBX_UPNP_MAP)
        printf("mapped %u %u %u %s %d\n", req->mapping.internal_port, req->mapping.external_port,
               req->mapping.lease_s, req->mapping.external_ip[0] ? req->mapping.external_ip : "-",
               req->mapping.reachable);
    else
        printf("unmapped %u\n", req->external_port);
    r->next += 2;
    run_next(r);
}

static void run_next(struct run *r)
{
    while (r->next < r->n_steps && strcmp(r->steps[r->next], "ip") == 0) {
        /* The blocking call straight from the loop thread: fine in a probe. */
        char ip[SBX_UPNP_ADDR_MAX], err[256] = "";
        int rc = r->req.upnp ? sbx_upnp_external_ip(r->req.upnp, ip, err, sizeof err) : SBX_ESTATE;
        if (rc != 0 && rc != SBX_ESTATE) {
            printf("error ip %s 0 %s\n", code_name(rc), err);
            r->exit_code = 1;
            return;
        }
        printf("external_ip %s %s\n", r->req.upnp && ip[0] ? ip : "-",
               rc == 0 ? "public" : "not-public");
        r->next++;
    }
    if (r->next >= r->n_steps) return;
    if (r->next + 1 >= r->n_steps) usage();
    const char *step = r->steps[r->next];
    long port = strtol(r->steps[r->next + 1], NULL, 10);
    if (port <= 0 || port > 65535) usage();
    if (strcmp(step, "serve") == 0) {
        serve(r, (uint16_t)port);
        return;
    }
    if (strcmp(step, "map") == 0) {
        r->req.op = SBX_UPNP_MAP;
        r->req.internal_port = (uint16_t)port;
    } else if (strcmp(step, "unmap") == 0) {
        r->req.op = SBX_UPNP_UNMAP;
        r->req.external_port = (uint16_t)port;
    } else {
        usage();
    }
    r->t0 = uv_hrtime();
    int rc = sbx_upnp_queue(r->loop, &r->req, on_done);
    if (rc != 0) {
        printf("error %s %s 0 cannot queue the request\n", step, code_name(rc));
        r->exit_code = 1;
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct run r;
    memset(&r, 0, sizeof r);
    r.loop = uv_default_loop();
    r.req.data = &r;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--if") == 0)
            r.req.options.multicast_if = argv[i + 1];
        else if (strcmp(argv[i], "--delay") == 0)
            r.req.options.discover_ms = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--lease") == 0)
            r.req.lease_s = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else
            usage();
    }
    if (i >= argc) usage();
    r.steps = argv + i;
    r.n_steps = argc - i;
    run_next(&r);
    uv_run(r.loop, UV_RUN_DEFAULT);
    sbx_upnp_free(r.req.upnp);
    uv_loop_close(r.loop);
    return r.exit_code;
}
