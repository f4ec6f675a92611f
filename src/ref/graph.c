/*
 * graph.c - a whole training step of a cn_graph in plain C and double
 * precision, built from the reference ops: the truth the executor's results
 * are compared against. Slow and simple by design: one array per value and per
 * gradient, gradients summed explicitly where a value feeds several nodes.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/conv.h"
#include "ref/graph.h"
#include "ref/pointwise.h"

static double *zeros(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

static void free_values(const cn_graph *g, double **v)
{
    for (int i = 0; v && i < g->value_count; i++) free(v[i]);
    free(v);
}

static void add_into(double *dst, const double *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* With float_rounding, every value and gradient is rounded to float after each op, as a device would. */
static void round_to_float(double *x, size_t n, int float_rounding)
{
    if (!float_rounding) return;
    for (size_t i = 0; i < n; i++) x[i] = (float)x[i];
}

static cn_ref_conv2d conv_shape(const cn_graph *g, const cn_node *nd)
{
    cn_shape in = g->values[nd->in[0]].shape;
    cn_ref_conv2d s = {in.n, in.c, in.h, in.w, g->values[nd->out].shape.c, nd->conv.k, nd->conv.stride,
                       nd->conv.pad_t, nd->conv.pad_l, nd->conv.pad_b, nd->conv.pad_r, nd->conv.groups};
    return s;
}

/* y = relu(x), but on the device's side of zero where x is a tie (backward reads y's sign). */
static void follow_branches(const double *x, double *y, size_t count, const float *device, double tie, int *followed)
{
    for (size_t i = 0; i < count; i++) {
        if (fabs(x[i]) >= tie || (device[i] > 0) == (y[i] > 0)) continue;
        y[i] = device[i] > 0 ? FLT_MIN : 0; /* FLT_MIN: positive, and kept by rounding to float */
        (*followed)++;
    }
}

static const double *param(const cn_graph *g, const double *params, const double *state, int i)
{
    if (i < 0) return NULL;
    return (g->params[i].trainable ? params : state) + g->params[i].offset;
}

/*
 * The forward over val (a buffer per value, the input's filled): training
 * mode (batch statistics, `state`'s running statistics updated, residual
 * drops drawn) or inference (running statistics, nothing dropped). Returns 0
 * when out of memory.
 */
static int forward(const cn_graph *g, const double *params, double *state, double **val, int training,
                   int float_rounding, cn_ref_branches *branches, uint64_t drop_seed, int step)
{
    for (int i = 0; i < g->node_count; i++) {
        const cn_node *nd = &g->nodes[i];
        cn_shape s = g->values[nd->in[0]].shape, o = g->values[nd->out].shape;
        const double *x = val[nd->in[0]], *x1 = nd->in[1] >= 0 ? val[nd->in[1]] : NULL;
        double *y = val[nd->out];
        size_t count = cn_shape_count(o);
        switch (nd->op) {
        case CN_OP_CONV: {
            cn_ref_conv2d cs = conv_shape(g, nd);
            cn_ref_conv2d_forward(&cs, x, param(g, params, state, nd->param[0]),
                                  param(g, params, state, nd->param[1]), y);
            break;
        }
        case CN_OP_BN: {
            const double *gamma = param(g, params, state, nd->param[0]), *beta = param(g, params, state, nd->param[1]);
            double *rmean = state + g->params[nd->param[2]].offset, *rvar = state + g->params[nd->param[3]].offset;
            if (!training) {
                cn_ref_batchnorm_forward_eval(x, s.n, s.c, s.h, s.w, gamma, beta, rmean, rvar, g->bn_eps, y);
                break;
            }
            double *mv = zeros(2 * (size_t)s.c);
            if (!mv) return 0;
            cn_ref_batchnorm_forward_train(x, s.n, s.c, s.h, s.w, gamma, beta, g->bn_eps, y, mv, mv + s.c);
            cn_ref_batchnorm_running_update(mv, mv + s.c, s.c, (size_t)s.n * s.h * s.w, g->bn_momentum, rmean, rvar);
            free(mv);
            break;
        }
        case CN_OP_SWISH: cn_ref_swish_forward(x, y, count); break;
        case CN_OP_RELU:
            cn_ref_relu_forward(x, y, count);
            if (branches && branches->relu_out[nd->out])
                follow_branches(x, y, count, branches->relu_out[nd->out], branches->tie, &branches->followed);
            break;
        case CN_OP_SIGMOID: cn_ref_sigmoid_forward(x, y, count); break;
        case CN_OP_AVGPOOL: cn_ref_avgpool_forward(x, s.n, s.c, s.h, s.w, y); break;
        case CN_OP_CHSCALE: cn_ref_chscale_forward(x, x1, s.n, s.c, s.h, s.w, y); break;
        case CN_OP_ADD:
            cn_ref_add_forward(x, x1, y, s.n, count / s.n, training ? 1.0f - nd->drop : 1.0f,
                               cn_graph_drop_key(drop_seed, step, i));
            break;
        case CN_OP_UPCAT:
            cn_ref_upcat_forward(x, x1, s.n, s.c, x1 ? g->values[nd->in[1]].shape.c : 0, s.h, s.w, y);
            break;
        case CN_OP_INPUT: break;
        }
        round_to_float(y, count, float_rounding);
    }
    return 1;
}

/* A buffer per value of g (NULL when out of memory), the input's holding images. */
static double **alloc_values(const cn_graph *g, const double *images)
{
    double **val = calloc((size_t)g->value_count, sizeof *val);
    for (int v = 0; val && v < g->value_count; v++)
        if (!(val[v] = zeros(cn_shape_count(g->values[v].shape)))) {
            free_values(g, val);
            return NULL;
        }
    if (val) memcpy(val[g->input], images, cn_shape_count(g->values[g->input].shape) * sizeof(double));
    return val;
}

int cn_ref_graph_infer(const cn_graph *g, const double *params, const double *state, const double *images,
                       double *logits)
{
    double **val = alloc_values(g, images);
    /* inference reads the state only: a copy keeps forward's signature honest */
    double *st = malloc((g->state_floats ? g->state_floats : 1) * sizeof *st);
    int ok = val && st;
    if (ok) {
        memcpy(st, state, g->state_floats * sizeof *st);
        ok = forward(g, params, st, val, 0, 0, NULL, 0, 0);
    }
    if (ok) memcpy(logits, val[g->output], cn_shape_count(g->values[g->output].shape) * sizeof(double));
    free_values(g, val);
    free(st);
    return ok;
}

int cn_ref_graph_step(const cn_graph *g, const double *params, double *state, const double *images,
                      const double *labels, const double *mask, const cn_ref_loss *loss, double *logits,
                      double *loss_out, double *param_grads, int float_rounding, cn_ref_branches *branches,
                      uint64_t drop_seed, int step)
{
    int nv = g->value_count, ok = 0;
    double **val = alloc_values(g, images), **grad = calloc((size_t)nv, sizeof *grad);
    if (!val || !grad) goto done;
    for (int v = 0; v < nv; v++)
        if (!(grad[v] = zeros(cn_shape_count(g->values[v].shape)))) goto done;

    if (!forward(g, params, state, val, 1, float_rounding, branches, drop_seed, step)) goto done;
    size_t pixels = cn_shape_count(g->values[g->output].shape);
    memcpy(logits, val[g->output], pixels * sizeof(double));
    double parts[2];
    loss_out[0] = cn_ref_focal_dice(val[g->output], labels, mask, pixels, loss->alpha, loss->gamma, loss->eps,
                                    loss->smooth, loss->lambda, parts, grad[g->output]);
    round_to_float(grad[g->output], pixels, float_rounding);
    loss_out[1] = parts[0];
    loss_out[2] = parts[1];

    /* backward: each node adds its inputs' gradients (temporaries keep the reference ops simple) */
    memset(param_grads, 0, g->trainable_floats * sizeof(double));
    for (int i = g->node_count - 1; i >= 0; i--) {
        const cn_node *nd = &g->nodes[i];
        int a = nd->in[0], b = nd->in[1];
        cn_shape s = g->values[a].shape;
        size_t na = cn_shape_count(s), nb = b >= 0 ? cn_shape_count(g->values[b].shape) : 0;
        double *ta = zeros(na), *tb = zeros(nb);
        if (!ta || !tb) {
            free(ta);
            free(tb);
            goto done;
        }
        const double *dy = grad[nd->out];
        size_t count = cn_shape_count(g->values[nd->out].shape);
        switch (nd->op) {
        case CN_OP_CONV: {
            cn_ref_conv2d cs = conv_shape(g, nd);
            double *db = nd->param[1] >= 0 ? param_grads + g->params[nd->param[1]].offset : NULL;
            cn_ref_conv2d_backward(&cs, val[a], param(g, params, state, nd->param[0]), dy, ta,
                                   param_grads + g->params[nd->param[0]].offset, db);
            break;
        }
        case CN_OP_BN: {
            size_t c = (size_t)s.c;
            double *dgb = zeros(2 * c);
            if (!dgb) {
                free(ta);
                free(tb);
                goto done;
            }
            cn_ref_batchnorm_backward(val[a], dy, s.n, s.c, s.h, s.w, param(g, params, state, nd->param[0]),
                                      g->bn_eps, ta, dgb, dgb + c);
            add_into(param_grads + g->params[nd->param[0]].offset, dgb, c);
            add_into(param_grads + g->params[nd->param[1]].offset, dgb + c, c);
            free(dgb);
            break;
        }
        case CN_OP_SWISH: cn_ref_swish_backward(val[a], dy, ta, count); break;
        case CN_OP_RELU: cn_ref_relu_backward(val[nd->out], dy, ta, count); break; /* y > 0 iff x > 0, but for ties */
        case CN_OP_SIGMOID: cn_ref_sigmoid_backward(val[nd->out], dy, ta, count); break;
        case CN_OP_AVGPOOL: cn_ref_avgpool_backward(dy, s.n, s.c, s.h, s.w, ta); break;
        case CN_OP_CHSCALE: cn_ref_chscale_backward(val[a], val[b], dy, s.n, s.c, s.h, s.w, ta, tb); break;
        case CN_OP_ADD:
            cn_ref_add_backward(dy, ta, tb, s.n, count / s.n, 1.0f - nd->drop, cn_graph_drop_key(drop_seed, step, i));
            break;
        case CN_OP_UPCAT:
            cn_ref_upcat_backward(dy, s.n, s.c, b >= 0 ? g->values[b].shape.c : 0, s.h, s.w, ta, b >= 0 ? tb : NULL);
            break;
        case CN_OP_INPUT: break;
        }
        add_into(grad[a], ta, na);
        round_to_float(grad[a], na, float_rounding);
        if (b >= 0) add_into(grad[b], tb, nb);
        if (b >= 0) round_to_float(grad[b], nb, float_rounding);
        free(ta);
        free(tb);
    }
    ok = 1;
done:
    free_values(g, val);
    free_values(g, grad);
    return ok;
}
