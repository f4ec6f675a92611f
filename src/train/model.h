/*
 * model.h - a trained network ready for inference: the checkpoint's settings,
 * a graph of the tile shape, its executor and the tiler. Shared by eval and
 * predict.
 */
#ifndef CLUNET_TRAIN_MODEL_H
#define CLUNET_TRAIN_MODEL_H

#include <stdio.h>

#include "train/checkpoint.h"
#include "train/infer.h"

typedef struct cn_model {
    clunet_context *ctx;
    cn_graph graph;
    cn_exec exec;
    cn_infer infer;
    cn_checkpoint_info info;
    FILE *note; /* cn_model_open's */
} cn_model;

/*
 * Opens `weights` on the device `device` (NULL: default) for tiles of size x
 * size (0: the checkpoint's training size) in batches of `batch`. On a
 * device whose kernels are not cached yet, a line saying so goes to `note`
 * (NULL: nowhere) before the minutes of compiling, and cn_model_close says
 * there which kernel choices were timed on a busy machine, if any.
 */
clunet_status cn_model_open(const char *weights, const char *device, int size, int batch, FILE *note, cn_model *m);
void cn_model_close(cn_model *m);

/* The threshold to use: `requested` when positive, else the checkpoint's validation choice, else 0.5. */
float cn_model_threshold(const cn_model *m, float requested);

#endif
