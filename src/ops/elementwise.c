/*
 * elementwise.c - the residual add, and the launch helpers the pointwise family shares.
 */
#include <limits.h>

#include "ops/pointwise.h"

size_t cn_pw_group_size(clunet_context *ctx, cl_kernel k, size_t want)
{
    size_t limit = ctx->info.max_work_group_size, kernel_limit = 0;
    if (clGetKernelWorkGroupInfo(k, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kernel_limit, &kernel_limit,
                                 NULL) == CL_SUCCESS &&
        kernel_limit > 0 && kernel_limit < limit)
        limit = kernel_limit;
    if (want < limit) limit = want;
    size_t size = 1;
    while (size * 2 <= limit) size *= 2;
    return size;
}

clunet_status cn_pw_launch_spans(clunet_context *ctx, cl_kernel k, cl_uint first, size_t count)
{
    int span = cn_cpu_paths(ctx) ? 4096 : 1;
    CN_TRY(CN_ARG_INT(k, first, count));
    CN_TRY(CN_ARG_INT(k, first + 1, span));
    size_t items = (count + span - 1) / span;
    return cn_launch(ctx, k, 1, &items, NULL);
}

clunet_status cn_pw_check(const char *op, const char *name, const cn_tensor *t, size_t count)
{
    if (!t || !t->buf) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: %s is missing", op, name);
    if (t->n <= 0 || t->c <= 0 || t->h <= 0 || t->w <= 0)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: %s has an empty or negative dimension", op, name);
    if (cn_tensor_count(t) != count)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: %s holds %zu floats, expected %zu", op, name,
                       cn_tensor_count(t), count);
    // Kernels index with int.
    if (t->offset + count > (size_t)INT_MAX)
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: %s ends past 2^31 floats in its buffer", op, name);
    return CLUNET_OK;
}

clunet_status cn_pw_check_shape(const char *op, const char *name, const cn_tensor *t, int n, int c, int h, int w)
{
    if (!t || !t->buf) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: %s is missing", op, name);
    if (t->n != n || t->c != c || t->h != h || t->w != w)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: %s is (%d,%d,%d,%d), expected (%d,%d,%d,%d)", op, name,
                       t->n, t->c, t->h, t->w, n, c, h, w);
    return cn_pw_check(op, name, t, cn_tensor_count(t));
}

clunet_status cn_pw_check_like(const char *op, const char *name, const cn_tensor *t, const cn_tensor *like)
{
    if (!t || !t->buf) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: %s is missing", op, name);
    return cn_pw_check_shape(op, name, t, like->n, like->c, like->h, like->w);
}

/* The kernels' drop arguments from `drop` (NULL: every branch kept, scale 1). */
static clunet_status drop_args(cl_kernel k, int first, const cn_drop *drop, const char *op)
{
    if (drop && !(drop->keep > 0.0f && drop->keep <= 1.0f))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: keep probability %g must be in (0, 1]", op, drop->keep);
    /* kept when the hash's top 24 bits fall below keep * 2^24: exact in float and double alike */
    cl_uint threshold = drop ? (cl_uint)(drop->keep * 16777216.0) : 16777216u;
    cl_uint key = drop ? drop->key : 0;
    CN_TRY(cn_arg(k, first, sizeof threshold, &threshold));
    CN_TRY(cn_arg(k, first + 1, sizeof key, &key));
    return CN_ARG_FLOAT(k, first + 2, drop ? 1.0f / drop->keep : 1.0f);
}

clunet_status cn_add_forward(clunet_context *ctx, const cn_tensor *a, const cn_tensor *b, const cn_tensor *y,
                             const cn_drop *drop)
{
    // a, b, y are (N,C,H,W)
    CN_TRY(cn_pw_check_like("add_forward", "a", a, a));
    CN_TRY(cn_pw_check_like("add_forward", "b", b, a));
    CN_TRY(cn_pw_check_like("add_forward", "y", y, a));
    size_t global[2] = {cn_tensor_count(a) / a->n, (size_t)a->n};
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "elementwise.cl", "add_fwd", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, a));
    CN_TRY(cn_arg_view(k, 2, b));
    CN_TRY(cn_arg_view(k, 4, y));
    CN_TRY(CN_ARG_INT(k, 6, global[0]));
    CN_TRY(drop_args(k, 7, drop, "add_forward"));
    return cn_launch(ctx, k, 2, global, NULL);
}

clunet_status cn_add_backward(clunet_context *ctx, const cn_tensor *dy, const cn_tensor *da, const cn_tensor *db,
                              const cn_drop *drop, int accumulate)
{
    // dy, da, db are (N,C,H,W)
    CN_TRY(cn_pw_check_like("add_backward", "dy", dy, dy));
    CN_TRY(cn_pw_check_like("add_backward", "da", da, dy));
    CN_TRY(cn_pw_check_like("add_backward", "db", db, dy));
    size_t global[2] = {cn_tensor_count(dy) / dy->n, (size_t)dy->n};
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "elementwise.cl", "add_bwd", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, dy));
    CN_TRY(cn_arg_view(k, 2, da));
    CN_TRY(cn_arg_view(k, 4, db));
    CN_TRY(CN_ARG_INT(k, 6, global[0]));
    CN_TRY(CN_ARG_INT(k, 7, accumulate != 0));
    CN_TRY(drop_args(k, 8, drop, "add_backward"));
    return cn_launch(ctx, k, 2, global, NULL);
}
