// cblock_retnet.c — CUDA training twin of `retnet` (blocks/retnet.c, contract in
// blocks/cblock.h): fla MultiScaleRetention.
//
//   q, k = rope(x Wqᵀ), rope(x Wkᵀ)        bf16 GEMMs, RoPE in place (base 10000, positions 0..T−1)
//   v, g = x Wvᵀ, x Wgᵀ
//   o    = simple_gla(q, k, v, g_h; K^-1/2),  g_h = ln(1 − 2^(−5−h)) fixed per head
//          (tensor cores, sgla_fast.cu, for K ∈ {64, 96, 128} and V % 32 == 0; else fp32)
//   y    = (rmsh(o) · w · silu(g)) Woᵀ
//
// Saved (act): q, k after RoPE, v, g bf16 and o fp32 (cblock.h says why) — (2·HK + 2·HV)·2 + 4·HV
// bytes per token. The
// constant decay tensor (N, H) is refilled on the device (pn_cuda_retnet_decay_fill) and
// the normed output recomputed in backward from o and g, so neither is stored.
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/cblock.h"
#include "kernels/cuda/pn_cuda_block_elem_gla.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include <math.h>

#define CRET_THETA 10000.0f  // blocks/retnet.c RETNET_THETA

enum { P_Q, P_K, P_V, P_G, P_O, P_NORM, CRET_NP };

typedef pn_cblock_gated_act cret_act;

static size_t cret_act_layout(const pn_block_cfg *c, int B, int T, void *base, cret_act *a) {
    return pn_cblock_gated_act_layout(c, B, T, 0, base, a);
}

static size_t cret_act_bytes(const pn_block_cfg *c, int B, int T) { return cret_act_layout(c, B, T, NULL, NULL); }

static float *cret_decay(int64_t N, int H) {
    float *gd = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * H * sizeof(float));
    pn_cuda_retnet_decay_fill(gd, N, H);
    return gd;
}

static void cret_forward(const pn_cblock *b, pn_bf16 *y, const pn_bf16 *x, int B, int T, void *act,
                         pn_cblock_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    const int64_t N = (int64_t)B * T;
    const int C = c->C, H = c->H, HK = c->H * c->K, HV = c->H * c->V;
    cret_act a;
    cret_act_layout(c, B, T, act, &a);
    if (N <= 0) return;
    pn_cuda_linear_fwd(a.q, PN_CUDA_BF16, x, b->w16[P_Q], NULL, N, C, HK);
    pn_cuda_linear_fwd(a.k, PN_CUDA_BF16, x, b->w16[P_K], NULL, N, C, HK);
    pn_cuda_rope_fwd(a.q, B, T, H, c->K, 0, CRET_THETA);
    pn_cuda_rope_fwd(a.k, B, T, H, c->K, 0, CRET_THETA);
    pn_cuda_linear_fwd(a.v, PN_CUDA_BF16, x, b->w16[P_V], NULL, N, C, HV);
    pn_cuda_linear_fwd(a.g, PN_CUDA_BF16, x, b->w16[P_G], NULL, N, C, HV);
    float *gd = cret_decay(N, H);
    pn_cuda_simple_gla_fwd_fast(B, T, H, c->K, c->V, 1.0f / sqrtf((float)c->K), a.q, a.k, a.v, gd, NULL, a.o,
                                PN_CUDA_F32, NULL);
    pn_cuda_free(gd);

    pn_cblock_gated_out_fwd(b, ctx, P_NORM, P_O, y, a.o, a.g, N);
}

static void cret_backward(const pn_cblock *b, float *dx, const float *dy, const pn_bf16 *x, int B, int T,
                          const void *act, pn_cblock_ctx *ctx) {
    (void)ctx;
    const pn_block_cfg *c = &b->cfg;
    const int64_t N = (int64_t)B * T;
    const int C = c->C, H = c->H, HK = c->H * c->K, HV = c->H * c->V;
    cret_act a;
    cret_act_layout(c, B, T, (void *)act, &a);
    if (N <= 0) return;

    float *d_o, *dg;
    pn_cblock_gated_out_bwd(b, P_NORM, P_O, dy, a.o, a.g, N, &d_o, &dg);

    float *gd = cret_decay(N, H);
    float *dq = pn_cblock_zeros(N * HK), *dk = pn_cblock_zeros(N * HK), *dv = pn_cblock_zeros(N * HV);
    pn_cuda_simple_gla_bwd_fast(B, T, H, c->K, c->V, 1.0f / sqrtf((float)c->K), a.q, a.k, a.v, gd, NULL, d_o, NULL,
                                dq, dk, dv, NULL, NULL);
    pn_cuda_free(gd);
    pn_cuda_free(d_o);
    pn_cuda_rope_bwd(dq, B, T, H, c->K, 0, CRET_THETA);
    pn_cuda_rope_bwd(dk, B, T, H, c->K, 0, CRET_THETA);

    pn_cblock_proj_bwd(b, P_Q, dx, dq, x, N, C, HK);
    pn_cblock_proj_bwd(b, P_K, dx, dk, x, N, C, HK);
    pn_cblock_proj_bwd(b, P_V, dx, dv, x, N, C, HV);
    pn_cblock_proj_bwd(b, P_G, dx, dg, x, N, C, HV);
    pn_cuda_free(dq);
    pn_cuda_free(dk);
    pn_cuda_free(dv);
    pn_cuda_free(dg);
}

const pn_cblock_type pn_cblock_retnet = {
    .name = "retnet",
    .act_bytes = cret_act_bytes,
    .forward = cret_forward,
    .backward = cret_backward,
};
#endif  // POSTNAS_HAVE_CUDA
