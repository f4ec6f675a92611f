/*
 * test-images - decodes a generated file of every format, bit depth and colour
 * type (gen.c) through cn_image_load and cn_image_load_memory and compares
 * every sample; round-trips the PNG writer at 8 and 16 bits; checks that bad
 * paths and unknown content fail with a message naming the file.
 *
 *   test-images            run the checks
 *   test-images FILE...    load the files and describe them (manual checks)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/image.h"
#include "gen.h"

#include "check.h"

/* Lossless samples are k*255/maxval: 1e-3 tells every neighbour (>= 1/257 apart) apart. */
static void compare(const gen_case *k, const cn_image *img, const char *how)
{
    CHECK(img->width == k->width && img->height == k->height && img->channels == k->channels,
          "%s (%s): got %dx%dx%d, want %dx%dx%d", k->name, how, img->width, img->height,
          img->channels, k->width, k->height, k->channels);
    if (img->width != k->width || img->height != k->height || img->channels != k->channels)
        return;
    CHECK(img->bits == k->bits, "%s (%s): bits %d, want %d", k->name, how, img->bits, k->bits);
    float tol = k->tolerance > 0 ? k->tolerance : 1e-3f;
    size_t n = (size_t)k->width * k->height * k->channels, bad = 0, first = 0;
    float worst = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(img->data[i] - k->expect[i]);
        if (!(d <= tol)) {
            if (!bad) first = i;
            bad++;
        }
        if (d > worst) worst = d;
    }
    CHECK(bad == 0, "%s (%s): %zu of %zu samples differ (worst %g; first at %zu: %g vs %g)",
          k->name, how, bad, n, worst, first, img->data[first], k->expect[first]);
}

static void decode_cases(const char *dir)
{
    gen_case *cases;
    int n = gen_all(dir, &cases);
    for (int i = 0; i < n; i++) {
        const gen_case *k = &cases[i];
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, k->name);
        if (gen_write_file(path, k->bytes, k->size) != 0) {
            CHECK(0, "cannot write %s", path);
            continue;
        }
        cn_image img;
        clunet_status st = cn_image_load(path, &img);
        CHECK(st == CLUNET_OK, "%s: %s", k->name, clunet_last_error());
        if (st == CLUNET_OK) compare(k, &img, "file");
        cn_image_free(&img);
        st = cn_image_load_memory(k->name, k->bytes, k->size, &img);
        CHECK(st == CLUNET_OK, "%s: %s", k->name, clunet_last_error());
        if (st == CLUNET_OK) compare(k, &img, "memory");
        cn_image_free(&img);
        unlink(path);
    }
    printf("decoded %d generated files\n", n);
    gen_free(cases, n);
}

/* Writes fractional and out-of-range values and reads them back. */
static void png_round_trip(const char *dir)
{
    for (int channels = 1; channels <= 3; channels += 2)
        for (int bits = 8; bits <= 16; bits += 8) {
            cn_image img, back;
            if (cn_image_alloc(&img, 29, 17, channels) != CLUNET_OK) {
                CHECK(0, "cn_image_alloc: %s", clunet_last_error());
                return;
            }
            size_t n = (size_t)29 * 17 * channels;
            for (size_t i = 0; i < n; i++) img.data[i] = (float)((i * 7919) % 26000) / 100.0f - 2.5f;
            img.data[3] = NAN;
            char path[600];
            snprintf(path, sizeof path, "%s/written-%d-%d.png", dir, channels, bits);
            clunet_status st = cn_image_write_png(path, &img, bits);
            CHECK(st == CLUNET_OK, "write %s: %s", path, clunet_last_error());
            st = cn_image_load(path, &back);
            CHECK(st == CLUNET_OK, "reload %s: %s", path, clunet_last_error());
            if (st == CLUNET_OK) {
                CHECK(back.width == 29 && back.height == 17 && back.channels == channels &&
                          back.bits == bits,
                      "%s: reloaded as %dx%dx%d, %d bits", path, back.width, back.height,
                      back.channels, back.bits);
                /* Half a quantum of the written depth, after clamping to 0-255 (NaN to 0). */
                float half = bits == 16 ? 0.5f / 257.0f + 1e-4f : 0.5f + 1e-4f;
                size_t bad = 0;
                for (size_t i = 0; back.data && i < n && back.channels == channels; i++) {
                    float v = img.data[i];
                    float want = isnan(v) ? 0.0f : v < 0 ? 0.0f : v > 255 ? 255.0f : v;
                    if (fabsf(back.data[i] - want) > half) bad++;
                }
                CHECK(bad == 0, "%s: %zu samples off by more than half a quantum", path, bad);
            }
            cn_image_free(&back);
            cn_image_free(&img);
            unlink(path);
        }
    cn_image bad = {0};
    CHECK(cn_image_write_png("/nonexistent-dir/x.png", &bad, 8) == CLUNET_ERR_INVALID_ARGUMENT,
          "writing an empty image must be refused");
    cn_image one;
    if (cn_image_alloc(&one, 2, 2, 1) == CLUNET_OK) {
        CHECK(cn_image_write_png("/nonexistent-dir/x.png", &one, 8) == CLUNET_ERR_IO &&
                  strstr(clunet_last_error(), "/nonexistent-dir/x.png"),
              "writing to a missing directory: %s", clunet_last_error());
        CHECK(cn_image_write_png("/tmp/x.png", &one, 12) == CLUNET_ERR_INVALID_ARGUMENT,
              "12-bit PNG must be refused");
        cn_image_free(&one);
    }
}

static void expect_failure(const char *path, clunet_status want)
{
    cn_image img;
    clunet_status st = cn_image_load(path, &img);
    CHECK(st == want && img.data == NULL && strstr(clunet_last_error(), path),
          "%s: status %d (want %d), message \"%s\"", path, (int)st, (int)want,
          clunet_last_error());
    cn_image_free(&img);
}

static void bad_inputs(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.png", dir);
    expect_failure(path, CLUNET_ERR_IO);
    expect_failure(dir, CLUNET_ERR_IO); /* a directory */
    static const struct {
        const char *name, *content;
        size_t size;
        clunet_status want;
    } files[] = {
        {"empty.png", "", 0, CLUNET_ERR_FORMAT},
        {"text.tif", "hello, world\n", 13, CLUNET_ERR_FORMAT},
        {"ascii.pbm", "P1\n2 2\n0 1 1 0\n", 15, CLUNET_ERR_UNSUPPORTED},
        {"ascii.pgm", "P2\n2 2\n255\n0 1 1 0\n", 19, CLUNET_ERR_UNSUPPORTED},
        {"short.pgm", "P5\n2 2\n255\n\1\2\3", 14, CLUNET_ERR_FORMAT},
        {"maxval0.pgm", "P5\n2 2\n0\n\0\0\0\0", 13, CLUNET_ERR_FORMAT},
        {"over-maxval.pgm", "P5\n2 1\n7\n\1\10", 11, CLUNET_ERR_FORMAT},
        {"huge.ppm", "P6\n60000 60000\n255\n\0\0\0", 22, CLUNET_ERR_FORMAT},
        {"png-magic-only.png", "\x89PNG\r\n\x1a\n", 8, CLUNET_ERR_FORMAT},
        {"gif-magic-only.gif", "GIF89a", 6, CLUNET_ERR_FORMAT},
        {"jpeg-magic-only.jpg", "\xff\xd8\xff", 3, CLUNET_ERR_FORMAT},
        {"tiff-magic-only.tif", "II*\0", 4, CLUNET_ERR_FORMAT},
        {"gzip-magic-only.gz", "\x1f\x8b", 2, CLUNET_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        if (gen_write_file(path, (const uint8_t *)files[i].content, files[i].size) != 0) {
            CHECK(0, "cannot write %s", path);
            continue;
        }
        expect_failure(path, files[i].want);
        unlink(path);
    }
}

/* Manual mode: describe each file (size, depth, value range, distinct values if few). */
static int describe(int argc, char **argv)
{
    int status = 0;
    for (int i = 1; i < argc; i++) {
        cn_image img;
        if (cn_image_load(argv[i], &img) != CLUNET_OK) {
            fprintf(stderr, "%s\n", clunet_last_error());
            status = 1;
            continue;
        }
        size_t n = (size_t)img.width * img.height * img.channels;
        float lo = img.data[0], hi = img.data[0];
        int seen[256] = {0}, distinct = 0, integral = 1;
        for (size_t j = 0; j < n; j++) {
            float v = img.data[j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            if (v != floorf(v)) integral = 0;
            else if (!seen[(int)v]++) distinct++;
        }
        printf("%s: %dx%d, %d channel(s), %d bits, values %g..%g", argv[i], img.width,
               img.height, img.channels, img.bits, lo, hi);
        if (integral && distinct <= 4) {
            printf(", distinct {");
            for (int v = 0, first = 1; v < 256; v++)
                if (seen[v]) printf(first ? "%d" : ",%d", v), first = 0;
            printf("}");
        }
        printf("\n");
        cn_image_free(&img);
    }
    return status;
}

int main(int argc, char **argv)
{
    if (argc > 1) return describe(argc, argv);
    const char *dir = gen_tempdir("clunet-images");
    decode_cases(dir);
    png_round_trip(dir);
    bad_inputs(dir);
    rmdir(dir);
    return check_summary();
}
