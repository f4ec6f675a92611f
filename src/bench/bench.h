/*
 * bench.h - measuring one device for `clunet bench`: the U-Net's training step
 * and inference timed on synthetic batches, a per-node profile of a training
 * step, and probes of the device's own ceilings (multiply-add rate, GEMM rate,
 * memory bandwidth) so model speed reads as a fraction of what the device can do.
 *
 * Everything here measures with the host's monotonic clock around cn_finish():
 * no profiling queue is needed, so every OpenCL device can be measured.
 * Nothing here prints; progress goes through an optional callback.
 */
#ifndef CLUNET_BENCH_H
#define CLUNET_BENCH_H

#include "graph/exec.h"
#include "graph/graph.h"
#include "runtime/runtime.h"


/* ---- peak probes -------------------------------------------------------- */

/* Best GFLOP/s of chained float4/float8 multiply-adds over enough work-items to fill the device. */
clunet_status cn_probe_fma(clunet_context *ctx, double *gflops);

/* Best GFLOP/s of cn_gemm on a square product of side n (the practically reachable rate). */
clunet_status cn_probe_gemm(clunet_context *ctx, int n, double *gflops);

/* Best GB/s (bytes read + written) of a float4 copy between two large buffers. */
clunet_status cn_probe_bandwidth(clunet_context *ctx, double *gbs);

/* ---- per-node profile of a training step -------------------------------- */

typedef struct cn_step_profile {
    double *forward_ms;  /* per node */
    double *backward_ms; /* per node */
    double loss_ms;      /* loss and its gradient */
    double zero_ms;      /* zeroing the parameter gradients */
    double adam_ms;
    double total_ms;     /* the sum of all of the above */
} cn_step_profile;

/* The median of v[0..n), n >= 1, which it sorts in place (so v[0] is then the minimum). */
double cn_bench_median(double *v, int n);

#define CN_PROFILE_PASSES 5

/*
 * Times every node of a training step (forward, loss, backward, Adam) with a
 * cn_finish() after each: the median of CN_PROFILE_PASSES such steps, node by
 * node, after an untimed one. The synchronisation adds a little per node, so
 * the total runs somewhat above an unprofiled step. Leaves e's gradients and
 * Adam state meaningless: profile after the timed steps.
 */
clunet_status cn_profile_step(cn_exec *e, cn_step_profile *p);
void cn_step_profile_free(cn_step_profile *p);

/* Time spent under one name, e.g. "decoder.0 conv 3x3" or (by kind) "conv 3x3". */
typedef struct cn_op_time {
    char name[96];
    double ms;
    double forward_ms; /* the part of ms in forward passes (the rest: backward, loss, Adam) */
    int nodes;
    /* Convs only (else 0): their multiply-adds x 2 in ms, forward and backward, and the least memory
       traffic they need: every tensor they read or write, once (x, w, y forward; dy, w, dx, x, dw back). */
    double flops, bytes;
} cn_op_time;

/*
 * Sums forward + backward time per block label and op (by_kind = 0) or per op
 * kind alone (by_kind = 1), plus the loss, zeroing and Adam entries; sorted by
 * time, most first. Writes at most `cap` entries and returns how many.
 */
int cn_profile_group(const cn_graph *g, const cn_step_profile *p, int by_kind, cn_op_time *out, int cap);

/* ---- the model ---------------------------------------------------------- */

#define CN_BENCH_TOP 24 /* every op kind of the U-Net fits */

typedef struct cn_bench_config {
    int batch, size;  /* the synthetic batch: (batch, 3, size, size) */
    int steps;        /* timed training steps and timed inferences */
    int warmup;       /* untimed runs before each */
    int profile;      /* also run the per-node profile pass */
    void (*progress)(void *user, const char *what); /* may be NULL */
    void *user;
} cn_bench_config;

typedef struct cn_bench_result {
    double forward_flops;              /* one forward pass over the batch */
    double train_median_ms, train_min_ms;
    double infer_median_ms, infer_min_ms;
    double peak_memory_mib;            /* the context's peak while training (incl. GEMM choice scratch) */
    double infer_memory_mib;           /* the inference executor's buffers */
    double fma_gflops, gemm_gflops, bandwidth_gbs;
    const char *gemm_impl;             /* "clblast", "register" or "local" */
    int gemm_mr, gemm_nt, gemm_nt_packed, conv_ob, conv_dw, conv_winograd,
        conv_wino_fused, conv_wino_dw, /* the CPU kernels' tile sizes chosen here (-1: none, not a CPU) */
        stream_stores;                 /* 1: large outputs by streaming stores */
    int profiled;
    double profile_total_ms;
    cn_op_time top_blocks[CN_BENCH_TOP], top_kinds[CN_BENCH_TOP];
    int block_count, kind_count;
} cn_bench_result;

/*
 * Builds the U-Net for cfg's batch on ctx, times training steps (upload,
 * forward, loss, backward, Adam, finish) and inferences (upload, forward,
 * finish), optionally profiles a step, then runs the three probes.
 */
clunet_status cn_bench_run(clunet_context *ctx, const cn_bench_config *cfg, cn_bench_result *r);

#endif
