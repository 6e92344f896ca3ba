/* UPnP without a router: address classification, argument checks, and the
 * error paths of discovery (no router answers: a clear error within the
 * delay), directly and through the thread pool. The search goes out on the
 * loopback interface only, so nothing leaves the host. The paths with a real
 * router run in tests/integration/upnp_netns.sh against miniupnpd. */
#include "sbx_test.h"

#include "shoebox/err.h"
#include "shoebox/upnp.h"

#include <stdlib.h>

SBX_TEST(public_addresses)
{
    static const char *public_ips[] = {"1.1.1.1", "8.8.8.8", "11.0.0.1", "100.63.255.255",
                                       "100.128.0.0", "172.15.255.255", "172.32.0.0",
                                       "192.0.1.255", "192.0.3.0", "198.17.255.255",
                                       "198.20.0.0", "203.0.114.1", "223.255.255.255"};
    static const char *not_public[] = {
        "0.0.0.0",     "0.1.2.3",        "10.0.0.1",       "10.255.255.255", "100.64.0.1",
        "100.127.0.1", "127.0.0.1",      "169.254.1.1",    "172.16.0.1",     "172.31.255.255",
        "192.0.0.8",   "192.0.2.1",      "192.88.99.1",    "192.168.1.1",    "198.18.0.1",
        "198.19.255.1", "198.51.100.1",  "203.0.113.9",    "224.0.0.1",      "239.255.77.77",
        "240.0.0.1",   "255.255.255.255", "",              "1.2.3",          "::1",
        "2001:db8::1", "not an address", "1.2.3.4 ",       "01.2.3.4x"};
    for (size_t i = 0; i < sizeof public_ips / sizeof *public_ips; i++) {
        if (!sbx_upnp_ip_is_public(public_ips[i])) printf("# %s\n", public_ips[i]);
        CHECK(sbx_upnp_ip_is_public(public_ips[i]));
    }
    for (size_t i = 0; i < sizeof not_public / sizeof *not_public; i++) {
        if (sbx_upnp_ip_is_public(not_public[i])) printf("# %s\n", not_public[i]);
        CHECK(!sbx_upnp_ip_is_public(not_public[i]));
    }
    CHECK(!sbx_upnp_ip_is_public(NULL));
}

static void never_called(struct sbx_upnp_req *req)
{
    (void)req;
    CHECK(!"a refused request calls back");
}

SBX_TEST(bad_arguments)
{
    char err[256], ip[SBX_UPNP_ADDR_MAX];
    struct sbx_upnp_mapping m;
    CHECK_EQ_INT(sbx_upnp_discover(NULL, NULL, err, sizeof err), SBX_EINVAL);
    CHECK_EQ_INT(sbx_upnp_external_ip(NULL, ip, err, sizeof err), SBX_EINVAL);
    CHECK_EQ_INT(sbx_upnp_map(NULL, 22000, 0, &m, err, sizeof err), SBX_EINVAL);
    CHECK_EQ_INT(sbx_upnp_unmap(NULL, 22000, err, sizeof err), SBX_EINVAL);
    sbx_upnp_free(NULL);
    CHECK_EQ_STR(sbx_upnp_lan_addr(NULL), "");
    CHECK_EQ_STR(sbx_upnp_control_url(NULL), "");
    CHECK(!sbx_upnp_connected(NULL));

    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    struct sbx_upnp_req req;
    memset(&req, 0, sizeof req);
    CHECK_EQ_INT(sbx_upnp_queue(&loop, &req, never_called), SBX_EINVAL); /* no op */
    req.op = SBX_UPNP_MAP;
    CHECK_EQ_INT(sbx_upnp_queue(&loop, &req, never_called), SBX_EINVAL); /* port 0 */
    req.op = SBX_UPNP_UNMAP;
    req.external_port = 22000;
    CHECK_EQ_INT(sbx_upnp_queue(&loop, &req, never_called), SBX_EINVAL); /* no router */
    req.op = 7;
    CHECK_EQ_INT(sbx_upnp_queue(&loop, &req, never_called), SBX_EINVAL);
    req.op = SBX_UPNP_MAP;
    req.internal_port = 22000;
    CHECK_EQ_INT(sbx_upnp_queue(&loop, &req, NULL), SBX_EINVAL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* No router on lo: ENOENT with a sentence, after about the delay (the floor
 * is miniupnpc's one second). */
SBX_TEST(no_router_is_a_fast_clear_error)
{
    struct sbx_upnp_options opt = {.discover_ms = 1, .multicast_if = "127.0.0.1"};
    sbx_upnp *u = (sbx_upnp *)&opt; /* must be reset to NULL */
    char err[256] = "";
    uint64_t t0 = uv_hrtime();
    int rc = sbx_upnp_discover(&u, &opt, err, sizeof err);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    printf("# %s (%.0f ms)\n", err, ms);
    CHECK_EQ_INT(rc, SBX_ENOENT);
    CHECK(u == NULL);
    CHECK(strstr(err, "no UPnP router answered within 1000 ms on 127.0.0.1") != NULL);
    CHECK(ms >= 900 && ms < 2500);

    opt.discover_ms = 1500;
    t0 = uv_hrtime();
    rc = sbx_upnp_discover(&u, &opt, err, sizeof err);
    ms = (double)(uv_hrtime() - t0) / 1e6;
    CHECK_EQ_INT(rc, SBX_ENOENT);
    CHECK(ms >= 1400 && ms < 3000); /* one wait for every search type, not four */

    /* An interface that is not there is refused at once. */
    opt.multicast_if = "nosuchif0";
    t0 = uv_hrtime();
    rc = sbx_upnp_discover(&u, &opt, err, sizeof err);
    ms = (double)(uv_hrtime() - t0) / 1e6;
    CHECK_EQ_INT(rc, SBX_ENOENT);
    CHECK(strstr(err, "no network interface or IPv4 address nosuchif0") != NULL);
    CHECK(ms < 100);
    /* The upper clamp is applied: a delay of an hour waits ten seconds at
     * most; not run here, it would take ten seconds. */
}

struct pool_run {
    int calls;
    int status[3];
    char error[3][256];
    uint64_t done_at[3];
};

static void on_req(struct sbx_upnp_req *req)
{
    struct pool_run *p = req->data;
    int i = p->calls++;
    if (i < 3) {
        p->status[i] = req->status;
        snprintf(p->error[i], sizeof p->error[i], "%s", req->error);
        p->done_at[i] = uv_hrtime();
    }
}

/* Through the thread pool: the callback runs on the loop with the error;
 * a request still queued behind a busy thread can be cancelled. */
SBX_TEST(thread_pool_error_and_cancel)
{
    /* One worker thread, so the second request waits behind the first. The
     * pool is made at the first request of the process. */
    setenv("UV_THREADPOOL_SIZE", "1", 1);
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    struct pool_run p;
    memset(&p, 0, sizeof p);
    struct sbx_upnp_req a, b;
    memset(&a, 0, sizeof a);
    a.data = &p;
    a.op = SBX_UPNP_MAP;
    a.internal_port = 22000;
    a.options.multicast_if = "127.0.0.1";
    a.options.discover_ms = 1000;
    b = a;
    uint64_t t0 = uv_hrtime();
    REQUIRE(sbx_upnp_queue(&loop, &a, on_req) == 0);
    REQUIRE(sbx_upnp_queue(&loop, &b, on_req) == 0);
    CHECK_EQ_INT(sbx_upnp_cancel(&b), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(p.calls, 2);
    /* The cancelled one reports first: libuv completes it at once. */
    CHECK_EQ_INT(p.status[0], SBX_EAGAIN);
    CHECK_EQ_STR(p.error[0], "cancelled");
    CHECK_EQ_INT(p.status[1], SBX_ENOENT);
    CHECK(strstr(p.error[1], "no UPnP router answered") != NULL);
    CHECK(a.upnp == NULL && b.upnp == NULL);
    double ms = (double)(p.done_at[1] - t0) / 1e6;
    printf("# map without a router failed in %.0f ms\n", ms);
    CHECK(ms < 2500);
    /* A request that ran cannot be cancelled any more. */
    CHECK_EQ_INT(sbx_upnp_cancel(&a), SBX_EBUSY);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

SBX_TEST_MAIN(SBX_CASE(public_addresses), SBX_CASE(bad_arguments),
              SBX_CASE(no_router_is_a_fast_clear_error), SBX_CASE(thread_pool_error_and_cancel))
