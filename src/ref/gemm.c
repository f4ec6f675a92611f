/*
 * gemm.c - reference matrix product: the textbook triple loop in double.
 */
#include "ref/conv.h"

void cn_ref_gemm(int ta, int tb, int m, int n, int k, double alpha, const double *a, int lda, const double *b,
                 int ldb, double beta, double *c, int ldc)
{
    // op(A) is (m,k), op(B) is (k,n), C is (m,n)
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[(long)p * lda + i] : a[(long)i * lda + p];
                double bv = tb ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
                sum += av * bv;
            }
            double *out = &c[(long)i * ldc + j];
            *out = alpha * sum + (beta == 0.0 ? 0.0 : beta * *out);
        }
}
