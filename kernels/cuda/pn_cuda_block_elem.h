// pn_cuda_block_elem.h — extern "C" entry points of the small element-wise and per-row
// CUDA ops the token-mixer blocks need besides GEMMs and recurrences
// (kernels/cuda/block_elem.cu).
//
// Each is the exact twin of the CPU op of the same name (kernels/ops.h, or
// blocks/block_util.h for the pn_bu_* ones) with the same argument order, shapes and
// semantics — fp32 in, fp32 out, backward ops ADD (+=) into their gradients, NULL
// gradient = skip — only the pointers are device pointers. fp32 storage keeps them
// simple and exact; a block converts to bf16 (pn_cuda_f32_to_bf16) only where a
// tensor-core GEMM or a recurrence reads the tensor — or, for silu, the op itself
// writes the bf16 operand (the *_bf16 pair: one pass instead of op + conversion). Reductions over rows (dw, db,
// dA_log, ddt_bias, dmu) run in a fixed order (deterministic, no atomics).
// Queued on the backend stream (pn_cuda_stream_get); nothing synchronises.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

// ---- activations (twins of kernels/ops.h ops_act.c; y may alias x)
void pn_cuda_silu_fwd(float *y, const float *x, int64_t n);
void pn_cuda_silu_bwd(float *dx, const float *dy, const float *x, int64_t n);       // dx += dy · silu'(x)
// bf16 results, WRITTEN: y = bf16(silu(x)); dx = bf16(dy · silu'(x)) (fp32 math as above).
// The backward's dy, x are (rows, cols) and dx is a (rows, cols) slice of rows ldx ≥ cols
// apart (columns cols..ldx−1 untouched), so it can fill its part of a wider gradient matrix.
void pn_cuda_silu_fwd_bf16(pn_bf16 *y, const float *x, int64_t n);
void pn_cuda_silu_bwd_bf16(pn_bf16 *dx, int64_t ldx, const float *dy, const float *x, int64_t rows, int cols);
void pn_cuda_sigmoid_fwd(float *y, const float *x, int64_t n);
void pn_cuda_softplus_fwd(float *y, const float *x, int64_t n);                     // torch threshold 20
void pn_cuda_logsigmoid_fwd(float *y, const float *x, int64_t n);
// y = a · b element-wise (y may alias a or b); the backward adds da += dy · b, db += dy · a.
void pn_cuda_mul_fwd(float *y, const float *a, const float *b, int64_t n);
void pn_cuda_mul_bwd(float *da, float *db, const float *dy, const float *a, const float *b, int64_t n);
// y = s · x (y may alias x)
void pn_cuda_scale(float *y, const float *x, float s, int64_t n);

// ---- norms (twins of ops_norm.c)
void pn_cuda_l2norm_fwd(float *y, float *rstd, const float *x, int64_t N, int D, float eps);
void pn_cuda_l2norm_bwd(float *dx, const float *dy, const float *y, const float *rstd, int64_t N, int D);
void pn_cuda_groupnorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                           int64_t N, int G, int D, float eps);
void pn_cuda_groupnorm_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                           const float *mean, const float *rstd, int64_t N, int G, int D);

// ---- RWKV token shift (twins of ops_shift.c)
void pn_cuda_token_shift_fwd(float *delta, const float *x, const float *x_prev, int B, int T, int C);
void pn_cuda_token_shift_bwd(float *dx, const float *ddelta, int B, int T, int C);
void pn_cuda_lerp_fwd(float *xt, const float *x, const float *delta, const float *mu, int64_t M, int C);
void pn_cuda_lerp_bwd(float *dx, float *ddelta, float *dmu, const float *dxt, const float *delta, const float *mu,
                      int64_t M, int C);

// ---- delta-family gates (twins of blocks/block_util.h)
// g (N, H) = −exp(A_log[h]) · softplus(a[n, h] + dt_bias[h])
void pn_cuda_decay_gate_fwd(float *g, const float *a, const float *A_log, const float *dt_bias, int64_t N, int H);
void pn_cuda_decay_gate_bwd(float *da, float *dA_log, float *ddt_bias, const float *dg, const float *g,
                            const float *a, const float *A_log, const float *dt_bias, int64_t N, int H);
// da += dβ · β (1 − β) for β = sigmoid(a)
void pn_cuda_sigmoid_bwd_from_y(float *da, const float *dbeta, const float *beta, int64_t n);

#ifdef __cplusplus
}
#endif
