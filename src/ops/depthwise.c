/*
 * depthwise.c - depthwise conv2d (groups == C == Co) with the direct kernels
 * of cl/depthwise.cl, one program per kernel size and stride, and through the
 * same kernels the forward and weight gradient of dense convs with a few
 * outputs on CPUs. conv.c checks shapes and handles the bias gradient before
 * calling here.
 */
#include <stdio.h>

#include "ops/conv.h"

/*
 * Depthwise maps of 9 to 16 rows at stride 1 take 16 rows a work-item on
 * CPUs, the whole height: the 16 x 16 maps of stages 4-5 at 4 x 256 ran
 * 0.80-0.87x the time forward and 0.81-0.94x for dx against 8 rows (test-ops
 * --perf --ab through a temporary knob, medians of 15 pairs); 8 x 8 maps ran
 * 1.0-1.46x slower with 16 (rows past the map are computed and dropped),
 * 32 x 32 ones 0.94-0.99x, stride 2 0.91-1.02x: those keep 8.
 */
static int whole_height(const cn_conv2d_params *p, int rows) { return p->stride == 1 && rows > 8 && rows <= 16; }

/*
 * Output rows per work-item of the forward kernel. On CPUs a work-item over 8
 * rows loads each input row once for the (up to K/stride) rows that read it:
 * on maps up to 64 wide (b3-b7 at 512 x 512) that ran 1.6-2.8x faster (test-ops
 * --perf, seven alternating rounds). So it does on inputs 128 wide at stride 1
 * (Zen 4, five alternating rounds, medians: b1 dw at 4 x 256 1.10 -> 0.72 ms,
 * b2's second dw at 1 x 512 1.32 -> 0.82); the 256-wide inputs (b1 dw and b2
 * dw s2 at 1 x 512) keep a row each, as the data gradient does. A dense conv's
 * forward (sources > 0) loads all its input rows for each output row: 8 rows
 * took the head (16 -> 1 at 512 x 512) from 1.68 to 1.28 ms (medians of twelve
 * alternating rounds). GPUs keep a row each (not measured).
 */
static int forward_rows(const clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x, const cn_tensor *y,
                        int sources)
{
    if (!cn_cpu_paths(ctx) || (x->w > 128 && sources == 0)) return 1;
    return sources == 0 && whole_height(p, y->h) ? 16 : 8;
}

/*
 * Input rows per work-item of the data gradient, which loads each row of dy
 * once for the (up to K/stride) input rows it feeds. On CPUs 8 rows where the
 * input is at most 128 wide: b3-b7 at 512 x 512 ran 1.4-2.7x faster than with
 * one row; on the 256-wide maps 4 and 8 rows were slower (test-ops --perf,
 * three alternating rounds). GPUs keep a row each (not measured).
 */
static int data_rows(const clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x)
{
    if (!cn_cpu_paths(ctx) || x->w > 128) return 1;
    return whole_height(p, x->h) ? 16 : 8;
}

/*
 * Whether the weight gradient goes to depthwise_plane_bwd_weight: stride 1,
 * the output the input's size, rows that tile a vector of 16 and planes of
 * at most 256 floats (16 x 16). A rule, on CPUs ($CLUNET_TUNE=depthwise_plane=0|1
 * forces it): against the row kernel (test-ops --perf --ab depthwise_plane=0,1,
 * medians of 15 pairs, Zen 4) the 16 x 16 maps of stages 4-5 at 4 x 256 and
 * stage 7 at 1 x 512 took 0.48-0.55x the time, the 8 x 8 maps of stages 6-7
 * at 4 x 256 0.55-0.69x.
 */
static clunet_status plane_fits(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                const cn_tensor *y, int *fits)
{
    static const int onoff[] = {0, 1};
    if (ctx->dw_plane < 0) CN_TRY(cn_tune_rule(ctx, "depthwise_plane", onoff, 2, cn_cpu_paths(ctx), &ctx->dw_plane));
    int plane = x->h * x->w;
    *fits = ctx->dw_plane && p->stride == 1 && y->h == x->h && y->w == x->w && x->w <= 16 && 16 % x->w == 0 &&
            plane % 16 == 0 && plane <= 256;
    return CLUNET_OK;
}

/* The kernel `name` for p's kernel size, stride and padding; `stream`: cn_stream_option's flag, or "". */
static clunet_status dw_kernel(clunet_context *ctx, const cn_conv2d_params *p, const char *name, int rows,
                               const char *stream, cl_kernel *k)
{
    if (p->stride > 2) /* the kernels gather strided taps as the even lanes of two vectors */
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "depthwise conv: stride %d (needs 1 or 2)", p->stride);
    if (p->pad_l < 0 || p->pad_l >= p->k)
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "depthwise conv: left padding %d with a %dx%d kernel (needs 0 <= pad < k)",
                       p->pad_l, p->k, p->k);
    char options[128];
    snprintf(options, sizeof options, "-DDW_K=%d -DDW_S=%d -DDW_PAD=%d -DDW_R=%d%s", p->k, p->stride, p->pad_l, rows,
             stream);
    return cn_kernel(ctx, "depthwise.cl", name, options, k);
}

/*
 * Launches a forward or data-gradient kernel over (columns, rows, planes) of
 * work-items. On CPUs a work-group is one row of them: the two kernels took 20%
 * less time over the 512 shapes than with the runtime's choice of work-groups
 * (PoCL, three alternating rounds; single work-items were slower on the
 * 256-wide maps).
 */
static clunet_status launch_rows(clunet_context *ctx, cl_kernel k, const size_t global[3])
{
    size_t local[3] = {global[0], 1, 1};
    int rows = cn_cpu_paths(ctx) && global[0] <= ctx->info.max_work_group_size;
    return cn_launch(ctx, k, 3, global, rows ? local : NULL);
}

/*
 * Sets the trailing arguments every kernel shares, from `first`: channels (the
 * planes the weights are indexed by), h, w, ho, wo, pad_t (pad_l is built in).
 */
static clunet_status geometry(cl_kernel k, cl_uint first, int channels, const cn_conv2d_params *p, const cn_tensor *x,
                              const cn_tensor *y)
{
    int args[6] = {channels, x->h, x->w, y->h, y->w, p->pad_t};
    for (int i = 0; i < 6; i++) CN_TRY(CN_ARG_INT(k, first + i, args[i]));
    return CLUNET_OK;
}

/*
 * y = x * w (+ b), then ep: depthwise where sources is 0, else dense, summing `sources` input planes
 * (depthwise_fwd).
 */
static clunet_status forward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x, const cn_tensor *w,
                             const cn_tensor *b, const cn_tensor *y, int sources, const cn_epilogue *ep)
{
    cl_kernel k;
    int rows = forward_rows(ctx, p, x, y, sources);
    const char *stream;
    CN_TRY(cn_stream_option(ctx, cn_tensor_count(y) * sizeof(float), &stream));
    CN_TRY(dw_kernel(ctx, p, "depthwise_fwd", rows, stream, &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, w));
    cl_mem bias = b ? b->buf : w->buf; /* without a bias the kernel never reads it: any buffer will do */
    CN_TRY(CN_ARG_MEM(k, 4, bias));
    CN_TRY(CN_ARG_INT(k, 5, b ? b->offset : 0));
    CN_TRY(CN_ARG_INT(k, 6, b != NULL));
    CN_TRY(cn_arg_view(k, 7, y));
    CN_TRY(geometry(k, 9, y->c, p, x, y));
    CN_TRY(CN_ARG_INT(k, 15, sources));
    CN_TRY(cn_epilogue_args(k, 16, ep));
    size_t global[3] = {(size_t)(y->w + 15) / 16, (size_t)(y->h + rows - 1) / rows, (size_t)y->n * y->c};
    return launch_rows(ctx, k, global);
}

clunet_status cn_depthwise_forward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                   const cn_tensor *w, const cn_tensor *b, const cn_tensor *y, const cn_epilogue *ep)
{
    // x is (N,C,H,W), w is (C,1,K,K), y is (N,C,Ho,Wo)
    return forward(ctx, p, x, w, b, y, 0, ep);
}

clunet_status cn_depthwise_dense_forward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                         const cn_tensor *w, const cn_tensor *b, const cn_tensor *y,
                                         const cn_epilogue *ep)
{
    // x is (N,C,H,W), w is (Co,C,K,K), y is (N,Co,Ho,Wo)
    return forward(ctx, p, x, w, b, y, x->c, ep);
}

/* dw (C,1,K,K) += dy (*) x per channel; dy's planes lie dy_image and dy_channel floats apart (see the kernel). */
static clunet_status weight_grad(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                 const cn_tensor *dy, const cn_tensor *dw, size_t dy_image, size_t dy_channel)
{
    cl_kernel k;
    int fits;
    CN_TRY(plane_fits(ctx, p, x, dy, &fits));
    if (fits) {
        char options[128];
        snprintf(options, sizeof options, "-DDW_K=%d -DDW_S=1 -DDW_PAD=%d -DDW_PT=%d -DDW_PW=%d -DDW_PN=%d", p->k,
                 p->pad_l, p->pad_t, x->w, x->h * x->w);
        CN_TRY(cn_kernel(ctx, "depthwise.cl", "depthwise_plane_bwd_weight", options, &k));
        CN_TRY(cn_arg_view(k, 0, x));
        CN_TRY(cn_arg_view(k, 2, dy));
        CN_TRY(cn_arg_view(k, 4, dw));
        CN_TRY(CN_ARG_INT(k, 6, x->n));
        CN_TRY(CN_ARG_INT(k, 7, x->c));
        CN_TRY(CN_ARG_INT(k, 8, (int)dy_image));
        CN_TRY(CN_ARG_INT(k, 9, (int)dy_channel));
        size_t global[1] = {(size_t)x->c}, local[1] = {1}; /* a channel a work-group on CPUs, as below */
        return cn_launch(ctx, k, 1, global, cn_cpu_paths(ctx) ? local : NULL);
    }
    CN_TRY(dw_kernel(ctx, p, "depthwise_bwd_weight", 1, "", &k));
    CN_TRY(cn_arg_view(k, 0, x));
    CN_TRY(cn_arg_view(k, 2, dy));
    CN_TRY(cn_arg_view(k, 4, dw));
    CN_TRY(CN_ARG_INT(k, 6, x->n));
    CN_TRY(geometry(k, 7, x->c, p, x, dy));
    CN_TRY(CN_ARG_INT(k, 13, (int)dy_image));
    CN_TRY(CN_ARG_INT(k, 14, (int)dy_channel));
    /* a CPU core runs a channel's rows best alone: no local memory traffic, no barrier */
    size_t wg = cn_cpu_paths(ctx) ? 1 : cn_conv_reduce_wg(ctx);
    size_t global[1] = {wg * x->c * p->k}, local[1] = {wg}; /* a group per channel and tap row */
    return cn_launch(ctx, k, 1, global, local);
}

clunet_status cn_depthwise_dense_weight_grad(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                             const cn_tensor *dy, const cn_tensor *dw)
{
    // x is (N,C,H,W), dy is (N,Co,Ho,Wo), dw is (Co,C,K,K) and accumulates
    size_t plane = (size_t)dy->h * dy->w, filters = (size_t)x->c * p->k * p->k;
    for (int o = 0; o < dy->c; o++) {
        cn_tensor g = *dy, d = *dw;
        g.offset += o * plane;
        d.offset += o * filters;
        CN_TRY(weight_grad(ctx, p, x, &g, &d, (size_t)dy->c * plane, 0));
    }
    return CLUNET_OK;
}

clunet_status cn_depthwise_backward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                    const cn_tensor *w, const cn_tensor *dy, const cn_tensor *dx, int dx_add,
                                    const cn_tensor *dw)
{
    // x is (N,C,H,W), w is (C,1,K,K), dy is (N,C,Ho,Wo); dw accumulates, dx where dx_add
    cl_kernel k;
    if (dw) CN_TRY(weight_grad(ctx, p, x, dy, dw, (size_t)dy->c * dy->h * dy->w, (size_t)dy->h * dy->w));
    if (dx) {
        int rows = data_rows(ctx, p, x);
        const char *stream = ""; /* a dx added to is read anyway */
        if (!dx_add) CN_TRY(cn_stream_option(ctx, cn_tensor_count(dx) * sizeof(float), &stream));
        CN_TRY(dw_kernel(ctx, p, "depthwise_bwd_data", rows, stream, &k));
        CN_TRY(cn_arg_view(k, 0, dy));
        CN_TRY(cn_arg_view(k, 2, w));
        CN_TRY(cn_arg_view(k, 4, dx));
        CN_TRY(geometry(k, 6, x->c, p, x, dy));
        CN_TRY(CN_ARG_INT(k, 12, dx_add));
        size_t px = 16 * (size_t)p->stride; /* input pixels per work-item */
        size_t global[3] = {(x->w + px - 1) / px, (size_t)(x->h + rows - 1) / rows, (size_t)x->n * x->c};
        CN_TRY(launch_rows(ctx, k, global));
    }
    return CLUNET_OK;
}
