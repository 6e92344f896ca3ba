/* The local control socket: the CLI sends one JSON request line, the daemon
 * answers with one JSON line and closes. The socket lives in the data dir
 * with mode 0600, so only the owner of the library can drive the daemon. */
#include "daemon.h"

#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct control_client {
    uv_pipe_t pipe;
    struct sbx_daemon *d;
    char *buf;
    size_t len, cap;
    bool answered;
    bool deferred; /* a command took the request: it answers later */
};

struct control_write {
    uv_write_t req;
    struct control_client *client;
    char *text;
};

static void client_closed(uv_handle_t *h)
{
    struct control_client *c = h->data;
    /* A request may have carried a passphrase (unlock). */
    if (c->buf) sodium_memzero(c->buf, c->cap);
    free(c->buf);
    free(c);
}

static void client_close(struct control_client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->pipe)) uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void on_written(uv_write_t *req, int status)
{
    struct control_write *w = (struct control_write *)req;
    (void)status;
    client_close(w->client);
    free(w->text);
    free(w);
}

static void respond(struct control_client *c, json_t *response)
{
    c->answered = true;
    char *text = json_dumps(response, JSON_COMPACT);
    json_decref(response);
    struct control_write *w = calloc(1, sizeof *w);
    if (!text || !w) goto fail;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) goto fail;
    text = line;
    text[n] = '\n';
    text[n + 1] = '\0';
    w->client = c;
    w->text = text;
    uv_buf_t b = uv_buf_init(text, (unsigned)(n + 1));
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_written) != 0) goto fail;
    return;
fail:
    free(text);
    free(w);
    client_close(c);
}

static json_t *error_response(const char *msg)
{
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct control_client *c = h->data;
    (void)suggested;
    if (c->cap - c->len < 4096) {
        size_t cap = c->cap ? c->cap * 2 : 8192;
        char *nb = cap <= SBX_MAX_CONTROL_LINE + 4096 ? realloc(c->buf, cap) : NULL;
        if (!nb) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = nb;
        c->cap = cap;
    }
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct control_client *c = s->data;
    (void)buf;
    if (c->answered) return;
    if (nread < 0) {
        client_close(c);
        return;
    }
    c->len += (size_t)nread;
    char *nl = memchr(c->buf, '\n', c->len);
    if (!nl) {
        if (c->len > SBX_MAX_CONTROL_LINE) {
            uv_read_stop(s);
            respond(c, error_response("request too large"));
        }
        return;
    }
    uv_read_stop(s);
    json_error_t jerr;
    json_t *req = json_loadb(c->buf, (size_t)(nl - c->buf), 0, &jerr);
    if (!req || !json_is_object(req)) {
        json_decref(req);
        respond(c, error_response("malformed request: expected one JSON object"));
        return;
    }
    c->d->control_current = c;
    json_t *resp = sbx_control_dispatch(c->d, req, NULL);
    c->d->control_current = NULL;
    json_decref(req);
    if (c->deferred) {
        json_decref(resp);
        return;
    }
    respond(c, resp);
}

sbx_control_pending *sbx_control_defer(struct sbx_daemon *d)
{
    struct control_client *c = d->control_current;
    if (c) c->deferred = true;
    return c;
}

void sbx_control_answer(sbx_control_pending *c, json_t *response)
{
    if (!c) {
        json_decref(response);
        return;
    }
    respond(c, response ? response : error_response("no answer"));
}

static void on_connection(uv_stream_t *server, int status)
{
    struct sbx_daemon *d = server->data;
    if (status < 0) return;
    struct control_client *c = calloc(1, sizeof *c);
    if (!c) return;
    c->d = d;
    uv_pipe_init(d->loop, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 ||
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0)
        client_close(c);
}

int sbx_control_start(struct sbx_daemon *d, char *errmsg, size_t size)
{
    char path[4096];
    int rc = sbx_datadir_path(path, sizeof path, d->data_dir, SBX_FILE_CONTROL);
    if (rc != 0 || strlen(path) >= 108) {
        snprintf(errmsg, size, "control socket path %s is too long for a unix socket", path);
        return SBX_ETOOBIG;
    }
    /* We hold the data dir lock, so a socket file left here is stale. */
    unlink(path);
    uv_pipe_init(d->loop, &d->control, 0);
    d->control.data = d;
    d->control_open = true;
    mode_t old = umask(077);
    rc = uv_pipe_bind(&d->control, path);
    umask(old);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&d->control, 16, on_connection);
    if (rc != 0) {
        snprintf(errmsg, size, "cannot listen on %s: %s", path, uv_strerror(rc));
        return SBX_EIO;
    }
    chmod(path, 0600);
    return 0;
}

void sbx_control_stop(struct sbx_daemon *d)
{
    if (!d->control_open) return;
    d->control_open = false;
    uv_close((uv_handle_t *)&d->control, NULL);
    char path[4096];
    if (sbx_datadir_path(path, sizeof path, d->data_dir, SBX_FILE_CONTROL) == 0) unlink(path);
}
