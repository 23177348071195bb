// pn_cuda_gdn.h — extern "C" entry points of the CUDA gated delta rule (kernels/cuda/gdn.cu),
// the JetBlock / Gated DeltaNet core. Twins of pn_gated_delta_fwd (kernels/ops.h).
//
// Per (batch, head) and token, with state S (K, V) fp32:
//   S' = e^{g_t} S;  u_t = β_t (v_t − S'ᵀ k_t);  S = S' + k_t u_tᵀ;  o_t = Sᵀ (scale · q_t).
// Storage: q, k, v bf16; g, beta fp32; states fp32 in the CPU op's layout (B, H, K, V)
// (the K-last layout (B, H, V, K) is not supported); o bf16 or fp32 (o_dt).
// g == NULL means g = 0 (plain delta rule). qk_l2norm != 0 normalises q and k inside the
// op, x / sqrt(Σx² + 1e-6), as the CPU op and fla do. All math is fp32.
// All pointers are device pointers; work is queued on the backend stream
// (pn_cuda_stream_get) and nothing is synchronised. Limits: 1 <= K <= 256, V >= 1.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#ifdef __cplusplus
extern "C" {
#endif

// One decode step (T = 1) for all B·H heads, the state updated in place (read once,
// written once). q, k (B, H, K); v, o (B, H, V); g, beta (B, H); state (B, H, K, V).
// g may be NULL; o may be NULL (state update only).
void pn_cuda_gated_delta_step(const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *g,
                              const float *beta, float *state, void *o, pn_cuda_dtype o_dt, int B, int H, int K, int V,
                              float scale, int qk_l2norm);

// Chunked forward (chunk 64, any T) for training and prefill: the WY/UT algorithm.
// q, k (B, T, H, K); v, o (B, T, H, V); g, beta (B, T, H); h0, ht (B, H, K, V) fp32.
// h0 NULL = zero state; ht NULL = not wanted; h0 == ht is allowed; o NULL = state only.
// Allocates fp32 scratch of B·H·T·(K + V + 1) floats (PN_CUDA_MEM_SCRATCH) for the call.
void pn_cuda_gated_delta_fwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                             const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta, const float *h0,
                             void *o, pn_cuda_dtype o_dt, float *ht);

// Chunked backward, the contract of pn_gated_delta_bwd: gradients of sum(o·dout) +
// sum(ht·dht) ADDED (+=) into the fp32 buffers dq, dk (B, T, H, K), dv (B, T, H, V), dg,
// dbeta (B, T, H), dh0 (B, H, K, V); any of them may be NULL (not wanted); dht may be NULL
// (zero); dout (B, T, H, V) fp32. With qk_l2norm the gradients flow back through the
// in-op normalisation. Correctness-first version: one block per (b, h), so it is slow
// at small B·H; scratch: B·H·(⌈T/64⌉ + 3)·K·V + O(B·T·H·(K + V)) floats for the call.
void pn_cuda_gated_delta_bwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                             const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta, const float *h0,
                             const float *dout, const float *dht, float *dq, float *dk, float *dv, float *dg,
                             float *dbeta, float *dh0);

#ifdef __cplusplus
}
#endif
