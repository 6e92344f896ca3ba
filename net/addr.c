/* HOST:PORT and [IPv6]:PORT, both ways. See shoebox/addr.h. */
#include "shoebox/addr.h"

#include "shoebox/err.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int sbx_addr_parse(const char *text, bool any_port, struct sockaddr_storage *out)
{
    /* The longest host part: "[" IPv6 "%" zone "]" (libuv takes a zone). */
    char host[80];
    memset(out, 0, sizeof *out);
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof host) return SBX_EINVAL;
    size_t hl = (size_t)(colon - text);
    memcpy(host, text, hl);
    host[hl] = '\0';
    /* Digits only: strtol would take a sign or leading blanks. */
    const char *p = colon + 1;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || digits > 5 || p[digits] != '\0') return SBX_EINVAL;
    long port = strtol(p, NULL, 10);
    if (port > 65535 || (port == 0 && !any_port)) return SBX_EINVAL;
    int rc;
    if (host[0] == '[') {
        if (hl < 3 || host[hl - 1] != ']') return SBX_EINVAL;
        host[hl - 1] = '\0';
        rc = uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)out);
    } else {
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
    }
    /* libuv sets the family before it looks at the address: a refused one
     * leaves nothing behind. */
    if (rc != 0) memset(out, 0, sizeof *out);
    return rc == 0 ? 0 : SBX_EINVAL;
}

void sbx_addr_format(char out[SBX_ADDR_STRLEN + 1], const struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        uv_ip4_name(a4, host, sizeof host);
        snprintf(out, SBX_ADDR_STRLEN + 1, "%s:%u", host, ntohs(a4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a6, host, sizeof host);
        snprintf(out, SBX_ADDR_STRLEN + 1, "[%s]:%u", host, ntohs(a6->sin6_port));
    } else {
        snprintf(out, SBX_ADDR_STRLEN + 1, "?");
    }
}
