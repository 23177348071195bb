// gated_deltanet.c — fla's GatedDeltaNet layer (BLOCKS.md "gated_deltanet").
//
//   q = l2n(heads(silu(conv(x Wqᵀ; q_conv1d)))),  k likewise,  v = heads(silu(conv(x Wvᵀ; v_conv1d)))
//   β = sigmoid(x Wbᵀ);  g = −exp(A_log) · softplus(x Waᵀ + dt_bias)
//   o = gated_delta(q, k, v, g, β; K^-1/2)
//   y = (rmsh(o, o_norm) · silu(heads(x Wgᵀ))) Woᵀ
//
// JetBlock's sibling with static short convs (no bias) on all of q, k, v. One
// forward routine serves training (no state, chunked), prefill (chunked) and
// decode (recurrent, T = 1). Decode state per sequence: [S (H, K, V) | W−1 raw
// rows of x Wqᵀ (H·K) | of x Wkᵀ (H·K) | of x Wvᵀ (H·V)].
//
// Defaults when cfg leaves them 0 (fla: head_dim 256, expand_v 2, conv 4; fla's
// 6 heads belong to its default width 2048, so H = max(1, 0.75·C/K) here).
// Short convs start N(0, 0.02) as fla's model init gives every Conv1d.
#include "blocks/block_util.h"
#include "core/rng.h"
#include <math.h>

enum { P_Q, P_K, P_V, P_A, P_B, P_ALOG, P_DT, P_QC, P_KC, P_VC, P_G, P_ONORM, P_O, P_COUNT };

typedef struct {
    int C, H, K, V, W, HK, HV;
} gdn_dims;

static gdn_dims gdn_dims_of(const pn_block_cfg *c) {
    gdn_dims d = {c->C, c->H, c->K, c->V, c->conv_size, c->H * c->K, c->H * c->V};
    return d;
}

// Saved activations (N = B·T rows): projection, conv output, activated/normalised.
typedef struct {
    float *qp, *qc, *q, *rq;
    float *kp, *kc, *k, *rk;
    float *vp, *vc, *v;
    float *beta, *ap, *g;     // (N, H)
    float *o, *gp, *ro, *on;  // (N, H·V), rstd (N·H)
} gdn_act;

static size_t gdn_act_layout(const gdn_dims *d, int64_t N, float *base, gdn_act *a) {
    size_t n = 0;
    float *p = base;
    a->qp = pn_bu_take(&p, &n, N * d->HK);
    a->qc = pn_bu_take(&p, &n, N * d->HK);
    a->q = pn_bu_take(&p, &n, N * d->HK);
    a->rq = pn_bu_take(&p, &n, N * d->H);
    a->kp = pn_bu_take(&p, &n, N * d->HK);
    a->kc = pn_bu_take(&p, &n, N * d->HK);
    a->k = pn_bu_take(&p, &n, N * d->HK);
    a->rk = pn_bu_take(&p, &n, N * d->H);
    a->vp = pn_bu_take(&p, &n, N * d->HV);
    a->vc = pn_bu_take(&p, &n, N * d->HV);
    a->v = pn_bu_take(&p, &n, N * d->HV);
    a->beta = pn_bu_take(&p, &n, N * d->H);
    a->ap = pn_bu_take(&p, &n, N * d->H);
    a->g = pn_bu_take(&p, &n, N * d->H);
    a->o = pn_bu_take(&p, &n, N * d->HV);
    a->gp = pn_bu_take(&p, &n, N * d->HV);
    a->ro = pn_bu_take(&p, &n, N * d->H);
    a->on = pn_bu_take(&p, &n, N * d->HV);
    return n;
}

typedef struct {
    float *don, *dout, *dgp, *dq, *dk, *dv, *dbeta, *dbp, *dg, *dap, *t1, *t2, *t3;  // t*: (N, max(HK, HV)) temps
} gdn_grad;

static size_t gdn_grad_layout(const gdn_dims *d, int64_t N, float *base, gdn_grad *s) {
    size_t n = 0;
    float *p = base;
    int64_t wide = PN_MAX(d->HK, d->HV);
    s->don = pn_bu_take(&p, &n, N * d->HV);
    s->dout = pn_bu_take(&p, &n, N * d->HV);
    s->dgp = pn_bu_take(&p, &n, N * d->HV);
    s->dq = pn_bu_take(&p, &n, N * d->HK);
    s->dk = pn_bu_take(&p, &n, N * d->HK);
    s->dv = pn_bu_take(&p, &n, N * d->HV);
    s->dbeta = pn_bu_take(&p, &n, N * d->H);
    s->dbp = pn_bu_take(&p, &n, N * d->H);
    s->dg = pn_bu_take(&p, &n, N * d->H);
    s->dap = pn_bu_take(&p, &n, N * d->H);
    s->t1 = pn_bu_take(&p, &n, N * wide);
    s->t2 = pn_bu_take(&p, &n, N * wide);
    s->t3 = pn_bu_take(&p, &n, N * wide);
    return n;
}

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
    gdn_dims d = gdn_dims_of(c);
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
    uint64_t layer = (uint64_t)b->cfg.layer_idx << 48;
    pn_bu_init_A_log(b->params[P_ALOG], b->cfg.H, 0.0f, 16.0f, seed, pn_hash_str("A_log") ^ layer);
    pn_bu_init_dt_bias(b->params[P_DT], b->cfg.H, seed, pn_hash_str("dt_bias") ^ layer);
}

static size_t gdn_act_floats(const pn_block_cfg *c, int B, int T) {
    gdn_dims d = gdn_dims_of(c);
    gdn_act a;
    return gdn_act_layout(&d, (int64_t)B * T, NULL, &a);
}

// Prefill and decode keep their activations in scratch, so scratch covers both.
static size_t gdn_scratch_floats(const pn_block_cfg *c, int B, int T) {
    gdn_dims d = gdn_dims_of(c);
    gdn_grad s;
    return gdn_act_floats(c, B, T) + gdn_grad_layout(&d, (int64_t)B * T, NULL, &s);
}

static int64_t gdn_state_stride(const gdn_dims *d) {
    return (int64_t)d->H * d->K * d->V + (int64_t)(d->W - 1) * (2 * d->HK + d->HV);
}

// proj → short conv (+ state) → silu; q and k then l2-normalised per head.
static void gdn_run(const pn_block *b, float *y, const float *x, int B, int T, float *act_buf, float *state,
                    int chunk) {
    gdn_dims d = gdn_dims_of(&b->cfg);
    float *const *P = b->params;
    int64_t N = (int64_t)B * T, sf = gdn_state_stride(&d);
    gdn_act a;
    gdn_act_layout(&d, N, act_buf, &a);
    float *qprev = NULL, *kprev = NULL, *vprev = NULL;
    if (state) {
        qprev = state + (int64_t)d.H * d.K * d.V;
        kprev = qprev + (int64_t)(d.W - 1) * d.HK;
        vprev = kprev + (int64_t)(d.W - 1) * d.HK;
    }

    pn_linear_fwd(a.qp, x, P[P_Q], NULL, N, d.C, d.HK);
    pn_bu_conv_run(a.qc, a.qp, P[P_QC], B, T, d.HK, d.W, qprev, sf);
    pn_silu_fwd(a.q, a.qc, N * d.HK);
    pn_l2norm_fwd(a.q, a.rq, a.q, N * d.H, d.K, 1e-6f);
    pn_linear_fwd(a.kp, x, P[P_K], NULL, N, d.C, d.HK);
    pn_bu_conv_run(a.kc, a.kp, P[P_KC], B, T, d.HK, d.W, kprev, sf);
    pn_silu_fwd(a.k, a.kc, N * d.HK);
    pn_l2norm_fwd(a.k, a.rk, a.k, N * d.H, d.K, 1e-6f);
    pn_linear_fwd(a.vp, x, P[P_V], NULL, N, d.C, d.HV);
    pn_bu_conv_run(a.vc, a.vp, P[P_VC], B, T, d.HV, d.W, vprev, sf);
    pn_silu_fwd(a.v, a.vc, N * d.HV);

    pn_linear_fwd(a.beta, x, P[P_B], NULL, N, d.C, d.H);
    pn_sigmoid_fwd(a.beta, a.beta, N * d.H);
    pn_linear_fwd(a.ap, x, P[P_A], NULL, N, d.C, d.H);
    pn_bu_decay_fwd(a.g, a.ap, P[P_ALOG], P[P_DT], N, d.H);

    pn_rec_shape rs = {B, T, d.H, d.K, d.V, 1.0f / sqrtf((float)d.K)};
    pn_bu_gated_delta_run(&rs, chunk, a.q, a.k, a.v, a.g, a.beta, a.o, state, sf);

    pn_linear_fwd(a.gp, x, P[P_G], NULL, N, d.C, d.HV);
    pn_rmsnorm_gated_fwd(a.on, a.ro, a.o, P[P_ONORM], a.gp, N * d.H, d.V, b->cfg.norm_eps);
    pn_linear_fwd(y, a.on, P[P_O], NULL, N, d.HV, d.C);
}

static void gdn_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                        pn_block_ctx *ctx) {
    gdn_run(b, y, x, B, T, act, NULL, pn_blocks_chunk());
}

static void gdn_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                         const float *act, float *scratch, pn_block_ctx *ctx) {
    gdn_dims d = gdn_dims_of(&b->cfg);
    float *const *P = b->params;
    float *const *G = b->grads;
    int64_t N = (int64_t)B * T;
    gdn_act a;
    gdn_act_layout(&d, N, (float *)act, &a);
    gdn_grad s;
    size_t ns = gdn_grad_layout(&d, N, scratch, &s);
    memset(scratch, 0, ns * sizeof(float));  // every buffer below is accumulated into

    pn_linear_bwd(s.don, G[P_O], NULL, dy, a.on, P[P_O], N, d.HV, d.C);
    pn_rmsnorm_gated_bwd(s.dout, G[P_ONORM], s.dgp, s.don, a.o, P[P_ONORM], a.gp, a.ro, N * d.H, d.V);
    pn_linear_bwd(dx, G[P_G], NULL, s.dgp, x, P[P_G], N, d.C, d.HV);

    pn_rec_shape rs = {B, T, d.H, d.K, d.V, 1.0f / sqrtf((float)d.K)};
    pn_gated_delta_bwd(&rs, pn_blocks_chunk(), 0, a.q, a.k, a.v, a.g, a.beta, NULL, s.dout, NULL, s.dq, s.dk, s.dv,
                       s.dg, s.dbeta, NULL);

    pn_bu_sigmoid_bwd(s.dbp, s.dbeta, a.beta, N * d.H);
    pn_linear_bwd(dx, G[P_B], NULL, s.dbp, x, P[P_B], N, d.C, d.H);
    pn_bu_decay_bwd(s.dap, G[P_ALOG], G[P_DT], s.dg, a.g, a.ap, P[P_ALOG], P[P_DT], N, d.H);
    pn_linear_bwd(dx, G[P_A], NULL, s.dap, x, P[P_A], N, d.C, d.H);

    pn_bu_conv_path_bwd(dx, G[P_Q], G[P_QC], s.dq, a.q, a.rq, d.K, a.qc, a.qp, x, P[P_Q], P[P_QC], B, T, d.C, d.HK, d.W,
                 s.t1, s.t2, s.t3);
    pn_bu_conv_path_bwd(dx, G[P_K], G[P_KC], s.dk, a.k, a.rk, d.K, a.kc, a.kp, x, P[P_K], P[P_KC], B, T, d.C, d.HK, d.W,
                 s.t1, s.t2, s.t3);
    pn_bu_conv_path_bwd(dx, G[P_V], G[P_VC], s.dv, a.v, NULL, d.V, a.vc, a.vp, x, P[P_V], P[P_VC], B, T, d.C, d.HV, d.W,
                 s.t1, s.t2, s.t3);
}

static pn_state_size gdn_state_size(const pn_block_cfg *c, int64_t L) {
    gdn_dims d = gdn_dims_of(c);
    pn_state_size s = {0, (int64_t)d.H * d.K * d.V, (int64_t)(d.W - 1) * (2 * d.HK + d.HV)};
    return s;
}

static void gdn_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                        int64_t L, float *scratch, pn_block_ctx *ctx) {
    gdn_dims d = gdn_dims_of(&b->cfg);
    if (pos == 0) memset(state, 0, (size_t)B * gdn_state_stride(&d) * sizeof(float));
    if (T > 0) gdn_run(b, y, x, B, T, scratch, state, pn_blocks_chunk());
}

static void gdn_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                       float *scratch, pn_block_ctx *ctx) {
    gdn_dims d = gdn_dims_of(&b->cfg);
    if (pos == 0) memset(state, 0, (size_t)B * gdn_state_stride(&d) * sizeof(float));
    gdn_run(b, y, x, B, 1, scratch, state, 0);
}

// Projections (2 per multiply-add), three short convs, ~8·K·V per head for the step.
static double gdn_flops_per_token(const pn_block_cfg *c, int64_t L) {
    gdn_dims d = gdn_dims_of(c);
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
