/*
 * activation.cl - swish (SiLU), sigmoid and ReLU over `count` floats.
 *
 * Backward kernels take what their derivative needs (x for swish and ReLU, the
 * output y for sigmoid) and write dx, or add into it when `acc` is set (so a
 * tensor that feeds two consumers can sum its gradients).
 *
 * An item covers `span` consecutive floats (1 on GPUs; thousands on CPUs,
 * where explicit float16 vectors are what gets vectorised): float16 steps,
 * then single floats for the rest. Each kernel writes its element-wise body
 * once as a macro BODY(T, LOAD, STORE, SIG) for the value type T (float16 or
 * float), the matching load and store, and the logistic function for T.
 */

#define ACT_LOAD16(p) vload16(0, (p))
#define ACT_STORE16(p, v) vstore16((v), 0, (p))
#define ACT_LOAD1(p) (*(p))
#define ACT_STORE1(p, v) (*(p) = (v))

/* BODY over the item's floats [i, end): float16 steps, then single floats. */
#define ACT_SPAN(BODY)                                                                       \
    int i = get_global_id(0) * span;                                                         \
    if (i >= count) return;                                                                  \
    int end = i + min(span, count - i);                                                      \
    for (; i + 16 <= end; i += 16) BODY(float16, ACT_LOAD16, ACT_STORE16, cn_sigmoid16)     \
    for (; i < end; i++) BODY(float, ACT_LOAD1, ACT_STORE1, cn_sigmoid)

/* dx = v, or dx += v with acc. */
#define ACT_OUT(LOAD, STORE, v) STORE(dx + i, acc ? LOAD(dx + i) + (v) : (v))

#define SWISH_FWD(T, LOAD, STORE, SIG) { T v = LOAD(x + i); STORE(y + i, v * SIG(v)); }
__kernel void swish_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                        const int count, const int span)
{
    x += x_off, y += y_off;
    ACT_SPAN(SWISH_FWD)
}

#define SWISH_BWD(T, LOAD, STORE, SIG)                                 \
    {                                                                  \
        T v = LOAD(x + i), s = SIG(v);                                 \
        ACT_OUT(LOAD, STORE, LOAD(dy + i) * CN_SWISH_SLOPE(v, s));     \
    }
__kernel void swish_bwd(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                        __global float *dx, const int dx_off, const int count, const int span, const int acc)
{
    x += x_off, dy += dy_off, dx += dx_off;
    ACT_SPAN(SWISH_BWD)
}

#define SIGMOID_FWD(T, LOAD, STORE, SIG) STORE(y + i, SIG(LOAD(x + i)));
__kernel void sigmoid_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                          const int count, const int span)
{
    x += x_off, y += y_off;
    ACT_SPAN(SIGMOID_FWD)
}

#define SIGMOID_BWD(T, LOAD, STORE, SIG)                     \
    {                                                        \
        T s = LOAD(y + i);                                   \
        ACT_OUT(LOAD, STORE, LOAD(dy + i) * s * (1.0f - s)); \
    }
__kernel void sigmoid_bwd(__global const float *y, const int y_off, __global const float *dy, const int dy_off,
                          __global float *dx, const int dx_off, const int count, const int span, const int acc)
{
    y += y_off, dy += dy_off, dx += dx_off;
    ACT_SPAN(SIGMOID_BWD)
}

#define RELU_FWD(T, LOAD, STORE, SIG) STORE(y + i, fmax(LOAD(x + i), 0.0f));
__kernel void relu_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                       const int count, const int span)
{
    x += x_off, y += y_off;
    ACT_SPAN(RELU_FWD)
}

/* dy where x > 0, else 0 (select takes float and float16 alike). */
#define RELU_BWD(T, LOAD, STORE, SIG) ACT_OUT(LOAD, STORE, select((T)(0.0f), LOAD(dy + i), LOAD(x + i) > 0.0f));
__kernel void relu_bwd(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                       __global float *dx, const int dx_off, const int count, const int span, const int acc)
{
    x += x_off, dy += dy_off, dx += dx_off;
    ACT_SPAN(RELU_BWD)
}
