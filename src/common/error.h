/*
 * error.h - how the library reports failure: a status code returned up the
 * stack and a one-line message kept per thread for clunet_last_error().
 */
#ifndef CLUNET_COMMON_ERROR_H
#define CLUNET_COMMON_ERROR_H

#include "clunet.h"

/* Records the message for clunet_last_error() and returns status. */
clunet_status cn_fail(clunet_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Propagates a non-OK status. */
#define CN_TRY(expr)                                                                   \
    do {                                                                               \
        clunet_status cn_st_ = (expr);                                                 \
        if (cn_st_ != CLUNET_OK) return cn_st_;                                        \
    } while (0)

#endif
