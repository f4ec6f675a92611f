/*
 * depthwise.cl - direct depthwise conv2d (groups == C == Co) for
 * src/ops/depthwise.c, and the forward of dense convs with a few outputs on
 * CPUs (the head), which sum the same per-plane taps over all inputs. Built
 * once per kernel size, stride and left padding:
 * -DDW_K=3|5 -DDW_S=1|2 -DDW_PAD=p (p < K), so the tap loops unroll and the
 * tap offsets are constants. Weights are (C, 1, K, K), or (Co, C, K, K) for the
 * dense forward.
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

#ifndef DW_PAD
#define DW_PAD 0
#endif

/* row[i0 + j*DW_S] for lanes j = 0..15, all inside the row. */
static float16 taps16(__global const float *row, const int i0)
{
#if DW_S == 1
    return vload16(0, row + i0);
#else
    return (float16)(vload16(0, row + i0).even, vload16(0, row + i0 + 16).even);
#endif
}

/*
 * Whether the taps of a work-item whose lane 0 sits over x0 may leave [0, n):
 * such work-items take their taps from a window16 instead. A margin of DW_K
 * on each side covers every tap offset (the pads are below DW_K).
 */
static int near_edge(const int x0, const int n) { return x0 < DW_K || x0 + 16 * DW_S + DW_K > n; }

/*
 * The vectors of a row from x0 - 16 to x0 + 16 * (DW_S + 1), zero outside
 * [0, n); x0 a multiple of 16. Each tap is then a lane shift of two of them
 * instead of 16 guarded scalar loads: on the 16- and 32-wide maps of the deep
 * stages nearly every work-item is at an edge.
 */
typedef struct window16 {
    float16 v[DW_S + 2];
} window16;

static window16 window_load(__global const float *row, const int x0, const int n)
{
    window16 win;
#pragma unroll
    for (int i = 0; i < DW_S + 2; i++) {
        const int s = x0 + 16 * (i - 1);
        win.v[i] = s >= 0 && s + 16 <= n ? vload16(0, row + s) : s >= 0 && s < n ? cn_row16(row, s, n) : (float16)0.0f;
    }
    return win;
}

/* row[x0 + d + j] for lanes j; -16 <= d < 16 * DW_S, a constant once the tap loops unroll. */
static float16 window_span(const window16 win, const int d)
{
    const uint16 lanes = (uint16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int i = (d + 16) / 16;
    return shuffle2(win.v[i], win.v[i + 1], lanes + (uint)((d + 16) % 16));
}

/* row[x0 + d + j*DW_S] for lanes j: the window's taps16. */
static float16 window_taps(const window16 win, const int d)
{
#if DW_S == 1
    return window_span(win, d);
#else
    return (float16)(window_span(win, d).even, window_span(win, d + 16).even);
#endif
}

/*
 * Stores the first n lanes of v at p, or adds them when accumulate; stored values get channel ch's epilogue.
 * Every row of an 8-wide map takes one 8-wide access, not 8 scalar ones (stage 6-7's depthwise convs at
 * 4 x 256: 0.71-0.75x the time forward, 0.64-0.72x for dx).
 */
static void store16(__global float *p, const float16 v, const int n, const int accumulate, __global const float *ep,
                    const int ch, const int act)
{
    if (n == 16) {
        if (accumulate) vstore16(vload16(0, p) + v, 0, p);
        else cn_stream16(cn_epilogue16(v, ep, ch, act), p);
        return;
    }
    if (n == 8) {
        vstore8(accumulate ? vload8(0, p) + v.lo : cn_epilogue16(v, ep, ch, act).lo, 0, p);
        return;
    }
    float s[16];
    vstore16(v, 0, s);
    for (int j = 0; j < n; j++) p[j] = accumulate ? p[j] + s[j] : cn_epilogue(s[j], ep, ch, act);
}

#ifndef DW_R
#define DW_R 1 /* output rows per work-item of depthwise_fwd (the host chooses: see src/ops/depthwise.c) */
#endif

/*
 * y = x * w (+ b), then the epilogue (cl/common.cl). Global (ceil(Wo/16), ceil(Ho/DW_R), N*channels): 16 output
 * pixels of DW_R rows each of output plane o = plane % channels: with sources
 * 0 a depthwise conv (plane o of x, w (C,1,K,K)), else a dense one, the sum
 * over all `sources` = C input planes in order (w (Co,C,K,K)). Each input
 * row's taps are loaded once for all the output rows that read them (an input
 * row feeds up to DW_K / DW_S of them), then added in the same order as one
 * row at a time.
 */
__kernel void depthwise_fwd(__global const float *x, const int x_off, __global const float *wt, const int w_off,
                            __global const float *b, const int b_off, const int has_bias, __global float *y,
                            const int y_off, const int channels, const int h, const int w, const int ho,
                            const int wo, const int pad_t, const int sources, __global const float *ep,
                            const int ep_off, const int act)
{
    const int ox0 = get_global_id(0) * 16, oy0 = get_global_id(1) * DW_R, plane = get_global_id(2);
    if (ox0 >= wo || oy0 >= ho) return;
    const int o = plane % channels, img = plane / channels;
    float16 acc[DW_R];
    for (int q = 0; q < DW_R; q++) acc[q] = (float16)(has_bias ? b[b_off + o] : 0.0f);
    const int x0 = ox0 * DW_S, edge = near_edge(x0, w);
    for (int s = 0; s < max(sources, 1); s++) {
        __global const float *xp = x + x_off + (sources ? img * sources + s : plane) * h * w;
        __global const float *wp = wt + w_off + (sources ? o * sources + s : o) * DW_K * DW_K;
#pragma unroll
        for (int r = 0; r < (DW_R - 1) * DW_S + DW_K; r++) {
            const int iy = oy0 * DW_S - pad_t + r;
            if (iy < 0 || iy >= h) continue;
            __global const float *row = xp + iy * w;
            float16 t[DW_K];
            if (edge) {
                const window16 win = window_load(row, x0, w);
#pragma unroll
                for (int kx = 0; kx < DW_K; kx++) t[kx] = window_taps(win, kx - DW_PAD);
            } else {
#pragma unroll
                for (int kx = 0; kx < DW_K; kx++) t[kx] = taps16(row, x0 - DW_PAD + kx);
            }
#pragma unroll
            for (int q = 0; q < DW_R; q++) {
                const int ky = r - q * DW_S; /* output row oy0 + q reads this row through tap row ky */
                if (ky < 0 || ky >= DW_K) continue;
#pragma unroll
                for (int kx = 0; kx < DW_K; kx++) acc[q] = fma((float16)wp[ky * DW_K + kx], t[kx], acc[q]);
            }
        }
    }
    for (int q = 0; q < DW_R && oy0 + q < ho; q++)
        store16(y + y_off + (plane * ho + oy0 + q) * wo + ox0, acc[q], min(16, wo - ox0), 0, ep + ep_off, o, act);
}

/*
 * dy's values that one row of dy gives the DW_S phases of 16 input pixels:
 * lane j of t[kx][ph] multiplies tap kx into input pixel ix0 + DW_S*j + ph,
 * and is dy's column g0 + j + d, where ph + DW_PAD - kx = d * DW_S (ix0 is a
 * multiple of DW_S; taps with a remainder never reach that phase). TAP gives
 * the 16 values at g0 + d. A macro for two loops, not one loop with a select
 * per tap: the edge path's shuffles would then run for every work-item.
 */
#define DW_DX_TAPS(TAP)                                                                                       \
    _Pragma("unroll") for (int kx = 0; kx < DW_K; kx++) _Pragma("unroll") for (int ph = 0; ph < DW_S; ph++) { \
        const int e = ph + DW_PAD - kx + DW_S * DW_K, d = e / DW_S - DW_K;                                    \
        if (e % DW_S == 0) t[kx][ph] = TAP;                                                                  \
    }

/*
 * dx (+)= the taps of dy that read each input pixel (a gather: no atomics);
 * added where accumulate, else written.
 * Global (ceil(W/(16*DW_S)), ceil(H/DW_R), N*C): 16*DW_S input pixels of DW_R
 * rows each, as DW_S phases of 16: pixel ix0 + DW_S*j + ph. A tap kx reaches
 * phase ph only when ix0 + ph + DW_PAD - kx is a multiple of the stride, and
 * then reads 16 consecutive values of dy, so the phases stay whole vectors.
 * Each row of dy is loaded once for all the input rows it feeds (up to
 * DW_K / DW_S), in descending order so that every input row adds its taps
 * in ascending ky, as with one row per work-item.
 */
__kernel void depthwise_bwd_data(__global const float *dy, const int dy_off, __global const float *wt,
                                 const int w_off, __global float *dx, const int dx_off, const int channels,
                                 const int h, const int w, const int ho, const int wo, const int pad_t,
                                 const int accumulate)
{
    const int ix0 = get_global_id(0) * 16 * DW_S, iy0 = get_global_id(1) * DW_R, plane = get_global_id(2);
    if (ix0 >= w || iy0 >= h) return;
    __global const float *gp = dy + dy_off + plane * ho * wo;
    __global const float *wp = wt + w_off + (plane % channels) * DW_K * DW_K;
    float16 sum[DW_R][DW_S];
    for (int q = 0; q < DW_R; q++)
        for (int ph = 0; ph < DW_S; ph++) sum[q][ph] = (float16)0.0f;
    const int g0 = ix0 / DW_S, edge = near_edge(g0, wo); /* dy's column under lane 0 of phase 0, tap 0 */
#pragma unroll
    for (int r = DW_R + DW_K - 2; r >= 0; r--) {
        /* = oy * DW_S for the row oy of dy that reads input row iy0 + q through tap ky = DW_K - 1 - r + q */
        const int ty = iy0 + pad_t - (DW_K - 1) + r;
        if (ty < 0 || ty % DW_S || ty / DW_S >= ho) continue;
        __global const float *row = gp + ty / DW_S * wo;
        float16 t[DW_K][DW_S];
        if (edge) {
            const window16 win = window_load(row, g0, wo);
            DW_DX_TAPS(window_span(win, d))
        } else {
            DW_DX_TAPS(vload16(0, row + g0 + d))
        }
#pragma unroll
        for (int q = 0; q < DW_R; q++) {
            const int ky = DW_K - 1 - r + q;
            if (ky < 0 || ky >= DW_K) continue;
#pragma unroll
            for (int kx = 0; kx < DW_K; kx++)
#pragma unroll
                for (int ph = 0; ph < DW_S; ph++)
                    if ((ph + DW_PAD - kx + DW_S * DW_K) % DW_S == 0)
                        sum[q][ph] = fma((float16)wp[ky * DW_K + kx], t[kx][ph], sum[q][ph]);
        }
    }
    for (int q = 0; q < DW_R && iy0 + q < h; q++) {
        __global float *dp = dx + dx_off + (plane * h + iy0 + q) * w + ix0;
#if DW_S == 1
        store16(dp, sum[q][0], min(16, w - ix0), accumulate, dy, 0, CN_EPI_NONE);
#else
        /* the two phases interleaved back into pixel order */
        const float16 lo = shuffle2(sum[q][0], sum[q][1], (uint16)(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
        const float16 hi =
            shuffle2(sum[q][0], sum[q][1], (uint16)(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
        store16(dp, lo, clamp(w - ix0, 0, 16), accumulate, dy, 0, CN_EPI_NONE);
        store16(dp + 16, hi, clamp(w - ix0 - 16, 0, 16), accumulate, dy, 0, CN_EPI_NONE);
#endif
    }
}

/*
 * dw[c] += sum over batch and output pixels of dy * the input under each tap.
 * dy's planes lie dy_image floats apart from image to image and dy_channel
 * from channel to channel (0: one plane of dy for every channel of x, the
 * weight gradient of one output of a dense conv).
 * One work-group per channel and tap row ky (a row's DW_K accumulators stay in
 * registers; all DW_K * DW_K of a 5x5 kernel spill), local size <= 64 (1 on
 * CPUs: no barrier work): work-item l sums output rows l, l + wg, ... 16 pixels
 * at a time into one float16 per tap, then work-item t adds up tap t's
 * partials in order, so the result is the same bits every run.
 */
__kernel void depthwise_bwd_weight(__global const float *x, const int x_off, __global const float *dy,
                                   const int dy_off, __global float *dw, const int dw_off, const int n,
                                   const int channels, const int h, const int w, const int ho, const int wo,
                                   const int pad_t, const int dy_image, const int dy_channel)
{
    __local float part[DW_K][64];
    const int c = get_group_id(0) / DW_K, ky = get_group_id(0) % DW_K, lid = get_local_id(0), wg = get_local_size(0);
    float16 acc[DW_K];
    for (int t = 0; t < DW_K; t++) acc[t] = (float16)0.0f;
    for (int b = 0; b < n; b++) {
        __global const float *xp = x + x_off + (b * channels + c) * h * w;
        __global const float *gp = dy + dy_off + b * dy_image + c * dy_channel;
        for (int oy = lid; oy < ho; oy += wg) {
            const int iy = oy * DW_S - pad_t + ky;
            if (iy < 0 || iy >= h) continue;
            __global const float *row = xp + iy * w;
            for (int ox0 = 0; ox0 < wo; ox0 += 16) {
                /* lanes past wo hold zero, so their products vanish */
                const float16 g = cn_row16(gp + oy * wo, ox0, wo);
                const int x0 = ox0 * DW_S;
                if (near_edge(x0, w)) {
                    const window16 win = window_load(row, x0, w);
#pragma unroll
                    for (int kx = 0; kx < DW_K; kx++) acc[kx] = fma(g, window_taps(win, kx - DW_PAD), acc[kx]);
                } else {
#pragma unroll
                    for (int kx = 0; kx < DW_K; kx++) acc[kx] = fma(g, taps16(row, x0 - DW_PAD + kx), acc[kx]);
                }
            }
        }
    }
    for (int t = 0; t < DW_K; t++) part[t][lid] = cn_lanes_sum(acc[t]);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int t = lid; t < DW_K; t += wg) {
        float sum = 0.0f;
        for (int i = 0; i < wg; i++) sum += part[t][i];
        dw[dw_off + (c * DW_K + ky) * DW_K + t] += sum;
    }
}

/*
 * The weight gradient on small planes (stride 1, the output the input's size,
 * 16 % width == 0, at most 256 floats: the 16 x 16 and 8 x 8 maps of the
 * deep stages): the plane as DW_PN / 16 vectors of whole rows, so each tap's
 * products over 16 outputs are one constant lane shift of two of them (zeros
 * outside the plane) and one multiply-add, instead of a window of shuffles
 * per half-filled row. Built per plane: -DDW_PW (width) -DDW_PN (floats),
 * -DDW_PT (top padding). (The forward and data gradient in this form ran
 * 1.07-1.6x slower than the row kernels above: PoCL's code for their lane
 * shifts spilled.)
 */
#ifdef DW_PW
#define DW_NV (DW_PN / 16)

/* The plane's values at flat index s + lane (s a constant once unrolled), zero outside it. */
static float16 plane_shift(const float16 *v, const int s)
{
    const int i = (s + 16 * DW_NV) / 16 - DW_NV, r = s - 16 * i; /* floor(s / 16), the rest in 0..15 */
    const float16 lo = i >= 0 && i < DW_NV ? v[i] : (float16)0.0f;
    if (r == 0) return lo;
    const float16 hi = i + 1 >= 0 && i + 1 < DW_NV ? v[i + 1] : (float16)0.0f;
    return shuffle2(lo, hi, (uint16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) + (uint)r);
}

/* v, zero in the lanes whose column plus dx leaves the row. */
static float16 plane_cols(const float16 v, const int dx)
{
    const int16 col = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) % DW_PW + dx;
    return select((float16)0.0f, v, col >= 0 && col < DW_PW);
}

static void plane_load(__global const float *p, float16 *v)
{
#pragma unroll
    for (int i = 0; i < DW_NV; i++) v[i] = vload16(i, p);
}

/*
 * dw[c] += sum over the batch and the plane of dy * the input under each tap;
 * dy's planes lie dy_image and dy_channel floats apart (as in
 * depthwise_bwd_weight). Global (channels): the taps' sums stay in lanes
 * until the end, where the lanes a tap never reaches are dropped.
 */
__kernel void depthwise_plane_bwd_weight(__global const float *x, const int x_off, __global const float *dy,
                                         const int dy_off, __global float *dw, const int dw_off, const int n,
                                         const int channels, const int dy_image, const int dy_channel)
{
    const int c = get_global_id(0);
    float16 acc[DW_K * DW_K];
    for (int t = 0; t < DW_K * DW_K; t++) acc[t] = (float16)0.0f;
    for (int b = 0; b < n; b++) {
        float16 v[DW_NV], g[DW_NV];
        plane_load(x + x_off + (b * channels + c) * DW_PN, v);
        plane_load(dy + dy_off + b * dy_image + c * dy_channel, g);
#pragma unroll
        for (int t = 0; t < DW_K * DW_K; t++) {
            const int d = (t / DW_K - DW_PT) * DW_PW + t % DW_K - DW_PAD;
#pragma unroll
            for (int i = 0; i < DW_NV; i++) acc[t] = fma(g[i], plane_shift(v, 16 * i + d), acc[t]);
        }
    }
    for (int t = 0; t < DW_K * DW_K; t++)
        dw[dw_off + c * DW_K * DW_K + t] += cn_lanes_sum(plane_cols(acc[t], t % DW_K - DW_PAD));
}
#endif
