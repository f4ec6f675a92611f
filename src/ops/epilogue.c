/*
 * epilogue.c - the arguments of a conv's epilogue (inference batch norm and
 * activation, cl/common.cl) and the pass that applies it where a kernel does
 * not (bn_epilogue in cl/batchnorm.cl).
 */
#include "ops/conv.h"

clunet_status cn_epilogue_args(cl_kernel k, cl_uint first, const cn_epilogue *ep)
{
    if (ep && ep->act != CN_EPI_NONE) {
        CN_TRY(cn_arg_view(k, first, &ep->fold));
        return CN_ARG_INT(k, first + 2, ep->act);
    }
    CN_TRY(cn_arg(k, first, sizeof(cl_mem), NULL)); /* never read */
    CN_TRY(CN_ARG_INT(k, first + 1, 0));
    return CN_ARG_INT(k, first + 2, CN_EPI_NONE);
}

clunet_status cn_epilogue_check(const cn_epilogue *ep, int channels)
{
    if (!ep || ep->act == CN_EPI_NONE) return CLUNET_OK;
    if ((unsigned)ep->act > CN_EPI_RELU) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "epilogue: unknown activation %d", (int)ep->act);
    if (!ep->fold.buf || cn_tensor_count(&ep->fold) < 2 * (size_t)channels)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "epilogue: %d output channels need a fold of %d floats", channels,
                       2 * channels);
    return CLUNET_OK;
}

clunet_status cn_epilogue_rows(clunet_context *ctx, const cn_epilogue *ep, cl_mem c, size_t off, int m, int n,
                               int ldc, size_t stride, int batch)
{
    if (!ep || ep->act == CN_EPI_NONE) return CLUNET_OK;
    CN_TRY(cn_epilogue_check(ep, m));
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "batchnorm.cl", "bn_epilogue", NULL, &k));
    CN_TRY(CN_ARG_MEM(k, 0, c));
    CN_TRY(CN_ARG_INT(k, 1, off));
    CN_TRY(CN_ARG_INT(k, 2, ldc));
    CN_TRY(CN_ARG_INT(k, 3, stride));
    CN_TRY(CN_ARG_INT(k, 4, n));
    CN_TRY(cn_epilogue_args(k, 5, ep));
    size_t global[3] = {((size_t)n + 15) / 16, (size_t)m, (size_t)batch};
    return cn_launch(ctx, k, 3, global, NULL);
}
