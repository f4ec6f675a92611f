/*
 * init.c - initial parameter values, as the PyTorch versions of the seed's
 * parts start: torchvision's EfficientNet (convs: He normal over fan-out),
 * segmentation_models.pytorch's decoder (He uniform over fan-in) and head
 * (Xavier uniform, zero bias); BN scale 1, shift 0, running mean 0, var 1.
 */
#include <math.h>
#include <string.h>

#include "graph/graph.h"

/* splitmix64: a fixed generator so that a seed gives the same weights everywhere. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return ((next_u64(s) >> 11) + 0.5) / 9007199254740992.0; }

static double normal(uint64_t *s)
{
    return sqrt(-2.0 * log(uniform01(s))) * cos(6.283185307179586 * uniform01(s));
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

void cn_graph_init_params(const cn_graph *g, uint64_t seed, float *params, float *state)
{
    uint64_t rng = seed;
    memset(params, 0, g->trainable_floats * sizeof *params);
    memset(state, 0, g->state_floats * sizeof *state);
    for (int i = 0; i < g->param_count; i++) {
        const cn_param *p = &g->params[i];
        float *dst = (p->trainable ? params : state) + p->offset;
        if (p->ndim == 4) {
            /* conv weight (cout, cin/groups, k, k) */
            double fan_in = (double)p->dims[1] * p->dims[2] * p->dims[3];
            double fan_out = (double)p->dims[0] * p->dims[2] * p->dims[3];
            if (!strncmp(p->name, "encoder.", 8)) {
                double sd = sqrt(2.0 / fan_out);
                for (size_t k = 0; k < p->count; k++) dst[k] = (float)(sd * normal(&rng));
            } else {
                double bound = !strncmp(p->name, "head.", 5) ? sqrt(6.0 / (fan_in + fan_out)) : sqrt(6.0 / fan_in);
                for (size_t k = 0; k < p->count; k++) dst[k] = (float)(bound * (2 * uniform01(&rng) - 1));
            }
        } else if (ends_with(p->name, ".running_var") || ends_with(p->name, ".weight")) {
            for (size_t k = 0; k < p->count; k++) dst[k] = 1.0f; /* BN scale, running variance */
        }
        /* biases, BN shifts and running means stay 0 */
    }
}
