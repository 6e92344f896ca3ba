/* The data directory: where one device keeps its key, database and blobs.
 * The daemon and the CLI agree on every file name through this header. */
#ifndef SHOEBOX_DATADIR_H
#define SHOEBOX_DATADIR_H

#include <stddef.h>

#include "shoebox/blob.h"
#include "shoebox/store.h"

#define SBX_FILE_DB "shoebox.db"
#define SBX_FILE_KEY "device.key"
#define SBX_FILE_CONTROL "control.sock"
#define SBX_FILE_LOCK "shoeboxd.lock"

/* $XDG_DATA_HOME/shoebox, else $HOME/.local/share/shoebox. */
int sbx_datadir_default(char *out, size_t size);

/* DIR/NAME into out; SBX_ETOOBIG when it does not fit. */
int sbx_datadir_path(char *out, size_t size, const char *dir, const char *name);

/* Takes the daemon's exclusive lock on the data dir (flock on
 * DIR/shoeboxd.lock, which then holds our pid). SBX_EBUSY when another
 * process holds it, with its pid in *other_pid when known. The lock lasts
 * as long as the returned fd stays open. */
int sbx_datadir_lock(const char *dir, int *fd_out, long *other_pid);

/* What a worker thread needs to read and write the library: its own
 * connection to DIR's database (a connection serves one thread at a time),
 * opened with the key of `like` (sbx_store_open_sibling), and a blob store
 * on that connection. Opens every one of the n slots whose store is still
 * NULL and keeps the ones already open, so a caller may open its workers
 * once and reuse them. On failure the failing slot is left NULL (the slots
 * before it stay open, for the caller to close), *err says why when the
 * database would not open, and the SBX_E* code is returned. */
int sbx_datadir_open_workers(const char *dir, const sbx_store *like, size_t n, sbx_store *stores[],
                             sbx_blobstore *blobs[], char *err, size_t errsz);

#endif
