/*
 * gemm.cl - row-major single-precision matrix products for the ops in
 * src/ops/gemm.c:  C = alpha * op(A) * op(B) + beta * C,  C (M,N), op(A) (M,K),
 * op(B) (K,N), batched by get_global_id(2) with element strides.
 *
 * Two families:
 *  - gemm_nn / gemm_nt: register tiles of explicit float16 vectors, one work-item
 *    per work-group, for CPU devices, where the compiler vectorises explicit
 *    vectors but not a loop over K. Their tile sizes (GEMM_MR, GEMM_NT) are
 *    chosen per device by timing: what fits the registers differs (AVX2,
 *    AVX-512). Each work-item walks K in blocks of GEMM_KC and, inside a
 *    block, every micro-tile of its row range, so the block of B it holds
 *    stays in L1 while rows of A stream past. gemm_nn takes A or A^T
 *    (GEMM_TA) and B; gemm_nt takes A and B^T, vectorised along K since both are
 *    contiguous there. gemv takes the products with a single column, gemm_k1
 *    those with K == 1.
 *  - gemm_tiled: the classic local-memory tiling for GPUs, any transposes.
 *
 * With beta == 0, C is never read (it may hold garbage or NaN).
 */

#ifndef GEMM_TA
#define GEMM_TA 0 /* gemm_nn: A is stored (K,M) */
#endif
#ifndef GEMM_MR
#define GEMM_MR 8 /* gemm_nn micro-tile rows, a power of two (the host passes the size measured fastest) */
#endif
#define GEMM_KC 128 /* K block: the work-item's (KC x 32) slice of B fits L1 */

#ifndef GEMM_GP
#define GEMM_GP 1 /* gemm_nn: 32-column panels of B packed at once (the host passes 1 or 4) */
#endif

#ifndef GEMM_TB
#define GEMM_TB 0 /* gemm_nn: B is stored (N,K), transposed while it is packed */
#endif

#if GEMM_TA
#define A_AT(r, k) a[(k) * lda + (r)]
#else
#define A_AT(r, k) a[(r) * lda + (k)]
#endif

/*
 * p[j * s] for j = n0 .. n0+15 as one vector, j past n clamped to n - 1 (their
 * lanes are never stored): one vector load where s is 1 and all 16 are inside.
 */
static float16 load16_clamped(__global const float *p, int n0, int n, int s)
{
    if (s == 1 && n0 + 16 <= n) return vload16(0, p + n0);
    float v[16];
    for (int j = 0; j < 16; j++) v[j] = p[min(n0 + j, n - 1) * s];
    return vload16(0, v);
}

/*
 * Adds alpha * acc to 16 floats of C at column n0 (the first call of a sum
 * scales the old C by beta); the last call of a sum applies the epilogue of
 * channel `row` (cl/common.cl; act 0: none). A sum in one call that overwrites
 * C (first, last, beta 0) writes it as a stream: nothing in this kernel reads
 * it back.
 */
CN_INLINE void store16(__global float *p, int n0, int n, float16 acc, float alpha, float beta, int first, int last,
                       __global const float *ep, int row, int act)
{
    if (!last) act = CN_EPI_NONE;
    if (n0 + 16 <= n && first && last && beta == 0.0f) {
        cn_stream16(cn_epilogue16(alpha * acc, ep, row, act), p + n0);
        return;
    }
    if (n0 + 16 <= n) {
        float16 old = first ? (beta == 0.0f ? (float16)0.0f : beta * vload16(0, p + n0)) : vload16(0, p + n0);
        vstore16(cn_epilogue16(old + alpha * acc, ep, row, act), 0, p + n0);
        return;
    }
    float v[16];
    vstore16(acc, 0, v);
    for (int j = 0; j < n - n0; j++) {
        float old = first ? (beta == 0.0f ? 0.0f : beta * p[n0 + j]) : p[n0 + j];
        p[n0 + j] = cn_epilogue(old + alpha * v[j], ep, row, act);
    }
}

/*
 * Global (ceil(N/(32 np)), ceil(M/mb), batch), local (1,1,1). Work-item (j, i)
 * computes rows [i*mb, i*mb + mb) (mb a multiple of GEMM_MR) of np panels of 32
 * columns from column 32*np*j: more than one panel when N is large, so that a
 * work-group carries enough work to hide its launch cost. Each (KC x 32) block
 * of B is first copied into local memory (PoCL: the thread's own buffer): the
 * rows of B lie ldb apart, often a power of two, so read in place they would
 * fall into a few cache sets and leave L1 on every micro-tile.
 */
__kernel void gemm_nn(const int m, const int n, const int kdim, const float alpha, const float beta, const int mb,
                      const int np, __global const float *a, const int a_off, const int lda, const int a_stride,
                      __global const float *b, const int b_off, const int ldb, const int b_stride,
                      __global float *c, const int c_off, const int ldc, const int c_stride,
                      __global const float *ep, const int ep_off, const int act)
{
    __local float bp[GEMM_GP * GEMM_KC * 32];
    const int p0 = get_global_id(0) * np * 32, p1 = min(p0 + np * 32, n);
    const int mb0 = get_global_id(1) * mb, mb1 = min(mb0 + mb, m), bi = get_global_id(2);
    a += a_off + bi * a_stride;
    b += b_off + bi * b_stride;
    c += c_off + bi * c_stride;
    ep += ep_off;
    for (int g0 = p0; g0 < p1; g0 += GEMM_GP * 32) {
        const int gp = min(GEMM_GP, (p1 - g0 + 31) / 32), g1 = min(g0 + gp * 32, n); /* panels, columns here */
        for (int k0 = 0; k0 < kdim || k0 == 0; k0 += GEMM_KC) {
            const int k1 = min(k0 + GEMM_KC, kdim);
            /* panel q of the group at bp + q * KC * 32, each row of it 32 floats */
#if GEMM_TB
            /* columns past n repeat the last one: their lanes are never stored */
            for (int j = 0; j < gp * 32; j++) {
                __global const float *row = b + min(g0 + j, n - 1) * ldb;
                __local float *dst = bp + (j / 32) * GEMM_KC * 32 + j % 32;
                for (int k = k0; k < k1; k++) dst[(k - k0) * 32] = row[k];
            }
#else
            /* a row of B's group at once: one stream of gp * 128 bytes, not gp streams far apart */
            for (int k = k0; k < k1; k++)
                for (int q = 0; q < gp; q++) {
                    const int n0 = g0 + q * 32;
                    __local float *dst = bp + q * GEMM_KC * 32 + (k - k0) * 32;
                    if (n0 + 32 <= g1) {
                        vstore16(vload16(0, b + k * ldb + n0), 0, dst);
                        vstore16(vload16(0, b + k * ldb + n0 + 16), 0, dst + 16);
                    } else {
                        vstore16(load16_clamped(b + k * ldb, n0, n, 1), 0, dst);
                        vstore16(load16_clamped(b + k * ldb, n0 + 16, n, 1), 0, dst + 16);
                    }
                }
#endif
            for (int q = 0; q < gp; q++) {
                const int n0 = g0 + q * 32;
                __local const float *bq = bp + q * GEMM_KC * 32;
                for (int m0 = mb0; m0 < mb1; m0 += GEMM_MR) {
                    int rows[GEMM_MR];
                    float16 acc0[GEMM_MR], acc1[GEMM_MR];
                    for (int i = 0; i < GEMM_MR; i++) {
                        rows[i] = min(m0 + i, m - 1); /* clamped rows compute garbage that is never stored */
                        acc0[i] = acc1[i] = (float16)0.0f;
                    }
                    for (int k = k0; k < k1; k++) {
                        const float16 b0 = vload16(0, bq + (k - k0) * 32), b1 = vload16(0, bq + (k - k0) * 32 + 16);
#pragma unroll
                        for (int i = 0; i < GEMM_MR; i++) {
                            const float av = A_AT(rows[i], k);
                            acc0[i] = fma((float16)av, b0, acc0[i]);
                            acc1[i] = fma((float16)av, b1, acc1[i]);
                        }
                    }
                    for (int i = 0; i < GEMM_MR && m0 + i < m; i++) {
                        store16(c + (m0 + i) * ldc, n0, n, acc0[i], alpha, beta, k0 == 0, k1 >= kdim, ep, m0 + i,
                                act);
                        store16(c + (m0 + i) * ldc, n0 + 16, n, acc1[i], alpha, beta, k0 == 0, k1 >= kdim, ep,
                                m0 + i, act);
                    }
                }
            }
        }
    }
}

#ifndef GEMM_NT
#define GEMM_NT 4 /* gemm_nt micro-tile: GEMM_NT x GEMM_NT dot products (2 or 4, measured per device) */
#endif

/*
 * C = alpha * A * B^T + beta * C, A (M,K), B stored (N,K). Global
 * (ceil(N/nb), ceil(M/mb), batch), local (1,1,1); mb and nb multiples of 4.
 * Micro-tiles of GEMM_NT x GEMM_NT dot products, 16 lanes of K at a time.
 * With images > 1 (global batch 1) one C takes the sum of `images` products,
 * A and B a_stride and b_stride apart: a 1x1 conv's weight gradient over the
 * images of a batch, whose per-image products would each read and write all of
 * C for a sum of only 64-256 pixels.
 */
__kernel void gemm_nt(const int m, const int n, const int kdim, const float alpha, const float beta, const int mb,
                      const int nb, __global const float *a, const int a_off, const int lda, const int a_stride,
                      __global const float *b, const int b_off, const int ldb, const int b_stride,
                      __global float *c, const int c_off, const int ldc, const int c_stride, const int images)
{
    const int nb0 = get_global_id(0) * nb, mb0 = get_global_id(1) * mb, bi = get_global_id(2);
    if (nb0 >= n || mb0 >= m) return;
    a += a_off + bi * a_stride;
    b += b_off + bi * b_stride;
    c += c_off + bi * c_stride;
    const int mb1 = min(mb0 + mb, m), nb1 = min(nb0 + nb, n);
    /* 4x the L1 block of gemm_nn: the horizontal sums at each block's end cost less */
    const int kc = 4 * GEMM_KC;
    for (int k0 = 0; k0 < kdim || k0 == 0; k0 += kc) {
        const int k1 = min(k0 + kc, kdim);
        const int kv = k0 + (k1 - k0) / 16 * 16;
        for (int m0 = mb0; m0 < mb1; m0 += GEMM_NT)
            for (int j0 = nb0; j0 < nb1; j0 += GEMM_NT) {
                __global const float *ar[GEMM_NT], *br[GEMM_NT];
                for (int i = 0; i < GEMM_NT; i++) {
                    ar[i] = a + min(m0 + i, m - 1) * lda;
                    br[i] = b + min(j0 + i, n - 1) * ldb;
                }
                float16 acc[GEMM_NT][GEMM_NT];
                for (int i = 0; i < GEMM_NT; i++)
                    for (int j = 0; j < GEMM_NT; j++) acc[i][j] = (float16)0.0f;
                for (int img = 0; img < images; img++) {
                    const int ao = img * a_stride, bo = img * b_stride;
                    for (int k = k0; k < kv; k += 16) {
                        float16 av[GEMM_NT], bv[GEMM_NT];
#pragma unroll
                        for (int i = 0; i < GEMM_NT; i++) {
                            av[i] = vload16(0, ar[i] + ao + k);
                            bv[i] = vload16(0, br[i] + bo + k);
                        }
#pragma unroll
                        for (int i = 0; i < GEMM_NT; i++)
#pragma unroll
                            for (int j = 0; j < GEMM_NT; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
                    }
                }
                for (int i = 0; i < GEMM_NT && m0 + i < m; i++)
                    for (int j = 0; j < GEMM_NT && j0 + j < n; j++) {
                        float sum = cn_lanes_sum(acc[i][j]);
                        for (int img = 0; img < images; img++)
                            for (int k = kv; k < k1; k++)
                                sum = fma(ar[i][img * a_stride + k], br[j][img * b_stride + k], sum);
                        __global float *cp = c + (m0 + i) * ldc + j0 + j;
                        float old = k0 > 0 ? *cp : (beta == 0.0f ? 0.0f : beta * *cp);
                        *cp = old + alpha * sum;
                    }
            }
    }
}

/*
 * C = alpha * op(A) * b + beta * C for a single column (N == 1): the squeeze-
 * excite convs on their 1x1 maps, where gemm_nn would fill one lane of its
 * 32-wide panels. b's elements lie sb apart (ldb; 1 when B is stored (1,K)).
 * Global (ceil(M/16), 1, batch), local (1,1,1): 16 rows of C per work-item.
 * With A stored (K,M) (ta) each k adds a row of A's 16 neighbouring values;
 * otherwise each row of C is a dot product along K, 16 lanes at a time.
 */
__kernel void gemv(const int m, const int n, const int kdim, const float alpha, const float beta, const int ta,
                   const int sb, __global const float *a, const int a_off, const int lda, const int a_stride,
                   __global const float *b, const int b_off, const int ldb, const int b_stride,
                   __global float *c, const int c_off, const int ldc, const int c_stride)
{
    const int m0 = get_global_id(0) * 16, bi = get_global_id(2);
    if (m0 >= m) return;
    a += a_off + bi * a_stride;
    b += b_off + bi * b_stride;
    c += c_off + bi * c_stride;
    float r[16];
    if (ta) {
        float16 acc = (float16)0.0f;
        for (int k = 0; k < kdim; k++) acc = fma(load16_clamped(a + k * lda, m0, m, 1), (float16)b[k * sb], acc);
        vstore16(acc, 0, r);
    } else {
        const int kv = kdim / 16 * 16;
        for (int i = 0; i < 16; i++) {
            __global const float *row = a + min(m0 + i, m - 1) * lda; /* clamped rows are never stored */
            float16 acc = (float16)0.0f;
            for (int k = 0; k < kv; k += 16) acc = fma(vload16(0, row + k), load16_clamped(b, k, kdim, sb), acc);
            float sum = cn_lanes_sum(acc);
            for (int k = kv; k < kdim; k++) sum = fma(row[k], b[k * sb], sum);
            r[i] = sum;
        }
    }
    for (int i = 0; i < 16 && m0 + i < m; i++) {
        __global float *cp = c + (m0 + i) * ldc;
        *cp = (beta == 0.0f ? 0.0f : beta * *cp) + alpha * r[i];
    }
}

/*
 * C = alpha * op(A) * op(B) + beta * C for K == 1, an outer product: the
 * weight gradients of the squeeze-excite convs, whose maps are one pixel.
 * Column i of op(A) and row 0 of op(B) are a[i * sa] and b[j * sb] (sa: lda,
 * or 1 when A is stored (1,M); sb: 1, or ldb when B is stored (N,1)).
 * Global (ceil(N/16), M, batch), local (1,1,1): 16 columns of a row of C each.
 */
__kernel void gemm_k1(const int m, const int n, const int kdim, const float alpha, const float beta, const int sa,
                      const int sb, __global const float *a, const int a_off, const int lda, const int a_stride,
                      __global const float *b, const int b_off, const int ldb, const int b_stride,
                      __global float *c, const int c_off, const int ldc, const int c_stride)
{
    const int n0 = get_global_id(0) * 16, i = get_global_id(1), bi = get_global_id(2);
    if (n0 >= n || i >= m) return;
    a += a_off + bi * a_stride;
    b += b_off + bi * b_stride;
    c += c_off + bi * c_stride;
    store16(c + i * ldc, n0, n, a[i * sa] * load16_clamped(b, n0, n, sb), alpha, beta, 1, 1, a, 0, CN_EPI_NONE);
}

#ifndef GEMM_TS
#define GEMM_TS 16 /* work-group is TS x TS; each work-item computes 4x4 of a (4TS x 4TS) tile */
#endif
#define GEMM_TT (4 * GEMM_TS)
#define GEMM_TK 16

/*
 * Local-memory tiled product for any transposes (ta, tb). Global
 * (ceil(N/TT)*TS, ceil(M/TT)*TS, batch), local (TS, TS, 1).
 */
__kernel __attribute__((reqd_work_group_size(GEMM_TS, GEMM_TS, 1))) void
gemm_tiled(const int m, const int n, const int kdim, const float alpha, const float beta, const int ta, const int tb,
           __global const float *a, const int a_off, const int lda, const int a_stride, __global const float *b,
           const int b_off, const int ldb, const int b_stride, __global float *c, const int c_off, const int ldc,
           const int c_stride)
{
    __local float as[GEMM_TK][GEMM_TT + 1], bs[GEMM_TK][GEMM_TT + 1];
    const int lx = get_local_id(0), ly = get_local_id(1), tid = ly * GEMM_TS + lx;
    const int nbase = get_group_id(0) * GEMM_TT, mbase = get_group_id(1) * GEMM_TT, bi = get_global_id(2);
    a += a_off + bi * a_stride;
    b += b_off + bi * b_stride;
    c += c_off + bi * c_stride;
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < kdim; k0 += GEMM_TK) {
        /* each operand tile has TT*TK elements; walk them along the stored contiguous axis */
        for (int e = tid; e < GEMM_TT * GEMM_TK; e += GEMM_TS * GEMM_TS) {
            int r = ta ? e % GEMM_TT : e / GEMM_TK, kk = ta ? e / GEMM_TT : e % GEMM_TK;
            int gr = mbase + r, gk = k0 + kk;
            as[kk][r] = (gr < m && gk < kdim) ? (ta ? a[gk * lda + gr] : a[gr * lda + gk]) : 0.0f;
            int cc = tb ? e / GEMM_TK : e % GEMM_TT, kb = tb ? e % GEMM_TK : e / GEMM_TT;
            int gc = nbase + cc, gkb = k0 + kb;
            bs[kb][cc] = (gc < n && gkb < kdim) ? (tb ? b[gc * ldb + gkb] : b[gkb * ldb + gc]) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < GEMM_TK; kk++) {
            float ar[4], br[4];
            for (int i = 0; i < 4; i++) {
                ar[i] = as[kk][ly + i * GEMM_TS];
                br[i] = bs[kk][lx + i * GEMM_TS];
            }
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] = fma(ar[i], br[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            int gr = mbase + ly + i * GEMM_TS, gc = nbase + lx + j * GEMM_TS;
            if (gr < m && gc < n) {
                __global float *cp = c + gr * ldc + gc;
                *cp = alpha * acc[i][j] + (beta == 0.0f ? 0.0f : beta * *cp);
            }
        }
}
