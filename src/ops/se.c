/*
 * se.c - squeeze-excitation pieces: global average pool and channel-wise scale (cl/se.cl).
 * On CPUs every kernel takes a whole plane per work-item (see se.cl).
 */
#include "ops/pointwise.h"

/* Reductions over one plane use at most this many work items. */
#define SE_GROUP 256

/* Launches an element-wise kernel: an item per pixel of each plane, or per plane on CPUs. */
static clunet_status launch_pixels(clunet_context *ctx, cl_kernel k, int hw, int planes)
{
    size_t global[2] = {cn_cpu_paths(ctx) ? 1 : (size_t)hw, (size_t)planes};
    return cn_launch(ctx, k, 2, global, NULL);
}

/* Launches a one-work-group-per-plane kernel whose last argument is its local scratch. */
static clunet_status launch_per_plane(clunet_context *ctx, cl_kernel k, cl_uint scratch_arg, int hw, int planes)
{
    size_t group = cn_cpu_paths(ctx) ? 1 : cn_pw_group_size(ctx, k, hw < SE_GROUP ? (size_t)hw : SE_GROUP);
    CN_TRY(cn_arg(k, scratch_arg, group * sizeof(float), NULL));
    size_t global[2] = {group, (size_t)planes}, local[2] = {group, 1};
    return cn_launch(ctx, k, 2, global, local);
}

clunet_status cn_avgpool_forward(clunet_context *ctx, const cn_tensor *x, const cn_tensor *y)
{
    // x is (N,C,H,W), y is (N,C,1,1)
    CN_TRY(cn_pw_check_like("avgpool_forward", "x", x, x));
    CN_TRY(cn_pw_check_shape("avgpool_forward", "y", y, x->n, x->c, 1, 1));
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "se.cl", "avgpool_fwd", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, y));
    CN_TRY(CN_ARG_INT(k, 4, x->h * x->w));
    return launch_per_plane(ctx, k, 5, x->h * x->w, x->n * x->c);
}

clunet_status cn_avgpool_backward(clunet_context *ctx, const cn_tensor *dy, const cn_tensor *dx, int accumulate)
{
    // dy is (N,C,1,1), dx is (N,C,H,W)
    CN_TRY(cn_pw_check_like("avgpool_backward", "dx", dx, dx));
    CN_TRY(cn_pw_check_shape("avgpool_backward", "dy", dy, dx->n, dx->c, 1, 1));
    int hw = dx->h * dx->w, planes = dx->n * dx->c;
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "se.cl", "avgpool_bwd", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, dy));
    CN_TRY(cn_arg_view(k, 2, dx));
    CN_TRY(CN_ARG_INT(k, 4, hw));
    CN_TRY(CN_ARG_INT(k, 5, planes));
    CN_TRY(CN_ARG_INT(k, 6, accumulate != 0));
    return launch_pixels(ctx, k, hw, planes);
}

clunet_status cn_chscale_forward(clunet_context *ctx, const cn_tensor *x, const cn_tensor *s, const cn_tensor *y)
{
    // x, y are (N,C,H,W), s is (N,C,1,1)
    CN_TRY(cn_pw_check_like("chscale_forward", "x", x, x));
    CN_TRY(cn_pw_check_shape("chscale_forward", "s", s, x->n, x->c, 1, 1));
    CN_TRY(cn_pw_check_like("chscale_forward", "y", y, x));
    int hw = x->h * x->w, planes = x->n * x->c;
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "se.cl", "chscale_fwd", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, s));
    CN_TRY(cn_arg_view(k, 4, y));
    CN_TRY(CN_ARG_INT(k, 6, hw));
    CN_TRY(CN_ARG_INT(k, 7, planes));
    return launch_pixels(ctx, k, hw, planes);
}

clunet_status cn_chscale_backward(clunet_context *ctx, const cn_tensor *x, const cn_tensor *s, const cn_tensor *dy,
                                  const cn_tensor *dx, const cn_tensor *ds, int accumulate)
{
    // x, dy, dx are (N,C,H,W), s and ds are (N,C,1,1)
    CN_TRY(cn_pw_check_like("chscale_backward", "x", x, x));
    CN_TRY(cn_pw_check_shape("chscale_backward", "s", s, x->n, x->c, 1, 1));
    CN_TRY(cn_pw_check_like("chscale_backward", "dy", dy, x));
    CN_TRY(cn_pw_check_like("chscale_backward", "dx", dx, x));
    CN_TRY(cn_pw_check_shape("chscale_backward", "ds", ds, x->n, x->c, 1, 1));
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "se.cl", "chscale_bwd", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, s));
    CN_TRY(cn_arg_view(k, 4, dy));
    CN_TRY(cn_arg_view(k, 6, dx));
    CN_TRY(cn_arg_view(k, 8, ds));
    CN_TRY(CN_ARG_INT(k, 10, x->h * x->w));
    CN_TRY(CN_ARG_INT(k, 11, accumulate != 0));
    return launch_per_plane(ctx, k, 12, x->h * x->w, x->n * x->c);
}
