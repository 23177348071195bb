// attn_fallback.cu — host side of the built-in attention kernels (attn_fallback.cuh):
// argument checks, the head-dim bucket (DMAX 64 / 128 / 256), shared-memory opt-in,
// launches, and the two small helpers of the backward (Δ = rowsum(dO ∘ O) and the
// fp32 → bf16 conversion of the atomically accumulated dQ).
//
// The kernels were checked on the CPU by compiling attn_fallback.cuh against a thread-
// per-CUDA-thread emulation of __syncthreads / __syncwarp / WMMA (double-precision
// reference, T up to 300, D 20..256, windows, GQA, Tq < Tk); the GPU test
// (tests/gpu/test_cuda_attn.c) runs them against the CPU twin.
#include "kernels/cuda/attn_fallback.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_attn.h"

namespace {

[[noreturn]] void attn_die(const char *what, int B, int Tq, int Tk, int Hq, int Hkv, int D) {
    fprintf(stderr,
            "postnas: internal error: %s: attention %s (B = %d, Tq = %d, Tk = %d, Hq = %d, Hkv = %d, D = %d; "
            "want Tk >= Tq >= 1, Hq %% Hkv == 0, 1 <= D <= 256)\n",
            __FILE__, what, B, Tq, Tk, Hq, Hkv, D);
    exit(1);
}

bool is_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

template <int DMAX>
void launch_fwd(const pn_attn::fwd_params &p) {
    typedef pn_attn::fwd_cfg<DMAX> C;
    PN_CHECK_CUDA(cudaFuncSetAttribute(pn_attn::attn_fwd_kernel<DMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)C::bytes));
    dim3 grid((unsigned)pn_ceil_div(p.Tq, C::BQ), (unsigned)p.Hq, (unsigned)p.B);
    pn_attn::attn_fwd_kernel<DMAX><<<grid, C::NT, C::bytes, pn_stream()>>>(p);
    PN_CHECK_LAUNCH();
}

template <int DMAX, int NW>
void launch_bwd(const pn_attn::bwd_params &p) {
    typedef pn_attn::bwd_cfg<DMAX, NW> C;
    PN_CHECK_CUDA(cudaFuncSetAttribute(pn_attn::attn_bwd_kernel<DMAX, NW>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::bytes));
    dim3 grid((unsigned)pn_ceil_div(p.T, C::BK), (unsigned)p.Hkv, (unsigned)p.B);
    pn_attn::attn_bwd_kernel<DMAX, NW><<<grid, C::NT, C::bytes, pn_stream()>>>(p);
    PN_CHECK_LAUNCH();
}

// delta (B, Hq, T) = Σ_d dout · o over rows (b, t, h) of (B, T, Hq, D); one warp per row.
__global__ void attn_delta_kernel(float *delta, const __nv_bfloat16 *dout, const __nv_bfloat16 *o, int64_t rows,
                                  int T, int Hq, int D) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warps) {
        const __nv_bfloat16 *a = dout + r * D, *c = o + r * D;
        float s = 0.0f;
        for (int d = lane; d < D; d += 32) s += __bfloat162float(a[d]) * __bfloat162float(c[d]);
        s = warp_sum(s);
        if (lane == 0) {
            const int64_t h = r % Hq, bt = r / Hq, t = bt % T, b = bt / T;
            delta[(b * Hq + h) * T + t] = s;
        }
    }
}

}  // namespace

extern "C" void pn_cuda_attn_fallback_fwd(int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, float scale,
                                          const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v,
                                          int64_t kv_batch_stride, pn_bf16 *o, float *lse) {
    if (B < 0 || Tq < 0 || Hq < 1 || Hkv < 1 || Hq % Hkv != 0 || D < 1 || D > 256 || Tk < Tq)
        attn_die("forward with bad shape", B, Tq, Tk, Hq, Hkv, D);
    if (B == 0 || Tq == 0) return;
    if (B > 65535 || Hq > 65535) attn_die("forward grid too large", B, Tq, Tk, Hq, Hkv, D);
    const int64_t dense = (int64_t)Tk * Hkv * D;
    const int64_t kvbs = kv_batch_stride ? kv_batch_stride : dense;
    if (kvbs < dense) attn_die("forward with kv_batch_stride < Tk * Hkv * D", B, Tq, Tk, Hq, Hkv, D);
    pn_attn::fwd_params p;
    p.q = as_bf(q), p.k = as_bf(k), p.v = as_bf(v), p.o = as_bf(o), p.lse = lse;
    p.B = B, p.Tq = Tq, p.Tk = Tk, p.Hq = Hq, p.Hkv = Hkv, p.D = D;
    p.window = window > 0 && window < Tk ? window : 0;
    p.scale = scale;
    p.kv_bs = kvbs;
    p.vec = D % 8 == 0 && kvbs % 8 == 0 && is_aligned16(q) && is_aligned16(k) && is_aligned16(v);
    if (D <= 64)
        launch_fwd<64>(p);
    else if (D <= 128)
        launch_fwd<128>(p);
    else
        launch_fwd<256>(p);
}

extern "C" void pn_cuda_attn_fallback_bwd(int B, int T, int Hq, int Hkv, int D, int window, float scale,
                                          const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const pn_bf16 *o,
                                          const pn_bf16 *dout, const float *lse, pn_bf16 *dq, pn_bf16 *dk,
                                          pn_bf16 *dv) {
    if (B < 0 || T < 0 || Hq < 1 || Hkv < 1 || Hq % Hkv != 0 || D < 1 || D > 256)
        attn_die("backward with bad shape", B, T, T, Hq, Hkv, D);
    if (B == 0 || T == 0) return;
    if (B > 65535 || Hkv > 65535) attn_die("backward grid too large", B, T, T, Hq, Hkv, D);
    const int64_t nq = (int64_t)B * T * Hq * D, rows = (int64_t)B * T * Hq;
    float *delta = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)rows * sizeof(float));
    float *dq_acc = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)nq * sizeof(float));
    PN_CHECK_CUDA(cudaMemsetAsync(dq_acc, 0, (size_t)nq * sizeof(float), pn_stream()));
    attn_delta_kernel<<<pn_grid_for(rows * 32, 256), 256, 0, pn_stream()>>>(delta, as_bf(dout), as_bf(o), rows, T,
                                                                             Hq, D);
    PN_CHECK_LAUNCH();

    pn_attn::bwd_params p;
    p.q = as_bf(q), p.k = as_bf(k), p.v = as_bf(v), p.dout = as_bf(dout);
    p.lse = lse, p.delta = delta, p.dq_acc = dq_acc, p.dk = as_bf(dk), p.dv = as_bf(dv);
    p.B = B, p.T = T, p.Hq = Hq, p.Hkv = Hkv, p.D = D;
    p.window = window > 0 && window < T ? window : 0;
    p.scale = scale;
    p.vec = D % 8 == 0 && is_aligned16(q) && is_aligned16(k) && is_aligned16(v) && is_aligned16(dout);
    if (D <= 64)
        launch_bwd<64, 4>(p);
    else if (D <= 128)
        launch_bwd<128, 4>(p);
    else
        launch_bwd<256, 2>(p);
    pn_cuda_f32_to_bf16(dq, dq_acc, nq);
    pn_cuda_free(delta);
    pn_cuda_free(dq_acc);
}
