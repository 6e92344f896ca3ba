/* Pairing invitations: the URI contract, its strict parser, and the QR code
 * that carries it (terminal text and PNG). */
#include "shoebox/pair.h"
#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <png.h>
#include <qrencode.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

/* Modules of light margin around a QR code, as ISO/IEC 18004 asks: scanners
 * need it to find the finder patterns. */
#define QUIET 4
#define PSK_B64_LEN 43 /* 32 bytes in base64 without padding */
#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define MAX_EXP_DIGITS 19 /* INT64_MAX has 19 digits */
#define MAX_DNS_NAME 253
#define MAX_DNS_LABEL 63

int sbx_pair_invite_init(sbx_pair_invite *inv, const uint8_t library[16],
                         const uint8_t device_key[32], int64_t expires_s)
{
    if (expires_s < 0) return SBX_EINVAL;
    memset(inv, 0, sizeof *inv);
    memcpy(inv->library, library, 16);
    memcpy(inv->device_key, device_key, 32);
    randombytes_buf(inv->psk, sizeof inv->psk);
    inv->expires_s = expires_s;
    return 0;
}

void sbx_pair_invite_wipe(sbx_pair_invite *inv)
{
    sodium_memzero(inv, sizeof *inv);
}

int sbx_pair_invite_expired(const sbx_pair_invite *inv, int64_t now_s)
{
    return now_s >= inv->expires_s ? SBX_EEXPIRED : 0;
}

/* ---- addresses ---------------------------------------------------------- */

/* A decimal port in 1..65535 without sign or leading zeros, so that each
 * address has one spelling. */
static int port_check(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || s[0] == '0') return SBX_EMALFORMED;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return SBX_EMALFORMED;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535 ? 0 : SBX_EMALFORMED;
}

/* A DNS host name in letters, digits and hyphens (RFC 1123), without a
 * trailing dot. */
static int dns_check(const char *h, size_t n)
{
    if (n == 0 || n > MAX_DNS_NAME) return SBX_EMALFORMED;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-') return SBX_EMALFORMED;
            label = 0;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '-';
        if (!ok || ++label > MAX_DNS_LABEL) return SBX_EMALFORMED;
        if (c == '-' && label == 1) return SBX_EMALFORMED;
    }
    return (label > 0 && h[n - 1] != '-') ? 0 : SBX_EMALFORMED;
}

int sbx_pair_addr_check(const char *addr)
{
    size_t n = strnlen(addr, SBX_MAX_PAIR_ADDR + 1);
    if (n > SBX_MAX_PAIR_ADDR) return SBX_ETOOBIG;
    char host[SBX_MAX_PAIR_ADDR + 1];
    const char *port;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') return SBX_EMALFORMED;
        size_t hl = (size_t)(close - addr - 1);
        if (hl == 0 || hl >= INET6_ADDRSTRLEN) return SBX_EMALFORMED;
        memcpy(host, addr + 1, hl);
        host[hl] = '\0';
        /* inet_pton refuses zone ids ("%eth0"): they name an interface of
         * the inviter, which means nothing on the device that scans. */
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1) return SBX_EMALFORMED;
        port = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon) return SBX_EMALFORMED;
        size_t hl = (size_t)(colon - addr);
        memcpy(host, addr, hl);
        host[hl] = '\0';
        /* Digits and dots only must be a dotted quad, never a DNS name: a
         * name like "10.1" would resolve to something else on every OS. */
        if (hl > 0 && strspn(host, "0123456789.") == hl) {
            struct in_addr a4;
            if (inet_pton(AF_INET, host, &a4) != 1) return SBX_EMALFORMED;
        } else if (dns_check(host, hl) != 0) {
            return SBX_EMALFORMED;
        }
        port = colon + 1;
    }
    return port_check(port);
}

int sbx_pair_invite_add_addr(sbx_pair_invite *inv, const char *addr)
{
    int rc = sbx_pair_addr_check(addr);
    if (rc != 0) return rc;
    if (inv->naddrs >= SBX_MAX_PAIR_ADDRS) return SBX_ETOOBIG;
    snprintf(inv->addrs[inv->naddrs], sizeof inv->addrs[0], "%s", addr);
    inv->naddrs++;
    return 0;
}

/* ---- URI format --------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t cap, len;
    int overflow;
};

static void sb_putc(struct sbuf *b, char c)
{
    if (b->len + 1 >= b->cap) { b->overflow = 1; return; }
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    for (size_t i = 0; s[i] != '\0' && !b->overflow; i++) sb_putc(b, s[i]);
}

/* Characters a query value may hold as they are (RFC 3986 unreserved, and
 * ':' which the query production allows). Everything else is escaped. */
static int plain_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == ':';
}

static void sb_put_encoded(struct sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; s[i] != '\0' && !b->overflow; i++) {
        unsigned char c = (unsigned char)s[i];
        if (plain_char((char)c)) {
            sb_putc(b, (char)c);
        } else {
            sb_putc(b, '%');
            sb_putc(b, hex[c >> 4]);
            sb_putc(b, hex[c & 15]);
        }
    }
}

int sbx_pair_uri_format(char out[SBX_MAX_PAIR_URI + 1], const sbx_pair_invite *inv)
{
    int rc = 0;
    char b64[sodium_base64_ENCODED_LEN(32, B64_VARIANT)];
    out[0] = '\0';
    if (inv->naddrs < 1 || inv->naddrs > SBX_MAX_PAIR_ADDRS || inv->expires_s < 0)
        return SBX_EINVAL;
    for (size_t i = 0; i < inv->naddrs; i++)
        if (sbx_pair_addr_check(inv->addrs[i]) != 0) return SBX_EINVAL;

    struct sbuf b = {out, SBX_MAX_PAIR_URI + 1, 0, 0};
    char lib[SBX_UUID_STRLEN + 1], dev[SBX_DEVID_STRLEN + 1], exp[24];
    sbx_uuid_format(lib, inv->library);
    sbx_devid_format(dev, inv->device_key);
    snprintf(exp, sizeof exp, "%lld", (long long)inv->expires_s);
    sodium_bin2base64(b64, sizeof b64, inv->psk, sizeof inv->psk, B64_VARIANT);

    sb_puts(&b, SBX_PAIR_URI_PREFIX "?v=1&lib=");
    sb_puts(&b, lib);
    sb_puts(&b, "&dev=");
    sb_puts(&b, dev);
    for (size_t i = 0; i < inv->naddrs; i++) {
        sb_puts(&b, "&addr=");
        sb_put_encoded(&b, inv->addrs[i]);
    }
    sb_puts(&b, "&psk=");
    sb_puts(&b, b64);
    sb_puts(&b, "&exp=");
    sb_puts(&b, exp);
    if (b.overflow) { rc = SBX_ETOOBIG; goto fail; }
    sodium_memzero(b64, sizeof b64);
    return 0;
fail:
    sodium_memzero(b64, sizeof b64);
    sodium_memzero(out, SBX_MAX_PAIR_URI + 1);
    return rc;
}

/* ---- URI parse ---------------------------------------------------------- */

/* One key=value pair of the query, the value still percent-encoded. */
struct field {
    const char *key, *val;
    size_t klen, vlen;
};

/* Splits off the next field at *p. Returns 1 with a field, 0 at the end, or
 * SBX_EMALFORMED for an empty field or one without '='. */
static int next_field(const char **p, const char *end, struct field *f)
{
    if (*p == end) return 0;
    const char *amp = memchr(*p, '&', (size_t)(end - *p));
    const char *stop = amp ? amp : end;
    const char *eq = memchr(*p, '=', (size_t)(stop - *p));
    if (!eq || eq == *p) return SBX_EMALFORMED;
    f->key = *p;
    f->klen = (size_t)(eq - *p);
    f->val = eq + 1;
    f->vlen = (size_t)(stop - eq - 1);
    /* A trailing '&' would leave an empty last field. */
    if (amp && amp + 1 == end) return SBX_EMALFORMED;
    *p = amp ? amp + 1 : end;
    return 1;
}

static int key_is(const struct field *f, const char *k)
{
    return f->klen == strlen(k) && memcmp(f->key, k, f->klen) == 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes a value into `out` (SBX_MAX_PAIR_URI + 1 bytes, which no
 * value can outgrow since decoding only shrinks). A NUL byte, a raw control,
 * space, non-ASCII byte or '#' (a fragment, which an invitation never has),
 * or a broken escape makes the value malformed. */
static int decode_value(char out[SBX_MAX_PAIR_URI + 1], const struct field *f)
{
    size_t o = 0;
    SBX_ASSERT(f->vlen <= SBX_MAX_PAIR_URI);
    for (size_t i = 0; i < f->vlen; i++) {
        unsigned char c = (unsigned char)f->val[i];
        if (c == '%') {
            if (f->vlen - i < 3) return SBX_EMALFORMED;
            int hi = hex_digit(f->val[i + 1]), lo = hex_digit(f->val[i + 2]);
            if (hi < 0 || lo < 0) return SBX_EMALFORMED;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
            if (c == 0) return SBX_EMALFORMED;
        } else if (c <= 0x20 || c >= 0x7f || c == '#') {
            return SBX_EMALFORMED;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* A canonical non-negative decimal: no sign, no leading zeros. */
static int parse_exp(const char *s, int64_t *v)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_EXP_DIGITS || (s[0] == '0' && n > 1)) return SBX_EMALFORMED;
    int64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return SBX_EMALFORMED;
        int d = s[i] - '0';
        if (acc > (INT64_MAX - d) / 10) return SBX_EMALFORMED;
        acc = acc * 10 + d;
    }
    *v = acc;
    return 0;
}

/* Exactly 43 base64url characters that decode to 32 bytes and re-encode to
 * themselves, so that the unused low bits of the last character are zero and
 * each secret has a single spelling. */
static int parse_psk(uint8_t psk[32], const char *s)
{
    int rc = 0;
    uint8_t bin[32];
    char again[sodium_base64_ENCODED_LEN(32, B64_VARIANT)];
    size_t bin_len = 0;
    const char *end = NULL;
    if (strlen(s) != PSK_B64_LEN) return SBX_EMALFORMED;
    if (sodium_base642bin(bin, sizeof bin, s, PSK_B64_LEN, NULL, &bin_len, &end,
                          B64_VARIANT) != 0 ||
        bin_len != 32 || end != s + PSK_B64_LEN) {
        rc = SBX_EMALFORMED;
        goto fail;
    }
    sodium_bin2base64(again, sizeof again, bin, sizeof bin, B64_VARIANT);
    if (strcmp(again, s) != 0) { rc = SBX_EMALFORMED; goto fail; }
    memcpy(psk, bin, 32);
fail:
    sodium_memzero(bin, sizeof bin);
    sodium_memzero(again, sizeof again);
    return rc;
}

/* The library id in the canonical 8-4-4-4-12 form, either case. */
static int parse_lib(uint8_t id[16], const char *s)
{
    char canon[SBX_UUID_STRLEN + 1];
    if (sbx_uuid_parse(id, s) != 0) return SBX_EMALFORMED;
    sbx_uuid_format(canon, id);
    return strcasecmp(canon, s) == 0 ? 0 : SBX_EMALFORMED;
}

enum { SEEN_V = 1, SEEN_LIB = 2, SEEN_DEV = 4, SEEN_PSK = 8, SEEN_EXP = 16,
       SEEN_ALL = 31 };

/* The version comes first: a URI of another version may carry keys this
 * parser has never heard of, and should be reported as unsupported rather
 * than malformed. */
static int check_version(const char *q, const char *end, char *buf)
{
    struct field f;
    int found = 0, r;
    const char *p = q;
    for (size_t guard = 0; (r = next_field(&p, end, &f)) == 1; guard++) {
        SBX_ASSERT(guard <= SBX_MAX_PAIR_URI);
        if (!key_is(&f, "v")) continue;
        if (found++) return SBX_EMALFORMED;
        if (decode_value(buf, &f) != 0) return SBX_EMALFORMED;
        if (strcmp(buf, "1") != 0) return SBX_EUNSUPPORTED;
    }
    if (r < 0) return r;
    return found ? 0 : SBX_EMALFORMED;
}

int sbx_pair_uri_parse(sbx_pair_invite *inv, const char *uri)
{
    int rc = 0;
    char buf[SBX_MAX_PAIR_URI + 1];
    const size_t plen = sizeof SBX_PAIR_URI_PREFIX - 1;
    memset(inv, 0, sizeof *inv);

    size_t len = strnlen(uri, SBX_MAX_PAIR_URI + 1);
    if (len > SBX_MAX_PAIR_URI) return SBX_ETOOBIG;
    /* RFC 3986 makes scheme and host case-insensitive. */
    if (len < plen + 1 || strncasecmp(uri, SBX_PAIR_URI_PREFIX, plen) != 0 ||
        uri[plen] != '?')
        return SBX_EMALFORMED;
    const char *q = uri + plen + 1, *end = uri + len;

    rc = check_version(q, end, buf);
    if (rc != 0) goto fail;

    unsigned seen = 0;
    struct field f;
    const char *p = q;
    int r;
    for (size_t guard = 0; (r = next_field(&p, end, &f)) == 1; guard++) {
        SBX_ASSERT(guard <= SBX_MAX_PAIR_URI);
        rc = decode_value(buf, &f);
        if (rc != 0) goto fail;
        unsigned bit;
        if (key_is(&f, "addr")) {
            if (strlen(buf) > SBX_MAX_PAIR_ADDR || inv->naddrs >= SBX_MAX_PAIR_ADDRS) {
                rc = SBX_ETOOBIG;
                goto fail;
            }
            rc = sbx_pair_invite_add_addr(inv, buf);
            if (rc != 0) goto fail;
            continue;
        } else if (key_is(&f, "v")) {
            bit = SEEN_V; /* checked and known to be 1 */
        } else if (key_is(&f, "lib")) {
            bit = SEEN_LIB;
            rc = parse_lib(inv->library, buf);
        } else if (key_is(&f, "dev")) {
            bit = SEEN_DEV;
            /* ECORRUPT (a check character is wrong) passes through: it tells
             * the user the code was mistyped, not that it is garbage. */
            rc = sbx_devid_parse(inv->device_key, buf);
        } else if (key_is(&f, "psk")) {
            bit = SEEN_PSK;
            rc = parse_psk(inv->psk, buf);
        } else if (key_is(&f, "exp")) {
            bit = SEEN_EXP;
            rc = parse_exp(buf, &inv->expires_s);
        } else {
            rc = SBX_EMALFORMED; /* an unknown key in a v=1 URI */
            goto fail;
        }
        if (rc != 0) goto fail;
        if (seen & bit) { rc = SBX_EMALFORMED; goto fail; }
        seen |= bit;
    }
    if (r < 0) { rc = r; goto fail; }
    if (seen != SEEN_ALL || inv->naddrs == 0) { rc = SBX_EMALFORMED; goto fail; }
    sodium_memzero(buf, sizeof buf);
    return 0;
fail:
    sodium_memzero(buf, sizeof buf);
    sbx_pair_invite_wipe(inv);
    return rc;
}

/* ---- QR code ------------------------------------------------------------ */

static int qr_encode(const char *uri, QRcode **out)
{
    size_t n = strnlen(uri, SBX_MAX_PAIR_URI + 1);
    if (n == 0) return SBX_EINVAL;
    if (n > SBX_MAX_PAIR_URI) return SBX_ETOOBIG;
    errno = 0;
    QRcode *qr = QRcode_encodeString(uri, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr) {
        if (errno == ERANGE) return SBX_ETOOBIG;
        if (errno == ENOMEM) return SBX_ENOMEM;
        return SBX_EINVAL;
    }
    SBX_ASSERT(qr->width >= 21 && qr->width <= 177);
    *out = qr;
    return 0;
}

/* Whether the module at (x, y) of the code with its quiet zone is dark.
 * Everything outside the symbol, the quiet zone and the half row below an
 * odd-height code, is light. */
static int qr_dark(const QRcode *qr, size_t x, size_t y)
{
    size_t w = (size_t)qr->width;
    if (x < QUIET || y < QUIET || x >= QUIET + w || y >= QUIET + w) return 0;
    return qr->data[(y - QUIET) * w + (x - QUIET)] & 1;
}

int sbx_pair_qr_text(const char *uri, char **out)
{
    static const char full[] = "\xe2\x96\x88", upper[] = "\xe2\x96\x80",
                      lower[] = "\xe2\x96\x84";
    int rc = 0;
    QRcode *qr = NULL;
    char *text = NULL;
    *out = NULL;
    rc = qr_encode(uri, &qr);
    if (rc != 0) goto fail;

    size_t side = (size_t)qr->width + 2 * QUIET;
    size_t lines = (side + 1) / 2;
    size_t cap = lines * (side * 3 + 1) + 1;
    text = malloc(cap);
    if (!text) { rc = SBX_ENOMEM; goto fail; }
    size_t o = 0;
    for (size_t l = 0; l < lines; l++) {
        for (size_t x = 0; x < side; x++) {
            /* A glyph paints the light modules, as qrencode -t UTF8 does:
             * terminals are usually light text on dark, so painted cells
             * are the light ones and the background shows the dark ones. */
            int top = !qr_dark(qr, x, 2 * l), bottom = !qr_dark(qr, x, 2 * l + 1);
            const char *g = top && bottom ? full : top ? upper : bottom ? lower : " ";
            size_t gl = strlen(g);
            SBX_ASSERT(o + gl < cap);
            memcpy(text + o, g, gl);
            o += gl;
        }
        SBX_ASSERT(o + 1 < cap);
        text[o++] = '\n';
    }
    text[o] = '\0';
    QRcode_free(qr);
    *out = text;
    return 0;
fail:
    if (qr) QRcode_free(qr);
    free(text);
    return rc;
}

/* The PNG is built in memory and then written atomically, so a reader never
 * sees half an image. */
struct membuf {
    uint8_t *data;
    size_t len, cap;
    int nomem;
};

static void png_write_cb(png_structp png, png_bytep data, size_t n)
{
    struct membuf *m = png_get_io_ptr(png);
    if (n > SIZE_MAX / 2 - m->len) { m->nomem = 1; png_error(png, "too big"); }
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n) cap *= 2;
        /* Not realloc: the old buffer is wiped before it is freed, as the
         * image encodes the one-time secret. */
        uint8_t *p = malloc(cap);
        if (!p) { m->nomem = 1; png_error(png, "out of memory"); }
        if (m->data) {
            memcpy(p, m->data, m->len);
            sodium_memzero(m->data, m->cap);
            free(m->data);
        }
        m->data = p;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, n);
    m->len += n;
}

static void png_flush_cb(png_structp png) { (void)png; }

/* libpng reports errors by calling this and never returning: back to the
 * setjmp in png_encode. */
static void png_error_cb(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void png_warn_cb(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Writes the rows: one bit per pixel, 1 = white, most significant bit first. */
static void png_rows(png_structp png, const QRcode *qr, size_t scale, uint8_t *row)
{
    size_t side = (size_t)qr->width + 2 * QUIET, px = side * scale;
    for (size_t y = 0; y < px; y++) {
        memset(row, 0, (px + 7) / 8);
        for (size_t x = 0; x < px; x++)
            if (!qr_dark(qr, x / scale, y / scale)) row[x / 8] |= (uint8_t)(0x80u >> (x % 8));
        png_write_row(png, row);
    }
}

static int png_encode(const QRcode *qr, size_t scale, uint8_t *row, struct membuf *m)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_error_cb,
                                              png_warn_cb);
    if (!png) return SBX_ENOMEM;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return SBX_ENOMEM;
    }
    /* Nothing local changes after this point, so the longjmp back here finds
     * png and info as they were. */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return m->nomem ? SBX_ENOMEM : SBX_EIO;
    }
    png_uint_32 px = (png_uint_32)(((size_t)qr->width + 2 * QUIET) * scale);
    png_set_write_fn(png, m, png_write_cb, png_flush_cb);
    png_set_IHDR(png, info, px, px, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_rows(png, qr, scale, row);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int sbx_pair_qr_png(const char *uri, const char *path, int scale)
{
    int rc = 0;
    QRcode *qr = NULL;
    uint8_t *row = NULL;
    struct membuf m = {NULL, 0, 0, 0};
    if (scale < 1 || scale > SBX_MAX_QR_SCALE) return SBX_EINVAL;
    rc = qr_encode(uri, &qr);
    if (rc != 0) goto fail;
    size_t px = ((size_t)qr->width + 2 * QUIET) * (size_t)scale;
    row = malloc((px + 7) / 8);
    if (!row) { rc = SBX_ENOMEM; goto fail; }
    rc = png_encode(qr, (size_t)scale, row, &m);
    if (rc != 0) goto fail;
    rc = sbx_file_write_atomic(path, m.data, m.len, 0600);
fail:
    if (qr) QRcode_free(qr);
    free(row);
    /* The image encodes the one-time secret. */
    if (m.data) sodium_memzero(m.data, m.cap);
    free(m.data);
    return rc;
}
