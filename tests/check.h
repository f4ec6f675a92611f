/*
 * check.h - the assertion of clunet's C tests: CHECK(cond, fmt, ...) counts a
 * pass or prints "FAIL file:line: message [last error]" and counts a failure;
 * check_summary() prints the closing "N passed, M failed" line and returns
 * the exit status.
 */
#ifndef CLUNET_TESTS_CHECK_H
#define CLUNET_TESTS_CHECK_H

#include <stdio.h>

#include "clunet.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                                  \
    do {                                                                                                  \
        if (cond) passed++;                                                                               \
        else {                                                                                            \
            failed++;                                                                                     \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                   \
            printf(__VA_ARGS__);                                                                          \
            printf(" [last error: %s]\n", clunet_last_error());                                           \
            fflush(stdout);                                                                               \
        }                                                                                                 \
    } while (0)

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    return failed || !passed ? 1 : 0;
}

#endif
