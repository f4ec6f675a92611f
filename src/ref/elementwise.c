/*
 * elementwise.c - reference residual add.
 */
#include "ref/pointwise.h"

void cn_ref_add_forward(const double *a, const double *b, double *y, size_t count)
{
    for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

void cn_ref_add_backward(const double *dy, double *da, double *db, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        da[i] = dy[i];
        db[i] = dy[i];
    }
}
