// norm.cu — RMSNorm forward/backward with fp32 math, on bf16 x (pn_cuda_ops.h) or on
// fp32 x (the CUDA supernet's fp32 residual stream, pn_cuda_norm_f32.h).
//
// One block per row: the row's sum of squares (forward) or Σ g·x (backward) is one
// block reduction (warp shuffles, then one shared-memory step across warps). When D
// is a multiple of 8 and the pointers are 16-byte aligned each thread moves 8 elements
// per access (one 16-byte bf16x8, or two float4); otherwise the same kernel runs with
// scalar accesses, so any D works. The row is read twice (reduce, then write); the
// second read hits L1/L2. rstd is computed as 1/sqrtf (IEEE), not rsqrtf, to stay
// within an ulp of the CPU op. The kernels are templated on x's type only: both entry
// points run the same arithmetic. The forward writes the bf16 output and / or (fp32 x
// only) the same values unrounded, so y is always y32 rounded once (nearest-even).
//
// dw (D) is a column reduction over rows; it is rarely needed (the backbone's norms are
// frozen), so it is a separate, deterministic kernel: a block owns 32 columns and 8
// row phases, combined in a fixed order in shared memory.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_norm_f32.h"

template <int VEC, typename TX>
__global__ void rmsnorm_fwd_kernel(__nv_bfloat16 *y, float *y32, float *rstd, const TX *x, const __nv_bfloat16 *w,
                                   int D, float eps) {
    __shared__ float sh[32];
    const int64_t row = blockIdx.x;
    const TX *xr = x + row * D;
    float ss = 0.0f;
    for (int d = threadIdx.x * VEC; d < D; d += blockDim.x * VEC) {
        if (VEC == 8) {
            float f[8];
            load8(xr + d, f);
#pragma unroll
            for (int i = 0; i < 8; i++) ss += f[i] * f[i];
        } else {
            const float f = to_f32(xr[d]);
            ss += f * f;
        }
    }
    ss = block_sum(ss, sh);
    const float r = 1.0f / sqrtf(ss / (float)D + eps);
    if (rstd && threadIdx.x == 0) rstd[row] = r;
    for (int d = threadIdx.x * VEC; d < D; d += blockDim.x * VEC) {
        if (VEC == 8) {
            float f[8], g[8];
            load8(xr + d, f);
            if (w) {
                load8(w + d, g);
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) g[i] = 1.0f;
            }
#pragma unroll
            for (int i = 0; i < 8; i++) f[i] = f[i] * r * g[i];
            if (y) store8(y + row * D + d, f);
            if (y32) store8(y32 + row * D + d, f);
        } else {
            const float f = to_f32(xr[d]) * r * (w ? __bfloat162float(w[d]) : 1.0f);
            if (y) y[row * D + d] = __float2bfloat16_rn(f);
            if (y32) y32[row * D + d] = f;
        }
    }
}

// dx += rstd·g − x·rstd³·mean(g·x), g = dy·w.
template <int VEC, typename TX>
__global__ void rmsnorm_bwd_dx_kernel(float *dx, const float *dy, const TX *x, const __nv_bfloat16 *w,
                                      const float *rstd, int D) {
    __shared__ float sh[32];
    const int64_t row = blockIdx.x;
    const TX *xr = x + row * D;
    const float *gr = dy + row * D;
    float *dxr = dx + row * D;
    float dot = 0.0f;
    for (int d = threadIdx.x * VEC; d < D; d += blockDim.x * VEC) {
        if (VEC == 8) {
            float f[8], g[8], ww[8];
            load8(xr + d, f);
            load8(gr + d, g);
            if (w) {
                load8(w + d, ww);
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) ww[i] = 1.0f;
            }
#pragma unroll
            for (int i = 0; i < 8; i++) dot += g[i] * ww[i] * f[i];
        } else {
            dot += gr[d] * (w ? __bfloat162float(w[d]) : 1.0f) * to_f32(xr[d]);
        }
    }
    dot = block_sum(dot, sh);
    const float r = rstd[row];
    const float c = r * r * r * dot / (float)D;
    for (int d = threadIdx.x * VEC; d < D; d += blockDim.x * VEC) {
        if (VEC == 8) {
            float f[8], g[8], ww[8], o[8];
            load8(xr + d, f);
            load8(gr + d, g);
            load8(dxr + d, o);
            if (w) {
                load8(w + d, ww);
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) ww[i] = 1.0f;
            }
#pragma unroll
            for (int i = 0; i < 8; i++) o[i] += r * g[i] * ww[i] - c * f[i];
            store8(dxr + d, o);
        } else {
            const float g = gr[d] * (w ? __bfloat162float(w[d]) : 1.0f);
            dxr[d] += r * g - c * to_f32(xr[d]);
        }
    }
}

// dw (D) += Σ_n dy·x·rstd. Block (32, 8), column 32·blockIdx.x + threadIdx.x.
template <typename TX>
__global__ void rmsnorm_bwd_dw_kernel(float *dw, const float *dy, const TX *x, const float *rstd, int64_t N, int D) {
    __shared__ float part[8][33];
    const int col = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (col < D)
        for (int64_t n = threadIdx.y; n < N; n += 8) acc += dy[n * D + col] * to_f32(x[n * D + col]) * rstd[n];
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < D) {
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) s += part[j][threadIdx.x];
        dw[col] += s;
    }
}

template <typename TX>
static void rmsnorm_fwd(__nv_bfloat16 *y, float *y32, float *rstd, const TX *x, const __nv_bfloat16 *w, int64_t N,
                        int D, float eps) {
    if (N <= 0 || D <= 0) return;
    const bool vec = D % 8 == 0 && (!y || pn_aligned16(y)) && (!y32 || pn_aligned16(y32)) && pn_aligned16(x) &&
                     (!w || pn_aligned16(w));
    const int threads = pn_row_threads(vec ? D / 8 : D, 256);
    if (vec)
        rmsnorm_fwd_kernel<8, TX><<<(unsigned)N, threads, 0, pn_stream()>>>(y, y32, rstd, x, w, D, eps);
    else
        rmsnorm_fwd_kernel<1, TX><<<(unsigned)N, threads, 0, pn_stream()>>>(y, y32, rstd, x, w, D, eps);
    PN_CHECK_LAUNCH();
}

template <typename TX>
static void rmsnorm_bwd(float *dx, float *dw, const float *dy, const TX *x, const __nv_bfloat16 *w, const float *rstd,
                        int64_t N, int D) {
    if (N <= 0 || D <= 0) return;
    if (dx) {
        const bool vec =
            D % 8 == 0 && pn_aligned16(dx) && pn_aligned16(dy) && pn_aligned16(x) && (!w || pn_aligned16(w));
        const int threads = pn_row_threads(vec ? D / 8 : D, 256);
        if (vec)
            rmsnorm_bwd_dx_kernel<8, TX><<<(unsigned)N, threads, 0, pn_stream()>>>(dx, dy, x, w, rstd, D);
        else
            rmsnorm_bwd_dx_kernel<1, TX><<<(unsigned)N, threads, 0, pn_stream()>>>(dx, dy, x, w, rstd, D);
        PN_CHECK_LAUNCH();
    }
    if (dw) {
        rmsnorm_bwd_dw_kernel<TX><<<(unsigned)pn_ceil_div(D, 32), dim3(32, 8), 0, pn_stream()>>>(dw, dy, x, rstd, N, D);
        PN_CHECK_LAUNCH();
    }
}

extern "C" void pn_cuda_rmsnorm_fwd(pn_bf16 *y, float *rstd, const pn_bf16 *x, const pn_bf16 *w, int64_t N, int D,
                                    float eps) {
    rmsnorm_fwd(as_bf(y), (float *)nullptr, rstd, as_bf(x), as_bf(w), N, D, eps);
}

extern "C" void pn_cuda_rmsnorm_bwd(float *dx, float *dw, const float *dy, const pn_bf16 *x, const pn_bf16 *w,
                                    const float *rstd, int64_t N, int D) {
    rmsnorm_bwd(dx, dw, dy, as_bf(x), as_bf(w), rstd, N, D);
}

extern "C" void pn_cuda_rmsnorm_f32_fwd(pn_bf16 *y, float *y32, float *rstd, const float *x, const pn_bf16 *w,
                                        int64_t N, int D, float eps) {
    rmsnorm_fwd(as_bf(y), y32, rstd, x, as_bf(w), N, D, eps);
}

extern "C" void pn_cuda_rmsnorm_f32_bwd(float *dx, float *dw, const float *dy, const float *x, const pn_bf16 *w,
                                        const float *rstd, int64_t N, int D) {
    rmsnorm_bwd(dx, dw, dy, x, as_bf(w), rstd, N, D);
}

