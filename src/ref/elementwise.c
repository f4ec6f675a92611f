/*
 * elementwise.c - reference residual add, with stochastic depth on its branch.
 */
#include "ref/pointwise.h"

int cn_ref_drop_kept(uint32_t key, int n, double keep)
{
    uint32_t h = key ^ ((uint32_t)n * 0x9E3779B9u);
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return (h >> 8) < (uint32_t)(keep * 16777216.0);
}

static double branch_scale(uint32_t key, int n, double keep)
{
    return cn_ref_drop_kept(key, n, keep) ? 1.0 / keep : 0.0;
}

void cn_ref_add_forward(const double *a, const double *b, double *y, int n, size_t per_sample, double keep,
                        uint32_t key)
{
    for (int s = 0; s < n; s++) {
        double m = branch_scale(key, s, keep);
        for (size_t i = s * per_sample; i < (s + 1) * per_sample; i++) y[i] = a[i] * m + b[i];
    }
}

void cn_ref_add_backward(const double *dy, double *da, double *db, int n, size_t per_sample, double keep,
                         uint32_t key)
{
    for (int s = 0; s < n; s++) {
        double m = branch_scale(key, s, keep);
        for (size_t i = s * per_sample; i < (s + 1) * per_sample; i++) {
            da[i] = dy[i] * m;
            db[i] = dy[i];
        }
    }
}
