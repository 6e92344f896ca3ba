/* Passphrases of encrypted libraries, as the CLI and the daemon take them:
 * from a file (unattended starts), or typed on the terminal without echo. */
#ifndef SHOEBOX_PASSPHRASE_H
#define SHOEBOX_PASSPHRASE_H

#include <stddef.h>

#include "shoebox/limits.h"

/* Room for the longest passphrase and a terminating NUL. */
#define SBX_PASSPHRASE_BUF (SBX_MAX_PASSPHRASE + 2)

/* Reads a passphrase from a file: its first line, without the line end.
 * The file must not be readable by group or others (SBX_EPERM: it may have
 * leaked already); SBX_EINVAL when empty, SBX_ETOOBIG above
 * SBX_MAX_PASSPHRASE bytes. out gets a NUL at out[*len]. */
int sbx_passphrase_read_file(const char *path, char out[SBX_PASSPHRASE_BUF], size_t *len);

/* Prompts on /dev/tty and reads a line with echo off. SBX_ENOENT when there
 * is no terminal, SBX_EINVAL for an empty line. */
int sbx_passphrase_prompt(const char *prompt, char out[SBX_PASSPHRASE_BUF], size_t *len);

/* Wipes a passphrase buffer. */
void sbx_passphrase_wipe(char buf[SBX_PASSPHRASE_BUF]);

#endif
