// mamba2.c — fla `Mamba2` (SSD) as a token mixer (BLOCKS.md "mamba2").
//
//   [z | xBC | dt] = x in_projᵀ                    z (E), xBC (E + 2GN), dt (H);  E = expand·C
//   xBC = silu(conv(xBC; conv1d) + bias)  → x (H, P), B (G, N), C (G, N); head h uses group h·G/H
//   dt  = softplus(dt + dt_bias),  A = −exp(A_log)
//   o   = simple_gla(q = C, k = B, v = dt·x, g = dt·A; scale 1) + D·x        state (N × P) per head
//   y   = (RMSNorm_groups(o · silu(z)) · norm.weight) out_projᵀ              gate before the norm
//
// Dimensions: head dim P lives in cfg.K (default 64, halved until it divides E),
// H = E/P, n_groups G (1), d_state N (128, fla's default), conv W (4), expand 2.
// Parameters follow the fla Mamba2 model config (conv bias, no in/out_proj bias).
// Init: projections N(0, 0.02); conv weight and bias U(±1/√W) (PyTorch's Conv1d
// default); A ~ U(1, 16), A_log = log A; dt ~ logU[1e-3, 0.1] clamped ≥ 1e-4,
// dt_bias = dt + log(−expm1(−dt)); D = 1; norm 1. in_proj is one matrix, but its
// three row blocks are applied as three products so z, xBC and dt land contiguous.
// Decode state per sequence: S (H, N, P), then the last W−1 raw xBC rows (W−1, E+2GN).
#include "block.h"
#include "block_chunk.h"
#include "core/rng.h"
#include "kernels/ops.h"
#include <math.h>

enum { P_IN, P_CONVW, P_CONVB, P_DTB, P_ALOG, P_D, P_NORM, P_OUT, M2_NP };

typedef struct {
    int C, E, P, H, G, N, W, Dc;  // Dc = E + 2GN: conv channels
} m2_dims;

static m2_dims m2_dims_of(const pn_block_cfg *c) {
    m2_dims d = {c->C, c->expand * c->C, c->K, c->H, c->n_groups, c->d_state, c->conv_size, 0};
    d.Dc = d.E + 2 * d.G * d.N;
    return d;
}

static void mamba2_defaults(pn_block_cfg *c) {
    if (c->C <= 0) pn_die_input("mamba2 block", "model width C must be positive, got %d", c->C);
    if (!c->expand) c->expand = 2;
    int E = c->expand * c->C;
    if (!c->K) {
        if (c->H > 0) {
            c->K = E / c->H;
        } else {
            c->K = 64;
            while (c->K > 1 && E % c->K) c->K /= 2;
        }
    }
    if (!c->H && c->K > 0) c->H = E / c->K;
    if (!c->n_groups) c->n_groups = 1;
    if (!c->d_state) c->d_state = 128;
    if (!c->conv_size) c->conv_size = 4;
    if (c->norm_eps == 0.0f) c->norm_eps = 1e-5f;
    if (c->expand <= 0 || c->K <= 0 || c->H <= 0 || c->H * c->K != E)
        pn_die_input("mamba2 block", "need heads H times head dim P (cfg K) = expand·C (got H=%d P=%d expand=%d C=%d)",
                     c->H, c->K, c->expand, c->C);
    if (c->n_groups <= 0 || c->H % c->n_groups || c->d_state <= 0 || c->conv_size <= 0)
        pn_die_input("mamba2 block", "need n_groups dividing H, d_state > 0, conv_size > 0 (got G=%d H=%d N=%d W=%d)",
                     c->n_groups, c->H, c->d_state, c->conv_size);
}

static void spec_set(pn_param_spec *p, const char *name, int ndim, const int64_t *shape, pn_init_kind init, float a,
                     float b, int wd) {
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->ndim = ndim;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i];
    p->init = init;
    p->a = a;
    p->b = b;
    p->weight_decay = wd;
}

static int mamba2_params(const pn_block_cfg *c, pn_param_spec *out) {
    m2_dims d = m2_dims_of(c);
    float cb = 1.0f / sqrtf((float)d.W);
    spec_set(&out[P_IN], "in_proj.weight", 2, (int64_t[]){2 * d.E + 2 * d.G * d.N + d.H, d.C}, PN_INIT_NORMAL, 0.02f,
             0, 1);
    spec_set(&out[P_CONVW], "conv1d.weight", 3, (int64_t[]){d.Dc, 1, d.W}, PN_INIT_UNIFORM, -cb, cb, 1);
    spec_set(&out[P_CONVB], "conv1d.bias", 1, (int64_t[]){d.Dc}, PN_INIT_UNIFORM, -cb, cb, 0);
    spec_set(&out[P_DTB], "dt_bias", 1, (int64_t[]){d.H}, PN_INIT_CUSTOM, 0, 0, 0);
    spec_set(&out[P_ALOG], "A_log", 1, (int64_t[]){d.H}, PN_INIT_CUSTOM, 0, 0, 0);
    spec_set(&out[P_D], "D", 1, (int64_t[]){d.H}, PN_INIT_ONE, 0, 0, 0);
    spec_set(&out[P_NORM], "norm.weight", 1, (int64_t[]){d.E}, PN_INIT_ONE, 0, 0, 0);
    spec_set(&out[P_OUT], "out_proj.weight", 2, (int64_t[]){d.C, d.E}, PN_INIT_NORMAL, 0.02f, 0, 1);
    return M2_NP;
}

static void mamba2_init_custom(const pn_block *b, uint64_t seed) {
    int H = b->cfg.H;
    uint64_t layer = (uint64_t)b->cfg.layer_idx << 48;
    uint64_t s_a = pn_hash_str("A_log") ^ layer, s_dt = pn_hash_str("dt_bias") ^ layer;
    for (int h = 0; h < H; h++) {
        float A = 1.0f + 15.0f * pn_uniform_at(seed, s_a, (uint64_t)h);
        b->params[P_ALOG][h] = logf(A);
        double u = pn_uniform_at(seed, s_dt, (uint64_t)h);
        double dt = exp(u * (log(0.1) - log(1e-3)) + log(1e-3));
        if (dt < 1e-4) dt = 1e-4;
        b->params[P_DTB][h] = (float)(dt + log(-expm1(-dt)));  // inverse softplus
    }
}

// Saved per token: z E, xbc Dc (raw), xc Dc (conv out), xs Dc (after silu), dt H,
// q HN, k HN, v E (dt·x), g H (dt·A), yD E (o + D·x), u E (yD·silu(z)), rstd G,
// nrm E (normalised u), yn E (nrm·weight).
typedef struct {
    float *z, *xbc, *xc, *xs, *dt, *q, *k, *v, *g, *yD, *u, *rstd, *nrm, *yn;
} m2_act;

static size_t m2_act_map(const pn_block_cfg *c, int64_t M, float *base, m2_act *a) {
    m2_dims d = m2_dims_of(c);
    size_t HN = (size_t)d.H * d.N, off = 0;
    float **slot[] = {&a->z, &a->xbc, &a->xc, &a->xs, &a->dt, &a->q, &a->k,
                      &a->v, &a->g,   &a->yD, &a->u,  &a->rstd, &a->nrm, &a->yn};
    size_t width[] = {d.E, d.Dc, d.Dc, d.Dc, d.H, HN, HN, d.E, d.H, d.E, d.E, d.G, d.E, d.E};
    for (size_t i = 0; i < PN_ARRAY_LEN(slot); i++) {
        *slot[i] = base ? base + off : NULL;
        off += width[i] * (size_t)M;
    }
    return off;
}

static size_t mamba2_act_floats(const pn_block_cfg *c, int B, int T) {
    m2_act a;
    return m2_act_map(c, (int64_t)B * T, NULL, &a);
}

// Backward scratch per token: d_yn, d_u, d_yD, dz, dv (E each), dq, dk (HN), dg, d_dt (H),
// d_xs, d_xc, d_xbc (Dc); plus 1 float per head for dA.
static size_t m2_bwd_floats(const pn_block_cfg *c, int64_t M) {
    m2_dims d = m2_dims_of(c);
    return (size_t)M * (5 * (size_t)d.E + 2 * (size_t)d.H * d.N + 2 * (size_t)d.H + 3 * (size_t)d.Dc) + (size_t)d.H;
}

static pn_state_size mamba2_state_size(const pn_block_cfg *c, int64_t L) {
    m2_dims d = m2_dims_of(c);
    pn_state_size s = {0, (int64_t)d.H * d.N * d.P, (int64_t)(d.W - 1) * d.Dc};
    return s;
}

static size_t mamba2_scratch_floats(const pn_block_cfg *c, int B, int T) {
    pn_state_size s = mamba2_state_size(c, 0);
    size_t prefill = mamba2_act_floats(c, B, T) + (size_t)B * (size_t)(s.rec + s.conv);
    return PN_MAX(m2_bwd_floats(c, (int64_t)B * T), prefill);
}

// The whole forward. h0/ht: (B, H, N, P) state or NULL; x_prev: (B, W−1, Dc) raw xBC rows before t = 0 or NULL.
static void mamba2_run(const pn_block *b, float *y, const float *x, int B, int T, float *act, const float *h0,
                       float *ht, const float *x_prev, int chunk) {
    const pn_block_cfg *c = &b->cfg;
    m2_dims d = m2_dims_of(c);
    int64_t M = (int64_t)B * T;
    m2_act a;
    m2_act_map(c, M, act, &a);
    float *const *W = b->params;
    const float *Win = W[P_IN];

    pn_linear_fwd(a.z, x, Win, NULL, M, d.C, d.E);
    pn_linear_fwd(a.xbc, x, Win + (size_t)d.E * d.C, NULL, M, d.C, d.Dc);
    pn_linear_fwd(a.dt, x, Win + (size_t)(d.E + d.Dc) * d.C, NULL, M, d.C, d.H);
    for (int64_t m = 0; m < M; m++)
        for (int h = 0; h < d.H; h++) a.dt[m * d.H + h] += W[P_DTB][h];
    pn_softplus_fwd(a.dt, a.dt, M * d.H);

    pn_conv_causal_fwd(a.xc, a.xbc, W[P_CONVW], W[P_CONVB], x_prev, B, T, d.Dc, d.W);
    pn_silu_fwd(a.xs, a.xc, M * d.Dc);

    // SSD as simple_gla: q = C of the head's group, k = B, v = dt·x, g = dt·A
    int hpg = d.H / d.G;
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xs = a.xs + m * d.Dc;
        for (int h = 0; h < d.H; h++) {
            int grp = h / hpg;
            float dt = a.dt[m * d.H + h];
            const float *Bg = xs + d.E + grp * d.N, *Cg = xs + d.E + (d.G + grp) * d.N;
            memcpy(a.q + (m * d.H + h) * d.N, Cg, (size_t)d.N * sizeof(float));
            memcpy(a.k + (m * d.H + h) * d.N, Bg, (size_t)d.N * sizeof(float));
            for (int p = 0; p < d.P; p++) a.v[m * d.E + h * d.P + p] = dt * xs[h * d.P + p];
            a.g[m * d.H + h] = -dt * expf(W[P_ALOG][h]);
        }
    }
    pn_rec_shape s = {B, T, d.H, d.N, d.P, 1.0f};
    pn_simple_gla_fwd(&s, chunk, a.q, a.k, a.v, a.g, h0, a.yD, ht);

#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int h = 0; h < d.H; h++)
            for (int p = 0; p < d.P; p++) a.yD[m * d.E + h * d.P + p] += W[P_D][h] * a.xs[m * d.Dc + h * d.P + p];

    pn_swiglu_fwd(a.u, a.z, a.yD, M * d.E);
    pn_rmsnorm_fwd(a.nrm, a.rstd, a.u, NULL, M * d.G, d.E / d.G, c->norm_eps);
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int e = 0; e < d.E; e++) a.yn[m * d.E + e] = a.nrm[m * d.E + e] * W[P_NORM][e];
    pn_linear_fwd(y, a.yn, W[P_OUT], NULL, M, d.E, d.C);
}

static void mamba2_forward(const pn_block *b, float *y, const float *x, int B, int T, float *act, float *scratch,
                           pn_block_ctx *ctx) {
    mamba2_run(b, y, x, B, T, act, NULL, NULL, NULL, pn_blocks_chunk());
}

static void mamba2_backward(const pn_block *b, float *dx, const float *dy, const float *x, int B, int T,
                            const float *act, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    m2_dims d = m2_dims_of(c);
    int64_t M = (int64_t)B * T;
    m2_act a;
    m2_act_map(c, M, (float *)act, &a);
    float *const *W = b->params;
    float *const *G = b->grads;
    int64_t HN = (int64_t)d.H * d.N;

    memset(scratch, 0, m2_bwd_floats(c, M) * sizeof(float));
    float *d_yn = scratch, *d_u = d_yn + M * d.E, *d_yD = d_u + M * d.E, *dz = d_yD + M * d.E;
    float *dv = dz + M * d.E, *dq = dv + M * d.E, *dk = dq + M * HN, *dg = dk + M * HN, *d_dt = dg + M * d.H;
    float *d_xs = d_dt + M * d.H, *d_xc = d_xs + M * d.Dc, *d_xbc = d_xc + M * d.Dc, *dA = d_xbc + M * d.Dc;

    pn_linear_bwd(d_yn, G[P_OUT], NULL, dy, a.yn, W[P_OUT], M, d.E, d.C);
    if (G[P_NORM])
        for (int64_t m = 0; m < M; m++)
            for (int e = 0; e < d.E; e++) G[P_NORM][e] += d_yn[m * d.E + e] * a.nrm[m * d.E + e];
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int e = 0; e < d.E; e++) d_yn[m * d.E + e] *= W[P_NORM][e];
    pn_rmsnorm_bwd(d_u, NULL, d_yn, a.u, NULL, a.rstd, M * d.G, d.E / d.G);
    pn_swiglu_bwd(dz, d_yD, d_u, a.z, a.yD, M * d.E);

    // yD = o + D·x
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int h = 0; h < d.H; h++)
            for (int p = 0; p < d.P; p++) d_xs[m * d.Dc + h * d.P + p] += W[P_D][h] * d_yD[m * d.E + h * d.P + p];
    if (G[P_D])
        for (int64_t m = 0; m < M; m++)
            for (int h = 0; h < d.H; h++) {
                double acc = 0;
                for (int p = 0; p < d.P; p++) acc += (double)d_yD[m * d.E + h * d.P + p] * a.xs[m * d.Dc + h * d.P + p];
                G[P_D][h] += (float)acc;
            }

    pn_rec_shape s = {B, T, d.H, d.N, d.P, 1.0f};
    pn_simple_gla_bwd(&s, pn_blocks_chunk(), a.q, a.k, a.v, a.g, NULL, d_yD, NULL, dq, dk, dv, dg, NULL);

    // back through q = C, k = B (summed over the heads of a group), v = dt·x, g = dt·A
    int hpg = d.H / d.G;
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *xs = a.xs + m * d.Dc;
        float *gx = d_xs + m * d.Dc;
        for (int h = 0; h < d.H; h++) {
            int grp = h / hpg;
            float dt = a.dt[m * d.H + h], A = -expf(W[P_ALOG][h]);
            double acc = (double)dg[m * d.H + h] * A;
            for (int p = 0; p < d.P; p++) {
                float g_v = dv[m * d.E + h * d.P + p];
                acc += (double)g_v * xs[h * d.P + p];
                gx[h * d.P + p] += g_v * dt;
            }
            // softplus' = sigmoid(dt_raw + bias) = 1 − exp(−dt)
            d_dt[m * d.H + h] = (float)acc * -expm1f(-dt);
            for (int n = 0; n < d.N; n++) {
                gx[d.E + (d.G + grp) * d.N + n] += dq[(m * d.H + h) * d.N + n];
                gx[d.E + grp * d.N + n] += dk[(m * d.H + h) * d.N + n];
            }
        }
    }
    for (int64_t m = 0; m < M; m++)
        for (int h = 0; h < d.H; h++) dA[h] += dg[m * d.H + h] * a.dt[m * d.H + h];
    for (int h = 0; h < d.H; h++) {
        if (G[P_ALOG]) G[P_ALOG][h] += dA[h] * -expf(W[P_ALOG][h]);  // dA/dA_log = A
        if (G[P_DTB])
            for (int64_t m = 0; m < M; m++) G[P_DTB][h] += d_dt[m * d.H + h];
    }

    pn_silu_bwd(d_xc, d_xs, a.xc, M * d.Dc);
    pn_conv_causal_bwd(d_xbc, G[P_CONVW], G[P_CONVB], d_xc, a.xbc, W[P_CONVW], NULL, B, T, d.Dc, d.W);

    const float *Win = W[P_IN];
    float *gin = G[P_IN];
    size_t off_x = (size_t)d.E * d.C, off_dt = (size_t)(d.E + d.Dc) * d.C;
    pn_linear_bwd(dx, gin, NULL, dz, x, Win, M, d.C, d.E);
    pn_linear_bwd(dx, gin ? gin + off_x : NULL, NULL, d_xbc, x, Win + off_x, M, d.C, d.Dc);
    pn_linear_bwd(dx, gin ? gin + off_dt : NULL, NULL, d_dt, x, Win + off_dt, M, d.C, d.H);
}

// Per-sequence state [S (H, N, P) | x_prev (W−1, Dc)] is gathered into scratch,
// advanced, and written back.
static void mamba2_prefill(const pn_block *b, float *y, const float *x, int B, int T, float *state, int64_t pos,
                           int64_t L, float *scratch, pn_block_ctx *ctx) {
    const pn_block_cfg *c = &b->cfg;
    m2_dims d = m2_dims_of(c);
    pn_state_size ss = mamba2_state_size(c, L);
    size_t per = (size_t)(ss.rec + ss.conv);
    if (pos == 0) memset(state, 0, (size_t)B * per * sizeof(float));
    if (T <= 0) return;
    float *h = scratch + mamba2_act_floats(c, B, T), *xp = h + (size_t)B * ss.rec;
    for (int i = 0; i < B; i++) {
        memcpy(h + (size_t)i * ss.rec, state + i * per, (size_t)ss.rec * sizeof(float));
        memcpy(xp + (size_t)i * ss.conv, state + i * per + ss.rec, (size_t)ss.conv * sizeof(float));
    }
    mamba2_run(b, y, x, B, T, scratch, h, h, xp, T == 1 ? 0 : pn_blocks_chunk());
    m2_act a;
    m2_act_map(c, (int64_t)B * T, scratch, &a);
    pn_conv_state_update(xp, a.xbc, B, T, d.Dc, d.W);
    for (int i = 0; i < B; i++) {
        memcpy(state + i * per, h + (size_t)i * ss.rec, (size_t)ss.rec * sizeof(float));
        memcpy(state + i * per + ss.rec, xp + (size_t)i * ss.conv, (size_t)ss.conv * sizeof(float));
    }
}

static void mamba2_decode(const pn_block *b, float *y, const float *x, int B, float *state, int64_t pos, int64_t L,
                          float *scratch, pn_block_ctx *ctx) {
    mamba2_prefill(b, y, x, B, 1, state, pos, L, scratch, ctx);
}

// Matmuls at 2 FLOPs per multiply-add, conv 2·W per channel, recurrence per head:
// decay N·P, outer product 2·N·P, readout 2·N·P. Elementwise work is not counted.
static double mamba2_flops_per_token(const pn_block_cfg *c, int64_t L) {
    m2_dims d = m2_dims_of(c);
    double rows = 2.0 * d.E + 2.0 * d.G * d.N + d.H;
    return 2.0 * d.C * rows + 2.0 * d.E * d.C + 2.0 * d.Dc * d.W + 5.0 * d.H * (double)d.N * d.P;
}

const pn_block_type pn_block_mamba2 = {
    .name = "mamba2",
    .defaults = mamba2_defaults,
    .params = mamba2_params,
    .init_custom = mamba2_init_custom,
    .act_floats = mamba2_act_floats,
    .scratch_floats = mamba2_scratch_floats,
    .forward = mamba2_forward,
    .backward = mamba2_backward,
    .state_size = mamba2_state_size,
    .prefill = mamba2_prefill,
    .decode = mamba2_decode,
    .flops_per_token = mamba2_flops_per_token,
};
