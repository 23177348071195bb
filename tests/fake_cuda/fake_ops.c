// fake_ops.c — fake twins of kernels/cuda/pn_cuda_ops.h's training ops (GEMM, linear,
// RMSNorm, RoPE, SwiGLU, adds, embedding, cross-entropy, AdamW) on the CPU.
//
// Each converts its bf16 operands to fp32, runs the CPU op of kernels/ops.h (or
// supernet/optim.c's AdamW) and writes its outputs in the CUDA op's dtype, rounding
// to bf16 once, at the end, as the GPU's fp32-accumulating kernels do. Contract
// details of pn_cuda_ops.h kept: backward ops ADD into fp32 gradients (NULL = not
// wanted), pn_cuda_linear_bwd's dx may be bf16 (read, add in fp32, round), the GEMM
// writes only the M×N entries of a strided C, cross-entropy OVERWRITES bf16 dlogits,
// possibly in place over the logits, with zeros on ignored rows.
#include "tests/fake_cuda/fake_cuda.h"
#include "kernels/ops.h"
#include "supernet/optim.h"
#include <math.h>

// fp32 copy of the strided (rows, cols) bf16 matrix at A with leading dimension ld, as a
// dense (rows, cols) matrix.
static float *strided_from_bf16(const pn_bf16 *A, int64_t rows, int64_t cols, int64_t ld) {
    float *f = fk_alloc(rows * cols);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) f[r * cols + c] = pn_bf16_to_f32(A[r * ld + c]);
    return f;
}

// ---------------------------------------------------------------- GEMM, linear
void pn_cuda_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const pn_bf16 *A,
                  int64_t lda, const pn_bf16 *B, int64_t ldb, float beta, void *C, pn_cuda_dtype c_dt, int64_t ldc,
                  const pn_bf16 *bias) {
    if (M <= 0 || N <= 0) return;
    PN_ASSERT(K >= 0 && ldc >= N);
    PN_ASSERT(c_dt == PN_CUDA_BF16 || c_dt == PN_CUDA_F32);
    const int64_t ar = trans_a ? K : M, ac = trans_a ? M : K;
    const int64_t br = trans_b ? N : K, bc = trans_b ? K : N;
    PN_ASSERT(lda >= ac && ldb >= bc);
    float *a = strided_from_bf16(A, ar, ac, lda);
    float *b = strided_from_bf16(B, br, bc, ldb);
    float *c = fk_zeros(M * N);
    if (beta != 0.0f)  // beta = 0 never reads C (it may hold NaN poison), as cuBLASLt
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++)
                c[m * N + n] = c_dt == PN_CUDA_F32 ? ((const float *)C)[m * ldc + n]
                                                   : pn_bf16_to_f32(((const pn_bf16 *)C)[m * ldc + n]);
    if (K > 0)
        pn_gemm(trans_a, trans_b, M, N, K, alpha, a, ac, b, bc, beta, c, N);
    else
        for (int64_t i = 0; i < M * N; i++) c[i] *= beta;
    if (bias)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) c[m * N + n] += pn_bf16_to_f32(bias[n]);
    for (int64_t m = 0; m < M; m++) fk_store(c_dt == PN_CUDA_F32 ? (void *)((float *)C + m * ldc)
                                                                 : (void *)((pn_bf16 *)C + m * ldc),
                                             c_dt, c + m * N, N);
    free(a), free(b), free(c);
}

void pn_cuda_gemm_add(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const pn_bf16 *A, int64_t lda,
                      const pn_bf16 *B, int64_t ldb, const float *C, float *D, int64_t ldc, const pn_bf16 *bias) {
    if (M <= 0 || N <= 0) return;
    PN_ASSERT(C != D);  // the out-of-place form; overlapping C and D is a bug on the GPU
    for (int64_t m = 0; m < M; m++) memcpy(D + m * ldc, C + m * ldc, (size_t)N * sizeof(float));
    pn_cuda_gemm(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, D, PN_CUDA_F32, ldc, bias);
}

void pn_cuda_linear_fwd(void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const pn_bf16 *w, const pn_bf16 *b, int64_t M,
                        int K, int N) {
    if (M <= 0 || N <= 0) return;
    float *xf = fk_from_bf16(x, M * K), *wf = fk_from_bf16(w, (int64_t)N * K), *bf = fk_from_bf16(b, N);
    float *yf = fk_alloc(M * N);
    pn_linear_fwd(yf, xf, wf, bf, M, K, N);
    fk_store(y, y_dt, yf, M * N);
    free(xf), free(wf), free(bf), free(yf);
}

void pn_cuda_linear_bwd(void *dx, pn_cuda_dtype dx_dt, float *dw, float *db, const pn_bf16 *dy, const pn_bf16 *x,
                        const pn_bf16 *w, int64_t M, int K, int N) {
    if (M <= 0 || (!dx && !dw && !db)) return;
    float *dyf = fk_from_bf16(dy, M * N);
    float *xf = dw ? fk_from_bf16(x, M * K) : NULL;
    float *wf = dx ? fk_from_bf16(w, (int64_t)N * K) : NULL;
    float *dxf = NULL;
    if (dx) dxf = dx_dt == PN_CUDA_F32 ? (float *)dx : fk_from_bf16((const pn_bf16 *)dx, M * K);
    pn_linear_bwd(dxf, dw, db, dyf, xf, wf, M, K, N);
    if (dx && dx_dt == PN_CUDA_BF16) {
        fk_store_bf16((pn_bf16 *)dx, dxf, M * K);
        free(dxf);
    }
    free(dyf), free(xf), free(wf);
}

void pn_cuda_gemm_release(void) {}
// The CPU twin has no algorithms to choose between: the setting is kept and reported only.
static int g_fake_tune = -1;
int pn_cuda_gemm_autotune_set(int n) {
    const int old = g_fake_tune;
    g_fake_tune = n;
    return old;
}
int pn_cuda_gemm_autotune_get(void) { return g_fake_tune < 0 ? 0 : g_fake_tune; }
void pn_cuda_gemm_autotune_stats(size_t *tuned, size_t *changed) {
    if (tuned) *tuned = 0;
    if (changed) *changed = 0;
}

// ---------------------------------------------------------------- norms
void pn_cuda_rmsnorm_fwd(pn_bf16 *y, float *rstd, const pn_bf16 *x, const pn_bf16 *w, int64_t N, int D, float eps) {
    if (N <= 0) return;
    float *xf = fk_from_bf16(x, N * D), *wf = fk_from_bf16(w, D), *yf = fk_alloc(N * D);
    pn_rmsnorm_fwd(yf, rstd, xf, wf, N, D, eps);
    fk_store_bf16(y, yf, N * D);
    free(xf), free(wf), free(yf);
}

void pn_cuda_rmsnorm_bwd(float *dx, float *dw, const float *dy, const pn_bf16 *x, const pn_bf16 *w, const float *rstd,
                         int64_t N, int D) {
    if (N <= 0 || (!dx && !dw)) return;
    float *xf = fk_from_bf16(x, N * D), *wf = fk_from_bf16(w, D);
    pn_rmsnorm_bwd(dx, dw, dy, xf, wf, rstd, N, D);
    free(xf), free(wf);
}

// ---------------------------------------------------------------- rope
void pn_cuda_rope_fwd(pn_bf16 *x, int B, int T, int H, int D, int64_t pos0, float theta) {
    PN_ASSERT(D % 2 == 0 && D <= 1024);
    const int64_t n = (int64_t)B * T * H * D;
    if (n <= 0) return;
    float *xf = fk_from_bf16(x, n);
    pn_rope_fwd(xf, B, T, H, D, pos0, theta);
    fk_store_bf16(x, xf, n);
    free(xf);
}

void pn_cuda_rope_bwd(float *dx, int B, int T, int H, int D, int64_t pos0, float theta) {
    PN_ASSERT(D % 2 == 0 && D <= 1024);
    if ((int64_t)B * T * H * D <= 0) return;
    pn_rope_bwd(dx, B, T, H, D, pos0, theta);
}

// ---------------------------------------------------------------- elementwise
// SwiGLU on rows: gate, up (and dgate, dup) rows ld apart; y, dy contiguous.
void pn_cuda_swiglu_fwd(pn_bf16 *y, const pn_bf16 *gate, const pn_bf16 *up, int64_t ld, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    PN_ASSERT(ld >= cols);
    const int64_t n = rows * cols;
    float *g = strided_from_bf16(gate, rows, cols, ld), *u = strided_from_bf16(up, rows, cols, ld), *yf = fk_alloc(n);
    pn_swiglu_fwd(yf, g, u, n);
    fk_store_bf16(y, yf, n);
    free(g), free(u), free(yf);
}

void pn_cuda_swiglu_bwd(float *dgate, float *dup, const float *dy, const pn_bf16 *gate, const pn_bf16 *up, int64_t ld,
                        int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0 || (!dgate && !dup)) return;
    PN_ASSERT(ld >= cols);
    const int64_t n = rows * cols;
    float *g = strided_from_bf16(gate, rows, cols, ld), *u = strided_from_bf16(up, rows, cols, ld);
    float *dg = pn_calloc((size_t)n, sizeof(float)), *du = pn_calloc((size_t)n, sizeof(float));
    pn_swiglu_bwd(dg, du, dy, g, u, n);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            if (dgate) dgate[r * ld + c] += dg[r * cols + c];
            if (dup) dup[r * ld + c] += du[r * cols + c];
        }
    free(g), free(u), free(dg), free(du);
}

void pn_cuda_swiglu_bwd_bf16(pn_bf16 *dgate, pn_bf16 *dup, const float *dy, const pn_bf16 *gate, const pn_bf16 *up,
                             int64_t ld, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    PN_ASSERT(ld >= cols);
    const int64_t n = rows * cols;
    float *g = strided_from_bf16(gate, rows, cols, ld), *u = strided_from_bf16(up, rows, cols, ld);
    float *dg = pn_calloc((size_t)n, sizeof(float)), *du = pn_calloc((size_t)n, sizeof(float));
    pn_swiglu_bwd(dg, du, dy, g, u, n);
    for (int64_t r = 0; r < rows; r++) {
        fk_store_bf16(dgate + r * ld, dg + r * cols, cols);
        fk_store_bf16(dup + r * ld, du + r * cols, cols);
    }
    free(g), free(u), free(dg), free(du);
}

void pn_cuda_add(pn_bf16 *y, const pn_bf16 *a, const pn_bf16 *b, int64_t n) {
    if (n <= 0) return;
    float *af = fk_from_bf16(a, n), *bf = fk_from_bf16(b, n), *yf = fk_alloc(n);
    pn_add(yf, af, bf, n);
    fk_store_bf16(y, yf, n);
    free(af), free(bf), free(yf);
}

void pn_cuda_add_inplace(float *y, const float *x, int64_t n) {
    if (n > 0) pn_add_inplace(y, x, n);
}

// ---------------------------------------------------------------- embedding, loss
void pn_cuda_embedding_fwd(pn_bf16 *y, const int64_t *ids, const pn_bf16 *table, int64_t N, int C) {
    // bf16 rows copied as bits: exactly what the fp32 round trip of the CPU op gives.
    for (int64_t n = 0; n < N; n++) {
        PN_ASSERT(ids[n] >= 0);
        memcpy(y + n * C, table + ids[n] * C, (size_t)C * sizeof(pn_bf16));
    }
}

void pn_cuda_embedding_bwd(float *dtable, const float *dy, const int64_t *ids, int64_t N, int C) {
    if (!dtable || N <= 0) return;
    for (int64_t n = 0; n < N; n++) PN_ASSERT(ids[n] >= 0);
    pn_embedding_bwd(dtable, dy, ids, N, C);
}

// Row losses (fp32, lse − z[target], 0 on ignored rows) and the bf16 gradient; returns
// the number of counted rows. The logits are copied to fp32 before anything is written,
// so dlogits may alias them.
static int64_t cross_entropy_rows(pn_bf16 *dlogits, float *row_loss, const pn_bf16 *logits, const int64_t *targets,
                                  int64_t N, int Vocab, float grad_scale) {
    float *z = fk_from_bf16(logits, N * Vocab);
    int64_t count = 0;
    for (int64_t n = 0; n < N; n++) {
        PN_ASSERT(targets[n] < Vocab);
        count += targets[n] >= 0;
    }
    if (row_loss)
        for (int64_t n = 0; n < N; n++) {
            const float *zr = z + n * Vocab;
            const int64_t t = targets[n];
            if (t < 0) {
                row_loss[n] = 0.0f;
                continue;
            }
            double m = zr[0], s = 0.0;
            for (int v = 1; v < Vocab; v++) m = zr[v] > m ? zr[v] : m;
            for (int v = 0; v < Vocab; v++) s += exp((double)zr[v] - m);
            row_loss[n] = (float)(m + log(s) - (double)zr[t]);
        }
    if (dlogits) {
        float *dz = fk_alloc(N * Vocab);
        (void)pn_cross_entropy(dz, z, targets, N, Vocab, grad_scale);
        fk_store_bf16(dlogits, dz, N * Vocab);
        free(dz);
    }
    free(z);
    return count;
}

void pn_cuda_cross_entropy_async(pn_bf16 *dlogits, float *row_loss, const pn_bf16 *logits, const int64_t *targets,
                                 int64_t N, int Vocab, float grad_scale) {
    if (N <= 0 || Vocab <= 0) return;
    (void)cross_entropy_rows(dlogits, row_loss, logits, targets, N, Vocab, grad_scale);
}

double pn_cuda_cross_entropy(pn_bf16 *dlogits, const pn_bf16 *logits, const int64_t *targets, int64_t N, int Vocab,
                             float grad_scale) {
    if (N <= 0 || Vocab <= 0) return 0.0;
    float *loss = fk_alloc(N);
    const int64_t count = cross_entropy_rows(dlogits, loss, logits, targets, N, Vocab, grad_scale);
    double total = 0.0;  // the fp32 row losses summed in double, as loss.cu does on the host
    for (int64_t n = 0; n < N; n++) total += (double)loss[n];
    free(loss);
    return count > 0 ? total / (double)count : 0.0;
}

// ---------------------------------------------------------------- AdamW
// supernet/optim.c's step itself, for one tensor: an optimizer whose state is (m, v)
// and whose step counter is t − 1 before the call.
void pn_cuda_adamw_step(float *w, pn_bf16 *w_bf16, const float *g, float *m, float *v, int64_t n, int64_t t, float lr,
                        float beta1, float beta2, float eps, float weight_decay) {
    if (n <= 0) return;
    if (t < 1) pn_die_internal(__FILE__, __LINE__, "AdamW step number %lld (want >= 1)", (long long)t);
    int64_t offset[2] = {0, n};
    pn_adamw opt = {.lr = lr,
                    .beta1 = beta1,
                    .beta2 = beta2,
                    .eps = eps,
                    .weight_decay = weight_decay,
                    .t = t - 1,
                    .n_params = 1,
                    .offset = offset,
                    .m = m,
                    .v = v};
    pn_param_ref ref = {.name = "fake_cuda_adamw", .w = w, .g = (float *)g, .n = n, .weight_decay = 1};
    pn_adamw_step(&opt, &ref, 1);
    if (w_bf16) fk_store_bf16(w_bf16, w, n);
}
