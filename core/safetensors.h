// safetensors.h — reader (single file, sharded index, mmap) and atomic writer.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data block. Offsets are relative to the data block.
//
// Parsing is bounded: a header longer than the file, offsets outside the data,
// overlapping or mis-sized tensors, unknown dtypes or a header that is not JSON
// end the process with exit 2 and "FILE: reason" (pn_die_input). A directory is
// opened through model.safetensors.index.json ("weight_map": name -> shard) or,
// failing that, model.safetensors.
#pragma once
#include "tensor.h"

typedef struct {
    char *name;
    pn_dtype dtype;
    int ndim;
    int64_t shape[PN_MAX_DIMS];
    const void *data;   // points into the mmap'd file
    size_t nbytes;
    int file_index;     // which shard
} pn_st_entry;

typedef struct {
    char *key;
    char *value;
} pn_st_meta;

typedef struct {
    char **paths;       // one per shard
    void **maps;        // mmap base per shard
    size_t *map_sizes;
    int n_files;
    pn_st_entry *entries;  // sorted by name
    int n_entries;
    pn_st_meta *meta;      // __metadata__ of the first file
    int n_meta;
} pn_safetensors;

// PATH is a .safetensors file, an index .json, or a directory holding either.
pn_safetensors *pn_st_open(const char *path);
void pn_st_close(pn_safetensors *st);
// NULL when absent.
const pn_st_entry *pn_st_find(const pn_safetensors *st, const char *name);
// Dies (exit 2) naming the file and tensor when absent.
const pn_st_entry *pn_st_get(const pn_safetensors *st, const char *name);
const char *pn_st_meta_get(const pn_safetensors *st, const char *key);  // NULL when absent
const char *pn_st_entry_path(const pn_safetensors *st, const pn_st_entry *e);

// Copy a float tensor (F32/F64/BF16/F16) into dst as f32, checking the shape:
// `ndim`/`shape` are what the caller expects (-1 in shape = any). Wrong dtype or
// shape -> exit 2 naming file, tensor, expected and found. Returns numel.
int64_t pn_st_read_f32(const pn_safetensors *st, const char *name, float *dst, int ndim, const int64_t *shape);
// Same, allocating (free() the result). Shape written to out_shape/out_ndim if non-NULL.
float *pn_st_load_f32(const pn_safetensors *st, const char *name, int *out_ndim, int64_t *out_shape);
// Integer tensor (I64/I32) as int64, allocated.
int64_t *pn_st_load_i64(const pn_safetensors *st, const char *name, int *out_ndim, int64_t *out_shape);

// ---- writer: collect tensors (data is copied), then write atomically ----
typedef struct pn_st_writer pn_st_writer;
pn_st_writer *pn_st_writer_new(void);
void pn_st_writer_add(pn_st_writer *w, const char *name, pn_dtype dtype, int ndim, const int64_t *shape,
                      const void *data);
// f32 data converted to `dtype` (F32/BF16/F16/F64) on the way out.
void pn_st_writer_add_f32(pn_st_writer *w, const char *name, pn_dtype dtype, int ndim, const int64_t *shape,
                          const float *data);
void pn_st_writer_meta(pn_st_writer *w, const char *key, const char *value);
// Writes PATH atomically (tensors in name order, 8-byte aligned header); frees w.
void pn_st_writer_save(pn_st_writer *w, const char *path);
// Sharded: writes DIR/model-0000i-of-0000n.safetensors with at most
// max_shard_bytes each plus DIR/model.safetensors.index.json; frees w.
void pn_st_writer_save_sharded(pn_st_writer *w, const char *dir, size_t max_shard_bytes);
void pn_st_writer_free(pn_st_writer *w);
