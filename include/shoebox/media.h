/* Media files: type detection, metadata probe and JPEG renditions.
 *
 * The importer hands every file to this module as one memory buffer (it mmaps
 * the file). Nothing here touches the disk, a clock or global state, so the
 * functions are safe to call from several threads at once and to fuzz.
 *
 * The type always comes from the bytes (magic numbers, ISO-BMFF brands, the
 * EBML DocType, TIFF tags), never from a file name: a Takeout archive is full
 * of ".png" files that are JPEGs and ".webm" files that are MP4s. */
#ifndef SHOEBOX_MEDIA_H
#define SHOEBOX_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest side of the two renditions that every photo gets. */
#define SBX_MEDIA_THUMB_PX 256u
#define SBX_MEDIA_MEDIUM_PX 1280u
/* Camera make and model buffers, NUL included (EXIF values are short; longer
 * ones are cut, never overflowed). */
#define SBX_MEDIA_CAMERA_MAX 64u
/* Renditions that one sbx_media_render_sizes call can make. */
#define SBX_MEDIA_MAX_SIZES 4u

enum sbx_media_kind {
    SBX_MEDIA_UNKNOWN = 0,
    SBX_MEDIA_PHOTO = 1,
    SBX_MEDIA_VIDEO = 2,
    SBX_MEDIA_RAW = 3,
};

struct sbx_media_info {
    /* A static string such as "image/jpeg"; NULL when the type is unknown. */
    const char *mime;
    enum sbx_media_kind kind;

    /* Stored pixels, before any orientation is applied; 0 when unknown. For a
     * RAW file this is the largest image the TIFF structure describes (or the
     * EXIF pixel dimensions), for a video the size of the first video track. */
    uint32_t width, height;
    /* Size as displayed, after orientation (width and height swapped for
     * orientations 5..8; for HEIF also after the clean-aperture crop). */
    uint32_t display_width, display_height;
    /* EXIF orientation 1..8 (1 when absent or invalid). For HEIF it is derived
     * from the irot/imir properties, for MP4/MOV from the track matrix. */
    uint8_t orientation;

    /* Capture time in ms since the Unix epoch, UTC. From DateTimeOriginal
     * (else DateTimeDigitized) plus SubSecTimeOriginal, or from the MP4/MOV
     * `mvhd` creation time or the Matroska DateUTC. With has_offset false the
     * camera's local time was taken as UTC. */
    bool has_captured_at;
    bool has_offset;
    int16_t offset_min; /* minutes east of UTC, valid when has_offset */
    int64_t captured_at_ms;

    /* Signed decimal degrees: south and west are negative. (0, 0) counts as
     * no position, as cameras write it before they get a fix. */
    bool has_gps;
    double latitude, longitude;

    /* Trimmed of trailing spaces and NULs; "" when absent. */
    char make[SBX_MEDIA_CAMERA_MAX];
    char model[SBX_MEDIA_CAMERA_MAX];

    /* 0 when EXIF was found and read; SBX_ENOENT when the file has none;
     * SBX_ECORRUPT when an EXIF block was there but nothing could be read from
     * it; SBX_EUNSUPPORTED for types whose metadata this module does not read. */
    int exif_status;
    /* A short static explanation when probe failed or exif_status is an
     * error; NULL otherwise. */
    const char *reason;
};

/* Names the type from the first bytes of a file (64 KiB are plenty). Sets
 * *mime and *kind and returns 0, or returns SBX_EUNSUPPORTED with *mime NULL
 * and *kind SBX_MEDIA_UNKNOWN. TIFF-based RAW files are told apart by their
 * header (CR2, ORF, RW2) or by IFD0 tags (DNGVersion -> DNG; Make NIKON or
 * SONY together with SubIFDs -> NEF or ARW); any other TIFF is image/tiff. */
int sbx_media_sniff(const uint8_t *buf, size_t len, const char **mime,
                    enum sbx_media_kind *kind);

/* Fills *info from a whole file held in memory. Returns 0 on success;
 * SBX_EUNSUPPORTED for an unknown type (info->mime NULL); SBX_ECORRUPT when
 * the container is truncated or broken: info->reason says what is wrong,
 * and mime, kind and whatever was read before the damage (often size and
 * EXIF) are kept, so the importer can still decide what to do with it;
 * SBX_EINVAL for NULL arguments. Damaged EXIF in a sound container is not an
 * error: see exif_status. A JPEG without an end-of-image marker, a PNG
 * without IEND and an ISO-BMFF file whose last box runs past the end count
 * as truncated. Never reads outside buf[0..len). EXIF of TIFF-based files
 * is read from their first 64 KiB (libexif's limit), where cameras put it. */
int sbx_media_probe(const uint8_t *buf, size_t len, struct sbx_media_info *info);

/* Renders a JPEG whose longest side is at most max_px (never upscaled), with
 * the EXIF orientation applied to the pixels. JPEG input is decoded with
 * libjpeg-turbo DCT scaling and then area-filtered to the exact size; HEIC,
 * HEIF and AVIF go through libheif. quality is 1..100. On success
 * *jpeg_out is a malloc'd buffer for the caller to free(). Returns
 * SBX_EUNSUPPORTED for other types (no thumbnail), SBX_ETOOBIG above
 * SBX_MAX_IMAGE_PIXELS (checked before anything is decoded), SBX_ECORRUPT
 * when nothing could be decoded, SBX_ENOMEM, SBX_EINVAL. A truncated JPEG
 * still renders (the missing part is grey) when its header is intact. */
int sbx_media_render(const uint8_t *buf, size_t len, unsigned max_px, int quality,
                     uint8_t **jpeg_out, size_t *jpeg_len);

/* Renders several sizes from one decode, as the importer does for the
 * thumbnail and the medium: jpeg_out[i] and jpeg_len[i] receive the
 * rendition for max_px[i] (n <= SBX_MEDIA_MAX_SIZES). Same rules and errors
 * as sbx_media_render; on failure no buffer is left allocated. A HEIC is
 * decoded once instead of once per size, which halves its cost. */
int sbx_media_render_sizes(const uint8_t *buf, size_t len, const unsigned *max_px, size_t n,
                           int quality, uint8_t **jpeg_out, size_t *jpeg_len);

/* True for the types sbx_media_render can render (JPEG, HEIC, HEIF, AVIF,
 * by the MIME type sbx_media_probe gives): the others get no thumbnail, and
 * the background renderer does not queue them. */
bool sbx_media_can_render(const char *mime);

/* "photo", "video", "raw" or "unknown". */
const char *sbx_media_kind_name(enum sbx_media_kind kind);

#endif
