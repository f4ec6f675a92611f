/*
 * report.h - pictures of a training run, drawn with cairo: learning curves
 * from metrics.csv and a grid of predictions beside their ground truth.
 * Knows nothing about OpenCL; the caller computes the probabilities.
 */
#ifndef CLUNET_REPORT_REPORT_H
#define CLUNET_REPORT_REPORT_H

#include <cairo.h>

#include "data/pipeline.h"

/* Size of every learning-curve PNG. */
#define CN_CURVE_WIDTH 800
#define CN_CURVE_HEIGHT 500

/*
 * Reads metrics.csv (the header names the columns, see train.c) and writes
 * out_dir/curve_NAME.png for loss, f1, accuracy, iou, mcc, precision, recall,
 * specificity and auc: training and validation where both were recorded.
 * Empty and NaN values are skipped; for a repeated epoch (a resumed run) the
 * later row wins. A malformed file fails with its name and line.
 */
clunet_status cn_report_curves(const char *metrics_csv, const char *out_dir);

/* Width of each panel of the prediction grid; images are scaled to it. */
#define CN_GRID_PANEL 320

/* Colours of the error panel (0xRRGGBB). */
#define CN_GRID_TP 0xffffff      /* vessel found */
#define CN_GRID_FN 0xf03c3c      /* vessel missed */
#define CN_GRID_FP 0x28b4ff      /* false alarm */
#define CN_GRID_TN 0x000000      /* background */
#define CN_GRID_OUTSIDE 0x404040 /* outside the field of view */

/*
 * Writes one PNG with a row per sample: image | ground truth | probability
 * (grey) | errors at `threshold` (prob > threshold is vessel), with column
 * titles, each row's F1 and a colour legend. probs[i] is (H,W) for
 * samples[i]; a sample without a label gets "no label" panels.
 */
clunet_status cn_report_grid(const char *path, const cn_sample_image *samples, const float *const *probs, int count,
                             float threshold);

/* Where panel `col` (0-3, in the order above) of row `row` lies in that PNG: x, y, width, height. */
void cn_report_grid_panel(const cn_sample_image *samples, int row, int col, int rect[4]);

/* The whole PNG's size for `count` rows. */
void cn_report_grid_size(const cn_sample_image *samples, int count, int *width, int *height);

/* -- shared by curves.c and grid.c -- */

/* Sets the sans-serif face at `px` pixels, bold or not. */
void cn_report_font(cairo_t *cr, double px, int bold);

/* Draws text with its anchor at (x, y): align -1 left, 0 centre, 1 right; y is the baseline. */
void cn_report_text(cairo_t *cr, double x, double y, int align, const char *text);

/* Writes the surface to path through a temporary file and a rename (readers never see half a PNG). */
clunet_status cn_report_save(cairo_surface_t *surface, const char *path);

#endif
