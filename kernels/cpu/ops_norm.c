// ops_norm.c — RMSNorm forward/backward (the decoder's input, post-attention and
// final norms, and Qwen3's per-head q/k norms).
//
// y = x · rstd · w with rstd = 1/sqrt(mean(x²) + eps). The mean of squares is
// accumulated in double: it is cheap here and keeps rstd independent of D.
// Backward (per row, g = dy · w):  dx = rstd · g − x · rstd³ · mean(g · x);
// dw += Σ_rows dy · x · rstd. dw is reduced in a separate column-parallel pass
// so threads never write the same element.
#include "kernels/ops.h"
#include "core/common.h"
#include <math.h>

void pn_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t N, int D, float eps) {
#pragma omp parallel for schedule(static) if (N * D > 32768)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * D;
        float *yr = y + n * D;
        double ss = 0.0;
        for (int d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        float r = (float)(1.0 / sqrt(ss / D + (double)eps));
        if (rstd) rstd[n] = r;
        for (int d = 0; d < D; d++) yr[d] = xr[d] * r * (w ? w[d] : 1.0f);
    }
}

void pn_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                    int64_t N, int D) {
    if (dx) {
#pragma omp parallel for schedule(static) if (N * D > 32768)
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + n * D, *gr = dy + n * D;
            float *dxr = dx + n * D;
            double r = rstd[n];
            double dot = 0.0;
            for (int d = 0; d < D; d++) dot += (double)gr[d] * (w ? w[d] : 1.0f) * xr[d];
            double c = r * r * r * dot / D;
            for (int d = 0; d < D; d++) dxr[d] += (float)(r * gr[d] * (w ? w[d] : 1.0f) - c * xr[d]);
        }
    }
    if (dw) {
#pragma omp parallel for schedule(static) if (N * D > 32768)
        for (int d = 0; d < D; d++) {
            double acc = 0.0;
            for (int64_t n = 0; n < N; n++) acc += (double)dy[n * D + d] * x[n * D + d] * rstd[n];
            dw[d] += (float)acc;
        }
    }
}
