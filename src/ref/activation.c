/*
 * activation.c - reference swish (SiLU), sigmoid and ReLU, forward and backward.
 */
#include <math.h>

#include "ref/pointwise.h"

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

void cn_ref_swish_forward(const double *x, double *y, size_t count)
{
    for (size_t i = 0; i < count; i++) y[i] = x[i] * sigmoid(x[i]);
}

void cn_ref_swish_backward(const double *x, const double *dy, double *dx, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        double s = sigmoid(x[i]);
        dx[i] = dy[i] * (s + x[i] * s * (1.0 - s));
    }
}

void cn_ref_sigmoid_forward(const double *x, double *y, size_t count)
{
    for (size_t i = 0; i < count; i++) y[i] = sigmoid(x[i]);
}

void cn_ref_sigmoid_backward(const double *y, const double *dy, double *dx, size_t count)
{
    for (size_t i = 0; i < count; i++) dx[i] = dy[i] * y[i] * (1.0 - y[i]);
}

void cn_ref_relu_forward(const double *x, double *y, size_t count)
{
    for (size_t i = 0; i < count; i++) y[i] = x[i] > 0.0 ? x[i] : 0.0;
}

void cn_ref_relu_backward(const double *x, const double *dy, double *dx, size_t count)
{
    for (size_t i = 0; i < count; i++) dx[i] = x[i] > 0.0 ? dy[i] : 0.0;
}
