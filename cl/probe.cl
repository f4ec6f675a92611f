/*
 * probe.cl - peak-rate probes for `clunet bench`: how fast can this device
 * multiply-add and move memory at all, so a model's speed can be read as a
 * fraction of the device's own ceiling.
 */

/*
 * Eight independent chains per work-item (latency is hidden inside one item as
 * well as across items). x = x * b + c with |b| < 1 converges to a fixed point:
 * no overflow, no denormals, and nothing a compiler may fold without fast-math.
 * fma where the device has it in hardware (PROBE_FMA, from CL_FP_FMA): PoCL
 * compiles mad as a multiply and an add, which halved the rate measured on AVX2.
 */
#if PROBE_FMA
#define PROBE_OP fma
#else
#define PROBE_OP mad
#endif
#define PROBE_MAD8                                                                                      \
    x0 = PROBE_OP(x0, b, c); x1 = PROBE_OP(x1, b, c); x2 = PROBE_OP(x2, b, c); x3 = PROBE_OP(x3, b, c); \
    x4 = PROBE_OP(x4, b, c); x5 = PROBE_OP(x5, b, c); x6 = PROBE_OP(x6, b, c); x7 = PROBE_OP(x7, b, c);

inline float probe_sum4(float4 v) { return (v.s0 + v.s1) + (v.s2 + v.s3); }
inline float probe_sum8(float8 v) { return probe_sum4(v.lo) + probe_sum4(v.hi); }
inline float probe_sum16(float16 v) { return probe_sum8(v.lo) + probe_sum8(v.hi); }

/*
 * 64 multiply-adds of a T vector per loop pass: 128 * width * loops FLOP per
 * work-item. Every lane reaches the output, so no chain is dead code.
 */
#define PROBE_FMA_KERNEL(NAME, T, SUM)                                                             \
    __kernel void NAME(__global float *out, const int out_off, const float seed, const int loops)  \
    {                                                                                              \
        const T b = (T)(-0.5f), c = (T)(seed);                                                     \
        T x0 = (T)(get_global_id(0) & 7), x1 = x0 + (T)1.0f, x2 = x0 + (T)2.0f, x3 = x0 + (T)3.0f; \
        T x4 = x0 - (T)1.0f, x5 = x0 - (T)2.0f, x6 = x0 - (T)3.0f, x7 = x0 - (T)4.0f;              \
        for (int i = 0; i < loops; i++) {                                                          \
            PROBE_MAD8 PROBE_MAD8 PROBE_MAD8 PROBE_MAD8                                            \
            PROBE_MAD8 PROBE_MAD8 PROBE_MAD8 PROBE_MAD8                                            \
        }                                                                                          \
        out[out_off + get_global_id(0)] = SUM(((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)));  \
    }

PROBE_FMA_KERNEL(probe_fma4, float4, probe_sum4)
PROBE_FMA_KERNEL(probe_fma8, float8, probe_sum8)
PROBE_FMA_KERNEL(probe_fma16, float16, probe_sum16)

/* y[i] = x[i] over float4s: read + write bandwidth of plain streaming (whole buffers, no offsets). */
__kernel void probe_copy(__global const float4 *x, __global float4 *y, const int n4)
{
    int i = get_global_id(0);
    if (i < n4) y[i] = x[i];
}
