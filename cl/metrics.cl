/*
 * metrics.cl - confusion counts and probability histograms inside a mask.
 *
 * p = sigmoid(z) when `logits`, else z. Counts and bins are uint: each
 * work-group counts in local memory, then adds its totals to the global
 * counters with integer atomics (exact, so the result is independent of order).
 * Outputs accumulate, so the caller zeroes them once per epoch.
 * Work-groups stride over the pixels (grid-stride loop).
 */

float metrics_prob(float z, int logits) { return logits ? cn_sigmoid(z) : z; }

/* counts[0..4) = TP, FP, TN, FN of p > threshold. */
__kernel void metrics_counts(__global const float *z, const int z_off, __global const float *y, const int y_off,
                             __global const float *mask, const int mask_off, const int has_mask, const int logits,
                             const float threshold, __global uint *counts, const int counts_off, const int count)
{
    __local uint local_counts[4];
    int l = get_local_id(0);
    if (l < 4) local_counts[l] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    uint c[4] = {0, 0, 0, 0};
    for (int i = get_global_id(0); i < count; i += get_global_size(0)) {
        if (has_mask && mask[mask_off + i] <= 0.5f) continue;
        int pred = metrics_prob(z[z_off + i], logits) > threshold, truth = y[y_off + i] > 0.5f;
        c[pred ? (truth ? 0 : 1) : (truth ? 3 : 2)]++;
    }
    for (int k = 0; k < 4; k++)
        if (c[k]) atomic_add(&local_counts[k], c[k]);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (l < 4 && local_counts[l]) atomic_add(&counts[counts_off + l], local_counts[l]);
}

/* hist[0..bins) background, hist[bins..2 bins) vessel; bin = min(bins-1, floor(p * bins)). */
__kernel void metrics_hist(__global const float *z, const int z_off, __global const float *y, const int y_off,
                           __global const float *mask, const int mask_off, const int has_mask, const int logits,
                           __global uint *hist, const int hist_off, const int count, const int bins,
                           __local uint *local_hist)
{
    int l = get_local_id(0), L = get_local_size(0);
    for (int b = l; b < 2 * bins; b += L) local_hist[b] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int i = get_global_id(0); i < count; i += get_global_size(0)) {
        if (has_mask && mask[mask_off + i] <= 0.5f) continue;
        int bin = (int)(metrics_prob(z[z_off + i], logits) * (float)bins);
        bin = clamp(bin, 0, bins - 1);
        atomic_inc(&local_hist[(y[y_off + i] > 0.5f ? bins : 0) + bin]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int b = l; b < 2 * bins; b += L)
        if (local_hist[b]) atomic_add(&hist[hist_off + b], local_hist[b]);
}
