/*
 * synth.h - synthetic fundus photographs with exact vessel labels: clunet's
 * built-in data, so that training, tests and benchmarks run with no download.
 *
 * A sample is a circular field of view with a dark rim and vignetting, an
 * orange-red textured background, a bright optic disc, a darker macula and a
 * tortuous vessel tree (arteries and veins) growing from the disc, tapering at
 * each branching; then slight blur and camera noise. The same (seed, index,
 * size) always gives the same pixels, on any machine with IEEE floats.
 */
#ifndef CLUNET_DATA_SYNTH_H
#define CLUNET_DATA_SYNTH_H

#include <stdint.h>

#include "data/image.h"

#define CN_SYNTH_MIN_SIZE 64
#define CN_SYNTH_MAX_SIZE 4096

/*
 * Renders sample `index` of the stream `seed` at size x size pixels: img is
 * RGB (integers on the 0-255 scale), label and mask are 1 channel, 0 or 255
 * (label is vessel, mask the field of view; label is 0 outside the mask).
 * mask may be NULL. The caller frees the images with cn_image_free.
 */
clunet_status cn_synth_sample(uint64_t seed, int index, int size, cn_image *img, cn_image *label, cn_image *mask);

#endif
