/*
 * metrics.c - reference confusion counts, probability histograms and the exact ROC AUC.
 */
#include <math.h>
#include <stdlib.h>

#include "ref/pointwise.h"

static double prob(const double *z, int logits, size_t i) { return logits ? 1.0 / (1.0 + exp(-z[i])) : z[i]; }

void cn_ref_metrics_counts(const double *z, int logits, const double *y, const double *mask, size_t count,
                           double threshold, uint64_t counts[4])
{
    counts[0] = counts[1] = counts[2] = counts[3] = 0;
    for (size_t i = 0; i < count; i++) {
        if (mask && mask[i] <= 0.5) continue;
        int pred = prob(z, logits, i) > threshold, truth = y[i] > 0.5;
        counts[pred ? (truth ? 0 : 1) : (truth ? 3 : 2)]++;
    }
}

void cn_ref_metrics_histogram(const double *z, int logits, const double *y, const double *mask, size_t count,
                              int bins, uint64_t *hist)
{
    for (int b = 0; b < 2 * bins; b++) hist[b] = 0;
    for (size_t i = 0; i < count; i++) {
        if (mask && mask[i] <= 0.5) continue;
        int bin = (int)floor(prob(z, logits, i) * bins);
        bin = bin < 0 ? 0 : bin >= bins ? bins - 1 : bin;
        hist[(y[i] > 0.5 ? bins : 0) + bin]++;
    }
}

typedef struct scored {
    double score;
    int positive;
} scored;

static int by_score(const void *a, const void *b)
{
    double x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x > y) - (x < y);
}

double cn_ref_auc(const double *score, const double *y, const double *mask, size_t count)
{
    scored *s = malloc((count ? count : 1) * sizeof *s);
    if (!s) return NAN;
    size_t k = 0, npos = 0;
    for (size_t i = 0; i < count; i++) {
        if (mask && mask[i] <= 0.5) continue;
        s[k].score = score[i];
        s[k].positive = y[i] > 0.5;
        npos += (size_t)s[k].positive;
        k++;
    }
    qsort(s, k, sizeof *s, by_score);
    // Mann-Whitney U: sum of the positives' ranks (1-based), ties share their mean rank.
    double rank_sum = 0.0;
    for (size_t i = 0; i < k;) {
        size_t j = i;
        while (j < k && s[j].score == s[i].score) j++;
        double mean_rank = 0.5 * (double)(i + 1 + j);
        for (size_t t = i; t < j; t++)
            if (s[t].positive) rank_sum += mean_rank;
        i = j;
    }
    free(s);
    size_t nneg = k - npos;
    if (npos == 0 || nneg == 0) return NAN;
    return (rank_sum - 0.5 * (double)npos * (double)(npos + 1)) / ((double)npos * (double)nneg);
}
