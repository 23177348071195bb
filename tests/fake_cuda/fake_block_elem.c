// fake_block_elem.c — fake twins of kernels/cuda/pn_cuda_block_elem.h: the fp32
// element-wise and per-row ops of the token-mixer blocks, run by their CPU twins
// (kernels/ops.h, blocks/block_util.h).
//
// Everything is fp32 on both sides, so the fake is the CPU op itself; what it adds is
// the CUDA header's contract where the CPU op is looser: every NULL gradient means
// "skip" (the CPU silu / l2norm / token-shift / lerp / sigmoid backward write through
// their gradient pointers unconditionally), and NULL saved statistics (rstd, mean) are
// allowed in the forwards. mul and scale have no CPU twin: plain loops.
#include "tests/fake_cuda/fake_cuda.h"
#include "blocks/block_util.h"
#include "kernels/cuda/pn_cuda_block_elem.h"
#include "kernels/ops.h"

// ---------------------------------------------------------------- activations
void pn_cuda_silu_fwd(float *y, const float *x, int64_t n) {
    if (n > 0) pn_silu_fwd(y, x, n);
}
void pn_cuda_silu_bwd(float *dx, const float *dy, const float *x, int64_t n) {
    if (dx && n > 0) pn_silu_bwd(dx, dy, x, n);
}
void pn_cuda_silu_fwd_bf16(pn_bf16 *y, const float *x, int64_t n) {
    if (n <= 0) return;
    float *t = pn_malloc((size_t)n * sizeof(float));
    pn_silu_fwd(t, x, n);
    for (int64_t i = 0; i < n; i++) y[i] = pn_f32_to_bf16(t[i]);
    free(t);
}
void pn_cuda_silu_bwd_bf16(pn_bf16 *dx, int64_t ldx, const float *dy, const float *x, int64_t rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    PN_ASSERT(ldx >= cols);
    const int64_t n = rows * cols;
    float *t = pn_calloc((size_t)n, sizeof(float));
    pn_silu_bwd(t, dy, x, n);
    for (int64_t r = 0; r < rows; r++) fk_store_bf16(dx + r * ldx, t + r * cols, cols);
    free(t);
}
void pn_cuda_sigmoid_fwd(float *y, const float *x, int64_t n) {
    if (n > 0) pn_sigmoid_fwd(y, x, n);
}
void pn_cuda_softplus_fwd(float *y, const float *x, int64_t n) {
    if (n > 0) pn_softplus_fwd(y, x, n);
}
void pn_cuda_logsigmoid_fwd(float *y, const float *x, int64_t n) {
    if (n > 0) pn_logsigmoid_fwd(y, x, n);
}
void pn_cuda_mul_fwd(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}
void pn_cuda_mul_bwd(float *da, float *db, const float *dy, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (da) da[i] += dy[i] * b[i];
        if (db) db[i] += dy[i] * a[i];
    }
}
void pn_cuda_scale(float *y, const float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = s * x[i];
}

// ---------------------------------------------------------------- norms
void pn_cuda_l2norm_fwd(float *y, float *rstd, const float *x, int64_t N, int D, float eps) {
    if (N <= 0) return;
    float *tmp = NULL;
    pn_l2norm_fwd(y, fk_or_temp(rstd, N, &tmp), x, N, D, eps);
    free(tmp);
}
void pn_cuda_l2norm_bwd(float *dx, const float *dy, const float *y, const float *rstd, int64_t N, int D) {
    if (dx && N > 0) pn_l2norm_bwd(dx, dy, y, rstd, N, D);
}
void pn_cuda_groupnorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                           int64_t N, int G, int D, float eps) {
    if (N <= 0) return;
    float *t1 = NULL, *t2 = NULL;
    pn_groupnorm_fwd(y, fk_or_temp(mean, N * G, &t1), fk_or_temp(rstd, N * G, &t2), x, w, b, N, G, D, eps);
    free(t1), free(t2);
}
void pn_cuda_groupnorm_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                           const float *mean, const float *rstd, int64_t N, int G, int D) {
    if (N > 0 && (dx || dw || db)) pn_groupnorm_bwd(dx, dw, db, dy, x, w, mean, rstd, N, G, D);
}

// ---------------------------------------------------------------- RWKV token shift
void pn_cuda_token_shift_fwd(float *delta, const float *x, const float *x_prev, int B, int T, int C) {
    if ((int64_t)B * T * C > 0) pn_token_shift_fwd(delta, x, x_prev, B, T, C);
}
void pn_cuda_token_shift_bwd(float *dx, const float *ddelta, int B, int T, int C) {
    if (dx && (int64_t)B * T * C > 0) pn_token_shift_bwd(dx, ddelta, B, T, C);
}
void pn_cuda_lerp_fwd(float *xt, const float *x, const float *delta, const float *mu, int64_t M, int C) {
    if (M > 0) pn_lerp_fwd(xt, x, delta, mu, M, C);
}
void pn_cuda_lerp_bwd(float *dx, float *ddelta, float *dmu, const float *dxt, const float *delta, const float *mu,
                      int64_t M, int C) {
    if (M <= 0 || (!dx && !ddelta && !dmu)) return;
    float *t1 = NULL, *t2 = NULL;
    pn_lerp_bwd(fk_or_temp(dx, M * C, &t1), fk_or_temp(ddelta, M * C, &t2), dmu, dxt, delta, mu, M, C);
    free(t1), free(t2);
}

// ---------------------------------------------------------------- delta-family gates
void pn_cuda_decay_gate_fwd(float *g, const float *a, const float *A_log, const float *dt_bias, int64_t N, int H) {
    if (N > 0) pn_bu_decay_fwd(g, a, A_log, dt_bias, N, H);
}
void pn_cuda_decay_gate_bwd(float *da, float *dA_log, float *ddt_bias, const float *dg, const float *g,
                            const float *a, const float *A_log, const float *dt_bias, int64_t N, int H) {
    if (N > 0 && (da || dA_log || ddt_bias)) pn_bu_decay_bwd(da, dA_log, ddt_bias, dg, g, a, A_log, dt_bias, N, H);
}
void pn_cuda_sigmoid_bwd_from_y(float *da, const float *dbeta, const float *beta, int64_t n) {
    if (da && n > 0) pn_bu_sigmoid_bwd(da, dbeta, beta, n);
}
