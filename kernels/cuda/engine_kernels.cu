// engine_kernels.cu — the CUDA inference engine's runtime helpers (streams, graph
// capture, events, bandwidth probe) and its small row kernels: embedding into the
// fp32 residual stream, RMSNorm from fp32 to bf16 (optionally split hi + lo), SwiGLU
// over fp32 [gate | up] rows,
// argmax, elementwise activations over strided rows, positions.
//
// Why fp32 residual: the engine keeps x in fp32 and lets the O / down projections
// accumulate into it (GEMM with beta = 1), so the stream carries no bf16 rounding
// from layer to layer; only what feeds a GEMM is bf16. Every kernel here is a row
// kernel with a grid-stride loop or one block per row; none synchronises, so all of
// them may sit in a captured decode graph.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pn_cuda_engine.h"
#include <algorithm>
#include <math.h>

// ---------------------------------------------------------------- runtime

extern "C" int pn_cuda_eng_graphs_supported(void) {
#ifdef NDEBUG
    return 1;
#else
    return 0;
#endif
}

extern "C" void *pn_cuda_eng_stream_create(void) {
    cudaStream_t s;
    PN_CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return (void *)s;
}

extern "C" void pn_cuda_eng_stream_destroy(void *stream) {
    if (stream) PN_CHECK_CUDA(cudaStreamDestroy((cudaStream_t)stream));
}

extern "C" void pn_cuda_eng_graph_begin(void) {
    PN_CHECK_CUDA(cudaStreamBeginCapture(pn_stream(), cudaStreamCaptureModeRelaxed));
}

extern "C" void *pn_cuda_eng_graph_end(void) {
    cudaGraph_t g;
    PN_CHECK_CUDA(cudaStreamEndCapture(pn_stream(), &g));
    cudaGraphExec_t exec;
    PN_CHECK_CUDA(cudaGraphInstantiate(&exec, g, 0));
    PN_CHECK_CUDA(cudaGraphDestroy(g));
    return (void *)exec;
}

extern "C" void pn_cuda_eng_graph_launch(void *exec) {
    PN_CHECK_CUDA(cudaGraphLaunch((cudaGraphExec_t)exec, pn_stream()));
}

extern "C" void pn_cuda_eng_graph_destroy(void *exec) {
    if (exec) PN_CHECK_CUDA(cudaGraphExecDestroy((cudaGraphExec_t)exec));
}

extern "C" void *pn_cuda_eng_event_create(void) {
    cudaEvent_t e;
    PN_CHECK_CUDA(cudaEventCreate(&e));
    return (void *)e;
}

extern "C" void pn_cuda_eng_event_destroy(void *ev) {
    if (ev) PN_CHECK_CUDA(cudaEventDestroy((cudaEvent_t)ev));
}

extern "C" void pn_cuda_eng_event_record(void *ev) { PN_CHECK_CUDA(cudaEventRecord((cudaEvent_t)ev, pn_stream())); }

extern "C" double pn_cuda_eng_event_ms(void *start, void *stop) {
    PN_CHECK_CUDA(cudaEventSynchronize((cudaEvent_t)stop));
    float ms = 0.0f;
    PN_CHECK_CUDA(cudaEventElapsedTime(&ms, (cudaEvent_t)start, (cudaEvent_t)stop));
    return ms;
}

extern "C" void pn_cuda_eng_upload_async(void *dst, const void *host_src, size_t bytes) {
    if (!bytes) return;
    PN_CHECK_CUDA(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, pn_stream()));
}

extern "C" void pn_cuda_eng_mem_info(size_t *free_bytes, size_t *total_bytes) {
    size_t f = 0, t = 0;
    PN_CHECK_CUDA(cudaMemGetInfo(&f, &t));
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
}

extern "C" double pn_cuda_eng_copy_bandwidth(size_t bytes) {
    void *a = nullptr, *b = nullptr;
    PN_CHECK_CUDA(cudaMalloc(&a, bytes));
    PN_CHECK_CUDA(cudaMalloc(&b, bytes));
    PN_CHECK_CUDA(cudaMemsetAsync(a, 1, bytes, pn_stream()));
    PN_CHECK_CUDA(cudaMemsetAsync(b, 0, bytes, pn_stream()));
    cudaEvent_t e0, e1;
    PN_CHECK_CUDA(cudaEventCreate(&e0));
    PN_CHECK_CUDA(cudaEventCreate(&e1));
    float t[5];
    for (int rep = -1; rep < 5; rep++) {
        PN_CHECK_CUDA(cudaEventRecord(e0, pn_stream()));
        PN_CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, pn_stream()));
        PN_CHECK_CUDA(cudaEventRecord(e1, pn_stream()));
        PN_CHECK_CUDA(cudaEventSynchronize(e1));
        float ms = 0.0f;
        PN_CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
        if (rep >= 0) t[rep] = ms;
    }
    std::sort(t, t + 5);
    PN_CHECK_CUDA(cudaEventDestroy(e0));
    PN_CHECK_CUDA(cudaEventDestroy(e1));
    PN_CHECK_CUDA(cudaFree(a));
    PN_CHECK_CUDA(cudaFree(b));
    return 2.0 * (double)bytes / (t[2] * 1e-3);
}

// memory.cu's round_request: 512-byte steps below 1 MiB, 2 MiB steps above.
extern "C" size_t pn_cuda_eng_alloc_rounded(size_t bytes) {
    if (bytes == 0) return 0;
    const size_t small = 512, big = (size_t)2 << 20;
    if (bytes < ((size_t)1 << 20)) return (bytes + small - 1) / small * small;
    return (bytes + big - 1) / big * big;
}

// ---------------------------------------------------------------- positions

__global__ void pos_set_kernel(int64_t *pos, int64_t v) { *pos = v; }
__global__ void pos_add_kernel(int64_t *pos, int64_t d) { *pos += d; }

extern "C" void pn_cuda_eng_pos_set(int64_t *pos, int64_t value) {
    pos_set_kernel<<<1, 1, 0, pn_stream()>>>(pos, value);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_eng_pos_add(int64_t *pos, int64_t delta) {
    pos_add_kernel<<<1, 1, 0, pn_stream()>>>(pos, delta);
    PN_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- embedding, norm, MLP

__global__ void embed_kernel(float *x, const int64_t *ids, const __nv_bfloat16 *table, int C) {
    const int64_t row = blockIdx.x;
    const __nv_bfloat16 *t = table + ids[row] * (int64_t)C;
    float *xr = x + row * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) xr[c] = __bfloat162float(t[c]);
}

extern "C" void pn_cuda_eng_embed(float *x, const int64_t *ids, const pn_bf16 *table, int64_t N, int C) {
    if (N <= 0) return;
    embed_kernel<<<(unsigned)N, pn_row_threads(C, 256), 0, pn_stream()>>>(x, ids, as_bf(table), C);
    PN_CHECK_LAUNCH();
}

// bf16x2 split of an fp32 value: hi = bf16(v), lo = bf16(v − hi); hi + lo carries ~16
// mantissa bits, so a GEMM over both planes (engine_cuda.c) sees an almost exact input.
static __device__ __forceinline__ void split_store(__nv_bfloat16 *hi, __nv_bfloat16 *lo, int64_t i, float v) {
    const __nv_bfloat16 h = __float2bfloat16_rn(v);
    hi[i] = h;
    if (lo) lo[i] = __float2bfloat16_rn(v - __bfloat162float(h));
}

__global__ void rmsnorm_f32_kernel(__nv_bfloat16 *y, __nv_bfloat16 *ylo, const float *x, int64_t ldx, const float *w,
                                   int C, float eps) {
    __shared__ float sh[32];
    const int64_t row = blockIdx.x;
    const float *xr = x + row * ldx;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ss += xr[c] * xr[c];
    ss = block_sum(ss, sh);
    const float r = 1.0f / sqrtf(ss / (float)C + eps);
    __nv_bfloat16 *yr = y + row * C, *lr = ylo ? ylo + row * C : nullptr;
    for (int c = threadIdx.x; c < C; c += blockDim.x) split_store(yr, lr, c, xr[c] * r * w[c]);
}

extern "C" void pn_cuda_eng_rmsnorm(pn_bf16 *y, pn_bf16 *y_lo, const float *x, int64_t ldx, const float *w, int64_t N,
                                    int C, float eps) {
    if (N <= 0) return;
    rmsnorm_f32_kernel<<<(unsigned)N, pn_row_threads(C, 512), 0, pn_stream()>>>(as_bf(y), as_bf(y_lo), x, ldx, w, C,
                                                                                eps);
    PN_CHECK_LAUNCH();
}

static __device__ __forceinline__ float silu_f(float g) { return g / (1.0f + expf(-g)); }
static __device__ __forceinline__ float sigmoid_f(float g) { return 1.0f / (1.0f + expf(-g)); }

__global__ void swiglu_rows_kernel(__nv_bfloat16 *h, __nv_bfloat16 *hlo, const float *gu, int64_t N, int I) {
    const int64_t total = N * I, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t n = i / I, c = i % I;
        const float g = gu[n * 2 * I + c], u = gu[n * 2 * I + I + c];
        split_store(h, hlo, i, silu_f(g) * u);
    }
}

// 4 columns per thread when I % 4 == 0 (fp32 rows then stay 16-byte aligned).
__global__ void swiglu_rows4_kernel(__nv_bfloat16 *h, __nv_bfloat16 *hlo, const float *gu, int64_t N, int I) {
    const int I4 = I / 4;
    const int64_t total = N * I4, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t n = i / I4, c = (i % I4) * 4;
        const float4 g = *reinterpret_cast<const float4 *>(gu + n * 2 * I + c);
        const float4 u = *reinterpret_cast<const float4 *>(gu + n * 2 * I + I + c);
        const int64_t o = n * I + c;
        split_store(h, hlo, o + 0, silu_f(g.x) * u.x);
        split_store(h, hlo, o + 1, silu_f(g.y) * u.y);
        split_store(h, hlo, o + 2, silu_f(g.z) * u.z);
        split_store(h, hlo, o + 3, silu_f(g.w) * u.w);
    }
}

extern "C" void pn_cuda_eng_swiglu(pn_bf16 *h, pn_bf16 *h_lo, const float *gu, int64_t N, int I) {
    if (N <= 0) return;
    const int threads = 256;
    if (I % 4 == 0 && pn_aligned16(gu))
        swiglu_rows4_kernel<<<pn_grid_for(N * (I / 4), threads), threads, 0, pn_stream()>>>(as_bf(h), as_bf(h_lo), gu,
                                                                                            N, I);
    else
        swiglu_rows_kernel<<<pn_grid_for(N * I, threads), threads, 0, pn_stream()>>>(as_bf(h), as_bf(h_lo), gu, N, I);
    PN_CHECK_LAUNCH();
}

// One block per row; ties go to the lowest id (CPU engine_argmax).
__global__ void argmax_kernel(int64_t *ids, const float *logits, int V) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *r = logits + (int64_t)blockIdx.x * V;
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        const float x = r[v];
        if (x > best || (x == best && v < bi)) best = x, bi = v;
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ob > best || (ob == best && oi < bi)) best = ob, bi = oi;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sv[warp] = best, si[warp] = bi;
    __syncthreads();
    if (warp == 0) {
        const int nw = blockDim.x >> 5;
        best = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            const float ob = __shfl_xor_sync(0xffffffffu, best, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ob > best || (ob == best && oi < bi)) best = ob, bi = oi;
        }
        // A row of NaNs never compares greater: report id 0 as the CPU's argmax does.
        if (lane == 0) ids[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
    }
}

extern "C" void pn_cuda_eng_argmax(int64_t *ids, const float *logits, int B, int V) {
    if (B <= 0) return;
    argmax_kernel<<<(unsigned)B, 1024, 0, pn_stream()>>>(ids, logits, V);
    PN_CHECK_LAUNCH();
}

template <typename OT>
__global__ void act_rows_kernel(OT *y, const float *x, int64_t ldx, int64_t N, int D, int act) {
    const int64_t total = N * D, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t n = i / D, d = i % D;
        float v = x[n * ldx + d];
        if (act == 1) v = silu_f(v);
        if (act == 2) v = sigmoid_f(v);
        if (act == 3) v = tanhf(v);
        from_f32(y + i, v);
    }
}

extern "C" void pn_cuda_eng_act_rows(void *y, pn_cuda_dtype y_dt, const float *x, int64_t ldx, int64_t N, int D,
                                     int act) {
    if (N <= 0 || D <= 0) return;
    const int threads = 256;
    const unsigned grid = pn_grid_for(N * D, threads);
    if (y_dt == PN_CUDA_F32)
        act_rows_kernel<<<grid, threads, 0, pn_stream()>>>((float *)y, x, ldx, N, D, act);
    else
        act_rows_kernel<<<grid, threads, 0, pn_stream()>>>((__nv_bfloat16 *)y, x, ldx, N, D, act);
    PN_CHECK_LAUNCH();
}

__global__ void bias_rows_kernel(float *y, const __nv_bfloat16 *b, int64_t N, int D) {
    const int64_t total = N * D, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        y[i] += __bfloat162float(b[i % D]);
}

extern "C" void pn_cuda_eng_bias_rows(float *y, const pn_bf16 *b, int64_t N, int D) {
    if (N <= 0 || D <= 0) return;
    const int threads = 256;
    bias_rows_kernel<<<pn_grid_for(N * D, threads), threads, 0, pn_stream()>>>(y, as_bf(b), N, D);
    PN_CHECK_LAUNCH();
}
