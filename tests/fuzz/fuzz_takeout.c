/* Fuzzes the Takeout sidecar parser, the folder matcher and the index.
 *
 * The first byte picks the target:
 *   0: the rest is one sidecar JSON;
 *   1: the rest is one folder, a name per line; a line "name\ttitle" gives a
 *      parsed title, a first byte 0x01 / 0x02 marks album / other JSON;
 *   2: the rest is a Takeout, a path per line; "path\tjson" gives the bytes
 *      of a JSON entry.
 * Beyond "no crash", the matcher's output is checked for consistency and for
 * independence from the input order. */
#include "shoebox/err.h"
#include "shoebox/limits.h"
#include "shoebox/takeout.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINES 256

#define FUZZ_ASSERT(c)                                                       \
    do {                                                                     \
        if (!(c)) {                                                          \
            fprintf(stderr, "fuzz_takeout: %s (line %d)\n", #c, __LINE__);  \
            abort();                                                         \
        }                                                                    \
    } while (0)

static void fuzz_sidecar(const uint8_t *data, size_t size)
{
    struct sbx_takeout_sidecar sc;
    int rc = sbx_takeout_sidecar_parse(&sc, data, size);
    if (rc != 0) {
        FUZZ_ASSERT(sc.title == NULL && sc.description == NULL);
        return;
    }
    FUZZ_ASSERT(sc.kind >= SBX_TAKEOUT_JSON_MEDIA && sc.kind <= SBX_TAKEOUT_JSON_OTHER);
    if (sc.title) {
        size_t n = strlen(sc.title);
        FUZZ_ASSERT(n > 0 && n < SBX_MAX_STR && sbx_takeout_utf16_len(sc.title, n) != SIZE_MAX);
    }
    if (sc.description) {
        size_t n = strlen(sc.description);
        FUZZ_ASSERT(n > 0 && n < SBX_MAX_STR);
        FUZZ_ASSERT(sbx_takeout_utf16_len(sc.description, n) != SIZE_MAX);
    }
    if (sc.has_geo) {
        FUZZ_ASSERT(isfinite(sc.latitude) && fabs(sc.latitude) <= 90.0);
        FUZZ_ASSERT(isfinite(sc.longitude) && fabs(sc.longitude) <= 180.0);
        FUZZ_ASSERT(sc.latitude != 0.0 || sc.longitude != 0.0);
    }
    sbx_takeout_sidecar_clear(&sc);
}

/* Splits a copy of the input into NUL-terminated lines, each optionally cut
 * at a tab into (head, tail). */
static size_t split_lines(char *buf, char **head, char **tail, size_t max)
{
    size_t n = 0;
    char *p = buf;
    while (*p && n < max) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        char *tab = strchr(p, '\t');
        if (tab) *tab = '\0';
        head[n] = p;
        tail[n] = tab ? tab + 1 : NULL;
        n++;
        if (!nl) break;
        p = nl + 1;
    }
    return n;
}

static void check_folder(const struct sbx_takeout_file *f, size_t n)
{
    uint32_t users[MAX_LINES] = {0};
    for (size_t i = 0; i < n; i++) {
        FUZZ_ASSERT(f[i].role >= SBX_TAKEOUT_ROLE_MEDIA && f[i].role <= SBX_TAKEOUT_ROLE_DUPLICATE);
        if (f[i].role != SBX_TAKEOUT_ROLE_MEDIA) {
            FUZZ_ASSERT(f[i].sidecar == SBX_TAKEOUT_NONE && f[i].live_of == SBX_TAKEOUT_NONE &&
                        f[i].edited_of == SBX_TAKEOUT_NONE);
            continue;
        }
        if (f[i].sidecar != SBX_TAKEOUT_NONE) {
            FUZZ_ASSERT(f[i].sidecar < n && f[f[i].sidecar].role == SBX_TAKEOUT_ROLE_SIDECAR);
            FUZZ_ASSERT(f[i].how != SBX_TAKEOUT_HOW_NONE);
            users[f[i].sidecar]++;
        } else {
            FUZZ_ASSERT(f[i].how == SBX_TAKEOUT_HOW_NONE);
        }
        if (f[i].live_of != SBX_TAKEOUT_NONE)
            FUZZ_ASSERT(f[i].live_of < n && f[i].live_of != i &&
                        f[f[i].live_of].role == SBX_TAKEOUT_ROLE_MEDIA);
        if (f[i].edited_of != SBX_TAKEOUT_NONE)
            FUZZ_ASSERT(f[i].edited_of < n && f[i].edited_of != i &&
                        f[f[i].edited_of].role == SBX_TAKEOUT_ROLE_MEDIA);
    }
    for (size_t i = 0; i < n; i++) {
        if (f[i].role == SBX_TAKEOUT_ROLE_SIDECAR) FUZZ_ASSERT(f[i].users == users[i]);
        else FUZZ_ASSERT(f[i].users == 0);
    }
}

static size_t find_name(const struct sbx_takeout_file *f, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].role != SBX_TAKEOUT_ROLE_DUPLICATE && strcmp(f[i].name, name) == 0) return i;
    return SBX_TAKEOUT_NONE;
}

static void fuzz_match(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return;
    memcpy(buf, data, size);
    buf[size] = '\0';
    static char *head[MAX_LINES], *tail[MAX_LINES];
    static struct sbx_takeout_file a[MAX_LINES], b[MAX_LINES];
    size_t n = split_lines(buf, head, tail, MAX_LINES);
    for (size_t i = 0; i < n; i++) {
        int kind = SBX_TAKEOUT_JSON_UNKNOWN;
        char *name = head[i];
        if (name[0] == 1) { kind = SBX_TAKEOUT_JSON_ALBUM; name++; }
        else if (name[0] == 2) { kind = SBX_TAKEOUT_JSON_OTHER; name++; }
        a[i] = (struct sbx_takeout_file){.name = name, .json_kind = kind, .title = tail[i]};
        b[n - 1 - i] = a[i];
    }
    int rc = sbx_takeout_match(a, n);
    int rc2 = sbx_takeout_match(b, n);
    FUZZ_ASSERT(rc == rc2);
    bool dups = false;
    for (size_t i = 0; i < n; i++) dups |= a[i].role == SBX_TAKEOUT_ROLE_DUPLICATE;
    if (rc == 0) {
        check_folder(a, n);
        check_folder(b, n);
    }
    /* The same names in reverse order give the same answer (when no name is
     * repeated: which copy of a repeated name survives depends on order). */
    if (rc == 0 && !dups) {
        for (size_t i = 0; i < n; i++) {
            if (a[i].role == SBX_TAKEOUT_ROLE_DUPLICATE) continue;
            size_t j = find_name(b, n, a[i].name);
            FUZZ_ASSERT(j != SBX_TAKEOUT_NONE);
            FUZZ_ASSERT(a[i].role == b[j].role && a[i].how == b[j].how);
            FUZZ_ASSERT(a[i].users == b[j].users && a[i].motion == b[j].motion);
            const size_t la[3] = {a[i].sidecar, a[i].live_of, a[i].edited_of};
            const size_t lb[3] = {b[j].sidecar, b[j].live_of, b[j].edited_of};
            for (int k = 0; k < 3; k++) {
                FUZZ_ASSERT((la[k] == SBX_TAKEOUT_NONE) == (lb[k] == SBX_TAKEOUT_NONE));
                if (la[k] != SBX_TAKEOUT_NONE)
                    FUZZ_ASSERT(strcmp(a[la[k]].name, b[lb[k]].name) == 0);
            }
        }
    }
    free(buf);
}

static void fuzz_index(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return;
    memcpy(buf, data, size);
    buf[size] = '\0';
    static char *head[MAX_LINES], *tail[MAX_LINES];
    size_t n = split_lines(buf, head, tail, MAX_LINES);
    sbx_takeout_index *ix;
    if (sbx_takeout_index_new(&ix) != 0) { free(buf); return; }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *j = (const uint8_t *)tail[i];
        sbx_takeout_index_add(ix, head[i], i, (uint32_t)(i & 1), j, j ? strlen(tail[i]) : 0);
    }
    if (sbx_takeout_index_finish(ix) == 0) {
        struct sbx_takeout_stats st;
        sbx_takeout_index_stats(ix, &st);
        FUZZ_ASSERT(st.matched_media + st.unmatched_media == st.media);
        FUZZ_ASSERT(sbx_takeout_index_media_count(ix) == st.media);
        FUZZ_ASSERT(sbx_takeout_index_orphan_count(ix) == st.orphan_sidecars);
        FUZZ_ASSERT(st.media == 0 || sbx_takeout_index_root(ix) != NULL);
        for (size_t i = 0; i < sbx_takeout_index_media_count(ix); i++) {
            struct sbx_takeout_media m, m2;
            FUZZ_ASSERT(sbx_takeout_index_media(ix, i, &m) == 0);
            FUZZ_ASSERT(sbx_takeout_index_find(ix, m.path, &m2) == 0 && m2.path == m.path);
            struct sbx_takeout_folder fo;
            FUZZ_ASSERT(sbx_takeout_index_folder(ix, m.folder, &fo) == 0);
            FUZZ_ASSERT(strncmp(m.path, fo.path, strlen(fo.path)) == 0);
            if (fo.kind == SBX_TAKEOUT_FOLDER_ALBUM) FUZZ_ASSERT(fo.title != NULL);
        }
    }
    sbx_takeout_index_free(ix);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    switch (data[0] % 3) {
    case 0: fuzz_sidecar(data + 1, size - 1); break;
    case 1: fuzz_match(data + 1, size - 1); break;
    default: fuzz_index(data + 1, size - 1); break;
    }
    return 0;
}
