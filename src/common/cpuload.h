/* cpuload.h - how much of the machine's CPU time other processes took (Linux; elsewhere unknown). */
#ifndef CLUNET_COMMON_CPULOAD_H
#define CLUNET_COMMON_CPULOAD_H

/* A moment's counters: wall seconds, the machine's busy CPU seconds (steal included) and this process's. */
typedef struct cn_cpu_mark {
    double wall, busy, self;
    int cpus; /* 0: the counters are not available here */
} cn_cpu_mark;

void cn_cpu_mark_now(cn_cpu_mark *m);

/*
 * The share of the machine's CPU capacity (0..1) that other processes (or a
 * hypervisor's other guests) used since `since`; 0 where that cannot be told
 * apart from the counters' tick granularity, or where they are missing.
 */
double cn_cpu_others(const cn_cpu_mark *since);

/* cn_cpu_others over at least `seconds` since `since`: first sleeps out what is left of them. */
double cn_cpu_others_over(const cn_cpu_mark *since, double seconds);

#endif
