/*
 * stream.c - streaming stores for large outputs. A plain store first reads
 * the cache line it writes (read for ownership); an output larger than the
 * caches gains nothing from that read, since the op after it finds the line
 * evicted anyway. cn_stream16 (cl/common.cl) writes past the caches instead
 * where the kernel was built with CN_NT_STORE=1. On the 2-core Zen 4 of
 * docs/PERFORMANCE.md that made the 1x1 expand 16 -> 96 at 256 x 256 45%
 * faster and the decoder's 3x3 convs 3-20%.
 */
#include "common/error.h"
#include "runtime/runtime.h"

enum { PROBE_FLOATS = 8 << 20 }; /* 32 MiB copied: beyond the caches of CPUs this targets */

/* CN_NT_STORE is 0 unless defined: without the flag a kernel shares the program built without options */
static const char NT_FLAG[] = " -DCN_NT_STORE=1";

typedef struct stream_probe {
    cl_mem x, y;
} stream_probe;

static clunet_status run_copy(clunet_context *ctx, int on, void *arg)
{
    stream_probe *p = arg;
    if (!p->x) {
        CN_TRY(cn_buffer_alloc(ctx, PROBE_FLOATS * sizeof(float), &p->x));
        CN_TRY(cn_buffer_alloc(ctx, PROBE_FLOATS * sizeof(float), &p->y));
        CN_TRY(cn_buffer_fill_float(ctx, p->x, 0, PROBE_FLOATS * sizeof(float), 1.0f));
    }
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "memory.cl", "copy16", on ? NT_FLAG : NULL, &k));
    CN_TRY(CN_ARG_MEM(k, 0, p->x));
    CN_TRY(CN_ARG_MEM(k, 1, p->y));
    size_t global[1] = {PROBE_FLOATS / 16};
    return cn_launch(ctx, k, 1, global, NULL);
}

clunet_status cn_stream_choose(clunet_context *ctx)
{
    if (ctx->stream_stores >= 0) return CLUNET_OK;
    static const int onoff[] = {0, 1};
    const cn_tune_knob knobs[] = {{"stream_stores", onoff, 2, run_copy, &ctx->stream_stores, 0}};
    stream_probe p = {0};
    clunet_status st = cn_tune_choose(ctx, knobs, 1, &p);
    if (p.x) cn_buffer_free(ctx, p.x);
    if (p.y) cn_buffer_free(ctx, p.y);
    if (st == CLUNET_ERR_OUT_OF_MEMORY) { /* no room to time them (a tight memory cap): plain stores, untimed */
        ctx->stream_stores = 0;
        return CLUNET_OK;
    }
    return st;
}

const char *cn_stream_flag(const clunet_context *ctx, size_t bytes)
{
    return bytes >= ctx->stream_floor && ctx->stream_stores == 1 ? NT_FLAG : "";
}

clunet_status cn_stream_option(clunet_context *ctx, size_t bytes, const char **option)
{
    if (bytes >= ctx->stream_floor) CN_TRY(cn_stream_choose(ctx));
    *option = cn_stream_flag(ctx, bytes);
    return CLUNET_OK;
}
