// conv.cu — causal depthwise short convolutions on the GPU, static (weights (D, W), the
// short-conv blocks and Mamba2) and dynamic (per-token kernels (B, T, D, W), JetBlock),
// with an optional SiLU after the conv. Twins of pn_conv_causal_* / pn_dynconv_causal_*
// (kernels/cpu/ops_conv.c), followed by pn_silu_* when act = 1.
//
// Convention (BLOCKS.md): y_t[d] = Σ_{j<W} w[d, j] · u_{t−W+1+j}[d] (+ bias[d]), u = x
// extended to the left by the W−1 rows of x_prev (zeros when NULL). W is tiny (4), so
// every kernel is one thread per output element, coalesced over d, fp32 math:
//  - forward: the W taps, bias, activation;
//  - backward: (act = 1) dz = dy · silu'(z) with z recomputed into scratch, then dx as the
//    transposed conv of dz (x_s feeds y_t through tap j = s − t + W − 1), dkern per token
//    (no reduction), and dw / dbias reduced over the B·T rows in two passes: per-slice
//    partial sums (32 channels × 8 row lanes per block) and a final sum over the slices in
//    slice order, so the result does not depend on scheduling.
// The common case (W = 4, D a multiple of 8, 16-byte aligned tensors: JetBlock's value conv,
// the short convs) runs vector kernels instead (cv4_*): a thread owns 8 consecutive channels,
// so x, y, dy and dx move in 16-byte accesses, a row's kernel taps in 64 bytes, and the two
// 64-bit divisions per element of the generic kernels become two per 8 elements. The dynamic
// backward is one fused pass per (sequence, run of CV4_R rows, 8 channels): dz of each row
// (recomputed z), the row's dkern, and dx through a 4-row sliding window of partial sums;
// the run recomputes dz for the 3 rows after it (the taps that reach back into it), so no
// dz buffer, no second pass and no atomics. The static conv walks rows the same way (cv4s_*:
// each x row read once, the taps held for the run), its backward also summing the run's dw /
// dbias partials for the ordered slice reduction. Measured in results/bench/h100.json.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_linear.h"
#include <math.h>

#define CV_WMAX 16        // largest conv width
#define CV_THREADS 256
#define CV_ROWS_SLICE 256  // rows per slice of the dw / dbias reduction (at least)

static void cv_die(const char *op, const char *what, int D, int W) {
    fprintf(stderr, "postnas: internal error: %s: %s: %s (D = %d, W = %d; want D >= 1, 1 <= W <= %d)\n", __FILE__, op,
            what, D, W, CV_WMAX);
    exit(1);
}

// u_t[d] for t in [−(W−1), T): x row t of this sequence, or x_prev row W−1+t before it.
static __device__ __forceinline__ float cv_u(const __nv_bfloat16 *xb, const float *pb, int t, int d, int D, int W) {
    if (t >= 0) return to_f32(xb[(int64_t)t * D + d]);
    return pb ? pb[(int64_t)(W - 1 + t) * D + d] : 0.f;
}

// Pre-activation z of element e = (b, t, d) of (B, T, D).
template <bool DYN>
static __device__ __forceinline__ float cv_z(int64_t e, const __nv_bfloat16 *x, const float *w,
                                             const __nv_bfloat16 *kern, const float *bias, const float *x_prev, int T,
                                             int D, int W) {
    const int d = (int)(e % D);
    const int64_t bt = e / D;
    const int b = (int)(bt / T), t = (int)(bt % T);
    const __nv_bfloat16 *xb = x + (int64_t)b * T * D;
    const float *pb = x_prev ? x_prev + (int64_t)b * (W - 1) * D : nullptr;
    float acc = !DYN && bias ? bias[d] : 0.f;
    for (int j = 0; j < W; j++) {
        const float wj = DYN ? to_f32(kern[e * W + j]) : w[(int64_t)d * W + j];  // kern (B, T, D, W): e·W + j
        acc += wj * cv_u(xb, pb, t - W + 1 + j, d, D, W);
    }
    return acc;
}

template <bool DYN, typename OT>
static __global__ void cv_fwd_kernel(OT *y, const __nv_bfloat16 *__restrict__ x, const float *__restrict__ w,
                                     const __nv_bfloat16 *__restrict__ kern, const float *__restrict__ bias,
                                     const float *__restrict__ x_prev, int T, int D, int W, int act, int64_t total) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const float z = cv_z<DYN>(e, x, w, kern, bias, x_prev, T, D, W);
        from_f32(y + e, act ? z * pn_sigmoid(z) : z);
    }
}

// dz = dy · silu'(z), z recomputed: s (1 + z (1 − s)) as pn_silu_bwd.
template <bool DYN>
static __global__ void cv_dz_kernel(float *dz, const float *__restrict__ dy, const __nv_bfloat16 *__restrict__ x,
                                    const float *__restrict__ w, const __nv_bfloat16 *__restrict__ kern,
                                    const float *__restrict__ bias, const float *__restrict__ x_prev, int T, int D,
                                    int W, int64_t total) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const float z = cv_z<DYN>(e, x, w, kern, bias, x_prev, T, D, W), s = pn_sigmoid(z);
        dz[e] = dy[e] * s * (1.0f + z * (1.0f - s));
    }
}

// dx_s[d] += Σ_j w_t[d, j] · dz_t[d], t = s + W − 1 − j < T (w_t = kern row t when dynamic).
template <bool DYN>
static __global__ void cv_dx_kernel(float *dx, const float *__restrict__ dz, const float *__restrict__ w,
                                    const __nv_bfloat16 *__restrict__ kern, int T, int D, int W, int64_t total) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int d = (int)(e % D);
        const int64_t bs = e / D;
        const int b = (int)(bs / T), s = (int)(bs % T);
        float acc = 0.f;
        for (int j = 0; j < W; j++) {
            const int t = s + W - 1 - j;
            if (t >= T) continue;
            const int64_t et = ((int64_t)b * T + t) * D + d;  // (b, t, d)
            const float wj = DYN ? to_f32(kern[et * W + j]) : w[(int64_t)d * W + j];
            acc += wj * dz[et];
        }
        dx[e] += acc;
    }
}

// dkern[(b, t, d), j] += dz_t[d] · u_{t−W+1+j}[d]: every token owns its kernel.
// dkern (B, T, D, W): fp32 += (OT float) or bf16 WRITE (OT __nv_bfloat16, rounded once).
template <typename OT>
static __global__ void cv_dkern_kernel(OT *dkern, const float *__restrict__ dz, const __nv_bfloat16 *__restrict__ x,
                                       const float *__restrict__ x_prev, int T, int D, int W, int64_t total) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int d = (int)(e % D);
        const int64_t bt = e / D;
        const int b = (int)(bt / T), t = (int)(bt % T);
        const __nv_bfloat16 *xb = x + (int64_t)b * T * D;
        const float *pb = x_prev ? x_prev + (int64_t)b * (W - 1) * D : nullptr;
        const float g = dz[e];
        for (int j = 0; j < W; j++) {
            const float v = g * cv_u(xb, pb, t - W + 1 + j, d, D, W);
            if constexpr (sizeof(OT) == sizeof(float))
                dkern[e * W + j] += v;
            else
                dkern[e * W + j] = __float2bfloat16_rn(v);
        }
    }
}

// Partial sums of one slice of rows: part[(slice, d), j] = Σ_rows dz[r, d] · u_{t−W+1+j}[d]
// (j < W) and Σ_rows dz[r, d] (j = W). Block (32, 8): 32 channels × 8 row lanes.
static __global__ void cv_dw_partial_kernel(float *part, const float *__restrict__ dz,
                                            const __nv_bfloat16 *__restrict__ x, const float *__restrict__ x_prev,
                                            int T, int D, int W, int64_t N, int64_t rows_per_slice) {
    __shared__ float red[8][32][CV_WMAX + 1];
    const int tx = threadIdx.x, ty = threadIdx.y, d = blockIdx.x * 32 + tx;
    const int64_t r0 = (int64_t)blockIdx.y * rows_per_slice, r1 = min(N, r0 + rows_per_slice);
    float aw[CV_WMAX + 1];
#pragma unroll
    for (int j = 0; j <= CV_WMAX; j++) aw[j] = 0.f;
    if (d < D)
        for (int64_t r = r0 + ty; r < r1; r += 8) {
            const int b = (int)(r / T), t = (int)(r % T);
            const __nv_bfloat16 *xb = x + (int64_t)b * T * D;
            const float *pb = x_prev ? x_prev + (int64_t)b * (W - 1) * D : nullptr;
            const float g = dz[r * D + d];
#pragma unroll
            for (int j = 0; j < CV_WMAX; j++)
                if (j < W) aw[j] += g * cv_u(xb, pb, t - W + 1 + j, d, D, W);
            aw[CV_WMAX] += g;
        }
#pragma unroll
    for (int j = 0; j <= CV_WMAX; j++) red[ty][tx][j] = aw[j];
    __syncthreads();
    if (ty == 0 && d < D) {
        float *o = part + ((int64_t)blockIdx.y * D + d) * (W + 1);
        for (int j = 0; j <= W; j++) {
            const int jj = j < W ? j : CV_WMAX;
            float s = 0.f;
            for (int l = 0; l < 8; l++) s += red[l][tx][jj];
            o[j] = s;
        }
    }
}

// dw[d, j] += Σ_slices part[.., j] (j < W), dbias[d] += Σ_slices part[.., W], in slice order.
static __global__ void cv_dw_final_kernel(float *dw, float *dbias, const float *__restrict__ part, int D, int W,
                                          int nslice) {
    const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;  // (d, j) of (D, W+1)
    if (e >= (int64_t)D * (W + 1)) return;
    const int d = (int)(e / (W + 1)), j = (int)(e % (W + 1));
    float s = 0.f;
    for (int sl = 0; sl < nslice; sl++) s += part[((int64_t)sl * D + d) * (W + 1) + j];
    if (j < W) {
        if (dw) dw[(int64_t)d * W + j] += s;
    } else if (dbias) {
        dbias[d] += s;
    }
}

// ---------------------------------------------------------------- W = 4: vector and row-walking kernels
#define CV4_R 16  // rows per thread of the row-walking kernels (the backwards recompute 3 more)

// u_row[d0 .. d0+7] of sequence b: x row `row` when row ≥ 0, else x_prev row 3 + row (or 0).
static __device__ __forceinline__ void cv4_u(float u[8], const __nv_bfloat16 *__restrict__ x,
                                             const float *__restrict__ x_prev, int64_t b, int row, int T, int D,
                                             int d0) {
    if (row >= 0) {
        load8(x + (b * T + row) * D + d0, u);
        return;
    }
#pragma unroll
    for (int c = 0; c < 8; c++) u[c] = x_prev ? x_prev[(b * 3 + 3 + row) * D + d0 + c] : 0.f;
}

// Taps of 8 channels: k[c][j]. Dynamic: row bt of kern (B, T, D, 4), 32 bf16 in a row;
// static: w (D, 4) fp32.
template <bool DYN>
static __device__ __forceinline__ void cv4_taps(float k[8][4], const __nv_bfloat16 *__restrict__ kern,
                                                const float *__restrict__ w, int64_t bt, int D, int d0) {
    if constexpr (DYN) {
        const __nv_bfloat16 *p = kern + (bt * D + d0) * 4;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            float f[8];
            load8(p + 8 * q, f);
#pragma unroll
            for (int e = 0; e < 8; e++) k[2 * q + e / 4][e % 4] = f[e];
        }
    } else {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            float f[8];
            load8(w + (int64_t)(d0 + 2 * q) * 4, f);
#pragma unroll
            for (int e = 0; e < 8; e++) k[2 * q + e / 4][e % 4] = f[e];
        }
    }
}

// Dynamic conv forward: y (B, T, D) = act(conv), one thread per (row, 8 channels),
// grid-stride (every row has its own taps, so there is nothing to keep across rows).
template <typename OT>
static __global__ void cv4_fwd_kernel(OT *y, const __nv_bfloat16 *__restrict__ x,
                                      const __nv_bfloat16 *__restrict__ kern, const float *__restrict__ x_prev, int T,
                                      int D, int act, int64_t items) {
    const int G = D / 8;
    for (int64_t it = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; it < items;
         it += (int64_t)gridDim.x * blockDim.x) {
        const int64_t bt = it / G, b = bt / T;
        const int d0 = (int)(it - bt * G) * 8, t = (int)(bt - b * T);
        float k[8][4], acc[8];
        cv4_taps<true>(k, kern, nullptr, bt, D, d0);
#pragma unroll
        for (int c = 0; c < 8; c++) acc[c] = 0.f;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float u[8];
            cv4_u(u, x, x_prev, b, t - 3 + j, T, D, d0);
#pragma unroll
            for (int c = 0; c < 8; c++) acc[c] += k[c][j] * u[c];
        }
        if (act) {
#pragma unroll
            for (int c = 0; c < 8; c++) acc[c] = acc[c] * pn_sigmoid_for<OT>(acc[c]);
        }
        store8(y + bt * D + d0, acc);
    }
}

// Static conv, W = 4, a thread per (b, run of CV4_R rows, 8 channels) walking its rows with
// a 4-row window of x in registers: each x row is read once (the row-parallel form read it
// four times, once per tap, and the taps once per row), the taps and bias once per run.
template <typename OT>
static __global__ void __launch_bounds__(128) cv4s_fwd_kernel(OT *y, const __nv_bfloat16 *__restrict__ x,
                                                              const float *__restrict__ w,
                                                              const float *__restrict__ bias,
                                                              const float *__restrict__ x_prev, int T, int D,
                                                              int act, int64_t items) {
    const int G = D / 8, NR = (T + CV4_R - 1) / CV4_R;
    for (int64_t it = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; it < items;
         it += (int64_t)gridDim.x * blockDim.x) {
        const int64_t rest = it / G, b = rest / NR;
        const int d0 = (int)(it - rest * G) * 8, t0 = (int)(rest - b * NR) * CV4_R;
        const int t1 = min(T, t0 + CV4_R);
        float k[8][4], bs[8], u[4][8];
        cv4_taps<false>(k, nullptr, w, 0, D, d0);
#pragma unroll
        for (int c = 0; c < 8; c++) bs[c] = bias ? bias[d0 + c] : 0.f;
#pragma unroll
        for (int j = 1; j < 4; j++) cv4_u(u[j], x, x_prev, b, t0 - 4 + j, T, D, d0);
        uint4 nx = *reinterpret_cast<const uint4 *>(x + (b * T + t0) * D + d0);  // the next row, a row ahead
        for (int t = t0; t < t1; t++) {
#pragma unroll
            for (int j = 0; j < 3; j++)
#pragma unroll
                for (int c = 0; c < 8; c++) u[j][c] = u[j + 1][c];
            const uint32_t hw[4] = {nx.x, nx.y, nx.z, nx.w};
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&hw[q]));
                u[3][2 * q] = f.x, u[3][2 * q + 1] = f.y;
            }
            if (t + 1 < t1) nx = *reinterpret_cast<const uint4 *>(x + (b * T + t + 1) * D + d0);
            float acc[8];
#pragma unroll
            for (int c = 0; c < 8; c++) {
                float z = bs[c];
#pragma unroll
                for (int j = 0; j < 4; j++) z += k[c][j] * u[j][c];
                acc[c] = act ? z * pn_sigmoid_for<OT>(z) : z;
            }
            store8(y + (b * T + t) * D + d0, acc);
        }
    }
}

// 4 bf16 (8 bytes) → floats.
static __device__ __forceinline__ void cv_bf16x4(const uint2 r, float f[4]) {
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&r.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&r.y));
    f[0] = lo.x, f[1] = lo.y, f[2] = hi.x, f[3] = hi.y;
}

// Fused backward, W = 4, one thread per (b, run of CV4_R rows t0 .. t1−1, 4 channels), for the
// dynamic conv (DYN: per-token taps, dkern) and the static one (fixed taps and bias, dw/dbias):
// for t = t0 .. min(T, t1 + 3) − 1: dz_t = dy_t ⊙ act'(z_t) with z_t recomputed; for the run's
// own rows (t < t1) the row's dkern dz_t ⊙ u_{t−3+j} (DYN) or the run's dw / dbias partials
// Σ_t dz_t u_{t−3+j}, Σ_t dz_t (static, written to part (B·NR slices, D, 5) for
// cv_dw_final_kernel's ordered sum); and acc[j] (the partial dx of row t−3+j) += k_t[j] ⊙ dz_t.
// Row s gets its last term at t = s + 3 (tap 0), so after step t the oldest slot (row t − 3)
// is complete and is added to dx when it is one of this run's rows; the 3 rows after the run
// are recomputed only for the taps that reach back into it. Each step first issues the NEXT
// row's loads (taps, x, dy, packed as loaded) and this step's dx / fp32 dkern loads, then
// computes: one memory latency per row, overlapping the previous row's work. 4 channels per
// thread (the forward has 8): the windows and the prefetched row then take ~100 registers
// instead of ~175, so 4× the threads are in flight.
// dx: XT = float, (B·T, D) rows ldx = D apart, ADDED to; XT = bf16, rows ldx apart (a slice of a
// wider matrix), WRITTEN (rounded once; the old values are never read).
static __device__ __forceinline__ float4 cv_dx_get(const float *p) { return *reinterpret_cast<const float4 *>(p); }
static __device__ __forceinline__ float4 cv_dx_get(const __nv_bfloat16 *) { return make_float4(0.f, 0.f, 0.f, 0.f); }
static __device__ __forceinline__ void cv_dx_put(float *p, float4 v) { *reinterpret_cast<float4 *>(p) = v; }
static __device__ __forceinline__ uint32_t cv_bf16x2_bits(float a, float b) {  // a in the low half
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(a)) |
           ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(b)) << 16);
}
static __device__ __forceinline__ void cv_dx_put(__nv_bfloat16 *p, float4 v) {
    *reinterpret_cast<uint2 *>(p) = make_uint2(cv_bf16x2_bits(v.x, v.y), cv_bf16x2_bits(v.z, v.w));
}

template <bool DYN, typename KT, typename XT>
static __global__ void __launch_bounds__(128)
    cv4_bwd_kernel(XT *dx, int64_t ldx, KT *dkern, float *part, const float *__restrict__ dy,
                   const __nv_bfloat16 *__restrict__ x, const __nv_bfloat16 *__restrict__ kern,
                   const float *__restrict__ w, const float *__restrict__ bias, const float *__restrict__ x_prev, int T,
                   int D, int act, int64_t items) {
    constexpr bool KF32 = sizeof(KT) == sizeof(float);
    const int G = D / 4, NR = (T + CV4_R - 1) / CV4_R;
    for (int64_t it = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; it < items;
         it += (int64_t)gridDim.x * blockDim.x) {
        const int64_t rest = it / G, b = rest / NR;  // rest = b·NR + run: the static dw slice
        const int d0 = (int)(it - rest * G) * 4, t0 = (int)(rest - b * NR) * CV4_R;
        const int t1 = min(T, t0 + CV4_R), tend = min(T, t1 + 3);
        float k[4][4], bs[4], u[4][4], acc[4][4], pw[4][5];
#pragma unroll
        for (int c = 0; c < 4; c++) {
            bs[c] = 0.f;
            if constexpr (!DYN) {
                const float4 wc = *reinterpret_cast<const float4 *>(w + (int64_t)(d0 + c) * 4);
                k[c][0] = wc.x, k[c][1] = wc.y, k[c][2] = wc.z, k[c][3] = wc.w;
                if (bias) bs[c] = bias[d0 + c];
            }
#pragma unroll
            for (int j = 0; j < 5; j++) pw[c][j] = 0.f;
#pragma unroll
            for (int j = 0; j < 4; j++) acc[j][c] = 0.f;
        }
#pragma unroll
        for (int j = 1; j < 4; j++) {
            const int row = t0 - 4 + j;
            if (row >= 0) {
                cv_bf16x4(*reinterpret_cast<const uint2 *>(x + (b * T + row) * D + d0), u[j]);
            } else {
#pragma unroll
                for (int c = 0; c < 4; c++) u[j][c] = x_prev ? x_prev[(b * 3 + 3 + row) * D + d0 + c] : 0.f;
            }
        }
        uint4 nk[2];  // the next row, as loaded: taps (DYN), x, dy
        uint2 nx;
        float4 ndy;
        auto fetch = [&](int64_t bt) {
            if constexpr (DYN) {
                const uint4 *pk = reinterpret_cast<const uint4 *>(kern + (bt * D + d0) * 4);
                nk[0] = pk[0], nk[1] = pk[1];
            }
            nx = *reinterpret_cast<const uint2 *>(x + bt * D + d0);
            ndy = *reinterpret_cast<const float4 *>(dy + bt * D + d0);
        };
        fetch(b * T + t0);
        for (int t = t0; t < tend; t++) {
            const int64_t bt = b * T + t;
            float dz[4] = {ndy.x, ndy.y, ndy.z, ndy.w};
            if constexpr (DYN) {
                const __nv_bfloat162 *hk = reinterpret_cast<const __nv_bfloat162 *>(nk);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float2 f = __bfloat1622float2(hk[e]);
                    k[e / 2][2 * (e % 2)] = f.x, k[e / 2][2 * (e % 2) + 1] = f.y;
                }
            }
#pragma unroll
            for (int j = 0; j < 3; j++)
#pragma unroll
                for (int c = 0; c < 4; c++) u[j][c] = u[j + 1][c], acc[j][c] = acc[j + 1][c];
            cv_bf16x4(nx, u[3]);
#pragma unroll
            for (int c = 0; c < 4; c++) acc[3][c] = 0.f;
            if (t + 1 < tend) fetch(bt + 1);  // issue the next row's loads now
            const bool wdx = dx && t - 3 >= t0, own = t < t1;
            float4 dxo = make_float4(0.f, 0.f, 0.f, 0.f);
            float dko[DYN && KF32 ? 16 : 1];
            if (wdx) dxo = cv_dx_get(dx + (bt - 3) * ldx + d0);
            if constexpr (DYN && KF32) {
                if (dkern && own) {
#pragma unroll
                    for (int q = 0; q < 2; q++) load8(dkern + (bt * D + d0) * 4 + 8 * q, dko + 8 * q);
                }
            }
            if (act) {
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    float z = bs[c];
#pragma unroll
                    for (int j = 0; j < 4; j++) z += k[c][j] * u[j][c];
                    const float sg = pn_sigmoid(z);
                    dz[c] *= sg * (1.0f + z * (1.0f - sg));
                }
            }
            if constexpr (DYN) {
                if (dkern && own) {
                    float g[16];
#pragma unroll
                    for (int c = 0; c < 4; c++)
#pragma unroll
                        for (int j = 0; j < 4; j++) g[4 * c + j] = dz[c] * u[j][c];
                    if constexpr (KF32) {
#pragma unroll
                        for (int e = 0; e < 16; e++) g[e] += dko[e];
                    }
                    KT *p = dkern + (bt * D + d0) * 4;
                    store8(p, g);
                    store8(p + 8, g + 8);
                }
            } else if (own) {
#pragma unroll
                for (int c = 0; c < 4; c++) {
#pragma unroll
                    for (int j = 0; j < 4; j++) pw[c][j] += dz[c] * u[j][c];
                    pw[c][4] += dz[c];
                }
            }
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[j][c] += k[c][j] * dz[c];
            if (wdx) {
                dxo.x += acc[0][0], dxo.y += acc[0][1], dxo.z += acc[0][2], dxo.w += acc[0][3];
                cv_dx_put(dx + (bt - 3) * ldx + d0, dxo);
            }
        }
        if (dx && tend == T) {  // the last rows of the sequence have no later taps
#pragma unroll
            for (int m = 1; m < 4; m++) {
                const int sr = tend - 4 + m;
                if (sr < t0 || sr >= t1) continue;
                XT *p = dx + (b * T + sr) * ldx + d0;
                float4 o = cv_dx_get(p);
                o.x += acc[m][0], o.y += acc[m][1], o.z += acc[m][2], o.w += acc[m][3];
                cv_dx_put(p, o);
            }
        }
        if (!DYN && part) {
            float *o = part + (rest * D + d0) * 5;
#pragma unroll
            for (int c = 0; c < 4; c++)
#pragma unroll
                for (int j = 0; j < 5; j++) o[c * 5 + j] = pw[c][j];
        }
    }
}

// The vector forms apply: W = 4, D a multiple of 8, every vector-accessed tensor 16-byte aligned.
static bool cv4_ok(int D, int W, const void *a, const void *b, const void *c, const void *d) {
    return W == 4 && D % 8 == 0 && (!a || pn_aligned16(a)) && (!b || pn_aligned16(b)) && (!c || pn_aligned16(c)) &&
           (!d || pn_aligned16(d));
}

// ---------------------------------------------------------------- host side
template <bool DYN>
static void cv_fwd(const char *op, void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const float *w, const pn_bf16 *kern,
                   const float *bias, const float *x_prev, int B, int T, int D, int W, int act) {
    if (D < 1 || W < 1 || W > CV_WMAX) cv_die(op, "unsupported size", D, W);
    const int64_t total = (int64_t)B * T * D;
    if (total <= 0) return;
    if (!DYN && cv4_ok(D, W, x, w, y, nullptr)) {
        const int64_t items = (int64_t)B * pn_ceil_div(T, CV4_R) * (D / 8);
        const unsigned g4 = pn_grid_for(items, 128);
        if (y_dt == PN_CUDA_F32)
            cv4s_fwd_kernel<float><<<g4, 128, 0, pn_stream()>>>((float *)y, as_bf(x), w, bias, x_prev, T, D, act, items);
        else
            cv4s_fwd_kernel<__nv_bfloat16><<<g4, 128, 0, pn_stream()>>>((__nv_bfloat16 *)y, as_bf(x), w, bias, x_prev,
                                                                        T, D, act, items);
        PN_CHECK_LAUNCH();
        return;
    }
    if (DYN && cv4_ok(D, W, x, kern, y, nullptr)) {
        const int64_t items = total / 8;
        const unsigned g4 = pn_grid_for(items, CV_THREADS);
        if (y_dt == PN_CUDA_F32)
            cv4_fwd_kernel<float>
                <<<g4, CV_THREADS, 0, pn_stream()>>>((float *)y, as_bf(x), as_bf(kern), x_prev, T, D, act, items);
        else
            cv4_fwd_kernel<__nv_bfloat16><<<g4, CV_THREADS, 0, pn_stream()>>>((__nv_bfloat16 *)y, as_bf(x), as_bf(kern),
                                                                              x_prev, T, D, act, items);
        PN_CHECK_LAUNCH();
        return;
    }
    const unsigned grid = pn_grid_for(total, CV_THREADS);
    if (y_dt == PN_CUDA_F32)
        cv_fwd_kernel<DYN, float><<<grid, CV_THREADS, 0, pn_stream()>>>(
            (float *)y, as_bf(x), w, as_bf(kern), bias, x_prev, T, D, W, act, total);
    else
        cv_fwd_kernel<DYN, __nv_bfloat16><<<grid, CV_THREADS, 0, pn_stream()>>>(
            (__nv_bfloat16 *)y, as_bf(x), w, as_bf(kern), bias, x_prev, T, D, W, act, total);
    PN_CHECK_LAUNCH();
}

// dz = dy ⊙ silu'(z) in scratch when act = 1 (returned; the caller frees it), else dy itself.
template <bool DYN>
static const float *cv_dz(float **owned, const float *dy, const pn_bf16 *x, const float *w, const pn_bf16 *kern,
                          const float *bias, const float *x_prev, int T, int D, int W, int act, int64_t total) {
    *owned = nullptr;
    if (!act) return dy;
    float *dz = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)total * sizeof(float));
    cv_dz_kernel<DYN><<<pn_grid_for(total, CV_THREADS), CV_THREADS, 0, pn_stream()>>>(
        dz, dy, as_bf(x), w, as_bf(kern), bias, x_prev, T, D, W, total);
    PN_CHECK_LAUNCH();
    *owned = dz;
    return dz;
}

extern "C" void pn_cuda_conv_causal_fwd(void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const float *w,
                                        const float *bias, const float *x_prev, int B, int T, int D, int W, int act) {
    cv_fwd<false>("conv forward", y, y_dt, x, w, nullptr, bias, x_prev, B, T, D, W, act);
}

extern "C" void pn_cuda_dynconv_causal_fwd(void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const pn_bf16 *kern,
                                           const float *x_prev, int B, int T, int D, int W, int act) {
    cv_fwd<true>("dynamic conv forward", y, y_dt, x, nullptr, kern, nullptr, x_prev, B, T, D, W, act);
}

// The dx contract, checked once at entry: fp32 dx is (B·T, D) dense (ldx = D); bf16 rows
// are ldx ≥ D apart.
static void cv_check_dx(const void *dx, pn_cuda_dtype dx_dt, int64_t ldx, int D) {
    if (dx && (dx_dt == PN_CUDA_F32 ? ldx != D : ldx < D)) {
        fprintf(stderr, "postnas: internal error: %s:%d: conv dx (%s) with row stride %lld for D = %d\n", __FILE__,
                __LINE__, dx_dt == PN_CUDA_F32 ? "fp32" : "bf16", (long long)ldx, D);
        exit(1);
    }
}

// The bf16-written dx (rows ldx apart) where the fused kernel does not apply: the fp32 form
// into zeroed scratch, then one rounding into place. Returns the scratch to hand the fp32
// form (the caller converts and frees it), or the caller's fp32 dx as it is.
static float *cv_dx_f32(void *dx, pn_cuda_dtype dx_dt, int64_t N, int D) {
    if (!dx) return nullptr;
    if (dx_dt == PN_CUDA_F32) return (float *)dx;
    float *t = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(N * D) * sizeof(float));
    pn_cuda_memset(t, 0, (size_t)(N * D) * sizeof(float));
    return t;
}
static void cv_dx_finish(void *dx, pn_cuda_dtype dx_dt, int64_t ldx, float *t, int64_t N, int D) {
    if (!dx || dx_dt == PN_CUDA_F32) return;
    pn_cuda_f32_to_bf16_2d((pn_bf16 *)dx, ldx, t, N, D);
    pn_cuda_free(t);
}
// The fused kernel's dx conditions: fp32 16-byte rows (cv4_ok), or bf16 8-byte stores.
static bool cv4_dx_ok(const void *dx, pn_cuda_dtype dx_dt, int64_t ldx) {
    if (!dx) return true;
    if (dx_dt == PN_CUDA_F32) return pn_aligned16(dx);
    return ((uintptr_t)dx & 7u) == 0 && ldx % 4 == 0;
}

extern "C" void pn_cuda_conv_causal_bwd(void *dx, pn_cuda_dtype dx_dt, int64_t ldx, float *dw, float *dbias,
                                        const float *dy, const pn_bf16 *x, const float *w, const float *bias,
                                        const float *x_prev, int B, int T, int D, int W, int act) {
    if (D < 1 || W < 1 || W > CV_WMAX) cv_die("conv backward", "unsupported size", D, W);
    cv_check_dx(dx, dx_dt, ldx, D);
    const int64_t N = (int64_t)B * T, total = N * D;
    if (total <= 0 || (!dx && !dw && !dbias)) return;
    if (cv4_ok(D, W, x, w, dy, nullptr) && cv4_dx_ok(dx, dx_dt, ldx)) {
        const int64_t nslice = (int64_t)B * pn_ceil_div(T, CV4_R), items = nslice * (D / 4);
        float *part = dw || dbias ? (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(nslice * D * 5) * sizeof(float))
                                  : nullptr;
        if (dx_dt == PN_CUDA_BF16)
            cv4_bwd_kernel<false, float, __nv_bfloat16><<<pn_grid_for(items, 128), 128, 0, pn_stream()>>>(
                (__nv_bfloat16 *)dx, ldx, nullptr, part, dy, as_bf(x), nullptr, w, bias, x_prev, T, D, act, items);
        else
            cv4_bwd_kernel<false, float, float><<<pn_grid_for(items, 128), 128, 0, pn_stream()>>>(
                (float *)dx, D, nullptr, part, dy, as_bf(x), nullptr, w, bias, x_prev, T, D, act, items);
        PN_CHECK_LAUNCH();
        if (part) {
            cv_dw_final_kernel<<<(unsigned)pn_ceil_div((int64_t)D * 5, CV_THREADS), CV_THREADS, 0, pn_stream()>>>(
                dw, dbias, part, D, W, (int)nslice);
            PN_CHECK_LAUNCH();
            pn_cuda_free(part);
        }
        return;
    }
    float *owned;
    const float *dz = cv_dz<false>(&owned, dy, x, w, nullptr, bias, x_prev, T, D, W, act, total);
    float *dx32 = cv_dx_f32(dx, dx_dt, N, D);
    if (dx32) {
        cv_dx_kernel<false><<<pn_grid_for(total, CV_THREADS), CV_THREADS, 0, pn_stream()>>>(dx32, dz, w, nullptr, T,
                                                                                           D, W, total);
        PN_CHECK_LAUNCH();
        cv_dx_finish(dx, dx_dt, ldx, dx32, N, D);
    }
    if (dw || dbias) {
        int64_t nslice = pn_ceil_div(N, CV_ROWS_SLICE);
        if (nslice > 1024) nslice = 1024;
        const int64_t rows_per_slice = pn_ceil_div(N, nslice);
        nslice = pn_ceil_div(N, rows_per_slice);
        float *part = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(nslice * D * (W + 1)) * sizeof(float));
        cv_dw_partial_kernel<<<dim3((unsigned)pn_ceil_div(D, 32), (unsigned)nslice), dim3(32, 8), 0, pn_stream()>>>(
            part, dz, as_bf(x), x_prev, T, D, W, N, rows_per_slice);
        PN_CHECK_LAUNCH();
        const int64_t nf = (int64_t)D * (W + 1);
        cv_dw_final_kernel<<<(unsigned)pn_ceil_div(nf, CV_THREADS), CV_THREADS, 0, pn_stream()>>>(dw, dbias, part, D,
                                                                                                 W, (int)nslice);
        PN_CHECK_LAUNCH();
        pn_cuda_free(part);
    }
    pn_cuda_free(owned);
}

// The dynamic conv's fused backward for one dkern / dx type pair.
template <typename KT, typename XT>
static void cv4_dyn_bwd(XT *dx, int64_t ldx, void *dkern, const float *dy, const pn_bf16 *x, const pn_bf16 *kern,
                        const float *x_prev, int B, int T, int D, int act) {
    const int64_t items = (int64_t)B * pn_ceil_div(T, CV4_R) * (D / 4);
    cv4_bwd_kernel<true, KT, XT><<<pn_grid_for(items, 128), 128, 0, pn_stream()>>>(
        dx, ldx, (KT *)dkern, nullptr, dy, as_bf(x), as_bf(kern), nullptr, nullptr, x_prev, T, D, act, items);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_dynconv_causal_bwd(void *dx, pn_cuda_dtype dx_dt, int64_t ldx, void *dkern,
                                           pn_cuda_dtype dkern_dt, const float *dy, const pn_bf16 *x,
                                           const pn_bf16 *kern, const float *x_prev, int B, int T, int D, int W,
                                           int act) {
    if (D < 1 || W < 1 || W > CV_WMAX) cv_die("dynamic conv backward", "unsupported size", D, W);
    cv_check_dx(dx, dx_dt, ldx, D);
    const int64_t N = (int64_t)B * T, total = N * D;
    if (total <= 0 || (!dx && !dkern)) return;
    if (cv4_ok(D, W, x, kern, dy, nullptr) && cv4_dx_ok(dx, dx_dt, ldx) && (!dkern || pn_aligned16(dkern))) {
        const bool k16 = dkern_dt == PN_CUDA_BF16, x16 = dx_dt == PN_CUDA_BF16;
        if (k16 && x16)
            cv4_dyn_bwd<__nv_bfloat16>((__nv_bfloat16 *)dx, ldx, dkern, dy, x, kern, x_prev, B, T, D, act);
        else if (k16)
            cv4_dyn_bwd<__nv_bfloat16>((float *)dx, D, dkern, dy, x, kern, x_prev, B, T, D, act);
        else if (x16)
            cv4_dyn_bwd<float>((__nv_bfloat16 *)dx, ldx, dkern, dy, x, kern, x_prev, B, T, D, act);
        else
            cv4_dyn_bwd<float>((float *)dx, D, dkern, dy, x, kern, x_prev, B, T, D, act);
        return;
    }
    float *owned;
    const float *dz = cv_dz<true>(&owned, dy, x, nullptr, kern, nullptr, x_prev, T, D, W, act, total);
    const unsigned grid = pn_grid_for(total, CV_THREADS);
    if (dkern) {
        if (dkern_dt == PN_CUDA_BF16)
            cv_dkern_kernel<__nv_bfloat16><<<grid, CV_THREADS, 0, pn_stream()>>>((__nv_bfloat16 *)dkern, dz, as_bf(x),
                                                                                x_prev, T, D, W, total);
        else
            cv_dkern_kernel<float>
                <<<grid, CV_THREADS, 0, pn_stream()>>>((float *)dkern, dz, as_bf(x), x_prev, T, D, W, total);
        PN_CHECK_LAUNCH();
    }
    float *dx32 = cv_dx_f32(dx, dx_dt, N, D);
    if (dx32) {
        cv_dx_kernel<true><<<grid, CV_THREADS, 0, pn_stream()>>>(dx32, dz, nullptr, as_bf(kern), T, D, W, total);
        PN_CHECK_LAUNCH();
        cv_dx_finish(dx, dx_dt, ldx, dx32, N, D);
    }
    pn_cuda_free(owned);
}
