/* Shared between media.c (containers), media_exif.c (libexif glue) and
 * media_thumb.c (renditions). Not a public header. */
#ifndef SHOEBOX_MEDIA_INTERNAL_H
#define SHOEBOX_MEDIA_INTERNAL_H

#include "shoebox/media.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a block of TIFF-structured metadata keeps each group of tags. A
 * normal EXIF block has them in IFD0, the Exif sub-IFD and the GPS sub-IFD;
 * Canon CR3 stores each group as a separate TIFF whose IFD0 holds it. */
enum sbx_exif_layout {
    SBX_EXIF_STANDARD = 0,
    SBX_EXIF_IFD0_ONLY,  /* CR3 CMT1: IFD0 tags only */
    SBX_EXIF_IFD0_IS_EXIF, /* CR3 CMT2: Exif sub-IFD tags in IFD0 */
    SBX_EXIF_IFD0_IS_GPS,  /* CR3 CMT4: GPS tags in IFD0 */
};

/* Facts from EXIF that only the container code needs. */
struct sbx_exif_extra {
    uint32_t pixel_x, pixel_y; /* PixelXDimension / PixelYDimension */
};

/* Reads one EXIF block into *info (fields already set are kept, so several
 * blocks can be merged). `blk` starts at the TIFF header, optionally preceded
 * by "Exif\0\0". Any TIFF magic number is accepted, so ORF and RW2 headers
 * work. Only the first 64 KiB are read: libexif caps a block at the size of a
 * JPEG APP1 segment. Sets info->exif_status to 0 when anything was read, else
 * to SBX_ECORRUPT with info->reason (unless an earlier block was read). */
void sbx_media_exif_read(const uint8_t *blk, size_t len, enum sbx_exif_layout layout,
                         struct sbx_media_info *info, struct sbx_exif_extra *extra);

/* Parses "YYYY:MM:DD HH:MM:SS" into ms since the epoch, taking the time as
 * UTC. Returns false for blank, zeroed or impossible dates. */
bool sbx_media_parse_exif_time(const char *s, size_t len, int64_t *ms);
/* Parses "+HH:MM" / "-HH:MM" into minutes east of UTC. */
bool sbx_media_parse_exif_offset(const char *s, size_t len, int *minutes);

/* Orientation helpers: whether 5..8 swap the axes, and the composition of
 * two orientations (first `a`, then `b`) as an EXIF code. */
static inline bool sbx_media_orient_swaps(unsigned o) { return o >= 5 && o <= 8; }
unsigned sbx_media_orient_compose(unsigned a, unsigned b);

#endif
