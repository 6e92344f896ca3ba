/* The importer's pure decisions: text cleaning, which date, place and name a
 * photo gets, Takeout album ids, the progress line. */
#include "sbx_test.h"
#include "shoebox/import.h"

#include <string.h>

/* ---- sbx_import_clean_text ---- */

static const char *clean(const char *in, size_t len, size_t cap)
{
    static char out[256];
    size_t n = sbx_import_clean_text(out, cap, in, len);
    if (n != strlen(out)) return "(length mismatch)";
    return out;
}

SBX_TEST(clean_keeps_valid_utf8)
{
    CHECK_EQ_STR(clean("IMG_0001.JPG", 12, 64), "IMG_0001.JPG");
    CHECK_EQ_STR(clean("Zdjęcia 😀", strlen("Zdjęcia 😀"), 64), "Zdjęcia 😀");
    CHECK_EQ_STR(clean("", 0, 64), "");
    CHECK_EQ_STR(clean(NULL, 5, 64), "");
}

SBX_TEST(clean_replaces_each_bad_byte)
{
    /* Latin-1 "é" alone is not UTF-8. */
    CHECK_EQ_STR(clean("caf\xE9.jpg", 8, 64), "caf\xEF\xBF\xBD.jpg");
    /* Overlong NUL, a surrogate and a code point past U+10FFFF. */
    CHECK_EQ_STR(clean("\xC0\x80", 2, 64), "\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK_EQ_STR(clean("a\xED\xA0\x80z", 5, 64), "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz");
    CHECK_EQ_STR(clean("\xF4\x90\x80\x80", 4, 64), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    /* A sequence cut by the end of the input. */
    CHECK_EQ_STR(clean("ab\xE2\x82", 4, 64), "ab\xEF\xBF\xBD\xEF\xBF\xBD");
}

SBX_TEST(clean_replaces_nul_and_controls)
{
    CHECK_EQ_STR(clean("a\0b", 3, 64), "a\xEF\xBF\xBD" "b");
    CHECK_EQ_STR(clean("a\nb\x1b[2J", 7, 64), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD[2J");
    CHECK_EQ_STR(clean("\x7f", 1, 64), "\xEF\xBF\xBD");
    CHECK_EQ_STR(clean("tab\there", 8, 64), "tab\xEF\xBF\xBDhere");
}

SBX_TEST(clean_never_splits_a_character)
{
    /* "zęby": z (1) ę (2) b y. With room for 2 bytes, ę does not fit. */
    CHECK_EQ_STR(clean("z\xC4\x99" "by", 5, 3), "z");
    CHECK_EQ_STR(clean("z\xC4\x99" "by", 5, 4), "z\xC4\x99");
    CHECK_EQ_STR(clean("\xF0\x9F\x98\x80", 4, 4), "");
    CHECK_EQ_STR(clean("abc", 3, 1), "");
    /* A replacement is 3 bytes: it does not fit in 2. */
    CHECK_EQ_STR(clean("a\xFF", 2, 4), "a");
    char out[4] = {'x', 'x', 'x', 'x'};
    CHECK_EQ_INT(sbx_import_clean_text(out, 0, "abc", 3), 0);
    CHECK(out[0] == 'x');
}

/* ---- sbx_import_decide ---- */

static struct sbx_media_info exif_info(void)
{
    struct sbx_media_info info;
    memset(&info, 0, sizeof info);
    info.mime = "image/jpeg";
    info.kind = SBX_MEDIA_PHOTO;
    info.has_captured_at = true;
    info.captured_at_ms = 1589636891000LL; /* a second before the sidecar */
    info.has_gps = true;
    info.latitude = -33.5;
    info.longitude = 151.25;
    return info;
}

static struct sbx_takeout_sidecar sidecar(void)
{
    struct sbx_takeout_sidecar sc;
    memset(&sc, 0, sizeof sc);
    sc.kind = SBX_TAKEOUT_JSON_MEDIA;
    sc.title = "IMG_20200516_154811.jpg";
    sc.has_taken = true;
    sc.taken = 1589636892;
    sc.has_geo = true;
    sc.latitude = 49.21468333333333;
    sc.longitude = 22.641144444444443;
    return sc;
}

SBX_TEST(decide_sidecar_first)
{
    struct sbx_media_info info = exif_info();
    struct sbx_takeout_sidecar sc = sidecar();
    sc.favorited = true;
    sc.description = "at the lake";
    struct sbx_import_sources in = {.info = &info, .sidecar = &sc, .how = SBX_TAKEOUT_HOW_DIRECT,
                                    .base_name = "IMG_20200516_154811(1).jpg", .has_mtime = true, .mtime_ms = 5};
    struct sbx_import_decision d;
    sbx_import_decide(&in, &d);
    CHECK(d.has_captured_at);
    CHECK_EQ_INT(d.captured_at_ms, 1589636892000LL);
    CHECK_EQ_INT(d.time_source, SBX_IMPORT_TIME_SIDECAR);
    CHECK(d.has_location && d.location_from_sidecar);
    CHECK(d.lat == sc.latitude && d.lon == sc.longitude);
    CHECK_EQ_STR(d.file_name, "IMG_20200516_154811.jpg");
    CHECK(d.favorite && !d.archived && !d.trashed);
    CHECK_EQ_STR(d.description, "at the lake");
}

SBX_TEST(decide_falls_back_to_exif_then_file_time)
{
    struct sbx_media_info info = exif_info();
    struct sbx_takeout_sidecar sc = sidecar();
    sc.taken = 0; /* Google's "unset" */
    sc.has_geo = false;
    sc.description = "";
    struct sbx_import_sources in = {.info = &info, .sidecar = &sc, .base_name = "x.jpg", .has_mtime = true,
                                    .mtime_ms = 1234};
    struct sbx_import_decision d;
    sbx_import_decide(&in, &d);
    CHECK_EQ_INT(d.time_source, SBX_IMPORT_TIME_EXIF);
    CHECK_EQ_INT(d.captured_at_ms, 1589636891000LL);
    CHECK(d.has_location && !d.location_from_sidecar && d.lat == -33.5 && d.lon == 151.25);
    CHECK(d.description == NULL);

    info.has_captured_at = false;
    info.has_gps = false;
    in.sidecar = NULL;
    sbx_import_decide(&in, &d);
    CHECK_EQ_INT(d.time_source, SBX_IMPORT_TIME_FILE);
    CHECK_EQ_INT(d.captured_at_ms, 1234);
    CHECK(!d.has_location);
    CHECK_EQ_STR(d.file_name, "x.jpg");

    in.has_mtime = false;
    in.info = NULL;
    sbx_import_decide(&in, &d);
    CHECK(!d.has_captured_at);
    CHECK_EQ_INT(d.time_source, SBX_IMPORT_TIME_NONE);
}

SBX_TEST(decide_drops_impossible_positions)
{
    struct sbx_media_info info = exif_info();
    struct sbx_takeout_sidecar sc = sidecar();
    sc.latitude = 91.0;
    struct sbx_import_sources in = {.info = &info, .sidecar = &sc, .base_name = "x.jpg"};
    struct sbx_import_decision d;
    sbx_import_decide(&in, &d);
    /* The sidecar's is impossible: EXIF's is used. */
    CHECK(d.has_location && !d.location_from_sidecar && d.lat == -33.5);
    info.longitude = 180.5;
    sbx_import_decide(&in, &d);
    CHECK(!d.has_location);
}

SBX_TEST(decide_edited_and_live_keep_their_names)
{
    struct sbx_takeout_sidecar sc = sidecar();
    sc.archived = true;
    sc.trashed = true;
    struct sbx_import_sources in = {.sidecar = &sc, .how = SBX_TAKEOUT_HOW_EDITED,
                                    .base_name = "IMG_20200516_154811-edited.jpg"};
    struct sbx_import_decision d;
    sbx_import_decide(&in, &d);
    CHECK_EQ_STR(d.file_name, "IMG_20200516_154811-edited.jpg");
    /* The original's date and flags still apply to its copy. */
    CHECK_EQ_INT(d.time_source, SBX_IMPORT_TIME_SIDECAR);
    CHECK(d.archived && d.trashed);
    in.how = SBX_TAKEOUT_HOW_LIVE;
    in.base_name = "IMG_1.MP4";
    sbx_import_decide(&in, &d);
    CHECK_EQ_STR(d.file_name, "IMG_1.MP4");
    in.how = SBX_TAKEOUT_HOW_TITLE;
    sbx_import_decide(&in, &d);
    CHECK_EQ_STR(d.file_name, "IMG_20200516_154811.jpg");
    sc.title = "";
    sbx_import_decide(&in, &d);
    CHECK_EQ_STR(d.file_name, "IMG_1.MP4");
}

/* ---- sbx_import_album_id ---- */

SBX_TEST(album_ids_are_stable_and_distinct)
{
    uint8_t lib1[16] = {1}, lib2[16] = {2}, a[16], b[16], c[16], d[16];
    sbx_import_album_id(lib1, "Trip", 4, a);
    sbx_import_album_id(lib1, "Trip", 4, b);
    sbx_import_album_id(lib1, "Trip(1)", 7, c);
    sbx_import_album_id(lib2, "Trip", 4, d);
    CHECK(memcmp(a, b, 16) == 0);
    CHECK(memcmp(a, c, 16) != 0);
    CHECK(memcmp(a, d, 16) != 0);
    uint8_t zero[16] = {0};
    CHECK(memcmp(a, zero, 16) != 0);
}

/* ---- sbx_import_progress_line ---- */

SBX_TEST(progress_line_shows_figures)
{
    char line[256];
    struct sbx_import_progress p = {.files_done = 5, .files_total = 10, .bytes_done = 2000000,
                                    .bytes_total = 4000000, .rate_bytes = 1000000, .rate_ms = 1000};
    size_t n = sbx_import_progress_line(line, sizeof line, &p, 100);
    CHECK_EQ_INT(n, strlen(line));
    CHECK(n <= 100);
    CHECK(strstr(line, " 50%") != NULL);
    CHECK(strstr(line, "5/10 files") != NULL);
    CHECK(strstr(line, "2.0 MB/4.0 MB") != NULL);
    CHECK(strstr(line, "1.0 MB/s") != NULL);
    CHECK(strstr(line, "ETA 0:02") != NULL);
    CHECK(line[0] == '[' && strchr(line, ']') != NULL);
    /* Half the bar is filled. */
    const char *end = strchr(line, ']');
    int fill = 0, len = (int)(end - line - 1);
    for (const char *c = line + 1; c < end; c++) fill += *c == '=';
    CHECK(fill == len / 2);
}

SBX_TEST(progress_line_unknowns_and_limits)
{
    char line[256];
    struct sbx_import_progress p = {.files_done = 3};
    sbx_import_progress_line(line, sizeof line, &p, 100);
    CHECK(strstr(line, "3/? files") != NULL);
    CHECK(strstr(line, "  ?%") != NULL);
    CHECK(strstr(line, "ETA --:--") != NULL);
    /* Narrow terminals lose the bar, then the end of the figures. */
    struct sbx_import_progress q = {.files_done = 1, .files_total = 2, .bytes_done = 1, .bytes_total = 2};
    size_t n = sbx_import_progress_line(line, sizeof line, &q, 30);
    CHECK(n <= 30);
    CHECK(line[0] != '[');
    /* A small buffer is never overrun. */
    char tiny[8];
    n = sbx_import_progress_line(tiny, sizeof tiny, &q, 200);
    CHECK(n < sizeof tiny);
    CHECK_EQ_INT(strlen(tiny), n);
    /* Long imports print hours. */
    struct sbx_import_progress r = {.files_done = 1, .files_total = 9, .bytes_done = 1000,
                                    .bytes_total = 4000000000LL, .rate_bytes = 1000000, .rate_ms = 1000};
    sbx_import_progress_line(line, sizeof line, &r, 120);
    CHECK(strstr(line, "ETA 1:06:40") != NULL);
}

SBX_TEST_MAIN(SBX_CASE(clean_keeps_valid_utf8), SBX_CASE(clean_replaces_each_bad_byte),
              SBX_CASE(clean_replaces_nul_and_controls), SBX_CASE(clean_never_splits_a_character),
              SBX_CASE(decide_sidecar_first), SBX_CASE(decide_falls_back_to_exif_then_file_time),
              SBX_CASE(decide_drops_impossible_positions), SBX_CASE(decide_edited_and_live_keep_their_names),
              SBX_CASE(album_ids_are_stable_and_distinct), SBX_CASE(progress_line_shows_figures),
              SBX_CASE(progress_line_unknowns_and_limits))
