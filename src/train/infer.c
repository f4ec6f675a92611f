/* infer.c - tiled whole-image inference (see infer.h). */
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"
#include "train/infer.h"

clunet_status cn_infer_init(cn_infer *inf, cn_exec *exec, const float mean[3], const float std[3])
{
    memset(inf, 0, sizeof *inf);
    inf->exec = exec;
    inf->input_scale = 1.0f;
    memcpy(inf->mean, mean, sizeof inf->mean);
    memcpy(inf->std, std, sizeof inf->std);
    cn_shape in = exec->g->values[exec->g->input].shape;
    int S = in.h;
    inf->overlap = S / 4;
    size_t px = (size_t)S * S;
    inf->tiles = malloc((size_t)in.n * 3 * px * sizeof(float));
    inf->logits = malloc((size_t)in.n * px * sizeof(float));
    inf->weight = malloc(px * sizeof(float));
    if (!inf->tiles || !inf->logits || !inf->weight) {
        cn_infer_free(inf);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory for inference tiles");
    }
    /* A tent that never reaches zero: edge pixels of a tile still count where no other tile covers them. */
    for (int v = 0; v < S; v++)
        for (int u = 0; u < S; u++) {
            float du = fminf(u + 0.5f, S - u - 0.5f), dv = fminf(v + 0.5f, S - v - 0.5f);
            inf->weight[(size_t)v * S + u] = fminf(du, dv) + 1.0f;
        }
    return CLUNET_OK;
}

void cn_infer_free(cn_infer *inf)
{
    free(inf->tiles);
    free(inf->logits);
    free(inf->weight);
    memset(inf, 0, sizeof *inf);
}

enum { MAX_TILES = 1024 }; /* along one side */

/* Tile origins along one side of length n: evenly spread, the last flush with the end. */
static int tile_starts(int n, int S, int overlap, int *starts, int max)
{
    if (n <= S) {
        starts[0] = 0;
        return 1;
    }
    int step = S - overlap, count = (n - S + step - 1) / step + 1;
    if (count > max) count = max;
    for (int i = 0; i < count; i++) starts[i] = (int)((long)i * (n - S) / (count - 1));
    return count;
}

static clunet_status run_batch(cn_infer *inf, int used, const int *xs, const int *ys, const cn_sample_image *s,
                               float *acc, float *wsum)
{
    cn_exec *e = inf->exec;
    cn_shape in = e->g->values[e->g->input].shape;
    int S = in.h;
    size_t px = (size_t)S * S;
    /* Unused slots repeat the first tile: inference-mode BN keeps images independent. */
    for (int b = used; b < in.n; b++) memcpy(inf->tiles + 3 * px * b, inf->tiles, 3 * px * sizeof(float));
    CN_TRY(cn_exec_set_batch(e, inf->tiles, NULL, NULL));
    CN_TRY(cn_exec_forward(e, 0));
    cn_tensor z = cn_exec_value(e, e->g->output);
    CN_TRY(cn_tensor_download(e->ctx, &z, inf->logits));
    inf->done += used;
    if (inf->progress) inf->progress(inf->progress_user, s->name, inf->done, inf->total);
    for (int b = 0; b < used; b++)
        for (int v = 0; v < S; v++) {
            int y = ys[b] + v;
            if (y >= s->height) break;
            for (int u = 0; u < S; u++) {
                int x = xs[b] + u;
                if (x >= s->width) break;
                float w = inf->weight[(size_t)v * S + u], l = inf->logits[px * b + (size_t)v * S + u];
                size_t o = (size_t)y * s->width + x;
                acc[o] += w / (1.0f + expf(-l));
                wsum[o] += w;
            }
        }
    return CLUNET_OK;
}

static clunet_status infer_tiles(cn_infer *inf, const cn_sample_image *s, float *prob);

/*
 * View `how` of a (H,W) image: bit 2 transposes it (so the view is (W,H)), then bit 0 mirrors it left-right and
 * bit 1 top-bottom. Returns the source index of view pixel (u, v); vw is the view's width, vh its height.
 */
static size_t view_source(int how, int w, int vw, int vh, int u, int v)
{
    if (how & 1) u = vw - 1 - u;
    if (how & 2) v = vh - 1 - v;
    return how & 4 ? (size_t)u * w + v : (size_t)v * w + u;
}

/* prob = the mean over `views` (1, 4 or 8) views of s of their probabilities, each mapped back. */
static clunet_status infer_views(cn_infer *inf, const cn_sample_image *s, int views, float *prob)
{
    if (views == 1) return infer_tiles(inf, s, prob);
    size_t n = (size_t)s->width * s->height;
    cn_sample_image view = *s;
    view.rgb = malloc(3 * n);
    float *vprob = malloc(n * sizeof *vprob);
    clunet_status st =
        view.rgb && vprob ? CLUNET_OK : cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of host memory", s->name);
    if (st == CLUNET_OK) memset(prob, 0, n * sizeof *prob);
    /* Views 0-3 are the mirrors, 4-7 the same after a transpose (the quarter turns training also shows). */
    for (int how = 0; st == CLUNET_OK && how < views; how++) {
        view.width = how & 4 ? s->height : s->width;
        view.height = how & 4 ? s->width : s->height;
        for (int v = 0; v < view.height; v++)
            for (int u = 0; u < view.width; u++)
                memcpy(view.rgb + 3 * ((size_t)v * view.width + u),
                       s->rgb + 3 * view_source(how, s->width, view.width, view.height, u, v), 3);
        st = infer_tiles(inf, &view, vprob);
        for (int v = 0; st == CLUNET_OK && v < view.height; v++)
            for (int u = 0; u < view.width; u++)
                prob[view_source(how, s->width, view.width, view.height, u, v)] +=
                    vprob[(size_t)v * view.width + u] / (float)views;
    }
    free(view.rgb), free(vprob);
    return st;
}

/* Where destination pixel d of n_dst falls among n_src (centres aligned, clamped): taps *i0, *i1, weight *f of i1. */
static void resize_taps(int d, int n_dst, int n_src, int *i0, int *i1, float *f)
{
    float x = ((float)d + 0.5f) * (float)n_src / (float)n_dst - 0.5f;
    x = x < 0 ? 0 : x > n_src - 1 ? (float)(n_src - 1) : x;
    *i0 = (int)x;
    *i1 = *i0 + 1 < n_src ? *i0 + 1 : *i0;
    *f = x - (float)*i0;
}

/*
 * Bilinear resize of c interleaved channels, (h,w,c) -> (h2,w2,c); exactly one of the u8 or float pairs is
 * given (an enlarged image, or probabilities brought back to the image's size).
 */
static void resize(const uint8_t *su8, const float *sf, int w, int h, int c, uint8_t *du8, float *df, int w2, int h2)
{
    for (int v = 0; v < h2; v++) {
        int y0, y1, x0, x1;
        float fy, fx;
        resize_taps(v, h2, h, &y0, &y1, &fy);
        for (int u = 0; u < w2; u++) {
            resize_taps(u, w2, w, &x0, &x1, &fx);
            size_t o00 = ((size_t)y0 * w + x0) * c, o01 = ((size_t)y0 * w + x1) * c;
            size_t o10 = ((size_t)y1 * w + x0) * c, o11 = ((size_t)y1 * w + x1) * c;
            for (int k = 0; k < c; k++) {
                float a = su8 ? su8[o00 + k] : sf[o00 + k], b = su8 ? su8[o01 + k] : sf[o01 + k];
                float cc = su8 ? su8[o10 + k] : sf[o10 + k], d = su8 ? su8[o11 + k] : sf[o11 + k];
                float val = (a + (b - a) * fx) * (1 - fy) + (cc + (d - cc) * fx) * fy;
                size_t o = ((size_t)v * w2 + u) * c + k;
                if (du8) du8[o] = (uint8_t)lrintf(val);
                else df[o] = val;
            }
        }
    }
}

/* The side of s resized by `scale`, for infer_scaled and the progress count. */
static int scaled_side(int n, float scale) { return scale == 1.0f ? n : (int)lrintf((float)n * scale); }

/* prob = the views' mean for s resized by `scale`, brought back to s's size. */
static clunet_status infer_scaled(cn_infer *inf, const cn_sample_image *s, int views, float scale, float *prob)
{
    if (scale == 1.0f) return infer_views(inf, s, views, prob);
    cn_sample_image big = *s;
    big.width = scaled_side(s->width, scale);
    big.height = scaled_side(s->height, scale);
    if (big.width < 1 || big.height < 1)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: test-time scale %g leaves no pixels", s->name, scale);
    size_t n2 = (size_t)big.width * big.height;
    big.rgb = malloc(3 * n2);
    float *bprob = malloc(n2 * sizeof *bprob);
    clunet_status st =
        big.rgb && bprob ? CLUNET_OK : cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of host memory", s->name);
    if (st == CLUNET_OK) {
        resize(s->rgb, NULL, s->width, s->height, 3, big.rgb, NULL, big.width, big.height);
        st = infer_views(inf, &big, views, bprob);
    }
    if (st == CLUNET_OK) resize(NULL, bprob, big.width, big.height, 1, NULL, prob, s->width, s->height);
    free(big.rgb), free(bprob);
    return st;
}

/* The tiles cn_infer_image runs for s over its views and scales (a view's transpose has as many). */
static int count_tiles(const cn_infer *inf, const cn_sample_image *s, int views, int nscales)
{
    int S = inf->exec->g->values[inf->exec->g->input].shape.h, starts[MAX_TILES], total = 0;
    for (int k = 0; k < nscales; k++) {
        float scale = inf->input_scale * (inf->nscales ? inf->scales[k] : 1.0f);
        int w = scaled_side(s->width, scale), h = scaled_side(s->height, scale);
        if (w >= 1 && h >= 1) /* else that scale fails */
            total += views * tile_starts(w, S, inf->overlap, starts, MAX_TILES) *
                     tile_starts(h, S, inf->overlap, starts, MAX_TILES);
    }
    return total;
}

clunet_status cn_infer_image(cn_infer *inf, const cn_sample_image *s, float *prob)
{
    int views = inf->views == 8 || inf->views == 4 ? inf->views : 1;
    int nscales = inf->nscales > 1 ? inf->nscales : 1;
    size_t n = (size_t)s->width * s->height;
    inf->done = 0;
    inf->total = count_tiles(inf, s, views, nscales);
    if (inf->progress) inf->progress(inf->progress_user, s->name, 0, inf->total);
    cn_sample_image pre = *s;
    if (inf->preprocess == CN_PREPROCESS_CLAHE_GREEN) {
        if (!(pre.rgb = malloc(3 * n))) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of host memory", s->name);
        memcpy(pre.rgb, s->rgb, 3 * n);
    }
    clunet_status st = pre.rgb != s->rgb ? cn_clahe_green(&pre, CN_CLAHE_GRID, CN_CLAHE_CLIP) : CLUNET_OK;
    if (nscales == 1) {
        if (st == CLUNET_OK)
            st = infer_scaled(inf, &pre, views, inf->input_scale * (inf->nscales ? inf->scales[0] : 1.0f), prob);
    } else {
        float *one = malloc(n * sizeof *one);
        if (st == CLUNET_OK && !one) st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of host memory", s->name);
        if (st == CLUNET_OK) memset(prob, 0, n * sizeof *prob);
        for (int k = 0; st == CLUNET_OK && k < nscales; k++) {
            st = infer_scaled(inf, &pre, views, inf->input_scale * inf->scales[k], one);
            for (size_t i = 0; st == CLUNET_OK && i < n; i++) prob[i] += one[i] / (float)nscales;
        }
        free(one);
    }
    if (pre.rgb != s->rgb) free(pre.rgb);
    /* The count above must follow the tiling, or the progress it reports would not end at 100%. */
    if (st == CLUNET_OK && inf->done != inf->total)
        st = cn_fail(CLUNET_ERR_INTERNAL, "%s: %d tiles run, %d counted", s->name, inf->done, inf->total);
    return st;
}

static clunet_status infer_tiles(cn_infer *inf, const cn_sample_image *s, float *prob)
{
    cn_shape in = inf->exec->g->values[inf->exec->g->input].shape;
    int S = in.h;
    int xs0[MAX_TILES], ys0[MAX_TILES];
    int nx = tile_starts(s->width, S, inf->overlap, xs0, MAX_TILES);
    int ny = tile_starts(s->height, S, inf->overlap, ys0, MAX_TILES);
    size_t n = (size_t)s->width * s->height;
    float *wsum = calloc(n, sizeof *wsum);
    if (!wsum) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory for a %dx%d image", s->width, s->height);
    memset(prob, 0, n * sizeof *prob);
    int bx[64], by[64], used = 0;
    clunet_status st = CLUNET_OK;
    for (int j = 0; j < ny && st == CLUNET_OK; j++)
        for (int i = 0; i < nx && st == CLUNET_OK; i++) {
            bx[used] = xs0[i], by[used] = ys0[j];
            cn_normalise_region(s, bx[used], by[used], S, S, inf->mean, inf->std,
                                inf->tiles + (size_t)used * 3 * S * S);
            if (++used == in.n || used == 64) {
                st = run_batch(inf, used, bx, by, s, prob, wsum);
                used = 0;
            }
        }
    if (st == CLUNET_OK && used) st = run_batch(inf, used, bx, by, s, prob, wsum);
    for (size_t i = 0; st == CLUNET_OK && i < n; i++) prob[i] = wsum[i] > 0 ? prob[i] / wsum[i] : 0;
    free(wsum);
    return st;
}
