/*
 * cmd_bench.c - `clunet bench`: training-step and inference speed of the U-Net
 * on one or every device, against each device's own measured peaks, with the
 * ops that take the time. Numbers print in the C locale (the CLI never calls
 * setlocale), so JSON and tables read the same everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/cli.h"

#define MAX_DEVICES 16
#define TOP_SHOWN 10

typedef struct bench_options {
    const char *device; /* NULL: the default device; "all": every non-simulator device */
    cn_bench_config cfg;
    int json;
} bench_options;

typedef struct device_run {
    const clunet_device_info *info;
    cn_bench_result r;
    int ok;
    char error[512]; /* the failure, when not ok */
} device_run;

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: clunet bench [--device all|D] [--batch B] [--size S] [--steps N] [--warmup W]\n"
               "                    [--no-profile] [--json]\n\n"
               "Times the U-Net on synthetic batches: N training steps (upload, forward, loss, backward,\n"
               "Adam) and N inferences after W warm-up runs each, then reports the median and minimum,\n"
               "images/s and GFLOP/s against the device's own peaks, measured here: chained multiply-adds\n"
               "(FMA), a 1024^3 GEMM, and a copy (bandwidth). A profile then times every node of a training\n"
               "step on its own (each node's median over 5 such steps, after one untimed) and lists the ops\n"
               "that take the time.\n\n"
               "  --device D    index, gpu, cpu, part of a name, or all (every device but simulators);\n"
               "                default: the default device\n"
               "  --batch B     batch size (default 1)\n"
               "  --size S      image height and width, a multiple of 32 (default 512)\n"
               "  --steps N     timed training steps and timed inferences (default 5)\n"
               "  --warmup W    untimed runs before each (default 2; the first run also builds kernels)\n"
               "  --no-profile  skip the per-node profile pass\n"
               "  --json        machine-readable output on stdout (progress stays on stderr)\n");
    return status;
}

static void on_progress(void *user, const char *what)
{
    const device_run *d = user;
    fprintf(stderr, "bench [%d] %s: %s\n", d->info->index, d->info->name, what);
}

static int parse(int argc, char **argv, bench_options *o)
{
    memset(o, 0, sizeof *o);
    o->cfg = (cn_bench_config){.batch = 1, .size = 512, .steps = 5, .warmup = 2, .profile = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--no-profile")) o->cfg.profile = 0;
        else if (i + 1 < argc && !strcmp(a, "--device")) o->device = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--batch")) {
            if (!cli_parse_int(argv[++i], 1, 4096, &o->cfg.batch)) return cli_bad_value(a, argv[i]);
        } else if (i + 1 < argc && !strcmp(a, "--size")) {
            if (!cli_parse_int(argv[++i], 32, 32768, &o->cfg.size) || o->cfg.size % 32)
                return cli_bad_value(a, argv[i]);
        } else if (i + 1 < argc && !strcmp(a, "--steps")) {
            if (!cli_parse_int(argv[++i], 1, 100000, &o->cfg.steps)) return cli_bad_value(a, argv[i]);
        } else if (i + 1 < argc && !strcmp(a, "--warmup")) {
            if (!cli_parse_int(argv[++i], 0, 100000, &o->cfg.warmup)) return cli_bad_value(a, argv[i]);
        } else {
            fprintf(stderr, "clunet bench: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
    }
    return -1;
}

/* The devices to measure: every non-simulator one for "all", else the one the spec selects. */
static int pick_devices(const char *spec, device_run *runs)
{
    const clunet_device_info *d;
    int n;
    if (clunet_devices(&d, &n) != CLUNET_OK) return -1;
    int count = 0;
    if (spec && !strcmp(spec, "all")) {
        for (int i = 0; i < n && count < MAX_DEVICES; i++)
            if (!d[i].simulator) runs[count++].info = &d[i];
        if (!count) clunet_device_select(spec, &n); /* records "no device matched" for the message */
        return count ? count : -1;
    }
    int index;
    if (clunet_device_select(spec, &index) != CLUNET_OK) return -1;
    runs[0].info = &d[index];
    return 1;
}

static clunet_status bench_device(const bench_options *o, device_run *d)
{
    char spec[16];
    snprintf(spec, sizeof spec, "%d", d->info->index);
    clunet_settings s;
    clunet_default_settings(&s);
    s.device = spec;
    clunet_context *ctx;
    CN_TRY(clunet_context_create(&s, &ctx));
    cn_bench_config cfg = o->cfg;
    cfg.progress = on_progress;
    cfg.user = d;
    clunet_status st = cn_bench_run(ctx, &cfg, &d->r);
    clunet_context_destroy(ctx);
    return st;
}

/* ---- derived numbers ------------------------------------------------------- */

static double train_gflops(const cn_bench_result *r)
{
    /* A training step is about a forward plus a backward of twice its work. */
    return 3.0 * r->forward_flops / (r->train_median_ms * 1e-3) * 1e-9;
}

static double infer_gflops(const cn_bench_result *r) { return r->forward_flops / (r->infer_median_ms * 1e-3) * 1e-9; }

static double per_s(const bench_options *o, double ms) { return o->cfg.batch * 1e3 / ms; }

/* The same for every device; 0 when none got as far as building the graph. */
static double forward_flops(const device_run *runs, int count)
{
    for (int i = 0; i < count; i++)
        if (runs[i].ok) return runs[i].r.forward_flops;
    return 0;
}

static double percent(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0; }

/* ---- JSON ------------------------------------------------------------------ */

static void json_times(const char *key, const cn_op_time *t, int count)
{
    printf(", \"%s\": [", key);
    for (int i = 0; i < count; i++) {
        printf("%s{\"name\": ", i ? ", " : "");
        cli_json_string(stdout, t[i].name);
        printf(", \"ms\": %.3f, \"forward_ms\": %.3f, \"nodes\": %d, \"gflop\": %.4f, \"gb\": %.4f}", t[i].ms,
               t[i].forward_ms, t[i].nodes, t[i].flops * 1e-9, t[i].bytes * 1e-9);
    }
    printf("]");
}

static void json_device(const bench_options *o, const device_run *d)
{
    const cn_bench_result *r = &d->r;
    printf("  {\"index\": %d, \"name\": ", d->info->index);
    cli_json_string(stdout, d->info->name);
    printf(", \"platform\": ");
    cli_json_string(stdout, d->info->platform);
    if (!d->ok) {
        printf(", \"error\": ");
        cli_json_string(stdout, d->error);
        printf("}");
        return;
    }
    double tg = train_gflops(r), ig = infer_gflops(r);
    printf(",\n   \"train_ms\": {\"median\": %.2f, \"min\": %.2f}, \"infer_ms\": {\"median\": %.2f, \"min\": %.2f},\n",
           r->train_median_ms, r->train_min_ms, r->infer_median_ms, r->infer_min_ms);
    printf("   \"images_per_s\": {\"train\": %.4f, \"infer\": %.4f}, \"gflops\": {\"train\": %.2f, \"infer\": %.2f},\n",
           per_s(o, r->train_median_ms), per_s(o, r->infer_median_ms), tg, ig);
    printf("   \"peak_gflops_fma\": %.2f, \"peak_gflops_gemm\": %.2f, \"gemm_impl\": \"%s\", \"bandwidth_gbs\": %.2f,\n",
           r->fma_gflops, r->gemm_gflops, r->gemm_impl, r->bandwidth_gbs);
    printf("   \"tiles\": {\"gemm_nn_rows\": %d, \"gemm_nt_tile\": %d, \"gemm_nt_packed\": %d, \"conv_tiled_ob\": %d, "
           "\"conv_direct_dw_outputs\": %d, \"conv_winograd\": %d, \"conv_winograd_fused\": %d, "
           "\"conv_winograd_dw\": %d, \"stream_stores\": %d},\n", r->gemm_mr, r->gemm_nt, r->gemm_nt_packed, r->conv_ob,
           r->conv_dw, r->conv_winograd, r->conv_wino_fused, r->conv_wino_dw, r->stream_stores);
    printf("   \"percent_of_fma_peak\": {\"train\": %.1f, \"infer\": %.1f}, "
           "\"percent_of_gemm_peak\": {\"train\": %.1f, \"infer\": %.1f},\n",
           percent(tg, r->fma_gflops), percent(ig, r->fma_gflops), percent(tg, r->gemm_gflops),
           percent(ig, r->gemm_gflops));
    printf("   \"peak_memory_mib\": %.1f, \"infer_memory_mib\": %.1f", r->peak_memory_mib, r->infer_memory_mib);
    if (r->profiled) {
        printf(",\n   \"profile_total_ms\": %.2f", r->profile_total_ms);
        json_times("top_ops", r->top_blocks, r->block_count);
        json_times("top_kinds", r->top_kinds, r->kind_count);
    }
    printf("}");
}

static void print_json(const bench_options *o, const device_run *runs, int count)
{
    printf("{\"batch\": %d, \"size\": %d, \"steps\": %d, \"warmup\": %d, \"forward_gflop\": %.4f, \"devices\": [\n",
           o->cfg.batch, o->cfg.size, o->cfg.steps, o->cfg.warmup, forward_flops(runs, count) * 1e-9);
    for (int i = 0; i < count; i++) {
        json_device(o, &runs[i]);
        printf("%s\n", i + 1 < count ? "," : "");
    }
    printf("]}\n");
}

/* ---- table ----------------------------------------------------------------- */

typedef double (*metric_fn)(const bench_options *o, const cn_bench_result *r);

static double m_train_med(const bench_options *o, const cn_bench_result *r) { return r->train_median_ms; }
static double m_train_min(const bench_options *o, const cn_bench_result *r) { return r->train_min_ms; }
static double m_infer_med(const bench_options *o, const cn_bench_result *r) { return r->infer_median_ms; }
static double m_infer_min(const bench_options *o, const cn_bench_result *r) { return r->infer_min_ms; }
static double m_train_ips(const bench_options *o, const cn_bench_result *r) { return per_s(o, r->train_median_ms); }
static double m_infer_ips(const bench_options *o, const cn_bench_result *r) { return per_s(o, r->infer_median_ms); }
static double m_train_gf(const bench_options *o, const cn_bench_result *r) { return train_gflops(r); }
static double m_infer_gf(const bench_options *o, const cn_bench_result *r) { return infer_gflops(r); }
static double m_fma(const bench_options *o, const cn_bench_result *r) { return r->fma_gflops; }
static double m_gemm(const bench_options *o, const cn_bench_result *r) { return r->gemm_gflops; }
static double m_bw(const bench_options *o, const cn_bench_result *r) { return r->bandwidth_gbs; }
static double m_train_pct_fma(const bench_options *o, const cn_bench_result *r)
{
    return percent(train_gflops(r), r->fma_gflops);
}
static double m_train_pct_gemm(const bench_options *o, const cn_bench_result *r)
{
    return percent(train_gflops(r), r->gemm_gflops);
}
static double m_infer_pct_gemm(const bench_options *o, const cn_bench_result *r)
{
    return percent(infer_gflops(r), r->gemm_gflops);
}
static double m_mem(const bench_options *o, const cn_bench_result *r) { return r->peak_memory_mib; }

static const struct {
    const char *name, *format;
    metric_fn get;
} metrics[] = {
    {"train step ms (median)", "%14.1f", m_train_med},  {"train step ms (min)", "%14.1f", m_train_min},
    {"inference ms (median)", "%14.1f", m_infer_med},   {"inference ms (min)", "%14.1f", m_infer_min},
    {"train images/s", "%14.3f", m_train_ips},          {"inference images/s", "%14.3f", m_infer_ips},
    {"train GFLOP/s", "%14.2f", m_train_gf},            {"inference GFLOP/s", "%14.2f", m_infer_gf},
    {"peak FMA GFLOP/s", "%14.2f", m_fma},              {"peak GEMM GFLOP/s", "%14.2f", m_gemm},
    {"bandwidth GB/s", "%14.2f", m_bw},                 {"train % of FMA peak", "%14.1f", m_train_pct_fma},
    {"train % of GEMM peak", "%14.1f", m_train_pct_gemm}, {"infer % of GEMM peak", "%14.1f", m_infer_pct_gemm},
    {"peak memory MiB", "%14.1f", m_mem},
};

/* Convs also get their rates against the device's FMA and copy probes (the speed issue's per-op targets). */
static void print_top(const char *title, const cn_op_time *t, int count, int shown, const cn_bench_result *r)
{
    printf("  %s\n", title);
    for (int i = 0; i < count && i < shown; i++) {
        printf("    %-36s %10.1f ms %5.1f%%  forward %7.1f ms  (%d node%s)", t[i].name, t[i].ms,
               percent(t[i].ms, r->profile_total_ms), t[i].forward_ms, t[i].nodes, t[i].nodes == 1 ? "" : "s");
        if (t[i].flops > 0 && t[i].ms > 0) {
            double gf = t[i].flops / t[i].ms * 1e-6, gb = t[i].bytes / t[i].ms * 1e-6;
            printf("  %7.1f GFLOP/s %3.0f%% of FMA, %6.1f GB/s %3.0f%% of copy", gf, percent(gf, r->fma_gflops), gb,
                   percent(gb, r->bandwidth_gbs));
        }
        printf("\n");
    }
}

static void print_table(const bench_options *o, const device_run *runs, int count)
{
    double flops = forward_flops(runs, count);
    printf("U-Net (EfficientNet-B0 encoder), batch %d x %dx%d: %.2f GFLOP forward, ~%.2f per training step; "
           "%d timed runs after %d warm-up\n\n",
           o->cfg.batch, o->cfg.size, o->cfg.size, flops * 1e-9, 3 * flops * 1e-9,
           o->cfg.steps, o->cfg.warmup);
    printf("%-24s", "");
    for (int i = 0; i < count; i++) {
        char head[320];
        snprintf(head, sizeof head, "[%d] %s", runs[i].info->index, runs[i].info->name);
        printf("  %12.12s", head);
    }
    printf("\n");
    for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++) {
        printf("%-24s", metrics[m].name);
        for (int i = 0; i < count; i++) {
            if (runs[i].ok) printf(metrics[m].format, metrics[m].get(o, &runs[i].r));
            else printf("%14s", "failed");
        }
        printf("\n");
    }
    for (int i = 0; i < count; i++) {
        const device_run *d = &runs[i];
        printf("\n[%d] %s (%s)\n", d->info->index, d->info->name, d->info->platform);
        if (!d->ok) {
            printf("  failed: %s\n", d->error);
            continue;
        }
        printf("  GEMM: %s", d->r.gemm_impl);
        if (d->r.gemm_mr > 0)
            printf(" (gemm_nn %d rows, gemm_nt %dx%d, A * B^T with many rows %s)", d->r.gemm_mr, d->r.gemm_nt,
                   d->r.gemm_nt, d->r.gemm_nt_packed ? "packed into gemm_nn" : "by gemm_nt");
        if (d->r.conv_ob > 0)
            printf("; conv2d_tiled %d outputs per pass, conv2d_direct_dw %d per item; the paths of convs of >= 0.1 "
                   "GFLOP timed per shape, of smaller ones: wide 3x3 convs %s, the others %s",
                   d->r.conv_ob, d->r.conv_dw, d->r.conv_winograd > 0 ? "as Winograd F(2x2,3x3)" : "by conv2d_tiled",
                   d->r.conv_wino_fused > 0 ? "by winograd_fused" : "by conv2d_tiled");
        if (d->r.conv_wino_dw > 0) printf(", their weight gradients with enough channels as Winograd");
        if (d->r.stream_stores > 0) printf("; large outputs by streaming stores");
        printf("\n");
        if (!d->r.profiled) continue;
        printf("  profile: %.1f ms for a step timed node by node (each node's median of %d; unprofiled median %.1f ms)\n",
               d->r.profile_total_ms, CN_PROFILE_PASSES, d->r.train_median_ms);
        print_top("by block and op:", d->r.top_blocks, d->r.block_count, TOP_SHOWN, &d->r);
        print_top("by op kind:", d->r.top_kinds, d->r.kind_count, d->r.kind_count, &d->r);
    }
}

int cmd_bench(int argc, char **argv)
{
    bench_options o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    device_run runs[MAX_DEVICES];
    memset(runs, 0, sizeof runs);
    int count = pick_devices(o.device, runs);
    if (count < 0) return cli_fail("bench");
    int failed = 0;
    for (int i = 0; i < count; i++) {
        runs[i].ok = bench_device(&o, &runs[i]) == CLUNET_OK;
        if (!runs[i].ok) {
            snprintf(runs[i].error, sizeof runs[i].error, "%s", clunet_last_error());
            fprintf(stderr, "clunet: bench [%d] %s: %s\n", runs[i].info->index, runs[i].info->name, runs[i].error);
            failed++;
        }
    }
    if (o.json) print_json(&o, runs, count);
    else if (failed < count) print_table(&o, runs, count); /* nothing to tabulate when every device failed */
    return failed ? 1 : 0;
}
