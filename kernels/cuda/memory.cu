// memory.cu — device memory for the CUDA backend: caching arenas per category,
// host<->device copies, and the f32<->bf16 conversion kernels.
//
// Why a cache: cudaMalloc/cudaFree synchronise the device and cost tens of
// microseconds; a training step asks for the same buffers every time. Each block
// remembers its category (weights, params, grads, optimizer state, activations,
// scratch) so the per-category in-use / cached numbers say where memory went, and a
// freed block is reused only within its category (a cached activation block never
// ends up holding optimizer state). Sizes are rounded (512 B below 1 MiB, 2 MiB above)
// so that slightly different requests share blocks; a free block is taken when it is
// at most twice the rounded request. The block table is a plain array searched
// linearly: allocations happen at set-up and per step, never per element.
// On out-of-memory every category's cache is released and the request retried once.
#include "kernels/cuda/common.cuh"
#include <algorithm>
#include <mutex>
#include <string.h>
#include <time.h>

static cudaStream_t g_stream = nullptr;

extern "C" void pn_cuda_stream_set(void *stream) { g_stream = (cudaStream_t)stream; }
extern "C" void *pn_cuda_stream_get(void) { return (void *)g_stream; }
// Host waits on the stream, counted with their time (pn_cuda_host_stats_get), by the one
// host thread that drives the stream.
static size_t g_syncs, g_driver_allocs, g_driver_alloc_bytes;
static double g_sync_seconds;
static double host_seconds(void) {  // core's pn_now_seconds: postnas_cuda does not link core/
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static void stream_wait(void) {
    const double t0 = host_seconds();
    PN_CHECK_CUDA(cudaStreamSynchronize(g_stream));
    g_sync_seconds += host_seconds() - t0;
    g_syncs++;
}
extern "C" void pn_cuda_sync(void) {
    stream_wait();
    PN_CHECK_CUDA(cudaGetLastError());
}

// ---------------------------------------------------------------- side stream
// One non-blocking stream at the device's highest priority, created on first use. Work
// forked onto it overlaps the main stream's next kernels; when both have blocks waiting,
// the block scheduler takes its blocks first, so the one that bounds the overlap (the
// caller puts the longer chain there) gets the SMs. The two events are reused: a wait is
// bound to the event's last record when it is queued.
static cudaStream_t g_side;
static cudaEvent_t g_fork_ev, g_join_ev;
cudaStream_t pn_cuda_side_fork(void) {
    if (!g_side) {
        int least = 0, greatest = 0;
        PN_CHECK_CUDA(cudaDeviceGetStreamPriorityRange(&least, &greatest));
        PN_CHECK_CUDA(cudaStreamCreateWithPriority(&g_side, cudaStreamNonBlocking, greatest));
        PN_CHECK_CUDA(cudaEventCreateWithFlags(&g_fork_ev, cudaEventDisableTiming));
        PN_CHECK_CUDA(cudaEventCreateWithFlags(&g_join_ev, cudaEventDisableTiming));
    }
    PN_CHECK_CUDA(cudaEventRecord(g_fork_ev, g_stream));
    PN_CHECK_CUDA(cudaStreamWaitEvent(g_side, g_fork_ev, 0));
    return g_side;
}
void pn_cuda_side_join(void) {
    PN_CHECK_CUDA(cudaEventRecord(g_join_ev, g_side));
    PN_CHECK_CUDA(cudaStreamWaitEvent(g_stream, g_join_ev, 0));
}

// ---------------------------------------------------------------- caching arena
namespace {
struct mem_block {
    void *p;
    size_t bytes;
    int cat;
    bool used;
};
std::mutex g_mu;
mem_block *g_blocks = nullptr;
size_t g_nblocks = 0, g_cap = 0;
size_t g_in_use[PN_CUDA_MEM_COUNT], g_cached[PN_CUDA_MEM_COUNT];

const char *const g_cat_names[PN_CUDA_MEM_COUNT] = {"weights", "params", "grads", "optim", "acts", "scratch"};

size_t round_request(size_t bytes) {
    const size_t small = 512, big = (size_t)2 << 20;
    if (bytes < ((size_t)1 << 20)) return (bytes + small - 1) / small * small;
    return (bytes + big - 1) / big * big;
}

// Returns every unused cached block of `cat` (or of all categories when cat < 0).
// Caller holds g_mu.
void trim_locked(int cat) {
    size_t k = 0;
    for (size_t i = 0; i < g_nblocks; i++) {
        mem_block b = g_blocks[i];
        if (!b.used && (cat < 0 || b.cat == cat)) {
            PN_CHECK_CUDA(cudaFree(b.p));
            g_cached[b.cat] -= b.bytes;
        } else {
            g_blocks[k++] = b;
        }
    }
    g_nblocks = k;
}
}  // namespace

void pn_cuda_die_oom(const char *file, int line, const char *what, size_t bytes) {
    size_t fr = 0, total = 0;
    cudaGetLastError();  // clear the sticky-free allocation error before querying
    cudaMemGetInfo(&fr, &total);
    fprintf(stderr,
            "postnas: device error at %s:%d: out of device memory allocating %.1f MiB for %s "
            "(%.1f MiB free of %.1f MiB)\n",
            file, line, bytes / 1048576.0, what, fr / 1048576.0, total / 1048576.0);
    fprintf(stderr, "postnas: hint: lower the batch size or the context length, or use fewer trainable layers\n");
    for (int c = 0; c < PN_CUDA_MEM_COUNT; c++)
        if (g_in_use[c] || g_cached[c])
            fprintf(stderr, "postnas:   %-8s %10.1f MiB in use, %10.1f MiB cached\n", g_cat_names[c],
                    g_in_use[c] / 1048576.0, g_cached[c] / 1048576.0);
    exit(PN_CUDA_EXIT);
}

extern "C" const char *pn_cuda_mem_category_name(pn_cuda_mem_category cat) {
    return (int)cat >= 0 && cat < PN_CUDA_MEM_COUNT ? g_cat_names[cat] : "?";
}

extern "C" void *pn_cuda_alloc(pn_cuda_mem_category cat, size_t bytes) {
    if (bytes == 0) return nullptr;
    if ((int)cat < 0 || cat >= PN_CUDA_MEM_COUNT) {
        fprintf(stderr, "postnas: internal error: %s:%d: bad memory category %d\n", __FILE__, __LINE__, (int)cat);
        exit(1);
    }
    std::lock_guard<std::mutex> lock(g_mu);
    const size_t want = round_request(bytes);
    size_t best = (size_t)-1;
    for (size_t i = 0; i < g_nblocks; i++) {
        const mem_block &b = g_blocks[i];
        if (b.used || b.cat != (int)cat || b.bytes < want || b.bytes > 2 * want) continue;
        if (best == (size_t)-1 || b.bytes < g_blocks[best].bytes) best = i;
    }
    if (best != (size_t)-1) {
        g_blocks[best].used = true;
        g_cached[cat] -= g_blocks[best].bytes;
        g_in_use[cat] += g_blocks[best].bytes;
        return g_blocks[best].p;
    }
    void *p = nullptr;
    cudaError_t err = cudaMalloc(&p, want);
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        trim_locked(-1);
        err = cudaMalloc(&p, want);
    }
    if (err == cudaErrorMemoryAllocation) pn_cuda_die_oom(__FILE__, __LINE__, g_cat_names[cat], want);
    PN_CHECK_CUDA(err);
    g_driver_allocs++;
    g_driver_alloc_bytes += want;
    if (g_nblocks == g_cap) {
        size_t cap = g_cap ? 2 * g_cap : 256;
        mem_block *nb = (mem_block *)realloc(g_blocks, cap * sizeof(mem_block));
        if (!nb) {
            fprintf(stderr, "postnas: internal error: %s:%d: out of host memory\n", __FILE__, __LINE__);
            exit(1);
        }
        g_blocks = nb;
        g_cap = cap;
    }
    g_blocks[g_nblocks++] = mem_block{p, want, (int)cat, true};
    g_in_use[cat] += want;
    return p;
}

extern "C" void pn_cuda_free(void *p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(g_mu);
    for (size_t i = 0; i < g_nblocks; i++) {
        mem_block &b = g_blocks[i];
        if (b.p != p) continue;
        if (!b.used) break;
        b.used = false;
        g_in_use[b.cat] -= b.bytes;
        g_cached[b.cat] += b.bytes;
        return;
    }
    fprintf(stderr, "postnas: internal error: %s:%d: pn_cuda_free of %p, which is not a live block\n", __FILE__,
            __LINE__, p);
    exit(1);
}

extern "C" void pn_cuda_mem_trim(pn_cuda_mem_category cat) {
    std::lock_guard<std::mutex> lock(g_mu);
    // Blocks may still be read by queued kernels that used them before pn_cuda_free;
    // cudaFree waits for the device, so releasing them here is safe.
    trim_locked((int)cat);
}

extern "C" size_t pn_cuda_mem_in_use(pn_cuda_mem_category cat) {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_in_use[cat];
}
extern "C" size_t pn_cuda_mem_cached(pn_cuda_mem_category cat) {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_cached[cat];
}

extern "C" void pn_cuda_host_stats_get(pn_cuda_host_stats *st) {
    {
        std::lock_guard<std::mutex> lock(g_mu);
        st->driver_allocs = g_driver_allocs;
        st->driver_alloc_bytes = g_driver_alloc_bytes;
    }
    st->syncs = g_syncs;
    st->sync_seconds = g_sync_seconds;
    st->gemm_plan_builds = pn_cuda_gemm_plan_builds();
}

// ---------------------------------------------------------------- copies
extern "C" void pn_cuda_upload(void *dst, const void *host_src, size_t bytes) {
    if (!bytes) return;
    PN_CHECK_CUDA(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, g_stream));
    stream_wait();
}
extern "C" void pn_cuda_download(void *host_dst, const void *src, size_t bytes) {
    if (!bytes) return;
    PN_CHECK_CUDA(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, g_stream));
    stream_wait();
}
extern "C" void pn_cuda_memset(void *dst, int byte, size_t bytes) {
    if (!bytes) return;
    PN_CHECK_CUDA(cudaMemsetAsync(dst, byte, bytes, g_stream));
}
extern "C" void pn_cuda_memset_2d(void *dst, size_t pitch, int byte, size_t width, size_t rows) {
    if (!width || !rows) return;
    PN_CHECK_CUDA(cudaMemset2DAsync(dst, pitch, byte, width, rows, g_stream));
}
extern "C" void pn_cuda_copy(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    PN_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream));
}

// ---------------------------------------------------------------- conversions
// Vector path: thread i converts elements [8i, 8i+8) of the first n8 elements; the
// scalar tail (n mod 8, or everything when a pointer is misaligned) runs in the same
// launch on the threads past n8/8.
template <bool VEC>
__global__ void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, int64_t n) {
    const int64_t n8 = VEC ? n / 8 : 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8 + (n - 8 * n8); i += stride) {
        if (i < n8) {
            float f[8];
            load8(src + 8 * i, f);
            store8(dst + 8 * i, f);
        } else {
            const int64_t j = 8 * n8 + (i - n8);
            dst[j] = __float2bfloat16_rn(src[j]);
        }
    }
}

template <bool VEC>
__global__ void bf16_to_f32_kernel(float *dst, const __nv_bfloat16 *src, int64_t n) {
    const int64_t n8 = VEC ? n / 8 : 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8 + (n - 8 * n8); i += stride) {
        if (i < n8) {
            float f[8];
            load8(src + 8 * i, f);
            store8(dst + 8 * i, f);
        } else {
            const int64_t j = 8 * n8 + (i - n8);
            dst[j] = __bfloat162float(src[j]);
        }
    }
}

// hi = bf16(x), lo = bf16(x − hi): x − hi is exact in fp32 (hi is x rounded to fewer
// bits of the same exponent range), so hi + lo carries x to ~2^-17 relative.
// hi, lo (rows, cols) slices with rows ld apart from src (rows, cols) contiguous; two
// columns per thread when the layout allows (as f32_to_bf16_2d_kernel).
template <bool PAIR>
__global__ void f32_split_bf16_kernel(__nv_bfloat16 *hi, __nv_bfloat16 *lo, int64_t ld, const float *src,
                                      int64_t rows, int cols) {
    const int step = PAIR ? 2 : 1;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float *s = src + r * cols;
        __nv_bfloat16 *h = hi + r * ld, *l = lo + r * ld;
        for (int c = step * (blockIdx.x * blockDim.x + threadIdx.x); c < cols; c += step * gridDim.x * blockDim.x) {
            if (PAIR) {
                const float2 f = *(const float2 *)(s + c);
                const __nv_bfloat162 hv = __floats2bfloat162_rn(f.x, f.y);
                const float2 hf = __bfloat1622float2(hv);
                *(__nv_bfloat162 *)(h + c) = hv;
                *(__nv_bfloat162 *)(l + c) = __floats2bfloat162_rn(f.x - hf.x, f.y - hf.y);
            } else {
                const __nv_bfloat16 hv = __float2bfloat16_rn(s[c]);
                h[c] = hv;
                l[c] = __float2bfloat16_rn(s[c] - __bfloat162float(hv));
            }
        }
    }
}

// The two row-slice conversions' launch: a row stride below the width is a caller bug;
// rows over grid.y (grid-stride past 32768), a row's columns over at most 64 blocks.
static dim3 rows_grid(int64_t ld, int64_t rows, int cols, bool pair, int threads) {
    if (ld < cols) {
        fprintf(stderr, "postnas: internal error: %s:%d: bf16 row stride %lld < %d columns\n", __FILE__, __LINE__,
                (long long)ld, cols);
        exit(1);
    }
    const int per_block = threads * (pair ? 2 : 1);
    return dim3((unsigned)std::min((cols + per_block - 1) / per_block, 64), (unsigned)std::min<int64_t>(rows, 32768));
}

extern "C" void pn_cuda_f32_split_bf16(pn_bf16 *hi, pn_bf16 *lo, int64_t ld, const float *src, int64_t rows,
                                       int cols) {
    if (rows <= 0 || cols <= 0) return;
    const int threads = 256;
    const bool pair = cols % 2 == 0 && ld % 2 == 0 && (uintptr_t)hi % 4 == 0 && (uintptr_t)lo % 4 == 0 &&
                      (uintptr_t)src % 8 == 0;
    const dim3 grid = rows_grid(ld, rows, cols, pair, threads);
    if (pair)
        f32_split_bf16_kernel<true><<<grid, threads, 0, g_stream>>>(as_bf(hi), as_bf(lo), ld, src, rows, cols);
    else
        f32_split_bf16_kernel<false><<<grid, threads, 0, g_stream>>>(as_bf(hi), as_bf(lo), ld, src, rows, cols);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_f32_to_bf16(pn_bf16 *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    const int threads = 256;
    if (pn_aligned16(dst) && pn_aligned16(src)) {
        f32_to_bf16_kernel<true><<<pn_grid_for(n / 8 + 8, threads), threads, 0, g_stream>>>(as_bf(dst), src, n);
    } else {
        f32_to_bf16_kernel<false><<<pn_grid_for(n, threads), threads, 0, g_stream>>>(as_bf(dst), src, n);
    }
    PN_CHECK_LAUNCH();
}

// src (rows, cols) contiguous into a (rows, cols) slice of dst whose rows are ldd apart;
// columns cols..ldd−1 of dst untouched. Rows over blockIdx.y; two columns per thread
// (a float2 load, a bf16x2 store) when cols, ldd and both pointers allow it.
template <bool PAIR>
__global__ void f32_to_bf16_2d_kernel(__nv_bfloat16 *dst, int64_t ldd, const float *src, int64_t rows, int cols) {
    const int step = PAIR ? 2 : 1;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float *s = src + r * cols;
        __nv_bfloat16 *d = dst + r * ldd;
        for (int c = step * (blockIdx.x * blockDim.x + threadIdx.x); c < cols; c += step * gridDim.x * blockDim.x) {
            if (PAIR) {
                const float2 f = *(const float2 *)(s + c);
                *(__nv_bfloat162 *)(d + c) = __floats2bfloat162_rn(f.x, f.y);
            } else {
                d[c] = __float2bfloat16_rn(s[c]);
            }
        }
    }
}

extern "C" void pn_cuda_f32_to_bf16_2d(pn_bf16 *dst, int64_t ldd, const float *src, int64_t rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    const int threads = 256;
    const bool pair = cols % 2 == 0 && ldd % 2 == 0 && (uintptr_t)dst % 4 == 0 && (uintptr_t)src % 8 == 0;
    const dim3 grid = rows_grid(ldd, rows, cols, pair, threads);
    if (pair)
        f32_to_bf16_2d_kernel<true><<<grid, threads, 0, g_stream>>>(as_bf(dst), ldd, src, rows, cols);
    else
        f32_to_bf16_2d_kernel<false><<<grid, threads, 0, g_stream>>>(as_bf(dst), ldd, src, rows, cols);
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_bf16_to_f32(float *dst, const pn_bf16 *src, int64_t n) {
    if (n <= 0) return;
    const int threads = 256;
    if (pn_aligned16(dst) && pn_aligned16(src)) {
        bf16_to_f32_kernel<true><<<pn_grid_for(n / 8 + 8, threads), threads, 0, g_stream>>>(dst, as_bf(src), n);
    } else {
        bf16_to_f32_kernel<false><<<pn_grid_for(n, threads), threads, 0, g_stream>>>(dst, as_bf(src), n);
    }
    PN_CHECK_LAUNCH();
}

extern "C" void pn_cuda_upload_bf16(pn_bf16 *dst, const float *host_src, int64_t n) {
    if (n <= 0) return;
    float *tmp = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)n * sizeof(float));
    pn_cuda_upload(tmp, host_src, (size_t)n * sizeof(float));
    pn_cuda_f32_to_bf16(dst, tmp, n);
    pn_cuda_sync();
    pn_cuda_free(tmp);
}

extern "C" void pn_cuda_download_bf16(float *host_dst, const pn_bf16 *src, int64_t n) {
    if (n <= 0) return;
    float *tmp = (float *)pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)n * sizeof(float));
    pn_cuda_bf16_to_f32(tmp, src, n);
    pn_cuda_download(host_dst, tmp, (size_t)n * sizeof(float));
    pn_cuda_free(tmp);
}
