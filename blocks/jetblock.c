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
// recurrent, T = 1); β, the gate, the delta rule and the output norm are shared with
// Gated DeltaNet (pn_bu_delta_* in block_util.c). Decode state per sequence: [S (H, K, V) | last W−1 raw x Wvᵀ
// rows (W−1, H·V)].
//
// Defaults when cfg leaves them 0 (Jet-Nemotron-2B: C 1536 → 12 heads, K 96, V 256):
// H = max(1, C/128), K = 96, V = 256 (V = 2K when only K is given, as the official
// expand_v 2), W = 4, r = 8, norm eps 1e-5.
#include "blocks/block_util.h"

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

// Where the shared delta-rule parameters sit (block_util.h); no static conv path.
static const pn_bu_delta_ix JET_IX = {-1, -1, -1, -1, -1, -1, P_B, P_A, P_ALOG, P_DT, P_G, P_ONORM, P_O};

// Saved activations, all (N = B·T rows, ·).
typedef struct {
    float *qp, *q, *rq;     // (N, H·K) pre-activation, normalised q; (N·H) l2 rstd
    float *kp, *k, *rk;
    float *vp, *h1, *s1;    // raw x Wvᵀ (N, H·V); generator hidden before / after silu (N, R)
    float *kern, *vc, *v;   // (N, H·V·W); conv output (N, H·V); silu of it
    pn_bu_delta_act tail;   // β, gate, recurrence out, output norm (block_util.h)
} jet_act;

static size_t jet_act_layout(const pn_block_cfg *c, int64_t N, float *base, jet_act *a) {
    jet_dims d = jet_dims_of(c);
    size_t n = 0;
    float *p = base;
    a->qp = pn_bu_take(&p, &n, N * d.HK);
    a->q = pn_bu_take(&p, &n, N * d.HK);
    a->rq = pn_bu_take(&p, &n, N * d.H);
    a->kp = pn_bu_take(&p, &n, N * d.HK);
    a->k = pn_bu_take(&p, &n, N * d.HK);
    a->rk = pn_bu_take(&p, &n, N * d.H);
    a->vp = pn_bu_take(&p, &n, N * d.HV);
    a->h1 = pn_bu_take(&p, &n, N * d.R);
    a->s1 = pn_bu_take(&p, &n, N * d.R);
    a->kern = pn_bu_take(&p, &n, N * d.HV * d.W);
    a->vc = pn_bu_take(&p, &n, N * d.HV);
    a->v = pn_bu_take(&p, &n, N * d.HV);
    pn_bu_delta_act_layout(c, &JET_IX, N, &p, &n, &a->tail);
    return n;
}

// Backward scratch: gradients of the activations above (the tail's hold dq, dk, dv).
typedef struct {
    pn_bu_delta_grad tail;
    float *dqa, *dqp, *dvc, *dvp, *dkern, *ds1, *dh1;
} jet_grad;

static size_t jet_grad_layout(const pn_block_cfg *c, int64_t N, float *base, jet_grad *s) {
    jet_dims d = jet_dims_of(c);
    size_t n = 0;
    float *p = base;
    pn_bu_delta_grad_layout(c, &JET_IX, N, &p, &n, &s->tail);
    s->dqa = pn_bu_take(&p, &n, N * d.HK);
    s->dqp = pn_bu_take(&p, &n, N * d.HK);
    s->dvc = pn_bu_take(&p, &n, N * d.HV);
    s->dvp = pn_bu_take(&p, &n, N * d.HV);
    s->dkern = pn_bu_take(&p, &n, N * d.HV * d.W);
    s->ds1 = pn_bu_take(&p, &n, N * d.R);
    s->dh1 = pn_bu_take(&p, &n, N * d.R);
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
    pn_bu_delta_init_gate(b, &JET_IX, seed);
}

static size_t jet_act_floats(const pn_block_cfg *c, int B, int T) {
    jet_act a;
    return jet_act_layout(c, (int64_t)B * T, NULL, &a);
}

// Prefill and decode keep their activations in scratch, so scratch covers both.
static size_t jet_scratch_floats(const pn_block_cfg *c, int B, int T) {
    jet_grad s;
    return jet_act_floats(c, B, T) + jet_grad_layout(c, (int64_t)B * T, NULL, &s);
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
    jet_act_layout(&b->cfg, N, act_buf, &a);

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

    // β, g, the gated delta rule and the gated output norm → y
    pn_bu_delta_fwd(b, &JET_IX, &a.tail, y, x, a.q, a.k, a.v, B, T, state, sf, chunk);
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
    jet_act_layout(&b->cfg, N, (float *)act, &a);
    jet_grad s;
    size_t ns = jet_grad_layout(&b->cfg, N, scratch, &s);
    memset(scratch, 0, ns * sizeof(float));  // every buffer below is accumulated into

    // the tail leaves dq, dk, dv in s.tail
    pn_bu_delta_bwd(b, &JET_IX, &a.tail, &s.tail, dx, dy, x, a.q, a.k, a.v, B, T);

    pn_silu_bwd(s.dvc, s.tail.dv, a.vc, N * d.HV);
    pn_dynconv_causal_bwd(s.dvp, s.dkern, s.dvc, a.vp, a.kern, NULL, B, T, d.HV, d.W);
    pn_linear_bwd(dx, G[P_V], NULL, s.dvp, x, P[P_V], N, d.C, d.HV);
    pn_linear_bwd(s.ds1, G[P_W2], G[P_B2], s.dkern, a.s1, P[P_W2], N, d.R, d.HV * d.W);
    pn_silu_bwd(s.dh1, s.ds1, a.h1, N * d.R);
    pn_linear_bwd(dx, G[P_W1], NULL, s.dh1, x, P[P_W1], N, d.C, d.R);

    // q then k through l2n and silu; dqa/dqp are reused for k after q is done.
    pn_l2norm_bwd(s.dqa, s.tail.dq, a.q, a.rq, N * d.H, d.K);
    pn_silu_bwd(s.dqp, s.dqa, a.qp, N * d.HK);
    pn_linear_bwd(dx, G[P_Q], NULL, s.dqp, x, P[P_Q], N, d.C, d.HK);
    memset(s.dqa, 0, (size_t)N * d.HK * sizeof(float));
    memset(s.dqp, 0, (size_t)N * d.HK * sizeof(float));
    pn_l2norm_bwd(s.dqa, s.tail.dk, a.k, a.rk, N * d.H, d.K);
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
    pn_bu_state_reset(state, B, jet_state_stride(&d), pos);
    if (T > 0) jet_run(b, y, x, B, T, scratch, state, pn_blocks_chunk());
}

static void jet_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                       float *scratch, pn_block_ctx *ctx) {
    jet_dims d = jet_dims_of(&b->cfg);
    pn_bu_state_reset(state, B, jet_state_stride(&d), pos);
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
