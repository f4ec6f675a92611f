/*
 * test-chase - the real CHASE_DB1 dataset, where a copy exists: 28 images and
 * labels found and split 20/8, every file decodes, sizes agree, labels are
 * binary with a plausible vessel share, and the derived FOV is a disc
 * covering 60-80% of the frame. Skips (exit 77) when no copy is found.
 *
 * usage: test-chase DIR...   (the first existing DIR is used)
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "data/datasets.h"
#include "data/fov.h"

#include "check.h"

static void check_sample(const cn_sample *s)
{
    cn_image img, lab, fov;
    if (cn_image_load(s->image, &img) != CLUNET_OK) {
        CHECK(0, "decode %s", s->image);
        return;
    }
    CHECK(img.width == 999 && img.height == 960 && img.channels == 3, "%s is %dx%dx%d", s->image, img.width,
          img.height, img.channels);
    if (cn_image_load(s->label, &lab) == CLUNET_OK) {
        size_t n = (size_t)lab.width * lab.height, on = 0, other = 0;
        for (size_t i = 0; i < n * lab.channels; i++) {
            on += lab.data[i] == 255;
            other += lab.data[i] != 0 && lab.data[i] != 255;
        }
        double frac = (double)on / (double)(n * lab.channels);
        CHECK(lab.width == img.width && lab.height == img.height, "%s size", s->label);
        CHECK(other == 0, "%s: %zu values not 0/255", s->label, other);
        CHECK(frac > 0.04 && frac < 0.10, "%s: vessel fraction %.3f", s->label, frac);
        cn_image_free(&lab);
    } else {
        CHECK(0, "decode %s", s->label);
    }
    if (cn_fov_derive(&img, &fov) == CLUNET_OK) {
        size_t n = (size_t)fov.width * fov.height, on = 0;
        double sx = 0, sy = 0;
        for (size_t i = 0; i < n; i++) {
            if (fov.data[i] <= 0) continue;
            on++;
            sx += (double)(i % (size_t)fov.width);
            sy += (double)(i / (size_t)fov.width);
        }
        double frac = (double)on / (double)n;
        CHECK(frac > 0.6 && frac < 0.8, "%s: derived FOV covers %.3f", s->image, frac);
        /* A disc roughly centred in the frame. */
        CHECK(on && sx / on > 0.4 * fov.width && sx / on < 0.6 * fov.width && sy / on > 0.4 * fov.height &&
                  sy / on < 0.6 * fov.height,
              "%s: FOV centroid", s->image);
        cn_image_free(&fov);
    } else {
        CHECK(0, "derive FOV of %s", s->image);
    }
    cn_image_free(&img);
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    struct stat st;
    for (int i = 1; i < argc && !dir; i++)
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) dir = argv[i];
    if (!dir) {
        printf("SKIP: no CHASE_DB1 copy at any of the %d paths given\n", argc - 1);
        return 77;
    }
    cn_catalog cat;
    CHECK(cn_catalog_load(NULL, &cat) == CLUNET_OK, "catalogue");
    const cn_dataset *d = cn_catalog_find(&cat, "CHASE_DB1");
    cn_sample_list list = {0};
    CHECK(d && cn_dataset_scan(d, dir, &list) == CLUNET_OK, "scan %s", dir);
    CHECK(list.count == 28, "%d images", list.count);
    int train = 0, labels = 0;
    for (int i = 0; i < list.count; i++) {
        train += list.items[i].split == CN_SPLIT_TRAIN;
        labels += list.items[i].label != NULL;
    }
    CHECK(train == 20 && labels == 28, "%d train, %d labels", train, labels);
    CHECK(list.count == 28 && !strcmp(list.items[19].id, "10R") && !strcmp(list.items[20].id, "11L") &&
              list.items[19].split == CN_SPLIT_TRAIN && list.items[20].split == CN_SPLIT_TEST,
          "the first 20 train, the last 8 test");
    for (int i = 0; i < list.count; i++) check_sample(&list.items[i]);
    cn_sample_list_free(&list);
    cn_catalog_free(&cat);
    printf("%s: %d passed, %d failed\n", dir, passed, failed);
    return failed ? 1 : 0;
}
