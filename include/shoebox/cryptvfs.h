/* An SQLite VFS shim that encrypts the database at rest: every page of the
 * database file, every page image in the WAL and in a rollback journal, and
 * every byte of SQLite's temporary files. It wraps the default ("unix")
 * VFS; the store (shoebox/store.h) opens encrypted databases through it.
 *
 * Page format. The database is created with 4096-byte pages of which the
 * last 40 are "reserved bytes" (header byte 20), space SQLite sets aside for
 * extensions and never uses itself. A page on disk is
 *     ciphertext of bytes 0..4055 | 24-byte random nonce | 16-byte tag
 * sealed with XChaCha20-Poly1305 (shoebox/crypt.h) under the database
 * subkey, with associated data naming where the page belongs:
 *   - database file: "D" and the page number;
 *   - WAL: "W", the frame number, and the frame header's page number,
 *     commit size and salts (so a frame cannot be moved, replayed from an
 *     older WAL generation, or turned into a commit frame);
 *   - rollback journal: "J", the record's offset and page number.
 * SQLite sees the reserved bytes as zeros. A read whose tag does not match
 * fails with SQLITE_IOERR_DATA (the store reports it as a damaged
 * database), except in one place: while SQLite rebuilds its WAL index after
 * a crash it reads whole frames to find where the valid log ends, and a
 * torn last write must then end the log quietly as it does without
 * encryption; such a frame is handed over as random bytes, which SQLite's
 * own frame checksum then refuses (sbx_cryptvfs_rejected counts them, and a
 * warning is logged).
 *
 * Temporary files (sorts, VACUUM, statement journals) are deleted when
 * closed and never read by another process: they are encrypted with
 * XChaCha20 under a random key that lives only as long as the file.
 *
 * The WAL index (the -shm file) stays as SQLite writes it: page numbers and
 * frame counts, no content. docs/security.md lists what remains visible. */
#ifndef SHOEBOX_CRYPTVFS_H
#define SHOEBOX_CRYPTVFS_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "shoebox/crypt.h"

#define SBX_CRYPTVFS_PAGE 4096
#define SBX_CRYPTVFS_RESERVE (SBX_AEAD_NONCE_BYTES + SBX_AEAD_TAG_BYTES)

typedef struct sbx_cryptvfs sbx_cryptvfs;

/* Registers a new VFS instance (not the default) holding `key` (the
 * database subkey); its name, for sqlite3_open_v2, is sbx_cryptvfs_name. */
int sbx_cryptvfs_new(sbx_cryptvfs **out, const uint8_t key[SBX_AEAD_KEY_BYTES]);
const char *sbx_cryptvfs_name(const sbx_cryptvfs *v);

/* Unregisters the VFS and wipes its key. Only after every connection that
 * uses it is closed. */
void sbx_cryptvfs_free(sbx_cryptvfs *v);

/* Right after sqlite3_open_v2 through the VFS, before any statement: sets
 * the reserved bytes (and for a new, empty file the page size) that the
 * page format needs. They take effect when the database is created; an
 * existing one already has them. */
int sbx_cryptvfs_prepare(sqlite3 *db, bool new_file);

/* WAL frames refused during WAL recovery (torn or tampered). */
uint64_t sbx_cryptvfs_rejected(const sbx_cryptvfs *v);

#endif
