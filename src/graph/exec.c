/* exec.c - plans, allocates and runs a cn_graph on a device (see exec.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "graph/exec.h"

#define UNPLACED SIZE_MAX
/* Arena slots start on 64-byte boundaries. */
#define ALIGN_FLOATS 16

static size_t align_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static cn_conv2d_params conv_params(const cn_graph *g, const cn_node *n)
{
    cn_conv2d_params p = {g->values[n->out].shape.c, n->conv.k, n->conv.stride, n->conv.pad_t, n->conv.pad_l,
                          n->conv.pad_b, n->conv.pad_r, n->conv.groups, n->conv.has_bias};
    return p;
}

static int needs_grad(const cn_graph *g, int v) { return v >= 0 && v != g->input; }

/* ---- gradient arena: first-fit over the live slots, replayed in backward order ---- */

typedef struct slot {
    size_t off, len;
    int value;
} slot;

typedef struct arena_plan {
    slot *live;
    int count;
    size_t end; /* high-water mark */
} arena_plan;

static size_t arena_take(arena_plan *a, size_t len, int value)
{
    /* Slots are kept sorted by offset; take the first gap that fits. */
    size_t off = 0;
    int at = 0;
    for (; at < a->count; at++) {
        if (a->live[at].off - off >= len) break;
        off = a->live[at].off + a->live[at].len;
    }
    memmove(&a->live[at + 1], &a->live[at], (size_t)(a->count - at) * sizeof(slot));
    a->live[at] = (slot){off, len, value};
    a->count++;
    if (off + len > a->end) a->end = off + len;
    return off;
}

static void arena_drop(arena_plan *a, int value)
{
    for (int i = 0; i < a->count; i++)
        if (a->live[i].value == value) {
            memmove(&a->live[i], &a->live[i + 1], (size_t)(a->count - i - 1) * sizeof(slot));
            a->count--;
            return;
        }
}

/* The slot of value `from` now holds `to` (a value computed in place over it). */
static void arena_rename(arena_plan *a, int from, int to)
{
    for (int i = 0; i < a->count; i++)
        if (a->live[i].value == from) a->live[i].value = to;
}

/*
 * Whether node i (batch norm) and node i + 1 (swish or ReLU of its output, the
 * only reader) run as one pass each way: cn_batchnorm_act_forward reads the
 * input and writes the activation, without the batch norm's output between
 * them; cn_batchnorm_act_backward goes from the activation's gradient to the
 * input's, recomputing that output. A view of the graph that holds one of the
 * two nodes alone cannot run it (the profile views both: cn_exec_run_length).
 */
static int fused_with_next(const cn_graph *g, int i)
{
    if (i + 1 >= g->node_count) return 0;
    const cn_node *n = &g->nodes[i], *a = &g->nodes[i + 1];
    return n->op == CN_OP_BN && (a->op == CN_OP_SWISH || a->op == CN_OP_RELU) && a->in[0] == n->out &&
           g->values[n->out].consumers == 1 && n->out != g->output && needs_grad(g, n->in[0]);
}

int cn_exec_run_length(const cn_graph *g, int i) { return fused_with_next(g, i) ? 2 : 1; }

/* Whether value v is read by one node only and is not the graph's output. */
static int single_use(const cn_graph *g, int v) { return g->values[v].consumers == 1 && v != g->output; }

/*
 * In inference, how many nodes from node i run as one conv whose kernels
 * apply the rest as they store its output (cn_conv2d_forward's epilogue): 3
 * for a conv without bias, the batch norm that alone reads its output and the
 * swish or ReLU that alone reads the batch norm's; 2 without the activation;
 * else 1. Their outputs between never exist.
 */
static int conv_epilogue_run(const cn_graph *g, int i)
{
    const cn_node *c = &g->nodes[i];
    if (c->op != CN_OP_CONV || c->param[1] >= 0 || i + 1 >= g->node_count) return 1;
    const cn_node *n = &g->nodes[i + 1], *a = i + 2 < g->node_count ? &g->nodes[i + 2] : NULL;
    if (n->op != CN_OP_BN || n->in[0] != c->out || !single_use(g, c->out)) return 1;
    return a && (a->op == CN_OP_SWISH || a->op == CN_OP_RELU) && a->in[0] == n->out && single_use(g, n->out) ? 3 : 2;
}

/* How many nodes from node i the forward runs as one (training: cn_exec_run_length). */
static int forward_run(const cn_graph *g, int i, int training)
{
    int conv = training ? 1 : conv_epilogue_run(g, i);
    return conv > 1 ? conv : cn_exec_run_length(g, i);
}

/*
 * Gradient offsets per value; returns the arena size in floats, or 0 on
 * allocation failure. In backward order: a value's slot is taken where its last
 * reader's backward first writes it and dropped after its producer's backward.
 * A fused pair is one step: the batch norm's input and output take their
 * slots while the activation's gradient is live, so the fused backward, which
 * reads that, writes the output's (swish: see cn_batchnorm_act_backward) and
 * then the input's, never writes over what it still reads.
 */
static size_t plan_gradients(const cn_graph *g, size_t *grad_off)
{
    arena_plan a = {calloc((size_t)g->value_count + 1, sizeof(slot)), 0, 0};
    if (!a.live) return 0;
    for (int v = 0; v < g->value_count; v++) grad_off[v] = UNPLACED;
    grad_off[g->output] = arena_take(&a, align_up(cn_shape_count(g->values[g->output].shape)), g->output);
    for (int i = g->node_count - 1; i >= 0; i--) {
        int first = i > 0 && fused_with_next(g, i - 1) ? i - 1 : i;
        for (int j = i; j >= first; j--)
            for (int k = 0; k < 2; k++) {
                int v = g->nodes[j].in[k];
                if (needs_grad(g, v) && grad_off[v] == UNPLACED)
                    grad_off[v] = arena_take(&a, align_up(cn_shape_count(g->values[v].shape)), v);
            }
        for (int j = i; j >= first; j--) arena_drop(&a, g->nodes[j].out);
        i = first;
    }
    free(a.live);
    return a.end;
}

/*
 * Forward value offsets; returns their arena size in floats, or 0 on allocation
 * failure. The output of a batch norm fused with its activation never has a
 * slot (UNPLACED in training; in inference the pair writes the activation's,
 * in place over the batch norm's input where nothing reads that later), nor in
 * inference do the conv's and batch norm's outputs inside a conv_epilogue_run.
 * Training keeps every other value for the backward pass; inference reuses a
 * value's slot once the last node that reads it has run (first-fit, in node
 * order), keeping only the input and the output throughout.
 */
static size_t plan_values(const cn_graph *g, int training, size_t *value_off)
{
    size_t total = 0;
    if (training) {
        for (int v = 0; v < g->value_count; v++) value_off[v] = 0;
        for (int i = 0; i < g->node_count; i++)
            if (fused_with_next(g, i)) value_off[g->nodes[i].out] = UNPLACED;
        for (int v = 0; v < g->value_count; v++) {
            if (value_off[v] == UNPLACED) continue;
            value_off[v] = total;
            total += align_up(cn_shape_count(g->values[v].shape));
        }
        return total;
    }
    int *last = malloc((size_t)g->value_count * sizeof *last);
    arena_plan a = {calloc((size_t)g->value_count + 1, sizeof(slot)), 0, 0};
    if (!last || !a.live) {
        free(last), free(a.live);
        return 0;
    }
    for (int v = 0; v < g->value_count; v++) last[v] = -1, value_off[v] = UNPLACED;
    for (int i = 0; i < g->node_count; i++)
        for (int k = 0; k < 2; k++)
            if (g->nodes[i].in[k] >= 0) last[g->nodes[i].in[k]] = i;
    last[g->input] = last[g->output] = g->node_count; /* written before and read after the forward */
    value_off[g->input] = arena_take(&a, align_up(cn_shape_count(g->values[g->input].shape)), g->input);
    for (int i = 0; i < g->node_count; i++) {
        const cn_node *n = &g->nodes[i];
        int len = forward_run(g, i, 0), out = g->nodes[i + len - 1].out, x = n->in[0];
        if (n->op == CN_OP_BN && len == 2 && last[x] == i && x != g->input) {
            /* in place: the fused pass reads each float of x before it writes the same float of out */
            value_off[out] = value_off[x];
            arena_rename(&a, x, out);
            i++;
            continue;
        }
        if (value_off[out] == UNPLACED)
            value_off[out] = arena_take(&a, align_up(cn_shape_count(g->values[out].shape)), out);
        for (int k = 0; k < 2; k++)
            if (n->in[k] >= 0 && last[n->in[k]] == i) arena_drop(&a, n->in[k]);
        if (last[out] < 0) arena_drop(&a, out); /* read by no node and not the output */
        i += len - 1;
    }
    free(last), free(a.live);
    return a.end;
}

/* The conv paths timed per shape on CPUs (cn_conv2d_plan), so that no step allocates or times. */
static clunet_status plan_convs(clunet_context *ctx, const cn_graph *g, int training)
{
    for (int i = 0; i < g->node_count; i++) {
        const cn_node *n = &g->nodes[i];
        if (n->op != CN_OP_CONV) continue;
        cn_shape in = g->values[n->in[0]].shape;
        cn_conv2d_params p = conv_params(g, n);
        CN_TRY(cn_conv2d_plan(ctx, &p, in.n, in.c, in.h, in.w, training));
    }
    return CLUNET_OK;
}

/* Scratch floats: the most any single op needs. */
static size_t plan_work(const cn_graph *g)
{
    size_t most = cn_focal_dice_work_floats(cn_shape_count(g->values[g->output].shape));
    for (int i = 0; i < g->node_count; i++) {
        const cn_node *n = &g->nodes[i];
        cn_shape in = g->values[n->in[0] >= 0 ? n->in[0] : n->out].shape;
        size_t need = 0;
        if (n->op == CN_OP_CONV) {
            cn_conv2d_params p = conv_params(g, n);
            need = cn_conv2d_workspace_floats(&p, in.n, in.c, in.h, in.w);
        } else if (n->op == CN_OP_BN) {
            need = cn_batchnorm_work_floats(in.n, in.c, in.h, in.w);
        }
        if (need > most) most = need;
    }
    return most;
}

static size_t bn_saved_floats(const cn_graph *g)
{
    size_t total = 0;
    for (int i = 0; i < g->node_count; i++)
        if (g->nodes[i].op == CN_OP_BN) total += align_up(2 * (size_t)g->values[g->nodes[i].out].shape.c);
    return total;
}

void cn_exec_planned_arenas(const cn_graph *g, int training, size_t *values, size_t *gradients)
{
    size_t *grad_off = training ? malloc((size_t)g->value_count * sizeof *grad_off) : NULL;
    *gradients = grad_off ? plan_gradients(g, grad_off) : 0;
    free(grad_off);
    size_t *value_off = malloc((size_t)g->value_count * sizeof *value_off);
    *values = value_off ? plan_values(g, training, value_off) : 0;
    free(value_off);
}

size_t cn_exec_planned_bytes(const cn_graph *g, int training)
{
    size_t values, grads;
    cn_exec_planned_arenas(g, training, &values, &grads);
    size_t pixels = cn_shape_count(g->values[g->output].shape);
    int ema = training == CN_EXEC_TRAINING_EMA; /* its copy of the weights and BN statistics */
    return 4 * ((training ? 4 + ema : 1) * g->trainable_floats + (1 + ema) * g->state_floats + values + grads +
                plan_work(g) + bn_saved_floats(g) + 2 * pixels + CN_LOSS_FLOATS + 4 + 2 * CN_EXEC_BINS);
}

static clunet_status alloc_floats(cn_exec *e, size_t floats, cl_mem *buf)
{
    return cn_buffer_alloc(e->ctx, (floats ? floats : 1) * sizeof(float), buf);
}

static cn_tensor view(cl_mem buf, size_t off, cn_shape s)
{
    cn_tensor t = {buf, off, s.n, s.c, s.h, s.w};
    return t;
}

static cn_tensor vec(cl_mem buf, size_t off, size_t count)
{
    cn_tensor t = {buf, off, 1, 1, 1, (int)count};
    return t;
}

cn_tensor cn_exec_value(const cn_exec *e, int v) { return view(e->values, e->value_off[v], e->g->values[v].shape); }

static cn_tensor value_grad(const cn_exec *e, int v)
{
    return view(e->value_grads, e->grad_off[v], e->g->values[v].shape);
}

static cn_tensor param_view(const cn_exec *e, int i, cl_mem trainable_buf)
{
    const cn_param *p = &e->g->params[i];
    cn_tensor t = {p->trainable ? trainable_buf : e->state, p->offset, 1, 1, 1, (int)p->count};
    if (p->ndim == 4) t.n = p->dims[0], t.c = p->dims[1], t.h = p->dims[2], t.w = p->dims[3];
    return t;
}

cn_tensor cn_exec_param(const cn_exec *e, int i) { return param_view(e, i, e->params); }
cn_tensor cn_exec_param_grad(const cn_exec *e, int i) { return param_view(e, i, e->grads); }

static void setup_batchnorms(cn_exec *e)
{
    size_t saved = 0;
    for (int i = 0; i < e->g->node_count; i++) {
        const cn_node *n = &e->g->nodes[i];
        if (n->op != CN_OP_BN) continue;
        size_t c = (size_t)e->g->values[n->out].shape.c;
        cn_batchnorm *bn = &e->bn[i];
        bn->eps = (float)e->g->bn_eps;
        bn->momentum = (float)e->g->bn_momentum;
        bn->gamma = cn_exec_param(e, n->param[0]);
        bn->beta = cn_exec_param(e, n->param[1]);
        bn->dgamma = cn_exec_param_grad(e, n->param[0]);
        bn->dbeta = cn_exec_param_grad(e, n->param[1]);
        bn->running_mean = cn_exec_param(e, n->param[2]);
        bn->running_var = cn_exec_param(e, n->param[3]);
        bn->saved = vec(e->bn_saved, saved, 2 * c);
        cn_shape sh = e->g->values[n->out].shape;
        bn->work = vec(e->work, 0, cn_batchnorm_work_floats(sh.n, sh.c, sh.h, sh.w));
        saved += align_up(2 * c);
    }
}

clunet_status cn_exec_create(clunet_context *ctx, const cn_graph *g, int training, cn_exec *e)
{
    memset(e, 0, sizeof *e);
    e->ctx = ctx;
    e->g = g;
    e->training = training;
    e->value_off = calloc((size_t)g->value_count, sizeof *e->value_off);
    e->grad_off = calloc((size_t)g->value_count, sizeof *e->grad_off);
    e->bn = calloc((size_t)g->node_count, sizeof *e->bn);
    if (!e->value_off || !e->grad_off || !e->bn) {
        cn_exec_destroy(e);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory planning the graph");
    }
    /* A plan that cannot fit fails now, not after minutes of compiling and timing kernels for it. */
    size_t need = cn_exec_planned_bytes(g, training), values_arena, grads_arena;
    cn_exec_planned_arenas(g, training, &values_arena, &grads_arena);
    size_t arena = 4 * (values_arena > grads_arena ? values_arena : grads_arena);
    uint64_t room = ctx->mem_cap > ctx->mem_current ? ctx->mem_cap - ctx->mem_current : 0;
    clunet_status st = CLUNET_OK;
    if (need > room)
        st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s has %.0f MiB for this run", ctx->info.name, room / 1048576.0);
    else if (arena > ctx->info.max_alloc_bytes)
        st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s allocates at most %.0f MiB at once, the activations need %.0f MiB",
                     ctx->info.name, ctx->info.max_alloc_bytes / 1048576.0, arena / 1048576.0);
    if (st) {
        cn_exec_destroy(e);
        return st;
    }
    /* Choosing the GEMM and conv variants and the streaming stores measures with temporary buffers: before the
       big allocations, not in the first step. */
    if ((ctx->gemm_impl < 0 && (st = cn_gemm_choose(ctx)) != CLUNET_OK) ||
        (st = cn_conv2d_choose(ctx)) != CLUNET_OK || (st = cn_stream_choose(ctx)) != CLUNET_OK ||
        (st = plan_convs(ctx, g, training)) != CLUNET_OK) {
        cn_exec_destroy(e);
        return st;
    }
    size_t values = plan_values(g, training, e->value_off);
    if (!values) {
        cn_exec_destroy(e);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory planning the graph");
    }
    e->grad_floats = training ? plan_gradients(g, e->grad_off) : 0;
    e->work_floats = plan_work(g);
    size_t pixels = cn_shape_count(g->values[g->output].shape);

    /* Inference gets 1-float placeholders for what only training uses. */
    size_t tf = training ? g->trainable_floats : 1;
    if ((st = alloc_floats(e, g->trainable_floats, &e->params)) || (st = alloc_floats(e, tf, &e->grads)) ||
        (st = alloc_floats(e, tf, &e->adam_m)) || (st = alloc_floats(e, tf, &e->adam_v)) ||
        (st = alloc_floats(e, g->state_floats, &e->state)) || (st = alloc_floats(e, values, &e->values)) ||
        (st = alloc_floats(e, e->grad_floats, &e->value_grads)) ||
        (st = alloc_floats(e, e->work_floats, &e->work)) || (st = alloc_floats(e, bn_saved_floats(g), &e->bn_saved)) ||
        (st = alloc_floats(e, pixels, &e->labels)) || (st = alloc_floats(e, pixels, &e->mask)) ||
        (st = alloc_floats(e, CN_LOSS_FLOATS, &e->loss_out)) || (st = alloc_floats(e, 4, &e->metric_counts)) ||
        (st = alloc_floats(e, 2 * CN_EXEC_BINS, &e->metric_hist))) {
        cn_exec_destroy(e);
        return st;
    }
    setup_batchnorms(e);
    cn_focal_dice_default(&e->loss);
    cn_adam_default(&e->adam);
    size_t bytes = tf * sizeof(float);
    if ((st = cn_buffer_fill_float(ctx, e->adam_m, 0, bytes, 0.0f)) ||
        (st = cn_buffer_fill_float(ctx, e->adam_v, 0, bytes, 0.0f)) ||
        (st = cn_buffer_fill_float(ctx, e->grads, 0, bytes, 0.0f))) {
        cn_exec_destroy(e);
        return st;
    }
    return CLUNET_OK;
}

void cn_exec_destroy(cn_exec *e)
{
    if (!e->ctx) return;
    cl_mem *bufs[] = {&e->params,      &e->grads,    &e->adam_m, &e->adam_v,   &e->state,
                      &e->values,      &e->value_grads, &e->work, &e->bn_saved, &e->labels,
                      &e->mask,        &e->loss_out, &e->metric_counts, &e->metric_hist, &e->ema_params,
                      &e->ema_state};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        cn_buffer_free(e->ctx, *bufs[i]);
        *bufs[i] = NULL;
    }
    free(e->value_off);
    free(e->grad_off);
    free(e->bn);
    memset(e, 0, sizeof *e);
}

clunet_status cn_exec_set_batch(cn_exec *e, const float *images, const float *labels, const float *mask)
{
    cn_tensor x = cn_exec_value(e, e->g->input);
    size_t pixels = cn_shape_count(e->g->values[e->g->output].shape);
    CN_TRY(cn_tensor_upload(e->ctx, &x, images));
    if (labels) CN_TRY(cn_buffer_write(e->ctx, e->labels, 0, pixels * sizeof(float), labels));
    if (mask) return cn_buffer_write(e->ctx, e->mask, 0, pixels * sizeof(float), mask);
    return cn_buffer_fill_float(e->ctx, e->mask, 0, pixels * sizeof(float), 1.0f);
}

/* A residual add's stochastic depth at this step (keep 1: none); the backward repeats the forward's draw. */
static cn_drop drop_of(const cn_exec *e, const cn_node *n)
{
    return (cn_drop){1.0f - n->drop, cn_graph_drop_key(e->drop_seed, e->step, (int)(n - e->g->nodes))};
}

/* Conv node n into y, with the epilogue ep (NULL: none). */
static clunet_status forward_conv(cn_exec *e, const cn_node *n, const cn_tensor *y, const cn_epilogue *ep)
{
    cn_conv2d_params p = conv_params(e->g, n);
    cn_tensor x = cn_exec_value(e, n->in[0]), w = cn_exec_param(e, n->param[0]);
    cn_tensor b = n->param[1] >= 0 ? cn_exec_param(e, n->param[1]) : (cn_tensor){0};
    cn_tensor work = vec(e->work, 0, e->work_floats);
    return cn_conv2d_forward(e->ctx, &p, &x, &w, n->param[1] >= 0 ? &b : NULL, y, &work, ep);
}

/* Inference: conv node i and the `len` - 1 nodes after it as one conv (conv_epilogue_run). */
static clunet_status forward_conv_epilogue(cn_exec *e, int i, int len)
{
    const cn_node *a = &e->g->nodes[i + len - 1];
    cn_epilogue_act act = len == 2 ? CN_EPI_AFFINE : a->op == CN_OP_SWISH ? CN_EPI_SWISH : CN_EPI_RELU;
    cn_epilogue ep;
    CN_TRY(cn_batchnorm_fold(e->ctx, &e->bn[i + 1], act, &ep));
    cn_tensor y = cn_exec_value(e, a->out);
    return forward_conv(e, &e->g->nodes[i], &y, &ep);
}

static clunet_status forward_node(cn_exec *e, const cn_node *n, int training)
{
    const cn_graph *g = e->g;
    cn_tensor x = cn_exec_value(e, n->in[0]), y = cn_exec_value(e, n->out);
    cn_tensor x1 = n->in[1] >= 0 ? cn_exec_value(e, n->in[1]) : (cn_tensor){0};
    switch (n->op) {
    case CN_OP_CONV: return forward_conv(e, n, &y, NULL);
    case CN_OP_BN: return cn_batchnorm_forward(e->ctx, &e->bn[n - g->nodes], training, &x, &y);
    case CN_OP_SWISH: return cn_activation_forward(e->ctx, CN_ACT_SWISH, &x, &y);
    case CN_OP_RELU: return cn_activation_forward(e->ctx, CN_ACT_RELU, &x, &y);
    case CN_OP_SIGMOID: return cn_activation_forward(e->ctx, CN_ACT_SIGMOID, &x, &y);
    case CN_OP_AVGPOOL: return cn_avgpool_forward(e->ctx, &x, &y);
    case CN_OP_CHSCALE: return cn_chscale_forward(e->ctx, &x, &x1, &y);
    case CN_OP_ADD: {
        cn_drop d = drop_of(e, n);
        return cn_add_forward(e->ctx, &x, &x1, &y, training && d.keep < 1.0f ? &d : NULL);
    }
    case CN_OP_UPCAT: return cn_upcat_forward(e->ctx, &x, n->in[1] >= 0 ? &x1 : NULL, &y);
    case CN_OP_INPUT: break;
    }
    return cn_fail(CLUNET_ERR_INTERNAL, "graph node of unknown kind %d", (int)n->op);
}

static cn_activation fused_act(const cn_node *a) { return a->op == CN_OP_SWISH ? CN_ACT_SWISH : CN_ACT_RELU; }

/* Batch norm node i and its activation (fused_with_next) in one pass: only the activation is written. */
static clunet_status forward_fused(cn_exec *e, int i, int training)
{
    const cn_node *n = &e->g->nodes[i], *a = &e->g->nodes[i + 1];
    cn_tensor x = cn_exec_value(e, n->in[0]), z = cn_exec_value(e, a->out);
    return cn_batchnorm_act_forward(e->ctx, &e->bn[i], training, fused_act(a), &x, NULL, &z);
}

clunet_status cn_exec_forward(cn_exec *e, int training)
{
    for (int i = 0; i < e->g->node_count; i++) {
        int len = forward_run(e->g, i, training), conv = e->g->nodes[i].op == CN_OP_CONV;
        clunet_status st = len == 1 ? forward_node(e, &e->g->nodes[i], training)
                           : conv   ? forward_conv_epilogue(e, i, len)
                                    : forward_fused(e, i, training);
        if (st != CLUNET_OK)
            return cn_fail(st, "forward, layer %d (%s): %s", i, e->g->nodes[i].label, clunet_last_error());
        i += len - 1;
    }
    return CLUNET_OK;
}

clunet_status cn_exec_loss(cn_exec *e, int with_gradient)
{
    int out = e->g->output;
    cn_shape s = e->g->values[out].shape;
    cn_tensor z = cn_exec_value(e, out), y = view(e->labels, 0, s), m = view(e->mask, 0, s);
    cn_tensor res = vec(e->loss_out, 0, CN_LOSS_FLOATS);
    cn_tensor work = vec(e->work, 0, cn_focal_dice_work_floats(cn_shape_count(s)));
    if (with_gradient && !e->training) return cn_fail(CLUNET_ERR_INTERNAL, "loss gradient on an inference graph");
    cn_tensor dz = with_gradient ? value_grad(e, out) : (cn_tensor){0};
    return cn_focal_dice_loss(e->ctx, &e->loss, &z, &y, &m, &res, &work, with_gradient ? &dz : NULL);
}

/* Zeroes a value's gradient slot (before a backward that only accumulates). */
static clunet_status zero_grad(cn_exec *e, int v)
{
    return cn_buffer_fill_float(e->ctx, e->value_grads, e->grad_off[v] * sizeof(float),
                                cn_shape_count(e->g->values[v].shape) * sizeof(float), 0.0f);
}

/*
 * Runs one node's backward. `ready[v]` says whether v's gradient slot already
 * holds a contribution: the first writer overwrites, later ones add.
 */
static clunet_status backward_node(cn_exec *e, const cn_node *n, char *ready)
{
    const cn_graph *g = e->g;
    int a = n->in[0], b = n->in[1];
    int ga = needs_grad(g, a), gb = needs_grad(g, b);
    cn_tensor x = cn_exec_value(e, a), y = cn_exec_value(e, n->out), dy = value_grad(e, n->out);
    cn_tensor dx = ga ? value_grad(e, a) : (cn_tensor){0};
    cn_tensor x1 = b >= 0 ? cn_exec_value(e, b) : (cn_tensor){0};
    cn_tensor dx1 = gb ? value_grad(e, b) : (cn_tensor){0};

    /* Ops with one accumulate flag for two inputs: make both agree by zeroing. */
    int acc = ga && ready[a];
    if (gb && ready[b] != acc) {
        if (ga && !ready[a]) CN_TRY(zero_grad(e, a));
        if (gb && !ready[b]) CN_TRY(zero_grad(e, b));
        acc = 1;
    }
    clunet_status st = CLUNET_OK;
    switch (n->op) {
    case CN_OP_CONV: {
        cn_conv2d_params p = conv_params(g, n);
        cn_tensor w = cn_exec_param(e, n->param[0]), dw = cn_exec_param_grad(e, n->param[0]);
        cn_tensor db = n->param[1] >= 0 ? cn_exec_param_grad(e, n->param[1]) : (cn_tensor){0};
        cn_tensor work = vec(e->work, 0, e->work_floats);
        st = cn_conv2d_backward(e->ctx, &p, &x, &w, &dy, ga ? &dx : NULL, acc, &dw, n->param[1] >= 0 ? &db : NULL,
                                &work);
        break;
    }
    case CN_OP_BN: st = cn_batchnorm_backward(e->ctx, &e->bn[n - g->nodes], &x, &dy, &dx, acc); break;
    case CN_OP_SWISH: st = cn_activation_backward(e->ctx, CN_ACT_SWISH, &x, &y, &dy, &dx, acc); break;
    case CN_OP_RELU: st = cn_activation_backward(e->ctx, CN_ACT_RELU, &x, &y, &dy, &dx, acc); break;
    case CN_OP_SIGMOID: st = cn_activation_backward(e->ctx, CN_ACT_SIGMOID, &x, &y, &dy, &dx, acc); break;
    case CN_OP_AVGPOOL: st = cn_avgpool_backward(e->ctx, &dy, &dx, acc); break;
    case CN_OP_CHSCALE: st = cn_chscale_backward(e->ctx, &x, &x1, &dy, &dx, &dx1, acc); break;
    case CN_OP_ADD: {
        cn_drop d = drop_of(e, n);
        st = cn_add_backward(e->ctx, &dy, &dx, &dx1, d.keep < 1.0f ? &d : NULL, acc);
        break;
    }
    case CN_OP_UPCAT: st = cn_upcat_backward(e->ctx, &dy, &dx, gb ? &dx1 : NULL, acc); break;
    case CN_OP_INPUT: break;
    }
    if (ga) ready[a] = 1;
    if (gb) ready[b] = 1;
    return st;
}

/* The backward of forward_fused: the input's gradient from the activation's. */
static clunet_status backward_fused(cn_exec *e, int i, char *ready)
{
    const cn_node *n = &e->g->nodes[i], *a = &e->g->nodes[i + 1];
    int x = n->in[0];
    cn_tensor xv = cn_exec_value(e, x), dz = value_grad(e, a->out), dy = value_grad(e, n->out), dx = value_grad(e, x);
    CN_TRY(cn_batchnorm_act_backward(e->ctx, &e->bn[i], fused_act(a), &xv, &dz, &dy, &dx, ready[x]));
    ready[x] = 1;
    return CLUNET_OK;
}

clunet_status cn_exec_backward(cn_exec *e)
{
    const cn_graph *g = e->g;
    if (!e->training) return cn_fail(CLUNET_ERR_INTERNAL, "backward on a graph allocated for inference");
    char *ready = calloc((size_t)g->value_count, 1);
    if (!ready) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    clunet_status st =
        cn_buffer_fill_float(e->ctx, e->grads, 0, g->trainable_floats * sizeof(float), 0.0f);
    for (int i = g->node_count - 1; i >= 0 && st == CLUNET_OK; i--) {
        if (i > 0 && fused_with_next(g, i - 1)) continue; /* the activation of a pair: done with its batch norm */
        st = fused_with_next(g, i) ? backward_fused(e, i, ready) : backward_node(e, &g->nodes[i], ready);
        if (st != CLUNET_OK)
            st = cn_fail(st, "backward, layer %d (%s): %s", i, g->nodes[i].label, clunet_last_error());
    }
    free(ready);
    return st;
}

clunet_status cn_exec_adam(cn_exec *e)
{
    if (!e->training) return cn_fail(CLUNET_ERR_INTERNAL, "Adam on a graph allocated for inference");
    size_t n = e->g->trainable_floats;
    cn_tensor p = vec(e->params, 0, n), g = vec(e->grads, 0, n), m = vec(e->adam_m, 0, n), v = vec(e->adam_v, 0, n);
    e->step++;
    return cn_adam_step(e->ctx, &e->adam, e->step, &p, &g, &m, &v, n);
}

clunet_status cn_exec_ema_enable(cn_exec *e, float decay)
{
    if (e->training != CN_EXEC_TRAINING_EMA)
        return cn_fail(CLUNET_ERR_INTERNAL, "a weight average on a graph not planned with one");
    if (!(decay > 0.0f && decay < 1.0f)) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--ema %g: must be in (0, 1)", decay);
    if (e->ema_params) return cn_fail(CLUNET_ERR_INTERNAL, "the weight average is already enabled");
    CN_TRY(alloc_floats(e, e->g->trainable_floats, &e->ema_params));
    CN_TRY(alloc_floats(e, e->g->state_floats, &e->ema_state));
    e->ema_decay = decay;
    return CLUNET_OK;
}

/* dst = src over `floats` (once per run: through the host). */
static clunet_status copy_floats(cn_exec *e, cl_mem dst, cl_mem src, size_t floats)
{
    if (!floats) return CLUNET_OK;
    float *h = malloc(floats * sizeof *h);
    if (!h) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    clunet_status st = cn_buffer_read(e->ctx, src, 0, floats * sizeof *h, h);
    if (!st) st = cn_buffer_write(e->ctx, dst, 0, floats * sizeof *h, h);
    free(h);
    return st;
}

clunet_status cn_exec_ema_reset(cn_exec *e)
{
    if (!e->ema_params) return CLUNET_OK;
    CN_TRY(copy_floats(e, e->ema_params, e->params, e->g->trainable_floats));
    return copy_floats(e, e->ema_state, e->state, e->g->state_floats);
}

clunet_status cn_exec_ema_update(cn_exec *e)
{
    if (!e->ema_params) return CLUNET_OK;
    float d = fminf(e->ema_decay, (1.0f + (float)e->step) / (10.0f + (float)e->step));
    size_t P = e->g->trainable_floats, S = e->g->state_floats;
    cn_tensor avg = vec(e->ema_params, 0, P), p = vec(e->params, 0, P);
    CN_TRY(cn_ema_update(e->ctx, d, &avg, &p, P));
    cn_tensor savg = vec(e->ema_state, 0, S), s = vec(e->state, 0, S);
    return cn_ema_update(e->ctx, d, &savg, &s, S);
}

void cn_exec_ema_swap(cn_exec *e)
{
    if (!e->ema_params) return;
    cl_mem t = e->params;
    e->params = e->ema_params, e->ema_params = t;
    t = e->state;
    e->state = e->ema_state, e->ema_state = t;
}

clunet_status cn_exec_read_loss(cn_exec *e, float out[3])
{
    return cn_buffer_read(e->ctx, e->loss_out, 0, 3 * sizeof(float), out);
}

clunet_status cn_exec_metrics_reset(cn_exec *e)
{
    /* Zero bits are zero for uint32 and float alike. */
    CN_TRY(cn_buffer_fill_float(e->ctx, e->metric_counts, 0, 4 * sizeof(uint32_t), 0.0f));
    return cn_buffer_fill_float(e->ctx, e->metric_hist, 0, 2 * CN_EXEC_BINS * sizeof(uint32_t), 0.0f);
}

clunet_status cn_exec_metrics(cn_exec *e, float threshold)
{
    int out = e->g->output;
    cn_shape s = e->g->values[out].shape;
    cn_tensor z = cn_exec_value(e, out), y = view(e->labels, 0, s), m = view(e->mask, 0, s);
    cn_tensor counts = vec(e->metric_counts, 0, 4), hist = vec(e->metric_hist, 0, 2 * CN_EXEC_BINS);
    CN_TRY(cn_metrics_counts(e->ctx, &z, 1, &y, &m, threshold, &counts));
    return cn_metrics_histogram(e->ctx, &z, 1, &y, &m, CN_EXEC_BINS, &hist);
}

clunet_status cn_exec_metrics_read(cn_exec *e, uint32_t counts[4], uint32_t *hist)
{
    CN_TRY(cn_buffer_read(e->ctx, e->metric_counts, 0, 4 * sizeof(uint32_t), counts));
    return cn_buffer_read(e->ctx, e->metric_hist, 0, 2 * CN_EXEC_BINS * sizeof(uint32_t), hist);
}
