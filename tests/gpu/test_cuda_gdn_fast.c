// test_cuda_gdn_fast.c — the tensor-core chunked gated delta rule forward
// (pn_cuda_gated_delta_fwd_fast, kernels/cuda/gdn_fast.cu) against its CPU twin
// pn_gated_delta_fwd in the recurrent form (chunk 0: token loop, state in double), then
// timings of the fast and the old (kernels/cuda/gdn.cu) forward at the two target shapes.
//
// Checks, in order:
//  1. the per-chunk stage alone (pn_cuda_gdn_fast_debug_prep): A' = (I + L)⁻¹ diag(β), P and
//     the row scalars against a double-precision CPU computation from the same bf16 inputs
//     (exact forward substitution), for K = 64, 96, 128 and partial chunks;
//  2. the whole forward for T ∈ {1, 63, 64, 65, 100, 129, 257, 300, 513, 640, 1000}, K ∈ {64,
//     96, 128}, V ∈ {32, 64, 96, 128, 160, 256}, B·H from 1 to 768, with and without g (NULL),
//     h0 (none, random, ht == h0), ht, the in-op L2 norm, o bf16 / fp32 / NULL (state only),
//     the single-pass state scan and the context-parallel one (segments forced, and chosen
//     automatically for the long small-B·H shapes); each line names the segment count the
//     call used (1 = one pass per V tile; 0 = fallback) and a call expected on the fast
//     kernels that fell back fails;
//     section 2 runs five times: with the wgmma state pass (gdn_wscan.cuh) forced to 1, 2 and 4
//     column tiles per block, with the mma.sync pass forced, then with the automatic choice
//     (the default; GDN_NOTES §13); every call must report the pass it was expected to run;
//  3. an unsupported shape (K = 40, V = 30) runs the fallback and must still be right;
//  4. the forward's prep beside its wgmma pass (GDN_NOTES §20) against the prep first, bit
//     for bit, over runs alternating two input sets (test_overlap; in the timing section when
//     it runs, else here);
//  5. at the two timing shapes, the fast path against the old fp32 path (o and ht).
// Method (as tests/gpu/test_cuda_gdn.c): fresh Philox inputs per check; q, k, v rounded to
// bf16 on the host and the CPU twin gets those same values; g = logsigmoid(N(0,1)) /
// normalizer (normalizer 1 or 10), β = sigmoid(N(0,1)); without the in-op L2 norm k has std
// K^-1/2 (norm ≈ 1) so that the recurrence is stable; outputs poisoned with 0xFF (NaN)
// before the op runs; error = ‖gpu − ref‖ / ‖ref‖ in double; NaN fails.
// Tolerances:
//  - 1e-2 on o (bf16 and fp32) and on ht. The fast path feeds the tensor cores bf16
//    operands: the fp32 state S (in K S and Q S), X' = V − diag(rk e^γ) K S, Vn, A' and P
//    are each rounded once per chunk (relative rounding ≤ 2^-9, rms ≈ 1.1e-3), fp32
//    accumulation. Each output is a sum of a few such terms → ~2.5e-3 for one chunk, and
//    the state carries earlier chunks' rounding forward, damped by e^g ≤ 1 and the
//    contraction (I − β k kᵀ): measured on a host emulation of the kernels 2.4e-3 – 4.2e-3
//    up to T = 1000 without decay. 1e-2 is the brief's bound and about 2.5× that; a race, a
//    wrong index or a missed row shows up as ≥ 3e-2 or NaN.
//  - stage check: 1e-2 on A' and P (bf16 outputs, one rounding ~1.1e-3 rms; the solve is
//    fp32 over 64 rows, ~1e-6); 1e-4 on the fp32 row scalars (γ in float, expf: ~1e-7).
// The timing section prints (never asserts) the median of 20 runs (cudaEvents) of every form
// of the state pass and of the automatic choice (at a segmented shape also 1, 2 and 4 times its
// segments with the mma.sync and the 1- and 2-tile wgmma forms), and the floor = minimal
// bytes (q, k, v, o bf16, g, β, h0 read, ht written) / 3.0 TB/s.
// PN_GDN_NO_TIMING=1 skips it (e.g. under compute-sanitizer). Without a CUDA device the
// test prints "no CUDA device" and exits 1.
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

#define TOL_OUT 1e-2
#define TOL_ROWS 1e-4
#define FLOOR_BW 3.0e12  // bytes/s of the floors (the brief's figure for this H100)
#define GPU_TEST_SEED 20251124
#include "gpu_test_util.h"

// ---------------------------------------------------------------- 1. the per-chunk stage
// Chunk n of head (b, h) in double: A' (64, 64), P (64, 64), rows (64, 4); rows past T have
// k̂ = q̂ = 0, β = 0, g = 0 (so A = I there and A' = 0), exactly the kernel's padding.
static void prep_ref(const float *q, const float *k, const float *g, const float *beta, int T, int H, int K,
                     float scale, int l2, int b, int h, int n, double *A, double *P, double *rows) {
    enum { C = 64 };
    const int t0 = n * C, nr = T - t0 < C ? T - t0 : C;
    double *kh = pn_calloc((size_t)C * K, sizeof(double)), *qh = pn_calloc((size_t)C * K, sizeof(double));
    double gam[C], bet[C], rk[C], rq[C], L[C][C], X[C][C];
    double run = 0;
    for (int i = 0; i < C; i++) {
        rk[i] = rq[i] = bet[i] = 0;
        if (i < nr) {
            const size_t row = ((size_t)b * T + t0 + i) * H + h;
            double sk = 0, sq = 0;
            for (int c = 0; c < K; c++)
                sk += (double)k[row * K + c] * k[row * K + c], sq += (double)q[row * K + c] * q[row * K + c];
            rk[i] = l2 ? 1.0 / sqrt(sk + 1e-6) : 1.0;
            rq[i] = l2 ? 1.0 / sqrt(sq + 1e-6) : 1.0;
            for (int c = 0; c < K; c++) kh[i * K + c] = rk[i] * k[row * K + c], qh[i * K + c] = rq[i] * q[row * K + c];
            bet[i] = beta[row];
            if (g) run += g[row];
        }
        gam[i] = run;
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double dkk = 0, dqk = 0;
            if (j <= i)
                for (int c = 0; c < K; c++) dkk += kh[i * K + c] * kh[j * K + c], dqk += qh[i * K + c] * kh[j * K + c];
            L[i][j] = j < i ? bet[i] * dkk * exp(gam[i] - gam[j]) : 0;
            P[i * C + j] = j <= i ? scale * dqk * exp(gam[i] - gam[j]) : 0;
        }
    // X = (I + L)⁻¹: X_ij = δ_ij − Σ_{j ≤ m < i} L_im X_mj
    for (int j = 0; j < C; j++)
        for (int i = 0; i < C; i++) {
            if (i < j) {
                X[i][j] = 0;
                continue;
            }
            double s = i == j ? 1.0 : 0.0;
            for (int m = j; m < i; m++) s -= L[i][m] * X[m][j];
            X[i][j] = s;
        }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) A[i * C + j] = j <= i ? X[i][j] * bet[j] : 0;
    const double gl = gam[C - 1];
    for (int i = 0; i < C; i++) {
        rows[4 * i + 0] = scale * rq[i] * exp(gam[i]);
        rows[4 * i + 1] = rk[i] * exp(gam[i]);
        rows[4 * i + 2] = rk[i] * exp(gl - gam[i]);
        rows[4 * i + 3] = exp(gl);
    }
    free(kh), free(qh);
}

static double rel_err_d(const float *got, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        const double d = (double)got[i] - ref[i];
        num += d * d, den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void test_prep(int B, int T, int H, int K, int l2, float normalizer, int use_g) {
    const size_t nqk = (size_t)B * T * H * K, ng = (size_t)B * T * H;
    const int NT = (T + 63) / 64;
    const size_t nch = (size_t)B * H * NT, nA = nch * 64 * 64, nR = nch * 64 * 4;
    float *q, *k, *v, *g, *beta;
    make_qkv(nqk, 1, K, l2, &q, &k, &v);
    make_gates(ng, normalizer, &g, &beta);
    const float scale = 1.0f / sqrtf((float)K);
    pn_bf16 *dq = dev_bf16(q, nqk), *dk = dev_bf16(k, nqk);
    float *dg = dev_f32(g, ng), *db = dev_f32(beta, ng);
    pn_bf16 *dA = dev_poisoned(nA * 2), *dP = dev_poisoned(nA * 2);
    float *dR = dev_poisoned(nR * 4);
    pn_cuda_gdn_fast_debug_prep(B, T, H, K, scale, l2, dq, dk, use_g ? dg : NULL, db, dA, dP, dR);
    double *rA = pn_malloc(nA * sizeof(double)), *rP = pn_malloc(nA * sizeof(double));
    double *rR = pn_malloc(nR * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int n = 0; n < NT; n++) {
                const size_t ci = ((size_t)b * H + h) * NT + n;
                prep_ref(q, k, use_g ? g : NULL, beta, T, H, K, scale, l2, b, h, n, rA + ci * 4096, rP + ci * 4096,
                         rR + ci * 256);
            }
    float *gA = get_out(dA, nA, 0), *gP = get_out(dP, nA, 0), *gR = get_out(dR, nR, 1);
    char what[160];
    snprintf(what, sizeof what, "prep B=%d T=%d H=%d K=%d l2=%d g%s/%g", B, T, H, K, l2, use_g ? "" : "=NULL",
             normalizer);
    report(rel_err_d(gA, rA, nA), TOL_OUT, "%s: A' = (I+L)^-1 diag(beta) bf16", what);
    report(rel_err_d(gP, rP, nA), TOL_OUT, "%s: P bf16", what);
    report(rel_err_d(gR, rR, nR), TOL_ROWS, "%s: row scalars fp32", what);
    free(gA), free(gP), free(gR), free(rA), free(rP), free(rR);
    free(q), free(k), free(v), free(g), free(beta);
    pn_cuda_free(dq), pn_cuda_free(dk), pn_cuda_free(dg), pn_cuda_free(db), pn_cuda_free(dA), pn_cuda_free(dP);
    pn_cuda_free(dR);
}

// ---------------------------------------------------------------- 2. the forward
enum { H0_NONE = 0, H0_RANDOM = 1, H0_INPLACE = 2 };  // INPLACE: ht == h0
enum { O_BF16 = 0, O_F32 = 1, O_NONE = 2 };

// The battery runs five times: the wgmma state pass with 1, 2 and 4 column tiles per block
// (pn_cuda_gdn_fast_debug_wgmma(nw)), the mma.sync pass (g_wgmma = 0), then the automatic
// choice (g_wgmma = −1, the default).
static int g_wgmma = -1;
static int g_sms = 0;  // the device's multiprocessors (the automatic choice depends on them)

// nseg: 0 automatic, 1 single pass, >= 2 forced context-parallel segments.
static void test_fwd(int B, int T, int H, int K, int V, int l2, float normalizer, int use_g, int h0_mode,
                     int want_ht, int o_mode, int nseg) {
    const size_t nqk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, ng = (size_t)B * T * H;
    const size_t ns = (size_t)B * H * K * V;
    const int o_f32 = o_mode == O_F32;
    float *q, *k, *v, *g, *beta;
    make_qkv(nqk, nv, K, l2, &q, &k, &v);
    make_gates(ng, normalizer, &g, &beta);
    float *h0 = h0_mode != H0_NONE ? rand_host(ns, 0.5f) : NULL;
    const float scale = 1.0f / sqrtf((float)K);
    pn_rec_shape s = {B, T, H, K, V, scale};
    float *o_ref = pn_malloc((nv ? nv : 1) * sizeof(float)), *ht_ref = pn_malloc(ns * sizeof(float));
    pn_gated_delta_fwd(&s, 0, l2, q, k, v, use_g ? g : NULL, beta, h0, o_ref, ht_ref);

    pn_bf16 *dq = dev_bf16(q, nqk), *dk = dev_bf16(k, nqk), *dv = dev_bf16(v, nv);
    float *dg = dev_f32(g, ng), *db = dev_f32(beta, ng);
    float *dh0 = h0 ? dev_f32(h0, ns) : NULL;
    void *d_o = o_mode == O_NONE ? NULL : dev_poisoned(nv * (o_f32 ? 4 : 2));
    float *dht = NULL;
    if (h0_mode == H0_INPLACE)
        dht = dh0;
    else if (want_ht)
        dht = dev_poisoned(ns * sizeof(float));
    pn_cuda_gdn_fast_debug_segments(nseg);
    pn_cuda_gated_delta_fwd_fast(B, T, H, K, V, scale, l2, dq, dk, dv, use_g ? dg : NULL, db, dh0, d_o,
                                 o_f32 ? PN_CUDA_F32 : PN_CUDA_BF16, dht);
    pn_cuda_gdn_fast_debug_segments(0);
    pn_cuda_sync();
    const int used = pn_cuda_gdn_fast_debug_last_segments(), wg = pn_cuda_gdn_fast_debug_last_wgmma();
    const int fast = pn_cuda_gated_delta_fwd_fast_supported(K, V);
    char what[200];
    char form[32];
    snprintf(form, sizeof form, wg ? "wgmma x%d" : "mma.sync", wg);
    snprintf(what, sizeof what, "fwd B=%d T=%d H=%d K=%d V=%d l2=%d g%s/%g h0=%s [segs %d, %s]", B, T, H, K, V, l2,
             use_g ? "" : "=NULL", normalizer,
             h0_mode == H0_NONE ? "none" : h0_mode == H0_RANDOM ? "rand" : "rand,ht==h0", used, form);
    if (fast && used < 1) report(INFINITY, TOL_OUT, "%s: expected the fast kernels, got the fallback", what);
    // The pass with outputs runs on wgmma for 64-column tiles unless the test turned it off.
    // Automatic (g_wgmma < 0): a one-segment pass of an even number of 64-column tiles on wgmma,
    // two tiles per block while those blocks fit one per SM, else four where the tiles divide by
    // four; anything else on mma.sync.
    int want_wg = fast && o_mode != O_NONE && V % 64 == 0 ? g_wgmma : 0;
    if (want_wg < 0)
        want_wg = used != 1 || V % 128 ? 0 : V % 256 == 0 && (long long)B * H * (V / 64) / 2 > g_sms ? 4 : 2;
    if (wg != want_wg) report(INFINITY, TOL_OUT, "%s: expected the state pass with wgmma x%d (0 = mma.sync)", what, want_wg);
    if (fast && nseg >= 2 && o_mode != O_NONE && T > 64 && used < 2)
        report(INFINITY, TOL_OUT, "%s: expected a context-parallel pass", what);
    if (d_o) {
        float *got = get_out(d_o, nv, o_f32);
        report(rel_err(got, o_ref, nv), TOL_OUT, "%s: o %s", what, o_f32 ? "fp32" : "bf16");
        free(got);
    }
    if (dht) {
        float *got = get_out(dht, ns, 1);
        report(rel_err(got, ht_ref, ns), TOL_OUT, "%s: ht fp32%s", what, o_mode == O_NONE ? " (o=NULL)" : "");
        free(got);
    }
    free(q), free(k), free(v), free(g), free(beta), free(h0), free(o_ref), free(ht_ref);
    pn_cuda_free(dq), pn_cuda_free(dk), pn_cuda_free(dv), pn_cuda_free(dg), pn_cuda_free(db), pn_cuda_free(d_o);
    if (dht && dht != dh0) pn_cuda_free(dht);
    pn_cuda_free(dh0);
}

// ---------------------------------------------------------------- timing
static cudaEvent_t g_ev0, g_ev1;

static void check_cuda(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "test_cuda_gdn_fast: %s failed: %s\n", what, cudaGetErrorString(e));
        exit(3);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

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

#define NSETS 2
typedef void (*fwd_fn)(int, int, int, int, int, float, int, const pn_bf16 *, const pn_bf16 *, const pn_bf16 *,
                       const float *, const float *, const float *, void *, pn_cuda_dtype, float *);
typedef struct {
    pn_bf16 *q[NSETS], *k[NSETS], *v[NSETS];
    float *g[NSETS], *beta[NSETS], *h0[NSETS], *ht[NSETS];
    void *o[NSETS];
    int B, T, H, K, V;
    fwd_fn fn;
} gdn_ctx;

static void run_fwd(void *p, int i) {
    gdn_ctx *c = p;
    const int s = i % NSETS;
    c->fn(c->B, c->T, c->H, c->K, c->V, 1.0f / sqrtf((float)c->K), 1, c->q[s], c->k[s], c->v[s], c->g[s], c->beta[s],
          c->h0[s], c->o[s], PN_CUDA_BF16, c->ht[s]);
}

static void ctx_fill(gdn_ctx *c) {
    const size_t nqk = (size_t)c->B * c->T * c->H * c->K, nv = (size_t)c->B * c->T * c->H * c->V;
    const size_t ng = (size_t)c->B * c->T * c->H, ns = (size_t)c->B * c->H * c->K * c->V;
    for (int s = 0; s < NSETS; s++) {
        float *q, *k, *v, *g, *beta;
        make_qkv(nqk, nv, c->K, 1, &q, &k, &v);
        make_gates(ng, 10.0f, &g, &beta);
        float *st = rand_host(ns, 0.5f);
        c->q[s] = dev_bf16(q, nqk), c->k[s] = dev_bf16(k, nqk), c->v[s] = dev_bf16(v, nv);
        c->g[s] = dev_f32(g, ng), c->beta[s] = dev_f32(beta, ng), c->h0[s] = dev_f32(st, ns);
        c->o[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, nv * 2);
        c->ht[s] = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, ns * 4);
        free(q), free(k), free(v), free(g), free(beta), free(st);
    }
}

static void ctx_free(gdn_ctx *c) {
    for (int s = 0; s < NSETS; s++) {
        pn_cuda_free(c->q[s]), pn_cuda_free(c->k[s]), pn_cuda_free(c->v[s]), pn_cuda_free(c->g[s]);
        pn_cuda_free(c->beta[s]), pn_cuda_free(c->h0[s]), pn_cuda_free(c->o[s]), pn_cuda_free(c->ht[s]);
    }
}

// Times the fast and the old forward at one shape, then checks fast against old on set 0.
static void time_shape(int B, int T, int H, int K, int V, const char *ref_note) {
    gdn_ctx c = {.B = B, .T = T, .H = H, .K = K, .V = V};
    ctx_fill(&c);
    const double tok = (double)B * T * H;
    const double bytes = tok * (2.0 * 2 * K + 2.0 * 2 * V + 8) + 2 * 4.0 * B * H * K * V;
    const double flops = tok * (6.0 * K * V + 6.0 * 64 * K + 4.0 * 64 * V);
    const double floor_ms = bytes / FLOOR_BW * 1e3;

    c.fn = pn_cuda_gated_delta_fwd_fast;
    // the state pass with outputs: mma.sync, wgmma with 1, 2, 4 tiles per block, then automatic
    double t_form[4];
    int wg[4];
    for (int i = 0; i < 4; i++) {
        pn_cuda_gdn_fast_debug_wgmma(i == 0 ? 0 : 1 << (i - 1));
        t_form[i] = time_median(run_fwd, &c, 2, 20);
        wg[i] = pn_cuda_gdn_fast_debug_last_wgmma();
    }
    pn_cuda_gdn_fast_debug_wgmma(-1);
    const double t_fast = time_median(run_fwd, &c, 2, 20);
    const int segs = pn_cuda_gdn_fast_debug_last_segments(), wg_auto = pn_cuda_gdn_fast_debug_last_wgmma();
    printf("timing: chunked fwd B%d T%d H%d K%d V%d: state pass on mma.sync %.4f ms; on wgmma with 1, 2, 4 column "
           "tiles per block (ran x%d, x%d, x%d) %.4f, %.4f, %.4f ms; automatic (default, ran %s x%d) %.4f ms\n",
           B, T, H, K, V, t_form[0], wg[1], wg[2], wg[3], t_form[1], t_form[2], t_form[3],
           wg_auto ? "wgmma" : "mma.sync", wg_auto, t_fast);
    if (segs > 1) {
        // a segmented shape: forced segment counts × the state pass's forms (the automatic choice
        // runs mma.sync there; this says whether more segments would let wgmma win)
        for (int ns = segs; ns <= 4 * segs; ns *= 2) {
            double t[3];
            pn_cuda_gdn_fast_debug_segments(ns);
            for (int f = 0; f < 3; f++) {
                pn_cuda_gdn_fast_debug_wgmma(f == 0 ? 0 : f);
                t[f] = time_median(run_fwd, &c, 2, 20);
            }
            printf("timing: chunked fwd B%d T%d H%d K%d V%d, %d segments (ran %d): mma.sync %.4f ms, wgmma with 1, 2 "
                   "tiles per block %.4f, %.4f ms\n",
                   B, T, H, K, V, ns, pn_cuda_gdn_fast_debug_last_segments(), t[0], t[1], t[2]);
        }
        pn_cuda_gdn_fast_debug_segments(0);
        pn_cuda_gdn_fast_debug_wgmma(-1);
    }
    pn_cuda_gdn_fast_debug_bv(32);  // the state pass with 32-column tiles instead (2× the blocks)
    const double t_bv32 = time_median(run_fwd, &c, 2, 20);
    pn_cuda_gdn_fast_debug_bv(0);
    printf("timing: chunked fwd B%d T%d H%d K%d V%d: fast %.4f ms with the automatic V tile, %.4f ms with 32 columns\n",
           B, T, H, K, V, t_fast, t_bv32);
    c.fn = pn_cuda_gated_delta_fwd;
    const double t_old = time_median(run_fwd, &c, 1, 20);
    printf("timing: chunked fwd B%d T%d H%d K%d V%d (bf16 o, h0 + ht, l2 norm, g): fast %.4f ms (%d segment%s, "
           "%.1f TFLOP/s, %.2f TB/s minimal bytes), old %.4f ms, old/fast %.1fx; floor %.4f ms (%.1f MB / 3.0 TB/s), "
           "fast/floor %.2f (target 0.40 ms; %s)\n",
           B, T, H, K, V, t_fast, segs, segs == 1 ? "" : "s", flops / (t_fast * 1e-3) / 1e12,
           bytes / (t_fast * 1e-3) / 1e12, t_old, t_old / t_fast, floor_ms, bytes / 1e6, t_fast / floor_ms, ref_note);
    fflush(stdout);

    // Fast against old (fp32 math) on the same inputs, at full size.
    const size_t nv = (size_t)tok * V, ns = (size_t)B * H * K * V;
    void *o_fast = dev_poisoned(nv * 2), *o_old = dev_poisoned(nv * 2);
    float *ht_fast = dev_poisoned(ns * 4), *ht_old = dev_poisoned(ns * 4);
    const float scale = 1.0f / sqrtf((float)K);
    pn_cuda_gated_delta_fwd_fast(B, T, H, K, V, scale, 1, c.q[0], c.k[0], c.v[0], c.g[0], c.beta[0], c.h0[0], o_fast,
                                 PN_CUDA_BF16, ht_fast);
    pn_cuda_gated_delta_fwd(B, T, H, K, V, scale, 1, c.q[0], c.k[0], c.v[0], c.g[0], c.beta[0], c.h0[0], o_old,
                            PN_CUDA_BF16, ht_old);
    float *a = get_out(o_fast, nv, 0), *b = get_out(o_old, nv, 0);
    report(rel_err(a, b, nv), TOL_OUT, "fast vs old B=%d T=%d H=%d K=%d V=%d [segs %d]: o bf16", B, T, H, K, V, segs);
    free(a), free(b);
    a = get_out(ht_fast, ns, 1), b = get_out(ht_old, ns, 1);
    report(rel_err(a, b, ns), TOL_OUT, "fast vs old B=%d T=%d H=%d K=%d V=%d [segs %d]: ht fp32", B, T, H, K, V, segs);
    free(a), free(b);
    pn_cuda_free(o_fast), pn_cuda_free(o_old), pn_cuda_free(ht_fast), pn_cuda_free(ht_old);
    ctx_free(&c);
}

// The prep beside the wgmma pass (pn_cuda_gdn_fast_debug_prep_overlap; GDN_NOTES §20): two
// input sets computed with the whole prep first are the references; then runs alternating
// the sets with the overlap automatic and with a first slice of 1/8 (the least; the pass
// then catches up with the prep and waits on the chunk flags) must give the same bits. The
// sets alternate so that a chunk read before its prep finished would hold the other set's
// values (the arena hands the same scratch back), not the same ones. With timing, the
// medians of 20 runs without the overlap, automatic and with first slices of 1/8 .. 1/3.
static void test_overlap(int B, int T, int H, int K, int V, int timing) {
    gdn_ctx c = {.B = B, .T = T, .H = H, .K = K, .V = V, .fn = pn_cuda_gated_delta_fwd_fast};
    ctx_fill(&c);
    const size_t nv = (size_t)B * T * H * V, ns = (size_t)B * H * K * V;
    uint16_t *oref[NSETS];
    float *htref[NSETS];
    // the prep runs beside one-segment passes only; few B·H would otherwise be cut into
    // segments (B2 T2048 H12 K128: the overlap never ran, the check failed with "first 0")
    pn_cuda_gdn_fast_debug_segments(1);
    pn_cuda_gdn_fast_debug_prep_overlap(0, 0);
    for (int s = 0; s < NSETS; s++) {
        pn_cuda_memset(c.o[s], 0xFF, nv * 2), pn_cuda_memset(c.ht[s], 0xFF, ns * 4);
        run_fwd(&c, s);
        oref[s] = pn_malloc(nv * 2), htref[s] = pn_malloc(ns * 4);
        pn_cuda_download(oref[s], c.o[s], nv * 2), pn_cuda_download(htref[s], c.ht[s], ns * 4);
    }
    const int none = pn_cuda_gdn_fast_debug_last_overlap();
    int n1[2] = {0, 0}, bad[2] = {0, 0};
    uint16_t *o = pn_malloc(nv * 2);
    float *ht = pn_malloc(ns * 4);
    for (int m = 0; m < 2; m++) {
        pn_cuda_gdn_fast_debug_prep_overlap(m == 0 ? -1 : 1, m == 0 ? 0 : 1);
        for (int i = 0; i < 8; i++) {
            const int s = i % NSETS;
            pn_cuda_memset(c.o[s], 0xFF, nv * 2), pn_cuda_memset(c.ht[s], 0xFF, ns * 4);
            run_fwd(&c, s);
            n1[m] = pn_cuda_gdn_fast_debug_last_overlap();
            pn_cuda_download(o, c.o[s], nv * 2), pn_cuda_download(ht, c.ht[s], ns * 4);
            bad[m] += memcmp(o, oref[s], nv * 2) != 0 || memcmp(ht, htref[s], ns * 4) != 0;
        }
    }
    const int NT = (T + 63) / 64;
    report(bad[0] == 0 && bad[1] == 0 && none == 0 && n1[1] >= 1 && n1[1] < NT ? 0.0 : 1.0, 0.0,
           "prep overlap B=%d T=%d H=%d K=%d V=%d: 8 runs automatic (first %d of %d chunks) and 8 with the first "
           "1/8 (%d chunks), sets alternating: bitwise = prep first (runs differing: %d, %d)",
           B, T, H, K, V, n1[0], NT, n1[1], bad[0], bad[1]);
    if (timing) {
        const int pcts[6] = {0, 12, 16, 20, 25, 33};
        double t[7];
        pn_cuda_gdn_fast_debug_prep_overlap(0, 0);
        t[0] = time_median(run_fwd, &c, 2, 20);
        for (int i = 0; i < 6; i++) {
            pn_cuda_gdn_fast_debug_prep_overlap(i == 0 ? -1 : 1, pcts[i]);
            t[i + 1] = time_median(run_fwd, &c, 2, 20);
        }
        pn_cuda_gdn_fast_debug_prep_overlap(-1, 0);
        t[1] = time_median(run_fwd, &c, 2, 20);  // the automatic choice again, last (drift check)
        printf("timing: chunked fwd B%d T%d H%d K%d V%d: prep first %.4f ms; prep beside the pass: automatic (first "
               "%d of %d chunks) %.4f ms; first 12%% / 16%% / 20%% / 25%% / 33%% %.4f / %.4f / %.4f / %.4f / %.4f ms\n",
               B, T, H, K, V, t[0], n1[0], NT, t[1], t[2], t[3], t[4], t[5], t[6]);
    }
    pn_cuda_gdn_fast_debug_prep_overlap(-1, 0);
    pn_cuda_gdn_fast_debug_segments(0);
    for (int s = 0; s < NSETS; s++) free(oref[s]), free(htref[s]);
    free(o), free(ht);
    ctx_free(&c);
}

// which: "bench" only the bench shape, "long" only the long one (profiling aids), else everything.
static void timings(const char *which) {
    const int bench = !which || strcmp(which, "long") != 0, lng = !which || strcmp(which, "bench") != 0;
    check_cuda(cudaEventCreate(&g_ev0), "cudaEventCreate");
    check_cuda(cudaEventCreate(&g_ev1), "cudaEventCreate");
    if (bench) test_overlap(8, 4096, 12, 96, 256, 1);
    if (bench && lng) test_overlap(4, 4096, 16, 128, 128, 1);
    if (bench) time_shape(8, 4096, 12, 96, 256, "fla 1.214 ms");
    if (lng) time_shape(1, 65536, 8, 128, 128, "FlashInfer 0.399 ms");
    cudaEventDestroy(g_ev0);
    cudaEventDestroy(g_ev1);
}

// (B, T, H, K, V, l2, normalizer, use_g, h0, want ht, o, segments)
static void battery(void) {
    test_fwd(1, 1, 1, 64, 64, 1, 1.0f, 1, H0_RANDOM, 1, O_F32, 0);
    test_fwd(2, 63, 2, 64, 128, 0, 10.0f, 1, H0_NONE, 1, O_BF16, 0);
    test_fwd(1, 64, 3, 96, 256, 1, 1.0f, 1, H0_RANDOM, 1, O_F32, 0);
    test_fwd(2, 65, 1, 128, 128, 1, 1.0f, 0, H0_RANDOM, 1, O_BF16, 0);
    test_fwd(2, 100, 2, 128, 128, 1, 1.0f, 1, H0_RANDOM, 1, O_BF16, 0);
    test_fwd(1, 100, 1, 96, 32, 1, 10.0f, 1, H0_RANDOM, 1, O_BF16, 0);   // V = 32: 32-column tiles
    test_fwd(1, 257, 2, 96, 64, 1, 10.0f, 1, H0_INPLACE, 1, O_BF16, 0);
    test_fwd(1, 257, 1, 128, 256, 0, 1.0f, 1, H0_RANDOM, 0, O_F32, 0);   // no ht
    test_fwd(1, 257, 1, 64, 96, 1, 1.0f, 1, H0_RANDOM, 1, O_F32, 0);     // V = 96
    test_fwd(2, 129, 2, 64, 32, 1, 1.0f, 0, H0_NONE, 1, O_BF16, 0);
    test_fwd(1, 65, 1, 96, 160, 1, 1.0f, 1, H0_RANDOM, 1, O_F32, 0);     // V = 160
    test_fwd(1, 300, 2, 96, 128, 1, 10.0f, 1, H0_RANDOM, 1, O_NONE, 0);  // state only
    test_fwd(1, 1000, 2, 128, 128, 1, 1.0f, 1, H0_RANDOM, 1, O_BF16, 0); // automatic segments
    test_fwd(1, 1000, 1, 96, 256, 1, 10.0f, 1, H0_NONE, 1, O_F32, 0);
    test_fwd(1, 1000, 1, 64, 64, 0, 1.0f, 0, H0_RANDOM, 1, O_F32, 0);    // no decay, no l2: longest memory
    test_fwd(1, 1000, 1, 128, 64, 0, 1.0f, 0, H0_RANDOM, 1, O_F32, 1);   // the same, single pass
    test_fwd(4, 100, 8, 96, 256, 1, 10.0f, 1, H0_RANDOM, 0, O_BF16, 0);  // B·H = 32
    test_fwd(8, 200, 16, 64, 64, 1, 1.0f, 1, H0_RANDOM, 1, O_F32, 0);    // B·H = 128
    test_fwd(16, 130, 12, 128, 128, 1, 10.0f, 1, H0_RANDOM, 1, O_BF16, 0); // B·H = 192
    test_fwd(64, 1, 12, 96, 256, 1, 10.0f, 1, H0_RANDOM, 1, O_BF16, 0);  // B·H = 768, one row
    // forced context parallelism
    test_fwd(1, 640, 2, 128, 128, 1, 1.0f, 1, H0_RANDOM, 1, O_BF16, 3);
    test_fwd(2, 513, 1, 96, 256, 1, 10.0f, 1, H0_INPLACE, 1, O_BF16, 5);
    test_fwd(1, 1000, 1, 64, 96, 1, 1.0f, 1, H0_RANDOM, 1, O_F32, 16);   // 16 segments of one chunk
    test_fwd(3, 300, 2, 64, 32, 0, 10.0f, 0, H0_NONE, 1, O_F32, 2);
    test_fwd(1, 100, 2, 96, 128, 1, 1.0f, 1, H0_RANDOM, 0, O_BF16, 2);   // no ht
}

int main(void) {
    if (pn_cuda_device_count() < 1) {
        printf("test_cuda_gdn_fast: no CUDA device (these tests run on the GPU machine)\n");
        return 1;
    }
    pn_cuda_device_info info;
    pn_cuda_device_info_get(0, &info);
    printf("device 0: %s, sm_%d%d, %d SMs, %.1f GiB\n", info.name, info.sm_major, info.sm_minor, info.multiprocessors,
           info.total_mem / 1073741824.0);
    g_sms = info.multiprocessors;
    // profiling aid (ncu): timings only, no checks; "bench" or "long": that shape only
    const char *to = getenv("PN_GDN_TIMING_ONLY");
    if (to && *to && *to != '0') {
        timings(to);
        pn_cuda_gemm_release();
        printf("test_cuda_gdn_fast: timings only, checks NOT run (exit 3)\n");
        return 3;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    // 1. The per-chunk stage: (B, T, H, K, l2, normalizer, use_g)
    test_prep(1, 64, 2, 64, 1, 1.0f, 1);
    test_prep(2, 100, 1, 96, 0, 10.0f, 1);
    test_prep(1, 257, 2, 128, 1, 1.0f, 1);
    test_prep(1, 1, 1, 128, 1, 1.0f, 1);
    test_prep(2, 130, 2, 96, 1, 1.0f, 0);

    // 2. The forward, with the wgmma state pass where V % 64 == 0 (pn_cuda_gdn_fast_debug_wgmma(nw),
    //    for nw = 1, 2, 4 column tiles per block, with the mma.sync pass everywhere, then with the
    //    automatic choice (the default, which stays set for what follows).
    for (int i = 0; i < 5; i++) {
        g_wgmma = i < 3 ? 1 << i : i == 3 ? 0 : -1;
        pn_cuda_gdn_fast_debug_wgmma(g_wgmma);
        battery();
    }
    // 3. unsupported head sizes: the fallback
    test_fwd(2, 77, 3, 40, 30, 0, 10.0f, 1, H0_RANDOM, 1, O_F32, 0);
    // 4. the prep beside the pass against the prep first, bit for bit (timed in timings())
    const char *nt = getenv("PN_GDN_NO_TIMING");
    const int no_timing = nt && *nt && *nt != '0';
    if (no_timing) {
        test_overlap(8, 4096, 12, 96, 256, 0);
        test_overlap(2, 2048, 12, 128, 128, 0);
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("checks took %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    if (!no_timing) timings(NULL);
    pn_cuda_gemm_release();
    pn_cuda_sync();
    printf("test_cuda_gdn_fast: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
