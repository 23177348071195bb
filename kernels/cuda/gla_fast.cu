// gla_fast.cu — chunked GLA (a log-decay per token, head and key channel: fla's
// GatedLinearAttention core) forward and backward on bf16 tensor cores (mma.sync m16n8k16, fp32
// accumulation): the fast twins of pn_cuda_gla_fwd / _bwd (kernels/cuda/linear_ops.cu, fp32 on
// CUDA cores, 34–40× their memory floors), with exactly their contract (pn_cuda_linear.h).
//
// ---------------------------------------------------------------- the algorithm
// Per (b, h), chunks of C = 64 rows; in chunk n with start state S (K, V), Γ (64, K) the
// chunk-local inclusive cumsum of gk (rows past T: gk = 0, so every later row has Γ = Γ_L):
//   O  = (scale Q ⊙ e^{Γ}) S + A V,    A_ij = scale Σ_c q_ic k_jc e^{Γ_ic − Γ_jc} (j ≤ i), 0 above
//   S ← diag(e^{Γ_L}) S + (K ⊙ e^{Γ_L − Γ})ᵀ V
// As simple GLA (sgla_fast.cu) this splits into a sequential state pass and a parallel output
// pass; a prep kernel first writes Γ, K̂ = K ⊙ e^{Γ_L−Γ} and (backward) Q̂ = scale Q ⊙ e^{Γ}, so the
// state passes are simple GLA's with a per-row decay (sgla_common.cuh, CH = true).
// The scores cannot be one product Q' K'ᵀ: e^{Γ_i} and e^{−Γ_j} alone overflow. Secondary
// chunking (as fla): row block a (16 rows) factors through its first row r = 16a,
//   A_ij = scale Σ_c (q_ic e^{Γ_ic − Γ_rc}) (k_jc e^{Γ_rc − Γ_jc}),
// both exponents ≤ 0 for gk ≤ 0 left of the diagonal block (i ≥ r > j), and each factor ≥
// their product, so a factor only underflows where the exact score does. In the diagonal block
// the k factors grow up to e^R, R = the block's decay range over 16 rows: for R ≤ 60 (always,
// unless every one of 16 steps decays by ~4) it goes through the tensor cores too, with q̃, k̃
// split hi + lo in bf16 (three products: its scores dominate A, and the i = j terms must cancel
// in dΓ as they do exactly; one rounding each took dgk from 3.6e-3 to 8.9e-3 on strong decays);
// past 60 it is summed element-wise in fp32 (mask before exp). fla sums the diagonal blocks
// element-wise always; that was the first version here (out pass 0.97 ms, chunk kernel 7.7 ms at
// the shape below). Backward, with dS the gradient of the chunk's END state and
// dA_ij = scale dO_i·v_j (j ≤ i):
//   dS_prev = diag(e^{Γ_L}) dS + Q̂ᵀ dO                        (reverse sequential pass)
//   dV  = Aᵀ dO + K̂ dS
//   dQ  = scale e^{Γ} ⊙ (dO Sᵀ) + [Σ_{j≤i} dA_ij k_j e^{Γ_i−Γ_j}]
//   dK  = e^{Γ_L−Γ} ⊙ (V dSᵀ)  + [Σ_{i≥j} dA_ij q_i e^{Γ_i−Γ_j}]
// where the bracketed sums go through the tensor cores (dQ row block a: reference row 16a, dK
// row block b: 16b + 15; the diagonal block's operand split hi + lo, or element-wise past R = 60);
//   dΓ_ic = q_ic dq_ic − k_ic dk_ic, plus on the last row (per channel c) ⟨dS_c, S_end,c⟩ =
//           e^{Γ_L,c} ⟨dS_c, S_c⟩ + Σ_j k_jc dk^S_jc (dk^S the state term of dk),
// and dgk = the reverse chunk-local cumsum of dΓ (sgla_fast.cu derives the same for a scalar).
//
// ---------------------------------------------------------------- kernels
// 0. gla_prep_kernel<KD>: one block per (b·h, chunk), a thread per channel: Γ, K̂, Q̂.
// 1. sgla_pass_kernel<KD, BV, false, true> (sgla_common.cuh): the start states hs (bf16).
// 2. gla_out_kernel<KD, BVO, OT> (8 warps): per (b·h, chunk, BVO = the whole of V up to 128): Q,
//    K, Γ and the V and S tiles in shared memory; gla_scores writes A (bf16); O = Q̂ S + A V,
//    Q̂ scaled in the fragments (one rounding).
// Decay factors use ex2.approx (gla_exp).
// 3. sgla_pass_kernel<KD, BV, true, true>: the end-state gradients dhs (bf16), dh0.
// 4. gla_chunk_kernel<KD, BVT> (8 warps, warp w: row block w & 3, K or V-tile half w >> 2): A,
//    then over the V tiles dO Vᵀ, dO Sᵀ, V dSᵀ and dV; then dQ, dK, dΓ and dgk.
// Deterministic: no atomics, each output element has one writer.
//
// ---------------------------------------------------------------- measured (H100, 2026-11-23)
// B8 T4096 H12 K128 V128, gk = logsigmoid(N(0,1)) / 16 (tests/gpu/test_cuda_gla_fast.c, medians):
// forward 0.94 ms (the fp32 kernels 8.12 ms; floor 0.20 ms), forward + backward 5.16 ms (33.1 ms;
// floor 0.97 ms). ncu (base clocks): prep 229 µs (forward) / 341 µs (with Q̂), state pass 239 µs,
// output pass 620 µs, reverse pass 298 µs, chunk kernel 3.68 ms (one block of 8 warps per SM at
// 153 KB of shared memory: latency-bound, 19% of DRAM bandwidth). What moved them: the
// diagonal blocks on the tensor cores (out 970 → 740 µs, chunk 7.69 → 4.34 ms), 8-byte prep
// accesses (377 → 229 µs), ex2.approx for the factors (740 → 620 µs, 4.34 → 3.68 ms). Next: two
// chunk blocks per SM (K̂ fragments from K and Γ instead of a third Q/K tile, BVT 32) or a split
// of the chunk kernel, and the segment split of the sequential passes.
//
// GDNF_HOST_EMU: compiles as host C++ against the emulation header (see sgla_fast.cu).
#include "kernels/cuda/sgla_common.cuh"

// The decay factors: ex2.approx (__expf, ≤ 2 + 1.2|x| ulp: ~1e-5 relative at |x| = 60) — each
// factor is rounded to bf16 (2^-9) or split hi + lo (~2^-16, the diagonal blocks) right after.
#ifndef GDNF_HOST_EMU
#define gla_exp __expf
#else
#define gla_exp expf
#endif

// ================================================================ helpers
// Fragment register e (0..3) of an A tile at (r0, c0) holds (row r0 + g + 8(e & 1), columns c,
// c + 1 with c = c0 + 2t + 8(e >> 1)); of a B load at (k0, n0) (sg_frag_b*: rows k0.., n-tiles n0
// and n0 + 8), (rows k, k + 1 with k = k0 + 2t + 8(e & 1), column n0 + g + 8(e >> 1)); g = lane / 4,
// t = lane % 4. gla_mul: each element times f(row, column), rounded to bf16 once; with lo, the
// product is kept as hi + lo (hi = bf16(x), lo = bf16(x − hi): ~2^-16 relative; the diagonal
// blocks' operands, see gla_scores).
template <bool BFRAG, typename F>
static __device__ __forceinline__ void gla_mul(uint32_t x[4], uint32_t *lo, int r0, int c0, F f) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        float f0, f1;
        if (BFRAG) {
            const int k = r0 + 2 * t + 8 * (e & 1), n = c0 + g + 8 * (e >> 1);
            f0 = f(k, n), f1 = f(k + 1, n);
        } else {
            const int i = r0 + g + 8 * (e & 1), c = c0 + 2 * t + 8 * (e >> 1);
            f0 = f(i, c), f1 = f(i, c + 1);
        }
        const float x0 = gdnf_u2f(x[e] << 16) * f0, x1 = gdnf_u2f(x[e] & 0xffff0000u) * f1;
        x[e] = pack_bf16x2(x0, x1);
        if (lo) lo[e] = pack_bf16x2(x0 - gdnf_u2f(x[e] << 16), x1 - gdnf_u2f(x[e] & 0xffff0000u));
    }
}

// The chunk's Γ rows (64, KD) → Gs (row stride KD + 4); rows past T repeat the last one.
template <int KD, int NTHR>
static __device__ __forceinline__ void gla_load_G(float *Gs, const float *G, int64_t row0, int nr, int H, int h) {
    for (int e = threadIdx.x; e < 64 * (KD / 4); e += NTHR) {
        const int i = e / (KD / 4), c = (e % (KD / 4)) * 4;
        cp_async16(Gs + i * (KD + 4) + c, G + ((row0 + min(i, nr - 1)) * H + h) * KD + c, true);
    }
}

// Whether diagonal block a (rows 16a .. 16a+15) may go through the tensor cores: its decay
// range R = max_c (Γ_{16a,c} − Γ_{16a+15,c}) ≤ GLA_DIAG_RANGE. With the reference row 16a, the
// factors e^{Γ_r − Γ_j} of the block's own rows j grow up to e^R and the scores above its
// diagonal (masked afterwards) up to e^R·|q||k|·K, both finite in bf16 / fp32 for R ≤ 60; and
// e^{−R} stays a normal number. Past that (decays of ~4 per step in every one of 16 steps)
// the block is summed element-wise. Warp-uniform.
#ifndef GLA_DIAG_RANGE
#define GLA_DIAG_RANGE 60.f
#endif
template <int KD>
static __device__ __forceinline__ bool gla_diag_ok(const float *Gs, int a) {
    constexpr int LDG = KD + 4;
    float m = 0.f;
    for (int c = threadIdx.x & 31; c < KD; c += 32) m = fmaxf(m, Gs[16 * a * LDG + c] - Gs[(16 * a + 15) * LDG + c]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(SG_FULL, m, o));
    return m <= GLA_DIAG_RANGE;
}

// A (64, 64) bf16 → As (row stride GDNF_LDA): scale Σ_c q_ic k_jc e^{Γ_ic − Γ_jc} for j <= i, 0
// above. Q, K (row stride KD + 8) and Γ (KD + 4) in shared memory; 256 threads; ends with a
// barrier. Row block a factors through its first row r = 16a: q̃_i = q_i e^{Γ_i − Γ_r} (≤ 1),
// k̃_j = k_j e^{Γ_r − Γ_j} (≤ 1 left of the diagonal block; see gla_diag_ok on it). Warp w takes
// row block a = w & 3 and half of its column blocks 0..a (w >> 2: the later half, with the
// diagonal); the warps of the first half zero the blocks right of the diagonal.
template <int KD>
static __device__ __forceinline__ void gla_scores(gdnf_bf16 *As, const gdnf_bf16 *Qs, const gdnf_bf16 *Ks,
                                                  const float *Gs, float scale) {
    constexpr int LDK = KD + 8, LDG = KD + 4, LDA = GDNF_LDA;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, gq = lane >> 2, tq = lane & 3;
    const int ra = w & 3, half = w >> 2, nb = ra + 1, split = (nb + 1) / 2;
    const int b_lo = half ? split : 0, b_hi = half ? nb : split;  // column blocks [b_lo, b_hi)
    const int r = 16 * ra;
    const bool diag = b_lo < b_hi && b_hi == nb;
    const bool elem = diag && !gla_diag_ok<KD>(Gs, ra);  // the diagonal block element-wise
    const int b_tc = elem ? b_hi - 1 : b_hi;               // blocks [b_lo, b_tc) on the tensor cores
    if (b_lo < b_tc) {
        auto qfac = [&](int i, int c) { return gla_exp(Gs[i * LDG + c] - Gs[r * LDG + c]); };
        auto kfac = [&](int c, int j) { return gla_exp(Gs[r * LDG + c] - Gs[j * LDG + c]); };
        uint32_t qf[KD / 16][4];
#pragma unroll
        for (int kk = 0; kk < KD / 16; kk++) {
            sg_frag_a(qf[kk], Qs, LDK, r, 16 * kk);
            gla_mul<false>(qf[kk], nullptr, r, 16 * kk, qfac);
        }
        for (int cb = b_lo; cb < b_tc; cb++) {
            float p[2][4] = {};
#pragma unroll
            for (int kk = 0; kk < KD / 16; kk++) {
                uint32_t bf[4];
                sg_frag_bnk(bf, Ks, LDK, 16 * kk, 16 * cb);
                if (cb < ra) {
                    gla_mul<true>(bf, nullptr, 16 * kk, 16 * cb, kfac);
                    sg_mma2(p[0], p[1], qf[kk], bf);
                } else {
                    // the diagonal block: q̃, k̃ as hi + lo (hi·hi + hi·lo + lo·hi), so its
                    // scores keep fp32-like accuracy (they dominate A, and their i = j terms
                    // cancel exactly in dΓ; one bf16 rounding each would not)
                    uint32_t qlo[4], klo[4], qh[4];
                    sg_frag_a(qh, Qs, LDK, r, 16 * kk);
                    gla_mul<false>(qh, qlo, r, 16 * kk, qfac);
                    gla_mul<true>(bf, klo, 16 * kk, 16 * cb, kfac);
                    sg_mma2(p[0], p[1], qh, bf);
                    sg_mma2(p[0], p[1], qh, klo);
                    sg_mma2(p[0], p[1], qlo, bf);
                }
            }
#pragma unroll
            for (int nt = 0; nt < 2; nt++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int i = r + gq + 8 * hr, j = 16 * cb + 8 * nt + 2 * tq;
                    st_bf16x2(As + i * LDA + j, j <= i ? scale * p[nt][2 * hr] : 0.f,
                              j + 1 <= i ? scale * p[nt][2 * hr + 1] : 0.f);
                }
        }
    }
    if (elem) {
        for (int x = lane; x < 256; x += 32) {
            const int ii = x >> 4, jj = x & 15, i = r + ii, j = r + jj;
            float s = 0.f;
            if (jj <= ii) {
                const gdnf_bf16 *qi = Qs + i * LDK, *kj = Ks + j * LDK;
                const float *gi = Gs + i * LDG, *gj = Gs + j * LDG;
                for (int c = 0; c < KD; c += 2) {
                    const float2 qv = ld_bf16x2(qi + c), kv = ld_bf16x2(kj + c);
                    const float2 a = *reinterpret_cast<const float2 *>(gi + c);
                    const float2 b = *reinterpret_cast<const float2 *>(gj + c);
                    s += qv.x * kv.x * gla_exp(a.x - b.x) + qv.y * kv.y * gla_exp(a.y - b.y);
                }
            }
            As[i * LDA + j] = __float2bfloat16_rn(scale * s);
        }
    }
    if (!half)
        for (int cb = ra + 1; cb < 4; cb++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int x = lane + 32 * e;
                st_bf16x2(As + (r + (x >> 3)) * LDA + 16 * cb + 2 * (x & 7), 0.f, 0.f);
            }
    __syncthreads();
}

// ================================================================ 0: prep
// One block per (b·h, chunk), 2·KD threads: thread (p, s) takes channels 2p, 2p+1 of rows
// 16s .. 16s+15 (8-byte gk and 4-byte q, k accesses, consecutive threads on consecutive
// channels), sums its rows, adds the earlier row segments' totals (shared memory) and writes
// Γ, K̂ and (qh) Q̂ for the chunk's rows.
template <int KD>
__global__ void __launch_bounds__(2 * KD) gla_prep_kernel(sg_args a) {
    constexpr int NP = KD / 2;
    float2 *tot = reinterpret_cast<float2 *>(GDNF_SMEM);  // (4, NP): each segment's sums
    const int p = threadIdx.x % NP, sg = threadIdx.x / NP;
    const int64_t ci = blockIdx.x, bh = ci / a.NT;
    const int n = (int)(ci % a.NT), b = (int)(bh / a.H), h = (int)(bh % a.H);
    const int t0 = n * 64, nr = min(64, a.T - t0);
    const int64_t base = (((int64_t)b * a.T + t0) * a.H + h) * KD + 2 * p, rs = (int64_t)a.H * KD;
    float2 g[16], run = make_float2(0.f, 0.f);
#pragma unroll
    for (int u = 0; u < 16; u++) {
        const int i = 16 * sg + u;
        const float2 x = i < nr ? *reinterpret_cast<const float2 *>(a.gk + base + i * rs) : make_float2(0.f, 0.f);
        run.x += x.x, run.y += x.y;
        g[u] = run;
    }
    tot[sg * NP + p] = run;
    __syncthreads();
    float2 off = make_float2(0.f, 0.f), gl = make_float2(0.f, 0.f);  // earlier segments; Γ_L
#pragma unroll
    for (int s = 0; s < 4; s++) {
        const float2 t = tot[s * NP + p];
        if (s < sg) off.x += t.x, off.y += t.y;
        gl.x += t.x, gl.y += t.y;
    }
#pragma unroll
    for (int u = 0; u < 16; u++) {
        const int i = 16 * sg + u;
        if (i >= nr) break;
        const int64_t o = base + i * rs;
        const float2 G = make_float2(g[u].x + off.x, g[u].y + off.y);
        *reinterpret_cast<float2 *>(a.G + o) = G;
        const float2 kv = ld_bf16x2(a.k + o);
        st_bf16x2(a.kh + o, kv.x * gla_exp(gl.x - G.x), kv.y * gla_exp(gl.y - G.y));
        if (a.qh) {
            const float2 qv = ld_bf16x2(a.q + o);
            st_bf16x2(a.qh + o, a.scale * qv.x * gla_exp(G.x), a.scale * qv.y * gla_exp(G.y));
        }
    }
}

// ================================================================ 2: outputs
template <int KD, int BVO>
struct gla_out_layout {
    static constexpr int LDK = KD + 8, LDV = BVO + 8, LDG = KD + 4;
    // Q, K (64, LDK) | V (64, LDV) | S (KD, LDV) | A (64, GDNF_LDA) bf16 | Γ (64, LDG) fp32
    static constexpr size_t bf = (size_t)2 * 64 * LDK + 64 * LDV + KD * LDV + 64 * GDNF_LDA;
    static constexpr size_t total = bf * 2 + (size_t)64 * LDG * 4;
};

template <int KD, int BVO, typename OT>
__global__ void __launch_bounds__(256) gla_out_kernel(sg_args a) {
    using L = gla_out_layout<KD, BVO>;
    constexpr int LDK = L::LDK, LDV = L::LDV, LDG = L::LDG, NP = BVO / 32;  // n-tile pairs per warp
    gdnf_bf16 *Qs = reinterpret_cast<gdnf_bf16 *>(GDNF_SMEM), *Ks = Qs + 64 * LDK, *Vs = Ks + 64 * LDK;
    gdnf_bf16 *Ss = Vs + 64 * LDV, *As = Ss + KD * LDV;
    float *Gs = reinterpret_cast<float *>(GDNF_SMEM + L::bf * 2);
    const int tid = threadIdx.x, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
    const int w = (tid >> 5) & 3, cw = (BVO / 2) * (tid >> 7);  // row block; the warp's first column
    const int nvt = a.V / BVO;
    const int64_t ci = blockIdx.x / nvt;  // bh·NT + n
    const int c0 = (int)(blockIdx.x % nvt) * BVO;
    const int64_t bh = ci / a.NT;
    const int n = (int)(ci % a.NT), b = (int)(bh / a.H), h = (int)(bh % a.H);
    const int t0 = n * 64, nr = min(64, a.T - t0);
    const int64_t row0 = (int64_t)b * a.T + t0;

    gdnf_load_kq<KD, 256>(Ks, Qs, LDK, a.k, a.q, row0, nr, a.H, h);
    for (int e = tid; e < 64 * (BVO / 8); e += 256) {
        const int i = e / (BVO / 8), c = (e % (BVO / 8)) * 8;
        const bool ok = i < nr;
        cp_async16(Vs + i * LDV + c, a.v + (ok ? ((row0 + i) * a.H + h) * a.V + c0 + c : 0), ok);
    }
    const gdnf_bf16 *hs = a.hs + ci * (int64_t)KD * a.V;
    for (int e = tid; e < KD * (BVO / 8); e += 256) {
        const int i = e / (BVO / 8), c = (e % (BVO / 8)) * 8;
        cp_async16(Ss + i * LDV + c, hs + (int64_t)i * a.V + c0 + c, true);
    }
    gla_load_G<KD, 256>(Gs, a.G, row0, nr, a.H, h);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    gla_scores<KD>(As, Qs, Ks, Gs, a.scale);

    // O = (scale Q ⊙ e^Γ) S + A V for rows 16w.., columns cw..
    float o[2 * NP][4] = {};
    sg_mm<KD / 16, NP>(
        o, 0, KD / 16,
        [&](uint32_t *af, int kk) {
            sg_frag_a(af, Qs, LDK, 16 * w, 16 * kk);
            gla_mul<false>(af, nullptr, 16 * w, 16 * kk, [&](int i, int c) { return a.scale * gla_exp(Gs[i * LDG + c]); });
        },
        [&](uint32_t *bf, int kk, int np) { sg_frag_bkn(bf, Ss, LDV, 16 * kk, cw + 16 * np); });
    sg_mm<4, NP>(
        o, 0, w + 1, [&](uint32_t *af, int jt) { sg_frag_a(af, As, GDNF_LDA, 16 * w, 16 * jt); },
        [&](uint32_t *bf, int jt, int np) { sg_frag_bkn(bf, Vs, LDV, 16 * jt, cw + 16 * np); });
    OT *out = reinterpret_cast<OT *>(a.o);
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = 16 * w + gq + 8 * hr;
        if (i >= nr) continue;
        OT *orow = out + ((row0 + i) * a.H + h) * a.V + c0 + cw + 2 * tq;
#pragma unroll
        for (int nt = 0; nt < 2 * NP; nt++) sg_store2(orow + 8 * nt, o[nt][2 * hr], o[nt][2 * hr + 1]);
    }
}

// ================================================================ 4: backward per chunk
// Shared memory: Q, K, K̂ (64, KD + 8) | V, dO (64, BVT + 8) | S, dS (KD, BVT + 8) | A / dA (64, 72)
// bf16 | Γ, later dΓ and its suffix sums (64, KD + 4) | the last row's ⟨dS, S⟩ term (KD) | 4
// row blocks' partials of Σ_j k_j dk^S_j (4, KD), fp32.
template <int KD, int BVT>
struct gla_chunk_layout {
    static constexpr int LDK = KD + 8, LDV = BVT + 8, LDG = KD + 4;
    static constexpr size_t bf = (size_t)3 * 64 * LDK + 2 * 64 * LDV + 2 * KD * LDV + 64 * GDNF_LDA;
    static constexpr size_t total = bf * 2 + (size_t)4 * (64 * LDG + 5 * KD);
};

template <int KD, int BVT>
__global__ void __launch_bounds__(256, 1) gla_chunk_kernel(sg_args a) {
    using L = gla_chunk_layout<KD, BVT>;
    constexpr int LDK = L::LDK, LDV = L::LDV, LDG = L::LDG, LDA = GDNF_LDA;
    constexpr int KH = KD / 2, NPK = KH / 16;   // channels per warp half, n-tile pairs over them
    constexpr int VH = BVT / 2, NPV = VH / 16;  // V-tile columns per warp half, pairs over them
    gdnf_bf16 *Qs = reinterpret_cast<gdnf_bf16 *>(GDNF_SMEM), *Ks = Qs + 64 * LDK, *Khs = Ks + 64 * LDK;
    gdnf_bf16 *Vs = Khs + 64 * LDK, *Os = Vs + 64 * LDV, *Ss = Os + 64 * LDV, *dSs = Ss + KD * LDV;
    gdnf_bf16 *As = dSs + KD * LDV;
    float *Gs = reinterpret_cast<float *>(GDNF_SMEM + L::bf * 2), *lastc = Gs + 64 * LDG, *kst = lastc + KD;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, gq = lane >> 2, tq = lane & 3;
    const int rt = w & 3, hf = w >> 2;
    const int64_t ci = blockIdx.x;  // bh·NT + n
    const int64_t bh = ci / a.NT;
    const int n = (int)(ci % a.NT), b = (int)(bh / a.H), h = (int)(bh % a.H);
    const int t0 = n * 64, nr = min(64, a.T - t0);
    const int64_t row0 = (int64_t)b * a.T + t0;
    const int i0 = 16 * rt + gq;  // this thread's rows i0, i0 + 8 of the warp's row block
    auto G = [&](int i, int c) { return Gs[i * LDG + c]; };

    gdnf_load_kq<KD, 256>(Ks, Qs, LDK, a.k, a.q, row0, nr, a.H, h);
    gdnf_load_kq<KD, 256>(Khs, nullptr, LDK, a.kh, nullptr, row0, nr, a.H, h);
    gla_load_G<KD, 256>(Gs, a.G, row0, nr, a.H, h);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    gla_scores<KD>(As, Qs, Ks, Gs, a.scale);

    float dP[4][4] = {};         // (dO Vᵀ)[rows 16rt.., cols 32hf..]
    float dQs[2 * NPK][4] = {};  // (dO Sᵀ)[rows 16rt.., channels KH·hf..]
    float dKs[2 * NPK][4] = {};  // (V dSᵀ)[rows 16rt.., channels KH·hf..]
    float sds = 0.f;             // thread c < KD: ⟨dS_c, S_c⟩
    for (int c0 = 0; c0 < a.V; c0 += BVT) {
        __syncthreads();  // the previous tile's readers are done
        sg_vtile<KD, BVT>(a, Vs, Os, Ss, dSs, ci, row0, nr, h, c0, dP, dQs, dKs);

        // dV = Aᵀ dO + K̂ dS for rows 16rt.., columns VH·hf..
        if (a.dv) {
            float va[2 * NPV][4] = {};
            sg_mm<4, NPV>(  // A_ij = 0 for i < j: i-steps from rt
                va, rt, 4, [&](uint32_t *af, int ki) { sg_frag_at(af, As, LDA, 16 * rt, 16 * ki); },
                [&](uint32_t *bf, int ki, int s) { sg_frag_bkn(bf, Os, LDV, 16 * ki, VH * hf + 16 * s); });
            sg_mm<KD / 16, NPV>(
                va, 0, KD / 16, [&](uint32_t *af, int kk) { sg_frag_a(af, Khs, LDK, 16 * rt, 16 * kk); },
                [&](uint32_t *bf, int kk, int s) { sg_frag_bkn(bf, dSs, LDV, 16 * kk, VH * hf + 16 * s); });
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                const int i = i0 + 8 * hr;
                if (i >= nr) continue;
                sg_add_row<2 * NPV>(a.dv + ((row0 + i) * a.H + h) * a.V + c0 + VH * hf + 2 * tq, va, hr);
            }
        }
        if (tid < KD)
            for (int c = 0; c < BVT; c += 2) {
                const float2 s2 = ld_bf16x2(Ss + tid * LDV + c), d2 = ld_bf16x2(dSs + tid * LDV + c);
                sds += s2.x * d2.x + s2.y * d2.y;
            }
    }
    __syncthreads();  // the last tile's readers of As are done

    // dA = scale dP (j <= i) → As; the last row's e^{Γ_L} ⟨dS, S⟩ per channel
#pragma unroll
    for (int nt = 0; nt < 4; nt++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int i = i0 + 8 * hr, j = 32 * hf + 8 * nt + 2 * tq;
            st_bf16x2(As + i * LDA + j, j <= i ? a.scale * dP[nt][2 * hr] : 0.f,
                      j + 1 <= i ? a.scale * dP[nt][2 * hr + 1] : 0.f);
        }
    if (tid < KD) lastc[tid] = gla_exp(G(63, tid)) * sds;
    __syncthreads();

    // The state terms: dQs ← scale e^{Γ} ⊙ dQs, dKs ← e^{Γ_L−Γ} ⊙ dKs, and the column sums of k ⊙ dk^S.
    {
        float kc[2 * NPK][2] = {};
#pragma unroll
        for (int nt = 0; nt < 2 * NPK; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int i = i0 + 8 * (e >> 1), c = KH * hf + 8 * nt + 2 * tq + (e & 1);
                const float gic = G(i, c);
                dQs[nt][e] *= a.scale * gla_exp(gic);
                dKs[nt][e] *= gla_exp(G(63, c) - gic);
                kc[nt][e & 1] += bf2f(Ks[i * LDK + c]) * dKs[nt][e];
            }
#pragma unroll
        for (int nt = 0; nt < 2 * NPK; nt++)
#pragma unroll
            for (int p = 0; p < 2; p++) {
                float x = kc[nt][p];
                x += __shfl_xor_sync(SG_FULL, x, 4);
                x += __shfl_xor_sync(SG_FULL, x, 8);
                x += __shfl_xor_sync(SG_FULL, x, 16);
                if (gq == 0) kst[rt * KD + KH * hf + 8 * nt + 2 * tq + p] = x;
            }
    }
    // The intra-chunk sums on the tensor cores: dQ through the reference row 16rt (the row
    // block's first), dK through 16rt + 15 (its last); the diagonal block too when its decay
    // range allows (gla_diag_ok; the factors of its own rows then reach e^{±R}), else
    // element-wise in fp32 below (mask before exp).
    const bool tc_diag = gla_diag_ok<KD>(Gs, rt);
    // t += af · (rows 16rt.. of X times fac, as hi + lo: see gla_scores) for the warp's channels
    auto diag_split = [&](float (*t)[4], const uint32_t af[4], const gdnf_bf16 *X, auto fac) {
#pragma unroll
        for (int s = 0; s < NPK; s++) {
            uint32_t bf[4], lo[4];
            sg_frag_bkn(bf, X, LDK, 16 * rt, KH * hf + 16 * s);
            gla_mul<true>(bf, lo, 16 * rt, KH * hf + 16 * s, fac);
            sg_mma2(t[2 * s], t[2 * s + 1], af, bf);
            sg_mma2(t[2 * s], t[2 * s + 1], af, lo);
        }
    };
    {
        float t[2 * NPK][4] = {};
        const int r = 16 * rt;
        auto kfac = [&](int j, int c) { return gla_exp(G(r, c) - G(j, c)); };
        sg_mm<4, NPK>(
            t, 0, rt, [&](uint32_t *af, int kb) { sg_frag_a(af, As, LDA, 16 * rt, 16 * kb); },
            [&](uint32_t *bf, int kb, int s) {
                sg_frag_bkn(bf, Ks, LDK, 16 * kb, KH * hf + 16 * s);
                gla_mul<true>(bf, nullptr, 16 * kb, KH * hf + 16 * s, kfac);
            });
        if (tc_diag) {
            uint32_t af[4];
            sg_frag_a(af, As, LDA, 16 * rt, 16 * rt);
            diag_split(t, af, Ks, kfac);
        }
#pragma unroll
        for (int nt = 0; nt < 2 * NPK; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int i = i0 + 8 * (e >> 1), c = KH * hf + 8 * nt + 2 * tq + (e & 1);
                dQs[nt][e] += t[nt][e] * gla_exp(G(i, c) - G(r, c));
            }
    }
    {
        float t[2 * NPK][4] = {};
        const int r = 16 * rt + 15;
        auto qfac = [&](int i, int c) { return gla_exp(G(i, c) - G(r, c)); };
        sg_mm<4, NPK>(
            t, rt + 1, 4, [&](uint32_t *af, int ka) { sg_frag_at(af, As, LDA, 16 * rt, 16 * ka); },
            [&](uint32_t *bf, int ka, int s) {
                sg_frag_bkn(bf, Qs, LDK, 16 * ka, KH * hf + 16 * s);
                gla_mul<true>(bf, nullptr, 16 * ka, KH * hf + 16 * s, qfac);
            });
        if (tc_diag) {
            uint32_t af[4];
            sg_frag_at(af, As, LDA, 16 * rt, 16 * rt);
            diag_split(t, af, Qs, qfac);
        }
#pragma unroll
        for (int nt = 0; nt < 2 * NPK; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int j = i0 + 8 * (e >> 1), c = KH * hf + 8 * nt + 2 * tq + (e & 1);
                dKs[nt][e] += t[nt][e] * gla_exp(G(r, c) - G(j, c));
            }
    }
    if (!tc_diag) {
#pragma unroll
        for (int nt = 0; nt < 2 * NPK; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int i = i0 + 8 * (e >> 1), c = KH * hf + 8 * nt + 2 * tq + (e & 1);
                const float gic = G(i, c);
                float sq = 0.f, sk = 0.f;
                for (int j = 16 * rt; j <= i; j++)
                    sq += bf2f(As[i * LDA + j]) * bf2f(Ks[j * LDK + c]) * gla_exp(gic - G(j, c));
                for (int j = i; j < 16 * rt + 16; j++)
                    sk += bf2f(As[j * LDA + i]) * bf2f(Qs[j * LDK + c]) * gla_exp(G(j, c) - gic);
                dQs[nt][e] += sq;
                dKs[nt][e] += sk;
            }
    }

    // dΓ = q ⊙ dq − k ⊙ dk, the dq, dk updates
    float dgm[2 * NPK][4];
#pragma unroll
    for (int nt = 0; nt < 2 * NPK; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int i = i0 + 8 * (e >> 1), c = KH * hf + 8 * nt + 2 * tq + (e & 1);
            dgm[nt][e] = bf2f(Qs[i * LDK + c]) * dQs[nt][e] - bf2f(Ks[i * LDK + c]) * dKs[nt][e];
        }
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = i0 + 8 * hr;
        if (i >= nr) continue;
        const int64_t ro = ((row0 + i) * a.H + h) * KD + KH * hf + 2 * tq;
        if (a.dq) sg_add_row<2 * NPK>(a.dq + ro, dQs, hr);
        if (a.dk) sg_add_row<2 * NPK>(a.dk + ro, dKs, hr);
    }
    if (!a.dg) return;  // block-uniform: no barrier below is reached by anyone then
    __syncthreads();    // every reader of Γ is done
#pragma unroll
    for (int nt = 0; nt < 2 * NPK; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            Gs[(i0 + 8 * (e >> 1)) * LDG + KH * hf + 8 * nt + 2 * tq + (e & 1)] = dgm[nt][e];
    __syncthreads();
    if (tid < KD) {
        // suffix sums from row 63 (the last row's state term first), in place
        float run = lastc[tid] + kst[tid] + kst[KD + tid] + kst[2 * KD + tid] + kst[3 * KD + tid];
        for (int i = 63; i >= 0; i--) {
            run += Gs[i * LDG + tid];
            Gs[i * LDG + tid] = run;
        }
    }
    __syncthreads();
    for (int e = tid; e < nr * (KD / 2); e += 256) {
        const int i = e / (KD / 2), c = (e % (KD / 2)) * 2;
        float2 *p = reinterpret_cast<float2 *>(a.dg + ((row0 + i) * a.H + h) * KD + c);
        float2 x = *p;
        x.x += Gs[i * LDG + c], x.y += Gs[i * LDG + c + 1];
        *p = x;
    }
}

// ================================================================ host side
template <int KD>
static void prep_run(const sg_args &a, int64_t BH) {
    sg_launch(gla_prep_kernel<KD>, BH * a.NT, 2 * KD, (size_t)4 * (KD / 2) * sizeof(float2), a);
}

template <int KD, int BVO>
static void gla_out_launch(const sg_args &a, int64_t grid, pn_cuda_dtype o_dt) {
    if (o_dt == PN_CUDA_F32)
        sg_launch(gla_out_kernel<KD, BVO, float>, grid, 256, gla_out_layout<KD, BVO>::total, a);
    else
        sg_launch(gla_out_kernel<KD, BVO, gdnf_bf16>, grid, 256, gla_out_layout<KD, BVO>::total, a);
}

template <int KD>
static void gla_out_run(const sg_args &a, int64_t BH, pn_cuda_dtype o_dt) {
    const int BVO = sg_bvo(a.V);
    const int64_t grid = BH * a.NT * (a.V / BVO);
    if (BVO == 128)
        gla_out_launch<KD, 128>(a, grid, o_dt);
    else if (BVO == 64)
        gla_out_launch<KD, 64>(a, grid, o_dt);
    else
        gla_out_launch<KD, 32>(a, grid, o_dt);
}

template <int KD>
static void gla_chunk_run(const sg_args &a, int64_t BH) {
    const int64_t grid = BH * a.NT;
    if (sg_bv(a.V) == 64)
        sg_launch(gla_chunk_kernel<KD, 64>, grid, 256, gla_chunk_layout<KD, 64>::total, a);
    else
        sg_launch(gla_chunk_kernel<KD, 32>, grid, 256, gla_chunk_layout<KD, 32>::total, a);
}

// Γ, K̂ and (qh) Q̂ into fresh scratch; the caller frees a.G, a.kh, a.qh.
template <int KD>
static void gla_prep(sg_args &a, int64_t BH, bool qh) {
    const size_t n = (size_t)BH * a.T * KD;
    a.G = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, n * 4);
    a.kh = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, n * 2);
    a.qh = qh ? (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, n * 2) : nullptr;
    prep_run<KD>(a, BH);
}

static void gla_prep_free(sg_args &a) {
    pn_cuda_free(a.G);
    pn_cuda_free(a.kh);
    if (a.qh) pn_cuda_free(a.qh);
}

template <int KD>
static void gla_fwd_fast_kd(sg_args a, int64_t BH, pn_cuda_dtype o_dt) {
    gla_prep<KD>(a, BH, false);
    sg_args p = a;  // the state pass reads K̂ as its K
    p.k = a.kh;
    if (a.o) p.hs = a.hs = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)BH * a.NT * KD * a.V * 2);
    pass_run<KD, false, true>(p, BH);
    if (a.o) {
        gla_out_run<KD>(a, BH, o_dt);
        pn_cuda_free(a.hs);  // back to the cache; later work on the stream runs after these kernels
    }
    gla_prep_free(a);
}

// a: the per-chunk gradients (s0 = h0 for the forward pass); r's s0 = dht, s1 = dh0.
template <int KD>
static void gla_bwd_fast_kd(sg_args a, const float *dht, float *dh0, int64_t BH) {
    const bool per_token = a.dq || a.dk || a.dv || a.dg;
    if (!per_token && !dh0) return;
    gla_prep<KD>(a, BH, true);
    const size_t sbytes = (size_t)BH * a.NT * KD * a.V * 2;
    if (per_token) {
        sg_args f = a;  // the forward state pass: K̂, start states into hs
        f.k = a.kh, f.s1 = nullptr;
        a.hs = f.hs = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sbytes);
        pass_run<KD, false, true>(f, BH);
        a.dhs = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sbytes);
    }
    sg_args r = a;  // the reverse pass: Q̂, end-state gradients into dhs (or none)
    r.q = a.qh, r.s0 = dht, r.s1 = dh0;
    pass_run<KD, true, true>(r, BH);
    if (per_token) {
        gla_chunk_run<KD>(a, BH);
        pn_cuda_free(a.hs);
        pn_cuda_free(a.dhs);
    }
    gla_prep_free(a);
}

static int g_gla_last_fast = 0;  // 1: the last call ran the tensor-core kernels; 0: it fell back
extern "C" int pn_cuda_gla_fast_debug_last(void) { return g_gla_last_fast; }

extern "C" int pn_cuda_gla_fast_supported(int K, int V) { return sg_fast_shape(K, V); }

static sg_args gla_args(int B, int T, int H, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                        const pn_bf16 *v, const float *gk) {
    sg_args a;
    memset(&a, 0, sizeof a);
    const int NT = (int)pn_ceil_div(T, 64);
    if ((int64_t)B * H * NT * (V / 32) > 0x7fffffff) {
        fprintf(stderr, "postnas: internal error: %s: GLA fast path: grid too large (B·H = %lld, T = %d)\n",
                __FILE__, (long long)B * H, T);
        exit(1);
    }
    a.q = reinterpret_cast<const gdnf_bf16 *>(q), a.k = reinterpret_cast<const gdnf_bf16 *>(k);
    a.v = reinterpret_cast<const gdnf_bf16 *>(v), a.gk = gk;
    a.T = T, a.H = H, a.V = V, a.NT = NT, a.scale = scale;
    return a;
}

extern "C" void pn_cuda_gla_fwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q,
                                     const pn_bf16 *k, const pn_bf16 *v, const float *gk, const float *h0, void *o,
                                     pn_cuda_dtype o_dt, float *ht) {
    const bool aligned = sg_aligned(q, 16) && sg_aligned(k, 16) && sg_aligned(v, 16) && sg_aligned(gk, 8) &&
                         sg_aligned(o, 8) && sg_aligned(h0, 8) && sg_aligned(ht, 8);
    // Other head sizes, misaligned buffers and T == 0 (a state copy) run the fp32 kernels of
    // linear_ops.cu, which share this contract.
    g_gla_last_fast = pn_cuda_gla_fast_supported(K, V) && aligned && T > 0;
    if (!g_gla_last_fast) {
        pn_cuda_gla_fwd(B, T, H, K, V, scale, q, k, v, gk, h0, o, o_dt, ht);
        return;
    }
    const int64_t BH = (int64_t)B * H;
    if (BH <= 0 || (!o && !ht)) return;
    sg_args a = gla_args(B, T, H, V, scale, q, k, v, gk);
    a.s0 = h0, a.s1 = ht, a.o = o;
    if (K == 64)
        gla_fwd_fast_kd<64>(a, BH, o_dt);
    else if (K == 96)
        gla_fwd_fast_kd<96>(a, BH, o_dt);
    else
        gla_fwd_fast_kd<128>(a, BH, o_dt);
}

extern "C" void pn_cuda_gla_bwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q,
                                     const pn_bf16 *k, const pn_bf16 *v, const float *gk, const float *h0,
                                     const float *dout, const float *dht, float *dq, float *dk, float *dv, float *dgk,
                                     float *dh0) {
    const bool aligned = sg_aligned(q, 16) && sg_aligned(k, 16) && sg_aligned(v, 16) && sg_aligned(dout, 16) &&
                         sg_aligned(gk, 8) && sg_aligned(h0, 8) && sg_aligned(dht, 8) && sg_aligned(dh0, 8) &&
                         sg_aligned(dq, 8) && sg_aligned(dk, 8) && sg_aligned(dv, 8) && sg_aligned(dgk, 8);
    g_gla_last_fast = pn_cuda_gla_fast_supported(K, V) && aligned && T > 0;
    if (!g_gla_last_fast) {
        pn_cuda_gla_bwd(B, T, H, K, V, scale, q, k, v, gk, h0, dout, dht, dq, dk, dv, dgk, dh0);
        return;
    }
    const int64_t BH = (int64_t)B * H;
    if (BH <= 0) return;
    sg_args a = gla_args(B, T, H, V, scale, q, k, v, gk);
    a.dout = dout, a.s0 = h0;
    a.dq = dq, a.dk = dk, a.dv = dv, a.dg = dgk;
    if (K == 64)
        gla_bwd_fast_kd<64>(a, dht, dh0, BH);
    else if (K == 96)
        gla_bwd_fast_kd<96>(a, dht, dh0, BH);
    else
        gla_bwd_fast_kd<128>(a, dht, dh0, BH);
}
