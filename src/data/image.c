/*
 * image.c - reads a file whole, gunzips it if needed, recognises the format by
 * its first bytes and hands it to that format's decoder (image_*.c). Also the
 * allocation helpers every decoder uses, so size limits live in one place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/error.h"
#include "common/files.h"
#include "data/image_codecs.h"

/* ---------------------------------------------------------------------------
 * Allocation and palettes
 * ------------------------------------------------------------------------- */

static clunet_status alloc_pixels(cn_image *img, int width, int height, int channels)
{
    img->data = calloc((size_t)width * (size_t)height * (size_t)channels, sizeof(float));
    if (!img->data) return CLUNET_ERR_OUT_OF_MEMORY;
    img->width = width;
    img->height = height;
    img->channels = channels;
    return CLUNET_OK;
}

clunet_status cn_image_alloc(cn_image *img, int width, int height, int channels)
{
    memset(img, 0, sizeof *img);
    if (width < 1 || height < 1 || width > CN_IMAGE_MAX_SIDE || height > CN_IMAGE_MAX_SIDE ||
        channels < 1 || channels > 4 ||
        (int64_t)width * height * channels > CN_IMAGE_MAX_SAMPLES)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "image of %dx%dx%d is out of range", width,
                       height, channels);
    if (alloc_pixels(img, width, height, channels) != CLUNET_OK)
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "no memory for a %dx%dx%d image", width, height,
                       channels);
    return CLUNET_OK;
}

clunet_status cn_image_check_declared(const char *name, const char *format, int64_t width,
                                      int64_t height, int channels)
{
    if (width < 1 || height < 1 || width > CN_IMAGE_MAX_SIDE || height > CN_IMAGE_MAX_SIDE)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: %s declares %lldx%lld pixels (1 to %d per side)",
                       name, format, (long long)width, (long long)height, CN_IMAGE_MAX_SIDE);
    if (width * height * channels > CN_IMAGE_MAX_SAMPLES)
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: %s of %lldx%lldx%d exceeds %lld samples", name,
                       format, (long long)width, (long long)height, channels,
                       (long long)CN_IMAGE_MAX_SAMPLES);
    return CLUNET_OK;
}

clunet_status cn_image_alloc_declared(const char *name, const char *format, int64_t width,
                                      int64_t height, int channels, cn_image *img)
{
    CN_TRY(cn_image_check_declared(name, format, width, height, channels));
    if (alloc_pixels(img, (int)width, (int)height, channels) != CLUNET_OK)
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory for %lldx%lld %s", name,
                       (long long)width, (long long)height, format);
    return CLUNET_OK;
}

void cn_image_free(cn_image *img)
{
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

void cn_palette_finish(cn_palette *pal, int count)
{
    if (count < 0) count = 0;
    if (count < 256) memset(pal->rgb[count], 0, (size_t)(256 - count) * 3);
    pal->grey = 1;
    for (int i = 0; i < 256; i++)
        if (pal->rgb[i][0] != pal->rgb[i][1] || pal->rgb[i][0] != pal->rgb[i][2]) pal->grey = 0;
}

void cn_palette_put(const cn_palette *pal, unsigned index, float *px)
{
    const uint8_t *e = pal->rgb[index & 255];
    px[0] = e[0];
    if (!pal->grey) {
        px[1] = e[1];
        px[2] = e[2];
    }
}

/* ---------------------------------------------------------------------------
 * Reading whole files and gunzipping them
 * ------------------------------------------------------------------------- */

static clunet_status read_file(const char *path, uint8_t **out, size_t *size)
{
    FILE *f;
    CN_TRY(cn_open_read(path, &f));
    clunet_status st = CLUNET_OK;
    struct stat sb;
    uint8_t *buf = NULL;
    if (fstat(fileno(f), &sb) != 0) {
        st = cn_fail(CLUNET_ERR_IO, "%s: cannot stat (%s)", path, strerror(errno));
    } else if ((uint64_t)sb.st_size > CN_IMAGE_MAX_FILE_BYTES) {
        st = cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: %lld bytes is larger than the %zu-byte limit",
                     path, (long long)sb.st_size, CN_IMAGE_MAX_FILE_BYTES);
    } else if (!(buf = malloc((size_t)sb.st_size + 1))) {
        st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory to read it", path);
    } else if (fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
        st = cn_fail(CLUNET_ERR_IO, "%s: read failed (%s)", path,
                     ferror(f) ? strerror(errno) : "file shrank");
    }
    fclose(f);
    if (st != CLUNET_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *size = (size_t)sb.st_size;
    return CLUNET_OK;
}

static int is_gzip(const uint8_t *d, size_t n) { return n >= 2 && d[0] == 0x1f && d[1] == 0x8b; }

/* Inflates the first gzip member, refusing to grow past CN_IMAGE_MAX_FILE_BYTES. */
static clunet_status gunzip(const char *name, const uint8_t *in, size_t n, uint8_t **out,
                            size_t *out_n)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: cannot start zlib", name);
    size_t cap = n < CN_IMAGE_MAX_FILE_BYTES / 4 ? n * 4 : CN_IMAGE_MAX_FILE_BYTES;
    if (cap < 65536) cap = 65536;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        inflateEnd(&zs);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory to gunzip it", name);
    }
    clunet_status st = CLUNET_OK;
    zs.next_in = (Bytef *)in; /* zlib's API is not const-correct; it only reads */
    zs.avail_in = (uInt)n;    /* n <= CN_IMAGE_MAX_FILE_BYTES fits */
    zs.next_out = buf;
    zs.avail_out = (uInt)cap;
    for (;;) {
        int ret = inflate(&zs, Z_NO_FLUSH);
        if (ret == Z_STREAM_END) break;
        if (zs.avail_out == 0) {
            if (cap >= CN_IMAGE_MAX_FILE_BYTES) {
                st = cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: gunzipped content exceeds %zu bytes",
                             name, CN_IMAGE_MAX_FILE_BYTES);
                break;
            }
            size_t grown = cap * 2 < CN_IMAGE_MAX_FILE_BYTES ? cap * 2 : CN_IMAGE_MAX_FILE_BYTES;
            uint8_t *nb = realloc(buf, grown);
            if (!nb) {
                st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory to gunzip it", name);
                break;
            }
            buf = nb;
            zs.next_out = buf + cap;
            zs.avail_out = (uInt)(grown - cap);
            cap = grown;
        } else if (ret == Z_BUF_ERROR || (ret == Z_OK && zs.avail_in == 0)) {
            st = cn_fail(CLUNET_ERR_FORMAT, "%s: truncated gzip stream", name);
            break;
        } else if (ret != Z_OK) {
            st = cn_fail(CLUNET_ERR_FORMAT, "%s: corrupt gzip stream (zlib: %s)", name,
                         zs.msg ? zs.msg : "error");
            break;
        }
    }
    size_t total = cap - zs.avail_out;
    inflateEnd(&zs);
    if (st != CLUNET_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_n = total;
    return CLUNET_OK;
}

/* ---------------------------------------------------------------------------
 * Recognising formats
 * ------------------------------------------------------------------------- */

typedef clunet_status (*decoder_fn)(const char *, const uint8_t *, size_t, cn_image *);

static const struct {
    const char *magic;
    size_t len;
    decoder_fn decode;
} formats[] = {
    {"\x89PNG\r\n\x1a\n", 8, cn_decode_png},
    {"\xff\xd8\xff", 3, cn_decode_jpeg},
    {"GIF87a", 6, cn_decode_gif},
    {"GIF89a", 6, cn_decode_gif},
    {"II*\0", 4, cn_decode_tiff},
    {"MM\0*", 4, cn_decode_tiff},
    {"II+\0", 4, cn_decode_tiff}, /* BigTIFF */
    {"MM\0+", 4, cn_decode_tiff},
    {"P5", 2, cn_decode_pnm},
    {"P6", 2, cn_decode_pnm},
};

static clunet_status decode(const char *name, const uint8_t *d, size_t n, cn_image *img)
{
    if (n == 0) return cn_fail(CLUNET_ERR_FORMAT, "%s: empty file", name);
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (n >= formats[i].len && memcmp(d, formats[i].magic, formats[i].len) == 0)
            return formats[i].decode(name, d, n, img);
    if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7')
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: PNM type P%c (only binary P5/P6 are read)",
                       name, d[1]);
    if (is_gzip(d, n))
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: gzip inside gzip", name);
    return cn_fail(CLUNET_ERR_FORMAT,
                   "%s: not a TIFF, PNG, GIF, JPEG, PPM/PGM or gzip file (starts %02x %02x %02x %02x)",
                   name, d[0], n > 1 ? d[1] : 0, n > 2 ? d[2] : 0, n > 3 ? d[3] : 0);
}

clunet_status cn_image_load_memory(const char *name, const void *data, size_t size, cn_image *img)
{
    memset(img, 0, sizeof *img);
    const uint8_t *d = data;
    clunet_status st;
    if (size > CN_IMAGE_MAX_FILE_BYTES) {
        st = cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: %zu bytes is larger than the %zu-byte limit",
                     name, size, CN_IMAGE_MAX_FILE_BYTES);
    } else if (is_gzip(d, size)) {
        uint8_t *plain = NULL;
        size_t n = 0;
        st = gunzip(name, d, size, &plain, &n);
        if (st == CLUNET_OK) st = decode(name, plain, n, img);
        free(plain);
    } else {
        st = decode(name, d, size, img);
    }
    if (st != CLUNET_OK) cn_image_free(img);
    return st;
}

clunet_status cn_image_load(const char *path, cn_image *img)
{
    memset(img, 0, sizeof *img);
    uint8_t *buf = NULL;
    size_t n = 0;
    CN_TRY(read_file(path, &buf, &n));
    clunet_status st = cn_image_load_memory(path, buf, n, img);
    free(buf);
    return st;
}
