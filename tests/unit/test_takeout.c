#include "sbx_test.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/takeout.h"
#include "shoebox/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

#define MAXF 96

struct folder {
    struct sbx_takeout_file f[MAXF];
    size_t n;
    char bare[MAXF][512];
    char titles[MAXF][256];
};

/* Names given as "name" are plain files; "name|A:Title" marks an album
 * metadata JSON, "name|O" a JSON of another kind, "name|T:title" a sidecar
 * whose parsed title is given. */
static int folder_run(struct folder *fo, const char *const *names, size_t n)
{
    char (*titles)[256] = fo->titles;
    char (*bare)[512] = fo->bare;
    memset(fo, 0, sizeof *fo);
    fo->n = n;
    for (size_t i = 0; i < n; i++) {
        const char *bar = strchr(names[i], '|');
        size_t len = bar ? (size_t)(bar - names[i]) : strlen(names[i]);
        memcpy(bare[i], names[i], len);
        bare[i][len] = '\0';
        fo->f[i].name = bare[i];
        fo->f[i].json_kind = SBX_TAKEOUT_JSON_UNKNOWN;
        if (bar && bar[1] == 'A') fo->f[i].json_kind = SBX_TAKEOUT_JSON_ALBUM;
        if (bar && bar[1] == 'O') fo->f[i].json_kind = SBX_TAKEOUT_JSON_OTHER;
        if (bar && (bar[1] == 'A' || bar[1] == 'T') && bar[2] == ':') {
            snprintf(titles[i], sizeof titles[i], "%s", bar + 3);
            fo->f[i].title = titles[i];
            if (bar[1] == 'T') fo->f[i].json_kind = SBX_TAKEOUT_JSON_MEDIA;
        }
    }
    return sbx_takeout_match(fo->f, n);
}

static size_t idx_of(const struct folder *fo, const char *name)
{
    for (size_t i = 0; i < fo->n; i++)
        if (strcmp(fo->f[i].name, name) == 0) return i;
    return SBX_TAKEOUT_NONE;
}

static const char *sidecar_of(const struct folder *fo, const char *media)
{
    size_t i = idx_of(fo, media);
    if (i == SBX_TAKEOUT_NONE || fo->f[i].sidecar == SBX_TAKEOUT_NONE) return NULL;
    return fo->f[fo->f[i].sidecar].name;
}

static int how_of(const struct folder *fo, const char *media)
{
    size_t i = idx_of(fo, media);
    return i == SBX_TAKEOUT_NONE ? -1 : fo->f[i].how;
}

static const char *link_name(const struct folder *fo, size_t link)
{
    return link == SBX_TAKEOUT_NONE ? NULL : fo->f[link].name;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int parse_str(struct sbx_takeout_sidecar *sc, const char *json)
{
    return sbx_takeout_sidecar_parse(sc, (const uint8_t *)json, strlen(json));
}

/* ------------------------------------------------------------------------ */
/* 1. Sidecar parser                                                         */

SBX_TEST(sidecar_fields)
{
    struct sbx_takeout_sidecar sc;
    const char *j =
        "{\"title\": \"IMG_1.jpg\", \"description\": \"Nad morzem \\u0141eba\","
        " \"creationTime\": {\"timestamp\": \"1613314341\", \"formatted\": \"x\"},"
        " \"photoTakenTime\": {\"timestamp\": \"1589636892\"},"
        " \"geoData\": {\"latitude\": 49.21468333333333, \"longitude\": 22.641144444444443},"
        " \"geoDataExif\": {\"latitude\": 1.5, \"longitude\": 2.5},"
        " \"favorited\": true, \"archived\": false}";
    REQUIRE(parse_str(&sc, j) == 0);
    CHECK_EQ_INT(sc.kind, SBX_TAKEOUT_JSON_MEDIA);
    CHECK_EQ_STR(sc.title, "IMG_1.jpg");
    CHECK_EQ_STR(sc.description, "Nad morzem \xc5\x81" "eba");
    CHECK(sc.has_taken && sc.taken == 1589636892);
    CHECK(sc.has_created && sc.created == 1613314341);
    CHECK(sc.has_geo && !sc.geo_from_exif);
    CHECK(sc.latitude == 49.21468333333333 && sc.longitude == 22.641144444444443);
    CHECK(sc.favorited && !sc.archived && !sc.trashed);
    sbx_takeout_sidecar_clear(&sc);

    /* Timestamps as numbers, trashed and archived flags. */
    j = "{\"title\": \"a.jpg\", \"photoTakenTime\": {\"timestamp\": 1420574198},"
        " \"creationTime\": {\"timestamp\": 1613314035.0}, \"trashed\": true, \"archived\": true}";
    REQUIRE(parse_str(&sc, j) == 0);
    CHECK(sc.has_taken && sc.taken == 1420574198);
    CHECK(sc.has_created && sc.created == 1613314035);
    CHECK(sc.trashed && sc.archived && !sc.favorited);
    CHECK(!sc.has_geo);
    CHECK(sc.description == NULL);
    sbx_takeout_sidecar_clear(&sc);

    /* A bad timestamp is ignored, not fatal. */
    j = "{\"photoTakenTime\": {\"timestamp\": \"12ab\"}, \"creationTime\": {\"timestamp\": \"-5\"}}";
    REQUIRE(parse_str(&sc, j) == 0);
    CHECK_EQ_INT(sc.kind, SBX_TAKEOUT_JSON_MEDIA);
    CHECK(!sc.has_taken);
    CHECK(sc.has_created && sc.created == -5);
    sbx_takeout_sidecar_clear(&sc);
}

SBX_TEST(sidecar_geo_fallback)
{
    struct sbx_takeout_sidecar sc;
    /* geoData 0,0 means unknown: geoDataExif is used. */
    const char *j = "{\"photoTakenTime\": {\"timestamp\": \"1\"},"
                    " \"geoData\": {\"latitude\": 0.0, \"longitude\": 0.0, \"altitude\": 0.0},"
                    " \"geoDataExif\": {\"latitude\": -33.8568, \"longitude\": 151.2153}}";
    REQUIRE(parse_str(&sc, j) == 0);
    CHECK(sc.has_geo && sc.geo_from_exif);
    CHECK(sc.latitude == -33.8568 && sc.longitude == 151.2153);
    sbx_takeout_sidecar_clear(&sc);
    /* geoData absent. */
    j = "{\"photoTakenTime\": {\"timestamp\": \"1\"},"
        " \"geoDataExif\": {\"latitude\": 10, \"longitude\": -20}}";
    REQUIRE(parse_str(&sc, j) == 0);
    CHECK(sc.has_geo && sc.geo_from_exif && sc.latitude == 10.0 && sc.longitude == -20.0);
    sbx_takeout_sidecar_clear(&sc);
    /* Both 0,0: no position at all. */
    j = "{\"photoTakenTime\": {\"timestamp\": \"1\"},"
        " \"geoData\": {\"latitude\": 0.0, \"longitude\": 0.0},"
        " \"geoDataExif\": {\"latitude\": 0.0, \"longitude\": 0.0}}";
    REQUIRE(parse_str(&sc, j) == 0);
    CHECK(!sc.has_geo);
    sbx_takeout_sidecar_clear(&sc);
    /* Out of range is not a position. */
    j = "{\"photoTakenTime\": {\"timestamp\": \"1\"},"
        " \"geoData\": {\"latitude\": 95.0, \"longitude\": 10.0}}";
    REQUIRE(parse_str(&sc, j) == 0);
    CHECK(!sc.has_geo);
    sbx_takeout_sidecar_clear(&sc);
}

SBX_TEST(sidecar_album_and_errors)
{
    struct sbx_takeout_sidecar sc;
    REQUIRE(parse_str(&sc, "{\"title\": \"Wakacje 2020\", \"description\": \"\","
                           " \"access\": \"protected\", \"date\": {\"timestamp\": \"1\"}}") == 0);
    CHECK_EQ_INT(sc.kind, SBX_TAKEOUT_JSON_ALBUM);
    CHECK_EQ_STR(sc.title, "Wakacje 2020");
    sbx_takeout_sidecar_clear(&sc);
    REQUIRE(parse_str(&sc, "{\"albumData\": {\"title\": \"Old style\"}}") == 0);
    CHECK_EQ_INT(sc.kind, SBX_TAKEOUT_JSON_ALBUM);
    CHECK_EQ_STR(sc.title, "Old style");
    sbx_takeout_sidecar_clear(&sc);
    /* A sidecar without photoTakenTime is not album metadata. */
    REQUIRE(parse_str(&sc, "{\"title\": \"IMG_9.jpg\", \"imageViews\": \"3\","
                           " \"creationTime\": {\"timestamp\": \"1613314341\"}}") == 0);
    CHECK_EQ_INT(sc.kind, SBX_TAKEOUT_JSON_MEDIA);
    CHECK(!sc.has_taken && sc.has_created);
    sbx_takeout_sidecar_clear(&sc);
    REQUIRE(parse_str(&sc, "{\n}") == 0);
    CHECK_EQ_INT(sc.kind, SBX_TAKEOUT_JSON_OTHER);
    sbx_takeout_sidecar_clear(&sc);

    CHECK_EQ_INT(parse_str(&sc, "[1, 2]"), SBX_EMALFORMED);
    CHECK_EQ_INT(sc.kind, SBX_TAKEOUT_JSON_INVALID);
    CHECK_EQ_INT(parse_str(&sc, "{\"title\": "), SBX_EMALFORMED);
    CHECK_EQ_INT(parse_str(&sc, ""), SBX_EMALFORMED);
    CHECK_EQ_INT(parse_str(&sc, "{\"title\": \"a\", \"title\": \"b\"}"), SBX_EMALFORMED);
    CHECK(sc.title == NULL);

    /* Bounded input. */
    size_t big = SBX_MAX_SIDECAR_BYTES + 1;
    uint8_t *buf = malloc(big);
    REQUIRE(buf);
    memset(buf, ' ', big);
    buf[0] = '{';
    buf[big - 1] = '}';
    CHECK_EQ_INT(sbx_takeout_sidecar_parse(&sc, buf, big), SBX_ETOOBIG);
    CHECK_EQ_INT(sbx_takeout_sidecar_parse(&sc, buf, big - 1), SBX_EMALFORMED);
    buf[big - 2] = '}';
    CHECK_EQ_INT(sbx_takeout_sidecar_parse(&sc, buf, big - 1), 0);
    sbx_takeout_sidecar_clear(&sc);
    free(buf);

    /* A description above SBX_MAX_STR is cut at a character boundary. */
    size_t dn = SBX_MAX_STR * 2;
    char *j = malloc(dn * 2 + 64);
    REQUIRE(j);
    size_t o = (size_t)sprintf(j, "{\"photoTakenTime\": {}, \"description\": \"a");
    for (size_t i = 0; i < dn / 2; i++) { j[o++] = '\xc5'; j[o++] = '\x82'; }
    o += (size_t)sprintf(j + o, "\"}");
    REQUIRE(sbx_takeout_sidecar_parse(&sc, (uint8_t *)j, o) == 0);
    CHECK(sc.truncated);
    REQUIRE(sc.description);
    size_t dl = strlen(sc.description);
    CHECK(dl < SBX_MAX_STR && dl > SBX_MAX_STR - 4);
    CHECK(sbx_takeout_utf16_len(sc.description, dl) != SIZE_MAX);
    sbx_takeout_sidecar_clear(&sc);
    free(j);
}

/* ------------------------------------------------------------------------ */
/* 2. Matcher                                                                */

SBX_TEST(utf16_counting)
{
    CHECK_EQ_INT(sbx_takeout_utf16_len("abc", 3), 3);
    CHECK_EQ_INT(sbx_takeout_utf16_len("\xc5\x81" "eba", 5), 4);          /* Łeba */
    CHECK_EQ_INT(sbx_takeout_utf16_len("\xe5\xb9\xb4", 3), 1);            /* 年 */
    CHECK_EQ_INT(sbx_takeout_utf16_len("\xf0\x9f\x98\x80", 4), 2);        /* 😀 */
    CHECK(sbx_takeout_utf16_len("\xc5", 1) == SIZE_MAX);
    CHECK(sbx_takeout_utf16_len("\xed\xa0\x80", 3) == SIZE_MAX);          /* surrogate */
    CHECK(sbx_takeout_utf16_len("\xc0\xaf", 2) == SIZE_MAX);              /* overlong */
}

SBX_TEST(match_direct_and_leftovers)
{
    struct folder fo;
    const char *names[] = {
        "IMG_1.jpg", "IMG_1.jpg.json", "IMG_2.jpg",  "orphan.webm.json",
        "IMG_3.png", "IMG_3.png.supplemental-metadata.json", "archive_browser.html",
        ".DS_Store", "metadata.json|A:Trip",
    };
    REQUIRE(folder_run(&fo, names, N(names)) == 0);
    CHECK_EQ_STR(sidecar_of(&fo, "IMG_1.jpg"), "IMG_1.jpg.json");
    CHECK_EQ_INT(how_of(&fo, "IMG_1.jpg"), SBX_TAKEOUT_HOW_DIRECT);
    CHECK_EQ_STR(sidecar_of(&fo, "IMG_3.png"), "IMG_3.png.supplemental-metadata.json");
    CHECK(sidecar_of(&fo, "IMG_2.jpg") == NULL);
    CHECK_EQ_INT(fo.f[idx_of(&fo, "orphan.webm.json")].role, SBX_TAKEOUT_ROLE_SIDECAR);
    CHECK_EQ_INT(fo.f[idx_of(&fo, "orphan.webm.json")].users, 0);
    CHECK_EQ_INT(fo.f[idx_of(&fo, "IMG_1.jpg.json")].users, 1);
    CHECK_EQ_INT(fo.f[idx_of(&fo, "archive_browser.html")].role, SBX_TAKEOUT_ROLE_IGNORED);
    CHECK_EQ_INT(fo.f[idx_of(&fo, ".DS_Store")].role, SBX_TAKEOUT_ROLE_IGNORED);
    CHECK_EQ_INT(fo.f[idx_of(&fo, "metadata.json")].role, SBX_TAKEOUT_ROLE_ALBUM_META);
    CHECK_EQ_INT(fo.f[idx_of(&fo, "IMG_2.jpg")].role, SBX_TAKEOUT_ROLE_MEDIA);
}

SBX_TEST(match_truncated_51_utf16)
{
    struct folder fo;
    const char *names[] = {
        /* Old format, ASCII, cut inside the name. */
        "Screenshot_2020-01-01-12-34-56-789_com.example.application.jpg",
        "Screenshot_2020-01-01-12-34-56-789_com.example.json",
        /* Cut inside the extension: "….jp.json". */
        "Zrzut_ekranu_2021-02-03_o_12.34.56_przeglad.jpg",
        "Zrzut_ekranu_2021-02-03_o_12.34.56_przeglad.jp.json",
        /* Polish letters: 1 UTF-16 unit but 2 UTF-8 bytes each. */
        "Wakacje_nad_morzem_w_Łebie_zażółć_gęślą_jaźń_dzień_pierwszy.jpg",
        "Wakacje_nad_morzem_w_Łebie_zażółć_gęślą_jaźń_d.json",
        /* Astral characters: 2 UTF-16 units, 4 UTF-8 bytes each. */
        "Urodziny_😀😀😀😀😀😀😀😀😀😀_tort_i_świeczki_impreza_2020.jpg",
        "Urodziny_😀😀😀😀😀😀😀😀😀😀_tort_i_świeczki_.json",
        /* The cut at 46 units falls inside an emoji: the half is dropped. */
        "Urodziny_😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀_tort.jpg",
        "Urodziny_😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀.json",
    };
    REQUIRE(folder_run(&fo, names, N(names)) == 0);
    for (size_t i = 0; i < N(names); i += 2) {
        CHECK_EQ_STR(sidecar_of(&fo, names[i]), names[i + 1]);
        CHECK_EQ_INT(how_of(&fo, names[i]), SBX_TAKEOUT_HOW_DIRECT);
        /* Each sidecar name is exactly at (or, for the split emoji, one
         * below) Google's limit of 51 UTF-16 units. */
        size_t u = sbx_takeout_utf16_len(names[i + 1], strlen(names[i + 1]));
        CHECK(u == 51 || (i == 8 && u == 50));
    }
    /* Split surrogate written as U+FFFD. */
    const char *names2[] = {
        "Urodziny_😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀_tort.jpg",
        "Urodziny_😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀\xef\xbf\xbd.json",
    };
    REQUIRE(folder_run(&fo, names2, N(names2)) == 0);
    CHECK_EQ_STR(sidecar_of(&fo, names2[0]), names2[1]);
    /* A byte-wise cut (46 bytes) must not be what is looked for. */
    const char *names3[] = {
        "Wakacje_nad_morzem_w_Łebie_zażółć_gęślą_jaźń_dzień_pierwszy.jpg",
        "Wakacje_nad_morzem_w_Łebie_zażółć_g.json",
    };
    REQUIRE(folder_run(&fo, names3, N(names3)) == 0);
    CHECK(sidecar_of(&fo, names3[0]) == NULL);
}

SBX_TEST(match_supplemental_truncations)
{
    struct folder fo;
    const char *names[] = {
        "IMG_20200101_123456_HDR_portrait_mode.jpg",
        "IMG_20200101_123456_HDR_portrait_mode.jpg.supp.json",
        "IMG_20200101_123456_HDR_portrait_mode(1).jpg",
        "IMG_20200101_123456_HDR_portrait_mode.jpg.supp(1).json",
        "PXL_20210601_101010123_.jpg",
        "PXL_20210601_101010123_.jpg.supplemental-metad.json",
        "PXL_20200101_123456789.MP.jpg",
        "PXL_20200101_123456789.MP.jpg.supplemental-met.json",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.jpg",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.jpg..json",
        "short.mp4",
        "short.mp4.supplemental-metadata.json",
        "short(2).mp4",
        "short.mp4.supplemental-metadata(2).json",
    };
    REQUIRE(folder_run(&fo, names, N(names)) == 0);
    for (size_t i = 0; i < N(names); i += 2) CHECK_EQ_STR(sidecar_of(&fo, names[i]), names[i + 1]);
    CHECK_EQ_INT(how_of(&fo, "IMG_20200101_123456_HDR_portrait_mode(1).jpg"), SBX_TAKEOUT_HOW_DUP);
    CHECK_EQ_INT(how_of(&fo, "short(2).mp4"), SBX_TAKEOUT_HOW_DUP);
    CHECK(fo.f[idx_of(&fo, "PXL_20200101_123456789.MP.jpg")].motion);
}

SBX_TEST(match_duplicates_n)
{
    struct folder fo;
    const char *names[] = {
        "image.jpg", "image.jpg.json", "image(1).jpg", "image.jpg(1).json",
        "image(2).jpg", "image.jpg(2).json",
        /* "(3)" that is part of the uploaded name keeps its direct sidecar. */
        "scan(3).png", "scan(3).png.json", "scan.png(3).json",
        /* Long name with a counter: "…(1).json" after the cut. */
        "Screenshot_2020-01-01-12-34-56-789_com.example.application(1).jpg",
        "Screenshot_2020-01-01-12-34-56-789_com.example(1).json",
    };
    REQUIRE(folder_run(&fo, names, N(names)) == 0);
    CHECK_EQ_STR(sidecar_of(&fo, "image.jpg"), "image.jpg.json");
    CHECK_EQ_STR(sidecar_of(&fo, "image(1).jpg"), "image.jpg(1).json");
    CHECK_EQ_STR(sidecar_of(&fo, "image(2).jpg"), "image.jpg(2).json");
    CHECK_EQ_INT(how_of(&fo, "image(1).jpg"), SBX_TAKEOUT_HOW_DUP);
    CHECK_EQ_STR(sidecar_of(&fo, "scan(3).png"), "scan(3).png.json");
    CHECK_EQ_INT(fo.f[idx_of(&fo, "scan.png(3).json")].users, 0);
    CHECK_EQ_STR(sidecar_of(&fo, names[9]), names[10]);
}

SBX_TEST(match_edited_languages)
{
    struct folder fo;
    const char *names[] = {
        "IMG_1.jpg", "IMG_1.jpg.json", "IMG_1-edited.jpg",
        "IMG_2.jpg", "IMG_2.jpg.supplemental-metadata.json", "IMG_2-bearbeitet.jpg",
        "IMG_3.JPG", "IMG_3.JPG.json", "IMG_3-modifié.JPG",
        "IMG_4.png", "IMG_4.png.json", "IMG_4-edytowane.png",
        "IMG_5.jpg", "IMG_5.jpg.json", "IMG_5-editado.jpg",
        "IMG_6.jpg", "IMG_6.jpg.json", "IMG_6-EDITED.jpg",
        /* The counter stays with the original: x-edited(1) -> x(1). */
        "IMG_7(1).jpg", "IMG_7.jpg(1).json", "IMG_7-edited(1).jpg",
        /* Original missing from the folder: its sidecar is still found. */
        "IMG_8.jpg.json", "IMG_8-modificato.jpg",
    };
    REQUIRE(folder_run(&fo, names, N(names)) == 0);
    const char *pairs[][3] = {
        {"IMG_1-edited.jpg", "IMG_1.jpg", "IMG_1.jpg.json"},
        {"IMG_2-bearbeitet.jpg", "IMG_2.jpg", "IMG_2.jpg.supplemental-metadata.json"},
        {"IMG_3-modifié.JPG", "IMG_3.JPG", "IMG_3.JPG.json"},
        {"IMG_4-edytowane.png", "IMG_4.png", "IMG_4.png.json"},
        {"IMG_5-editado.jpg", "IMG_5.jpg", "IMG_5.jpg.json"},
        {"IMG_6-EDITED.jpg", "IMG_6.jpg", "IMG_6.jpg.json"},
        {"IMG_7-edited(1).jpg", "IMG_7(1).jpg", "IMG_7.jpg(1).json"},
    };
    for (size_t i = 0; i < N(pairs); i++) {
        size_t e = idx_of(&fo, pairs[i][0]);
        REQUIRE(e != SBX_TAKEOUT_NONE);
        CHECK_EQ_STR(link_name(&fo, fo.f[e].edited_of), pairs[i][1]);
        CHECK_EQ_STR(sidecar_of(&fo, pairs[i][0]), pairs[i][2]);
        CHECK_EQ_STR(sidecar_of(&fo, pairs[i][1]), pairs[i][2]);
        CHECK_EQ_INT(fo.f[e].how, SBX_TAKEOUT_HOW_EDITED);
        CHECK_EQ_INT(fo.f[idx_of(&fo, pairs[i][2])].users, 2);
    }
    CHECK_EQ_STR(sidecar_of(&fo, "IMG_8-modificato.jpg"), "IMG_8.jpg.json");
    CHECK(fo.f[idx_of(&fo, "IMG_8-modificato.jpg")].edited_of == SBX_TAKEOUT_NONE);

    char out[64];
    CHECK_EQ_INT(sbx_takeout_edited_original("x-edited(1).jpg", out, sizeof out), 0);
    CHECK_EQ_STR(out, "x(1).jpg");
    CHECK_EQ_INT(sbx_takeout_edited_original("photo-ha editado.jpeg", out, sizeof out), 0);
    CHECK_EQ_STR(out, "photo.jpeg");
    CHECK_EQ_INT(sbx_takeout_edited_original("plain.jpg", out, sizeof out), SBX_ENOENT);
    CHECK_EQ_INT(sbx_takeout_edited_original("-edited.jpg", out, sizeof out), SBX_ENOENT);
    CHECK_EQ_INT(sbx_takeout_edited_original("abcdef-edited.jpg", out, 4), SBX_ETOOBIG);
}

SBX_TEST(match_live_photos)
{
    struct folder fo;
    const char *names[] = {
        "IMG_1.HEIC", "IMG_1.HEIC.json", "IMG_1.MP4",
        "IMG_2.JPG", "IMG_2.JPG.supplemental-metadata.json", "IMG_2.MOV",
        "PXL_20200101_1.MP.jpg", "PXL_20200101_1.MP.jpg.json", "PXL_20200101_1.MP",
        "MVIMG_20190101_1.jpg", "MVIMG_20190101_1.jpg.json",
        /* A video with its own sidecar keeps it but is still linked. */
        "IMG_3.HEIC", "IMG_3.HEIC.json", "IMG_3.MP4", "IMG_3.MP4.json",
        /* Plain video without a still. */
        "VID_4.mp4", "VID_4.mp4.json",
    };
    REQUIRE(folder_run(&fo, names, N(names)) == 0);
    size_t v = idx_of(&fo, "IMG_1.MP4");
    CHECK_EQ_STR(link_name(&fo, fo.f[v].live_of), "IMG_1.HEIC");
    CHECK_EQ_STR(sidecar_of(&fo, "IMG_1.MP4"), "IMG_1.HEIC.json");
    CHECK_EQ_INT(fo.f[v].how, SBX_TAKEOUT_HOW_LIVE);
    CHECK_EQ_STR(link_name(&fo, fo.f[idx_of(&fo, "IMG_2.MOV")].live_of), "IMG_2.JPG");
    CHECK_EQ_STR(sidecar_of(&fo, "IMG_2.MOV"), "IMG_2.JPG.supplemental-metadata.json");
    v = idx_of(&fo, "PXL_20200101_1.MP");
    CHECK_EQ_STR(link_name(&fo, fo.f[v].live_of), "PXL_20200101_1.MP.jpg");
    CHECK_EQ_STR(sidecar_of(&fo, "PXL_20200101_1.MP"), "PXL_20200101_1.MP.jpg.json");
    CHECK(fo.f[idx_of(&fo, "PXL_20200101_1.MP.jpg")].motion);
    CHECK(fo.f[idx_of(&fo, "MVIMG_20190101_1.jpg")].motion);
    CHECK(!fo.f[idx_of(&fo, "IMG_1.HEIC")].motion);
    v = idx_of(&fo, "IMG_3.MP4");
    CHECK_EQ_STR(link_name(&fo, fo.f[v].live_of), "IMG_3.HEIC");
    CHECK_EQ_STR(sidecar_of(&fo, "IMG_3.MP4"), "IMG_3.MP4.json");
    CHECK(fo.f[idx_of(&fo, "VID_4.mp4")].live_of == SBX_TAKEOUT_NONE);
    CHECK_EQ_INT(fo.f[idx_of(&fo, "IMG_1.HEIC.json")].users, 2);
}

SBX_TEST(match_extension_quirks)
{
    struct folder fo;
    const char *names[] = {
        /* No extension at all. */
        "IMG_20200101", "IMG_20200101.json",
        /* Odd-case extension. */
        "IMG_3.JPG", "IMG_3.jpg.json",
        "IMG_4.jpeg", "IMG_4.JPEG.supplemental-metadata.json",
        /* Uploaded without extension; Google added one to the file only. */
        "scan_5.jpg", "scan_5.json",
        /* Only the title tells (renamed in Google Photos, odd sidecar). */
        "holiday.jpg", "something-else.json|T:holiday.jpg",
    };
    REQUIRE(folder_run(&fo, names, N(names)) == 0);
    CHECK_EQ_STR(sidecar_of(&fo, "IMG_20200101"), "IMG_20200101.json");
    CHECK_EQ_INT(how_of(&fo, "IMG_20200101"), SBX_TAKEOUT_HOW_DIRECT);
    CHECK_EQ_STR(sidecar_of(&fo, "IMG_3.JPG"), "IMG_3.jpg.json");
    CHECK_EQ_INT(how_of(&fo, "IMG_3.JPG"), SBX_TAKEOUT_HOW_CASE);
    CHECK_EQ_STR(sidecar_of(&fo, "IMG_4.jpeg"), "IMG_4.JPEG.supplemental-metadata.json");
    CHECK_EQ_STR(sidecar_of(&fo, "scan_5.jpg"), "scan_5.json");
    CHECK_EQ_INT(how_of(&fo, "scan_5.jpg"), SBX_TAKEOUT_HOW_NO_EXT);
    CHECK_EQ_STR(sidecar_of(&fo, "holiday.jpg"), "something-else.json");
    CHECK_EQ_INT(how_of(&fo, "holiday.jpg"), SBX_TAKEOUT_HOW_TITLE);
}

SBX_TEST(match_collision_and_priority)
{
    struct folder fo;
    /* Two long names equal in their first 46 units: Google numbers the
     * second sidecar. Without titles, the first (sorted) takes the plain cut
     * name and the other one finds "prefix(1).json" by its prefix. */
    const char *names[] = {
        "Screenshot_2020-01-01-12-34-56-789_com.example.application.jpg",
        "Screenshot_2020-01-01-12-34-56-789_com.example.otherapp.jpg",
        "Screenshot_2020-01-01-12-34-56-789_com.example.json",
        "Screenshot_2020-01-01-12-34-56-789_com.example(1).json",
    };
    REQUIRE(folder_run(&fo, names, N(names)) == 0);
    CHECK_EQ_STR(sidecar_of(&fo, names[0]), names[2]);
    CHECK_EQ_STR(sidecar_of(&fo, names[1]), names[3]);
    CHECK_EQ_INT(how_of(&fo, names[1]), SBX_TAKEOUT_HOW_COLLISION);

    /* With parsed titles, each cut name goes to the file it describes. */
    const char *titled[] = {
        names[0], names[1],
        "Screenshot_2020-01-01-12-34-56-789_com.example.json"
        "|T:Screenshot_2020-01-01-12-34-56-789_com.example.otherapp.jpg",
        "Screenshot_2020-01-01-12-34-56-789_com.example(1).json"
        "|T:Screenshot_2020-01-01-12-34-56-789_com.example.application.jpg",
    };
    REQUIRE(folder_run(&fo, titled, N(titled)) == 0);
    CHECK_EQ_STR(sidecar_of(&fo, names[1]), names[2]);
    CHECK_EQ_INT(how_of(&fo, names[1]), SBX_TAKEOUT_HOW_DIRECT);
    CHECK_EQ_STR(sidecar_of(&fo, names[0]), names[3]);
    CHECK_EQ_INT(how_of(&fo, names[0]), SBX_TAKEOUT_HOW_TITLE);

    /* An exact name wins over a cut one: "x…" (46 units, no extension) owns
     * "x….json" even though the longer name would cut to it. */
    const char *names2[] = {
        "Screenshot_2020-01-01-12-34-56-789_com.example.zzz.jpg",
        "Screenshot_2020-01-01-12-34-56-789_com.example",
        "Screenshot_2020-01-01-12-34-56-789_com.example.json",
    };
    REQUIRE(folder_run(&fo, names2, N(names2)) == 0);
    CHECK_EQ_STR(sidecar_of(&fo, names2[1]), names2[2]);
    CHECK(sidecar_of(&fo, names2[0]) == NULL);
}

SBX_TEST(match_deterministic)
{
    const char *names[] = {
        "a.jpg", "a.jpg.json", "a(1).jpg", "a.jpg(1).json", "a-edited.jpg", "b.HEIC",
        "b.MP4", "b.HEIC.json", "c.JPG", "c.jpg.json", "c.jpg.JSON", "d.png", "d.json",
        "e.gif.json", "f.webp", "a.jpg",
    };
    struct folder ref, fo;
    REQUIRE(folder_run(&ref, names, N(names)) == 0);
    CHECK_EQ_INT(ref.f[15].role, SBX_TAKEOUT_ROLE_DUPLICATE);
    uint64_t seed = 12345;
    for (int round = 0; round < 50; round++) {
        const char *shuf[N(names)];
        memcpy(shuf, names, sizeof names);
        for (size_t i = N(names) - 1; i > 0; i--) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = (size_t)(seed >> 33) % (i + 1);
            const char *t = shuf[i]; shuf[i] = shuf[j]; shuf[j] = t;
        }
        REQUIRE(folder_run(&fo, shuf, N(shuf)) == 0);
        for (size_t i = 0; i < N(names) - 1; i++) {
            size_t a = idx_of(&ref, names[i]), b = idx_of(&fo, names[i]);
            if (ref.f[a].role == SBX_TAKEOUT_ROLE_DUPLICATE) continue;
            CHECK_EQ_INT(ref.f[a].role, fo.f[b].role);
            const char *sa = link_name(&ref, ref.f[a].sidecar), *sb = link_name(&fo, fo.f[b].sidecar);
            CHECK((sa == NULL && sb == NULL) || (sa && sb && strcmp(sa, sb) == 0));
            CHECK_EQ_INT(ref.f[a].users, fo.f[b].users);
        }
    }
    /* The folded duplicate sidecar: exactly one of the two is used. */
    CHECK_EQ_INT(ref.f[idx_of(&ref, "c.jpg.json")].users + ref.f[idx_of(&ref, "c.jpg.JSON")].users, 1);
}

SBX_TEST(match_scales)
{
    /* 20,000 files in one folder (a big year folder) match in well under a
     * second: the matcher is O(n log n). */
    size_t n = 20000;
    struct sbx_takeout_file *f = calloc(n, sizeof *f);
    char (*names)[48] = calloc(n, sizeof *names);
    REQUIRE(f && names);
    for (size_t i = 0; i < n / 2; i++) {
        snprintf(names[2 * i], 48, "IMG_%06zu.jpg", i);
        snprintf(names[2 * i + 1], 48, "IMG_%06zu.jpg.json", (i + 7) % (n / 2));
    }
    for (size_t i = 0; i < n; i++) f[i].name = names[i];
    int64_t t0 = sbx_now_ms();
    CHECK_EQ_INT(sbx_takeout_match(f, n), 0);
    int64_t dt = sbx_now_ms() - t0;
    printf("# matched %zu names in %lld ms\n", n, (long long)dt);
    size_t matched = 0;
    for (size_t i = 0; i < n; i += 2) matched += f[i].sidecar != SBX_TAKEOUT_NONE;
    CHECK_EQ_INT(matched, n / 2);
    CHECK(dt < 5000);
    free(f);
    free(names);
}

SBX_TEST(year_folder_names)
{
    CHECK(sbx_takeout_is_year_folder("Photos from 2020"));
    CHECK(sbx_takeout_is_year_folder("Zdjęcia z 2020 r."));
    CHECK(sbx_takeout_is_year_folder("Fotos von 2020"));
    CHECK(sbx_takeout_is_year_folder("Fotos del 1999"));
    CHECK(sbx_takeout_is_year_folder("Photos de 2015"));
    CHECK(sbx_takeout_is_year_folder("2020年的照片"));
    CHECK(!sbx_takeout_is_year_folder("Summer 2019 in Italy"));
    CHECK(!sbx_takeout_is_year_folder("Wakacje"));
    CHECK(!sbx_takeout_is_year_folder("Photos from 20201"));
    CHECK(!sbx_takeout_is_year_folder("Trip 2019-05"));
    CHECK(!sbx_takeout_is_year_folder("Room 1234"));
}

/* ------------------------------------------------------------------------ */
/* 3. Index (pure)                                                           */

static int add_json(sbx_takeout_index *ix, const char *path, const char *json)
{
    return sbx_takeout_index_add(ix, path, strlen(json), 0, (const uint8_t *)json, strlen(json));
}

static const struct sbx_takeout_folder *folder_named(sbx_takeout_index *ix, const char *name,
                                                     struct sbx_takeout_folder *out)
{
    for (size_t i = 0; i < sbx_takeout_index_folder_count(ix); i++) {
        if (sbx_takeout_index_folder(ix, i, out) == 0 && strcmp(out->name, name) == 0) return out;
    }
    return NULL;
}

/* The path rules the index applies and the zip reader skips by. */
SBX_TEST(path_rules)
{
#define CP(s) sbx_takeout_check_path((s), strlen(s))
    CHECK_EQ_INT(CP("a.jpg"), 0);
    CHECK_EQ_INT(CP("Takeout/Google Photos/Zdj\xc4\x99" "cia z 2020/\xf0\x9f\x98\x80.jpg"), 0);
    CHECK_EQ_INT(CP("a/.b/c..d/..e"), 0); /* dots inside a name are names */
    CHECK_EQ_INT(CP(""), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("/abs.jpg"), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("a//b.jpg"), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("a/b/"), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("./a.jpg"), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("a/./b.jpg"), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("../a.jpg"), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("a/.."), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("a\x01" "b.jpg"), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("a\nb.jpg"), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("bad\xff.jpg"), SBX_EMALFORMED);
    CHECK_EQ_INT(CP("a/\xed\xa0\x80.jpg"), SBX_EMALFORMED); /* surrogate */
    CHECK_EQ_INT(CP("a/\xc3"), SBX_EMALFORMED);               /* cut short */
    /* Only len bytes are looked at. */
    CHECK_EQ_INT(sbx_takeout_check_path("a.jpg/../x", 5), 0);
#undef CP
    /* The limits: a name of SBX_MAX_TAKEOUT_NAME bytes passes, one more
     * does not; likewise the whole path at SBX_MAX_TAKEOUT_PATH. */
    static char p[SBX_MAX_TAKEOUT_PATH + 2];
    memset(p, 'n', SBX_MAX_TAKEOUT_NAME + 1);
    CHECK_EQ_INT(sbx_takeout_check_path(p, SBX_MAX_TAKEOUT_NAME), 0);
    CHECK_EQ_INT(sbx_takeout_check_path(p, SBX_MAX_TAKEOUT_NAME + 1), SBX_ETOOBIG);
    memset(p, 'n', sizeof p);
    for (size_t i = 100; i < sizeof p; i += 100) p[i] = '/';
    CHECK_EQ_INT(sbx_takeout_check_path(p, SBX_MAX_TAKEOUT_PATH), 0);
    CHECK_EQ_INT(sbx_takeout_check_path(p, SBX_MAX_TAKEOUT_PATH + 1), SBX_ETOOBIG);
}

SBX_TEST(index_layout)
{
    sbx_takeout_index *ix;
    REQUIRE(sbx_takeout_index_new(&ix) == 0);
    const char *side = "{\"title\": \"x\", \"photoTakenTime\": {\"timestamp\": \"1600000000\"}}";
    const char *trash = "{\"title\": \"x\", \"photoTakenTime\": {\"timestamp\": \"1\"}, \"trashed\": true}";
    const char *G = "Takeout/Google Fotos/";
    char p[256];
#define ADD(rel) (snprintf(p, sizeof p, "%s%s", G, rel), sbx_takeout_index_add(ix, p, 10, 1, NULL, 0))
#define ADDJ(rel, j) (snprintf(p, sizeof p, "%s%s", G, rel), add_json(ix, p, j))
    CHECK_EQ_INT(ADD("Fotos von 2020/a.jpg"), 0);
    CHECK_EQ_INT(ADDJ("Fotos von 2020/a.jpg.json", side), 0);
    CHECK_EQ_INT(ADD("Zdjęcia z 2019 r./b.jpg"), 0);
    CHECK_EQ_INT(ADDJ("Zdjęcia z 2019 r./b.jpg.json", side), 0);
    /* Albums with metadata in three languages, any file name. */
    CHECK_EQ_INT(ADD("Urlaub/c.jpg"), 0);
    CHECK_EQ_INT(ADDJ("Urlaub/c.jpg.json", side), 0);
    CHECK_EQ_INT(ADDJ("Urlaub/Metadaten.json", "{\"title\": \"Urlaub am Meer\"}"), 0);
    CHECK_EQ_INT(ADD("Vacances/d.jpg"), 0);
    CHECK_EQ_INT(ADDJ("Vacances/d.jpg.json", side), 0);
    CHECK_EQ_INT(ADDJ("Vacances/métadonnées.json", "{\"title\": \"Vacances à Nice\", \"description\": \"\"}"), 0);
    CHECK_EQ_INT(ADD("Vacanze/e.jpg"), 0);
    CHECK_EQ_INT(ADDJ("Vacanze/e.jpg.json", side), 0);
    CHECK_EQ_INT(ADDJ("Vacanze/metadati.json", "{\"title\": \"Vacanze 2018\"}"), 0);
    /* A year-like name with metadata is an album. */
    CHECK_EQ_INT(ADD("Trip 2017/f.jpg"), 0);
    CHECK_EQ_INT(ADDJ("Trip 2017/f.jpg.json", side), 0);
    CHECK_EQ_INT(ADDJ("Trip 2017/metadata.json", "{\"title\": \"Trip 2017\"}"), 0);
    /* Untitled album metadata: the folder name is the title. */
    CHECK_EQ_INT(ADD("Bez nazwy 2016/u.jpg"), 0);
    CHECK_EQ_INT(ADDJ("Bez nazwy 2016/u.jpg.json", side), 0);
    CHECK_EQ_INT(ADDJ("Bez nazwy 2016/metadane.json", "{\"title\": \"\", \"access\": \"protected\"}"), 0);
    /* No metadata, not a year: titled by the folder name. */
    CHECK_EQ_INT(ADD("Rodzina/g.jpg"), 0);
    CHECK_EQ_INT(ADDJ("Rodzina/g.jpg.json", side), 0);
    /* Every sidecar trashed: the trash, not an album. */
    CHECK_EQ_INT(ADD("Kosz/h.jpg"), 0);
    CHECK_EQ_INT(ADDJ("Kosz/h.jpg.json", trash), 0);
    /* Root-level files, outside-root files, an unsafe path. */
    CHECK_EQ_INT(ADDJ("print-subscriptions.json", "{}"), 0);
    CHECK_EQ_INT(ADD("archive_browser.html"), 0);
    CHECK_EQ_INT(sbx_takeout_index_add(ix, "Takeout/archive_browser.html", 1, 0, NULL, 0), 0);
    CHECK_EQ_INT(sbx_takeout_index_add(ix, "Takeout/Drive/doc.pdf", 1, 0, NULL, 0), 0);
    CHECK_EQ_INT(sbx_takeout_index_add(ix, "Takeout/../evil.jpg", 1, 0, NULL, 0), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_takeout_index_add(ix, "/abs.jpg", 1, 0, NULL, 0), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_takeout_index_add(ix, "a//b.jpg", 1, 0, NULL, 0), SBX_EMALFORMED);
    CHECK_EQ_INT(sbx_takeout_index_add(ix, "bad\xff.jpg", 1, 0, NULL, 0), SBX_EMALFORMED);
    /* The same path again (from another part) is a duplicate. */
    CHECK_EQ_INT(ADD("Rodzina/g.jpg"), 0);
#undef ADD
#undef ADDJ
    REQUIRE(sbx_takeout_index_finish(ix) == 0);
    CHECK_EQ_INT(sbx_takeout_index_finish(ix), SBX_ESTATE);
    CHECK_EQ_INT(sbx_takeout_index_add(ix, "x.jpg", 1, 0, NULL, 0), SBX_ESTATE);
    CHECK_EQ_STR(sbx_takeout_index_root(ix), "Takeout/Google Fotos");

    struct sbx_takeout_folder fo;
    REQUIRE(folder_named(ix, "Fotos von 2020", &fo));
    CHECK_EQ_INT(fo.kind, SBX_TAKEOUT_FOLDER_YEAR);
    CHECK(fo.title == NULL);
    REQUIRE(folder_named(ix, "Zdjęcia z 2019 r.", &fo));
    CHECK_EQ_INT(fo.kind, SBX_TAKEOUT_FOLDER_YEAR);
    REQUIRE(folder_named(ix, "Urlaub", &fo));
    CHECK_EQ_INT(fo.kind, SBX_TAKEOUT_FOLDER_ALBUM);
    CHECK_EQ_STR(fo.title, "Urlaub am Meer");
    CHECK_EQ_STR(fo.meta_path, "Takeout/Google Fotos/Urlaub/Metadaten.json");
    REQUIRE(folder_named(ix, "Vacances", &fo));
    CHECK_EQ_STR(fo.title, "Vacances à Nice");
    REQUIRE(folder_named(ix, "Vacanze", &fo));
    CHECK_EQ_STR(fo.title, "Vacanze 2018");
    REQUIRE(folder_named(ix, "Trip 2017", &fo));
    CHECK_EQ_INT(fo.kind, SBX_TAKEOUT_FOLDER_ALBUM);
    REQUIRE(folder_named(ix, "Bez nazwy 2016", &fo));
    CHECK_EQ_INT(fo.kind, SBX_TAKEOUT_FOLDER_ALBUM);
    CHECK_EQ_STR(fo.title, "Bez nazwy 2016");
    REQUIRE(folder_named(ix, "Rodzina", &fo));
    CHECK_EQ_INT(fo.kind, SBX_TAKEOUT_FOLDER_ALBUM);
    CHECK_EQ_STR(fo.title, "Rodzina");
    REQUIRE(folder_named(ix, "Kosz", &fo));
    CHECK_EQ_INT(fo.kind, SBX_TAKEOUT_FOLDER_TRASH);
    REQUIRE(folder_named(ix, "Google Fotos", &fo));
    CHECK_EQ_INT(fo.kind, SBX_TAKEOUT_FOLDER_ROOT);

    struct sbx_takeout_stats st;
    sbx_takeout_index_stats(ix, &st);
    CHECK_EQ_INT(st.media, 9);
    CHECK_EQ_INT(st.matched_media, 9);
    CHECK_EQ_INT(st.album_meta, 5);
    CHECK_EQ_INT(st.year_folders, 2);
    CHECK_EQ_INT(st.albums, 6);
    CHECK_EQ_INT(st.special_folders, 1);
    CHECK_EQ_INT(st.outside_root, 2);
    CHECK_EQ_INT(st.duplicates, 1);
    CHECK_EQ_INT(st.orphan_sidecars, 0);

    struct sbx_takeout_media m;
    REQUIRE(sbx_takeout_index_find(ix, "Takeout/Google Fotos/Urlaub/c.jpg", &m) == 0);
    CHECK_EQ_STR(m.sidecar_path, "Takeout/Google Fotos/Urlaub/c.jpg.json");
    REQUIRE(m.sidecar);
    CHECK_EQ_INT(m.sidecar->taken, 1600000000);
    struct sbx_takeout_folder mf;
    REQUIRE(sbx_takeout_index_folder(ix, m.folder, &mf) == 0);
    CHECK_EQ_STR(mf.name, "Urlaub");
    CHECK_EQ_INT(sbx_takeout_index_find(ix, "Takeout/Google Fotos/Urlaub/c.jpg.json", &m), SBX_ENOENT);
    CHECK_EQ_INT(sbx_takeout_index_find(ix, "Takeout/Drive/doc.pdf", &m), SBX_ENOENT);
    sbx_takeout_index_free(ix);
}

/* ------------------------------------------------------------------------ */
/* 4. Zips of the real Takeout fixture                                       */

struct fixture_file {
    char rel[512];   /* path relative to the fixture root */
    int part;
};

static struct fixture_file fx[128];
static size_t nfx;

static void walk(const char *root, const char *rel)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char r[512], full[1536];
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", root, r);
        struct stat st;
        if (stat(full, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) walk(root, r);
        else if (nfx < N(fx)) snprintf(fx[nfx++].rel, sizeof fx[0].rel, "%s", r);
    }
    closedir(d);
}

static int fx_cmp(const void *a, const void *b)
{
    return strcmp(((const struct fixture_file *)a)->rel, ((const struct fixture_file *)b)->rel);
}

static const char *fixture_root(void)
{
    static char root[1024];
    const char *shared = getenv("SHOEBOX_SHARED");
    snprintf(root, sizeof root, "%s/fixtures/takeout/gpth-pl", shared ? shared : "../shared");
    return root;
}

static int write_zip(const char *zpath, int part, const char *root)
{
    struct archive *a = archive_write_new();
    if (!a) return -1;
    int rc = -1;
    archive_write_set_format_zip(a);
    /* Part 0 flags its names UTF-8 (as Google does); part 1 stores the raw
     * bytes unflagged (as Info-ZIP does under the C locale). */
    if (part == 0) archive_write_set_options(a, "hdrcharset=UTF-8");
    if (archive_write_open_filename(a, zpath) != ARCHIVE_OK) goto out;
    for (size_t i = 0; i < nfx; i++) {
        if (fx[i].part != part) continue;
        char full[1536], inzip[1024];
        if (snprintf(full, sizeof full, "%s/%s", root, fx[i].rel) >= (int)sizeof full ||
            snprintf(inzip, sizeof inzip, "Takeout/%s", fx[i].rel) >= (int)sizeof inzip)
            abort();
        uint8_t *buf;
        size_t len;
        if (sbx_file_read(full, 64u << 20, &buf, &len) != 0) goto out;
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname_utf8(e, inzip);
        archive_entry_set_size(e, (la_int64_t)len);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        int ok = archive_write_header(a, e) == ARCHIVE_OK &&
                 archive_write_data(a, buf, len) == (la_ssize_t)len;
        archive_entry_free(e);
        free(buf);
        if (!ok) {
            printf("# zip write: %s\n", archive_error_string(a));
            goto out;
        }
    }
    rc = archive_write_close(a) == ARCHIVE_OK ? 0 : -1;
out:
    archive_write_free(a);
    return rc;
}

/* Writes entries of the given sizes filled with "{ ... }" (or the given
 * text when the size is 0): for the oversized and unsafe cases. */
static int write_zip_raw(const char *zpath, const char *const *names, const size_t *sizes,
                         const char *const *texts, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_zip(a);
    archive_write_set_options(a, "hdrcharset=UTF-8");
    int rc = archive_write_open_filename(a, zpath) == ARCHIVE_OK ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t len = sizes[i] ? sizes[i] : strlen(texts[i]);
        uint8_t *buf = calloc(1, len + 1);
        if (sizes[i]) {
            memset(buf, ' ', len);
            if (len >= 2) { buf[0] = '{'; buf[len - 1] = '}'; }
        } else {
            memcpy(buf, texts[i], len);
        }
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname_utf8(e, names[i]);
        archive_entry_set_size(e, (la_int64_t)len);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        if (archive_write_header(a, e) != ARCHIVE_OK ||
            archive_write_data(a, buf, len) != (la_ssize_t)len)
            rc = -1;
        archive_entry_free(e);
        free(buf);
    }
    if (archive_write_close(a) != ARCHIVE_OK) rc = -1;
    archive_write_free(a);
    return rc;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int part_of(const char *rel)
{
    for (size_t i = 0; i < nfx; i++)
        if (strcmp(fx[i].rel, rel) == 0) return fx[i].part;
    return -1;
}

SBX_TEST(zip_two_parts_fixture)
{
    const char *root = fixture_root();
    nfx = 0;
    walk(root, "");
    REQUIRE(nfx > 40);
    qsort(fx, nfx, sizeof fx[0], fx_cmp);
    /* Split in two parts: the 2020 media in part 0 and their sidecars in
     * part 1, everything else alternating, so sidecars and media are apart. */
    for (size_t i = 0; i < nfx; i++) {
        if (strstr(fx[i].rel, "Photos from 2020/")) fx[i].part = ends_with(fx[i].rel, ".json") ? 1 : 0;
        else fx[i].part = (int)(i % 2);
    }
    char tmp[] = "/tmp/sbx-takeout-XXXXXX";
    REQUIRE(mkdtemp(tmp));
    char z0[256], z1[256], notzip[256];
    snprintf(z0, sizeof z0, "%s/takeout-20210214T000000Z-001.zip", tmp);
    snprintf(z1, sizeof z1, "%s/takeout-20210214T000000Z-002.zip", tmp);
    snprintf(notzip, sizeof notzip, "%s/notes.txt", tmp);
    REQUIRE(write_zip(z0, 0, root) == 0);
    REQUIRE(write_zip(z1, 1, root) == 0);
    REQUIRE(sbx_file_write_atomic(notzip, (const uint8_t *)"hello", 5, 0644) == 0);

    CHECK_EQ_INT(sbx_takeout_is_zip(z0), 1);
    CHECK_EQ_INT(sbx_takeout_is_zip(notzip), 0);
    sbx_takeout_reader *r = NULL;
    const char *bad[] = {z0, notzip};
    CHECK_EQ_INT(sbx_takeout_reader_open(&r, bad, 2), SBX_EUNSUPPORTED);
    CHECK(r == NULL);

    const char *parts[] = {z0, z1};
    REQUIRE(sbx_takeout_reader_open(&r, parts, 2) == 0);
    sbx_takeout_index *ix;
    REQUIRE(sbx_takeout_index_new(&ix) == 0);
    int rc = sbx_takeout_scan(r, ix);
    if (rc) printf("# scan: %s (%s)\n", sbx_strerror(rc), sbx_takeout_reader_error(r));
    REQUIRE(rc == 0);

    CHECK_EQ_STR(sbx_takeout_index_root(ix), "Takeout/Zdjęcia Google");
    struct sbx_takeout_stats st;
    sbx_takeout_index_stats(ix, &st);
    CHECK_EQ_INT(st.entries, nfx);
    CHECK_EQ_INT(st.media, 25);
    CHECK_EQ_INT(st.sidecars, 25);
    CHECK_EQ_INT(st.matched_media, 24);
    CHECK_EQ_INT(st.unmatched_media, 1);
    CHECK_EQ_INT(st.orphan_sidecars, 1);
    CHECK_EQ_INT(st.year_folders, 4);
    CHECK_EQ_INT(st.albums, 0);
    CHECK_EQ_INT(st.bad_json, 0);
    CHECK_EQ_INT(st.outside_root, 1); /* przeglądarka_archiwum.html */
    CHECK_EQ_INT(sbx_takeout_index_orphan_count(ix), 1);
    CHECK_EQ_STR(sbx_takeout_index_orphan(ix, 0),
                 "Takeout/Zdjęcia Google/Photos from 2020/editing_multiple_lines_pt1.webm.json");
    CHECK(sbx_takeout_index_is_orphan(ix, "Takeout/Zdjęcia Google/Photos from 2020/editing_multiple_lines_pt1.webm.json"));
    CHECK(!sbx_takeout_index_is_orphan(ix, "Takeout/Zdjęcia Google/Photos from 2020/editing_multiple_lines_pt2.webm.json"));
    CHECK(!sbx_takeout_index_is_orphan(ix, "Takeout/Zdjęcia Google/editing_multiple_lines_pt1.webm.json"));
    for (size_t i = 0; i < sbx_takeout_index_folder_count(ix); i++) {
        struct sbx_takeout_folder f;
        REQUIRE(sbx_takeout_index_folder(ix, i, &f) == 0);
        if (strncmp(f.name, "Photos from ", 12) == 0) CHECK_EQ_INT(f.kind, SBX_TAKEOUT_FOLDER_YEAR);
        else CHECK_EQ_INT(f.kind, SBX_TAKEOUT_FOLDER_ROOT);
    }

    /* Every sidecar-derived value equals what the JSON file says, read here
     * independently with jansson; and some sidecars sit in the other part. */
    size_t cross_part = 0, with_geo = 0;
    for (size_t i = 0; i < sbx_takeout_index_media_count(ix); i++) {
        struct sbx_takeout_media m;
        REQUIRE(sbx_takeout_index_media(ix, i, &m) == 0);
        if (!m.sidecar_path) {
            CHECK_EQ_STR(m.name, "tia3059641059518022454.gif");
            continue;
        }
        REQUIRE(m.sidecar);
        CHECK_EQ_INT(m.how, SBX_TAKEOUT_HOW_DIRECT);
        const char *rel = m.sidecar_path + strlen("Takeout/");
        char full[1536];
        snprintf(full, sizeof full, "%s/%s", root, rel);
        json_error_t jerr;
        json_t *j = json_load_file(full, 0, &jerr);
        REQUIRE(j);
        const char *ts = json_string_value(json_object_get(json_object_get(j, "photoTakenTime"), "timestamp"));
        REQUIRE(ts);
        CHECK(m.sidecar->has_taken);
        CHECK_EQ_INT(m.sidecar->taken, strtoll(ts, NULL, 10));
        CHECK_EQ_STR(m.sidecar->title, json_string_value(json_object_get(j, "title")));
        CHECK_EQ_STR(m.sidecar->title, m.name);
        double lat = json_number_value(json_object_get(json_object_get(j, "geoData"), "latitude"));
        double lon = json_number_value(json_object_get(json_object_get(j, "geoData"), "longitude"));
        if (lat != 0.0 || lon != 0.0) {
            with_geo++;
            CHECK(m.sidecar->has_geo && !m.sidecar->geo_from_exif);
            CHECK(m.sidecar->latitude == lat && m.sidecar->longitude == lon);
        } else {
            CHECK(!m.sidecar->has_geo);
        }
        json_decref(j);
        if (part_of(rel) != part_of(m.path + strlen("Takeout/"))) cross_part++;
        CHECK_EQ_INT(m.part, part_of(m.path + strlen("Takeout/")));
    }
    CHECK(cross_part >= 12);
    CHECK_EQ_INT(with_geo, 11);

    /* Spot checks with the values written in the fixture. */
    struct sbx_takeout_media m;
    REQUIRE(sbx_takeout_index_find(ix, "Takeout/Zdjęcia Google/Photos from 2020/IMG_20200516_154811.jpg", &m) == 0);
    REQUIRE(m.sidecar);
    CHECK_EQ_INT(m.sidecar->taken, 1589636892);
    CHECK_EQ_INT(m.sidecar->created, 1613314341);
    CHECK(fabs(m.sidecar->latitude - 49.21468333333333) < 1e-12);
    CHECK(fabs(m.sidecar->longitude - 22.641144444444443) < 1e-12);
    REQUIRE(sbx_takeout_index_find(ix, "Takeout/Zdjęcia Google/Photos from 2021/IMG_20210127_193339.jpg", &m) == 0);
    REQUIRE(m.sidecar);
    CHECK_EQ_INT(m.sidecar->taken, 1611581580);
    CHECK(fabs(m.sidecar->latitude - 50.0411867) < 1e-12); /* geoData, not geoDataExif */
    REQUIRE(sbx_takeout_index_find(ix, "Takeout/Zdjęcia Google/Photos from 2015/signal-2020-07-18-183333.webm", &m) == 0);
    REQUIRE(m.sidecar);
    CHECK_EQ_INT(m.sidecar->taken, 1420574198);
    CHECK(!m.sidecar->has_geo);
    CHECK_EQ_INT(sbx_takeout_index_find(ix, "Takeout/Zdjęcia Google/Photos from 2020/editing_multiple_lines_pt1.webm", &m), SBX_ENOENT);

    /* Second pass: stream every media file and compare with the fixture. */
    size_t streamed = 0, bytes = 0, mismatched = 0;
    struct sbx_takeout_entry e;
    uint8_t buf[4096];
    while ((rc = sbx_takeout_reader_next(r, &e)) == 0) {
        if (sbx_takeout_index_find(ix, e.path, &m) != 0) continue;
        char full[1536];
        snprintf(full, sizeof full, "%s/%s", root, e.path + strlen("Takeout/"));
        uint8_t *want;
        size_t wlen;
        REQUIRE(sbx_file_read(full, 64u << 20, &want, &wlen) == 0);
        CHECK(e.size_known && e.size == wlen);
        size_t off = 0, got;
        for (;;) {
            REQUIRE(sbx_takeout_reader_read(r, buf, sizeof buf, &got) == 0);
            if (got == 0) break;
            if (off + got > wlen || memcmp(want + off, buf, got) != 0) mismatched++;
            off += got;
        }
        CHECK_EQ_INT(off, wlen);
        free(want);
        streamed++;
        bytes += off;
    }
    CHECK_EQ_INT(rc, SBX_ENOENT);
    CHECK_EQ_INT(streamed, 25);
    CHECK_EQ_INT(mismatched, 0);
    CHECK(bytes > 5000000);
    size_t got;
    CHECK_EQ_INT(sbx_takeout_reader_read(r, buf, sizeof buf, &got), SBX_ESTATE);

    sbx_takeout_index_free(ix);
    sbx_takeout_reader_free(r);
    nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

SBX_TEST(zip_limits_and_unsafe_names)
{
    char tmp[] = "/tmp/sbx-takeout-XXXXXX";
    REQUIRE(mkdtemp(tmp));
    char z[256];
    snprintf(z, sizeof z, "%s/part.zip", tmp);
    const char *names[] = {
        "Takeout/Google Photos/Photos from 2020/big.jpg.json",
        "Takeout/Google Photos/Photos from 2020/big.jpg",
        "Takeout/Google Photos/Photos from 2020/ok.jpg",
        "Takeout/Google Photos/Photos from 2020/ok.jpg.json",
        "../escape.jpg",
        "Takeout/Google Photos/Photos from 2020/../x.jpg",
        "./Takeout/Google Photos/Photos from 2020/dot.jpg",
        "Takeout/Google Photos/Photos from 2020/tab\there.jpg",
        "Takeout//twice.jpg",
    };
    size_t sizes[] = {SBX_MAX_SIDECAR_BYTES + 10, 100, 100, 0, 5, 5, 5, 5, 5};
    const char *texts[] = {NULL, NULL, NULL,
                           "{\"title\": \"ok.jpg\", \"photoTakenTime\": {\"timestamp\": \"7\"}}",
                           NULL, NULL, NULL, NULL, NULL};
    REQUIRE(write_zip_raw(z, names, sizes, texts, N(names)) == 0);
    sbx_takeout_reader *r;
    const char *parts[] = {z};
    REQUIRE(sbx_takeout_reader_open(&r, parts, 1) == 0);
    sbx_takeout_index *ix;
    REQUIRE(sbx_takeout_index_new(&ix) == 0);
    REQUIRE(sbx_takeout_scan(r, ix) == 0);
    struct sbx_takeout_stats st;
    sbx_takeout_index_stats(ix, &st);
    CHECK_EQ_INT(sbx_takeout_reader_skipped(r), 4);
    CHECK_EQ_INT(st.entries, 5);
    CHECK_EQ_INT(st.bad_json, 1);
    CHECK_EQ_INT(st.media, 3);
    struct sbx_takeout_media m;
    REQUIRE(sbx_takeout_index_find(ix, "Takeout/Google Photos/Photos from 2020/big.jpg", &m) == 0);
    /* Matched by name, but the oversized JSON was never parsed. */
    CHECK(m.sidecar_path != NULL && m.sidecar == NULL);
    REQUIRE(sbx_takeout_index_find(ix, "Takeout/Google Photos/Photos from 2020/ok.jpg", &m) == 0);
    CHECK(m.sidecar && m.sidecar->kind == SBX_TAKEOUT_JSON_MEDIA && m.sidecar->taken == 7);
    CHECK_EQ_INT(sbx_takeout_index_find(ix, "Takeout/Google Photos/Photos from 2020/dot.jpg", &m), 0);
    sbx_takeout_index_free(ix);
    sbx_takeout_reader_free(r);

    /* A truncated zip is reported, not crashed on. */
    uint8_t *data;
    size_t len;
    REQUIRE(sbx_file_read(z, 8u << 20, &data, &len) == 0);
    REQUIRE(sbx_file_write_atomic(z, data, len / 2, 0644) == 0);
    free(data);
    REQUIRE(sbx_takeout_reader_open(&r, parts, 1) == 0);
    REQUIRE(sbx_takeout_index_new(&ix) == 0);
    int rc = sbx_takeout_scan(r, ix);
    CHECK(rc < 0);
    printf("# truncated zip: %s: %s\n", sbx_strerror(rc), sbx_takeout_reader_error(r));
    CHECK(sbx_takeout_reader_error(r)[0] != '\0');
    sbx_takeout_index_free(ix);
    sbx_takeout_reader_free(r);
    const char *missing[] = {"/nonexistent/part.zip"};
    CHECK_EQ_INT(sbx_takeout_reader_open(&r, missing, 1), SBX_ENOENT);
    nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

SBX_TEST_MAIN(SBX_CASE(sidecar_fields), SBX_CASE(sidecar_geo_fallback),
              SBX_CASE(sidecar_album_and_errors), SBX_CASE(utf16_counting),
              SBX_CASE(match_direct_and_leftovers), SBX_CASE(match_truncated_51_utf16),
              SBX_CASE(match_supplemental_truncations), SBX_CASE(match_duplicates_n),
              SBX_CASE(match_edited_languages), SBX_CASE(match_live_photos),
              SBX_CASE(match_extension_quirks), SBX_CASE(match_collision_and_priority),
              SBX_CASE(match_deterministic), SBX_CASE(match_scales),
              SBX_CASE(year_folder_names), SBX_CASE(path_rules), SBX_CASE(index_layout),
              SBX_CASE(zip_two_parts_fixture), SBX_CASE(zip_limits_and_unsafe_names))
