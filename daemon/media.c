/* Media type detection and metadata probe.
 *
 * Every parser here reads a file the importer mmapped, so every read goes
 * through a bounds check against the enclosing structure (box, chunk,
 * segment, element), every loop is bounded by SBX_MAX_MEDIA_ITEMS, and a
 * structure that claims more bytes than the file holds is reported as
 * truncated instead of being followed. */
#include "media_internal.h"

#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/util.h"

#include <libheif/heif.h>
#include <string.h>

enum fmt {
    F_NONE = 0,
    F_JPEG, F_PNG, F_GIF, F_WEBP, F_HEIC, F_HEIF, F_AVIF, F_TIFF, F_BMP,
    F_MP4, F_MOV, F_WEBM, F_MKV, F_AVI,
    F_CR2, F_CR3, F_NEF, F_ARW, F_DNG, F_RAF, F_ORF, F_RW2,
    F_COUNT
};

static const struct {
    const char *mime;
    enum sbx_media_kind kind;
} fmts[F_COUNT] = {
    [F_NONE] = {NULL, SBX_MEDIA_UNKNOWN},
    [F_JPEG] = {"image/jpeg", SBX_MEDIA_PHOTO},
    [F_PNG] = {"image/png", SBX_MEDIA_PHOTO},
    [F_GIF] = {"image/gif", SBX_MEDIA_PHOTO},
    [F_WEBP] = {"image/webp", SBX_MEDIA_PHOTO},
    [F_HEIC] = {"image/heic", SBX_MEDIA_PHOTO},
    [F_HEIF] = {"image/heif", SBX_MEDIA_PHOTO},
    [F_AVIF] = {"image/avif", SBX_MEDIA_PHOTO},
    [F_TIFF] = {"image/tiff", SBX_MEDIA_PHOTO},
    [F_BMP] = {"image/bmp", SBX_MEDIA_PHOTO},
    [F_MP4] = {"video/mp4", SBX_MEDIA_VIDEO},
    [F_MOV] = {"video/quicktime", SBX_MEDIA_VIDEO},
    [F_WEBM] = {"video/webm", SBX_MEDIA_VIDEO},
    [F_MKV] = {"video/x-matroska", SBX_MEDIA_VIDEO},
    [F_AVI] = {"video/x-msvideo", SBX_MEDIA_VIDEO},
    [F_CR2] = {"image/x-canon-cr2", SBX_MEDIA_RAW},
    [F_CR3] = {"image/x-canon-cr3", SBX_MEDIA_RAW},
    [F_NEF] = {"image/x-nikon-nef", SBX_MEDIA_RAW},
    [F_ARW] = {"image/x-sony-arw", SBX_MEDIA_RAW},
    [F_DNG] = {"image/x-adobe-dng", SBX_MEDIA_RAW},
    [F_RAF] = {"image/x-fuji-raf", SBX_MEDIA_RAW},
    [F_ORF] = {"image/x-olympus-orf", SBX_MEDIA_RAW},
    [F_RW2] = {"image/x-panasonic-rw2", SBX_MEDIA_RAW},
};

const char *sbx_media_kind_name(enum sbx_media_kind kind)
{
    switch (kind) {
    case SBX_MEDIA_PHOTO: return "photo";
    case SBX_MEDIA_VIDEO: return "video";
    case SBX_MEDIA_RAW: return "raw";
    default: return "unknown";
    }
}

/* ---- bounded reads ------------------------------------------------------ */

/* True when [off, off+n) lies inside [0, len). Written so it cannot wrap. */
static inline bool have(size_t len, size_t off, size_t n) { return off <= len && len - off >= n; }
static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }
static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[1] << 8 | p[0]); }
static inline uint32_t le24(const uint8_t *p) { return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]; }
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

#define FOURCC(a, b, c, d) \
    ((uint32_t)(uint8_t)(a) << 24 | (uint32_t)(uint8_t)(b) << 16 | (uint32_t)(uint8_t)(c) << 8 | (uint8_t)(d))

struct probe {
    const uint8_t *b;
    size_t len;
    struct sbx_media_info *info;
    struct sbx_exif_extra extra;
    unsigned budget; /* structures left to visit */
};

static int fail_with(struct probe *p, int err, const char *why)
{
    p->info->reason = why;
    return err;
}

static bool spend(struct probe *p)
{
    if (p->budget == 0) return false;
    p->budget--;
    return true;
}

static void set_dims(struct sbx_media_info *info, uint64_t w, uint64_t h)
{
    /* Dimensions above 2^31 are nonsense from a damaged header: not kept. */
    if (w == 0 || h == 0 || w > INT32_MAX || h > INT32_MAX) return;
    info->width = (uint32_t)w;
    info->height = (uint32_t)h;
}

/* ---- TIFF structure (for sniffing RAW files and their dimensions) ------- */

struct tiff {
    const uint8_t *b;
    size_t len;
    bool le;
};

static bool t16(const struct tiff *t, size_t off, uint32_t *v)
{
    if (!have(t->len, off, 2)) return false;
    *v = t->le ? le16(t->b + off) : be16(t->b + off);
    return true;
}

static bool t32(const struct tiff *t, size_t off, uint32_t *v)
{
    if (!have(t->len, off, 4)) return false;
    *v = t->le ? le32(t->b + off) : be32(t->b + off);
    return true;
}

#define MAX_SUBIFDS 8

struct ifd {
    uint32_t width, height;
    uint32_t subfile; /* NewSubfileType: 0 is the full-resolution image */
    uint32_t subifd[MAX_SUBIFDS];
    unsigned nsub;
    bool has_subifds, dng, sony_private;
    char make[16];
    uint32_t pana_w, pana_h; /* RW2 SensorWidth / SensorHeight */
    uint32_t next;
};

/* The value of a SHORT or LONG entry with one component. */
static bool entry_uint(const struct tiff *t, size_t e, uint32_t type, uint32_t *v)
{
    if (type == 3) return t16(t, e + 8, v);
    if (type == 4 || type == 13) return t32(t, e + 8, v);
    return false;
}

static int ifd_read(const struct tiff *t, uint32_t off, struct ifd *d)
{
    uint32_t n;
    memset(d, 0, sizeof *d);
    if (!t16(t, off, &n) || !have(t->len, (size_t)off + 2, (size_t)n * 12 + 4)) return SBX_EMALFORMED;
    if (n > SBX_MAX_MEDIA_ITEMS) return SBX_EMALFORMED;
    for (uint32_t i = 0; i < n; i++) {
        size_t e = (size_t)off + 2 + (size_t)i * 12;
        uint32_t tag = 0, type = 0, count = 0, v = 0;
        t16(t, e, &tag);
        t16(t, e + 2, &type);
        t32(t, e + 4, &count);
        switch (tag) {
        case 0x00fe: entry_uint(t, e, type, &d->subfile); break;
        case 0x0100: entry_uint(t, e, type, &d->width); break;
        case 0x0101: entry_uint(t, e, type, &d->height); break;
        case 0x0002: entry_uint(t, e, type, &d->pana_w); break;
        case 0x0003: entry_uint(t, e, type, &d->pana_h); break;
        case 0x010f:
            if (type == 2 && count > 0) {
                size_t at = e + 8;
                if (count > 4 && t32(t, e + 8, &v)) at = v;
                else if (count > 4) break;
                size_t k = 0;
                while (k < count && k + 1 < sizeof d->make && have(t->len, at + k, 1) &&
                       t->b[at + k] != '\0') {
                    d->make[k] = (char)t->b[at + k];
                    k++;
                }
                d->make[k] = '\0';
            }
            break;
        case 0x014a:
            d->has_subifds = true;
            if ((type == 4 || type == 13) && count > 0) {
                size_t at = e + 8;
                if (count > 1) {
                    if (!t32(t, e + 8, &v)) break;
                    at = v;
                }
                /* A crafted IFD may repeat the tag: the total is bounded. */
                for (uint32_t j = 0; j < count && d->nsub < MAX_SUBIFDS &&
                                     t32(t, at + 4 * (size_t)j, &v);
                     j++)
                    d->subifd[d->nsub++] = v;
            }
            break;
        case 0xc612: d->dng = true; break;          /* DNGVersion */
        case 0xc634: d->sony_private = true; break; /* DNGPrivateData (Sony SR2) */
        default: break;
        }
    }
    t32(t, (size_t)off + 2 + (size_t)n * 12, &d->next);
    return 0;
}

static bool tiff_open(const uint8_t *b, size_t len, struct tiff *t, uint32_t *ifd0)
{
    if (len < 8 || !((b[0] == 'I' && b[1] == 'I') || (b[0] == 'M' && b[1] == 'M'))) return false;
    t->b = b;
    t->len = len;
    t->le = b[0] == 'I';
    return t32(t, 4, ifd0);
}

static enum fmt sniff_tiff(const uint8_t *b, size_t len)
{
    bool le = b[0] == 'I';
    uint16_t magic = le ? le16(b + 2) : be16(b + 2);
    if (magic == 0x4f52 || magic == 0x5352) return F_ORF; /* "IIRO", "IIRS", "MMOR" */
    if (magic == 0x0055) return F_RW2;
    if (magic == 0x002b) return F_TIFF; /* BigTIFF: named, not parsed */
    if (magic != 0x002a) return F_NONE;
    if (len >= 11 && b[8] == 'C' && b[9] == 'R' && b[10] == 2) return F_CR2;
    struct tiff t;
    uint32_t off;
    struct ifd d;
    if (!tiff_open(b, len, &t, &off) || ifd_read(&t, off, &d) != 0) return F_TIFF;
    if (d.dng) return F_DNG;
    /* A Nikon or Sony camera also writes plain TIFFs (Coolpix, scanners);
     * their RAW files are the ones whose IFD0 points at sub-images. */
    if (strncmp(d.make, "NIKON", 5) == 0 && d.has_subifds) return F_NEF;
    if (strncmp(d.make, "SONY", 4) == 0 && (d.has_subifds || d.sony_private)) return F_ARW;
    return F_TIFF;
}

/* ---- ISO-BMFF boxes ----------------------------------------------------- */

struct box {
    uint32_t type;
    size_t start, body, end; /* absolute offsets; body after the header */
};

/* Reads the box at `off` inside [.., end). Returns BOX_OK for a whole box,
 * BOX_CLIPPED when its header is fine but it runs past `end` (bx is clipped
 * to end), BOX_END at the end, SBX_ECORRUPT when not even the header fits
 * and SBX_EMALFORMED for an impossible size. */
enum { BOX_END = 0, BOX_OK = 1, BOX_CLIPPED = 2 };

static int box_at(const uint8_t *b, size_t end, size_t off, struct box *bx)
{
    if (off == end) return BOX_END;
    if (!have(end, off, 8)) return SBX_ECORRUPT;
    uint64_t size = be32(b + off);
    size_t hdr = 8;
    bx->type = be32(b + off + 4);
    if (size == 1) {
        if (!have(end, off, 16)) return SBX_ECORRUPT;
        size = be64(b + off + 8);
        hdr = 16;
    } else if (size == 0) {
        size = end - off;
    }
    if (size < hdr) return SBX_EMALFORMED;
    bx->start = off;
    bx->body = off + hdr;
    if (size > end - off) {
        bx->end = end;
        return BOX_CLIPPED;
    }
    bx->end = off + (size_t)size;
    return BOX_OK;
}

/* Steps through the children of `parent`: 1 with *child set, 0 at the end,
 * or a negative error with the reason set. A child that does not fit its
 * parent is an error: only the file's last top-level box may be cut. */
static int next_child(struct probe *p, const struct box *parent, size_t *off, struct box *child)
{
    if (!spend(p)) return fail_with(p, SBX_ECORRUPT, "too many boxes");
    int r = box_at(p->b, parent->end, *off, child);
    if (r == BOX_END) return 0;
    if (r != BOX_OK) return fail_with(p, SBX_ECORRUPT, "broken nested box");
    *off = child->end;
    return 1;
}

static enum fmt brand_fmt(uint32_t brand)
{
    switch (brand) {
    case FOURCC('h', 'e', 'i', 'c'): case FOURCC('h', 'e', 'i', 'x'):
    case FOURCC('h', 'e', 'i', 'm'): case FOURCC('h', 'e', 'i', 's'):
    case FOURCC('h', 'e', 'v', 'c'): case FOURCC('h', 'e', 'v', 'x'):
    case FOURCC('h', 'e', 'v', 'm'): case FOURCC('h', 'e', 'v', 's'):
        return F_HEIC;
    case FOURCC('a', 'v', 'i', 'f'): case FOURCC('a', 'v', 'i', 's'):
        return F_AVIF;
    case FOURCC('m', 'i', 'f', '1'): case FOURCC('m', 's', 'f', '1'):
        return F_HEIF;
    case FOURCC('c', 'r', 'x', ' '):
        return F_CR3;
    case FOURCC('q', 't', ' ', ' '):
        return F_MOV;
    case FOURCC('i', 's', 'o', 'm'): case FOURCC('i', 's', 'o', '2'):
    case FOURCC('i', 's', 'o', '3'): case FOURCC('i', 's', 'o', '4'):
    case FOURCC('i', 's', 'o', '5'): case FOURCC('i', 's', 'o', '6'):
    case FOURCC('m', 'p', '4', '1'): case FOURCC('m', 'p', '4', '2'):
    case FOURCC('a', 'v', 'c', '1'): case FOURCC('M', '4', 'V', ' '):
    case FOURCC('M', '4', 'V', 'H'): case FOURCC('M', '4', 'V', 'P'):
    case FOURCC('d', 'a', 's', 'h'): case FOURCC('M', 'S', 'N', 'V'):
    case FOURCC('f', '4', 'v', ' '): case FOURCC('X', 'A', 'V', 'C'):
    case FOURCC('m', 'm', 'p', '4'):
    /* 3GPP files are MP4 with a phone's brand; they are shown as video/mp4,
     * which every player accepts for them. */
    case FOURCC('3', 'g', 'p', '4'): case FOURCC('3', 'g', 'p', '5'):
    case FOURCC('3', 'g', 'p', '6'): case FOURCC('3', 'g', 'g', '6'):
    case FOURCC('3', 'g', '2', 'a'):
        return F_MP4;
    default:
        return F_NONE;
    }
}

static enum fmt sniff_ftyp(const uint8_t *b, size_t len)
{
    uint32_t size = be32(b);
    if (size < 16) return F_NONE;
    size_t end = size < len ? size : len;
    enum fmt major = brand_fmt(be32(b + 8));
    /* The major brand decides, except the generic image brands (mif1,
     * msf1): a codec brand among the compatible ones names the type better.
     * Without a known major brand the compatible brands decide, most
     * specific first (a HEIC also lists mif1, a CR3 lists isom). */
    if (major != F_NONE && major != F_HEIF) return major;
    static const enum fmt image_order[] = {F_HEIC, F_AVIF};
    static const enum fmt any_order[] = {F_CR3, F_HEIC, F_AVIF, F_HEIF, F_MOV, F_MP4};
    const enum fmt *order = major == F_HEIF ? image_order : any_order;
    size_t n = major == F_HEIF ? SBX_ARRAY_LEN(image_order) : SBX_ARRAY_LEN(any_order);
    for (size_t k = 0; k < n; k++)
        for (size_t off = 16; have(end, off, 4); off += 4)
            if (brand_fmt(be32(b + off)) == order[k]) return order[k];
    return major;
}

/* QuickTime files from before the ftyp box start with one of these atoms. */
static enum fmt sniff_old_quicktime(const uint8_t *b, size_t len)
{
    uint32_t type = be32(b + 4), size = be32(b);
    if (type != FOURCC('m', 'o', 'o', 'v') && type != FOURCC('m', 'd', 'a', 't') &&
        type != FOURCC('w', 'i', 'd', 'e') && type != FOURCC('f', 'r', 'e', 'e') &&
        type != FOURCC('s', 'k', 'i', 'p') && type != FOURCC('p', 'n', 'o', 't'))
        return F_NONE;
    if (size < 8 && size != 0 && size != 1) return F_NONE;
    /* "free", "skip" and "wide" are short words that could start a text
     * file: ask for a second atom of the same family after it. */
    if (type == FOURCC('f', 'r', 'e', 'e') || type == FOURCC('s', 'k', 'i', 'p') ||
        type == FOURCC('w', 'i', 'd', 'e')) {
        if (size < 8 || !have(len, size, 8)) return F_NONE;
        uint32_t next = be32(b + size + 4);
        if (next != FOURCC('m', 'o', 'o', 'v') && next != FOURCC('m', 'd', 'a', 't') &&
            next != FOURCC('w', 'i', 'd', 'e') && next != FOURCC('f', 'r', 'e', 'e'))
            return F_NONE;
    }
    return F_MOV;
}

/* ---- EBML (Matroska, WebM) ---------------------------------------------- */

/* Reads an EBML variable-length integer. IDs keep their length marker, sizes
 * lose it; an all-ones size means "unknown" (*unknown set). */
static bool ebml_vint(const uint8_t *b, size_t end, size_t *off, bool is_id, uint64_t *v,
                      bool *unknown)
{
    if (!have(end, *off, 1)) return false;
    uint8_t first = b[*off];
    unsigned n = 1;
    while (n <= 8 && !(first & (0x80 >> (n - 1)))) n++;
    if (n > (is_id ? 4u : 8u) || !have(end, *off, n)) return false;
    uint64_t val = is_id ? first : (first & (0xffu >> n));
    bool ones = val == (uint64_t)(0xffu >> n);
    for (unsigned i = 1; i < n; i++) {
        val = val << 8 | b[*off + i];
        ones = ones && b[*off + i] == 0xff;
    }
    if (unknown) *unknown = !is_id && ones;
    *v = val;
    *off += n;
    return true;
}

struct elem {
    uint32_t id;
    size_t body, end;
    bool unknown_size, truncated;
};

static int ebml_next(const uint8_t *b, size_t end, size_t *off, struct elem *el)
{
    uint64_t id, size;
    if (*off >= end) return 0;
    if (!ebml_vint(b, end, off, true, &id, NULL) ||
        !ebml_vint(b, end, off, false, &size, &el->unknown_size))
        return SBX_ECORRUPT;
    el->id = (uint32_t)id;
    el->body = *off;
    el->truncated = false;
    if (el->unknown_size) {
        el->end = end;
    } else if (size > end - *off) {
        el->end = end;
        el->truncated = true;
    } else {
        el->end = *off + (size_t)size;
    }
    return 1;
}

static uint64_t ebml_uint(const uint8_t *b, const struct elem *el)
{
    uint64_t v = 0;
    size_t n = el->end - el->body;
    if (n > 8) n = 8;
    for (size_t i = 0; i < n; i++) v = v << 8 | b[el->body + i];
    return v;
}

static enum fmt sniff_ebml(const uint8_t *b, size_t len)
{
    size_t off = 0;
    struct elem hdr, el;
    if (ebml_next(b, len, &off, &hdr) != 1 || hdr.id != 0x1a45dfa3) return F_NONE;
    off = hdr.body;
    for (unsigned n = 0; n < 64 && ebml_next(b, hdr.end, &off, &el) == 1; n++) {
        if (el.id == 0x4282) {
            size_t sl = el.end - el.body;
            if (sl >= 4 && memcmp(b + el.body, "webm", 4) == 0) return F_WEBM;
            if (sl >= 8 && memcmp(b + el.body, "matroska", 8) == 0) return F_MKV;
            return F_NONE;
        }
        if (el.unknown_size || el.truncated) break;
        off = el.end;
    }
    /* The DocType default is "matroska". */
    return F_MKV;
}

/* ---- sniffing ----------------------------------------------------------- */

static enum fmt sniff(const uint8_t *b, size_t len)
{
    if (!b || len < 4) return F_NONE;
    if (b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return F_JPEG;
    if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return F_PNG;
    if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) return F_GIF;
    if (len >= 12 && memcmp(b, "RIFF", 4) == 0) {
        if (memcmp(b + 8, "WEBP", 4) == 0) return F_WEBP;
        if (memcmp(b + 8, "AVI ", 4) == 0) return F_AVI;
        return F_NONE;
    }
    if (len >= 16 && memcmp(b, "FUJIFILMCCD-RAW ", 16) == 0) return F_RAF;
    if (be32(b) == 0x1a45dfa3) return sniff_ebml(b, len);
    if (len >= 8 && ((b[0] == 'I' && b[1] == 'I') || (b[0] == 'M' && b[1] == 'M'))) {
        enum fmt f = sniff_tiff(b, len);
        if (f != F_NONE) return f;
    }
    if (len >= 12 && be32(b + 4) == FOURCC('f', 't', 'y', 'p')) return sniff_ftyp(b, len);
    if (len >= 8) {
        enum fmt f = sniff_old_quicktime(b, len);
        if (f != F_NONE) return f;
    }
    if (len >= 26 && b[0] == 'B' && b[1] == 'M') {
        uint32_t dib = le32(b + 14);
        if (dib == 12 || dib == 40 || dib == 52 || dib == 56 || dib == 64 || dib == 108 ||
            dib == 124)
            return F_BMP;
    }
    return F_NONE;
}

int sbx_media_sniff(const uint8_t *buf, size_t len, const char **mime, enum sbx_media_kind *kind)
{
    if (!mime || !kind) return SBX_EINVAL;
    enum fmt f = sniff(buf, len);
    *mime = fmts[f].mime;
    *kind = fmts[f].kind;
    return f == F_NONE ? SBX_EUNSUPPORTED : 0;
}

/* ---- JPEG --------------------------------------------------------------- */

static bool is_sof(uint8_t m)
{
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

/* Walks the markers up to the first scan. `b` may be a JPEG embedded in a
 * larger file (RAF), so `len` is the JPEG's own length. */
static int jpeg_scan(struct probe *p, const uint8_t *b, size_t len, bool want_eoi)
{
    size_t off = 2;
    bool sof = false, exif = false;
    for (;;) {
        if (!spend(p)) return fail_with(p, SBX_ECORRUPT, "JPEG has too many segments");
        /* Decoders skip stray bytes between segments; so does this. */
        while (off < len && b[off] != 0xff) off++;
        while (off < len && b[off] == 0xff) off++;
        if (off >= len) return fail_with(p, SBX_ECORRUPT, "JPEG truncated before its image data");
        uint8_t m = b[off++];
        if (m == 0xd8 || m == 0x01 || m == 0x00 || (m >= 0xd0 && m <= 0xd7)) continue;
        if (m == 0xd9) return fail_with(p, SBX_ECORRUPT, "JPEG ends before its image data");
        if (!have(len, off, 2)) return fail_with(p, SBX_ECORRUPT, "JPEG truncated in a segment");
        size_t seg = be16(b + off);
        if (seg < 2) return fail_with(p, SBX_EMALFORMED, "JPEG segment length below 2");
        if (m == 0xda) {
            if (!sof) return fail_with(p, SBX_ECORRUPT, "JPEG scan before frame header");
            break;
        }
        if (!have(len, off, seg)) return fail_with(p, SBX_ECORRUPT, "JPEG truncated in a segment");
        const uint8_t *s = b + off + 2;
        size_t sl = seg - 2;
        if (is_sof(m) && !sof) {
            if (sl < 6) return fail_with(p, SBX_EMALFORMED, "JPEG frame header too short");
            uint32_t h = be16(s + 1), w = be16(s + 3);
            /* Height 0 defers to a DNL marker, which no camera writes and
             * libjpeg-turbo does not support. */
            if (w == 0 || h == 0) return fail_with(p, SBX_ECORRUPT, "JPEG frame has a zero dimension");
            set_dims(p->info, w, h);
            sof = true;
        } else if (m == 0xe1 && !exif && sl >= 6 && memcmp(s, "Exif\0", 5) == 0) {
            exif = true;
            sbx_media_exif_read(s + 6, sl - 6, SBX_EXIF_STANDARD, p->info, &p->extra);
        }
        off += seg;
    }
    /* The entropy-coded data escapes every 0xFF, so the first FF D9 after
     * the first scan header ends the image; without one the file was cut. */
    /* Most files end with the marker: check there before scanning. */
    bool at_end = len - off >= 2 && b[len - 2] == 0xff && b[len - 1] == 0xd9;
    if (want_eoi && !at_end && !memmem(b + off, len - off, "\xff\xd9", 2))
        return fail_with(p, SBX_ECORRUPT, "JPEG truncated (no end-of-image marker)");
    return 0;
}

/* ---- PNG, GIF, BMP, WebP ------------------------------------------------ */

static int probe_png(struct probe *p)
{
    const uint8_t *b = p->b;
    size_t len = p->len;
    if (!have(len, 8, 25) || memcmp(b + 12, "IHDR", 4) != 0 || be32(b + 8) != 13)
        return fail_with(p, SBX_ECORRUPT, "PNG without a complete IHDR");
    uint32_t w = be32(b + 16), h = be32(b + 20);
    if (w == 0 || h == 0 || w > INT32_MAX || h > INT32_MAX)
        return fail_with(p, SBX_ECORRUPT, "PNG with an invalid size");
    set_dims(p->info, w, h);
    /* eXIf belongs before the image data; the walk stops at the first IDAT,
     * so large files with thousands of IDAT chunks cost nothing. */
    size_t off = 8;
    while (have(len, off, 12)) {
        if (!spend(p)) return fail_with(p, SBX_ECORRUPT, "PNG has too many chunks");
        uint32_t cl = be32(b + off), type = be32(b + off + 4);
        if (cl > INT32_MAX || !have(len, off + 8, (size_t)cl + 4))
            return fail_with(p, SBX_ECORRUPT, "PNG truncated in a chunk");
        if (type == FOURCC('I', 'D', 'A', 'T') || type == FOURCC('I', 'E', 'N', 'D')) break;
        if (type == FOURCC('e', 'X', 'I', 'f') && p->info->exif_status != 0)
            sbx_media_exif_read(b + off + 8, cl, SBX_EXIF_STANDARD, p->info, &p->extra);
        off += 12 + (size_t)cl;
    }
    /* The IEND chunk is a fixed 12 bytes; look for it near the end so a
     * trailer some tools append does not count as damage. */
    size_t tail = len < 4096 ? len : 4096;
    if (!memmem(b + len - tail, tail, "IEND\xae\x42\x60\x82", 8))
        return fail_with(p, SBX_ECORRUPT, "PNG truncated (no IEND chunk)");
    return 0;
}

static int probe_gif(struct probe *p)
{
    if (!have(p->len, 0, 13)) return fail_with(p, SBX_ECORRUPT, "GIF truncated in its header");
    set_dims(p->info, le16(p->b + 6), le16(p->b + 8));
    return 0;
}

static int probe_bmp(struct probe *p)
{
    const uint8_t *b = p->b;
    uint32_t dib = le32(b + 14);
    int64_t w, h;
    if (dib == 12) {
        w = le16(b + 18);
        h = le16(b + 20);
    } else {
        w = (int32_t)le32(b + 18);
        h = (int32_t)le32(b + 22);
        if (h < 0) h = -h; /* negative height: rows stored top-down */
    }
    if (w <= 0 || h == 0) return fail_with(p, SBX_ECORRUPT, "BMP with an invalid size");
    set_dims(p->info, (uint64_t)w, (uint64_t)h);
    return 0;
}

static int probe_webp(struct probe *p)
{
    const uint8_t *b = p->b;
    size_t len = p->len;
    uint64_t riff = (uint64_t)le32(b + 4) + 8;
    if (riff > len) return fail_with(p, SBX_ECORRUPT, "WebP truncated");
    size_t end = (size_t)riff, off = 12;
    bool first = true;
    while (have(end, off, 8)) {
        if (!spend(p)) return fail_with(p, SBX_ECORRUPT, "WebP has too many chunks");
        uint32_t type = be32(b + off), cl = le32(b + off + 4);
        if (!have(end, off + 8, cl)) return fail_with(p, SBX_ECORRUPT, "WebP truncated in a chunk");
        const uint8_t *d = b + off + 8;
        if (first) {
            if (type == FOURCC('V', 'P', '8', 'X') && cl >= 10) {
                set_dims(p->info, (uint64_t)le24(d + 4) + 1, (uint64_t)le24(d + 7) + 1);
            } else if (type == FOURCC('V', 'P', '8', ' ') && cl >= 10 && d[3] == 0x9d &&
                       d[4] == 0x01 && d[5] == 0x2a) {
                set_dims(p->info, le16(d + 6) & 0x3fff, le16(d + 8) & 0x3fff);
            } else if (type == FOURCC('V', 'P', '8', 'L') && cl >= 5 && d[0] == 0x2f) {
                uint32_t bits = le32(d + 1);
                set_dims(p->info, (bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1);
            } else {
                return fail_with(p, SBX_ECORRUPT, "WebP without an image header");
            }
            if (p->info->width == 0) return fail_with(p, SBX_ECORRUPT, "WebP with an invalid size");
            first = false;
        } else if (type == FOURCC('E', 'X', 'I', 'F') && p->info->exif_status != 0) {
            sbx_media_exif_read(d, cl, SBX_EXIF_STANDARD, p->info, &p->extra);
        }
        off += 8 + (size_t)cl + (cl & 1);
    }
    if (first) return fail_with(p, SBX_ECORRUPT, "WebP without an image header");
    return 0;
}

/* ---- TIFF-based photos and RAW files ------------------------------------ */

static int probe_tiff(struct probe *p, enum fmt f)
{
    struct tiff t;
    uint32_t off;
    uint16_t magic = p->b[0] == 'I' ? le16(p->b + 2) : be16(p->b + 2);
    if (magic == 0x002b) return 0; /* BigTIFF: a known type, not read further */
    if (!tiff_open(p->b, p->len, &t, &off)) return fail_with(p, SBX_ECORRUPT, "TIFF header truncated");
    /* IFD0, the IFDs chained after it and their SubIFDs: the largest image
     * among them is the photo (IFD0 is a small preview in NEF and DNG). */
    uint32_t queue[4 + 4 * MAX_SUBIFDS];
    unsigned nq = 0, head = 0;
    uint64_t best = 0;
    bool ifd0_ok = false;
    queue[nq++] = off;
    for (unsigned chain = 0; head < nq; head++) {
        struct ifd d;
        if (!spend(p)) break;
        if (ifd_read(&t, queue[head], &d) != 0) {
            if (head == 0) return fail_with(p, SBX_ECORRUPT, "TIFF IFD0 outside the file");
            continue;
        }
        if (head == 0) {
            ifd0_ok = true;
            if (f == F_RW2 && d.pana_w && d.pana_h) {
                set_dims(p->info, d.pana_w, d.pana_h);
                best = (uint64_t)d.pana_w * d.pana_h;
            }
        }
        uint64_t area = (uint64_t)d.width * d.height;
        if (d.width && d.height && area > best && (f != F_TIFF || head == 0)) {
            best = area;
            set_dims(p->info, d.width, d.height);
        }
        /* A plain TIFF is its first page; only RAW files hide the photo in
         * later IFDs. */
        if (f == F_TIFF) break;
        for (unsigned k = 0; k < d.nsub && nq < SBX_ARRAY_LEN(queue); k++) queue[nq++] = d.subifd[k];
        if (d.next && chain < 3 && nq < SBX_ARRAY_LEN(queue)) {
            queue[nq++] = d.next;
            chain++;
        }
    }
    if (!ifd0_ok) return fail_with(p, SBX_ECORRUPT, "TIFF IFD0 unreadable");
    /* libexif reads at most 64 KiB: an IFD0 written after the image data
     * (some converters do) is out of its reach, which is not damage. */
    if (off > 0xfff0u) {
        p->info->exif_status = SBX_EUNSUPPORTED;
        p->info->reason = "TIFF metadata past 64 KiB not read";
        return 0;
    }
    sbx_media_exif_read(p->b, p->len, SBX_EXIF_STANDARD, p->info, &p->extra);
    return 0;
}

static int probe_raf(struct probe *p)
{
    /* The RAF header points at a JPEG preview that carries the EXIF. */
    if (!have(p->len, 0, 92)) return fail_with(p, SBX_ECORRUPT, "RAF header truncated");
    uint32_t off = be32(p->b + 84), jl = be32(p->b + 88);
    if (!have(p->len, off, jl) || jl < 4 || p->b[off] != 0xff || p->b[off + 1] != 0xd8)
        return fail_with(p, SBX_ECORRUPT, "RAF preview outside the file");
    struct sbx_media_info keep = *p->info;
    int rc = jpeg_scan(p, p->b + off, jl, false);
    /* The preview's size is not the photo's: only its EXIF is kept. */
    p->info->width = keep.width;
    p->info->height = keep.height;
    return rc;
}

/* ---- ISO-BMFF: HEIF, MP4/MOV, CR3 --------------------------------------- */

struct bmff {
    enum fmt f;
    bool has_meta, has_moov;
    struct box meta, moov;
};

/* Walks the top-level boxes and remembers meta and moov. A box that runs
 * past the end of the file makes the file truncated, but the boxes before it
 * (often all the metadata) are still read. */
static int walk_top(struct probe *p, struct bmff *m)
{
    size_t off = 0;
    for (;;) {
        struct box bx;
        if (!spend(p)) return fail_with(p, SBX_ECORRUPT, "too many boxes");
        int r = box_at(p->b, p->len, off, &bx);
        if (r == BOX_END) return 0;
        if (r == SBX_EMALFORMED) return fail_with(p, SBX_ECORRUPT, "broken box header");
        if (r < 0) return fail_with(p, SBX_ECORRUPT, "file truncated");
        if (bx.type == FOURCC('m', 'e', 't', 'a') && !m->has_meta) {
            m->meta = bx;
            m->has_meta = true;
        } else if (bx.type == FOURCC('m', 'o', 'o', 'v') && !m->has_moov) {
            m->moov = bx;
            m->has_moov = true;
        }
        if (r == BOX_CLIPPED) return fail_with(p, SBX_ECORRUPT, "file truncated");
        off = bx.end;
    }
}

#define HEIF_MAX_PROPS 32

/* The stored size and orientation of the primary item: its ispe, irot and
 * imir properties, applied in the order ipma lists them. */
struct heif_geom {
    uint32_t primary;
    bool has_primary, has_ipco, has_ipma;
    struct box ipco, ipma;
    uint16_t props[HEIF_MAX_PROPS]; /* 1-based ipco indices of the primary */
    unsigned nprops;
};

static int heif_meta(struct probe *p, const struct box *meta, struct heif_geom *g)
{
    struct box c, d;
    int r;
    if (meta->end - meta->body < 4) return fail_with(p, SBX_ECORRUPT, "meta box too short");
    size_t off = meta->body + 4; /* version and flags */
    while ((r = next_child(p, meta, &off, &c)) == 1) {
        const uint8_t *s = p->b + c.body;
        size_t sl = c.end - c.body;
        if (c.type == FOURCC('p', 'i', 't', 'm') && sl >= 6) {
            if (s[0] == 0) g->primary = be16(s + 4);
            else if (sl >= 8) g->primary = be32(s + 4);
            g->has_primary = true;
        } else if (c.type == FOURCC('i', 'p', 'r', 'p')) {
            size_t o2 = c.body;
            while ((r = next_child(p, &c, &o2, &d)) == 1) {
                if (d.type == FOURCC('i', 'p', 'c', 'o') && !g->has_ipco) {
                    g->ipco = d;
                    g->has_ipco = true;
                } else if (d.type == FOURCC('i', 'p', 'm', 'a') && !g->has_ipma) {
                    g->ipma = d;
                    g->has_ipma = true;
                }
            }
            if (r < 0) return r;
        }
    }
    return r;
}

static int heif_assoc(struct probe *p, struct heif_geom *g)
{
    const uint8_t *s = p->b + g->ipma.body;
    size_t sl = g->ipma.end - g->ipma.body;
    if (sl < 8) return fail_with(p, SBX_ECORRUPT, "ipma box too short");
    unsigned version = s[0];
    uint32_t flags = be24(s + 1), entries = be32(s + 4);
    size_t off = 8, idsize = version < 1 ? 2 : 4, each = (flags & 1) ? 2 : 1;
    for (uint32_t i = 0; i < entries; i++) {
        if (!spend(p)) return fail_with(p, SBX_ECORRUPT, "too many ipma entries");
        if (!have(sl, off, idsize + 1)) return fail_with(p, SBX_ECORRUPT, "ipma truncated");
        uint32_t item = idsize == 2 ? be16(s + off) : be32(s + off);
        unsigned n = s[off + idsize];
        off += idsize + 1;
        if (!have(sl, off, n * each)) return fail_with(p, SBX_ECORRUPT, "ipma truncated");
        for (unsigned k = 0; k < n && item == g->primary; k++) {
            uint16_t idx = each == 2 ? (be16(s + off + 2 * k) & 0x7fff) : (s[off + k] & 0x7f);
            if (idx && g->nprops < HEIF_MAX_PROPS) g->props[g->nprops++] = idx;
        }
        off += n * each;
    }
    return 0;
}

static int heif_geometry(struct probe *p, struct heif_geom *g, uint32_t *w, uint32_t *h,
                         unsigned *orient)
{
    int r = heif_assoc(p, g);
    if (r) return r;
    /* One pass over ipco finds the boxes the primary item uses. */
    struct box found[HEIF_MAX_PROPS];
    bool got[HEIF_MAX_PROPS] = {false};
    struct box c;
    size_t off = g->ipco.body;
    for (unsigned index = 1; (r = next_child(p, &g->ipco, &off, &c)) == 1; index++)
        for (unsigned k = 0; k < g->nprops; k++)
            if (g->props[k] == index) {
                found[k] = c;
                got[k] = true;
            }
    if (r < 0) return r;
    *orient = 1;
    *w = *h = 0;
    for (unsigned k = 0; k < g->nprops; k++) {
        if (!got[k]) continue;
        const uint8_t *d = p->b + found[k].body;
        size_t dl = found[k].end - found[k].body;
        if (found[k].type == FOURCC('i', 's', 'p', 'e') && dl >= 12) {
            *w = be32(d + 4);
            *h = be32(d + 8);
        } else if (found[k].type == FOURCC('i', 'r', 'o', 't') && dl >= 1) {
            /* Counter-clockwise quarter turns. */
            static const unsigned rot[4] = {1, 8, 3, 6};
            *orient = sbx_media_orient_compose(*orient, rot[d[0] & 3]);
        } else if (found[k].type == FOURCC('i', 'm', 'i', 'r') && dl >= 1) {
            /* axis 0 is a vertical axis, so left and right swap: the reading
             * that HEIF amendment 2 settled on. */
            *orient = sbx_media_orient_compose(*orient, (d[0] & 1) ? 4 : 2);
        }
    }
    if (*w == 0 || *h == 0) return fail_with(p, SBX_ECORRUPT, "HEIF primary item has no size");
    return 0;
}

/* libheif reads the item structure (no pixels) to hand over the Exif item
 * and the size after the clean-aperture crop and rotation. */
static int heif_lib(struct probe *p)
{
    struct heif_context *ctx = heif_context_alloc();
    struct heif_image_handle *h = NULL;
    uint8_t *blk = NULL;
    int rc = 0;
    if (!ctx) return fail_with(p, SBX_ENOMEM, "out of memory");
    struct heif_error e = heif_context_read_from_memory_without_copy(ctx, p->b, p->len, NULL);
    if (e.code != heif_error_Ok) {
        rc = fail_with(p, SBX_ECORRUPT, "HEIF structure unreadable");
        goto fail;
    }
    e = heif_context_get_primary_image_handle(ctx, &h);
    if (e.code != heif_error_Ok) {
        rc = fail_with(p, SBX_ECORRUPT, "HEIF has no primary image");
        goto fail;
    }
    int dw = heif_image_handle_get_width(h), dh = heif_image_handle_get_height(h);
    if (dw > 0 && dh > 0) {
        p->info->display_width = (uint32_t)dw;
        p->info->display_height = (uint32_t)dh;
    }
    heif_item_id id;
    if (heif_image_handle_get_list_of_metadata_block_IDs(h, "Exif", &id, 1) == 1) {
        size_t n = heif_image_handle_get_metadata_size(h, id);
        /* An Exif item starts with the offset of the TIFF header. */
        if (n >= 4 && n <= p->len) {
            blk = malloc(n);
            if (!blk) {
                rc = fail_with(p, SBX_ENOMEM, "out of memory");
                goto fail;
            }
            e = heif_image_handle_get_metadata(h, id, blk);
            uint32_t skip = be32(blk);
            if (e.code == heif_error_Ok && skip <= n - 4) {
                sbx_media_exif_read(blk + 4 + skip, n - 4 - skip, SBX_EXIF_STANDARD, p->info,
                                    &p->extra);
            } else {
                p->info->exif_status = SBX_ECORRUPT;
                p->info->reason = "HEIF Exif item unreadable";
            }
        }
    }
fail:
    free(blk);
    if (h) heif_image_handle_release(h);
    heif_context_free(ctx);
    return rc;
}

static int probe_heif(struct probe *p, struct bmff *m, int walk_rc)
{
    if (!m->has_meta) return walk_rc ? walk_rc : fail_with(p, SBX_ECORRUPT, "HEIF without a meta box");
    struct heif_geom g = {0};
    int rc = heif_meta(p, &m->meta, &g);
    if (rc) return rc;
    if (!g.has_primary || !g.has_ipco || !g.has_ipma)
        return fail_with(p, SBX_ECORRUPT, "HEIF without a primary item");
    uint32_t w, h;
    unsigned o;
    rc = heif_geometry(p, &g, &w, &h, &o);
    if (rc) return rc;
    set_dims(p->info, w, h);
    p->info->orientation = (uint8_t)o;
    /* A truncated file is not handed to libheif: what it would read is gone. */
    if (walk_rc) return walk_rc;
    rc = heif_lib(p);
    /* The container's irot/imir rule a HEIF; an EXIF Orientation tag in it
     * describes the same turn and must not be applied twice. */
    p->info->orientation = (uint8_t)o;
    return rc;
}

/* MP4 times count seconds from 1904-01-01 UTC. */
#define MP4_EPOCH_OFFSET 2082844800ull

static void mp4_time(struct sbx_media_info *info, uint64_t t)
{
    /* 0 means unknown; anything before 1970 or past year 9999 is a broken
     * clock, not a capture time. */
    if (t <= MP4_EPOCH_OFFSET || t - MP4_EPOCH_OFFSET > 253402300799ull) return;
    info->captured_at_ms = (int64_t)(t - MP4_EPOCH_OFFSET) * 1000;
    info->has_captured_at = true;
    /* The format defines these times as UTC. */
    info->has_offset = true;
    info->offset_min = 0;
}

static unsigned matrix_orientation(const uint8_t *m)
{
    int32_t a = (int32_t)be32(m), b = (int32_t)be32(m + 4);
    int32_t c = (int32_t)be32(m + 12), d = (int32_t)be32(m + 16);
    int sa = (a > 0) - (a < 0), sb = (b > 0) - (b < 0);
    int sc = (c > 0) - (c < 0), sd = (d > 0) - (d < 0);
    /* x' = a x + c y and y' = b x + d y, with y pointing down. */
    if (sb == 0 && sc == 0) {
        if (sa > 0 && sd > 0) return 1;
        if (sa < 0 && sd > 0) return 2;
        if (sa < 0 && sd < 0) return 3;
        if (sa > 0 && sd < 0) return 4;
    } else if (sa == 0 && sd == 0) {
        if (sb > 0 && sc > 0) return 5;
        if (sb > 0 && sc < 0) return 6;
        if (sb < 0 && sc < 0) return 7;
        if (sb < 0 && sc > 0) return 8;
    }
    return 1;
}

struct track {
    bool video;
    uint32_t w, h;
    unsigned orient;
};

static int mp4_trak(struct probe *p, const struct box *trak, struct track *t)
{
    struct box c, d;
    int r;
    size_t off = trak->body;
    t->video = false;
    t->w = t->h = 0;
    t->orient = 1;
    while ((r = next_child(p, trak, &off, &c)) == 1) {
        const uint8_t *s = p->b + c.body;
        size_t sl = c.end - c.body;
        if (c.type == FOURCC('t', 'k', 'h', 'd') && sl >= 1) {
            size_t mat = s[0] == 1 ? 52 : 40;
            if (sl >= mat + 44) {
                t->orient = matrix_orientation(s + mat);
                t->w = be32(s + mat + 36) >> 16;
                t->h = be32(s + mat + 40) >> 16;
            }
        } else if (c.type == FOURCC('m', 'd', 'i', 'a')) {
            size_t o2 = c.body;
            while ((r = next_child(p, &c, &o2, &d)) == 1)
                if (d.type == FOURCC('h', 'd', 'l', 'r') && d.end - d.body >= 12)
                    t->video = be32(p->b + d.body + 8) == FOURCC('v', 'i', 'd', 'e');
            if (r < 0) return r;
        }
    }
    return r;
}

static const uint8_t canon_uuid[16] = {0x85, 0xc0, 0xb6, 0x87, 0x82, 0x0f, 0x11, 0xe0,
                                       0x81, 0x11, 0xf4, 0xce, 0x46, 0x2b, 0x6a, 0x48};

/* CR3 keeps IFD0, the Exif IFD and the GPS IFD as three TIFF blobs in boxes
 * CMT1, CMT2 and CMT4 inside a Canon uuid box of moov. */
static int cr3_uuid(struct probe *p, const struct box *u)
{
    struct box c;
    int r;
    if (u->end - u->body < 16 || memcmp(p->b + u->body, canon_uuid, 16) != 0) return 0;
    size_t off = u->body + 16;
    while ((r = next_child(p, u, &off, &c)) == 1) {
        const uint8_t *s = p->b + c.body;
        size_t sl = c.end - c.body;
        if (c.type == FOURCC('C', 'M', 'T', '1'))
            sbx_media_exif_read(s, sl, SBX_EXIF_IFD0_ONLY, p->info, &p->extra);
        else if (c.type == FOURCC('C', 'M', 'T', '2'))
            sbx_media_exif_read(s, sl, SBX_EXIF_IFD0_IS_EXIF, p->info, &p->extra);
        else if (c.type == FOURCC('C', 'M', 'T', '4'))
            sbx_media_exif_read(s, sl, SBX_EXIF_IFD0_IS_GPS, p->info, &p->extra);
    }
    return r;
}

static int probe_moov(struct probe *p, struct bmff *m, int walk_rc)
{
    if (!m->has_moov) return walk_rc ? walk_rc : fail_with(p, SBX_ECORRUPT, "no moov box");
    struct box c;
    int r;
    bool video = false;
    size_t off = m->moov.body;
    while ((r = next_child(p, &m->moov, &off, &c)) == 1) {
        const uint8_t *s = p->b + c.body;
        size_t sl = c.end - c.body;
        if (m->f == F_CR3) {
            /* A CR3's movie header times are not the capture time; its EXIF
             * is. Its tracks are previews and the raw data. */
            if (c.type == FOURCC('u', 'u', 'i', 'd')) {
                int r2 = cr3_uuid(p, &c);
                if (r2 < 0) return r2;
            }
        } else if (c.type == FOURCC('m', 'v', 'h', 'd') && sl >= 8) {
            if (s[0] == 1 && sl >= 12) mp4_time(p->info, be64(s + 4));
            else if (s[0] == 0) mp4_time(p->info, be32(s + 4));
        } else if (c.type == FOURCC('t', 'r', 'a', 'k') && !video) {
            struct track t;
            int r2 = mp4_trak(p, &c, &t);
            if (r2 < 0) return r2;
            if (t.video) {
                video = true;
                set_dims(p->info, t.w, t.h);
                p->info->orientation = (uint8_t)t.orient;
            }
        }
    }
    if (r < 0) return r;
    return walk_rc;
}

static int probe_bmff(struct probe *p, enum fmt f)
{
    struct bmff m = {.f = f};
    int walk_rc = walk_top(p, &m);
    if (f == F_HEIC || f == F_HEIF || f == F_AVIF) return probe_heif(p, &m, walk_rc);
    return probe_moov(p, &m, walk_rc);
}

/* ---- Matroska / WebM ---------------------------------------------------- */

static int mkv_tracks(struct probe *p, const struct elem *tracks)
{
    struct elem te, c, v;
    size_t off = tracks->body;
    int r;
    while ((r = ebml_next(p->b, tracks->end, &off, &te)) == 1) {
        if (!spend(p)) return fail_with(p, SBX_ECORRUPT, "too many elements");
        if (te.id == 0xae) {
            uint64_t type = 0, w = 0, h = 0;
            size_t o2 = te.body;
            while (ebml_next(p->b, te.end, &o2, &c) == 1 && spend(p)) {
                if (c.id == 0x83) type = ebml_uint(p->b, &c);
                if (c.id == 0xe0) {
                    size_t o3 = c.body;
                    while (ebml_next(p->b, c.end, &o3, &v) == 1 && spend(p)) {
                        if (v.id == 0xb0) w = ebml_uint(p->b, &v);
                        if (v.id == 0xba) h = ebml_uint(p->b, &v);
                        if (v.unknown_size) break;
                        o3 = v.end;
                    }
                }
                if (c.unknown_size) break;
                o2 = c.end;
            }
            if (type == 1 && w && h) {
                set_dims(p->info, w, h);
                return 0;
            }
        }
        if (te.unknown_size) break;
        off = te.end;
    }
    return 0;
}

static int probe_ebml(struct probe *p)
{
    size_t off = 0;
    struct elem hdr, seg, el;
    if (ebml_next(p->b, p->len, &off, &hdr) != 1 || hdr.truncated || hdr.unknown_size)
        return fail_with(p, SBX_ECORRUPT, "EBML header truncated");
    off = hdr.end;
    if (ebml_next(p->b, p->len, &off, &seg) != 1 || seg.id != 0x18538067)
        return fail_with(p, SBX_ECORRUPT, "no Matroska segment");
    off = seg.body;
    bool tracks = false;
    int r;
    while ((r = ebml_next(p->b, seg.end, &off, &el)) == 1) {
        if (!spend(p)) return fail_with(p, SBX_ECORRUPT, "too many elements");
        if (el.id == 0x1f43b675) break; /* first Cluster: the headers are over */
        if ((el.id == 0x1549a966 || el.id == 0x1654ae6b) && (el.truncated || el.unknown_size))
            return fail_with(p, SBX_ECORRUPT, "Matroska header truncated");
        if (el.id == 0x1549a966) {
            struct elem c;
            size_t o2 = el.body;
            while (ebml_next(p->b, el.end, &o2, &c) == 1 && spend(p)) {
                if (c.id == 0x4461 && c.end - c.body == 8) {
                    /* DateUTC: signed nanoseconds since 2001-01-01 UTC. */
                    int64_t ns = (int64_t)ebml_uint(p->b, &c);
                    p->info->captured_at_ms = 978307200000LL + ns / 1000000;
                    p->info->has_captured_at = true;
                    p->info->has_offset = true;
                }
                if (c.unknown_size) break;
                o2 = c.end;
            }
        } else if (el.id == 0x1654ae6b && !tracks) {
            tracks = true;
            int rc = mkv_tracks(p, &el);
            if (rc) return rc;
        }
        if (el.unknown_size || el.truncated) break;
        off = el.end;
    }
    if (r < 0) return fail_with(p, SBX_ECORRUPT, "broken Matroska element");
    return 0;
}

/* ---- AVI ---------------------------------------------------------------- */

static int probe_avi(struct probe *p)
{
    const uint8_t *b = p->b;
    uint64_t riff = (uint64_t)le32(b + 4) + 8;
    if (riff > p->len) return fail_with(p, SBX_ECORRUPT, "AVI truncated");
    size_t end = (size_t)riff, off = 12;
    while (have(end, off, 8)) {
        if (!spend(p)) return fail_with(p, SBX_ECORRUPT, "AVI has too many chunks");
        uint32_t id = be32(b + off), cl = le32(b + off + 4);
        if (!have(end, off + 8, cl)) return fail_with(p, SBX_ECORRUPT, "AVI truncated in a chunk");
        if (id == FOURCC('L', 'I', 'S', 'T') && cl >= 4 && memcmp(b + off + 8, "hdrl", 4) == 0) {
            size_t lend = off + 8 + cl, o2 = off + 12;
            while (have(lend, o2, 8) && spend(p)) {
                uint32_t id2 = be32(b + o2), cl2 = le32(b + o2 + 4);
                if (!have(lend, o2 + 8, cl2)) break;
                if (id2 == FOURCC('a', 'v', 'i', 'h') && cl2 >= 40) {
                    set_dims(p->info, le32(b + o2 + 8 + 32), le32(b + o2 + 8 + 36));
                    return 0;
                }
                o2 += 8 + (size_t)cl2 + (cl2 & 1);
            }
            return fail_with(p, SBX_ECORRUPT, "AVI without a main header");
        }
        off += 8 + (size_t)cl + (cl & 1);
    }
    return fail_with(p, SBX_ECORRUPT, "AVI without a header list");
}

/* ---- probe -------------------------------------------------------------- */

int sbx_media_probe(const uint8_t *buf, size_t len, struct sbx_media_info *info)
{
    if (!info) return SBX_EINVAL;
    memset(info, 0, sizeof *info);
    info->orientation = 1;
    info->exif_status = SBX_EUNSUPPORTED;
    if (!buf && len) return SBX_EINVAL;
    enum fmt f = sniff(buf, len);
    info->mime = fmts[f].mime;
    info->kind = fmts[f].kind;
    if (f == F_NONE) {
        info->reason = "unknown file type";
        return SBX_EUNSUPPORTED;
    }
    struct probe p = {.b = buf, .len = len, .info = info, .budget = SBX_MAX_MEDIA_ITEMS};
    switch (f) {
    case F_JPEG: case F_PNG: case F_WEBP: case F_HEIC: case F_HEIF: case F_AVIF:
    case F_TIFF: case F_CR2: case F_CR3: case F_NEF: case F_ARW: case F_DNG:
    case F_RAF: case F_ORF: case F_RW2:
        info->exif_status = SBX_ENOENT;
        break;
    default:
        break;
    }
    int rc;
    switch (f) {
    case F_JPEG: rc = jpeg_scan(&p, buf, len, true); break;
    case F_PNG: rc = probe_png(&p); break;
    case F_GIF: rc = probe_gif(&p); break;
    case F_BMP: rc = probe_bmp(&p); break;
    case F_WEBP: rc = probe_webp(&p); break;
    case F_TIFF: case F_CR2: case F_NEF: case F_ARW: case F_DNG: case F_ORF: case F_RW2:
        rc = probe_tiff(&p, f);
        break;
    case F_RAF: rc = probe_raf(&p); break;
    case F_HEIC: case F_HEIF: case F_AVIF: case F_MP4: case F_MOV: case F_CR3:
        rc = probe_bmff(&p, f);
        break;
    case F_WEBM: case F_MKV: rc = probe_ebml(&p); break;
    case F_AVI: rc = probe_avi(&p); break;
    default: rc = SBX_EUNSUPPORTED; break;
    }
    if (info->kind == SBX_MEDIA_RAW && info->width == 0)
        set_dims(info, p.extra.pixel_x, p.extra.pixel_y);
    if (info->orientation < 1 || info->orientation > 8) info->orientation = 1;
    if (info->display_width == 0 || info->display_height == 0) {
        bool swap = sbx_media_orient_swaps(info->orientation);
        info->display_width = swap ? info->height : info->width;
        info->display_height = swap ? info->width : info->height;
    }
    if (rc == 0 && info->exif_status == 0) info->reason = NULL;
    return rc;
}
