/*
 * graph.h - a static network graph: values (activation tensors) with shapes,
 * named parameters in flat buffers, and nodes in forward order.
 *
 * Built once for a (batch, height, width); every shape is resolved at build
 * time. Nothing here talks to OpenCL: the executor (graph/exec.c) allocates
 * buffers from the plan and enqueues the ops.
 */
#ifndef CLUNET_GRAPH_H
#define CLUNET_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "clunet.h"

typedef enum cn_op {
    CN_OP_INPUT,   /* the network's input image batch */
    CN_OP_CONV,    /* conv2d, dense or depthwise, optional bias */
    CN_OP_BN,      /* batch norm */
    CN_OP_SWISH,
    CN_OP_RELU,
    CN_OP_SIGMOID,
    CN_OP_AVGPOOL, /* global average pool to (N,C,1,1) */
    CN_OP_CHSCALE, /* in[0] * in[1] broadcast over H, W */
    CN_OP_ADD,     /* in[0] + in[1] */
    CN_OP_UPCAT,   /* concat(nearest 2x upsample of in[0], in[1]) along channels; in[1] may be absent */
} cn_op;

typedef struct cn_shape {
    int n, c, h, w;
} cn_shape;

static inline size_t cn_shape_count(cn_shape s) { return (size_t)s.n * s.c * s.h * s.w; }

/* A named slice of one of the flat parameter buffers. */
typedef struct cn_param {
    char name[96];   /* the checkpoint name, e.g. "encoder.1.0.block.0.0.weight" */
    int dims[4];     /* shape as stored: conv (cout, cin/groups, k, k); vectors (c) */
    int ndim;
    size_t offset;   /* in floats, into the trainable or the state buffer */
    size_t count;
    int trainable;   /* 1: weights/biases/BN affine (trained by Adam); 0: BN running statistics */
} cn_param;

typedef struct cn_conv_attr {
    int k, stride, pad_t, pad_l, pad_b, pad_r, groups, has_bias;
} cn_conv_attr;

typedef struct cn_node {
    cn_op op;
    int in[2];       /* value ids; -1 when absent */
    int out;         /* value id */
    cn_conv_attr conv;
    int param[4];    /* conv: weight, bias; bn: gamma, beta, running mean, running var; -1 when absent */
    char label[48];  /* where it sits, e.g. "encoder.2.0 expand" */
    float drop;      /* add: the probability that training drops in[0], the residual branch, per sample */
} cn_node;

typedef struct cn_value {
    cn_shape shape;
    int producer;    /* node id */
    int consumers;   /* how many node inputs read it */
} cn_value;

typedef struct cn_graph {
    cn_node *nodes;
    int node_count, node_cap;
    cn_value *values;
    int value_count, value_cap;
    cn_param *params;
    int param_count, param_cap;
    size_t trainable_floats; /* size of the flat trainable buffer (with alignment padding) */
    size_t state_floats;     /* size of the flat BN running-statistics buffer */
    size_t trainable_count;  /* trainable parameters, without padding */
    int input, output;       /* value ids of the image batch and the logits */
    double bn_eps, bn_momentum;
} cn_graph;

/* The batch-norm epsilon's upper bound (excluded; 0 is the lower): training takes and checkpoints hold no other. */
#define CN_BN_EPS_MAX 1.0

/* Settings of the seed network (PyTorch conventions by default). */
typedef struct cn_unet_config {
    int batch, height, width; /* height and width: multiples of 32 */
    int in_channels;          /* 3 */
    double bn_eps;            /* 1e-5; in (0, CN_BN_EPS_MAX) */
    double bn_momentum;       /* 0.1 */
    int same_padding;         /* 0: symmetric (k-1)/2 (PyTorch); 1: TensorFlow 'same' */
    int input_skip;           /* what the last decoder block (full resolution) concatenates: CN_INPUT_SKIP_* */
    double drop_connect;      /* stochastic depth of the encoder's residual blocks: block b of 16 drops its
                                 branch with probability drop_connect * b / 16 in training (EfficientNet's
                                 drop_connect_rate, 0.2 in Keras and torchvision; 0: none) */
} cn_unet_config;

/*
 * The encoder starts at half resolution, so the seed's last decoder block sees
 * nothing finer than its upsampled input. The variants give it the image, or
 * features of the image from two 3x3 conv-BN-swish layers at full resolution.
 */
enum { CN_INPUT_SKIP_OFF, CN_INPUT_SKIP_IMAGE, CN_INPUT_SKIP_CONV, CN_INPUT_SKIP_COUNT };

/* "off", "on" (the image) and "conv"; NULL / 0 for anything else. */
const char *cn_input_skip_name(int mode);
int cn_input_skip_from_name(const char *name, int *mode);

void cn_unet_default_config(cn_unet_config *cfg);

/* Builds the U-Net with an EfficientNet-B0 encoder for cfg's shape. */
clunet_status cn_unet_build(const cn_unet_config *cfg, cn_graph *g);

void cn_graph_free(cn_graph *g);

/* Forward multiply-adds x 2 of node i if it is a conv (else 0), and of every conv, in FLOP. */
double cn_node_forward_flops(const cn_graph *g, int i);
double cn_graph_forward_flops(const cn_graph *g);

/* The parameter named `name`, or -1. */
int cn_graph_find_param(const cn_graph *g, const char *name);

/* The stochastic-depth key of node `node` at training step `step` of a run seeded by `seed` (see cn_drop). */
uint32_t cn_graph_drop_key(uint64_t seed, int step, int node);

/* "conv", "batchnorm", ... */
const char *cn_op_name(cn_op op);

/* Fills the flat trainable buffer and the BN state buffer with initial values from `seed`. */
void cn_graph_init_params(const cn_graph *g, uint64_t seed, float *params, float *state);

/* Output shape of a conv on `in`. */
cn_shape cn_conv_out_shape(cn_shape in, int cout, const cn_conv_attr *a);

/* Builder primitives, used by unet.c; each returns the new id or -1 (error recorded). */
int cn_graph_add_value(cn_graph *g, cn_shape shape);
int cn_graph_add_param(cn_graph *g, const char *name, int ndim, const int *dims, int trainable);
int cn_graph_add_node(cn_graph *g, cn_op op, int in0, int in1, cn_shape out_shape, const char *label);

#endif
