/* Error codes shared by every module of shoebox.
 *
 * Following libuv, a function that can fail returns an int: 0 on success or
 * one of the negative SBX_E* codes below. Callbacks are never invoked when the
 * call that would schedule them failed. */
#ifndef SHOEBOX_ERR_H
#define SHOEBOX_ERR_H

#define SBX_ERRNO_MAP(X)                                                     \
    X(NOMEM, "out of memory")                                                \
    X(INVAL, "invalid argument")                                             \
    X(IO, "input/output error")                                              \
    X(NOENT, "not found")                                                    \
    X(EXIST, "already exists")                                               \
    X(PERM, "permission denied")                                             \
    X(CORRUPT, "data is corrupt")                                            \
    X(MALFORMED, "malformed input")                                          \
    X(TOOBIG, "input exceeds a limit")                                       \
    X(CRYPTO, "cryptographic check failed")                                  \
    X(DB, "database error")                                                  \
    X(BUSY, "resource busy")                                                 \
    X(AGAIN, "try again later")                                              \
    X(PROTO, "protocol error")                                               \
    X(AMBIGUOUS, "ambiguous prefix")                                         \
    X(UNSUPPORTED, "unsupported")                                            \
    X(STATE, "operation not valid in this state")                            \
    X(REFUSED, "refused")                                                    \
    X(EXPIRED, "expired")                                                    \
    X(NOSPC, "no space left on device")                                      \
    X(LOCKED, "library is locked")

enum {
    SBX_OK = 0,
    SBX__ERR_BASE = -1000,
#define SBX_ERR_ENUM(name, text) SBX_E##name,
    SBX_ERRNO_MAP(SBX_ERR_ENUM)
#undef SBX_ERR_ENUM
    SBX__ERR_END
};

/* Returns a static, human readable description of an error code. */
const char *sbx_strerror(int err);

/* Maps a positive errno value to the closest SBX_E* code. */
int sbx_err_from_errno(int e);

#endif
