/*
 * image_jpeg.c - JPEG through libjpeg(-turbo): greyscale to one channel,
 * YCbCr/RGB to three. CMYK is refused.
 *
 * libjpeg reports errors through error_exit, and corrupt data through warnings
 * (emit_message with level -1) after which it would go on and paint grey. We
 * treat both as failure: record the message and longjmp back to decode().
 */
#include <stdio.h> /* jpeglib.h needs FILE */

#include <jerror.h>
#include <jpeglib.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/image_codecs.h"

/* More scans than any real progressive file has; bounds decode time. */
#define MAX_SCANS 500

typedef struct jpeg_state {
    struct jpeg_error_mgr err; /* first, so cinfo->err leads back to the struct */
    struct jpeg_progress_mgr progress;
    struct jpeg_decompress_struct cinfo;
    int created;
    int truncated;
    jmp_buf jump;
    JSAMPLE *row;
    char msg[JMSG_LENGTH_MAX];
} jpeg_state;

static void on_error(j_common_ptr cinfo)
{
    jpeg_state *s = (jpeg_state *)cinfo->err;
    cinfo->err->format_message(cinfo, s->msg);
    longjmp(s->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    if (level >= 0) return; /* trace output */
    jpeg_state *s = (jpeg_state *)cinfo->err;
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) s->truncated = 1;
    on_error(cinfo);
}

static void on_progress(j_common_ptr cinfo)
{
    jpeg_state *s = (jpeg_state *)cinfo->err;
    if (s->cinfo.input_scan_number > MAX_SCANS) {
        snprintf(s->msg, sizeof s->msg, "more than %d scans", MAX_SCANS);
        longjmp(s->jump, 1);
    }
}

static clunet_status decode(jpeg_state *s, const char *name, const uint8_t *data, size_t size,
                            cn_image *img)
{
    if (setjmp(s->jump))
        return cn_fail(CLUNET_ERR_FORMAT, "%s: %s JPEG (libjpeg: %s)", name,
                       s->truncated ? "truncated" : "corrupt", s->msg);
    struct jpeg_decompress_struct *ci = &s->cinfo;
    jpeg_create_decompress(ci);
    s->created = 1;
    ci->mem->max_memory_to_use = (long)CN_IMAGE_MAX_LIBRARY_BYTES;
    s->progress.progress_monitor = on_progress;
    ci->progress = &s->progress;
    jpeg_mem_src(ci, data, (unsigned long)size);
    if (jpeg_read_header(ci, TRUE) != JPEG_HEADER_OK)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: JPEG holds tables but no image", name);

    int channels;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE: channels = 1; ci->out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: channels = 3; ci->out_color_space = JCS_RGB; break;
    default:
        return cn_fail(CLUNET_ERR_UNSUPPORTED, "%s: JPEG colour space %d (only grey and RGB)",
                       name, (int)ci->jpeg_color_space);
    }
    CN_TRY(cn_image_check_declared(name, "JPEG", ci->image_width, ci->image_height, channels));
    jpeg_start_decompress(ci);
    CN_TRY(cn_image_alloc_declared(name, "JPEG", ci->output_width, ci->output_height, channels,
                                   img));
    img->bits = 8;
    size_t row_samples = (size_t)ci->output_width * channels;
    if (ci->output_components != channels)
        return cn_fail(CLUNET_ERR_INTERNAL, "%s: libjpeg gave %d components, expected %d", name,
                       ci->output_components, channels);
    s->row = malloc(row_samples);
    if (!s->row) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory for a JPEG row", name);
    while (ci->output_scanline < ci->output_height) {
        float *out = img->data + (size_t)ci->output_scanline * row_samples;
        if (jpeg_read_scanlines(ci, &s->row, 1) != 1)
            return cn_fail(CLUNET_ERR_FORMAT, "%s: JPEG decoder stalled", name);
        for (size_t i = 0; i < row_samples; i++) out[i] = s->row[i];
    }
    /* Not jpeg_finish_decompress: every pixel is decoded, what follows is no concern. */
    return CLUNET_OK;
}

clunet_status cn_decode_jpeg(const char *name, const uint8_t *data, size_t size, cn_image *img)
{
    jpeg_state *s = calloc(1, sizeof *s);
    if (!s) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: no memory for libjpeg", name);
    s->cinfo.err = jpeg_std_error(&s->err);
    s->err.error_exit = on_error;
    s->err.emit_message = on_message;
    clunet_status st = decode(s, name, data, size, img);
    if (s->created) jpeg_destroy_decompress(&s->cinfo);
    free(s->row);
    free(s);
    return st;
}
