/* graph.c - the static graph's tables: values, parameters, nodes. */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "graph/graph.h"

/* Parameters start on 64-byte boundaries so kernels may use aligned vector loads. */
#define PARAM_ALIGN 16

static int grow(void **items, int *cap, int count, size_t size)
{
    if (count < *cap) return 1;
    int ncap = *cap ? *cap * 2 : 64;
    void *p = realloc(*items, (size_t)ncap * size);
    if (!p) return 0;
    *items = p;
    *cap = ncap;
    return 1;
}

int cn_graph_add_value(cn_graph *g, cn_shape shape)
{
    if (!grow((void **)&g->values, &g->value_cap, g->value_count, sizeof *g->values)) {
        cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory building the graph");
        return -1;
    }
    cn_value *v = &g->values[g->value_count];
    memset(v, 0, sizeof *v);
    v->shape = shape;
    v->producer = -1;
    return g->value_count++;
}

int cn_graph_add_param(cn_graph *g, const char *name, int ndim, const int *dims, int trainable)
{
    if (!grow((void **)&g->params, &g->param_cap, g->param_count, sizeof *g->params)) {
        cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory building the graph");
        return -1;
    }
    cn_param *p = &g->params[g->param_count];
    memset(p, 0, sizeof *p);
    strncpy(p->name, name, sizeof p->name - 1);
    p->ndim = ndim;
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->dims[i] = dims[i];
        p->count *= (size_t)dims[i];
    }
    p->trainable = trainable;
    size_t *end = trainable ? &g->trainable_floats : &g->state_floats;
    p->offset = *end;
    *end += (p->count + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN;
    if (trainable) g->trainable_count += p->count;
    return g->param_count++;
}

int cn_graph_add_node(cn_graph *g, cn_op op, int in0, int in1, cn_shape out_shape, const char *label)
{
    int out = cn_graph_add_value(g, out_shape);
    if (out < 0) return -1;
    if (!grow((void **)&g->nodes, &g->node_cap, g->node_count, sizeof *g->nodes)) {
        cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory building the graph");
        return -1;
    }
    cn_node *n = &g->nodes[g->node_count];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->in[0] = in0;
    n->in[1] = in1;
    n->out = out;
    for (int i = 0; i < 4; i++) n->param[i] = -1;
    strncpy(n->label, label, sizeof n->label - 1);
    if (in0 >= 0) g->values[in0].consumers++;
    if (in1 >= 0) g->values[in1].consumers++;
    g->values[out].producer = g->node_count;
    return g->node_count++;
}

void cn_graph_free(cn_graph *g)
{
    free(g->nodes);
    free(g->values);
    free(g->params);
    memset(g, 0, sizeof *g);
}

cn_shape cn_conv_out_shape(cn_shape in, int cout, const cn_conv_attr *a)
{
    cn_shape s = {in.n, cout, (in.h + a->pad_t + a->pad_b - a->k) / a->stride + 1,
                  (in.w + a->pad_l + a->pad_r - a->k) / a->stride + 1};
    return s;
}

double cn_node_forward_flops(const cn_graph *g, int i)
{
    const cn_node *n = &g->nodes[i];
    if (n->op != CN_OP_CONV) return 0;
    cn_shape in = g->values[n->in[0]].shape, out = g->values[n->out].shape;
    return 2.0 * cn_shape_count(out) * (in.c / n->conv.groups) * n->conv.k * n->conv.k;
}

double cn_graph_forward_flops(const cn_graph *g)
{
    double flops = 0;
    for (int i = 0; i < g->node_count; i++) flops += cn_node_forward_flops(g, i);
    return flops;
}

int cn_graph_find_param(const cn_graph *g, const char *name)
{
    for (int i = 0; i < g->param_count; i++)
        if (!strcmp(g->params[i].name, name)) return i;
    return -1;
}

uint32_t cn_graph_drop_key(uint64_t seed, int step, int node)
{
    /* splitmix64's finaliser over the three: every (step, node) its own stream */
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + (uint64_t)(uint32_t)step * 0xBF58476D1CE4E5B9ull +
                 (uint64_t)(uint32_t)node * 0x94D049BB133111EBull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

const char *cn_op_name(cn_op op)
{
    switch (op) {
    case CN_OP_INPUT: return "input";
    case CN_OP_CONV: return "conv";
    case CN_OP_BN: return "batchnorm";
    case CN_OP_SWISH: return "swish";
    case CN_OP_RELU: return "relu";
    case CN_OP_SIGMOID: return "sigmoid";
    case CN_OP_AVGPOOL: return "avgpool";
    case CN_OP_CHSCALE: return "chscale";
    case CN_OP_ADD: return "add";
    case CN_OP_UPCAT: return "upsample-concat";
    }
    return "?";
}
