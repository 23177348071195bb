// gated_norm.cu — gated RMSNorm on the GPU, the output norm of JetBlock / Gated DeltaNet /
// GLA / RetNet (fla's FusedRMSNormGated): y = x · rstd · w · silu(gate) per row of D
// features. Twin of pn_rmsnorm_gated_fwd / _bwd (kernels/cpu/ops_norm_extra.c).
//
// Forward: one warp per row (D is a head's V, 64–256): Σx² by a warp sum, then the row is
// written. Backward, with n = x·rstd and a = w·silu(gate): dn = dy·a, dx = rstd·(dn −
// n·mean(dn·n)), dgate = dy·n·w·silu'(gate), dw = Σ_rows dy·n·silu(gate).
// For D ≤ 256 (every head size in use) a warp owns a row: its dy, x, gate stay in
// registers between the mean and the writes (one pass over memory), the mean is a warp
// sum (no block barriers per row: the earlier block-per-row form took ~5× its bytes' time
// in the train step), and each lane keeps its columns' dw partial in registers; the 8
// warps' partials are summed in warp order at the end of the block. Wider rows take the
// block-per-row kernel (dw partial per column in shared memory). Either way a second
// kernel sums the slices in slice order: dw is deterministic, no atomics.
// D = 64, 128, 256 exactly (the head sizes in use) take vector forms, forward and backward:
// a lane owns NC consecutive columns, so every row moves in 16-byte accesses, and the
// caller's dx / dgate are loaded with the row's inputs (one memory latency per row, not two).
// The backward's WRITE variant (pn_cuda_rmsnorm_gated_bwd_write) stores dx and dgate without
// reading them, for callers whose buffers would otherwise be zeroed just to be added to.
// x is bf16 or fp32 (every kernel templated on its type): a block whose recurrence output
// is kept in fp32 (gla, retnet: rows of o with a tiny norm would otherwise have their bf16
// rounding amplified by rstd in the backward) normalises it without a rounding.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_linear.h"
#include <math.h>

#define GN_THREADS 256
#define GN_MAX_SLICES 2048


template <typename OT, typename XT>
static __global__ void gn_fwd_kernel(OT *y, float *rstd, const XT *__restrict__ x, const float *__restrict__ w,
                                     const __nv_bfloat16 *__restrict__ gate, int64_t N, int D, float eps) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const XT *xr = x + row * D;
    float ss = 0.f;
    for (int c = lane; c < D; c += 32) {
        const float v = to_f32(xr[c]);
        ss += v * v;
    }
    const float r = 1.0f / sqrtf(warp_sum(ss) / (float)D + eps);
    if (rstd && lane == 0) rstd[row] = r;
    for (int c = lane; c < D; c += 32) {
        float v = to_f32(xr[c]) * r * (w ? w[c] : 1.0f);
        if (gate) {
            const float g = to_f32(gate[row * D + c]);
            v *= g * pn_sigmoid(g);
        }
        from_f32(y + row * D + c, v);
    }
}

// Rows [slice · rps, min(N, (slice + 1) · rps)) of one block. wpart (slices, D) gets the
// slice's Σ dy·n·silu(gate) per column when not NULL. Dynamic shared memory: D floats.
template <typename XT>
static __global__ void __launch_bounds__(GN_THREADS)
    gn_bwd_kernel(float *dx, float *dgate, float *wpart, const float *__restrict__ dy, const XT *__restrict__ x,
                  const float *__restrict__ w, const __nv_bfloat16 *__restrict__ gate, const float *__restrict__ rstd,
                  int64_t N, int D, int64_t rps) {
    extern __shared__ float wp[];  // (D) this block's dw partial; column c owned by thread c % 256
    __shared__ float red[32];
    const int tid = threadIdx.x;
    const int64_t r0 = (int64_t)blockIdx.x * rps, r1 = min(N, r0 + rps);
    for (int c = tid; c < D; c += GN_THREADS) wp[c] = 0.f;
    for (int64_t row = r0; row < r1; row++) {
        const float r = rstd[row];
        const float *dyr = dy + row * D;
        const XT *xr = x + row * D;
        float dot = 0.f;
        for (int c = tid; c < D; c += GN_THREADS) {
            const float wd = w ? w[c] : 1.0f, nd = to_f32(xr[c]) * r;
            float a = wd, sg = 1.0f;  // sg = silu(gate)
            if (gate) {
                const float g = to_f32(gate[row * D + c]), s = pn_sigmoid(g);
                sg = g * s;
                a *= sg;
                if (dgate) dgate[row * D + c] += dyr[c] * nd * wd * s * (1.0f + g * (1.0f - s));
            }
            dot += dyr[c] * a * nd;
            wp[c] += dyr[c] * nd * sg;
        }
        if (!dx) continue;  // uniform over the block
        const float mean = block_sum(dot, red) / (float)D;
        for (int c = tid; c < D; c += GN_THREADS) {
            float a = w ? w[c] : 1.0f;
            if (gate) {
                const float g = to_f32(gate[row * D + c]);
                a *= g * pn_sigmoid(g);
            }
            const float nd = to_f32(xr[c]) * r;
            dx[row * D + c] += r * (dyr[c] * a - nd * mean);
        }
    }
    if (wpart)
        for (int c = tid; c < D; c += GN_THREADS) wpart[(int64_t)blockIdx.x * D + c] = wp[c];
}

// NC consecutive values at p (fp32 or bf16) into registers, or stored; p aligned to NC elements.
template <int NC>
static __device__ __forceinline__ void gn_ld(float f[NC], const float *p) {
    if constexpr (NC == 8) {
        load8(p, f);
    } else if constexpr (NC == 4) {
        const float4 a = *reinterpret_cast<const float4 *>(p);
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w;
    } else {
        const float2 a = *reinterpret_cast<const float2 *>(p);
        f[0] = a.x, f[1] = a.y;
    }
}
template <int NC>
static __device__ __forceinline__ void gn_ld(float f[NC], const __nv_bfloat16 *p) {
    if constexpr (NC == 8) {
        load8(p, f);
    } else if constexpr (NC == 4) {
        const uint2 r = *reinterpret_cast<const uint2 *>(p);
        const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&r.x));
        const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&r.y));
        f[0] = lo.x, f[1] = lo.y, f[2] = hi.x, f[3] = hi.y;
    } else {
        const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(p));
        f[0] = a.x, f[1] = a.y;
    }
}
template <int NC>
static __device__ __forceinline__ void gn_st(float *p, const float f[NC]) {
    if constexpr (NC == 8) {
        store8(p, f);
    } else if constexpr (NC == 4) {
        *reinterpret_cast<float4 *>(p) = make_float4(f[0], f[1], f[2], f[3]);
    } else {
        *reinterpret_cast<float2 *>(p) = make_float2(f[0], f[1]);
    }
}

template <int NC>
static __device__ __forceinline__ void gn_st(__nv_bfloat16 *p, const float f[NC]) {
    if constexpr (NC == 8) {
        store8(p, f);
    } else if constexpr (NC == 4) {
        const __nv_bfloat162 lo = __floats2bfloat162_rn(f[0], f[1]), hi = __floats2bfloat162_rn(f[2], f[3]);
        uint2 r;
        memcpy(&r.x, &lo, 4);
        memcpy(&r.y, &hi, 4);
        *reinterpret_cast<uint2 *>(p) = r;
    } else {
        *reinterpret_cast<__nv_bfloat162 *>(p) = __floats2bfloat162_rn(f[0], f[1]);
    }
}

// Vector warp-per-row forward, D == 32·NC (lane owns NC consecutive columns; the row is
// read once, 16-byte accesses).
template <int NC, typename OT, typename XT>
static __global__ void gn_fwd_vec_kernel(OT *y, float *rstd, const XT *__restrict__ x, const float *__restrict__ w,
                                         const __nv_bfloat16 *__restrict__ gate, int64_t N, float eps) {
    constexpr int D = 32 * NC;
    const int lane = threadIdx.x & 31, c0 = NC * lane;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    float xv[NC], gv[NC];
    gn_ld<NC>(xv, x + row * D + c0);
    if (gate) gn_ld<NC>(gv, gate + row * D + c0);
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < NC; j++) ss += xv[j] * xv[j];
    const float r = 1.0f / sqrtf(warp_sum(ss) / (float)D + eps);
    if (rstd && lane == 0) rstd[row] = r;
#pragma unroll
    for (int j = 0; j < NC; j++) {
        xv[j] *= r * (w ? w[c0 + j] : 1.0f);
        if (gate) xv[j] *= gv[j] * pn_sigmoid_for<OT>(gv[j]);
    }
    gn_st<NC>(y + row * D + c0, xv);
}

// A row's NC values of this lane: VEC, columns NC·lane .. (vector access, D == 32·NC); else
// columns lane + 32·j below D (scalar access, any D ≤ 32·NC). Missing columns read as 0.
template <int NC, bool VEC, typename T>
static __device__ __forceinline__ void gn_row_ld(float f[NC], const T *row, int lane, int D) {
    if constexpr (VEC) {
        gn_ld<NC>(f, row + NC * lane);
    } else {
#pragma unroll
        for (int j = 0; j < NC; j++) f[j] = lane + 32 * j < D ? to_f32(row[lane + 32 * j]) : 0.f;
    }
}
template <int NC, bool VEC, typename T>
static __device__ __forceinline__ void gn_row_st(T *row, const float f[NC], int lane, int D) {
    if constexpr (VEC) {
        gn_st<NC>(row + NC * lane, f);
    } else {
#pragma unroll
        for (int j = 0; j < NC; j++)
            if (lane + 32 * j < D) from_f32(row + lane + 32 * j, f[j]);
    }
}

// Warp-per-row backward, D ≤ 32·NC; a block is GN_THREADS threads = 8 warps, the slice's rows
// strided by warp. The row's dy, x, gate (and the caller's dx, dgate unless WRITE) are loaded
// together, kept in registers through the mean, and written once; each lane keeps its
// columns' dw partial, the 8 warps' partials are summed in warp order at the end. WRITE: dx,
// dgate are stored, their old values never read; else +=. VEC: see gn_row_ld. wpart as
// gn_bwd_kernel. dgate (GT fp32, or bf16 with WRITE: the operand of the gate projection's
// backward GEMM) has row `row` at (row / ghpr) · gld + (row % ghpr) · D: a token's ghpr head
// rows side by side in a line of gld elements (fp32 callers: ghpr = 1, gld = D).
template <int NC, bool WRITE, bool VEC, typename XT, typename GT>
static __global__ void __launch_bounds__(GN_THREADS)
    gn_bwd_warp_kernel(float *dx, GT *dgate, float *wpart, const float *__restrict__ dy, const XT *__restrict__ x,
                       const float *__restrict__ w, const __nv_bfloat16 *__restrict__ gate,
                       const float *__restrict__ rstd, int64_t N, int D, int64_t rps, int ghpr, int64_t gld) {
    static_assert(WRITE || sizeof(GT) == sizeof(float), "a bf16 dgate is written, never added to");
    constexpr int NW = GN_THREADS / 32;
    if (VEC) D = 32 * NC;  // a compile-time row length for the vector form
    __shared__ float wsum[NW][32 * NC];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t r0 = (int64_t)blockIdx.x * rps, r1 = min(N, r0 + rps);
    float wv[NC], acc[NC];
    if (w) {
        gn_row_ld<NC, VEC>(wv, w, lane, D);
    } else {
#pragma unroll
        for (int j = 0; j < NC; j++) wv[j] = 1.0f;
    }
#pragma unroll
    for (int j = 0; j < NC; j++) acc[j] = 0.f;
    for (int64_t row = r0 + warp; row < r1; row += NW) {
        const int64_t base = row * D, gbase = (row / ghpr) * gld + (row % ghpr) * D;
        float dyv[NC], xv[NC], gv[NC], ox[NC], og[NC];
        const float r = rstd[row];
        gn_row_ld<NC, VEC>(dyv, dy + base, lane, D);
        gn_row_ld<NC, VEC>(xv, x + base, lane, D);
        if (gate) gn_row_ld<NC, VEC>(gv, gate + base, lane, D);
        if (!WRITE) {
            if (dx) gn_row_ld<NC, VEC>(ox, dx + base, lane, D);
            if (gate && dgate) gn_row_ld<NC, VEC>(og, dgate + gbase, lane, D);
        }
        float dot = 0.f, a[NC], dgv[NC];
#pragma unroll
        for (int j = 0; j < NC; j++) {
            const float nd = xv[j] * r;
            float sg = 1.0f;  // silu(gate)
            dgv[j] = 0.f;
            if (gate) {
                const float g = gv[j], sgm = pn_sigmoid(g);
                sg = g * sgm;
                dgv[j] = dyv[j] * nd * wv[j] * sgm * (1.0f + g * (1.0f - sgm));
            }
            a[j] = wv[j] * sg;
            dot += dyv[j] * a[j] * nd;
            acc[j] += dyv[j] * nd * sg;
            xv[j] = nd;
        }
        if (gate && dgate) {
            if (!WRITE) {
#pragma unroll
                for (int j = 0; j < NC; j++) dgv[j] += og[j];
            }
            gn_row_st<NC, VEC>(dgate + gbase, dgv, lane, D);
        }
        if (!dx) continue;
        const float mean = warp_sum(dot) / (float)D;
#pragma unroll
        for (int j = 0; j < NC; j++) {
            const float v = r * (dyv[j] * a[j] - xv[j] * mean);
            ox[j] = WRITE ? v : ox[j] + v;
        }
        gn_row_st<NC, VEC>(dx + base, ox, lane, D);
    }
    if (!wpart) return;
#pragma unroll
    for (int j = 0; j < NC; j++) wsum[warp][VEC ? NC * lane + j : lane + 32 * j] = acc[j];
    __syncthreads();
    for (int c = threadIdx.x; c < D; c += GN_THREADS) {
        float t = 0.f;
        for (int k = 0; k < NW; k++) t += wsum[k][c];
        wpart[(int64_t)blockIdx.x * D + c] = t;
    }
}

static __global__ void gn_dw_final_kernel(float *dw, const float *__restrict__ wpart, int D, int nslice) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= D) return;
    float s = 0.f;
    for (int sl = 0; sl < nslice; sl++) s += wpart[(int64_t)sl * D + c];
    dw[c] += s;
}

// The forward for one x type: the vector warp-per-row form for D = 64, 128, 256, else the
// scalar one.
template <typename XT>
static void gn_fwd(void *y, pn_cuda_dtype y_dt, float *rstd, const XT *x, const float *w, const __nv_bfloat16 *gate,
                   int64_t N, int D, float eps) {
    const int rows_per_block = 8, T = 32 * rows_per_block;
    const unsigned grid = (unsigned)pn_ceil_div(N, rows_per_block);
    const bool f32 = y_dt == PN_CUDA_F32;
    if ((D == 64 || D == 128 || D == 256) && pn_aligned16(x) && (!gate || pn_aligned16(gate)) && pn_aligned16(y)) {
#define GN_FWD_VEC(NC)                                                                                            \
    (f32 ? gn_fwd_vec_kernel<NC, float, XT><<<grid, T, 0, pn_stream()>>>((float *)y, rstd, x, w, gate, N, eps)   \
         : gn_fwd_vec_kernel<NC, __nv_bfloat16, XT><<<grid, T, 0, pn_stream()>>>((__nv_bfloat16 *)y, rstd, x, w, \
                                                                                 gate, N, eps))
        if (D == 64)
            GN_FWD_VEC(2);
        else if (D == 128)
            GN_FWD_VEC(4);
        else
            GN_FWD_VEC(8);
#undef GN_FWD_VEC
    } else if (f32) {
        gn_fwd_kernel<float, XT><<<grid, T, 0, pn_stream()>>>((float *)y, rstd, x, w, gate, N, D, eps);
    } else {
        gn_fwd_kernel<__nv_bfloat16, XT><<<grid, T, 0, pn_stream()>>>((__nv_bfloat16 *)y, rstd, x, w, gate, N, D, eps);
    }
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_rmsnorm_gated_fwd(void *y, pn_cuda_dtype y_dt, float *rstd, const void *x, pn_cuda_dtype x_dt,
                                          const float *w, const pn_bf16 *gate, int64_t N, int D, float eps) {
    if (N <= 0 || D <= 0) return;
    if (x_dt == PN_CUDA_F32)
        gn_fwd(y, y_dt, rstd, (const float *)x, w, as_bf(gate), N, D, eps);
    else
        gn_fwd(y, y_dt, rstd, (const __nv_bfloat16 *)x, w, as_bf(gate), N, D, eps);
}

// dgate: fp32 (N, D), or (G = bf16, WRITE only, D ≤ 256) in lines of gld holding ghpr rows each.
template <bool WRITE, typename XT, typename GT = float>
static void gn_bwd(float *dx, float *dw, GT *dgate, const float *dy, const XT *x, const float *w,
                   const __nv_bfloat16 *gate, const float *rstd, int64_t N, int D, int ghpr = 1, int64_t gld = 0) {
    if (N <= 0 || D <= 0 || (!dx && !dw && !(dgate && gate))) return;
    if (gld == 0) gld = D;
    const size_t smem = (size_t)D * sizeof(float);
    if (smem > 48 * 1024) {
        fprintf(stderr, "postnas: internal error: %s: gated RMSNorm backward: D = %d > %d\n", __FILE__, D, 48 * 256);
        exit(1);
    }
    GT *dg = gate ? dgate : nullptr;
    // the vector form needs every row start of dg 16-byte aligned too
    const bool dg_vec = !dg || (pn_aligned16(dg) && (gld * (int64_t)sizeof(GT)) % 16 == 0);
    const bool vec = (D == 64 || D == 128 || D == 256) && pn_aligned16(dy) && pn_aligned16(x) &&
                     (!w || pn_aligned16(w)) && (!gate || pn_aligned16(gate)) && (!dx || pn_aligned16(dx)) && dg_vec;
    if (WRITE && D > 256) {  // the block-per-row kernel only adds: zero its outputs first
        if (dx) pn_cuda_memset(dx, 0, (size_t)N * D * sizeof(float));
        if (dg) pn_cuda_memset(dg, 0, (size_t)N * D * sizeof(float));
    }
    int64_t nslice = pn_ceil_div(N, 32);  // at least 32 rows per block
    if (nslice > GN_MAX_SLICES) nslice = GN_MAX_SLICES;
    const int64_t rps = pn_ceil_div(N, nslice);
    nslice = pn_ceil_div(N, rps);
    float *wpart = dw ? (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(nslice * D) * sizeof(float)) : nullptr;
    const unsigned grid = (unsigned)nslice;
#define GN_BWD_WARP(NC, VEC)                                                                                   \
    gn_bwd_warp_kernel<NC, WRITE, VEC, XT, GT>                                                                 \
        <<<grid, GN_THREADS, 0, pn_stream()>>>(dx, dg, wpart, dy, x, w, gate, rstd, N, D, rps, ghpr, gld)
    if (vec && D == 64)
        GN_BWD_WARP(2, true);
    else if (vec && D == 128)
        GN_BWD_WARP(4, true);
    else if (vec)
        GN_BWD_WARP(8, true);
    else if (D <= 64)
        GN_BWD_WARP(2, false);
    else if (D <= 128)
        GN_BWD_WARP(4, false);
    else if (D <= 256)
        GN_BWD_WARP(8, false);
    else if constexpr (sizeof(GT) == sizeof(float))
        gn_bwd_kernel<XT><<<grid, GN_THREADS, smem, pn_stream()>>>(dx, dg, wpart, dy, x, w, gate, rstd, N, D, rps);
    else {
        fprintf(stderr, "postnas: internal error: %s: gated RMSNorm backward: bf16 dgate with D = %d > 256\n", __FILE__,
                D);
        exit(1);
    }
#undef GN_BWD_WARP
    PN_CHECK_LAUNCH();
    if (dw) {
        gn_dw_final_kernel<<<(unsigned)pn_ceil_div(D, GN_THREADS), GN_THREADS, 0, pn_stream()>>>(dw, wpart, D,
                                                                                               (int)nslice);
        PN_CHECK_LAUNCH();
        pn_cuda_free(wpart);
    }
}

// gn_bwd for x of either type (the dgate layout as gn_bwd's).
template <bool WRITE, typename GT = float>
static void gn_bwd_any(float *dx, float *dw, GT *dgate, const float *dy, const void *x, pn_cuda_dtype x_dt,
                       const float *w, const pn_bf16 *gate, const float *rstd, int64_t N, int D, int ghpr = 1,
                       int64_t gld = 0) {
    if (x_dt == PN_CUDA_F32)
        gn_bwd<WRITE>(dx, dw, dgate, dy, (const float *)x, w, as_bf(gate), rstd, N, D, ghpr, gld);
    else
        gn_bwd<WRITE>(dx, dw, dgate, dy, (const __nv_bfloat16 *)x, w, as_bf(gate), rstd, N, D, ghpr, gld);
}

extern "C" void pn_cuda_rmsnorm_gated_bwd(float *dx, float *dw, float *dgate, const float *dy, const void *x,
                                          pn_cuda_dtype x_dt, const float *w, const pn_bf16 *gate, const float *rstd,
                                          int64_t N, int D) {
    gn_bwd_any<false>(dx, dw, dgate, dy, x, x_dt, w, gate, rstd, N, D);
}

extern "C" void pn_cuda_rmsnorm_gated_bwd_write(float *dx, float *dw, float *dgate, const float *dy, const void *x,
                                                pn_cuda_dtype x_dt, const float *w, const pn_bf16 *gate,
                                                const float *rstd, int64_t N, int D) {
    gn_bwd_any<true>(dx, dw, dgate, dy, x, x_dt, w, gate, rstd, N, D);
}

extern "C" void pn_cuda_rmsnorm_gated_bwd_write_dg16(float *dx, float *dw, pn_bf16 *dgate, int heads, int64_t ldg,
                                                     const float *dy, const void *x, pn_cuda_dtype x_dt,
                                                     const float *w, const pn_bf16 *gate, const float *rstd,
                                                     int64_t N, int D) {
    if (N > 0 && D > 256) {  // the block-per-row kernel adds fp32: through scratch, one rounding
        float *t = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * D * sizeof(float));
        pn_cuda_rmsnorm_gated_bwd_write(dx, dw, t, dy, x, x_dt, w, gate, rstd, N, D);
        if (dgate && gate) pn_cuda_f32_to_bf16_2d(dgate, ldg, t, N / heads, heads * D);
        pn_cuda_free(t);
        return;
    }
    gn_bwd_any<true>(dx, dw, as_bf(dgate), dy, x, x_dt, w, gate, rstd, N, D, heads, ldg);
}
