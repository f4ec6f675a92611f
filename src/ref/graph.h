/* graph.h - the reference training step of a whole cn_graph, in double (see graph.c). */
#ifndef CLUNET_REF_GRAPH_H
#define CLUNET_REF_GRAPH_H

#include "graph/graph.h"

typedef struct cn_ref_loss {
    double alpha, gamma, eps, smooth, lambda; /* as cn_ref_focal_dice */
} cn_ref_loss;

/*
 * A device's ReLU decisions, for the reference to follow where its own input is
 * within `tie` of zero: a float32 sum lands on either side of zero there, and
 * behind a batch norm one such flip moves the gradients upstream by up to 1e-2
 * (measured at 64x64), far above the rounding the comparison is about. Where the
 * input is further from zero the reference keeps its own branch, so a wrong
 * ReLU on the device still shows.
 */
typedef struct cn_ref_branches {
    const float *const *relu_out; /* per value id: the device's output of the ReLU producing it, or NULL */
    double tie;                   /* e.g. 1e-4 for inputs of order 1 */
    int followed;                 /* out: inputs where the device's branch was taken against the reference's own */
} cn_ref_branches;

/*
 * Forward in training mode (batch statistics; `state`, the BN running
 * statistics, is updated), focal Dice loss, backward. Writes the logits
 * (N,1,H,W), loss_out[3] = {total, focal, dice}, and the gradient of every
 * trainable parameter at its offset in param_grads (trainable_floats long).
 * mask may be NULL. With float_rounding, every value and value gradient is
 * rounded to float after each op: comparing that run with the exact one
 * measures how much float32 alone moves each result (the conditioning that a
 * device's error is judged against). branches may be NULL (cn_ref_branches above).
 * Residual adds with a drop draw their stochastic depth as the executor does
 * with drop_seed at Adam step `step`. Returns 0 when out of memory.
 */
int cn_ref_graph_step(const cn_graph *g, const double *params, double *state, const double *images,
                      const double *labels, const double *mask, const cn_ref_loss *loss, double *logits,
                      double *loss_out, double *param_grads, int float_rounding, cn_ref_branches *branches,
                      uint64_t drop_seed, int step);

/*
 * The forward in inference mode (running statistics from `state`, nothing
 * dropped) into logits (N,1,H,W). Returns 0 when out of memory.
 */
int cn_ref_graph_infer(const cn_graph *g, const double *params, const double *state, const double *images,
                       double *logits);

#endif
