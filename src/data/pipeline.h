/*
 * pipeline.h - from images to training batches: the samples held in memory,
 * per-channel normalisation, seeded augmentation and patch sampling, and a
 * worker thread that prepares the next batch while the device computes.
 *
 * Every random choice is a function of (seed, epoch, step, slot), never of
 * what ran before: a run resumed at an epoch boundary sees the very same
 * batches as one that never stopped. Knows nothing about OpenCL.
 */
#ifndef CLUNET_DATA_PIPELINE_H
#define CLUNET_DATA_PIPELINE_H

#include <pthread.h>
#include <stdint.h>

#include "data/datasets.h"
#include "data/image.h"

/* One sample at its native size, 8 bits per value. */
typedef struct cn_sample_image {
    char *name;
    char *subject;  /* the person it shows (images of one subject are held out together); NULL: its own */
    int width, height;
    uint8_t *rgb;   /* (H,W,3) interleaved */
    uint8_t *label; /* (H,W), 1 = vessel; NULL when the dataset has no label for it */
    uint8_t *mask;  /* (H,W), 1 = inside the field of view */
} cn_sample_image;

typedef struct cn_sample_set {
    cn_sample_image *items;
    int count;
} cn_sample_set;

/* Renders synthetic retinas index first .. first+n-1 of stream `seed` at size x size. */
clunet_status cn_sample_set_synthetic(cn_sample_set *set, uint64_t seed, int first, int n, int size);

/*
 * Fails, naming label_path, unless the label has its image's size and two
 * values only, 0 and one other (any scale: 1, 255, 65535); *fraction (may be
 * NULL) gets the share of its pixels that are not 0.
 */
clunet_status cn_label_check(const cn_image *label, const char *label_path, const cn_image *img, const char *img_path,
                             double *fraction);

/* Decodes the listed samples of `split` (labels required when need_labels); FOVs from cn_fov_get. */
clunet_status cn_sample_set_load(cn_sample_set *set, const cn_sample_list *list, cn_split split, int need_labels);

/* Appends one decoded sample (label and mask may be NULL: no label, everything in view). */
clunet_status cn_sample_set_add(cn_sample_set *set, const char *name, const cn_image *img, const cn_image *label,
                                const cn_image *mask);

/*
 * Moves a seeded random choice of whole subjects into out, at least n_out images, keeping the order: a
 * validation hold-out that never shares a person (the other eye) with training. Fails when that leaves no
 * training image.
 */
clunet_status cn_sample_set_split(cn_sample_set *set, int n_out, uint64_t seed, cn_sample_set *out);

/*
 * k-fold validation: the subjects in a seeded random order, dealt in turn into `folds` folds; moves fold `fold`
 * (0-based) into out, keeping the order. Each subject is in exactly one fold of a seed, so runs of every fold
 * together validate on every training image once.
 */
clunet_status cn_sample_set_fold(cn_sample_set *set, int folds, int fold, uint64_t seed, cn_sample_set *out);

void cn_sample_set_free(cn_sample_set *set);

/* Per-channel mean and standard deviation (0-255 scale) over the FOV pixels of every sample. */
void cn_sample_set_stats(const cn_sample_set *set, float mean[3], float std[3]);

/* What the network sees of an image, applied once when samples are loaded (and recorded in checkpoints). */
typedef enum cn_preprocess {
    CN_PREPROCESS_NONE = 0,        /* "rgb": the photograph as it is */
    CN_PREPROCESS_CLAHE_GREEN = 1, /* "clahe-green": CLAHE of the green channel, copied to all three */
} cn_preprocess;

const char *cn_preprocess_name(cn_preprocess mode);
/* 1 and *mode set when name is "rgb" or "clahe-green". */
int cn_preprocess_from_name(const char *name, cn_preprocess *mode);

/* Applies mode to every sample (before normalisation statistics are taken). */
clunet_status cn_sample_set_preprocess(cn_sample_set *set, cn_preprocess mode);

/* CLAHE of s's green channel on a grid x grid tiling with the given clip limit, into all of rgb. */
#define CN_CLAHE_GRID 8
#define CN_CLAHE_CLIP 2.0
clunet_status cn_clahe_green(cn_sample_image *s, int grid, double clip);

/* How a training batch is cut and perturbed. */
typedef struct cn_augment {
    int enabled;
    int flips;          /* horizontal and vertical */
    int rot90;          /* quarter turns */
    float scale;        /* zoom by a factor in [1/(1+scale), 1+scale] */
    float brightness;   /* +- fraction of the range */
    float contrast;     /* factor in [1-contrast, 1+contrast] */
    float gamma;        /* exponent in [1-gamma, 1+gamma] */
} cn_augment;

void cn_augment_default(cn_augment *aug);

/* The range of a training run's input scale (clunet train --input-scale; a checkpoint's input_scale). */
#define CN_INPUT_SCALE_MIN 0.25
#define CN_INPUT_SCALE_MAX 4.0

typedef struct cn_batch_spec {
    int batch, size;      /* patches of size x size */
    float input_scale;    /* images resized by it before the augmentation's zoom (0 or 1: as they are) */
    float mean[3], std[3];
    cn_augment aug;
    uint64_t seed;
} cn_batch_spec;

/* A batch: images (B,3,S,S) normalised; labels and masks (B,1,S,S) in {0,1}. */
typedef struct cn_batch {
    float *images, *labels, *masks;
} cn_batch;

clunet_status cn_batch_alloc(cn_batch *b, int batch, int size);
void cn_batch_free(cn_batch *b);

/*
 * Fills batch `step` of `epoch`: each slot takes a sample from the epoch's
 * seeded permutation, a patch centred on a random FOV pixel (the whole image
 * when it is no larger than the patch), and the augmentation.
 */
void cn_batch_make(const cn_sample_set *set, const cn_batch_spec *spec, int epoch, int step, cn_batch *out);

/*
 * Normalises an RGB region into (3,h,w) planes of x: pixels outside the image
 * (padding) are black, like the area around a fundus photograph.
 */
void cn_normalise_region(const cn_sample_image *s, int x0, int y0, int w, int h, const float mean[3],
                         const float std[3], float *x);

/* The worker thread: makes batch (epoch, step) in the background. */
typedef struct cn_batch_worker {
    const cn_sample_set *set;
    cn_batch_spec spec;
    cn_batch slot;
    int epoch, step, pending, quit, running;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} cn_batch_worker;

clunet_status cn_batch_worker_start(cn_batch_worker *w, const cn_sample_set *set, const cn_batch_spec *spec);

/* Asks for batch (epoch, step); returns at once. */
void cn_batch_worker_request(cn_batch_worker *w, int epoch, int step);

/* Waits for the requested batch and swaps it into *b (which must come from cn_batch_alloc with the same sizes). */
void cn_batch_worker_take(cn_batch_worker *w, cn_batch *b);

void cn_batch_worker_stop(cn_batch_worker *w);

#endif
