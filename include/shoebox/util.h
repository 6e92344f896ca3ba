/* Small helpers shared by every module: hex, time, ids, files, assertions. */
#ifndef SHOEBOX_UTIL_H
#define SHOEBOX_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Assertions that stay on in release builds (TigerBeetle style): a broken
 * invariant stops the process instead of corrupting a library. */
#define SBX_ASSERT(cond)                                                     \
    do {                                                                     \
        if (!(cond)) sbx_assert_fail(#cond, __FILE__, __LINE__);             \
    } while (0)
_Noreturn void sbx_assert_fail(const char *expr, const char *file, int line);

#define SBX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Lower-case hex. `out` must hold 2*len+1 bytes. */
void sbx_hex_encode(char *out, const uint8_t *in, size_t len);
/* Decodes exactly `len` bytes from 2*len hex characters; 0 or SBX_EMALFORMED. */
int sbx_hex_decode(uint8_t *out, size_t len, const char *hex);

/* Byte length (1 to 4) of the well-formed UTF-8 sequence that starts s[0..len),
 * or 0 when there is none there: an empty input, a stray continuation byte,
 * an overlong form, a surrogate (U+D800..U+DFFF), a code point above U+10FFFF
 * or a sequence cut short (RFC 3629, section 4). NUL and other controls are
 * well-formed and count as one byte; callers that refuse them check for
 * themselves. */
size_t sbx_utf8_next(const uint8_t *s, size_t len);

/* Wall clock in milliseconds since the Unix epoch. */
int64_t sbx_now_ms(void);
/* Formats ms since the epoch as RFC 3339 UTC ("2020-05-16T15:48:11Z", or with
 * ".123" when ms is not a whole second). `out` must hold 32 bytes. */
void sbx_rfc3339(char out[32], int64_t ms);
/* Parses RFC 3339 (Z or +hh:mm offset, optional fraction) into ms. */
int sbx_rfc3339_parse(const char *s, int64_t *ms);

/* 16-byte ids (library, photo, album, ...) print as UUID strings. */
#define SBX_UUID_STRLEN 36
void sbx_uuid_format(char out[SBX_UUID_STRLEN + 1], const uint8_t id[16]);
int sbx_uuid_parse(uint8_t id[16], const char *s);
/* A random version-4 UUID. */
void sbx_uuid_random(uint8_t id[16]);

/* Reads a whole file (at most `max` bytes) into a malloc'd buffer. */
int sbx_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len);
/* Writes a file atomically: temp file in the same directory, fsync, rename,
 * fsync of the directory. The file gets `mode`. */
int sbx_file_write_atomic(const char *path, const uint8_t *data, size_t len,
                          unsigned mode);
/* mkdir -p with the given mode for directories it creates. */
int sbx_mkdir_p(const char *path, unsigned mode);
/* snprintf into a fixed buffer; SBX_ETOOBIG when it does not fit. */
int sbx_path_join(char *out, size_t out_size, const char *dir, const char *name);

#endif
