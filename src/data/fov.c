/*
 * fov.c - field-of-view masks, loaded from a dataset's own files or derived
 * from the photograph (see fov.h for the recipe).
 */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/fov.h"

static clunet_status no_memory(void)
{
    return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of memory while computing a FOV mask");
}

/* Box mean of radius r along rows (step 1) or columns (step w), in place via tmp. */
static void box_pass(float *v, float *tmp, int w, int h, int r, int along_rows)
{
    int lines = along_rows ? h : w, len = along_rows ? w : h;
    size_t step = along_rows ? 1 : (size_t)w, next = along_rows ? (size_t)w : 1;
    for (int l = 0; l < lines; l++) {
        float *p = v + (size_t)l * next;
        double sum = 0;
        int n = 0;
        for (int i = 0; i < r && i < len; i++, n++) sum += p[(size_t)i * step];
        for (int i = 0; i < len; i++) {
            int add = i + r, drop = i - r - 1;
            if (add < len) sum += p[(size_t)add * step], n++;
            if (drop >= 0) sum -= p[(size_t)drop * step], n--;
            tmp[i] = (float)(sum / n);
        }
        for (int i = 0; i < len; i++) p[(size_t)i * step] = tmp[i];
    }
}

/* The value below which a fraction q of v's values lie (v on the 0-255 scale). */
static float percentile(const float *v, size_t n, double q)
{
    size_t hist[256] = {0};
    for (size_t i = 0; i < n; i++) {
        int b = (int)v[i];
        hist[b < 0 ? 0 : b > 255 ? 255 : b]++;
    }
    size_t want = (size_t)(q * (double)n), seen = 0;
    for (int b = 0; b < 256; b++) {
        seen += hist[b];
        if (seen > want) return (float)b;
    }
    return 255.0f;
}

/* Keeps only the largest 4-connected region of m (0/1); queue holds w*h ints. */
static void keep_largest(unsigned char *m, int *queue, int *label, int w, int h)
{
    size_t n = (size_t)w * h;
    int best = 0, best_size = 0, next = 0;
    memset(label, 0, n * sizeof *label);
    for (size_t s = 0; s < n; s++) {
        if (!m[s] || label[s]) continue;
        int id = ++next, size = 0;
        size_t head = 0, tail = 0;
        queue[tail++] = (int)s;
        label[s] = id;
        while (head < tail) {
            int p = queue[head++], x = p % w, y = p / w;
            size++;
            int nb[4] = {x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1};
            for (int k = 0; k < 4; k++)
                if (nb[k] >= 0 && m[nb[k]] && !label[nb[k]]) label[nb[k]] = id, queue[tail++] = nb[k];
        }
        if (size > best_size) best_size = size, best = id;
    }
    for (size_t s = 0; s < n; s++) m[s] = label[s] == best && best;
}

/* Sets every background pixel not reachable from the border to 1. */
static void fill_holes(unsigned char *m, int *queue, int w, int h)
{
    size_t head = 0, tail = 0, n = (size_t)w * h;
    /* 2 marks background reached from outside. */
    for (int x = 0; x < w; x++) {
        int e[2] = {x, (h - 1) * w + x};
        for (int k = 0; k < 2; k++)
            if (!m[e[k]]) m[e[k]] = 2, queue[tail++] = e[k];
    }
    for (int y = 0; y < h; y++) {
        int e[2] = {y * w, y * w + w - 1};
        for (int k = 0; k < 2; k++)
            if (!m[e[k]]) m[e[k]] = 2, queue[tail++] = e[k];
    }
    while (head < tail) {
        int p = queue[head++], x = p % w, y = p / w;
        int nb[4] = {x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1};
        for (int k = 0; k < 4; k++)
            if (nb[k] >= 0 && !m[nb[k]]) m[nb[k]] = 2, queue[tail++] = nb[k];
    }
    for (size_t s = 0; s < n; s++) m[s] = m[s] != 2;
}

/*
 * Square erosion of radius r, one axis at a time: a pixel stays when its whole
 * window (clipped to the image, so a FOV cut by the frame keeps its edge) is set.
 */
static void erode_pass(unsigned char *m, unsigned char *tmp, int w, int h, int r, int along_rows)
{
    int lines = along_rows ? h : w, len = along_rows ? w : h;
    size_t step = along_rows ? 1 : (size_t)w, next = along_rows ? (size_t)w : 1;
    for (int l = 0; l < lines; l++) {
        unsigned char *p = m + (size_t)l * next;
        int set = 0, n = 0;
        for (int i = 0; i < r && i < len; i++, n++) set += p[(size_t)i * step];
        for (int i = 0; i < len; i++) {
            int add = i + r, drop = i - r - 1;
            if (add < len) set += p[(size_t)add * step], n++;
            if (drop >= 0) set -= p[(size_t)drop * step], n--;
            tmp[i] = set == n;
        }
        for (int i = 0; i < len; i++) p[(size_t)i * step] = tmp[i];
    }
}

clunet_status cn_fov_derive(const cn_image *img, cn_image *mask)
{
    // img is (H,W,C)
    int w = img->width, h = img->height, c = img->channels;
    size_t n = (size_t)w * h;
    int side = w < h ? w : h;
    memset(mask, 0, sizeof *mask);
    if (w < 1 || h < 1 || c < 1) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "FOV of an empty image (%dx%dx%d)", w, h, c);
    float *v = malloc(n * sizeof *v);
    float *tmp = malloc((size_t)(w > h ? w : h) * sizeof *tmp);
    unsigned char *m = malloc(n);
    int *queue = malloc(n * sizeof *queue);
    int *label = malloc(n * sizeof *label);
    clunet_status st = CLUNET_OK;
    if (!v || !tmp || !m || !queue || !label) st = no_memory();
    if (st == CLUNET_OK) {
        for (size_t i = 0; i < n; i++) {
            float best = img->data[i * c];
            for (int k = 1; k < c; k++)
                if (img->data[i * c + k] > best) best = img->data[i * c + k];
            v[i] = best;
        }
        int r = side / 150 > 1 ? side / 150 : 1;
        for (int pass = 0; pass < 2; pass++) {
            box_pass(v, tmp, w, h, r, 1);
            box_pass(v, tmp, w, h, r, 0);
        }
        float lo = percentile(v, n, 0.01), hi = percentile(v, n, 0.99);
        float t = lo + 0.1f * (hi - lo);
        for (size_t i = 0; i < n; i++) m[i] = v[i] > t;
        keep_largest(m, queue, label, w, h);
        fill_holes(m, queue, w, h);
        int e = side / 200 > 1 ? side / 200 : 1;
        unsigned char *etmp = (unsigned char *)tmp; /* w or h floats hold w or h bytes */
        erode_pass(m, etmp, w, h, e, 1);
        erode_pass(m, etmp, w, h, e, 0);
        st = cn_image_alloc(mask, w, h, 1);
    }
    if (st == CLUNET_OK)
        for (size_t i = 0; i < n; i++) mask->data[i] = m[i] ? 255.0f : 0.0f;
    free(v);
    free(tmp);
    free(m);
    free(queue);
    free(label);
    return st;
}

/* Fails unless the mask has a pixel inside: an image with nothing in view would train and score nothing. */
static clunet_status check_not_empty(const char *path, const char *img_path, cn_image *mask)
{
    size_t n = (size_t)mask->width * mask->height;
    for (size_t i = 0; i < n; i++)
        if (mask->data[i] > 0) return CLUNET_OK;
    cn_image_free(mask);
    if (path) return cn_fail(CLUNET_ERR_FORMAT, "%s: FOV mask has no pixel inside (all 0)", path);
    return cn_fail(CLUNET_ERR_FORMAT, "%s: no field of view found in the image (blank? give its FOV mask)", img_path);
}

clunet_status cn_fov_get(const char *path, const char *img_path, const cn_image *img, cn_image *mask)
{
    if (!path) {
        CN_TRY(cn_fov_derive(img, mask));
        return check_not_empty(NULL, img_path, mask);
    }
    cn_image file;
    CN_TRY(cn_image_load(path, &file));
    if (file.width != img->width || file.height != img->height) {
        clunet_status st = cn_fail(CLUNET_ERR_FORMAT, "%s: FOV mask is %dx%d but its image is %dx%d", path,
                                   file.width, file.height, img->width, img->height);
        cn_image_free(&file);
        return st;
    }
    clunet_status st = cn_image_alloc(mask, file.width, file.height, 1);
    if (st == CLUNET_OK) {
        size_t n = (size_t)file.width * file.height;
        for (size_t i = 0; i < n; i++) {
            int inside = 0;
            for (int k = 0; k < file.channels; k++) inside |= file.data[i * file.channels + k] > 0;
            mask->data[i] = inside ? 255.0f : 0.0f;
        }
    }
    cn_image_free(&file);
    return st == CLUNET_OK ? check_not_empty(path, img_path, mask) : st;
}
