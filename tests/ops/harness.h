/*
 * harness.h - the op test harness behind build/tests/test-ops.
 *
 * Each op family provides one function `void cases_FAMILY(to_run *r)` that walks
 * its shapes. For every case it:
 *   if (!to_begin(r, "conv2d_forward", "N=2 C=3 H=17 W=17 k3 s2")) continue;  // filtered out
 *   ... host inputs from to_random(), device copies from to_upload(),
 *       outputs from to_output() (NaN-poisoned, fenced by sentinels) ...
 *   to_exec(r, run_fn, &state, flops, bytes);   // enqueues the op (timed with --perf)
 *   ... reference in double from src/ref ...
 *   to_compare(r, "y", out, ref, n, tol);       // sentinels, NaN/Inf, error bound
 *   if (r->grad) to_grad_check(r, "dx", x, nx, analytic_dx, loss_fn, &state);
 *   to_end(r);                                  // frees the case's buffers, counts pass/fail
 *
 * Random inputs come from a seed fixed per case, so a failure reproduces.
 */
#ifndef CLUNET_TEST_OPS_HARNESS_H
#define CLUNET_TEST_OPS_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

typedef struct to_run {
    clunet_context *ctx; /* the device under test */
    int small;           /* --small: only small shapes (for Oclgrind) */
    int grad;            /* --grad: also check reference backwards by finite differences */
    int perf;            /* --perf: time each case (median of runs after warm-up) */
    int list;            /* --list: only collect op names */
    const char *ab_key;  /* --ab KEY=A,B: with --perf, time $CLUNET_TUNE's KEY=A against KEY=B, run by run */
    int ab[2];
    const char *ab_dir;  /* --ab kernels=DIR (ab_key "kernels"): the built-in kernels against DIR's */
    int verbose;
    /* internal state follows; cases do not touch it */
    struct to_state *st;
} to_run;

/* A device buffer of `n` floats at `t.offset`, fenced by sentinel floats on both sides. */
typedef struct to_buf {
    cn_tensor t; /* t.buf, t.offset; the shape fields are left to the case */
    size_t n;
} to_buf;

/*
 * Starts a case. Returns 0 when the case is filtered out (--op, --list) and must
 * be skipped. `op` is the op name as `--op` selects it (e.g. "conv2d_forward"), a
 * string that outlives the run (--list keeps the pointer);
 * `shape` a short human description of the shape.
 */
int to_begin(to_run *r, const char *op, const char *shape);

/* Ends a case: frees everything it allocated through the harness, prints its result line. */
void to_end(to_run *r);

/* `n` floats uniform in [lo, hi], none with |v| < 1e-3 (never zero); freed by to_end. */
float *to_random(to_run *r, size_t n, float lo, float hi);

/* Uniform random ints in [0, range), freed by to_end (e.g. for binary labels/masks as 0/1 floats). */
float *to_random_binary(to_run *r, size_t n, double p_one);

/* Host scratch freed by to_end. */
double *to_alloc_double(to_run *r, size_t n);
float *to_alloc_float(to_run *r, size_t n);

/* float -> double copy (freed by to_end). */
double *to_widen(to_run *r, const float *x, size_t n);

/* A device copy of host data (fenced). */
to_buf to_upload(to_run *r, const float *host, size_t n);

/* A fenced device buffer of n floats, filled with NaN: every element must be written by the op. */
to_buf to_output(to_run *r, size_t n);

/* A fenced device buffer with given contents (for ops that accumulate into or update their output). */
to_buf to_inout(to_run *r, const float *host, size_t n);

/* A gradient the op adds to where acc (holding `initial`), else writes (NaN-poisoned, as to_output). */
to_buf to_grad_out(to_run *r, const float *initial, size_t n, int acc);

/* Fills a buffer's data with NaN again (before a rerun whose output must be written anew). */
void to_poison(to_run *r, to_buf b);

/* Downloads a buffer (freed by to_end). */
float *to_download(to_run *r, to_buf b);

/* Enqueues the op under test once; with --perf, also times it and reports GFLOP/s and GB/s. */
typedef clunet_status (*to_fn)(clunet_context *ctx, void *state);
int to_exec(to_run *r, to_fn fn, void *state, double flops, double bytes);

/*
 * Compares the device buffer with the reference: checks the sentinels, that
 * every value is finite, and that max|out - ref| <= tol * max(1, max|ref|).
 * Returns 1 on pass; a failure is recorded against the case.
 */
int to_compare(to_run *r, const char *what, to_buf out, const double *ref, size_t n, double tol);

/* The same for a plain host array (e.g. a scalar loss read back) */
int to_compare_host(to_run *r, const char *what, const float *out, const double *ref, size_t n, double tol);

/* Marks the current case failed with a message (e.g. an op returned an error). */
void to_failf(to_run *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * Finite-difference check of a reference backward: `loss(state)` returns a
 * scalar computed in double from the current contents of x (which the harness
 * perturbs in place by +-h and restores); `analytic[i]` must equal dloss/dx[i].
 * Checks up to 64 coordinates spread over x. Returns 1 on pass.
 */
typedef double (*to_loss_fn)(void *state);
int to_grad_check(to_run *r, const char *what, double *x, size_t n, const double *analytic, to_loss_fn loss,
                  void *state);

/* The op families (one per tests/ops/cases_*.c). */
void cases_conv(to_run *r);
void cases_pointwise(to_run *r);

#endif
