/*
 * buffer.c - device buffers counted against the context's cap, tensors
 * (views into buffers), transfers, and kernel launches.
 */
#include <stdio.h>
#include <string.h>

#include "runtime/runtime.h"

#define MIB(x) ((double)(x) / (1024.0 * 1024.0))

clunet_status cn_buffer_alloc(clunet_context *ctx, size_t bytes, cl_mem *buf)
{
    if (bytes == 0) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "device allocation of 0 bytes");
    if (bytes > ctx->info.max_alloc_bytes)
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY,
                       "device allocation of %.1f MiB exceeds %s's largest single allocation (%.1f MiB)", MIB(bytes),
                       ctx->info.name, MIB(ctx->info.max_alloc_bytes));
    if (ctx->mem_current + bytes > ctx->mem_cap)
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY,
                       "device allocation of %.1f MiB would exceed the memory limit: %.1f MiB in use of %.1f MiB",
                       MIB(bytes), MIB(ctx->mem_current), MIB(ctx->mem_cap));
    cl_int err;
    *buf = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS)
        return cn_fail(cn_cl_status(err), "device allocation of %.1f MiB failed on %s: %s (%.1f MiB in use)",
                       MIB(bytes), ctx->info.name, cn_cl_error_name(err), MIB(ctx->mem_current));
    ctx->mem_current += bytes;
    if (ctx->mem_current > ctx->mem_peak) ctx->mem_peak = ctx->mem_current;
    return CLUNET_OK;
}

void cn_buffer_free(clunet_context *ctx, cl_mem buf)
{
    if (!buf) return;
    size_t bytes = 0;
    if (clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) == CL_SUCCESS) ctx->mem_current -= bytes;
    clReleaseMemObject(buf);
}

clunet_status cn_buffer_write(clunet_context *ctx, cl_mem buf, size_t offset_bytes, size_t bytes, const void *src)
{
    CN_CL_CHECK(clEnqueueWriteBuffer(ctx->queue, buf, CL_TRUE, offset_bytes, bytes, src, 0, NULL, NULL));
    return CLUNET_OK;
}

clunet_status cn_buffer_read(clunet_context *ctx, cl_mem buf, size_t offset_bytes, size_t bytes, void *dst)
{
    CN_CL_CHECK(clEnqueueReadBuffer(ctx->queue, buf, CL_TRUE, offset_bytes, bytes, dst, 0, NULL, NULL));
    return CLUNET_OK;
}

/*
 * With the fill16 kernel (cl/memory.cl). A large fill streams where the
 * device's choice says so (cn_stream_flag: the timing of that choice fills
 * its own buffers, so a fill never starts it).
 */
clunet_status cn_buffer_fill_float(clunet_context *ctx, cl_mem buf, size_t offset_bytes, size_t bytes, float value)
{
    if (offset_bytes % sizeof(float) || bytes % sizeof(float))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "buffer fill of %zu bytes at byte %zu: not whole floats", bytes,
                       offset_bytes);
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "memory.cl", "fill16", cn_stream_flag(ctx, bytes), &k));
    cl_ulong off = offset_bytes / sizeof(float), n = bytes / sizeof(float);
    CN_TRY(CN_ARG_MEM(k, 0, buf));
    CN_TRY(cn_arg(k, 1, sizeof off, &off));
    CN_TRY(cn_arg(k, 2, sizeof n, &n));
    CN_TRY(CN_ARG_FLOAT(k, 3, value));
    size_t global[1] = {(size_t)((n + 15) / 16)};
    return cn_launch(ctx, k, 1, global, NULL);
}

clunet_status cn_tensor_alloc(clunet_context *ctx, int n, int c, int h, int w, cn_tensor *t)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "tensor shape (%d,%d,%d,%d) is not positive", n, c, h, w);
    memset(t, 0, sizeof *t);
    t->n = n, t->c = c, t->h = h, t->w = w;
    return cn_buffer_alloc(ctx, cn_tensor_count(t) * sizeof(float), &t->buf);
}

void cn_tensor_free(clunet_context *ctx, cn_tensor *t)
{
    cn_buffer_free(ctx, t->buf);
    t->buf = NULL;
}

clunet_status cn_tensor_upload(clunet_context *ctx, const cn_tensor *t, const float *src)
{
    return cn_buffer_write(ctx, t->buf, t->offset * sizeof(float), cn_tensor_count(t) * sizeof(float), src);
}

clunet_status cn_tensor_download(clunet_context *ctx, const cn_tensor *t, float *dst)
{
    return cn_buffer_read(ctx, t->buf, t->offset * sizeof(float), cn_tensor_count(t) * sizeof(float), dst);
}

static const char *kernel_name(cl_kernel k, char *buf, size_t size)
{
    if (clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, size, buf, NULL) != CL_SUCCESS) snprintf(buf, size, "?");
    buf[size - 1] = 0;
    return buf;
}

clunet_status cn_arg(cl_kernel k, cl_uint i, size_t size, const void *value)
{
    cl_int err = clSetKernelArg(k, i, size, value);
    if (err != CL_SUCCESS) {
        char name[128];
        return cn_fail(cn_cl_status(err), "kernel %s: setting argument %u failed: %s", kernel_name(k, name, sizeof name),
                       i, cn_cl_error_name(err));
    }
    return CLUNET_OK;
}

clunet_status cn_arg_view(cl_kernel k, cl_uint i, const cn_tensor *t)
{
    CN_TRY(CN_ARG_MEM(k, i, t->buf));
    return CN_ARG_INT(k, i + 1, t->offset);
}

clunet_status cn_launch(clunet_context *ctx, cl_kernel k, cl_uint dims, const size_t *global, const size_t *local)
{
    size_t g[3];
    for (cl_uint d = 0; d < dims; d++) {
        g[d] = global[d];
        if (local && local[d] > 0) g[d] = (g[d] + local[d] - 1) / local[d] * local[d];
        if (g[d] == 0) return CLUNET_OK; /* an empty tensor: nothing to do */
    }
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, k, dims, NULL, g, local, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        char name[128];
        return cn_fail(cn_cl_status(err), "kernel %s: launch of %zu x %zu x %zu (local %zu) failed on %s: %s",
                       kernel_name(k, name, sizeof name), g[0], dims > 1 ? g[1] : 1, dims > 2 ? g[2] : 1,
                       local ? local[0] : 0, ctx->info.name, cn_cl_error_name(err));
    }
    return CLUNET_OK;
}

clunet_status cn_finish(clunet_context *ctx)
{
    CN_CL_CHECK(clFinish(ctx->queue));
    return CLUNET_OK;
}
