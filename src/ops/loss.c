/*
 * loss.c - the focal Dice loss and its gradient on logits (cl/loss.cl).
 *
 * Defaults follow segmentation_models' BinaryFocalLoss + DiceLoss: alpha 0.25,
 * gamma 2, eps 1e-7 (Keras' backend epsilon; here added inside the logs
 * rather than clipping p, so the loss stays smooth in z), Dice smoothing 1e-5.
 */
#include "ops/pointwise.h"

#define LOSS_SUMS 5
#define LOSS_CHUNK 4096
#define LOSS_GROUP 256
#define LOSS_SPAN 4096 /* loss_grad's pixels per item on CPUs (float16 vectors); 1 elsewhere */

void cn_focal_dice_default(cn_focal_dice *loss)
{
    loss->alpha = 0.25f;
    loss->gamma = 2.0f;
    loss->eps = 1e-7f;
    loss->smooth = 1e-5f;
    loss->lambda = -1.0f;
}

static size_t groups_for(size_t pixels) { return (pixels + LOSS_CHUNK - 1) / LOSS_CHUNK; }

size_t cn_focal_dice_work_floats(size_t pixels) { return LOSS_SUMS * groups_for(pixels); }

/* Sets arguments `first`.. to (z, z_off, y, y_off, mask, mask_off, has_mask); without a mask z stands in, unread. */
static clunet_status set_inputs(cl_kernel k, const cn_tensor *z, const cn_tensor *y, const cn_tensor *mask)
{
    CN_TRY(cn_arg_view(k, 0, z));
    CN_TRY(cn_arg_view(k, 2, y));
    CN_TRY(CN_ARG_MEM(k, 4, (mask ? mask : z)->buf));
    CN_TRY(CN_ARG_INT(k, 5, mask ? mask->offset : 0));
    return CN_ARG_INT(k, 6, mask != NULL);
}

clunet_status cn_focal_dice_loss(clunet_context *ctx, const cn_focal_dice *loss, const cn_tensor *z,
                                 const cn_tensor *y, const cn_tensor *mask, const cn_tensor *out,
                                 const cn_tensor *work, const cn_tensor *dz)
{
    // z, y, mask, dz are (N,1,H,W)
    const char *op = "focal_dice_loss";
    if (!loss) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: no settings", op);
    if (!(loss->gamma == 0.0f || loss->gamma >= 1.0f))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: gamma %g must be 0 or >= 1", op, (double)loss->gamma);
    if (!(loss->eps > 0.0f) || !(loss->smooth > 0.0f) || !(loss->alpha >= 0.0f && loss->alpha <= 1.0f) ||
        !(loss->lambda <= 1.0f))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: needs eps > 0, smooth > 0, alpha and lambda <= 1", op);
    CN_TRY(cn_pw_check_like(op, "z", z, z));
    if (z->c != 1) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: z has %d channels, expected 1", op, z->c);
    CN_TRY(cn_pw_check_like(op, "y", y, z));
    if (mask) CN_TRY(cn_pw_check_like(op, "mask", mask, z));
    if (dz) CN_TRY(cn_pw_check_like(op, "dz", dz, z));
    size_t count = cn_tensor_count(z), groups = groups_for(count);
    CN_TRY(cn_pw_check(op, "out", out, CN_LOSS_FLOATS));
    CN_TRY(cn_pw_check(op, "work", work, cn_focal_dice_work_floats(count)));
    float wf = loss->lambda < 0.0f ? 1.0f : loss->lambda, wd = loss->lambda < 0.0f ? 1.0f : 1.0f - loss->lambda;

    /* CPUs: an item per chunk with float16 vectors (no barriers); elsewhere a work-group per chunk */
    int cpu = cn_cpu_paths(ctx);
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "loss.cl", cpu ? "loss_partial_serial" : "loss_partial_group", NULL, &k));
    CN_TRY(set_inputs(k, z, y, mask));
    CN_TRY(cn_arg_view(k, 7, work));
    CN_TRY(CN_ARG_INT(k, 9, count));
    CN_TRY(CN_ARG_INT(k, 10, LOSS_CHUNK));
    CN_TRY(CN_ARG_FLOAT(k, 11, loss->alpha));
    CN_TRY(CN_ARG_FLOAT(k, 12, loss->gamma));
    CN_TRY(CN_ARG_FLOAT(k, 13, loss->eps));
    size_t group;
    if (cpu) {
        CN_TRY(cn_launch(ctx, k, 1, &groups, NULL));
    } else {
        group = cn_pw_group_size(ctx, k, count < LOSS_GROUP ? count : LOSS_GROUP);
        CN_TRY(cn_arg(k, 14, group * sizeof(float), NULL));
        size_t global = group * groups;
        CN_TRY(cn_launch(ctx, k, 1, &global, &group));
    }

    CN_TRY(cn_kernel(ctx, "loss.cl", "loss_final", NULL, &k));
    CN_TRY(cn_arg_view(k, 0, work));
    CN_TRY(CN_ARG_INT(k, 2, groups));
    CN_TRY(cn_arg_view(k, 3, out));
    CN_TRY(CN_ARG_FLOAT(k, 5, loss->smooth));
    CN_TRY(CN_ARG_FLOAT(k, 6, wf));
    CN_TRY(CN_ARG_FLOAT(k, 7, wd));
    group = cn_pw_group_size(ctx, k, groups < LOSS_GROUP ? groups : LOSS_GROUP);
    CN_TRY(cn_arg(k, 8, group * sizeof(float), NULL));
    CN_TRY(cn_launch(ctx, k, 1, &group, &group));
    if (!dz) return CLUNET_OK;

    CN_TRY(cn_kernel(ctx, "loss.cl", "loss_grad", NULL, &k));
    CN_TRY(set_inputs(k, z, y, mask));
    CN_TRY(cn_arg_view(k, 7, out));
    CN_TRY(cn_arg_view(k, 9, dz));
    int span = cpu ? LOSS_SPAN : 1;
    CN_TRY(CN_ARG_INT(k, 11, count));
    CN_TRY(CN_ARG_INT(k, 12, span));
    CN_TRY(CN_ARG_FLOAT(k, 13, loss->alpha));
    CN_TRY(CN_ARG_FLOAT(k, 14, loss->gamma));
    CN_TRY(CN_ARG_FLOAT(k, 15, loss->eps));
    CN_TRY(CN_ARG_FLOAT(k, 16, loss->smooth));
    CN_TRY(CN_ARG_FLOAT(k, 17, wf));
    CN_TRY(CN_ARG_FLOAT(k, 18, wd));
    size_t items = (count + span - 1) / span;
    return cn_launch(ctx, k, 1, &items, NULL);
}
