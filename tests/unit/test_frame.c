/* Framing: 2-byte big-endian length + message, fed in arbitrary chunks. */
#include "sbx_test.h"
#include "shoebox/err.h"
#include "shoebox/frame.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <stdint.h>

/* A stream of frames with lengths `lens`, and the frames it carries. */
#define NFRAMES 6
static const size_t lens[NFRAMES] = {1, 2, 300, SBX_NOISE_MAX_MSG, 17, 4096};
static uint8_t stream[NFRAMES * SBX_FRAME_MAX];
static size_t stream_len;
static uint8_t bodies[NFRAMES][SBX_NOISE_MAX_MSG];

static void build_stream(void)
{
    size_t off = 0, n;
    SBX_ASSERT(sodium_init() >= 0);
    for (int i = 0; i < NFRAMES; i++) {
        randombytes_buf(bodies[i], lens[i]);
        SBX_ASSERT(sbx_frame_encode(stream + off, sizeof stream - off, bodies[i], lens[i],
                                    &n) == 0);
        SBX_ASSERT(n == lens[i] + 2);
        off += n;
    }
    stream_len = off;
}

/* Feeds the stream in chunks of `chunk` bytes (0: random sizes) and checks
 * every frame comes out whole and in order. Returns frames seen. */
static int feed_stream(sbx_frame_reader *r, size_t chunk)
{
    size_t off = 0;
    int seen = 0;
    while (off < stream_len) {
        size_t n = chunk ? chunk : 1 + randombytes_uniform(70000);
        if (n > stream_len - off) n = stream_len - off;
        const uint8_t *data = stream + off;
        size_t len = n;
        while (len > 0) {
            size_t used = 0, flen = 0;
            const uint8_t *f = NULL;
            int rc = sbx_frame_reader_feed(r, data, len, &used, &f, &flen);
            if (rc < 0) return rc;
            if (used == 0 || used > len) return SBX_ECORRUPT;
            data += used;
            len -= used;
            if (rc == 1) {
                if (seen >= NFRAMES || flen != lens[seen] ||
                    memcmp(f, bodies[seen], flen) != 0)
                    return SBX_ECORRUPT;
                seen++;
            }
        }
        off += n;
    }
    return seen;
}

SBX_TEST(byte_at_a_time)
{
    sbx_frame_reader *r;
    build_stream();
    REQUIRE(sbx_frame_reader_new(&r) == 0);
    CHECK_EQ_INT(feed_stream(r, 1), NFRAMES);
    CHECK_EQ_INT(sbx_frame_reader_buffered(r), 0);
    CHECK_EQ_INT(sbx_frame_reader_eof(r), 0);
    sbx_frame_reader_free(r);
}

SBX_TEST(chunk_sizes)
{
    static const size_t chunks[] = {2, 3, 7, 1000, 65537, 65538, 200000};
    build_stream();
    for (size_t i = 0; i < SBX_ARRAY_LEN(chunks); i++) {
        sbx_frame_reader *r;
        REQUIRE(sbx_frame_reader_new(&r) == 0);
        CHECK_EQ_INT(feed_stream(r, chunks[i]), NFRAMES);
        CHECK_EQ_INT(sbx_frame_reader_eof(r), 0);
        sbx_frame_reader_free(r);
    }
    for (int round = 0; round < 20; round++) {
        sbx_frame_reader *r;
        REQUIRE(sbx_frame_reader_new(&r) == 0);
        CHECK_EQ_INT(feed_stream(r, 0), NFRAMES);
        sbx_frame_reader_free(r);
    }
}

SBX_TEST(several_frames_in_one_chunk)
{
    sbx_frame_reader *r;
    build_stream();
    REQUIRE(sbx_frame_reader_new(&r) == 0);
    /* The whole stream in one feed: every frame comes out of the same chunk,
     * handed out in place (pointers into the chunk). */
    const uint8_t *data = stream;
    size_t len = stream_len;
    int seen = 0;
    for (int guard = 0; guard < 100 && len > 0; guard++) {
        size_t used, flen;
        const uint8_t *f;
        int rc = sbx_frame_reader_feed(r, data, len, &used, &f, &flen);
        REQUIRE(rc == 1);
        CHECK(f >= stream && f + flen <= stream + stream_len);
        CHECK_EQ_INT(flen, lens[seen]);
        CHECK(memcmp(f, bodies[seen], flen) == 0);
        seen++;
        data += used;
        len -= used;
    }
    CHECK_EQ_INT(seen, NFRAMES);
    CHECK_EQ_INT(sbx_frame_reader_eof(r), 0);

    /* Half a frame buffered, then the rest together with two more frames. */
    size_t used, flen;
    const uint8_t *f;
    uint8_t mix[64] = {0, 5, 'h', 'e', 'l', 'l', 'o', 0, 1, 'x', 0, 3, 'a', 'b', 'c'};
    CHECK_EQ_INT(sbx_frame_reader_feed(r, mix, 4, &used, &f, &flen), 0);
    CHECK_EQ_INT(used, 4);
    CHECK_EQ_INT(sbx_frame_reader_buffered(r), 4);
    CHECK_EQ_INT(sbx_frame_reader_eof(r), SBX_EPROTO);
    CHECK_EQ_INT(sbx_frame_reader_feed(r, mix + 4, 11, &used, &f, &flen), 1);
    CHECK_EQ_INT(used, 3);
    CHECK(flen == 5 && memcmp(f, "hello", 5) == 0);
    CHECK_EQ_INT(sbx_frame_reader_feed(r, mix + 7, 8, &used, &f, &flen), 1);
    CHECK(used == 3 && flen == 1 && f[0] == 'x');
    CHECK_EQ_INT(sbx_frame_reader_feed(r, mix + 10, 5, &used, &f, &flen), 1);
    CHECK(used == 5 && flen == 3 && memcmp(f, "abc", 3) == 0);
    CHECK_EQ_INT(sbx_frame_reader_eof(r), 0);
    sbx_frame_reader_free(r);
}

SBX_TEST(truncated_input)
{
    build_stream();
    /* Cut the stream at many points: the frames before the cut come out,
     * none after it, and eof reports the cut unless it fell on a boundary. */
    size_t cuts[] = {1, 2, 3, 5, 6, 308, 309, 310, 311, 312, 65000, stream_len - 1};
    for (size_t c = 0; c < SBX_ARRAY_LEN(cuts); c++) {
        sbx_frame_reader *r;
        REQUIRE(sbx_frame_reader_new(&r) == 0);
        size_t off = 0, boundary = 0;
        int expect = 0;
        while (expect < NFRAMES && boundary + lens[expect] + 2 <= cuts[c])
            boundary += lens[expect++] + 2;
        int seen = 0;
        while (off < cuts[c]) {
            size_t used, flen;
            const uint8_t *f;
            size_t n = cuts[c] - off < 5 ? cuts[c] - off : 5;
            int rc = sbx_frame_reader_feed(r, stream + off, n, &used, &f, &flen);
            REQUIRE(rc >= 0);
            seen += rc;
            off += used;
        }
        CHECK_EQ_INT(seen, expect);
        CHECK_EQ_INT(sbx_frame_reader_buffered(r), cuts[c] - boundary);
        CHECK_EQ_INT(sbx_frame_reader_eof(r), cuts[c] == boundary ? 0 : SBX_EPROTO);
        sbx_frame_reader_free(r);
    }
}

SBX_TEST(zero_length_frame_is_an_error)
{
    sbx_frame_reader *r;
    size_t used, flen;
    const uint8_t *f;
    const uint8_t bad[] = {0, 2, 'o', 'k', 0, 0, 0, 1, 'x'};

    /* In one chunk (fast path). */
    REQUIRE(sbx_frame_reader_new(&r) == 0);
    CHECK_EQ_INT(sbx_frame_reader_feed(r, bad, sizeof bad, &used, &f, &flen), 1);
    CHECK_EQ_INT(used, 4);
    CHECK_EQ_INT(sbx_frame_reader_feed(r, bad + 4, sizeof bad - 4, &used, &f, &flen),
                 SBX_EPROTO);
    CHECK(f == NULL && flen == 0);
    /* The reader stays failed. */
    CHECK_EQ_INT(sbx_frame_reader_feed(r, bad + 6, 3, &used, &f, &flen), SBX_ESTATE);
    CHECK_EQ_INT(sbx_frame_reader_eof(r), SBX_ESTATE);
    sbx_frame_reader_free(r);

    /* Byte by byte (buffered path). */
    REQUIRE(sbx_frame_reader_new(&r) == 0);
    int rc = 0;
    for (size_t i = 0; i < sizeof bad && rc >= 0; i++)
        rc = sbx_frame_reader_feed(r, bad + i, 1, &used, &f, &flen);
    CHECK_EQ_INT(rc, SBX_EPROTO);
    sbx_frame_reader_free(r);
}

SBX_TEST(writer)
{
    uint8_t hdr[2], out[SBX_FRAME_MAX + 1];
    size_t n;
    CHECK_EQ_INT(sbx_frame_header(hdr, 0x1234), 0);
    CHECK(hdr[0] == 0x12 && hdr[1] == 0x34);
    CHECK_EQ_INT(sbx_frame_header(hdr, SBX_NOISE_MAX_MSG), 0);
    CHECK(hdr[0] == 0xff && hdr[1] == 0xff);
    CHECK_EQ_INT(sbx_frame_header(hdr, 0), SBX_EPROTO);
    CHECK_EQ_INT(sbx_frame_header(hdr, SBX_NOISE_MAX_MSG + 1), SBX_ETOOBIG);
    CHECK_EQ_INT(sbx_frame_encode(out, sizeof out, out, SBX_NOISE_MAX_MSG + 1, &n),
                 SBX_ETOOBIG);
    CHECK_EQ_INT(sbx_frame_encode(out, 6, (const uint8_t *)"hello", 5, &n), SBX_EINVAL);
    CHECK_EQ_INT(sbx_frame_encode(out, 7, (const uint8_t *)"hello", 5, &n), 0);
    CHECK(n == 7 && memcmp(out, "\0\5hello", 7) == 0);
    /* In place: the message already sits at the start of the buffer. */
    memcpy(out, "abcdef", 6);
    CHECK_EQ_INT(sbx_frame_encode(out, sizeof out, out, 6, &n), 0);
    CHECK(n == 8 && memcmp(out, "\0\6abcdef", 8) == 0);
}

SBX_TEST_MAIN(SBX_CASE(byte_at_a_time), SBX_CASE(chunk_sizes),
              SBX_CASE(several_frames_in_one_chunk), SBX_CASE(truncated_input),
              SBX_CASE(zero_length_frame_is_an_error), SBX_CASE(writer))
