// pn_cuda_attn.h — extern "C" entry points of causal / sliding-window GQA softmax
// attention on CUDA (kernels/cuda/attn_cudnn.cu, attn_fallback.cu).
//
// The twin of pn_attention_fwd / _bwd (kernels/ops.h) with bf16 storage: q, k, v, o and
// the gradients are bf16, the row log-sum-exp and all arithmetic are fp32. The forward
// also serves prefill against a KV cache (Tq < Tk, k / v a slice of a longer cache) and
// decode (Tq = 1).
//
// Two implementations behind one call: cuDNN's fused flash attention (backend graph
// API, engine picked by heuristics mode A, one execution plan per shape kept in a
// cache) and a built-in tiled kernel (tensor-core WMMA, fp32 accumulation) that runs
// whenever cuDNN cannot: head dim not a multiple of 8, misaligned pointers, a graph no
// engine accepts, or a build without cuDNN. A shape that falls back is reported once on
// stderr. POSTNAS_ATTN_BACKEND=auto|cudnn|fallback (read at the first call) or
// pn_cuda_attn_backend_set overrides the choice; "cudnn" makes an unsupported shape a
// device error (exit 3) instead of a fallback.
//
// lse holds the natural-log log-sum-exp of the scaled scores over the visible keys,
// lse[b, h, i] = ln Σ_j exp(scale · q_i · k_j), in both implementations, so a forward of
// one may feed a backward of the other.
//
// All pointers are device pointers; calls are queued on the backend's stream
// (pn_cuda_stream_set) and return without synchronising. Workspace comes from the
// scratch arena (PN_CUDA_MEM_SCRATCH). A CUDA or cuDNN failure exits 3; a cuDNN older
// than 9.6 (which lacks bottom-right masks for arbitrary lengths) exits 3 with a hint.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

// q (B, Tq, Hq, D) bf16; k, v (B, Tk, Hkv, D) bf16 with batch stride kv_batch_stride elements (0 = Tk·Hkv·D)
// so a slice of a longer KV cache (B, Tmax, Hkv, D) can be passed; o (B, Tq, Hq, D) bf16; lse (B, Hq, Tq) fp32
// (may be NULL when no backward follows). Requires Tk >= Tq; queries are aligned bottom-right: query i sits at
// absolute position Tk - Tq + i, key j at j; key j is visible iff j <= pos(i) and (window <= 0 or j > pos(i) - window).
// Hq % Hkv == 0. scale usually 1/sqrt(D).
void pn_cuda_attn_fwd(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale,
                      const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int64_t kv_batch_stride,
                      pn_bf16 *o, float *lse);
// Training backward (Tq == Tk, kv_batch_stride dense): dq (B,T,Hq,D), dk, dv (B,T,Hkv,D) bf16, written (not added);
// dout, o bf16, lse from the forward.
void pn_cuda_attn_bwd(int B, int T, int Hq, int Hkv, int D, int window, float scale,
                      const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const pn_bf16 *o, const pn_bf16 *dout,
                      const float *lse, pn_bf16 *dq, pn_bf16 *dk, pn_bf16 *dv);

// ---- implementation choice (tests, benchmarks)
typedef enum {
    PN_CUDA_ATTN_AUTO = 0,      // cuDNN where it has a plan for the shape, else the built-in kernel
    PN_CUDA_ATTN_CUDNN = 1,     // cuDNN only; a shape it refuses is a device error (exit 3)
    PN_CUDA_ATTN_FALLBACK = 2,  // the built-in kernel only
} pn_cuda_attn_backend;

// Overrides POSTNAS_ATTN_BACKEND for the calls that follow.
void pn_cuda_attn_backend_set(pn_cuda_attn_backend backend);
// Which implementation the latest pn_cuda_attn_fwd / _bwd call ran (CUDNN or FALLBACK).
pn_cuda_attn_backend pn_cuda_attn_last_backend(void);
// Number of cuDNN execution plans built so far (a repeated shape must not add one).
int pn_cuda_attn_plans_built(void);
// Version of the loaded cuDNN (e.g. 91400 for 9.14.0); 0 in a build without cuDNN.
int pn_cuda_attn_cudnn_version(void);
// The built-in kernel directly, same contracts as pn_cuda_attn_fwd / _bwd; D <= 256.
void pn_cuda_attn_fallback_fwd(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale,
                               const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int64_t kv_batch_stride,
                               pn_bf16 *o, float *lse);
void pn_cuda_attn_fallback_bwd(int B, int T, int Hq, int Hkv, int D, int window, float scale,
                               const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const pn_bf16 *o,
                               const pn_bf16 *dout, const float *lse, pn_bf16 *dq, pn_bf16 *dk, pn_bf16 *dv);
// Destroys the cuDNN handle and every cached plan (tests, shutdown).
void pn_cuda_attn_release(void);

#ifdef __cplusplus
}
#endif
