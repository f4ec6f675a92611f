/*
 * batchnorm.c - reference batch norm over (N,C,H,W) with per-channel gamma/beta.
 */
#include <math.h>

#include "ref/pointwise.h"

static void channel_stats(const double *x, int n, int c, int hw, int ch, double *mean, double *var)
{
    double sum = 0.0, sq = 0.0;
    for (int b = 0; b < n; b++)
        for (int i = 0; i < hw; i++) sum += x[((size_t)b * c + ch) * hw + i];
    double mu = sum / ((double)n * hw);
    for (int b = 0; b < n; b++)
        for (int i = 0; i < hw; i++) {
            double d = x[((size_t)b * c + ch) * hw + i] - mu;
            sq += d * d;
        }
    *mean = mu;
    *var = sq / ((double)n * hw);
}

void cn_ref_batchnorm_forward_train(const double *x, int n, int c, int h, int w, const double *gamma,
                                    const double *beta, double eps, double *y, double *mean, double *var)
{
    // x is (N,C,H,W)
    int hw = h * w;
    for (int ch = 0; ch < c; ch++) {
        channel_stats(x, n, c, hw, ch, &mean[ch], &var[ch]);
        double inv = 1.0 / sqrt(var[ch] + eps);
        for (int b = 0; b < n; b++)
            for (int i = 0; i < hw; i++) {
                size_t k = ((size_t)b * c + ch) * hw + i;
                y[k] = (x[k] - mean[ch]) * inv * gamma[ch] + beta[ch];
            }
    }
}

void cn_ref_batchnorm_running_update(const double *mean, const double *var, int c, size_t count, double momentum,
                                     double *running_mean, double *running_var)
{
    for (int ch = 0; ch < c; ch++) {
        double unbiased = var[ch] * (double)count / (double)(count - 1);
        running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mean[ch];
        running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * unbiased;
    }
}

void cn_ref_batchnorm_forward_eval(const double *x, int n, int c, int h, int w, const double *gamma,
                                   const double *beta, const double *running_mean, const double *running_var,
                                   double eps, double *y)
{
    // x is (N,C,H,W)
    int hw = h * w;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            double inv = 1.0 / sqrt(running_var[ch] + eps);
            for (int i = 0; i < hw; i++) {
                size_t k = ((size_t)b * c + ch) * hw + i;
                y[k] = (x[k] - running_mean[ch]) * inv * gamma[ch] + beta[ch];
            }
        }
}

void cn_ref_batchnorm_backward(const double *x, const double *dy, int n, int c, int h, int w,
                               const double *gamma, double eps, double *dx, double *dgamma, double *dbeta)
{
    // x, dy, dx are (N,C,H,W)
    int hw = h * w;
    double m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double mean, var;
        channel_stats(x, n, c, hw, ch, &mean, &var);
        double inv = 1.0 / sqrt(var + eps);
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < hw; i++) {
                size_t k = ((size_t)b * c + ch) * hw + i;
                sum_dy += dy[k];
                sum_dy_xhat += dy[k] * (x[k] - mean) * inv;
            }
        dgamma[ch] = sum_dy_xhat;
        dbeta[ch] = sum_dy;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < hw; i++) {
                size_t k = ((size_t)b * c + ch) * hw + i;
                double xhat = (x[k] - mean) * inv;
                dx[k] = gamma[ch] * inv * (dy[k] - sum_dy / m - xhat * sum_dy_xhat / m);
            }
    }
}
