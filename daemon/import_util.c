/* Pure helpers of the importer (see shoebox/import.h). */
#include "shoebox/import.h"
#include "shoebox/util.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

size_t sbx_import_clean_text(char *out, size_t cap, const char *in, size_t len)
{
    static const char repl[] = "\xEF\xBF\xBD"; /* U+FFFD */
    if (cap == 0) return 0;
    const uint8_t *s = (const uint8_t *)(in ? in : "");
    if (!in) len = 0;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = sbx_utf8_next(s + i, len - i);
        const char *src = (const char *)s + i;
        size_t outn = n;
        if (n == 0 || (n == 1 && (s[i] < 0x20 || s[i] == 0x7F))) {
            /* One replacement per bad byte: the reader sees where it was. */
            src = repl;
            outn = 3;
            n = 1;
        }
        if (o + outn > cap - 1) break;
        memcpy(out + o, src, outn);
        o += outn;
        i += n;
    }
    out[o] = '\0';
    return o;
}

static bool lat_lon_ok(double lat, double lon)
{
    /* False for NaN; the bounds also exclude infinities. */
    return lat >= -90.0 && lat <= 90.0 && lon >= -180.0 && lon <= 180.0;
}

void sbx_import_decide(const struct sbx_import_sources *in, struct sbx_import_decision *out)
{
    memset(out, 0, sizeof *out);
    const struct sbx_takeout_sidecar *sc = in->sidecar;
    const struct sbx_media_info *info = in->info;

    if (sc && sc->has_taken && sc->taken != 0) {
        out->has_captured_at = true;
        out->captured_at_ms = sc->taken * 1000;
        out->time_source = SBX_IMPORT_TIME_SIDECAR;
    } else if (info && info->has_captured_at) {
        out->has_captured_at = true;
        out->captured_at_ms = info->captured_at_ms;
        out->time_source = SBX_IMPORT_TIME_EXIF;
    } else if (in->has_mtime) {
        out->has_captured_at = true;
        out->captured_at_ms = in->mtime_ms;
        out->time_source = SBX_IMPORT_TIME_FILE;
    }

    if (sc && sc->has_geo && lat_lon_ok(sc->latitude, sc->longitude)) {
        out->has_location = true;
        out->lat = sc->latitude;
        out->lon = sc->longitude;
        out->location_from_sidecar = true;
    } else if (info && info->has_gps && lat_lon_ok(info->latitude, info->longitude)) {
        out->has_location = true;
        out->lat = info->latitude;
        out->lon = info->longitude;
    }

    /* An edited copy and a live photo's video use their original's sidecar,
     * whose title is the original's name, not theirs. */
    bool own_sidecar = sc && in->how != SBX_TAKEOUT_HOW_EDITED && in->how != SBX_TAKEOUT_HOW_LIVE;
    out->file_name = own_sidecar && sc->title && sc->title[0] ? sc->title : in->base_name;
    if (sc) {
        out->favorite = sc->favorited;
        out->archived = sc->archived;
        out->trashed = sc->trashed;
        out->description = sc->description && sc->description[0] ? sc->description : NULL;
    }
}

void sbx_import_album_id(const uint8_t library[16], const char *folder, size_t folder_len,
                         uint8_t out[16])
{
    static const char domain[] = "shoebox/takeout-album";
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    crypto_generichash_update(&st, (const uint8_t *)domain, sizeof domain - 1);
    crypto_generichash_update(&st, library, 16);
    crypto_generichash_update(&st, (const uint8_t *)folder, folder_len);
    crypto_generichash_final(&st, out, 16);
}

/* "812 B", "4.1 MB", "1.2 GB": decimal units, as disks and rates are sold. */
static void fmt_bytes(char *out, size_t cap, int64_t v)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    double x = (double)(v < 0 ? 0 : v);
    size_t u = 0;
    while (x >= 1000.0 && u + 1 < sizeof units / sizeof units[0]) {
        x /= 1000.0;
        u++;
    }
    if (u == 0) snprintf(out, cap, "%lld B", (long long)(v < 0 ? 0 : v));
    else snprintf(out, cap, "%.1f %s", x, units[u]);
}

static void fmt_duration(char *out, size_t cap, int64_t s)
{
    if (s >= 100 * 3600) snprintf(out, cap, ">99h");
    else if (s >= 3600) snprintf(out, cap, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
    else snprintf(out, cap, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
}

static int64_t nonneg(int64_t v) { return v < 0 ? 0 : v; }

size_t sbx_import_progress_line(char *out, size_t cap, const struct sbx_import_progress *in,
                                unsigned width)
{
    if (cap == 0) return 0;
    /* The figures come from another process: negative ones count as 0. */
    struct sbx_import_progress q = {
        nonneg(in->files_done), nonneg(in->files_total), nonneg(in->bytes_done),
        nonneg(in->bytes_total), nonneg(in->rate_bytes), nonneg(in->rate_ms),
    };
    const struct sbx_import_progress *p = &q;
    char done[24], total[24], rate[24] = "", eta[24] = "--:--", files_total[24] = "?";
    double frac = -1.0;
    if (p->bytes_total > 0) frac = (double)p->bytes_done / (double)p->bytes_total;
    else if (p->files_total > 0) frac = (double)p->files_done / (double)p->files_total;
    if (frac > 1.0) frac = 1.0;
    fmt_bytes(done, sizeof done, p->bytes_done);
    if (p->bytes_total > 0) fmt_bytes(total, sizeof total, p->bytes_total);
    else snprintf(total, sizeof total, "?");
    if (p->files_total > 0) snprintf(files_total, sizeof files_total, "%lld", (long long)p->files_total);
    if (p->rate_ms > 0 && p->rate_bytes > 0) {
        double r = (double)p->rate_bytes * 1000.0 / (double)p->rate_ms;
        int64_t per_s = r < 9e18 ? (int64_t)r : INT64_MAX;
        fmt_bytes(rate, sizeof rate, per_s);
        strncat(rate, "/s", sizeof rate - strlen(rate) - 1);
        if (p->bytes_total > p->bytes_done && per_s > 0) {
            double secs = ceil((double)(p->bytes_total - p->bytes_done) / (double)per_s);
            fmt_duration(eta, sizeof eta, secs < 1e9 ? (int64_t)secs : (int64_t)1e9);
        } else if (p->bytes_total > 0) {
            fmt_duration(eta, sizeof eta, 0);
        }
    }
    char pct[8] = "  ?%";
    if (frac >= 0.0) snprintf(pct, sizeof pct, "%3d%%", (int)(frac * 100.0));
    char tail[192];
    int tn = snprintf(tail, sizeof tail, " %s  %lld/%s files  %s/%s  %s%sETA %s", pct, (long long)p->files_done,
                      files_total, done, total, rate, rate[0] ? "  " : "", eta);
    if (tn < 0) tn = 0;
    if ((size_t)tn >= sizeof tail) tn = (int)sizeof tail - 1;
    size_t o = 0;
    /* The bar takes what the figures leave, if that is a useful width. */
    /* Sized as if the figures took at least 60 columns, so the bar keeps
     * its width while they grow and shrink. */
    int bar = (int)width - (tn > 60 ? tn : 60) - 2;
    if (bar > 40) bar = 40;
    if (bar >= 10 && cap > (size_t)bar + 3) {
        int fill = frac >= 0.0 ? (int)(frac * bar) : 0;
        out[o++] = '[';
        for (int i = 0; i < bar; i++) out[o++] = i < fill ? '=' : (i == fill && frac >= 0.0 ? '>' : ' ');
        out[o++] = ']';
    }
    size_t room = cap - 1 - o;
    size_t n = (size_t)tn;
    if (width > 0 && o + n > width) n = width > o ? width - o : 0;
    if (n > room) n = room;
    memcpy(out + o, tail, n);
    o += n;
    out[o] = '\0';
    return o;
}
