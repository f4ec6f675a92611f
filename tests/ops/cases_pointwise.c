/*
 * cases_pointwise.c - test-ops cases for every non-convolution op (src/ops/pointwise.h)
 * against the double references in src/ref/pointwise.h.
 *
 * Shapes are (N,C,H,W). The full set holds odd sizes, batches > 1, channel
 * counts that are not multiples of 4/8/16, and the EfficientNet-B0 U-Net's own
 * layer shapes at a 64x64 input; --small keeps only tiny shapes (Oclgrind);
 * --perf adds shapes of a 512x512 input.
 *
 * Tolerances are relative to max(1, max|ref|). Element-wise ops get 1e-5.
 * Reductions over thousands of float terms get 1e-4: the float sums carry a
 * relative error of about sqrt(terms) * 6e-8. Small gradients are compared
 * after scaling both sides by max|ref|, so the bound is truly relative.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/harness.h"
#include "ops/pointwise.h"
#include "ref/pointwise.h"

typedef struct shape4 {
    int n, c, h, w;
} shape4;

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const shape4 small_shapes[] = {{2, 3, 5, 7}, {1, 5, 3, 3}, {3, 7, 4, 6}};

/* EfficientNet-B0 encoder activations at 64x64 input, plus a plane of two BN chunks. */
static const shape4 full_shapes[] = {{2, 32, 32, 32}, {2, 96, 32, 32},  {2, 144, 16, 16}, {2, 240, 8, 8},
                                     {2, 672, 4, 4},  {2, 1280, 2, 2}, {1, 3, 67, 65}};

/* Encoder activations at 512x512 input, and a batch of two at 256x256 (several BN chunks per plane; perf only). */
static const shape4 perf_shapes[] = {{1, 32, 256, 256}, {1, 96, 256, 256}, {2, 32, 128, 128}};

/* Walks the shape sets the run asks for: call with i = 0, 1, ... until it returns 0. */
static int next_shape(to_run *r, int i, shape4 *s)
{
    int ns = (int)COUNT(small_shapes), nf = r->small ? 0 : (int)COUNT(full_shapes);
    int np = r->perf && !r->small ? (int)COUNT(perf_shapes) : 0;
    if (i < ns) *s = small_shapes[i];
    else if (i < ns + nf) *s = full_shapes[i - ns];
    else if (i < ns + nf + np) *s = perf_shapes[i - ns - nf];
    else return 0;
    return 1;
}

static size_t count4(shape4 s) { return (size_t)s.n * s.c * s.h * s.w; }

static cn_tensor view(to_buf b, int n, int c, int h, int w)
{
    cn_tensor t = b.t;
    t.n = n, t.c = c, t.h = h, t.w = w;
    return t;
}

static void describe(char *buf, size_t size, shape4 s, const char *extra)
{
    snprintf(buf, size, "%d,%d,%d,%d%s%s", s.n, s.c, s.h, s.w, extra[0] ? " " : "", extra);
}

/*
 * Every other case accumulates into its outputs. Not with --perf: the timed
 * runs repeat the op, so state that ops add into (and running statistics,
 * Adam's moments, metric counters) is only compared without --perf.
 */
static int accumulates(to_run *r, int i) { return !r->perf && i % 2 == 0; }

/* Compares after dividing both sides by max|ref|: a relative bound for values far below 1. */
static int compare_scaled(to_run *r, const char *what, to_buf out, const double *ref, size_t n, double tol)
{
    float *got = to_download(r, out);
    double *scaled = to_alloc_double(r, n);
    float *got_scaled = to_alloc_float(r, n);
    if (!got || !scaled || !got_scaled) {
        to_failf(r, "%s: no host memory to compare", what);
        return 0;
    }
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s = fmax(s, fabs(ref[i]));
    if (s == 0.0) s = 1.0;
    for (size_t i = 0; i < n; i++) {
        scaled[i] = ref[i] / s;
        got_scaled[i] = (float)(got[i] / s);
    }
    return to_compare_host(r, what, got_scaled, scaled, n, tol);
}

/* Bitwise equality of a buffer with an earlier download (the determinism checks). */
static void require_same_bits(to_run *r, const char *what, to_buf b, const float *before)
{
    float *now = to_download(r, b);
    if (now && before && memcmp(now, before, b.n * sizeof(float)))
        to_failf(r, "%s: a second run gave different bits (non-deterministic reduction)", what);
}

/* Runs the op once more outside to_exec (untimed, so --perf keeps the first timing). */
static int run_again(to_run *r, to_fn fn, void *state)
{
    if (fn(r->ctx, state) == CLUNET_OK && cn_finish(r->ctx) == CLUNET_OK) return 1;
    to_failf(r, "the op returned an error: %s", clunet_last_error());
    return 0;
}

/* A host copy of a buffer's current contents. */
static float *snapshot(to_run *r, to_buf b)
{
    float *d = to_download(r, b), *copy = to_alloc_float(r, b.n);
    if (d && copy) memcpy(copy, d, b.n * sizeof(float));
    return d ? copy : NULL;
}

/* ==== activations ======================================================== */

typedef struct act_case {
    cn_activation act;
    cn_tensor x, y, dy, dx;
    int acc;
    const double *xd, *w; /* grad check: input and weights of loss = sum w * act(x) */
    size_t count;
} act_case;

static clunet_status act_forward(clunet_context *ctx, void *p)
{
    act_case *a = p;
    return cn_activation_forward(ctx, a->act, &a->x, &a->y);
}

static clunet_status act_backward(clunet_context *ctx, void *p)
{
    act_case *a = p;
    return cn_activation_backward(ctx, a->act, &a->x, &a->y, &a->dy, &a->dx, a->acc);
}

static void ref_act_forward(cn_activation act, const double *x, double *y, size_t n)
{
    if (act == CN_ACT_SWISH) cn_ref_swish_forward(x, y, n);
    else if (act == CN_ACT_SIGMOID) cn_ref_sigmoid_forward(x, y, n);
    else cn_ref_relu_forward(x, y, n);
}

/* dx from x: sigmoid's reference backward takes y, so it is computed first. */
static void ref_act_backward(cn_activation act, const double *x, const double *dy, double *dx, double *tmp,
                             size_t n)
{
    if (act == CN_ACT_SWISH) cn_ref_swish_backward(x, dy, dx, n);
    else if (act == CN_ACT_RELU) cn_ref_relu_backward(x, dy, dx, n);
    else {
        cn_ref_sigmoid_forward(x, tmp, n);
        cn_ref_sigmoid_backward(tmp, dy, dx, n);
    }
}

/* Shared by every grad check of an element-wise map: sum of w * f(x). */
static double act_loss(void *p)
{
    act_case *a = p;
    double total = 0.0;
    for (size_t i = 0; i < a->count; i++) {
        double y;
        ref_act_forward(a->act, &a->xd[i], &y, 1);
        total += a->w[i] * y;
    }
    return total;
}

static void act_cases(to_run *r, cn_activation act)
{
    // Op names must outlive the case (--list keeps the pointers).
    static const char *const names[][2] = {[CN_ACT_SWISH] = {"swish_forward", "swish_backward"},
                                           [CN_ACT_SIGMOID] = {"sigmoid_forward", "sigmoid_backward"},
                                           [CN_ACT_RELU] = {"relu_forward", "relu_backward"}};
    const char *fwd = names[act][0], *bwd = names[act][1];
    char desc[96];
    shape4 s;
    for (int i = 0; next_shape(r, i, &s); i++) {
        size_t n = count4(s);
        describe(desc, sizeof desc, s, "");
        if (to_begin(r, fwd, desc)) {
            float *x = to_random(r, n, -6.0f, 6.0f);
            act_case a = {act, view(to_upload(r, x, n), s.n, s.c, s.h, s.w), view(to_output(r, n), s.n, s.c, s.h, s.w)};
            if (to_exec(r, act_forward, &a, 4.0 * n, 8.0 * n)) {
                double *ref = to_alloc_double(r, n);
                ref_act_forward(act, to_widen(r, x, n), ref, n);
                to_compare(r, "y", (to_buf){a.y, n}, ref, n, 1e-5);
            }
            to_end(r);
        }
        int acc = accumulates(r, i);
        describe(desc, sizeof desc, s, acc ? "acc" : "");
        if (to_begin(r, bwd, desc)) {
            float *x = to_random(r, n, -6.0f, 6.0f), *dy = to_random(r, n, -1.0f, 1.0f);
            double *xd = to_widen(r, x, n), *dyd = to_widen(r, dy, n), *ref = to_alloc_double(r, n);
            double *tmp = to_alloc_double(r, n);
            // Sigmoid's backward reads the forward's output y.
            float *y = to_alloc_float(r, n);
            cn_ref_sigmoid_forward(xd, tmp, n);
            for (size_t k = 0; k < n; k++) y[k] = (float)tmp[k];
            float *dx0 = to_random(r, n, -1.0f, 1.0f);
            act_case a = {act,
                          view(to_upload(r, x, n), s.n, s.c, s.h, s.w),
                          view(to_upload(r, y, n), s.n, s.c, s.h, s.w),
                          view(to_upload(r, dy, n), s.n, s.c, s.h, s.w),
                          view(to_grad_out(r, dx0, n, acc), s.n, s.c, s.h, s.w),
                          acc,
                          xd,
                          dyd,
                          n};
            if (to_exec(r, act_backward, &a, 8.0 * n, (a.acc ? 16.0 : 12.0) * n)) {
                if (act == CN_ACT_SIGMOID) cn_ref_sigmoid_backward(to_widen(r, y, n), dyd, ref, n);
                else ref_act_backward(act, xd, dyd, ref, tmp, n);
                double *want = to_alloc_double(r, n);
                for (size_t k = 0; k < n; k++) want[k] = ref[k] + (a.acc ? dx0[k] : 0.0);
                to_compare(r, "dx", (to_buf){a.dx, n}, want, n, 1e-5);
                if (r->grad) {
                    ref_act_backward(act, xd, dyd, ref, tmp, n);
                    to_grad_check(r, "dx (reference)", xd, n, ref, act_loss, &a);
                }
            }
            to_end(r);
        }
    }
}

/* ==== batch norm ========================================================= */

typedef struct bn_case {
    cn_batchnorm bn;
    cn_tensor x, y, dy, dx;
    cn_tensor z, z2; /* batchnorm_act_forward: the fused pass's activation, and the two kernels' */
    cn_activation act;
    int train, acc;
    shape4 s;
    double *xd, *gamma, *beta, *w; /* grad check: loss = sum w * bn(x), or sum w * swish(bn(x)) with zd */
    double *yd, *zd, *mean, *var;  /* its scratch */
    double eps;
} bn_case;

static clunet_status bn_train(clunet_context *ctx, void *p)
{
    bn_case *b = p;
    return cn_batchnorm_forward(ctx, &b->bn, 1, &b->x, &b->y);
}

static clunet_status bn_eval(clunet_context *ctx, void *p)
{
    bn_case *b = p;
    return cn_batchnorm_forward(ctx, &b->bn, 0, &b->x, &b->y);
}

static clunet_status bn_act(clunet_context *ctx, void *p)
{
    bn_case *b = p;
    return cn_batchnorm_act_forward(ctx, &b->bn, b->train, b->act, &b->x, b->train ? &b->y : NULL, &b->z);
}

/* The same as two kernels, z2 = act(bn(x)) through y. */
static clunet_status bn_act_split(clunet_context *ctx, void *p)
{
    bn_case *b = p;
    CN_TRY(cn_batchnorm_forward(ctx, &b->bn, b->train, &b->x, &b->y));
    return cn_activation_forward(ctx, b->act, &b->y, &b->z2);
}

static clunet_status bn_backward(clunet_context *ctx, void *p)
{
    bn_case *b = p;
    return cn_batchnorm_backward(ctx, &b->bn, &b->x, &b->dy, &b->dx, b->acc);
}

static clunet_status bn_act_backward(clunet_context *ctx, void *p)
{
    bn_case *b = p;
    return cn_batchnorm_act_backward(ctx, &b->bn, b->act, &b->x, &b->dy, b->act == CN_ACT_SWISH ? &b->y : NULL,
                                     &b->dx, b->acc);
}

static double bn_loss(void *p)
{
    bn_case *b = p;
    size_t n = count4(b->s);
    cn_ref_batchnorm_forward_train(b->xd, b->s.n, b->s.c, b->s.h, b->s.w, b->gamma, b->beta, b->eps, b->yd,
                                   b->mean, b->var);
    if (b->zd) cn_ref_swish_forward(b->yd, b->zd, n); /* batchnorm_act_backward's swish cases */
    const double *out = b->zd ? b->zd : b->yd;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) total += b->w[i] * out[i];
    return total;
}

/* Uploads a per-channel vector as a (1,C,1,1) view. */
static cn_tensor vec(to_buf b, int c) { return view(b, 1, c, 1, 1); }

/* A layer with random gamma, beta, running statistics and poisoned saved/work. */
static bn_case bn_setup(to_run *r, shape4 s, float **gamma, float **beta, float **rmean, float **rvar)
{
    bn_case b = {0};
    b.s = s;
    b.eps = 1e-3;
    b.bn.eps = 1e-3f;
    b.bn.momentum = 0.1f;
    *gamma = to_random(r, s.c, 0.5f, 1.5f);
    *beta = to_random(r, s.c, -0.5f, 0.5f);
    *rmean = to_random(r, s.c, -1.0f, 1.0f);
    *rvar = to_random(r, s.c, 0.5f, 2.0f);
    b.bn.gamma = vec(to_upload(r, *gamma, s.c), s.c);
    b.bn.beta = vec(to_upload(r, *beta, s.c), s.c);
    b.bn.running_mean = vec(to_inout(r, *rmean, s.c), s.c);
    b.bn.running_var = vec(to_inout(r, *rvar, s.c), s.c);
    b.bn.saved = vec(to_output(r, 2 * (size_t)s.c), 2 * s.c);
    size_t work = cn_batchnorm_work_floats(s.n, s.c, s.h, s.w);
    b.bn.work = view(to_output(r, work), 1, 1, 1, (int)work);
    b.y = view(to_output(r, count4(s)), s.n, s.c, s.h, s.w);
    return b;
}

/* The random inputs of a backward case: x, dy (dz for the fused pair), and what dx, dgamma, dbeta held. */
typedef struct bn_grads {
    float *x, *dy, *dx0, *dg0, *db0;
} bn_grads;

static bn_grads bn_backward_inputs(to_run *r, bn_case *b, int acc)
{
    shape4 s = b->s;
    size_t n = count4(s), c = (size_t)s.c;
    bn_grads g = {to_random(r, n, -1.0f, 4.0f), to_random(r, n, -1.0f, 1.0f), to_random(r, n, -1.0f, 1.0f),
                  to_random(r, c, -1.0f, 1.0f), to_random(r, c, -1.0f, 1.0f)};
    b->x = view(to_upload(r, g.x, n), s.n, s.c, s.h, s.w);
    b->dy = view(to_upload(r, g.dy, n), s.n, s.c, s.h, s.w);
    b->dx = view(to_grad_out(r, g.dx0, n, acc), s.n, s.c, s.h, s.w);
    b->bn.dgamma = vec(to_inout(r, g.dg0, c), s.c);
    b->bn.dbeta = vec(to_inout(r, g.db0, c), s.c);
    b->acc = acc;
    return g;
}

/*
 * dx, dgamma and dbeta against the reference's plus what they held (dx only with acc); then, without acc,
 * fn run again must give dx bit for bit.
 */
static void bn_backward_compare(to_run *r, bn_case *b, to_fn fn, const bn_grads *g, const double *dx,
                                const double *dg, const double *db)
{
    size_t n = count4(b->s), c = (size_t)b->s.c;
    double *want_dx = to_alloc_double(r, n), *want_dg = to_alloc_double(r, c), *want_db = to_alloc_double(r, c);
    for (size_t k = 0; k < n; k++) want_dx[k] = dx[k] + (b->acc ? g->dx0[k] : 0.0);
    for (size_t k = 0; k < c; k++) want_dg[k] = dg[k] + g->dg0[k], want_db[k] = db[k] + g->db0[k];
    // With perf, the timed runs accumulated further into dgamma/dbeta (and dx when acc).
    if (!r->perf) {
        to_compare(r, "dx", (to_buf){b->dx, n}, want_dx, n, 1e-4);
        to_compare(r, "dgamma", (to_buf){b->bn.dgamma, c}, want_dg, c, 1e-4);
        to_compare(r, "dbeta", (to_buf){b->bn.dbeta, c}, want_db, c, 1e-4);
    }
    if (!b->acc) {
        float *dx1 = snapshot(r, (to_buf){b->dx, n});
        to_poison(r, (to_buf){b->dx, n});
        if (run_again(r, fn, b)) require_same_bits(r, "dx", (to_buf){b->dx, n}, dx1);
    }
}

static void bn_cases(to_run *r)
{
    char desc[96];
    shape4 s;
    for (int i = 0; next_shape(r, i, &s); i++) {
        size_t n = count4(s), c = (size_t)s.c;
        describe(desc, sizeof desc, s, "");
        float *gamma, *beta, *rmean, *rvar;
        if (to_begin(r, "batchnorm_forward_train", desc)) {
            bn_case b = bn_setup(r, s, &gamma, &beta, &rmean, &rvar);
            // An offset mean exercises the shifted one-pass variance.
            float *x = to_random(r, n, -1.0f, 4.0f);
            b.x = view(to_upload(r, x, n), s.n, s.c, s.h, s.w);
            if (to_exec(r, bn_train, &b, 7.0 * n, 12.0 * n)) {
                double *y = to_alloc_double(r, n), *mean = to_alloc_double(r, c), *var = to_alloc_double(r, c);
                double *saved = to_alloc_double(r, 2 * c);
                double *rm = to_widen(r, rmean, c), *rv = to_widen(r, rvar, c);
                cn_ref_batchnorm_forward_train(to_widen(r, x, n), s.n, s.c, s.h, s.w, to_widen(r, gamma, c),
                                               to_widen(r, beta, c), b.eps, y, mean, var);
                cn_ref_batchnorm_running_update(mean, var, s.c, n / c, b.bn.momentum, rm, rv);
                for (size_t k = 0; k < c; k++) {
                    saved[k] = mean[k];
                    saved[c + k] = 1.0 / sqrt(var[k] + b.eps);
                }
                to_compare(r, "y", (to_buf){b.y, n}, y, n, 1e-4);
                to_compare(r, "saved", (to_buf){b.bn.saved, 2 * c}, saved, 2 * c, 1e-4);
                if (!r->perf) {
                    to_compare(r, "running_mean", (to_buf){b.bn.running_mean, c}, rm, c, 1e-5);
                    to_compare(r, "running_var", (to_buf){b.bn.running_var, c}, rv, c, 1e-5);
                }
                float *y1 = snapshot(r, (to_buf){b.y, n}), *saved1 = snapshot(r, (to_buf){b.bn.saved, 2 * c});
                to_poison(r, (to_buf){b.y, n});
                to_poison(r, (to_buf){b.bn.saved, 2 * c});
                if (run_again(r, bn_train, &b)) {
                    require_same_bits(r, "y", (to_buf){b.y, n}, y1);
                    require_same_bits(r, "saved", (to_buf){b.bn.saved, 2 * c}, saved1);
                }
            }
            to_end(r);
        }
        if (to_begin(r, "batchnorm_forward_eval", desc)) {
            bn_case b = bn_setup(r, s, &gamma, &beta, &rmean, &rvar);
            float *x = to_random(r, n, -2.0f, 2.0f);
            b.x = view(to_upload(r, x, n), s.n, s.c, s.h, s.w);
            if (to_exec(r, bn_eval, &b, 3.0 * n, 8.0 * n)) {
                double *y = to_alloc_double(r, n);
                cn_ref_batchnorm_forward_eval(to_widen(r, x, n), s.n, s.c, s.h, s.w, to_widen(r, gamma, c),
                                              to_widen(r, beta, c), to_widen(r, rmean, c), to_widen(r, rvar, c),
                                              b.eps, y);
                to_compare(r, "y", (to_buf){b.y, n}, y, n, 1e-5);
            }
            to_end(r);
        }
        // Batch norm and its activation in one pass: training with swish on even shapes, inference with ReLU
        // on odd ones (the pairs of the network), against the reference, and bit for bit against the two
        // kernels where planes are whole float16 vectors (elsewhere the activation kernel, which runs over
        // the flat tensor, takes some values through its scalar tail and the fused pass through vectors).
        int train = i % 2 == 0;
        describe(desc, sizeof desc, s, train ? "train swish" : "eval relu");
        if (to_begin(r, "batchnorm_act_forward", desc)) {
            bn_case b = bn_setup(r, s, &gamma, &beta, &rmean, &rvar);
            float *x = to_random(r, n, -1.0f, 4.0f);
            b.x = view(to_upload(r, x, n), s.n, s.c, s.h, s.w);
            b.z = view(to_output(r, n), s.n, s.c, s.h, s.w);
            b.z2 = view(to_output(r, n), s.n, s.c, s.h, s.w);
            b.train = train;
            b.act = train ? CN_ACT_SWISH : CN_ACT_RELU;
            if (to_exec(r, bn_act, &b, 7.0 * n, (train ? 12.0 : 8.0) * n)) {
                double *y = to_alloc_double(r, n), *z = to_alloc_double(r, n);
                double *mean = to_alloc_double(r, c), *var = to_alloc_double(r, c);
                double *xd = to_widen(r, x, n), *gd = to_widen(r, gamma, c), *bd = to_widen(r, beta, c);
                if (train) cn_ref_batchnorm_forward_train(xd, s.n, s.c, s.h, s.w, gd, bd, b.eps, y, mean, var);
                else
                    cn_ref_batchnorm_forward_eval(xd, s.n, s.c, s.h, s.w, gd, bd, to_widen(r, rmean, c),
                                                  to_widen(r, rvar, c), b.eps, y);
                if (train) cn_ref_swish_forward(y, z, n);
                else cn_ref_relu_forward(y, z, n);
                if (train) to_compare(r, "y", (to_buf){b.y, n}, y, n, 1e-4);
                to_compare(r, "z", (to_buf){b.z, n}, z, n, 1e-4);
                float *z1 = snapshot(r, (to_buf){b.z, n});
                if (s.h * s.w % 16 == 0 && run_again(r, bn_act_split, &b))
                    require_same_bits(r, "z (two kernels)", (to_buf){b.z2, n}, z1);
            }
            to_end(r);
        }
        int acc = accumulates(r, i);
        describe(desc, sizeof desc, s, acc ? "acc" : "");
        if (to_begin(r, "batchnorm_backward", desc)) {
            bn_case b = bn_setup(r, s, &gamma, &beta, &rmean, &rvar);
            bn_grads in = bn_backward_inputs(r, &b, acc);
            // The backward reads the statistics its training forward saved.
            if (run_again(r, bn_train, &b) && to_exec(r, bn_backward, &b, 12.0 * n, 20.0 * n)) {
                double *dx = to_alloc_double(r, n), *dg = to_alloc_double(r, c), *db = to_alloc_double(r, c);
                b.xd = to_widen(r, in.x, n);
                b.gamma = to_widen(r, gamma, c);
                b.beta = to_widen(r, beta, c);
                b.w = to_widen(r, in.dy, n);
                cn_ref_batchnorm_backward(b.xd, b.w, s.n, s.c, s.h, s.w, b.gamma, b.eps, dx, dg, db);
                bn_backward_compare(r, &b, bn_backward, &in, dx, dg, db);
                if (r->grad && n <= 300000) {
                    b.yd = to_alloc_double(r, n);
                    b.mean = to_alloc_double(r, c);
                    b.var = to_alloc_double(r, c);
                    to_grad_check(r, "dx (reference)", b.xd, n, dx, bn_loss, &b);
                    to_grad_check(r, "dgamma (reference)", b.gamma, c, dg, bn_loss, &b);
                    to_grad_check(r, "dbeta (reference)", b.beta, c, db, bn_loss, &b);
                }
            }
            to_end(r);
        }
        // The backward of batch norm + activation from the activation's gradient, y recomputed from x: swish on
        // even shapes, ReLU on odd ones. ReLU's mask is taken from the device's float y (from the training
        // forward): a y within rounding distance of 0 may fall either side in float, and its gradient jumps.
        describe(desc, sizeof desc, s, train ? (acc ? "swish acc" : "swish") : (acc ? "relu acc" : "relu"));
        if (to_begin(r, "batchnorm_act_backward", desc)) {
            bn_case b = bn_setup(r, s, &gamma, &beta, &rmean, &rvar);
            bn_grads in = bn_backward_inputs(r, &b, acc); /* in.dy: the activation's gradient */
            b.act = train ? CN_ACT_SWISH : CN_ACT_RELU;
            if (run_again(r, bn_train, &b) && to_exec(r, bn_act_backward, &b, 30.0 * n, 20.0 * n)) {
                double *y = to_alloc_double(r, n), *dy = to_alloc_double(r, n), *dx = to_alloc_double(r, n);
                double *dg = to_alloc_double(r, c), *db = to_alloc_double(r, c);
                b.mean = to_alloc_double(r, c);
                b.var = to_alloc_double(r, c);
                b.xd = to_widen(r, in.x, n);
                b.gamma = to_widen(r, gamma, c);
                b.beta = to_widen(r, beta, c);
                b.w = to_widen(r, in.dy, n);
                cn_ref_batchnorm_forward_train(b.xd, s.n, s.c, s.h, s.w, b.gamma, b.beta, b.eps, y, b.mean, b.var);
                if (train) cn_ref_swish_backward(y, b.w, dy, n);
                else cn_ref_relu_backward(to_widen(r, to_download(r, (to_buf){b.y, n}), n), b.w, dy, n);
                cn_ref_batchnorm_backward(b.xd, dy, s.n, s.c, s.h, s.w, b.gamma, b.eps, dx, dg, db);
                bn_backward_compare(r, &b, bn_act_backward, &in, dx, dg, db);
                if (r->grad && train && n <= 300000) {
                    b.yd = to_alloc_double(r, n);
                    b.zd = to_alloc_double(r, n);
                    to_grad_check(r, "dx (reference)", b.xd, n, dx, bn_loss, &b);
                    to_grad_check(r, "dgamma (reference)", b.gamma, c, dg, bn_loss, &b);
                    to_grad_check(r, "dbeta (reference)", b.beta, c, db, bn_loss, &b);
                }
            }
            to_end(r);
        }
    }
}

/* ==== squeeze-excitation pieces =========================================== */

/* SE blocks of EfficientNet-B0 at 64x64 input: (expanded channels, plane). */
static const shape4 se_full[] = {{2, 32, 32, 32}, {2, 96, 16, 16}, {2, 144, 8, 8},
                                 {2, 240, 4, 4},  {2, 672, 2, 2},  {2, 1152, 2, 2}};
static const shape4 se_perf[] = {{1, 32, 256, 256}, {1, 144, 128, 128}};

static int next_se_shape(to_run *r, int i, shape4 *s)
{
    int ns = (int)COUNT(small_shapes), nf = r->small ? 0 : (int)COUNT(se_full);
    int np = r->perf && !r->small ? (int)COUNT(se_perf) : 0;
    if (i < ns) *s = small_shapes[i];
    else if (i < ns + nf) *s = se_full[i - ns];
    else if (i < ns + nf + np) *s = se_perf[i - ns - nf];
    else return 0;
    return 1;
}

typedef struct se_case {
    cn_tensor x, s, y, dy, dx, ds;
    int acc;
    shape4 shape;
    double *xd, *sd, *w, *out; /* grad check: loss = sum w * op(x, s), out is scratch */
} se_case;

static clunet_status avgpool_fwd(clunet_context *ctx, void *p)
{
    se_case *c = p;
    return cn_avgpool_forward(ctx, &c->x, &c->y);
}

static clunet_status avgpool_bwd(clunet_context *ctx, void *p)
{
    se_case *c = p;
    return cn_avgpool_backward(ctx, &c->dy, &c->dx, c->acc);
}

static clunet_status chscale_fwd(clunet_context *ctx, void *p)
{
    se_case *c = p;
    return cn_chscale_forward(ctx, &c->x, &c->s, &c->y);
}

static clunet_status chscale_bwd(clunet_context *ctx, void *p)
{
    se_case *c = p;
    return cn_chscale_backward(ctx, &c->x, &c->s, &c->dy, &c->dx, &c->ds, c->acc);
}

static double weighted(const double *w, const double *y, size_t n)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++) total += w[i] * y[i];
    return total;
}

static double avgpool_loss(void *p)
{
    se_case *c = p;
    shape4 s = c->shape;
    cn_ref_avgpool_forward(c->xd, s.n, s.c, s.h, s.w, c->out);
    return weighted(c->w, c->out, (size_t)s.n * s.c);
}

static double chscale_loss(void *p)
{
    se_case *c = p;
    shape4 s = c->shape;
    cn_ref_chscale_forward(c->xd, c->sd, s.n, s.c, s.h, s.w, c->out);
    return weighted(c->w, c->out, count4(s));
}

/* want = ref + (acc ? before : 0) */
static double *plus_initial(to_run *r, const double *ref, const float *before, size_t n, int acc)
{
    double *want = to_alloc_double(r, n);
    if (want)
        for (size_t k = 0; k < n; k++) want[k] = ref[k] + (acc ? before[k] : 0.0);
    return want;
}

static void se_cases(to_run *r)
{
    char desc[96];
    shape4 s;
    for (int i = 0; next_se_shape(r, i, &s); i++) {
        size_t n = count4(s), planes = (size_t)s.n * s.c;
        int acc = accumulates(r, i);
        describe(desc, sizeof desc, s, "");
        if (to_begin(r, "avgpool_forward", desc)) {
            float *x = to_random(r, n, -2.0f, 2.0f);
            se_case c = {.x = view(to_upload(r, x, n), s.n, s.c, s.h, s.w),
                         .y = view(to_output(r, planes), s.n, s.c, 1, 1)};
            if (to_exec(r, avgpool_fwd, &c, (double)n, 4.0 * (n + planes))) {
                double *y = to_alloc_double(r, planes);
                cn_ref_avgpool_forward(to_widen(r, x, n), s.n, s.c, s.h, s.w, y);
                to_compare(r, "y", (to_buf){c.y, planes}, y, planes, 1e-5);
                float *y1 = snapshot(r, (to_buf){c.y, planes});
                to_poison(r, (to_buf){c.y, planes});
                if (run_again(r, avgpool_fwd, &c)) require_same_bits(r, "y", (to_buf){c.y, planes}, y1);
            }
            to_end(r);
        }
        if (to_begin(r, "chscale_forward", desc)) {
            float *x = to_random(r, n, -2.0f, 2.0f), *sc = to_random(r, planes, 0.0f, 1.0f);
            se_case c = {.x = view(to_upload(r, x, n), s.n, s.c, s.h, s.w),
                         .s = view(to_upload(r, sc, planes), s.n, s.c, 1, 1),
                         .y = view(to_output(r, n), s.n, s.c, s.h, s.w)};
            if (to_exec(r, chscale_fwd, &c, (double)n, 8.0 * n)) {
                double *y = to_alloc_double(r, n);
                cn_ref_chscale_forward(to_widen(r, x, n), to_widen(r, sc, planes), s.n, s.c, s.h, s.w, y);
                to_compare(r, "y", (to_buf){c.y, n}, y, n, 1e-5);
            }
            to_end(r);
        }
        describe(desc, sizeof desc, s, acc ? "acc" : "");
        if (to_begin(r, "avgpool_backward", desc)) {
            float *dy = to_random(r, planes, -1.0f, 1.0f), *dx0 = to_random(r, n, -1.0f, 1.0f);
            se_case c = {.dy = view(to_upload(r, dy, planes), s.n, s.c, 1, 1),
                         .dx = view(to_grad_out(r, dx0, n, acc), s.n, s.c, s.h, s.w), .acc = acc, .shape = s};
            if (to_exec(r, avgpool_bwd, &c, (double)n, 4.0 * (planes + (acc ? 2 : 1) * n))) {
                double *dx = to_alloc_double(r, n);
                c.w = to_widen(r, dy, planes);
                cn_ref_avgpool_backward(c.w, s.n, s.c, s.h, s.w, dx);
                // dx = dy / pixels, far below 1 on large planes: compared relative to its largest value.
                compare_scaled(r, "dx", (to_buf){c.dx, n}, plus_initial(r, dx, dx0, n, acc), n, 1e-5);
                if (r->grad) {
                    float *x = to_random(r, n, -2.0f, 2.0f);
                    c.xd = to_widen(r, x, n);
                    c.out = to_alloc_double(r, planes);
                    to_grad_check(r, "dx (reference)", c.xd, n, dx, avgpool_loss, &c);
                }
            }
            to_end(r);
        }
        if (to_begin(r, "chscale_backward", desc)) {
            float *x = to_random(r, n, -2.0f, 2.0f), *sc = to_random(r, planes, 0.0f, 1.0f);
            float *dy = to_random(r, n, -1.0f, 1.0f), *dx0 = to_random(r, n, -1.0f, 1.0f);
            float *ds0 = to_random(r, planes, -1.0f, 1.0f);
            se_case c = {.x = view(to_upload(r, x, n), s.n, s.c, s.h, s.w),
                         .s = view(to_upload(r, sc, planes), s.n, s.c, 1, 1),
                         .dy = view(to_upload(r, dy, n), s.n, s.c, s.h, s.w),
                         .dx = view(to_grad_out(r, dx0, n, acc), s.n, s.c, s.h, s.w),
                         .ds = view(to_grad_out(r, ds0, planes, acc), s.n, s.c, 1, 1), .acc = acc, .shape = s};
            if (to_exec(r, chscale_bwd, &c, 3.0 * n, 4.0 * ((acc ? 4 : 3) * n + 2 * planes))) {
                double *dx = to_alloc_double(r, n), *ds = to_alloc_double(r, planes);
                c.xd = to_widen(r, x, n);
                c.sd = to_widen(r, sc, planes);
                c.w = to_widen(r, dy, n);
                cn_ref_chscale_backward(c.xd, c.sd, c.w, s.n, s.c, s.h, s.w, dx, ds);
                to_compare(r, "dx", (to_buf){c.dx, n}, plus_initial(r, dx, dx0, n, acc), n, 1e-5);
                // ds sums up to a plane of products in float.
                to_compare(r, "ds", (to_buf){c.ds, planes}, plus_initial(r, ds, ds0, planes, acc), planes, 1e-4);
                if (r->grad && n <= 300000) {
                    c.out = to_alloc_double(r, n);
                    to_grad_check(r, "dx (reference)", c.xd, n, dx, chscale_loss, &c);
                    to_grad_check(r, "ds (reference)", c.sd, planes, ds, chscale_loss, &c);
                }
            }
            to_end(r);
        }
    }
}

/* ==== residual add ======================================================== */

static const shape4 add_full[] = {{2, 24, 16, 16}, {2, 40, 8, 8}, {2, 112, 4, 4}, {2, 320, 2, 2}};
/* Stochastic depth: enough samples that a keep of 0.6 both keeps and drops some (checked per case). */
static const shape4 add_drop[] = {{8, 3, 5, 7}, {16, 40, 8, 8}};

typedef struct add_case {
    cn_tensor a, b, y, dy, da, db;
    int acc;
    const cn_drop *drop;
    shape4 shape;
    double *ad, *bd, *w, *out; /* grad check: loss = sum w * add(a, b) */
} add_case;

static clunet_status add_fwd(clunet_context *ctx, void *p)
{
    add_case *c = p;
    return cn_add_forward(ctx, &c->a, &c->b, &c->y, c->drop);
}

static clunet_status add_bwd(clunet_context *ctx, void *p)
{
    add_case *c = p;
    return cn_add_backward(ctx, &c->dy, &c->da, &c->db, c->drop, c->acc);
}

static double drop_keep(const cn_drop *d) { return d ? d->keep : 1.0; }

static double add_loss(void *p)
{
    add_case *c = p;
    shape4 s = c->shape;
    size_t n = count4(s);
    cn_ref_add_forward(c->ad, c->bd, c->out, s.n, n / s.n, drop_keep(c->drop), c->drop ? c->drop->key : 0);
    return weighted(c->w, c->out, n);
}

static void add_cases(to_run *r)
{
    char desc[96];
    int ns = (int)COUNT(small_shapes), nf = r->small ? 0 : (int)COUNT(add_full), nd = (int)COUNT(add_drop);
    for (int i = 0; i < ns + nf + nd; i++) {
        shape4 s = i < ns ? small_shapes[i] : i < ns + nf ? add_full[i - ns] : add_drop[i - ns - nf];
        size_t n = count4(s), per = n / s.n;
        int acc = accumulates(r, i);
        cn_drop drop = {0.6f, 0x2545F491u * (uint32_t)(i + 1)};
        const cn_drop *d = i >= ns + nf ? &drop : NULL;
        uint32_t key = d ? d->key : 0;
        if (d) {
            int kept = 0;
            for (int k = 0; k < s.n; k++) kept += cn_ref_drop_kept(key, k, d->keep);
            if (kept == 0 || kept == s.n) {
                if (to_begin(r, "add_forward", "drop: the key keeps or drops every sample"))
                    to_failf(r, "choose another key: %d of %d samples kept", kept, s.n);
                to_end(r);
                continue;
            }
        }
        describe(desc, sizeof desc, s, d ? "drop 0.4" : "");
        if (to_begin(r, "add_forward", desc)) {
            float *a = to_random(r, n, -2.0f, 2.0f), *b = to_random(r, n, -2.0f, 2.0f);
            add_case c = {view(to_upload(r, a, n), s.n, s.c, s.h, s.w), view(to_upload(r, b, n), s.n, s.c, s.h, s.w),
                          view(to_output(r, n), s.n, s.c, s.h, s.w)};
            c.drop = d;
            if (to_exec(r, add_fwd, &c, (double)n, 12.0 * n)) {
                double *y = to_alloc_double(r, n);
                cn_ref_add_forward(to_widen(r, a, n), to_widen(r, b, n), y, s.n, per, drop_keep(d), key);
                to_compare(r, "y", (to_buf){c.y, n}, y, n, 1e-6);
            }
            to_end(r);
        }
        describe(desc, sizeof desc, s, d ? (acc ? "drop 0.4 acc" : "drop 0.4") : acc ? "acc" : "");
        if (to_begin(r, "add_backward", desc)) {
            float *dy = to_random(r, n, -1.0f, 1.0f), *da0 = to_random(r, n, -1.0f, 1.0f);
            float *db0 = to_random(r, n, -1.0f, 1.0f);
            add_case c = {.dy = view(to_upload(r, dy, n), s.n, s.c, s.h, s.w),
                          .da = view(to_grad_out(r, da0, n, acc), s.n, s.c, s.h, s.w),
                          .db = view(to_grad_out(r, db0, n, acc), s.n, s.c, s.h, s.w), .acc = acc, .drop = d, .shape = s};
            if (to_exec(r, add_bwd, &c, acc ? 2.0 * n : 0.0, 4.0 * (acc ? 5 : 3) * n)) {
                double *da = to_alloc_double(r, n), *db = to_alloc_double(r, n);
                c.w = to_widen(r, dy, n);
                cn_ref_add_backward(c.w, da, db, s.n, per, drop_keep(d), key);
                to_compare(r, "da", (to_buf){c.da, n}, plus_initial(r, da, da0, n, acc), n, 1e-6);
                to_compare(r, "db", (to_buf){c.db, n}, plus_initial(r, db, db0, n, acc), n, 1e-6);
                if (r->grad && d && n <= 300000) {
                    c.ad = to_widen(r, to_random(r, n, -2.0f, 2.0f), n);
                    c.bd = to_widen(r, to_random(r, n, -2.0f, 2.0f), n);
                    c.out = to_alloc_double(r, n);
                    to_grad_check(r, "da (reference)", c.ad, n, da, add_loss, &c);
                    to_grad_check(r, "db (reference)", c.bd, n, db, add_loss, &c);
                }
            }
            to_end(r);
        }
    }
}

/* ==== upsample-concat ====================================================== */

typedef struct upcat_shape {
    int n, c1, c2, h, w; /* x (N,C1,H,W), skip (N,C2,2H,2W) */
    int skip_constant;   /* the skip needs no gradient (the network input): backward gets no dskip */
} upcat_shape;

/* The last two: rows of whole vectors and a rest (CPUs' row kernels), both directions. */
static const upcat_shape upcat_small[] = {
    {2, 3, 4, 3, 5}, {1, 5, 0, 2, 3}, {2, 3, 1, 1, 1}, {2, 4, 3, 3, 5, 1}, {1, 2, 3, 3, 13}, {1, 2, 3, 3, 13, 1}};
/* The decoder of the EfficientNet-B0 U-Net at 64x64 input, its last block without and with the input skip. */
static const upcat_shape upcat_full[] = {{2, 1280, 672, 2, 2}, {2, 256, 240, 4, 4}, {2, 128, 144, 8, 8},
                                         {2, 64, 96, 16, 16},  {2, 32, 0, 32, 32},  {2, 32, 3, 32, 32, 1}};
static const upcat_shape upcat_perf[] = {{1, 64, 96, 128, 128}, {1, 32, 0, 256, 256}};

typedef struct upcat_case {
    upcat_shape s;
    cn_tensor x, skip, y, dy, dx, dskip;
    int acc;
    double *xd, *skipd, *w, *out; /* grad check: loss = sum w * upcat(x, skip) */
} upcat_case;

static clunet_status upcat_fwd(clunet_context *ctx, void *p)
{
    upcat_case *c = p;
    return cn_upcat_forward(ctx, &c->x, c->s.c2 ? &c->skip : NULL, &c->y);
}

static clunet_status upcat_bwd(clunet_context *ctx, void *p)
{
    upcat_case *c = p;
    return cn_upcat_backward(ctx, &c->dy, &c->dx, c->s.c2 && !c->s.skip_constant ? &c->dskip : NULL, c->acc);
}

static double upcat_loss(void *p)
{
    upcat_case *c = p;
    upcat_shape s = c->s;
    cn_ref_upcat_forward(c->xd, c->skipd, s.n, s.c1, s.c2, s.h, s.w, c->out);
    return weighted(c->w, c->out, (size_t)s.n * (s.c1 + s.c2) * 4 * s.h * s.w);
}

static void upcat_cases(to_run *r)
{
    char desc[96];
    int ns = (int)COUNT(upcat_small), nf = r->small ? 0 : (int)COUNT(upcat_full);
    int np = r->perf && !r->small ? (int)COUNT(upcat_perf) : 0;
    for (int i = 0; i < ns + nf + np; i++) {
        upcat_shape s = i < ns ? upcat_small[i] : i < ns + nf ? upcat_full[i - ns] : upcat_perf[i - ns - nf];
        size_t nx = (size_t)s.n * s.c1 * s.h * s.w, nskip = (size_t)s.n * s.c2 * 4 * s.h * s.w;
        size_t ny = nx * 4 + nskip;
        int acc = accumulates(r, i);
        int has_dskip = s.c2 && !s.skip_constant;
        snprintf(desc, sizeof desc, "x %d,%d,%d,%d + skip %d@%dx%d%s", s.n, s.c1, s.h, s.w, s.c2, 2 * s.h, 2 * s.w,
                 s.skip_constant ? " (constant)" : "");
        if (to_begin(r, "upcat_forward", desc)) {
            float *x = to_random(r, nx, -2.0f, 2.0f), *skip = s.c2 ? to_random(r, nskip, -2.0f, 2.0f) : NULL;
            upcat_case c = {.s = s,
                            .x = view(to_upload(r, x, nx), s.n, s.c1, s.h, s.w),
                            .y = view(to_output(r, ny), s.n, s.c1 + s.c2, 2 * s.h, 2 * s.w)};
            if (s.c2) c.skip = view(to_upload(r, skip, nskip), s.n, s.c2, 2 * s.h, 2 * s.w);
            if (to_exec(r, upcat_fwd, &c, 0.0, 8.0 * ny)) {
                double *y = to_alloc_double(r, ny);
                cn_ref_upcat_forward(to_widen(r, x, nx), s.c2 ? to_widen(r, skip, nskip) : NULL, s.n, s.c1, s.c2,
                                     s.h, s.w, y);
                to_compare(r, "y", (to_buf){c.y, ny}, y, ny, 0.0);
            }
            to_end(r);
        }
        if (to_begin(r, "upcat_backward", acc ? strcat(desc, " acc") : desc)) {
            float *dy = to_random(r, ny, -1.0f, 1.0f), *dx0 = to_random(r, nx, -1.0f, 1.0f);
            float *dskip0 = has_dskip ? to_random(r, nskip, -1.0f, 1.0f) : NULL;
            upcat_case c = {.s = s,
                            .dy = view(to_upload(r, dy, ny), s.n, s.c1 + s.c2, 2 * s.h, 2 * s.w),
                            .dx = view(to_grad_out(r, dx0, nx, acc), s.n, s.c1, s.h, s.w),
                            .acc = acc};
            if (has_dskip) c.dskip = view(to_grad_out(r, dskip0, nskip, acc), s.n, s.c2, 2 * s.h, 2 * s.w);
            if (to_exec(r, upcat_bwd, &c, 3.0 * nx, 4.0 * (ny + (acc ? 2 : 1) * (nx + (has_dskip ? nskip : 0))))) {
                double *dx = to_alloc_double(r, nx), *dskip = to_alloc_double(r, nskip);
                c.w = to_widen(r, dy, ny);
                cn_ref_upcat_backward(c.w, s.n, s.c1, s.c2, s.h, s.w, dx, dskip);
                // Four-term sums in a fixed pairing: within a few float roundings.
                to_compare(r, "dx", (to_buf){c.dx, nx}, plus_initial(r, dx, dx0, nx, acc), nx, 1e-6);
                if (has_dskip)
                    to_compare(r, "dskip", (to_buf){c.dskip, nskip}, plus_initial(r, dskip, dskip0, nskip, acc), nskip,
                               1e-6);
                if (r->grad && ny <= 300000) {
                    c.xd = to_widen(r, to_random(r, nx, -2.0f, 2.0f), nx);
                    c.skipd = s.c2 ? to_widen(r, to_random(r, nskip, -2.0f, 2.0f), nskip) : NULL;
                    c.out = to_alloc_double(r, ny);
                    to_grad_check(r, "dx (reference)", c.xd, nx, dx, upcat_loss, &c);
                    if (has_dskip) to_grad_check(r, "dskip (reference)", c.skipd, nskip, dskip, upcat_loss, &c);
                }
            }
            to_end(r);
        }
    }
}

/* ==== focal Dice loss ======================================================= */

static const shape4 loss_small[] = {{2, 1, 9, 7}, {1, 1, 5, 5}};
static const shape4 loss_full[] = {{2, 1, 64, 64}, {3, 1, 17, 13}, {1, 1, 67, 65}};
static const shape4 loss_perf[] = {{4, 1, 512, 512}};

typedef struct loss_case {
    cn_focal_dice settings;
    cn_tensor z, y, mask, out, work, dz;
    int has_mask;
    double *zd, *yd, *md; /* grad check */
    size_t n;
} loss_case;

static clunet_status loss_run(clunet_context *ctx, void *p)
{
    loss_case *c = p;
    return cn_focal_dice_loss(ctx, &c->settings, &c->z, &c->y, c->has_mask ? &c->mask : NULL, &c->out, &c->work,
                              &c->dz);
}

static double loss_ref(loss_case *c, double parts[2], double *dz)
{
    cn_focal_dice *s = &c->settings;
    return cn_ref_focal_dice(c->zd, c->yd, c->has_mask ? c->md : NULL, c->n, s->alpha, s->gamma, s->eps, s->smooth,
                             s->lambda, parts, dz);
}

static double loss_value(void *p)
{
    double parts[2];
    return loss_ref(p, parts, NULL);
}

static void loss_cases(to_run *r)
{
    char desc[96];
    int ns = (int)COUNT(loss_small), nf = r->small ? 0 : (int)COUNT(loss_full);
    int np = r->perf && !r->small ? (int)COUNT(loss_perf) : 0;
    for (int i = 0; i < ns + nf + np; i++) {
        shape4 s = i < ns ? loss_small[i] : i < ns + nf ? loss_full[i - ns] : loss_perf[i - ns - nf];
        size_t n = count4(s);
        // Bits of the variant: a mask, lambda 0.3, the focal term as half the cross-entropy (alpha 0.5, gamma 0).
        for (int variant = 0; variant < 8; variant++) {
            int has_mask = variant & 1, bce = variant & 4;
            float lambda = variant & 2 ? 0.3f : -1.0f;
            char what[48];
            int len = snprintf(what, sizeof what, "%s%s%s", has_mask ? "mask " : "", lambda < 0 ? "" : "lambda 0.3 ",
                               bce ? "alpha 0.5 gamma 0" : "");
            if (len > 0 && what[len - 1] == ' ') what[len - 1] = '\0';
            describe(desc, sizeof desc, s, what);
            if (!to_begin(r, "focal_dice_loss", desc)) continue;
            loss_case c = {.has_mask = has_mask, .n = n};
            cn_focal_dice_default(&c.settings);
            c.settings.lambda = lambda;
            if (bce) c.settings.alpha = 0.5f, c.settings.gamma = 0.0f;
            float *z = to_random(r, n, -4.0f, 4.0f), *y = to_random_binary(r, n, 0.15);
            float *m = to_random_binary(r, n, 0.8);
            size_t work = cn_focal_dice_work_floats(n);
            c.z = view(to_upload(r, z, n), s.n, 1, s.h, s.w);
            c.y = view(to_upload(r, y, n), s.n, 1, s.h, s.w);
            c.mask = view(to_upload(r, m, n), s.n, 1, s.h, s.w);
            c.out = view(to_output(r, CN_LOSS_FLOATS), 1, 1, 1, CN_LOSS_FLOATS);
            c.work = view(to_output(r, work), 1, 1, 1, (int)work);
            c.dz = view(to_output(r, n), s.n, 1, s.h, s.w);
            if (to_exec(r, loss_run, &c, 60.0 * n, 4.0 * ((has_mask ? 7 : 5) * n))) {
                c.zd = to_widen(r, z, n);
                c.yd = to_widen(r, y, n);
                c.md = to_widen(r, m, n);
                double parts[2], *dz = to_alloc_double(r, n);
                double want[3] = {loss_ref(&c, parts, dz), parts[0], parts[1]};
                to_compare_host(r, "loss (total, focal, dice)", to_download(r, (to_buf){c.out, CN_LOSS_FLOATS}),
                                want, 3, 1e-5);
                // dz is about 1/pixels in size: compared relative to its largest value.
                compare_scaled(r, "dz", (to_buf){c.dz, n}, dz, n, 1e-4);
                float *out1 = snapshot(r, (to_buf){c.out, CN_LOSS_FLOATS}), *dz1 = snapshot(r, (to_buf){c.dz, n});
                to_poison(r, (to_buf){c.out, CN_LOSS_FLOATS});
                to_poison(r, (to_buf){c.dz, n});
                if (run_again(r, loss_run, &c)) {
                    require_same_bits(r, "loss", (to_buf){c.out, CN_LOSS_FLOATS}, out1);
                    require_same_bits(r, "dz", (to_buf){c.dz, n}, dz1);
                }
                if (r->grad && n <= 300000) to_grad_check(r, "dz (reference)", c.zd, n, dz, loss_value, &c);
            }
            to_end(r);
        }
    }
}

/* ==== Adam =================================================================== */

typedef struct adam_case {
    cn_adam settings;
    int t;
    cn_tensor p, g, m, v;
    size_t n;
} adam_case;

static clunet_status adam_run(clunet_context *ctx, void *p)
{
    adam_case *c = p;
    return cn_adam_step(ctx, &c->settings, c->t, &c->p, &c->g, &c->m, &c->v, c->n);
}

static void adam_cases(to_run *r)
{
    static const size_t small_counts[] = {1021}, full_counts[] = {4099, 100003}, perf_counts[] = {6000000};
    char desc[96];
    int ns = 1, nf = r->small ? 0 : 2, np = r->perf && !r->small ? 1 : 0;
    for (int i = 0; i < ns + nf + np; i++) {
        size_t n = i < ns ? small_counts[i] : i < ns + nf ? full_counts[i - ns] : perf_counts[i - ns - nf];
        for (int variant = 0; variant < 2; variant++) {
            // Step 1 from zero moments, and a later step with weight decay from random moments.
            int t = variant ? 7 : 1;
            double wd = variant ? 0.01 : 0.0;
            snprintf(desc, sizeof desc, "%zu params, step %d, wd %g", n, t, wd);
            if (!to_begin(r, "adam", desc)) continue;
            adam_case c = {.t = t, .n = n};
            cn_adam_default(&c.settings);
            c.settings.lr = 1e-2f;
            c.settings.weight_decay = (float)wd;
            float *p = to_random(r, n, -1.0f, 1.0f), *g = to_random(r, n, -1.0f, 1.0f);
            float *m = variant ? to_random(r, n, -0.1f, 0.1f) : to_alloc_float(r, n);
            float *v = variant ? to_random(r, n, 1e-3f, 1e-2f) : to_alloc_float(r, n);
            to_buf pb = to_inout(r, p, n), mb = to_inout(r, m, n), vb = to_inout(r, v, n);
            c.p = pb.t, c.g = to_upload(r, g, n).t, c.m = mb.t, c.v = vb.t;
            if (to_exec(r, adam_run, &c, 12.0 * n, 28.0 * n) && !r->perf) {
                double *pd = to_widen(r, p, n), *md = to_widen(r, m, n), *vd = to_widen(r, v, n);
                cn_ref_adam(pd, to_widen(r, g, n), md, vd, n, c.settings.lr, c.settings.beta1, c.settings.beta2,
                            c.settings.eps, wd, t);
                // The update is small against p: compare it, p_new - p_old, relative to its own size.
                float *got = to_download(r, pb);
                double *step = to_alloc_double(r, n);
                float *got_step = to_alloc_float(r, n);
                if (got && step && got_step) {
                    for (size_t k = 0; k < n; k++) {
                        step[k] = (pd[k] - p[k]) / c.settings.lr;
                        got_step[k] = (float)(((double)got[k] - p[k]) / c.settings.lr);
                    }
                    to_compare_host(r, "p - p_old (in units of lr)", got_step, step, n, 1e-4);
                }
                compare_scaled(r, "m", mb, md, n, 1e-5);
                compare_scaled(r, "v", vb, vd, n, 1e-5);
            }
            to_end(r);
        }
    }
}

/* ==== running average of the weights ========================================= */

typedef struct ema_case {
    float decay;
    cn_tensor avg, x;
    size_t n;
} ema_case;

static clunet_status ema_run(clunet_context *ctx, void *p)
{
    ema_case *c = p;
    return cn_ema_update(ctx, c->decay, &c->avg, &c->x, c->n);
}

static void ema_cases(to_run *r)
{
    static const size_t small_counts[] = {1021}, full_counts[] = {4099, 100003}, perf_counts[] = {6000000};
    static const float decays[] = {0.5f, 0.999f};
    char desc[96];
    int ns = 1, nf = r->small ? 0 : 2, np = r->perf && !r->small ? 1 : 0;
    for (int i = 0; i < ns + nf + np; i++) {
        size_t n = i < ns ? small_counts[i] : i < ns + nf ? full_counts[i - ns] : perf_counts[i - ns - nf];
        for (int d = 0; d < 2; d++) {
            snprintf(desc, sizeof desc, "%zu floats, decay %g", n, decays[d]);
            if (!to_begin(r, "ema", desc)) continue;
            ema_case c = {.decay = decays[d], .n = n};
            float *avg = to_random(r, n, -1.0f, 1.0f), *x = to_random(r, n, -2.0f, 2.0f);
            to_buf ab = to_inout(r, avg, n);
            c.avg = ab.t, c.x = to_upload(r, x, n).t;
            if (to_exec(r, ema_run, &c, 3.0 * n, 12.0 * n) && !r->perf) {
                double *ref = to_widen(r, avg, n);
                cn_ref_ema(ref, to_widen(r, x, n), n, c.decay);
                compare_scaled(r, "avg", ab, ref, n, 1e-6);
            }
            to_end(r);
        }
    }
}

/* ==== metrics ================================================================ */

#define BINS 1000

typedef struct metrics_case {
    cn_tensor z, y, mask, out;
    int logits, has_mask;
} metrics_case;

static clunet_status counts_run(clunet_context *ctx, void *p)
{
    metrics_case *c = p;
    return cn_metrics_counts(ctx, &c->z, c->logits, &c->y, c->has_mask ? &c->mask : NULL, 0.5f, &c->out);
}

static clunet_status hist_run(clunet_context *ctx, void *p)
{
    metrics_case *c = p;
    return cn_metrics_histogram(ctx, &c->z, c->logits, &c->y, c->has_mask ? &c->mask : NULL, BINS, &c->out);
}

/*
 * Scores (logits, or probabilities) whose probability sits at least 1% of a bin
 * from every bin edge (0.5 is one), so float on the device and double in the
 * reference put every pixel in the same bin. Vessel pixels score higher.
 */
static float *separable_scores(to_run *r, const float *y, size_t n, int logits)
{
    float *z = to_random(r, n, -4.0f, 4.0f);
    if (!z) return NULL;
    for (size_t i = 0; i < n; i++) {
        double v = z[i] + 1.5 * y[i], p = 1.0 / (1.0 + exp(-v));
        double pos = p * BINS, frac = pos - floor(pos);
        if (frac < 0.01 || frac > 0.99) p = (floor(pos + 0.5) + 0.5) / BINS;
        if (p >= 1.0) p = (BINS - 0.5) / BINS;
        z[i] = logits ? (float)log(p / (1.0 - p)) : (float)p;
    }
    return z;
}

/* uint32 counters read back from a buffer, as floats (exact below 2^24) for to_compare_host. */
static float *counters_as_floats(to_run *r, to_buf b)
{
    float *raw = to_download(r, b), *out = to_alloc_float(r, b.n);
    if (!raw || !out) return NULL;
    for (size_t i = 0; i < b.n; i++) {
        uint32_t u;
        memcpy(&u, &raw[i], sizeof u);
        out[i] = (float)u;
    }
    return out;
}

/* A counter buffer starting at `initial` (random small counts when accumulating, else zero). */
static to_buf counters(to_run *r, size_t n, int acc, double *initial)
{
    float *img = to_alloc_float(r, n);
    for (size_t i = 0; i < n && img; i++) {
        uint32_t u = acc ? (uint32_t)(i * 7919 % 1000) : 0;
        initial[i] = u;
        memcpy(&img[i], &u, sizeof u);
    }
    return to_inout(r, img, n);
}

static void metrics_cases(to_run *r)
{
    static const shape4 small[] = {{2, 1, 9, 7}}, full[] = {{2, 1, 64, 64}, {3, 1, 67, 65}};
    static const shape4 perf[] = {{4, 1, 512, 512}};
    char desc[96];
    int ns = 1, nf = r->small ? 0 : 2, np = r->perf && !r->small ? 1 : 0;
    for (int i = 0; i < ns + nf + np; i++) {
        shape4 s = i < ns ? small[i] : i < ns + nf ? full[i - ns] : perf[i - ns - nf];
        size_t n = count4(s);
        for (int variant = 0; variant < 2; variant++) {
            // Logits inside a mask, accumulating; probabilities without a mask, from zero.
            int logits = variant == 0, acc = variant == 0 && !r->perf;
            describe(desc, sizeof desc, s, logits ? "logits mask acc" : "probabilities");
            for (int hist = 0; hist < 2; hist++) {
                if (!to_begin(r, hist ? "metrics_histogram" : "metrics_counts", desc)) continue;
                float *y = to_random_binary(r, n, 0.15), *m = to_random_binary(r, n, 0.8);
                float *z = separable_scores(r, y, n, logits);
                size_t slots = hist ? 2 * BINS : 4;
                double *want = to_alloc_double(r, slots);
                metrics_case c = {.z = view(to_upload(r, z, n), s.n, 1, s.h, s.w),
                                  .y = view(to_upload(r, y, n), s.n, 1, s.h, s.w),
                                  .mask = view(to_upload(r, m, n), s.n, 1, s.h, s.w),
                                  .logits = logits,
                                  .has_mask = logits};
                to_buf out = counters(r, slots, acc, want);
                c.out = out.t;
                if (to_exec(r, hist ? hist_run : counts_run, &c, 0.0, 4.0 * (logits ? 3 : 2) * n) && !r->perf) {
                    uint64_t *ref = (uint64_t *)to_alloc_double(r, slots);
                    double *zd = to_widen(r, z, n), *yd = to_widen(r, y, n), *md = logits ? to_widen(r, m, n) : NULL;
                    if (hist) cn_ref_metrics_histogram(zd, logits, yd, md, n, BINS, ref);
                    else cn_ref_metrics_counts(zd, logits, yd, md, n, 0.5, ref);
                    for (size_t k = 0; k < slots; k++) want[k] += (double)ref[k];
                    to_compare_host(r, hist ? "histogram" : "TP, FP, TN, FN", counters_as_floats(r, out), want, slots,
                                    0.0);
                }
                to_end(r);
            }
        }
    }
}

/* The histogram AUC against the exact rank-based AUC: equal up to the pairs tied within a bin. */
static void auc_cases(to_run *r)
{
    static const shape4 shapes[] = {{2, 1, 9, 7}, {2, 1, 64, 64}, {3, 1, 67, 65}};
    char desc[96];
    for (int i = 0; i < (r->small ? 1 : 3); i++) {
        shape4 s = shapes[i];
        size_t n = count4(s);
        describe(desc, sizeof desc, s, "mask");
        if (!to_begin(r, "auc", desc)) continue;
        float *y = to_random_binary(r, n, 0.15), *m = to_random_binary(r, n, 0.8);
        float *z = separable_scores(r, y, n, 1);
        double zero[2 * BINS];
        metrics_case c = {.z = view(to_upload(r, z, n), s.n, 1, s.h, s.w),
                          .y = view(to_upload(r, y, n), s.n, 1, s.h, s.w),
                          .mask = view(to_upload(r, m, n), s.n, 1, s.h, s.w),
                          .logits = 1,
                          .has_mask = 1};
        to_buf out = counters(r, 2 * BINS, 0, zero);
        c.out = out.t;
        if (to_exec(r, hist_run, &c, 0.0, 12.0 * n)) {
            float *raw = to_download(r, out);
            double *p = to_alloc_double(r, n);
            uint32_t hist[2 * BINS];
            if (raw && p) {
                memcpy(hist, raw, sizeof hist);
                for (size_t k = 0; k < n; k++) p[k] = 1.0 / (1.0 + exp(-(double)z[k]));
                double exact = cn_ref_auc(p, to_widen(r, y, n), to_widen(r, m, n), n);
                double npos = 0.0, nneg = 0.0, ties = 0.0;
                for (int b = 0; b < BINS; b++) {
                    npos += hist[BINS + b];
                    nneg += hist[b];
                    ties += (double)hist[BINS + b] * hist[b];
                }
                float got = (float)cn_auc_from_histogram(hist, BINS);
                // At most half of each tied pair is misattributed; float holds the AUC to 6e-8.
                to_compare_host(r, "auc", &got, &exact, 1, 0.5 * ties / (npos * nneg) + 1e-7);
            } else {
                to_failf(r, "auc: no host memory");
            }
        }
        to_end(r);
    }
}

void cases_pointwise(to_run *r)
{
    act_cases(r, CN_ACT_SWISH);
    act_cases(r, CN_ACT_SIGMOID);
    act_cases(r, CN_ACT_RELU);
    bn_cases(r);
    se_cases(r);
    add_cases(r);
    upcat_cases(r);
    loss_cases(r);
    adam_cases(r);
    ema_cases(r);
    metrics_cases(r);
    auc_cases(r);
}
