/* cmd_synth.c - `clunet synth`: writes synthetic retinas as PNG files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "data/synth.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: clunet synth --out DIR [--n N] [--size S] [--seed K] [--no-mask]\n\n"
            "Writes N synthetic fundus photographs with exact vessel labels, the data clunet\n"
            "uses when no dataset is given: DIR/NNNN.png (RGB), DIR/NNNN_label.png and\n"
            "DIR/NNNN_mask.png (field of view), 0 or 255. The same seed gives the same files.\n\n"
            "  --out DIR    output directory (created if missing)\n"
            "  --n N        number of samples (default 4)\n"
            "  --size S     width and height in pixels, %d-%d (default 512)\n"
            "  --seed K     stream seed, an unsigned integer (default 1)\n"
            "  --no-mask    do not write the mask files\n",
            CN_SYNTH_MIN_SIZE, CN_SYNTH_MAX_SIZE);
}

/* A whole non-negative integer no larger than max. */
static int parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') return 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v > max) return 0;
    *out = v;
    return 1;
}

static int write_sample(const char *dir, int i, const cn_image *img, const cn_image *label, const cn_image *mask)
{
    char path[4096];
    const char *suffix[3] = {"", "_label", "_mask"};
    const cn_image *what[3] = {img, label, mask};
    for (int k = 0; k < 3; k++) {
        if (!what[k]) continue;
        snprintf(path, sizeof path, "%s/%04d%s.png", dir, i, suffix[k]);
        if (cn_image_write_png(path, what[k], 8) != CLUNET_OK) return cli_fail("synth");
    }
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *out = NULL;
    unsigned long long n = 4, size = 512, seed = 1;
    int want_mask = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--no-mask")) want_mask = 0;
        else if (!strcmp(a, "--out") && v) out = v, i++;
        else if (!strcmp(a, "--n")) ok = parse_count(v, 1000000, &n) && n > 0, i++;
        else if (!strcmp(a, "--size")) ok = parse_count(v, CN_SYNTH_MAX_SIZE, &size), i++;
        else if (!strcmp(a, "--seed")) ok = parse_count(v, UINT64_MAX, &seed), i++;
        else {
            fprintf(stderr, "clunet synth: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "clunet synth: bad value '%s' for %s (see --help)\n", v ? v : "", a);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "clunet synth: --out DIR is required (see --help)\n");
        return 2;
    }
    if (size < CN_SYNTH_MIN_SIZE) {
        fprintf(stderr, "clunet synth: --size %llu is below %d\n", size, CN_SYNTH_MIN_SIZE);
        return 2;
    }
    int created;
    if (cli_out_dir("synth", out, &created)) return 1;
    double vessel_sum = 0;
    double t0 = cn_seconds();
    for (int i = 0; i < (int)n; i++) {
        cn_image img, label, mask;
        if (cn_synth_sample(seed, i, (int)size, &img, &label, want_mask ? &mask : NULL) != CLUNET_OK)
            return cli_fail("synth");
        size_t pixels = (size_t)size * size, vessel = 0;
        for (size_t p = 0; p < pixels; p++) vessel += label.data[p] > 0;
        vessel_sum += (double)vessel / (double)pixels;
        int rc = write_sample(out, i, &img, &label, want_mask ? &mask : NULL);
        cn_image_free(&img);
        cn_image_free(&label);
        if (want_mask) cn_image_free(&mask);
        if (rc) return rc;
    }
    double secs = cn_seconds() - t0;
    printf("wrote %llu samples of %llux%llu to %s (seed %llu): mean vessel fraction %.3f, %.3f s per sample\n", n,
           size, size, out, seed, n ? vessel_sum / (double)n : 0.0, n ? secs / (double)n : 0.0);
    return 0;
}
