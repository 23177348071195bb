// test_gdn_emu.c — the tensor-core chunked gated delta rule (kernels/cuda/gdn_fast.cu,
// gdn_fast_bwd.cu: mma.sync and wgmma kernels, their host orchestration) run on the CPU: the
// real source compiled as host C++ against the emulation of kernels/cuda/emu (fibers for the
// threads, the warp / warpgroup collectives, deferred cp.async; gdnf_emu.h says what it
// covers), checked against the CPU op pn_gated_delta_fwd / _bwd on the same bf16 inputs.
// The gpu tests (tests/gpu/test_cuda_gdn_fast*.c) check the same kernels on an H100; this
// one runs on every CI machine, at small shapes (the emulation runs ~10^5 times slower).
//
// Checks:
//  1. forward, K ∈ {64, 96, 128}: every form of the state pass the host code can pick — the
//     mma.sync pass (64- and 32-column tiles), the wgmma pass with 1, 2 and 4 column tiles
//     per block, the context-parallel pass (segments forced) — with o bf16 / fp32 / NULL,
//     h0 and ht, T not a multiple of 64; o and ht against the CPU op (normalised error
//     ≤ 1e-2, the gpu test's bound: bf16 tensor-core operands), and the wgmma pass's o and ht
//     against the mma.sync pass's bit for bit (same roundings, same summation order);
//  2. backward, K ∈ {64, 96, 128} at V 128 and K 96 at V 256 (where the reverse scan runs on
//     wgmma): dq, dk, dv, dg, dβ, dh0 against the CPU op (≤ 1e-2 on the update: gradients
//     start random and the op adds), in the adding form with each variant of the per-chunk
//     kernel (mma.sync / wgmma, tiles double-buffered or not) and of the reverse scan
//     (wgmma / mma.sync), bit for bit against the default, and the write form (=) against the
//     adding form from zero;
//     and the prep overlapped with the wgmma pass against the prep first, bit for bit;
//  3. no decay, no h0, no in-op L2 norm, T = 65: forward and backward against the CPU op;
//  4. the forward and backward of K 96, V 256 again with each block's threads run in reverse
//     order (emu_set_reverse), then with cp.async landing at its issue (emu_set_copy_eager),
//     then with that and the first runnable thread always next (emu_set_greedy), from the
//     first thread and from the last.
// Error = ‖got − ref‖ / ‖ref‖ in double; NaN fails (the emulation fills fresh device and
// shared memory with 0xFF, NaN, so an element never written shows).
#include "core/common.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_gdn_fast.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "kernels/ops.h"
#include "tests/unit/test_util.h"
#include <math.h>
#include <string.h>
#include <time.h>

#define TOL 1e-2
#define SEED 20261124

void emu_set_device_sms(int sms);  // kernels/cuda/emu/emu_runtime.cpp
void emu_set_reverse(int on);
void emu_set_copy_eager(int on);
void emu_set_greedy(int on);

static float bf16r(float x) { return pn_bf16_to_f32(pn_f32_to_bf16(x)); }

typedef struct {
    int B, T, H, K, V, l2;
    float scale;
    float *q, *k, *v, *g, *beta, *h0;  // fp32 (q, k, v on the bf16 grid)
    pn_bf16 *qb, *kb, *vb;
} gdn_case;

static void case_make(gdn_case *c, int B, int T, int H, int K, int V, int l2, uint64_t stream) {
    memset(c, 0, sizeof *c);
    c->B = B, c->T = T, c->H = H, c->K = K, c->V = V, c->l2 = l2;
    c->scale = 1.0f / sqrtf((float)K);
    pn_rng r = pn_rng_make(SEED, stream);
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V, ng = (int64_t)B * T * H;
    const int64_t ns = (int64_t)B * H * K * V;
    c->q = malloc(nqk * sizeof(float)), c->k = malloc(nqk * sizeof(float)), c->v = malloc(nv * sizeof(float));
    c->g = malloc(ng * sizeof(float)), c->beta = malloc(ng * sizeof(float)), c->h0 = malloc(ns * sizeof(float));
    c->qb = malloc(nqk * 2), c->kb = malloc(nqk * 2), c->vb = malloc(nv * 2);
    // without the in-op norm, k has norm ≈ 1 so that the recurrence stays stable
    const float ks = l2 ? 1.0f : 1.0f / sqrtf((float)K);
    for (int64_t i = 0; i < nqk; i++) {
        c->q[i] = bf16r(pn_rng_normal(&r)), c->k[i] = bf16r(ks * pn_rng_normal(&r));
        c->qb[i] = pn_f32_to_bf16(c->q[i]), c->kb[i] = pn_f32_to_bf16(c->k[i]);
    }
    for (int64_t i = 0; i < nv; i++) c->v[i] = bf16r(pn_rng_normal(&r)), c->vb[i] = pn_f32_to_bf16(c->v[i]);
    for (int64_t i = 0; i < ng; i++) {
        const float x = pn_rng_normal(&r), y = pn_rng_normal(&r);
        c->g[i] = -log1pf(expf(-x)) / 4.0f;  // logsigmoid / 4
        c->beta[i] = 1.0f / (1.0f + expf(-y));
    }
    for (int64_t i = 0; i < ns; i++) c->h0[i] = 0.5f * pn_rng_normal(&r);
}

static void case_free(gdn_case *c) {
    free(c->q), free(c->k), free(c->v), free(c->g), free(c->beta), free(c->h0);
    free(c->qb), free(c->kb), free(c->vb);
}

static pn_rec_shape case_shape(const gdn_case *c) {
    const pn_rec_shape s = {c->B, c->T, c->H, c->K, c->V, c->scale};
    return s;
}

static float *poisoned(int64_t n) {
    float *p = malloc(n * sizeof(float));
    memset(p, 0xff, n * sizeof(float));
    return p;
}

static int bit_equal(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }

// ---------------------------------------------------------------- forward
// One call of the fast forward with the pass forced by (nw, nseg, bv); o of o_dt (or none)
// widened into of, ht into htf. Returns the segment count the call reports.
static int fwd_run(const gdn_case *c, int nw, int nseg, int bv, int want_o, pn_cuda_dtype o_dt, float *of,
                   float *htf) {
    const int64_t nv = (int64_t)c->B * c->T * c->H * c->V, ns = (int64_t)c->B * c->H * c->K * c->V;
    pn_cuda_gdn_fast_debug_wgmma(nw);
    pn_cuda_gdn_fast_debug_segments(nseg);
    pn_cuda_gdn_fast_debug_bv(bv);
    void *o = NULL;
    if (want_o) {
        o = malloc(nv * (o_dt == PN_CUDA_F32 ? 4 : 2));
        memset(o, 0xff, nv * (o_dt == PN_CUDA_F32 ? 4 : 2));
    }
    memset(htf, 0xff, ns * sizeof(float));
    pn_cuda_gated_delta_fwd_fast(c->B, c->T, c->H, c->K, c->V, c->scale, c->l2, c->qb, c->kb, c->vb, c->g, c->beta,
                                 c->h0, o, o_dt, htf);
    if (want_o) {
        if (o_dt == PN_CUDA_F32)
            memcpy(of, o, nv * sizeof(float));
        else
            for (int64_t i = 0; i < nv; i++) of[i] = pn_bf16_to_f32(((pn_bf16 *)o)[i]);
        free(o);
    }
    pn_cuda_gdn_fast_debug_wgmma(-1);
    pn_cuda_gdn_fast_debug_segments(0);
    pn_cuda_gdn_fast_debug_bv(0);
    return pn_cuda_gdn_fast_debug_last_segments();
}

// V 128: two 64-column tiles, so a block of four warpgroups has two past V (they load zeros and
// store nothing, and a fault in them cannot show); V 256 puts a real tile on each.
static void test_forward(int K, int V, int T) {
    gdn_case c;
    const int NT = (T + 63) / 64;
    case_make(&c, 1, T, 2, K, V, 1, V == 128 ? 100 + K : 100 + K + V);
    const pn_rec_shape s = case_shape(&c);
    const int64_t nv = (int64_t)c.B * c.T * c.H * c.V, ns = (int64_t)c.B * c.H * c.K * c.V;
    float *oref = poisoned(nv), *htref = poisoned(ns);
    pn_gated_delta_fwd(&s, 0, c.l2, c.q, c.k, c.v, c.g, c.beta, c.h0, oref, htref);

    float *o0 = poisoned(nv), *ht0 = poisoned(ns), *o1 = poisoned(nv), *ht1 = poisoned(ns);
    // the mma.sync pass, 64-column tiles, o bf16: the form every other is compared with
    fwd_run(&c, 0, 0, 0, 1, PN_CUDA_BF16, o0, ht0);
    double eo = rel_err(o0, oref, nv), eh = rel_err(ht0, htref, ns);
    CHECK(eo <= TOL && eh <= TOL, "K %d V %d mma.sync pass: o err %.3e, ht err %.3e (tol %g)", K, V, eo, eh, TOL);
    printf("fwd K %3d V %3d mma.sync 64-col   o %.3e  ht %.3e\n", K, V, eo, eh);

    // the wgmma pass with 1, 2, 4 tiles per block: the same roundings and order
    const int nws[3] = {1, 2, 4};
    for (int i = 0; i < 3; i++) {
        fwd_run(&c, nws[i], 0, 0, 1, PN_CUDA_BF16, o1, ht1);
        const int last = pn_cuda_gdn_fast_debug_last_wgmma();
        eo = rel_err(o1, oref, nv), eh = rel_err(ht1, htref, ns);
        CHECK(last == nws[i], "K %d V %d: the wgmma pass with %d tiles per block was asked for, %d ran", K, V, nws[i], last);
        CHECK(eo <= TOL && eh <= TOL, "K %d V %d wgmma x%d: o err %.3e, ht err %.3e (tol %g)", K, V, nws[i], eo, eh, TOL);
        CHECK(bit_equal(o1, o0, nv * sizeof(float)) && bit_equal(ht1, ht0, ns * sizeof(float)),
              "K %d V %d wgmma x%d: o / ht differ from the mma.sync pass's bits", K, V, nws[i]);
        printf("fwd K %3d V %3d wgmma x%d         o %.3e  ht %.3e  bitwise = mma.sync: %s\n", K, V, nws[i], eo, eh,
               bit_equal(o1, o0, nv * sizeof(float)) && bit_equal(ht1, ht0, ns * sizeof(float)) ? "yes" : "NO");
    }

    // the prep beside the wgmma pass (flags per chunk; the emulation runs the whole prep
    // first, so this checks the chunk-major prep grids and the flag indices, which stop the
    // run when a flag the pass waits for is not set) against the prep first: bit for bit,
    // with 1, 2 and 4 tiles per block and several first-slice sizes (T = 130: 3 chunks)
    const int ovl[4][2] = {{1, 0}, {2, 1}, {4, 60}, {2, 50}};
    for (int i = 0; i < 4; i++) {
        pn_cuda_gdn_fast_debug_prep_overlap(1, ovl[i][1]);
        fwd_run(&c, ovl[i][0], 0, 0, 1, i == 2 ? PN_CUDA_F32 : PN_CUDA_BF16, o1, ht1);
        const int n1 = pn_cuda_gdn_fast_debug_last_overlap();
        pn_cuda_gdn_fast_debug_prep_overlap(0, 0);
        float *o2 = poisoned(nv), *ht2 = poisoned(ns);
        fwd_run(&c, ovl[i][0], 0, 0, 1, i == 2 ? PN_CUDA_F32 : PN_CUDA_BF16, o2, ht2);
        CHECK(n1 >= 1 && n1 < NT && pn_cuda_gdn_fast_debug_last_overlap() == 0,
              "K %d V %d prep overlap x%d: first slice %d chunks (want 1..%d), then %d without", K, V, ovl[i][0], n1,
              NT - 1, pn_cuda_gdn_fast_debug_last_overlap());
        const int same = bit_equal(o1, o2, nv * sizeof(float)) && bit_equal(ht1, ht2, ns * sizeof(float));
        CHECK(same, "K %d V %d prep overlap x%d (first %d chunks): o / ht differ from the prep-first pass's bits", K, V,
              ovl[i][0], n1);
        printf("fwd K %3d V %3d prep overlap x%d   first %d of %d chunks, bitwise = prep first: %s\n", K, V, ovl[i][0],
               n1, NT, same ? "yes" : "NO");
        free(o2), free(ht2);
    }
    pn_cuda_gdn_fast_debug_prep_overlap(-1, 0);

    // 32-column tiles on mma.sync, o fp32
    fwd_run(&c, 0, 0, 32, 1, PN_CUDA_F32, o1, ht1);
    eo = rel_err(o1, oref, nv), eh = rel_err(ht1, htref, ns);
    CHECK(eo <= TOL && eh <= TOL, "K %d V %d mma.sync 32-col fp32 o: o err %.3e, ht err %.3e", K, V, eo, eh);
    printf("fwd K %3d V %3d mma.sync 32-col   o %.3e  ht %.3e (o fp32)\n", K, V, eo, eh);

    // context-parallel: 3 segments of one chunk each (T = 130: chunks 64, 64, 2)
    const int seg = fwd_run(&c, 0, 3, 0, 1, PN_CUDA_BF16, o1, ht1);
    eo = rel_err(o1, oref, nv), eh = rel_err(ht1, htref, ns);
    CHECK(seg == 3, "K %d V %d: 3 segments asked for, %d used", K, V, seg);
    CHECK(eo <= TOL && eh <= TOL, "K %d V %d 3 segments: o err %.3e, ht err %.3e", K, V, eo, eh);
    printf("fwd K %3d V %3d 3 segments        o %.3e  ht %.3e\n", K, V, eo, eh);

    // state only (o NULL): the pass without outputs
    fwd_run(&c, -1, 0, 0, 0, PN_CUDA_BF16, NULL, ht1);
    eh = rel_err(ht1, htref, ns);
    CHECK(eh <= TOL, "K %d V %d state only: ht err %.3e", K, V, eh);
    printf("fwd K %3d V %3d state only        ht %.3e\n", K, V, eh);

    free(oref), free(htref), free(o0), free(ht0), free(o1), free(ht1);
    case_free(&c);
}

// ---------------------------------------------------------------- backward
typedef struct {
    float *dq, *dk, *dv, *dg, *db, *dh0;
} grads;

static void grads_alloc(grads *G, const gdn_case *c) {
    const int64_t nqk = (int64_t)c->B * c->T * c->H * c->K, nv = (int64_t)c->B * c->T * c->H * c->V;
    const int64_t ng = (int64_t)c->B * c->T * c->H, ns = (int64_t)c->B * c->H * c->K * c->V;
    G->dq = poisoned(nqk), G->dk = poisoned(nqk), G->dv = poisoned(nv);
    G->dg = poisoned(ng), G->db = poisoned(ng), G->dh0 = poisoned(ns);
}
static void grads_free(grads *G) { free(G->dq), free(G->dk), free(G->dv), free(G->dg), free(G->db), free(G->dh0); }
static void grads_fill(grads *G, const gdn_case *c, float value_or_nan_for_random, uint64_t stream) {
    const int64_t n[6] = {(int64_t)c->B * c->T * c->H * c->K, (int64_t)c->B * c->T * c->H * c->K,
                          (int64_t)c->B * c->T * c->H * c->V, (int64_t)c->B * c->T * c->H,
                          (int64_t)c->B * c->T * c->H, (int64_t)c->B * c->H * c->K * c->V};
    float *p[6] = {G->dq, G->dk, G->dv, G->dg, G->db, G->dh0};
    pn_rng r = pn_rng_make(SEED + 7, stream);
    for (int t = 0; t < 6; t++)
        for (int64_t i = 0; i < n[t]; i++) p[t][i] = isnan(value_or_nan_for_random) ? pn_rng_normal(&r) : value_or_nan_for_random;
}

static const char *GNAME[6] = {"dq", "dk", "dv", "dg", "dbeta", "dh0"};

// got − start against ref − start, per gradient; returns the largest error.
static double grads_check(const grads *got, const grads *ref, const grads *start, const gdn_case *c, const char *what) {
    const int64_t n[6] = {(int64_t)c->B * c->T * c->H * c->K, (int64_t)c->B * c->T * c->H * c->K,
                          (int64_t)c->B * c->T * c->H * c->V, (int64_t)c->B * c->T * c->H,
                          (int64_t)c->B * c->T * c->H, (int64_t)c->B * c->H * c->K * c->V};
    const float *pg[6] = {got->dq, got->dk, got->dv, got->dg, got->db, got->dh0};
    const float *pr[6] = {ref->dq, ref->dk, ref->dv, ref->dg, ref->db, ref->dh0};
    const float *ps[6] = {start ? start->dq : NULL, start ? start->dk : NULL, start ? start->dv : NULL,
                          start ? start->dg : NULL, start ? start->db : NULL, start ? start->dh0 : NULL};
    double worst = 0;
    printf("bwd %-34s", what);
    for (int t = 0; t < 6; t++) {
        float *a = malloc(n[t] * sizeof(float)), *b = malloc(n[t] * sizeof(float));
        for (int64_t i = 0; i < n[t]; i++) {
            a[i] = ps[t] ? pg[t][i] - ps[t][i] : pg[t][i];
            b[i] = ps[t] ? pr[t][i] - ps[t][i] : pr[t][i];
        }
        const double e = rel_err(a, b, n[t]);
        CHECK(e <= TOL, "%s: %s err %.3e (tol %g)", what, GNAME[t], e, TOL);
        printf(" %s %.2e", GNAME[t], e);
        if (e > worst) worst = e;
        free(a), free(b);
    }
    printf("\n");
    return worst;
}

static void grads_copy(grads *dst, const grads *src, const gdn_case *c) {
    const int64_t nqk = (int64_t)c->B * c->T * c->H * c->K, nv = (int64_t)c->B * c->T * c->H * c->V;
    const int64_t ng = (int64_t)c->B * c->T * c->H, ns = (int64_t)c->B * c->H * c->K * c->V;
    memcpy(dst->dq, src->dq, nqk * 4), memcpy(dst->dk, src->dk, nqk * 4), memcpy(dst->dv, src->dv, nv * 4);
    memcpy(dst->dg, src->dg, ng * 4), memcpy(dst->db, src->db, ng * 4), memcpy(dst->dh0, src->dh0, ns * 4);
}
static int grads_bitwise(const grads *a, const grads *b, const gdn_case *c) {
    const int64_t nqk = (int64_t)c->B * c->T * c->H * c->K, nv = (int64_t)c->B * c->T * c->H * c->V;
    const int64_t ng = (int64_t)c->B * c->T * c->H, ns = (int64_t)c->B * c->H * c->K * c->V;
    return bit_equal(a->dq, b->dq, nqk * 4) && bit_equal(a->dk, b->dk, nqk * 4) && bit_equal(a->dv, b->dv, nv * 4) &&
           bit_equal(a->dg, b->dg, ng * 4) && bit_equal(a->db, b->db, ng * 4) && bit_equal(a->dh0, b->dh0, ns * 4);
}

static void bwd_call(const gdn_case *c, const float *dout, const float *dht, grads *G, int write) {
    (write ? pn_cuda_gated_delta_bwd_fast_write : pn_cuda_gated_delta_bwd_fast)(
        c->B, c->T, c->H, c->K, c->V, c->scale, c->l2, c->qb, c->kb, c->vb, c->g, c->beta, c->h0, dout, dht, G->dq,
        G->dk, G->dv, G->dg, G->db, G->dh0);
}

// V = 128: the reverse scan on mma.sync (its automatic choice); V = 256: on wgmma (four
// 64-column tiles), checked through the form the call reports.
static void test_backward(int K, int V, int H) {
    gdn_case c;
    case_make(&c, 1, 130, H, K, V, 1, 200 + K + V);
    const pn_rec_shape s = case_shape(&c);
    const int64_t nv = (int64_t)c.B * c.T * c.H * c.V, ns = (int64_t)c.B * c.H * c.K * c.V;
    float *dout = malloc(nv * sizeof(float)), *dht = malloc(ns * sizeof(float));
    pn_rng r = pn_rng_make(SEED + 3, 300 + K);
    for (int64_t i = 0; i < nv; i++) dout[i] = pn_rng_normal(&r);
    for (int64_t i = 0; i < ns; i++) dht[i] = pn_rng_normal(&r);

    grads start, ref, got, base, zero;
    grads_alloc(&start, &c), grads_alloc(&ref, &c), grads_alloc(&got, &c), grads_alloc(&base, &c);
    grads_alloc(&zero, &c);
    grads_fill(&start, &c, NAN, 400 + K);
    grads_copy(&ref, &start, &c);
    pn_gated_delta_bwd(&s, 0, c.l2, c.q, c.k, c.v, c.g, c.beta, c.h0, dout, dht, ref.dq, ref.dk, ref.dv, ref.dg,
                       ref.db, ref.dh0);

    char what[96];
    // the default: chunk kernel on mma.sync with double-buffered tiles, reverse scan on wgmma
    grads_copy(&base, &start, &c);
    bwd_call(&c, dout, dht, &base, 0);
    snprintf(what, sizeof what, "K %d V %d default", K, V);
    grads_check(&base, &ref, &start, &c, what);
    const int dscan = pn_cuda_gdn_fast_bwd_debug_last_dscan(), want = V % 256 == 0 ? 4 : 0;
    CHECK(dscan == want, "K %d V %d: the reverse scan ran form %d, expected %d", K, V, dscan, want);

    // the variants: each bit for bit as the default
    struct {
        const char *name;
        int wgmma, db, dscan;
    } var[3] = {{"chunk kernel single tiles", 0, 0, -1}, {"chunk kernel on wgmma", 1, 1, -1}, {"reverse scan on mma.sync", 0, 1, 0}};
    for (int i = 0; i < 3; i++) {
        pn_cuda_gdn_fast_bwd_debug_wgmma(var[i].wgmma);
        pn_cuda_gdn_fast_bwd_debug_chunk_db(var[i].db);
        pn_cuda_gdn_fast_bwd_debug_dscan(var[i].dscan);
        grads_copy(&got, &start, &c);
        bwd_call(&c, dout, dht, &got, 0);
        snprintf(what, sizeof what, "K %d V %d %s", K, V, var[i].name);
        grads_check(&got, &ref, &start, &c, what);
        CHECK(grads_bitwise(&got, &base, &c), "K %d V %d %s: gradients differ from the default's bits", K, V,
              var[i].name);
        pn_cuda_gdn_fast_bwd_debug_wgmma(0);
        pn_cuda_gdn_fast_bwd_debug_chunk_db(1);
        pn_cuda_gdn_fast_bwd_debug_dscan(-1);
    }

    // the write form: dq .. dβ written (poison before), dh0 still added (from 0 here)
    grads_fill(&zero, &c, 0.0f, 0);
    grads_copy(&got, &zero, &c);
    memset(got.dq, 0xff, (size_t)c.B * c.T * c.H * c.K * 4), memset(got.dk, 0xff, (size_t)c.B * c.T * c.H * c.K * 4);
    memset(got.dv, 0xff, nv * 4), memset(got.dg, 0xff, (size_t)c.B * c.T * c.H * 4);
    memset(got.db, 0xff, (size_t)c.B * c.T * c.H * 4);
    bwd_call(&c, dout, dht, &got, 1);
    grads_copy(&base, &zero, &c);
    bwd_call(&c, dout, dht, &base, 0);
    snprintf(what, sizeof what, "K %d V %d write form vs adding from 0", K, V);
    grads_check(&got, &base, NULL, &c, what);

    grads_free(&start), grads_free(&ref), grads_free(&got), grads_free(&base), grads_free(&zero);
    free(dout), free(dht);
    case_free(&c);
}

// No decay (g NULL), no start state (h0 NULL), no in-op L2 norm, T = 65 (a one-row last
// chunk): forward (o, ht) and the backward's adding form against the CPU op.
static void test_plain(void) {
    gdn_case c;
    case_make(&c, 2, 65, 1, 64, 64, 0, 500);
    const pn_rec_shape s = case_shape(&c);
    const int64_t nv = (int64_t)c.B * c.T * c.H * c.V, ns = (int64_t)c.B * c.H * c.K * c.V;
    float *oref = poisoned(nv), *htref = poisoned(ns), *o = poisoned(nv), *ht = poisoned(ns);
    pn_gated_delta_fwd(&s, 0, 0, c.q, c.k, c.v, NULL, c.beta, NULL, oref, htref);
    pn_bf16 *ob = malloc(nv * 2);
    memset(ob, 0xff, nv * 2);
    pn_cuda_gated_delta_fwd_fast(c.B, c.T, c.H, c.K, c.V, c.scale, 0, c.qb, c.kb, c.vb, NULL, c.beta, NULL, ob,
                                 PN_CUDA_BF16, ht);
    for (int64_t i = 0; i < nv; i++) o[i] = pn_bf16_to_f32(ob[i]);
    const double eo = rel_err(o, oref, nv), eh = rel_err(ht, htref, ns);
    CHECK(eo <= TOL && eh <= TOL, "plain (no g, h0, norm) forward: o err %.3e, ht err %.3e", eo, eh);
    printf("fwd plain (no g, h0, L2 norm; T 65)  o %.3e  ht %.3e\n", eo, eh);

    float *dout = malloc(nv * sizeof(float));
    pn_rng r = pn_rng_make(SEED + 3, 501);
    for (int64_t i = 0; i < nv; i++) dout[i] = pn_rng_normal(&r);
    grads start, ref, got;
    grads_alloc(&start, &c), grads_alloc(&ref, &c), grads_alloc(&got, &c);
    grads_fill(&start, &c, NAN, 502);
    grads_copy(&ref, &start, &c), grads_copy(&got, &start, &c);
    // no g: dg is not touched by either side (the CPU op gets NULL), so it stays at its start
    pn_gated_delta_bwd(&s, 0, 0, c.q, c.k, c.v, NULL, c.beta, NULL, dout, NULL, ref.dq, ref.dk, ref.dv, ref.dg, ref.db,
                       ref.dh0);
    pn_cuda_gated_delta_bwd_fast(c.B, c.T, c.H, c.K, c.V, c.scale, 0, c.qb, c.kb, c.vb, NULL, c.beta, NULL, dout,
                                 NULL, got.dq, got.dk, got.dv, got.dg, got.db, got.dh0);
    const int64_t ng = (int64_t)c.B * c.T * c.H;
    CHECK(bit_equal(got.dg, start.dg, ng * 4), "plain backward: dg changed although g is NULL");
    memcpy(got.dg, start.dg, ng * 4), memcpy(ref.dg, start.dg, ng * 4);
    // (dg is then 0 − 0 on both sides; rel_err of two zero vectors is 0)
    grads_check(&got, &ref, &start, &c, "plain (no g, h0, L2 norm; T 65)");
    grads_free(&start), grads_free(&ref), grads_free(&got);
    free(dout), free(oref), free(htref), free(o), free(ht), free(ob);
    case_free(&c);
}

int main(void) {
    emu_set_device_sms(132);
    const int Ks[3] = {64, 96, 128};
    const char *only = getenv("PN_EMU_K");  // e.g. PN_EMU_K=96 runs one head size
    for (int i = 0; i < 3; i++) {
        if (only && atoi(only) != Ks[i]) continue;
        const time_t t0 = time(NULL);
        test_forward(Ks[i], 128, 130);
        test_backward(Ks[i], 128, 2);
        printf("K %d: %.0f s\n", Ks[i], difftime(time(NULL), t0));
    }
    if (!only) {
        const time_t t0 = time(NULL);
        test_backward(96, 256, 1);  // the wgmma reverse scan
        test_forward(96, 256, 300);  // four real tiles per block, five chunks
        test_plain();
        // the same forward and backward under stricter schedules: each block's threads from the
        // last to the first (a shared-memory read of another thread's write with no barrier
        // between them reads stale data in one of the two orders); cp.async landing at its issue
        // (a fetch into a buffer issued before the barrier that frees it overwrites data its
        // readers have not read yet); and with that the first runnable thread always next (the
        // early warps run as far ahead of the others as the barriers let them), from either end
        static const struct {
            int reverse, eager, greedy;
            const char *what;
        } modes[4] = {{1, 0, 0, "threads in reverse order"},
                      {0, 1, 0, "cp.async landing at its issue"},
                      {0, 1, 1, "cp.async landing at its issue, the first runnable thread first"},
                      {1, 1, 1, "the same from the last thread"}};
        for (int m = 0; m < 4; m++) {
            emu_set_reverse(modes[m].reverse), emu_set_copy_eager(modes[m].eager), emu_set_greedy(modes[m].greedy);
            printf("-- %s\n", modes[m].what);
            test_forward(96, 256, 300);
            test_backward(96, 256, 1);
        }
        emu_set_reverse(0), emu_set_copy_eager(0), emu_set_greedy(0);
        printf("V 256, plain, stricter schedules: %.0f s\n", difftime(time(NULL), t0));
    }
    return test_summary("test_gdn_emu");
}
