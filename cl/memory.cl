/* memory.cl - plain data movement between (buffer, offset) views. */

/* y[i] = x[i] for i < n */
__kernel void copy_f32(__global const float *x, const int x_off, __global float *y, const int y_off, const int n)
{
    int i = get_global_id(0);
    if (i < n) y[y_off + i] = x[x_off + i];
}

/* y[i] = value for i < n */
__kernel void fill_f32(__global float *y, const int y_off, const float value, const int n)
{
    int i = get_global_id(0);
    if (i < n) y[y_off + i] = value;
}

/* y[16 i .. 16 i + 15] = x[...]: the probe that decides CN_NT_STORE (src/runtime/stream.c) */
__kernel void copy16(__global const float *x, __global float *y)
{
    const int i = get_global_id(0) * 16;
    cn_stream16(vload16(0, x + i), y + i);
}
