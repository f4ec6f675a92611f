/*
 * infer.h - probabilities for a whole image of any size with the graph's
 * fixed input shape: overlapping tiles, batched, stitched with weights that
 * favour each tile's centre (where the network sees the most context).
 */
#ifndef CLUNET_TRAIN_INFER_H
#define CLUNET_TRAIN_INFER_H

#include "data/pipeline.h"
#include "graph/exec.h"

enum { CN_INFER_MAX_SCALES = 4 };

typedef struct cn_infer {
    cn_exec *exec;
    float mean[3], std[3]; /* input normalisation (0-255 scale) */
    cn_preprocess preprocess; /* applied to each image first (the checkpoint's) */
    int overlap;           /* pixels shared by neighbouring tiles */
    int views;             /* test-time augmentation: 1 (none), 4 (the mirrors) or 8 (mirrors and quarter turns) */
    float input_scale;     /* the scale the network was trained at: each image resized by it first (1: none) */
    int nscales;           /* test-time scales in `scales`, on top of input_scale; 0 = none */
    float scales[CN_INFER_MAX_SCALES]; /* each > 0: the image resized by it, probabilities resized back */
    /* Called with (0, total) as an image starts, then after each batch of tiles with the tiles done so far out
     * of the image's total over its views and scales; NULL: none. */
    void (*progress)(void *user, const char *name, int done, int total);
    void *progress_user;
    int done, total;       /* the current image's tiles, for progress */
    float *tiles;          /* (B,3,S,S) host staging */
    float *logits;         /* (B,1,S,S) */
    float *weight;         /* (S,S) stitching weights */
} cn_infer;

clunet_status cn_infer_init(cn_infer *inf, cn_exec *exec, const float mean[3], const float std[3]);
void cn_infer_free(cn_infer *inf);

/*
 * prob (H,W) = sigmoid of the network's logits over the sample's image
 * (inference-mode BN); with views 4 or 8, the mean over the image's mirrored
 * (and transposed) views of their probabilities, each mapped back; with
 * several scales, the mean over those too (each resized bilinearly).
 */
clunet_status cn_infer_image(cn_infer *inf, const cn_sample_image *s, float *prob);

#endif
