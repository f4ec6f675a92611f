/*
 * image.h - decoded images on the host. Knows nothing about OpenCL.
 *
 * Pixels are float, interleaved (y, x, channel), on the 0-255 scale whatever
 * the file's bit depth (16-bit values are divided by 257). Channels are 1
 * (grey) or 3 (RGB): palettes are expanded, alpha is dropped.
 */
#ifndef CLUNET_DATA_IMAGE_H
#define CLUNET_DATA_IMAGE_H

#include "clunet.h"

typedef struct cn_image {
    int width, height, channels;
    int bits; /* bit depth of the source file (1 to 16) */
    float *data;
} cn_image;

/* Largest width or height a decoder accepts (checked before any allocation). */
#define CN_IMAGE_MAX_SIDE 32768

/*
 * Loads TIFF, PNG, GIF, JPEG, PPM/PGM (P5/P6), and any of these gzipped (.gz),
 * recognised by content, not by name. Errors name the file.
 */
clunet_status cn_image_load(const char *path, cn_image *img);

/* The same for a file already in memory; `name` stands for it in messages. */
clunet_status cn_image_load_memory(const char *name, const void *data, size_t size, cn_image *img);

/* Allocates a zeroed image. */
clunet_status cn_image_alloc(cn_image *img, int width, int height, int channels);

void cn_image_free(cn_image *img);

/* Writes a PNG with 8 or 16 bits per sample (values clamped to 0-255 and scaled). */
clunet_status cn_image_write_png(const char *path, const cn_image *img, int bits);

#endif
