// fake_distill.c — fake twins of kernels/cuda/pn_cuda_distill.h (distillation losses,
// gradient sum of squares and scaling) on the CPU.
//
// The KL runs supernet/distill.c's pn_distill_kl one row at a time on the fp32 values
// of the bf16 inputs (so the per-row sums the supernet adds up are available) and
// rounds the gradient to bf16 once; with scale = grad_mul / τ the CPU twin's gradient
// τ · scale · (q − p) is grad_mul · (q − p). The MSE and sum of squares follow the
// kernels' fixed chunks (PN_CUDA_MSE_CHUNK, PN_CUDA_NORM_BLOCK) with double sums.
#include "tests/fake_cuda/fake_cuda.h"
#include "kernels/cuda/pn_cuda_distill.h"
#include "supernet/distill.h"
#include <math.h>

void pn_cuda_distill_mse_async(float *ds, double *part, const pn_bf16 *s, const pn_bf16 *t, int64_t n,
                               float grad_mul) {
    if (n <= 0) return;
    const int64_t chunks = (n + PN_CUDA_MSE_CHUNK - 1) / PN_CUDA_MSE_CHUNK;
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t lo = c * PN_CUDA_MSE_CHUNK, hi = PN_MIN(n, lo + PN_CUDA_MSE_CHUNK);
        double acc = 0;
        for (int64_t i = lo; i < hi; i++) {
            const float d = pn_bf16_to_f32(s[i]) - pn_bf16_to_f32(t[i]);
            acc += (double)d * (double)d;
            if (ds) ds[i] = grad_mul * d;
        }
        part[c] = acc;
    }
}

void pn_cuda_distill_mse_f32_async(float *ds, double *part, const float *s, const float *t, int64_t n,
                                   float grad_mul) {
    if (n <= 0) return;
    const int64_t chunks = (n + PN_CUDA_MSE_CHUNK - 1) / PN_CUDA_MSE_CHUNK;
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t lo = c * PN_CUDA_MSE_CHUNK, hi = PN_MIN(n, lo + PN_CUDA_MSE_CHUNK);
        double acc = 0;
        for (int64_t i = lo; i < hi; i++) {
            const double d = (double)s[i] - (double)t[i];
            acc += d * d;
            if (ds) ds[i] = (float)((double)grad_mul * d);
        }
        part[c] = acc;
    }
}

double pn_cuda_distill_mse(float *ds, const pn_bf16 *s, const pn_bf16 *t, int64_t n, float scale) {
    if (n <= 0) return 0.0;
    float *sf = fk_from_bf16(s, n), *tf = fk_from_bf16(t, n);
    const double r = pn_distill_mse(ds, sf, tf, n, scale);
    free(sf), free(tf);
    return r;
}

void pn_cuda_distill_kl_async(pn_bf16 *dls, double *row_kl, const pn_bf16 *ls, const pn_bf16 *lt, int64_t N, int V,
                              float tau, float grad_mul) {
    if (N <= 0 || V <= 0) return;
    float *a = fk_alloc(V), *b = fk_alloc(V), *g = fk_alloc(V);
    const double t = (double)tau;
    for (int64_t r = 0; r < N; r++) {
        for (int v = 0; v < V; v++) {
            a[v] = pn_bf16_to_f32(ls[r * V + v]);
            b[v] = pn_bf16_to_f32(lt[r * V + v]);
        }
        const double kl = pn_distill_kl(dls ? g : NULL, a, b, 1, V, t, (float)((double)grad_mul / t));
        row_kl[r] = kl / (t * t);
        if (dls) fk_store_bf16(dls + r * V, g, V);
    }
    free(a), free(b), free(g);
}

double pn_cuda_distill_kl(pn_bf16 *dls, const pn_bf16 *ls, const pn_bf16 *lt, int64_t N, int V, double tau,
                          float scale) {
    if (N <= 0 || V <= 0) return 0.0;
    float *a = fk_from_bf16(ls, N * V), *b = fk_from_bf16(lt, N * V);
    float *g = dls ? fk_alloc(N * V) : NULL;
    const double r = pn_distill_kl(g, a, b, N, V, tau, scale);
    if (dls) fk_store_bf16(dls, g, N * V);
    free(a), free(b), free(g);
    return r;
}

void pn_cuda_sumsq_async(double *part, const float *x, int64_t n) {
    const int64_t nb = (n + PN_CUDA_NORM_BLOCK - 1) / PN_CUDA_NORM_BLOCK;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * PN_CUDA_NORM_BLOCK, hi = PN_MIN(n, lo + PN_CUDA_NORM_BLOCK);
        double s = 0;
        for (int64_t i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
        part[b] = s;
    }
}

void pn_cuda_scale_inplace(float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}
