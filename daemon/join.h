#ifndef SHOEBOX_JOIN_H
#define SHOEBOX_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "shoebox/entry.h"

/* Creates the identity (if the data dir is new) and joins the library of an
 * invitation URI: pairs with the inviter, waits until every entry it had is
 * here. On failure nothing but the device key is left, and `err` says why. */
int sbx_join_run(const char *dir, const char *uri, const char *name, enum sbx_role role, uint64_t *bytes_received,
                 char *err, size_t errsz);

#endif
