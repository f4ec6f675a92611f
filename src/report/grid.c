/* grid.c - predictions beside their ground truth, one row per image (see report.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "report/report.h"

#define MARGIN 14
#define GAP 10     /* between panels of a row */
#define HEADER 34  /* column titles */
#define CAPTION 24 /* a row's name and F1, above its panels */
#define ROW_GAP 14
#define LEGEND 46

enum { PANEL_IMAGE, PANEL_LABEL, PANEL_PROB, PANEL_ERRORS, PANELS };

static int panel_height(const cn_sample_image *s)
{
    return (int)lround((double)CN_GRID_PANEL * s->height / s->width);
}

void cn_report_grid_panel(const cn_sample_image *samples, int row, int col, int rect[4])
{
    int y = MARGIN + HEADER;
    for (int i = 0; i < row; i++) y += CAPTION + panel_height(&samples[i]) + ROW_GAP;
    rect[0] = MARGIN + col * (CN_GRID_PANEL + GAP);
    rect[1] = y + CAPTION;
    rect[2] = CN_GRID_PANEL;
    rect[3] = panel_height(&samples[row]);
}

void cn_report_grid_size(const cn_sample_image *samples, int count, int *width, int *height)
{
    int last[4];
    cn_report_grid_panel(samples, count - 1, PANELS - 1, last);
    *width = last[0] + last[2] + MARGIN;
    *height = last[1] + last[3] + ROW_GAP + LEGEND;
}

static uint32_t grey(float p)
{
    /* NaN shows as 0: the comparison is false. */
    uint32_t g = p > 0 ? (p < 1 ? (uint32_t)(p * 255 + 0.5f) : 255) : 0;
    return g << 16 | g << 8 | g;
}

/* The colour of pixel i of one panel (0xRRGGBB). */
static uint32_t pixel(int kind, const cn_sample_image *s, const float *prob, float threshold, size_t i)
{
    int inside = !s->mask || s->mask[i];
    switch (kind) {
    case PANEL_IMAGE: return (uint32_t)s->rgb[3 * i] << 16 | (uint32_t)s->rgb[3 * i + 1] << 8 | s->rgb[3 * i + 2];
    case PANEL_LABEL: return !inside ? CN_GRID_OUTSIDE : s->label[i] ? 0xffffff : 0x000000;
    case PANEL_PROB: return grey(prob[i]);
    default: {
        if (!inside) return CN_GRID_OUTSIDE;
        int vessel = s->label[i] != 0, found = prob[i] > threshold;
        return vessel ? (found ? CN_GRID_TP : CN_GRID_FN) : (found ? CN_GRID_FP : CN_GRID_TN);
    }
    }
}

/* One panel at the sample's own resolution. */
static clunet_status render_panel(int kind, const cn_sample_image *s, const float *prob, float threshold,
                                  cairo_surface_t **out)
{
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, s->width, s->height);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: cannot make a %dx%d picture", s->name, s->width, s->height);
    }
    cairo_surface_flush(img);
    unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    for (int y = 0; y < s->height; y++) {
        uint32_t *line = (uint32_t *)(data + (size_t)y * stride);
        for (int x = 0; x < s->width; x++) line[x] = pixel(kind, s, prob, threshold, (size_t)y * s->width + x);
    }
    cairo_surface_mark_dirty(img);
    *out = img;
    return CLUNET_OK;
}

static void set_rgb(cairo_t *cr, uint32_t c)
{
    cairo_set_source_rgb(cr, (c >> 16 & 255) / 255.0, (c >> 8 & 255) / 255.0, (c & 255) / 255.0);
}

/* Scales the picture into rect: averaging when shrinking, crisp pixels when enlarging. */
static void paint_scaled(cairo_t *cr, cairo_surface_t *img, const int rect[4])
{
    int w = cairo_image_surface_get_width(img), h = cairo_image_surface_get_height(img);
    cairo_save(cr);
    cairo_rectangle(cr, rect[0], rect[1], rect[2], rect[3]);
    cairo_clip(cr);
    cairo_translate(cr, rect[0], rect[1]);
    cairo_scale(cr, (double)rect[2] / w, (double)rect[3] / h);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), rect[2] < w ? CAIRO_FILTER_GOOD : CAIRO_FILTER_NEAREST);
    cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
    cairo_paint(cr);
    cairo_restore(cr);
}

static void paint_no_label(cairo_t *cr, const int rect[4])
{
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_rectangle(cr, rect[0], rect[1], rect[2], rect[3]);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cn_report_font(cr, 15, 0);
    cn_report_text(cr, rect[0] + rect[2] / 2.0, rect[1] + rect[3] / 2.0 + 5, 0, "no label");
}

/* "NAME   F1 0.8123 (TP ..., FN ..., FP ...)" over the field of view. */
static void caption(const cn_sample_image *s, const float *prob, float threshold, char *out, size_t n)
{
    if (!s->label) {
        snprintf(out, n, "%s   (no label)", s->name ? s->name : "");
        return;
    }
    unsigned long long tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < (size_t)s->width * s->height; i++) {
        if (s->mask && !s->mask[i]) continue;
        int vessel = s->label[i] != 0, found = prob[i] > threshold;
        tp += vessel && found, fn += vessel && !found, fp += !vessel && found;
    }
    if (tp + fp + fn == 0) snprintf(out, n, "%s   F1 n/a (no vessel, none predicted)", s->name ? s->name : "");
    else
        snprintf(out, n, "%s   F1 %.4f in the field of view  (TP %llu, missed %llu, false alarms %llu)",
                 s->name ? s->name : "", 2.0 * tp / (2.0 * tp + fp + fn), tp, fn, fp);
}

static void draw_legend(cairo_t *cr, int y)
{
    static const struct {
        uint32_t rgb;
        const char *text;
    } keys[] = {{CN_GRID_TP, "vessel found (TP)"},    {CN_GRID_FN, "vessel missed (FN)"},
                {CN_GRID_FP, "false alarm (FP)"},      {CN_GRID_TN, "background (TN)"},
                {CN_GRID_OUTSIDE, "outside the field of view"}};
    cn_report_font(cr, 14, 0);
    double x = MARGIN;
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cn_report_text(cr, x, y + 14, -1, "errors:");
    x += 66;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        set_rgb(cr, keys[k].rgb);
        cairo_rectangle(cr, x, y, 18, 18);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
        cairo_set_line_width(cr, 1);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_text_extents_t e;
        cairo_text_extents(cr, keys[k].text, &e);
        cn_report_text(cr, x + 25, y + 14, -1, keys[k].text);
        x += 25 + e.x_advance + 22;
    }
}

static clunet_status check_args(const char *path, const cn_sample_image *samples, const float *const *probs,
                                int count, float threshold)
{
    if (count < 1 || !samples || !probs)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: a prediction grid needs at least one image", path);
    if (!(threshold > 0 && threshold < 1))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: threshold %g is not in (0, 1)", path, threshold);
    long height = MARGIN + HEADER + ROW_GAP + LEGEND;
    for (int i = 0; i < count; i++) {
        const cn_sample_image *s = &samples[i];
        if (s->width < 1 || s->height < 1 || !s->rgb || !probs[i])
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: image %d (%s) has no pixels or no probabilities", path,
                           i + 1, s->name ? s->name : "");
        height += CAPTION + ROW_GAP + (long)CN_GRID_PANEL * s->height / s->width;
    }
    if (height > 32000)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: %d images make a grid %ld pixels tall: give fewer", path,
                       count, height);
    return CLUNET_OK;
}

static clunet_status draw_row(cairo_t *cr, const cn_sample_image *samples, int row, const float *prob,
                              float threshold)
{
    const cn_sample_image *s = &samples[row];
    int rect[4];
    char text[512];
    cn_report_grid_panel(samples, row, 0, rect);
    caption(s, prob, threshold, text, sizeof text);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cn_report_font(cr, 14, 0);
    cn_report_text(cr, rect[0], rect[1] - 7, -1, text);
    for (int kind = 0; kind < PANELS; kind++) {
        cn_report_grid_panel(samples, row, kind, rect);
        if (!s->label && (kind == PANEL_LABEL || kind == PANEL_ERRORS)) {
            paint_no_label(cr, rect);
            continue;
        }
        cairo_surface_t *img = NULL;
        CN_TRY(render_panel(kind, s, prob, threshold, &img));
        paint_scaled(cr, img, rect);
        cairo_surface_destroy(img);
    }
    return CLUNET_OK;
}

clunet_status cn_report_grid(const char *path, const cn_sample_image *samples, const float *const *probs, int count,
                             float threshold)
{
    CN_TRY(check_args(path, samples, probs, count, threshold));
    int width, height;
    cn_report_grid_size(samples, count, &width, &height);
    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(surface);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    char errors_title[64];
    snprintf(errors_title, sizeof errors_title, "errors at threshold %.2f", threshold);
    const char *titles[PANELS] = {"image", "ground truth", "probability of vessel", errors_title};
    cn_report_font(cr, 16, 1);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (int c = 0; c < PANELS; c++) {
        int rect[4];
        cn_report_grid_panel(samples, 0, c, rect);
        cn_report_text(cr, rect[0] + rect[2] / 2.0, MARGIN + 18, 0, titles[c]);
    }
    clunet_status st = CLUNET_OK;
    for (int i = 0; i < count && st == CLUNET_OK; i++) st = draw_row(cr, samples, i, probs[i], threshold);
    if (st == CLUNET_OK) {
        draw_legend(cr, height - LEGEND + 6);
        st = cn_report_save(surface, path);
    }
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
    return st;
}
