/* 2-byte big-endian length framing of Noise messages (see shoebox/frame.h). */
#include "shoebox/frame.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <stdbool.h>
#include <string.h>

struct sbx_frame_reader {
    uint8_t hdr[SBX_FRAME_HEADER];
    size_t hdr_have; /* header bytes seen of the current frame, 0..2 */
    size_t need;     /* body length of the current frame, once hdr_have == 2 */
    size_t have;     /* body bytes buffered */
    bool failed;
    /* One maximum message: the reader never holds more than one frame. */
    uint8_t buf[SBX_NOISE_MAX_MSG];
};

int sbx_frame_reader_new(sbx_frame_reader **out)
{
    if (!out) return SBX_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : SBX_ENOMEM;
}

void sbx_frame_reader_free(sbx_frame_reader *r)
{
    /* Frames are ciphertext, but a reader may be reused for anything:
     * wiping is cheap next to a 64 KiB allocation. */
    if (!r) return;
    memset(r, 0, sizeof *r);
    free(r);
}

static size_t be16(const uint8_t *p)
{
    return ((size_t)p[0] << 8) | p[1];
}

int sbx_frame_reader_feed(sbx_frame_reader *r, const uint8_t *data, size_t len,
                          size_t *consumed, const uint8_t **frame,
                          size_t *frame_len)
{
    size_t i = 0;
    int rc;

    if (!r || !consumed || !frame || !frame_len || (len && !data)) return SBX_EINVAL;
    *consumed = 0;
    *frame = NULL;
    *frame_len = 0;
    if (r->failed) return SBX_ESTATE;

    while (i < len) {
        if (r->hdr_have == 0 && len - i >= SBX_FRAME_HEADER) {
            /* Fast path: a whole frame inside `data` is handed out in place,
             * which spares a 64 KiB copy per message on a busy stream. */
            size_t n = be16(data + i);
            if (n == 0) {
                i += SBX_FRAME_HEADER;
                rc = SBX_EPROTO;
                goto fail;
            }
            if (len - i - SBX_FRAME_HEADER >= n) {
                *frame = data + i + SBX_FRAME_HEADER;
                *frame_len = n;
                *consumed = i + SBX_FRAME_HEADER + n;
                return 1;
            }
        }
        if (r->hdr_have < SBX_FRAME_HEADER) {
            r->hdr[r->hdr_have++] = data[i++];
            if (r->hdr_have == SBX_FRAME_HEADER) {
                r->need = be16(r->hdr);
                r->have = 0;
                if (r->need == 0) {
                    rc = SBX_EPROTO;
                    goto fail;
                }
            }
            continue;
        }
        SBX_ASSERT(r->need <= sizeof r->buf && r->have < r->need);
        size_t take = r->need - r->have;
        if (take > len - i) take = len - i;
        memcpy(r->buf + r->have, data + i, take);
        r->have += take;
        i += take;
        if (r->have == r->need) {
            /* buf stays untouched until the next call, so the frame is
             * valid for the caller until then. */
            *frame = r->buf;
            *frame_len = r->need;
            r->hdr_have = 0;
            r->have = 0;
            r->need = 0;
            *consumed = i;
            return 1;
        }
    }
    *consumed = i;
    return 0;

fail:
    r->failed = true;
    *consumed = i;
    return rc;
}

size_t sbx_frame_reader_buffered(const sbx_frame_reader *r)
{
    if (!r) return 0;
    return r->hdr_have + r->have;
}

int sbx_frame_reader_eof(const sbx_frame_reader *r)
{
    if (!r) return SBX_EINVAL;
    if (r->failed) return SBX_ESTATE;
    return sbx_frame_reader_buffered(r) ? SBX_EPROTO : 0;
}

int sbx_frame_header(uint8_t out[2], size_t msg_len)
{
    if (!out) return SBX_EINVAL;
    if (msg_len == 0) return SBX_EPROTO;
    if (msg_len > SBX_NOISE_MAX_MSG) return SBX_ETOOBIG;
    out[0] = (uint8_t)(msg_len >> 8);
    out[1] = (uint8_t)msg_len;
    return 0;
}

int sbx_frame_encode(uint8_t *out, size_t out_cap, const uint8_t *msg,
                     size_t len, size_t *out_len)
{
    uint8_t hdr[SBX_FRAME_HEADER];
    int rc;
    if (!out || !out_len || (len && !msg)) return SBX_EINVAL;
    *out_len = 0;
    rc = sbx_frame_header(hdr, len);
    if (rc != 0) return rc;
    if (out_cap < len + SBX_FRAME_HEADER) return SBX_EINVAL;
    /* Move first: the message may sit where the header goes. */
    memmove(out + SBX_FRAME_HEADER, msg, len);
    memcpy(out, hdr, SBX_FRAME_HEADER);
    *out_len = len + SBX_FRAME_HEADER;
    return 0;
}
