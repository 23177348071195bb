// attn_fallback.cuh — the built-in attention kernels (device code only; the host
// launchers are in attn_fallback.cu): causal / sliding-window GQA softmax attention,
// forward and backward, bf16 in and out, fp32 accumulation on the tensor cores (WMMA
// 16×16×16 bf16 fragments).
//
// Why this shape of kernel. It runs only where cuDNN does not (odd head dims, misaligned
// pointers, a graph no engine accepts), so it favours being plainly correct over peak
// speed: WMMA fragments keep the products on tensor cores without hand-written MMA
// layouts, everything between the products (masking, exponentials, row statistics)
// happens in shared memory in plain per-thread loops, and every shared-memory stage is
// owned either by the whole block (K/V/Q tiles, behind __syncthreads) or by one warp
// (its 16 rows of scores, behind __syncwarp).
//
// Forward, one block per (64 query rows, head, batch), 4 warps of 16 rows each, two
// passes over the visible key tiles of 64: pass 1 computes each row's max and sum of
// exponentials (online update), hence lse = m + ln l; pass 2 recomputes the scores and
// accumulates O = Σ exp(s − lse) · V in fragments. The recomputed QKᵀ costs a third more
// FLOPs than one pass but needs no rescaling of the O accumulators, whose element-to-row
// mapping WMMA does not expose.
//
// Backward (FA2 order), one block per (16·NW keys, KV head, batch): the block keeps its
// K, V tile and fp32 dK, dV accumulators in shared memory and walks every query head of
// its group and every 32-row query tile that can see its keys; per tile each warp forms
// Sᵀ = K Qᵀ and dPᵀ = V dOᵀ for its 16 keys, P = exp(s·scale − lse), dS = P ∘ (dP − Δ) ·
// scale with Δ = rowsum(dO ∘ O) precomputed, then dV += Pᵀ dO, dK += dSᵀ Q, and adds its
// share of dQ = dS K to an fp32 buffer with atomics (converted to bf16 afterwards).
//
// Shapes: D ≤ DMAX ∈ {64, 128, 256} (tiles sized for DMAX, loops run over ceil(D/16)
// column blocks, pad columns zero-filled); rows past the sequence are zero-filled and
// masked. Masks: query i at absolute position pos = i + Tk − Tq sees key j iff
// j ≤ pos and (window ≤ 0 or j > pos − window); the backward has Tq = Tk.
#pragma once
#include <cuda_bf16.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#ifndef PN_ATTN_EMULATE
#include <mma.h>
#endif

namespace pn_attn {

namespace wmma = nvcuda::wmma;
typedef __nv_bfloat16 bf16;

struct fwd_params {
    const bf16 *q, *k, *v;
    bf16 *o;
    float *lse;  // (B, Hq, Tq) or NULL
    int B, Tq, Tk, Hq, Hkv, D, window;  // window 0 = full causal
    float scale;
    int64_t kv_bs;  // batch stride of k and v in elements
    int vec;        // 16-byte global loads are legal (D % 8 == 0, aligned pointers and strides)
};

struct bwd_params {
    const bf16 *q, *k, *v, *dout;
    const float *lse, *delta;  // (B, Hq, T)
    float *dq_acc;             // (B, T, Hq, D), zeroed before the kernel
    bf16 *dk, *dv;             // (B, T, Hkv, D), written
    int B, T, Hq, Hkv, D, window;
    float scale;
    int vec;
};

__host__ __device__ constexpr size_t a128(size_t x) { return (x + 127) / 128 * 128; }

// Shared-memory plan of the forward: bf16 tiles with DMAX + 8 columns (the 8 extra
// keep WMMA's ldm a multiple of 8 and spread rows over banks), fp32 scores, bf16 P,
// fp32 staging of O for the final store.
template <int DMAX>
struct fwd_cfg {
    static constexpr int BQ = 64, BK = 64, NT = 128;
    static constexpr int LDT = DMAX + 8, LDS = BK + 4, LDP = BK + 8, LDO = DMAX + 4;
    static constexpr size_t q_off = 0;
    static constexpr size_t k_off = a128(q_off + (size_t)BQ * LDT * 2);
    static constexpr size_t v_off = a128(k_off + (size_t)BK * LDT * 2);
    static constexpr size_t s_off = a128(v_off + (size_t)BK * LDT * 2);
    static constexpr size_t p_off = a128(s_off + (size_t)BQ * LDS * 4);
    static constexpr size_t o_off = a128(p_off + (size_t)BQ * LDP * 2);
    static constexpr size_t bytes = a128(o_off + (size_t)BQ * LDO * 4);
    static_assert(bytes <= 227 * 1024, "forward tiles exceed the shared memory of one block");
};

// Backward: NW warps of 16 keys each, 32-row query tiles.
template <int DMAX, int NW>
struct bwd_cfg {
    static constexpr int BK = 16 * NW, BQ = 32, NT = 32 * NW;
    static constexpr int LDT = DMAX + 8, LDS = BQ + 4, LDP = BQ + 8, LDA = DMAX + 4, LDX = 20;
    static constexpr size_t k_off = 0;
    static constexpr size_t v_off = a128(k_off + (size_t)BK * LDT * 2);
    static constexpr size_t q_off = a128(v_off + (size_t)BK * LDT * 2);
    static constexpr size_t do_off = a128(q_off + (size_t)BQ * LDT * 2);
    static constexpr size_t dk_off = a128(do_off + (size_t)BQ * LDT * 2);
    static constexpr size_t dv_off = a128(dk_off + (size_t)BK * LDA * 4);
    static constexpr size_t st_off = a128(dv_off + (size_t)BK * LDA * 4);
    static constexpr size_t dp_off = a128(st_off + (size_t)BK * LDS * 4);
    static constexpr size_t pt_off = a128(dp_off + (size_t)BK * LDS * 4);
    static constexpr size_t ds_off = a128(pt_off + (size_t)BK * LDP * 2);
    static constexpr size_t lse_off = a128(ds_off + (size_t)BK * LDP * 2);
    static constexpr size_t dl_off = a128(lse_off + (size_t)BQ * 4);
    static constexpr size_t x_off = a128(dl_off + (size_t)BQ * 4);
    static constexpr size_t bytes = a128(x_off + (size_t)NW * 16 * LDX * 4);
    static_assert(bytes <= 227 * 1024, "backward tiles exceed the shared memory of one block");
};

#ifndef PN_ATTN_EMULATE
__device__ __forceinline__ unsigned char *attn_smem() {
    extern __shared__ __align__(128) unsigned char pn_attn_smem_[];
    return pn_attn_smem_;
}
#endif

// Block-cooperative load of `rows` rows starting at sequence row row0 into a bf16
// tile with LD columns: row t holds src[(row0 + t) · row_stride + d] for d < D, zero for
// d in [D, 16·nd16) and for rows outside [0, end) — zeros, not garbage, because a NaN
// in an unused row would survive the multiplication by a zero probability.
template <int LD>
__device__ __forceinline__ void tile_load(bf16 *dst, const bf16 *src, int64_t row_stride, int row0, int end,
                                          int rows, int D, int nd16, int vec) {
    const int n8 = nd16 * 2;  // 8-column chunks per row
    const bf16 zero = __float2bfloat16(0.0f);
    for (int idx = threadIdx.x; idx < rows * n8; idx += blockDim.x) {
        const int t = idx / n8, c = (idx - t * n8) * 8, g = row0 + t;
        bf16 *d = dst + t * LD + c;
        if (g >= 0 && g < end) {
            const bf16 *s = src + (int64_t)g * row_stride + c;
            if (vec && c + 8 <= D) {
                *reinterpret_cast<uint4 *>(d) = *reinterpret_cast<const uint4 *>(s);
            } else {
                for (int e = 0; e < 8; e++) d[e] = c + e < D ? s[e] : zero;
            }
        } else {
            for (int e = 0; e < 8; e++) d[e] = zero;
        }
    }
}

// One warp: S (16 × BK, fp32, ld LDS) = Q_w (16 × 16·nd16) · K_tileᵀ.
template <int LDT, int LDS, int BK>
__device__ __forceinline__ void warp_qkt(const bf16 *Qw, const bf16 *Ks, float *Sw, int nd16) {
    for (int n = 0; n < BK / 16; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
        wmma::fill_fragment(c, 0.0f);
        for (int kk = 0; kk < nd16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> bk;
            wmma::load_matrix_sync(a, Qw + kk * 16, LDT);
            wmma::load_matrix_sync(bk, Ks + n * 16 * LDT + kk * 16, LDT);
            wmma::mma_sync(c, a, bk, c);
        }
        wmma::store_matrix_sync(Sw + n * 16, c, LDS, wmma::mem_row_major);
    }
}

template <int DMAX>
__global__ void __launch_bounds__(128) attn_fwd_kernel(const fwd_params p) {
    typedef fwd_cfg<DMAX> C;
    unsigned char *sm = attn_smem();
    bf16 *Qs = reinterpret_cast<bf16 *>(sm + C::q_off);
    bf16 *Ks = reinterpret_cast<bf16 *>(sm + C::k_off);
    bf16 *Vs = reinterpret_cast<bf16 *>(sm + C::v_off);
    float *Ss = reinterpret_cast<float *>(sm + C::s_off);
    bf16 *Ps = reinterpret_cast<bf16 *>(sm + C::p_off);
    float *Os = reinterpret_cast<float *>(sm + C::o_off);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int q0 = blockIdx.x * C::BQ, h = blockIdx.y, b = blockIdx.z;
    const int hk = h / (p.Hq / p.Hkv);
    const int D = p.D, nd16 = (D + 15) >> 4, off = p.Tk - p.Tq;
    const int64_t ldq = (int64_t)p.Hq * D, ldk = (int64_t)p.Hkv * D;
    const bf16 *qb = p.q + (int64_t)b * p.Tq * ldq + (int64_t)h * D;
    const bf16 *kb = p.k + (int64_t)b * p.kv_bs + (int64_t)hk * D;
    const bf16 *vb = p.v + (int64_t)b * p.kv_bs + (int64_t)hk * D;
    // Keys any row of this tile can see: [k_lo, k_hi].
    const int q_last = (q0 + C::BQ < p.Tq ? q0 + C::BQ : p.Tq) - 1;
    const int k_hi = q_last + off;
    int k_lo = 0;
    if (p.window > 0) k_lo = q0 + off - p.window + 1 > 0 ? q0 + off - p.window + 1 : 0;

    tile_load<C::LDT>(Qs, qb, ldq, q0, p.Tq, C::BQ, D, nd16, p.vec);

    // Lanes 0..15 of warp w own row w·16 + lane for the per-row work.
    const int qi = q0 + warp * 16 + lane;
    const bool row_ok = lane < 16 && qi < p.Tq;
    const int pos = qi + off;
    const int vis_lo = p.window > 0 ? pos - p.window + 1 : 0;
    const bf16 *Qw = Qs + warp * 16 * C::LDT;
    float *Sw = Ss + warp * 16 * C::LDS;
    bf16 *Pw = Ps + warp * 16 * C::LDP;

    // Pass 1: row max m and Σ exp(s − m) over the visible keys.
    float m = -INFINITY, l = 0.0f;
    for (int k0 = k_lo; k0 <= k_hi; k0 += C::BK) {
        __syncthreads();  // the previous tile is no longer read; the Q tile is complete
        tile_load<C::LDT>(Ks, kb, ldk, k0, p.Tk, C::BK, D, nd16, p.vec);
        __syncthreads();
        warp_qkt<C::LDT, C::LDS, C::BK>(Qw, Ks, Sw, nd16);
        __syncwarp();
        if (row_ok) {
            const float *s = Sw + lane * C::LDS;
            const int j0 = (vis_lo > k0 ? vis_lo : k0) - k0;
            const int j1 = (pos < k0 + C::BK - 1 ? pos : k0 + C::BK - 1) - k0;
            if (j0 <= j1) {
                float mt = -INFINITY;
                for (int j = j0; j <= j1; j++) mt = fmaxf(mt, s[j] * p.scale);
                const float mn = fmaxf(m, mt);
                float sum = 0.0f;
                for (int j = j0; j <= j1; j++) sum += __expf(s[j] * p.scale - mn);
                l = l * __expf(m - mn) + sum;
                m = mn;
            }
        }
        __syncwarp();
    }
    const float lse = row_ok ? m + logf(l) : 0.0f;
    if (row_ok && p.lse) p.lse[((int64_t)b * p.Hq + h) * p.Tq + qi] = lse;

    // Pass 2: O = Σ_j exp(s_j − lse) v_j, already normalised.
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[DMAX / 16];
#pragma unroll
    for (int c = 0; c < DMAX / 16; c++) wmma::fill_fragment(acc[c], 0.0f);
    for (int k0 = k_lo; k0 <= k_hi; k0 += C::BK) {
        __syncthreads();
        tile_load<C::LDT>(Ks, kb, ldk, k0, p.Tk, C::BK, D, nd16, p.vec);
        tile_load<C::LDT>(Vs, vb, ldk, k0, p.Tk, C::BK, D, nd16, p.vec);
        __syncthreads();
        warp_qkt<C::LDT, C::LDS, C::BK>(Qw, Ks, Sw, nd16);
        __syncwarp();
        if (lane < 16) {
            const float *s = Sw + lane * C::LDS;
            bf16 *pr = Pw + lane * C::LDP;
            for (int j = 0; j < C::BK; j++) {
                const int kj = k0 + j;
                const bool vis = row_ok && kj >= vis_lo && kj <= pos;
                pr[j] = __float2bfloat16(vis ? __expf(s[j] * p.scale - lse) : 0.0f);
            }
        }
        __syncwarp();
#pragma unroll
        for (int kk = 0; kk < C::BK / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
            wmma::load_matrix_sync(fa, Pw + kk * 16, C::LDP);
#pragma unroll
            for (int c = 0; c < DMAX / 16; c++) {
                if (c < nd16) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
                    wmma::load_matrix_sync(fb, Vs + kk * 16 * C::LDT + c * 16, C::LDT);
                    wmma::mma_sync(acc[c], fa, fb, acc[c]);
                }
            }
        }
    }

    float *Ow = Os + warp * 16 * C::LDO;
#pragma unroll
    for (int c = 0; c < DMAX / 16; c++)
        if (c < nd16) wmma::store_matrix_sync(Ow + c * 16, acc[c], C::LDO, wmma::mem_row_major);
    __syncwarp();
    bf16 *ob = p.o + (int64_t)b * p.Tq * ldq + (int64_t)h * D;
    for (int e = lane; e < 16 * D; e += 32) {
        const int r = e / D, d = e - r * D, qq = q0 + warp * 16 + r;
        if (qq < p.Tq) ob[(int64_t)qq * ldq + d] = __float2bfloat16(Ow[r * C::LDO + d]);
    }
}

template <int DMAX, int NW>
__global__ void __launch_bounds__(NW * 32) attn_bwd_kernel(const bwd_params p) {
    typedef bwd_cfg<DMAX, NW> C;
    unsigned char *sm = attn_smem();
    bf16 *Ks = reinterpret_cast<bf16 *>(sm + C::k_off);
    bf16 *Vs = reinterpret_cast<bf16 *>(sm + C::v_off);
    bf16 *Qs = reinterpret_cast<bf16 *>(sm + C::q_off);
    bf16 *dOs = reinterpret_cast<bf16 *>(sm + C::do_off);
    float *dKs = reinterpret_cast<float *>(sm + C::dk_off);
    float *dVs = reinterpret_cast<float *>(sm + C::dv_off);
    float *Sts = reinterpret_cast<float *>(sm + C::st_off);
    float *dPs = reinterpret_cast<float *>(sm + C::dp_off);
    bf16 *Pts = reinterpret_cast<bf16 *>(sm + C::pt_off);
    bf16 *dSs = reinterpret_cast<bf16 *>(sm + C::ds_off);
    float *lse_s = reinterpret_cast<float *>(sm + C::lse_off);
    float *dl_s = reinterpret_cast<float *>(sm + C::dl_off);
    float *Xs = reinterpret_cast<float *>(sm + C::x_off);

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int k0 = blockIdx.x * C::BK, hk = blockIdx.y, b = blockIdx.z;
    const int T = p.T, D = p.D, nd16 = (D + 15) >> 4, G = p.Hq / p.Hkv;
    const int64_t ldq = (int64_t)p.Hq * D, ldk = (int64_t)p.Hkv * D;
    const bf16 *kb = p.k + (int64_t)b * T * ldk + (int64_t)hk * D;
    const bf16 *vb = p.v + (int64_t)b * T * ldk + (int64_t)hk * D;

    for (int e = tid; e < C::BK * C::LDA; e += C::NT) {
        dKs[e] = 0.0f;
        dVs[e] = 0.0f;
    }
    tile_load<C::LDT>(Ks, kb, ldk, k0, T, C::BK, D, nd16, p.vec);
    tile_load<C::LDT>(Vs, vb, ldk, k0, T, C::BK, D, nd16, p.vec);
    // Queries that see a key of this tile: i >= k0 (causal) and i < k_last + window.
    const int k_last = (k0 + C::BK < T ? k0 + C::BK : T) - 1;
    int i_end = T;
    if (p.window > 0 && k_last + p.window < T) i_end = k_last + p.window;

    const bf16 *Kw = Ks + warp * 16 * C::LDT, *Vw = Vs + warp * 16 * C::LDT;
    float *Stw = Sts + warp * 16 * C::LDS, *dPw = dPs + warp * 16 * C::LDS;
    bf16 *Ptw = Pts + warp * 16 * C::LDP, *dSw = dSs + warp * 16 * C::LDP;
    float *dKw = dKs + warp * 16 * C::LDA, *dVw = dVs + warp * 16 * C::LDA;
    float *Xw = Xs + warp * 16 * C::LDX;

    for (int h = hk * G; h < (hk + 1) * G; h++) {
        const bf16 *qb = p.q + (int64_t)b * T * ldq + (int64_t)h * D;
        const bf16 *dob = p.dout + (int64_t)b * T * ldq + (int64_t)h * D;
        const float *lseb = p.lse + ((int64_t)b * p.Hq + h) * T;
        const float *dlb = p.delta + ((int64_t)b * p.Hq + h) * T;
        float *dqb = p.dq_acc + (int64_t)b * T * ldq + (int64_t)h * D;
        for (int i0 = k0; i0 < i_end; i0 += C::BQ) {
            __syncthreads();  // every warp is done with the previous Q / dO tile
            tile_load<C::LDT>(Qs, qb, ldq, i0, T, C::BQ, D, nd16, p.vec);
            tile_load<C::LDT>(dOs, dob, ldq, i0, T, C::BQ, D, nd16, p.vec);
            for (int t = tid; t < C::BQ; t += C::NT) {
                const int i = i0 + t;
                lse_s[t] = i < T ? lseb[i] : 0.0f;
                dl_s[t] = i < T ? dlb[i] : 0.0f;
            }
            __syncthreads();

            // Sᵀ_w = K_w Qᵀ and dPᵀ_w = V_w dOᵀ, each (16 keys × BQ queries).
            for (int n = 0; n < C::BQ / 16; n++) {
                wmma::fragment<wmma::accumulator, 16, 16, 16, float> cs, cp;
                wmma::fill_fragment(cs, 0.0f);
                wmma::fill_fragment(cp, 0.0f);
                for (int kk = 0; kk < nd16; kk++) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> ak, av;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> bq, bo;
                    wmma::load_matrix_sync(ak, Kw + kk * 16, C::LDT);
                    wmma::load_matrix_sync(av, Vw + kk * 16, C::LDT);
                    wmma::load_matrix_sync(bq, Qs + n * 16 * C::LDT + kk * 16, C::LDT);
                    wmma::load_matrix_sync(bo, dOs + n * 16 * C::LDT + kk * 16, C::LDT);
                    wmma::mma_sync(cs, ak, bq, cs);
                    wmma::mma_sync(cp, av, bo, cp);
                }
                wmma::store_matrix_sync(Stw + n * 16, cs, C::LDS, wmma::mem_row_major);
                wmma::store_matrix_sync(dPw + n * 16, cp, C::LDS, wmma::mem_row_major);
            }
            __syncwarp();
            for (int e = lane; e < 16 * C::BQ; e += 32) {
                const int r = e / C::BQ, c = e - r * C::BQ;
                const int j = k0 + warp * 16 + r, i = i0 + c;
                const bool vis = j < T && i < T && j <= i && (p.window <= 0 || j > i - p.window);
                float pv = 0.0f, ds = 0.0f;
                if (vis) {
                    pv = __expf(Stw[r * C::LDS + c] * p.scale - lse_s[c]);
                    ds = pv * (dPw[r * C::LDS + c] - dl_s[c]) * p.scale;
                }
                Ptw[r * C::LDP + c] = __float2bfloat16(pv);
                dSw[r * C::LDP + c] = __float2bfloat16(ds);
            }
            __syncwarp();

            // dV_w += Pᵀ_w dO, dK_w += dSᵀ_w Q (fp32 accumulators in shared memory).
            for (int c = 0; c < nd16; c++) {
                wmma::fragment<wmma::accumulator, 16, 16, 16, float> av, ak;
                wmma::load_matrix_sync(av, dVw + c * 16, C::LDA, wmma::mem_row_major);
                wmma::load_matrix_sync(ak, dKw + c * 16, C::LDA, wmma::mem_row_major);
                for (int kk = 0; kk < C::BQ / 16; kk++) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> ap, ad;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bo, bq;
                    wmma::load_matrix_sync(ap, Ptw + kk * 16, C::LDP);
                    wmma::load_matrix_sync(ad, dSw + kk * 16, C::LDP);
                    wmma::load_matrix_sync(bo, dOs + kk * 16 * C::LDT + c * 16, C::LDT);
                    wmma::load_matrix_sync(bq, Qs + kk * 16 * C::LDT + c * 16, C::LDT);
                    wmma::mma_sync(av, ap, bo, av);
                    wmma::mma_sync(ak, ad, bq, ak);
                }
                wmma::store_matrix_sync(dVw + c * 16, av, C::LDA, wmma::mem_row_major);
                wmma::store_matrix_sync(dKw + c * 16, ak, C::LDA, wmma::mem_row_major);
            }

            // dQ (BQ × D) += dS_w (BQ × 16) K_w (16 × D); dS_w is dSᵀ_w read column-major.
            for (int n = 0; n < C::BQ / 16; n++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> as;
                wmma::load_matrix_sync(as, dSw + n * 16, C::LDP);
                for (int c = 0; c < nd16; c++) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bk;
                    wmma::fragment<wmma::accumulator, 16, 16, 16, float> cq;
                    wmma::load_matrix_sync(bk, Kw + c * 16, C::LDT);
                    wmma::fill_fragment(cq, 0.0f);
                    wmma::mma_sync(cq, as, bk, cq);
                    wmma::store_matrix_sync(Xw, cq, C::LDX, wmma::mem_row_major);
                    __syncwarp();
                    for (int e = lane; e < 256; e += 32) {
                        const int rr = e >> 4, cc = e & 15, i = i0 + n * 16 + rr, d = c * 16 + cc;
                        if (i < T && d < D) atomicAdd(dqb + (int64_t)i * ldq + d, Xw[rr * C::LDX + cc]);
                    }
                    __syncwarp();
                }
            }
        }
    }
    __syncthreads();
    bf16 *dkb = p.dk + (int64_t)b * T * ldk + (int64_t)hk * D;
    bf16 *dvb = p.dv + (int64_t)b * T * ldk + (int64_t)hk * D;
    for (int e = tid; e < C::BK * D; e += C::NT) {
        const int r = e / D, d = e - r * D, j = k0 + r;
        if (j < T) {
            dkb[(int64_t)j * ldk + d] = __float2bfloat16(dKs[r * C::LDA + d]);
            dvb[(int64_t)j * ldk + d] = __float2bfloat16(dVs[r * C::LDA + d]);
        }
    }
}

}  // namespace pn_attn
