// deltanet.c — fla's DeltaNet layer (BLOCKS.md "deltanet").
//
//   q = l2n(heads(silu(conv(x Wqᵀ; q_conv1d)))),  k likewise,  v = heads(silu(conv(x Wvᵀ; v_conv1d)))
//   β = sigmoid(x Wbᵀ)
//   o = delta(q, k, v, β; K^-1/2)          gated_delta with g = 0: no forgetting but the delta rule's
//   y = rmsh(o, o_norm) Woᵀ                plain RMSNorm per head, no output gate
//
// Gated DeltaNet with g = 0 and an ungated norm, so the computation is the shared
// pn_bu_convdelta_* of block_util.c with no gate parameters in the table. Decode state
// per sequence: [S (H, K, V) | W−1 raw rows of x Wqᵀ (H·K) | x Wkᵀ (H·K) |
// x Wvᵀ (H·V)]. Defaults when cfg leaves them 0 (fla: num_heads 4, expand_k = expand_v
// = 1, conv 4): H = 4, K = V = C/H. Short convs start N(0, 0.02) (fla's model init).
#include "blocks/block_util.h"

enum { P_Q, P_K, P_V, P_B, P_QC, P_KC, P_VC, P_ONORM, P_O, P_COUNT };

// Where the shared delta-rule parameters sit (block_util.h); no gate, no output gate.
static const pn_bu_delta_ix DN_IX = {P_Q, P_K, P_V, P_QC, P_KC, P_VC, P_B, -1, -1, -1, -1, P_ONORM, P_O};

static void dn_defaults(pn_block_cfg *c) {
    if (c->C <= 0) pn_die_input("deltanet block", "model width C must be positive, got %d", c->C);
    if (!c->H) c->H = 4;
    if (!c->K) c->K = PN_MAX(1, c->C / c->H);
    if (!c->V) c->V = PN_MAX(1, c->C / c->H);
    if (!c->conv_size) c->conv_size = 4;
    if (c->norm_eps == 0) c->norm_eps = 1e-5f;
    if (c->H <= 0 || c->K <= 0 || c->V <= 0 || c->conv_size <= 0)
        pn_die_input("deltanet block", "need H, K, V, conv_size > 0 (got H=%d K=%d V=%d conv_size=%d)", c->H, c->K,
                     c->V, c->conv_size);
}

static int dn_params(const pn_block_cfg *c, pn_param_spec *out) {
    pn_bu_dims d = pn_bu_dims_of(c);
    const float s = 0.02f;
    pn_bu_spec(&out[P_Q], "q_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HK, d.C, 0);
    pn_bu_spec(&out[P_K], "k_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HK, d.C, 0);
    pn_bu_spec(&out[P_V], "v_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HV, d.C, 0);
    pn_bu_spec(&out[P_B], "b_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.H, d.C, 0);
    pn_bu_spec(&out[P_QC], "q_conv1d.weight", PN_INIT_NORMAL, s, 0, 1, 3, d.HK, 1, d.W);
    pn_bu_spec(&out[P_KC], "k_conv1d.weight", PN_INIT_NORMAL, s, 0, 1, 3, d.HK, 1, d.W);
    pn_bu_spec(&out[P_VC], "v_conv1d.weight", PN_INIT_NORMAL, s, 0, 1, 3, d.HV, 1, d.W);
    pn_bu_spec(&out[P_ONORM], "o_norm.weight", PN_INIT_ONE, 0, 0, 0, 1, d.V, 0, 0);
    pn_bu_spec(&out[P_O], "o_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.C, d.HV, 0);
    return P_COUNT;
}

// DeltaNet has no gate parameters: every entry has a generic init.
static void dn_init_custom(const pn_block *b, uint64_t seed) {}

static size_t dn_act_floats(const pn_block_cfg *c, int B, int T) {
    return pn_bu_convdelta_act_floats(c, &DN_IX, B, T);
}

static size_t dn_scratch_floats(const pn_block_cfg *c, int B, int T) {
    return pn_bu_convdelta_scratch_floats(c, &DN_IX, B, T);
}

static void dn_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                       pn_block_ctx *ctx) {
    pn_bu_convdelta_run(b, &DN_IX, y, x, B, T, act, NULL, pn_blocks_chunk());
}

static void dn_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                        const float *act, float *scratch, pn_block_ctx *ctx) {
    pn_bu_convdelta_bwd(b, &DN_IX, dx, dy, x, B, T, act, scratch);
}

static pn_state_size dn_state_size(const pn_block_cfg *c, int64_t L) { return pn_bu_convdelta_state_size(c); }

static void dn_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                       int64_t L, float *scratch, pn_block_ctx *ctx) {
    pn_bu_state_reset(state, B, pn_bu_convdelta_state_stride(&b->cfg), pos);
    if (T > 0) pn_bu_convdelta_run(b, &DN_IX, y, x, B, T, scratch, state, pn_blocks_chunk());
}

static void dn_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                      float *scratch, pn_block_ctx *ctx) {
    pn_bu_state_reset(state, B, pn_bu_convdelta_state_stride(&b->cfg), pos);
    pn_bu_convdelta_run(b, &DN_IX, y, x, B, 1, scratch, state, 0);
}

// Projections (2 per multiply-add), three short convs, ~7·K·V per head for the step.
static double dn_flops_per_token(const pn_block_cfg *c, int64_t L) {
    pn_bu_dims d = pn_bu_dims_of(c);
    double proj = 2.0 * d.C * (2.0 * d.HK + d.HV + d.H) + 2.0 * d.HV * d.C;
    return proj + 2.0 * d.W * (2.0 * d.HK + d.HV) + 7.0 * d.H * d.K * d.V;
}

const pn_block_type pn_block_deltanet = {
    .name = "deltanet",
    .defaults = dn_defaults,
    .params = dn_params,
    .init_custom = dn_init_custom,
    .act_floats = dn_act_floats,
    .scratch_floats = dn_scratch_floats,
    .forward = dn_forward,
    .backward = dn_backward,
    .state_size = dn_state_size,
    .prefill = dn_prefill,
    .decode = dn_decode,
    .flops_per_token = dn_flops_per_token,
};
