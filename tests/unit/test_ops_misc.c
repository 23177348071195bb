// test_ops_misc.c — the small ops of the token mixers: gated RMSNorm, l2norm, group
// norm, static and dynamic causal convs, conv state roll, token shift.
//
// Gradients are checked against central finite differences of L = Σ y·dy (fp32
// forward, float64 sum) along random directions, one input at a time: the
// directional derivative Σ grad·u must match (L(x+εu) − L(x−εu)) / 2ε to 1e-3
// relative (relative to max(|Σ grad·u|, 0.1·‖grad‖), the latter guarding against a
// direction that happens to be nearly orthogonal to the gradient). Conventions
// (which tap multiplies the current token, what the state rows mean) are pinned by
// small hand-worked cases.
#include "core/rng.h"
#include "kernels/ops.h"
#include "test_util.h"

#define FD_MAX_IN 4

typedef struct fd_case fd_case;
struct fd_case {
    const char *op;
    int n_in;
    const char *name[FD_MAX_IN];
    float *in[FD_MAX_IN];
    float *grad[FD_MAX_IN];  // analytic gradients, filled by grads()
    size_t len[FD_MAX_IN];
    float *y, *dy;
    size_t ny;
    void (*fwd)(fd_case *c);    // writes c->y from the inputs
    void (*grads)(fd_case *c);  // adds into c->grad[] (zeroed by the harness)
    int G, D, N, B, T, W;       // shape parameters the closures read
    float *aux[4];              // extra buffers (saved stats, constant state)
};

static uint64_t g_stream = 1;

static float *rand_buf(size_t n, float scale) {
    float *p = pn_malloc(n * sizeof(float));
    pn_fill_normal(p, n, 0.0f, scale, 1234, g_stream++);
    return p;
}

static double fd_loss(fd_case *c) {
    c->fwd(c);
    double s = 0;
    for (size_t i = 0; i < c->ny; i++) s += (double)c->y[i] * c->dy[i];
    return s;
}

static void fd_check(fd_case *c, float eps, double tol) {
    for (int i = 0; i < c->n_in; i++) memset(c->grad[i], 0, c->len[i] * sizeof(float));
    c->fwd(c);
    c->grads(c);
    for (int i = 0; i < c->n_in; i++) {
        for (int rep = 0; rep < 2; rep++) {
            float *u = rand_buf(c->len[i], 1.0f);
            float *x0 = pn_malloc(c->len[i] * sizeof(float));
            memcpy(x0, c->in[i], c->len[i] * sizeof(float));
            double ana = 0;
            for (size_t j = 0; j < c->len[i]; j++) ana += (double)c->grad[i][j] * u[j];
            for (size_t j = 0; j < c->len[i]; j++) c->in[i][j] = x0[j] + eps * u[j];
            double lp = fd_loss(c);
            for (size_t j = 0; j < c->len[i]; j++) c->in[i][j] = x0[j] - eps * u[j];
            double lm = fd_loss(c);
            memcpy(c->in[i], x0, c->len[i] * sizeof(float));
            double num = (lp - lm) / (2.0 * eps);
            // A random direction can be nearly orthogonal to the gradient; the error is then
            // measured against the typical directional derivative ‖grad‖ (u has unit variance).
            double gn = 0;
            for (size_t j = 0; j < c->len[i]; j++) gn += (double)c->grad[i][j] * c->grad[i][j];
            double err = fabs(num - ana) / fmax(fmax(fabs(ana), 0.1 * sqrt(gn)), 1e-6);
            CHECK(err <= tol, "%s: d/d%s directional: analytic %.6g vs numeric %.6g (rel %.2e)", c->op, c->name[i],
                  ana, num, err);
            printf("  %-16s d/d%-6s rel err %.2e\n", c->op, c->name[i], err);
            free(u);
            free(x0);
        }
    }
}

static void fd_free(fd_case *c) {
    for (int i = 0; i < c->n_in; i++) free(c->in[i]), free(c->grad[i]);
    for (int i = 0; i < 4; i++) free(c->aux[i]);
    free(c->y);
    free(c->dy);
}

static void fd_add_input(fd_case *c, const char *name, size_t n, float scale) {
    c->name[c->n_in] = name;
    c->in[c->n_in] = rand_buf(n, scale);
    c->grad[c->n_in] = pn_calloc(n, sizeof(float));
    c->len[c->n_in] = n;
    c->n_in++;
}

static void fd_set_output(fd_case *c, size_t n) {
    c->ny = n;
    c->y = pn_calloc(n, sizeof(float));
    c->dy = rand_buf(n, 1.0f);
}

// ---------------------------------------------------------------- gated RMSNorm: in x, w, gate
static void rmsg_fwd(fd_case *c) {
    pn_rmsnorm_gated_fwd(c->y, c->aux[0], c->in[0], c->in[1], c->n_in > 2 ? c->in[2] : NULL, c->N, c->D, 1e-5f);
}
static void rmsg_grads(fd_case *c) {
    pn_rmsnorm_gated_bwd(c->grad[0], c->grad[1], c->n_in > 2 ? c->grad[2] : NULL, c->dy, c->in[0], c->in[1],
                         c->n_in > 2 ? c->in[2] : NULL, c->aux[0], c->N, c->D);
}
static void test_rmsnorm_gated(int gated) {
    fd_case c = {.op = gated ? "rmsnorm_gated" : "rmsnorm(gate0)", .N = 7, .D = 24, .fwd = rmsg_fwd,
                 .grads = rmsg_grads};
    fd_add_input(&c, "x", 7 * 24, 1.0f);
    fd_add_input(&c, "w", 24, 1.0f);
    if (gated) fd_add_input(&c, "gate", 7 * 24, 1.5f);
    c.aux[0] = pn_malloc(7 * sizeof(float));
    fd_set_output(&c, 7 * 24);
    fd_check(&c, 1e-3f, 1e-3);
    // y = x·rstd·w·silu(g) at one element, worked by hand in double.
    const float *x = c.in[0], *w = c.in[1];
    double ss = 0;
    for (int d = 0; d < 24; d++) ss += (double)x[d] * x[d];
    double expect = x[5] / sqrt(ss / 24 + 1e-5) * w[5];
    if (gated) expect *= c.in[2][5] / (1.0 + exp(-c.in[2][5]));
    c.fwd(&c);
    CHECK(fabs(c.y[5] - expect) <= 1e-5 * fabs(expect) + 1e-7, "%s: y[5] %g, expected %g", c.op, c.y[5], expect);
    fd_free(&c);
}

// ---------------------------------------------------------------- l2norm: in x
static void l2_fwd(fd_case *c) { pn_l2norm_fwd(c->y, c->aux[0], c->in[0], c->N, c->D, 1e-6f); }
static void l2_grads(fd_case *c) { pn_l2norm_bwd(c->grad[0], c->dy, c->y, c->aux[0], c->N, c->D); }
static void test_l2norm(void) {
    fd_case c = {.op = "l2norm", .N = 9, .D = 16, .fwd = l2_fwd, .grads = l2_grads};
    fd_add_input(&c, "x", 9 * 16, 1.0f);
    c.aux[0] = pn_malloc(9 * sizeof(float));
    fd_set_output(&c, 9 * 16);
    fd_check(&c, 1e-3f, 1e-3);
    // eps sits inside the square root: a row of 16 equal values 1e-4 has Σx² = 1.6e-7.
    float xs[16], ys[16], r;
    for (int d = 0; d < 16; d++) xs[d] = 1e-4f;
    pn_l2norm_fwd(ys, &r, xs, 1, 16, 1e-6f);
    double expect = 1e-4 / sqrt(16 * 1e-8 + 1e-6);
    CHECK(fabs(ys[3] - expect) <= 1e-5 * expect, "l2norm: eps convention: %g vs %g", ys[3], expect);
    fd_free(&c);
}

// ---------------------------------------------------------------- group norm: in x, w, b
static void gn_fwd(fd_case *c) {
    pn_groupnorm_fwd(c->y, c->aux[0], c->aux[1], c->in[0], c->in[1], c->in[2], c->N, c->G, c->D, 1e-5f);
}
static void gn_grads(fd_case *c) {
    pn_groupnorm_bwd(c->grad[0], c->grad[1], c->grad[2], c->dy, c->in[0], c->in[1], c->aux[0], c->aux[1], c->N, c->G,
                     c->D);
}
static void test_groupnorm(void) {
    int N = 6, G = 3, D = 8;
    fd_case c = {.op = "groupnorm", .N = N, .G = G, .D = D, .fwd = gn_fwd, .grads = gn_grads};
    fd_add_input(&c, "x", (size_t)N * G * D, 1.0f);
    fd_add_input(&c, "w", (size_t)G * D, 1.0f);
    fd_add_input(&c, "b", (size_t)G * D, 1.0f);
    for (size_t i = 0; i < c.len[0]; i++) c.in[0][i] += 0.7f;  // a nonzero mean to remove
    c.aux[0] = pn_malloc((size_t)N * G * sizeof(float));
    c.aux[1] = pn_malloc((size_t)N * G * sizeof(float));
    fd_set_output(&c, (size_t)N * G * D);
    fd_check(&c, 1e-3f, 1e-3);
    // Biased variance: group {1, 2, 3, 4, 5, 6, 7, 8} has mean 4.5 and variance 5.25.
    float xs[8] = {1, 2, 3, 4, 5, 6, 7, 8}, ys[8], mu, rs;
    pn_groupnorm_fwd(ys, &mu, &rs, xs, NULL, NULL, 1, 1, 8, 0.0f);
    CHECK(fabs(ys[7] - 3.5 / sqrt(5.25)) <= 1e-6, "groupnorm: biased variance: %g vs %g", ys[7], 3.5 / sqrt(5.25));
    fd_free(&c);
}

// ---------------------------------------------------------------- static conv: in x, w, bias; aux0 = x_prev
static void conv_fwd(fd_case *c) {
    pn_conv_causal_fwd(c->y, c->in[0], c->in[1], c->in[2], c->aux[0], c->B, c->T, c->D, c->W);
}
static void conv_grads(fd_case *c) {
    pn_conv_causal_bwd(c->grad[0], c->grad[1], c->grad[2], c->dy, c->in[0], c->in[1], c->aux[0], c->B, c->T, c->D,
                       c->W);
}
static void test_conv(void) {
    int B = 2, T = 11, D = 5, W = 4;
    fd_case c = {.op = "conv_causal", .B = B, .T = T, .D = D, .W = W, .fwd = conv_fwd, .grads = conv_grads};
    fd_add_input(&c, "x", (size_t)B * T * D, 1.0f);
    fd_add_input(&c, "w", (size_t)D * W, 0.5f);
    fd_add_input(&c, "bias", (size_t)D, 1.0f);
    c.aux[0] = rand_buf((size_t)B * (W - 1) * D, 1.0f);
    fd_set_output(&c, (size_t)B * T * D);
    fd_check(&c, 1e-2f, 1e-3);  // linear in every input: ε only sets the round-off

    // An impulse at t = 0 (no state) comes out as the taps in reverse: y_t = w[d, W−1−t].
    float x[6 * 1] = {1, 0, 0, 0, 0, 0}, w[4] = {0.1f, 0.2f, 0.3f, 0.4f}, y[6];
    pn_conv_causal_fwd(y, x, w, NULL, NULL, 1, 6, 1, 4);
    CHECK(y[0] == 0.4f && y[1] == 0.3f && y[2] == 0.2f && y[3] == 0.1f && y[4] == 0 && y[5] == 0,
          "conv: tap W-1 must multiply the current token: y = %g %g %g %g %g", y[0], y[1], y[2], y[3], y[4]);
    // State rows are the W−1 tokens before t = 0, oldest first: prev = {a, b, c} → y_0 = w0 a + w1 b + w2 c.
    float prev[3] = {1, 10, 100}, x0 = 0, y0;
    pn_conv_causal_fwd(&y0, &x0, w, NULL, prev, 1, 1, 1, 4);
    CHECK(fabsf(y0 - (0.1f + 2.0f + 30.0f)) < 1e-4f, "conv: x_prev order: y0 = %g, expected 32.1", y0);

    // Pieces with a rolled state equal the whole sequence (T1 = 2 < W−1 exercises the partial roll).
    float *yfull = pn_malloc((size_t)B * T * D * sizeof(float));
    pn_conv_causal_fwd(yfull, c.in[0], c.in[1], c.in[2], c.aux[0], B, T, D, W);
    float *st = pn_malloc((size_t)B * (W - 1) * D * sizeof(float));
    memcpy(st, c.aux[0], (size_t)B * (W - 1) * D * sizeof(float));
    int cuts[] = {0, 2, 3, 7, 11};
    double worst = 0;
    for (int p = 0; p + 1 < 5; p++) {
        int t0 = cuts[p], n = cuts[p + 1] - t0;
        float *xp = pn_malloc((size_t)B * n * D * sizeof(float)), *yp = pn_malloc((size_t)B * n * D * sizeof(float));
        for (int b = 0; b < B; b++)
            memcpy(xp + (size_t)b * n * D, c.in[0] + ((size_t)b * T + t0) * D, (size_t)n * D * sizeof(float));
        pn_conv_causal_fwd(yp, xp, c.in[1], c.in[2], st, B, n, D, W);
        pn_conv_state_update(st, xp, B, n, D, W);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < n * D; i++)
                worst = fmax(worst, fabs(yp[(size_t)b * n * D + i] - yfull[((size_t)b * T + t0) * D + i]));
        free(xp);
        free(yp);
    }
    CHECK(worst == 0, "conv in pieces differs from whole: max abs %g", worst);
    free(yfull);
    free(st);
    fd_free(&c);
}

// ---------------------------------------------------------------- dynamic conv: in x, kern; aux0 = x_prev
static void dyn_fwd(fd_case *c) { pn_dynconv_causal_fwd(c->y, c->in[0], c->in[1], c->aux[0], c->B, c->T, c->D, c->W); }
static void dyn_grads(fd_case *c) {
    pn_dynconv_causal_bwd(c->grad[0], c->grad[1], c->dy, c->in[0], c->in[1], c->aux[0], c->B, c->T, c->D, c->W);
}
static void test_dynconv(void) {
    int B = 2, T = 9, D = 6, W = 3;
    fd_case c = {.op = "dynconv_causal", .B = B, .T = T, .D = D, .W = W, .fwd = dyn_fwd, .grads = dyn_grads};
    fd_add_input(&c, "x", (size_t)B * T * D, 1.0f);
    fd_add_input(&c, "kern", (size_t)B * T * D * W, 0.5f);
    c.aux[0] = rand_buf((size_t)B * (W - 1) * D, 1.0f);
    fd_set_output(&c, (size_t)B * T * D);
    fd_check(&c, 1e-2f, 1e-3);
    // Per-token kernels all equal to a static w reduce to the static conv.
    float *w = rand_buf((size_t)D * W, 1.0f);
    for (int bt = 0; bt < B * T; bt++) memcpy(c.in[1] + (size_t)bt * D * W, w, (size_t)D * W * sizeof(float));
    float *ys = pn_malloc((size_t)B * T * D * sizeof(float));
    pn_conv_causal_fwd(ys, c.in[0], w, NULL, c.aux[0], B, T, D, W);
    c.fwd(&c);
    double e = rel_err(c.y, ys, (size_t)B * T * D);
    CHECK(e <= 1e-6, "dynconv with constant kernels vs static conv: rel %.2e", e);
    free(w);
    free(ys);
    fd_free(&c);
}

static void test_conv_state_update(void) {
    // D = 1, W = 4: state holds the last 3 tokens, oldest first.
    float st[3] = {1, 2, 3}, x1[1] = {4}, x2[5] = {5, 6, 7, 8, 9};
    pn_conv_state_update(st, x1, 1, 1, 1, 4);
    CHECK(st[0] == 2 && st[1] == 3 && st[2] == 4, "state roll by 1: %g %g %g", st[0], st[1], st[2]);
    pn_conv_state_update(st, x2, 1, 5, 1, 4);
    CHECK(st[0] == 7 && st[1] == 8 && st[2] == 9, "state roll by 5: %g %g %g", st[0], st[1], st[2]);
    // Two sequences, two channels, T = 2 < W − 1 = 3.
    float s2[2 * 3 * 2] = {1, -1, 2, -2, 3, -3, 10, -10, 20, -20, 30, -30};
    float xb[2 * 2 * 2] = {4, -4, 5, -5, 40, -40, 50, -50};
    pn_conv_state_update(s2, xb, 2, 2, 2, 4);
    float want[12] = {3, -3, 4, -4, 5, -5, 30, -30, 40, -40, 50, -50};
    int ok = 1;
    for (int i = 0; i < 12; i++) ok &= s2[i] == want[i];
    CHECK(ok, "state roll with B = 2, D = 2, T = 2 keeps each sequence's own rows");
}

// ---------------------------------------------------------------- token shift: in x; aux0 = x_prev
static void shift_fwd(fd_case *c) { pn_token_shift_fwd(c->y, c->in[0], c->aux[0], c->B, c->T, c->D); }
static void shift_grads(fd_case *c) { pn_token_shift_bwd(c->grad[0], c->dy, c->B, c->T, c->D); }
static void test_token_shift(void) {
    int B = 2, T = 7, C = 5;
    fd_case c = {.op = "token_shift", .B = B, .T = T, .D = C, .fwd = shift_fwd, .grads = shift_grads};
    fd_add_input(&c, "x", (size_t)B * T * C, 1.0f);
    c.aux[0] = rand_buf((size_t)B * C, 1.0f);
    fd_set_output(&c, (size_t)B * T * C);
    fd_check(&c, 1e-2f, 1e-3);
    c.fwd(&c);
    // δ_0 = x_prev − x_0 for sequence 1, δ_3 = x_2 − x_3.
    CHECK(c.y[(size_t)T * C + 2] == c.aux[0][C + 2] - c.in[0][(size_t)T * C + 2], "token shift uses x_prev at t = 0");
    CHECK(c.y[3 * C + 1] == c.in[0][2 * C + 1] - c.in[0][3 * C + 1], "token shift: delta_t = x_{t-1} - x_t");
    float xs[2] = {3, 5}, ds[2];
    pn_token_shift_fwd(ds, xs, NULL, 1, 2, 1);
    CHECK(ds[0] == -3 && ds[1] == -2, "token shift without state: x_{-1} = 0 (got %g %g)", ds[0], ds[1]);
    fd_free(&c);
}

int main(void) {
    test_rmsnorm_gated(1);
    test_rmsnorm_gated(0);
    test_l2norm();
    test_groupnorm();
    test_conv();
    test_dynconv();
    test_conv_state_update();
    test_token_shift();
    return test_summary("test_ops_misc");
}
