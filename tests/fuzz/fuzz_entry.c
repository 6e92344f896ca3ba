/* Fuzzes sbx_entry_decode.
 *
 * Each input is tried twice: as it is (the signature almost never holds, so
 * this reaches the parser, the limits and the canonical check), and with its
 * last 64 bytes replaced by a valid signature of the rest under the corpus
 * key (so mutated bodies whose author is that key decode fully). Whenever an
 * entry decodes, the builder must rebuild the very same bytes from the
 * decoded fields: one meaning, one encoding. */
#include "fuzz_entry_common.h"
#include "shoebox/entry.h"
#include "shoebox/err.h"
#include "shoebox/limits.h"

#include <stdio.h>
#include <stdlib.h>

static uint8_t PK[32], SK[64];

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_entry: %s\n", why);
    abort();
}

static void check_entry(const struct sbx_entry *e, const uint8_t *data, size_t size)
{
    if (e->raw_len != size || memcmp(e->raw, data, size) != 0) fail("raw differs from input");
    if (e->n_ops == 0 || e->n_ops > SBX_MAX_OPS_PER_ENTRY) fail("op count out of bounds");
    uint8_t h[32];
    crypto_generichash(h, 32, data, size, NULL, 0);
    if (memcmp(h, e->hash, 32) != 0) fail("hash");
    for (uint32_t i = 0; i < e->n_ops; i++) {
        const struct sbx_op *op = &e->ops[i];
        /* Strings point inside the entry's own bytes. */
        const struct sbx_str *ss[] = {&op->name, &op->value.str, &op->facts.mime_type,
                                      &op->facts.file_name, &op->facts.camera_make,
                                      &op->facts.camera_model};
        for (size_t k = 0; k < sizeof ss / sizeof ss[0]; k++) {
            if (ss[k]->len == 0) continue;
            if (ss[k]->len > SBX_MAX_STR) fail("string over limit");
            const uint8_t *p = (const uint8_t *)ss[k]->ptr;
            if (p < e->raw || p + ss[k]->len > e->raw + e->raw_len) fail("string outside entry");
        }
        if (op->n_dots > SBX_MAX_DOTS_PER_REMOVE) fail("dots over limit");
    }
    if (memcmp(e->author, PK, 32) != 0) return;
    /* Rebuild from the decoded fields with the same key. */
    sbx_entry_builder *b = NULL;
    struct sbx_entry *r = NULL;
    if (sbx_entry_builder_new(&b, e->library, e->author, e->seq, e->prev, e->hlc) != 0)
        fail("builder refused a decoded head");
    for (uint32_t i = 0; i < e->n_ops; i++)
        if (sbx_entry_builder_add(b, &e->ops[i]) != 0) fail("builder refused a decoded op");
    if (sbx_entry_builder_finish(b, SK, &r) != 0) fail("builder could not finish");
    /* Ed25519 signatures are deterministic, so the whole entry must match. */
    if (r->raw_len != e->raw_len || memcmp(r->raw, e->raw, e->raw_len) != 0)
        fail("rebuilt entry differs");
    sbx_entry_free(r);
    sbx_entry_builder_free(b);
}

static void try_decode(const uint8_t *data, size_t size)
{
    struct sbx_entry *e = NULL;
    int rc = sbx_entry_decode(data, size, &e);
    if (rc == 0) {
        if (!e) fail("success without an entry");
        check_entry(e, data, size);
        sbx_entry_free(e);
        return;
    }
    if (e) fail("failure with an entry");
    if (rc != SBX_EMALFORMED && rc != SBX_ETOOBIG && rc != SBX_ECRYPTO && rc != SBX_ENOMEM)
        fail("unexpected error code");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0) fail("sodium_init");
        fuzz_entry_keypair(PK, SK);
        ready = 1;
    }
    try_decode(data, size);
    if (size > SBX_SIG_BYTES && size <= SBX_MAX_ENTRY_BYTES) {
        uint8_t *buf = malloc(size);
        if (!buf) return 0;
        size_t body = size - SBX_SIG_BYTES;
        memcpy(buf, data, body);
        crypto_sign_detached(buf + body, NULL, buf, body, SK);
        try_decode(buf, size);
        free(buf);
    }
    return 0;
}
