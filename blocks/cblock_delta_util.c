// cblock_delta_util.c — the delta tail on CUDA; see cblock_delta_util.h. Each step names
// the CPU step of pn_bu_delta_fwd / pn_bu_delta_bwd (blocks/block_util.c) it mirrors.
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/cblock_delta_util.h"
#include "kernels/cuda/pn_cuda_block_elem.h"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_gdn_fast.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include <math.h>

float *pn_cbd_scratch_f32(int64_t n) {
    return pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(n > 0 ? n : 1) * sizeof(float));
}

float *pn_cbd_zeros_f32(int64_t n) {
    float *p = pn_cbd_scratch_f32(n);
    pn_cuda_memset(p, 0, (size_t)(n > 0 ? n : 1) * sizeof(float));
    return p;
}

pn_bf16 *pn_cbd_scratch_bf16(int64_t n) {
    return pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(n > 0 ? n : 1) * sizeof(pn_bf16));
}

// ---------------------------------------------------------------- slab

// Part index of spec parameter p (an internal error when the slab has no such part).
static int slab_part(const pn_cbd_slab *s, int p) {
    for (int i = 0; i < s->n; i++)
        if (s->param[i] == p) return i;
    pn_die_internal(__FILE__, __LINE__, "projection-gradient slab has no part for parameter %d", p);
}

void pn_cbd_slab_open(pn_cbd_slab *s, const pn_cblock *b, int64_t N, int n, const int *param) {
    PN_ASSERT(n >= 1 && n <= PN_CBD_SLAB_MAX);
    s->n = n;
    s->col[0] = 0;
    for (int i = 0; i < n; i++) {
        const pn_param_spec *sp = &b->spec[param[i]];
        PN_ASSERT(sp->ndim == 2 && sp->shape[1] == b->cfg.C);  // a (out, C) projection
        s->param[i] = param[i];
        s->width[i] = (int)sp->shape[0];
        s->col[i + 1] = s->col[i] + (s->width[i] + 7) / 8 * 8;
    }
    s->rows = N;
    s->ld = s->col[n];
    s->d = pn_cbd_scratch_bf16(N * s->ld);
    for (int i = 0; i < n; i++) {
        const int pad = s->col[i + 1] - s->col[i] - s->width[i];
        if (pad > 0)
            pn_cuda_memset_2d(s->d + s->col[i] + s->width[i], (size_t)s->ld * sizeof(pn_bf16), 0,
                              (size_t)pad * sizeof(pn_bf16), (size_t)N);
    }
}

pn_bf16 *pn_cbd_slab_at(const pn_cbd_slab *s, int param, int64_t r0) {
    return s->d + r0 * s->ld + s->col[slab_part(s, param)];
}

void pn_cbd_slab_put(const pn_cbd_slab *s, int param, int64_t r0, int64_t rows, const float *src) {
    const int i = slab_part(s, param);
    pn_cuda_f32_to_bf16_2d(s->d + r0 * s->ld + s->col[i], s->ld, src, rows, s->width[i]);
}

void pn_cbd_slab_put_silu_bwd(const pn_cbd_slab *s, int param, int64_t r0, int64_t rows, const float *dact,
                              const float *pre) {
    const int i = slab_part(s, param);
    pn_cuda_silu_bwd_bf16(s->d + r0 * s->ld + s->col[i], s->ld, dact, pre, rows, s->width[i]);
}

void pn_cbd_slab_close(pn_cbd_slab *s, const pn_cblock *b, float *dx, const pn_bf16 *x) {
    const int C = b->cfg.C, K = (int)s->ld;
    const int64_t N = s->rows;
    // the weights stacked in column order: W (K, C), part i in rows col[i]..col[i] + width − 1,
    // zero rows under the padding columns
    pn_bf16 *w = pn_cbd_scratch_bf16((int64_t)K * C);
    for (int i = 0; i < s->n; i++) {
        const size_t row_bytes = (size_t)C * sizeof(pn_bf16);
        pn_cuda_copy(w + (int64_t)s->col[i] * C, b->w16[s->param[i]], (size_t)s->width[i] * row_bytes);
        pn_cuda_memset(w + (int64_t)(s->col[i] + s->width[i]) * C, 0,
                       (size_t)(s->col[i + 1] - s->col[i] - s->width[i]) * row_bytes);
    }
    pn_cuda_gemm(0, 0, N, C, K, 1.0f, s->d, s->ld, w, C, 1.0f, dx, PN_CUDA_F32, C, NULL);  // (N,K)·(K,C)
    pn_cuda_free(w);
    // the weight gradients: one GEMM for every part (one pass over x, no thin GEMMs for the
    // H-wide β and gate projections) into scratch, then each part's rows added to its gradient
    int wanted = 0;
    for (int i = 0; i < s->n; i++) wanted += b->grads[s->param[i]] != NULL;
    if (wanted) {
        float *gw = pn_cbd_scratch_f32((int64_t)K * C);
        pn_cuda_gemm(1, 0, K, C, N, 1.0f, s->d, s->ld, x, C, 0.0f, gw, PN_CUDA_F32, C, NULL);  // (K,N)·(N,C)
        for (int i = 0; i < s->n; i++) {
            float *g = b->grads[s->param[i]];
            if (g) pn_cuda_add_inplace(g, gw + (int64_t)s->col[i] * C, (int64_t)s->width[i] * C);
        }
        pn_cuda_free(gw);
    }
    pn_cuda_free(s->d);
    s->d = NULL;
}

// The o_proj backward: dW from bf16(dy) as usual, but the input gradient from dy split
// into two bf16 terms, hi = bf16(dy) and lo = bf16(dy − hi) (dy to ~2^-17 relative). The
// output norm's input gradient feeds dg, whose per-head sums (dA_log, ddt_bias) cancel
// strongly: a single bf16 rounding of dy showed up there as ~3e-2 relative error against
// the fp32 block, the split brings it to ~1e-3 for one extra (N, C)·(C, H·V) GEMM.
// One GEMM does both: [hi | lo] (M, 2N) times W stacked twice (2N, K), so dx is WRITTEN
// once (beta 0) rather than written by the hi product and read back and rewritten by the lo
// one; dw += hiᵀ x reads the hi columns (lda = 2N).
static void cbd_oproj_bwd(float *dx, float *dw, const float *dy, const pn_bf16 *x, const pn_bf16 *w, int64_t M,
                          int K, int N) {
    pn_bf16 *hl = pn_cbd_scratch_bf16(M * 2 * N);
    pn_cuda_f32_split_bf16(hl, hl + N, 2 * N, dy, M, N);
    const size_t wbytes = (size_t)N * K * sizeof(pn_bf16);
    pn_bf16 *ww = pn_cbd_scratch_bf16((int64_t)2 * N * K);
    pn_cuda_copy(ww, w, wbytes);
    pn_cuda_copy(ww + (int64_t)N * K, w, wbytes);
    pn_cuda_gemm(0, 0, M, K, 2 * N, 1.0f, hl, 2 * N, ww, K, 0.0f, dx, PN_CUDA_F32, K, NULL);  // (M,2N)·(2N,K)
    if (dw) pn_cuda_gemm(1, 0, N, K, M, 1.0f, hl, 2 * N, x, K, 1.0f, dw, PN_CUDA_F32, K, NULL);  // (N,M)·(M,K)
    pn_cuda_free(ww), pn_cuda_free(hl);
}

void pn_cbd_act_layout(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int64_t N, pn_cbd_cursor *cur,
                       pn_cbd_act *a) {
    pn_bu_dims d = pn_bu_dims_of(c);
    a->beta = pn_cbd_take(cur, (size_t)(N * d.H) * sizeof(float));
    a->ap = ix->a >= 0 ? pn_cbd_take(cur, (size_t)(N * d.H) * sizeof(float)) : NULL;
    a->o = pn_cbd_take(cur, (size_t)(N * d.HV) * sizeof(pn_bf16));
    a->gp = ix->g >= 0 ? pn_cbd_take(cur, (size_t)(N * d.HV) * sizeof(pn_bf16)) : NULL;
}

// g (N, H) from the saved a-projection; NULL without a decay gate (the op's g = 0).
static float *cbd_gate(const pn_cblock *b, const pn_bu_delta_ix *ix, const pn_cbd_act *a, int64_t N) {
    if (ix->a < 0) return NULL;
    float *g = pn_cbd_scratch_f32(N * b->cfg.H);
    pn_cuda_decay_gate_fwd(g, a->ap, b->w32[ix->A_log], b->w32[ix->dt_bias], N, b->cfg.H);
    return g;
}

// The normalised, gated output (N, H·V) bf16 and its rstd (N·H), from o and gp.
static void cbd_norm(const pn_cblock *b, const pn_bu_delta_ix *ix, const pn_cbd_act *a, int64_t N, pn_bf16 **on,
                     float **ro) {
    pn_bu_dims d = pn_bu_dims_of(&b->cfg);
    *on = pn_cbd_scratch_bf16(N * d.HV);
    *ro = pn_cbd_scratch_f32(N * d.H);
    pn_cuda_rmsnorm_gated_fwd(*on, PN_CUDA_BF16, *ro, a->o, PN_CUDA_BF16, b->w32[ix->o_norm], a->gp, N * d.H, d.V,
                              b->cfg.norm_eps);
}

void pn_cbd_fwd(const pn_cblock *b, const pn_bu_delta_ix *ix, const pn_cbd_act *a, const pn_cblock_ctx *ctx,
                pn_bf16 *y, const pn_bf16 *x, const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int B, int T) {
    pn_bu_dims d = pn_bu_dims_of(&b->cfg);
    pn_bf16 *const *W = b->w16;
    int64_t N = (int64_t)B * T;

    // β = sigmoid(x Wbᵀ); g = decay(x Waᵀ)
    pn_cuda_linear_fwd(a->beta, PN_CUDA_F32, x, W[ix->b], NULL, N, d.C, d.H);
    pn_cuda_sigmoid_fwd(a->beta, a->beta, N * d.H);
    if (ix->a >= 0) pn_cuda_linear_fwd(a->ap, PN_CUDA_F32, x, W[ix->a], NULL, N, d.C, d.H);
    float *g = cbd_gate(b, ix, a, N);

    // o = gated_delta(l2n(q), l2n(k), v, g, β); the tensor-core forward where it applies
    // (it falls back to the plain chunked op by itself otherwise)
    float scale = 1.0f / sqrtf((float)d.K);
    pn_cuda_gated_delta_fwd_fast(B, T, d.H, d.K, d.V, scale, 1, q, k, v, g, a->beta, NULL, a->o, PN_CUDA_BF16, NULL);

    // y = (rmsh(o) [· silu(x Wgᵀ)]) Woᵀ
    if (ix->g >= 0) pn_cuda_linear_fwd(a->gp, PN_CUDA_BF16, x, W[ix->g], NULL, N, d.C, d.HV);
    pn_bf16 *on;
    float *ro;
    cbd_norm(b, ix, a, N, &on, &ro);
    pn_cblock_out_proj(ctx, y, on, W[ix->o], NULL, N, d.HV, d.C);
    pn_cuda_free(on), pn_cuda_free(ro), pn_cuda_free(g);
}

void pn_cbd_bwd(const pn_cblock *b, const pn_bu_delta_ix *ix, const pn_cbd_act *a, const pn_cbd_slab *slab,
                const float *dy, const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, int B, int T, float **dq,
                float **dk, float **dv) {
    pn_bu_dims d = pn_bu_dims_of(&b->cfg);
    pn_bf16 *const *W = b->w16;
    float *const *P = b->w32;
    float *const *G = b->grads;
    int64_t N = (int64_t)B * T;

    // o_proj, then the gated norm (its output recomputed first)
    pn_bf16 *on;
    float *ro;
    cbd_norm(b, ix, a, N, &on, &ro);
    float *don = pn_cbd_scratch_f32(N * d.HV);
    cbd_oproj_bwd(don, G[ix->o], dy, on, W[ix->o], N, d.HV, d.C);
    pn_cuda_free(on);
    // dout written by the norm's backward (no zeroing pass), the output gate's gradient in
    // bf16 straight into its slab columns
    float *dout = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * d.HV * sizeof(float));
    if (ix->g >= 0)
        pn_cuda_rmsnorm_gated_bwd_write_dg16(dout, G[ix->o_norm], pn_cbd_slab_at(slab, ix->g, 0), d.H, slab->ld, don,
                                             a->o, PN_CUDA_BF16, P[ix->o_norm], a->gp, ro, N * d.H, d.V);
    else
        pn_cuda_rmsnorm_gated_bwd_write(dout, G[ix->o_norm], NULL, don, a->o, PN_CUDA_BF16, P[ix->o_norm], NULL, ro,
                                        N * d.H, d.V);
    pn_cuda_free(don), pn_cuda_free(ro);

    // the recurrence (plain chunked backward; same math as the fast forward)
    float *g = cbd_gate(b, ix, a, N);
    // written by the op (no zero fill)
    *dq = pn_cbd_scratch_f32(N * d.HK);
    *dk = pn_cbd_scratch_f32(N * d.HK);
    *dv = pn_cbd_scratch_f32(N * d.HV);
    float *dg = g ? pn_cbd_scratch_f32(N * d.H) : NULL;
    float *dbeta = pn_cbd_scratch_f32(N * d.H);
    float scale = 1.0f / sqrtf((float)d.K);
    pn_cuda_gated_delta_bwd_fast_write(B, T, d.H, d.K, d.V, scale, 1, q, k, v, g, a->beta, NULL, dout, NULL, *dq, *dk,
                                       *dv, dg, dbeta, NULL);
    pn_cuda_free(dout);

    // β and the decay gate back to their projections
    float *dpre = pn_cbd_zeros_f32(N * d.H);
    pn_cuda_sigmoid_bwd_from_y(dpre, dbeta, a->beta, N * d.H);
    pn_cbd_slab_put(slab, ix->b, 0, N, dpre);
    if (g) {
        pn_cuda_memset(dpre, 0, (size_t)(N * d.H) * sizeof(float));
        pn_cuda_decay_gate_bwd(dpre, G[ix->A_log], G[ix->dt_bias], dg, g, a->ap, P[ix->A_log], P[ix->dt_bias], N,
                               d.H);
        pn_cbd_slab_put(slab, ix->a, 0, N, dpre);
    }
    pn_cuda_free(dpre), pn_cuda_free(dbeta), pn_cuda_free(dg), pn_cuda_free(g);
}
#endif  // POSTNAS_HAVE_CUDA
