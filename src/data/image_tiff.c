/*
 * image_tiff.c - TIFF through libtiff, first directory only.
 *
 * Strip images in grey (1-16 bits, min-is-black or -white), RGB (8/16 bits,
 * contiguous or planar) and palette (1-8 bits) are read scanline by scanline
 * at full precision. Anything else libtiff can render (tiles, YCbCr, CMYK...)
 * goes through TIFFReadRGBAImage at 8 bits. Extra samples (alpha) are dropped.
 * Error and warning handlers are set per file (TIFFOpenOptions), so nothing
 * reaches stderr and concurrent loads do not share state.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#include "common/error.h"
#include "data/image_codecs.h"

/* Samples per pixel beyond this are refused (they would only be dropped). */
#define MAX_SAMPLES_PER_PIXEL 16

typedef struct tiff_state {
    const uint8_t *data;
    uint64_t size, pos;
    TIFF *tif;
    uint8_t *line;
    uint32_t *raster;
    char msg[256];
} tiff_state;

/* ---------------------------------------------------------------------------
 * libtiff client procedures over a memory buffer
 * ------------------------------------------------------------------------- */

static tmsize_t mem_read(thandle_t h, void *buf, tmsize_t n)
{
    tiff_state *s = h;
    if (n <= 0 || s->pos >= s->size) return 0;
    uint64_t k = s->size - s->pos < (uint64_t)n ? s->size - s->pos : (uint64_t)n;
    memcpy(buf, s->data + s->pos, (size_t)k);
    s->pos += k;
    return (tmsize_t)k;
}

static tmsize_t mem_write(thandle_t h, void *buf, tmsize_t n)
{
    (void)h;
    (void)buf;
    (void)n;
    return -1;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence)
{
    tiff_state *s = h;
    uint64_t base = whence == SEEK_CUR ? s->pos : whence == SEEK_END ? s->size : 0;
    if (off > UINT64_MAX - base) return (toff_t)-1;
    s->pos = base + off;
    return s->pos;
}

static int mem_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t mem_size(thandle_t h) { return ((tiff_state *)h)->size; }

/* libtiff reads mapped data in place, copying before it changes anything. */
static int mem_map(thandle_t h, void **base, toff_t *size)
{
    tiff_state *s = h;
    *base = (void *)s->data;
    *size = s->size;
    return 1;
}

static void mem_unmap(thandle_t h, void *base, toff_t size)
{
    (void)h;
    (void)base;
    (void)size;
}

/* Keeps libtiff's first error: later ones are usually consequences of it. */
static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    (void)module;
    tiff_state *s = user;
    if (!s->msg[0]) vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    return 1;
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    (void)user;
    (void)module;
    (void)fmt;
    (void)ap;
    return 1;
}

/* ---------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------- */

static clunet_status libtiff_failure(tiff_state *s, const char *name, const char *what)
{
    return cn_fail(CLUNET_ERR_FORMAT, "%s: %s (libtiff: %s)", name, what,
                   s->msg[0] ? s->msg : "no detail");
}

/* Sample `i` of a scanline, MSB-first for depths below 8 (libtiff handles FillOrder). */
static unsigned sample_at(const uint8_t *line, size_t i, int bps)
{
    if (bps == 8) return line[i];
    if (bps == 16) {
        uint16_t v;
        memcpy(&v, line + 2 * i, 2); /* libtiff already swapped it to host order */
        return v;
    }
    size_t bit = i * (size_t)bps;
    return (line[bit >> 3] >> (8 - bps - (int)(bit & 7))) & ((1u << bps) - 1);
}

static clunet_status read_palette(tiff_state *s, const char *name, int bps, cn_palette *pal)
{
    uint16_t *r, *g, *b;
    if (!TIFFGetField(s->tif, TIFFTAG_COLORMAP, &r, &g, &b))
        return cn_fail(CLUNET_ERR_FORMAT, "%s: palette TIFF without a colour map", name);
    int count = 1 << bps;
    /* Some writers store 8-bit values in the 16-bit map. */
    int shift = 0;
    for (int i = 0; i < count; i++)
        if (r[i] > 255 || g[i] > 255 || b[i] > 255) shift = 8;
    for (int i = 0; i < count; i++) {
        pal->rgb[i][0] = (uint8_t)(r[i] >> shift);
        pal->rgb[i][1] = (uint8_t)(g[i] >> shift);
        pal->rgb[i][2] = (uint8_t)(b[i] >> shift);
    }
    cn_palette_finish(pal, count);
    return CLUNET_OK;
}

/* Strip images with a layout we read ourselves, at full precision. */
static clunet_status read_scanlines(tiff_state *s, const char *name, uint32_t width,
                                    uint32_t height, uint16_t photometric, int spp, int bps,
                                    cn_image *img)
{
    uint16_t planar = PLANARCONFIG_CONTIG;
    TIFFGetFieldDefaulted(s->tif, TIFFTAG_PLANARCONFIG, &planar);
    cn_palette pal;
    int channels = photometric == PHOTOMETRIC_RGB ? 3 : 1;
    if (photometric == PHOTOMETRIC_PALETTE) {
        CN_TRY(read_palette(s, name, bps, &pal));
        channels = pal.grey ? 1 : 3;
    }
    CN_TRY(cn_image_alloc_declared(name, "TIFF", width, height, channels, img));
    img->bits = bps;

    int stride = planar == PLANARCONFIG_SEPARATE ? 1 : spp; /* samples per pixel in a line */
    uint64_t need = ((uint64_t)width * stride * bps + 7) / 8;
    tmsize_t have = TIFFScanlineSize(s->tif);
    if (have <= 0 || (uint64_t)have < need)
        return libtiff_failure(s, name, "inconsistent scanline size");
    s->line = malloc((size_t)have);
    if (!s->line) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory for a TIFF line", name);

    unsigned maxval = (1u << bps) - 1;
    int planes = planar == PLANARCONFIG_SEPARATE ? (photometric == PHOTOMETRIC_RGB ? 3 : 1) : 1;
    for (int plane = 0; plane < planes; plane++) {
        for (uint32_t y = 0; y < height; y++) {
            if (TIFFReadScanline(s->tif, s->line, y, (uint16_t)plane) < 0)
                return libtiff_failure(s, name, "corrupt or truncated TIFF");
            float *out = img->data + (size_t)y * width * channels;
            for (uint32_t x = 0; x < width; x++, out += channels) {
                size_t first = (size_t)x * stride;
                if (photometric == PHOTOMETRIC_PALETTE) {
                    cn_palette_put(&pal, sample_at(s->line, first, bps), out);
                } else if (planes > 1) {
                    out[plane] = cn_sample_scale(sample_at(s->line, first, bps), maxval);
                } else {
                    for (int c = 0; c < channels; c++) {
                        unsigned v = sample_at(s->line, first + c, bps);
                        if (photometric == PHOTOMETRIC_MINISWHITE) v = maxval - v;
                        out[c] = cn_sample_scale(v, maxval);
                    }
                }
            }
        }
    }
    return CLUNET_OK;
}

/* Everything else libtiff can turn into 8-bit RGBA. */
static clunet_status read_rgba(tiff_state *s, const char *name, uint32_t width, uint32_t height,
                               uint16_t photometric, int bps, cn_image *img)
{
    char why[1024];
    if (!TIFFRGBAImageOK(s->tif, why))
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: unsupported TIFF layout (libtiff: %s)", name,
                       why);
    int grey = photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE;
    int channels = grey ? 1 : 3;
    CN_TRY(cn_image_alloc_declared(name, "TIFF", width, height, channels, img));
    img->bits = bps;
    s->raster = malloc((size_t)width * height * sizeof *s->raster);
    if (!s->raster) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory for TIFF", name);
    if (!TIFFReadRGBAImageOriented(s->tif, width, height, s->raster, ORIENTATION_TOPLEFT, 1))
        return libtiff_failure(s, name, "corrupt or truncated TIFF");
    for (size_t i = 0; i < (size_t)width * height; i++) {
        uint32_t p = s->raster[i];
        float *out = img->data + i * channels;
        out[0] = (float)TIFFGetR(p);
        if (!grey) {
            out[1] = (float)TIFFGetG(p);
            out[2] = (float)TIFFGetB(p);
        }
    }
    return CLUNET_OK;
}

static clunet_status decode(tiff_state *s, const char *name, cn_image *img)
{
    uint32_t width = 0, height = 0;
    uint16_t spp = 1, bps = 1, photometric = 0, format = SAMPLEFORMAT_UINT;
    if (!TIFFGetField(s->tif, TIFFTAG_IMAGEWIDTH, &width) ||
        !TIFFGetField(s->tif, TIFFTAG_IMAGELENGTH, &height) ||
        !TIFFGetField(s->tif, TIFFTAG_PHOTOMETRIC, &photometric))
        return libtiff_failure(s, name, "TIFF lacks width, height or photometric tag");
    TIFFGetFieldDefaulted(s->tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(s->tif, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(s->tif, TIFFTAG_SAMPLEFORMAT, &format);
    CN_TRY(cn_image_check_declared(name, "TIFF", width, height, 3));
    if (spp < 1 || spp > MAX_SAMPLES_PER_PIXEL || bps < 1 || bps > 16)
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: TIFF with %u samples of %u bits", name, spp,
                       bps);
    if (format != SAMPLEFORMAT_UINT)
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: TIFF sample format %u (only unsigned)", name,
                       format);
    int grey = photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE;
    int ours = !TIFFIsTiled(s->tif) &&
               ((grey && (bps == 1 || bps == 2 || bps == 4 || bps == 8 || bps == 16)) ||
                (photometric == PHOTOMETRIC_RGB && spp >= 3 && (bps == 8 || bps == 16)) ||
                (photometric == PHOTOMETRIC_PALETTE && spp == 1 && bps <= 8));
    if (ours) return read_scanlines(s, name, width, height, photometric, spp, bps, img);
    return read_rgba(s, name, width, height, photometric, bps, img);
}

clunet_status cn_decode_tiff(const char *name, const uint8_t *data, size_t size, cn_image *img)
{
    tiff_state s;
    memset(&s, 0, sizeof s);
    s.data = data;
    s.size = size;
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: cannot start libtiff", name);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)CN_IMAGE_MAX_LIBRARY_BYTES);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &s);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &s);
    /* Mapped, not read through mem_read: libtiff 4.5 rejects unmapped tiles it pads. */
    s.tif = TIFFClientOpenExt(name, "r", &s, mem_read, mem_write, mem_seek, mem_close, mem_size,
                              mem_map, mem_unmap, opts);
    TIFFOpenOptionsFree(opts);
    clunet_status st = s.tif ? decode(&s, name, img)
                             : libtiff_failure(&s, name, "not a readable TIFF");
    if (s.tif) TIFFClose(s.tif);
    free(s.line);
    free(s.raster);
    return st;
}
