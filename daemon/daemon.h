/* The daemon's process-wide state: the libuv glue around the sans-I/O cores.
 * Private to daemon/: the cores never see it. */
#ifndef SHOEBOX_DAEMON_H
#define SHOEBOX_DAEMON_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "shoebox/blob.h"
#include "shoebox/engine.h"
#include "shoebox/limits.h"
#include "shoebox/identity.h"
#include "shoebox/store.h"

struct sbx_daemon_options {
    const char *data_dir;
    const char *listen;     /* HOST:PORT, may be NULL */
    const char *log_level;  /* may be NULL */
    uint64_t max_future_ms; /* 0: SBX_DEFAULT_MAX_FUTURE_MS */
    bool no_discovery;      /* --no-discovery */
    int upnp;               /* -1: by role (on for full), 0: off, 1: on */
    int64_t trash_days;     /* -1: 30 */
    int64_t cache_quota_mb; /* -1: none */
    /* The passphrase of an encrypted library (shoeboxd --passphrase-file);
     * NULL: such a library waits locked for 'shoebox unlock'. */
    const char *passphrase;
    size_t passphrase_len;
    /* The HTTP API (daemon/api.c): local listener (NULL: 127.0.0.1 and the
     * default port; "off": unix socket only), share server (NULL: off),
     * the base of share URLs, TLS for the share server. */
    const char *api_listen, *public_listen, *public_url, *tls_cert, *tls_key;
};

struct conn;
struct dialer;
struct sbx_transfers;
struct sbx_blobstore;
struct sbx_peer_blob_cb;
typedef struct sbx_peer sbx_peer;
struct control_client;
struct sbx_importer;
struct sbx_renderer;
struct sbx_api;

/* A pairing invitation this daemon handed out (shoebox pair). */
struct sbx_invite_slot {
    bool active, used;
    uint8_t psk[32];
    int64_t expires_at_ms;
};

struct sbx_daemon {
    uv_loop_t *loop;
    char data_dir[4096];
    char listen[256];
    struct sbx_identity id;
    sbx_store *store;
    sbx_engine *engine;
    sbx_blobstore *blobs;           /* originals, thumbnails, mediums */
    struct sbx_importer *importer;  /* daemon/import.c */
    struct sbx_renderer *renderer;  /* daemon/render.c */
    int lock_fd;
    int64_t started_at_ms;
    uv_pipe_t control;
    bool control_open;
    struct control_client *control_current; /* the request being dispatched */
    char device_name[SBX_MAX_NAME + 1];
    /* An encrypted library (sealed key file). Locked: only the control
     * socket runs, answering status and unlock, until the passphrase
     * comes; no key, database or blob is open. */
    bool encrypted;
    bool locked;
    struct sbx_daemon_options options; /* as started, without the passphrase */
    /* Peers (daemon/net.c). */
    uv_tcp_t listener;
    bool listener_on;
    uint16_t listen_port;
    uv_timer_t net_timer;
    bool net_timer_on;
    uv_check_t net_check;
    bool net_check_on;
    struct conn *conns;
    struct dialer *dialers;
    size_t n_dialers;
    struct sbx_invite_slot invites[16];
    char upnp_external[80];
    bool discovery_on, upnp_wanted, upnp_mapped, upnp_busy;
    struct sbx_discovery *discovery;
    struct sbx_upnp_req *upnp_req;
    int64_t upnp_renew_at;
    int64_t trash_ms, cache_quota_bytes, gc_next_at;
    struct sbx_transfers *xfers;
    bool test_corrupt_chunks;
    uv_signal_t sig_int, sig_term;
    bool signals_on;
    bool stopping;
    struct sbx_api *api; /* daemon/api.c */
};

/* Opens everything (lock, key, database, engine) and starts the control
 * socket. On failure prints nothing; `errmsg` says what went wrong. */
int sbx_daemon_open(struct sbx_daemon *d, uv_loop_t *loop, const struct sbx_daemon_options *opt,
                    char *errmsg, size_t errmsg_size);
/* Opens a locked daemon's library with the passphrase, then starts what
 * an unlocked daemon runs. SBX_ECRYPTO for a wrong passphrase, SBX_ESTATE
 * when not locked; on failure the daemon stays locked, nothing changed. */
int sbx_daemon_unlock(struct sbx_daemon *d, const char *pass, size_t passlen, char *errmsg, size_t errmsg_size);
/* Closes every handle, then lets the loop end. */
void sbx_daemon_stop(struct sbx_daemon *d);
/* Frees what is left after the loop ended. */
void sbx_daemon_close(struct sbx_daemon *d);

/* The control socket (DIR/control.sock): one JSON request line in, one JSON
 * response line out, for the CLI and scripts on this device. */
int sbx_control_start(struct sbx_daemon *d, char *errmsg, size_t errmsg_size);
void sbx_control_stop(struct sbx_daemon *d);

/* Runs one control command; returns the response object (owned by caller):
 * {"ok": true, "result": ...} or {"ok": false, "error": "..."}. With
 * `code`, *code is 0, or the failure's SBX_E* code (what the HTTP API
 * answers with; the control socket's JSON carries the message only). */
json_t *sbx_control_dispatch(struct sbx_daemon *d, json_t *request, int *code);

/* A request answered later (an import answers when it ends). A command
 * calls sbx_control_defer while it runs: its own return value is then
 * dropped, and the answer goes out through exactly one sbx_control_answer
 * (which takes the response, as dispatch returns it). */
typedef struct control_client sbx_control_pending;
sbx_control_pending *sbx_control_defer(struct sbx_daemon *d);
void sbx_control_answer(sbx_control_pending *p, json_t *response);

/* Peers: listen, dial members, sessions (daemon/net.c). */
int sbx_net_start(struct sbx_daemon *d, char *errmsg, size_t errmsg_size);
void sbx_net_stop(struct sbx_daemon *d);
json_t *sbx_net_peers_json(struct sbx_daemon *d);
json_t *sbx_net_invite(struct sbx_daemon *d, int64_t ttl_s, char *err, size_t errsz);
void sbx_net_add_address(struct sbx_daemon *d, const uint8_t key[32], const char *addr, const char *source);

/* Blob transfers (daemon/transfer.c). */
int sbx_transfer_init(struct sbx_daemon *d);
void sbx_transfer_free(struct sbx_daemon *d);
void sbx_transfer_tick(struct sbx_daemon *d);
void sbx_transfer_gc(struct sbx_daemon *d);
void sbx_transfer_session_closed(struct sbx_daemon *d, sbx_peer *p);
/* A session became ready: blobs waiting for a peer are tried now. */
void sbx_transfer_session_ready(struct sbx_daemon *d);
const struct sbx_peer_blob_cb *sbx_transfer_callbacks(void);
/* Fetch an original now (shoebox get); progress while it runs. */
int sbx_transfer_want(struct sbx_daemon *d, const uint8_t hash[32]);
int sbx_transfer_progress(struct sbx_daemon *d, const uint8_t hash[32], uint64_t *done, uint64_t *size);

/* Imports (daemon/import.c, docs/import.md). init runs in sbx_daemon_open:
 * jobs a killed daemon left "running" become resumable "failed" ones. */
int sbx_import_init(struct sbx_daemon *d);
/* Asks a running import to stop; its request is answered when the worker
 * has let go (the loop keeps running until then). */
void sbx_import_stop(struct sbx_daemon *d);
void sbx_import_close(struct sbx_daemon *d);
/* Starts (or resumes) an import of files, folders and Takeout zips
 * (absolute paths) on a worker thread; `reply` gets the summary
 * {"ok": true, "result": {imported, duplicates, skipped, errors: [{path,
 * reason}], files, bytes, job_id, resumed}} when it ends. 0, or an error
 * code with a message in err (nothing started, reply untouched). */
int sbx_import_start(struct sbx_daemon *d, json_t *paths, sbx_control_pending *reply, char *err,
                     size_t errsz);
/* The running import's progress ({"running": false} when none), and the
 * list of running jobs for `shoebox status`. */
json_t *sbx_import_progress_json(struct sbx_daemon *d);
/* Whether an import job is running now. */
bool sbx_import_running(struct sbx_daemon *d);
json_t *sbx_import_jobs_json(struct sbx_daemon *d);

/* The background renderer of thumbnails and mediums (daemon/render.c,
 * docs/import.md): start runs where imports are prepared and starts its
 * worker threads; kick makes it look at the queue now (an import applied a
 * batch); stop joins the workers and writes what they finished; close frees
 * it after the loop ended. The status is {"pending": N, "failed": N,
 * "threads": N}. */
int sbx_render_start(struct sbx_daemon *d);
void sbx_render_kick(struct sbx_daemon *d);
void sbx_render_stop(struct sbx_daemon *d);
void sbx_render_close(struct sbx_daemon *d);
json_t *sbx_render_status_json(struct sbx_daemon *d);
/* Renders the thumbnail and the medium of an original (len bytes at buf)
 * and stores both in bs, naming them in thumb and medium. *rendered says
 * which step a failure came from: false, the image cannot be rendered (the
 * render's error: SBX_EUNSUPPORTED for a type that gets none); true, the
 * store failed. Safe on any thread with its own blob store handle. */
int sbx_render_renditions(sbx_blobstore *bs, const uint8_t *buf, size_t len, uint8_t thumb[32], uint8_t medium[32],
                          bool *rendered);

/* The HTTP API and the share server (daemon/api*.c). start runs in
 * sbx_daemon_open, stop in sbx_daemon_stop, close after the loop ended. */
int sbx_api_start(struct sbx_daemon *d, const struct sbx_daemon_options *opt, char *errmsg, size_t errmsg_size);
void sbx_api_stop(struct sbx_daemon *d);
void sbx_api_close(struct sbx_daemon *d);
/* A blob became complete and verified (the transfer layer calls it): API
 * requests waiting for it are answered on the next turn of the loop. */
void sbx_api_blob_ready(struct sbx_daemon *d, const uint8_t hash[32]);
/* Control commands the API module adds (share.*, rebuild); *handled false
 * when `name` is none of them. On failure NULL, with the message in err and
 * the SBX_E* code in *code. */
json_t *sbx_api_control(struct sbx_daemon *d, const char *name, json_t *args, char *err, size_t errsz, int *code,
                        bool *handled);

/* From commands.c, for the API: the photo columns of a listing and the
 * JSON of one such row; id (or unique prefix) resolution. */
extern const char sbx_photo_columns[];
json_t *sbx_photo_json(sqlite3_stmt *st);
int sbx_resolve_id(struct sbx_daemon *d, const char *what, const char *table, const char *prefix, uint8_t out[16],
                   char *err, size_t errsz);

/* Test hook for work moved off the loop thread: when the environment
 * variable `env` names a PATH, creates PATH.waiting and waits (at most a
 * minute) until PATH exists, so a test can check that the daemon answers
 * while that work runs. Call it on a worker thread only. */
void sbx_test_gate(const char *env);

/* An RFC 3339 UTC string for ms since the epoch. */
json_t *sbx_json_time(int64_t ms);

#endif
