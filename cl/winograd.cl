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
 * conv's output channels; V (16, C, tiles) and M (16, Co, tiles), tiles row-major.
 */

/*
 * U from w (Co, C, 3, 3). Global (C, Co). Forward: U[xi][o][i]; flip: the conv
 * from dy to dx, U[xi][i][o] with the kernel rotated by 180 degrees.
 */
__kernel void winograd_weights(__global const float *w, const int w_off, __global float *u, const int u_off,
                               const int co, const int ci, const int flip)
{
    const int i = get_global_id(0), o = get_global_id(1);
    if (i >= ci || o >= co) return;
    __global const float *g = w + w_off + (o * ci + i) * 9;
    float k[9];
    for (int t = 0; t < 9; t++) k[t] = g[flip ? 8 - t : t];
    float t0[3], t1[3], t2[3], t3[3]; /* G g: four rows of three */
    for (int c = 0; c < 3; c++) {
        t0[c] = k[c];
        t1[c] = 0.5f * (k[c] + k[3 + c] + k[6 + c]);
        t2[c] = 0.5f * (k[c] - k[3 + c] + k[6 + c]);
        t3[c] = k[6 + c];
    }
    const int rows = flip ? ci : co, cols = flip ? co : ci, r = flip ? i : o, c = flip ? o : i;
    __global float *out = u + u_off + r * cols + c;
    const size_t step = (size_t)rows * cols;
    float *tr[4] = {t0, t1, t2, t3};
    for (int a = 0; a < 4; a++) {
        const float *t = tr[a];
        out[(4 * a + 0) * step] = t[0];
        out[(4 * a + 1) * step] = 0.5f * (t[0] + t[1] + t[2]);
        out[(4 * a + 2) * step] = 0.5f * (t[0] - t[1] + t[2]);
        out[(4 * a + 3) * step] = t[2];
    }
}

#define WG_TILES 16 /* tiles per work-item of the input and output transforms: one float16 per plane */

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
 * V from one image x (C, H, W). Global (ceil(tw/16), th, C): work-item
 * (bx, ty, c) transforms 16 neighbouring tiles of channel c, tile (ty, tx)
 * starting at pixel (2ty - 1, 2tx - 1), as float16 lanes of tiles.
 */
__kernel void winograd_input(__global const float *x, const int x_off, __global float *v, const int v_off,
                             const int c, const int h, const int w, const int th, const int tw)
{
    const int tx0 = get_global_id(0) * WG_TILES, ty = get_global_id(1), ch = get_global_id(2);
    if (tx0 >= tw || ty >= th || ch >= c) return;
    __global const float *xp = x + x_off + (size_t)ch * h * w;
    float16 d[4][4]; /* d[row][col]: lane l is tile tx0 + l */
    for (int i = 0; i < 4; i++) {
        float r[2 * WG_TILES + 2];
        wg_row(xp, 2 * ty - 1 + i, 2 * tx0 - 1, h, w, r);
        const float16 lo = vload16(0, r), hi = vload16(1, r), lo2 = vload16(0, r + 2), hi2 = vload16(1, r + 2);
        d[i][0] = (float16)(lo.even, hi.even);
        d[i][1] = (float16)(lo.odd, hi.odd);
        d[i][2] = (float16)(lo2.even, hi2.even);
        d[i][3] = (float16)(lo2.odd, hi2.odd);
    }
    const size_t tiles = (size_t)th * tw, step = (size_t)c * tiles;
    __global float *out = v + v_off + ch * tiles + ty * tw + tx0;
    const int n = min(WG_TILES, tw - tx0);
    for (int j = 0; j < 4; j++) { /* B^T d, column by column */
        const float16 t0 = d[0][j] - d[2][j], t1 = d[1][j] + d[2][j], t2 = d[2][j] - d[1][j], t3 = d[1][j] - d[3][j];
        d[0][j] = t0, d[1][j] = t1, d[2][j] = t2, d[3][j] = t3;
    }
    for (int a = 0; a < 4; a++) { /* then times B, row by row */
        const float16 e[4] = {d[a][0] - d[a][2], d[a][1] + d[a][2], d[a][2] - d[a][1], d[a][1] - d[a][3]};
        for (int b = 0; b < 4; b++) {
            __global float *o = out + (4 * a + b) * step;
            if (n == WG_TILES) {
                vstore16(e[b], 0, o);
                continue;
            }
            float lane[WG_TILES];
            vstore16(e[b], 0, lane);
            for (int l = 0; l < n; l++) o[l] = lane[l];
        }
    }
}

/*
 * y = A^T M A for one image y (Co, H, W), written (accumulate = 0) or added.
 * Global (ceil(tw/16), th, Co): work-item (bx, ty, o) writes the 2 x 32
 * outputs of 16 neighbouring tiles of channel o that lie inside the image.
 */
__kernel void winograd_output(__global const float *m, const int m_off, __global float *y, const int y_off,
                              const int co, const int h, const int w, const int th, const int tw, const int accumulate)
{
    const int tx0 = get_global_id(0) * WG_TILES, ty = get_global_id(1), o = get_global_id(2);
    if (tx0 >= tw || ty >= th || o >= co) return;
    const size_t tiles = (size_t)th * tw, step = (size_t)co * tiles;
    __global const float *in = m + m_off + o * tiles + ty * tw + tx0;
    const int n = min(WG_TILES, tw - tx0);
    float16 s[2][4]; /* A^T M: two rows of four */
    for (int b = 0; b < 4; b++) {
        float16 r[4];
        for (int a = 0; a < 4; a++) {
            __global const float *p = in + (4 * a + b) * step;
            if (n == WG_TILES) {
                r[a] = vload16(0, p);
                continue;
            }
            float lane[WG_TILES];
            for (int l = 0; l < WG_TILES; l++) lane[l] = l < n ? p[l] : 0.0f;
            r[a] = vload16(0, lane);
        }
        s[0][b] = r[0] + r[1] + r[2];
        s[1][b] = r[1] - r[2] - r[3];
    }
    __global float *yp = y + y_off + (size_t)o * h * w;
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
            vstore16(accumulate ? vload16(0, dst) + r0 : r0, 0, dst);
            vstore16(accumulate ? vload16(1, dst) + r1 : r1, 1, dst);
            continue;
        }
        for (int j = 0; j < cols; j++) dst[j] = accumulate ? dst[j] + row[j] : row[j];
    }
}
