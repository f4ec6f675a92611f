/*
 * exec.h - runs a cn_graph on one device: allocates every buffer once from a
 * plan, then enqueues forward, loss, backward and Adam without allocating or
 * waiting on the host.
 *
 * Device memory: one flat buffer each for parameters, gradients, Adam's m and
 * v (llm.c style) and the BN running statistics; one arena for the forward
 * values (training keeps them for the backward, all but the output of a batch
 * norm fused with its activation, recomputed there; inference reuses a
 * value's slot once its last reader ran, and has no slot for what a conv's
 * epilogue applies: the batch norm after it and its activation, folded into
 * the conv's stores); one arena for value gradients,
 * whose slots are reused by liveness; scratch sized for the largest op.
 */
#ifndef CLUNET_GRAPH_EXEC_H
#define CLUNET_GRAPH_EXEC_H

#include "graph/graph.h"
#include "ops/conv.h"
#include "ops/pointwise.h"
#include "runtime/runtime.h"

typedef struct cn_exec {
    clunet_context *ctx;
    const cn_graph *g;

    cl_mem params, grads, adam_m, adam_v, state;
    cl_mem values;        /* forward arena */
    size_t *value_off;    /* per value, floats into `values` */
    cl_mem value_grads;   /* gradient arena */
    size_t *grad_off;     /* per value, floats into `value_grads` (SIZE_MAX: no gradient) */
    size_t grad_floats;
    cl_mem work;          /* scratch for convs, BN and the loss */
    size_t work_floats;
    cl_mem bn_saved;      /* per BN node: batch mean and inverse std */
    cn_batchnorm *bn;     /* per node (only BN nodes filled) */
    cn_focal_dice loss;
    cl_mem labels, mask;  /* (N,1,H,W) each */
    cl_mem loss_out;      /* CN_LOSS_FLOATS */
    cl_mem metric_counts; /* 4 uint32 */
    cl_mem metric_hist;   /* 2 * CN_EXEC_BINS uint32 */
    cn_adam adam;
    int step;             /* Adam steps taken */
    uint64_t drop_seed;   /* stochastic depth draws (nodes' drop) are a hash of it, the step and the node */
    cl_mem ema_params, ema_state; /* running averages of params and state (NULL: none; see cn_exec_ema_enable) */
    float ema_decay;
    int training;         /* allocated for training */
} cn_exec;

#define CN_EXEC_BINS 1000

/*
 * Plans and allocates everything for graph g on ctx. Without `training`, only
 * what inference needs: no gradients, no Adam state, forward values only.
 * `training` CN_EXEC_TRAINING_EMA also counts the running average that
 * cn_exec_ema_enable allocates next, so that a plan that cannot hold it fails
 * at once, before its kernels are timed.
 */
#define CN_EXEC_TRAINING_EMA 2
clunet_status cn_exec_create(clunet_context *ctx, const cn_graph *g, int training, cn_exec *e);
void cn_exec_destroy(cn_exec *e);

/* Total device bytes the plan needs, `training` as above (also without a device: for `info` and error hints). */
size_t cn_exec_planned_bytes(const cn_graph *g, int training);

/* Floats of the plan's forward-value arena and gradient arena (0 without training). */
void cn_exec_planned_arenas(const cn_graph *g, int training, size_t *values, size_t *gradients);

/*
 * How many nodes from node i run as one: 2 for a batch norm and its activation
 * (swish or ReLU, its only reader), which run fused both ways and cannot run
 * apart (the batch norm's output is not stored); else 1.
 */
int cn_exec_run_length(const cn_graph *g, int i);

/*
 * A view of value v in the forward arena. After an inference forward only the
 * input's and the output's hold their values; never a batch norm output that
 * cn_exec_run_length fuses, nor in inference the outputs of a conv and its
 * batch norm that the conv's epilogue applies (exec.c: conv_epilogue_run).
 */
cn_tensor cn_exec_value(const cn_exec *e, int v);

/* A view of parameter i in the parameter (or state) buffer, or in the gradient buffer. */
cn_tensor cn_exec_param(const cn_exec *e, int i);
cn_tensor cn_exec_param_grad(const cn_exec *e, int i);

/* Uploads a batch: images (N,C,H,W) normalised; labels and mask (N,1,H,W) in {0,1} (mask NULL = all ones). */
clunet_status cn_exec_set_batch(cn_exec *e, const float *images, const float *labels, const float *mask);

/* Forward pass; training = batch statistics (and running stats updated). */
clunet_status cn_exec_forward(cn_exec *e, int training);

/* Loss on the forward's logits (and, with backward, dloss/dlogits). */
clunet_status cn_exec_loss(cn_exec *e, int with_gradient);

/* Backward pass from dloss/dlogits into the parameter gradients (zeroed first). */
clunet_status cn_exec_backward(cn_exec *e);

/* One Adam step with e->adam over all parameters. */
clunet_status cn_exec_adam(cn_exec *e);

/*
 * A running average of the weights and BN statistics beside training
 * (Polyak averaging), for validation and checkpoints. enable allocates it (on
 * an exec created with CN_EXEC_TRAINING_EMA)
 * (filled by reset or by loading a checkpoint); reset copies the weights into
 * it; update, after each Adam step t, sets avg = d * avg + (1 - d) * weights
 * with d = min(decay, (1 + t) / (10 + t)), so that the first steps, far from
 * where training ends, fade fast; swap exchanges it with the weights, so that
 * the same forward runs on the average.
 */
clunet_status cn_exec_ema_enable(cn_exec *e, float decay);
clunet_status cn_exec_ema_reset(cn_exec *e);
clunet_status cn_exec_ema_update(cn_exec *e);
void cn_exec_ema_swap(cn_exec *e);

/* Reads the loss values (total, focal, dice) computed by the last cn_exec_loss. */
clunet_status cn_exec_read_loss(cn_exec *e, float out[3]);

/* Accumulates confusion counts (threshold) and the probability histogram of the last forward. */
clunet_status cn_exec_metrics(cn_exec *e, float threshold);

/* Zeroes the metric accumulators. */
clunet_status cn_exec_metrics_reset(cn_exec *e);

/* Reads counts[4] (TP, FP, TN, FN) and hist[2 * CN_EXEC_BINS]. */
clunet_status cn_exec_metrics_read(cn_exec *e, uint32_t counts[4], uint32_t *hist);

#endif
