/*
 * depthwise.cl - direct depthwise conv2d (groups == C == Co) for
 * src/ops/depthwise.c. Built once per kernel size and stride: -DDW_K=3|5
 * -DDW_S=1|2, so the tap loops unroll. Weights are (C, 1, K, K).
 *
 * Every kernel works on 16 neighbouring pixels of a row as one float16 (CPUs
 * vectorise explicit vectors, not loops over pixels); lanes that fall in the
 * padding or past the row read as zero.
 */

#ifndef DW_K
#define DW_K 3
#endif
#ifndef DW_S
#define DW_S 1
#endif

/* row[i0 + j*DW_S] for lanes j = 0..15, zero outside [0, w). */
static float16 taps16(__global const float *row, const int i0, const int w)
{
#if DW_S == 1
    return cn_row16(row, i0, w);
#else
#if DW_S == 2
    if (i0 >= 0 && i0 + 32 <= w) return (float16)(vload16(0, row + i0).even, vload16(0, row + i0 + 16).even);
#endif
    float v[16];
    for (int j = 0; j < 16; j++) {
        const int i = i0 + j * DW_S;
        v[j] = i >= 0 && i < w ? row[i] : 0.0f;
    }
    return vload16(0, v);
#endif
}

/* Stores the first n lanes of v at p, or adds them when accumulate. */
static void store16(__global float *p, const float16 v, const int n, const int accumulate)
{
    if (n == 16) {
        vstore16(accumulate ? vload16(0, p) + v : v, 0, p);
        return;
    }
    float s[16];
    vstore16(v, 0, s);
    for (int j = 0; j < n; j++) p[j] = accumulate ? p[j] + s[j] : s[j];
}

/* y = x * w (+ b). Global (ceil(Wo/16), Ho, N*C): 16 output pixels of a row each; c = plane % channels. */
__kernel void depthwise_fwd(__global const float *x, const int x_off, __global const float *wt, const int w_off,
                            __global const float *b, const int b_off, const int has_bias, __global float *y,
                            const int y_off, const int channels, const int h, const int w, const int ho,
                            const int wo, const int pad_t, const int pad_l)
{
    const int ox0 = get_global_id(0) * 16, oy = get_global_id(1), plane = get_global_id(2);
    if (ox0 >= wo || oy >= ho) return;
    const int c = plane % channels;
    __global const float *xp = x + x_off + plane * h * w;
    __global const float *wp = wt + w_off + c * DW_K * DW_K;
    float16 acc = (float16)(has_bias ? b[b_off + c] : 0.0f);
#pragma unroll
    for (int ky = 0; ky < DW_K; ky++) {
        const int iy = oy * DW_S - pad_t + ky;
        if (iy < 0 || iy >= h) continue;
#pragma unroll
        for (int kx = 0; kx < DW_K; kx++)
            acc = fma((float16)wp[ky * DW_K + kx], taps16(xp + iy * w, ox0 * DW_S - pad_l + kx, w), acc);
    }
    store16(y + y_off + (plane * ho + oy) * wo + ox0, acc, min(16, wo - ox0), 0);
}

/*
 * dx += the taps of dy that read each input pixel (a gather: no atomics).
 * Global (ceil(W/(16*DW_S)), H, N*C): 16*DW_S input pixels of a row each, as
 * DW_S phases of 16: pixel ix0 + DW_S*j + ph. A tap kx reaches phase ph only
 * when ix0 + ph + pad_l - kx is a multiple of the stride, and then reads 16
 * consecutive values of dy, so the phases stay whole vectors.
 */
__kernel void depthwise_bwd_data(__global const float *dy, const int dy_off, __global const float *wt,
                                 const int w_off, __global float *dx, const int dx_off, const int channels,
                                 const int h, const int w, const int ho, const int wo, const int pad_t,
                                 const int pad_l)
{
    const int ix0 = get_global_id(0) * 16 * DW_S, iy = get_global_id(1), plane = get_global_id(2);
    if (ix0 >= w || iy >= h) return;
    __global const float *gp = dy + dy_off + plane * ho * wo;
    __global const float *wp = wt + w_off + (plane % channels) * DW_K * DW_K;
    float16 sum[DW_S];
    for (int ph = 0; ph < DW_S; ph++) sum[ph] = (float16)0.0f;
#pragma unroll
    for (int ky = 0; ky < DW_K; ky++) {
        const int ty = iy + pad_t - ky; /* = oy * DW_S for the output row reading iy through tap ky */
        if (ty < 0 || ty % DW_S || ty / DW_S >= ho) continue;
#pragma unroll
        for (int kx = 0; kx < DW_K; kx++)
#pragma unroll
            for (int ph = 0; ph < DW_S; ph++) {
                const int tx = ix0 + ph + pad_l - kx; /* = ox * DW_S for lane 0 when it divides */
                if (tx % DW_S == 0)
                    sum[ph] = fma((float16)wp[ky * DW_K + kx], cn_row16(gp + ty / DW_S * wo, tx / DW_S, wo), sum[ph]);
            }
    }
    __global float *dp = dx + dx_off + (plane * h + iy) * w + ix0;
#if DW_S == 1
    store16(dp, sum[0], min(16, w - ix0), 1);
#else
    float v[16 * DW_S], s[16];
    for (int ph = 0; ph < DW_S; ph++) {
        vstore16(sum[ph], 0, s);
        for (int j = 0; j < 16; j++) v[j * DW_S + ph] = s[j];
    }
    for (int q = 0; q < DW_S; q++) store16(dp + 16 * q, vload16(q, v), clamp(w - ix0 - 16 * q, 0, 16), 1);
#endif
}

/*
 * dw[c] += sum over batch and output pixels of dy * the input under each tap.
 * One work-group per channel, local size <= 64 (1 on CPUs: no barrier work):
 * work-item l sums output rows l, l + wg, ... 16 pixels at a time into one
 * float16 per tap, then work-item t adds up tap t's partials in order, so the
 * result is the same bits every run.
 */
__kernel void depthwise_bwd_weight(__global const float *x, const int x_off, __global const float *dy,
                                   const int dy_off, __global float *dw, const int dw_off, const int n,
                                   const int channels, const int h, const int w, const int ho, const int wo,
                                   const int pad_t, const int pad_l)
{
    __local float part[DW_K * DW_K][64];
    const int c = get_group_id(0), lid = get_local_id(0), wg = get_local_size(0);
    float16 acc[DW_K * DW_K];
    for (int t = 0; t < DW_K * DW_K; t++) acc[t] = (float16)0.0f;
    for (int b = 0; b < n; b++) {
        __global const float *xp = x + x_off + (b * channels + c) * h * w;
        __global const float *gp = dy + dy_off + (b * channels + c) * ho * wo;
        for (int oy = lid; oy < ho; oy += wg)
            for (int ox0 = 0; ox0 < wo; ox0 += 16) {
                /* lanes past wo hold zero, so their products vanish */
                const float16 g = cn_row16(gp + oy * wo, ox0, wo);
#pragma unroll
                for (int ky = 0; ky < DW_K; ky++) {
                    const int iy = oy * DW_S - pad_t + ky;
                    if (iy < 0 || iy >= h) continue;
#pragma unroll
                    for (int kx = 0; kx < DW_K; kx++)
                        acc[ky * DW_K + kx] =
                            fma(g, taps16(xp + iy * w, ox0 * DW_S - pad_l + kx, w), acc[ky * DW_K + kx]);
                }
            }
    }
    for (int t = 0; t < DW_K * DW_K; t++) part[t][lid] = cn_lanes_sum(acc[t]);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int t = lid; t < DW_K * DW_K; t += wg) {
        float sum = 0.0f;
        for (int i = 0; i < wg; i++) sum += part[t][i];
        dw[dw_off + c * DW_K * DW_K + t] += sum;
    }
}
