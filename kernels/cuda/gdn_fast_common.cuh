// gdn_fast_common.cuh — device code shared by the tensor-core gated delta rule forward
// (gdn_fast.cu) and backward (gdn_fast_bwd.cu): mma.sync / ldmatrix / cp.async primitives,
// the per-chunk kernel (q/k norms, decay cumsum, A = (I + L)⁻¹ diag(β), P, row scalars) and
// the state pass. Moved here verbatim from gdn_fast.cu; the two template switches added for
// the backward default to off, so the forward's instantiations are the code they were:
//   gdnf_prep_kernel<KD, AU>: AU also writes A = (I + L)⁻¹ without the diag(β) (argument Au)
//   and the row values {rq, rk, γ, β} (argument Rx, float4 (BH, NT, 64));
//   gdnf_scan_kernel<KD, BV, OUT, OT, HS>: HS stores each chunk's START state, as the bf16
//   operand copy Sb the chunk's matmuls use, to a.hs (BH, NT, KD, V).
// The algorithm, fragment layouts and shared-memory conventions: the comment at the top of
// gdn_fast.cu and kernels/cuda/GDN_NOTES.md §5.
#pragma once
#ifndef GDNF_HOST_EMU
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_gdn_fast.h"
#include <math.h>
#include <type_traits>
#else
#include "gdnf_emu.h"
#endif
#include "kernels/cuda/wgmma.cuh"  // wg_off: the core-matrix tiling (gdnf_eo)

#define GDNF_C 64         // chunk rows
#define GDNF_LDA 72       // bf16 row stride of (64, 64) tiles in shared memory (144 B)
#define GDNF_LDF 68       // fp32 row stride of L and A in the prep kernel (272 B)
#define GDNF_EPS 1e-6f    // the L2-norm epsilon of the CPU op
#define GDNF_CB 8         // state columns per block of the combine kernel
#define GDNF_SCAN_THREADS 256
#define GDNF_PREP_THREADS 128

typedef __nv_bfloat16 gdnf_bf16;

// ================================================================ device primitives
#ifndef GDNF_HOST_EMU
extern __shared__ __align__(16) unsigned char gdnf_smem[];
#define GDNF_SMEM gdnf_smem

static __device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}
static __device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}
// c += a · b (16×16 bf16 · 16×8 bf16, fp32 accumulate).
static __device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// 16 bytes global → shared, asynchronous; valid == false writes 16 zero bytes (src unread).
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(n) : "memory");
}
// 8 bytes, for fp32 buffers whose contract promises only 8-byte alignment (cp.async.cg is 16-only).
static __device__ __forceinline__ void cp_async8(void *dst, const void *src, bool valid) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    const int n = valid ? 8 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(d), "l"(src), "r"(n) : "memory");
}
// The 8×8 bf16 matrix a warp holds as an mma fragment (lane: row lane/4, columns 2·(lane%4) and
// +1 in the low and high halves), transposed: the result holds row lane/4 of the transpose.
static __device__ __forceinline__ uint32_t movm_trans(uint32_t x) {
    uint32_t y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}
static __device__ __forceinline__ void cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
static __device__ __forceinline__ void cp_async_wait_all(void) { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
// Waits for every committed group but the most recent one (that one may still be in flight).
static __device__ __forceinline__ void cp_async_wait_but_last(void) {
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}
// Chunk-ready flags between the prep kernel and a state pass running at the same time
// (gdn_fast.cu, "prep overlap"): the writer's stores, then __threadfence and this release
// store; the reader's acquire load, then a barrier before its block reads the chunk.
static __device__ __forceinline__ void gdnf_flag_release(unsigned *p) {
    asm volatile("st.release.gpu.global.u32 [%0], %1;\n" ::"l"(p), "r"(1u) : "memory");
}
static __device__ __forceinline__ unsigned gdnf_flag_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}
// Spins until chunk ci's flag is set.
static __device__ __forceinline__ void gdnf_flag_wait(const unsigned *ready, int64_t ci) {
    while (!gdnf_flag_acquire(ready + ci)) __nanosleep(64);
}
#else
static inline void gdnf_flag_release(unsigned *p) { __atomic_store_n(p, 1u, __ATOMIC_RELEASE); }
// The emulation runs every launch to its end in host order (gdn_fast.cu launches the whole
// prep before the pass there), so a flag that is not set is a wrong index: stop.
static inline void gdnf_flag_wait(const unsigned *ready, int64_t ci) {
    if (!__atomic_load_n(ready + ci, __ATOMIC_ACQUIRE)) {
        fprintf(stderr, "gdnf_flag_wait: chunk %lld is not marked ready\n", (long long)ci);
        abort();
    }
}
#endif

static __device__ __forceinline__ float gdnf_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float bf2f(gdnf_bf16 x) { return __bfloat162float(x); }
// Element offset of (r, c) in a bf16 tile of row stride ld: row-major (TL = false), or the
// core-matrix tiling of wgmma.cuh with ld columns (TL = true; 8 × 8 blocks of 128 bytes, row
// blocks outer), which wgmma reads through descriptors and ldmatrix reads row by row (each
// 8-element row segment stays 16 contiguous bytes, so the mma.sync helpers work on both).
template <bool TL>
static __host__ __device__ __forceinline__ int gdnf_eo(int r, int c, int ld) {
    if constexpr (TL)
        return wg_off(r, c, ld) >> 1;
    else
        return r * ld + c;
}
// The e-th 16-byte piece (row r, first column c) of a tile with C columns, in the order a
// loader's threads take them: row-major, or (TL) eight consecutive pieces = one core matrix
// (rows 8x .. 8x+7, one column block), so that eight threads fill 128 contiguous bytes.
template <bool TL, int C>
static __device__ __forceinline__ void gdnf_piece(int e, int &r, int &c) {
    if constexpr (TL)
        r = (e & 7) + 8 * (e / C), c = ((e >> 3) % (C / 8)) * 8;
    else
        r = e / (C / 8), c = (e % (C / 8)) * 8;
}
// The chunk's raw K rows (and Q rows when Qs) (GDNF_C, KD) bf16 → shared memory with row
// stride ldk, rows past T zero-filled, by cp.async over NTHR threads (the caller commits and
// waits). row0 = (b, t0) in (B, T); q, k are (B, T, H, KD). TL: gdnf_eo's layout.
template <int KD, int NTHR, bool TL = false>
static __device__ __forceinline__ void gdnf_load_kq(gdnf_bf16 *Ks, gdnf_bf16 *Qs, int ldk, const gdnf_bf16 *k,
                                                    const gdnf_bf16 *q, int64_t row0, int nr, int H, int h) {
    for (int e = threadIdx.x; e < GDNF_C * (KD / 8); e += NTHR) {
        int i, c;
        gdnf_piece<TL, KD>(e, i, c);
        const bool ok = i < nr;
        const int64_t off = ok ? ((row0 + i) * H + h) * KD + c : 0;
        cp_async16(Ks + gdnf_eo<TL>(i, c, ldk), k + off, ok);
        if (Qs) cp_async16(Qs + gdnf_eo<TL>(i, c, ldk), q + off, ok);
    }
}
// Chunk ci's A (and P when Ps) (GDNF_C, GDNF_C) bf16 → shared memory, row stride GDNF_LDA
// (TL: gdnf_eo's tiling with GDNF_C columns).
template <int NTHR, bool TL = false>
static __device__ __forceinline__ void gdnf_load_ap(gdnf_bf16 *As, gdnf_bf16 *Ps, const gdnf_bf16 *A,
                                                    const gdnf_bf16 *P, int64_t ci) {
    constexpr int LD = TL ? GDNF_C : GDNF_LDA;
    for (int e = threadIdx.x; e < GDNF_C * 8; e += NTHR) {
        int i, c;
        gdnf_piece<TL, GDNF_C>(e, i, c);
        const int64_t off = ci * (GDNF_C * GDNF_C) + i * GDNF_C + c;
        cp_async16(As + gdnf_eo<TL>(i, c, LD), A + off, true);
        if (Ps) cp_async16(Ps + gdnf_eo<TL>(i, c, LD), P + off, true);
    }
}
// Two floats → one register of two bf16, the first in the low half (lower column index).
static __device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}
static __device__ __forceinline__ void st_bf16x2(gdnf_bf16 *p, float lo, float hi) {
    *reinterpret_cast<uint32_t *>(p) = pack_bf16x2(lo, hi);
}
static __device__ __forceinline__ float2 ld_bf16x2(const gdnf_bf16 *p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(p));
}

// The float with bits u (bf16 → fp32 is the bf16 bits in the high half).
static __device__ __forceinline__ float gdnf_u2f(uint32_t u) {
#ifndef GDNF_HOST_EMU
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// ================================================================ kernel 1: per chunk
// Shared memory: [Ks | Qs] (64, KD+8) bf16 each, later reused as [L | A] (64, 68) fp32
// each | Tw 4 × (16, 4) fp32 | gin, gam, bet, rk, rq (64) fp32: 37 KB; 90 registers allow 5
// blocks per SM (P goes to global memory straight from the mma fragments; staging it here
// made the block 49 KB and the SM hold 4).
#define PREP_U_BYTES ((size_t)2 * GDNF_C * GDNF_LDF * 4)  // >= 2·64·(KD+8)·2 for KD <= 128
#define PREP_T_OFF PREP_U_BYTES
#define PREP_S_OFF (PREP_T_OFF + (size_t)4 * 64 * 4)
#define PREP_SMEM_BYTES (PREP_S_OFF + (size_t)5 * GDNF_C * 4)

// The six blocks below the diagonal of A are merged per 4-column slice: warp w owns columns
// 4w .. 4w+3 of every 16-wide block column, lane = (row lane/2, columns +2(lane%2), +1).
// (X Y)[:, slice] needs only Y[:, slice], and every Y a merge reads (A_mb, m > b) is a slice
// this warp wrote itself, so after the diagonal blocks the warps need no barrier, only
// __syncwarp, and share the work evenly. (Whole 16×16 blocks per warp, as before, left
// the critical path on warp 0 at 7 block products behind 3 barriers.) Each element sums
// its products in the same order as before (m = 0 .. 15 per product, products in turn).
// acc (this lane's two elements of row lane/2) += X · Y[:, c .. c+1], X, Y 16×16 fp32 (Y may be
// a 16×4 slice), row strides ldx, ldy; the products summed over m = 0 .. 15 in order.
static __device__ __forceinline__ void mm16s_acc(float acc[2], const float *X, int ldx, const float *Y, int ldy,
                                                 int c) {
    const int r = (threadIdx.x & 31) >> 1;
#pragma unroll
    for (int m = 0; m < 16; m++) {
        const float x = X[r * ldx + m];
        const float2 y = *reinterpret_cast<const float2 *>(Y + m * ldy + c);
        acc[0] += x * y.x, acc[1] += x * y.y;
    }
}
// This lane's columns of the warp's slice.
static __device__ __forceinline__ int merge_col(void) { return 4 * (threadIdx.x >> 5) + 2 * (threadIdx.x & 1); }
// A_ab[:, slice] = −A_aa · T[:, slice], T (the merged sum, in acc) staged in Tw (16, 4).
static __device__ __forceinline__ void merge_finish(float *Ai, float *Tw, int a, int b, const float acc[2]) {
    const int r = (threadIdx.x & 31) >> 1, tc = 2 * (threadIdx.x & 1);
    Tw[r * 4 + tc] = acc[0], Tw[r * 4 + tc + 1] = acc[1];
    __syncwarp();
    float o[2] = {0.f, 0.f};
    mm16s_acc(o, Ai + 16 * a * GDNF_LDF + 16 * a, GDNF_LDF, Tw, 4, tc);
    float *D = Ai + (16 * a + r) * GDNF_LDF + 16 * b + merge_col();
    D[0] = -o[0], D[1] = -o[1];
    __syncwarp();  // the slice is read by this warp's next merge; Tw is free again
}

// Which chunks a prep grid covers and whether it marks them ready: BH = 0 → block ci is chunk
// ci (every chunk); BH > 0 → chunk-major over chunks n0 .. of all BH heads. ready (BH·NT
// flags, zeroed) → each block sets its chunk's flag after its last store.
struct gdnf_prep_order {
    int64_t BH;
    int n0;
    unsigned *ready;
};

template <int KD, bool AU = false>
__global__ void __launch_bounds__(GDNF_PREP_THREADS)
    gdnf_prep_kernel(const gdnf_bf16 *__restrict__ q, const gdnf_bf16 *__restrict__ k, const float *__restrict__ g,
                     const float *__restrict__ beta, gdnf_bf16 *__restrict__ Ag, gdnf_bf16 *__restrict__ Pg,
                     float4 *__restrict__ Rg, int T, int H, int NT, float scale, int l2,
                     gdnf_bf16 *__restrict__ Au = nullptr, float4 *__restrict__ Rx = nullptr,
                     const gdnf_prep_order ord = gdnf_prep_order{0, 0, nullptr}) {
    constexpr int LDK = KD + 8, LDF = GDNF_LDF;
    static_assert(2 * GDNF_C * LDK * 2 <= (int)PREP_U_BYTES, "K/Q tiles must fit the L/A region");
    unsigned char *sm = GDNF_SMEM;
    gdnf_bf16 *Ks = reinterpret_cast<gdnf_bf16 *>(sm), *Qs = Ks + GDNF_C * LDK;
    float *Lm = reinterpret_cast<float *>(sm), *Ai = Lm + GDNF_C * LDF;  // after the Gram products
    float *Tw = reinterpret_cast<float *>(sm + PREP_T_OFF);
    float *gin = reinterpret_cast<float *>(sm + PREP_S_OFF), *gam = gin + GDNF_C, *bet = gam + GDNF_C;
    float *rk = bet + GDNF_C, *rq = rk + GDNF_C;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    // ci = b·h·NT + n: block ci, or (ord.BH > 0) chunk-major from chunk ord.n0, so that a
    // partial grid finishes the early chunks of every head first
    const int64_t ci = ord.BH > 0 ? (int64_t)(blockIdx.x % ord.BH) * NT + ord.n0 + (int64_t)(blockIdx.x / ord.BH)
                                  : (int64_t)blockIdx.x;
    const int64_t bh = ci / NT;
    const int n = (int)(ci % NT), b = (int)(bh / H), h = (int)(bh % H);
    const int t0 = n * GDNF_C, nr = min(GDNF_C, T - t0);
    const int64_t row0 = (int64_t)b * T + t0;  // (b, t0) in (B, T)

    gdnf_load_kq<KD, GDNF_PREP_THREADS>(Ks, Qs, LDK, k, q, row0, nr, H, h);
    cp_async_commit();
    if (tid < GDNF_C) {
        const bool ok = tid < nr;
        const int64_t gi = (row0 + tid) * H + h;
        gin[tid] = ok && g ? g[gi] : 0.f;  // padding adds 0: γ past the end stays γ_last
        bet[tid] = ok ? beta[gi] : 0.f;
    }
    cp_async_wait_all();
    __syncthreads();

    // Row norms of the raw rows: four lanes per row, each KD/4 columns by 16-byte loads, then
    // two shuffles (a warp per row with 2-byte loads and two full warp sums took ~1/5 of the
    // kernel's instructions); rows past T get factor 0.
    for (int i0 = 0; i0 < GDNF_C; i0 += 32) {  // 4 warps × 8 rows per pass
        const int i = i0 + 8 * warp + (lane >> 2), c0 = (lane & 3) * (KD / 4);
        float sk = 0.f, sq = 0.f;
#pragma unroll
        for (int u = 0; u < KD / 32; u++) {
            const uint4 kr = *reinterpret_cast<const uint4 *>(Ks + i * LDK + c0 + 8 * u);
            const uint4 qr = *reinterpret_cast<const uint4 *>(Qs + i * LDK + c0 + 8 * u);
            const uint32_t kw[4] = {kr.x, kr.y, kr.z, kr.w}, qw[4] = {qr.x, qr.y, qr.z, qr.w};
#pragma unroll
            for (int e = 0; e < 4; e++) {  // bf16 pair → two floats: the bits moved up, exact
                const float x0 = gdnf_u2f(kw[e] << 16), x1 = gdnf_u2f(kw[e] & 0xffff0000u);
                const float y0 = gdnf_u2f(qw[e] << 16), y1 = gdnf_u2f(qw[e] & 0xffff0000u);
                sk += x0 * x0, sq += y0 * y0;
                sk += x1 * x1, sq += y1 * y1;
            }
        }
        sk += __shfl_xor_sync(0xffffffffu, sk, 1), sq += __shfl_xor_sync(0xffffffffu, sq, 1);
        sk += __shfl_xor_sync(0xffffffffu, sk, 2), sq += __shfl_xor_sync(0xffffffffu, sq, 2);
        if ((lane & 3) == 0) {
            const bool ok = i < nr;
            rk[i] = ok ? (l2 ? 1.0f / sqrtf(sk + GDNF_EPS) : 1.0f) : 0.f;
            rq[i] = ok ? (l2 ? 1.0f / sqrtf(sq + GDNF_EPS) : 1.0f) : 0.f;
        }
    }
    // γ = inclusive cumsum of g over the chunk, in double: lane l holds rows 2l, 2l+1.
    if (warp == 0) {
        const double a0 = gin[2 * lane], a1 = a0 + gin[2 * lane + 1];
        double x = a1;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const double y = __shfl_up_sync(0xffffffffu, x, o);
            if (lane >= o) x += y;
        }
        double ex = __shfl_up_sync(0xffffffffu, x, 1);
        if (lane == 0) ex = 0.0;
        gam[2 * lane] = (float)(ex + a0);
        gam[2 * lane + 1] = (float)x;
    }
    __syncthreads();
    if (tid < GDNF_C) {
        const int i = tid;
        const float gl = gam[GDNF_C - 1], eg = expf(gam[i]);
        Rg[ci * GDNF_C + i] = make_float4(scale * rq[i] * eg, rk[i] * eg, rk[i] * expf(gl - gam[i]), expf(gl));
        if constexpr (AU) Rx[ci * GDNF_C + i] = make_float4(rq[i], rk[i], gam[i], bet[i]);
    }

    // K Kᵀ and Q Kᵀ, row tile = warp, column tiles 0 .. 2·warp+1 (the blocks with j <= i).
    const int w = warp, gq = lane >> 2, tq = lane & 3;
    float ck[8][4], cq[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) ck[nt][e] = 0.f, cq[nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD / 16; kk++) {
        uint32_t ak[4], aq[4];
        const int ar = 16 * w + (lane & 15), ac = 16 * kk + (lane >> 4) * 8;
        ldsm_x4(ak, Ks + ar * LDK + ac);
        ldsm_x4(aq, Qs + ar * LDK + ac);
#pragma unroll
        for (int np = 0; np < 4; np++)
            if (np <= w) {
                uint32_t bb[4];  // Kᵀ: n = key row j, k = feature; stored (n, k)
                ldsm_x4(bb, Ks + (16 * np + (lane & 7) + ((lane >> 4) << 3)) * LDK + 16 * kk + ((lane >> 3) & 1) * 8);
                mma_bf16(ck[2 * np], ak, bb[0], bb[1]);
                mma_bf16(ck[2 * np + 1], ak, bb[2], bb[3]);
                mma_bf16(cq[2 * np], aq, bb[0], bb[1]);
                mma_bf16(cq[2 * np + 1], aq, bb[2], bb[3]);
            }
    }
    __syncthreads();  // Ks, Qs become L, A

    // L (fp32, shared) and P (bf16, global: a pair of columns per 4-byte store), masked
    // before exp; all 64 columns of the row tile.
    gdnf_bf16 *Po = Pg + ci * (GDNF_C * GDNF_C);
#pragma unroll
    for (int nt = 0; nt < 8; nt++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const int i = 16 * w + gq + hh * 8;
            float pv[2];
#pragma unroll
            for (int x = 0; x < 2; x++) {
                const int e = 2 * hh + x, j = 8 * nt + 2 * tq + x;
                float lv = 0.f;
                pv[x] = 0.f;
                if (nt <= 2 * w + 1 && j <= i) {
                    const float ex = expf(gam[i] - gam[j]);
                    if (j < i) lv = bet[i] * rk[i] * rk[j] * ck[nt][e] * ex;
                    pv[x] = scale * rq[i] * rk[j] * cq[nt][e] * ex;
                }
                Lm[i * LDF + j] = lv;
            }
            st_bf16x2(Po + i * GDNF_C + 8 * nt + 2 * tq, pv[0], pv[1]);
        }
    __syncthreads();

    // Diagonal blocks: (I + L_aa)⁻¹ by forward substitution, lane j < 16 owns column j.
    if (lane < 16) {
        const int a0 = 16 * w, j = lane;
        float col[16];
#pragma unroll
        for (int i = 0; i < 16; i++) col[i] = i == j ? 1.f : 0.f;
#pragma unroll
        for (int i = 1; i < 16; i++) {
            float s = 0.f;
#pragma unroll
            for (int m = 0; m < i; m++) s += Lm[(a0 + i) * LDF + a0 + m] * col[m];
            if (i > j) col[i] = -s;
        }
#pragma unroll
        for (int i = 0; i < 16; i++) Ai[(a0 + i) * LDF + a0 + j] = col[i];
    }
    __syncthreads();
#define BLK(M, a, b) ((M) + 16 * (a) * LDF + 16 * (b))
    {
        float *Tme = Tw + 64 * w;
        const int mc = merge_col();
        float acc[2];
        // down each block column b: A_ab for a = b+1 .. 3, T = Σ_{b≤m<a} L_am A_mb in m order
#pragma unroll
        for (int b = 0; b < 3; b++)
#pragma unroll
            for (int a = b + 1; a < 4; a++) {
                acc[0] = acc[1] = 0.f;
#pragma unroll
                for (int m = b; m < a; m++) mm16s_acc(acc, BLK(Lm, a, m), LDF, BLK(Ai, m, b), LDF, mc);
                merge_finish(Ai, Tme, a, b, acc);
            }
    }
#undef BLK
    __syncthreads();

    // A' = A diag(β) on and below the diagonal: 16-byte stores.
    gdnf_bf16 *Ao = Ag + ci * (GDNF_C * GDNF_C);
    for (int e = tid; e < GDNF_C * 8; e += GDNF_PREP_THREADS) {
        const int i = e >> 3, j0 = (e & 7) * 8;
        float f[8];
#pragma unroll
        for (int x = 0; x < 8; x++) f[x] = j0 + x <= i ? Ai[i * LDF + j0 + x] * bet[j0 + x] : 0.f;
        uint4 u;
        u.x = pack_bf16x2(f[0], f[1]), u.y = pack_bf16x2(f[2], f[3]);
        u.z = pack_bf16x2(f[4], f[5]), u.w = pack_bf16x2(f[6], f[7]);
        *reinterpret_cast<uint4 *>(Ao + i * GDNF_C + j0) = u;
        if constexpr (AU) {  // the backward also wants A itself (dβ, dL need it unscaled)
#pragma unroll
            for (int x = 0; x < 8; x++) f[x] = j0 + x <= i ? Ai[i * LDF + j0 + x] : 0.f;
            u.x = pack_bf16x2(f[0], f[1]), u.y = pack_bf16x2(f[2], f[3]);
            u.z = pack_bf16x2(f[4], f[5]), u.w = pack_bf16x2(f[6], f[7]);
            *reinterpret_cast<uint4 *>(Au + ci * (GDNF_C * GDNF_C) + i * GDNF_C + j0) = u;
        }
    }
    if (ord.ready) {  // every store of the block above, then the chunk's flag
        __syncthreads();
        if (tid == 0) {
            __threadfence();
            gdnf_flag_release(ord.ready + ci);
        }
    }
}

// ================================================================ kernel 2: the state pass
struct gdnf_scan_args {
    const gdnf_bf16 *q, *k, *v, *A, *P;
    const float4 *rows;
    const float *s0;  // start states (BH, s0_nseg, KD, V) fp32; NULL = zero
    float *s1;        // end states (BH, s1_nseg, KD, s1_cols) fp32; NULL = not wanted
    void *o;          // (B, T, H, V), OT; used when OUT
    int T, H, V, NT;
    int cps, nseg, ntiles;  // chunks per segment, segments and column tiles in this grid
    int s0_nseg, s1_nseg, s1_cols;
    int s1_last_only;  // only the last segment writes s1 (at slot 0)
    int ident;         // columns >= V start as the identity and read v = 0
    gdnf_bf16 *hs;     // HS only: chunk start states (BH, NT, KD, V) bf16
};

template <int KD, int BV, bool OUT>
struct scan_layout {
    static constexpr int LDK = KD + 8, LDV = BV + 8;
    static constexpr size_t ks = (size_t)GDNF_C * LDK * 2, qs = OUT ? ks : 0;
    static constexpr size_t as = (size_t)GDNF_C * GDNF_LDA * 2, ps = OUT ? as : 0;
    static constexpr size_t vs = (size_t)GDNF_C * LDV * 2, rs = (size_t)GDNF_C * 16;
    static constexpr size_t o_qs = ks, o_as = o_qs + qs, o_ps = o_as + as, o_vs = o_ps + ps, o_rs = o_vs + vs;
    static constexpr size_t stage = o_rs + rs;
    static constexpr size_t sb = (size_t)KD * LDV * 2, xs = (size_t)GDNF_C * LDV * 2, vns = OUT ? xs : 0;
    static constexpr size_t o_sb = 2 * stage, o_xs = o_sb + sb, o_vns = o_xs + xs, o_vnd = o_vns + vns;
    static constexpr size_t total = o_vnd + xs;
};

// Chunk n's K (and Q), A' (and P), V tile and rows → one stage buffer (cp.async, no wait).
template <int KD, int BV, bool OUT>
static __device__ __forceinline__ void scan_load(unsigned char *stg, const gdnf_scan_args &a, int64_t bh, int b,
                                                 int h, int n, int c0) {
    using Lay = scan_layout<KD, BV, OUT>;
    constexpr int LDK = Lay::LDK, LDV = Lay::LDV;
    gdnf_bf16 *Ks = reinterpret_cast<gdnf_bf16 *>(stg), *Qs = reinterpret_cast<gdnf_bf16 *>(stg + Lay::o_qs);
    gdnf_bf16 *As = reinterpret_cast<gdnf_bf16 *>(stg + Lay::o_as), *Ps = reinterpret_cast<gdnf_bf16 *>(stg + Lay::o_ps);
    gdnf_bf16 *Vs = reinterpret_cast<gdnf_bf16 *>(stg + Lay::o_vs);
    float4 *Rs = reinterpret_cast<float4 *>(stg + Lay::o_rs);
    const int tid = threadIdx.x, t0 = n * GDNF_C, nr = min(GDNF_C, a.T - t0);
    const int64_t row0 = (int64_t)b * a.T + t0, ci = bh * a.NT + n;
    gdnf_load_kq<KD, GDNF_SCAN_THREADS>(Ks, OUT ? Qs : nullptr, LDK, a.k, a.q, row0, nr, a.H, h);
    gdnf_load_ap<GDNF_SCAN_THREADS>(As, OUT ? Ps : nullptr, a.A, a.P, ci);
    for (int e = tid; e < GDNF_C * (BV / 8); e += GDNF_SCAN_THREADS) {
        const int i = e / (BV / 8), c = (e % (BV / 8)) * 8, ca = c0 + c;
        const bool ok = i < nr && ca < a.V;
        const int64_t off = ok ? ((row0 + i) * a.H + h) * (int64_t)a.V + ca : 0;
        cp_async16(Vs + i * LDV + c, a.v + off, ok);
    }
    if (tid < GDNF_C) cp_async16(Rs + tid, a.rows + ci * GDNF_C + tid, true);
}

template <int KD, int BV, bool OUT, typename OT, bool HS = false>
// Without outputs the shared memory allows two blocks per SM (KD = 128, BV = 64: 108 KB),
// so the registers are capped at 128 there.
__global__ void __launch_bounds__(GDNF_SCAN_THREADS, OUT ? 1 : 2) gdnf_scan_kernel(const gdnf_scan_args a) {
    using Lay = scan_layout<KD, BV, OUT>;
    constexpr int LDK = Lay::LDK, LDV = Lay::LDV, LDA = GDNF_LDA, MT = KD / 16;
    constexpr bool SPLIT = MT == 4;                // KD = 64: 4 row tiles × 2 column halves
    constexpr int SN = SPLIT ? BV / 16 : BV / 8;   // n-tiles of a warp's state slice
    constexpr int NB = OUT ? BV / 8 : BV / 16;     // n-tiles of a phase-b unit
    static_assert(MT == 4 || MT == 6 || MT == 8, "KD must be 64, 96 or 128");
    static_assert(BV == 32 || BV == 64, "BV must be 32 or 64");
    unsigned char *sm = GDNF_SMEM;
    gdnf_bf16 *Sb = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_sb), *Xs = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_xs);
    gdnf_bf16 *Vns = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_vns), *Vnd = reinterpret_cast<gdnf_bf16 *>(sm + Lay::o_vnd);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int tile = (int)(blockIdx.x % a.ntiles), rest = (int)(blockIdx.x / a.ntiles);
    const int seg = rest % a.nseg;
    const int64_t bh = rest / a.nseg;
    const int b = (int)(bh / a.H), h = (int)(bh % a.H), c0 = tile * BV;
    const int nb = seg * a.cps, ne = min(a.NT, nb + a.cps);

    // This warp's state slice: rows 16·smt .., columns scb .. scb + 8·SN − 1 of the tile.
    const int smt = SPLIT ? (warp & 3) : warp, scb = SPLIT ? (warp >> 2) * (BV / 2) : 0;
    const bool owner = SPLIT || warp < MT;
    float sacc[SN][4];
    if (owner) {
        const int64_t slot = a.s0_nseg == 1 ? 0 : seg;
#pragma unroll
        for (int nt = 0; nt < SN; nt++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int r = 16 * smt + g + 8 * hh, col = scb + 8 * nt + 2 * t, ca = c0 + col;
                float x0 = 0.f, x1 = 0.f;
                if (a.ident) {
                    if (ca >= a.V) x0 = r == ca - a.V ? 1.f : 0.f, x1 = r == ca + 1 - a.V ? 1.f : 0.f;
                } else if (a.s0) {
                    const float2 s = *reinterpret_cast<const float2 *>(
                        a.s0 + ((bh * a.s0_nseg + slot) * KD + r) * (int64_t)a.V + ca);
                    x0 = s.x, x1 = s.y;
                }
                sacc[nt][2 * hh] = x0, sacc[nt][2 * hh + 1] = x1;
                st_bf16x2(Sb + r * LDV + col, x0, x1);
            }
    }
    if (nb < ne) scan_load<KD, BV, OUT>(sm, a, bh, b, h, nb, c0);
    cp_async_commit();

    for (int n = nb; n < ne; n++) {
        unsigned char *stg = sm + ((n - nb) & 1) * Lay::stage;
        const gdnf_bf16 *Ks = reinterpret_cast<const gdnf_bf16 *>(stg);
        const gdnf_bf16 *Qs = reinterpret_cast<const gdnf_bf16 *>(stg + Lay::o_qs);
        const gdnf_bf16 *As = reinterpret_cast<const gdnf_bf16 *>(stg + Lay::o_as);
        const gdnf_bf16 *Ps = reinterpret_cast<const gdnf_bf16 *>(stg + Lay::o_ps);
        const gdnf_bf16 *Vs = reinterpret_cast<const gdnf_bf16 *>(stg + Lay::o_vs);
        const float4 *Rs = reinterpret_cast<const float4 *>(stg + Lay::o_rs);
        const int t0 = n * GDNF_C, nr = min(GDNF_C, a.T - t0);
        cp_async_wait_all();
        __syncthreads();  // chunk n's stage and Sb (the chunk's start state) are visible
        if (n + 1 < ne) scan_load<KD, BV, OUT>(sm + ((n + 1 - nb) & 1) * Lay::stage, a, bh, b, h, n + 1, c0);
        cp_async_commit();
        if constexpr (HS) {  // Sb is not written again before two more barriers
            gdnf_bf16 *dst = a.hs + (bh * a.NT + n) * (int64_t)KD * a.V + c0;
            for (int e = tid; e < KD * (BV / 8); e += GDNF_SCAN_THREADS) {
                const int r = e / (BV / 8), cc = (e % (BV / 8)) * 8;
                *reinterpret_cast<uint4 *>(dst + (int64_t)r * a.V + cc) =
                    *reinterpret_cast<const uint4 *>(Sb + r * LDV + cc);
            }
        }

        // ---- b) [K; Q] S
        float acc[NB][4];
#pragma unroll
        for (int nt = 0; nt < NB; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
        const bool qrow = OUT && warp >= 4;
        {
            const gdnf_bf16 *src = qrow ? Qs : Ks;
            const int rt = warp & 3, cb = OUT ? 0 : (warp >> 2) * (BV / 2);
#pragma unroll
            for (int kk = 0; kk < KD / 16; kk++) {
                uint32_t af[4];
                ldsm_x4(af, src + (16 * rt + (lane & 15)) * LDK + 16 * kk + (lane >> 4) * 8);
#pragma unroll
                for (int np = 0; np < NB / 2; np++) {
                    uint32_t bb[4];
                    ldsm_x4_t(bb, Sb + (16 * kk + (lane & 15)) * LDV + cb + 16 * np + (lane >> 4) * 8);
                    mma_bf16(acc[2 * np], af, bb[0], bb[1]);
                    mma_bf16(acc[2 * np + 1], af, bb[2], bb[3]);
                }
            }
            if (!qrow) {  // X' = V − rk e^γ (K S)
#pragma unroll
                for (int nt = 0; nt < NB; nt++)
#pragma unroll
                    for (int hh = 0; hh < 2; hh++) {
                        const int i = 16 * rt + g + 8 * hh, col = cb + 8 * nt + 2 * t;
                        const float rkx = Rs[i].y;
                        const float2 vv = ld_bf16x2(Vs + i * LDV + col);
                        st_bf16x2(Xs + i * LDV + col, vv.x - rkx * acc[nt][2 * hh], vv.y - rkx * acc[nt][2 * hh + 1]);
                    }
            } else {  // Q S rows, scaled by scale·rq·e^γ; P Vn is added in phase d
#pragma unroll
                for (int nt = 0; nt < NB; nt++)
#pragma unroll
                    for (int hh = 0; hh < 2; hh++) {
                        const float rqx = Rs[16 * rt + g + 8 * hh].x;
                        acc[nt][2 * hh] *= rqx, acc[nt][2 * hh + 1] *= rqx;
                    }
            }
        }
        __syncthreads();

        // ---- c) Vn = A' X' (lower 16×16 blocks of A' only)
        {
            const int rt = warp & 3, cb = (warp >> 2) * (BV / 2);
            float vacc[BV / 16][4];
#pragma unroll
            for (int nt = 0; nt < BV / 16; nt++) vacc[nt][0] = vacc[nt][1] = vacc[nt][2] = vacc[nt][3] = 0.f;
#pragma unroll
            for (int kt = 0; kt < 4; kt++)
                if (kt <= rt) {
                    uint32_t af[4];
                    ldsm_x4(af, As + (16 * rt + (lane & 15)) * LDA + 16 * kt + (lane >> 4) * 8);
#pragma unroll
                    for (int np = 0; np < BV / 32; np++) {
                        uint32_t bb[4];
                        ldsm_x4_t(bb, Xs + (16 * kt + (lane & 15)) * LDV + cb + 16 * np + (lane >> 4) * 8);
                        mma_bf16(vacc[2 * np], af, bb[0], bb[1]);
                        mma_bf16(vacc[2 * np + 1], af, bb[2], bb[3]);
                    }
                }
#pragma unroll
            for (int nt = 0; nt < BV / 16; nt++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    const int i = 16 * rt + g + 8 * hh, col = cb + 8 * nt + 2 * t;
                    const float rd = Rs[i].z;
                    if (OUT) st_bf16x2(Vns + i * LDV + col, vacc[nt][2 * hh], vacc[nt][2 * hh + 1]);
                    st_bf16x2(Vnd + i * LDV + col, rd * vacc[nt][2 * hh], rd * vacc[nt][2 * hh + 1]);
                }
        }
        __syncthreads();

        // ---- d) S = e^{γ_last} S + Kᵀ Vnd;  O = (scaled Q S) + P Vn
        if (owner) {
            const float el = Rs[0].w;
#pragma unroll
            for (int nt = 0; nt < SN; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) sacc[nt][e] *= el;
#pragma unroll
            for (int kt = 0; kt < 4; kt++) {
                uint32_t af[4];  // Kᵀ rows 16·smt.. (features), k = chunk rows 16·kt..
                ldsm_x4_t(af, Ks + (16 * kt + (lane & 7) + ((lane >> 4) << 3)) * LDK + 16 * smt + ((lane >> 3) & 1) * 8);
#pragma unroll
                for (int np = 0; np < SN / 2; np++) {
                    uint32_t bb[4];
                    ldsm_x4_t(bb, Vnd + (16 * kt + (lane & 15)) * LDV + scb + 16 * np + (lane >> 4) * 8);
                    mma_bf16(sacc[2 * np], af, bb[0], bb[1]);
                    mma_bf16(sacc[2 * np + 1], af, bb[2], bb[3]);
                }
            }
#pragma unroll
            for (int nt = 0; nt < SN; nt++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++)
                    st_bf16x2(Sb + (16 * smt + g + 8 * hh) * LDV + scb + 8 * nt + 2 * t, sacc[nt][2 * hh],
                              sacc[nt][2 * hh + 1]);
        }
        if (qrow) {
            const int rt = warp - 4;
#pragma unroll
            for (int kt = 0; kt < 4; kt++)
                if (kt <= rt) {
                    uint32_t af[4];
                    ldsm_x4(af, Ps + (16 * rt + (lane & 15)) * LDA + 16 * kt + (lane >> 4) * 8);
#pragma unroll
                    for (int np = 0; np < NB / 2; np++) {
                        uint32_t bb[4];
                        ldsm_x4_t(bb, Vns + (16 * kt + (lane & 15)) * LDV + 16 * np + (lane >> 4) * 8);
                        mma_bf16(acc[2 * np], af, bb[0], bb[1]);
                        mma_bf16(acc[2 * np + 1], af, bb[2], bb[3]);
                    }
                }
            const int64_t orow0 = (int64_t)b * a.T + t0;
            if constexpr (std::is_same<OT, float>::value) {
                float *o = static_cast<float *>(a.o);
#pragma unroll
                for (int nt = 0; nt < NB; nt++)
#pragma unroll
                    for (int hh = 0; hh < 2; hh++) {
                        const int i = 16 * rt + g + 8 * hh;
                        if (i < nr)
                            *reinterpret_cast<float2 *>(o + ((orow0 + i) * a.H + h) * (int64_t)a.V + c0 + 8 * nt + 2 * t) =
                                make_float2(acc[nt][2 * hh], acc[nt][2 * hh + 1]);
                    }
            } else {
                // Stage this warp's 16 rows in Xs (free since phase c) for 16-byte stores.
                gdnf_bf16 *o = static_cast<gdnf_bf16 *>(a.o);
#pragma unroll
                for (int nt = 0; nt < NB; nt++)
#pragma unroll
                    for (int hh = 0; hh < 2; hh++)
                        st_bf16x2(Xs + (16 * rt + g + 8 * hh) * LDV + 8 * nt + 2 * t, acc[nt][2 * hh],
                                  acc[nt][2 * hh + 1]);
                __syncwarp();
                for (int e = lane; e < 16 * (BV / 8); e += 32) {
                    const int i = 16 * rt + e / (BV / 8), cc = (e % (BV / 8)) * 8;
                    if (i < nr)
                        *reinterpret_cast<uint4 *>(o + ((orow0 + i) * a.H + h) * (int64_t)a.V + c0 + cc) =
                            *reinterpret_cast<const uint4 *>(Xs + i * LDV + cc);
                }
            }
        }
    }

    if (a.s1 && owner && (!a.s1_last_only || seg == a.nseg - 1)) {
        const int64_t slot = a.s1_last_only ? 0 : seg;
#pragma unroll
        for (int nt = 0; nt < SN; nt++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int r = 16 * smt + g + 8 * hh, ca = c0 + scb + 8 * nt + 2 * t;
                *reinterpret_cast<float2 *>(a.s1 + ((bh * a.s1_nseg + slot) * KD + r) * (int64_t)a.s1_cols + ca) =
                    make_float2(sacc[nt][2 * hh], sacc[nt][2 * hh + 1]);
            }
    }
}
