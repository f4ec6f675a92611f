/*
 * test-synth - synthetic retinas: the same seed gives identical pixels and PNG
 * bytes, other seeds or indices differ; labels are binary, inside the FOV, and
 * cover a plausible share of the frame; the FOV derived from the picture
 * matches the true disc; generation is fast; bad sizes are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data/fov.h"
#include "data/synth.h"

#include "check.h"

static size_t pixels(const cn_image *a) { return (size_t)a->width * a->height * a->channels; }

static int same(const cn_image *a, const cn_image *b)
{
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           !memcmp(a->data, b->data, pixels(a) * sizeof *a->data);
}

static long read_all(const char *path, unsigned char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n + 1);
    if (!*out || fread(*out, 1, (size_t)n, f) != (size_t)n) n = -1;
    fclose(f);
    return n;
}

static void test_determinism(void)
{
    cn_image a, al, am, b, bl, bm, c, cl, d, dl;
    CHECK(cn_synth_sample(7, 3, 256, &a, &al, &am) == CLUNET_OK, "sample");
    CHECK(cn_synth_sample(7, 3, 256, &b, &bl, &bm) == CLUNET_OK, "sample again");
    CHECK(same(&a, &b) && same(&al, &bl) && same(&am, &bm), "same seed, same pixels");
    CHECK(cn_synth_sample(8, 3, 256, &c, &cl, NULL) == CLUNET_OK, "other seed");
    CHECK(!same(&a, &c) && !same(&al, &cl), "another seed gives another retina");
    CHECK(cn_synth_sample(7, 4, 256, &d, &dl, NULL) == CLUNET_OK, "other index");
    CHECK(!same(&a, &d) && !same(&al, &dl), "another index gives another retina");

    char dir[256], p1[300], p2[300];
    snprintf(dir, sizeof dir, "%s/clunet-synth-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(p1, sizeof p1, "%s/a.png", dir);
    snprintf(p2, sizeof p2, "%s/b.png", dir);
    CHECK(cn_image_write_png(p1, &a, 8) == CLUNET_OK && cn_image_write_png(p2, &b, 8) == CLUNET_OK, "write PNGs");
    unsigned char *x = NULL, *y = NULL;
    long nx = read_all(p1, &x), ny = read_all(p2, &y);
    CHECK(nx > 1000 && nx == ny && !memcmp(x, y, (size_t)nx), "same seed, identical PNG bytes (%ld, %ld)", nx, ny);
    /* The PNG round trip keeps the integer pixels exactly. */
    cn_image back;
    CHECK(cn_image_load(p1, &back) == CLUNET_OK && same(&back, &a), "PNG round trip");
    cn_image_free(&back);
    free(x);
    free(y);
    remove(p1);
    remove(p2);
    rmdir(dir);
    cn_image *all[] = {&a, &al, &am, &b, &bl, &bm, &c, &cl, &d, &dl};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) cn_image_free(all[i]);
}

/* Labels are 0/255 and inside the mask; the image is integer 0-255 and dark outside. */
static void test_content(void)
{
    const int size = 512, n = 8;
    double sum = 0, lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        cn_image img, lab, mask, fov;
        if (cn_synth_sample(1, i, size, &img, &lab, &mask) != CLUNET_OK) {
            CHECK(0, "sample %d", i);
            continue;
        }
        CHECK(img.channels == 3 && lab.channels == 1 && mask.channels == 1 && img.width == size &&
                  lab.height == size,
              "shapes");
        size_t np = (size_t)size * size, vessel = 0, inside = 0, bad_label = 0, bad_pixel = 0, bright_outside = 0;
        double in_mean[3] = {0, 0, 0}, out_sum = 0;
        for (size_t p = 0; p < np; p++) {
            float l = lab.data[p], m = mask.data[p];
            bad_label += (l != 0 && l != 255) || (m != 0 && m != 255) || (l && !m);
            vessel += l > 0;
            inside += m > 0;
            for (int k = 0; k < 3; k++) {
                float v = img.data[p * 3 + k];
                bad_pixel += v < 0 || v > 255 || v != floorf(v);
                if (m) in_mean[k] += v;
                else bright_outside += v > 40, out_sum += v;
            }
        }
        CHECK(bad_label == 0, "sample %d: %zu label/mask values not 0/255 or label outside the FOV", i, bad_label);
        CHECK(bad_pixel == 0, "sample %d: %zu pixels not integers in 0-255", i, bad_pixel);
        /* Dark outside the FOV; only the blurred rim may be bright. */
        CHECK(bright_outside < np / 100 && out_sum / (double)((np - inside) * 3) < 8, "sample %d: %zu bright values outside the FOV, mean %.1f", i,
              bright_outside, out_sum / (double)((np - inside) * 3));
        double frac = (double)vessel / (double)np, fov_frac = (double)inside / (double)np;
        sum += frac;
        lo = fmin(lo, frac);
        hi = fmax(hi, frac);
        CHECK(frac > 0.05 && frac < 0.16, "sample %d: vessel fraction %.3f", i, frac);
        CHECK(fov_frac > 0.55 && fov_frac < 0.72, "sample %d: FOV fraction %.3f", i, fov_frac);
        /* An orange-red fundus: red over green over blue inside the FOV. */
        CHECK(in_mean[0] > in_mean[1] && in_mean[1] > in_mean[2], "sample %d: colour order", i);

        /* The FOV derived from the picture alone matches the true disc. */
        CHECK(cn_fov_derive(&img, &fov) == CLUNET_OK, "derive FOV");
        size_t both = 0, either = 0;
        for (size_t p = 0; p < np; p++) {
            int t = mask.data[p] > 0, d = fov.data[p] > 0;
            both += t && d;
            either += t || d;
        }
        double iou = either ? (double)both / (double)either : 0;
        CHECK(iou > 0.97, "sample %d: derived FOV IoU %.4f", i, iou);
        cn_image_free(&img);
        cn_image_free(&lab);
        cn_image_free(&mask);
        cn_image_free(&fov);
    }
    printf("vessel fraction over %d samples at %d px: mean %.3f, range %.3f-%.3f\n", n, size, sum / n, lo, hi);
    CHECK(sum / n > 0.07 && sum / n < 0.14, "mean vessel fraction %.3f", sum / n);
}

static void test_speed_and_sizes(void)
{
    struct timespec t0, t1;
    cn_image img, lab;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int reps = 4;
    for (int i = 0; i < reps; i++) {
        CHECK(cn_synth_sample(2, i, 512, &img, &lab, NULL) == CLUNET_OK, "sample");
        cn_image_free(&img);
        cn_image_free(&lab);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = ((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec)) / reps;
    printf("%.3f s per 512x512 sample (target < 0.2 s)\n", secs);
    /* Generous bound: the target is for an optimised build on an idle machine. */
    CHECK(secs < 2.0, "%.3f s per sample", secs);

    int sizes[] = {64, 1024};
    for (int i = 0; i < 2; i++) {
        CHECK(cn_synth_sample(5, 0, sizes[i], &img, &lab, NULL) == CLUNET_OK && img.width == sizes[i],
              "size %d", sizes[i]);
        cn_image_free(&img);
        cn_image_free(&lab);
    }
    CHECK(cn_synth_sample(5, 0, 63, &img, &lab, NULL) == CLUNET_ERR_INVALID_ARGUMENT &&
              strstr(clunet_last_error(), "63") && img.data == NULL,
          "too small refused");
    CHECK(cn_synth_sample(5, 0, CN_SYNTH_MAX_SIZE + 1, &img, &lab, NULL) == CLUNET_ERR_INVALID_ARGUMENT,
          "too large refused");
    CHECK(cn_synth_sample(5, -1, 128, &img, &lab, NULL) == CLUNET_ERR_INVALID_ARGUMENT, "negative index refused");
}

int main(void)
{
    test_determinism();
    test_content();
    test_speed_and_sizes();
    return check_summary();
}
