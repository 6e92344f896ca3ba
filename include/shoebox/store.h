/* The local SQLite database: opening, versioned migrations, transactions and
 * the meta table. docs/schema.sql is the schema it creates. */
#ifndef SHOEBOX_STORE_H
#define SHOEBOX_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/crypt.h"

#define SBX_SCHEMA_VERSION 4

typedef struct sbx_store sbx_store;

enum {
    SBX_STORE_CREATE = 1 << 0,   /* create the file when missing */
    SBX_STORE_READONLY = 1 << 1, /* never write, never migrate */
};

/* Opens (and with SBX_STORE_CREATE creates) the database at `path`, checks
 * its integrity before writing anything, then migrates it in place to
 * SBX_SCHEMA_VERSION. On failure *errmsg (if given) points to a static or
 * store-independent description; the file is left as it was.
 * Errors: SBX_ENOENT, SBX_EPERM, SBX_ECORRUPT (not a database, or damaged),
 * SBX_EUNSUPPORTED (written by a newer shoebox), SBX_EBUSY, SBX_EDB. */
int sbx_store_open(sbx_store **out, const char *path, int flags, char *errmsg, size_t errmsg_size);

/* The same for an encrypted database: with a storage key (NULL: plain, as
 * sbx_store_open) every page, WAL frame and temporary file goes through the
 * encrypting VFS (shoebox/cryptvfs.h) under a subkey of it. A page that
 * fails authentication (a flipped bit, a foreign page, another key) is
 * SBX_ECORRUPT with "damaged" in *errmsg, like any other damage. The store
 * keeps a copy of the key (wiped at close) for sbx_store_subkey. */
int sbx_store_open_key(sbx_store **out, const char *path, int flags,
                       const uint8_t *storage_key, char *errmsg, size_t errmsg_size);
void sbx_store_close(sbx_store *s);
/* Removes a closed database file with its -wal and -shm side files: what a
 * failed init or join leaves must not look like a library. */
void sbx_store_remove_files(const char *path);

/* Whether the database is encrypted, and the subkeys of its storage key for
 * the other stores of the data dir (the blob store): SBX_ESTATE when it is
 * not encrypted. */
bool sbx_store_encrypted(const sbx_store *s);
/* Another connection to the same database with the same key (worker
 * threads: each needs its own connection). */
int sbx_store_open_sibling(sbx_store **out, const sbx_store *like, const char *path, char *errmsg, size_t size);
int sbx_store_subkey(const sbx_store *s, enum sbx_subkey id, uint8_t out[SBX_AEAD_KEY_BYTES]);

sqlite3 *sbx_store_db(sbx_store *s);
int sbx_store_schema_version(sbx_store *s);

/* A transaction (BEGIN IMMEDIATE): every unit of work is one. */
int sbx_store_begin(sbx_store *s);
int sbx_store_commit(sbx_store *s);
void sbx_store_rollback(sbx_store *s);

/* Runs SQL with no results. */
int sbx_store_exec(sbx_store *s, const char *sql);

/* A cached prepared statement for `sql`, reset and with bindings cleared. The
 * store owns it; callers must not finalize it. NULL on a prepare error. */
sqlite3_stmt *sbx_store_stmt(sbx_store *s, const char *sql);

/* The meta table: small key/value facts about this device and library. */
int sbx_store_meta_set(sbx_store *s, const char *key, const void *value, size_t len);
int sbx_store_meta_set_text(sbx_store *s, const char *key, const char *value);
/* Copies the value into buf (at most cap bytes); SBX_ENOENT when absent. */
int sbx_store_meta_get(sbx_store *s, const char *key, void *buf, size_t cap, size_t *len);
/* Like meta_get but NUL-terminates; SBX_ETOOBIG when it does not fit. */
int sbx_store_meta_get_text(sbx_store *s, const char *key, char *buf, size_t cap);

/* One integer from a query with no parameters (counts); -1 on error. */
int64_t sbx_store_query_int(sbx_store *s, const char *sql);

/* Maps an SQLite result code to an SBX_E* code. */
int sbx_store_err(int sqlite_rc);

#endif
