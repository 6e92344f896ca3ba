/* Google Takeout (Google Photos) knowledge for the importer.
 *
 * Four layers, each usable on its own:
 *   1. the sidecar parser: one JSON file -> struct sbx_takeout_sidecar;
 *   2. the matcher: the file names of one folder -> which sidecar belongs to
 *      which media file, live photo pairs, edited copies, leftovers;
 *   3. the index: every path of a Takeout (all zip parts together) -> the
 *      Google Photos root, its year folders and albums, and per media file
 *      the result of the matcher;
 *   4. the zip reader: a streaming pull reader over one or many zip parts
 *      (libarchive, nothing is extracted to disk).
 *
 * Layers 1-3 are pure: names and bytes in, decisions out, no I/O. An import
 * runs two passes over the zip parts: sbx_takeout_scan() lists every entry
 * and parses the small JSON files into an index, then the importer rewinds
 * the reader and streams each media entry, asking the index what it is
 * (sbx_takeout_index_find). A sidecar may sit in another part than its
 * media, which is why the first pass covers all parts before any decision.
 * Memory grows with the number of entries (names and parsed sidecars), never
 * with the bytes of the media. */
#ifndef SHOEBOX_TAKEOUT_H
#define SHOEBOX_TAKEOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* 1. Sidecar JSON                                                           */

enum sbx_takeout_json_kind {
    SBX_TAKEOUT_JSON_UNKNOWN = 0, /* not parsed (no bytes given, too big) */
    SBX_TAKEOUT_JSON_MEDIA,       /* a photo/video sidecar: has photoTakenTime
                                   * (or creationTime / imageViews) */
    SBX_TAKEOUT_JSON_ALBUM,       /* album metadata: a title, none of those */
    SBX_TAKEOUT_JSON_OTHER,       /* a JSON object of another kind ("{}") */
    SBX_TAKEOUT_JSON_INVALID,     /* not a JSON object */
};

struct sbx_takeout_sidecar {
    int kind;                 /* enum sbx_takeout_json_kind */
    char *title;              /* NULL when absent; UTF-8, < SBX_MAX_STR bytes */
    char *description;        /* NULL when absent or empty */
    int64_t taken;            /* photoTakenTime.timestamp, seconds UTC */
    int64_t created;          /* creationTime.timestamp, seconds UTC */
    double latitude;          /* from geoData, else geoDataExif */
    double longitude;
    bool has_taken;
    bool has_created;
    bool has_geo;             /* false when both are absent or 0,0 (unknown) */
    bool geo_from_exif;       /* the position came from geoDataExif */
    bool favorited;
    bool archived;
    bool trashed;
    bool truncated;           /* title or description was cut at SBX_MAX_STR */
};

/* Parses one sidecar or album metadata JSON. Timestamps may be strings of
 * digits or JSON numbers. Album metadata is recognised by content (a "title"
 * or "albumData.title" and no photoTakenTime, creationTime or imageViews),
 * whatever the file name.
 * Returns 0, SBX_ETOOBIG (len > SBX_MAX_SIDECAR_BYTES), SBX_EMALFORMED (not
 * JSON, or not an object; out->kind is then SBX_TAKEOUT_JSON_INVALID) or
 * SBX_ENOMEM. Fields of the wrong type are ignored, not fatal. On success
 * release with sbx_takeout_sidecar_clear(); on failure nothing is held. */
int sbx_takeout_sidecar_parse(struct sbx_takeout_sidecar *out,
                              const uint8_t *json, size_t len);
void sbx_takeout_sidecar_clear(struct sbx_takeout_sidecar *sc);

/* ------------------------------------------------------------------------ */
/* 2. Matcher (one folder)                                                   */

enum sbx_takeout_role {
    SBX_TAKEOUT_ROLE_MEDIA = 1,
    SBX_TAKEOUT_ROLE_SIDECAR,     /* *.json that may describe a media file */
    SBX_TAKEOUT_ROLE_ALBUM_META,  /* *.json of kind ALBUM */
    SBX_TAKEOUT_ROLE_OTHER_JSON,  /* *.json of kind OTHER (e.g. "{}") */
    SBX_TAKEOUT_ROLE_IGNORED,     /* .html, hidden files, Thumbs.db, ... */
    SBX_TAKEOUT_ROLE_DUPLICATE,   /* same name seen earlier in the folder */
};

/* How a media file got its sidecar, from the safest rule to the loosest.
 * The matcher tries each rule for every media file before the next rule,
 * so a loose rule never steals a sidecar that a safe rule would give. */
enum sbx_takeout_how {
    SBX_TAKEOUT_HOW_NONE = 0,
    SBX_TAKEOUT_HOW_DIRECT,     /* name.json, name.supplemental-metadata.json, truncated */
    SBX_TAKEOUT_HOW_DUP,        /* image(1).jpg <- image.jpg(1).json */
    SBX_TAKEOUT_HOW_EDITED,     /* image-edited.jpg shares image.jpg's sidecar */
    SBX_TAKEOUT_HOW_LIVE,       /* IMG_1.MP4 shares IMG_1.HEIC's sidecar */
    SBX_TAKEOUT_HOW_NO_EXT,     /* image.jpg <- image.json (uploaded without ext) */
    SBX_TAKEOUT_HOW_CASE,       /* image.JPG <- image.jpg.json */
    SBX_TAKEOUT_HOW_TITLE,      /* the sidecar's "title" is the media name */
    SBX_TAKEOUT_HOW_COLLISION,  /* two long names truncated alike: prefix(N).json */
};

#define SBX_TAKEOUT_NONE SIZE_MAX

struct sbx_takeout_file {
    /* Input. */
    const char *name;         /* base name, NUL-terminated */
    int json_kind;            /* for *.json: what the parser said, else UNKNOWN */
    const char *title;        /* for *.json: the parsed "title", or NULL */
    /* Output. Indices point into the same array. */
    int role;                 /* enum sbx_takeout_role */
    size_t sidecar;           /* media: its sidecar, or SBX_TAKEOUT_NONE */
    size_t live_of;           /* live video: its photo, or SBX_TAKEOUT_NONE */
    size_t edited_of;         /* edited copy: its original, or SBX_TAKEOUT_NONE */
    uint32_t users;           /* sidecar: media files that use it (0 = orphan) */
    uint8_t how;              /* media: enum sbx_takeout_how */
    bool motion;              /* media: Pixel motion photo (X.MP.jpg, MVIMG_) */
};

/* Matches the files of one folder (as it appears across all zip parts).
 * Deterministic (the result depends on the set of names, not their order;
 * only which of two equal names is the DUPLICATE follows the order) and
 * O(n log n). Names are compared byte-wise; truncation is counted in
 * UTF-16 code units as Google does (51 including ".json"). Returns 0,
 * SBX_ETOOBIG (a name longer than SBX_MAX_TAKEOUT_NAME or n above
 * SBX_MAX_TAKEOUT_ENTRIES) or SBX_ENOMEM. */
int sbx_takeout_match(struct sbx_takeout_file *files, size_t n);

/* The name of the original of an edited copy ("x-edited(1).jpg" ->
 * "x(1).jpg", "x-bearbeitet.JPG" -> "x.JPG"). 0 and the name in `out`, or
 * SBX_ENOENT when `name` is not an edited copy, SBX_ETOOBIG if out is small. */
int sbx_takeout_edited_original(const char *name, char *out, size_t out_size);

/* UTF-16 code units of a UTF-8 string, or SIZE_MAX when it is not UTF-8. */
size_t sbx_takeout_utf16_len(const char *s, size_t len);

/* True for a year folder name: a 4-digit year as the last number, followed by
 * at most a short word ("Photos from 2020", "Zdjęcia z 2020 r.",
 * "Fotos von 2020", "2020年的照片"). Album metadata overrides it. */
bool sbx_takeout_is_year_folder(const char *name);

/* ------------------------------------------------------------------------ */
/* 3. Index of a whole Takeout                                               */

typedef struct sbx_takeout_index sbx_takeout_index;

enum sbx_takeout_folder_kind {
    SBX_TAKEOUT_FOLDER_ROOT = 1,  /* the Google Photos folder itself */
    SBX_TAKEOUT_FOLDER_YEAR,      /* "Photos from 2020": not an album */
    SBX_TAKEOUT_FOLDER_ALBUM,
    SBX_TAKEOUT_FOLDER_TRASH,     /* every sidecar says trashed */
    SBX_TAKEOUT_FOLDER_ARCHIVE,   /* every sidecar says archived */
};

struct sbx_takeout_folder {
    const char *path;             /* "Takeout/Google Photos/Trip" */
    const char *name;             /* "Trip" */
    int kind;                     /* enum sbx_takeout_folder_kind */
    const char *title;            /* albums: from the metadata JSON, else the name */
    const char *meta_path;        /* albums: the metadata JSON, or NULL */
    size_t media;                 /* media files in the folder */
};

struct sbx_takeout_media {
    const char *path;             /* path inside the archive */
    const char *name;             /* base name */
    uint64_t size;
    uint32_t part;                /* zip part that holds it */
    size_t folder;                /* index for sbx_takeout_index_folder */
    const struct sbx_takeout_sidecar *sidecar; /* parsed, or NULL */
    const char *sidecar_path;     /* matched sidecar (maybe unparsed), or NULL */
    uint8_t how;                  /* enum sbx_takeout_how */
    const char *live_of;          /* live video: path of its photo, or NULL */
    const char *edited_of;        /* edited copy: path of its original, or NULL */
    bool motion;
};

struct sbx_takeout_stats {
    size_t entries;          /* files added */
    size_t media;            /* media files under the root */
    size_t sidecars;         /* *.json that may describe media, under the root */
    size_t matched_media;    /* media with a sidecar (own or shared) */
    size_t unmatched_media;
    size_t orphan_sidecars;  /* sidecars no media uses */
    size_t album_meta;       /* album metadata JSON files */
    size_t bad_json;         /* JSON files that did not parse or were too big */
    size_t live_pairs;       /* videos linked to their photo */
    size_t edited;           /* edited copies linked to their original */
    size_t year_folders;
    size_t albums;
    size_t special_folders;  /* trash and archive */
    size_t outside_root;     /* files not under the Google Photos root */
    size_t duplicates;       /* the same path seen twice (in two parts) */
};

int sbx_takeout_index_new(sbx_takeout_index **out);
void sbx_takeout_index_free(sbx_takeout_index *ix);
/* Adds one file entry. For *.json entries pass the bytes (at most
 * SBX_MAX_SIDECAR_BYTES) to have them parsed, or NULL. A JSON that fails to
 * parse is counted (bad_json), not fatal. Returns 0, SBX_EMALFORMED (path
 * not UTF-8, absolute, with "..", empty components), SBX_ETOOBIG (path or
 * base name above the limits, too many entries), SBX_ESTATE (after finish)
 * or SBX_ENOMEM. */
int sbx_takeout_index_add(sbx_takeout_index *ix, const char *path, uint64_t size,
                          uint32_t part, const uint8_t *json, size_t json_len);
/* The path rules of sbx_takeout_index_add, for a reader that skips a name
 * the index would refuse: 0, SBX_EMALFORMED (empty, not UTF-8, a control
 * character, absolute, an empty, "." or ".." component) or SBX_ETOOBIG (above
 * SBX_MAX_TAKEOUT_PATH bytes, or a component above SBX_MAX_TAKEOUT_NAME). */
int sbx_takeout_check_path(const char *path, size_t len);
/* Finds the Google Photos root by content (the folder whose subfolders hold
 * media files and JSON sidecars, whatever its localized name), classifies
 * its folders, runs the matcher in each. 0, SBX_ENOMEM or SBX_ESTATE. A
 * Takeout without Google Photos finishes with no root and no media. */
int sbx_takeout_index_finish(sbx_takeout_index *ix);

/* Results, valid after finish until free. Media are in path order. */
const char *sbx_takeout_index_root(const sbx_takeout_index *ix);
size_t sbx_takeout_index_folder_count(const sbx_takeout_index *ix);
int sbx_takeout_index_folder(const sbx_takeout_index *ix, size_t i,
                             struct sbx_takeout_folder *out);
size_t sbx_takeout_index_media_count(const sbx_takeout_index *ix);
int sbx_takeout_index_media(const sbx_takeout_index *ix, size_t i,
                            struct sbx_takeout_media *out);
/* Looks a path up (O(log n)): 0 when it is a media file, else SBX_ENOENT.
 * In the second pass, stream an entry only when its part equals out->part:
 * the same path found in two parts is one file (the first part wins). */
int sbx_takeout_index_find(const sbx_takeout_index *ix, const char *path,
                           struct sbx_takeout_media *out);
/* Sidecars under the root that no media file uses, in path order. */
size_t sbx_takeout_index_orphan_count(const sbx_takeout_index *ix);
const char *sbx_takeout_index_orphan(const sbx_takeout_index *ix, size_t i);
/* Whether a name of len bytes ends in ".json" (any case) after at least one
 * other byte: what the importer and the readers treat as a sidecar. */
bool sbx_takeout_is_json_name(const char *s, size_t len);
/* Whether path is one of the orphan sidecars (a binary search in the
 * index's own order). */
bool sbx_takeout_index_is_orphan(const sbx_takeout_index *ix, const char *path);
void sbx_takeout_index_stats(const sbx_takeout_index *ix,
                             struct sbx_takeout_stats *out);

/* ------------------------------------------------------------------------ */
/* 4. Zip reader                                                             */

typedef struct sbx_takeout_reader sbx_takeout_reader;

struct sbx_takeout_entry {
    const char *path;   /* UTF-8, valid until the next call to _next */
    uint64_t size;      /* uncompressed size, 0 when the zip does not say */
    bool size_known;
    uint32_t part;      /* index in the parts given to _open */
    int64_t mtime;      /* modification time, seconds since the epoch (the zip's
                         * DOS time is local time without a zone: libarchive
                         * reads it in the process's zone, or the exact UTC time
                         * from the extended-timestamp field when present) */
    bool mtime_known;
};

/* True when `head` starts with the zip local file header magic PK\3\4. */
bool sbx_takeout_sniff_zip(const uint8_t *head, size_t len);
/* 1 when the file at `path` is a zip by content, 0 when not, <0 on error. */
int sbx_takeout_is_zip(const char *path);

/* Opens a reader over `nparts` zip files, read in the given order (pass them
 * sorted for a deterministic import). Every part is checked by content first:
 * SBX_EUNSUPPORTED when one is not a zip, SBX_EIO when one cannot be read,
 * SBX_ETOOBIG above SBX_MAX_TAKEOUT_PARTS. */
int sbx_takeout_reader_open(sbx_takeout_reader **out, const char *const *parts,
                            size_t nparts);
/* The next regular file of all parts. 0 with *e filled, SBX_ENOENT after the
 * last entry, SBX_ECORRUPT / SBX_EIO on a broken archive (see _error).
 * Entries with unsafe or non-UTF-8 names are skipped and counted. */
int sbx_takeout_reader_next(sbx_takeout_reader *r, struct sbx_takeout_entry *e);
/* Reads the current entry's bytes: *got = 0 at its end. Bounded buffers:
 * the caller hashes while streaming. 0, SBX_ECORRUPT, SBX_EUNSUPPORTED
 * (encrypted entry) or SBX_ESTATE (no current entry). */
int sbx_takeout_reader_read(sbx_takeout_reader *r, uint8_t *buf, size_t cap,
                            size_t *got);
/* Starts again at the first entry of the first part (the second pass). */
int sbx_takeout_reader_rewind(sbx_takeout_reader *r);
/* A human readable description of the last error ("" when none). */
const char *sbx_takeout_reader_error(const sbx_takeout_reader *r);
size_t sbx_takeout_reader_skipped(const sbx_takeout_reader *r);
void sbx_takeout_reader_free(sbx_takeout_reader *r);

/* First pass: adds every entry of every part to `ix` (reading JSON entries of
 * at most SBX_MAX_SIDECAR_BYTES into memory to parse them), then finishes
 * the index and rewinds the reader for the second pass. */
int sbx_takeout_scan(sbx_takeout_reader *r, sbx_takeout_index *ix);

#endif
