// sgla_fast.cu — chunked simple GLA (one log-decay per token and head: the RetNet and Mamba2
// cores) forward and backward on bf16 tensor cores (mma.sync m16n8k16, fp32 accumulation):
// the fast twins of pn_cuda_simple_gla_fwd / _bwd (kernels/cuda/linear_ops.cu, fp32 on CUDA
// cores, 40–50× their memory floors), with exactly their contract (pn_cuda_linear.h).
//
// ---------------------------------------------------------------- the algorithm
// Per (b, h), chunks of C = 64 rows; in chunk n (rows t0 .. t0+nr−1) with start state S (K, V),
// γ the chunk-local inclusive cumsum of g (rows past T: g = 0, so γ_63 = γ_{nr−1} = γ_L):
//   O   = diag(scale e^γ) Q S + A V,     A_ij = scale q_i·k_j e^{γ_i−γ_j} (j ≤ i), 0 above
//   S  ← e^{γ_L} S + Kᵀ diag(e^{γ_L−γ}) V
// The state recurrence needs no chunk-local matrix (unlike the delta rule), so the forward is
// fla's split: a sequential state pass that only updates and stores the chunk start states
// (bf16, the operand copy), then a fully parallel output pass. Backward, with dS the
// gradient of a chunk's END state (dS of the last chunk = dht):
//   dS_prev = e^{γ_L} dS + Qᵀ diag(scale e^γ) dO          (reverse sequential pass)
//   dA = (dO Vᵀ) ⊙ M,  M_ij = scale e^{γ_i−γ_j} (j ≤ i)
//   dQ = diag(scale e^γ) dO Sᵀ + dA K
//   dK = diag(e^{γ_L−γ}) V dSᵀ + dAᵀ Q
//   dV = Aᵀ dO + diag(e^{γ_L−γ}) K dS
//   dγ_i = q_i·dq_i − k_i·dk_i, plus on the last row ⟨dS, S_end⟩ = e^{γ_L}⟨dS, S⟩ + Σ_j k_j·dk_j^S
//          (dk^S the state term of dk), and dg = the reverse chunk-local cumsum of dγ.
// (dγ: shifting γ_i by ε scales q_i by e^ε and k_i by e^−ε in every term of row i, except that
// the last row's shift also scales S_end as a whole.) Every exponent is ≤ 0 for g ≤ 0 and
// the mask comes before exp.
//
// ---------------------------------------------------------------- kernels
// 1. sgla_pass_kernel<KD, BV, REV = false> (sgla_common.cuh, shared with GLA; 4 warps): one
//    block per (b·h, BV ∈ {32, 64} state columns), the state in fp32 registers (warp w owns 16×32 units u = w, w+4, ... of the
//    (KD, BV) slice), chunks in order with K and the V tile double-buffered by cp.async. Per
//    chunk: store S as bf16 (hs, (BH, NT, KD, V); through a per-warp staging tile for 16-byte
//    stores), then S = e^{γ_L} S + (Kᵀ diag(d)) V with d folded into the Kᵀ fragments (one
//    rounding of k·d); g is loaded a chunk ahead. One barrier per chunk. Writes ht.
// 2. sgla_out_kernel<KD, BVO, OT> (8 warps): one block per (b·h, chunk, BVO = the whole of V up
//    to 128 columns), warp w owns rows 16(w % 4).. and half the columns: A = Q Kᵀ masked and
//    scaled in registers and reused as the A operand of A V (the accumulator layout of two
//    n-tiles is the A fragment layout), Q S from the stored bf16 start state.
// 3. sgla_pass_kernel<KD, BV, REV = true>: kernel 1 run backwards over dS: stores each chunk's
//    dS (bf16, dhs), dS = e^{γ_L} dS + (Qᵀ diag(scale e^γ)) dO; the fp32 dO tile arrives by
//    cp.async and is rounded to bf16 in shared memory (a second barrier). Adds dh0.
// 4. sgla_chunk_kernel<KD, BVT> (8 warps): one block per (b·h, chunk), fully parallel; loops
//    over BVT-column tiles of V (V, dO, S, dS tiles): dP = dO Vᵀ, dO Sᵀ, V dSᵀ accumulate in
//    registers, dV is finished per tile; then dA = dP ⊙ M, dQ, dK, the row sums of dγ and dg.
//    Warp w: row tile w & 3, column half w >> 2 (of V-tile columns or of K).
// Everything is deterministic: no atomics, each output element has one writer.
//
// ---------------------------------------------------------------- measured (H100, 2026-11-23)
// B8 T4096 H12 K128 V128 (tests/gpu/test_cuda_sgla_fast.c, medians): forward 0.434 ms (the fp32
// kernels 6.86 ms; floor 0.134 ms), forward + backward 1.95 ms (28.3 ms; floor 0.705 ms). ncu
// (base clocks): state pass 269 µs, output pass 260 µs (fp32 o, DRAM 80%), reverse pass 336 µs,
// chunk kernel 1.11 ms (DRAM 65%: the += of fp32 dq, dk, dv is 1.2 GB of its 2.3 GB). What
// moved them: staging the stored states through shared memory for 16-byte stores and loading
// g a chunk ahead (passes 365 → 269, 416 → 336 µs); the whole of V per output block (297 →
// 260 µs); two chunk blocks per SM (128 registers, ≤ 172 B of spills; 2.87 → 2.42 ms forward +
// backward) and every += load issued before its stores (1.33 → 1.11 ms). Measured and kept out:
// three stages in the forward state pass (loads two chunks ahead; 83 KB, still two blocks per
// SM): forward 0.434 → 0.437 ms, so the loads' latency is not what the pass waits on
// (results/gpu-tests/2026-11-23-h100-session10-sgla-3-stage-experiment.log). The sequential
// passes run 192 blocks here (1.45 per SM) and move ~1.8 TB/s (K read once per V tile, the bf16
// states written); the next step is the segment split of gdn_fast.cu (for a scalar decay the
// segment map is S_end = e^{Γ} S_start + D) together with fewer bytes per chunk.
//
// GDNF_HOST_EMU: compiles as host C++ against the emulation header of gdn_fast_common.cuh
// (index math checked without a GPU); the device build never defines it.
#include "kernels/cuda/sgla_common.cuh"

// γ of the chunk at gi0 (sgla_common.cuh: sg_gload, sg_gscan).
static __device__ __forceinline__ void sg_gamma(const float *g, int64_t gi0, int H, int nr, float &lo, float &hi) {
    sg_gload(g, gi0, H, nr, lo, hi);
    sg_gscan(lo, hi);
}

// Element (i, j) of the chunk's decay-masked score matrices: x · scale · e^{γ_i − γ_j} for j <= i,
// 0 above the diagonal (masked before exp). gi = γ_i; gam (64) the chunk's γ.
static __device__ __forceinline__ float sg_masked(float x, int i, int j, float gi, const float *gam, float scale) {
    return j <= i ? x * scale * expf(gi - gam[j]) : 0.f;
}

// ================================================================ 2: outputs
template <int KD, int BVO>
struct out_layout {
    static constexpr int LDK = KD + 8, LDV = BVO + 8;
    static constexpr size_t total = (size_t)2 * (2 * 64 * LDK + 64 * LDV + KD * LDV) + 64 * 4;
};

template <int KD, int BVO, typename OT>
__global__ void __launch_bounds__(256) sgla_out_kernel(sg_args a) {
    using L = out_layout<KD, BVO>;
    constexpr int LDK = L::LDK, LDV = L::LDV, NP = BVO / 32;  // n-tile pairs per warp (half the columns)
    gdnf_bf16 *Qs = reinterpret_cast<gdnf_bf16 *>(GDNF_SMEM), *Ks = Qs + 64 * LDK, *Vs = Ks + 64 * LDK;
    gdnf_bf16 *Ss = Vs + 64 * LDV;
    float *gam = reinterpret_cast<float *>(Ss + KD * LDV);
    const int tid = threadIdx.x, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
    const int w = (tid >> 5) & 3, cw = (BVO / 2) * (tid >> 7);  // row tile; the warp's first column
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
    cp_async_commit();
    if (tid < 32) {
        float glo, ghi;
        sg_gamma(a.g, row0 * a.H + h, a.H, nr, glo, ghi);
        gam[lane] = glo, gam[lane + 32] = ghi;
    }
    cp_async_wait_all();
    __syncthreads();

    // A = Q Kᵀ for rows 16w.. (both column halves' warps compute it), column blocks jt <= w, masked and scaled
    uint32_t qf[KD / 16][4];
#pragma unroll
    for (int kk = 0; kk < KD / 16; kk++) sg_frag_a(qf[kk], Qs, LDK, 16 * w, 16 * kk);
    float p[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) p[nt][e] = 0.f;
#pragma unroll
    for (int jt = 0; jt < 4; jt++) {
        if (jt > w) continue;
#pragma unroll
        for (int kk = 0; kk < KD / 16; kk++) {
            uint32_t bf[4];
            sg_frag_bnk(bf, Ks, LDK, 16 * kk, 16 * jt);
            sg_mma2(p[2 * jt], p[2 * jt + 1], qf[kk], bf);
        }
    }
    const int i0 = 16 * w + gq;
    const float gi[2] = {gam[i0], gam[i0 + 8]};
    uint32_t pf[4][4];
#pragma unroll
    for (int jt = 0; jt < 4; jt++) {
        if (jt > w) continue;
#pragma unroll
        for (int s = 0; s < 2; s++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int i = i0 + 8 * (e >> 1), j = 16 * jt + 8 * s + 2 * tq + (e & 1);
                p[2 * jt + s][e] = sg_masked(p[2 * jt + s][e], i, j, gi[e >> 1], gam, a.scale);
            }
        pf[jt][0] = pack_bf16x2(p[2 * jt][0], p[2 * jt][1]);
        pf[jt][1] = pack_bf16x2(p[2 * jt][2], p[2 * jt][3]);
        pf[jt][2] = pack_bf16x2(p[2 * jt + 1][0], p[2 * jt + 1][1]);
        pf[jt][3] = pack_bf16x2(p[2 * jt + 1][2], p[2 * jt + 1][3]);
    }

    // O = diag(scale e^γ) Q S + A V
    float o[2 * NP][4];
#pragma unroll
    for (int nt = 0; nt < 2 * NP; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[nt][e] = 0.f;
    auto copy4 = [](uint32_t *d, const uint32_t *x) { d[0] = x[0], d[1] = x[1], d[2] = x[2], d[3] = x[3]; };
    sg_mm<KD / 16, NP>(
        o, 0, KD / 16, [&](uint32_t *af, int kk) { copy4(af, qf[kk]); },
        [&](uint32_t *bf, int kk, int np) { sg_frag_bkn(bf, Ss, LDV, 16 * kk, cw + 16 * np); });
    const float rs[2] = {a.scale * expf(gi[0]), a.scale * expf(gi[1])};
#pragma unroll
    for (int nt = 0; nt < 2 * NP; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[nt][e] *= rs[e >> 1];
    sg_mm<4, NP>(
        o, 0, w + 1, [&](uint32_t *af, int jt) { copy4(af, pf[jt]); },
        [&](uint32_t *bf, int jt, int np) { sg_frag_bkn(bf, Vs, LDV, 16 * jt, cw + 16 * np); });
    OT *out = reinterpret_cast<OT *>(a.o);
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = i0 + 8 * hr;
        if (i >= nr) continue;
        OT *orow = out + ((row0 + i) * a.H + h) * a.V + c0 + cw + 2 * tq;
#pragma unroll
        for (int nt = 0; nt < 2 * NP; nt++) sg_store2(orow + 8 * nt, o[nt][2 * hr], o[nt][2 * hr + 1]);
    }
}

// ================================================================ 4: backward per chunk
// Shared memory: Q, K (64, KD + 8) | V, dO (64, BVT + 8) | S, dS (KD, BVT + 8) | A / dA (64, 72)
// bf16 | γ, d = e^{γ_L−γ} (64) | row sums (2 halves × 3 × 64) | 8 partials of ⟨dS, S⟩, fp32.
template <int KD, int BVT>
struct chunk_layout {
    static constexpr int LDK = KD + 8, LDV = BVT + 8;
    static constexpr size_t bf = (size_t)2 * 64 * LDK + 2 * 64 * LDV + 2 * KD * LDV + 64 * GDNF_LDA;
    static constexpr size_t total = bf * 2 + (size_t)4 * (2 * 64 + 6 * 64 + 8);
};

#ifndef SGLA_CHUNK_MINB
#define SGLA_CHUNK_MINB 2  // blocks per SM the register budget is cut for (2: ≤ 128 registers)
#endif
template <int KD, int BVT>
__global__ void __launch_bounds__(256, SGLA_CHUNK_MINB) sgla_chunk_kernel(sg_args a) {
    using L = chunk_layout<KD, BVT>;
    constexpr int LDK = L::LDK, LDV = L::LDV, LDA = GDNF_LDA;
    constexpr int KH = KD / 2, NPK = KH / 16;   // state rows per warp half, n-tile pairs over them
    constexpr int VH = BVT / 2, NPV = VH / 16;  // V-tile columns per warp half, pairs over them
    gdnf_bf16 *Qs = reinterpret_cast<gdnf_bf16 *>(GDNF_SMEM), *Ks = Qs + 64 * LDK;
    gdnf_bf16 *Vs = Ks + 64 * LDK, *Os = Vs + 64 * LDV, *Ss = Os + 64 * LDV, *dSs = Ss + KD * LDV;
    gdnf_bf16 *As = dSs + KD * LDV;
    float *gam = reinterpret_cast<float *>(As + 64 * LDA), *dd = gam + 64, *rsum = dd + 64, *ssp = rsum + 6 * 64;
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, gq = lane >> 2, tq = lane & 3;
    const int rt = w & 3, hf = w >> 2;
    const int64_t ci = blockIdx.x;  // bh·NT + n
    const int64_t bh = ci / a.NT;
    const int n = (int)(ci % a.NT), b = (int)(bh / a.H), h = (int)(bh % a.H);
    const int t0 = n * 64, nr = min(64, a.T - t0);
    const int64_t row0 = (int64_t)b * a.T + t0;
    const int i0 = 16 * rt + gq;  // this thread's rows i0, i0 + 8 of the warp's row tile

    gdnf_load_kq<KD, 256>(Ks, Qs, LDK, a.k, a.q, row0, nr, a.H, h);
    cp_async_commit();
    if (w == 0) {
        float glo, ghi;
        sg_gamma(a.g, row0 * a.H + h, a.H, nr, glo, ghi);
        const float gl = __shfl_sync(SG_FULL, ghi, 31);
        gam[lane] = glo, gam[lane + 32] = ghi;
        dd[lane] = expf(gl - glo), dd[lane + 32] = expf(gl - ghi);
    }
    cp_async_wait_all();
    __syncthreads();
    const float gi[2] = {gam[i0], gam[i0 + 8]};
    const float gl = gam[63];
    const bool below = 32 * hf <= 16 * rt + 15;  // the warp's 16 × 32 block reaches j <= i
    // x ⊙ M → As (bf16) for the warp's block at (16rt, 32hf): A first, dA after the V tiles
    // (a block above the diagonal stores zeros)
    auto store_masked = [&](const float (*x)[4]) {
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                const int i = i0 + 8 * hr, j = 32 * hf + 8 * nt + 2 * tq;
                st_bf16x2(As + i * LDA + j, sg_masked(x[nt][2 * hr], i, j, gi[hr], gam, a.scale),
                          sg_masked(x[nt][2 * hr + 1], i, j + 1, gi[hr], gam, a.scale));
            }
    };
    {
        float p[4][4] = {};
        if (below)
            sg_mm<KD / 16, 2>(
                p, 0, KD / 16, [&](uint32_t *af, int kk) { sg_frag_a(af, Qs, LDK, 16 * rt, 16 * kk); },
                [&](uint32_t *bf, int kk, int s) { sg_frag_bnk(bf, Ks, LDK, 16 * kk, 32 * hf + 16 * s); });
        store_masked(p);
    }

    float dP[4][4] = {};        // (dO Vᵀ)[rows 16rt.., cols 32hf..]
    float dQi[2 * NPK][4] = {};  // (dO Sᵀ)[rows 16rt.., state rows KH·hf..]
    float dKs[2 * NPK][4] = {};  // (V dSᵀ)[rows 16rt.., state rows KH·hf..]
    float ss = 0.f;              // this thread's part of ⟨dS, S⟩
    const float dr[2] = {dd[i0], dd[i0 + 8]};  // e^{γ_L−γ} of this thread's rows
    for (int c0 = 0; c0 < a.V; c0 += BVT) {
        __syncthreads();  // the previous tile's readers (and As's writers) are done
        sg_vtile<KD, BVT>(a, Vs, Os, Ss, dSs, ci, row0, nr, h, c0, dP, dQi, dKs);

        // dV = Aᵀ dO + (diag(d) K) dS for rows 16rt.., columns VH·hf.. (d folded into the K
        // fragments: one rounding of k·d, and one accumulator)
        if (a.dv) {
            float va[2 * NPV][4] = {};
            sg_mm<4, NPV>(  // A_ij = 0 for i < j: i-steps from rt
                va, rt, 4, [&](uint32_t *af, int ki) { sg_frag_at(af, As, LDA, 16 * rt, 16 * ki); },
                [&](uint32_t *bf, int ki, int s) { sg_frag_bkn(bf, Os, LDV, 16 * ki, VH * hf + 16 * s); });
            sg_mm<KD / 16, NPV>(
                va, 0, KD / 16,
                [&](uint32_t *af, int kk) {
                    sg_frag_a(af, Ks, LDK, 16 * rt, 16 * kk);
                    af[0] = sg_scale2(af[0], dr[0], dr[0]), af[2] = sg_scale2(af[2], dr[0], dr[0]);
                    af[1] = sg_scale2(af[1], dr[1], dr[1]), af[3] = sg_scale2(af[3], dr[1], dr[1]);
                },
                [&](uint32_t *bf, int kk, int s) { sg_frag_bkn(bf, dSs, LDV, 16 * kk, VH * hf + 16 * s); });
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                const int i = i0 + 8 * hr;
                if (i >= nr) continue;
                sg_add_row<2 * NPV>(a.dv + ((row0 + i) * a.H + h) * a.V + c0 + VH * hf + 2 * tq, va, hr);
            }
        }
        for (int e = tid; e < KD * (BVT / 2); e += 256) {
            const int i = e / (BVT / 2), c = (e % (BVT / 2)) * 2;
            const float2 s2 = ld_bf16x2(Ss + i * LDV + c), d2 = ld_bf16x2(dSs + i * LDV + c);
            ss += s2.x * d2.x + s2.y * d2.y;
        }
    }
    __syncthreads();  // the last tile's readers of As are done

    store_masked(dP);  // dA = dP ⊙ M
    {
        float t = gdnf_warp_sum(ss);
        if (lane == 0) ssp[w] = t;
    }
    __syncthreads();

    // dQ = diag(scale e^γ) dQi + dA K;  dK = diag(d) dKs + dAᵀ Q   (dQi, dKs become dQ, dK)
    const float rq[2] = {a.scale * expf(gi[0]), a.scale * expf(gi[1])};
    float ks[2] = {0.f, 0.f};  // Σ_c k_ic · dk^S_ic, the state term's share of ⟨dS, S_end⟩
#pragma unroll
    for (int nt = 0; nt < 2 * NPK; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int hr = e >> 1, col = KH * hf + 8 * nt + 2 * tq + (e & 1);
            dQi[nt][e] *= rq[hr];
            dKs[nt][e] *= dr[hr];
            ks[hr] += bf2f(Ks[(i0 + 8 * hr) * LDK + col]) * dKs[nt][e];
        }
    sg_mm<4, NPK>(  // dA_ij = 0 for j > i
        dQi, 0, rt + 1, [&](uint32_t *af, int kj) { sg_frag_a(af, As, LDA, 16 * rt, 16 * kj); },
        [&](uint32_t *bf, int kj, int s) { sg_frag_bkn(bf, Ks, LDK, 16 * kj, KH * hf + 16 * s); });
    sg_mm<4, NPK>(
        dKs, rt, 4, [&](uint32_t *af, int ki) { sg_frag_at(af, As, LDA, 16 * rt, 16 * ki); },
        [&](uint32_t *bf, int ki, int s) { sg_frag_bkn(bf, Qs, LDK, 16 * ki, KH * hf + 16 * s); });
    // row sums q·dq − k·dk (this half of K), the dq, dk updates
    float qd[2] = {0.f, 0.f}, kd[2] = {0.f, 0.f};
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = i0 + 8 * hr;
        const int64_t ro = ((row0 + i) * a.H + h) * KD + KH * hf + 2 * tq;
#pragma unroll
        for (int nt = 0; nt < 2 * NPK; nt++) {
            const int col = KH * hf + 8 * nt + 2 * tq;
            const float2 qv = ld_bf16x2(Qs + i * LDK + col), kv = ld_bf16x2(Ks + i * LDK + col);
            const float q0 = dQi[nt][2 * hr], q1 = dQi[nt][2 * hr + 1];
            const float k0 = dKs[nt][2 * hr], k1 = dKs[nt][2 * hr + 1];
            qd[hr] += qv.x * q0 + qv.y * q1;
            kd[hr] += kv.x * k0 + kv.y * k1;
        }
        if (i < nr) {
            if (a.dq) sg_add_row<2 * NPK>(a.dq + ro, dQi, hr);
            if (a.dk) sg_add_row<2 * NPK>(a.dk + ro, dKs, hr);
        }
    }
    if (!a.dg) return;  // no barrier below is reached by anyone then (a.dg is block-uniform)
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
#pragma unroll
        for (int o = 1; o < 4; o <<= 1) {
            qd[hr] += __shfl_xor_sync(SG_FULL, qd[hr], o);
            kd[hr] += __shfl_xor_sync(SG_FULL, kd[hr], o);
            ks[hr] += __shfl_xor_sync(SG_FULL, ks[hr], o);
        }
        if (tq == 0) {
            const int i = i0 + 8 * hr;
            rsum[(hf * 3 + 0) * 64 + i] = qd[hr];
            rsum[(hf * 3 + 1) * 64 + i] = kd[hr];
            rsum[(hf * 3 + 2) * 64 + i] = ks[hr];
        }
    }
    __syncthreads();
    if (w == 0) {
        // dγ per row (rows lane and lane + 32), the last row's state term, then the suffix sums
        float dlo = 0.f, dhi = 0.f, kst = 0.f;
#pragma unroll
        for (int s = 0; s < 2; s++) {
            dlo += rsum[(s * 3 + 0) * 64 + lane] - rsum[(s * 3 + 1) * 64 + lane];
            dhi += rsum[(s * 3 + 0) * 64 + lane + 32] - rsum[(s * 3 + 1) * 64 + lane + 32];
            kst += rsum[(s * 3 + 2) * 64 + lane] + rsum[(s * 3 + 2) * 64 + lane + 32];
        }
        kst = gdnf_warp_sum(kst);
        float sst = 0.f;
#pragma unroll
        for (int s = 0; s < 8; s++) sst += ssp[s];
        const float last = expf(gl) * sst + kst;
        const int L = nr - 1;
        if (lane == (L & 31)) {
            if (L < 32)
                dlo += last;
            else
                dhi += last;
        }
        // suffix sums over rows 0..63: reverse the lanes, inclusive scan, hi half first
        float rhi = __shfl_sync(SG_FULL, dhi, 31 - lane), rlo = __shfl_sync(SG_FULL, dlo, 31 - lane);
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float x = __shfl_up_sync(SG_FULL, rhi, o), y = __shfl_up_sync(SG_FULL, rlo, o);
            if (lane >= o) rhi += x, rlo += y;
        }
        rlo += __shfl_sync(SG_FULL, rhi, 31);
        // lane l now holds the suffix sum from row 63 − l (rhi) and from row 31 − l (rlo)
        const float shi = __shfl_sync(SG_FULL, rhi, 31 - lane), slo = __shfl_sync(SG_FULL, rlo, 31 - lane);
        const int64_t gi0 = row0 * a.H + h;
        if (lane < nr) a.dg[gi0 + (int64_t)lane * a.H] += slo;
        if (lane + 32 < nr) a.dg[gi0 + (int64_t)(lane + 32) * a.H] += shi;
    }
}

// ================================================================ host side
template <int KD, int BVO>
static void out_launch(const sg_args &a, int64_t grid, pn_cuda_dtype o_dt) {
    if (o_dt == PN_CUDA_F32)
        sg_launch(sgla_out_kernel<KD, BVO, float>, grid, 256, out_layout<KD, BVO>::total, a);
    else
        sg_launch(sgla_out_kernel<KD, BVO, gdnf_bf16>, grid, 256, out_layout<KD, BVO>::total, a);
}

template <int KD>
static void out_run(const sg_args &a, int64_t BH, pn_cuda_dtype o_dt) {
    const int BVO = sg_bvo(a.V);
    const int64_t grid = BH * a.NT * (a.V / BVO);
    if (BVO == 128)
        out_launch<KD, 128>(a, grid, o_dt);
    else if (BVO == 64)
        out_launch<KD, 64>(a, grid, o_dt);
    else
        out_launch<KD, 32>(a, grid, o_dt);
}

template <int KD>
static void chunk_run(const sg_args &a, int64_t BH) {
    const int64_t grid = BH * a.NT;
    if (sg_bv(a.V) == 64)
        sg_launch(sgla_chunk_kernel<KD, 64>, grid, 256, chunk_layout<KD, 64>::total, a);
    else
        sg_launch(sgla_chunk_kernel<KD, 32>, grid, 256, chunk_layout<KD, 32>::total, a);
}

template <int KD>
static void fwd_fast(const sg_args &a0, int64_t BH, pn_cuda_dtype o_dt) {
    sg_args a = a0;
    if (a.o) a.hs = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)BH * a.NT * KD * a.V * 2);
    pass_run<KD, false>(a, BH);
    if (a.o) {
        out_run<KD>(a, BH, o_dt);
        pn_cuda_free(a.hs);  // back to the cache; later work on the stream runs after these kernels
    }
}

// f: the forward state pass (s0 = h0); r: the reverse pass (s0 = dht, s1 = dh0) and the
// per-chunk gradients.
template <int KD>
static void bwd_fast(sg_args f, sg_args r, int64_t BH) {
    if (!r.g) r.dg = NULL;  // no gate, no gate gradient (the contract)
    const bool per_token = r.dq || r.dk || r.dv || r.dg;
    if (per_token) {
        const size_t sbytes = (size_t)BH * r.NT * KD * r.V * 2;
        f.s1 = NULL;
        f.hs = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sbytes);
        pass_run<KD, false>(f, BH);
        r.hs = f.hs;
        r.dhs = (gdnf_bf16 *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sbytes);
        pass_run<KD, true>(r, BH);
        chunk_run<KD>(r, BH);
        pn_cuda_free(r.hs);
        pn_cuda_free(r.dhs);
    } else if (r.s1) {
        r.hs = NULL, r.dhs = NULL;
        pass_run<KD, true>(r, BH);
    }
}


static void sg_check_grid(int64_t BH, int NT, int V) {
    if (BH * NT * (V / 32) > 0x7fffffff) {
        fprintf(stderr, "postnas: internal error: %s: simple GLA fast path: grid too large (B·H = %lld, T = %d)\n",
                __FILE__, (long long)BH, NT * 64);
        exit(1);
    }
}

static int g_last_fast = 0;  // 1: the last call ran the tensor-core kernels; 0: it fell back
extern "C" int pn_cuda_simple_gla_fast_debug_last(void) { return g_last_fast; }

extern "C" int pn_cuda_simple_gla_fast_supported(int K, int V) { return sg_fast_shape(K, V); }

extern "C" void pn_cuda_simple_gla_fwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q,
                                            const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *h0,
                                            void *o, pn_cuda_dtype o_dt, float *ht) {
    const bool aligned = sg_aligned(q, 16) && sg_aligned(k, 16) && sg_aligned(v, 16) && sg_aligned(o, 8) &&
                         sg_aligned(h0, 8) && sg_aligned(ht, 8);
    // Other head sizes, misaligned buffers and T == 0 (a state copy) run the fp32 kernels of
    // linear_ops.cu, which share this contract.
    g_last_fast = pn_cuda_simple_gla_fast_supported(K, V) && aligned && T > 0;
    if (!g_last_fast) {
        pn_cuda_simple_gla_fwd(B, T, H, K, V, scale, q, k, v, g, h0, o, o_dt, ht);
        return;
    }
    const int64_t BH = (int64_t)B * H;
    if (BH <= 0 || (!o && !ht)) return;
    const int NT = (int)pn_ceil_div(T, 64);
    sg_check_grid(BH, NT, V);
    sg_args a;
    memset(&a, 0, sizeof a);
    a.q = reinterpret_cast<const gdnf_bf16 *>(q), a.k = reinterpret_cast<const gdnf_bf16 *>(k);
    a.v = reinterpret_cast<const gdnf_bf16 *>(v), a.g = g, a.s0 = h0, a.s1 = ht, a.o = o;
    a.T = T, a.H = H, a.V = V, a.NT = NT, a.scale = scale;
    if (K == 64)
        fwd_fast<64>(a, BH, o_dt);
    else if (K == 96)
        fwd_fast<96>(a, BH, o_dt);
    else
        fwd_fast<128>(a, BH, o_dt);
}

extern "C" void pn_cuda_simple_gla_bwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q,
                                            const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *h0,
                                            const float *dout, const float *dht, float *dq, float *dk, float *dv,
                                            float *dg, float *dh0) {
    const bool aligned = sg_aligned(q, 16) && sg_aligned(k, 16) && sg_aligned(v, 16) && sg_aligned(dout, 16) &&
                         sg_aligned(h0, 8) && sg_aligned(dht, 8) && sg_aligned(dh0, 8) && sg_aligned(dq, 8) &&
                         sg_aligned(dk, 8) && sg_aligned(dv, 8);
    g_last_fast = pn_cuda_simple_gla_fast_supported(K, V) && aligned && T > 0;
    if (!g_last_fast) {
        pn_cuda_simple_gla_bwd(B, T, H, K, V, scale, q, k, v, g, h0, dout, dht, dq, dk, dv, dg, dh0);
        return;
    }
    const int64_t BH = (int64_t)B * H;
    if (BH <= 0) return;
    const int NT = (int)pn_ceil_div(T, 64);
    sg_check_grid(BH, NT, V);
    sg_args a;
    memset(&a, 0, sizeof a);
    a.q = reinterpret_cast<const gdnf_bf16 *>(q), a.k = reinterpret_cast<const gdnf_bf16 *>(k);
    a.v = reinterpret_cast<const gdnf_bf16 *>(v), a.g = g, a.dout = dout;
    a.dq = dq, a.dk = dk, a.dv = dv, a.dg = dg;
    a.T = T, a.H = H, a.V = V, a.NT = NT, a.scale = scale;
    sg_args r = a;  // the reverse pass reads dht and adds dh0; the forward's reads h0
    a.s0 = h0;
    r.s0 = dht, r.s1 = dh0;
    if (K == 64)
        bwd_fast<64>(a, r, BH);
    else if (K == 96)
        bwd_fast<96>(a, r, BH);
    else
        bwd_fast<128>(a, r, BH);
}
