// test_cuda_gla_fast.c — the tensor-core chunked simple GLA (pn_cuda_simple_gla_fwd_fast /
// _bwd_fast, kernels/cuda/sgla_fast.cu) and GLA (pn_cuda_gla_fwd_fast / _bwd_fast,
// kernels/cuda/gla_fast.cu) against their CPU twins pn_simple_gla_* / pn_gla_* in the recurrent
// form (chunk 0: token loop; token-level BPTT), then timings against the fp32 CUDA kernels
// (kernels/cuda/linear_ops.cu). Every section runs once per op (PN_GLA_OPS=sgla,gla picks).
//
// Checks:
//  1. forward for T ∈ {1, 63, 64, 65, 130, 257, 1000}, K ∈ {64, 96, 128}, V ∈ {32, 64, 96, 128,
//     160, 256}, B·H from 1 to 24, with and without g (NULL; simple GLA only: GLA's gk is
//     required), h0 (none, random, ht == h0), ht, o bf16 / fp32 / NULL (state only); each call
//     must have run on the tensor cores (pn_cuda_*_fast_debug_last);
//  2. backward over the same kinds of shapes: dq, dk, dv, dg, dh0 added (+=) into random start
//     values (the error is measured on the update, so a forgotten element or an overwrite
//     fails), with and without h0 / dht, subsets of the gradients NULL (including dh0 only:
//     the reverse pass alone), g NULL (dg left untouched); one case run twice must give
//     bitwise the same gradients (no atomics: every element has one writer);
//  3. an unsupported shape (K = 40, V = 30) falls back to the fp32 kernels and is still right;
//  4. at B8 T4096 H12 K128 V128, the fast pair against the fp32 pair (o and every gradient)
//     and the median time of each (printed, never asserted); PN_GDN_NO_TIMING=1 skips the
//     timings and compares at B1 T520 H2 instead (for compute-sanitizer);
//     PN_SGLA_TIMING_ONLY=1 runs this section alone (for ncu).
// Inputs as tests/gpu/test_cuda_linear.c makes them: Philox N(0,1) q, k, v rounded to bf16 on
// the host (the CPU twin gets the same values), log-decays logsigmoid(N(0,1)) / normalizer
// (simple GLA: normalizer 1 or 10; GLA: 16 as fla's GLA layer, 1, and "spiky": one channel in
// ~15 at 20 × logsigmoid, so per-chunk decays reach e^-600 and the secondary chunking's
// factors underflow where the scores do), h0 N(0, 0.5²), dout, dht N(0, 1); outputs poisoned
// with 0xFF (NaN) before each call; error = ‖gpu − ref‖ / ‖ref‖ in double; NaN fails.
// Tolerance TOL = 1e-2 on every output (bf16 and fp32): the chunk products take bf16 operands
// (k·e^{γ_L−γ}, q·scale·e^γ, the score matrix A, the chunk start states S and end-state
// gradients dS, dO and dA each rounded once, relative ≤ 2^-9, rms ≈ 1.1e-3) with fp32
// accumulation; each output is a sum of a few such terms. Measured on a host emulation of the
// kernels against a double recurrence: 1.2e-3 – 2.9e-3 (simple GLA) and 1.1e-3 – 3.6e-3 (GLA,
// every decay mode) for o, ht, dq, dk, dv, dg, dh0 up to T = 1000. A wrong index, mask or a
// missed row shows up as ≥ 3e-2 or NaN. (ht and dh0 without a gate come out exact to ~1e-7:
// no decay factor is rounded then.)
// Without a CUDA device the test prints "no CUDA device" and exits 1.
#include "core/common.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "kernels/ops.h"
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-2
#define GPU_TEST_SEED 20251126
#include "gpu_test_util.h"

enum { H0_NONE = 0, H0_RANDOM = 1, H0_INPLACE = 2 };  // INPLACE: ht == h0
#define SPIKY (-1.0f)                                    // the normalizer of GLA's spiky decays

// ---------------------------------------------------------------- the op under test
static int g_gla;  // 0: simple GLA, g (B, T, H); 1: GLA, gk (B, T, H, K)
static const char *op_name(void) { return g_gla ? "gla" : "sgla"; }
static int op_supported(int K, int V) {
    return g_gla ? pn_cuda_gla_fast_supported(K, V) : pn_cuda_simple_gla_fast_supported(K, V);
}
static int op_last_fast(void) {
    return g_gla ? pn_cuda_gla_fast_debug_last() : pn_cuda_simple_gla_fast_debug_last();
}
static void op_cpu_fwd(const pn_rec_shape *s, const float *q, const float *k, const float *v, const float *g,
                       const float *h0, float *o, float *ht) {
    (g_gla ? pn_gla_fwd : pn_simple_gla_fwd)(s, 0, q, k, v, g, h0, o, ht);
}
static void op_cpu_bwd(const pn_rec_shape *s, const float *q, const float *k, const float *v, const float *g,
                       const float *h0, const float *dout, const float *dht, float *dq, float *dk, float *dv,
                       float *dg, float *dh0) {
    (g_gla ? pn_gla_bwd : pn_simple_gla_bwd)(s, 0, q, k, v, g, h0, dout, dht, dq, dk, dv, dg, dh0);
}
typedef void (*op_fwd_fn)(int, int, int, int, int, float, const pn_bf16 *, const pn_bf16 *, const pn_bf16 *,
                          const float *, const float *, void *, pn_cuda_dtype, float *);
typedef void (*op_bwd_fn)(int, int, int, int, int, float, const pn_bf16 *, const pn_bf16 *, const pn_bf16 *,
                          const float *, const float *, const float *, const float *, float *, float *, float *,
                          float *, float *);
// fast: the tensor-core pair; else the fp32 kernels
static op_fwd_fn op_fwd(int fast) {
    if (g_gla) return fast ? pn_cuda_gla_fwd_fast : pn_cuda_gla_fwd;
    return fast ? pn_cuda_simple_gla_fwd_fast : pn_cuda_simple_gla_fwd;
}
static op_bwd_fn op_bwd(int fast) {
    if (g_gla) return fast ? pn_cuda_gla_bwd_fast : pn_cuda_gla_bwd;
    return fast ? pn_cuda_simple_gla_bwd_fast : pn_cuda_simple_gla_bwd;
}

typedef struct {
    int B, T, H, K, V, use_g;
    float scale, normalizer;
    size_t nqk, nv, ng, ns;
    float *q, *k, *v, *g;  // host, bf16-rounded q, k, v; g (B, T, H) or NULL
    pn_bf16 *dq, *dk, *dv;
    float *dg;  // device copies
} sg_in;

static float *make_logdecay(size_t n, float normalizer) {
    float *g = rand_host(n, 1.0f), *pick = normalizer == SPIKY ? rand_host(n, 1.0f) : NULL;
    for (size_t i = 0; i < n; i++) {
        const double u = g[i], ls = u >= 0 ? -log1p(exp(-u)) : u - log1p(exp(u));
        g[i] = (float)(pick ? ls * (pick[i] > 1.5f ? 20.0 : 0.3) : ls / normalizer);
    }
    free(pick);
    return g;
}

static void sg_make(sg_in *r, int B, int T, int H, int K, int V, int use_g, float normalizer) {
    memset(r, 0, sizeof *r);
    r->B = B, r->T = T, r->H = H, r->K = K, r->V = V, r->use_g = use_g, r->normalizer = normalizer;
    r->scale = 1.0f / sqrtf((float)K);
    r->nqk = (size_t)B * T * H * K, r->nv = (size_t)B * T * H * V, r->ng = (size_t)B * T * H * (g_gla ? K : 1);
    r->ns = (size_t)B * H * K * V;
    r->q = rand_host(r->nqk, 1.0f), r->k = rand_host(r->nqk, 1.0f), r->v = rand_host(r->nv, 1.0f);
    round_bf16(r->q, r->nqk), round_bf16(r->k, r->nqk), round_bf16(r->v, r->nv);
    r->g = use_g ? make_logdecay(r->ng, normalizer) : NULL;
    r->dq = dev_bf16(r->q, r->nqk), r->dk = dev_bf16(r->k, r->nqk), r->dv = dev_bf16(r->v, r->nv);
    r->dg = use_g ? dev_f32(r->g, r->ng) : NULL;
}

static void sg_free(sg_in *r) {
    free(r->q), free(r->k), free(r->v), free(r->g);
    pn_cuda_free(r->dq), pn_cuda_free(r->dk), pn_cuda_free(r->dv), pn_cuda_free(r->dg);
}

// The CPU op wants a gate array; g NULL means g = 0.
static const float *cpu_gate(const sg_in *r, float **zeros) {
    *zeros = NULL;
    if (r->g) return r->g;
    *zeros = pn_calloc(r->ng ? r->ng : 1, sizeof(float));
    return *zeros;
}

static void sg_what(char *buf, size_t n, const sg_in *r, const char *dir) {
    char g[16];
    if (!r->use_g)
        snprintf(g, sizeof g, "g=none");
    else if (r->normalizer == SPIKY)
        snprintf(g, sizeof g, "g spiky");
    else
        snprintf(g, sizeof g, "g/%g", r->normalizer);
    snprintf(buf, n, "%s fast %s B=%d T=%d H=%d K=%d V=%d %s", op_name(), dir, r->B, r->T, r->H, r->K, r->V, g);
}

static void expect_fast(int fast_expected, const char *what) {
    const int got = op_last_fast();
    report(got == fast_expected ? 0.0 : 1.0, 0, "%s: ran %s (expected %s)", what, got ? "fast" : "fallback",
           fast_expected ? "fast" : "fallback");
}

// ================================================================ 1. forward
// o_mode: 0 bf16, 1 fp32, 2 none (state only).
static void test_fwd(int B, int T, int H, int K, int V, int use_g, float normalizer, int h0_mode, int want_ht,
                     int o_mode) {
    sg_in r;
    sg_make(&r, B, T, H, K, V, use_g, normalizer);
    float *h0 = h0_mode != H0_NONE ? rand_host(r.ns, 0.5f) : NULL;
    float *o_ref = pn_calloc(r.nv ? r.nv : 1, sizeof(float)), *ht_ref = pn_calloc(r.ns, sizeof(float));
    float *gz;
    const pn_rec_shape s = {B, T, H, K, V, r.scale};
    op_cpu_fwd(&s, r.q, r.k, r.v, cpu_gate(&r, &gz), h0, o_ref, ht_ref);

    float *d_h0 = h0 ? dev_f32(h0, r.ns) : NULL;
    void *d_o = o_mode == 2 ? NULL : dev_poisoned(r.nv * (o_mode == 1 ? 4 : 2));
    float *d_ht = NULL;
    if (h0_mode == H0_INPLACE)
        d_ht = d_h0;
    else if (want_ht)
        d_ht = dev_poisoned(r.ns * sizeof(float));
    op_fwd(1)(B, T, H, K, V, r.scale, r.dq, r.dk, r.dv, r.dg, d_h0, d_o, o_mode == 1 ? PN_CUDA_F32 : PN_CUDA_BF16,
              d_ht);
    char what[200];
    sg_what(what, sizeof what, &r, "fwd");
    const char *hm = h0_mode == H0_NONE ? "none" : h0_mode == H0_RANDOM ? "rand" : "rand, ht==h0";
    expect_fast(op_supported(K, V), what);
    if (d_o) {
        float *got = get_out(d_o, r.nv, o_mode == 1);
        report(rel_err(got, o_ref, r.nv), TOL, "%s h0=%s: o %s", what, hm, o_mode == 1 ? "fp32" : "bf16");
        free(got);
    }
    if (d_ht) {
        float *got = get_f32(d_ht, r.ns);
        report(rel_err(got, ht_ref, r.ns), TOL, "%s h0=%s%s: ht fp32", what, hm, d_o ? "" : ", o none");
        free(got);
    }
    sg_free(&r), free(h0), free(o_ref), free(ht_ref), free(gz);
    pn_cuda_free(d_o);
    if (d_ht && d_ht != d_h0) pn_cuda_free(d_ht);
    pn_cuda_free(d_h0);
}

// ================================================================ 2. backward
// mask bit i drops gradient i (dq, dk, dv, dg, dh0): NULL on both sides.
static void test_bwd(int B, int T, int H, int K, int V, int use_g, float normalizer, int with_h0, int with_dht,
                     int mask, int repeat) {
    sg_in r;
    sg_make(&r, B, T, H, K, V, use_g, normalizer);
    float *h0 = with_h0 ? rand_host(r.ns, 0.5f) : NULL;
    float *dout = rand_host(r.nv, 1.0f), *dht = with_dht ? rand_host(r.ns, 1.0f) : NULL;
    const char *names[5] = {"dq", "dk", "dv", "dg", "dh0"};
    const size_t sizes[5] = {r.nqk, r.nqk, r.nv, r.ng, r.ns};
    if (!use_g) mask |= 1 << 3;  // no gate: dg is not computed (and must stay untouched)
    float *start[5] = {0}, *ref[5] = {0}, *dev[5] = {0};
    for (int i = 0; i < 5; i++) {
        if ((mask >> i) & 1) continue;
        start[i] = rand_host(sizes[i], 1.0f);
        ref[i] = pn_malloc(sizes[i] * sizeof(float));
        memcpy(ref[i], start[i], sizes[i] * sizeof(float));
        dev[i] = dev_f32(start[i], sizes[i]);
    }
    // g NULL: a dg buffer the op must leave alone
    float *dg_spare = use_g ? NULL : rand_host(r.ng, 1.0f);
    float *d_dg_spare = use_g ? NULL : dev_f32(dg_spare, r.ng);
    float *gz;
    const pn_rec_shape s = {B, T, H, K, V, r.scale};
    op_cpu_bwd(&s, r.q, r.k, r.v, cpu_gate(&r, &gz), h0, dout, dht, ref[0], ref[1], ref[2], ref[3], ref[4]);

    float *d_h0 = h0 ? dev_f32(h0, r.ns) : NULL, *d_dout = dev_f32(dout, r.nv);
    float *d_dht = dht ? dev_f32(dht, r.ns) : NULL;
    char base[200], what[260];
    sg_what(base, sizeof base, &r, "bwd");
    snprintf(what, sizeof what, "%s h0=%d dht=%d mask=%d", base, with_h0, with_dht, mask);
    float *keep[5] = {0};
    for (int run = 0; run < (repeat ? 2 : 1); run++) {
        if (run)
            for (int i = 0; i < 5; i++)
                if (dev[i]) pn_cuda_upload(dev[i], start[i], sizes[i] * sizeof(float));
        op_bwd(1)(B, T, H, K, V, r.scale, r.dq, r.dk, r.dv, r.dg, d_h0, d_dout, d_dht, dev[0], dev[1], dev[2],
                  use_g ? dev[3] : d_dg_spare, dev[4]);
        if (run == 0) expect_fast(op_supported(K, V), what);
        for (int i = 0; i < 5; i++) {
            if (!dev[i]) continue;
            float *got = get_f32(dev[i], sizes[i]);
            if (run == 0) {
                float *upd = pn_malloc(sizes[i] * sizeof(float)), *rup = pn_malloc(sizes[i] * sizeof(float));
                for (size_t e = 0; e < sizes[i]; e++) upd[e] = got[e] - start[i][e], rup[e] = ref[i][e] - start[i][e];
                report(rel_err(upd, rup, sizes[i]), TOL, "%s: %s fp32 +=", what, names[i]);
                free(upd), free(rup);
                if (repeat) keep[i] = got, got = NULL;
            } else {
                size_t diff = 0;
                for (size_t e = 0; e < sizes[i]; e++) diff += memcmp(&got[e], &keep[i][e], sizeof(float)) != 0;
                report((double)diff, 0, "%s: %s bitwise repeatable (differing elements)", what, names[i]);
            }
            free(got);
        }
    }
    if (d_dg_spare) {
        float *got = get_f32(d_dg_spare, r.ng);
        size_t diff = 0;
        for (size_t e = 0; e < r.ng; e++) diff += memcmp(&got[e], &dg_spare[e], sizeof(float)) != 0;
        report((double)diff, 0, "%s: dg untouched without a gate (changed elements)", what);
        free(got);
    }
    for (int i = 0; i < 5; i++) free(start[i]), free(ref[i]), free(keep[i]), pn_cuda_free(dev[i]);
    sg_free(&r), free(h0), free(dout), free(dht), free(gz), free(dg_spare);
    pn_cuda_free(d_h0), pn_cuda_free(d_dout), pn_cuda_free(d_dht), pn_cuda_free(d_dg_spare);
}

// ================================================================ 4. against the fp32 kernels, timed
static float time_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    return ms;
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_vs_fp32(void) {
    const char *nt = getenv("PN_GDN_NO_TIMING");
    const int timed = !(nt && *nt && strcmp(nt, "0"));
    // untimed (e.g. under compute-sanitizer): the same comparison at a small shape
    const int B = timed ? 8 : 1, T = timed ? 4096 : 520, H = timed ? 12 : 2, K = 128, V = 128;
    sg_in r;
    const float norm = g_gla ? 16.0f : 10.0f;
    sg_make(&r, B, T, H, K, V, 1, norm);
    float *dout = rand_host(r.nv, 1.0f);
    float *d_dout = dev_f32(dout, r.nv);
    const size_t sizes[4] = {r.nqk, r.nqk, r.nv, r.ng};
    const char *names[4] = {"dq", "dk", "dv", "dg"};
    float *gd[2][4], *od[2];
    for (int f = 0; f < 2; f++) {
        od[f] = dev_poisoned(r.nv * sizeof(float));
        for (int i = 0; i < 4; i++) {
            gd[f][i] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, sizes[i] * sizeof(float));
            pn_cuda_memset(gd[f][i], 0, sizes[i] * sizeof(float));
        }
    }
    for (int f = 0; f < 2; f++) {
        op_fwd(f)(B, T, H, K, V, r.scale, r.dq, r.dk, r.dv, r.dg, NULL, od[f], PN_CUDA_F32, NULL);
        op_bwd(f)(B, T, H, K, V, r.scale, r.dq, r.dk, r.dv, r.dg, NULL, d_dout, NULL, gd[f][0], gd[f][1], gd[f][2],
                  gd[f][3], NULL);
    }
    char what[120];
    snprintf(what, sizeof what, "%s fast vs fp32 kernels B=%d T=%d H=%d K=%d V=%d g/%g", op_name(), B, T, H, K, V,
             norm);
    {
        float *a = get_f32(od[1], r.nv), *b = get_f32(od[0], r.nv);
        report(rel_err(a, b, r.nv), TOL, "%s: o fp32", what);
        free(a), free(b);
    }
    for (int i = 0; i < 4; i++) {
        float *a = get_f32(gd[1][i], sizes[i]), *b = get_f32(gd[0][i], sizes[i]);
        report(rel_err(a, b, sizes[i]), TOL, "%s: %s", what, names[i]);
        free(a), free(b);
    }
    if (timed) {
        cudaEvent_t e0, e1;
        cudaEventCreate(&e0), cudaEventCreate(&e1);
        cudaStream_t st = (cudaStream_t)pn_cuda_stream_get();
        for (int f = 0; f < 2; f++)
            for (int bwd = 0; bwd < 2; bwd++) {
                float ms[10];
                for (int rep = -1; rep < 10; rep++) {
                    cudaEventRecord(e0, st);
                    op_fwd(f)(B, T, H, K, V, r.scale, r.dq, r.dk, r.dv, r.dg, NULL, od[f], PN_CUDA_BF16, NULL);
                    if (bwd)
                        op_bwd(f)(B, T, H, K, V, r.scale, r.dq, r.dk, r.dv, r.dg, NULL, d_dout, NULL, gd[f][0],
                                  gd[f][1], gd[f][2], gd[f][3], NULL);
                    cudaEventRecord(e1, st);
                    cudaEventSynchronize(e1);
                    if (rep >= 0) ms[rep] = time_ms(e0, e1);
                    if (!f && bwd && rep >= 2) break;  // the fp32 backward is slow: 3 runs
                }
                const int n = !f && bwd ? 3 : 10;
                qsort(ms, (size_t)n, sizeof(float), cmp_float);
                printf("time %-4s %-40s %s: median %.3f ms of %d\n", op_name(),
                       f ? "fast (tensor cores)" : "fp32 (linear_ops.cu)", bwd ? "fwd+bwd" : "fwd", ms[n / 2], n);
            }
        cudaEventDestroy(e0), cudaEventDestroy(e1);
    }
    for (int f = 0; f < 2; f++) {
        pn_cuda_free(od[f]);
        for (int i = 0; i < 4; i++) pn_cuda_free(gd[f][i]);
    }
    sg_free(&r), free(dout), pn_cuda_free(d_dout);
}

static void run_sgla(void) {
    // 1. forward: (B, T, H, K, V, g, normalizer, h0, ht, o mode)
    test_fwd(1, 1, 1, 64, 64, 1, 1.0f, H0_RANDOM, 1, 1);
    test_fwd(2, 63, 2, 64, 128, 1, 1.0f, H0_NONE, 1, 0);
    test_fwd(1, 64, 3, 96, 96, 1, 10.0f, H0_RANDOM, 1, 1);
    test_fwd(1, 65, 2, 128, 32, 0, 1.0f, H0_RANDOM, 1, 0);
    test_fwd(2, 130, 2, 96, 160, 1, 10.0f, H0_INPLACE, 1, 1);
    test_fwd(2, 257, 2, 128, 256, 1, 10.0f, H0_RANDOM, 0, 0);
    test_fwd(1, 1000, 1, 64, 32, 0, 1.0f, H0_NONE, 1, 1);
    test_fwd(1, 1000, 2, 128, 64, 1, 1.0f, H0_RANDOM, 1, 2);
    test_fwd(3, 300, 8, 64, 64, 1, 10.0f, H0_NONE, 0, 0);
    test_fwd(1, 513, 1, 128, 128, 1, 10.0f, H0_INPLACE, 1, 2);
    // 2. backward: (B, T, H, K, V, g, normalizer, h0, dht, mask, repeat)
    test_bwd(1, 1, 2, 64, 64, 1, 1.0f, 1, 1, 0, 0);
    test_bwd(2, 63, 2, 64, 128, 1, 1.0f, 0, 1, 0, 1);
    test_bwd(1, 64, 3, 96, 96, 1, 10.0f, 1, 0, 0, 0);
    test_bwd(1, 65, 2, 128, 32, 0, 1.0f, 1, 1, 0, 0);
    test_bwd(2, 130, 2, 96, 160, 1, 10.0f, 1, 1, 0, 0);
    test_bwd(2, 257, 2, 128, 256, 1, 10.0f, 0, 0, 0, 0);
    test_bwd(1, 1000, 1, 64, 32, 1, 1.0f, 1, 1, 0, 0);
    test_bwd(3, 300, 8, 64, 64, 1, 10.0f, 0, 1, 0, 0);
    test_bwd(1, 200, 2, 128, 128, 1, 10.0f, 1, 1, 0x1 | 0x4, 0);  // dq, dv NULL
    test_bwd(1, 200, 2, 96, 64, 1, 1.0f, 1, 1, 0xF, 0);           // dh0 only: the reverse pass alone
    test_bwd(2, 100, 1, 64, 96, 1, 10.0f, 1, 1, 0x10, 0);         // dh0 NULL
    // 3. an unsupported shape runs the fp32 kernels
    test_fwd(1, 100, 2, 40, 30, 1, 10.0f, H0_RANDOM, 1, 1);
    test_bwd(1, 100, 2, 40, 30, 1, 10.0f, 1, 1, 0, 0);
}

// GLA: gk is always given (16: fla's GLA layer; 1: strong; SPIKY: channels at 20 × logsigmoid).
static void run_gla(void) {
    test_fwd(1, 1, 1, 64, 64, 1, 16.0f, H0_RANDOM, 1, 1);
    test_fwd(2, 63, 2, 64, 128, 1, 1.0f, H0_NONE, 1, 0);
    test_fwd(1, 64, 3, 96, 96, 1, SPIKY, H0_RANDOM, 1, 1);
    test_fwd(1, 65, 2, 128, 32, 1, 16.0f, H0_RANDOM, 1, 0);
    test_fwd(2, 130, 2, 96, 160, 1, 16.0f, H0_INPLACE, 1, 1);
    test_fwd(2, 257, 2, 128, 256, 1, SPIKY, H0_RANDOM, 0, 0);
    test_fwd(1, 1000, 1, 64, 32, 1, 1.0f, H0_NONE, 1, 1);
    test_fwd(1, 1000, 2, 128, 64, 1, 16.0f, H0_RANDOM, 1, 2);
    test_fwd(3, 300, 8, 64, 64, 1, 16.0f, H0_NONE, 0, 0);
    test_fwd(1, 513, 1, 128, 128, 1, SPIKY, H0_INPLACE, 1, 2);
    test_bwd(1, 1, 2, 64, 64, 1, 16.0f, 1, 1, 0, 0);
    test_bwd(2, 63, 2, 64, 128, 1, 1.0f, 0, 1, 0, 1);
    test_bwd(1, 64, 3, 96, 96, 1, SPIKY, 1, 0, 0, 0);
    test_bwd(1, 65, 2, 128, 32, 1, 16.0f, 1, 1, 0, 0);
    test_bwd(2, 130, 2, 96, 160, 1, 16.0f, 1, 1, 0, 0);
    test_bwd(2, 257, 2, 128, 256, 1, SPIKY, 0, 0, 0, 0);
    test_bwd(1, 1000, 1, 64, 32, 1, 1.0f, 1, 1, 0, 0);
    test_bwd(3, 300, 8, 64, 64, 1, 16.0f, 0, 1, 0, 1);
    test_bwd(1, 200, 2, 128, 128, 1, 16.0f, 1, 1, 0x1 | 0x4, 0);  // dq, dv NULL
    test_bwd(1, 200, 2, 96, 64, 1, 1.0f, 1, 1, 0xF, 0);           // dh0 only: the reverse pass alone
    test_bwd(2, 100, 1, 64, 96, 1, 16.0f, 1, 1, 0x10, 0);         // dh0 NULL
    test_bwd(1, 130, 2, 128, 128, 1, SPIKY, 1, 1, 0x7, 0);        // dgk and dh0 only
    test_fwd(1, 100, 2, 40, 30, 1, 16.0f, H0_RANDOM, 1, 1);
    test_bwd(1, 100, 2, 40, 30, 1, 16.0f, 1, 1, 0, 0);
}

static int op_wanted(const char *name) {
    const char *sel = getenv("PN_GLA_OPS");
    if (!sel || !*sel) return 1;
    const size_t n = strlen(name);
    for (const char *p = sel; (p = strstr(p, name)) != NULL; p += n)
        if ((p == sel || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

int main(void) {
    if (pn_cuda_device_count() < 1) {
        printf("test_cuda_gla_fast: no CUDA device (these tests run on the GPU machine)\n");
        return 1;
    }
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB\n", info.name, info.sm_major, info.sm_minor, info.multiprocessors,
           info.total_mem / 1073741824.0);
    const char *to = getenv("PN_SGLA_TIMING_ONLY");  // profiling aid (ncu): section 4 only
    const int timing_only = to && *to && *to != '0';
    for (g_gla = 0; g_gla < 2; g_gla++) {
        if (!op_wanted(op_name())) continue;
        if (!timing_only) (g_gla ? run_gla : run_sgla)();
        // 4. the fp32 kernels at the benchmark shape, and the timings
        test_vs_fp32();
    }
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
