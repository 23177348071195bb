// cblock_gla.c — CUDA training twin of `gla` (blocks/gla.c, contract in blocks/cblock.h):
// fla GatedLinearAttention.
//
//   q, k, v, g = x W{q,k,v,g}ᵀ                  bf16 GEMMs
//   lr = x Wgk0ᵀ (16 wide, bf16);  z = lr Wgk1ᵀ + b (fp32);  gk = logsigmoid(z) / 16
//   o  = gla(q, k, v, gk; K^-1/2)               chunked recurrence (gla_fast.cu on the tensor
//                                               cores for K ∈ {64, 96, 128}), o fp32
//   y  = (rmsh(o) · w · silu(g)) Woᵀ
//
// Saved (act): q, k, v, g, lr bf16 and o fp32 (cblock.h says why) — (2·HK + 2·HV + 16)·2 + 4·HV
// bytes per token. The
// gate gk (fp32, HK per token) and the normed output are recomputed in backward from
// lr (a rank-16 GEMM) and o, g (one norm pass): cheaper than keeping HK + HV more
// floats per token. The gate's backward, dz = dgk/16 · (1 − sigmoid(z)), is written with
// the element-wise ops as dgk/16 · sigmoid(−z).
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/cblock.h"
#include "kernels/cuda/pn_cuda_block_elem.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include <math.h>

#define CGLA_RANK 16        // gk_proj low-rank size (blocks/gla.c GLA_RANK)
#define CGLA_NORMALIZER 16  // gate logit normalizer (blocks/gla.c GLA_NORMALIZER)

enum { P_Q, P_K, P_V, P_G, P_GK0, P_GK1, P_GK1B, P_O, P_NORM, CGLA_NP };

typedef pn_cblock_gated_act cgla_act;

static size_t cgla_act_layout(const pn_block_cfg *c, int B, int T, void *base, cgla_act *a) {
    return pn_cblock_gated_act_layout(c, B, T, CGLA_RANK, base, a);
}

static size_t cgla_act_bytes(const pn_block_cfg *c, int B, int T) { return cgla_act_layout(c, B, T, NULL, NULL); }

// z (N, HK) fp32 = lr Wgk1ᵀ + b; gk (N, HK) fp32 = logsigmoid(z) / 16 (gk may be z).
static void cgla_gate(const pn_cblock *b, float *z, float *gk, const pn_bf16 *lr, int64_t N) {
    const int HK = b->cfg.H * b->cfg.K;
    pn_cuda_linear_fwd(z, PN_CUDA_F32, lr, b->w16[P_GK1], b->w16[P_GK1B], N, CGLA_RANK, HK);
    pn_cuda_logsigmoid_fwd(gk, z, N * HK);
    pn_cuda_scale(gk, gk, 1.0f / (float)CGLA_NORMALIZER, N * HK);
}

static void cgla_forward(const pn_cblock *b, pn_bf16 *y, const pn_bf16 *x, int B, int T, void *act,
                         pn_cblock_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    const int64_t N = (int64_t)B * T;
    const int C = c->C, H = c->H, HK = c->H * c->K, HV = c->H * c->V;
    cgla_act a;
    cgla_act_layout(c, B, T, act, &a);
    if (N <= 0) return;
    pn_cuda_linear_fwd(a.q, PN_CUDA_BF16, x, b->w16[P_Q], NULL, N, C, HK);
    pn_cuda_linear_fwd(a.k, PN_CUDA_BF16, x, b->w16[P_K], NULL, N, C, HK);
    pn_cuda_linear_fwd(a.v, PN_CUDA_BF16, x, b->w16[P_V], NULL, N, C, HV);
    pn_cuda_linear_fwd(a.g, PN_CUDA_BF16, x, b->w16[P_G], NULL, N, C, HV);
    pn_cuda_linear_fwd(a.lr, PN_CUDA_BF16, x, b->w16[P_GK0], NULL, N, C, CGLA_RANK);
    float *gk = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * HK * sizeof(float));
    cgla_gate(b, gk, gk, a.lr, N);
    pn_cuda_gla_fwd_fast(B, T, H, c->K, c->V, 1.0f / sqrtf((float)c->K), a.q, a.k, a.v, gk, NULL, a.o, PN_CUDA_F32,
                         NULL);
    pn_cuda_free(gk);

    pn_cblock_gated_out_fwd(b, ctx, P_NORM, P_O, y, a.o, a.g, N);
}

static void cgla_backward(const pn_cblock *b, float *dx, const float *dy, const pn_bf16 *x, int B, int T,
                          const void *act, pn_cblock_ctx *ctx) {
    (void)ctx;
    const pn_block_cfg *c = &b->cfg;
    const int64_t N = (int64_t)B * T;
    const int C = c->C, H = c->H, HK = c->H * c->K, HV = c->H * c->V;
    cgla_act a;
    cgla_act_layout(c, B, T, (void *)act, &a);
    if (N <= 0) return;

    float *d_o, *dg;
    pn_cblock_gated_out_bwd(b, P_NORM, P_O, dy, a.o, a.g, N, &d_o, &dg);

    // Recurrence, with the gate recomputed from the saved low-rank activation.
    float *z = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * HK * sizeof(float));
    float *gk = pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (size_t)N * HK * sizeof(float));
    cgla_gate(b, z, gk, a.lr, N);
    float *dq = pn_cblock_zeros(N * HK), *dk = pn_cblock_zeros(N * HK), *dv = pn_cblock_zeros(N * HV), *dgk = pn_cblock_zeros(N * HK);
    pn_cuda_gla_bwd_fast(B, T, H, c->K, c->V, 1.0f / sqrtf((float)c->K), a.q, a.k, a.v, gk, NULL, d_o, NULL, dq, dk,
                         dv, dgk, NULL);
    pn_cuda_free(gk);
    pn_cuda_free(d_o);

    // gk = logsigmoid(z)/16: dz = dgk/16 · sigmoid(−z), in place over z and dgk.
    pn_cuda_scale(z, z, -1.0f, N * HK);
    pn_cuda_sigmoid_fwd(z, z, N * HK);
    pn_cuda_mul_fwd(dgk, dgk, z, N * HK);
    pn_cuda_scale(dgk, dgk, 1.0f / (float)CGLA_NORMALIZER, N * HK);
    pn_cuda_free(z);
    float *dlr = pn_cblock_zeros(N * CGLA_RANK);
    {
        pn_bf16 *dz16 = pn_cblock_to_bf16(dgk, N * HK);
        pn_cuda_linear_bwd(dlr, PN_CUDA_F32, b->grads[P_GK1], b->grads[P_GK1B], dz16, a.lr, b->w16[P_GK1], N,
                           CGLA_RANK, HK);
        pn_cuda_free(dz16);
    }
    pn_cuda_free(dgk);
    pn_cblock_proj_bwd(b, P_GK0, dx, dlr, x, N, C, CGLA_RANK);
    pn_cuda_free(dlr);

    pn_cblock_proj_bwd(b, P_Q, dx, dq, x, N, C, HK);
    pn_cblock_proj_bwd(b, P_K, dx, dk, x, N, C, HK);
    pn_cblock_proj_bwd(b, P_V, dx, dv, x, N, C, HV);
    pn_cblock_proj_bwd(b, P_G, dx, dg, x, N, C, HV);
    pn_cuda_free(dq);
    pn_cuda_free(dk);
    pn_cuda_free(dv);
    pn_cuda_free(dg);
}

const pn_cblock_type pn_cblock_gla = {
    .name = "gla",
    .act_bytes = cgla_act_bytes,
    .forward = cgla_forward,
    .backward = cgla_backward,
};
#endif  // POSTNAS_HAVE_CUDA
