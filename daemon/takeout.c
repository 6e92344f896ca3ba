/* Google Takeout knowledge: sidecar parser, matcher, layout index.
 *
 * Everything here is pure (no I/O) so it can be unit tested and fuzzed; the
 * zip reader in takeout_zip.c feeds it. The quirks handled are the ones the
 * field has documented (GooglePhotosTakeoutHelper, google-photos-exif, ente):
 * sidecars named after the media file plus ".json" or
 * ".supplemental-metadata.json", the whole name cut to 51 UTF-16 code units,
 * "(N)" duplicate counters moved behind the extension, edited copies without
 * sidecars, live photo pairs, localized folder names. */
#include "shoebox/takeout.h"

#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Small string helpers                                                      */

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool ends_with_fold(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    if (len < n) return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[len - n + i]) != lower((unsigned char)suffix[i]))
            return false;
    return true;
}

static bool eq_fold(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && ends_with_fold(a, alen, b);
}

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int cmp_fold(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = lower((unsigned char)a[i]), y = lower((unsigned char)b[i]);
        if (x != y) return x < y ? -1 : 1;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

size_t sbx_takeout_utf16_len(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t units = 0, i = 0;
    while (i < len) {
        size_t n = sbx_utf8_next(p + i, len - i);
        if (n == 0) return SIZE_MAX;
        units += n == 4 ? 2 : 1;
        i += n;
    }
    return units;
}

/* Bytes of the longest prefix of s that fits in `units` UTF-16 code units.
 * *split is set when the cut falls inside a surrogate pair (an astral
 * character that needs two units where one is left): Google's cut then
 * leaves half a character, which ends up as U+FFFD in the file name. */
static size_t utf16_prefix(const char *s, size_t len, size_t units, bool *split)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t used = 0, i = 0;
    *split = false;
    while (i < len) {
        size_t n = sbx_utf8_next(p + i, len - i);
        if (n == 0) break;
        size_t u = n == 4 ? 2 : 1;
        if (used + u > units) {
            *split = (u == 2 && used + 1 == units);
            break;
        }
        used += u;
        i += n;
    }
    return i;
}

/* ------------------------------------------------------------------------ */
/* 1. Sidecar parser                                                         */

/* Seconds between year 1 and year 9999: anything outside is not a date. */
#define TS_MIN (-62135596800LL)
#define TS_MAX 253402300799LL

static bool parse_timestamp(json_t *holder, int64_t *out)
{
    if (!json_is_object(holder)) return false;
    json_t *t = json_object_get(holder, "timestamp");
    int64_t v;
    if (json_is_integer(t)) {
        v = (int64_t)json_integer_value(t);
    } else if (json_is_real(t)) {
        double d = json_real_value(t);
        if (!isfinite(d) || d < (double)TS_MIN || d > (double)TS_MAX) return false;
        v = (int64_t)d;
    } else if (json_is_string(t)) {
        /* Google writes the epoch seconds as a string of digits. */
        const char *s = json_string_value(t);
        size_t len = json_string_length(t), i = 0;
        bool neg = false;
        if (len && s[0] == '-') { neg = true; i = 1; }
        if (i == len || len - i > 15) return false;
        v = 0;
        for (; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') return false;
            v = v * 10 + (s[i] - '0');
        }
        if (neg) v = -v;
    } else {
        return false;
    }
    if (v < TS_MIN || v > TS_MAX) return false;
    *out = v;
    return true;
}

/* Google writes 0,0 for "no position": it is unknown, not the Gulf of Guinea. */
static bool parse_geo(json_t *g, double *lat, double *lon)
{
    if (!json_is_object(g)) return false;
    json_t *la = json_object_get(g, "latitude"), *lo = json_object_get(g, "longitude");
    if (!json_is_number(la) || !json_is_number(lo)) return false;
    double a = json_number_value(la), o = json_number_value(lo);
    if (!isfinite(a) || !isfinite(o) || fabs(a) > 90.0 || fabs(o) > 180.0) return false;
    if (a == 0.0 && o == 0.0) return false;
    *lat = a;
    *lon = o;
    return true;
}

/* Copies a JSON string, cut at a character boundary below SBX_MAX_STR so it
 * fits the ops that will carry it. Empty strings become NULL. */
static int copy_str(json_t *v, char **out, bool *truncated)
{
    *out = NULL;
    if (!json_is_string(v)) return 0;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0) return 0;
    if (len > SBX_MAX_STR - 1) {
        len = SBX_MAX_STR - 1;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) len--;
        *truncated = true;
    }
    /* jansson accepts \u0000 only with JSON_ALLOW_NUL, which is not set, so
     * the string has no interior NUL. */
    char *c = malloc(len + 1);
    if (!c) return SBX_ENOMEM;
    memcpy(c, s, len);
    c[len] = '\0';
    *out = c;
    return 0;
}

void sbx_takeout_sidecar_clear(struct sbx_takeout_sidecar *sc)
{
    if (!sc) return;
    free(sc->title);
    free(sc->description);
    memset(sc, 0, sizeof *sc);
}

int sbx_takeout_sidecar_parse(struct sbx_takeout_sidecar *out, const uint8_t *json,
                              size_t len)
{
    int rc = 0;
    json_t *root = NULL;
    memset(out, 0, sizeof *out);
    out->kind = SBX_TAKEOUT_JSON_INVALID;
    if (len > SBX_MAX_SIDECAR_BYTES) return SBX_ETOOBIG;
    if (!json && len) return SBX_EINVAL;

    json_error_t err;
    root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(root)) {
        rc = SBX_EMALFORMED;
        goto fail;
    }

    json_t *taken = json_object_get(root, "photoTakenTime");
    json_t *album = json_object_get(root, "albumData");
    json_t *title = json_object_get(root, "title");
    json_t *desc = json_object_get(root, "description");
    /* Album metadata holds title, description, access and date; a media
     * sidecar always has imageViews and creationTime too. A sidecar that
     * lost its photoTakenTime is still a sidecar: taking it for album
     * metadata would rename the album and orphan a photo. */
    if (json_is_object(taken) || json_object_get(root, "imageViews") ||
        json_is_object(json_object_get(root, "creationTime"))) {
        out->kind = SBX_TAKEOUT_JSON_MEDIA;
    } else if (json_is_string(title)) {
        out->kind = SBX_TAKEOUT_JSON_ALBUM;
    } else if (json_is_object(album) && json_is_string(json_object_get(album, "title"))) {
        /* Takeouts before 2020 wrapped album metadata in "albumData". */
        out->kind = SBX_TAKEOUT_JSON_ALBUM;
        title = json_object_get(album, "title");
        desc = json_object_get(album, "description");
    } else {
        out->kind = SBX_TAKEOUT_JSON_OTHER;
    }

    if ((rc = copy_str(title, &out->title, &out->truncated)) < 0) goto fail;
    if ((rc = copy_str(desc, &out->description, &out->truncated)) < 0) goto fail;
    out->has_taken = parse_timestamp(taken, &out->taken);
    out->has_created = parse_timestamp(json_object_get(root, "creationTime"), &out->created);
    if (parse_geo(json_object_get(root, "geoData"), &out->latitude, &out->longitude)) {
        out->has_geo = true;
    } else if (parse_geo(json_object_get(root, "geoDataExif"), &out->latitude,
                         &out->longitude)) {
        out->has_geo = true;
        out->geo_from_exif = true;
    }
    out->favorited = json_is_true(json_object_get(root, "favorited"));
    out->archived = json_is_true(json_object_get(root, "archived"));
    out->trashed = json_is_true(json_object_get(root, "trashed"));
    json_decref(root);
    return 0;

fail:
    json_decref(root);
    free(out->title);
    free(out->description);
    out->title = out->description = NULL;
    out->kind = SBX_TAKEOUT_JSON_INVALID;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* 2. Matcher                                                                */

/* Suffixes Google Photos adds to an edited copy, per interface language
 * (lower case, NFC), gathered by GooglePhotosTakeoutHelper's users, plus the
 * automatic creations that are variants of one original. */
static const char *const edited_suffixes[] = {
    "-edited",      "-effects",       "-smile",         "-mix",
    "-edytowane",   "-bearbeitet",    "-bewerkt",       "-\xe7\xb7\xa8\xe9\x9b\x86\xe6\xb8\x88\xe3\x81\xbf", /* ja 編集済み */
    "-modificato",  "-modifi\xc3\xa9", "-ha editado",   "-editado",
    "-editada",     "-editat",        "-\xd0\xbe\xd1\x82\xd1\x80\xd0\xb5\xd0\xb4\xd0\xb0\xd0\xba\xd1\x82\xd0\xb8\xd1\x80\xd0\xbe\xd0\xb2\xd0\xb0\xd0\xbd\xd0\xbe", /* ru отредактировано */
    "-\xe5\xb7\xb2\xe7\xbc\x96\xe8\xbe\x91", /* zh 已编辑 */
    "-\xe7\xbc\x96\xe8\xbe\x91",             /* zh 编辑 */
    "-\xed\x8e\xb8\xec\xa7\x91\xeb\x90\xa8", /* ko 편집됨 */
    "-d\xc3\xbczenlendi",                    /* tr */
    "-diedit",                               /* id */
};

/* Splits a base name: ext_off is the offset of the last '.' when what
 * follows looks like an extension (1-8 ASCII letters/digits), else len;
 * base_len is the stem without a trailing "(N)" counter, dup_off/dup_len
 * locate that counter (dup_len 0 when none). */
struct split {
    size_t len, ext_off, base_len, dup_off, dup_len;
};

static void split_name(const char *s, size_t len, struct split *o)
{
    o->len = len;
    o->ext_off = len;
    for (size_t i = len; i > 1; i--) {
        if (s[i - 1] != '.') continue;
        size_t n = len - i;
        bool ok = n >= 1 && n <= 8;
        for (size_t k = i; ok && k < len; k++) {
            unsigned char c = (unsigned char)s[k];
            ok = (c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z');
        }
        if (ok) o->ext_off = i - 1;
        break;
    }
    size_t stem = o->ext_off;
    o->base_len = stem;
    o->dup_off = stem;
    o->dup_len = 0;
    if (stem >= 4 && s[stem - 1] == ')') {
        size_t k = stem - 1, digits = 0;
        while (k > 0 && s[k - 1] >= '0' && s[k - 1] <= '9' && digits < 10) { k--; digits++; }
        if (digits >= 1 && digits <= 9 && k >= 2 && s[k - 1] == '(') {
            o->dup_off = k - 1;
            o->dup_len = stem - (k - 1);
            o->base_len = k - 1;
        }
    }
}

int sbx_takeout_edited_original(const char *name, char *out, size_t out_size)
{
    size_t len = strlen(name);
    struct split sp;
    split_name(name, len, &sp);
    for (size_t i = 0; i < SBX_ARRAY_LEN(edited_suffixes); i++) {
        size_t sl = strlen(edited_suffixes[i]);
        if (sp.base_len <= sl || !ends_with_fold(name, sp.base_len, edited_suffixes[i]))
            continue;
        /* The original keeps the counter and the extension. */
        size_t keep = sp.base_len - sl, tail = len - sp.dup_off;
        if (keep + tail + 1 > out_size) return SBX_ETOOBIG;
        memcpy(out, name, keep);
        memcpy(out + keep, name + sp.dup_off, tail);
        out[keep + tail] = '\0';
        return 0;
    }
    return SBX_ENOENT;
}

/* One name in a sorted lookup array. `tie` (a file name, or NULL) breaks
 * ties between equal keys, so that the order, and thus which file wins,
 * depends on names and never on the input order; idx only separates equal
 * names (duplicates). */
struct nm {
    const char *s;
    size_t len;
    size_t idx;
    const char *tie;
};

static int nm_cmp(const void *a, const void *b)
{
    const struct nm *x = a, *y = b;
    int c = cmp_bytes(x->s, x->len, y->s, y->len);
    if (c) return c;
    if (x->tie && y->tie && (c = strcmp(x->tie, y->tie)) != 0) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int nm_cmp_fold(const void *a, const void *b)
{
    const struct nm *x = a, *y = b;
    int c = cmp_fold(x->s, x->len, y->s, y->len);
    if (c) return c;
    c = cmp_bytes(x->s, x->len, y->s, y->len);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* First element not less than key (by bytes, or ASCII-folded). */
static size_t lower_bound(const struct nm *a, size_t n, const char *key, size_t klen,
                          bool fold)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = fold ? cmp_fold(a[mid].s, a[mid].len, key, klen)
                     : cmp_bytes(a[mid].s, a[mid].len, key, klen);
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Equal ranges are scanned at most this far: names are unique per folder, so
 * only ASCII-folded or title lookups see more than one, and a bound keeps a
 * hostile folder from making the matcher quadratic. */
#define SCAN_MAX 64u
/* Longest candidate: name + ".supplemental-metadata" + U+FFFD + "(N)" + ".json". */
#define CAND_MAX (SBX_MAX_TAKEOUT_NAME + 64u)

static const char SUPP[] = ".supplemental-metadata";
#define SUPP_LEN (sizeof SUPP - 1)
/* Google cuts a sidecar name to 51 UTF-16 units including ".json". */
#define CUT_UNITS 46u

struct mctx {
    struct sbx_takeout_file *f;
    size_t n;
    struct nm *sc, *scf, *md, *mdf, *titles;
    size_t nsc, nmd, ntitles;
    /* When set, lookups accept only sidecars whose parsed title is this. */
    const char *want_title;
    size_t want_len;
};

static size_t lookup(struct mctx *c, const char *name, size_t len, bool fold)
{
    const struct nm *a = fold ? c->scf : c->sc;
    size_t i = lower_bound(a, c->nsc, name, len, fold);
    for (size_t k = 0; k < SCAN_MAX && i + k < c->nsc; k++) {
        const struct nm *e = &a[i + k];
        int cmp = fold ? cmp_fold(e->s, e->len, name, len) : cmp_bytes(e->s, e->len, name, len);
        if (cmp != 0) break;
        if (c->f[e->idx].users != 0) continue;
        if (c->want_title) {
            const char *t = c->f[e->idx].title;
            if (!t || strlen(t) != c->want_len || memcmp(t, c->want_title, c->want_len) != 0)
                continue;
        }
        return e->idx;
    }
    return SBX_TAKEOUT_NONE;
}

static size_t lookup_parts(struct mctx *c, const char *a, size_t alen, const char *b,
                           size_t blen, const char *d, size_t dlen, bool fold)
{
    char cand[CAND_MAX];
    if (alen + blen + dlen + 5 > sizeof cand) return SBX_TAKEOUT_NONE;
    memcpy(cand, a, alen);
    memcpy(cand + alen, b, blen);
    memcpy(cand + alen + blen, d, dlen);
    memcpy(cand + alen + blen + dlen, ".json", 5);
    return lookup(c, cand, alen + blen + dlen + 5, fold);
}

/* Tries the sidecar names Google may have written for a media file whose
 * name is t[0..tlen) and whose duplicate counter is d ("(1)" or ""):
 *   t + d + ".json"                                old Takeouts
 *   t + ".supplemental-metadata" + d + ".json"     Takeouts since 2024
 * With `cut`, only those names cut to 46 UTF-16 units before d + ".json"
 * (Google's 51-unit limit; tried with and without counting the counter in
 * the limit, as exports differ, and with U+FFFD where the cut split a
 * surrogate pair); without, only the uncut names. */
static size_t try_target(struct mctx *c, const char *t, size_t tlen, const char *d,
                         size_t dlen, bool fold, bool cut)
{
    char key[CAND_MAX];
    if (tlen + SUPP_LEN > sizeof key) return SBX_TAKEOUT_NONE;
    for (int s = 0; s < 2; s++) {
        size_t klen = tlen, r;
        memcpy(key, t, tlen);
        if (s) {
            memcpy(key + tlen, SUPP, SUPP_LEN);
            klen += SUPP_LEN;
        }
        if (!cut) {
            r = lookup_parts(c, key, klen, "", 0, d, dlen, fold);
            if (r != SBX_TAKEOUT_NONE) return r;
            continue;
        }
        size_t units = sbx_takeout_utf16_len(key, klen);
        if (units == SIZE_MAX) continue;
        size_t limits[2] = {CUT_UNITS, CUT_UNITS - dlen};
        for (int l = 0; l < (dlen ? 2 : 1); l++) {
            if (units <= limits[l]) continue;
            bool split;
            size_t p = utf16_prefix(key, klen, limits[l], &split);
            r = lookup_parts(c, key, p, "", 0, d, dlen, fold);
            if (r == SBX_TAKEOUT_NONE && split)
                r = lookup_parts(c, key, p, "\xef\xbf\xbd", 3, d, dlen, fold);
            if (r != SBX_TAKEOUT_NONE) return r;
        }
    }
    return SBX_TAKEOUT_NONE;
}

/* Stages of name matching, safest first: the name as is, then the counter
 * moved behind the extension ("image(1).jpg" -> "image.jpg(1).json"), then
 * both again with cut names whose parsed title confirms the file, then with
 * any cut name. Every media file goes through a stage before any goes
 * through the next, so a cut name never takes an exact match, and two long
 * names cut alike go to the files their titles name. */
#define NAME_STAGES 6

static size_t try_name(struct mctx *c, const char *name, size_t len, bool fold,
                       int stage, uint8_t *how)
{
    bool cut = stage >= 2, titled = stage == 2 || stage == 3;
    size_t r;
    if (stage % 2 == 0) {
        *how = SBX_TAKEOUT_HOW_DIRECT;
        if (titled) { c->want_title = name; c->want_len = len; }
        r = try_target(c, name, len, "", 0, fold, cut);
        c->want_title = NULL;
        return r;
    }
    struct split sp;
    split_name(name, len, &sp);
    if (!sp.dup_len) return SBX_TAKEOUT_NONE;
    char orig[CAND_MAX];
    size_t ext = len - sp.ext_off;
    if (sp.base_len + ext > sizeof orig) return SBX_TAKEOUT_NONE;
    memcpy(orig, name, sp.base_len);
    memcpy(orig + sp.base_len, name + sp.ext_off, ext);
    *how = SBX_TAKEOUT_HOW_DUP;
    if (titled) { c->want_title = orig; c->want_len = sp.base_len + ext; }
    r = try_target(c, orig, sp.base_len + ext, name + sp.dup_off, sp.dup_len, fold, cut);
    c->want_title = NULL;
    return r;
}

/* All stages for one name (used where a single name is looked up). */
static size_t try_name_all(struct mctx *c, const char *name, size_t len, bool fold,
                           uint8_t *how)
{
    for (int stage = 0; stage < NAME_STAGES; stage++) {
        size_t r = try_name(c, name, len, fold, stage, how);
        if (r != SBX_TAKEOUT_NONE) return r;
    }
    return SBX_TAKEOUT_NONE;
}

static void claim(struct mctx *c, size_t m, size_t s, uint8_t how)
{
    SBX_ASSERT(c->f[s].role == SBX_TAKEOUT_ROLE_SIDECAR && c->f[s].users == 0);
    c->f[m].sidecar = s;
    c->f[m].how = how;
    c->f[s].users = 1;
}

bool sbx_takeout_is_json_name(const char *s, size_t len)
{
    return len > 5 && ends_with_fold(s, len, ".json");
}

static bool is_ignored_name(const char *s, size_t len)
{
    return len == 0 || s[0] == '.' || ends_with_fold(s, len, ".html") ||
           ends_with_fold(s, len, ".htm") || eq_fold(s, len, "thumbs.db") ||
           eq_fold(s, len, "desktop.ini");
}

/* Extension of a name as a rank: live photo stills, then videos. */
enum { EXT_OTHER = 0, EXT_HEIC, EXT_HEIF, EXT_JPG, EXT_JPEG, EXT_VIDEO, EXT_MP };

static int ext_class(const char *s, size_t len, const struct split *sp)
{
    if (sp->ext_off == len) return EXT_OTHER;
    const char *e = s + sp->ext_off;
    size_t n = len - sp->ext_off;
    if (eq_fold(e, n, ".heic")) return EXT_HEIC;
    if (eq_fold(e, n, ".heif")) return EXT_HEIF;
    if (eq_fold(e, n, ".jpg")) return EXT_JPG;
    if (eq_fold(e, n, ".jpeg")) return EXT_JPEG;
    if (eq_fold(e, n, ".mp4") || eq_fold(e, n, ".mov") || eq_fold(e, n, ".m4v"))
        return EXT_VIDEO;
    if (eq_fold(e, n, ".mp") || eq_fold(e, n, ".mv")) return EXT_MP;
    return EXT_OTHER;
}

/* Live photos: IMG_1.HEIC + IMG_1.MP4 (or .MOV), and Pixel's X.MP.jpg + X.MP.
 * The still is keyed by its stem; a video by its stem, and a .MP/.MV video
 * also by its whole name. Among stills with one key, HEIC wins over HEIF
 * over JPG over JPEG, then the smaller name. */
static int link_live(struct mctx *c)
{
    struct nm *stills = malloc((c->nmd ? c->nmd : 1) * sizeof *stills);
    if (!stills) return SBX_ENOMEM;
    size_t ns = 0;
    for (size_t k = 0; k < c->nmd; k++) {
        const struct nm *m = &c->md[k];
        struct split sp;
        split_name(m->s, m->len, &sp);
        int ec = ext_class(m->s, m->len, &sp);
        if (ec >= EXT_HEIC && ec <= EXT_JPEG)
            stills[ns++] = (struct nm){m->s, sp.ext_off, m->idx, m->s};
    }
    qsort(stills, ns, sizeof *stills, nm_cmp);
    for (size_t k = 0; k < c->nmd; k++) {
        const struct nm *m = &c->md[k];
        struct split sp;
        split_name(m->s, m->len, &sp);
        int ec = ext_class(m->s, m->len, &sp);
        if (ec != EXT_VIDEO && ec != EXT_MP) continue;
        size_t keys[2] = {ec == EXT_MP ? m->len : sp.ext_off, sp.ext_off};
        for (int q = 0; q < (ec == EXT_MP ? 2 : 1) && c->f[m->idx].live_of == SBX_TAKEOUT_NONE; q++) {
            size_t i = lower_bound(stills, ns, m->s, keys[q], false);
            size_t best = SBX_TAKEOUT_NONE;
            int best_rank = 99;
            for (size_t j = 0; j < SCAN_MAX && i + j < ns; j++) {
                const struct nm *s = &stills[i + j];
                if (cmp_bytes(s->s, s->len, m->s, keys[q]) != 0) break;
                const char *full = c->f[s->idx].name;
                size_t flen = strlen(full);
                struct split ssp;
                split_name(full, flen, &ssp);
                int rank = ext_class(full, flen, &ssp);
                if (rank < best_rank) { best_rank = rank; best = s->idx; }
            }
            c->f[m->idx].live_of = best;
        }
    }
    free(stills);
    return 0;
}

static bool stem_is_motion(const char *s, size_t len, const struct split *sp)
{
    int ec = ext_class(s, len, sp);
    if (ec < EXT_HEIC || ec > EXT_JPEG) return false;
    return ends_with_fold(s, sp->ext_off, ".mp") || ends_with_fold(s, sp->ext_off, ".mv") ||
           (len >= 6 && memcmp(s, "MVIMG_", 6) == 0);
}

static bool unlinked_unmatched(const struct sbx_takeout_file *f)
{
    return f->sidecar == SBX_TAKEOUT_NONE && f->live_of == SBX_TAKEOUT_NONE &&
           f->edited_of == SBX_TAKEOUT_NONE;
}

/* Two long names that share their first 46 units get one sidecar each:
 * "prefix.json" and "prefix(1).json". The second media file finds its
 * sidecar by that prefix and any counter. */
static size_t try_collision(struct mctx *c, const char *name, size_t len)
{
    char key[CAND_MAX];
    if (len + SUPP_LEN + 1 > sizeof key) return SBX_TAKEOUT_NONE;
    for (int s = 0; s < 2; s++) {
        size_t klen = len;
        memcpy(key, name, len);
        if (s) { memcpy(key + len, SUPP, SUPP_LEN); klen += SUPP_LEN; }
        size_t units = sbx_takeout_utf16_len(key, klen);
        if (units == SIZE_MAX || units <= CUT_UNITS) continue;
        bool split;
        size_t p = utf16_prefix(key, klen, CUT_UNITS, &split);
        key[p] = '(';
        size_t i = lower_bound(c->sc, c->nsc, key, p + 1, false);
        for (size_t j = 0; j < SCAN_MAX && i + j < c->nsc; j++) {
            const struct nm *e = &c->sc[i + j];
            if (e->len < p + 1 || memcmp(e->s, key, p + 1) != 0) break;
            /* The rest must be digits + ").json". */
            size_t q = p + 1, digits = 0;
            while (q < e->len && e->s[q] >= '0' && e->s[q] <= '9') { q++; digits++; }
            if (digits == 0 || e->len - q != 6 || memcmp(e->s + q, ").json", 6) != 0) continue;
            if (c->f[e->idx].users == 0) return e->idx;
        }
    }
    return SBX_TAKEOUT_NONE;
}

static size_t find_media(struct mctx *c, const char *name, size_t len)
{
    size_t i = lower_bound(c->md, c->nmd, name, len, false);
    if (i < c->nmd && cmp_bytes(c->md[i].s, c->md[i].len, name, len) == 0) return c->md[i].idx;
    i = lower_bound(c->mdf, c->nmd, name, len, true);
    if (i < c->nmd && cmp_fold(c->mdf[i].s, c->mdf[i].len, name, len) == 0) return c->mdf[i].idx;
    return SBX_TAKEOUT_NONE;
}

static void run_tiers(struct mctx *c)
{
    struct sbx_takeout_file *f = c->f;
    uint8_t how = 0;

    /* Direct names and (N) counters, for every media file before any looser
     * rule runs. */
    for (int stage = 0; stage < NAME_STAGES; stage++) {
        for (size_t k = 0; k < c->nmd; k++) {
            size_t m = c->md[k].idx;
            if (f[m].sidecar != SBX_TAKEOUT_NONE) continue;
            size_t r = try_name(c, c->md[k].s, c->md[k].len, false, stage, &how);
            if (r != SBX_TAKEOUT_NONE) claim(c, m, r, how);
        }
    }

    /* Edited copies: link to the original in the folder; when the original
     * is missing, look for the original's sidecar by name. */
    for (size_t k = 0; k < c->nmd; k++) {
        size_t m = c->md[k].idx;
        char orig[SBX_MAX_TAKEOUT_NAME + 1];
        if (sbx_takeout_edited_original(f[m].name, orig, sizeof orig) != 0) continue;
        size_t olen = strlen(orig);
        size_t o = find_media(c, orig, olen);
        if (o != SBX_TAKEOUT_NONE && o != m) {
            f[m].edited_of = o;
        } else if (f[m].sidecar == SBX_TAKEOUT_NONE) {
            size_t r = try_name_all(c, orig, olen, false, &how);
            if (r != SBX_TAKEOUT_NONE) claim(c, m, r, SBX_TAKEOUT_HOW_EDITED);
        }
    }

    /* Looser rules, only for media that will not share a sidecar. */
    for (size_t k = 0; k < c->nmd; k++) {
        size_t m = c->md[k].idx;
        if (!unlinked_unmatched(&f[m])) continue;
        struct split sp;
        split_name(c->md[k].s, c->md[k].len, &sp);
        if (sp.ext_off == sp.len) continue;
        /* Uploaded without an extension, Google added one to the file but
         * not to the sidecar: "image.jpg" <- "image.json". */
        size_t r = SBX_TAKEOUT_NONE;
        for (int cut = 0; cut < 2 && r == SBX_TAKEOUT_NONE; cut++) {
            r = try_target(c, c->md[k].s, sp.ext_off, "", 0, false, cut);
            if (r == SBX_TAKEOUT_NONE && sp.dup_len)
                r = try_target(c, c->md[k].s, sp.base_len, c->md[k].s + sp.dup_off,
                               sp.dup_len, false, cut);
        }
        if (r != SBX_TAKEOUT_NONE) claim(c, m, r, SBX_TAKEOUT_HOW_NO_EXT);
    }
    for (int stage = 0; stage < NAME_STAGES; stage++) {
        for (size_t k = 0; k < c->nmd; k++) {
            size_t m = c->md[k].idx;
            if (!unlinked_unmatched(&f[m])) continue;
            size_t r = try_name(c, c->md[k].s, c->md[k].len, true, stage, &how);
            if (r != SBX_TAKEOUT_NONE) claim(c, m, r, SBX_TAKEOUT_HOW_CASE);
        }
    }
    /* The sidecar's title is the name the file was uploaded with. */
    c->ntitles = 0;
    for (size_t k = 0; k < c->nsc; k++) {
        size_t s = c->sc[k].idx;
        if (f[s].users == 0 && f[s].title && f[s].title[0])
            c->titles[c->ntitles++] = (struct nm){f[s].title, strlen(f[s].title), s, f[s].name};
    }
    qsort(c->titles, c->ntitles, sizeof *c->titles, nm_cmp);
    for (size_t k = 0; k < c->nmd && c->ntitles; k++) {
        size_t m = c->md[k].idx;
        if (!unlinked_unmatched(&f[m])) continue;
        size_t i = lower_bound(c->titles, c->ntitles, c->md[k].s, c->md[k].len, false);
        for (size_t j = 0; j < SCAN_MAX && i + j < c->ntitles; j++) {
            const struct nm *t = &c->titles[i + j];
            if (cmp_bytes(t->s, t->len, c->md[k].s, c->md[k].len) != 0) break;
            if (f[t->idx].users == 0) {
                claim(c, m, t->idx, SBX_TAKEOUT_HOW_TITLE);
                break;
            }
        }
    }
    for (size_t k = 0; k < c->nmd; k++) {
        size_t m = c->md[k].idx;
        if (!unlinked_unmatched(&f[m])) continue;
        size_t r = try_collision(c, c->md[k].s, c->md[k].len);
        if (r != SBX_TAKEOUT_NONE) claim(c, m, r, SBX_TAKEOUT_HOW_COLLISION);
    }

    /* Sharing: a live video without its own sidecar takes its still's, an
     * edited copy its original's. An original may itself share (an edited
     * copy of an edited copy), so repeat a few times; chains are short. */
    for (int pass = 0; pass < 4; pass++) {
        bool changed = false;
        for (size_t k = 0; k < c->nmd; k++) {
            size_t m = c->md[k].idx;
            if (f[m].sidecar != SBX_TAKEOUT_NONE) continue;
            size_t t = f[m].live_of != SBX_TAKEOUT_NONE ? f[m].live_of : f[m].edited_of;
            if (t == SBX_TAKEOUT_NONE || f[t].sidecar == SBX_TAKEOUT_NONE) continue;
            f[m].sidecar = f[t].sidecar;
            f[m].how = f[m].live_of != SBX_TAKEOUT_NONE ? SBX_TAKEOUT_HOW_LIVE
                                                         : SBX_TAKEOUT_HOW_EDITED;
            f[f[m].sidecar].users++;
            changed = true;
        }
        if (!changed) break;
    }
}

int sbx_takeout_match(struct sbx_takeout_file *files, size_t n)
{
    int rc = 0;
    struct mctx c = {.f = files, .n = n};
    struct nm *all = NULL;
    if (n > SBX_MAX_TAKEOUT_ENTRIES) return SBX_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        if (!files[i].name) return SBX_EINVAL;
        if (strlen(files[i].name) > SBX_MAX_TAKEOUT_NAME) return SBX_ETOOBIG;
        files[i].role = 0;
        files[i].sidecar = files[i].live_of = files[i].edited_of = SBX_TAKEOUT_NONE;
        files[i].users = 0;
        files[i].how = SBX_TAKEOUT_HOW_NONE;
        files[i].motion = false;
    }
    if (n == 0) return 0;

    size_t bytes = n * sizeof(struct nm);
    all = malloc(bytes);
    c.sc = malloc(bytes);
    c.scf = malloc(bytes);
    c.md = malloc(bytes);
    c.mdf = malloc(bytes);
    c.titles = malloc(bytes);
    if (!all || !c.sc || !c.scf || !c.md || !c.mdf || !c.titles) {
        rc = SBX_ENOMEM;
        goto fail;
    }

    /* Sorting first makes the result independent of the input order; the
     * second of two equal names is a duplicate (the same path in two parts). */
    for (size_t i = 0; i < n; i++) all[i] = (struct nm){files[i].name, strlen(files[i].name), i, NULL};
    qsort(all, n, sizeof *all, nm_cmp);
    for (size_t k = 0; k < n; k++) {
        struct sbx_takeout_file *f = &files[all[k].idx];
        const char *s = all[k].s;
        size_t len = all[k].len;
        if (k > 0 && cmp_bytes(all[k - 1].s, all[k - 1].len, s, len) == 0) {
            f->role = SBX_TAKEOUT_ROLE_DUPLICATE;
        } else if (sbx_takeout_is_json_name(s, len)) {
            if (f->json_kind == SBX_TAKEOUT_JSON_ALBUM) f->role = SBX_TAKEOUT_ROLE_ALBUM_META;
            else if (f->json_kind == SBX_TAKEOUT_JSON_OTHER) f->role = SBX_TAKEOUT_ROLE_OTHER_JSON;
            else f->role = SBX_TAKEOUT_ROLE_SIDECAR;
        } else if (is_ignored_name(s, len)) {
            f->role = SBX_TAKEOUT_ROLE_IGNORED;
        } else {
            f->role = SBX_TAKEOUT_ROLE_MEDIA;
            struct split sp;
            split_name(s, len, &sp);
            f->motion = stem_is_motion(s, len, &sp);
        }
        if (f->role == SBX_TAKEOUT_ROLE_SIDECAR) c.sc[c.nsc++] = all[k];
        if (f->role == SBX_TAKEOUT_ROLE_MEDIA) c.md[c.nmd++] = all[k];
    }
    memcpy(c.scf, c.sc, c.nsc * sizeof *c.sc);
    qsort(c.scf, c.nsc, sizeof *c.scf, nm_cmp_fold);
    memcpy(c.mdf, c.md, c.nmd * sizeof *c.md);
    qsort(c.mdf, c.nmd, sizeof *c.mdf, nm_cmp_fold);

    if ((rc = link_live(&c)) < 0) goto fail;
    run_tiers(&c);

fail:
    free(all);
    free(c.sc);
    free(c.scf);
    free(c.md);
    free(c.mdf);
    free(c.titles);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Year folders                                                              */

bool sbx_takeout_is_year_folder(const char *name)
{
    size_t len = strlen(name);
    /* Find the last run of ASCII digits. */
    size_t end = len;
    while (end > 0 && !(name[end - 1] >= '0' && name[end - 1] <= '9')) end--;
    if (end == 0) return false;
    size_t start = end;
    while (start > 0 && name[start - 1] >= '0' && name[start - 1] <= '9') start--;
    if (end - start != 4) return false;
    int year = atoi(name + start);
    if (year < 1800 || year > 2199) return false;
    /* What follows the year is at most a short word: " r." (Polish), "年的照片"
     * (Chinese); "Summer 2019 in Italy" is an album. */
    size_t tail = len - end, letters = 0;
    if (tail > 16) return false;
    for (size_t i = end; i < len; i++)
        if (lower((unsigned char)name[i]) >= 'a' && lower((unsigned char)name[i]) <= 'z') letters++;
    return letters <= 2;
}

/* ------------------------------------------------------------------------ */
/* 3. Index                                                                  */

struct ientry {
    char *path;
    size_t dir_len;       /* bytes before the last '/', 0 at the top */
    size_t base_off;      /* offset of the base name */
    uint64_t size;
    uint32_t part;
    size_t seq;           /* order of addition, for stable sorting */
    struct sbx_takeout_sidecar *sc;
    int json_kind;
    int role;             /* 0 outside the root */
    uint8_t how;
    bool motion;
    size_t folder, sidecar, live_of, edited_of;
    uint32_t users;
};

struct ifolder {
    char *path;
    const char *name;
    size_t first, count;  /* range of entries */
    int kind;
    const char *title;
    const char *meta_path;
    size_t media;
};

struct sbx_takeout_index {
    struct ientry *e;
    size_t n, cap;
    struct ifolder *folders;
    size_t nfolders;
    char *root;
    bool has_root;
    size_t *media, nmedia;
    size_t *orphans, norphans;
    struct sbx_takeout_stats st;
    bool finished;
};

int sbx_takeout_index_new(sbx_takeout_index **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : SBX_ENOMEM;
}

void sbx_takeout_index_free(sbx_takeout_index *ix)
{
    if (!ix) return;
    for (size_t i = 0; i < ix->n; i++) {
        free(ix->e[i].path);
        if (ix->e[i].sc) {
            sbx_takeout_sidecar_clear(ix->e[i].sc);
            free(ix->e[i].sc);
        }
    }
    for (size_t i = 0; i < ix->nfolders; i++) free(ix->folders[i].path);
    free(ix->e);
    free(ix->folders);
    free(ix->root);
    free(ix->media);
    free(ix->orphans);
    free(ix);
}

/* A path inside an archive is used as a key and later as a file name, so it
 * must be relative, UTF-8, free of control characters and "." / ".." parts. */
int sbx_takeout_check_path(const char *path, size_t len)
{
    if (len == 0) return SBX_EMALFORMED;
    if (len > SBX_MAX_TAKEOUT_PATH) return SBX_ETOOBIG;
    if (sbx_takeout_utf16_len(path, len) == SIZE_MAX) return SBX_EMALFORMED;
    size_t comp = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && (unsigned char)path[i] < 0x20) return SBX_EMALFORMED;
        if (i < len && path[i] != '/') continue;
        size_t clen = i - comp;
        if (clen == 0) return SBX_EMALFORMED;
        if (clen > SBX_MAX_TAKEOUT_NAME) return SBX_ETOOBIG;
        if ((clen == 1 && path[comp] == '.') ||
            (clen == 2 && path[comp] == '.' && path[comp + 1] == '.'))
            return SBX_EMALFORMED;
        comp = i + 1;
    }
    return 0;
}

int sbx_takeout_index_add(sbx_takeout_index *ix, const char *path, uint64_t size,
                          uint32_t part, const uint8_t *json, size_t json_len)
{
    int rc;
    struct sbx_takeout_sidecar *sc = NULL;
    char *copy = NULL;
    if (ix->finished) return SBX_ESTATE;
    size_t len = strlen(path);
    if ((rc = sbx_takeout_check_path(path, len)) < 0) return rc;
    if (ix->n >= SBX_MAX_TAKEOUT_ENTRIES) return SBX_ETOOBIG;
    if (ix->n == ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 256;
        struct ientry *e = realloc(ix->e, cap * sizeof *e);
        if (!e) return SBX_ENOMEM;
        ix->e = e;
        ix->cap = cap;
    }
    copy = malloc(len + 1);
    if (!copy) return SBX_ENOMEM;
    memcpy(copy, path, len + 1);

    int kind = SBX_TAKEOUT_JSON_UNKNOWN;
    if (sbx_takeout_is_json_name(path, len)) {
        if (json) {
            sc = malloc(sizeof *sc);
            if (!sc) { rc = SBX_ENOMEM; goto fail; }
            rc = sbx_takeout_sidecar_parse(sc, json, json_len);
            if (rc == SBX_ENOMEM) goto fail;
            if (rc < 0) {
                free(sc);
                sc = NULL;
                kind = SBX_TAKEOUT_JSON_INVALID;
                ix->st.bad_json++;
            } else {
                kind = sc->kind;
            }
        } else {
            /* The reader passes no bytes for a JSON above the size limit. */
            ix->st.bad_json++;
        }
    }

    const char *slash = strrchr(copy, '/');
    struct ientry *e = &ix->e[ix->n];
    memset(e, 0, sizeof *e);
    e->path = copy;
    e->dir_len = slash ? (size_t)(slash - copy) : 0;
    e->base_off = slash ? (size_t)(slash - copy) + 1 : 0;
    e->size = size;
    e->part = part;
    e->seq = ix->n;
    e->sc = sc;
    e->json_kind = kind;
    e->folder = e->sidecar = e->live_of = e->edited_of = SBX_TAKEOUT_NONE;
    ix->n++;
    ix->st.entries++;
    return 0;

fail:
    free(sc);
    free(copy);
    return rc;
}

static int cmp_dir_base(const char *ap, size_t adir, size_t abase, const char *bp,
                        size_t bdir, size_t bbase)
{
    int c = cmp_bytes(ap, adir, bp, bdir);
    if (c) return c;
    return strcmp(ap + abase, bp + bbase);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct ientry *x = a, *y = b;
    int c = cmp_dir_base(x->path, x->dir_len, x->base_off, y->path, y->dir_len, y->base_off);
    if (c) return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct score {
    const char *s;
    size_t len;
    size_t score;
};

static int score_cmp(const void *a, const void *b)
{
    const struct score *x = a, *y = b;
    return cmp_bytes(x->s, x->len, y->s, y->len);
}

/* The Google Photos root is the folder whose subfolders hold media files
 * next to JSON files; its name is localized ("Google Photos", "Zdjęcia
 * Google", "Google Fotos"), so it is found by content. Each such subfolder
 * votes for its parent with its number of JSON files; ties go to the
 * shallower, then the smaller path. */
static int find_root(sbx_takeout_index *ix)
{
    struct score *sc = malloc((ix->n ? ix->n : 1) * sizeof *sc);
    if (!sc) return SBX_ENOMEM;
    size_t ns = 0;
    for (size_t i = 0; i < ix->n;) {
        size_t j = i, json = 0, media = 0;
        while (j < ix->n && cmp_bytes(ix->e[j].path, ix->e[j].dir_len, ix->e[i].path,
                                      ix->e[i].dir_len) == 0) {
            const char *b = ix->e[j].path + ix->e[j].base_off;
            size_t bl = strlen(b);
            if (sbx_takeout_is_json_name(b, bl)) {
                if (ix->e[j].json_kind != SBX_TAKEOUT_JSON_OTHER) json++;
            } else if (!is_ignored_name(b, bl)) {
                media++;
            }
            j++;
        }
        if (json && media && ix->e[i].dir_len > 0) {
            const char *d = ix->e[i].path;
            size_t pl = ix->e[i].dir_len;
            while (pl > 0 && d[pl - 1] != '/') pl--;
            sc[ns++] = (struct score){d, pl ? pl - 1 : 0, json};
        }
        i = j;
    }
    qsort(sc, ns, sizeof *sc, score_cmp);
    const struct score *best = NULL;
    size_t best_score = 0, best_depth = 0;
    for (size_t i = 0; i < ns;) {
        size_t j = i, total = 0;
        while (j < ns && score_cmp(&sc[j], &sc[i]) == 0) total += sc[j++].score;
        size_t depth = 0;
        for (size_t k = 0; k < sc[i].len; k++) depth += sc[i].s[k] == '/';
        if (sc[i].len) depth++;
        if (!best || total > best_score || (total == best_score && depth < best_depth)) {
            best = &sc[i];
            best_score = total;
            best_depth = depth;
        }
        i = j;
    }
    int rc = 0;
    if (best) {
        ix->root = malloc(best->len + 1);
        if (!ix->root) {
            rc = SBX_ENOMEM;
        } else {
            memcpy(ix->root, best->s, best->len);
            ix->root[best->len] = '\0';
            ix->has_root = true;
        }
    }
    free(sc);
    return rc;
}

static bool under_root(const sbx_takeout_index *ix, const char *dir, size_t dlen)
{
    if (!ix->has_root) return false;
    size_t rl = strlen(ix->root);
    if (rl == 0) return true;
    if (dlen < rl || memcmp(dir, ix->root, rl) != 0) return false;
    return dlen == rl || dir[rl] == '/';
}

static int classify_folder(sbx_takeout_index *ix, struct ifolder *fo, bool is_root)
{
    size_t album_meta = SBX_TAKEOUT_NONE, media = 0, trashed = 0, archived = 0;
    for (size_t i = fo->first; i < fo->first + fo->count; i++) {
        const struct ientry *e = &ix->e[i];
        if (e->role == SBX_TAKEOUT_ROLE_ALBUM_META) {
            ix->st.album_meta++;
            /* Entries are in name order: the first titled one wins, else
             * the first one (an untitled album keeps its folder name). */
            if (album_meta == SBX_TAKEOUT_NONE ||
                (!ix->e[album_meta].sc->title && e->sc->title))
                album_meta = i;
        }
        if (e->role != SBX_TAKEOUT_ROLE_MEDIA) continue;
        media++;
        const struct ientry *s = e->sidecar != SBX_TAKEOUT_NONE ? &ix->e[e->sidecar] : NULL;
        if (s && s->sc && s->sc->trashed) trashed++;
        if (s && s->sc && s->sc->archived) archived++;
    }
    fo->media = media;
    if (is_root) {
        fo->kind = SBX_TAKEOUT_FOLDER_ROOT;
    } else if (album_meta != SBX_TAKEOUT_NONE) {
        fo->kind = SBX_TAKEOUT_FOLDER_ALBUM;
        fo->title = ix->e[album_meta].sc->title ? ix->e[album_meta].sc->title : fo->name;
        fo->meta_path = ix->e[album_meta].path;
    } else if (sbx_takeout_is_year_folder(fo->name)) {
        fo->kind = SBX_TAKEOUT_FOLDER_YEAR;
    } else if (media && trashed == media) {
        fo->kind = SBX_TAKEOUT_FOLDER_TRASH;
    } else if (media && archived == media) {
        fo->kind = SBX_TAKEOUT_FOLDER_ARCHIVE;
    } else {
        /* Old Takeouts have albums without metadata: the folder name is
         * the album title. */
        fo->kind = SBX_TAKEOUT_FOLDER_ALBUM;
        fo->title = fo->name;
    }
    switch (fo->kind) {
    case SBX_TAKEOUT_FOLDER_YEAR: ix->st.year_folders++; break;
    case SBX_TAKEOUT_FOLDER_ALBUM: ix->st.albums++; break;
    case SBX_TAKEOUT_FOLDER_TRASH:
    case SBX_TAKEOUT_FOLDER_ARCHIVE: ix->st.special_folders++; break;
    default: break;
    }
    return 0;
}

static int match_folder(sbx_takeout_index *ix, struct ifolder *fo,
                        struct sbx_takeout_file *files)
{
    for (size_t k = 0; k < fo->count; k++) {
        const struct ientry *e = &ix->e[fo->first + k];
        files[k] = (struct sbx_takeout_file){
            .name = e->path + e->base_off,
            .json_kind = e->json_kind,
            .title = e->sc ? e->sc->title : NULL,
        };
    }
    int rc = sbx_takeout_match(files, fo->count);
    if (rc < 0) return rc;
    for (size_t k = 0; k < fo->count; k++) {
        struct ientry *e = &ix->e[fo->first + k];
        const struct sbx_takeout_file *f = &files[k];
        e->role = f->role;
        e->how = f->how;
        e->motion = f->motion;
        e->users = f->users;
        e->folder = (size_t)(fo - ix->folders);
        e->sidecar = f->sidecar == SBX_TAKEOUT_NONE ? f->sidecar : fo->first + f->sidecar;
        e->live_of = f->live_of == SBX_TAKEOUT_NONE ? f->live_of : fo->first + f->live_of;
        e->edited_of = f->edited_of == SBX_TAKEOUT_NONE ? f->edited_of : fo->first + f->edited_of;
    }
    return 0;
}

int sbx_takeout_index_finish(sbx_takeout_index *ix)
{
    int rc = 0;
    struct sbx_takeout_file *files = NULL;
    if (ix->finished) return SBX_ESTATE;
    ix->finished = true;
    if (ix->n) qsort(ix->e, ix->n, sizeof *ix->e, entry_cmp);
    if ((rc = find_root(ix)) < 0) goto fail;

    /* Folders: runs of one directory under the root. */
    size_t maxrun = 0;
    ix->folders = calloc(ix->n ? ix->n : 1, sizeof *ix->folders);
    if (!ix->folders) { rc = SBX_ENOMEM; goto fail; }
    for (size_t i = 0; i < ix->n;) {
        size_t j = i;
        while (j < ix->n && cmp_bytes(ix->e[j].path, ix->e[j].dir_len, ix->e[i].path,
                                      ix->e[i].dir_len) == 0)
            j++;
        if (under_root(ix, ix->e[i].path, ix->e[i].dir_len)) {
            struct ifolder *fo = &ix->folders[ix->nfolders];
            size_t dl = ix->e[i].dir_len;
            fo->path = malloc(dl + 1);
            if (!fo->path) { rc = SBX_ENOMEM; goto fail; }
            memcpy(fo->path, ix->e[i].path, dl);
            fo->path[dl] = '\0';
            const char *slash = strrchr(fo->path, '/');
            fo->name = slash ? slash + 1 : fo->path;
            fo->first = i;
            fo->count = j - i;
            ix->nfolders++;
            if (j - i > maxrun) maxrun = j - i;
        } else {
            ix->st.outside_root += j - i;
        }
        i = j;
    }

    files = malloc((maxrun ? maxrun : 1) * sizeof *files);
    ix->media = malloc((ix->n ? ix->n : 1) * sizeof *ix->media);
    ix->orphans = malloc((ix->n ? ix->n : 1) * sizeof *ix->orphans);
    if (!files || !ix->media || !ix->orphans) { rc = SBX_ENOMEM; goto fail; }
    for (size_t f = 0; f < ix->nfolders; f++) {
        struct ifolder *fo = &ix->folders[f];
        if ((rc = match_folder(ix, fo, files)) < 0) goto fail;
        bool is_root = strlen(fo->path) == strlen(ix->root);
        if ((rc = classify_folder(ix, fo, is_root)) < 0) goto fail;
        for (size_t i = fo->first; i < fo->first + fo->count; i++) {
            const struct ientry *e = &ix->e[i];
            switch (e->role) {
            case SBX_TAKEOUT_ROLE_MEDIA:
                ix->media[ix->nmedia++] = i;
                ix->st.media++;
                if (e->sidecar != SBX_TAKEOUT_NONE) ix->st.matched_media++;
                else ix->st.unmatched_media++;
                if (e->live_of != SBX_TAKEOUT_NONE) ix->st.live_pairs++;
                if (e->edited_of != SBX_TAKEOUT_NONE) ix->st.edited++;
                break;
            case SBX_TAKEOUT_ROLE_SIDECAR:
                ix->st.sidecars++;
                if (e->users == 0) ix->orphans[ix->norphans++] = i;
                break;
            case SBX_TAKEOUT_ROLE_DUPLICATE: ix->st.duplicates++; break;
            default: break;
            }
        }
    }
    ix->st.orphan_sidecars = ix->norphans;

fail:
    free(files);
    return rc;
}

const char *sbx_takeout_index_root(const sbx_takeout_index *ix)
{
    return ix->has_root ? ix->root : NULL;
}

size_t sbx_takeout_index_folder_count(const sbx_takeout_index *ix)
{
    return ix->nfolders;
}

int sbx_takeout_index_folder(const sbx_takeout_index *ix, size_t i,
                             struct sbx_takeout_folder *out)
{
    if (i >= ix->nfolders) return SBX_ENOENT;
    const struct ifolder *fo = &ix->folders[i];
    *out = (struct sbx_takeout_folder){
        .path = fo->path, .name = fo->name, .kind = fo->kind,
        .title = fo->title, .meta_path = fo->meta_path, .media = fo->media,
    };
    return 0;
}

size_t sbx_takeout_index_media_count(const sbx_takeout_index *ix)
{
    return ix->nmedia;
}

static void fill_media(const sbx_takeout_index *ix, size_t i, struct sbx_takeout_media *out)
{
    const struct ientry *e = &ix->e[i];
    const struct ientry *s = e->sidecar != SBX_TAKEOUT_NONE ? &ix->e[e->sidecar] : NULL;
    *out = (struct sbx_takeout_media){
        .path = e->path,
        .name = e->path + e->base_off,
        .size = e->size,
        .part = e->part,
        .folder = e->folder,
        .sidecar = s ? s->sc : NULL,
        .sidecar_path = s ? s->path : NULL,
        .how = e->how,
        .live_of = e->live_of != SBX_TAKEOUT_NONE ? ix->e[e->live_of].path : NULL,
        .edited_of = e->edited_of != SBX_TAKEOUT_NONE ? ix->e[e->edited_of].path : NULL,
        .motion = e->motion,
    };
}

int sbx_takeout_index_media(const sbx_takeout_index *ix, size_t i,
                            struct sbx_takeout_media *out)
{
    if (i >= ix->nmedia) return SBX_ENOENT;
    fill_media(ix, ix->media[i], out);
    return 0;
}

/* Binary search for `path` in a list of entry indices kept in the index's
 * own order (folder first, then base name: entry_cmp without the seq). The
 * entry index found, or SIZE_MAX. */
static size_t search_sorted(const sbx_takeout_index *ix, const size_t *list, size_t n, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 0, bo = slash ? dl + 1 : 0;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct ientry *e = &ix->e[list[mid]];
        int c = cmp_dir_base(e->path, e->dir_len, e->base_off, path, dl, bo);
        if (c == 0) return list[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return SIZE_MAX;
}

int sbx_takeout_index_find(const sbx_takeout_index *ix, const char *path,
                           struct sbx_takeout_media *out)
{
    size_t i = search_sorted(ix, ix->media, ix->nmedia, path);
    if (i == SIZE_MAX) return SBX_ENOENT;
    fill_media(ix, i, out);
    return 0;
}

size_t sbx_takeout_index_orphan_count(const sbx_takeout_index *ix)
{
    return ix->norphans;
}

const char *sbx_takeout_index_orphan(const sbx_takeout_index *ix, size_t i)
{
    return i < ix->norphans ? ix->e[ix->orphans[i]].path : NULL;
}

bool sbx_takeout_index_is_orphan(const sbx_takeout_index *ix, const char *path)
{
    return search_sorted(ix, ix->orphans, ix->norphans, path) != SIZE_MAX;
}

void sbx_takeout_index_stats(const sbx_takeout_index *ix, struct sbx_takeout_stats *out)
{
    *out = ix->st;
}
