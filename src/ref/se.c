/*
 * se.c - reference squeeze-excitation pieces: global average pool and channel scale.
 */
#include "ref/pointwise.h"

void cn_ref_avgpool_forward(const double *x, int n, int c, int h, int w, double *y)
{
    // x is (N,C,H,W), y is (N,C,1,1)
    size_t hw = (size_t)h * w;
    for (size_t p = 0; p < (size_t)n * c; p++) {
        double sum = 0.0;
        for (size_t i = 0; i < hw; i++) sum += x[p * hw + i];
        y[p] = sum / (double)hw;
    }
}

void cn_ref_avgpool_backward(const double *dy, int n, int c, int h, int w, double *dx)
{
    // dy is (N,C,1,1), dx is (N,C,H,W)
    size_t hw = (size_t)h * w;
    for (size_t p = 0; p < (size_t)n * c; p++)
        for (size_t i = 0; i < hw; i++) dx[p * hw + i] = dy[p] / (double)hw;
}

void cn_ref_chscale_forward(const double *x, const double *s, int n, int c, int h, int w, double *y)
{
    // x, y are (N,C,H,W), s is (N,C,1,1)
    size_t hw = (size_t)h * w;
    for (size_t p = 0; p < (size_t)n * c; p++)
        for (size_t i = 0; i < hw; i++) y[p * hw + i] = x[p * hw + i] * s[p];
}

void cn_ref_chscale_backward(const double *x, const double *s, const double *dy, int n, int c, int h, int w,
                             double *dx, double *ds)
{
    // x, dy, dx are (N,C,H,W), s and ds are (N,C,1,1)
    size_t hw = (size_t)h * w;
    for (size_t p = 0; p < (size_t)n * c; p++) {
        double sum = 0.0;
        for (size_t i = 0; i < hw; i++) {
            dx[p * hw + i] = dy[p * hw + i] * s[p];
            sum += dy[p * hw + i] * x[p * hw + i];
        }
        ds[p] = sum;
    }
}
