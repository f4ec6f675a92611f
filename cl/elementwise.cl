/*
 * elementwise.cl - the residual add y = a * m[n] + b and its backward, where
 * m[n] is stochastic depth's per-sample scale of the branch `a` (1 without).
 */

/*
 * Sample n's branch scale: `scale` (1/keep) when the top 24 bits of a hash of
 * (key, n) fall below `threshold` (keep * 2^24), else 0. The host reference
 * (cn_ref_drop_kept) computes the same hash.
 */
inline float drop_scale(uint key, int n, uint threshold, float scale)
{
    uint h = key ^ ((uint)n * 0x9E3779B9u);
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return (h >> 8) < threshold ? scale : 0.0f;
}

/* One row of work-items per sample: the scale is uniform along axis 0. */
__kernel void add_fwd(__global const float *a, const int a_off, __global const float *b, const int b_off,
                      __global float *y, const int y_off, const int per_sample, const uint threshold, const uint key,
                      const float scale)
{
    int i = get_global_id(0), n = get_global_id(1);
    if (i >= per_sample) return;
    float m = drop_scale(key, n, threshold, scale);
    int at = n * per_sample + i;
    y[y_off + at] = a[a_off + at] * m + b[b_off + at];
}

/* da = dy * m[n], db = dy; `acc` adds into da and db instead of writing. */
__kernel void add_bwd(__global const float *dy, const int dy_off, __global float *da, const int da_off,
                      __global float *db, const int db_off, const int per_sample, const int acc,
                      const uint threshold, const uint key, const float scale)
{
    int i = get_global_id(0), n = get_global_id(1);
    if (i >= per_sample) return;
    float m = drop_scale(key, n, threshold, scale);
    int at = n * per_sample + i;
    float g = dy[dy_off + at];
    da[da_off + at] = acc ? da[da_off + at] + g * m : g * m;
    db[db_off + at] = acc ? db[db_off + at] + g : g;
}
