/*
 * synth_vessels.h - internals of the synthetic retinas shared by synth.c (the
 * scene) and synth_vessels.c (the vessel tree): the random number generator
 * and the geometry the tree grows in.
 */
#ifndef CLUNET_DATA_SYNTH_VESSELS_H
#define CLUNET_DATA_SYNTH_VESSELS_H

#include <math.h>
#include <stdint.h>

#include "clunet.h"

/* xoshiro256** seeded through splitmix64: our own, so streams never depend on libc. */
typedef struct cn_rng {
    uint64_t s[4];
} cn_rng;

static inline uint64_t cn_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void cn_rng_seed(cn_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ cn_splitmix64(&stream);
    for (int i = 0; i < 4; i++) r->s[i] = cn_splitmix64(&x);
}

static inline uint64_t cn_rng_next(cn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, 1). */
static inline double cn_rng_unit(cn_rng *r) { return (double)(cn_rng_next(r) >> 11) * 0x1.0p-53; }

static inline double cn_rng_range(cn_rng *r, double lo, double hi) { return lo + (hi - lo) * cn_rng_unit(r); }

/* Standard normal (Box-Muller; one of the pair is dropped for simplicity). */
static inline double cn_rng_normal(cn_rng *r)
{
    double u = 1.0 - cn_rng_unit(r), v = cn_rng_unit(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Where the tree grows: all lengths in pixels of the output image. */
typedef struct cn_synth_scene {
    int size;
    double scale;          /* size / 512: widths are chosen at 512 px and scaled */
    double cx, cy, radius; /* field of view */
    double dx, dy, disc_r; /* optic disc */
    double mx, my;         /* macula (fovea) */
} cn_synth_scene;

/*
 * Grows arteries and veins from the disc and rasterises them: label (size^2
 * bytes) gets 1 where a pixel centre lies inside a vessel; artery and vein
 * (size^2 floats, zeroed by the caller) get each pixel's opacity (0-1) for the
 * renderer. Returns CLUNET_ERR_OUT_OF_MEMORY only.
 */
clunet_status cn_synth_vessels(const cn_synth_scene *sc, cn_rng *rng, unsigned char *label, float *artery,
                               float *vein);

#endif
