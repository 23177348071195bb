// fake_linear.c — fake twins of kernels/cuda/pn_cuda_linear.h: simple GLA, GLA, the
// delta rule, DPLR, the causal depthwise convs and the gated RMSNorm, on the CPU.
//
// bf16 activations are widened to fp32, the CPU op of kernels/ops.h runs (the
// recurrences in their chunked form, chunk 64 as the kernels), and o / y are written
// bf16 or fp32 as o_dt / y_dt say. Where the CUDA contract goes beyond the CPU op the
// fake does the extra part itself: g NULL (simple GLA: g = 0), o NULL (state only),
// every NULL gradient (zeroed temporaries, dropped), the convs' act = 1 (SiLU after the
// conv; the backward recomputes the pre-activation, so dbias sees silu'·dy), and the
// gated norm's optional rstd. h0 == ht works because the CPU ops read the state into
// private memory before they write ht.
#include "tests/fake_cuda/fake_cuda.h"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include "kernels/ops.h"

static void check_rec(int B, int T, int H, int K, int V) {
    if (B < 0 || T < 0 || H < 0 || K < 1 || K > 256 || V < 1)
        pn_die_internal(__FILE__, __LINE__, "recurrence shape B %d T %d H %d K %d V %d outside the CUDA limits", B, T,
                        H, K, V);
}

// ---------------------------------------------------------------- simple GLA
void pn_cuda_simple_gla_fwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                            const pn_bf16 *v, const float *g, const float *h0, void *o, pn_cuda_dtype o_dt, float *ht) {
    check_rec(B, T, H, K, V);
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V, ng = (int64_t)B * T * H;
    const pn_rec_shape s = {B, T, H, K, V, scale};
    float *qf = fk_from_bf16(q, nqk), *kf = fk_from_bf16(k, nqk), *vf = fk_from_bf16(v, nv);
    float *gz = g ? NULL : fk_zeros(ng), *of = fk_alloc(nv);
    pn_simple_gla_fwd(&s, FK_CHUNK, qf, kf, vf, g ? g : gz, h0, of, ht);
    fk_store(o, o_dt, of, nv);
    free(qf), free(kf), free(vf), free(gz), free(of);
}

void pn_cuda_simple_gla_bwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                            const pn_bf16 *v, const float *g, const float *h0, const float *dout, const float *dht,
                            float *dq, float *dk, float *dv, float *dg, float *dh0) {
    check_rec(B, T, H, K, V);
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V, ng = (int64_t)B * T * H;
    const int64_t ns = (int64_t)B * H * K * V;
    const pn_rec_shape s = {B, T, H, K, V, scale};
    float *qf = fk_from_bf16(q, nqk), *kf = fk_from_bf16(k, nqk), *vf = fk_from_bf16(v, nv);
    float *gz = g ? NULL : fk_zeros(ng);
    float *t[5];
    pn_simple_gla_bwd(&s, FK_CHUNK, qf, kf, vf, g ? g : gz, h0, dout, dht, fk_or_temp(dq, nqk, &t[0]),
                      fk_or_temp(dk, nqk, &t[1]), fk_or_temp(dv, nv, &t[2]), fk_or_temp(g ? dg : NULL, ng, &t[3]),
                      fk_or_temp(dh0, ns, &t[4]));
    for (int i = 0; i < 5; i++) free(t[i]);
    free(qf), free(kf), free(vf), free(gz);
}

// The tensor-core twins (kernels/cuda/sgla_fast.cu) share the contract; on the CPU they are
// the same op.
int pn_cuda_simple_gla_fast_supported(int K, int V) {
    return (K == 64 || K == 96 || K == 128) && V >= 32 && V % 32 == 0;
}
static int g_sgla_last_fast = 0;
int pn_cuda_simple_gla_fast_debug_last(void) { return g_sgla_last_fast; }

void pn_cuda_simple_gla_fwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                                 const pn_bf16 *v, const float *g, const float *h0, void *o, pn_cuda_dtype o_dt,
                                 float *ht) {
    g_sgla_last_fast = pn_cuda_simple_gla_fast_supported(K, V) && T > 0;
    pn_cuda_simple_gla_fwd(B, T, H, K, V, scale, q, k, v, g, h0, o, o_dt, ht);
}

void pn_cuda_simple_gla_bwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                                 const pn_bf16 *v, const float *g, const float *h0, const float *dout,
                                 const float *dht, float *dq, float *dk, float *dv, float *dg, float *dh0) {
    g_sgla_last_fast = pn_cuda_simple_gla_fast_supported(K, V) && T > 0;
    pn_cuda_simple_gla_bwd(B, T, H, K, V, scale, q, k, v, g, h0, dout, dht, dq, dk, dv, dg, dh0);
}

// ---------------------------------------------------------------- GLA
void pn_cuda_gla_fwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                     const pn_bf16 *v, const float *gk, const float *h0, void *o, pn_cuda_dtype o_dt, float *ht) {
    check_rec(B, T, H, K, V);
    PN_ASSERT(gk != NULL);
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V;
    const pn_rec_shape s = {B, T, H, K, V, scale};
    float *qf = fk_from_bf16(q, nqk), *kf = fk_from_bf16(k, nqk), *vf = fk_from_bf16(v, nv), *of = fk_alloc(nv);
    pn_gla_fwd(&s, FK_CHUNK, qf, kf, vf, gk, h0, of, ht);
    fk_store(o, o_dt, of, nv);
    free(qf), free(kf), free(vf), free(of);
}

void pn_cuda_gla_bwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                     const pn_bf16 *v, const float *gk, const float *h0, const float *dout, const float *dht, float *dq,
                     float *dk, float *dv, float *dgk, float *dh0) {
    check_rec(B, T, H, K, V);
    PN_ASSERT(gk != NULL);
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V, ns = (int64_t)B * H * K * V;
    const pn_rec_shape s = {B, T, H, K, V, scale};
    float *qf = fk_from_bf16(q, nqk), *kf = fk_from_bf16(k, nqk), *vf = fk_from_bf16(v, nv);
    float *t[5];
    pn_gla_bwd(&s, FK_CHUNK, qf, kf, vf, gk, h0, dout, dht, fk_or_temp(dq, nqk, &t[0]), fk_or_temp(dk, nqk, &t[1]),
               fk_or_temp(dv, nv, &t[2]), fk_or_temp(dgk, nqk, &t[3]), fk_or_temp(dh0, ns, &t[4]));
    for (int i = 0; i < 5; i++) free(t[i]);
    free(qf), free(kf), free(vf);
}

// The tensor-core twins (kernels/cuda/gla_fast.cu), as simple GLA's above.
int pn_cuda_gla_fast_supported(int K, int V) { return pn_cuda_simple_gla_fast_supported(K, V); }
static int g_gla_last_fast = 0;
int pn_cuda_gla_fast_debug_last(void) { return g_gla_last_fast; }

void pn_cuda_gla_fwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                          const pn_bf16 *v, const float *gk, const float *h0, void *o, pn_cuda_dtype o_dt, float *ht) {
    g_gla_last_fast = pn_cuda_gla_fast_supported(K, V) && T > 0;
    pn_cuda_gla_fwd(B, T, H, K, V, scale, q, k, v, gk, h0, o, o_dt, ht);
}

void pn_cuda_gla_bwd_fast(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                          const pn_bf16 *v, const float *gk, const float *h0, const float *dout, const float *dht,
                          float *dq, float *dk, float *dv, float *dgk, float *dh0) {
    g_gla_last_fast = pn_cuda_gla_fast_supported(K, V) && T > 0;
    pn_cuda_gla_bwd(B, T, H, K, V, scale, q, k, v, gk, h0, dout, dht, dq, dk, dv, dgk, dh0);
}

// ---------------------------------------------------------------- delta rule (= gated delta, g = NULL)
void pn_cuda_delta_rule_fwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                            const pn_bf16 *k, const pn_bf16 *v, const float *beta, const float *h0, void *o,
                            pn_cuda_dtype o_dt, float *ht) {
    pn_cuda_gated_delta_fwd(B, T, H, K, V, scale, qk_l2norm, q, k, v, NULL, beta, h0, o, o_dt, ht);
}

void pn_cuda_delta_rule_bwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                            const pn_bf16 *k, const pn_bf16 *v, const float *beta, const float *h0, const float *dout,
                            const float *dht, float *dq, float *dk, float *dv, float *dbeta, float *dh0) {
    pn_cuda_gated_delta_bwd(B, T, H, K, V, scale, qk_l2norm, q, k, v, NULL, beta, h0, dout, dht, dq, dk, dv, NULL,
                            dbeta, dh0);
}

// ---------------------------------------------------------------- DPLR
void pn_cuda_dplr_fwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                      const pn_bf16 *v, const float *gk, const pn_bf16 *a, const pn_bf16 *b, const float *h0, void *o,
                      pn_cuda_dtype o_dt, float *ht) {
    check_rec(B, T, H, K, V);
    PN_ASSERT(gk != NULL);
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V;
    const pn_rec_shape s = {B, T, H, K, V, scale};
    float *qf = fk_from_bf16(q, nqk), *kf = fk_from_bf16(k, nqk), *vf = fk_from_bf16(v, nv);
    float *af = fk_from_bf16(a, nqk), *bf = fk_from_bf16(b, nqk), *of = fk_alloc(nv);
    pn_dplr_fwd(&s, FK_CHUNK, qf, kf, vf, gk, af, bf, h0, of, ht);
    fk_store(o, o_dt, of, nv);
    free(qf), free(kf), free(vf), free(af), free(bf), free(of);
}

void pn_cuda_dplr_bwd(int B, int T, int H, int K, int V, float scale, const pn_bf16 *q, const pn_bf16 *k,
                      const pn_bf16 *v, const float *gk, const pn_bf16 *a, const pn_bf16 *b, const float *h0,
                      const float *dout, const float *dht, float *dq, float *dk, float *dv, float *dgk, float *da,
                      float *db, float *dh0) {
    check_rec(B, T, H, K, V);
    PN_ASSERT(gk != NULL);
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V, ns = (int64_t)B * H * K * V;
    const pn_rec_shape s = {B, T, H, K, V, scale};
    float *qf = fk_from_bf16(q, nqk), *kf = fk_from_bf16(k, nqk), *vf = fk_from_bf16(v, nv);
    float *af = fk_from_bf16(a, nqk), *bf = fk_from_bf16(b, nqk);
    float *t[7];
    pn_dplr_bwd(&s, FK_CHUNK, qf, kf, vf, gk, af, bf, h0, dout, dht, fk_or_temp(dq, nqk, &t[0]),
                fk_or_temp(dk, nqk, &t[1]), fk_or_temp(dv, nv, &t[2]), fk_or_temp(dgk, nqk, &t[3]),
                fk_or_temp(da, nqk, &t[4]), fk_or_temp(db, nqk, &t[5]), fk_or_temp(dh0, ns, &t[6]));
    for (int i = 0; i < 7; i++) free(t[i]);
    free(qf), free(kf), free(vf), free(af), free(bf);
}

// ---------------------------------------------------------------- causal depthwise convs
static void check_conv(int W, int act) {
    if (W < 1 || W > 16 || (act != 0 && act != 1))
        pn_die_internal(__FILE__, __LINE__, "conv W %d act %d outside the CUDA op's 1 <= W <= 16, act 0/1", W, act);
}

void pn_cuda_conv_causal_fwd(void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const float *w, const float *bias,
                             const float *x_prev, int B, int T, int D, int W, int act) {
    check_conv(W, act);
    const int64_t n = (int64_t)B * T * D;
    if (n <= 0) return;
    float *xf = fk_from_bf16(x, n), *yf = fk_alloc(n);
    pn_conv_causal_fwd(yf, xf, w, bias, x_prev, B, T, D, W);
    if (act) pn_silu_fwd(yf, yf, n);
    fk_store(y, y_dt, yf, n);
    free(xf), free(yf);
}

// The conv backwards' dx: the fp32 += form as it is (ldx = D), or for the bf16 WRITTEN form a
// zeroed fp32 temporary that fk_dx_finish rounds into rows ldx apart.
static float *fk_dx_begin(void *dx, pn_cuda_dtype dx_dt, int64_t ldx, int64_t rows, int D) {
    if (!dx) return NULL;
    if (dx_dt == PN_CUDA_F32) {
        PN_ASSERT(ldx == D);
        return dx;
    }
    PN_ASSERT(dx_dt == PN_CUDA_BF16 && ldx >= D);
    return fk_zeros(rows * D);
}
static void fk_dx_finish(void *dx, pn_cuda_dtype dx_dt, int64_t ldx, float *t, int64_t rows, int D) {
    if (!dx || dx_dt == PN_CUDA_F32) return;
    for (int64_t r = 0; r < rows; r++) fk_store_bf16((pn_bf16 *)dx + r * ldx, t + r * D, D);
    free(t);
}

void pn_cuda_conv_causal_bwd(void *dx_out, pn_cuda_dtype dx_dt, int64_t ldx, float *dw, float *dbias, const float *dy,
                             const pn_bf16 *x, const float *w, const float *bias, const float *x_prev, int B, int T,
                             int D, int W, int act) {
    check_conv(W, act);
    const int64_t n = (int64_t)B * T * D;
    if (n <= 0 || (!dx_out && !dw && !dbias)) return;
    float *dx = fk_dx_begin(dx_out, dx_dt, ldx, (int64_t)B * T, D);
    float *xf = fk_from_bf16(x, n), *dz = NULL;
    if (act) {  // dy is the gradient of silu(z), z = conv(x) + bias: recompute z
        float *z = fk_alloc(n);
        pn_conv_causal_fwd(z, xf, w, bias, x_prev, B, T, D, W);
        dz = fk_zeros(n);
        pn_silu_bwd(dz, dy, z, n);
        free(z);
    }
    pn_conv_causal_bwd(dx, dw, dbias, act ? dz : dy, xf, w, x_prev, B, T, D, W);
    fk_dx_finish(dx_out, dx_dt, ldx, dx, (int64_t)B * T, D);
    free(xf), free(dz);
}

void pn_cuda_dynconv_causal_fwd(void *y, pn_cuda_dtype y_dt, const pn_bf16 *x, const pn_bf16 *kern,
                                const float *x_prev, int B, int T, int D, int W, int act) {
    check_conv(W, act);
    const int64_t n = (int64_t)B * T * D;
    if (n <= 0) return;
    float *xf = fk_from_bf16(x, n), *kf = fk_from_bf16(kern, n * W), *yf = fk_alloc(n);
    pn_dynconv_causal_fwd(yf, xf, kf, x_prev, B, T, D, W);
    if (act) pn_silu_fwd(yf, yf, n);
    fk_store(y, y_dt, yf, n);
    free(xf), free(kf), free(yf);
}

void pn_cuda_dynconv_causal_bwd(void *dx_out, pn_cuda_dtype dx_dt, int64_t ldx, void *dkern, pn_cuda_dtype dkern_dt,
                                const float *dy, const pn_bf16 *x, const pn_bf16 *kern, const float *x_prev, int B,
                                int T, int D, int W, int act) {
    check_conv(W, act);
    const int64_t n = (int64_t)B * T * D;
    if (n <= 0 || (!dx_out && !dkern)) return;
    float *dx = fk_dx_begin(dx_out, dx_dt, ldx, (int64_t)B * T, D);
    float *xf = fk_from_bf16(x, n), *kf = fk_from_bf16(kern, n * W), *dz = NULL;
    if (act) {
        float *z = fk_alloc(n);
        pn_dynconv_causal_fwd(z, xf, kf, x_prev, B, T, D, W);
        dz = fk_zeros(n);
        pn_silu_bwd(dz, dy, z, n);
        free(z);
    }
    // bf16 dkern is WRITTEN: the CPU op adds into zeros, then one rounding
    float *dk = dkern && dkern_dt == PN_CUDA_BF16 ? fk_zeros(n * W) : dkern;
    pn_dynconv_causal_bwd(dx, dk, act ? dz : dy, xf, kf, x_prev, B, T, D, W);
    if (dk && dk != dkern) fk_store(dkern, PN_CUDA_BF16, dk, n * W), free(dk);
    fk_dx_finish(dx_out, dx_dt, ldx, dx, (int64_t)B * T, D);
    free(xf), free(kf), free(dz);
}

// ---------------------------------------------------------------- gated RMSNorm
// x (n) of dtype x_dt as a fresh fp32 copy.
static float *fk_x_f32(const void *x, pn_cuda_dtype x_dt, int64_t n) {
    PN_ASSERT(x_dt == PN_CUDA_BF16 || x_dt == PN_CUDA_F32);
    return x_dt == PN_CUDA_F32 ? fk_dup(x, n) : fk_from_bf16(x, n);
}

void pn_cuda_rmsnorm_gated_fwd(void *y, pn_cuda_dtype y_dt, float *rstd, const void *x, pn_cuda_dtype x_dt,
                               const float *w, const pn_bf16 *gate, int64_t N, int D, float eps) {
    if (N <= 0) return;
    float *xf = fk_x_f32(x, x_dt, N * D), *gf = fk_from_bf16(gate, N * D), *yf = fk_alloc(N * D), *tmp = NULL;
    pn_rmsnorm_gated_fwd(yf, fk_or_temp(rstd, N, &tmp), xf, w, gf, N, D, eps);
    fk_store(y, y_dt, yf, N * D);
    free(xf), free(gf), free(yf), free(tmp);
}

void pn_cuda_rmsnorm_gated_bwd(float *dx, float *dw, float *dgate, const float *dy, const void *x, pn_cuda_dtype x_dt,
                               const float *w, const pn_bf16 *gate, const float *rstd, int64_t N, int D) {
    if (N <= 0 || (!dx && !dw && !dgate)) return;
    float *xf = fk_x_f32(x, x_dt, N * D), *gf = fk_from_bf16(gate, N * D);
    pn_rmsnorm_gated_bwd(dx, dw, gate ? dgate : NULL, dy, xf, w, gf, rstd, N, D);
    free(xf), free(gf);
}

void pn_cuda_rmsnorm_gated_bwd_write(float *dx, float *dw, float *dgate, const float *dy, const void *x,
                                     pn_cuda_dtype x_dt, const float *w, const pn_bf16 *gate, const float *rstd,
                                     int64_t N, int D) {
    if (N <= 0 || D <= 0) return;
    if (dx) memset(dx, 0, (size_t)N * D * sizeof(float));
    if (dgate && gate) memset(dgate, 0, (size_t)N * D * sizeof(float));
    pn_cuda_rmsnorm_gated_bwd(dx, dw, dgate, dy, x, x_dt, w, gate, rstd, N, D);
}

void pn_cuda_rmsnorm_gated_bwd_write_dg16(float *dx, float *dw, pn_bf16 *dgate, int heads, int64_t ldg,
                                          const float *dy, const void *x, pn_cuda_dtype x_dt, const float *w,
                                          const pn_bf16 *gate, const float *rstd, int64_t N, int D) {
    if (N <= 0 || D <= 0) return;
    PN_ASSERT(heads >= 1 && N % heads == 0 && ldg >= (int64_t)heads * D);
    float *t = dgate && gate ? fk_alloc(N * D) : NULL;
    pn_cuda_rmsnorm_gated_bwd_write(dx, dw, t, dy, x, x_dt, w, gate, rstd, N, D);
    if (t)
        for (int64_t line = 0; line < N / heads; line++) fk_store_bf16(dgate + line * ldg, t + line * heads * D, heads * D);
    free(t);
}
