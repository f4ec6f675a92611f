/*
 * resample.c - the decoder step: concat(nearest2x(x), skip) along channels (cl/resample.cl).
 * GPUs take a work-item per pixel; CPUs the *_rows kernels, a work-item per row with vectors.
 */
#include <stdio.h>

#include "ops/pointwise.h"

/* The kernel `name` (or name_rows on CPUs) and its global size: (pixels, planes), or (rows, planes) on CPUs. */
static clunet_status upcat_kernel(clunet_context *ctx, const char *name, int rows, int cols, int planes,
                                  cl_kernel *k, size_t global[2])
{
    int cpu = cn_cpu_paths(ctx);
    char full[32];
    snprintf(full, sizeof full, "%s%s", name, cpu ? "_rows" : "");
    global[0] = cpu ? (size_t)rows : (size_t)rows * cols;
    global[1] = (size_t)planes;
    return cn_kernel(ctx, "resample.cl", full, NULL, k);
}

clunet_status cn_upcat_forward(clunet_context *ctx, const cn_tensor *x, const cn_tensor *skip, const cn_tensor *y)
{
    // x is (N,C1,H,W), skip is (N,C2,2H,2W) or NULL, y is (N,C1+C2,2H,2W)
    CN_TRY(cn_pw_check_like("upcat_forward", "x", x, x));
    int c2 = skip ? skip->c : 0;
    if (skip) CN_TRY(cn_pw_check_shape("upcat_forward", "skip", skip, x->n, c2, 2 * x->h, 2 * x->w));
    CN_TRY(cn_pw_check_shape("upcat_forward", "y", y, x->n, x->c + c2, 2 * x->h, 2 * x->w));
    int planes = y->n * y->c;
    cl_kernel k;
    size_t global[2];
    CN_TRY(upcat_kernel(ctx, "upcat_fwd", y->h, y->w, planes, &k, global));
    CN_TRY(cn_arg_view(k, 0, x));
    // Without a skip the kernel never reads it; x stands in as a valid buffer.
    CN_TRY(CN_ARG_MEM(k, 2, (skip ? skip : x)->buf));
    CN_TRY(CN_ARG_INT(k, 3, skip ? skip->offset : 0));
    CN_TRY(cn_arg_view(k, 4, y));
    CN_TRY(CN_ARG_INT(k, 6, x->c));
    CN_TRY(CN_ARG_INT(k, 7, c2));
    CN_TRY(CN_ARG_INT(k, 8, x->h));
    CN_TRY(CN_ARG_INT(k, 9, x->w));
    CN_TRY(CN_ARG_INT(k, 10, planes));
    return cn_launch(ctx, k, 2, global, NULL);
}

clunet_status cn_upcat_backward(clunet_context *ctx, const cn_tensor *dy, const cn_tensor *dx,
                                const cn_tensor *dskip, int accumulate)
{
    // dy is (N,C1+C2,2H,2W), dx is (N,C1,H,W), dskip is (N,C2,2H,2W) or NULL: a skip that needs no gradient
    CN_TRY(cn_pw_check_like("upcat_backward", "dx", dx, dx));
    int c1 = dx->c, c2 = dy->c - c1, h = dx->h, w = dx->w;
    if (c2 < 0) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "upcat_backward: dy has %d channels, fewer than dx's %d", dy->c, c1);
    if (dskip) CN_TRY(cn_pw_check_shape("upcat_backward", "dskip", dskip, dx->n, c2, 2 * h, 2 * w));
    CN_TRY(cn_pw_check_shape("upcat_backward", "dy", dy, dx->n, c1 + c2, 2 * h, 2 * w));
    cl_kernel k;
    size_t global_x[2], global_skip[2];
    CN_TRY(upcat_kernel(ctx, "upcat_bwd_x", h, w, dx->n * c1, &k, global_x));
    CN_TRY(cn_arg_view(k, 0, dy));
    CN_TRY(cn_arg_view(k, 2, dx));
    CN_TRY(CN_ARG_INT(k, 4, c1));
    CN_TRY(CN_ARG_INT(k, 5, c2));
    CN_TRY(CN_ARG_INT(k, 6, h));
    CN_TRY(CN_ARG_INT(k, 7, w));
    CN_TRY(CN_ARG_INT(k, 8, dx->n * c1));
    CN_TRY(CN_ARG_INT(k, 9, accumulate != 0));
    CN_TRY(cn_launch(ctx, k, 2, global_x, NULL));
    if (!dskip) return CLUNET_OK;
    CN_TRY(upcat_kernel(ctx, "upcat_bwd_skip", 2 * h, 2 * w, dx->n * c2, &k, global_skip));
    CN_TRY(cn_arg_view(k, 0, dy));
    CN_TRY(cn_arg_view(k, 2, dskip));
    CN_TRY(CN_ARG_INT(k, 4, c1));
    CN_TRY(CN_ARG_INT(k, 5, c2));
    CN_TRY(CN_ARG_INT(k, 6, h));
    CN_TRY(CN_ARG_INT(k, 7, w));
    CN_TRY(CN_ARG_INT(k, 8, dx->n * c2));
    CN_TRY(CN_ARG_INT(k, 9, accumulate != 0));
    return cn_launch(ctx, k, 2, global_skip, NULL);
}
