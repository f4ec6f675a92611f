/*
 * resample.c - reference decoder step: nearest 2x upsampling concatenated with a skip tensor.
 */
#include "ref/pointwise.h"

void cn_ref_upcat_forward(const double *x, const double *skip, int n, int c1, int c2, int h, int w, double *y)
{
    // x is (N,C1,H,W), skip is (N,C2,2H,2W), y is (N,C1+C2,2H,2W)
    int ho = 2 * h, wo = 2 * w, c = c1 + c2;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++) {
                    double v = ch < c1 ? x[(((size_t)b * c1 + ch) * h + i / 2) * w + j / 2]
                                       : skip[(((size_t)b * c2 + ch - c1) * ho + i) * wo + j];
                    y[(((size_t)b * c + ch) * ho + i) * wo + j] = v;
                }
}

void cn_ref_upcat_backward(const double *dy, int n, int c1, int c2, int h, int w, double *dx, double *dskip)
{
    // dy is (N,C1+C2,2H,2W), dx is (N,C1,H,W), dskip is (N,C2,2H,2W) or NULL (not wanted)
    int ho = 2 * h, wo = 2 * w, c = c1 + c2;
    for (size_t k = 0; k < (size_t)n * c1 * h * w; k++) dx[k] = 0.0;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++) {
                    double g = dy[(((size_t)b * c + ch) * ho + i) * wo + j];
                    if (ch < c1)
                        dx[(((size_t)b * c1 + ch) * h + i / 2) * w + j / 2] += g;
                    else if (dskip)
                        dskip[(((size_t)b * c2 + ch - c1) * ho + i) * wo + j] = g;
                }
}
