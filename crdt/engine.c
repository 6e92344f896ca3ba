/* The merge engine. See include/shoebox/engine.h and docs/protocol.md.
 *
 * Every accepted entry is stored in `entries` and its ops applied to the
 * materialized tables. The merge rules make the result independent of the
 * order entries arrive in:
 *  - every mutable field is an LWW register: a write applies only when its
 *    stamp (entry hlc, author key) is greater than the stamp stored beside
 *    the field, so the greatest write wins wherever it lands;
 *  - album membership and photo tags are add-wins sets: every add is a dot
 *    (author, seq, op index), a remove marks the dots it names, and a pair is
 *    present while one of its dots is added and not removed;
 *  - rows referenced before their creating op arrived exist as shells that
 *    listings skip, so no op ever needs another to have been applied first.
 * Causality that does matter (an author's own order, membership) is kept by
 * parking entries in `pending_entries` until their predecessors arrive. */
#include "shoebox/engine.h"
#include "shoebox/err.h"
#include "shoebox/hlc.h"
#include "shoebox/limits.h"
#include "shoebox/log.h"
#include "shoebox/util.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

struct author {
    uint8_t key[SBX_KEY_BYTES];
};

struct sbx_engine {
    sbx_store *store;
    sqlite3 *db;
    struct sbx_identity id;
    bool can_write;
    uint8_t library[SBX_ID_BYTES];
    sbx_hlc hlc;
    uint64_t max_future_ms;
    uint64_t cursor; /* local change sequence: the feed cursor */
    sbx_engine_entry_cb cb;
    void *data;
    /* Author keys by local ix (ix 0 is unused: it means "no stamp"). */
    struct author *authors;
    size_t n_authors, cap_authors;
    /* Entries accepted in the current transaction, announced after commit. */
    struct sbx_entry **accepted;
    size_t n_accepted, cap_accepted;
    bool need_rebuild;
    bool rebuilding;
};

/* A stamp orders writes to one register: the entry's hlc, then the author's
 * key bytes. ix 0 with hlc 0 is the empty stamp that every write beats. */
struct stamp {
    uint64_t hlc;
    int64_t ix;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

#define STEP_DONE(st) (sqlite3_step(st) == SQLITE_DONE ? 0 : SBX_EDB)

static int db_err(sbx_engine *e, const char *what)
{
    sbx_error("engine: %s: %s", what, sqlite3_errmsg(e->db));
    return SBX_EDB;
}

static sqlite3_stmt *stmt(sbx_engine *e, const char *sql) { return sbx_store_stmt(e->store, sql); }

static const uint8_t *author_key(sbx_engine *e, int64_t ix)
{
    SBX_ASSERT(ix > 0 && (size_t)ix < e->n_authors);
    return e->authors[ix].key;
}

static bool stamp_gt(sbx_engine *e, struct stamp a, struct stamp b)
{
    if (a.hlc != b.hlc) return a.hlc > b.hlc;
    if (b.ix == 0) return a.ix != 0;
    if (a.ix == 0 || a.ix == b.ix) return false;
    return memcmp(author_key(e, a.ix), author_key(e, b.ix), SBX_KEY_BYTES) > 0;
}

static int load_authors(sbx_engine *e)
{
    e->n_authors = 1; /* ix 0 is "none" */
    sqlite3_stmt *st = stmt(e, "SELECT ix, key FROM authors ORDER BY ix");
    if (!st) return SBX_EDB;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t ix = sqlite3_column_int64(st, 0);
        if (ix < 1 || ix > 1000000 || sqlite3_column_bytes(st, 1) != SBX_KEY_BYTES) return SBX_ECORRUPT;
        if ((size_t)ix >= e->cap_authors) {
            size_t cap = (size_t)ix * 2 + 8;
            struct author *na = realloc(e->authors, cap * sizeof *na);
            if (!na) return SBX_ENOMEM;
            e->authors = na;
            e->cap_authors = cap;
        }
        memcpy(e->authors[ix].key, sqlite3_column_blob(st, 1), SBX_KEY_BYTES);
        if ((size_t)ix + 1 > e->n_authors) e->n_authors = (size_t)ix + 1;
    }
    sqlite3_reset(st);
    return 0;
}

/* The local ix of an author key, interned on first sight. */
static int author_ix(sbx_engine *e, const uint8_t key[SBX_KEY_BYTES], int64_t *ix)
{
    for (size_t i = 1; i < e->n_authors; i++) {
        if (memcmp(e->authors[i].key, key, SBX_KEY_BYTES) == 0) {
            *ix = (int64_t)i;
            return 0;
        }
    }
    sqlite3_stmt *st = stmt(e, "INSERT INTO authors(key) VALUES (?1)");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, key, SBX_KEY_BYTES, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "intern author");
    int64_t nix = sqlite3_last_insert_rowid(e->db);
    sqlite3_reset(st);
    if ((size_t)nix >= e->cap_authors) {
        size_t cap = (size_t)nix * 2 + 8;
        struct author *na = realloc(e->authors, cap * sizeof *na);
        if (!na) return SBX_ENOMEM;
        e->authors = na;
        e->cap_authors = cap;
    }
    memcpy(e->authors[nix].key, key, SBX_KEY_BYTES);
    if ((size_t)nix + 1 > e->n_authors) e->n_authors = (size_t)nix + 1;
    *ix = nix;
    return 0;
}

/* Finds a known author without interning it; 0 when unknown. */
static int64_t find_author(sbx_engine *e, const uint8_t key[SBX_KEY_BYTES])
{
    for (size_t i = 1; i < e->n_authors; i++)
        if (memcmp(e->authors[i].key, key, SBX_KEY_BYTES) == 0) return (int64_t)i;
    return 0;
}

static uint64_t next_cursor(sbx_engine *e) { return ++e->cursor; }

static int save_sync_state(sbx_engine *e)
{
    sqlite3_stmt *st = stmt(e, "INSERT INTO sync_state(id, cursor, hlc, updated_at) VALUES (1, ?1, ?2, ?3) "
                               "ON CONFLICT(id) DO UPDATE SET cursor = excluded.cursor, hlc = excluded.hlc, "
                               "updated_at = excluded.updated_at");
    if (!st) return SBX_EDB;
    sqlite3_bind_int64(st, 1, (int64_t)e->cursor);
    sqlite3_bind_int64(st, 2, (int64_t)e->hlc.last);
    sqlite3_bind_int64(st, 3, sbx_now_ms());
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(e, "save sync state");
}

static int load_state(sbx_engine *e)
{
    int rc = load_authors(e);
    if (rc != 0) return rc;
    sqlite3_stmt *st = stmt(e, "SELECT cursor, hlc FROM sync_state WHERE id = 1");
    if (!st) return SBX_EDB;
    e->cursor = 0;
    uint64_t last = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        e->cursor = (uint64_t)sqlite3_column_int64(st, 0);
        last = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    sbx_hlc_init(&e->hlc, last);
    return 0;
}

static void drop_accepted(sbx_engine *e)
{
    for (size_t i = 0; i < e->n_accepted; i++) sbx_entry_free(e->accepted[i]);
    e->n_accepted = 0;
}

static int remember_accepted(sbx_engine *e, struct sbx_entry *entry)
{
    if (e->n_accepted == e->cap_accepted) {
        size_t cap = e->cap_accepted ? e->cap_accepted * 2 : 64;
        struct sbx_entry **na = realloc(e->accepted, cap * sizeof *na);
        if (!na) return SBX_ENOMEM;
        e->accepted = na;
        e->cap_accepted = cap;
    }
    e->accepted[e->n_accepted++] = entry;
    return 0;
}

/* Content-derived ids: BLAKE2b over a domain string, the library and the
 * content, shaped as a UUID (version 8, "custom"). */
static void derived_id(const char *domain, const uint8_t library[SBX_ID_BYTES], const void *data,
                       size_t len, uint8_t out[SBX_ID_BYTES])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, SBX_ID_BYTES);
    crypto_generichash_update(&h, (const uint8_t *)domain, strlen(domain) + 1);
    crypto_generichash_update(&h, library, SBX_ID_BYTES);
    crypto_generichash_update(&h, data, len);
    crypto_generichash_final(&h, out, SBX_ID_BYTES);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x80);
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

void sbx_photo_id_for_hash(const uint8_t library[SBX_ID_BYTES], const uint8_t sha256[32],
                           uint8_t out[SBX_ID_BYTES])
{
    derived_id("shoebox/photo", library, sha256, 32, out);
}

void sbx_tag_id_for_label(const uint8_t library[SBX_ID_BYTES], const char *label, size_t len,
                          uint8_t out[SBX_ID_BYTES])
{
    /* Labels match case-insensitively (ASCII), so "Beach" and "beach" made
     * on two devices are one tag. */
    char buf[SBX_MAX_STR];
    if (len > sizeof buf) len = sizeof buf;
    for (size_t i = 0; i < len; i++)
        buf[i] = (label[i] >= 'A' && label[i] <= 'Z') ? (char)(label[i] + 32) : label[i];
    derived_id("shoebox/tag", library, buf, len, out);
}

/* The library id binds the founder's key: only the founder can sign a
 * genesis entry for it. */
static void library_id_for(const uint8_t founder[SBX_KEY_BYTES], const uint8_t nonce[SBX_ID_BYTES],
                           uint8_t out[SBX_ID_BYTES])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, SBX_ID_BYTES);
    crypto_generichash_update(&h, (const uint8_t *)"shoebox/library", 16);
    crypto_generichash_update(&h, founder, SBX_KEY_BYTES);
    crypto_generichash_update(&h, nonce, SBX_ID_BYTES);
    crypto_generichash_final(&h, out, SBX_ID_BYTES);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x80);
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

static void bind_str(sqlite3_stmt *st, int i, struct sbx_str s)
{
    sqlite3_bind_text(st, i, s.ptr ? s.ptr : "", (int)s.len, SQLITE_STATIC);
}

static void bind_id(sqlite3_stmt *st, int i, const uint8_t id[SBX_ID_BYTES])
{
    sqlite3_bind_blob(st, i, id, SBX_ID_BYTES, SQLITE_STATIC);
}

static bool id_is_zero(const uint8_t *id, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (id[i]) return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* Applying ops                                                         */

struct apply_ctx {
    sbx_engine *e;
    const struct sbx_entry *entry;
    int64_t author;  /* local ix of the entry's author */
    struct stamp s;  /* the entry's stamp */
    int64_t ms;      /* the entry's hlc in ms: the time the change was made */
    uint32_t idx;    /* the op's index in the entry: a dot's third part */
};

/* Reads a register's stamp: SELECT <hlc>, <by> FROM <table> WHERE id = ?. */
static int read_stamp(sbx_engine *e, const char *sql, const uint8_t *id, size_t id_len, struct stamp *out,
                      bool *exists)
{
    sqlite3_stmt *st = stmt(e, sql);
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, id, (int)id_len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *exists = rc == SQLITE_ROW;
    out->hlc = 0;
    out->ix = 0;
    if (rc == SQLITE_ROW) {
        out->hlc = (uint64_t)sqlite3_column_int64(st, 0);
        out->ix = sqlite3_column_int64(st, 1);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_err(e, "read stamp");
}

/* Makes the row of an object an op names, if it has none yet: an edit can
 * arrive before the op that creates the object (a shell row). */
static int ensure_row(struct apply_ctx *c, const char *sql, const uint8_t id[SBX_ID_BYTES])
{
    sqlite3_stmt *st = stmt(c->e, sql);
    if (!st) return SBX_EDB;
    bind_id(st, 1, id);
    return STEP_DONE(st);
}

static int ensure_photo(struct apply_ctx *c, const uint8_t id[SBX_ID_BYTES])
{
    return ensure_row(c, "INSERT INTO photos(id) VALUES (?1) ON CONFLICT(id) DO NOTHING", id);
}

static int ensure_album(struct apply_ctx *c, const uint8_t id[SBX_ID_BYTES])
{
    return ensure_row(c, "INSERT INTO albums(id) VALUES (?1) ON CONFLICT(id) DO NOTHING", id);
}

static int ensure_tag(struct apply_ctx *c, const uint8_t id[SBX_ID_BYTES])
{
    return ensure_row(c, "INSERT INTO tags(id) VALUES (?1) ON CONFLICT(id) DO NOTHING", id);
}

/* Moves a changed object to the head of the feed (a new change sequence). */
static int touch_row(struct apply_ctx *c, const char *sql, const uint8_t id[SBX_ID_BYTES])
{
    sqlite3_stmt *st = stmt(c->e, sql);
    if (!st) return SBX_EDB;
    bind_id(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)next_cursor(c->e));
    sqlite3_bind_int64(st, 3, c->ms);
    return STEP_DONE(st);
}

static int touch_photo(struct apply_ctx *c, const uint8_t id[SBX_ID_BYTES])
{
    return touch_row(c, "UPDATE photos SET cursor_updated_at = ?2, updated_at = max(updated_at, ?3) WHERE id = ?1", id);
}

static int touch_album(struct apply_ctx *c, const uint8_t id[SBX_ID_BYTES])
{
    return touch_row(c, "UPDATE albums SET cursor_updated_at = ?2, updated_at = max(updated_at, ?3) WHERE id = ?1", id);
}

/* photo.put on a photo with no row yet: the common case, one INSERT. */
static const char SQL_PHOTO_INSERT[] =
    "INSERT INTO photos(id, device_id, storage_key, hash, file_name, size_bytes, captured_at, "
    "uploaded_at, width, height, mime_type, location_lat, location_lon, camera_make, camera_model, "
    "orientation, updated_at, put_hlc, put_by, captured_at_hlc, captured_at_by, location_hlc, "
    "location_by, file_name_hlc, file_name_by, cursor_updated_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?8, ?17, ?18, "
    "?17, ?18, ?17, ?18, ?17, ?18, ?19) ON CONFLICT(id) DO NOTHING";

static void bind_put(struct apply_ctx *c, sqlite3_stmt *st, const struct sbx_op *op)
{
    const struct sbx_photo_facts *f = &op->facts;
    bind_id(st, 1, op->id);
    sqlite3_bind_blob(st, 2, c->entry->author, SBX_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, f->hash, 32, SQLITE_STATIC);
    bind_str(st, 5, f->file_name);
    sqlite3_bind_int64(st, 6, (int64_t)f->size_bytes);
    if (f->has_captured_at) sqlite3_bind_int64(st, 7, f->captured_at_ms);
    sqlite3_bind_int64(st, 8, c->ms);
    sqlite3_bind_int64(st, 9, f->width);
    sqlite3_bind_int64(st, 10, f->height);
    bind_str(st, 11, f->mime_type);
    if (f->has_location) {
        sqlite3_bind_double(st, 12, f->lat);
        sqlite3_bind_double(st, 13, f->lon);
    }
    bind_str(st, 14, f->camera_make);
    bind_str(st, 15, f->camera_model);
    sqlite3_bind_int64(st, 16, f->orientation);
    sqlite3_bind_int64(st, 17, (int64_t)c->s.hlc);
    sqlite3_bind_int64(st, 18, c->s.ix);
}

/* The LWW registers of a photo that photo.put also writes. */
enum { PUT_CAPTURED, PUT_LOCATION, PUT_FILE_NAME, PUT_N };

static int apply_photo_put(struct apply_ctx *c, const struct sbx_op *op)
{
    sbx_engine *e = c->e;
    sqlite3_stmt *st = stmt(e, SQL_PHOTO_INSERT);
    if (!st) return SBX_EDB;
    bind_put(c, st, op);
    sqlite3_bind_int64(st, 19, (int64_t)next_cursor(e));
    if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "photo insert");
    if (sqlite3_changes(e->db) == 1) return 0;

    /* The row exists: a shell made by an earlier edit, or a concurrent put
     * of the same bytes by another device. Each register takes this put's
     * values only where this put's stamp is greater. */
    st = stmt(e, "SELECT put_hlc, ifnull(put_by, 0), captured_at_hlc, captured_at_by, location_hlc, "
                 "location_by, file_name_hlc, file_name_by FROM photos WHERE id = ?1");
    if (!st) return SBX_EDB;
    bind_id(st, 1, op->id);
    if (sqlite3_step(st) != SQLITE_ROW) return db_err(e, "photo read");
    struct stamp put = {(uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1)};
    struct stamp reg[PUT_N];
    for (int i = 0; i < PUT_N; i++) {
        reg[i].hlc = (uint64_t)sqlite3_column_int64(st, 2 + 2 * i);
        reg[i].ix = sqlite3_column_int64(st, 3 + 2 * i);
    }
    sqlite3_reset(st);

    bool facts = stamp_gt(e, c->s, put);
    bool wins[PUT_N];
    for (int i = 0; i < PUT_N; i++) wins[i] = stamp_gt(e, c->s, reg[i]);
    if (!facts && !wins[0] && !wins[1] && !wins[2]) return 0;

    const struct sbx_photo_facts *f = &op->facts;
    if (facts) {
        st = stmt(e, "UPDATE photos SET device_id = ?2, storage_key = ?3, hash = ?4, size_bytes = ?6, "
                     "uploaded_at = ?8, width = ?9, height = ?10, mime_type = ?11, camera_make = ?14, "
                     "camera_model = ?15, orientation = ?16, put_hlc = ?17, put_by = ?18 WHERE id = ?1");
        if (!st) return SBX_EDB;
        bind_put(c, st, op);
        if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "photo facts");
    }
    if (wins[PUT_CAPTURED]) {
        st = stmt(e, "UPDATE photos SET captured_at = ?2, captured_at_hlc = ?3, captured_at_by = ?4 WHERE id = ?1");
        if (!st) return SBX_EDB;
        bind_id(st, 1, op->id);
        if (f->has_captured_at) sqlite3_bind_int64(st, 2, f->captured_at_ms);
        sqlite3_bind_int64(st, 3, (int64_t)c->s.hlc);
        sqlite3_bind_int64(st, 4, c->s.ix);
        if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "photo captured_at");
    }
    if (wins[PUT_LOCATION]) {
        st = stmt(e, "UPDATE photos SET location_lat = ?2, location_lon = ?3, location_hlc = ?4, "
                     "location_by = ?5 WHERE id = ?1");
        if (!st) return SBX_EDB;
        bind_id(st, 1, op->id);
        if (f->has_location) {
            sqlite3_bind_double(st, 2, f->lat);
            sqlite3_bind_double(st, 3, f->lon);
        }
        sqlite3_bind_int64(st, 4, (int64_t)c->s.hlc);
        sqlite3_bind_int64(st, 5, c->s.ix);
        if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "photo location");
    }
    if (wins[PUT_FILE_NAME]) {
        st = stmt(e, "UPDATE photos SET file_name = ?2, file_name_hlc = ?3, file_name_by = ?4 WHERE id = ?1");
        if (!st) return SBX_EDB;
        bind_id(st, 1, op->id);
        bind_str(st, 2, f->file_name);
        sqlite3_bind_int64(st, 3, (int64_t)c->s.hlc);
        sqlite3_bind_int64(st, 4, c->s.ix);
        if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "photo file_name");
    }
    return touch_photo(c, op->id);
}

/* One statement pair per photo register: read its stamp, write value and
 * stamp. The value is bound by the caller as ?2 (and ?3 for location). */
struct photo_register {
    const char *read;
    const char *write;
};

static const struct photo_register photo_registers[SBX_PF__COUNT] = {
    [SBX_PF_CAPTURED_AT] = {"SELECT captured_at_hlc, captured_at_by FROM photos WHERE id = ?1",
                            "UPDATE photos SET captured_at = ?2, captured_at_hlc = ?4, captured_at_by = ?5 WHERE id = ?1"},
    [SBX_PF_LOCATION] = {"SELECT location_hlc, location_by FROM photos WHERE id = ?1",
                         "UPDATE photos SET location_lat = ?2, location_lon = ?3, location_hlc = ?4, location_by = ?5 WHERE id = ?1"},
    [SBX_PF_FILE_NAME] = {"SELECT file_name_hlc, file_name_by FROM photos WHERE id = ?1",
                          "UPDATE photos SET file_name = ?2, file_name_hlc = ?4, file_name_by = ?5 WHERE id = ?1"},
    [SBX_PF_FAVORITE] = {"SELECT favorite_hlc, favorite_by FROM photos WHERE id = ?1",
                         "UPDATE photos SET favorite = ?2, favorite_hlc = ?4, favorite_by = ?5 WHERE id = ?1"},
    [SBX_PF_ARCHIVED] = {"SELECT archived_hlc, archived_by FROM photos WHERE id = ?1",
                         "UPDATE photos SET archived = ?2, archived_hlc = ?4, archived_by = ?5 WHERE id = ?1"},
    [SBX_PF_DESCRIPTION] = {"SELECT description_hlc, description_by FROM photos WHERE id = ?1",
                            "UPDATE photos SET description = ?2, description_hlc = ?4, description_by = ?5 WHERE id = ?1"},
    [SBX_PF_THUMB] = {"SELECT thumb_hlc, thumb_by FROM photos WHERE id = ?1",
                      "UPDATE photos SET thumb_hash = ?2, thumb_hlc = ?4, thumb_by = ?5 WHERE id = ?1"},
    [SBX_PF_MEDIUM] = {"SELECT medium_hlc, medium_by FROM photos WHERE id = ?1",
                       "UPDATE photos SET medium_hash = ?2, medium_hlc = ?4, medium_by = ?5 WHERE id = ?1"},
};

static int apply_photo_set(struct apply_ctx *c, const struct sbx_op *op)
{
    sbx_engine *e = c->e;
    SBX_ASSERT(op->field > 0 && op->field < SBX_PF__COUNT);
    const struct photo_register *r = &photo_registers[op->field];
    int rc = ensure_photo(c, op->id);
    if (rc != 0) return rc;
    struct stamp cur;
    bool exists;
    if ((rc = read_stamp(e, r->read, op->id, SBX_ID_BYTES, &cur, &exists)) != 0) return rc;
    if (!stamp_gt(e, c->s, cur)) return 0;
    sqlite3_stmt *st = stmt(e, r->write);
    if (!st) return SBX_EDB;
    bind_id(st, 1, op->id);
    const struct sbx_photo_value *v = &op->value;
    if (!v->is_nil) {
        switch (op->field) {
        case SBX_PF_CAPTURED_AT: sqlite3_bind_int64(st, 2, v->ms); break;
        case SBX_PF_LOCATION:
            sqlite3_bind_double(st, 2, v->lat);
            sqlite3_bind_double(st, 3, v->lon);
            break;
        case SBX_PF_FILE_NAME:
        case SBX_PF_DESCRIPTION: bind_str(st, 2, v->str); break;
        case SBX_PF_FAVORITE:
        case SBX_PF_ARCHIVED: sqlite3_bind_int(st, 2, v->b); break;
        case SBX_PF_THUMB:
        case SBX_PF_MEDIUM: sqlite3_bind_blob(st, 2, v->hash, SBX_HASH_BYTES, SQLITE_STATIC); break;
        default: SBX_ASSERT(0);
        }
    } else if (op->field == SBX_PF_FAVORITE || op->field == SBX_PF_ARCHIVED) {
        sqlite3_bind_int(st, 2, 0);
    }
    sqlite3_bind_int64(st, 4, (int64_t)c->s.hlc);
    sqlite3_bind_int64(st, 5, c->s.ix);
    if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "photo set");
    return touch_photo(c, op->id);
}

/* The deleted register of photos and albums. A delete and a concurrent edit
 * touch different registers, so the edit never undeletes; restore is simply a
 * later write of "not deleted". */
static int apply_deleted(struct apply_ctx *c, const struct sbx_op *op, bool photo, bool deleted)
{
    sbx_engine *e = c->e;
    int rc = photo ? ensure_photo(c, op->id) : ensure_album(c, op->id);
    if (rc != 0) return rc;
    struct stamp cur;
    bool exists;
    rc = read_stamp(e,
                    photo ? "SELECT deleted_hlc, deleted_by FROM photos WHERE id = ?1"
                          : "SELECT deleted_hlc, deleted_by FROM albums WHERE id = ?1",
                    op->id, SBX_ID_BYTES, &cur, &exists);
    if (rc != 0) return rc;
    if (!stamp_gt(e, c->s, cur)) return 0;
    sqlite3_stmt *st = stmt(e, photo ? "UPDATE photos SET is_deleted = ?2, deleted_at = ?3, deleted_hlc = ?4, "
                                       "deleted_by = ?5 WHERE id = ?1"
                                     : "UPDATE albums SET is_deleted = ?2, deleted_at = ?3, deleted_hlc = ?4, "
                                       "deleted_by = ?5 WHERE id = ?1");
    if (!st) return SBX_EDB;
    bind_id(st, 1, op->id);
    sqlite3_bind_int(st, 2, deleted);
    if (deleted) sqlite3_bind_int64(st, 3, c->ms);
    sqlite3_bind_int64(st, 4, (int64_t)c->s.hlc);
    sqlite3_bind_int64(st, 5, c->s.ix);
    if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "deleted register");
    if (photo) {
        /* Albums list their photos: a photo's deletion changes them too. */
        st = stmt(e, "UPDATE albums SET cursor_updated_at = ?2 WHERE id IN "
                     "(SELECT album_id FROM album_items WHERE photo_id = ?1 AND present = 1)");
        if (!st) return SBX_EDB;
        bind_id(st, 1, op->id);
        sqlite3_bind_int64(st, 2, (int64_t)next_cursor(e));
        if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "album touch");
        return touch_photo(c, op->id);
    }
    return touch_album(c, op->id);
}

/* What an LWW register write binds as ?2. */
enum lww_value { LWW_NAME, LWW_REF_ID, LWW_ROLE };

/* One write to an LWW register: reads the register's stamp with `read_sql`
 * (?1 = key) and, only when this op's stamp is greater, runs `write_sql`
 * with ?1 the key, ?2 the value and ?3, ?4 the stamp. Returns 1 when it
 * wrote, 0 when an equal or greater write holds the register, or a negative
 * error. */
static int lww_write(struct apply_ctx *c, const char *read_sql, const char *write_sql, const uint8_t *key,
                     size_t key_len, const struct sbx_op *op, enum lww_value value)
{
    sbx_engine *e = c->e;
    struct stamp cur;
    bool exists;
    int rc = read_stamp(e, read_sql, key, key_len, &cur, &exists);
    if (rc != 0) return rc;
    if (!stamp_gt(e, c->s, cur)) return 0;
    sqlite3_stmt *st = stmt(e, write_sql);
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, key, (int)key_len, SQLITE_STATIC);
    switch (value) {
    case LWW_NAME: bind_str(st, 2, op->name); break;
    case LWW_REF_ID:
        if (!id_is_zero(op->ref, SBX_ID_BYTES)) bind_id(st, 2, op->ref);
        break;
    case LWW_ROLE: sqlite3_bind_int(st, 2, (int)op->role); break;
    }
    sqlite3_bind_int64(st, 3, (int64_t)c->s.hlc);
    sqlite3_bind_int64(st, 4, c->s.ix);
    return sqlite3_step(st) == SQLITE_DONE ? 1 : db_err(e, write_sql);
}

/* An album's name is an LWW register written by create and rename. */
static int apply_album_name(struct apply_ctx *c, const struct sbx_op *op)
{
    int rc = ensure_album(c, op->id);
    if (rc == 0)
        rc = lww_write(c, "SELECT name_hlc, name_by FROM albums WHERE id = ?1",
                       "UPDATE albums SET name = ?2, name_hlc = ?3, name_by = ?4 WHERE id = ?1", op->id, SBX_ID_BYTES, op,
                       LWW_NAME);
    return rc == 1 ? touch_album(c, op->id) : rc;
}

static int apply_album_create(struct apply_ctx *c, const struct sbx_op *op)
{
    sbx_engine *e = c->e;
    int rc = ensure_album(c, op->id);
    if (rc != 0) return rc;
    /* Album ids are random, so one create exists; should a forged second
     * one appear, the earliest stands, whatever the order they arrive in. */
    sqlite3_stmt *st = stmt(e, "UPDATE albums SET created_at = min(ifnull(created_at, ?2), ?2), "
                               "create_hlc = min(ifnull(create_hlc, ?3), ?3), create_by = 0 WHERE id = ?1");
    if (!st) return SBX_EDB;
    bind_id(st, 1, op->id);
    sqlite3_bind_int64(st, 2, c->ms);
    sqlite3_bind_int64(st, 3, (int64_t)c->s.hlc);
    if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "album create");
    rc = apply_album_name(c, op);
    return rc ? rc : touch_album(c, op->id);
}

static int apply_album_cover(struct apply_ctx *c, const struct sbx_op *op)
{
    int rc = ensure_album(c, op->id);
    if (rc == 0)
        rc = lww_write(c, "SELECT cover_hlc, cover_by FROM albums WHERE id = ?1",
                       "UPDATE albums SET cover_photo_id = ?2, cover_hlc = ?3, cover_by = ?4 WHERE id = ?1", op->id,
                       SBX_ID_BYTES, op, LWW_REF_ID);
    return rc == 1 ? touch_album(c, op->id) : rc;
}

/* Add-wins sets: album membership and photo tags share one implementation,
 * told apart by these statements. */
struct set_sql {
    const char *ensure_pair;
    const char *add_dot;
    const char *remove_dot;
    const char *recompute;
};

static const struct set_sql album_set = {
    "INSERT INTO album_items(album_id, photo_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    "INSERT INTO album_item_dots(album_id, photo_id, author_ix, seq, idx, hlc, added) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1) ON CONFLICT DO UPDATE SET added = 1, hlc = excluded.hlc",
    "INSERT INTO album_item_dots(album_id, photo_id, author_ix, seq, idx, removed) "
    "VALUES (?1, ?2, ?3, ?4, ?5, 1) ON CONFLICT DO UPDATE SET removed = 1",
    "UPDATE album_items SET present = EXISTS (SELECT 1 FROM album_item_dots d WHERE d.album_id = ?1 "
    "AND d.photo_id = ?2 AND d.added = 1 AND d.removed = 0) WHERE album_id = ?1 AND photo_id = ?2",
};

static const struct set_sql tag_set = {
    "INSERT INTO photo_tags(photo_id, tag_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    "INSERT INTO photo_tag_dots(photo_id, tag_id, author_ix, seq, idx, added) "
    "VALUES (?1, ?2, ?3, ?4, ?5, 1) ON CONFLICT DO UPDATE SET added = 1",
    "INSERT INTO photo_tag_dots(photo_id, tag_id, author_ix, seq, idx, removed) "
    "VALUES (?1, ?2, ?3, ?4, ?5, 1) ON CONFLICT DO UPDATE SET removed = 1",
    "UPDATE photo_tags SET present = EXISTS (SELECT 1 FROM photo_tag_dots d WHERE d.photo_id = ?1 "
    "AND d.tag_id = ?2 AND d.added = 1 AND d.removed = 0) WHERE photo_id = ?1 AND tag_id = ?2",
};

static int set_pair(sbx_engine *e, const char *sql, const uint8_t *a, const uint8_t *b)
{
    sqlite3_stmt *st = stmt(e, sql);
    if (!st) return SBX_EDB;
    bind_id(st, 1, a);
    bind_id(st, 2, b);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(e, "set pair");
}

static int set_dot(sbx_engine *e, const char *sql, const uint8_t *a, const uint8_t *b, int64_t ix, uint64_t seq,
                   uint32_t idx, uint64_t hlc)
{
    sqlite3_stmt *st = stmt(e, sql);
    if (!st) return SBX_EDB;
    bind_id(st, 1, a);
    bind_id(st, 2, b);
    sqlite3_bind_int64(st, 3, ix);
    sqlite3_bind_int64(st, 4, (int64_t)seq);
    sqlite3_bind_int64(st, 5, idx);
    if (sqlite3_bind_parameter_count(st) >= 6) sqlite3_bind_int64(st, 6, (int64_t)hlc);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(e, "set dot");
}

static int apply_set_op(struct apply_ctx *c, const struct sbx_op *op, const struct set_sql *q, bool add,
                        const uint8_t *a, const uint8_t *b)
{
    sbx_engine *e = c->e;
    int rc = set_pair(e, q->ensure_pair, a, b);
    if (rc != 0) return rc;
    if (add) {
        rc = set_dot(e, q->add_dot, a, b, c->author, c->entry->seq, c->idx, c->s.hlc);
    } else {
        for (uint32_t i = 0; i < op->n_dots && rc == 0; i++) {
            int64_t ix;
            if ((rc = author_ix(e, op->dots[i].author, &ix)) != 0) return rc;
            rc = set_dot(e, q->remove_dot, a, b, ix, op->dots[i].seq, op->dots[i].idx, 0);
        }
    }
    if (rc != 0) return rc;
    return set_pair(e, q->recompute, a, b);
}

/* An album item's position is an LWW register; an add writes it too (with
 * the add's time, so new items go last), an explicit position op moves it. */
static int write_position(struct apply_ctx *c, const uint8_t *album, const uint8_t *photo, double pos)
{
    sbx_engine *e = c->e;
    sqlite3_stmt *st = stmt(e, "SELECT position_hlc, position_by FROM album_items WHERE album_id = ?1 AND photo_id = ?2");
    if (!st) return SBX_EDB;
    bind_id(st, 1, album);
    bind_id(st, 2, photo);
    struct stamp cur = {0, 0};
    if (sqlite3_step(st) == SQLITE_ROW) {
        cur.hlc = (uint64_t)sqlite3_column_int64(st, 0);
        cur.ix = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (!stamp_gt(e, c->s, cur)) return 0;
    st = stmt(e, "UPDATE album_items SET position = ?3, position_hlc = ?4, position_by = ?5 "
                 "WHERE album_id = ?1 AND photo_id = ?2");
    if (!st) return SBX_EDB;
    bind_id(st, 1, album);
    bind_id(st, 2, photo);
    sqlite3_bind_double(st, 3, pos);
    sqlite3_bind_int64(st, 4, (int64_t)c->s.hlc);
    sqlite3_bind_int64(st, 5, c->s.ix);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(e, "album position");
}

static int apply_album_item(struct apply_ctx *c, const struct sbx_op *op)
{
    int rc = ensure_album(c, op->id);
    if (rc == 0) rc = ensure_photo(c, op->ref);
    if (rc != 0) return rc;
    switch (op->type) {
    case SBX_OP_ALBUM_ADD:
        rc = apply_set_op(c, op, &album_set, true, op->id, op->ref);
        /* New items go last, in the order they were added: the entry's
         * ms, then 12 bits of fraction, exact in a double (ms needs 41 of
         * its 53 bits): 4 bits of the HLC counter (entries written within
         * one ms, up to 16) and 8 bits of the op's index (at most 256 ops
         * an entry). */
        if (rc == 0) {
            unsigned frac = (unsigned)(c->s.hlc & 0x0f) << 8 | (c->idx & 0xff);
            rc = write_position(c, op->id, op->ref, (double)c->ms + frac / 4096.0);
        }
        if (rc == 0) {
            /* added_at is the latest add's time: a max, so order-free. */
            sqlite3_stmt *st = stmt(c->e, "UPDATE album_items SET added_at = max(ifnull(added_at, 0), ?3) "
                                          "WHERE album_id = ?1 AND photo_id = ?2");
            if (!st) return SBX_EDB;
            bind_id(st, 1, op->id);
            bind_id(st, 2, op->ref);
            sqlite3_bind_int64(st, 3, c->ms);
            rc = STEP_DONE(st);
        }
        break;
    case SBX_OP_ALBUM_REMOVE: rc = apply_set_op(c, op, &album_set, false, op->id, op->ref); break;
    case SBX_OP_ALBUM_POSITION: rc = write_position(c, op->id, op->ref, op->position); break;
    default: SBX_ASSERT(0);
    }
    return rc ? rc : touch_album(c, op->id);
}

static int apply_tag_create(struct apply_ctx *c, const struct sbx_op *op)
{
    sbx_engine *e = c->e;
    int rc = ensure_tag(c, op->id);
    if (rc != 0) return rc;
    /* Two devices may create the same label: the earliest creation time
     * stands and the label itself is an LWW register. */
    sqlite3_stmt *st = stmt(e, "UPDATE tags SET created_at = min(ifnull(created_at, ?2), ?2) WHERE id = ?1");
    if (!st) return SBX_EDB;
    bind_id(st, 1, op->id);
    sqlite3_bind_int64(st, 2, c->ms);
    if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "tag created_at");
    rc = lww_write(c, "SELECT label_hlc, label_by FROM tags WHERE id = ?1",
                   "UPDATE tags SET label = ?2, label_hlc = ?3, label_by = ?4 WHERE id = ?1", op->id, SBX_ID_BYTES, op,
                   LWW_NAME);
    if (rc != 1) return rc;
    st = stmt(e, "UPDATE tags SET cursor_updated_at = ?2 WHERE id = ?1");
    if (!st) return SBX_EDB;
    bind_id(st, 1, op->id);
    sqlite3_bind_int64(st, 2, (int64_t)next_cursor(e));
    return STEP_DONE(st);
}

static int apply_photo_tag(struct apply_ctx *c, const struct sbx_op *op)
{
    int rc = ensure_photo(c, op->id);
    if (rc == 0) rc = ensure_tag(c, op->ref);
    if (rc == 0) rc = apply_set_op(c, op, &tag_set, op->type == SBX_OP_PHOTO_TAG_ADD, op->id, op->ref);
    return rc ? rc : touch_photo(c, op->id);
}

static int apply_share(struct apply_ctx *c, const struct sbx_op *op)
{
    sbx_engine *e = c->e;
    sqlite3_stmt *st;
    if (op->type == SBX_OP_SHARE_CREATE) {
        /* A link is created once by one device; a second create of the same
         * id (only a forged one could) changes nothing. */
        st = stmt(e, "INSERT INTO share_links(id, album_id, photo_id, expires_at, created_at, created_by, "
                     "cursor_updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO UPDATE SET "
                     "album_id = ifnull(album_id, excluded.album_id), photo_id = ifnull(photo_id, excluded.photo_id), "
                     "expires_at = ifnull(expires_at, excluded.expires_at), "
                     "created_at = min(ifnull(created_at, excluded.created_at), excluded.created_at), "
                     "created_by = ifnull(created_by, excluded.created_by)");
        if (!st) return SBX_EDB;
        bind_id(st, 1, op->id);
        bind_id(st, op->ref_is_album ? 2 : 3, op->ref);
        if (op->expires_at_ms) sqlite3_bind_int64(st, 4, op->expires_at_ms);
        sqlite3_bind_int64(st, 5, c->ms);
        sqlite3_bind_int64(st, 6, c->author);
        sqlite3_bind_int64(st, 7, (int64_t)next_cursor(e));
    } else {
        /* Revocation is final: the earliest revocation time stands. */
        st = stmt(e, "INSERT INTO share_links(id, revoked_at, cursor_updated_at) VALUES (?1, ?2, ?3) "
                     "ON CONFLICT(id) DO UPDATE SET revoked_at = min(ifnull(revoked_at, excluded.revoked_at), "
                     "excluded.revoked_at), cursor_updated_at = excluded.cursor_updated_at");
        if (!st) return SBX_EDB;
        bind_id(st, 1, op->id);
        sqlite3_bind_int64(st, 2, c->ms);
        sqlite3_bind_int64(st, 3, (int64_t)next_cursor(e));
    }
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(e, "share link");
}

static int apply_blob(struct apply_ctx *c, const struct sbx_op *op)
{
    sbx_engine *e = c->e;
    /* What a device holds is its own to say: a register per (blob, holder)
     * written only by that holder, so its entry order decides. */
    sqlite3_stmt *st = stmt(e, "INSERT INTO blob_holders(hash, holder_ix, held, held_hlc) VALUES (?1, ?2, ?3, ?4) "
                               "ON CONFLICT DO UPDATE SET held = excluded.held, held_hlc = excluded.held_hlc "
                               "WHERE excluded.held_hlc > blob_holders.held_hlc");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, op->hash, SBX_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, c->author);
    sqlite3_bind_int(st, 3, op->type == SBX_OP_BLOB_HELD);
    sqlite3_bind_int64(st, 4, (int64_t)c->s.hlc);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(e, "blob holder");
}

static int apply_device(struct apply_ctx *c, const struct sbx_op *op)
{
    sbx_engine *e = c->e;
    sqlite3_stmt *st;
    int rc;
    int64_t ix;
    /* Members are authors: intern the key so its entries can be stamped. */
    if ((rc = author_ix(e, op->key, &ix)) != 0) return rc;
    st = stmt(e, "INSERT INTO devices(key, name) VALUES (?1, '') ON CONFLICT(key) DO NOTHING");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, op->key, SBX_KEY_BYTES, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "device row");

    if (op->type == SBX_OP_DEVICE_REMOVE) {
        /* Concurrent removals may name different points; the earliest one
         * stands, so every replica agrees whatever the order. */
        st = stmt(e, "UPDATE devices SET removed = 1, removed_last_seq = min(ifnull(removed_last_seq, ?2), ?2) "
                     "WHERE key = ?1");
        if (!st) return SBX_EDB;
        sqlite3_bind_blob(st, 1, op->key, SBX_KEY_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)op->last_seq);
        if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "device remove");
        /* Entries of that device past the point are no longer valid; if any
         * were applied here already, the model is rebuilt from the log. */
        st = stmt(e, "SELECT seq FROM heads WHERE author_ix = ?1");
        if (!st) return SBX_EDB;
        sqlite3_bind_int64(st, 1, ix);
        if (sqlite3_step(st) == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 0) > op->last_seq)
            e->need_rebuild = true;
        sqlite3_reset(st);
        return 0;
    }
    if (op->type == SBX_OP_DEVICE_ADD) {
        /* added_by is local information (which add arrived first here) and
         * stays out of the digest; created_at is the earliest add. */
        st = stmt(e, "UPDATE devices SET created_at = min(ifnull(created_at, ?2), ?2), "
                     "added_by = ifnull(added_by, ?3) WHERE key = ?1");
        if (!st) return SBX_EDB;
        sqlite3_bind_blob(st, 1, op->key, SBX_KEY_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, c->ms);
        sqlite3_bind_int64(st, 3, c->author);
        if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "device add");
    }
    bool name = op->type == SBX_OP_DEVICE_ADD || op->type == SBX_OP_DEVICE_RENAME;
    bool role = op->type == SBX_OP_DEVICE_ADD || op->type == SBX_OP_DEVICE_ROLE;
    if (name)
        rc = lww_write(c, "SELECT name_hlc, name_by FROM devices WHERE key = ?1",
                       "UPDATE devices SET name = ?2, name_hlc = ?3, name_by = ?4 WHERE key = ?1", op->key, SBX_KEY_BYTES,
                       op, LWW_NAME);
    if (rc >= 0 && role)
        rc = lww_write(c, "SELECT role_hlc, role_by FROM devices WHERE key = ?1",
                       "UPDATE devices SET role = ?2, role_hlc = ?3, role_by = ?4 WHERE key = ?1", op->key, SBX_KEY_BYTES,
                       op, LWW_ROLE);
    return rc < 0 ? rc : 0;
}

static int apply_library(struct apply_ctx *c, const struct sbx_op *op)
{
    char name[SBX_MAX_STR + 1];
    memcpy(name, op->name.ptr, op->name.len);
    name[op->name.len] = '\0';
    return sbx_store_meta_set_text(c->e->store, "library_name", name);
}

typedef int (*apply_fn)(struct apply_ctx *c, const struct sbx_op *op);

static int apply_photo_delete(struct apply_ctx *c, const struct sbx_op *op) { return apply_deleted(c, op, true, true); }
static int apply_photo_restore(struct apply_ctx *c, const struct sbx_op *op) { return apply_deleted(c, op, true, false); }
static int apply_album_delete(struct apply_ctx *c, const struct sbx_op *op) { return apply_deleted(c, op, false, true); }
static int apply_album_restore(struct apply_ctx *c, const struct sbx_op *op) { return apply_deleted(c, op, false, false); }

/* Op handlers in a table indexed by the op type. */
static const apply_fn apply_table[SBX_OP__COUNT] = {
    [SBX_OP_LIBRARY_CREATE] = apply_library,
    [SBX_OP_DEVICE_ADD] = apply_device,
    [SBX_OP_DEVICE_REMOVE] = apply_device,
    [SBX_OP_DEVICE_RENAME] = apply_device,
    [SBX_OP_DEVICE_ROLE] = apply_device,
    [SBX_OP_PHOTO_PUT] = apply_photo_put,
    [SBX_OP_PHOTO_SET] = apply_photo_set,
    [SBX_OP_PHOTO_DELETE] = apply_photo_delete,
    [SBX_OP_PHOTO_RESTORE] = apply_photo_restore,
    [SBX_OP_ALBUM_CREATE] = apply_album_create,
    [SBX_OP_ALBUM_RENAME] = apply_album_name,
    [SBX_OP_ALBUM_COVER] = apply_album_cover,
    [SBX_OP_ALBUM_DELETE] = apply_album_delete,
    [SBX_OP_ALBUM_RESTORE] = apply_album_restore,
    [SBX_OP_ALBUM_ADD] = apply_album_item,
    [SBX_OP_ALBUM_REMOVE] = apply_album_item,
    [SBX_OP_ALBUM_POSITION] = apply_album_item,
    [SBX_OP_TAG_CREATE] = apply_tag_create,
    [SBX_OP_PHOTO_TAG_ADD] = apply_photo_tag,
    [SBX_OP_PHOTO_TAG_REMOVE] = apply_photo_tag,
    [SBX_OP_SHARE_CREATE] = apply_share,
    [SBX_OP_SHARE_REVOKE] = apply_share,
    [SBX_OP_BLOB_HELD] = apply_blob,
    [SBX_OP_BLOB_DROPPED] = apply_blob,
};

/* ------------------------------------------------------------------ */
/* Validation and the log                                               */

static void set_reason(struct sbx_recv_result *r, enum sbx_recv_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_reason(struct sbx_recv_result *r, enum sbx_recv_status status, const char *fmt, ...)
{
    va_list ap;
    r->status = status;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

struct member_info {
    bool known;   /* a devices row exists */
    bool added;   /* a device.add for it was applied */
    bool removed;
    uint64_t removed_last_seq;
};

static int member_info(sbx_engine *e, const uint8_t key[SBX_KEY_BYTES], struct member_info *m)
{
    memset(m, 0, sizeof *m);
    sqlite3_stmt *st = stmt(e, "SELECT created_at IS NOT NULL, removed, ifnull(removed_last_seq, 0) "
                               "FROM devices WHERE key = ?1");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, key, SBX_KEY_BYTES, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        m->known = true;
        m->added = sqlite3_column_int(st, 0);
        m->removed = sqlite3_column_int(st, 1);
        m->removed_last_seq = (uint64_t)sqlite3_column_int64(st, 2);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_err(e, "member info");
}

bool sbx_engine_is_member(sbx_engine *e, const uint8_t key[SBX_KEY_BYTES])
{
    struct member_info m;
    return member_info(e, key, &m) == 0 && m.added && !m.removed;
}

static bool is_genesis(const struct sbx_entry *en)
{
    return en->seq == 1 && en->n_ops > 0 && en->ops[0].type == SBX_OP_LIBRARY_CREATE;
}

/* Op rules that depend on the entry as a whole. */
static bool ops_valid(sbx_engine *e, const struct sbx_entry *en, struct sbx_recv_result *r)
{
    bool genesis = is_genesis(en), adds_self = false;
    for (uint32_t i = 0; i < en->n_ops; i++) {
        const struct sbx_op *op = &en->ops[i];
        if (op->type == SBX_OP_LIBRARY_CREATE) {
            uint8_t lib[SBX_ID_BYTES];
            if (i != 0 || en->seq != 1) {
                set_reason(r, SBX_RECV_REFUSED, "library.create outside a genesis entry");
                return false;
            }
            library_id_for(en->author, op->id, lib);
            if (memcmp(lib, e->library, SBX_ID_BYTES) != 0) {
                set_reason(r, SBX_RECV_REFUSED, "genesis entry does not found this library");
                return false;
            }
        }
        if (op->type == SBX_OP_DEVICE_ADD && memcmp(op->key, en->author, SBX_KEY_BYTES) == 0) adds_self = true;
    }
    if (genesis && !adds_self) {
        set_reason(r, SBX_RECV_REFUSED, "genesis entry does not add its author");
        return false;
    }
    return true;
}

struct head {
    uint64_t seq;
    uint8_t hash[SBX_HASH_BYTES];
};

static int read_head(sbx_engine *e, int64_t ix, struct head *h)
{
    memset(h, 0, sizeof *h);
    sqlite3_stmt *st = stmt(e, "SELECT seq, hash FROM heads WHERE author_ix = ?1");
    if (!st) return SBX_EDB;
    sqlite3_bind_int64(st, 1, ix);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        h->seq = (uint64_t)sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) == SBX_HASH_BYTES)
            memcpy(h->hash, sqlite3_column_blob(st, 1), SBX_HASH_BYTES);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_err(e, "read head");
}

/* The hash of the entry held at (author, seq) in the log or the pending
 * queue; returns 1 when found. */
static int held_hash(sbx_engine *e, const char *sql, int64_t ix, uint64_t seq, uint8_t out[SBX_HASH_BYTES])
{
    sqlite3_stmt *st = stmt(e, sql);
    if (!st) return SBX_EDB;
    sqlite3_bind_int64(st, 1, ix);
    sqlite3_bind_int64(st, 2, (int64_t)seq);
    int rc = sqlite3_step(st);
    int found = 0;
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) == SBX_HASH_BYTES) memcpy(out, sqlite3_column_blob(st, 0), SBX_HASH_BYTES);
        found = 1;
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? found : db_err(e, "held hash");
}

static int record_fork(sbx_engine *e, int64_t ix, uint64_t seq, const uint8_t kept[SBX_HASH_BYTES],
                       const uint8_t other[SBX_HASH_BYTES])
{
    sqlite3_stmt *st = stmt(e, "INSERT INTO forks(author_ix, seq, kept_hash, other_hash, detected_at) "
                               "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING");
    if (!st) return SBX_EDB;
    sqlite3_bind_int64(st, 1, ix);
    sqlite3_bind_int64(st, 2, (int64_t)seq);
    sqlite3_bind_blob(st, 3, kept, SBX_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, other, SBX_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, sbx_now_ms());
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(e, "record fork");
}

/* Decides what to do with a decoded, signature-checked entry. */
static int check_entry(sbx_engine *e, const struct sbx_entry *en, int64_t now_ms, int64_t ix,
                       struct sbx_recv_result *r)
{
    char id[9];
    sbx_hex_encode(id, en->author, 4);
    if (memcmp(en->library, e->library, SBX_ID_BYTES) != 0) {
        set_reason(r, SBX_RECV_REFUSED, "entry of another library");
        return 0;
    }
    uint8_t held[SBX_HASH_BYTES];
    int found = held_hash(e, "SELECT hash FROM entries WHERE author_ix = ?1 AND seq = ?2", ix, en->seq, held);
    if (found < 0) return found;
    if (!found) {
        found = held_hash(e, "SELECT hash FROM pending_entries WHERE author_ix = ?1 AND seq = ?2", ix, en->seq, held);
        if (found < 0) return found;
    }
    if (found) {
        if (memcmp(held, en->hash, SBX_HASH_BYTES) == 0) {
            set_reason(r, SBX_RECV_DUPLICATE, "already held");
            return 0;
        }
        /* Two entries signed by one device for one seq: only a cloned or
         * compromised key does that. Keep the first, name the device. */
        int rc = record_fork(e, ix, en->seq, held, en->hash);
        if (rc != 0) return rc;
        set_reason(r, SBX_RECV_REFUSED, "fork: device %s signed two entries with seq %llu", id,
                   (unsigned long long)en->seq);
        return 0;
    }
    if (!ops_valid(e, en, r)) return 0;
    struct member_info m;
    int rc = member_info(e, en->author, &m);
    if (rc != 0) return rc;
    if (m.removed && en->seq > m.removed_last_seq) {
        set_reason(r, SBX_RECV_REFUSED, "device %s was removed after its entry %llu", id,
                   (unsigned long long)m.removed_last_seq);
        return 0;
    }
    if (!m.added && !is_genesis(en)) {
        set_reason(r, SBX_RECV_PENDING, "author %s is not a member (yet)", id);
        return 0;
    }
    struct head h;
    if ((rc = read_head(e, ix, &h)) != 0) return rc;
    if (en->seq > h.seq + 1) {
        set_reason(r, SBX_RECV_PENDING, "waits for entry %llu of %s", (unsigned long long)(h.seq + 1), id);
        return 0;
    }
    SBX_ASSERT(en->seq == h.seq + 1); /* lower seqs were found in the log above */
    if (memcmp(en->prev, h.hash, SBX_HASH_BYTES) != 0) {
        set_reason(r, SBX_RECV_REFUSED, "entry %llu of %s does not follow the entry before it",
                   (unsigned long long)en->seq, id);
        return 0;
    }
    if (!e->rebuilding && sbx_hlc_ms(en->hlc) > now_ms + (int64_t)e->max_future_ms) {
        set_reason(r, SBX_RECV_DEFERRED, "entry %llu of %s is stamped too far in the future",
                   (unsigned long long)en->seq, id);
        return 0;
    }
    set_reason(r, SBX_RECV_APPLIED, "applied");
    return 0;
}

static int store_entry(sbx_engine *e, const struct sbx_entry *en, int64_t ix, int64_t now_ms)
{
    sqlite3_stmt *st = stmt(e, "INSERT INTO entries(author_ix, seq, hash, hlc, raw, received_at) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!st) return SBX_EDB;
    sqlite3_bind_int64(st, 1, ix);
    sqlite3_bind_int64(st, 2, (int64_t)en->seq);
    sqlite3_bind_blob(st, 3, en->hash, SBX_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)en->hlc);
    sqlite3_bind_blob(st, 5, en->raw, (int)en->raw_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now_ms);
    if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "store entry");
    st = stmt(e, "INSERT INTO heads(author_ix, seq, hash) VALUES (?1, ?2, ?3) "
                 "ON CONFLICT(author_ix) DO UPDATE SET seq = excluded.seq, hash = excluded.hash");
    if (!st) return SBX_EDB;
    sqlite3_bind_int64(st, 1, ix);
    sqlite3_bind_int64(st, 2, (int64_t)en->seq);
    sqlite3_bind_blob(st, 3, en->hash, SBX_HASH_BYTES, SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(e, "store head");
}

static int apply_entry(sbx_engine *e, const struct sbx_entry *en, int64_t ix, int64_t now_ms)
{
    int rc = store_entry(e, en, ix, now_ms);
    if (rc != 0) return rc;
    struct apply_ctx c = {
        .e = e, .entry = en, .author = ix, .s = {en->hlc, ix}, .ms = sbx_hlc_ms(en->hlc),
    };
    for (uint32_t i = 0; i < en->n_ops; i++) {
        const struct sbx_op *op = &en->ops[i];
        SBX_ASSERT(op->type > 0 && op->type < SBX_OP__COUNT && apply_table[op->type]);
        c.idx = i;
        if ((rc = apply_table[op->type](&c, op)) != 0) return rc;
    }
    /* The bound was checked; observing cannot be refused now. */
    sbx_hlc_observe(&e->hlc, en->hlc, now_ms, UINT64_MAX / 2);
    return 0;
}

static int park_entry(sbx_engine *e, const struct sbx_entry *en, int64_t ix, int64_t now_ms,
                      struct sbx_recv_result *r)
{
    int64_t n = sbx_store_query_int(e->store, "SELECT count(*) FROM pending_entries");
    if (n < 0) return SBX_EDB;
    if ((uint64_t)n >= SBX_MAX_PENDING_ENTRIES) {
        set_reason(r, SBX_RECV_DEFERRED, "too many entries wait for their predecessors");
        return 0;
    }
    sqlite3_stmt *st = stmt(e, "INSERT INTO pending_entries(author_ix, seq, hash, raw, received_at) "
                               "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING");
    if (!st) return SBX_EDB;
    sqlite3_bind_int64(st, 1, ix);
    sqlite3_bind_int64(st, 2, (int64_t)en->seq);
    sqlite3_bind_blob(st, 3, en->hash, SBX_HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, en->raw, (int)en->raw_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(e, "park entry");
}

static int refuse_entry(sbx_engine *e, const uint8_t hash[SBX_HASH_BYTES], int64_t ix, uint64_t seq,
                        const char *reason)
{
    sqlite3_stmt *st = stmt(e, "INSERT INTO refused_entries(hash, author_ix, seq, reason, refused_at) "
                               "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(hash) DO NOTHING");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, hash, SBX_HASH_BYTES, SQLITE_STATIC);
    if (ix > 0) sqlite3_bind_int64(st, 2, ix);
    sqlite3_bind_int64(st, 3, (int64_t)seq);
    sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, sbx_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "refuse entry");
    sbx_warn("refused entry %llu: %s", (unsigned long long)seq, reason);
    return 0;
}

/* Worklist of authors whose pending entries may have become applicable. */
struct wake {
    int64_t ix[64];
    size_t n;
    bool overflow; /* too many to track: rescan every pending author */
};

static void wake_author(struct wake *w, int64_t ix)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->ix[i] == ix) return;
    if (w->n < SBX_ARRAY_LEN(w->ix)) w->ix[w->n++] = ix;
    else w->overflow = true;
}

static int process_entry(sbx_engine *e, struct sbx_entry *en, int64_t now_ms, struct sbx_recv_result *r,
                         struct wake *w);

/* Applies pending entries that the last applied entries unblocked. Bounded:
 * every round applies or drops at least one pending row, and the queue is
 * bounded by SBX_MAX_PENDING_ENTRIES. */
static int drain_pending(sbx_engine *e, struct wake *w, int64_t now_ms)
{
    for (uint32_t guard = 0; guard <= SBX_MAX_PENDING_ENTRIES; guard++) {
        if (w->overflow) {
            w->overflow = false;
            w->n = 0;
            sqlite3_stmt *st = stmt(e, "SELECT DISTINCT author_ix FROM pending_entries");
            if (!st) return SBX_EDB;
            while (sqlite3_step(st) == SQLITE_ROW) wake_author(w, sqlite3_column_int64(st, 0));
            sqlite3_reset(st);
        }
        if (w->n == 0) return 0;
        int64_t ix = w->ix[--w->n];
        struct head h;
        int rc = read_head(e, ix, &h);
        if (rc != 0) return rc;
        /* Rows at or below the head are duplicates of applied entries. */
        sqlite3_stmt *st = stmt(e, "DELETE FROM pending_entries WHERE author_ix = ?1 AND seq <= ?2");
        if (!st) return SBX_EDB;
        sqlite3_bind_int64(st, 1, ix);
        sqlite3_bind_int64(st, 2, (int64_t)h.seq);
        if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "drop stale pending");
        st = stmt(e, "SELECT raw FROM pending_entries WHERE author_ix = ?1 AND seq = ?2");
        if (!st) return SBX_EDB;
        sqlite3_bind_int64(st, 1, ix);
        sqlite3_bind_int64(st, 2, (int64_t)h.seq + 1);
        struct sbx_entry *en = NULL;
        if (sqlite3_step(st) == SQLITE_ROW)
            rc = sbx_entry_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), &en);
        else
            rc = SBX_ENOENT;
        sqlite3_reset(st);
        if (rc == SBX_ENOENT) continue;
        st = stmt(e, "DELETE FROM pending_entries WHERE author_ix = ?1 AND seq = ?2");
        if (!st) return SBX_EDB;
        sqlite3_bind_int64(st, 1, ix);
        sqlite3_bind_int64(st, 2, (int64_t)h.seq + 1);
        if (sqlite3_step(st) != SQLITE_DONE) return db_err(e, "unpark");
        if (rc != 0) continue; /* it was checked on arrival; a bad row is dropped */
        struct sbx_recv_result r;
        if ((rc = process_entry(e, en, now_ms, &r, w)) != 0) return rc;
    }
    return 0;
}

/* Takes ownership of `en`. */
static int process_entry(sbx_engine *e, struct sbx_entry *en, int64_t now_ms, struct sbx_recv_result *r,
                         struct wake *w)
{
    int64_t ix = find_author(e, en->author);
    int rc = 0;
    bool interned = ix != 0;
    /* Unknown authors are interned only when their entry is kept (applied or
     * parked), so junk from strangers leaves no rows behind. */
    if (!interned) ix = INT64_MAX;
    if ((rc = check_entry(e, en, now_ms, ix, r)) != 0) goto out;
    if (!interned && (r->status == SBX_RECV_APPLIED || r->status == SBX_RECV_PENDING))
        if ((rc = author_ix(e, en->author, &ix)) != 0) goto out;
    switch (r->status) {
    case SBX_RECV_APPLIED:
        if ((rc = apply_entry(e, en, ix, now_ms)) != 0) goto out;
        wake_author(w, ix);
        for (uint32_t i = 0; i < en->n_ops; i++) {
            if (en->ops[i].type != SBX_OP_DEVICE_ADD) continue;
            int64_t added;
            if ((rc = author_ix(e, en->ops[i].key, &added)) != 0) goto out;
            wake_author(w, added);
        }
        if ((rc = remember_accepted(e, en)) != 0) goto out;
        return 0;
    case SBX_RECV_PENDING: rc = park_entry(e, en, ix, now_ms, r); break;
    case SBX_RECV_REFUSED: rc = refuse_entry(e, en->hash, interned ? ix : 0, en->seq, r->reason); break;
    case SBX_RECV_DUPLICATE:
    case SBX_RECV_DEFERRED: break;
    }
out:
    sbx_entry_free(en);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Rebuild                                                              */

static const char *const materialized_tables[] = {
    "album_item_dots", "album_items", "photo_tag_dots", "photo_tags", "share_links", "blob_holders",
    "tags", "albums", "photos", "devices", "heads", "entries",
};

int sbx_engine_rebuild(sbx_engine *e)
{
    /* Take the log out, clear the model, and feed the log back through the
     * normal path. The removal points are restored first, so entries past
     * them are refused whatever their position in hlc order. */
    struct raw { uint8_t *p; size_t n; } *log = NULL;
    size_t n = 0, cap = 0;
    /* Every row is stamped anew from here on: feed cursors from before the
     * rebuild can no longer say what changed, and the local API answers
     * them with a reset (meta feed_floor). */
    char floor[24];
    snprintf(floor, sizeof floor, "%llu", (unsigned long long)e->cursor);
    int rc = sbx_store_meta_set_text(e->store, "feed_floor", floor);
    if (rc != 0) return rc;
    sqlite3_stmt *st = stmt(e, "SELECT raw FROM entries ORDER BY hlc, author_ix, seq");
    if (!st) return SBX_EDB;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            struct raw *nl = realloc(log, cap * sizeof *nl);
            if (!nl) { rc = SBX_ENOMEM; break; }
            log = nl;
        }
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        log[n].p = malloc(len);
        if (!log[n].p) { rc = SBX_ENOMEM; break; }
        memcpy(log[n].p, sqlite3_column_blob(st, 0), len);
        log[n].n = len;
        n++;
    }
    sqlite3_reset(st);
    if (rc != 0) goto out;

    struct removal { uint8_t key[SBX_KEY_BYTES]; uint64_t last; } *rem = NULL;
    size_t n_rem = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct sbx_entry *en = NULL;
        if (sbx_entry_decode(log[i].p, log[i].n, &en) != 0) continue;
        for (uint32_t k = 0; k < en->n_ops; k++) {
            if (en->ops[k].type != SBX_OP_DEVICE_REMOVE) continue;
            struct removal *nr = realloc(rem, (n_rem + 1) * sizeof *nr);
            if (!nr) { rc = SBX_ENOMEM; break; }
            rem = nr;
            memcpy(rem[n_rem].key, en->ops[k].key, SBX_KEY_BYTES);
            rem[n_rem].last = en->ops[k].last_seq;
            n_rem++;
        }
        sbx_entry_free(en);
    }
    for (size_t i = 0; i < SBX_ARRAY_LEN(materialized_tables) && rc == 0; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "DELETE FROM %s", materialized_tables[i]);
        rc = sbx_store_exec(e->store, sql);
    }
    for (size_t i = 0; i < n_rem && rc == 0; i++) {
        st = stmt(e, "INSERT INTO devices(key, name, removed, removed_last_seq) VALUES (?1, '', 1, ?2) "
                     "ON CONFLICT(key) DO UPDATE SET removed_last_seq = min(removed_last_seq, excluded.removed_last_seq)");
        if (!st) { rc = SBX_EDB; break; }
        sqlite3_bind_blob(st, 1, rem[i].key, SBX_KEY_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)rem[i].last);
        if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(e, "restore removal");
    }
    free(rem);
    e->rebuilding = true;
    struct wake w = {.n = 0};
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct sbx_entry *en = NULL;
        struct sbx_recv_result r;
        if (sbx_entry_decode(log[i].p, log[i].n, &en) != 0) continue;
        rc = process_entry(e, en, sbx_now_ms(), &r, &w);
        if (rc == 0) rc = drain_pending(e, &w, sbx_now_ms());
    }
    e->rebuilding = false;
    e->need_rebuild = false;
out:
    for (size_t i = 0; i < n; i++) free(log[i].p);
    free(log);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Public entry points                                                  */

static int finish_txn(sbx_engine *e, int rc)
{
    if (rc == 0 && e->need_rebuild) {
        /* Entries announced in this batch may be among those the rebuild
         * refuses: announce only what is still in the log. */
        rc = sbx_engine_rebuild(e);
        size_t kept = 0;
        for (size_t i = 0; i < e->n_accepted && rc == 0; i++) {
            uint8_t h[SBX_HASH_BYTES];
            int64_t ix = find_author(e, e->accepted[i]->author);
            int found = held_hash(e, "SELECT hash FROM entries WHERE author_ix = ?1 AND seq = ?2", ix,
                                  e->accepted[i]->seq, h);
            if (found < 0) rc = found;
            else if (found) e->accepted[kept++] = e->accepted[i];
            else sbx_entry_free(e->accepted[i]);
        }
        if (rc == 0) e->n_accepted = kept;
    }
    if (rc == 0) rc = save_sync_state(e);
    if (rc == 0) rc = sbx_store_commit(e->store);
    if (rc != 0) {
        sbx_store_rollback(e->store);
        drop_accepted(e);
        e->need_rebuild = false;
        /* Memory mirrors of the database go back to what it holds. */
        int lrc = load_state(e);
        if (lrc != 0) sbx_error("engine: cannot reload state after rollback: %s", sbx_strerror(lrc));
        return rc;
    }
    for (size_t i = 0; i < e->n_accepted; i++)
        if (e->cb) e->cb(e, e->accepted[i]);
    drop_accepted(e);
    return 0;
}

/* Decoding an entry and checking its signature depend on nothing but its
 * bytes, and they are about a quarter of the cost of receiving photo puts
 * (tests/bench/bench_engine). For a batch of several entries a second thread
 * runs them ahead of the apply loop, which needs the database and stays on
 * the caller's thread, so the two halves use both cores of a small machine.
 * The lead is bounded by DECODE_AHEAD decoded entries. Results do not depend
 * on the thread's timing: entries are consumed in their order. */
#define DECODE_AHEAD 8u
#define DECODE_THREAD_MIN 4u

struct decoder {
    const uint8_t *const *raw;
    const size_t *len;
    size_t n;
    struct sbx_entry *slot[DECODE_AHEAD];
    int slot_rc[DECODE_AHEAD];
    size_t produced, consumed; /* guarded by mu */
    bool stop;                 /* guarded by mu */
    bool threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void *decoder_run(void *arg)
{
    struct decoder *d = arg;
    for (size_t i = 0; i < d->n; i++) {
        pthread_mutex_lock(&d->mu);
        while (!d->stop && d->produced - d->consumed >= DECODE_AHEAD) pthread_cond_wait(&d->cv, &d->mu);
        bool stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        if (stop) break;
        struct sbx_entry *en = NULL;
        int rc = sbx_entry_decode(d->raw[i], d->len[i], &en);
        pthread_mutex_lock(&d->mu);
        d->slot[i % DECODE_AHEAD] = en;
        d->slot_rc[i % DECODE_AHEAD] = rc;
        d->produced++;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
    return NULL;
}

static void decoder_start(struct decoder *d, const uint8_t *const *raw, const size_t *len, size_t n)
{
    memset(d, 0, sizeof *d);
    d->raw = raw;
    d->len = len;
    d->n = n;
    if (n < DECODE_THREAD_MIN) return;
    SBX_ASSERT(pthread_mutex_init(&d->mu, NULL) == 0);
    SBX_ASSERT(pthread_cond_init(&d->cv, NULL) == 0);
    /* Without a thread (none to be had) the batch is decoded inline. */
    d->threaded = pthread_create(&d->thread, NULL, decoder_run, d) == 0;
    if (!d->threaded) {
        pthread_cond_destroy(&d->cv);
        pthread_mutex_destroy(&d->mu);
    }
}

/* Entry i of the batch, in order: decoded here or taken from the thread. */
static int decoder_next(struct decoder *d, size_t i, struct sbx_entry **out)
{
    if (!d->threaded) return sbx_entry_decode(d->raw[i], d->len[i], out);
    pthread_mutex_lock(&d->mu);
    SBX_ASSERT(i == d->consumed);
    while (d->produced <= i) pthread_cond_wait(&d->cv, &d->mu);
    *out = d->slot[i % DECODE_AHEAD];
    int rc = d->slot_rc[i % DECODE_AHEAD];
    d->slot[i % DECODE_AHEAD] = NULL;
    d->consumed++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* Stops the thread and frees what it decoded that was not consumed (the
 * apply loop stops early on an error). */
static void decoder_finish(struct decoder *d)
{
    if (!d->threaded) return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    for (size_t i = d->consumed; i < d->produced; i++) sbx_entry_free(d->slot[i % DECODE_AHEAD]);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
}

int sbx_engine_receive(sbx_engine *e, const uint8_t *const *raw, const size_t *len, size_t n, int64_t now_ms,
                       struct sbx_recv_result *results)
{
    int rc = sbx_store_begin(e->store);
    if (rc != 0) return rc;
    struct wake w = {.n = 0};
    struct decoder d;
    decoder_start(&d, raw, len, n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct sbx_recv_result local, *r = results ? &results[i] : &local;
        struct sbx_entry *en = NULL;
        int drc = decoder_next(&d, i, &en);
        if (drc != 0) {
            set_reason(r, SBX_RECV_REFUSED, "undecodable entry: %s", sbx_strerror(drc));
            continue;
        }
        rc = process_entry(e, en, now_ms, r, &w);
        if (rc == 0) rc = drain_pending(e, &w, now_ms);
    }
    decoder_finish(&d);
    return finish_txn(e, rc);
}

/* Live dots of a set pair, for a remove authored here. */
static int live_dots(sbx_engine *e, const struct sbx_op *op, struct sbx_dot **out, size_t *n_out)
{
    bool album = op->type == SBX_OP_ALBUM_REMOVE;
    sqlite3_stmt *st = stmt(e, album ? "SELECT a.key, d.seq, d.idx FROM album_item_dots d JOIN authors a "
                                       "ON a.ix = d.author_ix WHERE d.album_id = ?1 AND d.photo_id = ?2 "
                                       "AND d.added = 1 AND d.removed = 0 ORDER BY a.key, d.seq, d.idx"
                                     : "SELECT a.key, d.seq, d.idx FROM photo_tag_dots d JOIN authors a "
                                       "ON a.ix = d.author_ix WHERE d.photo_id = ?1 AND d.tag_id = ?2 "
                                       "AND d.added = 1 AND d.removed = 0 ORDER BY a.key, d.seq, d.idx");
    if (!st) return SBX_EDB;
    bind_id(st, 1, op->id);
    bind_id(st, 2, op->ref);
    struct sbx_dot *dots = NULL;
    size_t n = 0;
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct sbx_dot *nd = realloc(dots, (n + 1) * sizeof *nd);
        if (!nd) { rc = SBX_ENOMEM; break; }
        dots = nd;
        memcpy(dots[n].author, sqlite3_column_blob(st, 0), SBX_KEY_BYTES);
        dots[n].seq = (uint64_t)sqlite3_column_int64(st, 1);
        dots[n].idx = (uint32_t)sqlite3_column_int64(st, 2);
        n++;
    }
    sqlite3_reset(st);
    if (rc != 0) { free(dots); return rc; }
    *out = dots;
    *n_out = n;
    return 0;
}

struct writer {
    sbx_engine *e;
    sbx_entry_builder *b;
    int64_t now_ms;
    struct wake w;
};

static int writer_flush(struct writer *wr)
{
    if (!wr->b) return 0;
    struct sbx_entry *en = NULL;
    int rc = sbx_entry_builder_finish(wr->b, wr->e->id.sk, &en);
    sbx_entry_builder_free(wr->b);
    wr->b = NULL;
    if (rc != 0) return rc;
    struct sbx_recv_result r;
    if ((rc = process_entry(wr->e, en, wr->now_ms, &r, &wr->w)) != 0) return rc;
    if (r.status != SBX_RECV_APPLIED) {
        sbx_error("engine: own entry not applied: %s", r.reason);
        return SBX_ESTATE;
    }
    return 0;
}

static int writer_add(struct writer *wr, const struct sbx_op *op)
{
    sbx_engine *e = wr->e;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!wr->b) {
            int64_t ix = find_author(e, e->id.pk);
            struct head h = {0};
            int rc = ix ? read_head(e, ix, &h) : 0;
            if (rc != 0) return rc;
            rc = sbx_entry_builder_new(&wr->b, e->library, e->id.pk, h.seq + 1, h.hash,
                                       sbx_hlc_now(&e->hlc, wr->now_ms));
            if (rc != 0) return rc;
        }
        int rc = sbx_entry_builder_add(wr->b, op);
        if (rc != SBX_ETOOBIG || sbx_entry_builder_count(wr->b) == 0) return rc;
        if ((rc = writer_flush(wr)) != 0) return rc;
    }
    return SBX_ETOOBIG;
}

int sbx_engine_rebuild_now(sbx_engine *e)
{
    int rc = sbx_store_begin(e->store);
    if (rc != 0) return rc;
    /* The same path as a rebuild a removal triggers: state saved and
     * committed with it, or everything rolled back. */
    e->need_rebuild = true;
    return finish_txn(e, 0);
}

int sbx_engine_write(sbx_engine *e, const struct sbx_op *ops, size_t n, int64_t now_ms)
{
    if (!e->can_write) return SBX_ESTATE;
    int rc = sbx_store_begin(e->store);
    if (rc != 0) return rc;
    struct writer wr = {.e = e, .now_ms = now_ms};
    bool genesis = n > 0 && ops[0].type == SBX_OP_LIBRARY_CREATE;
    if (!genesis && !sbx_engine_is_member(e, e->id.pk)) rc = SBX_EPERM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct sbx_op *op = &ops[i];
        bool remove = op->type == SBX_OP_ALBUM_REMOVE || op->type == SBX_OP_PHOTO_TAG_REMOVE;
        if (!remove || op->n_dots > 0) {
            rc = writer_add(&wr, op);
            continue;
        }
        /* A remove names the adds this device has seen: a concurrent add
         * elsewhere is not among them, so it survives (add wins). */
        struct sbx_dot *dots = NULL;
        size_t nd = 0;
        if ((rc = live_dots(e, op, &dots, &nd)) != 0) break;
        for (size_t off = 0; off < nd && rc == 0; off += SBX_MAX_DOTS_PER_REMOVE) {
            struct sbx_op part = *op;
            part.dots = dots + off;
            part.n_dots = (uint32_t)((nd - off) < SBX_MAX_DOTS_PER_REMOVE ? (nd - off) : SBX_MAX_DOTS_PER_REMOVE);
            rc = writer_add(&wr, &part);
        }
        free(dots);
    }
    if (rc == 0) rc = writer_flush(&wr);
    if (rc == 0) rc = drain_pending(e, &wr.w, now_ms);
    sbx_entry_builder_free(wr.b);
    return finish_txn(e, rc);
}

/* ------------------------------------------------------------------ */
/* Digest, heads, log access                                            */

/* Hashes every row of a query, column by column, with type tags so that
 * no two different tables of values hash alike. */
static int digest_query(sbx_engine *e, crypto_generichash_state *h, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) != SQLITE_OK) return db_err(e, "digest prepare");
    crypto_generichash_update(h, (const uint8_t *)sql, strlen(sql));
    int rc, cols = sqlite3_column_count(st);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < cols; i++) {
            uint8_t tag = (uint8_t)sqlite3_column_type(st, i);
            crypto_generichash_update(h, &tag, 1);
            uint8_t buf[8];
            switch (tag) {
            case SQLITE_INTEGER: {
                uint64_t v = (uint64_t)sqlite3_column_int64(st, i);
                for (int k = 0; k < 8; k++) buf[k] = (uint8_t)(v >> (56 - 8 * k));
                crypto_generichash_update(h, buf, 8);
                break;
            }
            case SQLITE_FLOAT: {
                double d = sqlite3_column_double(st, i);
                uint64_t v;
                memcpy(&v, &d, 8);
                for (int k = 0; k < 8; k++) buf[k] = (uint8_t)(v >> (56 - 8 * k));
                crypto_generichash_update(h, buf, 8);
                break;
            }
            case SQLITE_TEXT:
            case SQLITE_BLOB: {
                const void *p = tag == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, i) : sqlite3_column_blob(st, i);
                uint32_t n = (uint32_t)sqlite3_column_bytes(st, i);
                for (int k = 0; k < 4; k++) buf[k] = (uint8_t)(n >> (24 - 8 * k));
                crypto_generichash_update(h, buf, 4);
                if (n) crypto_generichash_update(h, p, n);
                break;
            }
            default: break;
            }
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_err(e, "digest step");
}

/* The model as every replica must see it: user-visible values and the
 * set and register state behind them, with local numbering (author ix,
 * cursors, paths) mapped to keys or left out. */
static const char *const digest_queries[] = {
    "SELECT value FROM meta WHERE key = 'library_name'",
    "SELECT key, name, role, created_at IS NOT NULL, removed, removed_last_seq FROM devices ORDER BY key",
    "SELECT p.id, p.device_id, p.hash, p.file_name, p.size_bytes, p.captured_at, p.uploaded_at, p.width, "
    "p.height, p.mime_type, p.location_lat, p.location_lon, p.camera_make, p.camera_model, p.orientation, "
    "p.favorite, p.archived, p.description, p.thumb_hash, p.medium_hash, p.is_deleted, p.deleted_at, "
    "p.updated_at, p.put_hlc FROM photos p ORDER BY p.id",
    "SELECT id, name, cover_photo_id, created_at, updated_at, is_deleted, deleted_at, create_hlc "
    "FROM albums ORDER BY id",
    "SELECT album_id, photo_id, present, position, added_at FROM album_items ORDER BY album_id, photo_id",
    "SELECT d.album_id, d.photo_id, a.key, d.seq, d.idx, d.added, d.removed FROM album_item_dots d "
    "JOIN authors a ON a.ix = d.author_ix ORDER BY d.album_id, d.photo_id, a.key, d.seq, d.idx",
    "SELECT id, label, created_at FROM tags ORDER BY id",
    "SELECT photo_id, tag_id, present FROM photo_tags ORDER BY photo_id, tag_id",
    "SELECT d.photo_id, d.tag_id, a.key, d.seq, d.idx, d.added, d.removed FROM photo_tag_dots d "
    "JOIN authors a ON a.ix = d.author_ix ORDER BY d.photo_id, d.tag_id, a.key, d.seq, d.idx",
    "SELECT s.id, s.album_id, s.photo_id, s.expires_at, s.created_at, a.key, s.revoked_at FROM share_links s "
    "LEFT JOIN authors a ON a.ix = s.created_by ORDER BY s.id",
    "SELECT b.hash, a.key, b.held FROM blob_holders b JOIN authors a ON a.ix = b.holder_ix "
    "ORDER BY b.hash, a.key",
};

int sbx_engine_digest(sbx_engine *e, uint8_t out[32])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (size_t i = 0; i < SBX_ARRAY_LEN(digest_queries); i++) {
        int rc = digest_query(e, &h, digest_queries[i]);
        if (rc != 0) return rc;
    }
    crypto_generichash_final(&h, out, 32);
    return 0;
}

int sbx_engine_heads(sbx_engine *e, struct sbx_head *heads, size_t cap)
{
    sqlite3_stmt *st = stmt(e, "SELECT a.key, h.seq FROM heads h JOIN authors a ON a.ix = h.author_ix ORDER BY a.key");
    if (!st) return SBX_EDB;
    size_t n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        memcpy(heads[n].author, sqlite3_column_blob(st, 0), SBX_KEY_BYTES);
        heads[n].seq = (uint64_t)sqlite3_column_int64(st, 1);
        n++;
    }
    sqlite3_reset(st);
    return (int)n;
}

int sbx_engine_entries_after(sbx_engine *e, const uint8_t author[SBX_KEY_BYTES], uint64_t after_seq, size_t max,
                             sbx_engine_raw_cb cb, void *arg)
{
    int64_t ix = find_author(e, author);
    if (!ix) return 0;
    sqlite3_stmt *st = stmt(e, "SELECT raw FROM entries WHERE author_ix = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
    if (!st) return SBX_EDB;
    sqlite3_bind_int64(st, 1, ix);
    sqlite3_bind_int64(st, 2, (int64_t)after_seq);
    sqlite3_bind_int64(st, 3, (int64_t)max);
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (cb(arg, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0)) != 0) break;
    }
    sqlite3_reset(st);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                            */

int sbx_engine_open(sbx_engine **out, sbx_store *store, const struct sbx_identity *id,
                    const struct sbx_engine_config *cfg)
{
    sbx_engine *e = calloc(1, sizeof *e);
    if (!e) return SBX_ENOMEM;
    e->store = store;
    e->db = sbx_store_db(store);
    if (id) {
        e->id = *id;
        e->can_write = true;
    }
    e->max_future_ms = cfg && cfg->max_future_ms ? cfg->max_future_ms : SBX_DEFAULT_MAX_FUTURE_MS;
    /* SQLite's default page cache (2 MiB) is smaller than the photos
     * indexes of a library of a few ten thousand photos. Photo ids derive
     * from content hashes, so an import or a sync inserts into those
     * indexes at random places: with the default cache every insert
     * re-reads index pages through pread and a large transaction spills
     * dirty pages to the WAL before it commits. tests/bench/bench_engine
     * (100,000 photo.put received into a fresh replica) measured 98k ops/s
     * of CPU time at 2 MiB, 134k at 16 MiB, 137k at 32 MiB, 139k at 64 MiB.
     * The cache is a bound, not an allocation: a small library never fills
     * it. A negative cache_size is in KiB: 32 MiB here. The setting is the
     * connection's, so it would sit as well among the store's pragmas. */
    int rc = sbx_store_exec(store, "PRAGMA cache_size = -32768");
    size_t len = 0;
    if (rc == 0) rc = sbx_store_meta_get(store, "library_id", e->library, SBX_ID_BYTES, &len);
    if (rc == 0 && len != SBX_ID_BYTES) rc = SBX_ECORRUPT;
    if (rc == 0) rc = load_state(e);
    if (rc != 0) {
        sbx_engine_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

void sbx_engine_close(sbx_engine *e)
{
    if (!e) return;
    drop_accepted(e);
    free(e->accepted);
    free(e->authors);
    sodium_memzero(&e->id, sizeof e->id);
    free(e);
}

void *sbx_engine_get_data(const sbx_engine *e) { return e->data; }
void sbx_engine_set_data(sbx_engine *e, void *data) { e->data = data; }
void sbx_engine_set_entry_cb(sbx_engine *e, sbx_engine_entry_cb cb) { e->cb = cb; }
const uint8_t *sbx_engine_library(const sbx_engine *e) { return e->library; }

static int set_local_meta(sbx_store *store, const uint8_t library[SBX_ID_BYTES], const char *device_name,
                          enum sbx_role role)
{
    int rc = sbx_store_meta_set(store, "library_id", library, SBX_ID_BYTES);
    if (rc == 0) rc = sbx_store_meta_set_text(store, "device_name", device_name);
    if (rc == 0) rc = sbx_store_meta_set_text(store, "role", role == SBX_ROLE_FULL ? "full" : "cache");
    return rc;
}

int sbx_engine_prepare_join(sbx_store *store, const struct sbx_identity *id, const uint8_t library[SBX_ID_BYTES],
                            const char *device_name, enum sbx_role role)
{
    (void)id;
    return set_local_meta(store, library, device_name, role);
}

int sbx_engine_create_library(sbx_store *store, const struct sbx_identity *id, const char *library_name,
                              const char *device_name, enum sbx_role role, int64_t now_ms)
{
    uint8_t nonce[SBX_ID_BYTES];
    randombytes_buf(nonce, sizeof nonce);
    return sbx_engine_create_library_nonce(store, id, nonce, library_name, device_name, role, now_ms);
}

int sbx_engine_create_library_nonce(sbx_store *store, const struct sbx_identity *id,
                                    const uint8_t nonce[SBX_ID_BYTES], const char *library_name,
                                    const char *device_name, enum sbx_role role, int64_t now_ms)
{
    uint8_t library[SBX_ID_BYTES];
    library_id_for(id->pk, nonce, library);
    int rc = set_local_meta(store, library, device_name, role);
    if (rc != 0) return rc;
    sbx_engine *e = NULL;
    if ((rc = sbx_engine_open(&e, store, id, NULL)) != 0) return rc;
    struct sbx_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].type = SBX_OP_LIBRARY_CREATE;
    memcpy(ops[0].id, nonce, SBX_ID_BYTES);
    ops[0].name = (struct sbx_str){library_name, (uint32_t)strlen(library_name)};
    ops[1].type = SBX_OP_DEVICE_ADD;
    memcpy(ops[1].key, id->pk, SBX_KEY_BYTES);
    ops[1].name = (struct sbx_str){device_name, (uint32_t)strlen(device_name)};
    ops[1].role = role;
    rc = sbx_engine_write(e, ops, 2, now_ms);
    sbx_engine_close(e);
    return rc;
}
