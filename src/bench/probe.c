/*
 * probe.c - the device's own ceilings, clpeak style: multiply-add rate
 * (cl/probe.cl), GEMM rate (cn_gemm) and copy bandwidth, each the best of a
 * few runs calibrated to last long enough for a wall clock to be fair.
 */
#include <math.h>

#include "bench/bench.h"
#include "common/clock.h"
#include "ops/conv.h"

/* A probe run should last at least this long so launch overhead is noise. */
#define PROBE_MIN_SECONDS 0.05
#define PROBE_REPEATS 3

static clunet_status time_launch(clunet_context *ctx, cl_kernel k, size_t global, double *seconds)
{
    double t0 = cn_seconds();
    CN_TRY(cn_launch(ctx, k, 1, &global, NULL));
    CN_TRY(cn_finish(ctx));
    *seconds = cn_seconds() - t0;
    return CLUNET_OK;
}

/* Best GFLOP/s of one probe_fma kernel whose vectors are `width` floats. */
static clunet_status fma_width(clunet_context *ctx, const char *name, int width, cl_mem out, size_t global,
                               double *gflops)
{
    cl_device_fp_config fp = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL) != CL_SUCCESS) fp = 0;
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "probe.cl", name, (fp & CL_FP_FMA) ? "-DPROBE_FMA=1" : NULL, &k));
    CN_TRY(CN_ARG_MEM(k, 0, out));
    CN_TRY(CN_ARG_INT(k, 1, 0));
    CN_TRY(CN_ARG_FLOAT(k, 2, 0.75f));
    int loops = 4;
    double t = 0;
    CN_TRY(CN_ARG_INT(k, 3, loops));
    CN_TRY(time_launch(ctx, k, global, &t)); /* the first launch also pays for the build */
    for (;;) {
        CN_TRY(CN_ARG_INT(k, 3, loops));
        CN_TRY(time_launch(ctx, k, global, &t));
        if (t >= PROBE_MIN_SECONDS || loops >= (1 << 22)) break;
        loops *= 2;
    }
    double best = t;
    for (int r = 1; r < PROBE_REPEATS; r++) {
        CN_TRY(time_launch(ctx, k, global, &t));
        if (t < best) best = t;
    }
    /* Every chain converges to c / (1 - b) = 0.5: eight chains of `width` lanes sum to 4 * width. */
    float first;
    CN_TRY(cn_buffer_read(ctx, out, 0, sizeof first, &first));
    if (!(fabsf(first - 4.0f * (float)width) <= 1e-3f * (float)width))
        return cn_fail(CLUNET_ERR_NUMERIC, "probe %s computed %g instead of %d: the device's arithmetic is off",
                       name, (double)first, 4 * width);
    /* 64 multiply-adds (2 FLOP each) of `width` floats per loop pass. */
    *gflops = 128.0 * width * loops * (double)global / best * 1e-9;
    return CLUNET_OK;
}

clunet_status cn_probe_fma(clunet_context *ctx, double *gflops)
{
    /* Enough work-items for every compute unit to hold many work-groups. */
    size_t global = (size_t)(ctx->info.compute_units ? ctx->info.compute_units : 1) * 8192;
    static const struct {
        const char *kernel;
        int width;
    } variants[] = {{"probe_fma4", 4}, {"probe_fma8", 8}, {"probe_fma16", 16}};
    cl_mem out;
    CN_TRY(cn_buffer_alloc(ctx, global * sizeof(float), &out));
    clunet_status st = CLUNET_OK;
    *gflops = 0;
    /* Which vector width a compiler maps best onto the hardware varies: keep the best. */
    for (size_t i = 0; i < sizeof variants / sizeof variants[0] && st == CLUNET_OK; i++) {
        double g = 0;
        st = fma_width(ctx, variants[i].kernel, variants[i].width, out, global, &g);
        if (g > *gflops) *gflops = g;
    }
    cn_buffer_free(ctx, out);
    return st;
}

clunet_status cn_probe_gemm(clunet_context *ctx, int n, double *gflops)
{
    size_t bytes = (size_t)n * n * sizeof(float);
    cl_mem m[3] = {NULL, NULL, NULL};
    clunet_status st = CLUNET_OK;
    for (int i = 0; i < 3 && st == CLUNET_OK; i++) {
        st = cn_buffer_alloc(ctx, bytes, &m[i]);
        /* Non-zero inputs: some devices shortcut zeros. */
        if (st == CLUNET_OK) st = cn_buffer_fill_float(ctx, m[i], 0, bytes, 0.5f + 0.25f * (float)i);
    }
    cn_gemm_args g = {.m = n, .n = n, .k = n, .alpha = 1.0f, .a = m[0], .lda = n, .b = m[1], .ldb = n,
                      .c = m[2], .ldc = n, .batch = 1};
    double best = 0;
    for (int r = 0; r <= PROBE_REPEATS && st == CLUNET_OK; r++) {
        double t0 = cn_seconds();
        st = cn_gemm(ctx, &g);
        if (st == CLUNET_OK) st = cn_finish(ctx);
        double t = cn_seconds() - t0;
        if (r > 0 && (best == 0 || t < best)) best = t; /* run 0 warms up (and may choose the GEMM) */
    }
    /* A is all 0.5 and B all 0.75, so every element of C is 0.375 * n (exact in float). */
    float c0 = 0;
    if (st == CLUNET_OK) st = cn_buffer_read(ctx, m[2], bytes - sizeof(float), sizeof(float), &c0);
    if (st == CLUNET_OK && c0 != 0.375f * (float)n)
        st = cn_fail(CLUNET_ERR_INTERNAL, "GEMM probe computed %g instead of %g", (double)c0, 0.375 * n);
    for (int i = 0; i < 3; i++) cn_buffer_free(ctx, m[i]);
    *gflops = best > 0 ? 2.0 * n * n * (double)n / best * 1e-9 : 0;
    return st;
}

clunet_status cn_probe_bandwidth(clunet_context *ctx, double *gbs)
{
    /* Far larger than any cache, yet small next to the device's memory. */
    uint64_t bytes = 128u << 20;
    if (bytes > ctx->info.max_alloc_bytes) bytes = ctx->info.max_alloc_bytes;
    if (bytes > ctx->info.global_mem_bytes / 8) bytes = ctx->info.global_mem_bytes / 8;
    bytes &= ~(uint64_t)15;
    int n4 = (int)(bytes / 16);
    cl_mem x = NULL, y = NULL;
    cl_kernel k;
    clunet_status st = cn_kernel(ctx, "probe.cl", "probe_copy", NULL, &k);
    if (st == CLUNET_OK) st = cn_buffer_alloc(ctx, bytes, &x);
    if (st == CLUNET_OK) st = cn_buffer_alloc(ctx, bytes, &y);
    if (st == CLUNET_OK) st = cn_buffer_fill_float(ctx, x, 0, bytes, 1.0f);
    if (st == CLUNET_OK) st = CN_ARG_MEM(k, 0, x);
    if (st == CLUNET_OK) st = CN_ARG_MEM(k, 1, y);
    if (st == CLUNET_OK) st = CN_ARG_INT(k, 2, n4);
    double best = 0, t = 0;
    for (int r = 0; r <= PROBE_REPEATS + 2 && st == CLUNET_OK; r++) {
        st = time_launch(ctx, k, (size_t)n4, &t);
        if (r > 0 && (best == 0 || t < best)) best = t; /* run 0 touches the pages first */
    }
    /* The copy must have happened for the rate to mean anything. */
    float ends[2] = {0, 0};
    if (st == CLUNET_OK) st = cn_buffer_read(ctx, y, 0, sizeof(float), &ends[0]);
    if (st == CLUNET_OK) st = cn_buffer_read(ctx, y, bytes - sizeof(float), sizeof(float), &ends[1]);
    if (st == CLUNET_OK && (ends[0] != 1.0f || ends[1] != 1.0f))
        st = cn_fail(CLUNET_ERR_INTERNAL, "probe_copy left %g and %g at the ends instead of 1", (double)ends[0],
                     (double)ends[1]);
    cn_buffer_free(ctx, x);
    cn_buffer_free(ctx, y);
    *gbs = best > 0 ? 2.0 * (double)bytes / best * 1e-9 : 0;
    return st;
}
