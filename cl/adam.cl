/*
 * adam.cl - one Adam step over a flat range of parameters.
 *
 * bc1 = 1 - beta1^t and bc2 = 1 - beta2^t come from the host (computed in
 * double). Weight decay is decoupled (AdamW): p -= lr * wd * p before the step.
 * An item covers `span` floats (CN_SPAN, cl/common.cl): float16 vectors on CPUs.
 */

#define ADAM_BODY(T, LOAD, STORE, SIG)                                                  \
    {                                                                                   \
        const T gi = LOAD(g + i);                                                       \
        const T mi = beta1 * LOAD(m + i) + (1.0f - beta1) * gi;                         \
        const T vi = beta2 * LOAD(v + i) + (1.0f - beta2) * gi * gi;                    \
        STORE(m + i, mi);                                                               \
        STORE(v + i, vi);                                                               \
        T pi = LOAD(p + i);                                                             \
        pi -= lr * wd * pi;                                                             \
        STORE(p + i, pi - lr * (mi / bc1) / (sqrt(vi / bc2) + eps));                    \
    }
__kernel void adam_step(__global float *p, const int p_off, __global const float *g, const int g_off,
                        __global float *m, const int m_off, __global float *v, const int v_off, const int count,
                        const int span, const float lr, const float beta1, const float beta2, const float eps,
                        const float wd, const float bc1, const float bc2)
{
    p += p_off, g += g_off, m += m_off, v += v_off;
    CN_SPAN(ADAM_BODY)
}

/*
 * avg = decay * avg + (1 - decay) * x over a flat range: the running average
 * of the weights (and BN statistics) that validation and checkpoints use.
 */
#define EMA_BODY(T, LOAD, STORE, SIG) STORE(avg + i, decay * LOAD(avg + i) + (1.0f - decay) * LOAD(x + i));
__kernel void ema_update(__global float *avg, const int avg_off, __global const float *x, const int x_off,
                         const int count, const int span, const float decay)
{
    avg += avg_off, x += x_off;
    CN_SPAN(EMA_BODY)
}
