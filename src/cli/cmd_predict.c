/* cmd_predict.c - `clunet predict`: vessel probabilities and masks for images of any size. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/files.h"
#include "data/fov.h"
#include "data/image.h"
#include "data/pipeline.h"
#include "train/model.h"

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: clunet predict --weights CKPT --out DIR [options] IMAGE...\n\n"
               "Segments the vessels of each image (any size; large images are tiled with overlap) and\n"
               "writes DIR/NAME_prob.png (16-bit probability), DIR/NAME_mask.png (vessel = 255: probability\n"
               "above the threshold inside the field of view, which is derived from the image) and, with\n"
               "--npy, DIR/NAME_prob.npy (float32, (H, W)). The probabilities cover every pixel.\n\n"
               "  --threshold T  probability threshold for the mask (default: the checkpoint's, chosen on\n"
               "                 the validation images during training; else 0.5)\n"
               "  --views N      test-time views averaged: 8 (default: the image, its mirrors and their\n"
               "                 transposes), 4 (the mirrors) or 1 (the image only, 8x faster)\n"
               "  --scales LIST  test-time scales averaged, e.g. 1,0.5: the image also resized by each, the\n"
               "                 probabilities resized back (default 1; for images at another resolution\n"
               "                 than the training images, the one scale that matches their vessel widths;\n"
               "                 a checkpoint trained with --input-scale F resizes by F times each)\n"
               "  --npy          also write the probabilities as .npy\n"
               "  --size S       inference tile size (default: the training patch size)\n"
               "  --batch B      tiles per batch (default 1)\n"
               "  --device D     OpenCL device\n");
    return status;
}

/* NumPy's .npy, version 1.0: little-endian float32, C order. */
static int write_npy(const char *path, const float *data, int h, int w)
{
    char header[128];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", h, w);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    unsigned short len = (unsigned short)(n + pad + 1);
    int ok = fwrite("\x93NUMPY\x01\x00", 1, 8, f) == 8 && fputc(len & 0xff, f) != EOF && fputc(len >> 8, f) != EOF &&
             fwrite(header, 1, (size_t)n, f) == (size_t)n;
    for (int i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(data, sizeof(float), (size_t)h * w, f) == (size_t)h * w;
    ok = (fclose(f) == 0) && ok;
    if (!ok) { /* no partial file: keep the write's errno for the message */
        int e = errno;
        remove(path);
        errno = e;
    }
    return ok;
}

static void stem_of(const char *path, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, size, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && !strcmp(dot, ".gz")) {
        *dot = 0;
        dot = strrchr(out, '.');
    }
    if (dot && dot != out) *dot = 0;
}

/* The files written for an image: OUT/STEM and these (the last with --npy). */
static const char *const OUTPUTS[] = {"_prob.png", "_mask.png", "_prob.npy"};

/* file = OUT/STEM+suffix, or 0 after an error line where that path would not fit. */
static int out_name(char *file, size_t size, const char *out, const char *stem, const char *suffix)
{
    if ((size_t)snprintf(file, size, "%s/%s%s", out, stem, suffix) < size) return 1;
    fprintf(stderr, "clunet: predict: --out %s: the path of %s%s is too long\n", out, stem, suffix);
    return 0;
}

static int predict_one(cn_model *m, const char *path, const char *out, float threshold, int npy)
{
    cn_image img = {0}, prob_img = {0}, mask_img = {0}, fov = {0};
    cn_sample_set one = {0};
    float *prob = NULL;
    char written[3][2048]; /* this image's files so far */
    int rc = 1, nw = 0;
    if (cn_image_load(path, &img) != CLUNET_OK || cn_fov_derive(&img, &fov) != CLUNET_OK ||
        cn_sample_set_add(&one, path, &img, NULL, &fov) != CLUNET_OK) {
        cli_fail("predict");
        goto done;
    }
    prob = malloc((size_t)img.width * img.height * sizeof *prob);
    if (!prob || cn_image_alloc(&prob_img, img.width, img.height, 1) != CLUNET_OK ||
        cn_image_alloc(&mask_img, img.width, img.height, 1) != CLUNET_OK) {
        fprintf(stderr, "clunet: predict: %s: out of host memory\n", path);
        goto done;
    }
    if (cn_infer_image(&m->infer, &one.items[0], prob) != CLUNET_OK) {
        cli_fail("predict"); /* the message names the image */
        goto done;
    }
    size_t n = (size_t)img.width * img.height;
    for (size_t i = 0; i < n; i++) {
        prob_img.data[i] = prob[i] * 255.0f;
        mask_img.data[i] = prob[i] > threshold && one.items[0].mask[i] ? 255.0f : 0.0f;
    }
    char stem[512], file[2048];
    stem_of(path, stem, sizeof stem);
    if (!out_name(file, sizeof file, out, stem, OUTPUTS[0])) goto done;
    if (cn_image_write_png(file, &prob_img, 16) != CLUNET_OK) {
        cli_fail("predict");
        goto done;
    }
    snprintf(written[nw++], sizeof written[0], "%s", file);
    if (!out_name(file, sizeof file, out, stem, OUTPUTS[1])) goto done;
    if (cn_image_write_png(file, &mask_img, 8) != CLUNET_OK) {
        cli_fail("predict");
        goto done;
    }
    snprintf(written[nw++], sizeof written[0], "%s", file);
    if (npy) {
        if (!out_name(file, sizeof file, out, stem, OUTPUTS[2])) goto done;
        snprintf(written[nw++], sizeof written[0], "%s", file); /* a part of it may be there */
        if (!write_npy(file, prob, img.height, img.width)) {
            fprintf(stderr, "clunet: predict: %s: cannot write: %s\n", file, strerror(errno));
            goto done;
        }
    }
    printf("%s -> %s/%s_{prob,mask}.png%s\n", path, out, stem, npy ? " and .npy" : "");
    rc = 0;
done:
    /* an image that failed leaves none of its files: a listing of --out shows what succeeded */
    for (int i = 0; rc && i < nw; i++) unlink(written[i]);
    free(prob);
    cn_image_free(&img), cn_image_free(&prob_img), cn_image_free(&mask_img), cn_image_free(&fov);
    cn_sample_set_free(&one);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    const char *weights = NULL, *out = NULL, *device = NULL;
    int npy = 0, size = 0, batch = 1, first_image = 0, n_images = 0;
    cli_tta tta = CLI_TTA_DEFAULT;
    float threshold = 0;
    char **images = calloc((size_t)argc, sizeof *images);
    if (!images) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            free(images);
            return usage(stdout, 0);
        }
        if (!strcmp(a, "--npy")) npy = 1;
        else if (a[0] != '-' || first_image) images[n_images++] = argv[i];
        else if (!strcmp(a, "--")) first_image = 1;
        else if (!v) {
            fprintf(stderr, "clunet predict: unknown or incomplete option '%s' (see --help)\n", a);
            free(images);
            return 2;
        } else {
            i++;
            int bad = 0, tta_rc;
            if (!strcmp(a, "--weights")) weights = v;
            else if (!strcmp(a, "--out")) out = v;
            else if (!strcmp(a, "--device")) device = v;
            else if (!strcmp(a, "--size")) bad = !cli_parse_int(v, 32, 8192, &size) || size % 32;
            else if (!strcmp(a, "--batch")) bad = !cli_parse_int(v, 1, 256, &batch);
            else if ((tta_rc = cli_tta_option(&tta, a, v))) bad = tta_rc < 0;
            else if (!strcmp(a, "--threshold")) {
                char *end;
                threshold = strtof(v, &end);
                bad = *end || !(threshold > 0 && threshold < 1);
            } else {
                fprintf(stderr, "clunet predict: unknown option '%s' (see --help)\n", a);
                free(images);
                return 2;
            }
            if (bad) {
                free(images);
                return cli_bad_value(a, v);
            }
        }
    }
    if (!weights || !out || n_images == 0) {
        fprintf(stderr, "clunet predict: --weights, --out and at least one image are required (see --help)\n");
        free(images);
        return 2;
    }
    /* two images of one name would write the same files: the first result would be lost; a file one would
     * write that is an input image (x_prob.png beside x.png, --out their folder) would lose that image */
    for (int i = 0; i < n_images; i++) {
        char a[512], b[512], file[2048];
        stem_of(images[i], a, sizeof a);
        for (int j = 0; j < i; j++) {
            stem_of(images[j], b, sizeof b);
            if (!strcmp(a, b)) {
                fprintf(stderr, "clunet predict: %s and %s would both write %s/%s_*: predict them into different --out "
                        "folders\n", images[j], images[i], out, a);
                free(images);
                return 2;
            }
        }
        for (int k = 0; k < (npy ? 3 : 2); k++) {
            /* a path too long is predict_one's to report */
            if ((size_t)snprintf(file, sizeof file, "%s/%s%s", out, a, OUTPUTS[k]) >= sizeof file) continue;
            for (int j = 0; j < n_images; j++)
                if (cn_same_file(file, images[j])) {
                    fprintf(stderr, "clunet predict: %s would write %s, which is the input image %s: predict into "
                            "another --out\n", images[i], file, images[j]);
                    free(images);
                    return 2;
                }
        }
    }
    int created;
    if (cli_out_dir("predict", out, &created)) {
        free(images);
        return 1;
    }
    cn_model model;
    if (cn_model_open(weights, device, size, batch, stderr, &model) != CLUNET_OK) {
        if (created) rmdir(out); /* leave nothing behind for a run that did nothing */
        free(images);
        return cli_fail("predict");
    }
    printf("device: %s (%s)\n", model.ctx->info.name, model.ctx->info.platform);
    fflush(stdout); /* before the minutes of work, also when piped */
    cli_tta_apply(&tta, &model.infer);
    cli_infer_progress(&model.infer);
    threshold = cn_model_threshold(&model, threshold);
    int failed = 0;
    for (int i = 0; i < n_images; i++) failed += predict_one(&model, images[i], out, threshold, npy);
    cn_model_close(&model);
    free(images);
    return failed ? 1 : 0;
}
