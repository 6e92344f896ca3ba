/* Fuzzes the HOST:PORT parser (peers' addresses arrive from the network in
 * peer exchange). Whatever parses with a port of 1-65535 parses for a
 * listener too; what parses prints in at most SBX_ADDR_STRLEN characters,
 * and the printed form parses back to the same address and port and
 * prints the same again: one canonical spelling. */
#include "shoebox/addr.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static void same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    SBX_ASSERT(a->ss_family == b->ss_family);
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
        SBX_ASSERT(x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr);
    } else {
        /* A zone (scope id) is not printed: address and port only. */
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
        SBX_ASSERT(x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char in[300];
    if (size >= sizeof in) size = sizeof in - 1;
    memcpy(in, data, size);
    in[size] = '\0';
    struct sockaddr_storage ss, any, back;
    int rc = sbx_addr_parse(in, false, &ss);
    int rca = sbx_addr_parse(in, true, &any);
    SBX_ASSERT(rc == 0 || rc == SBX_EINVAL);
    SBX_ASSERT(rca == 0 || rca == SBX_EINVAL);
    if (rc == 0) {
        SBX_ASSERT(rca == 0);
        same_addr(&ss, &any);
    }
    if (rca != 0) {
        SBX_ASSERT(any.ss_family == AF_UNSPEC);
        return 0;
    }
    SBX_ASSERT(any.ss_family == AF_INET || any.ss_family == AF_INET6);
    char out[SBX_ADDR_STRLEN + 1], again[SBX_ADDR_STRLEN + 1];
    sbx_addr_format(out, (const struct sockaddr *)&any);
    SBX_ASSERT(strlen(out) <= SBX_ADDR_STRLEN);
    SBX_ASSERT(sbx_addr_parse(out, true, &back) == 0);
    same_addr(&any, &back);
    sbx_addr_format(again, (const struct sockaddr *)&back);
    SBX_ASSERT(strcmp(out, again) == 0);
    return 0;
}
