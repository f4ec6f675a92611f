/*
 * curves.c - learning curves from metrics.csv (see report.h), and the small
 * drawing helpers the prediction grid shares.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/files.h"
#include "report/report.h"

/* ---------------------------------------------------------------- helpers */

void cn_report_font(cairo_t *cr, double px, int bold)
{
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, px);
}

void cn_report_text(cairo_t *cr, double x, double y, int align, const char *text)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, text, &e);
    double w = e.x_advance;
    cairo_move_to(cr, align < 0 ? x : align == 0 ? x - w / 2 : x - w, y);
    cairo_show_text(cr, text);
}

clunet_status cn_report_save(cairo_surface_t *surface, const char *path)
{
    cairo_surface_flush(surface);
    if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS)
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: cannot draw: %s", path,
                       cairo_status_to_string(cairo_surface_status(surface)));
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: path too long", path);
    cairo_status_t cs = cairo_surface_write_to_png(surface, tmp);
    if (cs != CAIRO_STATUS_SUCCESS) {
        remove(tmp);
        return cn_fail(CLUNET_ERR_IO, "%s: cannot write (%s)", path, cairo_status_to_string(cs));
    }
    if (rename(tmp, path)) {
        int e = errno;
        remove(tmp);
        return cn_fail(CLUNET_ERR_IO, "%s: cannot rename %s to it: %s", path, tmp, strerror(e));
    }
    return CLUNET_OK;
}

/* ---------------------------------------------------------------- metrics.csv */

#define MAX_COLUMNS 256
#define MAX_LINE 65536
#define MAX_ROWS 10000000

typedef struct table {
    int ncols, nrows, cap;
    char *names[MAX_COLUMNS];
    double *v; /* nrows x ncols */
} table;

static void table_free(table *t)
{
    for (int c = 0; c < t->ncols; c++) free(t->names[c]);
    free(t->v);
    memset(t, 0, sizeof *t);
}

static int column(const table *t, const char *name)
{
    for (int c = 0; c < t->ncols; c++)
        if (!strcmp(t->names[c], name)) return c;
    return -1;
}

/* Cuts line at the commas (in place), trimming blanks; returns the field count or -1 past `most`. */
static int split_fields(char *line, char **fields, int most)
{
    int n = 0;
    for (char *p = line;;) {
        char *end = strchr(p, ',');
        if (end) *end = 0;
        while (*p == ' ' || *p == '\t') p++;
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r' || p[len - 1] == '\n'))
            p[--len] = 0;
        if (n == most) return -1;
        fields[n++] = p;
        if (!end) return n;
        p = end + 1;
    }
}

static clunet_status parse_header(table *t, char *line, const char *path)
{
    char *fields[MAX_COLUMNS];
    int n = split_fields(line, fields, MAX_COLUMNS);
    if (n < 0) return cn_fail(CLUNET_ERR_FORMAT, "%s:1: more than %d columns", path, MAX_COLUMNS);
    for (int c = 0; c < n; c++) {
        if (!fields[c][0]) return cn_fail(CLUNET_ERR_FORMAT, "%s:1: column %d has no name", path, c + 1);
        for (int k = 0; k < c; k++)
            if (!strcmp(fields[k], fields[c]))
                return cn_fail(CLUNET_ERR_FORMAT, "%s:1: column '%s' appears twice", path, fields[c]);
        if (!(t->names[c] = strdup(fields[c]))) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
        t->ncols = c + 1;
    }
    if (column(t, "epoch") < 0) return cn_fail(CLUNET_ERR_FORMAT, "%s:1: the header has no 'epoch' column", path);
    return CLUNET_OK;
}

static clunet_status parse_row(table *t, char *line, const char *path, long lineno)
{
    char *fields[MAX_COLUMNS];
    int n = split_fields(line, fields, t->ncols);
    if (n != t->ncols)
        return cn_fail(CLUNET_ERR_FORMAT, "%s:%ld: %s fields where the header names %d", path, lineno,
                       n < 0 ? "more" : "fewer", t->ncols);
    if (t->nrows == MAX_ROWS) return cn_fail(CLUNET_ERR_FORMAT, "%s:%ld: more than %d epochs", path, lineno, MAX_ROWS);
    if (t->nrows == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        double *v = realloc(t->v, (size_t)cap * t->ncols * sizeof *v);
        if (!v) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of host memory at line %ld", path, lineno);
        t->v = v, t->cap = cap;
    }
    double *row = t->v + (size_t)t->nrows * t->ncols;
    for (int c = 0; c < n; c++) {
        char *end;
        /* An empty field is a value that was not recorded. */
        row[c] = fields[c][0] ? strtod(fields[c], &end) : NAN;
        if (fields[c][0] && *end)
            return cn_fail(CLUNET_ERR_FORMAT, "%s:%ld: %s '%.40s' is not a number", path, lineno, t->names[c],
                           fields[c]);
    }
    int ep = column(t, "epoch");
    if (!isfinite(row[ep]))
        return cn_fail(CLUNET_ERR_FORMAT, "%s:%ld: the epoch must be a finite number", path, lineno);
    t->nrows++;
    return CLUNET_OK;
}

static clunet_status read_table(const char *path, table *t)
{
    memset(t, 0, sizeof *t);
    FILE *f;
    CN_TRY(cn_open_read(path, &f));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    clunet_status st = CLUNET_OK;
    while (st == CLUNET_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > MAX_LINE) st = cn_fail(CLUNET_ERR_FORMAT, "%s:%ld: line longer than %d bytes", path, lineno, MAX_LINE);
        else if (strlen(line) != (size_t)len) st = cn_fail(CLUNET_ERR_FORMAT, "%s:%ld: contains a NUL byte", path, lineno);
        else if (lineno == 1) st = parse_header(t, line, path);
        else if (strspn(line, " \t\r\n") != (size_t)len) st = parse_row(t, line, path, lineno);
    }
    if (st == CLUNET_OK && ferror(f)) st = cn_fail(CLUNET_ERR_IO, "%s: read error: %s", path, strerror(errno));
    if (st == CLUNET_OK && lineno == 0) st = cn_fail(CLUNET_ERR_FORMAT, "%s: empty file (no header)", path);
    if (st == CLUNET_OK && t->nrows == 0) st = cn_fail(CLUNET_ERR_FORMAT, "%s: no epochs after the header", path);
    free(line);
    fclose(f);
    if (st != CLUNET_OK) table_free(t);
    return st;
}

typedef struct row_key {
    double epoch;
    int row;
} row_key;

/* By epoch, then by position in the file. */
static int by_epoch(const void *a, const void *b)
{
    const row_key *x = a, *y = b;
    if (x->epoch != y->epoch) return x->epoch < y->epoch ? -1 : 1;
    return x->row - y->row;
}

/* Orders the rows by epoch; of rows with the same epoch (a resumed run repeats some) keeps the last. */
static clunet_status order_rows(table *t)
{
    int ep = column(t, "epoch");
    row_key *keys = malloc((size_t)t->nrows * sizeof *keys);
    double *v = malloc((size_t)t->nrows * t->ncols * sizeof *v);
    if (!keys || !v) {
        free(keys), free(v);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    for (int r = 0; r < t->nrows; r++) keys[r] = (row_key){t->v[(size_t)r * t->ncols + ep], r};
    qsort(keys, t->nrows, sizeof *keys, by_epoch);
    int kept = 0;
    for (int r = 0; r < t->nrows; r++) {
        if (r + 1 < t->nrows && keys[r + 1].epoch == keys[r].epoch) continue;
        memcpy(v + (size_t)kept++ * t->ncols, t->v + (size_t)keys[r].row * t->ncols, t->ncols * sizeof *v);
    }
    free(t->v);
    free(keys);
    t->v = v, t->nrows = kept;
    return CLUNET_OK;
}

/* ---------------------------------------------------------------- plotting */

typedef struct plot_spec {
    const char *file;     /* curve_FILE.png */
    const char *title, *ylabel;
    const char *train, *val; /* column names (train may be NULL) */
    int score;            /* fixed range 0..1 (-1..1 when a value is negative); else automatic */
    const char *extra, *extra_label; /* a third series, or NULL */
} plot_spec;

static const plot_spec plots[] = {
    {"loss", "Loss (focal + Dice)", "loss", "train_loss", "val_loss", 0},
    /* best.safetensors is the epoch with the best F1 at its own best threshold: the third series */
    {"f1", "F1 (Dice) of the vessel class", "F1", "train_f1", "val_f1", 1, "val_best_f1",
     "validation at its best threshold"},
    {"accuracy", "Pixel accuracy", "accuracy", "train_accuracy", "val_accuracy", 1},
    {"iou", "IoU of the vessel class", "IoU", NULL, "val_iou", 1},
    {"mcc", "Matthews correlation coefficient", "MCC", NULL, "val_mcc", 1},
    {"precision", "Precision", "precision", NULL, "val_precision", 1},
    {"recall", "Recall (sensitivity)", "recall", NULL, "val_recall", 1},
    {"specificity", "Specificity", "specificity", NULL, "val_specificity", 1},
    {"auc", "ROC AUC", "AUC", NULL, "val_auc", 1},
};

/* Line colours (matplotlib's first two): training blue, validation orange. */
static const double train_rgb[3] = {31 / 255.0, 119 / 255.0, 180 / 255.0};
static const double val_rgb[3] = {255 / 255.0, 127 / 255.0, 14 / 255.0};
static const double extra_rgb[3] = {44 / 255.0, 160 / 255.0, 44 / 255.0};

/* Plot area inside the 800x500 canvas. */
#define PLOT_LEFT 84.0
#define PLOT_RIGHT 776.0
#define PLOT_TOP 76.0
#define PLOT_BOTTOM 436.0

typedef struct axis {
    double lo, hi, step;
} axis;

/* 1, 2 or 5 times a power of ten, giving about `want` intervals over span. */
static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static int decimals(double step)
{
    double d = ceil(-log10(step) - 1e-9);
    return d > 0 ? (d < 9 ? (int)d : 9) : 0;
}

typedef struct series {
    const char *label;
    const double *rgb;
    double *y; /* one per row, NaN where missing */
    int best;  /* row of the best value, -1 if none */
} series;

static double map_x(const axis *a, double v) { return PLOT_LEFT + (v - a->lo) / (a->hi - a->lo) * (PLOT_RIGHT - PLOT_LEFT); }
static double map_y(const axis *a, double v) { return PLOT_BOTTOM - (v - a->lo) / (a->hi - a->lo) * (PLOT_BOTTOM - PLOT_TOP); }

static axis x_axis(const double *epochs, int n)
{
    axis a;
    double lo = epochs[0], hi = epochs[n - 1];
    if (hi - lo < 1) lo -= 0.5, hi += 0.5; /* a single epoch sits in the middle */
    if (!(hi > lo)) hi = lo + fabs(lo);    /* epochs too large for the half to count */
    a.step = nice_step(hi - lo, 8);
    if (a.step < 1) a.step = 1;
    double pad = (hi - lo) * 0.02;
    a.lo = lo - pad, a.hi = hi + pad;
    return a;
}

static axis y_axis(const series *s, int ns, int n, int score)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int r = 0; r < n; r++)
            if (isfinite(s[k].y[r])) lo = fmin(lo, s[k].y[r]), hi = fmax(hi, s[k].y[r]);
    axis a;
    if (score) {
        a.lo = lo < 0 ? -1 : 0, a.hi = 1, a.step = lo < 0 ? 0.2 : 0.1;
    } else {
        if (!(lo <= hi)) lo = 0, hi = 1; /* nothing recorded */
        if (lo > 0) lo = 0;              /* losses: show how far from zero */
        if (!(hi - lo > 1e-9 * fabs(lo))) hi = lo + fmax(1, fabs(lo));
        a.step = nice_step(hi - lo, 6);
        a.lo = floor(lo / a.step) * a.step;
        a.hi = ceil(hi / a.step) * a.step;
    }
    /* A margin so that values on the limits (a perfect score, a zero loss) stay clear of the frame. */
    double pad = (a.hi - a.lo) * 0.03;
    a.lo -= pad, a.hi += pad;
    return a;
}

/* The ticks inside the axis: how many (none when the values are beyond what a double resolves) and the first. */
static int ticks(const axis *a, double *first)
{
    double count = floor(a->hi / a->step + 1e-9) - ceil(a->lo / a->step - 1e-9) + 1;
    *first = ceil(a->lo / a->step - 1e-9) * a->step;
    return isfinite(*first) && isfinite(a->step) && count >= 1 && count <= 50 ? (int)count : 0;
}

static void draw_axes(cairo_t *cr, const axis *xa, const axis *ya, const plot_spec *p)
{
    char buf[64];
    cairo_set_line_width(cr, 1);
    cn_report_font(cr, 13, 0);
    /* Grid lines and tick labels. */
    int yd = decimals(ya->step);
    double first;
    int n = ticks(ya, &first);
    for (int i = 0; i < n; i++) {
        double v = first + i * ya->step, y = round(map_y(ya, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, PLOT_LEFT, y), cairo_line_to(cr, PLOT_RIGHT, y), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_move_to(cr, PLOT_LEFT - 5, y), cairo_line_to(cr, PLOT_LEFT, y), cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.*f", yd, fabs(v) < ya->step * 1e-6 ? 0.0 : v);
        cn_report_text(cr, PLOT_LEFT - 9, y + 4.5, 1, buf);
    }
    n = ticks(xa, &first);
    for (int i = 0; i < n; i++) {
        double v = first + i * xa->step, x = round(map_x(xa, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, x, PLOT_TOP), cairo_line_to(cr, x, PLOT_BOTTOM), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_move_to(cr, x, PLOT_BOTTOM), cairo_line_to(cr, x, PLOT_BOTTOM + 5), cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.0f", v + 0.0); /* + 0.0 turns -0 into 0 */
        cn_report_text(cr, x, PLOT_BOTTOM + 20, 0, buf);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_rectangle(cr, PLOT_LEFT + 0.5, PLOT_TOP + 0.5, PLOT_RIGHT - PLOT_LEFT - 1, PLOT_BOTTOM - PLOT_TOP - 1);
    cairo_stroke(cr);

    cn_report_font(cr, 15, 0);
    cn_report_text(cr, (PLOT_LEFT + PLOT_RIGHT) / 2, PLOT_BOTTOM + 46, 0, "epoch");
    cairo_save(cr);
    cairo_translate(cr, 24, (PLOT_TOP + PLOT_BOTTOM) / 2);
    cairo_rotate(cr, -M_PI / 2);
    cn_report_text(cr, 0, 0, 0, p->ylabel);
    cairo_restore(cr);
    cn_report_font(cr, 19, 1);
    cn_report_text(cr, CN_CURVE_WIDTH / 2.0, 30, 0, p->title);
}

/* A line through the recorded values (broken at gaps), with dots while they are few enough to tell apart. */
static void draw_series(cairo_t *cr, const series *s, const double *epochs, int n, const axis *xa, const axis *ya)
{
    cairo_save(cr);
    cairo_rectangle(cr, PLOT_LEFT, PLOT_TOP, PLOT_RIGHT - PLOT_LEFT, PLOT_BOTTOM - PLOT_TOP);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, s->rgb[0], s->rgb[1], s->rgb[2]);
    cairo_set_line_width(cr, n > 300 ? 1.5 : 2.5);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    int drawing = 0;
    for (int r = 0; r < n; r++) {
        if (!isfinite(s->y[r])) {
            drawing = 0;
            continue;
        }
        double x = map_x(xa, epochs[r]), y = map_y(ya, s->y[r]);
        if (drawing) cairo_line_to(cr, x, y);
        else cairo_move_to(cr, x, y);
        drawing = 1;
    }
    cairo_stroke(cr);
    /* Dots while there is room for them, and always for a value with no neighbour to join. */
    for (int r = 0; r < n; r++) {
        if (!isfinite(s->y[r])) continue;
        int alone = (r == 0 || !isfinite(s->y[r - 1])) && (r + 1 == n || !isfinite(s->y[r + 1]));
        if (n > 60 && !alone) continue;
        cairo_arc(cr, map_x(xa, epochs[r]), map_y(ya, s->y[r]), 4, 0, 2 * M_PI);
        cairo_fill(cr);
    }
    cairo_restore(cr);
}

/* One row of entries, or two when they do not fit the width (both above the plot area). */
static void draw_legend(cairo_t *cr, const series *s, int ns, const double *epochs, int lower_better)
{
    char text[3][128];
    double width[3], total = 0;
    cn_report_font(cr, ns > 2 ? 13 : 14, 0);
    for (int k = 0; k < ns; k++) {
        if (s[k].best >= 0)
            snprintf(text[k], sizeof text[k], "%s (%s %.4f at epoch %.0f)", s[k].label, lower_better ? "lowest" : "best",
                     s[k].y[s[k].best], epochs[s[k].best]);
        else snprintf(text[k], sizeof text[k], "%s (no values)", s[k].label);
        cairo_text_extents_t e;
        cairo_text_extents(cr, text[k], &e);
        width[k] = 34 + e.x_advance;
        total += width[k] + (k ? 28 : 0);
    }
    int split = ns; /* entries [0, split) on the first row */
    if (total > CN_CURVE_WIDTH - 40) split = ns - 1;
    double first = 0, y = split < ns ? 50 : 56;
    for (int k = 0; k < split; k++) first += width[k] + (k ? 28 : 0);
    double x = (CN_CURVE_WIDTH - first) / 2;
    for (int k = 0; k < ns; k++) {
        if (k == split) {
            double rest = 0;
            for (int j = split; j < ns; j++) rest += width[j] + (j > split ? 28 : 0);
            x = (CN_CURVE_WIDTH - rest) / 2, y += 18;
        }
        cairo_set_source_rgb(cr, s[k].rgb[0], s[k].rgb[1], s[k].rgb[2]);
        cairo_set_line_width(cr, 3);
        cairo_move_to(cr, x, y - 5), cairo_line_to(cr, x + 26, y - 5), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cn_report_text(cr, x + 34, y, -1, text[k]);
        x += width[k] + 28;
    }
}

static int best_row(const double *y, int n, int lower_better)
{
    int best = -1;
    for (int r = 0; r < n; r++)
        if (isfinite(y[r]) && (best < 0 || (lower_better ? y[r] < y[best] : y[r] > y[best]))) best = r;
    return best;
}

static clunet_status draw_plot(const table *t, const plot_spec *p, const char *out_dir, double *buf)
{
    int n = t->nrows, ns = 0, ep = column(t, "epoch");
    series s[3];
    const char *cols[3] = {p->train, p->val, p->extra}, *labels[3] = {"training", "validation", p->extra_label};
    const double *rgbs[3] = {train_rgb, val_rgb, extra_rgb};
    double *epochs = buf;
    for (int r = 0; r < n; r++) epochs[r] = t->v[(size_t)r * t->ncols + ep];
    for (int k = 0; k < 3; k++) {
        int c = cols[k] ? column(t, cols[k]) : -1;
        if (c < 0) continue;
        double *y = buf + (size_t)(ns + 1) * n;
        for (int r = 0; r < n; r++) y[r] = t->v[(size_t)r * t->ncols + c];
        s[ns] = (series){labels[k], rgbs[k], y, best_row(y, n, !p->score)};
        ns++;
    }
    if (!ns) return CLUNET_OK; /* an older metrics.csv without this column */

    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, CN_CURVE_WIDTH, CN_CURVE_HEIGHT);
    cairo_t *cr = cairo_create(surface);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    axis xa = x_axis(epochs, n), ya = y_axis(s, ns, n, p->score);
    draw_axes(cr, &xa, &ya, p);
    for (int k = 0; k < ns; k++) draw_series(cr, &s[k], epochs, n, &xa, &ya);
    draw_legend(cr, s, ns, epochs, !p->score);
    cairo_destroy(cr);

    char path[4096];
    clunet_status st = snprintf(path, sizeof path, "%s/curve_%s.png", out_dir, p->file) < (int)sizeof path
                           ? cn_report_save(surface, path)
                           : cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: directory name too long", out_dir);
    cairo_surface_destroy(surface);
    return st;
}

clunet_status cn_report_curves(const char *metrics_csv, const char *out_dir)
{
    table t;
    CN_TRY(read_table(metrics_csv, &t));
    clunet_status st = order_rows(&t);
    double *buf = st ? NULL : malloc((size_t)4 * t.nrows * sizeof *buf);
    if (!st && !buf) st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    for (size_t i = 0; !st && i < sizeof plots / sizeof plots[0]; i++) st = draw_plot(&t, &plots[i], out_dir, buf);
    free(buf);
    table_free(&t);
    return st;
}
