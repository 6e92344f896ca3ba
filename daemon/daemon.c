#include "daemon.h"

#include "shoebox/blob.h"
#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/util.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void on_signal(uv_signal_t *h, int signum)
{
    struct sbx_daemon *d = h->data;
    sbx_info("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    sbx_daemon_stop(d);
}

static const char *key_problem(int rc)
{
    return rc == SBX_ENOENT     ? "missing; run 'shoebox init'"
           : rc == SBX_EPERM    ? "unreadable, or readable by others (chmod 600 it)"
           : rc == SBX_ECORRUPT ? "damaged"
           : rc == SBX_ECRYPTO  ? "sealed with another passphrase: wrong passphrase"
           : rc == SBX_ELOCKED  ? "sealed: the library is encrypted and needs its passphrase"
                                : sbx_strerror(rc);
}

/* Test hook: SHOEBOX_TEST_FAIL_OPEN=import or render makes the first
 * opening of the library fail at that step (after the engine, the transfers
 * and the blob store are open; import: after the importer is set up too),
 * so a test can see that a failed unlock leaves nothing open and that the
 * next one works. */
static bool fail_injected(const char *step)
{
    static bool used;
    const char *v = getenv("SHOEBOX_TEST_FAIL_OPEN");
    if (used || !v || strcmp(v, step) != 0) return false;
    used = true;
    return true;
}

void sbx_test_gate(const char *env)
{
    const char *gate = getenv(env);
    if (!gate) return;
    char waiting[4096 + 16];
    snprintf(waiting, sizeof waiting, "%s.waiting", gate);
    FILE *w = fopen(waiting, "w");
    if (w) fclose(w);
    for (int i = 0; i < 6000 && access(gate, F_OK) != 0; i++) usleep(10000);
}

/* Undoes what open_library opened before networking, in reverse order:
 * the daemon is as it was before (locked, nothing of the library open),
 * and a later open_library starts from nothing. Only for failures up to
 * and including sbx_render_start: a renderer that started has loop handles
 * of its own, which close asynchronously (a failure after it is fatal). */
static void close_library(struct sbx_daemon *d)
{
    sbx_render_stop(d);
    sbx_render_close(d);
    sbx_import_close(d);
    sbx_transfer_free(d);
    sbx_blobstore_close(d->blobs);
    d->blobs = NULL;
    sbx_engine_close(d->engine);
    d->engine = NULL;
    sbx_store_close(d->store);
    d->store = NULL;
    sbx_identity_wipe(&d->id);
    d->device_name[0] = '\0';
    d->test_corrupt_chunks = false;
}

/* Opens the key, the database and the engine, then starts networking:
 * everything that needs the library. A locked daemon runs none of it until
 * sbx_daemon_unlock brings the passphrase (`pass`, NULL for a plain
 * library). */
static int open_library(struct sbx_daemon *d, const struct sbx_daemon_options *opt, const char *pass,
                        size_t passlen, bool *net_failed, char *errmsg, size_t size)
{
    *net_failed = false;
    char path[4096];
    uint8_t storage_key[SBX_STORAGE_KEY_BYTES];
    bool sealed = false;
    sbx_datadir_path(path, sizeof path, d->data_dir, SBX_FILE_KEY);
    int rc = sbx_identity_unseal(path, pass, passlen, &d->id, storage_key, &sealed);
    if (rc != 0) {
        snprintf(errmsg, size, "device key %s is %s", path, key_problem(rc));
        return rc;
    }
    sbx_datadir_path(path, sizeof path, d->data_dir, SBX_FILE_DB);
    char dberr[512] = "";
    rc = sbx_store_open_key(&d->store, path, 0, sealed ? storage_key : NULL, dberr, sizeof dberr);
    sodium_memzero(storage_key, sizeof storage_key);
    if (rc != 0) {
        snprintf(errmsg, size, "%s: %s", path, dberr);
        return rc;
    }
    struct sbx_engine_config cfg = {.max_future_ms = opt->max_future_ms};
    rc = sbx_engine_open(&d->engine, d->store, &d->id, &cfg);
    if (rc != 0) {
        snprintf(errmsg, size, "cannot open the library in %s: %s", d->data_dir, sbx_strerror(rc));
        return rc;
    }
    sbx_engine_set_data(d->engine, d);
    sbx_store_meta_get_text(d->store, "device_name", d->device_name, sizeof d->device_name);
    if ((rc = sbx_transfer_init(d)) != 0) {
        snprintf(errmsg, size, "out of memory");
        return rc;
    }
    /* Test hook: this daemon serves corrupted chunks (a lying peer). */
    const char *corrupt = getenv("SHOEBOX_TEST_CORRUPT_CHUNKS");
    d->test_corrupt_chunks = corrupt && *corrupt == '1';
    rc = sbx_blobstore_open(&d->blobs, d->data_dir, d->store);
    if (rc != 0) {
        snprintf(errmsg, size, "cannot open the blob store in %s/blobs: %s", d->data_dir, sbx_strerror(rc));
        return rc;
    }
    rc = sbx_import_init(d);
    if (rc == 0 && fail_injected("import")) rc = SBX_EIO;
    if (rc != 0) {
        snprintf(errmsg, size, "cannot prepare imports: %s", sbx_strerror(rc));
        return rc;
    }
    rc = fail_injected("render") ? SBX_EIO : sbx_render_start(d);
    if (rc != 0) {
        snprintf(errmsg, size, "cannot start the renderer: %s", sbx_strerror(rc));
        return rc;
    }
    /* UPnP: by default the always-on backup maps its port, phones and
     * laptops do not (they dial out). */
    if (opt->upnp < 0) {
        char role[16] = "";
        sbx_store_meta_get_text(d->store, "role", role, sizeof role);
        d->upnp_wanted = strcmp(role, "full") == 0;
    } else {
        d->upnp_wanted = opt->upnp == 1;
    }
    rc = sbx_net_start(d, errmsg, size);
    if (rc != 0) {
        *net_failed = true;
        return rc;
    }
    rc = sbx_api_start(d, opt, errmsg, size);
    if (rc != 0) {
        *net_failed = true;
        return rc;
    }
    d->locked = false;
    return 0;
}

int sbx_daemon_open(struct sbx_daemon *d, uv_loop_t *loop, const struct sbx_daemon_options *opt,
                    char *errmsg, size_t size)
{
    int rc;
    memset(d, 0, sizeof *d);
    d->loop = loop;
    d->lock_fd = -1;
    d->started_at_ms = sbx_now_ms();
    snprintf(d->data_dir, sizeof d->data_dir, "%s", opt->data_dir);
    if (opt->listen) snprintf(d->listen, sizeof d->listen, "%s", opt->listen);
    d->discovery_on = !opt->no_discovery;
    d->trash_ms = (opt->trash_days >= 0 ? opt->trash_days : 30) * 86400000LL;
    d->cache_quota_bytes = opt->cache_quota_mb >= 0 ? opt->cache_quota_mb * 1000000LL : -1;

    struct stat st;
    if (stat(d->data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(errmsg, size, "data dir %s does not exist; run 'shoebox --data %s init' first",
                 d->data_dir, d->data_dir);
        return SBX_ENOENT;
    }
    if (access(d->data_dir, R_OK | W_OK | X_OK) != 0) {
        snprintf(errmsg, size, "no permission to use data dir %s: %s", d->data_dir, strerror(errno));
        return SBX_EPERM;
    }
    long other = 0;
    rc = sbx_datadir_lock(d->data_dir, &d->lock_fd, &other);
    if (rc == SBX_EBUSY) {
        snprintf(errmsg, size, "another shoeboxd (pid %ld) is already using %s", other, d->data_dir);
        return rc;
    }
    if (rc != 0) {
        snprintf(errmsg, size, "cannot lock data dir %s: %s", d->data_dir, sbx_strerror(rc));
        return rc;
    }

    char path[4096];
    sbx_datadir_path(path, sizeof path, d->data_dir, SBX_FILE_KEY);
    rc = sbx_identity_probe(path, &d->encrypted);
    if (rc != 0) {
        snprintf(errmsg, size, "device key %s is %s", path, key_problem(rc));
        return rc;
    }
    d->options = *opt;
    d->options.passphrase = NULL;
    d->options.passphrase_len = 0;

    uv_signal_init(loop, &d->sig_int);
    uv_signal_init(loop, &d->sig_term);
    d->sig_int.data = d->sig_term.data = d;
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    d->signals_on = true;
    signal(SIGPIPE, SIG_IGN);

    if (d->encrypted && !opt->passphrase) {
        d->locked = true;
        sbx_info("the library is encrypted: waiting for its passphrase ('shoebox unlock')");
    } else {
        bool net_failed;
        rc = open_library(d, opt, opt->passphrase, opt->passphrase_len, &net_failed, errmsg, size);
        if (rc != 0) return rc;
    }
    return sbx_control_start(d, errmsg, size);
}

int sbx_daemon_unlock(struct sbx_daemon *d, const char *pass, size_t passlen, char *errmsg, size_t size)
{
    if (!d->locked) {
        snprintf(errmsg, size, "%s", d->encrypted ? "the library is already unlocked" : "the library is not encrypted");
        return SBX_ESTATE;
    }
    bool net_failed;
    int rc = open_library(d, &d->options, pass, passlen, &net_failed, errmsg, size);
    if (rc != 0 && net_failed) {
        /* The passphrase was right but networking cannot start (the listen
         * address is taken): as at an unlocked start, the daemon stops, and
         * its handles close on the way out rather than being reused. */
        sbx_error("%s", errmsg);
        sbx_daemon_stop(d);
        return rc;
    }
    if (rc != 0) {
        /* Back to locked, with nothing of the library open: the engine,
         * the transfers, the blob store, the importer and a renderer that
         * failed to start all go, so a retry starts from nothing (none of
         * them points at a closed store). */
        close_library(d);
        d->locked = true;
        return rc;
    }
    sbx_info("library unlocked");
    return 0;
}

void sbx_daemon_stop(struct sbx_daemon *d)
{
    if (d->stopping) return;
    d->stopping = true;
    sbx_import_stop(d);
    sbx_render_stop(d);
    sbx_control_stop(d);
    sbx_api_stop(d);
    sbx_net_stop(d);
    if (d->signals_on) {
        uv_close((uv_handle_t *)&d->sig_int, NULL);
        uv_close((uv_handle_t *)&d->sig_term, NULL);
        d->signals_on = false;
    }
}

void sbx_daemon_close(struct sbx_daemon *d)
{
    free(d->dialers);
    d->dialers = NULL;
    /* The API first: it reads blobs and the store. Then the library, as a
     * failed unlock undoes it (a daemon that failed to open was never
     * stopped: close_library stops the renderer too). */
    sbx_api_close(d);
    close_library(d);
    if (d->lock_fd >= 0) close(d->lock_fd);
    d->lock_fd = -1;
}
