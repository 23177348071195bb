// test_ops_rec_dplr.c — the DPLR (RWKV7 core) recurrence, recurrent and chunked, against
// the float64 fixtures ops/dplr_{small,chunky}.
//
// o, ht and every gradient (dq, dk, dv, dgk, da, db, dh0) are compared with the fixture:
// 1e-5 relative error for the recurrent form, 1e-4 for the chunked form (chunks 16, 64,
// and 7, 32 that do not divide T = 67). Also: h0 = NULL equals h0 = zeros, a T = 1
// in-place decode loop (h0 == ht) equals the full forward, backward accumulates (+=),
// and 20x stronger gates stay finite in the chunked form.
#include "core/safetensors.h"
#include "kernels/ops.h"
#include "test_util.h"

enum { NIN = 9, NGRAD = 7 };
// inputs: q k v gk a b h0 do dht; references: o ht and the gradients
static const char *in_names[NIN] = {"q", "k", "v", "gk", "a", "b", "h0", "do", "dht"};
static const char *grad_names[NGRAD] = {"dq", "dk", "dv", "dgk", "da", "db", "dh0"};

typedef struct {
    pn_rec_shape s;
    int64_t nk, nv, ns;   // element counts of (B,T,H,K), (B,T,H,V), (B,H,K,V)
    float *in[NIN];
    float *o, *ht, *grad[NGRAD];
} fixture;

enum { Q, KK, VV, GK, AA, BB, H0, DO, DHT };

static int64_t grad_count(const fixture *f, int i) { return i == 2 ? f->nv : i == 6 ? f->ns : f->nk; }

static void fx_load(fixture *f, const char *size) {
    char rel[256];
    snprintf(rel, sizeof(rel), "ops/dplr_%s.safetensors", size);
    pn_safetensors *st = pn_st_open(fixture_path(rel));
    int nd;
    int64_t sh[PN_MAX_DIMS], shv[PN_MAX_DIMS];
    for (int i = 0; i < NIN; i++) f->in[i] = pn_st_load_f32(st, in_names[i], &nd, i == VV ? shv : i == Q ? sh : NULL);
    f->s.B = (int)sh[0], f->s.T = (int)sh[1], f->s.H = (int)sh[2], f->s.K = (int)sh[3], f->s.V = (int)shv[3];
    f->s.scale = 1.0f / sqrtf((float)f->s.K);
    f->nk = sh[0] * sh[1] * sh[2] * sh[3];
    f->nv = sh[0] * sh[1] * sh[2] * shv[3];
    f->ns = sh[0] * sh[2] * sh[3] * shv[3];
    f->o = pn_st_load_f32(st, "o", NULL, NULL);
    f->ht = pn_st_load_f32(st, "ht", NULL, NULL);
    for (int i = 0; i < NGRAD; i++) f->grad[i] = pn_st_load_f32(st, grad_names[i], NULL, NULL);
    pn_st_close(st);
}

static void fx_free(fixture *f) {
    for (int i = 0; i < NIN; i++) free(f->in[i]);
    for (int i = 0; i < NGRAD; i++) free(f->grad[i]);
    free(f->o), free(f->ht);
}

static float *zeros(int64_t n) { return pn_calloc((size_t)n, sizeof(float)); }

static void fwd(const fixture *f, const pn_rec_shape *s, int chunk, float *const *in, const float *h0, float *o,
                float *ht) {
    pn_dplr_fwd(s, chunk, in[Q], in[KK], in[VV], in[GK], in[AA], in[BB], h0, o, ht);
}

static void bwd(const fixture *f, int chunk, const float *h0, const float *dht, float **g) {
    float *const *in = f->in;
    pn_dplr_bwd(&f->s, chunk, in[Q], in[KK], in[VV], in[GK], in[AA], in[BB], h0, in[DO], dht, g[0], g[1], g[2], g[3],
                g[4], g[5], g[6]);
}

static void check_form(const char *size, const fixture *f, int chunk, double tol) {
    float *o = zeros(f->nv), *ht = zeros(f->ns), *g[NGRAD];
    fwd(f, &f->s, chunk, f->in, f->in[H0], o, ht);
    double eo = rel_err(o, f->o, f->nv), eh = rel_err(ht, f->ht, f->ns);
    CHECK(eo <= tol, "dplr_%s chunk %d: o rel err %.3e > %.0e", size, chunk, eo, tol);
    CHECK(eh <= tol, "dplr_%s chunk %d: ht rel err %.3e > %.0e", size, chunk, eh, tol);
    for (int i = 0; i < NGRAD; i++) g[i] = zeros(grad_count(f, i));
    bwd(f, chunk, f->in[H0], f->in[DHT], g);
    printf("dplr %-6s chunk %2d: o %.2e ht %.2e", size, chunk, eo, eh);
    for (int i = 0; i < NGRAD; i++) {
        double e = rel_err(g[i], f->grad[i], (size_t)grad_count(f, i));
        printf(" %s %.2e", grad_names[i], e);
        CHECK(e <= tol, "dplr_%s chunk %d: %s rel err %.3e > %.0e", size, chunk, grad_names[i], e, tol);
        free(g[i]);
    }
    printf("\n");
    free(o), free(ht);
}

// h0 = NULL must mean zeros, and NULL dht must mean zeros; NULL grads are skipped.
static void check_null_state(const fixture *f, int chunk) {
    float *z = zeros(f->ns);
    float *o1 = zeros(f->nv), *o2 = zeros(f->nv), *h1 = zeros(f->ns), *h2 = zeros(f->ns);
    fwd(f, &f->s, chunk, f->in, NULL, o1, h1);
    fwd(f, &f->s, chunk, f->in, z, o2, h2);
    CHECK(rel_err(o1, o2, f->nv) == 0 && rel_err(h1, h2, f->ns) == 0, "dplr chunk %d: h0 NULL differs from zeros",
          chunk);
    float *g1[NGRAD] = {0}, *g2[NGRAD] = {0};
    g1[3] = zeros(f->nk), g1[4] = zeros(f->nk), g2[3] = zeros(f->nk), g2[4] = zeros(f->nk);
    bwd(f, chunk, NULL, NULL, g1);
    bwd(f, chunk, z, z, g2);
    CHECK(rel_err(g1[3], g2[3], f->nk) == 0 && rel_err(g1[4], g2[4], f->nk) == 0,
          "dplr chunk %d: NULL h0/dht backward differs from zeros", chunk);
    free(z), free(o1), free(o2), free(h1), free(h2), free(g1[3]), free(g1[4]), free(g2[3]), free(g2[4]);
}

// Backward adds into the gradient buffers: two calls give twice the fixture.
static void check_accumulate(const fixture *f, int chunk) {
    float *g[NGRAD] = {0};
    g[5] = zeros(f->nk), g[6] = zeros(f->ns);
    for (int r = 0; r < 2; r++) bwd(f, chunk, f->in[H0], f->in[DHT], g);
    float *ref = zeros(f->nk), *refh = zeros(f->ns);
    for (int64_t i = 0; i < f->nk; i++) ref[i] = 2 * f->grad[5][i];
    for (int64_t i = 0; i < f->ns; i++) refh[i] = 2 * f->grad[6][i];
    double e = rel_err(g[5], ref, f->nk), eh = rel_err(g[6], refh, f->ns);
    CHECK(e <= 1e-4 && eh <= 1e-4, "dplr chunk %d: two backward calls: db %.3e dh0 %.3e from 2x fixture", chunk, e,
          eh);
    free(g[5]), free(g[6]), free(ref), free(refh);
}

// Decode: T steps of fwd with T = 1 and h0 == ht, against the full forward and the fixture.
static void check_decode(const fixture *f, int chunk) {
    const int B = f->s.B, T = f->s.T, H = f->s.H, K = f->s.K, V = f->s.V;
    pn_rec_shape s1 = f->s;
    s1.T = 1;
    float *state = pn_malloc((size_t)f->ns * sizeof(float));
    memcpy(state, f->in[H0], (size_t)f->ns * sizeof(float));
    float *step[6];   // q k v gk a b of one time step, (B, 1, H, ·)
    for (int i = 0; i < 6; i++) step[i] = zeros((int64_t)B * H * (i == VV ? V : K));
    float *o1 = zeros((int64_t)B * H * V), *o = zeros(f->nv);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++)
            for (int i = 0; i < 6; i++) {
                const int D = i == VV ? V : K;
                memcpy(step[i] + (int64_t)b * H * D, f->in[i] + ((int64_t)b * T + t) * H * D, (size_t)H * D * sizeof(float));
            }
        fwd(f, &s1, chunk, step, state, o1, state);
        for (int b = 0; b < B; b++)
            memcpy(o + ((int64_t)b * T + t) * H * V, o1 + (int64_t)b * H * V, (size_t)H * V * sizeof(float));
    }
    float *of = zeros(f->nv), *hf = zeros(f->ns);
    fwd(f, &f->s, chunk, f->in, f->in[H0], of, hf);
    double eo = rel_err(o, of, f->nv), eh = rel_err(state, hf, f->ns);
    double fo = rel_err(o, f->o, f->nv), fh = rel_err(state, f->ht, f->ns);
    printf("dplr decode chunk %d: vs full o %.2e ht %.2e; vs fixture o %.2e ht %.2e\n", chunk, eo, eh, fo, fh);
    CHECK(eo <= 1e-5 && eh <= 1e-5, "dplr decode chunk %d vs full forward: o %.3e ht %.3e", chunk, eo, eh);
    CHECK(fo <= 1e-5 && fh <= 1e-5, "dplr decode chunk %d vs fixture: o %.3e ht %.3e", chunk, fo, fh);
    for (int i = 0; i < 6; i++) free(step[i]);
    free(state), free(o1), free(o), free(of), free(hf);
}

// Gates 20x stronger than the fixture's (cumsums down to ~-2400 inside a chunk of 64):
// the chunked form must stay finite (the mask comes before exp) and match the
// fixture-checked recurrent form.
static void check_strong_gates(fixture *f, int chunk) {
    float *g0 = f->in[GK], *g = pn_malloc((size_t)f->nk * sizeof(float));
    for (int64_t i = 0; i < f->nk; i++) g[i] = 20 * g0[i];
    f->in[GK] = g;
    float *out[2][2 + NGRAD];
    double worst = 0;
    for (int r = 0; r < 2; r++) {
        out[r][0] = zeros(f->nv), out[r][1] = zeros(f->ns);
        for (int i = 0; i < NGRAD; i++) out[r][2 + i] = zeros(grad_count(f, i));
        fwd(f, &f->s, r ? chunk : 0, f->in, f->in[H0], out[r][0], out[r][1]);
        bwd(f, r ? chunk : 0, f->in[H0], f->in[DHT], out[r] + 2);
    }
    for (int i = 0; i < 2 + NGRAD; i++) {
        const int64_t n = i == 0 ? f->nv : i == 1 ? f->ns : grad_count(f, i - 2);
        double e = rel_err(out[1][i], out[0][i], (size_t)n);
        if (!(e <= worst)) worst = e;
        free(out[0][i]), free(out[1][i]);
    }
    printf("dplr strong gates chunk %d vs recurrent: worst rel err %.2e\n", chunk, worst);
    CHECK(worst <= 1e-4, "dplr strong gates chunk %d: worst rel err vs recurrent %.3e", chunk, worst);
    f->in[GK] = g0;
    free(g);
}

int main(void) {
    const char *sizes[2] = {"small", "chunky"};
    for (int si = 0; si < 2; si++) {
        fixture f;
        fx_load(&f, sizes[si]);
        check_form(sizes[si], &f, 0, 1e-5);
        check_form(sizes[si], &f, 16, 1e-4);
        check_form(sizes[si], &f, 64, 1e-4);
        if (si == 0) {   // T = 67: chunk sizes that do not divide T
            check_form(sizes[si], &f, 7, 1e-4);
            check_form(sizes[si], &f, 32, 1e-4);
            check_null_state(&f, 0);
            check_null_state(&f, 16);
            check_accumulate(&f, 0);
            check_accumulate(&f, 32);
            check_decode(&f, 0);
            check_decode(&f, 16);
            check_strong_gates(&f, 64);
        }
        fx_free(&f);
    }
    return test_summary("test_ops_rec_dplr");
}
