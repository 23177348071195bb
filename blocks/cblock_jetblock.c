// cblock_jetblock.c — JetBlock on CUDA for training: the twin of blocks/jetblock.c
// (blocks/cblock.h has the contract, BLOCKS.md "jetblock" the math).
//
//   q = silu(x Wqᵀ), k = silu(x Wkᵀ)                    (l2n inside the recurrence)
//   kern = w2 silu(w1 x) + b2;  v = silu(dynconv(x Wvᵀ; kern))
//   β, g, gated delta rule, gated output norm, o_proj   (the shared delta tail)
//
// Saved for backward (act): x Wvᵀ (N, H·V) bf16 (the dynamic conv's input), v itself (N, H·V)
// bf16 (the recurrence's input: recomputing it costs the generator's two GEMMs and the
// dynamic conv, ~1.1 ms per layer at 8×4096 of Qwen2.5-1.5B, for 201 MB — more time per
// byte than anything else the training step could keep) and the tail's (see
// cblock_delta_util.h). Everything else is recomputed, and that is also the more precise
// choice: x Wqᵀ, x Wkᵀ and the generator hidden x W1ᵀ come out of their GEMMs in
// fp32 and go straight into the fp32 silu (and its backward), so q, k and silu(h1) are
// rounded to bf16 once, as operands; the backward redoes those three small GEMMs (C·(2·H·K
// + R) multiply-adds per token) instead of keeping 2·(2·H·K + R) bytes per token. The
// per-token kernels (H·V·W per token, 4× v, the largest tensor of the block) are never
// saved: both passes make them (one (N, R)·(R, H·V·W) GEMM) for a group of whole sequences
// at a time (≤ JET_GROUP_ROWS rows unless one sequence is longer), which bounds their
// scratch and that of their fp32 gradient in backward independently of the batch.
// Backward: the seven input projections (q, k, v, β, a, the output gate, the generator's
// first layer) write their bf16 gradients into one slab (cblock_delta_util.h), so dx is
// one GEMM against the stacked weights instead of seven read-modify-writes of fp32 dx,
// and each weight gradient is one GEMM over all N rows, the value path's included.
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/cblock_delta_util.h"
#include "kernels/cuda/pn_cuda_block_elem.h"
#include "kernels/cuda/pn_cuda_linear.h"

// Spec order of blocks/jetblock.c (pn_cblock_setup copies that spec).
enum { P_Q, P_K, P_V, P_A, P_B, P_ALOG, P_DT, P_W1, P_W2, P_B2, P_G, P_ONORM, P_O, P_COUNT };
static const pn_bu_delta_ix JET_IX = {-1, -1, -1, -1, -1, -1, P_B, P_A, P_ALOG, P_DT, P_G, P_ONORM, P_O};

#define JET_GROUP_ROWS 8192

typedef struct {
    int C, H, K, V, W, R, HK, HV;
} cjet_dims;

static cjet_dims cjet_dims_of(const pn_block_cfg *c) {
    cjet_dims d = {c->C, c->H, c->K, c->V, c->conv_size, 0, c->H * c->K, c->H * c->V};
    d.R = PN_MAX(1, d.HV / PN_MAX(1, c->gen_reduction));  // as jet_dims_of
    return d;
}

typedef struct {
    pn_bf16 *vp, *v;
    pn_cbd_act tail;
} cjet_act;

static size_t cjet_act_layout(const pn_block_cfg *c, int64_t N, void *base, cjet_act *a) {
    cjet_dims d = cjet_dims_of(c);
    pn_cbd_cursor cur = {(char *)base, 0};
    a->vp = pn_cbd_take(&cur, (size_t)(N * d.HV) * sizeof(pn_bf16));
    a->v = pn_cbd_take(&cur, (size_t)(N * d.HV) * sizeof(pn_bf16));
    pn_cbd_act_layout(c, &JET_IX, N, &cur, &a->tail);
    return cur.used;
}

static size_t cjet_act_bytes(const pn_block_cfg *c, int B, int T) {
    cjet_act a;
    return cjet_act_layout(c, (int64_t)B * T, NULL, &a);
}

// Sequences per kernel group.
static int cjet_group(int B, int T) {
    int nb = T > 0 ? JET_GROUP_ROWS / T : B;
    return PN_MAX(1, PN_MIN(B, nb));
}

// pre = x Wpᵀ (rows, D) fp32 and act = silu(pre) bf16, both fresh scratch.
static void cjet_proj_silu(const pn_cblock *b, const pn_bf16 *x, int p, int64_t rows, int D, float **pre,
                           pn_bf16 **act) {
    *pre = pn_cbd_scratch_f32(rows * D);
    pn_cuda_linear_fwd(*pre, PN_CUDA_F32, x, b->w16[p], NULL, rows, b->cfg.C, D);
    *act = pn_cbd_scratch_bf16(rows * D);
    pn_cuda_silu_fwd_bf16(*act, *pre, rows * D);
}

// Generator for rows [r0, r0 + rows): h1 = x W1ᵀ (rows, R) fp32, s1 = silu(h1) bf16 and
// kern = s1 W2ᵀ + b2 (rows, H·V·W) bf16, all fresh scratch.
static void cjet_kernels(const pn_cblock *b, const pn_bf16 *x, int64_t r0, int64_t rows, float **h1, pn_bf16 **s1,
                         pn_bf16 **kern) {
    cjet_dims d = cjet_dims_of(&b->cfg);
    cjet_proj_silu(b, x + r0 * d.C, P_W1, rows, d.R, h1, s1);
    *kern = pn_cbd_scratch_bf16(rows * d.HV * d.W);
    pn_cuda_linear_fwd(*kern, PN_CUDA_BF16, *s1, b->w16[P_W2], b->w16[P_B2], rows, d.R, d.HV * d.W);
}

// a->v (N, H·V) bf16 = silu(dynconv(x Wvᵀ; kern)) from the saved x Wvᵀ.
static void cjet_v(const pn_cblock *b, const cjet_act *a, const pn_bf16 *x, int B, int T) {
    cjet_dims d = cjet_dims_of(&b->cfg);
    pn_bf16 *v = a->v;
    int nb = cjet_group(B, T);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int gb = PN_MIN(nb, B - b0);
        int64_t r0 = (int64_t)b0 * T, rows = (int64_t)gb * T;
        float *h1;
        pn_bf16 *s1, *kern;
        cjet_kernels(b, x, r0, rows, &h1, &s1, &kern);
        pn_cuda_dynconv_causal_fwd(v + r0 * d.HV, PN_CUDA_BF16, a->vp + r0 * d.HV, kern, NULL, gb, T, d.HV, d.W, 1);
        pn_cuda_free(kern), pn_cuda_free(s1), pn_cuda_free(h1);
    }
}

static void cjet_forward(const pn_cblock *b, pn_bf16 *y, const pn_bf16 *x, int B, int T, void *act,
                         pn_cblock_ctx *ctx) {
    cjet_dims d = cjet_dims_of(&b->cfg);
    int64_t N = (int64_t)B * T;
    if (N <= 0) return;
    cjet_act a;
    cjet_act_layout(&b->cfg, N, act, &a);

    float *qp, *kp;
    pn_bf16 *q, *k;
    cjet_proj_silu(b, x, P_Q, N, d.HK, &qp, &q);
    cjet_proj_silu(b, x, P_K, N, d.HK, &kp, &k);
    pn_cuda_free(qp), pn_cuda_free(kp);
    pn_cuda_linear_fwd(a.vp, PN_CUDA_BF16, x, b->w16[P_V], NULL, N, d.C, d.HV);
    cjet_v(b, &a, x, B, T);
    pn_cbd_fwd(b, &JET_IX, &a.tail, ctx, y, x, q, k, a.v, B, T);
    pn_cuda_free(q), pn_cuda_free(k);
}

static void cjet_backward(const pn_cblock *b, float *dx, const float *dy, const pn_bf16 *x, int B, int T,
                          const void *act, pn_cblock_ctx *ctx) {
    (void)ctx;
    cjet_dims d = cjet_dims_of(&b->cfg);
    float *const *G = b->grads;
    int64_t N = (int64_t)B * T;
    if (N <= 0) return;
    cjet_act a;
    cjet_act_layout(&b->cfg, N, (void *)act, &a);
    // every input projection's gradient goes to the slab; dx once at the end
    const int parts[] = {P_V, P_G, P_Q, P_K, P_W1, P_A, P_B};
    pn_cbd_slab slab;
    pn_cbd_slab_open(&slab, b, N, (int)PN_ARRAY_LEN(parts), parts);

    // recompute q, k exactly as the forward did (same ops, same bits); v is saved
    float *qp, *kp;
    pn_bf16 *q, *k;
    cjet_proj_silu(b, x, P_Q, N, d.HK, &qp, &q);
    cjet_proj_silu(b, x, P_K, N, d.HK, &kp, &k);
    float *dq, *dk, *dv;
    pn_cbd_bwd(b, &JET_IX, &a.tail, &slab, dy, q, k, a.v, B, T, &dq, &dk, &dv);
    pn_cuda_free(q), pn_cuda_free(k);
    pn_cbd_slab_put_silu_bwd(&slab, P_Q, 0, N, dq, qp);
    pn_cbd_slab_put_silu_bwd(&slab, P_K, 0, N, dk, kp);
    pn_cuda_free(dq), pn_cuda_free(dk), pn_cuda_free(qp), pn_cuda_free(kp);

    // value path, a group of sequences at a time: dynconv → (x Wvᵀ, kern) → generator
    int nb = cjet_group(B, T);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int gb = PN_MIN(nb, B - b0);
        int64_t r0 = (int64_t)b0 * T, rows = (int64_t)gb * T;
        float *h1;
        pn_bf16 *s1, *kern;
        cjet_kernels(b, x, r0, rows, &h1, &s1, &kern);
        // dkern straight to bf16 (the GEMM below reads it so): no fp32 copy of the
        // largest gradient of the block; the gradient of x Wvᵀ straight into the slab
        pn_bf16 *dkern = pn_cbd_scratch_bf16(rows * d.HV * d.W);
        pn_cuda_dynconv_causal_bwd(pn_cbd_slab_at(&slab, P_V, r0), PN_CUDA_BF16, slab.ld, dkern, PN_CUDA_BF16,
                                   dv + r0 * d.HV, a.vp + r0 * d.HV, kern, NULL, gb, T, d.HV, d.W, 1);
        pn_cuda_free(kern);
        float *ds1 = pn_cbd_zeros_f32(rows * d.R);
        pn_cuda_linear_bwd(ds1, PN_CUDA_F32, G[P_W2], G[P_B2], dkern, s1, b->w16[P_W2], rows, d.R, d.HV * d.W);
        pn_cuda_free(dkern), pn_cuda_free(s1);
        pn_cbd_slab_put_silu_bwd(&slab, P_W1, r0, rows, ds1, h1);
        pn_cuda_free(ds1), pn_cuda_free(h1);
    }
    pn_cuda_free(dv);
    pn_cbd_slab_close(&slab, b, dx, x);
}

const pn_cblock_type pn_cblock_jetblock = {
    .name = "jetblock",
    .act_bytes = cjet_act_bytes,
    .forward = cjet_forward,
    .backward = cjet_backward,
};
#endif  // POSTNAS_HAVE_CUDA
