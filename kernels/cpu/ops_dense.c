// ops_dense.c — matrix products through OpenBLAS (every matmul of the CPU path).
//
// nn.Linear stores w as (N, K), so y = x wᵀ is one sgemm with B transposed; the
// backward is two more sgemms accumulating (beta = 1) into dx and dw.
#include "kernels/ops.h"
#include "core/common.h"
#include "core/progress.h"
#include <cblas.h>
#include <omp.h>

static int g_stats_on = 0;
static pn_gemm_stats g_stats;

void pn_gemm_stats_enable(int on) { g_stats_on = on; }
void pn_gemm_stats_reset(void) { memset(&g_stats, 0, sizeof g_stats); }
pn_gemm_stats pn_gemm_stats_get(void) { return g_stats; }

void pn_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
             const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    double t0 = 0;
    int timed = g_stats_on && !omp_in_parallel();
    if (g_stats_on && !timed) {
#pragma omp atomic
        g_stats.inner_flops += 2.0 * (double)M * (double)N * (double)K;
    }
    if (timed) t0 = pn_now_seconds();
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (blasint)M,
                (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
    if (timed) {
        g_stats.seconds += pn_now_seconds() - t0;
        g_stats.flops += 2.0 * (double)M * (double)N * (double)K;
        g_stats.calls++;
    }
}

void pn_linear_fwd(float *y, const float *x, const float *w, const float *b, int64_t M, int K, int N) {
    // y (M, N) = x (M, K) · w (N, K)ᵀ
    pn_gemm(0, 1, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
    if (b) {
#pragma omp parallel for schedule(static) if (M * N > 65536)
        for (int64_t m = 0; m < M; m++)
            for (int n = 0; n < N; n++) y[m * N + n] += b[n];
    }
}

void pn_linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int64_t M, int K,
                   int N) {
    if (dx) pn_gemm(0, 0, M, K, N, 1.0f, dy, N, w, K, 1.0f, dx, K);    // dx (M,K) += dy (M,N) · w (N,K)
    if (dw) pn_gemm(1, 0, N, K, M, 1.0f, dy, N, x, K, 1.0f, dw, K);    // dw (N,K) += dyᵀ (N,M) · x (M,K)
    if (db) {
        for (int64_t m = 0; m < M; m++)
            for (int n = 0; n < N; n++) db[n] += dy[m * N + n];
    }
}
