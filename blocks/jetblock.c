// jetblock.c — JetBlock, the Jet-Nemotron linear-attention block (BLOCKS.md "jetblock").
//
//   q = l2n(heads(silu(x Wqᵀ))),  k = l2n(heads(silu(x Wkᵀ)))        no conv on q, k
//   kern = w2 silu(w1 x) + b2            (B, T, H·V, W), flat index d·W + j
//   v = heads(silu(dynconv(x Wvᵀ; kern)))
//   β = sigmoid(x Wbᵀ);  g = −exp(A_log) · softplus(x Waᵀ + dt_bias)
//   o = gated_delta(q, k, v, g, β; K^-1/2)
//   y = (rmsh(o, o_norm) · silu(heads(x Wgᵀ))) Woᵀ
//
// The value path's short conv has per-token kernels made by a small generator
// from x, so the block can shape its local mixing by content; w1, w2 start at zero
// (b2 ~ N(0, 0.02)) so training starts from a static conv. One forward routine
// serves training (no state, chunked), prefill (state, chunked) and decode (state,
// recurrent, T = 1). Decode state per sequence: [S (H, K, V) | last W−1 raw x Wvᵀ
// rows (W−1, H·V)].
//
// Defaults when cfg leaves them 0 (Jet-Nemotron-2B: C 1536 → 12 heads, K 96, V 256):
// H = max(1, C/128), K = 96, V = 256 (V = 2K when only K is given, as the official
// expand_v 2), W = 4, r = 8, norm eps 1e-5.
#include "blocks/block_util.h"
#include "core/rng.h"
#include <math.h>

enum { P_Q, P_K, P_V, P_A, P_B, P_ALOG, P_DT, P_W1, P_W2, P_B2, P_G, P_ONORM, P_O, P_COUNT };

typedef struct {
    int C, H, K, V, W, R;  // R: generator hidden width H·V / r
    int HK, HV;
} jet_dims;

static jet_dims jet_dims_of(const pn_block_cfg *c) {
    jet_dims d = {c->C, c->H, c->K, c->V, c->conv_size, 0, c->H * c->K, c->H * c->V};
    d.R = PN_MAX(1, d.HV / PN_MAX(1, c->gen_reduction));
    return d;
}

// Saved activations, all (N = B·T rows, ·).
typedef struct {
    float *qp, *q, *rq;     // (N, H·K) pre-activation, normalised q; (N·H) l2 rstd
    float *kp, *k, *rk;
    float *vp, *h1, *s1;    // raw x Wvᵀ (N, H·V); generator hidden before / after silu (N, R)
    float *kern, *vc, *v;   // (N, H·V·W); conv output (N, H·V); silu of it
    float *beta, *ap, *g;   // (N, H)
    float *o, *gp, *ro, *on;  // recurrence out, gate pre-act (N, H·V), norm rstd (N·H), norm out
} jet_act;

static size_t jet_act_layout(const jet_dims *d, int64_t N, float *base, jet_act *a) {
    size_t n = 0;
    float *p = base;
    a->qp = pn_bu_take(&p, &n, N * d->HK);
    a->q = pn_bu_take(&p, &n, N * d->HK);
    a->rq = pn_bu_take(&p, &n, N * d->H);
    a->kp = pn_bu_take(&p, &n, N * d->HK);
    a->k = pn_bu_take(&p, &n, N * d->HK);
    a->rk = pn_bu_take(&p, &n, N * d->H);
    a->vp = pn_bu_take(&p, &n, N * d->HV);
    a->h1 = pn_bu_take(&p, &n, N * d->R);
    a->s1 = pn_bu_take(&p, &n, N * d->R);
    a->kern = pn_bu_take(&p, &n, N * d->HV * d->W);
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

// Backward scratch: gradients of the activations above.
typedef struct {
    float *don, *dout, *dgp, *dq, *dk, *dqa, *dqp, *dv, *dvc, *dvp, *dbeta, *dbp, *dg, *dap, *dkern, *ds1, *dh1;
} jet_grad;

static size_t jet_grad_layout(const jet_dims *d, int64_t N, float *base, jet_grad *s) {
    size_t n = 0;
    float *p = base;
    s->don = pn_bu_take(&p, &n, N * d->HV);
    s->dout = pn_bu_take(&p, &n, N * d->HV);
    s->dgp = pn_bu_take(&p, &n, N * d->HV);
    s->dq = pn_bu_take(&p, &n, N * d->HK);
    s->dk = pn_bu_take(&p, &n, N * d->HK);
    s->dqa = pn_bu_take(&p, &n, N * d->HK);
    s->dqp = pn_bu_take(&p, &n, N * d->HK);
    s->dv = pn_bu_take(&p, &n, N * d->HV);
    s->dvc = pn_bu_take(&p, &n, N * d->HV);
    s->dvp = pn_bu_take(&p, &n, N * d->HV);
    s->dbeta = pn_bu_take(&p, &n, N * d->H);
    s->dbp = pn_bu_take(&p, &n, N * d->H);
    s->dg = pn_bu_take(&p, &n, N * d->H);
    s->dap = pn_bu_take(&p, &n, N * d->H);
    s->dkern = pn_bu_take(&p, &n, N * d->HV * d->W);
    s->ds1 = pn_bu_take(&p, &n, N * d->R);
    s->dh1 = pn_bu_take(&p, &n, N * d->R);
    return n;
}

static void jet_defaults(pn_block_cfg *c) {
    if (c->C <= 0) pn_die_input("jetblock block", "model width C must be positive, got %d", c->C);
    if (!c->H) c->H = PN_MAX(1, c->C / 128);
    if (!c->K) c->K = 96;
    if (!c->V) c->V = c->K == 96 ? 256 : 2 * c->K;
    if (!c->conv_size) c->conv_size = 4;
    if (!c->gen_reduction) c->gen_reduction = 8;
    if (c->norm_eps == 0) c->norm_eps = 1e-5f;
    if (c->H <= 0 || c->K <= 0 || c->V <= 0 || c->conv_size <= 0 || c->gen_reduction <= 0)
        pn_die_input("jetblock block", "need H, K, V, conv_size, gen_reduction > 0 (got H=%d K=%d V=%d W=%d r=%d)",
                     c->H, c->K, c->V, c->conv_size, c->gen_reduction);
}

static int jet_params(const pn_block_cfg *c, pn_param_spec *out) {
    jet_dims d = jet_dims_of(c);
    const float s = 0.02f;  // N(0, 0.02) for projections
    pn_bu_spec(&out[P_Q], "q_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HK, d.C, 0);
    pn_bu_spec(&out[P_K], "k_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HK, d.C, 0);
    pn_bu_spec(&out[P_V], "v_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HV, d.C, 0);
    pn_bu_spec(&out[P_A], "a_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.H, d.C, 0);
    pn_bu_spec(&out[P_B], "b_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.H, d.C, 0);
    pn_bu_spec(&out[P_ALOG], "A_log", PN_INIT_CUSTOM, 0, 0, 0, 1, d.H, 0, 0);
    pn_bu_spec(&out[P_DT], "dt_bias", PN_INIT_CUSTOM, 0, 0, 0, 1, d.H, 0, 0);
    pn_bu_spec(&out[P_W1], "dynamic_conv1d.kernel_generator.w1.weight", PN_INIT_ZERO, 0, 0, 1, 2, d.R, d.C, 0);
    pn_bu_spec(&out[P_W2], "dynamic_conv1d.kernel_generator.w2.weight", PN_INIT_ZERO, 0, 0, 1, 2,
               (int64_t)d.HV * d.W, d.R, 0);
    pn_bu_spec(&out[P_B2], "dynamic_conv1d.kernel_generator.w2.bias", PN_INIT_NORMAL, s, 0, 0, 1,
               (int64_t)d.HV * d.W, 0, 0);
    pn_bu_spec(&out[P_G], "g_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.HV, d.C, 0);
    pn_bu_spec(&out[P_ONORM], "o_norm.weight", PN_INIT_ONE, 0, 0, 0, 1, d.V, 0, 0);
    pn_bu_spec(&out[P_O], "o_proj.weight", PN_INIT_NORMAL, s, 0, 1, 2, d.C, d.HV, 0);
    return P_COUNT;
}

static void jet_init_custom(const pn_block *b, uint64_t seed) {
    uint64_t layer = (uint64_t)b->cfg.layer_idx << 48;
    pn_bu_init_A_log(b->params[P_ALOG], b->cfg.H, 0.0f, 16.0f, seed, pn_hash_str("A_log") ^ layer);
    pn_bu_init_dt_bias(b->params[P_DT], b->cfg.H, seed, pn_hash_str("dt_bias") ^ layer);
}

static size_t jet_act_floats(const pn_block_cfg *c, int B, int T) {
    jet_dims d = jet_dims_of(c);
    jet_act a;
    return jet_act_layout(&d, (int64_t)B * T, NULL, &a);
}

// Prefill and decode keep their activations in scratch, so scratch covers both.
static size_t jet_scratch_floats(const pn_block_cfg *c, int B, int T) {
    jet_dims d = jet_dims_of(c);
    jet_grad s;
    return jet_act_floats(c, B, T) + jet_grad_layout(&d, (int64_t)B * T, NULL, &s);
}

static int64_t jet_state_stride(const jet_dims *d) {
    return (int64_t)d->H * d->K * d->V + (int64_t)(d->W - 1) * d->HV;
}

// The forward of all three modes; state == NULL is training (fresh zero state).
static void jet_run(const pn_block *b, float *y, const float *x, int B, int T, float *act_buf, float *state,
                    int chunk) {
    jet_dims d = jet_dims_of(&b->cfg);
    float *const *P = b->params;
    int64_t N = (int64_t)B * T, sf = jet_state_stride(&d);
    jet_act a;
    jet_act_layout(&d, N, act_buf, &a);

    pn_linear_fwd(a.qp, x, P[P_Q], NULL, N, d.C, d.HK);
    pn_silu_fwd(a.q, a.qp, N * d.HK);
    pn_l2norm_fwd(a.q, a.rq, a.q, N * d.H, d.K, 1e-6f);
    pn_linear_fwd(a.kp, x, P[P_K], NULL, N, d.C, d.HK);
    pn_silu_fwd(a.k, a.kp, N * d.HK);
    pn_l2norm_fwd(a.k, a.rk, a.k, N * d.H, d.K, 1e-6f);

    pn_linear_fwd(a.vp, x, P[P_V], NULL, N, d.C, d.HV);
    pn_linear_fwd(a.h1, x, P[P_W1], NULL, N, d.C, d.R);
    pn_silu_fwd(a.s1, a.h1, N * d.R);
    pn_linear_fwd(a.kern, a.s1, P[P_W2], P[P_B2], N, d.R, d.HV * d.W);
    pn_bu_dynconv_run(a.vc, a.vp, a.kern, B, T, d.HV, d.W, state ? state + (int64_t)d.H * d.K * d.V : NULL, sf);
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

static void jet_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                        pn_block_ctx *ctx) {
    jet_run(b, y, x, B, T, act, NULL, pn_blocks_chunk());
}

static void jet_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                         const float *act, float *scratch, pn_block_ctx *ctx) {
    jet_dims d = jet_dims_of(&b->cfg);
    float *const *P = b->params;
    float *const *G = b->grads;
    int64_t N = (int64_t)B * T;
    jet_act a;
    jet_act_layout(&d, N, (float *)act, &a);
    jet_grad s;
    size_t ns = jet_grad_layout(&d, N, scratch, &s);
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

    pn_silu_bwd(s.dvc, s.dv, a.vc, N * d.HV);
    pn_dynconv_causal_bwd(s.dvp, s.dkern, s.dvc, a.vp, a.kern, NULL, B, T, d.HV, d.W);
    pn_linear_bwd(dx, G[P_V], NULL, s.dvp, x, P[P_V], N, d.C, d.HV);
    pn_linear_bwd(s.ds1, G[P_W2], G[P_B2], s.dkern, a.s1, P[P_W2], N, d.R, d.HV * d.W);
    pn_silu_bwd(s.dh1, s.ds1, a.h1, N * d.R);
    pn_linear_bwd(dx, G[P_W1], NULL, s.dh1, x, P[P_W1], N, d.C, d.R);

    // q then k through l2n and silu; dqa/dqp are reused for k after q is done.
    pn_l2norm_bwd(s.dqa, s.dq, a.q, a.rq, N * d.H, d.K);
    pn_silu_bwd(s.dqp, s.dqa, a.qp, N * d.HK);
    pn_linear_bwd(dx, G[P_Q], NULL, s.dqp, x, P[P_Q], N, d.C, d.HK);
    memset(s.dqa, 0, (size_t)N * d.HK * sizeof(float));
    memset(s.dqp, 0, (size_t)N * d.HK * sizeof(float));
    pn_l2norm_bwd(s.dqa, s.dk, a.k, a.rk, N * d.H, d.K);
    pn_silu_bwd(s.dqp, s.dqa, a.kp, N * d.HK);
    pn_linear_bwd(dx, G[P_K], NULL, s.dqp, x, P[P_K], N, d.C, d.HK);
}

static pn_state_size jet_state_size(const pn_block_cfg *c, int64_t L) {
    jet_dims d = jet_dims_of(c);
    pn_state_size s = {0, (int64_t)d.H * d.K * d.V, (int64_t)(d.W - 1) * d.HV};
    return s;
}

static void jet_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                        int64_t L, float *scratch, pn_block_ctx *ctx) {
    jet_dims d = jet_dims_of(&b->cfg);
    if (pos == 0) memset(state, 0, (size_t)B * jet_state_stride(&d) * sizeof(float));
    if (T > 0) jet_run(b, y, x, B, T, scratch, state, pn_blocks_chunk());
}

static void jet_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                       float *scratch, pn_block_ctx *ctx) {
    jet_dims d = jet_dims_of(&b->cfg);
    if (pos == 0) memset(state, 0, (size_t)B * jet_state_stride(&d) * sizeof(float));
    jet_run(b, y, x, B, 1, scratch, state, 0);
}

// Projections and generator (2 per multiply-add), the dynamic conv, and about 8·K·V
// per head for the delta-rule step (decay, S'ᵀk, rank-1 update, readout).
static double jet_flops_per_token(const pn_block_cfg *c, int64_t L) {
    jet_dims d = jet_dims_of(c);
    double proj = 2.0 * d.C * (2.0 * d.HK + 2.0 * d.HV + 2.0 * d.H + d.R) + 2.0 * d.R * d.HV * d.W + 2.0 * d.HV * d.C;
    return proj + 2.0 * d.HV * d.W + 8.0 * d.H * d.K * d.V;
}

const pn_block_type pn_block_jetblock = {
    .name = "jetblock",
    .defaults = jet_defaults,
    .params = jet_params,
    .init_custom = jet_init_custom,
    .act_floats = jet_act_floats,
    .scratch_floats = jet_scratch_floats,
    .forward = jet_forward,
    .backward = jet_backward,
    .state_size = jet_state_size,
    .prefill = jet_prefill,
    .decode = jet_decode,
    .flops_per_token = jet_flops_per_token,
};
