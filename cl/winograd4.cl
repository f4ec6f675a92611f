/*
 * winograd4.cl - the unfused Winograd of cl/winograd.cl with 4 x 4 output
 * tiles, F(4x4, 3x3) (Lavin & Gray 2015), for 3x3 stride-1 convs with one
 * pixel of padding: each 4x4 block of outputs comes from a 6x6 block of input,
 * so an input channel costs 36 products per tile instead of 16 * 9, the 36
 * GEMMs (Co x C times C x tiles) do 0.56x the multiply-adds of F(2x2, 3x3)'s 16,
 * and V holds 2.25 floats a pixel instead of 4. The price is U, 36 floats a
 * filter instead of 16, and a larger rounding error (the points 0, +-1, +-2).
 *
 *   B^T = | 4  0 -5  0  1  0 |  G = |  1/4    0     0   |  A^T = | 1  1  1  1  1  0 |
 *         | 0 -4 -4  1  1  0 |      | -1/6  -1/6  -1/6  |        | 0  1 -1  2 -2  0 |
 *         | 0  4 -4 -1  1  0 |      | -1/6   1/6  -1/6  |        | 0  1  1  4  4  0 |
 *         | 0 -2 -1  2  1  0 |      |  1/24  1/12  1/6  |        | 0  1 -1  8 -8  1 |
 *         | 0  2 -1 -2  1  0 |      |  1/24 -1/12  1/6  |
 *         | 0  4  0 -5  0  1 |      |  0     0     1    |
 *
 * Layouts as in winograd.cl: U (36, rows, cols), V (36, C, images * tiles), M
 * (36, Co, images * tiles), column img * tiles + ty * tw + tx. A work-item of the
 * transforms takes 16 consecutive columns, one float16 lane each, whatever
 * tile rows and images they fall in: the maps where this path pays are small
 * (16 x 16 at 4 x 256: 4 tiles a row), and work-items along one tile row would
 * leave most lanes empty. Where the 16 lie in one tile row (maps of >= 64
 * pixels a row) they read and write whole rows of pixels as vectors instead
 * of lane by lane.
 */

/* G g for the three values g0..g2 of one row or column of 16 kernels: six values. */
CN_INLINE void w4_g(const float16 g0, const float16 g1, const float16 g2, float16 *u)
{
    u[0] = 0.25f * g0;
    u[1] = (g0 + g1 + g2) * (-1.0f / 6.0f);
    u[2] = (g0 - g1 + g2) * (-1.0f / 6.0f);
    u[3] = g0 * (1.0f / 24.0f) + g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
    u[4] = g0 * (1.0f / 24.0f) - g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
    u[5] = g2;
}

/* B^T d in place for the six values e[0], e[s], .., e[5s]. */
CN_INLINE void w4_bt(float16 *e, const int s)
{
    const float16 d0 = e[0], d1 = e[s], d2 = e[2 * s], d3 = e[3 * s], d4 = e[4 * s], d5 = e[5 * s];
    e[0] = 4.0f * d0 - 5.0f * d2 + d4;
    e[s] = d3 + d4 - 4.0f * (d1 + d2);
    e[2 * s] = 4.0f * (d1 - d2) - d3 + d4;
    e[3 * s] = 2.0f * (d3 - d1) - d2 + d4;
    e[4 * s] = 2.0f * (d1 - d3) - d2 + d4;
    e[5 * s] = 4.0f * d1 - 5.0f * d3 + d5;
}

/* A^T m for the six values e[0], e[s], .., e[5s]: the four results replace the first four. */
CN_INLINE void w4_at(float16 *e, const int s)
{
    const float16 p12 = e[s] + e[2 * s], d12 = e[s] - e[2 * s], p34 = e[3 * s] + e[4 * s], d34 = e[3 * s] - e[4 * s];
    const float16 m0 = e[0], m5 = e[5 * s];
    e[0] = m0 + p12 + p34;
    e[s] = d12 + 2.0f * d34;
    e[2 * s] = p12 + 4.0f * p34;
    e[3 * s] = d12 + 8.0f * d34 + m5;
}

/* A y for the four values e[0], e[s], e[2s], e[3s]: six values, into e[0], e[s], .., e[5s]. */
CN_INLINE void w4_a(float16 *e, const int s)
{
    const float16 y0 = e[0], y1 = e[s], y2 = e[2 * s], y3 = e[3 * s];
    const float16 p02 = y0 + y2, p13 = y1 + y3, q02 = y0 + 4.0f * y2, q13 = 2.0f * y1 + 8.0f * y3;
    e[0] = y0;
    e[s] = p02 + p13;
    e[2 * s] = p02 - p13;
    e[3 * s] = q02 + q13;
    e[4 * s] = q02 - q13;
    e[5 * s] = y3;
}

/* G^T u for six values u0..u5 of 16 lanes: three values, into r[0], r[s], r[2s]. */
CN_INLINE void w4_gt(const float16 u0, const float16 u1, const float16 u2, const float16 u3, const float16 u4,
                     const float16 u5, float16 *r, const int s)
{
    const float16 p12 = u1 + u2, d12 = u1 - u2, p34 = u3 + u4, d34 = u3 - u4;
    r[0] = 0.25f * u0 - p12 * (1.0f / 6.0f) + p34 * (1.0f / 24.0f);
    r[s] = d12 * (-1.0f / 6.0f) + d34 * (1.0f / 12.0f);
    r[2 * s] = (p34 - p12) * (1.0f / 6.0f) + u5;
}

/*
 * U from w (Co, C, 3, 3). Forward: U[xi][o][i]; flip: the conv from dy to dx,
 * U[xi][i][o] with each kernel rotated by 180 degrees. For winograd4_fused
 * (fused = 1) each plane is transposed instead, the conv's output channels
 * innermost and rounded up to 16 (the host zeroes the rest), as in
 * winograd_weights. A work-item transforms 16 filters side by side,
 * neighbours along the innermost channel of U (o when flip != fused, else i),
 * so that each of the 36 planes gets one vector store.
 * Global (ceil(Co/16), C) when along o, else (ceil(C/16), Co).
 */
__kernel void winograd4_weights(__global const float *w, const int w_off, __global float *u, const int u_off,
                                const int co, const int ci, const int flip, const int fused)
{
    float16 k[9];
    size_t at, step;
    const int lanes = cn_wino_filters16(w + w_off, co, ci, flip, fused, k, &at, &step);
    if (!lanes) return;
    float16 t[3][6]; /* G g, column by column */
    for (int c = 0; c < 3; c++) w4_g(k[c], k[3 + c], k[6 + c], t[c]);
    __global float *out = u + u_off + at;
    for (int a = 0; a < 6; a++) { /* then times G^T, row by row */
        float16 r[6];
        w4_g(t[0][a], t[1][a], t[2][a], r);
        for (int b = 0; b < 6; b++) cn_store_lanes16(out + (6 * a + b) * step, r[b], lanes);
    }
}

/*
 * Whether the 16 columns from col0 are 16 tiles side by side in one tile row
 * of one image (maps of >= 64 pixels a row): their pixel rows then load as
 * whole vectors instead of lane by lane.
 */
CN_INLINE int w4_one_row(const int col0, const int cols, const int tw)
{
    return col0 + 16 <= cols && col0 % tw + 16 <= tw;
}

/*
 * The first n (4 or 6) taps t[0..n) of 16 tiles 4 values apart in a row r of
 * 64 values as four vectors (and, for n = 6, two more in r[4]): t[j] lane l
 * = r[4l + j]. Swizzles of whole vectors, not a gather of 16 lanes per tap;
 * the vectors stay in registers (a row staged in private memory was written
 * in pieces and read back whole, which stalled each load).
 */
CN_INLINE void w4_taps(const float16 *r, float16 *t, const int n)
{
    const float16 a = r[0], b = r[1], c = r[2], d = r[3];
    t[0] = (float16)(a.s048c, b.s048c, c.s048c, d.s048c);
    t[1] = (float16)(a.s159d, b.s159d, c.s159d, d.s159d);
    t[2] = (float16)(a.s26ae, b.s26ae, c.s26ae, d.s26ae);
    t[3] = (float16)(a.s37bf, b.s37bf, c.s37bf, d.s37bf);
    if (n < 6) return;
    const float2 e = r[4].s01;
    t[4] = (float16)(a.s48c, b.s048c, c.s048c, d.s048c, e.s0);
    t[5] = (float16)(a.s59d, b.s159d, c.s159d, d.s159d, e.s1);
}

/* The 16 * n pixels of row y of plane xp from column x0 as n vectors r, zeros outside the plane. */
CN_INLINE void w4_row(__global const float *xp, const int y, const int x0, const int h, const int w, float16 *r,
                      const int n)
{
    for (int k = 0; k < n; k++) r[k] = y >= 0 && y < h ? cn_row16(xp + y * w, x0 + 16 * k, w) : (float16)0.0f;
}

/*
 * The 36 values d[6i + j] of 16 tiles side by side of plane xp (H, W), tile
 * row ty, tiles tx0.. (lane l: the 6 x 6 pixels from (4ty - 1, 4(tx0 + l) -
 * 1)), zeros outside the plane; lanes past the plane's tiles hold zeros or
 * neighbours, never stored.
 */
CN_INLINE void w4_rows16(__global const float *xp, const int ty, const int tx0, const int h, const int w, float16 *e)
{
    for (int i = 0; i < 6; i++) {
        float16 r[5]; /* the 66 pixels of the 16 tiles' row i, and past them */
        w4_row(xp, ty * 4 - 1 + i, tx0 * 4 - 1, h, w, r, 5);
        w4_taps(r, e + 6 * i, 6);
    }
}

/*
 * Whether the 16 columns from col0 are 16 / tw whole tile rows of one image
 * of a map 4 or 8 tiles wide (16 x 16 and 32 x 32, where decoder.0 and .1
 * take F(4x4) at 4 x 256): w4_rows_narrow then loads their pixel rows as
 * whole vectors too.
 */
CN_INLINE int w4_narrow(const int tiles, const int tw) { return (tw == 4 || tw == 8) && tiles % 16 == 0; }

/*
 * w4_rows16 for 16 columns that are the 16 / tw whole tile rows from ty0 of
 * plane xp (H, W), tw 4 or 8 and W <= 4 tw: lane l is tile (ty0 + l / tw, l %
 * tw). Per pixel row, each tile row's pixels from -1 and from 3 (zeros
 * outside the plane) go into ra and rb at tw / 4 vectors a tile row, whole
 * vectors shifted by a lane swizzle, so that w4_taps takes taps 0-3 from ra
 * and 4-5 from rb (ra cannot hold them: a tile row's last two taps are where
 * the next one's first two lie).
 */
CN_INLINE void w4_rows_narrow(__global const float *xp, const int ty0, const int tw, const int h, const int w,
                              float16 *e)
{
    const uint16 lanes = (uint16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int per = tw / 4; /* vectors of a pixel row: 1 or 2 */
    for (int i = 0; i < 6; i++) {
        float16 ra[4], rb[4];
        for (int g = 0; g < 16 / tw; g++) {
            const int y = 4 * (ty0 + g) - 1 + i;
            float16 v[4]; /* zeros, the row's 16 or 32 pixels, zeros */
            v[0] = v[3] = (float16)0.0f;
#pragma unroll
            for (int s = 0; s < 2; s++) v[1 + s] = s < per && y >= 0 && y < h ? cn_row16(xp + y * w, 16 * s, w) : 0.0f;
#pragma unroll
            for (int s = 0; s < 2; s++)
                if (s < per) {
                    ra[per * g + s] = shuffle2(v[s], v[s + 1], lanes + 15u);
                    rb[per * g + s] = shuffle2(v[s + 1], v[s + 2], lanes + 3u);
                }
        }
        float16 t[4];
        w4_taps(ra, e + 6 * i, 4);
        w4_taps(rb, t, 4);
        e[6 * i + 4] = t[0];
        e[6 * i + 5] = t[1];
    }
}

/* B^T d B in place for the 36 values of 16 tiles. */
CN_INLINE void w4_btb(float16 *e)
{
    for (int j = 0; j < 6; j++) w4_bt(e + j, 6); /* B^T d, column by column */
    for (int a = 0; a < 6; a++) w4_bt(e + 6 * a, 1); /* then times B, row by row */
}

/*
 * V from `images` consecutive images of x (C, H, W). Global (ceil(cols/16), C)
 * with cols = images * th * tw: work-item (b, c) transforms columns 16b.. of
 * channel c; tile (ty, tx) reads the 6 x 6 pixels from (4ty - 1, 4tx - 1),
 * zeros outside the image.
 */
__kernel void winograd4_input(__global const float *x, const int x_off, __global float *v, const int v_off,
                              const int c, const int h, const int w, const int th, const int tw, const int images)
{
    const int col0 = get_global_id(0) * 16, ch = get_global_id(1), tiles = th * tw, cols = images * tiles;
    if (col0 >= cols || ch >= c) return;
    float16 e[36];
    __global const float *plane = x + x_off + ((size_t)(col0 / tiles) * c + ch) * h * w;
    if (w4_one_row(col0, cols, tw)) {
        const int t0 = col0 % tiles;
        w4_rows16(plane, t0 / tw, t0 % tw, h, w, e);
    } else if (w4_narrow(tiles, tw)) {
        w4_rows_narrow(plane, col0 % tiles / tw, tw, h, w, e);
    } else {
        float d[36][16];
        for (int l = 0; l < 16; l++) {
            const int col = min(col0 + l, cols - 1); /* lanes past the end repeat the last column, never stored */
            const int t = col % tiles, y0 = t / tw * 4 - 1, x0 = t % tw * 4 - 1;
            __global const float *xp = x + x_off + ((size_t)(col / tiles) * c + ch) * h * w + y0 * w + x0;
            if (y0 >= 0 && y0 + 6 <= h && x0 >= 0 && x0 + 6 <= w) {
                for (int i = 0; i < 6; i++)
                    for (int j = 0; j < 6; j++) d[6 * i + j][l] = xp[i * w + j];
            } else {
                for (int i = 0; i < 6; i++)
                    for (int j = 0; j < 6; j++) {
                        const int inside = y0 + i >= 0 && y0 + i < h && x0 + j >= 0 && x0 + j < w;
                        d[6 * i + j][l] = inside ? xp[i * w + j] : 0.0f;
                    }
            }
        }
        for (int q = 0; q < 36; q++) e[q] = vload16(0, d[q]);
    }
    w4_btb(e);
    __global float *out = v + v_off + (size_t)ch * cols + col0;
    const size_t step = (size_t)c * cols;
    const int n = min(16, cols - col0);
    for (int q = 0; q < 36; q++) cn_store_lanes16(out + q * step, e[q], n);
}

/*
 * A^T m A for the 36 values m[6a + b] of 16 tiles (overwritten) into r[4a +
 * b][lane], the tile's output (a, b): with channel ch's epilogue (cl/common.cl;
 * act 0: none), or as it is where the caller adds it (accumulate).
 */
CN_INLINE void w4_ata(float16 *e, float r[16][16], const int accumulate, __global const float *ep, const int ch,
                      const int act)
{
    for (int j = 0; j < 6; j++) w4_at(e + j, 6);     /* A^T m, column by column: rows 0..3 */
    for (int a = 0; a < 4; a++) w4_at(e + 6 * a, 1); /* then times A: e[6a + b] is output (a, b) */
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            vstore16(accumulate ? e[6 * a + b] : cn_epilogue16(e[6 * a + b], ep, ch, act), 0, r[4 * a + b]);
}

/*
 * Pixel row a of the outputs r of w4_ata of 16 tiles, as 4 vectors: vector k
 * holds tiles 4k..4k+3 side by side, its lane 4j + b tile 4k + j's output
 * (a, b) = r[4a + b][4k + j]. Two rounds of interleaving (floats, then pairs
 * of them) of the four vectors r[4a + b], not a transpose through memory.
 */
CN_INLINE void w4_out_rows(float r[16][16], const int a, float16 *row)
{
    const float16 r0 = vload16(0, r[4 * a]), r1 = vload16(0, r[4 * a + 1]), r2 = vload16(0, r[4 * a + 2]),
                  r3 = vload16(0, r[4 * a + 3]);
    const uint16 lo = (uint16)(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), hi = lo + 8u;
    const float16 lo01 = shuffle2(r0, r1, lo), hi01 = shuffle2(r0, r1, hi), lo23 = shuffle2(r2, r3, lo),
                  hi23 = shuffle2(r2, r3, hi);
    const uint16 first = (uint16)(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23), second = first + 8u;
    row[0] = shuffle2(lo01, lo23, first);
    row[1] = shuffle2(lo01, lo23, second);
    row[2] = shuffle2(hi01, hi23, first);
    row[3] = shuffle2(hi01, hi23, second);
}

/* The first n (<= 16) values of v written at d, or added (accumulate). */
CN_INLINE void w4_put(__global float *d, const float16 v, const int n, const int accumulate)
{
    if (n == 16) {
        vstore16(accumulate ? vload16(0, d) + v : v, 0, d);
        return;
    }
    float t[16];
    vstore16(v, 0, t);
    for (int j = 0; j < n; j++) d[j] = accumulate ? d[j] + t[j] : t[j];
}

/*
 * The outputs r of w4_ata of 16 tiles side by side, tile row ty from tile tx0,
 * written or added (accumulate) into plane yp (H, W) where they lie inside it:
 * each of their 4 pixel rows is 64 pixels side by side.
 */
CN_INLINE void w4_untile_rows(float r[16][16], __global float *yp, const int ty, const int tx0, const int h,
                              const int w, const int accumulate)
{
    const int py = ty * 4, px = tx0 * 4;
    for (int a = 0; a < 4 && py + a < h; a++) {
        float16 row[4];
        w4_out_rows(r, a, row);
        for (int k = 0; k < 4 && px + 16 * k < w; k++)
            w4_put(yp + (py + a) * w + px + 16 * k, row[k], min(16, w - px - 16 * k), accumulate);
    }
}

/*
 * y = A^T M A for `images` consecutive images of y (Co, H, W), written with
 * channel o's epilogue (cl/common.cl; act 0: none) or added where accumulate.
 * Global (ceil(cols/16), Co): work-item (b, o) writes the outputs of columns
 * 16b.. of channel o, the 4 x 4 of each tile that lie inside the image.
 */
__kernel void winograd4_output(__global const float *m, const int m_off, __global float *y, const int y_off,
                               const int co, const int h, const int w, const int th, const int tw, const int images,
                               const int accumulate, __global const float *ep, const int ep_off, const int act)
{
    const int col0 = get_global_id(0) * 16, o = get_global_id(1), tiles = th * tw, cols = images * tiles;
    if (col0 >= cols || o >= co) return;
    const int n = min(16, cols - col0);
    __global const float *in = m + m_off + (size_t)o * cols + col0;
    const size_t step = (size_t)co * cols;
    float16 e[36];
    for (int q = 0; q < 36; q++) e[q] = cn_row16(in + q * step, 0, n);
    float r[16][16]; /* [4a + b][lane] */
    w4_ata(e, r, accumulate, ep + ep_off, o, act);
    if (w4_one_row(col0, cols, tw)) {
        const int t0 = col0 % tiles;
        w4_untile_rows(r, y + y_off + ((size_t)(col0 / tiles) * co + o) * h * w, t0 / tw, t0 % tw, h, w, accumulate);
        return;
    }
    for (int l = 0; l < n; l++) {
        const int col = col0 + l, t = col % tiles, py = t / tw * 4, px = t % tw * 4;
        __global float *yp = y + y_off + ((size_t)(col / tiles) * co + o) * h * w + py * w + px;
        for (int a = 0; a < 4 && py + a < h; a++) {
            __global float *dst = yp + a * w;
            const float4 v = (float4)(r[4 * a][l], r[4 * a + 1][l], r[4 * a + 2][l], r[4 * a + 3][l]);
            if (px + 4 <= w) {
                vstore4(accumulate ? vload4(0, dst) + v : v, 0, dst);
                continue;
            }
            float s[4];
            vstore4(v, 0, s);
            for (int b = 0; px + b < w; b++) dst[b] = accumulate ? dst[b] + s[b] : s[b];
        }
    }
}

#ifndef TILE_OB
#define TILE_OB 2 /* the host passes the output channels per pass measured fastest for conv2d_tiled */
#endif
/* winograd4_fused's output channels per pass: as many float16 accumulators as winograd_fused's 2 * TILE_OB (and a
   divisor of 16, the rounding of its output channels) */
#define WF4_OB (TILE_OB < 8 ? 2 * TILE_OB : 16)

/*
 * winograd_fused (cl/winograd.cl) with F(4x4, 3x3) tiles, V and M never
 * leaving the cache: out (N,Co,H,W) (+)= in (N,Ci,H,W) (*) the kernels as U
 * (36, Ci, cop) (cop = Co rounded up to 16, zeros past Co). Global
 * (ceil(tw/16) * th, N, ceil(Co/group)), local (1,1,1): work-item (b, n, g)
 * computes output channels g*group.. (group a multiple of 16) of 16 tiles of
 * one tile row, 4 rows of 64 pixels. `lm` holds V (36 x slab x 16 floats) and
 * M (36 x group x 16): 16 tiles where winograd_fused takes 32, since a tile
 * here has 2.25x the floats of V and M (and 4x the outputs). For the narrow
 * convs, where the unfused F(4x4)'s V and M through memory cost what its
 * fewer products save: 36 multiply-adds per tile and channel pair for 16
 * outputs, against 16 for 4.
 */
__kernel void winograd4_fused(__global const float *x, const int x_off, __global const float *u, const int u_off,
                              __global float *out, const int out_off, const int ci, const int co, const int h,
                              const int w, const int slab, const int group, const int accumulate,
                              __local float *lm, __global const float *ep, const int ep_off, const int act)
{
    const int th = (h + 3) / 4, tw = (w + 3) / 4, blocks = (tw + 15) / 16;
    const int b = get_global_id(0), img = get_global_id(1), og = get_global_id(2) * group;
    if (b >= blocks * th || og >= co) return;
    const int ty = b / blocks, tx0 = b % blocks * 16, cop = (co + 15) / 16 * 16, cog = min(group, co - og);
    __local float *v = lm, *acc = lm + 36 * slab * 16;
    __global const float *xi = x + x_off + (size_t)img * ci * h * w;
    for (int c0 = 0; c0 < ci; c0 += slab) {
        const int n = min(slab, ci - c0);
        for (int c = 0; c < n; c++) {
            float16 e[36];
            w4_rows16(xi + (size_t)(c0 + c) * h * w, ty, tx0, h, w, e);
            w4_btb(e);
            for (int q = 0; q < 36; q++) vstore16(e[q], 0, v + (q * slab + c) * 16);
        }
        for (int q = 0; q < 36; q++) {
            __local const float *vq = v + q * slab * 16;
            __local float *aq = acc + q * group * 16;
            for (int o0 = 0; o0 < cog; o0 += WF4_OB) {
                float16 a[WF4_OB];
#pragma unroll
                for (int o = 0; o < WF4_OB; o++) a[o] = c0 ? vload16(0, aq + (o0 + o) * 16) : (float16)0.0f;
                __global const float *uk = u + u_off + ((size_t)q * ci + c0) * cop + og + o0;
                for (int c = 0; c < n; c++, uk += cop) {
                    const float16 vc = vload16(0, vq + c * 16);
#pragma unroll
                    for (int o = 0; o < WF4_OB; o++) a[o] = fma((float16)uk[o], vc, a[o]);
                }
#pragma unroll
                for (int o = 0; o < WF4_OB; o++) vstore16(a[o], 0, aq + (o0 + o) * 16);
            }
        }
    }
    __global float *yi = out + out_off + (size_t)img * co * h * w;
    for (int o = 0; o < cog; o++) {
        float16 e[36];
        for (int q = 0; q < 36; q++) e[q] = vload16(0, acc + (q * group + o) * 16);
        float r[16][16];
        w4_ata(e, r, accumulate, ep + ep_off, og + o, act);
        w4_untile_rows(r, yi + (size_t)(og + o) * h * w, ty, tx0, h, w, accumulate);
    }
}

/*
 * The weight gradient's transform of dy: dM = A dy A^T, the 6x6 of each tile
 * from its 4 x 4 outputs' gradient (zero past the image), for `images`
 * consecutive images of dy (Co, H, W) into dm (36, Co, images * tiles), laid
 * out as V. Global (ceil(cols/16), Co), as winograd4_output.
 */
__kernel void winograd4_dy(__global const float *dy, const int dy_off, __global float *dm, const int dm_off,
                           const int co, const int h, const int w, const int th, const int tw, const int images)
{
    const int col0 = get_global_id(0) * 16, o = get_global_id(1), tiles = th * tw, cols = images * tiles;
    if (col0 >= cols || o >= co) return;
    float16 e[36];
    if (w4_one_row(col0, cols, tw)) {
        const int t0 = col0 % tiles;
        __global const float *yp = dy + dy_off + ((size_t)(col0 / tiles) * co + o) * h * w;
        for (int a = 0; a < 4; a++) {
            float16 r[4]; /* the 64 values of the 16 tiles' row a */
            w4_row(yp, t0 / tw * 4 + a, t0 % tw * 4, h, w, r, 4);
            w4_taps(r, e + 6 * a, 4);
        }
    } else {
        float d[16][16]; /* [4a + b][lane]: dy at (4ty + a, 4tx + b) */
        for (int l = 0; l < 16; l++) {
            const int col = min(col0 + l, cols - 1); /* lanes past the end repeat the last column, never stored */
            const int t = col % tiles, py = t / tw * 4, px = t % tw * 4;
            __global const float *yp = dy + dy_off + ((size_t)(col / tiles) * co + o) * h * w + py * w + px;
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) d[4 * a + b][l] = py + a < h && px + b < w ? yp[a * w + b] : 0.0f;
        }
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++) e[6 * a + b] = vload16(0, d[4 * a + b]);
    }
    for (int b = 0; b < 4; b++) w4_a(e + b, 6);     /* A dy, column by column: six rows */
    for (int a = 0; a < 6; a++) w4_a(e + 6 * a, 1); /* then times A^T, row by row */
    __global float *out = dm + dm_off + (size_t)o * cols + col0;
    const size_t step = (size_t)co * cols;
    const int n = min(16, cols - col0);
    for (int q = 0; q < 36; q++) cn_store_lanes16(out + q * step, e[q], n);
}

/*
 * dw (Co, C, 3, 3) += G^T dU G, dU (36, Co, C) the sum over tiles of dM * V
 * (the products' gradient, 36 GEMMs on the host). A work-item takes 16
 * neighbouring input channels as vector lanes. Global (ceil(C/16), Co).
 */
__kernel void winograd4_weights_grad(__global const float *du, const int du_off, __global float *dw,
                                     const int dw_off, const int co, const int ci)
{
    const int i = get_global_id(0) * 16, o = get_global_id(1), lanes = min(16, ci - i);
    if (lanes <= 0 || o >= co) return;
    const size_t step = (size_t)co * ci;
    __global const float *g = du + du_off + o * ci + i;
    float16 d[36];
    for (int xi = 0; xi < 36; xi++) d[xi] = cn_row16(g + xi * step, 0, lanes);
    float16 t[3][6]; /* G^T dU: three rows of six */
    for (int b = 0; b < 6; b++) w4_gt(d[b], d[6 + b], d[12 + b], d[18 + b], d[24 + b], d[30 + b], t[0] + b, 6);
    float r[9][16]; /* then times G: tap (k, x) of the 16 filters */
    for (int k = 0; k < 3; k++) {
        float16 v[3];
        w4_gt(t[k][0], t[k][1], t[k][2], t[k][3], t[k][4], t[k][5], v, 1);
        for (int x = 0; x < 3; x++) vstore16(v[x], 0, r[3 * k + x]);
    }
    __global float *out = dw + dw_off + (o * ci + i) * 9; /* the lanes' filters follow each other */
    for (int e = 0; e < 9 * lanes; e++) out[e] += r[e % 9][e / 9];
}
