// fake_cuda.h — helpers shared by the fake CUDA backend (tests/fake_cuda/*.c).
//
// The fake implements every pn_cuda_* entry point on the CPU: "device" pointers are
// host pointers, bf16 is pn_bf16 bits rounded with pn_f32_to_bf16 (nearest-even, the
// GPU's __float2bfloat16_rn), and each op converts its bf16 inputs to fp32
// temporaries, runs the CPU twin (kernels/ops.h, blocks/block_util.h) and writes its
// outputs in the CUDA op's dtype. Dev-only: it proves host orchestration, layouts and
// contracts, never the kernels. Internal to tests/fake_cuda/ (not a public header).
#pragma once
#include "core/common.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include <stdint.h>
#include <string.h>

// Chunk size the fakes pass to the chunked CPU recurrences (the CUDA kernels' chunk).
#define FK_CHUNK 64

// A fresh fp32 copy of n bf16 values (NULL for NULL); free() it.
float *fk_from_bf16(const pn_bf16 *x, int64_t n);
// A fresh fp32 copy of n fp32 values (NULL for NULL).
float *fk_dup(const float *x, int64_t n);
// n zeroed floats (at least one element, so the pointer is never NULL).
float *fk_zeros(int64_t n);
// n uninitialised floats (at least one element).
float *fk_alloc(int64_t n);
// dst (n) of dtype dt = src, rounded to nearest-even for bf16.
void fk_store(void *dst, pn_cuda_dtype dt, const float *src, int64_t n);
void fk_store_bf16(pn_bf16 *dst, const float *src, int64_t n);
// p itself, or (p NULL) a zeroed temporary remembered in *tmp for the caller to free:
// for "NULL gradient = not wanted" arguments the CPU twin does not accept as NULL.
float *fk_or_temp(float *p, int64_t n, float **tmp);

// What a CUDA function the fake does not provide does: exit 1 naming it.
PN_NORETURN void fk_unavailable(const char *file, int line, const char *fn);
#define FK_UNAVAILABLE() fk_unavailable(__FILE__, __LINE__, __func__)
