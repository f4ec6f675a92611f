/*
 * gen.c - test images of every supported format, written with the reference
 * libraries, and the decoded pixels they must give (see gen.h).
 *
 * Lossless formats use a hash pattern, so every bit of every sample matters
 * and a swapped channel, row or byte order shows. JPEG uses smooth ramps and
 * a tolerance, since it is lossy.
 */
#include <stdio.h> /* before jpeglib.h */

#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>
#include <zlib.h>

#include "gen.h"

/* Sizes chosen odd so bit packing and row padding are exercised. */
#define W 37
#define H 23

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "gen: out of memory\n");
        exit(2);
    }
    return p;
}

static void die(const char *what)
{
    fprintf(stderr, "gen: %s\n", what);
    exit(2);
}

static unsigned pattern(int x, int y, int c, int seed, unsigned maxval)
{
    uint32_t h = (uint32_t)x * 73856093u ^ (uint32_t)y * 19349663u ^
                 (uint32_t)(c + 1) * 83492791u ^ (uint32_t)seed * 2654435761u;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return h % (maxval + 1);
}

static float scale(unsigned v, unsigned maxval) { return (float)((double)v * 255.0 / maxval); }

/* ---------------------------------------------------------------------------
 * Case list and byte buffers
 * ------------------------------------------------------------------------- */

typedef struct gen_list {
    gen_case *v;
    int n, cap;
} gen_list;

static gen_case *add_case(gen_list *l, const char *name, int w, int h, int channels, int bits)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, sizeof *l->v * (size_t)l->cap);
        if (!l->v) die("out of memory");
    }
    gen_case *k = &l->v[l->n++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->width = w;
    k->height = h;
    k->channels = channels;
    k->bits = bits;
    k->expect = xmalloc(sizeof(float) * (size_t)w * h * channels);
    return k;
}

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) die("out of memory");
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

/* Packs samples MSB-first at `bits` per sample (16: big-endian). Returns bytes used. */
static size_t pack(uint8_t *out, const unsigned *s, size_t count, int bits, int native16)
{
    if (bits == 8) {
        for (size_t i = 0; i < count; i++) out[i] = (uint8_t)s[i];
        return count;
    }
    if (bits == 16) {
        for (size_t i = 0; i < count; i++) {
            if (native16) {
                uint16_t v = (uint16_t)s[i];
                memcpy(out + 2 * i, &v, 2);
            } else {
                out[2 * i] = (uint8_t)(s[i] >> 8);
                out[2 * i + 1] = (uint8_t)s[i];
            }
        }
        return 2 * count;
    }
    size_t n = (count * (size_t)bits + 7) / 8;
    memset(out, 0, n);
    for (size_t i = 0; i < count; i++) {
        size_t bit = i * (size_t)bits;
        out[bit >> 3] |= (uint8_t)(s[i] << (8 - bits - (int)(bit & 7)));
    }
    return n;
}

uint8_t *gen_gzip(const uint8_t *data, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    uint8_t *out = xmalloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) die("deflate");
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

int gen_write_file(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return (fclose(f) != 0 || w != n) ? -1 : 0;
}

const char *gen_tempdir(const char *prefix)
{
    static char path[512];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/%s-XXXXXX", base && *base ? base : "/tmp", prefix);
    if (!mkdtemp(path)) die("mkdtemp failed");
    return path;
}

/* A random colour table; grey tables have r == g == b. */
static void make_palette(uint8_t (*pal)[3], int count, int grey, int seed)
{
    for (int i = 0; i < count; i++)
        for (int c = 0; c < 3; c++)
            pal[i][c] = (uint8_t)(grey ? pattern(i, 0, 0, seed, 255) : pattern(i, 0, c, seed, 255));
}

/* ---------------------------------------------------------------------------
 * PNG
 * ------------------------------------------------------------------------- */

static void png_write_bytes(png_structp png, png_bytep d, size_t n)
{
    put(png_get_io_ptr(png), d, n);
}

static void png_flush_nothing(png_structp png) { (void)png; }

/* vals: W*H*stored samples (palette: indices). */
static void write_png(gen_case *k, int type, int depth, int interlace, const unsigned *vals,
                      int stored, uint8_t (*plte)[3], int nplte, int trns)
{
    bytes b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) die("libpng write failed");
    png_set_write_fn(png, &b, png_write_bytes, png_flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)k->width, (png_uint_32)k->height, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (plte) {
        png_color c[256];
        for (int i = 0; i < nplte; i++) {
            c[i].red = plte[i][0];
            c[i].green = plte[i][1];
            c[i].blue = plte[i][2];
        }
        png_set_PLTE(png, info, c, nplte);
    }
    if (trns) {
        png_byte alpha[1] = {0};
        png_color_16 colour = {0, 1, 1, 1, 1};
        png_set_tRNS(png, info, alpha, plte ? 1 : 0, plte ? NULL : &colour);
    }
    png_write_info(png, info);
    size_t row_samples = (size_t)k->width * stored;
    uint8_t *row = xmalloc(row_samples * 2);
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < k->height; y++) {
            pack(row, vals + y * row_samples, row_samples, depth, 0);
            png_write_row(png, row);
        }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(row);
    k->bytes = b.p;
    k->size = b.n;
}

static void png_cases(gen_list *l)
{
    static const struct {
        const char *name;
        int type, depth, interlace;
    } plain[] = {
        {"grey1.png", PNG_COLOR_TYPE_GRAY, 1, 0},     {"grey2.png", PNG_COLOR_TYPE_GRAY, 2, 0},
        {"grey4.png", PNG_COLOR_TYPE_GRAY, 4, 0},     {"grey8.png", PNG_COLOR_TYPE_GRAY, 8, 0},
        {"grey16.png", PNG_COLOR_TYPE_GRAY, 16, 0},   {"greya8.png", PNG_COLOR_TYPE_GA, 8, 0},
        {"greya16.png", PNG_COLOR_TYPE_GA, 16, 0},    {"rgb8.png", PNG_COLOR_TYPE_RGB, 8, 0},
        {"rgb16.png", PNG_COLOR_TYPE_RGB, 16, 0},     {"rgba8.png", PNG_COLOR_TYPE_RGBA, 8, 0},
        {"rgba16.png", PNG_COLOR_TYPE_RGBA, 16, 0},   {"rgb8-adam7.png", PNG_COLOR_TYPE_RGB, 8, 1},
        {"grey16-adam7.png", PNG_COLOR_TYPE_GRAY, 16, 1},
        {"grey1-adam7.png", PNG_COLOR_TYPE_GRAY, 1, 1},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        int type = plain[i].type, depth = plain[i].depth;
        int stored = type == PNG_COLOR_TYPE_GRAY ? 1 : type == PNG_COLOR_TYPE_GA ? 2
                     : type == PNG_COLOR_TYPE_RGB ? 3 : 4;
        int channels = type & PNG_COLOR_MASK_COLOR ? 3 : 1;
        gen_case *k = add_case(l, plain[i].name, W, H, channels, depth);
        unsigned maxval = (1u << depth) - 1;
        unsigned *vals = xmalloc(sizeof *vals * W * H * stored);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < stored; c++) {
                    unsigned v = pattern(x, y, c, (int)i, maxval);
                    vals[(y * W + x) * stored + c] = v;
                    if (c < channels) k->expect[(y * W + x) * channels + c] = scale(v, maxval);
                }
        write_png(k, type, depth, plain[i].interlace, vals, stored, NULL, 0,
                  type == PNG_COLOR_TYPE_GRAY && depth == 8);
        free(vals);
    }
    /* Palettes: colour tables expand to RGB, grey tables to one channel. */
    static const struct {
        const char *name;
        int depth, grey, interlace, trns;
    } pals[] = {
        {"pal1.png", 1, 0, 0, 0}, {"pal2.png", 2, 0, 0, 0}, {"pal4.png", 4, 0, 0, 1},
        {"pal8.png", 8, 0, 0, 0}, {"pal4-grey.png", 4, 1, 0, 0}, {"pal8-grey.png", 8, 1, 1, 0},
        {"pal2-adam7.png", 2, 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof pals / sizeof pals[0]; i++) {
        int n = pals[i].depth == 8 ? 200 : 1 << pals[i].depth;
        uint8_t table[256][3];
        make_palette(table, n, pals[i].grey, 100 + (int)i);
        int channels = pals[i].grey ? 1 : 3;
        gen_case *k = add_case(l, pals[i].name, W, H, channels, pals[i].depth);
        unsigned *vals = xmalloc(sizeof *vals * W * H);
        for (int p = 0; p < W * H; p++) {
            vals[p] = pattern(p % W, p / W, 0, 50 + (int)i, (unsigned)n - 1);
            for (int c = 0; c < channels; c++) k->expect[p * channels + c] = table[vals[p]][c];
        }
        write_png(k, PNG_COLOR_TYPE_PALETTE, pals[i].depth, pals[i].interlace, vals, 1, table, n,
                  pals[i].trns);
        free(vals);
    }
}

/* ---------------------------------------------------------------------------
 * TIFF (libtiff writes files, so go through `dir`)
 * ------------------------------------------------------------------------- */

typedef struct tiff_spec {
    const char *name;
    uint16_t photometric;
    int spp, bps, planar, compression, tiled, bigendian;
} tiff_spec;

static uint8_t *read_whole(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot reopen a generated file");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = xmalloc((size_t)size);
    if (fread(p, 1, (size_t)size, f) != (size_t)size) die("short read of a generated file");
    fclose(f);
    *n = (size_t)size;
    return p;
}

static void write_tiff(gen_case *k, const char *dir, const tiff_spec *t, const unsigned *vals,
                       uint8_t (*plte)[3])
{
    char path[600];
    snprintf(path, sizeof path, "%s/gen.tif", dir);
    TIFF *tif = TIFFOpen(path, t->bigendian ? "wb" : "wl");
    if (!tif) die("TIFFOpen for writing failed");
    int w = k->width, h = k->height, spp = t->spp;
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)w);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)h);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)spp);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)t->bps);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, t->photometric);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, (uint16_t)t->planar);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, (uint16_t)t->compression);
    int colour = t->photometric == PHOTOMETRIC_RGB ? 3 : 1;
    if (spp > colour) {
        uint16_t extra = EXTRASAMPLE_UNASSALPHA;
        TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, (uint16_t)1, &extra);
    }
    if (plte) {
        int n = 1 << t->bps;
        uint16_t *map = xmalloc(sizeof *map * 3 * (size_t)n);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) map[c * n + i] = (uint16_t)(plte[i][c] * 257);
        TIFFSetField(tif, TIFFTAG_COLORMAP, map, map + n, map + 2 * n);
        free(map);
    }
    uint8_t *buf = xmalloc((size_t)w * spp * 2 * 16 * 16);
    unsigned *tmp = xmalloc(sizeof *tmp * (size_t)w * spp * 16 * 16);
    if (t->tiled) { /* 8-bit contiguous only */
        TIFFSetField(tif, TIFFTAG_TILEWIDTH, 16u);
        TIFFSetField(tif, TIFFTAG_TILELENGTH, 16u);
        for (int ty = 0; ty < h; ty += 16)
            for (int tx = 0; tx < w; tx += 16) {
                for (int y = 0; y < 16; y++)
                    for (int x = 0; x < 16; x++)
                        for (int c = 0; c < spp; c++) {
                            int in = tx + x < w && ty + y < h;
                            tmp[(y * 16 + x) * spp + c] =
                                in ? vals[((ty + y) * w + tx + x) * spp + c] : 0;
                        }
                pack(buf, tmp, (size_t)16 * 16 * spp, 8, 1);
                if (TIFFWriteTile(tif, buf, (uint32_t)tx, (uint32_t)ty, 0, 0) < 0)
                    die("TIFFWriteTile failed");
            }
    } else {
        TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 5u);
        int planes = t->planar == PLANARCONFIG_SEPARATE ? spp : 1;
        int stride = planes > 1 ? 1 : spp;
        for (int p = 0; p < planes; p++)
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < stride; c++)
                        tmp[x * stride + c] = vals[(y * w + x) * spp + (planes > 1 ? p : c)];
                pack(buf, tmp, (size_t)w * stride, t->bps, 1);
                if (TIFFWriteScanline(tif, buf, (uint32_t)y, (uint16_t)p) < 0)
                    die("TIFFWriteScanline failed");
            }
    }
    TIFFClose(tif);
    free(buf);
    free(tmp);
    k->bytes = read_whole(path, &k->size);
    unlink(path);
}

static void tiff_cases(gen_list *l, const char *dir)
{
    enum { C = PLANARCONFIG_CONTIG, S = PLANARCONFIG_SEPARATE };
    static const tiff_spec specs[] = {
        {"bilevel.tif", PHOTOMETRIC_MINISBLACK, 1, 1, C, COMPRESSION_NONE, 0, 0},
        {"bilevel-white.tif", PHOTOMETRIC_MINISWHITE, 1, 1, C, COMPRESSION_CCITTFAX4, 0, 0},
        {"bilevel-packbits.tif", PHOTOMETRIC_MINISWHITE, 1, 1, C, COMPRESSION_PACKBITS, 0, 1},
        {"grey2.tif", PHOTOMETRIC_MINISBLACK, 1, 2, C, COMPRESSION_NONE, 0, 0},
        {"grey4.tif", PHOTOMETRIC_MINISBLACK, 1, 4, C, COMPRESSION_LZW, 0, 0},
        {"grey8.tif", PHOTOMETRIC_MINISBLACK, 1, 8, C, COMPRESSION_NONE, 0, 0},
        {"grey8-white.tif", PHOTOMETRIC_MINISWHITE, 1, 8, C, COMPRESSION_PACKBITS, 0, 0},
        {"grey16.tif", PHOTOMETRIC_MINISBLACK, 1, 16, C, COMPRESSION_ADOBE_DEFLATE, 0, 0},
        {"grey16-be.tif", PHOTOMETRIC_MINISBLACK, 1, 16, C, COMPRESSION_NONE, 0, 1},
        {"greya8.tif", PHOTOMETRIC_MINISBLACK, 2, 8, C, COMPRESSION_NONE, 0, 0},
        {"rgb8.tif", PHOTOMETRIC_RGB, 3, 8, C, COMPRESSION_NONE, 0, 0},
        {"rgb8-lzw.tif", PHOTOMETRIC_RGB, 3, 8, C, COMPRESSION_LZW, 0, 0},
        {"rgb8-deflate.tif", PHOTOMETRIC_RGB, 3, 8, C, COMPRESSION_ADOBE_DEFLATE, 0, 1},
        {"rgb8-planar.tif", PHOTOMETRIC_RGB, 3, 8, S, COMPRESSION_LZW, 0, 0},
        {"rgb16.tif", PHOTOMETRIC_RGB, 3, 16, C, COMPRESSION_NONE, 0, 0},
        {"rgb16-be-planar.tif", PHOTOMETRIC_RGB, 3, 16, S, COMPRESSION_NONE, 0, 1},
        {"rgba8.tif", PHOTOMETRIC_RGB, 4, 8, C, COMPRESSION_LZW, 0, 0},
        {"rgba16.tif", PHOTOMETRIC_RGB, 4, 16, C, COMPRESSION_NONE, 0, 0},
        {"rgb8-tiled.tif", PHOTOMETRIC_RGB, 3, 8, C, COMPRESSION_NONE, 1, 0},
        {"grey8-tiled.tif", PHOTOMETRIC_MINISBLACK, 1, 8, C, COMPRESSION_LZW, 1, 0},
        {"pal8.tif", PHOTOMETRIC_PALETTE, 1, 8, C, COMPRESSION_NONE, 0, 0},
        {"pal4.tif", PHOTOMETRIC_PALETTE, 1, 4, C, COMPRESSION_LZW, 0, 0},
        {"pal2-grey.tif", PHOTOMETRIC_PALETTE, 1, 2, C, COMPRESSION_NONE, 0, 0},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const tiff_spec *t = &specs[i];
        unsigned maxval = (1u << t->bps) - 1;
        uint8_t table[256][3];
        int palette = t->photometric == PHOTOMETRIC_PALETTE;
        int grey_table = palette && strstr(t->name, "grey") != NULL;
        if (palette) make_palette(table, 1 << t->bps, grey_table, 200 + (int)i);
        int channels = t->photometric == PHOTOMETRIC_RGB || (palette && !grey_table) ? 3 : 1;
        gen_case *k = add_case(l, t->name, W, H, channels, t->bps);
        unsigned *vals = xmalloc(sizeof *vals * W * H * t->spp);
        for (int p = 0; p < W * H; p++)
            for (int c = 0; c < t->spp; c++) {
                unsigned v = pattern(p % W, p / W, c, 10 + (int)i, maxval);
                vals[p * t->spp + c] = v;
                if (c >= channels && !palette) continue;
                if (palette) {
                    for (int d = 0; d < channels; d++) k->expect[p * channels + d] = table[v][d];
                } else if (t->photometric == PHOTOMETRIC_MINISWHITE) {
                    k->expect[p * channels + c] = scale(maxval - v, maxval);
                } else {
                    k->expect[p * channels + c] = scale(v, maxval);
                }
            }
        write_tiff(k, dir, t, vals, palette ? table : NULL);
        free(vals);
    }
}

/* ---------------------------------------------------------------------------
 * GIF
 * ------------------------------------------------------------------------- */

static int gif_write_bytes(GifFileType *gif, const GifByteType *d, int n)
{
    put(gif->UserData, d, (size_t)n);
    return n;
}

typedef struct gif_spec {
    const char *name;
    int bits, grey, interlace, gif89;
    int screen_w, screen_h, left, top; /* frame is W x H */
    int frames;
} gif_spec;

static void gif_cases(gen_list *l)
{
    static const gif_spec specs[] = {
        {"colour8.gif", 8, 0, 0, 1, W, H, 0, 0, 1},
        {"grey1.gif", 1, 1, 0, 0, W, H, 0, 0, 1},
        {"grey4-interlaced.gif", 4, 1, 1, 1, W, H, 0, 0, 1},
        {"colour3-offset.gif", 3, 0, 0, 1, W + 9, H + 5, 4, 3, 1},
        {"colour8-two-frames.gif", 8, 0, 1, 1, W, H, 0, 0, 2},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const gif_spec *g = &specs[i];
        int n = 1 << g->bits;
        uint8_t table[256][3];
        make_palette(table, n, g->grey, 300 + (int)i);
        int channels = g->grey ? 1 : 3;
        gen_case *k = add_case(l, g->name, g->screen_w, g->screen_h, channels, 8);
        GifColorType colours[256];
        for (int c = 0; c < n; c++) {
            colours[c].Red = table[c][0];
            colours[c].Green = table[c][1];
            colours[c].Blue = table[c][2];
        }
        ColorMapObject *map = GifMakeMapObject(n, colours);
        bytes b = {0};
        int err;
        GifFileType *gif = EGifOpen(&b, gif_write_bytes, &err);
        if (!gif || !map) die("EGifOpen failed");
        EGifSetGifVersion(gif, g->gif89 != 0);
        if (EGifPutScreenDesc(gif, g->screen_w, g->screen_h, g->bits, 0, map) == GIF_ERROR)
            die("EGifPutScreenDesc failed");
        if (g->gif89) EGifPutComment(gif, "clunet test image");
        GifPixelType line[W];
        for (int f = 0; f < g->frames; f++) {
            if (EGifPutImageDesc(gif, g->left, g->top, W, H, g->interlace, NULL) == GIF_ERROR)
                die("EGifPutImageDesc failed");
            static const int first[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
            for (int p = 0; p < (g->interlace ? 4 : 1); p++)
                for (int y = g->interlace ? first[p] : 0; y < H; y += g->interlace ? step[p] : 1) {
                    for (int x = 0; x < W; x++) {
                        unsigned v = pattern(x, y, f, 60 + (int)i, (unsigned)n - 1);
                        line[x] = (GifPixelType)v;
                        if (f > 0) continue;
                        float *e = k->expect + ((size_t)(g->top + y) * g->screen_w + g->left + x) *
                                                   channels;
                        for (int c = 0; c < channels; c++) e[c] = table[v][c];
                    }
                    if (EGifPutLine(gif, line, W) == GIF_ERROR) die("EGifPutLine failed");
                }
        }
        if (EGifCloseFile(gif, &err) == GIF_ERROR) die("EGifCloseFile failed");
        GifFreeMapObject(map);
        k->bytes = b.p;
        k->size = b.n;
    }
}

/* ---------------------------------------------------------------------------
 * JPEG
 * ------------------------------------------------------------------------- */

static float ramp(int x, int y, int c)
{
    return (float)(c == 0 ? 20 + x * 5 : c == 1 ? 30 + y * 8 : 230 - x * 3 - y * 2);
}

static void jpeg_cases(gen_list *l)
{
    static const struct {
        const char *name;
        int channels, progressive, subsample;
        float tolerance;
    } specs[] = {
        {"grey.jpg", 1, 0, 0, 3.0f},
        {"rgb444.jpg", 3, 0, 0, 3.0f},
        {"rgb420.jpg", 3, 0, 1, 6.0f},
        {"rgb-progressive.jpg", 3, 1, 0, 3.0f},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        int channels = specs[i].channels;
        gen_case *k = add_case(l, specs[i].name, W, H, channels, 8);
        k->tolerance = specs[i].tolerance;
        struct jpeg_compress_struct ci;
        struct jpeg_error_mgr err;
        ci.err = jpeg_std_error(&err);
        jpeg_create_compress(&ci);
        unsigned char *out = NULL;
        unsigned long out_n = 0;
        jpeg_mem_dest(&ci, &out, &out_n);
        ci.image_width = W;
        ci.image_height = H;
        ci.input_components = channels;
        ci.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
        jpeg_set_defaults(&ci);
        jpeg_set_quality(&ci, 100, TRUE);
        if (channels == 3 && !specs[i].subsample) ci.comp_info[0].h_samp_factor = 1;
        if (channels == 3 && !specs[i].subsample) ci.comp_info[0].v_samp_factor = 1;
        if (specs[i].progressive) jpeg_simple_progression(&ci);
        jpeg_start_compress(&ci, TRUE);
        JSAMPLE row[W * 3];
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++)
                for (int c = 0; c < channels; c++) {
                    float v = ramp(x, y, c);
                    row[x * channels + c] = (JSAMPLE)v;
                    k->expect[(y * W + x) * channels + c] = v;
                }
            JSAMPROW rows[1] = {row};
            jpeg_write_scanlines(&ci, rows, 1);
        }
        jpeg_finish_compress(&ci);
        jpeg_destroy_compress(&ci);
        k->bytes = xmalloc(out_n);
        memcpy(k->bytes, out, out_n);
        k->size = out_n;
        free(out);
    }
}

/* ---------------------------------------------------------------------------
 * PNM (by hand) and gzip wrappers
 * ------------------------------------------------------------------------- */

static void pnm_cases(gen_list *l)
{
    static const struct {
        const char *name, *header_fmt;
        int channels;
        unsigned maxval;
    } specs[] = {
        {"grey8.pgm", "P5\n%d %d\n%u\n", 1, 255},
        {"grey-max1.pgm", "P5 %d %d %u\n", 1, 1},
        {"grey-max1000.pgm", "P5\n# a comment\n%d\t%d\n# another\n%u\r", 1, 1000},
        {"grey16.pgm", "P5\n%d %d\n%u\n", 1, 65535},
        {"rgb8.ppm", "P6\n%d %d\n%u\n", 3, 255},
        {"rgb-max100.ppm", "P6\n#x\n%d %d %u\n", 3, 100},
        {"rgb16.ppm", "P6\n%d %d\n%u\n", 3, 65535},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        unsigned maxval = specs[i].maxval;
        int channels = specs[i].channels, bytes_per = maxval > 255 ? 2 : 1;
        gen_case *k = add_case(l, specs[i].name, W, H, channels, bytes_per * 8);
        char header[128];
        int hn = snprintf(header, sizeof header, specs[i].header_fmt, W, H, maxval);
        bytes b = {0};
        put(&b, header, (size_t)hn);
        for (int p = 0; p < W * H * channels; p++) {
            unsigned v = pattern(p % (W * channels), p / (W * channels), 0, 400 + (int)i, maxval);
            uint8_t s[2] = {(uint8_t)(v >> 8), (uint8_t)v};
            put(&b, bytes_per == 2 ? s : s + 1, (size_t)bytes_per);
            k->expect[p] = scale(v, maxval);
        }
        k->bytes = b.p;
        k->size = b.n;
    }
}

static gen_case *find(gen_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0) return &l->v[i];
    die("missing base case");
    return NULL;
}

/* A copy of case `from` under a new name, its bytes gzipped or not. */
static void derived(gen_list *l, const char *from, const char *name, int gzip)
{
    gen_case src = *find(l, from); /* copied: add_case may move the list */
    gen_case *k = add_case(l, name, src.width, src.height, src.channels, src.bits);
    memcpy(k->expect, src.expect, sizeof(float) * (size_t)src.width * src.height * src.channels);
    k->tolerance = src.tolerance;
    if (gzip) {
        k->bytes = gen_gzip(src.bytes, src.size, &k->size);
    } else {
        k->bytes = xmalloc(src.size);
        memcpy(k->bytes, src.bytes, src.size);
        k->size = src.size;
    }
}

int gen_all(const char *dir, gen_case **cases)
{
    gen_list l = {0};
    png_cases(&l);
    tiff_cases(&l, dir);
    gif_cases(&l);
    jpeg_cases(&l);
    pnm_cases(&l);
    /* STARE: images are .ppm.gz, labels .ah.ppm.gz holding P5 despite the name. */
    derived(&l, "rgb8.ppm", "im0001.ppm.gz", 1);
    derived(&l, "grey8.pgm", "im0001.ah.ppm.gz", 1);
    derived(&l, "grey16.pgm", "grey16.pgm.gz", 1);
    derived(&l, "pal4.png", "pal4.png.gz", 1);
    derived(&l, "rgb8-lzw.tif", "rgb8.tif.gz", 1);
    derived(&l, "colour8.gif", "colour8.gif.gz", 1);
    derived(&l, "rgb444.jpg", "rgb444.jpg.gz", 1);
    /* Names that lie: content decides. */
    derived(&l, "rgb8.png", "really-png.jpg", 0);
    derived(&l, "grey16.tif", "really-tiff.png", 0);
    derived(&l, "grey8.pgm", "really-pgm.gz", 0);
    derived(&l, "rgb444.jpg", "really-jpeg", 0);
    *cases = l.v;
    return l.n;
}

void gen_free(gen_case *cases, int count)
{
    for (int i = 0; i < count; i++) {
        free(cases[i].bytes);
        free(cases[i].expect);
    }
    free(cases);
}
