/* Writes the seed corpus of fuzz_entry: a few small valid entries signed with
 * the corpus key, covering every op type. Usage: gen_entry_corpus DIR */
#include "fuzz_entry_common.h"
#include "shoebox/entry.h"

#include <stdio.h>
#include <stdlib.h>

static uint8_t PK[32], SK[64];
static const uint8_t LIB[16] = {0x5b, 0x0e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};

static struct sbx_str S(const char *s)
{
    return (struct sbx_str){s, (uint32_t)strlen(s)};
}

static void id(uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v + 3 * i);
}

static uint8_t prev[32];
static uint64_t seq = 1;

static void emit(const char *dir, const char *name, const struct sbx_op *ops, size_t n)
{
    sbx_entry_builder *b = NULL;
    struct sbx_entry *e = NULL;
    if (sbx_entry_builder_new(&b, LIB, PK, seq, prev, ((uint64_t)1700000000000 + seq) << 16) != 0)
        exit(1);
    for (size_t i = 0; i < n; i++)
        if (sbx_entry_builder_add(b, &ops[i]) != 0) {
            fprintf(stderr, "%s: op %zu refused\n", name, i);
            exit(1);
        }
    if (sbx_entry_builder_finish(b, SK, &e) != 0) exit(1);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(e->raw, 1, e->raw_len, f) != e->raw_len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    printf("%s: %zu bytes, %u ops\n", name, e->raw_len, e->n_ops);
    memcpy(prev, e->hash, 32);
    seq++;
    sbx_entry_free(e);
    sbx_entry_builder_free(b);
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0) {
        fprintf(stderr, "usage: gen_entry_corpus DIR\n");
        return 2;
    }
    fuzz_entry_keypair(PK, SK);
    struct sbx_op o[16];
    static struct sbx_dot dots[2];
    memcpy(dots[0].author, PK, 32);
    dots[0].seq = 4;
    dots[0].idx = 2;
    id(dots[1].author, 32, 0x90);
    dots[1].seq = 300;
    dots[1].idx = 255;

    memset(o, 0, sizeof o);
    o[0].type = SBX_OP_LIBRARY_CREATE; id(o[0].id, 16, 1); o[0].name = S("Family");
    o[1].type = SBX_OP_DEVICE_ADD; memcpy(o[1].key, PK, 32); o[1].name = S("nas"); o[1].role = SBX_ROLE_FULL;
    emit(argv[1], "01-genesis", o, 2);

    memset(o, 0, sizeof o);
    o[0].type = SBX_OP_PHOTO_PUT; id(o[0].id, 16, 0x10); id(o[0].facts.hash, 32, 0x11);
    o[0].facts.size_bytes = 3456789; o[0].facts.width = 4032; o[0].facts.height = 3024;
    o[0].facts.has_captured_at = true; o[0].facts.captured_at_ms = 1589644091123;
    o[0].facts.has_location = true; o[0].facts.lat = 52.2297; o[0].facts.lon = 21.0122;
    o[0].facts.orientation = 6; o[0].facts.mime_type = S("image/jpeg");
    o[0].facts.file_name = S("IMG_0001.JPG"); o[0].facts.camera_make = S("Canon");
    o[0].facts.camera_model = S("Canon EOS 80D");
    o[1].type = SBX_OP_PHOTO_PUT; id(o[1].id, 16, 0x12); id(o[1].facts.hash, 32, 0x13);
    o[1].facts.size_bytes = 999; o[1].facts.width = 640; o[1].facts.height = 480;
    o[1].facts.has_captured_at = true; o[1].facts.captured_at_ms = -86400000;
    o[1].facts.mime_type = S("image/png"); o[1].facts.file_name = S("Zdj\xc4\x99" "cie.png");
    o[2].type = SBX_OP_BLOB_HELD; id(o[2].hash, 32, 0x11);
    o[3].type = SBX_OP_BLOB_DROPPED; id(o[3].hash, 32, 0x13);
    emit(argv[1], "02-photos", o, 4);

    memset(o, 0, sizeof o);
    for (int i = 0; i < 10; i++) {
        o[i].type = SBX_OP_PHOTO_SET;
        id(o[i].id, 16, 0x10);
    }
    o[0].field = SBX_PF_CAPTURED_AT; o[0].value.ms = 1600000000000;
    o[1].field = SBX_PF_CAPTURED_AT; o[1].value.is_nil = true;
    o[2].field = SBX_PF_LOCATION; o[2].value.lat = -33.86; o[2].value.lon = 151.2;
    o[3].field = SBX_PF_LOCATION; o[3].value.is_nil = true;
    o[4].field = SBX_PF_FILE_NAME; o[4].value.str = S("beach.jpg");
    o[5].field = SBX_PF_FAVORITE; o[5].value.b = true;
    o[6].field = SBX_PF_ARCHIVED; o[6].value.b = false;
    o[7].field = SBX_PF_DESCRIPTION; o[7].value.str = S("Sunset, \xe6\x97\xa5\xe6\x9c\xac");
    o[8].field = SBX_PF_THUMB; id(o[8].value.hash, 32, 0x20);
    o[9].field = SBX_PF_MEDIUM; o[9].value.is_nil = true;
    emit(argv[1], "03-edits", o, 10);

    memset(o, 0, sizeof o);
    o[0].type = SBX_OP_ALBUM_CREATE; id(o[0].id, 16, 0x30); o[0].name = S("Holidays");
    o[1].type = SBX_OP_ALBUM_RENAME; id(o[1].id, 16, 0x30); o[1].name = S("Wakacje");
    o[2].type = SBX_OP_ALBUM_ADD; id(o[2].id, 16, 0x30); id(o[2].ref, 16, 0x10);
    o[3].type = SBX_OP_ALBUM_POSITION; id(o[3].id, 16, 0x30); id(o[3].ref, 16, 0x10); o[3].position = 1.5;
    o[4].type = SBX_OP_ALBUM_COVER; id(o[4].id, 16, 0x30); id(o[4].ref, 16, 0x10);
    o[5].type = SBX_OP_ALBUM_REMOVE; id(o[5].id, 16, 0x30); id(o[5].ref, 16, 0x12);
    o[5].n_dots = 2; o[5].dots = dots;
    o[6].type = SBX_OP_ALBUM_DELETE; id(o[6].id, 16, 0x31);
    o[7].type = SBX_OP_ALBUM_RESTORE; id(o[7].id, 16, 0x31);
    emit(argv[1], "04-albums", o, 8);

    memset(o, 0, sizeof o);
    o[0].type = SBX_OP_TAG_CREATE; id(o[0].id, 16, 0x40); o[0].name = S("cats");
    o[1].type = SBX_OP_PHOTO_TAG_ADD; id(o[1].id, 16, 0x10); id(o[1].ref, 16, 0x40);
    o[2].type = SBX_OP_PHOTO_TAG_REMOVE; id(o[2].id, 16, 0x10); id(o[2].ref, 16, 0x40);
    o[2].n_dots = 1; o[2].dots = dots;
    o[3].type = SBX_OP_SHARE_CREATE; id(o[3].id, 16, 0x50); o[3].ref_is_album = true;
    id(o[3].ref, 16, 0x30); o[3].expires_at_ms = 1800000000000;
    o[4].type = SBX_OP_SHARE_REVOKE; id(o[4].id, 16, 0x50);
    o[5].type = SBX_OP_DEVICE_RENAME; memcpy(o[5].key, PK, 32); o[5].name = S("attic nas");
    o[6].type = SBX_OP_DEVICE_ROLE; id(o[6].key, 32, 0x60); o[6].role = SBX_ROLE_CACHE;
    o[7].type = SBX_OP_DEVICE_REMOVE; id(o[7].key, 32, 0x60); o[7].last_seq = 17;
    o[8].type = SBX_OP_PHOTO_DELETE; id(o[8].id, 16, 0x12);
    o[9].type = SBX_OP_PHOTO_RESTORE; id(o[9].id, 16, 0x12);
    emit(argv[1], "05-tags-shares-devices", o, 10);
    return 0;
}
