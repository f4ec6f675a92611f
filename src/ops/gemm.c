/*
 * gemm.c - matrix products for the conv ops: CLBlast, or the kernels of
 * cl/gemm.cl, whichever ran faster on this device when first measured.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv.h" /* first: it sets CL_TARGET_OPENCL_VERSION for the CL headers clblast_c.h includes */

#include <clblast_c.h>

const char *cn_gemm_impl_name(int impl)
{
    switch (impl) {
    case CN_GEMM_CLBLAST: return "clblast";
    case CN_GEMM_REGISTER: return "register";
    case CN_GEMM_LOCAL: return "local";
    default: return "unchosen";
    }
}

/* The own kernel family suited to this device. */
static int own_impl(const clunet_context *ctx)
{
    return cn_cpu_paths(ctx) ? CN_GEMM_REGISTER : CN_GEMM_LOCAL;
}

/* CLBlast's cache holds programs of every context it ran on (see clunet_context.release_library). */
static void clear_clblast(void) { CLBlastClearCache(); }

static clunet_status gemm_clblast(clunet_context *ctx, const cn_gemm_args *g)
{
    ctx->release_library = clear_clblast;
    CLBlastTranspose ta = g->ta ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = g->tb ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastStatusCode s;
    if (g->batch == 1)
        s = CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, g->m, g->n, g->k, g->alpha, g->a, g->a_off, g->lda, g->b,
                         g->b_off, g->ldb, g->beta, g->c, g->c_off, g->ldc, &ctx->queue, NULL);
    else
        s = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, g->m, g->n, g->k, g->alpha, g->a, g->a_off,
                                       g->lda, g->a_stride, g->b, g->b_off, g->ldb, g->b_stride, g->beta, g->c,
                                       g->c_off, g->ldc, g->c_stride, g->batch, &ctx->queue, NULL);
    if (s == CLBlastSuccess) return CLUNET_OK;
    /* CLBlast reuses OpenCL's codes above -1000 and numbers its own below */
    return cn_fail(s > -1000 ? cn_cl_status(s) : CLUNET_ERR_OPENCL, "CLBlastSgemm failed with status %d (m=%d n=%d k=%d)",
                   (int)s, g->m, g->n, g->k);
}

/* Sets the 12 arguments from `first` on: a, a_off, lda, a_stride, then b and c likewise. */
static clunet_status set_operands(cl_kernel k, cl_uint first, const cn_gemm_args *g)
{
    cl_uint i = first;
    CN_TRY(CN_ARG_MEM(k, i, g->a));
    CN_TRY(CN_ARG_INT(k, i + 1, g->a_off));
    CN_TRY(CN_ARG_INT(k, i + 2, g->lda));
    CN_TRY(CN_ARG_INT(k, i + 3, g->a_stride));
    CN_TRY(CN_ARG_MEM(k, i + 4, g->b));
    CN_TRY(CN_ARG_INT(k, i + 5, g->b_off));
    CN_TRY(CN_ARG_INT(k, i + 6, g->ldb));
    CN_TRY(CN_ARG_INT(k, i + 7, g->b_stride));
    CN_TRY(CN_ARG_MEM(k, i + 8, g->c));
    CN_TRY(CN_ARG_INT(k, i + 9, g->c_off));
    CN_TRY(CN_ARG_INT(k, i + 10, g->ldc));
    return CN_ARG_INT(k, i + 11, g->c_stride);
}

/* Sets arguments 0-4 every own kernel starts with: m, n, k, alpha, beta. */
static clunet_status set_sizes(cl_kernel k, const cn_gemm_args *g)
{
    CN_TRY(CN_ARG_INT(k, 0, g->m));
    CN_TRY(CN_ARG_INT(k, 1, g->n));
    CN_TRY(CN_ARG_INT(k, 2, g->k));
    CN_TRY(CN_ARG_FLOAT(k, 3, g->alpha));
    return CN_ARG_FLOAT(k, 4, g->beta);
}

static clunet_status gemm_local(clunet_context *ctx, const cn_gemm_args *g)
{
    /* work-groups of ts x ts, each work-item computing 4x4 outputs */
    size_t ts = ctx->info.max_work_group_size >= 256 ? 16 : ctx->info.max_work_group_size >= 64 ? 8 : 4;
    char options[32];
    snprintf(options, sizeof options, "-DGEMM_TS=%zu", ts);
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "gemm.cl", "gemm_tiled", options, &k));
    CN_TRY(set_sizes(k, g));
    CN_TRY(CN_ARG_INT(k, 5, g->ta));
    CN_TRY(CN_ARG_INT(k, 6, g->tb));
    CN_TRY(set_operands(k, 7, g));
    size_t tile = 4 * ts;
    size_t global[3] = {(g->n + tile - 1) / tile * ts, (g->m + tile - 1) / tile * ts, (size_t)g->batch};
    size_t local[3] = {ts, ts, 1};
    return cn_launch(ctx, k, 3, global, local);
}

/* Halves a block size (keeping it a multiple of `min`) until there are enough work-groups for every core. */
static int shrink_block(int block, int min, size_t others, int extent, unsigned cores)
{
    while (block > min && others * (size_t)((extent + block - 1) / block) < 8 * (size_t)cores) block /= 2;
    return block;
}

static clunet_status register_tiles(clunet_context *ctx);

/*
 * A product with one column of C (gemv: 16 rows of C per work-item) or with
 * K == 1 (gemm_k1: 16 columns of a row of C per work-item); see the kernels.
 * Their arguments 5 and 6 say how A and B are laid out.
 */
static clunet_status gemm_thin(clunet_context *ctx, const cn_gemm_args *g)
{
    int column = g->n == 1;
    cl_kernel k;
    CN_TRY(cn_kernel(ctx, "gemm.cl", column ? "gemv" : "gemm_k1", NULL, &k));
    CN_TRY(set_sizes(k, g));
    CN_TRY(CN_ARG_INT(k, 5, column ? g->ta : g->ta ? 1 : g->lda));
    CN_TRY(CN_ARG_INT(k, 6, column ? (g->tb ? 1 : g->ldb) : g->tb ? g->ldb : 1));
    CN_TRY(set_operands(k, 7, g));
    size_t global[3] = {column ? ((size_t)g->m + 15) / 16 : ((size_t)g->n + 15) / 16, column ? 1 : (size_t)g->m,
                        (size_t)g->batch};
    size_t local[3] = {1, 1, 1};
    return cn_launch(ctx, k, 3, global, local);
}

/* *fused: whether the kernel applied g->ep as it stored C (gemm_nn does; the others leave it to gemm_run). */
static clunet_status gemm_register(clunet_context *ctx, const cn_gemm_args *g, int *fused)
{
    *fused = 0;
    /*
     * The squeeze-excite convs on 1x1 maps: one column (y, dx) or a sum of one
     * term (dw), where gemm_nn's panels would use one lane of 32 and gemm_nt
     * one of 16.
     */
    if (g->n == 1 || g->k == 1) return gemm_thin(ctx, g);
    if (g->ta && g->tb) return gemm_local(ctx, g); /* unused by the convs: the generic kernel is enough */
    if (ctx->gemm_mr < 0 || ctx->gemm_nt < 0 || ctx->gemm_nt_packed < 0) CN_TRY(register_tiles(ctx));
    if (ctx->gemm_gp < 0) {
        /*
         * gemm_nn packs 4 panels of B at once where local memory holds them
         * (4 x 128 x 32 floats): each row of B is then read as one stream of
         * 512 bytes instead of 128. The data gradients of the 1x1 convs on
         * wide maps read 96-144 rows of dy 64 KB apart; there (4 x 256, Zen 4,
         * medians of 15 alternating pairs) 4 panels took 0.82-0.91x the time
         * of 1, and 0.98-1.02x on the deep convs' few panels: not worth timing.
         */
        static const int panels[] = {1, 4};
        int rule = ctx->info.local_mem_bytes >= 4 * 128 * 32 * sizeof(float) ? 4 : 1;
        CN_TRY(cn_tune_rule(ctx, "gemm_nn_panels", panels, 2, rule, &ctx->gemm_gp));
    }
    unsigned cores = ctx->info.compute_units ? ctx->info.compute_units : 1;
    cl_kernel k;
    size_t global[3], local[3] = {1, 1, 1};
    int panels = (g->n + 31) / 32;
    /* gemm_nn's rows per work-item; halving keeps them a multiple of the micro-tile: both are powers of two */
    int mb = shrink_block(64, ctx->gemm_mr, (size_t)g->batch * panels, g->m, cores);
    /*
     * Transposing B while packing it pays off only over many rows of A: >= 32
     * per work-item. With few columns (a weight gradient of few input
     * channels) mb shrinks to spread the work, and gemm_nt ran 2-4x faster.
     * Over 32 rows or more, a short K goes packed whatever the device
     * measured on its probe's long one (gemm_nt_packed): each of gemm_nt's
     * 4 x 4 dot products ends in a horizontal sum and a scattered store,
     * which a K of a few vectors does not pay for. Winograd F(4x4)'s weight
     * gradients at 4 x 256 on the Zen 4 (medians of 15 alternating pairs,
     * packed / gemm_nt): K = 32 0.47x the time, 64 0.60-0.69x, 128 0.86x,
     * 256 1.04-1.07x.
     */
    int packed = ctx->gemm_nt_packed || (g->k <= 128 && g->m >= 32);
    if (g->tb && (g->sum_batch || !(packed && mb >= 32))) {
        char opt[32];
        snprintf(opt, sizeof opt, "-DGEMM_NT=%d", ctx->gemm_nt);
        CN_TRY(cn_kernel(ctx, "gemm.cl", "gemm_nt", opt, &k));
        /*
         * Few columns (the weight gradient of a 1x1 conv with 16-32 inputs):
         * each work-item takes all of them, so that A's long rows (dy over
         * every pixel) are read from memory once, not once per column block
         * (b2 expand's dw, 96 x 16 over 65,536 pixels: 0.8x the time).
         */
        size_t cs = g->sum_batch ? 1 : (size_t)g->batch; /* C matrices: the launch's third dimension */
        int nb = g->n <= 32 ? (g->n + 3) / 4 * 4 : shrink_block(64, 4, cs * ((g->m + 63) / 64), g->n, cores);
        mb = shrink_block(64, 4, cs * ((g->n + nb - 1) / nb), g->m, cores);
        CN_TRY(CN_ARG_INT(k, 5, mb));
        CN_TRY(CN_ARG_INT(k, 6, nb));
        CN_TRY(set_operands(k, 7, g));
        CN_TRY(CN_ARG_INT(k, 19, g->sum_batch ? g->batch : 1));
        global[0] = (g->n + nb - 1) / nb;
        global[1] = (g->m + mb - 1) / mb;
    } else {
        const char *stream;
        CN_TRY(cn_stream_option(ctx, (size_t)g->batch * g->m * g->n * sizeof(float), &stream));
        char opt[80];
        snprintf(opt, sizeof opt, "-DGEMM_TA=%d -DGEMM_TB=%d -DGEMM_MR=%d -DGEMM_GP=%d%s", g->ta, g->tb, ctx->gemm_mr,
                 ctx->gemm_gp, stream);
        CN_TRY(cn_kernel(ctx, "gemm.cl", "gemm_nn", opt, &k));
        /* several 32-column panels per work-item when each carries under ~2 MFLOP */
        double panel_flops = 2.0 * mb * 32 * (g->k > 0 ? g->k : 1);
        int np = (int)(2e6 / panel_flops) + 1;
        size_t groups_wanted = 16 * (size_t)cores;
        size_t others = (size_t)g->batch * ((g->m + mb - 1) / mb);
        while (np > 1 && others * (size_t)((panels + np - 1) / np) < groups_wanted) np /= 2;
        CN_TRY(CN_ARG_INT(k, 5, mb));
        CN_TRY(CN_ARG_INT(k, 6, np));
        CN_TRY(set_operands(k, 7, g));
        CN_TRY(cn_epilogue_args(k, 19, g->ep));
        *fused = 1;
        global[0] = (panels + np - 1) / np;
        global[1] = (g->m + mb - 1) / mb;
    }
    CN_TRY(set_sizes(k, g));
    global[2] = g->sum_batch ? 1 : (size_t)g->batch;
    return cn_launch(ctx, k, 3, global, local);
}

/* The kernels index with int: refuse what would overflow it. */
static clunet_status check_args(const cn_gemm_args *g)
{
    if (g->m < 1 || g->n < 1 || g->k < 0 || g->batch < 1)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "gemm: bad sizes m=%d n=%d k=%d batch=%d", g->m, g->n, g->k,
                       g->batch);
    int ra = g->ta ? g->k : g->m, ca = g->ta ? g->m : g->k;
    int rb = g->tb ? g->n : g->k, cb = g->tb ? g->k : g->n;
    if (g->lda < ca || g->ldb < cb || g->ldc < g->n || g->lda < 1 || g->ldb < 1)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "gemm: leading dimension too small (lda=%d ldb=%d ldc=%d)", g->lda,
                       g->ldb, g->ldc);
    size_t last = (size_t)g->batch - 1;
    size_t end_a = g->a_off + last * g->a_stride + (size_t)ra * g->lda;
    size_t end_b = g->b_off + last * g->b_stride + (size_t)rb * g->ldb;
    size_t end_c = g->c_off + (g->sum_batch ? 0 : last * g->c_stride) + (size_t)g->m * g->ldc;
    if (end_a > INT_MAX || end_b > INT_MAX || end_c > INT_MAX)
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "gemm: operands beyond 2^31 floats (m=%d n=%d k=%d batch=%d)", g->m,
                       g->n, g->k, g->batch);
    if (g->sum_batch && g->ep)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "gemm: an epilogue on a sum over the batch is not supported");
    return cn_epilogue_check(g->ep, g->m);
}

/* Whether gemm_register sums g's batch itself (gemm_nt, which takes every sum_batch product of A * B^T). */
static int sums_batch(int impl, const cn_gemm_args *g)
{
    return impl == CN_GEMM_REGISTER && g->tb && !g->ta && g->n > 1 && g->k > 1;
}

static clunet_status gemm_run(clunet_context *ctx, int impl, const cn_gemm_args *g)
{
    if (g->sum_batch && g->batch > 1 && !sums_batch(impl, g)) { /* elsewhere one product after another into C */
        cn_gemm_args one = *g;
        one.batch = 1, one.sum_batch = 0;
        for (int i = 0; i < g->batch; i++, one.beta = 1.0f) {
            one.a_off = g->a_off + i * g->a_stride, one.b_off = g->b_off + i * g->b_stride;
            CN_TRY(gemm_run(ctx, impl, &one));
        }
        return CLUNET_OK;
    }
    int fused = 0;
    switch (impl) {
    case CN_GEMM_CLBLAST: CN_TRY(gemm_clblast(ctx, g)); break;
    case CN_GEMM_REGISTER: CN_TRY(gemm_register(ctx, g, &fused)); break;
    default: CN_TRY(gemm_local(ctx, g)); break;
    }
    return fused ? CLUNET_OK : cn_epilogue_rows(ctx, g->ep, g->c, g->c_off, g->m, g->n, g->ldc, g->c_stride, g->batch);
}

clunet_status cn_gemm(clunet_context *ctx, const cn_gemm_args *g)
{
    CN_TRY(check_args(g));
    if (ctx->gemm_impl < 0) CN_TRY(cn_gemm_choose(ctx));
    return gemm_run(ctx, ctx->gemm_impl, g);
}

/*
 * Products to time with: nn is a 3x3 conv, 64 -> 128 channels at 64x64 (the
 * middle of the U-Net's range); nt its weight gradient (dy times the columns
 * transposed). One set of buffers of ~12 MB serves both.
 */
typedef struct gemm_probe {
    cn_gemm_args nn, nt;
} gemm_probe;

static void probe_free(clunet_context *ctx, gemm_probe *p)
{
    if (p->nn.a) cn_buffer_free(ctx, p->nn.a);
    if (p->nn.b) cn_buffer_free(ctx, p->nn.b);
    if (p->nn.c) cn_buffer_free(ctx, p->nn.c);
    memset(p, 0, sizeof *p);
}

/* Allocated once, at the first timed run: nothing when the tuning file knows the answers. */
static clunet_status probe_alloc(clunet_context *ctx, gemm_probe *p)
{
    enum { M = 128, N = 4096, K = 576 };
    if (p->nn.a) return CLUNET_OK;
    cn_gemm_args *g = &p->nn;
    *g = (cn_gemm_args){.m = M, .n = N, .k = K, .alpha = 1.0f, .beta = 0.0f, .batch = 1, .lda = K, .ldb = N, .ldc = N};
    size_t a = (size_t)M * N * sizeof(float), b = (size_t)K * N * sizeof(float), c = a; /* A sized for nt's */
    clunet_status st = cn_buffer_alloc(ctx, a, &g->a);
    if (st == CLUNET_OK) st = cn_buffer_alloc(ctx, b, &g->b);
    if (st == CLUNET_OK) st = cn_buffer_alloc(ctx, c, &g->c);
    if (st == CLUNET_OK) st = cn_buffer_fill_float(ctx, g->a, 0, a, 0.5f);
    if (st == CLUNET_OK) st = cn_buffer_fill_float(ctx, g->b, 0, b, 0.25f);
    if (st != CLUNET_OK) {
        probe_free(ctx, p);
        return st;
    }
    /* dw (M, K) = dy (M, N) * columns (K, N)^T */
    p->nt = *g;
    p->nt.tb = 1, p->nt.n = K, p->nt.k = N, p->nt.lda = N, p->nt.ldb = N, p->nt.ldc = K;
    return CLUNET_OK;
}

static clunet_status run_impl(clunet_context *ctx, int impl, void *g) { return gemm_run(ctx, impl, g); }

static clunet_status run_rows(clunet_context *ctx, int mr, void *arg)
{
    gemm_probe *p = arg;
    CN_TRY(probe_alloc(ctx, p));
    ctx->gemm_mr = mr;
    int fused;
    return gemm_register(ctx, &p->nn, &fused);
}

static clunet_status run_tile(clunet_context *ctx, int nt, void *arg)
{
    gemm_probe *p = arg;
    CN_TRY(probe_alloc(ctx, p));
    ctx->gemm_nt = nt;
    int fused;
    return gemm_register(ctx, &p->nt, &fused);
}

static clunet_status run_nt_packed(clunet_context *ctx, int packed, void *arg)
{
    gemm_probe *p = arg;
    CN_TRY(probe_alloc(ctx, p));
    ctx->gemm_nt_packed = packed;
    int fused;
    return gemm_register(ctx, &p->nt, &fused);
}

/*
 * The register kernels' tile sizes, measured once per device: 8 x 32 and 4 x 4
 * float16 accumulators suit 32 vector registers of 16 floats (AVX-512), but
 * spill with 16 registers of 8 (AVX2), where smaller tiles ran 1.2-1.5x faster.
 * Then whether A * B^T runs faster as gemm_nn's outer products (B transposed
 * into its packed blocks) than as gemm_nt's dot products (the probe has 128 rows).
 */
static clunet_status register_tiles(clunet_context *ctx)
{
    static const int rows[] = {2, 4, 8}, tiles[] = {2, 4}, packed[] = {0, 1};
    const cn_tune_knob knobs[] = {{"gemm_nn_rows", rows, 3, run_rows, &ctx->gemm_mr, 8},
                                  {"gemm_nt_tile", tiles, 2, run_tile, &ctx->gemm_nt, 4},
                                  {"gemm_nt_packed", packed, 2, run_nt_packed, &ctx->gemm_nt_packed, 0}};
    gemm_probe p = {0};
    clunet_status st = cn_tune_choose(ctx, knobs, 3, &p);
    probe_free(ctx, &p);
    return st;
}

/* CN_GEMM_* for a name, or -1. */
static int impl_from_name(const clunet_context *ctx, const char *name)
{
    if (!strcmp(name, "clblast")) return CN_GEMM_CLBLAST;
    if (!strcmp(name, "own")) return own_impl(ctx);
    if (!strcmp(name, "register")) return CN_GEMM_REGISTER;
    if (!strcmp(name, "local")) return CN_GEMM_LOCAL;
    return -1;
}

static clunet_status choose_impl(clunet_context *ctx);

clunet_status cn_gemm_choose(clunet_context *ctx)
{
    CN_TRY(choose_impl(ctx));
    return ctx->gemm_impl == CN_GEMM_REGISTER && ctx->gemm_mr < 0 ? register_tiles(ctx) : CLUNET_OK;
}

static clunet_status choose_impl(clunet_context *ctx)
{
    const char *env = getenv("CLUNET_GEMM");
    if (env && *env) {
        ctx->gemm_impl = impl_from_name(ctx, env);
        if (ctx->gemm_impl < 0)
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "CLUNET_GEMM=%s: expected clblast, own, register or local",
                           env);
        return CLUNET_OK;
    }
    /* Measured before on this device and driver: CLBlast's kernels take seconds to build, so don't again. */
    char known[32];
    if (cn_tuning_get(ctx, "gemm", known, sizeof known) && impl_from_name(ctx, known) >= 0) {
        ctx->gemm_impl = impl_from_name(ctx, known);
        return CLUNET_OK;
    }
    gemm_probe p = {0};
    cn_cpu_mark start;
    cn_cpu_mark_now(&start);
    clunet_status st = probe_alloc(ctx, &p);
    double t_own = 0, t_blas = 0;
    int own = own_impl(ctx);
    if (st == CLUNET_OK) st = cn_time_best(ctx, run_impl, own, &p.nn, &t_own);
    if (st == CLUNET_OK) {
        /* CLBlast may not run on every device: then the own kernel wins by default */
        ctx->gemm_impl = cn_time_best(ctx, run_impl, CN_GEMM_CLBLAST, &p.nn, &t_blas) == CLUNET_OK && t_blas < t_own
                             ? CN_GEMM_CLBLAST
                             : own;
    }
    probe_free(ctx, &p);
    if (st == CLUNET_OK) {
        snprintf(known, sizeof known, "%s", cn_gemm_impl_name(ctx->gemm_impl));
        cn_tuning_settle(ctx, "gemm", known, sizeof known, cn_tune_busy(ctx, &start));
        if (impl_from_name(ctx, known) >= 0) ctx->gemm_impl = impl_from_name(ctx, known);
    }
    return st;
}
