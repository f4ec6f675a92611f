/*
 * image_codecs.h - what the format decoders in src/data/image_*.c share.
 * Private to those files; callers use image.h.
 *
 * Every decoder reads a whole file already in memory and names it `name` in
 * its messages. On failure it may leave `img` allocated: cn_image_load_memory
 * frees it, so a decoder only cleans up its own library state.
 */
#ifndef CLUNET_DATA_IMAGE_CODECS_H
#define CLUNET_DATA_IMAGE_CODECS_H

#include <stddef.h>
#include <stdint.h>

#include "data/image.h"

/* Most samples (width * height * channels) one image may hold: 256 MiB of floats. */
#define CN_IMAGE_MAX_SAMPLES ((int64_t)1 << 26)

/* Largest file read into memory, and largest gunzipped content. */
#define CN_IMAGE_MAX_FILE_BYTES ((size_t)256 << 20)

/* Memory a library may take for its own buffers (libjpeg, libtiff). */
#define CN_IMAGE_MAX_LIBRARY_BYTES ((size_t)256 << 20)

clunet_status cn_decode_png(const char *name, const uint8_t *data, size_t size, cn_image *img);
clunet_status cn_decode_tiff(const char *name, const uint8_t *data, size_t size, cn_image *img);
clunet_status cn_decode_gif(const char *name, const uint8_t *data, size_t size, cn_image *img);
clunet_status cn_decode_jpeg(const char *name, const uint8_t *data, size_t size, cn_image *img);
clunet_status cn_decode_pnm(const char *name, const uint8_t *data, size_t size, cn_image *img);

/* Checks sizes declared by a file of the given format against the limits. */
clunet_status cn_image_check_declared(const char *name, const char *format, int64_t width,
                                      int64_t height, int channels);

/*
 * Checks as above, then allocates: the one place a decoder gets pixel memory
 * from header fields.
 */
clunet_status cn_image_alloc_declared(const char *name, const char *format, int64_t width,
                                      int64_t height, int channels, cn_image *img);

/* value / maxval on the 0-255 scale. */
static inline float cn_sample_scale(unsigned value, unsigned maxval)
{
    return (float)((double)value * 255.0 / (double)maxval);
}

/* A colour table padded with black to 256 entries, so any 8-bit index is safe. */
typedef struct cn_palette {
    uint8_t rgb[256][3];
    int grey; /* every entry has r == g == b: decode to one channel */
} cn_palette;

/* Zeroes entries from `count` on and sets `grey`. */
void cn_palette_finish(cn_palette *pal, int count);

/* Writes entry `index` as 1 (grey palette) or 3 floats. */
void cn_palette_put(const cn_palette *pal, unsigned index, float *px);

#endif
