// sgla_common.cuh — what the tensor-core simple GLA (sgla_fast.cu) and GLA (gla_fast.cu)
// kernels share: m16n8k16 fragment helpers, the per-chunk decay scan of a scalar log-decay,
// the argument block, and the sequential state pass (forward over S, reverse over dS) with
// either decay form:
//   simple GLA (CH = false): S ← e^{γ_L} S + Kᵀ diag(e^{γ_L−γ}) V, the per-row factor folded
//     into the Kᵀ fragments (reverse: Qᵀ diag(scale e^γ) dO);
//   GLA (CH = true): S ← diag(e^{Γ_L}) S + K̂ᵀ V with K̂ = K ⊙ e^{Γ_L−Γ} precomputed per element
//     (reverse: Q̂ = scale Q ⊙ e^{Γ}), so the pass reads K̂ / Q̂ as they are and scales each state
//     row by its own channel's e^{Γ_L} (Γ_L read from the chunk's last row of Γ).
// Included by those two files only (each instantiates its own copies).
#pragma once
#include "kernels/cuda/gdn_fast_common.cuh"  // mma / ldmatrix / cp.async primitives
#include "kernels/cuda/pn_cuda_linear.h"

#define SG_FULL 0xffffffffu

// ================================================================ fragments
// m16n8k16 fragment addresses (layouts: the comment at the top of gdn_fast.cu). l = lane.
// A tile (16 × 16) at (r0, c0) of a row-major matrix m.
static __device__ __forceinline__ void sg_frag_a(uint32_t a[4], const gdnf_bf16 *m, int ld, int r0, int c0) {
    const int l = threadIdx.x & 31;
    ldsm_x4(a, m + (r0 + (l & 15)) * ld + c0 + 8 * (l >> 4));
}
// A tile at (m0, k0) of A = sᵀ, s stored row-major (k, m).
static __device__ __forceinline__ void sg_frag_at(uint32_t a[4], const gdnf_bf16 *s, int ld, int m0, int k0) {
    const int l = threadIdx.x & 31;
    ldsm_x4_t(a, s + (k0 + (l & 7) + 8 * (l >> 4)) * ld + m0 + 8 * ((l >> 3) & 1));
}
// B rows k0..k0+15, n-tiles n0 (b[0], b[1]) and n0 + 8 (b[2], b[3]) of B stored row-major (k, n).
static __device__ __forceinline__ void sg_frag_bkn(uint32_t b[4], const gdnf_bf16 *s, int ld, int k0, int n0) {
    const int l = threadIdx.x & 31;
    ldsm_x4_t(b, s + (k0 + (l & 15)) * ld + n0 + 8 * (l >> 4));
}
// The same of B stored as its transpose, row-major (n, k).
static __device__ __forceinline__ void sg_frag_bnk(uint32_t b[4], const gdnf_bf16 *s, int ld, int k0, int n0) {
    const int l = threadIdx.x & 31;
    ldsm_x4(b, s + (n0 + (l & 7) + 8 * (l >> 4)) * ld + k0 + 8 * ((l >> 3) & 1));
}
// c0 += a · b[0..1], c1 += a · b[2..3]: the two n-tiles of one sg_frag_b* load.
static __device__ __forceinline__ void sg_mma2(float c0[4], float c1[4], const uint32_t a[4], const uint32_t b[4]) {
    mma_bf16(c0, a, b[0], b[1]);
    mma_bf16(c1, a, b[2], b[3]);
}
// acc[2s], acc[2s+1] += A_k · B_{k,s} over the k-steps lo <= k < hi (of at most KN) and the n-tile
// pairs s < NP: a_frag(af, k) loads (and may scale) the A fragment of k-step k, b_frag(bf, k, s)
// the B fragments of pair s. Products are summed k by k, pair by pair.
template <int KN, int NP, typename FA, typename FB>
static __device__ __forceinline__ void sg_mm(float (*acc)[4], int lo, int hi, FA a_frag, FB b_frag) {
#pragma unroll
    for (int k = 0; k < KN; k++) {
        if (k < lo || k >= hi) continue;
        uint32_t af[4], bf[4];
        a_frag(af, k);
#pragma unroll
        for (int s = 0; s < NP; s++) {
            b_frag(bf, k, s);
            sg_mma2(acc[2 * s], acc[2 * s + 1], af, bf);
        }
    }
}
// A register of two bf16 times (s0, s1), rounded once.
static __device__ __forceinline__ uint32_t sg_scale2(uint32_t r, float s0, float s1) {
    return pack_bf16x2(gdnf_u2f(r << 16) * s0, gdnf_u2f(r & 0xffff0000u) * s1);
}
// An A fragment whose columns (k) 2t, 2t+1 are scaled by s.x, s.y and 2t+8, 2t+9 by s.z, s.w.
static __device__ __forceinline__ void sg_scale_cols(uint32_t a[4], float4 s) {
    a[0] = sg_scale2(a[0], s.x, s.y), a[1] = sg_scale2(a[1], s.x, s.y);
    a[2] = sg_scale2(a[2], s.z, s.w), a[3] = sg_scale2(a[3], s.z, s.w);
}

// ================================================================ per-chunk scalars
// γ = the chunk-local inclusive cumsum of g over rows 0..63 (rows >= nr, or g NULL: 0), per
// warp in fp32 (every kernel runs this same code, so all of them see the same γ): the lane
// holds γ[lane] in lo and γ[lane + 32] in hi. gi0 = the index of (b, t0, h) in (B, T, H).
// sg_gload loads the rows, sg_gscan turns them into γ (the sequential passes load a chunk
// ahead; sgla_fast.cu's sg_gamma does both).
static __device__ __forceinline__ void sg_gload(const float *g, int64_t gi0, int H, int nr, float &lo, float &hi) {
    const int l = threadIdx.x & 31;
    lo = g && l < nr ? g[gi0 + (int64_t)l * H] : 0.f;
    hi = g && l + 32 < nr ? g[gi0 + (int64_t)(l + 32) * H] : 0.f;
}
static __device__ __forceinline__ void sg_gscan(float &lo, float &hi) {
    const int l = threadIdx.x & 31;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float a = __shfl_up_sync(SG_FULL, lo, o), b = __shfl_up_sync(SG_FULL, hi, o);
        if (l >= o) lo += a, hi += b;
    }
    hi += __shfl_sync(SG_FULL, lo, 31);
}
// The per-row values x[j] (lane j%32 holds rows j in lo and j+32 in hi) that scale the k
// columns 16kk + 2t + {0, 1, 8, 9} of an A fragment (t = lane % 4); kk is warp-uniform.
static __device__ __forceinline__ float4 sg_cols(int kk, float lo, float hi) {
    const float x = kk < 2 ? lo : hi;
    const int j = (16 * kk + 2 * (threadIdx.x & 3)) & 31;
    return make_float4(__shfl_sync(SG_FULL, x, j), __shfl_sync(SG_FULL, x, j + 1), __shfl_sync(SG_FULL, x, j + 8),
                       __shfl_sync(SG_FULL, x, j + 9));
}

// ================================================================ arguments
struct sg_args {
    const gdnf_bf16 *q, *k, *v;
    const float *g;      // (B, T, H) or NULL (simple GLA)
    // GLA (gla_fast.cu): the per-channel log-decays and what its prep kernel derives from them
    const float *gk;     // (B, T, H, KD)
    float *G;            // Γ, the chunk-local inclusive cumsum of gk, (B, T, H, KD) fp32
    gdnf_bf16 *qh, *kh;  // Q̂ = scale Q ⊙ e^{Γ}, K̂ = K ⊙ e^{Γ_L−Γ}, (B, T, H, KD) bf16
    const float *dout;   // (B, T, H, V) fp32 (backward)
    const float *s0;     // state in: h0 (forward) / dht (reverse pass), (BH, KD, V) fp32 or NULL
    float *s1;           // state out: ht (written) / dh0 (added), or NULL
    gdnf_bf16 *hs;       // per-chunk start states (BH, NT, KD, V) bf16
    gdnf_bf16 *dhs;      // per-chunk end-state gradients (BH, NT, KD, V) bf16
    void *o;             // (B, T, H, V) bf16 or fp32
    float *dq, *dk, *dv, *dg;
    int T, H, V, NT;
    float scale;
};

// ================================================================ 1, 3: the sequential passes
// Shared memory of one stage: the chunk's K (forward) or Q (reverse) rows (64, KD + 8) bf16 |
// forward: the V tile (64, BV + 8) bf16; reverse: the dO tile (64, BV + 4) fp32. The reverse
// pass adds one (64, BV + 8) bf16 tile (dO rounded).
template <int KD, int BV, bool REV>
struct pass_layout {
    static constexpr int LDK = KD + 8, LDV = BV + 8, LDF = BV + 4;
    static constexpr size_t kbytes = (size_t)64 * LDK * 2;
    static constexpr size_t tbytes = REV ? (size_t)64 * LDF * 4 : (size_t)64 * LDV * 2;
    static constexpr size_t stage = kbytes + tbytes;
    static constexpr size_t stg = (size_t)4 * 16 * 40 * 2;  // per warp a 16 × 32 bf16 staging tile (row stride 40)
    static constexpr size_t total = 2 * stage + (REV ? (size_t)64 * LDV * 2 : 0) + stg;
};

// The chunk's rows (64, KD) of x (q or k) and the (64, BV) tile of y (v bf16 or dout fp32) at
// column c0 → one stage, rows >= nr zero-filled (128 threads; the caller commits).
template <int KD, int BV, bool REV>
static __device__ __forceinline__ void pass_load(unsigned char *st, const gdnf_bf16 *x, const void *y, int64_t row0,
                                                 int nr, int H, int h, int V, int c0) {
    using L = pass_layout<KD, BV, REV>;
    gdnf_bf16 *Xs = reinterpret_cast<gdnf_bf16 *>(st);
    for (int e = threadIdx.x; e < 64 * (KD / 8); e += 128) {
        const int i = e / (KD / 8), c = (e % (KD / 8)) * 8;
        const bool ok = i < nr;
        cp_async16(Xs + i * L::LDK + c, x + (ok ? ((row0 + i) * H + h) * KD + c : 0), ok);
    }
    constexpr int EPV = REV ? 4 : 8;  // elements per 16 bytes
    for (int e = threadIdx.x; e < 64 * (BV / EPV); e += 128) {
        const int i = e / (BV / EPV), c = (e % (BV / EPV)) * EPV;
        const bool ok = i < nr;
        const int64_t off = ok ? ((row0 + i) * H + h) * V + c0 + c : 0;
        if (REV)
            cp_async16(reinterpret_cast<float *>(st + L::kbytes) + i * L::LDF + c,
                       reinterpret_cast<const float *>(y) + off, ok);
        else
            cp_async16(reinterpret_cast<gdnf_bf16 *>(st + L::kbytes) + i * L::LDV + c,
                       reinterpret_cast<const gdnf_bf16 *>(y) + off, ok);
    }
}

// Forward (REV false): S walks the chunks in order from h0; hs gets each chunk's start state,
// s1 (ht) the end state. Reverse (REV true): dS walks them backwards from dht; dhs gets each
// chunk's end-state gradient, s1 (dh0) += the start-state gradient.
// Unit u (16 state rows × 32 columns) = warp + 4r: rows 16·(u / NH), columns 32·(u % NH).
// CH (GLA): a.k / a.q hold K̂ / Q̂ (see the top of this file) and a.G gives the decays.
template <int KD, int BV, bool REV, bool CH = false>
__global__ void __launch_bounds__(128) sgla_pass_kernel(sg_args a) {
    using L = pass_layout<KD, BV, REV>;
    constexpr int NH = BV / 32, NU = KD / 16 * NH, UPW = (NU + 3) / 4;
    unsigned char *sm = GDNF_SMEM;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gq = lane >> 2, tq = lane & 3;
    const int ntile = a.V / BV;
    const int64_t bh = blockIdx.x / ntile;
    const int c0 = (int)(blockIdx.x % ntile) * BV;
    const int b = (int)(bh / a.H), h = (int)(bh % a.H);
    const int64_t KV = (int64_t)KD * a.V;
    const gdnf_bf16 *X = REV ? a.q : a.k;
    const void *Y = REV ? (const void *)a.dout : (const void *)a.v;
    gdnf_bf16 *store = REV ? a.dhs : a.hs;

    // the (b·h) state's offset of accumulator element e of n-tile nt of unit u
    auto state_at = [&](int u, int nt, int e) {
        const int row = 16 * (u / NH) + gq + 8 * (e >> 1), col = c0 + 32 * (u % NH) + 8 * nt + 2 * tq + (e & 1);
        return bh * KV + (int64_t)row * a.V + col;
    };
    float acc[UPW][4][4];
#pragma unroll
    for (int r = 0; r < UPW; r++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int u = warp + 4 * r;
                acc[r][nt][e] = a.s0 && u < NU ? a.s0[state_at(u, nt, e)] : 0.f;
            }

    auto chunk_of = [&](int step) { return REV ? a.NT - 1 - step : step; };
    gdnf_bf16 *stg = reinterpret_cast<gdnf_bf16 *>(sm + L::total - L::stg) + warp * 16 * 40;
    float gnlo = 0.f, gnhi = 0.f;  // the next chunk's g rows, loaded a chunk ahead
    float dnx[UPW][2];             // CH: the next chunk's Γ_L of this thread's state rows
    auto load_decay = [&](int n) {  // → gnlo, gnhi or dnx
        const int t0 = n * 64, nr = min(64, a.T - t0);
        if constexpr (CH) {
            const float *gl = a.G + (((int64_t)b * a.T + t0 + nr - 1) * a.H + h) * KD;
#pragma unroll
            for (int r = 0; r < UPW; r++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int u = warp + 4 * r;
                    dnx[r][hr] = u < NU ? gl[16 * (u / NH) + gq + 8 * hr] : 0.f;
                }
        } else {
            sg_gload(a.g, ((int64_t)b * a.T + t0) * a.H + h, a.H, nr, gnlo, gnhi);
        }
    };
    {
        const int n = chunk_of(0), t0 = n * 64;
        pass_load<KD, BV, REV>(sm, X, Y, (int64_t)b * a.T + t0, min(64, a.T - t0), a.H, h, a.V, c0);
        cp_async_commit();
        load_decay(n);
    }
    for (int step = 0; step < a.NT; step++) {
        const int n = chunk_of(step);
        cp_async_wait_all();
        __syncthreads();  // stage step&1 has arrived; every thread is done with stage (step+1)&1
        unsigned char *st = sm + (step & 1) * L::stage;
        float glo = gnlo, ghi = gnhi;
        float dl[UPW][2];  // the decay of this thread's state rows: e^{γ_L} (all), e^{Γ_L,row} (CH)
        if constexpr (CH) {
#pragma unroll
            for (int r = 0; r < UPW; r++) dl[r][0] = expf(dnx[r][0]), dl[r][1] = expf(dnx[r][1]);
        }
        if (step + 1 < a.NT) {
            const int n1 = chunk_of(step + 1), t1 = n1 * 64;
            pass_load<KD, BV, REV>(sm + ((step + 1) & 1) * L::stage, X, Y, (int64_t)b * a.T + t1, min(64, a.T - t1),
                                   a.H, h, a.V, c0);
            cp_async_commit();
            load_decay(n1);
        }
        if (store) {
            // each unit through the warp's staging tile, then 16-byte stores of whole row pieces
            gdnf_bf16 *dst = store + (bh * a.NT + n) * KV;
#pragma unroll
            for (int r = 0; r < UPW; r++) {
                const int u = warp + 4 * r;
                if (u >= NU) continue;
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
#pragma unroll
                    for (int hr = 0; hr < 2; hr++)
                        st_bf16x2(stg + (gq + 8 * hr) * 40 + 8 * nt + 2 * tq, acc[r][nt][2 * hr],
                                  acc[r][nt][2 * hr + 1]);
                __syncwarp();
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int rr = (lane >> 2) + 8 * e, cc = 8 * (lane & 3);
                    const uint4 x = *reinterpret_cast<const uint4 *>(stg + rr * 40 + cc);
                    *reinterpret_cast<uint4 *>(dst + (int64_t)(16 * (u / NH) + rr) * a.V + c0 + 32 * (u % NH) + cc) = x;
                }
                __syncwarp();
            }
        }
        float slo = 1.f, shi = 1.f;  // forward: k_j scaled by e^{γ_L−γ_j}; reverse: q_i by scale·e^{γ_i}
        if constexpr (!CH) {
            sg_gscan(glo, ghi);
            const float gl = __shfl_sync(SG_FULL, ghi, 31), el = expf(gl);
            slo = REV ? a.scale * expf(glo) : expf(gl - glo);
            shi = REV ? a.scale * expf(ghi) : expf(gl - ghi);
#pragma unroll
            for (int r = 0; r < UPW; r++) dl[r][0] = el, dl[r][1] = el;
        }
        const gdnf_bf16 *Xs = reinterpret_cast<const gdnf_bf16 *>(st);
        const gdnf_bf16 *Ys;
        if (REV) {
            // the fp32 dO tile → bf16 (rounded once)
            gdnf_bf16 *Db = reinterpret_cast<gdnf_bf16 *>(sm + 2 * L::stage);
            const float *Df = reinterpret_cast<const float *>(st + L::kbytes);
            for (int e = tid; e < 64 * (BV / 2); e += 128) {
                const int i = e / (BV / 2), c = (e % (BV / 2)) * 2;
                const float2 f = *reinterpret_cast<const float2 *>(Df + i * L::LDF + c);
                st_bf16x2(Db + i * L::LDV + c, f.x, f.y);
            }
            __syncthreads();
            Ys = Db;
        } else {
            Ys = reinterpret_cast<const gdnf_bf16 *>(st + L::kbytes);
        }
#pragma unroll
        for (int r = 0; r < UPW; r++)
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc[r][nt][e] *= dl[r][e >> 1];
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            float4 sc = make_float4(1.f, 1.f, 1.f, 1.f);
            if constexpr (!CH) sc = sg_cols(kk, slo, shi);
#pragma unroll
            for (int r = 0; r < UPW; r++) {
                const int u = warp + 4 * r;
                if (u >= NU) continue;
                uint32_t af[4], bf[4];
                sg_frag_at(af, Xs, L::LDK, 16 * (u / NH), 16 * kk);  // (Xᵀ)[state rows, chunk rows]
                if constexpr (!CH) sg_scale_cols(af, sc);
#pragma unroll
                for (int p = 0; p < 2; p++) {
                    sg_frag_bkn(bf, Ys, L::LDV, 16 * kk, 32 * (u % NH) + 16 * p);
                    sg_mma2(acc[r][2 * p], acc[r][2 * p + 1], af, bf);
                }
            }
        }
    }
    if (a.s1) {
#pragma unroll
        for (int r = 0; r < UPW; r++) {
            const int u = warp + 4 * r;
            if (u >= NU) continue;
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float *p = a.s1 + state_at(u, nt, e);
                    *p = REV ? *p + acc[r][nt][e] : acc[r][nt][e];
                }
        }
    }
}

template <typename OT>
static __device__ __forceinline__ void sg_store2(OT *p, float x, float y) {
    if constexpr (std::is_same<OT, float>::value)
        *reinterpret_cast<float2 *>(p) = make_float2(x, y);
    else
        st_bf16x2(p, x, y);
}

// dst[8nt .. 8nt+1] += the row-half hr (row g or g+8) of accumulator tiles acc[0 .. NT−1], with
// every old value loaded before the first store: written one after another, each += waited
// on its own load (the compiler cannot reorder stores past loads that may alias).
template <int NT>
static __device__ __forceinline__ void sg_add_row(float *dst, const float (*acc)[4], int hr) {
    float2 x[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) x[nt] = *reinterpret_cast<const float2 *>(dst + 8 * nt);
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        x[nt].x += acc[nt][2 * hr], x[nt].y += acc[nt][2 * hr + 1];
        *reinterpret_cast<float2 *>(dst + 8 * nt) = x[nt];
    }
}

// The chunk kernels' V-tile step (sgla_fast.cu, gla_fast.cu; 256 threads, warp = row tile rt
// and half hf): the V, S, dS tiles of columns c0.. (V rows >= nr zero) by cp.async and the fp32
// dO tile rounded to bf16 into Os, one barrier, then dP += dO Vᵀ (for the warp's 16 × 32 block
// at (16rt, 32hf) when it reaches j <= i), dQ += dO Sᵀ and dK += V dSᵀ (state rows KH·hf..).
// The caller puts a barrier before it (the previous tile's readers).
template <int KD, int BVT>
static __device__ __forceinline__ void sg_vtile(const sg_args &a, gdnf_bf16 *Vs, gdnf_bf16 *Os, gdnf_bf16 *Ss,
                                                gdnf_bf16 *dSs, int64_t ci, int64_t row0, int nr, int h, int c0,
                                                float (*dP)[4], float (*dQ)[4], float (*dK)[4]) {
    constexpr int LDV = BVT + 8, KH = KD / 2, NPK = KH / 16;
    const int tid = threadIdx.x, w = tid >> 5, rt = w & 3, hf = w >> 2;
    const int64_t KV = (int64_t)KD * a.V;
    const bool below = 32 * hf <= 16 * rt + 15;
    for (int e = tid; e < 64 * (BVT / 8); e += 256) {
        const int i = e / (BVT / 8), c = (e % (BVT / 8)) * 8;
        const bool ok = i < nr;
        cp_async16(Vs + i * LDV + c, a.v + (ok ? ((row0 + i) * a.H + h) * a.V + c0 + c : 0), ok);
    }
    for (int e = tid; e < KD * (BVT / 8); e += 256) {
        const int i = e / (BVT / 8), c = (e % (BVT / 8)) * 8;
        const int64_t off = ci * KV + (int64_t)i * a.V + c0 + c;
        cp_async16(Ss + i * LDV + c, a.hs + off, true);
        cp_async16(dSs + i * LDV + c, a.dhs + off, true);
    }
    cp_async_commit();
    {
        // the fp32 dO tile → bf16: every load issued before the first conversion
        constexpr int NF = BVT / 16;  // float4 per thread
        float4 f[NF];
#pragma unroll
        for (int u = 0; u < NF; u++) {
            const int e = tid + 256 * u, i = e / (BVT / 4), c = (e % (BVT / 4)) * 4;
            f[u] = i < nr ? *reinterpret_cast<const float4 *>(a.dout + ((row0 + i) * a.H + h) * a.V + c0 + c)
                          : make_float4(0.f, 0.f, 0.f, 0.f);
        }
#pragma unroll
        for (int u = 0; u < NF; u++) {
            const int e = tid + 256 * u, i = e / (BVT / 4), c = (e % (BVT / 4)) * 4;
            st_bf16x2(Os + i * LDV + c, f[u].x, f[u].y);
            st_bf16x2(Os + i * LDV + c + 2, f[u].z, f[u].w);
        }
    }
    cp_async_wait_all();
    __syncthreads();

    // dP += dO Vᵀ, dQ += dO Sᵀ, dK += V dSᵀ (k = the tile's columns)
#pragma unroll
    for (int kc = 0; kc < BVT / 16; kc++) {
        uint32_t ao[4], av[4], bf[4];
        sg_frag_a(ao, Os, LDV, 16 * rt, 16 * kc);
        sg_frag_a(av, Vs, LDV, 16 * rt, 16 * kc);
        if (below) {
#pragma unroll
            for (int s = 0; s < 2; s++) {
                sg_frag_bnk(bf, Vs, LDV, 16 * kc, 32 * hf + 16 * s);
                sg_mma2(dP[2 * s], dP[2 * s + 1], ao, bf);
            }
        }
#pragma unroll
        for (int s = 0; s < NPK; s++) {
            sg_frag_bnk(bf, Ss, LDV, 16 * kc, KH * hf + 16 * s);
            sg_mma2(dQ[2 * s], dQ[2 * s + 1], ao, bf);
            sg_frag_bnk(bf, dSs, LDV, 16 * kc, KH * hf + 16 * s);
            sg_mma2(dK[2 * s], dK[2 * s + 1], av, bf);
        }
    }
}

// ================================================================ host side (shared)
template <typename K>
static void sg_launch(K kern, int64_t grid, int threads, size_t smem, const sg_args &a) {
    PN_CHECK_CUDA(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
#ifndef GDNF_HOST_EMU
    kern<<<(unsigned)grid, threads, smem, pn_stream()>>>(a);
#else
    emu_launch(grid, threads, smem, [&] { kern(a); });
#endif
    PN_CHECK_LAUNCH();
}

static int sg_bv(int V) { return V % 64 == 0 ? 64 : 32; }
// Output pass columns per block: the whole of V up to 128 (Q, K and A loaded once per chunk).
static int sg_bvo(int V) { return V % 128 == 0 ? 128 : sg_bv(V); }

template <int KD, bool REV, bool CH = false>
static void pass_run(const sg_args &a, int64_t BH) {
    const int BV = sg_bv(a.V);
    const int64_t grid = BH * (a.V / BV);
    if (BV == 64)
        sg_launch(sgla_pass_kernel<KD, 64, REV, CH>, grid, 128, pass_layout<KD, 64, REV>::total, a);
    else
        sg_launch(sgla_pass_kernel<KD, 32, REV, CH>, grid, 128, pass_layout<KD, 32, REV>::total, a);
}

static bool sg_aligned(const void *p, uintptr_t m) { return ((uintptr_t)p & (m - 1)) == 0; }
// The head sizes the tensor-core kernels take.
static bool sg_fast_shape(int K, int V) { return (K == 64 || K == 96 || K == 128) && V >= 32 && V % 32 == 0; }
