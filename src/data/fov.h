/*
 * fov.h - field-of-view masks: the circular region of a fundus photograph the
 * camera actually saw. Loss and metrics are computed inside it only.
 * Masks are 1-channel cn_images holding 0 (outside) or 255 (inside).
 */
#ifndef CLUNET_DATA_FOV_H
#define CLUNET_DATA_FOV_H

#include "data/image.h"

/*
 * Derives the FOV from the image: the brightest channel, smoothed, thresholded
 * at 10% of its 1st-99th percentile range; then the largest connected region,
 * its holes filled, eroded by a small margin (0.5% of the shorter side) so the
 * dark rim stays outside.
 */
clunet_status cn_fov_derive(const cn_image *img, cn_image *mask);

/*
 * The dataset's mask file at path (any channel > 0 is inside), or the FOV
 * derived from img (read from img_path) when path is NULL. Fails, naming the
 * file, when its size is not img's or nothing is inside.
 */
clunet_status cn_fov_get(const char *path, const char *img_path, const cn_image *img, cn_image *mask);

#endif
