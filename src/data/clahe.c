/*
 * clahe.c - contrast-limited adaptive histogram equalisation (Zuiderveld,
 * Graphics Gems IV, 1994) of a fundus photograph's green channel, where the
 * vessels contrast best: the classic preprocessing of retinal vessel
 * segmentation. The image is cut into a grid of tiles; each tile's histogram
 * is clipped at `clip` times its mean bin (the excess spread evenly), turned
 * into a cumulative mapping, and each pixel blends the mappings of its four
 * nearest tile centres bilinearly, so no tile seams show.
 */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/pipeline.h"

#define BINS 256

/* The mapping of one tile: the clipped, equalised cumulative histogram. */
static void tile_map(const uint8_t *g, int width, int x0, int y0, int x1, int y1, double clip, uint8_t *map)
{
    double hist[BINS] = {0};
    int count = (x1 - x0) * (y1 - y0);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) hist[g[(size_t)y * width + x]] += 1;
    double limit = clip * count / BINS, excess = 0;
    if (limit < 1) limit = 1;
    for (int b = 0; b < BINS; b++)
        if (hist[b] > limit) excess += hist[b] - limit, hist[b] = limit;
    double sum = 0;
    for (int b = 0; b < BINS; b++) {
        sum += hist[b] + excess / BINS;
        int v = (int)(sum * 255.0 / count + 0.5);
        map[b] = (uint8_t)(v > 255 ? 255 : v);
    }
}

clunet_status cn_clahe_green(cn_sample_image *s, int grid, double clip)
{
    int w = s->width, h = s->height;
    if (grid < 1 || clip < 1)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "CLAHE: grid %d and clip limit %g must be at least 1", grid, clip);
    int gx = grid < w ? grid : w, gy = grid < h ? grid : h;
    uint8_t *g = malloc((size_t)w * h), *maps = malloc((size_t)gx * gy * BINS);
    if (!g || !maps) {
        free(g), free(maps);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of host memory for CLAHE", s->name);
    }
    for (size_t i = 0; i < (size_t)w * h; i++) g[i] = s->rgb[3 * i + 1];
    for (int ty = 0; ty < gy; ty++)
        for (int tx = 0; tx < gx; tx++)
            tile_map(g, w, (int)((long)tx * w / gx), (int)((long)ty * h / gy), (int)((long)(tx + 1) * w / gx),
                     (int)((long)(ty + 1) * h / gy), clip, maps + ((size_t)ty * gx + tx) * BINS);
    /* tile centres are at (t + 0.5) * size / grid; outside the outermost centres the nearest map holds */
    for (int y = 0; y < h; y++) {
        double fy = (y + 0.5) * gy / h - 0.5;
        int y0 = fy < 0 ? 0 : (int)fy, y1 = y0 + 1 < gy ? y0 + 1 : gy - 1;
        double ay = fy < 0 ? 0 : fy - y0 > 1 ? 1 : fy - y0;
        for (int x = 0; x < w; x++) {
            double fx = (x + 0.5) * gx / w - 0.5;
            int x0 = fx < 0 ? 0 : (int)fx, x1 = x0 + 1 < gx ? x0 + 1 : gx - 1;
            double ax = fx < 0 ? 0 : fx - x0 > 1 ? 1 : fx - x0;
            int v = g[(size_t)y * w + x];
            double top = (1 - ax) * maps[((size_t)y0 * gx + x0) * BINS + v] + ax * maps[((size_t)y0 * gx + x1) * BINS + v];
            double bottom =
                (1 - ax) * maps[((size_t)y1 * gx + x0) * BINS + v] + ax * maps[((size_t)y1 * gx + x1) * BINS + v];
            uint8_t out = (uint8_t)((1 - ay) * top + ay * bottom + 0.5);
            uint8_t *px = s->rgb + 3 * ((size_t)y * w + x);
            px[0] = px[1] = px[2] = out;
        }
    }
    free(g);
    free(maps);
    return CLUNET_OK;
}

clunet_status cn_sample_set_preprocess(cn_sample_set *set, cn_preprocess mode)
{
    if (mode == CN_PREPROCESS_NONE) return CLUNET_OK;
    for (int i = 0; i < set->count; i++) CN_TRY(cn_clahe_green(&set->items[i], CN_CLAHE_GRID, CN_CLAHE_CLIP));
    return CLUNET_OK;
}

const char *cn_preprocess_name(cn_preprocess mode)
{
    return mode == CN_PREPROCESS_CLAHE_GREEN ? "clahe-green" : "rgb";
}

int cn_preprocess_from_name(const char *name, cn_preprocess *mode)
{
    if (!strcmp(name, "rgb")) *mode = CN_PREPROCESS_NONE;
    else if (!strcmp(name, "clahe-green")) *mode = CN_PREPROCESS_CLAHE_GREEN;
    else return 0;
    return 1;
}
