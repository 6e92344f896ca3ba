#include "shoebox/err.h"

#include <errno.h>
#include <stddef.h>

const char *sbx_strerror(int err)
{
    switch (err) {
    case SBX_OK:
        return "success";
#define SBX_ERR_CASE(name, text) case SBX_E##name: return text;
        SBX_ERRNO_MAP(SBX_ERR_CASE)
#undef SBX_ERR_CASE
    default:
        return "unknown error";
    }
}

int sbx_err_from_errno(int e)
{
    switch (e) {
    case ENOMEM: return SBX_ENOMEM;
    case ENOENT: return SBX_ENOENT;
    case EEXIST: return SBX_EEXIST;
    case EACCES:
    case EPERM: return SBX_EPERM;
    case ENOSPC:
    case EDQUOT: return SBX_ENOSPC;
    case EAGAIN: return SBX_EAGAIN;
    case EINVAL: return SBX_EINVAL;
    default: return SBX_EIO;
    }
}
