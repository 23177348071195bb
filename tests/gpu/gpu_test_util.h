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
