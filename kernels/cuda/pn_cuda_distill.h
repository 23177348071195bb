// pn_cuda_distill.h — extern "C" entry points of the distillation-loss kernels
// (kernels/cuda/distill_loss.cu) and the gradient reductions the CUDA supernet's
// optimizer path needs.
//
// The losses are the twins of supernet/distill.h's pn_distill_mse / pn_distill_kl,
// with the storage of pn_cuda_ops.h: inputs bf16 (N, C) hidden states and (N, V)
// logits, all math fp32, every partial sum in double and summed in a fixed order
// (the value never depends on the launch configuration). Each loss is fused with its
// backward: one pass for MSE, two passes over each logit row for KL (online
// log-sum-exp of both rows, then p, q, the row KL and the gradient), and the gradient
// output is OVERWRITTEN (not added), as on the CPU. The KL gradient is bf16 (the
// LM-head GEMM reads it) and may overwrite the student logits in place; the MSE
// gradient is fp32.
//
// The *_async forms take the gradient multiplier directly and leave per-chunk / per-row
// partial sums on the device, so the supernet can run the loss over row chunks of the
// logits (normalising by the total row count) and sum once at the end; the plain forms
// have pn_distill_*'s signature with device buffers, sync, and return the loss.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#ifdef __cplusplus
extern "C" {
#endif

// Elements per partial sum of the MSE (as supernet/distill.c's MSE_CHUNK) and of the
// gradient sum of squares (as supernet/optim.c's NORM_BLOCK).
#define PN_CUDA_MSE_CHUNK 4096
#define PN_CUDA_NORM_BLOCK 8192

// part (ceil(n / PN_CUDA_MSE_CHUNK)) double ← Σ (s − t)² per chunk of n elements;
// ds (n) fp32, if not NULL, is OVERWRITTEN with grad_mul · (s − t).
void pn_cuda_distill_mse_async(float *ds, double *part, const pn_bf16 *s, const pn_bf16 *t, int64_t n,
                               float grad_mul);
// pn_distill_mse: mean over n of (s − t)²; ds = scale · 2 (s − t) / n. Syncs.
double pn_cuda_distill_mse(float *ds, const pn_bf16 *s, const pn_bf16 *t, int64_t n, float scale);
// pn_cuda_distill_mse_async on fp32 hidden states (the CUDA supernet's final norm
// output with its fp32 residual stream); the same chunks and sums, s − t in double.
void pn_cuda_distill_mse_f32_async(float *ds, double *part, const float *s, const float *t, int64_t n,
                                   float grad_mul);

// Per row r of N rows of V logits at temperature tau: p = softmax(lt / τ) (teacher),
// q = softmax(ls / τ) (student); row_kl (N) double ← Σ_v p (log p − log q) (not
// τ²-scaled); dls (N, V) bf16, if not NULL, is OVERWRITTEN with grad_mul · (q − p)
// and may equal ls.
void pn_cuda_distill_kl_async(pn_bf16 *dls, double *row_kl, const pn_bf16 *ls, const pn_bf16 *lt, int64_t N, int V,
                              float tau, float grad_mul);
// pn_distill_kl: τ² · mean over rows of the row KL; dls = scale · τ (q − p) / N. Syncs.
double pn_cuda_distill_kl(pn_bf16 *dls, const pn_bf16 *ls, const pn_bf16 *lt, int64_t N, int V, double tau,
                          float scale);

// part (ceil(n / PN_CUDA_NORM_BLOCK)) double ← Σ x² per block of n fp32 elements.
void pn_cuda_sumsq_async(double *part, const float *x, int64_t n);
// x *= s over n fp32 elements (gradient clipping / accumulation averaging).
void pn_cuda_scale_inplace(float *x, float s, int64_t n);

#ifdef __cplusplus
}
#endif
