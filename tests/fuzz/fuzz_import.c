/* Fuzzes the importer's pure helpers (shoebox/import.h):
 * - sbx_import_clean_text: the output is valid UTF-8 without NUL or control
 *   characters, fits the buffer, is cleaned to itself, and equals the input
 *   when the input was already clean and fits;
 * - sbx_import_progress_line: any figures (negative, huge) give an ASCII line
 *   within the buffer and the width;
 * - sbx_import_decide: any sidecar and probe values give a usable decision
 *   (a name, a position on the globe or none).
 * Layout: byte 0 = buffer size, byte 1 = width, then 6 x 8 bytes of
 * figures / doubles when present; the whole input is also the text. */
#include "shoebox/import.h"
#include "shoebox/util.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Valid UTF-8 (no overlongs, surrogates or > U+10FFFF), no C0 controls,
 * no DEL. */
static int clean_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c < 0x20 || c == 0x7F) return 0;
        if (c < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { k = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 4; cp = c & 0x07; }
        else return 0;
        if (i + k > n) return 0;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += k;
    }
    return 1;
}

static int64_t i64_at(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return (int64_t)v;
}

static double dbl_at(const uint8_t *p)
{
    uint64_t v = (uint64_t)i64_at(p);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

static char out[1024], again[1024];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t cap = (size_t)data[0] + 1;
    unsigned width = data[1];

    /* Text cleaning. */
    size_t n = sbx_import_clean_text(out, cap, (const char *)data, size);
    SBX_ASSERT(n < cap && out[n] == '\0' && strlen(out) == n);
    SBX_ASSERT(clean_ok((const unsigned char *)out, n));
    size_t m = sbx_import_clean_text(again, sizeof again, out, n);
    SBX_ASSERT(m == n && memcmp(again, out, n) == 0);
    if (size < cap && clean_ok(data, size)) SBX_ASSERT(n == size && memcmp(out, data, size) == 0);

    if (size < 2 + 6 * 8) return 0;
    const uint8_t *f = data + 2;

    /* Progress line. */
    struct sbx_import_progress p = {i64_at(f), i64_at(f + 8), i64_at(f + 16), i64_at(f + 24), i64_at(f + 32),
                                    i64_at(f + 40)};
    n = sbx_import_progress_line(out, cap, &p, width);
    SBX_ASSERT(n < cap && strlen(out) == n);
    if (width > 0) SBX_ASSERT(n <= width);
    for (size_t i = 0; i < n; i++) SBX_ASSERT(out[i] >= 0x20 && out[i] < 0x7F);

    /* Decisions. */
    struct sbx_media_info info;
    memset(&info, 0, sizeof info);
    info.mime = "image/jpeg";
    info.has_captured_at = f[0] & 1;
    info.captured_at_ms = i64_at(f);
    info.has_gps = f[0] & 2;
    info.latitude = dbl_at(f + 8);
    info.longitude = dbl_at(f + 16);
    struct sbx_takeout_sidecar sc;
    memset(&sc, 0, sizeof sc);
    sc.has_taken = f[0] & 4;
    sc.taken = i64_at(f + 24) / 1000; /* seconds that fit in ms */
    sc.has_geo = f[0] & 8;
    sc.latitude = dbl_at(f + 32);
    sc.longitude = dbl_at(f + 40);
    sc.title = (f[0] & 16) ? out : NULL;
    struct sbx_import_sources in = {
        .info = (f[1] & 1) ? &info : NULL,
        .sidecar = (f[1] & 2) ? &sc : NULL,
        .how = (uint8_t)(f[1] >> 4),
        .base_name = "base.jpg",
        .has_mtime = f[1] & 4,
        .mtime_ms = i64_at(f + 8),
    };
    struct sbx_import_decision d;
    sbx_import_decide(&in, &d);
    SBX_ASSERT(d.file_name != NULL);
    if (d.has_location)
        SBX_ASSERT(d.lat >= -90.0 && d.lat <= 90.0 && d.lon >= -180.0 && d.lon <= 180.0);
    SBX_ASSERT(d.has_captured_at == (d.time_source != SBX_IMPORT_TIME_NONE));
    return 0;
}
