#include "shoebox/datadir.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int sbx_datadir_default(char *out, size_t size)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    int n;
    if (xdg && *xdg) {
        n = snprintf(out, size, "%s/shoebox", xdg);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home) return SBX_ENOENT;
        n = snprintf(out, size, "%s/.local/share/shoebox", home);
    }
    return (n < 0 || (size_t)n >= size) ? SBX_ETOOBIG : 0;
}

int sbx_datadir_path(char *out, size_t size, const char *dir, const char *name)
{
    return sbx_path_join(out, size, dir, name);
}

int sbx_datadir_lock(const char *dir, int *fd_out, long *other_pid)
{
    char path[4096];
    int rc = sbx_datadir_path(path, sizeof path, dir, SBX_FILE_LOCK);
    if (rc != 0) return rc;
    *other_pid = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return sbx_err_from_errno(errno);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char buf[32] = {0};
        if (pread(fd, buf, sizeof buf - 1, 0) > 0) *other_pid = strtol(buf, NULL, 10);
        close(fd);
        return e == EWOULDBLOCK ? SBX_EBUSY : sbx_err_from_errno(e);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        rc = sbx_err_from_errno(errno);
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

int sbx_datadir_open_workers(const char *dir, const sbx_store *like, size_t n, sbx_store *stores[],
                             sbx_blobstore *blobs[], char *err, size_t errsz)
{
    char path[4096];
    int rc = sbx_datadir_path(path, sizeof path, dir, SBX_FILE_DB);
    for (size_t i = 0; i < n && rc == 0; i++) {
        SBX_ASSERT((stores[i] == NULL) == (blobs[i] == NULL));
        if (stores[i]) continue;
        rc = sbx_store_open_sibling(&stores[i], like, path, err, errsz);
        if (rc == 0) rc = sbx_blobstore_open(&blobs[i], dir, stores[i]);
        if (rc != 0) {
            sbx_blobstore_close(blobs[i]);
            sbx_store_close(stores[i]);
            blobs[i] = NULL;
            stores[i] = NULL;
        }
    }
    return rc;
}
