// ops_rec_delta.c — the delta-rule family (DeltaNet g = 0, Gated DeltaNet / JetBlock core) on the CPU.
//
// Per (batch, head) and token t, with state S (K, V):
//   S' = e^{g_t} S;  u_t = β_t (v_t − S'ᵀ k_t);  S = S' + k_t u_tᵀ;  o_t = Sᵀ (scale · q_t).
//
// Two forms of the same function (kernels/ops.h):
//  - recurrent (chunk == 0): the token loop, state in double so it can serve as the reference
//    for the chunked form and the CUDA kernels; backward is token-level BPTT
//    (LINEAR_ATTENTION_KERNELS.md §3.2, "Simpler CPU reference backward"). The states are
//    checkpointed every REC_SEG tokens and recomputed per segment, so memory is O(T/REC_SEG · K·V).
//  - chunked (chunk = C > 0): the WY/UT algorithm of §3.1 in natural-exp form. Per chunk, with
//    γ the chunk-local cumsum of g, E_ij = e^{γ_i − γ_j} (i ≥ j only, so every exponent is ≤ 0):
//      L = strict_tril(diag(β) K Kᵀ ⊙ E),  A = (I + L)⁻¹,  W = A diag(β e^γ) K,  U = A diag(β) V,
//      Vn = U − W S0,  O = scale [diag(e^γ) Q S0 + tril(Q Kᵀ ⊙ E) Vn],
//      S1 = e^{γ_last} S0 + Kᵀ diag(e^{γ_last − γ}) Vn.
//    The backward is reverse-mode through exactly these equations, chunk by chunk, starting
//    from recomputed chunk-start states (derivation in the comments of chunk_bwd_head).
//    All chunk products go through pn_gemm, reading q/k/v in place with a row stride of H·K
//    or H·V, so nothing is gathered.
// Gradients are accumulated per head in private full-size buffers and ADDED to the caller's
// at the end, which is where the optional q/k L2-norm backward is applied too.
#include "kernels/ops.h"
#include "core/common.h"
#include <math.h>
#include <string.h>

#define REC_SEG 64          // checkpoint spacing of the recurrent backward
#define L2NORM_EPS 1e-6

// One (batch, head) slice: pointers at token 0 plus the strides between tokens.
typedef struct {
    int T, K, V;
    int64_t sk, sv, sg;   // H·K, H·V, H
    float scale;
} head_geom;

// ---------------------------------------------------------------- q/k L2 normalisation
// y = x / sqrt(Σx² + eps) per row of D; rstd saved for the backward.
static void l2norm_rows_fwd(float *y, float *rstd, const float *x, int64_t N, int D) {
#pragma omp parallel for schedule(static) if (N * D > 65536)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        double r = 1.0 / sqrt(ss + L2NORM_EPS);
        rstd[n] = (float)r;
        for (int i = 0; i < D; i++) y[n * D + i] = (float)(xr[i] * r);
    }
}

// dx += rstd · dy − rstd · (dy·y) · y
static void l2norm_rows_bwd_add(float *dx, const float *dy, const float *y, const float *rstd, int64_t N, int D) {
#pragma omp parallel for schedule(static) if (N * D > 65536)
    for (int64_t n = 0; n < N; n++) {
        const float *dyr = dy + n * D, *yr = y + n * D;
        double dot = 0;
        for (int i = 0; i < D; i++) dot += (double)dyr[i] * yr[i];
        for (int i = 0; i < D; i++) dx[n * D + i] += (float)(rstd[n] * (dyr[i] - dot * yr[i]));
    }
}

static void add_into(float *dst, const float *src, int64_t n) {
    if (!dst) return;
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

// ---------------------------------------------------------------- recurrent form
// One token in place on S (K, V) in double; p, u (V) are scratch and hold S'ᵀk and u on return.
static void rec_step(const head_geom *d, double *S, double *p, double *u, const float *qt, const float *kt,
                     const float *vt, double alpha, double bt, float *ot) {
    const int K = d->K, V = d->V;
    if (alpha != 1.0)
        for (int64_t i = 0; i < (int64_t)K * V; i++) S[i] *= alpha;
    for (int j = 0; j < V; j++) p[j] = 0;
    for (int i = 0; i < K; i++) {
        const double ki = kt[i];
        const double *Si = S + (int64_t)i * V;
        for (int j = 0; j < V; j++) p[j] += Si[j] * ki;
    }
    for (int j = 0; j < V; j++) u[j] = bt * ((double)vt[j] - p[j]);
    for (int i = 0; i < K; i++) {
        const double ki = kt[i];
        double *Si = S + (int64_t)i * V;
        for (int j = 0; j < V; j++) Si[j] += ki * u[j];
    }
    if (ot) {
        for (int j = 0; j < V; j++) p[j] = 0;   // p is dead now; reuse it for o
        for (int i = 0; i < K; i++) {
            const double qi = (double)d->scale * qt[i];
            const double *Si = S + (int64_t)i * V;
            for (int j = 0; j < V; j++) p[j] += Si[j] * qi;
        }
        for (int j = 0; j < V; j++) ot[j] = (float)p[j];
    }
}

static void rec_fwd_head(const head_geom *d, const float *q, const float *k, const float *v, const float *g,
                         const float *beta, double *S, float *o) {
    double *p = pn_malloc(sizeof(double) * 2 * d->V), *u = p + d->V;
    for (int t = 0; t < d->T; t++) {
        double alpha = g ? exp((double)g[t * d->sg]) : 1.0;
        rec_step(d, S, p, u, q + t * d->sk, k + t * d->sk, v + t * d->sv, alpha, beta[t * d->sg],
                 o ? o + t * d->sv : NULL);
    }
    free(p);
}

// BPTT. dS enters as dht (or 0) and leaves as dh0. Gradients go to the head's slices of
// dq, dk (stride sk), dv (sv), dg, dbeta (sg).
static void rec_bwd_head(const head_geom *d, const float *q, const float *k, const float *v, const float *g,
                         const float *beta, const double *S0, const float *dout, double *dS, float *dq, float *dk,
                         float *dv, float *dg, float *dbeta) {
    const int T = d->T, K = d->K, V = d->V;
    const int64_t KV = (int64_t)K * V;
    const int nseg = (T + REC_SEG - 1) / REC_SEG;
    double *ck = pn_malloc(sizeof(double) * KV * (nseg ? nseg : 1));    // state before each segment
    double *Sseg = pn_malloc(sizeof(double) * KV * (REC_SEG + 1));       // S_{t0-1} .. S_{t0+len-1}
    double *p = pn_malloc(sizeof(double) * 4 * V), *u = p + V, *du = p + 2 * V, *dp = p + 3 * V;
    double *acc = pn_malloc(sizeof(double) * K);

    memcpy(Sseg, S0, sizeof(double) * KV);
    for (int n = 0; n < nseg; n++) {
        memcpy(ck + n * KV, Sseg, sizeof(double) * KV);
        int t1 = PN_MIN(T, (n + 1) * REC_SEG);
        for (int t = n * REC_SEG; t < t1; t++)
            rec_step(d, Sseg, p, u, NULL, k + t * d->sk, v + t * d->sv, g ? exp((double)g[t * d->sg]) : 1.0,
                     beta[t * d->sg], NULL);
    }

    for (int n = nseg - 1; n >= 0; n--) {
        const int t0 = n * REC_SEG, len = PN_MIN(T, t0 + REC_SEG) - t0;
        memcpy(Sseg, ck + n * KV, sizeof(double) * KV);
        for (int i = 0; i < len; i++) {
            const int t = t0 + i;
            memcpy(Sseg + (i + 1) * KV, Sseg + i * KV, sizeof(double) * KV);
            rec_step(d, Sseg + (i + 1) * KV, p, u, NULL, k + t * d->sk, v + t * d->sv,
                     g ? exp((double)g[t * d->sg]) : 1.0, beta[t * d->sg], NULL);
        }
        for (int i = len - 1; i >= 0; i--) {
            const int t = t0 + i;
            const double *Sp = Sseg + i * KV, *St = Sseg + (i + 1) * KV;   // S_{t-1}, S_t
            const float *qt = q + t * d->sk, *kt = k + t * d->sk, *vt = v + t * d->sv, *dot = dout + t * d->sv;
            const double alpha = g ? exp((double)g[t * d->sg]) : 1.0, bt = beta[t * d->sg];
            float *dqt = dq + t * d->sk, *dkt = dk + t * d->sk, *dvt = dv + t * d->sv;

            // o_t = S_tᵀ (scale q_t)
            for (int ii = 0; ii < K; ii++) {
                const double *Sr = St + (int64_t)ii * V;
                double s = 0;
                for (int j = 0; j < V; j++) s += Sr[j] * dot[j];
                dqt[ii] += (float)(d->scale * s);
                const double qi = (double)d->scale * qt[ii];
                double *dSr = dS + (int64_t)ii * V;
                for (int j = 0; j < V; j++) dSr[j] += qi * dot[j];
            }
            // p = S'ᵀ k with S' = α S_{t-1}; u = β (v − p)
            for (int j = 0; j < V; j++) p[j] = 0, du[j] = 0;
            for (int ii = 0; ii < K; ii++) {
                const double ki = kt[ii];
                const double *Sr = Sp + (int64_t)ii * V, *dSr = dS + (int64_t)ii * V;
                for (int j = 0; j < V; j++) p[j] += alpha * Sr[j] * ki, du[j] += dSr[j] * ki;
            }
            double db = 0;
            for (int j = 0; j < V; j++) {
                u[j] = bt * ((double)vt[j] - p[j]);
                db += du[j] * ((double)vt[j] - p[j]);
                dvt[j] += (float)(bt * du[j]);
                dp[j] = -bt * du[j];
            }
            dbeta[t * d->sg] += (float)db;
            // S = S' + k uᵀ: dk += dS u;  p = S'ᵀ k: dk += S' dp, dS' = dS + k dpᵀ
            double dgt = 0;
            for (int ii = 0; ii < K; ii++) {
                const double *Sr = Sp + (int64_t)ii * V;
                double *dSr = dS + (int64_t)ii * V;
                double a = 0;
                for (int j = 0; j < V; j++) a += dSr[j] * u[j] + alpha * Sr[j] * dp[j];
                acc[ii] = a;
                const double ki = kt[ii];
                for (int j = 0; j < V; j++) {
                    dSr[j] += ki * dp[j];
                    dgt += dSr[j] * Sr[j];
                }
            }
            for (int ii = 0; ii < K; ii++) dkt[ii] += (float)acc[ii];
            // S' = α S_{t-1}: dg = ⟨dS', S'⟩ = α ⟨dS', S_{t-1}⟩;  dS_{t-1} = α dS'
            if (g) dg[t * d->sg] += (float)(alpha * dgt);
            if (alpha != 1.0)
                for (int64_t e = 0; e < KV; e++) dS[e] *= alpha;
        }
    }
    free(ck);
    free(Sseg);
    free(p);
    free(acc);
}

// ---------------------------------------------------------------- chunked form
// Scratch for one chunk of at most C rows; allocated once per head.
typedef struct {
    float *gam;        // (C)     chunk-local cumsum of g
    float *KK;         // (C, C)  K Kᵀ
    float *L;          // (C, C)  strict_tril(diag(β) KK ⊙ E)
    float *A;          // (C, C)  (I + L)⁻¹
    float *P;          // (C, C)  tril(Q Kᵀ ⊙ E), unscaled
    float *Kb;         // (C, K)  diag(β e^γ) K
    float *W;          // (C, K)
    float *Qg;         // (C, K)  diag(e^γ) Q
    float *Vb;         // (C, V)  diag(β) V
    float *Vn;         // (C, V)  U, then U − W S0
    float *Vd;         // (C, V)  diag(e^{γ_last − γ}) Vn
    // backward only
    float *dA, *dL, *T1;        // (C, C)
    float *dW, *dKb, *T2;       // (C, K)
    float *dVn, *dVb, *T3;      // (C, V)
    float *dgam;                // (C)
} chunk_ws;

static void chunk_ws_init(chunk_ws *w, int C, int K, int V, int bwd) {
    const size_t cc = (size_t)C * C, ck = (size_t)C * K, cv = (size_t)C * V;
    size_t n = C + 4 * cc + 3 * ck + 3 * cv;
    if (bwd) n += 3 * cc + 3 * ck + 3 * cv + C;
    float *m = pn_calloc(n, sizeof(float));
    w->gam = m, m += C;
    w->KK = m, m += cc;
    w->L = m, m += cc;
    w->A = m, m += cc;
    w->P = m, m += cc;
    w->Kb = m, m += ck;
    w->W = m, m += ck;
    w->Qg = m, m += ck;
    w->Vb = m, m += cv;
    w->Vn = m, m += cv;
    w->Vd = m, m += cv;
    if (bwd) {
        w->dA = m, m += cc;
        w->dL = m, m += cc;
        w->T1 = m, m += cc;
        w->dW = m, m += ck;
        w->dKb = m, m += ck;
        w->T2 = m, m += ck;
        w->dVn = m, m += cv;
        w->dVb = m, m += cv;
        w->T3 = m, m += cv;
        w->dgam = m, m += C;
    }
}

static void chunk_ws_free(chunk_ws *w) { free(w->gam); }

// Everything of one chunk that does not depend on the state: γ, KK, L, A, Kb, Vb, W, and
// U (left in Vn). Pointers are at the chunk's first token; n rows. All matrices use ld = n.
static void chunk_intra(const head_geom *d, chunk_ws *w, int n, const float *k, const float *v, const float *g,
                        const float *beta) {
    const int K = d->K, V = d->V;
    double run = 0;
    for (int i = 0; i < n; i++) {
        if (g) run += g[i * d->sg];
        w->gam[i] = (float)run;
    }
    pn_gemm(0, 1, n, n, K, 1.0f, k, d->sk, k, d->sk, 0.0f, w->KK, n);
    // The mask comes before exp: for j > i the exponent is positive and could overflow.
    for (int i = 0; i < n; i++) {
        const float bi = beta[i * d->sg];
        for (int j = 0; j < n; j++)
            w->L[i * n + j] = j < i ? bi * w->KK[i * n + j] * expf(w->gam[i] - w->gam[j]) : 0.0f;
    }
    // A = (I + L)⁻¹ by forward substitution: A_ij = −Σ_{j ≤ m < i} L_im A_mj (A_jj = 1).
    for (int i = 0; i < n; i++) {
        float *Ai = w->A + i * n;
        for (int j = 0; j < n; j++) Ai[j] = 0.0f;
        Ai[i] = 1.0f;
        for (int j = 0; j < i; j++) {
            double s = 0;
            for (int m = j; m < i; m++) s += (double)w->L[i * n + m] * w->A[m * n + j];
            Ai[j] = (float)-s;
        }
    }
    for (int i = 0; i < n; i++) {
        const float bi = beta[i * d->sg], bg = bi * expf(w->gam[i]);
        for (int c = 0; c < K; c++) w->Kb[i * K + c] = bg * k[i * d->sk + c];
        for (int c = 0; c < V; c++) w->Vb[i * V + c] = bi * v[i * d->sv + c];
    }
    pn_gemm(0, 0, n, K, n, 1.0f, w->A, n, w->Kb, K, 0.0f, w->W, K);
    pn_gemm(0, 0, n, V, n, 1.0f, w->A, n, w->Vb, V, 0.0f, w->Vn, V);
}

// Vn = U − W S0 (U already in Vn), Vd = diag(e^{γ_last − γ}) Vn.
static void chunk_vnew(const head_geom *d, chunk_ws *w, int n, const float *S0) {
    const int V = d->V;
    pn_gemm(0, 0, n, V, d->K, -1.0f, w->W, d->K, S0, V, 1.0f, w->Vn, V);
    const float gl = w->gam[n - 1];
    for (int i = 0; i < n; i++) {
        const float di = expf(gl - w->gam[i]);
        for (int c = 0; c < V; c++) w->Vd[i * V + c] = di * w->Vn[i * V + c];
    }
}

// S ← e^{γ_last} S + Kᵀ Vd
static void chunk_state_update(const head_geom *d, chunk_ws *w, int n, const float *k, float *S) {
    const float a = expf(w->gam[n - 1]);
    if (a != 1.0f)
        for (int64_t e = 0; e < (int64_t)d->K * d->V; e++) S[e] *= a;
    pn_gemm(1, 0, d->K, d->V, n, 1.0f, k, d->sk, w->Vd, d->V, 1.0f, S, d->V);
}

// P = tril(Q Kᵀ ⊙ E) and Qg = diag(e^γ) Q.
static void chunk_scores(const head_geom *d, chunk_ws *w, int n, const float *q, const float *k) {
    const int K = d->K;
    pn_gemm(0, 1, n, n, K, 1.0f, q, d->sk, k, d->sk, 0.0f, w->P, n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            w->P[i * n + j] = j <= i ? w->P[i * n + j] * expf(w->gam[i] - w->gam[j]) : 0.0f;
        const float e = expf(w->gam[i]);
        for (int c = 0; c < K; c++) w->Qg[i * K + c] = e * q[i * d->sk + c];
    }
}

static void chunk_fwd_head(const head_geom *d, int C, const float *q, const float *k, const float *v,
                           const float *g, const float *beta, float *S, float *o) {
    chunk_ws w;
    chunk_ws_init(&w, PN_MIN(C, PN_MAX(d->T, 1)), d->K, d->V, 0);   // a chunk larger than T never fills
    for (int t0 = 0; t0 < d->T; t0 += C) {
        const int n = PN_MIN(C, d->T - t0);
        const float *qc = q + t0 * d->sk, *kc = k + t0 * d->sk, *vc = v + t0 * d->sv;
        const float *gc = g ? g + t0 * d->sg : NULL, *bc = beta + t0 * d->sg;
        chunk_intra(d, &w, n, kc, vc, gc, bc);
        chunk_vnew(d, &w, n, S);
        if (o) {
            float *oc = o + t0 * d->sv;
            chunk_scores(d, &w, n, qc, kc);
            // O = scale [Qg S0 + P Vn], written in place with row stride H·V
            pn_gemm(0, 0, n, d->V, d->K, d->scale, w.Qg, d->K, S, d->V, 0.0f, oc, d->sv);
            pn_gemm(0, 0, n, d->V, n, d->scale, w.P, n, w.Vn, d->V, 1.0f, oc, d->sv);
        }
        chunk_state_update(d, &w, n, kc, S);
    }
    chunk_ws_free(&w);
}

// Reverse mode through the chunk equations of the file comment. dS enters as the gradient of
// the final state and leaves as dh0. For one chunk with start state S0, end-state gradient dS1:
//   dVn  = scale Pᵀ dO + diag(d) K dS1                       (d_i = e^{γ_last − γ_i})
//   dK  += diag(d) Vn dS1ᵀ;  dγ_last += Σ_i d_i k_iᵀ dS1 vn_i + e^{γ_last} ⟨S0, dS1⟩, dγ_i −= d_i k_iᵀ dS1 vn_i
//   dP   = scale dO Vnᵀ (i ≥ j): dQ += (dP ⊙ E) K, dK += (dP ⊙ E)ᵀ Q, dγ_i += Σ_j dP⊙P, dγ_j −= Σ_i dP⊙P
//   dQ  += diag(e^γ) scale dO S0ᵀ, dγ_i += ⟨that row, q_i⟩
//   dS0  = e^{γ_last} dS1 + scale Qgᵀ dO − Wᵀ dVn
//   dW   = −dVn S0ᵀ;  dU = dVn;  dA = dU Vbᵀ + dW Kbᵀ;  dVb = Aᵀ dU;  dKb = Aᵀ dW
//   dV  += diag(β) dVb, dβ_i += ⟨v_i, dVb_i⟩;  dK += diag(βe^γ) dKb, dβ_i, dγ_i from ⟨k_i, dKb_i⟩ e^{γ_i}
//   dL   = −Aᵀ dA Aᵀ on the strict lower triangle (A = (I + L)⁻¹)
//   L_ij = β_i KK_ij E_ij: dβ_i += Σ_j dL KK E, dγ_i += Σ_j dL⊙L, dγ_j −= Σ_i dL⊙L, dKK = dL β_i E
//   dK  += (dKK + dKKᵀ) K;  dg = reverse chunk-local cumsum of dγ.
static void chunk_bwd_head(const head_geom *d, int C, const float *q, const float *k, const float *v,
                           const float *g, const float *beta, const float *S0, const float *dout, float *dS,
                           float *dq, float *dk, float *dv, float *dg, float *dbeta) {
    const int T = d->T, K = d->K, V = d->V;
    const int64_t KV = (int64_t)K * V;
    const int NT = (T + C - 1) / C;
    chunk_ws w;
    chunk_ws_init(&w, PN_MIN(C, PN_MAX(T, 1)), K, V, 1);
    float *Sst = pn_malloc(sizeof(float) * KV * (NT ? NT : 1));   // state at each chunk start
    float *dS0 = pn_malloc(sizeof(float) * KV);

    memcpy(dS0, S0, sizeof(float) * KV);   // dS0 doubles as the running state here
    for (int c = 0; c < NT; c++) {
        const int t0 = c * C, n = PN_MIN(C, T - t0);
        memcpy(Sst + c * KV, dS0, sizeof(float) * KV);
        chunk_intra(d, &w, n, k + t0 * d->sk, v + t0 * d->sv, g ? g + t0 * d->sg : NULL, beta + t0 * d->sg);
        chunk_vnew(d, &w, n, dS0);
        chunk_state_update(d, &w, n, k + t0 * d->sk, dS0);
    }

    for (int c = NT - 1; c >= 0; c--) {
        const int t0 = c * C, n = PN_MIN(C, T - t0);
        const float *qc = q + t0 * d->sk, *kc = k + t0 * d->sk, *vc = v + t0 * d->sv, *doc = dout + t0 * d->sv;
        const float *gc = g ? g + t0 * d->sg : NULL, *bc = beta + t0 * d->sg;
        const float *Sc = Sst + c * KV;
        float *dqc = dq + t0 * d->sk, *dkc = dk + t0 * d->sk, *dvc = dv + t0 * d->sv, *dbc = dbeta + t0 * d->sg;
        chunk_intra(d, &w, n, kc, vc, gc, bc);
        chunk_vnew(d, &w, n, Sc);
        chunk_scores(d, &w, n, qc, kc);
        const float gl = w.gam[n - 1], el = expf(gl);
        float *dgam = w.dgam;
        for (int i = 0; i < n; i++) dgam[i] = 0.0f;

        // ---- end state: S1 = e^{γ_last} S0 + Kᵀ Vd
        pn_gemm(0, 0, n, V, K, 1.0f, kc, d->sk, dS, V, 0.0f, w.T3, V);   // K dS1 (n, V)
        double dgl = 0;
        for (int i = 0; i < n; i++) {
            const float di = expf(gl - w.gam[i]);
            double dd = 0;
            for (int e = 0; e < V; e++) {
                dd += (double)w.T3[i * V + e] * w.Vn[i * V + e];
                w.dVn[i * V + e] = di * w.T3[i * V + e];
            }
            dgl += di * dd;
            dgam[i] -= (float)(di * dd);
        }
        {
            double s = 0;
            for (int64_t e = 0; e < KV; e++) s += (double)Sc[e] * dS[e];
            dgl += el * s;
        }
        dgam[n - 1] += (float)dgl;
        pn_gemm(0, 1, n, K, V, 1.0f, w.Vd, V, dS, V, 1.0f, dkc, d->sk);   // dK += Vd dS1ᵀ
        // ---- output: O = scale [Qg S0 + P Vn]
        pn_gemm(1, 0, n, V, n, d->scale, w.P, n, doc, d->sv, 1.0f, w.dVn, V);   // dVn += scale Pᵀ dO
        pn_gemm(0, 1, n, n, V, d->scale, doc, d->sv, w.Vn, V, 0.0f, w.T1, n);   // dP = scale dO Vnᵀ
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                float *x = &w.T1[i * n + j];
                if (j > i) {
                    *x = 0.0f;
                    continue;
                }
                const float m = *x * w.P[i * n + j];
                dgam[i] += m;
                dgam[j] -= m;
                *x *= expf(w.gam[i] - w.gam[j]);   // now d(QKᵀ)
            }
        pn_gemm(0, 0, n, K, n, 1.0f, w.T1, n, kc, d->sk, 1.0f, dqc, d->sk);
        pn_gemm(1, 0, n, K, n, 1.0f, w.T1, n, qc, d->sk, 1.0f, dkc, d->sk);
        pn_gemm(0, 1, n, K, V, d->scale, doc, d->sv, Sc, V, 0.0f, w.T2, K);   // dQg
        for (int i = 0; i < n; i++) {
            const float e = expf(w.gam[i]);
            double s = 0;
            for (int c2 = 0; c2 < K; c2++) {
                const float x = e * w.T2[i * K + c2];
                dqc[i * d->sk + c2] += x;
                s += (double)x * qc[i * d->sk + c2];
            }
            dgam[i] += (float)s;
        }
        // ---- dS0 = e^{γ_last} dS1 + scale Qgᵀ dO − Wᵀ dVn
        for (int64_t e = 0; e < KV; e++) dS0[e] = el * dS[e];
        pn_gemm(1, 0, K, V, n, d->scale, w.Qg, K, doc, d->sv, 1.0f, dS0, V);
        pn_gemm(1, 0, K, V, n, -1.0f, w.W, K, w.dVn, V, 1.0f, dS0, V);
        // ---- Vn = U − W S0, U = A Vb, W = A Kb
        pn_gemm(0, 1, n, K, V, -1.0f, w.dVn, V, Sc, V, 0.0f, w.dW, K);
        pn_gemm(0, 1, n, n, V, 1.0f, w.dVn, V, w.Vb, V, 0.0f, w.dA, n);
        pn_gemm(0, 1, n, n, K, 1.0f, w.dW, K, w.Kb, K, 1.0f, w.dA, n);
        pn_gemm(1, 0, n, V, n, 1.0f, w.A, n, w.dVn, V, 0.0f, w.dVb, V);
        pn_gemm(1, 0, n, K, n, 1.0f, w.A, n, w.dW, K, 0.0f, w.dKb, K);
        for (int i = 0; i < n; i++) {
            const float bi = bc[i * d->sg], ei = expf(w.gam[i]);
            double sv = 0, sk = 0;
            for (int e = 0; e < V; e++) {
                dvc[i * d->sv + e] += bi * w.dVb[i * V + e];
                sv += (double)vc[i * d->sv + e] * w.dVb[i * V + e];
            }
            for (int e = 0; e < K; e++) {
                dkc[i * d->sk + e] += bi * ei * w.dKb[i * K + e];
                sk += (double)kc[i * d->sk + e] * w.dKb[i * K + e];
            }
            dbc[i * d->sg] += (float)(sv + ei * sk);
            dgam[i] += (float)(bi * ei * sk);
        }
        // ---- A = (I + L)⁻¹: dL = −Aᵀ dA Aᵀ (strict lower part)
        pn_gemm(0, 1, n, n, n, 1.0f, w.dA, n, w.A, n, 0.0f, w.T1, n);
        pn_gemm(1, 0, n, n, n, -1.0f, w.A, n, w.T1, n, 0.0f, w.dL, n);
        for (int i = 0; i < n; i++) {
            const float bi = bc[i * d->sg];
            double sb = 0;
            for (int j = 0; j < n; j++) {
                float *x = &w.dL[i * n + j];
                if (j >= i) {
                    *x = 0.0f;
                    continue;
                }
                const float E = expf(w.gam[i] - w.gam[j]);
                const float gij = *x * w.KK[i * n + j] * E;
                sb += gij;
                dgam[i] += bi * gij;
                dgam[j] -= bi * gij;
                *x *= bi * E;   // now dKK
            }
            dbc[i * d->sg] += (float)sb;
        }
        pn_gemm(0, 0, n, K, n, 1.0f, w.dL, n, kc, d->sk, 1.0f, dkc, d->sk);
        pn_gemm(1, 0, n, K, n, 1.0f, w.dL, n, kc, d->sk, 1.0f, dkc, d->sk);
        // ---- γ = chunk-local cumsum of g
        if (g) {
            double run = 0;
            for (int i = n - 1; i >= 0; i--) {
                run += dgam[i];
                dg[(t0 + i) * d->sg] += (float)run;
            }
        }
        memcpy(dS, dS0, sizeof(float) * KV);
    }
    chunk_ws_free(&w);
    free(Sst);
    free(dS0);
}

// ---------------------------------------------------------------- entry points
static head_geom geom_of(const pn_rec_shape *s) {
    head_geom d = {s->T, s->K, s->V, (int64_t)s->H * s->K, (int64_t)s->H * s->V, s->H, s->scale};
    return d;
}

// Offsets of head (b, h) at token 0.
static inline int64_t off_qk(const pn_rec_shape *s, int b, int h) { return ((int64_t)b * s->T * s->H + h) * s->K; }
static inline int64_t off_v(const pn_rec_shape *s, int b, int h) { return ((int64_t)b * s->T * s->H + h) * s->V; }
static inline int64_t off_g(const pn_rec_shape *s, int b, int h) { return (int64_t)b * s->T * s->H + h; }

void pn_gated_delta_fwd(const pn_rec_shape *s, int chunk, int qk_l2norm, const float *q, const float *k,
                        const float *v, const float *g, const float *beta, const float *h0, float *o, float *ht) {
    PN_ASSERT(s->B >= 0 && s->T >= 0 && s->H >= 0 && s->K > 0 && s->V > 0 && chunk >= 0);
    const int64_t Nr = (int64_t)s->B * s->T * s->H, KV = (int64_t)s->K * s->V;
    float *qn = NULL, *kn = NULL, *rs = NULL;
    if (qk_l2norm) {
        qn = pn_malloc(sizeof(float) * Nr * s->K);
        kn = pn_malloc(sizeof(float) * Nr * s->K);
        rs = pn_malloc(sizeof(float) * (Nr ? Nr : 1));
        l2norm_rows_fwd(qn, rs, q, Nr, s->K);
        l2norm_rows_fwd(kn, rs, k, Nr, s->K);
        q = qn, k = kn;
    }
    const head_geom d = geom_of(s);
    const int BH = s->B * s->H;
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < BH; bh++) {
        const int b = bh / s->H, h = bh % s->H;
        const float *qh = q + off_qk(s, b, h), *kh = k + off_qk(s, b, h), *vh = v + off_v(s, b, h);
        const float *gh = g ? g + off_g(s, b, h) : NULL, *bh_ = beta + off_g(s, b, h);
        float *oh = o ? o + off_v(s, b, h) : NULL;
        // The state is read into private memory first, so h0 == ht (in-place decode) is safe.
        if (chunk == 0) {
            double *S = pn_malloc(sizeof(double) * KV);
            for (int64_t e = 0; e < KV; e++) S[e] = h0 ? h0[bh * KV + e] : 0.0;
            rec_fwd_head(&d, qh, kh, vh, gh, bh_, S, oh);
            if (ht)
                for (int64_t e = 0; e < KV; e++) ht[bh * KV + e] = (float)S[e];
            free(S);
        } else {
            float *S = pn_malloc(sizeof(float) * KV);
            for (int64_t e = 0; e < KV; e++) S[e] = h0 ? h0[bh * KV + e] : 0.0f;
            chunk_fwd_head(&d, chunk, qh, kh, vh, gh, bh_, S, oh);
            if (ht) memcpy(ht + bh * KV, S, sizeof(float) * KV);
            free(S);
        }
    }
    free(qn);
    free(kn);
    free(rs);
}

void pn_gated_delta_bwd(const pn_rec_shape *s, int chunk, int qk_l2norm, const float *q, const float *k,
                        const float *v, const float *g, const float *beta, const float *h0, const float *dout,
                        const float *dht, float *dq, float *dk, float *dv, float *dg, float *dbeta, float *dh0) {
    PN_ASSERT(s->B >= 0 && s->T >= 0 && s->H >= 0 && s->K > 0 && s->V > 0 && chunk >= 0);
    const int64_t Nr = (int64_t)s->B * s->T * s->H, KV = (int64_t)s->K * s->V;
    const int64_t nqk = Nr * s->K, nv = Nr * s->V, ns = (int64_t)s->B * s->H * KV;
    float *qn = NULL, *kn = NULL, *rq = NULL, *rk = NULL;
    if (qk_l2norm) {
        qn = pn_malloc(sizeof(float) * nqk);
        kn = pn_malloc(sizeof(float) * nqk);
        rq = pn_malloc(sizeof(float) * (Nr ? Nr : 1));
        rk = pn_malloc(sizeof(float) * (Nr ? Nr : 1));
        l2norm_rows_fwd(qn, rq, q, Nr, s->K);
        l2norm_rows_fwd(kn, rk, k, Nr, s->K);
    }
    const float *qe = qk_l2norm ? qn : q, *ke = qk_l2norm ? kn : k;
    // Private accumulators (each head writes only its own slice), added to the caller's at the end.
    float *gq = pn_calloc(nqk, sizeof(float)), *gk = pn_calloc(nqk, sizeof(float));
    float *gv = pn_calloc(nv, sizeof(float)), *gg = pn_calloc(Nr, sizeof(float));
    float *gb = pn_calloc(Nr, sizeof(float)), *gh0 = pn_calloc(ns, sizeof(float));
    const head_geom d = geom_of(s);
    const int BH = s->B * s->H;
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < BH; bh++) {
        const int b = bh / s->H, h = bh % s->H;
        const int64_t oqk = off_qk(s, b, h), ov = off_v(s, b, h), og = off_g(s, b, h);
        const float *gh = g ? g + og : NULL;
        if (chunk == 0) {
            double *S0 = pn_malloc(sizeof(double) * KV), *dS = pn_malloc(sizeof(double) * KV);
            for (int64_t e = 0; e < KV; e++) {
                S0[e] = h0 ? h0[bh * KV + e] : 0.0;
                dS[e] = dht ? dht[bh * KV + e] : 0.0;
            }
            rec_bwd_head(&d, qe + oqk, ke + oqk, v + ov, gh, beta + og, S0, dout + ov, dS, gq + oqk, gk + oqk,
                         gv + ov, gg + og, gb + og);
            for (int64_t e = 0; e < KV; e++) gh0[bh * KV + e] = (float)dS[e];
            free(S0);
            free(dS);
        } else {
            float *S0 = pn_malloc(sizeof(float) * KV);
            float *dS = gh0 + bh * KV;
            for (int64_t e = 0; e < KV; e++) {
                S0[e] = h0 ? h0[bh * KV + e] : 0.0f;
                dS[e] = dht ? dht[bh * KV + e] : 0.0f;
            }
            chunk_bwd_head(&d, chunk, qe + oqk, ke + oqk, v + ov, gh, beta + og, S0, dout + ov, dS, gq + oqk,
                           gk + oqk, gv + ov, gg + og, gb + og);
            free(S0);
        }
    }
    if (qk_l2norm) {
        if (dq) l2norm_rows_bwd_add(dq, gq, qn, rq, Nr, s->K);
        if (dk) l2norm_rows_bwd_add(dk, gk, kn, rk, Nr, s->K);
    } else {
        add_into(dq, gq, nqk);
        add_into(dk, gk, nqk);
    }
    add_into(dv, gv, nv);
    if (g) add_into(dg, gg, Nr);
    add_into(dbeta, gb, Nr);
    add_into(dh0, gh0, ns);
    free(gq), free(gk), free(gv), free(gg), free(gb), free(gh0);
    free(qn), free(kn), free(rq), free(rk);
}
