// gated_deltanet.c — fla's GatedDeltaNet layer (BLOCKS.md "gated_deltanet").
//
//   q = l2n(heads(silu(conv(x Wqᵀ; q_conv1d)))),  k likewise,  v = heads(silu(conv(x Wvᵀ; v_conv1d)))
//   β = sigmoid(x Wbᵀ);  g = −exp(A_log) · softplus(x Waᵀ + dt_bias)
//   o = gated_delta(q, k, v, g, β; K^-1/2)
//   y = (rmsh(o, o_norm) · silu(heads(x Wgᵀ))) Woᵀ
//
// JetBlock's sibling with static short convs (no bias) on all of q, k, v. The
// computation is shared with DeltaNet (which drops the gates) in block_util.c
// (pn_bu_convdelta_*): one forward routine serves training (no state, chunked),
// prefill (chunked) and decode (recurrent, T = 1). Decode state per sequence:
// [S (H, K, V) | W−1 raw rows of x Wqᵀ (H·K) | of x Wkᵀ (H·K) | of x Wvᵀ (H·V)].
//
// Defaults when cfg leaves them 0 (fla: head_dim 256, expand_v 2, conv 4; fla's
// 6 heads belong to its default width 2048, so H = max(1, 0.75·C/K) here).
// Short convs start N(0, 0.02) as fla's model init gives every Conv1d.
#include "blocks/block_util.h"

enum { P_Q, P_K, P_V, P_A, P_B, P_ALOG, P_DT, P_QC, P_KC, P_VC, P_G, P_ONORM, P_O, P_COUNT };

// Where the shared delta-rule parameters sit (block_util.h).
static const pn_bu_delta_ix GDN_IX = {P_Q, P_K, P_V, P_QC, P_KC, P_VC, P_B, P_A, P_ALOG, P_DT, P_G, P_ONORM, P_O};

static void gdn_defaults(pn_block_cfg *c) {
    if (c->C <= 0) pn_die_input("gated_deltanet block", "model width C must be positive, got %d", c->C);
    if (!c->K) c->K = 256;
    if (!c->V) c->V = 2 * c->K;
    if (!c->H) c->H = PN_MAX(1, 3 * c->C / (4 * c->K));
    if (!c->conv_size) c->conv_size = 4;
    if (c->norm_eps == 0) c->norm_eps = 1e-5f;
    if (c->H <= 0 || c->K <= 0 || c->V <= 0 || c->conv_size <= 0)
        pn_die_input("gated_deltanet block", "need H, K, V, conv_size > 0 (got H=%d K=%d V=%d conv_size=%d)", c->H,
                     c->K, c->V, c->conv_size);
}

static int gdn_params(const pn_block_cfg *c, pn_param_spec *out) {
    pn_bu_dims d = pn_bu_dims_of(c);
    const float s = 0.02f;
    pn_bu_spec(&out[P_Q], "q_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HK, d.C, 0);
    pn_bu_spec(&out[P_K], "k_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HK, d.C, 0);
    pn_bu_spec(&out[P_V], "v_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HV, d.C, 0);
    pn_bu_spec(&out[P_A], "a_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.H, d.C, 0);
    pn_bu_spec(&out[P_B], "b_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.H, d.C, 0);
    pn_bu_spec(&out[P_ALOG], "A_log", PN_INIT_CUSTOM, 0, 0, 0, 1, d.H, 0, 0);
    pn_bu_spec(&out[P_DT], "dt_bias", PN_INIT_CUSTOM, 0, 0, 0, 1, d.H, 0, 0);
    pn_bu_spec(&out[P_QC], "q_conv1d.weight", PN_INIT_NORMAL, s, 0, 1, 3, d.HK, 1, d.W);
    pn_bu_spec(&out[P_KC], "k_conv1d.weight", PN_INIT_NORMAL, s, 0, 1, 3, d.HK, 1, d.W);
    pn_bu_spec(&out[P_VC], "v_conv1d.weight", PN_INIT_NORMAL, s, 0, 1, 3, d.HV, 1, d.W);
    pn_bu_spec(&out[P_G], "g_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HV, d.C, 0);
    pn_bu_spec(&out[P_ONORM], "o_norm.weight", PN_INIT_ONE, 0, 0, 0, 1, d.V, 0, 0);
    pn_bu_spec(&out[P_O], "o_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.C, d.HV, 0);
    return P_COUNT;
}

static void gdn_init_custom(const pn_block *b, uint64_t seed) {
    pn_bu_delta_init_gate(b, &GDN_IX, seed);
}

static size_t gdn_act_floats(const pn_block_cfg *c, int B, int T) {
    return pn_bu_convdelta_act_floats(c, &GDN_IX, B, T);
}

static size_t gdn_scratch_floats(const pn_block_cfg *c, int B, int T) {
    return pn_bu_convdelta_scratch_floats(c, &GDN_IX, B, T);
}

static void gdn_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                        pn_block_ctx *ctx) {
    pn_bu_convdelta_run(b, &GDN_IX, y, x, B, T, act, NULL, pn_blocks_chunk());
}

static void gdn_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                         const float *act, float *scratch, pn_block_ctx *ctx) {
    pn_bu_convdelta_bwd(b, &GDN_IX, dx, dy, x, B, T, act, scratch);
}

static pn_state_size gdn_state_size(const pn_block_cfg *c, int64_t L) { return pn_bu_convdelta_state_size(c); }

static void gdn_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                        int64_t L, float *scratch, pn_block_ctx *ctx) {
    pn_bu_state_reset(state, B, pn_bu_convdelta_state_stride(&b->cfg), pos);
    if (T > 0) pn_bu_convdelta_run(b, &GDN_IX, y, x, B, T, scratch, state, pn_blocks_chunk());
}

static void gdn_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                       float *scratch, pn_block_ctx *ctx) {
    pn_bu_state_reset(state, B, pn_bu_convdelta_state_stride(&b->cfg), pos);
    pn_bu_convdelta_run(b, &GDN_IX, y, x, B, 1, scratch, state, 0);
}

// Projections (2 per multiply-add), three short convs, ~8·K·V per head for the step.
static double gdn_flops_per_token(const pn_block_cfg *c, int64_t L) {
    pn_bu_dims d = pn_bu_dims_of(c);
    double proj = 2.0 * d.C * (2.0 * d.HK + 2.0 * d.HV + 2.0 * d.H) + 2.0 * d.HV * d.C;
    return proj + 2.0 * d.W * (2.0 * d.HK + d.HV) + 8.0 * d.H * d.K * d.V;
}

const pn_block_type pn_block_gated_deltanet = {
    .name = "gated_deltanet",
    .defaults = gdn_defaults,
    .params = gdn_params,
    .init_custom = gdn_init_custom,
    .act_floats = gdn_act_floats,
    .scratch_floats = gdn_scratch_floats,
    .forward = gdn_forward,
    .backward = gdn_backward,
    .state_size = gdn_state_size,
    .prefill = gdn_prefill,
    .decode = gdn_decode,
    .flops_per_token = gdn_flops_per_token,
};
