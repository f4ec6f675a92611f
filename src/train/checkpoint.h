/*
 * checkpoint.h - the network's weights, BN statistics and Adam state in a
 * safetensors file, with the run's configuration and preprocessing in its
 * metadata. Names follow graph/unet.c (torchvision's for the encoder); Adam's
 * moments are stored as "adam.m.NAME" and "adam.v.NAME". When the executor
 * keeps a running average of the weights (cn_exec_ema_enable), NAME holds the
 * average, the weights to evaluate and predict with, and a checkpoint with the
 * optimizer adds the weights Adam steps as "train.NAME".
 */
#ifndef CLUNET_TRAIN_CHECKPOINT_H
#define CLUNET_TRAIN_CHECKPOINT_H

#include "data/pipeline.h"
#include "graph/exec.h"

typedef struct cn_checkpoint_info {
    double bn_eps, bn_momentum;
    int same_padding;
    int input_skip;          /* cn_unet_config's (0 in checkpoints that predate it) */
    int size;                /* training patch size */
    double input_scale;      /* the images were resized by it for training (1 in checkpoints that predate it) */
    int epoch;               /* epochs completed */
    int epoch_step;          /* steps done in the next epoch (a run stopped mid-epoch) */
    double partial_loss[3];  /* ... their summed loss, focal and dice */
    uint32_t partial_counts[4]; /* ... their TP, FP, TN, FN on the training batches */
    int adam_step;
    uint64_t seed;
    float input_mean[3], input_std[3]; /* 0-255 scale */
    cn_preprocess preprocess;          /* applied before the normalisation */
    double best_f1;          /* best validation F1 so far, at its threshold (-1 if none) */
    float threshold;         /* the validation images' best-F1 threshold for these weights (0: none chosen) */
    char config[1024];       /* the training settings as JSON, for the record */
} cn_checkpoint_info;

/*
 * The text of "key"'s value in info->config (the training settings, one flat
 * JSON object): just past `"key": `, or NULL when absent.
 */
const char *cn_checkpoint_config_value(const cn_checkpoint_info *info, const char *key);

/* A string value of the same ("key": "value") copied to out; NULL when absent or longer than n - 1. */
const char *cn_checkpoint_config_string(const cn_checkpoint_info *info, const char *key, char *out, size_t n);

/* The seed that picked the run's validation images: "val_seed" of the config, else (older runs) the seed. */
uint64_t cn_checkpoint_val_seed(const cn_checkpoint_info *info);

/* Reads the metadata only (to build a graph that matches before loading). */
clunet_status cn_checkpoint_peek(const char *path, cn_checkpoint_info *info);

/*
 * Writes everything atomically; with_optimizer adds Adam's m and v. Refuses
 * (CLUNET_ERR_NUMERIC, naming the tensor) to write NaN or Inf: a checkpoint on
 * disk is always one to go back to.
 */
clunet_status cn_checkpoint_save(const char *path, cn_exec *e, const cn_checkpoint_info *info, int with_optimizer);

/* CLUNET_ERR_NUMERIC, naming the tensor, when a weight or BN statistic of e (or of its raw weights) is not finite. */
clunet_status cn_checkpoint_check(cn_exec *e);

/*
 * Loads weights and BN statistics into e (and Adam's state when with_optimizer;
 * e->step is set from the file). Every tensor of the graph must be present with
 * its shape; errors name the file and the tensor.
 */
clunet_status cn_checkpoint_load(const char *path, cn_exec *e, cn_checkpoint_info *info, int with_optimizer);

/* Loads only the "encoder." tensors (e.g. an ImageNet EfficientNet-B0 exported from torchvision). */
clunet_status cn_checkpoint_load_encoder(const char *path, cn_exec *e);

#endif
