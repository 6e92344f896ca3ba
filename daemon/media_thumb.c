/* JPEG renditions (thumbnail, medium) of photos.
 *
 * JPEG input is decoded by libjpeg-turbo straight at a reduced size (DCT
 * scaling: the decoder skips the high frequencies it would throw away), then
 * area-averaged to the exact size, turned upright and encoded. HEIF goes
 * through libheif, which decodes at full size and applies its own rotation.
 * Memory stays bounded: the pixel count is checked against
 * SBX_MAX_IMAGE_PIXELS before any decoder allocates. */
#include "media_internal.h"

#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <libheif/heif.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* An RGB image, 3 bytes a pixel. */
struct image {
    const uint8_t *px;
    uint32_t w, h;
    size_t stride;
};

/* The exact size of a rendition: the longest side brought down to max_px,
 * the other rounded, never below 1 and never upscaled. */
static void target_size(uint32_t w, uint32_t h, unsigned max_px, uint32_t *tw, uint32_t *th)
{
    uint32_t longest = w > h ? w : h;
    if (longest <= max_px) {
        *tw = w;
        *th = h;
        return;
    }
    double s = (double)max_px / (double)longest;
    *tw = w >= h ? max_px : (uint32_t)lround((double)w * s);
    *th = h > w ? max_px : (uint32_t)lround((double)h * s);
    if (*tw < 1) *tw = 1;
    if (*th < 1) *th = 1;
}

/* Area-filter taps along one axis: output i covers source [i*r, (i+1)*r)
 * with r = n_src / n_dst >= 1, and each source pixel weighs its overlap. */
struct taps {
    uint32_t *first, *count;
    float *w;
    unsigned max;
};

static void taps_free(struct taps *t)
{
    free(t->first);
    free(t->count);
    free(t->w);
}

static int taps_make(struct taps *t, uint32_t n_src, uint32_t n_dst)
{
    double r = (double)n_src / (double)n_dst;
    t->max = (unsigned)ceil(r) + 2;
    t->first = calloc(n_dst, sizeof *t->first);
    t->count = calloc(n_dst, sizeof *t->count);
    t->w = calloc((size_t)n_dst * t->max, sizeof *t->w);
    if (!t->first || !t->count || !t->w) {
        taps_free(t);
        return SBX_ENOMEM;
    }
    for (uint32_t i = 0; i < n_dst; i++) {
        double lo = i * r, hi = (i + 1) * r;
        if (hi > n_src) hi = n_src;
        uint32_t a = (uint32_t)floor(lo);
        unsigned n = 0;
        for (uint32_t s = a; s < n_src && s < hi && n < t->max; s++) {
            double l = s > lo ? s : lo, h = s + 1.0 < hi ? s + 1.0 : hi;
            if (h > l) t->w[(size_t)i * t->max + n++] = (float)((h - l) / r);
        }
        t->first[i] = a;
        t->count[i] = n;
    }
    return 0;
}

/* Downscales src into dst (tightly packed, dw*dh*3) with an area filter: the
 * right filter for large reductions (no aliasing, no ringing), and cheap. */
static int resample(const struct image *src, uint8_t *dst, uint32_t dw, uint32_t dh)
{
    struct taps tx = {0}, ty = {0};
    float *row = NULL, *acc = NULL;
    int rc = SBX_ENOMEM;
    if (src->w == dw && src->h == dh) {
        for (uint32_t y = 0; y < dh; y++) memcpy(dst + (size_t)y * dw * 3, src->px + y * src->stride, (size_t)dw * 3);
        return 0;
    }
    SBX_ASSERT(dw <= src->w && dh <= src->h);
    if (taps_make(&tx, src->w, dw) != 0 || taps_make(&ty, src->h, dh) != 0) goto fail;
    row = malloc((size_t)dw * 3 * sizeof *row);
    acc = malloc((size_t)dw * 3 * sizeof *acc);
    if (!row || !acc) goto fail;
    for (uint32_t y = 0; y < dh; y++) {
        memset(acc, 0, (size_t)dw * 3 * sizeof *acc);
        for (unsigned k = 0; k < ty.count[y]; k++) {
            const uint8_t *s = src->px + (size_t)(ty.first[y] + k) * src->stride;
            float wy = ty.w[(size_t)y * ty.max + k];
            for (uint32_t x = 0; x < dw; x++) {
                const uint8_t *p = s + (size_t)tx.first[x] * 3;
                const float *w = tx.w + (size_t)x * tx.max;
                float r = 0, g = 0, b = 0;
                for (unsigned j = 0; j < tx.count[x]; j++, p += 3) {
                    r += w[j] * p[0];
                    g += w[j] * p[1];
                    b += w[j] * p[2];
                }
                row[3 * x] = r;
                row[3 * x + 1] = g;
                row[3 * x + 2] = b;
            }
            for (size_t i = 0; i < (size_t)dw * 3; i++) acc[i] += wy * row[i];
        }
        uint8_t *d = dst + (size_t)y * dw * 3;
        for (size_t i = 0; i < (size_t)dw * 3; i++) {
            float v = acc[i] + 0.5f;
            d[i] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
        }
    }
    rc = 0;
fail:
    free(row);
    free(acc);
    taps_free(&tx);
    taps_free(&ty);
    return rc;
}

/* Writes src (w x h) turned by EXIF orientation o into dst, whose size is
 * h x w for orientations 5..8. For each destination pixel it names the
 * source pixel, so every case is one line. */
static void orient(const uint8_t *src, uint32_t w, uint32_t h, unsigned o, uint8_t *dst)
{
    bool swap = sbx_media_orient_swaps(o);
    uint32_t ow = swap ? h : w, oh = swap ? w : h;
    for (uint32_t dy = 0; dy < oh; dy++) {
        for (uint32_t dx = 0; dx < ow; dx++) {
            uint32_t sx, sy;
            switch (o) {
            case 2: sx = w - 1 - dx; sy = dy; break;
            case 3: sx = w - 1 - dx; sy = h - 1 - dy; break;
            case 4: sx = dx; sy = h - 1 - dy; break;
            case 5: sx = dy; sy = dx; break;
            case 6: sx = dy; sy = h - 1 - dx; break;
            case 7: sx = w - 1 - dy; sy = h - 1 - dx; break;
            case 8: sx = w - 1 - dy; sy = dx; break;
            default: sx = dx; sy = dy; break;
            }
            memcpy(dst + ((size_t)dy * ow + dx) * 3, src + ((size_t)sy * w + sx) * 3, 3);
        }
    }
}

/* Makes one rendition of `src`: resampled to tw x th, turned upright by
 * orientation o, encoded. The resampled (not yet turned) pixels are handed
 * back in *small so the next, smaller rendition can start from them. */
static int rendition(const struct image *src, uint32_t tw, uint32_t th, unsigned o, int quality,
                     uint8_t **out, size_t *out_len, uint8_t **small_out)
{
    uint8_t *small = NULL, *upright = NULL, *jpeg = NULL;
    tjhandle tj = NULL;
    int rc = SBX_ENOMEM;
    small = malloc((size_t)tw * th * 3);
    if (!small) goto fail;
    rc = resample(src, small, tw, th);
    if (rc) goto fail;
    const uint8_t *px = small;
    uint32_t ow = tw, oh = th;
    if (o >= 2 && o <= 8) {
        rc = SBX_ENOMEM;
        upright = malloc((size_t)tw * th * 3);
        if (!upright) goto fail;
        orient(small, tw, th, o, upright);
        px = upright;
        if (sbx_media_orient_swaps(o)) {
            ow = th;
            oh = tw;
        }
    }
    rc = SBX_ENOMEM;
    tj = tjInitCompress();
    if (!tj) goto fail;
    unsigned long cap = tjBufSize((int)ow, (int)oh, TJSAMP_420);
    if (cap == (unsigned long)-1) goto fail;
    jpeg = malloc(cap);
    if (!jpeg) goto fail;
    unsigned long n = cap;
    /* NOREALLOC: the buffer is ours (malloc), sized for the worst case. */
    if (tjCompress2(tj, px, (int)ow, 0, (int)oh, TJPF_RGB, &jpeg, &n, TJSAMP_420, quality,
                    TJFLAG_NOREALLOC) != 0) {
        rc = SBX_EIO;
        goto fail;
    }
    uint8_t *shrunk = realloc(jpeg, n);
    *out = shrunk ? shrunk : jpeg;
    *out_len = n;
    *small_out = small;
    jpeg = NULL;
    small = NULL;
    rc = 0;
fail:
    if (tj) tjDestroy(tj);
    free(jpeg);
    free(small);
    free(upright);
    return rc;
}

/* CMYK JPEGs (Photoshop's) hold inverted ink values: R = C*K/255 etc. */
static void cmyk_to_rgb(uint8_t *px, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = px + 4 * i;
        uint8_t *d = px + 3 * i;
        unsigned c = s[0], m = s[1], y = s[2], k = s[3];
        d[0] = (uint8_t)((c * k + 127) / 255);
        d[1] = (uint8_t)((m * k + 127) / 255);
        d[2] = (uint8_t)((y * k + 127) / 255);
    }
}

/* A decoded photo, at least as large as the largest rendition asked for. */
struct decoded {
    struct image img;
    uint32_t full_w, full_h; /* size of the whole photo, before any scaling */
    unsigned orientation;    /* still to apply */
    uint8_t *own;            /* pixels from libjpeg-turbo */
    struct heif_context *ctx;
    struct heif_image_handle *handle;
    struct heif_image *himg; /* pixels from libheif */
};

static void decoded_free(struct decoded *d)
{
    free(d->own);
    if (d->himg) heif_image_release(d->himg);
    if (d->handle) heif_image_handle_release(d->handle);
    if (d->ctx) heif_context_free(d->ctx);
}

static int decode_jpeg(const uint8_t *buf, size_t len, const struct sbx_media_info *info,
                       unsigned max_px, struct decoded *d)
{
    tjhandle tj = tjInitDecompress();
    int rc = SBX_ENOMEM, w, h, subsamp, cs;
    if (!tj) goto fail;
    rc = SBX_ECORRUPT;
    if (len > (unsigned long)-1 ||
        tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &subsamp, &cs) != 0)
        goto fail;
    rc = SBX_ETOOBIG;
    if (w <= 0 || h <= 0 || (uint64_t)w * (uint64_t)h > SBX_MAX_IMAGE_PIXELS) goto fail;

    /* The smallest DCT scaling whose longest side still reaches max_px, so
     * the area filter always has at least as many pixels as it outputs. */
    int nsf = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&nsf);
    tjscalingfactor best = {1, 1};
    int longest = w > h ? w : h, best_long = longest;
    for (int i = 0; sf && i < nsf && longest > (int)max_px; i++) {
        if (sf[i].num > sf[i].denom) continue;
        int l = TJSCALED(longest, sf[i]);
        if (l >= (int)max_px && l < best_long) {
            best = sf[i];
            best_long = l;
        }
    }
    int sw = TJSCALED(w, best), sh = TJSCALED(h, best);
    bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    rc = SBX_ENOMEM;
    d->own = malloc((size_t)sw * (size_t)sh * (cmyk ? 4 : 3));
    if (!d->own) goto fail;
    /* LIMITSCANS stops progressive files built to make the decoder loop over
     * thousands of scans. Warnings (a truncated file, a bad Huffman code)
     * still leave a full image, the damaged part grey: that is shown
     * rather than nothing. */
    if (tjDecompress2(tj, buf, (unsigned long)len, d->own, sw, 0, sh, cmyk ? TJPF_CMYK : TJPF_RGB,
                      TJFLAG_LIMITSCANS) != 0 &&
        tjGetErrorCode(tj) != TJERR_WARNING) {
        rc = SBX_ECORRUPT;
        goto fail;
    }
    if (cmyk) cmyk_to_rgb(d->own, (size_t)sw * (size_t)sh);
    d->img = (struct image){.px = d->own, .w = (uint32_t)sw, .h = (uint32_t)sh, .stride = (size_t)sw * 3};
    d->full_w = (uint32_t)w;
    d->full_h = (uint32_t)h;
    d->orientation = info->orientation;
    rc = 0;
fail:
    if (tj) tjDestroy(tj);
    return rc;
}

static int decode_heif(const uint8_t *buf, size_t len, const struct sbx_media_info *info,
                       struct decoded *d)
{
    /* The decoder allocates the stored size (ispe), whatever the crop. */
    if ((uint64_t)info->width * info->height > SBX_MAX_IMAGE_PIXELS) return SBX_ETOOBIG;
    d->ctx = heif_context_alloc();
    if (!d->ctx) return SBX_ENOMEM;
    /* Tiles are decoded on the calling thread: the importer already runs
     * one file per core, and extra threads per file did not pay here. */
    heif_context_set_max_decoding_threads(d->ctx, 0);
    if (heif_context_read_from_memory_without_copy(d->ctx, buf, len, NULL).code != heif_error_Ok ||
        heif_context_get_primary_image_handle(d->ctx, &d->handle).code != heif_error_Ok)
        return SBX_ECORRUPT;
    int iw = heif_image_handle_get_ispe_width(d->handle);
    int ih = heif_image_handle_get_ispe_height(d->handle);
    if (iw <= 0 || ih <= 0 || (uint64_t)iw * (uint64_t)ih > SBX_MAX_IMAGE_PIXELS) return SBX_ETOOBIG;
    struct heif_error e = heif_decode_image(d->handle, &d->himg, heif_colorspace_RGB,
                                            heif_chroma_interleaved_RGB, NULL);
    if (e.code == heif_error_Unsupported_feature || e.code == heif_error_Unsupported_filetype)
        return SBX_EUNSUPPORTED;
    if (e.code != heif_error_Ok) return SBX_ECORRUPT;
    int stride = 0;
    const uint8_t *px = heif_image_get_plane_readonly(d->himg, heif_channel_interleaved, &stride);
    int dw = heif_image_get_width(d->himg, heif_channel_interleaved);
    int dh = heif_image_get_height(d->himg, heif_channel_interleaved);
    if (!px || dw <= 0 || dh <= 0 || stride < dw * 3) return SBX_ECORRUPT;
    d->img = (struct image){.px = px, .w = (uint32_t)dw, .h = (uint32_t)dh, .stride = (size_t)stride};
    d->full_w = (uint32_t)dw;
    d->full_h = (uint32_t)dh;
    d->orientation = 1; /* libheif has applied irot, imir and clap */
    return 0;
}

bool sbx_media_can_render(const char *mime)
{
    static const char *const types[] = {"image/jpeg", "image/heic", "image/heif", "image/avif"};
    for (size_t i = 0; mime && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(mime, types[i]) == 0) return true;
    return false;
}

int sbx_media_render_sizes(const uint8_t *buf, size_t len, const unsigned *max_px, size_t n,
                           int quality, uint8_t **jpeg_out, size_t *jpeg_len)
{
    if (!buf || !max_px || !jpeg_out || !jpeg_len || n == 0 || n > SBX_MEDIA_MAX_SIZES ||
        quality < 1 || quality > 100)
        return SBX_EINVAL;
    unsigned largest = 0;
    for (size_t i = 0; i < n; i++) {
        if (max_px[i] == 0 || max_px[i] > 65535) return SBX_EINVAL;
        if (max_px[i] > largest) largest = max_px[i];
        jpeg_out[i] = NULL;
        jpeg_len[i] = 0;
    }
    struct sbx_media_info info;
    struct decoded d = {0};
    uint8_t *prev = NULL;
    int rc = sbx_media_probe(buf, len, &info);
    if (!info.mime) return SBX_EUNSUPPORTED;
    if (strcmp(info.mime, "image/jpeg") == 0) {
        /* A JPEG cut short in its image data still renders; one whose
         * headers are damaged does not. */
        if (rc != 0 && info.width == 0) return rc;
        if ((uint64_t)info.width * info.height > SBX_MAX_IMAGE_PIXELS) return SBX_ETOOBIG;
        rc = decode_jpeg(buf, len, &info, largest, &d);
    } else if (strcmp(info.mime, "image/heic") == 0 || strcmp(info.mime, "image/heif") == 0 ||
               strcmp(info.mime, "image/avif") == 0) {
        if (rc == 0) rc = decode_heif(buf, len, &info, &d);
    } else {
        return SBX_EUNSUPPORTED;
    }
    if (rc) goto fail;

    /* Largest first; each smaller rendition is area-filtered from the one
     * before it, which costs a fraction of filtering the decoded image. */
    size_t order[SBX_MEDIA_MAX_SIZES];
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && max_px[order[j]] > max_px[order[j - 1]]; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    struct image src = d.img;
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        uint32_t tw, th;
        target_size(d.full_w, d.full_h, max_px[i], &tw, &th);
        /* DCT scaling rounds up, so the decoded image is never smaller than
         * the target; clamp anyway rather than trust arithmetic on damaged
         * input. */
        if (tw > src.w) tw = src.w;
        if (th > src.h) th = src.h;
        uint8_t *small = NULL;
        rc = rendition(&src, tw, th, d.orientation, quality, &jpeg_out[i], &jpeg_len[i], &small);
        if (rc) goto fail;
        free(prev);
        prev = small;
        src = (struct image){.px = small, .w = tw, .h = th, .stride = (size_t)tw * 3};
    }
fail:
    free(prev);
    decoded_free(&d);
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            free(jpeg_out[i]);
            jpeg_out[i] = NULL;
            jpeg_len[i] = 0;
        }
    }
    return rc;
}

int sbx_media_render(const uint8_t *buf, size_t len, unsigned max_px, int quality,
                     uint8_t **jpeg_out, size_t *jpeg_len)
{
    if (!jpeg_out || !jpeg_len) return SBX_EINVAL;
    return sbx_media_render_sizes(buf, len, &max_px, 1, quality, jpeg_out, jpeg_len);
}
