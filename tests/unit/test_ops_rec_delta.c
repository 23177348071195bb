// test_ops_rec_delta.c — pn_gated_delta_fwd/bwd (delta rule, gated delta rule), recurrent and chunked.
//
// Ground truth: the float64 fixtures ops/{delta_rule,gated_delta_rule}_{small,chunky} (o, ht and every
// gradient; tolerance 1e-5 relative for the recurrent form, 1e-4 for the chunked form at chunk 16
// and 64). The in-op q/k L2 norm is checked against a double-precision normalisation done here
// plus central finite differences of the float64-accumulated loss; in-place decode (h0 == ht) is
// checked against the full-sequence forward. On random inputs with strong gates and a partial last
// chunk, the chunked form is also compared with the recurrent one (which the fixtures pin down).
#include "core/rng.h"
#include "core/safetensors.h"
#include "kernels/ops.h"
#include "test_util.h"

#define TOL_REC 1e-5
#define TOL_CHUNK 1e-4
// Finite differences of a float32 op: the loss carries ~1e-7 relative round-off, so the
// extrapolated differences agree to <= 1e-4 (measured); the check is for wrong formulas.
#define FD_TOL 1e-3

typedef struct {
    pn_rec_shape s;
    float *q, *k, *v, *g, *beta, *h0, *dout, *dht;
} case_in;

typedef struct {
    float *o, *ht, *dq, *dk, *dv, *dg, *dbeta, *dh0;
} case_out;

static size_t n_qk(const pn_rec_shape *s) { return (size_t)s->B * s->T * s->H * s->K; }
static size_t n_v(const pn_rec_shape *s) { return (size_t)s->B * s->T * s->H * s->V; }
static size_t n_g(const pn_rec_shape *s) { return (size_t)s->B * s->T * s->H; }
static size_t n_s(const pn_rec_shape *s) { return (size_t)s->B * s->H * s->K * s->V; }

static void out_alloc(case_out *r, const pn_rec_shape *s) {
    r->o = calloc(n_v(s), sizeof(float));
    r->ht = calloc(n_s(s), sizeof(float));
    r->dq = calloc(n_qk(s), sizeof(float));
    r->dk = calloc(n_qk(s), sizeof(float));
    r->dv = calloc(n_v(s), sizeof(float));
    r->dg = calloc(n_g(s), sizeof(float));
    r->dbeta = calloc(n_g(s), sizeof(float));
    r->dh0 = calloc(n_s(s), sizeof(float));
}

static void out_free(case_out *r) {
    free(r->o), free(r->ht), free(r->dq), free(r->dk), free(r->dv), free(r->dg), free(r->dbeta), free(r->dh0);
}

static void run_case(const case_in *c, int chunk, int l2, case_out *r) {
    pn_gated_delta_fwd(&c->s, chunk, l2, c->q, c->k, c->v, c->g, c->beta, c->h0, r->o, r->ht);
    pn_gated_delta_bwd(&c->s, chunk, l2, c->q, c->k, c->v, c->g, c->beta, c->h0, c->dout, c->dht, r->dq, r->dk,
                       r->dv, c->g ? r->dg : NULL, r->dbeta, r->dh0);
}

// ---------------------------------------------------------------- fixtures
static void test_fixture(const char *name, int gated) {
    char rel[256];
    snprintf(rel, sizeof rel, "ops/%s.safetensors", name);
    pn_safetensors *st = pn_st_open(fixture_path(rel));
    int nd;
    int64_t sh[PN_MAX_DIMS], shv[PN_MAX_DIMS];
    case_in c = {0};
    c.q = pn_st_load_f32(st, "q", &nd, sh);
    c.v = pn_st_load_f32(st, "v", NULL, shv);
    c.s = (pn_rec_shape){(int)sh[0], (int)sh[1], (int)sh[2], (int)sh[3], (int)shv[3], 0};
    c.s.scale = (float)atof(pn_st_meta_get(st, "scale"));
    c.k = pn_st_load_f32(st, "k", NULL, NULL);
    c.g = gated ? pn_st_load_f32(st, "g", NULL, NULL) : NULL;
    c.beta = pn_st_load_f32(st, "beta", NULL, NULL);
    c.h0 = pn_st_load_f32(st, "h0", NULL, NULL);
    c.dout = pn_st_load_f32(st, "do", NULL, NULL);
    c.dht = pn_st_load_f32(st, "dht", NULL, NULL);
    const char *names[8] = {"o", "ht", "dq", "dk", "dv", "dg", "dbeta", "dh0"};
    size_t sizes[8] = {n_v(&c.s), n_s(&c.s), n_qk(&c.s), n_qk(&c.s), n_v(&c.s), n_g(&c.s), n_g(&c.s), n_s(&c.s)};
    float *ref[8];
    for (int i = 0; i < 8; i++) ref[i] = (i == 5 && !gated) ? NULL : pn_st_load_f32(st, names[i], NULL, NULL);

    const int chunks[3] = {0, 16, 64};
    for (int ci = 0; ci < 3; ci++) {
        case_out r;
        out_alloc(&r, &c.s);
        run_case(&c, chunks[ci], 0, &r);
        float *got[8] = {r.o, r.ht, r.dq, r.dk, r.dv, r.dg, r.dbeta, r.dh0};
        const double tol = chunks[ci] ? TOL_CHUNK : TOL_REC;
        printf("%-24s chunk %2d:", name, chunks[ci]);
        for (int i = 0; i < 8; i++) {
            if (!ref[i]) continue;
            double e = rel_err(got[i], ref[i], sizes[i]);
            printf(" %s %.2e", names[i], e);
            CHECK(e < tol, "%s chunk %d: %s rel err %.3e >= %.0e", name, chunks[ci], names[i], e, tol);
        }
        printf("\n");
        if (ci == 0) {
            // Backward ADDS: a second call doubles every gradient.
            float *dq1 = malloc(sizeof(float) * n_qk(&c.s));
            memcpy(dq1, r.dq, sizeof(float) * n_qk(&c.s));
            pn_gated_delta_bwd(&c.s, 0, 0, c.q, c.k, c.v, c.g, c.beta, c.h0, c.dout, c.dht, r.dq, NULL, NULL, NULL,
                               NULL, NULL);
            for (size_t i = 0; i < n_qk(&c.s); i++) dq1[i] *= 2;
            CHECK(rel_err(r.dq, dq1, n_qk(&c.s)) < 1e-6, "%s: backward does not accumulate into dq", name);
            free(dq1);
        }
        out_free(&r);
    }
    for (int i = 0; i < 8; i++) free(ref[i]);
    free(c.q), free(c.k), free(c.v), free(c.g), free(c.beta), free(c.h0), free(c.dout), free(c.dht);
    pn_st_close(st);
}

// ---------------------------------------------------------------- random inputs
static void random_case(case_in *c, pn_rec_shape s, int gated, float gate_strength, float qk_std, uint64_t seed) {
    c->s = s;
    c->q = malloc(sizeof(float) * n_qk(&s));
    c->k = malloc(sizeof(float) * n_qk(&s));
    c->v = malloc(sizeof(float) * n_v(&s));
    c->g = gated ? malloc(sizeof(float) * n_g(&s)) : NULL;
    c->beta = malloc(sizeof(float) * n_g(&s));
    c->h0 = malloc(sizeof(float) * n_s(&s));
    c->dout = malloc(sizeof(float) * n_v(&s));
    c->dht = malloc(sizeof(float) * n_s(&s));
    pn_fill_normal(c->q, n_qk(&s), 0, qk_std, seed, 1);
    pn_fill_normal(c->k, n_qk(&s), 0, qk_std, seed, 2);
    pn_fill_normal(c->v, n_v(&s), 0, 1, seed, 3);
    pn_fill_uniform(c->beta, n_g(&s), 0.05f, 0.95f, seed, 4);
    if (gated) {
        // log-sigmoid of U(0,1) scaled: in (−strength·0.98, −strength·0.31)
        pn_fill_uniform(c->g, n_g(&s), 0, 1, seed, 5);
        for (size_t i = 0; i < n_g(&s); i++) c->g[i] = -gate_strength * log1pf(expf(-c->g[i]));
    }
    pn_fill_normal(c->h0, n_s(&s), 0, 0.5f, seed, 6);
    pn_fill_normal(c->dout, n_v(&s), 0, 1, seed, 7);
    pn_fill_normal(c->dht, n_s(&s), 0, 1, seed, 8);
}

static void case_free(case_in *c) {
    free(c->q), free(c->k), free(c->v), free(c->g), free(c->beta), free(c->h0), free(c->dout), free(c->dht);
}

// In place, in double: rows of D scaled to unit norm (x / sqrt(Σx² + 1e-6)).
static void l2norm_double(float *x, size_t rows, int D) {
    for (size_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[r * D + i] * x[r * D + i];
        double inv = 1.0 / sqrt(ss + 1e-6);
        for (int i = 0; i < D; i++) x[r * D + i] = (float)(x[r * D + i] * inv);
    }
}

// Chunked vs recurrent on random inputs: strong gates, T not a multiple of the chunk.
static void test_chunk_vs_recurrent(void) {
    pn_rec_shape s = {2, 150, 2, 12, 20, 0};
    s.scale = 1.0f / sqrtf(12.0f);
    for (int gated = 0; gated < 2; gated++) {
        case_in c;
        random_case(&c, s, gated, 3.0f, 1.0f, 11 + gated);
        l2norm_double(c.q, n_g(&s), s.K);
        l2norm_double(c.k, n_g(&s), s.K);
        case_out ref, got;
        out_alloc(&ref, &s);
        run_case(&c, 0, 0, &ref);
        const int chunks[4] = {1, 16, 37, 64};
        for (int ci = 0; ci < 4; ci++) {
            out_alloc(&got, &s);
            run_case(&c, chunks[ci], 0, &got);
            const char *names[8] = {"o", "ht", "dq", "dk", "dv", "dg", "dbeta", "dh0"};
            float *a[8] = {got.o, got.ht, got.dq, got.dk, got.dv, got.dg, got.dbeta, got.dh0};
            float *b[8] = {ref.o, ref.ht, ref.dq, ref.dk, ref.dv, ref.dg, ref.dbeta, ref.dh0};
            size_t sz[8] = {n_v(&s), n_s(&s), n_qk(&s), n_qk(&s), n_v(&s), n_g(&s), n_g(&s), n_s(&s)};
            printf("random %-6s chunk %2d vs recurrent:", gated ? "gated" : "delta", chunks[ci]);
            for (int i = 0; i < 8; i++) {
                if (i == 5 && !gated) continue;
                double e = rel_err(a[i], b[i], sz[i]);
                printf(" %s %.2e", names[i], e);
                CHECK(e < TOL_CHUNK, "random chunk %d vs recurrent: %s rel err %.3e", chunks[ci], names[i], e);
            }
            printf("\n");
            out_free(&got);
        }
        out_free(&ref);
        case_free(&c);
    }
}

// Loss of the fixtures' kind, accumulated in double: Σ o·do + Σ ht·dht.
static double loss_of(const case_in *c, int l2) {
    float *o = malloc(sizeof(float) * n_v(&c->s)), *ht = malloc(sizeof(float) * n_s(&c->s));
    pn_gated_delta_fwd(&c->s, 0, l2, c->q, c->k, c->v, c->g, c->beta, c->h0, o, ht);
    double L = 0;
    for (size_t i = 0; i < n_v(&c->s); i++) L += (double)o[i] * c->dout[i];
    for (size_t i = 0; i < n_s(&c->s); i++) L += (double)ht[i] * c->dht[i];
    free(o), free(ht);
    return L;
}

// L(x + h·dir) − L(x − h·dir) for one input x (restored on return), and ∇L·(x₊ − x₋) for two
// analytic gradients, with x± the perturbed inputs as stored in float so that the rounding of the
// step does not enter the comparison.
static double fd_step(const case_in *c, float *x, size_t n, const float *dir, double h, const float *grad,
                      const float *grad2, double *an, double *an2) {
    float *x0 = malloc(sizeof(float) * n), *xp = malloc(sizeof(float) * n);
    memcpy(x0, x, sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = (float)(x0[i] + h * dir[i]);
    memcpy(xp, x, sizeof(float) * n);
    const double Lp = loss_of(c, 1);
    for (size_t i = 0; i < n; i++) x[i] = (float)(x0[i] - h * dir[i]);
    const double Lm = loss_of(c, 1);
    *an = 0, *an2 = 0;
    for (size_t i = 0; i < n; i++) {
        const double step = (double)xp[i] - x[i];
        *an += (double)grad[i] * step;
        *an2 += (double)grad2[i] * step;
    }
    memcpy(x, x0, sizeof(float) * n);
    free(x0), free(xp);
    return Lp - Lm;
}

// qk_l2norm = 1 on raw q, k against qk_l2norm = 0 on q, k normalised here in double; then the
// gradients of the l2norm = 1 op against central differences along random directions.
static void test_l2norm(void) {
    pn_rec_shape s = {1, 23, 2, 8, 6, 0};
    s.scale = 1.0f / sqrtf(8.0f);
    case_in c;
    random_case(&c, s, 1, 1.0f, 2.0f, 21);
    case_in cn = c;
    cn.q = malloc(sizeof(float) * n_qk(&s));
    cn.k = malloc(sizeof(float) * n_qk(&s));
    memcpy(cn.q, c.q, sizeof(float) * n_qk(&s));
    memcpy(cn.k, c.k, sizeof(float) * n_qk(&s));
    l2norm_double(cn.q, n_g(&s), s.K);
    l2norm_double(cn.k, n_g(&s), s.K);
    const int chunks[2] = {0, 16};
    for (int ci = 0; ci < 2; ci++) {
        case_out a, b;
        out_alloc(&a, &s);
        out_alloc(&b, &s);
        pn_gated_delta_fwd(&s, chunks[ci], 1, c.q, c.k, c.v, c.g, c.beta, c.h0, a.o, a.ht);
        pn_gated_delta_fwd(&s, chunks[ci], 0, cn.q, cn.k, cn.v, cn.g, cn.beta, cn.h0, b.o, b.ht);
        double eo = rel_err(a.o, b.o, n_v(&s)), eh = rel_err(a.ht, b.ht, n_s(&s));
        printf("l2norm in-op vs pre-normalised, chunk %2d: o %.2e ht %.2e\n", chunks[ci], eo, eh);
        CHECK(eo < TOL_REC && eh < TOL_REC, "l2norm chunk %d: o %.3e ht %.3e", chunks[ci], eo, eh);
        out_free(&a);
        out_free(&b);
    }

    // Gradients through the normalisation, by finite differences of the recurrent op.
    case_out r;
    out_alloc(&r, &s);
    run_case(&c, 0, 1, &r);
    case_out rc;
    out_alloc(&rc, &s);
    run_case(&c, 16, 1, &rc);
    struct {
        const char *name;
        float *x;
        const float *grad, *grad_chunk;
        size_t n;
    } vars[] = {{"q", c.q, r.dq, rc.dq, n_qk(&s)}, {"k", c.k, r.dk, rc.dk, n_qk(&s)},
                {"v", c.v, r.dv, rc.dv, n_v(&s)},  {"g", c.g, r.dg, rc.dg, n_g(&s)},
                {"beta", c.beta, r.dbeta, rc.dbeta, n_g(&s)}, {"h0", c.h0, r.dh0, rc.dh0, n_s(&s)}};
    const double eps = 1e-2;
    for (size_t vi = 0; vi < PN_ARRAY_LEN(vars); vi++) {
        double worst = 0, worst_c = 0;
        for (int trial = 0; trial < 3; trial++) {
            float *dir = malloc(sizeof(float) * vars[vi].n);
            pn_fill_normal(dir, vars[vi].n, 0, 1, 100 + vi, trial);
            // Richardson-extrapolated central differences: 8 D(h/2) − D(h) cancels the h³ term,
            // which at a single step is above the float32 noise floor for g.
            double fd[2], an[2], anc[2];
            for (int half = 0; half < 2; half++)
                fd[half] = fd_step(&c, vars[vi].x, vars[vi].n, dir, half ? eps / 2 : eps, vars[vi].grad,
                                   vars[vi].grad_chunk, &an[half], &anc[half]);
            const double f = 8 * fd[1] - fd[0], a = 8 * an[1] - an[0], ac = 8 * anc[1] - anc[0];
            worst = fmax(worst, fabs(f - a) / fabs(f));
            worst_c = fmax(worst_c, fabs(f - ac) / fabs(f));
            free(dir);
        }
        printf("l2norm finite differences d%-4s: recurrent %.2e chunk16 %.2e\n", vars[vi].name, worst, worst_c);
        CHECK(worst < FD_TOL && worst_c < FD_TOL, "l2norm FD d%s: rel err %.3e / %.3e", vars[vi].name, worst,
              worst_c);
    }
    out_free(&r);
    out_free(&rc);
    free(cn.q), free(cn.k);
    case_free(&c);
}

// In-place decode: T steps of T = 1 with h0 == ht reproduce the full-sequence o and ht.
static void test_decode_alias(void) {
    pn_rec_shape s = {2, 19, 3, 8, 10, 0};
    s.scale = 1.0f / sqrtf(8.0f);
    case_in c;
    random_case(&c, s, 1, 1.0f, 1.0f, 31);
    float *o = malloc(sizeof(float) * n_v(&s)), *ht = malloc(sizeof(float) * n_s(&s));
    pn_gated_delta_fwd(&s, 0, 1, c.q, c.k, c.v, c.g, c.beta, c.h0, o, ht);
    const int chunks[2] = {0, 16};
    for (int ci = 0; ci < 2; ci++) {
        pn_rec_shape s1 = s;
        s1.T = 1;
        float *state = malloc(sizeof(float) * n_s(&s)), *o_step = malloc(sizeof(float) * n_v(&s));
        float *qt = malloc(sizeof(float) * s.B * s.H * s.K), *kt = malloc(sizeof(float) * s.B * s.H * s.K);
        float *vt = malloc(sizeof(float) * s.B * s.H * s.V), *ot = malloc(sizeof(float) * s.B * s.H * s.V);
        float *gt = malloc(sizeof(float) * s.B * s.H), *bt = malloc(sizeof(float) * s.B * s.H);
        memcpy(state, c.h0, sizeof(float) * n_s(&s));
        for (int t = 0; t < s.T; t++) {
            for (int b = 0; b < s.B; b++) {
                size_t src = ((size_t)b * s.T + t) * s.H, dst = (size_t)b * s.H;
                memcpy(qt + dst * s.K, c.q + src * s.K, sizeof(float) * s.H * s.K);
                memcpy(kt + dst * s.K, c.k + src * s.K, sizeof(float) * s.H * s.K);
                memcpy(vt + dst * s.V, c.v + src * s.V, sizeof(float) * s.H * s.V);
                memcpy(gt + dst, c.g + src, sizeof(float) * s.H);
                memcpy(bt + dst, c.beta + src, sizeof(float) * s.H);
            }
            pn_gated_delta_fwd(&s1, chunks[ci], 1, qt, kt, vt, gt, bt, state, ot, state);
            for (int b = 0; b < s.B; b++)
                memcpy(o_step + ((size_t)b * s.T + t) * s.H * s.V, ot + (size_t)b * s.H * s.V,
                       sizeof(float) * s.H * s.V);
        }
        double eo = rel_err(o_step, o, n_v(&s)), eh = rel_err(state, ht, n_s(&s));
        printf("decode h0 == ht, chunk %2d: o %.2e ht %.2e\n", chunks[ci], eo, eh);
        CHECK(eo < TOL_REC && eh < TOL_REC, "decode alias chunk %d: o %.3e ht %.3e", chunks[ci], eo, eh);
        free(state), free(o_step), free(qt), free(kt), free(vt), free(ot), free(gt), free(bt);
    }
    // h0 = NULL is a zero state; ht = NULL and o = NULL are allowed.
    float *zero = calloc(n_s(&s), sizeof(float)), *o2 = malloc(sizeof(float) * n_v(&s));
    pn_gated_delta_fwd(&s, 0, 1, c.q, c.k, c.v, c.g, c.beta, zero, o, NULL);
    pn_gated_delta_fwd(&s, 16, 1, c.q, c.k, c.v, c.g, c.beta, NULL, o2, NULL);
    CHECK(rel_err(o2, o, n_v(&s)) < TOL_CHUNK, "h0 = NULL differs from a zero state");
    free(zero), free(o2), free(o), free(ht);
    case_free(&c);

    // T = 0 passes the state through (ht = h0, dh0 = dht), also with a chunk far larger than T.
    pn_rec_shape s0 = {2, 0, 3, 8, 10, 0.5f};
    random_case(&c, (pn_rec_shape){2, 1, 3, 8, 10, 0.5f}, 1, 1.0f, 1.0f, 41);
    const int chunks0[2] = {0, 1 << 20};
    for (int ci = 0; ci < 2; ci++) {
        float *h = malloc(sizeof(float) * n_s(&s0)), *dh = calloc(n_s(&s0), sizeof(float));
        pn_gated_delta_fwd(&s0, chunks0[ci], 0, c.q, c.k, c.v, c.g, c.beta, c.h0, NULL, h);
        pn_gated_delta_bwd(&s0, chunks0[ci], 0, c.q, c.k, c.v, c.g, c.beta, c.h0, c.dout, c.dht, NULL, NULL, NULL,
                           NULL, NULL, dh);
        CHECK(rel_err(h, c.h0, n_s(&s0)) == 0 && rel_err(dh, c.dht, n_s(&s0)) == 0, "T = 0, chunk %d", chunks0[ci]);
        free(h), free(dh);
    }
    case_free(&c);
}

int main(void) {
    test_fixture("delta_rule_small", 0);
    test_fixture("delta_rule_chunky", 0);
    test_fixture("gated_delta_rule_small", 1);
    test_fixture("gated_delta_rule_chunky", 1);
    test_chunk_vs_recurrent();
    test_l2norm();
    test_decode_alias();
    return test_summary("test_ops_rec_delta");
}
