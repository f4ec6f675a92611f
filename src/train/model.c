/* model.c - a checkpoint opened for inference (see model.h). */
#include <string.h>

#include "common/error.h"
#include "train/model.h"

clunet_status cn_model_open(const char *weights, const char *device, int size, int batch, FILE *note, cn_model *m)
{
    memset(m, 0, sizeof *m);
    CN_TRY(cn_checkpoint_peek(weights, &m->info));
    if (size <= 0) size = m->info.size > 0 ? m->info.size : 512;
    if (size % 32) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--size %d: must be a multiple of 32", size);
    cn_unet_config cfg;
    cn_unet_default_config(&cfg);
    cfg.batch = batch;
    cfg.height = cfg.width = size;
    cfg.bn_eps = m->info.bn_eps;
    cfg.bn_momentum = m->info.bn_momentum;
    cfg.same_padding = m->info.same_padding;
    cfg.input_skip = m->info.input_skip;
    clunet_settings s;
    clunet_default_settings(&s);
    s.device = device;
    clunet_status st = cn_unet_build(&cfg, &m->graph);
    if (!st) st = clunet_context_create(&s, &m->ctx);
    char line[1280];
    if (!st && note && cn_first_run_note(m->ctx, line, sizeof line)) fprintf(note, "%s\n", line);
    if (!st) {
        st = cn_exec_create(m->ctx, &m->graph, 0, &m->exec);
        if (st == CLUNET_ERR_OUT_OF_MEMORY)
            st = cn_fail(st, "%s; inference on %dx%d tiles needs about %.0f MiB: try a smaller --size", clunet_last_error(),
                         size, size, cn_exec_planned_bytes(&m->graph, 0) / 1048576.0);
    }
    cn_checkpoint_info loaded;
    if (!st) st = cn_checkpoint_load(weights, &m->exec, &loaded, 0);
    if (!st) st = cn_infer_init(&m->infer, &m->exec, m->info.input_mean, m->info.input_std);
    if (!st) m->infer.preprocess = m->info.preprocess;
    if (!st) m->infer.input_scale = (float)m->info.input_scale;
    m->note = note;
    if (st) cn_model_close(m);
    return st;
}

void cn_model_close(cn_model *m)
{
    char line[256];
    if (m->ctx && m->note && cn_tuning_busy_note(m->ctx, line, sizeof line)) fprintf(m->note, "%s\n", line);
    cn_infer_free(&m->infer);
    cn_exec_destroy(&m->exec);
    cn_graph_free(&m->graph);
    if (m->ctx) clunet_context_destroy(m->ctx);
    memset(m, 0, sizeof *m);
}

float cn_model_threshold(const cn_model *m, float requested)
{
    if (requested > 0) return requested;
    return m->info.threshold > 0 ? m->info.threshold : 0.5f;
}
