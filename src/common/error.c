/* error.c - status strings and the per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

static _Thread_local char last_error[1024];

const char *clunet_status_string(clunet_status status)
{
    switch (status) {
    case CLUNET_OK: return "success";
    case CLUNET_ERR_INVALID_ARGUMENT: return "invalid argument";
    case CLUNET_ERR_NO_PLATFORM: return "no OpenCL platform found";
    case CLUNET_ERR_NO_DEVICE: return "no matching OpenCL device";
    case CLUNET_ERR_OPENCL: return "OpenCL error";
    case CLUNET_ERR_BUILD: return "kernel build failed";
    case CLUNET_ERR_OUT_OF_MEMORY: return "out of memory";
    case CLUNET_ERR_IO: return "I/O error";
    case CLUNET_ERR_FORMAT: return "malformed input";
    case CLUNET_ERR_UNSUPPORTED: return "unsupported";
    case CLUNET_ERR_NUMERIC: return "non-finite value";
    case CLUNET_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *clunet_last_error(void)
{
    return last_error[0] ? last_error : "no error recorded";
}

clunet_status cn_fail(clunet_status status, const char *fmt, ...)
{
    /* Format aside first: callers may pass clunet_last_error() itself as an argument. */
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return status;
}
