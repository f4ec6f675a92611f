/* clock.c - a monotonic clock for timings. */
#include <time.h>

#include "common/clock.h"

double cn_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
