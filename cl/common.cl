/*
 * common.cl - prepended to every kernel file.
 *
 * The host also defines, per device:
 *   CN_DEVICE_CPU  1 on CPU devices, else 0
 *   CN_MAX_WG      the device's maximum work-group size
 * and, per kernel where the output is large (cn_stream_option):
 *   CN_NT_STORE    1: cn_stream16 writes past the caches
 */
#ifndef CN_DEVICE_CPU
#define CN_DEVICE_CPU 0
#endif
#ifndef CN_MAX_WG
#define CN_MAX_WG 256
#endif
#ifndef CN_NT_STORE
#define CN_NT_STORE 0
#endif

/*
 * For helpers called in hot loops. PoCL had left gemm_nn's store16 out of
 * line, and on a CPU without AVX-512 a float16 argument then goes through the
 * stack: the 1x1 convs' products ran up to 2x slower. `nm` on the kernels'
 * .so files (POCL_LEAVE_KERNEL_COMPILER_TEMP_FILES=1) lists what stays out of
 * line; forcing the depthwise window_load inline measured slower.
 */
#define CN_INLINE static inline __attribute__((always_inline))

/*
 * vstore16(v, 0, p) for an output nothing reads soon. With CN_NT_STORE, a
 * non-temporal store where p is aligned to the vector (the instruction needs
 * it): the line is written without being read first, and leaves the cache.
 */
void cn_stream16(float16 v, __global float *p)
{
#if CN_NT_STORE
    if (((ulong)p & 63) == 0) {
        __builtin_nontemporal_store(v, (__global float16 *)p);
        return;
    }
#endif
    vstore16(v, 0, p);
}

/* Numerically stable logistic function: never overflows exp(). */
float cn_sigmoid(float z)
{
    if (z >= 0.0f) return 1.0f / (1.0f + exp(-z));
    float e = exp(z);
    return e / (1.0f + e);
}

/* cn_sigmoid on 16 lanes without a branch: exp of -|z| never overflows. */
float16 cn_sigmoid16(float16 z)
{
    float16 e = exp(-fabs(z)), r = 1.0f / (1.0f + e);
    return select(e * r, r, z >= 0.0f);
}

/* d swish(v) / dv from v and s = sigmoid(v), for float and float16 alike. */
#define CN_SWISH_SLOPE(v, s) ((s) + (v) * (s) * (1.0f - (s)))

/*
 * What a conv's kernels apply to an output of channel ch as they store it in
 * inference: batch norm with the running statistics, folded by bn_fold into a
 * scale ep[2 ch] and a shift ep[2 ch + 1], then the activation. The values of
 * act are cn_epilogue_act's (src/ops/conv.h); the activations are
 * cl/activation.cl's expressions.
 */
#define CN_EPI_NONE 0
#define CN_EPI_AFFINE 1
#define CN_EPI_SWISH 2
#define CN_EPI_RELU 3
#define CN_EPILOGUE(T, NAME, SIG)                                        \
    T NAME(T v, __global const float *ep, const int ch, const int act)   \
    {                                                                    \
        if (act == CN_EPI_NONE) return v;                                \
        v = fma(v, (T)(ep[2 * ch]), (T)(ep[2 * ch + 1]));                \
        if (act == CN_EPI_SWISH) return v * SIG(v);                      \
        if (act == CN_EPI_RELU) return fmax(v, 0.0f);                    \
        return v;                                                        \
    }
CN_EPILOGUE(float, cn_epilogue, cn_sigmoid)
CN_EPILOGUE(float16, cn_epilogue16, cn_sigmoid16)

/*
 * An element-wise body over the `span` consecutive floats of this item, of
 * `count` in all (span 1 on GPUs; thousands on CPUs, where explicit float16
 * vectors are what gets vectorised): float16 steps, then single floats for
 * the rest. BODY(T, LOAD, STORE, SIG) is written once for the value type T
 * (float16 or float) with the matching load, store and logistic function;
 * it reads and writes at index i.
 */
#define CN_LOAD16(p) vload16(0, (p))
#define CN_STORE16(p, v) vstore16((v), 0, (p))
#define CN_LOAD1(p) (*(p))
#define CN_STORE1(p, v) (*(p) = (v))
#define CN_SPAN(BODY)                                                                   \
    int i = get_global_id(0) * span;                                                    \
    if (i >= count) return;                                                             \
    int end = i + min(span, count - i);                                                 \
    for (; i + 16 <= end; i += 16) BODY(float16, CN_LOAD16, CN_STORE16, cn_sigmoid16)  \
    for (; i < end; i++) BODY(float, CN_LOAD1, CN_STORE1, cn_sigmoid)

/*
 * Sum of v over the work-group, whose size must be a power of two; every item
 * gets the total. A fixed tree, so the result is bitwise reproducible.
 */
float cn_group_sum(__local float *s, float v)
{
    int l = get_local_id(0);
    s[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = get_local_size(0) / 2; k > 0; k >>= 1) {
        if (l < k) s[l] += s[l + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float total = s[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

/* The lanes of v added in a fixed order (bitwise the same on every run). */
float cn_lanes_sum(float16 v)
{
    float8 a = v.lo + v.hi;
    float4 b = a.lo + a.hi;
    float2 c = b.lo + b.hi;
    return c.x + c.y;
}

/*
 * The first n lanes of v at p: one vector store for all 16 (cn_stream16's,
 * past the caches in a kernel built for that), or one for the first 8 where
 * 8-15 are wanted.
 */
void cn_store_lanes16(__global float *p, const float16 v, const int n)
{
    if (n == 16) {
        cn_stream16(v, p);
        return;
    }
    int l = 0;
    if (n >= 8) {
        vstore8(v.lo, 0, p);
        l = 8;
    }
    float lane[16];
    vstore16(v, 0, lane);
    for (; l < n; l++) p[l] = lane[l];
}

/*
 * The 16 filters of a Winograd weight transform's work-item (cl/winograd.cl,
 * cl/winograd4.cl; global (ceil(Co/16), C) when along o, else (ceil(C/16),
 * Co)): filters of w (Co, C, 3, 3) side by side, one a lane, neighbours along
 * o when flip != fused, else along i. k[t] holds tap t (rotated by 180 degrees
 * where flip); lanes past the count returned (0: the work-item has none)
 * repeat the last filter. *at becomes the offset in U of their values in plane
 * 0 and *step the floats from plane to plane: U (planes, rows, cols), rows the
 * conv's output channels (flip: its input channels), or each plane transposed
 * with its rows rounded up to 16 where fused.
 */
CN_INLINE int cn_wino_filters16(__global const float *w, const int co, const int ci, const int flip, const int fused,
                                float16 *k, size_t *at, size_t *step)
{
    const int along_o = flip != fused, l0 = get_global_id(0) * 16, other = get_global_id(1);
    const int lanes = min(16, (along_o ? co : ci) - l0);
    if (lanes <= 0 || other >= (along_o ? ci : co)) return 0;
    const int o = along_o ? l0 : other, i = along_o ? other : l0, lane_step = along_o ? ci * 9 : 9;
    __global const float *g = w + (o * ci + i) * 9;
    for (int t = 0; t < 9; t++) {
        float v[16];
        for (int j = 0; j < 16; j++) v[j] = g[min(j, lanes - 1) * lane_step + (flip ? 8 - t : t)];
        k[t] = vload16(0, v);
    }
    const int rows = flip ? ci : co, cols = flip ? co : ci, r = flip ? i : o, c = flip ? o : i;
    const int rows_p = (rows + 15) / 16 * 16;
    *at = fused ? (size_t)c * rows_p + r : (size_t)r * cols + c;
    *step = (size_t)(fused ? rows_p : rows) * cols;
    return lanes;
}

/*
 * row[i0 .. i0+15] as a vector, zero outside [0, w): one whole load inside,
 * half of one where 8 lanes are left (every row of an 8-wide map: stage 6's
 * depthwise conv at 4 x 256 took 0.9x the time forward, 0.7x for dx), lane by
 * lane at other edges.
 */
float16 cn_row16(__global const float *row, const int i0, const int w)
{
    if (i0 >= 0 && i0 + 16 <= w) return vload16(0, row + i0);
    if (i0 >= 0 && i0 + 8 == w) return (float16)(vload8(0, row + i0), (float8)0.0f);
    float v[16];
    for (int j = 0; j < 16; j++) v[j] = i0 + j >= 0 && i0 + j < w ? row[i0 + j] : 0.0f;
    return vload16(0, v);
}

/* Rows i and i + b of r (i's bit b clear) swap lanes whose bit b differs: lo picks row i's new lanes. */
CN_INLINE void cn_swap_blocks16(float16 *r, const int b, const uint16 lo)
{
#pragma unroll
    for (int i = 0; i < 16; i++)
        if (!(i & b)) {
            const float16 a = r[i], c = r[i + b];
            r[i] = shuffle2(a, c, lo);
            r[i + b] = shuffle2(a, c, lo + (uint)b);
        }
}

/*
 * r (16 rows of 16 lanes) transposed in registers: four rounds of swaps
 * between rows, blocks of 8, 4, 2 then 1 lane (64 shuffles). A transpose
 * through a private array compiles on PoCL to scattered stores read back as
 * vectors, which stall on store forwarding.
 */
CN_INLINE void cn_transpose16(float16 *r)
{
    cn_swap_blocks16(r, 8, (uint16)(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23));
    cn_swap_blocks16(r, 4, (uint16)(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27));
    cn_swap_blocks16(r, 2, (uint16)(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29));
    cn_swap_blocks16(r, 1, (uint16)(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30));
}

