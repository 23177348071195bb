// gla.c — fla `GatedLinearAttention` as a token mixer (BLOCKS.md "gla").
//
//   q, k = heads(x Wqᵀ), heads(x Wkᵀ)            (B, T, H, K)
//   v, g = heads(x Wvᵀ), heads(x Wgᵀ)            (B, T, H, V)
//   gk   = logsigmoid(heads(gk_proj.1(gk_proj.0(x)))) / 16     low rank 16
//   o    = gla(q, k, v, gk; K^-1/2)
//   y    = (rmsh(o, g_norm_swish_gate, eps) · silu(g)) Woᵀ
//
// fla defaults: expand_k 0.5, expand_v 1, 4 heads, no short conv, swish output
// gate fused with the norm. Projections start N(0, 0.02) (fla's model init),
// the norm at 1, the gate bias at 0. The decode state is S (H, K, V) only.
// The recurrence runs chunked with pn_blocks_chunk() (block_chunk.h); this file
// also owns that process-wide setting.
#include "blocks/block_util.h"  // pn_bu_spec; also block.h, block_chunk.h, kernels/ops.h
#include <math.h>

#define GLA_RANK 16        // gk_proj low-rank size (fla gate_low_rank_dim)
#define GLA_NORMALIZER 16  // fla gate_logit_normalizer

enum { P_Q, P_K, P_V, P_G, P_GK0, P_GK1, P_GK1B, P_O, P_NORM, GLA_NP };

static void gla_defaults(pn_block_cfg *c) {
    if (c->C <= 0) pn_die_input("gla block", "model width C must be positive, got %d", c->C);
    if (!c->H) c->H = 4;
    if (!c->K) c->K = c->C / 2 / c->H;
    if (!c->V) c->V = c->C / c->H;
    if (c->norm_eps == 0.0f) c->norm_eps = 1e-5f;
    if (c->H <= 0 || c->K <= 0 || c->V <= 0)
        pn_die_input("gla block", "need H, K, V > 0 (got H=%d K=%d V=%d for C=%d)", c->H, c->K, c->V, c->C);
}

static int gla_params(const pn_block_cfg *c, pn_param_spec *out) {
    int64_t C = c->C, HK = (int64_t)c->H * c->K, HV = (int64_t)c->H * c->V;
    pn_bu_spec(&out[P_Q], "q_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, HK, C, 0);
    pn_bu_spec(&out[P_K], "k_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, HK, C, 0);
    pn_bu_spec(&out[P_V], "v_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, HV, C, 0);
    pn_bu_spec(&out[P_G], "g_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, HV, C, 0);
    pn_bu_spec(&out[P_GK0], "gk_proj.0.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, GLA_RANK, C, 0);
    pn_bu_spec(&out[P_GK1], "gk_proj.1.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, HK, GLA_RANK, 0);
    pn_bu_spec(&out[P_GK1B], "gk_proj.1.bias", PN_INIT_ZERO, 0, 0, 0, 1, HK, 0, 0);
    pn_bu_spec(&out[P_O], "o_proj.weight", PN_INIT_NORMAL, 0.02f, 0, 1, 2, C, HV, 0);
    pn_bu_spec(&out[P_NORM], "g_norm_swish_gate.weight", PN_INIT_ONE, 0, 0, 0, 1, c->V, 0, 0);
    return GLA_NP;
}

// Saved activations per token, in this order (floats): q HK, k HK, v HV, g HV,
// lr 16 (gk_proj.0 output), gk HK (after logsigmoid/16), o HV, rstd H, on HV.
typedef struct {
    float *q, *k, *v, *g, *lr, *gk, *o, *rstd, *on;
} gla_act;

static size_t gla_act_map(const pn_block_cfg *c, int64_t M, float *base, gla_act *a) {
    size_t HK = (size_t)c->H * c->K, HV = (size_t)c->H * c->V, off = 0;
    float **slot[] = {&a->q, &a->k, &a->v, &a->g, &a->lr, &a->gk, &a->o, &a->rstd, &a->on};
    size_t width[] = {HK, HK, HV, HV, GLA_RANK, HK, HV, (size_t)c->H, HV};
    for (size_t i = 0; i < PN_ARRAY_LEN(slot); i++) {
        *slot[i] = base ? base + off : NULL;
        off += width[i] * (size_t)M;
    }
    return off;
}

static size_t gla_act_floats(const pn_block_cfg *c, int B, int T) {
    gla_act a;
    return gla_act_map(c, (int64_t)B * T, NULL, &a);
}

// Backward scratch per token: d_on HV, d_o HV, dq HK, dk HK, dv HV, dg HV, dgk HK, dlr 16.
static size_t gla_bwd_floats(const pn_block_cfg *c, int64_t M) {
    size_t HK = (size_t)c->H * c->K, HV = (size_t)c->H * c->V;
    return (size_t)M * (4 * HV + 3 * HK + GLA_RANK);
}

static size_t gla_scratch_floats(const pn_block_cfg *c, int B, int T) {
    // prefill/decode keep their activations in scratch
    return PN_MAX(gla_bwd_floats(c, (int64_t)B * T), gla_act_floats(c, B, T));
}

// The whole forward; h0/ht are the (B, H, K, V) state (NULL = zeros / not wanted).
static void gla_run(const pn_block *b, float *y, const float *x, int B, int T, float *act, const float *h0, float *ht,
                    int chunk) {
    const pn_block_cfg *c = &b->cfg;
    int64_t M = (int64_t)B * T;
    int C = c->C, HK = c->H * c->K, HV = c->H * c->V;
    gla_act a;
    gla_act_map(c, M, act, &a);
    float *const *W = b->params;

    pn_linear_fwd(a.q, x, W[P_Q], NULL, M, C, HK);
    pn_linear_fwd(a.k, x, W[P_K], NULL, M, C, HK);
    pn_linear_fwd(a.v, x, W[P_V], NULL, M, C, HV);
    pn_linear_fwd(a.g, x, W[P_G], NULL, M, C, HV);
    pn_linear_fwd(a.lr, x, W[P_GK0], NULL, M, C, GLA_RANK);
    pn_linear_fwd(a.gk, a.lr, W[P_GK1], W[P_GK1B], M, GLA_RANK, HK);
    pn_logsigmoid_fwd(a.gk, a.gk, M * HK);
    for (int64_t i = 0; i < M * HK; i++) a.gk[i] /= (float)GLA_NORMALIZER;

    pn_rec_shape s = {B, T, c->H, c->K, c->V, 1.0f / sqrtf((float)c->K)};
    pn_gla_fwd(&s, chunk, a.q, a.k, a.v, a.gk, h0, a.o, ht);

    pn_rmsnorm_gated_fwd(a.on, a.rstd, a.o, W[P_NORM], a.g, M * c->H, c->V, c->norm_eps);
    pn_linear_fwd(y, a.on, W[P_O], NULL, M, HV, C);
}

static void gla_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                        pn_block_ctx *ctx) {
    gla_run(b, y, x, B, T, act, NULL, NULL, pn_blocks_chunk());
}

static void gla_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                         const float *act, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    int64_t M = (int64_t)B * T;
    int C = c->C, HK = c->H * c->K, HV = c->H * c->V;
    gla_act a;
    gla_act_map(c, M, (float *)act, &a);
    float *const *W = b->params;
    float *const *G = b->grads;

    memset(scratch, 0, gla_bwd_floats(c, M) * sizeof(float));
    float *d_on = scratch, *d_o = d_on + M * HV, *dq = d_o + M * HV, *dk = dq + M * HK;
    float *dv = dk + M * HK, *dg = dv + M * HV, *dgk = dg + M * HV, *dlr = dgk + M * HK;

    pn_linear_bwd(d_on, G[P_O], NULL, dy, a.on, W[P_O], M, HV, C);
    pn_rmsnorm_gated_bwd(d_o, G[P_NORM], dg, d_on, a.o, W[P_NORM], a.g, a.rstd, M * c->H, c->V);

    pn_rec_shape s = {B, T, c->H, c->K, c->V, 1.0f / sqrtf((float)c->K)};
    pn_gla_bwd(&s, pn_blocks_chunk(), a.q, a.k, a.v, a.gk, NULL, d_o, NULL, dq, dk, dv, dgk, NULL);

    // gk = logsigmoid(z)/16: dz = dgk/16 · (1 − sigmoid(z)), sigmoid(z) = exp(16 gk)
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M * HK; i++)
        dgk[i] = dgk[i] / (float)GLA_NORMALIZER * -expm1f((float)GLA_NORMALIZER * a.gk[i]);
    pn_linear_bwd(dlr, G[P_GK1], G[P_GK1B], dgk, a.lr, W[P_GK1], M, GLA_RANK, HK);
    pn_linear_bwd(dx, G[P_GK0], NULL, dlr, x, W[P_GK0], M, C, GLA_RANK);

    pn_linear_bwd(dx, G[P_Q], NULL, dq, x, W[P_Q], M, C, HK);
    pn_linear_bwd(dx, G[P_K], NULL, dk, x, W[P_K], M, C, HK);
    pn_linear_bwd(dx, G[P_V], NULL, dv, x, W[P_V], M, C, HV);
    pn_linear_bwd(dx, G[P_G], NULL, dg, x, W[P_G], M, C, HV);
}

// Every parameter has a standard init; nothing custom.
static void gla_init_custom(const pn_block *b, uint64_t seed) {}

static pn_state_size gla_state_size(const pn_block_cfg *c, int64_t L) {
    pn_state_size s = {0, (int64_t)c->H * c->K * c->V, 0};
    return s;
}

// state (B, H, K, V) is updated in place.
static void gla_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                        int64_t L, float *scratch, pn_block_ctx *ctx) {
    size_t n = (size_t)B * b->cfg.H * b->cfg.K * b->cfg.V;
    if (pos == 0) memset(state, 0, n * sizeof(float));
    if (T <= 0) return;
    gla_run(b, y, x, B, T, scratch, state, state, T == 1 ? 0 : pn_blocks_chunk());
}

static void gla_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                       float *scratch, pn_block_ctx *ctx) {
    gla_prefill(b, y, x, B, 1, state, pos, L, scratch, ctx);
}

// Matmuls at 2 FLOPs per multiply-add; recurrence per head: decay K·V, outer
// product 2·K·V, readout 2·K·V. Elementwise work is not counted.
static double gla_flops_per_token(const pn_block_cfg *c, int64_t L) {
    double C = c->C, HK = (double)c->H * c->K, HV = (double)c->H * c->V;
    double proj = 2.0 * C * (2 * HK + 2 * HV) + 2.0 * C * GLA_RANK + 2.0 * GLA_RANK * HK + 2.0 * HV * C;
    return proj + 5.0 * c->H * (double)c->K * c->V;
}

const pn_block_type pn_block_gla = {
    .name = "gla",
    .defaults = gla_defaults,
    .params = gla_params,
    .init_custom = gla_init_custom,
    .act_floats = gla_act_floats,
    .scratch_floats = gla_scratch_floats,
    .forward = gla_forward,
    .backward = gla_backward,
    .state_size = gla_state_size,
    .prefill = gla_prefill,
    .decode = gla_decode,
    .flops_per_token = gla_flops_per_token,
};
