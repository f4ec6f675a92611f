/*
 * clunet.h - the public API of clunet, a portable OpenCL engine that trains and
 * runs a U-Net for retinal vessel segmentation on any OpenCL device.
 *
 * Every call that can fail returns a clunet_status; on failure, clunet_last_error()
 * gives a one-line message for the calling thread that says what failed and why.
 * Nothing in the library prints to stdout or ends the process.
 */
#ifndef CLUNET_H
#define CLUNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CLUNET_API __attribute__((visibility("default")))
#else
#define CLUNET_API
#endif

#define CLUNET_VERSION_MAJOR 0
#define CLUNET_VERSION_MINOR 1
#define CLUNET_VERSION_PATCH 0

typedef enum clunet_status {
    CLUNET_OK = 0,
    CLUNET_ERR_INVALID_ARGUMENT = -1, /* a bad value passed by the caller */
    CLUNET_ERR_NO_PLATFORM = -2,      /* no OpenCL platform (ICD) was found */
    CLUNET_ERR_NO_DEVICE = -3,        /* no device matched the request */
    CLUNET_ERR_OPENCL = -4,           /* an OpenCL call failed */
    CLUNET_ERR_BUILD = -5,            /* a kernel failed to compile */
    CLUNET_ERR_OUT_OF_MEMORY = -6,    /* host or device memory exhausted */
    CLUNET_ERR_IO = -7,               /* a file could not be read or written */
    CLUNET_ERR_FORMAT = -8,           /* a file's content is malformed */
    CLUNET_ERR_UNSUPPORTED = -9,      /* valid, but not supported by clunet */
    CLUNET_ERR_NUMERIC = -10,         /* NaN or Inf where finite values are needed */
    CLUNET_ERR_INTERNAL = -11,        /* a bug in clunet */
} clunet_status;

/* A short, static description of a status ("out of memory"). */
CLUNET_API const char *clunet_status_string(clunet_status status);

/* The detailed message of the last failure in this thread (never NULL). */
CLUNET_API const char *clunet_last_error(void);

/* "0.1.0" */
CLUNET_API const char *clunet_version(void);

/* ---------------------------------------------------------------------------
 * Devices
 * ------------------------------------------------------------------------- */

typedef enum clunet_device_type {
    CLUNET_DEVICE_CPU = 1,
    CLUNET_DEVICE_GPU = 2,
    CLUNET_DEVICE_ACCELERATOR = 4,
    CLUNET_DEVICE_OTHER = 8,
} clunet_device_type;

/* Capabilities of one OpenCL device, read once at enumeration. */
typedef struct clunet_device_info {
    int index;                    /* position in the enumeration, for --device N */
    clunet_device_type type;
    char name[256];
    char vendor[256];
    char platform[256];           /* platform name */
    char platform_version[256];
    char driver_version[128];
    char opencl_c_version[128];
    unsigned compute_units;
    unsigned clock_mhz;
    uint64_t global_mem_bytes;
    uint64_t local_mem_bytes;
    uint64_t max_alloc_bytes;
    uint64_t global_cache_bytes;  /* the device's cache for global memory (0 if it reports none) */
    size_t max_work_group_size;
    int fp16;                     /* cl_khr_fp16 */
    int fp64;                     /* cl_khr_fp64 */
    int profiling;                /* queue profiling supported */
    int simulator;                /* a checking simulator (Oclgrind): never picked by default */
} clunet_device_info;

/*
 * Every device of every platform, enumerated once per process (the first call
 * that succeeds; later calls return the same array, valid until the process
 * ends). A platform or device that fails to answer is skipped
 * (clunet_devices_warnings() then says which); with no platform this returns
 * CLUNET_ERR_NO_PLATFORM, with platforms but no usable device
 * CLUNET_ERR_NO_DEVICE.
 */
CLUNET_API clunet_status clunet_devices(const clunet_device_info **devices, int *count);

/* Newline-separated notes about platforms skipped by the last clunet_devices(), or "". */
CLUNET_API const char *clunet_devices_warnings(void);

/*
 * Picks a device by spec: NULL or "" means $CLUNET_DEVICE if set, else the first
 * GPU, else the first CPU (simulators only when nothing else exists); "3" is an index; "gpu"/"cpu" the first of that type;
 * anything else a case-insensitive substring of the name, vendor or platform.
 */
CLUNET_API clunet_status clunet_device_select(const char *spec, int *index);

/* ---------------------------------------------------------------------------
 * Context: one device, its queue, compiled programs and memory accounting
 * ------------------------------------------------------------------------- */

typedef struct clunet_context clunet_context;

typedef struct clunet_settings {
    const char *device;        /* device spec as for clunet_device_select (default NULL) */
    uint64_t memory_cap_bytes; /* refuse device allocations beyond this total (0 = device limit) */
    int profiling;             /* enable OpenCL profiling events (default 0) */
    int use_cache;             /* use the on-disk kernel binary cache (default 1; CLUNET_NO_CACHE=1 overrides) */
} clunet_settings;

CLUNET_API void clunet_default_settings(clunet_settings *settings);
CLUNET_API clunet_status clunet_context_create(const clunet_settings *settings, clunet_context **ctx);
CLUNET_API void clunet_context_destroy(clunet_context *ctx);
CLUNET_API const clunet_device_info *clunet_context_device(const clunet_context *ctx);

/* Compiles every embedded kernel file for the context's device (warming the cache). */
CLUNET_API clunet_status clunet_context_build_all(clunet_context *ctx);

typedef struct clunet_memory_stats {
    uint64_t current_bytes; /* device memory allocated now */
    uint64_t peak_bytes;    /* the most ever allocated at once */
    uint64_t cap_bytes;     /* the limit enforced */
} clunet_memory_stats;

CLUNET_API void clunet_context_memory(const clunet_context *ctx, clunet_memory_stats *stats);

/* Program builds: how many came from the disk cache and how many were compiled. */
CLUNET_API void clunet_context_build_stats(const clunet_context *ctx, int *cache_hits, int *compiled);

#ifdef __cplusplus
}
#endif

#endif /* CLUNET_H */
