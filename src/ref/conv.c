/*
 * conv.c - reference conv2d (NCHW, grouped, padded per side, strided) in
 * double: direct loops over every output and tap, no im2col.
 */
#include <stddef.h>

#include "ref/conv.h"

int cn_ref_conv2d_out_h(const cn_ref_conv2d *s) { return (s->h + s->pad_t + s->pad_b - s->k) / s->stride + 1; }
int cn_ref_conv2d_out_w(const cn_ref_conv2d *s) { return (s->w + s->pad_l + s->pad_r - s->k) / s->stride + 1; }

/* Runs BODY once per multiply of the convolution, with the flat indices xi, wi and yi set. */
#define FOR_EACH_TAP(s, BODY)                                                                              \
    do {                                                                                                   \
        int ho_ = cn_ref_conv2d_out_h(s), wo_ = cn_ref_conv2d_out_w(s);                                   \
        int cin_g_ = (s)->c / (s)->groups, cout_g_ = (s)->cout / (s)->groups;                              \
        for (int n_ = 0; n_ < (s)->n; n_++)                                                                \
            for (int co_ = 0; co_ < (s)->cout; co_++)                                                      \
                for (int oy_ = 0; oy_ < ho_; oy_++)                                                        \
                    for (int ox_ = 0; ox_ < wo_; ox_++) {                                                  \
                        size_t yi = (((size_t)n_ * (s)->cout + co_) * ho_ + oy_) * wo_ + ox_;              \
                        int g_ = co_ / cout_g_;                                                            \
                        for (int ci_ = 0; ci_ < cin_g_; ci_++)                                             \
                            for (int ky_ = 0; ky_ < (s)->k; ky_++)                                         \
                                for (int kx_ = 0; kx_ < (s)->k; kx_++) {                                   \
                                    int iy_ = oy_ * (s)->stride - (s)->pad_t + ky_;                        \
                                    int ix_ = ox_ * (s)->stride - (s)->pad_l + kx_;                        \
                                    if (iy_ < 0 || iy_ >= (s)->h || ix_ < 0 || ix_ >= (s)->w) continue;    \
                                    int c_ = g_ * cin_g_ + ci_;                                            \
                                    size_t xi = (((size_t)n_ * (s)->c + c_) * (s)->h + iy_) * (s)->w + ix_; \
                                    size_t wi = (((size_t)co_ * cin_g_ + ci_) * (s)->k + ky_) * (s)->k + kx_; \
                                    BODY;                                                                  \
                                }                                                                          \
                    }                                                                                      \
    } while (0)

void cn_ref_conv2d_forward(const cn_ref_conv2d *s, const double *x, const double *w, const double *b, double *y)
{
    // x is (n,c,h,w), w is (cout, c/groups, k, k), y is (n, cout, ho, wo)
    size_t hw = (size_t)cn_ref_conv2d_out_h(s) * cn_ref_conv2d_out_w(s);
    for (size_t i = 0; i < (size_t)s->n * s->cout * hw; i++) y[i] = b ? b[(i / hw) % (size_t)s->cout] : 0.0;
    FOR_EACH_TAP(s, y[yi] += x[xi] * w[wi]);
}

void cn_ref_conv2d_backward(const cn_ref_conv2d *s, const double *x, const double *w, const double *dy, double *dx,
                            double *dw, double *db)
{
    // x is (n,c,h,w), w is (cout, c/groups, k, k), dy is (n, cout, ho, wo)
    if (dx) FOR_EACH_TAP(s, dx[xi] += dy[yi] * w[wi]);
    if (dw) FOR_EACH_TAP(s, dw[wi] += dy[yi] * x[xi]);
    if (db) {
        size_t hw = (size_t)cn_ref_conv2d_out_h(s) * cn_ref_conv2d_out_w(s);
        for (size_t i = 0; i < (size_t)s->n * s->cout * hw; i++) db[(i / hw) % (size_t)s->cout] += dy[i];
    }
}
