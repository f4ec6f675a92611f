/*
 * image_gif.c - GIF through giflib's record API, first frame only (DRIVE's
 * labels and masks). The canvas is the logical screen, grown to hold the
 * frame if needed; pixels outside the frame are black. A grey colour table
 * gives one channel, any other three.
 */
#include <gif_lib.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/image_codecs.h"

typedef struct gif_source {
    const uint8_t *data;
    size_t size, pos;
    int short_read;
} gif_source;

static int read_memory(GifFileType *gif, GifByteType *out, int n)
{
    gif_source *src = gif->UserData;
    size_t left = src->size - src->pos;
    size_t k = n < 0 ? 0 : (size_t)n;
    if (k > left) {
        k = left;
        src->short_read = 1;
    }
    memcpy(out, src->data + src->pos, k);
    src->pos += k;
    return (int)k;
}

static clunet_status gif_failure(const char *name, const gif_source *src, int code)
{
    const char *why = GifErrorString(code);
    return cn_fail(CLUNET_ERR_FORMAT, "%s: %s GIF (giflib: %s)", name,
                   src->short_read ? "truncated" : "corrupt", why ? why : "unknown error");
}

/* Skips extension records up to the first image descriptor. */
static clunet_status find_first_frame(GifFileType *gif, const char *name, const gif_source *src)
{
    for (;;) {
        GifRecordType type;
        if (DGifGetRecordType(gif, &type) == GIF_ERROR) return gif_failure(name, src, gif->Error);
        if (type == IMAGE_DESC_RECORD_TYPE) {
            if (DGifGetImageDesc(gif) == GIF_ERROR) return gif_failure(name, src, gif->Error);
            return CLUNET_OK;
        }
        if (type == TERMINATE_RECORD_TYPE)
            return cn_fail(CLUNET_ERR_FORMAT, "%s: GIF holds no image", name);
        if (type == EXTENSION_RECORD_TYPE) {
            int code;
            GifByteType *block;
            if (DGifGetExtension(gif, &code, &block) == GIF_ERROR)
                return gif_failure(name, src, gif->Error);
            while (block)
                if (DGifGetExtensionNext(gif, &block) == GIF_ERROR)
                    return gif_failure(name, src, gif->Error);
        }
    }
}

static clunet_status decode(GifFileType *gif, const char *name, const gif_source *src,
                            GifPixelType **line, cn_image *img)
{
    CN_TRY(find_first_frame(gif, name, src));
    const GifImageDesc *f = &gif->Image;
    const ColorMapObject *map = f->ColorMap ? f->ColorMap : gif->SColorMap;
    if (!map || !map->Colors || map->ColorCount < 1)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: GIF frame without a colour table", name);
    if (f->Width < 1 || f->Height < 1 || f->Left < 0 || f->Top < 0)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: GIF frame of %dx%d at %d,%d", name, f->Width,
                       f->Height, f->Left, f->Top);
    cn_palette pal;
    int count = map->ColorCount < 256 ? map->ColorCount : 256;
    for (int i = 0; i < count; i++) {
        pal.rgb[i][0] = map->Colors[i].Red;
        pal.rgb[i][1] = map->Colors[i].Green;
        pal.rgb[i][2] = map->Colors[i].Blue;
    }
    cn_palette_finish(&pal, count);
    int channels = pal.grey ? 1 : 3;
    int64_t width = (int64_t)f->Left + f->Width, height = (int64_t)f->Top + f->Height;
    if (width < gif->SWidth) width = gif->SWidth;
    if (height < gif->SHeight) height = gif->SHeight;
    CN_TRY(cn_image_alloc_declared(name, "GIF", width, height, channels, img));
    img->bits = 8;

    *line = malloc((size_t)f->Width);
    if (!*line) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory for a GIF line", name);
    /* Interlaced frames arrive in four passes: rows 0,8,..; 4,12,..; 2,6,..; 1,3,.. */
    static const int first[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    int passes = f->Interlace ? 4 : 1;
    for (int p = 0; p < passes; p++) {
        for (int y = f->Interlace ? first[p] : 0; y < f->Height; y += f->Interlace ? step[p] : 1) {
            if (DGifGetLine(gif, *line, f->Width) == GIF_ERROR)
                return gif_failure(name, src, gif->Error);
            float *out = img->data + ((size_t)(f->Top + y) * width + f->Left) * channels;
            for (int x = 0; x < f->Width; x++) cn_palette_put(&pal, (*line)[x], out + x * channels);
        }
    }
    return CLUNET_OK;
}

clunet_status cn_decode_gif(const char *name, const uint8_t *data, size_t size, cn_image *img)
{
    gif_source src = {data, size, 0, 0};
    int code = 0;
    GifFileType *gif = DGifOpen(&src, read_memory, &code);
    if (!gif) return gif_failure(name, &src, code);
    GifPixelType *line = NULL;
    clunet_status st = decode(gif, name, &src, &line, img);
    free(line);
    DGifCloseFile(gif, &code);
    return st;
}
