/*
 * loss.cl - the focal Dice loss on logits z (N,1,H,W) with labels y and an optional mask.
 *
 * Three launches, no float atomics, bitwise reproducible on a device:
 *   loss_partial  G work-groups, each sums its chunk of pixels in a fixed order
 *                 into work[k*G + g] for the five sums below;
 *   loss_final    one work-group sums the G partials in a fixed order and
 *                 writes out[0..8): total, focal, dice, then the sums
 *                 m, m*p*y, m*p, m*y, m*focal_term that loss_grad reads;
 *   loss_grad     dz for every pixel.
 * Without a mask, `has_mask` is 0 and `mask` is any valid buffer (never read).
 */

#define LOSS_SUMS 5

/* (p, q): p = sigmoid(z) and q = 1 - p, each without cancellation. */
float2 loss_probs(float z)
{
    float e = exp(-fabs(z)), big = 1.0f / (1.0f + e), small = e / (1.0f + e);
    return z >= 0.0f ? (float2)(big, small) : (float2)(small, big);
}

/*
 * q^g, multiplying out small whole powers (gamma is 2 by default): a general
 * pow() costs a hundred times more on some CPU runtimes (PoCL).
 */
float loss_pow(float q, float g)
{
    if (g != floor(g) || g > 8.0f) return pow(q, g);
    float r = 1.0f;
    for (int k = 0; k < (int)g; k++) r *= q;
    return r;
}

/* d(q^g)/dq; 0 when g == 0, where q^g is constant. */
float loss_dpow(float q, float g) { return g == 0.0f ? 0.0f : g * loss_pow(q, g - 1.0f); }

/* Natural log through log2, which CPU runtimes vectorise better; one extra rounding. */
float loss_log(float v) { return log2(v) * M_LN2_F; }

__kernel void loss_partial(__global const float *z, const int z_off, __global const float *y, const int y_off,
                           __global const float *mask, const int mask_off, const int has_mask,
                           __global float *work, const int work_off, const int count, const int chunk,
                           const float alpha,
                           const float gamma, const float eps, __local float *scratch)
{
    int g = get_group_id(0), l = get_local_id(0), L = get_local_size(0), groups = get_num_groups(0);
    int end = min(count, (g + 1) * chunk);
    float s[LOSS_SUMS] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = g * chunk + l; i < end; i += L) {
        float m = has_mask ? mask[mask_off + i] : 1.0f, t = y[y_off + i];
        float2 pq = loss_probs(z[z_off + i]);
        float p = pq.x, q = pq.y;
        float f = -alpha * loss_pow(q, gamma) * t * loss_log(p + eps) -
                  (1.0f - alpha) * loss_pow(p, gamma) * (1.0f - t) * loss_log(q + eps);
        s[0] += m;
        s[1] += m * p * t;
        s[2] += m * p;
        s[3] += m * t;
        s[4] += m * f;
    }
    for (int k = 0; k < LOSS_SUMS; k++) {
        float total = cn_group_sum(scratch, s[k]);
        if (l == 0) work[work_off + k * groups + g] = total;
    }
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

__kernel void loss_grad(__global const float *z, const int z_off, __global const float *y, const int y_off,
                        __global const float *mask, const int mask_off, const int has_mask,
                        __global const float *out, const int out_off, __global float *dz, const int dz_off,
                        const int count, const float alpha, const float gamma, const float eps, const float smooth,
                        const float wf, const float wd)
{
    int i = get_global_id(0);
    if (i >= count) return;
    float msum = out[out_off + 3], num = 2.0f * out[out_off + 4] + smooth;
    float den = out[out_off + 5] + out[out_off + 6] + smooth;
    float m = has_mask ? mask[mask_off + i] : 1.0f, t = y[y_off + i];
    float2 pq = loss_probs(z[z_off + i]);
    float p = pq.x, q = pq.y;
    float dfocal = -alpha * t * (loss_pow(q, gamma) / (p + eps) - loss_dpow(q, gamma) * loss_log(p + eps)) -
                   (1.0f - alpha) * (1.0f - t) *
                       (loss_dpow(p, gamma) * loss_log(q + eps) - loss_pow(p, gamma) / (q + eps));
    float ddice = -(2.0f * t * den - num) / (den * den);
    float dp = (msum > 0.0f ? wf * dfocal / msum : 0.0f) + wd * ddice;
    dz[dz_off + i] = m * dp * p * q;
}
