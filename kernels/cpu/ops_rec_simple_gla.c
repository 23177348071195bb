// ops_rec_simple_gla.c — scalar-gated linear attention (RetNet, simple-GLA, Mamba2 core), CPU.
//
// S_t = exp(g_t) S_{t-1} + k_t v_tᵀ,  o_t = S_tᵀ (scale · q_t), state S (K, V) per (b, h).
//
// Two forms of the same function (kernels/ops.h):
//  - recurrent (chunk == 0): token by token, the state kept in rec_t (rec_common.h).
//    Backward is token-level BPTT; S_{t-1} is recomputed from checkpoints taken every
//    REC_SEG tokens, so memory is O((T/REC_SEG + REC_SEG)·K·V) per head, not O(T·K·V).
//  - chunked (chunk > 0): per chunk of C rows (the last one may be partial) with the
//    chunk-local cumsum γ of g,
//        O = ((Q Kᵀ) ⊙ scale·e^{γ_i−γ_j}·[i≥j]) V + (scale·Q ⊙ e^{γ}) S
//        S ← e^{γ_C} S + (K ⊙ e^{γ_C−γ})ᵀ V
//    all products through pn_gemm. The mask is applied before exp, so every exponent
//    is a non-positive difference (g ≤ 0) and nothing overflows. Backward recomputes
//    the chunk-start states, then runs a reverse scan of dS; the gradient of the
//    cumsum is dγ_i = q_i·dq_i − k_i·dk_i (+ the state terms on the last row), and
//    dg is its reverse chunk-local cumsum.
// OpenMP runs over the B·H independent heads; each thread owns its scratch.
// rec_t (the recurrent accumulator), the (b, h) indexing and the checkpointed BPTT
// driver are shared with the other recurrences (rec_common.h).
#include "kernels/cpu/rec_common.h"
#include <math.h>

typedef pn_rc_head head_ix;

// ---------------------------------------------------------------- recurrent

// One step S ← e^{g} S + k vᵀ on a rec_t state.
static void rec_step(rec_t *S, const float *k, const float *v, float g, int K, int V) {
    rec_t a = exp((rec_t)g);
    for (int i = 0; i < K; i++) {
        rec_t ki = k[i];
        rec_t *row = S + (int64_t)i * V;
        for (int j = 0; j < V; j++) row[j] = a * row[j] + ki * v[j];
    }
}

static void rec_fwd_head(const pn_rec_shape *s, head_ix ix, const float *q, const float *k, const float *v,
                         const float *g, const float *h0, float *o, float *ht, rec_t *S) {
    const int K = s->K, V = s->V;
    pn_rc_load(S, h0 ? h0 + ix.os : NULL, (int64_t)K * V);
    for (int t = 0; t < s->T; t++) {
        rec_step(S, k + ix.ok + t * ix.sk, v + ix.ov + t * ix.sv, g[ix.og + t * ix.sg], K, V);
        pn_rc_readout(o + ix.ov + t * ix.sv, S, q + ix.ok + t * ix.sk, K, V, s->scale);
    }
    if (ht)
        for (int64_t i = 0; i < (int64_t)K * V; i++) ht[ix.os + i] = (float)S[i];
}

// One head's inputs and gradient outputs, for the BPTT callbacks.
typedef struct {
    const pn_rec_shape *s;
    head_ix ix;
    const float *q, *k, *v, *g, *dout;
    float *dq, *dk, *dv, *dg;
} rec_head;

static void rec_step_at(void *ctx, int t, rec_t *S) {
    const rec_head *c = ctx;
    const head_ix ix = c->ix;
    rec_step(S, c->k + ix.ok + t * ix.sk, c->v + ix.ov + t * ix.sv, c->g[ix.og + t * ix.sg], c->s->K, c->s->V);
}

// Token t: dq, dk, dv, dg from dS (w.r.t. S_t), then dS ← e^{g_t} dS.
static void rec_token_bwd(void *ctx, int t, const rec_t *St, const rec_t *Sp, rec_t *dS) {
    const rec_head *c = ctx;
    const head_ix ix = c->ix;
    const int K = c->s->K, V = c->s->V;
    const float *qt = c->q + ix.ok + t * ix.sk, *kt = c->k + ix.ok + t * ix.sk;
    const float *vt = c->v + ix.ov + t * ix.sv, *dot = c->dout + ix.ov + t * ix.sv;
    const rec_t sc = c->s->scale, a = exp((rec_t)c->g[ix.og + t * ix.sg]);
    pn_rc_ds_add_readout(dS, qt, dot, K, V, sc);
    rec_t dgt = 0;
    for (int i = 0; i < K; i++) {
        const rec_t *srow = St + (int64_t)i * V, *prow = Sp + (int64_t)i * V, *drow = dS + (int64_t)i * V;
        rec_t accq = 0, acck = 0;
        for (int j = 0; j < V; j++) {
            accq += srow[j] * dot[j];
            acck += drow[j] * vt[j];
            dgt += drow[j] * prow[j];
        }
        if (c->dq) c->dq[ix.ok + t * ix.sk + i] += (float)(sc * accq);
        if (c->dk) c->dk[ix.ok + t * ix.sk + i] += (float)acck;
    }
    if (c->dv) pn_rc_dv_add(c->dv + ix.ov + t * ix.sv, dS, kt, K, V);
    if (c->dg) c->dg[ix.og + t * ix.sg] += (float)(a * dgt);
    for (int64_t i = 0; i < (int64_t)K * V; i++) dS[i] *= a;
}

// ---------------------------------------------------------------- chunked

// Per-thread scratch of the chunked form. C = chunk size.
typedef struct {
    float *gam;          // (C) chunk-local cumsum of g
    float *A, *dA;       // (C, C)
    float *Qg, *Kd;      // (C, K)
    float *dqc, *dkc;    // (C, K) this chunk's dq, dk
    float *tq, *tk;      // (C, K) inter-chunk parts
    float *dvc;          // (C, V)
    float *S, *dS;       // (K, V)
} chunk_scratch;

static void scratch_init(chunk_scratch *w, int C, int K, int V) {
    w->gam = pn_malloc((size_t)C * sizeof(float));
    w->A = pn_malloc((size_t)C * C * sizeof(float));
    w->dA = pn_malloc((size_t)C * C * sizeof(float));
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
    free(w->gam), free(w->A), free(w->dA), free(w->Qg), free(w->Kd), free(w->dqc), free(w->dkc);
    free(w->tq), free(w->tk), free(w->dvc), free(w->S), free(w->dS);
}

// Fills gam (the cumsum of g over rows t0..t0+L−1), Qg = scale·Q⊙e^{γ} and
// Kd = K⊙e^{γ_L−γ}; returns γ_L (the last row's cumsum).
static float chunk_gates(const pn_rec_shape *s, head_ix ix, int t0, int L, const float *q, const float *k,
                         const float *g, chunk_scratch *w) {
    const int K = s->K;
    pn_rc_chunk_cumsum(w->gam, g + ix.og + (int64_t)t0 * ix.sg, ix.sg, L, 1);
    const float gl = w->gam[L - 1];
    for (int i = 0; i < L; i++) {
        const float *qi = q + ix.ok + (int64_t)(t0 + i) * ix.sk, *ki = k + ix.ok + (int64_t)(t0 + i) * ix.sk;
        const float eq = s->scale * expf(w->gam[i]), ek = expf(gl - w->gam[i]);
        for (int c = 0; c < K; c++) {
            w->Qg[(int64_t)i * K + c] = qi[c] * eq;
            w->Kd[(int64_t)i * K + c] = ki[c] * ek;
        }
    }
    return gl;
}

// M ⊙= scale·e^{γ_i−γ_j}·[i ≥ j] on an (L, L) matrix; the mask comes first so
// the upper triangle never evaluates exp of a positive number.
static void chunk_decay_mask(float *M, const float *gam, int L, float scale) {
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++)
            M[(int64_t)i * L + j] = j <= i ? M[(int64_t)i * L + j] * scale * expf(gam[i] - gam[j]) : 0.0f;
}

// S ← e^{γ_L} S + Kdᵀ V over one chunk.
static void chunk_state_update(const pn_rec_shape *s, int L, float gl, const float *Kd, const float *vc, int64_t sv,
                               float *S) {
    const int64_t KV = (int64_t)s->K * s->V;
    const float a = expf(gl);
    for (int64_t i = 0; i < KV; i++) S[i] *= a;
    pn_gemm(1, 0, s->K, s->V, L, 1.0f, Kd, s->K, vc, sv, 1.0f, S, s->V);
}

static void chunk_fwd_head(const pn_rec_shape *s, int C, head_ix ix, const float *q, const float *k, const float *v,
                           const float *g, const float *h0, float *o, float *ht, chunk_scratch *w) {
    const int T = s->T, K = s->K, V = s->V;
    const int64_t KV = (int64_t)K * V;
    pn_rc_load_f32(w->S, h0 ? h0 + ix.os : NULL, KV);
    for (int t0 = 0; t0 < T; t0 += C) {
        const int L = PN_MIN(C, T - t0);
        const float *qc = q + ix.ok + (int64_t)t0 * ix.sk, *kc = k + ix.ok + (int64_t)t0 * ix.sk;
        const float *vc = v + ix.ov + (int64_t)t0 * ix.sv;
        float *oc = o + ix.ov + (int64_t)t0 * ix.sv;
        const float gl = chunk_gates(s, ix, t0, L, q, k, g, w);
        // intra-chunk: O = (Q Kᵀ ⊙ decay mask) V
        pn_gemm(0, 1, L, L, K, 1.0f, qc, ix.sk, kc, ix.sk, 0.0f, w->A, L);
        chunk_decay_mask(w->A, w->gam, L, s->scale);
        pn_gemm(0, 0, L, V, L, 1.0f, w->A, L, vc, ix.sv, 0.0f, oc, ix.sv);
        // inter-chunk: O += (scale·Q ⊙ e^{γ}) S
        pn_gemm(0, 0, L, V, K, 1.0f, w->Qg, K, w->S, V, 1.0f, oc, ix.sv);
        chunk_state_update(s, L, gl, w->Kd, vc, ix.sv, w->S);
    }
    if (ht) memcpy(ht + ix.os, w->S, (size_t)KV * sizeof(float));
}

// Sn: (NT, K, V) chunk-start states, filled here.
static void chunk_bwd_head(const pn_rec_shape *s, int C, head_ix ix, const float *q, const float *k, const float *v,
                           const float *g, const float *h0, const float *dout, const float *dht, float *dq, float *dk,
                           float *dv, float *dg, float *dh0, float *Sn, chunk_scratch *w) {
    const int T = s->T, K = s->K, V = s->V;
    const int64_t KV = (int64_t)K * V;
    const int NT = (T + C - 1) / C;
    pn_rc_load_f32(w->S, h0 ? h0 + ix.os : NULL, KV);
    for (int n = 0; n < NT; n++) {
        const int t0 = n * C, L = PN_MIN(C, T - t0);
        memcpy(Sn + n * KV, w->S, (size_t)KV * sizeof(float));
        const float gl = chunk_gates(s, ix, t0, L, q, k, g, w);
        chunk_state_update(s, L, gl, w->Kd, v + ix.ov + (int64_t)t0 * ix.sv, ix.sv, w->S);
    }
    float *dS = w->dS;   // gradient w.r.t. the state at the end of chunk n
    pn_rc_load_f32(dS, dht ? dht + ix.os : NULL, KV);
    for (int n = NT - 1; n >= 0; n--) {
        const int t0 = n * C, L = PN_MIN(C, T - t0);
        const float *S = Sn + n * KV;
        const float *qc = q + ix.ok + (int64_t)t0 * ix.sk, *kc = k + ix.ok + (int64_t)t0 * ix.sk;
        const float *vc = v + ix.ov + (int64_t)t0 * ix.sv, *doc = dout + ix.ov + (int64_t)t0 * ix.sv;
        const float gl = chunk_gates(s, ix, t0, L, q, k, g, w);
        // masked scores A and dA = (dO Vᵀ) ⊙ mask
        pn_gemm(0, 1, L, L, K, 1.0f, qc, ix.sk, kc, ix.sk, 0.0f, w->A, L);
        chunk_decay_mask(w->A, w->gam, L, s->scale);
        pn_gemm(0, 1, L, L, V, 1.0f, doc, ix.sv, vc, ix.sv, 0.0f, w->dA, L);
        chunk_decay_mask(w->dA, w->gam, L, s->scale);
        // dq = dA K + scale·e^{γ} ⊙ (dO Sᵀ)
        pn_gemm(0, 0, L, K, L, 1.0f, w->dA, L, kc, ix.sk, 0.0f, w->dqc, K);
        pn_gemm(0, 1, L, K, V, 1.0f, doc, ix.sv, S, V, 0.0f, w->tq, K);
        // dk = dAᵀ Q + e^{γ_L−γ} ⊙ (V dSᵀ)
        pn_gemm(1, 0, L, K, L, 1.0f, w->dA, L, qc, ix.sk, 0.0f, w->dkc, K);
        pn_gemm(0, 1, L, K, V, 1.0f, vc, ix.sv, dS, V, 0.0f, w->tk, K);
        // dv = Aᵀ dO + Kd dS
        pn_gemm(1, 0, L, V, L, 1.0f, w->A, L, doc, ix.sv, 0.0f, w->dvc, V);
        pn_gemm(0, 0, L, V, K, 1.0f, w->Kd, K, dS, V, 1.0f, w->dvc, V);
        double last = 0;   // extra dγ of the last row: e^{γ_L}⟨dS, S⟩ + Σ_j k_j·dk_inter_j
        for (int64_t i = 0; i < KV; i++) last += (double)dS[i] * S[i];
        last *= exp((double)gl);
        for (int i = 0; i < L; i++) {
            const float eq = s->scale * expf(w->gam[i]), ek = expf(gl - w->gam[i]);
            for (int c = 0; c < K; c++) {
                const float ti = w->tk[(int64_t)i * K + c] * ek;
                w->dqc[(int64_t)i * K + c] += w->tq[(int64_t)i * K + c] * eq;
                w->dkc[(int64_t)i * K + c] += ti;
                last += (double)kc[(int64_t)i * ix.sk + c] * ti;
            }
        }
        // dγ_i = q_i·dq_i − k_i·dk_i, then the reverse chunk-local cumsum gives dg
        double carry = 0;
        for (int i = L - 1; i >= 0; i--) {
            double dgam = i == L - 1 ? last : 0;
            for (int c = 0; c < K; c++)
                dgam += (double)qc[(int64_t)i * ix.sk + c] * w->dqc[(int64_t)i * K + c] -
                        (double)kc[(int64_t)i * ix.sk + c] * w->dkc[(int64_t)i * K + c];
            carry += dgam;
            if (dg) dg[ix.og + (int64_t)(t0 + i) * ix.sg] += (float)carry;
        }
        for (int i = 0; i < L; i++) {
            for (int c = 0; c < K; c++) {
                if (dq) dq[ix.ok + (int64_t)(t0 + i) * ix.sk + c] += w->dqc[(int64_t)i * K + c];
                if (dk) dk[ix.ok + (int64_t)(t0 + i) * ix.sk + c] += w->dkc[(int64_t)i * K + c];
            }
            if (dv)
                for (int c = 0; c < V; c++) dv[ix.ov + (int64_t)(t0 + i) * ix.sv + c] += w->dvc[(int64_t)i * V + c];
        }
        // dS_start = e^{γ_L} dS + (scale·Q ⊙ e^{γ})ᵀ dO
        const float a = expf(gl);
        for (int64_t i = 0; i < KV; i++) dS[i] *= a;
        pn_gemm(1, 0, K, V, L, 1.0f, w->Qg, K, doc, ix.sv, 1.0f, dS, V);
    }
    if (dh0)
        for (int64_t i = 0; i < KV; i++) dh0[ix.os + i] += dS[i];
}

// ---------------------------------------------------------------- public

void pn_simple_gla_fwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v,
                       const float *g, const float *h0, float *o, float *ht) {
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
                rec_fwd_head(s, ix, q, k, v, g, h0, o, ht, S);
            else
                chunk_fwd_head(s, chunk, ix, q, k, v, g, h0, o, ht, &w);
        }
        if (chunk == 0)
            free(S);
        else
            scratch_free(&w);
    }
}

void pn_simple_gla_bwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v,
                       const float *g, const float *h0, const float *dout, const float *dht, float *dq, float *dk,
                       float *dv, float *dg, float *dh0) {
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
                rec_head c = {s, ix, q, k, v, g, dout, dq, dk, dv, dg};
                pn_rc_bptt_head(s->T, KV, h0 ? h0 + ix.os : NULL, dht ? dht + ix.os : NULL, dh0 ? dh0 + ix.os : NULL,
                                &r, rec_step_at, rec_token_bwd, &c);
            } else {
                chunk_bwd_head(s, chunk, ix, q, k, v, g, h0, dout, dht, dq, dk, dv, dg, dh0, Sn, &w);
            }
        }
        free(Sn);
        if (chunk == 0)
            pn_rc_bptt_free(&r);
        else
            scratch_free(&w);
    }
}
