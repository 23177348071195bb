// gdn.cu — the gated delta rule on the GPU (JetBlock / Gated DeltaNet core): a decode step
// and the chunked (chunk 64) forward. Twins of pn_gated_delta_fwd; design and the cost
// numbers are in kernels/cuda/GDN_NOTES.md.
//
// Decode (T = 1) is memory-bound: 2·K·V·4 bytes of state per head against ~4·K·V flops.
// One block of 128 threads owns (b, h, a 32-column slice of V); each thread keeps its
// ⌈K/16⌉ × 4 piece of the state tile in registers, loaded with 16-byte accesses that
// are coalesced along the rows. Both reductions the step needs come from the OLD state
// in one pass, because o = S_newᵀ q̃ = α Sᵀq̃ + u (kᵀq̃) with u = β (v − α Sᵀk); so the
// state is read once, reduced once (warp shuffles, then 4 warps through shared memory)
// and written once.
//
// Chunked forward, natural-exp form of LINEAR_ATTENTION_KERNELS.md §3.1, per chunk of
// C = 64 rows with γ the chunk-local cumsum of g (the CPU's chunk_* functions):
//   L = strict_tril(diag(β) K Kᵀ ⊙ E), E_ij = e^{γ_i − γ_j} (masked BEFORE exp),
//   A = (I + L)⁻¹ (forward substitution, fp32), W = A diag(β e^γ) K, U = A diag(β) V,
//   Vn = U − W S,  O = scale [diag(e^γ) Q S + tril(Q Kᵀ ⊙ E) Vn],
//   S ← e^{γ_last} S + Kᵀ diag(e^{γ_last − γ}) Vn.
// Two kernels, correctness first, all math fp32 on CUDA cores:
//   1. gdn_prep: one block per (b, h, chunk), everything that does not depend on the
//      state: γ, K Kᵀ, L, A, W, U → fp32 scratch (B, H, T, ·). Fully parallel.
//   2. gdn_scan: one block per (b, h, V-tile of 64 or 32 columns) walks the chunks in
//      order with its K × BV state tile in shared memory and writes the outputs of each
//      chunk as it goes (Q Kᵀ is recomputed per V-tile instead of storing per-chunk
//      states: no h (B, NT, H, K, V) round trip through device memory).
// The q/k L2 norm is applied where rows are loaded (one warp per row), so normalised
// copies never exist in device memory.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_gdn.h"
#include <math.h>

#define GDN_EPS 1e-6f
#define GDN_KMAX 256
#define GDN_C 64  // chunk size

static void gdn_die(const char *what, int K, int V) {
    fprintf(stderr, "postnas: internal error: %s: gated delta rule %s (K = %d, V = %d; want 1 <= K <= %d, V >= 1)\n",
            __FILE__, what, K, V, GDN_KMAX);
    exit(1);
}

// ================================================================ decode step
#define STEP_THREADS 128
#define STEP_VS 32  // columns per block: 8 column groups of 4 × 16 row groups

template <int ROWS, typename OT>
__global__ void __launch_bounds__(STEP_THREADS)
    gdn_step_kernel(const __nv_bfloat16 *__restrict__ q, const __nv_bfloat16 *__restrict__ k,
                    const __nv_bfloat16 *__restrict__ v, const float *__restrict__ g, const float *__restrict__ beta,
                    float *state, OT *o, int K, int V, int nvs, float scale, int l2) {
    __shared__ float qs[16 * ROWS], ks[16 * ROWS], vs[STEP_VS];
    __shared__ float red[STEP_THREADS / 32][2][STEP_VS];
    __shared__ float dots[STEP_THREADS / 32][3];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int cg = tid & 7, rg = tid >> 3;
    const int64_t bh = blockIdx.x / nvs;
    const int vbase = (int)(blockIdx.x % nvs) * STEP_VS, c0 = vbase + 4 * cg;
    float *S = state + bh * (int64_t)K * V;
    const bool vec = (V & 3) == 0;  // then c0 < V implies c0 + 3 < V, and rows are 16-byte aligned

    // The state loads go first so that they are all in flight while q, k, v arrive.
    float s[ROWS][4];
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const int r = rg + 16 * i;
        if (vec) {
            float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
            if (r < K && c0 < V) x = *reinterpret_cast<const float4 *>(S + (int64_t)r * V + c0);
            s[i][0] = x.x, s[i][1] = x.y, s[i][2] = x.z, s[i][3] = x.w;
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++) s[i][j] = (r < K && c0 + j < V) ? S[(int64_t)r * V + c0 + j] : 0.f;
        }
    }
    float qq = 0.f, kk = 0.f, qk = 0.f;
    for (int e = tid; e < 16 * ROWS; e += STEP_THREADS) {
        float qe = 0.f, ke = 0.f;
        if (e < K) qe = to_f32(q[bh * K + e]), ke = to_f32(k[bh * K + e]);
        qs[e] = qe, ks[e] = ke;  // zero past K, so the row loop below needs no predicate
        qq += qe * qe, kk += ke * ke, qk += qe * ke;
    }
    if (tid < STEP_VS) vs[tid] = vbase + tid < V ? to_f32(v[bh * V + vbase + tid]) : 0.f;
    qq = warp_sum(qq), kk = warp_sum(kk), qk = warp_sum(qk);
    if (lane == 0) dots[warp][0] = qq, dots[warp][1] = kk, dots[warp][2] = qk;
    __syncthreads();

    float pk[4] = {0.f, 0.f, 0.f, 0.f}, pq[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const float kr = ks[rg + 16 * i], qr = qs[rg + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; j++) pk[j] += s[i][j] * kr, pq[j] += s[i][j] * qr;
    }
    // Lanes of one warp hold 4 row groups (lane bits 3, 4) of the same 8 column groups.
#pragma unroll
    for (int j = 0; j < 4; j++) {
        pk[j] += __shfl_xor_sync(0xffffffffu, pk[j], 8);
        pk[j] += __shfl_xor_sync(0xffffffffu, pk[j], 16);
        pq[j] += __shfl_xor_sync(0xffffffffu, pq[j], 8);
        pq[j] += __shfl_xor_sync(0xffffffffu, pq[j], 16);
    }
    if (lane < 8)
#pragma unroll
        for (int j = 0; j < 4; j++) red[warp][0][4 * cg + j] = pk[j], red[warp][1][4 * cg + j] = pq[j];
    __syncthreads();
    float QQ = 0.f, KK = 0.f, QK = 0.f;
#pragma unroll
    for (int w = 0; w < STEP_THREADS / 32; w++) QQ += dots[w][0], KK += dots[w][1], QK += dots[w][2];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        float a = 0.f, b = 0.f;
#pragma unroll
        for (int w = 0; w < STEP_THREADS / 32; w++) a += red[w][0][4 * cg + j], b += red[w][1][4 * cg + j];
        pk[j] = a, pq[j] = b;
    }

    const float rq = l2 ? 1.0f / sqrtf(QQ + GDN_EPS) : 1.0f, rk = l2 ? 1.0f / sqrtf(KK + GDN_EPS) : 1.0f;
    const float alpha = g ? expf(g[bh]) : 1.0f, bt = beta[bh];
    const float qsc = scale * rq, kq = qsc * rk * QK;  // k̂ᵀ q̃
    float u[4], ov[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float p = alpha * rk * pk[j];
        u[j] = bt * (vs[4 * cg + j] - p);
        ov[j] = alpha * qsc * pq[j] + u[j] * kq;
    }
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        const int r = rg + 16 * i;
        const float kr = rk * ks[r];
#pragma unroll
        for (int j = 0; j < 4; j++) s[i][j] = alpha * s[i][j] + kr * u[j];
        if (vec) {
            if (r < K && c0 < V)
                *reinterpret_cast<float4 *>(S + (int64_t)r * V + c0) = make_float4(s[i][0], s[i][1], s[i][2], s[i][3]);
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++)
                if (r < K && c0 + j < V) S[(int64_t)r * V + c0 + j] = s[i][j];
        }
    }
    if (o && rg == 0)
#pragma unroll
        for (int j = 0; j < 4; j++)
            if (c0 + j < V) from_f32(o + bh * V + c0 + j, ov[j]);
}

template <int ROWS>
static void step_launch(const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta,
                        float *state, void *o, pn_cuda_dtype o_dt, int64_t BH, int K, int V, float scale, int l2) {
    const int nvs = (int)pn_ceil_div(V, STEP_VS);
    const int64_t blocks = BH * nvs;
    if (blocks > 0x7fffffff) gdn_die("decode grid too large", K, V);
    if (o_dt == PN_CUDA_F32)
        gdn_step_kernel<ROWS, float><<<(unsigned)blocks, STEP_THREADS, 0, pn_stream()>>>(
            as_bf(q), as_bf(k), as_bf(v), g, beta, state, (float *)o, K, V, nvs, scale, l2);
    else
        gdn_step_kernel<ROWS, __nv_bfloat16><<<(unsigned)blocks, STEP_THREADS, 0, pn_stream()>>>(
            as_bf(q), as_bf(k), as_bf(v), g, beta, state, (__nv_bfloat16 *)o, K, V, nvs, scale, l2);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_gated_delta_step(const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *g,
                                         const float *beta, float *state, void *o, pn_cuda_dtype o_dt, int B, int H,
                                         int K, int V, float scale, int qk_l2norm) {
    if (K < 1 || K > GDN_KMAX || V < 1) gdn_die("decode step: unsupported head size", K, V);
    const int64_t BH = (int64_t)B * H;
    if (BH <= 0) return;
    const int rows = (K + 15) / 16;  // state rows per thread
    if (rows <= 1)
        step_launch<1>(q, k, v, g, beta, state, o, o_dt, BH, K, V, scale, qk_l2norm);
    else if (rows <= 2)
        step_launch<2>(q, k, v, g, beta, state, o, o_dt, BH, K, V, scale, qk_l2norm);
    else if (rows <= 4)
        step_launch<4>(q, k, v, g, beta, state, o, o_dt, BH, K, V, scale, qk_l2norm);
    else if (rows <= 6)
        step_launch<6>(q, k, v, g, beta, state, o, o_dt, BH, K, V, scale, qk_l2norm);
    else if (rows <= 8)
        step_launch<8>(q, k, v, g, beta, state, o, o_dt, BH, K, V, scale, qk_l2norm);
    else if (rows <= 12)
        step_launch<12>(q, k, v, g, beta, state, o, o_dt, BH, K, V, scale, qk_l2norm);
    else
        step_launch<16>(q, k, v, g, beta, state, o, o_dt, BH, K, V, scale, qk_l2norm);
}

// ================================================================ chunked forward
#define CH_THREADS 256
#define CH_LDC (GDN_C + 1)  // row stride of the (C, C) shared matrices (odd: fewer bank conflicts)

// n rows of a (·, D) tensor with row stride ld → dst (fp32, row stride ldd), one warp per
// row, each row optionally L2-normalised (x / sqrt(Σx² + eps), the CPU op's rule).
template <typename IT>
static __device__ void load_rows(float *dst, int ldd, const IT *src, int64_t ld, int n, int D, bool l2) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int i = warp; i < n; i += nw) {
        const IT *r = src + (int64_t)i * ld;
        float ss = 0.f;
        for (int c = lane; c < D; c += 32) {
            const float x = to_f32(r[c]);
            dst[i * ldd + c] = x;
            ss += x * x;
        }
        if (l2) {
            const float rs = 1.0f / sqrtf(warp_sum(ss) + GDN_EPS);
            for (int c = lane; c < D; c += 32) dst[i * ldd + c] *= rs;
        }
    }
}

// G[i][j] = Σ_c X[i][c] Y[j][c] for i, j < n on 4×4 tiles that touch j ≤ i (some entries
// with j > i are written too; callers mask them). X, Y row stride ldx; G row stride ldg.
// Rows >= n of X and Y may hold anything: they only feed entries that are not stored.
static __device__ void gram_lower(float *G, int ldg, const float *X, const float *Y, int ldx, int n, int D) {
    const int ti = threadIdx.x >> 4, tj = threadIdx.x & 15;  // 16 × 16 tiles of 4 × 4 (C = 64)
    if (tj > ti || 4 * ti >= n) return;
    float acc[4][4] = {};
    for (int c = 0; c < D; c++) {
        float a[4], b[4];
#pragma unroll
        for (int r = 0; r < 4; r++) a[r] = X[(4 * ti + r) * ldx + c], b[r] = Y[(4 * tj + r) * ldx + c];
#pragma unroll
        for (int r = 0; r < 4; r++)
#pragma unroll
            for (int s = 0; s < 4; s++) acc[r][s] += a[r] * b[s];
    }
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int s = 0; s < 4; s++)
            if (4 * ti + r < n && 4 * tj + s < n) G[(4 * ti + r) * ldg + 4 * tj + s] = acc[r][s];
}

// ---------------------------------------------------------------- kernel 1: per chunk
// Shared memory: Ks (C, K+1) | Ls (C, C+1) | As (C, C+1) | Vt (C, 64) | gam, bet, coef (C).
static size_t prep_smem_bytes(int K) {
    return sizeof(float) * ((size_t)GDN_C * (K + 1) + 2 * GDN_C * CH_LDC + GDN_C * 64 + 3 * GDN_C);
}

__global__ void __launch_bounds__(CH_THREADS)
    gdn_prep_kernel(const __nv_bfloat16 *__restrict__ k, const __nv_bfloat16 *__restrict__ v,
                    const float *__restrict__ g, const float *__restrict__ beta, float *__restrict__ Wg,
                    float *__restrict__ Ug, float *__restrict__ gamg, int T, int H, int K, int V, int NT, int l2) {
    extern __shared__ float sm[];
    const int ldk = K + 1;
    float *Ks = sm, *Ls = Ks + GDN_C * ldk, *As = Ls + GDN_C * CH_LDC, *Vt = As + GDN_C * CH_LDC;
    float *gam = Vt + GDN_C * 64, *bet = gam + GDN_C, *coef = bet + GDN_C;
    const int tid = threadIdx.x;
    const int64_t bh = blockIdx.x / NT;
    const int b = (int)(bh / H), h = (int)(bh % H), t0 = (int)(blockIdx.x % NT) * GDN_C;
    const int n = min(GDN_C, T - t0);
    const int64_t row0 = (int64_t)b * T + t0;  // (b, t0) in (B, T)

    load_rows(Ks, ldk, k + (row0 * H + h) * K, (int64_t)H * K, n, K, l2 != 0);
    if (tid == 0) {
        // Sequential and in double, as the CPU op: 64 adds, off the critical path.
        double run = 0;
        for (int i = 0; i < n; i++) {
            if (g) run += g[(row0 + i) * H + h];
            gam[i] = (float)run;
        }
    }
    if (tid < n) bet[tid] = beta[(row0 + tid) * H + h];
    for (int e = tid; e < GDN_C * CH_LDC; e += CH_THREADS) {
        const int i = e / CH_LDC, j = e % CH_LDC;
        As[e] = i == j ? 1.0f : 0.0f;
    }
    __syncthreads();
    if (tid < n) {
        coef[tid] = bet[tid] * expf(gam[tid]);
        gamg[bh * T + t0 + tid] = gam[tid];
    }
    gram_lower(Ls, CH_LDC, Ks, Ks, ldk, n, K);
    __syncthreads();
    // The mask comes before exp: for j > i the exponent is positive and could overflow.
    for (int e = tid; e < n * n; e += CH_THREADS) {
        const int i = e / n, j = e % n;
        Ls[i * CH_LDC + j] = j < i ? bet[i] * Ls[i * CH_LDC + j] * expf(gam[i] - gam[j]) : 0.0f;
    }
    __syncthreads();
    // A = (I + L)⁻¹, row by row: A_ij = −Σ_{j ≤ m < i} L_im A_mj. Row i reads rows < i only.
    for (int i = 1; i < n; i++) {
        if (tid < i) {
            float s = 0.f;
            for (int m = tid; m < i; m++) s += Ls[i * CH_LDC + m] * As[m * CH_LDC + tid];
            As[i * CH_LDC + tid] = -s;
        }
        __syncthreads();
    }
    // W = A diag(β e^γ) K, U = A diag(β) V: thread = (column c, 16 rows i = rg + 4r).
    const int c = tid & 63, rg = tid >> 6;
    for (int cb = 0; cb < K; cb += 64) {
        float acc[16] = {};
        if (cb + c < K)
            for (int m = 0; m < n; m++) {
                const float x = coef[m] * Ks[m * ldk + cb + c];
#pragma unroll
                for (int r = 0; r < 16; r++) acc[r] += As[(rg + 4 * r) * CH_LDC + m] * x;
            }
#pragma unroll
        for (int r = 0; r < 16; r++) {
            const int i = rg + 4 * r;
            if (i < n && cb + c < K) Wg[(bh * T + t0 + i) * K + cb + c] = acc[r];
        }
    }
    for (int cb = 0; cb < V; cb += 64) {
        __syncthreads();  // the previous tile's readers are done with Vt
        for (int e = tid; e < n * 64; e += CH_THREADS) {
            const int m = e >> 6, cc = e & 63;
            Vt[e] = cb + cc < V ? bet[m] * to_f32(v[((row0 + m) * H + h) * V + cb + cc]) : 0.f;
        }
        __syncthreads();
        float acc[16] = {};
        for (int m = 0; m < n; m++) {
            const float x = Vt[m * 64 + c];
#pragma unroll
            for (int r = 0; r < 16; r++) acc[r] += As[(rg + 4 * r) * CH_LDC + m] * x;
        }
#pragma unroll
        for (int r = 0; r < 16; r++) {
            const int i = rg + 4 * r;
            if (i < n && cb + c < V) Ug[(bh * T + t0 + i) * V + cb + c] = acc[r];
        }
    }
}

// ---------------------------------------------------------------- kernel 2: scan + output
// Shared memory: S (K, BV) | WQ (C, K+1) (W, then Q) | Kc (C, K+1) | Vn (C, BV) | P (C, C+1)
// | eg, dec (C).
static size_t scan_smem_bytes(int K, int BV) {
    return sizeof(float) * ((size_t)K * BV + 2 * (size_t)GDN_C * (K + 1) + GDN_C * BV + GDN_C * CH_LDC + 2 * GDN_C);
}

template <int BV, typename OT>
__global__ void __launch_bounds__(CH_THREADS)
    gdn_scan_kernel(const __nv_bfloat16 *__restrict__ q, const __nv_bfloat16 *__restrict__ k,
                    const float *__restrict__ Wg, const float *__restrict__ Ug, const float *__restrict__ gamg,
                    const float *h0, float *ht, OT *__restrict__ o, int T, int H, int K, int V, int nvt, float scale,
                    int l2) {
    constexpr int NRG = CH_THREADS / BV, RPT = GDN_C / NRG;  // row groups; rows per thread
    extern __shared__ float sm[];
    const int ldk = K + 1;
    float *S = sm, *WQ = S + K * BV, *Kc = WQ + GDN_C * ldk, *Vn = Kc + GDN_C * ldk, *P = Vn + GDN_C * BV;
    float *eg = P + GDN_C * CH_LDC, *dec = eg + GDN_C;
    const int tid = threadIdx.x, c = tid % BV, rg = tid / BV;
    const int64_t bh = blockIdx.x / nvt;
    const int b = (int)(bh / H), h = (int)(bh % H), c0 = (int)(blockIdx.x % nvt) * BV;
    const bool col_ok = c0 + c < V;
    const int64_t KV = (int64_t)K * V;

    for (int e = tid; e < K * BV; e += CH_THREADS) {
        const int kk = e / BV, cc = e % BV;
        S[e] = h0 && c0 + cc < V ? h0[bh * KV + (int64_t)kk * V + c0 + cc] : 0.f;
    }
    for (int t0 = 0; t0 < T; t0 += GDN_C) {
        const int n = min(GDN_C, T - t0);
        const int64_t row0 = (int64_t)b * T + t0, srow0 = bh * T + t0;
        const float gl = gamg[srow0 + n - 1];
        load_rows(WQ, ldk, Wg + srow0 * K, K, n, K, false);
        load_rows(Kc, ldk, k + (row0 * H + h) * K, (int64_t)H * K, n, K, l2 != 0);
        if (tid < n) {
            const float gi = gamg[srow0 + tid];
            eg[tid] = expf(gi);
            dec[tid] = expf(gl - gi);
        }
        __syncthreads();
        // Vn = U − W S
        {
            float acc[RPT];
#pragma unroll
            for (int r = 0; r < RPT; r++) {
                const int i = rg + NRG * r;
                acc[r] = i < n && col_ok ? Ug[(srow0 + i) * V + c0 + c] : 0.f;
            }
            for (int kk = 0; kk < K; kk++) {
                const float sv = S[kk * BV + c];
#pragma unroll
                for (int r = 0; r < RPT; r++) acc[r] -= WQ[(rg + NRG * r) * ldk + kk] * sv;
            }
#pragma unroll
            for (int r = 0; r < RPT; r++) {
                const int i = rg + NRG * r;
                if (i < n) Vn[i * BV + c] = col_ok ? acc[r] : 0.f;
            }
        }
        __syncthreads();
        if (o) {
            load_rows(WQ, ldk, q + (row0 * H + h) * K, (int64_t)H * K, n, K, l2 != 0);
            __syncthreads();
            gram_lower(P, CH_LDC, WQ, Kc, ldk, n, K);
            __syncthreads();
            for (int e = tid; e < n * n; e += CH_THREADS) {
                const int i = e / n, j = e % n;
                P[i * CH_LDC + j] = j <= i ? P[i * CH_LDC + j] * expf(gamg[srow0 + i] - gamg[srow0 + j]) : 0.0f;
            }
            __syncthreads();
            // O = scale [diag(e^γ) Q S + P Vn]
            float qs[RPT] = {}, pv[RPT] = {};
            for (int kk = 0; kk < K; kk++) {
                const float sv = S[kk * BV + c];
#pragma unroll
                for (int r = 0; r < RPT; r++) qs[r] += WQ[(rg + NRG * r) * ldk + kk] * sv;
            }
            for (int j = 0; j < n; j++) {
                const float x = Vn[j * BV + c];
#pragma unroll
                for (int r = 0; r < RPT; r++) pv[r] += P[(rg + NRG * r) * CH_LDC + j] * x;
            }
            if (col_ok)
#pragma unroll
                for (int r = 0; r < RPT; r++) {
                    const int i = rg + NRG * r;
                    if (i < n) from_f32(o + ((row0 + i) * H + h) * V + c0 + c, scale * (eg[i] * qs[r] + pv[r]));
                }
            __syncthreads();  // S is read above and rewritten below
        }
        // S ← e^{γ_last} S + Kᵀ diag(dec) Vn, 8 state rows per thread at a time
        const float el = expf(gl);
        for (int kb = rg * 8; kb < K; kb += NRG * 8) {
            float acc[8] = {};
            for (int i = 0; i < n; i++) {
                const float x = dec[i] * Vn[i * BV + c];
#pragma unroll
                for (int r = 0; r < 8; r++) acc[r] += Kc[i * ldk + min(kb + r, K - 1)] * x;
            }
#pragma unroll
            for (int r = 0; r < 8; r++)
                if (kb + r < K) S[(kb + r) * BV + c] = el * S[(kb + r) * BV + c] + acc[r];
        }
        __syncthreads();
    }
    if (ht)
        for (int e = tid; e < K * BV; e += CH_THREADS) {
            const int kk = e / BV, cc = e % BV;
            if (c0 + cc < V) ht[bh * KV + (int64_t)kk * V + c0 + cc] = S[e];
        }
}

template <int BV, typename OT>
static void scan_launch(const pn_bf16 *q, const pn_bf16 *k, const float *W, const float *U, const float *gam,
                        const float *h0, float *ht, OT *o, int64_t BH, int T, int H, int K, int V, float scale, int l2) {
    const int nvt = (int)pn_ceil_div(V, BV);
    const size_t smem = scan_smem_bytes(K, BV);
    PN_CHECK_CUDA(cudaFuncSetAttribute(gdn_scan_kernel<BV, OT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    gdn_scan_kernel<BV, OT><<<(unsigned)(BH * nvt), CH_THREADS, smem, pn_stream()>>>(
        as_bf(q), as_bf(k), W, U, gam, h0, ht, o, T, H, K, V, nvt, scale, l2);
    PN_CHECK_LAUNCH();
}

template <typename OT>
static void scan_pick(const pn_bf16 *q, const pn_bf16 *k, const float *W, const float *U, const float *gam,
                      const float *h0, float *ht, OT *o, int64_t BH, int T, int H, int K, int V, float scale, int l2) {
    // 64 columns halve the Q Kᵀ recomputation; above K = 128 they no longer fit in 227 KB.
    if (K <= 128)
        scan_launch<64, OT>(q, k, W, U, gam, h0, ht, o, BH, T, H, K, V, scale, l2);
    else
        scan_launch<32, OT>(q, k, W, U, gam, h0, ht, o, BH, T, H, K, V, scale, l2);
}

extern "C" void pn_cuda_gated_delta_fwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm,
                                        const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *g,
                                        const float *beta, const float *h0, void *o, pn_cuda_dtype o_dt, float *ht) {
    if (K < 1 || K > GDN_KMAX || V < 1) gdn_die("chunked forward: unsupported head size", K, V);
    const int64_t BH = (int64_t)B * H;
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
    const int NT = (int)pn_ceil_div(T, GDN_C);
    if (BH * NT > 0x7fffffff || BH * pn_ceil_div(V, 32) > 0x7fffffff) gdn_die("chunked forward: grid too large", K, V);
    const int64_t rows = BH * T;
    float *W = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(rows * K) * sizeof(float));
    float *U = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(rows * V) * sizeof(float));
    float *gam = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)rows * sizeof(float));

    const size_t psmem = prep_smem_bytes(K);
    PN_CHECK_CUDA(cudaFuncSetAttribute(gdn_prep_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)psmem));
    gdn_prep_kernel<<<(unsigned)(BH * NT), CH_THREADS, psmem, pn_stream()>>>(as_bf(k), as_bf(v), g, beta, W, U, gam,
                                                                              T, H, K, V, NT, qk_l2norm);
    PN_CHECK_LAUNCH();
    if (o_dt == PN_CUDA_F32)
        scan_pick<float>(q, k, W, U, gam, h0, ht, (float *)o, BH, T, H, K, V, scale, qk_l2norm);
    else
        scan_pick<__nv_bfloat16>(q, k, W, U, gam, h0, ht, (__nv_bfloat16 *)o, BH, T, H, K, V, scale, qk_l2norm);
    // Freed blocks go back to the cache; work queued later on the same stream that
    // reuses them runs after these kernels.
    pn_cuda_free(W);
    pn_cuda_free(U);
    pn_cuda_free(gam);
}

// ================================================================ chunked backward
// Correctness-first: reverse mode through the chunk equations exactly as the CPU's
// chunk_bwd_head (kernels/cpu/ops_rec_delta.c, derivation there), one block per (b, h)
// walking the chunks, every product a block-wide fp32 GEMM on per-head scratch in
// device memory (L1/L2-resident at these sizes). Parallelism is B·H blocks only and the
// chunk-start states are stored (B·H·NT·K·V floats): this is the reference GPU backward,
// not the fast one (GDN_NOTES.md).
struct bwd_ws {
    float *gam, *dgam;                                 // (C)
    float *KK, *L, *A, *P, *dA, *dL, *T1, *M;         // (C, C), ld n
    float *Kb, *W, *Qg, *dW, *dKb, *T2;               // (C, K)
    float *Vb, *Vn, *Vd, *dVn, *dVb, *T3;             // (C, V)
    float *Sst, *S, *dS, *dS0;                         // (NT, K, V), (K, V) × 3
};

static __host__ __device__ int64_t bwd_ws_floats(int K, int V, int NT) {
    const int64_t C = GDN_C;
    return 2 * C + 8 * C * C + 6 * C * K + 6 * C * V + ((int64_t)NT + 3) * K * V;
}

static __device__ bwd_ws bwd_ws_at(float *m, int K, int V, int NT) {
    const int64_t C = GDN_C, cc = C * C, ck = C * K, cv = C * V, kv = (int64_t)K * V;
    bwd_ws w;
    w.gam = m, m += C;
    w.dgam = m, m += C;
    w.KK = m, m += cc;
    w.L = m, m += cc;
    w.A = m, m += cc;
    w.P = m, m += cc;
    w.dA = m, m += cc;
    w.dL = m, m += cc;
    w.T1 = m, m += cc;
    w.M = m, m += cc;
    w.Kb = m, m += ck;
    w.W = m, m += ck;
    w.Qg = m, m += ck;
    w.dW = m, m += ck;
    w.dKb = m, m += ck;
    w.T2 = m, m += ck;
    w.Vb = m, m += cv;
    w.Vn = m, m += cv;
    w.Vd = m, m += cv;
    w.dVn = m, m += cv;
    w.dVb = m, m += cv;
    w.T3 = m, m += cv;
    w.Sst = m, m += (int64_t)NT * kv;
    w.S = m, m += kv;
    w.dS = m, m += kv;
    w.dS0 = m;
    return w;
}

// C (M, N) = alpha · op(A) · op(B) + beta · C, row-major, block-wide; beta == 0 ignores C's
// old contents. 32 × 32 output tiles, each thread 4 outputs of one column, operands
// staged through shared memory. Ends with a barrier so the result can be read at once.
static __device__ void bgemm(int ta, int tb, int M, int N, int Kd, float alpha, const float *A, int64_t lda,
                             const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    __shared__ float As_[32][33], Bs_[32][33];
    const int tid = threadIdx.x, tx = tid & 31, ty = tid >> 5;  // 8 warps: rows ty + 8r
    for (int i0 = 0; i0 < M; i0 += 32)
        for (int j0 = 0; j0 < N; j0 += 32) {
            float acc[4] = {0.f, 0.f, 0.f, 0.f};
            for (int p0 = 0; p0 < Kd; p0 += 32) {
                for (int e = tid; e < 1024; e += blockDim.x) {
                    const int r = e >> 5, c = e & 31;
                    // As_[row i][col p], Bs_[row p][col j]
                    const int i = i0 + r, p = p0 + c;
                    As_[r][c] = i < M && p < Kd ? (ta ? A[(int64_t)p * lda + i] : A[(int64_t)i * lda + p]) : 0.f;
                    const int pp = p0 + r, j = j0 + c;
                    Bs_[r][c] = pp < Kd && j < N ? (tb ? B[(int64_t)j * ldb + pp] : B[(int64_t)pp * ldb + j]) : 0.f;
                }
                __syncthreads();
#pragma unroll 8
                for (int p = 0; p < 32; p++) {
                    const float b = Bs_[p][tx];
#pragma unroll
                    for (int r = 0; r < 4; r++) acc[r] += As_[ty + 8 * r][p] * b;
                }
                __syncthreads();
            }
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const int i = i0 + ty + 8 * r, j = j0 + tx;
                if (i < M && j < N) {
                    float *c = C + (int64_t)i * ldc + j;
                    *c = alpha * acc[r] + (beta != 0.f ? beta * *c : 0.f);
                }
            }
        }
    __syncthreads();
}

// γ, KK, L, A, Kb, Vb, W and U (in Vn) of one chunk: the CPU's chunk_intra.
static __device__ void bwd_intra(bwd_ws &w, int n, int K, int V, const float *k, const float *v, const float *g,
                                 const float *beta, int64_t sk, int64_t sv, int64_t sg) {
    const int tid = threadIdx.x;
    if (tid == 0) {
        double run = 0;
        for (int i = 0; i < n; i++) {
            if (g) run += g[i * sg];
            w.gam[i] = (float)run;
        }
    }
    bgemm(0, 1, n, n, K, 1.f, k, sk, k, sk, 0.f, w.KK, n);  // its barrier also publishes gam
    for (int e = tid; e < n * n; e += blockDim.x) {
        const int i = e / n, j = e % n;
        w.L[e] = j < i ? beta[i * sg] * w.KK[e] * expf(w.gam[i] - w.gam[j]) : 0.f;  // mask before exp
        w.A[e] = i == j ? 1.f : 0.f;
    }
    __syncthreads();
    for (int i = 1; i < n; i++) {
        if (tid < i) {
            float s = 0.f;
            for (int m = tid; m < i; m++) s += w.L[i * n + m] * w.A[m * n + tid];
            w.A[i * n + tid] = -s;
        }
        __syncthreads();
    }
    for (int e = tid; e < n * K; e += blockDim.x) {
        const int i = e / K, c = e % K;
        w.Kb[e] = beta[i * sg] * expf(w.gam[i]) * k[i * sk + c];
    }
    for (int e = tid; e < n * V; e += blockDim.x) {
        const int i = e / V, c = e % V;
        w.Vb[e] = beta[i * sg] * v[i * sv + c];
    }
    __syncthreads();
    bgemm(0, 0, n, K, n, 1.f, w.A, n, w.Kb, K, 0.f, w.W, K);
    bgemm(0, 0, n, V, n, 1.f, w.A, n, w.Vb, V, 0.f, w.Vn, V);
}

// Vn = U − W S0, Vd = diag(e^{γ_last − γ}) Vn.
static __device__ void bwd_vnew(bwd_ws &w, int n, int K, int V, const float *S0) {
    bgemm(0, 0, n, V, K, -1.f, w.W, K, S0, V, 1.f, w.Vn, V);
    const float gl = w.gam[n - 1];
    for (int e = threadIdx.x; e < n * V; e += blockDim.x) w.Vd[e] = expf(gl - w.gam[e / V]) * w.Vn[e];
    __syncthreads();
}

__global__ void __launch_bounds__(CH_THREADS)
    gdn_bwd_kernel(const float *__restrict__ qe, const float *__restrict__ ke, const float *__restrict__ vf,
                   const float *__restrict__ g, const float *__restrict__ beta, const float *h0,
                   const float *__restrict__ dout, const float *dht, float *gq, float *gk, float *gv, float *gg,
                   float *gb, float *gh0, float *wsm, int T, int H, int K, int V, float scale) {
    __shared__ float red[32];
    const int tid = threadIdx.x, nth = blockDim.x;
    const int64_t bh = blockIdx.x;
    const int b = (int)(bh / H), h = (int)(bh % H);
    const int NT = (T + GDN_C - 1) / GDN_C;
    const int64_t KV = (int64_t)K * V, sk = (int64_t)H * K, sv = (int64_t)H * V, sg = H;
    bwd_ws w = bwd_ws_at(wsm + bh * bwd_ws_floats(K, V, NT), K, V, NT);
    const int64_t base = (int64_t)b * T * H + h;  // (b, t = 0, h) in (B, T, H)
    const float *q = qe + base * K, *k = ke + base * K, *v = vf + base * V, *dO = dout + base * V;
    const float *gh = g ? g + base : NULL, *bt = beta + base;
    float *dq = gq + base * K, *dk = gk + base * K, *dv = gv + base * V, *dg = gg + base, *db = gb + base;

    for (int64_t e = tid; e < KV; e += nth) {
        w.S[e] = h0 ? h0[bh * KV + e] : 0.f;
        w.dS[e] = dht ? dht[bh * KV + e] : 0.f;
    }
    __syncthreads();
    // Forward again, keeping the state at each chunk start.
    for (int c = 0; c < NT; c++) {
        const int t0 = c * GDN_C, n = min(GDN_C, T - t0);
        float *Sc = w.Sst + c * KV;
        for (int64_t e = tid; e < KV; e += nth) Sc[e] = w.S[e];
        __syncthreads();
        bwd_intra(w, n, K, V, k + t0 * sk, v + t0 * sv, gh ? gh + t0 * sg : NULL, bt + t0 * sg, sk, sv, sg);
        bwd_vnew(w, n, K, V, Sc);
        const float el = expf(w.gam[n - 1]);
        for (int64_t e = tid; e < KV; e += nth) w.S[e] *= el;
        __syncthreads();
        bgemm(1, 0, K, V, n, 1.f, k + t0 * sk, sk, w.Vd, V, 1.f, w.S, V);
    }

    for (int c = NT - 1; c >= 0; c--) {
        const int t0 = c * GDN_C, n = min(GDN_C, T - t0);
        const float *qc = q + t0 * sk, *kc = k + t0 * sk, *vc = v + t0 * sv, *doc = dO + t0 * sv;
        const float *bc = bt + t0 * sg;
        const float *Sc = w.Sst + c * KV;
        float *dqc = dq + t0 * sk, *dkc = dk + t0 * sk, *dvc = dv + t0 * sv, *dbc = db + t0 * sg;
        bwd_intra(w, n, K, V, kc, vc, gh ? gh + t0 * sg : NULL, bc, sk, sv, sg);
        bwd_vnew(w, n, K, V, Sc);
        // chunk_scores: P = tril(Q Kᵀ ⊙ E), Qg = diag(e^γ) Q
        bgemm(0, 1, n, n, K, 1.f, qc, sk, kc, sk, 0.f, w.P, n);
        for (int e = tid; e < n * n; e += nth) {
            const int i = e / n, j = e % n;
            w.P[e] = j <= i ? w.P[e] * expf(w.gam[i] - w.gam[j]) : 0.f;
        }
        for (int e = tid; e < n * K; e += nth) {
            const int i = e / K, cc = e % K;
            w.Qg[e] = expf(w.gam[i]) * qc[i * sk + cc];
        }
        if (tid < n) w.dgam[tid] = 0.f;
        __syncthreads();
        const float gl = w.gam[n - 1], el = expf(gl);

        // ---- end state: S1 = e^{γ_last} S0 + Kᵀ Vd
        bgemm(0, 0, n, V, K, 1.f, kc, sk, w.dS, V, 0.f, w.T3, V);  // K dS1
        float dgl_part = 0.f;  // Σ_i d_i ⟨T3_i, Vn_i⟩, summed over the row threads below
        if (tid < n) {
            const int i = tid;
            const float di = expf(gl - w.gam[i]);
            double dd = 0;
            for (int e = 0; e < V; e++) {
                dd += (double)w.T3[i * V + e] * w.Vn[i * V + e];
                w.dVn[i * V + e] = di * w.T3[i * V + e];
            }
            dgl_part = (float)(di * dd);
            w.dgam[i] -= dgl_part;
        }
        float sdot = 0.f;
        for (int64_t e = tid; e < KV; e += nth) sdot += Sc[e] * w.dS[e];
        const float dgl = block_sum(dgl_part, red) + el * block_sum(sdot, red);
        if (tid == 0) w.dgam[n - 1] += dgl;
        __syncthreads();
        bgemm(0, 1, n, K, V, 1.f, w.Vd, V, w.dS, V, 1.f, dkc, sk);  // dK += Vd dS1ᵀ
        // ---- output: O = scale [Qg S0 + P Vn]
        bgemm(1, 0, n, V, n, scale, w.P, n, doc, sv, 1.f, w.dVn, V);  // dVn += scale Pᵀ dO
        bgemm(0, 1, n, n, V, scale, doc, sv, w.Vn, V, 0.f, w.T1, n);  // dP = scale dO Vnᵀ
        for (int e = tid; e < n * n; e += nth) {
            const int i = e / n, j = e % n;
            w.M[e] = j <= i ? w.T1[e] * w.P[e] : 0.f;
        }
        __syncthreads();
        if (tid < n) {  // dγ_i += Σ_j M_ij − Σ_i' M_i'i
            const int i = tid;
            float s = 0.f;
            for (int j = 0; j <= i; j++) s += w.M[i * n + j];
            for (int r = i; r < n; r++) s -= w.M[r * n + i];
            w.dgam[i] += s;
        }
        for (int e = tid; e < n * n; e += nth) {
            const int i = e / n, j = e % n;
            w.T1[e] = j <= i ? w.T1[e] * expf(w.gam[i] - w.gam[j]) : 0.f;  // now d(Q Kᵀ)
        }
        __syncthreads();
        bgemm(0, 0, n, K, n, 1.f, w.T1, n, kc, sk, 1.f, dqc, sk);
        bgemm(1, 0, n, K, n, 1.f, w.T1, n, qc, sk, 1.f, dkc, sk);
        bgemm(0, 1, n, K, V, scale, doc, sv, Sc, V, 0.f, w.T2, K);  // dQg
        if (tid < n) {
            const int i = tid;
            const float e_i = expf(w.gam[i]);
            double s = 0;
            for (int c2 = 0; c2 < K; c2++) {
                const float x = e_i * w.T2[i * K + c2];
                dqc[i * sk + c2] += x;
                s += (double)x * qc[i * sk + c2];
            }
            w.dgam[i] += (float)s;
        }
        __syncthreads();
        // ---- dS0 = e^{γ_last} dS1 + scale Qgᵀ dO − Wᵀ dVn
        for (int64_t e = tid; e < KV; e += nth) w.dS0[e] = el * w.dS[e];
        __syncthreads();
        bgemm(1, 0, K, V, n, scale, w.Qg, K, doc, sv, 1.f, w.dS0, V);
        bgemm(1, 0, K, V, n, -1.f, w.W, K, w.dVn, V, 1.f, w.dS0, V);
        // ---- Vn = U − W S0, U = A Vb, W = A Kb
        bgemm(0, 1, n, K, V, -1.f, w.dVn, V, Sc, V, 0.f, w.dW, K);
        bgemm(0, 1, n, n, V, 1.f, w.dVn, V, w.Vb, V, 0.f, w.dA, n);
        bgemm(0, 1, n, n, K, 1.f, w.dW, K, w.Kb, K, 1.f, w.dA, n);
        bgemm(1, 0, n, V, n, 1.f, w.A, n, w.dVn, V, 0.f, w.dVb, V);
        bgemm(1, 0, n, K, n, 1.f, w.A, n, w.dW, K, 0.f, w.dKb, K);
        if (tid < n) {
            const int i = tid;
            const float bi = bc[i * sg], ei = expf(w.gam[i]);
            double s_v = 0, s_k = 0;
            for (int e = 0; e < V; e++) {
                dvc[i * sv + e] += bi * w.dVb[i * V + e];
                s_v += (double)vc[i * sv + e] * w.dVb[i * V + e];
            }
            for (int e = 0; e < K; e++) {
                dkc[i * sk + e] += bi * ei * w.dKb[i * K + e];
                s_k += (double)kc[i * sk + e] * w.dKb[i * K + e];
            }
            dbc[i * sg] += (float)(s_v + ei * s_k);
            w.dgam[i] += (float)(bi * ei * s_k);
        }
        __syncthreads();
        // ---- A = (I + L)⁻¹: dL = −Aᵀ dA Aᵀ (strict lower part)
        bgemm(0, 1, n, n, n, 1.f, w.dA, n, w.A, n, 0.f, w.T1, n);
        bgemm(1, 0, n, n, n, -1.f, w.A, n, w.T1, n, 0.f, w.dL, n);
        for (int e = tid; e < n * n; e += nth) {  // M = dL ⊙ KK ⊙ E (j < i)
            const int i = e / n, j = e % n;
            w.M[e] = j < i ? w.dL[e] * w.KK[e] * expf(w.gam[i] - w.gam[j]) : 0.f;
        }
        __syncthreads();
        if (tid < n) {  // dβ_i += Σ_j M_ij;  dγ_i += β_i Σ_j M_ij − Σ_i' β_i' M_i'i
            const int i = tid;
            float rs = 0.f, cs = 0.f;
            for (int j = 0; j < i; j++) rs += w.M[i * n + j];
            for (int r = i + 1; r < n; r++) cs += bc[r * sg] * w.M[r * n + i];
            dbc[i * sg] += rs;
            w.dgam[i] += bc[i * sg] * rs - cs;
        }
        for (int e = tid; e < n * n; e += nth) {
            const int i = e / n, j = e % n;
            w.dL[e] = j < i ? w.dL[e] * bc[i * sg] * expf(w.gam[i] - w.gam[j]) : 0.f;  // now dKK
        }
        __syncthreads();
        bgemm(0, 0, n, K, n, 1.f, w.dL, n, kc, sk, 1.f, dkc, sk);
        bgemm(1, 0, n, K, n, 1.f, w.dL, n, kc, sk, 1.f, dkc, sk);
        // ---- γ = chunk-local cumsum of g: dg = reverse cumsum of dγ
        if (gh && tid == 0) {
            double run = 0;
            for (int i = n - 1; i >= 0; i--) {
                run += w.dgam[i];
                dg[(t0 + i) * sg] += (float)run;
            }
        }
        for (int64_t e = tid; e < KV; e += nth) w.dS[e] = w.dS0[e];
        __syncthreads();
    }
    for (int64_t e = tid; e < KV; e += nth) gh0[bh * KV + e] = w.dS[e];
}

// bf16 rows → fp32 rows, optionally L2-normalised, with the rstd kept for the backward.
template <typename IT>
__global__ void rows_to_f32_kernel(float *y, float *rstd, const IT *x, int64_t N, int D, int l2) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const IT *xr = x + row * D;
    float ss = 0.f;
    for (int c = lane; c < D; c += 32) ss += to_f32(xr[c]) * to_f32(xr[c]);
    const float r = l2 ? 1.0f / sqrtf(warp_sum(ss) + GDN_EPS) : 1.0f;
    if (rstd && lane == 0) rstd[row] = r;
    for (int c = lane; c < D; c += 32) y[row * D + c] = to_f32(xr[c]) * r;
}

// dx += dy (l2 == 0) or dx += rstd · (dy − (dy·y) y), one warp per row.
__global__ void l2norm_bwd_add_kernel(float *dx, const float *dy, const float *y, const float *rstd, int64_t N, int D,
                                      int l2) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const float *dyr = dy + row * D, *yr = y + row * D;
    if (!l2) {
        for (int c = lane; c < D; c += 32) dx[row * D + c] += dyr[c];
        return;
    }
    float dot = 0.f;
    for (int c = lane; c < D; c += 32) dot += dyr[c] * yr[c];
    dot = warp_sum(dot);
    for (int c = lane; c < D; c += 32) dx[row * D + c] += rstd[row] * (dyr[c] - dot * yr[c]);
}

extern "C" void pn_cuda_gated_delta_bwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm,
                                        const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *g,
                                        const float *beta, const float *h0, const float *dout, const float *dht,
                                        float *dq, float *dk, float *dv, float *dg, float *dbeta, float *dh0) {
    if (K < 1 || K > GDN_KMAX || V < 1) gdn_die("chunked backward: unsupported head size", K, V);
    const int64_t BH = (int64_t)B * H;
    if (BH <= 0 || T < 0) return;
    const int64_t KV = (int64_t)K * V, Nr = BH * T;
    if (T == 0) {  // the state passes through: dh0 += dht
        if (dh0 && dht) pn_cuda_add_inplace(dh0, dht, BH * KV);
        return;
    }
    const int NT = (int)pn_ceil_div(T, GDN_C);
    const size_t f = sizeof(float);
    float *qe = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(Nr * K) * f);
    float *ke = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(Nr * K) * f);
    float *vf = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(Nr * V) * f);
    float *rq = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)Nr * f);
    float *rk = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)Nr * f);
    // Private gradients (zeroed), added to the caller's at the end, as the CPU op does.
    float *gq = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(Nr * K) * f);
    float *gk = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(Nr * K) * f);
    float *gv = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(Nr * V) * f);
    float *gg = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)Nr * f);
    float *gb = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)Nr * f);
    float *gh0 = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(BH * KV) * f);
    float *ws = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(BH * bwd_ws_floats(K, V, NT)) * f);
    pn_cuda_memset(gq, 0, (size_t)(Nr * K) * f);
    pn_cuda_memset(gk, 0, (size_t)(Nr * K) * f);
    pn_cuda_memset(gv, 0, (size_t)(Nr * V) * f);
    pn_cuda_memset(gg, 0, (size_t)Nr * f);
    pn_cuda_memset(gb, 0, (size_t)Nr * f);

    const int rows_per_block = 8;
    const unsigned rb = (unsigned)pn_ceil_div(Nr, rows_per_block);
    rows_to_f32_kernel<<<rb, 32 * rows_per_block, 0, pn_stream()>>>(qe, rq, as_bf(q), Nr, K, qk_l2norm);
    PN_CHECK_LAUNCH();
    rows_to_f32_kernel<<<rb, 32 * rows_per_block, 0, pn_stream()>>>(ke, rk, as_bf(k), Nr, K, qk_l2norm);
    PN_CHECK_LAUNCH();
    rows_to_f32_kernel<<<rb, 32 * rows_per_block, 0, pn_stream()>>>(vf, nullptr, as_bf(v), Nr, V, 0);
    PN_CHECK_LAUNCH();
    gdn_bwd_kernel<<<(unsigned)BH, CH_THREADS, 0, pn_stream()>>>(qe, ke, vf, g, beta, h0, dout, dht, gq, gk, gv, gg,
                                                                 gb, gh0, ws, T, H, K, V, scale);
    PN_CHECK_LAUNCH();
    if (dq) {
        l2norm_bwd_add_kernel<<<rb, 32 * rows_per_block, 0, pn_stream()>>>(dq, gq, qe, rq, Nr, K, qk_l2norm);
        PN_CHECK_LAUNCH();
    }
    if (dk) {
        l2norm_bwd_add_kernel<<<rb, 32 * rows_per_block, 0, pn_stream()>>>(dk, gk, ke, rk, Nr, K, qk_l2norm);
        PN_CHECK_LAUNCH();
    }
    if (dv) pn_cuda_add_inplace(dv, gv, Nr * V);
    if (dg && g) pn_cuda_add_inplace(dg, gg, Nr);
    if (dbeta) pn_cuda_add_inplace(dbeta, gb, Nr);
    if (dh0) pn_cuda_add_inplace(dh0, gh0, BH * KV);
    float *bufs[] = {qe, ke, vf, rq, rk, gq, gk, gv, gg, gb, gh0, ws};
    for (float *p : bufs) pn_cuda_free(p);
}
