// gdn_fast_bwd.cu — chunked gated delta rule backward on bf16 tensor cores (mma.sync m16n8k16,
// fp32 accumulation): the fast twin of pn_cuda_gated_delta_bwd (kernels/cuda/gdn.cu, same
// contract, pn_cuda_gdn_fast.h). Design and expected cost: kernels/cuda/GDN_NOTES.md §6.
//
// ---------------------------------------------------------------- the algorithm
// The forward per chunk (gdn_fast.cu's notation; K, Q the raw bf16 rows, K̂ = diag(rk) K,
// Q̂ = diag(rq) Q, γ the chunk-local cumsum of g, d = e^{γ_last − γ}, el = e^{γ_last}):
//   A  = (I + L)⁻¹, L_ij = β_i M_ij, M_ij = K̂K̂ᵀ_ij e^{γ_i−γ_j} (j < i)
//   P_ij = scale Q̂K̂ᵀ_ij e^{γ_i−γ_j} (j ≤ i)
//   X' = V − diag(e^γ) K̂ S0,  Z = diag(β) X',  Vn = A Z
//   O  = diag(scale e^γ) Q̂ S0 + P Vn,  S1 = el S0 + K̂ᵀ diag(d) Vn.
// Reverse mode, given S0 and dS1 (the gradient of the chunk's END state):
//   dVn = Pᵀ dO + diag(d) K̂ dS1,  dZ = Aᵀ dVn,  dX = diag(β) dZ,  dV = dX,
//   dβ_i = Σ_c dZ_ic X'_ic + Σ_j dL_ij M_ij,
//   dS0 = el dS1 + Q̂ᵀ diag(scale e^γ) dO − K̂ᵀ diag(e^γ) dX          (the reverse scan)
//   dQ̂ = diag(scale e^γ) dO S0ᵀ + (scale E ⊙ dP) K̂,   dP = dO Vnᵀ (j ≤ i)
//   dK̂ = −diag(e^γ) dX S0ᵀ + diag(d) Vn dS1ᵀ + (scale E ⊙ dP)ᵀ Q̂ + (dKK + dKKᵀ) K̂,
//   dA = dVn Zᵀ,  dL = −Aᵀ dA Aᵀ (j < i),  dKK_ij = β_i e^{γ_i−γ_j} dL_ij,
//   dγ_i = Σ_k dQ̂state_ik q̂_ik − e^γ_i Σ_c dX_ic (K̂S0)_ic − d_i Σ_c (K̂dS1)_ic Vn_ic
//          + Σ_j G_ij − Σ_j G_ji  (G = dP ⊙ P + dL ⊙ L),
//   dγ_last += Σ_i d_i Σ_c (K̂dS1)_ic Vn_ic + el ⟨S0, dS1⟩,   dg = reverse chunk cumsum of dγ,
// then the q/k L2-norm backward, dq = rq (dq̂ − (dq̂·q̂) q̂), per row.
//
// ---------------------------------------------------------------- kernels
// 1. gdnf_prep_kernel<KD, AU = true> (gdn_fast_common.cuh): per chunk, A' = A diag(β), A, P,
//    rows {scale rq e^γ, rk e^γ, rk d, el} and {rq, rk, γ, β}.
// 2. gdnf_scan_kernel<KD, BV, false, float, HS = true>: the forward's state pass (no outputs),
//    storing every chunk's start state S0 as bf16 (BH, NT, KD, V) — only when dq, dk, dv, dg
//    or dβ are wanted.
// 3. gdnb_dscan_kernel<KD, BV>: one block (8 warps) per (b·h, column tile of BV state
//    columns), chunks in REVERSE order, dS (KD, BV) fp32 in registers (ownership as the forward
//    scan). Per chunk: store dS (= dS1 of the chunk) as bf16 to dhs (BH, NT, KD, V); dO (fp32)
//    → bf16 dO and Dq = diag(scale rq e^γ) dO; Y = Pᵀ dO + diag(rk d) (K dS); dX = A'ᵀ Y,
//    Dx = −diag(rk e^γ) dX; dS ← el dS + Qᵀ Dq + Kᵀ Dx. At the end dh0 += dS. The chunk's K, Q,
//    A', P, dO and rows are double-buffered with cp.async as in the forward. Where the 64-column
//    tiles come in fours, gdnw_dscan_kernel<KD> (gdn_wdscan.cuh) runs instead, the default: the
//    same scan on wgmma, four tiles per block sharing the chunk's tiles (bit-identical results;
//    GDN_NOTES §14); pn_cuda_gdn_fast_bwd_debug_dscan(0) forces this one.
//    2 and 3 both need only 1's outputs: 3 runs on the runtime's side stream (highest priority,
//    queued first) while 2 runs on the backend stream, joined before 4 (GDN_NOTES §17;
//    pn_cuda_gdn_fast_bwd_debug_overlap(0) runs them one after the other, bitwise the same).
// 4. gdnb_chunk_kernel<KD, WRITE, WG, DBR>: one block (8 warps) per (b·h, chunk), all chunks in parallel: loops
//    over 64-column tiles of V with S0, dS1 (bf16 from 2, 3), V and dO tiles in shared memory,
//    recomputing X', Z, Vn, dVn, dZ on tensor cores and accumulating dA, dP (64, 64) and
//    dQ̂, dK̂ (64, KD) in registers (each tile's fp32 dO arrives by cp.async a tile ahead into a
//    staging tile, GDN_NOTES §16; with DBR and KD <= 96, the default, the S0, dS1 and V tiles
//    too, into a second tile set, §17); then dL through two 64³ products, the Gram-matrix
//    gradients, the row sums of dγ/dβ (fixed order, no atomics), the reverse cumsum of dγ and
//    the L2-norm backward, and ADDS into dq, dk, dv, dg, dβ (each element has one writer).
//    WG = true (opt-in, pn_cuda_gdn_fast_bwd_debug_wgmma): the tiles in wgmma.cuh's core-matrix
//    tiling and the V-tile loop's products on wgmma, one warpgroup per column half; the same
//    roundings and summation order (host emulation bit-identical), slower on the H100 (the
//    kernel waits on loads and barriers, not on its products: GDN_NOTES §12).
// Everything is deterministic (no atomics; every reduction has a fixed order).
//
// Fragment layouts and the ldmatrix address patterns: the comment of gdn_fast.cu.
// GDNF_HOST_EMU: compiles as host C++ against an emulation header (see gdn_fast.cu).
#include "kernels/cuda/gdn_fast_common.cuh"

#define GDNB_THREADS 256
#define GDNB_TV 64  // V columns per tile of the chunk kernel

// ================================================================ operand loads
// Storage X is row-major with row stride ld, or (TL) gdnf_eo's core-matrix tiling with ld
// columns; ldmatrix reads 16-byte row segments, which both layouts keep contiguous.
// A operand, X (rows r0.., columns k0..).
template <bool TL = false>
static __device__ __forceinline__ void lda_rm(uint32_t af[4], const gdnf_bf16 *X, int ld, int r0, int k0) {
    const int lane = threadIdx.x & 31;
    ldsm_x4(af, X + gdnf_eo<TL>(r0 + (lane & 15), k0 + (lane >> 4) * 8, ld));
}
// A operand = Xᵀ, X stored (k, m): rows m0.. of the operand, depth k0...
template <bool TL = false>
static __device__ __forceinline__ void lda_t(uint32_t af[4], const gdnf_bf16 *X, int ld, int m0, int k0) {
    const int lane = threadIdx.x & 31;
    ldsm_x4_t(af, X + gdnf_eo<TL>(k0 + (lane & 7) + ((lane >> 4) << 3), m0 + ((lane >> 3) & 1) * 8, ld));
}
// B operand stored (k, n): bb[0..1] n-tile n0, bb[2..3] n-tile n0 + 8.
template <bool TL = false>
static __device__ __forceinline__ void ldb_kn(uint32_t bb[4], const gdnf_bf16 *X, int ld, int k0, int n0) {
    const int lane = threadIdx.x & 31;
    ldsm_x4_t(bb, X + gdnf_eo<TL>(k0 + (lane & 15), n0 + (lane >> 4) * 8, ld));
}
// B operand stored (n, k) (the rows of Bᵀ).
template <bool TL = false>
static __device__ __forceinline__ void ldb_nk(uint32_t bb[4], const gdnf_bf16 *X, int ld, int k0, int n0) {
    const int lane = threadIdx.x & 31;
    ldsm_x4(bb, X + gdnf_eo<TL>(n0 + (lane & 7) + ((lane >> 4) << 3), k0 + ((lane >> 3) & 1) * 8, ld));
}
template <int N>
static __device__ __forceinline__ void zero_acc(float acc[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
}
// acc[0 .. 2·NP) (n-tiles n0 + 8x) += A · B, one 16-deep step.
template <int NP, bool NK, bool TL = false>
static __device__ __forceinline__ void mma_row(float (*acc)[4], const uint32_t af[4], const gdnf_bf16 *B, int ld,
                                               int k0, int n0) {
#pragma unroll
    for (int np = 0; np < NP; np++) {
        uint32_t bb[4];
        if (NK)
            ldb_nk<TL>(bb, B, ld, k0, n0 + 16 * np);
        else
            ldb_kn<TL>(bb, B, ld, k0, n0 + 16 * np);
        mma_bf16(acc[2 * np], af, bb[0], bb[1]);
        mma_bf16(acc[2 * np + 1], af, bb[2], bb[3]);
    }
}
// ---- wgmma forms (the chunk kernel's WG instantiation). Tiles in gdnf_eo's tiling with C
// columns; the descriptor of 16-deep step kk of a tile read K-major (rows = M or N, columns =
// depth) or MN-major (rows = depth, columns = M or N), wgmma.cuh's offsets.
// The step is added to the descriptor's start-address field (bytes / 16; shared addresses stay
// below 2^18, so it cannot carry out), which keeps one base descriptor per tile, not one
// address computation per step.
template <int C>
static __device__ __forceinline__ uint64_t cwg_km(const gdnf_bf16 *X, int kk) {
    return wg_desc(X, 128, 16 * C) + (uint64_t)(16 * kk);
}
template <int C>
static __device__ __forceinline__ uint64_t cwg_mn(const gdnf_bf16 *X, int kk) {
    return wg_desc(X, 16 * C, 128) + (uint64_t)(2 * C * kk);
}
// A warp's mma.sync accumulators over N columns, float[N/8][4], as the m64nN wgmma accumulator
// (NF = N/2 floats): the fragment layouts coincide warp by warp (wgmma.cuh), so the code around
// a product does not depend on which instruction computed it.
template <int NF>
static __device__ __forceinline__ float (&cwg_acc(float (*a)[4]))[NF] {
    return *reinterpret_cast<float (*)[NF]>(a);
}
static __device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    return v;
}

// ================================================================ kernel 3: reverse state scan
struct gdnb_dscan_args {
    const gdnf_bf16 *q, *k, *A, *P;  // A = A' = A diag(β)
    const float4 *rows;
    const float *dout, *dht;  // dht NULL = zero
    float *dh0;               // += at the end; NULL = not wanted
    gdnf_bf16 *dhs;           // (BH, NT, KD, V) end-state gradients per chunk; NULL = not wanted
    int T, H, V, NT, ntiles;
};

template <int KD, int BV>
struct dscan_layout {
    static constexpr int LDK = KD + 8, LDV = BV + 8, LDF = BV + 4;
    static constexpr size_t ks = (size_t)GDNF_C * LDK * 2, as = (size_t)GDNF_C * GDNF_LDA * 2;
    static constexpr size_t df = (size_t)GDNF_C * LDF * 4, rs = (size_t)GDNF_C * 16;
    static constexpr size_t o_qs = ks, o_as = o_qs + ks, o_ps = o_as + as, o_df = o_ps + as, o_rs = o_df + df;
    static constexpr size_t stage = o_rs + rs;
    static constexpr size_t sb = (size_t)KD * LDV * 2, tv = (size_t)GDNF_C * LDV * 2;
    static constexpr size_t o_sb = 2 * stage, o_dos = o_sb + sb, o_dq = o_dos + tv, o_ys = o_dq + tv, o_dx = o_ys + tv;
    static constexpr size_t total = o_dx + tv;
};

template <int KD, int BV>
static __device__ __forceinline__ void dscan_load(unsigned char *stg, const gdnb_dscan_args &a, int64_t bh, int b,
                                                  int h, int n, int c0) {
    using Lay = dscan_layout<KD, BV>;
    constexpr int LDK = Lay::LDK, LDF = Lay::LDF;
    gdnf_bf16 *Ks = reinterpret_cast<gdnf_bf16 *>(stg), *Qs = reinterpret_cast<gdnf_bf16 *>(stg + Lay::o_qs);
    gdnf_bf16 *As = reinterpret_cast<gdnf_bf16 *>(stg + Lay::o_as), *Ps = reinterpret_cast<gdnf_bf16 *>(stg + Lay::o_ps);
    float *Df = reinterpret_cast<float *>(stg + Lay::o_df);
    float4 *Rs = reinterpret_cast<float4 *>(stg + Lay::o_rs);
    const int tid = threadIdx.x, t0 = n * GDNF_C, nr = min(GDNF_C, a.T - t0);
    const int64_t row0 = (int64_t)b * a.T + t0, ci = bh * a.NT + n;
    gdnf_load_kq<KD, GDNB_THREADS>(Ks, Qs, LDK, a.k, a.q, row0, nr, a.H, h);
    gdnf_load_ap<GDNB_THREADS>(As, Ps, a.A, a.P, ci);
    for (int e = tid; e < GDNF_C * (BV / 4); e += GDNB_THREADS) {
        const int i = e / (BV / 4), c = (e % (BV / 4)) * 4;
        const bool ok = i < nr;
        const int64_t off = ok ? ((row0 + i) * a.H + h) * (int64_t)a.V + c0 + c : 0;
        cp_async16(Df + i * LDF + c, a.dout + off, ok);
    }
    if (tid < GDNF_C) cp_async16(Rs + tid, a.rows + ci * GDNF_C + tid, true);
}

template <int KD, int BV>
__global__ void __launch_bounds__(GDNB_THREADS, 1) gdnb_dscan_kernel(const gdnb_dscan_args a) {
    using Lay = dscan_layout<KD, BV>;
    constexpr int LDK = Lay::LDK, LDV = Lay::LDV, LDF = Lay::LDF, LDA = GDNF_LDA, MT = KD / 16;
    constexpr bool SPLIT = MT == 4;               // KD = 64: 4 row tiles × 2 column halves
    constexpr int SN = SPLIT ? BV / 16 : BV / 8;  // n-tiles of a warp's state slice
    constexpr int NB = BV / 16;                   // n-tiles of a (16, BV/2) unit of phases 2, 3
    static_assert(MT == 4 || MT == 6 || MT == 8, "KD must be 64, 96 or 128");
    static_assert(BV == 32 || BV == 64, "BV must be 32 or 64");
    unsigned char *sm = GDNF_SMEM;
    gdnf_bf16 *Sb = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_sb), *dOs = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_dos);
    gdnf_bf16 *Dq = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_dq), *Ys = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_ys);
    gdnf_bf16 *Dx = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_dx);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int tile = (int)(blockIdx.x % a.ntiles);
    const int64_t bh = blockIdx.x / a.ntiles;
    const int b = (int)(bh / a.H), h = (int)(bh % a.H), c0 = tile * BV;
    const int smt = SPLIT ? (warp & 3) : warp, scb = SPLIT ? (warp >> 2) * (BV / 2) : 0;
    const bool owner = SPLIT || warp < MT;
    const int64_t KV = (int64_t)KD * a.V;

    float sacc[SN][4];
    if (owner) {
#pragma unroll
        for (int nt = 0; nt < SN; nt++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int r = 16 * smt + g + 8 * hh, col = scb + 8 * nt + 2 * t;
                float2 s = make_float2(0.f, 0.f);
                if (a.dht) s = *reinterpret_cast<const float2 *>(a.dht + bh * KV + (int64_t)r * a.V + c0 + col);
                sacc[nt][2 * hh] = s.x, sacc[nt][2 * hh + 1] = s.y;
                st_bf16x2(Sb + r * LDV + col, s.x, s.y);
            }
    }
    dscan_load<KD, BV>(sm, a, bh, b, h, a.NT - 1, c0);
    cp_async_commit();

    for (int n = a.NT - 1; n >= 0; n--) {
        unsigned char *stg = sm + ((a.NT - 1 - n) & 1) * Lay::stage;
        const gdnf_bf16 *Ks = reinterpret_cast<const gdnf_bf16 *>(stg);
        const gdnf_bf16 *Qs = reinterpret_cast<const gdnf_bf16 *>(stg + Lay::o_qs);
        const gdnf_bf16 *As = reinterpret_cast<const gdnf_bf16 *>(stg + Lay::o_as);
        const gdnf_bf16 *Ps = reinterpret_cast<const gdnf_bf16 *>(stg + Lay::o_ps);
        const float *Df = reinterpret_cast<const float *>(stg + Lay::o_df);
        const float4 *Rs = reinterpret_cast<const float4 *>(stg + Lay::o_rs);
        cp_async_wait_all();
        __syncthreads();  // chunk n's stage and Sb (dS1 of chunk n) are visible
        if (n > 0) dscan_load<KD, BV>(sm + ((a.NT - n) & 1) * Lay::stage, a, bh, b, h, n - 1, c0);
        cp_async_commit();
        if (a.dhs) {
            gdnf_bf16 *dst = a.dhs + (bh * a.NT + n) * KV + c0;
            for (int e = tid; e < KD * (BV / 8); e += GDNB_THREADS) {
                const int r = e / (BV / 8), cc = (e % (BV / 8)) * 8;
                *reinterpret_cast<uint4 *>(dst + (int64_t)r * a.V + cc) = *reinterpret_cast<const uint4 *>(Sb + r * LDV + cc);
            }
        }
        for (int e = tid; e < GDNF_C * (BV / 2); e += GDNB_THREADS) {
            const int i = e / (BV / 2), c = (e % (BV / 2)) * 2;
            const float2 x = *reinterpret_cast<const float2 *>(Df + i * LDF + c);
            const float rx = Rs[i].x;
            st_bf16x2(dOs + i * LDV + c, x.x, x.y);
            st_bf16x2(Dq + i * LDV + c, rx * x.x, rx * x.y);
        }
        __syncthreads();

        const int rt = warp & 3, cb = (warp >> 2) * (BV / 2);
        // ---- Y = diag(rk d) K dS + Pᵀ dO: the K dS rows are scaled, then Pᵀ dO accumulates onto
        // them (the order of gdn_wdscan.cuh's wgmma pass, whose results are bit-identical)
        {
            float ak[NB][4];
            zero_acc<NB>(ak);
#pragma unroll
            for (int kk = 0; kk < KD / 16; kk++) {
                uint32_t af[4];
                lda_rm(af, Ks, LDK, 16 * rt, 16 * kk);
                mma_row<NB / 2, false>(ak, af, Sb, LDV, 16 * kk, cb);
            }
#pragma unroll
            for (int nt = 0; nt < NB; nt++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const float rz = Rs[16 * rt + g + 8 * hh].z;
                    ak[nt][2 * hh] *= rz, ak[nt][2 * hh + 1] *= rz;
                }
#pragma unroll
            for (int kt = 0; kt < 4; kt++)
                if (kt >= rt) {  // (Pᵀ)_ij = P_ji vanishes for j < i
                    uint32_t af[4];
                    lda_t(af, Ps, LDA, 16 * rt, 16 * kt);
                    mma_row<NB / 2, false>(ak, af, dOs, LDV, 16 * kt, cb);
                }
#pragma unroll
            for (int nt = 0; nt < NB; nt++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const int i = 16 * rt + g + 8 * hh, col = cb + 8 * nt + 2 * t;
                    st_bf16x2(Ys + i * LDV + col, ak[nt][2 * hh], ak[nt][2 * hh + 1]);
                }
        }
        __syncthreads();
        // ---- dX = A'ᵀ Y, Dx = −rk e^γ dX
        {
            float ax[NB][4];
            zero_acc<NB>(ax);
#pragma unroll
            for (int kt = 0; kt < 4; kt++)
                if (kt >= rt) {
                    uint32_t af[4];
                    lda_t(af, As, LDA, 16 * rt, 16 * kt);
                    mma_row<NB / 2, false>(ax, af, Ys, LDV, 16 * kt, cb);
                }
#pragma unroll
            for (int nt = 0; nt < NB; nt++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const int i = 16 * rt + g + 8 * hh, col = cb + 8 * nt + 2 * t;
                    const float ry = -Rs[i].y;
                    st_bf16x2(Dx + i * LDV + col, ry * ax[nt][2 * hh], ry * ax[nt][2 * hh + 1]);
                }
        }
        __syncthreads();
        // ---- dS ← el dS + Qᵀ Dq + Kᵀ Dx
        if (owner) {
            const float el = Rs[0].w;
#pragma unroll
            for (int nt = 0; nt < SN; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) sacc[nt][e] *= el;
#pragma unroll
            for (int kt = 0; kt < 4; kt++) {
                uint32_t af[4];
                lda_t(af, Qs, LDK, 16 * smt, 16 * kt);
                mma_row<SN / 2, false>(sacc, af, Dq, LDV, 16 * kt, scb);
                lda_t(af, Ks, LDK, 16 * smt, 16 * kt);
                mma_row<SN / 2, false>(sacc, af, Dx, LDV, 16 * kt, scb);
            }
#pragma unroll
            for (int nt = 0; nt < SN; nt++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++)
                    st_bf16x2(Sb + (16 * smt + g + 8 * hh) * LDV + scb + 8 * nt + 2 * t, sacc[nt][2 * hh],
                              sacc[nt][2 * hh + 1]);
        }
    }
    cp_async_wait_all();
    if (a.dh0 && owner) {
#pragma unroll
        for (int nt = 0; nt < SN; nt++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int r = 16 * smt + g + 8 * hh, col = scb + 8 * nt + 2 * t;
                float2 *p = reinterpret_cast<float2 *>(a.dh0 + bh * KV + (int64_t)r * a.V + c0 + col);
                float2 s = *p;
                s.x += sacc[nt][2 * hh], s.y += sacc[nt][2 * hh + 1];
                *p = s;
            }
    }
}

// The same scan on wgmma, four 64-column tiles per block (gdn_wdscan.cuh).
#include "kernels/cuda/gdn_wdscan.cuh"

// ================================================================ kernel 4: per-chunk gradients
struct gdnb_chunk_args {
    const gdnf_bf16 *q, *k, *v, *A, *P;  // A unscaled (I + L)⁻¹
    const float4 *rows, *rx;             // {scale rq e^γ, rk e^γ, rk d, el}, {rq, rk, γ, β}
    const float *dout;
    const gdnf_bf16 *hs, *dhs;  // chunk start states, chunk end-state gradients (BH, NT, KD, V)
    float *dq, *dk, *dv, *dg, *dbeta;
    int T, H, V, NT;
    float scale;
    int l2;
    int write;  // 1: dq, dk, dv, dg, dβ are written (=), their old values never read (the
                // kernel's WRITE instantiation: a runtime flag cost registers and spills)
};

template <int KD, bool WG, bool DBR>
struct chunk_layout {
    // WG: every bf16 tile in gdnf_eo's core-matrix tiling without padding (wgmma reads it
    // through descriptors, ldmatrix row by row); else row-major, 8 elements of padding per row.
    static constexpr int LDK = WG ? KD : KD + 8, LDT = WG ? GDNB_TV : GDNB_TV + 8, LDA = WG ? GDNF_C : GDNF_LDA;
    static constexpr int LDS = KD + 4;
    static constexpr size_t ks = (size_t)GDNF_C * LDK * 2, mm = (size_t)GDNF_C * LDA * 2;
    static constexpr size_t o_qs = ks, o_as = 2 * ks, o_ps = o_as + mm, o_rs = o_ps + mm, o_rx = o_rs + 1024;
    static constexpr size_t o_misc = o_rx + 1024;  // floats: eg, dd, red[5][2][64], tot[5][64], blk[256]
    static constexpr size_t misc = (size_t)(2 * 64 + 5 * 2 * 64 + 5 * 64 + 256 + 64) * 4;
    // per V tile
    static constexpr size_t st = (size_t)KD * LDT * 2, tt = (size_t)GDNF_C * LDT * 2;
    static constexpr size_t o_s0 = o_misc + misc, o_ds = o_s0 + st, o_do = o_ds + st, o_vt = o_do + tt;
    static constexpr size_t o_zs = o_vt + tt, o_vn = o_zs + tt, o_dvn = o_vn + tt, o_w1 = o_dvn + tt, o_w2 = o_w1 + tt;
    // fp32 (64, LDV) copy of the caller's dv tile, fetched with the tile so that the += is a
    // plain store (a read-modify-write per element stalled every warp on global latency).
    static constexpr int LDV = GDNB_TV + 8;
    static constexpr size_t o_dvs = o_w2 + tt, o_dof = o_dvs + (size_t)GDNF_C * LDV * 4;
    // fp32 (64, 64) staging of the next tile's dO, fetched by cp.async one tile ahead: each
    // thread fetches and later converts the same float4 pieces, so no barrier sits between.
    static constexpr size_t end_dof = o_dof + (size_t)GDNF_C * GDNB_TV * 4;
    // DB (requested by DBR, and KD <= 96, where it fits): a second S0, dS1 and V tile, so that
    // tile c+1's are fetched while tile c computes (tile c in the first set when c is even). At
    // KD = 128 the second set would need 243 KB; there each tile's are fetched at its start.
    // The second set mirrors the first from o_s0 (a dO-sized gap included), so one offset
    // selects the set (three selected pointers cost registers: spills in the write form).
    static constexpr bool DB = DBR && KD <= 96;
    static constexpr size_t set_off = end_dof - o_s0;
    static constexpr size_t total_tiles = DB ? end_dof + (o_vt + tt - o_s0) : end_dof;
    // after the V loop (reusing the tile region from o_s0): bf16 (64, 72) dAs, T1, G1, G2, G3;
    // fp32 (64, 65) Mg, dKK; then fp32 (64, KD + 4) staging of dQ̂ and dK̂.
    static constexpr size_t o_das = o_s0, o_t1 = o_das + mm, o_g1 = o_t1 + mm, o_g2 = o_g1 + mm, o_g3 = o_g2 + mm;
    static constexpr size_t o_mg = o_g3 + mm, o_dkk = o_mg + (size_t)64 * 65 * 4, end_m = o_dkk + (size_t)64 * 65 * 4;
    static constexpr size_t o_sq = o_s0, o_sk = o_sq + (size_t)GDNF_C * LDS * 4, end_s = o_sk + (size_t)GDNF_C * LDS * 4;
    static constexpr size_t total = total_tiles > end_m ? (total_tiles > end_s ? total_tiles : end_s)
                                                        : (end_m > end_s ? end_m : end_s);
};

template <int KD, bool WRITE, bool WG, bool DBR>
__global__ void __launch_bounds__(GDNB_THREADS, 1) gdnb_chunk_kernel(const gdnb_chunk_args a) {
    using Lay = chunk_layout<KD, WG, DBR>;
    constexpr int LDK = Lay::LDK, LDT = Lay::LDT, LDA = Lay::LDA, LDS = Lay::LDS;
    constexpr int NQ = KD / 16;  // n-tiles of a warp's (16, KD/2) slice of dQ̂, dK̂
    static_assert(KD == 64 || KD == 96 || KD == 128, "KD must be 64, 96 or 128");
    unsigned char *sm = GDNF_SMEM;
    gdnf_bf16 *Ks = reinterpret_cast<gdnf_bf16 *>(sm), *Qs = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_qs);
    gdnf_bf16 *As = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_as), *Ps = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_ps);
    float4 *Rs = reinterpret_cast<float4 *>(sm + Lay::o_rs), *Rx = reinterpret_cast<float4 *>(sm + Lay::o_rx);
    float *eg = reinterpret_cast<float *>(sm + Lay::o_misc), *dd = eg + 64, *red = dd + 64;  // red[5][2][64]
    float *tot = red + 5 * 2 * 64, *blk = tot + 5 * 64, *dgam = blk + 256;
    gdnf_bf16 *dOt = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_do);
    gdnf_bf16 *Zs = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_zs), *Vns = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_vn);
    gdnf_bf16 *dVns = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_dvn), *W1 = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_w1);
    gdnf_bf16 *W2 = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_w2);
    float *dVs = reinterpret_cast<float *>(sm + Lay::o_dvs), *dOf = reinterpret_cast<float *>(sm + Lay::o_dof);
    constexpr int LDV = Lay::LDV;
    auto eo = [](int r, int c, int ld) { return gdnf_eo<WG>(r, c, ld); };

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int64_t ci = blockIdx.x;  // b·h·NT + n
    const int64_t bh = ci / a.NT;
    const int n = (int)(ci % a.NT), b = (int)(bh / a.H), h = (int)(bh % a.H);
    const int t0 = n * GDNF_C, nr = min(GDNF_C, a.T - t0);
    const int64_t row0 = (int64_t)b * a.T + t0, KV = (int64_t)KD * a.V;
    const int rt = warp & 3, ch = warp >> 2;
    const bool lowerw = 32 * ch <= 16 * rt + 15;  // the warp's (16, 32) block of a (64, 64) has j <= i somewhere
    // This thread's fragment pair (row 16 rt + g + 8 hh, columns 32 ch + 8 nt + 2t, +1) in a
    // (64, 64) tile: one base and compile-time steps (per-element tiled offsets cost ALU work).
    static_assert(LDT == LDA, "the (64, 64) tiles share one layout");
    const int fbase = WG ? (16 * rt + 4 * ch) * 64 + 8 * g + 2 * t : (16 * rt + g) * LDT + 32 * ch + 2 * t;
    auto fo = [fbase](int hh, int nt) { return fbase + (WG ? 512 * hh + 64 * nt : 8 * LDT * hh + 8 * nt); };

    // This thread's float4 pieces u of the dO tile at columns c → dOf (zeros past T and V). The
    // fp32 dO was read into registers at each tile's start, and the conversion's wait on those
    // global loads was the kernel's largest stall (ncu source view, session 16).
    constexpr int NDO = GDNF_C * (GDNB_TV / 4) / GDNB_THREADS;
    static_assert(NDO * GDNB_THREADS == GDNF_C * (GDNB_TV / 4), "dO tile split");
    // (the row addresses are recomputed per call from an opaque thread index: hoisted out of the
    // tile loop they held eight registers and added spills)
    auto dof_fetch = [&](int c) {
        const int me = wg_opaque_i(tid);
#pragma unroll
        for (int u = 0; u < NDO; u++) {
            const int e = me + u * GDNB_THREADS, i = e / (GDNB_TV / 4), cc = (e % (GDNB_TV / 4)) * 4;
            const bool ok = i < nr && c + cc < a.V;
            cp_async16(dOf + 4 * e, a.dout + (ok ? ((row0 + i) * a.H + h) * (int64_t)a.V + c + cc : 0), ok);
        }
    };
    // Tile c's S0, dS1 (bf16 from stages 2, 3) and V into tile set b (columns past V zero).
    auto tile_fetch = [&](int c, int b) {
        unsigned char *base = sm + (b ? Lay::set_off : 0);
        gdnf_bf16 *s0 = reinterpret_cast<gdnf_bf16 *>(base + Lay::o_s0);
        gdnf_bf16 *ds = reinterpret_cast<gdnf_bf16 *>(base + Lay::o_ds), *vt = reinterpret_cast<gdnf_bf16 *>(base + Lay::o_vt);
        const gdnf_bf16 *hsrc = a.hs + ci * KV + c, *dsrc = a.dhs + ci * KV + c;
        for (int e = tid; e < KD * (GDNB_TV / 8); e += GDNB_THREADS) {
            int r, cc;
            gdnf_piece<WG, GDNB_TV>(e, r, cc);
            const bool ok = c + cc < a.V;
            const int64_t off = ok ? (int64_t)r * a.V + cc : 0;
            cp_async16(s0 + eo(r, cc, LDT), hsrc + off, ok);
            cp_async16(ds + eo(r, cc, LDT), dsrc + off, ok);
        }
        for (int e = tid; e < GDNF_C * (GDNB_TV / 8); e += GDNB_THREADS) {
            int i, cc;
            gdnf_piece<WG, GDNB_TV>(e, i, cc);
            const bool ok = i < nr && c + cc < a.V;
            const int64_t off = ok ? ((row0 + i) * a.H + h) * (int64_t)a.V + c + cc : 0;
            cp_async16(vt + eo(i, cc, LDT), a.v + off, ok);
        }
    };
    // The caller's fp32 dv tile at columns c (adding form).
    auto dvs_fetch = [&](int c) {
        for (int e = tid; e < GDNF_C * (GDNB_TV / 2); e += GDNB_THREADS) {
            const int i = e / (GDNB_TV / 2), cc = (e % (GDNB_TV / 2)) * 2;
            const bool ok = i < nr && c + cc < a.V;
            const int64_t off = ok ? ((row0 + i) * a.H + h) * (int64_t)a.V + c + cc : 0;
            cp_async8(dVs + i * LDV + cc, a.dv + off, ok);
        }
    };
    gdnf_load_kq<KD, GDNB_THREADS, WG>(Ks, Qs, LDK, a.k, a.q, row0, nr, a.H, h);
    gdnf_load_ap<GDNB_THREADS, WG>(As, Ps, a.A, a.P, ci);
    dof_fetch(0);
    if constexpr (Lay::DB) tile_fetch(0, 0);
    if (tid < GDNF_C) {
        cp_async16(Rs + tid, a.rows + ci * GDNF_C + tid, true);
        cp_async16(Rx + tid, a.rx + ci * GDNF_C + tid, true);
    }
    // A barrier after shared-memory writes that wgmma reads next (the generic → async proxy
    // fence in every writing thread first).
    auto sync_tiles = [] {
        if constexpr (WG) wg_fence_proxy();
        __syncthreads();
    };
    cp_async_commit();
    cp_async_wait_all();
    sync_tiles();
    if (tid < GDNF_C) {
        const float gl = Rx[GDNF_C - 1].z;  // rows past T carry γ_last
        eg[tid] = expf(Rx[tid].z), dd[tid] = expf(gl - Rx[tid].z);
    }

    // Accumulators over the V tiles.
    float dA[4][4], dP[4][4], dQ[NQ][4], dK[NQ][4];
    zero_acc<4>(dA);
    zero_acc<4>(dP);
    zero_acc<NQ>(dQ);
    zero_acc<NQ>(dK);
    float rsv[2] = {0.f, 0.f}, rsb[2] = {0.f, 0.f}, rsx[2] = {0.f, 0.f};  // rows g, g+8 of tile rt
    float sdot = 0.f;                                                     // ⟨S0, dS1⟩ partial

    for (int c0 = 0; c0 < a.V; c0 += GDNB_TV) {
        const int tb = Lay::DB ? (c0 / GDNB_TV) & 1 : 0;  // this tile's set
        unsigned char *tbase = sm + (tb ? Lay::set_off : 0);
        gdnf_bf16 *S0t = reinterpret_cast<gdnf_bf16 *>(tbase + Lay::o_s0);
        gdnf_bf16 *dSt = reinterpret_cast<gdnf_bf16 *>(tbase + Lay::o_ds), *Vt = reinterpret_cast<gdnf_bf16 *>(tbase + Lay::o_vt);
        if constexpr (Lay::DB) {
            cp_async_wait_all();  // this tile's S0, dS1, V and this thread's dO pieces (all fetched a tile ahead)
            __syncthreads();      // everyone's pieces landed; the previous tile's readers are done
            if (!WRITE && a.dv) dvs_fetch(c0);  // read at the tile's dv stores (waited for there)
            cp_async_commit();
        } else {
            __syncthreads();  // the previous tile's readers are done
            tile_fetch(c0, 0);
            if (!WRITE && a.dv) dvs_fetch(c0);
            cp_async_commit();
            cp_async_wait_all();  // with this thread's dO pieces of the tile (fetched a tile ahead)
        }
        {
            // dO → bf16, the pieces this thread fetched; then the next tile's into the same slots.
#pragma unroll
            for (int u = 0; u < NDO; u++) {
                const int e = tid + u * GDNB_THREADS, i = e / (GDNB_TV / 4), c = (e % (GDNB_TV / 4)) * 4;
                const float4 xo = *reinterpret_cast<const float4 *>(dOf + 4 * e);
                st_bf16x2(dOt + eo(i, c, LDT), xo.x, xo.y);
                st_bf16x2(dOt + eo(i, c + 2, LDT), xo.z, xo.w);
            }
            if (c0 + GDNB_TV < a.V) {
                dof_fetch(c0 + GDNB_TV);
                if constexpr (Lay::DB) tile_fetch(c0 + GDNB_TV, tb ^ 1);  // its readers were done at the barrier above
                cp_async_commit();
            }
        }
        sync_tiles();
        for (int e = tid; e < KD * (GDNB_TV / 2); e += GDNB_THREADS) {  // ⟨S0, dS1⟩ (zero-filled past V)
            const int r = e / (GDNB_TV / 2), c = (e % (GDNB_TV / 2)) * 2;
            const float2 x = ld_bf16x2(S0t + eo(r, c, LDT)), y = ld_bf16x2(dSt + eo(r, c, LDT));
            sdot += x.x * y.x + x.y * y.y;
        }
        // ---- K S0 and K dS1 (warp: rows 16 rt, tile columns 32 ch ..)
        // (WG: warpgroup ch, m64n32 over its column half, S0 and dS1 MN-major)
        float ks[4][4], kd[4][4];
        zero_acc<4>(ks);
        zero_acc<4>(kd);
        if constexpr (WG) {
            const gdnf_bf16 *kb = wg_opaque(Ks), *sb = wg_opaque(S0t) + eo(0, 32 * ch, LDT);
            const gdnf_bf16 *db = wg_opaque(dSt) + eo(0, 32 * ch, LDT);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < KD / 16; kk++) {
                wg_mma<32, 0, 1>(cwg_acc<16>(ks), cwg_km<KD>(kb, kk), cwg_mn<GDNB_TV>(sb, kk), 1);
                wg_mma<32, 0, 1>(cwg_acc<16>(kd), cwg_km<KD>(kb, kk), cwg_mn<GDNB_TV>(db, kk), 1);
            }
            wg_commit();
            wg_wait_all();
        } else {
#pragma unroll
            for (int kk = 0; kk < KD / 16; kk++) {
                uint32_t af[4];
                lda_rm<WG>(af, Ks, LDK, 16 * rt, 16 * kk);
                mma_row<2, false, WG>(ks, af, S0t, LDT, 16 * kk, 32 * ch);
                mma_row<2, false, WG>(kd, af, dSt, LDT, 16 * kk, 32 * ch);
            }
        }
        // Z = diag(β) X', X' = V − rk e^γ (K S0)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int i = 16 * rt + g + 8 * hh;
                const float ry = Rs[i].y, be = Rx[i].w;
                const float2 vv = ld_bf16x2(Vt + fo(hh, nt));
                st_bf16x2(Zs + fo(hh, nt), be * (vv.x - ry * ks[nt][2 * hh]), be * (vv.y - ry * ks[nt][2 * hh + 1]));
            }
        sync_tiles();
        // ---- Vn = A Z (lower blocks), W2 = diag(d) Vn;  dVn = Pᵀ dO + diag(rk d) K dS1
        {
            float vn[4][4], dvn[4][4];
            zero_acc<4>(vn);
            zero_acc<4>(dvn);
            if constexpr (WG) {  // whole products: A, P hold zeros above the diagonal
                const gdnf_bf16 *ab = wg_opaque(As), *zb = wg_opaque(Zs) + eo(0, 32 * ch, LDT);
                const gdnf_bf16 *pb = wg_opaque(Ps), *ob = wg_opaque(dOt) + eo(0, 32 * ch, LDT);
                wg_fence();
#pragma unroll
                for (int kt = 0; kt < 4; kt++) {
                    wg_mma<32, 0, 1>(cwg_acc<16>(vn), cwg_km<GDNF_C>(ab, kt), cwg_mn<GDNB_TV>(zb, kt), 1);
                    wg_mma<32, 1, 1>(cwg_acc<16>(dvn), cwg_mn<GDNF_C>(pb, kt), cwg_mn<GDNB_TV>(ob, kt), 1);
                }
                wg_commit();
                wg_wait_all();
            } else {
#pragma unroll
                for (int kt = 0; kt < 4; kt++) {
                    uint32_t af[4];
                    if (kt <= rt) {
                        lda_rm<WG>(af, As, LDA, 16 * rt, 16 * kt);
                        mma_row<2, false, WG>(vn, af, Zs, LDT, 16 * kt, 32 * ch);
                    }
                    if (kt >= rt) {
                        lda_t<WG>(af, Ps, LDA, 16 * rt, 16 * kt);
                        mma_row<2, false, WG>(dvn, af, dOt, LDT, 16 * kt, 32 * ch);
                    }
                }
            }
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const int i = 16 * rt + g + 8 * hh;
                    const float rz = Rs[i].z, di = dd[i];
                    const float v0 = vn[nt][2 * hh], v1 = vn[nt][2 * hh + 1];
                    rsv[hh] += kd[nt][2 * hh] * v0 + kd[nt][2 * hh + 1] * v1;
                    st_bf16x2(Vns + fo(hh, nt), v0, v1);
                    st_bf16x2(W2 + fo(hh, nt), di * v0, di * v1);
                    st_bf16x2(dVns + fo(hh, nt), dvn[nt][2 * hh] + rz * kd[nt][2 * hh],
                              dvn[nt][2 * hh + 1] + rz * kd[nt][2 * hh + 1]);
                }
        }
        // DB, adding form: the dv tile's group (the one before the next tile's prefetch, or the
        // last if there is none) landed for this thread; the barrier makes every thread's visible.
        if (Lay::DB && !WRITE && a.dv) {
            if (c0 + GDNB_TV < a.V)
                cp_async_wait_but_last();
            else
                cp_async_wait_all();
        }
        sync_tiles();
        // ---- dZ = Aᵀ dVn;  dV += β dZ;  W1 = −e^γ β dZ;  dβ, dγ row parts
        {
            float dz[4][4];
            zero_acc<4>(dz);
            if constexpr (WG) {
                const gdnf_bf16 *ab = wg_opaque(As), *vb = wg_opaque(dVns) + eo(0, 32 * ch, LDT);
                wg_fence();
#pragma unroll
                for (int kt = 0; kt < 4; kt++)
                    wg_mma<32, 1, 1>(cwg_acc<16>(dz), cwg_mn<GDNF_C>(ab, kt), cwg_mn<GDNB_TV>(vb, kt), 1);
                wg_commit();
                wg_wait_all();
            } else {
#pragma unroll
                for (int kt = 0; kt < 4; kt++)
                    if (kt >= rt) {
                        uint32_t af[4];
                        lda_t<WG>(af, As, LDA, 16 * rt, 16 * kt);
                        mma_row<2, false, WG>(dz, af, dVns, LDT, 16 * kt, 32 * ch);
                    }
            }
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const int i = 16 * rt + g + 8 * hh, col = 32 * ch + 8 * nt + 2 * t;
                    const float ry = Rs[i].y, be = Rx[i].w, z0 = dz[nt][2 * hh], z1 = dz[nt][2 * hh + 1];
                    const float2 vv = ld_bf16x2(Vt + fo(hh, nt));
                    const float k0 = ks[nt][2 * hh], k1 = ks[nt][2 * hh + 1];
                    rsb[hh] += z0 * (vv.x - ry * k0) + z1 * (vv.y - ry * k1);
                    rsx[hh] += z0 * k0 + z1 * k1;
                    const float w = -eg[i] * be;
                    st_bf16x2(W1 + fo(hh, nt), w * z0, w * z1);
                    if (a.dv && i < nr && c0 + col < a.V) {
                        const float2 s = WRITE ? make_float2(0.f, 0.f)
                                               : *reinterpret_cast<const float2 *>(dVs + i * LDV + col);
                        *reinterpret_cast<float2 *>(a.dv + ((row0 + i) * a.H + h) * (int64_t)a.V + c0 + col) =
                            make_float2(s.x + be * z0, s.y + be * z1);
                    }
                }
        }
        sync_tiles();
        // ---- dA += dVn Zᵀ, dP += dO Vnᵀ (j <= i blocks); dQ̂ += dO S0ᵀ; dK̂ += W1 S0ᵀ + W2 dS1ᵀ
        // (WG: whole blocks, the tail masks dA, dP; every operand K-major over the tile columns)
        if constexpr (WG) {
            const gdnf_bf16 *vb = wg_opaque(dVns), *ob = wg_opaque(dOt), *w1 = wg_opaque(W1), *w2 = wg_opaque(W2);
            const gdnf_bf16 *zb = wg_opaque(Zs) + eo(32 * ch, 0, LDT), *nb = wg_opaque(Vns) + eo(32 * ch, 0, LDT);
            const gdnf_bf16 *sb = wg_opaque(S0t) + eo(ch * (KD / 2), 0, LDT);
            const gdnf_bf16 *db = wg_opaque(dSt) + eo(ch * (KD / 2), 0, LDT);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < GDNB_TV / 16; kk++) {
                wg_mma<32, 0, 0>(cwg_acc<16>(dA), cwg_km<GDNB_TV>(vb, kk), cwg_km<GDNB_TV>(zb, kk), 1);
                wg_mma<32, 0, 0>(cwg_acc<16>(dP), cwg_km<GDNB_TV>(ob, kk), cwg_km<GDNB_TV>(nb, kk), 1);
                wg_mma<KD / 2, 0, 0>(cwg_acc<KD / 4>(dQ), cwg_km<GDNB_TV>(ob, kk), cwg_km<GDNB_TV>(sb, kk), 1);
                wg_mma<KD / 2, 0, 0>(cwg_acc<KD / 4>(dK), cwg_km<GDNB_TV>(w1, kk), cwg_km<GDNB_TV>(sb, kk), 1);
                wg_mma<KD / 2, 0, 0>(cwg_acc<KD / 4>(dK), cwg_km<GDNB_TV>(w2, kk), cwg_km<GDNB_TV>(db, kk), 1);
            }
            wg_commit();
            wg_wait_all();
        } else {
#pragma unroll
            for (int kk = 0; kk < GDNB_TV / 16; kk++) {
                uint32_t af[4];
                if (lowerw) {
                    lda_rm<WG>(af, dVns, LDT, 16 * rt, 16 * kk);
                    mma_row<2, true, WG>(dA, af, Zs, LDT, 16 * kk, 32 * ch);
                }
                lda_rm<WG>(af, dOt, LDT, 16 * rt, 16 * kk);
                if (lowerw) mma_row<2, true, WG>(dP, af, Vns, LDT, 16 * kk, 32 * ch);
                mma_row<NQ / 2, true, WG>(dQ, af, S0t, LDT, 16 * kk, ch * (KD / 2));
                lda_rm<WG>(af, W1, LDT, 16 * rt, 16 * kk);
                mma_row<NQ / 2, true, WG>(dK, af, S0t, LDT, 16 * kk, ch * (KD / 2));
                lda_rm<WG>(af, W2, LDT, 16 * rt, 16 * kk);
                mma_row<NQ / 2, true, WG>(dK, af, dSt, LDT, 16 * kk, ch * (KD / 2));
            }
        }
    }
    __syncthreads();  // the tile region becomes the post-loop buffers

    gdnf_bf16 *dAs = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_das), *T1 = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_t1);
    gdnf_bf16 *G1 = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_g1), *G2 = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_g2);
    gdnf_bf16 *G3 = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_g3);
    float *Mg = reinterpret_cast<float *>(sm + Lay::o_mg), *dKK = reinterpret_cast<float *>(sm + Lay::o_dkk);

    // dQ̂ state part: rows times scale e^γ; its dγ share Σ_k dQ̂_ik q̂_ik.
    float rsq[2] = {0.f, 0.f};
#pragma unroll
    for (int nt = 0; nt < NQ; nt++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const int i = 16 * rt + g + 8 * hh, col = ch * (KD / 2) + 8 * nt + 2 * t;
            const float s = a.scale * eg[i];
            dQ[nt][2 * hh] *= s, dQ[nt][2 * hh + 1] *= s;
            const float2 qq = ld_bf16x2(Qs + eo(i, col, LDK));
            rsq[hh] += Rx[i].x * (dQ[nt][2 * hh] * qq.x + dQ[nt][2 * hh + 1] * qq.y);
        }
    // Row partials → red[quantity][ch][row] (quantities: 0 sv, 1 sb, 2 sx, 3 sq, 4 dβ from L).
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const float v0 = quad_sum(rsv[hh]), v1 = quad_sum(rsb[hh]), v2 = quad_sum(rsx[hh]), v3 = quad_sum(rsq[hh]);
        if (t == 0) {
            const int i = 16 * rt + g + 8 * hh;
            red[(0 * 2 + ch) * 64 + i] = v0, red[(1 * 2 + ch) * 64 + i] = v1;
            red[(2 * 2 + ch) * 64 + i] = v2, red[(3 * 2 + ch) * 64 + i] = v3;
        }
    }
    sdot = gdnf_warp_sum(sdot);  // ⟨S0, dS1⟩: warp sums, then 8 values in warp order
    if (lane == 0) blk[warp] = sdot;

    // dP → Mg (dP ⊙ P), G2 = dQK ⊙ rq_i, G3 = dQK ⊙ rk_j with dQK = scale E ⊙ dP (j <= i);
    // dA → dAs (j < i). KK = K Kᵀ for the dL step (same fragment layout).
    float kkf[4][4];
    zero_acc<4>(kkf);
    if (lowerw) {
#pragma unroll
        for (int kk = 0; kk < KD / 16; kk++) {
            uint32_t af[4];
            lda_rm<WG>(af, Ks, LDK, 16 * rt, 16 * kk);
            mma_row<2, true, WG>(kkf, af, Ks, LDK, 16 * kk, 32 * ch);
        }
    }
#pragma unroll
    for (int nt = 0; nt < 4; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int i = 16 * rt + g + 8 * (e >> 1), j = 32 * ch + 8 * nt + 2 * t + (e & 1);
            float mg = 0.f, g2 = 0.f, g3 = 0.f, da = 0.f;
            if (j <= i) {
                const float E = expf(Rx[i].z - Rx[j].z), p = bf2f(Ps[fo(e >> 1, nt) + (e & 1)]);
                mg = dP[nt][e] * p;
                const float dqk = a.scale * E * dP[nt][e];
                g2 = dqk * Rx[i].x, g3 = dqk * Rx[j].y;
                if (j < i) da = dA[nt][e];
            }
            Mg[i * 65 + j] = mg;
            const int fe = fo(e >> 1, nt) + (e & 1);
            G2[fe] = __float2bfloat16_rn(g2);
            G3[fe] = __float2bfloat16_rn(g3);
            dAs[fe] = __float2bfloat16_rn(da);
        }
    __syncthreads();
    // T1 = dA Aᵀ (full)
    {
        float t1[4][4];
        zero_acc<4>(t1);
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t af[4];
            lda_rm<WG>(af, dAs, LDA, 16 * rt, 16 * kk);
            mma_row<2, true, WG>(t1, af, As, LDA, 16 * kk, 32 * ch);
        }
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++)
                st_bf16x2(T1 + fo(hh, nt), t1[nt][2 * hh],
                          t1[nt][2 * hh + 1]);
    }
    if (tid < 64) {  // row totals of the partials so far, fixed order
        for (int qn = 0; qn < 4; qn++) tot[qn * 64 + tid] = red[(qn * 2 + 0) * 64 + tid] + red[(qn * 2 + 1) * 64 + tid];
    }
    __syncthreads();
    // dL = −Aᵀ T1 (j < i): dβ_i += Σ_j dL M, Mg += β_i dL M, dKK = β_i E dL
    {
        float dl[4][4];
        zero_acc<4>(dl);
        if (lowerw) {
#pragma unroll
            for (int kt = 0; kt < 4; kt++)
                if (kt >= rt) {
                    uint32_t af[4];
                    lda_t<WG>(af, As, LDA, 16 * rt, 16 * kt);
                    mma_row<2, false, WG>(dl, af, T1, LDA, 16 * kt, 32 * ch);
                }
        }
        float rdb[2] = {0.f, 0.f};
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int i = 16 * rt + g + 8 * (e >> 1), j = 32 * ch + 8 * nt + 2 * t + (e & 1);
                float dkk = 0.f;
                if (j < i) {
                    const float E = expf(Rx[i].z - Rx[j].z), x = -dl[nt][e];
                    const float M = Rx[i].y * Rx[j].y * kkf[nt][e] * E, be = Rx[i].w;
                    rdb[e >> 1] += x * M;
                    Mg[i * 65 + j] += be * x * M;
                    dkk = be * E * x;
                }
                dKK[i * 65 + j] = dkk;
            }
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const float v = quad_sum(rdb[hh]);
            if (t == 0) red[(4 * 2 + ch) * 64 + 16 * rt + g + 8 * hh] = v;
        }
    }
    __syncthreads();
    // G1 = (dKK + dKKᵀ) ⊙ rk_j; row and column sums of Mg; block sum of ⟨S0, dS1⟩.
    for (int e = tid; e < 64 * 64; e += GDNB_THREADS) {
        const int i = e >> 6, j = e & 63;
        G1[eo(i, j, LDA)] = __float2bfloat16_rn((dKK[i * 65 + j] + dKK[j * 65 + i]) * Rx[j].y);
    }
    if (tid < 64) {
        float r = 0.f;
        for (int j = 0; j < 64; j++) r += Mg[tid * 65 + j];
        tot[4 * 64 + tid] = r;  // row sums (the L-part of dβ is added below)
    } else if (tid < 128) {
        const int j = tid - 64;
        float c = 0.f;
        for (int i = 0; i < 64; i++) c += Mg[i * 65 + j];
        dgam[j] = -c;
    } else if (tid == 128) {
        float s = 0.f;
        for (int x = 0; x < GDNB_THREADS / 32; x++) s += blk[x];
        blk[0] = s;  // blk[1..] are read by nobody after this
    }
    __syncthreads();
    // dQ̂ += G3 K;  dK̂ += G1 K + G2ᵀ Q
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        uint32_t af[4];
        lda_rm<WG>(af, G3, LDA, 16 * rt, 16 * kk);
        mma_row<NQ / 2, false, WG>(dQ, af, Ks, LDK, 16 * kk, ch * (KD / 2));
        lda_rm<WG>(af, G1, LDA, 16 * rt, 16 * kk);
        mma_row<NQ / 2, false, WG>(dK, af, Ks, LDK, 16 * kk, ch * (KD / 2));
        lda_t<WG>(af, G2, LDA, 16 * rt, 16 * kk);
        mma_row<NQ / 2, false, WG>(dK, af, Qs, LDK, 16 * kk, ch * (KD / 2));
    }
    // dγ per row and dg = its reverse cumsum, in parallel: warps 0 and 1 hold rows
    // i = 32w + 31 − lane (reversed, so an inclusive shfl_up scan over lanes is the suffix sum
    // over rows), each warp's total crosses through shared memory. Fixed order throughout
    // (deterministic). One thread walking the 64 rows with a global += each stalled the block
    // on 64 dependent round trips.
    // dγ_last = e^{γ_last} ⟨S0, dS1⟩ + Σ_i d_i (K̂ dS1)_i·Vn_i (= ⟨S1, dS1⟩, but this form
    // shares its Vn, K dS1 with the row terms below, so their large parts cancel exactly:
    // ⟨ht, dht⟩ in fp32 from the forward's ht measured 2–10× worse in dg). It is in every
    // suffix sum, since it belongs to the last row.
    float suf = 0.f;
    if (tid < 64) {
        const int i = 32 * warp + 31 - lane;
        float dgi = 0.f, xl = 0.f;
        if (i < nr) {
            dgi = tot[3 * 64 + i] - Rs[i].y * Rx[i].w * tot[2 * 64 + i] - Rs[i].z * tot[0 * 64 + i] + tot[4 * 64 + i] +
                  dgam[i];
            xl = Rs[i].z * tot[0 * 64 + i];
        }
        suf = dgi;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float y = __shfl_up_sync(0xffffffffu, suf, o);
            if (lane >= o) suf += y;
        }
        xl = gdnf_warp_sum(xl);
        if (lane == 31) red[warp] = suf, red[2 + warp] = xl;  // red is dead: its dβ part was read above
    }
    if (a.dbeta && tid < nr) {
        float *dst = a.dbeta + (row0 + tid) * a.H + h;
        *dst = (WRITE ? 0.f : *dst) + tot[1 * 64 + tid] + red[(4 * 2 + 0) * 64 + tid] + red[(4 * 2 + 1) * 64 + tid];
    }
    __syncthreads();
    if (a.dg && tid < 64) {
        const int i = 32 * warp + 31 - lane;
        if (i < nr) {
            const float dgl = blk[0] * Rs[0].w + (red[2] + red[3]);
            float *dst = a.dg + (row0 + i) * a.H + h;
            *dst = (WRITE ? 0.f : *dst) + suf + (warp == 0 ? red[1] : 0.f) + dgl;
        }
    }
    __syncthreads();  // G*, Mg, dKK, tot are dead: stage dQ̂, dK̂
    float *Sq = reinterpret_cast<float *>(sm + Lay::o_sq), *Sk = reinterpret_cast<float *>(sm + Lay::o_sk);
#pragma unroll
    for (int nt = 0; nt < NQ; nt++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const int i = 16 * rt + g + 8 * hh, col = ch * (KD / 2) + 8 * nt + 2 * t;
            *reinterpret_cast<float2 *>(Sq + i * LDS + col) = make_float2(dQ[nt][2 * hh], dQ[nt][2 * hh + 1]);
            *reinterpret_cast<float2 *>(Sk + i * LDS + col) = make_float2(dK[nt][2 * hh], dK[nt][2 * hh + 1]);
        }
    __syncthreads();
    // L2-norm backward per row (warp per row): dx += r dx̂ − r³ (dx̂·x) x, or dx += dx̂. The
    // caller's values for all of a warp's rows are loaded before any is used (one latency,
    // not one per row).
    constexpr int RW = GDNF_C / (GDNB_THREADS / 32), CL = KD / 32;
#pragma unroll
    for (int which = 0; which < 2; which++) {
        float *dst = which == 0 ? a.dq : a.dk;
        if (!dst) continue;
        const float *srcb = which == 0 ? Sq : Sk;
        const gdnf_bf16 *xb = which == 0 ? Qs : Ks;
        float old[RW][CL];
#pragma unroll
        for (int j = 0; j < RW; j++) {
            const int i = warp + j * (GDNB_THREADS / 32);
            if (i < nr) {
                const float *out = dst + ((row0 + i) * a.H + h) * KD;
#pragma unroll
                for (int u = 0; u < CL; u++) old[j][u] = WRITE ? 0.f : out[lane + 32 * u];
            }
        }
#pragma unroll
        for (int j = 0; j < RW; j++) {
            const int i = warp + j * (GDNB_THREADS / 32);
            if (i >= nr) continue;
            const float *src = srcb + i * LDS;
            const float r = which == 0 ? Rx[i].x : Rx[i].y;
            float dot = 0.f;
            if (a.l2) {
#pragma unroll
                for (int u = 0; u < CL; u++) dot += src[lane + 32 * u] * bf2f(xb[eo(i, lane + 32 * u, LDK)]);
                dot = gdnf_warp_sum(dot);
            }
            const float c3 = r * r * r * dot;
            float *out = dst + ((row0 + i) * a.H + h) * KD;
#pragma unroll
            for (int u = 0; u < CL; u++) {
                const int c = lane + 32 * u;
                out[c] = old[j][u] + (a.l2 ? r * src[c] - c3 * bf2f(xb[eo(i, c, LDK)]) : src[c]);
            }
        }
    }
}

// ================================================================ host side
template <int KD, int BV>
static void dscan_launch(const gdnb_dscan_args &a, int64_t grid, cudaStream_t st) {
    const size_t smem = dscan_layout<KD, BV>::total;
    PN_CHECK_CUDA(cudaFuncSetAttribute(gdnb_dscan_kernel<KD, BV>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
#ifndef GDNF_HOST_EMU
    gdnb_dscan_kernel<KD, BV><<<(unsigned)grid, GDNB_THREADS, smem, st>>>(a);
#else
    emu_launch(grid, GDNB_THREADS, smem, [&] { gdnb_dscan_kernel<KD, BV>(a); });
#endif
    PN_CHECK_LAUNCH_ON(st);
}

template <int KD>
static void wdscan_launch(const gdnb_dscan_args &a, int64_t grid, cudaStream_t st) {
    const size_t smem = wdscan_layout<KD>::total;
    PN_CHECK_CUDA(cudaFuncSetAttribute(gdnw_dscan_kernel<KD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
#ifndef GDNF_HOST_EMU
    gdnw_dscan_kernel<KD><<<(unsigned)grid, GDNW_THREADS * GDNWD_NW, smem, st>>>(a);
#else
    emu_launch(grid, GDNW_THREADS * GDNWD_NW, smem, [&] { gdnw_dscan_kernel<KD>(a); });
#endif
    PN_CHECK_LAUNCH_ON(st);
}

// The reverse scan's form: −1 automatic (wgmma where the 64-column tiles come in fours), 0
// mma.sync everywhere (pn_cuda_gdn_fast_bwd_debug_dscan); the last call's form, 4 or 0.
static int g_dscan_form = -1, g_last_dscan = 0;
// Stages 2 and 3 concurrently (the default; pn_cuda_gdn_fast_bwd_debug_overlap).
static int g_overlap = 1;

template <int KD, bool WRITE, bool WG, bool DBR>
static void chunk_launch_as(const gdnb_chunk_args &a, int64_t grid) {
    const size_t smem = chunk_layout<KD, WG, DBR>::total;
    PN_CHECK_CUDA(cudaFuncSetAttribute(gdnb_chunk_kernel<KD, WRITE, WG, DBR>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
#ifndef GDNF_HOST_EMU
    gdnb_chunk_kernel<KD, WRITE, WG, DBR><<<(unsigned)grid, GDNB_THREADS, smem, pn_stream()>>>(a);
#else
    emu_launch(grid, GDNB_THREADS, smem, [&] { gdnb_chunk_kernel<KD, WRITE, WG, DBR>(a); });
#endif
    PN_CHECK_LAUNCH();
}

// The chunk kernel's products on wgmma (1) or mma.sync (0): pn_cuda_gdn_fast_bwd_debug_wgmma.
static int g_chunk_wgmma = 0;
// Its S0, dS1, V tiles double-buffered where KD <= 96 (1, the default) or fetched at each
// tile's start (0): pn_cuda_gdn_fast_bwd_debug_chunk_db.
static int g_chunk_db = 1;

template <int KD, bool DBR>
static void chunk_launch_db(const gdnb_chunk_args &a, int64_t grid) {
    if (g_chunk_wgmma) {
        if (a.write)
            chunk_launch_as<KD, true, true, DBR>(a, grid);
        else
            chunk_launch_as<KD, false, true, DBR>(a, grid);
    } else {
        if (a.write)
            chunk_launch_as<KD, true, false, DBR>(a, grid);
        else
            chunk_launch_as<KD, false, false, DBR>(a, grid);
    }
}

template <int KD>
static void chunk_launch(const gdnb_chunk_args &a, int64_t grid) {
    if constexpr (KD <= 96) {  // KD = 128 has no second tile set (no DBR = true instantiation)
        if (g_chunk_db) {
            chunk_launch_db<KD, true>(a, grid);
            return;
        }
    }
    chunk_launch_db<KD, false>(a, grid);
}

template <int KD, int BV>
static void hs_scan_launch(const gdnf_scan_args &a, int64_t grid) {
    const size_t smem = scan_layout<KD, BV, false>::total;
    PN_CHECK_CUDA(cudaFuncSetAttribute(gdnf_scan_kernel<KD, BV, false, float, true>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
#ifndef GDNF_HOST_EMU
    gdnf_scan_kernel<KD, BV, false, float, true><<<(unsigned)grid, GDNF_SCAN_THREADS, smem, pn_stream()>>>(a);
#else
    emu_launch(grid, GDNF_SCAN_THREADS, smem, [&] { gdnf_scan_kernel<KD, BV, false, float, true>(a); });
#endif
    PN_CHECK_LAUNCH();
}

template <int KD>
static void bwd_fast(int B, int T, int H, int V, float scale, int l2, const gdnf_bf16 *q, const gdnf_bf16 *k,
                     const gdnf_bf16 *v, const float *g, const float *beta, const float *h0, const float *dout,
                     const float *dht, float *dq, float *dk, float *dv, float *dg, float *dbeta, float *dh0,
                     bool write) {
    const int64_t BH = (int64_t)B * H;
    const int NT = (int)pn_ceil_div(T, GDNF_C);
    const int BV = pn_cuda_gdn_fast_pick_bv(V), ntiles = V / BV;
    const int64_t nchunks = BH * NT;
    if (nchunks > 0x7fffffff || BH * ntiles > 0x7fffffff) {
        fprintf(stderr, "postnas: internal error: %s: gated delta rule fast backward: grid too large (B·H = %lld, T = %d)\n",
                __FILE__, (long long)BH, T);
        exit(1);
    }
    const bool per_chunk = dq || dk || dv || dg || dbeta;
    const size_t mm = (size_t)nchunks * GDNF_C * GDNF_C * 2, rr = (size_t)nchunks * GDNF_C * sizeof(float4);
    const size_t hsz = (size_t)nchunks * KD * V * 2;
    gdnf_bf16 *Ap = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, mm);
    gdnf_bf16 *Au = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, mm);
    gdnf_bf16 *P = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, mm);
    float4 *R = (float4 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, rr);
    float4 *Rx = (float4 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, rr);
    gdnf_bf16 *hs = per_chunk ? (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, hsz) : NULL;
    gdnf_bf16 *dhs = per_chunk ? (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, hsz) : NULL;

    // 1. per-chunk A', A, P, rows
    {
        const size_t smem = PREP_SMEM_BYTES;
        PN_CHECK_CUDA(
            cudaFuncSetAttribute(gdnf_prep_kernel<KD, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
#ifndef GDNF_HOST_EMU
        gdnf_prep_kernel<KD, true><<<(unsigned)nchunks, GDNF_PREP_THREADS, smem, pn_stream()>>>(
            q, k, g, beta, Ap, P, R, T, H, NT, scale, l2, Au, Rx);
#else
        emu_launch(nchunks, GDNF_PREP_THREADS, smem,
                   [&] { gdnf_prep_kernel<KD, true>(q, k, g, beta, Ap, P, R, T, H, NT, scale, l2, Au, Rx); });
#endif
        PN_CHECK_LAUNCH();
    }
    // 2 and 3 read only stage 1's outputs and the inputs, so they can run at once: the reverse
    // scan (the longer, 96 blocks of 194 KB at the bench shape, one per SM) on the side stream,
    // queued first and at the higher priority so that it gets the SMs first, the state pass (two
    // 108 KB blocks per SM) on the SMs it leaves; joined before stage 4 (GDN_NOTES §17). The
    // results do not depend on it.
#ifndef GDNF_HOST_EMU
    const bool overlap = g_overlap && per_chunk;
    cudaStream_t dscan_stream = overlap ? pn_cuda_side_fork() : pn_stream();
#else
    cudaStream_t dscan_stream = 0;
#endif
    // 3. reverse state-gradient scan
    if (per_chunk || dh0) {
        gdnb_dscan_args d;
        d.q = q, d.k = k, d.A = Ap, d.P = P, d.rows = R, d.dout = dout, d.dht = dht, d.dh0 = dh0, d.dhs = dhs;
        d.T = T, d.H = H, d.V = V, d.NT = NT, d.ntiles = ntiles;
        g_last_dscan = BV == 64 && ntiles % GDNWD_NW == 0 && g_dscan_form != 0 ? GDNWD_NW : 0;
        if (g_last_dscan)
            wdscan_launch<KD>(d, BH * ntiles / GDNWD_NW, dscan_stream);
        else if (BV == 64)
            dscan_launch<KD, 64>(d, BH * ntiles, dscan_stream);
        else
            dscan_launch<KD, 32>(d, BH * ntiles, dscan_stream);
    }
    // 2. chunk start states
    if (per_chunk) {
        gdnf_scan_args s;
        memset(&s, 0, sizeof s);
        s.q = q, s.k = k, s.v = v, s.A = Ap, s.P = P, s.rows = R, s.o = NULL;
        s.T = T, s.H = H, s.V = V, s.NT = NT;
        s.cps = NT, s.nseg = 1, s.ntiles = ntiles;
        s.s0 = h0, s.s0_nseg = 1, s.s1 = NULL, s.s1_nseg = 1, s.s1_cols = V;
        s.hs = hs;
        if (BV == 64)
            hs_scan_launch<KD, 64>(s, BH * ntiles);
        else
            hs_scan_launch<KD, 32>(s, BH * ntiles);
    }
#ifndef GDNF_HOST_EMU
    if (overlap) pn_cuda_side_join();
#endif
    // 4. per-chunk gradients
    if (per_chunk) {
        gdnb_chunk_args c;
        c.q = q, c.k = k, c.v = v, c.A = Au, c.P = P, c.rows = R, c.rx = Rx, c.dout = dout, c.hs = hs, c.dhs = dhs;
        c.dq = dq, c.dk = dk, c.dv = dv, c.dg = g ? dg : NULL, c.dbeta = dbeta;
        c.T = T, c.H = H, c.V = V, c.NT = NT, c.scale = scale, c.l2 = l2;
        c.write = write;
        chunk_launch<KD>(c, nchunks);
    }
    pn_cuda_free(Ap);
    pn_cuda_free(Au);
    pn_cuda_free(P);
    pn_cuda_free(R);
    pn_cuda_free(Rx);
    pn_cuda_free(hs);
    pn_cuda_free(dhs);
}

static bool gdnb_aligned(const void *p, uintptr_t m) { return ((uintptr_t)p & (m - 1)) == 0; }

extern "C" void pn_cuda_gdn_fast_bwd_debug_wgmma(int on) { g_chunk_wgmma = on != 0; }
extern "C" void pn_cuda_gdn_fast_bwd_debug_overlap(int on) { g_overlap = on != 0; }
extern "C" void pn_cuda_gdn_fast_bwd_debug_chunk_db(int on) { g_chunk_db = on != 0; }
extern "C" void pn_cuda_gdn_fast_bwd_debug_dscan(int form) { g_dscan_form = form == 0 ? 0 : -1; }
extern "C" int pn_cuda_gdn_fast_bwd_debug_last_dscan(void) { return g_last_dscan; }

extern "C" int pn_cuda_gated_delta_bwd_fast_supported(int K, int V) {
    return (K == 64 || K == 96 || K == 128) && V >= 32 && V % 32 == 0;
}

static void bwd_fast_any(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                         const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta, const float *h0,
                         const float *dout, const float *dht, float *dq, float *dk, float *dv, float *dg, float *dbeta,
                         float *dh0, bool write) {
    g_last_dscan = 0;
    const bool aligned = gdnb_aligned(q, 16) && gdnb_aligned(k, 16) && gdnb_aligned(v, 16) &&
                         gdnb_aligned(dout, 16) && gdnb_aligned(h0, 8) && gdnb_aligned(dht, 8) &&
                         gdnb_aligned(dh0, 8) && gdnb_aligned(dv, 8);
    // Unsupported head sizes, misaligned buffers and T == 0 (dh0 += dht) run the
    // correctness-first kernels of gdn.cu, which share this contract.
    if (!pn_cuda_gated_delta_bwd_fast_supported(K, V) || !aligned || T <= 0) {
        if (write) {  // the fallback adds: start the written gradients from 0
            const int64_t N = (int64_t)B * (T > 0 ? T : 0) * H;
            if (dq) pn_cuda_memset(dq, 0, (size_t)N * K * sizeof(float));
            if (dk) pn_cuda_memset(dk, 0, (size_t)N * K * sizeof(float));
            if (dv) pn_cuda_memset(dv, 0, (size_t)N * V * sizeof(float));
            if (dg && g) pn_cuda_memset(dg, 0, (size_t)N * sizeof(float));
            if (dbeta) pn_cuda_memset(dbeta, 0, (size_t)N * sizeof(float));
        }
        pn_cuda_gated_delta_bwd(B, T, H, K, V, scale, qk_l2norm, q, k, v, g, beta, h0, dout, dht, dq, dk, dv, dg, dbeta,
                                dh0);
        return;
    }
    if ((int64_t)B * H <= 0 || (!dq && !dk && !dv && !(dg && g) && !dbeta && !dh0)) return;
    const gdnf_bf16 *qb = reinterpret_cast<const gdnf_bf16 *>(q), *kb = reinterpret_cast<const gdnf_bf16 *>(k);
    const gdnf_bf16 *vb = reinterpret_cast<const gdnf_bf16 *>(v);
    float *dgw = g ? dg : NULL;  // without a gate there is no dg to add (the contract leaves it untouched)
    if (K == 64)
        bwd_fast<64>(B, T, H, V, scale, qk_l2norm, qb, kb, vb, g, beta, h0, dout, dht, dq, dk, dv, dgw, dbeta, dh0, write);
    else if (K == 96)
        bwd_fast<96>(B, T, H, V, scale, qk_l2norm, qb, kb, vb, g, beta, h0, dout, dht, dq, dk, dv, dgw, dbeta, dh0, write);
    else
        bwd_fast<128>(B, T, H, V, scale, qk_l2norm, qb, kb, vb, g, beta, h0, dout, dht, dq, dk, dv, dgw, dbeta, dh0, write);
}

extern "C" void pn_cuda_gated_delta_bwd_fast(int B, int T, int H, int K, int V, float scale, int qk_l2norm,
                                             const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *g,
                                             const float *beta, const float *h0, const float *dout, const float *dht,
                                             float *dq, float *dk, float *dv, float *dg, float *dbeta, float *dh0) {
    bwd_fast_any(B, T, H, K, V, scale, qk_l2norm, q, k, v, g, beta, h0, dout, dht, dq, dk, dv, dg, dbeta, dh0, false);
}

extern "C" void pn_cuda_gated_delta_bwd_fast_write(int B, int T, int H, int K, int V, float scale, int qk_l2norm,
                                                   const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v,
                                                   const float *g, const float *beta, const float *h0,
                                                   const float *dout, const float *dht, float *dq, float *dk,
                                                   float *dv, float *dg, float *dbeta, float *dh0) {
    bwd_fast_any(B, T, H, K, V, scale, qk_l2norm, q, k, v, g, beta, h0, dout, dht, dq, dk, dv, dg, dbeta, dh0, true);
}
