// ops_rec_gla.c — gated linear attention with a per-key-channel gate (GLA), CPU.
//
// S_t = diag(exp(gk_t)) S_{t-1} + k_t v_tᵀ,  o_t = S_tᵀ (scale · q_t), state S (K, V) per (b, h).
//
// Two forms of the same function (kernels/ops.h):
//  - recurrent (chunk == 0): token by token, state in rec_t (fp32: measured within 2e-7
//    of the float64 fixtures; the typedef in rec_common.h can be double for a tighter reference), token-level BPTT
//    backward with S_{t-1} recomputed from checkpoints every REC_SEG tokens.
//  - chunked (chunk > 0): per chunk with the chunk-local cumsum G (C, K) of gk,
//        A[i,j] = scale Σ_k q_ik k_jk e^{G_ik − G_jk}  (j ≤ i, element-wise)
//        O = A V + (scale·Q ⊙ e^{G}) S
//        S ← diag(e^{G_C}) S + (K ⊙ e^{G_C − G})ᵀ V
//    The intra-chunk scores are formed element by element, because with a per-channel
//    gate Q⊙e^{G} and K⊙e^{−G} cannot be factored safely (e^{−G} overflows); each
//    exponent used is a masked, non-positive difference. The inter-chunk products go
//    through pn_gemm. Backward recomputes the chunk-start states, scans dS in reverse,
//    forms dq, dk of the intra part element-wise from dP = dO Vᵀ, and takes
//    dG = q⊙dq − k⊙dk (+ state terms on the last row); dgk is its reverse cumsum.
// OpenMP runs over the B·H independent heads; each thread owns its scratch. The (b, h)
// indexing, the checkpointed BPTT driver and the chunk plumbing are in rec_common.h.
#include "kernels/cpu/rec_common.h"
#include <math.h>

typedef pn_rc_head head_ix;

// ---------------------------------------------------------------- recurrent

static void rec_step(rec_t *S, const float *k, const float *v, const float *gk, int K, int V) {
    for (int i = 0; i < K; i++) {
        rec_t a = exp((rec_t)gk[i]), ki = k[i];
        rec_t *row = S + (int64_t)i * V;
        for (int j = 0; j < V; j++) row[j] = a * row[j] + ki * v[j];
    }
}

static void rec_fwd_head(const pn_rec_shape *s, head_ix ix, const float *q, const float *k, const float *v,
                         const float *gk, const float *h0, float *o, float *ht, rec_t *S) {
    const int K = s->K, V = s->V;
    pn_rc_load(S, h0 ? h0 + ix.os : NULL, (int64_t)K * V);
    for (int t = 0; t < s->T; t++) {
        rec_step(S, k + ix.ok + t * ix.sk, v + ix.ov + t * ix.sv, gk + ix.ok + t * ix.sk, K, V);
        pn_rc_readout(o + ix.ov + t * ix.sv, S, q + ix.ok + t * ix.sk, K, V, s->scale);
    }
    if (ht)
        for (int64_t i = 0; i < (int64_t)K * V; i++) ht[ix.os + i] = (float)S[i];
}

// One head's inputs and gradient outputs, for the BPTT callbacks.
typedef struct {
    const pn_rec_shape *s;
    head_ix ix;
    const float *q, *k, *v, *gk, *dout;
    float *dq, *dk, *dv, *dgk;
} rec_head;

static void rec_step_at(void *ctx, int t, rec_t *S) {
    const rec_head *c = ctx;
    const head_ix ix = c->ix;
    rec_step(S, c->k + ix.ok + t * ix.sk, c->v + ix.ov + t * ix.sv, c->gk + ix.ok + t * ix.sk, c->s->K, c->s->V);
}

// Token t: dq, dk, dgk, dv from dS (w.r.t. S_t), then dS ← diag(e^{gk_t}) dS.
static void rec_token_bwd(void *ctx, int t, const rec_t *St, const rec_t *Sp, rec_t *dS) {
    const rec_head *c = ctx;
    const head_ix ix = c->ix;
    const int K = c->s->K, V = c->s->V;
    const float *qt = c->q + ix.ok + t * ix.sk, *kt = c->k + ix.ok + t * ix.sk, *gt = c->gk + ix.ok + t * ix.sk;
    const float *vt = c->v + ix.ov + t * ix.sv, *dot = c->dout + ix.ov + t * ix.sv;
    const rec_t sc = c->s->scale;
    pn_rc_ds_add_readout(dS, qt, dot, K, V, sc);
    for (int i = 0; i < K; i++) {
        const rec_t *srow = St + (int64_t)i * V, *prow = Sp + (int64_t)i * V;
        rec_t *drow = dS + (int64_t)i * V;
        rec_t accq = 0, acck = 0, accg = 0;
        for (int j = 0; j < V; j++) {
            accq += srow[j] * dot[j];
            acck += drow[j] * vt[j];
            accg += drow[j] * prow[j];
        }
        const rec_t a = exp((rec_t)gt[i]);
        if (c->dq) c->dq[ix.ok + t * ix.sk + i] += (float)(sc * accq);
        if (c->dk) c->dk[ix.ok + t * ix.sk + i] += (float)acck;
        if (c->dgk) c->dgk[ix.ok + t * ix.sk + i] += (float)(a * accg);
    }
    if (c->dv) pn_rc_dv_add(c->dv + ix.ov + t * ix.sv, dS, kt, K, V);
    for (int i = 0; i < K; i++) {
        const rec_t a = exp((rec_t)gt[i]);
        for (int j = 0; j < V; j++) dS[(int64_t)i * V + j] *= a;
    }
}

// ---------------------------------------------------------------- chunked

typedef struct {
    float *G;                   // (C, K) chunk-local cumsum of gk
    float *A, *dP;              // (C, C)
    float *Qg, *Kd;             // (C, K) scale·Q⊙e^{G}, K⊙e^{G_L−G}
    float *dqc, *dkc, *tq, *tk; // (C, K)
    float *dvc;                 // (C, V)
    float *S, *dS;              // (K, V)
} chunk_scratch;

static void scratch_init(chunk_scratch *w, int C, int K, int V) {
    w->G = pn_malloc((size_t)C * K * sizeof(float));
    w->A = pn_malloc((size_t)C * C * sizeof(float));
    w->dP = pn_malloc((size_t)C * C * sizeof(float));
    w->Qg = pn_malloc((size_t)C * K * sizeof(float));
    w->Kd = pn_malloc((size_t)C * K * sizeof(float));
    w->dqc = pn_malloc((size_t)C * K * sizeof(float));
    w->dkc = pn_malloc((size_t)C * K * sizeof(float));
    w->tq = pn_malloc((size_t)C * K * sizeof(float));
    w->tk = pn_malloc((size_t)C * K * sizeof(float));
    w->dvc = pn_malloc((size_t)C * V * sizeof(float));
    w->S = pn_malloc((size_t)K * V * sizeof(float));
    w->dS = pn_malloc((size_t)K * V * sizeof(float));
}

static void scratch_free(chunk_scratch *w) {
    free(w->G), free(w->A), free(w->dP), free(w->Qg), free(w->Kd), free(w->dqc), free(w->dkc);
    free(w->tq), free(w->tk), free(w->dvc), free(w->S), free(w->dS);
}

// G = cumsum of gk over the chunk's rows, Qg = scale·Q⊙e^{G}, Kd = K⊙e^{G_L−G}.
static void chunk_gates(const pn_rec_shape *s, head_ix ix, int t0, int L, const float *q, const float *k,
                        const float *gk, chunk_scratch *w) {
    const int K = s->K;
    pn_rc_chunk_cumsum(w->G, gk + ix.ok + (int64_t)t0 * ix.sk, ix.sk, L, K);
    const float *GL = w->G + (int64_t)(L - 1) * K;
    for (int i = 0; i < L; i++) {
        const float *qi = q + ix.ok + (int64_t)(t0 + i) * ix.sk, *ki = k + ix.ok + (int64_t)(t0 + i) * ix.sk;
        const float *Gi = w->G + (int64_t)i * K;
        for (int c = 0; c < K; c++) {
            w->Qg[(int64_t)i * K + c] = s->scale * qi[c] * expf(Gi[c]);
            w->Kd[(int64_t)i * K + c] = ki[c] * expf(GL[c] - Gi[c]);
        }
    }
}

// A[i,j] = scale Σ_k q_ik k_jk e^{G_ik − G_jk} for j ≤ i, 0 above the diagonal.
static void chunk_scores(const pn_rec_shape *s, head_ix ix, int t0, int L, const float *q, const float *k,
                         const float *G, float *A) {
    const int K = s->K;
    for (int i = 0; i < L; i++) {
        const float *qi = q + ix.ok + (int64_t)(t0 + i) * ix.sk, *Gi = G + (int64_t)i * K;
        for (int j = 0; j < L; j++) {
            float acc = 0;
            if (j <= i) {
                const float *kj = k + ix.ok + (int64_t)(t0 + j) * ix.sk, *Gj = G + (int64_t)j * K;
                for (int c = 0; c < K; c++) acc += qi[c] * kj[c] * expf(Gi[c] - Gj[c]);
            }
            A[(int64_t)i * L + j] = s->scale * acc;
        }
    }
}

// S ← diag(e^{G_L}) S + Kdᵀ V
static void chunk_state_update(const pn_rec_shape *s, int L, const float *GL, const float *Kd, const float *vc,
                               int64_t sv, float *S) {
    pn_rc_scale_rows_exp(S, GL, s->K, s->V);
    pn_gemm(1, 0, s->K, s->V, L, 1.0f, Kd, s->K, vc, sv, 1.0f, S, s->V);
}

static void chunk_fwd_head(const pn_rec_shape *s, int C, head_ix ix, const float *q, const float *k, const float *v,
                           const float *gk, const float *h0, float *o, float *ht, chunk_scratch *w) {
    const int T = s->T, K = s->K, V = s->V;
    const int64_t KV = (int64_t)K * V;
    pn_rc_load_f32(w->S, h0 ? h0 + ix.os : NULL, KV);
    for (int t0 = 0; t0 < T; t0 += C) {
        const int L = PN_MIN(C, T - t0);
        const float *vc = v + ix.ov + (int64_t)t0 * ix.sv;
        float *oc = o + ix.ov + (int64_t)t0 * ix.sv;
        chunk_gates(s, ix, t0, L, q, k, gk, w);
        chunk_scores(s, ix, t0, L, q, k, w->G, w->A);
        pn_gemm(0, 0, L, V, L, 1.0f, w->A, L, vc, ix.sv, 0.0f, oc, ix.sv);
        pn_gemm(0, 0, L, V, K, 1.0f, w->Qg, K, w->S, V, 1.0f, oc, ix.sv);
        chunk_state_update(s, L, w->G + (int64_t)(L - 1) * K, w->Kd, vc, ix.sv, w->S);
    }
    if (ht) memcpy(ht + ix.os, w->S, (size_t)KV * sizeof(float));
}

// Sn: (NT, K, V) chunk-start states, filled here.
static void chunk_bwd_head(const pn_rec_shape *s, int C, head_ix ix, const float *q, const float *k, const float *v,
                           const float *gk, const float *h0, const float *dout, const float *dht, float *dq,
                           float *dk, float *dv, float *dgk, float *dh0, float *Sn, chunk_scratch *w) {
    const int T = s->T, K = s->K, V = s->V;
    const int64_t KV = (int64_t)K * V;
    const int NT = (T + C - 1) / C;
    pn_rc_load_f32(w->S, h0 ? h0 + ix.os : NULL, KV);
    for (int n = 0; n < NT; n++) {
        const int t0 = n * C, L = PN_MIN(C, T - t0);
        memcpy(Sn + n * KV, w->S, (size_t)KV * sizeof(float));
        chunk_gates(s, ix, t0, L, q, k, gk, w);
        chunk_state_update(s, L, w->G + (int64_t)(L - 1) * K, w->Kd, v + ix.ov + (int64_t)t0 * ix.sv, ix.sv, w->S);
    }
    float *dS = w->dS;   // gradient w.r.t. the state at the end of chunk n
    pn_rc_load_f32(dS, dht ? dht + ix.os : NULL, KV);
    for (int n = NT - 1; n >= 0; n--) {
        const int t0 = n * C, L = PN_MIN(C, T - t0);
        const float *S = Sn + n * KV;
        const float *qc = q + ix.ok + (int64_t)t0 * ix.sk, *kc = k + ix.ok + (int64_t)t0 * ix.sk;
        const float *vc = v + ix.ov + (int64_t)t0 * ix.sv, *doc = dout + ix.ov + (int64_t)t0 * ix.sv;
        chunk_gates(s, ix, t0, L, q, k, gk, w);
        const float *G = w->G, *GL = w->G + (int64_t)(L - 1) * K;
        chunk_scores(s, ix, t0, L, q, k, G, w->A);
        pn_gemm(0, 1, L, L, V, 1.0f, doc, ix.sv, vc, ix.sv, 0.0f, w->dP, L);   // dP = dO Vᵀ
        // intra part of dq, dk, element-wise over the lower triangle
        memset(w->dqc, 0, (size_t)L * K * sizeof(float));
        memset(w->dkc, 0, (size_t)L * K * sizeof(float));
        for (int i = 0; i < L; i++) {
            const float *Gi = G + (int64_t)i * K;
            for (int j = 0; j <= i; j++) {
                const float p = s->scale * w->dP[(int64_t)i * L + j], *Gj = G + (int64_t)j * K;
                for (int c = 0; c < K; c++) {
                    const float e = p * expf(Gi[c] - Gj[c]);
                    w->dqc[(int64_t)i * K + c] += e * kc[(int64_t)j * ix.sk + c];
                    w->dkc[(int64_t)j * K + c] += e * qc[(int64_t)i * ix.sk + c];
                }
            }
        }
        // inter parts: tq = dO Sᵀ, tk = V dSᵀ
        pn_gemm(0, 1, L, K, V, 1.0f, doc, ix.sv, S, V, 0.0f, w->tq, K);
        pn_gemm(0, 1, L, K, V, 1.0f, vc, ix.sv, dS, V, 0.0f, w->tk, K);
        // dv = Aᵀ dO + Kd dS
        pn_gemm(1, 0, L, V, L, 1.0f, w->A, L, doc, ix.sv, 0.0f, w->dvc, V);
        pn_gemm(0, 0, L, V, K, 1.0f, w->Kd, K, dS, V, 1.0f, w->dvc, V);
        // dG (C, K): q⊙dq − k⊙dk per row; last row adds e^{G_L}⊙Σ_v dS⊙S + Σ_j k_j⊙dk_inter_j.
        for (int c = 0; c < K; c++) {
            double last = 0;
            for (int j = 0; j < V; j++) last += (double)dS[(int64_t)c * V + j] * S[(int64_t)c * V + j];
            last *= exp((double)GL[c]);
            for (int i = 0; i < L; i++) {
                const int64_t ic = (int64_t)i * K + c;
                const float ti = w->tk[ic] * expf(GL[c] - G[ic]);
                w->dqc[ic] += w->tq[ic] * s->scale * expf(G[ic]);
                w->dkc[ic] += ti;
                last += (double)kc[(int64_t)i * ix.sk + c] * ti;
            }
            double carry = last;   // reverse cumsum of dG down the chunk
            for (int i = L - 1; i >= 0; i--) {
                const int64_t ic = (int64_t)i * K + c;
                carry += (double)qc[(int64_t)i * ix.sk + c] * w->dqc[ic] - (double)kc[(int64_t)i * ix.sk + c] * w->dkc[ic];
                if (dgk) dgk[ix.ok + (int64_t)(t0 + i) * ix.sk + c] += (float)carry;
            }
        }
        for (int i = 0; i < L; i++) {
            for (int c = 0; c < K; c++) {
                if (dq) dq[ix.ok + (int64_t)(t0 + i) * ix.sk + c] += w->dqc[(int64_t)i * K + c];
                if (dk) dk[ix.ok + (int64_t)(t0 + i) * ix.sk + c] += w->dkc[(int64_t)i * K + c];
            }
            if (dv)
                for (int c = 0; c < V; c++) dv[ix.ov + (int64_t)(t0 + i) * ix.sv + c] += w->dvc[(int64_t)i * V + c];
        }
        // dS_start = diag(e^{G_L}) dS + (scale·Q⊙e^{G})ᵀ dO
        pn_rc_scale_rows_exp(dS, GL, K, V);
        pn_gemm(1, 0, K, V, L, 1.0f, w->Qg, K, doc, ix.sv, 1.0f, dS, V);
    }
    if (dh0)
        for (int64_t i = 0; i < KV; i++) dh0[ix.os + i] += dS[i];
}

// ---------------------------------------------------------------- public

void pn_gla_fwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v, const float *gk,
                const float *h0, float *o, float *ht) {
    PN_ASSERT(chunk >= 0 && s->T >= 0 && s->K > 0 && s->V > 0);
    const int BH = s->B * s->H;
#pragma omp parallel
    {
        rec_t *S = NULL;
        chunk_scratch w = {0};
        if (chunk == 0)
            S = pn_malloc((size_t)s->K * s->V * sizeof(rec_t));
        else
            scratch_init(&w, chunk, s->K, s->V);
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < BH; bh++) {
            head_ix ix = pn_rc_head_at(s, bh / s->H, bh % s->H);
            if (chunk == 0)
                rec_fwd_head(s, ix, q, k, v, gk, h0, o, ht, S);
            else
                chunk_fwd_head(s, chunk, ix, q, k, v, gk, h0, o, ht, &w);
        }
        free(S);
        if (chunk > 0) scratch_free(&w);
    }
}

void pn_gla_bwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v, const float *gk,
                const float *h0, const float *dout, const float *dht, float *dq, float *dk, float *dv, float *dgk,
                float *dh0) {
    PN_ASSERT(chunk >= 0 && s->T >= 0 && s->K > 0 && s->V > 0);
    const int BH = s->B * s->H;
    const int64_t KV = (int64_t)s->K * s->V;
#pragma omp parallel
    {
        pn_rc_bptt r = {0};
        float *Sn = NULL;
        chunk_scratch w = {0};
        if (chunk == 0) {
            pn_rc_bptt_alloc(&r, s->T, KV);
        } else {
            scratch_init(&w, chunk, s->K, s->V);
            Sn = pn_rc_chunk_states_alloc(s->T, chunk, KV);
        }
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < BH; bh++) {
            head_ix ix = pn_rc_head_at(s, bh / s->H, bh % s->H);
            if (chunk == 0) {
                rec_head c = {s, ix, q, k, v, gk, dout, dq, dk, dv, dgk};
                pn_rc_bptt_head(s->T, KV, h0 ? h0 + ix.os : NULL, dht ? dht + ix.os : NULL, dh0 ? dh0 + ix.os : NULL,
                                &r, rec_step_at, rec_token_bwd, &c);
            } else {
                chunk_bwd_head(s, chunk, ix, q, k, v, gk, h0, dout, dht, dq, dk, dv, dgk, dh0, Sn, &w);
            }
        }
        free(Sn);
        if (chunk == 0)
            pn_rc_bptt_free(&r);
        else
            scratch_free(&w);
    }
}
