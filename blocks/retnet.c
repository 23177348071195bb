// retnet.c — fla `MultiScaleRetention` as a token mixer (BLOCKS.md "retnet").
//
//   q, k = rope(heads(x Wqᵀ)), rope(heads(x Wkᵀ))     (B, T, H, K), rotate-half, base 10000
//   v, g = heads(x Wvᵀ), heads(x Wgᵀ)                  (B, T, H, V)
//   o    = simple_gla(q, k, v, g_h; K^-1/2),  g_h = ln(1 − 2^(−5−h)) fixed per head
//   y    = (rmsh(o, g_norm_swish_gate, eps) · silu(g)) Woᵀ
//
// fla defaults: expand_k 1, expand_v 2, 8 heads. For a small width we halve the
// head count while C/H < 16 (C = 64 → 4 heads of K = 16), so heads keep a usable
// size; an explicit cfg.H is kept. The decay is a constant, not a parameter.
// Projections start N(0, 0.02), the norm at 1. RoPE uses the absolute position,
// so prefill/decode rotate at pos + t. The decode state is S (H, K, V).
#include "blocks/block_util.h"  // pn_bu_spec; also block.h, block_chunk.h, kernels/ops.h
#include <math.h>

#define RETNET_THETA 10000.0f

enum { P_Q, P_K, P_V, P_G, P_O, P_NORM, RET_NP };

static void retnet_defaults(pn_block_cfg *c) {
    if (c->C <= 0) pn_die_input("retnet block", "model width C must be positive, got %d", c->C);
    if (!c->H) {
        c->H = 8;
        while (c->H > 1 && c->C / c->H < 16) c->H /= 2;
    }
    if (!c->K) c->K = c->C / c->H;
    if (!c->V) c->V = 2 * c->C / c->H;
    if (c->norm_eps == 0.0f) c->norm_eps = 1e-5f;
    if (c->H <= 0 || c->K <= 0 || c->V <= 0 || c->K % 2)
        pn_die_input("retnet block", "need H, V > 0 and an even K > 0 for RoPE (got H=%d K=%d V=%d for C=%d)", c->H,
                     c->K, c->V, c->C);
}

static int retnet_params(const pn_block_cfg *c, pn_param_spec *out) {
    int64_t C = c->C, HK = (int64_t)c->H * c->K, HV = (int64_t)c->H * c->V;
    pn_bu_spec(&out[P_Q], "q_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, HK, C, 0);
    pn_bu_spec(&out[P_K], "k_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, HK, C, 0);
    pn_bu_spec(&out[P_V], "v_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, HV, C, 0);
    pn_bu_spec(&out[P_G], "g_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, HV, C, 0);
    pn_bu_spec(&out[P_O], "o_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, C, HV, 0);
    pn_bu_spec(&out[P_NORM], "g_norm_swish_gate.weight", PN_INIT_ONE, 0, 0, 0, 1, c->V, 0, 0);
    return RET_NP;
}

// The decay is fixed; nothing to initialise beyond the spec table.
static void retnet_init_custom(const pn_block *b, uint64_t seed) {}

// Saved per token: q HK (after RoPE), k HK (after RoPE), v HV, g HV, decay H, o HV, rstd H, on HV.
typedef struct {
    float *q, *k, *v, *g, *gd, *o, *rstd, *on;
} retnet_act;

static size_t retnet_act_map(const pn_block_cfg *c, int64_t M, float *base, retnet_act *a) {
    size_t HK = (size_t)c->H * c->K, HV = (size_t)c->H * c->V, off = 0;
    float **slot[] = {&a->q, &a->k, &a->v, &a->g, &a->gd, &a->o, &a->rstd, &a->on};
    size_t width[] = {HK, HK, HV, HV, (size_t)c->H, HV, (size_t)c->H, HV};
    for (size_t i = 0; i < PN_ARRAY_LEN(slot); i++) {
        *slot[i] = base ? base + off : NULL;
        off += width[i] * (size_t)M;
    }
    return off;
}

static size_t retnet_act_floats(const pn_block_cfg *c, int B, int T) {
    retnet_act a;
    return retnet_act_map(c, (int64_t)B * T, NULL, &a);
}

// Backward scratch per token: d_on HV, d_o HV, dq HK, dk HK, dv HV, dg HV.
static size_t retnet_bwd_floats(const pn_block_cfg *c, int64_t M) {
    return (size_t)M * (4 * (size_t)c->H * c->V + 2 * (size_t)c->H * c->K);
}

static size_t retnet_scratch_floats(const pn_block_cfg *c, int B, int T) {
    return PN_MAX(retnet_bwd_floats(c, (int64_t)B * T), retnet_act_floats(c, B, T));
}

// Tokens at absolute positions pos0 .. pos0+T−1; h0/ht the (B, H, K, V) state or NULL.
static void retnet_run(const pn_block *b, float *y, const float *x, int B, int T, float *act, int64_t pos0,
                       const float *h0, float *ht, int chunk) {
    const pn_block_cfg *c = &b->cfg;
    int64_t M = (int64_t)B * T;
    int C = c->C, H = c->H, HK = c->H * c->K, HV = c->H * c->V;
    retnet_act a;
    retnet_act_map(c, M, act, &a);
    float *const *W = b->params;

    pn_linear_fwd(a.q, x, W[P_Q], NULL, M, C, HK);
    pn_linear_fwd(a.k, x, W[P_K], NULL, M, C, HK);
    pn_rope_fwd(a.q, B, T, H, c->K, pos0, RETNET_THETA);
    pn_rope_fwd(a.k, B, T, H, c->K, pos0, RETNET_THETA);
    pn_linear_fwd(a.v, x, W[P_V], NULL, M, C, HV);
    pn_linear_fwd(a.g, x, W[P_G], NULL, M, C, HV);
    for (int64_t m = 0; m < M; m++)
        for (int h = 0; h < H; h++) a.gd[m * H + h] = (float)log1p(-ldexp(1.0, -5 - h));

    pn_rec_shape s = {B, T, H, c->K, c->V, 1.0f / sqrtf((float)c->K)};
    pn_simple_gla_fwd(&s, chunk, a.q, a.k, a.v, a.gd, h0, a.o, ht);

    pn_rmsnorm_gated_fwd(a.on, a.rstd, a.o, W[P_NORM], a.g, M * H, c->V, c->norm_eps);
    pn_linear_fwd(y, a.on, W[P_O], NULL, M, HV, C);
}

static void retnet_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                           pn_block_ctx *ctx) {
    retnet_run(b, y, x, B, T, act, 0, NULL, NULL, pn_blocks_chunk());
}

static void retnet_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                            const float *act, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    int64_t M = (int64_t)B * T;
    int C = c->C, H = c->H, HK = c->H * c->K, HV = c->H * c->V;
    retnet_act a;
    retnet_act_map(c, M, (float *)act, &a);
    float *const *W = b->params;
    float *const *G = b->grads;

    memset(scratch, 0, retnet_bwd_floats(c, M) * sizeof(float));
    float *d_on = scratch, *d_o = d_on + M * HV, *dq = d_o + M * HV, *dk = dq + M * HK;
    float *dv = dk + M * HK, *dg = dv + M * HV;

    pn_linear_bwd(d_on, G[P_O], NULL, dy, a.on, W[P_O], M, HV, C);
    pn_rmsnorm_gated_bwd(d_o, G[P_NORM], dg, d_on, a.o, W[P_NORM], a.g, a.rstd, M * H, c->V);

    pn_rec_shape s = {B, T, H, c->K, c->V, 1.0f / sqrtf((float)c->K)};
    pn_simple_gla_bwd(&s, pn_blocks_chunk(), a.q, a.k, a.v, a.gd, NULL, d_o, NULL, dq, dk, dv, NULL, NULL);
    pn_rope_bwd(dq, B, T, H, c->K, 0, RETNET_THETA);
    pn_rope_bwd(dk, B, T, H, c->K, 0, RETNET_THETA);

    pn_linear_bwd(dx, G[P_Q], NULL, dq, x, W[P_Q], M, C, HK);
    pn_linear_bwd(dx, G[P_K], NULL, dk, x, W[P_K], M, C, HK);
    pn_linear_bwd(dx, G[P_V], NULL, dv, x, W[P_V], M, C, HV);
    pn_linear_bwd(dx, G[P_G], NULL, dg, x, W[P_G], M, C, HV);
}

static pn_state_size retnet_state_size(const pn_block_cfg *c, int64_t L) {
    pn_state_size s = {0, (int64_t)c->H * c->K * c->V, 0};
    return s;
}

// state (B, H, K, V) is updated in place.
static void retnet_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                           int64_t L, float *scratch, pn_block_ctx *ctx) {
    if (pos == 0) memset(state, 0, (size_t)B * b->cfg.H * b->cfg.K * b->cfg.V * sizeof(float));
    if (T <= 0) return;
    retnet_run(b, y, x, B, T, scratch, pos, state, state, T == 1 ? 0 : pn_blocks_chunk());
}

static void retnet_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                          float *scratch, pn_block_ctx *ctx) {
    retnet_prefill(b, y, x, B, 1, state, pos, L, scratch, ctx);
}

// Matmuls at 2 FLOPs per multiply-add; recurrence per head: decay K·V, outer
// product 2·K·V, readout 2·K·V. RoPE and elementwise work are not counted.
static double retnet_flops_per_token(const pn_block_cfg *c, int64_t L) {
    double C = c->C, HK = (double)c->H * c->K, HV = (double)c->H * c->V;
    return 2.0 * C * (2 * HK + 2 * HV) + 2.0 * HV * C + 5.0 * c->H * (double)c->K * c->V;
}

const pn_block_type pn_block_retnet = {
    .name = "retnet",
    .defaults = retnet_defaults,
    .params = retnet_params,
    .init_custom = retnet_init_custom,
    .act_floats = retnet_act_floats,
    .scratch_floats = retnet_scratch_floats,
    .forward = retnet_forward,
    .backward = retnet_backward,
    .state_size = retnet_state_size,
    .prefill = retnet_prefill,
    .decode = retnet_decode,
    .flops_per_token = retnet_flops_per_token,
};
