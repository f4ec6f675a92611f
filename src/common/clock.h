/* clock.h - a monotonic clock for timings. */
#ifndef CLUNET_COMMON_CLOCK_H
#define CLUNET_COMMON_CLOCK_H

/* Seconds since an arbitrary start, never going back. */
double cn_seconds(void);

#endif
