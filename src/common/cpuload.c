/*
 * cpuload.c - the CPU time other processes took: /proc/stat's busy time of all
 * CPUs minus this process's own (getrusage, every thread: PoCL's workers too).
 * Timings of kernels on a CPU device are only worth keeping when this is small.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/cpuload.h"

/* Busy seconds of all CPUs: user, nice, system, irq, softirq and steal; 0 with *cpus = 0 if unreadable. */
static double machine_busy(int *cpus)
{
    *cpus = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal = 0;
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait, &irq,
                     &softirq, &steal);
    fclose(f);
    long tick = sysconf(_SC_CLK_TCK), online = sysconf(_SC_NPROCESSORS_ONLN);
    if (got < 7 || tick <= 0 || online <= 0) return 0;
    *cpus = (int)online;
    return (double)(user + nice + sys + irq + softirq + steal) / (double)tick;
}

static double rusage_seconds(int who)
{
    struct rusage u;
    if (getrusage(who, &u) != 0) return 0;
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

/* This process's CPU seconds, and its waited-for children's (a compiler's linker, say). */
static double self_seconds(void) { return rusage_seconds(RUSAGE_SELF) + rusage_seconds(RUSAGE_CHILDREN); }

void cn_cpu_mark_now(cn_cpu_mark *m)
{
    m->wall = cn_seconds();
    m->busy = machine_busy(&m->cpus);
    m->self = self_seconds();
}

double cn_cpu_others(const cn_cpu_mark *since)
{
    cn_cpu_mark now;
    cn_cpu_mark_now(&now);
    if (!since->cpus || !now.cpus) return 0;
    double others = (now.busy - since->busy) - (now.self - since->self);
    double capacity = (now.wall - since->wall) * now.cpus;
    /* /proc/stat counts whole ticks per CPU: one on each is within its error */
    double grain = now.cpus / (double)sysconf(_SC_CLK_TCK);
    if (capacity <= 0 || others <= grain) return 0;
    return others >= capacity ? 1.0 : others / capacity;
}

double cn_cpu_others_over(const cn_cpu_mark *since, double seconds)
{
    double left = seconds - (cn_seconds() - since->wall);
    if (since->cpus && left > 0) {
        struct timespec t = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        while (nanosleep(&t, &t) != 0 && errno == EINTR) {
        }
    }
    return cn_cpu_others(since);
}
