/*
 * synth.c - synthetic fundus photographs (see synth.h): the scene layout, the
 * background, optic disc and macula, compositing of the vessel tree from
 * synth_vessels.c, then blur and camera noise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/synth.h"
#include "data/synth_vessels.h"

#define PI 3.14159265358979323846
/* Texture lattices: at most 128 cells across (the finest octave below). */
#define LATTICE_FLOATS (130 * 130)

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static double smoothstep(double t) { return t * t * (3 - 2 * t); }

/*
 * Adds `octaves` of value noise to out (size^2), the coarsest with `cells`
 * lattice cells across, each octave twice as fine at 0.55 times the amplitude;
 * the sum is normalised to about [-1, 1]. lattice holds (cells<<octaves + 2)^2.
 */
static void fbm(float *out, float *lattice, int size, int cells, int octaves, cn_rng *rng)
{
    double amp = 1.0, total = 0.0;
    for (int o = 0; o < octaves; o++, cells *= 2, amp *= 0.55) total += amp;
    amp = 1.0 / total;
    cells >>= octaves;
    for (int o = 0; o < octaves; o++, cells *= 2, amp *= 0.55) {
        int n = cells + 2;
        for (int i = 0; i < n * n; i++) lattice[i] = (float)cn_rng_range(rng, -1.0, 1.0);
        double step = (double)cells / size;
        for (int y = 0; y < size; y++) {
            double fy = (y + 0.5) * step;
            int iy = (int)fy;
            double ty = smoothstep(fy - iy);
            const float *r0 = lattice + (size_t)iy * n, *r1 = r0 + n;
            float *row = out + (size_t)y * size;
            for (int x = 0; x < size; x++) {
                double fx = (x + 0.5) * step;
                int ix = (int)fx;
                double tx = smoothstep(fx - ix);
                double top = r0[ix] + (r0[ix + 1] - r0[ix]) * tx;
                double bottom = r1[ix] + (r1[ix + 1] - r1[ix]) * tx;
                row[x] += (float)(amp * (top + (bottom - top) * ty));
            }
        }
    }
}

/* [1 2 1]/4 along both axes, on one interleaved channel of an RGB image. */
static void blur121(float *rgb, float *tmp, int size, int ch)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int line = 0; line < size; line++) {
            for (int i = 0; i < size; i++) {
                int a = i > 0 ? i - 1 : i, b = i < size - 1 ? i + 1 : i;
                size_t pa = pass ? (size_t)a * size + line : (size_t)line * size + a;
                size_t pi = pass ? (size_t)i * size + line : (size_t)line * size + i;
                size_t pb = pass ? (size_t)b * size + line : (size_t)line * size + b;
                tmp[i] = 0.25f * rgb[pa * 3 + ch] + 0.5f * rgb[pi * 3 + ch] + 0.25f * rgb[pb * 3 + ch];
            }
            for (int i = 0; i < size; i++) {
                size_t pi = pass ? (size_t)i * size + line : (size_t)line * size + i;
                rgb[pi * 3 + ch] = tmp[i];
            }
        }
    }
}

/* Field of view, disc and macula: a left or right eye, disc- or macula-centred. */
static void place(cn_synth_scene *sc, cn_rng *rng, int size)
{
    sc->size = size;
    sc->scale = size / 512.0;
    sc->cx = size * (0.5 + cn_rng_range(rng, -0.015, 0.015));
    sc->cy = size * (0.5 + cn_rng_range(rng, -0.015, 0.015));
    sc->radius = size * cn_rng_range(rng, 0.43, 0.47);
    double R = sc->radius, eye = cn_rng_unit(rng) < 0.5 ? -1.0 : 1.0;
    double off = cn_rng_range(rng, 0.05, 0.4); /* how far the disc sits from the centre */
    sc->dx = sc->cx + eye * off * R;
    sc->dy = sc->cy + cn_rng_range(rng, -0.08, 0.08) * R;
    sc->disc_r = R * cn_rng_range(rng, 0.12, 0.17);
    double sep = cn_rng_range(rng, 0.5, 0.6) * R; /* disc to fovea, about 2.5 disc diameters */
    double tilt = cn_rng_range(rng, -0.1, 0.15);
    sc->mx = sc->dx - eye * sep * cos(tilt);
    sc->my = sc->dy + sep * sin(tilt);
}

typedef struct look {
    double base[3];      /* background colour at the centre */
    double vignette;     /* darkening at the rim (fraction) */
    double grad, grad_a; /* illumination gradient strength and direction */
    double disc[3], cup[3];
    double macula;       /* darkening at the fovea (fraction) */
    double noise;        /* camera noise sigma, 0-255 scale */
    double vein[3], artery[3]; /* what a fully opaque vessel multiplies each channel by */
} look;

static void choose_look(look *lk, cn_rng *rng)
{
    double gain = cn_rng_range(rng, 0.8, 1.1);
    lk->base[0] = cn_rng_range(rng, 185, 225) * gain;
    lk->base[1] = cn_rng_range(rng, 65, 100) * gain;
    lk->base[2] = cn_rng_range(rng, 20, 45) * gain;
    lk->vignette = cn_rng_range(rng, 0.4, 0.6);
    lk->grad = cn_rng_range(rng, 0.0, 0.15);
    lk->grad_a = cn_rng_range(rng, 0, 2 * PI);
    lk->disc[0] = 250, lk->disc[1] = cn_rng_range(rng, 185, 215), lk->disc[2] = cn_rng_range(rng, 90, 130);
    lk->cup[0] = 255, lk->cup[1] = cn_rng_range(rng, 225, 245), lk->cup[2] = cn_rng_range(rng, 150, 190);
    lk->macula = cn_rng_range(rng, 0.25, 0.4);
    lk->noise = cn_rng_range(rng, 1.5, 3.5);
    lk->vein[0] = cn_rng_range(rng, 0.62, 0.72), lk->vein[1] = 0.42, lk->vein[2] = 0.55;
    lk->artery[0] = cn_rng_range(rng, 0.8, 0.88), lk->artery[1] = 0.62, lk->artery[2] = 0.7;
}

/* Background, disc and macula into rgb; fov gets the anti-aliased disc coverage (0-1). */
static void paint_fundus(const cn_synth_scene *sc, const look *lk, const float *tex, const float *tint, float *rgb,
                         float *fov)
{
    int size = sc->size;
    double R = sc->radius, rd = sc->disc_r, rm = 0.2 * R;
    double gx = cos(lk->grad_a), gy = sin(lk->grad_a);
    /* The cup sits slightly temporal in the disc. */
    double ux = sc->dx + 0.15 * rd * (sc->mx > sc->dx ? 1 : -1), uy = sc->dy - 0.05 * rd;
    for (int y = 0; y < size; y++) {
        for (int x = 0; x < size; x++) {
            size_t i = (size_t)y * size + x;
            double px = x + 0.5, py = y + 0.5;
            double r = hypot(px - sc->cx, py - sc->cy) / R;
            fov[i] = (float)clampd((1.0 - r) * R + 0.5, 0, 1);
            double light = (1 - lk->vignette * pow(fmin(r, 1.0), 2.5)) *
                           (1 + lk->grad * ((px - sc->cx) * gx + (py - sc->cy) * gy) / R);
            double c[3];
            c[0] = lk->base[0] * (1 + 0.14 * tex[i]);
            c[1] = lk->base[1] * (1 + 0.22 * tex[i] + 0.12 * tint[i]);
            c[2] = lk->base[2] * (1 + 0.12 * tex[i] + 0.10 * tint[i]);
            double fd = hypot(px - sc->mx, py - sc->my);
            double mac = lk->macula * exp(-(fd / rm) * (fd / rm));
            c[0] *= 1 - 0.6 * mac, c[1] *= 1 - mac, c[2] *= 1 - mac;
            double dd = hypot(px - sc->dx, py - sc->dy), cd = hypot(px - ux, py - uy);
            double disc = 0.9 / (1 + exp((dd - rd) / (0.04 * rd)));
            double cup = 0.8 / (1 + exp((cd - 0.45 * rd) / (0.12 * rd)));
            for (int k = 0; k < 3; k++) {
                double v = c[k] * light;
                v += (lk->disc[k] * (0.85 + 0.1 * tex[i]) - v) * disc;
                v += (lk->cup[k] - v) * cup;
                rgb[i * 3 + k] = (float)v;
            }
        }
    }
}

static clunet_status render(uint64_t seed, int index, int size, cn_image *img, cn_image *label, cn_image *mask)
{
    // img is (size,size,3); label and mask are (size,size,1)
    size_t n = (size_t)size * size;
    cn_rng rng;
    cn_rng_seed(&rng, seed, (uint64_t)index);
    cn_synth_scene sc;
    place(&sc, &rng, size);
    look lk;
    choose_look(&lk, &rng);

    float *tex = calloc(n, sizeof *tex), *tint = calloc(n, sizeof *tint), *fov = malloc(n * sizeof *fov);
    float *artery = calloc(n, sizeof *artery), *vein = calloc(n, sizeof *vein);
    float *lattice = malloc(LATTICE_FLOATS * sizeof *lattice), *tmp = malloc(size * sizeof *tmp);
    unsigned char *vessel = calloc(n, 1);
    clunet_status st = CLUNET_OK;
    if (!tex || !tint || !fov || !artery || !vein || !lattice || !tmp || !vessel)
        st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of memory for a %dx%d synthetic retina", size, size);
    if (st == CLUNET_OK) st = cn_synth_vessels(&sc, &rng, vessel, artery, vein);
    if (st == CLUNET_OK) st = cn_image_alloc(img, size, size, 3);
    if (st == CLUNET_OK) st = cn_image_alloc(label, size, size, 1);
    if (st == CLUNET_OK && mask) st = cn_image_alloc(mask, size, size, 1);
    if (st == CLUNET_OK) {
        /* Blotchy choroid texture, plus a slower variation of hue. */
        fbm(tex, lattice, size, 4, 6, &rng);
        fbm(tint, lattice, size, 3, 3, &rng);
        paint_fundus(&sc, &lk, tex, tint, img->data, fov);
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < 3; k++)
                img->data[i * 3 + k] *= (float)((1 - artery[i] * (1 - lk.artery[k])) * (1 - vein[i] * (1 - lk.vein[k])));
        /* Optics: about a pixel of blur at 512 px, more for larger images. */
        int blurs = (int)ceil(sc.scale);
        for (int b = 0; b < blurs; b++)
            for (int k = 0; k < 3; k++) blur121(img->data, tmp, size, k);
        double dark = cn_rng_range(&rng, 0, 4);
        for (size_t i = 0; i < n; i++) {
            for (int k = 0; k < 3; k++) {
                double v = img->data[i * 3 + k] * fov[i] + dark * (1 - fov[i]);
                v += lk.noise * (0.4 + 0.6 * fov[i]) * cn_rng_normal(&rng);
                img->data[i * 3 + k] = (float)floor(clampd(v, 0, 255) + 0.5);
            }
            int inside = fov[i] >= 0.5f;
            label->data[i] = vessel[i] && inside ? 255.0f : 0.0f;
            if (mask) mask->data[i] = inside ? 255.0f : 0.0f;
        }
    }
    free(tex);
    free(tint);
    free(fov);
    free(artery);
    free(vein);
    free(lattice);
    free(tmp);
    free(vessel);
    return st;
}

clunet_status cn_synth_sample(uint64_t seed, int index, int size, cn_image *img, cn_image *label, cn_image *mask)
{
    memset(img, 0, sizeof *img);
    memset(label, 0, sizeof *label);
    if (mask) memset(mask, 0, sizeof *mask);
    if (size < CN_SYNTH_MIN_SIZE || size > CN_SYNTH_MAX_SIZE)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "synthetic size %d is outside %d-%d", size, CN_SYNTH_MIN_SIZE,
                       CN_SYNTH_MAX_SIZE);
    if (index < 0) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "synthetic sample index %d is negative", index);
    clunet_status st = render(seed, index, size, img, label, mask);
    if (st != CLUNET_OK) {
        cn_image_free(img);
        cn_image_free(label);
        if (mask) cn_image_free(mask);
    }
    return st;
}
