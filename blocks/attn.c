// attn.c — the pretrained softmax attention as a token mixer: `attn` (full causal)
// and `swa` (the same weights with a sliding window of cfg.window keys).
//
// Qwen2 / Llama / Qwen3 attention (BLOCKS.md "attn"): q, k, v projections
// (biases when cfg.qkv_bias), Qwen3's per-head q/k RMSNorm before RoPE
// (cfg.qk_norm), rotate-half RoPE, GQA softmax attention with scale K^-1/2, o_proj.
// cfg.qkv_bias = 2 additionally gives o_proj a bias (Llama / Qwen3 with
// attention_bias = true; Qwen2 has q/k/v biases only) — block.h has one bias
// field and this keeps its meaning for the common case.
//
// Decode state per sequence: K cache then V cache, each (Lc, H_kv, K) with
// Lc = L (attn) or min(window, L) (swa, a ring indexed by position % Lc). Keys
// are stored after norm + RoPE at their absolute position, so a prefill/decode
// step only rotates the new tokens. A prefill from position 0 reuses the
// training kernel; a continuation attends with an online softmax over cache +
// new keys (no score buffer, so scratch does not depend on the context).
#include "block.h"
#include "kernels/ops.h"
#include <math.h>

typedef struct {
    int wq, bq, wk, bk, wv, bv, wo, bo, qn, kn;  // parameter indices, -1 = absent
} attn_idx;

static attn_idx attn_index(const pn_block_cfg *c) {
    attn_idx ix;
    int n = 0;
    ix.wq = n++;
    ix.bq = c->qkv_bias ? n++ : -1;
    ix.wk = n++;
    ix.bk = c->qkv_bias ? n++ : -1;
    ix.wv = n++;
    ix.bv = c->qkv_bias ? n++ : -1;
    ix.wo = n++;
    ix.bo = c->qkv_bias == 2 ? n++ : -1;
    ix.qn = c->qk_norm ? n++ : -1;
    ix.kn = c->qk_norm ? n++ : -1;
    return ix;
}

static const float *par(const pn_block *b, int i) { return i >= 0 ? b->params[i] : NULL; }
static float *grd(const pn_block *b, int i) { return i >= 0 ? b->grads[i] : NULL; }

static void attn_defaults(pn_block_cfg *c) {
    if (c->H <= 0) c->H = c->C >= 64 ? c->C / 64 : 1;
    if (c->K <= 0) c->K = c->C / c->H;
    if (c->H_kv <= 0) c->H_kv = c->H;
    if (c->rope_theta == 0.0f) c->rope_theta = 10000.0f;
    if (c->norm_eps == 0.0f) c->norm_eps = 1e-6f;
}

static void swa_defaults(pn_block_cfg *c) {
    attn_defaults(c);
    if (c->window <= 0) c->window = 512;
}

static void spec_set(pn_param_spec *p, const char *name, int ndim, int64_t d0, int64_t d1, pn_init_kind init,
                     float a, int wd) {
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->init = init;
    p->a = a;
    p->weight_decay = wd;
}

static int attn_params(const pn_block_cfg *c, pn_param_spec *out) {
    const int64_t C = c->C, QD = (int64_t)c->H * c->K, KD = (int64_t)c->H_kv * c->K;
    int n = 0;
    spec_set(&out[n++], "q_proj.weight", 2, QD, C, PN_INIT_NORMAL, 0.02f, 1);
    if (c->qkv_bias) spec_set(&out[n++], "q_proj.bias", 1, QD, 0, PN_INIT_ZERO, 0, 0);
    spec_set(&out[n++], "k_proj.weight", 2, KD, C, PN_INIT_NORMAL, 0.02f, 1);
    if (c->qkv_bias) spec_set(&out[n++], "k_proj.bias", 1, KD, 0, PN_INIT_ZERO, 0, 0);
    spec_set(&out[n++], "v_proj.weight", 2, KD, C, PN_INIT_NORMAL, 0.02f, 1);
    if (c->qkv_bias) spec_set(&out[n++], "v_proj.bias", 1, KD, 0, PN_INIT_ZERO, 0, 0);
    spec_set(&out[n++], "o_proj.weight", 2, C, QD, PN_INIT_NORMAL, 0.02f, 1);
    if (c->qkv_bias == 2) spec_set(&out[n++], "o_proj.bias", 1, C, 0, PN_INIT_ZERO, 0, 0);
    if (c->qk_norm) {
        spec_set(&out[n++], "q_norm.weight", 1, c->K, 0, PN_INIT_ONE, 0, 0);
        spec_set(&out[n++], "k_norm.weight", 1, c->K, 0, PN_INIT_ONE, 0, 0);
    }
    return n;
}

// Saved activations for (B, T), N = B·T: q (N,H,K) and k (N,Hkv,K) after norm +
// RoPE, v (N,Hkv,K), o (N,H,K), lse (B,H,T); with qk_norm also the raw q, k
// projections and their rstd (N·H, N·Hkv).
typedef struct {
    float *q, *k, *v, *o, *lse, *qraw, *kraw, *qrstd, *krstd;
} attn_act;

static size_t attn_act_layout(const pn_block_cfg *c, int B, int T, float *base, attn_act *a) {
    const size_t N = (size_t)B * T, QN = N * c->H * c->K, KN = N * c->H_kv * c->K;
    size_t off = 0;
#define TAKE(field, n)                                    \
    do {                                                  \
        if (a) a->field = base ? base + off : NULL;       \
        off += (n);                                       \
    } while (0)
    TAKE(q, QN);
    TAKE(k, KN);
    TAKE(v, KN);
    TAKE(o, QN);
    TAKE(lse, (size_t)B * c->H * T);
    if (c->qk_norm) {
        TAKE(qraw, QN);
        TAKE(kraw, KN);
        TAKE(qrstd, N * c->H);
        TAKE(krstd, N * c->H_kv);
    } else if (a) {
        a->qraw = a->kraw = a->qrstd = a->krstd = NULL;
    }
#undef TAKE
    return off;
}

static size_t attn_act_floats(const pn_block_cfg *c, int B, int T) { return attn_act_layout(c, B, T, NULL, NULL); }

static size_t attn_scratch_floats(const pn_block_cfg *c, int B, int T) {
    const size_t N = (size_t)B * T, QN = N * c->H * c->K, KN = N * c->H_kv * c->K;
    size_t bwd = 2 * QN + 2 * KN + (c->qk_norm ? QN + KN : 0);
    size_t pre = 2 * QN + 2 * KN + (size_t)B * c->H * T + N * (c->H + c->H_kv);
    return PN_MAX(bwd, pre);
}

static int attn_window(const pn_block *b) { return b->type->name[0] == 's' ? b->cfg.window : 0; }

// q, k, v projections + q/k norm + RoPE at positions pos.. into the given buffers.
// qraw/kraw/rstds may alias q/k (norm in place) when the caller needs no backward.
static void attn_qkv(const pn_block *b, const float *x, int B, int T, int64_t pos, float *q, float *k, float *v,
                     float *qraw, float *kraw, float *qrstd, float *krstd) {
    const pn_block_cfg *c = &b->cfg;
    const attn_idx ix = attn_index(c);
    const int64_t N = (int64_t)B * T;
    const int QD = c->H * c->K, KD = c->H_kv * c->K;
    pn_linear_fwd(c->qk_norm ? qraw : q, x, par(b, ix.wq), par(b, ix.bq), N, c->C, QD);
    pn_linear_fwd(c->qk_norm ? kraw : k, x, par(b, ix.wk), par(b, ix.bk), N, c->C, KD);
    pn_linear_fwd(v, x, par(b, ix.wv), par(b, ix.bv), N, c->C, KD);
    if (c->qk_norm) {
        pn_rmsnorm_fwd(q, qrstd, qraw, par(b, ix.qn), N * c->H, c->K, c->norm_eps);
        pn_rmsnorm_fwd(k, krstd, kraw, par(b, ix.kn), N * c->H_kv, c->K, c->norm_eps);
    }
    pn_rope_fwd(q, B, T, c->H, c->K, pos, c->rope_theta);
    pn_rope_fwd(k, B, T, c->H_kv, c->K, pos, c->rope_theta);
}

static void attn_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                         pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    const attn_idx ix = attn_index(c);
    attn_act a;
    attn_act_layout(c, B, T, act, &a);
    attn_qkv(b, x, B, T, 0, a.q, a.k, a.v, a.qraw, a.kraw, a.qrstd, a.krstd);
    pn_attention_fwd(a.o, a.lse, a.q, a.k, a.v, B, T, c->H, c->H_kv, c->K, attn_window(b),
                     1.0f / sqrtf((float)c->K));
    pn_linear_fwd(y, a.o, par(b, ix.wo), par(b, ix.bo), (int64_t)B * T, c->H * c->K, c->C);
}

static void attn_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                          const float *act, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    const attn_idx ix = attn_index(c);
    const int64_t N = (int64_t)B * T;
    const int QD = c->H * c->K, KD = c->H_kv * c->K;
    const size_t QN = (size_t)N * QD, KN = (size_t)N * KD;
    attn_act a;
    attn_act_layout(c, B, T, (float *)act, &a);
    float *dout = scratch, *dq = dout + QN, *dk = dq + QN, *dv = dk + KN;
    memset(scratch, 0, (2 * QN + 2 * KN) * sizeof(float));
    pn_linear_bwd(dout, grd(b, ix.wo), grd(b, ix.bo), dy, a.o, par(b, ix.wo), N, QD, c->C);
    pn_attention_bwd(dq, dk, dv, dout, a.q, a.k, a.v, a.o, a.lse, B, T, c->H, c->H_kv, c->K, attn_window(b),
                     1.0f / sqrtf((float)c->K));
    pn_rope_bwd(dq, B, T, c->H, c->K, 0, c->rope_theta);
    pn_rope_bwd(dk, B, T, c->H_kv, c->K, 0, c->rope_theta);
    if (c->qk_norm) {
        float *dqraw = dv + KN, *dkraw = dqraw + QN;
        memset(dqraw, 0, (QN + KN) * sizeof(float));
        pn_rmsnorm_bwd(dqraw, grd(b, ix.qn), dq, a.qraw, par(b, ix.qn), a.qrstd, N * c->H, c->K);
        pn_rmsnorm_bwd(dkraw, grd(b, ix.kn), dk, a.kraw, par(b, ix.kn), a.krstd, N * c->H_kv, c->K);
        dq = dqraw;
        dk = dkraw;
    }
    pn_linear_bwd(dx, grd(b, ix.wq), grd(b, ix.bq), dq, x, par(b, ix.wq), N, c->C, QD);
    pn_linear_bwd(dx, grd(b, ix.wk), grd(b, ix.bk), dk, x, par(b, ix.wk), N, c->C, KD);
    pn_linear_bwd(dx, grd(b, ix.wv), grd(b, ix.bv), dv, x, par(b, ix.wv), N, c->C, KD);
}

static int64_t attn_cache_len(const pn_block_cfg *c, const pn_block_type *t, int64_t L) {
    return t->name[0] == 's' ? PN_MIN((int64_t)c->window, L) : L;
}

static pn_state_size attn_state_size(const pn_block_cfg *c, int64_t L) {
    pn_state_size s = {2 * (int64_t)c->H_kv * c->K * L, 0, 0};
    return s;
}

static pn_state_size swa_state_size(const pn_block_cfg *c, int64_t L) {
    pn_state_size s = {2 * (int64_t)c->H_kv * c->K * PN_MIN((int64_t)c->window, L), 0, 0};
    return s;
}

static void attn_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                         int64_t L, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    const attn_idx ix = attn_index(c);
    const int window = attn_window(b);
    const int64_t N = (int64_t)B * T, Lc = attn_cache_len(c, b->type, L);
    const int QD = c->H * c->K, KD = c->H_kv * c->K, K = c->K, group = c->H / c->H_kv;
    const size_t QN = (size_t)N * QD, KN = (size_t)N * KD;
    const int64_t per_seq = 2 * Lc * KD;
    const float scale = 1.0f / sqrtf((float)K);
    PN_ASSERT(window > 0 || pos + T <= L);
    float *q = scratch, *k = q + QN, *v = k + KN, *o = v + KN, *lse = o + QN, *rstd = lse + (size_t)B * c->H * T;
    // Norm in place: q/k hold the raw projections until the norm overwrites them.
    attn_qkv(b, x, B, T, pos, q, k, v, q, k, rstd, rstd + N * c->H);
    if (pos == 0) {
        pn_attention_fwd(o, lse, q, k, v, B, T, c->H, c->H_kv, K, window, scale);
    } else {
#pragma omp parallel for collapse(2) schedule(static)
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < c->H; h++) {
                const int hk = h / group;
                const float *kc = state + bb * per_seq, *vc = kc + Lc * KD;
                for (int t = 0; t < T; t++) {
                    const int64_t p = pos + t;
                    const int64_t lo = window > 0 ? PN_MAX((int64_t)0, p - window + 1) : 0;
                    const float *qr = q + (((int64_t)bb * T + t) * c->H + h) * K;
                    float *acc = o + (((int64_t)bb * T + t) * c->H + h) * K;
                    memset(acc, 0, (size_t)K * sizeof(float));
                    float m = -INFINITY;
                    double l = 0.0;
                    for (int64_t j = lo; j <= p; j++) {
                        const float *kr, *vr;
                        if (j < pos) {
                            int64_t slot = window > 0 ? j % Lc : j;
                            kr = kc + slot * KD + (int64_t)hk * K;
                            vr = vc + slot * KD + (int64_t)hk * K;
                        } else {
                            kr = k + (((int64_t)bb * T + (j - pos)) * c->H_kv + hk) * K;
                            vr = v + (((int64_t)bb * T + (j - pos)) * c->H_kv + hk) * K;
                        }
                        float s = 0.0f;
                        for (int d = 0; d < K; d++) s += qr[d] * kr[d];
                        s *= scale;
                        if (s > m) {
                            float r = expf(m - s);  // 0 on the first key (m = -inf)
                            for (int d = 0; d < K; d++) acc[d] *= r;
                            l *= r;
                            m = s;
                        }
                        float e = expf(s - m);
                        l += e;
                        for (int d = 0; d < K; d++) acc[d] += e * vr[d];
                    }
                    float inv = (float)(1.0 / l);
                    for (int d = 0; d < K; d++) acc[d] *= inv;
                }
            }
    }
    // Append the new keys/values; a ring only keeps the last Lc of them.
    for (int bb = 0; bb < B; bb++) {
        float *kc = state + bb * per_seq, *vc = kc + Lc * KD;
        for (int t = (int)PN_MAX((int64_t)0, T - Lc); t < T; t++) {
            int64_t slot = window > 0 ? (pos + t) % Lc : pos + t;
            memcpy(kc + slot * KD, k + ((int64_t)bb * T + t) * KD, (size_t)KD * sizeof(float));
            memcpy(vc + slot * KD, v + ((int64_t)bb * T + t) * KD, (size_t)KD * sizeof(float));
        }
    }
    pn_linear_fwd(y, o, par(b, ix.wo), par(b, ix.bo), N, QD, c->C);
}

static void attn_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                        float *scratch, pn_block_ctx *ctx) {
    attn_prefill(b, y, x, B, 1, state, pos, L, scratch, ctx);
}

static double attn_flops_ctx(const pn_block_cfg *c, int64_t ctx) {
    double proj = 2.0 * c->C * c->K * (2.0 * c->H + 2.0 * c->H_kv);
    return proj + 4.0 * c->H * c->K * (double)ctx;
}

static double attn_flops_per_token(const pn_block_cfg *c, int64_t L) { return attn_flops_ctx(c, L); }

static double swa_flops_per_token(const pn_block_cfg *c, int64_t L) {
    return attn_flops_ctx(c, PN_MIN((int64_t)c->window, L));
}

const pn_block_type pn_block_attn = {
    .name = "attn",
    .defaults = attn_defaults,
    .params = attn_params,
    .init_custom = NULL,
    .act_floats = attn_act_floats,
    .scratch_floats = attn_scratch_floats,
    .forward = attn_forward,
    .backward = attn_backward,
    .state_size = attn_state_size,
    .prefill = attn_prefill,
    .decode = attn_decode,
    .flops_per_token = attn_flops_per_token,
};

const pn_block_type pn_block_swa = {
    .name = "swa",
    .defaults = swa_defaults,
    .params = attn_params,
    .init_custom = NULL,
    .act_floats = attn_act_floats,
    .scratch_floats = attn_scratch_floats,
    .forward = attn_forward,
    .backward = attn_backward,
    .state_size = swa_state_size,
    .prefill = attn_prefill,
    .decode = attn_decode,
    .flops_per_token = swa_flops_per_token,
};
