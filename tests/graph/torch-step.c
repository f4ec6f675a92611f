/*
 * torch-step [--reference] WEIGHTS BATCH RESULT - one training step of clunet
 * on the batch and weights that tools/torch_reference.py wrote (export,
 * make-batch), saved under the names its `check --compare` reads: logits,
 * prob, loss, loss_focal, loss_dice, grad.NAME per parameter and running.NAME
 * per BN statistic after the step's update. With --reference the step is the
 * double-precision reference (src/ref/graph.c) instead of the device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/exec.h"
#include "ref/graph.h"
#include "train/safetensors.h"

static int fail(const char *what)
{
    fprintf(stderr, "torch-step: %s: %s\n", what, clunet_last_error());
    return 1;
}

/* A number in the weights' metadata "config" (JSON written by the twin), or fallback. */
static double config_number(cn_st_file *w, const char *key, double fallback)
{
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *c = cn_st_meta_get(w, "config"), *p = c ? strstr(c, quoted) : NULL;
    p = p ? strchr(p, ':') : NULL;
    return p ? strtod(p + 1, NULL) : fallback;
}

/* The step in double with the reference ops; results rounded to float for the file. */
static int reference_step(const cn_graph *g, float *params, float *state, const float *xs, const float *ys,
                          const float *ms, size_t nx, size_t pix, float *logits, float loss[3], float *grads)
{
    size_t P = g->trainable_floats, S = g->state_floats;
    double *p = malloc(P * sizeof *p), *st = malloc(S * sizeof *st), *x = malloc(nx * sizeof *x);
    double *y = malloc(pix * sizeof *y), *m = ms ? malloc(pix * sizeof *m) : NULL, *z = malloc(pix * sizeof *z);
    double *gr = malloc(P * sizeof *gr), l[3];
    int ok = p && st && x && y && z && gr && (!ms || m);
    for (size_t i = 0; ok && i < P; i++) p[i] = params[i];
    for (size_t i = 0; ok && i < S; i++) st[i] = state[i];
    for (size_t i = 0; ok && i < nx; i++) x[i] = xs[i];
    for (size_t i = 0; ok && i < pix; i++) y[i] = ys[i], ms ? m[i] = ms[i] : 0;
    cn_ref_loss rl = {0.25, 2, 1e-7, 1e-5, -1};
    ok = ok && cn_ref_graph_step(g, p, st, x, y, m, &rl, z, l, gr, 0, NULL, 0, 0);
    for (size_t i = 0; ok && i < P; i++) grads[i] = (float)gr[i];
    for (size_t i = 0; ok && i < S; i++) state[i] = (float)st[i];
    for (size_t i = 0; ok && i < pix; i++) logits[i] = (float)z[i];
    for (int k = 0; ok && k < 3; k++) loss[k] = (float)l[k];
    free(p), free(st), free(x), free(y), free(m), free(z), free(gr);
    return ok;
}

int main(int argc, char **argv)
{
    int reference = argc > 1 && !strcmp(argv[1], "--reference");
    argv += reference;
    argc -= reference;
    if (argc != 4) {
        fprintf(stderr, "usage: torch-step [--reference] WEIGHTS BATCH RESULT\n");
        return 2;
    }
    cn_st_file *w, *b;
    if (cn_st_open(argv[1], &w) || cn_st_open(argv[2], &b)) return fail("open");
    const cn_st_tensor *x = cn_st_find(b, "x"), *y = cn_st_find(b, "y"), *m = cn_st_find(b, "mask");
    if (!x || !y || x->ndim != 4) {
        fprintf(stderr, "torch-step: %s: needs x (N,3,S,S) and y\n", argv[2]);
        return 1;
    }
    cn_unet_config cfg;
    cn_unet_default_config(&cfg);
    cfg.batch = (int)x->shape[0];
    cfg.height = (int)x->shape[2];
    cfg.width = (int)x->shape[3];
    cfg.bn_eps = config_number(w, "bn_eps", 1e-5);
    cfg.input_skip = (int)config_number(w, "input_skip", 0);
    cn_graph g;
    if (cn_unet_build(&cfg, &g)) return fail("graph");
    size_t P = g.trainable_floats, S = g.state_floats, pix = y->count;
    float *params = calloc(P, sizeof(float)), *state = calloc(S, sizeof(float)), *grads = calloc(P, sizeof(float));
    float *xs = malloc(x->count * sizeof(float)), *ys = malloc(pix * sizeof(float)), *ms = NULL;
    float *logits = malloc(pix * sizeof(float)), *prob = malloc(pix * sizeof(float));
    if (m) ms = malloc(pix * sizeof(float));
    for (int i = 0; i < g.param_count; i++) {
        const cn_param *p = &g.params[i];
        if (cn_st_read(w, p->name, (p->trainable ? params : state) + p->offset, p->count)) return fail(p->name);
    }
    if (cn_st_read(b, "x", xs, x->count) || cn_st_read(b, "y", ys, pix) || (m && cn_st_read(b, "mask", ms, pix)))
        return fail("batch");

    clunet_context *ctx = NULL;
    cn_exec e = {0};
    float loss[3];
    const char *engine = "the double-precision reference";
    if (reference) {
        if (!reference_step(&g, params, state, xs, ys, ms, x->count, pix, logits, loss, grads)) {
            fprintf(stderr, "torch-step: out of memory\n");
            return 1;
        }
    } else {
        if (clunet_context_create(NULL, &ctx) || cn_exec_create(ctx, &g, 1, &e)) return fail("device");
        if (cn_buffer_write(ctx, e.params, 0, P * sizeof(float), params) ||
            cn_buffer_write(ctx, e.state, 0, S * sizeof(float), state) || cn_exec_set_batch(&e, xs, ys, ms) ||
            cn_exec_forward(&e, 1) || cn_exec_loss(&e, 1) || cn_exec_backward(&e) || cn_exec_read_loss(&e, loss) ||
            cn_buffer_read(ctx, e.grads, 0, P * sizeof(float), grads) ||
            cn_buffer_read(ctx, e.state, 0, S * sizeof(float), state))
            return fail("step");
        cn_tensor z = cn_exec_value(&e, g.output);
        if (cn_tensor_download(ctx, &z, logits)) return fail("download");
        engine = ctx->info.name;
    }
    for (size_t i = 0; i < pix; i++) prob[i] = 1.0f / (1.0f + expf(-logits[i]));

    /* one entry per parameter, plus the five outputs */
    int n = 0;
    cn_st_entry *entries = calloc((size_t)g.param_count + 5, sizeof *entries);
    int64_t *shapes = calloc(((size_t)g.param_count + 5) * 4, sizeof *shapes);
    char (*names)[112] = calloc((size_t)g.param_count, sizeof *names);
    int64_t out_shape[4] = {y->shape[0], y->shape[1], y->shape[2], y->shape[3]}, one = 1;
    entries[n++] = (cn_st_entry){"logits", 4, out_shape, logits};
    entries[n++] = (cn_st_entry){"prob", 4, out_shape, prob};
    entries[n++] = (cn_st_entry){"loss", 1, &one, &loss[0]};
    entries[n++] = (cn_st_entry){"loss_focal", 1, &one, &loss[1]};
    entries[n++] = (cn_st_entry){"loss_dice", 1, &one, &loss[2]};
    for (int i = 0; i < g.param_count; i++) {
        const cn_param *p = &g.params[i];
        int64_t *shape = shapes + 4 * i;
        for (int d = 0; d < p->ndim; d++) shape[d] = p->dims[d];
        snprintf(names[i], sizeof names[i], "%s.%s", p->trainable ? "grad" : "running", p->name);
        entries[n++] = (cn_st_entry){names[i], p->ndim, shape, (p->trainable ? grads : state) + p->offset};
    }
    if (cn_st_write(argv[3], entries, n, NULL, 0)) return fail(argv[3]);
    printf("clunet on %s: loss %.7g (focal %.7g, dice %.7g); wrote %d tensors to %s\n", engine, loss[0], loss[1],
           loss[2], n, argv[3]);
    if (ctx) {
        cn_exec_destroy(&e);
        clunet_context_destroy(ctx);
    }
    cn_graph_free(&g);
    cn_st_close(w);
    cn_st_close(b);
    free(params), free(state), free(grads), free(xs), free(ys), free(ms), free(logits), free(prob);
    free(entries), free(shapes), free(names);
    return 0;
}
