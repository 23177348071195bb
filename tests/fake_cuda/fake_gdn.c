// fake_gdn.c — fake twins of kernels/cuda/pn_cuda_gdn.h (gated delta rule: decode step,
// chunked forward and backward) and pn_cuda_gdn_fast.h (the tensor-core forward, same
// contract) on the CPU: pn_gated_delta_fwd / _bwd of kernels/ops.h.
//
// q, k, v are widened from bf16; g (NULL = no decay), beta, states and gradients are
// fp32 already. qk_l2norm is passed through (the CPU op normalises inside, eps 1e-6,
// and back-propagates through it). The decode step is the CPU op with T = 1 in its
// recurrent form and h0 == ht == state; the chunked calls use chunk 64. NULL o / ht /
// gradients are honoured with temporaries where the CPU op needs a buffer.
// The fast forward's debug hooks: the segment count is remembered and reported back
// (1 when (K, V) would run on the tensor cores, 0 when the real op falls back), and the
// per-chunk stage (pn_cuda_gdn_fast_debug_prep) has no CPU twin: it exits. The fast
// backward is pn_cuda_gated_delta_bwd's fake (weak symbols: see the end of the file).
#include "tests/fake_cuda/fake_cuda.h"
#include "kernels/cuda/pn_cuda_gdn.h"
#include "kernels/cuda/pn_cuda_gdn_fast.h"
#include "kernels/ops.h"

static void check_gdn(int B, int T, int H, int K, int V) {
    if (B < 0 || T < 0 || H < 0 || K < 1 || K > 256 || V < 1)
        pn_die_internal(__FILE__, __LINE__, "gated delta shape B %d T %d H %d K %d V %d outside 1 <= K <= 256, V >= 1",
                        B, T, H, K, V);
}

static void gdn_fwd(int chunk, int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                    const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta, const float *h0, void *o,
                    pn_cuda_dtype o_dt, float *ht) {
    check_gdn(B, T, H, K, V);
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V;
    const pn_rec_shape s = {B, T, H, K, V, scale};
    float *qf = fk_from_bf16(q, nqk), *kf = fk_from_bf16(k, nqk), *vf = fk_from_bf16(v, nv);
    float *of = o ? fk_alloc(nv) : NULL;
    pn_gated_delta_fwd(&s, chunk, qk_l2norm, qf, kf, vf, g, beta, h0, of, ht);
    if (o) fk_store(o, o_dt, of, nv);
    free(qf), free(kf), free(vf), free(of);
}

void pn_cuda_gated_delta_step(const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v, const float *g,
                              const float *beta, float *state, void *o, pn_cuda_dtype o_dt, int B, int H, int K, int V,
                              float scale, int qk_l2norm) {
    // (B, H, K) is (B, T = 1, H, K): the step is the forward of one token, state in place.
    PN_ASSERT(state != NULL);
    gdn_fwd(0, B, 1, H, K, V, scale, qk_l2norm, q, k, v, g, beta, state, o, o_dt, state);
}

void pn_cuda_gated_delta_fwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                             const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta, const float *h0,
                             void *o, pn_cuda_dtype o_dt, float *ht) {
    gdn_fwd(FK_CHUNK, B, T, H, K, V, scale, qk_l2norm, q, k, v, g, beta, h0, o, o_dt, ht);
}

void pn_cuda_gated_delta_bwd(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                             const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta, const float *h0,
                             const float *dout, const float *dht, float *dq, float *dk, float *dv, float *dg,
                             float *dbeta, float *dh0) {
    check_gdn(B, T, H, K, V);
    if (!dq && !dk && !dv && !dg && !dbeta && !dh0) return;
    const int64_t nqk = (int64_t)B * T * H * K, nv = (int64_t)B * T * H * V, ng = (int64_t)B * T * H;
    const int64_t ns = (int64_t)B * H * K * V;
    const pn_rec_shape s = {B, T, H, K, V, scale};
    float *qf = fk_from_bf16(q, nqk), *kf = fk_from_bf16(k, nqk), *vf = fk_from_bf16(v, nv);
    float *t[6];
    pn_gated_delta_bwd(&s, FK_CHUNK, qk_l2norm, qf, kf, vf, g, beta, h0, dout, dht, fk_or_temp(dq, nqk, &t[0]),
                       fk_or_temp(dk, nqk, &t[1]), fk_or_temp(dv, nv, &t[2]), fk_or_temp(g ? dg : NULL, ng, &t[3]),
                       fk_or_temp(dbeta, ng, &t[4]), fk_or_temp(dh0, ns, &t[5]));
    for (int i = 0; i < 6; i++) free(t[i]);
    free(qf), free(kf), free(vf);
}

// ---------------------------------------------------------------- fast forward (pn_cuda_gdn_fast.h)
static int g_fast_segments = 0, g_fast_last = 0;
static int g_fast_wgmma = 0, g_fast_last_wgmma = 0;  // which state pass the GPU would run (the math is the same)

int pn_cuda_gated_delta_fwd_fast_supported(int K, int V) { return (K == 64 || K == 96 || K == 128) && V % 32 == 0; }

void pn_cuda_gated_delta_fwd_fast(int B, int T, int H, int K, int V, float scale, int qk_l2norm, const pn_bf16 *q,
                                  const pn_bf16 *k, const pn_bf16 *v, const float *g, const float *beta,
                                  const float *h0, void *o, pn_cuda_dtype o_dt, float *ht) {
    g_fast_last = pn_cuda_gated_delta_fwd_fast_supported(K, V) ? (g_fast_segments >= 2 ? g_fast_segments : 1) : 0;
    g_fast_last_wgmma = g_fast_last && o && pn_cuda_gdn_fast_pick_bv(V) == 64 ? g_fast_wgmma : 0;
    gdn_fwd(FK_CHUNK, B, T, H, K, V, scale, qk_l2norm, q, k, v, g, beta, h0, o, o_dt, ht);
}

void pn_cuda_gdn_fast_debug_segments(int nseg) { g_fast_segments = nseg; }
int pn_cuda_gdn_fast_debug_last_segments(void) { return g_fast_last; }
// (a forced form only: the automatic choice depends on the GPU's SM count; the twins report 0 for it)
void pn_cuda_gdn_fast_debug_wgmma(int nw) { g_fast_wgmma = nw == 1 || nw == 2 || nw == 4 ? nw : 0; }
int pn_cuda_gdn_fast_debug_last_wgmma(void) { return g_fast_last_wgmma; }
static int g_fast_bwd_wgmma = 0;  // the backward's chunk-kernel form: no meaning for the CPU twins
void pn_cuda_gdn_fast_bwd_debug_wgmma(int on) { g_fast_bwd_wgmma = on != 0; }
static int g_fast_bv = 0;  // the V tile has no meaning for the CPU twins; kept for the API
void pn_cuda_gdn_fast_debug_bv(int bv) { g_fast_bv = bv == 32 || bv == 64 ? bv : 0; }
int pn_cuda_gdn_fast_pick_bv(int V) {
    if (g_fast_bv == 32 || (g_fast_bv == 64 && V % 64 == 0)) return g_fast_bv;
    return V % 64 == 0 ? 64 : 32;
}

void pn_cuda_gdn_fast_debug_prep(int B, int T, int H, int K, float scale, int qk_l2norm, const pn_bf16 *q,
                                 const pn_bf16 *k, const float *g, const float *beta, pn_bf16 *A, pn_bf16 *P,
                                 float *rows) {
    FK_UNAVAILABLE();
}

// The tensor-core backward (gdn_fast_bwd.cu), added to pn_cuda_gdn_fast.h after this file
// was written: exactly pn_cuda_gated_delta_bwd's contract, so the same fake. Weak, so that
// a fake its kernel's author adds elsewhere takes precedence without a duplicate symbol.
__attribute__((weak)) int pn_cuda_gated_delta_bwd_fast_supported(int K, int V) {
    return (K == 64 || K == 96 || K == 128) && V % 32 == 0;
}

// The reverse scan's form the GPU would run (the math is the same): 4 (wgmma) under the
// automatic choice where V / 64 divides by 4, else 0 (gdn_fast_bwd.cu's rule).
static int g_fake_dscan_form = -1, g_fake_last_dscan = 0;
void pn_cuda_gdn_fast_bwd_debug_dscan(int form) { g_fake_dscan_form = form == 0 ? 0 : -1; }
int pn_cuda_gdn_fast_bwd_debug_last_dscan(void) { return g_fake_last_dscan; }
void pn_cuda_gdn_fast_bwd_debug_overlap(int on) { (void)on; }  // one stream: nothing overlaps
void pn_cuda_gdn_fast_bwd_debug_chunk_db(int on) { (void)on; }  // no tiles
static void fake_note_dscan(int T, int K, int V) {
    g_fake_last_dscan = pn_cuda_gated_delta_bwd_fast_supported(K, V) && T > 0 && g_fake_dscan_form != 0 &&
                                pn_cuda_gdn_fast_pick_bv(V) == 64 && (V / 64) % 4 == 0
                            ? 4
                            : 0;
}

__attribute__((weak)) void pn_cuda_gated_delta_bwd_fast(int B, int T, int H, int K, int V, float scale, int qk_l2norm,
                                                        const pn_bf16 *q, const pn_bf16 *k, const pn_bf16 *v,
                                                        const float *g, const float *beta, const float *h0,
                                                        const float *dout, const float *dht, float *dq, float *dk,
                                                        float *dv, float *dg, float *dbeta, float *dh0) {
    fake_note_dscan(T, K, V);
    pn_cuda_gated_delta_bwd(B, T, H, K, V, scale, qk_l2norm, q, k, v, g, beta, h0, dout, dht, dq, dk, dv, dg, dbeta,
                            dh0);
}

// The write form: zero the per-token gradients, then the adding contract.
__attribute__((weak)) void pn_cuda_gated_delta_bwd_fast_write(int B, int T, int H, int K, int V, float scale,
                                                              int qk_l2norm, const pn_bf16 *q, const pn_bf16 *k,
                                                              const pn_bf16 *v, const float *g, const float *beta,
                                                              const float *h0, const float *dout, const float *dht,
                                                              float *dq, float *dk, float *dv, float *dg, float *dbeta,
                                                              float *dh0) {
    fake_note_dscan(T, K, V);
    const size_t N = (size_t)B * (size_t)(T > 0 ? T : 0) * (size_t)H;
    if (dq) memset(dq, 0, N * (size_t)K * sizeof(float));
    if (dk) memset(dk, 0, N * (size_t)K * sizeof(float));
    if (dv) memset(dv, 0, N * (size_t)V * sizeof(float));
    if (dg && g) memset(dg, 0, N * sizeof(float));
    if (dbeta) memset(dbeta, 0, N * sizeof(float));
    pn_cuda_gated_delta_bwd(B, T, H, K, V, scale, qk_l2norm, q, k, v, g, beta, h0, dout, dht, dq, dk, dv, dg, dbeta,
                            dh0);
}
