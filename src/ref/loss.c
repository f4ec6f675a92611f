/*
 * loss.c - reference focal Dice loss on logits, with an optional pixel mask.
 *
 * focal = mean over masked pixels of
 *         -alpha (1-p)^gamma y log(p+eps) - (1-alpha) p^gamma (1-y) log(1-p+eps)
 * dice  = 1 - (2 sum(p y) + smooth) / (sum p + sum y + smooth), sums over masked pixels
 * total = focal + dice, or lambda focal + (1-lambda) dice when lambda >= 0.
 */
#include <math.h>

#include "ref/pointwise.h"

static double sigmoid(double z)
{
    if (z >= 0.0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* d(q^g)/dq, defined as 0 for g == 0 (the term is constant). */
static double dpow(double q, double g) { return g == 0.0 ? 0.0 : g * pow(q, g - 1.0); }

double cn_ref_focal_dice(const double *z, const double *y, const double *mask, size_t count, double alpha,
                         double gamma, double eps, double smooth, double lambda, double parts[2], double *dz)
{
    // z, y, mask are (N,1,H,W) flattened to count pixels
    double m_sum = 0.0, f_sum = 0.0, py = 0.0, p_sum = 0.0, y_sum = 0.0;
    for (size_t i = 0; i < count; i++) {
        double m = mask ? mask[i] : 1.0, p = sigmoid(z[i]);
        m_sum += m;
        f_sum += m * (-alpha * pow(1.0 - p, gamma) * y[i] * log(p + eps) -
                      (1.0 - alpha) * pow(p, gamma) * (1.0 - y[i]) * log(1.0 - p + eps));
        py += m * p * y[i];
        p_sum += m * p;
        y_sum += m * y[i];
    }
    double focal = m_sum > 0.0 ? f_sum / m_sum : 0.0;
    double den = p_sum + y_sum + smooth, num = 2.0 * py + smooth;
    double dice = 1.0 - num / den;
    double wf = lambda < 0.0 ? 1.0 : lambda, wd = lambda < 0.0 ? 1.0 : 1.0 - lambda;
    parts[0] = focal;
    parts[1] = dice;
    if (dz)
        for (size_t i = 0; i < count; i++) {
            double m = mask ? mask[i] : 1.0, p = sigmoid(z[i]), t = y[i];
            double dfocal = -alpha * t * (-dpow(1.0 - p, gamma) * log(p + eps) + pow(1.0 - p, gamma) / (p + eps)) -
                            (1.0 - alpha) * (1.0 - t) *
                                (dpow(p, gamma) * log(1.0 - p + eps) - pow(p, gamma) / (1.0 - p + eps));
            double ddice = -(2.0 * t * den - num) / (den * den);
            double dp = (m_sum > 0.0 ? wf * dfocal / m_sum : 0.0) + wd * ddice;
            dz[i] = m * dp * p * (1.0 - p);
        }
    return wf * focal + wd * dice;
}
