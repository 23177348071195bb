// test_cuda_attn.c — CUDA causal / sliding-window GQA attention (kernels/cuda/pn_cuda_attn.h)
// against its CPU twin pn_attention_fwd / pn_attention_bwd (kernels/ops.h), through both
// implementations: cuDNN's fused attention (the default, "auto") and the built-in kernel
// (forced with pn_cuda_attn_backend_set), plus a forward of one feeding a backward of the
// other (same lse convention).
//
// Method (as tests/gpu/test_cuda_ops.c):
//  - fresh random inputs for every check (a new Philox stream each time), never zeros;
//    q, k, v, dout ~ N(0, 1) rounded to bf16 on the host first, and the CPU twin gets those
//    same values, so a check measures only the GPU's arithmetic and its output rounding;
//  - every output (o, lse, dq, dk, dv) is poisoned with 0xFF bytes (NaN in bf16 and fp32)
//    before the call: an element the op forgets to write fails the check;
//  - error = ‖gpu − cpu‖ / ‖cpu‖ in double; NaN / Inf anywhere fails.
//  - Tq < Tk (prefill against a cache, decode Tq = 1): the CPU op has Tq = Tk, so it runs on
//    T = Tk with random queries in front of the real ones; query i of the GPU call is row
//    Tk − Tq + i there, exactly the bottom-right alignment of the CUDA contract. The GPU gets
//    k and v inside a longer cache (B, Tk + extra, Hkv, D) through kv_batch_stride, the extra
//    rows filled with values 100× larger, so reading past Tk shows up as a large error.
// Tolerances:
//  - TOL_BF16 = 1e-2 on bf16 outputs (o, dq, dk, dv): one bf16 rounding is ≤ 2^-9 relative
//    (~2e-3 rms); both implementations also round P (and dS) to bf16 before the second
//    product, a few 1e-3 more. The built-in kernel measured 2–3e-3 against a double
//    reference in a CPU emulation of its WMMA code.
//  - TOL_LSE = 1e-4 on the fp32 lse: same inputs, fp32 math only (~1e-7 measured in the
//    emulation); a log2-vs-ln or an unscaled statistic would be off by far more.
// Each line names the implementation that ran ([cudnn] / [fallback], from
// pn_cuda_attn_last_backend); "cudnn path taken" checks fail when an auto call that cuDNN
// should take fell back (the reason is on stderr). Without a CUDA device the test prints
// "no CUDA device" and exits 1.
#include "core/common.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_attn.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "kernels/ops.h"
#include <math.h>
#include <stdarg.h>
#include <time.h>

#define TOL_BF16 1e-2
#define TOL_LSE 1e-4
#define GPU_TEST_SEED 20251124
#include "gpu_test_util.h"

static const char *impl_name(pn_cuda_attn_backend b) {
    return b == PN_CUDA_ATTN_CUDNN ? "cudnn" : b == PN_CUDA_ATTN_FALLBACK ? "fallback" : "auto";
}

static float *rand_bf16_host(size_t n) {
    float *h = rand_host(n, 1.0f);
    round_bf16(h, n);
    return h;
}

// "cudnn path taken" for an auto call cuDNN should take (head dim a multiple of 8).
static void check_path(pn_cuda_attn_backend want, int D, const char *what) {
    if (want != PN_CUDA_ATTN_AUTO) {
        report(pn_cuda_attn_last_backend() == want ? 0.0 : 1.0, 0.0, "%s: forced %s path taken", what,
               impl_name(want));
    } else if (D % 8 == 0) {
        report(pn_cuda_attn_last_backend() == PN_CUDA_ATTN_CUDNN ? 0.0 : 1.0, 0.0, "%s: cudnn path taken", what);
    } else {
        report(pn_cuda_attn_last_backend() == PN_CUDA_ATTN_FALLBACK ? 0.0 : 1.0, 0.0,
               "%s: fallback taken (D not a multiple of 8)", what);
    }
}

// ---------------------------------------------------------------- forward
// Queries Tq against keys Tk (Tq <= Tk), k / v inside a cache with `extra` rows past Tk.
static void test_fwd(pn_cuda_attn_backend want, int B, int Tq, int Tk, int Hq, int Hkv, int D, int window, int extra,
                     int with_lse) {
    const int Tm = Tk + extra, off = Tk - Tq;
    const size_t nq = (size_t)B * Tq * Hq * D, nfull = (size_t)B * Tk * Hq * D, nkv = (size_t)B * Tk * Hkv * D;
    const size_t ncache = (size_t)B * Tm * Hkv * D, nl = (size_t)B * Hq * Tq;
    const size_t row_q = (size_t)Hq * D, row_kv = (size_t)Hkv * D;
    const float scale = 1.0f / sqrtf((float)D);

    // Host: the full query block of the CPU call (its last Tq rows are the GPU's queries),
    // the cache, and the dense (B, Tk) view of it the CPU op takes.
    float *qfull = rand_bf16_host(nfull), *kc = rand_bf16_host(ncache), *vc = rand_bf16_host(ncache);
    for (int b = 0; b < B; b++)
        for (size_t i = (size_t)Tk * row_kv; i < (size_t)Tm * row_kv; i++) {
            kc[(size_t)b * Tm * row_kv + i] *= 100.0f;
            vc[(size_t)b * Tm * row_kv + i] *= 100.0f;
        }
    float *q = pn_malloc(nq * sizeof(float)), *kd = pn_malloc(nkv * sizeof(float)), *vd = pn_malloc(nkv * sizeof(float));
    for (int b = 0; b < B; b++) {
        memcpy(q + (size_t)b * Tq * row_q, qfull + ((size_t)b * Tk + off) * row_q, (size_t)Tq * row_q * sizeof(float));
        memcpy(kd + (size_t)b * Tk * row_kv, kc + (size_t)b * Tm * row_kv, (size_t)Tk * row_kv * sizeof(float));
        memcpy(vd + (size_t)b * Tk * row_kv, vc + (size_t)b * Tm * row_kv, (size_t)Tk * row_kv * sizeof(float));
    }
    float *o_full = pn_malloc(nfull * sizeof(float)), *l_full = pn_malloc((size_t)B * Hq * Tk * sizeof(float));
    pn_attention_fwd(o_full, l_full, qfull, kd, vd, B, Tk, Hq, Hkv, D, window, scale);
    float *o_ref = pn_malloc(nq * sizeof(float)), *l_ref = pn_malloc((nl ? nl : 1) * sizeof(float));
    for (int b = 0; b < B; b++) {
        memcpy(o_ref + (size_t)b * Tq * row_q, o_full + ((size_t)b * Tk + off) * row_q, (size_t)Tq * row_q * sizeof(float));
        for (int h = 0; h < Hq; h++)
            memcpy(l_ref + ((size_t)b * Hq + h) * Tq, l_full + ((size_t)b * Hq + h) * Tk + off, (size_t)Tq * sizeof(float));
    }

    pn_bf16 *d_q = dev_bf16(q, nq), *d_k = dev_bf16(kc, ncache), *d_v = dev_bf16(vc, ncache);
    pn_bf16 *d_o = dev_poisoned(nq * sizeof(pn_bf16));
    float *d_l = with_lse ? dev_poisoned(nl * sizeof(float)) : NULL;
    pn_cuda_attn_backend_set(want);
    pn_cuda_attn_fwd(B, Tq, Tk, Hq, Hkv, D, window, scale, d_q, d_k, d_v, extra ? (int64_t)Tm * Hkv * D : 0, d_o, d_l);
    pn_cuda_sync();
    const pn_cuda_attn_backend ran = pn_cuda_attn_last_backend();
    float *o = get_bf16(d_o, nq);

    char what[200];
    snprintf(what, sizeof what, "fwd [%s] B%d Tq%d Tk%d Hq%d Hkv%d D%d window %d%s%s", impl_name(ran), B, Tq, Tk, Hq,
             Hkv, D, window, extra ? " in a longer cache" : "", with_lse ? "" : " (lse NULL)");
    report(rel_err(o, o_ref, nq), TOL_BF16, "%s: o", what);
    if (with_lse) {
        float *l = get_f32(d_l, nl);
        report(rel_err(l, l_ref, nl), TOL_LSE, "%s: lse", what);
        free(l);
    }
    check_path(want, D, what);
    free(qfull), free(kc), free(vc), free(q), free(kd), free(vd), free(o_full), free(l_full), free(o_ref), free(l_ref);
    free(o);
    pn_cuda_free(d_q), pn_cuda_free(d_k), pn_cuda_free(d_v), pn_cuda_free(d_o), pn_cuda_free(d_l);
}

// Σ x² in double; NaN propagates (and then fails the check).
static double sumsq(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

// ---------------------------------------------------------------- backward
// Forward on the GPU (implementation fwd_impl) gives o and lse; the backward (bwd_impl)
// takes them with dout; dq, dk, dv against the CPU backward of the CPU forward.
static void test_bwd(pn_cuda_attn_backend fwd_impl, pn_cuda_attn_backend bwd_impl, int B, int T, int Hq, int Hkv,
                     int D, int window) {
    const size_t nq = (size_t)B * T * Hq * D, nkv = (size_t)B * T * Hkv * D, nl = (size_t)B * Hq * T;
    const float scale = 1.0f / sqrtf((float)D);
    float *q = rand_bf16_host(nq), *k = rand_bf16_host(nkv), *v = rand_bf16_host(nkv), *dout = rand_bf16_host(nq);
    float *o_ref = pn_malloc(nq * sizeof(float)), *l_ref = pn_malloc(nl * sizeof(float));
    float *dq_ref = pn_calloc(nq, sizeof(float)), *dk_ref = pn_calloc(nkv, sizeof(float));
    float *dv_ref = pn_calloc(nkv, sizeof(float));
    pn_attention_fwd(o_ref, l_ref, q, k, v, B, T, Hq, Hkv, D, window, scale);
    pn_attention_bwd(dq_ref, dk_ref, dv_ref, dout, q, k, v, o_ref, l_ref, B, T, Hq, Hkv, D, window, scale);

    pn_bf16 *d_q = dev_bf16(q, nq), *d_k = dev_bf16(k, nkv), *d_v = dev_bf16(v, nkv), *d_do = dev_bf16(dout, nq);
    pn_bf16 *d_o = dev_poisoned(nq * sizeof(pn_bf16));
    float *d_l = dev_poisoned(nl * sizeof(float));
    pn_cuda_attn_backend_set(fwd_impl);
    pn_cuda_attn_fwd(B, T, T, Hq, Hkv, D, window, scale, d_q, d_k, d_v, 0, d_o, d_l);
    const pn_cuda_attn_backend fwd_ran = pn_cuda_attn_last_backend();
    pn_bf16 *d_dq = dev_poisoned(nq * sizeof(pn_bf16)), *d_dk = dev_poisoned(nkv * sizeof(pn_bf16));
    pn_bf16 *d_dv = dev_poisoned(nkv * sizeof(pn_bf16));
    pn_cuda_attn_backend_set(bwd_impl);
    pn_cuda_attn_bwd(B, T, Hq, Hkv, D, window, scale, d_q, d_k, d_v, d_o, d_do, d_l, d_dq, d_dk, d_dv);
    pn_cuda_sync();
    const pn_cuda_attn_backend bwd_ran = pn_cuda_attn_last_backend();
    float *dq = get_bf16(d_dq, nq), *dk = get_bf16(d_dk, nkv), *dv = get_bf16(d_dv, nkv);

    char what[200];
    snprintf(what, sizeof what, "bwd [%s] after fwd [%s] B%d T%d Hq%d Hkv%d D%d window %d", impl_name(bwd_ran),
             impl_name(fwd_ran), B, T, Hq, Hkv, D, window);
    // With T = 1 the softmax has one entry: dq and dk are 0 in exact arithmetic and
    // both sides hold rounding noise, so a relative error is meaningless; their norm
    // is then held against the gradient's scale |dv|.
    if (T > 1) {
        report(rel_err(dq, dq_ref, nq), TOL_BF16, "%s: dq", what);
        report(rel_err(dk, dk_ref, nkv), TOL_BF16, "%s: dk", what);
    } else {
        const double nrm_dv = sumsq(dv_ref, nkv);
        report(sqrt(sumsq(dq, nq) / nrm_dv), TOL_BF16, "%s: dq (0 in exact arithmetic: |dq| / |dv|)", what);
        report(sqrt(sumsq(dk, nkv) / nrm_dv), TOL_BF16, "%s: dk (0 in exact arithmetic: |dk| / |dv|)", what);
    }
    report(rel_err(dv, dv_ref, nkv), TOL_BF16, "%s: dv", what);
    check_path(bwd_impl, D, what);
    free(q), free(k), free(v), free(dout), free(o_ref), free(l_ref), free(dq_ref), free(dk_ref), free(dv_ref);
    free(dq), free(dk), free(dv);
    pn_cuda_free(d_q), pn_cuda_free(d_k), pn_cuda_free(d_v), pn_cuda_free(d_do), pn_cuda_free(d_o), pn_cuda_free(d_l);
    pn_cuda_free(d_dq), pn_cuda_free(d_dk), pn_cuda_free(d_dv);
}

// ---------------------------------------------------------------- plan cache
// A shape seen before builds no new plan, and the repeated call is quick (no graph build).
static void test_plan_cache(void) {
    const int B = 2, T = 63, Hq = 6, Hkv = 1, D = 128;
    const size_t nq = (size_t)B * T * Hq * D, nkv = (size_t)B * T * Hkv * D;
    pn_bf16 *d_q = dev_poisoned(nq * 2), *d_k = dev_poisoned(nkv * 2), *d_v = dev_poisoned(nkv * 2);
    pn_bf16 *d_o = dev_poisoned(nq * 2);
    float *d_l = dev_poisoned((size_t)B * Hq * T * 4);
    pn_cuda_memset(d_q, 0, nq * 2), pn_cuda_memset(d_k, 0, nkv * 2), pn_cuda_memset(d_v, 0, nkv * 2);
    pn_cuda_attn_backend_set(PN_CUDA_ATTN_AUTO);
    pn_cuda_attn_fwd(B, T, T, Hq, Hkv, D, 0, 0.1f, d_q, d_k, d_v, 0, d_o, d_l);  // built by test_fwd already
    pn_cuda_sync();
    const int before = pn_cuda_attn_plans_built();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pn_cuda_attn_fwd(B, T, T, Hq, Hkv, D, 0, 0.2f, d_q, d_k, d_v, 0, d_o, d_l);  // another scale: same plan
    pn_cuda_sync();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double ms = 1e3 * (double)(t1.tv_sec - t0.tv_sec) + 1e-6 * (double)(t1.tv_nsec - t0.tv_nsec);
    const int after = pn_cuda_attn_plans_built();
    report(after == before ? 0.0 : 1.0, 0.0, "plan cache: repeated shape built no new plan (%d plans in total)", after);
    report(ms < 50.0 ? 0.0 : 1.0, 0.0, "plan cache: repeated call took %.2f ms (no graph build, < 50 ms)", ms);
    pn_cuda_free(d_q), pn_cuda_free(d_k), pn_cuda_free(d_v), pn_cuda_free(d_o), pn_cuda_free(d_l);
}

int main(void) {
    if (pn_cuda_device_count() < 1) {
        printf("test_cuda_attn: no CUDA device (these tests run on the GPU machine)\n");
        return 1;
    }
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    const int cv = pn_cuda_attn_cudnn_version();
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB; cuDNN %d.%d.%d\n", info.name, info.sm_major, info.sm_minor,
           info.multiprocessors, info.total_mem / 1073741824.0, cv / 10000, (cv % 10000) / 100, cv % 100);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    // Forward, Tq = Tk (the shapes the backward uses below, so their plans are shared):
    // T not a multiple of 64, GQA ratios 1, 2, 6, head dims 64, 96, 128, 256, windows.
    const pn_cuda_attn_backend impls[2] = {PN_CUDA_ATTN_AUTO, PN_CUDA_ATTN_FALLBACK};
    for (int i = 0; i < 2; i++) {
        const pn_cuda_attn_backend w = impls[i];
        test_fwd(w, 1, 1, 1, 2, 1, 64, 0, 0, 1);
        test_fwd(w, 2, 63, 63, 6, 1, 128, 0, 0, 1);
        test_fwd(w, 1, 100, 100, 4, 4, 64, 0, 0, 1);
        test_fwd(w, 2, 257, 257, 12, 2, 128, 32, 0, 1);
        test_fwd(w, 1, 257, 257, 4, 2, 256, 0, 0, 1);
        test_fwd(w, 2, 300, 300, 4, 2, 96, 100, 0, 1);
        test_fwd(w, 1, 70, 70, 2, 1, 20, 0, 0, 1);  // D % 8 != 0: auto falls back
        // Prefill against a cache (Tq < Tk) and decode (Tq = 1), k / v in a longer cache.
        test_fwd(w, 2, 37, 300, 4, 2, 128, 0, 50, 1);
        test_fwd(w, 2, 64, 257, 6, 1, 64, 100, 7, 1);
        test_fwd(w, 4, 1, 1000, 12, 2, 128, 0, 24, 1);
        test_fwd(w, 3, 1, 513, 4, 1, 64, 32, 100, 0);
        test_fwd(w, 2, 63, 63, 6, 1, 128, 0, 0, 0);  // inference: no lse
    }

    // Backward: each implementation end to end, then crossed (a forward of one, the
    // backward of the other), which also checks that both keep lse in the same convention.
    for (int i = 0; i < 2; i++) {
        const pn_cuda_attn_backend w = impls[i];
        test_bwd(w, w, 1, 1, 2, 1, 64, 0);
        test_bwd(w, w, 2, 63, 6, 1, 128, 0);
        test_bwd(w, w, 1, 100, 4, 4, 64, 0);
        test_bwd(w, w, 2, 257, 12, 2, 128, 32);
        test_bwd(w, w, 1, 257, 4, 2, 256, 0);
        test_bwd(w, w, 2, 300, 4, 2, 96, 100);
        test_bwd(w, w, 1, 70, 2, 1, 20, 0);
    }
    test_bwd(PN_CUDA_ATTN_AUTO, PN_CUDA_ATTN_FALLBACK, 2, 257, 12, 2, 128, 32);
    test_bwd(PN_CUDA_ATTN_FALLBACK, PN_CUDA_ATTN_AUTO, 2, 257, 12, 2, 128, 32);
    // A realistic length once, through the default path.
    test_bwd(PN_CUDA_ATTN_AUTO, PN_CUDA_ATTN_AUTO, 2, 1024, 12, 2, 128, 0);

    test_plan_cache();

    pn_cuda_attn_backend_set(PN_CUDA_ATTN_AUTO);
    pn_cuda_attn_release();
    pn_cuda_sync();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("time %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    printf("test_cuda_attn: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
