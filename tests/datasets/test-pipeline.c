/*
 * test-pipeline - the input pipeline: batches are a pure function of (seed,
 * epoch, step) (the worker thread gives the same bytes as a direct call),
 * labels and masks stay binary and labels stay inside the mask, patches of a
 * large image centre on the field of view, normalisation statistics, and
 * CLAHE (contrast up, range kept, a flat image stays flat, deterministic);
 * a label read the same whether its vessels are 255 or 1.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/fov.h"
#include "data/pipeline.h"

static void test_batches(void)
{
    cn_sample_set set;
    CHECK(cn_sample_set_synthetic(&set, 3, 0, 5, 96) == CLUNET_OK, "synthetic samples");
    cn_batch_spec spec = {.batch = 3, .size = 64, .seed = 11};
    cn_sample_set_stats(&set, spec.mean, spec.std);
    for (int c = 0; c < 3; c++)
        CHECK(spec.mean[c] > 5 && spec.mean[c] < 250 && spec.std[c] > 1, "channel %d mean %g std %g", c, spec.mean[c],
              spec.std[c]);
    cn_augment_default(&spec.aug);
    cn_batch a, b, c;
    CHECK(cn_batch_alloc(&a, 3, 64) == CLUNET_OK && cn_batch_alloc(&b, 3, 64) == CLUNET_OK &&
              cn_batch_alloc(&c, 3, 64) == CLUNET_OK,
          "batch buffers");
    size_t px = 3 * 64 * 64;
    cn_batch_make(&set, &spec, 2, 5, &a);
    cn_batch_make(&set, &spec, 2, 5, &b);
    CHECK(!memcmp(a.images, b.images, 3 * px * sizeof(float)) && !memcmp(a.labels, b.labels, px * sizeof(float)),
          "the same (seed, epoch, step) gives the same batch");
    cn_batch_make(&set, &spec, 2, 6, &c);
    CHECK(memcmp(a.images, c.images, 3 * px * sizeof(float)), "another step gives another batch");

    cn_batch_worker w;
    CHECK(cn_batch_worker_start(&w, &set, &spec) == CLUNET_OK, "worker thread");
    cn_batch_worker_request(&w, 2, 5);
    cn_batch_worker_take(&w, &c);
    CHECK(!memcmp(a.images, c.images, 3 * px * sizeof(float)) && !memcmp(a.masks, c.masks, px * sizeof(float)),
          "the worker thread makes the same batch");
    cn_batch_worker_stop(&w);

    int binary = 1, inside = 1, finite = 1;
    double vessel = 0;
    for (size_t i = 0; i < px; i++) {
        binary &= (a.labels[i] == 0 || a.labels[i] == 1) && (a.masks[i] == 0 || a.masks[i] == 1);
        inside &= a.labels[i] <= a.masks[i];
        vessel += a.labels[i];
    }
    for (size_t i = 0; i < 3 * px; i++) finite &= isfinite(a.images[i]);
    CHECK(binary && inside && finite, "labels and masks binary (%d), labels inside the mask (%d), images finite (%d)",
          binary, inside, finite);
    CHECK(vessel / px > 0.02 && vessel / px < 0.3, "vessel fraction %.3f of a batch", vessel / px);
    cn_batch_free(&a), cn_batch_free(&b), cn_batch_free(&c);

    /* Patches of an image larger than the patch centre on the field of view. */
    cn_sample_set big;
    CHECK(cn_sample_set_synthetic(&big, 4, 0, 1, 512) == CLUNET_OK, "a 512 px sample");
    cn_batch_spec s2 = spec;
    s2.batch = 8;
    s2.aug.enabled = 0;
    cn_batch p;
    CHECK(cn_batch_alloc(&p, 8, 64) == CLUNET_OK, "patch buffers");
    cn_batch_make(&big, &s2, 0, 0, &p);
    double in_view = 0;
    for (size_t i = 0; i < 8 * 64 * 64; i++) in_view += p.masks[i];
    CHECK(in_view / (8 * 64 * 64) > 0.6, "patches lie mostly in the field of view (%.2f)", in_view / (8 * 64 * 64));
    cn_batch_free(&p);
    cn_sample_set_free(&big);

    /*
     * --input-scale 0.5: a 96 px image shrinks to 48 px, which fits the 64 px patch: it lies centred,
     * nothing outside its 48 x 48 square, and a patch pixel covers 2 x 2 of its pixels.
     */
    cn_batch_spec s3 = spec;
    s3.batch = 1;
    s3.aug.enabled = 0;
    s3.input_scale = 0.5f;
    cn_sample_set one;
    CHECK(cn_sample_set_synthetic(&one, 3, 0, 1, 96) == CLUNET_OK, "a 96 px sample");
    CHECK(cn_batch_alloc(&p, 1, 64) == CLUNET_OK, "patch buffers");
    cn_batch_make(&one, &s3, 0, 0, &p);
    const cn_sample_image *im = &one.items[0];
    double fov = 0, got = 0, outside = 0;
    for (size_t i = 0; i < (size_t)im->width * im->height; i++) fov += im->mask[i];
    for (int v = 0; v < 64; v++)
        for (int u = 0; u < 64; u++) {
            float m = p.masks[v * 64 + u];
            got += m;
            if (u < 8 || u >= 56 || v < 8 || v >= 56) outside += m;
        }
    CHECK(outside == 0 && fabs(got - fov / 4) < 0.05 * fov / 4,
          "--input-scale 0.5: the image's field of view (%.0f px) in a centred quarter of its area (%.0f, %.0f "
          "outside)", fov, got, outside);
    cn_batch_free(&p);
    cn_sample_set_free(&one);
    cn_sample_set_free(&set);
}

static double green_std(const cn_sample_image *s)
{
    double sum = 0, sq = 0, n = 0;
    for (size_t i = 0; i < (size_t)s->width * s->height; i++) {
        if (!s->mask[i]) continue;
        double v = s->rgb[3 * i + 1];
        sum += v, sq += v * v, n++;
    }
    return sqrt(sq / n - (sum / n) * (sum / n));
}

/* Validation hold-outs take whole subjects, keep the order, and depend only on the seed. */
static void test_split(void)
{
    for (int with_subjects = 0; with_subjects < 2; with_subjects++)
        for (uint64_t seed = 1; seed <= 20; seed++) {
            cn_sample_set set, val, again, val2;
            CHECK(cn_sample_set_synthetic(&set, 5, 0, 10, 64) == CLUNET_OK &&
                      cn_sample_set_synthetic(&again, 5, 0, 10, 64) == CLUNET_OK,
                  "synthetic samples");
            /* Pairs (0,1) (2,3) ... share a subject, like both eyes of a child. */
            for (int i = 0; with_subjects && i < 10; i++) {
                char id[8];
                snprintf(id, sizeof id, "%02d", i / 2);
                set.items[i].subject = strdup(id), again.items[i].subject = strdup(id);
            }
            int n_out = 1 + (int)(seed % 4);
            CHECK(cn_sample_set_split(&set, n_out, seed, &val) == CLUNET_OK &&
                      cn_sample_set_split(&again, n_out, seed, &val2) == CLUNET_OK,
                  "split %d of 10", n_out);
            int want = with_subjects ? n_out + n_out % 2 : n_out;
            CHECK(val.count == want && set.count == 10 - want, "seed %llu: held out %d, kept %d (want %d)",
                  (unsigned long long)seed, val.count, set.count, want);
            CHECK(val.count == val2.count, "the same seed holds out the same images");
            for (int i = 0; i < val.count && i < val2.count; i++)
                CHECK(!strcmp(val.items[i].name, val2.items[i].name), "held-out image %d differs", i);
            for (int i = 1; i < val.count; i++)
                CHECK(strcmp(val.items[i - 1].name, val.items[i].name) < 0, "held-out images keep their order");
            for (int i = 1; i < set.count; i++)
                CHECK(strcmp(set.items[i - 1].name, set.items[i].name) < 0, "training images keep their order");
            for (int i = 0; with_subjects && i < val.count; i++)
                for (int j = 0; j < set.count; j++)
                    CHECK(strcmp(val.items[i].subject, set.items[j].subject), "subject %s on both sides",
                          val.items[i].subject);
            cn_sample_set_free(&set), cn_sample_set_free(&val), cn_sample_set_free(&again), cn_sample_set_free(&val2);
        }
    /* Holding out 9 of 10 by pairs takes all 10: refused, naming why. */
    cn_sample_set set, val;
    CHECK(cn_sample_set_synthetic(&set, 5, 0, 10, 64) == CLUNET_OK, "synthetic samples");
    for (int i = 0; i < 10; i++) set.items[i].subject = strdup(i < 2 ? "a" : "b");
    CHECK(cn_sample_set_split(&set, 9, 1, &val) == CLUNET_ERR_INVALID_ARGUMENT &&
              strstr(clunet_last_error(), "no training image") && set.count == 10 && val.count == 0,
          "a hold-out of every subject is refused (got '%s')", clunet_last_error());
    cn_sample_set_free(&set);
}

/*
 * k-fold hold-outs: over the folds of one seed every image is held out exactly once, whole subjects, in order;
 * fold sizes differ by at most one subject; the seed decides the deal; bad fold numbers are refused.
 */
static void test_folds(void)
{
    enum { N = 13 }; /* pairs (0,1) .. (10,11) share a subject, 12 is alone: 7 subjects */
    for (int folds = 2; folds <= 7; folds++)
        for (uint64_t seed = 1; seed <= 5; seed++) {
            int held[N] = {0}, smallest = N, largest = 0;
            for (int fold = 0; fold < folds; fold++) {
                cn_sample_set set, val;
                CHECK(cn_sample_set_synthetic(&set, 5, 0, N, 64) == CLUNET_OK, "synthetic samples");
                for (int i = 0; i < N - 1; i++) {
                    char id[8];
                    snprintf(id, sizeof id, "%02d", i / 2);
                    set.items[i].subject = strdup(id);
                }
                char *names[N];
                for (int i = 0; i < N; i++) names[i] = strdup(set.items[i].name);
                if (cn_sample_set_fold(&set, folds, fold, seed, &val) != CLUNET_OK) {
                    CHECK(0, "fold %d/%d (seed %llu): %s", fold + 1, folds, (unsigned long long)seed,
                          clunet_last_error());
                } else {
                    CHECK(val.count + set.count == N && val.count > 0, "fold %d/%d: %d held out + %d kept", fold + 1,
                          folds, val.count, set.count);
                    int subjects = 0;
                    for (int i = 0; i < val.count; i++) {
                        for (int j = 0; j < N; j++) held[j] += !strcmp(names[j], val.items[i].name);
                        subjects += i == 0 || !val.items[i].subject || !val.items[i - 1].subject ||
                                    strcmp(val.items[i].subject, val.items[i - 1].subject);
                        for (int j = 0; j < set.count; j++)
                            CHECK(!val.items[i].subject || !set.items[j].subject ||
                                      strcmp(val.items[i].subject, set.items[j].subject),
                                  "fold %d/%d: subject %s on both sides", fold + 1, folds, val.items[i].subject);
                    }
                    if (subjects < smallest) smallest = subjects;
                    if (subjects > largest) largest = subjects;
                    for (int i = 1; i < val.count; i++)
                        CHECK(strcmp(val.items[i - 1].name, val.items[i].name) < 0, "held-out images keep their order");
                }
                for (int i = 0; i < N; i++) free(names[i]);
                cn_sample_set_free(&set), cn_sample_set_free(&val);
            }
            int once = 1;
            for (int j = 0; j < N; j++) once &= held[j] == 1;
            CHECK(once, "%d folds (seed %llu): every image held out exactly once", folds, (unsigned long long)seed);
            CHECK(largest - smallest <= 1, "%d folds: %d to %d subjects a fold", folds, smallest, largest);
        }
    /* Another seed deals another way (for one of these seeds at least), and bad fold numbers are refused. */
    int differs = 0;
    for (uint64_t seed = 2; seed <= 6 && !differs; seed++) {
        cn_sample_set a, b, va, vb;
        CHECK(cn_sample_set_synthetic(&a, 5, 0, N, 64) == CLUNET_OK && cn_sample_set_synthetic(&b, 5, 0, N, 64) ==
              CLUNET_OK, "synthetic samples");
        CHECK(cn_sample_set_fold(&a, 3, 0, 1, &va) == CLUNET_OK && cn_sample_set_fold(&b, 3, 0, seed, &vb) == CLUNET_OK,
              "fold 1/3 at seeds 1 and %llu", (unsigned long long)seed);
        differs = va.count != vb.count || (va.count > 0 && strcmp(va.items[0].name, vb.items[0].name));
        cn_sample_set_free(&a), cn_sample_set_free(&b), cn_sample_set_free(&va), cn_sample_set_free(&vb);
    }
    CHECK(differs, "the seed decides which subjects share a fold");
    int bad[][2] = {{1, 0}, {3, 3}, {3, -1}, {14, 0}};
    for (int i = 0; i < 4; i++) {
        cn_sample_set set, val;
        CHECK(cn_sample_set_synthetic(&set, 5, 0, N, 64) == CLUNET_OK, "synthetic samples");
        CHECK(cn_sample_set_fold(&set, bad[i][0], bad[i][1], 1, &val) == CLUNET_ERR_INVALID_ARGUMENT &&
                  strstr(clunet_last_error(), "--fold") && set.count == N && val.count == 0,
              "fold %d of %d is refused, naming --fold (%s)", bad[i][1] + 1, bad[i][0], clunet_last_error());
        cn_sample_set_free(&set);
    }
}

static void test_clahe(void)
{
    cn_sample_set set, again;
    CHECK(cn_sample_set_synthetic(&set, 5, 0, 1, 256) == CLUNET_OK, "a sample");
    CHECK(cn_sample_set_synthetic(&again, 5, 0, 1, 256) == CLUNET_OK, "the same sample");
    cn_sample_image *s = &set.items[0];
    double before = green_std(s);
    CHECK(cn_sample_set_preprocess(&set, CN_PREPROCESS_CLAHE_GREEN) == CLUNET_OK, "CLAHE");
    double after = green_std(s);
    CHECK(after > 1.5 * before, "CLAHE raises the green channel's contrast in view (std %.1f -> %.1f)", before, after);
    int grey = 1;
    for (size_t i = 0; i < (size_t)s->width * s->height; i++)
        grey &= s->rgb[3 * i] == s->rgb[3 * i + 1] && s->rgb[3 * i + 2] == s->rgb[3 * i + 1];
    CHECK(grey, "the result is copied to all three channels");
    CHECK(cn_sample_set_preprocess(&again, CN_PREPROCESS_CLAHE_GREEN) == CLUNET_OK &&
              !memcmp(again.items[0].rgb, s->rgb, 3 * 256 * 256),
          "CLAHE is deterministic");
    /* A flat image has nothing to equalise: every pixel maps alike. */
    memset(s->rgb, 90, 3 * 256 * 256);
    CHECK(cn_clahe_green(s, 8, 2.0) == CLUNET_OK, "CLAHE of a flat image");
    int flat = 1;
    for (size_t i = 1; i < (size_t)256 * 256; i++) flat &= s->rgb[3 * i + 1] == s->rgb[1];
    CHECK(flat, "a flat image stays flat");
    CHECK(cn_clahe_green(s, 0, 2.0) == CLUNET_ERR_INVALID_ARGUMENT, "a bad grid is refused");
    cn_preprocess mode;
    CHECK(cn_preprocess_from_name("clahe-green", &mode) && mode == CN_PREPROCESS_CLAHE_GREEN &&
              !strcmp(cn_preprocess_name(mode), "clahe-green") && !cn_preprocess_from_name("sepia", &mode),
          "preprocessing names");
    cn_sample_set_free(&set);
    cn_sample_set_free(&again);
}

/* Label files store vessels as 255 or as 1: both must give the same sample label, and none be empty. */
static void test_label_scale(void)
{
    cn_image img = {0}, lab = {0};
    CHECK(cn_image_alloc(&img, 7, 5, 3) == CLUNET_OK && cn_image_alloc(&lab, 7, 5, 1) == CLUNET_OK, "images");
    if (!img.data || !lab.data) return;
    for (int i = 0; i < 35 * 3; i++) img.data[i] = (float)(i * 37 % 256);
    for (int scale = 0; scale < 2; scale++) {
        const float one = scale ? 1.0f : 255.0f;
        for (int i = 0; i < 35; i++) lab.data[i] = (i * 7 % 5 < 2) ? one : 0.0f;
        cn_sample_set set = {0};
        CHECK(cn_sample_set_add(&set, "x", &img, &lab, NULL) == CLUNET_OK, "a sample with vessels of %g", one);
        if (set.count != 1) continue;
        int vessels = 0, same = 1;
        for (int i = 0; i < 35; i++) {
            vessels += set.items[0].label[i];
            same &= set.items[0].label[i] == (lab.data[i] > 0); /* the same pattern at both scales */
        }
        CHECK(same && vessels == 14, "vessels of %g: every vessel pixel read as vessel (%d of 14)", one, vessels);
        cn_sample_set_free(&set);
    }
    cn_image_free(&img), cn_image_free(&lab);
}

/* A colour label (arteries red, veins blue): every vessel counts, whatever its channel; grey levels are refused. */
static void test_label_colour(void)
{
    cn_image img = {0}, lab = {0};
    CHECK(cn_image_alloc(&img, 7, 5, 3) == CLUNET_OK && cn_image_alloc(&lab, 7, 5, 3) == CLUNET_OK, "images");
    if (!img.data || !lab.data) return;
    for (int i = 0; i < 35 * 3; i++) img.data[i] = (float)(i * 37 % 256), lab.data[i] = 0;
    for (int i = 0; i < 35; i++)
        if (i % 3 == 1) lab.data[3 * i + (i % 2 ? 0 : 2)] = 255.0f; /* 12 vessels, red and blue by turns */
    double fraction = -1;
    CHECK(cn_label_check(&lab, "colour.png", &img, "x.png", &fraction) == CLUNET_OK && fabs(fraction - 12 / 35.0) < 1e-12,
          "a colour label is binary, 12 of 35 pixels vessel (%g)", fraction * 35);
    cn_sample_set set = {0};
    CHECK(cn_sample_set_add(&set, "x", &img, &lab, NULL) == CLUNET_OK, "a sample with a colour label");
    if (set.count == 1) {
        int same = 1;
        for (int i = 0; i < 35; i++) same &= set.items[0].label[i] == (i % 3 == 1);
        CHECK(same, "the red and the blue vessels both read as vessel");
    }
    cn_sample_set_free(&set);
    lab.data[3 * 4 + 1] = 128.0f; /* a grey level: a lossy label */
    CHECK(cn_label_check(&lab, "colour.png", &img, "x.png", NULL) == CLUNET_ERR_FORMAT &&
              strstr(clunet_last_error(), "colour.png") && strstr(clunet_last_error(), "not binary"),
          "a third value is refused, naming the file (%s)", clunet_last_error());
    cn_image small = {0};
    CHECK(cn_image_alloc(&small, 6, 5, 1) == CLUNET_OK, "image");
    if (small.data) {
        for (int i = 0; i < 30; i++) small.data[i] = 0;
        CHECK(cn_label_check(&small, "small.png", &img, "x.png", NULL) == CLUNET_ERR_FORMAT &&
                  strstr(clunet_last_error(), "small.png") && strstr(clunet_last_error(), "6x5"),
              "a label of another size is refused, naming both sizes (%s)", clunet_last_error());
    }
    cn_image_free(&small), cn_image_free(&img), cn_image_free(&lab);
}

/* An image with nothing in view, derived or from its mask file, is refused by name: it would train nothing. */
static void test_fov_empty(void)
{
    cn_image img = {0}, mask = {0};
    CHECK(cn_image_alloc(&img, 9, 8, 3) == CLUNET_OK, "image");
    if (!img.data) return;
    for (int i = 0; i < 9 * 8 * 3; i++) img.data[i] = 60.0f; /* flat: no bright disc to find */
    CHECK(cn_fov_get(NULL, "flat.png", &img, &mask) == CLUNET_ERR_FORMAT && !mask.data &&
              strstr(clunet_last_error(), "flat.png") && strstr(clunet_last_error(), "no field of view"),
          "a blank image's derived FOV is refused, naming it (%s)", clunet_last_error());
    cn_image_free(&img);
}

int main(void)
{
    test_batches();
    test_split();
    test_folds();
    test_clahe();
    test_label_scale();
    test_label_colour();
    test_fov_empty();
    return check_summary();
}
