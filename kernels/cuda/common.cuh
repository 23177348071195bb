// common.cuh — what every CUDA op file shares: checked-call macros, the launch check,
// 16-byte bf16x8 vectors and warp/block reductions.
//
// PN_CHECK_CUDA / PN_CHECK_CUBLAS name file:line and the failing call and exit 3
// (PN_EXIT_DEVICE); an out-of-memory error also says how much memory is free, and
// pn_cuda_die_oom (used by the allocator, which knows the request) says how much was
// asked. PN_CHECK_LAUNCH follows every kernel launch: it always reads
// cudaGetLastError (cheap, catches bad configurations at the launch site), and in
// debug builds (no NDEBUG) also synchronises the stream so that a fault inside the
// kernel is reported at the launch that caused it rather than at a later call.
#pragma once
#include "kernels/cuda/pn_cuda_ops.h"
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#define PN_CUDA_EXIT 3

static inline void pn_cuda_report_free(void) {
    size_t fr = 0, total = 0;
    if (cudaMemGetInfo(&fr, &total) == cudaSuccess)
        fprintf(stderr, "postnas: hint: device memory: %.1f MiB free of %.1f MiB; lower the batch size or context\n",
                fr / 1048576.0, total / 1048576.0);
}

#define PN_CHECK_CUDA(call)                                                                                  \
    do {                                                                                                     \
        cudaError_t err_ = (call);                                                                           \
        if (err_ != cudaSuccess) {                                                                           \
            fprintf(stderr, "postnas: device error at %s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, \
                    cudaGetErrorString(err_), cudaGetErrorName(err_));                                       \
            if (err_ == cudaErrorMemoryAllocation) pn_cuda_report_free();                                    \
            exit(PN_CUDA_EXIT);                                                                              \
        }                                                                                                    \
    } while (0)

#define PN_CHECK_CUBLAS(call)                                                                                  \
    do {                                                                                                       \
        cublasStatus_t st_ = (call);                                                                           \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                                                    \
            fprintf(stderr, "postnas: cuBLASLt error at %s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call, \
                    cublasLtGetStatusString(st_), cublasLtGetStatusName(st_));                                 \
            if (st_ == CUBLAS_STATUS_ALLOC_FAILED) pn_cuda_report_free();                                      \
            exit(PN_CUDA_EXIT);                                                                                \
        }                                                                                                      \
    } while (0)

static inline cudaStream_t pn_stream(void) { return (cudaStream_t)pn_cuda_stream_get(); }

// The side stream (memory.cu): fork makes it wait for everything queued on pn_stream() so
// far and returns it; join makes pn_stream() wait for everything queued on the side stream
// so far. Every fork is joined before the forked work's buffers are freed (the arena's
// reuse is ordered on pn_stream() only). Highest priority, non-blocking; one host thread.
cudaStream_t pn_cuda_side_fork(void);
void pn_cuda_side_join(void);

#ifdef NDEBUG
#define PN_CHECK_LAUNCH_ON(st) PN_CHECK_CUDA(cudaGetLastError())
#else
#define PN_CHECK_LAUNCH_ON(st)                      \
    do {                                            \
        PN_CHECK_CUDA(cudaGetLastError());          \
        PN_CHECK_CUDA(cudaStreamSynchronize((st))); \
    } while (0)
#endif
// After a launch on the backend stream; PN_CHECK_LAUNCH_ON(st) after one on another stream.
#define PN_CHECK_LAUNCH() PN_CHECK_LAUNCH_ON(pn_stream())

// cuBLASLt plans built so far (gemm.cu; memory.cu's pn_cuda_host_stats_get reports it).
size_t pn_cuda_gemm_plan_builds(void);

// Exits 3 after a failed allocation of `bytes` (the allocator's own message).
void pn_cuda_die_oom(const char *file, int line, const char *what, size_t bytes);

static inline int64_t pn_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline bool pn_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// σ(x) in the CPU op's overflow-safe form and operation order (IEEE expf and division): the
// sigmoid of every result kept in fp32.
#ifdef __CUDACC__
static __device__ __forceinline__ float pn_sigmoid(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}
// σ(x) by the fast exp (ex2.approx) and the approximate division: ~1e-6 relative, for the
// elementwise work whose result is rounded to bf16 (2^-9) right after (SwiGLU, SiLU, the
// convs' SiLU, the gated norm's gate). The IEEE form (one expf per sign, each side of a
// branch that random signs split within a warp, then a division) made those kernels
// compute-bound: swiglu_fwd moved 2.15 TB/s where swiglu_bwd, with more bytes and the same
// sigmoid, moved 3.1 (H100 profile, session 18). Large negative x gives e = inf and 0,
// large positive 1; NaN stays NaN.
static __device__ __forceinline__ float pn_sigmoid_fast(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }
// σ for a result stored as OT: the fast form for bf16, the IEEE form for fp32.
template <typename OT>
static __device__ __forceinline__ float pn_sigmoid_for(float x) {
    if constexpr (std::is_same<OT, __nv_bfloat16>::value)
        return pn_sigmoid_fast(x);
    else
        return pn_sigmoid(x);
}
#endif
// Blocks for a grid-stride loop over `work` items: enough to fill the chip a few
// times over, never more than needed.
static inline unsigned pn_grid_for(int64_t work, int threads) {
    int64_t g = pn_ceil_div(work, threads);
    const int64_t cap = 132 * 32;  // H100 SXM: 132 SMs; grid-stride loops cover the rest
    if (g > cap) g = cap;
    return (unsigned)(g < 1 ? 1 : g);
}

// Grid-stride walk over a (rows, per) grid of items flattened row-major: body(r, c) for
// every r < rows, c < per, with a 1-D launch of pn_grid_for(rows · per) blocks. One
// division per thread at the start and none in the loop (a thread's stride in (r, c) is
// fixed). Used where a block per row would leave most lanes idle (a row of 12 items).
template <typename F>
static __device__ __forceinline__ void for_each_rc(int64_t rows, int64_t per, F body) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t r = i0 / per, c = i0 - r * per;
    const int64_t sr = stride / per, sc = stride - sr * per;
    while (r < rows) {
        body(r, c);
        r += sr;
        c += sc;
        if (c >= per) c -= per, r++;
    }
}

// ---------------------------------------------------------------- vectors
// Eight bf16 in one 16-byte access (one LDG.128 / STG.128 per thread).
struct __align__(16) bf16x8 {
    __nv_bfloat162 h[4];
};

static __device__ __forceinline__ void bf16x8_to_f32(const bf16x8 &v, float f[8]) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(v.h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

static __device__ __forceinline__ bf16x8 f32_to_bf16x8(const float f[8]) {
    bf16x8 v;
#pragma unroll
    for (int i = 0; i < 4; i++) v.h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    return v;
}

// Through uint4 so that the compiler emits one 128-bit access (a struct copy of
// bf16x8 was seen split into 16-bit pairs in the PTX).
static __device__ __forceinline__ bf16x8 ldg8(const __nv_bfloat16 *p) {
    uint4 u = *reinterpret_cast<const uint4 *>(p);
    bf16x8 v;
    memcpy(&v, &u, sizeof v);
    return v;
}
static __device__ __forceinline__ void stg8(__nv_bfloat16 *p, const bf16x8 &v) {
    uint4 u;
    memcpy(&u, &v, sizeof u);
    *reinterpret_cast<uint4 *>(p) = u;
}
static __device__ __forceinline__ void load8(const __nv_bfloat16 *p, float f[8]) { bf16x8_to_f32(ldg8(p), f); }
static __device__ __forceinline__ void store8(__nv_bfloat16 *p, const float f[8]) { stg8(p, f32_to_bf16x8(f)); }
static __device__ __forceinline__ void load8(const float *p, float f[8]) {
    float4 a = reinterpret_cast<const float4 *>(p)[0], b = reinterpret_cast<const float4 *>(p)[1];
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}
static __device__ __forceinline__ void store8(float *p, const float f[8]) {
    reinterpret_cast<float4 *>(p)[0] = make_float4(f[0], f[1], f[2], f[3]);
    reinterpret_cast<float4 *>(p)[1] = make_float4(f[4], f[5], f[6], f[7]);
}

static __device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ float to_f32(float x) { return x; }
static __device__ __forceinline__ void from_f32(__nv_bfloat16 *p, float x) { *p = __float2bfloat16_rn(x); }
static __device__ __forceinline__ void from_f32(float *p, float x) { *p = x; }

static inline const __nv_bfloat16 *as_bf(const pn_bf16 *p) { return reinterpret_cast<const __nv_bfloat16 *>(p); }
static inline __nv_bfloat16 *as_bf(pn_bf16 *p) { return reinterpret_cast<__nv_bfloat16 *>(p); }

// ---------------------------------------------------------------- reductions
static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block, returned to every thread. blockDim.x a multiple of 32, <= 1024.
// `sh` holds 32 floats; the trailing barrier lets the caller reuse it at once.
static __device__ __forceinline__ float block_sum(float v, float *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : 0.0f;
    r = warp_sum(r);
    __syncthreads();
    return r;
}

static __device__ __forceinline__ float block_max(float v, float *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : -INFINITY;
    r = warp_max(r);
    __syncthreads();
    return r;
}

// Block size for a row of `items` per-thread work units: one thread per unit up to
// 1024, rounded to whole warps.
static inline int pn_row_threads(int64_t items, int max_threads) {
    int64_t t = pn_ceil_div(items, 32) * 32;
    if (t < 32) t = 32;
    if (t > max_threads) t = max_threads;
    return (int)t;
}
