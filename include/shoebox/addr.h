/* Socket addresses as the daemon's options, the pairing invitations and the
 * peer table write them: HOST:PORT with an IPv4 address, or [IPv6]:PORT.
 * Numeric only: no name is looked up. The local API, the share server and
 * the peer listener parse their options with it; peers' addresses are
 * printed in the same form. */
#ifndef SHOEBOX_ADDR_H
#define SHOEBOX_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The longest address sbx_addr_format writes: "[" IPv6 "]:" port. */
#define SBX_ADDR_STRLEN 53

/* Parses HOST:PORT (IPv4) or [IPv6]:PORT into *out (zeroed first). The
 * port is 1-65535, or 0 too when `any_port` (a listener that takes any free
 * port). SBX_EINVAL for anything else. */
int sbx_addr_parse(const char *text, bool any_port, struct sockaddr_storage *out);

/* Writes an IPv4 or IPv6 address with its port in the form above; "?" for
 * any other family. */
void sbx_addr_format(char out[SBX_ADDR_STRLEN + 1], const struct sockaddr *sa);

#endif
