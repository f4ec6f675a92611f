/* evaluate.c - confusion counts, AUC histograms and scores (see evaluate.h). */
#include <math.h>
#include <string.h>

#include "ops/pointwise.h"
#include "train/evaluate.h"

void cn_eval_reset(cn_eval_acc *acc, float threshold)
{
    memset(acc, 0, sizeof *acc);
    acc->threshold = threshold;
}

/* The focal Dice loss of one image from its probabilities, with the defaults of cn_focal_dice_default. */
static double image_loss(const float *prob, const uint8_t *label, const uint8_t *mask, size_t n)
{
    cn_focal_dice f;
    cn_focal_dice_default(&f);
    double focal = 0, py = 0, p_sum = 0, y_sum = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        double p = prob[i], y = label[i];
        focal += -f.alpha * pow(1 - p, f.gamma) * y * log(p + f.eps) -
                 (1 - f.alpha) * pow(p, f.gamma) * (1 - y) * log(1 - p + f.eps);
        py += p * y, p_sum += p, y_sum += y, count++;
    }
    if (count == 0) return 0;
    focal /= count;
    double dice = 1 - (2 * py + f.smooth) / (p_sum + y_sum + f.smooth);
    return f.lambda < 0 ? focal + dice : f.lambda * focal + (1 - f.lambda) * dice;
}

double cn_eval_add(cn_eval_acc *acc, const float *prob, const uint8_t *label, const uint8_t *mask, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        int positive = prob[i] > acc->threshold, vessel = label[i] != 0;
        acc->tp += positive && vessel;
        acc->fp += positive && !vessel;
        acc->tn += !positive && !vessel;
        acc->fn += !positive && vessel;
        int bin = (int)(prob[i] * CN_AUC_BINS);
        bin = bin < 0 ? 0 : bin >= CN_AUC_BINS ? CN_AUC_BINS - 1 : bin;
        acc->hist[vessel * CN_AUC_BINS + bin]++;
    }
    double loss = image_loss(prob, label, mask, n);
    acc->loss_sum += loss;
    acc->loss_count++;
    return loss;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

void cn_scores_from_counts(uint64_t tp, uint64_t fp, uint64_t tn, uint64_t fn, cn_scores *s)
{
    memset(s, 0, sizeof *s);
    double TP = (double)tp, FP = (double)fp, TN = (double)tn, FN = (double)fn;
    s->tp = tp, s->fp = fp, s->tn = tn, s->fn = fn;
    s->accuracy = ratio(TP + TN, TP + TN + FP + FN);
    s->precision = ratio(TP, TP + FP);
    s->recall = ratio(TP, TP + FN);
    s->specificity = ratio(TN, TN + FP);
    s->f1 = ratio(2 * TP, 2 * TP + FP + FN);
    s->iou = ratio(TP, TP + FP + FN);
    s->iou_background = ratio(TN, TN + FP + FN);
    s->miou = (s->iou + s->iou_background) / 2;
    double den = sqrt((TP + FP) * (TP + FN) * (TN + FP) * (TN + FN));
    s->mcc = den > 0 ? (TP * TN - FP * FN) / den : 0;
    s->auc = NAN;
    s->loss = NAN;
}

float cn_eval_best_threshold(const cn_eval_acc *acc, double *f1)
{
    const uint32_t *bg = acc->hist, *vessel = acc->hist + CN_AUC_BINS;
    double positives = 0, tp = 0, fp = 0, best = 0;
    for (int b = 0; b < CN_AUC_BINS; b++) positives += vessel[b];
    int best_bin = CN_AUC_BINS / 2; /* 0.5 where no threshold finds a vessel pixel (F1 0 at all of them) */
    /* Lower the threshold one bin at a time: pixels of bin b and above count as vessel. */
    for (int b = CN_AUC_BINS - 1; b > 0; b--) {
        tp += vessel[b], fp += bg[b];
        if (tp == 0) continue;
        double score = 2 * tp / (tp + fp + positives);
        if (score > best) best = score, best_bin = b;
    }
    *f1 = best;
    return (float)best_bin / CN_AUC_BINS;
}

void cn_eval_scores(const cn_eval_acc *acc, cn_scores *s)
{
    cn_scores_from_counts(acc->tp, acc->fp, acc->tn, acc->fn, s);
    s->auc = cn_auc_from_histogram(acc->hist, CN_AUC_BINS);
    s->loss = acc->loss_count ? acc->loss_sum / acc->loss_count : NAN;
}
