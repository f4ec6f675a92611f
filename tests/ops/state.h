/* state.h - test-ops' own bookkeeping, shared by main.c and harness.c only. */
#ifndef CLUNET_TEST_OPS_STATE_H
#define CLUNET_TEST_OPS_STATE_H

#include "ops/harness.h"

#define TO_MAX_ALLOCS 256
#define TO_MAX_OPS 256

typedef struct to_state {
    const char *filter;      /* --op: comma-separated op names */
    const char *case_filter; /* --case: text that the shape label must contain */
    char op[64], shape[160];
    uint64_t rng;
    int in_case, case_failed, checks;
    int passed, failed;
    char worst[160], perf_line[256];
    void *host[TO_MAX_ALLOCS];
    int host_count;
    cl_mem dev[TO_MAX_ALLOCS];
    int dev_count;
    const char *op_names[TO_MAX_OPS];
    int op_name_count;
} to_state;

/* True if `op` is one of the comma-separated names in `filter`. */
int to_filter_matches(const char *filter, const char *op);

#endif
