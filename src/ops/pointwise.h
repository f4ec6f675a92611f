/*
 * pointwise.h - host side of every non-convolution op: batch norm, activations,
 * squeeze-excitation pieces, residual add, upsample-concat, the focal Dice loss,
 * Adam and the segmentation metrics.
 *
 * Each call checks shapes, sets arguments and enqueues; none waits or
 * allocates. Ops that reduce take a caller-owned `work` tensor sized by their
 * *_work_floats() function. Every reduction is deterministic (fixed-order
 * trees, no float atomics): the same input gives bitwise the same output on a
 * device. Conventions:
 *   - tensors are (N,C,H,W) views; per-channel vectors hold C floats;
 *   - a backward writes its input gradients, or adds into them when
 *     `accumulate` is set (for a tensor that feeds several consumers);
 *   - parameter gradients (dgamma, dbeta) always accumulate: zeroing is explicit.
 */
#ifndef CLUNET_OPS_POINTWISE_H
#define CLUNET_OPS_POINTWISE_H

#include <stdint.h>

#include "ops/conv.h"
#include "runtime/runtime.h"

/* ---- shared launch helpers (elementwise.c) ------------------------------ */

/* The largest power of two <= want that the device and kernel `k` accept as a work-group size. */
size_t cn_pw_group_size(clunet_context *ctx, cl_kernel k, size_t want);

/*
 * For kernels of CN_SPAN (cl/common.cl): sets their (count, span) arguments
 * at `first` and enqueues an item per span: 4096 floats on CPUs, in float16
 * vectors (PoCL does not vectorise a branch or a division across items), 1
 * on GPUs.
 */
clunet_status cn_pw_launch_spans(clunet_context *ctx, cl_kernel k, cl_uint first, size_t count);

/* Fails with "OP: NAME holds X floats, expected Y" unless t is non-NULL with a buffer and `count` elements. */
clunet_status cn_pw_check(const char *op, const char *name, const cn_tensor *t, size_t count);

/* The same, and t's shape must be (n,c,h,w) exactly. */
clunet_status cn_pw_check_shape(const char *op, const char *name, const cn_tensor *t, int n, int c, int h, int w);

/* The same with like's shape (like already checked; pass t itself to check only t). */
clunet_status cn_pw_check_like(const char *op, const char *name, const cn_tensor *t, const cn_tensor *like);

/* ---- batch norm ----------------------------------------------------------- */

typedef struct cn_batchnorm {
    float eps;                           /* e.g. 1e-3, as Keras' EfficientNet */
    float momentum;                      /* weight of the batch: running = (1-m) running + m batch */
    cn_tensor gamma, beta;               /* C floats each, in the parameter buffer */
    cn_tensor dgamma, dbeta;             /* C floats each, in the gradient buffer (accumulated) */
    cn_tensor running_mean, running_var; /* C floats each */
    cn_tensor saved;                     /* 2C floats: batch mean, then inverse std (forward -> backward) */
    cn_tensor work;                      /* cn_batchnorm_work_floats() floats of scratch */
} cn_batchnorm;

size_t cn_batchnorm_work_floats(int n, int c, int h, int w);

/*
 * x and y are (N,C,H,W) (may be the same view). Training: batch statistics
 * (biased variance), saved for the backward, running stats updated with the
 * unbiased variance. Inference: running statistics.
 */
clunet_status cn_batchnorm_forward(clunet_context *ctx, const cn_batchnorm *bn, int training, const cn_tensor *x,
                                   const cn_tensor *y);

typedef enum cn_activation { CN_ACT_SWISH, CN_ACT_SIGMOID, CN_ACT_RELU } cn_activation;

/*
 * The same followed by act (swish or ReLU) in one pass: z = act(y), with the
 * same bits as cn_activation_forward on y where H*W is a multiple of 16. y may
 * be NULL (then only z is written): cn_batchnorm_act_backward does without it.
 */
clunet_status cn_batchnorm_act_forward(clunet_context *ctx, const cn_batchnorm *bn, int training, cn_activation act,
                                       const cn_tensor *x, const cn_tensor *y, const cn_tensor *z);

/*
 * Inference's batch norm for a conv to apply as it stores its output (the
 * conv's output channels are this layer's C): the running statistics folded
 * into bn->saved (2C floats, which inference does not otherwise use), then
 * act; ep refers to them.
 */
clunet_status cn_batchnorm_fold(clunet_context *ctx, const cn_batchnorm *bn, cn_epilogue_act act, cn_epilogue *ep);

/* Backward of the training forward: dx (N,C,H,W), dgamma and dbeta accumulated. */
clunet_status cn_batchnorm_backward(clunet_context *ctx, const cn_batchnorm *bn, const cn_tensor *x,
                                    const cn_tensor *dy, const cn_tensor *dx, int accumulate);

/*
 * Backward of cn_batchnorm_act_forward in training, from dz (the gradient of
 * z = act(y)) and x alone: y is recomputed, so the forward need not have
 * written it; dx (N,C,H,W), dgamma and dbeta accumulated as above. With swish,
 * dy (as x; scratch, apart from dz and dx) receives the gradient of y between
 * the two passes; ReLU recomputes it instead (dy may be NULL).
 */
clunet_status cn_batchnorm_act_backward(clunet_context *ctx, const cn_batchnorm *bn, cn_activation act,
                                        const cn_tensor *x, const cn_tensor *dz, const cn_tensor *dy,
                                        const cn_tensor *dx, int accumulate);

/* ---- activations ---------------------------------------------------------- */

/* "swish", "sigmoid", "relu" */
const char *cn_activation_name(cn_activation act);

/* y = act(x), element-wise over equal counts (x and y may be the same view). */
clunet_status cn_activation_forward(clunet_context *ctx, cn_activation act, const cn_tensor *x, const cn_tensor *y);

/* Needs x for swish and ReLU, the forward's y for sigmoid; the other may be NULL. */
clunet_status cn_activation_backward(clunet_context *ctx, cn_activation act, const cn_tensor *x, const cn_tensor *y,
                                     const cn_tensor *dy, const cn_tensor *dx, int accumulate);

/* ---- squeeze-excitation pieces ----------------------------------------------- */

/* x (N,C,H,W) -> y (N,C,1,1), the mean over H,W. */
clunet_status cn_avgpool_forward(clunet_context *ctx, const cn_tensor *x, const cn_tensor *y);
/* dy (N,C,1,1) -> dx (N,C,H,W) = dy / (H W). */
clunet_status cn_avgpool_backward(clunet_context *ctx, const cn_tensor *dy, const cn_tensor *dx, int accumulate);

/* y = x * s, s (N,C,1,1) broadcast over H,W. */
clunet_status cn_chscale_forward(clunet_context *ctx, const cn_tensor *x, const cn_tensor *s, const cn_tensor *y);
/* dx = dy * s; ds = sum over H,W of dy * x (both follow `accumulate`). */
clunet_status cn_chscale_backward(clunet_context *ctx, const cn_tensor *x, const cn_tensor *s, const cn_tensor *dy,
                                  const cn_tensor *dx, const cn_tensor *ds, int accumulate);

/* ---- residual add -------------------------------------------------------------- */

/*
 * Stochastic depth (EfficientNet's drop connect) on the residual branch `a`:
 * in training, sample n's branch is kept with probability `keep` and then
 * scaled by 1/keep, else dropped. Whether it is kept is a hash of (key, n)
 * (drop_scale in cl/elementwise.cl; cn_ref_drop_kept is the reference), so
 * the backward repeats the forward's draw without storing it.
 */
typedef struct cn_drop {
    float keep;   /* in (0, 1] */
    uint32_t key; /* a fresh one per step and node */
} cn_drop;

/* y = a * m[n] + b, m[n] = 1 without drop (NULL), else 1/keep or 0. */
clunet_status cn_add_forward(clunet_context *ctx, const cn_tensor *a, const cn_tensor *b, const cn_tensor *y,
                             const cn_drop *drop);
/* da = dy * m[n] (the forward's m: the same drop), db = dy. */
clunet_status cn_add_backward(clunet_context *ctx, const cn_tensor *dy, const cn_tensor *da, const cn_tensor *db,
                              const cn_drop *drop, int accumulate);

/* ---- upsample-concat ----------------------------------------------------------- */

/* y (N,C1+C2,2H,2W) = concat(nearest2x(x (N,C1,H,W)), skip (N,C2,2H,2W)); skip NULL means C2 = 0. */
clunet_status cn_upcat_forward(clunet_context *ctx, const cn_tensor *x, const cn_tensor *skip, const cn_tensor *y);
/* dx = 2x2 sums of dy's first C1 channels; dskip (may be NULL without skip) = the rest. */
clunet_status cn_upcat_backward(clunet_context *ctx, const cn_tensor *dy, const cn_tensor *dx,
                                const cn_tensor *dskip, int accumulate);

/* ---- focal Dice loss ------------------------------------------------------------ */

/* out[]: total, focal, dice, then the sums m, m p y, m p, m y, m focal_term. */
#define CN_LOSS_FLOATS 8

typedef struct cn_focal_dice {
    float alpha;  /* focal weight of the vessel class (default 0.25) */
    float gamma;  /* focusing power, 0 or >= 1 (default 2) */
    float eps;    /* inside the focal logs: log(p + eps) (default 1e-7, Keras' epsilon) */
    float smooth; /* Dice smoothing in numerator and denominator (default 1e-5, segmentation_models) */
    float lambda; /* < 0: total = focal + dice (default); else lambda focal + (1 - lambda) dice */
} cn_focal_dice;

void cn_focal_dice_default(cn_focal_dice *loss);
size_t cn_focal_dice_work_floats(size_t pixels);

/*
 * z (N,1,H,W) logits, y labels in {0,1}, mask (NULL = all pixels) in {0,1}
 * excluding pixels from both terms. Writes out (CN_LOSS_FLOATS floats) and,
 * unless dz is NULL, dloss/dz for every pixel.
 */
clunet_status cn_focal_dice_loss(clunet_context *ctx, const cn_focal_dice *loss, const cn_tensor *z,
                                 const cn_tensor *y, const cn_tensor *mask, const cn_tensor *out,
                                 const cn_tensor *work, const cn_tensor *dz);

/* ---- Adam ---------------------------------------------------------------------------- */

typedef struct cn_adam {
    float lr;           /* default 1e-3 */
    float beta1, beta2; /* defaults 0.9, 0.999 */
    float eps;          /* default 1e-7 (Keras) */
    float weight_decay; /* decoupled (AdamW): p -= lr * wd * p; default 0 */
} cn_adam;

void cn_adam_default(cn_adam *adam);

/* Step t (1-based) over `count` floats of p, g, m, v, each a (buffer, offset) view. */
clunet_status cn_adam_step(clunet_context *ctx, const cn_adam *adam, int t, const cn_tensor *p,
                           const cn_tensor *g, const cn_tensor *m, const cn_tensor *v, size_t count);

/* avg = decay * avg + (1 - decay) * x over `count` floats (decay in [0,1)): a running average of the weights. */
clunet_status cn_ema_update(clunet_context *ctx, float decay, const cn_tensor *avg, const cn_tensor *x, size_t count);

/* ---- metrics ------------------------------------------------------------------------- */

/*
 * z holds logits (logits = 1, p = sigmoid(z)) or probabilities; y labels and
 * mask (NULL = all) in {0,1}, all of equal count. Counters are uint32 in a
 * cl_mem (the view's offset counts 4-byte elements) and accumulate.
 */
#define CN_METRIC_TP 0
#define CN_METRIC_FP 1
#define CN_METRIC_TN 2
#define CN_METRIC_FN 3

/* counts[4] += {TP, FP, TN, FN} of p > threshold. */
clunet_status cn_metrics_counts(clunet_context *ctx, const cn_tensor *z, int logits, const cn_tensor *y,
                                const cn_tensor *mask, float threshold, const cn_tensor *counts);

/* hist[0..bins) background, hist[bins..2 bins) vessel, bin = min(bins-1, floor(p bins)). */
clunet_status cn_metrics_histogram(clunet_context *ctx, const cn_tensor *z, int logits, const cn_tensor *y,
                                   const cn_tensor *mask, int bins, const cn_tensor *hist);

/*
 * ROC AUC from such a histogram: the probability that a vessel pixel scores a
 * higher bin than a background pixel, ties counting one half. NaN when a class
 * is empty. Differs from the exact AUC by at most the within-bin tie mass.
 */
double cn_auc_from_histogram(const uint32_t *hist, int bins);

#endif
