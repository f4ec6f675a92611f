/*
 * depthwise.cl - direct depthwise conv2d (groups == C == Co) for
 * src/ops/depthwise.c. Built once per kernel size and stride: -DDW_K=3|5
 * -DDW_S=1|2, so the tap loops unroll. Weights are (C, 1, K, K).
 */

#ifndef DW_K
#define DW_K 3
#endif
#ifndef DW_S
#define DW_S 1
#endif

/* y = x * w (+ b). Global (Wo, Ho, N*C); c = plane % channels. */
__kernel void depthwise_fwd(__global const float *x, const int x_off, __global const float *wt, const int w_off,
                            __global const float *b, const int b_off, const int has_bias, __global float *y,
                            const int y_off, const int channels, const int h, const int w, const int ho,
                            const int wo, const int pad_t, const int pad_l)
{
    const int ox = get_global_id(0), oy = get_global_id(1), plane = get_global_id(2);
    if (ox >= wo || oy >= ho) return;
    const int c = plane % channels;
    __global const float *xp = x + x_off + plane * h * w;
    __global const float *wp = wt + w_off + c * DW_K * DW_K;
    float sum = has_bias ? b[b_off + c] : 0.0f;
#pragma unroll
    for (int ky = 0; ky < DW_K; ky++) {
        const int iy = oy * DW_S - pad_t + ky;
        if (iy < 0 || iy >= h) continue;
#pragma unroll
        for (int kx = 0; kx < DW_K; kx++) {
            const int ix = ox * DW_S - pad_l + kx;
            if (ix >= 0 && ix < w) sum = fma(xp[iy * w + ix], wp[ky * DW_K + kx], sum);
        }
    }
    y[y_off + (plane * ho + oy) * wo + ox] = sum;
}

/* dx += the taps of dy that read each input pixel (a gather: no atomics). Global (W, H, N*C). */
__kernel void depthwise_bwd_data(__global const float *dy, const int dy_off, __global const float *wt,
                                 const int w_off, __global float *dx, const int dx_off, const int channels,
                                 const int h, const int w, const int ho, const int wo, const int pad_t,
                                 const int pad_l)
{
    const int ix = get_global_id(0), iy = get_global_id(1), plane = get_global_id(2);
    if (ix >= w || iy >= h) return;
    __global const float *gp = dy + dy_off + plane * ho * wo;
    __global const float *wp = wt + w_off + (plane % channels) * DW_K * DW_K;
    float sum = 0.0f;
#pragma unroll
    for (int ky = 0; ky < DW_K; ky++) {
        const int ty = iy + pad_t - ky; /* = oy * DW_S for the output row reading iy through tap ky */
        if (ty < 0 || ty % DW_S || ty / DW_S >= ho) continue;
#pragma unroll
        for (int kx = 0; kx < DW_K; kx++) {
            const int tx = ix + pad_l - kx;
            if (tx >= 0 && tx % DW_S == 0 && tx / DW_S < wo)
                sum = fma(gp[(ty / DW_S) * wo + tx / DW_S], wp[ky * DW_K + kx], sum);
        }
    }
    dx[dx_off + (plane * h + iy) * w + ix] += sum;
}

/*
 * dw[c] += sum over batch and output pixels of dy * the input under each tap.
 * One work-group per channel, local size <= 64: each work-item sums a strided
 * share of the pixels, then work-item t adds up tap t's partials in order, so
 * the result is the same bits every run.
 */
__kernel void depthwise_bwd_weight(__global const float *x, const int x_off, __global const float *dy,
                                   const int dy_off, __global float *dw, const int dw_off, const int n,
                                   const int channels, const int h, const int w, const int ho, const int wo,
                                   const int pad_t, const int pad_l)
{
    __local float part[DW_K * DW_K][64];
    const int c = get_group_id(0), lid = get_local_id(0), wg = get_local_size(0);
    float acc[DW_K * DW_K];
    for (int t = 0; t < DW_K * DW_K; t++) acc[t] = 0.0f;
    const int pixels = ho * wo;
    for (int b = 0; b < n; b++) {
        __global const float *xp = x + x_off + (b * channels + c) * h * w;
        __global const float *gp = dy + dy_off + (b * channels + c) * pixels;
        for (int p = lid; p < pixels; p += wg) {
            const int oy = p / wo, ox = p % wo;
            const float g = gp[p];
#pragma unroll
            for (int ky = 0; ky < DW_K; ky++) {
                const int iy = oy * DW_S - pad_t + ky;
#pragma unroll
                for (int kx = 0; kx < DW_K; kx++) {
                    const int ix = ox * DW_S - pad_l + kx;
                    if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                        acc[ky * DW_K + kx] = fma(g, xp[iy * w + ix], acc[ky * DW_K + kx]);
                }
            }
        }
    }
    for (int t = 0; t < DW_K * DW_K; t++) part[t][lid] = acc[t];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int t = lid; t < DW_K * DW_K; t += wg) {
        float sum = 0.0f;
        for (int i = 0; i < wg; i++) sum += part[t][i];
        dw[dw_off + c * DW_K * DW_K + t] += sum;
    }
}
