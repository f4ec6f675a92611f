/*
 * harness.c - buffers, comparisons, finite differences and timing for test-ops.
 *
 * Every device buffer a case gets is its own allocation of SENTINELS floats,
 * the data, then SENTINELS floats again; the data thus also sits at a nonzero
 * offset, which checks that kernels honour their offset arguments. The fences
 * hold a fixed bit pattern that to_compare() requires intact.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/harness.h"
#include "ops/state.h"

#define SENTINELS 16
#define FENCE_BITS 0x5EADBEEFu

static float fence_value(void)
{
    uint32_t bits = FENCE_BITS;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* xorshift64*: a tiny, fixed generator so a seed means the same data everywhere. */
static double next_uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static uint64_t hash_text(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *a; a++) h = (h ^ (unsigned char)*a) * 1099511628211ULL;
    h = (h ^ '|') * 1099511628211ULL;
    for (; *b; b++) h = (h ^ (unsigned char)*b) * 1099511628211ULL;
    return h ? h : 1;
}

static void *track(to_run *r, void *p)
{
    to_state *st = r->st;
    if (!p || st->host_count == TO_MAX_ALLOCS) {
        fprintf(stderr, "test-ops: out of host memory or too many allocations in one case\n");
        free(p);
        return NULL;
    }
    st->host[st->host_count++] = p;
    return p;
}

void to_failf(to_run *r, const char *fmt, ...)
{
    to_state *st = r->st;
    va_list ap;
    va_start(ap, fmt);
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!st->case_failed) printf("  FAIL %s [%s] on %s: %s\n", st->op, st->shape, r->ctx->info.name, msg);
    else printf("       %s\n", msg);
    st->case_failed = 1;
}

int to_begin(to_run *r, const char *op, const char *shape)
{
    to_state *st = r->st;
    if (r->list) {
        for (int i = 0; i < st->op_name_count; i++)
            if (!strcmp(st->op_names[i], op)) return 0;
        if (st->op_name_count < TO_MAX_OPS) st->op_names[st->op_name_count++] = op;
        return 0;
    }
    if (st->filter && !to_filter_matches(st->filter, op)) return 0;
    if (st->case_filter && !strstr(shape, st->case_filter)) return 0;
    snprintf(st->op, sizeof st->op, "%s", op);
    snprintf(st->shape, sizeof st->shape, "%s", shape);
    st->rng = hash_text(op, shape);
    st->case_failed = 0;
    st->checks = 0;
    st->worst[0] = 0;
    st->perf_line[0] = 0;
    st->in_case = 1;
    return 1;
}

void to_end(to_run *r)
{
    to_state *st = r->st;
    if (!st->in_case) return;
    for (int i = 0; i < st->host_count; i++) free(st->host[i]);
    for (int i = 0; i < st->dev_count; i++) cn_buffer_free(r->ctx, st->dev[i]);
    st->host_count = st->dev_count = 0;
    if (!st->case_failed && st->checks == 0 && !r->perf)
        to_failf(r, "the case compared nothing (a test that cannot fail)");
    if (st->case_failed) st->failed++;
    else {
        st->passed++;
        if (r->verbose || r->perf)
            printf("  ok   %-28s [%s]%s%s\n", st->op, st->shape, st->worst[0] ? " " : "", st->perf_line[0] ? st->perf_line : st->worst);
    }
    st->in_case = 0;
}

float *to_random(to_run *r, size_t n, float lo, float hi)
{
    float *x = track(r, malloc(n * sizeof *x));
    if (!x) return NULL;
    for (size_t i = 0; i < n; i++) {
        float v;
        do v = (float)(lo + (hi - lo) * next_uniform(&r->st->rng));
        while (fabsf(v) < 1e-3f);
        x[i] = v;
    }
    return x;
}

float *to_random_binary(to_run *r, size_t n, double p_one)
{
    float *x = track(r, malloc(n * sizeof *x));
    if (!x) return NULL;
    for (size_t i = 0; i < n; i++) x[i] = next_uniform(&r->st->rng) < p_one ? 1.0f : 0.0f;
    return x;
}

double *to_alloc_double(to_run *r, size_t n) { return track(r, calloc(n ? n : 1, sizeof(double))); }
float *to_alloc_float(to_run *r, size_t n) { return track(r, calloc(n ? n : 1, sizeof(float))); }

double *to_widen(to_run *r, const float *x, size_t n)
{
    double *d = to_alloc_double(r, n);
    if (d)
        for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* A fenced buffer whose data region is `host`, or all `fill` when host is NULL. */
static to_buf fenced(to_run *r, const float *host, size_t n, float fill)
{
    to_state *st = r->st;
    to_buf b = {{0}, n};
    size_t total = n + 2 * SENTINELS;
    float *img = malloc(total * sizeof *img);
    if (!img || st->dev_count == TO_MAX_ALLOCS ||
        cn_buffer_alloc(r->ctx, total * sizeof(float), &b.t.buf) != CLUNET_OK) {
        to_failf(r, "cannot allocate a test buffer of %zu floats: %s", n, clunet_last_error());
        free(img);
        b.t.buf = NULL;
        return b;
    }
    st->dev[st->dev_count++] = b.t.buf;
    for (size_t i = 0; i < total; i++) img[i] = fence_value();
    for (size_t i = 0; i < n; i++) img[SENTINELS + i] = host ? host[i] : fill;
    if (cn_buffer_write(r->ctx, b.t.buf, 0, total * sizeof(float), img) != CLUNET_OK)
        to_failf(r, "upload failed: %s", clunet_last_error());
    free(img);
    b.t.offset = SENTINELS;
    b.t.n = 1, b.t.c = 1, b.t.h = 1, b.t.w = (int)n;
    return b;
}

to_buf to_upload(to_run *r, const float *host, size_t n) { return fenced(r, host, n, 0.0f); }
to_buf to_output(to_run *r, size_t n) { return fenced(r, NULL, n, NAN); }
to_buf to_inout(to_run *r, const float *host, size_t n) { return fenced(r, host, n, 0.0f); }
to_buf to_grad_out(to_run *r, const float *initial, size_t n, int acc)
{
    return acc ? to_inout(r, initial, n) : to_output(r, n);
}

void to_poison(to_run *r, to_buf b)
{
    float *nan = to_alloc_float(r, b.n);
    if (!nan) return;
    for (size_t i = 0; i < b.n; i++) nan[i] = NAN;
    if (cn_buffer_write(r->ctx, b.t.buf, b.t.offset * sizeof(float), b.n * sizeof(float), nan) != CLUNET_OK)
        to_failf(r, "upload failed: %s", clunet_last_error());
}

/* The whole fenced region, checked for intact fences; NULL on failure. */
static float *download_fenced(to_run *r, to_buf b, const char *what)
{
    if (!b.t.buf) return NULL;
    size_t total = b.n + 2 * SENTINELS;
    float *img = track(r, malloc(total * sizeof *img));
    if (!img) return NULL;
    if (cn_buffer_read(r->ctx, b.t.buf, 0, total * sizeof(float), img) != CLUNET_OK) {
        to_failf(r, "%s: download failed: %s", what, clunet_last_error());
        return NULL;
    }
    uint32_t want = FENCE_BITS;
    for (size_t i = 0; i < total; i++) {
        if (i == SENTINELS) i += b.n;
        if (i >= total) break;
        if (memcmp(&img[i], &want, sizeof want)) {
            to_failf(r, "%s: out-of-bounds write at %s of the buffer (fence %zu)", what,
                     i < SENTINELS ? "the start" : "the end", i < SENTINELS ? SENTINELS - i : i - SENTINELS - b.n);
            return NULL;
        }
    }
    return img;
}

float *to_download(to_run *r, to_buf b)
{
    float *img = download_fenced(r, b, "download");
    return img ? img + SENTINELS : NULL;
}

int to_compare_host(to_run *r, const char *what, const float *out, const double *ref, size_t n, double tol)
{
    to_state *st = r->st;
    st->checks++;
    if (!out) {
        to_failf(r, "%s: no output to compare", what);
        return 0;
    }
    double max_err = 0, max_ref = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i])) {
            to_failf(r, "%s[%zu] = %g is not finite (reference %g)", what, i, out[i], ref[i]);
            return 0;
        }
        double e = fabs(out[i] - ref[i]);
        if (e > max_err) max_err = e, worst = i;
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    }
    double bound = tol * (max_ref > 1 ? max_ref : 1);
    if (max_err > bound || !(max_err == max_err)) {
        to_failf(r, "%s: max error %.3g at [%zu] (got %.9g, reference %.9g) exceeds %.3g", what, max_err, worst,
                 out[worst], ref[worst], bound);
        return 0;
    }
    snprintf(st->worst, sizeof st->worst, "%s err %.2g (bound %.2g)", what, max_err, bound);
    return 1;
}

int to_compare(to_run *r, const char *what, to_buf out, const double *ref, size_t n, double tol)
{
    float *img = download_fenced(r, out, what);
    if (!img) {
        r->st->checks++;
        if (!r->st->case_failed) to_failf(r, "%s: no output to compare", what);
        return 0;
    }
    if (n != out.n) {
        r->st->checks++;
        to_failf(r, "%s: compared %zu values of a %zu-value buffer", what, n, out.n);
        return 0;
    }
    return to_compare_host(r, what, img + SENTINELS, ref, n, tol);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * --ab: variant v (0 for A, 1 for B) sets $CLUNET_TUNE to "KEY=value" before
 * what it held, or for kernels=DIR $CLUNET_KERNEL_DIR to DIR for B and back to
 * what it held for A; the knobs are chosen again at their next use (the
 * context keeps both variants' programs). v < 0 restores what it held.
 */
static int ab_variant(to_run *r, int v)
{
    static char *held; /* the variable as the run started, or NULL */
    static int saved;
    const char *var = r->ab_dir ? "CLUNET_KERNEL_DIR" : "CLUNET_TUNE";
    if (!saved) {
        const char *env = getenv(var);
        held = env ? strdup(env) : NULL;
        saved = 1;
    }
    if (v < 0 || (r->ab_dir && v == 0)) {
        if (held) setenv(var, held, 1);
        else unsetenv(var);
    } else if (r->ab_dir) {
        setenv(var, r->ab_dir, 1);
    } else {
        char text[512];
        snprintf(text, sizeof text, "%s=%d%s%s", r->ab_key, r->ab[v], held ? "," : "", held ? held : "");
        setenv(var, text, 1);
    }
    cn_tune_forget(r->ctx);
    if (cn_tune_check_env() != CLUNET_OK) {
        to_failf(r, "--ab: %s", clunet_last_error());
        return 0;
    }
    return 1;
}

/* How the perf line names variant v. */
static void ab_label(const to_run *r, int v, char *out, size_t size)
{
    if (!r->ab_dir) snprintf(out, size, "%s=%d", r->ab_key, r->ab[v]);
    else if (v == 1) snprintf(out, size, "%s", r->ab_dir);
    else snprintf(out, size, "%s", getenv("CLUNET_KERNEL_DIR") ? getenv("CLUNET_KERNEL_DIR") : "built-in");
}

/*
 * --perf --ab: A and B take turns run by run (ABBA...), so both meet the same
 * moments of a busy machine; reports both medians and the median of the
 * pairs' B/A ratios.
 */
static int exec_ab(to_run *r, to_fn fn, void *state)
{
    enum { MAX_PAIRS = 15 };
    double t[2][MAX_PAIRS], ratio[MAX_PAIRS];
    int pairs = 0;
    char label[2][64];
    for (int v = 0; v < 2; v++) { /* warm-up: each variant builds its kernels */
        if (!ab_variant(r, v)) return 0;
        ab_label(r, v, label[v], sizeof label[v]);
        for (int i = 0; i < 2; i++)
            if (fn(r->ctx, state) != CLUNET_OK || cn_finish(r->ctx) != CLUNET_OK) {
                to_failf(r, "the op failed with %s: %s", label[v], clunet_last_error());
                ab_variant(r, -1);
                return 0;
            }
    }
    double start = now_seconds();
    while (pairs < MAX_PAIRS && (pairs < 5 || now_seconds() - start < 2.0)) {
        for (int j = 0; j < 2; j++) {
            int v = (pairs & 1) ^ j;
            if (!ab_variant(r, v)) return 0;
            double t0 = now_seconds();
            if (fn(r->ctx, state) != CLUNET_OK || cn_finish(r->ctx) != CLUNET_OK) {
                to_failf(r, "the op failed while timing: %s", clunet_last_error());
                ab_variant(r, -1);
                return 0;
            }
            t[v][pairs] = now_seconds() - t0;
        }
        ratio[pairs] = t[1][pairs] / t[0][pairs];
        pairs++;
    }
    if (!ab_variant(r, -1)) return 0;
    qsort(t[0], pairs, sizeof(double), cmp_double);
    qsort(t[1], pairs, sizeof(double), cmp_double);
    qsort(ratio, pairs, sizeof(double), cmp_double);
    snprintf(r->st->perf_line, sizeof r->st->perf_line, " %s %9.3f ms  %s %9.3f ms  ratio %.3f  (medians of %d pairs)",
             label[0], t[0][pairs / 2] * 1e3, label[1], t[1][pairs / 2] * 1e3, ratio[pairs / 2], pairs);
    return 1;
}

int to_exec(to_run *r, to_fn fn, void *state, double flops, double bytes)
{
    if (r->st->case_failed) return 0;
    if (fn(r->ctx, state) != CLUNET_OK || cn_finish(r->ctx) != CLUNET_OK) {
        to_failf(r, "the op returned an error: %s", clunet_last_error());
        return 0;
    }
    if (!r->perf) return 1;
    if (r->ab_key) return exec_ab(r, fn, state);
    /* Warm up, then time runs until 15 runs or about a second, and report the median. */
    enum { MAX_RUNS = 15 };
    double t[MAX_RUNS];
    int runs = 0;
    for (int i = 0; i < 2; i++) fn(r->ctx, state);
    cn_finish(r->ctx);
    double start = now_seconds();
    while (runs < MAX_RUNS && (runs < 3 || now_seconds() - start < 1.0)) {
        double t0 = now_seconds();
        if (fn(r->ctx, state) != CLUNET_OK || cn_finish(r->ctx) != CLUNET_OK) {
            to_failf(r, "the op failed while timing: %s", clunet_last_error());
            return 0;
        }
        t[runs++] = now_seconds() - t0;
    }
    qsort(t, runs, sizeof t[0], cmp_double);
    double med = t[runs / 2];
    snprintf(r->st->perf_line, sizeof r->st->perf_line, " %9.3f ms  %7.1f GFLOP/s  %7.1f GB/s  (median of %d)",
             med * 1e3, flops / med * 1e-9, bytes / med * 1e-9, runs);
    return 1;
}

int to_grad_check(to_run *r, const char *what, double *x, size_t n, const double *analytic, to_loss_fn loss,
                  void *state)
{
    to_state *st = r->st;
    st->checks++;
    if (n == 0) return 1;
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(analytic[i]) > scale) scale = fabs(analytic[i]);
    size_t count = n < 64 ? n : 64;
    for (size_t j = 0; j < count; j++) {
        /* Spread the probes over the whole tensor, jittered so strides don't alias with shapes. */
        size_t i = (size_t)((j + next_uniform(&st->rng)) * n / count);
        if (i >= n) i = n - 1;
        double keep = x[i];
        double h = 1e-5 * (fabs(keep) > 1 ? fabs(keep) : 1);
        x[i] = keep + h;
        double up = loss(state);
        x[i] = keep - h;
        double down = loss(state);
        x[i] = keep;
        double fd = (up - down) / (2 * h);
        double a = analytic[i];
        double bound = 1e-5 * fmax(fabs(a), fabs(fd)) + 1e-6 * scale + 1e-10;
        if (!(fabs(fd - a) <= bound)) {
            to_failf(r, "%s: finite differences give %.9g at [%zu], the reference backward %.9g", what, fd, i, a);
            return 0;
        }
    }
    return 1;
}
