/* checkpoint.c - safetensors checkpoints of a cn_exec (see checkpoint.h). */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"

#define FORMAT "clunet-checkpoint-1"

#define MODEL "unet-efficientnet-b0" /* config "model": the one network clunet builds */

/* A number from our own flat JSON ("key": value): 1, 0 when absent, -1 when the value is not a number. */
static int json_number(const char *json, const char *key, double *out)
{
    char pattern[80];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *p = strstr(json, pattern);
    if (!p) return 0;
    p = strchr(p + strlen(pattern), ':');
    if (!p) return -1;
    char *end;
    double v = strtod(p + 1, &end);
    if (end == p + 1) return -1;
    *out = v;
    return 1;
}

/* The config's numeric settings: one that is there but not a number is refused, not taken as absent. */
static const char *const CONFIG_NUMBERS[] = {"bn_eps", "bn_momentum", "same_padding", "input_skip", "size",
                                             "input_scale"};

static int parse_triple(const char *s, float out[3])
{
    return s && sscanf(s, " [ %f , %f , %f ]", &out[0], &out[1], &out[2]) == 3;
}

static const char *meta(cn_st_file *f, const char *key, const char *path, clunet_status *st)
{
    const char *v = cn_st_meta_get(f, key);
    if (!v && *st == CLUNET_OK)
        *st = cn_fail(CLUNET_ERR_FORMAT, "%s: not a clunet checkpoint (metadata has no \"%s\")", path, key);
    return v;
}

static clunet_status read_info(cn_st_file *f, const char *path, cn_checkpoint_info *info)
{
    clunet_status st = CLUNET_OK;
    memset(info, 0, sizeof *info);
    const char *format = meta(f, "format", path, &st);
    if (format && strcmp(format, FORMAT))
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: checkpoint format \"%s\" (this clunet reads %s)", path, format,
                       FORMAT);
    const char *config = meta(f, "config", path, &st);
    const char *mean = meta(f, "input_mean", path, &st), *std = meta(f, "input_std", path, &st);
    if (st != CLUNET_OK) return st;
    size_t len = strlen(config); /* a JSON object whole, not one cut short (its settings would go to defaults) */
    while (len && isspace((unsigned char)config[len - 1])) len--;
    if (config[strspn(config, " \t\r\n")] != '{' || !len || config[len - 1] != '}')
        return cn_fail(CLUNET_ERR_FORMAT, "%s: config is not a JSON object", path);
    double v;
    for (size_t i = 0; i < sizeof CONFIG_NUMBERS / sizeof CONFIG_NUMBERS[0]; i++)
        if (json_number(config, CONFIG_NUMBERS[i], &v) < 0)
            return cn_fail(CLUNET_ERR_FORMAT, "%s: config %s is not a number", path, CONFIG_NUMBERS[i]);
    info->bn_eps = json_number(config, "bn_eps", &v) ? v : 1e-5;
    info->bn_momentum = json_number(config, "bn_momentum", &v) ? v : 0.1;
    info->same_padding = json_number(config, "same_padding", &v) && v == 1;
    info->input_skip = json_number(config, "input_skip", &v) ? (v >= 0 && v < 100 ? (int)v : -1) : 0;
    info->size = 0;
    if (json_number(config, "size", &v)) {
        if (!(v >= 32 && v <= 8192 && v == floor(v) && (int)v % 32 == 0))
            return cn_fail(CLUNET_ERR_FORMAT, "%s: config size %g is not a patch size (a multiple of 32 up to 8192)",
                           path, v);
        info->size = (int)v;
    }
    if (!(info->bn_eps > 0 && info->bn_eps < CN_BN_EPS_MAX) || !(info->bn_momentum >= 0 && info->bn_momentum <= 1))
        return cn_fail(CLUNET_ERR_FORMAT, "%s: config bn_eps %g or bn_momentum %g out of range", path, info->bn_eps,
                       info->bn_momentum);
    info->input_scale = json_number(config, "input_scale", &v) ? v : 1.0;
    if (!(info->input_scale >= CN_INPUT_SCALE_MIN && info->input_scale <= CN_INPUT_SCALE_MAX))
        return cn_fail(CLUNET_ERR_FORMAT, "%s: config input_scale %g is not in [%g, %g]", path, info->input_scale,
                       CN_INPUT_SCALE_MIN, CN_INPUT_SCALE_MAX);
    if (!cn_input_skip_name(info->input_skip))
        return cn_fail(CLUNET_ERR_FORMAT, "%s: config input_skip %d is not 0 (off), 1 (on) or 2 (conv)", path,
                       info->input_skip);
    snprintf(info->config, sizeof info->config, "%s", config);
    char model[64];
    if (cn_checkpoint_config_value(info, "model") &&
        (!cn_checkpoint_config_string(info, "model", model, sizeof model) || strcmp(model, MODEL)))
        return cn_fail(CLUNET_ERR_FORMAT, "%s: config model is not \"" MODEL "\", the network clunet builds", path);
    if (!parse_triple(mean, info->input_mean) || !parse_triple(std, info->input_std))
        return cn_fail(CLUNET_ERR_FORMAT, "%s: input_mean and input_std must be lists of three numbers", path);
    /* on the 0-255 scale: a std near 0 (or past the range) would blow the inputs up to inf */
    for (int c = 0; c < 3; c++)
        if (!(info->input_std[c] >= 1e-3 && info->input_std[c] <= 1e4) || !isfinite(info->input_mean[c]))
            return cn_fail(CLUNET_ERR_FORMAT, "%s: input_std must be in [0.001, 10000] and input_mean finite", path);
    const char *s;
    info->epoch = (s = cn_st_meta_get(f, "epoch")) ? atoi(s) : 0;
    info->adam_step = (s = cn_st_meta_get(f, "adam_step")) ? atoi(s) : 0;
    info->epoch_step = (s = cn_st_meta_get(f, "epoch_step")) ? atoi(s) : 0;
    if ((s = cn_st_meta_get(f, "partial")) &&
        sscanf(s, "%lg %lg %lg %" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu32, &info->partial_loss[0],
               &info->partial_loss[1], &info->partial_loss[2], &info->partial_counts[0], &info->partial_counts[1],
               &info->partial_counts[2], &info->partial_counts[3]) != 7)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: metadata \"partial\" is malformed", path);
    info->seed = (s = cn_st_meta_get(f, "seed")) ? strtoull(s, NULL, 10) : 0;
    info->best_f1 = (s = cn_st_meta_get(f, "best_f1")) ? atof(s) : -1;
    info->threshold = (s = cn_st_meta_get(f, "threshold")) ? strtof(s, NULL) : 0;
    if (!(info->threshold >= 0 && info->threshold < 1))
        return cn_fail(CLUNET_ERR_FORMAT, "%s: metadata \"threshold\" must be in [0, 1)", path);
    if ((s = cn_st_meta_get(f, "preprocess")) && !cn_preprocess_from_name(s, &info->preprocess))
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: unknown preprocessing \"%s\"", path, s);
    if (!(info->bn_eps > 0) || info->epoch < 0 || info->adam_step < 0 || info->epoch_step < 0)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: metadata out of range (bn_eps, epoch or adam_step)", path);
    return CLUNET_OK;
}

clunet_status cn_checkpoint_peek(const char *path, cn_checkpoint_info *info)
{
    cn_st_file *f;
    CN_TRY(cn_st_open(path, &f));
    clunet_status st = read_info(f, path, info);
    cn_st_close(f);
    return st;
}

/*
 * Host copies of the flat buffers. params and state are the model's weights
 * (the running average when the executor keeps one); with the optimizer and
 * an average, raw_params and raw_state are the weights Adam steps.
 */
typedef struct host_state {
    float *params, *state, *m, *v, *raw_params, *raw_state;
} host_state;

/* Leaves h empty, so that freeing it again (after host_alloc failed inside download_checked) is harmless. */
static void host_free(host_state *h)
{
    free(h->params), free(h->state), free(h->m), free(h->v), free(h->raw_params), free(h->raw_state);
    memset(h, 0, sizeof *h);
}

static clunet_status host_alloc(const cn_graph *g, host_state *h, int with_optimizer, int with_raw)
{
    memset(h, 0, sizeof *h);
    size_t P = g->trainable_floats ? g->trainable_floats : 1, S = g->state_floats ? g->state_floats : 1;
    h->params = calloc(P, sizeof(float));
    h->state = calloc(S, sizeof(float));
    int bad = !h->params || !h->state;
    if (with_optimizer) {
        h->m = calloc(P, sizeof(float));
        h->v = calloc(P, sizeof(float));
        bad |= !h->m || !h->v;
    }
    if (with_raw) {
        h->raw_params = calloc(P, sizeof(float));
        h->raw_state = calloc(S, sizeof(float));
        bad |= !h->raw_params || !h->raw_state;
    }
    if (bad) {
        host_free(h);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory for a checkpoint");
    }
    return CLUNET_OK;
}

/*
 * The first value of the params and state in h (weights: the model's or the raw ones) that is not finite, or
 * a batch-norm variance below 0 (whose inverse square root is NaN, which the ReLUs after it would turn into a
 * plausible-looking but meaningless output), else OK; `saving` words the error for a checkpoint not written
 * rather than one not loaded.
 */
static clunet_status check_values(const cn_graph *g, const float *params, const float *state, const char *path,
                                  const char *prefix, int saving)
{
    for (int i = 0; i < g->param_count; i++) {
        const cn_param *p = &g->params[i];
        const float *v = (p->trainable ? params : state) + p->offset;
        size_t len = strlen(p->name);
        int variance = len >= 11 && !strcmp(p->name + len - 11, "running_var");
        for (size_t k = 0; k < p->count; k++)
            if (!isfinite(v[k]) || (variance && v[k] < 0))
                return cn_fail(CLUNET_ERR_NUMERIC, "%s%s %s%s[%zu] is %g", path, saving ? " not written:" : ":", prefix,
                               p->name, k, v[k]);
    }
    return CLUNET_OK;
}

/*
 * h = e's weights (the average where e keeps one), with_optimizer Adam's moments, and raw the weights Adam
 * steps beside an average; the weights checked finite.
 */
static clunet_status download_checked(cn_exec *e, host_state *h, int with_optimizer, int raw, const char *path,
                                      int saving)
{
    const cn_graph *g = e->g;
    size_t P = g->trainable_floats * sizeof(float), S = g->state_floats * sizeof(float);
    CN_TRY(host_alloc(g, h, with_optimizer, raw));
    clunet_status st = cn_buffer_read(e->ctx, e->ema_params ? e->ema_params : e->params, 0, P, h->params);
    if (!st && S) st = cn_buffer_read(e->ctx, e->ema_params ? e->ema_state : e->state, 0, S, h->state);
    if (!st && with_optimizer) st = cn_buffer_read(e->ctx, e->adam_m, 0, P, h->m);
    if (!st && with_optimizer) st = cn_buffer_read(e->ctx, e->adam_v, 0, P, h->v);
    if (!st && raw) st = cn_buffer_read(e->ctx, e->params, 0, P, h->raw_params);
    if (!st && raw && S) st = cn_buffer_read(e->ctx, e->state, 0, S, h->raw_state);
    if (!st) st = check_values(g, h->params, h->state, path, "", saving);
    if (!st && raw) st = check_values(g, h->raw_params, h->raw_state, path, "train.", saving);
    return st;
}

clunet_status cn_checkpoint_check(cn_exec *e)
{
    host_state h;
    clunet_status st = download_checked(e, &h, 0, e->ema_params != NULL, "the weights", 0);
    host_free(&h);
    return st;
}

clunet_status cn_checkpoint_save(const char *path, cn_exec *e, const cn_checkpoint_info *info, int with_optimizer)
{
    const cn_graph *g = e->g;
    int raw = with_optimizer && e->ema_params; /* the weights Adam steps, beside their average */
    host_state h;
    clunet_status st = download_checked(e, &h, with_optimizer, raw, path, 1);

    int copies = 1 + 2 * with_optimizer + raw, n = 0;
    cn_st_entry *entries = calloc((size_t)g->param_count * copies, sizeof *entries);
    int64_t *shapes = calloc((size_t)g->param_count * 4, sizeof *shapes);
    char *names = calloc((size_t)g->param_count * 3, 112);
    if (!st && (!entries || !shapes || !names)) st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    for (int i = 0; !st && i < g->param_count; i++) {
        const cn_param *p = &g->params[i];
        int64_t *shape = shapes + 4 * i;
        for (int d = 0; d < p->ndim; d++) shape[d] = p->dims[d];
        entries[n++] = (cn_st_entry){p->name, p->ndim, shape, (p->trainable ? h.params : h.state) + p->offset};
    }
    for (int i = 0; !st && with_optimizer && i < g->param_count; i++) {
        const cn_param *p = &g->params[i];
        char *mn = names + (size_t)336 * i, *vn = mn + 112, *rn = vn + 112;
        if (raw) {
            snprintf(rn, 112, "train.%s", p->name);
            entries[n++] = (cn_st_entry){rn, p->ndim, shapes + 4 * i, (p->trainable ? h.raw_params : h.raw_state) + p->offset};
        }
        if (!p->trainable) continue;
        snprintf(mn, 112, "adam.m.%s", p->name);
        snprintf(vn, 112, "adam.v.%s", p->name);
        entries[n++] = (cn_st_entry){mn, p->ndim, shapes + 4 * i, h.m + p->offset};
        entries[n++] = (cn_st_entry){vn, p->ndim, shapes + 4 * i, h.v + p->offset};
    }
    if (!st) {
        char epoch[32], epoch_step[32], step[32], seed[32], best[32], threshold[32], mean[96], stdv[96], config[1280], partial[200];
        snprintf(epoch, sizeof epoch, "%d", info->epoch);
        snprintf(epoch_step, sizeof epoch_step, "%d", info->epoch_step);
        snprintf(step, sizeof step, "%d", e->step);
        snprintf(partial, sizeof partial, "%.17g %.17g %.17g %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32,
                 info->partial_loss[0], info->partial_loss[1], info->partial_loss[2], info->partial_counts[0],
                 info->partial_counts[1], info->partial_counts[2], info->partial_counts[3]);
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)info->seed);
        snprintf(best, sizeof best, "%.17g", info->best_f1);
        snprintf(threshold, sizeof threshold, "%.9g", info->threshold);
        snprintf(mean, sizeof mean, "[%.9g, %.9g, %.9g]", info->input_mean[0], info->input_mean[1], info->input_mean[2]);
        snprintf(stdv, sizeof stdv, "[%.9g, %.9g, %.9g]", info->input_std[0], info->input_std[1], info->input_std[2]);
        snprintf(config, sizeof config,
                 "{\"model\": \"" MODEL "\", \"bn_eps\": %.17g, \"bn_momentum\": %.17g, "
                 "\"same_padding\": %d, \"input_skip\": %d, \"size\": %d, \"input_scale\": %.9g%s%s}",
                 g->bn_eps, g->bn_momentum, info->same_padding, info->input_skip, info->size, info->input_scale,
                 info->config[0] ? ", \"train\": " : "",
                 info->config);
        cn_st_meta md[] = {{"format", FORMAT}, {"config", config}, {"epoch", epoch}, {"epoch_step", epoch_step}, {"adam_step", step},
                           {"seed", seed},     {"best_f1", best},  {"input_mean", mean}, {"input_std", stdv}, {"partial", partial},
                           {"threshold", threshold}, {"preprocess", cn_preprocess_name(info->preprocess)}};
        st = cn_st_write(path, entries, n, md, (int)(sizeof md / sizeof md[0]));
    }
    free(entries), free(shapes), free(names);
    host_free(&h);
    return st;
}

static clunet_status read_param(cn_st_file *f, const char *path, const char *name, const cn_param *p, float *dst)
{
    const cn_st_tensor *t = cn_st_find(f, name);
    if (!t) return cn_fail(CLUNET_ERR_FORMAT, "%s: tensor %s is missing", path, name);
    int same = t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->dims[d];
    if (!same) {
        char want[64] = "", got[96] = "";
        for (int d = 0; d < p->ndim; d++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", d ? "," : "", p->dims[d]);
        for (int d = 0; d < t->ndim && d < 8; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "", (long long)t->shape[d]);
        return cn_fail(CLUNET_ERR_FORMAT, "%s: tensor %s has shape (%s), the network needs (%s)", path, name, got, want);
    }
    return cn_st_read(f, name, dst, p->count);
}

static clunet_status upload(cn_exec *e, const host_state *h, int with_optimizer)
{
    const cn_graph *g = e->g;
    size_t P = g->trainable_floats * sizeof(float), S = g->state_floats * sizeof(float);
    int raw = with_optimizer && e->ema_params;
    CN_TRY(cn_buffer_write(e->ctx, raw ? e->ema_params : e->params, 0, P, h->params));
    if (S) CN_TRY(cn_buffer_write(e->ctx, raw ? e->ema_state : e->state, 0, S, h->state));
    if (raw) {
        CN_TRY(cn_buffer_write(e->ctx, e->params, 0, P, h->raw_params));
        if (S) CN_TRY(cn_buffer_write(e->ctx, e->state, 0, S, h->raw_state));
    }
    if (with_optimizer) {
        CN_TRY(cn_buffer_write(e->ctx, e->adam_m, 0, P, h->m));
        CN_TRY(cn_buffer_write(e->ctx, e->adam_v, 0, P, h->v));
    }
    return CLUNET_OK;
}

clunet_status cn_checkpoint_load(const char *path, cn_exec *e, cn_checkpoint_info *info, int with_optimizer)
{
    const cn_graph *g = e->g;
    cn_st_file *f;
    CN_TRY(cn_st_open(path, &f));
    clunet_status st = read_info(f, path, info);
    if (!st && fabs(info->bn_eps - g->bn_eps) > 1e-12 * g->bn_eps)
        st = cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: was trained with BN eps %g, the network is built with %g", path,
                     info->bn_eps, g->bn_eps);
    int raw = with_optimizer && e->ema_params;
    host_state h;
    if (!st) st = host_alloc(g, &h, with_optimizer, raw);
    else memset(&h, 0, sizeof h);
    for (int i = 0; !st && i < g->param_count; i++) {
        const cn_param *p = &g->params[i];
        char name[112];
        st = read_param(f, path, p->name, p, (p->trainable ? h.params : h.state) + p->offset);
        if (!st && raw) {
            snprintf(name, sizeof name, "train.%s", p->name);
            st = read_param(f, path, name, p, (p->trainable ? h.raw_params : h.raw_state) + p->offset);
        }
        if (!st && with_optimizer && p->trainable) {
            snprintf(name, sizeof name, "adam.m.%s", p->name);
            st = read_param(f, path, name, p, h.m + p->offset);
            snprintf(name, sizeof name, "adam.v.%s", p->name);
            if (!st) st = read_param(f, path, name, p, h.v + p->offset);
        }
    }
    /* clunet never saves such weights, but another writer may have: they would predict nothing */
    if (!st) st = check_values(g, h.params, h.state, path, "", 0);
    if (!st && raw) st = check_values(g, h.raw_params, h.raw_state, path, "train.", 0);
    if (!st) st = upload(e, &h, with_optimizer);
    if (!st && with_optimizer) e->step = info->adam_step;
    host_free(&h);
    cn_st_close(f);
    return st;
}

clunet_status cn_checkpoint_load_encoder(const char *path, cn_exec *e)
{
    const cn_graph *g = e->g;
    host_state h;
    CN_TRY(host_alloc(g, &h, 0, 0));
    cn_st_file *f;
    clunet_status st = cn_st_open(path, &f);
    if (st) {
        host_free(&h);
        return st;
    }
    st = cn_buffer_read(e->ctx, e->params, 0, g->trainable_floats * sizeof(float), h.params);
    if (!st && g->state_floats) st = cn_buffer_read(e->ctx, e->state, 0, g->state_floats * sizeof(float), h.state);
    for (int i = 0; !st && i < g->param_count; i++) {
        const cn_param *p = &g->params[i];
        if (strncmp(p->name, "encoder.", 8)) continue;
        st = read_param(f, path, p->name, p, (p->trainable ? h.params : h.state) + p->offset);
    }
    /* as cn_checkpoint_load: refused here, naming the file, not by the loss after an epoch of training */
    if (!st) st = check_values(g, h.params, h.state, path, "", 0);
    if (!st) st = upload(e, &h, 0);
    cn_st_close(f);
    host_free(&h);
    return st;
}

const char *cn_checkpoint_config_value(const cn_checkpoint_info *info, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *p = strstr(info->config, pattern);
    return p ? p + strlen(pattern) : NULL;
}

uint64_t cn_checkpoint_val_seed(const cn_checkpoint_info *info)
{
    const char *v = cn_checkpoint_config_value(info, "val_seed");
    return v ? strtoull(v, NULL, 10) : info->seed;
}

const char *cn_checkpoint_config_string(const cn_checkpoint_info *info, const char *key, char *out, size_t n)
{
    const char *p = cn_checkpoint_config_value(info, key);
    if (!p || *p++ != '"') return NULL;
    const char *end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= n) return NULL;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = 0;
    return out;
}
