/*
 * activation.cl - swish (SiLU), sigmoid and ReLU over `count` floats.
 *
 * Backward kernels take what their derivative needs (x for swish and ReLU, the
 * output y for sigmoid) and write dx, or add into it when `acc` is set (so a
 * tensor that feeds two consumers can sum its gradients).
 */

void act_store(__global float *dx, int i, float v, int acc) { dx[i] = acc ? dx[i] + v : v; }

__kernel void swish_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                        const int count)
{
    int i = get_global_id(0);
    if (i >= count) return;
    float v = x[x_off + i];
    y[y_off + i] = v * cn_sigmoid(v);
}

__kernel void swish_bwd(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                        __global float *dx, const int dx_off, const int count, const int acc)
{
    int i = get_global_id(0);
    if (i >= count) return;
    float v = x[x_off + i], s = cn_sigmoid(v);
    act_store(dx, dx_off + i, dy[dy_off + i] * (s + v * s * (1.0f - s)), acc);
}

__kernel void sigmoid_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                          const int count)
{
    int i = get_global_id(0);
    if (i >= count) return;
    y[y_off + i] = cn_sigmoid(x[x_off + i]);
}

__kernel void sigmoid_bwd(__global const float *y, const int y_off, __global const float *dy, const int dy_off,
                          __global float *dx, const int dx_off, const int count, const int acc)
{
    int i = get_global_id(0);
    if (i >= count) return;
    float s = y[y_off + i];
    act_store(dx, dx_off + i, dy[dy_off + i] * s * (1.0f - s), acc);
}

__kernel void relu_fwd(__global const float *x, const int x_off, __global float *y, const int y_off,
                       const int count)
{
    int i = get_global_id(0);
    if (i >= count) return;
    y[y_off + i] = fmax(x[x_off + i], 0.0f);
}

__kernel void relu_bwd(__global const float *x, const int x_off, __global const float *dy, const int dy_off,
                       __global float *dx, const int dx_off, const int count, const int acc)
{
    int i = get_global_id(0);
    if (i >= count) return;
    act_store(dx, dx_off + i, x[x_off + i] > 0.0f ? dy[dy_off + i] : 0.0f, acc);
}
