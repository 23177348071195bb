// cblock_rwkv7.c — the CUDA training twin of blocks/rwkv7.c (contract in cblock.h).
//
// The forward follows the CPU block step by step: token shift and the six lerps
// (fp32 element-wise ops, each mix rounded to bf16 for its GEMMs), r/k/v projections,
// the w/a/v/g LoRAs (bias and activation applied in fp32 after the GEMM, so the
// biases — up to −6 for w — are not rounded to bf16), κ̂ and the DPLR factors
// (pn_cuda_rw_kab_fwd), the chunked DPLR recurrence, the per-head GroupNorm, the
// bonus term and output gate (pn_cuda_rw_bonus_fwd), o_proj.
//
// Saved for backward (act): what the GEMMs' weight gradients and the recurrence read in
// bf16 (r, k, v, a/b factors, LoRA hidden states, o_proj input), the fp32 values the
// element-wise backward needs (w, k0, a, g, κ̂, o, o2 and per-head statistics), and for
// a later layer v0 and the v-lerp weight s. The six mixed inputs are not kept: backward
// rebuilds each from x just before its GEMM's backward (one lerp each), which saves
// 6·C bf16 per token.
//
// Value residual (cblock.h): the first layer (cfg.first_rwkv) copies its bf16 v into
// ctx->v_first and in backward adds ctx->dv_first (the later layers' sum) to its dv;
// a later layer reads ctx->v_first and adds dL/dv_first into ctx->dv_first.
#ifdef POSTNAS_HAVE_CUDA
#include "blocks/cblock.h"
#include "kernels/cuda/pn_cuda_block_elem.h"
#include "kernels/cuda/pn_cuda_block_elem_mr.h"
#include "kernels/cuda/pn_cuda_linear.h"
#include <string.h>

#define W_SCALE 0.6065306597126334f  // e^−0.5, as blocks/rwkv7.c

// Parameter indices: the CPU block's table order (blocks/rwkv7.c rw_index).
typedef struct {
    int mu[6];  // x_r, x_w, x_k, x_v, x_a, x_g
    int kk, ka, rk, wr, wk, wv, wo, w0, w2, w2b, v0, v2, v2b, a0, a2, a2b, g0, g2, gnw, gnb, n;
} rw_idx;
enum { MU_R, MU_W, MU_K, MU_V, MU_A, MU_G };

static rw_idx rw_index(const pn_block_cfg *c) {
    rw_idx ix;
    int n = 0;
    for (int i = 0; i < 6; i++) ix.mu[i] = n++;
    ix.kk = n++, ix.ka = n++, ix.rk = n++;
    ix.wr = n++, ix.wk = n++, ix.wv = n++, ix.wo = n++;
    ix.w0 = n++, ix.w2 = n++, ix.w2b = n++;
    ix.v0 = c->first_rwkv ? -1 : n++;
    ix.v2 = c->first_rwkv ? -1 : n++;
    ix.v2b = c->first_rwkv ? -1 : n++;
    ix.a0 = n++, ix.a2 = n++, ix.a2b = n++;
    ix.g0 = n++, ix.g2 = n++;
    ix.gnw = n++, ix.gnb = n++;
    ix.n = n;
    return ix;
}

typedef struct {
    pn_bf16 *r, *wh, *vh, *v, *ah, *gh, *k, *aop, *bop, *xo;  // bf16: (N, C) or (N, lora)
    float *w, *k0, *v0, *s, *a, *g, *kh, *o, *o2;           // fp32 (N, C); v0, s: later layers only
    float *kr, *gmean, *grstd, *sb;                          // fp32 (N, H)
} rw_act;

static void *take(char *base, size_t *off, size_t bytes) {
    void *p = base && bytes ? base + *off : NULL;
    *off += (bytes + 255) & ~(size_t)255;
    return p;
}

static size_t rw_act_map(const pn_block_cfg *c, int64_t N, void *base, rw_act *a) {
    size_t off = 0, n = (size_t)N, C = (size_t)c->C, H = (size_t)c->H, later = !c->first_rwkv;
    char *p = base;
    const size_t h2 = sizeof(pn_bf16), f4 = sizeof(float);
    a->r = take(p, &off, n * C * h2);
    a->wh = take(p, &off, n * c->lora_w * h2);
    a->vh = take(p, &off, later * n * c->lora_v * h2);
    a->v = take(p, &off, n * C * h2);
    a->ah = take(p, &off, n * c->lora_a * h2);
    a->gh = take(p, &off, n * c->lora_g * h2);
    a->k = take(p, &off, n * C * h2);
    a->aop = take(p, &off, n * C * h2);
    a->bop = take(p, &off, n * C * h2);
    a->xo = take(p, &off, n * C * h2);
    a->w = take(p, &off, n * C * f4);
    a->k0 = take(p, &off, n * C * f4);
    a->v0 = take(p, &off, later * n * C * f4);
    a->s = take(p, &off, later * n * C * f4);
    a->a = take(p, &off, n * C * f4);
    a->g = take(p, &off, n * C * f4);
    a->kh = take(p, &off, n * C * f4);
    a->o = take(p, &off, n * C * f4);
    a->o2 = take(p, &off, n * C * f4);
    a->kr = take(p, &off, n * H * f4);
    a->gmean = take(p, &off, n * H * f4);
    a->grstd = take(p, &off, n * H * f4);
    a->sb = take(p, &off, n * H * f4);
    return off;
}

static size_t rw_act_bytes(const pn_block_cfg *c, int B, int T) {
    rw_act a;
    return rw_act_map(c, (int64_t)B * T, NULL, &a);
}

static float *scratch_f32(size_t n) { return pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (n ? n : 1) * sizeof(float)); }
static float *scratch_f32_zero(size_t n) {
    float *p = scratch_f32(n);
    pn_cuda_memset(p, 0, n * sizeof(float));
    return p;
}
static pn_bf16 *scratch_bf16(size_t n) { return pn_cuda_alloc(PN_CUDA_MEM_SCRATCH, (n ? n : 1) * sizeof(pn_bf16)); }

static int lora_max(const pn_block_cfg *c) {
    return PN_MAX(PN_MAX(c->lora_w, c->lora_a), PN_MAX(c->lora_v, c->lora_g));
}

static void rw_check(const pn_cblock *b, const rw_idx *ix) {
    PN_ASSERT(b->n_params == ix->n && strcmp(b->spec[ix->wo].name, "o_proj.weight") == 0 &&
              strcmp(b->spec[ix->gnb].name, "g_norm.bias") == 0);
    if (b->cfg.K > 256 || b->cfg.V != b->cfg.K)
        pn_die_internal(__FILE__, __LINE__, "rwkv7 on CUDA needs head size K <= 256 and V = K (got K %d V %d)",
                        b->cfg.K, b->cfg.V);
}

// The token-shift mixes: x as fp32 and δ = x_{t−1} − x_t, then one lerp per use.
typedef struct {
    float *xf, *dl, *xt32;
    pn_bf16 *xt16;
    int64_t N;
    int C;
} rw_mixer;

static void mixer_init(rw_mixer *m, const pn_bf16 *x, int B, int T, int C) {
    m->N = (int64_t)B * T;
    m->C = C;
    size_t n = (size_t)m->N * C;
    m->xf = scratch_f32(n), m->dl = scratch_f32(n), m->xt32 = scratch_f32(n), m->xt16 = scratch_bf16(n);
    pn_cuda_bf16_to_f32(m->xf, x, (int64_t)n);
    pn_cuda_token_shift_fwd(m->dl, m->xf, NULL, B, T, C);
}

// xt16 = bf16(x + δ·μ)
static const pn_bf16 *mixer_take(rw_mixer *m, const float *mu) {
    pn_cuda_lerp_fwd(m->xt32, m->xf, m->dl, mu, m->N, m->C);
    pn_cuda_f32_to_bf16(m->xt16, m->xt32, m->N * m->C);
    return m->xt16;
}

static void mixer_free(rw_mixer *m) {
    pn_cuda_free(m->xf), pn_cuda_free(m->dl), pn_cuda_free(m->xt32), pn_cuda_free(m->xt16);
}

static void rw_forward(const pn_cblock *b, pn_bf16 *y, const pn_bf16 *x, int B, int T, void *act,
                       pn_cblock_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    rw_idx ix = rw_index(c);
    rw_check(b, &ix);
    int64_t N = (int64_t)B * T;
    int C = c->C, H = c->H, K = c->K;
    size_t NC = (size_t)N * C;
    rw_act a;
    rw_act_map(c, N, act, &a);
    float *const *P = b->w32;
    pn_bf16 *const *P16 = b->w16;
    const int first = c->first_rwkv;
    if (!first && !(ctx && ctx->v_first))
        pn_die_internal(__FILE__, __LINE__, "a later rwkv7 layer needs ctx->v_first from the first rwkv7 layer");

    rw_mixer mx;
    mixer_init(&mx, x, B, T, C);
    float *t32 = scratch_f32(NC), *tl32 = scratch_f32((size_t)N * lora_max(c));

    const pn_bf16 *xt = mixer_take(&mx, P[ix.mu[MU_R]]);
    pn_cuda_linear_fwd(a.r, PN_CUDA_BF16, xt, P16[ix.wr], NULL, N, C, C);
    // w = −e^{−1/2}·sigmoid(tanh(x_w W0ᵀ) W2ᵀ + b2)
    xt = mixer_take(&mx, P[ix.mu[MU_W]]);
    pn_cuda_linear_fwd(tl32, PN_CUDA_F32, xt, P16[ix.w0], NULL, N, C, c->lora_w);
    pn_cuda_mr_bias_act_fwd(a.wh, PN_CUDA_BF16, tl32, NULL, 1.0f, PN_MR_ACT_TANH, N, c->lora_w);
    pn_cuda_linear_fwd(t32, PN_CUDA_F32, a.wh, P16[ix.w2], NULL, N, c->lora_w, C);
    pn_cuda_mr_bias_act_fwd(a.w, PN_CUDA_F32, t32, P[ix.w2b], -W_SCALE, PN_MR_ACT_SIGMOID, N, C);
    xt = mixer_take(&mx, P[ix.mu[MU_K]]);
    pn_cuda_linear_fwd(a.k0, PN_CUDA_F32, xt, P16[ix.wk], NULL, N, C, C);
    xt = mixer_take(&mx, P[ix.mu[MU_V]]);
    if (first) {
        pn_cuda_linear_fwd(a.v, PN_CUDA_BF16, xt, P16[ix.wv], NULL, N, C, C);
        if (ctx && ctx->v_first) pn_cuda_copy(ctx->v_first, a.v, NC * sizeof(pn_bf16));
    } else {
        pn_cuda_linear_fwd(a.v0, PN_CUDA_F32, xt, P16[ix.wv], NULL, N, C, C);
        pn_cuda_linear_fwd(a.vh, PN_CUDA_BF16, xt, P16[ix.v0], NULL, N, C, c->lora_v);
        pn_cuda_linear_fwd(t32, PN_CUDA_F32, a.vh, P16[ix.v2], NULL, N, c->lora_v, C);
        pn_cuda_mr_bias_act_fwd(a.s, PN_CUDA_F32, t32, P[ix.v2b], 1.0f, PN_MR_ACT_SIGMOID, N, C);
        pn_cuda_rw_vmix_fwd(a.v, a.v0, ctx->v_first, a.s, (int64_t)NC);
    }
    xt = mixer_take(&mx, P[ix.mu[MU_A]]);
    pn_cuda_linear_fwd(a.ah, PN_CUDA_BF16, xt, P16[ix.a0], NULL, N, C, c->lora_a);
    pn_cuda_linear_fwd(t32, PN_CUDA_F32, a.ah, P16[ix.a2], NULL, N, c->lora_a, C);
    pn_cuda_mr_bias_act_fwd(a.a, PN_CUDA_F32, t32, P[ix.a2b], 1.0f, PN_MR_ACT_SIGMOID, N, C);
    xt = mixer_take(&mx, P[ix.mu[MU_G]]);
    pn_cuda_linear_fwd(tl32, PN_CUDA_F32, xt, P16[ix.g0], NULL, N, C, c->lora_g);
    pn_cuda_mr_bias_act_fwd(a.gh, PN_CUDA_BF16, tl32, NULL, 1.0f, PN_MR_ACT_SIGMOID, N, c->lora_g);
    pn_cuda_linear_fwd(a.g, PN_CUDA_F32, a.gh, P16[ix.g2], NULL, N, c->lora_g, C);
    mixer_free(&mx);

    pn_cuda_rw_kab_fwd(a.k, a.aop, a.bop, a.kh, a.kr, a.k0, a.a, P[ix.kk], P[ix.ka], N, H, K);
    pn_cuda_dplr_fwd(B, T, H, K, K, 1.0f, a.r, a.k, a.v, a.w, a.aop, a.bop, NULL, a.o, PN_CUDA_F32, NULL);
    pn_cuda_groupnorm_fwd(t32, a.gmean, a.grstd, a.o, P[ix.gnw], P[ix.gnb], N, H, K, (float)K * c->norm_eps);
    pn_cuda_rw_bonus_fwd(a.xo, a.o2, a.sb, t32, a.r, a.k, a.v, P[ix.rk], a.g, N, H, K);
    pn_cblock_out_proj(ctx, y, a.xo, P16[ix.wo], NULL, N, C, C);
    pn_cuda_free(t32), pn_cuda_free(tl32);
}

static void rw_backward(const pn_cblock *b, float *dx, const float *dy, const pn_bf16 *x, int B, int T,
                        const void *act, pn_cblock_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    rw_idx ix = rw_index(c);
    rw_check(b, &ix);
    int64_t N = (int64_t)B * T;
    int C = c->C, H = c->H, K = c->K;
    size_t NC = (size_t)N * C, NL = (size_t)N * lora_max(c);
    rw_act a;
    rw_act_map(c, N, (void *)act, &a);
    float *const *P = b->w32;
    pn_bf16 *const *P16 = b->w16;
    float *const *G = b->grads;
    const int first = c->first_rwkv;
    if (!first && !(ctx && ctx->v_first && ctx->dv_first))
        pn_die_internal(__FILE__, __LINE__, "a later rwkv7 layer's backward needs ctx->v_first and ctx->dv_first");

    pn_bf16 *d16 = scratch_bf16(NC), *dl16 = scratch_bf16(NL);  // bf16 output gradients for linear_bwd
    float *dh = scratch_f32(NL), *dxt = scratch_f32(NC);

    // y = xo Woᵀ, xo = o2·g, o2 = on + sb·v
    float *d_y3 = scratch_f32_zero(NC);
    pn_cuda_f32_to_bf16(d16, dy, (int64_t)NC);
    pn_cuda_linear_bwd(d_y3, PN_CUDA_F32, G[ix.wo], NULL, d16, a.xo, P16[ix.wo], N, C, C);
    float *d_o2 = scratch_f32(NC), *dr = scratch_f32(NC), *dk = scratch_f32(NC), *dv = scratch_f32(NC);
    float *rows = scratch_f32(NC);  // per-row parameter-gradient terms, reduced by colsum
    pn_bf16 *d_g = scratch_bf16(NC);
    pn_cuda_rw_bonus_bwd(d_o2, d_g, dr, dk, dv, G[ix.rk] ? rows : NULL, d_y3, a.o2, a.sb, a.r, a.k, a.v, P[ix.rk],
                         a.g, N, H, K);
    if (G[ix.rk]) pn_cuda_mr_colsum(G[ix.rk], rows, N, C);
    float *d_o = d_y3;  // d_y3 is consumed
    pn_cuda_memset(d_o, 0, NC * sizeof(float));
    pn_cuda_groupnorm_bwd(d_o, G[ix.gnw], G[ix.gnb], d_o2, a.o, P[ix.gnw], a.gmean, a.grstd, N, H, K);

    // DPLR, then κ̂ / k / a
    float *dw = scratch_f32_zero(NC), *daop = scratch_f32_zero(NC), *dbop = d_o2;  // d_o2 is consumed
    pn_cuda_memset(dbop, 0, NC * sizeof(float));
    pn_cuda_dplr_bwd(B, T, H, K, K, 1.0f, a.r, a.k, a.v, a.w, a.aop, a.bop, NULL, d_o, NULL, dr, dk, dv, dw, daop, dbop,
                     NULL);
    float *dk0 = scratch_f32(NC), *da = d_o;  // d_o is consumed
    float *rows2 = G[ix.kk] ? scratch_f32(NC) : NULL;
    pn_cuda_rw_kab_bwd(dk0, da, G[ix.ka] ? rows : NULL, rows2, dk, daop, dbop, a.k0, a.a, a.kh, a.kr, P[ix.kk],
                       P[ix.ka], N, H, K);
    if (G[ix.ka]) pn_cuda_mr_colsum(G[ix.ka], rows, N, C);
    if (G[ix.kk]) pn_cuda_mr_colsum(G[ix.kk], rows2, N, C);
    pn_cuda_free(rows2);

    rw_mixer mx;
    mixer_init(&mx, x, B, T, C);
    float *ddl = scratch_f32_zero(NC);
    const pn_bf16 *xt;
#define RW_LERP_BWD(MU)                                                                          \
    pn_cuda_lerp_bwd(dx, ddl, G[ix.mu[MU]], dxt, mx.dl, P[ix.mu[MU]], N, C)

    // g = sigmoid(x_g G0ᵀ) G2ᵀ
    xt = mixer_take(&mx, P[ix.mu[MU_G]]);
    pn_cuda_memset(dh, 0, (size_t)N * c->lora_g * sizeof(float));
    pn_cuda_linear_bwd(dh, PN_CUDA_F32, G[ix.g2], NULL, d_g, a.gh, P16[ix.g2], N, c->lora_g, C);
    pn_cuda_mr_bias_act_bwd(dl16, PN_CUDA_BF16, dh, a.gh, PN_CUDA_BF16, 1.0f, PN_MR_ACT_SIGMOID, N * c->lora_g);
    pn_cuda_memset(dxt, 0, NC * sizeof(float));
    pn_cuda_linear_bwd(dxt, PN_CUDA_F32, G[ix.g0], NULL, dl16, xt, P16[ix.g0], N, C, c->lora_g);
    RW_LERP_BWD(MU_G);
    // a = sigmoid(x_a A0ᵀ A2ᵀ + b)
    xt = mixer_take(&mx, P[ix.mu[MU_A]]);
    pn_cuda_mr_bias_act_bwd(d16, PN_CUDA_BF16, da, a.a, PN_CUDA_F32, 1.0f, PN_MR_ACT_SIGMOID, (int64_t)NC);
    pn_cuda_memset(dh, 0, (size_t)N * c->lora_a * sizeof(float));
    pn_cuda_linear_bwd(dh, PN_CUDA_F32, G[ix.a2], G[ix.a2b], d16, a.ah, P16[ix.a2], N, c->lora_a, C);
    pn_cuda_f32_to_bf16(dl16, dh, N * c->lora_a);
    pn_cuda_memset(dxt, 0, NC * sizeof(float));
    pn_cuda_linear_bwd(dxt, PN_CUDA_F32, G[ix.a0], NULL, dl16, xt, P16[ix.a0], N, C, c->lora_a);
    RW_LERP_BWD(MU_A);
    // w = −e^{−1/2}·sigmoid(tanh(x_w W0ᵀ) W2ᵀ + b)
    xt = mixer_take(&mx, P[ix.mu[MU_W]]);
    pn_cuda_mr_bias_act_bwd(d16, PN_CUDA_BF16, dw, a.w, PN_CUDA_F32, -W_SCALE, PN_MR_ACT_SIGMOID, (int64_t)NC);
    pn_cuda_memset(dh, 0, (size_t)N * c->lora_w * sizeof(float));
    pn_cuda_linear_bwd(dh, PN_CUDA_F32, G[ix.w2], G[ix.w2b], d16, a.wh, P16[ix.w2], N, c->lora_w, C);
    pn_cuda_mr_bias_act_bwd(dl16, PN_CUDA_BF16, dh, a.wh, PN_CUDA_BF16, 1.0f, PN_MR_ACT_TANH, N * c->lora_w);
    pn_cuda_memset(dxt, 0, NC * sizeof(float));
    pn_cuda_linear_bwd(dxt, PN_CUDA_F32, G[ix.w0], NULL, dl16, xt, P16[ix.w0], N, C, c->lora_w);
    RW_LERP_BWD(MU_W);
    // v = v0 (first layer; plus what the later layers sent back) or lerp(v0, v_first, s)
    xt = mixer_take(&mx, P[ix.mu[MU_V]]);
    pn_cuda_memset(dxt, 0, NC * sizeof(float));
    float *dv0 = dw;  // dw is consumed
    if (first) {
        if (ctx && ctx->dv_first) pn_cuda_add_inplace(dv, ctx->dv_first, (int64_t)NC);
        pn_cuda_copy(dv0, dv, NC * sizeof(float));
    } else {
        pn_cuda_rw_vmix_bwd(dv0, ctx->dv_first, d16, dv, a.v0, ctx->v_first, a.s, (int64_t)NC);
        pn_cuda_memset(dh, 0, (size_t)N * c->lora_v * sizeof(float));
        pn_cuda_linear_bwd(dh, PN_CUDA_F32, G[ix.v2], G[ix.v2b], d16, a.vh, P16[ix.v2], N, c->lora_v, C);
        pn_cuda_f32_to_bf16(dl16, dh, N * c->lora_v);
        pn_cuda_linear_bwd(dxt, PN_CUDA_F32, G[ix.v0], NULL, dl16, xt, P16[ix.v0], N, C, c->lora_v);
    }
    pn_cuda_f32_to_bf16(d16, dv0, (int64_t)NC);
    pn_cuda_linear_bwd(dxt, PN_CUDA_F32, G[ix.wv], NULL, d16, xt, P16[ix.wv], N, C, C);
    RW_LERP_BWD(MU_V);
    // k, r projections
    xt = mixer_take(&mx, P[ix.mu[MU_K]]);
    pn_cuda_f32_to_bf16(d16, dk0, (int64_t)NC);
    pn_cuda_memset(dxt, 0, NC * sizeof(float));
    pn_cuda_linear_bwd(dxt, PN_CUDA_F32, G[ix.wk], NULL, d16, xt, P16[ix.wk], N, C, C);
    RW_LERP_BWD(MU_K);
    xt = mixer_take(&mx, P[ix.mu[MU_R]]);
    pn_cuda_f32_to_bf16(d16, dr, (int64_t)NC);
    pn_cuda_memset(dxt, 0, NC * sizeof(float));
    pn_cuda_linear_bwd(dxt, PN_CUDA_F32, G[ix.wr], NULL, d16, xt, P16[ix.wr], N, C, C);
    RW_LERP_BWD(MU_R);
#undef RW_LERP_BWD
    pn_cuda_token_shift_bwd(dx, ddl, B, T, C);

    mixer_free(&mx);
    pn_cuda_free(ddl), pn_cuda_free(dk0), pn_cuda_free(dw), pn_cuda_free(daop), pn_cuda_free(d_o2);
    pn_cuda_free(dr), pn_cuda_free(dk), pn_cuda_free(dv), pn_cuda_free(rows), pn_cuda_free(d_g);
    pn_cuda_free(d_y3), pn_cuda_free(d16), pn_cuda_free(dl16), pn_cuda_free(dh), pn_cuda_free(dxt);
}

const pn_cblock_type pn_cblock_rwkv7 = {
    .name = "rwkv7",
    .act_bytes = rw_act_bytes,
    .forward = rw_forward,
    .backward = rw_backward,
};
#endif  // POSTNAS_HAVE_CUDA
