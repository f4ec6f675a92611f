/*
 * adam.cl - one Adam step over a flat range of parameters.
 *
 * bc1 = 1 - beta1^t and bc2 = 1 - beta2^t come from the host (computed in
 * double). Weight decay is decoupled (AdamW): p -= lr * wd * p before the step.
 */

__kernel void adam_step(__global float *p, const int p_off, __global const float *g, const int g_off,
                        __global float *m, const int m_off, __global float *v, const int v_off, const int count,
                        const float lr, const float beta1, const float beta2, const float eps, const float wd,
                        const float bc1, const float bc2)
{
    int i = get_global_id(0);
    if (i >= count) return;
    float gi = g[g_off + i];
    float mi = beta1 * m[m_off + i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[v_off + i] + (1.0f - beta2) * gi * gi;
    m[m_off + i] = mi;
    v[v_off + i] = vi;
    float pi = p[p_off + i];
    pi -= lr * wd * pi;
    p[p_off + i] = pi - lr * (mi / bc1) / (sqrt(vi / bc2) + eps);
}

/*
 * avg = decay * avg + (1 - decay) * x over a flat range: the running average
 * of the weights (and BN statistics) that validation and checkpoints use.
 */
__kernel void ema_update(__global float *avg, const int avg_off, __global const float *x, const int x_off,
                         const int count, const float decay)
{
    int i = get_global_id(0);
    if (i >= count) return;
    avg[avg_off + i] = decay * avg[avg_off + i] + (1.0f - decay) * x[x_off + i];
}
