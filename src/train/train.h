/*
 * train.h - the training run: data, the static graph, Adam, validation every
 * epoch, metrics.csv and checkpoints (last.safetensors after every epoch,
 * best.safetensors at the best validation F1). Progress reaches the caller
 * through a callback; the library prints nothing.
 */
#ifndef CLUNET_TRAIN_TRAIN_H
#define CLUNET_TRAIN_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "data/pipeline.h"
#include "train/evaluate.h"

/* The learning rate over a run: lr throughout, or a linear warm-up then a cosine decay to lr / 100. */
typedef enum cn_lr_schedule { CN_LR_COSINE, CN_LR_CONSTANT } cn_lr_schedule;

typedef struct cn_train_config {
    const char *device;          /* device spec (NULL: default) */
    uint64_t memory_cap;         /* device memory cap in bytes (0: the device's) */
    const char *data_dir;        /* NULL: built-in synthetic retinas */
    const char *dataset;         /* name in datasets.txt */
    const char *datasets_file;   /* NULL: the built-in datasets.txt */
    int synthetic;               /* synthetic training images (default 32) */
    int size, batch, epochs;     /* patch size (multiple of 32), batch, epochs */
    int steps_per_epoch;         /* 0: about one pass over the training pixels */
    int val_count;               /* training images held out for validation (-1: a tenth, at least 1; whole subjects) */
    int fold, folds;             /* folds > 0: validate on fold `fold` (1-based) of the subjects dealt into `folds`
                                    (k-fold), instead of val_count */
    double lr, weight_decay, loss_lambda; /* loss_lambda < 0: focal + dice */
    double focal_alpha, focal_gamma; /* the focal term's (0.25, 2; alpha 0.5 and gamma 0: half the cross-entropy) */
    double drop_connect;         /* stochastic depth of the encoder's residual blocks (cn_unet_config's) */
    double ema;                  /* decay of the running average of the weights that validation and checkpoints
                                    use (0: none, the weights themselves) */
    cn_lr_schedule schedule;
    double warmup_epochs;        /* cosine schedule: epochs of linear warm-up from lr / 100 */
    double bn_eps;               /* (a resumed run keeps its checkpoint's) */
    int bn_eps_given;            /* as input_skip_given */
    int augment;
    int input_skip;              /* CN_INPUT_SKIP_* (a resumed run keeps its checkpoint's) */
    int input_skip_given;        /* set by the user: a resumed run refuses a value other than its own */
    double input_scale;          /* images resized by it for training, validation and (kept in the checkpoint)
                                    inference, so that thin vessels span more pixels (1: as they are) */
    cn_preprocess preprocess;    /* what the network sees (a resumed run keeps its checkpoint's) */
    int preprocess_given;        /* as input_skip_given */
    float threshold;             /* for F1 and the other counts */
    uint64_t seed;
    int64_t val_seed;            /* picks the validation images (-1: seed), so that runs of several seeds can be
                                    validated on the same images */
    const char *out_dir;         /* created if missing */
    const char *resume;          /* checkpoint to continue from */
    const char *encoder_weights; /* safetensors with encoder.* tensors */
    volatile sig_atomic_t *stop; /* set asynchronously (Ctrl-C): finish the step, checkpoint, return */
} cn_train_config;

void cn_train_default_config(cn_train_config *cfg);

typedef enum cn_train_event { CN_TRAIN_SETUP, CN_TRAIN_STEP, CN_TRAIN_EPOCH, CN_TRAIN_STOPPED } cn_train_event;

typedef struct cn_train_progress {
    cn_train_event event;
    const char *message;         /* SETUP: what was set up */
    int epoch, epochs;           /* 1-based epoch */
    int step, steps;             /* 1-based step within the epoch */
    float loss, focal, dice;     /* this step's (STEP) or the epoch's mean (EPOCH) */
    double images_per_second, eta_seconds;
    cn_scores train, val;        /* EPOCH (val at the configured threshold) */
    float val_threshold;         /* EPOCH: the validation images' best-F1 threshold ... */
    double val_best_f1;          /* ... and their F1 there (the best checkpoint is chosen by it) */
    double lr;                   /* the learning rate of this (or the epoch's last) step */
    int best;                    /* EPOCH: this epoch set a new best validation F1 */
} cn_train_progress;

typedef void (*cn_train_callback)(const cn_train_progress *p, void *user);

/* The learning rate of step `step` (0-based, counted over the whole run) of `total`. */
double cn_train_lr(const cn_train_config *cfg, long step, long total, long warmup_steps);

/* Runs the whole training; a NaN or Inf loss stops it with an error naming the step. */
clunet_status cn_train(const cn_train_config *cfg, cn_train_callback cb, void *user);

#endif
