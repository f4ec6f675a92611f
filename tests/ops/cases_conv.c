/*
 * cases_conv.c - test-ops cases for the convolution family: gemm, dense conv2d
 * (forward, backward data/weight/bias) and depthwise conv, each against
 * src/ref in double.
 *
 * GEMM-backed cases run once per GEMM implementation (CLBlast, the register-
 * tiled and the local-memory kernels), or only under $CLUNET_GEMM when set.
 * Backward ops accumulate, so their outputs start random and the reference
 * adds onto the same start; the data gradient also runs written (dx poisoned
 * with NaN, as the graph's first gradient of a value). Each backward runs
 * twice to check the bits do not change from run to run.
 *
 * Error bound: a float sum of K products of values in [-1, 1] carries rounding
 * errors that grow like sqrt(K) * 6e-8 relative to the terms, while the sum
 * itself grows like sqrt(K) * 0.3. to_compare scales the bound by max|ref|, so
 * TOL(K) = 4e-6 * sqrt(K) leaves a margin of ~20x for blocked summation orders
 * (and 1e-5 at least), yet one wrong or missing tap (an error ~0.3, i.e. ~1/sqrt(K)
 * relative to max|ref|) still fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv.h"
#include "ops/harness.h"
#include "ops/pointwise.h"
#include "ref/conv.h"
#include "ref/pointwise.h"

static double tol_for(double k) { return fmax(1e-5, 4e-6 * sqrt(k)); }

/* ---- which GEMM implementations to run under -------------------------------- */

static int gemm_impls(to_run *r, int *impls)
{
    if (r->list) {
        impls[0] = CN_GEMM_REGISTER; /* --list only collects names: one pass suffices */
        return 1;
    }
    const char *env = getenv("CLUNET_GEMM");
    if (env && *env) {
        r->ctx->gemm_impl = -1;
        if (cn_gemm_choose(r->ctx) != CLUNET_OK) {
            if (to_begin(r, "gemm", "CLUNET_GEMM")) {
                to_failf(r, "%s", clunet_last_error());
                to_end(r);
            }
            return 0;
        }
        impls[0] = r->ctx->gemm_impl;
        return 1;
    }
    int own = cn_cpu_paths(r->ctx) ? CN_GEMM_REGISTER : CN_GEMM_LOCAL;
    if (r->perf) { /* timings: CLBlast against the kernel this device would use */
        impls[0] = CN_GEMM_CLBLAST, impls[1] = own;
        return 2;
    }
    impls[0] = CN_GEMM_CLBLAST, impls[1] = CN_GEMM_REGISTER, impls[2] = CN_GEMM_LOCAL;
    return 3;
}

static void use_impl(to_run *r, int impl)
{
    if (r->ctx) r->ctx->gemm_impl = impl;
}

/* ---- gemm --------------------------------------------------------------------- */

typedef struct gemm_shape {
    int m, n, k, ta, tb;
    float alpha, beta;
    int batch, share_a; /* share_a: every product of the batch uses the same A (a_stride 0) */
    int pad;            /* extra floats at the end of each row of A, B and C (leading dims > cols) */
    int small;
    int sum_batch; /* one C takes the sum of the batch's products */
} gemm_shape;

static clunet_status run_gemm(clunet_context *ctx, void *state) { return cn_gemm(ctx, state); }

static void gemm_case(to_run *r, const gemm_shape *s, int impl)
{
    char shape[128];
    snprintf(shape, sizeof shape, "m=%d n=%d k=%d %c%c alpha=%g beta=%g batch=%d%s%s%s [%s]", s->m, s->n, s->k,
             s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->alpha, s->beta, s->batch, s->share_a ? " shared A" : "",
             s->pad ? " padded" : "", s->sum_batch ? " summed" : "", cn_gemm_impl_name(impl));
    if (!to_begin(r, "gemm", shape)) return;
    use_impl(r, impl);
    int ra = s->ta ? s->k : s->m, ca = s->ta ? s->m : s->k;
    int rb = s->tb ? s->n : s->k, cb = s->tb ? s->k : s->n;
    cn_gemm_args g = {.ta = s->ta, .tb = s->tb, .m = s->m, .n = s->n, .k = s->k, .alpha = s->alpha,
                      .beta = s->beta, .batch = s->batch, .sum_batch = s->sum_batch};
    g.lda = ca + s->pad, g.ldb = cb + s->pad, g.ldc = s->n + s->pad;
    g.a_stride = s->share_a ? 0 : (size_t)ra * g.lda;
    g.b_stride = (size_t)rb * g.ldb, g.c_stride = s->sum_batch ? 0 : (size_t)s->m * g.ldc;
    size_t na = s->share_a ? g.a_stride + (size_t)ra * g.lda : g.a_stride * s->batch;
    size_t nb = g.b_stride * s->batch, nc = s->sum_batch ? (size_t)s->m * g.ldc : g.c_stride * s->batch;
    float *a = to_random(r, na, -1, 1), *b = to_random(r, nb, -1, 1), *c0 = to_random(r, nc, -1, 1);
    to_buf da = to_upload(r, a, na), db = to_upload(r, b, nb);
    /* beta == 0 must not read C: poison it with NaN then (but the row padding must survive) */
    if (s->beta == 0.0f)
        for (size_t i = 0; i < nc; i++)
            if ((int)(i % g.ldc) < s->n) c0[i] = NAN;
    to_buf dc = to_inout(r, c0, nc);
    g.a = da.t.buf, g.a_off = da.t.offset;
    g.b = db.t.buf, g.b_off = db.t.offset;
    g.c = dc.t.buf, g.c_off = dc.t.offset;
    double flops = 2.0 * s->m * s->n * s->k * s->batch;
    if (to_exec(r, run_gemm, &g, flops, 4.0 * (na + nb + 2 * nc)) && !r->perf) {
        double *ref = to_widen(r, c0, nc), *ad = to_widen(r, a, na), *bd = to_widen(r, b, nb);
        for (int i = 0; i < s->batch; i++) /* summed: each product adds to the one C after the first */
            cn_ref_gemm(s->ta, s->tb, s->m, s->n, s->k, s->alpha, ad + i * g.a_stride, g.lda, bd + i * g.b_stride,
                        g.ldb, s->sum_batch && i ? 1.0 : s->beta, ref + i * g.c_stride, g.ldc);
        to_compare(r, "c", dc, ref, nc, tol_for(s->sum_batch ? s->k * s->batch : s->k));
    }
    to_end(r);
}

static void gemm_cases(to_run *r, const int *impls, int count)
{
    static const gemm_shape shapes[] = {
        {1, 1, 1, 0, 0, 1.0f, 0.0f, 1, 0, 0, 1},
        {7, 5, 3, 0, 0, 1.0f, 0.0f, 1, 0, 0, 1},
        {7, 5, 3, 1, 0, 1.0f, 0.0f, 1, 0, 0, 1},
        {7, 5, 3, 0, 1, 1.0f, 0.0f, 1, 0, 0, 1},
        {7, 5, 3, 1, 1, 1.0f, 0.0f, 1, 0, 0, 1},
        {9, 35, 21, 0, 0, 0.5f, 0.75f, 1, 0, 1, 1},
        {9, 35, 21, 1, 0, -1.5f, 1.0f, 1, 0, 1, 1},
        {10, 11, 40, 0, 1, 1.0f, 1.0f, 1, 0, 1, 1},
        {6, 17, 9, 0, 0, 1.0f, 0.0f, 3, 1, 0, 1},
        {6, 17, 9, 0, 1, 1.0f, 1.0f, 2, 0, 0, 1},
        {64, 64, 64, 0, 0, 1.0f, 0.0f, 1, 0, 0, 0},
        {129, 257, 300, 0, 0, 1.0f, 0.0f, 1, 0, 0, 0},
        {129, 257, 300, 1, 0, 1.0f, 0.5f, 1, 0, 0, 0},
        {67, 45, 1200, 0, 1, 2.0f, 1.0f, 1, 0, 3, 0},
        {33, 70, 50, 1, 1, 1.0f, 0.0f, 1, 0, 0, 0},
        {40, 300, 77, 0, 0, 1.0f, 0.0f, 4, 1, 0, 0},
        {256, 16, 17568, 0, 0, 1.0f, 0.0f, 1, 0, 0, 0}, /* the first decoder conv at 64x64 */
        {96, 130, 64, 0, 1, 1.0f, 0.5f, 3, 0, 1, 0},    /* A * B^T, short K over many rows (CPUs: packed) */
        /* K of a 1x1 conv with few inputs, over enough columns that a work-item takes several panels, and a
         * partial last one */
        {24, 4500, 16, 0, 0, 1.0f, 0.5f, 2, 0, 1, 0},
        {24, 4240, 16, 0, 0, 1.0f, 0.0f, 2, 0, 0, 0}, /* CPUs: groups of 4 panels then one of 3, the last partial */
        {40, 4240, 24, 0, 1, 1.0f, 0.0f, 1, 0, 0, 0}, /* the same, B transposed while packed */
        {19, 4100, 24, 1, 0, 1.0f, 0.0f, 1, 0, 0, 0},
        {19, 4100, 24, 0, 1, -1.0f, 1.0f, 1, 0, 2, 0},
        /* one column (CPUs: gemv), all transposes, rows past a multiple of 16, K with a rest */
        {5, 1, 3, 0, 0, 1.0f, 0.0f, 1, 0, 0, 1},
        {37, 1, 41, 1, 0, 1.0f, 0.0f, 2, 0, 1, 1},
        {37, 1, 41, 0, 1, 0.5f, 0.75f, 1, 0, 2, 1},
        {21, 1, 19, 1, 1, 1.0f, 0.0f, 1, 0, 0, 1},
        {29, 1, 40, 0, 0, 1.0f, 0.0f, 1, 0, 3, 1}, /* b's elements 4 apart */
        {48, 1, 1152, 0, 0, 1.0f, 0.0f, 3, 1, 0, 0}, /* squeeze-excite 1152 -> 48 */
        {48, 1, 1152, 1, 0, 1.0f, 1.0f, 2, 0, 0, 0}, /* its data gradient */
        /* K == 1 (CPUs: gemm_k1), all transposes, columns past a multiple of 16 */
        {7, 37, 1, 0, 0, 1.0f, 0.0f, 1, 0, 0, 1},
        {7, 37, 1, 1, 0, 0.5f, 0.75f, 2, 0, 2, 1},
        {9, 21, 1, 0, 1, 1.0f, 1.0f, 1, 0, 3, 1},
        {9, 21, 1, 1, 1, -1.0f, 0.0f, 2, 1, 1, 1},
        {48, 1152, 1, 0, 1, 1.0f, 1.0f, 1, 0, 0, 0}, /* squeeze-excite 1152 -> 48: its weight gradient */
        /* one C summing the batch (1x1 weight gradients over a batch): A * B^T (CPUs: gemm_nt itself) with K
         * past a multiple of 16, and the other transposes (products one after another) */
        {40, 72, 64, 0, 1, 1.0f, 1.0f, 4, 0, 0, 0, 1},
        {13, 21, 37, 0, 1, 0.5f, 0.0f, 3, 0, 2, 1, 1},
        {13, 21, 37, 0, 0, 1.0f, 0.75f, 2, 0, 1, 1, 1},
        {13, 21, 37, 1, 1, -1.0f, 0.0f, 2, 1, 0, 1, 1},
        {9, 1, 20, 0, 1, 1.0f, 1.0f, 3, 0, 0, 1, 1},
    };
    if (r->perf) return; /* the conv cases time the shapes that matter */
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (shapes[i].small || !r->small)
            for (int j = 0; j < count; j++) gemm_case(r, &shapes[i], impls[j]);
}

/* ---- conv2d ------------------------------------------------------------------ */

typedef struct conv_shape {
    const char *what; /* where the shape comes from */
    int n, c, h, w, cout, k, stride, pad_t, pad_l, pad_b, pad_r, depthwise, bias;
} conv_shape;

enum { FORWARD, BACKWARD_DATA, BACKWARD_DATA_SET, BACKWARD_WEIGHT, BACKWARD_BIAS }; /* _SET: dx written, not added to */

typedef struct conv_state {
    cn_conv2d_params p;
    cn_tensor x, w, b, y, work; /* y is dy for the backward ops */
    int has_work;
    int which;
    cn_epilogue_act act; /* forward: the batch norm (and activation) folded into the stores, or CN_EPI_NONE */
    cn_batchnorm bn;
    cn_tensor out; /* the gradient a backward case computes */
    /* the reference side, for finite differences: loss = sum(conv(x, w, b) * dy) */
    cn_ref_conv2d s;
    double *xd, *wd, *bd, *dyd, *yd;
} conv_state;

static clunet_status run_conv(clunet_context *ctx, void *state)
{
    conv_state *st = state;
    const cn_tensor *work = st->has_work ? &st->work : NULL;
    if (st->which == FORWARD) {
        cn_epilogue ep;
        if (st->act != CN_EPI_NONE) CN_TRY(cn_batchnorm_fold(ctx, &st->bn, st->act, &ep));
        return cn_conv2d_forward(ctx, &st->p, &st->x, &st->w, st->p.has_bias ? &st->b : NULL, &st->y, work,
                                 st->act != CN_EPI_NONE ? &ep : NULL);
    }
    int data = st->which == BACKWARD_DATA || st->which == BACKWARD_DATA_SET;
    return cn_conv2d_backward(ctx, &st->p, &st->x, &st->w, &st->y, data ? &st->out : NULL,
                              st->which == BACKWARD_DATA, st->which == BACKWARD_WEIGHT ? &st->out : NULL,
                              st->which == BACKWARD_BIAS ? &st->out : NULL, work);
}

static double conv_loss(void *state)
{
    conv_state *st = state;
    cn_ref_conv2d_forward(&st->s, st->xd, st->wd, st->bd, st->yd);
    size_t n = (size_t)st->s.n * st->s.cout * cn_ref_conv2d_out_h(&st->s) * cn_ref_conv2d_out_w(&st->s);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += st->yd[i] * st->dyd[i];
    return sum;
}

static cn_tensor shaped(to_buf b, int n, int c, int h, int w)
{
    cn_tensor t = b.t;
    t.n = n, t.c = c, t.h = h, t.w = w;
    return t;
}

/*
 * The forward's epilogue on the reference side: y (N,Co,Ho,Wo) through batch
 * norm with running statistics, then act. The statistics are random, away
 * from 0 and 1, so that every channel has its own scale and shift.
 */
typedef struct bn_host {
    float *gamma, *beta, *mean, *var;
} bn_host;

static void epilogue_setup(to_run *r, conv_state *st, int c, bn_host *h)
{
    h->gamma = to_random(r, c, 0.5f, 1.5f), h->beta = to_random(r, c, -1, 1);
    h->mean = to_random(r, c, -0.5f, 0.5f), h->var = to_random(r, c, 0.5f, 2.0f);
    st->bn = (cn_batchnorm){.eps = 1e-3f};
    st->bn.gamma = to_upload(r, h->gamma, c).t, st->bn.beta = to_upload(r, h->beta, c).t;
    st->bn.running_mean = to_upload(r, h->mean, c).t, st->bn.running_var = to_upload(r, h->var, c).t;
    st->bn.saved = to_output(r, 2 * (size_t)c).t;
}

static void epilogue_reference(to_run *r, const conv_state *st, const bn_host *h, int n, int c, int hw, double *y)
{
    size_t count = (size_t)n * c * hw;
    double *t = to_alloc_double(r, count);
    cn_ref_batchnorm_forward_eval(y, n, c, 1, hw, to_widen(r, h->gamma, c), to_widen(r, h->beta, c),
                                  to_widen(r, h->mean, c), to_widen(r, h->var, c), st->bn.eps, t);
    if (st->act == CN_EPI_SWISH) cn_ref_swish_forward(t, y, count);
    else if (st->act == CN_EPI_RELU) cn_ref_relu_forward(t, y, count);
    else memcpy(y, t, count * sizeof *y);
}

static void conv_case(to_run *r, const conv_shape *cs, int which, int impl, cn_epilogue_act act)
{
    static const char *const acts[] = {"", " +bn", " +bn+swish", " +bn+relu"};
    static const char *const ops[2][5] = {
        {"conv2d_forward", "conv2d_backward_data", "conv2d_backward_data", "conv2d_backward_weight",
         "conv2d_backward_bias"},
        {"depthwise_forward", "depthwise_backward_data", "depthwise_backward_data", "depthwise_backward_weight",
         "depthwise_backward_bias"},
    };
    int data = which == BACKWARD_DATA || which == BACKWARD_DATA_SET, set = which == BACKWARD_DATA_SET;
    char shape[192];
    int len = snprintf(shape, sizeof shape, "%s N%d %d->%d %dx%d k%d s%d pad %d,%d,%d,%d%s%s%s", cs->what, cs->n,
                       cs->c, cs->cout, cs->h, cs->w, cs->k, cs->stride, cs->pad_t, cs->pad_l, cs->pad_b, cs->pad_r,
                       cs->bias ? " bias" : "", set ? " dx written" : "", acts[act]);
    if (impl >= 0) snprintf(shape + len, sizeof shape - len, " [%s]", cn_gemm_impl_name(impl));
    if (!to_begin(r, ops[cs->depthwise][which], shape)) return;
    if (impl >= 0) use_impl(r, impl);

    conv_state st = {{cs->cout, cs->k, cs->stride, cs->pad_t, cs->pad_l, cs->pad_b, cs->pad_r,
                      cs->depthwise ? cs->c : 1, cs->bias || which == BACKWARD_BIAS}};
    st.which = which;
    st.act = act;
    st.s = (cn_ref_conv2d){cs->n, cs->c, cs->h, cs->w, cs->cout, cs->k, cs->stride,
                           cs->pad_t, cs->pad_l, cs->pad_b, cs->pad_r, st.p.groups};
    int ho = cn_conv2d_out_h(&st.p, cs->h), wo = cn_conv2d_out_w(&st.p, cs->w), cin_g = cs->c / st.p.groups;
    size_t nx = (size_t)cs->n * cs->c * cs->h * cs->w, nw = (size_t)cs->cout * cin_g * cs->k * cs->k;
    size_t ny = (size_t)cs->n * cs->cout * ho * wo, nb = st.p.has_bias ? (size_t)cs->cout : 0;
    size_t nwork = cn_conv2d_workspace_floats(&st.p, cs->n, cs->c, cs->h, cs->w);

    float *x = to_random(r, nx, -1, 1), *w = to_random(r, nw, -1, 1), *dy = to_random(r, ny, -1, 1);
    float *b = nb ? to_random(r, nb, -1, 1) : NULL;
    bn_host bh;
    if (act != CN_EPI_NONE) epilogue_setup(r, &st, cs->cout, &bh);
    st.x = shaped(to_upload(r, x, nx), cs->n, cs->c, cs->h, cs->w);
    st.w = shaped(to_upload(r, w, nw), cs->cout, cin_g, cs->k, cs->k);
    if (nb) st.b = shaped(to_upload(r, b, nb), 1, cs->cout, 1, 1);
    if (nwork) st.work = to_output(r, nwork).t, st.has_work = 1; /* NaN: the op must write before it reads */
    size_t n_out = which == FORWARD ? ny : data ? nx : which == BACKWARD_WEIGHT ? nw : nb;
    float *start = which == FORWARD || set ? NULL : to_random(r, n_out, -1, 1);
    to_buf out = start ? to_inout(r, start, n_out) : to_output(r, n_out);
    st.y = which == FORWARD ? shaped(out, cs->n, cs->cout, ho, wo) : shaped(to_upload(r, dy, ny), cs->n, cs->cout, ho, wo);
    st.out = data ? shaped(out, cs->n, cs->c, cs->h, cs->w)
             : which == BACKWARD_WEIGHT ? shaped(out, cs->cout, cin_g, cs->k, cs->k)
                                        : shaped(out, 1, cs->cout, 1, 1);

    double macs = (double)ny * cin_g * cs->k * cs->k;
    double flops = which == BACKWARD_BIAS ? (double)ny : 2 * macs;
    double bytes = 4.0 * (which == BACKWARD_BIAS ? ny + nb : nx + nw + ny);
    if (!to_exec(r, run_conv, &st, flops, bytes) || r->perf) {
        to_end(r);
        return;
    }

    /* the reference adds onto the same start as the device (zeros for a written dx) */
    st.xd = to_widen(r, x, nx), st.wd = to_widen(r, w, nw), st.dyd = to_widen(r, dy, ny);
    st.bd = nb ? to_widen(r, b, nb) : NULL;
    double *ref = start ? to_widen(r, start, n_out) : to_alloc_double(r, n_out);
    double sum_len; /* terms in each output's sum, for the error bound */
    if (which == FORWARD) {
        cn_ref_conv2d_forward(&st.s, st.xd, st.wd, st.bd, ref);
        if (act != CN_EPI_NONE) epilogue_reference(r, &st, &bh, cs->n, cs->cout, ho * wo, ref);
        /* the epilogue scales the conv's rounding by up to 1.5 / sqrt(0.5) */
        sum_len = (double)cin_g * cs->k * cs->k * (act != CN_EPI_NONE ? 5 : 1);
    } else {
        cn_ref_conv2d_backward(&st.s, st.xd, st.wd, st.dyd, data ? ref : NULL, which == BACKWARD_WEIGHT ? ref : NULL,
                               which == BACKWARD_BIAS ? ref : NULL);
        sum_len = data ? (double)(cs->cout / st.p.groups) * cs->k * cs->k : (double)cs->n * ho * wo;
    }
    if (!to_compare(r, which == FORWARD ? "y" : data ? "dx" : which == BACKWARD_WEIGHT ? "dw" : "db",
                    out, ref, n_out, tol_for(sum_len)) ||
        which == FORWARD) {
        to_end(r);
        return;
    }

    /* the same backward again from the same start must give the same bits */
    float *first = to_download(r, out);
    to_buf again = start ? to_inout(r, start, n_out) : to_output(r, n_out);
    st.out.buf = again.t.buf, st.out.offset = again.t.offset;
    float *second = NULL;
    if (run_conv(r->ctx, &st) != CLUNET_OK || cn_finish(r->ctx) != CLUNET_OK)
        to_failf(r, "second run failed: %s", clunet_last_error());
    else if ((second = to_download(r, again)) && first && memcmp(first, second, n_out * sizeof(float)))
        to_failf(r, "two runs from the same start gave different bits");

    /* finite differences of the reference backward, where the forward is cheap enough to repeat */
    if (r->grad && macs < 2e6 && !set) { /* a written dx has the same reference as an added one */
        double *analytic = to_alloc_double(r, n_out);
        st.yd = to_alloc_double(r, ny);
        cn_ref_conv2d_backward(&st.s, st.xd, st.wd, st.dyd, data ? analytic : NULL,
                               which == BACKWARD_WEIGHT ? analytic : NULL, which == BACKWARD_BIAS ? analytic : NULL);
        double *probe = data ? st.xd : which == BACKWARD_WEIGHT ? st.wd : st.bd;
        to_grad_check(r, "reference backward", probe, n_out, analytic, conv_loss, &st);
    }
    to_end(r);
}

/* ---- the shapes ---------------------------------------------------------------- */

#define DENSE(what, n, c, h, w, co, k, s, pt, pl, pb, pr, bias) {what, n, c, h, w, co, k, s, pt, pl, pb, pr, 0, bias}
#define DW(what, n, c, h, w, k, s, pt, pl, pb, pr, bias) {what, n, c, h, w, c, k, s, pt, pl, pb, pr, 1, bias}

/* Small enough for Oclgrind: every kernel size, stride and padding style. */
static const conv_shape small_shapes[] = {
    DENSE("3x3 same", 2, 3, 9, 7, 5, 3, 1, 1, 1, 1, 1, 1),
    DENSE("3x3 tf-same s2", 1, 4, 8, 8, 6, 3, 2, 0, 0, 1, 1, 0),
    DENSE("3x3 valid", 2, 3, 6, 5, 2, 3, 1, 0, 0, 0, 0, 0),
    DENSE("3x3 odd pads", 1, 2, 5, 6, 3, 3, 2, 0, 2, 1, 0, 1),
    DENSE("1x1 direct", 2, 5, 5, 6, 3, 1, 1, 0, 0, 0, 0, 1),
    DENSE("1x1 s2", 2, 6, 6, 5, 4, 1, 2, 0, 0, 0, 0, 0),
    DENSE("5x5 same s2", 1, 3, 7, 7, 4, 5, 2, 2, 2, 2, 2, 0),
    DENSE("5x5 tf-same", 2, 2, 6, 7, 3, 5, 1, 2, 2, 2, 2, 1),
    DENSE("3x3 same wide", 2, 4, 5, 37, 20, 3, 1, 1, 1, 1, 1, 0), /* row tiles of 16 and a rest; 2 channel blocks */
    DENSE("3x3 same, 3 images", 3, 3, 20, 26, 4, 3, 1, 1, 1, 1, 1, 0), /* Winograd: 130 tiles, passes of 2 + 1 */
    /*
     * Few channels, stride 1: the GPU kernels (conv2d_direct_wg, split-K dw;
     * CLUNET_CONV=direct elsewhere), on CPUs conv2d_tiled and conv2d_direct_dw
     * (one or two blocks of 16 outputs; 1->17 is too small for its workspace
     * and takes the GEMM). Widths past 64 and heights that leave
     * work-groups partly outside, channel counts that leave output blocks and
     * weight slabs partly empty, pixel counts that leave a short last chunk.
     */
    DENSE("1->17 wide", 2, 1, 5, 67, 17, 3, 1, 1, 1, 1, 1, 0),
    DENSE("16->1 head", 2, 16, 9, 15, 1, 3, 1, 1, 1, 1, 1, 1),
    DENSE("17->32", 2, 17, 7, 11, 32, 3, 1, 1, 1, 1, 1, 0),
    DENSE("48->3", 1, 48, 6, 9, 3, 3, 1, 1, 1, 1, 1, 0),
    DENSE("3->16 5x5", 1, 3, 8, 9, 16, 5, 1, 2, 2, 2, 2, 0),
    DENSE("3x3 odd pads s1", 2, 3, 6, 7, 5, 3, 1, 0, 2, 1, 0, 0),
    /* more input than output channels (over 32), uneven pads: dx as the flipped conv of dy through im2col + GEMM
     * where the GPU paths run (Oclgrind; CLUNET_CONV=gemm on any device), conv2d_tiled on CPUs */
    DENSE("64->34 flipped dx", 1, 64, 10, 12, 34, 3, 1, 1, 2, 1, 0, 0),
    /*
     * at most 4 outputs: CPUs take the forward from the depthwise kernel summing over the inputs, and the
     * weight gradient from it an output at a time; one input with several outputs is a dense conv there too
     */
    DENSE("3x3 odd pads, 2 outputs", 2, 3, 6, 7, 2, 3, 1, 0, 2, 1, 0, 0),
    DENSE("5x5, 1 output, 37 wide", 2, 4, 8, 37, 1, 5, 1, 2, 2, 2, 2, 1),
    DENSE("1->3, one input", 2, 1, 6, 20, 3, 3, 1, 1, 1, 1, 1, 1),
    DENSE("3->2 on 8x8", 2, 3, 8, 8, 2, 3, 1, 1, 1, 1, 1, 0), /* CPUs: the weight gradient over whole planes */
    DENSE("bias over 4096 pixels", 2, 3, 48, 48, 2, 3, 1, 1, 1, 1, 1, 1), /* CPUs: the bias gradient by work-groups */
    DW("dw3 same", 2, 5, 7, 9, 3, 1, 1, 1, 1, 1, 1),
    DW("dw3 tf-same s2", 1, 3, 8, 8, 3, 2, 0, 0, 1, 1, 0),
    /* the weight gradient over whole planes on CPUs (depthwise_plane): rows of 16, 8 and 2 a vector, uneven pads */
    DW("dw plane 8x8", 2, 5, 8, 8, 5, 1, 2, 2, 2, 2, 1),
    DW("dw 13 rows", 2, 3, 13, 10, 5, 1, 2, 2, 2, 2, 1), /* CPUs: 16 rows a work-item, 3 of them past the map */
    DW("dw plane 16 wide odd pads", 2, 3, 2, 16, 3, 1, 0, 2, 2, 0, 0),
    DW("dw plane 2 wide odd pads", 1, 4, 8, 2, 5, 1, 3, 1, 1, 3, 1),
    DW("dw5 same", 2, 4, 9, 9, 5, 1, 2, 2, 2, 2, 0),
    DW("dw5 tf-same s2", 1, 3, 9, 10, 5, 2, 2, 1, 2, 2, 1),
    DW("dw3 wide", 1, 2, 4, 37, 3, 1, 1, 1, 1, 1, 0), /* whole float16 rows and a rest */
    DW("dw3 tf-same s2 wide", 1, 2, 5, 75, 3, 2, 0, 0, 1, 1, 0),
    DW("dw5 same s2 wide", 1, 2, 6, 70, 5, 2, 2, 2, 2, 2, 1),
    DW("dw3 same, over 64 wide", 1, 2, 5, 67, 3, 1, 1, 1, 1, 1, 1),   /* CPUs: 8 rows a work-item */
    DW("dw3 same, over 128 wide", 1, 2, 5, 131, 3, 1, 1, 1, 1, 1, 1), /* CPUs: a row per work-item, not 8 */
    DW("dw3 s2, over 128 wide", 1, 2, 7, 139, 3, 2, 0, 0, 1, 1, 0),    /* CPUs: dx a row per work-item, not 8 */
};

/* The EfficientNet-B0 U-Net at a 64x64 input (TF 'same' pads: the odd pixel goes bottom/right). */
static const conv_shape unet64_shapes[] = {
    DENSE("stem", 2, 3, 64, 64, 32, 3, 2, 0, 0, 1, 1, 0),
    DW("b1 dw", 2, 32, 32, 32, 3, 1, 1, 1, 1, 1, 0),
    DENSE("b1 project", 2, 32, 32, 32, 16, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b2 expand", 2, 16, 32, 32, 96, 1, 1, 0, 0, 0, 0, 0),
    DW("b2 dw s2", 2, 96, 32, 32, 3, 2, 0, 0, 1, 1, 0),
    DENSE("b2 project", 2, 96, 16, 16, 24, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b2 expand", 1, 24, 16, 16, 144, 1, 1, 0, 0, 0, 0, 0),
    DW("b2 dw", 1, 144, 16, 16, 3, 1, 1, 1, 1, 1, 0),
    DW("b3 dw s2", 1, 144, 16, 16, 5, 2, 1, 1, 2, 2, 0),
    DENSE("b3 project", 1, 144, 8, 8, 40, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b3 expand", 1, 40, 8, 8, 240, 1, 1, 0, 0, 0, 0, 0),
    DW("b3 dw", 1, 240, 8, 8, 5, 1, 2, 2, 2, 2, 0),
    DW("b4 dw s2", 1, 240, 8, 8, 3, 2, 0, 0, 1, 1, 0),
    DENSE("b4 expand", 1, 80, 4, 4, 480, 1, 1, 0, 0, 0, 0, 0),
    DW("b4 dw", 1, 480, 4, 4, 3, 1, 1, 1, 1, 1, 0),
    DW("b5 dw", 1, 480, 4, 4, 5, 1, 2, 2, 2, 2, 0),
    DENSE("b5 expand", 1, 112, 4, 4, 672, 1, 1, 0, 0, 0, 0, 0),
    DW("b6 dw s2", 1, 672, 4, 4, 5, 2, 1, 1, 2, 2, 0),
    DENSE("b6 expand", 1, 192, 2, 2, 1152, 1, 1, 0, 0, 0, 0, 0),
    DW("b7 dw", 1, 1152, 2, 2, 3, 1, 1, 1, 1, 1, 0),
    DENSE("b7 project", 1, 1152, 2, 2, 320, 1, 1, 0, 0, 0, 0, 0),
    DENSE("top", 1, 320, 2, 2, 1280, 1, 1, 0, 0, 0, 0, 0),
    DENSE("dec1", 1, 1280 + 672, 4, 4, 256, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec2", 1, 256 + 240, 8, 8, 128, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec3", 1, 128 + 144, 16, 16, 64, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec4", 2, 64 + 96, 32, 32, 32, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec5", 1, 32, 64, 64, 16, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec6", 2, 16, 64, 64, 16, 3, 1, 1, 1, 1, 1, 0),
    DENSE("head", 2, 16, 64, 64, 1, 3, 1, 1, 1, 1, 1, 1),
};

/* Not from the network: the last decoder convs' channels at sizes that cross many edges (see small_shapes). */
static const conv_shape few_channel_shapes[] = {
    DENSE("dec6-like", 2, 16, 70, 100, 16, 3, 1, 1, 1, 1, 1, 0), /* 7000 pixels: 212 chunks of 33 and one of 4 */
    DENSE("dec5-like", 1, 32, 45, 130, 16, 3, 1, 1, 1, 1, 1, 0),
    DENSE("head-like", 2, 16, 33, 129, 1, 3, 1, 1, 1, 1, 1, 1),
    DENSE("dec5 62 wide", 2, 16, 9, 62, 16, 3, 1, 1, 1, 1, 1, 0), /* F(4x4)'s 16 tiles of a row end 2 pixels past it */
};

/* Timing only (--perf): the same network at a 512x512 input, batch 1, and the decoder at 4 x 256 (the training
 * recipe's batches, and the batch evaluation's), where each image's map is a quarter of that. */
static const conv_shape unet512_shapes[] = {
    DENSE("stem", 1, 3, 512, 512, 32, 3, 2, 0, 0, 1, 1, 0),
    DENSE("b2 expand", 1, 16, 256, 256, 96, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b2 project", 1, 96, 128, 128, 24, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b3 expand", 1, 24, 128, 128, 144, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b4 expand", 1, 40, 64, 64, 240, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b5 expand", 1, 80, 32, 32, 480, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b6 expand", 1, 112, 32, 32, 672, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b7 expand", 1, 192, 16, 16, 1152, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b7 project", 1, 1152, 16, 16, 320, 1, 1, 0, 0, 0, 0, 0),
    DENSE("top", 1, 320, 16, 16, 1280, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b7 se reduce", 1, 1152, 1, 1, 48, 1, 1, 0, 0, 0, 0, 1), /* squeeze-excite: the pooled map */
    DENSE("b7 se expand", 1, 48, 1, 1, 1152, 1, 1, 0, 0, 0, 0, 1),
    DENSE("b2 expand 4x256", 4, 16, 128, 128, 96, 1, 1, 0, 0, 0, 0, 0), /* the 1x1 convs at 4 x 256 */
    DENSE("b2 project 4x256", 4, 96, 64, 64, 24, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b3 expand 4x256", 4, 24, 64, 64, 144, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b3 project 4x256", 4, 144, 32, 32, 40, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b4 expand 4x256", 4, 40, 32, 32, 240, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b4 project 4x256", 4, 240, 16, 16, 80, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b5 project 4x256", 4, 672, 16, 16, 112, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b6 expand 4x256", 4, 112, 16, 16, 672, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b6 project 4x256", 4, 1152, 8, 8, 192, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b7 expand 4x256", 4, 192, 8, 8, 1152, 1, 1, 0, 0, 0, 0, 0),
    DENSE("b7 project 4x256", 4, 1152, 8, 8, 320, 1, 1, 0, 0, 0, 0, 0),
    DENSE("top 4x256", 4, 320, 8, 8, 1280, 1, 1, 0, 0, 0, 0, 0),
    DW("b1 dw", 1, 32, 256, 256, 3, 1, 1, 1, 1, 1, 0),
    DW("b2 dw s2", 1, 96, 256, 256, 3, 2, 0, 0, 1, 1, 0),
    DW("b2 dw", 1, 144, 128, 128, 3, 1, 1, 1, 1, 1, 0),
    DW("b3 dw s2", 1, 144, 128, 128, 5, 2, 1, 1, 2, 2, 0),
    DW("b4 dw s2", 1, 240, 64, 64, 3, 2, 0, 0, 1, 1, 0),
    DW("b5 dw", 1, 480, 32, 32, 5, 1, 2, 2, 2, 2, 0),
    DW("b6 dw s2", 1, 672, 32, 32, 5, 2, 1, 1, 2, 2, 0),
    DW("b7 dw", 1, 1152, 16, 16, 3, 1, 1, 1, 1, 1, 0),
    DW("b1 dw 4x256", 4, 32, 128, 128, 3, 1, 1, 1, 1, 1, 0), /* every depthwise shape at 4 x 256 */
    DW("b2 dw s2 4x256", 4, 96, 128, 128, 3, 2, 0, 0, 1, 1, 0),
    DW("b2 dw 4x256", 4, 144, 64, 64, 3, 1, 1, 1, 1, 1, 0),
    DW("b3 dw s2 4x256", 4, 144, 64, 64, 5, 2, 1, 1, 2, 2, 0),
    DW("b3 dw 4x256", 4, 240, 32, 32, 5, 1, 2, 2, 2, 2, 0),
    DW("b4 dw s2 4x256", 4, 240, 32, 32, 3, 2, 0, 0, 1, 1, 0),
    DW("b4 dw 4x256", 4, 480, 16, 16, 3, 1, 1, 1, 1, 1, 0),
    DW("b5 dw 4x256", 4, 672, 16, 16, 5, 1, 2, 2, 2, 2, 0),
    DW("b6 dw s2 4x256", 4, 672, 16, 16, 5, 2, 1, 1, 2, 2, 0),
    DW("b6 dw 4x256", 4, 1152, 8, 8, 5, 1, 2, 2, 2, 2, 0),
    DW("b7 dw 4x256", 4, 1152, 8, 8, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec1", 1, 1280 + 672, 32, 32, 256, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec1b", 1, 256, 32, 32, 256, 3, 1, 1, 1, 1, 1, 0), /* each decoder block's second conv */
    DENSE("dec1 4x256", 4, 1280 + 672, 16, 16, 256, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec1b 4x256", 4, 256, 16, 16, 256, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec2 4x256", 4, 256 + 240, 32, 32, 128, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec2b 4x256", 4, 128, 32, 32, 128, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec3 4x256", 4, 128 + 144, 64, 64, 64, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec3b 4x256", 4, 64, 64, 64, 64, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec4 4x256", 4, 64 + 96, 128, 128, 32, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec4b 4x256", 4, 32, 128, 128, 32, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec5 4x256", 4, 32, 256, 256, 16, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec6 4x256", 4, 16, 256, 256, 16, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec2", 1, 256 + 240, 64, 64, 128, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec2b", 1, 128, 64, 64, 128, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec3", 1, 128 + 144, 128, 128, 64, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec3b", 1, 64, 128, 128, 64, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec4", 1, 64 + 96, 256, 256, 32, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec4b", 1, 32, 256, 256, 32, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec5", 1, 32, 512, 512, 16, 3, 1, 1, 1, 1, 1, 0),
    DENSE("dec6", 1, 16, 512, 512, 16, 3, 1, 1, 1, 1, 1, 0),
    DENSE("head", 1, 16, 512, 512, 1, 3, 1, 1, 1, 1, 1, 1),
};

/*
 * Every shape's forward runs plain and, outside timings, once more with an
 * inference batch norm in its stores: without activation, with swish or
 * with ReLU, by turns over the shapes.
 */
static void conv_shapes(to_run *r, const conv_shape *shapes, size_t count, const int *impls, int impl_count)
{
    for (size_t i = 0; i < count; i++) {
        const conv_shape *cs = &shapes[i];
        cn_epilogue_act act = (cn_epilogue_act)(CN_EPI_AFFINE + i % 3);
        for (int which = FORWARD; which <= BACKWARD_BIAS; which++) {
            if (which == BACKWARD_BIAS && !cs->bias) continue;
            for (int e = 0; e < (which == FORWARD && !r->perf ? 2 : 1); e++) {
                cn_epilogue_act a = e ? act : CN_EPI_NONE;
                if (cs->depthwise || which == BACKWARD_BIAS) conv_case(r, cs, which, -1, a);
                else
                    for (int j = 0; j < impl_count; j++) conv_case(r, cs, which, impls[j], a);
            }
        }
    }
}

void cases_conv(to_run *r)
{
    int impls[3];
    int count = gemm_impls(r, impls);
    if (count == 0) return;
    int keep = r->ctx ? r->ctx->gemm_impl : -1;
    gemm_cases(r, impls, count);
    if (!r->perf) {
        conv_shapes(r, small_shapes, sizeof small_shapes / sizeof small_shapes[0], impls, count);
        if (!r->small) {
            conv_shapes(r, unet64_shapes, sizeof unet64_shapes / sizeof unet64_shapes[0], impls, count);
            conv_shapes(r, few_channel_shapes, sizeof few_channel_shapes / sizeof few_channel_shapes[0], impls, count);
        }
    } else {
        conv_shapes(r, unet512_shapes, sizeof unet512_shapes / sizeof unet512_shapes[0], impls, count);
    }
    use_impl(r, keep);
}
