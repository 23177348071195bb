// test_blocks_generic.c — what every registered block must satisfy, through the interface only.
//
// For each type in the registry (blocks added later are covered automatically),
// on a small random configuration (C = 32, B = 2, T in 13..20, two heads, swa window
// 5 < T so its ring buffer wraps) with every parameter pushed away from its init
// (zero-initialised gates such as JetBlock's generator would otherwise hide paths):
//  (a) backward: for the input and for EVERY parameter, the directional derivative
//      Σ grad·u along two random unit directions equals a five-point finite difference
//      of L = Σ y·dy (fp32 forward, float64 sum) to 1e-2 relative plus the finite
//      difference's own error bar (see fd_dir); a wrong gradient is off by O(1);
//  (b) prefill of 0 tokens then T one-token decode steps equals forward (1e-5 rel);
//  (c) prefill(T1) then prefill(T − T1) at pos T1, and prefill(T) at once, equal
//      forward (1e-5 rel).
// The linear ops run chunked with chunk 8, so T spans several chunks. rwkv7 runs
// twice: as the first rwkv7 layer, and as a later one reading a random v_first
// (whose gradient dv_first is checked too).
#include "blocks/block.h"
#include "blocks/block_util.h"
#include "core/rng.h"
#include "test_util.h"

#define TB_B 2
#define TB_CHUNK 8

typedef struct {
    const pn_block_type *type;
    pn_block b;
    int B, T, C;
    float *x, *dy, *y, *dx, *act, *scratch;
    float *v_first, *dv_first;  // rwkv7 later-layer variant only
    pn_block_ctx ctx;
} tcase;

static uint64_t g_stream = 100;

static float *randn(size_t n, float s) {
    float *p = pn_malloc(n * sizeof(float));
    pn_fill_normal(p, n, 0.0f, s, 777, g_stream++);
    return p;
}

// rwkv7 rewrites ctx->v_first in its first layer; every call starts from the variant's ctx.
static void ctx_reset(tcase *c) {
    c->ctx.v_first = c->v_first;
    c->ctx.dv_first = c->dv_first;
}

static double loss(tcase *c) {
    ctx_reset(c);
    c->type->forward(&c->b, c->y, c->x, c->B, c->T, c->act, c->scratch, &c->ctx);
    size_t n = (size_t)c->B * c->T * c->C;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)c->y[i] * c->dy[i];
    return s;
}

// Five-point central difference of L along u with step eps (truncation O(ε⁴)).
static double fd_at(tcase *c, float *v, const float *v0, const float *u, size_t n, double eps) {
    double f[4];
    const double steps[4] = {2.0, 1.0, -1.0, -2.0};
    for (int k = 0; k < 4; k++) {
        for (size_t j = 0; j < n; j++) v[j] = v0[j] + (float)(steps[k] * eps) * u[j];
        f[k] = loss(c);
    }
    memcpy(v, v0, n * sizeof(float));
    return (8.0 * (f[1] - f[2]) - (f[0] - f[3])) / (12.0 * eps);
}

// Directional check along unit-norm random directions. fp32 forward noise (~1e-6 in L)
// spoils small steps and the blocks' nonlinearity spoils large ones, and where the
// balance lies differs by block and parameter. So the numeric derivative is taken on a
// ladder ε = 0.1 · 3^−k and the pair of neighbouring steps that agree best gives the
// estimate — chosen from the finite differences alone, never from the analytic value.
static double fd_dir(tcase *c, float *v, const float *g, size_t n, const char *what) {
    double worst = 0;
    for (int rep = 0; rep < 2; rep++) {
        float *u = randn(n, 1.0f), *v0 = pn_malloc(n * sizeof(float));
        memcpy(v0, v, n * sizeof(float));
        double un = 0;
        for (size_t j = 0; j < n; j++) un += (double)u[j] * u[j];
        for (size_t j = 0; j < n; j++) u[j] = (float)(u[j] / sqrt(un));
        double ana = 0, gn = 0;
        for (size_t j = 0; j < n; j++) ana += (double)g[j] * u[j], gn += (double)g[j] * g[j];
        enum { NE = 5 };
        double num[NE], eps[NE];
        for (int k = 0; k < NE; k++) {
            eps[k] = 0.1 * pow(3.0, -k);
            num[k] = fd_at(c, v, v0, u, n, eps[k]);
        }
        int best = 0;
        for (int k = 1; k + 1 < NE; k++)
            if (fabs(num[k + 1] - num[k]) < fabs(num[best + 1] - num[best])) best = k;
        double est = 0.5 * (num[best] + num[best + 1]);
        // Typical |D| for a unit random direction is ‖g‖/√n; a direction nearly orthogonal
        // to the gradient is measured against a tenth of that instead of its own tiny |D|.
        double scale = fmax(fmax(fabs(ana), 0.1 * sqrt(gn / (double)n)), 1e-7);
        double err = fabs(est - ana) / scale;
        // The spread of the two chosen estimates is the finite difference's own error bar;
        // it is added to the 1e-2 tolerance (it is far below it except for parameters whose
        // whole effect on L is near fp32 resolution), and must itself stay small.
        double spread = fabs(num[best + 1] - num[best]) / scale;
        CHECK(err <= 1e-2 + 3 * spread && spread <= 2e-2,
              "%s%s: d/d%s: analytic %.6g, numeric %.6g (rel %.2e, FD spread %.2e, eps %.2g, |grad| %.3g)",
              c->type->name, c->v_first ? "(later layer)" : "", what, ana, est, err, spread, eps[best], sqrt(gn));
        worst = fmax(worst, err);
        if (getenv("TB_VERBOSE"))
            printf("   %s %-45s D %.4g num %.4g rel %.2e eps %.2g spread %.2e\n", c->type->name, what, ana, est, err,
                   eps[best], spread);
        free(u);
        free(v0);
    }
    return worst;
}

static double check_grads(tcase *c) {
    size_t n = (size_t)c->B * c->T * c->C;
    for (int i = 0; i < c->b.n_params; i++) memset(c->b.grads[i], 0, (size_t)pn_param_numel(&c->b.spec[i]) * 4);
    memset(c->dx, 0, n * sizeof(float));
    if (c->dv_first) memset(c->dv_first, 0, n * sizeof(float));
    loss(c);
    ctx_reset(c);
    c->type->backward(&c->b, c->dx, c->dy, c->x, c->B, c->T, c->act, c->scratch, &c->ctx);
    // The FD passes below rerun forward into act; backward's results are already taken.
    float *dx = pn_malloc(n * sizeof(float));
    memcpy(dx, c->dx, n * sizeof(float));
    double worst = fd_dir(c, c->x, dx, n, "x");
    if (c->v_first) {
        float *dvf = pn_malloc(n * sizeof(float));
        memcpy(dvf, c->dv_first, n * sizeof(float));
        worst = fmax(worst, fd_dir(c, c->v_first, dvf, n, "v_first"));
        free(dvf);
    }
    for (int i = 0; i < c->b.n_params; i++) {
        size_t np = (size_t)pn_param_numel(&c->b.spec[i]);
        worst = fmax(worst, fd_dir(c, c->b.params[i], c->b.grads[i], np, c->b.spec[i].name));
    }
    free(dx);
    return worst;
}

// Rows [t0, t0+n) of a (B, T, C) buffer as a contiguous (B, n, C) one.
static void rows_get(float *dst, const float *src, int B, int T, int C, int t0, int n) {
    for (int b = 0; b < B; b++) memcpy(dst + (size_t)b * n * C, src + ((size_t)b * T + t0) * C, (size_t)n * C * 4);
}
static void rows_put(float *dst, const float *src, int B, int T, int C, int t0, int n) {
    for (int b = 0; b < B; b++) memcpy(dst + ((size_t)b * T + t0) * C, src + (size_t)b * n * C, (size_t)n * C * 4);
}

// Prefill x[t0, t0+n) at position t0 into yall's rows.
static void prefill_rows(tcase *c, float *state, float *yall, int t0, int n) {
    size_t m = (size_t)c->B * (n > 0 ? n : 1) * c->C;
    float *xp = pn_malloc(m * 4), *yp = pn_malloc(m * 4), *vf = c->v_first ? pn_malloc(m * 4) : NULL;
    rows_get(xp, c->x, c->B, c->T, c->C, t0, n);
    ctx_reset(c);
    if (vf) {
        rows_get(vf, c->v_first, c->B, c->T, c->C, t0, n);
        c->ctx.v_first = vf;
        c->ctx.dv_first = NULL;
    }
    c->type->prefill(&c->b, yp, xp, c->B, n, state, t0, c->T, c->scratch, &c->ctx);
    rows_put(yall, yp, c->B, c->T, c->C, t0, n);
    free(xp), free(yp), free(vf);
}

static void check_stateful(tcase *c, double *e_dec, double *e_pre) {
    size_t n = (size_t)c->B * c->T * c->C;
    float *y_fwd = pn_malloc(n * 4), *y_dec = pn_malloc(n * 4), *y_pre = pn_malloc(n * 4), *y_all = pn_malloc(n * 4);
    loss(c);
    memcpy(y_fwd, c->y, n * 4);
    size_t sf = (size_t)pn_block_state_floats(&c->b, c->T) * c->B;
    float *st = pn_calloc(sf ? sf : 1, 4);

    // (b) prefill 0 tokens, then one token at a time.
    prefill_rows(c, st, y_dec, 0, 0);
    float *xt = pn_malloc((size_t)c->B * c->C * 4), *yt = pn_malloc((size_t)c->B * c->C * 4);
    float *vt = pn_malloc((size_t)c->B * c->C * 4);
    for (int t = 0; t < c->T; t++) {
        rows_get(xt, c->x, c->B, c->T, c->C, t, 1);
        ctx_reset(c);
        if (c->v_first) {
            rows_get(vt, c->v_first, c->B, c->T, c->C, t, 1);
            c->ctx.v_first = vt;
            c->ctx.dv_first = NULL;
        }
        c->type->decode(&c->b, yt, xt, c->B, st, t, c->T, c->scratch, &c->ctx);
        rows_put(y_dec, yt, c->B, c->T, c->C, t, 1);
    }
    *e_dec = rel_err(y_dec, y_fwd, n);
    CHECK(*e_dec <= 1e-5, "%s%s: decode steps vs forward: rel %.3e", c->type->name, c->v_first ? "(later layer)" : "",
          *e_dec);

    // (c) two pieces, and all at once, from fresh states.
    int T1 = c->T / 2 - 1;
    memset(st, 0, (sf ? sf : 1) * 4);
    prefill_rows(c, st, y_pre, 0, T1);
    prefill_rows(c, st, y_pre, T1, c->T - T1);
    double e1 = rel_err(y_pre, y_fwd, n);
    memset(st, 0, (sf ? sf : 1) * 4);
    prefill_rows(c, st, y_all, 0, c->T);
    double e2 = rel_err(y_all, y_fwd, n);
    CHECK(e1 <= 1e-5, "%s%s: prefill(%d) + prefill(%d) vs forward: rel %.3e", c->type->name,
          c->v_first ? "(later layer)" : "", T1, c->T - T1, e1);
    CHECK(e2 <= 1e-5, "%s%s: prefill(%d) vs forward: rel %.3e", c->type->name, c->v_first ? "(later layer)" : "",
          c->T, e2);
    *e_pre = fmax(e1, e2);
    free(y_fwd), free(y_dec), free(y_pre), free(y_all), free(st), free(xt), free(yt), free(vt);
}

static pn_block_cfg small_cfg(const pn_block_type *t) {
    pn_block_cfg c;
    memset(&c, 0, sizeof c);
    c.C = 32;
    c.H = 2;
    c.H_kv = 1;
    c.K = 16;
    c.V = 16;
    c.conv_size = 4;
    c.window = 5;
    c.gen_reduction = 4;
    c.qkv_bias = 1;
    c.qk_norm = 1;
    c.n_groups = 1;
    c.d_state = 8;
    c.expand = 2;
    c.lora_w = c.lora_a = c.lora_v = c.lora_g = 8;
    if (strcmp(t->name, "mamba2") == 0) {  // head dim is derived: H·P = expand·C
        c.H = 4;
        c.K = 0;
    }
    return c;
}

static void run_case(const pn_block_type *t, int later_rwkv, int idx) {
    tcase c;
    memset(&c, 0, sizeof c);
    c.type = t;
    pn_block_cfg cfg = small_cfg(t);
    cfg.first_rwkv = !later_rwkv;
    pn_block_setup(&c.b, t, &cfg);
    for (int i = 0; i < c.b.n_params; i++) {
        size_t np = (size_t)pn_param_numel(&c.b.spec[i]);
        c.b.params[i] = pn_malloc(np * 4);
        c.b.grads[i] = pn_calloc(np, 4);
    }
    pn_block_init_params(&c.b, 42);
    for (int i = 0; i < c.b.n_params; i++) {  // away from init: zero gates, unit norms, ...
        size_t np = (size_t)pn_param_numel(&c.b.spec[i]);
        float *nz = randn(np, 0.1f);
        for (size_t j = 0; j < np; j++) c.b.params[i][j] += nz[j];
        free(nz);
    }
    c.B = TB_B;
    c.T = 13 + (idx * 5 + later_rwkv * 3) % 8;  // 13..20
    c.C = c.b.cfg.C;
    size_t n = (size_t)c.B * c.T * c.C;
    c.x = randn(n, 1.0f);
    c.dy = randn(n, 1.0f);
    c.y = pn_malloc(n * 4);
    c.dx = pn_malloc(n * 4);
    if (later_rwkv) {
        c.v_first = randn(n, 1.0f);
        c.dv_first = pn_calloc(n, 4);
    }
    c.act = pn_malloc(PN_MAX(t->act_floats(&c.b.cfg, c.B, c.T), (size_t)1) * 4);
    c.scratch = pn_malloc(PN_MAX(t->scratch_floats(&c.b.cfg, c.B, c.T), (size_t)1) * 4);

    double e_fd = check_grads(&c), e_dec = 0, e_pre = 0;
    check_stateful(&c, &e_dec, &e_pre);
    CHECK(t->flops_per_token(&c.b.cfg, c.T) > 0, "%s: flops_per_token must be positive", t->name);
    CHECK(pn_block_state_floats(&c.b, c.T) > 0, "%s: decode state must be nonempty", t->name);
    printf("%-15s%s T=%d: %2d params, worst FD rel %.2e, decode rel %.2e, prefill rel %.2e\n", t->name,
           later_rwkv ? "(v_first)" : "         ", c.T, c.b.n_params, e_fd, e_dec, e_pre);

    for (int i = 0; i < c.b.n_params; i++) free(c.b.params[i]), free(c.b.grads[i]);
    free(c.x), free(c.dy), free(c.y), free(c.dx), free(c.act), free(c.scratch), free(c.v_first), free(c.dv_first);
}

int main(void) {
    pn_blocks_set_chunk(TB_CHUNK);
    int n = pn_block_type_count();
    printf("%d registered block types\n", n);
    for (int i = 0; i < n; i++) {
        const pn_block_type *t = pn_block_type_at(i);
        run_case(t, 0, i);
        if (strcmp(t->name, "rwkv7") == 0) run_case(t, 1, i);
    }
    return test_summary("test_blocks_generic");
}
