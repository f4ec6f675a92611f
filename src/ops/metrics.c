/*
 * metrics.c - confusion counts and probability histograms on the device
 * (cl/metrics.cl), and the ROC AUC the host computes from a histogram.
 */
#include <math.h>

#include "ops/pointwise.h"

#define METRICS_GROUP 256
#define METRICS_MAX_GROUPS 1024

static clunet_status check_inputs(const char *op, const cn_tensor *z, const cn_tensor *y, const cn_tensor *mask)
{
    CN_TRY(cn_pw_check_like(op, "z", z, z));
    CN_TRY(cn_pw_check_like(op, "y", y, z));
    if (mask) CN_TRY(cn_pw_check_like(op, "mask", mask, z));
    return CLUNET_OK;
}

/* Sets (z, z_off, y, y_off, mask, mask_off, has_mask, logits); without a mask z stands in, unread. */
static clunet_status set_inputs(cl_kernel k, const cn_tensor *z, int logits, const cn_tensor *y,
                                const cn_tensor *mask)
{
    CN_TRY(cn_arg_view(k, 0, z));
    CN_TRY(cn_arg_view(k, 2, y));
    CN_TRY(CN_ARG_MEM(k, 4, (mask ? mask : z)->buf));
    CN_TRY(CN_ARG_INT(k, 5, mask ? mask->offset : 0));
    CN_TRY(CN_ARG_INT(k, 6, mask != NULL));
    return CN_ARG_INT(k, 7, logits != 0);
}

/* Work-groups stride over the pixels; a bounded grid keeps the per-group flush of counters cheap. */
static clunet_status launch_strided(clunet_context *ctx, cl_kernel k, size_t count)
{
    size_t group = cn_pw_group_size(ctx, k, METRICS_GROUP);
    size_t groups = (count + group - 1) / group;
    if (groups > METRICS_MAX_GROUPS) groups = METRICS_MAX_GROUPS;
    size_t global = groups * group;
    return cn_launch(ctx, k, 1, &global, &group);
}

clunet_status cn_metrics_counts(clunet_context *ctx, const cn_tensor *z, int logits, const cn_tensor *y,
                                const cn_tensor *mask, float threshold, const cn_tensor *counts)
{
    // z, y, mask are (N,1,H,W); counts is 4 uint32
    const char *op = "metrics_counts";
    CN_TRY(check_inputs(op, z, y, mask));
    CN_TRY(cn_pw_check(op, "counts", counts, 4));
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "metrics.cl", "metrics_counts", NULL, &k));
    CN_TRY(set_inputs(k, z, logits, y, mask));
    CN_TRY(CN_ARG_FLOAT(k, 8, threshold));
    CN_TRY(cn_arg_view(k, 9, counts));
    CN_TRY(CN_ARG_INT(k, 11, cn_tensor_count(z)));
    return launch_strided(ctx, k, cn_tensor_count(z));
}

clunet_status cn_metrics_histogram(clunet_context *ctx, const cn_tensor *z, int logits, const cn_tensor *y,
                                   const cn_tensor *mask, int bins, const cn_tensor *hist)
{
    // z, y, mask are (N,1,H,W); hist is 2 * bins uint32
    const char *op = "metrics_histogram";
    CN_TRY(check_inputs(op, z, y, mask));
    // Both classes' bins live in local memory; keep to half of it.
    size_t local_bytes = 2 * (size_t)(bins > 0 ? bins : 0) * sizeof(cl_uint);
    if (bins < 1 || local_bytes > ctx->info.local_mem_bytes / 2)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: %d bins do not fit this device's local memory", op, bins);
    CN_TRY(cn_pw_check(op, "hist", hist, 2 * (size_t)bins));
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "metrics.cl", "metrics_hist", NULL, &k));
    CN_TRY(set_inputs(k, z, logits, y, mask));
    CN_TRY(cn_arg_view(k, 8, hist));
    CN_TRY(CN_ARG_INT(k, 10, cn_tensor_count(z)));
    CN_TRY(CN_ARG_INT(k, 11, bins));
    CN_TRY(cn_arg(k, 12, local_bytes, NULL));
    return launch_strided(ctx, k, cn_tensor_count(z));
}

double cn_auc_from_histogram(const uint32_t *hist, int bins)
{
    const uint32_t *neg = hist, *pos = hist + bins;
    double npos = 0.0, nneg = 0.0;
    for (int b = 0; b < bins; b++) {
        npos += pos[b];
        nneg += neg[b];
    }
    if (npos == 0.0 || nneg == 0.0) return NAN;
    // Each vessel pixel beats every background pixel in a lower bin and ties half of its own bin.
    double wins = 0.0, below = 0.0;
    for (int b = 0; b < bins; b++) {
        wins += pos[b] * (below + 0.5 * neg[b]);
        below += neg[b];
    }
    return wins / (npos * nneg);
}
