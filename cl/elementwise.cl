/*
 * elementwise.cl - the residual add y = a + b and its backward.
 */

__kernel void add_fwd(__global const float *a, const int a_off, __global const float *b, const int b_off,
                      __global float *y, const int y_off, const int count)
{
    int i = get_global_id(0);
    if (i >= count) return;
    y[y_off + i] = a[a_off + i] + b[b_off + i];
}

/* The gradient flows unchanged to both inputs; `acc` adds into da and db instead of writing. */
__kernel void add_bwd(__global const float *dy, const int dy_off, __global float *da, const int da_off,
                      __global float *db, const int db_off, const int count, const int acc)
{
    int i = get_global_id(0);
    if (i >= count) return;
    float g = dy[dy_off + i];
    da[da_off + i] = acc ? da[da_off + i] + g : g;
    db[db_off + i] = acc ? db[db_off + i] + g : g;
}
