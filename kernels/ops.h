// ops.h — backend-neutral op signatures (CPU reference implementations in kernels/cpu/).
//
// Conventions for every op:
//  - fp32, contiguous row-major. Shape letters: B batch, T time, H heads, K key
//    dim, V value dim, C model width, D a feature dim, W conv taps.
//  - Forward outputs are overwritten.
//  - Backward functions ADD into every gradient output (dx and parameter grads),
//    llm.c style, so residual branches and tied weights need no extra code;
//    callers zero gradient buffers. A NULL gradient pointer means "not needed".
//  - Saved statistics (rstd, lse, ...) are written by forward and read by backward.
// The CUDA twins (kernels/cuda/) have the same names with a pn_cuda_ prefix.
#pragma once
#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------- dense (ops_dense.c)
// y (M, N) = x (M, K) · w (N, K)ᵀ [+ b (N)]        — torch.nn.Linear layout
void pn_linear_fwd(float *y, const float *x, const float *w, const float *b, int64_t M, int K, int N);
// dx (M, K) += dy · w;  dw (N, K) += dyᵀ · x;  db (N) += Σ_m dy
void pn_linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int64_t M, int K,
                   int N);
// Plain sgemm wrapper: C (M,N) = alpha · op(A) · op(B) + beta · C, row-major.
void pn_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
             const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

// Profiling of pn_gemm for benchmarks: FLOPs and wall time of calls made outside
// OpenMP parallel regions (calls inside them are counted in `inner_flops` only).
typedef struct {
    double flops, seconds, inner_flops;
    int64_t calls;
} pn_gemm_stats;
void pn_gemm_stats_enable(int on);
void pn_gemm_stats_reset(void);
pn_gemm_stats pn_gemm_stats_get(void);

// ---------------------------------------------------------------- elementwise (ops_act.c)
void pn_silu_fwd(float *y, const float *x, int64_t n);
void pn_silu_bwd(float *dx, const float *dy, const float *x, int64_t n);
void pn_sigmoid_fwd(float *y, const float *x, int64_t n);
void pn_softplus_fwd(float *y, const float *x, int64_t n);   // log(1 + e^x), torch threshold 20
void pn_logsigmoid_fwd(float *y, const float *x, int64_t n);
// y = silu(gate) · up
void pn_swiglu_fwd(float *y, const float *gate, const float *up, int64_t n);
void pn_swiglu_bwd(float *dgate, float *dup, const float *dy, const float *gate, const float *up, int64_t n);
void pn_add(float *y, const float *a, const float *b, int64_t n);   // y = a + b (y may alias a or b)
void pn_add_inplace(float *y, const float *x, int64_t n);          // y += x

// ---------------------------------------------------------------- embedding / loss (ops_loss.c)
// y (N, C) = table[ids]
void pn_embedding_fwd(float *y, const int64_t *ids, const float *table, int64_t N, int C);
void pn_embedding_bwd(float *dtable, const float *dy, const int64_t *ids, int64_t N, int C);
// Mean cross-entropy over rows with target >= 0 (target < 0 is ignored).
// logits (N, Vocab). If dlogits != NULL it is OVERWRITTEN with d(mean)/dlogits · grad_scale.
// Accumulates in double so the mean does not depend on N's size.
double pn_cross_entropy(float *dlogits, const float *logits, const int64_t *targets, int64_t N, int Vocab,
                        float grad_scale);

// ---------------------------------------------------------------- norms (ops_norm.c)
// y (N, D) = x · rstd · w, rstd (N) = 1/sqrt(mean(x²) + eps); w may be NULL (no weight).
void pn_rmsnorm_fwd(float *y, float *rstd, const float *x, const float *w, int64_t N, int D, float eps);
void pn_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                    int64_t N, int D);
// y = x · rstd · w · silu(gate); gate (N, D) may be NULL (= plain rmsnorm). w (D) shared across rows.
void pn_rmsnorm_gated_fwd(float *y, float *rstd, const float *x, const float *w, const float *gate, int64_t N, int D,
                          float eps);
void pn_rmsnorm_gated_bwd(float *dx, float *dw, float *dgate, const float *dy, const float *x, const float *w,
                          const float *gate, const float *rstd, int64_t N, int D);
// y (N, D) = x / sqrt(Σx² + eps) over D (fla l2norm, eps 1e-6); rstd (N) saved.
void pn_l2norm_fwd(float *y, float *rstd, const float *x, int64_t N, int D, float eps);
void pn_l2norm_bwd(float *dx, const float *dy, const float *y, const float *rstd, int64_t N, int D);
// Group norm over x (N, G·D): each of the G groups of D features normalised on its own
// (mean and biased variance), then affine with w, b (G·D). mean, rstd (N, G) saved.
void pn_groupnorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b, int64_t N,
                      int G, int D, float eps);
void pn_groupnorm_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                      const float *mean, const float *rstd, int64_t N, int G, int D);

// ---------------------------------------------------------------- rope (ops_rope.c)
// In place on x (B, T, H, D), rotate-half convention (HF): x1 = x[:D/2], x2 = x[D/2:],
// position p = pos0 + t, inv_freq_i = theta^(-2i/D).
void pn_rope_fwd(float *x, int B, int T, int H, int D, int64_t pos0, float theta);
// The transpose (inverse rotation), in place on the gradient.
void pn_rope_bwd(float *dx, int B, int T, int H, int D, int64_t pos0, float theta);

// ---------------------------------------------------------------- attention (ops_attention.c)
// Causal softmax attention with GQA: q (B, T, Hq, D), k, v (B, T, Hkv, D), o (B, T, Hq, D),
// lse (B, Hq, T) saved. Query head h uses kv head h / (Hq / Hkv). window > 0: query t sees
// keys t-window+1..t (sliding window); window <= 0: full causal.
void pn_attention_fwd(float *o, float *lse, const float *q, const float *k, const float *v, int B, int T, int Hq,
                      int Hkv, int D, int window, float scale);
void pn_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                      const float *v, const float *o, const float *lse, int B, int T, int Hq, int Hkv, int D,
                      int window, float scale);

// ---------------------------------------------------------------- convs (ops_conv.c)
// Causal depthwise conv, W taps: y_t[d] = Σ_j w[d, j] · x_{t-W+1+j}[d] (+ bias[d]).
// x (B, T, D); w (D, W) as nn.Conv1d's (D, 1, W); bias (D) or NULL; x_prev (B, W-1, D):
// the W-1 rows before t = 0 (a decode/prefill state), NULL = zeros.
void pn_conv_causal_fwd(float *y, const float *x, const float *w, const float *bias, const float *x_prev, int B, int T,
                        int D, int W);
void pn_conv_causal_bwd(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                        const float *x_prev, int B, int T, int D, int W);
// Dynamic (per-token) kernels: kern (B, T, D, W), no bias.
void pn_dynconv_causal_fwd(float *y, const float *x, const float *kern, const float *x_prev, int B, int T, int D,
                           int W);
void pn_dynconv_causal_bwd(float *dx, float *dkern, const float *dy, const float *x, const float *kern,
                           const float *x_prev, int B, int T, int D, int W);
// Roll a conv state (B, W-1, D) forward by the T new rows of x (B, T, D).
void pn_conv_state_update(float *x_prev, const float *x, int B, int T, int D, int W);

// ---------------------------------------------------------------- token shift (ops_shift.c)
// RWKV: delta (B, T, C) = x_{t-1} - x_t with x_{-1} = x_prev (B, C) or 0 when NULL.
void pn_token_shift_fwd(float *delta, const float *x, const float *x_prev, int B, int T, int C);
void pn_token_shift_bwd(float *dx, const float *ddelta, int B, int T, int C);
// Token-shift lerp: xt (M, C) = x + delta · mu, mu (C) a learned mix per channel.
void pn_lerp_fwd(float *xt, const float *x, const float *delta, const float *mu, int64_t M, int C);
// dx += dxt; ddelta += dxt · mu; dmu (may be NULL) += Σ_m dxt · delta.
void pn_lerp_bwd(float *dx, float *ddelta, float *dmu, const float *dxt, const float *delta, const float *mu, int64_t M,
                 int C);

// ---------------------------------------------------------------- recurrences (ops_rec_*.c)
// Layout: q, k (B, T, H, K); v, o (B, T, H, V); scalar gates g, beta (B, T, H);
// vector gate gk (B, T, H, K); states h0, ht (B, H, K, V), fp32. h0 may be NULL (zeros),
// ht may be NULL (not wanted), and h0 == ht is allowed (in-place state update: a
// decode step is fwd with T = 1). Output o_t = S_tᵀ (scale · q_t), S after the update.
// chunk == 0 selects the recurrent (token-by-token) form; chunk > 0 the chunkwise-
// parallel form with that chunk size (any T). Both compute the same function.
// Backward: gradients of sum(o·do) + sum(ht·dht) (dht may be NULL), ADDED into dX.
typedef struct {
    int B, T, H, K, V;
    float scale;
} pn_rec_shape;

// S = exp(g_t) S + k_t v_tᵀ
void pn_simple_gla_fwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v,
                       const float *g, const float *h0, float *o, float *ht);
void pn_simple_gla_bwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v,
                       const float *g, const float *h0, const float *dout, const float *dht, float *dq, float *dk,
                       float *dv, float *dg, float *dh0);
// S = diag(exp(gk_t)) S + k_t v_tᵀ
void pn_gla_fwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v, const float *gk,
                const float *h0, float *o, float *ht);
void pn_gla_bwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v, const float *gk,
                const float *h0, const float *dout, const float *dht, float *dq, float *dk, float *dv, float *dgk,
                float *dh0);
// S' = exp(g_t) S; S = S' + k_t (β_t (v_t − S'ᵀ k_t))ᵀ. g == NULL: delta rule (g = 0).
// qk_l2norm != 0: q and k are L2-normalised inside the op (eps 1e-6) and the
// gradients flow back through that normalisation.
void pn_gated_delta_fwd(const pn_rec_shape *s, int chunk, int qk_l2norm, const float *q, const float *k,
                        const float *v, const float *g, const float *beta, const float *h0, float *o, float *ht);
void pn_gated_delta_bwd(const pn_rec_shape *s, int chunk, int qk_l2norm, const float *q, const float *k,
                        const float *v, const float *g, const float *beta, const float *h0, const float *dout,
                        const float *dht, float *dq, float *dk, float *dv, float *dg, float *dbeta, float *dh0);
// S = diag(exp(gk_t)) S + k_t v_tᵀ + b_t (a_tᵀ S_prev)   (a-term uses S before decay)
void pn_dplr_fwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v, const float *gk,
                 const float *a, const float *b, const float *h0, float *o, float *ht);
void pn_dplr_bwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v, const float *gk,
                 const float *a, const float *b, const float *h0, const float *dout, const float *dht, float *dq,
                 float *dk, float *dv, float *dgk, float *da, float *db, float *dh0);
