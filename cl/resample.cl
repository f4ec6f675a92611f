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
