/*
 * profile.c - where a training step spends its time: every node's forward and
 * backward timed on its own (cn_finish around each), then grouped by block
 * and op, or by op kind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/clock.h"

/*
 * A view of e that holds the `count` nodes from node i (cn_exec_run_length:
 * a fused batch norm and activation run together), so cn_exec_forward/backward
 * run just those. exec.c finds per-node state (e->bn) by the node's position in
 * g->nodes, so the view shifts both. Its backward zeroes only one float of the
 * parameter gradients: the real step's zeroing is timed once, separately.
 */
static void node_view(const cn_exec *e, int i, int count, cn_graph *gv, cn_exec *ev)
{
    *gv = *e->g;
    gv->nodes = e->g->nodes + i;
    gv->node_count = count;
    gv->trainable_floats = 1;
    *ev = *e;
    ev->g = gv;
    ev->bn = e->bn + i;
}

static clunet_status timed_finish(clunet_context *ctx, double t0, double *ms)
{
    CN_TRY(cn_finish(ctx));
    *ms = (cn_seconds() - t0) * 1e3;
    return CLUNET_OK;
}

/* One node-by-node step into p's arrays (allocated by the caller). */
static clunet_status timed_pass(cn_exec *e, cn_step_profile *p)
{
    const cn_graph *g = e->g;
    cn_graph gv;
    cn_exec ev;
    double t0;
    clunet_status st = cn_finish(e->ctx);
    /* a fused pair's time goes to its first node (the batch norm) */
    for (int i = 0, len; i < g->node_count && st == CLUNET_OK; i += len) {
        len = cn_exec_run_length(g, i);
        node_view(e, i, len, &gv, &ev);
        t0 = cn_seconds();
        if ((st = cn_exec_forward(&ev, 1)) == CLUNET_OK) st = timed_finish(e->ctx, t0, &p->forward_ms[i]);
    }
    t0 = cn_seconds();
    if (st == CLUNET_OK && (st = cn_exec_loss(e, 1)) == CLUNET_OK) st = timed_finish(e->ctx, t0, &p->loss_ms);
    t0 = cn_seconds();
    if (st == CLUNET_OK &&
        (st = cn_buffer_fill_float(e->ctx, e->grads, 0, g->trainable_floats * sizeof(float), 0.0f)) == CLUNET_OK)
        st = timed_finish(e->ctx, t0, &p->zero_ms);
    for (int i = g->node_count - 1; i >= 0 && st == CLUNET_OK; i--) {
        if (i > 0 && cn_exec_run_length(g, i - 1) == 2) i--;
        node_view(e, i, cn_exec_run_length(g, i), &gv, &ev);
        t0 = cn_seconds();
        if ((st = cn_exec_backward(&ev)) == CLUNET_OK) st = timed_finish(e->ctx, t0, &p->backward_ms[i]);
    }
    t0 = cn_seconds();
    if (st == CLUNET_OK && (st = cn_exec_adam(e)) == CLUNET_OK) st = timed_finish(e->ctx, t0, &p->adam_ms);
    return st;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cn_bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The median of v[0], v[stride], ... (count values). */
static double median_of(const double *v, int count, int stride, double *scratch)
{
    for (int k = 0; k < count; k++) scratch[k] = v[k * stride];
    return cn_bench_median(scratch, count);
}

clunet_status cn_profile_step(cn_exec *e, cn_step_profile *p)
{
    /*
     * CN_PROFILE_PASSES node-by-node steps after an untimed one, and each
     * node's median: a single node-by-node step of this VM put the same
     * kernel at one or twice its time from run to run, which moved an op
     * kind's total by 20-40%. The untimed pass builds (or loads) the kernel
     * variants a single node's view can take and the whole step never
     * runs: counted, that put 12-15 ms into encoder.3.0's backward with a
     * warm kernel cache, 8 s with a cold one.
     */
    enum { PASSES = CN_PROFILE_PASSES, EXTRA = 3 }; /* loss, zero, adam */
    const cn_graph *g = e->g;
    int n = g->node_count, row = 2 * n + EXTRA;
    memset(p, 0, sizeof *p);
    p->forward_ms = calloc((size_t)n, sizeof(double));
    p->backward_ms = calloc((size_t)n, sizeof(double));
    double *runs = calloc((size_t)PASSES * row, sizeof(double)), scratch[PASSES];
    clunet_status st = p->forward_ms && p->backward_ms && runs
                           ? CLUNET_OK
                           : cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory for the profile");
    if (st == CLUNET_OK) st = timed_pass(e, p);
    for (int k = 0; k < PASSES && st == CLUNET_OK; k++) {
        st = timed_pass(e, p);
        double *r = runs + (size_t)k * row;
        memcpy(r, p->forward_ms, n * sizeof(double));
        memcpy(r + n, p->backward_ms, n * sizeof(double));
        r[2 * n] = p->loss_ms, r[2 * n + 1] = p->zero_ms, r[2 * n + 2] = p->adam_ms;
    }
    if (st != CLUNET_OK) {
        free(runs);
        cn_step_profile_free(p);
        return st;
    }
    for (int i = 0; i < n; i++) {
        p->forward_ms[i] = median_of(runs + i, PASSES, row, scratch);
        p->backward_ms[i] = median_of(runs + n + i, PASSES, row, scratch);
    }
    p->loss_ms = median_of(runs + 2 * n, PASSES, row, scratch);
    p->zero_ms = median_of(runs + 2 * n + 1, PASSES, row, scratch);
    p->adam_ms = median_of(runs + 2 * n + 2, PASSES, row, scratch);
    free(runs);
    p->total_ms = p->loss_ms + p->zero_ms + p->adam_ms;
    for (int i = 0; i < n; i++) p->total_ms += p->forward_ms[i] + p->backward_ms[i];
    return CLUNET_OK;
}

void cn_step_profile_free(cn_step_profile *p)
{
    free(p->forward_ms);
    free(p->backward_ms);
    p->forward_ms = p->backward_ms = NULL;
}

/*
 * "conv 3x3 s1", "conv 5x5 dw s2", "batchnorm", "batchnorm+swish" (a fused
 * pair), ... for node i of g. The squeeze-excite convs, on 1x1 maps, are
 * "conv 1x1 se": matrix-vector products, bound by their launches and their
 * weights' traffic, which would hide the dense 1x1 convs' rate in one entry.
 */
static void kind_name(const cn_graph *g, int i, char *out, size_t size)
{
    const cn_node *n = &g->nodes[i];
    const cn_conv_attr *a = &n->conv;
    cn_shape x = g->values[n->in[0]].shape;
    if (n->op == CN_OP_CONV && x.h == 1 && x.w == 1)
        snprintf(out, size, "conv %dx%d se", a->k, a->k);
    else if (n->op == CN_OP_CONV)
        snprintf(out, size, "conv %dx%d%s s%d", a->k, a->k, a->groups > 1 ? " dw" : "", a->stride);
    else if (cn_exec_run_length(g, i) == 2)
        snprintf(out, size, "%s+%s", cn_op_name(n->op), cn_op_name(g->nodes[i + 1].op));
    else
        snprintf(out, size, "%s", cn_op_name(n->op));
}

/*
 * The work of node i in a training step: a conv's FLOP forward and backward
 * (the data gradient only where its input has one: not the image's) and the
 * bytes of the tensors it reads and writes; 0 for other ops.
 */
static void node_work(const cn_graph *g, int i, double *flops, double *bytes)
{
    const cn_node *n = &g->nodes[i];
    *flops = *bytes = 0;
    if (n->op != CN_OP_CONV) return;
    int dx = n->in[0] != g->input;
    double f = cn_node_forward_flops(g, i);
    double x = (double)cn_shape_count(g->values[n->in[0]].shape), y = (double)cn_shape_count(g->values[n->out].shape);
    double w = (double)g->params[n->param[0]].count;
    *flops = f * (2 + dx);
    *bytes = sizeof(float) * ((x + w + y) + (y + x + w) + dx * (y + w + x));
}

/* Adds a node's times and work to the entry called `name`, creating it (the table holds every node at most). */
static void add_time(cn_op_time *t, int *count, const char *name, double ms, double forward_ms, double flops,
                     double bytes)
{
    int i = 0;
    while (i < *count && strcmp(t[i].name, name)) i++;
    if (i == *count) {
        memset(&t[i], 0, sizeof t[i]);
        snprintf(t[i].name, sizeof t[i].name, "%s", name);
        (*count)++;
    }
    t[i].ms += ms;
    t[i].forward_ms += forward_ms;
    t[i].flops += flops;
    t[i].bytes += bytes;
    t[i].nodes++;
}

static int by_time(const void *a, const void *b)
{
    double x = ((const cn_op_time *)a)->ms, y = ((const cn_op_time *)b)->ms;
    return (x < y) - (x > y);
}

int cn_profile_group(const cn_graph *g, const cn_step_profile *p, int by_kind, cn_op_time *out, int cap)
{
    cn_op_time *t = calloc((size_t)g->node_count + 3, sizeof *t);
    if (!t || cap <= 0) {
        free(t);
        return 0;
    }
    int count = 0;
    for (int i = 0; i < g->node_count; i++) {
        const cn_node *n = &g->nodes[i];
        if (n->op == CN_OP_INPUT || (i > 0 && cn_exec_run_length(g, i - 1) == 2)) continue; /* timed with i - 1 */
        char kind[48], name[96];
        kind_name(g, i, kind, sizeof kind);
        snprintf(name, sizeof name, "%s%s%s", by_kind ? "" : n->label, by_kind ? "" : " ", kind);
        double flops, bytes;
        node_work(g, i, &flops, &bytes);
        add_time(t, &count, name, p->forward_ms[i] + p->backward_ms[i], p->forward_ms[i], flops, bytes);
    }
    add_time(t, &count, "loss", p->loss_ms, 0, 0, 0);
    add_time(t, &count, "zero gradients", p->zero_ms, 0, 0, 0);
    add_time(t, &count, "adam", p->adam_ms, 0, 0, 0);
    qsort(t, (size_t)count, sizeof *t, by_time);
    if (count > cap) count = cap;
    memcpy(out, t, (size_t)count * sizeof *t);
    free(t);
    return count;
}
