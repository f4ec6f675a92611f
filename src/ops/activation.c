/*
 * activation.c - swish (SiLU), sigmoid and ReLU: enqueues the `*_fwd` / `*_bwd` kernels of cl/activation.cl.
 *
 * Each work-item streams a span of floats (cn_pw_launch_spans): float16
 * vectors on CPUs, where PoCL does not vectorise the sigmoid's branch across
 * items; one float on GPUs.
 */
#include <stdio.h>

#include "ops/pointwise.h"

const char *cn_activation_name(cn_activation act)
{
    switch (act) {
    case CN_ACT_SWISH: return "swish";
    case CN_ACT_SIGMOID: return "sigmoid";
    case CN_ACT_RELU: return "relu";
    }
    return "unknown";
}

static clunet_status kernel_for(clunet_context *ctx, cn_activation act, const char *suffix, cl_kernel *k)
{
    if (act != CN_ACT_SWISH && act != CN_ACT_SIGMOID && act != CN_ACT_RELU)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "activation: unknown kind %d", (int)act);
    char name[32];
    snprintf(name, sizeof name, "%s_%s", cn_activation_name(act), suffix);
    return cn_kernel(ctx, "activation.cl", name, NULL, k);
}

clunet_status cn_activation_forward(clunet_context *ctx, cn_activation act, const cn_tensor *x, const cn_tensor *y)
{
    // x, y are (N,C,H,W)
    CN_TRY(cn_pw_check_like("activation_forward", "x", x, x));
    CN_TRY(cn_pw_check_like("activation_forward", "y", y, x));
    size_t count = cn_tensor_count(x);
    cl_kernel k;
    CN_TRY(kernel_for(ctx, act, "fwd", &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, y));
    return cn_pw_launch_spans(ctx, k, 4, count);
}

clunet_status cn_activation_backward(clunet_context *ctx, cn_activation act, const cn_tensor *x, const cn_tensor *y,
                                     const cn_tensor *dy, const cn_tensor *dx, int accumulate)
{
    // x or y, dy, dx are (N,C,H,W)
    const cn_tensor *in = act == CN_ACT_SIGMOID ? y : x;
    CN_TRY(cn_pw_check_like("activation_backward", "dy", dy, dy));
    CN_TRY(cn_pw_check_like("activation_backward", act == CN_ACT_SIGMOID ? "y" : "x", in, dy));
    CN_TRY(cn_pw_check_like("activation_backward", "dx", dx, dy));
    size_t count = cn_tensor_count(dy);
    cl_kernel k;
    CN_TRY(kernel_for(ctx, act, "bwd", &k));
    CN_TRY(cn_arg_view(k, 0, in));
    CN_TRY(cn_arg_view(k, 2, dy));
    CN_TRY(cn_arg_view(k, 4, dx));
    CN_TRY(CN_ARG_INT(k, 8, accumulate != 0));
    return cn_pw_launch_spans(ctx, k, 6, count);
}
