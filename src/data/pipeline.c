/* pipeline.c - samples in memory, batches, augmentation, the batch worker (see pipeline.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/fov.h"
#include "data/image.h"
#include "data/pipeline.h"
#include "data/synth.h"

/* ---- randomness: a pure function of its key ---------------------------- */

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t key4(uint64_t seed, int64_t a, int64_t b, int64_t c)
{
    return mix(mix(mix(mix(seed) ^ (uint64_t)a) ^ (uint64_t)b) ^ (uint64_t)c);
}

static uint64_t next(uint64_t *s) { return mix(*s += 0x632BE59BD9B4E019ULL); }
static double uniform(uint64_t *s) { return (next(s) >> 11) / 9007199254740992.0; }
static double between(uint64_t *s, double lo, double hi) { return lo + (hi - lo) * uniform(s); }

/* ---- sample sets ---------------------------------------------------------- */

clunet_status cn_sample_set_add(cn_sample_set *set, const char *name, const cn_image *img, const cn_image *label,
                                const cn_image *mask)
{
    cn_sample_image *items = realloc(set->items, (size_t)(set->count + 1) * sizeof *items);
    if (!items) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory loading %s", name);
    set->items = items;
    cn_sample_image *s = &items[set->count];
    memset(s, 0, sizeof *s);
    size_t px = (size_t)img->width * img->height;
    s->width = img->width;
    s->height = img->height;
    s->name = strdup(name);
    s->rgb = malloc(3 * px);
    s->mask = malloc(px);
    s->label = label ? malloc(px) : NULL;
    if (!s->name || !s->rgb || !s->mask || (label && !s->label)) {
        free(s->name), free(s->rgb), free(s->mask), free(s->label);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory loading %s", name);
    }
    /*
     * vessel: above half the label's largest value in any channel, so that labels of 0/1 read as those of
     * 0/255 do, and colour labels (arteries red, veins blue) mark every vessel, as cn_label_check counts them
     */
    int lc = label ? label->channels : 0;
    float label_max = 0;
    for (size_t i = 0; i < px * lc; i++) label_max = fmaxf(label_max, label->data[i]);
    for (size_t i = 0; i < px; i++) {
        for (int ch = 0; ch < 3; ch++) {
            float v = img->data[i * img->channels + (img->channels == 3 ? ch : 0)];
            s->rgb[3 * i + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
        }
        s->mask[i] = mask ? mask->data[i * mask->channels] > 0 : 1;
        if (label) {
            s->label[i] = 0;
            for (int ch = 0; ch < lc; ch++) s->label[i] |= label->data[i * lc + ch] > 0.5f * label_max;
        }
    }
    set->count++;
    return CLUNET_OK;
}

clunet_status cn_label_check(const cn_image *label, const char *label_path, const cn_image *img, const char *img_path,
                             double *fraction)
{
    if (label->width != img->width || label->height != img->height)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: label is %dx%d but its image %s is %dx%d", label_path, label->width,
                       label->height, img_path, img->width, img->height);
    size_t n = (size_t)label->width * label->height, on = 0;
    float one = 0;
    for (size_t i = 0; i < n; i++) {
        int any = 0;
        for (int k = 0; k < label->channels; k++) {
            float v = label->data[i * label->channels + k];
            if (v == 0) continue;
            if (one == 0) one = v;
            if (v != one)
                return cn_fail(CLUNET_ERR_FORMAT,
                               "%s: label is not binary (values 0, %g and %g at pixel %zu,%zu; a lossy format such "
                               "as JPEG?)",
                               label_path, one, v, i % (size_t)label->width, i / (size_t)label->width);
            any = 1;
        }
        on += any;
    }
    if (fraction) *fraction = (double)on / (double)n;
    return CLUNET_OK;
}

clunet_status cn_sample_set_synthetic(cn_sample_set *set, uint64_t seed, int first, int n, int size)
{
    memset(set, 0, sizeof *set);
    for (int i = 0; i < n; i++) {
        cn_image img = {0}, label = {0}, mask = {0};
        char name[64];
        snprintf(name, sizeof name, "synthetic-%llu-%04d", (unsigned long long)seed, first + i);
        clunet_status st = cn_synth_sample(seed, first + i, size, &img, &label, &mask);
        if (st == CLUNET_OK) st = cn_sample_set_add(set, name, &img, &label, &mask);
        cn_image_free(&img), cn_image_free(&label), cn_image_free(&mask);
        if (st != CLUNET_OK) {
            cn_sample_set_free(set);
            return st;
        }
    }
    return CLUNET_OK;
}

clunet_status cn_sample_set_load(cn_sample_set *set, const cn_sample_list *list, cn_split split, int need_labels)
{
    memset(set, 0, sizeof *set);
    for (int i = 0; i < list->count; i++) {
        const cn_sample *s = &list->items[i];
        if (s->split != split) continue;
        if (need_labels && !s->label) {
            cn_sample_set_free(set);
            return cn_fail(CLUNET_ERR_FORMAT, "%s: no label file for this image", s->image);
        }
        cn_image img = {0}, label = {0}, mask = {0};
        clunet_status st = cn_image_load(s->image, &img);
        if (st == CLUNET_OK && s->label) st = cn_image_load(s->label, &label);
        if (st == CLUNET_OK && s->label) st = cn_label_check(&label, s->label, &img, s->image, NULL);
        if (st == CLUNET_OK) st = cn_fov_get(s->mask, s->image, &img, &mask);
        if (st == CLUNET_OK) {
            const char *base = strrchr(s->image, '/');
            st = cn_sample_set_add(set, base ? base + 1 : s->image, &img, s->label ? &label : NULL, &mask);
        }
        if (st == CLUNET_OK && !(set->items[set->count - 1].subject = strndup(s->id, (size_t)s->subject_len)))
            st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory loading %s", s->image);
        cn_image_free(&img), cn_image_free(&label), cn_image_free(&mask);
        if (st != CLUNET_OK) {
            cn_sample_set_free(set);
            return st;
        }
    }
    return CLUNET_OK;
}

/* Whether items i and j show one person (an item without a subject is its own). */
static int same_subject(const cn_sample_set *set, int i, int j)
{
    return i == j || (set->items[i].subject && set->items[j].subject &&
                      !strcmp(set->items[i].subject, set->items[j].subject));
}

/* Moves the chosen items into out, keeping the order on both sides; refused when none would stay. Frees chosen. */
static clunet_status move_chosen(cn_sample_set *set, char *chosen, const char *what, cn_sample_set *out)
{
    int kept = 0;
    for (int i = 0; i < set->count; i++) kept += !chosen[i];
    if (!kept) {
        free(chosen);
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "holding out %s leaves no training image", what);
    }
    out->items = malloc((size_t)(set->count - kept) * sizeof *out->items);
    if (!out->items) {
        free(chosen);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    kept = 0;
    for (int i = 0; i < set->count; i++) {
        if (chosen[i]) out->items[out->count++] = set->items[i];
        else set->items[kept++] = set->items[i];
    }
    set->count = kept;
    free(chosen);
    return CLUNET_OK;
}

clunet_status cn_sample_set_split(cn_sample_set *set, int n_out, uint64_t seed, cn_sample_set *out)
{
    memset(out, 0, sizeof *out);
    if (n_out <= 0) return CLUNET_OK;
    if (n_out >= set->count)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "cannot hold out %d of %d images for validation", n_out,
                       set->count);
    char *chosen = calloc((size_t)set->count, 1);
    if (!chosen) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    uint64_t rng = key4(seed, 0x7661, 0, 0);
    for (int k = 0; k < n_out;) {
        int i = (int)(uniform(&rng) * set->count);
        if (i >= set->count || chosen[i]) continue;
        for (int j = 0; j < set->count; j++)
            if (same_subject(set, i, j)) chosen[j] = 1, k++;
    }
    char what[80];
    snprintf(what, sizeof what, "whole subjects for %d validation images", n_out);
    return move_chosen(set, chosen, what, out);
}

clunet_status cn_sample_set_fold(cn_sample_set *set, int folds, int fold, uint64_t seed, cn_sample_set *out)
{
    memset(out, 0, sizeof *out);
    if (set->count < 2) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--fold: %d training images are too few", set->count);
    int *first = malloc((size_t)set->count * sizeof *first); /* each subject by its first item, in order */
    char *chosen = calloc((size_t)set->count, 1);
    if (!first || !chosen) {
        free(first), free(chosen);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    int subjects = 0;
    for (int i = 0; i < set->count; i++) {
        int j = 0;
        while (j < i && !same_subject(set, i, j)) j++;
        if (j == i) first[subjects++] = i;
    }
    if (folds < 2 || fold < 0 || fold >= folds || folds > subjects) {
        free(first), free(chosen);
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--fold %d/%d: needs 1 <= K <= N and 2 <= N <= %d, the subjects "
                       "of the training images", fold + 1, folds, subjects);
    }
    /* A seeded shuffle of the subjects (Fisher-Yates), dealt in turn: fold sizes differ by at most one subject. */
    uint64_t rng = key4(seed, 0x666f, 0, 0);
    for (int i = subjects - 1; i > 0; i--) {
        int j = (int)(uniform(&rng) * (i + 1));
        if (j > i) j = i;
        int t = first[i];
        first[i] = first[j], first[j] = t;
    }
    for (int k = fold; k < subjects; k += folds)
        for (int j = 0; j < set->count; j++)
            if (same_subject(set, first[k], j)) chosen[j] = 1;
    free(first);
    char what[80];
    snprintf(what, sizeof what, "fold %d of %d", fold + 1, folds);
    return move_chosen(set, chosen, what, out);
}

void cn_sample_set_free(cn_sample_set *set)
{
    for (int i = 0; i < set->count; i++) {
        free(set->items[i].name);
        free(set->items[i].subject);
        free(set->items[i].rgb);
        free(set->items[i].label);
        free(set->items[i].mask);
    }
    free(set->items);
    memset(set, 0, sizeof *set);
}

void cn_sample_set_stats(const cn_sample_set *set, float mean[3], float std[3])
{
    double sum[3] = {0}, sq[3] = {0}, n = 0;
    for (int i = 0; i < set->count; i++) {
        const cn_sample_image *s = &set->items[i];
        size_t px = (size_t)s->width * s->height;
        for (size_t p = 0; p < px; p++) {
            if (!s->mask[p]) continue;
            for (int c = 0; c < 3; c++) {
                double v = s->rgb[3 * p + c];
                sum[c] += v;
                sq[c] += v * v;
            }
            n++;
        }
    }
    for (int c = 0; c < 3; c++) {
        double m = n > 0 ? sum[c] / n : 127.5, var = n > 0 ? sq[c] / n - m * m : 0;
        mean[c] = (float)m;
        std[c] = (float)(var > 1.0 ? sqrt(var) : 1.0); /* a flat channel must not divide by ~0 */
    }
}

/* ---- batches -------------------------------------------------------------- */

void cn_augment_default(cn_augment *aug)
{
    aug->enabled = 1;
    aug->flips = 1;
    aug->rot90 = 1;
    aug->scale = 0.15f;
    aug->brightness = 0.1f;
    aug->contrast = 0.15f;
    aug->gamma = 0.15f;
}

clunet_status cn_batch_alloc(cn_batch *b, int batch, int size)
{
    size_t px = (size_t)batch * size * size;
    b->images = malloc(3 * px * sizeof(float));
    b->labels = malloc(px * sizeof(float));
    b->masks = malloc(px * sizeof(float));
    if (!b->images || !b->labels || !b->masks) {
        cn_batch_free(b);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory for a batch of %d x %dx%d", batch, size, size);
    }
    return CLUNET_OK;
}

void cn_batch_free(cn_batch *b)
{
    free(b->images);
    free(b->labels);
    free(b->masks);
    memset(b, 0, sizeof *b);
}

void cn_normalise_region(const cn_sample_image *s, int x0, int y0, int w, int h, const float mean[3],
                         const float std[3], float *x)
{
    for (int c = 0; c < 3; c++) {
        float *plane = x + (size_t)c * w * h;
        float black = -mean[c] / std[c];
        for (int v = 0; v < h; v++)
            for (int u = 0; u < w; u++) {
                int sx = x0 + u, sy = y0 + v;
                plane[(size_t)v * w + u] = sx >= 0 && sy >= 0 && sx < s->width && sy < s->height
                                               ? (s->rgb[3 * ((size_t)sy * s->width + sx) + c] - mean[c]) / std[c]
                                               : black;
            }
    }
}

/* The sample for slot `slot` of step `step`: a seeded permutation per epoch. */
static int pick_sample(const cn_sample_set *set, uint64_t seed, int epoch, int step, int slot, int batch)
{
    int n = set->count;
    int pos = (int)(((int64_t)step * batch + slot) % n), cycle = (int)(((int64_t)step * batch + slot) / n);
    /* Fisher-Yates up to `pos` of this epoch's (and cycle's) permutation. */
    int *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) return pos;
    for (int i = 0; i < n; i++) perm[i] = i;
    uint64_t rng = key4(seed, epoch, cycle, -1);
    for (int i = 0; i <= pos; i++) {
        int j = i + (int)(uniform(&rng) * (n - i));
        if (j >= n) j = n - 1;
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int chosen = perm[pos];
    free(perm);
    return chosen;
}

static float sample_rgb(const cn_sample_image *s, float x, float y, int c)
{
    /* bilinear; outside the image is black */
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    float fx = x - x0, fy = y - y0, acc = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int sx = x0 + dx, sy = y0 + dy;
            if (sx < 0 || sy < 0 || sx >= s->width || sy >= s->height) continue;
            float wgt = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
            acc += wgt * s->rgb[3 * ((size_t)sy * s->width + sx) + c];
        }
    return acc;
}

static void make_slot(const cn_sample_image *s, const cn_batch_spec *spec, uint64_t rng, float *img, float *lab,
                      float *msk)
{
    const cn_augment *a = &spec->aug;
    int S = spec->size;
    int on = a->enabled;
    double zoom = on && a->scale > 0 ? exp(between(&rng, -log1p(a->scale), log1p(a->scale))) : 1.0;
    if (spec->input_scale > 0) zoom /= spec->input_scale; /* image pixels per patch pixel */
    int flip_x = on && a->flips && uniform(&rng) < 0.5, flip_y = on && a->flips && uniform(&rng) < 0.5;
    int turns = on && a->rot90 ? (int)(uniform(&rng) * 4) & 3 : 0;
    float bright = on ? (float)between(&rng, -a->brightness, a->brightness) * 255 : 0;
    float contrast = on ? (float)between(&rng, 1 - a->contrast, 1 + a->contrast) : 1;
    float gamma = on ? (float)between(&rng, 1 - a->gamma, 1 + a->gamma) : 1;

    /* The patch's centre: the image centre when it fits, else a random FOV pixel. */
    double span = S * zoom, cx = s->width / 2.0, cy = s->height / 2.0;
    if (s->width > span || s->height > span) {
        for (int tries = 0; tries < 64; tries++) {
            int px = (int)(uniform(&rng) * s->width), py = (int)(uniform(&rng) * s->height);
            if (px >= s->width || py >= s->height) continue;
            cx = px + 0.5, cy = py + 0.5;
            if (s->mask[(size_t)py * s->width + px]) break;
        }
    }
    for (int v = 0; v < S; v++)
        for (int u = 0; u < S; u++) {
            /* output (u, v) -> patch frame (pu, pv): quarter turns, then flips */
            int pu = u, pv = v;
            for (int t = 0; t < turns; t++) {
                int tmp = pu;
                pu = S - 1 - pv;
                pv = tmp;
            }
            if (flip_x) pu = S - 1 - pu;
            if (flip_y) pv = S - 1 - pv;
            float sx = (float)(cx + (pu + 0.5 - S / 2.0) * zoom - 0.5);
            float sy = (float)(cy + (pv + 0.5 - S / 2.0) * zoom - 0.5);
            size_t o = (size_t)v * S + u;
            for (int c = 0; c < 3; c++) {
                float val = sample_rgb(s, sx, sy, c);
                if (on) {
                    val = (val - 127.5f) * contrast + 127.5f + bright;
                    val = val < 0 ? 0 : val > 255 ? 255 : val;
                    if (gamma != 1) val = 255.0f * powf(val / 255.0f, gamma);
                }
                img[(size_t)c * S * S + o] = (val - spec->mean[c]) / spec->std[c];
            }
            int nx = (int)floorf(sx + 0.5f), ny = (int)floorf(sy + 0.5f);
            int inside = nx >= 0 && ny >= 0 && nx < s->width && ny < s->height;
            size_t si = inside ? (size_t)ny * s->width + nx : 0;
            lab[o] = inside && s->label ? s->label[si] : 0.0f;
            msk[o] = inside ? s->mask[si] : 0.0f;
        }
}

void cn_batch_make(const cn_sample_set *set, const cn_batch_spec *spec, int epoch, int step, cn_batch *out)
{
    size_t px = (size_t)spec->size * spec->size;
    for (int j = 0; j < spec->batch; j++) {
        int i = pick_sample(set, spec->seed, epoch, step, j, spec->batch);
        make_slot(&set->items[i], spec, key4(spec->seed, epoch, step, j), out->images + 3 * px * j,
                  out->labels + px * j, out->masks + px * j);
    }
}

/* ---- the worker thread ------------------------------------------------------ */

static void *worker_main(void *arg)
{
    cn_batch_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->pending && !w->quit) pthread_cond_wait(&w->cond, &w->lock);
        if (w->quit) break;
        int epoch = w->epoch, step = w->step;
        pthread_mutex_unlock(&w->lock);
        cn_batch_make(w->set, &w->spec, epoch, step, &w->slot);
        pthread_mutex_lock(&w->lock);
        w->pending = 0;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

clunet_status cn_batch_worker_start(cn_batch_worker *w, const cn_sample_set *set, const cn_batch_spec *spec)
{
    memset(w, 0, sizeof *w);
    w->set = set;
    w->spec = *spec;
    CN_TRY(cn_batch_alloc(&w->slot, spec->batch, spec->size));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        cn_batch_free(&w->slot);
        return cn_fail(CLUNET_ERR_INTERNAL, "cannot start the batch worker thread");
    }
    w->running = 1;
    return CLUNET_OK;
}

void cn_batch_worker_request(cn_batch_worker *w, int epoch, int step)
{
    pthread_mutex_lock(&w->lock);
    w->epoch = epoch;
    w->step = step;
    w->pending = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void cn_batch_worker_take(cn_batch_worker *w, cn_batch *b)
{
    pthread_mutex_lock(&w->lock);
    while (w->pending) pthread_cond_wait(&w->cond, &w->lock);
    cn_batch t = *b;
    *b = w->slot;
    w->slot = t;
    pthread_mutex_unlock(&w->lock);
}

void cn_batch_worker_stop(cn_batch_worker *w)
{
    if (!w->running) return;
    pthread_mutex_lock(&w->lock);
    w->quit = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    cn_batch_free(&w->slot);
    w->running = 0;
}
