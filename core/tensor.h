// tensor.h — a small strided tensor and the dtypes we read and write.
//
// A tensor does not own its memory: data comes from an arena, an mmap'd file or
// the caller. Views share data with new shape/strides. Shapes are row-major
// (last dim contiguous); shape letters in comments follow (B, T, H, D).
#pragma once
#include "common.h"

#define PN_MAX_DIMS 8

typedef enum {
    PN_F32 = 0,
    PN_BF16,
    PN_F16,
    PN_F64,
    PN_I32,
    PN_I64,
    PN_U16,
    PN_U32,
    PN_U8,
    PN_I8,
    PN_BOOL,
    PN_DTYPE_COUNT
} pn_dtype;

typedef enum { PN_CPU = 0, PN_CUDA = 1 } pn_device;

typedef struct {
    pn_dtype dtype;
    pn_device device;
    int ndim;
    int64_t shape[PN_MAX_DIMS];
    int64_t strides[PN_MAX_DIMS];  // in elements
    void *data;
} pn_tensor;

size_t pn_dtype_size(pn_dtype dt);
// safetensors names: "F32", "BF16", "F16", "F64", "I32", "I64", "U16", "U32", "U8", "I8", "BOOL".
const char *pn_dtype_name(pn_dtype dt);
// Returns -1 for an unknown name.
int pn_dtype_from_name(const char *name);

pn_tensor pn_tensor_make(pn_dtype dt, int ndim, const int64_t *shape, void *data);
int64_t pn_tensor_numel(const pn_tensor *t);
size_t pn_tensor_nbytes(const pn_tensor *t);
int pn_tensor_is_contiguous(const pn_tensor *t);
// View of dims [start, start+len) along dim `dim`.
pn_tensor pn_tensor_slice(const pn_tensor *t, int dim, int64_t start, int64_t len);
// Reshape a contiguous tensor; ndim/shape must have the same numel.
pn_tensor pn_tensor_reshape(const pn_tensor *t, int ndim, const int64_t *shape);
// "[2, 37, 64]" into buf.
const char *pn_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

// Conversions between storage dtypes and f32 (round-to-nearest-even for bf16/f16).
float pn_bf16_to_f32(uint16_t h);
uint16_t pn_f32_to_bf16(float f);
float pn_f16_to_f32(uint16_t h);
uint16_t pn_f32_to_f16(float f);
// Convert n contiguous elements of any float dtype (f32/bf16/f16/f64) to f32.
// Returns 0 on success, -1 if `src_dt` is not a float dtype.
int pn_convert_to_f32(float *dst, const void *src, pn_dtype src_dt, size_t n);
