// test_cuda_gdn_fast_bwd.c — the tensor-core gated delta rule backward
// (pn_cuda_gated_delta_bwd_fast, kernels/cuda/gdn_fast_bwd.cu) against its CPU twin
// pn_gated_delta_bwd in the recurrent form (chunk 0: token-level BPTT, state in double),
// then one check that it agrees with the plain CUDA backward (pn_cuda_gated_delta_bwd),
// one fallback check, the write form (pn_cuda_gated_delta_bwd_fast_write) against the
// adding one, and timings at the training target shape. The whole battery runs three times:
// the per-chunk gradient kernel's products on wgmma (pn_cuda_gdn_fast_bwd_debug_wgmma(1)) with
// the automatic reverse scan; on mma.sync (the default) with the automatic reverse scan; on
// mma.sync with the reverse scan forced to mma.sync (pn_cuda_gdn_fast_bwd_debug_dscan(0)).
// The automatic reverse scan runs on wgmma (gdn_wdscan.cuh) where V / 64 divides by 4 (the
// shapes with V = 256 and 512 below), else on mma.sync; every fast check also checks that
// the form it expects is the one that ran (pn_cuda_gdn_fast_bwd_debug_last_dscan). Each
// check's name says which forms ran ("[chunk wgmma, scan auto]", ...).
//
// Method (as tests/gpu/test_cuda_gdn.c):
//  - fresh random inputs for every check (a new Philox stream each time), never zeros;
//    q, k, v rounded to bf16 on the host first, so the CPU twin sees the GPU's inputs;
//  - gates as fla's tests: g = logsigmoid(N(0,1)) / normalizer (1 or 10), β = sigmoid(N(0,1));
//    k with std K^-1/2 without the in-op L2 norm; h0 ~ N(0, 0.5²), dout, dht ~ N(0, 1);
//  - every gradient buffer starts at random values (the op ADDS); the error is measured on
//    the update, got − start against ref − start; a NULL gradient (mask bit i: 1 dq, 2 dk,
//    4 dv, 8 dg, 16 dbeta, 32 dh0) must not be touched (nothing to check on the GPU side, the
//    op gets NULL); with g == NULL the dg buffer must come back unchanged (checked exactly);
//  - error = ‖gpu − cpu‖ / ‖cpu‖ in double; NaN anywhere fails.
// Tolerance TOL_BF16 = 1e-2: the fast path rounds the chunk operands to bf16 before the
// tensor cores (q, k, v are bf16 already; A, P, the chunk states S and state gradients dS,
// dO, and the intermediate chunk products are rounded, ~2^-9 relative each), with fp32
// accumulation, as fla does; the CPU emulation of these kernels measured 1.5e-3 – 8e-3
// on the shapes below (GDN_NOTES.md §6). The agreement check (fast vs the fp32 CUDA path)
// uses the same tolerance, and so does the fallback check (K = 48 runs the fp32 path).
// Without a CUDA device the test prints "no CUDA device" and exits 1.
#include "core/common.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_gdn_fast.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "kernels/ops.h"
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>

#define TOL_BF16 1e-2
#define TOL_F32 1e-3
#define GPU_TEST_SEED 20251124
#include "gpu_test_util.h"

static const char *g_form = "";  // the chunk kernel's and the reverse scan's forms under test
static int g_dscan_auto = 1;      // 1: the reverse scan's automatic choice, 0: forced to mma.sync

// Each case draws from its own Philox streams, seeded by its shape (not by the forms under
// test): the three batteries see the same inputs, whatever ran before. (Until 2026-11-23,
// session 15, the draws ran on from the previous check's, so each battery saw other inputs;
// one of them, B1 T130 H1 K64 V64 in the second battery, gave dg 1.04e-2 — the single-head dg
// conditioning of GDN_NOTES §6 — in results/gpu-tests/2026-11-23-h100-session15-gdn-wdscan-first.log.)
static void case_stream(const char *fmt, ...) {
    char key[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    g_stream = pn_hash_str(key) << 8;
}

// The reverse scan's form the backward must have run: wgmma (4) where the automatic choice
// is on and the 64-column tiles come in fours, else mma.sync (0); a fallback runs neither.
static int expected_dscan(int K, int V) {
    const int fast = pn_cuda_gated_delta_bwd_fast_supported(K, V);
    return fast && g_dscan_auto && V % 64 == 0 && (V / 64) % 4 == 0 ? 4 : 0;
}

typedef void (*bwd_fn)(int, int, int, int, int, float, int, const pn_bf16 *, const pn_bf16 *, const pn_bf16 *,
                       const float *, const float *, const float *, const float *, const float *, float *, float *,
                       float *, float *, float *, float *);

static const char *g_names[6] = {"dq", "dk", "dv", "dg", "dbeta", "dh0"};

// One backward on the GPU with the given op; gradients start at start[i] (NULL when mask
// bit i is set); returns the six results on the host (NULL where not wanted).
static void run_gpu(bwd_fn op, int B, int T, int H, int K, int V, int l2, const float *q, const float *k,
                    const float *v, const float *g, const float *beta, const float *h0, const float *dout,
                    const float *dht, float *const start[6], const size_t sizes[6], int mask, float *got[6]) {
    const size_t nqk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, ng = (size_t)B * T * H;
    const size_t ns = (size_t)B * H * K * V;
    const float scale = 1.0f / sqrtf((float)K);
    pn_bf16 *dq = dev_bf16(q, nqk), *dk = dev_bf16(k, nqk), *dv = dev_bf16(v, nv);
    float *dg = g ? dev_f32(g, ng) : NULL, *db = dev_f32(beta, ng), *d_dout = dev_f32(dout, nv);
    float *dh0 = h0 ? dev_f32(h0, ns) : NULL, *d_dht = dht ? dev_f32(dht, ns) : NULL;
    float *dev[6];
    for (int i = 0; i < 6; i++) dev[i] = (mask >> i) & 1 ? NULL : dev_f32(start[i], sizes[i]);
    op(B, T, H, K, V, scale, l2, dq, dk, dv, dg, db, dh0, d_dout, d_dht, dev[0], dev[1], dev[2], dev[3], dev[4], dev[5]);
    for (int i = 0; i < 6; i++) got[i] = dev[i] ? get_f32(dev[i], sizes[i]) : NULL;
    for (int i = 0; i < 6; i++) pn_cuda_free(dev[i]);
    pn_cuda_free(dq), pn_cuda_free(dk), pn_cuda_free(dv), pn_cuda_free(dg), pn_cuda_free(db), pn_cuda_free(d_dout);
    pn_cuda_free(dh0), pn_cuda_free(d_dht);
}

// use_g = 0: g = NULL (delta rule); then dg must stay exactly at its start values.
static void test_bwd(int B, int T, int H, int K, int V, int l2, float normalizer, int use_g, int with_h0,
                     int with_dht, int mask) {
    case_stream("bwd B=%d T=%d H=%d K=%d V=%d l2=%d n=%g g=%d h0=%d dht=%d mask=%d", B, T, H, K, V, l2,
                (double)normalizer, use_g, with_h0, with_dht, mask);
    const size_t nqk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, ng = (size_t)B * T * H;
    const size_t ns = (size_t)B * H * K * V;
    float *q, *k, *v, *g, *beta;
    make_qkv(nqk, nv, K, l2, &q, &k, &v);
    make_gates(ng, normalizer, &g, &beta);
    float *h0 = with_h0 ? rand_host(ns, 0.5f) : NULL;
    float *dout = rand_host(nv, 1.0f), *dht = with_dht ? rand_host(ns, 1.0f) : NULL;
    const float scale = 1.0f / sqrtf((float)K);
    pn_rec_shape s = {B, T, H, K, V, scale};
    const size_t sizes[6] = {nqk, nqk, nv, ng, ng, ns};
    float *start[6], *ref[6], *got[6];
    for (int i = 0; i < 6; i++) {
        start[i] = rand_host(sizes[i], 1.0f);
        ref[i] = pn_malloc((sizes[i] ? sizes[i] : 1) * sizeof(float));
        memcpy(ref[i], start[i], sizes[i] * sizeof(float));
    }
    pn_gated_delta_bwd(&s, 0, l2, q, k, v, use_g ? g : NULL, beta, h0, dout, dht, ref[0], ref[1], ref[2], ref[3],
                       ref[4], ref[5]);
    run_gpu(pn_cuda_gated_delta_bwd_fast, B, T, H, K, V, l2, q, k, v, use_g ? g : NULL, beta, h0, dout, dht, start,
            sizes, mask, got);
    const int ran = pn_cuda_gdn_fast_bwd_debug_last_dscan();
    char what[200];
    snprintf(what, sizeof what, "fast bwd %s B=%d T=%d H=%d K=%d V=%d l2=%d %s h0=%d dht=%d", g_form, B, T, H, K, V,
             l2, use_g ? (normalizer > 1 ? "g/10" : "g/1") : "g=NULL", with_h0, with_dht);
    report(ran == expected_dscan(K, V) ? 0.0 : INFINITY, TOL_BF16, "%s: reverse scan form %s (expected %s)", what,
           ran ? "wgmma" : "mma.sync", expected_dscan(K, V) ? "wgmma" : "mma.sync");
    for (int i = 0; i < 6; i++) {
        if (!got[i]) continue;
        if (i == 3 && !use_g) {  // no gate: dg untouched, bit for bit
            const int same = memcmp(got[i], start[i], sizes[i] * sizeof(float)) == 0;
            report(same ? 0.0 : INFINITY, TOL_BF16, "%s: dg untouched", what);
            continue;
        }
        for (size_t e = 0; e < sizes[i]; e++) got[i][e] -= start[i][e], ref[i][e] -= start[i][e];
        report(rel_err(got[i], ref[i], sizes[i]), TOL_BF16, "%s: %s +=", what, g_names[i]);
    }
    for (int i = 0; i < 6; i++) free(start[i]), free(ref[i]), free(got[i]);
    free(q), free(k), free(v), free(g), free(beta), free(h0), free(dout), free(dht);
}

// The write form (pn_cuda_gated_delta_bwd_fast_write): dq, dk, dv, dg, dβ start as NaN
// (poison: any element not written, or read before being written, stays or turns NaN) and
// must equal, bit for bit, the adding form run from zeros; dh0 starts random and is added
// to (checked on the update); against the CPU twin as test_bwd. With g = NULL the NaN dg
// must come back untouched. K = 48 takes the fallback (zero fill, then the fp32 path).
static void test_write(int B, int T, int H, int K, int V, int l2, int use_g) {
    case_stream("write B=%d T=%d H=%d K=%d V=%d l2=%d g=%d", B, T, H, K, V, l2, use_g);
    const size_t nqk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, ng = (size_t)B * T * H;
    const size_t ns = (size_t)B * H * K * V;
    float *q, *k, *v, *g, *beta;
    make_qkv(nqk, nv, K, l2, &q, &k, &v);
    make_gates(ng, 1.0f, &g, &beta);
    float *h0 = rand_host(ns, 0.5f), *dout = rand_host(nv, 1.0f), *dht = rand_host(ns, 1.0f);
    const float scale = 1.0f / sqrtf((float)K);
    pn_rec_shape s = {B, T, H, K, V, scale};
    const size_t sizes[6] = {nqk, nqk, nv, ng, ng, ns};
    float *nan_start[6], *zero_start[6], *ref[6], *got[6], *add[6];
    for (int i = 0; i < 6; i++) {
        const size_t n = sizes[i] ? sizes[i] : 1;
        nan_start[i] = pn_malloc(n * sizeof(float));
        for (size_t e = 0; e < n; e++) nan_start[i][e] = NAN;
        zero_start[i] = pn_calloc(n, sizeof(float));
        ref[i] = pn_calloc(n, sizeof(float));
    }
    float *dh0_start = rand_host(ns, 1.0f);
    memcpy(nan_start[5], dh0_start, ns * sizeof(float));
    memcpy(zero_start[5], dh0_start, ns * sizeof(float));
    memcpy(ref[5], dh0_start, ns * sizeof(float));
    pn_gated_delta_bwd(&s, 0, l2, q, k, v, use_g ? g : NULL, beta, h0, dout, dht, ref[0], ref[1], ref[2], ref[3],
                       ref[4], ref[5]);
    run_gpu(pn_cuda_gated_delta_bwd_fast_write, B, T, H, K, V, l2, q, k, v, use_g ? g : NULL, beta, h0, dout, dht,
            nan_start, sizes, 0, got);
    run_gpu(pn_cuda_gated_delta_bwd_fast, B, T, H, K, V, l2, q, k, v, use_g ? g : NULL, beta, h0, dout, dht,
            zero_start, sizes, 0, add);
    char what[200];
    snprintf(what, sizeof what, "fast bwd (write) %s B=%d T=%d H=%d K=%d V=%d l2=%d %s", g_form, B, T, H, K, V, l2,
             use_g ? "g/1" : "g=NULL");
    for (int i = 0; i < 6; i++) {
        if (i == 3 && !use_g) {  // no gate: the NaN dg untouched
            size_t touched = 0;
            for (size_t e = 0; e < sizes[i]; e++) touched += !isnan(got[i][e]);
            report(touched ? INFINITY : 0.0, 0.0, "%s: dg untouched (%zu elements changed)", what, touched);
            continue;
        }
        const int same = memcmp(got[i], add[i], sizes[i] * sizeof(float)) == 0;
        report(same ? 0.0 : INFINITY, 0.0, "%s: %s bitwise as the adding form from %s", what, g_names[i],
               i == 5 ? "the same start" : "zeros");
        if (i == 5)
            for (size_t e = 0; e < sizes[i]; e++) got[i][e] -= dh0_start[e], ref[i][e] -= dh0_start[e];
        report(rel_err(got[i], ref[i], sizes[i]), TOL_BF16, "%s: %s %s", what, g_names[i], i == 5 ? "+=" : "=");
    }
    for (int i = 0; i < 6; i++) free(nan_start[i]), free(zero_start[i]), free(ref[i]), free(got[i]), free(add[i]);
    free(dh0_start);
    free(q), free(k), free(v), free(g), free(beta), free(h0), free(dout), free(dht);
}

// The fast and the plain CUDA backward on the same inputs (all gradients, start 0 + random).
static void test_agree(int B, int T, int H, int K, int V, int l2, float normalizer, double tol) {
    case_stream("agree B=%d T=%d H=%d K=%d V=%d l2=%d n=%g", B, T, H, K, V, l2, (double)normalizer);
    const size_t nqk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, ng = (size_t)B * T * H;
    const size_t ns = (size_t)B * H * K * V;
    float *q, *k, *v, *g, *beta;
    make_qkv(nqk, nv, K, l2, &q, &k, &v);
    make_gates(ng, normalizer, &g, &beta);
    float *h0 = rand_host(ns, 0.5f), *dout = rand_host(nv, 1.0f), *dht = rand_host(ns, 1.0f);
    const size_t sizes[6] = {nqk, nqk, nv, ng, ng, ns};
    float *start[6], *a[6], *b[6];
    for (int i = 0; i < 6; i++) start[i] = rand_host(sizes[i], 1.0f);
    run_gpu(pn_cuda_gated_delta_bwd_fast, B, T, H, K, V, l2, q, k, v, g, beta, h0, dout, dht, start, sizes, 0, a);
    run_gpu(pn_cuda_gated_delta_bwd, B, T, H, K, V, l2, q, k, v, g, beta, h0, dout, dht, start, sizes, 0, b);
    for (int i = 0; i < 6; i++) {
        for (size_t e = 0; e < sizes[i]; e++) a[i][e] -= start[i][e], b[i][e] -= start[i][e];
        report(rel_err(a[i], b[i], sizes[i]), tol, "fast %s vs plain CUDA bwd B=%d T=%d H=%d K=%d V=%d l2=%d: %s",
               g_form, B, T, H, K, V, l2, g_names[i]);
    }
    for (int i = 0; i < 6; i++) free(start[i]), free(a[i]), free(b[i]);
    free(q), free(k), free(v), free(g), free(beta), free(h0), free(dout), free(dht);
}

// Two scheduling choices that must not change a bit: the reverse scan and the state pass on
// two streams (pn_cuda_gdn_fast_bwd_debug_overlap(1), the default) or one after the other, and
// the per-chunk kernel's S0, dS1, V tiles double-buffered (pn_cuda_gdn_fast_bwd_debug_chunk_db(1),
// the default, K <= 96) or fetched at each tile's start. Each variant against both off, every
// gradient bitwise, in the adding form (or the write form). Before each variant a call on
// another dout leaves other values in the arena's scratch blocks, so a per-chunk kernel that
// did not wait for the side stream, or read a tile set before its fetch landed, would differ.
static void test_variants(int B, int T, int H, int K, int V, int write) {
    case_stream("variants B=%d T=%d H=%d K=%d V=%d write=%d", B, T, H, K, V, write);
    const size_t nqk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, ng = (size_t)B * T * H;
    const size_t ns = (size_t)B * H * K * V;
    float *q, *k, *v, *g, *beta;
    make_qkv(nqk, nv, K, 1, &q, &k, &v);
    make_gates(ng, 1.0f, &g, &beta);
    float *h0 = rand_host(ns, 0.5f), *dout = rand_host(nv, 1.0f), *dout2 = rand_host(nv, 1.0f);
    float *dht = rand_host(ns, 1.0f);
    const size_t sizes[6] = {nqk, nqk, nv, ng, ng, ns};
    float *start[6], *ref[6], *got[6], *x[6];
    for (int i = 0; i < 6; i++) start[i] = rand_host(sizes[i], 1.0f);
    bwd_fn op = write ? pn_cuda_gated_delta_bwd_fast_write : pn_cuda_gated_delta_bwd_fast;
    pn_cuda_gdn_fast_bwd_debug_overlap(0);
    pn_cuda_gdn_fast_bwd_debug_chunk_db(0);
    run_gpu(op, B, T, H, K, V, 1, q, k, v, g, beta, h0, dout, dht, start, sizes, 0, ref);
    static const char *names[3] = {"scans overlapped", "chunk tiles double-buffered", "both"};
    for (int var = 1; var <= 3; var++) {
        pn_cuda_gdn_fast_bwd_debug_overlap(0);
        pn_cuda_gdn_fast_bwd_debug_chunk_db(0);
        run_gpu(op, B, T, H, K, V, 1, q, k, v, g, beta, h0, dout2, dht, start, sizes, 0, x);
        pn_cuda_gdn_fast_bwd_debug_overlap(var & 1);
        pn_cuda_gdn_fast_bwd_debug_chunk_db(var >> 1);
        run_gpu(op, B, T, H, K, V, 1, q, k, v, g, beta, h0, dout, dht, start, sizes, 0, got);
        for (int i = 0; i < 6; i++) {
            const int same = memcmp(got[i], ref[i], sizes[i] * sizeof(float)) == 0;
            report(same ? 0.0 : INFINITY, 0.0, "fast bwd%s %s B=%d T=%d H=%d K=%d V=%d: %s bitwise, %s / neither",
                   write ? " (write)" : "", g_form, B, T, H, K, V, g_names[i], names[var - 1]);
            free(got[i]), free(x[i]);
        }
    }
    pn_cuda_gdn_fast_bwd_debug_overlap(1);
    pn_cuda_gdn_fast_bwd_debug_chunk_db(1);
    for (int i = 0; i < 6; i++) free(start[i]), free(ref[i]);
    free(q), free(k), free(v), free(g), free(beta), free(h0), free(dout), free(dout2), free(dht);
}

// The checks above over the shapes that matter (both chunk-kernel forms run it, see main).
static void battery(void) {
    // (B, T, H, K, V, l2, normalizer, use g, h0, dht, NULL-gradient mask)
    test_bwd(2, 1, 3, 64, 32, 1, 1.0f, 1, 1, 1, 0);
    test_bwd(1, 63, 2, 64, 128, 0, 1.0f, 1, 0, 1, 0);
    test_bwd(1, 64, 1, 96, 256, 1, 10.0f, 1, 1, 1, 0);
    test_bwd(2, 65, 1, 128, 128, 1, 1.0f, 0, 1, 0, 0);  // g = NULL
    test_bwd(1, 200, 3, 96, 160, 1, 10.0f, 1, 1, 1, 0);  // V = 160: a 32-column tile
    test_bwd(2, 200, 2, 128, 64, 0, 1.0f, 1, 0, 0, 0);
    test_bwd(1, 1000, 1, 64, 256, 1, 1.0f, 1, 1, 0, 0);
    test_bwd(1, 1000, 2, 128, 32, 1, 10.0f, 0, 1, 1, 0);  // g = NULL, V = 32
    test_bwd(2, 100, 2, 96, 96, 1, 1.0f, 1, 1, 1, 1 | 32);  // dq, dh0 not wanted
    test_bwd(1, 130, 1, 64, 64, 1, 1.0f, 1, 1, 1, 2 | 4 | 16);  // dk, dv, dbeta not wanted
    test_bwd(1, 77, 2, 48, 40, 1, 1.0f, 1, 1, 1, 0);  // K = 48, V = 40: falls back to the fp32 path
    test_bwd(2, 130, 1, 128, 256, 1, 1.0f, 1, 1, 1, 0);   // the wgmma reverse scan at K = 128, T % 64 != 0
    test_bwd(1, 100, 2, 64, 512, 0, 10.0f, 1, 1, 1, 0);   // two wgmma scan blocks per b·h
    test_bwd(1, 70, 1, 96, 256, 1, 1.0f, 1, 0, 0, 32);    // no dht, dh0 not wanted
    test_write(1, 130, 2, 96, 256, 1, 1);
    test_write(2, 65, 1, 128, 64, 0, 0);  // g = NULL, no l2
    test_write(1, 77, 2, 48, 40, 1, 1);   // fallback: zero fill, then the fp32 path

    test_agree(2, 300, 2, 96, 256, 1, 1.0f, TOL_BF16);
    test_variants(1, 1000, 3, 64, 128, 0);   // mma.sync reverse scan
    test_variants(2, 300, 2, 96, 160, 1);    // a 32-column last tile, write form
    test_variants(1, 200, 2, 128, 256, 0);   // K = 128: no second tile set
    const char *nt = getenv("PN_GDN_NO_TIMING");  // set under compute-sanitizer: the large shape would take hours
    if (!nt || !*nt || *nt == '0') {
        test_variants(4, 4096, 12, 96, 256, 0);  // half the training shape: wgmma reverse scan, 48 blocks
        test_variants(4, 4096, 12, 96, 256, 1);
    } else {
        printf("note: variants at B=4 T=4096 H=12 not run (PN_GDN_NO_TIMING set), not counted\n");
    }
}

// ---------------------------------------------------------------- timing
static cudaEvent_t g_ev0, g_ev1;

static void check_cuda(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "test_cuda_gdn_fast_bwd: %s failed: %s\n", what, cudaGetErrorString(e));
        exit(3);
    }
}

typedef struct {
    int B, T, H, K, V;
    pn_bf16 *q, *k, *v, *o;
    float *g, *beta, *h0, *ht, *dout, *dht, *dq, *dk, *dv, *dg, *db, *dh0;
    int which;  // 0 fast bwd, 1 fast fwd + fast bwd, 2 plain bwd
} tctx;

static void run_case(tctx *c) {
    const float scale = 1.0f / sqrtf((float)c->K);
    if (c->which == 1)
        pn_cuda_gated_delta_fwd_fast(c->B, c->T, c->H, c->K, c->V, scale, 1, c->q, c->k, c->v, c->g, c->beta, c->h0,
                                     c->o, PN_CUDA_BF16, c->ht);
    bwd_fn op = c->which == 2 ? pn_cuda_gated_delta_bwd : pn_cuda_gated_delta_bwd_fast;
    op(c->B, c->T, c->H, c->K, c->V, scale, 1, c->q, c->k, c->v, c->g, c->beta, c->h0, c->dout, c->dht, c->dq, c->dk,
       c->dv, c->dg, c->db, c->dh0);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double time_median(tctx *c, int warm, int reps) {
    cudaStream_t st = (cudaStream_t)pn_cuda_stream_get();
    for (int i = 0; i < warm; i++) run_case(c);
    double *ms = pn_malloc((size_t)reps * sizeof(double));
    for (int i = 0; i < reps; i++) {
        check_cuda(cudaEventRecord(g_ev0, st), "cudaEventRecord");
        run_case(c);
        check_cuda(cudaEventRecord(g_ev1, st), "cudaEventRecord");
        check_cuda(cudaEventSynchronize(g_ev1), "cudaEventSynchronize");
        float t = 0;
        check_cuda(cudaEventElapsedTime(&t, g_ev0, g_ev1), "cudaEventElapsedTime");
        ms[i] = t;
    }
    qsort(ms, (size_t)reps, sizeof(double), cmp_double);
    const double m = ms[reps / 2];
    free(ms);
    return m;
}

static void timings(void) {
    check_cuda(cudaEventCreate(&g_ev0), "cudaEventCreate");
    check_cuda(cudaEventCreate(&g_ev1), "cudaEventCreate");
    tctx c;
    memset(&c, 0, sizeof c);
    c.B = 8, c.T = 4096, c.H = 12, c.K = 96, c.V = 256;
    const size_t tok = (size_t)c.B * c.T * c.H, nqk = tok * c.K, nv = tok * c.V, ns = (size_t)c.B * c.H * c.K * c.V;
    float *q, *k, *v, *g, *beta;
    make_qkv(nqk, nv, c.K, 1, &q, &k, &v);
    make_gates(tok, 1.0f, &g, &beta);
    c.q = dev_bf16(q, nqk), c.k = dev_bf16(k, nqk), c.v = dev_bf16(v, nv);
    c.g = dev_f32(g, tok), c.beta = dev_f32(beta, tok);
    free(q), free(k), free(v), free(g), free(beta);
    float *x = rand_host(nv, 1.0f);
    c.dout = dev_f32(x, nv);
    free(x);
    x = rand_host(ns, 0.5f);
    c.h0 = dev_f32(x, ns);
    free(x);
    c.o = dev_poisoned(nv * 2), c.ht = dev_poisoned(ns * 4);
    c.dq = dev_poisoned(nqk * 4), c.dk = dev_poisoned(nqk * 4), c.dv = dev_poisoned(nv * 4);
    c.dg = dev_poisoned(tok * 4), c.db = dev_poisoned(tok * 4), c.dh0 = dev_poisoned(ns * 4);
    c.which = 0;
    pn_cuda_gdn_fast_bwd_debug_wgmma(1);
    const double twg = time_median(&c, 2, 10);
    pn_cuda_gdn_fast_bwd_debug_wgmma(0);
    pn_cuda_gdn_fast_bwd_debug_dscan(0);
    const double tds = time_median(&c, 2, 10);
    pn_cuda_gdn_fast_bwd_debug_dscan(-1);
    const double tb = time_median(&c, 2, 10);
    printf("timing: fast bwd, reverse scan on wgmma (automatic here) %.3f ms, on mma.sync %.3f ms\n", tb, tds);
    pn_cuda_gdn_fast_bwd_debug_overlap(0);  // the reverse scan and the state pass one after the other
    const double tser = time_median(&c, 2, 10);
    pn_cuda_gdn_fast_bwd_debug_chunk_db(0);  // and the chunk kernel's tiles fetched at each start
    const double tnone = time_median(&c, 2, 10);
    pn_cuda_gdn_fast_bwd_debug_overlap(1);
    const double tndb = time_median(&c, 2, 10);
    pn_cuda_gdn_fast_bwd_debug_chunk_db(1);
    printf("timing: fast bwd %.3f ms (defaults: scans overlapped, chunk tiles double-buffered); scans serial %.3f ms; "
           "chunk tiles single %.3f ms; both off (session 16's form) %.3f ms\n", tb, tser, tndb, tnone);
    pn_cuda_gdn_fast_debug_bv(32);  // the sequential passes with 32-column tiles instead
    const double tb32 = time_median(&c, 2, 10);
    pn_cuda_gdn_fast_debug_bv(0);
    printf("timing: fast bwd, automatic V tile %.3f ms, 32 columns %.3f ms\n", tb, tb32);
    printf("timing: fast bwd, chunk kernel on wgmma %.3f ms, on mma.sync %.3f ms\n", twg, tb);
    c.which = 1;
    const double tfb = time_median(&c, 1, 10);
    c.which = 2;
    const double tp = time_median(&c, 1, 3);
    // Minimal bytes of the backward's contract: q, k, v (bf16), dout (fp32) read; dq, dk, dv
    // read and written (+=, fp32); g, β, dg, dβ, h0, dh0 small.
    const double bytes = (double)tok * (2 * c.K * 2 + c.V * 2 + c.V * 4 + 2 * 2 * c.K * 4 + 2 * c.V * 4);
    printf("timing: fast bwd B%d T%d H%d K%d V%d: %.3f ms (median of 10; contract floor %.3f ms at 2.97 TB/s)\n",
           c.B, c.T, c.H, c.K, c.V, tb, bytes / 2.97e12 * 1e3);
    printf("timing: fast fwd + fast bwd: %.3f ms (median of 10; target 1.5 ms)\n", tfb);
    printf("timing: plain CUDA bwd: %.3f ms (median of 3)\n", tp);
    pn_cuda_free(c.q), pn_cuda_free(c.k), pn_cuda_free(c.v), pn_cuda_free(c.o), pn_cuda_free(c.g);
    pn_cuda_free(c.beta), pn_cuda_free(c.h0), pn_cuda_free(c.ht), pn_cuda_free(c.dout), pn_cuda_free(c.dq);
    pn_cuda_free(c.dk), pn_cuda_free(c.dv), pn_cuda_free(c.dg), pn_cuda_free(c.db), pn_cuda_free(c.dh0);
    cudaEventDestroy(g_ev0);
    cudaEventDestroy(g_ev1);
}

int main(void) {
    if (pn_cuda_device_count() < 1) {
        printf("test_cuda_gdn_fast_bwd: no CUDA device (these tests run on the GPU machine)\n");
        return 1;
    }
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB\n", info.name, info.sm_major, info.sm_minor, info.multiprocessors,
           info.total_mem / 1073741824.0);
    const char *to = getenv("PN_GDN_TIMING_ONLY");  // profiling aid (ncu): timings only, no checks
    if (to && *to && *to != '0') {
        timings();
        pn_cuda_gemm_release();
        printf("test_cuda_gdn_fast_bwd: timings only, checks NOT run (exit 3)\n");
        return 3;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    static const char *forms[3] = {"[chunk wgmma, scan auto]", "[chunk mma.sync, scan auto]",
                                   "[chunk mma.sync, scan mma.sync]"};
    const char *only = getenv("PN_GDN_BWD_FORMS");  // e.g. "1": only those batteries (racecheck runs)
    for (int f = 0; f < 3; f++) {
        if (only && *only && !strchr(only, '0' + f)) continue;
        pn_cuda_gdn_fast_bwd_debug_wgmma(f == 0);
        g_dscan_auto = f < 2;
        pn_cuda_gdn_fast_bwd_debug_dscan(g_dscan_auto ? -1 : 0);
        g_form = forms[f];
        battery();
    }
    pn_cuda_gdn_fast_bwd_debug_wgmma(0);
    pn_cuda_gdn_fast_bwd_debug_dscan(-1);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("checks took %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    const char *nt = getenv("PN_GDN_NO_TIMING");  // 1: skip the timings (e.g. under compute-sanitizer)
    if (!nt || !*nt || *nt == '0') timings();
    pn_cuda_gemm_release();
    pn_cuda_sync();
    printf("test_cuda_gdn_fast_bwd: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
