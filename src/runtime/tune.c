/*
 * tune.c - kernel variants chosen per device by timing them (see runtime.h):
 * the first measurement on a device is kept in its tuning file, so later runs
 * start at once; $CLUNET_TUNE=key=value,... overrides it (tests, A/B timings).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "runtime/runtime.h"

/* One timed run of run(value); *best becomes its seconds where fewer. */
static clunet_status timed_run(clunet_context *ctx, cn_tune_fn run, int value, void *arg, double *best)
{
    double t0 = cn_seconds();
    CN_TRY(run(ctx, value, arg));
    CN_TRY(cn_finish(ctx));
    double t = cn_seconds() - t0;
    if (t < *best) *best = t;
    return CLUNET_OK;
}

clunet_status cn_time_best(clunet_context *ctx, cn_tune_fn run, int value, void *arg, double *seconds)
{
    CN_TRY(run(ctx, value, arg));
    CN_TRY(cn_finish(ctx));
    *seconds = 1e30;
    for (int i = 0; i < 3; i++) CN_TRY(timed_run(ctx, run, value, arg, seconds));
    return CLUNET_OK;
}

/* Index of v in values[0..n), or -1. */
static int find(const int *values, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (values[i] == v) return i;
    return -1;
}

/* The text after "key=" in $CLUNET_TUNE, or NULL. */
static const char *env_value(const char *key)
{
    const char *env = getenv("CLUNET_TUNE");
    size_t len = strlen(key);
    for (const char *p = env; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, key, len) && p[len] == '=') return p + len + 1;
    return NULL;
}

int cn_tune_forced(const char *key) { return env_value(key) != NULL; }

clunet_status cn_tune_check_env(void)
{
    /* the knobs of gemm.c, conv.c and stream.c; a misspelt one would otherwise be ignored */
    static const char *const knobs[] = {"gemm_nn_rows",     "gemm_nt_tile",           "gemm_nt_packed",
                                        "conv_tiled_ob",    "conv_direct_dw_outputs", "conv_winograd",
                                        "conv_winograd_fused", "conv_winograd_dw",    "stream_stores",
                                        "gemm_nn_panels",      "depthwise_plane"};
    const char *env = getenv("CLUNET_TUNE");
    for (const char *p = env; p && *p;) {
        const char *eq = strchr(p, '='), *comma = strchr(p, ',');
        /* a conv path per shape (conv.c's path_key) has commas of its own: its entry runs to the '=' */
        int shape = !strncmp(p, "conv_y_", 7) || !strncmp(p, "conv_dx_", 8) || !strncmp(p, "conv_dw_", 8);
        int known = shape && eq;
        for (size_t i = 0; !known && eq && (!comma || eq < comma) && i < sizeof knobs / sizeof *knobs; i++)
            known = strlen(knobs[i]) == (size_t)(eq - p) && !strncmp(p, knobs[i], (size_t)(eq - p));
        if (!known) {
            int len = (int)(comma ? (size_t)(comma - p) : strlen(p));
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                           "CLUNET_TUNE: \"%.*s\" is not key=value for a known key (see README, Environment)", len,
                           p);
        }
        comma = strchr(eq, ',');
        p = comma ? comma + 1 : NULL;
    }
    return CLUNET_OK;
}

/* *found = 1 and *chosen = the value $CLUNET_TUNE gives `key`; fails if that is not a candidate. */
static clunet_status from_env(const char *key, const int *values, int n, int *chosen, int *found)
{
    const char *text = env_value(key);
    *found = 0;
    if (!text) return CLUNET_OK;
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || (*end && *end != ',') || find(values, n, (int)v) < 0) {
        char list[64] = "";
        for (int i = 0; i < n; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? ", " : "", values[i]);
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "CLUNET_TUNE: %s: expected one of %s", key, list);
    }
    *chosen = (int)v;
    *found = 1;
    return CLUNET_OK;
}

/* The context's earlier answer for key, if any. */
static int remembered(const clunet_context *ctx, const char *key, int *value)
{
    for (int i = 0; i < ctx->pick_count; i++)
        if (!strcmp(ctx->picks[i].key, key)) {
            *value = ctx->picks[i].value;
            return 1;
        }
    return 0;
}

static int remember(clunet_context *ctx, const char *key, int value)
{
    if (ctx->pick_count < CN_MAX_PICKS && strlen(key) < sizeof ctx->picks[0].key) {
        snprintf(ctx->picks[ctx->pick_count].key, sizeof ctx->picks[0].key, "%s", key);
        ctx->picks[ctx->pick_count++].value = value;
    }
    return value;
}

clunet_status cn_tune_known(clunet_context *ctx, const char *key, const int *values, int n, int *chosen, int *known)
{
    CN_TRY(from_env(key, values, n, chosen, known));
    if (*known) return CLUNET_OK;
    int value = 0;
    char text[32];
    if (remembered(ctx, key, &value) && find(values, n, value) >= 0) *known = 1;
    else if (cn_tuning_get(ctx, key, text, sizeof text) && find(values, n, atoi(text)) >= 0)
        *known = 1, value = remember(ctx, key, atoi(text));
    if (*known) *chosen = value;
    return CLUNET_OK;
}

clunet_status cn_tune_pick(clunet_context *ctx, const char *key, const int *values, int n, cn_tune_fn run, void *arg,
                           int *chosen)
{
    int found;
    CN_TRY(cn_tune_known(ctx, key, values, n, chosen, &found));
    if (found) return CLUNET_OK;
    char known[32];
    /*
     * Each candidate once untimed (it builds its kernels), then five rounds that
     * run every candidate once in turn; the best time of each counts. Taking
     * turns spreads a change of the machine's load over all of them. Where the
     * runner-up is within RUNOFF of the best, five more rounds of those two
     * decide: the first five alone chose conv paths 10-30% slower than the
     * best for one shape in one of three quiet tuning runs on a 2-core VM.
     */
    enum { MAX_CANDIDATES = 8, ROUNDS = 5 };
    const double RUNOFF = 1.15;
    if (n > MAX_CANDIDATES) return cn_fail(CLUNET_ERR_INTERNAL, "%s: more than %d candidates", key, MAX_CANDIDATES);
    double best[MAX_CANDIDATES];
    for (int i = 0; i < n; i++) {
        CN_TRY(run(ctx, values[i], arg));
        CN_TRY(cn_finish(ctx));
        best[i] = 1e30;
    }
    /* the load that counts is the timed runs' (the untimed ones compile, on one core) */
    cn_cpu_mark start;
    cn_cpu_mark_now(&start);
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < n; i++) CN_TRY(timed_run(ctx, run, values[i], arg, &best[i]));
    int win = 0, second = -1;
    for (int i = 1; i < n; i++)
        if (best[i] < best[win]) win = i;
    for (int i = 0; i < n; i++)
        if (i != win && (second < 0 || best[i] < best[second])) second = i;
    if (second >= 0 && best[second] < RUNOFF * best[win]) {
        for (int r = 0; r < ROUNDS; r++) {
            CN_TRY(timed_run(ctx, run, values[win], arg, &best[win]));
            CN_TRY(timed_run(ctx, run, values[second], arg, &best[second]));
        }
        if (best[second] < best[win]) win = second;
    }
    snprintf(known, sizeof known, "%d", values[win]);
    cn_tuning_settle(ctx, key, known, sizeof known, cn_tune_busy(ctx, &start));
    *chosen = remember(ctx, key, find(values, n, atoi(known)) >= 0 ? atoi(known) : values[win]);
    return CLUNET_OK;
}

double cn_tune_busy(const clunet_context *ctx, const cn_cpu_mark *since)
{
    if (ctx->info.type != CLUNET_DEVICE_CPU) return 0; /* a GPU's kernels do not share the CPUs */
    return cn_cpu_others_over(since, 0.1);
}

int cn_tuning_busy_note(clunet_context *ctx, char *note, size_t size)
{
    if (ctx->busy_picks == ctx->busy_noted) return 0;
    snprintf(note, size,
             "%d kernel choice%s timed while other programs used up to %.0f%% of the CPUs: they may be slower than "
             "the best, and a run on a quiet machine will time them again",
             ctx->busy_picks - ctx->busy_noted, ctx->busy_picks - ctx->busy_noted > 1 ? "s were" : " was",
             100 * ctx->busy_most);
    ctx->busy_noted = ctx->busy_picks;
    ctx->busy_most = 0;
    return 1;
}

/* Lets cn_tune_forget reset *field. */
static void track_field(clunet_context *ctx, int *field)
{
    int seen = 0;
    for (int j = 0; j < ctx->knob_field_count; j++) seen |= ctx->knob_fields[j] == field;
    int room = ctx->knob_field_count < (int)(sizeof ctx->knob_fields / sizeof ctx->knob_fields[0]);
    if (!seen && room) ctx->knob_fields[ctx->knob_field_count++] = field;
}

clunet_status cn_tune_rule(clunet_context *ctx, const char *key, const int *values, int n, int rule, int *field)
{
    int found;
    track_field(ctx, field);
    CN_TRY(from_env(key, values, n, field, &found));
    if (!found) *field = rule;
    return CLUNET_OK;
}

clunet_status cn_tune_choose(clunet_context *ctx, const cn_tune_knob *knobs, int count, void *arg)
{
    for (int i = 0; i < count; i++) {
        *knobs[i].field = knobs[i].initial;
        track_field(ctx, knobs[i].field);
    }
    /* The knobs size CPU kernels: forced onto another device (tests on Oclgrind), nothing there is worth timing. */
    if (!cn_cpu_paths(ctx)) return CLUNET_OK;
    clunet_status st = CLUNET_OK;
    for (int i = 0; i < count && st == CLUNET_OK; i++) {
        int chosen = knobs[i].initial;
        st = cn_tune_pick(ctx, knobs[i].key, knobs[i].values, knobs[i].n, knobs[i].run, arg, &chosen);
        *knobs[i].field = chosen;
    }
    if (st != CLUNET_OK)
        for (int i = 0; i < count; i++) *knobs[i].field = -1;
    return st;
}

void cn_tune_forget(clunet_context *ctx)
{
    for (int i = 0; i < ctx->knob_field_count; i++) *ctx->knob_fields[i] = -1;
}
