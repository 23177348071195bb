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
