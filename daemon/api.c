/* The HTTP server: the local API (bearer token, on 127.0.0.1 and a unix
 * socket in the data dir) and the public share server, both served by
 * libh2o on the daemon's own libuv loop (HTTP/1.1, and HTTP/2 with prior
 * knowledge or through ALPN on TLS).
 *
 * Handlers run on the loop thread, like the control commands: the model is
 * one SQLite connection that only this thread touches. */
#include "api_internal.h"

#include "shoebox/addr.h"
#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct api_conn {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h; /* first: h2o's close callback hands this pointer back */
    struct sbx_api *api;
    struct api_conn *prev, *next;
    bool public;
    h2o_socket_t *sock; /* h2o's socket on h */
    unsigned stuck_ticks; /* see unstick() */
    uint8_t addr[16]; /* the rate limiter's key for the client */
    size_t addr_len;
};

struct api_handler {
    h2o_handler_t super;
    struct sbx_api *api;
    bool public;
};

static size_t sockaddr_key(const struct sockaddr_storage *ss, uint8_t key[16]);
static void on_sweep_tick(uv_timer_t *t);

typedef void (*api_fn)(struct api_req *r);
static const api_fn handlers[SBX_ROUTE__COUNT] = {
#define SBX_API_HANDLER_ROW(name, method, pattern, server) [SBX_ROUTE_##name] = h_##name,
    SBX_API_ROUTES(SBX_API_HANDLER_ROW)
#undef SBX_API_HANDLER_ROW
};

/* ---- responses ---- */

const char *api_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

void api_header(struct api_req *r, const h2o_token_t *token, const char *value)
{
    h2o_iovec_t v = h2o_strdup(&r->req->pool, value, strlen(value));
    h2o_add_header(&r->req->pool, &r->req->res.headers, token, NULL, v.base, v.len);
}

void api_header_str(struct api_req *r, const char *name, const char *value)
{
    h2o_iovec_t v = h2o_strdup(&r->req->pool, value, strlen(value));
    h2o_add_header_by_str(&r->req->pool, &r->req->res.headers, name, strlen(name), 0, NULL, v.base, v.len);
}

void api_send_bytes(struct api_req *r, int status, const char *content_type, const void *body, size_t len)
{
    h2o_req_t *req = r->req;
    req->res.status = status;
    req->res.reason = api_reason(status);
    if (content_type) api_header(r, H2O_TOKEN_CONTENT_TYPE, content_type);
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

void api_json(struct api_req *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        api_send_bytes(r, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    api_header(r, H2O_TOKEN_CACHE_CONTROL, "no-store");
    api_send_bytes(r, status, "application/json", text, strlen(text));
    free(text);
}

void api_close_after(struct api_req *r)
{
    r->req->http1_is_persistent = 0;
    if (r->req->version < 0x200) api_header(r, H2O_TOKEN_CONNECTION, "close");
}

void api_error(struct api_req *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_json(r, status, json_pack("{s:s}", "error", msg));
}

void api_plain(struct api_req *r, int status, const char *text)
{
    api_header(r, H2O_TOKEN_CACHE_CONTROL, "no-store");
    api_header_str(r, "x-content-type-options", "nosniff");
    api_send_bytes(r, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* ---- request helpers ---- */

const char *api_req_header(struct api_req *r, const h2o_token_t *token, size_t *len)
{
    ssize_t i = h2o_find_header(&r->req->headers, token, -1);
    if (i < 0) return NULL;
    *len = r->req->headers.entries[i].value.len;
    return r->req->headers.entries[i].value.base;
}

json_t *api_body(struct api_req *r)
{
    h2o_iovec_t e = r->req->entity;
    if (e.base == NULL || e.len == 0) return json_object();
    if (e.len > SBX_MAX_API_JSON) {
        api_error(r, 413, "a JSON body is at most %u bytes", SBX_MAX_API_JSON);
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(e.base, e.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(v)) {
        json_decref(v);
        api_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return v;
}

bool api_query(struct api_req *r, const char *name, char *buf, size_t cap)
{
    return r->query && sbx_http_query(r->query, r->query_len, name, buf, cap) == 0;
}

bool api_param(struct api_req *r, size_t i, char *buf, size_t cap)
{
    SBX_ASSERT(i < r->m.n_params);
    if (sbx_http_unescape(r->m.param[i].ptr, r->m.param[i].len, false, buf, cap, NULL) != 0) {
        api_error(r, 400, "a malformed or overlong path segment");
        return false;
    }
    return true;
}

bool api_param_id(struct api_req *r, size_t i, const char *what, uint8_t id[16])
{
    char buf[64];
    if (!api_param(r, i, buf, sizeof buf)) return false;
    if (sbx_uuid_parse(id, buf) != 0) {
        api_error(r, 400, "'%s' is not a %s id (a UUID)", buf, what);
        return false;
    }
    return true;
}

json_t *api_control(struct api_req *r, const char *cmd, json_t *args)
{
    json_t *req = json_pack("{s:s, s:o}", "cmd", cmd, "args", args ? args : json_object());
    int code = 0;
    json_t *resp = sbx_control_dispatch(r->d, req, &code);
    json_decref(req);
    if (!json_is_true(json_object_get(resp, "ok"))) {
        const char *e = json_string_value(json_object_get(resp, "error"));
        int status = sbx_api_status_for_error(code);
        if (status == 503) api_header(r, H2O_TOKEN_RETRY_AFTER, "5");
        api_error(r, status, "%s", e ? e : "the command failed");
        json_decref(resp);
        return NULL;
    }
    json_t *result = json_incref(json_object_get(resp, "result"));
    json_decref(resp);
    return result;
}

/* ---- dispatch ---- */

/* The rate limiter's key: an IPv4 address, or the /64 of an IPv6 one (a
 * single client usually holds a whole /64). */
size_t api_peer_key(h2o_req_t *req, uint8_t key[16])
{
    struct sockaddr_storage ss;
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    return n ? sockaddr_key(&ss, key) : 0;
}

static bool authorized(struct api_req *r)
{
    size_t len = 0;
    const char *v = api_req_header(r, H2O_TOKEN_AUTHORIZATION, &len);
    if (!v || len < 7 || strncasecmp(v, "Bearer ", 7) != 0) return false;
    v += 7;
    len -= 7;
    while (len > 0 && *v == ' ') v++, len--;
    while (len > 0 && v[len - 1] == ' ') len--;
    return len == r->api->token_len && sodium_memcmp(v, r->api->token, len) == 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct sbx_api *api = ((struct api_handler *)self)->api;
    bool public = ((struct api_handler *)self)->public;
    struct api_req r = {.api = api, .d = api->d, .req = req};
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    if (req->query_at != SIZE_MAX) {
        r.query = req->path.base + req->query_at + 1;
        r.query_len = req->path.len - req->query_at - 1;
    }
    if (api->stopping) {
        api_close_after(&r);
        if (public) api_plain(&r, 503, "Service Unavailable");
        else api_error(&r, 503, "the daemon is shutting down");
        return 0;
    }
    if (public) {
        uint8_t key[16];
        size_t klen = api_peer_key(req, key);
        if (klen && !sbx_ratelimit_take(api->rl, key, klen, 1, sbx_now_ms())) {
            api_header(&r, H2O_TOKEN_RETRY_AFTER, "1");
            api_plain(&r, 429, "Too Many Requests");
            return 0;
        }
        if (sbx_api_route_match(SBX_API_PUBLIC, req->method.base, req->method.len, req->path.base, path_len, &r.m) != 0) {
            api_plain(&r, 404, "Not Found");
            return 0;
        }
        handlers[r.m.route](&r);
        return 0;
    }
    if (!authorized(&r)) {
        api_header(&r, H2O_TOKEN_WWW_AUTHENTICATE, "Bearer realm=\"shoebox\"");
        api_error(&r, 401, "missing or wrong bearer token (the token is in the file %s of the data dir)",
                  SBX_FILE_API_TOKEN);
        return 0;
    }
    int rc = sbx_api_route_match(SBX_API_LOCAL, req->method.base, req->method.len, req->path.base, path_len, &r.m);
    if (rc == SBX_EUNSUPPORTED) {
        api_error(&r, 405, "%.*s is not allowed on this path", (int)req->method.len, req->method.base);
        return 0;
    }
    if (rc != 0) {
        api_error(&r, 404, "no such endpoint: %.*s", (int)(path_len > 200 ? 200 : path_len), req->path.base);
        return 0;
    }
    handlers[r.m.route](&r);
    return 0;
}

/* ---- connections ---- */

static void conn_closed(uv_handle_t *h)
{
    struct api_conn *c = (struct api_conn *)h;
    struct sbx_api *api = c->api;
    if (c->prev) c->prev->next = c->next;
    else api->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    SBX_ASSERT(api->n_conns > 0);
    api->n_conns--;
    free(c);
}

static size_t sockaddr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
    if (ss->ss_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 4;
    }
    if (ss->ss_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            memcpy(key, a + 12, 4);
            return 4;
        }
        memcpy(key, a, 8);
        return 8;
    }
    return 0;
}

static void on_accept(uv_stream_t *server, int status)
{
    struct sbx_api *api = server->data;
    if (status < 0 || api->stopping) return;
    bool is_pipe = server == (uv_stream_t *)&api->unix_sock;
    bool public = server == (uv_stream_t *)&api->pub;
    struct api_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->api = api;
    c->public = public;
    if (is_pipe) uv_pipe_init(api->d->loop, &c->h.pipe, 0);
    else uv_tcp_init(api->d->loop, &c->h.tcp);
    bool refuse = uv_accept(server, (uv_stream_t *)&c->h) != 0 || api->n_conns >= SBX_MAX_API_CONNECTIONS;
    if (!refuse && public) {
        /* One address may not hold the share server's connections: a few
         * per address are plenty for a browser. */
        struct sockaddr_storage ss;
        int len = sizeof ss;
        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) c->addr_len = sockaddr_key(&ss, c->addr);
        size_t same = 0;
        for (struct api_conn *o = api->conns; o; o = o->next)
            same += o->public && o->addr_len == c->addr_len && memcmp(o->addr, c->addr, c->addr_len) == 0;
        refuse = same >= SBX_MAX_SHARE_CONNS_PER_ADDR ||
                 (c->addr_len && !sbx_ratelimit_take(api->rl, c->addr, c->addr_len, 1, sbx_now_ms()));
    }
    if (refuse) {
        /* Accepted only to be closed, so the kernel's backlog does not fill
         * with it. */
        uv_close((uv_handle_t *)&c->h, (uv_close_cb)free);
        return;
    }
    if (!is_pipe) uv_tcp_nodelay(&c->h.tcp, 1);
    c->next = api->conns;
    if (api->conns) api->conns->prev = c;
    api->conns = c;
    api->n_conns++;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->h, conn_closed);
    c->sock = sock;
    h2o_accept(public ? &api->public.accept : &api->local.accept, sock);
}

static int listen_tcp(struct sbx_api *api, uv_tcp_t *t, bool *on, const char *addr, char *out_addr, size_t cap,
                      char *errmsg, size_t size)
{
    /* Port 0 asks for any free port: the bound address is logged and shown
     * by GET /status. */
    struct sockaddr_storage ss;
    if (sbx_addr_parse(addr, true, &ss) != 0) {
        snprintf(errmsg, size, "'%s' is not an address (HOST:PORT with an IP address)", addr);
        return SBX_EINVAL;
    }
    uv_tcp_init(api->d->loop, t);
    t->data = api;
    *on = true;
    int rc = uv_tcp_bind(t, (struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)t, 128, on_accept);
    if (rc != 0) {
        snprintf(errmsg, size, "cannot listen on %s: %s", addr, uv_strerror(rc));
        return SBX_EIO;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    char name[SBX_ADDR_STRLEN + 1] = "?";
    if (uv_tcp_getsockname(t, (struct sockaddr *)&bound, &blen) == 0) sbx_addr_format(name, (struct sockaddr *)&bound);
    snprintf(out_addr, cap, "%s", name);
    return 0;
}

/* ---- the bearer token ---- */

static int load_token(struct sbx_api *api, char *errmsg, size_t size)
{
    char path[4096];
    if (sbx_datadir_path(path, sizeof path, api->d->data_dir, SBX_FILE_API_TOKEN) != 0) {
        snprintf(errmsg, size, "data dir path is too long");
        return SBX_ETOOBIG;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        /* First start: a fresh token, readable by the owner only, as
         * Syncthing does with its API key. */
        uint8_t raw[32];
        randombytes_buf(raw, sizeof raw);
        char tok[64];
        sodium_bin2base64(tok, sizeof tok, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof raw);
        size_t n = strlen(tok);
        tok[n] = '\n';
        int rc = sbx_file_write_atomic(path, (const uint8_t *)tok, n + 1, 0600);
        sodium_memzero(tok, sizeof tok);
        if (rc != 0) {
            snprintf(errmsg, size, "cannot write %s: %s", path, sbx_strerror(rc));
            return rc;
        }
        if (stat(path, &st) != 0) {
            snprintf(errmsg, size, "cannot read %s back", path);
            return SBX_EIO;
        }
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        snprintf(errmsg, size, "%s is readable by others or not a file (chmod 600 it)", path);
        return SBX_EPERM;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sbx_file_read(path, sizeof api->token, &data, &len);
    if (rc != 0) {
        snprintf(errmsg, size, "cannot read %s: %s", path, sbx_strerror(rc));
        return rc;
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' ')) len--;
    bool printable = len >= 16 && len < sizeof api->token;
    for (size_t i = 0; i < len && printable; i++) printable = data[i] > ' ' && data[i] < 0x7f;
    if (printable) {
        memcpy(api->token, data, len);
        api->token[len] = '\0';
        api->token_len = len;
    }
    sodium_memzero(data, len);
    free(data);
    if (!printable) {
        snprintf(errmsg, size, "%s must hold one token of 16 to %zu printable characters", path, sizeof api->token - 1);
        return SBX_ECORRUPT;
    }
    return 0;
}

static int load_cursor_key(struct sbx_api *api)
{
    size_t n = 0;
    int rc = sbx_store_meta_get(api->d->store, "api_cursor_key", api->cursor_key, sizeof api->cursor_key, &n);
    if (rc == 0 && n == sizeof api->cursor_key) return 0;
    randombytes_buf(api->cursor_key, sizeof api->cursor_key);
    return sbx_store_meta_set(api->d->store, "api_cursor_key", api->cursor_key, sizeof api->cursor_key);
}

static int tls_setup(struct sbx_api *api, const struct sbx_daemon_options *opt, char *errmsg, size_t size)
{
    api->ssl = SSL_CTX_new(TLS_server_method());
    if (!api->ssl) {
        snprintf(errmsg, size, "cannot create a TLS context");
        return SBX_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(api->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(api->ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(api->ssl, opt->tls_cert) != 1) {
        snprintf(errmsg, size, "cannot load the TLS certificate %s", opt->tls_cert);
        ERR_clear_error();
        return SBX_EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(api->ssl, opt->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(api->ssl) != 1) {
        snprintf(errmsg, size, "cannot load the TLS key %s, or it does not match the certificate", opt->tls_key);
        ERR_clear_error();
        return SBX_EINVAL;
    }
    h2o_ssl_register_alpn_protocols(api->ssl, h2o_http2_alpn_protocols);
    return 0;
}

/* ---- start and stop ---- */

static int server_init(struct sbx_api *api, struct api_server *srv, bool public)
{
    h2o_config_init(&srv->config);
    srv->config_on = true;
    srv->config.server_name = h2o_iovec_init(H2O_STRLIT("shoebox"));
    /* h2o reads a whole request body before the handler runs: the local
     * API takes upload chunks, the share server only GETs. */
    srv->config.max_request_entity_size = public ? 4096 : SBX_MAX_UPLOAD_CHUNK + 65536;
    srv->config.http1.req_timeout = public ? 10000 : 30000;
    srv->config.http2.idle_timeout = public ? 10000 : 30000;
    /* At shutdown HTTP/2 clients get a GOAWAY; those that keep their
     * connection open after it are closed by h2o itself this much later. */
    srv->config.http2.graceful_shutdown_timeout = SBX_API_SHUTDOWN_MS / 2;
    h2o_hostconf_t *host = h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct api_handler *h = (struct api_handler *)h2o_create_handler(path, sizeof *h);
    if (!h) return SBX_ENOMEM;
    h->super.on_req = on_req;
    h->api = api;
    h->public = public;
    srv->hosts[0] = host;
    h2o_context_init(&srv->ctx, api->d->loop, &srv->config);
    srv->ctx_on = true;
    srv->accept = (h2o_accept_ctx_t){.ctx = &srv->ctx, .hosts = srv->hosts, .ssl_ctx = public ? api->ssl : NULL};
    return 0;
}

int sbx_api_start(struct sbx_daemon *d, const struct sbx_daemon_options *opt, char *errmsg, size_t size)
{
    struct sbx_api *api = calloc(1, sizeof *api);
    if (!api) return SBX_ENOMEM;
    d->api = api;
    api->d = d;
    int rc = load_token(api, errmsg, size);
    if (rc != 0) return rc;
    if ((rc = load_cursor_key(api)) != 0) {
        snprintf(errmsg, size, "cannot store the feed cursor key: %s", sbx_strerror(rc));
        return rc;
    }
    /* The daemon's blob store: the importer and the transfers share it. */
    api->blobs = d->blobs;
    if (!api->blobs) {
        snprintf(errmsg, size, "the blob store is not open");
        return SBX_ESTATE;
    }
    if ((rc = sbx_ratelimit_new(&api->rl, SBX_MAX_RATELIMIT_SLOTS, SBX_SHARE_RATE_PER_S, SBX_SHARE_RATE_BURST)) != 0)
        return rc;
    bool tls = opt->tls_cert || opt->tls_key;
    if (tls && (!opt->tls_cert || !opt->tls_key)) {
        snprintf(errmsg, size, "--tls-cert and --tls-key go together");
        return SBX_EINVAL;
    }
    if (tls && !opt->public_listen) {
        snprintf(errmsg, size, "--tls-cert and --tls-key are for the share server: give --public HOST:PORT too");
        return SBX_EINVAL;
    }
    if (tls && (rc = tls_setup(api, opt, errmsg, size)) != 0) return rc;

    if ((rc = server_init(api, &api->local, false)) != 0 || (opt->public_listen && (rc = server_init(api, &api->public, true)) != 0)) {
        snprintf(errmsg, size, "cannot set up the HTTP server");
        return rc;
    }

    /* The unix socket: the owner's apps on this device, like control.sock. */
    char sock[4096];
    if (sbx_datadir_path(sock, sizeof sock, d->data_dir, SBX_FILE_API_SOCKET) != 0 || strlen(sock) >= 108) {
        snprintf(errmsg, size, "API socket path %s is too long for a unix socket", sock);
        return SBX_ETOOBIG;
    }
    unlink(sock);
    uv_pipe_init(d->loop, &api->unix_sock, 0);
    api->unix_sock.data = api;
    api->unix_on = true;
    mode_t old = umask(077);
    rc = uv_pipe_bind(&api->unix_sock, sock);
    umask(old);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&api->unix_sock, 128, on_accept);
    if (rc != 0) {
        snprintf(errmsg, size, "cannot listen on %s: %s", sock, uv_strerror(rc));
        return SBX_EIO;
    }
    chmod(sock, 0600);

    const char *api_addr = opt->api_listen;
    if (!api_addr || strcmp(api_addr, "off") != 0) {
        char def[64];
        snprintf(def, sizeof def, "127.0.0.1:%u", SBX_API_DEFAULT_PORT);
        char why[512] = "";
        rc = listen_tcp(api, &api->tcp, &api->tcp_on, api_addr ? api_addr : def, api->tcp_addr, sizeof api->tcp_addr,
                        why, sizeof why);
        if (rc != 0 && api_addr) {
            snprintf(errmsg, size, "API: %s", why);
            return rc;
        }
        /* The default port is a convenience: when another daemon holds it,
         * this one still serves its unix socket. */
        if (rc != 0) {
            sbx_warn("api: %s; serving the unix socket only (give --api HOST:PORT)", why);
            api->tcp_addr[0] = '\0';
        }
    }
    if (opt->public_listen) {
        rc = listen_tcp(api, &api->pub, &api->pub_on, opt->public_listen, api->pub_addr, sizeof api->pub_addr, errmsg,
                        size);
        if (rc != 0) return rc;
    }
    if (opt->public_url) snprintf(api->public_base, sizeof api->public_base, "%s", opt->public_url);
    else if (api->pub_addr[0]) snprintf(api->public_base, sizeof api->public_base, "%s://%s", tls ? "https" : "http", api->pub_addr);
    size_t bl = strlen(api->public_base);
    while (bl > 0 && api->public_base[bl - 1] == '/') api->public_base[--bl] = '\0';

    api_upload_sweep(api);
    /* Connections h2o left waiting forever are closed every few seconds
     * (unstick). The timer does not keep the loop alive. */
    uv_timer_init(d->loop, &api->sweep_timer);
    api->sweep_timer.data = api;
    api->sweep_timer_on = true;
    uv_timer_start(&api->sweep_timer, on_sweep_tick, 2000, 2000);
    uv_unref((uv_handle_t *)&api->sweep_timer);
    sbx_info("api: %s%s, unix socket %s", api->tcp_addr[0] ? "listening on " : "no TCP listener",
             api->tcp_addr, sock);
    if (api->pub_on)
        sbx_info("share server: listening on %s (%s), links as %s/s/...", api->pub_addr, tls ? "TLS" : "plain HTTP",
                 api->public_base);
    return 0;
}

/* Closes every idle connection now: at shutdown the keep-alive and idle
 * timeouts drop to zero and run. */
static void expire_idle(struct sbx_api *api)
{
    uint64_t now = h2o_now(api->d->loop);
    struct api_server *srv[2] = {&api->local, &api->public};
    for (int i = 0; i < 2; i++) {
        if (!srv[i]->ctx_on) continue;
        /* Idle keep-alive connections, idle HTTP/2 connections and TLS
         * handshakes that never finish. */
        h2o_timeout_t *ts[] = {&srv[i]->ctx.http1.req_timeout, &srv[i]->ctx.http2.idle_timeout,
                               &srv[i]->ctx.handshake_timeout};
        for (size_t k = 0; k < SBX_ARRAY_LEN(ts); k++) {
            ts[k]->timeout = 0;
            h2o_timeout_run(api->d->loop, ts[k], now);
        }
    }
}

/* Handles that h2o's contexts own (their timers and message queues) keep
 * the loop alive; once no connection needs them they are unreferenced, and
 * sbx_api_close disposes of them after the loop ended. */
static void unref_h2o(uv_handle_t *h, void *arg)
{
    struct sbx_api *api = arg;
    const char *p = (const char *)h;
    struct api_server *srv[2] = {&api->local, &api->public};
    for (int i = 0; i < 2; i++) {
        if (!srv[i]->ctx_on) continue;
        bool in_ctx = p >= (const char *)&srv[i]->ctx && p < (const char *)(&srv[i]->ctx + 1);
        bool queue = h == (uv_handle_t *)srv[i]->ctx.queue && h->type == UV_ASYNC;
        if (in_ctx || queue) uv_unref(h);
    }
}

static void unref_conns(struct sbx_api *api)
{
    for (struct api_conn *c = api->conns; c; c = c->next) uv_unref((uv_handle_t *)&c->h);
}

/* h2o (2.2, and later versions alike) ignores what uv_write returns. After
 * a read error (a TLS client that resets the connection, as browsers do
 * with spare connections when they exit) libuv marks the stream
 * unwritable, so the write h2o then makes (TLS's close_notify, an HTTP/2
 * frame) is refused at once, and its callback never comes: h2o waits for it
 * forever, reading nothing. Such a connection would hold its slot (and its
 * address's share of the share server) until the daemon exits, and then
 * never close. It is recognized by a write h2o believes in flight while
 * libuv holds none and the stream cannot write, seen twice in a row (a
 * write that did complete has its callback run on the next turn of the
 * loop), and is given the write error h2o waited for: h2o then closes it
 * the usual way. */
static void unstick(struct sbx_api *api)
{
    for (struct api_conn *c = api->conns; c; c = c->next) {
        uv_stream_t *st = (uv_stream_t *)&c->h;
        bool stuck = c->sock && c->sock->_cb.write && !uv_is_closing((uv_handle_t *)st) && !uv_is_writable(st) &&
                     uv_stream_get_write_queue_size(st) == 0;
        if (!stuck) {
            c->stuck_ticks = 0;
            continue;
        }
        if (++c->stuck_ticks < 2) continue;
        c->stuck_ticks = 0;
        sbx_debug("api: a connection reset by its client waited for a write that libuv refused; closing it");
        h2o_socket_cb cb = c->sock->_cb.write;
        c->sock->_cb.write = NULL;
        /* Closing is asynchronous (uv_close): c stays on the list until its
         * close callback, so the walk goes on safely. */
        cb(c->sock, h2o_socket_error_io);
    }
}

static void on_sweep_tick(uv_timer_t *t) { unstick(t->data); }

static void on_stop_tick(uv_timer_t *t)
{
    struct sbx_api *api = t->data;
    expire_idle(api);
    unstick(api);
    int64_t now = sbx_now_ms();
    if (api->n_conns > 0 && now < api->stop_deadline_ms) return;
    if (api->n_conns > 0 && !api->stop_forced) {
        /* A client that stalls a response must not keep the daemon from
         * exiting. shutdown(2) under libuv's feet makes its pending writes
         * fail and its reads end, so h2o closes the connection the usual
         * way. */
        api->stop_forced = true;
        api->stop_deadline_ms = now + 1000;
        sbx_info("api: closing %zu connection%s that did not finish in time", api->n_conns, api->n_conns == 1 ? "" : "s");
        for (struct api_conn *c = api->conns; c; c = c->next) {
            uv_os_fd_t fd;
            if (uv_fileno((uv_handle_t *)&c->h, &fd) == 0) shutdown(fd, SHUT_RDWR);
        }
        return;
    }
    if (api->n_conns > 0) {
        for (struct api_conn *c = api->conns; c; c = c->next)
            sbx_warn("api: a %s connection is still open at shutdown (handle %s, %s; h2o %s%s%s, %zu bytes in, %zu "
                     "out, %zu queued); leaving it",
                     c->public ? "share server" : "local API", uv_is_active((uv_handle_t *)&c->h) ? "active" : "idle",
                     uv_is_closing((uv_handle_t *)&c->h) ? "closing" : "open", c->sock->ssl ? "TLS" : "plain",
                     c->sock->_cb.read ? ", reading" : "", c->sock->_cb.write ? ", writing" : "", c->sock->bytes_read,
                     c->sock->bytes_written, uv_stream_get_write_queue_size((uv_stream_t *)&c->h));
        unref_conns(api);
    }
    uv_close((uv_handle_t *)t, NULL);
    api->stop_timer_on = false;
    uv_walk(api->d->loop, unref_h2o, api);
}

void sbx_api_stop(struct sbx_daemon *d)
{
    struct sbx_api *api = d->api;
    if (!api || api->stopping) return;
    api->stopping = true;
    if (api->sweep_timer_on) uv_close((uv_handle_t *)&api->sweep_timer, NULL);
    api->sweep_timer_on = false;
    /* Requests waiting on the daemon's own work are answered now, so their
     * connections can close like the others. */
    api_media_stop(api);
    api_upload_stop(api);
    if (api->tcp_on) uv_close((uv_handle_t *)&api->tcp, NULL);
    if (api->pub_on) uv_close((uv_handle_t *)&api->pub, NULL);
    if (api->unix_on) {
        uv_close((uv_handle_t *)&api->unix_sock, NULL);
        char sock[4096];
        if (sbx_datadir_path(sock, sizeof sock, d->data_dir, SBX_FILE_API_SOCKET) == 0) unlink(sock);
    }
    api->tcp_on = api->pub_on = api->unix_on = false;
    if (!api->local.ctx_on) return;
    h2o_context_request_shutdown(&api->local.ctx);
    if (api->public.ctx_on) h2o_context_request_shutdown(&api->public.ctx);
    expire_idle(api);
    api->stop_deadline_ms = sbx_now_ms() + SBX_API_SHUTDOWN_MS;
    uv_timer_init(d->loop, &api->stop_timer);
    api->stop_timer.data = api;
    api->stop_timer_on = true;
    uv_timer_start(&api->stop_timer, on_stop_tick, 0, 50);
}

void sbx_api_close(struct sbx_daemon *d)
{
    struct sbx_api *api = d->api;
    if (!api) return;
    struct api_server *srv[2] = {&api->local, &api->public};
    for (int i = 0; i < 2; i++) {
        if (srv[i]->ctx_on) {
            /* Entries a context links to its own timeouts (HTTP/2's
             * graceful shutdown timer) outlive the connections; h2o asserts
             * they are gone before it disposes of the timeouts. */
            h2o_context_t *ctx = &srv[i]->ctx;
            h2o_timeout_t *ts[] = {&ctx->zero_timeout,       &ctx->one_sec_timeout,   &ctx->hundred_ms_timeout,
                                   &ctx->handshake_timeout,  &ctx->http1.req_timeout, &ctx->http2.idle_timeout,
                                   &ctx->http2.graceful_shutdown_timeout, &ctx->proxy.io_timeout};
            for (size_t k = 0; k < SBX_ARRAY_LEN(ts); k++)
                for (int guard = 0; guard < 1 << 20 && !h2o_linklist_is_empty(&ts[k]->_entries); guard++)
                    h2o_timeout_unlink(H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, ts[k]->_entries.next));
            /* Outside uv_run: h2o_context_dispose runs the loop once itself
             * to free the handles it closes. */
            h2o_context_dispose(ctx);
        }
        if (srv[i]->config_on) h2o_config_dispose(&srv[i]->config);
    }
    api_upload_close(api);
    if (api->ssl) SSL_CTX_free(api->ssl);
    sbx_ratelimit_free(api->rl);
    sodium_memzero(api->token, sizeof api->token);
    sodium_memzero(api->cursor_key, sizeof api->cursor_key);
    free(api);
    d->api = NULL;
}

/* ---- control commands of the API's own (share links, rebuild) ---- */

json_t *sbx_api_control(struct sbx_daemon *d, const char *name, json_t *args, char *err, size_t errsz, int *code,
                        bool *handled)
{
    *handled = false;
    if (strcmp(name, "rebuild") == 0) {
        *handled = true;
        uint8_t before[32], after[32];
        int rc = sbx_engine_digest(d->engine, before);
        int64_t t0 = sbx_now_ms();
        if (rc == 0) rc = sbx_engine_rebuild_now(d->engine);
        if (rc == 0) rc = sbx_engine_digest(d->engine, after);
        if (rc != 0) {
            snprintf(err, errsz, "cannot rebuild the library: %s", sbx_strerror(rc));
            *code = rc;
            return NULL;
        }
        char hex[65];
        sbx_hex_encode(hex, after, 32);
        sbx_info("rebuilt the library model from the log in %lld ms", (long long)(sbx_now_ms() - t0));
        return json_pack("{s:s, s:b, s:I}", "state_digest", hex, "digest_unchanged", memcmp(before, after, 32) == 0,
                         "ms", (json_int_t)(sbx_now_ms() - t0));
    }
    return api_share_control(d, name, args, err, errsz, code, handled);
}

/* ---- GET /status ---- */

void h_status(struct api_req *r)
{
    json_t *s = api_control(r, "status", NULL);
    if (!s) return;
    json_t *o = sbx_json_camel(s);
    json_decref(s);
    json_object_set_new(o, "api", json_pack("{s:s?, s:s?, s:s?}", "listen", r->api->tcp_addr[0] ? r->api->tcp_addr : NULL,
                                            "public", r->api->pub_addr[0] ? r->api->pub_addr : NULL, "publicUrl",
                                            r->api->public_base[0] ? r->api->public_base : NULL));
    api_json(r, 200, o);
}
