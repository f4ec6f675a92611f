/*
 * model.c - the U-Net benchmark on one device: random weights and a random
 * batch, allocated once, then timed training steps and inferences, an
 * optional per-node profile, and the device's peak probes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/clock.h"

#define GEMM_PROBE_SIDE 1024
#define MIB (1024.0 * 1024.0)

static void progress(const cn_bench_config *cfg, const char *fmt, int a, int b)
{
    if (!cfg->progress) return;
    char line[128];
    snprintf(line, sizeof line, fmt, a, b);
    cfg->progress(cfg->user, line);
}

/* xorshift64*: a fixed, portable stream of uniform floats in [0, 1). */
static float uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (float)((*s * 0x2545F4914F6CDD1DULL) >> 40) * (1.0f / 16777216.0f);
}

typedef struct host_data {
    float *params, *state, *images, *labels;
} host_data;

static void host_free(host_data *h)
{
    free(h->params);
    free(h->state);
    free(h->images);
    free(h->labels);
}

static clunet_status host_fill(const cn_graph *g, host_data *h)
{
    size_t pixels = cn_shape_count(g->values[g->output].shape);
    size_t inputs = cn_shape_count(g->values[g->input].shape);
    h->params = malloc(g->trainable_floats * sizeof(float));
    h->state = malloc((g->state_floats ? g->state_floats : 1) * sizeof(float));
    h->images = malloc(inputs * sizeof(float));
    h->labels = malloc(pixels * sizeof(float));
    if (!h->params || !h->state || !h->images || !h->labels)
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory for the benchmark batch");
    cn_graph_init_params(g, 1, h->params, h->state);
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < inputs; i++) h->images[i] = 4.0f * uniform(&s) - 2.0f;
    /* About as many vessel pixels as a retina has. */
    for (size_t i = 0; i < pixels; i++) h->labels[i] = uniform(&s) < 0.12f ? 1.0f : 0.0f;
    return CLUNET_OK;
}

static clunet_status upload_weights(cn_exec *e, const host_data *h)
{
    CN_TRY(cn_buffer_write(e->ctx, e->params, 0, e->g->trainable_floats * sizeof(float), h->params));
    if (!e->g->state_floats) return CLUNET_OK;
    return cn_buffer_write(e->ctx, e->state, 0, e->g->state_floats * sizeof(float), h->state);
}

static clunet_status train_step(cn_exec *e, const host_data *h)
{
    CN_TRY(cn_exec_set_batch(e, h->images, h->labels, NULL));
    CN_TRY(cn_exec_forward(e, 1));
    CN_TRY(cn_exec_loss(e, 1));
    CN_TRY(cn_exec_backward(e));
    CN_TRY(cn_exec_adam(e));
    return cn_finish(e->ctx);
}

static clunet_status infer_step(cn_exec *e, const host_data *h)
{
    CN_TRY(cn_exec_set_batch(e, h->images, NULL, NULL));
    CN_TRY(cn_exec_forward(e, 0));
    return cn_finish(e->ctx);
}

/* Runs `step` warmup + steps times; median and minimum of the timed runs, in ms. */
static clunet_status time_runs(cn_exec *e, const host_data *h, const cn_bench_config *cfg, const char *what,
                               clunet_status (*step)(cn_exec *, const host_data *), double *median, double *min)
{
    double *ms = malloc((size_t)cfg->steps * sizeof *ms);
    if (!ms) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    clunet_status st = CLUNET_OK;
    char fmt[96];
    for (int i = 0; i < cfg->warmup + cfg->steps && st == CLUNET_OK; i++) {
        int timed = i >= cfg->warmup;
        snprintf(fmt, sizeof fmt, "%s %s %%d/%%d", what, timed ? "run" : "warm-up");
        progress(cfg, fmt, timed ? i - cfg->warmup + 1 : i + 1, timed ? cfg->steps : cfg->warmup);
        double t0 = cn_seconds();
        st = step(e, h);
        if (timed) ms[i - cfg->warmup] = (cn_seconds() - t0) * 1e3;
    }
    if (st == CLUNET_OK) {
        *median = cn_bench_median(ms, cfg->steps);
        *min = ms[0];
    }
    free(ms);
    return st;
}

static clunet_status profile(cn_exec *e, const cn_bench_config *cfg, cn_bench_result *r)
{
    progress(cfg, "profiling one training step node by node", 0, 0);
    cn_step_profile p;
    CN_TRY(cn_profile_step(e, &p));
    r->profiled = 1;
    r->profile_total_ms = p.total_ms;
    r->block_count = cn_profile_group(e->g, &p, 0, r->top_blocks, CN_BENCH_TOP);
    r->kind_count = cn_profile_group(e->g, &p, 1, r->top_kinds, CN_BENCH_TOP);
    cn_step_profile_free(&p);
    return CLUNET_OK;
}

static clunet_status run_training(clunet_context *ctx, const cn_graph *g, const host_data *h,
                                  const cn_bench_config *cfg, cn_bench_result *r)
{
    progress(cfg, "allocating the training graph", 0, 0);
    ctx->mem_peak = ctx->mem_current; /* the peak of training alone, not of the probes before it */
    cn_exec e;
    CN_TRY(cn_exec_create(ctx, g, 1, &e));
    clunet_status st = upload_weights(&e, h);
    if (st == CLUNET_OK)
        st = time_runs(&e, h, cfg, "training step", train_step, &r->train_median_ms, &r->train_min_ms);
    clunet_memory_stats mem;
    clunet_context_memory(ctx, &mem);
    r->peak_memory_mib = (double)mem.peak_bytes / MIB;
    if (st == CLUNET_OK && cfg->profile) st = profile(&e, cfg, r);
    cn_exec_destroy(&e);
    return st;
}

static clunet_status run_inference(clunet_context *ctx, const cn_graph *g, const host_data *h,
                                   const cn_bench_config *cfg, cn_bench_result *r)
{
    progress(cfg, "allocating the inference graph", 0, 0);
    clunet_memory_stats before, after;
    clunet_context_memory(ctx, &before);
    cn_exec e;
    CN_TRY(cn_exec_create(ctx, g, 0, &e));
    clunet_context_memory(ctx, &after);
    r->infer_memory_mib = (double)(after.current_bytes - before.current_bytes) / MIB;
    clunet_status st = upload_weights(&e, h);
    if (st == CLUNET_OK) st = time_runs(&e, h, cfg, "inference", infer_step, &r->infer_median_ms, &r->infer_min_ms);
    cn_exec_destroy(&e);
    return st;
}

/*
 * The probes run before and after the timed work, and each keeps the better of its two readings: a neighbour
 * busy for a second (these machines are shared) would otherwise set a low ceiling and every "% of peak" above
 * it, up to ops reading over 100%.
 */
static clunet_status run_probes(clunet_context *ctx, const cn_bench_config *cfg, int pass, cn_bench_result *r)
{
    double fma = 0, gemm = 0, bw = 0;
    progress(cfg, "probing the peak multiply-add rate (%d of 2)", pass, 0);
    CN_TRY(cn_probe_fma(ctx, &fma));
    progress(cfg, "probing the GEMM rate (%d^3, %d of 2)", GEMM_PROBE_SIDE, pass);
    CN_TRY(cn_probe_gemm(ctx, GEMM_PROBE_SIDE, &gemm));
    progress(cfg, "probing the memory bandwidth (%d of 2)", pass, 0);
    CN_TRY(cn_probe_bandwidth(ctx, &bw));
    r->fma_gflops = fmax(r->fma_gflops, fma);
    r->gemm_gflops = fmax(r->gemm_gflops, gemm);
    r->bandwidth_gbs = fmax(r->bandwidth_gbs, bw);
    r->gemm_impl = cn_gemm_impl_name(ctx->gemm_impl);
    r->gemm_mr = ctx->gemm_mr, r->gemm_nt = ctx->gemm_nt, r->gemm_nt_packed = ctx->gemm_nt_packed;
    r->conv_ob = ctx->conv_ob, r->conv_dw = ctx->conv_dw, r->conv_winograd = ctx->conv_winograd;
    r->conv_wino_fused = ctx->conv_wino_fused, r->conv_wino_dw = ctx->conv_wino_dw;
    r->stream_stores = ctx->stream_stores;
    return CLUNET_OK;
}

clunet_status cn_bench_run(clunet_context *ctx, const cn_bench_config *cfg, cn_bench_result *r)
{
    memset(r, 0, sizeof *r);
    if (cfg->batch < 1 || cfg->size < 32 || cfg->size % 32 || cfg->steps < 1 || cfg->warmup < 0)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                       "bench: batch %d, size %d, steps %d, warm-up %d: need batch >= 1, a size that is a "
                       "multiple of 32, steps >= 1, warm-up >= 0",
                       cfg->batch, cfg->size, cfg->steps, cfg->warmup);
    cn_unet_config uc;
    cn_unet_default_config(&uc);
    uc.batch = cfg->batch;
    uc.height = uc.width = cfg->size;
    cn_graph g;
    CN_TRY(cn_unet_build(&uc, &g));
    r->forward_flops = cn_graph_forward_flops(&g);
    host_data h = {0};
    clunet_status st = host_fill(&g, &h);
    char note[1280];
    if (st == CLUNET_OK && cfg->progress && cn_first_run_note(ctx, note, sizeof note)) cfg->progress(cfg->user, note);
    if (st == CLUNET_OK) st = run_probes(ctx, cfg, 1, r);
    if (st == CLUNET_OK) st = run_training(ctx, &g, &h, cfg, r);
    if (st == CLUNET_OK) st = run_inference(ctx, &g, &h, cfg, r);
    if (st == CLUNET_OK && cfg->progress && cn_tuning_busy_note(ctx, note, sizeof note)) cfg->progress(cfg->user, note);
    host_free(&h);
    cn_graph_free(&g);
    if (st == CLUNET_OK) st = run_probes(ctx, cfg, 2, r);
    return st;
}
