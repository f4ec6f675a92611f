/* memory.cl - plain data movement between (buffer, offset) views. */

/* y[i] = x[i] for i < n */
__kernel void copy_f32(__global const float *x, const int x_off, __global float *y, const int y_off, const int n)
{
    int i = get_global_id(0);
    if (i < n) y[y_off + i] = x[x_off + i];
}

/*
 * y[off + i] = value for i < n, 16 floats a work-item: cn_buffer_fill_float.
 * PoCL's clEnqueueFillBuffer writes on one thread at ~14 GB/s; this runs on
 * every core. 64-bit sizes: the fills span whole gradient arenas.
 */
__kernel void fill16(__global float *y, const ulong off, const ulong n, const float value)
{
    const ulong i = (ulong)get_global_id(0) * 16;
    if (i + 16 <= n) cn_stream16((float16)value, y + off + i);
    else
        for (ulong j = i; j < n; j++) y[off + j] = value;
}

/* y[16 i .. 16 i + 15] = x[...]: the probe that decides CN_NT_STORE (src/runtime/stream.c) */
__kernel void copy16(__global const float *x, __global float *y)
{
    const int i = get_global_id(0) * 16;
    cn_stream16(vload16(0, x + i), y + i);
}
