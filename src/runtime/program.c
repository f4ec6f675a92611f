/*
 * program.c - turns the kernel files in cl/ into programs for one device: the embedded source
 * (or $CLUNET_KERNEL_DIR's copy, for development) with cl/common.cl and the
 * device's #defines in front, loaded from the disk cache or compiled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cache.h"
#include "runtime/runtime.h"

static char *read_text_file(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) buf[len] = 0;
        else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* $CLUNET_KERNEL_DIR, or "" for the embedded sources. */
static const char *kernel_dir(void)
{
    const char *dir = getenv("CLUNET_KERNEL_DIR");
    return dir ? dir : "";
}

/* The text of cl/<name>, malloc'ed. */
static clunet_status source_text(const char *name, char **out)
{
    const char *dir = kernel_dir();
    if (*dir) {
        *out = read_text_file(dir, name);
        if (!*out) return cn_fail(CLUNET_ERR_IO, "CLUNET_KERNEL_DIR=%s: cannot read %s", dir, name);
        return CLUNET_OK;
    }
    for (int i = 0; i < cn_source_count; i++)
        if (!strcmp(cn_sources[i].name, name)) {
            *out = strdup(cn_sources[i].text);
            return *out ? CLUNET_OK : cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
        }
    return cn_fail(CLUNET_ERR_INTERNAL, "no embedded kernel file named %s", name);
}

static clunet_status full_source(const char *file, char **out)
{
    char *common = NULL, *body = NULL;
    CN_TRY(source_text("common.cl", &common));
    clunet_status st = source_text(file, &body);
    if (st != CLUNET_OK) {
        free(common);
        return st;
    }
    size_t n = strlen(common) + strlen(body) + 64;
    *out = malloc(n);
    if (*out) snprintf(*out, n, "%s\n#line 1\n%s", common, body);
    free(common);
    free(body);
    return *out ? CLUNET_OK : cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
}

static clunet_status build_failure(clunet_context *ctx, cl_program prog, const char *file, cl_int err)
{
    size_t len = 0;
    clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len);
    char *log = malloc(len + 1);
    if (log && clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, len, log, NULL) == CL_SUCCESS)
        log[len] = 0;
    clunet_status st = cn_fail(CLUNET_ERR_BUILD, "cl/%s: build failed on %s (%s):\n%s", file, ctx->info.name,
                               cn_cl_error_name(err), log ? log : "(no build log)");
    free(log);
    return st;
}

/* Tries the cached binary; returns NULL when there is none usable. */
static cl_program load_cached(clunet_context *ctx, const char *key, const char *options)
{
    size_t size = 0;
    unsigned char *bin = cn_cache_load(key, &size);
    if (!bin) return NULL;
    cl_int err, bin_status;
    const unsigned char *bins[1] = {bin};
    cl_program prog = clCreateProgramWithBinary(ctx->context, 1, &ctx->device, &size, bins, &bin_status, &err);
    free(bin);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS) {
        if (prog) clReleaseProgram(prog);
        return NULL;
    }
    if (clBuildProgram(prog, 1, &ctx->device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        return NULL;
    }
    return prog;
}

static void store_binary(clunet_context *ctx, cl_program prog, const char *key)
{
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || size == 0) return;
    unsigned char *bin = malloc(size);
    unsigned char *bins[1] = {bin};
    if (bin && clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS)
        cn_cache_store(key, bin, size);
    free(bin);
}

clunet_status cn_program_get(clunet_context *ctx, const char *file, const char *options, cl_program *program)
{
    if (!options) options = "";
    /* the directory too: test-ops --ab kernels=DIR switches it run by run and keeps both builds */
    const char *dir = kernel_dir();
    for (int i = 0; i < ctx->program_count; i++)
        if (!strcmp(ctx->programs[i].file, file) && !strcmp(ctx->programs[i].options, options) &&
            !strcmp(ctx->programs[i].dir, dir)) {
            *program = ctx->programs[i].program;
            return CLUNET_OK;
        }
    if (ctx->program_count == CN_MAX_PROGRAMS)
        return cn_fail(CLUNET_ERR_INTERNAL, "too many program variants (raise CN_MAX_PROGRAMS)");
    if (strlen(file) >= sizeof ctx->programs[0].file || strlen(options) >= sizeof ctx->programs[0].options)
        return cn_fail(CLUNET_ERR_INTERNAL, "kernel file name or options too long: %s %s", file, options);
    if (strlen(dir) >= sizeof ctx->programs[0].dir)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "CLUNET_KERNEL_DIR=%s: longer than %zu characters", dir,
                       sizeof ctx->programs[0].dir - 1);

    /*
     * Denormals flushed to zero: on Intel CPUs an arithmetic operation on one
     * takes a microcode assist, ~100x a normal one. The profile's node-by-node
     * step met them in the 1x1 convs' backward on an Intel Xeon (170 ms against
     * 5 for the same node), where values of ~1e-38 are noise anyway.
     * No warnings (-w): PoCL on a CPU without AVX-512 warns that every float16
     * argument "changes the ABI" and prints a count per kernel to stderr,
     * dozens of lines on a first run; errors still fill the build log.
     */
    char full_options[512];
    snprintf(full_options, sizeof full_options,
             "-cl-std=CL1.2 -cl-denorms-are-zero -w -DCN_DEVICE_CPU=%d -DCN_MAX_WG=%zu %s", cn_cpu_paths(ctx),
             ctx->info.max_work_group_size, options);
    char *src = NULL;
    CN_TRY(full_source(file, &src));

    char key[65];
    cn_cache_key(&ctx->info, src, full_options, key);
    cl_program prog = ctx->use_cache ? load_cached(ctx, key, full_options) : NULL;
    if (prog) {
        ctx->cache_hits++;
    } else {
        cl_int err;
        const char *srcs[1] = {src};
        prog = clCreateProgramWithSource(ctx->context, 1, srcs, NULL, &err);
        if (err != CL_SUCCESS) {
            free(src);
            return cn_fail(cn_cl_status(err), "cl/%s: clCreateProgramWithSource failed: %s", file,
                           cn_cl_error_name(err));
        }
        err = clBuildProgram(prog, 1, &ctx->device, full_options, NULL, NULL);
        if (err != CL_SUCCESS) {
            clunet_status st = build_failure(ctx, prog, file, err);
            clReleaseProgram(prog);
            free(src);
            return st;
        }
        ctx->compiled++;
        if (ctx->use_cache) store_binary(ctx, prog, key);
    }
    free(src);
    cn_program *p = &ctx->programs[ctx->program_count++];
    snprintf(p->file, sizeof p->file, "%s", file);
    snprintf(p->options, sizeof p->options, "%s", options);
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    p->program = prog;
    *program = prog;
    return CLUNET_OK;
}

clunet_status cn_kernel(clunet_context *ctx, const char *file, const char *name, const char *options,
                        cl_kernel *kernel)
{
    cl_program prog;
    CN_TRY(cn_program_get(ctx, file, options, &prog));
    for (int i = 0; i < ctx->kernel_count; i++)
        if (ctx->kernels[i].program->program == prog && !strcmp(ctx->kernels[i].name, name)) {
            *kernel = ctx->kernels[i].kernel;
            return CLUNET_OK;
        }
    if (ctx->kernel_count == CN_MAX_KERNELS)
        return cn_fail(CLUNET_ERR_INTERNAL, "too many kernels (raise CN_MAX_KERNELS)");
    if (strlen(name) >= sizeof ctx->kernels[0].name)
        return cn_fail(CLUNET_ERR_INTERNAL, "kernel name too long: %s", name);
    cl_int err;
    cl_kernel k = clCreateKernel(prog, name, &err);
    if (err != CL_SUCCESS)
        return cn_fail(cn_cl_status(err), "cl/%s: no kernel %s (%s)", file, name, cn_cl_error_name(err));
    cn_kernel_entry *e = &ctx->kernels[ctx->kernel_count++];
    for (int i = 0; i < ctx->program_count; i++)
        if (ctx->programs[i].program == prog) e->program = &ctx->programs[i];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->kernel = k;
    *kernel = k;
    return CLUNET_OK;
}
