/* Fuzzes the frame reader: the input is fed as a byte stream in chunks whose
 * sizes come from the first input byte, and every frame that comes out must
 * re-encode to exactly the bytes it was read from. */
#include "shoebox/err.h"
#include "shoebox/frame.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t enc[SBX_FRAME_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sbx_frame_reader *r = NULL;
    if (size < 1) return 0;
    /* Chunk sizes cycle through 1..256 starting from the first byte. */
    size_t chunk = (size_t)data[0] + 1;
    const uint8_t *stream = data + 1;
    size_t len = size - 1, off = 0, frame_start = 0;
    int rc = 0;

    SBX_ASSERT(sbx_frame_reader_new(&r) == 0);
    while (off < len && rc >= 0) {
        size_t n = chunk < len - off ? chunk : len - off;
        const uint8_t *p = stream + off;
        size_t left = n;
        chunk = chunk % 256 + 1;
        for (size_t guard = 0; left > 0 && guard <= n; guard++) {
            size_t used = 0, flen = 0, en = 0;
            const uint8_t *f = NULL;
            rc = sbx_frame_reader_feed(r, p, left, &used, &f, &flen);
            SBX_ASSERT(used <= left);
            SBX_ASSERT(sbx_frame_reader_buffered(r) <= SBX_FRAME_MAX);
            p += used;
            left -= used;
            off += used;
            if (rc < 0) {
                SBX_ASSERT(rc == SBX_EPROTO && f == NULL);
                break;
            }
            SBX_ASSERT(used > 0);
            if (rc == 1) {
                SBX_ASSERT(flen >= 1 && flen <= SBX_NOISE_MAX_MSG);
                SBX_ASSERT(sbx_frame_encode(enc, sizeof enc, f, flen, &en) == 0);
                SBX_ASSERT(en == off - frame_start);
                SBX_ASSERT(memcmp(enc, stream + frame_start, en) == 0);
                frame_start = off;
            } else {
                SBX_ASSERT(left == 0);
            }
        }
    }
    if (rc >= 0) {
        SBX_ASSERT(sbx_frame_reader_buffered(r) == off - frame_start);
        SBX_ASSERT(sbx_frame_reader_eof(r) == (off == frame_start ? 0 : SBX_EPROTO));
    } else {
        SBX_ASSERT(sbx_frame_reader_eof(r) == SBX_ESTATE);
    }
    sbx_frame_reader_free(r);
    return 0;
}
