// linear_ops.cu — chunked (chunk C = 64) forward and backward of the gated linear-attention
// family on the GPU: simple GLA (scalar decay), GLA (per-key-channel decay) and DPLR
// (RWKV7), plus the delta rule as the gated delta rule with g = 0 (gdn.cu). Twins of
// pn_simple_gla_*, pn_gla_*, pn_dplr_* (kernels/cpu/ops_rec_*.c), whose chunked forms
// these follow equation by equation.
//
// The three ops are one algorithm. With G the chunk-local cumsum of the log-decay (per row;
// per row and key channel for GLA/DPLR), start state S and G_{-1} = 0, per chunk of n rows:
//   A_qk[i,j] = scale Σ_c q_ic k_jc e^{G_ic − G_jc}  (j ≤ i)         Qg = scale·Q ⊙ e^{G}
//   A_qb, A_ak, A_ab likewise (q·b, j ≤ i; a·k, a·b with G_{i−1}, j < i)  Kd = K ⊙ e^{G_L − G}
//   P = (I − A_ab)⁻¹ (Ag S + A_ak V),  Ag = A ⊙ e^{G_{i−1}},  Bd = B ⊙ e^{G_L − G}   (DPLR only)
//   O = Qg S + A_qk V [+ A_qb P],   S ← e^{G_L} ⊙ S + Kdᵀ V [+ Bdᵀ P]
// (GLA is DPLR with a = b = 0; simple GLA is GLA with one gate per row, whose scores
// factor as (Q Kᵀ) ⊙ e^{γ_i − γ_j}.) Every exponent is a masked difference G_i − G_j with
// j ≤ i, or G_L − G_i: the mask comes before exp, nothing is a ratio of exponentials.
//
// Kernels, correctness first, all fp32 on CUDA cores:
//   1. lin_prep: one block per (b, h, chunk): G, Qg, Kd, the score matrices, (I − A_ab)⁻¹
//      (forward substitution) → fp32 scratch (B, H, T, ·). Fully parallel.
//   2. lin_fscan: one block per (b, h, V-tile of 64 or 32 columns) walks the chunks in order
//      with its K × BV state tile in shared memory: P, O, the state update. The backward
//      runs it with O off, storing the chunk-start states S_n and P.
//   3. lin_rscan (backward): the same grid walks the chunks in reverse with the gradient
//      of the chunk-end state dS:  dR = (I − A_ab)⁻ᵀ (A_qbᵀ dO + Bd dS),
//      dS ← e^{G_L} ⊙ dS + Qgᵀ dO [+ Agᵀ dR]; stores dS_n (w.r.t. chunk n's end) and dR.
//   4. lin_grads (backward): blocks over (b, h, chunk) items, fully parallel; given S_n,
//      dS_n, P, dR every input gradient of the chunk is local:
//        dV = A_qkᵀ dO + Kd dS [+ A_akᵀ dR];  dA_qk = dO Vᵀ, dA_qb = dO Pᵀ, dA_ak = dR Vᵀ,
//        dA_ab = dR Pᵀ flow element-wise into dq, dk, da, db; the inter-chunk parts come
//        from dO Sᵀ, dR Sᵀ, V dSᵀ, P dSᵀ; and the gate gradient per row and channel is
//          dG_i = q_i dq_i + a_{i+1} da_{i+1} − k_i dk_i − b_i db_i
//                 (+ e^{G_L} ⊙ Σ_v dS ⊙ S + Σ_i (k_i ⊙ gk_i + b_i ⊙ gb_i) on the last row),
//        dg = its reverse chunk-local cumsum (the CPU's chunk_bwd_one, regrouped by owner).
//      Products are block-wide GEMMs on global operands; the intermediates live in a
//      per-block work space (one block per resident slot, so it stays small).
// Measured (H100, B8 T4096 H12 K128 V128, results/bench/h100-linear-fp32-session19.log): ncu
// put the DPLR time in the gradient kernel (42 ms), the two scans (23 + 16 + 17 ms) and the
// per-chunk kernel (11 ms, run by both passes), all latency- or issue-bound on CUDA cores: one
// 8-warp scan block per SM (12% of the warp slots) over 192 blocks, so two waves; two gradient
// blocks per SM (24%); score tiles whose warps were half idle. Session 19 chose the scans' column
// tile by waves (scan_bv: 32 columns, two blocks per SM), filled every resident slot with
// gradient blocks and put the score tiles on whole warps (prep_scores): DPLR forward 29.1 →
// 25.2 ms, forward + backward 103 → 87 ms; GLA 8.1 / 33.1 → 7.4 / 28.0 ms; simple GLA 6.8 / 28.2
// → 5.7 / 22.2 ms (bench kernels). Each element's sums keep their order; the gpu tests print
// every error as before, digit for digit (linear, block_mr, block_gla, supernet). What is left
// is the arithmetic itself: fp32 products at one shared-memory load per multiply-add; DPLR
// needs the tensor-core design GLA got (gla_fast.cu) to come near its floor. Measured and not
// kept (session 22, results/bench/h100-linear-fp32-session22-lg4.log): the gradient kernel's
// element-wise intra-chunk sums with four rows (columns) per thread, so each G, k, b, q, a load
// served four sums as four independent chains: DPLR forward + backward 87.1 → 84.9 ms, GLA
// 27.8 → 28.9 ms (its 64 → 80 registers cost a block per SM), so the time is not in those sums.
#include "kernels/cuda/linear_common.cuh"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include <math.h>

enum { LM_SCALAR = 0, LM_VEC = 1, LM_DPLR = 2 };  // simple GLA, GLA, DPLR

static void lin_die(const char *op, const char *what, int K, int V) {
    fprintf(stderr, "postnas: internal error: %s: %s: %s (K = %d, V = %d; want 1 <= K <= %d, V >= 1)\n", __FILE__, op,
            what, K, V, LC_KMAX);
    exit(1);
}

// Inputs of one call, (B, T, H, ·) layouts.
struct lin_in {
    const __nv_bfloat16 *q, *k, *v, *a, *b;  // a, b: DPLR only
    const float *g;                          // (B, T, H) scalar or (B, T, H, K) per-channel log-decay
};

// The per-chunk quantities of kernel 1, head-major: row (b, h, t) of (B, H, T, ·).
struct lin_scr {
    float *G;     // (B, H, T, Kg) chunk-local cumsum, Kg = 1 (simple GLA) or K
    float *Qg;    // (B, H, T, K) scale · q ⊙ e^{G}
    float *Kd;    // (B, H, T, K) k ⊙ e^{G_L − G}
    float *Aqk;   // (B, H, T, C) row i of the chunk's (C, C) score matrix (j ≤ i; 0 above)
    float *EL;    // (B, H, NT, K) e^{G_L} (broadcast over K for simple GLA)
    float *Ag;    // DPLR: (B, H, T, K) a ⊙ e^{G_{i−1}}
    float *Bd;    // DPLR: (B, H, T, K) b ⊙ e^{G_L − G}
    float *Aqb;   // DPLR: (B, H, T, C) (j ≤ i)
    float *Aak;   // DPLR: (B, H, T, C) (j < i)
    float *Minv;  // DPLR: (B, H, T, C) (I − A_ab)⁻¹, unit lower triangular
};

// ================================================================ kernel 1: per chunk
static size_t prep_smem_bytes(int K, int mode) {
    const size_t nb = (size_t)LC_C * (size_t)(K + 1 > LC_LDC ? K + 1 : LC_LDC);
    return sizeof(float) * (3 * nb + (mode == LM_DPLR ? (size_t)LC_C * LC_LDC : 0));
}

// dst[i][j] (row stride ldd) for i, j < n: scale · Σ_c X_ic Y_jc e^{G_{i−SHIFT,c} − G_jc} where
// kept (j ≤ i for SHIFT 0, j < i for SHIFT 1), 0 elsewhere. Simple GLA (one gate per row,
// Gs[i]): scale · e^{γ_i − γ_j} Σ_c X_ic Y_jc. X, Y, Gs (C, ·) row stride ld, zero past n.
// One thread per 4 × 4 tile of the 16 × 16 (C = 64); exponents of masked entries are never
// used. Threads 0..135 take the 136 tiles on and below the diagonal (ti ≥ tj, row-major), so
// they fill whole warps; threads 136..255 the 120 above it, which are zero and skip the sum.
// (With ti = tid / 16, tj = tid % 16 every warp held both kinds and ran the sum over K with
// about half its lanes idle.)
template <int MODE, int SHIFT>
static __device__ void prep_scores(float *dst, int64_t ldd, const float *X, const float *Y, const float *Gs, int ld,
                                   int n, int K, float scale) {
    static_assert(LC_C == 64 && LC_THREADS == 256, "prep_scores: 16 × 16 tiles of 4 × 4 over 256 threads");
    const bool lower = threadIdx.x < 136;
    const int p = lower ? (int)threadIdx.x : (int)threadIdx.x - 136;  // index among its kind
    // row r of the kind holds r + 1 (lower, diagonal included) or r (strictly lower) tiles
    const int first = lower ? 1 : 0;
    int r = (int)((sqrtf(8.0f * (float)p + 1.0f) - 1.0f) * 0.5f) + 1 - first;
    while (r > 0 && r * (r - 1 + 2 * first) / 2 > p) r--;
    while ((r + 1) * (r + 2 * first) / 2 <= p) r++;
    const int col = p - r * (r - 1 + 2 * first) / 2;
    const int ti = lower ? r : col, tj = lower ? col : r;  // above the diagonal: the mirror of (r, col)
    if (4 * ti >= n || 4 * tj >= n) return;
    float acc[4][4] = {};
    if (tj <= ti) {
        for (int c = 0; c < K; c++) {
            float x[4], y[4], gx[4], gy[4];
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const int i = 4 * ti + r, j = 4 * tj + r;
                x[r] = X[i * ld + c], y[r] = Y[j * ld + c];
                if (MODE != LM_SCALAR) gx[r] = Gs[max(i - SHIFT, 0) * ld + c], gy[r] = Gs[j * ld + c];
            }
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    const float xy = x[r] * y[s];
                    acc[r][s] += MODE == LM_SCALAR ? xy : xy * expf(gx[r] - gy[s]);
                }
        }
    }
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const int i = 4 * ti + r, j = 4 * tj + s;
            if (i >= n || j >= n) continue;
            const bool keep = SHIFT ? j < i : j <= i;
            float val = 0.f;
            if (keep) {
                val = scale * acc[r][s];
                if (MODE == LM_SCALAR) val *= expf(Gs[i] - Gs[j]);
            }
            dst[(int64_t)i * ldd + j] = val;
        }
}

template <int MODE>
static __global__ void __launch_bounds__(LC_THREADS)
    lin_prep_kernel(lin_in in, lin_scr s, int T, int H, int K, int NT, float scale) {
    extern __shared__ float sm[];
    const int ld = K + 1, nb = LC_C * (K + 1 > LC_LDC ? K + 1 : LC_LDC);
    float *Gs = sm, *X = Gs + nb, *Y = X + nb, *M = Y + nb;  // M: DPLR's A_ab (C, C+1)
    const int tid = threadIdx.x;
    const int64_t bh = blockIdx.x / NT;
    const int ci = (int)(blockIdx.x % NT);
    const int b = (int)(bh / H), h = (int)(bh % H), t0 = ci * LC_C, n = min(LC_C, T - t0), L = n - 1;
    const int64_t row0 = (int64_t)b * T + t0;  // (b, t0) in (B, T)
    const int64_t srow0 = bh * T + t0;         // (b, h, t0) in (B, H, T)
    const int64_t sk = (int64_t)H * K;         // time stride of q, k, a, b, gk
    const int64_t ik = (row0 * H + h) * K;     // (b, t0, h, 0) in (B, T, H, K)

    // G: sequential fp32 cumsum over the chunk's rows, as the CPU's pn_rc_chunk_cumsum.
    if (MODE == LM_SCALAR) {
        if (tid == 0) {
            float run = 0.f;
            for (int i = 0; i < LC_C; i++) {
                if (i < n) {
                    if (in.g) run += in.g[(row0 + i) * H + h];
                    s.G[srow0 + i] = run;
                }
                Gs[i] = i < n ? run : 0.f;
            }
        }
    } else {
        for (int x = tid; x < K; x += blockDim.x) {
            float run = 0.f;
            for (int i = 0; i < LC_C; i++) {
                if (i < n) {
                    run += in.g[ik + i * sk + x];
                    s.G[(srow0 + i) * K + x] = run;
                }
                Gs[i * ld + x] = i < n ? run : 0.f;
            }
        }
    }
    lc_load_rows(X, ld, in.q + ik, sk, n, K);
    lc_load_rows(Y, ld, in.k + ik, sk, n, K);
    __syncthreads();
    // gate value of row i, channel x
#define GATE(i, x) (MODE == LM_SCALAR ? Gs[(i)] : Gs[(i) * ld + (x)])
    for (int x = tid; x < K; x += blockDim.x) s.EL[(bh * NT + ci) * K + x] = expf(GATE(L, x));
    for (int e = tid; e < n * K; e += blockDim.x) {
        const int i = e / K, x = e % K;
        const float gi = GATE(i, x), gl = GATE(L, x);
        s.Qg[(srow0 + i) * K + x] = scale * X[i * ld + x] * expf(gi);
        s.Kd[(srow0 + i) * K + x] = Y[i * ld + x] * expf(gl - gi);
    }
    prep_scores<MODE, 0>(s.Aqk + srow0 * LC_C, LC_C, X, Y, Gs, ld, n, K, scale);
    if constexpr (MODE == LM_DPLR) {
        __syncthreads();  // Y (k) is replaced by b
        lc_load_rows(Y, ld, in.b + ik, sk, n, K);
        __syncthreads();
        for (int e = tid; e < n * K; e += blockDim.x) {
            const int i = e / K, x = e % K;
            s.Bd[(srow0 + i) * K + x] = Y[i * ld + x] * expf(GATE(L, x) - GATE(i, x));
        }
        prep_scores<MODE, 0>(s.Aqb + srow0 * LC_C, LC_C, X, Y, Gs, ld, n, K, scale);
        __syncthreads();  // X (q) is replaced by a
        lc_load_rows(X, ld, in.a + ik, sk, n, K);
        __syncthreads();
        for (int e = tid; e < n * K; e += blockDim.x) {
            const int i = e / K, x = e % K;
            s.Ag[(srow0 + i) * K + x] = X[i * ld + x] * (i ? expf(GATE(i - 1, x)) : 1.0f);
        }
        prep_scores<MODE, 1>(M, LC_LDC, X, Y, Gs, ld, n, K, 1.0f);  // A_ab, kept in shared memory
        __syncthreads();                                            // Y (b) is replaced by k
        lc_load_rows(Y, ld, in.k + ik, sk, n, K);
        __syncthreads();
        prep_scores<MODE, 1>(s.Aak + srow0 * LC_C, LC_C, X, Y, Gs, ld, n, K, 1.0f);
        __syncthreads();  // X is free: Mi = (I − A_ab)⁻¹ goes there (row stride LC_LDC)
        float *Mi = X;
        for (int e = tid; e < LC_C * LC_LDC; e += blockDim.x) Mi[e] = e / LC_LDC == e % LC_LDC ? 1.0f : 0.0f;
        __syncthreads();
        // (I − A) Mi = I: Mi_ij = Σ_{j ≤ m < i} A_im Mi_mj for j < i. Row i reads rows < i only.
        for (int i = 1; i < n; i++) {
            if (tid < i) {
                float acc = 0.f;
                for (int m = tid; m < i; m++) acc += M[i * LC_LDC + m] * Mi[m * LC_LDC + tid];
                Mi[i * LC_LDC + tid] = acc;
            }
            __syncthreads();
        }
        for (int e = tid; e < n * n; e += blockDim.x) {
            const int i = e / n, j = e % n;
            s.Minv[(srow0 + i) * LC_C + j] = Mi[i * LC_LDC + j];
        }
    }
#undef GATE
}

// ================================================================ kernel 2: forward scan
static size_t fscan_smem_bytes(int K, int BV, bool lr) {
    size_t f = (size_t)K * BV + (size_t)LC_C * (K + 1) + (size_t)LC_C * BV + (size_t)LC_C * LC_LDC + K;
    if (lr) f += 2 * (size_t)LC_C * BV + (size_t)LC_C * LC_LDC;
    return f * sizeof(float);
}

// Shared memory: S (K, BV) | Buf (C, K+1) (Ag, Qg, Kd, Bd in turn) | Vt (C, BV) |
// M1 (C, C+1) | el (K) | DPLR: X, Pt (C, BV), M2 (C, C+1).
// Hs (B, H, NT, K, V): chunk-start states, stored when not NULL; Pst (B, H, T, V): P.
template <int BV, bool LR, typename OT>
static __global__ void __launch_bounds__(LC_THREADS)
    lin_fscan_kernel(lin_scr s, const __nv_bfloat16 *__restrict__ v, const float *h0, float *ht, OT *o, float *Hs,
                     float *Pst, int T, int H, int K, int V, int NT, int nvt) {
    constexpr int NRG = LC_THREADS / BV, RPT = LC_C / NRG;
    extern __shared__ float sm[];
    const int ldk = K + 1;
    float *S = sm, *Buf = S + K * BV, *Vt = Buf + LC_C * ldk, *M1 = Vt + LC_C * BV, *el = M1 + LC_C * LC_LDC;
    float *X = el + K, *Pt = X + LC_C * BV, *M2 = Pt + LC_C * BV;  // DPLR only
    const int tid = threadIdx.x, c = tid % BV, rg = tid / BV;
    const int64_t bh = blockIdx.x / nvt;
    const int b = (int)(bh / H), h = (int)(bh % H), c0 = (int)(blockIdx.x % nvt) * BV;
    const bool col_ok = c0 + c < V;
    const int64_t KV = (int64_t)K * V, sv = (int64_t)H * V;

    for (int e = tid; e < K * BV; e += LC_THREADS) {
        const int x = e / BV, cc = e % BV;
        S[e] = h0 && c0 + cc < V ? h0[bh * KV + (int64_t)x * V + c0 + cc] : 0.f;
    }
    for (int ci = 0; ci < NT; ci++) {
        const int t0 = ci * LC_C, n = min(LC_C, T - t0);
        const int64_t row0 = (int64_t)b * T + t0, srow0 = bh * T + t0;
        __syncthreads();  // S complete; every reader of the previous chunk's tiles is done
        if (Hs)
            for (int e = tid; e < K * BV; e += LC_THREADS) {
                const int x = e / BV, cc = e % BV;
                if (c0 + cc < V) Hs[(bh * NT + ci) * KV + (int64_t)x * V + c0 + cc] = S[e];
            }
        lc_load_vtile<BV>(Vt, v + (row0 * H + h) * V + c0, sv, n, V - c0);
        if constexpr (LR) {
            lc_load_rows(Buf, ldk, s.Ag + srow0 * K, K, n, K);
            lc_load_cc(M1, s.Aak + srow0 * LC_C, LC_C, n);
            lc_load_cc(M2, s.Minv + srow0 * LC_C, LC_C, n);
            __syncthreads();
            float acc[RPT] = {};  // X = Ag S + A_ak V
            lc_mm_acc<BV>(acc, Buf, ldk, S, K, rg, c);
            lc_mm_acc<BV>(acc, M1, LC_LDC, Vt, n, rg, c);
            lc_store_acc<BV>(X, acc, n, rg, c);
            __syncthreads();
            float p[RPT] = {};  // P = (I − A_ab)⁻¹ X
            lc_mm_acc<BV>(p, M2, LC_LDC, X, n, rg, c);
            lc_store_acc<BV>(Pt, p, n, rg, c);
            if (Pst && col_ok)
#pragma unroll
                for (int r = 0; r < RPT; r++) {
                    const int i = rg + NRG * r;
                    if (i < n) Pst[(srow0 + i) * V + c0 + c] = p[r];
                }
            __syncthreads();
        }
        if (o) {
            lc_load_rows(Buf, ldk, s.Qg + srow0 * K, K, n, K);
            lc_load_cc(M1, s.Aqk + srow0 * LC_C, LC_C, n);
            if constexpr (LR) lc_load_cc(M2, s.Aqb + srow0 * LC_C, LC_C, n);
            __syncthreads();
            float acc[RPT] = {};  // O = Qg S + A_qk V [+ A_qb P]
            lc_mm_acc<BV>(acc, Buf, ldk, S, K, rg, c);
            lc_mm_acc<BV>(acc, M1, LC_LDC, Vt, n, rg, c);
            if constexpr (LR) lc_mm_acc<BV>(acc, M2, LC_LDC, Pt, n, rg, c);
            if (col_ok)
#pragma unroll
                for (int r = 0; r < RPT; r++) {
                    const int i = rg + NRG * r;
                    if (i < n) from_f32(o + ((row0 + i) * H + h) * V + c0 + c, acc[r]);
                }
            __syncthreads();  // Buf is rewritten below
        }
        // S ← e^{G_L} ⊙ S + Kdᵀ V [+ Bdᵀ P]
        lc_load_rows(Buf, ldk, s.Kd + srow0 * K, K, n, K);
        for (int x = tid; x < K; x += LC_THREADS) el[x] = s.EL[(bh * NT + ci) * K + x];
        __syncthreads();
        lc_state_update<BV>(S, el, Buf, ldk, Vt, n, K, rg, c);
        if constexpr (LR) {
            __syncthreads();
            lc_load_rows(Buf, ldk, s.Bd + srow0 * K, K, n, K);
            __syncthreads();
            lc_state_update<BV>(S, nullptr, Buf, ldk, Pt, n, K, rg, c);
        }
    }
    __syncthreads();
    if (ht)
        for (int e = tid; e < K * BV; e += LC_THREADS) {
            const int x = e / BV, cc = e % BV;
            if (c0 + cc < V) ht[bh * KV + (int64_t)x * V + c0 + cc] = S[e];
        }
}

// ================================================================ kernel 3: reverse scan
static size_t rscan_smem_bytes(int K, int BV, bool lr) {
    size_t f = (size_t)K * BV + (size_t)LC_C * (K + 1) + (size_t)LC_C * BV + K;
    if (lr) f += 2 * (size_t)LC_C * BV + (size_t)LC_C * LC_LDC;
    return f * sizeof(float);
}

// Shared memory: dS (K, BV) | Buf (C, K+1) (Bd, Qg, Ag in turn) | Dt (C, BV) | el (K) |
// DPLR: Y, R (C, BV), M (C, C+1). dS is the gradient w.r.t. the END state of the chunk
// being processed; dHs (B, H, NT, K, V) stores it per chunk, dRst (B, H, T, V) stores dR.
template <int BV, bool LR>
static __global__ void __launch_bounds__(LC_THREADS)
    lin_rscan_kernel(lin_scr s, const float *__restrict__ dout, const float *dht, float *dh0, float *dHs, float *dRst,
                     int T, int H, int K, int V, int NT, int nvt) {
    constexpr int NRG = LC_THREADS / BV, RPT = LC_C / NRG;
    extern __shared__ float sm[];
    const int ldk = K + 1;
    float *dS = sm, *Buf = dS + K * BV, *Dt = Buf + LC_C * ldk, *el = Dt + LC_C * BV;
    float *Y = el + K, *R = Y + LC_C * BV, *M = R + LC_C * BV;  // DPLR only
    const int tid = threadIdx.x, c = tid % BV, rg = tid / BV;
    const int64_t bh = blockIdx.x / nvt;
    const int b = (int)(bh / H), h = (int)(bh % H), c0 = (int)(blockIdx.x % nvt) * BV;
    const bool col_ok = c0 + c < V;
    const int64_t KV = (int64_t)K * V, sv = (int64_t)H * V;

    for (int e = tid; e < K * BV; e += LC_THREADS) {
        const int x = e / BV, cc = e % BV;
        dS[e] = dht && c0 + cc < V ? dht[bh * KV + (int64_t)x * V + c0 + cc] : 0.f;
    }
    for (int ci = NT - 1; ci >= 0; ci--) {
        const int t0 = ci * LC_C, n = min(LC_C, T - t0);
        const int64_t row0 = (int64_t)b * T + t0, srow0 = bh * T + t0;
        __syncthreads();
        for (int e = tid; e < K * BV; e += LC_THREADS) {
            const int x = e / BV, cc = e % BV;
            if (c0 + cc < V) dHs[(bh * NT + ci) * KV + (int64_t)x * V + c0 + cc] = dS[e];
        }
        lc_load_vtile<BV>(Dt, dout + (row0 * H + h) * V + c0, sv, n, V - c0);
        if constexpr (LR) {
            lc_load_cc(M, s.Aqb + srow0 * LC_C, LC_C, n);
            lc_load_rows(Buf, ldk, s.Bd + srow0 * K, K, n, K);
            __syncthreads();
            float acc[RPT] = {};  // Y = A_qbᵀ dO + Bd dS
            lc_mmT_acc<BV>(acc, M, LC_LDC, Dt, n, rg, c);
            lc_mm_acc<BV>(acc, Buf, ldk, dS, K, rg, c);
            lc_store_acc<BV>(Y, acc, n, rg, c);
            __syncthreads();
            lc_load_cc(M, s.Minv + srow0 * LC_C, LC_C, n);
            __syncthreads();
            float r_[RPT] = {};  // dR = (I − A_ab)⁻ᵀ Y
            lc_mmT_acc<BV>(r_, M, LC_LDC, Y, n, rg, c);
            lc_store_acc<BV>(R, r_, n, rg, c);
            if (col_ok)
#pragma unroll
                for (int r = 0; r < RPT; r++) {
                    const int i = rg + NRG * r;
                    if (i < n) dRst[(srow0 + i) * V + c0 + c] = r_[r];
                }
            __syncthreads();
        }
        // dS ← e^{G_L} ⊙ dS + Qgᵀ dO [+ Agᵀ dR]
        lc_load_rows(Buf, ldk, s.Qg + srow0 * K, K, n, K);
        for (int x = tid; x < K; x += LC_THREADS) el[x] = s.EL[(bh * NT + ci) * K + x];
        __syncthreads();
        lc_state_update<BV>(dS, el, Buf, ldk, Dt, n, K, rg, c);
        if constexpr (LR) {
            __syncthreads();
            lc_load_rows(Buf, ldk, s.Ag + srow0 * K, K, n, K);
            __syncthreads();
            lc_state_update<BV>(dS, nullptr, Buf, ldk, R, n, K, rg, c);
        }
    }
    __syncthreads();
    if (dh0)
        for (int e = tid; e < K * BV; e += LC_THREADS) {
            const int x = e / BV, cc = e % BV;
            if (c0 + cc < V) dh0[bh * KV + (int64_t)x * V + c0 + cc] += dS[e];
        }
}

// ================================================================ kernel 4: per-chunk gradients
struct lin_gin {
    lin_in in;
    lin_scr s;
    const float *Hs, *dHs;  // (B, H, NT, K, V) chunk-start states; gradients w.r.t. chunk-end states
    const float *P, *dR;    // DPLR: (B, H, T, V)
    const float *dout;      // (B, T, H, V)
    float *dq, *dk, *dv, *dg, *da, *db;  // the caller's (may be NULL); dg (B, T, H) or (B, T, H, K)
    float *ws;              // gridDim.x × grads_ws_floats
    int64_t BH;
    int T, H, K, V, NT;
    float scale;
};

// Work space of one block: score gradients (C, C) × nm, then (C, K) × nk: tq, tk, dqI, dkI
// [, ta, tb, daI, dbI] (inter-chunk parts and intra-chunk gradients).
static __host__ __device__ int64_t grads_ws_floats(int K, int mode) {
    const int64_t C = LC_C, nm = mode == LM_DPLR ? 4 : 1, nk = mode == LM_DPLR ? 8 : 4;
    return nm * C * C + nk * C * K;
}


template <int MODE>
static __global__ void __launch_bounds__(LC_THREADS) lin_grads_kernel(lin_gin a) {
    constexpr bool LR = MODE == LM_DPLR;
    __shared__ float red[32], dgam[LC_C];
    const int tid = threadIdx.x, nth = blockDim.x, lane = tid & 31, warp = tid >> 5, nw = nth >> 5;
    const int T = a.T, H = a.H, K = a.K, V = a.V, NT = a.NT;
    const int64_t C = LC_C, KV = (int64_t)K * V, sk = (int64_t)H * K, sv = (int64_t)H * V;
    const int64_t Kg = MODE == LM_SCALAR ? 1 : K;  // gate values per row
    const float scale = a.scale;
    float *w0 = a.ws + (int64_t)blockIdx.x * grads_ws_floats(K, MODE);
    float *dAqk = w0, *dAqb = dAqk + C * C, *dAak = dAqb + C * C, *dAab = dAak + C * C;  // last three: DPLR
    float *tq = w0 + (LR ? 4 : 1) * C * C, *tk = tq + C * K, *dqI = tk + C * K, *dkI = dqI + C * K;
    float *ta = dkI + C * K, *tb = ta + C * K, *daI = tb + C * K, *dbI = daI + C * K;  // DPLR

    for (int64_t item = blockIdx.x; item < a.BH * NT; item += gridDim.x) {
        const int64_t bh = item / NT;
        const int ci = (int)(item % NT);
        const int b = (int)(bh / H), h = (int)(bh % H), t0 = ci * LC_C, n = min(LC_C, T - t0);
        const int64_t row0 = (int64_t)b * T + t0, srow0 = bh * T + t0;
        const int64_t ik = (row0 * H + h) * K, iv = (row0 * H + h) * V;  // (b, t0, h, 0) in (B, T, H, ·)
        const __nv_bfloat16 *qc = a.in.q + ik, *kc = a.in.k + ik, *vc = a.in.v + iv;
        const __nv_bfloat16 *ac = LR ? a.in.a + ik : nullptr, *bc = LR ? a.in.b + ik : nullptr;
        const float *doc = a.dout + iv;
        const float *Sn = a.Hs + (bh * NT + ci) * KV, *dSn = a.dHs + (bh * NT + ci) * KV;
        const float *G = a.s.G + srow0 * Kg, *el = a.s.EL + (bh * NT + ci) * K;
        const float *Aqk = a.s.Aqk + srow0 * C, *Kd = a.s.Kd + srow0 * K;
        const float *Pc = LR ? a.P + srow0 * V : nullptr, *Rc = LR ? a.dR + srow0 * V : nullptr;

        // dV = A_qkᵀ dO + Kd dS [+ A_akᵀ dR], added straight into the caller's rows (this
        // block owns them)
        if (a.dv) {
            float *dvc = a.dv + iv;
            lc_bgemm(1, 0, n, V, n, 1.f, Aqk, C, doc, sv, 1.f, dvc, sv);
            lc_bgemm(0, 0, n, V, K, 1.f, Kd, (int64_t)K, dSn, (int64_t)V, 1.f, dvc, sv);
            if constexpr (LR) lc_bgemm(1, 0, n, V, n, 1.f, a.s.Aak + srow0 * C, C, Rc, (int64_t)V, 1.f, dvc, sv);
        }
        // score gradients (n, n), row stride C: dO Vᵀ [, dO Pᵀ, dR Vᵀ, dR Pᵀ]
        lc_bgemm(0, 1, n, n, V, 1.f, doc, sv, vc, sv, 0.f, dAqk, C);
        if constexpr (LR) {
            lc_bgemm(0, 1, n, n, V, 1.f, doc, sv, Pc, (int64_t)V, 0.f, dAqb, C);
            lc_bgemm(0, 1, n, n, V, 1.f, Rc, (int64_t)V, vc, sv, 0.f, dAak, C);
            lc_bgemm(0, 1, n, n, V, 1.f, Rc, (int64_t)V, Pc, (int64_t)V, 0.f, dAab, C);
        }
        // inter-chunk parts (n, K): tq = dO Sᵀ, tk = V dSᵀ [, ta = dR Sᵀ, tb = P dSᵀ]
        lc_bgemm(0, 1, n, K, V, 1.f, doc, sv, Sn, (int64_t)V, 0.f, tq, (int64_t)K);
        lc_bgemm(0, 1, n, K, V, 1.f, vc, sv, dSn, (int64_t)V, 0.f, tk, (int64_t)K);
        if constexpr (LR) {
            lc_bgemm(0, 1, n, K, V, 1.f, Rc, (int64_t)V, Sn, (int64_t)V, 0.f, ta, (int64_t)K);
            lc_bgemm(0, 1, n, K, V, 1.f, Pc, (int64_t)V, dSn, (int64_t)V, 0.f, tb, (int64_t)K);
        }
        // masks (and the scale of the q rows); simple GLA folds its decay in here too
        for (int e = tid; e < n * n; e += nth) {
            const int i = e / n, j = e % n;
            const int64_t ij = (int64_t)i * C + j;
            if (MODE == LM_SCALAR)
                dAqk[ij] = j <= i ? scale * dAqk[ij] * expf(G[i] - G[j]) : 0.f;
            else
                dAqk[ij] = j <= i ? scale * dAqk[ij] : 0.f;
            if constexpr (LR) {
                dAqb[ij] = j <= i ? scale * dAqb[ij] : 0.f;
                dAak[ij] = j < i ? dAak[ij] : 0.f;
                dAab[ij] = j < i ? dAab[ij] : 0.f;
            }
        }
        __syncthreads();

        if constexpr (MODE == LM_SCALAR) {
            // intra-chunk: dq = dA K, dk = dAᵀ Q
            lc_bgemm(0, 0, n, K, n, 1.f, dAqk, C, kc, sk, 0.f, dqI, (int64_t)K);
            lc_bgemm(1, 0, n, K, n, 1.f, dAqk, C, qc, sk, 0.f, dkI, (int64_t)K);
            const float gl = G[n - 1];
            for (int e = tid; e < n * K; e += nth) {
                const int i = e / K, x = e % K;
                const int64_t o = ik + (int64_t)i * sk + x;
                const float qx = to_f32(qc[(int64_t)i * sk + x]), kx = to_f32(kc[(int64_t)i * sk + x]);
                const float gk_ = tk[e] * expf(gl - G[i]);
                const float dq = dqI[e] + tq[e] * scale * expf(G[i]);
                const float dk = dkI[e] + gk_;
                if (a.dq) a.dq[o] += dq;
                if (a.dk) a.dk[o] += dk;
                tq[e] = qx * dq - kx * dk;  // row i's share of dγ_i
                tk[e] = kx * gk_;           // the last row's extra term
            }
            __syncthreads();
            if (a.dg) {
                for (int i = warp; i < n; i += nw) {
                    float sum = 0.f;
                    for (int x = lane; x < K; x += 32) sum += tq[(int64_t)i * K + x];
                    sum = warp_sum(sum);
                    if (lane == 0) dgam[i] = sum;
                }
                float p1 = 0.f, p2 = 0.f;
                for (int64_t e = tid; e < KV; e += nth) p1 += dSn[e] * Sn[e];
                for (int e = tid; e < n * K; e += nth) p2 += tk[e];
                const float s1 = block_sum(p1, red);
                const float s2 = block_sum(p2, red);
                if (tid == 0) {  // dg = reverse chunk-local cumsum of dγ
                    const float last = el[0] * s1 + s2;
                    float carry = 0.f;
                    for (int i = n - 1; i >= 0; i--) {
                        carry += dgam[i] + (i == n - 1 ? last : 0.f);
                        a.dg[(row0 + i) * H + h] += carry;
                    }
                }
            }
        } else {
            // intra-chunk, element-wise (a per-channel gate does not factor). Row-owned: dq_i, da_i.
            for (int e = tid; e < n * K; e += nth) {
                const int i = e / K, x = e % K;
                const float gi = G[(int64_t)i * K + x];
                float dq = 0.f;
                for (int j = 0; j <= i; j++) {
                    const float ex = expf(gi - G[(int64_t)j * K + x]);
                    float t = dAqk[i * C + j] * to_f32(kc[(int64_t)j * sk + x]);
                    if constexpr (LR) t += dAqb[i * C + j] * to_f32(bc[(int64_t)j * sk + x]);
                    dq += ex * t;
                }
                dqI[e] = dq;
                if constexpr (LR) {
                    const float gim = i ? G[(int64_t)(i - 1) * K + x] : 0.f;  // G_{i−1}
                    float da = 0.f;
                    for (int j = 0; j < i; j++) {
                        const float ex = expf(gim - G[(int64_t)j * K + x]);
                        da += ex * (dAak[i * C + j] * to_f32(kc[(int64_t)j * sk + x]) +
                                    dAab[i * C + j] * to_f32(bc[(int64_t)j * sk + x]));
                    }
                    daI[e] = da;
                }
            }
            // Column-owned: dk_j, db_j.
            for (int e = tid; e < n * K; e += nth) {
                const int j = e / K, x = e % K;
                const float gj = G[(int64_t)j * K + x];
                float dk = 0.f, db = 0.f;
                for (int i = j; i < n; i++) {
                    const float ex = expf(G[(int64_t)i * K + x] - gj), qx = to_f32(qc[(int64_t)i * sk + x]);
                    dk += ex * dAqk[i * C + j] * qx;
                    if constexpr (LR) db += ex * dAqb[i * C + j] * qx;
                }
                if constexpr (LR)
                    for (int i = j + 1; i < n; i++) {
                        const float ex = expf(G[(int64_t)(i - 1) * K + x] - gj), ax = to_f32(ac[(int64_t)i * sk + x]);
                        dk += ex * dAak[i * C + j] * ax;
                        db += ex * dAab[i * C + j] * ax;
                    }
                dkI[e] = dk;
                if constexpr (LR) dbI[e] = db;
            }
            __syncthreads();
            // Totals and the gate gradient, one thread per key channel x walking the rows
            // upwards: dG_i = q dq − k dk [− b db + a_{i+1} da_{i+1}] (+ last on row n−1).
            for (int x = tid; x < K; x += nth) {
                const float gl = G[(int64_t)(n - 1) * K + x];
                float last = 0.f;
                if (a.dg) {
                    for (int vv = 0; vv < V; vv++) last += dSn[(int64_t)x * V + vv] * Sn[(int64_t)x * V + vv];
                    last *= el[x];
                    for (int i = 0; i < n; i++) {
                        float t = to_f32(kc[(int64_t)i * sk + x]) * tk[(int64_t)i * K + x];
                        if constexpr (LR) t += to_f32(bc[(int64_t)i * sk + x]) * tb[(int64_t)i * K + x];
                        last += expf(gl - G[(int64_t)i * K + x]) * t;
                    }
                }
                float carry = 0.f, ada = 0.f;  // ada = a_{i+1} · da_{i+1}
                for (int i = n - 1; i >= 0; i--) {
                    const int64_t e = (int64_t)i * K + x, o = ik + (int64_t)i * sk + x;
                    const float gi = G[e], dec = expf(gl - gi);
                    const float qx = to_f32(qc[(int64_t)i * sk + x]), kx = to_f32(kc[(int64_t)i * sk + x]);
                    const float dq = dqI[e] + tq[e] * scale * expf(gi);
                    const float dk = dkI[e] + tk[e] * dec;
                    float dG = qx * dq - kx * dk + (i == n - 1 ? last : 0.f);
                    if constexpr (LR) {
                        const float ax = to_f32(ac[(int64_t)i * sk + x]), bx = to_f32(bc[(int64_t)i * sk + x]);
                        const float da = daI[e] + ta[e] * (i ? expf(G[e - K]) : 1.0f);
                        const float db = dbI[e] + tb[e] * dec;
                        dG += ada - bx * db;
                        ada = ax * da;
                        if (a.da) a.da[o] += da;
                        if (a.db) a.db[o] += db;
                    }
                    carry += dG;
                    if (a.dq) a.dq[o] += dq;
                    if (a.dk) a.dk[o] += dk;
                    if (a.dg) a.dg[o] += carry;
                }
            }
        }
        __syncthreads();  // the work space is reused by the next item
    }
}

// ================================================================ host side
static float *scr_f32(int64_t n) {
    return n > 0 ? (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)n * sizeof(float)) : nullptr;
}

static lin_scr scr_alloc(int mode, int64_t BH, int T, int K, int NT) {
    const int64_t rows = BH * T;
    lin_scr s;
    memset(&s, 0, sizeof s);
    s.G = scr_f32(rows * (mode == LM_SCALAR ? 1 : K));
    s.Qg = scr_f32(rows * K);
    s.Kd = scr_f32(rows * K);
    s.Aqk = scr_f32(rows * LC_C);
    s.EL = scr_f32(BH * NT * K);
    if (mode == LM_DPLR) {
        s.Ag = scr_f32(rows * K);
        s.Bd = scr_f32(rows * K);
        s.Aqb = scr_f32(rows * LC_C);
        s.Aak = scr_f32(rows * LC_C);
        s.Minv = scr_f32(rows * LC_C);
    }
    return s;
}

static void scr_free(lin_scr *s) {
    float *all[] = {s->G, s->Qg, s->Kd, s->Aqk, s->EL, s->Ag, s->Bd, s->Aqb, s->Aak, s->Minv};
    for (float *p : all) pn_cuda_free(p);
}

template <int MODE>
static void prep_run(const lin_in &in, const lin_scr &s, int64_t BH, int T, int H, int K, int NT, float scale) {
    const size_t smem = prep_smem_bytes(K, MODE);
    PN_CHECK_CUDA(cudaFuncSetAttribute(lin_prep_kernel<MODE>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    lin_prep_kernel<MODE><<<(unsigned)(BH * NT), LC_THREADS, smem, pn_stream()>>>(in, s, T, H, K, NT, scale);
    PN_CHECK_LAUNCH();
}

static void prep_pick(int mode, const lin_in &in, const lin_scr &s, int64_t BH, int T, int H, int K, int NT,
                      float scale) {
    if (mode == LM_SCALAR)
        prep_run<LM_SCALAR>(in, s, BH, T, H, K, NT, scale);
    else if (mode == LM_VEC)
        prep_run<LM_VEC>(in, s, BH, T, H, K, NT, scale);
    else
        prep_run<LM_DPLR>(in, s, BH, T, H, K, NT, scale);
}

// Column tiles of the two scans: 32 or 64 state columns per block (pn_cuda_linear_debug_scan_bv
// forces one; 0 = scan_bv's choice).
static int g_scan_bv = 0;
// Blocks per SM of the per-chunk gradient kernel (pn_cuda_linear_debug_grads_blocks; 0 = as many
// as the registers and shared memory allow).
static int g_grads_bps = 0;

// Resident blocks per SM of a kernel launched with LC_THREADS threads and smem bytes.
template <typename KERN>
static int lc_blocks_per_sm(KERN kern, size_t smem) {
    int n = 0;
    // (the query counts only what the kernel's dynamic shared memory limit allows)
    PN_CHECK_CUDA(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    PN_CHECK_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kern, LC_THREADS, smem));
    return n > 0 ? n : 1;
}

// Waves of a grid of `blocks` at `per_sm` resident blocks per SM.
static int64_t lc_waves(int64_t blocks, int per_sm) {
    const int64_t slots = (int64_t)per_sm * lc_num_sms();
    return (blocks + slots - 1) / slots;
}

// The scans' column tile: 32 above K = 128 (64 does not fit the shared memory); below, 32
// where its grid takes no more waves than 64's: each block then does half the column work, and
// two fit an SM where one 64-column block fit (at K 128 one 8-warp block kept 12% of the warp
// slots busy, H100). At B8 T4096 H12 K128 V128 both grids take two waves (192 blocks one per SM,
// 384 two per SM); the 32-column form took the DPLR forward's scan from ~23 to ~20 ms, not half:
// the loads of the chunk's (64, K) operands, the same for either tile, and the shared-memory
// issue rate bound a block as much as its column work.
template <typename K64, typename K32>
static int scan_bv(K64 k64, size_t smem64, K32 k32, size_t smem32, int64_t BH, int K, int V) {
    if (K > 128) return 32;
    if (g_scan_bv == 32 || g_scan_bv == 64) return g_scan_bv;
    const int64_t w64 = lc_waves(BH * pn_ceil_div(V, 64), lc_blocks_per_sm(k64, smem64));
    const int64_t w32 = lc_waves(BH * pn_ceil_div(V, 32), lc_blocks_per_sm(k32, smem32));
    return w32 <= w64 ? 32 : 64;
}

template <int BV, bool LR, typename OT>
static void fscan_launch(const lin_scr &s, const __nv_bfloat16 *v, const float *h0, float *ht, OT *o, float *Hs,
                         float *P, int64_t BH, int T, int H, int K, int V, int NT) {
    const int nvt = (int)pn_ceil_div(V, BV);
    const size_t smem = fscan_smem_bytes(K, BV, LR);
    PN_CHECK_CUDA(
        cudaFuncSetAttribute(lin_fscan_kernel<BV, LR, OT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    lin_fscan_kernel<BV, LR, OT>
        <<<(unsigned)(BH * nvt), LC_THREADS, smem, pn_stream()>>>(s, v, h0, ht, o, Hs, P, T, H, K, V, NT, nvt);
    PN_CHECK_LAUNCH();
}

template <bool LR, typename OT>
static void fscan_bv(const lin_scr &s, const __nv_bfloat16 *v, const float *h0, float *ht, OT *o, float *Hs, float *P,
                     int64_t BH, int T, int H, int K, int V, int NT) {
    const int bv = scan_bv(lin_fscan_kernel<64, LR, OT>, fscan_smem_bytes(K, 64, LR), lin_fscan_kernel<32, LR, OT>,
                           fscan_smem_bytes(K, 32, LR), BH, K, V);
    if (bv == 64)
        fscan_launch<64, LR, OT>(s, v, h0, ht, o, Hs, P, BH, T, H, K, V, NT);
    else
        fscan_launch<32, LR, OT>(s, v, h0, ht, o, Hs, P, BH, T, H, K, V, NT);
}

static void fscan_pick(bool lr, const lin_scr &s, const __nv_bfloat16 *v, const float *h0, float *ht, void *o,
                       pn_cuda_dtype o_dt, float *Hs, float *P, int64_t BH, int T, int H, int K, int V, int NT) {
    if (o && o_dt == PN_CUDA_BF16) {
        __nv_bfloat16 *ob = (__nv_bfloat16 *)o;
        if (lr)
            fscan_bv<true>(s, v, h0, ht, ob, Hs, P, BH, T, H, K, V, NT);
        else
            fscan_bv<false>(s, v, h0, ht, ob, Hs, P, BH, T, H, K, V, NT);
    } else {
        float *of = (float *)o;
        if (lr)
            fscan_bv<true>(s, v, h0, ht, of, Hs, P, BH, T, H, K, V, NT);
        else
            fscan_bv<false>(s, v, h0, ht, of, Hs, P, BH, T, H, K, V, NT);
    }
}

template <int BV, bool LR>
static void rscan_launch(const lin_scr &s, const float *dout, const float *dht, float *dh0, float *dHs, float *dR,
                         int64_t BH, int T, int H, int K, int V, int NT) {
    const int nvt = (int)pn_ceil_div(V, BV);
    const size_t smem = rscan_smem_bytes(K, BV, LR);
    PN_CHECK_CUDA(
        cudaFuncSetAttribute(lin_rscan_kernel<BV, LR>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    lin_rscan_kernel<BV, LR>
        <<<(unsigned)(BH * nvt), LC_THREADS, smem, pn_stream()>>>(s, dout, dht, dh0, dHs, dR, T, H, K, V, NT, nvt);
    PN_CHECK_LAUNCH();
}

template <bool LR>
static void rscan_bv(const lin_scr &s, const float *dout, const float *dht, float *dh0, float *dHs, float *dR,
                     int64_t BH, int T, int H, int K, int V, int NT) {
    const int bv = scan_bv(lin_rscan_kernel<64, LR>, rscan_smem_bytes(K, 64, LR), lin_rscan_kernel<32, LR>,
                           rscan_smem_bytes(K, 32, LR), BH, K, V);
    if (bv == 64)
        rscan_launch<64, LR>(s, dout, dht, dh0, dHs, dR, BH, T, H, K, V, NT);
    else
        rscan_launch<32, LR>(s, dout, dht, dh0, dHs, dR, BH, T, H, K, V, NT);
}

static void rscan_pick(bool lr, const lin_scr &s, const float *dout, const float *dht, float *dh0, float *dHs,
                       float *dR, int64_t BH, int T, int H, int K, int V, int NT) {
    if (lr)
        rscan_bv<true>(s, dout, dht, dh0, dHs, dR, BH, T, H, K, V, NT);
    else
        rscan_bv<false>(s, dout, dht, dh0, dHs, dR, BH, T, H, K, V, NT);
}

// Items (b, h, chunk) over a grid of as many blocks as the SMs hold at once (the kernel is
// latency-bound: two blocks per SM, its earlier cap, kept 24% of the warp slots busy on the
// H100), each block with its own work space.
template <int MODE>
static void grads_run(lin_gin g) {
    const int64_t items = g.BH * g.NT;
    const int bps = g_grads_bps > 0 ? g_grads_bps : lc_blocks_per_sm(lin_grads_kernel<MODE>, 0);
    int64_t grid = (int64_t)bps * lc_num_sms();
    if (grid > items) grid = items;
    g.ws = scr_f32(grid * grads_ws_floats(g.K, MODE));
    lin_grads_kernel<MODE><<<(unsigned)grid, LC_THREADS, 0, pn_stream()>>>(g);
    PN_CHECK_LAUNCH();
    pn_cuda_free(g.ws);
}

static void lin_check(const char *op, int K, int V, int64_t BH, int T) {
    if (K < 1 || K > LC_KMAX || V < 1) lin_die(op, "unsupported head size", K, V);
    const int64_t NT = pn_ceil_div(T > 0 ? T : 0, LC_C);
    if (BH * NT > 0x7fffffff || BH * pn_ceil_div(V, 32) > 0x7fffffff) lin_die(op, "grid too large", K, V);
}

static void lin_fwd(int mode, const char *op, int B, int T, int H, int K, int V, float scale, const lin_in &in,
                    const float *h0, void *o, pn_cuda_dtype o_dt, float *ht) {
    const int64_t BH = (int64_t)B * H;
    lin_check(op, K, V, BH, T);
    if (BH <= 0 || T < 0) return;
    const int64_t KV = (int64_t)K * V;
    if (T == 0) {  // no tokens: the state passes through
        if (ht && ht != h0) {
            if (h0)
                pn_cuda_copy(ht, h0, (size_t)(BH * KV) * sizeof(float));
            else
                pn_cuda_memset(ht, 0, (size_t)(BH * KV) * sizeof(float));
        }
        return;
    }
    const int NT = (int)pn_ceil_div(T, LC_C);
    lin_scr s = scr_alloc(mode, BH, T, K, NT);
    prep_pick(mode, in, s, BH, T, H, K, NT, scale);
    fscan_pick(mode == LM_DPLR, s, in.v, h0, ht, o, o_dt, nullptr, nullptr, BH, T, H, K, V, NT);
    // Freed blocks go back to the cache; later work on the same stream runs after these kernels.
    scr_free(&s);
}

static void lin_bwd(int mode, const char *op, int B, int T, int H, int K, int V, float scale, const lin_in &in,
                    const float *h0, const float *dout, const float *dht, float *dq, float *dk, float *dv, float *dg,
                    float *da, float *db, float *dh0) {
    const int64_t BH = (int64_t)B * H;
    lin_check(op, K, V, BH, T);
    if (BH <= 0 || T < 0) return;
    const int64_t KV = (int64_t)K * V;
    if (T == 0) {  // the state passes through: dh0 += dht
        if (dh0 && dht) pn_cuda_add_inplace(dh0, dht, BH * KV);
        return;
    }
    const bool lr = mode == LM_DPLR;
    const int NT = (int)pn_ceil_div(T, LC_C);
    lin_scr s = scr_alloc(mode, BH, T, K, NT);
    prep_pick(mode, in, s, BH, T, H, K, NT, scale);
    float *Hs = scr_f32(BH * NT * KV), *dHs = scr_f32(BH * NT * KV);
    float *P = lr ? scr_f32(BH * T * V) : nullptr, *dR = lr ? scr_f32(BH * T * V) : nullptr;
    fscan_pick(lr, s, in.v, h0, nullptr, nullptr, PN_CUDA_F32, Hs, P, BH, T, H, K, V, NT);
    rscan_pick(lr, s, dout, dht, dh0, dHs, dR, BH, T, H, K, V, NT);
    if (dq || dk || dv || dg || da || db) {
        lin_gin g;
        memset(&g, 0, sizeof g);
        g.in = in, g.s = s;
        g.Hs = Hs, g.dHs = dHs, g.P = P, g.dR = dR, g.dout = dout;
        g.dq = dq, g.dk = dk, g.dv = dv, g.dg = dg, g.da = da, g.db = db;
        g.BH = BH, g.T = T, g.H = H, g.K = K, g.V = V, g.NT = NT, g.scale = scale;
        if (mode == LM_SCALAR)
            grads_run<LM_SCALAR>(g);
        else if (mode == LM_VEC)
            grads_run<LM_VEC>(g);
        else
            grads_run<LM_DPLR>(g);
    }
    pn_cuda_free(Hs), pn_cuda_free(dHs), pn_cuda_free(P), pn_cuda_free(dR);
    scr_free(&s);
}

static lin_in lin_inputs(const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const pn_bf16 *a, const pn_bf16 *b,
                         const float *g) {
    lin_in in;
    in.q = as_bf(q), in.k = as_bf(k), in.v = as_bf(v), in.a = as_bf(a), in.b = as_bf(b), in.g = g;
    return in;
}

// ================================================================ entry points
extern "C" void pn_cuda_simple_gla_fwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q,
                                       const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *h0, void *o,
                                       pn_cuda_dtype o_dt, float *ht) {
    lin_fwd(LM_SCALAR, "simple GLA forward", B, T, H, K, V, scale, lin_inputs(q, k, v, nullptr, nullptr, g), h0, o,
            o_dt, ht);
}

extern "C" void pn_cuda_simple_gla_bwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q,
                                       const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *h0,
                                       const float *dout, const float *dht, float *dq, float *dk, float *dv,
                                       float *dg, float *dh0) {
    lin_bwd(LM_SCALAR, "simple GLA backward", B, T, H, K, V, scale, lin_inputs(q, k, v, nullptr, nullptr, g), h0,
            dout, dht, dq, dk, dv, g ? dg : nullptr, nullptr, nullptr, dh0);
}

extern "C" void pn_cuda_gla_fwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                                const pn_bf16 *v, const float *gk, const float *h0, void *o, pn_cuda_dtype o_dt,
                                float *ht) {
    if (!gk) lin_die("GLA forward", "gk is NULL", K, V);
    lin_fwd(LM_VEC, "GLA forward", B, T, H, K, V, scale, lin_inputs(q, k, v, nullptr, nullptr, gk), h0, o, o_dt, ht);
}

extern "C" void pn_cuda_gla_bwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                                const pn_bf16 *v, const float *gk, const float *h0, const float *dout, const float *dht,
                                float *dq, float *dk, float *dv, float *dgk, float *dh0) {
    if (!gk) lin_die("GLA backward", "gk is NULL", K, V);
    lin_bwd(LM_VEC, "GLA backward", B, T, H, K, V, scale, lin_inputs(q, k, v, nullptr, nullptr, gk), h0, dout, dht, dq,
            dk, dv, dgk, nullptr, nullptr, dh0);
}

extern "C" void pn_cuda_dplr_fwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                                 const pn_bf16 *v, const float *gk, const pn_bf16 *a, const pn_bf16 *b,
                                 const float *h0, void *o, pn_cuda_dtype o_dt, float *ht) {
    if (!gk || !a || !b) lin_die("DPLR forward", "gk, a or b is NULL", K, V);
    lin_fwd(LM_DPLR, "DPLR forward", B, T, H, K, V, scale, lin_inputs(q, k, v, a, b, gk), h0, o, o_dt, ht);
}

extern "C" void pn_cuda_dplr_bwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                                 const pn_bf16 *v, const float *gk, const pn_bf16 *a, const pn_bf16 *b,
                                 const float *h0, const float *dout, const float *dht, float *dq, float *dk, float *dv,
                                 float *dgk, float *da, float *db, float *dh0) {
    if (!gk || !a || !b) lin_die("DPLR backward", "gk, a or b is NULL", K, V);
    lin_bwd(LM_DPLR, "DPLR backward", B, T, H, K, V, scale, lin_inputs(q, k, v, a, b, gk), h0, dout, dht, dq, dk, dv,
            dgk, da, db, dh0);
}

// The delta rule is the gated delta rule with g = 0: gdn.cu treats g == NULL exactly so.
extern "C" void pn_cuda_delta_rule_fwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm,
                                       const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *beta,
                                       const float *h0, void *o, pn_cuda_dtype o_dt, float *ht) {
    pn_cuda_gated_delta_fwd(B, T, H, K, V, scale, qk_l2norm, q, k, v, nullptr, beta, h0, o, o_dt, ht);
}

extern "C" void pn_cuda_delta_rule_bwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm,
                                       const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *beta,
                                       const float *h0, const float *dout, const float *dht, float *dq, float *dk,
                                       float *dv, float *dbeta, float *dh0) {
    pn_cuda_gated_delta_bwd(B, T, H, K, V, scale, qk_l2norm, q, k, v, nullptr, beta, h0, dout, dht, dq, dk, dv, nullptr,
                            dbeta, dh0);
}

extern "C" void pn_cuda_linear_debug_scan_bv(int bv) { g_scan_bv = bv == 32 || bv == 64 ? bv : 0; }
extern "C" void pn_cuda_linear_debug_grads_blocks(int per_sm) { g_grads_bps = per_sm > 0 ? per_sm : 0; }
