/*
 * se.cl - squeeze-excitation pieces: global average pool and channel-wise scale.
 *
 * x is (N,C,H,W), the pooled/scale tensors (N,C,1,1). A "plane" is one (n, c).
 * Sums over a plane run in one work-group of power-of-two size in a fixed
 * order, so results are bitwise reproducible on a device.
 *
 * On CPUs (CN_DEVICE_CPU) each kernel takes a whole plane in one work-item,
 * streaming float16 vectors with per-lane sums added in a fixed order: PoCL
 * pays for work-group barriers and does not vectorise per-pixel items. The
 * host launches (1, planes) there, with local size 1 for the reductions.
 */

/* One work-group per plane: y[p] = mean of x over the plane. */
__kernel void avgpool_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                          const int hw, __local float *scratch)
{
    int p = get_group_id(1), l = get_local_id(0), L = get_local_size(0);
    __global const float *xp = x + x_off + (size_t)p * hw;
#if CN_DEVICE_CPU
    float16 acc = 0.0f;
    int i = 0;
    for (; i + 16 <= hw; i += 16) acc += vload16(0, xp + i);
    float sum = cn_lanes_sum(acc);
    for (; i < hw; i++) sum += xp[i];
#else
    float sum = 0.0f;
    for (int i = l; i < hw; i += L) sum += xp[i];
    sum = cn_group_sum(scratch, sum);
#endif
    if (l == 0) y[y_off + p] = sum / (float)hw;
}

/* 2D launch (pixel, plane): dx = dy[p] / HW. */
__kernel void avgpool_bwd(__global const float *dy, const int dy_off, __global float *dx, const int dx_off,
                          const int hw, const int planes, const int acc)
{
    int i = get_global_id(0), p = get_global_id(1);
    if (i >= hw || p >= planes) return;
    float v = dy[dy_off + p] / (float)hw;
#if CN_DEVICE_CPU
    __global float *d = dx + dx_off + (size_t)p * hw;
    for (; i + 16 <= hw; i += 16) vstore16(acc ? vload16(0, d + i) + v : (float16)v, 0, d + i);
    for (; i < hw; i++) d[i] = acc ? d[i] + v : v;
#else
    size_t k = (size_t)dx_off + (size_t)p * hw + i;
    dx[k] = acc ? dx[k] + v : v;
#endif
}

/* 2D launch (pixel, plane): y = x * s[p]. */
__kernel void chscale_fwd(__global const float *x, const int x_off, __global const float *s, const int s_off,
                          __global float *y, const int y_off, const int hw, const int planes)
{
    int i = get_global_id(0), p = get_global_id(1);
    if (i >= hw || p >= planes) return;
#if CN_DEVICE_CPU
    __global const float *xp = x + x_off + (size_t)p * hw;
    __global float *yp = y + y_off + (size_t)p * hw;
    const float sp = s[s_off + p];
    for (; i + 16 <= hw; i += 16) vstore16(vload16(0, xp + i) * sp, 0, yp + i);
    for (; i < hw; i++) yp[i] = xp[i] * sp;
#else
    size_t k = (size_t)p * hw + i;
    y[y_off + k] = x[x_off + k] * s[s_off + p];
#endif
}

/* One work-group per plane: dx = dy * s[p] and ds[p] = sum of dy * x over the plane. */
__kernel void chscale_bwd(__global const float *x, const int x_off, __global const float *s, const int s_off,
                          __global const float *dy, const int dy_off, __global float *dx, const int dx_off,
                          __global float *ds, const int ds_off, const int hw, const int acc,
                          __local float *scratch)
{
    int p = get_group_id(1), l = get_local_id(0), L = get_local_size(0);
    size_t base = (size_t)p * hw;
    float sp = s[s_off + p], sum = 0.0f;
#if CN_DEVICE_CPU
    __global const float *xp = x + x_off + base, *gp = dy + dy_off + base;
    __global float *d = dx + dx_off + base;
    float16 part = 0.0f;
    int i = 0;
    for (; i + 16 <= hw; i += 16) {
        const float16 g = vload16(0, gp + i);
        part = fma(g, vload16(0, xp + i), part);
        vstore16(acc ? vload16(0, d + i) + g * sp : g * sp, 0, d + i);
    }
    sum = cn_lanes_sum(part);
    for (; i < hw; i++) {
        sum += gp[i] * xp[i];
        d[i] = acc ? d[i] + gp[i] * sp : gp[i] * sp;
    }
#else
    for (int i = l; i < hw; i += L) {
        float g = dy[dy_off + base + i];
        sum += g * x[x_off + base + i];
        size_t k = dx_off + base + i;
        dx[k] = acc ? dx[k] + g * sp : g * sp;
    }
    sum = cn_group_sum(scratch, sum);
#endif
    if (l == 0) ds[ds_off + p] = acc ? ds[ds_off + p] + sum : sum;
}
