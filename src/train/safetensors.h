/*
 * safetensors.h - checkpoints and reference tensors in the safetensors format:
 * an 8-byte little-endian header length, a JSON header
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * padded with spaces to 8 bytes, then the raw little-endian data; offsets count
 * from the start of the data. Only F32 is supported.
 *
 * The reader trusts nothing in the file: every length is checked against the
 * file's size before it is used, and the tensors must tile the data exactly
 * (no overlap, no gap), as the reference implementation demands.
 * The writer replaces its target atomically (temp file, fsync, rename).
 *
 * Data is copied as bytes: on a big-endian host it would need swapping, which
 * clunet does not do (every OpenCL host we target is little-endian).
 */
#ifndef CN_TRAIN_SAFETENSORS_H
#define CN_TRAIN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "clunet.h"

#define CN_ST_MAX_DIMS 8

typedef struct cn_st_tensor {
    char *name;
    int ndim;
    int64_t shape[CN_ST_MAX_DIMS];
    size_t count;   /* product of shape (1 for a scalar) */
    uint64_t begin; /* byte offsets within the data section */
    uint64_t end;
} cn_st_tensor;

/* A metadata pair: owned by the file when read, borrowed when written. */
typedef struct cn_st_meta {
    const char *key;
    const char *value;
} cn_st_meta;

typedef struct cn_st_file cn_st_file;

/* Opens and validates path; CLUNET_ERR_FORMAT for any malformed or truncated file,
 * CLUNET_ERR_UNSUPPORTED for a valid file holding a dtype other than F32. */
clunet_status cn_st_open(const char *path, cn_st_file **file);
void cn_st_close(cn_st_file *file);

/* The tensors in file order (by data offset) and the metadata; valid until close. */
int cn_st_count(const cn_st_file *file);
const cn_st_tensor *cn_st_tensor_at(const cn_st_file *file, int i);
const cn_st_tensor *cn_st_find(const cn_st_file *file, const char *name);
int cn_st_meta_count(const cn_st_file *file);
const cn_st_meta *cn_st_meta_at(const cn_st_file *file, int i);
/* The value of a metadata key, or NULL. */
const char *cn_st_meta_get(const cn_st_file *file, const char *key);

/* Reads tensor name into dst, which holds count floats (must equal the tensor's count). */
clunet_status cn_st_read(cn_st_file *file, const char *name, float *dst, size_t count);

/* One tensor to write: shape has ndim entries, data has their product of floats. */
typedef struct cn_st_entry {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} cn_st_entry;

/* Writes the entries (in this order) and metadata to path, replacing it atomically:
 * on failure an existing file is left untouched and no temp file remains. */
clunet_status cn_st_write(const char *path, const cn_st_entry *entries, int n_entries,
                          const cn_st_meta *meta, int n_meta);

#endif
