#include "workload.h"

#include "shoebox/util.h"

#include <string.h>

#define T0 1700000000000LL

uint64_t sbx_wl_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct sbx_op sbx_wl_op_put(sbx_engine *e, unsigned n, uint8_t photo_id[16])
{
    struct sbx_op op = {.type = SBX_OP_PHOTO_PUT};
    memcpy(op.facts.hash, &n, sizeof n);
    sbx_photo_id_for_hash(sbx_engine_library(e), op.facts.hash, op.id);
    if (photo_id) memcpy(photo_id, op.id, 16);
    op.facts.size_bytes = 1000 + n;
    op.facts.width = 4000;
    op.facts.height = 3000;
    op.facts.has_captured_at = true;
    op.facts.captured_at_ms = T0 - (int64_t)n * 1000;
    op.facts.mime_type = (struct sbx_str){"image/jpeg", 10};
    op.facts.file_name = (struct sbx_str){"IMG.JPG", 7};
    op.facts.camera_make = (struct sbx_str){"Canon", 5};
    op.facts.camera_model = (struct sbx_str){"EOS", 3};
    op.facts.orientation = 1;
    return op;
}

struct sbx_op sbx_wl_op_id(enum sbx_op_type t, const uint8_t id[16])
{
    struct sbx_op op = {.type = t};
    memcpy(op.id, id, 16);
    return op;
}

struct sbx_op sbx_wl_op_pair(enum sbx_op_type t, const uint8_t id[16], const uint8_t ref[16])
{
    struct sbx_op op = sbx_wl_op_id(t, id);
    memcpy(op.ref, ref, 16);
    return op;
}

int64_t sbx_wl_count(sbx_store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(sbx_store_db(s), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A random row id of a table, 0 when the table has none. */
static bool pick(sbx_store *s, const char *sql, uint64_t *rng, uint8_t out[16])
{
    sqlite3 *db = sbx_store_db(s);
    sqlite3_stmt *st = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return false;
    sqlite3_bind_int64(st, 1, (int64_t)(sbx_wl_rand(rng) % 1000));
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16) {
        memcpy(out, sqlite3_column_blob(st, 0), 16);
        found = true;
    }
    sqlite3_finalize(st);
    return found;
}

int sbx_wl_random_write(sbx_engine *e, sbx_store *s, uint64_t *rng, int64_t now, unsigned pool)
{
    /* Picks are deterministic for a seed: ORDER BY id with an offset drawn
     * from the generator (modulo the row count), never random(). */
    uint8_t photo[16] = {0}, album[16] = {0};
    bool have_photo = pick(s, "SELECT id FROM photos WHERE put_hlc IS NOT NULL ORDER BY id LIMIT 1 OFFSET "
                              "(?1 % max(1, (SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL)))",
                           rng, photo);
    bool have_album = pick(s, "SELECT id FROM albums WHERE create_hlc IS NOT NULL ORDER BY id LIMIT 1 OFFSET "
                              "(?1 % max(1, (SELECT count(*) FROM albums WHERE create_hlc IS NOT NULL)))",
                           rng, album);
    static const char *labels[] = {"beach", "Beach", "cat", "family", "sunset"};
    static const char *names[] = {"Trip", "Best of", "Kids", "2024"};
    struct sbx_op op;
    unsigned kind = (unsigned)(sbx_wl_rand(rng) % 16);
    if (!have_photo) kind = 0;
    if (kind >= 9 && kind <= 12 && !have_album) kind = 8;
    switch (kind) {
    case 0: op = sbx_wl_op_put(e, (unsigned)(sbx_wl_rand(rng) % pool), NULL); break;
    case 1: op = sbx_wl_op_id(SBX_OP_PHOTO_DELETE, photo); break;
    case 2: op = sbx_wl_op_id(SBX_OP_PHOTO_RESTORE, photo); break;
    case 3:
        op = sbx_wl_op_id(SBX_OP_PHOTO_SET, photo);
        op.field = SBX_PF_FAVORITE;
        op.value.b = sbx_wl_rand(rng) & 1;
        break;
    case 4:
        op = sbx_wl_op_id(SBX_OP_PHOTO_SET, photo);
        op.field = SBX_PF_LOCATION;
        op.value.lat = (double)(sbx_wl_rand(rng) % 180) - 90;
        op.value.lon = (double)(sbx_wl_rand(rng) % 360) - 180;
        break;
    case 5: {
        const char *l = labels[sbx_wl_rand(rng) % 5];
        uint8_t tag[16];
        sbx_tag_id_for_label(sbx_engine_library(e), l, strlen(l), tag);
        struct sbx_op ops[2] = {sbx_wl_op_id(SBX_OP_TAG_CREATE, tag), sbx_wl_op_pair(SBX_OP_PHOTO_TAG_ADD, photo, tag)};
        ops[0].name = (struct sbx_str){l, (uint32_t)strlen(l)};
        return sbx_engine_write(e, ops, 2, now);
    }
    case 6: {
        const char *l = labels[sbx_wl_rand(rng) % 5];
        uint8_t tag[16];
        sbx_tag_id_for_label(sbx_engine_library(e), l, strlen(l), tag);
        op = sbx_wl_op_pair(SBX_OP_PHOTO_TAG_REMOVE, photo, tag);
        break;
    }
    case 7:
        op = (struct sbx_op){.type = (sbx_wl_rand(rng) & 1) ? SBX_OP_BLOB_HELD : SBX_OP_BLOB_DROPPED};
        memcpy(op.hash, photo, 16);
        break;
    case 8: {
        uint8_t id[16];
        for (int i = 0; i < 16; i += 8) {
            uint64_t v = sbx_wl_rand(rng);
            memcpy(id + i, &v, 8);
        }
        op = sbx_wl_op_id(SBX_OP_ALBUM_CREATE, id);
        const char *n = names[sbx_wl_rand(rng) % 4];
        op.name = (struct sbx_str){n, (uint32_t)strlen(n)};
        break;
    }
    case 9: op = sbx_wl_op_pair(SBX_OP_ALBUM_ADD, album, photo); break;
    case 10: op = sbx_wl_op_pair(SBX_OP_ALBUM_REMOVE, album, photo); break;
    case 11: {
        op = sbx_wl_op_id(SBX_OP_ALBUM_RENAME, album);
        const char *n = names[sbx_wl_rand(rng) % 4];
        op.name = (struct sbx_str){n, (uint32_t)strlen(n)};
        break;
    }
    case 12: op = sbx_wl_op_id((sbx_wl_rand(rng) & 1) ? SBX_OP_ALBUM_DELETE : SBX_OP_ALBUM_RESTORE, album); break;
    case 13:
        op = sbx_wl_op_id(SBX_OP_PHOTO_SET, photo);
        op.field = SBX_PF_CAPTURED_AT;
        op.value.ms = T0 - (int64_t)(sbx_wl_rand(rng) % 1000000);
        break;
    case 14: {
        uint8_t id[16];
        for (int i = 0; i < 16; i += 8) {
            uint64_t v = sbx_wl_rand(rng);
            memcpy(id + i, &v, 8);
        }
        op = sbx_wl_op_pair(SBX_OP_SHARE_CREATE, id, photo);
        op.expires_at_ms = T0 + 86400000;
        break;
    }
    default:
        op = sbx_wl_op_id(SBX_OP_PHOTO_SET, photo);
        op.field = SBX_PF_DESCRIPTION;
        op.value.str = (struct sbx_str){"nice", 4};
        break;
    }
    return sbx_engine_write(e, &op, 1, now);
}
