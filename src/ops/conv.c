/*
 * conv.c - dense conv2d as im2col + GEMM (a 1x1 stride-1 unpadded conv is a
 * GEMM on the input itself); depthwise convs go to depthwise.c. One image's
 * columns at a time, so the workspace stays one image's worth. Stride-1 KxK
 * convs keep the columns out of memory for y and dx: on CPUs 32 pixels' worth
 * at a time in local memory (conv2d_tiled, cl/conv.cl), elsewhere none at all
 * for few input channels (conv2d_direct_wg, cl/conv_gpu.cl). On GPUs, a weight
 * gradient with few outputs but a long sum over pixels is split along the
 * pixels (split-K) so that the GPU has enough to do; on CPUs, a stride-1 one
 * with at most 32 outputs skips the columns (conv2d_direct_dw, chunks of rows
 * summed in order). Where neither applies, a stride-1 data gradient with more
 * input than output channels is the flipped conv of dy through im2col + GEMM
 * (flipped_gemm_dx) rather than col2im.
 * $CLUNET_CONV forces a path on any device (see conv_mode).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv.h"
#include "ops/pointwise.h"

int cn_conv2d_out_h(const cn_conv2d_params *p, int h) { return (h + p->pad_t + p->pad_b - p->k) / p->stride + 1; }
int cn_conv2d_out_w(const cn_conv2d_params *p, int w) { return (w + p->pad_l + p->pad_r - p->k) / p->stride + 1; }

/* The input itself is the column matrix (C, H*W). */
static int columns_are_input(const cn_conv2d_params *p)
{
    return p->k == 1 && p->stride == 1 && !p->pad_t && !p->pad_l && !p->pad_b && !p->pad_r;
}

/* Floats of one image's im2col columns (C*K*K, Ho*Wo), or 0 where the input is its own columns. */
static size_t columns_floats(const cn_conv2d_params *p, int c, int h, int w)
{
    if (columns_are_input(p)) return 0;
    return (size_t)c * p->k * p->k * cn_conv2d_out_h(p, h) * cn_conv2d_out_w(p, w);
}

/*
 * Chunks the weight gradient's sum over one image's `pixels` is split into
 * for `outputs` = Co*C*K*K weights: enough products, counting every chunk's,
 * to fill a large GPU (~2^20 outputs), chunks of at least 32 pixels, at most
 * 256 chunks. 1 means no split. A function of the shape alone, so that the
 * workspace size needs no device.
 */
static int dw_splits(size_t outputs, int pixels)
{
    size_t s = outputs >= (1u << 20) ? 1 : (1u << 20) / outputs;
    if (s > (size_t)pixels / 32) s = (size_t)pixels / 32;
    if (s > 256) s = 256;
    return s < 1 ? 1 : (int)s;
}

static size_t dw_outputs(const cn_conv2d_params *p, int c) { return (size_t)p->cout * c * p->k * p->k; }

/* A 3x3 stride-1 conv with one pixel of padding on every side: cl/winograd.cl's domain (output size = input size). */
static int winograd_shape(const cn_conv2d_params *p)
{
    return p->groups == 1 && p->k == 3 && p->stride == 1 && p->pad_t == 1 && p->pad_l == 1 && p->pad_b == 1 &&
           p->pad_r == 1;
}

/*
 * Whether Winograd pays for a conv from in_c to out_c channels: its shape, and
 * C*Co/(C+Co) (multiply-adds saved per pixel against the floats its
 * transforms handle) at least `floor`. The floors, measured on PoCL (AVX2):
 *  - WINO_WIDE, the unfused y and dx: the transforms move ~4x the input and
 *    output through memory; at 64 (128 -> 128 channels, the probe
 *    conv_choose times it on) the products dominate, below it the tiled conv
 *    ran as fast;
 *  - WINO_FUSED, winograd_fused (V and M stay in the cache): only the
 *    transforms' arithmetic counts; below 8 (the head's 16 -> 1) it is a large
 *    share and conv2d_tiled stays;
 *  - WINO_DW, the weight gradient: V and dM go through memory; at 24
 *    decoder.3's 160 -> 32 at 256 x 256 (26.7) took 41 ms against 47 by
 *    conv2d_direct_dw, 32 -> 32 (16) the same, 32 -> 16 at 512 x 512 (10.7)
 *    30 against 19.
 */
enum { WINO_WIDE = 64, WINO_FUSED = 8, WINO_DW = 24 };

static int winograd_pays(const cn_conv2d_params *p, int in_c, int out_c, int floor)
{
    return winograd_shape(p) && (double)in_c * out_c >= (double)floor * (in_c + out_c);
}

/* Winograd tiles of one (H, W) image: m x m outputs each (F(2x2,3x3) or F(4x4,3x3)). */
static int wino_tiles(int m, int h, int w) { return ((h + m - 1) / m) * ((w + m - 1) / m); }

/* Planes of U, V and M: the (m + 2) x (m + 2) positions of an input tile. */
static int wino_planes(int m) { return (m + 2) * (m + 2); }

/*
 * Images whose `tiles` each share one pass of the unfused Winograd (one batch
 * of GEMMs): enough for 256 columns where the images have fewer tiles. At 4 x
 * 256 decoder.0's 16 x 16 map has 64 F(2x2) tiles an image: its weight
 * gradient, whose GEMMs sum over the columns, took 64-72 ms one image a pass
 * against 37-46 with all four.
 */
static int wino_images(int n, int tiles)
{
    int per = (256 + tiles - 1) / tiles;
    return per < n ? per : n;
}

/* Floats of U, V and M for one pass of F(m x m, 3x3) (the same for y and for dx: symmetric in the channels). */
static size_t winograd_floats(int m, int n, int c, int cout, int h, int w)
{
    size_t cols = (size_t)wino_images(n, wino_tiles(m, h, w)) * wino_tiles(m, h, w);
    return wino_planes(m) * ((size_t)c * cout + cols * ((size_t)c + cout));
}

/* Channels rounded up to whole float16 blocks: the k-major weight copy's and pixel-major dy's row length. */
static int pad16(int c) { return (c + 15) / 16 * 16; }

/* Floats of winograd_fused's or winograd4_fused's U for y or for dx (the conv's output channels rounded up to 16). */
static size_t fused_u_floats(int m, int c, int cout)
{
    size_t y = (size_t)c * pad16(cout), dx = (size_t)cout * pad16(c);
    return wino_planes(m) * (y > dx ? y : dx);
}

size_t cn_conv2d_workspace_floats(const cn_conv2d_params *p, int n, int c, int h, int w)
{
    if (p->groups != 1) return 0;
    /* the columns, then the split weight gradient's partial products (on GPUs, or forced) */
    int splits = dw_splits(dw_outputs(p, c), cn_conv2d_out_h(p, h) * cn_conv2d_out_w(p, w));
    size_t need = columns_floats(p, c, h, w) + (splits > 1 ? (size_t)splits * dw_outputs(p, c) : 0);
    size_t wino = 0;
    if (winograd_shape(p)) {
        size_t two = winograd_floats(2, n, c, p->cout, h, w), four = winograd_floats(4, n, c, p->cout, h, w);
        size_t fused = fused_u_floats(4, c, p->cout); /* F(4x4)'s 36 planes hold more than F(2x2)'s 16 */
        wino = two > four ? two : four;
        if (fused > wino) wino = fused;
    }
    return need > wino ? need : wino;
}

/* ---- which path ----------------------------------------------------------- */

enum { MODE_AUTO, MODE_DIRECT, MODE_GEMM, MODE_WINOGRAD, MODE_WINO_FUSED, MODE_WINOGRAD4, MODE_WINO4_FUSED };

/*
 * $CLUNET_CONV: "direct" runs the GPU kernels (conv2d_direct_wg for y and dx,
 * split-K weight gradients) on any device wherever the shape allows, whatever
 * the channel count, so tests can reach them on CPUs; "winograd" runs y and dx
 * of every conv cl/winograd.cl can take through it, on any device, unfused,
 * "winograd-fused" through winograd_fused where its local memory fits,
 * "winograd4" through the unfused F(4x4,3x3) of cl/winograd4.cl (y, dx and
 * dw), "winograd4-fused" y and dx through winograd4_fused; "gemm" runs
 * im2col + GEMM only. Unset or empty: by device type and shape (dense_path).
 */
static clunet_status conv_mode(int *mode)
{
    const char *env = getenv("CLUNET_CONV");
    *mode = MODE_AUTO;
    if (!env || !*env) return CLUNET_OK;
    if (!strcmp(env, "direct")) *mode = MODE_DIRECT;
    else if (!strcmp(env, "gemm")) *mode = MODE_GEMM;
    else if (!strcmp(env, "winograd")) *mode = MODE_WINOGRAD;
    else if (!strcmp(env, "winograd-fused")) *mode = MODE_WINO_FUSED;
    else if (!strcmp(env, "winograd4")) *mode = MODE_WINOGRAD4;
    else if (!strcmp(env, "winograd4-fused")) *mode = MODE_WINO4_FUSED;
    else
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                       "CLUNET_CONV=%s: expected direct, winograd, winograd-fused, winograd4, winograd4-fused or gemm",
                       env);
    return CLUNET_OK;
}

/* Whether the GPU kernels run here: the device is not a CPU, or CLUNET_CONV=direct. */
static int gpu_kernels(const clunet_context *ctx, int mode)
{
    return mode == MODE_DIRECT || (mode == MODE_AUTO && !cn_cpu_paths(ctx));
}

#define DIRECT_WG_SLAB 8 /* conv2d_direct_wg: input channels' weights in local memory at a time */

/* conv2d_direct_wg's output channels per work-item: the next power of two >= out_c, at most 16. */
static int direct_wg_block(int out_c)
{
    int ob = 1;
    while (ob < out_c && ob < 16) ob *= 2;
    return ob;
}

/* Floats of the weights' copy for conv2d_tiled: out_c rounded up to 16, times in_c * K * K. */
static size_t direct_weight_floats(const cn_conv2d_params *p, int out_c, int in_c)
{
    return (size_t)pad16(out_c) * in_c * p->k * p->k;
}

/* A dense stride-1 conv with K > 1 whose flipped kernel (pads K-1-pad) is a conv too: the direct paths' domain. */
static int flippable(const cn_conv2d_params *p)
{
    int pads_ok = p->pad_t < p->k && p->pad_l < p->k && p->pad_b < p->k && p->pad_r < p->k;
    return p->groups == 1 && p->stride == 1 && p->k > 1 && pads_ok;
}

/* Tuning files keep these numbers (conv_y_* and conv_dx_* keys): never renumber them. */
enum { PATH_GEMM, PATH_LOCAL, PATH_GROUPS, PATH_WINOGRAD, PATH_WINO_FUSED, PATH_WINOGRAD4, PATH_WINO4_FUSED };

#define TILED_PX 32 /* conv2d_tiled: output pixels per work-item (TILE_PX in cl/conv.cl) */

/* conv2d_tiled's local memory: one work-item's columns (slab*K*K x 32) and sums (Co rounded up to 16, x 32). */
static size_t tiled_local_bytes(const cn_conv2d_params *p, int slab, int out_c)
{
    return ((size_t)slab * p->k * p->k + (size_t)pad16(out_c)) * TILED_PX * sizeof(float);
}

/*
 * conv2d_tiled's input channels per slab: all of in_c where they fit half the
 * local memory (the other half is left to the implementation), else as many
 * as do; 0 where not even the sums fit.
 */
static int tiled_slab(const clunet_context *ctx, const cn_conv2d_params *p, int in_c, int out_c)
{
    size_t rows = ctx->info.local_mem_bytes / 2 / (TILED_PX * sizeof(float)), sums = (size_t)pad16(out_c);
    size_t slab = rows > sums ? (rows - sums) / ((size_t)p->k * p->k) : 0;
    return slab < (size_t)in_c ? (int)slab : in_c;
}

#define FUSED_SLAB 128 /* winograd_fused: at most this many input channels of V at a time (a plane's 16 KiB stays in L1) */
#define FUSED_GROUP 64 /* winograd_fused: at most this many output channels per work-item (M: 128 KiB) */

/* Tiles per work-item of winograd_fused (m = 2: WF_TILES in cl/winograd.cl) and winograd4_fused (m = 4). */
static int fused_tiles(int m) { return m == 4 ? 16 : 32; }

/* winograd_fused's output channels per work-item: all (rounded up to 16) up to FUSED_GROUP. */
static int fused_group(int out_c) { return pad16(out_c) < FUSED_GROUP ? pad16(out_c) : FUSED_GROUP; }

/*
 * The input channels per slab of winograd_fused (m = 2) or winograd4_fused (m
 * = 4): V (planes x slab x tiles floats) and M (planes x group x tiles) within
 * half the local memory, as for conv2d_tiled; 0 where M would not leave room
 * for 16 channels.
 */
static int fused_slab(const clunet_context *ctx, int m, int in_c, int out_c)
{
    size_t per = (size_t)wino_planes(m) * fused_tiles(m), floats = ctx->info.local_mem_bytes / 2 / sizeof(float);
    size_t acc = per * fused_group(out_c), slab = floats > acc ? (floats - acc) / per : 0;
    if (slab > FUSED_SLAB) slab = FUSED_SLAB;
    if (slab < 16) return 0;
    return slab < (size_t)in_c ? (int)slab : in_c;
}

static size_t fused_local_bytes(int m, int slab, int out_c)
{
    return (size_t)wino_planes(m) * ((size_t)slab + fused_group(out_c)) * fused_tiles(m) * sizeof(float);
}

/* conv2d_tiled can take it: its weights' copy fits where the columns would go, and its local memory fits a slab. */
static int tiled_fits(const clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x, int in_c, int out_c)
{
    return direct_weight_floats(p, out_c, in_c) <= columns_floats(p, x->c, x->h, x->w) &&
           tiled_slab(ctx, p, in_c, out_c) > 0;
}

/*
 * How y (in_c = x's channels) or dx (in_c = dy's channels) is computed.
 * im2col + GEMM unless stride 1, K > 1 and pads the flipped kernel can use;
 * then:
 *  - on CPUs, PATH_LOCAL (conv2d_tiled: the columns of 32 pixels at a time in
 *    local memory, consumed from the caches), where they and the sums take at
 *    most half of it. On PoCL 1.2-2.7x faster for every dense 3x3 conv of the
 *    decoder than im2col + GEMM (whose columns, written whole and read back,
 *    cost more than the products), the flipped GEMM for dx, or a column-free
 *    conv (which reads K rows of every input plane per tile: power-of-two
 *    plane strides defeat the caches). The weights' copy lives in the
 *    workspace the columns would use;
 *  - elsewhere, with at most 32 channels in, PATH_GROUPS (conv2d_direct_wg),
 *    where its weight slab fits local memory.
 * On CPUs that measured it faster (ctx->conv_winograd), 3x3 convs with one
 * pixel of padding and enough channels (WINO_WIDE) take PATH_WINOGRAD;
 * the other 3x3 convs with one pixel of padding and not too few channels
 * (WINO_FUSED) take PATH_WINO_FUSED where that measured faster than
 * conv2d_tiled (ctx->conv_wino_fused) and fits.
 * CLUNET_CONV=direct takes PATH_GROUPS whatever the channels; =winograd takes
 * PATH_WINOGRAD wherever it can, =winograd-fused PATH_WINO_FUSED, =winograd4
 * PATH_WINOGRAD4 and =winograd4-fused PATH_WINO4_FUSED (F(4x4,3x3),
 * otherwise only where a shape's timing chose them, see direct_candidates);
 * =gemm never leaves the GEMM.
 */
static int dense_path(const clunet_context *ctx, int mode, const cn_conv2d_params *p, const cn_tensor *x, int in_c,
                      int out_c)
{
    int fused_fits = winograd_shape(p) && fused_slab(ctx, 2, in_c, out_c) > 0;
    if (mode == MODE_WINOGRAD && winograd_shape(p)) return PATH_WINOGRAD;
    if (mode == MODE_WINO_FUSED && fused_fits) return PATH_WINO_FUSED;
    if (mode == MODE_WINOGRAD4 && winograd_shape(p)) return PATH_WINOGRAD4;
    if (mode == MODE_WINO4_FUSED && winograd_shape(p) && fused_slab(ctx, 4, in_c, out_c) > 0) return PATH_WINO4_FUSED;
    if (mode == MODE_GEMM || !flippable(p)) return PATH_GEMM;
    if (mode == MODE_AUTO && cn_cpu_paths(ctx)) {
        if (ctx->conv_winograd > 0 && winograd_pays(p, in_c, out_c, WINO_WIDE)) return PATH_WINOGRAD;
        if (ctx->conv_wino_fused > 0 && fused_fits && winograd_pays(p, in_c, out_c, WINO_FUSED))
            return PATH_WINO_FUSED;
    }
    if (gpu_kernels(ctx, mode)) {
        size_t slab = (size_t)DIRECT_WG_SLAB * p->k * p->k * direct_wg_block(out_c) * sizeof(float);
        return (in_c <= 32 || mode == MODE_DIRECT) && slab <= ctx->info.local_mem_bytes ? PATH_GROUPS : PATH_GEMM;
    }
    return tiled_fits(ctx, p, x, in_c, out_c) ? PATH_LOCAL : PATH_GEMM;
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
    /* CPUs: a channel of few pixels (squeeze-excite: one) per work-item, without the barriers of a group */
    int few = (size_t)dy->n * dy->h * dy->w <= 4096;
    size_t wg = cn_cpu_paths(ctx) && few ? 1 : cn_conv_reduce_wg(ctx);
    size_t global[1] = {wg * dy->c}, local[1] = {wg};
    return cn_launch(ctx, k, 1, global, local);
}

/*
 * Where weight (o, i, tap t) of the conv from `in` to `out` lies in w:
 * o*s[0] + i*s[1] + s[2] + t*s[3]. Forward (in = x, out = y) that is w as
 * stored; for the data gradient (flip: in = dy, out = dx) the kernel flipped,
 * its channel axes swapped.
 */
static void weight_strides(const cn_conv2d_params *p, const cn_tensor *w, int flip, int s[4])
{
    int kk = p->k * p->k, cin = w->c;
    s[0] = flip ? kk : cin * kk;
    s[1] = flip ? cin * kk : kk;
    s[2] = flip ? kk - 1 : 0;
    s[3] = flip ? -1 : 1;
}

/* Arguments from `first` on: in's shape, out's shape, and the pads, which the flipped kernel takes as K-1-pad. */
static clunet_status direct_shape_args(cl_kernel k, cl_uint first, const cn_conv2d_params *p, const cn_tensor *in,
                                       const cn_tensor *out, int flip)
{
    int args[8] = {in->c, in->h, in->w, out->c, out->h, out->w,
                   flip ? p->k - 1 - p->pad_t : p->pad_t, flip ? p->k - 1 - p->pad_l : p->pad_l};
    for (cl_uint i = 0; i < 8; i++) CN_TRY(CN_ARG_INT(k, first + i, args[i]));
    return CLUNET_OK;
}

/*
 * Copies w into buf at off as conv2d_direct_weights lays it out for the conv
 * from in_c to out_c channels (flip: the data gradient's, dy to dx).
 */
static clunet_status copy_weights(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *w, int flip,
                                  int in_c, int out_c, cl_mem buf, size_t off)
{
    char options[48];
    snprintf(options, sizeof options, "-DCONV_K=%d -DCONV_S=1", p->k);
    int cop = pad16(out_c), s[4];
    weight_strides(p, w, flip, s);
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "conv.cl", "conv2d_direct_weights", options, &k));
    CN_TRY(cn_arg_view(k, 0, w));
    CN_TRY(CN_ARG_MEM(k, 2, buf));
    CN_TRY(CN_ARG_INT(k, 3, off));
    int wargs[6] = {out_c, cop, s[0], s[1], s[2], s[3]};
    for (int i = 0; i < 6; i++) CN_TRY(CN_ARG_INT(k, 4 + i, wargs[i]));
    size_t global[3] = {(size_t)cop, (size_t)p->k * p->k, (size_t)in_c};
    return cn_launch(ctx, k, 3, global, NULL);
}

/*
 * out (+)= in (*) weights, stride 1, via conv2d_tiled (CPUs), with the weights
 * copied to `work` first. Forward: in = x, out = y. Data gradient (flip): in =
 * dy, out = dx. Added into out where `add`, else written.
 */
static clunet_status conv_choose(clunet_context *ctx);

static clunet_status tiled_conv(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *in, const cn_tensor *w,
                                const cn_tensor *out, const cn_tensor *work, int flip, int add, const cn_epilogue *ep)
{
    if (ctx->conv_ob < 0) CN_TRY(conv_choose(ctx));
    CN_TRY(copy_weights(ctx, p, w, flip, in->c, out->c, work->buf, work->offset));
    /* no more output channels per pass than there are: the head's single one would otherwise pay for 8 */
    int ob = ctx->conv_ob;
    while (ob > 1 && ob / 2 >= out->c) ob /= 2;
    char options[64];
    snprintf(options, sizeof options, "-DCONV_K=%d -DCONV_S=1 -DTILE_OB=%d", p->k, ob);
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "conv.cl", "conv2d_tiled", options, &k));
    CN_TRY(cn_arg_view(k, 0, in));
    CN_TRY(cn_arg_view(k, 2, work));
    CN_TRY(cn_arg_view(k, 4, out));
    CN_TRY(direct_shape_args(k, 6, p, in, out, flip));
    CN_TRY(CN_ARG_INT(k, 14, add));
    int slab = tiled_slab(ctx, p, in->c, out->c);
    CN_TRY(CN_ARG_INT(k, 15, slab));
    CN_TRY(cn_arg(k, 16, tiled_local_bytes(p, slab, out->c), NULL));
    CN_TRY(cn_epilogue_args(k, 17, ep));
    size_t global[2] = {(size_t)(out->h * out->w + TILED_PX - 1) / TILED_PX, (size_t)out->n}, local[2] = {1, 1};
    return cn_launch(ctx, k, 2, global, local);
}

/*
 * The same through conv2d_direct_wg (GPUs), which reads w in place. Work-groups
 * of up to 256 items, 64 along x (fewer for narrow outputs, so that rows fill
 * them), within the device's limit.
 */
static clunet_status direct_wg_conv(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *in,
                                    const cn_tensor *w, const cn_tensor *out, int flip, int add)
{
    int ob = direct_wg_block(out->c), s[4];
    char options[64];
    snprintf(options, sizeof options, "-DCONV_K=%d -DCONV_OB=%d -DCONV_CS=%d", p->k, ob, DIRECT_WG_SLAB);
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "conv_gpu.cl", "conv2d_direct_wg", options, &k));
    CN_TRY(cn_arg_view(k, 0, in));
    CN_TRY(cn_arg_view(k, 2, w));
    CN_TRY(cn_arg_view(k, 4, out));
    CN_TRY(direct_shape_args(k, 6, p, in, out, flip));
    weight_strides(p, w, flip, s);
    for (int i = 0; i < 4; i++) CN_TRY(CN_ARG_INT(k, 14 + i, s[i]));
    CN_TRY(CN_ARG_INT(k, 18, add));
    /* 256 items (or what the device and this kernel's registers allow), 64 along x unless the image is narrower */
    size_t group = cn_pw_group_size(ctx, k, 256), lx = 64;
    while (lx > 8 && lx / 2 >= (size_t)out->w) lx /= 2;
    if (lx > group) lx = group;
    size_t ly = group / lx;
    size_t blocks = (size_t)(out->c + ob - 1) / ob;
    size_t global[3] = {(size_t)out->w, (size_t)out->h, blocks * out->n}, local[3] = {lx, ly, 1};
    return cn_launch(ctx, k, 3, global, local);
}

static cn_gemm_args gemm_args(int ta, int tb, int m, int n, int k, float beta, cl_mem a, size_t a_off, cl_mem b,
                              size_t b_off, cl_mem c, size_t c_off)
{
    cn_gemm_args g = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .alpha = 1.0f, .beta = beta, .batch = 1};
    g.a = a, g.a_off = a_off, g.lda = ta ? m : k;
    g.b = b, g.b_off = b_off, g.ldb = tb ? k : n;
    g.c = c, g.c_off = c_off, g.ldc = n;
    return g;
}

/*
 * U of F(m x m, 3x3) from w at u_off in buf (winograd_weights, winograd4_weights): for the GEMMs, or laid out for
 * winograd_fused / winograd4_fused.
 */
static clunet_status winograd_weights(clunet_context *ctx, int m, const cn_conv2d_params *p, const cn_tensor *w,
                                      cl_mem buf, size_t u_off, int flip, int fused)
{
    cl_kernel k;
    if (m == 4) { /* U: 36 floats a filter, 72 MB for decoder.0, by streaming stores where large */
        const char *stream;
        CN_TRY(cn_stream_option(ctx, (size_t)36 * p->cout * w->c * sizeof(float), &stream));
        CN_TRY(cn_kernel(ctx, "winograd4.cl", "winograd4_weights", stream, &k));
    } else {
        CN_TRY(cn_kernel(ctx, "winograd.cl", "winograd_weights", "", &k));
    }
    CN_TRY(cn_arg_view(k, 0, w));
    CN_TRY(CN_ARG_MEM(k, 2, buf));
    CN_TRY(CN_ARG_INT(k, 3, u_off));
    CN_TRY(CN_ARG_INT(k, 4, p->cout));
    CN_TRY(CN_ARG_INT(k, 5, w->c));
    CN_TRY(CN_ARG_INT(k, 6, flip));
    CN_TRY(CN_ARG_INT(k, 7, fused));
    /* 16 filters per work-item, neighbours along the channel innermost in U (o when flip != fused; see the kernel) */
    int along_o = flip != fused;
    size_t lanes = (size_t)(along_o ? p->cout : w->c), other = (size_t)(along_o ? w->c : p->cout);
    size_t global[2] = {(lanes + 15) / 16, other}, single[2] = {1, 1};
    return cn_launch(ctx, k, 2, global, cn_cpu_paths(ctx) ? single : NULL); /* CPUs: see winograd_tiles */
}

/*
 * One of the per-tile transforms of F(m x m, 3x3) for `images` images of t
 * (C, H, W) from image img on: winograd_input or winograd4_input (t = x or dy,
 * into V at off in buf), winograd_dy (t = dy, into dM) or winograd_output or
 * winograd4_output (t = y or dx, from M; `accumulate` adds into t, else ep
 * applies). 16 tiles per work-item, one item per group on CPUs: PoCL gives
 * each item of a group its own copy of the transforms' 2-4 KiB of arrays, and
 * left to choose, it made groups of thousands and overflowed its thread's
 * stack (decoder.0). F(2x2)'s work-items take 16 tiles of one tile row,
 * F(4x4)'s 16 consecutive columns of V or M.
 */
static clunet_status winograd_tiles(clunet_context *ctx, int m, const char *kernel, const cn_tensor *t, int img,
                                    int images, cl_mem buf, size_t off, int accumulate, const cn_epilogue *ep)
{
    const int h = t->h, w = t->w, th = (h + m - 1) / m, tw = (w + m - 1) / m;
    int output = strstr(kernel, "_output") != NULL;
    /* streaming stores: F(2x2)'s written outputs, and F(4x4)'s V (36 floats a tile and channel), which the GEMM
       reads once (winograd4_output has none: not measured for it) */
    const char *stream = "";
    if (output && !accumulate && m == 2) CN_TRY(cn_stream_option(ctx, cn_tensor_count(t) * sizeof(float), &stream));
    if (m == 4 && strstr(kernel, "_input"))
        CN_TRY(cn_stream_option(ctx, (size_t)36 * t->c * images * th * tw * sizeof(float), &stream));
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, m == 4 ? "winograd4.cl" : "winograd.cl", kernel, stream, &k));
    CN_TRY(CN_ARG_MEM(k, output ? 2 : 0, t->buf));
    CN_TRY(CN_ARG_INT(k, output ? 3 : 1, t->offset + (size_t)img * t->c * h * w));
    CN_TRY(CN_ARG_MEM(k, output ? 0 : 2, buf));
    CN_TRY(CN_ARG_INT(k, output ? 1 : 3, off));
    int args[7] = {t->c, h, w, th, tw, images, accumulate};
    for (int i = 0; i < (output ? 7 : 6); i++) CN_TRY(CN_ARG_INT(k, 4 + i, args[i]));
    if (output) CN_TRY(cn_epilogue_args(k, 11, ep));
    size_t single[3] = {1, 1, 1};
    if (m == 4) {
        size_t global[2] = {((size_t)images * th * tw + 15) / 16, (size_t)t->c};
        return cn_launch(ctx, k, 2, global, cn_cpu_paths(ctx) ? single : NULL);
    }
    size_t global[3] = {(size_t)(tw + 15) / 16, (size_t)th, (size_t)images * t->c};
    return cn_launch(ctx, k, 3, global, cn_cpu_paths(ctx) ? single : NULL);
}

/*
 * The conv of tiled_conv as Winograd F(m x m, 3x3) (m = 2: cl/winograd.cl, 4:
 * cl/winograd4.cl), a pass of wino_images() images at a time: the weights' U,
 * then per pass the inputs' V, (m + 2)^2 GEMMs (Co x C times C x the pass's
 * tiles) into M, and the output transform. U, V, M follow each other in the
 * workspace.
 */
static clunet_status winograd_conv(clunet_context *ctx, int m, const cn_conv2d_params *p, const cn_tensor *in,
                                   const cn_tensor *w, const cn_tensor *out, const cn_tensor *work, int flip, int add,
                                   const cn_epilogue *ep)
{
    // in is (N,Cin,H,W), out is (N,Cout,H,W): x -> y, or dy -> dx (flip); added into out where add
    const int ci = in->c, co = out->c, tiles = wino_tiles(m, out->h, out->w), per = wino_images(in->n, tiles);
    const size_t planes = wino_planes(m);
    size_t u_off = work->offset, v_off = u_off + planes * ci * co, m_off = v_off + planes * ci * per * tiles;
    CN_TRY(winograd_weights(ctx, m, p, w, work->buf, u_off, flip, 0));
    const char *input = m == 4 ? "winograd4_input" : "winograd_input";
    const char *output = m == 4 ? "winograd4_output" : "winograd_output";
    for (int img = 0; img < in->n; img += per) {
        int images = in->n - img < per ? in->n - img : per, cols = images * tiles;
        CN_TRY(winograd_tiles(ctx, m, input, in, img, images, work->buf, v_off, 0, NULL));
        cn_gemm_args g = gemm_args(0, 0, co, cols, ci, 0.0f, work->buf, u_off, work->buf, v_off, work->buf, m_off);
        g.batch = (int)planes, g.a_stride = (size_t)co * ci, g.b_stride = (size_t)ci * cols;
        g.c_stride = (size_t)co * cols;
        CN_TRY(cn_gemm(ctx, &g));
        CN_TRY(winograd_tiles(ctx, m, output, out, img, images, work->buf, m_off, add, ep));
    }
    return CLUNET_OK;
}

/*
 * dw += the weight gradient of a conv winograd_shape takes, as Winograd F(m x
 * m, 3x3): per pass of wino_images() images V from x and dM = A dy A^T
 * (winograd_dy, winograd4_dy), then (m + 2)^2 GEMMs dU[xi] (+)= dM[xi] *
 * V[xi]^T (Co x tiles times tiles x C, summed over the pass's tiles, then over
 * the passes), last dw += G^T dU G. 2.25x (m = 2) or 4x (m = 4) fewer
 * multiply-adds than im2col + GEMM; dU, V and dM take the places of U, V and M
 * in the workspace.
 */
static clunet_status winograd_dw(clunet_context *ctx, int m, const cn_tensor *x, const cn_tensor *dy,
                                 const cn_tensor *dw, const cn_tensor *work)
{
    // x is (N,C,H,W), dy is (N,Co,H,W), dw is (Co,C,3,3) and accumulates
    const int ci = x->c, co = dy->c, tiles = wino_tiles(m, dy->h, dy->w), per = wino_images(x->n, tiles);
    const size_t planes = wino_planes(m);
    size_t u_off = work->offset, v_off = u_off + planes * ci * co, m_off = v_off + planes * ci * per * tiles;
    for (int img = 0; img < x->n; img += per) {
        int images = x->n - img < per ? x->n - img : per, cols = images * tiles;
        CN_TRY(winograd_tiles(ctx, m, m == 4 ? "winograd4_input" : "winograd_input", x, img, images, work->buf,
                              v_off, 0, NULL));
        CN_TRY(winograd_tiles(ctx, m, m == 4 ? "winograd4_dy" : "winograd_dy", dy, img, images, work->buf, m_off, 0,
                              NULL));
        cn_gemm_args g = gemm_args(0, 1, co, ci, cols, img ? 1.0f : 0.0f, work->buf, m_off, work->buf, v_off,
                                   work->buf, u_off);
        g.batch = (int)planes, g.a_stride = (size_t)co * cols, g.b_stride = (size_t)ci * cols;
        g.c_stride = (size_t)co * ci;
        CN_TRY(cn_gemm(ctx, &g));
    }
    cl_kernel k;
    if (m == 4) CN_TRY(cn_kernel(ctx, "winograd4.cl", "winograd4_weights_grad", "", &k));
    else CN_TRY(cn_kernel(ctx, "winograd.cl", "winograd_weights_grad", "", &k));
    CN_TRY(CN_ARG_MEM(k, 0, work->buf));
    CN_TRY(CN_ARG_INT(k, 1, u_off));
    CN_TRY(cn_arg_view(k, 2, dw));
    CN_TRY(CN_ARG_INT(k, 4, co));
    CN_TRY(CN_ARG_INT(k, 5, ci));
    size_t global[2] = {((size_t)ci + 15) / 16, (size_t)co}, single[2] = {1, 1}; /* 16 filters per work-item */
    return cn_launch(ctx, k, 2, global, cn_cpu_paths(ctx) ? single : NULL);  /* CPUs: see winograd_tiles */
}

/*
 * The same conv through winograd_fused (m = 2) or winograd4_fused (m = 4), for
 * CPUs: U laid out for it in the workspace (zeros past the output channels),
 * then one launch for all images.
 */
static clunet_status wino_fused_conv(clunet_context *ctx, int m, const cn_conv2d_params *p, const cn_tensor *in,
                                     const cn_tensor *w, const cn_tensor *out, const cn_tensor *work, int flip, int add,
                                     const cn_epilogue *ep)
{
    // in is (N,Cin,H,W), out is (N,Cout,H,W): x -> y, or dy -> dx (flip); added into out where add
    if (ctx->conv_ob < 0) CN_TRY(conv_choose(ctx));
    const int ci = in->c, co = out->c, slab = fused_slab(ctx, m, ci, co);
    size_t u_floats = (size_t)wino_planes(m) * ci * pad16(co);
    if (pad16(co) != co)
        CN_TRY(cn_buffer_fill_float(ctx, work->buf, work->offset * sizeof(float), u_floats * sizeof(float), 0.0f));
    CN_TRY(winograd_weights(ctx, m, p, w, work->buf, work->offset, flip, 1));
    const char *stream = ""; /* an output added to is read anyway; winograd4_fused has none (not measured for it) */
    if (!add && m == 2) CN_TRY(cn_stream_option(ctx, cn_tensor_count(out) * sizeof(float), &stream));
    char options[64];
    snprintf(options, sizeof options, "-DTILE_OB=%d%s", ctx->conv_ob, stream);
    cl_kernel k;
    if (m == 4) CN_TRY(cn_kernel(ctx, "winograd4.cl", "winograd4_fused", options, &k));
    else CN_TRY(cn_kernel(ctx, "winograd.cl", "winograd_fused", options, &k));
    CN_TRY(cn_arg_view(k, 0, in));
    CN_TRY(cn_arg_view(k, 2, work));
    CN_TRY(cn_arg_view(k, 4, out));
    int group = fused_group(co), args[7] = {ci, co, out->h, out->w, slab, group, add};
    for (int i = 0; i < 7; i++) CN_TRY(CN_ARG_INT(k, 6 + i, args[i]));
    CN_TRY(cn_arg(k, 13, fused_local_bytes(m, slab, co), NULL));
    CN_TRY(cn_epilogue_args(k, 14, ep));
    size_t th = (size_t)(out->h + m - 1) / m, tw = (size_t)(out->w + m - 1) / m, per = (size_t)fused_tiles(m);
    size_t global[3] = {(tw + per - 1) / per * th, (size_t)out->n, (size_t)(co + group - 1) / group};
    size_t local[3] = {1, 1, 1};
    return cn_launch(ctx, k, 3, global, local);
}

/*
 * y or dx (flip) by `path` (PATH_LOCAL, PATH_GROUPS or one of the Winograd forms), added where `add`, else written
 * with the epilogue ep (NULL: none).
 */
static clunet_status direct_path_conv(clunet_context *ctx, int path, const cn_conv2d_params *p, const cn_tensor *in,
                                      const cn_tensor *w, const cn_tensor *out, const cn_tensor *work, int flip,
                                      int add, const cn_epilogue *ep)
{
    if (path == PATH_WINOGRAD || path == PATH_WINOGRAD4)
        return winograd_conv(ctx, path == PATH_WINOGRAD4 ? 4 : 2, p, in, w, out, work, flip, add, ep);
    if (path == PATH_WINO_FUSED || path == PATH_WINO4_FUSED)
        return wino_fused_conv(ctx, path == PATH_WINO4_FUSED ? 4 : 2, p, in, w, out, work, flip, add, ep);
    if (path != PATH_GROUPS) return tiled_conv(ctx, p, in, w, out, work, flip, add, ep);
    CN_TRY(direct_wg_conv(ctx, p, in, w, out, flip, add));
    int hw = out->h * out->w;
    return cn_epilogue_rows(ctx, ep, out->buf, out->offset, out->c, hw, hw, (size_t)out->c * hw, out->n);
}

/* c[j] += the sum of part[s*count + j] over the splits s, in order (conv2d_sum_splits). */
static clunet_status sum_splits(clunet_context *ctx, cl_mem part, size_t part_off, cl_mem c, size_t c_off,
                                size_t count, int splits)
{
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "conv_gpu.cl", "conv2d_sum_splits", NULL, &k));
    CN_TRY(CN_ARG_MEM(k, 0, part));
    CN_TRY(CN_ARG_INT(k, 1, part_off));
    CN_TRY(CN_ARG_MEM(k, 2, c));
    CN_TRY(CN_ARG_INT(k, 3, c_off));
    CN_TRY(CN_ARG_INT(k, 4, count));
    CN_TRY(CN_ARG_INT(k, 5, splits));
    size_t global[1] = {count};
    return cn_launch(ctx, k, 1, global, NULL);
}

/*
 * g (batch 1, beta 1, C contiguous: ldc == n) with its k terms split into
 * `splits` chunks: one batched GEMM writes each chunk's product to `part`
 * (splits x m x n floats from part_off; a shorter last chunk runs on its own),
 * then conv2d_sum_splits adds them to C in order. Deterministic, no atomics.
 */
static clunet_status gemm_split_k(clunet_context *ctx, const cn_gemm_args *g, int splits, cl_mem part,
                                  size_t part_off)
{
    int kc = (g->k + splits - 1) / splits, full = g->k / kc, rest = g->k - full * kc;
    size_t mn = (size_t)g->m * g->n;
    cn_gemm_args c = *g;
    c.k = kc, c.beta = 0.0f, c.batch = full;
    c.a_stride = g->ta ? (size_t)kc * g->lda : (size_t)kc; /* chunk j starts kc terms further along k */
    c.b_stride = g->tb ? (size_t)kc : (size_t)kc * g->ldb;
    c.c = part, c.c_off = part_off, c.ldc = g->n, c.c_stride = mn;
    CN_TRY(cn_gemm(ctx, &c));
    if (rest) {
        c.k = rest, c.batch = 1;
        c.a_off += full * c.a_stride, c.b_off += full * c.b_stride, c.c_off += full * mn;
        CN_TRY(cn_gemm(ctx, &c));
    }
    return sum_splits(ctx, part, part_off, g->c, g->c_off, mn, full + (rest > 0));
}

/* A GEMM over plain tensors, batch 1, rows of each operand contiguous. */
/*
 * The data gradient of a stride-1 conv with more input than output channels is
 * the conv of dy with the kernel flipped: im2col of dy (Co*K*K rows) and one
 * GEMM per image into dx (added or written), instead of w^T * dy (C*K*K rows,
 * a short sum of Co terms each) folded back by col2im. Fewer bytes written and
 * read, and a longer sum per output. Both live in the workspace the forward columns use:
 * dy's columns, then the flipped weights as conv2d_tiled reads them (which
 * is w' transposed: the GEMM reads it as A^T).
 */
static int flipped_fits(const cn_conv2d_params *p, const cn_tensor *x, const cn_tensor *dy)
{
    if (!flippable(p) || dy->c >= x->c) return 0;
    size_t cols = (size_t)dy->c * p->k * p->k * x->h * x->w;
    return cols + direct_weight_floats(p, x->c, dy->c) <= columns_floats(p, x->c, x->h, x->w);
}

static clunet_status flipped_gemm_dx(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *w,
                                     const cn_tensor *dy, const cn_tensor *dx, int add, const cn_tensor *work)
{
    // dy is (N,Co,Ho,Wo), dx is (N,C,H,W); the flipped conv takes dy to dx with pads K-1-pad
    cn_conv2d_params pf = *p;
    pf.pad_t = p->k - 1 - p->pad_t, pf.pad_l = p->k - 1 - p->pad_l;
    pf.pad_b = p->k - 1 - p->pad_b, pf.pad_r = p->k - 1 - p->pad_r;
    int kk = p->k * p->k, hw = dx->h * dx->w, cop = pad16(dx->c);
    size_t wt_off = work->offset + (size_t)dy->c * kk * hw;
    CN_TRY(copy_weights(ctx, p, w, 1, dy->c, dx->c, work->buf, wt_off));
    size_t dx_img = (size_t)dx->c * hw;
    for (int i = 0; i < dy->n; i++) {
        CN_TRY(columns(ctx, &pf, dy, i, work, 1));
        cn_gemm_args g = gemm_args(1, 0, dx->c, hw, dy->c * kk, add ? 1.0f : 0.0f, work->buf, wt_off, work->buf,
                                   work->offset, dx->buf, dx->offset + i * dx_img);
        g.lda = cop;
        CN_TRY(cn_gemm(ctx, &g));
    }
    return CLUNET_OK;
}

/*
 * CPUs: a stride-1 conv with at most 4 outputs (the head has 1) takes its
 * forward and weight gradient from the depthwise kernels, vectorised along the
 * pixels: conv2d_direct_dw vectorises along 16 output channels, so the head
 * used one lane of 16 (512 x 512: 8.2 ms), and conv2d_tiled builds columns of
 * all C*K*K taps for one output (forward 3.0 ms against 1.3). Each further
 * output re-reads x.
 */
static int few_outputs(const clunet_context *ctx, int mode, const cn_conv2d_params *p, int out_c)
{
    return mode == MODE_AUTO && cn_cpu_paths(ctx) && out_c <= 4 && p->groups == 1 && p->stride == 1 &&
           p->k > 1 && p->pad_l < p->k;
}

/*
 * Rows of output per chunk for conv2d_direct_dw (CPUs), or 0 where it does not
 * apply: stride 1, K > 1, at most 32 output channels (16 for K > 3: the
 * accumulators must stay in registers). A chunk's pixel-major dy (rows x Wo x
 * cop floats) stays within ~256 KiB, so the input channels that read it in
 * turn find it in L2, and there are chunks enough for >= 64 work-items; dy's
 * copy and the chunks' partial sums must fit the workspace the columns would use.
 */
static int direct_dw_rows(const cn_conv2d_params *p, const cn_tensor *x, const cn_tensor *dy)
{
    int cop = pad16(dy->c);
    if (p->stride != 1 || p->k == 1 || cop / 16 * p->k * p->k > 25) return 0;
    size_t row = (size_t)dy->w * cop * sizeof(float);
    int rows = row >= (256u << 10) ? 1 : (int)((256u << 10) / row);
    int want = (64 + x->c - 1) / x->c, most = (dy->h + want - 1) / want; /* chunks for >= 64 work-items */
    if (rows > most) rows = most;
    for (;; rows *= 2) {
        size_t chunks = (size_t)(dy->h + rows - 1) / rows;
        size_t need = (size_t)dy->h * dy->w * cop + chunks * dw_outputs(p, x->c);
        if (need <= columns_floats(p, x->c, x->h, x->w)) return rows;
        if (rows >= dy->h) return 0;
    }
}

/*
 * dw += dy (*) x without columns, one image at a time: dy made pixel-major at
 * the start of the workspace, conv2d_direct_dw's partial sums per chunk of
 * rows after it, then added to dw in a fixed order (bitwise repeatable).
 */
static clunet_status direct_dw(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                               const cn_tensor *dy, const cn_tensor *dw, const cn_tensor *work, int rows)
{
    // x is (N,C,H,W), dy is (N,Co,Ho,Wo), dw is (Co,C,K,K)
    if (ctx->conv_dw < 0) CN_TRY(conv_choose(ctx));
    int hw = dy->h * dy->w, cop = pad16(dy->c), chunks = (dy->h + rows - 1) / rows;
    /* output channels per work-item: the device's choice, at most cop; in vectors of up to 16 */
    int per = ctx->conv_dw < cop ? ctx->conv_dw : cop, vw = per < 16 ? per : 16;
    size_t part_off = work->offset + (size_t)hw * cop;
    char options[80];
    snprintf(options, sizeof options, "-DCONV_K=%d -DCONV_S=1 -DDW_VW=%d -DDW_OB=%d", p->k, vw, per / vw);
    cl_kernel t, k;
    CN_TRY(cn_kernel(ctx, "conv.cl", "conv2d_pixels_major", options, &t));
    CN_TRY(cn_kernel(ctx, "conv.cl", "conv2d_direct_dw", options, &k));
    int targs[3] = {dy->c, cop, hw};
    for (int i = 0; i < 3; i++) CN_TRY(CN_ARG_INT(t, 4 + i, targs[i]));
    CN_TRY(CN_ARG_MEM(t, 2, work->buf));
    CN_TRY(CN_ARG_INT(t, 3, work->offset));
    CN_TRY(CN_ARG_MEM(k, 0, x->buf));
    CN_TRY(CN_ARG_MEM(k, 2, work->buf));
    CN_TRY(CN_ARG_INT(k, 3, work->offset));
    CN_TRY(CN_ARG_MEM(k, 4, work->buf));
    CN_TRY(CN_ARG_INT(k, 5, part_off));
    int kargs[10] = {x->c, x->h, x->w, dy->c, dy->h, dy->w, p->pad_t, p->pad_l, rows, cop};
    for (int i = 0; i < 10; i++) CN_TRY(CN_ARG_INT(k, 6 + i, kargs[i]));
    size_t tglobal[2] = {(size_t)(hw + 15) / 16, (size_t)cop / 16};
    size_t kglobal[3] = {(size_t)x->c, (size_t)chunks, (size_t)(cop / per)}, local[3] = {1, 1, 1};
    for (int i = 0; i < x->n; i++) {
        CN_TRY(CN_ARG_MEM(t, 0, dy->buf));
        CN_TRY(CN_ARG_INT(t, 1, dy->offset + (size_t)i * dy->c * hw));
        CN_TRY(cn_launch(ctx, t, 2, tglobal, NULL));
        CN_TRY(CN_ARG_INT(k, 1, x->offset + (size_t)i * x->c * x->h * x->w));
        CN_TRY(cn_launch(ctx, k, 3, kglobal, local));
        CN_TRY(sum_splits(ctx, work->buf, part_off, dw->buf, dw->offset, dw_outputs(p, x->c), chunks));
    }
    return CLUNET_OK;
}

/*
 * dw += dy * columns^T by im2col + GEMM, one image at a time (every image adds
 * into the same dw); split into chunks along the pixels on GPUs (`split`)
 * where that fills the device. A 1x1 conv on small maps (<= 256 pixels: the
 * deep blocks) sums all images in one product instead, which reads and
 * writes dw once rather than once per image of 64-256 terms.
 */
static clunet_status gemm_dw(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x, const cn_tensor *dy,
                             const cn_tensor *dw, const cn_tensor *work, int split)
{
    // x is (N,C,H,W), dy is (N,Co,Ho,Wo), dw is (Co,C,K,K) and accumulates
    int hw = dy->h * dy->w, ckk = x->c * p->k * p->k, direct = columns_are_input(p);
    int splits = split ? dw_splits(dw_outputs(p, x->c), hw) : 1;
    size_t x_img = (size_t)x->c * x->h * x->w, y_img = (size_t)dy->c * hw;
    if (direct && splits == 1 && x->n > 1 && hw <= 256) {
        cn_gemm_args g = gemm_args(0, 1, p->cout, ckk, hw, 1.0f, dy->buf, dy->offset, x->buf, x->offset, dw->buf,
                                   dw->offset);
        g.batch = x->n, g.sum_batch = 1, g.a_stride = y_img, g.b_stride = x_img;
        return cn_gemm(ctx, &g);
    }
    for (int i = 0; i < x->n; i++) {
        if (!direct) CN_TRY(columns(ctx, p, x, i, work, 1));
        cl_mem cols = direct ? x->buf : work->buf;
        size_t cols_off = direct ? x->offset + i * x_img : work->offset;
        cn_gemm_args g = gemm_args(0, 1, p->cout, ckk, hw, 1.0f, dy->buf, dy->offset + i * y_img, cols, cols_off,
                                   dw->buf, dw->offset);
        if (splits > 1)
            CN_TRY(gemm_split_k(ctx, &g, splits, work->buf, work->offset + columns_floats(p, x->c, x->h, x->w)));
        else
            CN_TRY(cn_gemm(ctx, &g));
    }
    return CLUNET_OK;
}

/*
 * Whether dw goes through winograd_dw: CLUNET_CONV=winograd wherever the shape
 * allows; on CPUs that measured it faster than im2col + GEMM
 * (ctx->conv_wino_dw), with enough channels (WINO_DW).
 */
static int winograd_dw_path(const clunet_context *ctx, int mode, const cn_conv2d_params *p, int in_c, int out_c)
{
    if (mode == MODE_WINOGRAD) return winograd_shape(p);
    return mode == MODE_AUTO && cn_cpu_paths(ctx) && ctx->conv_wino_dw > 0 &&
           winograd_pays(p, in_c, out_c, WINO_DW);
}

/* ---- per-shape choice on CPUs --------------------------------------------- */

/*
 * The knobs below pick Winograd or not for all shapes at once, by timing one
 * probe shape, and which path is fastest differs by shape and direction (Zen
 * 5, 1 x 512: winograd_fused beat conv2d_tiled 1.3x on decoder.4's y and lost
 * 1.6x on its dx; Winograd's weight gradient won 1.5-2x on decoder.0-2 and
 * lost 1.3x on decoder.3). So on CPUs each direction of a large conv (>= 0.1
 * GFLOP: its paths differ by more than a launch) is timed once among the
 * paths that can take it, and the winner kept in the tuning file under the
 * shape. Small convs, other devices, and a CLUNET_CONV or a CLUNET_TUNE that
 * forces a conv variant (tests) keep the rules above.
 */
static int shape_timed(const clunet_context *ctx, int mode, const cn_conv2d_params *p, const cn_tensor *x)
{
    if (mode != MODE_AUTO || !cn_cpu_paths(ctx) || cn_tune_forced("conv_winograd") ||
        cn_tune_forced("conv_winograd_fused") || cn_tune_forced("conv_winograd_dw"))
        return 0;
    double ho = cn_conv2d_out_h(p, x->h), wo = cn_conv2d_out_w(p, x->w);
    return 2.0 * x->n * x->c * p->cout * p->k * p->k * ho * wo >= 1e8;
}

/* A direction of a conv to time: y (in x, out y), dx (in dy, out dx) or dw (in x, dy as `other`, out dw). */
typedef struct path_trial {
    const cn_conv2d_params *p;
    const cn_tensor *in, *other, *w, *out, *work;
    int flip, dw_rows;
    cn_tensor scratch; /* dw's stand-in, allocated at the first timed run */
    int no_room;       /* it could not be: the static choice stands */
} path_trial;

/* The weight gradient's paths; tuning files keep these numbers (conv_dw_* keys): never renumber them. */
enum { DW_GEMM, DW_DIRECT, DW_WINOGRAD, DW_WINOGRAD4 };

/* dw += dy (*) x by `path` (DW_*); rows for DW_DIRECT. */
static clunet_status weight_gradient(clunet_context *ctx, int path, const cn_conv2d_params *p, const cn_tensor *x,
                                     const cn_tensor *dy, const cn_tensor *dw, const cn_tensor *work, int rows,
                                     int split)
{
    if (path == DW_WINOGRAD || path == DW_WINOGRAD4)
        return winograd_dw(ctx, path == DW_WINOGRAD4 ? 4 : 2, x, dy, dw, work);
    if (path == DW_DIRECT) return direct_dw(ctx, p, x, dy, dw, work, rows);
    return gemm_dw(ctx, p, x, dy, dw, work, split);
}

static clunet_status run_y_dx(clunet_context *ctx, int path, void *arg)
{
    path_trial *t = arg;
    return direct_path_conv(ctx, path, t->p, t->in, t->w, t->out, t->work, t->flip, 0, NULL);
}

/* The weight gradients add, so they are timed into a tensor of dw's shape rather than dw. */
static clunet_status run_dw(clunet_context *ctx, int path, void *arg)
{
    path_trial *t = arg;
    if (!t->scratch.buf) {
        clunet_status st = cn_tensor_alloc(ctx, t->out->n, t->out->c, t->out->h, t->out->w, &t->scratch);
        t->no_room = st == CLUNET_ERR_OUT_OF_MEMORY;
        CN_TRY(st);
        CN_TRY(cn_buffer_fill_float(ctx, t->scratch.buf, 0, cn_tensor_count(&t->scratch) * sizeof(float), 0.0f));
    }
    return weight_gradient(ctx, path, t->p, t->in, t->other, &t->scratch, t->work, t->dw_rows, 0);
}

/* Times under the GEMM this device chose, not one a test forced (CLBlast's batched product is slow on PoCL). */
static clunet_status device_gemm(clunet_context *ctx, int *forced)
{
    *forced = ctx->gemm_impl;
    ctx->gemm_impl = -1;
    return cn_gemm_choose(ctx);
}

static void forced_gemm_back(clunet_context *ctx, int forced)
{
    if (forced >= 0) ctx->gemm_impl = forced;
}

/* The tuning key of direction `dir` of this conv on x; 0 where it does not fit. */
static int path_key(const char *dir, const cn_conv2d_params *p, const cn_tensor *x, char key[96])
{
    int len = snprintf(key, 96, "conv_%s_k%ds%dp%d,%d,%d,%d_n%dc%dh%dw%do%d", dir, p->k, p->stride, p->pad_t, p->pad_l,
                       p->pad_b, p->pad_r, x->n, x->c, x->h, x->w, p->cout);
    return len < 96;
}

/* *path = the fastest of paths[0..n) for direction `dir` of this shape, timed by run on t once per device. */
static clunet_status timed_path(clunet_context *ctx, const char *dir, const cn_conv2d_params *p, const cn_tensor *x,
                                const int *paths, int n, cn_tune_fn run, path_trial *t, int *path)
{
    char key[96];
    if (n < 2 || !path_key(dir, p, x, key)) return CLUNET_OK;
    int forced;
    clunet_status st = device_gemm(ctx, &forced);
    if (st == CLUNET_OK) st = cn_tune_pick(ctx, key, paths, n, run, t, path);
    forced_gemm_back(ctx, forced);
    cn_tensor_free(ctx, &t->scratch);
    return t->no_room ? CLUNET_OK : st; /* a device too full for the stand-in: untimed, not failed */
}

/* Whether timed_path would find its answer without timing. */
static clunet_status path_known(clunet_context *ctx, const char *dir, const cn_conv2d_params *p, const cn_tensor *x,
                                const int *paths, int n, int *known)
{
    char key[96];
    int chosen;
    *known = 1;
    return n < 2 || !path_key(dir, p, x, key) ? CLUNET_OK : cn_tune_known(ctx, key, paths, n, &chosen, known);
}

/*
 * The paths y (in_c = x's channels) or dx (in_c = dy's) of a large conv on a
 * CPU may take where the rules chose `rule`: conv2d_tiled and the three Winograd
 * forms, where each can; their count (below 2: nothing to time).
 */
static int direct_candidates(const clunet_context *ctx, int mode, const cn_conv2d_params *p, const cn_tensor *x,
                             int in_c, int out_c, int rule, int paths[6])
{
    if (rule == PATH_GEMM || !shape_timed(ctx, mode, p, x)) return 0;
    int n = 0;
    if (tiled_fits(ctx, p, x, in_c, out_c)) paths[n++] = PATH_LOCAL;
    if (winograd_shape(p)) {
        paths[n++] = PATH_WINOGRAD;
        paths[n++] = PATH_WINOGRAD4;
        if (fused_slab(ctx, 2, in_c, out_c) > 0) paths[n++] = PATH_WINO_FUSED;
        if (fused_slab(ctx, 4, in_c, out_c) > 0) paths[n++] = PATH_WINO4_FUSED;
    }
    return n;
}

/* The weight gradient's paths (DW_*) for a large conv on a CPU, as direct_candidates; rows for DW_DIRECT. */
static int dw_candidates(const clunet_context *ctx, int mode, const cn_conv2d_params *p, const cn_tensor *x, int rows,
                         int paths[4])
{
    if (!shape_timed(ctx, mode, p, x)) return 0;
    int n = 0;
    paths[n++] = DW_GEMM;
    if (rows) paths[n++] = DW_DIRECT;
    if (winograd_shape(p)) {
        paths[n++] = DW_WINOGRAD;
        paths[n++] = DW_WINOGRAD4;
    }
    return n;
}

/* y (dx = 0: in x, out y) or dx (dx = 1: in dy, out dx, which is written): *path becomes the fastest candidate. */
static clunet_status timed_direct_path(clunet_context *ctx, int mode, int dx, const cn_conv2d_params *p,
                                       const cn_tensor *x, const cn_tensor *in, const cn_tensor *w,
                                       const cn_tensor *out, const cn_tensor *work, int *path)
{
    int paths[6], n = direct_candidates(ctx, mode, p, x, in->c, out->c, *path, paths);
    path_trial t = {.p = p, .in = in, .w = w, .out = out, .work = work, .flip = dx};
    return timed_path(ctx, dx ? "dx" : "y", p, x, paths, n, run_y_dx, &t, path);
}

/* The weight gradient's path (DW_*), as timed_direct_path. */
static clunet_status timed_dw_path(clunet_context *ctx, int mode, const cn_conv2d_params *p, const cn_tensor *x,
                                   const cn_tensor *dy, const cn_tensor *dw, const cn_tensor *work, int rows,
                                   int *path)
{
    int paths[4], n = dw_candidates(ctx, mode, p, x, rows, paths);
    path_trial t = {.p = p, .in = x, .other = dy, .out = dw, .work = work, .dw_rows = rows};
    return timed_path(ctx, "dw", p, x, paths, n, run_dw, &t, path);
}

/*
 * A conv to time the CPU kernels' variants with: 32 -> 32 channels 3x3 at
 * 128x128, like the decoder's last layers; y and w double as dy and dw. The
 * same buffers hold Winograd's probe, 128 -> 128 channels at 64x64.
 */
typedef struct conv_probe {
    cn_conv2d_params p;
    cn_tensor x, w, y, work;
} conv_probe;

static void probe_free(clunet_context *ctx, conv_probe *t)
{
    cn_tensor *all[4] = {&t->x, &t->w, &t->y, &t->work};
    for (int i = 0; i < 4; i++) cn_tensor_free(ctx, all[i]);
}

/* Allocated at the first timed run: nothing when the tuning file knows the answers. */
static clunet_status probe_alloc(clunet_context *ctx, conv_probe *t)
{
    if (t->x.buf) return CLUNET_OK;
    enum { C = 32, S = 128 };
    t->p = (cn_conv2d_params){.cout = C, .k = 3, .stride = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1, .pad_r = 1,
                              .groups = 1};
    int work = (int)cn_conv2d_workspace_floats(&t->p, 1, C, S, S);
    int shapes[4][4] = {{1, C, S, S}, {4 * C, 4 * C, 3, 3}, {1, C, S, S}, {1, 1, 1, work}};
    cn_tensor *all[4] = {&t->x, &t->w, &t->y, &t->work};
    clunet_status st = CLUNET_OK;
    for (int i = 0; i < 4 && st == CLUNET_OK; i++) {
        const int *d = shapes[i];
        st = cn_tensor_alloc(ctx, d[0], d[1], d[2], d[3], all[i]);
        size_t bytes = cn_tensor_count(all[i]) * sizeof(float);
        if (st == CLUNET_OK) st = cn_buffer_fill_float(ctx, all[i]->buf, 0, bytes, 0.25f);
    }
    if (st != CLUNET_OK) probe_free(ctx, t);
    t->w.n = t->w.c = C; /* the 32 -> 32 weights; run_winograd takes the whole buffer */
    return st;
}

static clunet_status run_tiled(clunet_context *ctx, int ob, void *arg)
{
    conv_probe *t = arg;
    CN_TRY(probe_alloc(ctx, t));
    ctx->conv_ob = ob;
    return tiled_conv(ctx, &t->p, &t->x, &t->w, &t->y, &t->work, 0, 0, NULL);
}

/*
 * Winograd against what it stands in for, on the 128 -> 128 conv at 64 x 64
 * (the wide rule's threshold shape): y (dw = 0) or the weight gradient (dw =
 * 1), through the GEMM this device chose, not one a test forced (CLBlast's
 * batched product is slow on PoCL).
 */
static clunet_status run_wide_probe(clunet_context *ctx, conv_probe *t, int dw, int on)
{
    CN_TRY(probe_alloc(ctx, t));
    cn_conv2d_params p = t->p;
    p.cout = 128;
    cn_tensor x = t->x, y = t->y, w = t->w; /* y and w double as dy and dw */
    x.c = y.c = w.n = w.c = 128, x.h = x.w = y.h = y.w = 64;
    int forced;
    clunet_status st = device_gemm(ctx, &forced);
    if (st == CLUNET_OK && dw)
        st = on ? winograd_dw(ctx, 2, &x, &y, &w, &t->work) : gemm_dw(ctx, &p, &x, &y, &w, &t->work, 0);
    else if (st == CLUNET_OK)
        st = direct_path_conv(ctx, on ? PATH_WINOGRAD : PATH_LOCAL, &p, &x, &w, &y, &t->work, 0, 0, NULL);
    forced_gemm_back(ctx, forced);
    return st;
}

static clunet_status run_winograd(clunet_context *ctx, int on, void *arg)
{
    ctx->conv_winograd = on;
    return run_wide_probe(ctx, arg, 0, on);
}

static clunet_status run_wino_fused(clunet_context *ctx, int on, void *arg)
{
    conv_probe *t = arg;
    CN_TRY(probe_alloc(ctx, t));
    ctx->conv_wino_fused = on;
    return direct_path_conv(ctx, on ? PATH_WINO_FUSED : PATH_LOCAL, &t->p, &t->x, &t->w, &t->y, &t->work, 0, 0,
                            NULL);
}

static clunet_status run_wino_dw(clunet_context *ctx, int on, void *arg)
{
    ctx->conv_wino_dw = on;
    return run_wide_probe(ctx, arg, 1, on);
}

static clunet_status run_direct_dw(clunet_context *ctx, int outputs, void *arg)
{
    conv_probe *t = arg;
    CN_TRY(probe_alloc(ctx, t));
    ctx->conv_dw = outputs;
    return direct_dw(ctx, &t->p, &t->x, &t->y, &t->w, &t->work, direct_dw_rows(&t->p, &t->x, &t->y));
}

/*
 * The CPU conv kernels' register blocking, measured once per device:
 * conv2d_tiled's output channels per pass (2*TILE_OB float16 accumulators)
 * and conv2d_direct_dw's output channels per work-item (x K*K accumulators).
 * The sizes that suit 32 vector registers of 16 floats (AVX-512: 8 and 32)
 * spill from 16 registers of 8 (AVX2), where smaller ones ran 1.3-2x faster.
 * Then whether Winograd beats conv2d_tiled (with the size just chosen) on the
 * probe, whose 32 channels are the fewest it would take.
 */
static clunet_status conv_choose(clunet_context *ctx)
{
    static const int obs[] = {2, 4, 8}, dws[] = {8, 16, 32}, wino[] = {0, 1};
    const cn_tune_knob knobs[] = {{"conv_tiled_ob", obs, 3, run_tiled, &ctx->conv_ob, 8},
                                  {"conv_direct_dw_outputs", dws, 3, run_direct_dw, &ctx->conv_dw, 32},
                                  {"conv_winograd", wino, 2, run_winograd, &ctx->conv_winograd, 0},
                                  {"conv_winograd_fused", wino, 2, run_wino_fused, &ctx->conv_wino_fused, 0},
                                  {"conv_winograd_dw", wino, 2, run_wino_dw, &ctx->conv_wino_dw, 0}};
    conv_probe t = {{0}};
    clunet_status st = cn_tune_choose(ctx, knobs, 5, &t);
    probe_free(ctx, &t);
    return st;
}

clunet_status cn_conv2d_choose(clunet_context *ctx)
{
    int unset = ctx->conv_ob < 0 || ctx->conv_dw < 0 || ctx->conv_winograd < 0 || ctx->conv_wino_fused < 0 ||
                ctx->conv_wino_dw < 0;
    return cn_cpu_paths(ctx) && unset ? conv_choose(ctx) : CLUNET_OK;
}

clunet_status cn_conv2d_plan(clunet_context *ctx, const cn_conv2d_params *p, int n, int c, int h, int w,
                             int backward)
{
    // x is (N,C,H,W)
    CN_TRY(cn_conv2d_choose(ctx));
    int mode;
    CN_TRY(conv_mode(&mode));
    /* shapes first: the tensors are allocated only where some choice is not known yet */
    cn_tensor x = {.n = n, .c = c, .h = h, .w = w}, wt = {.n = p->cout, .c = c, .h = p->k, .w = p->k};
    cn_tensor y = {.n = n, .c = p->cout, .h = cn_conv2d_out_h(p, h), .w = cn_conv2d_out_w(p, w)};
    cn_tensor work = {.n = 1, .c = 1, .h = 1, .w = (int)cn_conv2d_workspace_floats(p, n, c, h, w)};
    if (p->groups != 1 || few_outputs(ctx, mode, p, p->cout)) return CLUNET_OK;
    int rows = direct_dw_rows(p, &x, &y), yp[6], dxp[6], dwp[4];
    int ny = direct_candidates(ctx, mode, p, &x, c, p->cout, dense_path(ctx, mode, p, &x, c, p->cout), yp);
    int ndx = backward ? direct_candidates(ctx, mode, p, &x, p->cout, c, dense_path(ctx, mode, p, &x, p->cout, c), dxp)
                       : 0;
    int ndw = backward ? dw_candidates(ctx, mode, p, &x, rows, dwp) : 0;
    int known_y, known_dx, known_dw;
    CN_TRY(path_known(ctx, "y", p, &x, yp, ny, &known_y));
    CN_TRY(path_known(ctx, "dx", p, &x, dxp, ndx, &known_dx));
    CN_TRY(path_known(ctx, "dw", p, &x, dwp, ndw, &known_dw));
    if (known_y && known_dx && known_dw) return CLUNET_OK;

    cn_tensor *all[4] = {&x, &wt, &y, &work};
    clunet_status st = CLUNET_OK;
    for (int i = 0; i < 4 && st == CLUNET_OK; i++) {
        cn_tensor *t = all[i];
        st = cn_tensor_alloc(ctx, t->n, t->c, t->h, t->w, t);
        if (st == CLUNET_OK) st = cn_buffer_fill_float(ctx, t->buf, 0, cn_tensor_count(t) * sizeof(float), 0.25f);
    }
    int path; /* the trials' runs: y stands in for dy, x for dx (written), wt for dw */
    path_trial ty = {.p = p, .in = &x, .w = &wt, .out = &y, .work = &work};
    path_trial tdx = {.p = p, .in = &y, .w = &wt, .out = &x, .work = &work, .flip = 1};
    path_trial tdw = {.p = p, .in = &x, .other = &y, .out = &wt, .work = &work, .dw_rows = rows};
    if (st == CLUNET_OK) st = timed_path(ctx, "y", p, &x, yp, ny, run_y_dx, &ty, &path);
    if (st == CLUNET_OK) st = timed_path(ctx, "dx", p, &x, dxp, ndx, run_y_dx, &tdx, &path);
    if (st == CLUNET_OK) st = timed_path(ctx, "dw", p, &x, dwp, ndw, run_dw, &tdw, &path);
    for (int i = 0; i < 4; i++) cn_tensor_free(ctx, all[i]);
    return st;
}

/* ---- forward / backward --------------------------------------------------- */

clunet_status cn_conv2d_forward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                const cn_tensor *w, const cn_tensor *b, const cn_tensor *y, const cn_tensor *work,
                                const cn_epilogue *ep)
{
    // x is (N,C,H,W), w is (Co,C/groups,K,K), y is (N,Co,Ho,Wo)
    CN_TRY(check_conv(p, x, w, b, "y", y, work));
    CN_TRY(cn_epilogue_check(ep, p->cout));
    if (p->groups > 1) return cn_depthwise_forward(ctx, p, x, w, b, y, ep);
    CN_TRY(cn_conv2d_choose(ctx)); /* the path depends on what the CPU kernels measured */
    int mode, hw = y->h * y->w, ckk = x->c * p->k * p->k;
    CN_TRY(conv_mode(&mode));
    if (few_outputs(ctx, mode, p, p->cout)) return cn_depthwise_dense_forward(ctx, p, x, w, b, y, ep);
    size_t x_img = (size_t)x->c * x->h * x->w, y_img = (size_t)y->c * hw;
    int path = dense_path(ctx, mode, p, x, x->c, p->cout);
    CN_TRY(timed_direct_path(ctx, mode, 0, p, x, x, w, y, work, &path));
    const cn_epilogue *in_path = b ? NULL : ep; /* the bias goes first: after the path, then the epilogue */
    if (path != PATH_GEMM) {
        CN_TRY(direct_path_conv(ctx, path, p, x, w, y, work, 0, 0, in_path));
    } else if (columns_are_input(p)) {
        cn_gemm_args g = gemm_args(0, 0, p->cout, hw, x->c, 0.0f, w->buf, w->offset, x->buf, x->offset, y->buf,
                                   y->offset);
        g.batch = x->n, g.b_stride = x_img, g.c_stride = y_img, g.ep = in_path;
        CN_TRY(cn_gemm(ctx, &g));
    } else {
        for (int i = 0; i < x->n; i++) {
            CN_TRY(columns(ctx, p, x, i, work, 1));
            cn_gemm_args g = gemm_args(0, 0, p->cout, hw, ckk, 0.0f, w->buf, w->offset, work->buf, work->offset,
                                       y->buf, y->offset + i * y_img);
            g.ep = in_path;
            CN_TRY(cn_gemm(ctx, &g));
        }
    }
    if (!b) return CLUNET_OK;
    CN_TRY(bias_add(ctx, y, b));
    return cn_epilogue_rows(ctx, ep, y->buf, y->offset, y->c, hw, hw, y_img, y->n);
}

clunet_status cn_conv2d_backward(clunet_context *ctx, const cn_conv2d_params *p, const cn_tensor *x,
                                 const cn_tensor *w, const cn_tensor *dy, const cn_tensor *dx, int dx_add,
                                 const cn_tensor *dw, const cn_tensor *db, const cn_tensor *work)
{
    // x is (N,C,H,W), w is (Co,C/groups,K,K), dy is (N,Co,Ho,Wo); dw, db accumulate, dx where dx_add
    cn_conv2d_params pb = *p;
    pb.has_bias = db != NULL; /* the bias value plays no part in the gradients */
    CN_TRY(check_conv(&pb, x, w, db, "dy", dy, work));
    if (dx) CN_TRY(check_tensor("dx", dx, x->n, x->c, x->h, x->w));
    if (dw) CN_TRY(check_tensor("dw", dw, w->n, w->c, w->h, w->w));
    if (db) CN_TRY(bias_backward(ctx, dy, db));
    if (p->groups > 1) return cn_depthwise_backward(ctx, p, x, w, dy, dx, dx_add, dw);
    CN_TRY(cn_conv2d_choose(ctx));

    int mode, hw = dy->h * dy->w, ckk = x->c * p->k * p->k;
    CN_TRY(conv_mode(&mode));
    size_t x_img = (size_t)x->c * x->h * x->w, y_img = (size_t)dy->c * hw;
    int direct = columns_are_input(p);
    if (dw && few_outputs(ctx, mode, p, dy->c)) {
        CN_TRY(cn_depthwise_dense_weight_grad(ctx, p, x, dy, dw));
    } else if (dw) {
        int rows = mode == MODE_AUTO && !gpu_kernels(ctx, mode) ? direct_dw_rows(p, x, dy) : 0;
        int path = winograd_dw_path(ctx, mode, p, x->c, dy->c) ? DW_WINOGRAD : rows ? DW_DIRECT : DW_GEMM;
        if (mode == MODE_WINOGRAD4 && winograd_shape(p)) path = DW_WINOGRAD4;
        CN_TRY(timed_dw_path(ctx, mode, p, x, dy, dw, work, rows, &path));
        CN_TRY(weight_gradient(ctx, path, p, x, dy, dw, work, rows, gpu_kernels(ctx, mode)));
    }
    if (!dx) return CLUNET_OK;
    int path = dense_path(ctx, mode, p, x, p->cout, x->c);
    if (!dx_add) CN_TRY(timed_direct_path(ctx, mode, 1, p, x, dy, w, dx, work, &path));
    if (path != PATH_GEMM) return direct_path_conv(ctx, path, p, dy, w, dx, work, 1, dx_add, NULL);
    if (flipped_fits(p, x, dy)) return flipped_gemm_dx(ctx, p, w, dy, dx, dx_add, work);
    /* columns' gradient = w^T * dy; a 1x1 conv puts it straight into dx */
    if (direct) {
        cn_gemm_args g = gemm_args(1, 0, x->c, hw, p->cout, dx_add ? 1.0f : 0.0f, w->buf, w->offset, dy->buf,
                                   dy->offset, dx->buf, dx->offset);
        g.batch = x->n, g.b_stride = y_img, g.c_stride = x_img;
        return cn_gemm(ctx, &g);
    }
    /* col2im only adds: a dx to be written starts from zeros */
    if (!dx_add)
        CN_TRY(cn_buffer_fill_float(ctx, dx->buf, dx->offset * sizeof(float), cn_tensor_count(dx) * sizeof(float),
                                    0.0f));
    for (int i = 0; i < x->n; i++) {
        cn_gemm_args g = gemm_args(1, 0, ckk, hw, p->cout, 0.0f, w->buf, w->offset, dy->buf, dy->offset + i * y_img,
                                   work->buf, work->offset);
        CN_TRY(cn_gemm(ctx, &g));
        CN_TRY(columns(ctx, p, dx, i, work, 0));
    }
    return CLUNET_OK;
}
