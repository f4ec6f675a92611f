/*
 * test-report.c - learning curves and prediction grids: the PNGs exist, load,
 * have their size, show the plotted colours where the values put them, the
 * grid's panels colour known pixels as documented, and malformed metrics.csv
 * files fail with their name and line.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "data/image.h"
#include "report/report.h"

#include "check.h"

static char dir[256];

static const char *curve_names[] = {"loss", "f1", "accuracy", "iou", "mcc", "precision", "recall", "specificity", "auc"};
#define NCURVES (int)(sizeof curve_names / sizeof curve_names[0])

static const unsigned char train_rgb[3] = {31, 119, 180}, val_rgb[3] = {255, 127, 14};

static const char *header = "epoch,train_loss,train_focal,train_dice,train_f1,train_accuracy,val_loss,val_accuracy,"
                            "val_f1,val_iou,val_mcc,val_precision,val_recall,val_specificity,val_auc,lr,seconds\n";

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* One row of plausible metrics for epoch e of n; `f1` overrides val_f1 when >= 0; nan_every puts NaN and empty fields in. */
static void write_row(FILE *f, int e, int n, double f1, int nan_every)
{
    double t = (double)e / n, loss = 1.2 * exp(-3 * t) + 0.25;
    double vf1 = f1 >= 0 ? f1 : 0.3 + 0.5 * t;
    int gap = nan_every && e % nan_every == 0;
    fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,", e, loss, loss * 0.3, loss * 0.7, 0.35 + 0.55 * t, 0.9 + 0.08 * t);
    if (gap) fprintf(f, "nan,0.95,%.6f,,-nan,0.7,0.75,0.98,nan,0.0001,12.5\n", vf1);
    else
        fprintf(f, "%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,0.0001,12.5\n", loss * 1.1, 0.86 + 0.07 * t, vf1,
                vf1 * 0.7, vf1 * 0.9, 0.6 + 0.3 * t, 0.5 + 0.3 * t, 0.97 + 0.02 * t, 0.85 + 0.13 * t);
}

static void write_csv(const char *path, int n, double f1, int nan_every)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fputs(header, f);
    for (int e = 1; e <= n; e++) write_row(f, e, n, f1, nan_every);
    fclose(f);
}

static int near(const float *p, const unsigned char rgb[3], float tol)
{
    return fabsf(p[0] - rgb[0]) <= tol && fabsf(p[1] - rgb[1]) <= tol && fabsf(p[2] - rgb[2]) <= tol;
}

/* Pixels of colour rgb below the title and legend (rows 80 and down), and their mean row. */
static int count_colour(const cn_image *img, const unsigned char rgb[3], double *mean_y)
{
    int n = 0;
    double sum = 0;
    for (int y = 80; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            if (near(img->data + ((size_t)y * img->width + x) * 3, rgb, 6)) n++, sum += y;
    if (mean_y) *mean_y = n ? sum / n : NAN;
    return n;
}

static double variance(const cn_image *img)
{
    double s = 0, s2 = 0;
    size_t n = (size_t)img->width * img->height * img->channels;
    for (size_t i = 0; i < n; i++) s += img->data[i], s2 += (double)img->data[i] * img->data[i];
    return s2 / n - (s / n) * (s / n);
}

static int load_curve(const char *out, const char *name, cn_image *img)
{
    char path[512];
    snprintf(path, sizeof path, "%s/curve_%s.png", out, name);
    if (cn_image_load(path, img) != CLUNET_OK) {
        CHECK(0, "%s: %s", path, clunet_last_error());
        return 0;
    }
    CHECK(img->width == CN_CURVE_WIDTH && img->height == CN_CURVE_HEIGHT && img->channels == 3,
          "%s is %dx%dx%d, expected %dx%dx3", path, img->width, img->height, img->channels, CN_CURVE_WIDTH,
          CN_CURVE_HEIGHT);
    return img->width == CN_CURVE_WIDTH && img->height == CN_CURVE_HEIGHT && img->channels == 3;
}

/* Every curve renders; both lines where training is recorded, only validation's elsewhere. */
static void test_curves(int epochs, int nan_every)
{
    char csv[1024], out[512];
    snprintf(out, sizeof out, "%s/curves-%d-%d", dir, epochs, nan_every);
    snprintf(csv, sizeof csv, "%s.csv", out);
    make_dir(out);
    write_csv(csv, epochs, -1, nan_every);
    clunet_status st = cn_report_curves(csv, out);
    CHECK(st == CLUNET_OK, "%d epochs (NaN every %d): %s", epochs, nan_every, clunet_last_error());
    if (st) return;
    for (int k = 0; k < NCURVES; k++) {
        cn_image img = {0};
        if (!load_curve(out, curve_names[k], &img)) continue;
        int has_train = k < 3; /* loss, f1, accuracy */
        int nt = count_colour(&img, train_rgb, NULL), nv = count_colour(&img, val_rgb, NULL);
        CHECK(variance(&img) > 100, "curve_%s (%d epochs) looks blank", curve_names[k], epochs);
        CHECK(nv >= 20, "curve_%s (%d epochs): only %d validation-coloured pixels", curve_names[k], epochs, nv);
        if (has_train) CHECK(nt >= 20, "curve_%s (%d epochs): only %d training-coloured pixels", curve_names[k], epochs, nt);
        else CHECK(nt == 0, "curve_%s (%d epochs): %d training-coloured pixels in a validation-only plot", curve_names[k],
                   epochs, nt);
        cn_image_free(&img);
    }
}

/* A constant validation F1 of 0.75 is drawn in the upper half of the 0..1 axis, 0.25 in the lower. */
static void test_curve_position(void)
{
    double f1s[2] = {0.75, 0.25}, mean_y[2];
    for (int i = 0; i < 2; i++) {
        char csv[512];
        snprintf(csv, sizeof csv, "%s/const.csv", dir);
        write_csv(csv, 20, f1s[i], 0);
        cn_image img = {0};
        CHECK(cn_report_curves(csv, dir) == CLUNET_OK, "constant F1: %s", clunet_last_error());
        if (!load_curve(dir, "f1", &img)) return;
        count_colour(&img, val_rgb, &mean_y[i]);
        cn_image_free(&img);
    }
    CHECK(mean_y[0] < CN_CURVE_HEIGHT / 2.0 && mean_y[1] > CN_CURVE_HEIGHT / 2.0,
          "F1 0.75 drawn at mean row %.1f, 0.25 at %.1f (the canvas is %d tall)", mean_y[0], mean_y[1], CN_CURVE_HEIGHT);
}

static int same_png(const char *a, const char *b)
{
    cn_image x = {0}, y = {0};
    int same = cn_image_load(a, &x) == CLUNET_OK && cn_image_load(b, &y) == CLUNET_OK && x.width == y.width &&
               x.height == y.height && x.channels == y.channels &&
               !memcmp(x.data, y.data, (size_t)x.width * x.height * x.channels * sizeof(float));
    cn_image_free(&x), cn_image_free(&y);
    return same;
}

/* Rows out of order and a repeated epoch (the later row wins) give the same picture as the clean file. */
static void test_curve_order(void)
{
    char clean[512], messy[512], a[1024], b[1024];
    snprintf(clean, sizeof clean, "%s/order-clean", dir);
    snprintf(messy, sizeof messy, "%s/order-messy", dir);
    make_dir(clean);
    make_dir(messy);
    snprintf(a, sizeof a, "%s/metrics.csv", clean);
    write_csv(a, 6, -1, 0);
    snprintf(b, sizeof b, "%s/metrics.csv", messy);
    FILE *f = fopen(b, "w");
    if (!f) exit(1);
    fputs(header, f);
    int order[] = {3, 1, 2, 5, 4, 6};
    write_row(f, 4, 6, 0.01, 0); /* superseded by the later epoch-4 row */
    for (int i = 0; i < 6; i++) write_row(f, order[i], 6, -1, 0);
    fclose(f);
    CHECK(cn_report_curves(a, clean) == CLUNET_OK, "%s", clunet_last_error());
    CHECK(cn_report_curves(b, messy) == CLUNET_OK, "%s", clunet_last_error());
    for (int k = 0; k < NCURVES; k++) {
        snprintf(a, sizeof a, "%s/curve_%s.png", clean, curve_names[k]);
        snprintf(b, sizeof b, "%s/curve_%s.png", messy, curve_names[k]);
        CHECK(same_png(a, b), "%s and %s differ: unordered rows or a repeated epoch are mishandled", a, b);
    }
}

/* Each malformed file fails with CLUNET_ERR_FORMAT and a one-line message naming file:line. */
static void test_malformed(void)
{
    static const struct {
        const char *text, *where;
    } cases[] = {
        {"", ":"},                                             /* empty */
        {"epoch,val_f1\n", ":"},                               /* no rows */
        {"epoch,val_f1\n1,0.5\n2,abc\n", ":3"},                /* not a number */
        {"epoch,val_f1\n1,0.5\n2\n", ":3"},                    /* too few fields */
        {"epoch,val_f1\n1,0.5,7\n", ":2"},                     /* too many */
        {"val_f1,val_auc\n0.5,0.6\n", ":1"},                   /* no epoch column */
        {"epoch,val_f1,val_f1\n1,0.5,0.5\n", ":1"},            /* a column twice */
        {"epoch,,val_f1\n1,0.5,0.5\n", ":1"},                  /* a column without a name */
        {"epoch,val_f1\n,0.5\n", ":2"},                        /* no epoch */
        {"epoch,val_f1\nnan,0.5\n", ":2"},                     /* NaN epoch */
        {"epoch,val_f1\n1,0.5x\n", ":2"},                      /* trailing junk */
    };
    char path[512];
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(path, cases[i].text);
        clunet_status st = cn_report_curves(path, dir);
        const char *msg = clunet_last_error();
        char want[600];
        snprintf(want, sizeof want, "%s%s", path, cases[i].where);
        CHECK(st == CLUNET_ERR_FORMAT, "case %zu: status %d, expected a format error", i, st);
        CHECK(strstr(msg, want) && !strchr(msg, '\n'), "case %zu: message '%s' does not name %s", i, msg, want);
    }
    snprintf(path, sizeof path, "%s/missing.csv", dir);
    CHECK(cn_report_curves(path, dir) == CLUNET_ERR_IO && strstr(clunet_last_error(), path),
          "a missing file: '%s'", clunet_last_error());
}

/* ---------------------------------------------------------------- grid */

static unsigned char rgb_of(uint32_t c, int k) { return (unsigned char)(c >> (16 - 8 * k) & 255); }

/* Colour at sample pixel (px, py) of panel col in row `row` of the grid PNG. */
static void grid_pixel(const cn_image *img, const cn_sample_image *s, int row, int col, int px, int py, float out[3])
{
    int rect[4];
    cn_report_grid_panel(s, row, col, rect);
    int x = rect[0] + (int)((px + 0.5) * rect[2] / s[row].width);
    int y = rect[1] + (int)((py + 0.5) * rect[3] / s[row].height);
    memcpy(out, img->data + ((size_t)y * img->width + x) * 3, 3 * sizeof(float));
}

static void expect(const cn_image *img, const cn_sample_image *s, int row, int col, int px, int py, uint32_t rgb,
                   const char *what)
{
    float got[3];
    unsigned char want[3] = {rgb_of(rgb, 0), rgb_of(rgb, 1), rgb_of(rgb, 2)};
    grid_pixel(img, s, row, col, px, py, got);
    CHECK(near(got, want, 1), "row %d panel %d pixel (%d,%d) %s: got %.0f,%.0f,%.0f, want %d,%d,%d", row, col, px, py,
          what, got[0], got[1], got[2], want[0], want[1], want[2]);
}

/*
 * A sample cut into `cells` x `cells` blocks, each one case: rgb from the block
 * index; block 0 outside the FOV, then TP, FN, FP, TN and a vessel at exactly
 * the threshold (FN: prob > threshold is vessel); the rest background.
 */
enum { B_OUTSIDE, B_TP, B_FN, B_FP, B_TN, B_EDGE };
static const float block_prob[] = {0.9f, 0.9f, 0.2f, 0.8f, 0.1f, 0.5f};
static const int block_label[] = {1, 1, 1, 0, 0, 1};

static void make_sample(cn_sample_image *s, float **prob, int w, int h, int cells, int with_label, const char *name)
{
    s->name = strdup(name);
    s->width = w, s->height = h;
    s->rgb = malloc((size_t)w * h * 3);
    s->label = with_label ? malloc((size_t)w * h) : NULL;
    s->mask = malloc((size_t)w * h);
    *prob = malloc((size_t)w * h * sizeof **prob);
    if (!s->name || !s->rgb || (with_label && !s->label) || !s->mask || !*prob) exit(1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            int b = (y * cells / h) * cells + x * cells / w;
            s->rgb[3 * i] = (unsigned char)(40 + 13 * b), s->rgb[3 * i + 1] = (unsigned char)(200 - 7 * b);
            s->rgb[3 * i + 2] = (unsigned char)(90 + 5 * b);
            s->mask[i] = b != B_OUTSIDE;
            if (s->label) s->label[i] = b <= B_EDGE ? (unsigned char)block_label[b] : 0;
            (*prob)[i] = b <= B_EDGE ? block_prob[b] : 0.3f;
        }
}

static void free_sample(cn_sample_image *s)
{
    free(s->name), free(s->rgb), free(s->label), free(s->mask);
}

static void check_row(const cn_image *img, const cn_sample_image *s, int row, int cells)
{
    int bw = s[row].width / cells, bh = s[row].height / cells;
    for (int b = 0; b < cells * cells; b++) {
        /* The middle of each block: clear of the averaging at block edges when the panel is shrunk. */
        int px = (b % cells) * bw + bw / 2, py = (b / cells) * bh + bh / 2;
        size_t i = (size_t)py * s[row].width + px;
        const unsigned char *c = s[row].rgb + 3 * i;
        expect(img, s, row, 0, px, py, (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2], "image");
        float p = b <= B_EDGE ? block_prob[b] : 0.3f;
        uint32_t g = (uint32_t)(p * 255 + 0.5f);
        expect(img, s, row, 2, px, py, g << 16 | g << 8 | g, "probability");
        if (!s[row].label) {
            /* Away from the "no label" text in the middle. */
            expect(img, s, row, 1, 2, 2, 0xbfbfbf, "no-label panel");
            expect(img, s, row, 3, 2, 2, 0xbfbfbf, "no-label panel");
            continue;
        }
        uint32_t truth = b == B_OUTSIDE ? CN_GRID_OUTSIDE : s[row].label[i] ? 0xffffff : 0x000000;
        expect(img, s, row, 1, px, py, truth, "ground truth");
        uint32_t err = b == B_OUTSIDE ? CN_GRID_OUTSIDE
                       : b == B_TP    ? CN_GRID_TP
                       : b == B_FN || b == B_EDGE ? CN_GRID_FN
                       : b == B_FP    ? CN_GRID_FP
                                      : CN_GRID_TN;
        expect(img, s, row, 3, px, py, err, "errors");
    }
}

static void test_grid(void)
{
    cn_sample_image s[3];
    float *probs[3];
    make_sample(&s[0], &probs[0], 64, 64, 4, 1, "small-enlarged");   /* 4x nearest */
    make_sample(&s[1], &probs[1], 768, 512, 3, 1, "large-shrunk");   /* 1/3, averaged */
    make_sample(&s[2], &probs[2], 96, 128, 3, 0, "unlabelled");
    char path[512];
    snprintf(path, sizeof path, "%s/grid.png", dir);
    clunet_status st = cn_report_grid(path, s, (const float *const *)probs, 3, 0.5f);
    CHECK(st == CLUNET_OK, "grid: %s", clunet_last_error());
    cn_image img = {0};
    if (!st && cn_image_load(path, &img) == CLUNET_OK) {
        int w, h;
        cn_report_grid_size(s, 3, &w, &h);
        CHECK(img.width == w && img.height == h && img.channels == 3, "grid is %dx%dx%d, expected %dx%dx3", img.width,
              img.height, img.channels, w, h);
        if (img.width == w && img.height == h && img.channels == 3)
            for (int r = 0; r < 3; r++) check_row(&img, s, r, r == 0 ? 4 : 3);
        CHECK(variance(&img) > 100, "the grid looks blank");
    } else if (!st) CHECK(0, "%s: %s", path, clunet_last_error());
    cn_image_free(&img);

    CHECK(cn_report_grid(path, s, (const float *const *)probs, 0, 0.5f) == CLUNET_ERR_INVALID_ARGUMENT,
          "no images accepted");
    CHECK(cn_report_grid(path, s, (const float *const *)probs, 1, 1.5f) == CLUNET_ERR_INVALID_ARGUMENT,
          "threshold 1.5 accepted");
    snprintf(path, sizeof path, "%s/no-such-dir/grid.png", dir);
    CHECK(cn_report_grid(path, s, (const float *const *)probs, 1, 0.5f) == CLUNET_ERR_IO &&
              strstr(clunet_last_error(), "no-such-dir"),
          "an unwritable path: '%s'", clunet_last_error());
    for (int i = 0; i < 3; i++) free_sample(&s[i]), free(probs[i]);
}

int main(int argc, char **argv)
{
    /* With an argument, the PNGs stay there for a look; else a fresh temporary directory. */
    if (argc > 1) snprintf(dir, sizeof dir, "%s", argv[1]);
    else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/clunet-report-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
    }
    test_curves(1, 0);
    test_curves(50, 0);
    test_curves(50, 7);
    test_curves(1000, 0);
    test_curve_position();
    test_curve_order();
    test_malformed();
    test_grid();
    if (argc <= 1) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (!failed && system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    }
    if (failed) printf("files kept in %s\n", dir);
    return check_summary();
}
