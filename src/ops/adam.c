/*
 * adam.c - one Adam step over a flat parameter range (cl/adam.cl).
 *
 * The update is the paper's (and PyTorch's): p -= lr * mhat / (sqrt(vhat) + eps),
 * with mhat = m / (1 - beta1^t), vhat = v / (1 - beta2^t); eps defaults to
 * Keras' 1e-7. Weight decay is decoupled as in AdamW. cn_ema_update keeps
 * the running average of the weights beside it.
 */
#include <math.h>

#include "ops/pointwise.h"

void cn_adam_default(cn_adam *adam)
{
    adam->lr = 1e-3f;
    adam->beta1 = 0.9f;
    adam->beta2 = 0.999f;
    adam->eps = 1e-7f;
    adam->weight_decay = 0.0f;
}

clunet_status cn_adam_step(clunet_context *ctx, const cn_adam *adam, int t, const cn_tensor *p,
                           const cn_tensor *g, const cn_tensor *m, const cn_tensor *v, size_t count)
{
    // p, g, m, v are flat ranges of count floats
    const char *op = "adam";
    if (!adam) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: no settings", op);
    if (t < 1) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: step %d must be >= 1", op, t);
    if (!(adam->beta1 >= 0.0f && adam->beta1 < 1.0f && adam->beta2 >= 0.0f && adam->beta2 < 1.0f &&
          adam->eps > 0.0f && adam->lr >= 0.0f && adam->weight_decay >= 0.0f))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: needs betas in [0,1), eps > 0, lr and weight decay >= 0", op);
    // Views are flat ranges: only buffer, offset and count matter here.
    const cn_tensor *views[4] = {p, g, m, v};
    const char *names[4] = {"params", "grads", "m", "v"};
    for (int i = 0; i < 4; i++) {
        if (!views[i] || !views[i]->buf) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: %s is missing", op, names[i]);
        if (views[i]->offset + count > (size_t)INT32_MAX)
            return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: %s ends past 2^31 floats in its buffer", op, names[i]);
    }
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "adam.cl", "adam_step", NULL, &k));
    for (int i = 0; i < 4; i++) CN_TRY(cn_arg_view(k, 2 * i, views[i]));
    CN_TRY(CN_ARG_FLOAT(k, 10, adam->lr));
    CN_TRY(CN_ARG_FLOAT(k, 11, adam->beta1));
    CN_TRY(CN_ARG_FLOAT(k, 12, adam->beta2));
    CN_TRY(CN_ARG_FLOAT(k, 13, adam->eps));
    CN_TRY(CN_ARG_FLOAT(k, 14, adam->weight_decay));
    // Bias corrections computed in double, rounded to float once.
    CN_TRY(CN_ARG_FLOAT(k, 15, 1.0 - pow(adam->beta1, t)));
    CN_TRY(CN_ARG_FLOAT(k, 16, 1.0 - pow(adam->beta2, t)));
    return cn_pw_launch_spans(ctx, k, 8, count);
}

clunet_status cn_ema_update(clunet_context *ctx, float decay, const cn_tensor *avg, const cn_tensor *x, size_t count)
{
    // avg and x are flat ranges of count floats
    const char *op = "ema";
    if (!(decay >= 0.0f && decay < 1.0f)) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: decay %g must be in [0,1)", op, decay);
    if (!avg || !avg->buf || !x || !x->buf) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: a range is missing", op);
    if (avg->offset + count > (size_t)INT32_MAX || x->offset + count > (size_t)INT32_MAX)
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: a range ends past 2^31 floats in its buffer", op);
    if (count == 0) return CLUNET_OK;
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "adam.cl", "ema_update", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, avg));
    CN_TRY(cn_arg_view(k, 2, x));
    CN_TRY(CN_ARG_FLOAT(k, 6, decay));
    return cn_pw_launch_spans(ctx, k, 4, count);
}
