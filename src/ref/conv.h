/*
 * conv.h - plain-C references for the convolution family (GEMM, conv2d,
 * depthwise conv), in double, written for clarity rather than speed. They
 * share nothing with the OpenCL path: the tests trust them.
 */
#ifndef CLUNET_REF_CONV_H
#define CLUNET_REF_CONV_H

/*
 * Row-major C = alpha * op(A) * op(B) + beta * C with C (m,n), op(A) (m,k),
 * op(B) (k,n); op(A) = A^T when ta (A is then stored (k,m)), likewise B.
 * With beta == 0, C is not read.
 */
void cn_ref_gemm(int ta, int tb, int m, int n, int k, double alpha, const double *a, int lda, const double *b,
                 int ldb, double beta, double *c, int ldc);

/* The shape of one conv2d: input (n,c,h,w), weights (cout, c/groups, k, k). */
typedef struct cn_ref_conv2d {
    int n, c, h, w;
    int cout, k, stride;
    int pad_t, pad_l, pad_b, pad_r;
    int groups;
} cn_ref_conv2d;

int cn_ref_conv2d_out_h(const cn_ref_conv2d *s);
int cn_ref_conv2d_out_w(const cn_ref_conv2d *s);

/* y = conv(x, w) + b; y is (n, cout, ho, wo); b may be NULL. */
void cn_ref_conv2d_forward(const cn_ref_conv2d *s, const double *x, const double *w, const double *b, double *y);

/* Adds the gradients of sum(y * dy) into dx, dw, db; each may be NULL to skip it. */
void cn_ref_conv2d_backward(const cn_ref_conv2d *s, const double *x, const double *w, const double *dy, double *dx,
                            double *dw, double *db);

#endif
