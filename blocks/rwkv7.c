// rwkv7.c — fla `RWKV7Attention` as a token mixer (BLOCKS.md "rwkv7").
//
//   δ = x_{t−1} − x_t;  x_* = x + δ·μ_*  for * in r, w, k, v, a, g
//   r, k, v = x_r Wrᵀ, x_k Wkᵀ, x_v Wvᵀ
//   w = −0.6065306597126334 · sigmoid(w_lora(x_w))     tanh inside the LoRA
//   v = lerp(v, v_first, sigmoid(v_lora(x_v)))          not in the first rwkv7 layer
//   a = sigmoid(a_lora(x_a)),  g = g_lora(x_g)           sigmoid inside g_lora
//   κ̂ = l2n(heads(k·k_k)),  k = k·(1 + (a − 1)·k_a)
//   o = dplr(r, k, v, gk = w, a = −κ̂, b = κ̂·a; scale 1)
//   o = (GroupNorm_heads(o; eps K·norm_eps) + Σ_d(r·k·r_k)·v) · g;   y = o Woᵀ
//
// Value residual: the first rwkv7 layer of a pass (cfg.first_rwkv, or no
// ctx / ctx->v_first yet) points ctx->v_first at its own v and skips the lerp;
// later layers read it and, in backward, add dL/dv_first into ctx->dv_first
// (caller-owned, zeroed, (B, T, C)), which the first layer's backward (running
// last) adds to its own dv. The first layer recognises itself in backward by
// ctx->v_first pointing into its activations. In prefill/decode ctx->v_first
// points into the first layer's scratch, which must stay intact until the later
// layers of the same step have run. v_lora exists only when !cfg.first_rwkv.
//
// Init follows fla's _initialize_weights; pn_block_cfg has no layer count, so the
// layer-depth ratios are those of a middle layer (ratio_0_to_1 = ratio_1_to_0 = 0.5,
// g_norm weight 0.5^0.7). Orthogonal inits use Gram-Schmidt on normal draws.
// Weight decay on matrices only. Decode state per sequence: S (H, K, K), then the
// previous token's x (C) for the shift.
#include "block.h"
#include "block_chunk.h"
#include "core/rng.h"
#include "kernels/ops.h"
#include <math.h>

#define W_SCALE 0.6065306597126334f  // e^−0.5

typedef struct {
    int mu[6];  // x_r, x_w, x_k, x_v, x_a, x_g
    int kk, ka, rk, wr, wk, wv, wo, w0, w2, w2b, v0, v2, v2b, a0, a2, a2b, g0, g2, gnw, gnb, n;
} rw_idx;
enum { MU_R, MU_W, MU_K, MU_V, MU_A, MU_G };

static rw_idx rw_index(const pn_block_cfg *c) {
    rw_idx ix;
    int n = 0;
    for (int i = 0; i < 6; i++) ix.mu[i] = n++;
    ix.kk = n++, ix.ka = n++, ix.rk = n++;
    ix.wr = n++, ix.wk = n++, ix.wv = n++, ix.wo = n++;
    ix.w0 = n++, ix.w2 = n++, ix.w2b = n++;
    ix.v0 = c->first_rwkv ? -1 : n++;
    ix.v2 = c->first_rwkv ? -1 : n++;
    ix.v2b = c->first_rwkv ? -1 : n++;
    ix.a0 = n++, ix.a2 = n++, ix.a2b = n++;
    ix.g0 = n++, ix.g2 = n++;
    ix.gnw = n++, ix.gnb = n++;
    ix.n = n;
    return ix;
}

static int lora_size(double mult, int C, double factor) {
    return PN_MAX(32, (int)nearbyint(mult * sqrt((double)C) * factor / 32.0) * 32);  // Python round: half to even
}

static void rwkv7_defaults(pn_block_cfg *c) {
    if (c->C <= 0) pn_die_input("rwkv7 block", "model width C must be positive, got %d", c->C);
    if (!c->K) {
        if (c->H > 0) {
            c->K = c->C / c->H;
        } else {
            c->K = 64;
            while (c->K > 1 && c->C % c->K) c->K /= 2;
        }
    }
    if (!c->H && c->K > 0) c->H = c->C / c->K;
    if (!c->V) c->V = c->K;
    if (c->norm_eps == 0.0f) c->norm_eps = 1e-5f;
    if (c->K <= 0 || c->H <= 0 || c->H * c->K != c->C || c->V != c->K)
        pn_die_input("rwkv7 block", "need H·K = C and V = K (got H=%d K=%d V=%d C=%d)", c->H, c->K, c->V, c->C);
    double factor = c->K / 64.0;
    if (!c->lora_w) c->lora_w = lora_size(2.5, c->C, factor);
    if (!c->lora_a) c->lora_a = lora_size(2.5, c->C, factor);
    if (!c->lora_v) c->lora_v = lora_size(1.7, c->C, factor);
    if (!c->lora_g) c->lora_g = lora_size(5.0, c->C, 1.0);
}

static void spec_set(pn_param_spec *p, const char *name, int ndim, const int64_t *shape, pn_init_kind init, int wd) {
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->ndim = ndim;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i];
    p->init = init;
    p->weight_decay = wd;
}

static int rwkv7_params(const pn_block_cfg *c, pn_param_spec *out) {
    rw_idx ix = rw_index(c);
    int64_t C = c->C;
    const char *mu[6] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
    for (int i = 0; i < 6; i++) spec_set(&out[ix.mu[i]], mu[i], 3, (int64_t[]){1, 1, C}, PN_INIT_CUSTOM, 0);
    spec_set(&out[ix.kk], "k_k", 1, (int64_t[]){C}, PN_INIT_CUSTOM, 0);
    spec_set(&out[ix.ka], "k_a", 1, (int64_t[]){C}, PN_INIT_CUSTOM, 0);
    spec_set(&out[ix.rk], "r_k", 2, (int64_t[]){c->H, c->K}, PN_INIT_CUSTOM, 0);
    spec_set(&out[ix.wr], "r_proj.weight", 2, (int64_t[]){C, C}, PN_INIT_CUSTOM, 1);
    spec_set(&out[ix.wk], "k_proj.weight", 2, (int64_t[]){C, C}, PN_INIT_CUSTOM, 1);
    spec_set(&out[ix.wv], "v_proj.weight", 2, (int64_t[]){C, C}, PN_INIT_CUSTOM, 1);
    spec_set(&out[ix.wo], "o_proj.weight", 2, (int64_t[]){C, C}, PN_INIT_ZERO, 1);
    struct {
        const char *name;
        int i0, i2, i2b, rank;
    } lo[4] = {{"w_lora", ix.w0, ix.w2, ix.w2b, c->lora_w},
               {"v_lora", ix.v0, ix.v2, ix.v2b, c->lora_v},
               {"a_lora", ix.a0, ix.a2, ix.a2b, c->lora_a},
               {"g_lora", ix.g0, ix.g2, -1, c->lora_g}};
    for (int l = 0; l < 4; l++) {
        if (lo[l].i0 < 0) continue;
        char nm[96];
        snprintf(nm, sizeof(nm), "%s.lora.0.weight", lo[l].name);
        spec_set(&out[lo[l].i0], nm, 2, (int64_t[]){lo[l].rank, C}, PN_INIT_ZERO, 1);
        snprintf(nm, sizeof(nm), "%s.lora.2.weight", lo[l].name);
        spec_set(&out[lo[l].i2], nm, 2, (int64_t[]){C, lo[l].rank}, PN_INIT_CUSTOM, 1);
        if (lo[l].i2b < 0) continue;
        snprintf(nm, sizeof(nm), "%s.lora.2.bias", lo[l].name);
        spec_set(&out[lo[l].i2b], nm, 1, (int64_t[]){C}, PN_INIT_CUSTOM, 0);
    }
    spec_set(&out[ix.gnw], "g_norm.weight", 1, (int64_t[]){C}, PN_INIT_CUSTOM, 0);
    spec_set(&out[ix.gnb], "g_norm.bias", 1, (int64_t[]){C}, PN_INIT_ZERO, 0);
    return ix.n;
}

static void rwkv7_init_custom(const pn_block *b, uint64_t seed) {
    const pn_block_cfg *c = &b->cfg;
    rw_idx ix = rw_index(c);
    int C = c->C, K = c->K;
    const double r01 = 0.5, r10 = 0.5;  // fla's depth ratios for a middle layer (no layer count in cfg)
    const double mu_pow[6] = {0.2, 0.9, 0.7, 0.7, 0.9, 0.2};
    float *const *P = b->params;
    for (int n = 0; n < C; n++) {
        double ddd = (double)n / C, linear = (C > 1 ? (double)n / (C - 1) : 0.0) - 0.5;
        double zz = K > 1 ? ((n % K) - (K - 1) / 2.0) / ((K - 1) / 2.0) : 0.0, zigzag = zz * fabs(zz);
        double www = -6.0 + 6.0 * pow(C > 1 ? (double)n / (C - 1) : 0.0, 1.0 + pow(r01, 0.3));
        for (int i = 0; i < 6; i++) P[ix.mu[i]][n] = (float)(1.0 - pow(ddd, mu_pow[i] * r10));
        P[ix.kk][n] = (float)(0.71 - linear * 0.1);
        P[ix.ka][n] = 1.02f;
        P[ix.rk][n] = -0.04f;  // r_k (H, K) has C entries
        P[ix.w2b][n] = (float)(www + 0.5 + zigzag * 2.5);
        P[ix.a2b][n] = (float)(-0.19 + zigzag * 0.3 + linear * 0.4);
        if (ix.v2b >= 0) P[ix.v2b][n] = (float)(0.73 - linear * 0.4);
        P[ix.gnw][n] = (float)pow(0.5, 0.7);
    }
    uint64_t layer = (uint64_t)c->layer_idx << 48;
    int mats[3] = {ix.wr, ix.wk, ix.wv};
    float gains[3] = {1.0f, 0.1f, 1.0f};
    for (int i = 0; i < 3; i++)
        pn_fill_orthogonal(P[mats[i]], C, C, gains[i], seed, pn_hash_str(b->spec[mats[i]].name) ^ layer);
    int lo2[4] = {ix.w2, ix.v2, ix.a2, ix.g2}, rank[4] = {c->lora_w, c->lora_v, c->lora_a, c->lora_g};
    for (int l = 0; l < 4; l++) {
        if (lo2[l] < 0) continue;
        float gain = 0.1f * (rank[l] > C ? sqrtf((float)rank[l] / C) : 1.0f);
        pn_fill_orthogonal(P[lo2[l]], C, rank[l], gain, seed, pn_hash_str(b->spec[lo2[l]].name) ^ layer);
    }
}

// Saved per token (C floats unless noted): dl (δ), r, k0 (k_proj out), k (updated), v0, v, w (log decay),
// kh (κ̂), aop (−κ̂), bop (κ̂·a), a, s (v-lerp weight), g, o (dplr out), on (group norm out),
// o2 (on + bonus), xt (temp); wh lw, ah la, vh lv, gh lg; gmean H, grstd H, kr H (l2 rstd), sb H (bonus sum).
typedef struct {
    float *dl, *r, *k0, *k, *v0, *v, *w, *kh, *aop, *bop, *a, *s, *g, *o, *on, *o2, *xt;
    float *wh, *ah, *vh, *gh, *gmean, *grstd, *kr, *sb;
} rw_act;

static size_t rw_act_map(const pn_block_cfg *c, int64_t M, float *base, rw_act *a) {
    float **slot[] = {&a->dl, &a->r,  &a->k0, &a->k,  &a->v0, &a->v,  &a->w,     &a->kh,    &a->aop,
                      &a->bop, &a->a, &a->s,  &a->g,  &a->o,  &a->on, &a->o2,    &a->xt,    &a->wh,
                      &a->ah, &a->vh, &a->gh, &a->gmean, &a->grstd, &a->kr, &a->sb};
    size_t C = (size_t)c->C, H = (size_t)c->H;
    size_t width[] = {C, C, C, C, C, C, C, C, C, C, C, C, C, C, C, C, C,
                      (size_t)c->lora_w, (size_t)c->lora_a, (size_t)c->lora_v, (size_t)c->lora_g, H, H, H, H};
    size_t off = 0;
    for (size_t i = 0; i < PN_ARRAY_LEN(slot); i++) {
        *slot[i] = base ? base + off : NULL;
        off += width[i] * (size_t)M;
    }
    return off;
}

static size_t rwkv7_act_floats(const pn_block_cfg *c, int B, int T) {
    rw_act a;
    return rw_act_map(c, (int64_t)B * T, NULL, &a);
}

#define RW_BWD_BUFS 17  // (M, C) gradient buffers in backward
static size_t rw_bwd_floats(const pn_block_cfg *c, int64_t M) {
    int rmax = PN_MAX(PN_MAX(c->lora_w, c->lora_a), PN_MAX(c->lora_v, c->lora_g));
    return (size_t)M * ((size_t)RW_BWD_BUFS * c->C + (size_t)rmax + (size_t)c->H);
}

static pn_state_size rwkv7_state_size(const pn_block_cfg *c, int64_t L) {
    pn_state_size s = {0, (int64_t)c->H * c->K * c->K, c->C};
    return s;
}

static size_t rwkv7_scratch_floats(const pn_block_cfg *c, int B, int T) {
    size_t prefill = rwkv7_act_floats(c, B, T) + (size_t)B * ((size_t)c->H * c->K * c->K + (size_t)c->C);
    return PN_MAX(rw_bwd_floats(c, (int64_t)B * T), prefill);
}

static void sigmoid_inplace(float *x, int64_t n) { pn_sigmoid_fwd(x, x, n); }

// The whole forward. h0/ht: (B, H, K, K) state or NULL; x_prev (B, C) or NULL.
static void rwkv7_run(const pn_block *b, float *y, const float *x, int B, int T, float *act, const float *h0,
                      float *ht, const float *x_prev, int chunk, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    rw_idx ix = rw_index(c);
    int64_t M = (int64_t)B * T;
    int C = c->C, H = c->H, K = c->K;
    rw_act a;
    rw_act_map(c, M, act, &a);
    float *const *P = b->params;
    int first = c->first_rwkv || !ctx || !ctx->v_first;

    pn_token_shift_fwd(a.dl, x, x_prev, B, T, C);
    pn_lerp_fwd(a.xt, x, a.dl, P[ix.mu[MU_R]], M, C);
    pn_linear_fwd(a.r, a.xt, P[ix.wr], NULL, M, C, C);
    pn_lerp_fwd(a.xt, x, a.dl, P[ix.mu[MU_W]], M, C);
    pn_linear_fwd(a.wh, a.xt, P[ix.w0], NULL, M, C, c->lora_w);
    for (int64_t i = 0; i < M * c->lora_w; i++) a.wh[i] = tanhf(a.wh[i]);
    pn_linear_fwd(a.w, a.wh, P[ix.w2], P[ix.w2b], M, c->lora_w, C);
    sigmoid_inplace(a.w, M * C);
    for (int64_t i = 0; i < M * C; i++) a.w[i] *= -W_SCALE;
    pn_lerp_fwd(a.xt, x, a.dl, P[ix.mu[MU_K]], M, C);
    pn_linear_fwd(a.k0, a.xt, P[ix.wk], NULL, M, C, C);
    pn_lerp_fwd(a.xt, x, a.dl, P[ix.mu[MU_V]], M, C);
    pn_linear_fwd(a.v0, a.xt, P[ix.wv], NULL, M, C, C);
    if (first) {
        memcpy(a.v, a.v0, (size_t)M * C * sizeof(float));
        if (ctx) ctx->v_first = a.v;
    } else {
        PN_ASSERT(ix.v0 >= 0);
        pn_linear_fwd(a.vh, a.xt, P[ix.v0], NULL, M, C, c->lora_v);
        pn_linear_fwd(a.s, a.vh, P[ix.v2], P[ix.v2b], M, c->lora_v, C);
        sigmoid_inplace(a.s, M * C);
        const float *vf = ctx->v_first;
        for (int64_t i = 0; i < M * C; i++) a.v[i] = a.v0[i] + (vf[i] - a.v0[i]) * a.s[i];
    }
    pn_lerp_fwd(a.xt, x, a.dl, P[ix.mu[MU_A]], M, C);
    pn_linear_fwd(a.ah, a.xt, P[ix.a0], NULL, M, C, c->lora_a);
    pn_linear_fwd(a.a, a.ah, P[ix.a2], P[ix.a2b], M, c->lora_a, C);
    sigmoid_inplace(a.a, M * C);
    pn_lerp_fwd(a.xt, x, a.dl, P[ix.mu[MU_G]], M, C);
    pn_linear_fwd(a.gh, a.xt, P[ix.g0], NULL, M, C, c->lora_g);
    sigmoid_inplace(a.gh, M * c->lora_g);
    pn_linear_fwd(a.g, a.gh, P[ix.g2], NULL, M, c->lora_g, C);

    // κ̂ from k·k_k, then the k update, then the dplr factors a = −κ̂, b = κ̂·a
    const float *kk = P[ix.kk], *ka = P[ix.ka];
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int i = 0; i < C; i++) a.bop[m * C + i] = a.k0[m * C + i] * kk[i];
    pn_l2norm_fwd(a.kh, a.kr, a.bop, M * H, K, 1e-6f);
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int i = 0; i < C; i++) {
            int64_t j = m * C + i;
            a.k[j] = a.k0[j] * (1.0f + (a.a[j] - 1.0f) * ka[i]);
            a.aop[j] = -a.kh[j];
            a.bop[j] = a.kh[j] * a.a[j];
        }
    pn_rec_shape s = {B, T, H, K, K, 1.0f};
    pn_dplr_fwd(&s, chunk, a.r, a.k, a.v, a.w, a.aop, a.bop, h0, a.o, ht);

    pn_groupnorm_fwd(a.on, a.gmean, a.grstd, a.o, P[ix.gnw], P[ix.gnb], M, H, K, (float)K * c->norm_eps);
    const float *rk = P[ix.rk];
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int h = 0; h < H; h++) {
            const int64_t j0 = m * C + h * K;
            float sum = 0;
            for (int d = 0; d < K; d++) sum += a.r[j0 + d] * a.k[j0 + d] * rk[h * K + d];
            a.sb[m * H + h] = sum;
            for (int d = 0; d < K; d++) {
                a.o2[j0 + d] = a.on[j0 + d] + sum * a.v[j0 + d];
                a.xt[j0 + d] = a.o2[j0 + d] * a.g[j0 + d];
            }
        }
    pn_linear_fwd(y, a.xt, P[ix.wo], NULL, M, C, C);
}

static void rwkv7_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                          pn_block_ctx *ctx) {
    rwkv7_run(b, y, x, B, T, act, NULL, NULL, NULL, pn_blocks_chunk(), ctx);
}

// Back through a LoRA's second matrix and its input activation: dh = (d_out W2) ⊙ act'(h).
static void lora_bwd(float *dx, float *dxt, float *dh, float *const *G, float *const *P, int i0, int i2, int i2b,
                     const float *d_out, const float *h, const float *xt, int act, int64_t M, int C, int rank) {
    memset(dh, 0, (size_t)M * rank * sizeof(float));
    pn_linear_bwd(dh, G[i2], i2b >= 0 ? G[i2b] : NULL, d_out, h, P[i2], M, rank, C);
    for (int64_t i = 0; i < M * rank; i++) {
        if (act == 1) dh[i] *= 1.0f - h[i] * h[i];  // tanh
        if (act == 2) dh[i] *= h[i] * (1.0f - h[i]);  // sigmoid
    }
    pn_linear_bwd(dxt, G[i0], NULL, dh, xt, P[i0], M, C, rank);
}

static void rwkv7_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                           const float *act, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    rw_idx ix = rw_index(c);
    int64_t M = (int64_t)B * T, MC;
    int C = c->C, H = c->H, K = c->K;
    MC = M * C;
    rw_act a;
    rw_act_map(c, M, (float *)act, &a);
    float *const *P = b->params;
    float *const *G = b->grads;
    int first = c->first_rwkv || !ctx || !ctx->v_first || ctx->v_first == a.v;

    memset(scratch, 0, rw_bwd_floats(c, M) * sizeof(float));
    float *xt = scratch, *dxt = xt + MC, *d_y3 = dxt + MC, *d_o2 = d_y3 + MC, *d_g = d_o2 + MC, *d_o = d_g + MC;
    float *dr = d_o + MC, *dk = dr + MC, *dv = dk + MC, *dw = dv + MC, *daop = dw + MC, *dbop = daop + MC;
    float *da = dbop + MC, *dkh = da + MC, *dkk = dkh + MC, *dk0 = dkk + MC, *d_dl = dk0 + MC;
    float *dh = d_dl + MC, *dsb = dh + M * PN_MAX(PN_MAX(c->lora_w, c->lora_a), PN_MAX(c->lora_v, c->lora_g));

    // y = (o2 · g) Woᵀ
    for (int64_t j = 0; j < MC; j++) xt[j] = a.o2[j] * a.g[j];
    pn_linear_bwd(d_y3, G[ix.wo], NULL, dy, xt, P[ix.wo], M, C, C);
    for (int64_t j = 0; j < MC; j++) {
        d_o2[j] = d_y3[j] * a.g[j];
        d_g[j] = d_y3[j] * a.o2[j];
    }
    // o2 = on + sb·v, sb = Σ_d r·k·r_k
    const float *rk = P[ix.rk];
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int h = 0; h < H; h++) {
            const int64_t j0 = m * C + h * K;
            float ds = 0, sb = a.sb[m * H + h];
            for (int d = 0; d < K; d++) {
                ds += d_o2[j0 + d] * a.v[j0 + d];
                dv[j0 + d] += sb * d_o2[j0 + d];
            }
            dsb[m * H + h] = ds;
            for (int d = 0; d < K; d++) {
                dr[j0 + d] += ds * a.k[j0 + d] * rk[h * K + d];
                dk[j0 + d] += ds * a.r[j0 + d] * rk[h * K + d];
            }
        }
    if (G[ix.rk])
        for (int64_t m = 0; m < M; m++)
            for (int i = 0; i < C; i++) G[ix.rk][i] += dsb[m * H + i / K] * a.r[m * C + i] * a.k[m * C + i];
    pn_groupnorm_bwd(d_o, G[ix.gnw], G[ix.gnb], d_o2, a.o, P[ix.gnw], a.gmean, a.grstd, M, H, K);

    pn_rec_shape s = {B, T, H, K, K, 1.0f};
    pn_dplr_bwd(&s, pn_blocks_chunk(), a.r, a.k, a.v, a.w, a.aop, a.bop, NULL, d_o, NULL, dr, dk, dv, dw, daop, dbop,
                NULL);

    // aop = −κ̂, bop = κ̂·a, k = k0·(1 + (a − 1)·k_a)
    const float *ka = P[ix.ka], *kkw = P[ix.kk];
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int i = 0; i < C; i++) {
            int64_t j = m * C + i;
            dkh[j] = -daop[j] + dbop[j] * a.a[j];
            da[j] += dbop[j] * a.kh[j] + dk[j] * a.k0[j] * ka[i];
            dk0[j] += dk[j] * (1.0f + (a.a[j] - 1.0f) * ka[i]);
        }
    if (G[ix.ka])
        for (int64_t m = 0; m < M; m++)
            for (int i = 0; i < C; i++) G[ix.ka][i] += dk[m * C + i] * a.k0[m * C + i] * (a.a[m * C + i] - 1.0f);
    pn_l2norm_bwd(dkk, dkh, a.kh, a.kr, M * H, K);  // dkk: gradient of k0·k_k
    for (int64_t m = 0; m < M; m++)
        for (int i = 0; i < C; i++) {
            dk0[m * C + i] += dkk[m * C + i] * kkw[i];
            if (G[ix.kk]) G[ix.kk][i] += dkk[m * C + i] * a.k0[m * C + i];
        }

    // g = g_lora(x_g), sigmoid inside
    pn_lerp_fwd(xt, x, a.dl, P[ix.mu[MU_G]], M, C);
    memset(dxt, 0, (size_t)MC * sizeof(float));
    lora_bwd(dx, dxt, dh, G, P, ix.g0, ix.g2, -1, d_g, a.gh, xt, 2, M, C, c->lora_g);
    pn_lerp_bwd(dx, d_dl, G[ix.mu[MU_G]], dxt, a.dl, P[ix.mu[MU_G]], M, C);
    // a = sigmoid(a_lora(x_a))
    for (int64_t j = 0; j < MC; j++) da[j] *= a.a[j] * (1.0f - a.a[j]);
    pn_lerp_fwd(xt, x, a.dl, P[ix.mu[MU_A]], M, C);
    memset(dxt, 0, (size_t)MC * sizeof(float));
    lora_bwd(dx, dxt, dh, G, P, ix.a0, ix.a2, ix.a2b, da, a.ah, xt, 0, M, C, c->lora_a);
    pn_lerp_bwd(dx, d_dl, G[ix.mu[MU_A]], dxt, a.dl, P[ix.mu[MU_A]], M, C);
    // w = −c·sigmoid(w_lora(x_w)), tanh inside: dwl = dw · w · (1 − sigmoid)
    for (int64_t j = 0; j < MC; j++) dw[j] *= a.w[j] * (1.0f + a.w[j] / W_SCALE);
    pn_lerp_fwd(xt, x, a.dl, P[ix.mu[MU_W]], M, C);
    memset(dxt, 0, (size_t)MC * sizeof(float));
    lora_bwd(dx, dxt, dh, G, P, ix.w0, ix.w2, ix.w2b, dw, a.wh, xt, 1, M, C, c->lora_w);
    pn_lerp_bwd(dx, d_dl, G[ix.mu[MU_W]], dxt, a.dl, P[ix.mu[MU_W]], M, C);

    // v = lerp(v0, v_first, s) or v = v0 (first layer)
    pn_lerp_fwd(xt, x, a.dl, P[ix.mu[MU_V]], M, C);
    memset(dxt, 0, (size_t)MC * sizeof(float));
    float *dv0 = dkk;  // reuse: dkk is consumed
    if (first) {
        for (int64_t j = 0; j < MC; j++) dv0[j] = dv[j] + (ctx && ctx->dv_first ? ctx->dv_first[j] : 0.0f);
    } else {
        PN_ASSERT(ctx->dv_first != NULL && ix.v0 >= 0);
        const float *vf = ctx->v_first;
        for (int64_t j = 0; j < MC; j++) {
            dv0[j] = dv[j] * (1.0f - a.s[j]);
            ctx->dv_first[j] += dv[j] * a.s[j];
            dv[j] = dv[j] * (vf[j] - a.v0[j]) * a.s[j] * (1.0f - a.s[j]);  // now d(v_lora logits)
        }
        lora_bwd(dx, dxt, dh, G, P, ix.v0, ix.v2, ix.v2b, dv, a.vh, xt, 0, M, C, c->lora_v);
    }
    pn_linear_bwd(dxt, G[ix.wv], NULL, dv0, xt, P[ix.wv], M, C, C);
    pn_lerp_bwd(dx, d_dl, G[ix.mu[MU_V]], dxt, a.dl, P[ix.mu[MU_V]], M, C);
    // k, r projections
    pn_lerp_fwd(xt, x, a.dl, P[ix.mu[MU_K]], M, C);
    memset(dxt, 0, (size_t)MC * sizeof(float));
    pn_linear_bwd(dxt, G[ix.wk], NULL, dk0, xt, P[ix.wk], M, C, C);
    pn_lerp_bwd(dx, d_dl, G[ix.mu[MU_K]], dxt, a.dl, P[ix.mu[MU_K]], M, C);
    pn_lerp_fwd(xt, x, a.dl, P[ix.mu[MU_R]], M, C);
    memset(dxt, 0, (size_t)MC * sizeof(float));
    pn_linear_bwd(dxt, G[ix.wr], NULL, dr, xt, P[ix.wr], M, C, C);
    pn_lerp_bwd(dx, d_dl, G[ix.mu[MU_R]], dxt, a.dl, P[ix.mu[MU_R]], M, C);

    pn_token_shift_bwd(dx, d_dl, B, T, C);
}

// Per-sequence state [S (H, K, K) | x_prev (C)] is gathered into scratch, advanced, written back.
static void rwkv7_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                          int64_t L, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    pn_state_size ss = rwkv7_state_size(c, L);
    size_t per = (size_t)(ss.rec + ss.conv);
    if (pos == 0) memset(state, 0, (size_t)B * per * sizeof(float));
    if (T <= 0) return;
    float *h = scratch + rwkv7_act_floats(c, B, T), *xp = h + (size_t)B * ss.rec;
    for (int i = 0; i < B; i++) {
        memcpy(h + (size_t)i * ss.rec, state + i * per, (size_t)ss.rec * sizeof(float));
        memcpy(xp + (size_t)i * c->C, state + i * per + ss.rec, (size_t)c->C * sizeof(float));
    }
    rwkv7_run(b, y, x, B, T, scratch, h, h, xp, T == 1 ? 0 : pn_blocks_chunk(), ctx);
    for (int i = 0; i < B; i++) {
        memcpy(state + i * per, h + (size_t)i * ss.rec, (size_t)ss.rec * sizeof(float));
        memcpy(state + i * per + ss.rec, x + ((size_t)i * T + T - 1) * c->C, (size_t)c->C * sizeof(float));
    }
}

static void rwkv7_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                         float *scratch, pn_block_ctx *ctx) {
    rwkv7_prefill(b, y, x, B, 1, state, pos, L, scratch, ctx);
}

// Matmuls at 2 FLOPs per multiply-add (r, k, v, o and the LoRAs; v_lora only
// outside the first layer); dplr per head: decay K², k vᵀ 2K², aᵀS 2K², b(aᵀS) 2K²,
// readout 2K². Elementwise work, norms and the bonus term are not counted.
static double rwkv7_flops_per_token(const pn_block_cfg *c, int64_t L) {
    double C = c->C;
    double lora = c->lora_w + c->lora_a + c->lora_g + (c->first_rwkv ? 0 : c->lora_v);
    return 2.0 * 4 * C * C + 2.0 * 2 * C * lora + 9.0 * c->H * (double)c->K * c->K;
}

const pn_block_type pn_block_rwkv7 = {
    .name = "rwkv7",
    .defaults = rwkv7_defaults,
    .params = rwkv7_params,
    .init_custom = rwkv7_init_custom,
    .act_floats = rwkv7_act_floats,
    .scratch_floats = rwkv7_scratch_floats,
    .forward = rwkv7_forward,
    .backward = rwkv7_backward,
    .state_size = rwkv7_state_size,
    .prefill = rwkv7_prefill,
    .decode = rwkv7_decode,
    .flops_per_token = rwkv7_flops_per_token,
};
