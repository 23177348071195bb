// test_blocks_zoo.c — gla, retnet, mamba2, rwkv7 against independent restatements.
//
// These blocks have no layer fixture, so each gets a float64 restatement of its
// forward written here from BLOCKS.md with plain loops and the token-by-token
// recurrence (parameters looked up by their reference names, nothing shared with
// the block code). Checks per block, on a small random configuration:
//  - the block's forward (chunked op, chunk 16 over T = 37) equals the restatement
//    to 1e-4 relative;
//  - the chunked and the recurrent op give the same y and gradients (1e-4);
//  - backward: for the input and every parameter, the directional derivative
//    Σ grad·u equals a central finite difference of the float64 restatement of
//    L = Σ y·dy (1e-3 relative);
//  - the parameter table has the reference names and shapes (in_proj rows
//    2·E + 2·G·N + H, fla's LoRA-size formula with Python rounding, ...).
// rwkv7 is also run as a two-layer chain so the value residual (v_first through
// pn_block_ctx, its gradient through dv_first) is covered.
#include "blocks/block.h"
#include "blocks/block_chunk.h"
#include "core/rng.h"
#include "test_util.h"

extern const pn_block_type pn_block_gla, pn_block_retnet, pn_block_mamba2, pn_block_rwkv7;

#define BT_B 2
#define BT_T 37
#define TEST_CHUNK 16

// ---------------------------------------------------------------- float64 helpers
static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }
static double softplus_d(double x) { return x > 20 ? x : log1p(exp(x)); }
static double silu_d(double x) { return x * sigm(x); }

static double *dalloc(size_t n) { return pn_calloc(n, sizeof(double)); }

// y (M, N) = x (M, K) Wᵀ + b
static void lin(double *y, const double *x, const double *W, const double *b, int M, int K, int N) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = b ? b[n] : 0.0;
            for (int k = 0; k < K; k++) acc += x[(size_t)m * K + k] * W[(size_t)n * K + k];
            y[(size_t)m * N + n] = acc;
        }
}

// S = diag(exp(gk)) S + k vᵀ + b (aᵀ S_prev), o = Sᵀ (scale q); a, b may be NULL.
// q, k, gk, a, b (B, T, H, K); v, o (B, T, H, V).
static void rec(int B, int T, int H, int K, int V, const double *q, const double *k, const double *v,
                const double *gk, const double *a, const double *b, double scale, double *o) {
    double *S = dalloc((size_t)K * V), *p = dalloc((size_t)V);
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            memset(S, 0, (size_t)K * V * sizeof(double));
            for (int t = 0; t < T; t++) {
                size_t ik = (((size_t)bb * T + t) * H + h) * K, iv = (((size_t)bb * T + t) * H + h) * V;
                for (int j = 0; j < V; j++) {
                    p[j] = 0;
                    if (a)
                        for (int i = 0; i < K; i++) p[j] += a[ik + i] * S[(size_t)i * V + j];
                }
                for (int i = 0; i < K; i++)
                    for (int j = 0; j < V; j++)
                        S[(size_t)i * V + j] = exp(gk[ik + i]) * S[(size_t)i * V + j] + k[ik + i] * v[iv + j] +
                                               (b ? b[ik + i] * p[j] : 0.0);
                for (int j = 0; j < V; j++) {
                    double acc = 0;
                    for (int i = 0; i < K; i++) acc += S[(size_t)i * V + j] * q[ik + i] * scale;
                    o[iv + j] = acc;
                }
            }
        }
    free(S);
    free(p);
}

// rmsh(o, w, eps) · silu(g) over rows of D
static void rms_gate(double *y, const double *o, const double *w, const double *g, int rows, int D, double eps) {
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int d = 0; d < D; d++) ss += o[(size_t)r * D + d] * o[(size_t)r * D + d];
        double inv = 1.0 / sqrt(ss / D + eps);
        for (int d = 0; d < D; d++)
            y[(size_t)r * D + d] = o[(size_t)r * D + d] * inv * w[d] * (g ? silu_d(g[(size_t)r * D + d]) : 1.0);
    }
}

typedef struct {
    const pn_block *b;
    double **P;
} dparams;

static double *par(const dparams *p, const char *name) {
    int i = pn_block_param_index(p->b, name);
    if (i < 0) {
        fprintf(stderr, "missing parameter %s\n", name);
        exit(1);
    }
    return p->P[i];
}

// ---------------------------------------------------------------- restatements
static void ref_gla(const dparams *p, const double *x, double *y, int B, int T) {
    const pn_block_cfg *c = &p->b->cfg;
    int C = c->C, H = c->H, K = c->K, V = c->V, M = B * T;
    double *q = dalloc((size_t)M * H * K), *k = dalloc((size_t)M * H * K), *gk = dalloc((size_t)M * H * K);
    double *v = dalloc((size_t)M * H * V), *g = dalloc((size_t)M * H * V), *o = dalloc((size_t)M * H * V);
    double *lr = dalloc((size_t)M * 16), *on = dalloc((size_t)M * H * V);
    lin(q, x, par(p, "q_proj.weight"), NULL, M, C, H * K);
    lin(k, x, par(p, "k_proj.weight"), NULL, M, C, H * K);
    lin(v, x, par(p, "v_proj.weight"), NULL, M, C, H * V);
    lin(g, x, par(p, "g_proj.weight"), NULL, M, C, H * V);
    lin(lr, x, par(p, "gk_proj.0.weight"), NULL, M, C, 16);
    lin(gk, lr, par(p, "gk_proj.1.weight"), par(p, "gk_proj.1.bias"), M, 16, H * K);
    for (size_t i = 0; i < (size_t)M * H * K; i++) gk[i] = -softplus_d(-gk[i]) / 16.0;
    rec(B, T, H, K, V, q, k, v, gk, NULL, NULL, 1.0 / sqrt((double)K), o);
    rms_gate(on, o, par(p, "g_norm_swish_gate.weight"), g, M * H, V, 1e-5);
    lin(y, on, par(p, "o_proj.weight"), NULL, M, H * V, C);
    free(q), free(k), free(gk), free(v), free(g), free(o), free(lr), free(on);
}

static void rope_d(double *x, int B, int T, int H, int D) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                double *r = x + (((size_t)b * T + t) * H + h) * D;
                for (int i = 0; i < D / 2; i++) {
                    double ang = t * pow(10000.0, -2.0 * i / D), x1 = r[i], x2 = r[i + D / 2];
                    r[i] = x1 * cos(ang) - x2 * sin(ang);
                    r[i + D / 2] = x2 * cos(ang) + x1 * sin(ang);
                }
            }
}

static void ref_retnet(const dparams *p, const double *x, double *y, int B, int T) {
    const pn_block_cfg *c = &p->b->cfg;
    int C = c->C, H = c->H, K = c->K, V = c->V, M = B * T;
    double *q = dalloc((size_t)M * H * K), *k = dalloc((size_t)M * H * K), *gk = dalloc((size_t)M * H * K);
    double *v = dalloc((size_t)M * H * V), *g = dalloc((size_t)M * H * V), *o = dalloc((size_t)M * H * V);
    double *on = dalloc((size_t)M * H * V);
    lin(q, x, par(p, "q_proj.weight"), NULL, M, C, H * K);
    lin(k, x, par(p, "k_proj.weight"), NULL, M, C, H * K);
    rope_d(q, B, T, H, K);
    rope_d(k, B, T, H, K);
    lin(v, x, par(p, "v_proj.weight"), NULL, M, C, H * V);
    lin(g, x, par(p, "g_proj.weight"), NULL, M, C, H * V);
    for (int m = 0; m < M; m++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < K; i++) gk[((size_t)m * H + h) * K + i] = log(1.0 - pow(2.0, -5.0 - h));
    rec(B, T, H, K, V, q, k, v, gk, NULL, NULL, 1.0 / sqrt((double)K), o);
    rms_gate(on, o, par(p, "g_norm_swish_gate.weight"), g, M * H, V, 1e-5);
    lin(y, on, par(p, "o_proj.weight"), NULL, M, H * V, C);
    free(q), free(k), free(gk), free(v), free(g), free(o), free(on);
}

static void ref_mamba2(const dparams *p, const double *x, double *y, int B, int T) {
    const pn_block_cfg *c = &p->b->cfg;
    int C = c->C, E = 2 * C, P = c->K, H = E / P, G = c->n_groups, N = c->d_state, W = c->conv_size, M = B * T;
    int Dc = E + 2 * G * N, R = 2 * E + 2 * G * N + H;
    double *zx = dalloc((size_t)M * R), *xs = dalloc((size_t)M * Dc), *yy = dalloc((size_t)M * E);
    lin(zx, x, par(p, "in_proj.weight"), NULL, M, C, R);
    const double *cw = par(p, "conv1d.weight"), *cb = par(p, "conv1d.bias");
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < Dc; d++) {
                double acc = cb[d];
                for (int j = 0; j < W; j++) {
                    int tt = t - W + 1 + j;
                    if (tt >= 0) acc += cw[(size_t)d * W + j] * zx[((size_t)b * T + tt) * R + E + d];
                }
                xs[((size_t)b * T + t) * Dc + d] = silu_d(acc);
            }
    const double *dtb = par(p, "dt_bias"), *Alog = par(p, "A_log"), *Dp = par(p, "D");
    double *S = dalloc((size_t)N * P);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int grp = h * G / H;
            memset(S, 0, (size_t)N * P * sizeof(double));
            for (int t = 0; t < T; t++) {
                size_t m = (size_t)b * T + t;
                double dt = softplus_d(zx[m * R + E + Dc + h] + dtb[h]), A = -exp(Alog[h]);
                const double *xh = xs + m * Dc + (size_t)h * P, *Bg = xs + m * Dc + E + (size_t)grp * N;
                const double *Cg = xs + m * Dc + E + (size_t)(G + grp) * N;
                for (int n = 0; n < N; n++)
                    for (int q = 0; q < P; q++) S[(size_t)n * P + q] = exp(dt * A) * S[(size_t)n * P + q] + Bg[n] * dt * xh[q];
                for (int q = 0; q < P; q++) {
                    double acc = 0;
                    for (int n = 0; n < N; n++) acc += S[(size_t)n * P + q] * Cg[n];
                    yy[m * E + (size_t)h * P + q] = acc + Dp[h] * xh[q];
                }
            }
        }
    // gate, then RMSNorm over each group of E/G features
    const double *nw = par(p, "norm.weight");
    int gs = E / G;
    for (int m = 0; m < M; m++) {
        for (int e = 0; e < E; e++) yy[(size_t)m * E + e] *= silu_d(zx[(size_t)m * R + e]);
        for (int g = 0; g < G; g++) {
            double ss = 0;
            for (int e = g * gs; e < (g + 1) * gs; e++) ss += yy[(size_t)m * E + e] * yy[(size_t)m * E + e];
            double inv = 1.0 / sqrt(ss / gs + 1e-5);
            for (int e = g * gs; e < (g + 1) * gs; e++) yy[(size_t)m * E + e] *= inv * nw[e];
        }
    }
    lin(y, yy, par(p, "out_proj.weight"), NULL, M, E, C);
    free(zx), free(xs), free(yy), free(S);
}

// LoRA: act(x W0ᵀ) W2ᵀ + b2; act 0 none, 1 tanh, 2 sigmoid.
static void lora_d(double *y, const double *x, const dparams *p, const char *name, int act, int M, int C, int rank) {
    char n0[96], n2[96], nb[96];
    snprintf(n0, sizeof n0, "%s.lora.0.weight", name);
    snprintf(n2, sizeof n2, "%s.lora.2.weight", name);
    snprintf(nb, sizeof nb, "%s.lora.2.bias", name);
    double *h = dalloc((size_t)M * rank);
    lin(h, x, par(p, n0), NULL, M, C, rank);
    for (size_t i = 0; i < (size_t)M * rank; i++) h[i] = act == 1 ? tanh(h[i]) : act == 2 ? sigm(h[i]) : h[i];
    lin(y, h, par(p, n2), pn_block_param_index(p->b, nb) >= 0 ? par(p, nb) : NULL, M, rank, C);
    free(h);
}

// v_first NULL: this is the first rwkv7 layer; v_out (optional) receives its v.
static void ref_rwkv7(const dparams *p, const double *x, double *y, int B, int T, const double *v_first,
                      double *v_out) {
    const pn_block_cfg *c = &p->b->cfg;
    int C = c->C, H = c->H, K = c->K, M = B * T;
    size_t MC = (size_t)M * C;
    double *xm[6], *dl = dalloc(MC);
    const char *mu[6] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++) {
                size_t j = ((size_t)b * T + t) * C + i;
                dl[j] = (t > 0 ? x[j - C] : 0.0) - x[j];
            }
    for (int s = 0; s < 6; s++) {
        xm[s] = dalloc(MC);
        const double *m = par(p, mu[s]);
        for (size_t j = 0; j < MC; j++) xm[s][j] = x[j] + dl[j] * m[j % C];
    }
    double *r = dalloc(MC), *k = dalloc(MC), *v = dalloc(MC), *w = dalloc(MC), *a = dalloc(MC), *g = dalloc(MC);
    double *kh = dalloc(MC), *am = dalloc(MC), *bm = dalloc(MC), *o = dalloc(MC), *tmp = dalloc(MC);
    lin(r, xm[0], par(p, "r_proj.weight"), NULL, M, C, C);
    lin(k, xm[2], par(p, "k_proj.weight"), NULL, M, C, C);
    lin(v, xm[3], par(p, "v_proj.weight"), NULL, M, C, C);
    lora_d(w, xm[1], p, "w_lora", 1, M, C, c->lora_w);
    for (size_t j = 0; j < MC; j++) w[j] = -0.6065306597126334 * sigm(w[j]);
    if (v_first) {
        lora_d(tmp, xm[3], p, "v_lora", 0, M, C, c->lora_v);
        for (size_t j = 0; j < MC; j++) v[j] = v[j] + (v_first[j] - v[j]) * sigm(tmp[j]);
    } else if (v_out) {
        memcpy(v_out, v, MC * sizeof(double));
    }
    lora_d(a, xm[4], p, "a_lora", 0, M, C, c->lora_a);
    for (size_t j = 0; j < MC; j++) a[j] = sigm(a[j]);
    lora_d(g, xm[5], p, "g_lora", 2, M, C, c->lora_g);
    const double *kk = par(p, "k_k"), *ka = par(p, "k_a"), *rk = par(p, "r_k");
    for (int m = 0; m < M; m++)
        for (int h = 0; h < H; h++) {
            size_t j0 = (size_t)m * C + (size_t)h * K;
            double ss = 0;
            for (int d = 0; d < K; d++) ss += pow(k[j0 + d] * kk[h * K + d], 2);
            for (int d = 0; d < K; d++) kh[j0 + d] = k[j0 + d] * kk[h * K + d] / sqrt(ss + 1e-6);
        }
    for (size_t j = 0; j < MC; j++) {
        k[j] = k[j] * (1.0 + (a[j] - 1.0) * ka[j % C]);
        am[j] = -kh[j];
        bm[j] = kh[j] * a[j];
    }
    rec(B, T, H, K, K, r, k, v, w, am, bm, 1.0, o);
    const double *gw = par(p, "g_norm.weight"), *gb = par(p, "g_norm.bias");
    for (int m = 0; m < M; m++)
        for (int h = 0; h < H; h++) {
            size_t j0 = (size_t)m * C + (size_t)h * K;
            double mean = 0, var = 0, bonus = 0;
            for (int d = 0; d < K; d++) mean += o[j0 + d] / K;
            for (int d = 0; d < K; d++) var += pow(o[j0 + d] - mean, 2) / K;
            for (int d = 0; d < K; d++) bonus += r[j0 + d] * k[j0 + d] * rk[h * K + d];
            for (int d = 0; d < K; d++) {
                int f = h * K + d;
                double gn = (o[j0 + d] - mean) / sqrt(var + K * 1e-5) * gw[f] + gb[f];
                tmp[j0 + d] = (gn + bonus * v[j0 + d]) * g[j0 + d];
            }
        }
    lin(y, tmp, par(p, "o_proj.weight"), NULL, M, C, C);
    for (int s = 0; s < 6; s++) free(xm[s]);
    free(dl), free(r), free(k), free(v), free(w), free(a), free(g), free(kh), free(am), free(bm), free(o), free(tmp);
}

// ---------------------------------------------------------------- block under test
typedef struct {
    pn_block b;
    float *act, *scratch;
    double **P;  // float64 copy of the parameters
    dparams dp;
} tblock;

static void tb_init(tblock *t, const pn_block_type *ty, pn_block_cfg cfg, uint64_t seed) {
    pn_block_setup(&t->b, ty, &cfg);
    t->P = pn_calloc((size_t)t->b.n_params, sizeof(double *));
    for (int i = 0; i < t->b.n_params; i++) {
        size_t n = (size_t)pn_param_numel(&t->b.spec[i]);
        t->b.params[i] = pn_malloc(n * sizeof(float));
        t->b.grads[i] = pn_calloc(n, sizeof(float));
    }
    pn_block_init_params(&t->b, seed);
    // Perturb every parameter so zero-initialised paths (rwkv7's o_proj, LoRA inputs)
    // carry signal: matrices get N(0, 0.6/√cols), the rest init + N(0, 0.1).
    for (int i = 0; i < t->b.n_params; i++) {
        const pn_param_spec *s = &t->b.spec[i];
        size_t n = (size_t)pn_param_numel(s);
        float *w = t->b.params[i];
        int matrix = s->ndim == 2 && s->shape[0] > 1 && s->shape[1] > 1 && strcmp(s->name, "r_k") != 0;
        for (size_t j = 0; j < n; j++) {
            float z = pn_normal_at(seed + 7, pn_hash_str(s->name), j);
            w[j] = matrix ? z * 0.6f / sqrtf((float)s->shape[1]) : w[j] + 0.1f * z;
        }
        t->P[i] = dalloc(n);
        for (size_t j = 0; j < n; j++) t->P[i][j] = w[j];
    }
    t->act = pn_malloc(ty->act_floats(&t->b.cfg, BT_B, BT_T) * sizeof(float));
    t->scratch = pn_malloc(ty->scratch_floats(&t->b.cfg, BT_B, BT_T) * sizeof(float));
    t->dp.b = &t->b;
    t->dp.P = t->P;
}

static void tb_free(tblock *t) {
    for (int i = 0; i < t->b.n_params; i++) free(t->b.params[i]), free(t->b.grads[i]), free(t->P[i]);
    free(t->P), free(t->act), free(t->scratch);
}

static void tb_zero_grads(tblock *t) {
    for (int i = 0; i < t->b.n_params; i++)
        memset(t->b.grads[i], 0, (size_t)pn_param_numel(&t->b.spec[i]) * sizeof(float));
}

typedef void (*ref_fn)(const dparams *p, const double *x, double *y, int B, int T);

static void ref_rwkv7_first(const dparams *p, const double *x, double *y, int B, int T) {
    ref_rwkv7(p, x, y, B, T, NULL, NULL);
}

static double ref_loss(ref_fn f, const dparams *p, const double *x, const float *dy, size_t n) {
    double *y = dalloc(n), L = 0;
    f(p, x, y, BT_B, BT_T);
    for (size_t i = 0; i < n; i++) L += y[i] * dy[i];
    free(y);
    return L;
}

// Directional derivative check of one gradient g (n) of the variable v (double, n):
// u = g/‖g‖ + N(0,1)/√n, FD of L along u with step 1e-5.
static double dir_check(const float *g, double *v, size_t n, double (*L)(void *), void *ctx, uint64_t seed) {
    double gn = 0;
    for (size_t i = 0; i < n; i++) gn += (double)g[i] * g[i];
    gn = sqrt(gn);
    double *u = dalloc(n), an = 0;
    for (size_t i = 0; i < n; i++) {
        u[i] = (gn > 0 ? g[i] / gn : 0.0) + pn_normal_at(seed, 99, i) / sqrt((double)n);
        an += g[i] * u[i];
    }
    const double eps = 1e-5;
    for (size_t i = 0; i < n; i++) v[i] += eps * u[i];
    double Lp = L(ctx);
    for (size_t i = 0; i < n; i++) v[i] -= 2 * eps * u[i];
    double Lm = L(ctx);
    for (size_t i = 0; i < n; i++) v[i] += eps * u[i];
    free(u);
    double fd = (Lp - Lm) / (2 * eps), diff = fabs(an - fd);
    return diff < 1e-7 ? 0.0 : diff / fmax(fabs(fd), 1e-12);
}

typedef struct {
    ref_fn f;
    const dparams *p;
    const double *x;
    const float *dy;
    size_t n;
} single_ctx;

static double single_loss(void *c) {
    single_ctx *s = c;
    return ref_loss(s->f, s->p, s->x, s->dy, s->n);
}

static void run_block(const pn_block_type *ty, pn_block_cfg cfg, ref_fn ref, uint64_t seed) {
    tblock t;
    tb_init(&t, ty, cfg, seed);
    int C = t.b.cfg.C;
    size_t N = (size_t)BT_B * BT_T * C;
    float *x = pn_malloc(N * sizeof(float)), *dy = pn_malloc(N * sizeof(float));
    pn_fill_normal(x, N, 0.0f, 1.0f, seed, 1);
    pn_fill_normal(dy, N, 0.0f, 1.0f, seed, 2);
    float *y[2], *dx[2], **gr[2];
    int chunks[2] = {TEST_CHUNK, 0};
    for (int r = 0; r < 2; r++) {
        y[r] = pn_malloc(N * sizeof(float));
        dx[r] = pn_calloc(N, sizeof(float));
        gr[r] = pn_calloc((size_t)t.b.n_params, sizeof(float *));
        pn_blocks_set_chunk(chunks[r]);
        tb_zero_grads(&t);
        ty->forward(&t.b, y[r], x, BT_B, BT_T, t.act, t.scratch, NULL);
        ty->backward(&t.b, dx[r], dy, x, BT_B, BT_T, t.act, t.scratch, NULL);
        for (int i = 0; i < t.b.n_params; i++) {
            size_t n = (size_t)pn_param_numel(&t.b.spec[i]);
            gr[r][i] = pn_malloc(n * sizeof(float));
            memcpy(gr[r][i], t.b.grads[i], n * sizeof(float));
        }
    }
    pn_blocks_set_chunk(PN_BLOCKS_DEFAULT_CHUNK);

    // chunked vs recurrent
    double worst = rel_err(y[0], y[1], N);
    CHECK(worst <= 1e-4, "%s: chunked vs recurrent y rel err %.3e", ty->name, worst);
    double e = rel_err(dx[0], dx[1], N);
    CHECK(e <= 1e-4, "%s: chunked vs recurrent dx rel err %.3e", ty->name, e);
    worst = fmax(worst, e);
    for (int i = 0; i < t.b.n_params; i++) {
        e = rel_err(gr[0][i], gr[1][i], (size_t)pn_param_numel(&t.b.spec[i]));
        CHECK(e <= 1e-4, "%s: chunked vs recurrent grad %s rel err %.3e", ty->name, t.b.spec[i].name, e);
        worst = fmax(worst, e);
    }
    printf("%-7s chunked vs recurrent: worst rel err %.2e\n", ty->name, worst);

    // forward vs the float64 restatement
    double *xd = dalloc(N), *yr = dalloc(N);
    for (size_t i = 0; i < N; i++) xd[i] = x[i];
    ref(&t.dp, xd, yr, BT_B, BT_T);
    float *yrf = pn_malloc(N * sizeof(float));
    for (size_t i = 0; i < N; i++) yrf[i] = (float)yr[i];
    e = rel_err(y[0], yrf, N);
    CHECK(e <= 1e-4, "%s: forward vs float64 restatement rel err %.3e", ty->name, e);
    printf("%-7s forward vs float64 restatement: rel err %.2e\n", ty->name, e);

    // backward vs finite differences of the restatement
    single_ctx sc = {ref, &t.dp, xd, dy, N};
    worst = dir_check(dx[0], xd, N, single_loss, &sc, seed + 11);
    CHECK(worst <= 1e-3, "%s: dx directional derivative rel err %.3e", ty->name, worst);
    for (int i = 0; i < t.b.n_params; i++) {
        size_t n = (size_t)pn_param_numel(&t.b.spec[i]);
        e = dir_check(gr[0][i], t.P[i], n, single_loss, &sc, seed + 12 + (uint64_t)i);
        CHECK(e <= 1e-3, "%s: grad %s directional derivative rel err %.3e", ty->name, t.b.spec[i].name, e);
        worst = fmax(worst, e);
    }
    printf("%-7s backward vs finite differences (%d params + x): worst rel err %.2e\n", ty->name, t.b.n_params, worst);

    // prefill of the first 20 tokens (from a dirty state at pos 0), then one-token decode steps
    int64_t sf = pn_block_state_floats(&t.b, BT_T);
    float *state = pn_malloc((size_t)BT_B * sf * sizeof(float)), *ys = pn_malloc(N * sizeof(float));
    float *xt = pn_malloc((size_t)BT_B * C * sizeof(float)), *yt = pn_malloc((size_t)BT_B * C * sizeof(float));
    for (int64_t i = 0; i < BT_B * sf; i++) state[i] = 1e3f;
    const int T0 = 20;
    float *x0 = pn_malloc((size_t)BT_B * T0 * C * sizeof(float)), *y0 = pn_malloc((size_t)BT_B * T0 * C * sizeof(float));
    for (int b = 0; b < BT_B; b++) memcpy(x0 + (size_t)b * T0 * C, x + (size_t)b * BT_T * C, (size_t)T0 * C * sizeof(float));
    pn_blocks_set_chunk(TEST_CHUNK);
    ty->prefill(&t.b, y0, x0, BT_B, T0, state, 0, BT_T, t.scratch, NULL);
    for (int b = 0; b < BT_B; b++) memcpy(ys + (size_t)b * BT_T * C, y0 + (size_t)b * T0 * C, (size_t)T0 * C * sizeof(float));
    for (int tt = T0; tt < BT_T; tt++) {
        for (int b = 0; b < BT_B; b++) memcpy(xt + (size_t)b * C, x + ((size_t)b * BT_T + tt) * C, (size_t)C * sizeof(float));
        ty->decode(&t.b, yt, xt, BT_B, state, tt, BT_T, t.scratch, NULL);
        for (int b = 0; b < BT_B; b++) memcpy(ys + ((size_t)b * BT_T + tt) * C, yt + (size_t)b * C, (size_t)C * sizeof(float));
    }
    pn_blocks_set_chunk(PN_BLOCKS_DEFAULT_CHUNK);
    e = rel_err(ys, y[0], N);
    CHECK(e <= 1e-5, "%s: prefill + decode vs forward rel err %.3e", ty->name, e);
    printf("%-7s prefill(20) + decode(17) vs forward: rel err %.2e\n", ty->name, e);
    free(state), free(ys), free(xt), free(yt), free(x0), free(y0);

    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < t.b.n_params; i++) free(gr[r][i]);
        free(gr[r]), free(y[r]), free(dx[r]);
    }
    free(x), free(dy), free(xd), free(yr), free(yrf);
    tb_free(&t);
}

// ---------------------------------------------------------------- rwkv7 two-layer chain
typedef struct {
    tblock *l1, *l2;
    const double *x1, *x2;
    const float *dy1, *dy2;
    size_t n;
} chain_ctx;

static double chain_loss(void *c) {
    chain_ctx *s = c;
    double *y = dalloc(s->n), *vf = dalloc(s->n), L = 0;
    ref_rwkv7(&s->l1->dp, s->x1, y, BT_B, BT_T, NULL, vf);
    for (size_t i = 0; i < s->n; i++) L += y[i] * s->dy1[i];
    ref_rwkv7(&s->l2->dp, s->x2, y, BT_B, BT_T, vf, NULL);
    for (size_t i = 0; i < s->n; i++) L += y[i] * s->dy2[i];
    free(y), free(vf);
    return L;
}

static void test_rwkv7_chain(pn_block_cfg cfg) {
    tblock l1, l2;
    cfg.first_rwkv = 1;
    cfg.layer_idx = 0;
    tb_init(&l1, &pn_block_rwkv7, cfg, 31);
    cfg.first_rwkv = 0;
    cfg.layer_idx = 1;
    tb_init(&l2, &pn_block_rwkv7, cfg, 32);
    CHECK(pn_block_param_index(&l1.b, "v_lora.lora.0.weight") < 0, "first rwkv7 layer must have no v_lora");
    CHECK(pn_block_param_index(&l2.b, "v_lora.lora.0.weight") >= 0, "later rwkv7 layer must have v_lora");
    size_t N = (size_t)BT_B * BT_T * cfg.C;
    float *x1 = pn_malloc(N * 4), *x2 = pn_malloc(N * 4), *dy1 = pn_malloc(N * 4), *dy2 = pn_malloc(N * 4);
    float *y1 = pn_malloc(N * 4), *y2 = pn_malloc(N * 4), *dx1 = pn_calloc(N, 4), *dx2 = pn_calloc(N, 4);
    pn_fill_normal(x1, N, 0, 1, 41, 1), pn_fill_normal(x2, N, 0, 1, 41, 2);
    pn_fill_normal(dy1, N, 0, 1, 41, 3), pn_fill_normal(dy2, N, 0, 1, 41, 4);
    pn_block_ctx ctx = {NULL, pn_calloc(N, sizeof(float))};
    pn_blocks_set_chunk(TEST_CHUNK);
    pn_block_rwkv7.forward(&l1.b, y1, x1, BT_B, BT_T, l1.act, l1.scratch, &ctx);
    CHECK(ctx.v_first != NULL, "first rwkv7 layer did not set ctx->v_first");
    pn_block_rwkv7.forward(&l2.b, y2, x2, BT_B, BT_T, l2.act, l2.scratch, &ctx);
    pn_block_rwkv7.backward(&l2.b, dx2, dy2, x2, BT_B, BT_T, l2.act, l2.scratch, &ctx);
    pn_block_rwkv7.backward(&l1.b, dx1, dy1, x1, BT_B, BT_T, l1.act, l1.scratch, &ctx);
    pn_blocks_set_chunk(PN_BLOCKS_DEFAULT_CHUNK);

    double *x1d = dalloc(N), *x2d = dalloc(N), *yr = dalloc(N), *vf = dalloc(N);
    for (size_t i = 0; i < N; i++) x1d[i] = x1[i], x2d[i] = x2[i];
    ref_rwkv7(&l1.dp, x1d, yr, BT_B, BT_T, NULL, vf);
    ref_rwkv7(&l2.dp, x2d, yr, BT_B, BT_T, vf, NULL);
    float *yrf = pn_malloc(N * 4);
    for (size_t i = 0; i < N; i++) yrf[i] = (float)yr[i];
    double e = rel_err(y2, yrf, N), worst = 0;
    CHECK(e <= 1e-4, "rwkv7 chain: second layer y rel err %.3e", e);
    printf("rwkv7   chain (v_first): second-layer forward rel err %.2e\n", e);

    chain_ctx cc = {&l1, &l2, x1d, x2d, dy1, dy2, N};
    struct {
        const char *what;
        const float *g;
        double *v;
        size_t n;
    } probes[] = {
        {"dx1", dx1, x1d, N},
        {"dx2", dx2, x2d, N},
        {"l1 v_proj", l1.b.grads[pn_block_param_index(&l1.b, "v_proj.weight")],
         l1.P[pn_block_param_index(&l1.b, "v_proj.weight")], (size_t)cfg.C * cfg.C},
        {"l1 x_v", l1.b.grads[pn_block_param_index(&l1.b, "x_v")], l1.P[pn_block_param_index(&l1.b, "x_v")],
         (size_t)cfg.C},
        {"l2 v_lora.lora.0", l2.b.grads[pn_block_param_index(&l2.b, "v_lora.lora.0.weight")],
         l2.P[pn_block_param_index(&l2.b, "v_lora.lora.0.weight")], (size_t)cfg.lora_v * cfg.C},
        {"l2 v_lora.lora.2.bias", l2.b.grads[pn_block_param_index(&l2.b, "v_lora.lora.2.bias")],
         l2.P[pn_block_param_index(&l2.b, "v_lora.lora.2.bias")], (size_t)cfg.C},
    };
    for (size_t i = 0; i < PN_ARRAY_LEN(probes); i++) {
        e = dir_check(probes[i].g, probes[i].v, probes[i].n, chain_loss, &cc, 50 + i);
        CHECK(e <= 1e-3, "rwkv7 chain: %s directional derivative rel err %.3e", probes[i].what, e);
        worst = fmax(worst, e);
    }
    printf("rwkv7   chain backward vs finite differences: worst rel err %.2e\n", worst);
    free(x1), free(x2), free(dy1), free(dy2), free(y1), free(y2), free(dx1), free(dx2), free(ctx.dv_first);
    free(x1d), free(x2d), free(yr), free(vf), free(yrf);
    tb_free(&l1), tb_free(&l2);
}

// ---------------------------------------------------------------- parameter tables
static void check_shape(const pn_block *b, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    int i = pn_block_param_index(b, name);
    CHECK(i >= 0, "%s: missing parameter %s", b->type->name, name);
    if (i < 0) return;
    const pn_param_spec *s = &b->spec[i];
    int64_t want[3] = {d0, d1, d2};
    int ok = s->ndim == ndim;
    for (int k = 0; k < ndim && ok; k++) ok = s->shape[k] == want[k];
    CHECK(ok, "%s: %s has ndim %d shape (%lld, %lld, %lld), want ndim %d (%lld, %lld, %lld)", b->type->name, name,
          s->ndim, (long long)s->shape[0], (long long)s->shape[1], (long long)s->shape[2], ndim, (long long)d0,
          (long long)d1, (long long)d2);
}

static void test_param_tables(void) {
    pn_block b;
    pn_block_cfg c = {.C = 64};
    pn_block_setup(&b, &pn_block_gla, &c);  // H 4, K = 64·0.5/4 = 8, V = 16
    CHECK(b.n_params == 9, "gla: %d params", b.n_params);
    check_shape(&b, "q_proj.weight", 2, 32, 64, 0);
    check_shape(&b, "k_proj.weight", 2, 32, 64, 0);
    check_shape(&b, "v_proj.weight", 2, 64, 64, 0);
    check_shape(&b, "g_proj.weight", 2, 64, 64, 0);
    check_shape(&b, "gk_proj.0.weight", 2, 16, 64, 0);
    check_shape(&b, "gk_proj.1.weight", 2, 32, 16, 0);
    check_shape(&b, "gk_proj.1.bias", 1, 32, 0, 0);
    check_shape(&b, "g_norm_swish_gate.weight", 1, 16, 0, 0);
    check_shape(&b, "o_proj.weight", 2, 64, 64, 0);

    c = (pn_block_cfg){.C = 1024};  // fla's default: 8 heads, K 128, V 256
    pn_block_setup(&b, &pn_block_retnet, &c);
    CHECK(b.n_params == 6 && b.cfg.H == 8 && b.cfg.K == 128 && b.cfg.V == 256, "retnet C=1024: H %d K %d V %d",
          b.cfg.H, b.cfg.K, b.cfg.V);
    check_shape(&b, "q_proj.weight", 2, 1024, 1024, 0);
    check_shape(&b, "v_proj.weight", 2, 2048, 1024, 0);
    check_shape(&b, "g_proj.weight", 2, 2048, 1024, 0);
    check_shape(&b, "g_norm_swish_gate.weight", 1, 256, 0, 0);
    check_shape(&b, "o_proj.weight", 2, 1024, 2048, 0);

    c = (pn_block_cfg){.C = 256};  // E 512, P 64, H 8, G 1, N 128, W 4
    pn_block_setup(&b, &pn_block_mamba2, &c);
    CHECK(b.n_params == 8 && b.cfg.H == 8 && b.cfg.K == 64, "mamba2 C=256: H %d P %d", b.cfg.H, b.cfg.K);
    check_shape(&b, "in_proj.weight", 2, 2 * 512 + 2 * 128 + 8, 256, 0);
    check_shape(&b, "conv1d.weight", 3, 512 + 256, 1, 4);
    check_shape(&b, "conv1d.bias", 1, 768, 0, 0);
    check_shape(&b, "dt_bias", 1, 8, 0, 0);
    check_shape(&b, "A_log", 1, 8, 0, 0);
    check_shape(&b, "D", 1, 8, 0, 0);
    check_shape(&b, "norm.weight", 1, 512, 0, 0);
    check_shape(&b, "out_proj.weight", 2, 256, 512, 0);
    pn_state_size ss = b.type->state_size(&b.cfg, 1000);
    CHECK(ss.kv == 0 && ss.rec == 8 * 128 * 64 && ss.conv == 3 * 768, "mamba2 state %lld %lld %lld",
          (long long)ss.kv, (long long)ss.rec, (long long)ss.conv);
    // A_log = log A with A ~ U(1, 16); dt_bias = softplus⁻¹(dt) with dt in [1e-3, 0.1]
    for (int i = 0; i < b.n_params; i++) b.params[i] = pn_malloc((size_t)pn_param_numel(&b.spec[i]) * sizeof(float));
    pn_block_init_params(&b, 5);
    int ia = pn_block_param_index(&b, "A_log"), id = pn_block_param_index(&b, "dt_bias");
    int idd = pn_block_param_index(&b, "D");
    for (int h = 0; h < 8; h++) {
        double A = exp(b.params[ia][h]), dt = log1p(exp(b.params[id][h]));
        CHECK(A >= 1.0 - 1e-5 && A <= 16.0 + 1e-4, "mamba2 A %g outside [1, 16]", A);
        CHECK(dt >= 1e-3 * (1 - 1e-4) && dt <= 0.1 * (1 + 1e-4), "mamba2 dt %g outside [1e-3, 0.1]", dt);
        CHECK(b.params[idd][h] == 1.0f, "mamba2 D %g != 1", b.params[idd][h]);
    }
    for (int i = 0; i < b.n_params; i++) free(b.params[i]);

    c = (pn_block_cfg){.C = 256, .n_groups = 2, .d_state = 16, .K = 16};  // H 32
    pn_block_setup(&b, &pn_block_mamba2, &c);
    check_shape(&b, "in_proj.weight", 2, 2 * 512 + 2 * 2 * 16 + 32, 256, 0);
    check_shape(&b, "conv1d.weight", 3, 512 + 64, 1, 4);

    // rwkv7 at fla's default width: K 64, H 16; LoRA sizes by fla's formula with
    // Python's round-half-to-even: 2.5·32/32 = 2.5 → 2 → 64; 1.7 → 2 → 64; 5·32/32 = 5 → 160
    c = (pn_block_cfg){.C = 1024};
    pn_block_setup(&b, &pn_block_rwkv7, &c);
    CHECK(b.cfg.H == 16 && b.cfg.K == 64, "rwkv7 C=1024: H %d K %d", b.cfg.H, b.cfg.K);
    CHECK(b.cfg.lora_w == 64 && b.cfg.lora_a == 64 && b.cfg.lora_v == 64 && b.cfg.lora_g == 160,
          "rwkv7 C=1024 LoRA sizes w %d a %d v %d g %d", b.cfg.lora_w, b.cfg.lora_a, b.cfg.lora_v, b.cfg.lora_g);
    CHECK(b.n_params == 26, "rwkv7 (not first): %d params", b.n_params);
    check_shape(&b, "x_r", 3, 1, 1, 1024);
    check_shape(&b, "k_k", 1, 1024, 0, 0);
    check_shape(&b, "r_k", 2, 16, 64, 0);
    check_shape(&b, "w_lora.lora.0.weight", 2, 64, 1024, 0);
    check_shape(&b, "w_lora.lora.2.weight", 2, 1024, 64, 0);
    check_shape(&b, "w_lora.lora.2.bias", 1, 1024, 0, 0);
    check_shape(&b, "v_lora.lora.2.bias", 1, 1024, 0, 0);
    check_shape(&b, "g_lora.lora.2.weight", 2, 1024, 160, 0);
    CHECK(pn_block_param_index(&b, "g_lora.lora.2.bias") < 0, "rwkv7: g_lora has no bias");
    check_shape(&b, "g_norm.weight", 1, 1024, 0, 0);
    check_shape(&b, "g_norm.bias", 1, 1024, 0, 0);
    c = (pn_block_cfg){.C = 2048, .first_rwkv = 1};  // 2.5·45.25/32 = 3.54 → 128; 1.7·… = 2.40 → 64; 5·… = 7.07 → 224
    pn_block_setup(&b, &pn_block_rwkv7, &c);
    CHECK(b.cfg.lora_w == 128 && b.cfg.lora_v == 64 && b.cfg.lora_g == 224, "rwkv7 C=2048 LoRA w %d v %d g %d",
          b.cfg.lora_w, b.cfg.lora_v, b.cfg.lora_g);
    CHECK(b.n_params == 23, "rwkv7 (first): %d params", b.n_params);
    // fla init: orthogonal projections (k_proj gain 0.1), zero o_proj and LoRA inputs
    c = (pn_block_cfg){.C = 64};
    pn_block_setup(&b, &pn_block_rwkv7, &c);
    for (int i = 0; i < b.n_params; i++) b.params[i] = pn_malloc((size_t)pn_param_numel(&b.spec[i]) * sizeof(float));
    pn_block_init_params(&b, 9);
    const float *wk = b.params[pn_block_param_index(&b, "k_proj.weight")];
    double worst = 0;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++) {
            double d = 0;
            for (int k = 0; k < 64; k++) d += (double)wk[i * 64 + k] * wk[j * 64 + k];
            worst = fmax(worst, fabs(d - (i == j ? 0.01 : 0.0)));
        }
    CHECK(worst < 1e-5, "rwkv7 k_proj not 0.1·orthogonal: |W Wᵀ − 0.01 I| max %.2e", worst);
    const float *wo = b.params[pn_block_param_index(&b, "o_proj.weight")];
    CHECK(wo[0] == 0.0f && wo[64 * 64 - 1] == 0.0f, "rwkv7 o_proj not zero");
    for (int i = 0; i < b.n_params; i++) free(b.params[i]);
}

int main(void) {
    test_param_tables();
    run_block(&pn_block_gla, (pn_block_cfg){.C = 32, .H = 2}, ref_gla, 101);
    run_block(&pn_block_retnet, (pn_block_cfg){.C = 32, .H = 2}, ref_retnet, 102);
    run_block(&pn_block_mamba2, (pn_block_cfg){.C = 16, .K = 8, .n_groups = 2, .d_state = 8}, ref_mamba2, 103);
    pn_block_cfg rw = {.C = 32, .K = 16, .lora_w = 8, .lora_a = 8, .lora_v = 8, .lora_g = 12};
    run_block(&pn_block_rwkv7, rw, ref_rwkv7_first, 104);
    test_rwkv7_chain(rw);
    return test_summary("test_blocks_zoo");
}
