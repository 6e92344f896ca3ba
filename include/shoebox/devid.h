/* Device ids in a human form with check characters, as Syncthing does: the
 * 32-byte Ed25519 public key in base32 (52 characters), split into four
 * groups of 13 that each get a Luhn mod 32 check character, shown as eight
 * groups of seven joined by dashes. A mistyped id fails its check. */
#ifndef SHOEBOX_DEVID_H
#define SHOEBOX_DEVID_H

#include <stdint.h>

#define SBX_DEVID_STRLEN 63 /* 56 characters and 7 dashes */

void sbx_devid_format(char out[SBX_DEVID_STRLEN + 1], const uint8_t key[32]);

/* Accepts upper or lower case, with or without dashes or spaces. Returns
 * SBX_EMALFORMED for a wrong length or alphabet and SBX_ECORRUPT when a
 * check character does not match (a typo). */
int sbx_devid_parse(uint8_t key[32], const char *s);

#endif
