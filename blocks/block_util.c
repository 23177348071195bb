// block_util.c — see block_util.h.
#include "blocks/block_util.h"
#include "core/rng.h"
#include <math.h>

static inline float bu_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
static inline float bu_sigmoid(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

void pn_bu_decay_fwd(float *g, const float *a, const float *A_log, const float *dt_bias, int64_t N, int H) {
    for (int64_t n = 0; n < N; n++)
        for (int h = 0; h < H; h++) g[n * H + h] = -expf(A_log[h]) * bu_softplus(a[n * H + h] + dt_bias[h]);
}

// dg/dA_log = g (the exp factor); dg/da = −exp(A_log)·sigmoid(a + dt_bias) (softplus' = sigmoid;
// above torch's threshold 20 the slope is 1, which sigmoid reaches in fp32).
void pn_bu_decay_bwd(float *da, float *dA_log, float *ddt_bias, const float *dg, const float *g, const float *a,
                     const float *A_log, const float *dt_bias, int64_t N, int H) {
    for (int h = 0; h < H; h++) {
        float A = expf(A_log[h]);
        double sA = 0, sdt = 0;
        for (int64_t n = 0; n < N; n++) {
            float d = dg[n * H + h];
            sA += (double)d * g[n * H + h];
            float dpre = -d * A * bu_sigmoid(a[n * H + h] + dt_bias[h]);
            if (da) da[n * H + h] += dpre;
            sdt += dpre;
        }
        if (dA_log) dA_log[h] += (float)sA;
        if (ddt_bias) ddt_bias[h] += (float)sdt;
    }
}

void pn_bu_sigmoid_bwd(float *da, const float *dbeta, const float *beta, int64_t n) {
    for (int64_t i = 0; i < n; i++) da[i] += dbeta[i] * beta[i] * (1.0f - beta[i]);
}

void pn_bu_init_A_log(float *A_log, int H, float lo, float hi, uint64_t seed, uint64_t stream) {
    for (int h = 0; h < H; h++) {
        float A = lo + (hi - lo) * pn_uniform_at(seed, stream, (uint64_t)h);
        A_log[h] = logf(A > 1e-4f ? A : 1e-4f);  // U(0, ·) may draw 0 exactly; log must stay finite
    }
}

void pn_bu_init_dt_bias(float *dt_bias, int H, uint64_t seed, uint64_t stream) {
    const double dt_min = 1e-3, dt_max = 0.1, floor_ = 1e-4;
    for (int h = 0; h < H; h++) {
        double u = pn_uniform_at(seed, stream, (uint64_t)h);
        double dt = exp(u * (log(dt_max) - log(dt_min)) + log(dt_min));
        if (dt < floor_) dt = floor_;
        dt_bias[h] = (float)(dt + log(-expm1(-dt)));
    }
}

void pn_bu_gated_delta_run(const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v,
                           const float *g, const float *beta, float *o, float *state, int64_t stride) {
    if (!state) {
        pn_gated_delta_fwd(s, chunk, 0, q, k, v, g, beta, NULL, o, NULL);
        return;
    }
    pn_rec_shape s1 = *s;
    s1.B = 1;
    int64_t TH = (int64_t)s->T * s->H;
    for (int b = 0; b < s->B; b++) {
        float *S = state + (int64_t)b * stride;
        pn_gated_delta_fwd(&s1, chunk, 0, q + b * TH * s->K, k + b * TH * s->K, v + b * TH * s->V,
                           g ? g + b * TH : NULL, beta + b * TH, S, o + b * TH * s->V, S);
    }
}

void pn_bu_conv_run(float *y, const float *x, const float *w, int B, int T, int D, int W, float *prev,
                    int64_t stride) {
    if (!prev) {
        pn_conv_causal_fwd(y, x, w, NULL, NULL, B, T, D, W);
        return;
    }
    for (int b = 0; b < B; b++) {
        const float *xb = x + (int64_t)b * T * D;
        float *pb = prev + (int64_t)b * stride;
        pn_conv_causal_fwd(y + (int64_t)b * T * D, xb, w, NULL, pb, 1, T, D, W);
        pn_conv_state_update(pb, xb, 1, T, D, W);
    }
}

void pn_bu_dynconv_run(float *y, const float *x, const float *kern, int B, int T, int D, int W, float *prev,
                       int64_t stride) {
    if (!prev) {
        pn_dynconv_causal_fwd(y, x, kern, NULL, B, T, D, W);
        return;
    }
    for (int b = 0; b < B; b++) {
        const float *xb = x + (int64_t)b * T * D;
        float *pb = prev + (int64_t)b * stride;
        pn_dynconv_causal_fwd(y + (int64_t)b * T * D, xb, kern + (int64_t)b * T * D * W, pb, 1, T, D, W);
        pn_conv_state_update(pb, xb, 1, T, D, W);
    }
}

void pn_bu_spec(pn_param_spec *p, const char *name, pn_init_kind init, float a, float b, int weight_decay, int ndim,
                int64_t d0, int64_t d1, int64_t d2) {
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 0;
    p->shape[2] = ndim > 2 ? d2 : 0;
    p->init = init;
    p->a = a;
    p->b = b;
    p->weight_decay = weight_decay;
}

// d(act) → through silu → through the conv (weight grad too) → through the projection.
// With rstd != NULL the activation was also l2-normalised per head of width `hd`.
void pn_bu_conv_path_bwd(float *dx, float *dWp, float *dWc, const float *dact, const float *act, const float *rstd,
                         int hd, const float *conv_out, const float *proj, const float *x, const float *Wp,
                         const float *Wc, int B, int T, int C, int D, int W, float *t1, float *t2, float *t3) {
    int64_t N = (int64_t)B * T;
    size_t bytes = (size_t)N * D * sizeof(float);
    const float *dsil = dact;
    if (rstd) {
        memset(t1, 0, bytes);
        pn_l2norm_bwd(t1, dact, act, rstd, N * (D / hd), hd);
        dsil = t1;
    }
    memset(t2, 0, bytes);
    pn_silu_bwd(t2, dsil, conv_out, N * D);
    memset(t3, 0, bytes);
    pn_conv_causal_bwd(t3, dWc, NULL, t2, proj, Wc, NULL, B, T, D, W);
    pn_linear_bwd(dx, dWp, NULL, t3, x, Wp, N, C, D);
}

// ---------------------------------------------------------------- delta-rule family

pn_bu_dims pn_bu_dims_of(const pn_block_cfg *c) {
    pn_bu_dims d = {c->C, c->H, c->K, c->V, c->conv_size, c->H * c->K, c->H * c->V};
    return d;
}

void pn_bu_delta_init_gate(const pn_block *b, const pn_bu_delta_ix *ix, uint64_t seed) {
    uint64_t layer = (uint64_t)b->cfg.layer_idx << 48;
    pn_bu_init_A_log(b->params[ix->A_log], b->cfg.H, 0.0f, 16.0f, seed, pn_hash_str("A_log") ^ layer);
    pn_bu_init_dt_bias(b->params[ix->dt_bias], b->cfg.H, seed, pn_hash_str("dt_bias") ^ layer);
}

void pn_bu_delta_act_layout(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int64_t N, float **cur, size_t *count,
                            pn_bu_delta_act *a) {
    pn_bu_dims d = pn_bu_dims_of(c);
    a->beta = pn_bu_take(cur, count, N * d.H);
    a->ap = ix->a >= 0 ? pn_bu_take(cur, count, N * d.H) : NULL;
    a->g = ix->a >= 0 ? pn_bu_take(cur, count, N * d.H) : NULL;
    a->o = pn_bu_take(cur, count, N * d.HV);
    a->gp = ix->g >= 0 ? pn_bu_take(cur, count, N * d.HV) : NULL;
    a->ro = pn_bu_take(cur, count, N * d.H);
    a->on = pn_bu_take(cur, count, N * d.HV);
}

void pn_bu_delta_grad_layout(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int64_t N, float **cur,
                             size_t *count, pn_bu_delta_grad *s) {
    pn_bu_dims d = pn_bu_dims_of(c);
    s->don = pn_bu_take(cur, count, N * d.HV);
    s->dout = pn_bu_take(cur, count, N * d.HV);
    s->dgp = ix->g >= 0 ? pn_bu_take(cur, count, N * d.HV) : NULL;
    s->dq = pn_bu_take(cur, count, N * d.HK);
    s->dk = pn_bu_take(cur, count, N * d.HK);
    s->dv = pn_bu_take(cur, count, N * d.HV);
    s->dbeta = pn_bu_take(cur, count, N * d.H);
    s->dbp = pn_bu_take(cur, count, N * d.H);
    s->dg = ix->a >= 0 ? pn_bu_take(cur, count, N * d.H) : NULL;
    s->dap = ix->a >= 0 ? pn_bu_take(cur, count, N * d.H) : NULL;
}

// β = sigmoid(x Wbᵀ); g = decay(x Waᵀ) when the block has a gate; o = delta rule;
// y = (rmsh(o) [· silu(x Wgᵀ)]) Woᵀ. Absent parts pass NULL to the ops, which is how
// they express g = 0 and an ungated norm.
void pn_bu_delta_fwd(const pn_block *b, const pn_bu_delta_ix *ix, const pn_bu_delta_act *a, float *y, const float *x,
                     const float *q, const float *k, const float *v, int B, int T, float *state, int64_t stride,
                     int chunk) {
    pn_bu_dims d = pn_bu_dims_of(&b->cfg);
    float *const *P = b->params;
    int64_t N = (int64_t)B * T;

    pn_linear_fwd(a->beta, x, P[ix->b], NULL, N, d.C, d.H);
    pn_sigmoid_fwd(a->beta, a->beta, N * d.H);
    if (ix->a >= 0) {
        pn_linear_fwd(a->ap, x, P[ix->a], NULL, N, d.C, d.H);
        pn_bu_decay_fwd(a->g, a->ap, P[ix->A_log], P[ix->dt_bias], N, d.H);
    }

    pn_rec_shape rs = {B, T, d.H, d.K, d.V, 1.0f / sqrtf((float)d.K)};
    pn_bu_gated_delta_run(&rs, chunk, q, k, v, a->g, a->beta, a->o, state, stride);

    if (ix->g >= 0) pn_linear_fwd(a->gp, x, P[ix->g], NULL, N, d.C, d.HV);
    pn_rmsnorm_gated_fwd(a->on, a->ro, a->o, P[ix->o_norm], a->gp, N * d.H, d.V, b->cfg.norm_eps);
    pn_linear_fwd(y, a->on, P[ix->o], NULL, N, d.HV, d.C);
}

void pn_bu_delta_bwd(const pn_block *b, const pn_bu_delta_ix *ix, const pn_bu_delta_act *a, const pn_bu_delta_grad *s,
                     float *dx, const float *dy, const float *x, const float *q, const float *k, const float *v, int B,
                     int T) {
    pn_bu_dims d = pn_bu_dims_of(&b->cfg);
    float *const *P = b->params;
    float *const *G = b->grads;
    int64_t N = (int64_t)B * T;

    pn_linear_bwd(s->don, G[ix->o], NULL, dy, a->on, P[ix->o], N, d.HV, d.C);
    pn_rmsnorm_gated_bwd(s->dout, G[ix->o_norm], s->dgp, s->don, a->o, P[ix->o_norm], a->gp, a->ro, N * d.H, d.V);
    if (ix->g >= 0) pn_linear_bwd(dx, G[ix->g], NULL, s->dgp, x, P[ix->g], N, d.C, d.HV);

    pn_rec_shape rs = {B, T, d.H, d.K, d.V, 1.0f / sqrtf((float)d.K)};
    pn_gated_delta_bwd(&rs, pn_blocks_chunk(), 0, q, k, v, a->g, a->beta, NULL, s->dout, NULL, s->dq, s->dk, s->dv,
                       s->dg, s->dbeta, NULL);

    pn_bu_sigmoid_bwd(s->dbp, s->dbeta, a->beta, N * d.H);
    pn_linear_bwd(dx, G[ix->b], NULL, s->dbp, x, P[ix->b], N, d.C, d.H);
    if (ix->a >= 0) {
        pn_bu_decay_bwd(s->dap, G[ix->A_log], G[ix->dt_bias], s->dg, a->g, a->ap, P[ix->A_log], P[ix->dt_bias], N,
                        d.H);
        pn_linear_bwd(dx, G[ix->a], NULL, s->dap, x, P[ix->a], N, d.C, d.H);
    }
}

void pn_bu_state_reset(float *state, int B, int64_t stride, int64_t pos) {
    if (pos == 0) memset(state, 0, (size_t)B * stride * sizeof(float));
}

// ---------------------------------------------------------------- short-conv delta blocks

// Saved activations of the short-conv q/k/v path, N = B·T rows: projection, conv
// output, silu (l2-normalised for q, k; rstd (N·H)).
typedef struct {
    float *qp, *qc, *q, *rq;
    float *kp, *kc, *k, *rk;
    float *vp, *vc, *v;
} cd_qkv;

typedef struct {
    cd_qkv qkv;
    pn_bu_delta_act tail;
} cd_act;

typedef struct {
    pn_bu_delta_grad tail;
    float *t1, *t2, *t3;  // (N, max(HK, HV)) temps of the q/k/v backward
} cd_grad;

static size_t cd_act_layout(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int64_t N, float *base, cd_act *a) {
    pn_bu_dims d = pn_bu_dims_of(c);
    size_t n = 0;
    float *p = base;
    cd_qkv *q = &a->qkv;
    q->qp = pn_bu_take(&p, &n, N * d.HK);
    q->qc = pn_bu_take(&p, &n, N * d.HK);
    q->q = pn_bu_take(&p, &n, N * d.HK);
    q->rq = pn_bu_take(&p, &n, N * d.H);
    q->kp = pn_bu_take(&p, &n, N * d.HK);
    q->kc = pn_bu_take(&p, &n, N * d.HK);
    q->k = pn_bu_take(&p, &n, N * d.HK);
    q->rk = pn_bu_take(&p, &n, N * d.H);
    q->vp = pn_bu_take(&p, &n, N * d.HV);
    q->vc = pn_bu_take(&p, &n, N * d.HV);
    q->v = pn_bu_take(&p, &n, N * d.HV);
    pn_bu_delta_act_layout(c, ix, N, &p, &n, &a->tail);
    return n;
}

static size_t cd_grad_layout(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int64_t N, float *base, cd_grad *s) {
    pn_bu_dims d = pn_bu_dims_of(c);
    size_t n = 0;
    float *p = base;
    int64_t wide = PN_MAX(d.HK, d.HV);
    pn_bu_delta_grad_layout(c, ix, N, &p, &n, &s->tail);
    s->t1 = pn_bu_take(&p, &n, N * wide);
    s->t2 = pn_bu_take(&p, &n, N * wide);
    s->t3 = pn_bu_take(&p, &n, N * wide);
    return n;
}

size_t pn_bu_convdelta_act_floats(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int B, int T) {
    cd_act a;
    return cd_act_layout(c, ix, (int64_t)B * T, NULL, &a);
}

size_t pn_bu_convdelta_scratch_floats(const pn_block_cfg *c, const pn_bu_delta_ix *ix, int B, int T) {
    cd_grad s;
    return pn_bu_convdelta_act_floats(c, ix, B, T) + cd_grad_layout(c, ix, (int64_t)B * T, NULL, &s);
}

pn_state_size pn_bu_convdelta_state_size(const pn_block_cfg *c) {
    pn_bu_dims d = pn_bu_dims_of(c);
    pn_state_size s = {0, (int64_t)d.H * d.K * d.V, (int64_t)(d.W - 1) * (2 * d.HK + d.HV)};
    return s;
}

int64_t pn_bu_convdelta_state_stride(const pn_block_cfg *c) {
    pn_state_size s = pn_bu_convdelta_state_size(c);
    return s.rec + s.conv;
}

// proj → short conv (+ state) → silu; q and k then l2-normalised per head; then the tail.
void pn_bu_convdelta_run(const pn_block *b, const pn_bu_delta_ix *ix, float *y, const float *x, int B, int T,
                         float *act, float *state, int chunk) {
    pn_bu_dims d = pn_bu_dims_of(&b->cfg);
    float *const *P = b->params;
    int64_t N = (int64_t)B * T, sf = pn_bu_convdelta_state_stride(&b->cfg);
    cd_act ca;
    cd_act_layout(&b->cfg, ix, N, act, &ca);
    cd_qkv *a = &ca.qkv;
    float *qprev = NULL, *kprev = NULL, *vprev = NULL;
    if (state) {
        qprev = state + (int64_t)d.H * d.K * d.V;
        kprev = qprev + (int64_t)(d.W - 1) * d.HK;
        vprev = kprev + (int64_t)(d.W - 1) * d.HK;
    }

    pn_linear_fwd(a->qp, x, P[ix->q], NULL, N, d.C, d.HK);
    pn_bu_conv_run(a->qc, a->qp, P[ix->q_conv], B, T, d.HK, d.W, qprev, sf);
    pn_silu_fwd(a->q, a->qc, N * d.HK);
    pn_l2norm_fwd(a->q, a->rq, a->q, N * d.H, d.K, 1e-6f);
    pn_linear_fwd(a->kp, x, P[ix->k], NULL, N, d.C, d.HK);
    pn_bu_conv_run(a->kc, a->kp, P[ix->k_conv], B, T, d.HK, d.W, kprev, sf);
    pn_silu_fwd(a->k, a->kc, N * d.HK);
    pn_l2norm_fwd(a->k, a->rk, a->k, N * d.H, d.K, 1e-6f);
    pn_linear_fwd(a->vp, x, P[ix->v], NULL, N, d.C, d.HV);
    pn_bu_conv_run(a->vc, a->vp, P[ix->v_conv], B, T, d.HV, d.W, vprev, sf);
    pn_silu_fwd(a->v, a->vc, N * d.HV);

    pn_bu_delta_fwd(b, ix, &ca.tail, y, x, a->q, a->k, a->v, B, T, state, sf, chunk);
}

void pn_bu_convdelta_bwd(const pn_block *b, const pn_bu_delta_ix *ix, float *dx, const float *dy, const float *x,
                         int B, int T, const float *act, float *scratch) {
    pn_bu_dims d = pn_bu_dims_of(&b->cfg);
    float *const *P = b->params;
    float *const *G = b->grads;
    int64_t N = (int64_t)B * T;
    cd_act ca;
    cd_act_layout(&b->cfg, ix, N, (float *)act, &ca);
    const cd_qkv *a = &ca.qkv;
    cd_grad s;
    size_t ns = cd_grad_layout(&b->cfg, ix, N, scratch, &s);
    memset(scratch, 0, ns * sizeof(float));  // every buffer below is accumulated into

    pn_bu_delta_bwd(b, ix, &ca.tail, &s.tail, dx, dy, x, a->q, a->k, a->v, B, T);

    pn_bu_conv_path_bwd(dx, G[ix->q], G[ix->q_conv], s.tail.dq, a->q, a->rq, d.K, a->qc, a->qp, x, P[ix->q],
                        P[ix->q_conv], B, T, d.C, d.HK, d.W, s.t1, s.t2, s.t3);
    pn_bu_conv_path_bwd(dx, G[ix->k], G[ix->k_conv], s.tail.dk, a->k, a->rk, d.K, a->kc, a->kp, x, P[ix->k],
                        P[ix->k_conv], B, T, d.C, d.HK, d.W, s.t1, s.t2, s.t3);
    pn_bu_conv_path_bwd(dx, G[ix->v], G[ix->v_conv], s.tail.dv, a->v, NULL, d.V, a->vc, a->vp, x, P[ix->v],
                        P[ix->v_conv], B, T, d.C, d.HV, d.W, s.t1, s.t2, s.t3);
}
