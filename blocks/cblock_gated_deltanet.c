// cblock_gated_deltanet.c — Gated DeltaNet and DeltaNet on CUDA for training: twins of
// blocks/gated_deltanet.c and blocks/deltanet.c (blocks/cblock.h has the contract,
// BLOCKS.md "gated_deltanet" / "deltanet" the math).
//
//   q = silu(conv(x Wqᵀ; q_conv1d)), k likewise (l2n inside the recurrence), v likewise
//   β, [g], delta rule, [gated] output norm, o_proj     (the shared delta tail)
//
// As on the CPU (pn_bu_convdelta_*), the two blocks are one computation: DeltaNet is the
// table without a, A_log, dt_bias and g_proj. Saved for backward: the three projections
// x Wqᵀ, x Wkᵀ (N, H·K), x Wvᵀ (N, H·V) bf16 and the tail's (cblock_delta_util.h); the
// short convs with their SiLU are recomputed from them (the conv op fuses the SiLU and
// its backward recomputes the pre-activation).
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/cblock_delta_util.h"
#include "kernels/cuda/pn_cuda_linear.h"

// Spec orders of blocks/gated_deltanet.c and blocks/deltanet.c.
enum { G_Q, G_K, G_V, G_A, G_B, G_ALOG, G_DT, G_QC, G_KC, G_VC, G_G, G_ONORM, G_O, G_COUNT };
enum { D_Q, D_K, D_V, D_B, D_QC, D_KC, D_VC, D_ONORM, D_O, D_COUNT };
static const pn_bu_delta_ix GDN_IX = {G_Q, G_K, G_V, G_QC, G_KC, G_VC, G_B, G_A, G_ALOG, G_DT, G_G, G_ONORM, G_O};
static const pn_bu_delta_ix DN_IX = {D_Q, D_K, D_V, D_QC, D_KC, D_VC, D_B, -1, -1, -1, -1, D_ONORM, D_O};

typedef struct {
    pn_bf16 *qp, *kp, *vp;
    pn_cbd_act tail;
} ccd_act;

static size_t ccd_act_layout(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int64_t N, void *base, ccd_act *a) {
    pn_bu_dims d = pn_bu_dims_of(c);
    pn_cbd_cursor cur = {(char *)base, 0};
    a->qp = pn_cbd_take(&cur, (size_t)(N * d.HK) * sizeof(pn_bf16));
    a->kp = pn_cbd_take(&cur, (size_t)(N * d.HK) * sizeof(pn_bf16));
    a->vp = pn_cbd_take(&cur, (size_t)(N * d.HV) * sizeof(pn_bf16));
    pn_cbd_act_layout(c, ix, N, &cur, &a->tail);
    return cur.used;
}

// silu(conv(proj)) (N, D) bf16, fresh scratch.
static pn_bf16 *ccd_conv(const pn_cblock *b, const pn_bf16 *proj, int p, int B, int T, int D) {
    pn_bf16 *o = pn_cbd_scratch_bf16((int64_t)B * T * D);
    pn_cuda_conv_causal_fwd(o, PN_CUDA_BF16, proj, b->w32[p], NULL, NULL, B, T, D, b->cfg.conv_size, 1);
    return o;
}

static void ccd_forward(const pn_cblock *b, const pn_bu_delta_ix *ix, pn_bf16 *y, const pn_bf16 *x, int B, int T,
                        void *act, const pn_cblock_ctx *ctx) {
    pn_bu_dims d = pn_bu_dims_of(&b->cfg);
    pn_bf16 *const *W = b->w16;
    int64_t N = (int64_t)B * T;
    if (N <= 0) return;
    ccd_act a;
    ccd_act_layout(&b->cfg, ix, N, act, &a);
    pn_cuda_linear_fwd(a.qp, PN_CUDA_BF16, x, W[ix->q], NULL, N, d.C, d.HK);
    pn_cuda_linear_fwd(a.kp, PN_CUDA_BF16, x, W[ix->k], NULL, N, d.C, d.HK);
    pn_cuda_linear_fwd(a.vp, PN_CUDA_BF16, x, W[ix->v], NULL, N, d.C, d.HV);
    pn_bf16 *q = ccd_conv(b, a.qp, ix->q_conv, B, T, d.HK);
    pn_bf16 *k = ccd_conv(b, a.kp, ix->k_conv, B, T, d.HK);
    pn_bf16 *v = ccd_conv(b, a.vp, ix->v_conv, B, T, d.HV);
    pn_cbd_fwd(b, ix, &a.tail, ctx, y, x, q, k, v, B, T);
    pn_cuda_free(q), pn_cuda_free(k), pn_cuda_free(v);
}

// One path's projection gradient, written by the conv's backward straight into the slab:
// the path is silu(conv(x Wpᵀ; Wc)) and dact the gradient of its output.
static void ccd_path_bwd(const pn_cblock *b, const pn_cbd_slab *slab, const float *dact, const pn_bf16 *proj, int p,
                         int pc, int B, int T, int D) {
    pn_cuda_conv_causal_bwd(pn_cbd_slab_at(slab, p, 0), PN_CUDA_BF16, slab->ld, b->grads[pc], NULL, dact, proj,
                            b->w32[pc], NULL, NULL, B, T, D, b->cfg.conv_size, 1);
}

static void ccd_backward(const pn_cblock *b, const pn_bu_delta_ix *ix, float *dx, const float *dy, const pn_bf16 *x,
                         int B, int T, const void *act) {
    pn_bu_dims d = pn_bu_dims_of(&b->cfg);
    int64_t N = (int64_t)B * T;
    if (N <= 0) return;
    ccd_act a;
    ccd_act_layout(&b->cfg, ix, N, (void *)act, &a);
    // every input projection's gradient goes to the slab; dx once at the end
    int parts[PN_CBD_SLAB_MAX], n = 0;
    parts[n++] = ix->v;
    if (ix->g >= 0) parts[n++] = ix->g;
    parts[n++] = ix->q;
    parts[n++] = ix->k;
    if (ix->a >= 0) parts[n++] = ix->a;
    parts[n++] = ix->b;
    pn_cbd_slab slab;
    pn_cbd_slab_open(&slab, b, N, n, parts);

    pn_bf16 *q = ccd_conv(b, a.qp, ix->q_conv, B, T, d.HK);
    pn_bf16 *k = ccd_conv(b, a.kp, ix->k_conv, B, T, d.HK);
    pn_bf16 *v = ccd_conv(b, a.vp, ix->v_conv, B, T, d.HV);
    float *dq, *dk, *dv;
    pn_cbd_bwd(b, ix, &a.tail, &slab, dy, q, k, v, B, T, &dq, &dk, &dv);
    pn_cuda_free(q), pn_cuda_free(k), pn_cuda_free(v);
    ccd_path_bwd(b, &slab, dq, a.qp, ix->q, ix->q_conv, B, T, d.HK);
    ccd_path_bwd(b, &slab, dk, a.kp, ix->k, ix->k_conv, B, T, d.HK);
    ccd_path_bwd(b, &slab, dv, a.vp, ix->v, ix->v_conv, B, T, d.HV);
    pn_cuda_free(dq), pn_cuda_free(dk), pn_cuda_free(dv);
    pn_cbd_slab_close(&slab, b, dx, x);
}

// ---- Gated DeltaNet

static size_t cgdn_act_bytes(const pn_block_cfg *c, int B, int T) {
    ccd_act a;
    return ccd_act_layout(c, &GDN_IX, (int64_t)B * T, NULL, &a);
}

static void cgdn_forward(const pn_cblock *b, pn_bf16 *y, const pn_bf16 *x, int B, int T, void *act,
                         pn_cblock_ctx *ctx) {
    ccd_forward(b, &GDN_IX, y, x, B, T, act, ctx);
}

static void cgdn_backward(const pn_cblock *b, float *dx, const float *dy, const pn_bf16 *x, int B, int T,
                          const void *act, pn_cblock_ctx *ctx) {
    (void)ctx;
    ccd_backward(b, &GDN_IX, dx, dy, x, B, T, act);
}

const pn_cblock_type pn_cblock_gated_deltanet = {
    .name = "gated_deltanet",
    .act_bytes = cgdn_act_bytes,
    .forward = cgdn_forward,
    .backward = cgdn_backward,
};

// ---- DeltaNet

static size_t cdn_act_bytes(const pn_block_cfg *c, int B, int T) {
    ccd_act a;
    return ccd_act_layout(c, &DN_IX, (int64_t)B * T, NULL, &a);
}

static void cdn_forward(const pn_cblock *b, pn_bf16 *y, const pn_bf16 *x, int B, int T, void *act,
                        pn_cblock_ctx *ctx) {
    ccd_forward(b, &DN_IX, y, x, B, T, act, ctx);
}

static void cdn_backward(const pn_cblock *b, float *dx, const float *dy, const pn_bf16 *x, int B, int T,
                         const void *act, pn_cblock_ctx *ctx) {
    (void)ctx;
    ccd_backward(b, &DN_IX, dx, dy, x, B, T, act);
}

const pn_cblock_type pn_cblock_deltanet = {
    .name = "deltanet",
    .act_bytes = cdn_act_bytes,
    .forward = cdn_forward,
    .backward = cdn_backward,
};
#endif  // POSTNAS_HAVE_CUDA
