/*
 * activation.cl - swish (SiLU), sigmoid and ReLU over `count` floats.
 *
 * Backward kernels take what their derivative needs (x for swish and ReLU, the
 * output y for sigmoid) and write dx, or add into it when `acc` is set (so a
 * tensor that feeds two consumers can sum its gradients).
 *
 * An item covers `span` consecutive floats (CN_SPAN, cl/common.cl): each
 * kernel writes its element-wise body once as a macro BODY(T, LOAD, STORE,
 * SIG) for float16 and float alike.
 */

/* dx = v, or dx += v with acc. */
#define ACT_OUT(LOAD, STORE, v) STORE(dx + i, acc ? LOAD(dx + i) + (v) : (v))

#define SWISH_FWD(T, LOAD, STORE, SIG) { T v = LOAD(x + i); STORE(y + i, v * SIG(v)); }
__kernel void swish_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                        const int count, const int span)
{
    x += x_off, y += y_off;
    CN_SPAN(SWISH_FWD)
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
    CN_SPAN(SWISH_BWD)
}

#define SIGMOID_FWD(T, LOAD, STORE, SIG) STORE(y + i, SIG(LOAD(x + i)));
__kernel void sigmoid_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                          const int count, const int span)
{
    x += x_off, y += y_off;
    CN_SPAN(SIGMOID_FWD)
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
    CN_SPAN(SIGMOID_BWD)
}

#define RELU_FWD(T, LOAD, STORE, SIG) STORE(y + i, fmax(LOAD(x + i), 0.0f));
__kernel void relu_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                       const int count, const int span)
{
    x += x_off, y += y_off;
    CN_SPAN(RELU_FWD)
}

/* dy where x > 0, else 0 (select takes float and float16 alike). */
#define RELU_BWD(T, LOAD, STORE, SIG) ACT_OUT(LOAD, STORE, select((T)(0.0f), LOAD(dy + i), LOAD(x + i) > 0.0f));
__kernel void relu_bwd(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                       __global float *dx, const int dx_off, const int count, const int span, const int acc)
{
    x += x_off, dy += dy_off, dx += dx_off;
    CN_SPAN(RELU_BWD)
}
