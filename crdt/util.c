#include "shoebox/util.h"
#include "shoebox/err.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Noreturn void sbx_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "shoebox: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

void sbx_hex_encode(char *out, const uint8_t *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sbx_hex_decode(uint8_t *out, size_t len, const char *hex)
{
    for (size_t i = 0; i < len; i++) {
        if (hex[2 * i] == '\0' || hex[2 * i + 1] == '\0') return SBX_EMALFORMED;
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return SBX_EMALFORMED;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[2 * len] == '\0' ? 0 : SBX_EMALFORMED;
}

size_t sbx_utf8_next(const uint8_t *s, size_t len)
{
    if (len == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    /* The lead byte fixes the length; the range of the second byte is what
     * excludes overlong forms (E0, F0), surrogates (ED) and code points above
     * U+10FFFF (F4). C0, C1 and F5..FF never start a sequence. */
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (len < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

int64_t sbx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sbx_rfc3339(char out[32], int64_t ms)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int frac = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac) snprintf(out + n, 32 - n, ".%03dZ", frac);
    else snprintf(out + n, 32 - n, "Z");
}

int sbx_rfc3339_parse(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return SBX_EMALFORMED;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return SBX_EMALFORMED;
    const char *p = s + n;
    int frac = 0;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3) frac = frac * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0) return SBX_EMALFORMED;
        for (; digits < 3; digits++) frac *= 10;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2) return SBX_EMALFORMED;
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return SBX_EMALFORMED;
    }
    if (*p) return SBX_EMALFORMED;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    int64_t secs = (int64_t)timegm(&tm) - (int64_t)offset_min * 60;
    *ms = secs * 1000 + frac;
    return 0;
}

void sbx_uuid_format(char out[SBX_UUID_STRLEN + 1], const uint8_t id[16])
{
    char hex[33];
    sbx_hex_encode(hex, id, 16);
    snprintf(out, SBX_UUID_STRLEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
             hex + 12, hex + 16, hex + 20);
}

int sbx_uuid_parse(uint8_t id[16], const char *s)
{
    char hex[33];
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '-') continue;
        if (n == 32) return SBX_EMALFORMED;
        hex[n++] = *p;
    }
    if (n != 32 || strlen(s) != SBX_UUID_STRLEN) return SBX_EMALFORMED;
    hex[32] = '\0';
    return sbx_hex_decode(id, 16, hex);
}

void sbx_uuid_random(uint8_t id[16])
{
    randombytes_buf(id, 16);
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x40);
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
}

int sbx_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len)
{
    int rc = 0;
    uint8_t *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sbx_err_from_errno(errno);
    struct stat st;
    if (fstat(fd, &st) != 0) { rc = sbx_err_from_errno(errno); goto fail; }
    if ((uint64_t)st.st_size > max) { rc = SBX_ETOOBIG; goto fail; }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) { rc = SBX_ENOMEM; goto fail; }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { rc = r < 0 ? sbx_err_from_errno(errno) : SBX_EIO; goto fail; }
        got += (size_t)r;
    }
    buf[got] = 0;
    close(fd);
    *out = buf;
    *out_len = got;
    return 0;
fail:
    free(buf);
    close(fd);
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return SBX_ETOOBIG;
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sbx_err_from_errno(errno);
    int rc = fsync(fd) == 0 ? 0 : sbx_err_from_errno(errno);
    close(fd);
    return rc;
}

int sbx_file_write_atomic(const char *path, const uint8_t *data, size_t len,
                          unsigned mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return SBX_ETOOBIG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return sbx_err_from_errno(errno);
    int rc = 0;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) { rc = sbx_err_from_errno(errno); goto fail; }
        off += (size_t)w;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0) { rc = sbx_err_from_errno(errno); goto fail; }
    if (close(fd) != 0) { fd = -1; rc = sbx_err_from_errno(errno); goto fail; }
    fd = -1;
    if (rename(tmp, path) != 0) { rc = sbx_err_from_errno(errno); goto fail; }
    return fsync_dir_of(path);
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    return rc;
}

int sbx_mkdir_p(const char *path, unsigned mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return SBX_ETOOBIG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST) return sbx_err_from_errno(errno);
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return sbx_err_from_errno(errno);
    return 0;
}

int sbx_path_join(char *out, size_t out_size, const char *dir, const char *name)
{
    int n = snprintf(out, out_size, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= out_size) ? SBX_ETOOBIG : 0;
}
