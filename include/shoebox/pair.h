/* Pairing invitations: what a device already in a library shows (as a QR
 * code or a link) so that a new device can find it and prove it was invited.
 *
 * An invitation names the library, the inviter's Ed25519 public key (so the
 * new device knows whom it is talking to), where to reach the inviter, and a
 * one-time secret that both sides use as the PSK of Noise_XXpsk3. It expires:
 * the inviter refuses it afterwards, and so should the scanner.
 *
 * The URI form is a contract between versions and implementations:
 *
 *   shoebox://pair?v=1&lib=<uuid>&dev=<device id>&addr=<host:port>[&addr=...]
 *                 &psk=<base64url, no padding>&exp=<unix seconds>
 *
 * Values are percent-encoded where RFC 3986 requires it (the brackets of an
 * IPv6 address). Keys may come in any order; addr repeats, in order of
 * preference; every other key appears once. A v=1 URI carries exactly these
 * keys: anything new bumps v, and a parser refuses a version it does not know.
 */
#ifndef SHOEBOX_PAIR_H
#define SHOEBOX_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include "shoebox/limits.h"

/* The fixed start of every pairing URI. */
#define SBX_PAIR_URI_PREFIX "shoebox://pair"

typedef struct sbx_pair_invite {
    uint8_t library[16];
    uint8_t device_key[32]; /* the inviter's Ed25519 public key */
    uint8_t psk[32];        /* one-time secret; wipe with sbx_pair_invite_wipe */
    int64_t expires_s;      /* Unix seconds; expired from this second on */
    size_t naddrs;          /* 1..SBX_MAX_PAIR_ADDRS */
    char addrs[SBX_MAX_PAIR_ADDRS][SBX_MAX_PAIR_ADDR + 1];
} sbx_pair_invite;

/* Starts an invitation with a fresh random PSK and no addresses. Returns
 * SBX_EINVAL for a negative expiry. */
int sbx_pair_invite_init(sbx_pair_invite *inv, const uint8_t library[16],
                         const uint8_t device_key[32], int64_t expires_s);

/* Appends an address. SBX_EMALFORMED unless `addr` is "a.b.c.d:port",
 * "[IPv6]:port" (no zone) or "dns.name:port" with a port in 1..65535;
 * SBX_ETOOBIG when it is longer than SBX_MAX_PAIR_ADDR or the invitation
 * already holds SBX_MAX_PAIR_ADDRS. */
int sbx_pair_invite_add_addr(sbx_pair_invite *inv, const char *addr);

/* Checks one address with the rules of sbx_pair_invite_add_addr. */
int sbx_pair_addr_check(const char *addr);

/* 0 while the invitation is valid at `now_s`, SBX_EEXPIRED from its expiry
 * second on. The caller passes the clock in. */
int sbx_pair_invite_expired(const sbx_pair_invite *inv, int64_t now_s);

/* Wipes the invitation, the PSK included. */
void sbx_pair_invite_wipe(sbx_pair_invite *inv);

/* Formats the URI. SBX_EINVAL when the invitation breaks a rule above (no
 * address, a bad address, a negative expiry). The output holds the secret. */
int sbx_pair_uri_format(char out[SBX_MAX_PAIR_URI + 1], const sbx_pair_invite *inv);

/* Parses a URI strictly. Returns SBX_ETOOBIG for a URI over SBX_MAX_PAIR_URI
 * characters, more than SBX_MAX_PAIR_ADDRS addresses or an address over
 * SBX_MAX_PAIR_ADDR; SBX_EUNSUPPORTED for a version other than 1;
 * SBX_ECORRUPT when the device id fails its check characters;
 * SBX_EMALFORMED for anything else (a missing, repeated or unknown key, bad
 * percent-encoding, a bad value). On error `inv` is wiped. Expiry is not
 * checked here: see sbx_pair_invite_expired. */
int sbx_pair_uri_parse(sbx_pair_invite *inv, const char *uri);

/* Renders `uri` as a QR code (level M, 8-bit mode) for a UTF-8 terminal, in
 * the convention of `qrencode -t UTF8`: each text line holds two module rows
 * drawn with U+2580 (upper half), U+2584 (lower half), U+2588 (full block)
 * and space, where a block is a LIGHT module, so that light-on-dark
 * terminals show dark modules dark. A quiet zone of 4 modules surrounds the
 * code. `*out` is a malloc'd, NUL-terminated string of lines that each end
 * with '\n'; the caller frees it. SBX_EINVAL for an empty `uri`,
 * SBX_ETOOBIG when it does not fit in a QR code or exceeds SBX_MAX_PAIR_URI.
 * A one-address invitation (213 characters) is 65 columns by 33 lines. */
int sbx_pair_qr_text(const char *uri, char **out);

/* Writes `uri` as a QR code to a 1-bit grayscale PNG at `path`, atomically
 * and with mode 0600 (the image holds the one-time secret). Each module is
 * `scale` pixels square (1..SBX_MAX_QR_SCALE), dark on light, with a quiet
 * zone of 4 modules. */
int sbx_pair_qr_png(const char *uri, const char *path, int scale);

#endif
