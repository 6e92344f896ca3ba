/* A device's identity: its Ed25519 key pair. The public key is the device id
 * (shoebox/devid.h shows it to people); the secret key signs log entries and
 * derives the device's Noise static key. */
#ifndef SHOEBOX_IDENTITY_H
#define SHOEBOX_IDENTITY_H

#include <stdint.h>

struct sbx_identity {
    uint8_t pk[32];
    uint8_t sk[64]; /* libsodium layout: seed || pk */
};

/* Creates a new key pair and writes it to `path` with mode 0600. Refuses to
 * overwrite an existing file (SBX_EEXIST). */
int sbx_identity_create(const char *path, struct sbx_identity *out);

/* Loads a key file. SBX_ENOENT when missing, SBX_EPERM when unreadable or
 * readable by others, SBX_ECORRUPT when the file is damaged (wrong size,
 * magic or checksum). */
int sbx_identity_load(const char *path, struct sbx_identity *out);

/* Wipes the secret key from memory. */
void sbx_identity_wipe(struct sbx_identity *id);

#endif
