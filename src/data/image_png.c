/*
 * image_png.c - PNG through libpng: every bit depth (1-16) and colour type;
 * alpha and tRNS are dropped, palettes expanded. Also the PNG writer.
 *
 * libpng reports errors by calling our error function, which records the
 * message and longjmps back to the setjmp in decode()/encode(). Everything
 * those functions allocate hangs off the state struct, which lives in the
 * caller's frame, so the caller frees it on either path.
 */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/image_codecs.h"

typedef struct png_state {
    png_structp png;
    png_infop info;
    const uint8_t *data; /* reading: the file */
    size_t size, pos;
    int truncated; /* reading ran off the end of the data */
    uint8_t *raw;  /* decoded rows, or the row being written */
    png_bytep *rows;
    char msg[256];
} png_state;

static void on_error(png_structp png, png_const_charp msg)
{
    png_state *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings are about things we ignore anyway (bad ancillary chunks, gamma). */
static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void read_memory(png_structp png, png_bytep out, size_t n)
{
    png_state *s = png_get_io_ptr(png);
    if (n > s->size - s->pos) {
        s->truncated = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

/* ---------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------- */

static clunet_status decode(png_state *s, const char *name, cn_image *img)
{
    if (setjmp(png_jmpbuf(s->png)))
        return cn_fail(CLUNET_ERR_FORMAT, "%s: %s PNG (libpng: %s)", name,
                       s->truncated ? "truncated" : "corrupt", s->msg);
    png_set_read_fn(s->png, s, read_memory);
    /* any size the format allows: the size is checked here, before libpng allocates rows, with the message
     * every format gives (libpng's own limit would call the file corrupt) */
    png_set_user_limits(s->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(s->png, s->info);

    png_uint_32 width, height;
    int depth, type, interlace;
    png_get_IHDR(s->png, s->info, &width, &height, &depth, &type, &interlace, NULL, NULL);
    CN_TRY(cn_image_check_declared(name, "PNG", width, height, 1));
    int palette = type == PNG_COLOR_TYPE_PALETTE;
    int channels = (type & PNG_COLOR_MASK_COLOR) && !palette ? 3 : 1;
    cn_palette pal;
    if (palette) {
        png_colorp entries;
        int count = 0;
        if (!png_get_PLTE(s->png, s->info, &entries, &count))
            return cn_fail(CLUNET_ERR_FORMAT, "%s: palette PNG without a PLTE chunk", name);
        for (int i = 0; i < count && i < 256; i++) {
            pal.rgb[i][0] = entries[i].red;
            pal.rgb[i][1] = entries[i].green;
            pal.rgb[i][2] = entries[i].blue;
        }
        cn_palette_finish(&pal, count);
        channels = pal.grey ? 1 : 3;
    }
    /* One byte (or two, big-endian, for 16-bit) per sample; we scale and skip alpha. */
    if (depth < 8) png_set_packing(s->png);
    png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);

    CN_TRY(cn_image_alloc_declared(name, "PNG", width, height, channels, img));
    img->bits = depth;
    size_t rowbytes = png_get_rowbytes(s->png, s->info);
    int stored = (int)png_get_channels(s->png, s->info); /* samples per pixel in a row */
    int bytes = depth == 16 ? 2 : 1;
    if (rowbytes < (size_t)width * (size_t)stored * (size_t)bytes)
        return cn_fail(CLUNET_ERR_INTERNAL, "%s: libpng row size %zu is too small", name,
                       rowbytes);
    s->raw = malloc(rowbytes * height);
    s->rows = malloc(sizeof *s->rows * height);
    if (!s->raw || !s->rows)
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory to decode PNG", name);
    for (png_uint_32 y = 0; y < height; y++) s->rows[y] = s->raw + y * rowbytes;
    png_read_image(s->png, s->rows);

    unsigned maxval = palette ? 0 : (1u << depth) - 1;
    for (png_uint_32 y = 0; y < height; y++) {
        const uint8_t *row = s->rows[y];
        float *out = img->data + (size_t)y * width * channels;
        for (png_uint_32 x = 0; x < width; x++, out += channels) {
            const uint8_t *p = row + (size_t)x * stored * bytes;
            if (palette) {
                cn_palette_put(&pal, p[0], out);
                continue;
            }
            for (int c = 0; c < channels; c++) {
                unsigned v = bytes == 2 ? (unsigned)p[2 * c] << 8 | p[2 * c + 1] : p[c];
                out[c] = cn_sample_scale(v, maxval);
            }
        }
    }
    return CLUNET_OK;
}

clunet_status cn_decode_png(const char *name, const uint8_t *data, size_t size, cn_image *img)
{
    png_state s;
    memset(&s, 0, sizeof s);
    s.data = data;
    s.size = size;
    s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    if (s.png) s.info = png_create_info_struct(s.png);
    clunet_status st = s.info ? decode(&s, name, img)
                              : cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: cannot start libpng", name);
    png_destroy_read_struct(&s.png, s.info ? &s.info : NULL, NULL);
    free(s.rows);
    free(s.raw);
    return st;
}

/* ---------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------- */

static clunet_status encode(png_state *s, FILE *f, const char *path, const cn_image *img,
                            int bits)
{
    if (setjmp(png_jmpbuf(s->png)))
        return cn_fail(CLUNET_ERR_IO, "%s: cannot write PNG (libpng: %s)", path, s->msg);
    int bytes = bits / 8;
    size_t row_samples = (size_t)img->width * img->channels;
    s->raw = malloc(row_samples * bytes);
    if (!s->raw) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory for a PNG row", path);
    png_init_io(s->png, f);
    png_set_IHDR(s->png, s->info, (png_uint_32)img->width, (png_uint_32)img->height, bits,
                 img->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(s->png, s->info);
    float scale = bits == 16 ? 257.0f : 1.0f;
    for (int y = 0; y < img->height; y++) {
        const float *in = img->data + (size_t)y * row_samples;
        for (size_t i = 0; i < row_samples; i++) {
            float v = in[i];
            v = v > 0.0f ? (v < 255.0f ? v : 255.0f) : 0.0f; /* NaN becomes 0 too */
            unsigned q = (unsigned)(v * scale + 0.5f);
            if (bytes == 2) {
                s->raw[2 * i] = (uint8_t)(q >> 8);
                s->raw[2 * i + 1] = (uint8_t)q;
            } else {
                s->raw[i] = (uint8_t)q;
            }
        }
        png_write_row(s->png, s->raw);
    }
    png_write_end(s->png, NULL);
    return CLUNET_OK;
}

clunet_status cn_image_write_png(const char *path, const cn_image *img, int bits)
{
    if (!img || !img->data || img->width < 1 || img->height < 1 ||
        (img->channels != 1 && img->channels != 3) || (bits != 8 && bits != 16))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                       "%s: PNG needs a 1- or 3-channel image and 8 or 16 bits", path);
    FILE *f = fopen(path, "wb");
    if (!f) return cn_fail(CLUNET_ERR_IO, "%s: cannot create (%s)", path, strerror(errno));
    png_state s;
    memset(&s, 0, sizeof s);
    s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    if (s.png) s.info = png_create_info_struct(s.png);
    clunet_status st = s.info ? encode(&s, f, path, img, bits)
                              : cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: cannot start libpng", path);
    png_destroy_write_struct(&s.png, s.info ? &s.info : NULL);
    free(s.raw);
    int failed = ferror(f);
    if (fclose(f) != 0 || failed) {
        if (st == CLUNET_OK) st = cn_fail(CLUNET_ERR_IO, "%s: write failed", path);
    }
    if (st != CLUNET_OK) remove(path);
    return st;
}
