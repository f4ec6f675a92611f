/*
 * loss.cl - the focal Dice loss on logits z (N,1,H,W) with labels y and an optional mask.
 *
 * Three launches, no float atomics, bitwise reproducible on a device:
 *   loss_partial  G chunks of pixels, each summed in a fixed order into
 *                 work[k*G + g] for the five sums below: a work-group per
 *                 chunk on GPUs (_group), a work-item streaming float16
 *                 vectors on CPUs (_serial: PoCL pays a loop over the items
 *                 for every barrier and vectorises explicit vectors only);
 *   loss_final    one work-group sums the G partials in a fixed order and
 *                 writes out[0..8): total, focal, dice, then the sums
 *                 m, m*p*y, m*p, m*y, m*focal_term that loss_grad reads;
 *   loss_grad     dz for every pixel, `span` pixels an item (1 on GPUs).
 * Without a mask, `has_mask` is 0 and `mask` is any valid buffer (never read).
 *
 * The per-pixel math is written once for T = float (suffix 1) and float16
 * (suffix 16) by LOSS_HELPERS and the PIXEL bodies below.
 */

#define LOSS_SUMS 5

#define LOSS_HELPERS(T, S)                                                                      \
    /* q^g, small whole powers multiplied out (gamma is 2 by default): a general pow()       \
       costs a hundred times more on some CPU runtimes (PoCL) */                                \
    T loss_pow##S(T q, float g)                                                                 \
    {                                                                                           \
        if (g != floor(g) || g > 8.0f) return pow(q, (T)(g));                                   \
        T r = (T)(1.0f);                                                                        \
        for (int k = 0; k < (int)g; k++) r *= q;                                                \
        return r;                                                                               \
    }                                                                                           \
    /* d(q^g)/dq; 0 when g == 0, where q^g is constant */                                       \
    T loss_dpow##S(T q, float g) { return g == 0.0f ? (T)(0.0f) : g * loss_pow##S(q, g - 1.0f); } \
    /* natural log through log2, which CPU runtimes vectorise better; one extra rounding */    \
    T loss_log##S(T v) { return log2(v) * M_LN2_F; }

LOSS_HELPERS(float, 1)
LOSS_HELPERS(float16, 16)

#define LOSS_LOAD16(p) vload16(0, (p))
#define LOSS_LOAD1(p) (*(p))

/* Pixel i's mask m, label t and probabilities p = sigmoid(z), q = 1 - p, each without cancellation. */
#define LOSS_PIXEL(T, LOAD)                                                             \
    T m = has_mask ? LOAD(mask + i) : (T)(1.0f), t = LOAD(y + i), zi = LOAD(z + i);     \
    T e = exp(-fabs(zi)), big = 1.0f / (1.0f + e), small = e / (1.0f + e);              \
    T p = select(small, big, zi >= 0.0f), q = select(big, small, zi >= 0.0f);

/* The five sums' terms of pixel i: s0..s4 += m, m*p*t, m*p, m*t, m*focal. */
#define LOSS_SUM_BODY(T, S, LOAD, s0, s1, s2, s3, s4)                                       \
    {                                                                                       \
        LOSS_PIXEL(T, LOAD)                                                                 \
        T f = -alpha * loss_pow##S(q, gamma) * t * loss_log##S(p + eps) -                   \
              (1.0f - alpha) * loss_pow##S(p, gamma) * (1.0f - t) * loss_log##S(q + eps);   \
        s0 += m;                                                                            \
        s1 += m * p * t;                                                                    \
        s2 += m * p;                                                                        \
        s3 += m * t;                                                                        \
        s4 += m * f;                                                                        \
    }

__kernel void loss_partial_group(__global const float *z, const int z_off, __global const float *y, const int y_off,
                                 __global const float *mask, const int mask_off, const int has_mask,
                                 __global float *work, const int work_off, const int count, const int chunk,
                                 const float alpha, const float gamma, const float eps, __local float *scratch)
{
    int g = get_group_id(0), l = get_local_id(0), L = get_local_size(0), groups = get_num_groups(0);
    int end = min(count, (g + 1) * chunk);
    z += z_off, y += y_off, mask += mask_off;
    float s[LOSS_SUMS] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = g * chunk + l; i < end; i += L) LOSS_SUM_BODY(float, 1, LOSS_LOAD1, s[0], s[1], s[2], s[3], s[4])
    for (int k = 0; k < LOSS_SUMS; k++) {
        float total = cn_group_sum(scratch, s[k]);
        if (l == 0) work[work_off + k * groups + g] = total;
    }
}

/* The same sums, an item per chunk: float16 lanes, added in a fixed order, then the rest one by one. */
__kernel void loss_partial_serial(__global const float *z, const int z_off, __global const float *y,
                                  const int y_off, __global const float *mask, const int mask_off,
                                  const int has_mask, __global float *work, const int work_off, const int count,
                                  const int chunk, const float alpha, const float gamma, const float eps)
{
    int g = get_global_id(0), groups = get_global_size(0);
    int i = g * chunk, end = min(count, i + chunk);
    z += z_off, y += y_off, mask += mask_off;
    float16 v0 = 0.0f, v1 = 0.0f, v2 = 0.0f, v3 = 0.0f, v4 = 0.0f;
    for (; i + 16 <= end; i += 16) LOSS_SUM_BODY(float16, 16, LOSS_LOAD16, v0, v1, v2, v3, v4)
    float s[LOSS_SUMS] = {cn_lanes_sum(v0), cn_lanes_sum(v1), cn_lanes_sum(v2), cn_lanes_sum(v3), cn_lanes_sum(v4)};
    for (; i < end; i++) LOSS_SUM_BODY(float, 1, LOSS_LOAD1, s[0], s[1], s[2], s[3], s[4])
    for (int k = 0; k < LOSS_SUMS; k++) work[work_off + k * groups + g] = s[k];
}

/* One work-group: wf and wd weigh focal and dice in the total. */
__kernel void loss_final(__global const float *work, const int work_off, const int groups, __global float *out,
                         const int out_off,
                         const float smooth, const float wf, const float wd, __local float *scratch)
{
    int l = get_local_id(0), L = get_local_size(0);
    float s[LOSS_SUMS];
    for (int k = 0; k < LOSS_SUMS; k++) {
        float v = 0.0f;
        for (int j = l; j < groups; j += L) v += work[work_off + k * groups + j];
        s[k] = cn_group_sum(scratch, v);
    }
    if (l != 0) return;
    float focal = s[0] > 0.0f ? s[4] / s[0] : 0.0f;
    float dice = 1.0f - (2.0f * s[1] + smooth) / (s[2] + s[3] + smooth);
    out[out_off + 0] = wf * focal + wd * dice;
    out[out_off + 1] = focal;
    out[out_off + 2] = dice;
    for (int k = 0; k < LOSS_SUMS; k++) out[out_off + 3 + k] = s[k];
}

/* dz of pixel i from the sums in out (msum, num, den and the weights read once per item). */
#define LOSS_GRAD_BODY(T, S, LOAD, STORE)                                                                \
    {                                                                                                    \
        LOSS_PIXEL(T, LOAD)                                                                              \
        T dfocal = -alpha * t * (loss_pow##S(q, gamma) / (p + eps) - loss_dpow##S(q, gamma) * loss_log##S(p + eps)) - \
                   (1.0f - alpha) * (1.0f - t) *                                                         \
                       (loss_dpow##S(p, gamma) * loss_log##S(q + eps) - loss_pow##S(p, gamma) / (q + eps)); \
        T ddice = -(2.0f * t * den - num) / (den * den);                                                 \
        T dp = (msum > 0.0f ? wf * dfocal / msum : (T)(0.0f)) + wd * ddice;                              \
        STORE(dz + i, m * dp * p * q);                                                                   \
    }

#define LOSS_STORE16(p, v) vstore16((v), 0, (p))
#define LOSS_STORE1(p, v) (*(p) = (v))

__kernel void loss_grad(__global const float *z, const int z_off, __global const float *y, const int y_off,
                        __global const float *mask, const int mask_off, const int has_mask,
                        __global const float *out, const int out_off, __global float *dz, const int dz_off,
                        const int count, const int span, const float alpha, const float gamma, const float eps,
                        const float smooth, const float wf, const float wd)
{
    int i = get_global_id(0) * span;
    if (i >= count) return;
    int end = i + min(span, count - i);
    z += z_off, y += y_off, mask += mask_off, dz += dz_off;
    float msum = out[out_off + 3], num = 2.0f * out[out_off + 4] + smooth;
    float den = out[out_off + 5] + out[out_off + 6] + smooth;
    for (; i + 16 <= end; i += 16) LOSS_GRAD_BODY(float16, 16, LOSS_LOAD16, LOSS_STORE16)
    for (; i < end; i++) LOSS_GRAD_BODY(float, 1, LOSS_LOAD1, LOSS_STORE1)
}
