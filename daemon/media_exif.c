/* EXIF through libexif: capture time, GPS, camera, orientation.
 *
 * libexif parses; this file only picks the few values shoebox keeps and
 * checks every entry's format and size before it reads a byte of it, since
 * libexif hands entries over exactly as the file declared them. */
#include "media_internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <libexif/exif-data.h>
#include <libexif/exif-log.h>
#include <libexif/exif-utils.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* libexif refuses anything larger than a JPEG APP1 payload. */
#define EXIF_BLOCK_MAX 0xfffeu

static const uint8_t exif_header[6] = {'E', 'x', 'i', 'f', 0, 0};
static const char reason_unreadable[] = "EXIF block unreadable";

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * civil-from-days algorithm, inverted): exact for every year we accept and
 * free of timegm()'s dependence on the process time zone. */
static int64_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool sbx_media_parse_exif_time(const char *s, size_t len, int64_t *ms)
{
    /* Cameras pad the field with NULs or spaces and some write '-' between
     * the date parts or 'T' before the time; the 19 characters that matter
     * are always at the start. */
    if (len < 19) return false;
    int Y, M, D, h, m, sec;
    if (!digits(s, 4, &Y) || !digits(s + 5, 2, &M) || !digits(s + 8, 2, &D) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &m) || !digits(s + 17, 2, &sec))
        return false;
    if ((s[4] != ':' && s[4] != '-') || s[7] != s[4]) return false;
    if (s[10] != ' ' && s[10] != 'T') return false;
    if (s[13] != ':' || s[16] != ':') return false;
    /* Year 0 and month 0 are how cameras without a clock say "unknown". */
    if (Y < 1800 || M < 1 || M > 12 || D < 1 || h > 23 || m > 59 || sec > 60) return false;
    static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned dim = mdays[M - 1] + (M == 2 && is_leap(Y));
    if ((unsigned)D > dim) return false;
    if (sec == 60) sec = 59; /* a leap second is still that minute */
    int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
    *ms = ((days * 24 + h) * 60 + m) * 60000LL + sec * 1000LL;
    return true;
}

bool sbx_media_parse_exif_offset(const char *s, size_t len, int *minutes)
{
    int h, m;
    if (len < 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return false;
    if (!digits(s + 1, 2, &h) || !digits(s + 4, 2, &m)) return false;
    /* Real offsets run from -12:00 to +14:00. */
    if (h > 14 || m > 59 || (h == 14 && m > 0)) return false;
    *minutes = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
    return true;
}

struct ctx {
    ExifData *ed;
    ExifByteOrder order;
    bool corrupt_logged;
};

static void log_func(ExifLog *log, ExifLogCode code, const char *domain,
                     const char *format, va_list args, void *data)
{
    (void)log;
    (void)domain;
    (void)format;
    (void)args;
    /* The text is not kept: only the fact that libexif skipped something. */
    if (code == EXIF_LOG_CODE_CORRUPT_DATA || code == EXIF_LOG_CODE_NO_MEMORY)
        ((struct ctx *)data)->corrupt_logged = true;
}

static ExifEntry *entry(struct ctx *c, int ifd, ExifTag tag)
{
    if (ifd < 0 || ifd >= EXIF_IFD_COUNT || !c->ed->ifd[ifd]) return NULL;
    ExifEntry *e = exif_content_get_entry(c->ed->ifd[ifd], tag);
    /* libexif keeps the declared size; trust only what was allocated. */
    if (!e || !e->data || e->size == 0) return NULL;
    return e;
}

/* An ASCII entry as a pointer and a length up to the first NUL. */
static bool ascii(struct ctx *c, int ifd, ExifTag tag, const char **s, size_t *n)
{
    ExifEntry *e = entry(c, ifd, tag);
    if (!e || (e->format != EXIF_FORMAT_ASCII && e->format != EXIF_FORMAT_UNDEFINED))
        return false;
    const char *p = (const char *)e->data;
    size_t len = 0;
    while (len < e->size && p[len] != '\0') len++;
    *s = p;
    *n = len;
    return true;
}

static bool uint_value(struct ctx *c, int ifd, ExifTag tag, uint32_t *v)
{
    ExifEntry *e = entry(c, ifd, tag);
    if (!e || e->components < 1) return false;
    if (e->format == EXIF_FORMAT_SHORT && e->size >= 2) {
        *v = exif_get_short(e->data, c->order);
        return true;
    }
    if (e->format == EXIF_FORMAT_LONG && e->size >= 4) {
        *v = exif_get_long(e->data, c->order);
        return true;
    }
    return false;
}

/* Degrees, minutes, seconds as three rationals. */
static bool dms(struct ctx *c, int ifd, ExifTag tag, double *deg)
{
    ExifEntry *e = entry(c, ifd, tag);
    if (!e || (e->format != EXIF_FORMAT_RATIONAL && e->format != EXIF_FORMAT_SRATIONAL) ||
        e->components < 3 || e->size < 24)
        return false;
    double part[3];
    for (int i = 0; i < 3; i++) {
        ExifRational r = exif_get_rational(e->data + 8 * i, c->order);
        /* A zero denominator is an unset field (some cameras write 0/0 for
         * seconds); only the degrees must be present. */
        if (r.denominator == 0) {
            if (i == 0) return false;
            part[i] = 0.0;
        } else {
            part[i] = (double)r.numerator / (double)r.denominator;
        }
    }
    if (e->format == EXIF_FORMAT_SRATIONAL) {
        /* Signed rationals are out of spec here; refuse negative parts rather
         * than guess what they meant. */
        for (int i = 0; i < 3; i++) {
            ExifSRational r = exif_get_srational(e->data + 8 * i, c->order);
            if (r.numerator < 0 || r.denominator < 0) return false;
        }
    }
    *deg = part[0] + part[1] / 60.0 + part[2] / 3600.0;
    return isfinite(*deg);
}

/* Copies a camera string, dropping trailing spaces and NULs and replacing
 * control and non-ASCII bytes, so the value is valid UTF-8 everywhere it
 * travels (ops, JSON, the database). */
static void copy_camera(char out[SBX_MEDIA_CAMERA_MAX], const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\0')) n--;
    size_t start = 0;
    while (start < n && s[start] == ' ') start++;
    size_t o = 0;
    for (size_t i = start; i < n && o + 1 < SBX_MEDIA_CAMERA_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    out[o] = '\0';
}

static void read_main(struct ctx *c, int ifd, struct sbx_media_info *info)
{
    const char *s;
    size_t n;
    if (!info->make[0] && ascii(c, ifd, EXIF_TAG_MAKE, &s, &n)) copy_camera(info->make, s, n);
    if (!info->model[0] && ascii(c, ifd, EXIF_TAG_MODEL, &s, &n)) copy_camera(info->model, s, n);
    uint32_t o;
    if (info->orientation <= 1 && uint_value(c, ifd, EXIF_TAG_ORIENTATION, &o) && o >= 1 && o <= 8)
        info->orientation = (uint8_t)o;
}

/* Sub-second digits are a decimal fraction: "5" is 500 ms, "054" is 54 ms. */
static int subsec_ms(const char *s, size_t n)
{
    int ms = 0, scale = 100;
    for (size_t i = 0; i < n && scale > 0; i++) {
        if (s[i] == ' ') break;
        if (s[i] < '0' || s[i] > '9') return 0;
        ms += (s[i] - '0') * scale;
        scale /= 10;
    }
    return ms;
}

static bool read_time(struct ctx *c, int ifd, ExifTag t_time, ExifTag t_offset,
                      ExifTag t_subsec, struct sbx_media_info *info)
{
    const char *s;
    size_t n;
    int64_t ms;
    if (!ascii(c, ifd, t_time, &s, &n) || !sbx_media_parse_exif_time(s, n, &ms)) return false;
    if (ascii(c, ifd, t_subsec, &s, &n)) ms += subsec_ms(s, n);
    int off = 0;
    info->has_offset = ascii(c, ifd, t_offset, &s, &n) && sbx_media_parse_exif_offset(s, n, &off);
    if (info->has_offset) {
        info->offset_min = (int16_t)off;
        ms -= (int64_t)off * 60000;
    }
    info->captured_at_ms = ms;
    info->has_captured_at = true;
    return true;
}

static void read_exif(struct ctx *c, int ifd, struct sbx_media_info *info,
                      struct sbx_exif_extra *extra)
{
    if (!info->has_captured_at &&
        !read_time(c, ifd, EXIF_TAG_DATE_TIME_ORIGINAL, EXIF_TAG_OFFSET_TIME_ORIGINAL,
                   EXIF_TAG_SUB_SEC_TIME_ORIGINAL, info))
        read_time(c, ifd, EXIF_TAG_DATE_TIME_DIGITIZED, EXIF_TAG_OFFSET_TIME_DIGITIZED,
                  EXIF_TAG_SUB_SEC_TIME_DIGITIZED, info);
    uint32_t v;
    if (extra && !extra->pixel_x && uint_value(c, ifd, EXIF_TAG_PIXEL_X_DIMENSION, &v))
        extra->pixel_x = v;
    if (extra && !extra->pixel_y && uint_value(c, ifd, EXIF_TAG_PIXEL_Y_DIMENSION, &v))
        extra->pixel_y = v;
}

static void read_gps(struct ctx *c, int ifd, struct sbx_media_info *info)
{
    if (info->has_gps) return;
    double lat, lon;
    if (!dms(c, ifd, EXIF_TAG_GPS_LATITUDE, &lat) || !dms(c, ifd, EXIF_TAG_GPS_LONGITUDE, &lon))
        return;
    const char *s;
    size_t n;
    /* A missing reference reads as north/east, as exiftool does. */
    if (ascii(c, ifd, EXIF_TAG_GPS_LATITUDE_REF, &s, &n) && n >= 1 && (s[0] == 'S' || s[0] == 's'))
        lat = -lat;
    if (ascii(c, ifd, EXIF_TAG_GPS_LONGITUDE_REF, &s, &n) && n >= 1 && (s[0] == 'W' || s[0] == 'w'))
        lon = -lon;
    if (fabs(lat) > 90.0 || fabs(lon) > 180.0) return;
    if (lat == 0.0 && lon == 0.0) return;
    info->latitude = lat;
    info->longitude = lon;
    info->has_gps = true;
}

static bool any_entries(ExifData *ed)
{
    for (int i = 0; i < EXIF_IFD_COUNT; i++)
        if (ed->ifd[i] && ed->ifd[i]->count > 0) return true;
    return false;
}

void sbx_media_exif_read(const uint8_t *blk, size_t len, enum sbx_exif_layout layout,
                         struct sbx_media_info *info, struct sbx_exif_extra *extra)
{
    struct ctx c = {0};
    ExifLog *log = NULL;
    uint8_t *copy = NULL;
    bool ok = false;

    if (len >= 6 && memcmp(blk, exif_header, 6) == 0) {
        blk += 6;
        len -= 6;
    }
    if (len < 8 || !((blk[0] == 'I' && blk[1] == 'I') || (blk[0] == 'M' && blk[1] == 'M')))
        goto fail;
    /* libexif wants the "Exif\0\0" header and the standard TIFF magic in
     * front; a copy of at most 64 KiB gives it both without touching the
     * caller's (read-only, mmapped) buffer. */
    size_t take = len < EXIF_BLOCK_MAX - 6 ? len : EXIF_BLOCK_MAX - 6;
    copy = malloc(take + 6);
    if (!copy) goto fail;
    memcpy(copy, exif_header, 6);
    memcpy(copy + 6, blk, take);
    if (blk[0] == 'I') {
        copy[8] = 0x2a;
        copy[9] = 0x00;
    } else {
        copy[8] = 0x00;
        copy[9] = 0x2a;
    }

    c.ed = exif_data_new();
    log = exif_log_new();
    if (!c.ed || !log) goto fail;
    exif_log_set_func(log, log_func, &c);
    exif_data_log(c.ed, log);
    /* FOLLOW_SPECIFICATION would "fix" the data by inventing mandatory tags,
     * among them a DateTime of now: never what a photo library wants. The
     * CR3 layouts keep their tags in IFD0, where libexif would drop them as
     * unknown unless told to keep unknown tags. */
    exif_data_unset_option(c.ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    if (layout != SBX_EXIF_STANDARD)
        exif_data_unset_option(c.ed, EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
    exif_data_load_data(c.ed, copy, (unsigned)(take + 6));
    c.order = exif_data_get_byte_order(c.ed);
    if (!any_entries(c.ed)) goto fail;

    switch (layout) {
    case SBX_EXIF_STANDARD:
        read_main(&c, EXIF_IFD_0, info);
        read_exif(&c, EXIF_IFD_EXIF, info, extra);
        read_gps(&c, EXIF_IFD_GPS, info);
        break;
    case SBX_EXIF_IFD0_ONLY:
        read_main(&c, EXIF_IFD_0, info);
        break;
    case SBX_EXIF_IFD0_IS_EXIF:
        read_exif(&c, EXIF_IFD_0, info, extra);
        break;
    case SBX_EXIF_IFD0_IS_GPS:
        read_gps(&c, EXIF_IFD_0, info);
        break;
    }
    ok = true;
fail:
    if (ok) {
        info->exif_status = 0;
        if (info->reason == reason_unreadable) info->reason = NULL;
    } else if (info->exif_status != 0) {
        /* Only when no earlier block of the same file was readable. */
        info->exif_status = SBX_ECORRUPT;
        info->reason = reason_unreadable;
    }
    if (c.ed) exif_data_unref(c.ed);
    if (log) exif_log_unref(log);
    free(copy);
}

unsigned sbx_media_orient_compose(unsigned a, unsigned b)
{
    /* Each orientation is a 2x2 matrix acting on pixel coordinates (x right,
     * y down); doing `a` then `b` is the product b*a. */
    static const int mat[9][4] = {
        {1, 0, 0, 1},   /* 0: unused, identity */
        {1, 0, 0, 1},   /* 1 */
        {-1, 0, 0, 1},  /* 2: mirror left-right */
        {-1, 0, 0, -1}, /* 3: rotate 180 */
        {1, 0, 0, -1},  /* 4: mirror top-bottom */
        {0, 1, 1, 0},   /* 5: transpose */
        {0, -1, 1, 0},  /* 6: rotate 90 clockwise */
        {0, -1, -1, 0}, /* 7: transverse */
        {0, 1, -1, 0},  /* 8: rotate 90 counter-clockwise */
    };
    if (a < 1 || a > 8) a = 1;
    if (b < 1 || b > 8) b = 1;
    const int *A = mat[a], *B = mat[b];
    int p[4] = {
        B[0] * A[0] + B[1] * A[2], B[0] * A[1] + B[1] * A[3],
        B[2] * A[0] + B[3] * A[2], B[2] * A[1] + B[3] * A[3],
    };
    for (unsigned o = 1; o <= 8; o++)
        if (memcmp(p, mat[o], sizeof p) == 0) return o;
    /* The eight orientations form a group: a product outside it is a bug. */
    sbx_assert_fail("orientation product is an orientation", __FILE__, __LINE__);
}
