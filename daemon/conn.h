/* A peer connection of the daemon: a libuv TCP handle and its session.
 * Private to daemon/ (net.c owns it; transfer.c reads it). */
#ifndef SHOEBOX_CONN_H
#define SHOEBOX_CONN_H

#include "daemon.h"
#include "shoebox/peer.h"

#define READ_BUF 65536

struct conn {
    uv_tcp_t tcp;
    struct sbx_daemon *d;
    sbx_peer *peer;
    bool outbound, connected, closing, want_close;
    size_t inflight;
    char addr[80];
    uint8_t dial_key[SBX_KEY_BYTES];
    uint8_t buf[READ_BUF];
    struct conn *next;
};

#endif
