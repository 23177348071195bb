// fake_norm_f32.c — fake twins of kernels/cuda/pn_cuda_norm_f32.h (RMSNorm on an fp32
// x, bf16 + fp32 add) on the CPU.
//
// x is already fp32, so the CPU twins (pn_rmsnorm_fwd / pn_rmsnorm_bwd) read it as is;
// only the bf16 weight is widened. The bf16 output is the fp32 output rounded once
// (nearest-even), exactly as the kernel stores it. The add widens b and adds in fp32.
#include "tests/fake_cuda/fake_cuda.h"
#include "kernels/cuda/pn_cuda_norm_f32.h"
#include "kernels/ops.h"

void pn_cuda_rmsnorm_f32_fwd(pn_bf16 *y, float *y32, float *rstd, const float *x, const pn_bf16 *w, int64_t N, int D,
                             float eps) {
    if (N <= 0 || D <= 0) return;
    const int64_t n = N * D;
    float *wf = fk_from_bf16(w, D), *yf = fk_alloc(n);
    pn_rmsnorm_fwd(yf, rstd, x, wf, N, D, eps);  // rstd NULL: the CPU op skips it
    if (y) fk_store_bf16(y, yf, n);
    if (y32) memcpy(y32, yf, (size_t)n * sizeof(float));
    free(wf), free(yf);
}

void pn_cuda_rmsnorm_f32_bwd(float *dx, float *dw, const float *dy, const float *x, const pn_bf16 *w,
                             const float *rstd, int64_t N, int D) {
    if (N <= 0 || D <= 0 || (!dx && !dw)) return;
    float *wf = fk_from_bf16(w, D);
    pn_rmsnorm_bwd(dx, dw, dy, x, wf, rstd, N, D);
    free(wf);
}

