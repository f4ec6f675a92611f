/*
 * conv.h - the convolution family on the device: GEMM (CLBlast or clunet's own
 * kernels, chosen per device), dense conv2d (im2col + GEMM, direct kernels for
 * stride-1 convs, Winograd F(2x2,3x3) for wide 3x3 ones on CPUs; $CLUNET_CONV
 * forces one) and depthwise
 * conv (direct kernels). Shape letters: N batch, C channels in, H/W height/width in,
 * Co channels out, Ho/Wo height/width out, K kernel size.
 *
 * Backward passes ACCUMULATE into dw and db (+=), llm.c style: the caller
 * zeroes those buffers explicitly. dx is added to or written (dx_add): a
 * tensor feeding two layers (U-Net skips) collects both gradients without an
 * extra add, and the first gradient of a tensor needs no zeroed buffer.
 */
#ifndef CLUNET_OPS_CONV_H
#define CLUNET_OPS_CONV_H

#include "runtime/runtime.h"

/* ---- epilogue ------------------------------------------------------------- */

/*
 * What a conv forward applies to each output as it stores it, in inference:
 * batch norm with the running statistics, as a scale and shift per output
 * channel, then an activation: y = act(y * fold[2c] + fold[2c + 1]).
 * cn_batchnorm_fold (pointwise.h) makes one. The values are cl/common.cl's
 * CN_EPI_*.
 */
typedef enum cn_epilogue_act { CN_EPI_NONE, CN_EPI_AFFINE, CN_EPI_SWISH, CN_EPI_RELU } cn_epilogue_act;
typedef struct cn_epilogue {
    cn_tensor fold; /* 2 Co floats: each output channel's scale and shift, side by side */
    cn_epilogue_act act;
} cn_epilogue;

/* Sets a kernel's three epilogue arguments from `first`: fold buffer, its offset, act (CN_EPI_NONE without ep). */
clunet_status cn_epilogue_args(cl_kernel k, cl_uint first, const cn_epilogue *ep);

/* Fails unless ep is NULL, applies nothing, or has a scale and shift for each of `channels`. */
clunet_status cn_epilogue_check(const cn_epilogue *ep, int channels);

/*
 * The epilogue in place over `batch` matrices of m rows (row r is output
 * channel r) of n floats, ldc apart, the matrices `stride` apart from off:
 * for the paths whose kernels do not apply it as they store.
 */
clunet_status cn_epilogue_rows(clunet_context *ctx, const cn_epilogue *ep, cl_mem c, size_t off, int m, int n,
                               int ldc, size_t stride, int batch);

/* ---- GEMM ----------------------------------------------------------------- */

/* Values of ctx->gemm_impl. */
enum {
    CN_GEMM_CLBLAST = 0,  /* CLBlast */
    CN_GEMM_REGISTER = 1, /* cl/gemm.cl register tiles (gemm_nn, gemm_nt): made for CPUs */
    CN_GEMM_LOCAL = 2,    /* cl/gemm.cl local-memory tiles (gemm_tiled): made for GPUs */
};

/*
 * Row-major C = alpha * op(A) * op(B) + beta * C, C (m,n), op(A) (m,k), op(B)
 * (k,n); op(X) = X^T when tX (A is then stored (k,m), B (n,k)). Offsets and
 * strides count floats; `batch` products with strides a_stride etc. between
 * them (0 shares an operand). With beta == 0, C is not read. With ep, row r
 * of C then gets channel r's epilogue (in gemm_nn's stores where it runs).
 */
typedef struct cn_gemm_args {
    int ta, tb;
    int m, n, k;
    float alpha, beta;
    cl_mem a;
    size_t a_off, a_stride;
    int lda;
    cl_mem b;
    size_t b_off, b_stride;
    int ldb;
    cl_mem c;
    size_t c_off, c_stride;
    int ldc;
    int batch;
    int sum_batch;         /* 1: one C = alpha * the sum of the batch's products + beta * C (c_stride unused, no ep) */
    const cn_epilogue *ep; /* applied to C's rows after the product, or NULL */
} cn_gemm_args;

/*
 * Runs one (batched) GEMM with the context's implementation. The first call
 * picks it with cn_gemm_choose() unless ctx->gemm_impl is already set.
 */
clunet_status cn_gemm(clunet_context *ctx, const cn_gemm_args *g);

/*
 * Sets ctx->gemm_impl: from $CLUNET_GEMM (clblast, own, register, local; own =
 * the device's kind of own kernel) if set, else by timing CLBlast against the
 * own kernel once on a conv-sized product (temporary buffers of ~12 MB). For
 * the register kernels also their tile sizes (ctx->gemm_mr, gemm_nt) and
 * whether A * B^T goes through gemm_nn (ctx->gemm_nt_packed), timed once per
 * device too ($CLUNET_TUNE=gemm_nn_rows=R,gemm_nt_tile=T,gemm_nt_packed=P overrides).
 */
clunet_status cn_gemm_choose(clunet_context *ctx);

/* "clblast", "register" or "local". */
const char *cn_gemm_impl_name(int impl);

/* ---- conv2d ----------------------------------------------------------------- */

/*
 * On CPUs, sets ctx->conv_ob (conv2d_tiled's output channels per pass),
 * ctx->conv_dw (conv2d_direct_dw's per work-item), ctx->conv_winograd
 * (whether wide 3x3 convs run as Winograd F(2x2,3x3)), ctx->conv_wino_fused
 * (whether the other 3x3 convs run as winograd_fused) and ctx->conv_wino_dw
 * (whether 3x3 weight gradients do) from $CLUNET_TUNE (conv_tiled_ob=2|4|8,
 * conv_direct_dw_outputs=8|16|32, conv_winograd=0|1, conv_winograd_fused=0|1,
 * conv_winograd_dw=0|1), the device's tuning file or a timing of each
 * candidate; the first conv calls it otherwise. Nothing to choose on other
 * devices. The three Winograd knobs decide through the shape rules of
 * conv.c, except where a CPU times the paths per shape (cn_conv2d_plan).
 */
clunet_status cn_conv2d_choose(clunet_context *ctx);

/* One conv2d layer: weights (Co, C/groups, K, K); groups is 1 or C (depthwise, Co == C). */
typedef struct cn_conv2d_params {
    int cout, k, stride;
    int pad_t, pad_l, pad_b, pad_r; /* per side, so TF 'same' padding can be asymmetric */
    int groups;
    int has_bias;
} cn_conv2d_params;

/*
 * On CPUs, times the paths of y (and of dx and dw where `backward`) of a conv
 * of >= 0.1 GFLOP on x of (n,c,h,w), among those that can take each, on
 * temporary tensors allocated only where a choice is not known yet; the
 * fastest is kept in the tuning file (conv_y_*, conv_dx_*, conv_dw_* keys)
 * and the context, where the conv's forward and backward find it. Executors
 * call it before their big allocations; a conv not planned is timed at its
 * first call instead (its dw into a temporary stand-in). Nothing happens on
 * other devices, for small or depthwise convs, with $CLUNET_CONV set or with
 * $CLUNET_TUNE naming a conv_winograd* key.
 */
clunet_status cn_conv2d_plan(clunet_context *ctx, const cn_conv2d_params *p, int n, int c, int h, int w,
                             int backward);

/* Output size for an input of h x w: (h + pad_t + pad_b - K) / stride + 1. */
int cn_conv2d_out_h(const cn_conv2d_params *p, int h);
int cn_conv2d_out_w(const cn_conv2d_params *p, int w);

/*
 * Floats of scratch that forward and backward need for an input (n,c,h,w): the
 * im2col columns of one image (C*K*K x Ho*Wo; none for 1x1 stride-1 unpadded
 * convs), then, where the weight gradient's sum over pixels is long enough to
 * be split, one partial weight gradient per chunk (counted on every device so
 * the size needs no device; only GPUs, or CLUNET_CONV=direct, split); 0 for
 * depthwise convs. On CPUs the columns' space also
 * holds the direct conv's weight copy. `work` may be NULL when this is 0.
 */
size_t cn_conv2d_workspace_floats(const cn_conv2d_params *p, int n, int c, int h, int w);

/*
 * y = conv(x, w) + b, then the epilogue ep where not NULL (inference's batch
 * norm and activation, applied by the kernels as they store y on the paths
 * that can, by a pass over y on the others). x (N,C,H,W), w
 * (Co,C/groups,K,K), b (Co) or NULL, y (N,Co,Ho,Wo).
 */
clunet_status cn_conv2d_forward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                const cn_tensor *w, const cn_tensor *b, const cn_tensor *y, const cn_tensor *work,
                                const cn_epilogue *ep);

/*
 * The gradients of the loss, given dy (N,Co,Ho,Wo): added into dw (as w) and
 * db (Co); into dx (as x) too where dx_add, else written to dx (its old
 * contents never read: the graph's first gradient of a value needs no zeroing).
 * Any of the three may be NULL to skip it. Deterministic: the same inputs give
 * the same bits every run.
 */
clunet_status cn_conv2d_backward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                 const cn_tensor *w, const cn_tensor *dy, const cn_tensor *dx, int dx_add,
                                 const cn_tensor *dw, const cn_tensor *db, const cn_tensor *work);

/* ---- depthwise (called by conv2d when groups == C; shapes already checked) ---- */

/* Local size of the per-channel reduction kernels: 64, or less where the device allows less. */
size_t cn_conv_reduce_wg(const clunet_context *ctx);

clunet_status cn_depthwise_forward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                   const cn_tensor *w, const cn_tensor *b, const cn_tensor *y, const cn_epilogue *ep);
clunet_status cn_depthwise_backward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                    const cn_tensor *w, const cn_tensor *dy, const cn_tensor *dx, int dx_add,
                                    const cn_tensor *dw);

/*
 * The forward of a dense stride-1 conv (groups 1) through the depthwise
 * kernel, each output plane summed over all inputs, 16 pixels a vector: for
 * CPUs, where convs with one or a few outputs (the head) leave most of
 * conv2d_tiled's output blocks empty.
 */
clunet_status cn_depthwise_dense_forward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                         const cn_tensor *w, const cn_tensor *b, const cn_tensor *y,
                                         const cn_epilogue *ep);

/*
 * The weight gradient of a dense stride-1 conv (groups 1) through the
 * depthwise kernel, one output channel at a time: for CPUs, where convs with
 * one or a few outputs leave most lanes of conv2d_direct_dw empty.
 */
clunet_status cn_depthwise_dense_weight_grad(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                             const cn_tensor *dy, const cn_tensor *dw);

#endif
