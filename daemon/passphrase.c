#include "shoebox/passphrase.h"
#include "shoebox/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

/* Cuts the first line end (and anything after it) off buf[0..*len). */
static void first_line(char *buf, size_t *len)
{
    for (size_t i = 0; i < *len; i++) {
        if (buf[i] == '\n' || buf[i] == '\r') {
            *len = i;
            break;
        }
    }
    buf[*len] = '\0';
}

/* Keeps the first line of what was read, checks its length and hands it
 * out; on any failure the buffer is wiped. */
static int finish_read(int rc, char out[SBX_PASSPHRASE_BUF], size_t n, size_t *len)
{
    if (rc == 0) {
        first_line(out, &n);
        if (n == 0) rc = SBX_EINVAL;
        else if (n > SBX_MAX_PASSPHRASE) rc = SBX_ETOOBIG;
    }
    if (rc != 0) {
        sodium_memzero(out, SBX_PASSPHRASE_BUF);
        return rc;
    }
    *len = n;
    return 0;
}

int sbx_passphrase_read_file(const char *path, char out[SBX_PASSPHRASE_BUF], size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return sbx_err_from_errno(errno);
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) rc = sbx_err_from_errno(errno);
    else if (S_ISREG(st.st_mode) && (st.st_mode & 077)) rc = SBX_EPERM;
    size_t n = 0;
    /* One byte more than a passphrase may have, to tell a long one. */
    while (rc == 0 && n < SBX_PASSPHRASE_BUF - 1) {
        ssize_t r = read(fd, out + n, SBX_PASSPHRASE_BUF - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = sbx_err_from_errno(errno);
        if (r <= 0) break;
        n += (size_t)r;
        if (memchr(out, '\n', n)) break;
    }
    close(fd);
    return finish_read(rc, out, n, len);
}

int sbx_passphrase_prompt(const char *prompt, char out[SBX_PASSPHRASE_BUF], size_t *len)
{
    *len = 0;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return SBX_ENOENT;
    struct termios old, quiet;
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    if (write(fd, prompt, strlen(prompt)) < 0) { /* the prompt is a courtesy */ }
    size_t n = 0;
    int rc = 0;
    while (n < SBX_PASSPHRASE_BUF - 1) {
        ssize_t r = read(fd, out + n, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = sbx_err_from_errno(errno);
        if (r <= 0 || out[n] == '\n') break;
        n++;
    }
    if (restore) tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) { /* as above */ }
    close(fd);
    return finish_read(rc, out, n, len);
}

void sbx_passphrase_wipe(char buf[SBX_PASSPHRASE_BUF]) { sodium_memzero(buf, SBX_PASSPHRASE_BUF); }
