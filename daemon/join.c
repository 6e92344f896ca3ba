/* shoebox join: a new device pairs with a member from an invitation URI.
 * The CLI runs this one session itself (blocking sockets, bounded time), so
 * joining needs no daemon: when it returns, the data dir holds the whole
 * library and shoeboxd can start. */
#include "join.h"

#include "shoebox/datadir.h"
#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/pair.h"
#include "shoebox/peer.h"
#include "shoebox/util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOIN_TIMEOUT_MS 60000
#define CONNECT_TIMEOUT_MS 5000

struct join_state {
    bool joined, closed;
    char reason[200];
};

static void on_event(sbx_peer *p, enum sbx_peer_event ev, const char *reason)
{
    struct join_state *js = sbx_peer_data(p);
    if (ev == SBX_PEER_JOINED) js->joined = true;
    if (ev == SBX_PEER_CLOSED) {
        js->closed = true;
        snprintf(js->reason, sizeof js->reason, "%s", reason ? reason : "closed");
    }
}

static int dial(const char *addr, int64_t deadline_ms)
{
    char host[300], port[8];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) return -1;
    size_t hl = (size_t)(colon - addr);
    memcpy(host, addr, hl);
    host[hl] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    char *h = host;
    if (h[0] == '[' && hl > 2) {
        h[hl - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(h, port, &hints, &res) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            close(fd);
            fd = -1;
            continue;
        }
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int64_t left = deadline_ms - sbx_now_ms();
        int err = 0;
        socklen_t el = sizeof err;
        if (left <= 0 || poll(&pf, 1, (int)(left < CONNECT_TIMEOUT_MS ? left : CONNECT_TIMEOUT_MS)) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Runs the session until the joiner holds the library, the peer closes, or
 * time runs out. */
static int run_session(int fd, sbx_peer *p, struct join_state *js, int64_t deadline_ms, uint64_t *received)
{
    uint8_t buf[65536];
    for (;;) {
        const uint8_t *out;
        size_t n;
        sbx_peer_output(p, &out, &n);
        while (n > 0) {
            ssize_t w = send(fd, out, n, MSG_NOSIGNAL);
            if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                poll(&pf, 1, 1000);
                continue;
            }
            if (w <= 0) return SBX_EIO;
            sbx_peer_output_consume(p, (size_t)w);
            sbx_peer_output(p, &out, &n);
        }
        if (js->closed) return js->joined ? 0 : SBX_EREFUSED;
        if (js->joined) sbx_peer_apply(p);
        if (js->joined && sbx_peer_caught_up(p)) return 0;
        int64_t left = deadline_ms - sbx_now_ms();
        if (left <= 0) return SBX_EAGAIN;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = poll(&pf, 1, (int)(left < 1000 ? left : 1000));
        if (pr < 0 && errno != EINTR) return SBX_EIO;
        if (pr <= 0) {
            sbx_peer_tick(p, sbx_now_ms());
            continue;
        }
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r <= 0) {
            if (!js->closed) snprintf(js->reason, sizeof js->reason, "the inviter closed the connection");
            js->closed = true;
            return js->joined && sbx_peer_caught_up(p) ? 0 : SBX_EREFUSED;
        }
        *received += (uint64_t)r;
        sbx_peer_input(p, buf, (size_t)r, sbx_now_ms());
        /* Apply when nothing more is waiting: batches stay large. */
        struct pollfd more = {.fd = fd, .events = POLLIN};
        if (poll(&more, 1, 0) == 0) sbx_peer_apply(p);
    }
}

int sbx_join_run(const char *dir, const char *uri, const char *name, enum sbx_role role, const char *pass,
                 size_t passlen, uint64_t *bytes_received, char *err, size_t errsz)
{
    uint64_t received = 0;
    sbx_pair_invite inv;
    int rc = sbx_pair_uri_parse(&inv, uri);
    if (rc != 0) {
        snprintf(err, errsz, "not a valid shoebox invitation: %s",
                 rc == SBX_ECORRUPT ? "its device id has a typo" : sbx_strerror(rc));
        return rc;
    }
    if (sbx_pair_invite_expired(&inv, sbx_now_ms() / 1000) != 0) {
        sbx_pair_invite_wipe(&inv);
        snprintf(err, errsz, "the invitation has expired: ask for a new one (shoebox pair)");
        return SBX_EEXPIRED;
    }
    char keypath[4096], dbpath[4096];
    int lock_fd = -1;
    long other = 0;
    struct sbx_identity id;
    sbx_store *store = NULL;
    sbx_engine *engine = NULL;
    sbx_peer *peer = NULL;
    bool created = false;
    uint8_t storage_key[SBX_STORAGE_KEY_BYTES];
    memset(&id, 0, sizeof id);
    if ((rc = sbx_mkdir_p(dir, 0700)) != 0) {
        snprintf(err, errsz, "cannot create data dir %s: %s", dir, sbx_strerror(rc));
        goto out;
    }
    rc = sbx_datadir_lock(dir, &lock_fd, &other);
    if (rc != 0) {
        snprintf(err, errsz, rc == SBX_EBUSY ? "shoeboxd (pid %ld) is running on this data dir: stop it first"
                                             : "cannot lock the data dir (%ld)",
                 other);
        goto out;
    }
    sbx_datadir_path(keypath, sizeof keypath, dir, SBX_FILE_KEY);
    sbx_datadir_path(dbpath, sizeof dbpath, dir, SBX_FILE_DB);
    struct stat st;
    if (stat(dbpath, &st) == 0) {
        rc = SBX_EEXIST;
        snprintf(err, errsz, "%s already holds a library; join needs a new data dir", dir);
        goto out;
    }
    bool sealed = false;
    rc = sbx_identity_unseal(keypath, pass, passlen, &id, storage_key, &sealed);
    if (rc == SBX_ENOENT) {
        sealed = pass != NULL;
        rc = sealed ? sbx_identity_create_sealed(keypath, pass, passlen, NULL, &id, storage_key)
                    : sbx_identity_create(keypath, &id);
    } else if (rc == 0 && pass && !sealed) {
        rc = SBX_ESTATE;
    }
    if (rc != 0) {
        snprintf(err, errsz, "cannot use the device key %s: %s", keypath,
                 rc == SBX_ELOCKED  ? "it is sealed: join with --encrypt and its passphrase"
                 : rc == SBX_ECRYPTO ? "wrong passphrase"
                 : rc == SBX_ESTATE  ? "it is not sealed; to encrypt, join from a new data dir"
                                     : sbx_strerror(rc));
        goto out;
    }
    char dberr[256] = "";
    created = true;
    rc = sbx_store_open_key(&store, dbpath, SBX_STORE_CREATE, sealed ? storage_key : NULL, dberr, sizeof dberr);
    if (rc == 0) rc = sbx_engine_prepare_join(store, &id, inv.library, name, role);
    if (rc == 0) rc = sbx_engine_open(&engine, store, &id, NULL);
    if (rc != 0) {
        snprintf(err, errsz, "cannot create the database: %s", dberr[0] ? dberr : sbx_strerror(rc));
        goto out;
    }
    int64_t deadline = sbx_now_ms() + JOIN_TIMEOUT_MS;
    struct join_state js = {0};
    rc = SBX_EIO;
    snprintf(err, errsz, "cannot reach the inviting device at any of its addresses");
    for (size_t i = 0; i < inv.naddrs; i++) {
        int fd = dial(inv.addrs[i], deadline);
        if (fd < 0) continue;
        struct sbx_peer_config cfg = {
            .initiator = true, .id = &id, .engine = engine, .psk = inv.psk, .expect_key = inv.device_key,
            .name = name, .join_role = role, .platform = "linux", .app_version = SBX_VERSION,
        };
        memset(&js, 0, sizeof js);
        rc = sbx_peer_new(&peer, &cfg, on_event, &js, sbx_now_ms());
        if (rc == 0) rc = run_session(fd, peer, &js, deadline, &received);
        close(fd);
        if (rc == 0) {
            sqlite3_stmt *ins = sbx_store_stmt(store, "INSERT INTO peer_addresses(device_key, address, source, "
                                                      "last_ok_at) VALUES (?1, ?2, 'invite', ?3) ON CONFLICT DO NOTHING");
            if (ins) {
                sqlite3_bind_blob(ins, 1, inv.device_key, 32, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, inv.addrs[i], -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 3, sbx_now_ms());
                sqlite3_step(ins);
                sqlite3_reset(ins);
            }
            err[0] = '\0';
            break;
        }
        if (rc == SBX_EAGAIN) snprintf(err, errsz, "the pairing did not finish in time");
        else if (!js.joined)
            snprintf(err, errsz, "the inviting device refused the pairing: the invitation is wrong, expired or already "
                                 "used (%s)", js.reason);
        else snprintf(err, errsz, "the connection broke before the library was copied (%s)", js.reason);
        sbx_peer_free(peer);
        peer = NULL;
        if (js.joined || rc == SBX_EREFUSED) break; /* an answer, not an unreachable address */
    }
out:
    sbx_peer_free(peer);
    sbx_engine_close(engine);
    sbx_store_close(store);
    if (rc != 0 && created) {
        /* A failed join leaves no half library behind (the key stays: it
         * is this device's identity). */
        sbx_store_remove_files(dbpath);
    }
    sbx_identity_wipe(&id);
    sodium_memzero(storage_key, sizeof storage_key);
    sbx_pair_invite_wipe(&inv);
    if (lock_fd >= 0) close(lock_fd);
    if (bytes_received) *bytes_received = received;
    return rc;
}
