/*
 * batchnorm.cl - batch norm over x (N,C,H,W) with per-channel gamma and beta.
 *
 * Training statistics and the backward's per-channel sums are two-stage
 * reductions with no float atomics: stage one gives one partial per
 * (channel, n, chunk of the plane) in a fixed order; stage two sums a
 * channel's partials in index order in one work item. `work` holds the
 * partials: first array at 0, second at C*parts (parts = N * chunks per
 * channel), then 2*C floats of per-channel results.
 *
 * Stage one comes in two forms: `*_group` (a work-group per chunk, a local
 * memory tree: GPUs) and `*_serial` (one work-item per chunk with float16
 * vector loops: CPUs, where barriers and loops over the items are slow).
 *
 * saved[0..C) is the batch mean and saved[C..2C) the inverse standard
 * deviation, written by the training forward for the backward.
 * Element-wise kernels are launched 2D: (span, plane) with plane = n*C + c;
 * an item covers `span` pixels of its plane (1 on GPUs, a chunk on CPUs).
 */

/* Where partial g of plane p goes in work (channel-major, then n, then chunk). */
int bn_part(int p, int g, int c, int chunks, int parts) { return (p % c) * parts + (p / c) * chunks + g; }

/*
 * Launch: global (chunks * L, N * C), local (L, 1). Sums x - shift and its
 * square, shift being the channel's first value: shifting keeps the one-pass
 * variance from cancelling when the mean is large against the spread.
 */
__kernel void bn_stats_group(__global const float *x, const int x_off, __global float *work, const int work_off,
                             const int c, const int hw, const int chunk, const int parts, __local float *scratch)
{
    int g = get_group_id(0), p = get_group_id(1), l = get_local_id(0), L = get_local_size(0);
    int chunks = get_num_groups(0);
    __global const float *xp = x + x_off + (size_t)p * hw;
    float shift = x[x_off + (size_t)(p % c) * hw];
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
        int k = bn_part(p, g, c, chunks, parts);
        work[work_off + k] = s1;
        work[work_off + c * parts + k] = s2;
    }
}

/* The same sums, launch: global (chunks, N * C), one item per chunk. */
__kernel void bn_stats_serial(__global const float *x, const int x_off, __global float *work, const int work_off,
                              const int c, const int hw, const int chunk, const int parts)
{
    int g = get_global_id(0), p = get_global_id(1), chunks = (hw + chunk - 1) / chunk;
    if (g >= chunks) return;
    __global const float *xp = x + x_off + (size_t)p * hw;
    float shift = x[x_off + (size_t)(p % c) * hw];
    int i = g * chunk, end = min(hw, i + chunk);
    float16 v1 = (float16)(0.0f), v2 = (float16)(0.0f);
    for (; i + 16 <= end; i += 16) {
        float16 d = vload16(0, xp + i) - shift;
        v1 += d;
        v2 += d * d;
    }
    float s1 = cn_lanes_sum(v1), s2 = cn_lanes_sum(v2);
    for (; i < end; i++) {
        float d = xp[i] - shift;
        s1 += d;
        s2 += d * d;
    }
    int k = bn_part(p, g, c, chunks, parts);
    work[work_off + k] = s1;
    work[work_off + c * parts + k] = s2;
}

/* Channel ch's two sums from the partials in work (first array, then second), added in index order. */
float2 bn_channel_sums(__global const float *work, const int work_off, const int c, const int parts, const int ch)
{
    float2 s = (float2)(0.0f, 0.0f);
    for (int k = 0; k < parts; k++) {
        s.x += work[work_off + ch * parts + k];
        s.y += work[work_off + c * parts + ch * parts + k];
    }
    return s;
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
    float2 sums = bn_channel_sums(work, work_off, c, parts, ch);
    float s1 = sums.x, s2 = sums.y;
    float dmean = s1 / m;
    float var = fmax(s2 / m - dmean * dmean, 0.0f);
    float mean = x[x_off + (size_t)ch * hw] + dmean;
    saved[saved_off + ch] = mean;
    saved[saved_off + c + ch] = rsqrt(var + eps);
    rmean[rmean_off + ch] = (1.0f - momentum) * rmean[rmean_off + ch] + momentum * mean;
    rvar[rvar_off + ch] = (1.0f - momentum) * rvar[rvar_off + ch] + momentum * var * (m / (m - 1.0f));
}

#define BN_ACT_NONE 0
#define BN_ACT_SWISH 1
#define BN_ACT_RELU 2

/*
 * y = (x - mean) * scale + beta over [i, end) of a plane (written when
 * write_y); with act, also z = swish(y) or relu(y), as cl/activation.cl
 * computes them, so a fused pass gives the same bits as the two kernels.
 */
void bn_normalise(__global const float *x, __global float *y, __global float *z, int act, int write_y, int i,
                  int end, float mean, float scale, float beta)
{
    for (; i + 16 <= end; i += 16) {
        const float16 v = (vload16(0, x + i) - mean) * scale + beta;
        if (write_y) cn_stream16(v, y + i);
        if (act == BN_ACT_SWISH) cn_stream16(v * cn_sigmoid16(v), z + i);
        else if (act == BN_ACT_RELU) cn_stream16(fmax(v, 0.0f), z + i);
    }
    for (; i < end; i++) {
        const float v = (x[i] - mean) * scale + beta;
        if (write_y) y[i] = v;
        if (act == BN_ACT_SWISH) z[i] = v * cn_sigmoid(v);
        else if (act == BN_ACT_RELU) z[i] = fmax(v, 0.0f);
    }
}

/* Training: normalise with the saved batch statistics (then bn_normalise's activation). */
__kernel void bn_apply(__global const float *x, const int x_off, __global float *y, const int y_off,
                       __global const float *gamma, const int gamma_off, __global const float *beta,
                       const int beta_off, __global const float *saved, const int saved_off, const int c,
                       const int hw, const int planes, const int span, __global float *z, const int z_off,
                       const int act, const int write_y)
{
    int i = get_global_id(0) * span, p = get_global_id(1);
    if (i >= hw || p >= planes) return;
    int ch = p % c;
    size_t base = (size_t)p * hw;
    bn_normalise(x + x_off + base, y + y_off + base, z + z_off + base, act, write_y, i, i + min(span, hw - i),
                 saved[saved_off + ch], saved[saved_off + c + ch] * gamma[gamma_off + ch], beta[beta_off + ch]);
}

/* Inference: the same with the running statistics. */
__kernel void bn_apply_eval(__global const float *x, const int x_off, __global float *y, const int y_off,
                            __global const float *gamma, const int gamma_off, __global const float *beta,
                            const int beta_off, __global const float *rmean, const int rmean_off,
                            __global const float *rvar, const int rvar_off, const float eps, const int c,
                            const int hw, const int planes, const int span, __global float *z, const int z_off,
                            const int act, const int write_y)
{
    int i = get_global_id(0) * span, p = get_global_id(1);
    if (i >= hw || p >= planes) return;
    int ch = p % c;
    size_t base = (size_t)p * hw;
    bn_normalise(x + x_off + base, y + y_off + base, z + z_off + base, act, write_y, i, i + min(span, hw - i),
                 rmean[rmean_off + ch], rsqrt(rvar[rvar_off + ch] + eps) * gamma[gamma_off + ch],
                 beta[beta_off + ch]);
}

/*
 * Inference's batch norm as a conv's epilogue (cn_epilogue16): ep[2 ch] =
 * gamma / sqrt(running var + eps), ep[2 ch + 1] = beta - running mean *
 * ep[2 ch]. Global (C).
 */
__kernel void bn_fold(__global const float *gamma, const int gamma_off, __global const float *beta,
                      const int beta_off, __global const float *rmean, const int rmean_off,
                      __global const float *rvar, const int rvar_off, const float eps, const int c,
                      __global float *ep, const int ep_off)
{
    const int ch = get_global_id(0);
    if (ch >= c) return;
    const float scale = rsqrt(rvar[rvar_off + ch] + eps) * gamma[gamma_off + ch];
    ep[ep_off + 2 * ch] = scale;
    ep[ep_off + 2 * ch + 1] = beta[beta_off + ch] - rmean[rmean_off + ch] * scale;
}

/*
 * The epilogue in place over rows of a matrix, row r being channel r: for the
 * conv paths whose kernels do not apply it as they store. Global (ceil(n/16),
 * m, batch): 16 values of row r of matrix b, the matrices `stride` apart.
 */
__kernel void bn_epilogue(__global float *c, const int c_off, const int ldc, const int stride, const int n,
                          __global const float *ep, const int ep_off, const int act)
{
    const int j = get_global_id(0) * 16, r = get_global_id(1);
    __global float *row = c + c_off + get_global_id(2) * stride + r * ldc;
    ep += ep_off;
    if (j + 16 <= n) {
        vstore16(cn_epilogue16(vload16(0, row + j), ep, r, act), 0, row + j);
        return;
    }
    for (int q = j; q < n; q++) row[q] = cn_epilogue(row[q], ep, r, act);
}

/*
 * The backward kernels take dy, the gradient of the batch norm's output y, or
 * with act (the training forward fused with it) the gradient of act(y): then
 * y = (x - mean) * scale + beta is recomputed from x as bn_normalise computes
 * it, and dy is that gradient times act'(y), as cl/activation.cl's backward
 * computes it, so y is never stored. For swish, whose slope costs more than a
 * pass over memory, the sums' pass writes dy (write_dy) for bn_bwd_dx to read;
 * for ReLU both passes recompute it.
 */
#define BN_ACT_DY(T, NAME, SIG)                                                                        \
    T NAME(T d, T xv, float mean, float scale, float beta, int act)                                   \
    {                                                                                                  \
        if (act == BN_ACT_NONE) return d;                                                              \
        T v = (xv - mean) * scale + beta;                                                              \
        if (act == BN_ACT_RELU) return select((T)(0.0f), d, v > 0.0f);                                 \
        T s = SIG(v);                                                                                  \
        return d * CN_SWISH_SLOPE(v, s);                                                               \
    }
BN_ACT_DY(float, bn_act_dy, cn_sigmoid)
BN_ACT_DY(float16, bn_act_dy16, cn_sigmoid16)

/* Launch as bn_stats_group: per-chunk sums of dy and dy * (x - mean). */
__kernel void bn_bwd_group(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                           __global const float *saved, const int saved_off, __global const float *gamma,
                           const int gamma_off, __global const float *beta, const int beta_off, const int act,
                           __global float *dyw, const int dyw_off, const int write_dy, __global float *work,
                           const int work_off, const int c, const int hw, const int chunk, const int parts,
                           __local float *scratch)
{
    int g = get_group_id(0), p = get_group_id(1), l = get_local_id(0), L = get_local_size(0);
    int chunks = get_num_groups(0), ch = p % c;
    size_t base = (size_t)p * hw;
    float mean = saved[saved_off + ch], scale = saved[saved_off + c + ch] * gamma[gamma_off + ch];
    float b = beta[beta_off + ch];
    int end = min(hw, (g + 1) * chunk);
    float s1 = 0.0f, s2 = 0.0f;
    for (int i = g * chunk + l; i < end; i += L) {
        float xv = x[x_off + base + i], d = bn_act_dy(dy[dy_off + base + i], xv, mean, scale, b, act);
        if (write_dy) dyw[dyw_off + base + i] = d;
        s1 += d;
        s2 += d * (xv - mean);
    }
    s1 = cn_group_sum(scratch, s1);
    s2 = cn_group_sum(scratch, s2);
    if (l == 0) {
        int k = bn_part(p, g, c, chunks, parts);
        work[work_off + k] = s1;
        work[work_off + c * parts + k] = s2;
    }
}

/* Launch as bn_stats_serial: the same sums, one item per chunk. */
__kernel void bn_bwd_serial(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                            __global const float *saved, const int saved_off, __global const float *gamma,
                            const int gamma_off, __global const float *beta, const int beta_off, const int act,
                            __global float *dyw, const int dyw_off, const int write_dy, __global float *work,
                            const int work_off, const int c, const int hw, const int chunk, const int parts)
{
    int g = get_global_id(0), p = get_global_id(1), chunks = (hw + chunk - 1) / chunk, ch = p % c;
    if (g >= chunks) return;
    size_t base = (size_t)p * hw;
    __global const float *xp = x + x_off + base, *dyp = dy + dy_off + base;
    __global float *dywp = dyw + dyw_off + base;
    float mean = saved[saved_off + ch], scale = saved[saved_off + c + ch] * gamma[gamma_off + ch];
    float b = beta[beta_off + ch];
    int i = g * chunk, end = min(hw, i + chunk);
    float16 v1 = (float16)(0.0f), v2 = (float16)(0.0f);
    for (; i + 16 <= end; i += 16) {
        float16 xv = vload16(0, xp + i), d = bn_act_dy16(vload16(0, dyp + i), xv, mean, scale, b, act);
        if (write_dy) vstore16(d, 0, dywp + i);
        v1 += d;
        v2 += d * (xv - mean);
    }
    float s1 = cn_lanes_sum(v1), s2 = cn_lanes_sum(v2);
    for (; i < end; i++) {
        float d = bn_act_dy(dyp[i], xp[i], mean, scale, b, act);
        if (write_dy) dywp[i] = d;
        s1 += d;
        s2 += d * (xp[i] - mean);
    }
    int k = bn_part(p, g, c, chunks, parts);
    work[work_off + k] = s1;
    work[work_off + c * parts + k] = s2;
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
    float2 sums = bn_channel_sums(work, work_off, c, parts, ch);
    float s1 = sums.x, s2 = sums.y;
    float dyxhat = s2 * saved[saved_off + c + ch];
    dbeta[dbeta_off + ch] += s1;
    dgamma[dgamma_off + ch] += dyxhat;
    work[work_off + 2 * c * parts + ch] = s1 / m;
    work[work_off + 2 * c * parts + c + ch] = dyxhat / m;
}

/* dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), added to dx when `acc`. */
__kernel void bn_bwd_dx(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                        __global float *dx, const int dx_off, __global const float *gamma, const int gamma_off,
                        __global const float *saved, const int saved_off, __global const float *work,
                        const int work_off, const int c, const int hw, const int parts, const int planes,
                        const int span, const int acc, __global const float *beta, const int beta_off,
                        const int act)
{
    int i = get_global_id(0) * span, p = get_global_id(1);
    if (i >= hw || p >= planes) return;
    int ch = p % c, end = i + min(span, hw - i);
    float inv = saved[saved_off + c + ch], mean = saved[saved_off + ch];
    float scale = gamma[gamma_off + ch] * inv, mdy = work[work_off + 2 * c * parts + ch], b = beta[beta_off + ch];
    // xhat * mean(dy * xhat) = (x - mean) * k
    float k = inv * work[work_off + 2 * c * parts + c + ch];
    size_t base = (size_t)p * hw;
    __global const float *xp = x + x_off + base, *dyp = dy + dy_off + base;
    __global float *dxp = dx + dx_off + base;
    for (; i + 16 <= end; i += 16) {
        float16 xv = vload16(0, xp + i);
        float16 v = scale * (bn_act_dy16(vload16(0, dyp + i), xv, mean, scale, b, act) - mdy - (xv - mean) * k);
        if (acc) vstore16(vload16(0, dxp + i) + v, 0, dxp + i);
        else cn_stream16(v, dxp + i);
    }
    for (; i < end; i++) {
        float v = scale * (bn_act_dy(dyp[i], xp[i], mean, scale, b, act) - mdy - (xp[i] - mean) * k);
        dxp[i] = acc ? dxp[i] + v : v;
    }
}
