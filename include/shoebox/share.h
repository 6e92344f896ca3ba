/* Share links: tokens signed by the creating device, and the check any
 * device of the library runs before it serves one.
 *
 * A link is created by a share.create op in the log (id, album or photo,
 * expiry) and revoked by share.revoke, so every device knows it. Its token
 * is base64url(version || link id || Ed25519 signature), the signature made
 * by the creating device over
 *   "shoebox/share/1" || library id || link id || 'a' or 'p' || target id
 *   || expires_at (int64 ms, big-endian, 0 = never).
 * The token names only the link; the serving device takes target, expiry
 * and creator from its log and checks the signature against them, so a
 * token cannot be pointed at another album, stretched past its expiry or
 * forged by anyone without the creator's key. Signatures are deterministic,
 * so the creating device can print a link's token again at any time
 * without storing it. */
#ifndef SHOEBOX_SHARE_H
#define SHOEBOX_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/store.h"

#define SBX_SHARE_TOKEN_VERSION 1
#define SBX_SHARE_TOKEN_BYTES 81   /* 1 + 16 + 64 */
#define SBX_SHARE_TOKEN_STRLEN 108 /* base64url, no padding */

/* What a token's signature covers. */
struct sbx_share_claim {
    uint8_t library[16];
    uint8_t link[16];
    bool is_album;
    uint8_t target[16];
    int64_t expires_at_ms; /* 0: never expires */
};

void sbx_share_token_make(char out[SBX_SHARE_TOKEN_STRLEN + 1], const struct sbx_share_claim *c,
                          const uint8_t sk[64]);
/* Splits a token into link id and signature: SBX_EMALFORMED when it is not
 * a token of this version. */
int sbx_share_token_parse(const char *text, size_t len, uint8_t link[16], uint8_t sig[64]);
/* 0 when `sig` is the signature of `pk` over the claim, else SBX_ECRYPTO. */
int sbx_share_token_verify(const struct sbx_share_claim *c, const uint8_t sig[64], const uint8_t pk[32]);

/* A link as the log holds it. */
struct sbx_share_link {
    uint8_t id[16];
    bool is_album;
    uint8_t target[16];
    int64_t expires_at_ms; /* 0: never */
    int64_t created_at_ms;
    int64_t revoked_at_ms; /* 0: not revoked */
    uint8_t creator[32];
};

/* Reads link `id` from the store: SBX_ENOENT when the log has no
 * share.create for it. */
int sbx_share_load(sbx_store *s, const uint8_t id[16], struct sbx_share_link *out);

/* 0 when the album (is_album) or photo `id` is in the library and not
 * deleted; SBX_ENOENT when it is not (never created here, or deleted);
 * SBX_EDB. Links are made only for live targets and served only while
 * theirs is alive. */
int sbx_share_target_alive(sbx_store *s, bool is_album, const uint8_t id[16]);

/* The check before serving: the token parses, its link exists, is neither
 * revoked nor expired at now_ms, its target (album or photo) exists and is
 * not deleted, and the signature is the creator's over what the log says.
 * Every failure is SBX_ENOENT (the server answers all of them with the same
 * plain 404), except SBX_EDB. */
int sbx_share_resolve(sbx_store *s, const uint8_t library[16], const char *token, size_t len,
                      int64_t now_ms, struct sbx_share_link *out);

#endif
