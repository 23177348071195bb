// deltanet.c — fla's DeltaNet layer (BLOCKS.md "deltanet").
//
//   q = l2n(heads(silu(conv(x Wqᵀ; q_conv1d)))),  k likewise,  v = heads(silu(conv(x Wvᵀ; v_conv1d)))
//   β = sigmoid(x Wbᵀ)
//   o = delta(q, k, v, β; K^-1/2)          gated_delta with g = 0: no forgetting but the delta rule's
//   y = rmsh(o, o_norm) Woᵀ                plain RMSNorm per head, no output gate
//
// Decode state per sequence: [S (H, K, V) | W−1 raw rows of x Wqᵀ (H·K) | x Wkᵀ (H·K) |
// x Wvᵀ (H·V)]. Defaults when cfg leaves them 0 (fla: num_heads 4, expand_k = expand_v
// = 1, conv 4): H = 4, K = V = C/H. Short convs start N(0, 0.02) (fla's model init).
#include "blocks/block_util.h"
#include <math.h>

enum { P_Q, P_K, P_V, P_B, P_QC, P_KC, P_VC, P_ONORM, P_O, P_COUNT };

typedef struct {
    int C, H, K, V, W, HK, HV;
} dn_dims;

static dn_dims dn_dims_of(const pn_block_cfg *c) {
    dn_dims d = {c->C, c->H, c->K, c->V, c->conv_size, c->H * c->K, c->H * c->V};
    return d;
}

typedef struct {
    float *qp, *qc, *q, *rq;
    float *kp, *kc, *k, *rk;
    float *vp, *vc, *v;
    float *beta;          // (N, H)
    float *o, *ro, *on;   // (N, H·V), rstd (N·H)
} dn_act;

static size_t dn_act_layout(const dn_dims *d, int64_t N, float *base, dn_act *a) {
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
    a->o = pn_bu_take(&p, &n, N * d->HV);
    a->ro = pn_bu_take(&p, &n, N * d->H);
    a->on = pn_bu_take(&p, &n, N * d->HV);
    return n;
}

typedef struct {
    float *don, *dout, *dq, *dk, *dv, *dbeta, *dbp, *t1, *t2, *t3;  // t*: (N, max(HK, HV)) temps
} dn_grad;

static size_t dn_grad_layout(const dn_dims *d, int64_t N, float *base, dn_grad *s) {
    size_t n = 0;
    float *p = base;
    int64_t wide = PN_MAX(d->HK, d->HV);
    s->don = pn_bu_take(&p, &n, N * d->HV);
    s->dout = pn_bu_take(&p, &n, N * d->HV);
    s->dq = pn_bu_take(&p, &n, N * d->HK);
    s->dk = pn_bu_take(&p, &n, N * d->HK);
    s->dv = pn_bu_take(&p, &n, N * d->HV);
    s->dbeta = pn_bu_take(&p, &n, N * d->H);
    s->dbp = pn_bu_take(&p, &n, N * d->H);
    s->t1 = pn_bu_take(&p, &n, N * wide);
    s->t2 = pn_bu_take(&p, &n, N * wide);
    s->t3 = pn_bu_take(&p, &n, N * wide);
    return n;
}

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
    dn_dims d = dn_dims_of(c);
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
    dn_dims d = dn_dims_of(c);
    dn_act a;
    return dn_act_layout(&d, (int64_t)B * T, NULL, &a);
}

// Prefill and decode keep their activations in scratch, so scratch covers both.
static size_t dn_scratch_floats(const pn_block_cfg *c, int B, int T) {
    dn_dims d = dn_dims_of(c);
    dn_grad s;
    return dn_act_floats(c, B, T) + dn_grad_layout(&d, (int64_t)B * T, NULL, &s);
}

static int64_t dn_state_stride(const dn_dims *d) {
    return (int64_t)d->H * d->K * d->V + (int64_t)(d->W - 1) * (2 * d->HK + d->HV);
}

static void dn_run(const pn_block *b, float *y, const float *x, int B, int T, float *act_buf, float *state,
                   int chunk) {
    dn_dims d = dn_dims_of(&b->cfg);
    float *const *P = b->params;
    int64_t N = (int64_t)B * T, sf = dn_state_stride(&d);
    dn_act a;
    dn_act_layout(&d, N, act_buf, &a);
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

    pn_rec_shape rs = {B, T, d.H, d.K, d.V, 1.0f / sqrtf((float)d.K)};
    pn_bu_gated_delta_run(&rs, chunk, a.q, a.k, a.v, NULL, a.beta, a.o, state, sf);

    pn_rmsnorm_gated_fwd(a.on, a.ro, a.o, P[P_ONORM], NULL, N * d.H, d.V, b->cfg.norm_eps);
    pn_linear_fwd(y, a.on, P[P_O], NULL, N, d.HV, d.C);
}

static void dn_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                       pn_block_ctx *ctx) {
    dn_run(b, y, x, B, T, act, NULL, pn_blocks_chunk());
}

static void dn_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                        const float *act, float *scratch, pn_block_ctx *ctx) {
    dn_dims d = dn_dims_of(&b->cfg);
    float *const *P = b->params;
    float *const *G = b->grads;
    int64_t N = (int64_t)B * T;
    dn_act a;
    dn_act_layout(&d, N, (float *)act, &a);
    dn_grad s;
    size_t ns = dn_grad_layout(&d, N, scratch, &s);
    memset(scratch, 0, ns * sizeof(float));  // every buffer below is accumulated into

    pn_linear_bwd(s.don, G[P_O], NULL, dy, a.on, P[P_O], N, d.HV, d.C);
    pn_rmsnorm_gated_bwd(s.dout, G[P_ONORM], NULL, s.don, a.o, P[P_ONORM], NULL, a.ro, N * d.H, d.V);

    pn_rec_shape rs = {B, T, d.H, d.K, d.V, 1.0f / sqrtf((float)d.K)};
    pn_gated_delta_bwd(&rs, pn_blocks_chunk(), 0, a.q, a.k, a.v, NULL, a.beta, NULL, s.dout, NULL, s.dq, s.dk, s.dv,
                       NULL, s.dbeta, NULL);

    pn_bu_sigmoid_bwd(s.dbp, s.dbeta, a.beta, N * d.H);
    pn_linear_bwd(dx, G[P_B], NULL, s.dbp, x, P[P_B], N, d.C, d.H);

    pn_bu_conv_path_bwd(dx, G[P_Q], G[P_QC], s.dq, a.q, a.rq, d.K, a.qc, a.qp, x, P[P_Q], P[P_QC], B, T, d.C, d.HK,
                        d.W, s.t1, s.t2, s.t3);
    pn_bu_conv_path_bwd(dx, G[P_K], G[P_KC], s.dk, a.k, a.rk, d.K, a.kc, a.kp, x, P[P_K], P[P_KC], B, T, d.C, d.HK,
                        d.W, s.t1, s.t2, s.t3);
    pn_bu_conv_path_bwd(dx, G[P_V], G[P_VC], s.dv, a.v, NULL, d.V, a.vc, a.vp, x, P[P_V], P[P_VC], B, T, d.C, d.HV,
                        d.W, s.t1, s.t2, s.t3);
}

static pn_state_size dn_state_size(const pn_block_cfg *c, int64_t L) {
    dn_dims d = dn_dims_of(c);
    pn_state_size s = {0, (int64_t)d.H * d.K * d.V, (int64_t)(d.W - 1) * (2 * d.HK + d.HV)};
    return s;
}

static void dn_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                       int64_t L, float *scratch, pn_block_ctx *ctx) {
    dn_dims d = dn_dims_of(&b->cfg);
    if (pos == 0) memset(state, 0, (size_t)B * dn_state_stride(&d) * sizeof(float));
    if (T > 0) dn_run(b, y, x, B, T, scratch, state, pn_blocks_chunk());
}

static void dn_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                      float *scratch, pn_block_ctx *ctx) {
    dn_dims d = dn_dims_of(&b->cfg);
    if (pos == 0) memset(state, 0, (size_t)B * dn_state_stride(&d) * sizeof(float));
    dn_run(b, y, x, B, 1, scratch, state, 0);
}

// Projections (2 per multiply-add), three short convs, ~7·K·V per head for the step.
static double dn_flops_per_token(const pn_block_cfg *c, int64_t L) {
    dn_dims d = dn_dims_of(c);
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
