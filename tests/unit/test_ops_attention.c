// test_ops_attention.c — attention, RoPE, RMSNorm and cross-entropy ops.
//
// Forward of attention is compared with a naive double-precision loop (causal,
// sliding window, GQA 4:2 and 4:1, T across the kernel's 64-row tiles). Every
// backward is checked against finite differences of its own forward along random
// directions: central differences with Richardson extrapolation, the objective
// sum(y · w) accumulated in float64. RoPE is linear, so its backward must be the
// exact adjoint of its forward; chunks at an offset pos0 must equal the matching
// rows of one long call (what prefill/decode rely on).
#include "test_util.h"
#include "core/rng.h"
#include "kernels/ops.h"

#define FWD_TOL 1e-5  // fp32 op vs float64 loop
#define FD_TOL 1e-3   // fp32 analytic gradient vs finite differences of an fp32 forward
#define FD64_TOL 1e-4 // fp32 analytic gradient vs finite differences of the float64 loop

static float *randn(size_t n, uint64_t stream, float std) {
    float *x = pn_malloc(n * sizeof(float));
    pn_fill_normal(x, n, 0.0f, std, 42, stream);
    return x;
}

static float *zeros(size_t n) { return pn_calloc(n, sizeof(float)); }

static double dot64(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// The objective as a function of the current inputs (read through ctx).
typedef double (*objective)(void *ctx);

// Directional derivative of f along u at x (x restored afterwards), and the
// analytic one <grad, u> over the SAME perturbations: x ± h·u is rounded to fp32,
// so both sides use the perturbation actually applied, not h·u.
static void fd_dir(objective f, void *ctx, float *x, const float *u, const float *grad, size_t n, float h,
                   double *fd_out, double *an_out) {
    float *x0 = pn_malloc(n * sizeof(float)), *xp = pn_malloc(n * sizeof(float));
    memcpy(x0, x, n * sizeof(float));
    double d[2], a[2];
    for (int k = 0; k < 2; k++) {
        float hk = k == 0 ? h : h / 2;
        for (size_t i = 0; i < n; i++) xp[i] = x[i] = x0[i] + hk * u[i];
        double fp = f(ctx);
        for (size_t i = 0; i < n; i++) x[i] = x0[i] - hk * u[i];
        double fm = f(ctx);
        double an = 0;
        for (size_t i = 0; i < n; i++) an += (double)grad[i] * ((double)xp[i] - (double)x[i]);
        d[k] = (fp - fm) / (2.0 * hk);
        a[k] = an / (2.0 * hk);
    }
    memcpy(x, x0, n * sizeof(float));
    free(x0);
    free(xp);
    *fd_out = (4.0 * d[1] - d[0]) / 3.0;  // Richardson: O(h⁴)
    *an_out = (4.0 * a[1] - a[0]) / 3.0;
}

static double g_worst_fd = 0, g_worst_fd64 = 0, g_worst_fwd = 0;

// Compares <grad, u> with finite differences for 3 random directions.
// The denominator has a floor so that an exactly-zero derivative (a single
// token's softmax) compares absolutely.
static void check_grad_tol(const char *what, objective f, void *ctx, float *x, const float *grad, size_t n, float h,
                           uint64_t stream, double tol) {
    for (int r = 0; r < 3; r++) {
        float *u = randn(n, stream * 10 + (uint64_t)r, 1.0f);
        double fd, an;
        fd_dir(f, ctx, x, u, grad, n, h, &fd, &an);
        double e = fabs(fd - an) / fmax(fabs(fd), 1e-3);
        if (tol == FD64_TOL)
            g_worst_fd64 = fmax(g_worst_fd64, e);
        else
            g_worst_fd = fmax(g_worst_fd, e);
        CHECK(e <= tol, "%s: direction %d: analytic %.8e vs finite differences %.8e (rel %.2e)", what, r, an, fd, e);
        free(u);
    }
}

static void check_grad(const char *what, objective f, void *ctx, float *x, const float *grad, size_t n, float h,
                       uint64_t stream) {
    check_grad_tol(what, f, ctx, x, grad, n, h, stream, FD_TOL);
}

// ---------------------------------------------------------------- attention

typedef struct {
    int B, T, Hq, Hkv, D, window;
    float scale;
    float *q, *k, *v, *o, *lse, *w;
} att_case;

static double att_objective(void *p) {
    att_case *c = p;
    pn_attention_fwd(c->o, c->lse, c->q, c->k, c->v, c->B, c->T, c->Hq, c->Hkv, c->D, c->window, c->scale);
    return dot64(c->o, c->w, (size_t)c->B * c->T * c->Hq * c->D);
}

static void att_naive(double *o, const att_case *c);

// The same objective through the float64 loop: its finite differences have no
// fp32 noise, so the analytic gradient is held to FD64_TOL.
static double att_objective64(void *p) {
    att_case *c = p;
    const size_t n = (size_t)c->B * c->T * c->Hq * c->D;
    double *o = pn_malloc(n * sizeof(double)), f = 0;
    att_naive(o, c);
    for (size_t i = 0; i < n; i++) f += o[i] * c->w[i];
    free(o);
    return f;
}

static void att_naive(double *o, const att_case *c) {
    const int g = c->Hq / c->Hkv;
    double *s = pn_malloc((size_t)c->T * sizeof(double));
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->Hq; h++)
            for (int i = 0; i < c->T; i++) {
                int lo = c->window > 0 ? PN_MAX(0, i - c->window + 1) : 0;
                const float *qi = c->q + (((size_t)b * c->T + i) * c->Hq + h) * c->D;
                double m = -INFINITY;
                for (int j = lo; j <= i; j++) {
                    const float *kj = c->k + (((size_t)b * c->T + j) * c->Hkv + h / g) * c->D;
                    double acc = 0;
                    for (int d = 0; d < c->D; d++) acc += (double)qi[d] * kj[d];
                    s[j] = acc * c->scale;
                    m = fmax(m, s[j]);
                }
                double z = 0;
                for (int j = lo; j <= i; j++) z += exp(s[j] - m);
                double *oi = o + (((size_t)b * c->T + i) * c->Hq + h) * c->D;
                for (int d = 0; d < c->D; d++) oi[d] = 0;
                for (int j = lo; j <= i; j++) {
                    const float *vj = c->v + (((size_t)b * c->T + j) * c->Hkv + h / g) * c->D;
                    double p = exp(s[j] - m) / z;
                    for (int d = 0; d < c->D; d++) oi[d] += p * vj[d];
                }
            }
    free(s);
}

static void test_attention(int B, int T, int Hq, int Hkv, int D, int window, int do_fd) {
    att_case c = {B, T, Hq, Hkv, D, window, 1.0f / sqrtf((float)D)};
    const size_t nq = (size_t)B * T * Hq * D, nk = (size_t)B * T * Hkv * D;
    uint64_t s0 = (uint64_t)(T * 131 + Hq * 17 + Hkv * 7 + window);
    c.q = randn(nq, s0 + 1, 1.0f);
    c.k = randn(nk, s0 + 2, 1.0f);
    c.v = randn(nk, s0 + 3, 1.0f);
    c.w = randn(nq, s0 + 4, 1.0f);
    c.o = zeros(nq);
    c.lse = zeros((size_t)B * Hq * T);
    char what[128];
    snprintf(what, sizeof what, "attention B%d T%d Hq%d Hkv%d D%d window %d", B, T, Hq, Hkv, D, window);

    att_objective(&c);
    double *ref = pn_malloc(nq * sizeof(double));
    att_naive(ref, &c);
    double num = 0, den = 0;
    for (size_t i = 0; i < nq; i++) {
        num += (c.o[i] - ref[i]) * (c.o[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    double e = sqrt(num / den);
    g_worst_fwd = fmax(g_worst_fwd, e);
    CHECK(e <= FWD_TOL, "%s: forward vs float64 loop rel err %.2e", what, e);

    if (do_fd) {
        float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
        att_objective(&c);
        pn_attention_bwd(dq, dk, dv, c.w, c.q, c.k, c.v, c.o, c.lse, B, T, Hq, Hkv, D, window, c.scale);
        char w2[160];
        snprintf(w2, sizeof w2, "%s dq", what);
        check_grad_tol(w2, att_objective64, &c, c.q, dq, nq, 1e-2f, s0 + 5, FD64_TOL);
        snprintf(w2, sizeof w2, "%s dk", what);
        check_grad_tol(w2, att_objective64, &c, c.k, dk, nk, 1e-2f, s0 + 6, FD64_TOL);
        snprintf(w2, sizeof w2, "%s dv", what);
        check_grad_tol(w2, att_objective64, &c, c.v, dv, nk, 1e-2f, s0 + 7, FD64_TOL);
        // ... and the fp32 op's own finite differences along one more direction each.
        snprintf(w2, sizeof w2, "%s dq (fp32 forward)", what);
        check_grad(w2, att_objective, &c, c.q, dq, nq, 1e-2f, s0 + 8);
        snprintf(w2, sizeof w2, "%s dv (fp32 forward)", what);
        check_grad(w2, att_objective, &c, c.v, dv, nk, 1e-2f, s0 + 9);
        // Backward adds: a second call doubles every gradient.
        float *dq2 = zeros(nq);
        memcpy(dq2, dq, nq * sizeof(float));
        att_objective(&c);  // o, lse of the unperturbed inputs again
        pn_attention_bwd(dq2, NULL, NULL, c.w, c.q, c.k, c.v, c.o, c.lse, B, T, Hq, Hkv, D, window, c.scale);
        for (size_t i = 0; i < nq; i++) dq[i] *= 2;
        CHECK(rel_err(dq2, dq, nq) < 1e-6, "%s: backward must add into dq", what);
        free(dq);
        free(dk);
        free(dv);
        free(dq2);
    }
    free(ref);
    free(c.q);
    free(c.k);
    free(c.v);
    free(c.w);
    free(c.o);
    free(c.lse);
}

// ---------------------------------------------------------------- rope

static void test_rope(void) {
    const int B = 2, T = 37, H = 3, D = 16;
    const size_t n = (size_t)B * T * H * D;
    float *x = randn(n, 900, 1.0f), *y = randn(n, 901, 1.0f);
    float *rx = pn_malloc(n * sizeof(float)), *ry = pn_malloc(n * sizeof(float));
    memcpy(rx, x, n * sizeof(float));
    memcpy(ry, y, n * sizeof(float));
    pn_rope_fwd(rx, B, T, H, D, 5, 10000.0f);
    pn_rope_bwd(ry, B, T, H, D, 5, 10000.0f);
    // <R x, y> = <x, Rᵀ y>
    double a = dot64(rx, y, n), b = dot64(x, ry, n);
    CHECK(fabs(a - b) <= 1e-5 * fabs(a), "rope adjoint: %.9e vs %.9e", a, b);
    // rotation preserves norms; Rᵀ R = I
    double nx = dot64(x, x, n), nrx = dot64(rx, rx, n);
    CHECK(fabs(nx - nrx) <= 1e-5 * nx, "rope norm %.9e vs %.9e", nx, nrx);
    pn_rope_bwd(rx, B, T, H, D, 5, 10000.0f);
    CHECK(rel_err(rx, x, n) < 1e-6, "rope bwd(fwd(x)) = x: %.2e", rel_err(rx, x, n));
    // position 0 is the identity
    memcpy(rx, x, n * sizeof(float));
    pn_rope_fwd(rx, 1, 1, H, D, 0, 10000.0f);
    CHECK(rel_err(rx, x, (size_t)H * D) == 0.0, "rope at position 0 is the identity");
    // chunk at offset pos0 == the same rows of one long call (B = 1)
    const size_t row = (size_t)H * D;
    memcpy(rx, x, (size_t)T * row * sizeof(float));
    pn_rope_fwd(rx, 1, T, H, D, 3, 500000.0f);
    memcpy(ry, x + 20 * row, (size_t)(T - 20) * row * sizeof(float));
    pn_rope_fwd(ry, 1, T - 20, H, D, 23, 500000.0f);
    CHECK(rel_err(ry, rx + 20 * row, (size_t)(T - 20) * row) == 0.0, "rope chunk at pos0 matches");
    // the angle of pair i at position p is p · theta^(-2i/D): check one pair against float64
    float e[16] = {0};
    e[1] = 1.0f;  // x1 of pair 1
    pn_rope_fwd(e, 1, 1, 1, 16, 7, 10000.0f);
    double ang = 7.0 * pow(10000.0, -2.0 / 16.0);
    CHECK(fabs(e[1] - cos(ang)) < 1e-6 && fabs(e[9] - sin(ang)) < 1e-6, "rope pair angle: (%f, %f) vs (%f, %f)",
          e[1], e[9], cos(ang), sin(ang));
    free(x);
    free(y);
    free(rx);
    free(ry);
}

// ---------------------------------------------------------------- rmsnorm

typedef struct {
    int64_t N;
    int D;
    float *x, *w, *y, *rstd, *g;
} norm_case;

static double norm_objective(void *p) {
    norm_case *c = p;
    pn_rmsnorm_fwd(c->y, c->rstd, c->x, c->w, c->N, c->D, 1e-6f);
    return dot64(c->y, c->g, (size_t)c->N * c->D);
}

static void test_rmsnorm(void) {
    norm_case c = {24, 40};
    const size_t n = (size_t)c.N * c.D;
    c.x = randn(n, 300, 1.0f);
    c.w = randn((size_t)c.D, 301, 1.0f);
    c.g = randn(n, 302, 1.0f);
    c.y = zeros(n);
    c.rstd = zeros((size_t)c.N);
    norm_objective(&c);
    // forward vs float64
    double worst = 0;
    for (int64_t r = 0; r < c.N; r++) {
        double ss = 0;
        for (int d = 0; d < c.D; d++) ss += (double)c.x[r * c.D + d] * c.x[r * c.D + d];
        double rs = 1.0 / sqrt(ss / c.D + 1e-6);
        for (int d = 0; d < c.D; d++) {
            double want = c.x[r * c.D + d] * rs * c.w[d];
            worst = fmax(worst, fabs(c.y[r * c.D + d] - want) / (fabs(want) + 1e-3));
        }
    }
    CHECK(worst < 1e-5, "rmsnorm forward vs float64: %.2e", worst);
    float *dx = zeros(n), *dw = zeros((size_t)c.D);
    pn_rmsnorm_bwd(dx, dw, c.g, c.x, c.w, c.rstd, c.N, c.D);
    check_grad("rmsnorm dx", norm_objective, &c, c.x, dx, n, 1e-2f, 303);
    check_grad("rmsnorm dw", norm_objective, &c, c.w, dw, (size_t)c.D, 1e-2f, 304);
    // no weight (w = NULL)
    float *w = c.w;
    c.w = NULL;
    norm_objective(&c);
    memset(dx, 0, n * sizeof(float));
    pn_rmsnorm_bwd(dx, NULL, c.g, c.x, NULL, c.rstd, c.N, c.D);
    check_grad("rmsnorm dx (no weight)", norm_objective, &c, c.x, dx, n, 1e-2f, 305);
    c.w = w;
    free(dx);
    free(dw);
    free(c.x);
    free(c.w);
    free(c.g);
    free(c.y);
    free(c.rstd);
}

// ---------------------------------------------------------------- cross-entropy

typedef struct {
    int64_t N;
    int V;
    float *z;
    int64_t *t;
} ce_case;

static double ce_objective(void *p) {
    ce_case *c = p;
    return pn_cross_entropy(NULL, c->z, c->t, c->N, c->V, 1.0f);
}

static void test_cross_entropy(void) {
    ce_case c = {13, 50};
    const size_t n = (size_t)c.N * c.V;
    c.z = randn(n, 500, 3.0f);
    c.t = pn_malloc((size_t)c.N * sizeof(int64_t));
    for (int64_t i = 0; i < c.N; i++) c.t[i] = (i % 4 == 3) ? -1 : (i * 7) % c.V;
    // value vs float64 (ignored rows excluded from the mean)
    double want = 0;
    int cnt = 0;
    for (int64_t i = 0; i < c.N; i++) {
        if (c.t[i] < 0) continue;
        double m = -INFINITY, s = 0;
        for (int v = 0; v < c.V; v++) m = fmax(m, c.z[i * c.V + v]);
        for (int v = 0; v < c.V; v++) s += exp(c.z[i * c.V + v] - m);
        want += m + log(s) - c.z[i * c.V + c.t[i]];
        cnt++;
    }
    want /= cnt;
    float *dz = pn_malloc(n * sizeof(float));
    double got = pn_cross_entropy(dz, c.z, c.t, c.N, c.V, 1.0f);
    CHECK(fabs(got - want) < 1e-9 * fabs(want), "cross-entropy %.12f vs float64 %.12f", got, want);
    check_grad("cross-entropy dlogits", ce_objective, &c, c.z, dz, n, 1e-2f, 501);
    for (int v = 0; v < c.V; v++) CHECK(dz[3 * c.V + v] == 0.0f, "ignored row has zero gradient");
    // grad_scale scales the gradient
    float *dz2 = pn_malloc(n * sizeof(float));
    pn_cross_entropy(dz2, c.z, c.t, c.N, c.V, 0.5f);
    for (size_t i = 0; i < n; i++) dz[i] *= 0.5f;
    CHECK(rel_err(dz2, dz, n) < 1e-6, "grad_scale");
    // huge logits stay finite
    for (size_t i = 0; i < n; i++) c.z[i] *= 1000.0f;
    got = pn_cross_entropy(dz2, c.z, c.t, c.N, c.V, 1.0f);
    CHECK(isfinite(got) && rel_err(dz2, dz2, n) == 0.0, "cross-entropy with huge logits is finite (%g)", got);
    free(dz);
    free(dz2);
    free(c.z);
    free(c.t);
}

// ---------------------------------------------------------------- embedding

static void test_embedding(void) {
    const int V = 10, C = 6;
    const int64_t ids[5] = {3, 0, 3, 9, 3};
    float *table = randn((size_t)V * C, 700, 1.0f), *y = zeros(5 * C), *dt = zeros((size_t)V * C);
    float *dy = randn(5 * C, 701, 1.0f);
    pn_embedding_fwd(y, ids, table, 5, C);
    for (int n = 0; n < 5; n++) CHECK(memcmp(y + n * C, table + ids[n] * C, C * sizeof(float)) == 0, "embedding row");
    pn_embedding_bwd(dt, dy, ids, 5, C);
    for (int c = 0; c < C; c++) {
        double want = (double)dy[0 * C + c] + dy[2 * C + c] + dy[4 * C + c];
        CHECK(fabs(dt[3 * C + c] - want) < 1e-6, "embedding bwd accumulates repeated ids");
        CHECK(dt[5 * C + c] == 0.0f, "embedding bwd leaves unused rows");
    }
    free(table);
    free(y);
    free(dt);
    free(dy);
}

int main(void) {
    test_attention(2, 9, 4, 2, 8, 0, 1);     // GQA 4:2, full causal
    test_attention(2, 9, 4, 2, 8, 3, 1);     // sliding window
    test_attention(1, 70, 4, 1, 8, 0, 1);    // GQA 4:1, across a 64-row tile
    test_attention(1, 70, 4, 1, 8, 20, 1);   // window across a tile
    test_attention(2, 150, 4, 2, 16, 0, 0);  // three tiles, forward only
    test_attention(2, 150, 2, 2, 16, 33, 0);
    test_attention(1, 1, 2, 1, 4, 0, 1);     // a single token
    test_rope();
    test_rmsnorm();
    test_cross_entropy();
    test_embedding();
    printf("worst: attention forward vs float64 %.2e; attention grads vs float64 finite differences %.2e; "
           "grads vs fp32 finite differences %.2e\n",
           g_worst_fwd, g_worst_fd64, g_worst_fd);
    return test_summary("test_ops_attention");
}
