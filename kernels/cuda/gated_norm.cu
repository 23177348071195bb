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
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_linear.h"
#include <math.h>

#define GN_THREADS 256
#define GN_MAX_SLICES 1024

static __device__ __forceinline__ float gn_sigmoid(float z) {
    if (z >= 0.f) return 1.f / (1.f + expf(-z));
    const float e = expf(z);
    return e / (1.f + e);
}

template <typename OT>
static __global__ void gn_fwd_kernel(OT *y, float *rstd, const __nv_bfloat16 *__restrict__ x,
                                     const float *__restrict__ w, const __nv_bfloat16 *__restrict__ gate, int64_t N,
                                     int D, float eps) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const __nv_bfloat16 *xr = x + row * D;
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
            v *= g * gn_sigmoid(g);
        }
        from_f32(y + row * D + c, v);
    }
}

// Rows [slice · rps, min(N, (slice + 1) · rps)) of one block. wpart (slices, D) gets the
// slice's Σ dy·n·silu(gate) per column when not NULL. Dynamic shared memory: D floats.
static __global__ void __launch_bounds__(GN_THREADS)
    gn_bwd_kernel(float *dx, float *dgate, float *wpart, const float *__restrict__ dy,
                  const __nv_bfloat16 *__restrict__ x, const float *__restrict__ w,
                  const __nv_bfloat16 *__restrict__ gate, const float *__restrict__ rstd, int64_t N, int D,
                  int64_t rps) {
    extern __shared__ float wp[];  // (D) this block's dw partial; column c owned by thread c % 256
    __shared__ float red[32];
    const int tid = threadIdx.x;
    const int64_t r0 = (int64_t)blockIdx.x * rps, r1 = min(N, r0 + rps);
    for (int c = tid; c < D; c += GN_THREADS) wp[c] = 0.f;
    for (int64_t row = r0; row < r1; row++) {
        const float r = rstd[row];
        const float *dyr = dy + row * D;
        const __nv_bfloat16 *xr = x + row * D;
        float dot = 0.f;
        for (int c = tid; c < D; c += GN_THREADS) {
            const float wd = w ? w[c] : 1.0f, nd = to_f32(xr[c]) * r;
            float a = wd, sg = 1.0f;  // sg = silu(gate)
            if (gate) {
                const float g = to_f32(gate[row * D + c]), s = gn_sigmoid(g);
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
                a *= g * gn_sigmoid(g);
            }
            const float nd = to_f32(xr[c]) * r;
            dx[row * D + c] += r * (dyr[c] * a - nd * mean);
        }
    }
    if (wpart)
        for (int c = tid; c < D; c += GN_THREADS) wpart[(int64_t)blockIdx.x * D + c] = wp[c];
}

// Warp-per-row backward, D ≤ 32·NC; a block is GN_THREADS threads = 8 warps, the slice's
// rows strided by warp. wpart as gn_bwd_kernel.
template <int NC>
static __global__ void __launch_bounds__(GN_THREADS)
    gn_bwd_warp_kernel(float *dx, float *dgate, float *wpart, const float *__restrict__ dy,
                       const __nv_bfloat16 *__restrict__ x, const float *__restrict__ w,
                       const __nv_bfloat16 *__restrict__ gate, const float *__restrict__ rstd, int64_t N, int D,
                       int64_t rps) {
    constexpr int NW = GN_THREADS / 32;
    __shared__ float wsum[NW][32 * NC];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t r0 = (int64_t)blockIdx.x * rps, r1 = min(N, r0 + rps);
    float wv[NC], acc[NC];
#pragma unroll
    for (int j = 0; j < NC; j++) {
        const int c = lane + 32 * j;
        wv[j] = c < D && w ? w[c] : 1.0f;
        acc[j] = 0.f;
    }
    for (int64_t row = r0 + warp; row < r1; row += NW) {
        const float r = rstd[row];
        const int64_t base = row * D;
        float dyv[NC], nd[NC], a[NC];  // a = w·silu(gate)
        float dot = 0.f;
#pragma unroll
        for (int j = 0; j < NC; j++) {
            const int c = lane + 32 * j;
            dyv[j] = nd[j] = a[j] = 0.f;
            if (c < D) {
                dyv[j] = dy[base + c];
                nd[j] = to_f32(x[base + c]) * r;
                float sg = 1.0f;  // silu(gate)
                if (gate) {
                    const float g = to_f32(gate[base + c]), sgm = gn_sigmoid(g);
                    sg = g * sgm;
                    if (dgate) dgate[base + c] += dyv[j] * nd[j] * wv[j] * sgm * (1.0f + g * (1.0f - sgm));
                }
                a[j] = wv[j] * sg;
                dot += dyv[j] * a[j] * nd[j];
                acc[j] += dyv[j] * nd[j] * sg;
            }
        }
        if (!dx) continue;
        const float mean = warp_sum(dot) / (float)D;
#pragma unroll
        for (int j = 0; j < NC; j++) {
            const int c = lane + 32 * j;
            if (c < D) dx[base + c] += r * (dyv[j] * a[j] - nd[j] * mean);
        }
    }
    if (!wpart) return;
#pragma unroll
    for (int j = 0; j < NC; j++) wsum[warp][lane + 32 * j] = acc[j];
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

extern "C" void pn_cuda_rmsnorm_gated_fwd(void *y, pn_cuda_dtype y_dt, float *rstd, const pn_bf16 *x, const float *w,
                                          const pn_bf16 *gate, int64_t N, int D, float eps) {
    if (N <= 0 || D <= 0) return;
    const int rows_per_block = 8;
    const unsigned grid = (unsigned)pn_ceil_div(N, rows_per_block);
    if (y_dt == PN_CUDA_F32)
        gn_fwd_kernel<float>
            <<<grid, 32 * rows_per_block, 0, pn_stream()>>>((float *)y, rstd, as_bf(x), w, as_bf(gate), N, D, eps);
    else
        gn_fwd_kernel<__nv_bfloat16><<<grid, 32 * rows_per_block, 0, pn_stream()>>>(
            (__nv_bfloat16 *)y, rstd, as_bf(x), w, as_bf(gate), N, D, eps);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_rmsnorm_gated_bwd(float *dx, float *dw, float *dgate, const float *dy, const pn_bf16 *x,
                                          const float *w, const pn_bf16 *gate, const float *rstd, int64_t N, int D) {
    if (N <= 0 || D <= 0 || (!dx && !dw && !(dgate && gate))) return;
    const size_t smem = (size_t)D * sizeof(float);
    if (smem > 48 * 1024) {
        fprintf(stderr, "postnas: internal error: %s: gated RMSNorm backward: D = %d > %d\n", __FILE__, D, 48 * 256);
        exit(1);
    }
    int64_t nslice = pn_ceil_div(N, 32);  // at least 32 rows per block
    if (nslice > GN_MAX_SLICES) nslice = GN_MAX_SLICES;
    const int64_t rps = pn_ceil_div(N, nslice);
    nslice = pn_ceil_div(N, rps);
    float *wpart = dw ? (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)(nslice * D) * sizeof(float)) : nullptr;
    float *dg = gate ? dgate : nullptr;
    const unsigned grid = (unsigned)nslice;
    if (D <= 64)
        gn_bwd_warp_kernel<2><<<grid, GN_THREADS, 0, pn_stream()>>>(dx, dg, wpart, dy, as_bf(x), w, as_bf(gate), rstd,
                                                                    N, D, rps);
    else if (D <= 128)
        gn_bwd_warp_kernel<4><<<grid, GN_THREADS, 0, pn_stream()>>>(dx, dg, wpart, dy, as_bf(x), w, as_bf(gate), rstd,
                                                                    N, D, rps);
    else if (D <= 256)
        gn_bwd_warp_kernel<8><<<grid, GN_THREADS, 0, pn_stream()>>>(dx, dg, wpart, dy, as_bf(x), w, as_bf(gate), rstd,
                                                                    N, D, rps);
    else
        gn_bwd_kernel<<<grid, GN_THREADS, smem, pn_stream()>>>(dx, dg, wpart, dy, as_bf(x), w, as_bf(gate), rstd, N, D,
                                                               rps);
    PN_CHECK_LAUNCH();
    if (dw) {
        gn_dw_final_kernel<<<(unsigned)pn_ceil_div(D, GN_THREADS), GN_THREADS, 0, pn_stream()>>>(dw, wpart, D,
                                                                                               (int)nslice);
        PN_CHECK_LAUNCH();
        pn_cuda_free(wpart);
    }
}
