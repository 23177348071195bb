// fake_memory.c — the fake CUDA backend's runtime: "device" memory, copies,
// conversions, the stream and device info (twins of kernels/cuda/memory.cu and
// runtime.cu), plus the helpers of fake_cuda.h.
//
// Device memory is host memory with memory.cu's behaviour kept where code can see it:
// one caching arena per category, the same size rounding (512 B below 1 MiB, 2 MiB
// above), a freed block reused only within its category for a request of at most half
// its size, in-use / cached byte counts, trim, 256-byte alignment, and an internal
// error for freeing a pointer that is not a live block. Two things make bugs louder
// than on the GPU: every allocation (fresh or reused) is filled with 0xFF bytes — NaN
// as fp32 and bf16 — so a buffer read before it is written shows up as NaN; and under
// AddressSanitizer a cached block is poisoned, so a use after pn_cuda_free is reported
// even though the arena keeps the memory. Everything runs synchronously: a "queued"
// op has finished when it returns, so pn_cuda_sync has nothing to wait for.
#include "tests/fake_cuda/fake_cuda.h"
#include "kernels/cuda/pn_cuda.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define FK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FK_ASAN 1
#endif
#endif
#ifdef FK_ASAN
#include <sanitizer/asan_interface.h>
#define FK_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define FK_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define FK_POISON(p, n) ((void)(p), (void)(n))
#define FK_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

// ---------------------------------------------------------------- helpers (fake_cuda.h)
PN_NORETURN void fk_unavailable(const char *file, int line, const char *fn) {
    pn_die_internal(file, line, "%s is not available in the fake CUDA build (POSTNAS_FAKE_CUDA); run it on a GPU", fn);
}

float *fk_alloc(int64_t n) {
    PN_ASSERT(n >= 0);
    return pn_malloc((size_t)(n ? n : 1) * sizeof(float));
}

float *fk_zeros(int64_t n) {
    PN_ASSERT(n >= 0);
    return pn_calloc((size_t)(n ? n : 1), sizeof(float));
}

float *fk_from_bf16(const pn_bf16 *x, int64_t n) {
    if (!x) return NULL;
    float *f = fk_alloc(n);
    for (int64_t i = 0; i < n; i++) f[i] = pn_bf16_to_f32(x[i]);
    return f;
}

float *fk_dup(const float *x, int64_t n) {
    if (!x) return NULL;
    float *f = fk_alloc(n);
    memcpy(f, x, (size_t)n * sizeof(float));
    return f;
}

void fk_store_bf16(pn_bf16 *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = pn_f32_to_bf16(src[i]);
}

void fk_store(void *dst, pn_cuda_dtype dt, const float *src, int64_t n) {
    if (!dst) return;
    if (dt == PN_CUDA_F32)
        memmove(dst, src, (size_t)n * sizeof(float));
    else if (dt == PN_CUDA_BF16)
        fk_store_bf16((pn_bf16 *)dst, src, n);
    else
        pn_die_internal(__FILE__, __LINE__, "bad pn_cuda_dtype %d", (int)dt);
}

float *fk_or_temp(float *p, int64_t n, float **tmp) {
    *tmp = NULL;
    if (p) return p;
    *tmp = fk_zeros(n);
    return *tmp;
}

// ---------------------------------------------------------------- device info (runtime.cu)
#define FK_TOTAL_MEM ((size_t)80 << 30)

int pn_cuda_device_count(void) { return 1; }

void pn_cuda_device_info_get(int dev, pn_cuda_device_info *info) {
    if (dev != 0) pn_die_internal(__FILE__, __LINE__, "fake CUDA: device %d does not exist (only device 0)", dev);
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "CPU fake device (POSTNAS_FAKE_CUDA)");
    info->sm_major = 9;
    info->sm_minor = 0;
    info->multiprocessors = 132;
    info->total_mem = FK_TOTAL_MEM;
    size_t used = 0;
    for (int c = 0; c < PN_CUDA_MEM_COUNT; c++) used += pn_cuda_mem_in_use(c) + pn_cuda_mem_cached(c);
    info->free_mem = used < FK_TOTAL_MEM ? FK_TOTAL_MEM - used : 0;
    info->l2_bytes = (size_t)50 << 20;
    info->smem_per_block_optin = 227 << 10;
}

// ---------------------------------------------------------------- stream
static void *g_stream = NULL;

void pn_cuda_stream_set(void *stream) { g_stream = stream; }
void *pn_cuda_stream_get(void) { return g_stream; }
static size_t g_syncs, g_driver_allocs, g_driver_alloc_bytes;
void pn_cuda_sync(void) { g_syncs++; }


// ---------------------------------------------------------------- caching arena
typedef struct {
    void *p;
    size_t bytes;
    int cat;
    int used;
} fk_block;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static fk_block *g_blocks = NULL;
static size_t g_nblocks = 0, g_cap = 0;
static size_t g_in_use[PN_CUDA_MEM_COUNT], g_cached[PN_CUDA_MEM_COUNT];
static const char *const g_cat_names[PN_CUDA_MEM_COUNT] = {"weights", "params", "grads", "optim", "acts", "scratch"};

// memory.cu's rounding, so accounting and reuse behave as on the GPU.
size_t pn_fake_cuda_round_request(size_t bytes);
size_t pn_fake_cuda_round_request(size_t bytes) {
    const size_t small = 512, big = (size_t)2 << 20;
    if (bytes < ((size_t)1 << 20)) return (bytes + small - 1) / small * small;
    return (bytes + big - 1) / big * big;
}

static void check_cat(int cat) {
    if (cat < 0 || cat >= PN_CUDA_MEM_COUNT) pn_die_internal(__FILE__, __LINE__, "bad memory category %d", cat);
}

// Caller holds g_mu.
static void trim_locked(int cat) {
    size_t k = 0;
    for (size_t i = 0; i < g_nblocks; i++) {
        fk_block b = g_blocks[i];
        if (!b.used && (cat < 0 || b.cat == cat)) {
            FK_UNPOISON(b.p, b.bytes);
            free(b.p);
            g_cached[b.cat] -= b.bytes;
        } else {
            g_blocks[k++] = b;
        }
    }
    g_nblocks = k;
}

const char *pn_cuda_mem_category_name(pn_cuda_mem_category cat) {
    return (int)cat >= 0 && cat < PN_CUDA_MEM_COUNT ? g_cat_names[cat] : "?";
}

void *pn_cuda_alloc(pn_cuda_mem_category cat, size_t bytes) {
    if (bytes == 0) return NULL;
    check_cat((int)cat);
    const size_t want = pn_fake_cuda_round_request(bytes);
    pthread_mutex_lock(&g_mu);
    size_t best = (size_t)-1;
    for (size_t i = 0; i < g_nblocks; i++) {
        const fk_block *b = &g_blocks[i];
        if (b->used || b->cat != (int)cat || b->bytes < want || b->bytes > 2 * want) continue;
        if (best == (size_t)-1 || b->bytes < g_blocks[best].bytes) best = i;
    }
    void *p;
    if (best != (size_t)-1) {
        fk_block *b = &g_blocks[best];
        b->used = 1;
        g_cached[cat] -= b->bytes;
        g_in_use[cat] += b->bytes;
        p = b->p;
        FK_UNPOISON(p, b->bytes);
    } else {
        p = aligned_alloc(256, want);
        if (!p) {
            trim_locked(-1);
            p = aligned_alloc(256, want);
        }
        if (!p) {
            pthread_mutex_unlock(&g_mu);
            pn_die_internal(__FILE__, __LINE__, "fake CUDA: out of host memory allocating %.1f MiB for %s",
                            want / 1048576.0, g_cat_names[cat]);
        }
        g_driver_allocs++;
        g_driver_alloc_bytes += want;
        if (g_nblocks == g_cap) {
            size_t cap = g_cap ? 2 * g_cap : 256;
            fk_block *nb = realloc(g_blocks, cap * sizeof *nb);
            if (!nb) pn_die_internal(__FILE__, __LINE__, "out of host memory");
            g_blocks = nb;
            g_cap = cap;
        }
        g_blocks[g_nblocks++] = (fk_block){p, want, (int)cat, 1};
        g_in_use[cat] += want;
    }
    pthread_mutex_unlock(&g_mu);
    memset(p, 0xFF, want);  // NaN everywhere: cudaMalloc'd memory is garbage too
    return p;
}

void pn_cuda_free(void *p) {
    if (!p) return;
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_nblocks; i++) {
        fk_block *b = &g_blocks[i];
        if (b->p != p) continue;
        if (!b->used) break;
        b->used = 0;
        g_in_use[b->cat] -= b->bytes;
        g_cached[b->cat] += b->bytes;
        FK_POISON(b->p, b->bytes);
        pthread_mutex_unlock(&g_mu);
        return;
    }
    pthread_mutex_unlock(&g_mu);
    pn_die_internal(__FILE__, __LINE__, "pn_cuda_free of %p, which is not a live block", p);
}

void pn_cuda_mem_trim(pn_cuda_mem_category cat) {
    pthread_mutex_lock(&g_mu);
    trim_locked((int)cat);
    pthread_mutex_unlock(&g_mu);
}

size_t pn_cuda_mem_in_use(pn_cuda_mem_category cat) {
    check_cat((int)cat);
    pthread_mutex_lock(&g_mu);
    size_t r = g_in_use[cat];
    pthread_mutex_unlock(&g_mu);
    return r;
}

size_t pn_cuda_mem_cached(pn_cuda_mem_category cat) {
    check_cat((int)cat);
    pthread_mutex_lock(&g_mu);
    size_t r = g_cached[cat];
    pthread_mutex_unlock(&g_mu);
    return r;
}

// ---------------------------------------------------------------- copies, conversions
void pn_cuda_upload(void *dst, const void *host_src, size_t bytes) {
    if (bytes) memcpy(dst, host_src, bytes);
}
void pn_cuda_download(void *host_dst, const void *src, size_t bytes) {
    if (bytes) memcpy(host_dst, src, bytes);
}
void pn_cuda_memset(void *dst, int byte, size_t bytes) {
    if (bytes) memset(dst, byte, bytes);
}
void pn_cuda_memset_2d(void *dst, size_t pitch, int byte, size_t width, size_t rows) {
    PN_ASSERT(width <= pitch || rows <= 1);
    for (size_t r = 0; r < rows && width; r++) memset((char *)dst + r * pitch, byte, width);
}
// cudaMemcpy between overlapping ranges is undefined; memmove keeps the fake quiet about
// it, so say so loudly instead: overlapping device copies are a bug on the GPU.
void pn_cuda_copy(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    const char *d = dst, *s = src;
    if (d != s && d < s + bytes && s < d + bytes)
        pn_die_internal(__FILE__, __LINE__, "pn_cuda_copy: overlapping ranges (%p, %p, %zu bytes)", dst, src, bytes);
    memcpy(dst, src, bytes);
}

void pn_cuda_f32_to_bf16(pn_bf16 *dst, const float *src, int64_t n) { fk_store_bf16(dst, src, n); }
void pn_cuda_f32_to_bf16_2d(pn_bf16 *dst, int64_t ldd, const float *src, int64_t rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    PN_ASSERT(ldd >= cols);
    for (int64_t r = 0; r < rows; r++) fk_store_bf16(dst + r * ldd, src + r * cols, cols);
}
void pn_cuda_bf16_to_f32(float *dst, const pn_bf16 *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = pn_bf16_to_f32(src[i]);
}
void pn_cuda_f32_split_bf16(pn_bf16 *hi, pn_bf16 *lo, int64_t ld, const float *src, int64_t rows, int cols) {
    PN_ASSERT(ld >= cols || rows <= 0);
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const float x = src[r * cols + c];
            const pn_bf16 h = pn_f32_to_bf16(x);
            hi[r * ld + c] = h;
            lo[r * ld + c] = pn_f32_to_bf16(x - pn_bf16_to_f32(h));
        }
}
void pn_cuda_upload_bf16(pn_bf16 *dst, const float *host_src, int64_t n) { fk_store_bf16(dst, host_src, n); }
void pn_cuda_download_bf16(float *host_dst, const pn_bf16 *src, int64_t n) { pn_cuda_bf16_to_f32(host_dst, src, n); }

// The real counters' twins: fresh host blocks stand for driver allocations; nothing
// waits, and there are no cuBLASLt plans.
void pn_cuda_host_stats_get(pn_cuda_host_stats *st) {
    pthread_mutex_lock(&g_mu);
    st->driver_allocs = g_driver_allocs;
    st->driver_alloc_bytes = g_driver_alloc_bytes;
    pthread_mutex_unlock(&g_mu);
    st->syncs = g_syncs;
    st->sync_seconds = 0.0;
    st->gemm_plan_builds = 0;
}
