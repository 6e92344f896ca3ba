/* The content-addressed blob store: originals, thumbnails and medium images,
 * named by the SHA-256 of their bytes.
 *
 * This module owns every read and write of blob bytes, so that encryption at
 * rest lives here without its callers knowing: nothing outside it learns a
 * blob's path. On disk a blob lives at DATA_DIR/blobs/ab/cd/<64 hex> (two
 * levels of fan-out), and the database records it in `blobs` (size, chunk
 * size, kind, complete) and its chunk hashes in `blob_chunks` (SHA-256 of
 * every SBX_BLOB_CHUNK bytes).
 *
 * Encrypted data dirs: when the store was opened with a storage key
 * (sbx_store_open_key), every blob file is encrypted, one sealed record per
 * chunk, and named by a keyed hash of its SHA-256 instead of the SHA-256
 * (docs/security.md). The API is the same; a chunk that fails its
 * authentication tag is SBX_ECORRUPT and none of it is handed out. An open
 * sbx_blob_file keeps a one-chunk cache: use it from one thread at a time.
 *
 * Guarantees:
 * - A file under a hash name is always whole: writes go to a temp file in
 *   blobs/tmp/, are fsynced and renamed into place, then the directory is
 *   fsynced. A failed write (disk full included) leaves no temp file and no
 *   row. Temp files left by a crash are removed by the next open (once
 *   they are a minute old and no live writer holds their lock).
 * - The rows of one call are one transaction. When the caller is already
 *   inside a transaction (sbx_store_begin), the call joins it through a
 *   savepoint instead: its rows commit or roll back with the caller's, and a
 *   failed call rolls back only its own rows. The files are in place before
 *   the call returns, so a caller that rolls back afterwards leaves a file
 *   without a row: it is inert (sbx_blob_has says no) and the next put of
 *   the same bytes adopts it.
 * - A partial blob (a transfer from peers) keeps every verified chunk across
 *   crashes and restarts: a chunk is marked present only after its bytes are
 *   on disk (fdatasync), so a resume never trusts an unwritten chunk.
 *
 * No event loop inside: plain blocking file I/O, meant to run on the
 * daemon's thread pool. Like sbx_store, one handle is used by one thread at a
 * time (it drives the store's connection); an sbx_blob_file may be read from
 * another thread once opened. */
#ifndef SHOEBOX_BLOB_H
#define SHOEBOX_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/limits.h"
#include "shoebox/store.h"

#define SBX_BLOB_HASH_BYTES 32 /* SHA-256 */

typedef struct sbx_blobstore sbx_blobstore;
typedef struct sbx_blob_writer sbx_blob_writer;
typedef struct sbx_blob_file sbx_blob_file;

typedef enum {
    SBX_BLOB_ORIGINAL = 0, /* 'original' in blobs.kind */
    SBX_BLOB_THUMB = 1,    /* 'thumb' */
    SBX_BLOB_MEDIUM = 2,   /* 'medium' */
} sbx_blob_kind;

struct sbx_blob_info {
    uint64_t size;
    uint32_t chunk_size;
    uint32_t n_chunks; /* ceil(size / chunk_size); 0 for an empty blob */
    uint32_t n_have;   /* chunks present (all of them when complete) */
    sbx_blob_kind kind;
    bool complete;          /* false: a partial blob, being transferred */
    int64_t stored_at;      /* ms since the epoch; 0 while partial */
    int64_t last_access_at; /* ms; updated at most once a minute */
};

/* Opens the blob store of a data dir, whose database `store` is (the handle
 * keeps a pointer: close the blob store first), encrypted when the store is.
 * Creates blobs/, blobs/tmp/ and blobs/partial/ when missing, and removes
 * temp files a crash left behind and partial files with no partial row. */
int sbx_blobstore_open(sbx_blobstore **out, const char *data_dir, sbx_store *store);
void sbx_blobstore_close(sbx_blobstore *bs);

/* ---- Ingest -------------------------------------------------------------
 * Each stores a complete blob with its chunk hashes and returns its hash.
 * When the blob is already held, nothing is rewritten: 0 with *existed set
 * (existed may be NULL). Errors: SBX_ETOOBIG (over SBX_MAX_BLOB_BYTES),
 * SBX_ENOSPC, SBX_EIO, SBX_EDB...; after any error nothing is stored. */
int sbx_blob_put_buf(sbx_blobstore *bs, const void *data, size_t len, sbx_blob_kind kind,
                     uint8_t hash_out[SBX_BLOB_HASH_BYTES], bool *existed);

/* Batched durability, for bulk ingest (an import's worker threads): between
 * sbx_blob_batch_begin and sbx_blob_batch_commit, sbx_blob_put_buf writes
 * each new blob to a temp file and starts its writeback but does not name
 * it: the blob is not held (sbx_blob_has says no) until commit fsyncs the
 * files, renames them into place, fsyncs the directories that changed (each
 * once) and records the rows in one transaction. The guarantees above stay
 * (no file under a hash name before its bytes are durable, no row before
 * its file); the batch costs a few journal commits instead of three or more
 * per blob, and one transaction instead of one per blob. A put of a blob
 * staged in the batch says existed. At most SBX_MAX_BLOB_BATCH blobs are
 * staged (each keeps its temp file open): a put beyond that commits the
 * batch and begins a new one. commit ends the batch and returns 0 or the
 * first error (then nothing of the batch is stored); abort drops it
 * (closing the store aborts a batch left open). Only put_buf is batched. */
int sbx_blob_batch_begin(sbx_blobstore *bs);
int sbx_blob_batch_commit(sbx_blobstore *bs);
void sbx_blob_batch_abort(sbx_blobstore *bs);

/* Streams the file at `path` into the store in bounded buffers, hashing as it
 * copies. With `expect` (NULL or 32 bytes) the content must hash to it, else
 * SBX_ECRYPTO and nothing is stored; when the store already holds `expect`
 * the file is not read at all (the bytes would change nothing). */
int sbx_blob_put_file(sbx_blobstore *bs, const char *path, const uint8_t *expect,
                      sbx_blob_kind kind, uint8_t hash_out[SBX_BLOB_HASH_BYTES],
                      bool *existed);

/* A streaming put, for bytes that arrive in pieces (an upload session, an
 * archive member): begin, write any number of times, then commit or abort.
 * commit takes the same `expect` as put_file and frees the writer whatever
 * it returns; abort frees it and removes the temp file. An error from write
 * is sticky: commit then returns it. */
int sbx_blob_writer_begin(sbx_blobstore *bs, sbx_blob_kind kind, sbx_blob_writer **out);
int sbx_blob_writer_write(sbx_blob_writer *w, const void *data, size_t len);
int sbx_blob_writer_commit(sbx_blob_writer *w, const uint8_t *expect,
                           uint8_t hash_out[SBX_BLOB_HASH_BYTES], bool *existed);
void sbx_blob_writer_abort(sbx_blob_writer *w);

/* ---- Partial blobs: transfers from peers ---------------------------------
 * begin records the expected chunk hashes (n * 32 bytes, n must be
 * ceil(size / SBX_BLOB_CHUNK)) with have=0 and creates the partial file at
 * its full size (preallocated: a full disk shows up now, as SBX_ENOSPC, not
 * midway). Calling it again for a partial with the same size and chunk
 * hashes resumes it (0, verified chunks kept); with other ones it is
 * SBX_ESTATE (sbx_blob_delete it first). SBX_EEXIST when already held,
 * and when the partial's file is already in place under the blob's name
 * (an install whose record step failed): begin then checks and records it
 * (sbx_blob_partial_finish), so a blob complete and verified is not
 * fetched again. That check hashes the whole file: call begin off the
 * event loop. */
int sbx_blob_partial_begin(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES],
                           uint64_t size, sbx_blob_kind kind, const uint8_t *chunk_hashes,
                           size_t n);

/* The missing chunks in ascending order: *n is how many are missing, and the
 * first min(*n, cap) of them are written to idx. A complete blob has none. */
int sbx_blob_partial_missing(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES],
                             uint32_t *idx, size_t cap, size_t *n);

/* Completes a partial blob: every chunk must be present (SBX_ESTATE if not),
 * then the whole file must hash to `hash`; it is renamed into place and
 * marked complete. On a whole-file mismatch the chunks are re-read: those
 * that no longer match their hash are marked missing and the result is
 * SBX_ECORRUPT (fetch them again, finish again); when every chunk matches,
 * the chunk hash list itself was wrong: SBX_ECRYPTO (delete the partial and
 * begin again with another peer's list). 0 when already complete. A file
 * already in place under the blob's name (an install whose record step
 * failed, with chunks maybe still marked missing) is hashed and, when it
 * matches, recorded complete with every chunk present; when it does not,
 * it is removed and the partial starts over (SBX_ECORRUPT). */
int sbx_blob_partial_finish(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES]);

/* ---- Partial blobs through a handle: the transfer pipeline -------------
 * The chunks of a begun partial blob arrive through a handle: put verifies
 * and writes them, flush makes them durable, record marks them present (so
 * a resume never trusts an unwritten chunk), and install completes the blob
 * as finish does. The steps are split so that the heavy work (verifying,
 * sealing, writing, syncing, hashing) runs off the store's thread: open and
 * record use the database (the store's thread); put, flush and install
 * touch only the handle and the file (any thread). One thread at a time per
 * handle, and only one handle per partial blob at a time.
 *
 * The whole blob's SHA-256 is computed as chunks land: a chunk that
 * extends the hashed prefix is hashed from memory (chunk 0 even in the same
 * pass as its own check), one written ahead of a gap is read back when the
 * gap fills, and chunks written before the handle was opened (a resume)
 * are read back too. So install needs no second pass over a blob received
 * in order. */
typedef struct sbx_blob_partial sbx_blob_partial;

/* Opens a partial blob (begun by sbx_blob_partial_begin): loads its chunk
 * list and which chunks are present. SBX_ENOENT: no such partial; SBX_ESTATE:
 * already complete. Store's thread. */
int sbx_blob_partial_open(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES],
                          sbx_blob_partial **out);

/* Verifies chunk idx against its recorded hash (SBX_ECRYPTO on mismatch,
 * nothing written) and writes it, not synced. `len` must be the chunk's
 * exact length (the last chunk is shorter): SBX_EINVAL otherwise, and for
 * idx out of range. 0 without writing when the chunk is already on disk.
 * Any thread. */
int sbx_blob_partial_put(sbx_blob_partial *p, uint32_t idx, const void *data, size_t len);

/* One fdatasync: every chunk put so far is durable, and the next record
 * marks it present. Any thread. */
int sbx_blob_partial_flush(sbx_blob_partial *p);

/* Completes the file: every chunk must be on disk (SBX_ESTATE if not); the
 * whole blob must hash to its name (SBX_ECORRUPT if not: close the handle
 * and call sbx_blob_partial_finish, which finds the bad chunks); then it
 * is synced and renamed into place, durably. The next record marks it
 * complete. Any thread. */
int sbx_blob_partial_install(sbx_blob_partial *p);

/* Marks the chunks made durable since the last record present, and the
 * blob complete once installed: one transaction (or a savepoint in the
 * caller's). Store's thread. */
int sbx_blob_partial_record(sbx_blob_partial *p);

/* Frees the handle (what was not recorded is simply fetched again). */
void sbx_blob_partial_close(sbx_blob_partial *p);

/* ---- Reads --------------------------------------------------------------
 * Reads serve complete blobs only (read_chunk also serves the present chunks
 * of a partial blob, so a device can pass on what it is still receiving).
 * SBX_ENOENT when the blob is not held. Opening and reading touch
 * last_access_at (for LRU eviction), at most one write a minute per blob. */

/* 0 when the blob is held complete, SBX_ENOENT when not (unknown, partial,
 * or its file is gone), another negative code on errors. */
int sbx_blob_has(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES]);

/* What the store knows of a blob, complete or partial. */
int sbx_blob_stat(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES],
                  struct sbx_blob_info *info);

/* The chunk hashes (32 bytes each, in order), to offer a peer: *n is the
 * number of chunks and the first min(*n, cap) hashes go to out. */
int sbx_blob_chunk_hashes(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES],
                          uint8_t *out, size_t cap, size_t *n);

/* An open blob for many reads (a video served by ranges). SBX_ECORRUPT when
 * the file's size differs from the recorded one. */
int sbx_blob_open(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES], sbx_blob_file **out);
uint64_t sbx_blob_file_size(const sbx_blob_file *f);
/* Reads up to len bytes at offset: *got is less than len only at the end of
 * the blob (0 at offset == size). SBX_EINVAL for an offset past the end. */
int sbx_blob_file_read(sbx_blob_file *f, uint64_t offset, void *buf, size_t len, size_t *got);
void sbx_blob_file_close(sbx_blob_file *f);

/* One range read: open, read, close. */
int sbx_blob_read(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES], uint64_t offset,
                  void *buf, size_t len, size_t *got);

/* The whole blob into a new buffer (*out, freed by the caller; *len bytes),
 * for the renderers: SBX_ETOOBIG when it is larger than max, SBX_ENOENT when
 * it is not held, SBX_ECORRUPT when it is shorter than recorded. */
int sbx_blob_read_all(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES], uint64_t max, uint8_t **out,
                      size_t *len);

/* Chunk idx into buf (cap bytes, SBX_ETOOBIG when the chunk is larger);
 * *len is its length. The receiver verifies it, so it is not hashed here. */
int sbx_blob_read_chunk(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES], uint32_t idx,
                        void *buf, size_t cap, size_t *len);

/* Sets last_access_at to now (throttled like reads). */
int sbx_blob_touch(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES]);

/* Re-hashes a complete blob from disk: 0 when it still matches, SBX_ECORRUPT
 * when the file changed (or its size did), SBX_ENOENT when not held. */
int sbx_blob_verify(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES]);

/* Removes a blob, complete or partial: its rows (one transaction, or the
 * caller's), then its files. SBX_ENOENT when there was nothing to remove. */
int sbx_blob_delete(sbx_blobstore *bs, const uint8_t hash[SBX_BLOB_HASH_BYTES]);

/* The SHA-256 that names blobs (libcrypto: SHA-NI where the CPU has it). */
void sbx_blob_sha256(const void *data, size_t len, uint8_t out[SBX_BLOB_HASH_BYTES]);

#endif
