// test_cuda_gdn.c — the CUDA gated delta rule (kernels/cuda/gdn.cu) against its CPU twin
// pn_gated_delta_fwd / pn_gated_delta_bwd in the recurrent form (chunk 0: token loop, state
// in double), then timings of the decode and forward target shapes.
//
// Backward: pn_cuda_gated_delta_bwd against the CPU's token-level BPTT (pn_gated_delta_bwd,
// chunk 0, double state), all six gradients, with and without h0 / dht / the L2 norm.
// Method (as tests/gpu/test_cuda_ops.c):
//  - fresh random inputs for every check (a new Philox stream each time), never zeros;
//  - q, k, v are rounded to bf16 on the host first and the CPU twin gets those same values,
//    so a check measures only the GPU's fp32 arithmetic and its output rounding;
//  - gates as fla's tests make them: g = logsigmoid(N(0,1)) / normalizer, normalizer in
//    {1, 10}; β = sigmoid(N(0,1)); without the in-op L2 norm, k is drawn with std K^-1/2
//    (norm ≈ 1, fla's tests F.normalize it) so that β‖k‖² < 2 and the recurrence is stable;
//  - outputs (o, ht) are poisoned with 0xFF (NaN) before the op runs: an element the op
//    forgets to write fails the check; error = ‖gpu − cpu‖ / ‖cpu‖ in double, NaN fails.
// Tolerances:
//  - TOL_BF16 = 1e-2 on bf16 outputs: one bf16 rounding is ≤ 2^-9 relative (~2e-3 rms).
//  - TOL_F32 = 1e-3 on fp32 outputs (o in fp32, the state ht, every gradient). Arithmetic: every value is
//    a sum of fp32 products over at most K (≤ 256) or C = 64 terms, rounding error
//    ~ sqrt(256) · 2^-24 ≈ 1e-6 relative per product stage; a chunk chains about five such
//    stages (K Kᵀ, the triangular solve, W/U, Vn = U − W S, the state update), and the
//    state carries the error of every earlier chunk forward, damped by e^g ≤ 1 and the
//    contraction (I − β k kᵀ) — at most NT = 16 chunks here, so ≲ 16 · 5 · 1e-6 ≈ 1e-4
//    in the worst (undamped, same-sign) case, ~1e-5 expected. The decode step is a single
//    stage. 1e-3 leaves a 10× margin over the worst case; a race, a missed row or a wrong
//    gate shows up as ≥ 1e-2.
// The timing section prints (never asserts) time, achieved rate and measured / floor, where
// the floor comes from the device's own measured copy bandwidth and bf16 GEMM rate.
// Without a CUDA device the test prints "no CUDA device" and exits 1.
#include "core/common.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda.h"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "kernels/ops.h"
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>

#define TOL_BF16 1e-2
#define TOL_F32 1e-3
#define GPU_TEST_SEED 20251123
#include "gpu_test_util.h"

// ---------------------------------------------------------------- decode step
// nsteps decode steps on the GPU (state in place) against one CPU call over T = nsteps.
static void test_step(int B, int H, int K, int V, int l2, float normalizer, int use_g, int o_f32, int nsteps) {
    const int T = nsteps;
    const size_t nqk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, ng = (size_t)B * T * H;
    const size_t ns = (size_t)B * H * K * V, sq = (size_t)B * H * K, sv = (size_t)B * H * V, sg = (size_t)B * H;
    float *q, *k, *v, *g, *beta;
    make_qkv(nqk, nv, K, l2, &q, &k, &v);
    make_gates(ng, normalizer, &g, &beta);
    float *h0 = rand_host(ns, 0.5f);
    const float scale = 1.0f / sqrtf((float)K);
    pn_rec_shape s = {B, T, H, K, V, scale};
    float *o_ref = pn_malloc(nv * sizeof(float)), *ht_ref = pn_malloc(ns * sizeof(float));
    pn_gated_delta_fwd(&s, 0, l2, q, k, v, use_g ? g : NULL, beta, h0, o_ref, ht_ref);

    float *d_state = dev_f32(h0, ns);
    float *o_got = pn_malloc(nv * sizeof(float));
    float *qs = pn_malloc(sq * sizeof(float)), *ks = pn_malloc(sq * sizeof(float)), *vs = pn_malloc(sv * sizeof(float));
    float *gs = pn_malloc(sg * sizeof(float)), *bs = pn_malloc(sg * sizeof(float));
    for (int t = 0; t < T; t++) {
        // Gather token t of every sequence: the step reads (B, H, ·) contiguously.
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const size_t src = ((size_t)b * T + t) * H + h, dst = (size_t)b * H + h;
                memcpy(qs + dst * K, q + src * K, (size_t)K * sizeof(float));
                memcpy(ks + dst * K, k + src * K, (size_t)K * sizeof(float));
                memcpy(vs + dst * V, v + src * V, (size_t)V * sizeof(float));
                gs[dst] = g[src], bs[dst] = beta[src];
            }
        pn_bf16 *dq = dev_bf16(qs, sq), *dk = dev_bf16(ks, sq), *dv = dev_bf16(vs, sv);
        float *dg = dev_f32(gs, sg), *db = dev_f32(bs, sg);
        void *d_o = dev_poisoned(sv * (o_f32 ? 4 : 2));
        pn_cuda_gated_delta_step(dq, dk, dv, use_g ? dg : NULL, db, d_state, d_o, o_f32 ? PN_CUDA_F32 : PN_CUDA_BF16,
                                 B, H, K, V, scale, l2);
        float *ot = get_out(d_o, sv, o_f32);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                memcpy(o_got + (((size_t)b * T + t) * H + h) * V, ot + ((size_t)b * H + h) * V,
                       (size_t)V * sizeof(float));
        free(ot);
        pn_cuda_free(dq), pn_cuda_free(dk), pn_cuda_free(dv), pn_cuda_free(dg), pn_cuda_free(db), pn_cuda_free(d_o);
    }
    float *st = get_out(d_state, ns, 1);
    char what[160];
    snprintf(what, sizeof what, "step B=%d H=%d K=%d V=%d l2=%d g/%g%s x%d steps", B, H, K, V, l2, normalizer,
             use_g ? "" : " (g=NULL)", nsteps);
    report(rel_err(o_got, o_ref, nv), o_f32 ? TOL_F32 : TOL_BF16, "%s: o %s", what, o_f32 ? "fp32" : "bf16");
    report(rel_err(st, ht_ref, ns), TOL_F32, "%s: state fp32 (in place)", what);
    free(q), free(k), free(v), free(g), free(beta), free(h0), free(o_ref), free(ht_ref), free(o_got), free(st);
    free(qs), free(ks), free(vs), free(gs), free(bs);
    pn_cuda_free(d_state);
}

// ---------------------------------------------------------------- chunked forward
enum { H0_NONE = 0, H0_RANDOM = 1, H0_INPLACE = 2 };  // INPLACE: ht == h0

static void test_fwd(int B, int T, int H, int K, int V, int l2, float normalizer, int h0_mode, int want_ht,
                     int o_f32) {
    const size_t nqk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, ng = (size_t)B * T * H;
    const size_t ns = (size_t)B * H * K * V;
    float *q, *k, *v, *g, *beta;
    make_qkv(nqk, nv, K, l2, &q, &k, &v);
    make_gates(ng, normalizer, &g, &beta);
    float *h0 = h0_mode != H0_NONE ? rand_host(ns, 0.5f) : NULL;
    const float scale = 1.0f / sqrtf((float)K);
    pn_rec_shape s = {B, T, H, K, V, scale};
    float *o_ref = pn_malloc((nv ? nv : 1) * sizeof(float)), *ht_ref = pn_malloc(ns * sizeof(float));
    pn_gated_delta_fwd(&s, 0, l2, q, k, v, g, beta, h0, o_ref, ht_ref);

    pn_bf16 *dq = dev_bf16(q, nqk), *dk = dev_bf16(k, nqk), *dv = dev_bf16(v, nv);
    float *dg = dev_f32(g, ng), *db = dev_f32(beta, ng);
    float *dh0 = h0 ? dev_f32(h0, ns) : NULL;
    void *d_o = dev_poisoned(nv * (o_f32 ? 4 : 2));
    float *dht = NULL;
    if (h0_mode == H0_INPLACE)
        dht = dh0;
    else if (want_ht)
        dht = dev_poisoned(ns * sizeof(float));
    pn_cuda_gated_delta_fwd(B, T, H, K, V, scale, l2, dq, dk, dv, dg, db, dh0, d_o, o_f32 ? PN_CUDA_F32 : PN_CUDA_BF16,
                            dht);
    char what[160];
    snprintf(what, sizeof what, "fwd B=%d T=%d H=%d K=%d V=%d l2=%d g/%g h0=%s", B, T, H, K, V, l2, normalizer,
             h0_mode == H0_NONE ? "none" : h0_mode == H0_RANDOM ? "rand" : "rand, ht==h0");
    float *got = get_out(d_o, nv, o_f32);
    report(rel_err(got, o_ref, nv), o_f32 ? TOL_F32 : TOL_BF16, "%s: o %s", what, o_f32 ? "fp32" : "bf16");
    free(got);
    if (dht) {
        got = get_out(dht, ns, 1);
        report(rel_err(got, ht_ref, ns), TOL_F32, "%s: ht fp32", what);
        free(got);
    }
    free(q), free(k), free(v), free(g), free(beta), free(h0), free(o_ref), free(ht_ref);
    pn_cuda_free(dq), pn_cuda_free(dk), pn_cuda_free(dv), pn_cuda_free(dg), pn_cuda_free(db), pn_cuda_free(d_o);
    if (dht && dht != dh0) pn_cuda_free(dht);
    pn_cuda_free(dh0);
}

// ---------------------------------------------------------------- chunked backward
// Gradients accumulate into random start values (a forgotten element keeps its start
// value); the error is measured on the update (got − start vs ref − start), which the
// start values would otherwise dominate. mask bit i drops gradient i (NULL pointer):
// 1 dq, 2 dk, 4 dv, 8 dg, 16 dbeta, 32 dh0.
static void test_bwd(int B, int T, int H, int K, int V, int l2, float normalizer, int with_h0, int with_dht,
                     int mask) {
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
    const char *names[6] = {"dq", "dk", "dv", "dg", "dbeta", "dh0"};
    float *start[6], *ref[6], *dev[6];
    for (int i = 0; i < 6; i++) {
        start[i] = rand_host(sizes[i], 1.0f);
        ref[i] = pn_malloc((sizes[i] ? sizes[i] : 1) * sizeof(float));
        memcpy(ref[i], start[i], sizes[i] * sizeof(float));
        dev[i] = (mask >> i) & 1 ? NULL : dev_f32(start[i], sizes[i]);
    }
    pn_gated_delta_bwd(&s, 0, l2, q, k, v, g, beta, h0, dout, dht, ref[0], ref[1], ref[2], ref[3], ref[4], ref[5]);

    pn_bf16 *dq = dev_bf16(q, nqk), *dk = dev_bf16(k, nqk), *dv = dev_bf16(v, nv);
    float *dg = dev_f32(g, ng), *db = dev_f32(beta, ng), *d_dout = dev_f32(dout, nv);
    float *dh0 = h0 ? dev_f32(h0, ns) : NULL, *d_dht = dht ? dev_f32(dht, ns) : NULL;
    pn_cuda_gated_delta_bwd(B, T, H, K, V, scale, l2, dq, dk, dv, dg, db, dh0, d_dout, d_dht, dev[0], dev[1], dev[2],
                            dev[3], dev[4], dev[5]);
    for (int i = 0; i < 6; i++) {
        if (!dev[i]) continue;
        float *got = get_out(dev[i], sizes[i], 1);
        for (size_t e = 0; e < sizes[i]; e++) got[e] -= start[i][e], ref[i][e] -= start[i][e];
        report(rel_err(got, ref[i], sizes[i]), TOL_F32, "bwd B=%d T=%d H=%d K=%d V=%d l2=%d g/%g h0=%d dht=%d: %s fp32 +=",
               B, T, H, K, V, l2, normalizer, with_h0, with_dht, names[i]);
        free(got);
    }
    for (int i = 0; i < 6; i++) free(start[i]), free(ref[i]), pn_cuda_free(dev[i]);
    free(q), free(k), free(v), free(g), free(beta), free(h0), free(dout), free(dht);
    pn_cuda_free(dq), pn_cuda_free(dk), pn_cuda_free(dv), pn_cuda_free(dg), pn_cuda_free(db), pn_cuda_free(d_dout);
    pn_cuda_free(dh0), pn_cuda_free(d_dht);
}

// ---------------------------------------------------------------- timing
static cudaEvent_t g_ev0, g_ev1;

static void check_cuda(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "test_cuda_gdn: %s failed: %s\n", what, cudaGetErrorString(e));
        exit(3);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Median over `reps` timed runs (ms) after `warm` untimed ones; run(i) does run i.
typedef void (*run_fn)(void *ctx, int i);
static double time_median(run_fn run, void *ctx, int warm, int reps) {
    cudaStream_t st = (cudaStream_t)pn_cuda_stream_get();
    for (int i = 0; i < warm; i++) run(ctx, i);
    double *ms = pn_malloc((size_t)reps * sizeof(double));
    for (int i = 0; i < reps; i++) {
        check_cuda(cudaEventRecord(g_ev0, st), "cudaEventRecord");
        run(ctx, warm + i);
        check_cuda(cudaEventRecord(g_ev1, st), "cudaEventRecord");
        check_cuda(cudaEventSynchronize(g_ev1), "cudaEventSynchronize");
        float t = 0;
        check_cuda(cudaEventElapsedTime(&t, g_ev0, g_ev1), "cudaEventElapsedTime");
        ms[i] = t;
    }
    qsort(ms, (size_t)reps, sizeof(double), cmp_double);
    double m = ms[reps / 2];
    free(ms);
    return m;
}

typedef struct {
    void *dst, *src;
    size_t bytes;
    pn_bf16 *a, *b;
    float *c;
    int n;
} ceil_ctx;
static void run_copy(void *p, int i) {
    ceil_ctx *c = p;
    (void)i;
    pn_cuda_copy(c->dst, c->src, c->bytes);
}
static void run_gemm(void *p, int i) {
    ceil_ctx *c = p;
    (void)i;
    pn_cuda_gemm(0, 1, c->n, c->n, c->n, 1.0f, c->a, c->n, c->b, c->n, 0.0f, c->c, PN_CUDA_F32, c->n, NULL);
}

#define NSETS 3
typedef struct {
    pn_bf16 *q[NSETS], *k[NSETS], *v[NSETS];
    float *g[NSETS], *beta[NSETS], *state[NSETS], *ht[NSETS];
    void *o[NSETS];
    float *dout, *dq, *dk, *dv, *dg, *db, *dh0;  // backward timing only
    int B, T, H, K, V;
} gdn_ctx;
static void run_step(void *p, int i) {
    gdn_ctx *c = p;
    const int s = i % NSETS;
    pn_cuda_gated_delta_step(c->q[s], c->k[s], c->v[s], c->g[s], c->beta[s], c->state[s], c->o[s], PN_CUDA_BF16, c->B,
                             c->H, c->K, c->V, 1.0f / sqrtf((float)c->K), 1);
}
static void run_bwd(void *p, int i) {
    gdn_ctx *c = p;
    const int s = i % NSETS;
    pn_cuda_gated_delta_bwd(c->B, c->T, c->H, c->K, c->V, 1.0f / sqrtf((float)c->K), 1, c->q[s], c->k[s], c->v[s],
                            c->g[s], c->beta[s], c->state[s], c->dout, c->ht[s], c->dq, c->dk, c->dv, c->dg, c->db,
                            c->dh0);
}
static void run_fwd(void *p, int i) {
    gdn_ctx *c = p;
    const int s = i % NSETS;
    pn_cuda_gated_delta_fwd(c->B, c->T, c->H, c->K, c->V, 1.0f / sqrtf((float)c->K), 1, c->q[s], c->k[s], c->v[s],
                            c->g[s], c->beta[s], c->state[s], c->o[s], PN_CUDA_BF16, c->ht[s]);
}

static void ctx_fill(gdn_ctx *c, int with_ht) {
    const size_t nqk = (size_t)c->B * c->T * c->H * c->K, nv = (size_t)c->B * c->T * c->H * c->V;
    const size_t ng = (size_t)c->B * c->T * c->H, ns = (size_t)c->B * c->H * c->K * c->V;
    for (int s = 0; s < NSETS; s++) {
        float *q, *k, *v, *g, *beta;
        make_qkv(nqk, nv, c->K, 1, &q, &k, &v);
        make_gates(ng, 10.0f, &g, &beta);
        float *st = rand_host(ns, 0.5f);
        c->q[s] = dev_bf16(q, nqk), c->k[s] = dev_bf16(k, nqk), c->v[s] = dev_bf16(v, nv);
        c->g[s] = dev_f32(g, ng), c->beta[s] = dev_f32(beta, ng), c->state[s] = dev_f32(st, ns);
        c->o[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nv * 2);
        c->ht[s] = with_ht ? pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, ns * 4) : NULL;
        free(q), free(k), free(v), free(g), free(beta), free(st);
    }
}
static void ctx_free(gdn_ctx *c) {
    for (int s = 0; s < NSETS; s++) {
        pn_cuda_free(c->q[s]), pn_cuda_free(c->k[s]), pn_cuda_free(c->v[s]), pn_cuda_free(c->g[s]);
        pn_cuda_free(c->beta[s]), pn_cuda_free(c->state[s]), pn_cuda_free(c->o[s]), pn_cuda_free(c->ht[s]);
    }
}

static void timings(void) {
    check_cuda(cudaEventCreate(&g_ev0), "cudaEventCreate");
    check_cuda(cudaEventCreate(&g_ev1), "cudaEventCreate");
    // Ceilings of this device: device-to-device copy (bytes read + written) and a bf16 GEMM.
    ceil_ctx cc = {0};
    cc.bytes = (size_t)1 << 30;
    cc.src = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, cc.bytes);
    cc.dst = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, cc.bytes);
    pn_cuda_memset(cc.src, 0x3C, cc.bytes);
    const double t_copy = time_median(run_copy, &cc, 2, 10);
    const double bw = 2.0 * (double)cc.bytes / (t_copy * 1e-3);
    pn_cuda_free(cc.src), pn_cuda_free(cc.dst);
    cc.n = 8192;
    const size_t nn = (size_t)cc.n * cc.n;
    float *ha = rand_host(nn, 1.0f);
    cc.a = dev_bf16(ha, nn), cc.b = dev_bf16(ha, nn);
    free(ha);
    cc.c = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nn * sizeof(float));
    const double t_gemm = time_median(run_gemm, &cc, 2, 10);
    const double mm = 2.0 * (double)cc.n * cc.n * cc.n / (t_gemm * 1e-3);
    pn_cuda_free(cc.a), pn_cuda_free(cc.b), pn_cuda_free(cc.c);
    printf("timing: copy %.2f TB/s (1 GiB d2d, read + write), bf16 GEMM 8192^3 %.0f TFLOP/s\n", bw / 1e12, mm / 1e12);

    // Decode target: B256 H12 K96 V256, fp32 state in place, bf16 o, in-op l2 norm.
    gdn_ctx c = {.B = 256, .T = 1, .H = 12, .K = 96, .V = 256};
    ctx_fill(&c, 0);
    double t = time_median(run_step, &c, 3, 25);
    const double sb = 4.0 * c.B * c.H * c.K * c.V;
    double bytes = 2 * sb + (double)c.B * c.H * (2.0 * 2 * c.K + 2.0 * 2 * c.V + 8);
    double floor_ms = bytes / bw * 1e3;
    printf("timing: decode step B%d H%d K%d V%d: %.4f ms, %.2f TB/s, floor %.4f ms (bytes), measured/floor %.2f "
           "(target 0.22 ms; fla 0.254 ms)\n",
           c.B, c.H, c.K, c.V, t, bytes / (t * 1e-3) / 1e12, floor_ms, t / floor_ms);
    ctx_free(&c);

    // Forward target: B8 T4096 H12 K96 V256, h0 and ht, bf16 o, in-op l2 norm.
    gdn_ctx f = {.B = 8, .T = 4096, .H = 12, .K = 96, .V = 256};
    ctx_fill(&f, 1);
    t = time_median(run_fwd, &f, 2, 20);
    const double tok = (double)f.B * f.T * f.H;
    const double flops = tok * (6.0 * f.K * f.V + 6.0 * 64 * f.K + 4.0 * 64 * f.V);
    bytes = tok * (2.0 * 2 * f.K + 2.0 * 2 * f.V + 8) + 2 * 4.0 * f.B * f.H * f.K * f.V;
    const double fb = bytes / bw * 1e3, ff = flops / mm * 1e3;
    floor_ms = fb > ff ? fb : ff;
    printf("timing: chunked fwd B%d T%d H%d K%d V%d: %.4f ms, %.1f TFLOP/s, %.2f TB/s (minimal bytes), floor %.4f ms "
           "(bytes %.4f, flops at GEMM rate %.4f), measured/floor %.2f (target 0.40 ms)\n",
           f.B, f.T, f.H, f.K, f.V, t, flops / (t * 1e-3) / 1e12, bytes / (t * 1e-3) / 1e12, floor_ms, fb, ff,
           t / floor_ms);

    // Backward at the same shape (correctness-first version: one block per (b, h)).
    {
        const size_t nqk = tok * f.K, nv = tok * f.V, ns = (size_t)f.B * f.H * f.K * f.V;
        float *x = rand_host(nv, 1.0f);
        f.dout = dev_f32(x, nv);
        free(x);
        f.dq = dev_poisoned(nqk * 4), f.dk = dev_poisoned(nqk * 4), f.dv = dev_poisoned(nv * 4);
        f.dg = dev_poisoned((size_t)tok * 4), f.db = dev_poisoned((size_t)tok * 4), f.dh0 = dev_poisoned(ns * 4);
        t = time_median(run_bwd, &f, 1, 3);
        printf("timing: chunked bwd B%d T%d H%d K%d V%d: %.3f ms (median of 3; %.1f TFLOP/s at ~2x the forward's "
               "flops)\n",
               f.B, f.T, f.H, f.K, f.V, t, 2 * flops / (t * 1e-3) / 1e12);
        pn_cuda_free(f.dout), pn_cuda_free(f.dq), pn_cuda_free(f.dk), pn_cuda_free(f.dv), pn_cuda_free(f.dg);
        pn_cuda_free(f.db), pn_cuda_free(f.dh0);
    }
    ctx_free(&f);
    cudaEventDestroy(g_ev0);
    cudaEventDestroy(g_ev1);
}

int main(void) {
    if (pn_cuda_device_count() < 1) {
        printf("test_cuda_gdn: no CUDA device (these tests run on the GPU machine)\n");
        return 1;
    }
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB\n", info.name, info.sm_major, info.sm_minor, info.multiprocessors,
           info.total_mem / 1073741824.0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    // Decode: (B, H, K, V, l2, normalizer, use_g, o fp32, steps)
    test_step(3, 2, 16, 24, 1, 1.0f, 1, 1, 5);
    test_step(2, 4, 64, 64, 0, 10.0f, 1, 0, 4);
    test_step(4, 3, 96, 256, 1, 10.0f, 1, 1, 3);
    test_step(2, 2, 128, 128, 1, 1.0f, 1, 0, 6);
    test_step(64, 12, 96, 256, 1, 10.0f, 1, 0, 2);  // many heads
    test_step(2, 3, 256, 64, 0, 1.0f, 0, 1, 3);     // K = 256, g = NULL
    test_step(2, 2, 40, 30, 1, 1.0f, 1, 1, 3);      // V not a multiple of 4: scalar path
    test_step(1, 1, 96, 256, 0, 1.0f, 1, 1, 12);

    // Chunked forward: (B, T, H, K, V, l2, normalizer, h0 mode, want ht, o fp32)
    test_fwd(1, 1, 1, 16, 24, 1, 1.0f, H0_RANDOM, 1, 1);
    test_fwd(2, 37, 1, 16, 24, 0, 10.0f, H0_NONE, 1, 1);
    test_fwd(1, 64, 2, 64, 64, 1, 1.0f, H0_RANDOM, 1, 0);
    test_fwd(2, 200, 2, 64, 64, 0, 1.0f, H0_RANDOM, 1, 1);
    test_fwd(1, 200, 3, 96, 256, 1, 10.0f, H0_RANDOM, 1, 1);
    test_fwd(1, 1000, 2, 96, 256, 1, 10.0f, H0_NONE, 1, 0);
    test_fwd(1, 1000, 2, 128, 128, 1, 1.0f, H0_RANDOM, 1, 1);
    test_fwd(2, 37, 2, 128, 128, 0, 10.0f, H0_INPLACE, 1, 0);
    test_fwd(4, 64, 8, 96, 256, 1, 10.0f, H0_RANDOM, 0, 0);   // B·H = 32, no ht
    test_fwd(8, 200, 16, 64, 64, 1, 1.0f, H0_RANDOM, 1, 1);   // B·H = 128
    test_fwd(1, 130, 1, 256, 96, 1, 1.0f, H0_RANDOM, 1, 1);   // K = 256: 32-column tiles
    test_fwd(2, 77, 3, 40, 30, 0, 10.0f, H0_RANDOM, 1, 1);    // K, V not multiples of 8

    // Chunked backward: (B, T, H, K, V, l2, normalizer, h0, dht, NULL-gradient mask)
    test_bwd(1, 1, 1, 16, 24, 1, 1.0f, 1, 1, 0);
    test_bwd(2, 37, 1, 16, 24, 0, 10.0f, 0, 1, 0);
    test_bwd(1, 64, 2, 64, 64, 1, 1.0f, 1, 0, 0);
    test_bwd(2, 200, 2, 64, 64, 0, 1.0f, 1, 1, 0);
    test_bwd(1, 200, 2, 96, 256, 1, 10.0f, 1, 1, 0);
    test_bwd(1, 1000, 1, 128, 128, 1, 10.0f, 1, 1, 0);
    test_bwd(4, 100, 8, 64, 64, 1, 1.0f, 1, 1, 1 | 32);       // B·H = 32, dq and dh0 not wanted
    test_bwd(2, 77, 3, 40, 30, 0, 10.0f, 1, 0, 0);            // K, V not multiples of 8

    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("checks took %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    // PN_GDN_NO_TIMING=1 skips the timings (e.g. under compute-sanitizer).
    const char *nt = getenv("PN_GDN_NO_TIMING");
    if (!nt || !*nt || *nt == '0') timings();
    pn_cuda_gemm_release();
    pn_cuda_sync();
    printf("test_cuda_gdn: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
