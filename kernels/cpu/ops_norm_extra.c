// ops_norm_extra.c — the norms the token mixers need beyond plain RMSNorm (CPU reference).
//
// Gated RMSNorm is the output norm of JetBlock / Gated DeltaNet / GLA / RetNet
// (fla's FusedRMSNormGated: rmsnorm(x)·w·silu(gate)); l2norm normalises q and k
// per head (fla's l2norm, eps inside the square root); group norm is RWKV7's
// per-head output norm (biased variance, as torch.nn.GroupNorm). Rows are
// independent, so forward and the dx part of backward run in parallel over rows;
// weight gradients are a reduction over rows and run in parallel over columns
// instead, which keeps the sums deterministic. Every forward here reads a row
// completely before writing it, so y may alias x (the blocks normalise q, k in place).
#include "kernels/ops.h"
#include <math.h>

static inline float ne_sigmoid(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

// ---------------------------------------------------------------- gated RMSNorm

void pn_rmsnorm_gated_fwd(float *y, float *rstd, const float *x, const float *w, const float *gate, int64_t N, int D,
                          float eps) {
#pragma omp parallel for schedule(static) if (N * D > 32768)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * D;
        float *yr = y + n * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        float r = 1.0f / sqrtf((float)(ss / D) + eps);
        rstd[n] = r;
        for (int d = 0; d < D; d++) {
            float v = xr[d] * r * (w ? w[d] : 1.0f);
            if (gate) {
                float g = gate[n * D + d];
                v *= g * ne_sigmoid(g);
            }
            yr[d] = v;
        }
    }
}

// With n = x·rstd and a = w·silu(gate): y = n·a, so dn = dy·a and
// dx = rstd·(dn − n·mean(dn·n)).
void pn_rmsnorm_gated_bwd(float *dx, float *dw, float *dgate, const float *dy, const float *x, const float *w,
                          const float *gate, const float *rstd, int64_t N, int D) {
    if (dx || dgate) {
#pragma omp parallel for schedule(static) if (N * D > 32768)
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + n * D, *dyr = dy + n * D;
            float r = rstd[n];
            double dot = 0;
            for (int d = 0; d < D; d++) {
                float wd = w ? w[d] : 1.0f;
                float a = wd, nd = xr[d] * r;
                if (gate) {
                    float g = gate[n * D + d], s = ne_sigmoid(g);
                    a *= g * s;
                    if (dgate) dgate[n * D + d] += dyr[d] * nd * wd * s * (1.0f + g * (1.0f - s));
                }
                dot += (double)dyr[d] * a * nd;
            }
            if (!dx) continue;
            float mean = (float)(dot / D);
            for (int d = 0; d < D; d++) {
                float a = w ? w[d] : 1.0f;
                if (gate) {
                    float g = gate[n * D + d];
                    a *= g * ne_sigmoid(g);
                }
                float nd = xr[d] * r;
                dx[n * D + d] += r * (dyr[d] * a - nd * mean);
            }
        }
    }
    if (dw) {
#pragma omp parallel for schedule(static) if (N * D > 32768)
        for (int d = 0; d < D; d++) {
            double acc = 0;
            for (int64_t n = 0; n < N; n++) {
                float v = dy[n * D + d] * x[n * D + d] * rstd[n];
                if (gate) {
                    float g = gate[n * D + d];
                    v *= g * ne_sigmoid(g);
                }
                acc += v;
            }
            dw[d] += (float)acc;
        }
    }
}

// ---------------------------------------------------------------- L2 norm

void pn_l2norm_fwd(float *y, float *rstd, const float *x, int64_t N, int D, float eps) {
#pragma omp parallel for schedule(static) if (N * D > 32768)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        float r = 1.0f / sqrtf((float)ss + eps);
        rstd[n] = r;
        for (int d = 0; d < D; d++) y[n * D + d] = xr[d] * r;
    }
}

// dy_j/dx_i = rstd·(δ_ij − y_i y_j), so dx = rstd·(dy − y·(dy·y)).
void pn_l2norm_bwd(float *dx, const float *dy, const float *y, const float *rstd, int64_t N, int D) {
#pragma omp parallel for schedule(static) if (N * D > 32768)
    for (int64_t n = 0; n < N; n++) {
        const float *yr = y + n * D, *dyr = dy + n * D;
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)dyr[d] * yr[d];
        float r = rstd[n], fd = (float)dot;
        for (int d = 0; d < D; d++) dx[n * D + d] += r * (dyr[d] - yr[d] * fd);
    }
}

// ---------------------------------------------------------------- group norm

void pn_groupnorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b, int64_t N,
                      int G, int D, float eps) {
    int64_t C = (int64_t)G * D;
#pragma omp parallel for schedule(static) if (N * C > 32768)
    for (int64_t ng = 0; ng < N * G; ng++) {
        int64_t n = ng / G;
        int g = (int)(ng % G);
        const float *xr = x + n * C + (int64_t)g * D;
        float *yr = y + n * C + (int64_t)g * D;
        double s = 0, ss = 0;
        for (int d = 0; d < D; d++) s += xr[d];
        double mu = s / D;
        for (int d = 0; d < D; d++) ss += (xr[d] - mu) * (xr[d] - mu);
        float r = 1.0f / sqrtf((float)(ss / D) + eps);
        mean[ng] = (float)mu;
        rstd[ng] = r;
        for (int d = 0; d < D; d++) {
            int c = g * D + d;
            float xh = (xr[d] - (float)mu) * r;
            yr[d] = xh * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
        }
    }
}

// With xh = (x − μ)·rstd and dxh = dy·w: dx = rstd·(dxh − mean(dxh) − xh·mean(dxh·xh)).
void pn_groupnorm_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                      const float *mean, const float *rstd, int64_t N, int G, int D) {
    int64_t C = (int64_t)G * D;
    if (dx) {
#pragma omp parallel for schedule(static) if (N * C > 32768)
        for (int64_t ng = 0; ng < N * G; ng++) {
            int64_t off = (ng / G) * C + (int64_t)(ng % G) * D;
            int c0 = (int)(ng % G) * D;
            float mu = mean[ng], r = rstd[ng];
            double s1 = 0, s2 = 0;
            for (int d = 0; d < D; d++) {
                float dxh = dy[off + d] * (w ? w[c0 + d] : 1.0f);
                s1 += dxh;
                s2 += (double)dxh * (x[off + d] - mu) * r;
            }
            float m1 = (float)(s1 / D), m2 = (float)(s2 / D);
            for (int d = 0; d < D; d++) {
                float dxh = dy[off + d] * (w ? w[c0 + d] : 1.0f);
                float xh = (x[off + d] - mu) * r;
                dx[off + d] += r * (dxh - m1 - xh * m2);
            }
        }
    }
    if (dw || db) {
#pragma omp parallel for schedule(static) if (N * C > 32768)
        for (int64_t c = 0; c < C; c++) {
            int g = (int)(c / D);
            double aw = 0, ab = 0;
            for (int64_t n = 0; n < N; n++) {
                float d = dy[n * C + c];
                aw += (double)d * (x[n * C + c] - mean[n * G + g]) * rstd[n * G + g];
                ab += d;
            }
            if (dw) dw[c] += (float)aw;
            if (db) db[c] += (float)ab;
        }
    }
}
