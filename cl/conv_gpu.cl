/*
 * conv_gpu.cl - the dense-conv kernels for GPUs (src/ops/conv.c): a direct
 * stride-1 conv for few channels, which needs no columns, and the fixed-order
 * sum of a split-K weight gradient's partial products.
 *
 * On a GPU, im2col + GEMM is a poor fit for a few channels over many pixels:
 * the GEMM has 1-16 rows and the columns are 9x the image. Here every
 * work-item owns one output pixel and a block of output channels.
 */

#ifndef CONV_K
#define CONV_K 3 /* kernel size, a -D option: unrolled taps */
#endif
#ifndef CONV_OB
#define CONV_OB 16 /* output channels per work-item (1, 2, 4, 8 or 16: the next power of two >= Co, at most 16) */
#endif
#define CONV_KK (CONV_K * CONV_K)
#ifndef CONV_CS
#define CONV_CS 8 /* input channels whose weights sit in local memory at a time (DIRECT_WG_SLAB in conv.c) */
#endif

/*
 * out (N,Co,Ho,Wo) (+)= in (N,Ci,H,W) (*) weights, stride 1. Global
 * (Wo, Ho, ceil(Co/CONV_OB)*N) rounded up to the local size (2-D, any shape):
 * neighbouring work-items read neighbouring input pixels, and a work-group
 * shares each slab of CONV_CS input channels' weights through local memory.
 * Weight (o, i, tap t) is w[w_off + o*w_o + i*w_i + t0 + t*w_t]: the plain
 * layout for y, or for dx (in = dy) the kernel flipped with its channel axes
 * swapped. Items past the image's edge still load weights and meet the barriers.
 */
__kernel void conv2d_direct_wg(__global const float *in, const int in_off, __global const float *w, const int w_off,
                               __global float *out, const int out_off, const int ci, const int h, const int wd,
                               const int co, const int ho, const int wo, const int pad_t, const int pad_l,
                               const int w_o, const int w_i, const int t0, const int w_t, const int accumulate)
{
    __local float lw[CONV_CS * CONV_KK * CONV_OB]; /* [input channel][tap][output channel] */
    const int ox = get_global_id(0), oy = get_global_id(1);
    const int blocks = (co + CONV_OB - 1) / CONV_OB, img = get_global_id(2) / blocks;
    const int o0 = get_global_id(2) % blocks * CONV_OB;
    const int lid = get_local_id(1) * get_local_size(0) + get_local_id(0);
    const int lsize = get_local_size(0) * get_local_size(1);
    const int inside = ox < wo && oy < ho;
    float acc[CONV_OB];
    for (int o = 0; o < CONV_OB; o++) acc[o] = 0.0f;
    for (int i0 = 0; i0 < ci; i0 += CONV_CS) {
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous slab is no longer read */
        for (int j = lid; j < CONV_CS * CONV_KK * CONV_OB; j += lsize) {
            const int o = j % CONV_OB, t = j / CONV_OB % CONV_KK, i = i0 + j / (CONV_OB * CONV_KK);
            lw[j] = o0 + o < co && i < ci ? w[w_off + (o0 + o) * w_o + i * w_i + t0 + t * w_t] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (!inside) continue;
        const int cs = min(CONV_CS, ci - i0);
        for (int i = 0; i < cs; i++) {
            __global const float *xp = in + in_off + (img * ci + i0 + i) * h * wd;
#pragma unroll
            for (int ky = 0; ky < CONV_K; ky++) {
                const int iy = oy - pad_t + ky;
                if (iy < 0 || iy >= h) continue;
#pragma unroll
                for (int kx = 0; kx < CONV_K; kx++) {
                    const int ix = ox - pad_l + kx;
                    if (ix < 0 || ix >= wd) continue;
                    const float xv = xp[iy * wd + ix];
                    __local const float *wk = lw + (i * CONV_KK + ky * CONV_K + kx) * CONV_OB;
#pragma unroll
                    for (int o = 0; o < CONV_OB; o++) acc[o] = fma(wk[o], xv, acc[o]);
                }
            }
        }
    }
    if (!inside) return;
    for (int o = 0; o < CONV_OB && o0 + o < co; o++) {
        __global float *yp = out + out_off + ((img * co + o0 + o) * ho + oy) * wo + ox;
        *yp = accumulate ? *yp + acc[o] : acc[o];
    }
}

/*
 * c[j] += the sum over s of part[s * count + j], s in order: the second half
 * of a split-K product (each part one chunk of the long reduction), the same
 * bits every run. Global (count).
 */
__kernel void conv2d_sum_splits(__global const float *part, const int part_off, __global float *c, const int c_off,
                                const int count, const int splits)
{
    const int j = get_global_id(0);
    if (j >= count) return;
    float sum = 0.0f;
    for (int s = 0; s < splits; s++) sum += part[part_off + s * count + j];
    c[c_off + j] += sum;
}
