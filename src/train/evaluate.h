/*
 * evaluate.h - segmentation scores on the host: confusion counts at a
 * threshold and a fine probability histogram per class (for the ROC AUC),
 * accumulated over the field-of-view pixels of any number of images.
 */
#ifndef CLUNET_TRAIN_EVALUATE_H
#define CLUNET_TRAIN_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "clunet.h"

#define CN_AUC_BINS 10000

typedef struct cn_scores {
    double accuracy, f1, iou, iou_background, miou, mcc, precision, recall, specificity, auc, loss;
    uint64_t tp, fp, tn, fn;
} cn_scores;

typedef struct cn_eval_acc {
    uint64_t tp, fp, tn, fn;
    uint32_t hist[2 * CN_AUC_BINS]; /* background bins, then vessel bins */
    double loss_sum;
    int loss_count;
    float threshold;
} cn_eval_acc;

void cn_eval_reset(cn_eval_acc *acc, float threshold);

/* Adds the FOV pixels (mask != 0) of one image: prob in [0,1], label in {0,1}. Returns its loss. */
double cn_eval_add(cn_eval_acc *acc, const float *prob, const uint8_t *label, const uint8_t *mask, size_t n);

/* Scores from the accumulated counts; loss is the mean of the per-image losses. */
void cn_eval_scores(const cn_eval_acc *acc, cn_scores *s);

/*
 * The threshold (a histogram bin edge) at which the accumulated pixels' F1 is
 * highest, and that F1: for choosing the threshold on validation images. 0
 * (and F1 0) when no vessel pixel scores above the lowest bin. The histogram
 * counts p >= b/bins where eval counts p > t: the two F1s can differ by ~1e-6.
 */
float cn_eval_best_threshold(const cn_eval_acc *acc, double *f1);

/* Scores from plain confusion counts (no AUC, no loss): for training-set counts. */
void cn_scores_from_counts(uint64_t tp, uint64_t fp, uint64_t tn, uint64_t fn, cn_scores *s);

#endif
