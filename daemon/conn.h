/* A peer connection of the daemon: a libuv TCP handle and its session.
 * Private to daemon/ (net.c owns it; transfer.c reads it). */
#ifndef SHOEBOX_CONN_H
#define SHOEBOX_CONN_H

#include "daemon.h"
#include "shoebox/peer.h"

/* Reads of up to 256 KiB: a Noise frame (up to 64 KiB) that lies whole in
 * one read is handled in place, one cut by the read's end is copied; with
 * reads of one frame's size nearly every frame was cut. */
#define READ_BUF (256u << 10)

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
