/* Bench tool: fills a stopped device's library with N synthetic photos with
 * realistic metadata (one engine write: signed entries of bounded size).
 *   sbx-fill DATA_DIR N */
#include "shoebox/datadir.h"
#include "shoebox/engine.h"
#include "shoebox/identity.h"
#include "shoebox/log.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3 || sodium_init() < 0) return 2;
    sbx_log_set_level(SBX_LOG_ERROR);
    long n = atol(argv[2]);
    char path[4096], err[256];
    struct sbx_identity id;
    sbx_store *store = NULL;
    sbx_engine *engine = NULL;
    sbx_datadir_path(path, sizeof path, argv[1], SBX_FILE_KEY);
    if (sbx_identity_load(path, &id) != 0) return 2;
    sbx_datadir_path(path, sizeof path, argv[1], SBX_FILE_DB);
    if (sbx_store_open(&store, path, 0, err, sizeof err) != 0 || sbx_engine_open(&engine, store, &id, NULL) != 0) {
        fprintf(stderr, "sbx-fill: %s\n", err);
        return 2;
    }
    static const char *makes[][2] = {{"Canon", "Canon EOS 40D"}, {"NIKON CORPORATION", "NIKON D70"},
                                     {"Apple", "iPhone 11 Pro Max"}, {"Google", "Pixel 7"}};
    struct sbx_op *ops = calloc((size_t)n, sizeof *ops);
    char (*names)[32] = calloc((size_t)n, 32);
    int64_t t0 = 1500000000000LL;
    for (long i = 0; i < n; i++) {
        struct sbx_op *op = &ops[i];
        op->type = SBX_OP_PHOTO_PUT;
        randombytes_buf(op->facts.hash, 32);
        sbx_photo_id_for_hash(sbx_engine_library(engine), op->facts.hash, op->id);
        op->facts.size_bytes = 2000000 + (uint64_t)(i % 6000000);
        op->facts.width = 4032;
        op->facts.height = 3024;
        op->facts.orientation = 1;
        op->facts.has_captured_at = true;
        op->facts.captured_at_ms = t0 + i * 60000;
        op->facts.has_location = i % 2 == 0;
        op->facts.lat = 43.4674483 + (double)(i % 1000) / 1e4;
        op->facts.lon = 11.8851267 - (double)(i % 777) / 1e4;
        snprintf(names[i], 32, "IMG_%08ld.jpg", i);
        op->facts.file_name = (struct sbx_str){names[i], (uint32_t)strlen(names[i])};
        op->facts.mime_type = (struct sbx_str){"image/jpeg", 10};
        const char *const *m = makes[i % 4];
        op->facts.camera_make = (struct sbx_str){m[0], (uint32_t)strlen(m[0])};
        op->facts.camera_model = (struct sbx_str){m[1], (uint32_t)strlen(m[1])};
    }
    int rc = sbx_engine_write(engine, ops, (size_t)n, sbx_now_ms());
    free(ops);
    free(names);
    sbx_engine_close(engine);
    sbx_store_close(store);
    sbx_identity_wipe(&id);
    if (rc != 0) fprintf(stderr, "sbx-fill: write failed: %d\n", rc);
    return rc ? 1 : 0;
}
