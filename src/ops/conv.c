/*
 * conv.c - dense conv2d as im2col + GEMM (a 1x1 stride-1 unpadded conv is a
 * GEMM on the input itself); depthwise convs go to depthwise.c. One image's
 * columns at a time, so the workspace stays one image's worth. On CPUs, stride-1
 * convs with few input channels skip the columns for y and dx (conv2d_direct).
 */
#include <limits.h>
#include <stdio.h>

#include "ops/conv.h"

int cn_conv2d_out_h(const cn_conv2d_params *p, int h) { return (h + p->pad_t + p->pad_b - p->k) / p->stride + 1; }
int cn_conv2d_out_w(const cn_conv2d_params *p, int w) { return (w + p->pad_l + p->pad_r - p->k) / p->stride + 1; }

/* The input itself is the column matrix (C, H*W). */
static int columns_are_input(const cn_conv2d_params *p)
{
    return p->k == 1 && p->stride == 1 && !p->pad_t && !p->pad_l && !p->pad_b && !p->pad_r;
}

/* Floats of conv2d_direct's weight copy: out_c rounded up to 16, times in_c * K * K. */
static size_t direct_weight_floats(const cn_conv2d_params *p, int out_c, int in_c)
{
    return (size_t)(out_c + 15) / 16 * 16 * in_c * p->k * p->k;
}

/*
 * Whether y and dx go through conv2d_direct: on CPUs (one work-item per tile
 * suits them, not GPUs), stride 1, K > 1, pads the flipped kernel can use, and
 * at most 32 channels into the direct conv (x's for y, dy's for dx): each tile
 * reads K rows of every input plane, which outruns the caches beyond that
 * (measured on PoCL: 2x faster than im2col + GEMM at 16, 2x slower at 160).
 * The weights' copy lives in the workspace the columns would use.
 */
static int use_direct_conv(const clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x, int in_c,
                           int out_c)
{
    int pads_ok = p->pad_t < p->k && p->pad_l < p->k && p->pad_b < p->k && p->pad_r < p->k;
    size_t wf = direct_weight_floats(p, out_c, in_c);
    return ctx->info.type == CLUNET_DEVICE_CPU && p->groups == 1 && p->stride == 1 && p->k > 1 && pads_ok &&
           in_c <= 32 && wf <= cn_conv2d_workspace_floats(p, x->n, x->c, x->h, x->w);
}

size_t cn_conv2d_workspace_floats(const cn_conv2d_params *p, int n, int c, int h, int w)
{
    if (p->groups != 1 || columns_are_input(p)) return 0;
    return (size_t)c * p->k * p->k * cn_conv2d_out_h(p, h) * cn_conv2d_out_w(p, w);
}

size_t cn_conv_reduce_wg(const clunet_context *ctx)
{
    size_t wg = 64;
    while (wg > ctx->info.max_work_group_size) wg /= 2;
    return wg;
}

/* ---- argument checks ------------------------------------------------------ */

static clunet_status check_tensor(const char *what, const cn_tensor *t, int n, int c, int h, int w)
{
    if (!t) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "conv2d: %s is missing", what);
    if (t->n != n || t->c != c || t->h != h || t->w != w)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "conv2d: %s is (%d,%d,%d,%d), expected (%d,%d,%d,%d)", what, t->n,
                       t->c, t->h, t->w, n, c, h, w);
    if (t->offset + cn_tensor_count(t) > INT_MAX) /* kernels index with int */
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "conv2d: %s ends beyond 2^31 floats into its buffer", what);
    return CLUNET_OK;
}

/* Checks p, x, w, b and the output-shaped y (or dy) and work; b must be given exactly when p->has_bias. */
static clunet_status check_conv(const cn_conv2d_params *p, const cn_tensor *x, const cn_tensor *w,
                                const cn_tensor *b, const char *y_name, const cn_tensor *y, const cn_tensor *work)
{
    if (!x) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "conv2d: x is missing");
    if (p->k < 1 || p->stride < 1 || p->cout < 1 || p->pad_t < 0 || p->pad_l < 0 || p->pad_b < 0 || p->pad_r < 0)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "conv2d: bad parameters k=%d stride=%d cout=%d pads=%d,%d,%d,%d",
                       p->k, p->stride, p->cout, p->pad_t, p->pad_l, p->pad_b, p->pad_r);
    if (p->groups != 1 && !(p->groups == x->c && p->cout == x->c))
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "conv2d: groups=%d with %d -> %d channels (only 1 or depthwise)",
                       p->groups, x->c, p->cout);
    int ho = cn_conv2d_out_h(p, x->h), wo = cn_conv2d_out_w(p, x->w);
    if (x->h + p->pad_t + p->pad_b < p->k || x->w + p->pad_l + p->pad_r < p->k)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "conv2d: input %dx%d smaller than the %dx%d kernel", x->h, x->w,
                       p->k, p->k);
    CN_TRY(check_tensor("x", x, x->n, x->c, x->h, x->w));
    CN_TRY(check_tensor("w", w, p->cout, x->c / p->groups, p->k, p->k));
    CN_TRY(check_tensor(y_name, y, x->n, p->cout, ho, wo));
    if (!p->has_bias != !b)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "conv2d: has_bias=%d but a bias tensor %s given", p->has_bias,
                       b ? "is" : "is not");
    if (b && (cn_tensor_count(b) != (size_t)p->cout || b->offset + p->cout > INT_MAX))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "conv2d: bias has %zu values, expected %d", cn_tensor_count(b),
                       p->cout);
    size_t need = cn_conv2d_workspace_floats(p, x->n, x->c, x->h, x->w);
    if (need && (!work || cn_tensor_count(work) < need || work->offset + need > INT_MAX))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "conv2d: workspace of %zu floats given, %zu needed",
                       work ? cn_tensor_count(work) : 0, need);
    return CLUNET_OK;
}

/* ---- the pieces ----------------------------------------------------------- */

/* im2col (to_columns) or col2im-accumulate (!to_columns) of image `img` between x and work. */
static clunet_status columns(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x, int img,
                             const cn_tensor *work, int to_columns)
{
    int ho = cn_conv2d_out_h(p, x->h), wo = cn_conv2d_out_w(p, x->w);
    size_t x_off = x->offset + (size_t)img * x->c * x->h * x->w;
    char options[48];
    snprintf(options, sizeof options, "-DCONV_K=%d -DCONV_S=%d", p->k, p->stride);
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "conv.cl", to_columns ? "conv2d_im2col" : "conv2d_col2im", options, &k));
    cl_mem from = to_columns ? x->buf : work->buf, to = to_columns ? work->buf : x->buf;
    CN_TRY(CN_ARG_MEM(k, 0, from));
    CN_TRY(CN_ARG_INT(k, 1, to_columns ? x_off : work->offset));
    CN_TRY(CN_ARG_MEM(k, 2, to));
    CN_TRY(CN_ARG_INT(k, 3, to_columns ? work->offset : x_off));
    int args[6] = {x->h, x->w, ho, wo, p->pad_t, p->pad_l};
    for (int i = 0; i < 6; i++) CN_TRY(CN_ARG_INT(k, 4 + i, args[i]));
    /* 16 pixels per work-item: output pixels for im2col, input pixels for col2im */
    size_t global[3] = {to_columns ? (size_t)(wo + 15) / 16 : (size_t)(x->w + 15) / 16,
                        to_columns ? (size_t)ho : (size_t)x->h, (size_t)x->c};
    return cn_launch(ctx, k, 3, global, NULL);
}

static clunet_status bias_add(clunet_context *ctx, const cn_tensor *y, const cn_tensor *b)
{
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "conv.cl", "conv2d_bias_add", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, y));
    CN_TRY(cn_arg_view(k, 2, b));
    CN_TRY(CN_ARG_INT(k, 4, y->c));
    CN_TRY(CN_ARG_INT(k, 5, y->h * y->w));
    size_t global[3] = {(size_t)y->h * y->w, (size_t)y->c, (size_t)y->n};
    return cn_launch(ctx, k, 3, global, NULL);
}

static clunet_status bias_backward(clunet_context *ctx, const cn_tensor *dy, const cn_tensor *db)
{
    // dy is (N,Co,Ho,Wo), db is (Co)
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "conv.cl", "conv2d_bias_backward", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, dy));
    CN_TRY(cn_arg_view(k, 2, db));
    CN_TRY(CN_ARG_INT(k, 4, dy->n));
    CN_TRY(CN_ARG_INT(k, 5, dy->c));
    CN_TRY(CN_ARG_INT(k, 6, dy->h * dy->w));
    size_t wg = cn_conv_reduce_wg(ctx);
    size_t global[1] = {wg * dy->c}, local[1] = {wg};
    return cn_launch(ctx, k, 1, global, local);
}

/*
 * out (+)= in (*) weights, stride 1, via conv2d_direct, with the weights
 * copied to `work` first. Forward: in = x, out = y. Data gradient (flip): in =
 * dy, out = dx: the kernel flipped, its channel axes swapped, pads K-1-pad.
 */
static clunet_status direct_conv(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *in, const cn_tensor *w,
                                 const cn_tensor *out, const cn_tensor *work, int flip)
{
    char options[48];
    snprintf(options, sizeof options, "-DCONV_K=%d -DCONV_S=1", p->k);
    int kk = p->k * p->k, cin = w->c, cop = (out->c + 15) / 16 * 16;
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "conv.cl", "conv2d_direct_weights", options, &k));
    CN_TRY(cn_arg_view(k, 0, w));
    CN_TRY(cn_arg_view(k, 2, work));
    int wargs[6] = {out->c, cop, flip ? kk : cin * kk, flip ? cin * kk : kk, flip ? kk - 1 : 0, flip ? -1 : 1};
    for (int i = 0; i < 6; i++) CN_TRY(CN_ARG_INT(k, 4 + i, wargs[i]));
    size_t wglobal[3] = {(size_t)cop, (size_t)kk, (size_t)in->c};
    CN_TRY(cn_launch(ctx, k, 3, wglobal, NULL));

    CN_TRY(cn_kernel(ctx, "conv.cl", "conv2d_direct", options, &k));
    CN_TRY(cn_arg_view(k, 0, in));
    CN_TRY(cn_arg_view(k, 2, work));
    CN_TRY(cn_arg_view(k, 4, out));
    int args[9] = {in->c, in->h, in->w, out->c, out->h, out->w,
                   flip ? p->k - 1 - p->pad_t : p->pad_t, flip ? p->k - 1 - p->pad_l : p->pad_l, flip};
    for (int i = 0; i < 9; i++) CN_TRY(CN_ARG_INT(k, 6 + i, args[i]));
    size_t global[3] = {(size_t)(out->w + 15) / 16, (size_t)out->h, (size_t)cop / 16 * out->n};
    size_t local[3] = {1, 1, 1};
    return cn_launch(ctx, k, 3, global, local);
}

/* A GEMM over plain tensors, batch 1, rows of each operand contiguous. */
static cn_gemm_args gemm_args(int ta, int tb, int m, int n, int k, float beta, cl_mem a, size_t a_off, cl_mem b,
                              size_t b_off, cl_mem c, size_t c_off)
{
    cn_gemm_args g = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .alpha = 1.0f, .beta = beta, .batch = 1};
    g.a = a, g.a_off = a_off, g.lda = ta ? m : k;
    g.b = b, g.b_off = b_off, g.ldb = tb ? k : n;
    g.c = c, g.c_off = c_off, g.ldc = n;
    return g;
}

/* ---- forward / backward --------------------------------------------------- */

clunet_status cn_conv2d_forward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                const cn_tensor *w, const cn_tensor *b, const cn_tensor *y, const cn_tensor *work)
{
    // x is (N,C,H,W), w is (Co,C/groups,K,K), y is (N,Co,Ho,Wo)
    CN_TRY(check_conv(p, x, w, b, "y", y, work));
    if (p->groups > 1) return cn_depthwise_forward(ctx, p, x, w, b, y);
    int hw = y->h * y->w, ckk = x->c * p->k * p->k;
    size_t x_img = (size_t)x->c * x->h * x->w, y_img = (size_t)y->c * hw;
    if (use_direct_conv(ctx, p, x, x->c, p->cout)) {
        CN_TRY(direct_conv(ctx, p, x, w, y, work, 0));
    } else if (columns_are_input(p)) {
        cn_gemm_args g = gemm_args(0, 0, p->cout, hw, x->c, 0.0f, w->buf, w->offset, x->buf, x->offset, y->buf,
                                   y->offset);
        g.batch = x->n, g.b_stride = x_img, g.c_stride = y_img;
        CN_TRY(cn_gemm(ctx, &g));
    } else {
        for (int i = 0; i < x->n; i++) {
            CN_TRY(columns(ctx, p, x, i, work, 1));
            cn_gemm_args g = gemm_args(0, 0, p->cout, hw, ckk, 0.0f, w->buf, w->offset, work->buf, work->offset,
                                       y->buf, y->offset + i * y_img);
            CN_TRY(cn_gemm(ctx, &g));
        }
    }
    return b ? bias_add(ctx, y, b) : CLUNET_OK;
}

clunet_status cn_conv2d_backward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                 const cn_tensor *w, const cn_tensor *dy, const cn_tensor *dx, const cn_tensor *dw,
                                 const cn_tensor *db, const cn_tensor *work)
{
    // x is (N,C,H,W), w is (Co,C/groups,K,K), dy is (N,Co,Ho,Wo); dx, dw, db accumulate
    cn_conv2d_params pb = *p;
    pb.has_bias = db != NULL; /* the bias value plays no part in the gradients */
    CN_TRY(check_conv(&pb, x, w, db, "dy", dy, work));
    if (dx) CN_TRY(check_tensor("dx", dx, x->n, x->c, x->h, x->w));
    if (dw) CN_TRY(check_tensor("dw", dw, w->n, w->c, w->h, w->w));
    if (db) CN_TRY(bias_backward(ctx, dy, db));
    if (p->groups > 1) return cn_depthwise_backward(ctx, p, x, w, dy, dx, dw);

    int hw = dy->h * dy->w, ckk = x->c * p->k * p->k;
    size_t x_img = (size_t)x->c * x->h * x->w, y_img = (size_t)dy->c * hw;
    int direct = columns_are_input(p);
    /* dw += dy * columns^T, one image at a time (every image adds into the same dw) */
    for (int i = 0; dw && i < x->n; i++) {
        if (!direct) CN_TRY(columns(ctx, p, x, i, work, 1));
        cl_mem cols = direct ? x->buf : work->buf;
        size_t cols_off = direct ? x->offset + i * x_img : work->offset;
        cn_gemm_args g = gemm_args(0, 1, p->cout, ckk, hw, 1.0f, dy->buf, dy->offset + i * y_img, cols, cols_off,
                                   dw->buf, dw->offset);
        CN_TRY(cn_gemm(ctx, &g));
    }
    if (!dx) return CLUNET_OK;
    if (use_direct_conv(ctx, p, x, p->cout, x->c)) return direct_conv(ctx, p, dy, w, dx, work, 1);
    /* columns' gradient = w^T * dy; a 1x1 conv adds it straight into dx */
    if (direct) {
        cn_gemm_args g = gemm_args(1, 0, x->c, hw, p->cout, 1.0f, w->buf, w->offset, dy->buf, dy->offset, dx->buf,
                                   dx->offset);
        g.batch = x->n, g.b_stride = y_img, g.c_stride = x_img;
        return cn_gemm(ctx, &g);
    }
    for (int i = 0; i < x->n; i++) {
        cn_gemm_args g = gemm_args(1, 0, ckk, hw, p->cout, 0.0f, w->buf, w->offset, dy->buf, dy->offset + i * y_img,
                                   work->buf, work->offset);
        CN_TRY(cn_gemm(ctx, &g));
        CN_TRY(columns(ctx, p, dx, i, work, 0));
    }
    return CLUNET_OK;
}
