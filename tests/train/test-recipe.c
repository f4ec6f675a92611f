/*
 * test-recipe - the host-side parts of the training recipe: the learning-rate
 * schedule at its edges, and the validation threshold search against a brute
 * force over thresholds on random probabilities.
 */
#include <math.h>
#include <stdlib.h>

#include "train/evaluate.h"
#include "train/train.h"

#include "check.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-12 + 1e-9 * fabs(b); }

static void check_schedule(void)
{
    cn_train_config cfg;
    cn_train_default_config(&cfg);
    cfg.lr = 1e-3;
    long total = 100, warm = 10;
    CHECK(near(cn_train_lr(&cfg, 0, total, warm), 1e-3 * (0.01 + 0.99 * 0.1)), "warm-up starts near lr/100");
    CHECK(near(cn_train_lr(&cfg, 9, total, warm), 1e-3), "warm-up ends at lr");
    CHECK(near(cn_train_lr(&cfg, 10, total, warm), 1e-3), "the decay starts at lr");
    CHECK(near(cn_train_lr(&cfg, 99, total, warm), 1e-5), "the last step runs at lr/100");
    CHECK(near(cn_train_lr(&cfg, 55, 101, warm), 1e-3 * (0.01 + 0.99 * 0.5)), "half-way down: the mean of lr and lr/100");
    int falling = 1;
    for (long s = 11; s < total; s++) falling &= cn_train_lr(&cfg, s, total, warm) < cn_train_lr(&cfg, s - 1, total, warm);
    CHECK(falling, "the cosine decay falls at every step");
    CHECK(near(cn_train_lr(&cfg, 0, total, 0), 1e-3), "no warm-up: the first step at lr");
    CHECK(near(cn_train_lr(&cfg, 0, 1, 0), 1e-3), "a one-step run at lr");
    cfg.schedule = CN_LR_CONSTANT;
    CHECK(near(cn_train_lr(&cfg, 0, total, warm), 1e-3) && near(cn_train_lr(&cfg, 99, total, warm), 1e-3),
          "constant schedule: lr throughout");
}

static double f1_at(const float *prob, const uint8_t *label, const uint8_t *mask, size_t n, float t)
{
    static cn_eval_acc acc;
    cn_eval_reset(&acc, t);
    cn_eval_add(&acc, prob, label, mask, n);
    cn_scores s;
    cn_eval_scores(&acc, &s);
    return s.f1;
}

static void check_threshold(void)
{
    enum { N = 20000 };
    static float prob[N];
    static uint8_t label[N], mask[N];
    static cn_eval_acc acc;
    srand(3);
    for (int i = 0; i < N; i++) {
        label[i] = rand() % 8 == 0;
        mask[i] = rand() % 10 != 0;
        /* vessels score higher on average, with overlap: the best threshold is not 0.5 */
        double u = (double)rand() / RAND_MAX;
        prob[i] = (float)(label[i] ? 0.15 + 0.85 * u : 0.6 * u * u);
    }
    cn_eval_reset(&acc, 0.5f);
    cn_eval_add(&acc, prob, label, mask, N);
    double best_f1;
    float t = cn_eval_best_threshold(&acc, &best_f1);
    double at_t = f1_at(prob, label, mask, N, t), brute = 0;
    for (int k = 1; k < 1000; k++) brute = fmax(brute, f1_at(prob, label, mask, N, k / 1000.0f));
    CHECK(t > 0 && t < 1 && fabs(t - 0.5) > 0.01, "a threshold away from 0.5 (%g)", t);
    CHECK(fabs(at_t - best_f1) < 1e-3, "its F1 %.6f is eval's at that threshold (%.6f)", best_f1, at_t);
    CHECK(best_f1 >= brute - 1e-6, "no threshold on a 0.001 grid does better (%.6f vs %.6f)", brute, best_f1);

    for (int i = 0; i < N; i++) prob[i] = 0;
    cn_eval_reset(&acc, 0.5f);
    cn_eval_add(&acc, prob, label, mask, N);
    t = cn_eval_best_threshold(&acc, &best_f1);
    CHECK(t == 0.5f && best_f1 == 0, "no vessel above the lowest bin: the neutral 0.5 (%g, F1 %g)", t, best_f1);
}

int main(void)
{
    check_schedule();
    check_threshold();
    return check_summary();
}
