/* context.c - one device's context, queue, programs and memory accounting. */
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

void clunet_default_settings(clunet_settings *s)
{
    memset(s, 0, sizeof *s);
    s->use_cache = 1;
}

const char *clunet_version(void) { return "0.1.0"; }

clunet_status clunet_context_create(const clunet_settings *settings, clunet_context **out)
{
    clunet_settings defaults;
    if (!settings) {
        clunet_default_settings(&defaults);
        settings = &defaults;
    }
    if (!out) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "clunet_context_create: NULL output");
    *out = NULL;
    CN_TRY(cn_tune_check_env());
    int index;
    CN_TRY(clunet_device_select(settings->device, &index));
    const clunet_device_info *all;
    int n;
    CN_TRY(clunet_devices(&all, &n));

    clunet_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    ctx->info = all[index];
    ctx->cpu_paths = ctx->info.type == CLUNET_DEVICE_CPU;
    const char *paths = getenv("CLUNET_PATHS");
    if (paths && *paths) {
        if (strcmp(paths, "gpu") && strcmp(paths, "cpu")) {
            free(ctx);
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "CLUNET_PATHS=%s: expected gpu or cpu", paths);
        }
        ctx->cpu_paths = !strcmp(paths, "cpu");
    }
    ctx->device = cn_device_id(index);
    ctx->platform = cn_platform_id(index);
    ctx->gemm_impl = ctx->gemm_mr = ctx->gemm_gp = ctx->gemm_nt = ctx->gemm_nt_packed = ctx->conv_ob = ctx->conv_dw = ctx->dw_plane =
        ctx->conv_winograd = ctx->conv_wino_fused = ctx->conv_wino_dw = ctx->stream_stores = -1;
    /*
     * An output too large to be read back from the caches by the op after it:
     * an eighth of the device's cache for global memory (4 MiB of a 32 MiB
     * L3), at least 1 MiB. Smaller ones may still be found there.
     */
    ctx->stream_floor = ctx->info.global_cache_bytes / 8 > (1u << 20) ? ctx->info.global_cache_bytes / 8 : 1u << 20;
    const char *nc = getenv("CLUNET_NO_CACHE");
    ctx->use_cache = settings->use_cache && !(nc && *nc && strcmp(nc, "0"));
    cn_tuning_init(ctx);
    cn_cpu_mark_now(&ctx->cpu_start);
    ctx->quiet = -1;
    ctx->profiling = settings->profiling && ctx->info.profiling;
    ctx->mem_cap = ctx->info.global_mem_bytes;
    if (settings->memory_cap_bytes && settings->memory_cap_bytes < ctx->mem_cap)
        ctx->mem_cap = settings->memory_cap_bytes;

    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ctx->platform, 0};
    ctx->context = clCreateContext(props, 1, &ctx->device, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        free(ctx);
        return cn_fail(cn_cl_status(err), "cannot create an OpenCL context on %s: %s", all[index].name,
                       cn_cl_error_name(err));
    }
    ctx->queue = clCreateCommandQueue(ctx->context, ctx->device, ctx->profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    if (err != CL_SUCCESS) {
        clReleaseContext(ctx->context);
        free(ctx);
        return cn_fail(cn_cl_status(err), "cannot create a command queue on %s: %s", all[index].name,
                       cn_cl_error_name(err));
    }
    *out = ctx;
    return CLUNET_OK;
}

void clunet_context_destroy(clunet_context *ctx)
{
    if (!ctx) return;
    clFinish(ctx->queue);
    if (ctx->release_library) ctx->release_library();
    for (int i = 0; i < ctx->kernel_count; i++) clReleaseKernel(ctx->kernels[i].kernel);
    for (int i = 0; i < ctx->program_count; i++) clReleaseProgram(ctx->programs[i].program);
    clReleaseCommandQueue(ctx->queue);
    clReleaseContext(ctx->context);
    free(ctx);
}

const clunet_device_info *clunet_context_device(const clunet_context *ctx) { return &ctx->info; }

clunet_status clunet_context_build_all(clunet_context *ctx)
{
    for (int i = 0; i < cn_source_count; i++) {
        if (!strcmp(cn_sources[i].name, "common.cl")) continue;
        cl_program prog;
        CN_TRY(cn_program_get(ctx, cn_sources[i].name, NULL, &prog));
    }
    return CLUNET_OK;
}

void clunet_context_memory(const clunet_context *ctx, clunet_memory_stats *s)
{
    s->current_bytes = ctx->mem_current;
    s->peak_bytes = ctx->mem_peak;
    s->cap_bytes = ctx->mem_cap;
}

void clunet_context_build_stats(const clunet_context *ctx, int *cache_hits, int *compiled)
{
    if (cache_hits) *cache_hits = ctx->cache_hits;
    if (compiled) *compiled = ctx->compiled;
}
