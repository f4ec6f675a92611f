/*
 * common.cl - prepended to every kernel file.
 *
 * The host also defines, per device:
 *   CN_DEVICE_CPU  1 on CPU devices, else 0
 *   CN_MAX_WG      the device's maximum work-group size
 */
#ifndef CN_DEVICE_CPU
#define CN_DEVICE_CPU 0
#endif
#ifndef CN_MAX_WG
#define CN_MAX_WG 256
#endif

/* Numerically stable logistic function: never overflows exp(). */
inline float cn_sigmoid(float z)
{
    if (z >= 0.0f) return 1.0f / (1.0f + exp(-z));
    float e = exp(z);
    return e / (1.0f + e);
}
