// gpu_test_util.h — the harness shared by tests/gpu/test_*.c (header-only).
//
// Every check compares a CUDA op with its CPU twin by normalized error
// ‖gpu − cpu‖ / ‖cpu‖ in double; a non-finite value anywhere fails. report()
// prints one line per check, and main prints "N passed, N failed". Random inputs
// come from a fresh Philox stream per draw (GPU_TEST_SEED, g_stream++), never zeros.
#pragma once
#include "core/common.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include <math.h>
#include <stdarg.h>

#ifndef GPU_TEST_SEED
#define GPU_TEST_SEED 20251122
#endif

static int g_pass = 0, g_fail = 0;
static uint64_t g_stream = 1;

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void report(double err, double tol, const char *fmt, ...) PN_PRINTF(3, 4);
static void report(double err, double tol, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int ok = isfinite(err) && err <= tol;
    printf("%-4s %-84s err %.3e  (tol %.0e)\n", ok ? "ok" : "FAIL", what, err, tol);
    fflush(stdout);
    if (ok)
        g_pass++;
    else
        g_fail++;
}

static float *rand_host(size_t n, float std) {
    float *p = pn_malloc((n ? n : 1) * sizeof(float));
    pn_fill_normal(p, n, 0.0f, std, GPU_TEST_SEED, g_stream++);
    return p;
}

static void round_bf16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = pn_bf16_to_f32(pn_f32_to_bf16(x[i]));
}

// ---- device buffers (scratch category; a 0-length buffer still gets a pointer) ----
static inline pn_bf16 *dev_bf16(const float *h, size_t n) {
    pn_bf16 *d = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (n ? n : 1) * sizeof(pn_bf16));
    pn_cuda_upload_bf16(d, h, (int64_t)n);
    return d;
}

static inline float *dev_f32(const float *h, size_t n) {
    float *d = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (n ? n : 1) * sizeof(float));
    pn_cuda_upload(d, h, n * sizeof(float));
    return d;
}

// Every byte 0xFF: NaN as fp32 and bf16, so an output the kernel never writes fails.
static inline void *dev_poisoned(size_t bytes) {
    void *p = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, bytes ? bytes : 1);
    pn_cuda_memset(p, 0xFF, bytes);
    return p;
}

static inline float *get_bf16(const pn_bf16 *d, size_t n) {
    float *h = pn_malloc((n ? n : 1) * sizeof(float));
    pn_cuda_download_bf16(h, d, (int64_t)n);
    return h;
}

// A (rows, cols) bf16 slice whose rows are ld ≥ cols apart, packed to (rows, cols) fp32;
// *outside = how many elements of the columns cols..ld−1 no longer hold the 0xFFFF poison
// (a row-slice writer that strayed past its columns). The buffer must have been poisoned.
static inline float *get_bf16_rows(const pn_bf16 *d, int64_t rows, int64_t cols, int64_t ld, int64_t *outside) {
    const size_t wide = (size_t)(rows * ld);
    uint16_t *bits = pn_malloc((wide ? wide : 1) * sizeof(uint16_t));
    pn_cuda_download(bits, d, wide * sizeof(uint16_t));
    float *h = pn_malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof(float));
    *outside = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < ld; c++) {
            if (c < cols)
                h[r * cols + c] = pn_bf16_to_f32(bits[r * ld + c]);
            else
                *outside += bits[r * ld + c] != 0xFFFF;
        }
    free(bits);
    return h;
}

static inline float *get_f32(const float *d, size_t n) {
    float *h = pn_malloc((n ? n : 1) * sizeof(float));
    pn_cuda_download(h, d, n * sizeof(float));
    return h;
}

// An output of either dtype, as fp32 on the host.
static inline float *get_out(const void *dev, size_t n, int f32) {
    return f32 ? get_f32((const float *)dev, n) : get_bf16((const pn_bf16 *)dev, n);
}

// ---- gated-delta inputs ----
// g = logsigmoid(N(0,1)) / normalizer, β = sigmoid(N(0,1)), as fla's tests.
static inline void make_gates(size_t n, float normalizer, float **g, float **beta) {
    *g = rand_host(n, 1.0f);
    *beta = rand_host(n, 1.0f);
    for (size_t i = 0; i < n; i++) {
        const double u = (*g)[i];
        const double ls = u >= 0 ? -log1p(exp(-u)) : u - log1p(exp(u));
        (*g)[i] = (float)(ls / normalizer);
        (*beta)[i] = (float)(1.0 / (1.0 + exp(-(double)(*beta)[i])));
    }
}

// q, k, v on the bf16 grid; k with norm ≈ 1 unless the op normalises it.
static inline void make_qkv(size_t nqk, size_t nv, int K, int l2, float **q, float **k, float **v) {
    *q = rand_host(nqk, 1.0f);
    *k = rand_host(nqk, l2 ? 1.0f : 1.0f / sqrtf((float)K));
    *v = rand_host(nv, 1.0f);
    round_bf16(*q, nqk), round_bf16(*k, nqk), round_bf16(*v, nv);
}
