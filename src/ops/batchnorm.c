/*
 * batchnorm.c - batch norm forward (training and inference) and backward (cl/batchnorm.cl).
 *
 * Per-channel sums are two-stage reductions: one partial per (channel, n,
 * chunk of BN_CHUNK pixels), then a fixed-order sum per channel. The chunking
 * depends only on the shape, so work sizes do not depend on the device.
 *
 * CPUs (PoCL) run one work-item per chunk, each streaming it with float16
 * vectors: a work-group barrier there costs a loop over every item, and a
 * loop over items does not vectorise around a reduction. GPUs sum a chunk per
 * work-group and give each element its own item.
 */
#include <stdio.h>

#include "ops/pointwise.h"

#define BN_CHUNK 4096
#define BN_GROUP 256

static int chunks_for(int hw) { return (hw + BN_CHUNK - 1) / BN_CHUNK; }

static int serial(const clunet_context *ctx) { return cn_cpu_paths(ctx); }

/* Pixels per item of the element-wise kernels. */
static int span_for(const clunet_context *ctx) { return serial(ctx) ? BN_CHUNK : 1; }

size_t cn_batchnorm_work_floats(int n, int c, int h, int w)
{
    size_t parts = (size_t)n * chunks_for(h * w);
    return 2 * (size_t)c * parts + 2 * (size_t)c;
}

static clunet_status check_layer(const char *op, const cn_batchnorm *bn, const cn_tensor *x, int training)
{
    if (!bn) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: no layer", op);
    CN_TRY(cn_pw_check_like(op, "x", x, x));
    size_t c = (size_t)x->c;
    CN_TRY(cn_pw_check(op, "gamma", &bn->gamma, c));
    CN_TRY(cn_pw_check(op, "beta", &bn->beta, c));
    if (!(bn->eps > 0.0f)) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: eps must be > 0", op);
    if (!training) return CLUNET_OK;
    if ((size_t)x->n * x->h * x->w < 2)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: training needs more than one value per channel", op);
    CN_TRY(cn_pw_check(op, "saved", &bn->saved, 2 * c));
    return cn_pw_check(op, "work", &bn->work, cn_batchnorm_work_floats(x->n, x->c, x->h, x->w));
}

/* Stage one of a reduction: `stem`_serial on CPUs, `stem`_group elsewhere. */
static clunet_status partial_kernel(clunet_context *ctx, const char *stem, cl_kernel *k)
{
    char name[32];
    snprintf(name, sizeof name, "%s_%s", stem, serial(ctx) ? "serial" : "group");
    return cn_kernel(ctx, "batchnorm.cl", name, NULL, k);
}

/* Sets the trailing (c, hw, chunk, parts[, scratch]) arguments of a stage-one kernel and enqueues it. */
static clunet_status launch_partial(clunet_context *ctx, cl_kernel k, cl_uint first, const cn_tensor *x)
{
    int hw = x->h * x->w, chunks = chunks_for(hw);
    CN_TRY(CN_ARG_INT(k, first, x->c));
    CN_TRY(CN_ARG_INT(k, first + 1, hw));
    CN_TRY(CN_ARG_INT(k, first + 2, BN_CHUNK));
    CN_TRY(CN_ARG_INT(k, first + 3, x->n * chunks));
    size_t planes = (size_t)x->n * x->c;
    if (serial(ctx)) {
        size_t global[2] = {(size_t)chunks, planes};
        return cn_launch(ctx, k, 2, global, NULL);
    }
    size_t group = cn_pw_group_size(ctx, k, hw < BN_GROUP ? (size_t)hw : BN_GROUP);
    CN_TRY(cn_arg(k, first + 4, group * sizeof(float), NULL));
    size_t global[2] = {group * chunks, planes}, local[2] = {group, 1};
    return cn_launch(ctx, k, 2, global, local);
}

/* Batch mean and inverse std into bn->saved; running statistics updated. */
static clunet_status batch_statistics(clunet_context *ctx, const cn_batchnorm *bn, const cn_tensor *x)
{
    cl_kernel k;
    CN_TRY(partial_kernel(ctx, "bn_stats", &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, &bn->work));
    CN_TRY(launch_partial(ctx, k, 4, x));

    size_t c = (size_t)x->c;
    int hw = x->h * x->w;
    CN_TRY(cn_kernel(ctx, "batchnorm.cl", "bn_stats_final", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, &bn->work));
    CN_TRY(cn_arg_view(k, 4, &bn->saved));
    CN_TRY(cn_arg_view(k, 6, &bn->running_mean));
    CN_TRY(cn_arg_view(k, 8, &bn->running_var));
    CN_TRY(CN_ARG_INT(k, 10, x->c));
    CN_TRY(CN_ARG_INT(k, 11, hw));
    CN_TRY(CN_ARG_INT(k, 12, x->n * chunks_for(hw)));
    CN_TRY(CN_ARG_FLOAT(k, 13, (double)x->n * hw));
    CN_TRY(CN_ARG_FLOAT(k, 14, bn->eps));
    CN_TRY(CN_ARG_FLOAT(k, 15, bn->momentum));
    return cn_launch(ctx, k, 1, &c, NULL);
}

enum { BN_ACT_NONE, BN_ACT_SWISH, BN_ACT_RELU }; /* as cl/batchnorm.cl */

/* y (when given) = bn(x), z (when act is not BN_ACT_NONE) = act(y), in one pass over x. */
static clunet_status forward(clunet_context *ctx, const cn_batchnorm *bn, int training, int act, const cn_tensor *x,
                             const cn_tensor *y, const cn_tensor *z)
{
    // x, y, z are (N,C,H,W)
    const char *op = training ? "batchnorm_forward (training)" : "batchnorm_forward (inference)";
    CN_TRY(check_layer(op, bn, x, training));
    if (y) CN_TRY(cn_pw_check_like(op, "y", y, x));
    if (act != BN_ACT_NONE) CN_TRY(cn_pw_check_like(op, "z", z, x));
    if (!y && act == BN_ACT_NONE) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: y is missing", op);
    size_t c = (size_t)x->c;
    CN_TRY(cn_pw_check(op, "running_mean", &bn->running_mean, c));
    CN_TRY(cn_pw_check(op, "running_var", &bn->running_var, c));
    if (training) CN_TRY(batch_statistics(ctx, bn, x));

    int hw = x->h * x->w, planes = x->n * x->c, span = span_for(ctx);
    const char *stream;
    CN_TRY(cn_stream_option(ctx, (size_t)planes * hw * sizeof(float), &stream));
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "batchnorm.cl", training ? "bn_apply" : "bn_apply_eval", stream, &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, y ? y : z)); /* not written without y */
    CN_TRY(cn_arg_view(k, 4, &bn->gamma));
    CN_TRY(cn_arg_view(k, 6, &bn->beta));
    cl_uint a = 8;
    if (training) {
        CN_TRY(cn_arg_view(k, a, &bn->saved));
        a += 2;
    } else {
        CN_TRY(cn_arg_view(k, a, &bn->running_mean));
        CN_TRY(cn_arg_view(k, a + 2, &bn->running_var));
        a += 4;
        CN_TRY(CN_ARG_FLOAT(k, a++, bn->eps));
    }
    CN_TRY(CN_ARG_INT(k, a++, x->c));
    CN_TRY(CN_ARG_INT(k, a++, hw));
    CN_TRY(CN_ARG_INT(k, a++, planes));
    CN_TRY(CN_ARG_INT(k, a++, span));
    CN_TRY(cn_arg_view(k, a, act != BN_ACT_NONE ? z : y)); /* not written without act */
    a += 2;
    CN_TRY(CN_ARG_INT(k, a++, act));
    CN_TRY(CN_ARG_INT(k, a++, y != NULL));
    size_t global[2] = {(size_t)((hw + span - 1) / span), (size_t)planes};
    return cn_launch(ctx, k, 2, global, NULL);
}

clunet_status cn_batchnorm_forward(clunet_context *ctx, const cn_batchnorm *bn, int training, const cn_tensor *x,
                                   const cn_tensor *y)
{
    return forward(ctx, bn, training, BN_ACT_NONE, x, y, NULL);
}

clunet_status cn_batchnorm_act_forward(clunet_context *ctx, const cn_batchnorm *bn, int training, cn_activation act,
                                       const cn_tensor *x, const cn_tensor *y, const cn_tensor *z)
{
    if (act != CN_ACT_SWISH && act != CN_ACT_RELU)
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "batchnorm_forward: no fused %s", cn_activation_name(act));
    return forward(ctx, bn, training, act == CN_ACT_SWISH ? BN_ACT_SWISH : BN_ACT_RELU, x, y, z);
}

clunet_status cn_batchnorm_fold(clunet_context *ctx, const cn_batchnorm *bn, cn_epilogue_act act, cn_epilogue *ep)
{
    const char *op = "batchnorm_fold";
    if (!bn) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: no layer", op);
    if (act == CN_EPI_NONE) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: no batch norm to apply", op);
    if (!(bn->eps > 0.0f)) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: eps must be > 0", op);
    size_t c = cn_tensor_count(&bn->gamma);
    CN_TRY(cn_pw_check(op, "beta", &bn->beta, c));
    CN_TRY(cn_pw_check(op, "running_mean", &bn->running_mean, c));
    CN_TRY(cn_pw_check(op, "running_var", &bn->running_var, c));
    CN_TRY(cn_pw_check(op, "saved", &bn->saved, 2 * c));
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "batchnorm.cl", "bn_fold", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, &bn->gamma));
    CN_TRY(cn_arg_view(k, 2, &bn->beta));
    CN_TRY(cn_arg_view(k, 4, &bn->running_mean));
    CN_TRY(cn_arg_view(k, 6, &bn->running_var));
    CN_TRY(CN_ARG_FLOAT(k, 8, bn->eps));
    CN_TRY(CN_ARG_INT(k, 9, c));
    CN_TRY(cn_arg_view(k, 10, &bn->saved));
    *ep = (cn_epilogue){bn->saved, act};
    return cn_launch(ctx, k, 1, &c, NULL);
}

/*
 * dx from dy, the gradient of y = bn(x), or with act of z = act(y) (y recomputed from x); with swish, dy_out
 * receives the gradient of y in the first pass and the second reads it.
 */
static clunet_status backward(clunet_context *ctx, const cn_batchnorm *bn, int act, const cn_tensor *x,
                              const cn_tensor *dy, const cn_tensor *dy_out, const cn_tensor *dx, int accumulate)
{
    // x, dy, dy_out, dx are (N,C,H,W)
    const char *op = act == BN_ACT_NONE ? "batchnorm_backward" : "batchnorm_act_backward";
    CN_TRY(check_layer(op, bn, x, 1));
    CN_TRY(cn_pw_check_like(op, act == BN_ACT_NONE ? "dy" : "dz", dy, x));
    CN_TRY(cn_pw_check_like(op, "dx", dx, x));
    int write_dy = act == BN_ACT_SWISH;
    if (write_dy) CN_TRY(cn_pw_check_like(op, "dy (scratch)", dy_out, x));
    size_t c = (size_t)x->c;
    CN_TRY(cn_pw_check(op, "dgamma", &bn->dgamma, c));
    CN_TRY(cn_pw_check(op, "dbeta", &bn->dbeta, c));
    int hw = x->h * x->w, planes = x->n * x->c, parts = x->n * chunks_for(hw), span = span_for(ctx);

    cl_kernel k;
    CN_TRY(partial_kernel(ctx, "bn_bwd", &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, dy));
    CN_TRY(cn_arg_view(k, 4, &bn->saved));
    CN_TRY(cn_arg_view(k, 6, &bn->gamma));
    CN_TRY(cn_arg_view(k, 8, &bn->beta));
    CN_TRY(CN_ARG_INT(k, 10, act));
    CN_TRY(cn_arg_view(k, 11, write_dy ? dy_out : dx)); /* not written without write_dy */
    CN_TRY(CN_ARG_INT(k, 13, write_dy));
    CN_TRY(cn_arg_view(k, 14, &bn->work));
    CN_TRY(launch_partial(ctx, k, 16, x));

    CN_TRY(cn_kernel(ctx, "batchnorm.cl", "bn_bwd_final", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, &bn->work));
    CN_TRY(cn_arg_view(k, 2, &bn->saved));
    CN_TRY(cn_arg_view(k, 4, &bn->dgamma));
    CN_TRY(cn_arg_view(k, 6, &bn->dbeta));
    CN_TRY(CN_ARG_INT(k, 8, x->c));
    CN_TRY(CN_ARG_INT(k, 9, parts));
    CN_TRY(CN_ARG_FLOAT(k, 10, (double)x->n * hw));
    CN_TRY(cn_launch(ctx, k, 1, &c, NULL));

    const char *stream;
    CN_TRY(cn_stream_option(ctx, (size_t)planes * hw * sizeof(float), &stream));
    CN_TRY(cn_kernel(ctx, "batchnorm.cl", "bn_bwd_dx", stream, &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, write_dy ? dy_out : dy));
    CN_TRY(cn_arg_view(k, 4, dx));
    CN_TRY(cn_arg_view(k, 6, &bn->gamma));
    CN_TRY(cn_arg_view(k, 8, &bn->saved));
    CN_TRY(cn_arg_view(k, 10, &bn->work));
    CN_TRY(CN_ARG_INT(k, 12, x->c));
    CN_TRY(CN_ARG_INT(k, 13, hw));
    CN_TRY(CN_ARG_INT(k, 14, parts));
    CN_TRY(CN_ARG_INT(k, 15, planes));
    CN_TRY(CN_ARG_INT(k, 16, span));
    CN_TRY(CN_ARG_INT(k, 17, accumulate != 0));
    CN_TRY(cn_arg_view(k, 18, &bn->beta));
    CN_TRY(CN_ARG_INT(k, 20, write_dy ? BN_ACT_NONE : act));
    size_t global[2] = {(size_t)((hw + span - 1) / span), (size_t)planes};
    return cn_launch(ctx, k, 2, global, NULL);
}

clunet_status cn_batchnorm_backward(clunet_context *ctx, const cn_batchnorm *bn, const cn_tensor *x,
                                    const cn_tensor *dy, const cn_tensor *dx, int accumulate)
{
    return backward(ctx, bn, BN_ACT_NONE, x, dy, NULL, dx, accumulate);
}

clunet_status cn_batchnorm_act_backward(clunet_context *ctx, const cn_batchnorm *bn, cn_activation act,
                                        const cn_tensor *x, const cn_tensor *dz, const cn_tensor *dy,
                                        const cn_tensor *dx, int accumulate)
{
    if (act != CN_ACT_SWISH && act != CN_ACT_RELU)
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "batchnorm_act_backward: no fused %s", cn_activation_name(act));
    return backward(ctx, bn, act == CN_ACT_SWISH ? BN_ACT_SWISH : BN_ACT_RELU, x, dz, dy, dx, accumulate);
}
