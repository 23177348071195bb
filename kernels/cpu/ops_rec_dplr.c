// ops_rec_dplr.c — diagonal-plus-low-rank recurrence (the RWKV7 core), CPU.
//
// S_t = diag(exp(gk_t)) S_{t-1} + k_t v_tᵀ + b_t (a_tᵀ S_{t-1}),  o_t = S_tᵀ (scale · q_t),
// state S (K, V) per (b, h); the a-term reads the state before the decay.
//
// Two forms of the same function (kernels/ops.h):
//  - recurrent (chunk == 0): token by token in rec_t (fp32, measured against the float64
//    fixtures); backward is token-level BPTT with S_{t-1} recomputed from checkpoints
//    taken every REC_SEG tokens.
//  - chunked (chunk > 0), fully in matrix form per chunk. With p_i = S_{i-1}ᵀ a_i (V) the
//    update is a GLA recurrence with two key/value pairs (k, v) and (b, p). Within a
//    chunk of L rows, start state S, chunk-local cumsum G (L, K) of gk, and G_{-1} = 0:
//        A_qk[i,j] = scale Σ_c q_ic k_jc e^{G_ic − G_jc}       (j ≤ i)
//        A_qb[i,j] = scale Σ_c q_ic b_jc e^{G_ic − G_jc}       (j ≤ i)
//        A_ak[i,j] =       Σ_c a_ic k_jc e^{G_{i−1,c} − G_jc}  (j < i)
//        A_ab[i,j] =       Σ_c a_ic b_jc e^{G_{i−1,c} − G_jc}  (j < i)
//        P = (I − A_ab)⁻¹ [ (A ⊙ e^{G_{i−1}}) S + A_ak V ]     (forward substitution)
//        O = (scale·Q ⊙ e^{G}) S + A_qk V + A_qb P
//        S ← diag(e^{G_L}) S + (K ⊙ e^{G_L−G})ᵀ V + (B ⊙ e^{G_L−G})ᵀ P
//    The four score matrices are built element-wise (per-channel gates cannot be
//    factored safely; every exponent is a masked, non-positive difference); all other
//    products go through pn_gemm. Backward recomputes the chunk-start states and runs a
//    reverse scan of dS; per chunk dP = A_qbᵀ dO + B̂ dS, dR = (I − A_ab)⁻ᵀ dP by back
//    substitution, then the score gradients (dO Vᵀ, dO Pᵀ, dR Vᵀ, dR Pᵀ) flow element-wise
//    into dq, dk, da, db and the gate gradient dG (per row, then reverse cumsum → dgk).
// OpenMP runs over the B·H independent heads; each thread owns its scratch. The (b, h)
// indexing, the checkpointed BPTT driver and the chunk plumbing are in rec_common.h.
#include "kernels/cpu/rec_common.h"
#include <math.h>

typedef pn_rc_head head_ix;

// The inputs of one op call, so helpers take one argument instead of nine.
typedef struct {
    const float *q, *k, *v, *gk, *a, *b;
} dplr_in;

// ---------------------------------------------------------------- recurrent

// S ← diag(e^{gk}) S + k vᵀ + b (aᵀ S); p (V) scratch.
static void rec_step(rec_t *S, const float *k, const float *v, const float *gk, const float *a, const float *b,
                     int K, int V, rec_t *p) {
    for (int j = 0; j < V; j++) p[j] = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < V; j++) p[j] += (rec_t)a[i] * S[(int64_t)i * V + j];
    for (int i = 0; i < K; i++) {
        rec_t e = exp((rec_t)gk[i]), ki = k[i], bi = b[i];
        rec_t *row = S + (int64_t)i * V;
        for (int j = 0; j < V; j++) row[j] = e * row[j] + ki * v[j] + bi * p[j];
    }
}

static void rec_step_t(const dplr_in *in, head_ix ix, int t, int K, int V, rec_t *S, rec_t *p) {
    const int64_t ik = ix.ok + t * ix.sk;
    rec_step(S, in->k + ik, in->v + ix.ov + t * ix.sv, in->gk + ik, in->a + ik, in->b + ik, K, V, p);
}

static void rec_fwd_head(const pn_rec_shape *s, head_ix ix, const dplr_in *in, const float *h0, float *o, float *ht,
                         rec_t *S, rec_t *p) {
    const int K = s->K, V = s->V;
    pn_rc_load(S, h0 ? h0 + ix.os : NULL, (int64_t)K * V);
    for (int t = 0; t < s->T; t++) {
        rec_step_t(in, ix, t, K, V, S, p);
        pn_rc_readout(o + ix.ov + t * ix.sv, S, in->q + ix.ok + t * ix.sk, K, V, s->scale);
    }
    if (ht)
        for (int64_t i = 0; i < (int64_t)K * V; i++) ht[ix.os + i] = (float)S[i];
}

// Gradient outputs of one call.
typedef struct {
    float *dq, *dk, *dv, *dgk, *da, *db, *dh0;
} dplr_grad;

// One head for the BPTT callbacks; p, dp (V) scratch.
typedef struct {
    const pn_rec_shape *s;
    head_ix ix;
    const dplr_in *in;
    const float *dout;
    const dplr_grad *gr;
    rec_t *p, *dp;
} rec_head;

static void rec_step_at(void *ctx, int t, rec_t *S) {
    const rec_head *c = ctx;
    rec_step_t(c->in, c->ix, t, c->s->K, c->s->V, S, c->p);
}

// Token t: dq, dk, dgk, da, db, dv from dS (w.r.t. S_t), then dS ← diag(e^{gk}) dS + a dpᵀ.
static void rec_token_bwd(void *ctx, int t, const rec_t *St, const rec_t *Sp, rec_t *dS) {
    const rec_head *c = ctx;
    const head_ix ix = c->ix;
    const dplr_in *in = c->in;
    const dplr_grad *gr = c->gr;
    const int K = c->s->K, V = c->s->V;
    rec_t *p = c->p, *dp = c->dp;
    const int64_t ik = ix.ok + t * ix.sk, iv = ix.ov + t * ix.sv;
    const float *qt = in->q + ik, *kt = in->k + ik, *gt = in->gk + ik, *at = in->a + ik, *bt = in->b + ik;
    const float *vt = in->v + iv, *dot = c->dout + iv;
    const rec_t sc = c->s->scale;
    pn_rc_ds_add_readout(dS, qt, dot, K, V, sc);
    // p = S_{t-1}ᵀ a, dp = dSᵀ b
    for (int j = 0; j < V; j++) p[j] = 0, dp[j] = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < V; j++) {
            p[j] += (rec_t)at[i] * Sp[(int64_t)i * V + j];
            dp[j] += (rec_t)bt[i] * dS[(int64_t)i * V + j];
        }
    for (int i = 0; i < K; i++) {
        const rec_t *srow = St + (int64_t)i * V, *prow = Sp + (int64_t)i * V;
        rec_t *drow = dS + (int64_t)i * V;
        rec_t accq = 0, acck = 0, accg = 0, accb = 0, acca = 0;
        for (int j = 0; j < V; j++) {
            accq += srow[j] * dot[j];
            acck += drow[j] * vt[j];
            accg += drow[j] * prow[j];
            accb += drow[j] * p[j];
            acca += prow[j] * dp[j];
        }
        const rec_t e = exp((rec_t)gt[i]);
        if (gr->dq) gr->dq[ik + i] += (float)(sc * accq);
        if (gr->dk) gr->dk[ik + i] += (float)acck;
        if (gr->dgk) gr->dgk[ik + i] += (float)(e * accg);
        if (gr->db) gr->db[ik + i] += (float)accb;
        if (gr->da) gr->da[ik + i] += (float)acca;
    }
    if (gr->dv) pn_rc_dv_add(gr->dv + iv, dS, kt, K, V);
    // dS_{t-1} = diag(e^{gk}) dS + a dpᵀ
    for (int i = 0; i < K; i++) {
        const rec_t e = exp((rec_t)gt[i]);
        for (int j = 0; j < V; j++) dS[(int64_t)i * V + j] = e * dS[(int64_t)i * V + j] + at[i] * dp[j];
    }
}

// ---------------------------------------------------------------- chunked

typedef struct {
    float *G;                                // (C, K) chunk-local cumsum of gk
    float *Aqk, *Aqb, *Aak, *Aab;            // (C, C) intra-chunk scores
    float *dAqk, *dAqb, *dAak, *dAab;        // (C, C)
    float *Qg, *Ag, *Kd, *Bd;                // (C, K) gated q (scaled), a, k, b
    float *tq, *ta, *tk, *tb;                // (C, K) inter-chunk gradient parts
    float *dqc, *dkc, *dac, *dbc;            // (C, K) this chunk's gradients
    double *dG;                              // (C, K) gradient w.r.t. the cumsum G
    float *P, *dP, *dvc;                     // (C, V)
    float *S, *dS;                           // (K, V)
} chunk_scratch;

static void scratch_init(chunk_scratch *w, int C, int K, int V) {
    const size_t CC = (size_t)C * C * sizeof(float), CK = (size_t)C * K * sizeof(float);
    const size_t CV = (size_t)C * V * sizeof(float), KV = (size_t)K * V * sizeof(float);
    w->G = pn_malloc(CK);
    w->Aqk = pn_malloc(CC), w->Aqb = pn_malloc(CC), w->Aak = pn_malloc(CC), w->Aab = pn_malloc(CC);
    w->dAqk = pn_malloc(CC), w->dAqb = pn_malloc(CC), w->dAak = pn_malloc(CC), w->dAab = pn_malloc(CC);
    w->Qg = pn_malloc(CK), w->Ag = pn_malloc(CK), w->Kd = pn_malloc(CK), w->Bd = pn_malloc(CK);
    w->tq = pn_malloc(CK), w->ta = pn_malloc(CK), w->tk = pn_malloc(CK), w->tb = pn_malloc(CK);
    w->dqc = pn_malloc(CK), w->dkc = pn_malloc(CK), w->dac = pn_malloc(CK), w->dbc = pn_malloc(CK);
    w->dG = pn_malloc((size_t)C * K * sizeof(double));
    w->P = pn_malloc(CV), w->dP = pn_malloc(CV), w->dvc = pn_malloc(CV);
    w->S = pn_malloc(KV), w->dS = pn_malloc(KV);
}

static void scratch_free(chunk_scratch *w) {
    void *all[] = {w->G,  w->Aqk, w->Aqb, w->Aak, w->Aab, w->dAqk, w->dAqb, w->dAak, w->dAab, w->Qg,
                   w->Ag, w->Kd,  w->Bd,  w->tq,  w->ta,  w->tk,   w->tb,   w->dqc,  w->dkc,  w->dac,
                   w->dbc, w->dG, w->P,   w->dP,  w->dvc, w->S,    w->dS};
    for (size_t i = 0; i < PN_ARRAY_LEN(all); i++) free(all[i]);
}

// One chunk: rows t0 .. t0+L−1 of one head.
typedef struct {
    int t0, L;
    const float *q, *k, *a, *b;   // (L, K) rows, stride sk
    const float *v;               // (L, V) rows, stride sv
} chunk_rows;

static chunk_rows chunk_at(const dplr_in *in, head_ix ix, int t0, int L) {
    chunk_rows c;
    c.t0 = t0, c.L = L;
    c.q = in->q + ix.ok + (int64_t)t0 * ix.sk;
    c.k = in->k + ix.ok + (int64_t)t0 * ix.sk;
    c.a = in->a + ix.ok + (int64_t)t0 * ix.sk;
    c.b = in->b + ix.ok + (int64_t)t0 * ix.sk;
    c.v = in->v + ix.ov + (int64_t)t0 * ix.sv;
    return c;
}

// G, gated rows (Qg, Ag, Kd, Bd) and the four masked score matrices of one chunk.
static void chunk_prepare(const pn_rec_shape *s, head_ix ix, const dplr_in *in, const chunk_rows *c,
                          chunk_scratch *w) {
    const int K = s->K, L = c->L;
    const int64_t sk = ix.sk;
    pn_rc_chunk_cumsum(w->G, in->gk + ix.ok + (int64_t)c->t0 * sk, sk, L, K);
    const float *GL = w->G + (int64_t)(L - 1) * K;
    for (int i = 0; i < L; i++) {
        const float *Gi = w->G + (int64_t)i * K;
        for (int x = 0; x < K; x++) {
            const int64_t ix2 = (int64_t)i * K + x, ir = (int64_t)i * sk + x;
            const float gp = i ? Gi[x - K] : 0.0f, dec = expf(GL[x] - Gi[x]);
            w->Qg[ix2] = s->scale * c->q[ir] * expf(Gi[x]);
            w->Ag[ix2] = c->a[ir] * expf(gp);
            w->Kd[ix2] = c->k[ir] * dec;
            w->Bd[ix2] = c->b[ir] * dec;
        }
    }
    for (int i = 0; i < L; i++) {
        const float *Gi = w->G + (int64_t)i * K, *qi = c->q + (int64_t)i * sk, *ai = c->a + (int64_t)i * sk;
        for (int j = 0; j < L; j++) {
            float qk = 0, qb = 0, ak = 0, ab = 0;
            if (j <= i) {
                const float *Gj = w->G + (int64_t)j * K, *kj = c->k + (int64_t)j * sk, *bj = c->b + (int64_t)j * sk;
                for (int x = 0; x < K; x++) {
                    const float e = expf(Gi[x] - Gj[x]);
                    qk += qi[x] * kj[x] * e;
                    qb += qi[x] * bj[x] * e;
                }
                if (j < i)
                    for (int x = 0; x < K; x++) {
                        const float e = expf(Gi[x - K] - Gj[x]);   // G_{i−1} − G_j
                        ak += ai[x] * kj[x] * e;
                        ab += ai[x] * bj[x] * e;
                    }
            }
            const int64_t ij = (int64_t)i * L + j;
            w->Aqk[ij] = s->scale * qk, w->Aqb[ij] = s->scale * qb, w->Aak[ij] = ak, w->Aab[ij] = ab;
        }
    }
}

// P = (I − A_ab)⁻¹ [ Ag S + A_ak V ] by forward substitution (A_ab strictly lower).
static void chunk_solve_p(const pn_rec_shape *s, head_ix ix, const chunk_rows *c, const float *S, chunk_scratch *w) {
    const int L = c->L, K = s->K, V = s->V;
    pn_gemm(0, 0, L, V, K, 1.0f, w->Ag, K, S, V, 0.0f, w->P, V);
    pn_gemm(0, 0, L, V, L, 1.0f, w->Aak, L, c->v, ix.sv, 1.0f, w->P, V);
    for (int i = 1; i < L; i++) {
        float *pi = w->P + (int64_t)i * V;
        for (int j = 0; j < i; j++) {
            const float m = w->Aab[(int64_t)i * L + j], *pj = w->P + (int64_t)j * V;
            for (int x = 0; x < V; x++) pi[x] += m * pj[x];
        }
    }
}

// S ← diag(e^{G_L}) S + Kdᵀ V + Bdᵀ P
static void chunk_state_update(const pn_rec_shape *s, head_ix ix, const chunk_rows *c, chunk_scratch *w, float *S) {
    const int K = s->K, V = s->V, L = c->L;
    pn_rc_scale_rows_exp(S, w->G + (int64_t)(L - 1) * K, K, V);
    pn_gemm(1, 0, K, V, L, 1.0f, w->Kd, K, c->v, ix.sv, 1.0f, S, V);
    pn_gemm(1, 0, K, V, L, 1.0f, w->Bd, K, w->P, V, 1.0f, S, V);
}

static void chunk_fwd_head(const pn_rec_shape *s, int C, head_ix ix, const dplr_in *in, const float *h0, float *o,
                           float *ht, chunk_scratch *w) {
    const int T = s->T, K = s->K, V = s->V;
    const int64_t KV = (int64_t)K * V;
    pn_rc_load_f32(w->S, h0 ? h0 + ix.os : NULL, KV);
    for (int t0 = 0; t0 < T; t0 += C) {
        const chunk_rows c = chunk_at(in, ix, t0, PN_MIN(C, T - t0));
        float *oc = o + ix.ov + (int64_t)t0 * ix.sv;
        chunk_prepare(s, ix, in, &c, w);
        chunk_solve_p(s, ix, &c, w->S, w);
        // O = Qg S + A_qk V + A_qb P
        pn_gemm(0, 0, c.L, V, K, 1.0f, w->Qg, K, w->S, V, 0.0f, oc, ix.sv);
        pn_gemm(0, 0, c.L, V, c.L, 1.0f, w->Aqk, c.L, c.v, ix.sv, 1.0f, oc, ix.sv);
        pn_gemm(0, 0, c.L, V, c.L, 1.0f, w->Aqb, c.L, w->P, V, 1.0f, oc, ix.sv);
        chunk_state_update(s, ix, &c, w, w->S);
    }
    if (ht) memcpy(ht + ix.os, w->S, (size_t)KV * sizeof(float));
}

// Gradients of one chunk given dO and dS (w.r.t. the chunk's end state); S is the
// chunk's start state; on return dS holds the gradient w.r.t. S.
static void chunk_bwd_one(const pn_rec_shape *s, head_ix ix, const chunk_rows *c, const float *S, const float *doc,
                          const dplr_grad *gr, chunk_scratch *w) {
    const int K = s->K, V = s->V, L = c->L;
    const int64_t sk = ix.sk, sv = ix.sv;
    const float *G = w->G, *GL = w->G + (int64_t)(L - 1) * K;
    float *dS = w->dS;
    // dP = A_qbᵀ dO + Bd dS, then dR = (I − A_ab)⁻ᵀ dP by back substitution (in dP)
    pn_gemm(1, 0, L, V, L, 1.0f, w->Aqb, L, doc, sv, 0.0f, w->dP, V);
    pn_gemm(0, 0, L, V, K, 1.0f, w->Bd, K, dS, V, 1.0f, w->dP, V);
    for (int i = L - 2; i >= 0; i--) {
        float *ri = w->dP + (int64_t)i * V;
        for (int j = i + 1; j < L; j++) {
            const float m = w->Aab[(int64_t)j * L + i], *rj = w->dP + (int64_t)j * V;
            for (int x = 0; x < V; x++) ri[x] += m * rj[x];
        }
    }
    const float *dR = w->dP;
    // dV = A_qkᵀ dO + Kd dS + A_akᵀ dR
    pn_gemm(1, 0, L, V, L, 1.0f, w->Aqk, L, doc, sv, 0.0f, w->dvc, V);
    pn_gemm(0, 0, L, V, K, 1.0f, w->Kd, K, dS, V, 1.0f, w->dvc, V);
    pn_gemm(1, 0, L, V, L, 1.0f, w->Aak, L, dR, V, 1.0f, w->dvc, V);
    // score gradients (masks are applied in the element loop below)
    pn_gemm(0, 1, L, L, V, 1.0f, doc, sv, c->v, sv, 0.0f, w->dAqk, L);
    pn_gemm(0, 1, L, L, V, 1.0f, doc, sv, w->P, V, 0.0f, w->dAqb, L);
    pn_gemm(0, 1, L, L, V, 1.0f, dR, V, c->v, sv, 0.0f, w->dAak, L);
    pn_gemm(0, 1, L, L, V, 1.0f, dR, V, w->P, V, 0.0f, w->dAab, L);
    // inter-chunk parts: dO Sᵀ, dR Sᵀ, V dSᵀ, P dSᵀ
    pn_gemm(0, 1, L, K, V, 1.0f, doc, sv, S, V, 0.0f, w->tq, K);
    pn_gemm(0, 1, L, K, V, 1.0f, dR, V, S, V, 0.0f, w->ta, K);
    pn_gemm(0, 1, L, K, V, 1.0f, c->v, sv, dS, V, 0.0f, w->tk, K);
    pn_gemm(0, 1, L, K, V, 1.0f, w->P, V, dS, V, 0.0f, w->tb, K);
    const size_t CK = (size_t)L * K;
    memset(w->dqc, 0, CK * sizeof(float)), memset(w->dkc, 0, CK * sizeof(float));
    memset(w->dac, 0, CK * sizeof(float)), memset(w->dbc, 0, CK * sizeof(float));
    memset(w->dG, 0, CK * sizeof(double));
    // intra-chunk scores → dq, dk, da, db, dG. A score term with exponent G_r − G_j
    // (r = i for the q rows, i − 1 for the a rows) adds its value y to dG_r and −y to dG_j.
    for (int i = 0; i < L; i++) {
        const float *Gi = G + (int64_t)i * K, *qi = c->q + (int64_t)i * sk, *ai = c->a + (int64_t)i * sk;
        for (int j = 0; j <= i; j++) {
            const float *Gj = G + (int64_t)j * K, *kj = c->k + (int64_t)j * sk, *bj = c->b + (int64_t)j * sk;
            const int64_t ij = (int64_t)i * L + j;
            const float gqk = s->scale * w->dAqk[ij], gqb = s->scale * w->dAqb[ij];
            for (int x = 0; x < K; x++) {
                const float e = expf(Gi[x] - Gj[x]);
                const float xk = gqk * e, xb = gqb * e;
                w->dqc[(int64_t)i * K + x] += xk * kj[x] + xb * bj[x];
                w->dkc[(int64_t)j * K + x] += xk * qi[x];
                w->dbc[(int64_t)j * K + x] += xb * qi[x];
                const double y = (double)qi[x] * (xk * kj[x] + xb * bj[x]);
                w->dG[(int64_t)i * K + x] += y;
                w->dG[(int64_t)j * K + x] -= y;
            }
            if (j == i) continue;
            const float gak = w->dAak[ij], gab = w->dAab[ij];
            for (int x = 0; x < K; x++) {
                const float e = expf(Gi[x - K] - Gj[x]);   // G_{i−1} − G_j
                const float xk = gak * e, xb = gab * e;
                w->dac[(int64_t)i * K + x] += xk * kj[x] + xb * bj[x];
                w->dkc[(int64_t)j * K + x] += xk * ai[x];
                w->dbc[(int64_t)j * K + x] += xb * ai[x];
                const double y = (double)ai[x] * (xk * kj[x] + xb * bj[x]);
                w->dG[(int64_t)(i - 1) * K + x] += y;
                w->dG[(int64_t)j * K + x] -= y;
            }
        }
    }
    // inter-chunk parts through the gated rows Qg, Ag, Kd, Bd and the decayed start state
    for (int x = 0; x < K; x++) {
        double last = 0;
        for (int j = 0; j < V; j++) last += (double)dS[(int64_t)x * V + j] * S[(int64_t)x * V + j];
        last *= exp((double)GL[x]);
        for (int i = 0; i < L; i++) {
            const int64_t ii = (int64_t)i * K + x, ir = (int64_t)i * sk + x;
            const float gq = w->tq[ii] * s->scale * expf(G[ii]);
            const float ga = w->ta[ii] * (i ? expf(G[ii - K]) : 1.0f);
            const float dec = expf(GL[x] - G[ii]), gk = w->tk[ii] * dec, gb = w->tb[ii] * dec;
            w->dqc[ii] += gq, w->dac[ii] += ga, w->dkc[ii] += gk, w->dbc[ii] += gb;
            w->dG[ii] += (double)c->q[ir] * gq;
            if (i) w->dG[ii - K] += (double)c->a[ir] * ga;
            const double y = (double)c->k[ir] * gk + (double)c->b[ir] * gb;
            w->dG[ii] -= y;
            last += y;
        }
        w->dG[(int64_t)(L - 1) * K + x] += last;
        double carry = 0;   // reverse chunk-local cumsum: dgk_s = Σ_{i ≥ s} dG_i
        for (int i = L - 1; i >= 0; i--) {
            carry += w->dG[(int64_t)i * K + x];
            if (gr->dgk) gr->dgk[ix.ok + (int64_t)(c->t0 + i) * sk + x] += (float)carry;
        }
    }
    for (int i = 0; i < L; i++) {
        const int64_t ik = ix.ok + (int64_t)(c->t0 + i) * sk;
        for (int x = 0; x < K; x++) {
            if (gr->dq) gr->dq[ik + x] += w->dqc[(int64_t)i * K + x];
            if (gr->dk) gr->dk[ik + x] += w->dkc[(int64_t)i * K + x];
            if (gr->da) gr->da[ik + x] += w->dac[(int64_t)i * K + x];
            if (gr->db) gr->db[ik + x] += w->dbc[(int64_t)i * K + x];
        }
        if (gr->dv)
            for (int x = 0; x < V; x++) gr->dv[ix.ov + (int64_t)(c->t0 + i) * sv + x] += w->dvc[(int64_t)i * V + x];
    }
    // dS_start = diag(e^{G_L}) dS + Qgᵀ dO + Agᵀ dR
    pn_rc_scale_rows_exp(dS, GL, K, V);
    pn_gemm(1, 0, K, V, L, 1.0f, w->Qg, K, doc, sv, 1.0f, dS, V);
    pn_gemm(1, 0, K, V, L, 1.0f, w->Ag, K, dR, V, 1.0f, dS, V);
}

// Sn: (NT, K, V) chunk-start states, filled here.
static void chunk_bwd_head(const pn_rec_shape *s, int C, head_ix ix, const dplr_in *in, const float *h0,
                           const float *dout, const float *dht, const dplr_grad *gr, float *Sn, chunk_scratch *w) {
    const int T = s->T;
    const int64_t KV = (int64_t)s->K * s->V;
    const int NT = (T + C - 1) / C;
    pn_rc_load_f32(w->S, h0 ? h0 + ix.os : NULL, KV);
    for (int n = 0; n < NT; n++) {
        const chunk_rows c = chunk_at(in, ix, n * C, PN_MIN(C, T - n * C));
        memcpy(Sn + n * KV, w->S, (size_t)KV * sizeof(float));
        chunk_prepare(s, ix, in, &c, w);
        chunk_solve_p(s, ix, &c, w->S, w);
        chunk_state_update(s, ix, &c, w, w->S);
    }
    pn_rc_load_f32(w->dS, dht ? dht + ix.os : NULL, KV);
    for (int n = NT - 1; n >= 0; n--) {
        const chunk_rows c = chunk_at(in, ix, n * C, PN_MIN(C, T - n * C));
        chunk_prepare(s, ix, in, &c, w);
        chunk_solve_p(s, ix, &c, Sn + n * KV, w);
        chunk_bwd_one(s, ix, &c, Sn + n * KV, dout + ix.ov + (int64_t)c.t0 * ix.sv, gr, w);
    }
    if (gr->dh0)
        for (int64_t i = 0; i < KV; i++) gr->dh0[ix.os + i] += w->dS[i];
}

// ---------------------------------------------------------------- public

void pn_dplr_fwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v, const float *gk,
                 const float *a, const float *b, const float *h0, float *o, float *ht) {
    PN_ASSERT(chunk >= 0 && s->T >= 0 && s->K > 0 && s->V > 0);
    const dplr_in in = {q, k, v, gk, a, b};
    const int BH = s->B * s->H;
#pragma omp parallel
    {
        rec_t *S = NULL, *p = NULL;
        chunk_scratch w = {0};
        if (chunk == 0) {
            S = pn_malloc((size_t)s->K * s->V * sizeof(rec_t));
            p = pn_malloc((size_t)s->V * sizeof(rec_t));
        } else {
            scratch_init(&w, chunk, s->K, s->V);
        }
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < BH; bh++) {
            head_ix ix = pn_rc_head_at(s, bh / s->H, bh % s->H);
            if (chunk == 0)
                rec_fwd_head(s, ix, &in, h0, o, ht, S, p);
            else
                chunk_fwd_head(s, chunk, ix, &in, h0, o, ht, &w);
        }
        free(S), free(p);
        if (chunk > 0) scratch_free(&w);
    }
}

void pn_dplr_bwd(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v, const float *gk,
                 const float *a, const float *b, const float *h0, const float *dout, const float *dht, float *dq,
                 float *dk, float *dv, float *dgk, float *da, float *db, float *dh0) {
    PN_ASSERT(chunk >= 0 && s->T >= 0 && s->K > 0 && s->V > 0);
    const dplr_in in = {q, k, v, gk, a, b};
    const dplr_grad gr = {dq, dk, dv, dgk, da, db, dh0};
    const int BH = s->B * s->H;
    const int64_t KV = (int64_t)s->K * s->V;
#pragma omp parallel
    {
        pn_rc_bptt r = {0};
        rec_t *p = NULL, *dp = NULL;
        float *Sn = NULL;
        chunk_scratch w = {0};
        if (chunk == 0) {
            pn_rc_bptt_alloc(&r, s->T, KV);
            p = pn_malloc((size_t)s->V * sizeof(rec_t));
            dp = pn_malloc((size_t)s->V * sizeof(rec_t));
        } else {
            scratch_init(&w, chunk, s->K, s->V);
            Sn = pn_rc_chunk_states_alloc(s->T, chunk, KV);
        }
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < BH; bh++) {
            head_ix ix = pn_rc_head_at(s, bh / s->H, bh % s->H);
            if (chunk == 0) {
                rec_head c = {s, ix, &in, dout, &gr, p, dp};
                pn_rc_bptt_head(s->T, KV, h0 ? h0 + ix.os : NULL, dht ? dht + ix.os : NULL, dh0 ? dh0 + ix.os : NULL,
                                &r, rec_step_at, rec_token_bwd, &c);
            } else {
                chunk_bwd_head(s, chunk, ix, &in, h0, dout, dht, &gr, Sn, &w);
            }
        }
        free(p), free(dp), free(Sn);
        if (chunk == 0)
            pn_rc_bptt_free(&r);
        else
            scratch_free(&w);
    }
}
