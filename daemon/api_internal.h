/* Private to the HTTP API's files (daemon/api*.c): the server's state, the
 * request context every handler gets, and the helpers they share. */
#ifndef SHOEBOX_API_INTERNAL_H
#define SHOEBOX_API_INTERNAL_H

#include "daemon.h"

#include <h2o.h>

#include "shoebox/api.h"
#include "shoebox/blob.h"

struct api_conn;
struct fetch_wait;
struct complete_job;
struct chunk_job;

/* One h2o server: its configuration and context on the daemon's loop. The
 * local API and the public share server each have one, so the public side
 * gets its own limits (it never takes a request body). */
struct api_server {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    bool config_on, ctx_on;
    h2o_hostconf_t *hosts[2];
    h2o_accept_ctx_t accept;
};

struct sbx_api {
    struct sbx_daemon *d;
    struct api_server local, public;
    SSL_CTX *ssl;
    uv_tcp_t tcp, pub;
    uv_pipe_t unix_sock;
    bool tcp_on, pub_on, unix_on;
    char tcp_addr[256], pub_addr[256];
    char public_base[512]; /* https://host:port, no trailing slash; "" when unknown */
    struct api_conn *conns;
    size_t n_conns;
    uv_timer_t stop_timer, sweep_timer;
    bool sweep_timer_on;
    bool stop_timer_on, stop_forced;
    int64_t stop_deadline_ms;
    bool stopping;
    uint8_t cursor_key[32];
    char token[160];
    size_t token_len;
    sbx_blobstore *blobs; /* the daemon's (d->blobs) */
    sbx_ratelimit *rl;
    /* Requests waiting for an original being fetched (api_media.c), and
     * the timer that answers them when it arrives or their wait ends. */
    struct fetch_wait *waiters;
    size_t n_waiters;
    uv_timer_t wait_timer;
    bool wait_timer_on;
    /* Upload completions (api_upload.c): the one running on the thread
     * pool, those queued behind it, and the worker's own SQLite connection
     * and blob store handle (the loop's connection never leaves the loop). */
    struct complete_job *job_running, *jobs_head, *jobs_tail;
    size_t n_jobs;
    sbx_store *wstore;
    sbx_blobstore *wblobs;
    /* Chunk writes (api_upload.c): those on the thread pool, those waiting
     * for a slot (or for a write of the same chunk to end), and the lock
     * under which workers set bits in the sessions' chunk maps. */
    struct chunk_job *chunks_running, *chunks_waiting;
    size_t n_chunks_running;
    uv_mutex_t map_lock;
    bool map_lock_on;
};

/* One request, as a handler sees it. */
struct api_req {
    struct sbx_api *api;
    struct sbx_daemon *d;
    h2o_req_t *req;
    struct sbx_api_match m;
    const char *query;
    size_t query_len;
};

/* Every handler answers the request itself, always. */
#define SBX_API_HANDLER_DECL(name, method, pattern, server) void h_##name(struct api_req *r);
SBX_API_ROUTES(SBX_API_HANDLER_DECL)
#undef SBX_API_HANDLER_DECL

/* ---- responses (api.c) ---- */
void api_header(struct api_req *r, const h2o_token_t *token, const char *value);
void api_header_str(struct api_req *r, const char *name, const char *value);
/* The connection ends after this response (the daemon is stopping). On
 * HTTP/1 a "Connection: close" header says so; HTTP/2 forbids that header
 * (a client refuses the response that carries it, RFC 9113 8.2.2): there
 * h2o's graceful shutdown (GOAWAY) ends the connection. */
void api_close_after(struct api_req *r);
/* Sends a JSON body; takes the reference to `body`. */
void api_json(struct api_req *r, int status, json_t *body);
void api_error(struct api_req *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A plain text body (share server: "Not Found" and nothing else). */
void api_plain(struct api_req *r, int status, const char *text);
void api_send_bytes(struct api_req *r, int status, const char *content_type, const void *body, size_t len);
const char *api_reason(int status);

/* The JSON body of the request (an empty body is {}); NULL after sending a
 * 400 when it is not a JSON object. */
json_t *api_body(struct api_req *r);
/* A query parameter into buf: true when present (and decoded). */
bool api_query(struct api_req *r, const char *name, char *buf, size_t cap);
/* Path parameter i, percent-decoded; false after sending a 400. */
bool api_param(struct api_req *r, size_t i, char *buf, size_t cap);
/* Path parameter i as a 16-byte id (a full UUID); false after a 400. */
bool api_param_id(struct api_req *r, size_t i, const char *what, uint8_t id[16]);
/* The client's address as a rate-limit key (IPv4, or an IPv6 /64); 0 when
 * unknown (a unix socket). */
size_t api_peer_key(h2o_req_t *req, uint8_t key[16]);
/* A request header's value, or NULL. */
const char *api_req_header(struct api_req *r, const h2o_token_t *token, size_t *len);

/* Runs a control command (daemon/commands.c) and returns its result (new
 * reference), or NULL after answering with the error it gave, its status
 * from the command's SBX_E* code (sbx_api_status_for_error). */
json_t *api_control(struct api_req *r, const char *cmd, json_t *args);

/* ---- library (api_library.c) ---- */
json_t *api_album_json(struct sbx_daemon *d, const uint8_t id[16], bool *deleted, int64_t *updated_at);
/* The feed's position of everything up to now. */
void api_feed_now(struct sbx_api *api, char out[SBX_API_CURSOR_STRLEN + 1]);

/* ---- media (api_media.c) ---- */
enum api_media { API_THUMB, API_MEDIUM, API_ORIGINAL };
/* Streams a photo's thumbnail, medium or original (ETag, Range). With
 * `share` every failure is the share server's plain answer. */
void api_media_send(struct api_req *r, const uint8_t photo[16], enum api_media which, bool share);
/* At shutdown: answers every waiting request (503) and closes the timer. */
void api_media_stop(struct sbx_api *api);

/* ---- uploads (api_upload.c) ---- */
/* Marks stale sessions failed and removes staging files no session owns. */
void api_upload_sweep(struct sbx_api *api);
/* At shutdown: queued completions and chunk writes that have not started
 * are answered 503 (those running finish: the loop waits for them). */
void api_upload_stop(struct sbx_api *api);
/* After the loop ended: the worker's handles. */
void api_upload_close(struct sbx_api *api);

/* ---- share links (api_share.c) ---- */
/* As sbx_api_control: NULL on failure, with the message in err and the
 * SBX_E* code in *code. */
json_t *api_share_control(struct sbx_daemon *d, const char *name, json_t *args, char *err, size_t errsz, int *code,
                          bool *handled);

#endif
