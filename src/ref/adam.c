/*
 * adam.c - reference Adam step with bias correction and decoupled (AdamW) weight
 * decay, and the running average of the weights.
 */
#include <math.h>

#include "ref/pointwise.h"

void cn_ref_adam(double *p, const double *g, double *m, double *v, size_t count, double lr, double beta1,
                 double beta2, double eps, double weight_decay, int t)
{
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    for (size_t i = 0; i < count; i++) {
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
        p[i] -= lr * weight_decay * p[i];
        p[i] -= lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + eps);
    }
}

void cn_ref_ema(double *avg, const double *x, size_t count, double decay)
{
    for (size_t i = 0; i < count; i++) avg[i] = decay * avg[i] + (1.0 - decay) * x[i];
}
