/*
 * device.c - enumerates every OpenCL platform and device once, reads their
 * capabilities into clunet_device_info, and picks one by a user's spec.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

#define MAX_DEVICES 64
#define MAX_PLATFORMS 16

static clunet_device_info infos[MAX_DEVICES];
static cl_device_id ids[MAX_DEVICES];
static cl_platform_id platform_of[MAX_DEVICES];
static int device_count = -1; /* -1: not enumerated yet */
static char warnings[2048];

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void warn(const char *fmt, ...)
{
    size_t used = strlen(warnings);
    if (used + 2 >= sizeof warnings) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(warnings + used, sizeof warnings - used - 1, fmt, ap);
    va_end(ap);
    strcat(warnings, "\n");
}

static void get_string(cl_device_id d, cl_device_info what, char *out, size_t size)
{
    out[0] = 0;
    if (clGetDeviceInfo(d, what, size, out, NULL) != CL_SUCCESS) snprintf(out, size, "?");
    out[size - 1] = 0;
}

/* Reads one device's capabilities; returns 0 if the device does not answer. */
static int read_device(cl_platform_id p, cl_device_id d, clunet_device_info *info)
{
    cl_device_type type;
    if (clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL) != CL_SUCCESS) return 0;
    info->type = (type & CL_DEVICE_TYPE_GPU)           ? CLUNET_DEVICE_GPU
                 : (type & CL_DEVICE_TYPE_CPU)         ? CLUNET_DEVICE_CPU
                 : (type & CL_DEVICE_TYPE_ACCELERATOR) ? CLUNET_DEVICE_ACCELERATOR
                                                       : CLUNET_DEVICE_OTHER;
    get_string(d, CL_DEVICE_NAME, info->name, sizeof info->name);
    get_string(d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    get_string(d, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    get_string(d, CL_DEVICE_OPENCL_C_VERSION, info->opencl_c_version, sizeof info->opencl_c_version);
    if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof info->platform, info->platform, NULL) != CL_SUCCESS)
        snprintf(info->platform, sizeof info->platform, "?");
    if (clGetPlatformInfo(p, CL_PLATFORM_VERSION, sizeof info->platform_version, info->platform_version, NULL) !=
        CL_SUCCESS)
        snprintf(info->platform_version, sizeof info->platform_version, "?");

    cl_uint u = 0;
    cl_ulong ul = 0;
    size_t sz = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof u, &u, NULL) == CL_SUCCESS) info->compute_units = u;
    if (clGetDeviceInfo(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof u, &u, NULL) == CL_SUCCESS) info->clock_mhz = u;
    if (clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof ul, &ul, NULL) == CL_SUCCESS) info->global_mem_bytes = ul;
    if (clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof ul, &ul, NULL) == CL_SUCCESS) info->local_mem_bytes = ul;
    if (clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ul, &ul, NULL) == CL_SUCCESS) info->max_alloc_bytes = ul;
    if (clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, sizeof ul, &ul, NULL) == CL_SUCCESS)
        info->global_cache_bytes = ul;
    if (clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof sz, &sz, NULL) == CL_SUCCESS)
        info->max_work_group_size = sz;

    /* fp16/fp64 from the extension string, as clpeak does. */
    size_t ext_len = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len) == CL_SUCCESS && ext_len > 0) {
        char *ext = malloc(ext_len + 1);
        if (ext && clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, ext_len, ext, NULL) == CL_SUCCESS) {
            ext[ext_len] = 0;
            info->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
            info->fp64 = strstr(ext, "cl_khr_fp64") != NULL;
        }
        free(ext);
    }
    info->simulator = strstr(info->platform, "Oclgrind") != NULL || strstr(info->vendor, "Oclgrind") != NULL;
    cl_command_queue_properties props = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_QUEUE_PROPERTIES, sizeof props, &props, NULL) == CL_SUCCESS)
        info->profiling = (props & CL_QUEUE_PROFILING_ENABLE) != 0;
    return 1;
}

static clunet_status enumerate(void)
{
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint np = 0;
    warnings[0] = 0;
    device_count = 0;
    cl_int err = clGetPlatformIDs(MAX_PLATFORMS, platforms, &np);
    if (err != CL_SUCCESS || np == 0) {
        device_count = -1;
        return cn_fail(CLUNET_ERR_NO_PLATFORM,
                       "no OpenCL platform found (%s): install an OpenCL driver, e.g. `apt-get install "
                       "pocl-opencl-icd`, and check /etc/OpenCL/vendors or OCL_ICD_VENDORS",
                       err == CL_SUCCESS ? "0 platforms" : cn_cl_error_name(err));
    }
    if (np > MAX_PLATFORMS) np = MAX_PLATFORMS;
    for (cl_uint p = 0; p < np; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        char pname[256] = "?";
        clGetPlatformInfo(platforms[p], CL_PLATFORM_NAME, sizeof pname, pname, NULL);
        pname[sizeof pname - 1] = 0;
        err = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd);
        if (err != CL_SUCCESS) {
            /* A broken platform is reported and skipped, never fatal. */
            warn("platform %u (%s) skipped: clGetDeviceIDs failed: %s", p, pname, cn_cl_error_name(err));
            continue;
        }
        for (cl_uint d = 0; d < nd && device_count < MAX_DEVICES; d++) {
            clunet_device_info *info = &infos[device_count];
            memset(info, 0, sizeof *info);
            if (!read_device(platforms[p], devs[d], info)) {
                warn("platform %u (%s) device %u skipped: it does not answer clGetDeviceInfo", p, pname, d);
                continue;
            }
            info->index = device_count;
            ids[device_count] = devs[d];
            platform_of[device_count] = platforms[p];
            device_count++;
        }
    }
    if (device_count == 0) {
        device_count = -1;
        return cn_fail(CLUNET_ERR_NO_DEVICE, "OpenCL platforms were found but no usable device%s%s",
                       warnings[0] ? ": " : "", warnings);
    }
    return CLUNET_OK;
}

clunet_status clunet_devices(const clunet_device_info **devices, int *count)
{
    if (!devices || !count) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "clunet_devices: NULL argument");
    if (device_count < 0) CN_TRY(enumerate());
    *devices = infos;
    *count = device_count;
    return CLUNET_OK;
}

const char *clunet_devices_warnings(void) { return warnings; }

cl_device_id cn_device_id(int index) { return ids[index]; }
cl_platform_id cn_platform_id(int index) { return platform_of[index]; }

static int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return 1;
    }
    return n == 0;
}

/* The first device of type t, preferring real hardware over simulators. */
static int first_of_type(const clunet_device_info *all, int n, clunet_device_type t)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if (all[i].type == t && all[i].simulator == pass) return i;
    return -1;
}

clunet_status clunet_device_select(const char *spec, int *index)
{
    const clunet_device_info *all;
    int n;
    CN_TRY(clunet_devices(&all, &n));
    const char *from = "--device";
    if (!spec || !*spec) {
        spec = getenv("CLUNET_DEVICE");
        from = "CLUNET_DEVICE";
    }
    if (!spec || !*spec) {
        int i = first_of_type(all, n, CLUNET_DEVICE_GPU);
        int cpu = first_of_type(all, n, CLUNET_DEVICE_CPU);
        if (i < 0 || (all[i].simulator && cpu >= 0 && !all[cpu].simulator)) i = cpu;
        *index = i >= 0 ? i : 0;
        return CLUNET_OK;
    }
    char *end;
    long v = strtol(spec, &end, 10);
    if (*end == 0 && end != spec) {
        if (v < 0 || v >= n)
            return cn_fail(CLUNET_ERR_NO_DEVICE, "%s %s: no device with that index (there are %d: 0..%d)", from,
                           spec, n, n - 1);
        *index = (int)v;
        return CLUNET_OK;
    }
    int i = -1, gpu = !strcmp(spec, "gpu") || !strcmp(spec, "GPU");
    if (gpu || !strcmp(spec, "cpu") || !strcmp(spec, "CPU")) {
        /* a simulator (Oclgrind: hours for a training step) only when named */
        i = first_of_type(all, n, gpu ? CLUNET_DEVICE_GPU : CLUNET_DEVICE_CPU);
        if (i < 0 || all[i].simulator)
            return cn_fail(CLUNET_ERR_NO_DEVICE, "%s %s: no %s found%s (see `clunet devices`)", from, spec,
                           gpu ? "GPU" : "CPU device", i >= 0 ? " but a simulator, which runs only when named" : "");
    } else
        for (int k = 0; k < n && i < 0; k++)
            if (contains_nocase(all[k].name, spec) || contains_nocase(all[k].vendor, spec) ||
                contains_nocase(all[k].platform, spec))
                i = k;
    if (i < 0)
        return cn_fail(CLUNET_ERR_NO_DEVICE, "%s %s: no device matches (see `clunet devices`)", from, spec);
    *index = i;
    return CLUNET_OK;
}
