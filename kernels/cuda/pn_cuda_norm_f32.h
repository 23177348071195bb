// pn_cuda_norm_f32.h — extern "C" entry points of the fp32-residual-stream ops
// (kernels/cuda/norm.cu, the same kernels as the bf16-x RMSNorm): RMSNorm reading an
// fp32 x. (What is added to the stream comes in through GEMM epilogues: pn_cuda_gemm_add.)
//
// The CUDA supernet (supernet/csupernet.c) keeps its residual stream x (N, C) in fp32:
// rounding every layer's x + mixer(x) and x + mlp(x) to bf16 was the main accumulated
// error against the fp32 CPU supernet. The GEMMs and blocks still read bf16, so the
// norms take fp32 x and write the bf16 normed output they need (and, for the final
// hidden state the MSE loss compares, optionally the same values unrounded in fp32).
// Twins of kernels/ops.h's pn_rmsnorm_fwd / pn_rmsnorm_bwd with pn_cuda_ops.h's
// conventions: fp32 math, gradients fp32 and ADDED (+=), NULL = not wanted.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#ifdef __cplusplus
extern "C" {
#endif

// y = x · rstd · w over rows of D; rstd (N) fp32 = 1/sqrt(mean(x²) + eps).
// x (N, D) fp32; w (D) bf16 or NULL; y (N, D) bf16 and / or y32 (N, D) fp32 (either
// may be NULL; y = y32 rounded to nearest-even); rstd may be NULL.
void pn_cuda_rmsnorm_f32_fwd(pn_bf16 *y, float *y32, float *rstd, const float *x, const pn_bf16 *w, int64_t N, int D,
                             float eps);
// pn_cuda_rmsnorm_bwd with an fp32 x: dx (N, D) += rstd·g − x·rstd³·mean(g·x), g = dy·w;
// dw (D) += Σ_rows dy · x · rstd (either may be NULL).
void pn_cuda_rmsnorm_f32_bwd(float *dx, float *dw, const float *dy, const float *x, const pn_bf16 *w,
                             const float *rstd, int64_t N, int D);

#ifdef __cplusplus
}
#endif
