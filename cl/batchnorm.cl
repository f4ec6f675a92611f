/*
 * batchnorm.cl - batch norm over x (N,C,H,W) with per-channel gamma and beta.
 *
 * Training statistics and the backward's per-channel sums are two-stage
 * reductions with no float atomics: stage one gives one partial per
 * (channel, n, chunk of the plane) from a power-of-two work-group in a fixed
 * order; stage two sums a channel's partials in index order in one work item.
 * `work` holds the partials: first array at 0, second at C*parts (parts =
 * N * chunks per channel), then 2*C floats of per-channel results.
 *
 * saved[0..C) is the batch mean and saved[C..2C) the inverse standard
 * deviation, written by the training forward for the backward.
 * Element-wise kernels are launched 2D: (pixel, plane) with plane = n*C + c.
 */

/*
 * Launch: global (chunks * L, N * C), local (L, 1). Sums x - shift and its
 * square, shift being the channel's first value: shifting keeps the one-pass
 * variance from cancelling when the mean is large against the spread.
 */
__kernel void bn_stats_partial(__global const float *x, const int x_off, __global float *work, const int work_off,
                               const int c, const int hw, const int chunk, const int parts,
                               __local float *scratch)
{
    int g = get_group_id(0), p = get_group_id(1), l = get_local_id(0), L = get_local_size(0);
    int chunks = get_num_groups(0), ch = p % c;
    __global const float *xp = x + x_off + (size_t)p * hw;
    float shift = x[x_off + (size_t)ch * hw];
    int end = min(hw, (g + 1) * chunk);
    float s1 = 0.0f, s2 = 0.0f;
    for (int i = g * chunk + l; i < end; i += L) {
        float d = xp[i] - shift;
        s1 += d;
        s2 += d * d;
    }
    s1 = cn_group_sum(scratch, s1);
    s2 = cn_group_sum(scratch, s2);
    if (l == 0) {
        int k = ch * parts + (p / c) * chunks + g;
        work[work_off + k] = s1;
        work[work_off + c * parts + k] = s2;
    }
}

/* One item per channel: batch mean, inverse std, and the running averages (unbiased variance). */
__kernel void bn_stats_final(__global const float *x, const int x_off, __global const float *work,
                             const int work_off, __global float *saved, const int saved_off,
                             __global float *rmean, const int rmean_off,
                             __global float *rvar, const int rvar_off, const int c, const int hw, const int parts,
                             const float m, const float eps, const float momentum)
{
    int ch = get_global_id(0);
    if (ch >= c) return;
    float s1 = 0.0f, s2 = 0.0f;
    for (int k = 0; k < parts; k++) {
        s1 += work[work_off + ch * parts + k];
        s2 += work[work_off + c * parts + ch * parts + k];
    }
    float dmean = s1 / m;
    float var = fmax(s2 / m - dmean * dmean, 0.0f);
    float mean = x[x_off + (size_t)ch * hw] + dmean;
    saved[saved_off + ch] = mean;
    saved[saved_off + c + ch] = rsqrt(var + eps);
    rmean[rmean_off + ch] = (1.0f - momentum) * rmean[rmean_off + ch] + momentum * mean;
    rvar[rvar_off + ch] = (1.0f - momentum) * rvar[rvar_off + ch] + momentum * var * (m / (m - 1.0f));
}

/* y = (x - mean) * invstd * gamma + beta with the saved batch statistics. */
__kernel void bn_apply(__global const float *x, const int x_off, __global float *y, const int y_off,
                       __global const float *gamma, const int gamma_off, __global const float *beta,
                       const int beta_off, __global const float *saved, const int saved_off, const int c,
                       const int hw, const int planes)
{
    int i = get_global_id(0), p = get_global_id(1);
    if (i >= hw || p >= planes) return;
    int ch = p % c;
    float scale = saved[saved_off + c + ch] * gamma[gamma_off + ch];
    size_t k = (size_t)p * hw + i;
    y[y_off + k] = (x[x_off + k] - saved[saved_off + ch]) * scale + beta[beta_off + ch];
}

/* Inference: the same with the running statistics. */
__kernel void bn_apply_eval(__global const float *x, const int x_off, __global float *y, const int y_off,
                            __global const float *gamma, const int gamma_off, __global const float *beta,
                            const int beta_off, __global const float *rmean, const int rmean_off,
                            __global const float *rvar, const int rvar_off, const float eps, const int c,
                            const int hw, const int planes)
{
    int i = get_global_id(0), p = get_global_id(1);
    if (i >= hw || p >= planes) return;
    int ch = p % c;
    float scale = rsqrt(rvar[rvar_off + ch] + eps) * gamma[gamma_off + ch];
    size_t k = (size_t)p * hw + i;
    y[y_off + k] = (x[x_off + k] - rmean[rmean_off + ch]) * scale + beta[beta_off + ch];
}

/* Launch as bn_stats_partial: per-chunk sums of dy and dy * (x - mean). */
__kernel void bn_bwd_partial(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                             __global const float *saved, const int saved_off, __global float *work, const int work_off,
                             const int c, const int hw, const int chunk, const int parts, __local float *scratch)
{
    int g = get_group_id(0), p = get_group_id(1), l = get_local_id(0), L = get_local_size(0);
    int chunks = get_num_groups(0), ch = p % c;
    size_t base = (size_t)p * hw;
    float mean = saved[saved_off + ch];
    int end = min(hw, (g + 1) * chunk);
    float s1 = 0.0f, s2 = 0.0f;
    for (int i = g * chunk + l; i < end; i += L) {
        float d = dy[dy_off + base + i];
        s1 += d;
        s2 += d * (x[x_off + base + i] - mean);
    }
    s1 = cn_group_sum(scratch, s1);
    s2 = cn_group_sum(scratch, s2);
    if (l == 0) {
        int k = ch * parts + (p / c) * chunks + g;
        work[work_off + k] = s1;
        work[work_off + c * parts + k] = s2;
    }
}

/*
 * One item per channel: dbeta += sum dy, dgamma += sum dy * xhat (parameter
 * gradients accumulate), and the means of dy and dy * xhat for bn_bwd_dx.
 */
__kernel void bn_bwd_final(__global float *work, const int work_off, __global const float *saved, const int saved_off,
                           __global float *dgamma, const int dgamma_off, __global float *dbeta, const int dbeta_off,
                           const int c, const int parts, const float m)
{
    int ch = get_global_id(0);
    if (ch >= c) return;
    float s1 = 0.0f, s2 = 0.0f;
    for (int k = 0; k < parts; k++) {
        s1 += work[work_off + ch * parts + k];
        s2 += work[work_off + c * parts + ch * parts + k];
    }
    float dyxhat = s2 * saved[saved_off + c + ch];
    dbeta[dbeta_off + ch] += s1;
    dgamma[dgamma_off + ch] += dyxhat;
    work[work_off + 2 * c * parts + ch] = s1 / m;
    work[work_off + 2 * c * parts + c + ch] = dyxhat / m;
}

/* dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)). */
__kernel void bn_bwd_dx(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                        __global float *dx, const int dx_off, __global const float *gamma, const int gamma_off,
                        __global const float *saved, const int saved_off, __global const float *work,
                        const int work_off,
                        const int c, const int hw, const int parts, const int planes, const int acc)
{
    int i = get_global_id(0), p = get_global_id(1);
    if (i >= hw || p >= planes) return;
    int ch = p % c;
    float inv = saved[saved_off + c + ch];
    size_t k = (size_t)p * hw + i;
    float xhat = (x[x_off + k] - saved[saved_off + ch]) * inv;
    float v = gamma[gamma_off + ch] * inv *
              (dy[dy_off + k] - work[work_off + 2 * c * parts + ch] - xhat * work[work_off + 2 * c * parts + c + ch]);
    dx[dx_off + k] = acc ? dx[dx_off + k] + v : v;
}
