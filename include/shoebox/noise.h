/* Noise protocol framework (revision 34), sans-I/O.
 *
 * Two protocols, both on libsodium:
 *   Noise_XX_25519_ChaChaPoly_BLAKE2b      between members of a library,
 *   Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b  for pairing, with the one-time
 *                                          secret from the QR code as PSK.
 *
 * The handshake state takes whole Noise messages in and hands whole Noise
 * messages out: it never touches a socket, a clock or global state, so the
 * same code runs under the libuv transport and under the simulator. Framing
 * on TCP is shoebox/frame.h.
 *
 * Failure policy: any failed call on a handshake state (bad message, wrong
 * call order, buffer too small, oversize payload) poisons it: its secrets are
 * wiped and every later call returns SBX_ESTATE. A failed read never leaves
 * plaintext in the caller's payload buffer. Cipher states (transport) are not
 * poisoned by a failed decrypt: the nonce does not advance, so the next valid
 * message still decrypts.
 *
 * Typical use (initiator; the responder mirrors it starting with a read):
 *   sbx_noise_hs_new(&hs, 1, prologue, plen, s_priv, NULL);
 *   while (sbx_noise_hs_turn(hs) != SBX_NOISE_TURN_DONE)
 *       turn == WRITE ? sbx_noise_hs_write(...) : sbx_noise_hs_read(...);
 *   sbx_noise_hs_remote_static(hs, rs);   // authorize the peer
 *   sbx_noise_hs_split(hs, &tx, &rx);
 *   sbx_noise_hs_free(hs);
 */
#ifndef SHOEBOX_NOISE_H
#define SHOEBOX_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/limits.h"

#define SBX_NOISE_DHLEN 32u
#define SBX_NOISE_HASHLEN 64u
#define SBX_NOISE_KEYLEN 32u
#define SBX_NOISE_PSKLEN 32u
/* Largest handshake overhead of XX/XXpsk3 (message 2: e, encrypted s, tag).
 * A handshake message is payload_len + at most this many bytes. */
#define SBX_NOISE_HS_MAX_OVERHEAD 96u
/* Largest payload that fits in any handshake message of XX/XXpsk3. */
#define SBX_NOISE_HS_MAX_PAYLOAD (SBX_NOISE_MAX_MSG - SBX_NOISE_HS_MAX_OVERHEAD)

typedef struct sbx_noise_hs sbx_noise_hs;
typedef struct sbx_noise_cs sbx_noise_cs;

/* What the handshake expects next (sbx_noise_hs_turn). */
enum sbx_noise_turn {
    SBX_NOISE_TURN_WRITE = 1, /* call sbx_noise_hs_write */
    SBX_NOISE_TURN_READ = 2,  /* call sbx_noise_hs_read */
    SBX_NOISE_TURN_DONE = 3,  /* handshake complete: call sbx_noise_hs_split */
};

/* Creates a handshake state. `s_priv` is the local static X25519 private key.
 * `psk` is NULL for Noise_XX or 32 bytes for Noise_XXpsk3. The prologue (may
 * be NULL when prologue_len is 0) must be identical on both sides. The
 * ephemeral key is drawn from libsodium's CSPRNG when the first message is
 * processed unless sbx_noise_hs_set_ephemeral was called. */
int sbx_noise_hs_new(sbx_noise_hs **out, int initiator, const uint8_t *prologue,
                     size_t prologue_len, const uint8_t s_priv[32],
                     const uint8_t *psk);

/* Fixes the ephemeral private key instead of drawing a random one. Only for
 * test vectors and the deterministic simulator: a reused ephemeral key breaks
 * Noise's security. Valid only before the first message. */
int sbx_noise_hs_set_ephemeral(sbx_noise_hs *hs, const uint8_t e_priv[32]);

/* Writes the next handshake message carrying `payload` (NULL when len is 0)
 * into `out`. Needs out_cap >= len + SBX_NOISE_HS_MAX_OVERHEAD in general
 * (exactly: the message length, which *out_len receives). SBX_ETOOBIG when
 * the message would exceed SBX_NOISE_MAX_MSG, SBX_EINVAL when out_cap is too
 * small, SBX_ESTATE when it is not our turn. `out` and `payload` must not
 * overlap. */
int sbx_noise_hs_write(sbx_noise_hs *hs, const uint8_t *payload, size_t len,
                       uint8_t *out, size_t out_cap, size_t *out_len);

/* Reads the next handshake message and writes its payload (at most `cap`
 * bytes) to `payload`. SBX_ECRYPTO on a failed tag or an all-zero DH result,
 * SBX_EMALFORMED when the message is too short, SBX_ETOOBIG when it exceeds
 * SBX_NOISE_MAX_MSG, SBX_EINVAL when the payload does not fit in `cap`.
 * `msg` and `payload` must not overlap. */
int sbx_noise_hs_read(sbx_noise_hs *hs, const uint8_t *msg, size_t len,
                      uint8_t *payload, size_t cap, size_t *payload_len);

/* One of enum sbx_noise_turn, or SBX_ESTATE once poisoned or split. */
int sbx_noise_hs_turn(const sbx_noise_hs *hs);
/* True when every handshake message was processed (and not yet split). */
bool sbx_noise_hs_done(const sbx_noise_hs *hs);
/* Whether this side is the initiator. */
bool sbx_noise_hs_initiator(const sbx_noise_hs *hs);

/* The peer's static public key; SBX_ESTATE until the message carrying it
 * was read successfully. The caller decides whether that key is a member. */
int sbx_noise_hs_remote_static(const sbx_noise_hs *hs, uint8_t out[32]);

/* The handshake hash h, for channel binding; only once the handshake is
 * done (still available after split). */
int sbx_noise_hs_hash(const sbx_noise_hs *hs, uint8_t out[64]);

/* Splits into the transport cipher states: `send` encrypts what this side
 * sends, `recv` decrypts what it receives (the initiator sends with the
 * first key, the responder with the second). Wipes the chaining key; after
 * it only sbx_noise_hs_hash, sbx_noise_hs_remote_static and
 * sbx_noise_hs_free are valid. */
int sbx_noise_hs_split(sbx_noise_hs *hs, sbx_noise_cs **send, sbx_noise_cs **recv);

/* Wipes every secret and frees. NULL is fine. */
void sbx_noise_hs_free(sbx_noise_hs *hs);

/* Transport encryption: `out` receives len + 16 bytes. len + 16 must not
 * exceed SBX_NOISE_MAX_MSG (SBX_ETOOBIG). `out` may equal `pt` (in place)
 * but must not overlap it otherwise. SBX_EEXPIRED when the nonce space is
 * exhausted (2^64-1 is reserved): the session must end. */
int sbx_noise_cs_encrypt(sbx_noise_cs *cs, const uint8_t *ad, size_t adlen,
                         const uint8_t *pt, size_t len, uint8_t *out);

/* Transport decryption: `out` receives len - 16 bytes. SBX_ECRYPTO on a bad
 * tag (the nonce is not advanced and `out` holds no plaintext),
 * SBX_EMALFORMED when len < 16, SBX_ETOOBIG above SBX_NOISE_MAX_MSG.
 * `out` may equal `ct`. */
int sbx_noise_cs_decrypt(sbx_noise_cs *cs, const uint8_t *ad, size_t adlen,
                         const uint8_t *ct, size_t len, uint8_t *out);

/* Noise REKEY(): k = first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros[32]).
 * Both sides must rekey at the same point of the message stream. The nonce
 * is not reset. */
int sbx_noise_cs_rekey(sbx_noise_cs *cs);

/* Noise SetNonce(): for tests and for transports that carry explicit
 * nonces. Never reuse a nonce for encryption. */
void sbx_noise_cs_set_nonce(sbx_noise_cs *cs, uint64_t n);
/* The next nonce that will be used. */
uint64_t sbx_noise_cs_nonce(const sbx_noise_cs *cs);

/* Wipes the key and frees. NULL is fine. */
void sbx_noise_cs_free(sbx_noise_cs *cs);

/* The X25519 public key of a private key. SBX_ECRYPTO if it is degenerate. */
int sbx_noise_pubkey(uint8_t pub[32], const uint8_t priv[32]);

/* The device's Noise static key is its Ed25519 identity key mapped to
 * Curve25519, so a peer's Noise static key proves its device id.
 * `ed_sk` is libsodium's 64-byte Ed25519 secret key (seed || pk). */
int sbx_noise_static_from_ed25519(uint8_t x_priv[32], const uint8_t ed_sk[64]);
/* Maps a peer's Ed25519 public key to the X25519 public key that
 * sbx_noise_hs_remote_static returns for it. SBX_ECRYPTO on an invalid or
 * small-order point. */
int sbx_noise_static_pub_from_ed25519(uint8_t x_pub[32], const uint8_t ed_pk[32]);

/* HMAC-BLAKE2b (RFC 2104 with BLAKE2b-512, 128-byte block), Noise's HMAC
 * for the BLAKE2b hash. Exposed for tests. */
void sbx_noise_hmac_blake2b(uint8_t out[64], const uint8_t *key, size_t keylen,
                            const uint8_t *data, size_t len);

#endif
