/*
 * runtime.h - clunet's OpenCL layer: errors, devices, programs, buffers.
 *
 * Knows nothing about networks. Everything here is internal to the library;
 * the public face is include/clunet.h.
 */
#ifndef CLUNET_RUNTIME_H
#define CLUNET_RUNTIME_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "clunet.h"
#include "common/cpuload.h"
#include "common/error.h"

/* ---- OpenCL errors ------------------------------------------------------ */

/* "CL_OUT_OF_RESOURCES" for -5. */
const char *cn_cl_error_name(cl_int err);

/* Maps an OpenCL error to a status (memory errors -> OUT_OF_MEMORY). */
clunet_status cn_cl_status(cl_int err);

/* Checks an OpenCL call: on failure records "call failed: NAME (file:line)" and returns the status. */
#define CN_CL_CHECK(call)                                                              \
    do {                                                                               \
        cl_int cn_err_ = (call);                                                       \
        if (cn_err_ != CL_SUCCESS)                                                     \
            return cn_fail(cn_cl_status(cn_err_), "%s failed: %s (%s:%d)", #call,      \
                           cn_cl_error_name(cn_err_), __FILE__, __LINE__);             \
    } while (0)

/* ---- devices ------------------------------------------------------------ */

/* The cl_device_id behind clunet_devices()[index]. */
cl_device_id cn_device_id(int index);
cl_platform_id cn_platform_id(int index);

/* ---- embedded kernel sources -------------------------------------------- */

typedef struct cn_source {
    const char *name; /* file name in cl/, e.g. "conv.cl" */
    const char *text;
} cn_source;

extern const cn_source cn_sources[];
extern const int cn_source_count;

/* ---- context ------------------------------------------------------------ */

#define CN_MAX_PROGRAMS 128
#define CN_MAX_KERNELS 256
#define CN_MAX_PICKS 256

typedef struct cn_program {
    char file[64];
    char options[256];
    char dir[256]; /* $CLUNET_KERNEL_DIR when it was built, "" for the embedded sources */
    cl_program program;
} cn_program;

typedef struct cn_kernel_entry {
    const cn_program *program;
    char name[64];
    cl_kernel kernel;
} cn_kernel_entry;

struct clunet_context {
    clunet_device_info info;
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    int profiling;
    int use_cache;

    cn_program programs[CN_MAX_PROGRAMS];
    int program_count;
    cn_kernel_entry kernels[CN_MAX_KERNELS];
    int kernel_count;
    int cache_hits, compiled;

    uint64_t mem_current, mem_peak, mem_cap;

    /* Choices made per device by measuring (ops fill these lazily; -1 = not yet). */
    int gemm_impl;
    int gemm_mr, gemm_nt; /* gemm_nn's micro-tile rows, gemm_nt's tile side (cl/gemm.cl) */
    int gemm_gp;          /* gemm_nn's panels of B packed at once */
    int gemm_nt_packed;   /* 1: A * B^T through gemm_nn (B transposed as it is packed) where rows are many */
    int conv_ob;          /* conv2d_tiled's output channels per pass (cl/conv.cl) */
    int conv_dw;          /* conv2d_direct_dw's output channels per work-item */
    int dw_plane;         /* 1: depthwise weight gradients on planes up to 16 x 16 by depthwise_plane_bwd_weight */
    int conv_winograd;    /* 1: wide 3x3 convs as Winograd F(2x2,3x3) (cl/winograd.cl) */
    int conv_wino_fused;  /* 1: the other 3x3 convs as winograd_fused (V and M in local memory) */
    int conv_wino_dw;     /* 1: wide 3x3 convs' weight gradients as Winograd too */
    int stream_stores;    /* 1: large outputs written past the caches (cn_stream_option) */
    size_t stream_floor;  /* the bytes from which an output counts as large (tests lower it) */
    int cpu_paths;        /* see cn_cpu_paths */

    char tuning_file[1200]; /* the tuning file's path ("" without a cache): see cn_tuning_init */
    cn_cpu_mark cpu_start;  /* the CPUs' counters at the context's creation (cn_tuning_quiet) */
    int quiet;              /* cn_tuning_quiet's answer, once known (-1: not yet) */
    int busy_picks;         /* choices kept that were measured while others took >= CN_TUNE_BUSY of the CPUs */
    int busy_noted;         /* how many of them cn_tuning_busy_note has told of */
    double busy_most;       /* the largest such share since the last note */

    /* Every cn_tune_pick answer so far, so a choice per shape costs no file read per step. */
    struct {
        char key[96];
        int value;
    } picks[CN_MAX_PICKS];
    int pick_count;
    /* The fields cn_tune_choose has set (-1: not chosen yet), for cn_tune_forget. */
    int *knob_fields[16];
    int knob_field_count;

    /*
     * Set by an op whose library keeps objects of this context (CLBlast's
     * program cache): run by clunet_context_destroy while the OpenCL objects
     * still exist, since the library's own cleanup at exit may run after the
     * OpenCL implementation's (Oclgrind then aborts on a corrupted heap).
     */
    void (*release_library)(void);
};

/*
 * Whether the context runs the kernel variants and choices made for CPUs (explicit vectors, no work-group
 * barriers; cl/ sees CN_DEVICE_CPU): on CPU devices, unless CLUNET_PATHS says otherwise (tests run the GPU
 * variants on PoCL).
 */
static inline int cn_cpu_paths(const clunet_context *ctx) { return ctx->cpu_paths; }

/*
 * The kernel `name` from cl/`file`, built for this device with the device's
 * #defines plus `options` (extra -D flags, may be NULL). Programs and kernels
 * are built once and kept for the context's life.
 */
clunet_status cn_kernel(clunet_context *ctx, const char *file, const char *name, const char *options,
                        cl_kernel *kernel);

/* Builds (or loads from cache) the program for `file` with `options`. */
clunet_status cn_program_get(clunet_context *ctx, const char *file, const char *options, cl_program *program);

/* Directory of the on-disk binary cache ($XDG_CACHE_HOME/clunet or ~/.cache/clunet); 0 if none. */
int cn_cache_dir(char *out, size_t size);

/*
 * Choices made by measuring on this device (e.g. "gemm" -> "register"), kept
 * next to the kernel binaries in one small file per device, driver and
 * version of the kernels (cn_tuning_init), so a measurement runs once per
 * machine and again after the kernels change. Off with the cache
 * (CLUNET_NO_CACHE=1). cn_tuning_get returns 1 and fills value when the key
 * is known, and 0 for a line measured on a busy machine when this run is
 * quiet (cn_tuning_quiet): the caller measures again.
 */
void cn_tuning_init(clunet_context *ctx);
int cn_tuning_get(clunet_context *ctx, const char *key, char *value, size_t size);
/*
 * Stores value (a measurement's winner) for key unless the file already has
 * one, which then replaces value: runs that measured at the same time (each
 * on a cold cache) all end with the first one's choice, and so compute alike.
 * busy: the share of the CPUs other processes used during the measurement
 * (cn_tune_busy). At CN_TUNE_BUSY or more the line says so, and a later run
 * that has the machine to itself measures again (cn_tuning_get answers 0)
 * and replaces it: on a 2-core VM, kernels timed beside another program's
 * work chose tiles 15-30% slower than a quiet machine's choice.
 */
void cn_tuning_settle(clunet_context *ctx, const char *key, char *value, size_t size, double busy);
#define CN_TUNE_BUSY 0.2
/*
 * Whether other processes used less than CN_TUNE_BUSY of the CPUs since the
 * context's creation, over a quarter of a second at least (a younger context
 * waits out the rest once); decided once per context.
 */
int cn_tuning_quiet(clunet_context *ctx);
/*
 * The share of the CPUs others took since *since, for a measurement on a CPU
 * device (0 on other devices), over a tenth of a second at least: shorter
 * windows are below the counters' grain.
 */
double cn_tune_busy(const clunet_context *ctx, const cn_cpu_mark *since);
/*
 * Fills note and returns 1 when choices measured on a busy machine were kept
 * since the last note: the run uses them, and a quiet run will measure them again.
 */
int cn_tuning_busy_note(clunet_context *ctx, char *note, size_t size);
/*
 * Fills note with a line for the user and returns 1 when this device has no
 * tuning file yet (or no cache): the run will compile kernels and time
 * candidates, minutes of silence on a CPU that callers should announce.
 */
int cn_first_run_note(const clunet_context *ctx, char *note, size_t size);

/* A run of kernel variant `value` for timing (its arguments in arg). */
typedef clunet_status (*cn_tune_fn)(clunet_context *ctx, int value, void *arg);

/* Seconds of the best of three runs of run(value) after a warm-up (which also builds its kernels). */
clunet_status cn_time_best(clunet_context *ctx, cn_tune_fn run, int value, void *arg, double *seconds);

/*
 * *chosen = the fastest of values[0..n) for the kernel variant `key` on this
 * device (e.g. "conv_tiled_ob"): $CLUNET_TUNE=key=value,... if it names the
 * key (a value not among the candidates is an error), else the one measured
 * before (tuning file), else the fastest of five rounds in which each
 * candidate runs once in turn (after an untimed run each; five more rounds
 * of the two best where they are within 15%), which is kept.
 * The context remembers each answer (keys up to 95 characters).
 */
clunet_status cn_tune_pick(clunet_context *ctx, const char *key, const int *values, int n, cn_tune_fn run, void *arg,
                           int *chosen);

/* cn_tune_pick's answer without timing: *known = 0 where it would have to time. */
clunet_status cn_tune_known(clunet_context *ctx, const char *key, const int *values, int n, int *chosen, int *known);

/* Whether $CLUNET_TUNE names `key` (a test forcing a variant). */
int cn_tune_forced(const char *key);

/* Fails, naming the entry, if $CLUNET_TUNE holds one that is not key=value for a knob or a conv path per shape. */
clunet_status cn_tune_check_env(void);

/* One choice for cn_tune_choose: its key and candidates, how to time one, and where the choice goes. */
typedef struct cn_tune_knob {
    const char *key;
    const int *values;
    int n;
    cn_tune_fn run;
    int *field;  /* e.g. &ctx->conv_ob; run sets it to the value it times */
    int initial; /* its value while the knobs before it are timed */
} cn_tune_knob;

/*
 * Picks knobs[0..count) in order with cn_tune_pick (one `arg` for all); on
 * failure every field is -1. The knobs size CPU kernels: on other devices
 * (where tests force those kernels) they keep their initial values, untimed.
 */
clunet_status cn_tune_choose(clunet_context *ctx, const cn_tune_knob *knobs, int count, void *arg);

/*
 * *field = $CLUNET_TUNE's value for key (one of values[0..n)) if it names the
 * key, else `rule`: a variant set by a rule rather than timed, which tests
 * and A/B timings can still force (cn_tune_forget resets it too).
 */
clunet_status cn_tune_rule(clunet_context *ctx, const char *key, const int *values, int n, int rule, int *field);

/*
 * Sets every knob cn_tune_choose or cn_tune_rule has set back to -1, so that each is chosen
 * again where next used: from $CLUNET_TUNE, else the earlier answers (no
 * timing). test-ops --ab changes $CLUNET_TUNE between timed runs with it.
 */
void cn_tune_forget(clunet_context *ctx);

/*
 * " -DCN_NT_STORE=1" (streaming stores: see cn_stream16 in cl/common.cl) when
 * an output of `bytes` is too large to be read back from the caches by the op
 * after it (ctx->stream_floor) and this device writes such outputs faster past
 * its caches (the knob "stream_stores", measured once on CPUs), else "".
 * To append to a kernel's options.
 */
clunet_status cn_stream_option(clunet_context *ctx, size_t bytes, const char **option);

/*
 * The same from the choice as it stands, never timing it ("" until it is
 * made): for buffer fills, which that timing itself runs.
 */
const char *cn_stream_flag(const clunet_context *ctx, size_t bytes);

/*
 * Sets ctx->stream_stores unless set: whether this device writes a large
 * output faster past its caches, timed once on CPUs (with 64 MiB of temporary
 * buffers: call it before the big allocations), 0 elsewhere.
 */
clunet_status cn_stream_choose(clunet_context *ctx);

/* ---- buffers ------------------------------------------------------------ */

/* Allocates a device buffer of `bytes`, counted against the context's cap. */
clunet_status cn_buffer_alloc(clunet_context *ctx, size_t bytes, cl_mem *buf);
void cn_buffer_free(clunet_context *ctx, cl_mem buf);

clunet_status cn_buffer_write(clunet_context *ctx, cl_mem buf, size_t offset_bytes, size_t bytes, const void *src);
clunet_status cn_buffer_read(clunet_context *ctx, cl_mem buf, size_t offset_bytes, size_t bytes, void *dst);
clunet_status cn_buffer_fill_float(clunet_context *ctx, cl_mem buf, size_t offset_bytes, size_t bytes, float value);

/* ---- tensors ------------------------------------------------------------ */

/* A view into a device buffer: shape (n, c, h, w), `offset` counted in floats. */
typedef struct cn_tensor {
    cl_mem buf;
    size_t offset;
    int n, c, h, w;
} cn_tensor;

static inline size_t cn_tensor_count(const cn_tensor *t) { return (size_t)t->n * t->c * t->h * t->w; }

/* Allocates a tensor owning a fresh buffer. */
clunet_status cn_tensor_alloc(clunet_context *ctx, int n, int c, int h, int w, cn_tensor *t);
void cn_tensor_free(clunet_context *ctx, cn_tensor *t);
clunet_status cn_tensor_upload(clunet_context *ctx, const cn_tensor *t, const float *src);
clunet_status cn_tensor_download(clunet_context *ctx, const cn_tensor *t, float *dst);

/* ---- launching ---------------------------------------------------------- */

/* Sets kernel argument `i` (a wrapper that records which kernel and argument failed). */
clunet_status cn_arg(cl_kernel k, cl_uint i, size_t size, const void *value);
#define CN_ARG_MEM(k, i, m) cn_arg((k), (i), sizeof(cl_mem), &(m))
#define CN_ARG_INT(k, i, v) cn_arg((k), (i), sizeof(cl_int), &(cl_int){(cl_int)(v)})
#define CN_ARG_FLOAT(k, i, v) cn_arg((k), (i), sizeof(cl_float), &(cl_float){(cl_float)(v)})

/* A view as the two arguments kernels take for it: the buffer at i, the offset in floats at i + 1. */
clunet_status cn_arg_view(cl_kernel k, cl_uint i, const cn_tensor *t);

/*
 * Enqueues `k` over `dims` dimensions: `global` is rounded up to a multiple of
 * `local` (kernels check bounds); `local` may be NULL for the driver's choice.
 * An out-of-resources launch names the kernel.
 */
clunet_status cn_launch(clunet_context *ctx, cl_kernel k, cl_uint dims, const size_t *global, const size_t *local);

/* Waits for everything queued. */
clunet_status cn_finish(clunet_context *ctx);

#endif /* CLUNET_RUNTIME_H */
