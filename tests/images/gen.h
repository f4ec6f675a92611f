/*
 * gen.h - builds valid image files of every format, bit depth and colour type
 * clunet reads, with the same libraries (libpng, libtiff, giflib, libjpeg) and
 * by hand (PNM, gzip), each with the exact image cn_image_load must return.
 * Used by test-images (decode checks), test-corrupt (mutation corpus) and as
 * fuzz seeds.
 */
#ifndef CLUNET_TESTS_GEN_H
#define CLUNET_TESTS_GEN_H

#include <stddef.h>
#include <stdint.h>

typedef struct gen_case {
    char name[64]; /* file name; the extension is a hint only, some lie on purpose */
    uint8_t *bytes;
    size_t size;
    int width, height, channels, bits;
    float *expect;   /* width*height*channels values on the 0-255 scale */
    float tolerance; /* 0 for lossless formats, else the largest allowed |error| (JPEG) */
} gen_case;

/* Builds every case; `dir` is scratch space for libtiff, which writes to files. */
int gen_all(const char *dir, gen_case **cases);

void gen_free(gen_case *cases, int count);

/* gzip-wraps `n` bytes (also used to build the corpus). */
uint8_t *gen_gzip(const uint8_t *data, size_t n, size_t *out_n);

/* Writes a buffer to a file; returns 0 on success. */
int gen_write_file(const char *path, const uint8_t *data, size_t n);

/* Makes a fresh directory under $TMPDIR (or /tmp); the path is static storage. */
const char *gen_tempdir(const char *prefix);

#endif
