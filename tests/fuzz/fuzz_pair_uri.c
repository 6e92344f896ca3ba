/* Fuzzes the pairing URI parser (and, through it, device ids, base64url,
 * percent-decoding and address checks). Whatever parses must format, and
 * the formatted URI must parse back to the same invitation and format to
 * the same string: the URI has one canonical spelling per invitation. */
#include "shoebox/devid.h"
#include "shoebox/err.h"
#include "shoebox/pair.h"
#include "shoebox/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int same(const sbx_pair_invite *a, const sbx_pair_invite *b)
{
    if (memcmp(a->library, b->library, 16) || memcmp(a->device_key, b->device_key, 32) ||
        memcmp(a->psk, b->psk, 32) || a->expires_s != b->expires_s || a->naddrs != b->naddrs)
        return 0;
    for (size_t i = 0; i < a->naddrs; i++)
        if (strcmp(a->addrs[i], b->addrs[i]) != 0) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Inputs a little over the limit exercise the length check. */
    static char in[SBX_MAX_PAIR_URI + 64];
    if (size >= sizeof in) size = sizeof in - 1;
    memcpy(in, data, size);
    in[size] = '\0';

    static sbx_pair_invite inv, back;
    static char uri[SBX_MAX_PAIR_URI + 1], again[SBX_MAX_PAIR_URI + 1];
    int rc = sbx_pair_uri_parse(&inv, in);
    SBX_ASSERT(rc <= 0 && (rc == 0 || sbx_strerror(rc) != NULL));
    if (rc == 0) {
        SBX_ASSERT(inv.naddrs >= 1 && inv.naddrs <= SBX_MAX_PAIR_ADDRS);
        SBX_ASSERT(inv.expires_s >= 0);
        for (size_t i = 0; i < inv.naddrs; i++) SBX_ASSERT(sbx_pair_addr_check(inv.addrs[i]) == 0);
        SBX_ASSERT(sbx_pair_uri_format(uri, &inv) == 0);
        SBX_ASSERT(sbx_pair_uri_parse(&back, uri) == 0);
        SBX_ASSERT(same(&inv, &back));
        SBX_ASSERT(sbx_pair_uri_format(again, &back) == 0);
        SBX_ASSERT(strcmp(uri, again) == 0);
    }

    /* The same bytes as a device id and as an address. */
    uint8_t key[32], key2[32];
    if (sbx_devid_parse(key, in) == 0) {
        char id[SBX_DEVID_STRLEN + 1];
        sbx_devid_format(id, key);
        SBX_ASSERT(sbx_devid_parse(key2, id) == 0 && memcmp(key, key2, 32) == 0);
    }
    rc = sbx_pair_addr_check(in);
    SBX_ASSERT(rc == 0 || rc == SBX_EMALFORMED || rc == SBX_ETOOBIG);
    return 0;
}
