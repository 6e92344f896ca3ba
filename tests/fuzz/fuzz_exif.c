/* Fuzzes the media probe and the EXIF glue on arbitrary bytes.
 *
 * The first byte picks how the rest is presented:
 *   0  as a whole file (every container parser, libexif and libheif behind);
 *   1  as the EXIF block of a small valid JPEG, which is then also rendered
 *      (orientation from the fuzzed EXIF, resampling of tiny images);
 *   2  as the three metadata blobs (CMT1, CMT2, CMT4) of a CR3 file.
 * Small JPEGs found in mode 0 are rendered too. Nothing may crash, leak or
 * read outside the input. */
#include "shoebox/err.h"
#include "shoebox/media.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

static uint8_t *base_jpeg;
static unsigned long base_len;

/* A 24x16 JPEG made once: its frame and scan follow the fuzzed APP1. */
static void make_base(void)
{
    if (base_jpeg) return;
    uint8_t rgb[24 * 16 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
    tjhandle tj = tjInitCompress();
    if (!tj || tjCompress2(tj, rgb, 24, 0, 16, TJPF_RGB, &base_jpeg, &base_len, TJSAMP_420, 75, 0) != 0)
        abort();
    tjDestroy(tj);
}

static void put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void probe_and_render(const uint8_t *b, size_t n)
{
    struct sbx_media_info info;
    int rc = sbx_media_probe(b, n, &info);
    /* Every error carries a reason; success leaves sane values. */
    if ((rc == SBX_ECORRUPT || rc == SBX_EMALFORMED || rc == SBX_EUNSUPPORTED) && !info.reason) abort();
    if (info.orientation < 1 || info.orientation > 8) abort();
    if (info.make[SBX_MEDIA_CAMERA_MAX - 1] != '\0' || info.model[SBX_MEDIA_CAMERA_MAX - 1] != '\0')
        abort();
    if (info.has_gps && (info.latitude < -90 || info.latitude > 90 || info.longitude < -180 ||
                         info.longitude > 180))
        abort();
    if (info.mime && strcmp(info.mime, "image/jpeg") == 0 && info.width &&
        (uint64_t)info.width * info.height <= (1u << 20)) {
        uint8_t *j = NULL;
        size_t jl = 0;
        if (sbx_media_render(b, n, 64, 70, &j, &jl) == 0) {
            if (!j || jl < 4 || j[0] != 0xff || j[1] != 0xd8) abort();
        }
        free(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned mode = data[0] % 3;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (mode == 0) {
        /* An exact-size copy so that any read past the end is caught. */
        uint8_t *copy = malloc(n ? n : 1);
        if (!copy) return 0;
        memcpy(copy, p, n);
        probe_and_render(copy, n);
        free(copy);
        return 0;
    }
    if (mode == 1) {
        make_base();
        if (n > 65000) n = 65000;
        size_t len = 2 + 4 + 6 + n + (base_len - 2);
        uint8_t *j = malloc(len);
        if (!j) return 0;
        size_t seg = 2 + 6 + n;
        memcpy(j, "\xff\xd8\xff\xe1", 4);
        j[4] = (uint8_t)(seg >> 8);
        j[5] = (uint8_t)seg;
        memcpy(j + 6, "Exif\0\0", 6);
        memcpy(j + 12, p, n);
        memcpy(j + 12 + n, base_jpeg + 2, base_len - 2);
        probe_and_render(j, len);
        free(j);
        return 0;
    }
    /* CR3: ftyp, then moov > uuid(Canon) > CMT1, CMT2, CMT4. */
    static const uint8_t canon[16] = {0x85, 0xc0, 0xb6, 0x87, 0x82, 0x0f, 0x11, 0xe0,
                                      0x81, 0x11, 0xf4, 0xce, 0x46, 0x2b, 0x6a, 0x48};
    if (n > 100000) n = 100000;
    size_t cmt = 8 + n, uuid = 8 + 16 + 3 * cmt, moov = 8 + uuid, len = 24 + moov;
    uint8_t *f = malloc(len), *q = f;
    if (!f) return 0;
    memcpy(q, "\0\0\0\x18" "ftypcrx \0\0\0\x01" "crx isom", 24);
    q += 24;
    put32be(q, (uint32_t)moov);
    memcpy(q + 4, "moov", 4);
    put32be(q + 8, (uint32_t)uuid);
    memcpy(q + 12, "uuid", 4);
    memcpy(q + 16, canon, 16);
    q += 32;
    static const char *names[3] = {"CMT1", "CMT2", "CMT4"};
    for (int i = 0; i < 3; i++) {
        put32be(q, (uint32_t)cmt);
        memcpy(q + 4, names[i], 4);
        memcpy(q + 8, p, n);
        q += cmt;
    }
    probe_and_render(f, len);
    free(f);
    return 0;
}
