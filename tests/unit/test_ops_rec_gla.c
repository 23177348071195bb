// test_ops_rec_gla.c — simple-GLA and GLA recurrences (recurrent and chunked) against
// the float64 fixtures ops/{simple_gla,gla}_{small,chunky}.
//
// Every output and gradient is compared with the fixture: 1e-5 relative error for the
// recurrent form, 1e-4 for the chunked form (chunks 16, 64, and 7, 32 that do not
// divide T). Also: h0 = NULL equals h0 = zeros, a T = 1 in-place decode loop
// (h0 == ht) equals the full forward, backward accumulates (+=) and skips NULL grads,
// and 20x stronger gates stay finite in the chunked form.
#include "core/safetensors.h"
#include "kernels/ops.h"
#include "test_util.h"

typedef struct {
    const char *op;      // "simple_gla" or "gla"
    const char *gname;   // "g" or "gk"
    int gate_per_key;    // gate has a K axis
} op_desc;

typedef struct {
    pn_rec_shape s;
    int64_t nk, nv, ng, ns;   // element counts of q/k, v/o, gate, state
    float *q, *k, *v, *g, *h0, *dout, *dht;
    float *o, *ht, *dq, *dk, *dv, *dg, *dh0;   // float64 references, as f32
} fixture;

static void fx_load(fixture *f, const op_desc *d, const char *size) {
    char rel[256];
    snprintf(rel, sizeof(rel), "ops/%s_%s.safetensors", d->op, size);
    pn_safetensors *st = pn_st_open(fixture_path(rel));
    int nd;
    int64_t sh[PN_MAX_DIMS], shv[PN_MAX_DIMS];
    f->q = pn_st_load_f32(st, "q", &nd, sh);
    f->v = pn_st_load_f32(st, "v", &nd, shv);
    f->s.B = (int)sh[0], f->s.T = (int)sh[1], f->s.H = (int)sh[2], f->s.K = (int)sh[3], f->s.V = (int)shv[3];
    f->s.scale = 1.0f / sqrtf((float)f->s.K);
    f->nk = sh[0] * sh[1] * sh[2] * sh[3];
    f->nv = sh[0] * sh[1] * sh[2] * shv[3];
    f->ng = sh[0] * sh[1] * sh[2] * (d->gate_per_key ? sh[3] : 1);
    f->ns = sh[0] * sh[2] * sh[3] * shv[3];
    f->k = pn_st_load_f32(st, "k", NULL, NULL);
    f->g = pn_st_load_f32(st, d->gname, NULL, NULL);
    f->h0 = pn_st_load_f32(st, "h0", NULL, NULL);
    f->dout = pn_st_load_f32(st, "do", NULL, NULL);
    f->dht = pn_st_load_f32(st, "dht", NULL, NULL);
    f->o = pn_st_load_f32(st, "o", NULL, NULL);
    f->ht = pn_st_load_f32(st, "ht", NULL, NULL);
    f->dq = pn_st_load_f32(st, "dq", NULL, NULL);
    f->dk = pn_st_load_f32(st, "dk", NULL, NULL);
    f->dv = pn_st_load_f32(st, "dv", NULL, NULL);
    char dgname[16];
    snprintf(dgname, sizeof(dgname), "d%s", d->gname);
    f->dg = pn_st_load_f32(st, dgname, NULL, NULL);
    f->dh0 = pn_st_load_f32(st, "dh0", NULL, NULL);
    pn_st_close(st);
}

static void fx_free(fixture *f) {
    float *all[] = {f->q, f->k, f->v, f->g, f->h0, f->dout, f->dht, f->o, f->ht, f->dq, f->dk, f->dv, f->dg, f->dh0};
    for (size_t i = 0; i < PN_ARRAY_LEN(all); i++) free(all[i]);
}

static void op_fwd(const op_desc *d, const pn_rec_shape *s, int chunk, const float *q, const float *k, const float *v,
                   const float *g, const float *h0, float *o, float *ht) {
    if (d->gate_per_key)
        pn_gla_fwd(s, chunk, q, k, v, g, h0, o, ht);
    else
        pn_simple_gla_fwd(s, chunk, q, k, v, g, h0, o, ht);
}

static void op_bwd(const op_desc *d, const pn_rec_shape *s, int chunk, const fixture *f, const float *h0,
                   const float *dht, float *dq, float *dk, float *dv, float *dg, float *dh0) {
    if (d->gate_per_key)
        pn_gla_bwd(s, chunk, f->q, f->k, f->v, f->g, h0, f->dout, dht, dq, dk, dv, dg, dh0);
    else
        pn_simple_gla_bwd(s, chunk, f->q, f->k, f->v, f->g, h0, f->dout, dht, dq, dk, dv, dg, dh0);
}

static float *zeros(int64_t n) { return pn_calloc((size_t)n, sizeof(float)); }

// Forward and backward at one chunk size against the fixture.
static void check_form(const op_desc *d, const char *size, const fixture *f, int chunk, double tol) {
    float *o = zeros(f->nv), *ht = zeros(f->ns);
    op_fwd(d, &f->s, chunk, f->q, f->k, f->v, f->g, f->h0, o, ht);
    double eo = rel_err(o, f->o, f->nv), eh = rel_err(ht, f->ht, f->ns);
    float *dq = zeros(f->nk), *dk = zeros(f->nk), *dv = zeros(f->nv), *dg = zeros(f->ng), *dh0 = zeros(f->ns);
    op_bwd(d, &f->s, chunk, f, f->h0, f->dht, dq, dk, dv, dg, dh0);
    double e[5] = {rel_err(dq, f->dq, f->nk), rel_err(dk, f->dk, f->nk), rel_err(dv, f->dv, f->nv),
                   rel_err(dg, f->dg, f->ng), rel_err(dh0, f->dh0, f->ns)};
    printf("%-10s %-6s chunk %2d: o %.2e ht %.2e dq %.2e dk %.2e dv %.2e d%s %.2e dh0 %.2e\n", d->op, size, chunk, eo,
           eh, e[0], e[1], e[2], d->gname, e[3], e[4]);
    const char *names[5] = {"dq", "dk", "dv", "dg", "dh0"};
    CHECK(eo <= tol, "%s_%s chunk %d: o rel err %.3e > %.0e", d->op, size, chunk, eo, tol);
    CHECK(eh <= tol, "%s_%s chunk %d: ht rel err %.3e > %.0e", d->op, size, chunk, eh, tol);
    for (int i = 0; i < 5; i++)
        CHECK(e[i] <= tol, "%s_%s chunk %d: %s rel err %.3e > %.0e", d->op, size, chunk, names[i], e[i], tol);
    free(o), free(ht), free(dq), free(dk), free(dv), free(dg), free(dh0);
}

// h0 = NULL must mean zeros (forward and backward), and NULL dht must mean zeros.
static void check_null_state(const op_desc *d, const fixture *f, int chunk) {
    float *z = zeros(f->ns);
    float *o1 = zeros(f->nv), *o2 = zeros(f->nv), *h1 = zeros(f->ns), *h2 = zeros(f->ns);
    op_fwd(d, &f->s, chunk, f->q, f->k, f->v, f->g, NULL, o1, h1);
    op_fwd(d, &f->s, chunk, f->q, f->k, f->v, f->g, z, o2, h2);
    CHECK(rel_err(o1, o2, f->nv) == 0 && rel_err(h1, h2, f->ns) == 0, "%s chunk %d: h0 NULL differs from zeros",
          d->op, chunk);
    float *dq1 = zeros(f->nk), *dq2 = zeros(f->nk), *dg1 = zeros(f->ng), *dg2 = zeros(f->ng);
    op_bwd(d, &f->s, chunk, f, NULL, NULL, dq1, NULL, NULL, dg1, NULL);
    op_bwd(d, &f->s, chunk, f, z, z, dq2, NULL, NULL, dg2, NULL);
    CHECK(rel_err(dq1, dq2, f->nk) == 0 && rel_err(dg1, dg2, f->ng) == 0,
          "%s chunk %d: NULL h0/dht backward differs from zeros", d->op, chunk);
    free(z), free(o1), free(o2), free(h1), free(h2), free(dq1), free(dq2), free(dg1), free(dg2);
}

// Backward adds into the gradient buffers: two calls give twice the fixture.
static void check_accumulate(const op_desc *d, const fixture *f, int chunk) {
    float *dv = zeros(f->nv), *dh0 = zeros(f->ns), *ref = zeros(f->nv), *refh = zeros(f->ns);
    for (int r = 0; r < 2; r++) op_bwd(d, &f->s, chunk, f, f->h0, f->dht, NULL, NULL, dv, NULL, dh0);
    for (int64_t i = 0; i < f->nv; i++) ref[i] = 2 * f->dv[i];
    for (int64_t i = 0; i < f->ns; i++) refh[i] = 2 * f->dh0[i];
    double e = rel_err(dv, ref, f->nv), eh = rel_err(dh0, refh, f->ns);
    CHECK(e <= 1e-4 && eh <= 1e-4, "%s chunk %d: two backward calls: dv %.3e dh0 %.3e from 2x fixture", d->op, chunk,
          e, eh);
    free(dv), free(dh0), free(ref), free(refh);
}

// Decode: T steps of fwd with T = 1 and h0 == ht, against the full forward and the fixture.
static void check_decode(const op_desc *d, const fixture *f, int chunk) {
    const pn_rec_shape *s = &f->s;
    const int B = s->B, T = s->T, H = s->H, K = s->K, V = s->V, GK = d->gate_per_key ? K : 1;
    pn_rec_shape s1 = *s;
    s1.T = 1;
    float *state = pn_malloc((size_t)f->ns * sizeof(float));
    memcpy(state, f->h0, (size_t)f->ns * sizeof(float));
    float *q1 = zeros((int64_t)B * H * K), *k1 = zeros((int64_t)B * H * K), *v1 = zeros((int64_t)B * H * V);
    float *g1 = zeros((int64_t)B * H * GK), *o1 = zeros((int64_t)B * H * V), *o = zeros(f->nv);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            int64_t src = ((int64_t)b * T + t) * H, dst = (int64_t)b * H;
            memcpy(q1 + dst * K, f->q + src * K, (size_t)H * K * sizeof(float));
            memcpy(k1 + dst * K, f->k + src * K, (size_t)H * K * sizeof(float));
            memcpy(v1 + dst * V, f->v + src * V, (size_t)H * V * sizeof(float));
            memcpy(g1 + dst * GK, f->g + src * GK, (size_t)H * GK * sizeof(float));
        }
        op_fwd(d, &s1, chunk, q1, k1, v1, g1, state, o1, state);
        for (int b = 0; b < B; b++)
            memcpy(o + ((int64_t)b * T + t) * H * V, o1 + (int64_t)b * H * V, (size_t)H * V * sizeof(float));
    }
    float *of = zeros(f->nv), *hf = zeros(f->ns);
    op_fwd(d, s, chunk, f->q, f->k, f->v, f->g, f->h0, of, hf);
    double eo = rel_err(o, of, f->nv), eh = rel_err(state, hf, f->ns);
    double fo = rel_err(o, f->o, f->nv), fh = rel_err(state, f->ht, f->ns);
    printf("%-10s decode chunk %d: vs full o %.2e ht %.2e; vs fixture o %.2e ht %.2e\n", d->op, chunk, eo, eh, fo,
           fh);
    CHECK(eo <= 1e-5 && eh <= 1e-5, "%s decode chunk %d vs full forward: o %.3e ht %.3e", d->op, chunk, eo, eh);
    CHECK(fo <= 1e-5 && fh <= 1e-5, "%s decode chunk %d vs fixture: o %.3e ht %.3e", d->op, chunk, fo, fh);
    free(state), free(q1), free(k1), free(v1), free(g1), free(o1), free(o), free(of), free(hf);
}

// Gates 20x stronger than the fixture's (cumsums down to ~-2800 inside a chunk of 64):
// the chunked form must stay finite (the mask comes before exp) and match the
// fixture-checked recurrent form.
static void check_strong_gates(const op_desc *d, fixture *f, int chunk) {
    float *g0 = f->g, *g = pn_malloc((size_t)f->ng * sizeof(float));
    for (int64_t i = 0; i < f->ng; i++) g[i] = 20 * g0[i];
    f->g = g;
    float *out[2][7];
    const int64_t n[7] = {f->nv, f->ns, f->nk, f->nk, f->nv, f->ng, f->ns};
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < 7; i++) out[r][i] = zeros(n[i]);
        const int c = r ? chunk : 0;
        op_fwd(d, &f->s, c, f->q, f->k, f->v, f->g, f->h0, out[r][0], out[r][1]);
        op_bwd(d, &f->s, c, f, f->h0, f->dht, out[r][2], out[r][3], out[r][4], out[r][5], out[r][6]);
    }
    double worst = 0;
    for (int i = 0; i < 7; i++) {
        double e = rel_err(out[1][i], out[0][i], n[i]);
        if (!(e <= worst)) worst = e;
        free(out[0][i]), free(out[1][i]);
    }
    printf("%-10s strong gates chunk %d vs recurrent: worst rel err %.2e\n", d->op, chunk, worst);
    CHECK(worst <= 1e-4, "%s strong gates chunk %d: worst rel err vs recurrent %.3e", d->op, chunk, worst);
    f->g = g0;
    free(g);
}

int main(void) {
    const op_desc ops[2] = {{"simple_gla", "g", 0}, {"gla", "gk", 1}};
    const char *sizes[2] = {"small", "chunky"};
    for (int oi = 0; oi < 2; oi++) {
        for (int si = 0; si < 2; si++) {
            fixture f;
            fx_load(&f, &ops[oi], sizes[si]);
            check_form(&ops[oi], sizes[si], &f, 0, 1e-5);
            check_form(&ops[oi], sizes[si], &f, 16, 1e-4);
            check_form(&ops[oi], sizes[si], &f, 64, 1e-4);
            if (si == 0) {   // T = 67: chunk sizes that do not divide T
                check_form(&ops[oi], sizes[si], &f, 7, 1e-4);
                check_form(&ops[oi], sizes[si], &f, 32, 1e-4);
                check_null_state(&ops[oi], &f, 0);
                check_null_state(&ops[oi], &f, 16);
                check_accumulate(&ops[oi], &f, 0);
                check_accumulate(&ops[oi], &f, 32);
                check_decode(&ops[oi], &f, 0);
                check_decode(&ops[oi], &f, 16);
                check_strong_gates(&ops[oi], &f, 64);
            }
            fx_free(&f);
        }
    }
    return test_summary("test_ops_rec_gla");
}
