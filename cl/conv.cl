/*
 * conv.cl - the non-GEMM parts of dense conv2d (src/ops/conv.c): im2col for
 * forward and weight gradients, col2im as a gather for data gradients, bias,
 * and two kernels for CPUs: the conv whose columns stay in local memory
 * (conv2d_tiled) and the column-free weight gradient for few output channels.
 *
 * Columns of one image are (C*K*K, Ho*Wo): row (c*K + ky)*K + kx holds input
 * channel c shifted by tap (ky, kx), zero where the tap falls in the padding.
 * The bias kernels do not depend on CONV_K / CONV_S.
 */

#ifndef CONV_K
#define CONV_K 3 /* kernel size and stride come as -D options: constant divisors, unrolled taps */
#endif
#ifndef CONV_S
#define CONV_S 1
#endif

/*
 * Global (ceil(Wo/16), Ho, C): each work-item writes the K*K column entries of
 * 16 neighbouring output pixels, with whole float16 rows where a stride-1 tap
 * lies inside the image (CPUs vectorise those; the rest goes pixel by pixel).
 */
__kernel void conv2d_im2col(__global const float *x, const int x_off, __global float *col, const int col_off,
                            const int h, const int w, const int ho, const int wo, const int pad_t, const int pad_l)
{
    const int ox0 = get_global_id(0) * 16, oy = get_global_id(1), c = get_global_id(2);
    if (ox0 >= wo || oy >= ho) return;
    __global const float *xp = x + x_off + c * h * w;
    __global float *cp = col + col_off + c * CONV_K * CONV_K * ho * wo + oy * wo + ox0;
    const int n = min(16, wo - ox0);
#pragma unroll
    for (int ky = 0; ky < CONV_K; ky++) {
        const int iy = oy * CONV_S - pad_t + ky;
        const int row_inside = iy >= 0 && iy < h;
#pragma unroll
        for (int kx = 0; kx < CONV_K; kx++) {
            __global float *dst = cp + (ky * CONV_K + kx) * ho * wo;
            const int ix0 = ox0 * CONV_S - pad_l + kx;
            if (CONV_S == 1 && n == 16 && row_inside && ix0 >= 0 && ix0 + 16 <= w) {
                vstore16(vload16(0, xp + iy * w + ix0), 0, dst);
                continue;
            }
            for (int j = 0; j < n; j++) {
                const int ix = ix0 + j * CONV_S;
                dst[j] = row_inside && ix >= 0 && ix < w ? xp[iy * w + ix] : 0.0f;
            }
        }
    }
}

/*
 * dx += the columns' gradient folded back onto the image. Global
 * (ceil(W/16), H, C): each work-item gathers, for 16 neighbouring input pixels,
 * the taps that read them, in a fixed order, so the sum is the same bits on
 * every run (no atomics). Stride-1 taps that stay inside the columns go as float16.
 */
__kernel void conv2d_col2im(__global const float *col, const int col_off, __global float *dx, const int dx_off,
                            const int h, const int w, const int ho, const int wo, const int pad_t, const int pad_l)
{
    const int ix0 = get_global_id(0) * 16, iy = get_global_id(1), c = get_global_id(2);
    if (ix0 >= w || iy >= h) return;
    __global const float *cp = col + col_off + c * CONV_K * CONV_K * ho * wo;
    __global float *dp = dx + dx_off + (c * h + iy) * w + ix0;
    const int n = min(16, w - ix0);
    float sum[16];
    for (int j = 0; j < 16; j++) sum[j] = 0.0f;
#pragma unroll
    for (int ky = 0; ky < CONV_K; ky++) {
        const int ty = iy + pad_t - ky; /* = oy * stride for the output row that reads iy with tap ky */
        if (ty < 0 || ty % CONV_S || ty / CONV_S >= ho) continue;
        __global const float *rp = cp + (ky * CONV_K * ho + ty / CONV_S) * wo; /* tap (ky, 0), output row oy */
#pragma unroll
        for (int kx = 0; kx < CONV_K; kx++) {
            __global const float *tp = rp + kx * ho * wo;
            const int tx0 = ix0 + pad_l - kx;
            if (CONV_S == 1 && n == 16 && tx0 >= 0 && tx0 + 16 <= wo) {
                vstore16(vload16(0, sum) + vload16(0, tp + tx0), 0, sum);
                continue;
            }
            for (int j = 0; j < n; j++) {
                const int tx = tx0 + j;
                if (tx >= 0 && tx % CONV_S == 0 && tx / CONV_S < wo) sum[j] += tp[tx / CONV_S];
            }
        }
    }
    if (n == 16) {
        vstore16(vload16(0, dp) + vload16(0, sum), 0, dp);
        return;
    }
    for (int j = 0; j < n; j++) dp[j] += sum[j];
}

/* y[n][c][i] += b[c]. Global (Ho*Wo, Co, N). */
__kernel void conv2d_bias_add(__global float *y, const int y_off, __global const float *b, const int b_off,
                              const int channels, const int hw)
{
    const int i = get_global_id(0), c = get_global_id(1), n = get_global_id(2);
    if (i >= hw || c >= channels) return;
    y[y_off + (n * channels + c) * hw + i] += b[b_off + c];
}

/*
 * db[c] += the sum of dy over batch and pixels. One work-group per channel,
 * local size a power of two <= 64; a fixed tree keeps the result bitwise stable.
 */
__kernel void conv2d_bias_backward(__global const float *dy, const int dy_off, __global float *db, const int db_off,
                                   const int n, const int channels, const int hw)
{
    __local float part[64];
    const int c = get_group_id(0), lid = get_local_id(0), wg = get_local_size(0);
    float sum = 0.0f;
    for (int b = 0; b < n; b++) {
        __global const float *p = dy + dy_off + (b * channels + c) * hw;
        for (int i = lid; i < hw; i += wg) sum += p[i];
    }
    part[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int step = wg / 2; step > 0; step /= 2) {
        if (lid < step) part[lid] += part[lid + step];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) db[db_off + c] += part[0];
}

/*
 * The weights as conv2d_tiled reads them: wt[(i*K*K + t)*cop + o] for output
 * channel o (cop = Co rounded up to 16, zeros past Co), input channel i, tap t,
 * taken from w_off + o*w_o + i*w_i + t0 + t*w_t: w as stored, or for a data
 * gradient flipped with its channel axes swapped. Global (cop, K*K, Ci).
 */
__kernel void conv2d_direct_weights(__global const float *w, const int w_off, __global float *wt, const int wt_off,
                                    const int co, const int cop, const int w_o, const int w_i, const int t0,
                                    const int w_t)
{
    const int o = get_global_id(0), t = get_global_id(1), i = get_global_id(2);
    if (o >= cop || t >= CONV_K * CONV_K) return;
    wt[wt_off + (i * CONV_K * CONV_K + t) * cop + o] = o < co ? w[w_off + o * w_o + i * w_i + t0 + t * w_t] : 0.0f;
}

/*
 * dy of one image made pixel-major for conv2d_direct_dw: t[p*cop + o] =
 * dy[o][p], zeros for o >= Co (cop = Co rounded up to 16). Global
 * (ceil(Ho*Wo/16), cop/16): a work-item moves 16 pixels x 16 channels.
 */
__kernel void conv2d_pixels_major(__global const float *dy, const int dy_off, __global float *t, const int t_off,
                                  const int co, const int cop, const int hw)
{
    const int p0 = get_global_id(0) * 16, o0 = get_global_id(1) * 16;
    if (p0 >= hw) return;
    const int n = min(16, hw - p0);
    float16 r[16]; /* r[o]: channel o0 + o at pixels p0..; transposed, r[j]: pixel p0 + j's channels */
#pragma unroll
    for (int o = 0; o < 16; o++) r[o] = o0 + o < co ? cn_row16(dy + dy_off + (o0 + o) * hw, p0, hw) : (float16)0.0f;
    cn_transpose16(r);
#pragma unroll
    for (int j = 0; j < 16; j++)
        if (j < n) vstore16(r[j], 0, t + t_off + (p0 + j) * cop + o0);
}

#ifndef DW_VW
#define DW_VW 16 /* conv2d_direct_dw: lanes of its vectors, 8 or 16 */
#endif
#ifndef DW_OB
#define DW_OB 1 /* conv2d_direct_dw: vectors of output channels per work-item */
#endif
#define DW_KK (CONV_K * CONV_K)
#if DW_VW == 8
#define dw_vec float8
#define dw_load vload8
#define dw_store vstore8
#else
#define dw_vec float16
#define dw_load vload16
#define dw_store vstore16
#endif

/*
 * One output pixel's share of dw: acc[b*K*K + tap] += x at the tap (a
 * broadcast) * d, the pixel's dy for the item's channels DW_VW*b .. +DW_VW-1.
 * row0 is x's row iy0 (the tap row ky = 0), ix0 the tap column kx = 0.
 * `checked` (a constant after inlining) zeroes the taps outside the image.
 */
CN_INLINE void dw_pixel(dw_vec *acc, __global const float *d,
                        __global const float *x, const int iy0, const int ix0,
                        const int h, const int w, const int checked)
{
    dw_vec dv[DW_OB];
#pragma unroll
    for (int b = 0; b < DW_OB; b++) dv[b] = dw_load(b, d);
#pragma unroll
    for (int ky = 0; ky < CONV_K; ky++) {
        const int iy = iy0 + ky;
#pragma unroll
        for (int kx = 0; kx < CONV_K; kx++) {
            const int ix = ix0 + kx;
            const float xv = !checked || (iy >= 0 && iy < h && ix >= 0 && ix < w) ? x[iy * w + ix] : 0.0f;
#pragma unroll
            for (int b = 0; b < DW_OB; b++)
                acc[b * DW_KK + ky * CONV_K + kx] = fma((dw_vec)xv, dv[b], acc[b * DW_KK + ky * CONV_K + kx]);
        }
    }
}

/*
 * The weight gradient of a stride-1 conv with few output channels, for CPUs,
 * without columns: part[s][o][i][tap] = the sum over output rows
 * s*rows..s*rows+rows-1 of dy[o] * x[i] shifted by the tap, with dy
 * pixel-major (conv2d_pixels_major, rows of cop floats). Global (C, row
 * chunks, cop / (DW_VW*DW_OB)), local (1,1,1): a work-item keeps DW_VW*DW_OB
 * output channels x K*K taps of one input channel in vector accumulators
 * (how many fit the registers depends on the CPU: the host measures); each
 * pixel's dy vector feeds K*K multiply-adds with x broadcast. Pixels whose
 * taps all lie inside the image skip the checks.
 */
__kernel void conv2d_direct_dw(__global const float *x, const int x_off, __global const float *dyt, const int dyt_off,
                               __global float *part, const int part_off, const int c, const int h, const int w,
                               const int co, const int ho, const int wo, const int pad_t, const int pad_l,
                               const int rows, const int cop)
{
    const int i = get_global_id(0), s = get_global_id(1), o0 = get_global_id(2) * DW_VW * DW_OB;
    if (i >= c || s * rows >= ho) return;
    dw_vec acc[DW_OB * DW_KK];
#pragma unroll
    for (int j = 0; j < DW_OB * DW_KK; j++) acc[j] = (dw_vec)0.0f;
    __global const float *xp = x + x_off + i * h * w;
    /* output columns whose K taps all lie inside the row: lo <= ox < hi */
    const int lo = min(wo, pad_l), hi = max(lo, min(wo, w - CONV_K + 1 + pad_l));
    const int r1 = min(ho, (s + 1) * rows);
    for (int oy = s * rows; oy < r1; oy++) {
        const int iy0 = oy - pad_t;
        __global const float *dp = dyt + dyt_off + oy * wo * cop + o0;
        if (iy0 < 0 || iy0 + CONV_K > h) {
            for (int ox = 0; ox < wo; ox++) dw_pixel(acc, dp + ox * cop, xp, iy0, ox - pad_l, h, w, 1);
            continue;
        }
        for (int ox = 0; ox < lo; ox++) dw_pixel(acc, dp + ox * cop, xp, iy0, ox - pad_l, h, w, 1);
        for (int ox = lo; ox < hi; ox++) dw_pixel(acc, dp + ox * cop, xp, iy0, ox - pad_l, h, w, 0);
        for (int ox = hi; ox < wo; ox++) dw_pixel(acc, dp + ox * cop, xp, iy0, ox - pad_l, h, w, 1);
    }
    __global float *pp = part + part_off + (s * co * c + i) * DW_KK;
    for (int b = 0; b < DW_OB; b++)
        for (int t = 0; t < DW_KK; t++) {
            float v[DW_VW];
            dw_store(acc[b * DW_KK + t], 0, v);
            for (int l = 0; l < DW_VW; l++) {
                const int o = o0 + b * DW_VW + l;
                if (o < co) pp[o * c * DW_KK + t] = v[l];
            }
        }
}

#define TILE_PX 32  /* conv2d_tiled: output pixels per work-item (two float16) */
#ifndef TILE_OB
#define TILE_OB 8 /* conv2d_tiled: output channels per pass, 2*TILE_OB float16 accumulators (1, 2, 4 or 8:
                     the host passes the size measured fastest on the device) */
#endif
#define TILE_KC 128 /* conv2d_tiled: column rows per pass (16 KiB, kept in L1 across the passes) */

/*
 * A conv for CPUs whose columns never leave the cache: out (N,Co,Ho,Wo) (+)=
 * in (N,Ci,H,W) (*) weights laid out by conv2d_direct_weights (wt[k*cop + o],
 * k = (i*K + ky)*K + kx). Global (ceil(Ho*Wo/32), N), local (1,1); `cols`
 * holds slab*K*K x 32 + cop x 32 floats (local memory is a per-thread buffer
 * on CPUs). For each slab of input channels, each work-item writes the im2col
 * columns of its 32 output pixels there, then multiplies them by the weights
 * in blocks of 128 column rows x TILE_OB output channels, keeping the running sums
 * of all Co x 32 outputs after the columns between blocks: every pair of
 * column vectors loaded feeds 2*TILE_OB multiply-adds, and a block's columns stay in
 * L1 while all output channels pass over them. Stride 1; 32 pixels within one
 * row take whole rows of x. Written outputs get the epilogue (cl/common.cl).
 */
__kernel void conv2d_tiled(__global const float *in, const int in_off, __global const float *wt, const int wt_off,
                           __global float *out, const int out_off, const int ci, const int h, const int w,
                           const int co, const int ho, const int wo, const int pad_t, const int pad_l,
                           const int accumulate, const int slab, __local float *cols, __global const float *ep,
                           const int ep_off, const int act)
{
    const int p0 = get_global_id(0) * TILE_PX, img = get_global_id(1), hw = ho * wo;
    if (p0 >= hw) return;
    ep += ep_off;
    const int kk = ci * CONV_K * CONV_K, cop = (co + 15) / 16 * 16, oy0 = p0 / wo, ox0 = p0 % wo;
    const int rows = ox0 + TILE_PX <= wo; /* the 32 pixels lie in one output row */
    __local float *acct = cols + slab * CONV_K * CONV_K * TILE_PX; /* cop x 32 running sums */
    const int n = min(TILE_PX, hw - p0);
    for (int c0 = 0; c0 < ci; c0 += slab) {
        const int c1 = min(ci, c0 + slab), kb = c0 * CONV_K * CONV_K;
        for (int i = c0; i < c1; i++) {
            __global const float *xp = in + in_off + (img * ci + i) * h * w;
            for (int ky = 0; ky < CONV_K; ky++)
                for (int kx = 0; kx < CONV_K; kx++) {
                    __local float *dst = cols + (((i - c0) * CONV_K + ky) * CONV_K + kx) * TILE_PX;
                    if (rows) {
                        const int iy = oy0 - pad_t + ky, ix = ox0 - pad_l + kx;
                        const int inside = iy >= 0 && iy < h;
                        vstore16(inside ? cn_row16(xp + iy * w, ix, w) : (float16)0.0f, 0, dst);
                        vstore16(inside ? cn_row16(xp + iy * w, ix + 16, w) : (float16)0.0f, 1, dst);
                        continue;
                    }
                    for (int j = 0; j < TILE_PX; j++) {
                        const int p = p0 + j, iy = p / wo - pad_t + ky, ix = p % wo - pad_l + kx;
                        dst[j] = p < hw && iy >= 0 && iy < h && ix >= 0 && ix < w ? xp[iy * w + ix] : 0.0f;
                    }
                }
        }
        for (int k0 = kb; k0 < c1 * CONV_K * CONV_K; k0 += TILE_KC) {
            const int k1 = min(c1 * CONV_K * CONV_K, k0 + TILE_KC);
            for (int o0 = 0; o0 < co; o0 += TILE_OB) {
                float16 a0[TILE_OB], a1[TILE_OB];
#pragma unroll
                for (int o = 0; o < TILE_OB; o++) {
                    a0[o] = k0 ? vload16(0, acct + (o0 + o) * TILE_PX) : (float16)0.0f;
                    a1[o] = k0 ? vload16(1, acct + (o0 + o) * TILE_PX) : (float16)0.0f;
                }
                __global const float *wk = wt + wt_off + k0 * cop + o0;
                for (int k = k0; k < k1; k++, wk += cop) {
                    __local const float *cp = cols + (k - kb) * TILE_PX;
                    const float16 c0v = vload16(0, cp), c1v = vload16(1, cp);
#pragma unroll
                    for (int o = 0; o < TILE_OB; o++) {
                        a0[o] = fma((float16)wk[o], c0v, a0[o]);
                        a1[o] = fma((float16)wk[o], c1v, a1[o]);
                    }
                }
                if (k1 < kk) {
#pragma unroll
                    for (int o = 0; o < TILE_OB; o++) {
                        vstore16(a0[o], 0, acct + (o0 + o) * TILE_PX);
                        vstore16(a1[o], 1, acct + (o0 + o) * TILE_PX);
                    }
                    continue;
                }
                for (int o = 0; o < TILE_OB && o0 + o < co; o++) {
                    __global float *yp = out + out_off + (img * co + o0 + o) * hw + p0;
                    const int ch = o0 + o;
                    if (n == TILE_PX) {
                        vstore16(accumulate ? vload16(0, yp) + a0[o] : cn_epilogue16(a0[o], ep, ch, act), 0, yp);
                        vstore16(accumulate ? vload16(1, yp) + a1[o] : cn_epilogue16(a1[o], ep, ch, act), 1, yp);
                        continue;
                    }
                    float v[TILE_PX];
                    vstore16(a0[o], 0, v);
                    vstore16(a1[o], 1, v);
                    for (int j = 0; j < n; j++) yp[j] = accumulate ? yp[j] + v[j] : cn_epilogue(v[j], ep, ch, act);
                }
            }
        }
    }
}
