// test_gla_emu.c — the tensor-core chunked simple GLA (kernels/cuda/sgla_fast.cu: RetNet,
// Mamba2) and GLA (kernels/cuda/gla_fast.cu) forward and backward run on the CPU: their real
// source compiled as host C++ against the emulation of kernels/cuda/emu (gdnf_emu.h says what
// it covers), checked against the CPU ops pn_simple_gla_fwd / _bwd and pn_gla_fwd / _bwd on
// the same bf16 inputs. The gpu test tests/gpu/test_cuda_gla_fast.c checks the same kernels on
// an H100; this one runs on every CI machine at small shapes.
//
// Per op and K ∈ {64, 96, 128} (V 128, B 1, T 130: two full chunks and a 2-row one, H 2):
//  - forward: o (bf16) and ht with h0 against the CPU op, normalised error ≤ 1e-2 (the gpu
//    test's bound: bf16 tensor-core operands, fp32 accumulation); the call must report that it
//    ran on the tensor cores (pn_cuda_*_fast_debug_last);
//  - backward: dq, dk, dv, dg / dgk, dh0 (the op adds: every gradient starts random, the
//    error is measured on the update) against the CPU op, ≤ 1e-2.
// Decays: simple GLA g = logsigmoid(N(0, 1)) / 4; GLA gk = logsigmoid(N(0, 1)) / 16 per
// channel (fla's GLA layer). Outputs start as 0xFF (NaN), so an element never written fails.
#include "core/common.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include "kernels/cuda/pn_cuda_ops.h"
#include "kernels/ops.h"
#include "tests/unit/test_util.h"
#include <math.h>
#include <string.h>
#include <time.h>

#define TOL 1e-2
#define SEED 20261125

void emu_set_device_sms(int sms);  // kernels/cuda/emu/emu_runtime.cpp

static float *vec(int64_t n) { return malloc((size_t)n * sizeof(float)); }
static float *poisoned(int64_t n) {
    float *p = vec(n);
    memset(p, 0xff, (size_t)n * sizeof(float));
    return p;
}
static float bf16r(float x) { return pn_bf16_to_f32(pn_f32_to_bf16(x)); }
static float logsig(float x) { return -log1pf(expf(-x)); }

// ‖(got − start) − (ref − start)‖ / ‖ref − start‖ (start NULL: plain)
static double upd_err(const float *got, const float *ref, const float *start, int64_t n) {
    float *a = vec(n), *b = vec(n);
    for (int64_t i = 0; i < n; i++) a[i] = got[i] - start[i], b[i] = ref[i] - start[i];
    const double e = rel_err(a, b, (size_t)n);
    free(a), free(b);
    return e;
}

static void test_op(int gla, int K) {
    const int B = 1, T = 130, H = 2, V = 128;
    const float scale = 1.0f / sqrtf((float)K);
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V, ns = (int64_t)B * H * K * V;
    const int64_t ng = gla ? nqk : (int64_t)B * T * H;
    const char *name = gla ? "gla" : "simple_gla";
    pn_rng r = pn_rng_make(SEED, 10 * K + gla);
    float *q = vec(nqk), *k = vec(nqk), *v = vec(nv), *g = vec(ng), *h0 = vec(ns);
    pn_bf16 *qb = malloc(nqk * 2), *kb = malloc(nqk * 2), *vb = malloc(nv * 2);
    for (int64_t i = 0; i < nqk; i++) {
        q[i] = bf16r(pn_rng_normal(&r)), k[i] = bf16r(pn_rng_normal(&r) / sqrtf((float)K));
        qb[i] = pn_f32_to_bf16(q[i]), kb[i] = pn_f32_to_bf16(k[i]);
    }
    for (int64_t i = 0; i < nv; i++) v[i] = bf16r(pn_rng_normal(&r)), vb[i] = pn_f32_to_bf16(v[i]);
    for (int64_t i = 0; i < ng; i++) g[i] = logsig(pn_rng_normal(&r)) / (gla ? 16.0f : 4.0f);
    for (int64_t i = 0; i < ns; i++) h0[i] = 0.5f * pn_rng_normal(&r);
    const pn_rec_shape s = {B, T, H, K, V, scale};

    // ---- forward
    float *oref = poisoned(nv), *htref = poisoned(ns), *o = vec(nv), *ht = poisoned(ns);
    pn_bf16 *ob = malloc(nv * 2);
    memset(ob, 0xff, nv * 2);
    if (gla) {
        pn_gla_fwd(&s, 0, q, k, v, g, h0, oref, htref);
        pn_cuda_gla_fwd_fast(B, T, H, K, V, scale, qb, kb, vb, g, h0, ob, PN_CUDA_BF16, ht);
    } else {
        pn_simple_gla_fwd(&s, 0, q, k, v, g, h0, oref, htref);
        pn_cuda_simple_gla_fwd_fast(B, T, H, K, V, scale, qb, kb, vb, g, h0, ob, PN_CUDA_BF16, ht);
    }
    const int fast = gla ? pn_cuda_gla_fast_debug_last() : pn_cuda_simple_gla_fast_debug_last();
    CHECK(fast == 1, "%s K %d forward: did not run on the tensor-core kernels", name, K);
    for (int64_t i = 0; i < nv; i++) o[i] = pn_bf16_to_f32(ob[i]);
    const double eo = rel_err(o, oref, (size_t)nv), eh = rel_err(ht, htref, (size_t)ns);
    CHECK(eo <= TOL && eh <= TOL, "%s K %d forward: o err %.3e, ht err %.3e (tol %g)", name, K, eo, eh, TOL);
    printf("%-10s K %3d fwd  o %.2e ht %.2e\n", name, K, eo, eh);

    // ---- backward (adding into random starts)
    float *dout = vec(nv), *dht = vec(ns);
    for (int64_t i = 0; i < nv; i++) dout[i] = pn_rng_normal(&r);
    for (int64_t i = 0; i < ns; i++) dht[i] = pn_rng_normal(&r);
    const int64_t n[5] = {nqk, nqk, nv, ng, ns};
    const char *gn[5] = {"dq", "dk", "dv", gla ? "dgk" : "dg", "dh0"};
    float *st[5], *rf[5], *gt[5];
    for (int t = 0; t < 5; t++) {
        st[t] = vec(n[t]), rf[t] = vec(n[t]), gt[t] = vec(n[t]);
        for (int64_t i = 0; i < n[t]; i++) st[t][i] = pn_rng_normal(&r);
        memcpy(rf[t], st[t], n[t] * sizeof(float)), memcpy(gt[t], st[t], n[t] * sizeof(float));
    }
    if (gla) {
        pn_gla_bwd(&s, 0, q, k, v, g, h0, dout, dht, rf[0], rf[1], rf[2], rf[3], rf[4]);
        pn_cuda_gla_bwd_fast(B, T, H, K, V, scale, qb, kb, vb, g, h0, dout, dht, gt[0], gt[1], gt[2], gt[3], gt[4]);
    } else {
        pn_simple_gla_bwd(&s, 0, q, k, v, g, h0, dout, dht, rf[0], rf[1], rf[2], rf[3], rf[4]);
        pn_cuda_simple_gla_bwd_fast(B, T, H, K, V, scale, qb, kb, vb, g, h0, dout, dht, gt[0], gt[1], gt[2], gt[3],
                                    gt[4]);
    }
    const int fastb = gla ? pn_cuda_gla_fast_debug_last() : pn_cuda_simple_gla_fast_debug_last();
    CHECK(fastb == 1, "%s K %d backward: did not run on the tensor-core kernels", name, K);
    printf("%-10s K %3d bwd ", name, K);
    for (int t = 0; t < 5; t++) {
        const double e = upd_err(gt[t], rf[t], st[t], n[t]);
        CHECK(e <= TOL, "%s K %d backward: %s err %.3e (tol %g)", name, K, gn[t], e, TOL);
        printf(" %s %.2e", gn[t], e);
        free(st[t]), free(rf[t]), free(gt[t]);
    }
    printf("\n");
    free(q), free(k), free(v), free(g), free(h0), free(qb), free(kb), free(vb);
    free(oref), free(htref), free(o), free(ht), free(ob), free(dout), free(dht);
}

int main(void) {
    emu_set_device_sms(132);
    const int Ks[3] = {64, 96, 128};
    for (int gla = 0; gla < 2; gla++)
        for (int i = 0; i < 3; i++) {
            const time_t t0 = time(NULL);
            test_op(gla, Ks[i]);
            printf("  (%.0f s)\n", difftime(time(NULL), t0));
        }
    return test_summary("test_gla_emu");
}
