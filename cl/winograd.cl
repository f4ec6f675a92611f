/*
 * winograd.cl - 3x3 stride-1 convolutions with one pixel of padding on every
 * side as Winograd F(2x2, 3x3) (Lavin & Gray 2015): each 2x2 block of outputs
 * comes from a 4x4 block of input, and the 9*4 multiply-adds per input channel
 * become 16 products of transformed values, done as 16 GEMMs over channels by
 * src/ops/conv.c:
 *
 *   U[xi] = (G g G^T)[xi]     (weights, xi = 0..15 the position in the 4x4)
 *   V[xi] = (B^T d B)[xi]     (every 4x4 input tile d, two pixels apart)
 *   M[xi] = U[xi] * V[xi]     (Co x C times C x tiles: cn_gemm, batch 16)
 *   y     = A^T M A           (the 2x2 outputs of each tile)
 *
 *   B^T = | 1  0 -1  0 |   G = | 1    0    0  |   A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |       | 1/2  1/2  1/2|         | 0  1 -1 -1 |
 *         | 0 -1  1  0 |       | 1/2 -1/2  1/2|
 *         | 0  1  0 -1 |       | 0    0    1  |
 *
 * The data gradient is the same conv of dy with each kernel flipped and the
 * channel roles swapped (flip = 1). Layouts: U (16, rows, cols) with rows the
 * conv's output channels; V (16, C, images * tiles) and M (16, Co, images *
 * tiles), each image's tiles row-major, the images of one GEMM side by side.
 * winograd_fused does all of it in one kernel for CPUs, V and M of 32 tiles at
 * a time in local memory, never written out.
 */

#define WG_TILES 16 /* tiles per work-item of the input and output transforms: one float16 per plane */

/*
 * The first n lanes of p as a vector (the rest zero): one vector load for all
 * 16, or for the first 8 where a row has 8-15 tiles left.
 */
static float16 wg_load_lanes(__global const float *p, const int n)
{
    if (n == WG_TILES) return vload16(0, p);
    float lane[WG_TILES];
    int l = 0;
    if (n >= 8) {
        vstore8(vload8(0, p), 0, lane);
        l = 8;
    }
    for (; l < WG_TILES; l++) lane[l] = l < n ? p[l] : 0.0f;
    return vload16(0, lane);
}

/*
 * U from w (Co, C, 3, 3). Forward: U[xi][o][i]; flip: the conv from dy to dx,
 * U[xi][i][o] with the kernel rotated by 180 degrees. For winograd_fused
 * (fused = 1) each plane is transposed instead, the conv's output channels
 * innermost and rounded up to 16 (the host zeroes the rest). A work-item
 * transforms 16 filters side by side, neighbours along the channel that is
 * innermost in U (o when flip != fused, else i), so that every plane of U gets
 * one vector store: with a filter per work-item, decoder.0's 0.5M filters took
 * a fifth of its forward on a CPU, and through the flipped U's scattered
 * stores over a third of its data gradient.
 * Global (ceil(Co/16), C) when along o, else (ceil(C/16), Co).
 */
__kernel void winograd_weights(__global const float *w, const int w_off, __global float *u, const int u_off,
                               const int co, const int ci, const int flip, const int fused)
{
    float16 k[9];
    size_t at, step;
    const int lanes = cn_wino_filters16(w + w_off, co, ci, flip, fused, k, &at, &step);
    if (!lanes) return;
    float16 t0[3], t1[3], t2[3], t3[3]; /* G g: four rows of three */
    for (int c = 0; c < 3; c++) {
        t0[c] = k[c];
        t1[c] = 0.5f * (k[c] + k[3 + c] + k[6 + c]);
        t2[c] = 0.5f * (k[c] - k[3 + c] + k[6 + c]);
        t3[c] = k[6 + c];
    }
    __global float *out = u + u_off + at;
    for (int a = 0; a < 4; a++) {
        const float16 *t = a == 0 ? t0 : a == 1 ? t1 : a == 2 ? t2 : t3;
        cn_store_lanes16(out + (4 * a + 0) * step, t[0], lanes);
        cn_store_lanes16(out + (4 * a + 1) * step, 0.5f * (t[0] + t[1] + t[2]), lanes);
        cn_store_lanes16(out + (4 * a + 2) * step, 0.5f * (t[0] - t[1] + t[2]), lanes);
        cn_store_lanes16(out + (4 * a + 3) * step, t[2], lanes);
    }
}

/*
 * Row y of the image from column x0, 34 floats (zeros outside the image):
 * tile l of a block starting at x0 + 1 covers r[2l .. 2l+3].
 */
static void wg_row(__global const float *xp, int y, int x0, int h, int w, float *r)
{
    if (y < 0 || y >= h) {
        for (int j = 0; j < 2 * WG_TILES + 2; j++) r[j] = 0.0f;
        return;
    }
    __global const float *row = xp + y * w;
    if (x0 >= 0 && x0 + 2 * WG_TILES + 2 <= w) {
        vstore16(vload16(0, row + x0), 0, r);
        vstore16(vload16(1, row + x0), 1, r);
        r[32] = row[x0 + 32], r[33] = row[x0 + 33];
        return;
    }
    for (int j = 0; j < 2 * WG_TILES + 2; j++) r[j] = x0 + j >= 0 && x0 + j < w ? row[x0 + j] : 0.0f;
}

/*
 * The 16 planes e[4a + b] of B^T d B for 16 neighbouring tiles of one channel
 * xp (H, W), tile row ty, tiles tx0.. (lane l: tile tx0 + l, starting at pixel
 * (2ty - 1, 2tx0 + 2l - 1)); zeros stand for the padding.
 */
CN_INLINE void wg_tiles16(__global const float *xp, int ty, int tx0, int h, int w, float16 *e)
{
    float16 d[4][4]; /* d[row][col] */
    for (int i = 0; i < 4; i++) {
        float r[2 * WG_TILES + 2];
        wg_row(xp, 2 * ty - 1 + i, 2 * tx0 - 1, h, w, r);
        const float16 lo = vload16(0, r), hi = vload16(1, r), lo2 = vload16(0, r + 2), hi2 = vload16(1, r + 2);
        d[i][0] = (float16)(lo.even, hi.even);
        d[i][1] = (float16)(lo.odd, hi.odd);
        d[i][2] = (float16)(lo2.even, hi2.even);
        d[i][3] = (float16)(lo2.odd, hi2.odd);
    }
    for (int j = 0; j < 4; j++) { /* B^T d, column by column */
        const float16 t0 = d[0][j] - d[2][j], t1 = d[1][j] + d[2][j], t2 = d[2][j] - d[1][j], t3 = d[1][j] - d[3][j];
        d[0][j] = t0, d[1][j] = t1, d[2][j] = t2, d[3][j] = t3;
    }
    for (int a = 0; a < 4; a++) { /* then times B, row by row */
        e[4 * a + 0] = d[a][0] - d[a][2];
        e[4 * a + 1] = d[a][1] + d[a][2];
        e[4 * a + 2] = d[a][2] - d[a][1];
        e[4 * a + 3] = d[a][1] - d[a][3];
    }
}

/*
 * A^T m A for 16 neighbouring tiles (m[4a + b], lane l: tile tx0 + l) written
 * (accumulate = 0) or added into channel yp (H, W): the 2 x 32 outputs of
 * tile row ty that lie inside the image. Written outputs get the epilogue of
 * channel ch (cl/common.cl; act 0: none).
 */
CN_INLINE void wg_untile16(const float16 *m, __global float *yp, int ty, int tx0, int h, int w, int accumulate,
                           __global const float *ep, int ch, int act)
{
    float16 s[2][4]; /* A^T M: two rows of four */
    for (int b = 0; b < 4; b++) {
        s[0][b] = m[b] + m[4 + b] + m[8 + b];
        s[1][b] = m[4 + b] - m[8 + b] - m[12 + b];
    }
    for (int i = 0; i < 2; i++) {
        const int py = 2 * ty + i;
        if (py >= h) break;
        /* times A: even and odd output columns, interleaved into one row */
        const float16 ev = s[i][0] + s[i][1] + s[i][2], od = s[i][1] - s[i][2] - s[i][3];
        float row[2 * WG_TILES], e[WG_TILES], q[WG_TILES];
        vstore16(ev, 0, e);
        vstore16(od, 0, q);
        for (int l = 0; l < WG_TILES; l++) row[2 * l] = e[l], row[2 * l + 1] = q[l];
        __global float *dst = yp + py * w + 2 * tx0;
        const int cols = min(2 * WG_TILES, w - 2 * tx0);
        if (cols == 2 * WG_TILES) {
            const float16 r0 = vload16(0, row), r1 = vload16(1, row);
            if (accumulate) {
                vstore16(vload16(0, dst) + r0, 0, dst);
                vstore16(vload16(1, dst) + r1, 1, dst);
            } else {
                cn_stream16(cn_epilogue16(r0, ep, ch, act), dst);
                cn_stream16(cn_epilogue16(r1, ep, ch, act), dst + 16);
            }
            continue;
        }
        for (int j = 0; j < cols; j++) dst[j] = accumulate ? dst[j] + row[j] : cn_epilogue(row[j], ep, ch, act);
    }
}

/*
 * V from `images` consecutive images of x (C, H, W), their tiles side by side
 * in each row of V (columns = images * tiles), so that one GEMM covers them
 * all. Global (ceil(tw/16), th, images * C): work-item (bx, ty, img * C + c)
 * transforms 16 neighbouring tiles of channel c, as float16 lanes of tiles,
 * so every one of the 16 planes gets whole vector stores.
 */
__kernel void winograd_input(__global const float *x, const int x_off, __global float *v, const int v_off,
                             const int c, const int h, const int w, const int th, const int tw, const int images)
{
    const int tx0 = get_global_id(0) * WG_TILES, ty = get_global_id(1), img = get_global_id(2) / c,
              ch = get_global_id(2) % c;
    if (tx0 >= tw || ty >= th || img >= images) return;
    float16 e[16];
    wg_tiles16(x + x_off + ((size_t)img * c + ch) * h * w, ty, tx0, h, w, e);
    const size_t tiles = (size_t)th * tw, cols = images * tiles, step = (size_t)c * cols;
    __global float *out = v + v_off + ch * cols + img * tiles + ty * tw + tx0;
    const int n = min(WG_TILES, tw - tx0);
    for (int q = 0; q < 16; q++) cn_store_lanes16(out + q * step, e[q], n);
}

/*
 * y = A^T M A for `images` consecutive images of y (Co, H, W), written with
 * the epilogue (accumulate = 0) or added; M's rows hold their tiles side by
 * side, as V's.
 * Global (ceil(tw/16), th, images * Co): work-item (bx, ty, img * Co + o)
 * writes the outputs of 16 neighbouring tiles of channel o.
 */
__kernel void winograd_output(__global const float *m, const int m_off, __global float *y, const int y_off,
                              const int co, const int h, const int w, const int th, const int tw, const int images,
                              const int accumulate, __global const float *ep, const int ep_off, const int act)
{
    const int tx0 = get_global_id(0) * WG_TILES, ty = get_global_id(1), img = get_global_id(2) / co,
              o = get_global_id(2) % co;
    if (tx0 >= tw || ty >= th || img >= images) return;
    const size_t tiles = (size_t)th * tw, cols = images * tiles, step = (size_t)co * cols;
    __global const float *in = m + m_off + o * cols + img * tiles + ty * tw + tx0;
    const int n = min(WG_TILES, tw - tx0);
    float16 r[16];
    for (int q = 0; q < 16; q++) r[q] = wg_load_lanes(in + q * step, n);
    wg_untile16(r, y + y_off + ((size_t)img * co + o) * h * w, ty, tx0, h, w, accumulate, ep + ep_off, o, act);
}

#ifndef TILE_OB
#define TILE_OB 2 /* winograd_fused: output channels per pass, 2*TILE_OB float16 accumulators (the host passes
                     the size measured fastest for conv2d_tiled, whose inner loop this one copies) */
#endif
#define WF_TILES 32 /* winograd_fused: tiles per work-item (two float16 lanes of 16) */

/*
 * Winograd for CPUs with V and M never leaving the cache, as conv2d_tiled
 * keeps its columns: out (N,Co,H,W) (+)= in (N,Ci,H,W) (*) the kernels as U
 * (16, Ci, cop) (cop = Co rounded up to 16, zeros past Co). Global
 * (ceil(tw/32) * th, N, ceil(Co/group)), local (1,1,1): work-item (b, n, g)
 * computes output channels g*group.. (group a multiple of 16) of 32 tiles (one
 * tile row). `lm` holds 16 x slab x 32 floats of V and 16 x group x 32 of M
 * (local memory is a per-thread buffer on CPUs). For each slab of input
 * channels a work-item transforms its tiles into V, then for each of the 16
 * planes adds U * V into M, TILE_OB output channels by 32 tiles at a time, a
 * plane's V staying in L1 while the group's output channels pass; last, the
 * output transform of M straight into out (with the epilogue where written).
 * Against the unfused path, V and M cost no memory traffic; against
 * conv2d_tiled, 16 multiply-adds per tile and channel pair instead of 36.
 */
__kernel void winograd_fused(__global const float *x, const int x_off, __global const float *u, const int u_off,
                             __global float *out, const int out_off, const int ci, const int co, const int h,
                             const int w, const int slab, const int group, const int accumulate,
                             __local float *lm, __global const float *ep, const int ep_off, const int act)
{
    const int th = (h + 1) / 2, tw = (w + 1) / 2, blocks = (tw + WF_TILES - 1) / WF_TILES;
    const int b = get_global_id(0), img = get_global_id(1), og = get_global_id(2) * group;
    if (b >= blocks * th || og >= co) return;
    const int ty = b / blocks, tx0 = b % blocks * WF_TILES, cop = (co + 15) / 16 * 16, cog = min(group, co - og);
    __local float *v = lm, *acc = lm + 16 * slab * WF_TILES;
    __global const float *xi = x + x_off + (size_t)img * ci * h * w;
    for (int c0 = 0; c0 < ci; c0 += slab) {
        const int n = min(slab, ci - c0);
        for (int c = 0; c < n; c++)
            for (int part = 0; part < 2; part++) {
                float16 e[16];
                wg_tiles16(xi + (size_t)(c0 + c) * h * w, ty, tx0 + WG_TILES * part, h, w, e);
                for (int q = 0; q < 16; q++) vstore16(e[q], part, v + (q * slab + c) * WF_TILES);
            }
        for (int q = 0; q < 16; q++) {
            __local const float *vq = v + q * slab * WF_TILES;
            __local float *aq = acc + q * group * WF_TILES;
            for (int o0 = 0; o0 < cog; o0 += TILE_OB) {
                float16 a0[TILE_OB], a1[TILE_OB];
#pragma unroll
                for (int o = 0; o < TILE_OB; o++) {
                    a0[o] = c0 ? vload16(0, aq + (o0 + o) * WF_TILES) : (float16)0.0f;
                    a1[o] = c0 ? vload16(1, aq + (o0 + o) * WF_TILES) : (float16)0.0f;
                }
                __global const float *uk = u + u_off + ((size_t)q * ci + c0) * cop + og + o0;
                for (int c = 0; c < n; c++, uk += cop) {
                    const float16 v0 = vload16(0, vq + c * WF_TILES), v1 = vload16(1, vq + c * WF_TILES);
#pragma unroll
                    for (int o = 0; o < TILE_OB; o++) {
                        a0[o] = fma((float16)uk[o], v0, a0[o]);
                        a1[o] = fma((float16)uk[o], v1, a1[o]);
                    }
                }
#pragma unroll
                for (int o = 0; o < TILE_OB; o++) {
                    vstore16(a0[o], 0, aq + (o0 + o) * WF_TILES);
                    vstore16(a1[o], 1, aq + (o0 + o) * WF_TILES);
                }
            }
        }
    }
    __global float *yi = out + out_off + (size_t)img * co * h * w;
    for (int o = 0; o < cog; o++)
        for (int part = 0; part < 2 && tx0 + WG_TILES * part < tw; part++) {
            float16 m[16];
            for (int q = 0; q < 16; q++) m[q] = vload16(part, acc + (q * group + o) * WF_TILES);
            wg_untile16(m, yi + (size_t)(og + o) * h * w, ty, tx0 + WG_TILES * part, h, w, accumulate, ep + ep_off,
                        og + o, act);
        }
}

/*
 * The weight gradient's transform of dy: dM = A dy A^T, the 4x4 of each tile
 * from its 2 x 2 outputs' gradient (zero past the image), for `images`
 * consecutive images of dy (Co, H, W) into dm (16, Co, images * tiles), laid
 * out as V. Global (ceil(tw/16), th, images * Co): work-item (bx, ty, img * Co
 * + o) transforms 16 neighbouring tiles of channel o.
 *
 *   A = | 1  0 |
 *       | 1  1 |
 *       | 1 -1 |
 *       | 0 -1 |
 */
__kernel void winograd_dy(__global const float *dy, const int dy_off, __global float *dm, const int dm_off,
                          const int co, const int h, const int w, const int th, const int tw, const int images)
{
    const int tx0 = get_global_id(0) * WG_TILES, ty = get_global_id(1), img = get_global_id(2) / co,
              o = get_global_id(2) % co;
    if (tx0 >= tw || ty >= th || img >= images) return;
    __global const float *yp = dy + dy_off + ((size_t)img * co + o) * h * w;
    float16 ev[2], od[2]; /* even and odd columns of the tile rows' two output rows */
    for (int i = 0; i < 2; i++) {
        const int py = 2 * ty + i, x0 = 2 * tx0;
        float r[2 * WG_TILES];
        if (py < h && x0 + 2 * WG_TILES <= w) {
            vstore16(vload16(0, yp + py * w + x0), 0, r);
            vstore16(vload16(1, yp + py * w + x0), 1, r);
        } else {
            for (int j = 0; j < 2 * WG_TILES; j++) r[j] = py < h && x0 + j < w ? yp[py * w + x0 + j] : 0.0f;
        }
        const float16 lo = vload16(0, r), hi = vload16(1, r);
        ev[i] = (float16)(lo.even, hi.even);
        od[i] = (float16)(lo.odd, hi.odd);
    }
    /* A dy: four rows of two, then each row (p, q) times A^T: (p, p + q, p - q, -q) */
    const float16 p[4] = {ev[0], ev[0] + ev[1], ev[0] - ev[1], -ev[1]};
    const float16 q[4] = {od[0], od[0] + od[1], od[0] - od[1], -od[1]};
    const size_t tiles = (size_t)th * tw, cols = images * tiles, step = (size_t)co * cols;
    __global float *out = dm + dm_off + o * cols + img * tiles + ty * tw + tx0;
    const int n = min(WG_TILES, tw - tx0);
    for (int a = 0; a < 4; a++) {
        const float16 e[4] = {p[a], p[a] + q[a], p[a] - q[a], -q[a]};
        for (int b = 0; b < 4; b++) cn_store_lanes16(out + (4 * a + b) * step, e[b], n);
    }
}

/*
 * dw (Co, C, 3, 3) += G^T dU G, dU (16, Co, C) the sum over tiles of dM * V
 * (the products' gradient, 16 GEMMs on the host). A work-item takes 16
 * neighbouring input channels as vector lanes, as winograd_weights does.
 * Global (ceil(C/16), Co).
 */
__kernel void winograd_weights_grad(__global const float *du, const int du_off, __global float *dw, const int dw_off,
                                    const int co, const int ci)
{
    const int i = get_global_id(0) * 16, o = get_global_id(1), lanes = min(16, ci - i);
    if (lanes <= 0 || o >= co) return;
    const size_t step = (size_t)co * ci;
    __global const float *g = du + du_off + o * ci + i;
    float16 d[16], t[3][4]; /* t = G^T dU: three rows of four */
    for (int xi = 0; xi < 16; xi++) {
        if (lanes == 16) {
            d[xi] = vload16(0, g + xi * step);
            continue;
        }
        float v[16];
        for (int j = 0; j < 16; j++) v[j] = g[xi * step + min(j, lanes - 1)];
        d[xi] = vload16(0, v);
    }
    for (int b = 0; b < 4; b++) {
        t[0][b] = d[b] + 0.5f * (d[4 + b] + d[8 + b]);
        t[1][b] = 0.5f * (d[4 + b] - d[8 + b]);
        t[2][b] = 0.5f * (d[4 + b] + d[8 + b]) + d[12 + b];
    }
    float r[9][16]; /* then times G: tap (k, x) of the 16 filters */
    for (int k = 0; k < 3; k++) {
        vstore16(t[k][0] + 0.5f * (t[k][1] + t[k][2]), 0, r[3 * k]);
        vstore16(0.5f * (t[k][1] - t[k][2]), 0, r[3 * k + 1]);
        vstore16(0.5f * (t[k][1] + t[k][2]) + t[k][3], 0, r[3 * k + 2]);
    }
    __global float *out = dw + dw_off + (o * ci + i) * 9; /* the lanes' filters follow each other */
    for (int e = 0; e < 9 * lanes; e++) out[e] += r[e % 9][e / 9];
}
