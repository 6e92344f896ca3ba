/* The importer's decisions that do not need a daemon: which capture time,
 * position and name a photo gets from its Takeout sidecar, its EXIF and its
 * file; deterministic Takeout album ids; text cleaning for ops and JSON; the
 * progress line of `shoebox import` on a terminal.
 *
 * Pure functions (no I/O, no clock, no global state): the daemon's importer
 * (daemon/import.c) and the CLI call them, the unit tests check them. The
 * import itself is described in docs/import.md. */
#ifndef SHOEBOX_IMPORT_H
#define SHOEBOX_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/media.h"
#include "shoebox/takeout.h"

/* Copies `len` bytes of `in` into `out` (capacity `cap` >= 1, always
 * NUL-terminated) as valid UTF-8 that every op, SQLite text and JSON
 * accept: each byte of an ill-formed sequence, NUL and the other C0 control
 * characters become U+FFFD. Stops before a character that would not fit, so
 * a cut never splits one. Returns the output length (without the NUL). */
size_t sbx_import_clean_text(char *out, size_t cap, const char *in, size_t len);

/* Where a photo's capture time came from, best first. */
enum sbx_import_time_source {
    SBX_IMPORT_TIME_NONE = 0,
    SBX_IMPORT_TIME_SIDECAR, /* Takeout photoTakenTime (UTC seconds) */
    SBX_IMPORT_TIME_EXIF,    /* EXIF DateTimeOriginal, or the video's creation time */
    SBX_IMPORT_TIME_FILE,    /* the file's (or zip entry's) modification time */
};

struct sbx_import_sources {
    const struct sbx_media_info *info;            /* the probe; NULL if none */
    const struct sbx_takeout_sidecar *sidecar;    /* NULL without a sidecar */
    uint8_t how;                                  /* enum sbx_takeout_how */
    const char *base_name;                        /* the file's own name */
    bool has_mtime;
    int64_t mtime_ms;
};

struct sbx_import_decision {
    bool has_captured_at;
    int64_t captured_at_ms;
    int time_source;                /* enum sbx_import_time_source */
    bool has_location;
    double lat, lon;
    bool location_from_sidecar;
    const char *file_name;          /* points into the sources: title or base name */
    bool favorite, archived, trashed;
    const char *description;        /* NULL when absent or empty */
};

/* Decides a photo's editable facts:
 * - capture time: the sidecar's photoTakenTime (a 0 there means unset), else
 *   the file's own metadata, else its modification time;
 * - position: the sidecar's (geoData, else geoDataExif; 0,0 is unknown),
 *   else EXIF GPS; anything outside [-90, 90] x [-180, 180] is dropped;
 * - file name: the sidecar's title (the name Google shows), except for an
 *   edited copy or a live photo's video, which share their original's
 *   sidecar and so keep their own name; the base name otherwise;
 * - favorite, archived, trashed and description: from the sidecar. */
void sbx_import_decide(const struct sbx_import_sources *in, struct sbx_import_decision *out);

/* The id of the album that a Takeout album folder becomes:
 * BLAKE2b-128("shoebox/takeout-album" || library || folder name). The same
 * folder imported twice, or on two devices, is one album. */
void sbx_import_album_id(const uint8_t library[16], const char *folder, size_t folder_len,
                         uint8_t out[16]);

/* What the progress line shows. rate_bytes over rate_ms is the recent
 * throughput (bytes moved by this run, not those a resumed job had done). */
struct sbx_import_progress {
    int64_t files_done, files_total;
    int64_t bytes_done, bytes_total;
    int64_t rate_bytes, rate_ms;
};

/* One line, at most `width` columns (ASCII only), for a terminal:
 * "[=======>      ]  52%  1204/2311 files  1.2/2.3 GB  84.1 MB/s  ETA 0:14".
 * Unknown totals show as "?". Returns the length written (NUL excluded). */
size_t sbx_import_progress_line(char *out, size_t cap, const struct sbx_import_progress *p,
                                unsigned width);

#endif
