/* Share link tokens: signing by the creating device, and the check any
 * device runs before serving a link. See shoebox/share.h. */
#include "shoebox/share.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <sodium.h>
#include <string.h>

static const char DOMAIN[] = "shoebox/share/1";
#define MSG_BYTES (sizeof DOMAIN - 1 + 16 + 16 + 1 + 16 + 8)

static void claim_bytes(uint8_t m[MSG_BYTES], const struct sbx_share_claim *c)
{
    uint8_t *p = m;
    memcpy(p, DOMAIN, sizeof DOMAIN - 1);
    p += sizeof DOMAIN - 1;
    memcpy(p, c->library, 16);
    p += 16;
    memcpy(p, c->link, 16);
    p += 16;
    *p++ = c->is_album ? 'a' : 'p';
    memcpy(p, c->target, 16);
    p += 16;
    uint64_t e = (uint64_t)c->expires_at_ms;
    for (int i = 0; i < 8; i++) *p++ = (uint8_t)(e >> (56 - 8 * i));
    SBX_ASSERT((size_t)(p - m) == MSG_BYTES);
}

void sbx_share_token_make(char out[SBX_SHARE_TOKEN_STRLEN + 1], const struct sbx_share_claim *c, const uint8_t sk[64])
{
    uint8_t m[MSG_BYTES], tok[SBX_SHARE_TOKEN_BYTES];
    claim_bytes(m, c);
    tok[0] = SBX_SHARE_TOKEN_VERSION;
    memcpy(tok + 1, c->link, 16);
    crypto_sign_detached(tok + 17, NULL, m, sizeof m, sk);
    sodium_bin2base64(out, SBX_SHARE_TOKEN_STRLEN + 1, tok, sizeof tok, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int sbx_share_token_parse(const char *text, size_t len, uint8_t link[16], uint8_t sig[64])
{
    uint8_t tok[SBX_SHARE_TOKEN_BYTES];
    size_t n = 0;
    const char *end = NULL;
    if (!text || len != SBX_SHARE_TOKEN_STRLEN) return SBX_EMALFORMED;
    /* libsodium 1.0.18's decoder takes some bytes above 0x7f for base64
     * characters: the alphabet is checked here, so a token has one
     * spelling. */
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return SBX_EMALFORMED;
    }
    if (sodium_base642bin(tok, sizeof tok, text, len, NULL, &n, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != sizeof tok || end != text + len || tok[0] != SBX_SHARE_TOKEN_VERSION)
        return SBX_EMALFORMED;
    memcpy(link, tok + 1, 16);
    memcpy(sig, tok + 17, 64);
    return 0;
}

int sbx_share_token_verify(const struct sbx_share_claim *c, const uint8_t sig[64], const uint8_t pk[32])
{
    uint8_t m[MSG_BYTES];
    claim_bytes(m, c);
    return crypto_sign_verify_detached(sig, m, sizeof m, pk) == 0 ? 0 : SBX_ECRYPTO;
}

int sbx_share_load(sbx_store *s, const uint8_t id[16], struct sbx_share_link *out)
{
    sqlite3_stmt *st = sbx_store_stmt(s, "SELECT l.album_id, l.photo_id, ifnull(l.expires_at, 0), l.created_at, "
                                         "ifnull(l.revoked_at, 0), a.key FROM share_links l "
                                         "JOIN authors a ON a.ix = l.created_by WHERE l.id = ?1 AND l.created_at IS NOT NULL");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SBX_ENOENT : SBX_EDB;
    }
    memset(out, 0, sizeof *out);
    memcpy(out->id, id, 16);
    bool album = sqlite3_column_bytes(st, 0) == 16, photo = sqlite3_column_bytes(st, 1) == 16;
    rc = 0;
    /* A create names exactly one target; a row with none or both could only
     * come from a forged op, and is never served. */
    if (album == photo || sqlite3_column_bytes(st, 5) != 32) {
        rc = SBX_ENOENT;
    } else {
        out->is_album = album;
        memcpy(out->target, sqlite3_column_blob(st, album ? 0 : 1), 16);
        out->expires_at_ms = sqlite3_column_int64(st, 2);
        out->created_at_ms = sqlite3_column_int64(st, 3);
        out->revoked_at_ms = sqlite3_column_int64(st, 4);
        memcpy(out->creator, sqlite3_column_blob(st, 5), 32);
    }
    sqlite3_reset(st);
    return rc;
}

int sbx_share_target_alive(sbx_store *s, bool is_album, const uint8_t id[16])
{
    sqlite3_stmt *st = sbx_store_stmt(
        s, is_album ? "SELECT 1 FROM albums WHERE id = ?1 AND create_hlc IS NOT NULL AND is_deleted = 0"
                    : "SELECT 1 FROM photos WHERE id = ?1 AND put_hlc IS NOT NULL AND is_deleted = 0");
    if (!st) return SBX_EDB;
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? SBX_ENOENT : SBX_EDB;
}

int sbx_share_resolve(sbx_store *s, const uint8_t library[16], const char *token, size_t len, int64_t now_ms,
                      struct sbx_share_link *out)
{
    uint8_t link[16], sig[64];
    if (sbx_share_token_parse(token, len, link, sig) != 0) return SBX_ENOENT;
    struct sbx_share_link l;
    int rc = sbx_share_load(s, link, &l);
    if (rc != 0) return rc;
    if (l.revoked_at_ms != 0) return SBX_ENOENT;
    if (l.expires_at_ms != 0 && now_ms >= l.expires_at_ms) return SBX_ENOENT;
    struct sbx_share_claim c = {.is_album = l.is_album, .expires_at_ms = l.expires_at_ms};
    memcpy(c.library, library, 16);
    memcpy(c.link, l.id, 16);
    memcpy(c.target, l.target, 16);
    if (sbx_share_token_verify(&c, sig, l.creator) != 0) return SBX_ENOENT;
    if ((rc = sbx_share_target_alive(s, l.is_album, l.target)) != 0) return rc;
    *out = l;
    return 0;
}
