/* Framing of Noise messages on a byte stream (TCP), sans-I/O.
 *
 * Every Noise message, handshake messages included, travels as a 2-byte
 * big-endian length followed by the message, as the Noise spec suggests
 * (section 13), so any standard Noise library can talk to a daemon. A frame
 * length is 1..SBX_NOISE_MAX_MSG; a zero-length frame is a protocol error.
 *
 * Reading: feed whatever the socket delivered; the reader copies at most one
 * frame's worth of bytes (its buffer is one maximum frame) and hands each
 * complete frame back:
 *
 *   while (len > 0) {
 *       size_t used; const uint8_t *f; size_t flen;
 *       int rc = sbx_frame_reader_feed(r, data, len, &used, &f, &flen);
 *       if (rc < 0) fail(rc);
 *       data += used, len -= used;
 *       if (rc == 1) handle(f, flen);
 *   }
 *   at end of stream: sbx_frame_reader_eof(r) says whether a frame was cut.
 */
#ifndef SHOEBOX_FRAME_H
#define SHOEBOX_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "shoebox/limits.h"

#define SBX_FRAME_HEADER 2u
/* Largest frame on the wire: header plus the largest Noise message. */
#define SBX_FRAME_MAX (SBX_FRAME_HEADER + SBX_NOISE_MAX_MSG)

typedef struct sbx_frame_reader sbx_frame_reader;

int sbx_frame_reader_new(sbx_frame_reader **out);
void sbx_frame_reader_free(sbx_frame_reader *r);

/* Consumes bytes from `data` until one frame is complete or `data` runs out;
 * *consumed says how many were taken. Returns 1 when a frame is complete:
 * *frame and *frame_len describe it (it points into `data` or into the
 * reader, and stays valid until the next call on the reader and while `data`
 * does). Returns 0 when every byte was consumed without completing a frame.
 * SBX_EPROTO on a zero-length frame; after an error the reader refuses
 * further input (SBX_ESTATE). */
int sbx_frame_reader_feed(sbx_frame_reader *r, const uint8_t *data, size_t len,
                          size_t *consumed, const uint8_t **frame,
                          size_t *frame_len);

/* Bytes of an incomplete frame held by the reader (header included). */
size_t sbx_frame_reader_buffered(const sbx_frame_reader *r);

/* End of stream: 0 when it ended between frames, SBX_EPROTO when it cut a
 * frame, SBX_ESTATE when the reader had failed. */
int sbx_frame_reader_eof(const sbx_frame_reader *r);

/* Writes the 2-byte big-endian header for a message of msg_len bytes.
 * SBX_EPROTO for 0, SBX_ETOOBIG above SBX_NOISE_MAX_MSG. Writing the Noise
 * message at out + 2 and then the header avoids a copy. */
int sbx_frame_header(uint8_t out[2], size_t msg_len);

/* Writes header + message to `out` (out_cap >= len + 2, else SBX_EINVAL).
 * `msg` may overlap `out` (the message is moved). */
int sbx_frame_encode(uint8_t *out, size_t out_cap, const uint8_t *msg,
                     size_t len, size_t *out_len);

#endif
