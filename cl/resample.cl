/*
 * resample.cl - the decoder step: y = concat(nearest2x(x), skip) along channels.
 *
 * x is (N,C1,H,W), skip (N,C2,2H,2W) (C2 may be 0), y (N,C1+C2,2H,2W).
 * Launched 2D: dimension 0 over a plane's pixels, dimension 1 over (n, channel).
 */

__kernel void upcat_fwd(__global const float *x, const int x_off, __global const float *skip, const int skip_off,
                        __global float *y, const int y_off, const int c1, const int c2, const int h, const int w,
                        const int planes)
{
    int i = get_global_id(0), p = get_global_id(1);
    int wo = 2 * w, hwo = 4 * h * w;
    if (i >= hwo || p >= planes) return;
    int c = c1 + c2, n = p / c, ch = p % c;
    float v;
    if (ch < c1)
        v = x[x_off + (n * c1 + ch) * h * w + (i / wo / 2) * w + (i % wo) / 2];
    else
        v = skip[skip_off + (n * c2 + ch - c1) * hwo + i];
    y[y_off + p * hwo + i] = v;
}

/* dx: sum of the 2x2 block of dy that each input pixel was copied to. Planes are (n, c < C1). */
__kernel void upcat_bwd_x(__global const float *dy, const int dy_off, __global float *dx, const int dx_off,
                          const int c1, const int c2, const int h, const int w, const int planes, const int acc)
{
    int i = get_global_id(0), p = get_global_id(1);
    if (i >= h * w || p >= planes) return;
    int n = p / c1, ch = p % c1, wo = 2 * w, r = i / w, col = i % w;
    __global const float *g = dy + dy_off + (n * (c1 + c2) + ch) * 4 * h * w + 2 * r * wo + 2 * col;
    float v = (g[0] + g[1]) + (g[wo] + g[wo + 1]);
    dx[dx_off + p * h * w + i] = acc ? dx[dx_off + p * h * w + i] + v : v;
}

/* dskip: the slice of dy past the first C1 channels. Planes are (n, c < C2). */
__kernel void upcat_bwd_skip(__global const float *dy, const int dy_off, __global float *dskip,
                             const int dskip_off, const int c1, const int c2, const int h, const int w,
                             const int planes, const int acc)
{
    int i = get_global_id(0), p = get_global_id(1), hwo = 4 * h * w;
    if (i >= hwo || p >= planes) return;
    int n = p / c2, ch = p % c2;
    float v = dy[dy_off + (n * (c1 + c2) + c1 + ch) * hwo + i];
    dskip[dskip_off + p * hwo + i] = acc ? dskip[dskip_off + p * hwo + i] + v : v;
}

/*
 * The same three on CPUs, a work-item per row of a plane with explicit vectors
 * (PoCL vectorises those, not the per-pixel index arithmetic above): 16 outputs
 * from 8 inputs forward, 8 sums of 2x2 blocks backward. Global (rows, planes);
 * the sums add in the same order as upcat_bwd_x.
 */
__kernel void upcat_fwd_rows(__global const float *x, const int x_off, __global const float *skip,
                             const int skip_off, __global float *y, const int y_off, const int c1, const int c2,
                             const int h, const int w, const int planes)
{
    const int oy = get_global_id(0), p = get_global_id(1), wo = 2 * w;
    if (oy >= 2 * h || p >= planes) return;
    const int c = c1 + c2, n = p / c, ch = p % c;
    __global float *yr = y + y_off + (p * 2 * h + oy) * wo;
    int j = 0;
    if (ch < c1) {
        __global const float *xr = x + x_off + ((n * c1 + ch) * h + oy / 2) * w;
        for (; j + 16 <= wo; j += 16)
            vstore16(shuffle(vload8(0, xr + j / 2), (uint16)(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)), 0,
                     yr + j);
        for (; j < wo; j++) yr[j] = xr[j / 2];
        return;
    }
    __global const float *sr = skip + skip_off + ((n * c2 + ch - c1) * 2 * h + oy) * wo;
    for (; j + 16 <= wo; j += 16) vstore16(vload16(0, sr + j), 0, yr + j);
    for (; j < wo; j++) yr[j] = sr[j];
}

__kernel void upcat_bwd_x_rows(__global const float *dy, const int dy_off, __global float *dx, const int dx_off,
                               const int c1, const int c2, const int h, const int w, const int planes, const int acc)
{
    const int r = get_global_id(0), p = get_global_id(1), wo = 2 * w;
    if (r >= h || p >= planes) return;
    const int n = p / c1, ch = p % c1;
    __global const float *g = dy + dy_off + ((n * (c1 + c2) + ch) * 2 * h + 2 * r) * wo;
    __global float *d = dx + dx_off + (p * h + r) * w;
    int j = 0;
    for (; j + 8 <= w; j += 8) {
        const float16 a = vload16(0, g + 2 * j), b = vload16(0, g + wo + 2 * j);
        const float8 v = (a.even + a.odd) + (b.even + b.odd);
        vstore8(acc ? vload8(0, d + j) + v : v, 0, d + j);
    }
    for (; j < w; j++) {
        const float v = (g[2 * j] + g[2 * j + 1]) + (g[wo + 2 * j] + g[wo + 2 * j + 1]);
        d[j] = acc ? d[j] + v : v;
    }
}

__kernel void upcat_bwd_skip_rows(__global const float *dy, const int dy_off, __global float *dskip,
                                  const int dskip_off, const int c1, const int c2, const int h, const int w,
                                  const int planes, const int acc)
{
    const int oy = get_global_id(0), p = get_global_id(1), wo = 2 * w;
    if (oy >= 2 * h || p >= planes) return;
    const int n = p / c2, ch = p % c2;
    __global const float *g = dy + dy_off + ((n * (c1 + c2) + c1 + ch) * 2 * h + oy) * wo;
    __global float *d = dskip + dskip_off + (p * 2 * h + oy) * wo;
    int j = 0;
    for (; j + 16 <= wo; j += 16) vstore16(acc ? vload16(0, d + j) + vload16(0, g + j) : vload16(0, g + j), 0, d + j);
    for (; j < wo; j++) d[j] = acc ? d[j] + g[j] : g[j];
}
