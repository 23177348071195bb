// ops_attention.c — causal softmax attention with GQA and an optional sliding
// window (fp32, saving the row log-sum-exp for the backward).
//
// Work is split into query tiles of ATT_TILE rows per (batch, head). A tile only
// needs the keys its rows can see — [first visible key of its first row, last
// row] — so scores live in a TILE × keys buffer per thread (no T × T matrix) and
// a sliding window costs O(T · window). The two products of each tile (QKᵀ and
// PV, and the four of the backward) go through pn_gemm with strided leading
// dimensions straight on the (B, T, H, D) layout, which is what makes the CPU
// path fast enough for the demo. Scores outside the causal / window mask are
// zeroed after the product; the wasted flops are at most one tile's triangle.
//
// Backward recomputes P = exp(scale · q kᵀ − lse) from the saved lse and uses
// dS = P ∘ (dP − rowsum(dO ∘ O)). It is parallel over (batch, KV head): the
// query heads that share a KV head accumulate into the same dk, dv rows, so
// they run in one thread and never race.
#include "kernels/ops.h"
#include "core/common.h"
#include <math.h>

#define ATT_TILE 64

// Visible keys of query row i: [att_lo(i), i].
static inline int att_lo(int i, int window) { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }

void pn_attention_fwd(float *o, float *lse, const float *q, const float *k, const float *v, int B, int T, int Hq,
                      int Hkv, int D, int window, float scale) {
    PN_ASSERT(Hq % Hkv == 0);
    const int group = Hq / Hkv;
    const int64_t ldq = (int64_t)Hq * D, ldk = (int64_t)Hkv * D;
    const int n_tiles = (T + ATT_TILE - 1) / ATT_TILE;
#pragma omp parallel
    {
        float *S = pn_malloc((size_t)ATT_TILE * (size_t)(T + 1) * sizeof(float));  // (tile, keys)
#pragma omp for schedule(dynamic, 1) collapse(2)
        for (int bh = 0; bh < B * Hq; bh++) {
            for (int tile = 0; tile < n_tiles; tile++) {
                const int b = bh / Hq, h = bh % Hq, hk = h / group;
                const int i0 = tile * ATT_TILE, i1 = PN_MIN(T, i0 + ATT_TILE), rows = i1 - i0;
                const int k0 = att_lo(i0, window), nk = i1 - k0;
                const float *qt = q + ((int64_t)b * T + i0) * ldq + (int64_t)h * D;
                const float *kt = k + ((int64_t)b * T + k0) * ldk + (int64_t)hk * D;
                const float *vt = v + ((int64_t)b * T + k0) * ldk + (int64_t)hk * D;
                // S (rows, nk) = q_tile · k_rangeᵀ
                pn_gemm(0, 1, rows, nk, D, scale, qt, ldq, kt, ldk, 0.0f, S, nk);
                for (int r = 0; r < rows; r++) {
                    const int i = i0 + r, lo = att_lo(i, window) - k0, hi = i - k0;  // visible [lo, hi]
                    float *s = S + (int64_t)r * nk;
                    float m = -INFINITY;
                    for (int j = lo; j <= hi; j++) m = s[j] > m ? s[j] : m;
                    double sum = 0.0;
                    for (int j = 0; j < nk; j++) {
                        if (j < lo || j > hi) {
                            s[j] = 0.0f;
                            continue;
                        }
                        float p = expf(s[j] - m);
                        s[j] = p;
                        sum += p;
                    }
                    float inv = (float)(1.0 / sum);
                    for (int j = lo; j <= hi; j++) s[j] *= inv;
                    lse[((int64_t)b * Hq + h) * T + i] = m + (float)log(sum);
                }
                // o_tile (rows, D) = P · v_range
                float *ot = o + ((int64_t)b * T + i0) * ldq + (int64_t)h * D;
                pn_gemm(0, 0, rows, D, nk, 1.0f, S, nk, vt, ldk, 0.0f, ot, ldq);
            }
        }
        free(S);
    }
}

void pn_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                      const float *v, const float *o, const float *lse, int B, int T, int Hq, int Hkv, int D,
                      int window, float scale) {
    PN_ASSERT(Hq % Hkv == 0);
    const int group = Hq / Hkv;
    const int64_t ldq = (int64_t)Hq * D, ldk = (int64_t)Hkv * D;
    const int n_tiles = (T + ATT_TILE - 1) / ATT_TILE;
#pragma omp parallel
    {
        float *P = pn_malloc((size_t)ATT_TILE * (size_t)(T + 1) * sizeof(float));   // (tile, keys)
        float *dP = pn_malloc((size_t)ATT_TILE * (size_t)(T + 1) * sizeof(float));  // (tile, keys)
        float delta[ATT_TILE];
#pragma omp for schedule(dynamic, 1)
        for (int bhk = 0; bhk < B * Hkv; bhk++) {
            const int b = bhk / Hkv, hk = bhk % Hkv;
            for (int h = hk * group; h < (hk + 1) * group; h++) {
                for (int tile = 0; tile < n_tiles; tile++) {
                    const int i0 = tile * ATT_TILE, i1 = PN_MIN(T, i0 + ATT_TILE), rows = i1 - i0;
                    const int k0 = att_lo(i0, window), nk = i1 - k0;
                    const int64_t qoff = ((int64_t)b * T + i0) * ldq + (int64_t)h * D;
                    const int64_t koff = ((int64_t)b * T + k0) * ldk + (int64_t)hk * D;
                    const float *qt = q + qoff, *ot = o + qoff, *dot = dout + qoff;
                    const float *kt = k + koff, *vt = v + koff;
                    const float *l = lse + ((int64_t)b * Hq + h) * T + i0;
                    pn_gemm(0, 1, rows, nk, D, scale, qt, ldq, kt, ldk, 0.0f, P, nk);
                    pn_gemm(0, 1, rows, nk, D, 1.0f, dot, ldq, vt, ldk, 0.0f, dP, nk);
                    for (int r = 0; r < rows; r++) {
                        double acc = 0.0;
                        for (int d = 0; d < D; d++) acc += (double)dot[(int64_t)r * ldq + d] * ot[(int64_t)r * ldq + d];
                        delta[r] = (float)acc;
                    }
                    for (int r = 0; r < rows; r++) {
                        const int i = i0 + r, lo = att_lo(i, window) - k0, hi = i - k0;
                        float *p = P + (int64_t)r * nk, *dp = dP + (int64_t)r * nk;
                        for (int j = 0; j < nk; j++) {
                            if (j < lo || j > hi) {
                                p[j] = 0.0f;
                                dp[j] = 0.0f;
                                continue;
                            }
                            p[j] = expf(p[j] - l[r]);
                            dp[j] = p[j] * (dp[j] - delta[r]) * scale;  // dS · scale
                        }
                    }
                    // dv_range += Pᵀ · dO_tile;  dq_tile += dS · k_range;  dk_range += dSᵀ · q_tile
                    if (dv) pn_gemm(1, 0, nk, D, rows, 1.0f, P, nk, dot, ldq, 1.0f, dv + koff, ldk);
                    if (dq) pn_gemm(0, 0, rows, D, nk, 1.0f, dP, nk, kt, ldk, 1.0f, dq + qoff, ldq);
                    if (dk) pn_gemm(1, 0, nk, D, rows, 1.0f, dP, nk, qt, ldq, 1.0f, dk + koff, ldk);
                }
            }
        }
        free(P);
        free(dP);
    }
}
