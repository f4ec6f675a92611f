/*
 * pointwise.h - plain-C references, in double, for every non-convolution op:
 * batch norm, activations, squeeze-excitation pieces, residual add, upsample-
 * concat, the focal Dice loss, Adam and the segmentation metrics.
 *
 * Straightforward loops, no OpenCL, no code shared with src/ops: these are the
 * truth that tests/ops compares the kernels against. Shapes are (N,C,H,W) in
 * row-major order. Backwards overwrite their outputs (the tests add whatever
 * the device op accumulates onto).
 */
#ifndef CLUNET_REF_POINTWISE_H
#define CLUNET_REF_POINTWISE_H

#include <stddef.h>
#include <stdint.h>

/* ---- batch norm --------------------------------------------------------- */

/* Training mode: batch statistics; writes y, the batch mean and the biased variance per channel. */
void cn_ref_batchnorm_forward_train(const double *x, int n, int c, int h, int w, const double *gamma,
                                    const double *beta, double eps, double *y, double *mean, double *var);

/* running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance. */
void cn_ref_batchnorm_running_update(const double *mean, const double *var, int c, size_t count, double momentum,
                                     double *running_mean, double *running_var);

/* Inference mode: normalises with the running statistics. */
void cn_ref_batchnorm_forward_eval(const double *x, int n, int c, int h, int w, const double *gamma,
                                   const double *beta, const double *running_mean, const double *running_var,
                                   double eps, double *y);

/* Backward of the training-mode forward: dx, dgamma, dbeta. */
void cn_ref_batchnorm_backward(const double *x, const double *dy, int n, int c, int h, int w,
                               const double *gamma, double eps, double *dx, double *dgamma, double *dbeta);

/* ---- activations (count elements) --------------------------------------- */

void cn_ref_swish_forward(const double *x, double *y, size_t count);
void cn_ref_swish_backward(const double *x, const double *dy, double *dx, size_t count);
void cn_ref_sigmoid_forward(const double *x, double *y, size_t count);
/* Takes the forward's output y. */
void cn_ref_sigmoid_backward(const double *y, const double *dy, double *dx, size_t count);
void cn_ref_relu_forward(const double *x, double *y, size_t count);
void cn_ref_relu_backward(const double *x, const double *dy, double *dx, size_t count);

/* ---- squeeze-excitation pieces ------------------------------------------ */

/* (N,C,H,W) -> (N,C,1,1) mean over H,W. */
void cn_ref_avgpool_forward(const double *x, int n, int c, int h, int w, double *y);
void cn_ref_avgpool_backward(const double *dy, int n, int c, int h, int w, double *dx);
/* y = x * s[n,c] broadcast over H,W. */
void cn_ref_chscale_forward(const double *x, const double *s, int n, int c, int h, int w, double *y);
void cn_ref_chscale_backward(const double *x, const double *s, const double *dy, int n, int c, int h, int w,
                             double *dx, double *ds);

/* ---- residual add --------------------------------------------------------- */

/*
 * Stochastic depth: whether sample n's branch is kept, with probability keep
 * in (0, 1], drawn by a hash of (key, n) (the kernel's drop_scale).
 */
int cn_ref_drop_kept(uint32_t key, int n, double keep);

/* y = a * m[n] + b over n samples of per_sample values; m[n] = 1/keep if kept, else 0 (keep 1: always 1). */
void cn_ref_add_forward(const double *a, const double *b, double *y, int n, size_t per_sample, double keep,
                        uint32_t key);
/* da = dy * m[n], db = dy. */
void cn_ref_add_backward(const double *dy, double *da, double *db, int n, size_t per_sample, double keep,
                         uint32_t key);

/* ---- upsample-concat ------------------------------------------------------ */

/* x (N,C1,H,W), skip (N,C2,2H,2W) or NULL with c2 = 0 -> y (N,C1+C2,2H,2W). */
void cn_ref_upcat_forward(const double *x, const double *skip, int n, int c1, int c2, int h, int w, double *y);
void cn_ref_upcat_backward(const double *dy, int n, int c1, int c2, int h, int w, double *dx, double *dskip);

/* ---- focal Dice loss ------------------------------------------------------ */

/*
 * On logits z with labels y in {0,1} and an optional mask (NULL = every pixel):
 * returns the total loss, writes parts[0] = focal, parts[1] = dice and, when
 * dz is not NULL, dloss/dz. lambda < 0 means total = focal + dice.
 */
double cn_ref_focal_dice(const double *z, const double *y, const double *mask, size_t count, double alpha,
                         double gamma, double eps, double smooth, double lambda, double parts[2], double *dz);

/* ---- Adam ------------------------------------------------------------------ */

/* One step t (1-based) of Adam with bias correction and decoupled weight decay, in place. */
void cn_ref_adam(double *p, const double *g, double *m, double *v, size_t count, double lr, double beta1,
                 double beta2, double eps, double weight_decay, int t);

/* avg = decay * avg + (1 - decay) * x, in place. */
void cn_ref_ema(double *avg, const double *x, size_t count, double decay);

/* ---- metrics ---------------------------------------------------------------- */

/* p = sigmoid(z) when logits, else z. counts = {TP, FP, TN, FN} of p > threshold inside the mask. */
void cn_ref_metrics_counts(const double *z, int logits, const double *y, const double *mask, size_t count,
                           double threshold, uint64_t counts[4]);
/* hist[0..bins) background, hist[bins..2 bins) vessel; bin = min(bins-1, floor(p * bins)). */
void cn_ref_metrics_histogram(const double *z, int logits, const double *y, const double *mask, size_t count,
                              int bins, uint64_t *hist);
/* The exact rank-based ROC AUC (ties count one half) of scores inside the mask. */
double cn_ref_auc(const double *score, const double *y, const double *mask, size_t count);

#endif
