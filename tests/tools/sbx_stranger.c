/* Test tool: a device that is not a member dials a daemon, completes a valid
 * Noise_XX handshake with its own key, and reports what the daemon did.
 *   sbx-stranger HOST:PORT MEMBER_DB
 * It first copies the log from MEMBER_DB (a member's database, read only),
 * so that it knows the library and its members as a real device would.
 * Prints "refused: REASON" (exit 0) when the daemon closed the session, or
 * "accepted" (exit 1) when it went on to sync. */
#include "shoebox/engine.h"
#include "shoebox/log.h"
#include "shoebox/peer.h"
#include "shoebox/util.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool closed, ready, authed;
static char why[200];

static void on_event(sbx_peer *p, enum sbx_peer_event ev, const char *reason)
{
    (void)p;
    if (ev == SBX_PEER_AUTHENTICATED) authed = true;
    if (ev == SBX_PEER_READY) ready = true;
    if (ev == SBX_PEER_CLOSED) {
        closed = true;
        snprintf(why, sizeof why, "%s", reason ? reason : "");
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 || sodium_init() < 0) return 2;
    sbx_log_set_level(SBX_LOG_ERROR);
    char dir[] = "/tmp/sbx-stranger-XXXXXX", path[64], err[256];
    if (!mkdtemp(dir)) return 2;
    snprintf(path, sizeof path, "%s/db", dir);
    struct sbx_identity id;
    crypto_sign_keypair(id.pk, id.sk);
    uint8_t lib[16];
    size_t liblen = 0;
    sbx_store *store = NULL, *member = NULL;
    sbx_engine *engine = NULL;
    if (sbx_store_open(&member, argv[2], SBX_STORE_READONLY, err, sizeof err) != 0 ||
        sbx_store_meta_get(member, "library_id", lib, sizeof lib, &liblen) != 0 ||
        sbx_store_open(&store, path, SBX_STORE_CREATE, err, sizeof err) != 0 ||
        sbx_engine_prepare_join(store, &id, lib, "stranger", SBX_ROLE_CACHE) != 0 ||
        sbx_engine_open(&engine, store, &id, NULL) != 0) {
        fprintf(stderr, "sbx-stranger: cannot set up: %s\n", err);
        return 2;
    }
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(sbx_store_db(member), "SELECT raw FROM entries ORDER BY hlc", -1, &st, NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const uint8_t *raw = sqlite3_column_blob(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        sbx_engine_receive(engine, &raw, &len, 1, sbx_now_ms(), NULL);
    }
    sqlite3_finalize(st);
    sbx_store_close(member);
    char host[64];
    snprintf(host, sizeof host, "%s", argv[1]);
    char *colon = strrchr(host, ':');
    if (!colon) return 2;
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return 2;
    struct sbx_peer_config cfg = {.initiator = true, .id = &id, .engine = engine, .name = "stranger"};
    sbx_peer *p = NULL;
    if (sbx_peer_new(&p, &cfg, on_event, NULL, sbx_now_ms()) != 0) return 2;
    uint8_t buf[65536];
    for (int i = 0; i < 100 && !closed && !ready; i++) {
        const uint8_t *out;
        size_t n;
        sbx_peer_output(p, &out, &n);
        if (n) {
            if (send(fd, out, n, MSG_NOSIGNAL) != (ssize_t)n) break;
            sbx_peer_output_consume(p, n);
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) != 1) continue;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0) {
            if (!closed) snprintf(why, sizeof why, "connection closed by the daemon");
            closed = true;
            break;
        }
        sbx_peer_input(p, buf, (size_t)r, sbx_now_ms());
    }
    close(fd);
    int rc = 1;
    if (closed && !ready) {
        printf("refused: %s%s\n", why, authed ? " (after a complete handshake)" : "");
        rc = 0;
    } else {
        printf("accepted\n");
    }
    sbx_peer_free(p);
    sbx_engine_close(engine);
    sbx_store_close(store);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    if (system(path) != 0) rc = 2;
    return rc;
}
