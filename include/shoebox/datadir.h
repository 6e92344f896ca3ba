/* The data directory: where one device keeps its key, database and blobs.
 * The daemon and the CLI agree on every file name through this header. */
#ifndef SHOEBOX_DATADIR_H
#define SHOEBOX_DATADIR_H

#include <stddef.h>

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

#endif
